/* Unit tests for engine/groupby: every aggregate against an independent naive
 * computation (sort rows by key, scan runs, full-sort quantiles) on random data with
 * nulls, many groups, one group, empty input; partial/merge against groupby_run; and a
 * timing of the flagship shape (count, sum, p90 of float64 by a ~1000-value string key). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/frame.h"
#include "engine/groupby.h"
#include "engine/sketch.h"
#include "testrng.h"

static double rnd01(void) { return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0); }

/* ---- random input ----
 * k: string key (nkeys distinct, ~5% null); ik: int64 key (~3% null);
 * x: float64 (~10% null); y: int64 (~10% null, few distinct); s: string (~10% null);
 * b: bool. */
static frame *make_frame(size_t n, size_t nkeys, uint64_t seed)
{
    mr_err e;
    rng_state = seed | 1;
    frame *f = frame_create();
    frame_col *k = frame_add_col(f, "k", FRAME_STR, &e);
    frame_col *ik = frame_add_col(f, "ik", FRAME_I64, &e);
    frame_col *x = frame_add_col(f, "x", FRAME_F64, &e);
    frame_col *y = frame_add_col(f, "y", FRAME_I64, &e);
    frame_col *s = frame_add_col(f, "s", FRAME_STR, &e);
    frame_col *b = frame_add_col(f, "b", FRAME_BOOL, &e);
    ck_assert(k && ik && x && y && s && b);
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        if (rnd() % 20 == 0) {
            frame_col_push_null(k);
        } else {
            int len = snprintf(buf, sizeof buf, "key%llu", (unsigned long long)(rnd() % nkeys));
            frame_col_push_str(k, buf, (size_t)len);
        }
        if (rnd() % 33 == 0) frame_col_push_null(ik);
        else frame_col_push_i64(ik, (int64_t)(rnd() % 7) - 3);
        if (rnd() % 10 == 0) frame_col_push_null(x);
        else frame_col_push_f64(x, floor(rnd01() * 2000 - 1000) / 8);   /* ties happen */
        if (rnd() % 10 == 0) frame_col_push_null(y);
        else frame_col_push_i64(y, (int64_t)(rnd() % 50) - 25);
        if (rnd() % 10 == 0) {
            frame_col_push_null(s);
        } else {
            int len = snprintf(buf, sizeof buf, "s%02llu", (unsigned long long)(rnd() % 40));
            frame_col_push_str(s, buf, (size_t)(len - (int)(rnd() % 2)));   /* prefixes too */
        }
        frame_col_push_bool(b, (int)(rnd() % 2));
    }
    return f;
}

/* ---- naive reference: sort row indices by key, then scan runs ---- */
static const frame_col *ref_keys[4];
static size_t ref_nkeys;

static int cell_cmp(const frame_col *c, size_t i, size_t j)
{
    int ni = frame_col_is_null(c, i), nj = frame_col_is_null(c, j);
    if (ni || nj) return nj - ni;   /* nulls first */
    if (c->type == FRAME_STR) {
        size_t la, lb;
        const char *a = frame_col_str(c, i, &la), *b = frame_col_str(c, j, &lb);
        int r = memcmp(a, b, la < lb ? la : lb);
        return r ? r : (la > lb) - (la < lb);
    }
    double a = frame_col_num(c, i), b = frame_col_num(c, j);
    return (a > b) - (a < b);
}

static int row_cmp(const void *pa, const void *pb)
{
    size_t i = *(const size_t *)pa, j = *(const size_t *)pb;
    for (size_t k = 0; k < ref_nkeys; k++) {
        int r = cell_cmp(ref_keys[k], i, j);
        if (r) return r;
    }
    return (i > j) - (i < j);   /* stable: row order inside a group */
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static const frame_col *str_col;
static int str_row_cmp(const void *a, const void *b)
{
    return cell_cmp(str_col, *(const size_t *)a, *(const size_t *)b);
}

typedef struct ref_group {
    size_t first;      /* first row (input order) */
    size_t *rows;      /* rows in input order */
    size_t n;
} ref_group;

static int first_cmp(const void *a, const void *b)
{
    size_t x = ((const ref_group *)a)->first, y = ((const ref_group *)b)->first;
    return (x > y) - (x < y);
}

/* Groups in order of first appearance. */
static ref_group *ref_groups(const frame *f, const char *const *keys, size_t nk, size_t *ng)
{
    size_t n = frame_nrows(f);
    ref_nkeys = nk;
    for (size_t k = 0; k < nk; k++) ref_keys[k] = frame_col_by_name(f, keys[k]);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    qsort(idx, n, sizeof *idx, row_cmp);
    ref_group *g = calloc(n + 1, sizeof *g);
    size_t m = 0;
    for (size_t i = 0; nk > 0 && i < n;) {
        size_t j = i + 1;
        while (j < n) {
            size_t a = idx[i], b = idx[j];
            int same = 1;
            for (size_t k = 0; k < nk; k++) same &= cell_cmp(ref_keys[k], a, b) == 0;
            if (!same) break;
            j++;
        }
        g[m].rows = malloc((j - i) * sizeof(size_t));
        memcpy(g[m].rows, idx + i, (j - i) * sizeof(size_t));
        g[m].n = j - i;
        g[m].first = idx[i];
        m++;
        i = j;
    }
    if (nk == 0) {   /* the whole frame is one group, even when empty */
        m = 1;
        g[0].rows = malloc((n ? n : 1) * sizeof(size_t));
        memcpy(g[0].rows, idx, n * sizeof(size_t));
        g[0].n = n;
        g[0].first = 0;
    }
    qsort(g, m, sizeof *g, first_cmp);   /* order of first appearance */
    free(idx);
    *ng = m;
    return g;
}

static void ref_free(ref_group *g, size_t ng)
{
    for (size_t i = 0; i < ng; i++) free(g[i].rows);
    free(g);
}

/* Full-sort reference quantile (numpy linear). */
static double ref_quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, dbl_cmp);
    double h = (n - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n) return v[n - 1 < lo ? n - 1 : lo];
    return v[lo] + (h - lo) * (v[lo + 1] - v[lo]);
}

static void assert_close(double a, double b, const char *what, size_t g)
{
    double tol = 1e-9 * (fabs(a) + fabs(b) + 1);
    ck_assert_msg(fabs(a - b) <= tol, "%s group %zu: got %.17g want %.17g", what, g, a, b);
}

/* Checks every aggregate of the standard set on one group. */
static void check_group(const frame *f, const frame *out, size_t orow, const ref_group *g)
{
    const frame_col *x = frame_col_by_name(f, "x"), *y = frame_col_by_name(f, "y");
    const frame_col *s = frame_col_by_name(f, "s");
    const frame_col *oc;
    double *vals = malloc((g->n ? g->n : 1) * sizeof *vals);
    size_t nx = 0, ny = 0, ns = 0;
    double sx = 0;
    int64_t sy = 0;
    size_t firstx = SIZE_MAX, firsts = SIZE_MAX, mins = SIZE_MAX, maxs = SIZE_MAX;
    for (size_t k = 0; k < g->n; k++) {
        size_t r = g->rows[k];
        if (!frame_col_is_null(x, r)) {
            vals[nx++] = x->v.f64[r];
            sx += x->v.f64[r];
            if (firstx == SIZE_MAX) firstx = r;
        }
        if (!frame_col_is_null(y, r)) {
            ny++;
            sy += y->v.i64[r];
        }
        if (!frame_col_is_null(s, r)) {
            ns++;
            if (firsts == SIZE_MAX) firsts = r;
            if (mins == SIZE_MAX || cell_cmp(s, r, mins) < 0) mins = r;
            if (maxs == SIZE_MAX || cell_cmp(s, r, maxs) > 0) maxs = r;
        }
    }
    oc = frame_col_by_name(out, "n");
    ck_assert_int_eq(oc->v.i64[orow], (int64_t)g->n);
    oc = frame_col_by_name(out, "nx");
    ck_assert_int_eq(oc->v.i64[orow], (int64_t)nx);
    oc = frame_col_by_name(out, "sumx");
    ck_assert_int_eq(frame_col_is_null(oc, orow), nx == 0);
    if (nx) assert_close(oc->v.f64[orow], sx, "sumx", orow);
    oc = frame_col_by_name(out, "sumy");
    ck_assert_int_eq(oc->type, FRAME_I64);
    ck_assert_int_eq(frame_col_is_null(oc, orow), ny == 0);
    if (ny) ck_assert_int_eq(oc->v.i64[orow], sy);
    oc = frame_col_by_name(out, "meanx");
    ck_assert_int_eq(frame_col_is_null(oc, orow), nx == 0);
    if (nx) assert_close(oc->v.f64[orow], sx / nx, "meanx", orow);
    oc = frame_col_by_name(out, "firstx");
    ck_assert_int_eq(frame_col_is_null(oc, orow), nx == 0);
    if (nx) ck_assert(oc->v.f64[orow] == x->v.f64[firstx]);
    /* String results compared by bytes. */
    const char *names[3] = {"firsts", "mins", "maxs"};
    size_t want[3] = {firsts, mins, maxs};
    for (int t = 0; t < 3; t++) {
        oc = frame_col_by_name(out, names[t]);
        ck_assert_int_eq(frame_col_is_null(oc, orow), ns == 0);
        if (!ns) continue;
        size_t la, lb;
        const char *a = frame_col_str(oc, orow, &la), *b = frame_col_str(s, want[t], &lb);
        ck_assert_msg(la == lb && memcmp(a, b, la) == 0, "%s group %zu", names[t], orow);
    }
    /* min/max of x from the sorted values; quantiles from a full sort. */
    qsort(vals, nx, sizeof *vals, dbl_cmp);
    oc = frame_col_by_name(out, "minx");
    ck_assert_int_eq(frame_col_is_null(oc, orow), nx == 0);
    if (nx) ck_assert(oc->v.f64[orow] == vals[0]);
    oc = frame_col_by_name(out, "maxx");
    if (nx) ck_assert(oc->v.f64[orow] == vals[nx - 1]);
    const char *qn[4] = {"q0", "q50", "q90", "q100"};
    double qs[4] = {0, 0.5, 0.9, 1};
    for (int t = 0; t < 4; t++) {
        oc = frame_col_by_name(out, qn[t]);
        ck_assert_int_eq(frame_col_is_null(oc, orow), nx == 0);
        if (nx) assert_close(oc->v.f64[orow], ref_quantile(vals, nx, qs[t]), qn[t], orow);
    }
    /* approx: within the sketch's rank bound (tiny groups are exact). */
    oc = frame_col_by_name(out, "aq50");
    ck_assert_int_eq(frame_col_is_null(oc, orow), nx == 0);
    if (nx) {
        double a = oc->v.f64[orow];
        size_t lt = 0, le = 0;
        for (size_t k = 0; k < nx; k++) {
            lt += vals[k] < a;
            le += vals[k] <= a;
        }
        ck_assert_msg(lt <= 0.5 * nx + 0.03 * nx + 1 && le + 0.03 * nx + 1 >= 0.5 * nx,
                      "aq50 group %zu: %g has ranks %zu..%zu of %zu", orow, a, lt, le, nx);
    }
    /* count distinct: sort and count runs. */
    int64_t *dy = malloc((ny ? ny : 1) * sizeof *dy);
    size_t m = 0;
    for (size_t k = 0; k < g->n; k++)
        if (!frame_col_is_null(y, g->rows[k])) dy[m++] = y->v.i64[g->rows[k]];
    qsort(dy, m, sizeof *dy, i64_cmp);
    size_t distinct = 0;
    for (size_t a = 0; a < m; a++) distinct += a == 0 || dy[a] != dy[a - 1];
    oc = frame_col_by_name(out, "dy");
    ck_assert_int_eq(oc->v.i64[orow], (int64_t)distinct);
    size_t *rs = malloc((g->n ? g->n : 1) * sizeof *rs), nrs = 0;
    for (size_t a = 0; a < g->n; a++)
        if (!frame_col_is_null(s, g->rows[a])) rs[nrs++] = g->rows[a];
    str_col = s;
    qsort(rs, nrs, sizeof *rs, str_row_cmp);
    size_t dstr = 0;
    for (size_t a = 0; a < nrs; a++) dstr += a == 0 || cell_cmp(s, rs[a], rs[a - 1]) != 0;
    oc = frame_col_by_name(out, "ds");
    ck_assert_int_eq(oc->v.i64[orow], (int64_t)dstr);
    free(rs);
    free(dy);
    free(vals);
}

static const groupby_agg std_aggs[] = {
    {"n", GROUPBY_COUNT, NULL, 0},
    {"nx", GROUPBY_COUNT, "x", 0},
    {"sumx", GROUPBY_SUM, "x", 0},
    {"sumy", GROUPBY_SUM, "y", 0},
    {"meanx", GROUPBY_MEAN, "x", 0},
    {"minx", GROUPBY_MIN, "x", 0},
    {"maxx", GROUPBY_MAX, "x", 0},
    {"mins", GROUPBY_MIN, "s", 0},
    {"maxs", GROUPBY_MAX, "s", 0},
    {"firstx", GROUPBY_FIRST, "x", 0},
    {"firsts", GROUPBY_FIRST, "s", 0},
    {"q0", GROUPBY_QUANTILE, "x", 0},
    {"q50", GROUPBY_QUANTILE, "x", 0.5},
    {"q90", GROUPBY_QUANTILE, "x", 0.9},
    {"q100", GROUPBY_QUANTILE, "x", 1},
    {"aq50", GROUPBY_APPROX_QUANTILE, "x", 0.5},
    {"dy", GROUPBY_COUNT_DISTINCT, "y", 0},
    {"ds", GROUPBY_COUNT_DISTINCT, "s", 0},
};
#define NSTD (sizeof std_aggs / sizeof std_aggs[0])

/* Runs group-by and compares every group and key with the naive reference. */
static void check_against_ref(const frame *f, const char *const *keys, size_t nk)
{
    mr_err e;
    mr_err_clear(&e);
    frame *out = groupby_run(f, keys, nk, std_aggs, NSTD, &e);
    ck_assert_msg(out != NULL, "groupby_run: %s", e.msg);
    size_t ng;
    ref_group *g = ref_groups(f, keys, nk, &ng);
    ck_assert_uint_eq(frame_nrows(out), ng);
    ck_assert_uint_eq(frame_ncols(out), nk + NSTD);
    for (size_t k = 0; k < nk; k++) ck_assert_str_eq(frame_col_at(out, k)->name, keys[k]);
    for (size_t a = 0; a < NSTD; a++) ck_assert_str_eq(frame_col_at(out, nk + a)->name, std_aggs[a].out);
    for (size_t i = 0; i < ng; i++) {
        for (size_t k = 0; k < nk; k++) {   /* keys, in first-appearance order */
            const frame_col *kc = frame_col_by_name(f, keys[k]), *oc = frame_col_at(out, k);
            ck_assert_int_eq(frame_col_is_null(oc, i), frame_col_is_null(kc, g[i].first));
            if (frame_col_is_null(oc, i)) continue;
            if (kc->type == FRAME_STR) {
                size_t la, lb;
                const char *a = frame_col_str(oc, i, &la), *b = frame_col_str(kc, g[i].first, &lb);
                ck_assert(la == lb && memcmp(a, b, la) == 0);
            } else {
                ck_assert(frame_col_num(oc, i) == frame_col_num(kc, g[i].first));
            }
        }
        check_group(f, out, i, &g[i]);
    }
    ref_free(g, ng);
    frame_free(out);
}

START_TEST(test_string_key_nulls)
{
    frame *f = make_frame(5000, 40, 1);
    const char *keys[] = {"k"};
    check_against_ref(f, keys, 1);
    frame_free(f);
}
END_TEST

START_TEST(test_int_key)
{
    frame *f = make_frame(4000, 10, 2);
    const char *keys[] = {"ik"};
    check_against_ref(f, keys, 1);
    frame_free(f);
}
END_TEST

START_TEST(test_multi_key)
{
    frame *f = make_frame(6000, 15, 3);
    const char *keys[] = {"k", "ik", "b"};
    check_against_ref(f, keys, 3);
    frame_free(f);
}
END_TEST

START_TEST(test_many_groups)
{
    /* 1e5 distinct keys: the hash table grows many times. */
    frame *f = make_frame(150000, 100000, 4);
    const char *keys[] = {"k"};
    check_against_ref(f, keys, 1);
    const char *keys2[] = {"k", "y"};
    check_against_ref(f, keys2, 2);
    frame_free(f);
}
END_TEST

START_TEST(test_one_group)
{
    frame *f = make_frame(3000, 1, 5);
    const char *keys[] = {"b"};   /* two groups */
    check_against_ref(f, keys, 1);
    check_against_ref(f, NULL, 0);   /* no keys: one group */
    frame_free(f);
}
END_TEST

START_TEST(test_empty)
{
    frame *f = make_frame(0, 1, 6);
    const char *keys[] = {"k"};
    mr_err e;
    frame *out = groupby_run(f, keys, 1, std_aggs, NSTD, &e);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(frame_nrows(out), 0);
    ck_assert_uint_eq(frame_ncols(out), 1 + NSTD);
    frame_free(out);
    out = groupby_run(f, NULL, 0, std_aggs, NSTD, &e);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(frame_nrows(out), 1);
    ck_assert_int_eq(frame_col_by_name(out, "n")->v.i64[0], 0);
    ck_assert_int_eq(frame_col_by_name(out, "dy")->v.i64[0], 0);
    for (size_t a = 0; a < NSTD; a++) {
        const frame_col *c = frame_col_at(out, a);
        int is_count = std_aggs[a].fn == GROUPBY_COUNT || std_aggs[a].fn == GROUPBY_COUNT_DISTINCT;
        ck_assert_int_eq(frame_col_is_null(c, 0), !is_count);
    }
    frame_free(out);
    frame_free(f);
}
END_TEST

START_TEST(test_errors)
{
    frame *f = make_frame(10, 2, 7);
    mr_err e;
    const char *keys[] = {"k"}, *bad[] = {"nope"};
    mr_err_clear(&e);
    ck_assert_ptr_null(groupby_run(f, bad, 1, std_aggs, 1, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "nope"));
    groupby_agg sum_str = {"t", GROUPBY_SUM, "s", 0};
    ck_assert_ptr_null(groupby_run(f, keys, 1, &sum_str, 1, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'s'"));
    groupby_agg q_bad = {"t", GROUPBY_QUANTILE, "x", 1.5};
    ck_assert_ptr_null(groupby_run(f, keys, 1, &q_bad, 1, &e));
    groupby_agg dup[2] = {{"t", GROUPBY_COUNT, NULL, 0}, {"t", GROUPBY_SUM, "x", 0}};
    ck_assert_ptr_null(groupby_run(f, keys, 1, dup, 2, &e));
    groupby_agg missing = {"t", GROUPBY_MAX, "zz", 0};
    ck_assert_ptr_null(groupby_run(f, keys, 1, &missing, 1, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "zz"));
    groupby_fn fn;
    ck_assert_int_eq(groupby_fn_parse("approx_percentile", &fn), 0);
    ck_assert_int_eq(fn, GROUPBY_APPROX_QUANTILE);
    ck_assert_int_eq(groupby_fn_parse("median?", &fn), -1);
    frame_free(f);
}
END_TEST

START_TEST(test_quantile_selection)
{
    /* groupby_quantile (selection) against a full sort: small and large arrays (the
     * sampling step starts above 600 values), ties, sorted, reversed and organ-pipe runs,
     * every q on a grid. */
    rng_state = 77;
    enum { MAXN = 5000 };
    double *v = malloc(MAXN * sizeof *v), *w = malloc(MAXN * sizeof *w);
    for (int trial = 0; trial < 300; trial++) {
        size_t n = 1 + rnd() % (trial < 200 ? 300 : MAXN);
        int shape = trial % 5;
        for (size_t i = 0; i < n; i++) {
            switch (shape) {
            case 0: v[i] = rnd01(); break;
            case 1: v[i] = (double)(rnd() % 4); break;
            case 2: v[i] = (double)i; break;
            case 3: v[i] = (double)(n - i); break;
            default: v[i] = (double)(i < n / 2 ? i : n - i); break;
            }
        }
        for (int qi = 0; qi <= 20; qi++) {
            double q = qi / 20.0;
            memcpy(w, v, n * sizeof *v);
            double got = groupby_quantile(w, n, q);
            memcpy(w, v, n * sizeof *v);
            double want = ref_quantile(w, n, q);
            ck_assert_msg(fabs(got - want) <= 1e-12 * (1 + fabs(want)), "n=%zu shape %d q=%g: %g vs %g",
                          n, shape, q, got, want);
        }
    }
    ck_assert(isnan(groupby_quantile(v, 0, 0.5)));
    free(v);
    free(w);
}
END_TEST

START_TEST(test_nan_skipped)
{
    mr_err e;
    frame *f = frame_create();
    frame_col *x = frame_add_col(f, "x", FRAME_F64, &e);
    double vals[] = {3, NAN, 1, 2, NAN};
    for (int i = 0; i < 5; i++) frame_col_push_f64(x, vals[i]);
    groupby_agg a[] = {{"q", GROUPBY_QUANTILE, "x", 0.5}, {"mn", GROUPBY_MIN, "x", 0},
                       {"mx", GROUPBY_MAX, "x", 0}, {"aq", GROUPBY_APPROX_QUANTILE, "x", 1}};
    frame *out = groupby_run(f, NULL, 0, a, 4, &e);
    ck_assert_ptr_nonnull(out);
    ck_assert(frame_col_by_name(out, "q")->v.f64[0] == 2);
    ck_assert(frame_col_by_name(out, "mn")->v.f64[0] == 1);
    ck_assert(frame_col_by_name(out, "mx")->v.f64[0] == 3);
    ck_assert(frame_col_by_name(out, "aq")->v.f64[0] == 3);
    frame_free(out);
    frame_free(f);
}
END_TEST

/* ---- partial / merge ---- */

static void check_partial_merge(const char *const *keys, size_t nk, size_t nparts)
{
    mr_err e;
    mr_err_clear(&e);
    frame *f = make_frame(20000, 300, 11);
    frame *whole = groupby_run(f, keys, nk, std_aggs, NSTD, &e);
    ck_assert_msg(whole != NULL, "%s", e.msg);
    /* Mappers: each takes a contiguous slice (rows copied through a gather). */
    frame *all = frame_create();
    size_t n = frame_nrows(f);
    for (size_t p = 0; p < nparts; p++) {
        frame *slice = frame_create();
        for (size_t c = 0; c < frame_ncols(f); c++) {
            const frame_col *src = frame_col_at(f, c);
            frame_col *dst = frame_col_create(src->name, src->type, 0);
            for (size_t i = p * n / nparts; i < (p + 1) * n / nparts; i++) frame_col_push_from(dst, src, i);
            ck_assert_int_eq(frame_attach_col(slice, dst, &e), MR_OK);
        }
        frame *part = groupby_partial(slice, keys, nk, std_aggs, NSTD, &e);
        ck_assert_msg(part != NULL, "%s", e.msg);
        ck_assert_int_eq(frame_append_frame(all, part, &e), MR_OK);
        frame_free(part);
        frame_free(slice);
    }
    frame *merged = groupby_merge(all, keys, nk, std_aggs, NSTD, &e);
    ck_assert_msg(merged != NULL, "groupby_merge: %s", e.msg);
    ck_assert_uint_eq(frame_nrows(merged), frame_nrows(whole));
    ck_assert_uint_eq(frame_ncols(merged), frame_ncols(whole));
    for (size_t c = 0; c < frame_ncols(whole); c++) {
        const frame_col *a = frame_col_at(whole, c), *b = frame_col_at(merged, c);
        ck_assert_str_eq(a->name, b->name);
        ck_assert_int_eq(a->type, b->type);
        int approx = c >= nk && std_aggs[c - nk].fn == GROUPBY_APPROX_QUANTILE;
        for (size_t i = 0; i < frame_nrows(whole); i++) {
            ck_assert_int_eq(frame_col_is_null(a, i), frame_col_is_null(b, i));
            if (frame_col_is_null(a, i)) continue;
            if (a->type == FRAME_STR) {
                size_t la, lb;
                const char *sa = frame_col_str(a, i, &la), *sb = frame_col_str(b, i, &lb);
                ck_assert_msg(la == lb && memcmp(sa, sb, la) == 0, "%s row %zu", a->name, i);
            } else if (a->type == FRAME_F64 && !approx) {
                assert_close(a->v.f64[i], b->v.f64[i], a->name, i);
            } else if (!approx) {
                ck_assert_msg(frame_col_num(a, i) == frame_col_num(b, i), "%s row %zu", a->name, i);
            }
        }
    }
    /* The merged result still matches the naive reference, approx included. */
    size_t ng;
    ref_group *g = ref_groups(f, keys, nk, &ng);
    for (size_t i = 0; i < ng; i++) check_group(f, merged, i, &g[i]);
    ref_free(g, ng);
    frame_free(merged);
    frame_free(all);
    frame_free(whole);
    frame_free(f);
}

START_TEST(test_partial_merge_keys)
{
    const char *keys[] = {"k"};
    check_partial_merge(keys, 1, 4);
    const char *keys2[] = {"k", "ik"};
    check_partial_merge(keys2, 2, 7);
}
END_TEST

START_TEST(test_partial_merge_nokeys)
{
    check_partial_merge(NULL, 0, 3);
}
END_TEST

START_TEST(test_merge_rejects_bad_partials)
{
    mr_err e;
    frame *f = make_frame(100, 5, 12);
    const char *keys[] = {"k"};
    groupby_agg q = {"q", GROUPBY_QUANTILE, "x", 0.5};
    frame *part = groupby_partial(f, keys, 1, &q, 1, &e);
    ck_assert_ptr_nonnull(part);
    ck_assert_ptr_nonnull(frame_col_by_name(part, "q.values"));
    groupby_agg other = {"zz", GROUPBY_MEAN, "x", 0};
    mr_err_clear(&e);
    ck_assert_ptr_null(groupby_merge(part, keys, 1, &other, 1, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "zz.sum"));
    frame_free(part);
    frame_free(f);
}
END_TEST

/* ---- timing: the flagship shape ---- */

START_TEST(test_bench_flagship)
{
    size_t n = 2000000;
    const char *env = getenv("LUAMR_BENCH_ROWS");
    if (env) n = strtoull(env, NULL, 10);
    mr_err e;
    rng_state = 12345;
    frame *f = frame_create();
    frame_col *k = frame_add_col(f, "key", FRAME_STR, &e);
    frame_col *v = frame_add_col(f, "value", FRAME_F64, &e);
    frame_col_reserve(k, n, n * 8);
    frame_col_reserve(v, n, 0);
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "user_%03llu", (unsigned long long)(rnd() % 1000));
        frame_col_push_str(k, buf, (size_t)len);
        frame_col_push_f64(v, rnd01() * 100);
    }
    const char *keys[] = {"key"};
    groupby_agg aggs[] = {{"n", GROUPBY_COUNT, NULL, 0}, {"total", GROUPBY_SUM, "value", 0},
                          {"p90", GROUPBY_QUANTILE, "value", 0.9}};
    /* CPU time too: the machine is shared, so wall time alone is noisy. */
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    frame *out = groupby_run(f, keys, 1, aggs, 3, &e);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(frame_nrows(out), 1000);
    int64_t total = 0;
    for (size_t i = 0; i < 1000; i++) total += frame_col_by_name(out, "n")->v.i64[i];
    ck_assert_int_eq(total, (int64_t)n);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
    printf("groupby bench: %zu rows, 1000 string keys, count+sum+p90: %.3f s wall, %.3f s cpu "
           "(%.1f ns/row)\n", n, secs, cpu, cpu * 1e9 / n);
    frame_free(out);
    frame_free(f);
}
END_TEST

static Suite *groupby_suite(void)
{
    Suite *s = suite_create("groupby");
    TCase *keys = tcase_create("keys and aggregates vs naive");
    tcase_set_timeout(keys, 300);
    tcase_add_test(keys, test_string_key_nulls);
    tcase_add_test(keys, test_int_key);
    tcase_add_test(keys, test_multi_key);
    tcase_add_test(keys, test_many_groups);
    tcase_add_test(keys, test_one_group);
    tcase_add_test(keys, test_empty);
    tcase_add_test(keys, test_nan_skipped);
    suite_add_tcase(s, keys);
    TCase *q = tcase_create("exact quantile selection");
    tcase_add_test(q, test_quantile_selection);
    suite_add_tcase(s, q);
    TCase *err = tcase_create("errors");
    tcase_add_test(err, test_errors);
    tcase_add_test(err, test_merge_rejects_bad_partials);
    suite_add_tcase(s, err);
    TCase *pm = tcase_create("partial and merge");
    tcase_set_timeout(pm, 300);
    tcase_add_test(pm, test_partial_merge_keys);
    tcase_add_test(pm, test_partial_merge_nokeys);
    suite_add_tcase(s, pm);
    TCase *bench = tcase_create("bench");
    tcase_set_timeout(bench, 600);
    tcase_add_test(bench, test_bench_flagship);
    suite_add_tcase(s, bench);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(groupby_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
