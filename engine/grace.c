/* grace: a reducer's input split by key until each piece fits (see grace.h).
 *
 * A level reads its source (the intermediates, or one partition of its parent's file)
 * into an accumulator. Past a third of the budget — the rest is for what the reduce
 * builds from its input: a join's output, a group-by's table — it estimates the source's
 * size from the rows read so far, picks enough sub-partitions for each to take about a
 * sixth of the budget, and moves the accumulator and every later row group into one file
 * with that many partitions. Each partition is then a level of its own, with another
 * hash seed so that its rows split again if they must. */
#include "grace.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "imf.h"
#include "shuffle.h"

/* A few keys that hold more than the budget stop splitting at the first level; more
 * levels only rewrite the same rows. */
#define GRACE_MAX_DEPTH 3
#define GRACE_MAX_FANOUT 64
#define GRACE_MIN_GROUP_ROWS ((size_t)4096)

typedef struct grace_ctx {
    const char *const *keys;
    size_t nkeys;
    uint64_t budget;
    const char *scratch;
    grace_fn fn;
    void *ud;
    grace_stats *st;
    frame *schema;
    unsigned seq;
} grace_ctx;

/* Rows of a level's input (level 0: partition `partition` of each intermediate; deeper:
 * one partition of the parent's sub-partition file). */
static uint64_t grace_src_rows(const shuffle_source *src)
{
    if (src->shared) return imf_reader_rows(src->shared, src->partition);
    uint64_t rows = 0;
    for (size_t i = 0; i < src->n; i++) {
        imf_reader *r = imf_reader_open(src->paths[i], NULL);
        if (r) rows += imf_reader_rows(r, src->partition);
        imf_reader_free(r);
    }
    return rows;
}

/* Sub-partitions for the whole source to come out near a sixth of the budget each. */
static int grace_fanout(const grace_ctx *cx, const shuffle_source *src, const frame *acc)
{
    uint64_t rows = grace_src_rows(src), held = frame_nrows(acc);
    uint64_t row_bytes = held ? frame_mem_bytes(acc) / held : 64;
    uint64_t target = cx->budget / 6 ? cx->budget / 6 : 1;
    uint64_t want = (rows * row_bytes + target - 1) / target;
    return want < 2 ? 2 : want > GRACE_MAX_FANOUT ? GRACE_MAX_FANOUT : (int)want;
}

static mr_code grace_over_budget(const grace_ctx *cx, const shuffle_source *src,
                                 const frame *acc, int depth, mr_err *e)
{
    const char *why = cx->nkeys == 0
                          ? "the job declares no partition_by keys to split it by; add "
                            "partition_by = {\"key\", ...} to the job, or raise compute.memoryMB"
                          : "a few keys hold these rows, so splitting by key again does not "
                            "help; raise compute.memoryMB";
    return mr_fail(e, MR_ELIMIT,
                   "reduce input of partition %d: %.1f MB (%zu rows%s) exceed the memory "
                   "budget of %.1f MB: %s",
                   src->partition, frame_mem_bytes(acc) / 1048576.0, frame_nrows(acc),
                   depth ? ", after splitting by key" : "", cx->budget / 1048576.0, why);
}

static imf_writer *grace_open_file(grace_ctx *cx, const frame *acc, int fanout, int depth,
                                   char *path, size_t pathsz, mr_err *e)
{
    int len = snprintf(path, pathsz, "%s/luamr-grace-%ld-%p-%u-d%d.imf", cx->scratch,
                       (long)getpid(), (void *)cx, cx->seq++, depth);
    MR_CHECK_NULL(len > 0 && (size_t)len < pathsz, e, MR_EINVAL,
                  "reduce: scratch path too long: %s", cx->scratch);
    imf_writer *w = imf_writer_open(path, 1, e);
    if (!w) return NULL;
    /* The writer gathers small frames per partition; groups this size keep all it
     * gathers near an eighth of the budget. */
    size_t rows = frame_nrows(acc);
    uint64_t row_bytes = rows ? frame_mem_bytes(acc) / rows : 64;
    uint64_t g = cx->budget / 8 / (uint64_t)fanout / (row_bytes ? row_bytes : 1);
    size_t group = g < GRACE_MIN_GROUP_ROWS ? GRACE_MIN_GROUP_ROWS
                   : g > IMF_GROUP_ROWS    ? IMF_GROUP_ROWS
                                           : (size_t)g;
    if (imf_writer_set_group_rows(w, group, e) != MR_OK ||
        imf_writer_set_nparts(w, fanout, e) != MR_OK) {
        imf_writer_free(w);
        return NULL;
    }
    return w;
}

static mr_code grace_level(grace_ctx *cx, const shuffle_source *src, int depth, mr_err *e);

/* Runs a level on each partition of a finished sub-partition file. */
static mr_code grace_descend(grace_ctx *cx, const char *path, int fanout, int depth, mr_err *e)
{
    imf_reader *r = imf_reader_open(path, e);
    if (!r) return e->code;
    mr_code rc = MR_OK;
    for (int p = 0; rc == MR_OK && p < fanout; p++) {
        if (imf_reader_rows(r, p) == 0) continue;
        shuffle_source child = {.shared = r, .shared_path = path, .partition = p};
        rc = grace_level(cx, &child, depth + 1, e);
    }
    imf_reader_free(r);
    return rc;
}

/* Appends g to *acc (taking it), or routes it to the open sub-partition file. */
static mr_code grace_take(grace_ctx *cx, frame **acc, imf_writer *w, int fanout, int depth,
                          frame *g, mr_err *e)
{
    mr_code rc = shuffle_conform(cx->schema, &g, e);
    if (rc == MR_OK && w) rc = shuffle_add_parts(w, g, cx->keys, cx->nkeys, fanout,
                                                 (unsigned)depth + 1, e);
    if (rc != MR_OK || w) {
        frame_free(g);
        return rc;
    }
    if (!*acc) {
        *acc = g;
        return MR_OK;
    }
    rc = frame_append_frame(*acc, g, e);
    frame_free(g);
    return rc;
}

static mr_code grace_level(grace_ctx *cx, const shuffle_source *src, int depth, mr_err *e)
{
    frame *acc = NULL;
    imf_writer *w = NULL;
    int fanout = 0;
    char path[PATH_MAX];
    path[0] = 0;
    mr_code rc = MR_OK;
    shuffle_source_reader in = {.src = src};
    while (rc == MR_OK) {
        frame *g = NULL;
        if ((rc = shuffle_source_next(&in, &g, e)) != MR_OK || !g) break;
        if (depth == 0) cx->st->rows_in += frame_nrows(g);
        if ((rc = grace_take(cx, &acc, w, fanout, depth, g, e)) != MR_OK) {
            mr_wrap(e, "%s partition %d: ", in.name, src->partition);
            break;
        }
        if (w || !acc || !cx->budget) continue;
        uint64_t held = frame_mem_bytes(acc);
        if (held > cx->st->peak_bytes) cx->st->peak_bytes = held;
        if (held <= cx->budget / 3) continue;
        if (cx->nkeys == 0 || depth >= GRACE_MAX_DEPTH) {
            if (held > cx->budget) rc = grace_over_budget(cx, src, acc, depth, e);
            continue;
        }
        fanout = grace_fanout(cx, src, acc);
        if (!(w = grace_open_file(cx, acc, fanout, depth, path, sizeof path, e))) {
            rc = e->code;
            break;
        }
        rc = shuffle_add_parts(w, acc, cx->keys, cx->nkeys, fanout, (unsigned)depth + 1, e);
        frame_free(acc);
        acc = NULL;
    }
    shuffle_source_close(&in);
    if (rc == MR_OK && w) {
        rc = imf_writer_close(w, e);
        cx->st->spilled_bytes += imf_writer_bytes(w);
        if (depth + 1 > cx->st->depth) cx->st->depth = depth + 1;
        imf_writer_free(w);
        w = NULL;
        if (rc == MR_OK) rc = grace_descend(cx, path, fanout, depth, e);
    }
    imf_writer_free(w);   /* unclosed after a failure: removes its temporary */
    if (path[0]) unlink(path);
    if (rc != MR_OK || fanout) {
        frame_free(acc);
        return rc;
    }
    if (!acc && !(acc = frame_empty_like(cx->schema, e))) return e->code;
    cx->st->calls++;
    return cx->fn(cx->ud, acc, e);
}

mr_code grace_run(const char *const *paths, size_t n, int partition, const char *const *keys,
                  size_t nkeys, uint64_t budget, const char *scratch_dir, grace_fn fn, void *ud,
                  grace_stats *st, mr_err *e)
{
    MR_CHECK(paths || n == 0, e, MR_EINVAL, "reduce: no intermediate paths");
    MR_CHECK(fn, e, MR_EINVAL, "reduce: no function");
    grace_stats local = {0};
    if (!st) st = &local;
    *st = (grace_stats){0};
    grace_ctx cx = {.keys = keys, .nkeys = nkeys, .budget = budget,
                    .scratch = scratch_dir ? scratch_dir : ".", .fn = fn, .ud = ud, .st = st};
    if (!(cx.schema = shuffle_schema(paths, n, e))) return e->code;
    shuffle_source top = {.paths = paths, .n = n, .partition = partition};
    mr_code rc = grace_level(&cx, &top, 0, e);
    frame_free(cx.schema);
    return rc;
}
