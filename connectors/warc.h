/* warc: a streaming reader for WARC 1.0/1.1 files (and WET/WAT, which are WARC too),
 * plain or gzip-compressed one member per record as Common Crawl and wget write them.
 * Depends on stream (stream_open_raw: local paths, s3://), reader (reader_bad for bad
 * records), lang (page language), engine/frame, mr_error, libdeflate and zlib.
 *
 * Each record is handed out as a view into the reader's window, valid until the next
 * warc_next: the WARC headers, the block and, for HTTP records, the status, the HTTP
 * headers and the payload. Nothing is copied per record. gzip is detected from the
 * bytes, not the name. A gzip member is inflated in one call with libdeflate when it
 * fits the input buffer, else streamed through zlib; records spanning members or
 * several records in one member work too.
 *
 * Bad input (a truncated or corrupt gzip member, a malformed header line, a
 * Content-Length that does not end on a record boundary or runs past the end) is
 * reported to on_bad with the file, record number, offset and a raw prefix; the reader
 * then resynchronises on the next gzip member / "WARC/" line. */
#ifndef LUAMR_WARC_H
#define LUAMR_WARC_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/frame.h"
#include "../engine/mr_error.h"
#include "reader.h"
#include "stream.h"

typedef enum warc_type {
    WARC_WARCINFO = 0,
    WARC_REQUEST,
    WARC_RESPONSE,
    WARC_METADATA,
    WARC_RESOURCE,
    WARC_REVISIT,
    WARC_CONVERSION,
    WARC_CONTINUATION,
    WARC_OTHER           /* an unknown WARC-Type value (still handed out) */
} warc_type;

const char *warc_type_name(warc_type t);
/* Case-insensitive; WARC_OTHER for unknown names. */
warc_type warc_type_parse(const char *s, size_t n);

typedef struct warc_opts {
    uint64_t max_records;      /* stop after this many good records (0 = all) */
    size_t max_block;          /* blocks longer than this keep only their first max_block
                                  bytes in memory (block_truncated set); default 64 MiB */
    size_t max_header;         /* WARC header section limit; default 1 MiB */
} warc_opts;

void warc_opts_init(warc_opts *o);

typedef struct warc_header {
    const char *name, *value;
    size_t name_len, value_len;
} warc_header;

typedef struct warc_record {
    uint64_t number;           /* 1-based, counting bad records too */
    uint64_t offset;           /* raw file offset where the record starts (for gzip: its
                                  member, as in Common Crawl's index) */
    warc_type type;
    const char *type_name;     /* the WARC-Type value as written */
    size_t type_name_len;
    const char *version;       /* "WARC/1.0" */
    size_t version_len;
    const warc_header *headers;/* the WARC named fields, in file order */
    size_t nheaders;
    uint64_t content_length;   /* Content-Length: the block's full length */
    const char *block;         /* the block (its first max_block bytes) */
    size_t block_len;
    int block_truncated;       /* the block was longer than max_block */
    /* HTTP records (Content-Type application/http, or a block starting "HTTP/"): */
    int is_http;
    int status;                /* response status code; 0 when not an HTTP response */
    const char *http_headers;  /* from the status/request line to the blank line */
    size_t http_headers_len;
    const char *payload;       /* the body as transferred (not de-chunked/decoded); for
                                  non-HTTP records the whole block */
    size_t payload_len;        /* bytes of it in memory */
    uint64_t payload_length;   /* its full length (content_length minus HTTP headers) */
} warc_record;

typedef struct warc_reader warc_reader;

/* Opens uri (a local path or any scheme stream_open_raw knows). on_bad may be NULL (bad
 * records are then skipped silently). */
warc_reader *warc_open(const char *uri, const warc_opts *o, reader_bad_fn on_bad, void *ud,
                       mr_err *e);
/* Reads from an already open raw stream (takes ownership). */
warc_reader *warc_open_stream(stream *raw, const char *name, const warc_opts *o,
                              reader_bad_fn on_bad, void *ud, mr_err *e);
void warc_free(warc_reader *r);   /* accepts NULL */

/* 1 record, 0 end (or max_records reached), -1 error (I/O, or on_bad said stop). */
int warc_next(warc_reader *r, warc_record *rec, mr_err *e);

/* A WARC named field, case-insensitive; NULL when absent. */
const char *warc_record_header(const warc_record *rec, const char *name, size_t *len);
/* An HTTP header of the record, case-insensitive; NULL when absent or not HTTP. */
const char *warc_record_http_header(const warc_record *rec, const char *name, size_t *len);
/* WARC-Target-URI without the <> some WARC 1.0 writers put around it. */
const char *warc_record_uri(const warc_record *rec, size_t *len);
/* The payload's media type, lower case without parameters ("text/html"): the HTTP
 * Content-Type for HTTP records, else WARC-Identified-Payload-Type, else the record's
 * Content-Type. Writes at most cap-1 bytes + NUL into out; returns the length (0 if
 * none). */
size_t warc_record_mime(const warc_record *rec, char *out, size_t cap);
/* The page language (see lang.h for the sources and their order), "unknown" when none.
 * out holds at least LANG_TAG_MAX bytes. Returns the length. */
size_t warc_record_language(const warc_record *rec, char *out);

/* The per-record columns input:frame() builds, by name. */
typedef enum warc_col {
    WARC_COL_TYPE = 0,     /* string */
    WARC_COL_URI,          /* string (null when absent) */
    WARC_COL_DATE,         /* string */
    WARC_COL_RECORD_ID,    /* string */
    WARC_COL_STATUS,       /* int64 (null when not an HTTP response) */
    WARC_COL_MIME,         /* string (null when unknown) */
    WARC_COL_LANGUAGE,     /* string ("unknown" when none) */
    WARC_COL_CONTENT_LENGTH,/* int64 */
    WARC_COL_PAYLOAD_LENGTH,/* int64 */
    WARC_COL_OFFSET,       /* int64 */
    WARC_NCOLS
} warc_col;
const char *warc_col_name(warc_col c);
int warc_col_parse(const char *name, warc_col *out);   /* -1 if unknown */

/* The rest of the input as a frame with the given columns (all when ncols == 0), one
 * row per record, only records whose type is set in type_mask (bit 1 << warc_type;
 * 0 = all types). */
frame *warc_frame(warc_reader *r, const warc_col *cols, size_t ncols, unsigned type_mask,
                  mr_err *e);

uint64_t warc_records(const warc_reader *r);     /* good records handed out */
uint64_t warc_bad_count(const warc_reader *r);
uint64_t warc_bytes(const warc_reader *r);       /* raw input bytes consumed */
const char *warc_uri(const warc_reader *r);
int warc_is_gzip(const warc_reader *r);          /* 1 gzip, 0 plain, -1 not known yet */

#endif
