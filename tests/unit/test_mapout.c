/* Unit tests for engine/mapout: a map task's output streamed, batch by batch, into one
 * intermediate. One batch reads back cell for cell; across batches every partition holds
 * exactly the rows shuffle_assign routes there, in the order they were added; the schema
 * widens (int64 then float64, a column new in a later batch, a column that held no values
 * taking the later type, a column missing from a batch) with the earlier rows converted or
 * null; string vs numbers is MR_EINVAL naming the column; an output with no rows keeps its
 * columns, one with nothing has none; mapout_free leaves nothing behind unless finished. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/frame.h"
#include "engine/imf.h"
#include "engine/mapout.h"
#include "engine/shuffle.h"
#include "tmpdir.h"
#include "testrng.h"

/* Check's ck_assert costs a system call per passing check: this is for the loops. */
#define EXPECT(cond, ...)                       \
    do {                                        \
        if (!(cond)) ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* ---------------------------------------------------------------- fixtures */


static size_t buffer_bytes;   /* mapout_create's: 0 (imf's default) unless a test sets it */

static void tmp_setup(void)
{
    buffer_bytes = 0;
    tmpdir_make("test_mapout");
}

static void tmp_teardown(void) { tmpdir_remove(); }

static const char *tpath(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

/* Entries of tmpdir; the names (joined by ' ') go to list when not NULL. */
static int dir_entries(char *list, size_t cap)
{
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    if (list && cap) list[0] = '\0';
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        n++;
        if (list) {
            size_t l = strlen(list);
            snprintf(list + l, cap - l, "%s ", de->d_name);
        }
    }
    closedir(d);
    return n;
}

static void assert_dir_empty(const char *when)
{
    char names[2048];
    int n = dir_entries(names, sizeof names);
    ck_assert_msg(n == 0, "%s: the directory still holds %d entries: %s", when, n, names);
}

/* After finish + free: exactly the intermediate is left. */
static void assert_dir_only(const char *name)
{
    char names[2048];
    int n = dir_entries(names, sizeof names);
    char want[600];
    snprintf(want, sizeof want, "%s ", name);
    ck_assert_msg(n == 1 && strcmp(names, want) == 0, "expected only %s, found %d: %s", name, n,
                  names);
}


/* ---------------------------------------------------------------- frames */

static frame_col *addc(frame *f, const char *name, frame_type t)
{
    mr_err e;
    mr_err_clear(&e);
    frame_col *c = frame_add_col(f, name, t, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    return c;
}

static void push_s(frame_col *c, const char *s)
{
    ck_assert_int_eq(frame_col_push_str(c, s, strlen(s)), MR_OK);
}

/* id: unique int64 (base + row); k: string key over nkeys values (~5% null);
 * v: int64 (or float64 when v_float) payload, ~1 in 11 null; s: string, some empty;
 * b: bool. */
static frame *make_batch(size_t n, int64_t base, size_t nkeys, int v_float, uint64_t seed)
{
    rng_state = seed * 0x9E3779B97F4A7C15ull | 1;
    frame *f = frame_create();
    frame_col *id = addc(f, "id", FRAME_I64);
    frame_col *k = addc(f, "k", FRAME_STR);
    frame_col *v = addc(f, "v", v_float ? FRAME_F64 : FRAME_I64);
    frame_col *s = addc(f, "s", FRAME_STR);
    frame_col *b = addc(f, "b", FRAME_BOOL);
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        frame_col_push_i64(id, base + (int64_t)i);
        if (rnd() % 20 == 0) {
            frame_col_push_null(k);
        } else {
            snprintf(buf, sizeof buf, "key_%llu", (unsigned long long)(rnd() % nkeys));
            push_s(k, buf);
        }
        if (rnd() % 11 == 0) frame_col_push_null(v);
        else if (v_float) frame_col_push_f64(v, (double)(int64_t)(rnd() % 200001 - 100000) / 8.0);
        else frame_col_push_i64(v, (int64_t)(rnd() % 2000001) - 1000000);
        int len = (int)(rnd() % 12);
        snprintf(buf, sizeof buf, "%.*s", len, "abcdefghijklmnop");
        push_s(s, buf);
        frame_col_push_bool(b, (int)(rnd() & 1));
    }
    return f;
}

/* ---------------------------------------------------------------- comparison */

/* Does cell got[gi] hold what want[wi] held (want NULL: the batch lacked the column, so
 * null)? int64 values read back from a float64 column must be exactly the same number. */
static int cell_matches(const frame_col *got, size_t gi, const frame_col *want, size_t wi)
{
    if (!want || frame_col_is_null(want, wi)) return frame_col_is_null(got, gi);
    if (frame_col_is_null(got, gi)) return 0;
    if (got->type == FRAME_F64 && want->type == FRAME_I64)
        return got->v.f64[gi] == (double)want->v.i64[wi] &&
               (int64_t)got->v.f64[gi] == want->v.i64[wi];
    if (got->type != want->type) return 0;
    switch (got->type) {
    case FRAME_I64: return got->v.i64[gi] == want->v.i64[wi];
    case FRAME_F64: return got->v.f64[gi] == want->v.f64[wi];
    case FRAME_BOOL: return got->v.b[gi] == want->v.b[wi];
    case FRAME_STR: {
        size_t a, b;
        const char *pa = frame_col_str(got, gi, &a), *pb = frame_col_str(want, wi, &b);
        return a == b && (a == 0 || memcmp(pa, pb, a) == 0);
    }
    }
    return 0;
}

/* Row gi of got holds row wi of the batch want: every column of got (those the batch
 * lacks are null) and the batch has no column got lacks. */
static void expect_row(const frame *got, size_t gi, const frame *want, size_t wi, const char *where)
{
    for (size_t c = 0; c < frame_ncols(want); c++)
        EXPECT(frame_col_by_name(got, frame_col_at(want, c)->name), "%s: column '%s' is missing",
               where, frame_col_at(want, c)->name);
    for (size_t c = 0; c < frame_ncols(got); c++) {
        const frame_col *g = frame_col_at(got, c);
        const frame_col *w = frame_col_by_name(want, g->name);
        EXPECT(cell_matches(g, gi, w, wi), "%s: row %zu, column '%s' (%s) differs from batch row %zu",
               where, gi, g->name, frame_type_name(g->type), wi);
    }
}

/* The schema of the file at path is names[i]/types[i] (in that order when ordered). */
static void expect_schema_x(const char *path, const char *const *names, const frame_type *types,
                            size_t n, int ordered)
{
    mr_err e;
    mr_err_clear(&e);
    imf_reader *r = imf_reader_open(path, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    const frame *s = imf_reader_schema(r);
    ck_assert_uint_eq(frame_ncols(s), n);
    for (size_t i = 0; i < n; i++) {
        const frame_col *c = ordered ? frame_col_at(s, i) : frame_col_by_name(s, names[i]);
        ck_assert_msg(c != NULL, "no column '%s'", names[i]);
        ck_assert_str_eq(c->name, names[i]);
        ck_assert_msg(c->type == types[i], "column '%s' is %s, expected %s", names[i],
                      frame_type_name(c->type), frame_type_name(types[i]));
    }
    imf_reader_free(r);
}

static void expect_schema(const char *path, const char *const *names, const frame_type *types,
                          size_t n)
{
    expect_schema_x(path, names, types, n, 1);
}

/* The file at path has nparts partitions and partition p holds, in order, the rows of
 * batches[0..nb) that shuffle_assign gives to p (all of them when nparts is 1), each
 * partition read both whole (imf_read_all) and group by group (imf_reader_next). */
static void expect_routing(const char *path, int nparts, const char *const *keys, size_t nkeys,
                           frame *const *batches, size_t nb)
{
    mr_err e;
    mr_err_clear(&e);
    int **parts = calloc(nb, sizeof *parts);
    uint64_t total = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t n = frame_nrows(batches[b]);
        total += n;
        parts[b] = calloc(n ? n : 1, sizeof **parts);
        if (nparts > 1 && n)
            ck_assert_msg(shuffle_assign(batches[b], keys, nkeys, nparts, parts[b], &e) == MR_OK,
                          "%s", e.msg);
    }
    imf_reader *r = imf_reader_open(path, &e);
    ck_assert_msg(r != NULL, "%s", e.msg);
    ck_assert_int_eq(imf_reader_nparts(r), nparts);
    ck_assert_uint_eq(imf_reader_rows(r, -1), total);
    uint64_t seen = 0;
    for (int p = 0; p < nparts; p++) {
        frame *got = imf_read_all(path, p, &e);
        ck_assert_msg(got != NULL, "%s", e.msg);
        /* the same partition, group by group */
        frame *streamed = frame_empty_like(imf_reader_schema(r), &e);
        frame *g;
        while (imf_reader_next(r, p, &g, &e) == MR_OK && g) {
            ck_assert_int_eq(frame_append_frame(streamed, g, &e), MR_OK);
            frame_free(g);
        }
        ck_assert_msg(e.code == MR_OK, "%s", e.msg);
        ck_assert_uint_eq(frame_nrows(streamed), frame_nrows(got));
        ck_assert_uint_eq(imf_reader_rows(r, p), frame_nrows(got));
        size_t gi = 0;
        char where[64];
        snprintf(where, sizeof where, "partition %d", p);
        for (size_t b = 0; b < nb; b++) {
            for (size_t i = 0; i < frame_nrows(batches[b]); i++) {
                if (parts[b][i] != p) continue;
                EXPECT(gi < frame_nrows(got), "partition %d: only %zu rows, batch %zu row %zu missing",
                       p, frame_nrows(got), b, i);
                expect_row(got, gi, batches[b], i, where);
                expect_row(streamed, gi, batches[b], i, where);
                gi++;
            }
        }
        ck_assert_msg(gi == frame_nrows(got), "partition %d holds %zu rows, expected %zu", p,
                      frame_nrows(got), gi);
        seen += gi;
        frame_free(streamed);
        frame_free(got);
    }
    ck_assert_uint_eq(seen, total);
    imf_reader_free(r);
    for (size_t b = 0; b < nb; b++) free(parts[b]);
    free(parts);
}


static mapout *create(const char *name, int nparts, const char *const *keys, size_t nkeys)
{
    mr_err e;
    mr_err_clear(&e);
    mapout *m = mapout_create(tpath(name), 1, nparts, keys, nkeys, buffer_bytes, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    return m;
}

static void add_ok(mapout *m, const frame *f)
{
    mr_err e;
    mr_err_clear(&e);
    ck_assert_msg(mapout_add(m, f, &e) == MR_OK, "mapout_add: %s", e.msg);
}

static void finish_ok(mapout *m)
{
    mr_err e;
    mr_err_clear(&e);
    ck_assert_msg(mapout_finish(m, &e) == MR_OK, "mapout_finish: %s", e.msg);
}

static const char *const KEYS[] = {"k"};

/* ---------------------------------------------------------------- 1. one batch */

START_TEST(test_one_batch_one_part)
{
    frame *f = make_batch(5000, 0, 100, 0, 1);
    mapout *m = create("out.imf", 1, NULL, 0);
    add_ok(m, f);
    ck_assert_uint_eq(mapout_rows(m), 5000);
    finish_ok(m);
    ck_assert_uint_eq(mapout_generations(m), 0);
    mapout_free(m);
    assert_dir_only("out.imf");

    const char *names[] = {"id", "k", "v", "s", "b"};
    const frame_type types[] = {FRAME_I64, FRAME_STR, FRAME_I64, FRAME_STR, FRAME_BOOL};
    expect_schema(tpath("out.imf"), names, types, 5);
    mr_err e;
    mr_err_clear(&e);
    frame *got = imf_read_all(tpath("out.imf"), -1, &e);
    ck_assert_msg(got != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(got), 5000);
    for (size_t i = 0; i < 5000; i++) expect_row(got, i, f, i, "one batch");
    frame_free(got);
    ck_assert_int_eq(imf_verify(tpath("out.imf"), &e), MR_OK);
    expect_routing(tpath("out.imf"), 1, NULL, 0, &f, 1);
    frame_free(f);
}
END_TEST

/* ---------------------------------------------------------------- 2. routing */

/* _i == 0: imf's default coalescing buffers; 1: a 1-byte budget, so every add is flushed
 * at once as its own groups. */
START_TEST(test_batches_routed_by_key)
{
    buffer_bytes = _i ? 1 : 0;
    /* sizes include a single row, an empty batch and one past the 64K-row buffering */
    const size_t sizes[] = {1000, 1, 0, 7000, 37, 70000, 250};
    const size_t nb = sizeof sizes / sizeof sizes[0];
    frame *b[sizeof sizes / sizeof sizes[0]];
    int64_t base = 0;
    uint64_t total = 0;
    mapout *m = create("r.imf", 3, KEYS, 1);
    for (size_t i = 0; i < nb; i++) {
        b[i] = make_batch(sizes[i], base, 60, 0, 100 + i);
        base += (int64_t)sizes[i];
        total += sizes[i];
        add_ok(m, b[i]);
        ck_assert_uint_eq(mapout_rows(m), total);
    }
    finish_ok(m);
    ck_assert_uint_eq(mapout_rows(m), total);
    ck_assert_uint_eq(mapout_generations(m), 0);
    mapout_free(m);
    assert_dir_only("r.imf");

    const char *names[] = {"id", "k", "v", "s", "b"};
    const frame_type types[] = {FRAME_I64, FRAME_STR, FRAME_I64, FRAME_STR, FRAME_BOOL};
    expect_schema(tpath("r.imf"), names, types, 5);
    expect_routing(tpath("r.imf"), 3, KEYS, 1, b, nb);
    /* the routing is not trivial: every partition got rows */
    mr_err e;
    mr_err_clear(&e);
    imf_reader *r = imf_reader_open(tpath("r.imf"), &e);
    ck_assert_ptr_nonnull(r);
    for (int p = 0; p < 3; p++) ck_assert_uint_gt(imf_reader_rows(r, p), 1000);
    imf_reader_free(r);
    for (size_t i = 0; i < nb; i++) frame_free(b[i]);
}
END_TEST

/* ---------------------------------------------------------------- 3. int64 -> float64 */

START_TEST(test_widen_int_to_float)
{
    frame *b[3];
    b[0] = make_batch(3000, 0, 40, 0, 7);        /* v int64 */
    /* values at the edges of exact conversion, in int64 */
    frame_col *v0 = frame_col_by_name(b[0], "v");
    v0->v.i64[0] = (int64_t)1 << 53;
    v0->v.i64[1] = -((int64_t)1 << 53);
    v0->v.i64[2] = 123456789012345;
    v0->v.i64[3] = 0;
    if (v0->nulls) v0->nulls[0] = v0->nulls[1] = v0->nulls[2] = v0->nulls[3] = 0;
    b[1] = make_batch(2000, 3000, 40, 1, 8);     /* v float64 */
    b[2] = make_batch(1500, 5000, 40, 0, 9);     /* v int64 again: no further generation */
    mapout *m = create("w.imf", 2, KEYS, 1);
    add_ok(m, b[0]);
    ck_assert_uint_eq(mapout_generations(m), 0);
    add_ok(m, b[1]);
    ck_assert_uint_eq(mapout_generations(m), 1);
    add_ok(m, b[2]);
    ck_assert_uint_eq(mapout_generations(m), 1);
    /* the caller's frames are left alone */
    ck_assert_int_eq(frame_col_by_name(b[2], "v")->type, FRAME_I64);
    ck_assert_int_eq(frame_col_by_name(b[1], "v")->type, FRAME_F64);
    ck_assert_uint_eq(frame_nrows(b[2]), 1500);
    finish_ok(m);
    ck_assert_uint_eq(mapout_rows(m), 6500);
    ck_assert_uint_eq(mapout_generations(m), 1);
    mapout_free(m);
    assert_dir_only("w.imf");

    const char *names[] = {"id", "k", "v", "s", "b"};
    const frame_type types[] = {FRAME_I64, FRAME_STR, FRAME_F64, FRAME_STR, FRAME_BOOL};
    expect_schema(tpath("w.imf"), names, types, 5);
    expect_routing(tpath("w.imf"), 2, KEYS, 1, b, 3);
    mr_err e;
    mr_err_clear(&e);
    ck_assert_int_eq(imf_verify(tpath("w.imf"), &e), MR_OK);
    /* the edge values, found by id */
    frame *all = imf_read_all(tpath("w.imf"), -1, &e);
    ck_assert_ptr_nonnull(all);
    const frame_col *id = frame_col_by_name(all, "id"), *v = frame_col_by_name(all, "v");
    int found = 0;
    for (size_t i = 0; i < frame_nrows(all); i++) {
        if (id->v.i64[i] > 3) continue;
        const double want[] = {9007199254740992.0, -9007199254740992.0, 123456789012345.0, 0.0};
        ck_assert(!frame_col_is_null(v, i));
        ck_assert_msg(v->v.f64[i] == want[id->v.i64[i]], "id %lld: %.17g", (long long)id->v.i64[i],
                      v->v.f64[i]);
        found++;
    }
    ck_assert_int_eq(found, 4);
    frame_free(all);
    for (int i = 0; i < 3; i++) frame_free(b[i]);
}
END_TEST

/* ---------------------------------------------------------------- 4. columns come and go */

/* k, id and the given extra column, n rows. */
static frame *kid_frame(size_t n, int64_t base)
{
    frame *f = frame_create();
    frame_col *k = addc(f, "k", FRAME_STR);
    frame_col *id = addc(f, "id", FRAME_I64);
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "g%zu", (size_t)(base + (int64_t)i) % 17);
        push_s(k, buf);
        frame_col_push_i64(id, base + (int64_t)i);
    }
    return f;
}

/* Appends to f (n rows) a column of values mul * row + add (int64) ... */
static void attach_i64(frame *f, const char *name, int64_t mul, int64_t add)
{
    size_t n = frame_nrows(f);
    frame_col *c = frame_col_create(name, FRAME_I64, n ? n : 1);
    ck_assert_ptr_nonnull(c);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(frame_col_push_i64(c, (int64_t)i * mul + add), MR_OK);
    ck_assert_int_eq(frame_attach_col(f, c, NULL), MR_OK);
}

/* ... or the strings prefix<row>. */
static void attach_str(frame *f, const char *name, const char *prefix)
{
    size_t n = frame_nrows(f);
    frame_col *c = frame_col_create(name, FRAME_STR, n ? n : 1);
    ck_assert_ptr_nonnull(c);
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%s%zu", prefix, i);
        push_s(c, buf);
    }
    ck_assert_int_eq(frame_attach_col(f, c, NULL), MR_OK);
}

START_TEST(test_new_column_later)
{
    frame *b[2];
    b[0] = kid_frame(400, 0);
    attach_i64(b[0], "a", 3, 0);
    b[1] = kid_frame(300, 400);
    attach_i64(b[1], "a", -1, 0);
    attach_str(b[1], "x", "x");
    mapout *m = create("n.imf", 2, KEYS, 1);
    add_ok(m, b[0]);
    add_ok(m, b[1]);
    ck_assert_uint_eq(mapout_generations(m), 1);
    finish_ok(m);
    mapout_free(m);
    assert_dir_only("n.imf");
    const char *names[] = {"k", "id", "a", "x"};
    const frame_type types[] = {FRAME_STR, FRAME_I64, FRAME_I64, FRAME_STR};
    expect_schema(tpath("n.imf"), names, types, 4);
    /* expect_row wants x null for batch-0 rows, which lack it */
    expect_routing(tpath("n.imf"), 2, KEYS, 1, b, 2);
    mr_err e;
    mr_err_clear(&e);
    frame *all = imf_read_all(tpath("n.imf"), -1, &e);
    ck_assert_ptr_nonnull(all);
    const frame_col *cid = frame_col_by_name(all, "id"), *cx = frame_col_by_name(all, "x");
    size_t nulls = 0;
    for (size_t i = 0; i < frame_nrows(all); i++) {
        EXPECT(frame_col_is_null(cx, i) == (cid->v.i64[i] < 400), "row %zu id %lld", i,
               (long long)cid->v.i64[i]);
        nulls += frame_col_is_null(cx, i);
    }
    ck_assert_uint_eq(nulls, 400);
    frame_free(all);
    frame_free(b[0]);
    frame_free(b[1]);
}
END_TEST

START_TEST(test_all_null_column_takes_later_type)
{
    frame *b[3];
    /* s: string, every row null */
    b[0] = kid_frame(500, 0);
    frame_col *s0 = addc(b[0], "s", FRAME_STR);
    ck_assert_uint_eq(s0->len, 500);
    for (size_t i = 0; i < 500; i++) ck_assert(frame_col_is_null(s0, i));
    /* s: int64 with values (and a null) */
    b[1] = kid_frame(0, 0);
    frame_col *k1 = frame_col_by_name(b[1], "k"), *id1 = frame_col_by_name(b[1], "id");
    frame_col *s1 = addc(b[1], "s", FRAME_I64);
    char buf[16];
    for (size_t i = 0; i < 400; i++) {
        snprintf(buf, sizeof buf, "g%zu", (500 + i) % 17);
        push_s(k1, buf);
        frame_col_push_i64(id1, 500 + (int64_t)i);
        if (i == 5) frame_col_push_null(s1);
        else frame_col_push_i64(s1, (int64_t)i * 1000 + 7);
    }
    /* s: string again but all null: fits the int64 column as nulls */
    b[2] = kid_frame(50, 900);
    addc(b[2], "s", FRAME_STR);
    mapout *m = create("t.imf", 2, KEYS, 1);
    add_ok(m, b[0]);
    add_ok(m, b[1]);
    ck_assert_uint_eq(mapout_generations(m), 1);
    add_ok(m, b[2]);
    ck_assert_uint_eq(mapout_generations(m), 1);
    finish_ok(m);
    ck_assert_uint_eq(mapout_rows(m), 950);
    mapout_free(m);
    assert_dir_only("t.imf");
    const char *names[] = {"k", "id", "s"};
    const frame_type types[] = {FRAME_STR, FRAME_I64, FRAME_I64};
    expect_schema(tpath("t.imf"), names, types, 3);
    expect_routing(tpath("t.imf"), 2, KEYS, 1, b, 3);
    for (int i = 0; i < 3; i++) frame_free(b[i]);
}
END_TEST

START_TEST(test_batch_lacking_column)
{
    frame *b[3];
    b[0] = make_batch(800, 0, 30, 0, 21);
    b[1] = make_batch(600, 800, 30, 0, 22);
    ck_assert_int_eq(frame_drop_col(b[1], "v", NULL), MR_OK);
    ck_assert_int_eq(frame_drop_col(b[1], "s", NULL), MR_OK);
    b[2] = make_batch(200, 1400, 30, 0, 23);
    mapout *m = create("l.imf", 3, KEYS, 1);
    for (int i = 0; i < 3; i++) add_ok(m, b[i]);
    finish_ok(m);
    ck_assert_uint_eq(mapout_rows(m), 1600);
    mapout_free(m);
    assert_dir_only("l.imf");
    const char *names[] = {"id", "k", "v", "s", "b"};
    const frame_type types[] = {FRAME_I64, FRAME_STR, FRAME_I64, FRAME_STR, FRAME_BOOL};
    expect_schema(tpath("l.imf"), names, types, 5);
    /* expect_row wants v and s null for the rows of batch 1 */
    expect_routing(tpath("l.imf"), 3, KEYS, 1, b, 3);
    mr_err e;
    mr_err_clear(&e);
    frame *all = imf_read_all(tpath("l.imf"), -1, &e);
    const frame_col *id = frame_col_by_name(all, "id"), *s = frame_col_by_name(all, "s");
    size_t nulls = 0;
    for (size_t i = 0; i < frame_nrows(all); i++)
        if (id->v.i64[i] >= 800 && id->v.i64[i] < 1400) nulls += frame_col_is_null(s, i);
    ck_assert_uint_eq(nulls, 600);
    frame_free(all);
    for (int i = 0; i < 3; i++) frame_free(b[i]);
}
END_TEST

/* A batch with columns but no rows fixes nothing about types: the first values do. */
START_TEST(test_empty_batch_then_other_types)
{
    frame *b[2];
    b[0] = frame_create();
    addc(b[0], "k", FRAME_STR);
    addc(b[0], "n", FRAME_I64);
    b[1] = kid_frame(0, 0);
    frame_col *k = frame_col_by_name(b[1], "k"), *id = frame_col_by_name(b[1], "id");
    frame_col *n = addc(b[1], "n", FRAME_STR);
    for (int i = 0; i < 100; i++) {
        push_s(k, i % 2 ? "odd" : "even");
        frame_col_push_i64(id, i);
        push_s(n, i % 3 ? "three" : "x");
    }
    mapout *m = create("e.imf", 2, KEYS, 1);
    add_ok(m, b[0]);
    add_ok(m, b[1]);
    finish_ok(m);
    mapout_free(m);
    assert_dir_only("e.imf");
    /* the column order is not pinned down here: the batch without rows said k, n and the
     * first rows k, id, n */
    const char *names[] = {"k", "n", "id"};
    const frame_type types[] = {FRAME_STR, FRAME_STR, FRAME_I64};
    expect_schema_x(tpath("e.imf"), names, types, 3, 0);
    expect_routing(tpath("e.imf"), 2, KEYS, 1, b, 2);
    frame_free(b[0]);
    frame_free(b[1]);
}
END_TEST

/* ---------------------------------------------------------------- 5. clash */

static void expect_clash(mapout *m, const frame *f, const char *col)
{
    mr_err e;
    mr_err_clear(&e);
    uint64_t rows = mapout_rows(m);
    ck_assert_int_eq(mapout_add(m, f, &e), MR_EINVAL);
    ck_assert_int_eq(e.code, MR_EINVAL);
    char quoted[128];
    snprintf(quoted, sizeof quoted, "'%s'", col);
    ck_assert_msg(strstr(e.msg, quoted) != NULL, "message does not name %s: %s", quoted, e.msg);
    ck_assert_uint_eq(mapout_rows(m), rows);   /* the rejected rows are not counted */
}

/* k, id and a column `name` of type t holding values in every row. */
static frame *one_col(const char *name, frame_type t, size_t n)
{
    frame *f = kid_frame(n, 0);
    frame_col *c = frame_col_create(name, t, n);
    ck_assert_ptr_nonnull(c);
    for (size_t i = 0; i < n; i++) {
        switch (t) {
        case FRAME_I64: frame_col_push_i64(c, (int64_t)i); break;
        case FRAME_F64: frame_col_push_f64(c, (double)i + 0.5); break;
        case FRAME_BOOL: frame_col_push_bool(c, (int)(i & 1)); break;
        case FRAME_STR: push_s(c, "text"); break;
        }
    }
    ck_assert_int_eq(frame_attach_col(f, c, NULL), MR_OK);
    return f;
}

START_TEST(test_clash_string_then_int)
{
    frame *s = one_col("price_col", FRAME_STR, 50), *i = one_col("price_col", FRAME_I64, 50);
    mapout *m = create("c.imf", 2, KEYS, 1);
    add_ok(m, s);
    expect_clash(m, i, "price_col");
    mapout_free(m);
    assert_dir_empty("string then int64, freed");
    frame_free(s);
    frame_free(i);
}
END_TEST

START_TEST(test_clash_numbers_then_string)
{
    const frame_type first[] = {FRAME_I64, FRAME_F64, FRAME_BOOL};
    for (int t = 0; t < 3; t++) {
        frame *a = one_col("qty", first[t], 20), *s = one_col("qty", FRAME_STR, 20);
        mapout *m = create("c.imf", 1, NULL, 0);
        add_ok(m, a);
        expect_clash(m, s, "qty");
        mapout_free(m);
        assert_dir_empty("number then string, freed");
        frame_free(a);
        frame_free(s);
    }
}
END_TEST

/* The clash comes after a widening closed a generation file. */
START_TEST(test_clash_after_widening)
{
    frame *b0 = make_batch(300, 0, 10, 0, 31), *b1 = make_batch(300, 300, 10, 1, 32);
    /* b was bool with values: strings with values now */
    frame *strs = kid_frame(10, 600);
    attach_str(strs, "b", "yes");
    mapout *m = create("cw.imf", 3, KEYS, 1);
    add_ok(m, b0);
    add_ok(m, b1);
    ck_assert_uint_eq(mapout_generations(m), 1);
    ck_assert_int_ge(dir_entries(NULL, 0), 1);   /* the first generation is on disk */
    expect_clash(m, strs, "b");
    mapout_free(m);
    assert_dir_empty("clash after a widening, freed");
    frame_free(b0);
    frame_free(b1);
    frame_free(strs);
}
END_TEST

/* ---------------------------------------------------------------- 6. nothing output */

START_TEST(test_no_adds)
{
    for (int variant = 0; variant < 2; variant++) {
        mapout *m = create("z.imf", 3, KEYS, 1);
        frame *none = frame_create();
        if (variant == 1) add_ok(m, none);   /* a frame without columns counts as nothing */
        finish_ok(m);
        ck_assert_uint_eq(mapout_rows(m), 0);
        mapout_free(m);
        frame_free(none);
        assert_dir_only("z.imf");
        mr_err e;
        mr_err_clear(&e);
        ck_assert_msg(imf_verify(tpath("z.imf"), &e) == MR_OK, "%s", e.msg);
        imf_reader *r = imf_reader_open(tpath("z.imf"), &e);
        ck_assert_msg(r != NULL, "%s", e.msg);
        ck_assert_uint_eq(frame_ncols(imf_reader_schema(r)), 0);
        ck_assert_uint_eq(imf_reader_rows(r, -1), 0);
        ck_assert_int_eq(imf_reader_nparts(r), 3);
        imf_reader_free(r);
        frame *all = imf_read_all(tpath("z.imf"), -1, &e);
        ck_assert_msg(all != NULL, "%s", e.msg);
        ck_assert_uint_eq(frame_ncols(all), 0);
        ck_assert_uint_eq(frame_nrows(all), 0);
        frame_free(all);
        unlink(tpath("z.imf"));
    }
}
END_TEST

START_TEST(test_columns_without_rows)
{
    frame *f = frame_create();
    addc(f, "k", FRAME_STR);
    addc(f, "n", FRAME_I64);
    addc(f, "x", FRAME_F64);
    addc(f, "flag", FRAME_BOOL);
    mapout *m = create("c0.imf", 2, KEYS, 1);
    add_ok(m, f);
    add_ok(m, f);   /* twice: still nothing */
    finish_ok(m);
    ck_assert_uint_eq(mapout_rows(m), 0);
    mapout_free(m);
    assert_dir_only("c0.imf");
    const char *names[] = {"k", "n", "x", "flag"};
    const frame_type types[] = {FRAME_STR, FRAME_I64, FRAME_F64, FRAME_BOOL};
    expect_schema(tpath("c0.imf"), names, types, 4);
    mr_err e;
    mr_err_clear(&e);
    imf_reader *r = imf_reader_open(tpath("c0.imf"), &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(imf_reader_rows(r, -1), 0);
    ck_assert_int_eq(imf_reader_nparts(r), 2);
    imf_reader_free(r);
    frame *all = imf_read_all(tpath("c0.imf"), -1, &e);
    ck_assert_ptr_nonnull(all);
    ck_assert_uint_eq(frame_ncols(all), 4);
    ck_assert_uint_eq(frame_nrows(all), 0);
    frame_free(all);
    frame_free(f);
}
END_TEST

/* ---------------------------------------------------------------- 7. misuse */

START_TEST(test_parts_without_keys)
{
    mr_err e;
    mr_err_clear(&e);
    mapout *m = mapout_create(tpath("k.imf"), 1, 2, NULL, 0, 0, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    frame *b = make_batch(100, 0, 5, 0, 7);
    ck_assert_int_eq(mapout_add(m, b, &e), MR_EINVAL);
    ck_assert_msg(strstr(e.msg, "no partition keys") != NULL, "%s", e.msg);
    /* an assignment needs no keys: rows go where it says */
    uint32_t part[100];
    for (int i = 0; i < 100; i++) part[i] = (uint32_t)(i % 3 == 0);
    ck_assert_int_eq(mapout_add_assigned(m, b, part, &e), MR_OK);
    ck_assert_int_eq(mapout_finish(m, &e), MR_OK);
    mapout_free(m);
    imf_reader *r = imf_reader_open(tpath("k.imf"), &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(imf_reader_rows(r, 0), 66);
    ck_assert_uint_eq(imf_reader_rows(r, 1), 34);
    imf_reader_free(r);
    frame *p1 = imf_read_all(tpath("k.imf"), 1, &e);
    for (size_t i = 0; i < frame_nrows(p1); i++)   /* rows 0, 3, 6, ... in order */
        expect_row(p1, i, b, 3 * i, "assigned partition 1");
    frame_free(p1);
    frame_free(b);
    unlink(tpath("k.imf"));
    /* one partition needs no keys */
    mr_err_clear(&e);
    m = mapout_create(tpath("k.imf"), 1, 1, NULL, 0, 0, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    mapout_free(m);
    assert_dir_empty("unused mapout freed");
}
END_TEST

/* ---------------------------------------------------------------- 8. free, unfinished */

START_TEST(test_free_unfinished)
{
    frame *b0 = make_batch(2000, 0, 50, 0, 41), *b1 = make_batch(2000, 2000, 50, 1, 42);
    /* adds only */
    mapout *m = create("u.imf", 3, KEYS, 1);
    add_ok(m, b0);
    add_ok(m, b0);
    mapout_free(m);
    assert_dir_empty("adds, freed");
    /* after a widening */
    m = create("u.imf", 3, KEYS, 1);
    add_ok(m, b0);
    add_ok(m, b1);
    ck_assert_uint_eq(mapout_generations(m), 1);
    ck_assert_int_ge(dir_entries(NULL, 0), 1);
    mapout_free(m);
    assert_dir_empty("widening, freed");
    /* after two widenings (two generation files closed) */
    frame *b3 = kid_frame(10, 0);
    attach_i64(b3, "w", 1, 0);
    m = create("u.imf", 3, KEYS, 1);
    add_ok(m, b0);
    add_ok(m, b1);
    add_ok(m, b3);
    ck_assert_uint_eq(mapout_generations(m), 2);
    mapout_free(m);
    assert_dir_empty("two widenings, freed");
    /* NULL is fine */
    mapout_free(NULL);
    frame_free(b0);
    frame_free(b1);
    frame_free(b3);
}
END_TEST

/* Several generations merge into one file whose partitions keep the order of the adds. */
START_TEST(test_many_generations)
{
    buffer_bytes = _i ? 1 : 0;
    enum { NB = 6 };
    frame *b[NB];
    int64_t base = 0;
    mapout *m = create("g.imf", 4, KEYS, 1);
    for (int i = 0; i < NB; i++) {
        b[i] = make_batch(1500 + (size_t)i * 100, base, 25, i == 2, 50 + (uint64_t)i);
        base += (int64_t)frame_nrows(b[i]);
        if (i >= 3) {   /* a new column each time */
            char name[16];
            snprintf(name, sizeof name, "c%d", i);
            attach_i64(b[i], name, i, 0);
        }
        add_ok(m, b[i]);
    }
    ck_assert_uint_eq(mapout_generations(m), 4);   /* v to float64, then c3, c4, c5 */
    finish_ok(m);
    ck_assert_uint_eq(mapout_rows(m), (uint64_t)base);
    mapout_free(m);
    assert_dir_only("g.imf");
    const char *names[] = {"id", "k", "v", "s", "b", "c3", "c4", "c5"};
    const frame_type types[] = {FRAME_I64, FRAME_STR, FRAME_F64, FRAME_STR,
                                FRAME_BOOL, FRAME_I64, FRAME_I64, FRAME_I64};
    expect_schema(tpath("g.imf"), names, types, 8);
    expect_routing(tpath("g.imf"), 4, KEYS, 1, b, NB);
    for (int i = 0; i < NB; i++) frame_free(b[i]);
}
END_TEST

static Suite *mapout_suite(void)
{
    Suite *s = suite_create("mapout");
    TCase *tc = tcase_create("routing");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_one_batch_one_part);
    tcase_add_loop_test(tc, test_batches_routed_by_key, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("widening");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_widen_int_to_float);
    tcase_add_test(tc, test_new_column_later);
    tcase_add_test(tc, test_all_null_column_takes_later_type);
    tcase_add_test(tc, test_batch_lacking_column);
    tcase_add_test(tc, test_empty_batch_then_other_types);
    tcase_add_loop_test(tc, test_many_generations, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_clash_string_then_int);
    tcase_add_test(tc, test_clash_numbers_then_string);
    tcase_add_test(tc, test_clash_after_widening);
    tcase_add_test(tc, test_parts_without_keys);
    suite_add_tcase(s, tc);

    tc = tcase_create("empty_and_cleanup");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_no_adds);
    tcase_add_test(tc, test_columns_without_rows);
    tcase_add_test(tc, test_free_unfinished);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mapout_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
