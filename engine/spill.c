/* spill: memory-bounded reduce-side aggregation (see spill.h).
 *
 * One level of the merge streams its sources (the reducer's intermediates, or one
 * partition of a spill file) into an accumulator frame in groupby_partial layout. When the
 * accumulator passes a third of the budget it is folded partial -> partial (groupby_merge
 * with the aggregates rewritten so that the output is again a partial frame; the fold's
 * hash table and output take about as much again); when folding does not bring it under a
 * sixth of the budget, the level switches to spilling: the
 * accumulator and every later row group are hash-partitioned into one spill file with
 * SPILL_FANOUT partitions, and each partition is then merged by a level of its own with a
 * different hash seed. Rows keep their input order within a partition, so FIRST keeps
 * groupby_run's meaning. */
#include "spill.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extsort.h"
#include "imf.h"
#include "ops.h"
#include "shuffle.h"

/* 16 partitions cut a level's data to ~1/16 per child, so two levels cover 256x the
 * budget; more partitions would mean more, smaller row groups in the spill file. */
#define SPILL_FANOUT 16
/* Past this depth hashing has stopped splitting the data (one huge group or an
 * adversarial key set), so more levels would only rewrite the same rows again. */
#define SPILL_MAX_DEPTH 4
/* Output batches: big enough to amortise the sink's per-call cost, small next to any budget. */
#define SPILL_BATCH_ROWS ((size_t)1 << 16)
#define SPILL_MIN_GROUP_ROWS ((size_t)4096)

typedef struct spill_ctx {
    const char *const *keys;
    size_t nkeys;
    const groupby_agg *aggs;
    size_t naggs;
    frame *schema;         /* no rows: the sources' columns, int64 widened to float64 where
                              any source has float64 (what appending them all would give) */
    groupby_agg *fold;     /* aggregates whose groupby_merge output is a partial frame again;
                              NULL when one has no such rewrite (the accumulator then just
                              grows until it spills) */
    size_t nfold;
    char **fold_names;
    size_t nfold_names;
    uint64_t budget;       /* 0: unlimited */
    const char *scratch;
    spill_emit_fn emit;
    void *ud;
    extsort *sorter;       /* once the top level spilled: each spill partition's sorted
                              groups become a run of this sort, so that the output is in
                              key order across partitions */
    spill_stats *st;
    unsigned seq;          /* spill file counter, for unique names */
    uint64_t *hash;        /* per-row-group work arrays, grown, never per record */
    size_t *idx;
    uint8_t *part;
    size_t work_cap;
} spill_ctx;

static void spill_note_peak(spill_ctx *cx, uint64_t bytes)
{
    if (bytes > cx->st->peak_bytes) cx->st->peak_bytes = bytes;
}

static size_t spill_frame_bytes(const frame *f) { return f ? frame_mem_bytes(f) : 0; }

static const char *spill_out_name(const groupby_agg *a)
{
    if (a->out) return a->out;
    return a->col ? a->col : "count";
}

static char *spill_strcat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* COUNT, SUM, MIN, MAX and FIRST partials merge into values of the same layout; MEAN's
 * two partial columns are a SUM and a COUNT of themselves. QUANTILE, COUNT_DISTINCT and
 * APPROX_QUANTILE partials (values, distinct sets, sketches) have no merge that keeps
 * the layout, so with any of them the accumulator is never folded. */
static mr_code spill_plan_fold(spill_ctx *cx, mr_err *e)
{
    for (size_t a = 0; a < cx->naggs; a++) {
        groupby_fn fn = cx->aggs[a].fn;
        if (fn == GROUPBY_QUANTILE || fn == GROUPBY_COUNT_DISTINCT || fn == GROUPBY_APPROX_QUANTILE)
            return MR_OK;
    }
    cx->fold = calloc(2 * cx->naggs + 1, sizeof *cx->fold);
    cx->fold_names = calloc(2 * cx->naggs + 1, sizeof *cx->fold_names);
    MR_CHECK(cx->fold && cx->fold_names, e, MR_ENOMEM, "spill: out of memory");
    for (size_t a = 0; a < cx->naggs; a++) {
        const groupby_agg *ag = &cx->aggs[a];
        const char *name = spill_out_name(ag);
        if (ag->fn != GROUPBY_MEAN) {
            char *nm = spill_strcat(name, "");
            MR_CHECK(nm, e, MR_ENOMEM, "spill: out of memory");
            cx->fold_names[cx->nfold_names++] = nm;
            cx->fold[cx->nfold++] = (groupby_agg){.out = nm, .fn = ag->fn, .col = ag->col, .q = ag->q};
            continue;
        }
        char *s = spill_strcat(name, ".sum");
        if (s) cx->fold_names[cx->nfold_names++] = s;
        char *c = s ? spill_strcat(name, ".count") : NULL;
        if (c) cx->fold_names[cx->nfold_names++] = c;
        MR_CHECK(s && c, e, MR_ENOMEM, "spill: out of memory");
        cx->fold[cx->nfold++] = (groupby_agg){.out = s, .fn = GROUPBY_SUM, .col = s};
        cx->fold[cx->nfold++] = (groupby_agg){.out = c, .fn = GROUPBY_COUNT, .col = c};
    }
    return MR_OK;
}

static void spill_ctx_free(spill_ctx *cx)
{
    frame_free(cx->schema);
    for (size_t i = 0; i < cx->nfold_names; i++) free(cx->fold_names[i]);
    free(cx->fold_names);
    free(cx->fold);
    free(cx->hash);
    free(cx->idx);
    free(cx->part);
}

static mr_code spill_work_reserve(spill_ctx *cx, size_t n, mr_err *e)
{
    if (n <= cx->work_cap) return MR_OK;
    size_t cap = cx->work_cap ? cx->work_cap : 4096;
    while (cap < n) cap *= 2;
    uint64_t *h = realloc(cx->hash, cap * sizeof *h);
    if (h) cx->hash = h;
    size_t *ix = h ? realloc(cx->idx, cap * sizeof *ix) : NULL;
    if (ix) cx->idx = ix;
    uint8_t *p = ix ? realloc(cx->part, cap) : NULL;
    if (p) cx->part = p;
    MR_CHECK(p, e, MR_ENOMEM, "spill: out of memory for %zu rows of work arrays", cap);
    cx->work_cap = cap;
    return MR_OK;
}

/* Partial -> partial fold of the accumulator (no-op when the aggregates have no fold). */
static mr_code spill_compact(spill_ctx *cx, frame **acc, mr_err *e)
{
    if (!cx->fold || frame_nrows(*acc) == 0) return MR_OK;
    frame *folded = groupby_merge(*acc, cx->keys, cx->nkeys, cx->fold, cx->nfold, e);
    if (!folded) return mr_wrap(e, "spill: folding partial groups: ");
    spill_note_peak(cx, spill_frame_bytes(*acc) + spill_frame_bytes(folded));
    frame_free(*acc);
    *acc = folded;
    return MR_OK;
}

/* Hash seeds differ per level so that a child level splits its rows instead of sending
 * them all to one partition again. */
static inline unsigned spill_part_of(uint64_t h, int depth)
{
    uint64_t x = ops_hash_u64(h ^ (UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)(depth + 1)));
    return (unsigned)((x >> 32) % SPILL_FANOUT);
}

/* Writes the rows of f to the spill writer, each to its key's partition. */
static mr_code spill_write(spill_ctx *cx, imf_writer *w, const frame *f, int depth,
                           uint64_t *counts, mr_err *e)
{
    size_t n = frame_nrows(f);
    if (n == 0) return MR_OK;
    MR_TRY(spill_work_reserve(cx, n, e));
    const frame_col *kc[64];
    for (size_t k = 0; k < cx->nkeys; k++) {
        kc[k] = frame_col_by_name(f, cx->keys[k]);
        MR_CHECK(kc[k], e, MR_ENOTFOUND, "spill: partial frame lacks key column '%s'", cx->keys[k]);
    }
    ops_hash_rows(kc, cx->nkeys, 0, n, cx->hash);
    size_t start[SPILL_FANOUT + 1] = {0}, fill[SPILL_FANOUT];
    for (size_t i = 0; i < n; i++) {
        unsigned p = spill_part_of(cx->hash[i], depth);
        cx->part[i] = (uint8_t)p;
        start[p + 1]++;
    }
    for (int p = 0; p < SPILL_FANOUT; p++) start[p + 1] += start[p];
    memcpy(fill, start, sizeof fill);
    for (size_t i = 0; i < n; i++) cx->idx[fill[cx->part[i]]++] = i;
    for (int p = 0; p < SPILL_FANOUT; p++) {
        size_t m = start[p + 1] - start[p];
        if (m == 0) continue;
        frame *slice = ops_take(f, cx->idx + start[p], m, e);
        if (!slice) return mr_wrap(e, "spill: partitioning rows: ");
        spill_note_peak(cx, spill_frame_bytes(f) + spill_frame_bytes(slice));
        mr_code rc = imf_writer_add(w, slice, p, e);
        frame_free(slice);
        MR_TRY(rc);
        counts[p] += m;
    }
    cx->st->spilled_rows += n;
    return MR_OK;
}

/* Opens this level's spill file and moves the accumulator into it. */
static mr_code spill_start(spill_ctx *cx, imf_writer **out, char *path, size_t pathsz,
                           const frame *acc, int depth, uint64_t *counts, mr_err *e)
{
    int len = snprintf(path, pathsz, "%s/luamr-spill-%ld-%p-%u-d%d.imf", cx->scratch,
                       (long)getpid(), (void *)cx, cx->seq++, depth);
    MR_CHECK(len > 0 && (size_t)len < pathsz, e, MR_EINVAL, "spill: scratch path too long: %s",
             cx->scratch);
    imf_writer *w = imf_writer_open(path, 1, e);
    if (!w) return mr_wrap(e, "spill: ");
    /* The writer coalesces small frames per partition; groups this size keep what it
     * holds (FANOUT partitions) near an eighth of the budget. */
    size_t rows = frame_nrows(acc);
    size_t row_bytes = rows ? spill_frame_bytes(acc) / rows : 64;
    if (row_bytes == 0) row_bytes = 1;
    size_t group_rows = IMF_GROUP_ROWS;
    if (cx->budget) {
        uint64_t g = cx->budget / 8 / SPILL_FANOUT / row_bytes;
        group_rows = g < SPILL_MIN_GROUP_ROWS ? SPILL_MIN_GROUP_ROWS
                     : g > IMF_GROUP_ROWS    ? IMF_GROUP_ROWS
                                             : (size_t)g;
    }
    mr_code rc = imf_writer_set_group_rows(w, group_rows, e);
    if (rc == MR_OK) rc = imf_writer_set_nparts(w, SPILL_FANOUT, e);
    if (rc == MR_OK) rc = spill_write(cx, w, acc, depth, counts, e);
    if (rc != MR_OK) {
        imf_writer_free(w);
        return rc;
    }
    cx->st->spill_files++;
    *out = w;
    return MR_OK;
}

/* Batches of one sorted result: to the output, or as one run of the sorter. */
static mr_code spill_emit_batch(spill_ctx *cx, frame *batch, int first, mr_err *e)
{
    if (!cx->sorter) return cx->emit(cx->ud, batch, e);
    mr_code rc = extsort_add_sorted(cx->sorter, batch, first, e);
    frame_free(batch);
    return rc;
}

static mr_code spill_emit_sorted(spill_ctx *cx, frame *res, mr_err *e)
{
    size_t n = frame_nrows(res);
    if (cx->nkeys == 0 || n <= 1) return spill_emit_batch(cx, res, 1, e);
    ops_sort_key sk[64];
    for (size_t k = 0; k < cx->nkeys; k++) sk[k] = (ops_sort_key){.col = cx->keys[k]};
    size_t *order = ops_sort_index(res, sk, cx->nkeys, e);
    if (!order) {
        frame_free(res);
        return mr_wrap(e, "spill: sorting groups: ");
    }
    mr_code rc = MR_OK;
    for (size_t off = 0; rc == MR_OK && off < n; off += SPILL_BATCH_ROWS) {
        size_t m = n - off < SPILL_BATCH_ROWS ? n - off : SPILL_BATCH_ROWS;
        frame *batch = ops_take(res, order + off, m, e);
        if (!batch) {
            rc = mr_wrap(e, "spill: cutting output batch: ");
            break;
        }
        spill_note_peak(cx, spill_frame_bytes(res) + spill_frame_bytes(batch) + n * sizeof *order);
        rc = spill_emit_batch(cx, batch, off == 0, e);
    }
    free(order);
    frame_free(res);
    return rc;
}

static mr_code spill_level(spill_ctx *cx, const shuffle_source *src, int depth, int may_spill,
                           mr_err *e);

/* Merges each partition of a finished spill file on its own, one level deeper. */
static mr_code spill_descend(spill_ctx *cx, const char *path, const uint64_t *counts, int depth,
                             mr_err *e)
{
    uint64_t total = 0;
    for (int p = 0; p < SPILL_FANOUT; p++) total += counts[p];
    imf_reader *r = imf_reader_open(path, e);
    if (!r) return mr_wrap(e, "spill: reopening spill file: ");
    mr_code rc = MR_OK;
    for (int p = 0; rc == MR_OK && p < SPILL_FANOUT; p++) {
        if (counts[p] == 0) continue;
        /* All rows in one partition twice running means a few keys hold everything, and
         * hashing them again would not split them. */
        int may = depth + 1 < SPILL_MAX_DEPTH && !(depth > 0 && counts[p] == total);
        shuffle_source child = {.shared = r, .shared_path = path, .partition = p};
        rc = spill_level(cx, &child, depth + 1, may, e);
    }
    imf_reader_free(r);
    return rc;
}

static mr_code spill_over_budget(spill_ctx *cx, const shuffle_source *src, const frame *acc,
                                 int depth, mr_err *e)
{
    return mr_fail(e, MR_ELIMIT,
                   "spill: partition %d%s%s: %.1f MB of partial groups that cannot be split "
                   "further (spill depth %d, %zu rows) exceed the memory budget of %.1f MB; "
                   "raise compute.memoryMB",
                   src->partition, src->shared_path ? " of " : "",
                   src->shared_path ? src->shared_path : "", spill_frame_bytes(acc) / 1048576.0,
                   depth, frame_nrows(acc), cx->budget / 1048576.0);
}

static mr_code spill_sorter_start(spill_ctx *cx, mr_err *e)
{
    ops_sort_key sk[64];
    for (size_t k = 0; k < cx->nkeys; k++) sk[k] = (ops_sort_key){.col = cx->keys[k]};
    cx->sorter = extsort_create(sk, cx->nkeys, cx->budget, cx->scratch, e);
    return cx->sorter ? MR_OK : e->code;
}

/* Merges the spill partitions' sorted runs into the output. */
static mr_code spill_sorter_finish(spill_ctx *cx, mr_err *e)
{
    mr_code rc = extsort_finish(cx->sorter, cx->emit, cx->ud, e);
    const extsort_stats *xs = extsort_stats_of(cx->sorter);
    cx->st->spilled_bytes += xs->spilled_bytes;
    cx->st->spill_files += xs->runs;
    spill_note_peak(cx, xs->peak_bytes);
    extsort_free(cx->sorter);
    cx->sorter = NULL;
    return rc;
}

static mr_code spill_level(spill_ctx *cx, const shuffle_source *src, int depth, int may_spill,
                           mr_err *e)
{
    frame *acc = NULL;
    imf_writer *w = NULL;
    char path[PATH_MAX];
    path[0] = 0;
    uint64_t counts[SPILL_FANOUT] = {0};
    uint64_t half = cx->budget / 3, keep = cx->fold ? cx->budget / 6 : cx->budget / 3;
    mr_code rc = MR_OK;
    /* Input files make a result (an empty one when none holds a row of the partition);
     * no files make none. */
    if ((src->shared || src->n) && !(acc = frame_empty_like(cx->schema, e))) rc = MR_ENOMEM;
    shuffle_source_reader in = {.src = src};
    while (rc == MR_OK) {
        frame *g = NULL;
        if ((rc = shuffle_source_next(&in, &g, e)) != MR_OK || !g) break;
        if (depth == 0) cx->st->rows_in += frame_nrows(g);
        if ((rc = shuffle_conform(cx->schema, &g, e)) != MR_OK) {
            mr_wrap(e, "spill: %s: ", in.name);
            frame_free(g);
            break;
        }
        if (w) {
            rc = spill_write(cx, w, g, depth, counts, e);
            frame_free(g);
            continue;
        }
        spill_note_peak(cx, spill_frame_bytes(acc) + spill_frame_bytes(g));
        if (frame_nrows(acc) == 0) {
            frame_free(acc);
            acc = g;
        } else {
            rc = frame_append_frame(acc, g, e);
            frame_free(g);
            if (rc != MR_OK) {
                mr_wrap(e, "spill: %s partition %d: ", in.name, src->partition);
                break;
            }
        }
        if (!cx->budget || spill_frame_bytes(acc) <= half) continue;
        if ((rc = spill_compact(cx, &acc, e)) != MR_OK) break;
        if (spill_frame_bytes(acc) <= keep) continue;
        if (!may_spill) {
            /* The fold could not help and no level can split the keys further. */
            if (spill_frame_bytes(acc) > cx->budget) rc = spill_over_budget(cx, src, acc, depth, e);
            continue;
        }
        rc = spill_start(cx, &w, path, sizeof path, acc, depth, counts, e);
        frame_free(acc);
        acc = NULL;
    }
    shuffle_source_close(&in);
    if (rc == MR_OK && w) {
        rc = imf_writer_close(w, e);
        cx->st->spilled_bytes += imf_writer_bytes(w);
        imf_writer_free(w);
        w = NULL;
        if (rc == MR_OK && depth == 0) rc = spill_sorter_start(cx, e);
        if (rc == MR_OK) rc = spill_descend(cx, path, counts, depth, e);
        if (rc == MR_OK && depth == 0) rc = spill_sorter_finish(cx, e);
    }
    if (w) imf_writer_free(w);   /* an unclosed writer removes its temporary */
    if (path[0]) unlink(path);
    if (rc != MR_OK || !acc) {
        frame_free(acc);
        return rc;
    }
    frame *res = groupby_merge(acc, cx->keys, cx->nkeys, cx->aggs, cx->naggs, e);
    spill_note_peak(cx, spill_frame_bytes(acc) + spill_frame_bytes(res));
    frame_free(acc);
    if (!res) return mr_wrap(e, "spill: merging partial groups: ");
    return spill_emit_sorted(cx, res, e);
}

mr_code spill_groupby_merge(const char *const *paths, size_t n, int partition,
                            const char *const *keys, size_t nkeys, const groupby_agg *aggs,
                            size_t naggs, uint64_t budget, const char *scratch_dir,
                            spill_emit_fn emit, void *ud, spill_stats *st, mr_err *e)
{
    MR_CHECK(paths || n == 0, e, MR_EINVAL, "spill: no intermediate paths");
    MR_CHECK(emit, e, MR_EINVAL, "spill: no emit callback");
    MR_CHECK(nkeys <= 64, e, MR_EINVAL, "spill: %zu key columns (at most 64)", nkeys);
    MR_CHECK(nkeys == 0 || keys, e, MR_EINVAL, "spill: no key names");
    spill_stats local = {0};
    if (!st) st = &local;
    *st = (spill_stats){0};
    spill_ctx cx = {.keys = keys, .nkeys = nkeys, .aggs = aggs, .naggs = naggs,
                    .budget = budget, .scratch = scratch_dir ? scratch_dir : ".",
                    .emit = emit, .ud = ud, .st = st};
    mr_code rc = spill_plan_fold(&cx, e);
    /* A mapper whose values were all whole numbers wrote int64 columns where another wrote
     * float64. A spill file keeps the schema of its first frame, so every row group is
     * brought to the widest types up front, before anything spills. */
    if (rc == MR_OK && !(cx.schema = shuffle_schema(paths, n, e))) rc = mr_wrap(e, "spill: ");
    shuffle_source top = {.paths = paths, .n = n, .partition = partition};
    /* Without keys there is one group, which no partitioning can split. */
    if (rc == MR_OK) rc = spill_level(&cx, &top, 0, nkeys > 0 && budget > 0, e);
    extsort_free(cx.sorter);   /* left only after a failure */
    spill_ctx_free(&cx);
    return rc;
}
