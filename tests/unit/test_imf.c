/* Unit tests for engine/imf.c: round trips of every type, row groups, partitions, schema
 * rules, and detection of every flipped byte and every truncation.
 * LUAMR_IMF_BENCH_ROWS=20000000 makes the "perf" case time a frame of that many rows. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/frame.h"
#include "engine/imf.h"

/* ---- helpers ---- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/luamr-test-imf-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

static const char *tpath(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static size_t count_files(void)
{
    DIR *d = opendir(tmpdir);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A frame with every type, nulls at different strides, empty strings, a low-cardinality
 * key (dictionary path) and a high-cardinality text column (plain path). */
static frame *make_frame(size_t n, int64_t base)
{
    frame *f = frame_create();
    frame_col *ci = frame_add_col(f, "i", FRAME_I64, NULL);
    frame_col *cf = frame_add_col(f, "f", FRAME_F64, NULL);
    frame_col *cb = frame_add_col(f, "b", FRAME_BOOL, NULL);
    frame_col *ck = frame_add_col(f, "key", FRAME_STR, NULL);
    frame_col *ct = frame_add_col(f, "text", FRAME_STR, NULL);
    char buf[64];
    for (size_t r = 0; r < n; r++) {
        int64_t v = base + (int64_t)r;
        if (r % 7 == 3) ck_assert_int_eq(frame_col_push_null(ci), MR_OK);
        else ck_assert_int_eq(frame_col_push_i64(ci, v * 1000003 - 5), MR_OK);
        if (r % 11 == 5) ck_assert_int_eq(frame_col_push_null(cf), MR_OK);
        else ck_assert_int_eq(frame_col_push_f64(cf, (double)v / 3.0), MR_OK);
        if (r % 13 == 1) ck_assert_int_eq(frame_col_push_null(cb), MR_OK);
        else ck_assert_int_eq(frame_col_push_bool(cb, v % 3 == 0), MR_OK);
        if (r % 17 == 2) ck_assert_int_eq(frame_col_push_null(ck), MR_OK);
        else if (r % 19 == 4) ck_assert_int_eq(frame_col_push_str(ck, "", 0), MR_OK);
        else {
            int len = snprintf(buf, sizeof buf, "k%lld", (long long)(v % 5));
            ck_assert_int_eq(frame_col_push_str(ck, buf, (size_t)len), MR_OK);
        }
        if (r % 5 == 0) ck_assert_int_eq(frame_col_push_str(ct, "", 0), MR_OK);
        else if (r % 23 == 7) ck_assert_int_eq(frame_col_push_null(ct), MR_OK);
        else {
            int len = snprintf(buf, sizeof buf, "text-%lld-%llx", (long long)v,
                               (unsigned long long)(v * 2654435761u));
            ck_assert_int_eq(frame_col_push_str(ct, buf, (size_t)len), MR_OK);
        }
    }
    return f;
}

/* Cell-by-cell comparison; floats compared bit for bit so NaN and -0.0 count. */
static void assert_col_rows_equal(const frame_col *a, size_t ra, const frame_col *b, size_t rb,
                                  size_t n)
{
    ck_assert_int_eq(a->type, b->type);
    for (size_t k = 0; k < n; k++) {
        size_t i = ra + k, j = rb + k;
        ck_assert_msg(frame_col_is_null(a, i) == frame_col_is_null(b, j),
                      "column %s row %zu: null %d vs %d", a->name, i, frame_col_is_null(a, i),
                      frame_col_is_null(b, j));
        if (frame_col_is_null(a, i)) continue;
        switch (a->type) {
        case FRAME_I64: ck_assert_int_eq(a->v.i64[i], b->v.i64[j]); break;
        case FRAME_F64:
            ck_assert_msg(memcmp(&a->v.f64[i], &b->v.f64[j], 8) == 0, "column %s row %zu: %g vs %g",
                          a->name, i, a->v.f64[i], b->v.f64[j]);
            break;
        case FRAME_BOOL: ck_assert_int_eq(a->v.b[i], b->v.b[j]); break;
        case FRAME_STR: {
            size_t la, lb;
            const char *sa = frame_col_str(a, i, &la), *sb = frame_col_str(b, j, &lb);
            ck_assert_msg(la == lb && memcmp(sa, sb, la) == 0, "column %s row %zu: '%.*s' vs '%.*s'",
                          a->name, i, (int)la, sa, (int)lb, sb);
            break;
        }
        }
    }
}

static void assert_frames_equal(const frame *want, const frame *got)
{
    ck_assert_uint_eq(frame_ncols(want), frame_ncols(got));
    ck_assert_uint_eq(frame_nrows(want), frame_nrows(got));
    for (size_t j = 0; j < frame_ncols(want); j++) {
        const frame_col *a = frame_col_at(want, j), *b = frame_col_at(got, j);
        ck_assert_str_eq(a->name, b->name);
        assert_col_rows_equal(a, 0, b, 0, frame_nrows(want));
    }
}

static void write_frames(const char *path, int level, size_t group_rows, frame *const *fs,
                         const int *parts, size_t n)
{
    mr_err e = {0};
    imf_writer *w = imf_writer_open(path, level, &e);
    ck_assert_msg(w != NULL, "%s", e.msg);
    if (group_rows) ck_assert_int_eq(imf_writer_set_group_rows(w, group_rows, &e), MR_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(imf_writer_add(w, fs[i], parts ? parts[i] : 0, &e) == MR_OK, "%s", e.msg);
    ck_assert_msg(imf_writer_close(w, &e) == MR_OK, "%s", e.msg);
    imf_writer_free(w);
}

static frame *read_ok(const char *path, int partition)
{
    mr_err e = {0};
    frame *f = imf_read_all(path, partition, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_int_eq(imf_verify(path, &e), MR_OK);
    return f;
}

/* ---- round trips ---- */

START_TEST(test_roundtrip_all_types)
{
    make_tmpdir();
    static const int levels[] = {0, 1, 6, 12};
    for (size_t li = 0; li < 4; li++) {
        frame *f = make_frame(5000, -2500);
        write_frames(tpath("a.imf"), levels[li], 0, &f, NULL, 1);
        frame *g = read_ok(tpath("a.imf"), -1);
        assert_frames_equal(f, g);
        frame *g0 = read_ok(tpath("a.imf"), 0);
        assert_frames_equal(f, g0);
        frame_free(g0);
        frame_free(g);
        frame_free(f);
    }
    ck_assert_uint_eq(count_files(), 1);   /* no temporaries left behind */
    remove_tmpdir();
}
END_TEST

START_TEST(test_roundtrip_special_values)
{
    make_tmpdir();
    frame *f = frame_create();
    frame_col *ci = frame_add_col(f, "i", FRAME_I64, NULL);
    frame_col *cf = frame_add_col(f, "f", FRAME_F64, NULL);
    frame_col *cs = frame_add_col(f, "s", FRAME_STR, NULL);
    frame_col *cn = frame_add_col(f, "allnull", FRAME_STR, NULL);
    const int64_t ints[] = {INT64_MIN, INT64_MAX, 0, -1, 1};
    const double dbl[] = {NAN, INFINITY, -INFINITY, -0.0, 5e-324};
    char *big = malloc(70000);
    memset(big, 'x', 70000);
    big[0] = '\0';   /* embedded NUL bytes must survive */
    for (size_t r = 0; r < 5; r++) {
        frame_col_push_i64(ci, ints[r]);
        frame_col_push_f64(cf, dbl[r]);
        frame_col_push_str(cs, big, r == 2 ? 70000 : r * 300);   /* widths 1, 2 and 4 */
        frame_col_push_null(cn);
    }
    write_frames(tpath("s.imf"), 1, 0, &f, NULL, 1);
    frame *g = read_ok(tpath("s.imf"), -1);
    assert_frames_equal(f, g);
    frame_free(g);
    frame_free(f);
    free(big);
    remove_tmpdir();
}
END_TEST

START_TEST(test_empty_frames)
{
    make_tmpdir();
    mr_err e = {0};
    /* Nothing added: a valid file with no columns and one (empty) partition. */
    imf_writer *w = imf_writer_open(tpath("none.imf"), 1, &e);
    ck_assert_int_eq(imf_writer_close(w, &e), MR_OK);
    imf_writer_free(w);
    frame *g = read_ok(tpath("none.imf"), -1);
    ck_assert_uint_eq(frame_ncols(g), 0);
    frame_free(g);
    imf_reader *r = imf_reader_open(tpath("none.imf"), &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(imf_reader_nparts(r), 1);
    ck_assert_uint_eq(imf_reader_ngroups(r), 0);
    imf_reader_free(r);

    /* A frame with columns but no rows fixes the schema; readers see it. */
    frame *f = make_frame(0, 0);
    write_frames(tpath("empty.imf"), 1, 0, &f, NULL, 1);
    g = read_ok(tpath("empty.imf"), -1);
    ck_assert_uint_eq(frame_nrows(g), 0);
    ck_assert_uint_eq(frame_ncols(g), frame_ncols(f));
    for (size_t j = 0; j < frame_ncols(f); j++) {
        ck_assert_str_eq(frame_col_at(g, j)->name, frame_col_at(f, j)->name);
        ck_assert_int_eq(frame_col_at(g, j)->type, frame_col_at(f, j)->type);
    }
    frame_free(g);

    /* Empty frames between real ones add no groups; the small ones share one. */
    frame *a = make_frame(10, 0), *b = make_frame(13, 10), *both = frame_clone(a, &e);
    ck_assert_int_eq(frame_append_frame(both, b, &e), MR_OK);
    frame *seq[] = {f, a, f, b, f};
    write_frames(tpath("mix.imf"), 1, 0, seq, NULL, 5);
    r = imf_reader_open(tpath("mix.imf"), &e);
    ck_assert_uint_eq(imf_reader_ngroups(r), 1);
    imf_reader_free(r);
    g = read_ok(tpath("mix.imf"), -1);
    assert_frames_equal(both, g);
    frame_free(g);
    frame_free(a);
    frame_free(b);
    frame_free(both);
    frame_free(f);
    remove_tmpdir();
}
END_TEST

START_TEST(test_many_row_groups_streamed)
{
    make_tmpdir();
    mr_err e = {0};
    const size_t n = 1000, per = 7;
    frame *f = make_frame(n, 42);
    write_frames(tpath("g.imf"), 1, per, &f, NULL, 1);
    imf_reader *r = imf_reader_open(tpath("g.imf"), &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(imf_reader_ngroups(r), (n + per - 1) / per);
    ck_assert_uint_eq(imf_reader_rows(r, 0), n);
    for (int pass = 0; pass < 2; pass++) {   /* second pass after rewind */
        size_t seen = 0;
        frame *g;
        while (imf_reader_next(r, 0, &g, &e) == MR_OK && g) {
            ck_assert_uint_le(frame_nrows(g), per);
            ck_assert_uint_gt(frame_nrows(g), 0);
            for (size_t j = 0; j < frame_ncols(f); j++)
                assert_col_rows_equal(frame_col_at(f, j), seen, frame_col_at(g, j), 0,
                                      frame_nrows(g));
            seen += frame_nrows(g);
            frame_free(g);
        }
        ck_assert_int_eq(e.code, MR_OK);
        ck_assert_uint_eq(seen, n);
        imf_reader_rewind(r);
    }
    imf_reader_free(r);
    frame *all = read_ok(tpath("g.imf"), -1);
    assert_frames_equal(f, all);
    frame_free(all);
    frame_free(f);
    remove_tmpdir();
}
END_TEST

/* Dictionary and plain encodings are picked per group; both must round-trip, including the
 * two-byte dictionary index (more than 256 distinct values). */
START_TEST(test_string_encodings)
{
    make_tmpdir();
    frame *f = frame_create();
    frame_col *lo = frame_add_col(f, "lo", FRAME_STR, NULL);
    frame_col *mid = frame_add_col(f, "mid", FRAME_STR, NULL);
    frame_col *uniq = frame_add_col(f, "uniq", FRAME_STR, NULL);
    char buf[64];
    for (size_t r = 0; r < 40000; r++) {
        int len = snprintf(buf, sizeof buf, "user-%llu", (unsigned long long)(rnd() % 3));
        frame_col_push_str(lo, buf, (size_t)len);
        len = snprintf(buf, sizeof buf, "m%llu", (unsigned long long)(rnd() % 3000));
        frame_col_push_str(mid, buf, (size_t)len);
        len = snprintf(buf, sizeof buf, "u%zu-%llu", r, (unsigned long long)rnd());
        frame_col_push_str(uniq, buf, (size_t)len);
    }
    write_frames(tpath("d.imf"), 1, 10000, &f, NULL, 1);
    frame *g = read_ok(tpath("d.imf"), -1);
    assert_frames_equal(f, g);
    frame_free(g);
    /* The dictionary must pay for itself: the low-cardinality column costs far less than
     * its text. */
    struct stat st;
    ck_assert_int_eq(stat(tpath("d.imf"), &st), 0);
    size_t raw = uniq->arena_len + mid->arena_len + lo->arena_len;
    ck_assert_uint_lt((size_t)st.st_size, raw);
    frame_free(f);
    remove_tmpdir();
}
END_TEST

/* ---- partitions ---- */

static int part_of(const frame *f, size_t row, int nparts)
{
    const frame_col *i = frame_col_by_name(f, "i");
    return frame_col_is_null(i, row) ? 0 : (int)((uint64_t)i->v.i64[row] % (uint64_t)nparts);
}

START_TEST(test_partitions)
{
    make_tmpdir();
    mr_err e = {0};
    enum { R = 4, DECLARED = 6, NF = 5 };
    /* Split each source frame by partition, add the pieces interleaved, and compare each
     * partition with the rows the test itself routed there. */
    frame *want[DECLARED] = {0}, *src[NF];
    imf_writer *w = imf_writer_open(tpath("p.imf"), 1, &e);
    ck_assert_int_eq(imf_writer_set_nparts(w, DECLARED, &e), MR_OK);
    ck_assert_int_eq(imf_writer_set_group_rows(w, 50, &e), MR_OK);
    for (int p = 0; p < DECLARED; p++) want[p] = frame_empty_like(src[0] = make_frame(0, 0), &e),
                                        frame_free(src[0]);
    for (int k = 0; k < NF; k++) {
        src[k] = make_frame(300 + 37 * k, 1000 * k);
        frame *piece[R];
        for (int p = 0; p < R; p++) piece[p] = frame_empty_like(src[k], &e);
        for (size_t r = 0; r < frame_nrows(src[k]); r++) {
            int p = part_of(src[k], r, R);
            for (size_t j = 0; j < frame_ncols(src[k]); j++)
                frame_col_push_from(frame_col_at(piece[p], j), frame_col_at(src[k], j), r);
        }
        for (int p = R - 1; p >= 0; p--) {
            ck_assert_msg(imf_writer_add(w, piece[p], p, &e) == MR_OK, "%s", e.msg);
            ck_assert_int_eq(frame_append_frame(want[p], piece[p], &e), MR_OK);
            frame_free(piece[p]);
        }
    }
    ck_assert_int_eq(imf_writer_add(w, src[0], DECLARED, &e), MR_EINVAL);
    ck_assert_int_eq(imf_writer_close(w, &e), MR_OK);
    imf_writer_free(w);

    imf_reader *r = imf_reader_open(tpath("p.imf"), &e);
    ck_assert_int_eq(imf_reader_nparts(r), DECLARED);
    uint64_t total = 0;
    for (int p = 0; p < DECLARED; p++) {
        ck_assert_uint_eq(imf_reader_rows(r, p), frame_nrows(want[p]));
        total += imf_reader_rows(r, p);
        frame *g = read_ok(tpath("p.imf"), p);
        assert_frames_equal(want[p], g);
        frame_free(g);
    }
    ck_assert_uint_eq(imf_reader_rows(r, -1), total);
    ck_assert_uint_eq(imf_reader_rows(r, DECLARED + 3), 0);

    /* Interleaved streaming of two partitions keeps separate cursors. */
    size_t got1 = 0, got3 = 0;
    frame *g1 = NULL, *g3 = NULL;
    do {
        ck_assert_int_eq(imf_reader_next(r, 1, &g1, &e), MR_OK);
        ck_assert_int_eq(imf_reader_next(r, 3, &g3, &e), MR_OK);
        if (g1) {
            assert_col_rows_equal(frame_col_at(want[1], 3), got1, frame_col_at(g1, 3), 0,
                                  frame_nrows(g1));
            got1 += frame_nrows(g1);
        }
        if (g3) {
            assert_col_rows_equal(frame_col_at(want[3], 4), got3, frame_col_at(g3, 4), 0,
                                  frame_nrows(g3));
            got3 += frame_nrows(g3);
        }
        frame_free(g1);
        frame_free(g3);
    } while (g1 || g3);
    ck_assert_uint_eq(got1, frame_nrows(want[1]));
    ck_assert_uint_eq(got3, frame_nrows(want[3]));
    ck_assert_int_eq(imf_reader_next(r, 5, &g1, &e), MR_OK);   /* declared, empty */
    ck_assert_ptr_null(g1);
    ck_assert_int_eq(imf_reader_next(r, 99, &g1, &e), MR_OK);  /* beyond nparts */
    ck_assert_ptr_null(g1);
    imf_reader_free(r);
    for (int p = 0; p < DECLARED; p++) frame_free(want[p]);
    for (int k = 0; k < NF; k++) frame_free(src[k]);
    remove_tmpdir();
}
END_TEST

/* Many tiny adds (a shuffle emitting a few rows per reducer) are coalesced into few
 * groups, per partition, with row order kept; a large add flushes its partition first. */
START_TEST(test_small_frames_coalesced)
{
    make_tmpdir();
    mr_err e = {0};
    enum { R = 3, ADDS = 300 };
    frame *want[R], *proto = make_frame(0, 0);
    for (int p = 0; p < R; p++) want[p] = frame_empty_like(proto, &e);
    imf_writer *w = imf_writer_open(tpath("c.imf"), 1, &e);
    for (int k = 0; k < ADDS; k++) {
        frame *f = make_frame(1 + (size_t)k % 5, 100 * k);
        int p = k % R;
        ck_assert_int_eq(imf_writer_add(w, f, p, &e), MR_OK);
        ck_assert_int_eq(frame_append_frame(want[p], f, &e), MR_OK);
        frame_free(f);
    }
    frame *big = make_frame(70000, 7);   /* direct write, after partition 1's pending rows */
    ck_assert_int_eq(imf_writer_add(w, big, 1, &e), MR_OK);
    ck_assert_int_eq(frame_append_frame(want[1], big, &e), MR_OK);
    ck_assert_int_eq(imf_writer_close(w, &e), MR_OK);
    imf_writer_free(w);
    imf_reader *r = imf_reader_open(tpath("c.imf"), &e);
    ck_assert_uint_le(imf_reader_ngroups(r), R + 2);
    imf_reader_free(r);
    for (int p = 0; p < R; p++) {
        frame *g = read_ok(tpath("c.imf"), p);
        assert_frames_equal(want[p], g);
        frame_free(g);
        frame_free(want[p]);
    }
    frame_free(big);
    frame_free(proto);
    remove_tmpdir();
}
END_TEST

/* ---- writer rules ---- */

static frame *two_cols(const char *n1, frame_type t1, const char *n2, frame_type t2, int64_t v)
{
    frame *f = frame_create();
    frame_col *a = frame_add_col(f, n1, t1, NULL);
    frame_col *b = n2 ? frame_add_col(f, n2, t2, NULL) : NULL;
    char buf[32];
    for (int r = 0; r < 3; r++) {
        int len = snprintf(buf, sizeof buf, "s%lld", (long long)(v + r));
        if (t1 == FRAME_STR) frame_col_push_str(a, buf, (size_t)len);
        else frame_col_push_i64(a, v + r);
        if (b && t2 == FRAME_STR) frame_col_push_str(b, buf, (size_t)len);
        else if (b) frame_col_push_i64(b, v + r);
    }
    return f;
}

START_TEST(test_schema_rules)
{
    make_tmpdir();
    mr_err e = {0};
    frame *first = two_cols("a", FRAME_I64, "b", FRAME_STR, 0);
    frame *swapped = two_cols("b", FRAME_STR, "a", FRAME_I64, 10);
    frame *retyped = two_cols("a", FRAME_F64, "b", FRAME_STR, 0);
    frame *missing = two_cols("a", FRAME_I64, NULL, FRAME_I64, 0);
    frame *renamed = two_cols("a", FRAME_I64, "c", FRAME_STR, 0);
    imf_writer *w = imf_writer_open(tpath("s.imf"), 1, &e);
    ck_assert_int_eq(imf_writer_add(w, first, 0, &e), MR_OK);
    ck_assert_int_eq(access(tpath("s.imf"), F_OK), -1);   /* only the temporary exists */
    ck_assert_int_eq(imf_writer_add(w, retyped, 0, &e), MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'a'"));
    ck_assert_int_eq(imf_writer_add(w, missing, 0, &e), MR_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'b'"));
    ck_assert_int_eq(imf_writer_add(w, renamed, 0, &e), MR_EINVAL);
    ck_assert_int_eq(imf_writer_add(w, first, -1, &e), MR_EINVAL);
    ck_assert_int_eq(imf_writer_add(w, first, IMF_MAX_PARTS, &e), MR_EINVAL);
    /* Rejected frames leave the writer usable; columns are matched by name. */
    ck_assert_int_eq(imf_writer_add(w, swapped, 0, &e), MR_OK);
    ck_assert_int_eq(imf_writer_close(w, &e), MR_OK);
    ck_assert_int_eq(imf_writer_add(w, first, 0, &e), MR_EINVAL);   /* after close */
    imf_writer_free(w);
    frame *g = read_ok(tpath("s.imf"), -1);
    ck_assert_uint_eq(frame_nrows(g), 6);
    ck_assert_str_eq(frame_col_at(g, 0)->name, "a");
    for (size_t r = 0; r < 6; r++) {
        int64_t v = (int64_t)(r < 3 ? r : 10 + r - 3);
        ck_assert_int_eq(frame_col_at(g, 0)->v.i64[r], v);
        char want[32];
        size_t len;
        snprintf(want, sizeof want, "s%lld", (long long)v);
        const char *got = frame_col_str(frame_col_at(g, 1), r, &len);
        ck_assert_uint_eq(len, strlen(want));
        ck_assert(memcmp(got, want, len) == 0);
    }
    frame_free(g);

    /* A writer freed without close leaves nothing behind. */
    w = imf_writer_open(tpath("gone.imf"), 1, &e);
    ck_assert_int_eq(imf_writer_add(w, first, 0, &e), MR_OK);
    imf_writer_free(w);
    ck_assert_int_eq(access(tpath("gone.imf"), F_OK), -1);
    ck_assert_uint_eq(count_files(), 1);
    imf_writer_free(NULL);
    imf_reader_free(NULL);

    ck_assert_ptr_null(imf_writer_open(tpath("x.imf"), 13, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    ck_assert_ptr_null(imf_writer_open("/nonexistent-dir/x.imf", 1, &e));
    ck_assert_int_eq(e.code, MR_EIO);
    ck_assert_ptr_null(imf_reader_open(tpath("missing.imf"), &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    frame_free(first);
    frame_free(swapped);
    frame_free(retyped);
    frame_free(missing);
    frame_free(renamed);
    remove_tmpdir();
}
END_TEST

/* ---- corruption ---- */

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(p, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return p;
}

static void spit(const char *path, const unsigned char *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

/* A small file touching every structure: two partitions, several groups, nulls, both string
 * encodings, compressed and stored blocks. */
static unsigned char *sample_file(size_t *n)
{
    frame *a = make_frame(60, 0), *b = make_frame(45, 500);
    frame *fs[] = {a, b, a};
    const int parts[] = {0, 1, 1};
    write_frames(tpath("good.imf"), 1, 32, fs, parts, 3);
    frame_free(a);
    frame_free(b);
    return slurp(tpath("good.imf"), n);
}

static void assert_detected(const char *path, const char *what, size_t off)
{
    mr_err e = {0};
    mr_code rc = imf_verify(path, &e);
    ck_assert_msg(rc == MR_ECORRUPT, "%s at %zu: verify returned %s (%s)", what, off,
                  mr_code_name(rc), e.msg);
    ck_assert_msg(strstr(e.msg, path) != NULL && strstr(e.msg, "byte") != NULL,
                  "%s at %zu: message lacks file or offset: %s", what, off, e.msg);
    mr_err_clear(&e);
    frame *f = imf_read_all(path, -1, &e);
    ck_assert_msg(f == NULL && e.code == MR_ECORRUPT, "%s at %zu: read_all %s", what, off,
                  f ? "succeeded" : e.msg);
}

/* Damage is applied in place (pwrite, ftruncate): thousands of cases, one file. */
START_TEST(test_every_flipped_byte_detected)
{
    make_tmpdir();
    size_t n;
    unsigned char *good = sample_file(&n);
    ck_assert_int_eq(imf_verify(tpath("good.imf"), NULL), MR_OK);
    spit(tpath("bad.imf"), good, n);
    int fd = open(tpath("bad.imf"), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    static const unsigned char masks[] = {0x01, 0x80, 0xff};
    for (size_t m = 0; m < sizeof masks; m++) {
        for (size_t off = 0; off < n; off++) {
            unsigned char b = good[off] ^ masks[m];
            ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
            assert_detected(tpath("bad.imf"), "flip", off);
            ck_assert_int_eq(pwrite(fd, &good[off], 1, (off_t)off), 1);
        }
    }
    close(fd);
    ck_assert_int_eq(imf_verify(tpath("bad.imf"), NULL), MR_OK);   /* restored intact */
    free(good);
    remove_tmpdir();
}
END_TEST

START_TEST(test_every_truncation_detected)
{
    make_tmpdir();
    size_t n;
    unsigned char *good = sample_file(&n);
    spit(tpath("short.imf"), good, n);
    for (size_t len = n; len-- > 0;) {
        ck_assert_int_eq(truncate(tpath("short.imf"), (off_t)len), 0);
        assert_detected(tpath("short.imf"), "truncation", len);
    }
    /* Appended garbage moves the trailer away from the end: also damage. */
    unsigned char *longer = malloc(n + 1);
    memcpy(longer, good, n);
    longer[n] = 0;
    spit(tpath("long.imf"), longer, n + 1);
    assert_detected(tpath("long.imf"), "extension", n);
    free(longer);
    free(good);
    remove_tmpdir();
}
END_TEST

/* Byte planes (frames of >= 4096 rows) and wide dictionary indexes need a bigger file;
 * every 7th byte of it is damaged in turn. */
START_TEST(test_flips_in_large_groups_detected)
{
    make_tmpdir();
    frame *f = frame_create();
    frame_col *ci = frame_add_col(f, "i", FRAME_I64, NULL);
    frame_col *cf = frame_add_col(f, "f", FRAME_F64, NULL);
    frame_col *ck = frame_add_col(f, "k", FRAME_STR, NULL);
    char buf[32];
    for (size_t r = 0; r < 5000; r++) {
        frame_col_push_i64(ci, (int64_t)(r / 10));
        frame_col_push_f64(cf, (double)(r % 100) / 4.0);
        int len = snprintf(buf, sizeof buf, "k%zu", r % 700);
        frame_col_push_str(ck, buf, (size_t)len);
    }
    write_frames(tpath("big.imf"), 6, 0, &f, NULL, 1);
    frame *g = read_ok(tpath("big.imf"), -1);
    assert_frames_equal(f, g);
    frame_free(g);
    frame_free(f);
    size_t n;
    unsigned char *good = slurp(tpath("big.imf"), &n);
    int fd = open(tpath("big.imf"), O_WRONLY);
    for (size_t off = 0; off < n; off += 7) {
        unsigned char b = good[off] ^ 0x5a;
        ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
        assert_detected(tpath("big.imf"), "flip", off);
        ck_assert_int_eq(pwrite(fd, &good[off], 1, (off_t)off), 1);
    }
    close(fd);
    free(good);
    remove_tmpdir();
}
END_TEST

/* Each damaged region is named: the message says where, so an operator can tell a bad
 * disk from a bug. */
START_TEST(test_corruption_messages)
{
    make_tmpdir();
    size_t n;
    unsigned char *good = sample_file(&n);
    unsigned char *bad = malloc(n);
    mr_err e = {0};
    struct { size_t off; const char *needle; } cases[] = {
        {0, "bad magic"},
        {8, "version"},
        {20, "schema"},
        {n - 30, "footer"},
        {n - 2, "footer missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(bad, good, n);
        bad[cases[i].off] ^= 0x10;
        spit(tpath("bad.imf"), bad, n);
        ck_assert_int_eq(imf_verify(tpath("bad.imf"), &e), MR_ECORRUPT);
        ck_assert_msg(strstr(e.msg, cases[i].needle) != NULL, "offset %zu: %s", cases[i].off,
                      e.msg);
    }
    /* A byte in the middle of the data lands in a block of a named column. */
    memcpy(bad, good, n);
    bad[n / 2] ^= 0x10;
    spit(tpath("bad.imf"), bad, n);
    ck_assert_int_eq(imf_verify(tpath("bad.imf"), &e), MR_ECORRUPT);
    ck_assert_msg(strstr(e.msg, "group ") && strstr(e.msg, "CRC"), "%s", e.msg);
    free(bad);
    free(good);
    remove_tmpdir();
}
END_TEST

/* ---- performance (figures for the report; correctness asserted too) ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time too: the build machine is shared, and wall time measures the neighbours. */
static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(test_perf_key_value)
{
    const char *env = getenv("LUAMR_IMF_BENCH_ROWS");
    size_t n = env ? (size_t)strtoull(env, NULL, 10) : 200000;
    make_tmpdir();
    mr_err e = {0};
    frame *f = frame_create();
    frame_col *k = frame_add_col(f, "key", FRAME_STR, NULL);
    frame_col *v = frame_add_col(f, "value", FRAME_F64, NULL);
    frame_col_reserve(k, n, n * 10);
    frame_col_reserve(v, n, 0);
    char buf[32];
    for (size_t r = 0; r < n; r++) {
        int len = snprintf(buf, sizeof buf, "customer-%03llu", (unsigned long long)(rnd() % 1000));
        frame_col_push_str(k, buf, (size_t)len);
        frame_col_push_f64(v, (double)(rnd() % 10000000) / 100.0);   /* prices, 2 decimals */
    }
    size_t raw = n * 8 + k->arena_len + n * 8;   /* offsets + text + doubles */
    double c0 = cpu(), t0 = now();
    imf_writer *w = imf_writer_open(tpath("perf.imf"), 1, &e);
    ck_assert_int_eq(imf_writer_add(w, f, 0, &e), MR_OK);
    ck_assert_int_eq(imf_writer_close(w, &e), MR_OK);
    double t1 = now(), c1 = cpu();
    frame *g = imf_read_all(tpath("perf.imf"), 0, &e);
    double t2 = now(), c2 = cpu();
    ck_assert_msg(g != NULL, "%s", e.msg);
    ck_assert_int_eq(imf_verify(tpath("perf.imf"), &e), MR_OK);
    double t3 = now();
    struct stat st;
    stat(tpath("perf.imf"), &st);
    printf("imf perf: %zu rows (string key, 1000 distinct + float64): write %.3f s "
           "(cpu %.3f), read %.3f s (cpu %.3f), verify %.3f s, file %.1f MB vs raw %.1f MB "
           "(%.1f%%)\n", n, t1 - t0, c1 - c0, t2 - t1, c2 - c1, t3 - t2, st.st_size / 1e6,
           raw / 1e6, 100.0 * st.st_size / raw);
    assert_frames_equal(f, g);
    ck_assert_uint_lt((size_t)st.st_size, raw / 2);
    imf_writer_free(w);
    frame_free(g);
    frame_free(f);
    remove_tmpdir();
}
END_TEST

static void suite_cases(Suite *s)
{
    TCase *tc = tcase_create("roundtrip");
    tcase_add_test(tc, test_roundtrip_all_types);
    tcase_add_test(tc, test_roundtrip_special_values);
    tcase_add_test(tc, test_empty_frames);
    tcase_add_test(tc, test_many_row_groups_streamed);
    tcase_add_test(tc, test_string_encodings);
    suite_add_tcase(s, tc);
    tc = tcase_create("partitions");
    tcase_add_test(tc, test_partitions);
    tcase_add_test(tc, test_small_frames_coalesced);
    suite_add_tcase(s, tc);
    tc = tcase_create("writer");
    tcase_add_test(tc, test_schema_rules);
    suite_add_tcase(s, tc);
    tc = tcase_create("corruption");
    tcase_add_test(tc, test_every_flipped_byte_detected);
    tcase_add_test(tc, test_every_truncation_detected);
    tcase_add_test(tc, test_flips_in_large_groups_detected);
    tcase_add_test(tc, test_corruption_messages);
    suite_add_tcase(s, tc);
    tc = tcase_create("perf");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_perf_key_value);
    suite_add_tcase(s, tc);
}

int main(void)
{
    Suite *s = suite_create("imf");
    suite_cases(s);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
