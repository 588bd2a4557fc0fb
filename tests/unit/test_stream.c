/* Unit tests for connectors/stream (files, gzip, lines, peek/skip, schemes, slurp) and
 * connectors/storage (list, stat, remove, copy, join). */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "connectors/storage.h"
#include "connectors/stream.h"

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/luamr_test_stream_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    storage_remove(tmpdir, NULL);
}

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

/* One gzip member of data, compressed independently of the stream under test. */
static size_t gzip_member(const void *data, size_t n, unsigned char *out, size_t cap)
{
    z_stream z = {0};
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

/* Reads the whole stream through readline into one '\n'-joined buffer. */
static char *read_lines(stream *s, size_t *count, mr_err *e, int *rc_out)
{
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    const char *line;
    size_t n;
    int rc;
    *count = 0;
    while ((rc = stream_readline(s, &line, &n, e)) == 1) {
        while (len + n + 2 > cap) out = realloc(out, cap *= 2);
        memcpy(out + len, line, n);
        len += n;
        out[len++] = '\n';
        (*count)++;
    }
    out[len] = '\0';
    *rc_out = rc;
    return out;
}

/* ---- tcase: lines ---- */

START_TEST(test_readline_endings)
{
    const char *text = "alpha\r\nbeta\n\ngamma\r\n\r\ndelta";
    char *p = path_in("a.txt");
    write_file(p, text, strlen(text));
    mr_err e = {0};
    stream *s = stream_open(p, &e);
    ck_assert_ptr_nonnull(s);
    size_t count;
    int rc;
    char *all = read_lines(s, &count, &e, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(count, 6);
    ck_assert_str_eq(all, "alpha\nbeta\n\ngamma\n\ndelta\n");
    ck_assert_uint_eq(stream_offset(s), strlen(text));
    free(all);
    stream_close(s);
}
END_TEST

START_TEST(test_readline_long_lines_cross_buffers)
{
    /* Lines of 3 MiB and many short ones force compaction and growth of the buffer. */
    size_t big = 3u << 20, n = big + 200000;
    char *data = malloc(n);
    size_t pos = 0;
    for (int i = 0; pos + 20 < 100000; i++) pos += (size_t)sprintf(data + pos, "short %d\n", i);
    size_t big_start = pos;
    memset(data + pos, 'x', big);
    pos += big;
    data[pos++] = '\n';
    while (pos + 20 < n) pos += (size_t)sprintf(data + pos, "tail\n");
    char *p = path_in("long.txt");
    write_file(p, data, pos);
    mr_err e = {0};
    stream *s = stream_open(p, &e);
    ck_assert_ptr_nonnull(s);
    const char *line;
    size_t len;
    size_t total = 0, lines = 0, longest = 0;
    int rc;
    while ((rc = stream_readline(s, &line, &len, &e)) == 1) {
        total += len + 1;
        lines++;
        if (len > longest) longest = len;
        if (len == big) ck_assert(line[0] == 'x' && line[big - 1] == 'x');
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(total, pos);
    ck_assert_uint_eq(longest, big);
    size_t expect_lines = 0;
    for (size_t i = 0; i < pos; i++) expect_lines += data[i] == '\n';
    ck_assert_uint_eq(lines, expect_lines);
    (void)big_start;
    stream_close(s);
    free(data);
}
END_TEST

START_TEST(test_readline_max_line)
{
    char data[5000];
    memset(data, 'y', sizeof data);
    char *p = path_in("m.txt");
    write_file(p, data, sizeof data);
    mr_err e = {0};
    stream *s = stream_open(p, &e);
    stream_set_max_line(s, 1000);
    const char *line;
    size_t len;
    ck_assert_int_eq(stream_readline(s, &line, &len, &e), -1);
    ck_assert_int_eq(e.code, MR_ELIMIT);
    ck_assert_ptr_nonnull(strstr(e.msg, "m.txt"));
    ck_assert_ptr_nonnull(strstr(e.msg, "1000"));
    stream_close(s);
}
END_TEST

START_TEST(test_open_at_offset_peek_skip)
{
    const char *text = "0123456789abcdef";
    char *p = path_in("o.txt");
    write_file(p, text, 16);
    mr_err e = {0};
    stream *s = stream_open_raw(p, 10, &e);
    ck_assert_ptr_nonnull(s);
    const char *q;
    ck_assert_int_eq(stream_peek(s, &q, 3, &e), 3);
    ck_assert(memcmp(q, "abc", 3) == 0);
    stream_skip(s, 2);
    ck_assert_uint_eq(stream_offset(s), 2);
    char buf[16];
    ck_assert_int_eq(stream_read(s, buf, sizeof buf, &e), 4);
    ck_assert(memcmp(buf, "cdef", 4) == 0);
    ck_assert_int_eq(stream_read(s, buf, sizeof buf, &e), 0);
    ck_assert_int_eq(stream_peek(s, &q, 3, &e), 0);
    stream_close(s);

    s = stream_open_raw(path_in("missing.txt"), 0, &e);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "missing.txt"));
}
END_TEST

/* ---- tcase: gzip ---- */

START_TEST(test_gzip_multi_member_and_magic)
{
    const char *a = "first member line 1\nline 2\n", *b = "second member\nlast";
    unsigned char gz[4096];
    size_t n = gzip_member(a, strlen(a), gz, sizeof gz);
    n += gzip_member(b, strlen(b), gz + n, sizeof gz - n);
    /* Named .gz, and without the suffix (detected by the magic bytes). */
    const char *names[] = {"mm.txt.gz", "mm.data"};
    for (int k = 0; k < 2; k++) {
        char *p = path_in(names[k]);
        write_file(p, gz, n);
        mr_err e = {0};
        stream *s = stream_open(p, &e);
        ck_assert_ptr_nonnull(s);
        size_t count;
        int rc;
        char *all = read_lines(s, &count, &e, &rc);
        ck_assert_int_eq(rc, 0);
        ck_assert_str_eq(all, "first member line 1\nline 2\nsecond member\nlast\n");
        ck_assert_uint_eq(stream_offset(s), strlen(a) + strlen(b));
        ck_assert_uint_eq(stream_raw_offset(s), n);
        free(all);
        stream_close(s);
    }
}
END_TEST

START_TEST(test_gzip_large_roundtrip)
{
    /* Bigger than every buffer so inflate runs across many refills. */
    size_t n = 5u << 20;
    unsigned char *data = malloc(n);
    unsigned x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (unsigned char)("abcdefgh\n"[(x >> 16) % 9]);
    }
    size_t cap = compressBound(n) + 64;
    unsigned char *gz = malloc(cap);
    size_t gn = gzip_member(data, n, gz, cap);
    char *p = path_in("big.gz");
    write_file(p, gz, gn);
    mr_err e = {0};
    stream *s = stream_open(p, &e);
    unsigned char *back = malloc(n + 1);
    size_t got = 0;
    ssize_t k;
    while ((k = stream_read(s, back + got, 70000, &e)) > 0) got += (size_t)k;
    ck_assert_int_eq(k, 0);
    ck_assert_uint_eq(got, n);
    ck_assert(memcmp(back, data, n) == 0);
    stream_close(s);
    free(back);
    free(gz);
    free(data);
}
END_TEST

START_TEST(test_gzip_truncated_and_corrupt)
{
    char text[20000];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + (i * 7919) % 26);
    unsigned char gz[40000];
    size_t n = gzip_member(text, sizeof text, gz, sizeof gz);

    char *p = path_in("trunc.gz");
    write_file(p, gz, n / 2);
    mr_err e = {0};
    stream *s = stream_open(p, &e);
    ck_assert_ptr_nonnull(s);
    char buf[65536];
    ssize_t k;
    while ((k = stream_read(s, buf, sizeof buf, &e)) > 0) {
    }
    ck_assert_int_eq(k, -1);
    ck_assert_int_eq(e.code, MR_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "trunc.gz"));
    ck_assert_ptr_nonnull(strstr(e.msg, "truncated"));
    char expect[64];
    snprintf(expect, sizeof expect, "offset %zu", n / 2);
    ck_assert_msg(strstr(e.msg, expect) != NULL, "message '%s' lacks '%s'", e.msg, expect);
    stream_close(s);

    /* Garbage in the middle of the deflate data. */
    memset(gz + n / 2, 0xff, 64);
    p = path_in("corrupt.gz");
    write_file(p, gz, n);
    mr_err_clear(&e);
    s = stream_open(p, &e);
    while ((k = stream_read(s, buf, sizeof buf, &e)) > 0) {
    }
    ck_assert_int_eq(k, -1);
    ck_assert_int_eq(e.code, MR_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "corrupt.gz"));
    ck_assert_ptr_nonnull(strstr(e.msg, "offset"));
    stream_close(s);
}
END_TEST

/* ---- tcase: schemes and slurp ---- */

typedef struct mem_src {
    const char *data;
    size_t len, pos;
} mem_src;

static ssize_t mem_read(void *ctx, void *buf, size_t n, mr_err *e)
{
    mem_src *m = ctx;
    size_t k = m->len - m->pos < n ? m->len - m->pos : n;
    if (k > 3) k = 3;   /* tiny reads exercise the refill paths */
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}
static void mem_close(void *ctx) { free(ctx); }
static const stream_ops mem_ops = {mem_read, mem_close};

static stream *mem_open(const char *uri, uint64_t offset, mr_err *e)
{
    static const char body[] = "one\ntwo\r\nthree";
    mem_src *m = calloc(1, sizeof *m);
    m->data = body;
    m->len = sizeof body - 1;
    m->pos = offset;
    return stream_create(&mem_ops, m, uri);
}

START_TEST(test_scheme_registry)
{
    stream_register_scheme("mem", mem_open);
    mr_err e = {0};
    stream *s = stream_open("mem://bucket/key", &e);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(stream_name(s), "mem://bucket/key");
    size_t count;
    int rc;
    char *all = read_lines(s, &count, &e, &rc);
    ck_assert_str_eq(all, "one\ntwo\nthree\n");
    free(all);
    stream_close(s);

    s = stream_open_raw("mem://x", 4, &e);
    const char *line;
    size_t n;
    ck_assert_int_eq(stream_readline(s, &line, &n, &e), 1);
    ck_assert_uint_eq(n, 3);
    ck_assert(memcmp(line, "two", 3) == 0);
    stream_close(s);

    ck_assert_ptr_null(stream_open("nope://x/y", &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "nope"));
}
END_TEST

START_TEST(test_slurp)
{
    char *p = path_in("s.txt");
    write_file(p, "hello\nworld", 11);
    mr_err e = {0};
    size_t n;
    char *s = stream_slurp(p, &n, 0, &e);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(n, 11);
    ck_assert_str_eq(s, "hello\nworld");
    free(s);
    ck_assert_ptr_null(stream_slurp(p, &n, 5, &e));
    ck_assert_int_eq(e.code, MR_ELIMIT);
    /* gzip is inflated */
    unsigned char gz[256];
    size_t gn = gzip_member("zipped", 6, gz, sizeof gz);
    write_file(path_in("s.gz"), gz, gn);
    s = stream_slurp(path_in("s.gz"), &n, 0, &e);
    ck_assert_str_eq(s, "zipped");
    free(s);
}
END_TEST

/* ---- tcase: storage ---- */

static mr_code collect(const char *uri, uint64_t size, void *ud)
{
    char *out = ud;
    char line[600];
    snprintf(line, sizeof line, "%s:%llu;", uri + strlen(tmpdir), (unsigned long long)size);
    strcat(out, line);
    return MR_OK;
}

START_TEST(test_storage_local)
{
    char sub[600];
    snprintf(sub, sizeof sub, "%s/d", tmpdir);
    mkdir(sub, 0777);
    snprintf(sub, sizeof sub, "%s/d/x", tmpdir);
    mkdir(sub, 0777);
    write_file(path_in("d/b.txt"), "bb", 2);
    write_file(path_in("d/a.txt"), "a", 1);
    write_file(path_in("d/x/c.txt"), "ccc", 3);
    write_file(path_in("d/.hidden.tmp-1"), "h", 1);
    write_file(path_in("d/a.txt.gz"), "zz", 2);
    char out[4096] = "";
    mr_err e = {0};
    ck_assert_int_eq(storage_list(path_in("d"), collect, out, &e), MR_OK);
    ck_assert_str_eq(out, "/d/a.txt:1;/d/a.txt.gz:2;/d/b.txt:2;/d/x/c.txt:3;");
    out[0] = '\0';
    ck_assert_int_eq(storage_list(path_in("d/b.txt"), collect, out, &e), MR_OK);
    ck_assert_str_eq(out, "/d/b.txt:2;");
    ck_assert_int_eq(storage_list(path_in("nothing"), collect, out, &e), MR_ENOTFOUND);

    uint64_t size = 0;
    ck_assert_int_eq(storage_stat(path_in("d/x/c.txt"), &size, &e), 1);
    ck_assert_uint_eq(size, 3);
    ck_assert_int_eq(storage_stat(path_in("d/none"), &size, &e), 0);

    ck_assert_int_eq(storage_put_file(path_in("d/x/c.txt"), path_in("copy/deep/c2.txt"), &e), MR_OK);
    ck_assert_int_eq(storage_get_file(path_in("copy/deep/c2.txt"), path_in("c3.txt"), &e), MR_OK);
    size_t n;
    char *s = stream_slurp(path_in("c3.txt"), &n, 0, &e);
    ck_assert_str_eq(s, "ccc");
    free(s);

    ck_assert_int_eq(storage_remove(path_in("d"), &e), MR_OK);
    ck_assert_int_eq(storage_stat(path_in("d/a.txt"), &size, &e), 0);
    ck_assert_int_eq(storage_remove(path_in("d"), &e), MR_OK);   /* already gone: fine */
}
END_TEST

START_TEST(test_storage_join_remote)
{
    const char *cases[][3] = {
        {"a", "b", "a/b"},     {"a/", "b", "a/b"},          {"a//", "/b", "a/b"},
        {"", "b", "b"},        {"s3://bk/p/", "k.json", "s3://bk/p/k.json"},
        {"/", "x", "/x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *j = storage_join(cases[i][0], cases[i][1]);
        ck_assert_str_eq(j, cases[i][2]);
        free(j);
    }
    ck_assert_int_eq(storage_is_remote("s3://b/k"), 1);
    ck_assert_int_eq(storage_is_remote("file:///tmp/x"), 0);
    ck_assert_int_eq(storage_is_remote("/tmp/x"), 0);
    ck_assert_int_eq(storage_is_remote("data/s3:x"), 0);
    mr_err e = {0};
    ck_assert_int_eq(storage_remove("zz://b/k", &e), MR_EINVAL);
}
END_TEST

static Suite *stream_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("lines");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_readline_endings);
    tcase_add_test(tc, test_readline_long_lines_cross_buffers);
    tcase_add_test(tc, test_readline_max_line);
    tcase_add_test(tc, test_open_at_offset_peek_skip);
    suite_add_tcase(s, tc);

    tc = tcase_create("gzip");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_gzip_multi_member_and_magic);
    tcase_add_test(tc, test_gzip_large_roundtrip);
    tcase_add_test(tc, test_gzip_truncated_and_corrupt);
    suite_add_tcase(s, tc);

    tc = tcase_create("schemes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_scheme_registry);
    tcase_add_test(tc, test_slurp);
    suite_add_tcase(s, tc);

    tc = tcase_create("storage");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_storage_local);
    tcase_add_test(tc, test_storage_join_remote);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stream_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
