/* Unit tests for engine/sketch: the KLL quantile sketch against exact quantiles on
 * uniform, normal-ish, heavily skewed and adversarially ordered data, merges, and the
 * byte form. The documented bound (sketch.h) is asserted query by query. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sketch.h"

static uint64_t rng_state;

static double rnd01(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}

typedef enum dist { DIST_UNIFORM, DIST_NORMAL, DIST_SKEWED, DIST_SORTED, DIST_FEW } dist;

static double *make_data(dist d, size_t n, uint64_t seed)
{
    double *v = malloc(n * sizeof *v);
    rng_state = seed;
    for (size_t i = 0; i < n; i++) {
        switch (d) {
        case DIST_UNIFORM: v[i] = rnd01() * 1000 - 500; break;
        case DIST_NORMAL: {
            double s = 0;
            for (int k = 0; k < 12; k++) s += rnd01();
            v[i] = s - 6;
            break;
        }
        case DIST_SKEWED: v[i] = exp(8 * rnd01() * rnd01() * 3) / (rnd01() + 1e-9); break;
        case DIST_SORTED: v[i] = (double)i; break;   /* worst order for naive sketches */
        case DIST_FEW: v[i] = (double)(int)(rnd01() * 5); break;   /* heavy ties */
        }
    }
    return v;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t count_lt(const double *s, size_t n, double x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (s[m] < x) lo = m + 1; else hi = m;
    }
    return lo;
}

static size_t count_le(const double *s, size_t n, double x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (s[m] <= x) lo = m + 1; else hi = m;
    }
    return lo;
}

/* Asserts the documented guarantee for q = 0.01 .. 0.99 and returns the worst observed
 * normalized rank error. */
static double check_bound(const sketch *s, const double *sorted, size_t n, const char *what)
{
    double eps = sketch_rank_error(s, 0.999);
    double hard = sketch_max_rank_error(s);
    double worst = 0;
    ck_assert_msg(eps <= hard + 1e-12 || hard == 0, "%s: probabilistic bound %g above hard %g",
                  what, eps, hard);
    for (int qi = 1; qi <= 99; qi++) {
        double q = qi / 100.0;
        double x = sketch_quantile(s, q);
        double lt = (double)count_lt(sorted, n, x) / n, le = (double)count_le(sorted, n, x) / n;
        ck_assert_msg(lt <= q + eps + 1e-12 && le >= q - eps - 1e-12,
                      "%s: q=%.2f gave %g with ranks [%g, %g], bound %g", what, q, x, lt, le, eps);
        double err = lt > q ? lt - q : le < q ? q - le : 0;
        if (err > worst) worst = err;
    }
    ck_assert(sketch_quantile(s, 0) == sorted[0]);
    ck_assert(sketch_quantile(s, 1) == sorted[n - 1]);
    return worst;
}

static void run_dist(dist d, const char *what, size_t n)
{
    double *v = make_data(d, n, 42 + (uint64_t)d);
    sketch *s = sketch_create(0);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(sketch_update(s, v[i]), MR_OK);
    ck_assert_uint_eq(sketch_count(s), n);
    ck_assert_uint_lt(sketch_retained(s), 4 * SKETCH_DEFAULT_K);
    qsort(v, n, sizeof *v, cmp_d);
    double worst = check_bound(s, v, n, what);
    double eps = sketch_rank_error(s, 0.999);
    /* The bound must be useful, not vacuous: a few percent at k = 200. */
    ck_assert_msg(eps < 0.05, "%s: bound %g too loose", what, eps);
    printf("sketch %-8s n=%zu retained=%zu worst rank error %.4f, bound(99.9%%) %.4f, bound(99%%) %.4f, hard %.3f\n",
           what, n, sketch_retained(s), worst, eps, sketch_rank_error(s, 0.99),
           sketch_max_rank_error(s));
    sketch_free(s);
    free(v);
}

START_TEST(test_uniform) { run_dist(DIST_UNIFORM, "uniform", 1000000); }
END_TEST
START_TEST(test_normal) { run_dist(DIST_NORMAL, "normal", 300000); }
END_TEST
START_TEST(test_skewed) { run_dist(DIST_SKEWED, "skewed", 300000); }
END_TEST
START_TEST(test_sorted) { run_dist(DIST_SORTED, "sorted", 300000); }
END_TEST
START_TEST(test_ties) { run_dist(DIST_FEW, "ties", 100000); }
END_TEST

START_TEST(test_small_is_exact)
{
    /* Below level 0's capacity nothing is compacted: the answer is the exact inverse CDF. */
    size_t n = 100;
    double *v = make_data(DIST_UNIFORM, n, 7);
    sketch *s = sketch_create(200);
    for (size_t i = 0; i < n; i++) sketch_update(s, v[i]);
    qsort(v, n, sizeof *v, cmp_d);
    ck_assert(sketch_rank_error(s, 0.99) == 0);
    for (int qi = 1; qi < 100; qi++) {
        double q = qi / 100.0;
        size_t idx = (size_t)ceil(q * n) - 1;
        ck_assert_msg(sketch_quantile(s, q) == v[idx], "q=%g", q);
    }
    sketch_free(s);
    free(v);
}
END_TEST

START_TEST(test_empty_and_nan)
{
    sketch *s = sketch_create(0);
    ck_assert(isnan(sketch_quantile(s, 0.5)));
    sketch_update(s, NAN);
    ck_assert_uint_eq(sketch_count(s), 0);
    sketch_update(s, 3.5);
    ck_assert(sketch_quantile(s, 0.5) == 3.5);
    ck_assert(sketch_min(s) == 3.5 && sketch_max(s) == 3.5);
    sketch_free(s);
    sketch_free(NULL);
}
END_TEST

START_TEST(test_merge_serialized)
{
    /* Ten mappers each sketch a slice of skewed data; the reducer merges their bytes. */
    size_t n = 400000, parts = 10;
    double *v = make_data(DIST_SKEWED, n, 99);
    sketch *total = NULL;
    mr_err e;
    for (size_t p = 0; p < parts; p++) {
        sketch *s = sketch_create(0);
        for (size_t i = p * n / parts; i < (p + 1) * n / parts; i++) sketch_update(s, v[i]);
        size_t sz = sketch_serialized_size(s);
        unsigned char *buf = malloc(sz);
        ck_assert_uint_eq(sketch_serialize(s, buf), sz);
        sketch *back = sketch_deserialize(buf, sz, &e);
        ck_assert_ptr_nonnull(back);
        ck_assert_uint_eq(sketch_count(back), sketch_count(s));
        ck_assert(sketch_quantile(back, 0.3) == sketch_quantile(s, 0.3));
        free(buf);
        sketch_free(s);
        if (!total) {
            total = back;
        } else {
            ck_assert_int_eq(sketch_merge(total, back, &e), MR_OK);
            sketch_free(back);
        }
    }
    ck_assert_uint_eq(sketch_count(total), n);
    qsort(v, n, sizeof *v, cmp_d);
    double worst = check_bound(total, v, n, "merged");
    printf("sketch merged   n=%zu worst rank error %.4f, bound(99.9%%) %.4f\n", n, worst,
           sketch_rank_error(total, 0.999));
    sketch_free(total);
    free(v);
}
END_TEST

START_TEST(test_corrupt_bytes)
{
    sketch *s = sketch_create(0);
    for (int i = 0; i < 5000; i++) sketch_update(s, i);
    size_t sz = sketch_serialized_size(s);
    unsigned char *buf = malloc(sz);
    sketch_serialize(s, buf);
    mr_err e;
    mr_err_clear(&e);
    ck_assert_ptr_null(sketch_deserialize(buf, sz - 3, &e));
    ck_assert_int_eq(e.code, MR_ECORRUPT);
    ck_assert_ptr_null(sketch_deserialize(buf, 10, &e));
    buf[0] = 'X';
    mr_err_clear(&e);
    ck_assert_ptr_null(sketch_deserialize(buf, sz, &e));
    ck_assert_int_eq(e.code, MR_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(e.msg, "magic"));
    free(buf);
    sketch_free(s);
}
END_TEST

static Suite *sketch_suite(void)
{
    Suite *s = suite_create("sketch");
    TCase *acc = tcase_create("accuracy");
    tcase_set_timeout(acc, 120);
    tcase_add_test(acc, test_uniform);
    tcase_add_test(acc, test_normal);
    tcase_add_test(acc, test_skewed);
    tcase_add_test(acc, test_sorted);
    tcase_add_test(acc, test_ties);
    tcase_add_test(acc, test_small_is_exact);
    tcase_add_test(acc, test_empty_and_nan);
    suite_add_tcase(s, acc);
    TCase *merge = tcase_create("merge and bytes");
    tcase_set_timeout(merge, 120);
    tcase_add_test(merge, test_merge_serialized);
    tcase_add_test(merge, test_corrupt_bytes);
    suite_add_tcase(s, merge);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sketch_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
