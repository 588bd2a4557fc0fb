/* Unit tests for engine/extsort: the external merge sort against ops_sort on the same rows
 * (random keys with many ties, nulls, NaN, strings, descending keys, a sequence column
 * that shows stability), in memory, with budgets small enough to force runs and several
 * merge passes, with presorted runs, and merging sorted intermediate files (partitions,
 * int64 and float64 keys across files, more files than one pass opens). The scratch
 * folder is empty afterwards, and errors name the column. */
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

#include "engine/extsort.h"
#include "engine/frame.h"
#include "engine/imf.h"
#include "engine/ops.h"
#include "tmpdir.h"
#include "testrng.h"

#define EXPECT(cond, ...)                       \
    do {                                        \
        if (!(cond)) ck_abort_msg(__VA_ARGS__); \
    } while (0)

static char scratch[300];

static void tmp_setup(void)
{
    tmpdir_make("test_extsort");
    snprintf(scratch, sizeof scratch, "%s/scratch", tmpdir);
    ck_assert_int_eq(mkdir(scratch, 0700), 0);
}

static void tmp_teardown(void) { tmpdir_remove(); }

static int scratch_entries(void)
{
    DIR *d = opendir(scratch);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}


/* Rows seq0.. with: k (int64, 50 values, 2% null), s (string, 300 values, some sharing
 * an 8-byte prefix), x (float64 with NaN and nulls), seq (int64, the row number). */
static frame *make_rows(size_t n, int64_t seq0, int float_k)
{
    frame *f = frame_create();
    frame_col *k = frame_add_col(f, "k", float_k ? FRAME_F64 : FRAME_I64, NULL);
    frame_col *s = frame_add_col(f, "s", FRAME_STR, NULL);
    frame_col *x = frame_add_col(f, "x", FRAME_F64, NULL);
    frame_col *q = frame_add_col(f, "seq", FRAME_I64, NULL);
    ck_assert_ptr_nonnull(q);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd();
        if (r % 50 == 0) frame_col_push_null(k);
        else if (float_k) frame_col_push_f64(k, (double)(r % 50));
        else frame_col_push_i64(k, (int64_t)(r % 50));
        char buf[32];
        int len = snprintf(buf, sizeof buf, "prefix--%u", (unsigned)((r >> 8) % 300));
        frame_col_push_str(s, buf, (size_t)len);
        uint64_t t = (r >> 20) % 100;
        if (t == 0) frame_col_push_null(x);
        else if (t == 1) frame_col_push_f64(x, NAN);
        else frame_col_push_f64(x, (double)((r >> 30) % 1000) / 7.0 - 50);
        frame_col_push_i64(q, seq0 + (int64_t)i);
    }
    return f;
}

static int cells_equal(const frame_col *a, size_t i, const frame_col *b, size_t j)
{
    int na = frame_col_is_null(a, i), nb = frame_col_is_null(b, j);
    if (na || nb) return na && nb;
    if (a->type == FRAME_STR) {
        size_t la, lb;
        const char *pa = frame_col_str(a, i, &la), *pb = frame_col_str(b, j, &lb);
        return la == lb && memcmp(pa, pb, la) == 0;
    }
    double x = frame_col_num(a, i), y = frame_col_num(b, j);
    return (isnan(x) && isnan(y)) || x == y;
}

static void expect_frames_equal(const frame *got, const frame *want)
{
    ck_assert_uint_eq(frame_nrows(got), frame_nrows(want));
    for (size_t c = 0; c < frame_ncols(want); c++) {
        const frame_col *w = frame_col_at(want, c);
        const frame_col *g = frame_col_by_name(got, w->name);
        ck_assert_ptr_nonnull(g);
        for (size_t i = 0; i < frame_nrows(want); i++)
            EXPECT(cells_equal(g, i, w, i), "column %s row %zu differs", w->name, i);
    }
}

/* Collects emitted batches into one frame. */
static mr_code collect(void *ud, frame *batch, mr_err *e)
{
    frame **acc = ud;
    if (!*acc) {
        *acc = batch;
        return MR_OK;
    }
    mr_code rc = frame_append_frame(*acc, batch, e);
    frame_free(batch);
    return rc;
}

static const ops_sort_key KEYS3[] = {{"k", 0}, {"s", 1}, {"x", 0}};

static frame *sort_with(frame *const *parts, size_t nparts, uint64_t budget, int presorted,
                        extsort_stats *st)
{
    mr_err e = {0};
    extsort *s = extsort_create(KEYS3, 3, budget, scratch, &e);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < nparts; i++) {
        if (presorted) {
            frame *sorted = ops_sort(parts[i], KEYS3, 3, &e);
            ck_assert_ptr_nonnull(sorted);
            ck_assert_int_eq(extsort_add_sorted(s, sorted, 1, &e), MR_OK);
            frame_free(sorted);
        } else {
            ck_assert_msg(extsort_add(s, parts[i], &e) == MR_OK, "%s", e.msg);
        }
    }
    frame *out = NULL;
    ck_assert_msg(extsort_finish(s, collect, &out, &e) == MR_OK, "%s", e.msg);
    *st = *extsort_stats_of(s);
    extsort_free(s);
    ck_assert_int_eq(scratch_entries(), 0);
    return out;
}

static void check_sort(size_t nparts, size_t rows_each, uint64_t budget, int presorted,
                       int want_runs, int want_passes)
{
    rng_state = 0x1234567 + nparts;
    frame *parts[nparts];
    mr_err e = {0};
    for (size_t i = 0; i < nparts; i++) parts[i] = make_rows(rows_each, (int64_t)(i * rows_each), 0);
    frame *all = ops_concat((const frame *const *)parts, nparts, &e);
    frame *want = ops_sort(all, KEYS3, 3, &e);
    extsort_stats st;
    frame *got = sort_with(parts, nparts, budget, presorted, &st);
    expect_frames_equal(got, want);
    ck_assert_uint_eq(st.rows, nparts * rows_each);
    ck_assert_msg(st.runs >= want_runs, "runs %d < %d", st.runs, want_runs);
    ck_assert_msg(st.passes >= want_passes, "passes %d < %d", st.passes, want_passes);
    if (want_runs == 0) ck_assert_int_eq(st.runs, 0);
    for (size_t i = 0; i < nparts; i++) frame_free(parts[i]);
    frame_free(all);
    frame_free(want);
    frame_free(got);
}

START_TEST(in_memory_equals_ops_sort) { check_sort(5, 20000, 0, 0, 0, 0); }
END_TEST

START_TEST(spilled_runs_equal_ops_sort)
{
    /* 2 MB budget: runs of about 1 MB of buffered rows. */
    check_sort(40, 10000, 2u << 20, 0, 4, 1);
}
END_TEST

START_TEST(many_runs_merge_in_passes)
{
    /* 130 presorted runs are more than one pass opens: at least two passes. */
    check_sort(130, 700, 1u << 20, 1, 130, 2);
}
END_TEST

START_TEST(tiny_budget_many_spills_multi_pass)
{
    /* Buffers of ~32 KB: hundreds of runs from unsorted input. */
    check_sort(400, 500, 64u << 10, 0, 65, 2);
}
END_TEST

START_TEST(free_without_finish_leaves_nothing)
{
    mr_err e = {0};
    rng_state = 99;
    extsort *s = extsort_create(KEYS3, 3, 256u << 10, scratch, &e);
    frame *f = make_rows(50000, 0, 0);
    ck_assert_int_eq(extsort_add(s, f, &e), MR_OK);
    ck_assert_int_eq(extsort_add_sorted(s, f, 1, &e), MR_OK);   /* order does not matter here */
    ck_assert_int_gt(scratch_entries(), 0);
    extsort_free(s);
    ck_assert_int_eq(scratch_entries(), 0);
    frame_free(f);
    extsort_free(NULL);
}
END_TEST

START_TEST(missing_key_is_an_error)
{
    mr_err e = {0};
    ops_sort_key k[] = {{"nope", 0}};
    extsort *s = extsort_create(k, 1, 0, scratch, &e);
    rng_state = 5;
    frame *f = make_rows(10, 0, 0);
    ck_assert_int_eq(extsort_add(s, f, &e), MR_OK);
    frame *out = NULL;
    ck_assert_int_eq(extsort_finish(s, collect, &out, &e), MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "nope"));
    ck_assert_ptr_null(out);
    extsort_free(s);
    frame_free(f);
}
END_TEST

/* nfiles sorted intermediates with 2 partitions; odd files have float64 keys. */
static void check_merge_files(size_t nfiles, size_t rows_each)
{
    mr_err e = {0};
    rng_state = 0xabcdef + nfiles;
    char *paths[nfiles];
    frame *p1[nfiles];
    const ops_sort_key keys[] = {{"k", 0}, {"s", 0}};
    for (size_t i = 0; i < nfiles; i++) {
        char buf[400];
        snprintf(buf, sizeof buf, "%s/in-%03zu.imf", tmpdir, i);
        paths[i] = strdup(buf);
        imf_writer *w = imf_writer_open(buf, 1, &e);
        ck_assert_ptr_nonnull(w);
        ck_assert_int_eq(imf_writer_set_group_rows(w, 1000, &e), MR_OK);
        for (int part = 0; part < 2; part++) {
            frame *raw = make_rows(rows_each, (int64_t)(i * 10 * rows_each), (int)(i % 2));
            frame *sorted = ops_sort(raw, keys, 2, &e);
            ck_assert_int_eq(imf_writer_add(w, sorted, part, &e), MR_OK);
            if (part == 1) p1[i] = sorted;
            else frame_free(sorted);
            frame_free(raw);
        }
        ck_assert_int_eq(imf_writer_close(w, &e), MR_OK);
        imf_writer_free(w);
    }
    frame *all = frame_empty_like(p1[1], &e);   /* file 1 has float64 keys */
    for (size_t i = 0; i < nfiles; i++) ck_assert_int_eq(frame_append_frame(all, p1[i], &e), MR_OK);
    frame *want = ops_sort(all, keys, 2, &e);
    frame *got = NULL;
    extsort_stats st;
    ck_assert_msg(extsort_merge_files((const char *const *)paths, nfiles, 1, keys, 2, 1u << 20,
                                      scratch, collect, &got, &st, &e) == MR_OK, "%s", e.msg);
    expect_frames_equal(got, want);
    ck_assert_int_eq(frame_col_by_name(got, "k")->type, FRAME_F64);
    ck_assert_int_eq(st.passes, nfiles > 64 ? 3 : 1);
    ck_assert_int_eq(scratch_entries(), 0);
    for (size_t i = 0; i < nfiles; i++) {
        free(paths[i]);
        frame_free(p1[i]);
    }
    frame_free(all);
    frame_free(want);
    frame_free(got);
}

START_TEST(merge_sorted_files) { check_merge_files(7, 3000); }
END_TEST

START_TEST(merge_more_files_than_fanin) { check_merge_files(70, 300); }
END_TEST

static Suite *extsort_suite(void)
{
    Suite *s = suite_create("extsort");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, in_memory_equals_ops_sort);
    tcase_add_test(tc, spilled_runs_equal_ops_sort);
    tcase_add_test(tc, many_runs_merge_in_passes);
    tcase_add_test(tc, tiny_budget_many_spills_multi_pass);
    tcase_add_test(tc, free_without_finish_leaves_nothing);
    tcase_add_test(tc, missing_key_is_an_error);
    tcase_add_test(tc, merge_sorted_files);
    tcase_add_test(tc, merge_more_files_than_fanin);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(extsort_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
