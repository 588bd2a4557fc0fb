/* Unit tests for engine/join: inner and left hash joins against a nested-loop join on
 * random data (nulls never match, duplicates on both sides, one and two keys, either
 * side smaller), the output layout (suffixes, key columns) and errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/frame.h"
#include "engine/join.h"
#include "testrng.h"


/* Columns: id (int64 key, ~5% null), tag (string key, ~5% null), v (float64 payload),
 * plus a per-side payload name; `clash` is present on both sides. */
static frame *make_side(size_t n, size_t keyspace, const char *payload, uint64_t seed)
{
    mr_err e;
    rng_state = seed | 1;
    frame *f = frame_create();
    frame_col *id = frame_add_col(f, "id", FRAME_I64, &e);
    frame_col *tag = frame_add_col(f, "tag", FRAME_STR, &e);
    frame_col *p = frame_add_col(f, payload, FRAME_I64, &e);
    frame_col *clash = frame_add_col(f, "clash", FRAME_F64, &e);
    char buf[16];
    for (size_t i = 0; i < n; i++) {
        if (rnd() % 20 == 0) frame_col_push_null(id);
        else frame_col_push_i64(id, (int64_t)(rnd() % keyspace));
        if (rnd() % 20 == 0) {
            frame_col_push_null(tag);
        } else {
            int len = snprintf(buf, sizeof buf, "t%llu", (unsigned long long)(rnd() % 3));
            frame_col_push_str(tag, buf, (size_t)len);
        }
        frame_col_push_i64(p, (int64_t)i);   /* the row number: identifies the source row */
        frame_col_push_f64(clash, (double)(rnd() % 1000) / 4);
    }
    return f;
}

static int cell_eq(const frame_col *a, size_t i, const frame_col *b, size_t j)
{
    if (frame_col_is_null(a, i) || frame_col_is_null(b, j)) return 0;   /* nulls never match */
    if (a->type == FRAME_STR) {
        size_t la, lb;
        const char *x = frame_col_str(a, i, &la), *y = frame_col_str(b, j, &lb);
        return la == lb && memcmp(x, y, la) == 0;
    }
    return frame_col_num(a, i) == frame_col_num(b, j);
}

/* Nested loop: expected (left row, right row or -1) pairs in left order, then right. */
static size_t nested_loop(const frame *l, const frame *r, const char *const *lk,
                          const char *const *rk, size_t nk, join_kind kind, int64_t **lo,
                          int64_t **ro)
{
    size_t nl = frame_nrows(l), nr = frame_nrows(r), n = 0, cap = 1024;
    *lo = malloc(cap * sizeof **lo);
    *ro = malloc(cap * sizeof **ro);
    for (size_t i = 0; i < nl; i++) {
        int matched = 0;
        for (size_t j = 0; j <= nr; j++) {
            int64_t rj = -1;
            if (j < nr) {
                int eq = 1;
                for (size_t k = 0; k < nk && eq; k++)
                    eq = cell_eq(frame_col_by_name(l, lk[k]), i, frame_col_by_name(r, rk[k]), j);
                if (!eq) continue;
                matched = 1;
                rj = (int64_t)j;
            } else if (matched || kind == JOIN_INNER) {
                continue;
            }
            if (n == cap) {
                cap *= 2;
                *lo = realloc(*lo, cap * sizeof **lo);
                *ro = realloc(*ro, cap * sizeof **ro);
            }
            (*lo)[n] = (int64_t)i;
            (*ro)[n] = rj;
            n++;
        }
    }
    return n;
}

static void check_join(size_t nl, size_t nr, size_t keyspace, size_t nk, join_kind kind,
                       uint64_t seed)
{
    frame *l = make_side(nl, keyspace, "lrow", seed);
    frame *r = make_side(nr, keyspace, "rrow", seed * 7 + 3);
    const char *keys[] = {"id", "tag"};
    mr_err e;
    mr_err_clear(&e);
    frame *out = join_run(l, r, keys, keys, nk, kind, &e);
    ck_assert_msg(out != NULL, "join_run: %s", e.msg);
    int64_t *wl, *wr;
    size_t n = nested_loop(l, r, keys, keys, nk, kind, &wl, &wr);
    ck_assert_uint_eq(frame_nrows(out), n);
    /* Layout: left columns, then right's non-key columns, clashes suffixed. */
    ck_assert_uint_eq(frame_ncols(out), 4 + (4 - nk));
    for (size_t c = 0; c < 4; c++) ck_assert_str_eq(frame_col_at(out, c)->name, frame_col_at(l, c)->name);
    ck_assert_ptr_nonnull(frame_col_by_name(out, "clash_right"));
    ck_assert_int_eq(frame_col_index(out, "rrow"), nk == 2 ? 4 : 5);
    if (nk == 1) ck_assert_ptr_nonnull(frame_col_by_name(out, "tag_right"));
    const frame_col *lrow = frame_col_by_name(out, "lrow"), *rrow = frame_col_by_name(out, "rrow");
    const frame_col *lclash = frame_col_by_name(out, "clash"), *rclash = frame_col_by_name(out, "clash_right");
    const frame_col *src_rclash = frame_col_by_name(r, "clash");
    const frame_col *src_lclash = frame_col_by_name(l, "clash");
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(lrow->v.i64[i] == wl[i], "row %zu: left row %lld, want %lld", i,
                      (long long)lrow->v.i64[i], (long long)wl[i]);
        ck_assert(lclash->v.f64[i] == src_lclash->v.f64[wl[i]]);
        if (wr[i] < 0) {
            ck_assert(frame_col_is_null(rrow, i));
            ck_assert(frame_col_is_null(rclash, i));
        } else {
            ck_assert(!frame_col_is_null(rrow, i));
            ck_assert_msg(rrow->v.i64[i] == wr[i], "row %zu: right row %lld, want %lld", i,
                          (long long)rrow->v.i64[i], (long long)wr[i]);
            ck_assert(rclash->v.f64[i] == src_rclash->v.f64[wr[i]]);
        }
    }
    free(wl);
    free(wr);
    frame_free(out);
    frame_free(l);
    frame_free(r);
}

START_TEST(test_inner_one_key)
{
    check_join(800, 300, 100, 1, JOIN_INNER, 1);   /* build on the right (smaller) */
    check_join(300, 800, 100, 1, JOIN_INNER, 2);   /* build on the left, reorder */
}
END_TEST

START_TEST(test_inner_two_keys)
{
    check_join(700, 500, 40, 2, JOIN_INNER, 3);
    check_join(500, 700, 40, 2, JOIN_INNER, 4);
}
END_TEST

START_TEST(test_left_join)
{
    check_join(600, 200, 300, 1, JOIN_LEFT, 5);
    check_join(200, 600, 300, 2, JOIN_LEFT, 6);
}
END_TEST

START_TEST(test_empty_sides)
{
    check_join(0, 100, 10, 1, JOIN_INNER, 7);
    check_join(100, 0, 10, 1, JOIN_INNER, 8);
    check_join(100, 0, 10, 2, JOIN_LEFT, 9);
}
END_TEST

START_TEST(test_cross_type_keys)
{
    /* An int64 key joins a float64 key by value; 2.5 matches nothing. */
    mr_err e;
    frame *l = frame_create(), *r = frame_create();
    frame_col *a = frame_add_col(l, "a", FRAME_I64, &e);
    frame_col *b = frame_add_col(r, "b", FRAME_F64, &e);
    frame_col *w = frame_add_col(r, "w", FRAME_STR, &e);
    for (int i = 0; i < 4; i++) frame_col_push_i64(a, i);
    double bv[] = {2.0, 2.5, 0.0, 2.0};
    for (int i = 0; i < 4; i++) {
        frame_col_push_f64(b, bv[i]);
        char s[2] = {(char)('p' + i), 0};
        frame_col_push_str(w, s, 1);
    }
    const char *lk[] = {"a"}, *rk[] = {"b"};
    frame *out = join_run(l, r, lk, rk, 1, JOIN_INNER, &e);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(frame_nrows(out), 3);   /* 0-r, 2-p, 2-s */
    const frame_col *oa = frame_col_by_name(out, "a"), *ow = frame_col_by_name(out, "w");
    ck_assert_ptr_null(frame_col_by_name(out, "b"));
    size_t len;
    ck_assert_int_eq(oa->v.i64[0], 0);
    ck_assert_int_eq(*frame_col_str(ow, 0, &len), 'r');
    ck_assert_int_eq(oa->v.i64[1], 2);
    ck_assert_int_eq(*frame_col_str(ow, 1, &len), 'p');
    ck_assert_int_eq(oa->v.i64[2], 2);
    ck_assert_int_eq(*frame_col_str(ow, 2, &len), 's');
    frame_free(out);
    frame_free(l);
    frame_free(r);
}
END_TEST

START_TEST(test_errors)
{
    mr_err e;
    frame *l = make_side(10, 5, "lrow", 1), *r = make_side(10, 5, "rrow", 2);
    const char *good[] = {"id"}, *bad[] = {"nope"}, *str[] = {"tag"};
    mr_err_clear(&e);
    ck_assert_ptr_null(join_run(l, r, good, bad, 1, JOIN_INNER, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "right"));
    ck_assert_ptr_nonnull(strstr(e.msg, "nope"));
    mr_err_clear(&e);
    ck_assert_ptr_null(join_run(l, r, good, str, 1, JOIN_LEFT, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    ck_assert_ptr_null(join_run(l, r, good, good, 0, JOIN_LEFT, &e));
    frame_free(l);
    frame_free(r);
}
END_TEST

static Suite *join_suite(void)
{
    Suite *s = suite_create("join");
    TCase *vs = tcase_create("hash join vs nested loop");
    tcase_set_timeout(vs, 120);
    tcase_add_test(vs, test_inner_one_key);
    tcase_add_test(vs, test_inner_two_keys);
    tcase_add_test(vs, test_left_join);
    tcase_add_test(vs, test_empty_sides);
    suite_add_tcase(s, vs);
    TCase *types = tcase_create("key types");
    tcase_add_test(types, test_cross_type_keys);
    suite_add_tcase(s, types);
    TCase *err = tcase_create("errors");
    tcase_add_test(err, test_errors);
    suite_add_tcase(s, err);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(join_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
