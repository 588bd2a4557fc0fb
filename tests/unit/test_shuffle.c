/* Unit tests for engine/shuffle: hash partitioning of map output. Every row lands in
 * exactly one partition in range; a key's partition depends only on the key (not on the
 * row's position, the frame, the other columns or int64-vs-float64 storage of a whole
 * number); many keys spread evenly; shuffle_write's partitions read back as exactly the
 * rows shuffle_assign routed there; unknown key columns and misuse are errors. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/frame.h"
#include "engine/imf.h"
#include "engine/ops.h"
#include "engine/shuffle.h"
#include "tmpdir.h"
#include "testrng.h"

/* An assertion for hot loops: Check's ck_assert records every passing check through its
 * message pipe, which costs a system call each time. */
#define EXPECT(cond, ...)                       \
    do {                                        \
        if (!(cond)) ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* ---------------------------------------------------------------- fixtures */


static void tmp_setup(void)
{
    tmpdir_make("test_shuffle");
}

static void tmp_teardown(void) { tmpdir_remove(); }

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}


/* id: row number (unique); k: string key over nkeys values (~5% null); ik: int64 key
 * over nkeys values (~5% null); v: float64 payload. */
static frame *make_frame(size_t n, size_t nkeys, uint64_t seed)
{
    mr_err e;
    rng_state = seed * 0x9E3779B97F4A7C15ull | 1;
    frame *f = frame_create();
    frame_col *id = frame_add_col(f, "id", FRAME_I64, &e);
    frame_col *k = frame_add_col(f, "k", FRAME_STR, &e);
    frame_col *ik = frame_add_col(f, "ik", FRAME_I64, &e);
    frame_col *v = frame_add_col(f, "v", FRAME_F64, &e);
    ck_assert(id && k && ik && v);
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        frame_col_push_i64(id, (int64_t)i);
        if (rnd() % 20 == 0) {
            frame_col_push_null(k);
        } else {
            int len = snprintf(buf, sizeof buf, "user_%llu", (unsigned long long)(rnd() % nkeys));
            frame_col_push_str(k, buf, (size_t)len);
        }
        if (rnd() % 20 == 0) frame_col_push_null(ik);
        else frame_col_push_i64(ik, (int64_t)(rnd() % nkeys) - 7);
        frame_col_push_f64(v, (double)(rnd() % 100000) / 7);
    }
    return f;
}

static int *assign(const frame *f, const char *const *keys, size_t nkeys, int nparts)
{
    mr_err e;
    mr_err_clear(&e);
    size_t n = frame_nrows(f);
    int *part = malloc((n ? n : 1) * sizeof *part);
    for (size_t i = 0; i < n; i++) part[i] = -1;
    ck_assert_msg(shuffle_assign(f, keys, nkeys, nparts, part, &e) == MR_OK, "%s", e.msg);
    for (size_t i = 0; i < n; i++)
        EXPECT(part[i] >= 0 && part[i] < nparts, "row %zu: partition %d of %d", i, part[i], nparts);
    return part;
}

/* ---------------------------------------------------------------- shuffle_assign */

START_TEST(test_assign_in_range_and_repeatable)
{
    frame *f = make_frame(30000, 2000, 1);
    const char *keys[] = {"k"};
    const int parts[] = {1, 2, 3, 7, 16, 1000};
    for (size_t t = 0; t < sizeof parts / sizeof parts[0]; t++) {
        int *a = assign(f, keys, 1, parts[t]);
        int *b = assign(f, keys, 1, parts[t]);
        ck_assert_int_eq(memcmp(a, b, frame_nrows(f) * sizeof *a), 0);
        if (parts[t] == 1)
            for (size_t i = 0; i < frame_nrows(f); i++) EXPECT(a[i] == 0, "row %zu", i);
        free(a);
        free(b);
    }
    /* an empty frame assigns nothing (and writes nothing to part) */
    frame *empty = frame_create();
    ck_assert_ptr_nonnull(frame_add_col(empty, "k", FRAME_STR, NULL));
    int sentinel = 12345;
    mr_err e;
    ck_assert_int_eq(shuffle_assign(empty, keys, 1, 4, &sentinel, &e), MR_OK);
    ck_assert_int_eq(sentinel, 12345);
    frame_free(empty);
    frame_free(f);
}
END_TEST

/* A key's partition must not depend on where the row is, which frame (mapper) holds it,
 * or what else the frame contains. */
START_TEST(test_same_key_same_partition_across_frames)
{
    mr_err e;
    size_t n = 20000;
    frame *a = make_frame(n, 500, 2);
    /* b: a's rows in a random order, as another mapper would see them, with different
     * payload columns (one dropped, one added) */
    size_t *perm = malloc(n * sizeof *perm);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    rng_state = 99;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rnd() % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    frame *b = ops_take(a, perm, n, &e);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(frame_drop_col(b, "v", &e), MR_OK);
    frame_col *w = frame_add_col(b, "w", FRAME_STR, &e);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < n; i++) frame_col_push_str(w, "x", 1);

    const char *k1[] = {"k"}, *k2[] = {"ik"}, *k3[] = {"k", "ik"};
    const char *const *keysets[] = {k1, k2, k3};
    size_t nks[] = {1, 1, 2};
    for (size_t t = 0; t < 3; t++) {
        int *pa = assign(a, keysets[t], nks[t], 11);
        int *pb = assign(b, keysets[t], nks[t], 11);
        for (size_t i = 0; i < n; i++)
            EXPECT(pb[i] == pa[perm[i]], "keyset %zu row %zu: %d vs %d", t, i, pb[i], pa[perm[i]]);
        /* rows with equal keys (nulls equal to each other) share one partition: check
         * every run of the rows sorted by key */
        ops_sort_key sk[2] = {{.col = keysets[t][0]}, {.col = nks[t] > 1 ? keysets[t][1] : NULL}};
        size_t *order = ops_sort_index(a, sk, nks[t], &e);
        ck_assert_ptr_nonnull(order);
        const frame_col *kc[2];
        for (size_t k = 0; k < nks[t]; k++) kc[k] = frame_col_by_name(a, keysets[t][k]);
        size_t runs = 0, used[11] = {0};
        for (size_t i = 1; i < n; i++) {
            if (ops_rows_equal(kc, order[i - 1], kc, order[i], nks[t]))
                EXPECT(pa[order[i]] == pa[order[i - 1]], "keyset %zu: equal keys split", t);
            else
                runs++;
        }
        for (size_t i = 0; i < n; i++) used[pa[i]]++;
        ck_assert_uint_gt(runs, 400);
        for (int p = 0; p < 11; p++) ck_assert_uint_gt(used[p], 0);   /* not all in one */
        free(order);
        free(pa);
        free(pb);
    }
    /* the two-column key is not just the first column's partition */
    int *pk = assign(a, k1, 1, 11), *pkk = assign(a, k3, 1 + 1, 11);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += pk[i] != pkk[i];
    ck_assert_uint_gt(differ, n / 2);
    free(pk);
    free(pkk);
    free(perm);
    frame_free(b);
    frame_free(a);
}
END_TEST

/* One mapper may store a whole-number key as int64 and another as float64 (a Lua map
 * emits numbers; whole ones become int64): both must reach the same reducer. */
START_TEST(test_int_and_float_keys_agree)
{
    mr_err e;
    frame *fi = frame_create(), *ff = frame_create();
    frame_col *ci = frame_add_col(fi, "key", FRAME_I64, &e);
    frame_col *cf = frame_add_col(ff, "key", FRAME_F64, &e);
    ck_assert(ci && cf);
    size_t n = 5000;
    for (size_t i = 0; i < n; i++) {
        int64_t v = (int64_t)(i * 7919 % 100003) - 50000;
        if (i % 97 == 0) {
            frame_col_push_null(ci);
            frame_col_push_null(cf);
        } else {
            frame_col_push_i64(ci, v);
            frame_col_push_f64(cf, (double)v);
        }
    }
    frame_col_push_i64(ci, 0);
    frame_col_push_f64(cf, -0.0);
    const char *keys[] = {"key"};
    int *a = assign(fi, keys, 1, 13), *b = assign(ff, keys, 1, 13);
    for (size_t i = 0; i <= n; i++) EXPECT(a[i] == b[i], "row %zu: %d vs %d", i, a[i], b[i]);
    free(a);
    free(b);
    frame_free(fi);
    frame_free(ff);
}
END_TEST

/* Partition sizes over many distinct keys: each within 5 standard deviations of n/p
 * (binomial), and a chi-square statistic no larger than 3 times its expectation. */
static void check_even(const int *part, size_t n, int nparts, const char *what)
{
    size_t *cnt = calloc((size_t)nparts, sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[part[i]]++;
    double expect = (double)n / nparts, sd = sqrt(n * (1.0 / nparts) * (1 - 1.0 / nparts));
    double chi2 = 0;
    for (int p = 0; p < nparts; p++) {
        EXPECT(fabs((double)cnt[p] - expect) <= 5 * sd, "%s: partition %d of %d holds %zu rows, "
               "expected %.0f +- %.0f", what, p, nparts, cnt[p], expect, sd);
        chi2 += ((double)cnt[p] - expect) * ((double)cnt[p] - expect) / expect;
    }
    EXPECT(chi2 <= 3.0 * (nparts - 1) + 10, "%s: chi-square %.1f over %d partitions", what, chi2,
           nparts);
    free(cnt);
}

START_TEST(test_distribution_even)
{
    mr_err e;
    size_t n = 200000;
    /* distinct keys: strings sharing a long prefix, and sequential integers (the classic
     * trap for a hash whose high bits barely change) */
    frame *f = frame_create();
    frame_col *s = frame_add_col(f, "s", FRAME_STR, &e);
    frame_col *i64 = frame_add_col(f, "n", FRAME_I64, &e);
    frame_col *big = frame_add_col(f, "big", FRAME_I64, &e);
    ck_assert(s && i64 && big);
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "https://example.com/page/%zu", i);
        frame_col_push_str(s, buf, (size_t)len);
        frame_col_push_i64(i64, (int64_t)i);
        frame_col_push_i64(big, (int64_t)(i << 32));   /* only high bits vary */
    }
    const char *cols[] = {"s", "n", "big"};
    const int parts[] = {2, 8, 13, 64, 256};
    for (size_t c = 0; c < 3; c++) {
        for (size_t t = 0; t < sizeof parts / sizeof parts[0]; t++) {
            int *p = assign(f, &cols[c], 1, parts[t]);
            check_even(p, n, parts[t], cols[c]);
            free(p);
        }
    }
    /* two columns together */
    const char *two[] = {"n", "s"};
    int *p = assign(f, two, 2, 10);
    check_even(p, n, 10, "n,s");
    free(p);
    frame_free(f);
}
END_TEST

/* ---------------------------------------------------------------- shuffle_write */

static char *tmp_path(const char *name)
{
    char *p = malloc(strlen(tmpdir) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmpdir, name);
    return p;
}

/* Reads every partition of path back and checks that it holds exactly the rows of f that
 * shuffle_assign routes there, each once, in their original order, with all columns. */
static void check_written(const frame *f, const char *path, const char *const *keys,
                          size_t nkeys, int nparts)
{
    mr_err e;
    mr_err_clear(&e);
    size_t n = frame_nrows(f);
    int *part = nparts > 1 ? assign(f, keys, nkeys, nparts) : calloc(n ? n : 1, sizeof(int));
    imf_reader *r = imf_reader_open(path, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    ck_assert_int_eq(imf_reader_nparts(r), nparts);
    ck_assert_uint_eq(imf_reader_rows(r, -1), n);
    uint8_t *seen = calloc(n ? n : 1, 1);
    for (int p = 0; p < nparts; p++) {
        frame *got = imf_read_all(path, p, &e);
        ck_assert_msg(got != NULL, "%s", e.msg);
        ck_assert_uint_eq(imf_reader_rows(r, p), frame_nrows(got));
        ck_assert_uint_eq(frame_ncols(got), frame_ncols(f));
        const frame_col *gid = frame_col_by_name(got, "id");
        ck_assert_ptr_nonnull(gid);
        size_t want = 0;
        for (size_t i = 0; i < n; i++) want += part[i] == p;
        ck_assert_uint_eq(frame_nrows(got), want);
        int64_t prev = -1;
        for (size_t i = 0; i < frame_nrows(got); i++) {
            int64_t id = gid->v.i64[i];
            EXPECT(id >= 0 && (size_t)id < n, "partition %d: id %lld", p, (long long)id);
            EXPECT(!seen[id], "row %lld written twice", (long long)id);
            EXPECT(part[id] == p, "row %lld in partition %d, assigned %d", (long long)id, p, part[id]);
            EXPECT(id > prev, "partition %d out of input order at %zu", p, i);
            seen[id] = 1;
            prev = id;
            for (size_t c = 0; c < frame_ncols(f); c++) {
                const frame_col *oc = frame_col_at(f, c);
                const frame_col *gc = frame_col_by_name(got, oc->name);
                EXPECT(gc && gc->type == oc->type, "column %s", oc->name);
                int nul = frame_col_is_null(oc, (size_t)id);
                EXPECT(frame_col_is_null(gc, i) == nul, "%s row %lld null", oc->name, (long long)id);
                if (nul) continue;
                if (oc->type == FRAME_STR) {
                    size_t la, lb;
                    const char *sa = frame_col_str(oc, (size_t)id, &la), *sb = frame_col_str(gc, i, &lb);
                    EXPECT(la == lb && memcmp(sa, sb, la) == 0, "%s row %lld", oc->name, (long long)id);
                } else {
                    EXPECT(oc->v.i64[id] == gc->v.i64[i], "%s row %lld", oc->name, (long long)id);
                }
            }
        }
        frame_free(got);
    }
    for (size_t i = 0; i < n; i++) EXPECT(seen[i], "row %zu lost", i);
    free(seen);
    imf_reader_free(r);
    free(part);
}

START_TEST(test_write_partitions)
{
    mr_err e;
    mr_err_clear(&e);
    frame *f = make_frame(40000, 3000, 3);
    char *path = tmp_path("out.imf");
    const char *k1[] = {"k"}, *k2[] = {"k", "ik"};
    ck_assert_msg(shuffle_write(f, path, 1, 5, k1, 1, &e) == MR_OK, "%s", e.msg);
    check_written(f, path, k1, 1, 5);
    ck_assert_msg(shuffle_write(f, path, 0, 7, k2, 2, &e) == MR_OK, "%s", e.msg);   /* replaces */
    check_written(f, path, k2, 2, 7);
    /* nparts 1: all rows in partition 0; keys are not looked at */
    const char *bogus[] = {"no_such_column"};
    ck_assert_msg(shuffle_write(f, path, 1, 1, bogus, 1, &e) == MR_OK, "%s", e.msg);
    check_written(f, path, NULL, 0, 1);
    ck_assert_msg(shuffle_write(f, path, 1, 1, NULL, 0, &e) == MR_OK, "%s", e.msg);
    check_written(f, path, NULL, 0, 1);
    ck_assert_int_eq(imf_verify(path, &e), MR_OK);
    free(path);
    frame_free(f);
}
END_TEST

START_TEST(test_write_few_rows_many_parts)
{
    /* more partitions than rows: the file still declares them all, most empty */
    mr_err e;
    mr_err_clear(&e);
    frame *f = make_frame(3, 3, 4);
    char *path = tmp_path("few.imf");
    const char *keys[] = {"ik"};
    ck_assert_msg(shuffle_write(f, path, 1, 64, keys, 1, &e) == MR_OK, "%s", e.msg);
    check_written(f, path, keys, 1, 64);
    /* and no rows at all (with the key column present) */
    frame *empty = frame_empty_like(f, &e);
    ck_assert_msg(shuffle_write(empty, path, 1, 8, keys, 1, &e) == MR_OK, "%s", e.msg);
    check_written(empty, path, keys, 1, 8);
    frame *back = imf_read_all(path, 3, &e);
    ck_assert_ptr_nonnull(back);
    ck_assert_uint_eq(frame_nrows(back), 0);
    ck_assert_uint_eq(frame_ncols(back), frame_ncols(f));   /* the schema survives */
    frame_free(back);
    frame_free(empty);
    free(path);
    frame_free(f);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(test_errors)
{
    mr_err e;
    frame *f = make_frame(100, 10, 5);
    int part[100];
    const char *missing[] = {"k", "kk"};

    mr_err_clear(&e);
    ck_assert_int_eq(shuffle_assign(f, missing, 2, 4, part, &e), MR_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "'kk'") != NULL, "%s", e.msg);

    char *path = tmp_path("err.imf");
    mr_err_clear(&e);
    ck_assert_int_eq(shuffle_write(f, path, 1, 4, missing, 2, &e), MR_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "'kk'") != NULL, "%s", e.msg);
    ck_assert_int_eq(access(path, F_OK), -1);   /* no intermediate, no temporary left */
    ck_assert_int_eq(dir_entries(tmpdir), 0);

    /* several reducers but no partition keys: the message says how to name them */
    mr_err_clear(&e);
    ck_assert_int_eq(shuffle_write(f, path, 1, 3, NULL, 0, &e), MR_EINVAL);
    ck_assert_msg(strstr(e.msg, "partition_by") != NULL, "%s", e.msg);
    ck_assert_int_eq(dir_entries(tmpdir), 0);

    /* a partition count below one is misuse, not a division by zero */
    const char *keys[] = {"k"};
    mr_err_clear(&e);
    ck_assert_int_eq(shuffle_assign(f, keys, 1, 0, part, &e), MR_EINVAL);
    mr_err_clear(&e);
    ck_assert_int_eq(shuffle_assign(f, keys, 1, -2, part, &e), MR_EINVAL);
    mr_err_clear(&e);
    ck_assert_int_ne(shuffle_write(f, path, 1, 0, keys, 1, &e), MR_OK);
    ck_assert_int_eq(dir_entries(tmpdir), 0);

    /* a folder that does not exist */
    char *nodir = tmp_path("nodir/x.imf");
    mr_err_clear(&e);
    ck_assert_int_ne(shuffle_write(f, nodir, 1, 2, keys, 1, &e), MR_OK);
    ck_assert_int_eq(dir_entries(tmpdir), 0);

    free(nodir);
    free(path);
    frame_free(f);
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *shuffle_suite(void)
{
    Suite *s = suite_create("shuffle");
    struct { const char *name; const TTest *tests[8]; } cases[] = {
        {"assign", {test_assign_in_range_and_repeatable, test_same_key_same_partition_across_frames,
                    test_int_and_float_keys_agree, test_distribution_even}},
        {"write", {test_write_partitions, test_write_few_rows_many_parts}},
        {"errors", {test_errors}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
        tcase_set_timeout(tc, 60);
        for (size_t j = 0; cases[i].tests[j]; j++) tcase_add_test(tc, cases[i].tests[j]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(shuffle_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
