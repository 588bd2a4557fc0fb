/* Unit tests for engine/spill: spill_groupby_merge over intermediates of groupby_partial
 * frames (partitioned as the mappers write them, and unpartitioned), with a generous
 * budget and with budgets small enough to force spilling, compared against groupby_run
 * on the concatenated raw mapper rows (every aggregate; approx_quantile by rank within
 * the sketch's documented bound). Also: the output is sorted by key across batches and spill partitions, the
 * scratch folder is empty afterwards (on success and on failure), and errors propagate. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/frame.h"
#include "engine/groupby.h"
#include "engine/imf.h"
#include "engine/ops.h"
#include "engine/shuffle.h"
#include "engine/spill.h"
#include "tmpdir.h"
#include "testrng.h"

/* An assertion for hot loops: Check's ck_assert records every passing check through its
 * message pipe, which costs a system call each time. */
#define EXPECT(cond, ...)                       \
    do {                                        \
        if (!(cond)) ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* ---------------------------------------------------------------- fixtures */

static char scratch[300];

static void tmp_setup(void)
{
    tmpdir_make("test_spill");
    snprintf(scratch, sizeof scratch, "%s/scratch", tmpdir);
    ck_assert_int_eq(mkdir(scratch, 0700), 0);
}

static void tmp_teardown(void) { tmpdir_remove(); }

/* Entries in the scratch folder other than . and .. */
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

/* ---------------------------------------------------------------- random mapper input */

static double rnd01(void) { return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0); }

/* One mapper's raw rows. k: string key over nkeys values (~5% null); ik: int64 key over
 * nkeys values (~3% null); x: float64 (~10% null, multiples of 1/8 so ties happen);
 * y: int64 (~10% null, 50 values); s: string (~10% null, 40 values and prefixes). */
static int raw_x_int;   /* make_raw: x as int64 (whole numbers) instead of float64 */

static frame *make_raw(size_t n, size_t nkeys, uint64_t seed)
{
    mr_err e;
    rng_state = seed * 0x9E3779B97F4A7C15ull | 1;
    frame *f = frame_create();
    frame_col *k = frame_add_col(f, "k", FRAME_STR, &e);
    frame_col *ik = frame_add_col(f, "ik", FRAME_I64, &e);
    frame_col *x = frame_add_col(f, "x", raw_x_int ? FRAME_I64 : FRAME_F64, &e);
    frame_col *y = frame_add_col(f, "y", FRAME_I64, &e);
    frame_col *s = frame_add_col(f, "s", FRAME_STR, &e);
    ck_assert(k && ik && x && y && s);
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        if (rnd() % 20 == 0) {
            frame_col_push_null(k);
        } else {
            int len = snprintf(buf, sizeof buf, "key%llu", (unsigned long long)(rnd() % nkeys));
            frame_col_push_str(k, buf, (size_t)len);
        }
        if (rnd() % 33 == 0) frame_col_push_null(ik);
        else frame_col_push_i64(ik, (int64_t)(rnd() % nkeys) - (int64_t)(nkeys / 3));
        if (rnd() % 10 == 0) frame_col_push_null(x);
        else if (raw_x_int) frame_col_push_i64(x, (int64_t)(rnd() % 250) - 125);
        else frame_col_push_f64(x, floor(rnd01() * 2000 - 1000) / 8);
        if (rnd() % 10 == 0) frame_col_push_null(y);
        else frame_col_push_i64(y, (int64_t)(rnd() % 50) - 25);
        if (rnd() % 10 == 0) {
            frame_col_push_null(s);
        } else {
            int len = snprintf(buf, sizeof buf, "s%02llu", (unsigned long long)(rnd() % 40));
            frame_col_push_str(s, buf, (size_t)(len - (int)(rnd() % 2)));
        }
    }
    return f;
}

/* Every aggregate; QUANTILE, COUNT_DISTINCT and APPROX_QUANTILE make the partials
 * unfoldable, so the accumulator can only shrink by spilling. */
static const groupby_agg all_aggs[] = {
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
    {"q50", GROUPBY_QUANTILE, "x", 0.5},
    {"q90", GROUPBY_QUANTILE, "x", 0.9},
    {"aq90", GROUPBY_APPROX_QUANTILE, "x", 0.9},
    {"dy", GROUPBY_COUNT_DISTINCT, "y", 0},
    {"ds", GROUPBY_COUNT_DISTINCT, "s", 0},
};
#define NALL (sizeof all_aggs / sizeof all_aggs[0])

/* A lighter mix for the many-key tests (no per-group sketches), unfoldable too. */
static const groupby_agg mix_aggs[] = {
    {"n", GROUPBY_COUNT, NULL, 0},
    {"sumx", GROUPBY_SUM, "x", 0},
    {"meanx", GROUPBY_MEAN, "x", 0},
    {"maxs", GROUPBY_MAX, "s", 0},
    {"firsts", GROUPBY_FIRST, "s", 0},
    {"q90", GROUPBY_QUANTILE, "x", 0.9},
    {"dy", GROUPBY_COUNT_DISTINCT, "y", 0},
};
#define NMIX (sizeof mix_aggs / sizeof mix_aggs[0])

/* Only aggregates whose partials fold partial -> partial (the compaction path). */
static const groupby_agg fold_aggs[] = {
    {"n", GROUPBY_COUNT, NULL, 0},
    {"nx", GROUPBY_COUNT, "x", 0},
    {"sumx", GROUPBY_SUM, "x", 0},
    {"sumy", GROUPBY_SUM, "y", 0},
    {"meany", GROUPBY_MEAN, "y", 0},
    {"meanx", GROUPBY_MEAN, "x", 0},
    {"minx", GROUPBY_MIN, "x", 0},
    {"maxy", GROUPBY_MAX, "y", 0},
    {"mins", GROUPBY_MIN, "s", 0},
    {"maxs", GROUPBY_MAX, "s", 0},
    {"firstx", GROUPBY_FIRST, "x", 0},
    {"firsts", GROUPBY_FIRST, "s", 0},
};
#define NFOLD (sizeof fold_aggs / sizeof fold_aggs[0])

/* ---------------------------------------------------------------- intermediates */

typedef struct job {
    size_t nmappers;
    frame *raw[16];      /* each mapper's input rows */
    char *paths[16];     /* each mapper's intermediate */
    frame *all;          /* the raw rows of every mapper, concatenated in mapper order */
    size_t partial_bytes[16];   /* frame_mem_bytes of each mapper's partial frame */
} job;

/* Writes one mapper's partial frame as task.c does: shuffle_write (hash partitions of the
 * partition keys), or, for odd mappers, the same partitioning through an imf_writer with
 * small row groups fed in several adds, so readers see many row groups per partition. */
static void write_intermediate(const frame *partial, const char *path, int nparts,
                               const char *const *keys, size_t nkeys, int small_groups)
{
    mr_err e;
    mr_err_clear(&e);
    if (!small_groups) {
        ck_assert_msg(shuffle_write(partial, path, 1, nparts, keys, nkeys, &e) == MR_OK, "%s", e.msg);
        return;
    }
    size_t n = frame_nrows(partial);
    int *part = malloc((n ? n : 1) * sizeof *part);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (nparts > 1) {
        ck_assert_int_eq(shuffle_assign(partial, keys, nkeys, nparts, part, &e), MR_OK);
    } else {
        for (size_t i = 0; i < n; i++) part[i] = 0;
    }
    imf_writer *w = imf_writer_open(path, 1, &e);
    ck_assert_msg(w != NULL, "%s", e.msg);
    ck_assert_int_eq(imf_writer_set_group_rows(w, 1500, &e), MR_OK);
    ck_assert_int_eq(imf_writer_set_nparts(w, nparts, &e), MR_OK);
    for (int p = 0; p < nparts; p++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (part[i] == p) idx[m++] = i;
        /* several adds per partition, each a slice of its rows, in row order */
        for (size_t off = 0; off < m || off == 0; off += 1000) {
            size_t cnt = m - off < 1000 ? m - off : 1000;
            frame *slice = ops_take(partial, idx + off, cnt, &e);
            ck_assert_msg(slice != NULL, "%s", e.msg);
            ck_assert_msg(imf_writer_add(w, slice, p, &e) == MR_OK, "%s", e.msg);
            frame_free(slice);
            if (m == 0) break;
        }
    }
    ck_assert_msg(imf_writer_close(w, &e) == MR_OK, "%s", e.msg);
    imf_writer_free(w);
    free(part);
    free(idx);
}

/* job_make: even mappers' x column is int64, odd ones' float64 (as a Lua map emits
 * whole numbers in one task and fractions in another). */
static int job_mixed_types;

/* nmappers mappers of rows_each raw rows over nkeys key values; each one's partial
 * frame (keys/aggs) goes to an intermediate with nparts partitions. */
static void job_make(job *j, size_t nmappers, size_t rows_each, size_t nkeys_values,
                     const char *const *keys, size_t nkeys, const groupby_agg *aggs,
                     size_t naggs, int nparts, uint64_t seed)
{
    mr_err e;
    mr_err_clear(&e);
    memset(j, 0, sizeof *j);
    ck_assert_uint_le(nmappers, 16);
    j->nmappers = nmappers;
    for (size_t m = 0; m < nmappers; m++) {
        /* mapper sizes vary a little; one may be empty */
        size_t n = nmappers > 2 && m == 1 ? 0 : rows_each + m * 37;
        raw_x_int = job_mixed_types && m % 2 == 0;
        j->raw[m] = make_raw(n, nkeys_values, seed * 100 + m);
        raw_x_int = 0;
        frame *partial = groupby_partial(j->raw[m], keys, nkeys, aggs, naggs, &e);
        ck_assert_msg(partial != NULL, "groupby_partial: %s", e.msg);
        j->partial_bytes[m] = frame_mem_bytes(partial);
        char name[64];
        snprintf(name, sizeof name, "map-%zu.imf", m);
        j->paths[m] = malloc(strlen(tmpdir) + strlen(name) + 2);
        sprintf(j->paths[m], "%s/%s", tmpdir, name);
        write_intermediate(partial, j->paths[m], nparts, keys, nkeys, (int)(m % 2));
        frame_free(partial);
    }
    j->all = ops_concat((const frame *const *)j->raw, nmappers, &e);
    ck_assert_msg(j->all != NULL, "%s", e.msg);
}

static void job_free(job *j)
{
    for (size_t m = 0; m < j->nmappers; m++) {
        frame_free(j->raw[m]);
        free(j->paths[m]);
    }
    frame_free(j->all);
}

/* The raw rows of partition p (hash of the key columns, as the mappers route them). */
static frame *rows_of_partition(const frame *all, const char *const *keys, size_t nkeys,
                                int nparts, int p)
{
    mr_err e;
    size_t n = frame_nrows(all);
    int *part = malloc((n ? n : 1) * sizeof *part);
    uint8_t *keep = malloc(n ? n : 1);
    ck_assert_int_eq(shuffle_assign(all, keys, nkeys, nparts, part, &e), MR_OK);
    for (size_t i = 0; i < n; i++) keep[i] = part[i] == p;
    frame *f = ops_filter_mask(all, keep, &e);
    ck_assert_ptr_nonnull(f);
    free(part);
    free(keep);
    return f;
}

/* ---------------------------------------------------------------- merging */

typedef struct collect {
    frame *out;                 /* every batch, appended */
    const char *const *keys;
    size_t nkeys;
    size_t batches;
    size_t fail_at;             /* emit fails on this batch (1-based); 0 = never */
    int scratch_seen;           /* most files seen in the scratch folder during an emit */
} collect;

static mr_code collect_emit(void *ud, frame *batch, mr_err *e)
{
    collect *c = ud;
    c->batches++;
    int files = scratch_entries();
    if (files > c->scratch_seen) c->scratch_seen = files;
    if (c->fail_at && c->batches == c->fail_at) {
        frame_free(batch);
        return mr_fail(e, MR_EIO, "sink refused batch %zu", c->batches);
    }
    if (!c->out) {
        c->out = batch;
    } else {
        mr_code rc = frame_append_frame(c->out, batch, e);
        frame_free(batch);
        if (rc != MR_OK) return rc;
    }
    /* Everything emitted so far is sorted by key, across batches and spill partitions:
     * sorting again changes nothing (keys are distinct, so the stable order is unique). */
    size_t n = frame_nrows(c->out);
    if (c->nkeys > 0 && n > 1) {
        ops_sort_key sk[4];
        for (size_t k = 0; k < c->nkeys; k++) sk[k] = (ops_sort_key){.col = c->keys[k]};
        size_t *order = ops_sort_index(c->out, sk, c->nkeys, e);
        ck_assert_ptr_nonnull(order);
        for (size_t i = 0; i < n; i++)
            EXPECT(order[i] == i, "output not sorted by key at row %zu (batch %zu)", i, c->batches);
        free(order);
    }
    return MR_OK;
}

/* Runs the merge and returns everything emitted (never NULL on success). */
static frame *merge(const job *j, int partition, const char *const *keys, size_t nkeys,
                    const groupby_agg *aggs, size_t naggs, uint64_t budget, spill_stats *st)
{
    mr_err e;
    mr_err_clear(&e);
    collect c = {.keys = keys, .nkeys = nkeys};
    mr_code rc = spill_groupby_merge((const char *const *)j->paths, j->nmappers, partition,
                                     keys, nkeys, aggs, naggs, budget, scratch, collect_emit,
                                     &c, st, &e);
    ck_assert_msg(rc == MR_OK, "spill_groupby_merge (budget %llu): %s",
                  (unsigned long long)budget, e.msg);
    ck_assert_msg(scratch_entries() == 0, "scratch folder not empty after the merge");
    /* groups are emitted by the levels below a spill, while its file is still there: the
     * spill files went to the scratch folder, not somewhere else */
    if (st && st->spill_files > 0) ck_assert_int_gt(c.scratch_seen, 0);
    if (!c.out) c.out = frame_create();
    return c.out;
}

/* ---------------------------------------------------------------- comparison */

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void assert_close(double a, double b, const char *what, size_t row)
{
    double tol = 1e-9 * (fabs(a) + fabs(b) + 1);
    EXPECT(fabs(a - b) <= tol, "%s row %zu: got %.17g want %.17g", what, row, a, b);
}

static frame *sorted_by_keys(const frame *f, const char *const *keys, size_t nkeys)
{
    mr_err e;
    if (nkeys == 0) return frame_clone(f, &e);
    ops_sort_key sk[4];
    for (size_t k = 0; k < nkeys; k++) sk[k] = (ops_sort_key){.col = keys[k]};
    frame *s = ops_sort(f, sk, nkeys, &e);
    ck_assert_msg(s != NULL, "%s", e.msg);
    return s;
}

/* The expected result of a merge: groupby_run over the raw rows, sorted by key, and the
 * raw rows' order by key (group i of `want` is the i-th run of equal keys there). */
typedef struct ref {
    const frame *raw;
    const char *const *keys;
    size_t nkeys;
    const groupby_agg *aggs;
    size_t naggs;
    frame *want;
    size_t *order;
    double *vals;
} ref;

static void ref_init(ref *r, const frame *raw, const char *const *keys, size_t nkeys,
                     const groupby_agg *aggs, size_t naggs)
{
    mr_err e;
    mr_err_clear(&e);
    *r = (ref){.raw = raw, .keys = keys, .nkeys = nkeys, .aggs = aggs, .naggs = naggs};
    frame *want = groupby_run(raw, keys, nkeys, aggs, naggs, &e);
    ck_assert_msg(want != NULL, "groupby_run: %s", e.msg);
    r->want = sorted_by_keys(want, keys, nkeys);
    frame_free(want);
    size_t nraw = frame_nrows(raw);
    if (nkeys > 0) {
        ops_sort_key sk[4];
        for (size_t k = 0; k < nkeys; k++) sk[k] = (ops_sort_key){.col = keys[k]};
        r->order = ops_sort_index(raw, sk, nkeys, &e);
        ck_assert_ptr_nonnull(r->order);
    } else {
        r->order = malloc((nraw ? nraw : 1) * sizeof *r->order);
        for (size_t i = 0; i < nraw; i++) r->order[i] = i;
    }
    r->vals = malloc((nraw ? nraw : 1) * sizeof *r->vals);
}

static void ref_free(ref *r)
{
    frame_free(r->want);
    free(r->order);
    free(r->vals);
}

/* An approx_quantile result v of the group of raw rows order[run..end): within the
 * sketch's rank bound, and one of the group's values. */
static void check_approx(const ref *r, const groupby_agg *ag, double v, size_t run,
                         size_t end, size_t row)
{
    const frame_col *x = frame_col_by_name(r->raw, ag->col);
    size_t nv = 0, lt = 0, le = 0;
    for (size_t k = run; k < end; k++)
        if (!frame_col_is_null(x, r->order[k]) && !isnan(x->v.f64[r->order[k]]))
            r->vals[nv++] = x->v.f64[r->order[k]];
    for (size_t k = 0; k < nv; k++) {
        lt += r->vals[k] < v;
        le += r->vals[k] <= v;
    }
    /* KLL rank bound: about 1.3% of n at 99% confidence for k = 200, whatever n
     * (sketch.h); 3% leaves room for sketches merged from many partials. */
    double eps = 0.03;
    EXPECT((double)lt <= (ag->q + eps) * nv + 1 && (double)le + 1 >= (ag->q - eps) * nv,
           "%s row %zu: %g has ranks %zu..%zu of %zu", ag->out, row, v, lt, le, nv);
    qsort(r->vals, nv, sizeof *r->vals, dbl_cmp);
    EXPECT(nv > 0 && bsearch(&v, r->vals, nv, sizeof *r->vals, dbl_cmp) != NULL,
           "%s row %zu: %g is not one of the group's values", ag->out, row, v);
}

/* got (spill's output, any row order) must hold exactly the expected groups: same
 * columns and types, same keys, equal aggregates (float sums, means and interpolated
 * quantiles to rounding, approx quantiles by rank). */
static void ref_check(const ref *r, const frame *got)
{
    const frame *want = r->want;
    size_t nkeys = r->nkeys;
    ck_assert_uint_eq(frame_nrows(got), frame_nrows(want));
    if (frame_nrows(want) == 0) return;   /* an empty partition may emit nothing at all */
    ck_assert_uint_eq(frame_ncols(got), frame_ncols(want));
    for (size_t c = 0; c < frame_ncols(want); c++) {
        const frame_col *a = frame_col_at(want, c), *b = frame_col_at(got, c);
        ck_assert_str_eq(b->name, a->name);
        ck_assert_msg(a->type == b->type, "column %s: type %d want %d", a->name, b->type, a->type);
    }
    frame *have = sorted_by_keys(got, r->keys, nkeys);
    size_t ng = frame_nrows(want), nraw = frame_nrows(r->raw);
    const frame_col *rk[4], *wk[4];
    for (size_t k = 0; k < nkeys; k++) {
        rk[k] = frame_col_by_name(r->raw, r->keys[k]);
        wk[k] = frame_col_by_name(want, r->keys[k]);
    }
    size_t run = 0;
    for (size_t i = 0; i < ng; i++) {
        size_t end = nkeys == 0 ? nraw : run + 1;
        while (nkeys > 0 && end < nraw && ops_rows_equal(rk, r->order[run], rk, r->order[end], nkeys))
            end++;
        if (nkeys > 0) EXPECT(ops_rows_equal(rk, r->order[run], wk, i, nkeys), "key run %zu", i);
        for (size_t c = 0; c < frame_ncols(want); c++) {
            const frame_col *a = frame_col_at(want, c), *b = frame_col_at(have, c);
            EXPECT(frame_col_is_null(a, i) == frame_col_is_null(b, i), "%s row %zu: null %d want %d",
                   a->name, i, frame_col_is_null(b, i), frame_col_is_null(a, i));
            if (frame_col_is_null(a, i)) continue;
            const groupby_agg *ag = c >= nkeys ? &r->aggs[c - nkeys] : NULL;
            if (a->type == FRAME_STR) {
                size_t la, lb;
                const char *sa = frame_col_str(a, i, &la), *sb = frame_col_str(b, i, &lb);
                EXPECT(la == lb && memcmp(sa, sb, la) == 0, "%s row %zu: '%.*s' want '%.*s'",
                       a->name, i, (int)lb, sb, (int)la, sa);
            } else if (ag && ag->fn == GROUPBY_APPROX_QUANTILE) {
                check_approx(r, ag, b->v.f64[i], run, end, i);
            } else if (a->type == FRAME_F64 && ag &&
                       (ag->fn == GROUPBY_SUM || ag->fn == GROUPBY_MEAN || ag->fn == GROUPBY_QUANTILE)) {
                assert_close(b->v.f64[i], a->v.f64[i], a->name, i);
            } else if (a->type == FRAME_F64) {
                EXPECT(a->v.f64[i] == b->v.f64[i], "%s row %zu: %.17g want %.17g", a->name, i,
                       b->v.f64[i], a->v.f64[i]);
            } else {
                EXPECT(a->v.i64[i] == b->v.i64[i], "%s row %zu: %lld want %lld", a->name, i,
                       (long long)b->v.i64[i], (long long)a->v.i64[i]);
            }
        }
        run = end;
    }
    ck_assert_uint_eq(run, nraw);   /* every raw row belonged to one of the groups */
    frame_free(have);
}

static void check_result(const frame *got, const frame *raw, const char *const *keys,
                         size_t nkeys, const groupby_agg *aggs, size_t naggs)
{
    ref r;
    ref_init(&r, raw, keys, nkeys, aggs, naggs);
    ref_check(&r, got);
    ref_free(&r);
}

/* Merges every partition of the job; together the partitions must give exactly the
 * groups of groupby_run over all the raw rows (each group once: a group emitted by two
 * reducers, or by none, changes the row count). min_spill_files 0: nothing may spill,
 * else at least that many spill files. Returns the number of groups. */
static size_t check_all_partitions(const job *j, const ref *r, int nparts, uint64_t budget,
                                   int min_spill_files)
{
    const char *const *keys = r->keys;
    size_t nkeys = r->nkeys;
    const groupby_agg *aggs = r->aggs;
    size_t naggs = r->naggs;
    mr_err e;
    spill_stats total = {0};
    frame *union_ = frame_create();
    for (int p = 0; p < nparts; p++) {
        spill_stats st;
        memset(&st, 0xAB, sizeof st);   /* the merge must reset it */
        frame *got = merge(j, p, keys, nkeys, aggs, naggs, budget, &st);
        ck_assert_msg(frame_append_frame(union_, got, &e) == MR_OK, "%s", e.msg);
        total.spilled_rows += st.spilled_rows;
        total.spill_files += st.spill_files;
        total.spilled_bytes += st.spilled_bytes;
        ck_assert_int_eq(st.spilled_rows == 0, st.spill_files == 0);
        ck_assert_int_eq(st.spilled_bytes == 0, st.spill_files == 0);
        ck_assert_uint_gt(st.peak_bytes, 0);
        frame_free(got);
    }
    ref_check(r, union_);
    size_t groups = frame_nrows(union_);
    frame_free(union_);
    if (min_spill_files > 0) {
        ck_assert_uint_gt(total.spilled_rows, 0);
        ck_assert_int_ge(total.spill_files, min_spill_files);
        ck_assert_uint_gt(total.spilled_bytes, 0);
    } else {
        ck_assert_uint_eq(total.spilled_rows, 0);
        ck_assert_int_eq(total.spill_files, 0);
    }
    return groups;
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_string_key_unpartitioned)
{
    const char *keys[] = {"k"};
    job j;
    job_make(&j, 4, 20000, 3000, keys, 1, all_aggs, NALL, 1, 1);
    ref r;
    ref_init(&r, j.all, keys, 1, all_aggs, NALL);
    /* generous budget: no spill; partition -1 (all) and 0 (the only one) agree */
    spill_stats st;
    frame *got = merge(&j, -1, keys, 1, all_aggs, NALL, (uint64_t)1 << 30, &st);
    ref_check(&r, got);
    ck_assert_uint_eq(st.spilled_rows, 0);
    ck_assert_int_eq(st.spill_files, 0);
    frame_free(got);
    got = merge(&j, 0, keys, 1, all_aggs, NALL, 0, &st);   /* 0: unlimited */
    ref_check(&r, got);
    ck_assert_int_eq(st.spill_files, 0);
    frame_free(got);
    /* a tiny budget spills, and the result is the same */
    got = merge(&j, -1, keys, 1, all_aggs, NALL, 256 << 10, &st);
    ref_check(&r, got);
    ck_assert_uint_gt(st.spilled_rows, 0);
    ck_assert_int_gt(st.spill_files, 0);
    ck_assert_uint_gt(st.spilled_bytes, 0);
    frame_free(got);
    ref_free(&r);
    job_free(&j);
}
END_TEST

START_TEST(test_int_key_partitioned)
{
    const char *keys[] = {"ik"};
    job j;
    job_make(&j, 5, 15000, 5000, keys, 1, all_aggs, NALL, 4, 2);
    ref r;
    ref_init(&r, j.all, keys, 1, all_aggs, NALL);
    check_all_partitions(&j, &r, 4, (uint64_t)1 << 30, 0);
    check_all_partitions(&j, &r, 4, 128 << 10, 1);
    ref_free(&r);
    job_free(&j);
}
END_TEST

START_TEST(test_partition_two_of_four)
{
    /* one reducer's view: partition 2 only, against the raw rows routed to it; two keys */
    const char *keys[] = {"k", "ik"};
    job j;
    job_make(&j, 3, 20000, 200, keys, 2, all_aggs, NALL, 4, 3);
    frame *raw = rows_of_partition(j.all, keys, 2, 4, 2);
    ck_assert_uint_gt(frame_nrows(raw), 0);
    ck_assert_uint_lt(frame_nrows(raw), frame_nrows(j.all));
    ref r;
    ref_init(&r, raw, keys, 2, all_aggs, NALL);
    spill_stats st;
    frame *got = merge(&j, 2, keys, 2, all_aggs, NALL, (uint64_t)1 << 30, &st);
    ref_check(&r, got);
    ck_assert_int_eq(st.spill_files, 0);
    frame_free(got);
    got = merge(&j, 2, keys, 2, all_aggs, NALL, 64 << 10, &st);
    ref_check(&r, got);
    ck_assert_int_gt(st.spill_files, 0);
    ck_assert_uint_gt(st.spilled_rows, 0);
    frame_free(got);
    /* a partition past the last one holds nothing */
    got = merge(&j, 9, keys, 2, all_aggs, NALL, 0, &st);
    ck_assert_uint_eq(frame_nrows(got), 0);
    frame_free(got);
    ref_free(&r);
    frame_free(raw);
    job_free(&j);
}
END_TEST

START_TEST(test_big_groups_approx)
{
    /* few keys, thousands of values each: the sketches compact, and quantile partials
     * are large enough that a small budget spills them */
    const char *keys[] = {"k"};
    job j;
    job_make(&j, 4, 25000, 60, keys, 1, all_aggs, NALL, 1, 4);
    ref r;
    ref_init(&r, j.all, keys, 1, all_aggs, NALL);
    spill_stats st;
    frame *got = merge(&j, 0, keys, 1, all_aggs, NALL, (uint64_t)1 << 30, &st);
    ref_check(&r, got);
    frame_free(got);
    got = merge(&j, 0, keys, 1, all_aggs, NALL, 1 << 20, &st);
    ref_check(&r, got);
    ck_assert_int_gt(st.spill_files, 0);
    frame_free(got);
    ref_free(&r);
    job_free(&j);
}
END_TEST

START_TEST(test_many_keys)
{
    /* ~235k distinct string keys (and nulls) over 270k rows: several spill files, and
     * partitions of the spill file that spill again */
    const char *keys[] = {"k"};
    job j;
    job_make(&j, 4, 90000, 1000000, keys, 1, mix_aggs, NMIX, 2, 5);
    ref r;
    ref_init(&r, j.all, keys, 1, mix_aggs, NMIX);
    size_t groups = check_all_partitions(&j, &r, 2, 1 << 20, 3);
    ck_assert_uint_gt(groups, 200000);
    ref_free(&r);
    job_free(&j);
}
END_TEST

START_TEST(test_many_keys_foldable)
{
    /* only foldable aggregates: the accumulator is compacted before it spills */
    const char *keys[] = {"ik"};
    job j;
    job_make(&j, 4, 50000, 1000000, keys, 1, fold_aggs, NFOLD, 1, 6);
    ref r;
    ref_init(&r, j.all, keys, 1, fold_aggs, NFOLD);
    spill_stats st;
    frame *got = merge(&j, 0, keys, 1, fold_aggs, NFOLD, (uint64_t)1 << 30, &st);
    ck_assert_uint_gt(frame_nrows(got), 100000);
    ref_check(&r, got);
    ck_assert_int_eq(st.spill_files, 0);
    frame_free(got);
    got = merge(&j, 0, keys, 1, fold_aggs, NFOLD, 1 << 20, &st);
    ref_check(&r, got);
    ck_assert_int_gt(st.spill_files, 1);
    ck_assert_uint_gt(st.spilled_rows, 0);
    frame_free(got);
    ref_free(&r);
    job_free(&j);
}
END_TEST

START_TEST(test_few_keys_foldable_no_spill)
{
    /* many partial rows but few groups: folding alone keeps them under the budget */
    const char *keys[] = {"k"};
    job j;
    job_make(&j, 8, 8000, 50, keys, 1, fold_aggs, NFOLD, 1, 7);
    /* room for about eight partial frames: the accumulator passes half the budget after a
     * few intermediates, and one fold brings it back to a single frame's worth */
    size_t one = 0;
    for (size_t m = 0; m < j.nmappers; m++)
        if (j.partial_bytes[m] > one) one = j.partial_bytes[m];
    spill_stats st;
    frame *got = merge(&j, 0, keys, 1, fold_aggs, NFOLD, 8 * one, &st);
    check_result(got, j.all, keys, 1, fold_aggs, NFOLD);
    ck_assert_int_eq(st.spill_files, 0);
    ck_assert_uint_eq(st.spilled_rows, 0);
    frame_free(got);
    job_free(&j);
}
END_TEST

START_TEST(test_mixed_int_float_columns)
{
    /* x is int64 in some intermediates and float64 in others: the merge widens, as
     * frame_append_frame does, whether or not it spills */
    const char *keys[] = {"k"};
    job j;
    job_mixed_types = 1;
    job_make(&j, 4, 12000, 12000, keys, 1, all_aggs, NALL, 1, 12);
    job_mixed_types = 0;
    ck_assert_int_eq(frame_col_by_name(j.raw[0], "x")->type, FRAME_I64);
    ck_assert_int_eq(frame_col_by_name(j.raw[3], "x")->type, FRAME_F64);
    ref r;
    ref_init(&r, j.all, keys, 1, all_aggs, NALL);
    spill_stats st;
    frame *got = merge(&j, 0, keys, 1, all_aggs, NALL, 0, &st);
    ref_check(&r, got);
    frame_free(got);
    got = merge(&j, 0, keys, 1, all_aggs, NALL, 256 << 10, &st);
    ref_check(&r, got);
    ck_assert_int_gt(st.spill_files, 0);
    frame_free(got);
    ref_free(&r);
    job_free(&j);
    /* the same with only foldable aggregates (the fold path before spilling) */
    job_mixed_types = 1;
    job_make(&j, 4, 12000, 12000, keys, 1, fold_aggs, NFOLD, 1, 13);
    job_mixed_types = 0;
    ref_init(&r, j.all, keys, 1, fold_aggs, NFOLD);
    got = merge(&j, 0, keys, 1, fold_aggs, NFOLD, 0, &st);
    ref_check(&r, got);
    frame_free(got);
    got = merge(&j, 0, keys, 1, fold_aggs, NFOLD, 128 << 10, &st);
    ref_check(&r, got);
    ck_assert_int_gt(st.spill_files, 0);
    frame_free(got);
    ref_free(&r);
    job_free(&j);
}
END_TEST

START_TEST(test_no_keys)
{
    job j;
    job_make(&j, 3, 5000, 10, NULL, 0, all_aggs, NALL, 1, 8);
    spill_stats st;
    frame *got = merge(&j, -1, NULL, 0, all_aggs, NALL, 0, &st);
    ck_assert_uint_eq(frame_nrows(got), 1);
    check_result(got, j.all, NULL, 0, all_aggs, NALL);
    frame_free(got);
    /* foldable aggregates without keys fold to one row under any budget */
    job_free(&j);
    job f;
    job_make(&f, 3, 10000, 10, NULL, 0, fold_aggs, NFOLD, 1, 9);
    got = merge(&f, -1, NULL, 0, fold_aggs, NFOLD, 16 << 10, &st);
    check_result(got, f.all, NULL, 0, fold_aggs, NFOLD);
    ck_assert_int_eq(st.spill_files, 0);
    frame_free(got);
    job_free(&f);
}
END_TEST

START_TEST(test_errors_leave_scratch_empty)
{
    const char *keys[] = {"k"};
    job j;
    job_make(&j, 3, 12000, 50000, keys, 1, all_aggs, NALL, 1, 10);
    mr_err e;
    spill_stats st;

    /* the sink fails part-way through the output (after spill files exist) */
    collect c = {.keys = keys, .nkeys = 1, .fail_at = 1};
    mr_err_clear(&e);
    mr_code rc = spill_groupby_merge((const char *const *)j.paths, j.nmappers, -1, keys, 1,
                                     all_aggs, NALL, 128 << 10, scratch, collect_emit, &c, &st, &e);
    ck_assert_int_eq(rc, MR_EIO);
    ck_assert_msg(strstr(e.msg, "sink refused batch 1") != NULL, "%s", e.msg);
    ck_assert_int_gt(st.spill_files, 0);
    ck_assert_int_eq(scratch_entries(), 0);
    frame_free(c.out);

    /* an intermediate that is missing */
    char missing[400];
    snprintf(missing, sizeof missing, "%s/no-such.imf", tmpdir);
    const char *paths[] = {j.paths[0], j.paths[2], missing};
    collect c2 = {.keys = keys, .nkeys = 1};
    mr_err_clear(&e);
    rc = spill_groupby_merge(paths, 3, -1, keys, 1, all_aggs, NALL, 128 << 10, scratch,
                             collect_emit, &c2, &st, &e);
    ck_assert_int_ne(rc, MR_OK);
    ck_assert_msg(strstr(e.msg, "no-such.imf") != NULL, "%s", e.msg);
    ck_assert_int_eq(c2.batches, 0);
    ck_assert_int_eq(scratch_entries(), 0);
    frame_free(c2.out);

    /* not an intermediate at all */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/bad.imf", tmpdir);
    FILE *fp = fopen(bad, "w");
    fputs("this is not an intermediate file", fp);
    fclose(fp);
    const char *paths2[] = {j.paths[0], bad};
    collect c3 = {.keys = keys, .nkeys = 1};
    mr_err_clear(&e);
    rc = spill_groupby_merge(paths2, 2, -1, keys, 1, all_aggs, NALL, 128 << 10, scratch,
                             collect_emit, &c3, &st, &e);
    ck_assert_int_ne(rc, MR_OK);
    ck_assert_msg(strstr(e.msg, "bad.imf") != NULL, "%s", e.msg);
    ck_assert_int_eq(scratch_entries(), 0);
    frame_free(c3.out);

    /* damage inside a data block of the last intermediate: noticed only when its rows are
     * read, after the earlier ones have started spilling */
    char damaged[400];
    snprintf(damaged, sizeof damaged, "%s/damaged.imf", tmpdir);
    FILE *in = fopen(j.paths[2], "rb");
    ck_assert_ptr_nonnull(in);
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    rewind(in);
    unsigned char *bytes = malloc((size_t)size);
    ck_assert_int_eq(fread(bytes, 1, (size_t)size, in), (size_t)size);
    fclose(in);
    bytes[size / 2] ^= 0x5A;
    fp = fopen(damaged, "wb");
    fwrite(bytes, 1, (size_t)size, fp);
    fclose(fp);
    free(bytes);
    const char *paths3[] = {j.paths[0], j.paths[2], damaged};
    collect c6 = {.keys = keys, .nkeys = 1};
    mr_err_clear(&e);
    rc = spill_groupby_merge(paths3, 3, -1, keys, 1, all_aggs, NALL, 128 << 10, scratch,
                             collect_emit, &c6, &st, &e);
    ck_assert_int_eq(rc, MR_ECORRUPT);
    ck_assert_msg(strstr(e.msg, "damaged.imf") != NULL, "%s", e.msg);
    ck_assert_int_gt(st.spill_files, 0);
    ck_assert_int_eq(c6.batches, 0);
    ck_assert_int_eq(scratch_entries(), 0);
    frame_free(c6.out);

    /* no keys and unfoldable partials larger than the budget: nothing can split them */
    job nk;
    job_make(&nk, 2, 15000, 10, NULL, 0, all_aggs, NALL, 1, 11);
    collect c4 = {0};
    mr_err_clear(&e);
    rc = spill_groupby_merge((const char *const *)nk.paths, nk.nmappers, -1, NULL, 0, all_aggs,
                             NALL, 64 << 10, scratch, collect_emit, &c4, &st, &e);
    ck_assert_int_eq(rc, MR_ELIMIT);
    ck_assert_msg(strstr(e.msg, "memory budget") != NULL, "%s", e.msg);
    ck_assert_int_eq(c4.batches, 0);
    ck_assert_int_eq(scratch_entries(), 0);
    frame_free(c4.out);
    job_free(&nk);

    /* a key the partials lack */
    const char *wrong[] = {"nope"};
    collect c5 = {.keys = wrong, .nkeys = 1};
    mr_err_clear(&e);
    rc = spill_groupby_merge((const char *const *)j.paths, j.nmappers, -1, wrong, 1, all_aggs,
                             NALL, 128 << 10, scratch, collect_emit, &c5, &st, &e);
    ck_assert_int_ne(rc, MR_OK);
    ck_assert_msg(strstr(e.msg, "nope") != NULL, "%s", e.msg);
    ck_assert_int_eq(scratch_entries(), 0);
    frame_free(c5.out);

    /* misuse */
    mr_err_clear(&e);
    ck_assert_int_eq(spill_groupby_merge((const char *const *)j.paths, j.nmappers, -1, keys, 1,
                                         all_aggs, NALL, 0, scratch, NULL, NULL, &st, &e),
                     MR_EINVAL);
    job_free(&j);
}
END_TEST

START_TEST(test_no_intermediates)
{
    const char *keys[] = {"k"};
    collect c = {.keys = keys, .nkeys = 1};
    mr_err e;
    mr_err_clear(&e);
    ck_assert_int_eq(spill_groupby_merge(NULL, 0, 0, keys, 1, all_aggs, NALL, 1 << 20, scratch,
                                         collect_emit, &c, NULL, &e),
                     MR_OK);
    ck_assert_uint_eq(c.out ? frame_nrows(c.out) : 0, 0);
    frame_free(c.out);
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *spill_suite(void)
{
    Suite *s = suite_create("spill");
    struct { const char *name; const TTest *tests[8]; } cases[] = {
        {"merge", {test_string_key_unpartitioned, test_int_key_partitioned,
                   test_partition_two_of_four, test_big_groups_approx,
                   test_mixed_int_float_columns, test_no_keys, test_no_intermediates}},
        {"many_keys", {test_many_keys, test_many_keys_foldable, test_few_keys_foldable_no_spill}},
        {"errors", {test_errors_leave_scratch_empty}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
        tcase_set_timeout(tc, 120);
        for (size_t j = 0; cases[i].tests[j]; j++) tcase_add_test(tc, cases[i].tests[j]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(spill_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
