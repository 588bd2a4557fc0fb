/* Unit tests for connectors/reader: lines, CSV (RFC 4180 corner cases, bad rows), JSON
 * lines, typed frames (inference, promotion, schemas), number parsing, byte-range splits.
 * With LUAMR_BENCH=1 it also times reader_frame on a 20M-row CSV (see bench tcase). */
#define _GNU_SOURCE
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "connectors/reader.h"
#include "connectors/storage.h"
#include "connectors/writer.h"

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/luamr_test_reader_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) { storage_remove(tmpdir, NULL); }

static char *path_in(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static char *write_text(const char *name, const char *text)
{
    char *p = path_in(name);
    write_file(p, text, strlen(text));
    return p;
}

/* Bad records collected by the callback. */
typedef struct bad_log {
    int n;
    uint64_t line[32], offset[32];
    char reason[32][256];
    char field[32][64];
    char raw[32][300];
    int stop_after;   /* > 0: fail with MR_ELIMIT on that many */
} bad_log;

static mr_code on_bad(const reader_bad *b, void *ud, mr_err *e)
{
    bad_log *l = ud;
    if (l->n < 32) {
        l->line[l->n] = b->record;
        l->offset[l->n] = b->offset;
        snprintf(l->reason[l->n], 256, "%s", b->reason);
        snprintf(l->field[l->n], 64, "%s", b->field ? b->field : "");
        ck_assert_uint_le(b->raw_len, 256);
        snprintf(l->raw[l->n], 300, "%.*s", (int)b->raw_len, b->raw);
        ck_assert_ptr_nonnull(strstr(b->file, tmpdir));
    }
    l->n++;
    if (l->stop_after && l->n >= l->stop_after)
        return mr_fail(e, MR_ELIMIT, "too many bad records");
    return MR_OK;
}

static reader *open_csv(const char *path, bad_log *log)
{
    reader_opts o;
    reader_opts_init(&o);
    o.format = READER_CSV;
    mr_err e = {0};
    reader *r = reader_open(path, &o, on_bad, log, &e);
    ck_assert_msg(r != NULL, "open: %s", e.msg);
    return r;
}

static int field_is(const reader_rec *rec, size_t i, const char *s)
{
    return i < rec->nfields && rec->field_lens[i] == strlen(s) &&
           memcmp(rec->fields[i], s, rec->field_lens[i]) == 0;
}

/* ---- tcase: csv records ---- */

START_TEST(test_csv_rfc4180)
{
    const char *text =
        "id,name,note\r\n"
        "1,plain,simple\r\n"
        "2,\"with, comma\",\"say \"\"hi\"\"\"\r\n"
        "\r\n"
        "3,\"multi\nline\r\nfield\",x\n"
        "4,,\"\"\n"
        "5,\"\",last";
    bad_log log = {0};
    reader *r = open_csv(write_text("t.csv", text), &log);
    reader_rec rec;
    mr_err e = {0};
    ck_assert_int_eq(reader_next(r, &rec, &e), 1);
    ck_assert_uint_eq(rec.nfields, 3);
    ck_assert_str_eq(rec.names[1], "name");
    ck_assert(field_is(&rec, 0, "1") && field_is(&rec, 1, "plain") && field_is(&rec, 2, "simple"));
    ck_assert_uint_eq(rec.offset, strlen("id,name,note\r\n"));
    ck_assert_uint_eq(rec.raw_len, strlen("1,plain,simple"));

    ck_assert_int_eq(reader_next(r, &rec, &e), 1);
    ck_assert(field_is(&rec, 1, "with, comma"));
    ck_assert(field_is(&rec, 2, "say \"hi\""));

    ck_assert_int_eq(reader_next(r, &rec, &e), 1);
    ck_assert(field_is(&rec, 0, "3"));
    ck_assert(field_is(&rec, 1, "multi\nline\r\nfield"));
    ck_assert(field_is(&rec, 2, "x"));

    ck_assert_int_eq(reader_next(r, &rec, &e), 1);
    ck_assert(field_is(&rec, 1, "") && field_is(&rec, 2, ""));
    ck_assert_int_eq(reader_next(r, &rec, &e), 1);
    ck_assert(field_is(&rec, 0, "5") && field_is(&rec, 2, "last"));
    ck_assert_uint_eq(rec.number, 5);
    ck_assert_int_eq(reader_next(r, &rec, &e), 0);
    ck_assert_int_eq(log.n, 0);
    ck_assert_uint_eq(reader_records(r), 5);
    ck_assert_uint_eq(reader_bytes(r), strlen(text));
    reader_free(r);
}
END_TEST

START_TEST(test_csv_bad_rows_reported)
{
    /* line numbers are physical lines: the quoted newline on line 3 shifts the rest */
    const char *text =
        "a,b,c,d\n"                /* 1 */
        "1,2,3,4\n"                /* 2 */
        "5,\"x\ny\",7,8\n"         /* 3-4 */
        "1,2,3,4,5\n"              /* 5: too many */
        "\n"                       /* 6 */
        "9,9\n"                    /* 7: too few */
        "1,\"q\"z,3,4\n"           /* 8: junk after a closing quote */
        "10,11,12,13\n";           /* 9 */
    bad_log log = {0};
    reader *r = open_csv(write_text("bad.csv", text), &log);
    reader_rec rec;
    mr_err e = {0};
    int good = 0;
    while (reader_next(r, &rec, &e) == 1) good++;
    ck_assert_int_eq(good, 3);
    ck_assert_int_eq(log.n, 3);
    ck_assert_uint_eq(reader_bad_count(r), 3);
    ck_assert_uint_eq(log.line[0], 5);
    ck_assert_str_eq(log.reason[0], "row has 5 fields, header has 4");
    ck_assert_str_eq(log.raw[0], "1,2,3,4,5");
    ck_assert_uint_eq(log.offset[0], (uint64_t)(strstr(text, "1,2,3,4,5") - text));
    ck_assert_uint_eq(log.line[1], 7);
    ck_assert_str_eq(log.reason[1], "row has 2 fields, header has 4");
    ck_assert_uint_eq(log.line[2], 8);
    ck_assert_ptr_nonnull(strstr(log.reason[2], "closing quote"));
    ck_assert_str_eq(log.field[2], "b");
    reader_free(r);

    /* The callback can stop the reader. */
    bad_log stop = {.stop_after = 2};
    r = open_csv(path_in("bad.csv"), &stop);
    int rc;
    while ((rc = reader_next(r, &rec, &e)) == 1) {
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(e.code, MR_ELIMIT);
    reader_free(r);
}
END_TEST

START_TEST(test_csv_raw_prefix_and_unterminated)
{
    char text[2000];
    strcpy(text, "a,b\n");
    size_t n = strlen(text);
    memset(text + n, 'z', 600);   /* one 600-byte field: a 1-field row */
    n += 600;
    strcpy(text + n, "\n1,\"open quote\n2,3\n");
    bad_log log = {0};
    reader *r = open_csv(write_text("raw.csv", text), &log);
    reader_rec rec;
    mr_err e = {0};
    ck_assert_int_eq(reader_next(r, &rec, &e), 0);
    ck_assert_int_eq(log.n, 2);
    ck_assert_uint_eq(strlen(log.raw[0]), 256);
    ck_assert_uint_eq(log.line[1], 3);
    ck_assert_ptr_nonnull(strstr(log.reason[1], "unterminated"));
    reader_free(r);
}
END_TEST

START_TEST(test_tsv_and_headerless_schema)
{
    reader_opts o;
    reader_opts_init(&o);
    o.format = READER_CSV;
    o.delimiter = '\t';
    o.header = 0;
    const char *names[] = {"k", "v"};
    frame_type types[] = {FRAME_STR, FRAME_I64};
    o.col_names = names;
    o.col_types = types;
    o.ncols = 2;
    mr_err e = {0};
    bad_log log = {0};
    reader *r = reader_open(write_text("t.tsv", "a,1\t10\nb\t20\nc\tx\nd\t\n"), &o, on_bad, &log, &e);
    ck_assert_ptr_nonnull(r);
    frame *f = reader_frame(r, &e);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(frame_nrows(f), 3);
    frame_col *k = frame_col_by_name(f, "k"), *v = frame_col_by_name(f, "v");
    ck_assert_int_eq(v->type, FRAME_I64);
    size_t n;
    ck_assert(memcmp(frame_col_str(k, 0, &n), "a,1", 3) == 0 && n == 3);
    ck_assert_int_eq(v->v.i64[1], 20);
    ck_assert(frame_col_is_null(v, 2));
    ck_assert_int_eq(log.n, 1);
    ck_assert_uint_eq(log.line[0], 3);
    ck_assert_str_eq(log.field[0], "v");
    ck_assert_str_eq(log.reason[0], "field 'v': 'x' is not a valid int64");
    frame_free(f);
    reader_free(r);

    /* records of a headerless file carry no names */
    o.ncols = 0;
    r = reader_open(path_in("t.tsv"), &o, NULL, NULL, &e);
    reader_rec rec;
    ck_assert_int_eq(reader_next(r, &rec, &e), 1);
    ck_assert_ptr_null(rec.names);
    ck_assert_uint_eq(rec.nfields, 2);
    ck_assert(field_is(&rec, 0, "a,1") && field_is(&rec, 1, "10"));
    ck_assert_uint_eq(rec.number, 1);
    ck_assert_uint_eq(rec.offset, 0);
    reader_free(r);
}
END_TEST


/* Quoted multi-line fields and escapes across many 1 MiB windows, one field of 2 MiB. */
START_TEST(test_csv_window_boundaries)
{
    size_t rows = 60000, cap = 16u << 20, len = 0;
    char *text = malloc(cap);
    len += (size_t)sprintf(text + len, "n,body,tail\n");
    for (size_t i = 0; i < rows; i++) {
        if (i == 30000) {
            len += (size_t)sprintf(text + len, "%zu,\"", i);
            memset(text + len, 'B', 2u << 20);
            len += 2u << 20;
            len += (size_t)sprintf(text + len, "\",end\r\n");
        } else if (i % 3 == 0) {
            len += (size_t)sprintf(text + len, "%zu,\"line one %zu\nline \"\"two\"\", ok\",t%zu\r\n", i, i, i);
        } else {
            len += (size_t)sprintf(text + len, "%zu,plain text number %zu,t%zu\n", i, i * 3, i);
        }
    }
    write_file(path_in("w.csv"), text, len);
    bad_log log = {0};
    reader *r = open_csv(path_in("w.csv"), &log);
    reader_rec rec;
    mr_err e = {0};
    size_t i = 0;
    char want[128];
    int rc;
    while ((rc = reader_next(r, &rec, &e)) == 1) {
        ck_assert_uint_eq(rec.nfields, 3);
        ck_assert_int_eq(atoi(rec.fields[0]), (int)i);
        if (i == 30000) {
            ck_assert_uint_eq(rec.field_lens[1], 2u << 20);
            ck_assert(rec.fields[1][0] == 'B' && rec.fields[1][(2u << 20) - 1] == 'B');
        } else if (i % 3 == 0) {
            int k = snprintf(want, sizeof want, "line one %zu\nline \"two\", ok", i);
            ck_assert(rec.field_lens[1] == (size_t)k && memcmp(rec.fields[1], want, (size_t)k) == 0);
        } else {
            int k = snprintf(want, sizeof want, "plain text number %zu", i * 3);
            ck_assert(rec.field_lens[1] == (size_t)k && memcmp(rec.fields[1], want, (size_t)k) == 0);
        }
        int k = i == 30000 ? snprintf(want, sizeof want, "end") : snprintf(want, sizeof want, "t%zu", i);
        ck_assert(rec.field_lens[2] == (size_t)k && memcmp(rec.fields[2], want, (size_t)k) == 0);
        i++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(i, rows);
    ck_assert_int_eq(log.n, 0);
    reader_free(r);

    /* the same bytes as lines: one record per '\n' */
    reader_opts o;
    reader_opts_init(&o);
    r = reader_open(path_in("w.csv"), &o, NULL, NULL, &e);
    size_t lines = 0, nl = 0;
    while (reader_next(r, &rec, &e) == 1) lines++;
    for (size_t k = 0; k < len; k++) nl += text[k] == '\n';
    ck_assert_uint_eq(lines, nl);
    reader_free(r);
    free(text);
}
END_TEST

/* ---- tcase: jsonl and lines ---- */

START_TEST(test_jsonl_records)
{
    const char *text = "{\"a\":1,\"b\":\"x\"}\n"
                       "\n"
                       "{\"a\":2,\"b\":null}\r\n"
                       "[1,2]\n"
                       "{bad json\n"
                       "   \n"
                       "{\"a\":3}";
    reader_opts o;
    reader_opts_init(&o);
    o.format = READER_JSONL;
    bad_log log = {0};
    mr_err e = {0};
    reader *r = reader_open(write_text("t.jsonl", text), &o, on_bad, &log, &e);
    reader_rec rec;
    double sum = 0;
    int n = 0;
    while (reader_next(r, &rec, &e) == 1) {
        sum += cJSON_GetObjectItem(rec.json, "a")->valuedouble;
        n++;
    }
    ck_assert_int_eq(n, 3);
    ck_assert(sum == 6);
    ck_assert_int_eq(log.n, 2);
    ck_assert_uint_eq(log.line[0], 4);
    ck_assert_str_eq(log.reason[0], "line is not a JSON object");
    ck_assert_uint_eq(log.line[1], 5);
    ck_assert_str_eq(log.reason[1], "invalid JSON");
    ck_assert_str_eq(log.raw[1], "{bad json");
    reader_free(r);
}
END_TEST

START_TEST(test_jsonl_frame_types)
{
    const char *text = "{\"i\":1,\"f\":1,\"s\":\"a\",\"b\":true,\"m\":1}\n"
                       "{\"i\":2,\"f\":2.5,\"s\":\"b\",\"b\":false,\"m\":\"two\",\"new\":[1,{\"x\":2}]}\n"
                       "{\"i\":null,\"f\":-3,\"b\":true,\"m\":2.5}\n";
    reader_opts o;
    reader_opts_init(&o);
    o.format = READER_JSONL;
    mr_err e = {0};
    reader *r = reader_open(write_text("f.jsonl", text), &o, NULL, NULL, &e);
    frame *f = reader_frame(r, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), 3);
    ck_assert_uint_eq(frame_ncols(f), 6);
    frame_col *c = frame_col_by_name(f, "i");
    ck_assert_int_eq(c->type, FRAME_I64);
    ck_assert(c->v.i64[1] == 2 && frame_col_is_null(c, 2));
    c = frame_col_by_name(f, "f");
    ck_assert_int_eq(c->type, FRAME_F64);
    ck_assert(c->v.f64[0] == 1.0 && c->v.f64[1] == 2.5 && c->v.f64[2] == -3.0);
    c = frame_col_by_name(f, "b");
    ck_assert_int_eq(c->type, FRAME_BOOL);
    ck_assert(c->v.b[0] == 1 && c->v.b[1] == 0);
    c = frame_col_by_name(f, "s");
    ck_assert(frame_col_is_null(c, 2));
    c = frame_col_by_name(f, "m");
    ck_assert_int_eq(c->type, FRAME_STR);
    size_t n;
    const char *s = frame_col_str(c, 0, &n);
    ck_assert(n == 1 && s[0] == '1');
    s = frame_col_str(c, 2, &n);
    ck_assert(n == 3 && memcmp(s, "2.5", 3) == 0);
    c = frame_col_by_name(f, "new");
    ck_assert(frame_col_is_null(c, 0) && frame_col_is_null(c, 2));
    s = frame_col_str(c, 1, &n);
    ck_assert(n == strlen("[1,{\"x\":2}]") && memcmp(s, "[1,{\"x\":2}]", n) == 0);
    frame_free(f);
    reader_free(r);
}
END_TEST

static size_t gzip_member(const void *data, size_t n, unsigned char *out, size_t cap)
{
    z_stream z = {0};
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

START_TEST(test_lines_gzip_members)
{
    unsigned char gz[1024];
    size_t n = gzip_member("l1\nl2\n", 6, gz, sizeof gz);
    n += gzip_member("l3\r\n\nl5", 7, gz + n, sizeof gz - n);
    char *p = path_in("l.txt.gz");
    write_file(p, gz, n);
    reader_opts o;
    reader_opts_init(&o);
    mr_err e = {0};
    reader *r = reader_open(p, &o, NULL, NULL, &e);
    frame *f = reader_frame(r, &e);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(frame_nrows(f), 5);
    frame_col *c = frame_col_at(f, 0);
    const char *expect[] = {"l1", "l2", "l3", "", "l5"};
    for (int i = 0; i < 5; i++) {
        size_t len;
        const char *s = frame_col_str(c, (size_t)i, &len);
        ck_assert(len == strlen(expect[i]) && memcmp(s, expect[i], len) == 0);
    }
    ck_assert_uint_eq(reader_bytes(r), n);
    frame_free(f);
    reader_free(r);

    /* A truncated gzip CSV surfaces as an error naming the file, not as short data. */
    write_file(path_in("cut.csv.gz"), gz, n - 5);
    o.format = READER_CSV;
    o.header = 0;
    r = reader_open(path_in("cut.csv.gz"), &o, NULL, NULL, &e);
    if (r) {
        f = reader_frame(r, &e);
        ck_assert_ptr_null(f);
        reader_free(r);
    }
    ck_assert_int_eq(e.code, MR_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "cut.csv.gz"));
}
END_TEST

/* ---- tcase: typed frames from csv ---- */

START_TEST(test_csv_frame_types)
{
    const char *text = "i,f,b,s,e,q\n"
                       "1,1.5,true,abc,,\"7\"\n"
                       "-20,2,FALSE,\"x,y\",,\"\"\n"
                       ",-0.25e2,,123abc,,8\n";
    bad_log log = {0};
    reader *r = open_csv(write_text("ty.csv", text), &log);
    mr_err e = {0};
    frame *f = reader_frame(r, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), 3);
    frame_col *c = frame_col_by_name(f, "i");
    ck_assert_int_eq(c->type, FRAME_I64);
    ck_assert(c->v.i64[0] == 1 && c->v.i64[1] == -20 && frame_col_is_null(c, 2));
    c = frame_col_by_name(f, "f");
    ck_assert_int_eq(c->type, FRAME_F64);
    ck_assert(c->v.f64[0] == 1.5 && c->v.f64[1] == 2.0 && c->v.f64[2] == -25.0);
    c = frame_col_by_name(f, "b");
    ck_assert_int_eq(c->type, FRAME_BOOL);
    ck_assert(c->v.b[0] == 1 && c->v.b[1] == 0 && frame_col_is_null(c, 2));
    c = frame_col_by_name(f, "s");
    ck_assert_int_eq(c->type, FRAME_STR);
    size_t n;
    const char *s = frame_col_str(c, 1, &n);
    ck_assert(n == 3 && memcmp(s, "x,y", 3) == 0);
    c = frame_col_by_name(f, "e");   /* never a value: all-null string column */
    ck_assert_int_eq(c->type, FRAME_STR);
    ck_assert(frame_col_is_null(c, 0) && frame_col_is_null(c, 2));
    c = frame_col_by_name(f, "q");   /* quoted numbers are numbers; "" is null there */
    ck_assert_int_eq(c->type, FRAME_I64);
    ck_assert(c->v.i64[0] == 7 && frame_col_is_null(c, 1) && c->v.i64[2] == 8);
    ck_assert_int_eq(log.n, 0);
    frame_free(f);
    reader_free(r);
}
END_TEST

/* Rows past the inference block that need a wider type convert the column in place. */
START_TEST(test_csv_frame_promotion)
{
    size_t rows = 25000, cap = rows * 40 + 64, len = 0;
    char *text = malloc(cap);
    len += (size_t)sprintf(text + len, "a,b,c\n");
    for (size_t i = 0; i < rows; i++) {
        if (i == 15000) len += (size_t)sprintf(text + len, "%zu.5,%zu,word\n", i, i);
        else if (i == 20000) len += (size_t)sprintf(text + len, "%zu,oops,%zu\n", i, i);
        else len += (size_t)sprintf(text + len, "%zu,%zu,%zu\n", i, i, i);
    }
    write_file(path_in("p.csv"), text, len);
    free(text);
    bad_log log = {0};
    reader *r = open_csv(path_in("p.csv"), &log);
    mr_err e = {0};
    frame *f = reader_frame(r, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), rows);
    ck_assert_str_eq(frame_col_at(f, 0)->name, "a");   /* order kept through conversions */
    frame_col *a = frame_col_by_name(f, "a"), *b = frame_col_by_name(f, "b"),
              *c = frame_col_by_name(f, "c");
    ck_assert_int_eq(a->type, FRAME_F64);
    ck_assert_int_eq(b->type, FRAME_STR);
    ck_assert_int_eq(c->type, FRAME_STR);
    for (size_t i = 0; i < rows; i += 997) ck_assert(a->v.f64[i] == (double)i);
    ck_assert(a->v.f64[15000] == 15000.5);
    char buf[32];
    size_t n;
    for (size_t i = 0; i < rows; i += 1013) {
        if (i == 20000) continue;
        const char *s = frame_col_str(b, i, &n);
        int k = snprintf(buf, sizeof buf, "%zu", i);
        ck_assert(n == (size_t)k && memcmp(s, buf, n) == 0);
    }
    const char *s = frame_col_str(b, 20000, &n);
    ck_assert(n == 4 && memcmp(s, "oops", 4) == 0);
    s = frame_col_str(c, 15000, &n);
    ck_assert(n == 4 && memcmp(s, "word", 4) == 0);
    s = frame_col_str(c, 24999, &n);
    ck_assert(n == 5 && memcmp(s, "24999", 5) == 0);
    frame_free(f);
    reader_free(r);
}
END_TEST

START_TEST(test_csv_frame_floats_exact)
{
    /* Every value must equal strtod's correctly rounded result, bit for bit. */
    srand(42);
    size_t rows = 20000, cap = rows * 48, len = 0;
    char *text = malloc(cap);
    len += (size_t)sprintf(text + len, "x\n");
    for (size_t i = 0; i < rows; i++) {
        int kind = rand() % 6;
        long long ip = rand() % 1000000;
        long long fp = ((long long)rand() << 16 | rand()) % 1000000000LL;
        switch (kind) {
        case 0: len += (size_t)sprintf(text + len, "%lld.%09lld\n", ip, fp); break;
        case 1: len += (size_t)sprintf(text + len, "-%lld.%lld\n", ip, fp % 1000); break;
        case 2: len += (size_t)sprintf(text + len, "%.17g\n", (double)rand() / 7.0); break;
        case 3: len += (size_t)sprintf(text + len, "%lld.%09lld%06lld\n", ip, fp, fp % 999999); break;
        case 4: len += (size_t)sprintf(text + len, "%de%d\n", rand() % 1000, rand() % 60 - 30); break;
        default: len += (size_t)sprintf(text + len, "0.%06lld\n", fp % 1000000); break;
        }
    }
    write_file(path_in("fl.csv"), text, len);
    reader *r = open_csv(path_in("fl.csv"), NULL);
    mr_err e = {0};
    frame *f = reader_frame(r, &e);
    ck_assert_ptr_nonnull(f);
    frame_col *c = frame_col_at(f, 0);
    ck_assert_int_eq(c->type, FRAME_F64);
    ck_assert_uint_eq(c->len, rows);
    char *p = strchr(text, '\n') + 1;
    for (size_t i = 0; i < rows; i++) {
        char *end;
        double want = strtod(p, &end);
        ck_assert_msg(memcmp(&want, &c->v.f64[i], sizeof want) == 0, "row %zu: '%.*s' -> %.17g, want %.17g",
                      i, (int)(end - p), p, c->v.f64[i], want);
        p = end + 1;
    }
    free(text);
    frame_free(f);
    reader_free(r);
}
END_TEST

START_TEST(test_csv_frame_int_limits_and_schema_errors)
{
    const char *text = "n,t\n"
                       "9223372036854775807,1\n"
                       "-9223372036854775808,2\n"
                       "9223372036854775808,3\n"
                       "12,zz\n";
    reader_opts o;
    reader_opts_init(&o);
    o.format = READER_CSV;
    const char *names[] = {"t", "n"};
    frame_type types[] = {FRAME_I64, FRAME_I64};
    o.col_names = names;
    o.col_types = types;
    o.ncols = 2;
    bad_log log = {0};
    mr_err e = {0};
    reader *r = reader_open(write_text("lim.csv", text), &o, on_bad, &log, &e);
    frame *f = reader_frame(r, &e);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(frame_nrows(f), 2);
    frame_col *n = frame_col_by_name(f, "n");
    ck_assert(n->v.i64[0] == INT64_MAX && n->v.i64[1] == INT64_MIN);
    ck_assert_int_eq(log.n, 2);
    ck_assert_uint_eq(log.line[0], 4);
    ck_assert_str_eq(log.field[0], "n");
    ck_assert_uint_eq(log.line[1], 5);
    ck_assert_str_eq(log.field[1], "t");
    frame_free(f);
    reader_free(r);

    /* Without a schema the too-large integer makes the column float64. */
    r = open_csv(path_in("lim.csv"), NULL);
    o.ncols = 0;
    f = reader_frame(r, &e);
    ck_assert_int_eq(frame_col_by_name(f, "n")->type, FRAME_F64);
    ck_assert_int_eq(frame_col_by_name(f, "t")->type, FRAME_STR);
    frame_free(f);
    reader_free(r);

    /* A schema column missing from the header is a configuration error. */
    const char *bad_names[] = {"nope"};
    o.col_names = bad_names;
    o.ncols = 1;
    r = reader_open(path_in("lim.csv"), &o, NULL, NULL, &e);
    f = r ? reader_frame(r, &e) : NULL;
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(e.msg, "nope"));
    reader_free(r);
}
END_TEST

START_TEST(test_max_records)
{
    const char *text = "a\n1\n2\n3\n4\n5\n";
    reader_opts o;
    reader_opts_init(&o);
    o.format = READER_CSV;
    o.max_records = 3;
    mr_err e = {0};
    reader *r = reader_open(write_text("m.csv", text), &o, NULL, NULL, &e);
    frame *f = reader_frame(r, &e);
    ck_assert_uint_eq(frame_nrows(f), 3);
    ck_assert_int_eq(frame_col_at(f, 0)->v.i64[2], 3);
    frame_free(f);
    reader_free(r);
    o.format = READER_LINES;
    r = reader_open(path_in("m.csv"), &o, NULL, NULL, &e);
    reader_rec rec;
    int n = 0;
    while (reader_next(r, &rec, &e) == 1) n++;
    ck_assert_int_eq(n, 3);
    reader_free(r);
}
END_TEST

/* ---- tcase: byte-range splits ---- */

/* Reads [start, end) of path and appends the first field of each record to out. */
static void read_split(const char *path, reader_format fmt, uint64_t start, uint64_t end, char *out)
{
    reader_opts o;
    reader_opts_init(&o);
    o.format = fmt;
    o.range_start = start;
    o.range_end = end;
    mr_err e = {0};
    reader *r = reader_open(path, &o, NULL, NULL, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    reader_rec rec;
    while (reader_next(r, &rec, &e) == 1) {
        size_t n = strlen(out);
        if (fmt == READER_CSV)
            snprintf(out + n, 64, "%.*s|", (int)rec.field_lens[0], rec.fields[0]);
        else
            snprintf(out + n, 64, "%.*s|", (int)(rec.raw_len < 20 ? rec.raw_len : 20), rec.raw);
    }
    reader_free(r);
}

START_TEST(test_splits_cover_each_record_once)
{
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    len += (size_t)sprintf(text + len, "id,txt,n\n");
    for (int i = 0; i < 300; i++) {
        if (i % 7 == 3)
            len += (size_t)sprintf(text + len, "r%d,\"two\nlines, \"\"q\"\"\",%d\n", i, i);
        else
            len += (size_t)sprintf(text + len, "r%d,plain %d,%d\n", i, i * 31, i);
    }
    write_file(path_in("s.csv"), text, len);
    write_file(path_in("s.txt"), text, len);
    static char whole[1 << 16], parts[1 << 16];
    whole[0] = '\0';
    read_split(path_in("s.csv"), READER_CSV, 0, 0, whole);
    reader_format fmts[] = {READER_CSV, READER_LINES};
    const char *files[] = {"s.csv", "s.txt"};
    for (int k = 0; k < 2; k++) {
        if (k == 1) {
            whole[0] = '\0';
            read_split(path_in(files[k]), READER_LINES, 0, 0, whole);
        }
        /* several split sizes, including boundaries inside quoted fields */
        uint64_t sizes[] = {1, 37, 100, 257, 1000, 4096};
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            parts[0] = '\0';
            for (uint64_t s = 0; s < len; s += sizes[si])
                read_split(path_in(files[k]), fmts[k], s, s + sizes[si] < len ? s + sizes[si] : 0, parts);
            ck_assert_msg(strcmp(whole, parts) == 0, "format %d split %llu differs", k,
                          (unsigned long long)sizes[si]);
        }
    }
    free(text);
}
END_TEST

/* Dense random quoting: quoted commas, "" escapes, newlines and CRLF inside quotes,
 * empty lines; every split size from 1 to 40 bytes must reproduce the whole-file read. */
START_TEST(test_splits_random_quoting)
{
    srand(1234);
    static char whole[1 << 15], parts[1 << 15];
    /* ~40,000 reader opens in all; under ASan each costs milliseconds (fresh 1 MiB buffers
     * through the quarantine), so the sanitizer suite tries fewer random files */
    int files = getenv("LUAMR_SANITIZED") ? 8 : 30;
    for (int it = 0; it < files; it++) {
        char buf[4096];
        size_t n = (size_t)sprintf(buf, "a,b,c\n");
        for (int i = 0, rows = rand() % 40; i < rows; i++) {
            for (int c = 0; c < 3; c++) {
                if (c) buf[n++] = ',';
                int q = rand() % 3 == 0;
                if (q) buf[n++] = '"';
                for (int k = 0, len = rand() % 8; k < len; k++) {
                    int x = rand() % 10;
                    if (q && x == 0) buf[n++] = '"', buf[n++] = '"';
                    else if (q && x == 1) buf[n++] = ',';
                    else if (q && x == 2) buf[n++] = '\n';
                    else buf[n++] = (char)('a' + x);
                }
                if (q) buf[n++] = '"';
            }
            if (rand() % 5 == 0) buf[n++] = '\r';
            buf[n++] = '\n';
            if (rand() % 10 == 0) buf[n++] = '\n';
        }
        write_file(path_in("rq.csv"), buf, n);
        whole[0] = '\0';
        read_split(path_in("rq.csv"), READER_CSV, 0, 0, whole);
        for (uint64_t step = 1; step <= 40; step += 3) {
            parts[0] = '\0';
            for (uint64_t s = 0; s < n; s += step)
                read_split(path_in("rq.csv"), READER_CSV, s, s + step < n ? s + step : 0, parts);
            ck_assert_msg(strcmp(whole, parts) == 0, "file %d, split %llu:\n%s\n%s", it,
                          (unsigned long long)step, whole, parts);
        }
    }
}
END_TEST

/* ---- tcase: batches (reader_frame_batch) and the frame byte cap ---- */

/* A growing text buffer. */
typedef struct tbuf {
    char *p;
    size_t len, cap;
} tbuf;

static void tb_printf(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        ck_assert_int_ge(n, 0);
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap ? b->cap * 2 : 1 << 16;
        while (b->cap - b->len <= (size_t)n) b->cap *= 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
}

/* An assertion for loops (ck_assert costs a system call per passing check). */
#define EXPECT(cond, ...)                       \
    do {                                        \
        if (!(cond)) ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* rows of CSV with a header: id int, name string (plain, or quoted with commas, newlines,
 * CRLF and "" escapes), qty int (empty, i.e. null, every 13th row), price float (always a
 * fraction), flag bool, pad string of 0..400 bytes (so the file passes the reader's 1 MiB
 * window). Every column that holds a value infers to the same type in any batch. */
static char *write_batch_csv(const char *name, int rows, size_t *len_out)
{
    tbuf b = {0};
    tb_printf(&b, "id,name,qty,price,flag,pad\n");
    for (int i = 0; i < rows; i++) {
        tb_printf(&b, "%d,", i);
        switch (i % 6) {
        case 0: tb_printf(&b, "\"n%d, with comma\",", i); break;
        case 1: tb_printf(&b, "\"two\nlines %d\",", i); break;
        case 2: tb_printf(&b, "\"say \"\"hi\"\" %d\",", i); break;
        case 3: tb_printf(&b, "\"crlf\r\ninside %d\",", i); break;
        default: tb_printf(&b, "plain%d,", i); break;
        }
        if (i % 13 == 5) tb_printf(&b, ",");
        else tb_printf(&b, "%d,", (i * 7919) % 100000 - 50000);
        tb_printf(&b, "%d.%02d,%s,", i % 1000, 1 + i % 99, (i * 31) % 3 ? "true" : "false");
        tb_printf(&b, "%.*s\n", (int)((size_t)i * 2654435761u % 401),
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    char *p = path_in(name);
    write_file(p, b.p, b.len);
    if (len_out) *len_out = b.len;
    free(b.p);
    return p;
}

static reader *open_fmt(const char *path, reader_format fmt, uint64_t start, uint64_t end)
{
    reader_opts o;
    reader_opts_init(&o);
    o.format = fmt;
    o.range_start = start;
    o.range_end = end;
    mr_err e = {0};
    reader *r = reader_open(path, &o, NULL, NULL, &e);
    ck_assert_msg(r != NULL, "open %s: %s", path, e.msg);
    return r;
}

static frame *whole_frame(const char *path, reader_format fmt, uint64_t start, uint64_t end)
{
    reader *r = open_fmt(path, fmt, start, end);
    mr_err e = {0};
    frame *f = reader_frame(r, &e);
    ck_assert_msg(f != NULL, "reader_frame %s: %s", path, e.msg);
    reader_free(r);
    return f;
}

static int rcell_eq(const frame_col *a, size_t i, const frame_col *b, size_t j)
{
    if (frame_col_is_null(a, i) || frame_col_is_null(b, j))
        return frame_col_is_null(a, i) && frame_col_is_null(b, j);
    if (a->type != b->type) return 0;
    switch (a->type) {
    case FRAME_I64: return a->v.i64[i] == b->v.i64[j];
    case FRAME_F64: return a->v.f64[i] == b->v.f64[j];
    case FRAME_BOOL: return a->v.b[i] == b->v.b[j];
    case FRAME_STR: {
        size_t m, n;
        const char *p = frame_col_str(a, i, &m), *q = frame_col_str(b, j, &n);
        return m == n && (m == 0 || memcmp(p, q, m) == 0);
    }
    }
    return 0;
}

static int col_any_value(const frame_col *c)
{
    for (size_t i = 0; i < c->len; i++)
        if (!frame_col_is_null(c, i)) return 1;
    return 0;
}

/* Batch rows [0, n) are whole rows [off, off + n): every column of the whole frame (one
 * the batch lacks, or holds only nulls in, may differ in type; its cells must be null),
 * and the batch has no column the whole frame lacks. */
static void expect_batch_is_slice(const frame *batch, const frame *whole, size_t off,
                                  const char *what)
{
    size_t n = frame_nrows(batch);
    ck_assert_uint_le(off + n, frame_nrows(whole));
    for (size_t c = 0; c < frame_ncols(batch); c++)
        ck_assert_msg(frame_col_by_name(whole, frame_col_at(batch, c)->name), "%s: extra column '%s'",
                      what, frame_col_at(batch, c)->name);
    for (size_t c = 0; c < frame_ncols(whole); c++) {
        const frame_col *w = frame_col_at(whole, c), *bc = frame_col_by_name(batch, w->name);
        if (bc && col_any_value(bc))
            EXPECT(bc->type == w->type, "%s: batch at row %zu: column '%s' is %s, whole %s", what,
                   off, w->name, frame_type_name(bc->type), frame_type_name(w->type));
        for (size_t i = 0; i < n; i++) {
            if (!bc) {
                EXPECT(frame_col_is_null(w, off + i), "%s: row %zu: column '%s' is missing", what,
                       off + i, w->name);
                continue;
            }
            EXPECT(rcell_eq(bc, i, w, off + i), "%s: row %zu (batch row %zu), column '%s' differs",
                   what, off + i, i, w->name);
        }
    }
}

/* Reads r to its end in batches of `batch` rows and checks them against whole: each is
 * full but the last, together they are whole, then a frame without rows (twice). */
static void expect_batches(reader *r, size_t batch, const frame *whole, const char *what)
{
    mr_err e = {0};
    size_t off = 0, total = frame_nrows(whole);
    char label[160];
    for (;;) {
        frame *b = reader_frame_batch(r, batch, 0, &e);
        ck_assert_msg(b != NULL, "%s: reader_frame_batch: %s", what, e.msg);
        size_t n = frame_nrows(b);
        size_t want = total - off < batch ? total - off : batch;
        ck_assert_msg(n == want, "%s, batch %zu: %zu rows at row %zu, expected %zu", what, batch, n,
                      off, want);
        if (n == 0) {
            frame_free(b);
            break;
        }
        snprintf(label, sizeof label, "%s, batch %zu", what, batch);
        expect_batch_is_slice(b, whole, off, label);
        off += n;
        frame_free(b);
        ck_assert_uint_eq(reader_records(r), off);
    }
    ck_assert_uint_eq(off, total);
    ck_assert_uint_eq(reader_records(r), total);
    frame *again = reader_frame_batch(r, batch, 0, &e);
    ck_assert_ptr_nonnull(again);
    ck_assert_uint_eq(frame_nrows(again), 0);
    frame_free(again);
    ck_assert_uint_eq(reader_records(r), total);
}

START_TEST(test_batches_csv)
{
    size_t len;
    const char *path = write_batch_csv("b.csv", 5000, &len);
    ck_assert_uint_gt(len, 1 << 20);   /* crosses the 1 MiB window */
    frame *whole = whole_frame(path, READER_CSV, 0, 0);
    ck_assert_uint_eq(frame_nrows(whole), 5000);
    const char *names[] = {"id", "name", "qty", "price", "flag", "pad"};
    const frame_type types[] = {FRAME_I64, FRAME_STR, FRAME_I64, FRAME_F64, FRAME_BOOL, FRAME_STR};
    ck_assert_uint_eq(frame_ncols(whole), 6);
    for (int c = 0; c < 6; c++) {
        ck_assert_str_eq(frame_col_at(whole, (size_t)c)->name, names[c]);
        ck_assert_int_eq(frame_col_at(whole, (size_t)c)->type, types[c]);
    }
    size_t n;
    const char *s = frame_col_str(frame_col_by_name(whole, "name"), 1, &n);
    ck_assert(n == strlen("two\nlines 1") && memcmp(s, "two\nlines 1", n) == 0);
    s = frame_col_str(frame_col_by_name(whole, "name"), 2, &n);
    ck_assert(n == strlen("say \"hi\" 2") && memcmp(s, "say \"hi\" 2", n) == 0);
    ck_assert(frame_col_is_null(frame_col_by_name(whole, "qty"), 5));
    const size_t sizes[] = {7, 1000, 1, 4999, 5000, 6000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        reader *r = open_fmt(path, READER_CSV, 0, 0);
        expect_batches(r, sizes[k], whole, "csv");
        reader_free(r);
    }
    /* batches, then reader_frame for the rest */
    reader *r = open_fmt(path, READER_CSV, 0, 0);
    mr_err e = {0};
    frame *first = reader_frame_batch(r, 10, 0, &e);
    ck_assert_uint_eq(frame_nrows(first), 10);
    expect_batch_is_slice(first, whole, 0, "csv head");
    frame *rest = reader_frame(r, &e);
    ck_assert_msg(rest != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(rest), 4990);
    expect_batch_is_slice(rest, whole, 10, "csv rest");
    ck_assert_uint_eq(reader_records(r), 5000);
    frame_free(first);
    frame_free(rest);
    reader_free(r);
    frame_free(whole);
}
END_TEST

/* Headerless CSV names its columns c1..cN in every batch. */
START_TEST(test_batches_csv_headerless)
{
    tbuf b = {0};
    for (int i = 0; i < 500; i++) tb_printf(&b, "%d,\"v,%d\",%d.5\n", i, i, i);
    write_file(path_in("h.csv"), b.p, b.len);
    free(b.p);
    reader_opts o;
    reader_opts_init(&o);
    o.format = READER_CSV;
    o.header = 0;
    mr_err e = {0};
    reader *r = reader_open(path_in("h.csv"), &o, NULL, NULL, &e);
    frame *whole = reader_frame(r, &e);
    reader_free(r);
    ck_assert_uint_eq(frame_nrows(whole), 500);
    ck_assert_str_eq(frame_col_at(whole, 0)->name, "c1");
    r = reader_open(path_in("h.csv"), &o, NULL, NULL, &e);
    expect_batches(r, 7, whole, "headerless csv");
    reader_free(r);
    frame_free(whole);
}
END_TEST

START_TEST(test_batches_jsonl_and_lines)
{
    tbuf b = {0};
    for (int i = 0; i < 2000; i++) {
        if (i == 700) tb_printf(&b, "{not json\n");   /* a bad record, in both reads */
        if (i % 50 == 3) tb_printf(&b, "\n");          /* blank lines are skipped */
        tb_printf(&b, "{\"id\":%d,\"s\":\"str %d, \\\"q\\\"\",\"f\":%d.25,\"b\":%s", i, i, i - 1000,
                  i % 3 ? "true" : "false");
        if (i % 4 == 0) tb_printf(&b, ",\"opt\":%d", i * 3);          /* sometimes absent */
        if (i % 9 == 0) tb_printf(&b, ",\"nest\":{\"a\":[%d,2]}", i);  /* JSON text */
        tb_printf(&b, "}\n");
    }
    write_file(path_in("b.jsonl"), b.p, b.len);
    write_file(path_in("b.txt"), b.p, b.len);
    free(b.p);

    frame *whole = whole_frame(path_in("b.jsonl"), READER_JSONL, 0, 0);
    ck_assert_uint_eq(frame_nrows(whole), 2000);
    ck_assert_int_eq(frame_col_by_name(whole, "id")->type, FRAME_I64);
    ck_assert_int_eq(frame_col_by_name(whole, "f")->type, FRAME_F64);
    ck_assert_int_eq(frame_col_by_name(whole, "b")->type, FRAME_BOOL);
    ck_assert_int_eq(frame_col_by_name(whole, "opt")->type, FRAME_I64);
    ck_assert_int_eq(frame_col_by_name(whole, "nest")->type, FRAME_STR);
    const size_t sizes[] = {3, 1, 1000};
    for (size_t k = 0; k < 3; k++) {
        bad_log log = {0};
        reader_opts o;
        reader_opts_init(&o);
        o.format = READER_JSONL;
        mr_err e = {0};
        reader *r = reader_open(path_in("b.jsonl"), &o, on_bad, &log, &e);
        expect_batches(r, sizes[k], whole, "jsonl");
        ck_assert_int_eq(log.n, 1);
        ck_assert_uint_eq(reader_bad_count(r), 1);
        reader_free(r);
    }
    frame_free(whole);

    whole = whole_frame(path_in("b.txt"), READER_LINES, 0, 0);
    ck_assert_uint_eq(frame_nrows(whole), 2000 + 1 + 40);   /* the bad and blank lines too */
    for (size_t k = 0; k < 3; k++) {
        reader *r = open_fmt(path_in("b.txt"), READER_LINES, 0, 0);
        expect_batches(r, sizes[k], whole, "lines");
        reader_free(r);
    }
    frame_free(whole);
}
END_TEST

/* max_records caps the batches too. */
START_TEST(test_batches_max_records)
{
    tbuf b = {0};
    tb_printf(&b, "a\n");
    for (int i = 0; i < 100; i++) tb_printf(&b, "%d\n", i);
    write_file(path_in("m.csv"), b.p, b.len);
    free(b.p);
    const reader_format fmts[] = {READER_CSV, READER_LINES};
    for (int k = 0; k < 2; k++) {
        reader_opts o;
        reader_opts_init(&o);
        o.format = fmts[k];
        o.max_records = 25;
        mr_err e = {0};
        reader *r = reader_open(path_in("m.csv"), &o, NULL, NULL, &e);
        const size_t want[] = {10, 10, 5, 0};
        for (int i = 0; i < 4; i++) {
            frame *f = reader_frame_batch(r, 10, 0, &e);
            ck_assert_msg(f != NULL, "%s", e.msg);
            ck_assert_msg(frame_nrows(f) == want[i], "format %d, batch %d: %zu rows", k, i,
                          frame_nrows(f));
            frame_free(f);
        }
        ck_assert_uint_eq(reader_records(r), 25);
        reader_free(r);
    }
}
END_TEST

/* A byte cap (checked every 4096 rows) ends each batch at 4096 rows when it is tiny. */
static void expect_capped_sizes(const char *path, reader_format fmt, const frame_type *types,
                                size_t ntypes, const char *what)
{
    reader_opts o;
    reader_opts_init(&o);
    o.format = fmt;
    const char *names[] = {"id", "name", "v"};
    if (types) {
        o.col_names = names;
        o.col_types = types;
        o.ncols = ntypes;
    }
    mr_err e = {0};
    reader *r = reader_open(path, &o, NULL, NULL, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    const size_t want[] = {4096, 4096, 1808, 0};
    int64_t next_id = 0;
    for (int i = 0; i < 4; i++) {
        frame *f = reader_frame_batch(r, 1000000, 1, &e);
        ck_assert_msg(f != NULL, "%s: %s", what, e.msg);
        ck_assert_msg(frame_nrows(f) == want[i], "%s: batch %d has %zu rows, expected %zu", what,
                      i, frame_nrows(f), want[i]);
        if (fmt != READER_LINES && frame_nrows(f)) {
            const frame_col *id = frame_col_by_name(f, "id");
            ck_assert_int_eq(id->type, FRAME_I64);
            for (size_t j = 0; j < frame_nrows(f); j++, next_id++)
                EXPECT(id->v.i64[j] == next_id, "%s: batch %d row %zu: id %lld", what, i, j,
                       (long long)id->v.i64[j]);
        }
        frame_free(f);
    }
    ck_assert_uint_eq(reader_records(r), 10000);
    reader_free(r);
    /* without a cap: one batch of all rows */
    r = reader_open(path, &o, NULL, NULL, &e);
    frame *f = reader_frame_batch(r, 1000000, 0, &e);
    ck_assert_uint_eq(frame_nrows(f), 10000);
    frame_free(f);
    reader_free(r);
}

START_TEST(test_batch_byte_cap)
{
    tbuf c = {0}, j = {0};
    tb_printf(&c, "id,name,v\n");
    for (int i = 0; i < 10000; i++) {
        tb_printf(&c, "%d,name %d,%d\n", i, i, i * 3);
        tb_printf(&j, "{\"id\":%d,\"name\":\"name %d\",\"v\":%d}\n", i, i, i * 3);
    }
    write_file(path_in("cap.csv"), c.p, c.len);
    write_file(path_in("cap.jsonl"), j.p, j.len);
    write_file(path_in("cap.txt"), j.p, j.len);
    free(c.p);
    free(j.p);
    expect_capped_sizes(path_in("cap.txt"), READER_LINES, NULL, 0, "lines");
    expect_capped_sizes(path_in("cap.jsonl"), READER_JSONL, NULL, 0, "jsonl");
    const frame_type types[] = {FRAME_I64, FRAME_STR, FRAME_I64};
    expect_capped_sizes(path_in("cap.csv"), READER_CSV, types, 3, "csv with a schema");
}
END_TEST

/* The same with CSV whose types are inferred: the rows staged for inference must not
 * escape the cap. */
START_TEST(test_batch_byte_cap_csv_inferred)
{
    tbuf c = {0};
    tb_printf(&c, "id,name,v\n");
    for (int i = 0; i < 10000; i++) tb_printf(&c, "%d,name %d,%d\n", i, i, i * 3);
    write_file(path_in("capi.csv"), c.p, c.len);
    free(c.p);
    expect_capped_sizes(path_in("capi.csv"), READER_CSV, NULL, 0, "csv, inferred types");
}
END_TEST

/* A byte-range split read in batches is the split read whole. */
START_TEST(test_batches_in_splits)
{
    size_t len;
    const char *path = write_batch_csv("sp.csv", 3000, &len);
    {   /* the same bytes as lines */
        FILE *in = fopen(path, "rb");
        ck_assert_ptr_nonnull(in);
        char *buf = malloc(len);
        ck_assert_uint_eq(fread(buf, 1, len, in), len);
        fclose(in);
        write_file(path_in("sp.txt"), buf, len);
        free(buf);
    }
    const reader_format fmts[] = {READER_CSV, READER_LINES};
    const char *paths[] = {path, path_in("sp.txt")};
    const uint64_t nsplits[] = {3, 7};
    for (int k = 0; k < 2; k++) {
        for (size_t ns = 0; ns < 2; ns++) {
            uint64_t step = len / nsplits[ns] + 1, rows = 0;
            for (uint64_t s = 0; s < len; s += step) {
                uint64_t end = s + step < len ? s + step : 0;
                frame *whole = whole_frame(paths[k], fmts[k], s, end);
                rows += frame_nrows(whole);
                const size_t sizes[] = {7, 1000};
                for (int b = 0; b < 2; b++) {
                    reader *r = open_fmt(paths[k], fmts[k], s, end);
                    expect_batches(r, sizes[b], whole, k ? "lines split" : "csv split");
                    reader_free(r);
                }
                frame_free(whole);
            }
            if (k == 0) ck_assert_uint_eq(rows, 3000);   /* the splits cover the file once */
        }
    }
}
END_TEST

/* reader_opts.max_frame_bytes: reader_frame fails once its frame passes the cap. */
static void expect_frame_cap(const char *path, reader_format fmt, const char *what)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_ge(st.st_size, 1000000);
    reader_opts o;
    reader_opts_init(&o);
    o.format = fmt;
    o.max_frame_bytes = 64 << 10;
    mr_err e = {0};
    reader *r = reader_open(path, &o, NULL, NULL, &e);
    ck_assert_ptr_nonnull(r);
    frame *f = reader_frame(r, &e);
    ck_assert_msg(f == NULL, "%s: a frame of %zu rows, %zu bytes, came back under a 64 KiB cap",
                  what, f ? frame_nrows(f) : 0, f ? frame_mem_bytes(f) : 0);
    ck_assert_int_eq(e.code, MR_ELIMIT);
    ck_assert_msg(strstr(e.msg, path) != NULL, "%s: message does not name the file: %s", what,
                  e.msg);
    reader_free(r);
    o.max_frame_bytes = 0;
    mr_err_clear(&e);
    r = reader_open(path, &o, NULL, NULL, &e);
    f = reader_frame(r, &e);
    ck_assert_msg(f != NULL, "%s: %s", what, e.msg);
    ck_assert_uint_gt(frame_mem_bytes(f), 64 << 10);
    frame_free(f);
    reader_free(r);
}

START_TEST(test_max_frame_bytes)
{
    tbuf c = {0}, j = {0};
    tb_printf(&c, "id,name,v\n");
    for (int i = 0; i < 36000; i++) {
        tb_printf(&c, "%d,some text %d,%d.5\n", i, i * 7, i);
        tb_printf(&j, "{\"id\":%d,\"name\":\"some text %d\"}\n", i, i * 7);
    }
    write_file(path_in("big.csv"), c.p, c.len);
    write_file(path_in("big.jsonl"), j.p, j.len);
    write_file(path_in("big.txt"), j.p, j.len);
    free(c.p);
    free(j.p);
    expect_frame_cap(path_in("big.csv"), READER_CSV, "csv");
    expect_frame_cap(path_in("big.jsonl"), READER_JSONL, "jsonl");
    expect_frame_cap(path_in("big.txt"), READER_LINES, "lines");
}
END_TEST

/* ~1 MB of CSV in 10,000 rows of ~100 bytes: all of them fit the rows staged for type
 * inference. */
START_TEST(test_max_frame_bytes_csv_wide_rows)
{
    tbuf c = {0};
    tb_printf(&c, "id,name,v\n");
    for (int i = 0; i < 10000; i++)
        tb_printf(&c, "%d,a longer text field of about a hundred bytes so that the rows are quite wide: %016d,%d\n",
                  i, i, i);
    write_file(path_in("wide.csv"), c.p, c.len);
    free(c.p);
    expect_frame_cap(path_in("wide.csv"), READER_CSV, "csv, 10000 wide rows");
}
END_TEST

/* Types are inferred per batch: a float after the first batch makes that batch float64. */
START_TEST(test_batch_types_per_batch)
{
    tbuf c = {0}, j = {0};
    tb_printf(&c, "n,s\n");
    for (int i = 1; i <= 200; i++) {
        if (i == 150) {
            tb_printf(&c, "150.5,x\n");
            tb_printf(&j, "{\"n\":150.5,\"s\":\"x\"}\n");
        } else {
            tb_printf(&c, "%d,x\n", i);
            tb_printf(&j, "{\"n\":%d,\"s\":\"x\"}\n", i);
        }
    }
    write_file(path_in("t.csv"), c.p, c.len);
    write_file(path_in("t.jsonl"), j.p, j.len);
    free(c.p);
    free(j.p);
    const reader_format fmts[] = {READER_CSV, READER_JSONL};
    const char *paths[] = {path_in("t.csv"), path_in("t.jsonl")};
    for (int k = 0; k < 2; k++) {
        reader *r = open_fmt(paths[k], fmts[k], 0, 0);
        mr_err e = {0};
        frame *b1 = reader_frame_batch(r, 100, 0, &e);
        frame *b2 = reader_frame_batch(r, 100, 0, &e);
        frame *b3 = reader_frame_batch(r, 100, 0, &e);
        ck_assert(b1 && b2 && b3);
        ck_assert_uint_eq(frame_nrows(b1), 100);
        ck_assert_uint_eq(frame_nrows(b2), 100);
        ck_assert_uint_eq(frame_nrows(b3), 0);
        const frame_col *n1 = frame_col_by_name(b1, "n"), *n2 = frame_col_by_name(b2, "n");
        ck_assert_msg(n1->type == FRAME_I64, "format %d: batch 1 is %s", k, frame_type_name(n1->type));
        ck_assert_msg(n2->type == FRAME_F64, "format %d: batch 2 is %s", k, frame_type_name(n2->type));
        for (size_t i = 0; i < 100; i++) {
            EXPECT(n1->v.i64[i] == (int64_t)i + 1, "format %d: batch 1 row %zu", k, i);
            double want = i == 49 ? 150.5 : (double)(i + 101);
            EXPECT(n2->v.f64[i] == want, "format %d: batch 2 row %zu: %g", k, i, n2->v.f64[i]);
        }
        /* the whole input at once is float64 throughout */
        frame *w = whole_frame(paths[k], fmts[k], 0, 0);
        ck_assert_int_eq(frame_col_by_name(w, "n")->type, FRAME_F64);
        frame_free(w);
        frame_free(b1);
        frame_free(b2);
        frame_free(b3);
        reader_free(r);
    }
}
END_TEST

/* ---- tcase: bench (LUAMR_BENCH=1) ---- */

START_TEST(test_bench_20m_csv)
{
    const char *want = getenv("LUAMR_BENCH");
    if (!want || strcmp(want, "1") != 0) return;
    const char *path = getenv("LUAMR_BENCH_FILE") ? getenv("LUAMR_BENCH_FILE") : "/tmp/luamr_bench_20m.csv";
    long rows = getenv("LUAMR_BENCH_ROWS") ? atol(getenv("LUAMR_BENCH_ROWS")) : 20000000L;
    struct stat st;
    if (stat(path, &st) != 0) {
        FILE *fp = fopen(path, "w");
        ck_assert_ptr_nonnull(fp);
        unsigned x = 1;
        fprintf(fp, "key,k2,n,x\n");
        for (long i = 0; i < rows; i++) {
            x = x * 1103515245u + 12345u;
            unsigned y = x >> 8;
            fprintf(fp, "key_%u,k2_%u,%u,0.%06u\n", y % 1000, (y / 1000) % 100, y % 1000000,
                    (x >> 3) % 1000000);
        }
        fclose(fp);
        stat(path, &st);
    }
    reader_opts o;
    reader_opts_init(&o);
    o.format = READER_CSV;
    mr_err e = {0};
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    reader *r = reader_open(path, &o, NULL, NULL, &e);
    frame *f = reader_frame(r, &e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    ck_assert_msg(f != NULL, "%s", e.msg);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    printf("bench: %zu rows, %.1f MB in %.3f s wall (%.3f s cpu) = %.0f MB/s wall, %.0f MB/s cpu "
           "(types %s,%s,%s,%s)\n", frame_nrows(f), (double)st.st_size / 1e6, secs, cpu,
           (double)st.st_size / 1e6 / secs, (double)st.st_size / 1e6 / cpu,
           frame_type_name(frame_col_at(f, 0)->type), frame_type_name(frame_col_at(f, 1)->type),
           frame_type_name(frame_col_at(f, 2)->type), frame_type_name(frame_col_at(f, 3)->type));
    ck_assert_int_eq(frame_col_at(f, 2)->type, FRAME_I64);
    ck_assert_int_eq(frame_col_at(f, 3)->type, FRAME_F64);

    /* and back out as CSV, for the writer's figure */
    const char *out = "/tmp/luamr_bench_out.csv";
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(writer_write_frame(f, out, WRITER_CSV, 0, &e), MR_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    struct stat so;
    stat(out, &so);
    printf("bench: writer csv %.1f MB in %.3f s = %.0f MB/s\n", (double)so.st_size / 1e6, secs,
           (double)so.st_size / 1e6 / secs);
    unlink(out);
    frame_free(f);
    reader_free(r);
}
END_TEST

static Suite *reader_suite(void)
{
    Suite *s = suite_create("reader");
    TCase *tc = tcase_create("csv");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_csv_rfc4180);
    tcase_add_test(tc, test_csv_bad_rows_reported);
    tcase_add_test(tc, test_csv_raw_prefix_and_unterminated);
    tcase_add_test(tc, test_tsv_and_headerless_schema);
    tcase_add_test(tc, test_csv_window_boundaries);
    suite_add_tcase(s, tc);

    tc = tcase_create("jsonl_lines");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_jsonl_records);
    tcase_add_test(tc, test_jsonl_frame_types);
    tcase_add_test(tc, test_lines_gzip_members);
    suite_add_tcase(s, tc);

    tc = tcase_create("frames");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_csv_frame_types);
    tcase_add_test(tc, test_csv_frame_promotion);
    tcase_add_test(tc, test_csv_frame_floats_exact);
    tcase_add_test(tc, test_csv_frame_int_limits_and_schema_errors);
    tcase_add_test(tc, test_max_records);
    suite_add_tcase(s, tc);

    tc = tcase_create("splits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_splits_cover_each_record_once);
    tcase_add_test(tc, test_splits_random_quoting);
    suite_add_tcase(s, tc);

    tc = tcase_create("batches");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_batches_csv);
    tcase_add_test(tc, test_batches_csv_headerless);
    tcase_add_test(tc, test_batches_jsonl_and_lines);
    tcase_add_test(tc, test_batches_max_records);
    tcase_add_test(tc, test_batch_byte_cap);
    tcase_add_test(tc, test_batch_byte_cap_csv_inferred);
    tcase_add_test(tc, test_batches_in_splits);
    tcase_add_test(tc, test_max_frame_bytes);
    tcase_add_test(tc, test_max_frame_bytes_csv_wide_rows);
    tcase_add_test(tc, test_batch_types_per_batch);
    suite_add_tcase(s, tc);

    tc = tcase_create("bench");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_bench_20m_csv);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reader_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
