/* Unit tests for connectors/writer (json, jsonl, csv, gzip, streaming appends, round
 * trips through the reader) and connectors/sink (atomic publish, abort, schemes). */
#define _GNU_SOURCE
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connectors/reader.h"
#include "connectors/sink.h"
#include "connectors/storage.h"
#include "connectors/stream.h"
#include "connectors/writer.h"

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/luamr_test_writer_XXXXXX");
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

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Entries of a folder, hidden ones included. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static char *slurp(const char *p, size_t *n)
{
    mr_err e = {0};
    char *s = stream_slurp(p, n, 0, &e);
    ck_assert_msg(s != NULL, "%s", e.msg);
    return s;
}

/* A frame with every type, nulls and awkward strings. */
static frame *sample_frame(size_t rows)
{
    mr_err e = {0};
    frame *f = frame_create();
    frame_col *i = frame_add_col(f, "i", FRAME_I64, &e);
    frame_col *x = frame_add_col(f, "x", FRAME_F64, &e);
    frame_col *b = frame_add_col(f, "b", FRAME_BOOL, &e);
    frame_col *s = frame_add_col(f, "s, \"quoted\"", FRAME_STR, &e);
    const char *strs[] = {"plain", "a,b", "say \"hi\"", "multi\nline", "", "tab\there", "cr\rlf",
                          "ünïcödé €"};
    for (size_t r = 0; r < rows; r++) {
        if (r % 11 == 5) frame_col_push_null(i);
        else frame_col_push_i64(i, r == 0 ? INT64_MAX : r == 1 ? INT64_MIN : (int64_t)(r * 7919) - 5000);
        if (r % 13 == 7) frame_col_push_null(x);
        else frame_col_push_f64(x, r == 2 ? 1.0 : (double)r / 3.0 - 17.125 + (r % 4 ? 1e-9 : 1e21));
        if (r % 5 == 4) frame_col_push_null(b);
        else frame_col_push_bool(b, (int)(r % 2));
        if (r % 17 == 16) frame_col_push_null(s);
        else frame_col_push_str(s, strs[r % 8], strlen(strs[r % 8]));
    }
    return f;
}

/* Cell-by-cell equality of two frames (same names, types, nulls, values). */
static void assert_frames_equal(const frame *a, const frame *b)
{
    ck_assert_uint_eq(frame_ncols(a), frame_ncols(b));
    ck_assert_uint_eq(frame_nrows(a), frame_nrows(b));
    for (size_t c = 0; c < frame_ncols(a); c++) {
        const frame_col *x = frame_col_at(a, c), *y = frame_col_at(b, c);
        ck_assert_str_eq(x->name, y->name);
        ck_assert_msg(x->type == y->type, "column %s: %s vs %s", x->name, frame_type_name(x->type),
                      frame_type_name(y->type));
        for (size_t r = 0; r < x->len; r++) {
            ck_assert_msg(frame_col_is_null(x, r) == frame_col_is_null(y, r), "null at %s[%zu]",
                          x->name, r);
            if (frame_col_is_null(x, r)) continue;
            switch (x->type) {
            case FRAME_I64: ck_assert(x->v.i64[r] == y->v.i64[r]); break;
            case FRAME_F64:
                ck_assert_msg(memcmp(&x->v.f64[r], &y->v.f64[r], 8) == 0, "%s[%zu]: %.17g vs %.17g",
                              x->name, r, x->v.f64[r], y->v.f64[r]);
                break;
            case FRAME_BOOL: ck_assert(x->v.b[r] == y->v.b[r]); break;
            case FRAME_STR: {
                size_t n1, n2;
                const char *s1 = frame_col_str(x, r, &n1), *s2 = frame_col_str(y, r, &n2);
                ck_assert_msg(n1 == n2 && memcmp(s1, s2, n1) == 0, "%s[%zu]: '%.*s' vs '%.*s'",
                              x->name, r, (int)n1, s1, (int)n2, s2);
                break;
            }
            }
        }
    }
}

static frame *read_back(const char *p, reader_format fmt)
{
    reader_opts o;
    reader_opts_init(&o);
    o.format = fmt;
    mr_err e = {0};
    reader *r = reader_open(p, &o, NULL, NULL, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    frame *f = reader_frame(r, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(reader_bad_count(r), 0);
    reader_free(r);
    return f;
}

/* ---- tcase: formats ---- */

START_TEST(test_fmt_f64)
{
    char buf[32];
    struct {
        double v;
        const char *s;
    } cases[] = {{0.1, "0.1"},   {1.0, "1.0"},   {-0.0, "-0.0"}, {1e21, "1e+21"},
                 {123.456, "123.456"}, {5e-324, "4.9406564584124654e-324"}, {NAN, "nan"}, {-INFINITY, "-inf"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = writer_fmt_f64(buf, cases[i].v);
        ck_assert_uint_eq(n, strlen(buf));
        if (i == 5) {   /* any round-tripping form is fine for the denormal */
            ck_assert(strtod(buf, NULL) == 5e-324);
            continue;
        }
        ck_assert_str_eq(buf, cases[i].s);
    }
    srand(7);
    for (int k = 0; k < 100000; k++) {
        uint64_t bits = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
        double v;
        memcpy(&v, &bits, 8);
        if (!isfinite(v)) continue;
        writer_fmt_f64(buf, v);
        double back = strtod(buf, NULL);
        ck_assert_msg(memcmp(&back, &v, 8) == 0, "%s", buf);
    }
    /* Everyday magnitudes: reads back exactly, and uses no more significant digits than
     * the shortest %.Ng that reads back. */
    for (int k = 0; k < 200000; k++) {
        double v = k % 3 == 0 ? (double)rand() / 1000.0
                   : k % 3 == 1 ? (double)(rand() % 100000) / 7.0
                                : -(double)rand() * 1e-9;
        writer_fmt_f64(buf, v);
        double back = strtod(buf, NULL);
        ck_assert_msg(memcmp(&back, &v, 8) == 0, "%s vs %.17g", buf, v);
        int shortest = 1;
        char ref[40];
        for (; shortest < 17; shortest++) {
            snprintf(ref, sizeof ref, "%.*g", shortest, v);
            if (strtod(ref, NULL) == v) break;
        }
        int sig = 0, leading = 1;
        for (const char *p = buf; *p && *p != 'e'; p++) {
            if (*p < '0' || *p > '9') continue;
            if (*p == '0' && leading) continue;
            leading = 0;
            sig++;
        }
        /* trailing zeros of an integral value ("120.0") are not significant */
        const char *dot = strchr(buf, '.');
        if (dot && strcmp(dot, ".0") == 0)
            for (const char *p = dot - 1; p >= buf && *p == '0'; p--) sig--;
        ck_assert_msg(sig <= shortest + (dot && strcmp(dot, ".0") == 0), "%s has %d digits, %%.%dg suffices",
                      buf, sig, shortest);
    }
}
END_TEST

START_TEST(test_json_document)
{
    frame *f = sample_frame(40);
    /* non-finite floats become null; invalid UTF-8 is replaced; control chars escaped */
    frame_col *x = frame_col_by_name(f, "x");
    x->v.f64[3] = NAN;
    x->v.f64[4] = INFINITY;
    mr_err e = {0};
    frame *g = frame_create();
    frame_col *s = frame_add_col(g, "s", FRAME_STR, &e);
    frame_col_push_str(s, "bad \xff\xfe utf8 \xc3", 13);
    frame_col_push_str(s, "ctl \x01\x1f \\ \"", 10);
    frame_col_push_str(s, "\xed\xa0\x80", 3);   /* a UTF-16 surrogate: not UTF-8 */
    /* long enough to be escaped in several chunks, multi-byte characters across them */
    char *longs = malloc(30000);
    size_t ln = 0;
    for (int k = 0; ln + 8 < 30000; k++) {
        memcpy(longs + ln, k % 5 == 0 ? "\x02" : "\xe2\x82\xac", k % 5 == 0 ? 1 : 3);
        ln += k % 5 == 0 ? 1 : 3;
    }
    frame_col_push_str(s, longs, ln);

    ck_assert_int_eq(writer_write_frame(f, path_in("out/a.json"), WRITER_JSON, 0, &e), MR_OK);
    ck_assert_int_eq(writer_write_frame(g, path_in("g.json"), WRITER_JSON, 0, &e), MR_OK);
    size_t n;
    char *text = slurp(path_in("out/a.json"), &n);
    ck_assert(text[0] == '[');
    ck_assert_ptr_nonnull(strstr(text, "\"i\":9223372036854775807"));
    ck_assert_ptr_nonnull(strstr(text, "\"i\":-9223372036854775808"));
    cJSON *doc = cJSON_Parse(text);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(cJSON_GetArraySize(doc), 40);
    frame_col *ic = frame_col_by_name(f, "i"), *bc = frame_col_by_name(f, "b"),
              *sc = frame_col_at(f, 3);
    for (int r = 0; r < 40; r++) {
        cJSON *row = cJSON_GetArrayItem(doc, r);
        cJSON *iv = cJSON_GetObjectItem(row, "i"), *xv = cJSON_GetObjectItem(row, "x"),
              *bv = cJSON_GetObjectItem(row, "b"), *sv = cJSON_GetObjectItem(row, sc->name);
        ck_assert(frame_col_is_null(ic, (size_t)r) ? cJSON_IsNull(iv) : cJSON_IsNumber(iv));
        if (frame_col_is_null(x, (size_t)r) || !isfinite(x->v.f64[r])) ck_assert(cJSON_IsNull(xv));
        else ck_assert(xv->valuedouble == x->v.f64[r]);
        if (frame_col_is_null(bc, (size_t)r)) ck_assert(cJSON_IsNull(bv));
        else ck_assert_int_eq(cJSON_IsTrue(bv), bc->v.b[r]);
        if (frame_col_is_null(sc, (size_t)r)) {
            ck_assert(cJSON_IsNull(sv));
        } else {
            size_t len;
            const char *want = frame_col_str(sc, (size_t)r, &len);
            ck_assert(strlen(sv->valuestring) == len && memcmp(sv->valuestring, want, len) == 0);
        }
    }
    cJSON_Delete(doc);
    free(text);

    text = slurp(path_in("g.json"), &n);
    doc = cJSON_Parse(text);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(doc, 0), "s")->valuestring,
                     "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(doc, 1), "s")->valuestring,
                     "ctl \x01\x1f \\ \"");
    ck_assert_ptr_nonnull(strstr(text, "\\u0001\\u001f \\\\ \\\""));
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(doc, 2), "s")->valuestring,
                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    const char *back = cJSON_GetObjectItem(cJSON_GetArrayItem(doc, 3), "s")->valuestring;
    ck_assert(strlen(back) == ln && memcmp(back, longs, ln) == 0);
    free(longs);
    cJSON_Delete(doc);
    free(text);

    /* An empty result is still one valid document. */
    frame *empty = frame_empty_like(f, &e);
    ck_assert_int_eq(writer_write_frame(empty, path_in("e.json"), WRITER_JSON, 0, &e), MR_OK);
    text = slurp(path_in("e.json"), &n);
    ck_assert_str_eq(text, "[]\n");
    free(text);
    frame_free(empty);
    frame_free(g);
    frame_free(f);
}
END_TEST

START_TEST(test_roundtrip_csv_jsonl_gzip)
{
    frame *f = sample_frame(3000);
    mr_err e = {0};
    struct {
        const char *name;
        writer_format wf;
        reader_format rf;
        int gz;
    } cases[] = {{"r.csv", WRITER_CSV, READER_CSV, 0},
                 {"r.csv.gz", WRITER_CSV, READER_CSV, 1},
                 {"r.jsonl", WRITER_JSONL, READER_JSONL, 0},
                 {"r.jsonl.gz", WRITER_JSONL, READER_JSONL, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        /* JSON numbers go through cJSON's double: keep the ints within 2^53 there. */
        frame *src = f;
        frame *tmp = NULL;
        if (cases[k].wf == WRITER_JSONL) {
            tmp = frame_clone(f, &e);
            frame_col_by_name(tmp, "i")->v.i64[0] = 1;
            frame_col_by_name(tmp, "i")->v.i64[1] = -1;
            src = tmp;
        }
        ck_assert_int_eq(writer_write_frame(src, path_in(cases[k].name), cases[k].wf, cases[k].gz, &e),
                         MR_OK);
        if (cases[k].gz) {
            FILE *fp = fopen(path_in(cases[k].name), "rb");
            unsigned char magic[2];
            ck_assert_uint_eq(fread(magic, 1, 2, fp), 2);
            fclose(fp);
            ck_assert(magic[0] == 0x1f && magic[1] == 0x8b);
        }
        frame *back = read_back(path_in(cases[k].name), cases[k].rf);
        assert_frames_equal(src, back);
        frame_free(back);
        frame_free(tmp);
    }
    frame_free(f);
}
END_TEST

START_TEST(test_streaming_appends)
{
    mr_err e = {0};
    frame *f = sample_frame(500);
    writer_format fmts[] = {WRITER_JSON, WRITER_CSV};
    const char *names[] = {"parts.json", "parts.csv"};
    for (int k = 0; k < 2; k++) {
        writer *w = writer_open(path_in(names[k]), fmts[k], 0, &e);
        ck_assert_ptr_nonnull(w);
        for (int i = 0; i < 3; i++) ck_assert_int_eq(writer_append(w, f, &e), MR_OK);
        ck_assert_uint_eq(writer_rows(w), 1500);
        ck_assert_int_eq(writer_commit(w, &e), MR_OK);
        writer_free(w);
    }
    size_t n;
    char *text = slurp(path_in("parts.json"), &n);
    cJSON *doc = cJSON_Parse(text);
    ck_assert_int_eq(cJSON_GetArraySize(doc), 1500);
    cJSON_Delete(doc);
    free(text);
    frame *back = read_back(path_in("parts.csv"), READER_CSV);
    ck_assert_uint_eq(frame_nrows(back), 1500);
    frame_free(back);

    /* CSV: a frame with other columns cannot join the same file. */
    writer *w = writer_open(path_in("mix.csv"), WRITER_CSV, 0, &e);
    ck_assert_int_eq(writer_append(w, f, &e), MR_OK);
    frame *g = frame_create();
    frame_add_col(g, "other", FRAME_I64, &e);
    ck_assert_int_eq(writer_append(w, g, &e), MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "columns"));
    ck_assert_int_ne(writer_commit(w, &e), MR_OK);
    writer_free(w);
    ck_assert(!exists(path_in("mix.csv")));
    frame_free(g);
    frame_free(f);
}
END_TEST

START_TEST(test_format_names)
{
    writer_format wf;
    ck_assert_int_eq(writer_format_parse("ndjson", &wf), 0);
    ck_assert_int_eq(wf, WRITER_JSONL);
    ck_assert_int_eq(writer_format_parse("xml", &wf), -1);
    ck_assert_str_eq(writer_extension(WRITER_CSV, 1), ".csv.gz");
    ck_assert_str_eq(writer_extension(WRITER_JSON, 0), ".json");
    reader_format rf;
    ck_assert_int_eq(reader_format_parse("tsv", &rf), 0);
    ck_assert_int_eq(rf, READER_CSV);
    ck_assert_int_eq(reader_format_parse("warc", &rf), -1);
}
END_TEST

/* ---- tcase: atomic publish ---- */

START_TEST(test_atomic_publish)
{
    mr_err e = {0};
    frame *f = sample_frame(20000);   /* > one sink buffer, so bytes hit the temp file */
    char dest[512], dest2[512];
    snprintf(dest, sizeof dest, "%s", path_in("deep/er/out.jsonl"));
    writer *w = writer_open(dest, WRITER_JSONL, 0, &e);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(writer_append(w, f, &e), MR_OK);
    ck_assert(!exists(dest));
    ck_assert_int_eq(count_entries(path_in("deep/er")), 1);   /* only the hidden temp */
    uint64_t listed = 0;
    ck_assert_int_eq(storage_stat(dest, &listed, &e), 0);
    ck_assert_int_eq(writer_commit(w, &e), MR_OK);
    writer_free(w);
    ck_assert(exists(dest));
    ck_assert_int_eq(count_entries(path_in("deep/er")), 1);   /* temp renamed away */

    /* Freed without commit: nothing at the destination, no temp left behind. */
    snprintf(dest2, sizeof dest2, "%s", path_in("deep/er/never.csv"));
    w = writer_open(dest2, WRITER_CSV, 1, &e);
    ck_assert_int_eq(writer_append(w, f, &e), MR_OK);
    writer_free(w);
    ck_assert(!exists(dest2));
    ck_assert_int_eq(count_entries(path_in("deep/er")), 1);

    /* Same with an explicit sink_abort; a later commit is refused. */
    sink *s = sink_open(path_in("x/y.bin"), 0, &e);
    ck_assert_int_eq(sink_printf(s, &e, "%d-%s", 42, "abc"), MR_OK);
    ck_assert_uint_eq(sink_bytes(s), 6);
    sink_abort(s);
    ck_assert_int_ne(sink_commit(s, &e), MR_OK);
    sink_free(s);
    ck_assert_int_eq(count_entries(path_in("x")), 0);

    /* Replacing an existing file is atomic too: the old content stays until commit. */
    s = sink_open(dest, 0, &e);
    sink_write(s, "new\n", 4, &e);
    size_t n;
    char *old = slurp(dest, &n);
    ck_assert_uint_gt(n, 4);
    free(old);
    ck_assert_int_eq(sink_commit(s, &e), MR_OK);
    sink_free(s);
    char *now = slurp(dest, &n);
    ck_assert_str_eq(now, "new\n");
    free(now);
    frame_free(f);
}
END_TEST

typedef struct mem_sink {
    char buf[256];
    size_t len;
    int *committed, *aborted;
} mem_sink;

static mr_code ms_write(void *ctx, const void *b, size_t n, mr_err *e)
{
    mem_sink *m = ctx;
    MR_CHECK(m->len + n <= sizeof m->buf, e, MR_ELIMIT, "mem sink full");
    memcpy(m->buf + m->len, b, n);
    m->len += n;
    return MR_OK;
}
static mr_code ms_commit(void *ctx, mr_err *e)
{
    mem_sink *m = ctx;
    (*m->committed)++;
    ck_assert(m->len == 5 && memcmp(m->buf, "hello", 5) == 0);
    return MR_OK;
}
static void ms_abort(void *ctx) { (*((mem_sink *)ctx)->aborted)++; }
static void ms_free(void *ctx) { free(ctx); }
static const sink_ops mem_sink_ops = {ms_write, ms_commit, ms_abort, ms_free};
static int g_committed, g_aborted;

static sink *mem_sink_open(const char *uri, mr_err *e)
{
    mem_sink *m = calloc(1, sizeof *m);
    m->committed = &g_committed;
    m->aborted = &g_aborted;
    return sink_create(&mem_sink_ops, m, uri);
}

START_TEST(test_sink_scheme)
{
    sink_register_scheme("mem", mem_sink_open);
    mr_err e = {0};
    sink *s = sink_open("mem://b/k", 0, &e);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(sink_name(s), "mem://b/k");
    sink_write(s, "hel", 3, &e);
    sink_write(s, "lo", 2, &e);
    ck_assert_int_eq(sink_commit(s, &e), MR_OK);
    sink_free(s);
    ck_assert_int_eq(g_committed, 1);
    ck_assert_int_eq(g_aborted, 0);
    s = sink_open("mem://b/k2", 0, &e);
    sink_free(s);
    ck_assert_int_eq(g_aborted, 1);
    ck_assert_ptr_null(sink_open("nope://b/k", 0, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
}
END_TEST

static Suite *writer_suite(void)
{
    Suite *s = suite_create("writer");
    TCase *tc = tcase_create("formats");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fmt_f64);
    tcase_add_test(tc, test_json_document);
    tcase_add_test(tc, test_roundtrip_csv_jsonl_gzip);
    tcase_add_test(tc, test_streaming_appends);
    tcase_add_test(tc, test_format_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("publish");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_atomic_publish);
    tcase_add_test(tc, test_sink_scheme);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(writer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
