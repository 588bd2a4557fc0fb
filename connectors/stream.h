/* stream: byte sources luamr reads inputs from — local files, gzip on top of anything,
 * and any other backend (S3) that registers itself through stream_ops.
 * Depends on engine/mr_error. Streams are pull-based and buffered: readers ask for bytes
 * or lines, nothing is read ahead beyond one buffer, so memory stays bounded whatever
 * the input size. */
#ifndef LUAMR_STREAM_H
#define LUAMR_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../engine/mr_error.h"

typedef struct stream stream;

/* A backend: read up to n bytes into buf; return bytes read, 0 at end, -1 on error
 * (filling e). close frees ctx. */
typedef struct stream_ops {
    ssize_t (*read)(void *ctx, void *buf, size_t n, mr_err *e);
    void (*close)(void *ctx);
} stream_ops;

/* Wraps a backend; name is used in error messages ("s3://b/k", "data/x.csv"). */
stream *stream_create(const stream_ops *ops, void *ctx, const char *name);

/* A URI opener for a scheme ("s3"); connectors register theirs at start-up. */
typedef stream *(*stream_opener)(const char *uri, uint64_t offset, mr_err *e);
void stream_register_scheme(const char *scheme, stream_opener open);

/* Opens a local path or a registered-scheme URI at byte offset (0 = start).
 * Does not decompress. */
stream *stream_open_raw(const char *uri, uint64_t offset, mr_err *e);
/* Opens and, when the name ends in .gz or the data starts with the gzip magic,
 * inflates transparently (multi-member gzip is read as one stream). */
stream *stream_open(const char *uri, mr_err *e);
/* Inflates inner (takes ownership). */
stream *stream_gunzip(stream *inner, mr_err *e);

/* Reads up to n bytes; 0 at end, -1 on error. */
ssize_t stream_read(stream *s, void *buf, size_t n, mr_err *e);
/* Next line without its '\n' (and a trailing '\r' stripped) in *line and *len; the pointer is
 * valid until the next call. Returns 1, 0 at end, -1 on error (including a line longer
 * than max_line bytes, MR_ELIMIT). */
int stream_readline(stream *s, const char **line, size_t *len, mr_err *e);
/* Peeks at up to n buffered bytes without consuming them (fills the buffer as needed);
 * returns the count available (< n only at end). */
ssize_t stream_peek(stream *s, const char **p, size_t n, mr_err *e);
/* Consumes n bytes previously peeked. */
void stream_skip(stream *s, size_t n);
/* Bytes consumed so far from this stream (decompressed offset for gunzip streams). */
uint64_t stream_offset(const stream *s);
/* Bytes of the underlying raw input consumed (compressed offset), for error reports. */
uint64_t stream_raw_offset(const stream *s);
const char *stream_name(const stream *s);
void stream_set_max_line(stream *s, size_t max_line);   /* default 64 MiB */
void stream_close(stream *s);                            /* accepts NULL */

/* Whole small object/file into memory (configs, scripts, manifests). Caller frees.
 * NUL-terminated; *len excludes the NUL. */
char *stream_slurp(const char *uri, size_t *len, size_t max_bytes, mr_err *e);

#endif
