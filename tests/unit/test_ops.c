/* Unit tests for engine/ops.c. Expected results are recomputed independently (plain
 * loops, qsort) from the same generated data rather than hard-coded. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"

static uint64_t rng_state;
static uint64_t rnd(void)
{
    /* xorshift64*: deterministic data for reproducible failures */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static int str_eq(const frame_col *c, size_t r, const char *s, size_t n)
{
    size_t len;
    const char *p = frame_col_str(c, r, &len);
    return len == n && memcmp(p, s, n) == 0;
}

/* Cell-by-cell equality of row ra of a and row rb of b (same column names). */
static int cells_same(const frame_col *a, size_t ra, const frame_col *b, size_t rb)
{
    if (frame_col_is_null(a, ra) || frame_col_is_null(b, rb))
        return frame_col_is_null(a, ra) && frame_col_is_null(b, rb);
    if (a->type != b->type) return 0;
    switch (a->type) {
    case FRAME_I64: return a->v.i64[ra] == b->v.i64[rb];
    case FRAME_F64: return memcmp(&a->v.f64[ra], &b->v.f64[rb], 8) == 0;
    case FRAME_BOOL: return a->v.b[ra] == b->v.b[rb];
    case FRAME_STR: {
        size_t la, lb;
        const char *pa = frame_col_str(a, ra, &la), *pb = frame_col_str(b, rb, &lb);
        return la == lb && memcmp(pa, pb, la) == 0;
    }
    }
    return 0;
}

static void assert_row_is(const frame *out, size_t ro, const frame *in, size_t ri)
{
    ck_assert_uint_eq(frame_ncols(out), frame_ncols(in));
    for (size_t c = 0; c < frame_ncols(in); c++) {
        const frame_col *ci = frame_col_at(in, c);
        const frame_col *co = frame_col_by_name(out, ci->name);
        ck_assert_ptr_nonnull(co);
        ck_assert_msg(cells_same(co, ro, ci, ri), "column %s: out row %zu != in row %zu",
                      ci->name, ro, ri);
    }
}

/* A mixed frame: i (int64, ~10% null), x (float64, ~10% null), s (string with empty
 * strings and embedded NULs, ~10% null), b (bool). */
static frame *gen_frame(size_t n, uint64_t seed, int64_t int_range)
{
    mr_err e;
    rng_state = seed;
    frame *f = frame_create();
    frame_col *i = frame_add_col(f, "i", FRAME_I64, &e);
    frame_col *x = frame_add_col(f, "x", FRAME_F64, &e);
    frame_col *s = frame_add_col(f, "s", FRAME_STR, &e);
    frame_col *b = frame_add_col(f, "b", FRAME_BOOL, &e);
    for (size_t r = 0; r < n; r++) {
        uint64_t u = rnd();
        if (u % 10 == 0) frame_col_push_null(i);
        else frame_col_push_i64(i, (int64_t)(rnd() % (uint64_t)int_range) - int_range / 2);
        if (u % 10 == 1) frame_col_push_null(x);
        else frame_col_push_f64(x, ((int64_t)(rnd() % 2001) - 1000) / 8.0);
        if (u % 10 == 2) {
            frame_col_push_null(s);
        } else {
            char buf[8];
            size_t len = rnd() % 4;
            for (size_t k = 0; k < len; k++) buf[k] = "ab\0c"[rnd() % 4];
            frame_col_push_str(s, buf, len);
        }
        frame_col_push_bool(b, (u >> 20) & 1);
    }
    return f;
}

/* ---- select / take / filter_mask / head / concat ---- */

START_TEST(test_select)
{
    mr_err e;
    frame *f = gen_frame(100, 1, 50);
    const char *names[] = {"s", "i"};
    frame *g = ops_select(f, names, 2, &e);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(frame_ncols(g), 2);
    ck_assert_str_eq(frame_col_at(g, 0)->name, "s");
    ck_assert_str_eq(frame_col_at(g, 1)->name, "i");
    for (size_t r = 0; r < 100; r++) {
        ck_assert(cells_same(frame_col_at(g, 0), r, frame_col_by_name(f, "s"), r));
        ck_assert(cells_same(frame_col_at(g, 1), r, frame_col_by_name(f, "i"), r));
    }
    const char *bad[] = {"i", "nope"};
    ck_assert_ptr_null(ops_select(f, bad, 2, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "'nope'"));
    const char *dup[] = {"i", "i"};
    ck_assert_ptr_null(ops_select(f, dup, 2, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    frame *none = ops_select(f, NULL, 0, &e);
    ck_assert_uint_eq(frame_ncols(none), 0);
    frame_free(none);
    frame_free(g);
    frame_free(f);
}
END_TEST

START_TEST(test_take)
{
    mr_err e;
    const size_t n = 5000;
    frame *f = gen_frame(n, 2, 1000);
    size_t idx[3000];
    for (size_t k = 0; k < 3000; k++) idx[k] = rnd() % n;   /* repeats included */
    frame *g = ops_take(f, idx, 3000, &e);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(frame_nrows(g), 3000);
    ck_assert_int_eq(frame_validate(g, &e), MR_OK);
    for (size_t k = 0; k < 3000; k++) assert_row_is(g, k, f, idx[k]);
    frame_free(g);

    g = ops_take(f, idx, 0, &e);
    ck_assert_uint_eq(frame_nrows(g), 0);
    ck_assert_uint_eq(frame_ncols(g), 4);
    ck_assert_int_eq(frame_validate(g, &e), MR_OK);
    frame_free(g);

    size_t bad = n;
    ck_assert_ptr_null(ops_take(f, &bad, 1, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    frame_free(f);
}
END_TEST

START_TEST(test_filter_mask)
{
    mr_err e;
    const size_t n = 10000;
    frame *f = gen_frame(n, 3, 100);
    uint8_t *keep = malloc(n);
    size_t want = 0;
    for (size_t r = 0; r < n; r++) want += keep[r] = (uint8_t)(rnd() % 3 == 0 ? 0 : 1 + rnd() % 5);
    /* keep holds nonzero values other than 1 too: any nonzero keeps */
    want = 0;
    for (size_t r = 0; r < n; r++) want += keep[r] != 0;
    frame *g = ops_filter_mask(f, keep, &e);
    ck_assert_uint_eq(frame_nrows(g), want);
    ck_assert_int_eq(frame_validate(g, &e), MR_OK);
    size_t o = 0;
    for (size_t r = 0; r < n; r++)
        if (keep[r]) assert_row_is(g, o++, f, r);
    frame_free(g);

    memset(keep, 0, n);
    g = ops_filter_mask(f, keep, &e);
    ck_assert_uint_eq(frame_nrows(g), 0);
    ck_assert_uint_eq(frame_ncols(g), 4);
    frame_free(g);
    free(keep);

    frame *empty = frame_create();
    g = ops_filter_mask(empty, NULL, &e);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(frame_nrows(g), 0);
    frame_free(g);
    frame_free(empty);
    frame_free(f);
}
END_TEST

START_TEST(test_head)
{
    mr_err e;
    frame *f = gen_frame(300, 4, 100);
    frame *g = ops_head(f, 17, &e);
    ck_assert_uint_eq(frame_nrows(g), 17);
    ck_assert_int_eq(frame_validate(g, &e), MR_OK);
    for (size_t r = 0; r < 17; r++) assert_row_is(g, r, f, r);
    frame_free(g);
    g = ops_head(f, 1000, &e);
    ck_assert_uint_eq(frame_nrows(g), 300);
    for (size_t r = 0; r < 300; r++) assert_row_is(g, r, f, r);
    frame_free(g);
    g = ops_head(f, 0, &e);
    ck_assert_uint_eq(frame_nrows(g), 0);
    ck_assert_int_eq(frame_validate(g, &e), MR_OK);
    frame_free(g);
    frame_free(f);
}
END_TEST

START_TEST(test_concat)
{
    mr_err e;
    frame *a = gen_frame(100, 5, 100), *b = gen_frame(250, 6, 100);
    frame *c = frame_create();   /* different schema: i as float64, plus a new column */
    frame_col *ci = frame_add_col(c, "i", FRAME_F64, &e);
    frame_col *cz = frame_add_col(c, "z", FRAME_STR, &e);
    for (int r = 0; r < 10; r++) {
        frame_col_push_f64(ci, r + 0.5);
        frame_col_push_str(cz, "zz", (size_t)(r % 3));
    }
    const frame *parts[] = {a, b, c};
    frame *g = ops_concat(parts, 3, &e);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(frame_validate(g, &e), MR_OK);
    ck_assert_uint_eq(frame_nrows(g), 360);
    ck_assert_uint_eq(frame_ncols(g), 5);
    frame_col *gi = frame_col_by_name(g, "i"), *gz = frame_col_by_name(g, "z");
    ck_assert_int_eq(gi->type, FRAME_F64);
    frame_col *ai = frame_col_by_name(a, "i"), *bi = frame_col_by_name(b, "i");
    for (size_t r = 0; r < 350; r++) {
        const frame_col *src = r < 100 ? ai : bi;
        size_t sr = r < 100 ? r : r - 100;
        ck_assert_int_eq(frame_col_is_null(gi, r), frame_col_is_null(src, sr));
        if (!frame_col_is_null(src, sr)) ck_assert(gi->v.f64[r] == (double)src->v.i64[sr]);
        ck_assert(frame_col_is_null(gz, r));
        ck_assert(cells_same(frame_col_by_name(g, "s"), r,
                             frame_col_by_name(r < 100 ? a : b, "s"), sr));
    }
    for (size_t r = 350; r < 360; r++) {
        ck_assert(gi->v.f64[r] == (r - 350) + 0.5);
        ck_assert(str_eq(gz, r, "zz", (r - 350) % 3));
        ck_assert(frame_col_is_null(frame_col_by_name(g, "s"), r));
    }
    frame_free(g);

    g = ops_concat(NULL, 0, &e);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(frame_nrows(g), 0);
    frame_free(g);

    frame *bad = frame_create();
    frame_col *bs = frame_add_col(bad, "i", FRAME_STR, &e);
    frame_col_push_str(bs, "x", 1);
    const frame *clash[] = {a, bad};
    ck_assert_ptr_null(ops_concat(clash, 2, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'i'"));
    frame_free(bad);
    frame_free(a);
    frame_free(b);
    frame_free(c);
}
END_TEST

/* ---- filter_cmp ---- */

static int apply_cmp(ops_cmp c, int r)
{
    switch (c) {
    case OPS_EQ: return r == 0;
    case OPS_NE: return r != 0;
    case OPS_LT: return r < 0;
    case OPS_LE: return r <= 0;
    case OPS_GT: return r > 0;
    case OPS_GE: return r >= 0;
    }
    return 0;
}

static int ref_strcmp(const char *a, size_t la, const char *b, size_t lb)
{
    for (size_t k = 0; k < la && k < lb; k++)
        if (a[k] != b[k]) return (unsigned char)a[k] < (unsigned char)b[k] ? -1 : 1;
    return la < lb ? -1 : la > lb;
}

/* Filters f with (col cmp v) and checks the result row by row against ref(). */
static void check_filter(const frame *f, const char *col, ops_cmp cmp, const ops_value *v)
{
    mr_err e;
    frame *g = ops_filter_cmp(f, col, cmp, v, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    const frame_col *c = frame_col_by_name(f, col);
    size_t o = 0;
    for (size_t r = 0; r < c->len; r++) {
        int match;
        if (frame_col_is_null(c, r) || v->kind == OPS_VNULL) {
            match = 0;
        } else if (c->type == FRAME_STR) {
            size_t len;
            const char *p = frame_col_str(c, r, &len);
            match = apply_cmp(cmp, ref_strcmp(p, len, v->str, v->len));
        } else {
            /* long double holds every int64 exactly */
            long double a = c->type == FRAME_I64 ? (long double)c->v.i64[r]
                            : c->type == FRAME_F64 ? (long double)c->v.f64[r]
                                                   : (long double)c->v.b[r];
            long double b = v->kind == OPS_VBOOL ? (long double)v->b : (long double)v->num;
            if (isnan(v->num) && v->kind == OPS_VNUM) match = cmp == OPS_NE;
            else match = apply_cmp(cmp, (a > b) - (a < b));
        }
        if (match) assert_row_is(g, o++, f, r);
    }
    ck_assert_uint_eq(frame_nrows(g), o);
    frame_free(g);
}

START_TEST(test_filter_cmp)
{
    frame *f = gen_frame(3000, 7, 200);
    const double nums[] = {0, 3, -3, 2.5, -2.5, 1e30, -1e30, 99.125, NAN};
    for (int cmp = OPS_EQ; cmp <= OPS_GE; cmp++) {
        for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
            ops_value v = {.kind = OPS_VNUM, .num = nums[k]};
            check_filter(f, "i", (ops_cmp)cmp, &v);
            check_filter(f, "x", (ops_cmp)cmp, &v);
        }
        const char *strs[] = {"", "a", "ab", "b\0", "c"};
        const size_t lens[] = {0, 1, 2, 2, 1};
        for (size_t k = 0; k < 5; k++) {
            ops_value v = {.kind = OPS_VSTR, .str = strs[k], .len = lens[k]};
            check_filter(f, "s", (ops_cmp)cmp, &v);
        }
        ops_value vb = {.kind = OPS_VBOOL, .b = 1};
        check_filter(f, "b", (ops_cmp)cmp, &vb);
        ops_value vn = {.kind = OPS_VNULL};
        check_filter(f, "i", (ops_cmp)cmp, &vn);
        check_filter(f, "s", (ops_cmp)cmp, &vn);
    }
    frame_free(f);
}
END_TEST

START_TEST(test_filter_cmp_exact_int64)
{
    mr_err e;
    frame *f = frame_create();
    frame_col *c = frame_add_col(f, "big", FRAME_I64, &e);
    frame_col_push_i64(c, INT64_MAX);
    frame_col_push_i64(c, INT64_MAX - 1);
    frame_col_push_i64(c, INT64_MIN);
    /* 2^63 as a double is above every int64 even though INT64_MAX rounds to it. */
    ops_value v = {.kind = OPS_VNUM, .num = 9223372036854775808.0};
    frame *g = ops_filter_cmp(f, "big", OPS_LT, &v, &e);
    ck_assert_uint_eq(frame_nrows(g), 3);
    frame_free(g);
    g = ops_filter_cmp(f, "big", OPS_EQ, &v, &e);
    ck_assert_uint_eq(frame_nrows(g), 0);
    frame_free(g);
    v.num = -9223372036854775808.0;
    g = ops_filter_cmp(f, "big", OPS_EQ, &v, &e);
    ck_assert_uint_eq(frame_nrows(g), 1);
    ck_assert_int_eq(frame_col_at(g, 0)->v.i64[0], INT64_MIN);
    frame_free(g);
    frame_free(f);
}
END_TEST

START_TEST(test_filter_cmp_errors)
{
    mr_err e;
    frame *f = gen_frame(10, 8, 10);
    ops_value vs = {.kind = OPS_VSTR, .str = "x", .len = 1};
    ops_value vn = {.kind = OPS_VNUM, .num = 1};
    ck_assert_ptr_null(ops_filter_cmp(f, "i", OPS_EQ, &vs, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'i'"));
    ck_assert_ptr_null(ops_filter_cmp(f, "s", OPS_LT, &vn, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "'s'"));
    ck_assert_ptr_null(ops_filter_cmp(f, "missing", OPS_LT, &vn, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    frame_free(f);
}
END_TEST

START_TEST(test_cmp_parse)
{
    ops_cmp c;
    const char *s[] = {"==", "=", "~=", "!=", "<", "<=", ">", ">="};
    const ops_cmp want[] = {OPS_EQ, OPS_EQ, OPS_NE, OPS_NE, OPS_LT, OPS_LE, OPS_GT, OPS_GE};
    for (size_t k = 0; k < 8; k++) {
        ck_assert_int_eq(ops_cmp_parse(s[k], &c), 0);
        ck_assert_int_eq(c, want[k]);
    }
    ck_assert_int_eq(ops_cmp_parse("=>", &c), -1);
    ck_assert_int_eq(ops_cmp_parse("", &c), -1);
    ck_assert_int_eq(ops_cmp_parse(NULL, &c), -1);
}
END_TEST

/* ---- sort ---- */

static const ops_sort_key *g_keys;
static size_t g_nk;
static const frame *g_frame;

/* Reference comparator: typed, nulls last, descending flips, row number breaks ties so
 * qsort's instability cannot matter. */
static int ref_cmp(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    for (size_t k = 0; k < g_nk; k++) {
        const frame_col *c = frame_col_by_name(g_frame, g_keys[k].col);
        int na = frame_col_is_null(c, a), nb = frame_col_is_null(c, b);
        if (na || nb) {
            if (na && nb) continue;
            return na ? 1 : -1;
        }
        int r = 0;
        switch (c->type) {
        case FRAME_I64: r = (c->v.i64[a] > c->v.i64[b]) - (c->v.i64[a] < c->v.i64[b]); break;
        case FRAME_BOOL: r = (int)c->v.b[a] - (int)c->v.b[b]; break;
        case FRAME_F64: {
            double x = c->v.f64[a], y = c->v.f64[b];
            if (isnan(x) || isnan(y)) r = isnan(x) - isnan(y);   /* NaN above all numbers */
            else r = (x > y) - (x < y);
            break;
        }
        case FRAME_STR: {
            size_t la, lb;
            const char *sa = frame_col_str(c, a, &la), *sb = frame_col_str(c, b, &lb);
            r = ref_strcmp(sa, la, sb, lb);
            break;
        }
        }
        if (r) return g_keys[k].descending ? -r : r;
    }
    return (a > b) - (a < b);
}

static void check_sort(const frame *f, const ops_sort_key *keys, size_t nk)
{
    mr_err e;
    size_t n = frame_nrows(f);
    size_t *want = malloc((n ? n : 1) * sizeof *want);
    for (size_t r = 0; r < n; r++) want[r] = r;
    g_keys = keys;
    g_nk = nk;
    g_frame = f;
    qsort(want, n, sizeof *want, ref_cmp);
    size_t *got = ops_sort_index(f, keys, nk, &e);
    ck_assert_msg(got != NULL, "%s", e.msg);
    for (size_t r = 0; r < n; r++)
        ck_assert_msg(got[r] == want[r], "sort by %s%s: position %zu has row %zu, want %zu",
                      keys[0].col, keys[0].descending ? " desc" : "", r, got[r], want[r]);
    free(got);
    free(want);
}

START_TEST(test_sort_numeric_large)
{
    const size_t n = 1000000;
    frame *f = gen_frame(n, 9, 1000000);
    ops_sort_key k = {"i", 0};
    check_sort(f, &k, 1);
    k.descending = 1;
    check_sort(f, &k, 1);
    k.col = "x";
    check_sort(f, &k, 1);
    k.descending = 0;
    check_sort(f, &k, 1);
    frame_free(f);
}
END_TEST

START_TEST(test_sort_multikey)
{
    const size_t n = 200000;
    frame *f = gen_frame(n, 10, 20);   /* many ties in i */
    ops_sort_key k2[] = {{"b", 1}, {"i", 0}, {"x", 1}};
    check_sort(f, k2, 3);
    ops_sort_key k3[] = {{"i", 1}, {"s", 0}};
    check_sort(f, k3, 2);
    ops_sort_key k4[] = {{"s", 1}};
    check_sort(f, k4, 1);
    ops_sort_key k5[] = {{"s", 0}, {"x", 0}};
    check_sort(f, k5, 2);
    frame_free(f);
}
END_TEST

START_TEST(test_sort_long_strings)
{
    /* Strings sharing their first 8+ bytes, so the prefix image ties and the row
     * comparator must finish the order; plus a second key under ties. */
    mr_err e;
    frame *f = frame_create();
    frame_col *s = frame_add_col(f, "s", FRAME_STR, &e);
    frame_col *k = frame_add_col(f, "k", FRAME_I64, &e);
    rng_state = 15;
    char buf[32];
    for (size_t r = 0; r < 50000; r++) {
        int len = snprintf(buf, sizeof buf, "prefix__%u", (unsigned)(rnd() % 3000));
        if (r % 17 == 0) frame_col_push_null(s);
        else frame_col_push_str(s, buf, (size_t)(rnd() % 4 == 0 ? 8 : len));
        frame_col_push_i64(k, (int64_t)(rnd() % 5));
    }
    ops_sort_key k1[] = {{"s", 0}};
    check_sort(f, k1, 1);
    k1[0].descending = 1;
    check_sort(f, k1, 1);
    ops_sort_key k2[] = {{"s", 1}, {"k", 0}};
    check_sort(f, k2, 2);
    ops_sort_key k3[] = {{"k", 0}, {"s", 0}};
    check_sort(f, k3, 2);
    frame_free(f);
}
END_TEST

START_TEST(test_sort_special_floats)
{
    mr_err e;
    frame *f = frame_create();
    frame_col *x = frame_add_col(f, "x", FRAME_F64, &e);
    frame_col *id = frame_add_col(f, "id", FRAME_I64, &e);
    const double vals[] = {1.0, -0.0, NAN, INFINITY, 0.0, -INFINITY, -1.0, 0.0, -0.0};
    rng_state = 11;
    for (size_t r = 0; r < 200; r++) {   /* > 64 rows so the radix path is used */
        if (r % 13 == 5) frame_col_push_null(x);
        else frame_col_push_f64(x, vals[rnd() % 9]);
        frame_col_push_i64(id, (int64_t)r);
    }
    ops_sort_key k = {"x", 0};
    check_sort(f, &k, 1);
    k.descending = 1;
    check_sort(f, &k, 1);
    frame *small = ops_head(f, 30, &e);   /* and the comparison path */
    check_sort(small, &k, 1);
    k.descending = 0;
    check_sort(small, &k, 1);

    frame *s = ops_sort(f, &k, 1, &e);
    ck_assert_int_eq(frame_validate(s, &e), MR_OK);
    frame_col *sx = frame_col_by_name(s, "x");
    ck_assert(frame_col_is_null(sx, 199));
    ck_assert(sx->v.f64[0] == -INFINITY);
    frame_free(s);
    frame_free(small);
    frame_free(f);
}
END_TEST

START_TEST(test_sort_frame_and_edges)
{
    mr_err e;
    frame *f = gen_frame(1000, 12, 50);
    ops_sort_key k[] = {{"i", 0}, {"s", 1}};
    size_t *idx = ops_sort_index(f, k, 2, &e);
    frame *g = ops_sort(f, k, 2, &e);
    ck_assert_uint_eq(frame_nrows(g), 1000);
    for (size_t r = 0; r < 1000; r++) assert_row_is(g, r, f, idx[r]);
    free(idx);
    frame_free(g);

    ops_sort_key bad = {"nope", 0};
    ck_assert_ptr_null(ops_sort(f, &bad, 1, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "'nope'"));

    /* No keys: order unchanged. */
    g = ops_sort(f, NULL, 0, &e);
    for (size_t r = 0; r < 1000; r++) assert_row_is(g, r, f, r);
    frame_free(g);

    frame *empty = frame_empty_like(f, &e);
    g = ops_sort(empty, k, 2, &e);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(frame_nrows(g), 0);
    frame_free(g);
    frame_free(empty);
    frame_free(f);
}
END_TEST

/* ---- hashing / distinct ---- */

START_TEST(test_hash_and_equal)
{
    mr_err e;
    frame *f = frame_create();
    frame_col *i = frame_add_col(f, "i", FRAME_I64, &e);
    frame_col *x = frame_add_col(f, "x", FRAME_F64, &e);
    frame_col_push_i64(i, 1);
    frame_col_push_f64(x, 1.0);
    frame_col_push_i64(i, 0);
    frame_col_push_f64(x, -0.0);
    frame_col_push_null(i);
    frame_col_push_null(x);
    frame_col_push_i64(i, 2);
    frame_col_push_f64(x, 2.5);
    const frame_col *a[] = {i}, *b[] = {x};
    for (size_t r = 0; r < 3; r++) {
        ck_assert(ops_rows_equal(a, r, b, r, 1));
        ck_assert_uint_eq(ops_hash_row(a, 1, r), ops_hash_row(b, 1, r));
    }
    ck_assert(!ops_rows_equal(a, 3, b, 3, 1));
    ck_assert(!ops_rows_equal(a, 0, a, 2, 1));   /* value vs null */

    frame_col *nan = frame_col_create("nan", FRAME_F64, 0);
    for (int r = 0; r < 4; r++) frame_col_push_f64(nan, r % 2 ? NAN : -NAN);
    const frame_col *c[] = {nan};
    ck_assert(ops_rows_equal(c, 0, c, 1, 1));
    ck_assert_uint_eq(ops_hash_row(c, 1, 0), ops_hash_row(c, 1, 1));

    /* Strings: embedded NUL and length matter. */
    frame_col *s = frame_col_create("s", FRAME_STR, 0);
    frame_col_push_str(s, "a\0b", 3);
    frame_col_push_str(s, "a\0c", 3);
    frame_col_push_str(s, "a", 1);
    frame_col_push_str(s, "a\0b", 3);
    const frame_col *sc[] = {s};
    ck_assert(!ops_rows_equal(sc, 0, sc, 1, 1));
    ck_assert(!ops_rows_equal(sc, 0, sc, 2, 1));
    ck_assert(ops_rows_equal(sc, 0, sc, 3, 1));
    ck_assert_uint_eq(ops_hash_row(sc, 1, 0), ops_hash_row(sc, 1, 3));
    ck_assert_uint_ne(ops_hash_row(sc, 1, 0), ops_hash_row(sc, 1, 1));
    ck_assert_uint_ne(ops_hash_row(sc, 1, 0), ops_hash_row(sc, 1, 2));
    /* Multi-column rows: order of columns matters to the hash, not to equality rules. */
    const frame_col *two[] = {i, s}, *two_b[] = {x, s};
    ck_assert(ops_rows_equal(two, 0, two_b, 0, 2));
    ck_assert_uint_eq(ops_hash_row(two, 2, 0), ops_hash_row(two_b, 2, 0));
    ck_assert(!ops_rows_equal(two, 0, two, 3, 2));
    frame_col_free(nan);
    frame_col_free(s);
    frame_free(f);
}
END_TEST

START_TEST(test_hash_rows_batch)
{
    frame *f = gen_frame(3000, 16, 100);
    const frame_col *all[4];
    for (size_t c = 0; c < 4; c++) all[c] = frame_col_at(f, c);
    uint64_t *h = malloc(3000 * sizeof *h);
    const size_t starts[] = {0, 1, 999};
    for (size_t nc = 1; nc <= 4; nc++) {
        for (size_t c0 = 0; c0 + nc <= 4; c0++) {
            for (size_t si = 0; si < 3; si++) {
                size_t start = starts[si], n = 3000 - start;
                ops_hash_rows(all + c0, nc, start, n, h);
                for (size_t r = 0; r < n; r++)
                    ck_assert_uint_eq(h[r], ops_hash_row(all + c0, nc, start + r));
            }
        }
    }
    free(h);
    frame_free(f);
}
END_TEST

START_TEST(test_hash_spread)
{
    /* Sequential ints and short strings must spread over the low bits a hash table uses. */
    enum { N = 1 << 16, BUCKETS = 1 << 16 };
    uint8_t *seen = calloc(BUCKETS, 1);
    size_t used = 0;
    for (uint64_t v = 0; v < N; v++) {
        size_t b = ops_hash_u64(v) & (BUCKETS - 1);
        used += !seen[b];
        seen[b] = 1;
    }
    /* Random placement fills 1 - 1/e (63.2%) of the buckets. */
    ck_assert_uint_gt(used, (size_t)(BUCKETS * 0.60));
    memset(seen, 0, BUCKETS);
    used = 0;
    char buf[32];
    for (int v = 0; v < N; v++) {
        int len = snprintf(buf, sizeof buf, "key%d", v);
        size_t b = ops_hash_bytes(buf, (size_t)len, 0) & (BUCKETS - 1);
        used += !seen[b];
        seen[b] = 1;
    }
    ck_assert_uint_gt(used, (size_t)(BUCKETS * 0.60));
    /* Every length path (0..40 bytes) sees every byte. */
    unsigned char data[40] = {0};
    for (size_t len = 1; len <= sizeof data; len++) {
        uint64_t h = ops_hash_bytes(data, len, 0);
        for (size_t k = 0; k < len; k++) {
            data[k] ^= 1;
            ck_assert_uint_ne(ops_hash_bytes(data, len, 0), h);
            data[k] ^= 1;
        }
        ck_assert_uint_ne(ops_hash_bytes(data, len - 1, 0), h);
    }
    free(seen);
}
END_TEST

START_TEST(test_distinct)
{
    mr_err e;
    const size_t n = 3000;
    frame *f = gen_frame(n, 13, 6);
    const char *cols[] = {"i", "s"};
    frame *g = ops_distinct(f, cols, 2, &e);
    ck_assert_ptr_nonnull(g);
    /* Reference: a row is kept iff no earlier row has the same (i, s). */
    const frame_col *ci = frame_col_by_name(f, "i"), *cs = frame_col_by_name(f, "s");
    size_t o = 0;
    for (size_t r = 0; r < n; r++) {
        int dup = 0;
        for (size_t q = 0; q < r && !dup; q++)
            dup = cells_same(ci, q, ci, r) && cells_same(cs, q, cs, r);
        if (!dup) assert_row_is(g, o++, f, r);
    }
    ck_assert_uint_eq(frame_nrows(g), o);
    ck_assert_uint_lt(o, n);
    frame_free(g);

    /* All columns: x and b make nearly every row distinct. */
    g = ops_distinct(f, NULL, 0, &e);
    o = 0;
    for (size_t r = 0; r < n; r++) {
        int dup = 0;
        for (size_t q = 0; q < r && !dup; q++) {
            dup = 1;
            for (size_t c = 0; c < frame_ncols(f) && dup; c++)
                dup = cells_same(frame_col_at(f, c), q, frame_col_at(f, c), r);
        }
        if (!dup) assert_row_is(g, o++, f, r);
    }
    ck_assert_uint_eq(frame_nrows(g), o);
    frame_free(g);

    const char *bad[] = {"zz"};
    ck_assert_ptr_null(ops_distinct(f, bad, 1, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    frame *empty = frame_empty_like(f, &e);
    g = ops_distinct(empty, NULL, 0, &e);
    ck_assert_uint_eq(frame_nrows(g), 0);
    frame_free(g);
    frame_free(empty);
    frame_free(f);
}
END_TEST

START_TEST(test_distinct_large)
{
    mr_err e;
    const size_t n = 1000000;
    frame *f = frame_create();
    frame_col *k = frame_add_col(f, "k", FRAME_I64, &e);
    rng_state = 14;
    const uint64_t range = 50000;
    uint8_t *seen = calloc(range, 1);
    size_t want = 0;
    for (size_t r = 0; r < n; r++) {
        uint64_t v = rnd() % range;
        want += !seen[v];
        seen[v] = 1;
        frame_col_push_i64(k, (int64_t)v);
    }
    frame *g = ops_distinct(f, NULL, 0, &e);
    ck_assert_uint_eq(frame_nrows(g), want);
    memset(seen, 0, range);
    for (size_t r = 0; r < want; r++) {
        int64_t v = frame_col_at(g, 0)->v.i64[r];
        ck_assert(!seen[v]);
        seen[v] = 1;
    }
    free(seen);
    frame_free(g);
    frame_free(f);
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("gather");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_select);
    tcase_add_test(tc, test_take);
    tcase_add_test(tc, test_filter_mask);
    tcase_add_test(tc, test_head);
    tcase_add_test(tc, test_concat);
    suite_add_tcase(s, tc);
    tc = tcase_create("filter_cmp");
    /* thousands of checked rows: Check reports each assertion's location over a pipe,
     * which takes seconds on a busy machine (the default limit is 4 s) */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_filter_cmp);
    tcase_add_test(tc, test_filter_cmp_exact_int64);
    tcase_add_test(tc, test_filter_cmp_errors);
    tcase_add_test(tc, test_cmp_parse);
    suite_add_tcase(s, tc);
    tc = tcase_create("sort");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_sort_numeric_large);
    tcase_add_test(tc, test_sort_multikey);
    tcase_add_test(tc, test_sort_long_strings);
    tcase_add_test(tc, test_sort_special_floats);
    tcase_add_test(tc, test_sort_frame_and_edges);
    suite_add_tcase(s, tc);
    tc = tcase_create("hash_distinct");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hash_and_equal);
    tcase_add_test(tc, test_hash_rows_batch);
    tcase_add_test(tc, test_hash_spread);
    tcase_add_test(tc, test_distinct);
    tcase_add_test(tc, test_distinct_large);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ops_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
