/* Unit tests for connectors/warc: record parsing (WARC 1.0/1.1, HTTP), gzip one member per
 * record and otherwise, buffer boundaries, bad input and resynchronisation, frames, the
 * committed crawl (checked against an independent zlib scan) and, when node and
 * tests/warcio/node_modules are there, webrecorder's warcio record by record. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "connectors/lang.h"
#include "connectors/stream.h"
#include "connectors/warc.h"
#include "engine/groupby.h"
#include "lua/script.h"

/* ---------------------------------------------------------------- helpers */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_fmt(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(buf *b, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    buf_add(b, s, (size_t)n);
    free(s);
}

/* One WARC record: version line, named fields, Content-Length, the block, CRLF CRLF. */
static void add_record(buf *b, const char *version, const char *type, const char *uri,
                       const char *fields, const char *block, size_t block_len)
{
    buf_fmt(b, "%s\r\nWARC-Type: %s\r\n", version, type);
    if (uri) buf_fmt(b, "WARC-Target-URI: %s\r\n", uri);
    buf_fmt(b, "WARC-Date: 2024-01-02T03:04:05Z\r\nWARC-Record-ID: <urn:uuid:%s-%zu>\r\n", type,
            b->len);
    if (fields) buf_str(b, fields);
    buf_fmt(b, "Content-Length: %zu\r\n\r\n", block_len);
    buf_add(b, block, block_len);
    buf_str(b, "\r\n\r\n");
}

static void add_response(buf *b, const char *uri, int status, const char *headers,
                         const char *body)
{
    buf blk = {0};
    buf_fmt(&blk, "HTTP/1.1 %d X\r\n%sContent-Length: %zu\r\n\r\n", status, headers, strlen(body));
    buf_str(&blk, body);
    add_record(b, "WARC/1.0", "response", uri, "Content-Type: application/http; msgtype=response\r\n",
               blk.p, blk.len);
    free(blk.p);
}

/* gzip of p as one member, appended to out. */
static void gz_member(buf *out, const void *p, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, n);
    unsigned char *o = malloc(cap);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = o;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    buf_add(out, o, cap - z.avail_out);
    deflateEnd(&z);
    free(o);
}

/* Splits a plain WARC into its records (at the "WARC/1." lines we wrote) and gzips each
 * as its own member, Common Crawl style. Member offsets go to offs. */
static void gz_per_record(const buf *plain, buf *out, uint64_t *offs, size_t *noffs)
{
    size_t start = 0, n = 0;
    while (start < plain->len) {
        const char *next = memmem(plain->p + start + 1, plain->len - start - 1, "\r\n\r\nWARC/1.", 11);
        size_t end = next ? (size_t)(next - plain->p) + 4 : plain->len;
        if (offs) offs[n] = out->len;
        n++;
        gz_member(out, plain->p + start, end - start);
        start = end;
    }
    if (noffs) *noffs = n;
}

static char tmpdir[64];

static void setup_tmp(void)
{
    strcpy(tmpdir, "/tmp/test_warc.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *write_tmp(const char *name, const buf *b)
{
    static char path[4][128];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, 128, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b->p, 1, b->len, f), b->len);
    fclose(f);
    return p;
}

/* What a test saw: records and bad reports. */
typedef struct seen_rec {
    warc_type type;
    char uri[128];
    int status;
    uint64_t payload_length, offset;
    char *payload;      /* copy of the payload in memory */
    size_t payload_len;
} seen_rec;

typedef struct seen {
    seen_rec rec[64];
    size_t n;
    char reasons[8][256];
    uint64_t bad_offsets[8], bad_numbers[8];
    size_t nbad;
    mr_code bad_answer;
} seen;

static mr_code on_bad(const reader_bad *bad, void *ud, mr_err *e)
{
    seen *s = ud;
    ck_assert_str_eq(bad->file == NULL ? "" : "x", "x");
    if (s->nbad < 8) {
        snprintf(s->reasons[s->nbad], sizeof s->reasons[0], "%s", bad->reason);
        s->bad_offsets[s->nbad] = bad->offset;
        s->bad_numbers[s->nbad] = bad->record;
    }
    s->nbad++;
    if (s->bad_answer != MR_OK) return mr_fail(e, s->bad_answer, "bad-record budget spent");
    return MR_OK;
}

static int read_all(warc_reader *r, seen *s, mr_err *e)
{
    warc_record rec;
    int rc;
    while ((rc = warc_next(r, &rec, e)) == 1) {
        ck_assert_uint_lt(s->n, 64);
        seen_rec *x = &s->rec[s->n++];
        size_t n = 0;
        const char *uri = warc_record_uri(&rec, &n);
        snprintf(x->uri, sizeof x->uri, "%.*s", (int)n, uri ? uri : "");
        x->type = rec.type;
        x->status = rec.status;
        x->payload_length = rec.payload_length;
        x->offset = rec.offset;
        x->payload = malloc(rec.payload_len + 1);
        memcpy(x->payload, rec.payload, rec.payload_len);
        x->payload_len = rec.payload_len;
    }
    return rc;
}

static void seen_free(seen *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->rec[i].payload);
}

static int read_file(const char *path, const warc_opts *o, seen *s, mr_err *e)
{
    warc_reader *r = warc_open(path, o, on_bad, s, e);
    ck_assert_msg(r != NULL, "%s", e->msg);
    int rc = read_all(r, s, e);
    warc_free(r);
    return rc;
}

/* A stream over memory handing out at most `chunk` bytes per read, to hit every buffer
 * boundary the reader has. */
typedef struct mem_src {
    const char *p;
    size_t len, pos, chunk;
} mem_src;

static ssize_t mem_read(void *ctx, void *dst, size_t n, mr_err *e)
{
    mem_src *m = ctx;
    size_t k = m->len - m->pos;
    if (k > n) k = n;
    if (k > m->chunk) k = m->chunk;
    memcpy(dst, m->p + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

static void mem_close(void *ctx) { free(ctx); }

static const stream_ops mem_ops = {mem_read, mem_close};

static warc_reader *open_mem(const buf *b, size_t chunk, seen *s, mr_err *e)
{
    mem_src *m = calloc(1, sizeof *m);
    m->p = b->p;
    m->len = b->len;
    m->chunk = chunk;
    stream *st = stream_create(&mem_ops, m, "mem.warc");
    ck_assert_ptr_nonnull(st);
    warc_reader *r = warc_open_stream(st, "mem.warc", NULL, on_bad, s, e);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* The sample crawl used by several tests: every record type, both versions, HTTP. */
#define SAMPLE_BODY_HTML "<!DOCTYPE html><html lang=\"de-AT\"><body>Hallo Welt</body></html>"
static void sample_warc(buf *b)
{
    const char *info = "software: test\r\nformat: WARC File Format 1.1\r\n";
    add_record(b, "WARC/1.1", "warcinfo", NULL, "Content-Type: application/warc-fields\r\n",
               info, strlen(info));
    const char *req = "GET /a HTTP/1.1\r\nHost: example.org\r\n\r\n";
    add_record(b, "WARC/1.0", "request", "<http://example.org/a>",
               "Content-Type: application/http; msgtype=request\r\n", req, strlen(req));
    add_response(b, "http://example.org/a", 200, "Content-Type: text/html; charset=UTF-8\r\n",
                 SAMPLE_BODY_HTML);
    add_response(b, "http://example.org/missing", 404,
                 "content-type: TEXT/PLAIN\r\nContent-Language: fr-CA\r\n", "not found");
    const char *res = "plain resource bytes";
    add_record(b, "WARC/1.1", "resource", "file:///r.txt", "Content-Type: text/plain\r\n", res,
               strlen(res));
    const char *meta = "{\"a\":1}";
    add_record(b, "WARC/1.0", "metadata", "http://example.org/a",
               "Content-Type: application/json\r\nX-Folded: first\r\n  second\r\n", meta,
               strlen(meta));
    const char *wet = "Der Text der Seite";
    add_record(b, "WARC/1.0", "conversion", "http://example.org/a",
               "Content-Type: text/plain\r\nWARC-Identified-Content-Language: deu,eng\r\n", wet,
               strlen(wet));
    add_record(b, "WARC/1.0", "revisit", "http://example.org/a",
               "WARC-Profile: http://netpreserve.org/warc/1.0/revisit/identical-payload-digest\r\n"
               "Content-Type: application/http; msgtype=response\r\n",
               "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n", 43);
}
#define SAMPLE_N 8

static void check_sample(const seen *s)
{
    static const warc_type types[SAMPLE_N] = {
        WARC_WARCINFO, WARC_REQUEST, WARC_RESPONSE, WARC_RESPONSE, WARC_RESOURCE,
        WARC_METADATA, WARC_CONVERSION, WARC_REVISIT,
    };
    ck_assert_uint_eq(s->n, SAMPLE_N);
    ck_assert_uint_eq(s->nbad, 0);
    for (int i = 0; i < SAMPLE_N; i++) ck_assert_int_eq(s->rec[i].type, types[i]);
    ck_assert_str_eq(s->rec[0].uri, "");
    ck_assert_str_eq(s->rec[1].uri, "http://example.org/a");   /* <> removed */
    ck_assert_int_eq(s->rec[2].status, 200);
    ck_assert_int_eq(s->rec[3].status, 404);
    ck_assert_int_eq(s->rec[1].status, 0);
    ck_assert_uint_eq(s->rec[2].payload_length, strlen(SAMPLE_BODY_HTML));
    ck_assert_uint_eq(s->rec[2].payload_len, strlen(SAMPLE_BODY_HTML));
    ck_assert_mem_eq(s->rec[2].payload, SAMPLE_BODY_HTML, strlen(SAMPLE_BODY_HTML));
    ck_assert_uint_eq(s->rec[3].payload_length, 9);
    ck_assert_uint_eq(s->rec[1].payload_length, 0);
    ck_assert_uint_eq(s->rec[4].payload_length, strlen("plain resource bytes"));
    ck_assert_uint_eq(s->rec[7].payload_length, 0);
}

/* ---------------------------------------------------------------- parse */

START_TEST(test_plain_records)
{
    buf b = {0};
    sample_warc(&b);
    seen s = {0};
    mr_err e = {0};
    ck_assert_int_eq(read_file(write_tmp("s.warc", &b), NULL, &s, &e), 0);
    check_sample(&s);
    /* Offsets of a plain file are where each "WARC/1." line starts. */
    for (size_t i = 0; i < s.n; i++)
        ck_assert_int_eq(memcmp(b.p + s.rec[i].offset, "WARC/1.", 7), 0);
    seen_free(&s);
    free(b.p);
}
END_TEST

START_TEST(test_headers_and_languages)
{
    buf b = {0};
    sample_warc(&b);
    seen s = {0};
    mr_err e = {0};
    warc_reader *r = warc_open(write_tmp("s.warc", &b), NULL, on_bad, &s, &e);
    ck_assert_ptr_nonnull(r);
    warc_record rec;
    char out[LANG_TAG_MAX], mime[64];
    size_t n;
    ck_assert_int_eq(warc_next(r, &rec, &e), 1);   /* warcinfo */
    ck_assert_str_eq(warc_type_name(rec.type), "warcinfo");
    ck_assert_uint_eq(rec.version_len, 8);
    ck_assert_int_eq(memcmp(rec.version, "WARC/1.1", 8), 0);
    ck_assert_int_eq(rec.is_http, 0);
    const char *v = warc_record_header(&rec, "content-type", &n);   /* any case */
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(strncmp(v, "application/warc-fields", n), 0);
    ck_assert_ptr_null(warc_record_header(&rec, "WARC-Target-URI", &n));
    ck_assert_int_eq(warc_next(r, &rec, &e), 1);   /* request */
    ck_assert_int_eq(rec.is_http, 1);
    v = warc_record_http_header(&rec, "host", &n);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(strncmp(v, "example.org", n), 0);
    ck_assert_int_eq(warc_next(r, &rec, &e), 1);   /* response 200 */
    ck_assert_uint_eq(warc_record_mime(&rec, mime, sizeof mime), 9);
    ck_assert_str_eq(mime, "text/html");
    warc_record_language(&rec, out);
    ck_assert_str_eq(out, "de");                   /* from <html lang="de-AT"> */
    v = warc_record_header(&rec, "WARC-RECORD-ID", &n);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(v[0], '<');
    ck_assert_int_eq(warc_next(r, &rec, &e), 1);   /* response 404 */
    warc_record_mime(&rec, mime, sizeof mime);
    ck_assert_str_eq(mime, "text/plain");
    warc_record_language(&rec, out);
    ck_assert_str_eq(out, "fr");                   /* HTTP Content-Language */
    ck_assert_int_eq(warc_next(r, &rec, &e), 1);   /* resource */
    warc_record_mime(&rec, mime, sizeof mime);
    ck_assert_str_eq(mime, "text/plain");
    ck_assert_uint_eq(rec.block_len, strlen("plain resource bytes"));
    warc_record_language(&rec, out);
    ck_assert_str_eq(out, "unknown");
    ck_assert_int_eq(warc_next(r, &rec, &e), 1);   /* metadata with a folded field */
    v = warc_record_header(&rec, "x-folded", &n);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(strncmp(v, "first", 5), 0);
    ck_assert_ptr_nonnull(memmem(v, n, "second", 6));
    ck_assert_int_eq(warc_next(r, &rec, &e), 1);   /* conversion (WET) */
    warc_record_language(&rec, out);
    ck_assert_str_eq(out, "de");                   /* WARC-Identified-Content-Language deu */
    ck_assert_int_eq(warc_next(r, &rec, &e), 1);   /* revisit: headers, no payload */
    ck_assert_int_eq(rec.status, 200);
    ck_assert_uint_eq(rec.payload_len, 0);
    ck_assert_int_eq(warc_next(r, &rec, &e), 0);
    ck_assert_int_eq(warc_next(r, &rec, &e), 0);   /* stays at the end */
    ck_assert_uint_eq(warc_records(r), SAMPLE_N);
    ck_assert_uint_eq(warc_bytes(r), b.len);
    warc_free(r);
    warc_free(NULL);
    free(b.p);
}
END_TEST

START_TEST(test_max_records)
{
    buf b = {0};
    sample_warc(&b);
    seen s = {0};
    mr_err e = {0};
    warc_opts o;
    warc_opts_init(&o);
    o.max_records = 3;
    ck_assert_int_eq(read_file(write_tmp("s.warc", &b), &o, &s, &e), 0);
    ck_assert_uint_eq(s.n, 3);
    seen_free(&s);
    free(b.p);
}
END_TEST

/* ---------------------------------------------------------------- gzip */

START_TEST(test_gzip_member_per_record)
{
    buf plain = {0}, gz = {0};
    uint64_t offs[16];
    size_t noffs;
    sample_warc(&plain);
    gz_per_record(&plain, &gz, offs, &noffs);
    ck_assert_uint_eq(noffs, SAMPLE_N);
    seen s = {0};
    mr_err e = {0};
    /* The name says nothing: gzip is recognised from the bytes. */
    const char *path = write_tmp("crawl.data", &gz);
    warc_reader *r = warc_open(path, NULL, on_bad, &s, &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(read_all(r, &s, &e), 0);
    ck_assert_int_eq(warc_is_gzip(r), 1);
    ck_assert_uint_eq(warc_bytes(r), gz.len);
    warc_free(r);
    check_sample(&s);
    for (size_t i = 0; i < s.n; i++) ck_assert_uint_eq(s.rec[i].offset, offs[i]);
    seen_free(&s);
    free(plain.p);
    free(gz.p);
}
END_TEST

START_TEST(test_gzip_other_member_layouts)
{
    buf plain = {0}, one = {0}, chunks = {0};
    sample_warc(&plain);
    gz_member(&one, plain.p, plain.len);          /* the whole file one member */
    for (size_t at = 0; at < plain.len; at += 97) /* members cutting through records */
        gz_member(&chunks, plain.p + at, plain.len - at < 97 ? plain.len - at : 97);
    seen s1 = {0}, s2 = {0};
    mr_err e = {0};
    ck_assert_int_eq(read_file(write_tmp("one.warc.gz", &one), NULL, &s1, &e), 0);
    check_sample(&s1);
    ck_assert_int_eq(read_file(write_tmp("chunks.warc.gz", &chunks), NULL, &s2, &e), 0);
    check_sample(&s2);
    seen_free(&s1);
    seen_free(&s2);
    free(plain.p);
    free(one.p);
    free(chunks.p);
}
END_TEST

START_TEST(test_small_reads)
{
    buf plain = {0}, gz = {0};
    sample_warc(&plain);
    gz_per_record(&plain, &gz, NULL, NULL);
    static const size_t chunks[] = {1, 7, 4096};
    for (size_t c = 0; c < 3; c++) {
        seen s1 = {0}, s2 = {0};
        mr_err e = {0};
        warc_reader *r = open_mem(&plain, chunks[c], &s1, &e);
        ck_assert_int_eq(read_all(r, &s1, &e), 0);
        warc_free(r);
        check_sample(&s1);
        r = open_mem(&gz, chunks[c], &s2, &e);
        ck_assert_int_eq(read_all(r, &s2, &e), 0);
        warc_free(r);
        check_sample(&s2);
        seen_free(&s1);
        seen_free(&s2);
    }
    free(plain.p);
    free(gz.p);
}
END_TEST

/* Pseudo-random bytes (xorshift) deflate cannot shrink. */
static char *noise(size_t n, uint64_t seed)
{
    char *p = malloc(n);
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (char)(x >> 24);
    }
    return p;
}

START_TEST(test_large_records)
{
    /* 6 MiB of noise: its member is bigger than the raw buffer (4 MiB), so it is streamed
     * through zlib instead of inflated in one call. */
    size_t big = (size_t)6 << 20;
    char *body = noise(big, 42);
    buf plain = {0}, gz = {0};
    add_record(&plain, "WARC/1.0", "resource", "http://x/big", "Content-Type: application/octet-stream\r\n",
               body, big);
    add_record(&plain, "WARC/1.0", "resource", "http://x/after", NULL, "tail", 4);
    gz_per_record(&plain, &gz, NULL, NULL);
    ck_assert_uint_gt(gz.len, (size_t)4 << 20);
    for (int pass = 0; pass < 2; pass++) {
        const buf *in = pass ? &gz : &plain;
        seen s = {0};
        mr_err e = {0};
        ck_assert_int_eq(read_file(write_tmp(pass ? "big.warc.gz" : "big.warc", in), NULL, &s, &e), 0);
        ck_assert_uint_eq(s.n, 2);
        ck_assert_uint_eq(s.rec[0].payload_length, big);
        ck_assert_uint_eq(s.rec[0].payload_len, big);
        ck_assert_int_eq(memcmp(s.rec[0].payload, body, big), 0);
        ck_assert_str_eq(s.rec[1].uri, "http://x/after");
        seen_free(&s);

        /* With a 1 MiB block limit the block is cut, the length still told in full, and
         * the reader carries on with the next record. */
        warc_opts o;
        warc_opts_init(&o);
        o.max_block = (size_t)1 << 20;
        seen t = {0};
        ck_assert_int_eq(read_file(write_tmp("big2", in), &o, &t, &e), 0);
        ck_assert_uint_eq(t.n, 2);
        ck_assert_uint_eq(t.rec[0].payload_len, o.max_block);
        ck_assert_uint_eq(t.rec[0].payload_length, big);
        ck_assert_int_eq(memcmp(t.rec[0].payload, body, o.max_block), 0);
        ck_assert_str_eq(t.rec[1].uri, "http://x/after");
        ck_assert_uint_eq(t.nbad, 0);
        seen_free(&t);
    }
    free(body);
    free(plain.p);
    free(gz.p);
}
END_TEST

/* ---------------------------------------------------------------- bad input */

START_TEST(test_bad_truncated_member)
{
    buf plain = {0}, gz = {0};
    uint64_t offs[16];
    size_t n;
    sample_warc(&plain);
    gz_per_record(&plain, &gz, offs, &n);
    /* Cut the third member (the 200 response) in half, keep everything after it. */
    buf cut = {0};
    size_t third_len = offs[3] - offs[2];
    buf_add(&cut, gz.p, offs[2] + third_len / 2);
    buf_add(&cut, gz.p + offs[3], gz.len - offs[3]);
    seen s = {0};
    mr_err e = {0};
    ck_assert_int_eq(read_file(write_tmp("cut.warc.gz", &cut), NULL, &s, &e), 0);
    ck_assert_uint_eq(s.nbad, 1);
    ck_assert_ptr_nonnull(strstr(s.reasons[0], "gzip member"));
    ck_assert_uint_eq(s.bad_offsets[0], offs[2]);
    ck_assert_uint_eq(s.bad_numbers[0], 3);
    ck_assert_uint_eq(s.n, SAMPLE_N - 1);
    ck_assert_int_eq(s.rec[2].status, 404);        /* resynchronised on the next member */
    ck_assert_int_eq(s.rec[SAMPLE_N - 2].type, WARC_REVISIT);
    seen_free(&s);

    /* The last member cut short: reported as truncated, the rest read. */
    buf tail = {0};
    buf_add(&tail, gz.p, gz.len - 9);
    seen t = {0};
    ck_assert_int_eq(read_file(write_tmp("tail.warc.gz", &tail), NULL, &t, &e), 0);
    ck_assert_uint_eq(t.n, SAMPLE_N - 1);
    ck_assert_uint_eq(t.nbad, 1);
    ck_assert_ptr_nonnull(strstr(t.reasons[0], "truncated gzip member"));
    ck_assert_uint_eq(t.bad_offsets[0], offs[SAMPLE_N - 1]);
    seen_free(&t);
    free(plain.p);
    free(gz.p);
    free(cut.p);
    free(tail.p);
}
END_TEST

START_TEST(test_bad_garbage_between_members)
{
    buf plain = {0}, gz = {0};
    uint64_t offs[16];
    size_t n;
    sample_warc(&plain);
    gz_per_record(&plain, &gz, offs, &n);
    buf mixed = {0};
    buf_add(&mixed, gz.p, offs[4]);
    buf_str(&mixed, "this is not gzip \x1f\x8b garbage");
    buf_add(&mixed, gz.p + offs[4], gz.len - offs[4]);
    seen s = {0};
    mr_err e = {0};
    ck_assert_int_eq(read_file(write_tmp("mixed.warc.gz", &mixed), NULL, &s, &e), 0);
    ck_assert_uint_eq(s.n, SAMPLE_N);
    ck_assert_uint_eq(s.nbad, 1);
    ck_assert_uint_eq(s.bad_offsets[0], offs[4]);
    ck_assert_str_eq(s.rec[4].uri, "file:///r.txt");
    seen_free(&s);
    free(plain.p);
    free(gz.p);
    free(mixed.p);
}
END_TEST

/* Replaces the first occurrence of from with to (same length or not). */
static void buf_replace(buf *b, const char *from, const char *to)
{
    char *at = memmem(b->p, b->len, from, strlen(from));
    ck_assert_ptr_nonnull(at);
    buf out = {0};
    buf_add(&out, b->p, (size_t)(at - b->p));
    buf_str(&out, to);
    size_t rest = (size_t)(at - b->p) + strlen(from);
    buf_add(&out, b->p + rest, b->len - rest);
    free(b->p);
    *b = out;
}

START_TEST(test_bad_headers_and_lengths)
{
    for (int gzip = 0; gzip < 2; gzip++) {
        buf plain = {0};
        sample_warc(&plain);
        /* record 3: a header line without a colon */
        buf_replace(&plain, "Content-Type: application/http; msgtype=response\r\n",
                    "Content-Type application/http\r\n");
        /* record 5 (resource): Content-Length 5 bytes short */
        char cl[64];
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen("plain resource bytes"));
        buf_replace(&plain, cl, "Content-Length: 15\r\n");
        /* the revisit, last: Content-Length far past the end */
        buf_replace(&plain, "Content-Length: 43\r\n", "Content-Length: 4300\r\n");
        buf in = {0};
        if (gzip) gz_per_record(&plain, &in, NULL, NULL);
        else buf_add(&in, plain.p, plain.len);
        seen s = {0};
        mr_err e = {0};
        ck_assert_int_eq(read_file(write_tmp("bad.warc", &in), NULL, &s, &e), 0);
        ck_assert_uint_eq(s.nbad, 3);
        ck_assert_ptr_nonnull(strstr(s.reasons[0], "malformed WARC header line 6"));
        ck_assert_uint_eq(s.bad_numbers[0], 3);
        ck_assert_ptr_nonnull(strstr(s.reasons[1], "Content-Length 15 does not end at a record boundary"));
        ck_assert_uint_eq(s.bad_numbers[1], 5);
        ck_assert_ptr_nonnull(strstr(s.reasons[2], "runs past the end"));
        ck_assert_uint_eq(s.bad_numbers[2], 8);
        ck_assert_uint_eq(s.n, SAMPLE_N - 3);
        ck_assert_int_eq(s.rec[2].status, 404);
        ck_assert_int_eq(s.rec[3].type, WARC_METADATA);
        ck_assert_int_eq(s.rec[4].type, WARC_CONVERSION);
        seen_free(&s);
        free(plain.p);
        free(in.p);
    }
}
END_TEST

START_TEST(test_bad_garbage_plain)
{
    buf b = {0};
    sample_warc(&b);
    buf_replace(&b, "WARC/1.1\r\nWARC-Type: resource", "junk\r\nmore junk\r\nWARC/1.1\r\nWARC-Type: resource");
    buf_str(&b, "trailing");
    seen s = {0};
    mr_err e = {0};
    ck_assert_int_eq(read_file(write_tmp("g.warc", &b), NULL, &s, &e), 0);
    ck_assert_uint_eq(s.n, SAMPLE_N);
    ck_assert_uint_eq(s.nbad, 2);
    ck_assert_ptr_nonnull(strstr(s.reasons[0], "expected a WARC/1.x version line"));
    ck_assert_uint_eq(s.bad_offsets[0], (size_t)((char *)memmem(b.p, b.len, "junk", 4) - b.p));
    ck_assert_uint_eq(s.bad_offsets[1], b.len - strlen("trailing"));
    seen_free(&s);
    free(b.p);
}
END_TEST

START_TEST(test_bad_budget_stops)
{
    buf b = {0};
    sample_warc(&b);
    buf_replace(&b, "WARC-Type: metadata", "WARC-Type metadata");
    seen s = {0};
    s.bad_answer = MR_ELIMIT;
    mr_err e = {0};
    ck_assert_int_eq(read_file(write_tmp("b.warc", &b), NULL, &s, &e), -1);
    ck_assert_int_eq(e.code, MR_ELIMIT);
    ck_assert_uint_eq(s.n, 5);
    seen_free(&s);
    free(b.p);
}
END_TEST

START_TEST(test_open_missing_file)
{
    mr_err e = {0};
    char path[160];
    snprintf(path, sizeof path, "%s/nope.warc.gz", tmpdir);
    ck_assert_ptr_null(warc_open(path, NULL, NULL, NULL, &e));
    ck_assert_int_ne(e.code, MR_OK);
    ck_assert_ptr_nonnull(strstr(e.msg, "nope.warc.gz"));
}
END_TEST

/* ---------------------------------------------------------------- frame */

START_TEST(test_frame_columns_and_types)
{
    buf b = {0};
    sample_warc(&b);
    mr_err e = {0};
    const char *path = write_tmp("f.warc", &b);
    warc_reader *r = warc_open(path, NULL, NULL, NULL, &e);
    frame *f = warc_frame(r, NULL, 0, 0, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), SAMPLE_N);
    ck_assert_uint_eq(frame_ncols(f), WARC_NCOLS);
    frame_col *status = frame_col_by_name(f, "status"), *lang = frame_col_by_name(f, "language");
    ck_assert_ptr_nonnull(status);
    ck_assert_int_eq(status->type, FRAME_I64);
    ck_assert(frame_col_is_null(status, 0));
    ck_assert_int_eq(status->v.i64[2], 200);
    size_t n;
    const char *l = frame_col_str(lang, 2, &n);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(memcmp(l, "de", 2), 0);
    warc_free(r);
    frame_free(f);

    warc_col cols[2];
    ck_assert_int_eq(warc_col_parse("payload_length", &cols[0]), 0);
    ck_assert_int_eq(warc_col_parse("mime", &cols[1]), 0);
    ck_assert_int_eq(warc_col_parse("nope", &cols[1]), -1);
    warc_col_parse("mime", &cols[1]);
    r = warc_open(path, NULL, NULL, NULL, &e);
    f = warc_frame(r, cols, 2, 1u << WARC_RESPONSE, &e);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(frame_nrows(f), 2);
    ck_assert_uint_eq(frame_ncols(f), 2);
    frame_col *pl = frame_col_by_name(f, "payload_length");
    ck_assert_int_eq(pl->v.i64[0], (int64_t)strlen(SAMPLE_BODY_HTML));
    ck_assert_int_eq(pl->v.i64[1], 9);
    frame_col *mime = frame_col_by_name(f, "mime");
    l = frame_col_str(mime, 1, &n);
    ck_assert_int_eq(memcmp(l, "text/plain", n), 0);
    warc_free(r);
    frame_free(f);
    free(b.p);
}
END_TEST

/* ---------------------------------------------------------------- the committed crawl */

static char *crawl_path(int i)
{
    static char p[4][512];
    const char *src = getenv("LUAMR_SOURCE_DIR");
    snprintf(p[i], sizeof p[i], "%s/tests/data/crawl/crawl-%05d.warc.gz", src ? src : ".", i);
    return p[i];
}

/* Independent reading: the whole file through zlib's gzread (multi-member), counting the
 * WARC-Type lines of record headers. */
static void zlib_count_types(const char *path, size_t counts[WARC_OTHER + 1], size_t *total)
{
    gzFile g = gzopen(path, "rb");
    ck_assert_ptr_nonnull(g);
    buf all = {0};
    char chunk[65536];
    int got;
    while ((got = gzread(g, chunk, sizeof chunk)) > 0) buf_add(&all, chunk, (size_t)got);
    gzclose(g);
    const char *p = all.p, *end = all.p + all.len;
    while ((p = memmem(p, (size_t)(end - p), "WARC/1.0\r\n", 10)) != NULL) {
        if (p == all.p || p[-1] == '\n') {
            const char *t = memmem(p, (size_t)(end - p), "\r\nWARC-Type: ", 13);
            ck_assert_ptr_nonnull(t);
            const char *te = memchr(t + 13, '\r', (size_t)(end - t - 13));
            counts[warc_type_parse(t + 13, (size_t)(te - t - 13))]++;
            (*total)++;
        }
        p += 10;
    }
    free(all.p);
}

START_TEST(test_crawl_counts_match_zlib)
{
    for (int i = 0; i < 3; i++) {
        const char *path = crawl_path(i);
        if (access(path, R_OK) != 0) ck_abort_msg("missing %s", path);
        size_t want[WARC_OTHER + 1] = {0}, have[WARC_OTHER + 1] = {0}, total = 0;
        zlib_count_types(path, want, &total);
        ck_assert_uint_gt(total, 50);
        mr_err e = {0};
        seen s = {0};
        warc_reader *r = warc_open(path, NULL, on_bad, &s, &e);
        ck_assert_ptr_nonnull(r);
        warc_record rec;
        int rc;
        FILE *raw = fopen(path, "rb");
        while ((rc = warc_next(r, &rec, &e)) == 1) {
            have[rec.type]++;
            /* Every offset is a gzip member holding exactly this record (random access as
             * with Common Crawl's index). */
            unsigned char head[4096];
            fseek(raw, (long)rec.offset, SEEK_SET);
            size_t nhead = fread(head, 1, sizeof head, raw);
            z_stream z;
            memset(&z, 0, sizeof z);
            inflateInit2(&z, 16 + MAX_WBITS);
            char out[64];
            z.next_in = head;
            z.avail_in = (uInt)nhead;
            z.next_out = (Bytef *)out;
            z.avail_out = sizeof out;
            inflate(&z, Z_SYNC_FLUSH);
            inflateEnd(&z);
            ck_assert_uint_ge(sizeof out - z.avail_out, rec.version_len);
            ck_assert_int_eq(memcmp(out, rec.version, rec.version_len), 0);
        }
        fclose(raw);
        ck_assert_int_eq(rc, 0);
        ck_assert_uint_eq(s.nbad, 0);
        ck_assert_uint_eq(warc_records(r), total);
        for (int t = 0; t <= WARC_OTHER; t++) ck_assert_uint_eq(have[t], want[t]);
        warc_free(r);
    }
}
END_TEST

START_TEST(test_crawl_languages)
{
    /* The crawl is multilingual: at least five languages among the HTML pages. */
    char seen_langs[32][LANG_TAG_MAX];
    size_t nlangs = 0;
    for (int i = 0; i < 3; i++) {
        mr_err e = {0};
        warc_reader *r = warc_open(crawl_path(i), NULL, NULL, NULL, &e);
        ck_assert_ptr_nonnull(r);
        warc_record rec;
        while (warc_next(r, &rec, &e) == 1) {
            char mime[64], lang[LANG_TAG_MAX];
            if (rec.type != WARC_RESPONSE || rec.status != 200) continue;
            warc_record_mime(&rec, mime, sizeof mime);
            if (strcmp(mime, "text/html") != 0) continue;
            warc_record_language(&rec, lang);
            size_t k = 0;
            while (k < nlangs && strcmp(seen_langs[k], lang) != 0) k++;
            if (k == nlangs && nlangs < 32) strcpy(seen_langs[nlangs++], lang);
        }
        warc_free(r);
    }
    ck_assert_uint_ge(nlangs, 6);   /* five languages and "unknown" at least */
}
END_TEST

/* Record by record against webrecorder's warcio (tests/warcio/dump.mjs). */
START_TEST(test_crawl_matches_warcio)
{
    const char *src = getenv("LUAMR_SOURCE_DIR");
    char mods[512], cmd[2048];
    snprintf(mods, sizeof mods, "%s/tests/warcio/node_modules/warcio", src ? src : ".");
    if (access(mods, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_crawl_matches_warcio: skipped (no node or no %s; "
                        "run npm ci in tests/warcio)\n", mods);
        return;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "node '%s/tests/warcio/dump.mjs' '%s'", src ? src : ".", crawl_path(i));
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        mr_err e = {0};
        warc_reader *r = warc_open(crawl_path(i), NULL, NULL, NULL, &e);
        ck_assert_ptr_nonnull(r);
        warc_record rec;
        char *line = NULL;
        size_t cap = 0, nrec = 0;
        while (getline(&line, &cap, p) > 0) {
            ck_assert_int_eq(warc_next(r, &rec, &e), 1);
            nrec++;
            char type[32], uri[1024] = "", status[8] = "";
            unsigned long long plen = 0;
            /* type \t uri \t status \t payload-length \t ... (uri/status may be empty) */
            char *f[4], *save = NULL, *s = line;
            for (int k = 0; k < 4; k++) {
                f[k] = s;
                char *tab = strchr(s, '\t');
                ck_assert_ptr_nonnull(tab);
                *tab = '\0';
                s = tab + 1;
            }
            (void)save;
            snprintf(type, sizeof type, "%s", f[0]);
            snprintf(uri, sizeof uri, "%s", f[1]);
            snprintf(status, sizeof status, "%s", f[2]);
            plen = strtoull(f[3], NULL, 10);
            size_t un = 0;
            const char *u = warc_record_uri(&rec, &un);
            ck_assert_str_eq(warc_type_name(rec.type), type);
            ck_assert_uint_eq(un, strlen(uri));
            if (un) ck_assert_int_eq(memcmp(u, uri, un), 0);
            ck_assert_int_eq(rec.status, status[0] ? atoi(status) : 0);
            ck_assert_uint_eq(rec.payload_length, plen);
        }
        free(line);
        ck_assert_int_eq(pclose(p), 0);
        ck_assert_uint_gt(nrec, 50);
        ck_assert_int_eq(warc_next(r, &rec, &e), 0);
        warc_free(r);
    }
}
END_TEST


/* ---------------------------------------------------------------- Lua (lwarc) */

static script *load_script(const char *path)
{
    mr_err e = {0};
    script *sc = script_create(path, NULL, 0, &e);
    ck_assert_msg(sc != NULL, "%s", e.msg);
    return sc;
}

static void task_init(script_task *t, const char *uri)
{
    memset(t, 0, sizeof *t);
    t->run_id = "test";
    t->kind = "map";
    t->ntasks = 3;
    t->input_uri = uri;
    t->format = "warc";
}

/* Runs the job at path over the three crawl files, map then reduce. */
static frame *run_flagship(const char *path, uint64_t *records_in)
{
    script *sc = load_script(path);
    frame *all = frame_create();
    mr_err e = {0};
    *records_in = 0;
    for (int i = 0; i < 3; i++) {
        script_task t;
        task_init(&t, crawl_path(i));
        t.index = i;
        frame *f = script_run_map(sc, &t, &e);
        ck_assert_msg(f != NULL, "%s", e.msg);
        ck_assert_int_eq(frame_append_frame(all, f, &e), MR_OK);
        *records_in += t.records_in;
        ck_assert_uint_gt(t.bytes_in, 0);
        frame_free(f);
    }
    script_task t;
    task_init(&t, NULL);
    t.kind = "reduce";
    frame *out = script_run_frame_fn(sc, "reduce", all, &t, &e);
    ck_assert_msg(out != NULL, "%s", e.msg);
    frame_free(all);
    script_free(sc);
    return out;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The flagship's answer computed here: pages and sorted lengths per language, and the
 * p90 by the textbook formula on the sorted values. */
START_TEST(test_lua_flagship_matches_direct_computation)
{
    const char *src = getenv("LUAMR_SOURCE_DIR");
    char path[2][512];
    snprintf(path[0], sizeof path[0], "%s/scripts/examples/warc_p90_by_language.lua", src ? src : ".");
    snprintf(path[1], sizeof path[1], "%s/scripts/examples/warc_p90_by_language_records.lua", src ? src : ".");

    char langs[32][LANG_TAG_MAX];
    double *vals[32];
    size_t nvals[32] = {0}, nlangs = 0, total_records = 0;
    for (int i = 0; i < 3; i++) {
        mr_err e = {0};
        warc_reader *r = warc_open(crawl_path(i), NULL, NULL, NULL, &e);
        warc_record rec;
        while (warc_next(r, &rec, &e) == 1) {
            char mime[64], lang[LANG_TAG_MAX];
            total_records++;
            warc_record_mime(&rec, mime, sizeof mime);
            if (rec.type != WARC_RESPONSE || rec.status != 200 || strcmp(mime, "text/html")) continue;
            warc_record_language(&rec, lang);
            size_t k = 0;
            while (k < nlangs && strcmp(langs[k], lang)) k++;
            if (k == nlangs) {
                strcpy(langs[nlangs], lang);
                vals[nlangs++] = malloc(4096 * sizeof(double));
            }
            vals[k][nvals[k]++] = (double)rec.payload_length;
        }
        warc_free(r);
    }
    for (int v = 0; v < 2; v++) {
        uint64_t records_in;
        frame *out = run_flagship(path[v], &records_in);
        ck_assert_uint_eq(records_in, total_records);
        ck_assert_uint_eq(frame_nrows(out), nlangs);
        frame_col *lc = frame_col_by_name(out, "language"), *pc = frame_col_by_name(out, "pages"),
                  *qc = frame_col_by_name(out, "p90");
        ck_assert_ptr_nonnull(lc);
        ck_assert_ptr_nonnull(pc);
        ck_assert_ptr_nonnull(qc);
        for (size_t row = 0; row < nlangs; row++) {
            size_t n;
            const char *l = frame_col_str(lc, row, &n);
            size_t k = 0;
            while (k < nlangs && !(strlen(langs[k]) == n && memcmp(langs[k], l, n) == 0)) k++;
            ck_assert_uint_lt(k, nlangs);
            ck_assert_int_eq((int64_t)frame_col_num(pc, row), (int64_t)nvals[k]);
            double *sorted = malloc(nvals[k] * sizeof(double));
            memcpy(sorted, vals[k], nvals[k] * sizeof(double));
            qsort(sorted, nvals[k], sizeof(double), cmp_double);
            double h = (double)(nvals[k] - 1) * 0.9;
            size_t lo = (size_t)h;
            double want = lo + 1 < nvals[k] ? sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo])
                                            : sorted[lo];
            ck_assert_double_eq_tol(frame_col_num(qc, row), want, 1e-6);
            free(sorted);
        }
        frame_free(out);
    }
    for (size_t k = 0; k < nlangs; k++) free(vals[k]);
}
END_TEST

static frame *run_source(const char *src, const char *uri, mr_err *e)
{
    char path[160];
    snprintf(path, sizeof path, "%s/job.lua", tmpdir);
    FILE *f = fopen(path, "w");
    fputs(src, f);
    fclose(f);
    script *sc = load_script(path);
    script_task t;
    task_init(&t, uri);
    frame *out = script_run_map(sc, &t, e);
    script_free(sc);
    return out;
}

START_TEST(test_lua_record_api)
{
    buf b = {0};
    sample_warc(&b);
    const char *uri = write_tmp("s.warc", &b);
    mr_err e = {0};
    /* One row per record with what the Lua API says; checked against the C reader below. */
    frame *out = run_source(
        "return { map = function(input, ctx)\n"
        "  assert(input.format == 'warc' and input.uri:match('s%.warc$'))\n"
        "  for rec in input:records() do\n"
        "    assert(rec:header('warc-type') == rec.type)\n"
        "    local p = rec:payload()\n"
        "    assert(#p == rec.payload_length, 'payload copy')\n"
        "    assert(rec:payload(3) == p:sub(1, 3))\n"
        "    ctx:emit{ type = rec.type, uri = rec.uri or '', status = rec.status or 0,\n"
        "              mime = rec.mime or '', lang = rec:language(), len = rec.payload_length,\n"
        "              ctype = rec:http_header('content-type') or '',\n"
        "              block = #rec:block(), cl = rec.content_length }\n"
        "  end\n"
        "end }\n", uri, &e);
    ck_assert_msg(out != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(out), SAMPLE_N);
    warc_reader *r = warc_open(uri, NULL, NULL, NULL, &e);
    warc_record rec;
    for (size_t row = 0; warc_next(r, &rec, &e) == 1; row++) {
        size_t n;
        const char *v = frame_col_str(frame_col_by_name(out, "type"), row, &n);
        ck_assert_int_eq(strncmp(v, warc_type_name(rec.type), n), 0);
        ck_assert_int_eq((int)frame_col_num(frame_col_by_name(out, "status"), row), rec.status);
        ck_assert_int_eq((int64_t)frame_col_num(frame_col_by_name(out, "len"), row), (int64_t)rec.payload_length);
        ck_assert_int_eq((int64_t)frame_col_num(frame_col_by_name(out, "block"), row), (int64_t)rec.block_len);
        ck_assert_int_eq((int64_t)frame_col_num(frame_col_by_name(out, "cl"), row), (int64_t)rec.content_length);
        char lang[LANG_TAG_MAX];
        warc_record_language(&rec, lang);
        v = frame_col_str(frame_col_by_name(out, "lang"), row, &n);
        ck_assert_uint_eq(n, strlen(lang));
        ck_assert_int_eq(memcmp(v, lang, n), 0);
    }
    warc_free(r);
    frame_free(out);

    /* Type filters, and frame() with chosen columns. */
    out = run_source(
        "return { map = function(input, ctx)\n"
        "  local n = 0\n"
        "  for rec in input:records{'response', 'revisit'} do n = n + 1 end\n"
        "  assert(n == 3, 'filtered records: ' .. n)\n"
        "  return input:frame{ columns = {'uri', 'status'}, types = 'response' }\n"
        "end }\n", uri, &e);
    ck_assert_msg(out != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(out), 2);
    ck_assert_uint_eq(frame_ncols(out), 2);
    frame_free(out);
    free(b.p);
}
END_TEST

START_TEST(test_lua_misuse_raises)
{
    buf b = {0};
    sample_warc(&b);
    const char *uri = write_tmp("s.warc", &b);
    mr_err e = {0};
    /* A record kept past its loop step raises instead of showing another record. */
    frame *out = run_source(
        "return { map = function(input, ctx)\n"
        "  local first\n"
        "  for rec in input:records() do first = first or rec end\n"
        "  return frame.from_rows{ { u = first.uri } }\n"
        "end }\n", uri, &e);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(e.msg, "used after the loop moved on") != NULL, "%s", e.msg);
    out = run_source("return { map = function(input) return input:frame{ columns = {'nope'} } end }\n",
                     uri, &e);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(e.msg, "unknown WARC column 'nope'") != NULL, "%s", e.msg);
    out = run_source("return { map = function(input) for r in input:records('bogus') do end end }\n",
                     uri, &e);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(e.msg, "unknown WARC record type 'bogus'") != NULL, "%s", e.msg);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.warc.gz", tmpdir);
    out = run_source("return { map = function(input) return input:frame() end }\n", missing, &e);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(e.msg, "missing.warc.gz") != NULL, "%s", e.msg);
    free(b.p);
}
END_TEST

static Suite *warc_suite(void)
{
    Suite *s = suite_create("warc");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup_tmp, teardown_tmp);
    tcase_add_test(tc, test_plain_records);
    tcase_add_test(tc, test_headers_and_languages);
    tcase_add_test(tc, test_max_records);
    tcase_add_test(tc, test_open_missing_file);
    suite_add_tcase(s, tc);
    tc = tcase_create("gzip");
    tcase_add_checked_fixture(tc, setup_tmp, teardown_tmp);
    tcase_add_test(tc, test_gzip_member_per_record);
    tcase_add_test(tc, test_gzip_other_member_layouts);
    tcase_add_test(tc, test_small_reads);
    tcase_add_test(tc, test_large_records);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad");
    tcase_add_checked_fixture(tc, setup_tmp, teardown_tmp);
    tcase_add_test(tc, test_bad_truncated_member);
    tcase_add_test(tc, test_bad_garbage_between_members);
    tcase_add_test(tc, test_bad_headers_and_lengths);
    tcase_add_test(tc, test_bad_garbage_plain);
    tcase_add_test(tc, test_bad_budget_stops);
    suite_add_tcase(s, tc);
    tc = tcase_create("frame");
    tcase_add_checked_fixture(tc, setup_tmp, teardown_tmp);
    tcase_add_test(tc, test_frame_columns_and_types);
    suite_add_tcase(s, tc);
    tc = tcase_create("crawl");
    tcase_add_test(tc, test_crawl_counts_match_zlib);
    tcase_add_test(tc, test_crawl_languages);
    tcase_add_test(tc, test_crawl_matches_warcio);
    suite_add_tcase(s, tc);
    tc = tcase_create("lua");
    tcase_add_checked_fixture(tc, setup_tmp, teardown_tmp);
    tcase_add_test(tc, test_lua_flagship_matches_direct_computation);
    tcase_add_test(tc, test_lua_record_api);
    tcase_add_test(tc, test_lua_misuse_raises);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(warc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
