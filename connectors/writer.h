/* writer: output formats for frames — one JSON document (an array of row objects, as
 * LetsData's example writes), JSON lines, CSV (RFC 4180 quoting, header row) — each
 * optionally gzip-compressed, published atomically through a sink. Depends on sink and
 * engine/frame. */
#ifndef LUAMR_WRITER_H
#define LUAMR_WRITER_H

#include "../engine/frame.h"
#include "../engine/mr_error.h"

typedef enum writer_format { WRITER_JSON = 0, WRITER_JSONL, WRITER_CSV } writer_format;
/* "json", "jsonl"|"ndjson", "csv"; -1 if unknown. */
int writer_format_parse(const char *name, writer_format *out);
/* Default file extension (".json", ".jsonl", ".csv", plus ".gz" when gzip). */
const char *writer_extension(writer_format f, int gzip);

typedef struct writer writer;
/* Opens uri (local or registered scheme); nothing is visible there until commit. */
writer *writer_open(const char *uri, writer_format f, int gzip, mr_err *e);
/* Appends the rows of one frame (several calls stream a large result). */
mr_code writer_append(writer *w, const frame *f, mr_err *e);
mr_code writer_commit(writer *w, mr_err *e);
void writer_free(writer *w);      /* aborts when not committed; accepts NULL */
uint64_t writer_rows(const writer *w);

/* Formats v as the shortest decimal that reads back to the same double (at most 17
 * significant digits), with ".0" added to integral values so they stay floats when read
 * back; "nan", "inf", "-inf" for the non-finite. buf needs 32 bytes; returns the length. */
size_t writer_fmt_f64(char *buf, double v);

/* Convenience: the whole frame to uri, atomically. */
mr_code writer_write_frame(const frame *f, const char *uri, writer_format fmt, int gzip,
                           mr_err *e);

#endif
