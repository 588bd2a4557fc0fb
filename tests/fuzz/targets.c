/* fuzz targets: see targets.h. #included once by each fuzzer and by the replay test.
 *
 * Input layout: every reader target starts with a few option bytes (so one corpus file
 * fully determines a run, and the fuzzer explores options too) followed by the bytes the
 * parser sees. Inputs shorter than the option prefix are ignored. The return value is
 * the number of good records/rows (bytes for gzip, 1/0 for config): the replay test
 * checks it against independently computed counts on valid inputs. */
#define _GNU_SOURCE
#include "targets.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/lang.h"
#include "connectors/reader.h"
#include "connectors/stream.h"
#include "connectors/warc.h"
#include "engine/config.h"
#include "engine/frame.h"
#include "engine/imf.h"
#include "engine/mr_error.h"

/* Aborts (a crash for libFuzzer and for Check's forked test) when an invariant breaks. */
#define FZ_ASSERT(cond, ...)                                                  \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s: ", __FILE__, \
                    __LINE__, #cond);                                         \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* A failing call must say why: the whole project promises messages, never silence. */
static void fz_check_err(const mr_err *e, const char *what)
{
    FZ_ASSERT(e->code != MR_OK && e->msg[0] != '\0', "%s failed without an error message "
              "(code %d)", what, (int)e->code);
}

/* Reads every byte so ASan sees any view that points outside its buffer. */
static volatile unsigned fz_sink;
static void fz_touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) acc += b[i];
    fz_sink += acc;
}

/* ---- a memory stream: the fuzz buffer handed out in chunks of a chosen size ---- */

typedef struct fz_mem {
    const uint8_t *p;
    size_t len, pos, chunk;
} fz_mem;

static ssize_t fz_mem_read(void *ctx, void *buf, size_t n, mr_err *e)
{
    fz_mem *m = ctx;
    size_t left = m->len - m->pos;
    if (n > left) n = left;
    if (n > m->chunk) n = m->chunk;
    memcpy(buf, m->p + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static void fz_mem_close(void *ctx) { free(ctx); }

static const stream_ops fz_mem_ops = {fz_mem_read, fz_mem_close};

/* Short reads exercise every refill boundary of the buffered layers above. */
static size_t fz_chunk(unsigned bits)
{
    static const size_t sizes[4] = {(size_t)1 << 30, 1, 7, 4096};
    return sizes[bits & 3];
}

static stream *fz_mem_stream(const uint8_t *p, size_t len, size_t offset, size_t chunk,
                             const char *name)
{
    fz_mem *m = malloc(sizeof *m);
    FZ_ASSERT(m, "out of memory");
    *m = (fz_mem){p, len, offset < len ? offset : len, chunk};
    stream *s = stream_create(&fz_mem_ops, m, name);
    FZ_ASSERT(s, "out of memory");
    return s;
}

/* reader_open takes a URI, so the buffer is reachable through a registered scheme. */
static fz_mem fz_current;

static stream *fz_mem_open(const char *uri, uint64_t offset, mr_err *e)
{
    return fz_mem_stream(fz_current.p, fz_current.len, (size_t)offset, fz_current.chunk, uri);
}

static void fz_register(void)
{
    static int done;
    if (done) return;
    stream_register_scheme("fuzzmem", fz_mem_open);
    done = 1;
}

/* ---- frames ---- */

static size_t fz_check_frame(const frame *f)
{
    mr_err e;
    mr_err_clear(&e);
    FZ_ASSERT(frame_validate(f, &e) == MR_OK, "reader produced an invalid frame: %s", e.msg);
    size_t rows = frame_nrows(f);
    for (size_t i = 0; i < frame_ncols(f); i++) {
        const frame_col *c = frame_col_at(f, i);
        fz_touch(c->name, strlen(c->name));
        if (c->nulls) fz_touch(c->nulls, rows);
        if (c->type == FRAME_STR) fz_touch(c->arena, c->arena_len);
        else if (c->type == FRAME_BOOL) {
            for (size_t r = 0; r < rows; r++)
                FZ_ASSERT(c->v.b[r] <= 1, "bool column '%s' row %zu holds %u", c->name, r,
                          c->v.b[r]);
        } else fz_touch(c->v.i64, rows * 8);
    }
    return rows;
}

/* ---- record readers (CSV, JSON lines, lines) ---- */

typedef struct fz_bad_ctx {
    uint64_t seen, budget;   /* budget 0: unlimited */
} fz_bad_ctx;

static mr_code fz_on_bad(const reader_bad *bad, void *ud, mr_err *e)
{
    fz_bad_ctx *b = ud;
    FZ_ASSERT(bad->reason && bad->reason[0], "bad record without a reason");
    FZ_ASSERT(bad->file, "bad record without a file name");
    fz_touch(bad->reason, strlen(bad->reason));
    if (bad->field) fz_touch(bad->field, strlen(bad->field));
    if (bad->raw_len) FZ_ASSERT(bad->raw, "bad record raw_len %zu without bytes", bad->raw_len);
    if (bad->raw) fz_touch(bad->raw, bad->raw_len);
    b->seen++;
    if (b->budget && b->seen >= b->budget)
        return mr_fail(e, MR_ELIMIT, "%s: more than %llu bad records", bad->file,
                       (unsigned long long)b->budget);
    return MR_OK;
}

static void fz_check_rec(const reader_rec *rec, reader_format fmt)
{
    if (rec->raw_len) FZ_ASSERT(rec->raw, "record raw_len %zu without bytes", rec->raw_len);
    fz_touch(rec->raw, rec->raw_len);
    if (fmt == READER_CSV) {
        for (size_t i = 0; i < rec->nfields; i++) {
            fz_touch(rec->fields[i], rec->field_lens[i]);
            if (rec->names && rec->names[i]) fz_touch(rec->names[i], strlen(rec->names[i]));
        }
    }
    if (fmt == READER_JSONL) FZ_ASSERT(rec->json, "JSON-lines record without a parsed value");
}

/* Options: [0] flags [1] schema types [2] range start [3] range length / budget.
 * flags: bits 0-1 read chunk, 2 csv header, 3 tab delimiter, 4 use a 3-column schema typed
 * by [1], 5 byte-range split, 6 max_records 3, 7 reader_next only (else a few records by
 * reader_next, then reader_frame). [3] bit 7: stop after the first bad record. */
#define FZ_READER_OPTS 4

static int fz_reader(const uint8_t *data, size_t size, reader_format fmt, const char *uri,
                     int allow_range)
{
    if (size < FZ_READER_OPTS) return 0;
    unsigned flags = data[0], types = data[1], rstart = data[2], rlen = data[3];
    data += FZ_READER_OPTS;
    size -= FZ_READER_OPTS;
    fz_register();
    fz_current = (fz_mem){data, size, 0, fz_chunk(flags)};

    static const char *const names[3] = {"a", "b", "c"};
    frame_type col_types[3] = {(frame_type)(types & 3), (frame_type)((types >> 2) & 3),
                               (frame_type)((types >> 4) & 3)};
    reader_opts o;
    reader_opts_init(&o);
    o.format = fmt;
    o.header = (flags & 4) != 0;
    o.delimiter = (flags & 8) ? '\t' : 0;
    if (flags & 16) {
        o.col_names = names;
        o.col_types = (types & 64) ? col_types : NULL;
        o.ncols = 3;
    }
    if ((flags & 32) && allow_range) {
        o.range_start = (uint64_t)rstart + 1;
        o.range_end = (rlen & 127) ? o.range_start + (rlen & 127) : 0;
    }
    if (flags & 64) o.max_records = 3;
    fz_bad_ctx bad = {0, (rlen & 128) ? 1 : 0};

    mr_err e;
    mr_err_clear(&e);
    reader *r = reader_open(uri, &o, fz_on_bad, &bad, &e);
    if (!r) {
        fz_check_err(&e, "reader_open");
        return 0;
    }
    int count = 0;
    int nnext = (flags & 128) ? -1 : (int)(rstart & 7);
    reader_rec rec;
    int rc = 1;
    while (nnext < 0 || count < nnext) {
        rc = reader_next(r, &rec, &e);
        if (rc != 1) break;
        fz_check_rec(&rec, fmt);
        count++;
        FZ_ASSERT(rec.number == (uint64_t)count, "record number %llu, expected %d",
                  (unsigned long long)rec.number, count);
    }
    if (rc < 0) fz_check_err(&e, "reader_next");
    else if (rc == 1) {
        frame *f = reader_frame(r, &e);
        if (!f) fz_check_err(&e, "reader_frame");
        else {
            count += (int)fz_check_frame(f);
            frame_free(f);
        }
    }
    fz_touch(reader_uri(r), strlen(reader_uri(r)));
    reader_free(r);
    return count;
}

int fuzz_target_csv(const uint8_t *data, size_t size)
{
    return fz_reader(data, size, READER_CSV, "fuzzmem://input.csv", 1);
}

int fuzz_target_jsonl(const uint8_t *data, size_t size)
{
    return fz_reader(data, size, READER_JSONL, "fuzzmem://input.jsonl", 1);
}

/* flags bit 4 (schema) is meaningless for lines; it selects the ".gz" name instead, which
 * forces gunzip (otherwise gzip is detected from the magic bytes). */
int fuzz_target_lines(const uint8_t *data, size_t size)
{
    int gz = size > 0 && (data[0] & 16);
    return fz_reader(data, size, READER_LINES, gz ? "fuzzmem://input.txt.gz"
                                                  : "fuzzmem://input.txt", !gz);
}

/* ---- gzip stream ---- */

/* Options: [0] flags: bits 0-1 read chunk, 2 readline (else stream_read), 3 a 64-byte line
 * limit, 4-7 read size (1 << n bytes). */
int fuzz_target_gzip(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned flags = data[0];
    stream *raw = fz_mem_stream(data + 1, size - 1, 0, fz_chunk(flags), "fuzz.gz");
    mr_err e;
    mr_err_clear(&e);
    stream *s = stream_gunzip(raw, &e);
    if (!s) {
        fz_check_err(&e, "stream_gunzip");
        return 0;
    }
    uint64_t total = 0;
    if (flags & 4) {
        if (flags & 8) stream_set_max_line(s, 64);
        const char *line;
        size_t len;
        int rc;
        while ((rc = stream_readline(s, &line, &len, &e)) == 1) {
            if (flags & 8) FZ_ASSERT(len <= 64, "line of %zu bytes past the 64-byte limit", len);
            fz_touch(line, len);
            total += len;
        }
        if (rc < 0) fz_check_err(&e, "stream_readline");
    } else {
        static char buf[1 << 15];
        size_t want = (size_t)1 << ((flags >> 4) & 15);
        if (want > sizeof buf) want = sizeof buf;
        ssize_t got;
        while ((got = stream_read(s, buf, want, &e)) > 0) {
            FZ_ASSERT((size_t)got <= want, "stream_read returned %zd for %zu", got, want);
            total += (uint64_t)got;
        }
        if (got < 0) fz_check_err(&e, "stream_read");
        else FZ_ASSERT(stream_offset(s) == total, "offset %llu after %llu bytes",
                       (unsigned long long)stream_offset(s), (unsigned long long)total);
    }
    stream_close(s);
    return (int)(total > INT32_MAX ? INT32_MAX : total);
}

/* ---- WARC ---- */

static void fz_check_within(const char *inner, size_t n, const char *outer, size_t m,
                            const char *what)
{
    if (!n) return;
    FZ_ASSERT(inner >= outer && inner + n <= outer + m, "%s lies outside the block", what);
}

static void fz_check_warc_rec(const warc_record *rec, const warc_opts *o)
{
    FZ_ASSERT(rec->block_len <= rec->content_length, "block_len %zu > Content-Length %llu",
              rec->block_len, (unsigned long long)rec->content_length);
    FZ_ASSERT(rec->block_len <= o->max_block, "block_len %zu > max_block %zu", rec->block_len,
              o->max_block);
    fz_touch(rec->block, rec->block_len);
    fz_touch(rec->type_name, rec->type_name_len);
    fz_touch(rec->version, rec->version_len);
    for (size_t i = 0; i < rec->nheaders; i++) {
        fz_touch(rec->headers[i].name, rec->headers[i].name_len);
        fz_touch(rec->headers[i].value, rec->headers[i].value_len);
    }
    fz_check_within(rec->payload, rec->payload_len, rec->block, rec->block_len, "payload");
    fz_check_within(rec->http_headers, rec->http_headers_len, rec->block, rec->block_len,
                    "HTTP headers");
    FZ_ASSERT(rec->payload_len <= rec->payload_length || !rec->is_http,
              "payload_len %zu > payload_length %llu", rec->payload_len,
              (unsigned long long)rec->payload_length);
    size_t n;
    const char *v;
    if ((v = warc_record_header(rec, "warc-type", &n))) fz_touch(v, n);
    if ((v = warc_record_http_header(rec, "Content-Type", &n))) fz_touch(v, n);
    if ((v = warc_record_uri(rec, &n))) fz_touch(v, n);
    char mime[64], lang[LANG_TAG_MAX];
    size_t ml = warc_record_mime(rec, mime, sizeof mime);
    /* A header value may hold NUL bytes, so only the terminator is checked, not strlen. */
    FZ_ASSERT(ml < sizeof mime && mime[ml] == '\0', "mime length %zu", ml);
    size_t ll = warc_record_language(rec, lang);
    FZ_ASSERT(ll < LANG_TAG_MAX && lang[ll] == '\0', "language length %zu", ll);
}

/* Options: [0] flags: bits 0-1 read chunk, 2 max_block 100, 3 max_header 256,
 * 4 max_records 2, 5-7 records read by warc_next before warc_frame (7: all by warc_next);
 * [1] warc_frame type mask (0 = all). */
int fuzz_target_warc(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    unsigned flags = data[0], mask = data[1];
    warc_opts o;
    warc_opts_init(&o);
    if (flags & 4) o.max_block = 100;
    if (flags & 8) o.max_header = 256;
    if (flags & 16) o.max_records = 2;
    stream *raw = fz_mem_stream(data + 2, size - 2, 0, fz_chunk(flags), "fuzz.warc");
    fz_bad_ctx bad = {0, 0};
    mr_err e;
    mr_err_clear(&e);
    warc_reader *r = warc_open_stream(raw, "fuzz.warc", &o, fz_on_bad, &bad, &e);
    if (!r) {
        fz_check_err(&e, "warc_open_stream");
        return 0;
    }
    int nnext = (int)((flags >> 5) & 7), count = 0, rc = 1;
    warc_record rec;
    while (nnext == 7 || count < nnext) {
        rc = warc_next(r, &rec, &e);
        if (rc != 1) break;
        fz_check_warc_rec(&rec, &o);
        count++;
    }
    if (rc < 0) fz_check_err(&e, "warc_next");
    else if (rc == 1) {
        frame *f = warc_frame(r, NULL, 0, mask, &e);
        if (!f) fz_check_err(&e, "warc_frame");
        else {
            FZ_ASSERT(frame_ncols(f) == WARC_NCOLS, "warc_frame gave %zu columns",
                      frame_ncols(f));
            count += (int)fz_check_frame(f);
            frame_free(f);
        }
    }
    warc_free(r);
    return count;
}

/* ---- intermediate format ---- */

static uint32_t fz_get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t fz_get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void fz_put_crc(uint8_t *at, uint32_t crc) { memcpy(at, &crc, 4); }

/* Rewrites every CRC the layout in engine/imf.c defines, so mutations get past the
 * checksums to the decoding logic behind them (which otherwise a random byte never
 * reaches). Only follows offsets that stay inside the buffer. */
static void fz_imf_fix_crcs(uint8_t *p, size_t n)
{
    if (n >= 24) {   /* schema: u32 ncols, u32 len, entries, crc over all of it */
        uint64_t len = fz_get_u32(p + 20);
        if (24 + len + 4 <= n) fz_put_crc(p + 24 + len, libdeflate_crc32(0, p + 16, 8 + len));
    }
    if (n < 16 + 24) return;
    uint8_t *t = p + n - 24;   /* trailer: u64 foff, u64 flen, crc, magic */
    uint64_t foff = fz_get_u64(t), flen = fz_get_u64(t + 8);
    fz_put_crc(t + 16, libdeflate_crc32(0, t, 16));
    uint64_t toff = n - 24;
    if (foff > toff || flen > toff - foff || flen < 20) return;
    uint8_t *f = p + foff;
    uint64_t ngroups = fz_get_u32(f + 4);
    for (uint64_t i = 0; i < ngroups && 16 + (i + 1) * 32 <= flen - 4; i++) {
        const uint8_t *q = f + 16 + i * 32;
        uint64_t goff = fz_get_u64(q), glen = fz_get_u64(q + 8);
        if (goff > foff || glen > foff - goff || glen < 24) continue;
        uint8_t *g = p + goff;
        fz_put_crc(g + 20, libdeflate_crc32(0, g, 20));
        for (uint64_t pos = 24; pos + 24 <= glen;) {
            uint8_t *h = g + pos;
            uint64_t stored = fz_get_u64(h + 12);
            if (stored > glen - pos - 24) break;
            fz_put_crc(h + 20, libdeflate_crc32(libdeflate_crc32(0, h, 20), h + 24, stored));
            pos += 24 + stored;
        }
    }
    fz_put_crc(f + flen - 4, libdeflate_crc32(0, f, flen - 4));
}

static char fz_imf_path[64];

static void fz_imf_cleanup(void)
{
    if (fz_imf_path[0]) unlink(fz_imf_path);
}

static const char *fz_imf_write(const uint8_t *p, size_t n)
{
    if (!fz_imf_path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(fz_imf_path, sizeof fz_imf_path, "%s/luamr-fuzz-imf-XXXXXX",
                 dir && strlen(dir) < 32 ? dir : "/tmp");
        int fd = mkstemp(fz_imf_path);
        FZ_ASSERT(fd >= 0, "cannot create a temporary file");
        close(fd);
        atexit(fz_imf_cleanup);
    }
    FILE *fp = fopen(fz_imf_path, "wb");
    FZ_ASSERT(fp, "cannot write %s", fz_imf_path);
    FZ_ASSERT(fwrite(p, 1, n, fp) == n || n == 0, "short write to %s", fz_imf_path);
    fclose(fp);
    return fz_imf_path;
}

/* Options: [0] flags: bit 0 rewrite the CRCs, bit 1 read partition 0 only in imf_read_all.
 * Returns the rows imf_read_all produced. */
int fuzz_target_imf(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned flags = data[0];
    uint8_t *copy = malloc(size);   /* size >= 1 */
    FZ_ASSERT(copy, "out of memory");
    memcpy(copy, data + 1, size - 1);
    if (flags & 1) fz_imf_fix_crcs(copy, size - 1);
    const char *path = fz_imf_write(copy, size - 1);
    free(copy);

    mr_err e;
    mr_err_clear(&e);
    imf_reader *r = imf_reader_open(path, &e);
    if (!r) {
        fz_check_err(&e, "imf_reader_open");
        return 0;
    }
    int nparts = imf_reader_nparts(r);
    FZ_ASSERT(nparts >= 1 && nparts <= IMF_MAX_PARTS, "nparts %d", nparts);
    fz_check_frame(imf_reader_schema(r));
    uint64_t rows_all = imf_reader_rows(r, -1), got = 0;
    int next_ok = 1;
    frame *f;
    for (;;) {
        if (imf_reader_next(r, -1, &f, &e) != MR_OK) {
            fz_check_err(&e, "imf_reader_next");
            next_ok = 0;
            break;
        }
        if (!f) break;
        got += fz_check_frame(f);
        frame_free(f);
    }
    for (int p = 0; p < nparts && p < 3; p++) {
        for (;;) {
            if (imf_reader_next(r, p, &f, &e) != MR_OK) {
                fz_check_err(&e, "imf_reader_next");
                break;
            }
            if (!f) break;
            fz_check_frame(f);
            frame_free(f);
        }
    }
    imf_reader_rewind(r);
    imf_reader_free(r);

    int part = (flags & 2) ? 0 : -1;
    int count = 0;
    frame *all = imf_read_all(path, part, &e);
    if (!all) fz_check_err(&e, "imf_read_all");
    else {
        count = (int)fz_check_frame(all);
        frame_free(all);
        if (part < 0)
            FZ_ASSERT((uint64_t)count == rows_all && (!next_ok || got == rows_all),
                      "imf_read_all gave %d rows, the footer says %llu, the groups %llu", count,
                      (unsigned long long)rows_all, (unsigned long long)got);
    }
    mr_code vrc = imf_verify(path, &e);
    if (vrc != MR_OK) fz_check_err(&e, "imf_verify");
    /* Decoding checks everything verifying does, and more. */
    if (all && part < 0) FZ_ASSERT(vrc == MR_OK, "imf_read_all succeeded, imf_verify: %s", e.msg);
    return count;
}

/* ---- config ---- */

/* The whole input is the config text. A valid config's canonical JSON must parse again
 * to the same canonical JSON. Returns 1 for a valid config. */
int fuzz_target_config(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FZ_ASSERT(text, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    mr_err e;
    mr_err_clear(&e);
    config *c = config_parse(text, "fuzz.json", "/luamr-fuzz", &e);
    free(text);
    if (!c) {
        fz_check_err(&e, "config_parse");
        return 0;
    }
    char *j1 = config_to_json(c);
    FZ_ASSERT(j1, "config_to_json failed");
    config *c2 = config_parse(j1, "canonical.json", "/luamr-fuzz", &e);
    FZ_ASSERT(c2, "the canonical form of a valid config does not parse: %s\n%s", e.msg, j1);
    char *j2 = config_to_json(c2);
    FZ_ASSERT(j2 && strcmp(j1, j2) == 0, "canonical form not stable:\n%s\n---\n%s", j1,
              j2 ? j2 : "(null)");
    free(j1);
    free(j2);
    config_free(c2);
    config_free(c);
    return 1;
}

/* ---- registry ---- */

const fuzz_target_entry fuzz_targets[] = {
    {"csv", fuzz_target_csv},
    {"jsonl", fuzz_target_jsonl},
    {"lines", fuzz_target_lines},
    {"gzip", fuzz_target_gzip},
    {"warc", fuzz_target_warc},
    {"imf", fuzz_target_imf},
    {"config", fuzz_target_config},
    {NULL, NULL},
};

fuzz_target_fn fuzz_target_by_name(const char *name)
{
    for (const fuzz_target_entry *t = fuzz_targets; t->name; t++)
        if (strcmp(t->name, name) == 0) return t->fn;
    return NULL;
}
