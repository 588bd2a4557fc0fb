/* reader: streaming record readers for the line-oriented formats — lines, CSV (RFC 4180)
 * and JSON lines — over any stream (file, gzip, S3). Depends on stream, engine/frame.
 * A reader hands out one record at a time (a view valid until the next call) or builds a
 * typed frame straight from the bytes (the fast path behind input:frame()). Bad records
 * are reported to a callback with file, record number, byte offset, reason and a prefix of
 * the raw bytes; the reader then goes on with the next record. (WARC has its own reader,
 * warc.h, because its records are not rows.) */
#ifndef LUAMR_READER_H
#define LUAMR_READER_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/frame.h"
#include "../engine/mr_error.h"

typedef enum reader_format {
    READER_LINES = 0,
    READER_CSV,
    READER_JSONL
} reader_format;

/* "lines"|"text", "csv"|"tsv", "jsonl"|"json"|"ndjson"; -1 if unknown. */
int reader_format_parse(const char *name, reader_format *out);

typedef struct reader_opts {
    reader_format format;
    char delimiter;                 /* csv; 0 means ',' (or '\t' for "tsv") */
    int header;                     /* csv: first row holds column names (default 1) */
    /* An optional schema: names and types of columns to produce. For CSV without a header
     * the names; for CSV/JSONL the types override inference. ncols == 0: infer. */
    const char *const *col_names;
    const frame_type *col_types;
    size_t ncols;
    uint64_t max_records;           /* 0 = no limit (dry-run --sample N) */
    size_t max_frame_bytes;         /* reader_frame fails (MR_ELIMIT) once its frame passes
                                       about this many bytes; 0 = no limit */
    uint64_t range_start, range_end;/* byte range split of an uncompressed input; a record
                                       belongs to the split where it starts. end 0 = EOF.
                                       A split starts after the first '\n' at or after
                                       range_start - 1; CSV re-synchronises past '\n's
                                       inside quotes (rule in reader.c). */
} reader_opts;

void reader_opts_init(reader_opts *o);

typedef struct reader_bad {
    const char *file;
    uint64_t record;      /* 1-based physical line where the record starts (a CSV row with
                             quoted newlines spans several); 0 inside a byte-range split */
    uint64_t offset;      /* byte offset of the record in the (decompressed) input */
    const char *field;    /* offending field/column name, or NULL */
    const char *reason;
    const char *raw;      /* prefix of the raw record bytes */
    size_t raw_len;
} reader_bad;
/* Return MR_OK to go on, anything else (e.g. MR_ELIMIT when the bad-record budget is
 * spent) to stop the reader with that error. */
typedef mr_code (*reader_bad_fn)(const reader_bad *bad, void *ud, mr_err *e);

typedef struct reader reader;

reader *reader_open(const char *uri, const reader_opts *o, reader_bad_fn on_bad, void *ud,
                    mr_err *e);
void reader_free(reader *r);      /* accepts NULL */

typedef struct reader_rec {
    uint64_t number;              /* 1-based index among the good records handed out */
    uint64_t offset;              /* byte offset in the decompressed input */
    const char *raw;              /* lines: the line; csv: the raw row; jsonl: the line */
    size_t raw_len;
    /* csv only: fields (unquoted) and the header names (NULL when no header) */
    size_t nfields;
    const char *const *fields;
    const size_t *field_lens;
    const char *const *names;
    /* jsonl only: the parsed object (a cJSON *, owned by the reader) */
    void *json;
} reader_rec;

/* 1 record, 0 end (or max_records reached), -1 error (bad-record budget, I/O). */
int reader_next(reader *r, reader_rec *rec, mr_err *e);
/* The rest of the input as a typed frame. Column types come from the schema or are
 * inferred (int64 if every non-empty value parses as an integer, else float64 if every
 * one parses as a number, else bool for true/false, else string; empty CSV cells and JSON
 * nulls are nulls). Values that do not fit a given type are bad records.
 * CSV: types are inferred from the first 10,000 rows; a later value that needs more
 * converts the column in place (int64 -> float64, else -> string). A quoted empty cell
 * ("") is an empty string in a string column, null elsewhere; a column that never holds
 * a value is an all-null string column. Headerless CSV without a schema names columns
 * c1..cN. JSON lines: columns in first-seen key order, typed by their first value and
 * promoted the same way; nested arrays/objects become JSON text; integers are exact up
 * to 2^53 (cJSON reads numbers as doubles). With a schema, keys outside it are ignored.
 * lines: one string column "line". */
frame *reader_frame(reader *r, mr_err *e);

/* The next records as a typed frame of at most max_rows rows (and about max_bytes of
 * memory, when not 0, looked at every 4096 rows); a frame without rows once the input is
 * exhausted. Types are inferred per batch, as reader_frame does for the whole input, so
 * a column may be int64 in one batch and float64 in a later one. */
frame *reader_frame_batch(reader *r, size_t max_rows, size_t max_bytes, mr_err *e);

uint64_t reader_records(const reader *r);  /* good records handed out so far */
uint64_t reader_bad_count(const reader *r);
uint64_t reader_bytes(const reader *r);    /* raw input bytes consumed */
const char *reader_uri(const reader *r);

#endif
