/* Unit tests for engine/frame.c: columns, pushes, unions, clone, validation, formatting. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/frame.h"

/* ---- types ---- */

START_TEST(test_type_names)
{
    frame_type t;
    for (int i = FRAME_I64; i <= FRAME_STR; i++) {
        ck_assert_int_eq(frame_type_parse(frame_type_name((frame_type)i), &t), 0);
        ck_assert_int_eq(t, i);
    }
    ck_assert_int_eq(frame_type_parse("int", &t), 0);
    ck_assert_int_eq(t, FRAME_I64);
    ck_assert_int_eq(frame_type_parse("double", &t), 0);
    ck_assert_int_eq(t, FRAME_F64);
    ck_assert_int_eq(frame_type_parse("float", &t), 0);
    ck_assert_int_eq(t, FRAME_F64);
    ck_assert_int_eq(frame_type_parse("boolean", &t), 0);
    ck_assert_int_eq(t, FRAME_BOOL);
    ck_assert_int_eq(frame_type_parse("str", &t), 0);
    ck_assert_int_eq(t, FRAME_STR);
    ck_assert_int_eq(frame_type_parse("varchar", &t), -1);
    ck_assert_int_eq(frame_type_parse(NULL, &t), -1);
}
END_TEST

/* ---- columns ---- */

START_TEST(test_push_all_types)
{
    frame_col *i = frame_col_create("i", FRAME_I64, 0);
    frame_col *d = frame_col_create("d", FRAME_F64, 0);
    frame_col *b = frame_col_create("b", FRAME_BOOL, 0);
    frame_col *s = frame_col_create("s", FRAME_STR, 0);
    const size_t n = 10000;
    char buf[32];
    for (size_t r = 0; r < n; r++) {
        ck_assert_int_eq(frame_col_push_i64(i, (int64_t)r * 3 - 7), MR_OK);
        ck_assert_int_eq(frame_col_push_f64(d, r * 0.5), MR_OK);
        ck_assert_int_eq(frame_col_push_bool(b, r % 3 == 0), MR_OK);
        int len = snprintf(buf, sizeof buf, "v%zu", r);
        ck_assert_int_eq(frame_col_push_str(s, buf, (size_t)len), MR_OK);
    }
    ck_assert_uint_eq(i->len, n);
    ck_assert_ptr_null(i->nulls);
    ck_assert_ptr_null(s->nulls);
    for (size_t r = 0; r < n; r++) {
        ck_assert_int_eq(i->v.i64[r], (int64_t)r * 3 - 7);
        ck_assert(d->v.f64[r] == r * 0.5);
        ck_assert_int_eq(b->v.b[r], r % 3 == 0);
        size_t len;
        const char *p = frame_col_str(s, r, &len);
        int want = snprintf(buf, sizeof buf, "v%zu", r);
        ck_assert_uint_eq(len, (size_t)want);
        ck_assert(memcmp(p, buf, len) == 0);
        ck_assert(frame_col_num(i, r) == (double)((int64_t)r * 3 - 7));
        ck_assert(frame_col_num(b, r) == (r % 3 == 0));
        ck_assert(isnan(frame_col_num(s, r)));
    }
    ck_assert_int_eq(s->v.offs[0], 0);
    ck_assert_int_eq(s->v.offs[n], (int64_t)s->arena_len);
    /* Wrong-type pushes are refused, int into float is widened. */
    ck_assert_int_eq(frame_col_push_f64(i, 1.5), MR_EINVAL);
    ck_assert_int_eq(frame_col_push_str(i, "x", 1), MR_EINVAL);
    ck_assert_int_eq(frame_col_push_i64(s, 1), MR_EINVAL);
    ck_assert_int_eq(frame_col_push_bool(i, 1), MR_EINVAL);
    ck_assert_uint_eq(s->len, n);
    ck_assert_uint_eq(i->len, n);
    ck_assert_int_eq(frame_col_push_i64(d, 4), MR_OK);
    ck_assert(d->v.f64[n] == 4.0);
    frame_col_free(i);
    frame_col_free(d);
    frame_col_free(b);
    frame_col_free(s);
    frame_col_free(NULL);
}
END_TEST

START_TEST(test_nulls_lazy)
{
    frame_col *c = frame_col_create("x", FRAME_I64, 2);
    frame_col_push_i64(c, 1);
    ck_assert_ptr_null(c->nulls);
    frame_col_push_null(c);
    ck_assert_ptr_nonnull(c->nulls);
    for (int k = 0; k < 100; k++) frame_col_push_i64(c, k);
    frame_col_push_null(c);
    ck_assert_uint_eq(c->len, 103);
    ck_assert(!frame_col_is_null(c, 0));
    ck_assert(frame_col_is_null(c, 1));
    for (int k = 0; k < 100; k++) ck_assert(!frame_col_is_null(c, 2 + k));
    ck_assert(frame_col_is_null(c, 102));
    ck_assert(isnan(frame_col_num(c, 1)));

    frame_col *s = frame_col_create("s", FRAME_STR, 0);
    frame_col_push_str(s, "ab", 2);
    frame_col_push_null(s);
    frame_col_push_str(s, "", 0);
    frame_col_push_str(s, "a\0b", 3);
    size_t len;
    ck_assert(frame_col_is_null(s, 1));
    frame_col_str(s, 1, &len);
    ck_assert_uint_eq(len, 0);
    frame_col_str(s, 2, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert(!frame_col_is_null(s, 2));
    const char *p = frame_col_str(s, 3, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert(memcmp(p, "a\0b", 3) == 0);
    frame_col_free(c);
    frame_col_free(s);
}
END_TEST

START_TEST(test_push_from_and_clone)
{
    frame_col *s = frame_col_create("s", FRAME_STR, 0);
    frame_col_push_str(s, "hello", 5);
    frame_col_push_null(s);
    frame_col_push_str(s, "x\0y", 3);
    frame_col *t = frame_col_create("t", FRAME_STR, 0);
    for (size_t r = 3; r-- > 0;) ck_assert_int_eq(frame_col_push_from(t, s, r), MR_OK);
    size_t len;
    const char *p = frame_col_str(t, 0, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert(memcmp(p, "x\0y", 3) == 0);
    ck_assert(frame_col_is_null(t, 1));
    p = frame_col_str(t, 2, &len);
    ck_assert(len == 5 && memcmp(p, "hello", 5) == 0);
    frame_col *i = frame_col_create("i", FRAME_I64, 0);
    ck_assert_int_eq(frame_col_push_from(i, s, 0), MR_EINVAL);

    frame_col *c = frame_col_clone(s);
    ck_assert_str_eq(c->name, "s");
    ck_assert_uint_eq(c->len, 3);
    ck_assert(c->arena != s->arena);
    p = frame_col_str(c, 2, &len);
    ck_assert(len == 3 && memcmp(p, "x\0y", 3) == 0);
    ck_assert(frame_col_is_null(c, 1));
    ck_assert_int_eq(frame_col_rename(c, "renamed"), MR_OK);
    ck_assert_str_eq(c->name, "renamed");
    ck_assert_int_eq(frame_col_reserve(c, 1000, 5000), MR_OK);
    ck_assert_uint_ge(c->cap, 1000);
    ck_assert_uint_ge(c->arena_cap, 5000);
    ck_assert_uint_eq(c->len, 3);
    frame_col_free(c);
    frame_col_free(s);
    frame_col_free(t);
    frame_col_free(i);
}
END_TEST

/* ---- frames ---- */

static frame *make_frame(size_t n)
{
    mr_err e;
    frame *f = frame_create();
    frame_col *id = frame_add_col(f, "id", FRAME_I64, &e);
    frame_col *x = frame_add_col(f, "x", FRAME_F64, &e);
    frame_col *s = frame_add_col(f, "s", FRAME_STR, &e);
    char buf[16];
    for (size_t r = 0; r < n; r++) {
        frame_col_push_i64(id, (int64_t)r);
        if (r % 4 == 3) frame_col_push_null(x);
        else frame_col_push_f64(x, r + 0.25);
        int len = snprintf(buf, sizeof buf, "s%zu", r % 7);
        frame_col_push_str(s, buf, (size_t)len);
    }
    return f;
}

START_TEST(test_frame_columns)
{
    mr_err e;
    frame *f = frame_create();
    ck_assert_uint_eq(frame_nrows(f), 0);
    ck_assert_uint_eq(frame_ncols(f), 0);
    frame_col *a = frame_add_col(f, "a", FRAME_I64, &e);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(frame_add_col(f, "a", FRAME_STR, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'a'"));
    for (int k = 0; k < 5; k++) frame_col_push_i64(a, k);
    /* A late column is padded with nulls to the frame's length. */
    frame_col *b = frame_add_col(f, "b", FRAME_STR, &e);
    ck_assert_uint_eq(b->len, 5);
    for (int k = 0; k < 5; k++) ck_assert(frame_col_is_null(b, k));
    ck_assert_int_eq(frame_validate(f, &e), MR_OK);
    ck_assert_int_eq(frame_col_index(f, "b"), 1);
    ck_assert_int_eq(frame_col_index(f, "zz"), -1);
    ck_assert_ptr_eq(frame_col_by_name(f, "a"), a);
    ck_assert_ptr_eq(frame_col_at(f, 1), b);
    ck_assert_ptr_null(frame_col_at(f, 2));

    /* Mismatched lengths are caught and named. */
    frame_col_push_i64(a, 99);
    ck_assert_int_eq(frame_validate(f, &e), MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'b'"));
    frame_col_push_null(b);

    /* attach: length must match, same name replaces. */
    frame_col *c = frame_col_create("c", FRAME_BOOL, 0);
    frame_col_push_bool(c, 1);
    ck_assert_int_eq(frame_attach_col(f, c, &e), MR_EINVAL);
    for (int k = 0; k < 5; k++) frame_col_push_bool(c, k & 1);
    ck_assert_int_eq(frame_attach_col(f, c, &e), MR_OK);
    ck_assert_uint_eq(frame_ncols(f), 3);
    frame_col *a2 = frame_col_create("a", FRAME_F64, 0);
    for (int k = 0; k < 6; k++) frame_col_push_f64(a2, k * 1.5);
    ck_assert_int_eq(frame_attach_col(f, a2, &e), MR_OK);
    ck_assert_uint_eq(frame_ncols(f), 3);
    ck_assert_int_eq(frame_col_by_name(f, "a")->type, FRAME_F64);
    ck_assert_int_eq(frame_col_index(f, "a"), 0);

    ck_assert_int_eq(frame_drop_col(f, "b", &e), MR_OK);
    ck_assert_int_eq(frame_drop_col(f, "b", &e), MR_ENOTFOUND);
    ck_assert_uint_eq(frame_ncols(f), 2);
    ck_assert_int_eq(frame_col_index(f, "c"), 1);
    ck_assert_int_eq(frame_validate(f, &e), MR_OK);
    frame_free(f);
    frame_free(NULL);
}
END_TEST

START_TEST(test_clone_and_empty_like)
{
    mr_err e;
    frame *f = make_frame(1000);
    frame *g = frame_clone(f, &e);
    ck_assert_uint_eq(frame_nrows(g), 1000);
    ck_assert_uint_eq(frame_ncols(g), 3);
    for (size_t c = 0; c < 3; c++) {
        frame_col *a = frame_col_at(f, c), *b = frame_col_at(g, c);
        ck_assert_str_eq(a->name, b->name);
        ck_assert_int_eq(a->type, b->type);
        for (size_t r = 0; r < 1000; r++) {
            ck_assert_int_eq(frame_col_is_null(a, r), frame_col_is_null(b, r));
            if (a->type == FRAME_STR) {
                size_t la, lb;
                const char *pa = frame_col_str(a, r, &la), *pb = frame_col_str(b, r, &lb);
                ck_assert(la == lb && memcmp(pa, pb, la) == 0);
            } else if (!frame_col_is_null(a, r)) {
                ck_assert(frame_col_num(a, r) == frame_col_num(b, r));
            }
        }
    }
    /* Deep: mutating the clone leaves the original alone. */
    frame_col_at(g, 0)->v.i64[0] = 12345;
    ck_assert_int_eq(frame_col_at(f, 0)->v.i64[0], 0);
    ck_assert_uint_gt(frame_mem_bytes(f), 1000 * (8 + 8 + 8));

    frame *z = frame_empty_like(f, &e);
    ck_assert_uint_eq(frame_nrows(z), 0);
    ck_assert_uint_eq(frame_ncols(z), 3);
    ck_assert_int_eq(frame_col_at(z, 2)->type, FRAME_STR);
    ck_assert_uint_lt(frame_mem_bytes(z), frame_mem_bytes(f));
    frame_free(f);
    frame_free(g);
    frame_free(z);
}
END_TEST

/* ---- append / union ---- */

START_TEST(test_append_same_schema)
{
    mr_err e;
    frame *a = make_frame(10), *b = make_frame(25);
    ck_assert_int_eq(frame_append_frame(a, b, &e), MR_OK);
    ck_assert_uint_eq(frame_nrows(a), 35);
    ck_assert_int_eq(frame_validate(a, &e), MR_OK);
    frame_col *id = frame_col_by_name(a, "id"), *x = frame_col_by_name(a, "x");
    frame_col *s = frame_col_by_name(a, "s");
    for (size_t r = 0; r < 35; r++) {
        size_t src = r < 10 ? r : r - 10;
        ck_assert_int_eq(id->v.i64[r], (int64_t)src);
        ck_assert_int_eq(frame_col_is_null(x, r), src % 4 == 3);
        char buf[16];
        int want = snprintf(buf, sizeof buf, "s%zu", src % 7);
        size_t len;
        const char *p = frame_col_str(s, r, &len);
        ck_assert(len == (size_t)want && memcmp(p, buf, len) == 0);
    }
    /* Appending a frame to itself doubles it. */
    ck_assert_int_eq(frame_append_frame(a, a, &e), MR_OK);
    ck_assert_uint_eq(frame_nrows(a), 70);
    ck_assert_int_eq(id->v.i64[69], 24);
    frame_free(a);
    frame_free(b);
}
END_TEST

START_TEST(test_append_union_widen)
{
    mr_err e;
    frame *a = frame_create(), *b = frame_create();
    frame_col *ak = frame_add_col(a, "k", FRAME_I64, &e);
    frame_col *aonly = frame_add_col(a, "only_a", FRAME_STR, &e);
    frame_col_push_i64(ak, 1);
    frame_col_push_i64(ak, 2);
    frame_col_push_str(aonly, "p", 1);
    frame_col_push_str(aonly, "q", 1);
    frame_col *bonly = frame_add_col(b, "only_b", FRAME_BOOL, &e);
    frame_col *bk = frame_add_col(b, "k", FRAME_F64, &e);
    frame_col_push_bool(bonly, 1);
    frame_col_push_f64(bk, 2.5);
    ck_assert_int_eq(frame_append_frame(a, b, &e), MR_OK);
    ck_assert_int_eq(frame_validate(a, &e), MR_OK);
    ck_assert_uint_eq(frame_nrows(a), 3);
    ck_assert_uint_eq(frame_ncols(a), 3);
    frame_col *k = frame_col_by_name(a, "k");
    ck_assert_int_eq(k->type, FRAME_F64);
    ck_assert(k->v.f64[0] == 1.0 && k->v.f64[1] == 2.0 && k->v.f64[2] == 2.5);
    frame_col *oa = frame_col_by_name(a, "only_a"), *ob = frame_col_by_name(a, "only_b");
    ck_assert(!frame_col_is_null(oa, 1) && frame_col_is_null(oa, 2));
    ck_assert(frame_col_is_null(ob, 0) && frame_col_is_null(ob, 1) && !frame_col_is_null(ob, 2));
    ck_assert_int_eq(ob->v.b[2], 1);

    /* int64 source into a float64 destination. */
    frame *c = frame_create();
    frame_col *ck = frame_add_col(c, "k", FRAME_I64, &e);
    frame_col_push_i64(ck, -7);
    ck_assert_int_eq(frame_append_frame(a, c, &e), MR_OK);
    ck_assert(k->v.f64[3] == -7.0);
    ck_assert(frame_col_is_null(oa, 3) && frame_col_is_null(ob, 3));

    /* A clash leaves dst untouched and names the column. */
    frame *d = frame_create();
    frame_col *dk = frame_add_col(d, "k", FRAME_STR, &e);
    frame_col_push_str(dk, "no", 2);
    ck_assert_int_eq(frame_append_frame(a, d, &e), MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'k'"));
    ck_assert_uint_eq(frame_nrows(a), 4);
    ck_assert_int_eq(frame_validate(a, &e), MR_OK);

    /* An all-null column adopts the other side's type. */
    frame *g = frame_create();
    frame_col *gk = frame_add_col(g, "k", FRAME_STR, &e);
    frame_col_push_null(gk);
    frame_col_push_null(gk);
    ck_assert_int_eq(frame_append_frame(g, d, &e), MR_OK);
    ck_assert_int_eq(frame_append_frame(g, c, &e), MR_EINVAL);
    frame *h = frame_create();
    frame_col *hk = frame_add_col(h, "k", FRAME_I64, &e);
    frame_col_push_null(hk);
    ck_assert_int_eq(frame_append_frame(h, d, &e), MR_OK);
    ck_assert_int_eq(frame_col_by_name(h, "k")->type, FRAME_STR);
    ck_assert(frame_col_is_null(frame_col_by_name(h, "k"), 0));
    size_t len;
    const char *p = frame_col_str(frame_col_by_name(h, "k"), 1, &len);
    ck_assert(len == 2 && memcmp(p, "no", 2) == 0);

    /* Into an empty frame: columns are created. */
    frame *z = frame_create();
    ck_assert_int_eq(frame_append_frame(z, a, &e), MR_OK);
    ck_assert_uint_eq(frame_nrows(z), 4);
    ck_assert_uint_eq(frame_ncols(z), 3);
    frame *empty = frame_create();
    ck_assert_int_eq(frame_append_frame(z, empty, &e), MR_OK);
    ck_assert_uint_eq(frame_nrows(z), 4);

    frame_free(a);
    frame_free(b);
    frame_free(c);
    frame_free(d);
    frame_free(g);
    frame_free(h);
    frame_free(z);
    frame_free(empty);
}
END_TEST

/* ---- formatting ---- */

START_TEST(test_format)
{
    mr_err e;
    frame *f = frame_create();
    frame_col *i = frame_add_col(f, "id", FRAME_I64, &e);
    frame_col *x = frame_add_col(f, "x", FRAME_F64, &e);
    frame_col *s = frame_add_col(f, "name", FRAME_STR, &e);
    frame_col *b = frame_add_col(f, "ok", FRAME_BOOL, &e);
    frame_col_push_i64(i, 1);
    frame_col_push_f64(x, 0.1);
    frame_col_push_str(s, "alpha", 5);
    frame_col_push_bool(b, 1);
    frame_col_push_i64(i, -12345);
    frame_col_push_f64(x, 2.0);
    frame_col_push_null(s);
    frame_col_push_bool(b, 0);
    frame_col_push_null(i);
    frame_col_push_f64(x, 1.0 / 3.0);
    frame_col_push_str(s, "a\0b", 3);
    frame_col_push_null(b);
    char *out = frame_format(f, 10);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(strstr(out, "id"));
    ck_assert_ptr_nonnull(strstr(out, "int64"));
    ck_assert_ptr_nonnull(strstr(out, "float64"));
    ck_assert_ptr_nonnull(strstr(out, "string"));
    ck_assert_ptr_nonnull(strstr(out, " 0.1 "));
    ck_assert_ptr_nonnull(strstr(out, "2.0"));
    ck_assert_ptr_nonnull(strstr(out, "0.3333333333"));
    ck_assert_ptr_nonnull(strstr(out, "-12345"));
    ck_assert_ptr_nonnull(strstr(out, "NULL"));
    ck_assert_ptr_nonnull(strstr(out, "a\\x00b"));
    ck_assert_ptr_nonnull(strstr(out, "true"));
    ck_assert_ptr_nonnull(strstr(out, "(3 rows"));
    ck_assert_ptr_null(strstr(out, "..."));
    /* Every line of the table has the same width up to the last (string) column. */
    char *nl = strchr(out, '\n');
    size_t first = (size_t)(nl - out);
    ck_assert_uint_gt(first, 0);
    /* Numbers are right-aligned: "1" ends where "-12345" ends. */
    char *l1 = strstr(out, "\n     1  ");
    ck_assert_ptr_nonnull(l1);
    free(out);

    out = frame_format(f, 2);
    ck_assert_ptr_nonnull(strstr(out, "...\n"));
    ck_assert_ptr_null(strstr(out, "0.3333"));
    ck_assert_ptr_nonnull(strstr(out, "(3 rows"));
    free(out);

    frame *empty = frame_create();
    out = frame_format(empty, 10);
    ck_assert_ptr_nonnull(strstr(out, "(0 rows"));
    free(out);
    frame_free(empty);
    frame_free(f);
}
END_TEST

START_TEST(test_format_long_strings)
{
    mr_err e;
    frame *f = frame_create();
    frame_col *s = frame_add_col(f, "s", FRAME_STR, &e);
    char big[1000];
    memset(big, 'z', sizeof big);
    frame_col_push_str(s, big, sizeof big);
    memset(big, 0x80, sizeof big);   /* not UTF-8: must still be bounded */
    frame_col_push_str(s, big, sizeof big);
    memset(big, 1, sizeof big);
    frame_col_push_str(s, big, sizeof big);
    char *out = frame_format(f, 10);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_lt(strlen(out), 800);
    ck_assert_ptr_nonnull(strstr(out, "..."));
    free(out);
    frame_free(f);
}
END_TEST

static Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("types");
    tcase_add_test(tc, test_type_names);
    suite_add_tcase(s, tc);
    tc = tcase_create("columns");
    tcase_add_test(tc, test_push_all_types);
    tcase_add_test(tc, test_nulls_lazy);
    tcase_add_test(tc, test_push_from_and_clone);
    suite_add_tcase(s, tc);
    tc = tcase_create("frames");
    tcase_add_test(tc, test_frame_columns);
    tcase_add_test(tc, test_clone_and_empty_like);
    suite_add_tcase(s, tc);
    tc = tcase_create("append");
    tcase_add_test(tc, test_append_same_schema);
    tcase_add_test(tc, test_append_union_widen);
    suite_add_tcase(s, tc);
    tc = tcase_create("format");
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_format_long_strings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
