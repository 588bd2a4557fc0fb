/* sink: byte destinations luamr writes outputs, intermediates and error records to —
 * local files and any registered backend (S3 multipart). Depends on engine/mr_error.
 *
 * Publishing is atomic: a local sink writes "DIR/.NAME.tmp-PID" and renames on commit;
 * an S3 sink completes its multipart upload (or PUTs) only on commit. sink_abort (or
 * freeing an uncommitted sink) removes every trace, so a failed job never leaves a
 * partial output at the destination. */
#ifndef LUAMR_SINK_H
#define LUAMR_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/mr_error.h"

typedef struct sink sink;

typedef struct sink_ops {
    mr_code (*write)(void *ctx, const void *buf, size_t n, mr_err *e);
    mr_code (*commit)(void *ctx, mr_err *e);  /* make the object visible */
    void (*abort)(void *ctx);                 /* discard everything written */
    void (*free)(void *ctx);
} sink_ops;

sink *sink_create(const sink_ops *ops, void *ctx, const char *name);
typedef sink *(*sink_opener)(const char *uri, mr_err *e);
void sink_register_scheme(const char *scheme, sink_opener open);

/* Opens a local path (parent folders created) or a registered-scheme URI. With gzip set
 * the bytes are deflated on the way (gzip format). */
sink *sink_open(const char *uri, int gzip, mr_err *e);
mr_code sink_write(sink *s, const void *buf, size_t n, mr_err *e);
mr_code sink_printf(sink *s, mr_err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
mr_code sink_commit(sink *s, mr_err *e);
void sink_abort(sink *s);
/* Frees; an uncommitted sink is aborted first. Accepts NULL. */
void sink_free(sink *s);
uint64_t sink_bytes(const sink *s);   /* bytes accepted (before compression) */
const char *sink_name(const sink *s);
/* Creates the local folders above path (mkdir -p); a no-op for remote URIs' callers. */
mr_code sink_make_parents(const char *path, mr_err *e);

#endif
