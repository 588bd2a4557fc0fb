#include "shuffle.h"

#include <stdint.h>
#include <stdlib.h>

#include "imf.h"
#include "ops.h"

#define SHUFFLE_BLOCK 1024

mr_code shuffle_assign(const frame *f, const char *const *keys, size_t nkeys, int nparts,
                       int *part, mr_err *e)
{
    const frame_col *cols[nkeys ? nkeys : 1];
    uint64_t h[SHUFFLE_BLOCK];
    size_t n = frame_nrows(f);
    MR_CHECK(nparts >= 1, e, MR_EINVAL, "partitioning map output: %d partitions (at least 1)",
             nparts);
    for (size_t k = 0; k < nkeys; k++) {
        cols[k] = frame_col_by_name(f, keys[k]);
        MR_CHECK(cols[k], e, MR_ENOTFOUND,
                 "partition key '%s' is not a column of the map output", keys[k]);
    }
    for (size_t start = 0; start < n; start += SHUFFLE_BLOCK) {
        size_t m = n - start < SHUFFLE_BLOCK ? n - start : SHUFFLE_BLOCK;
        ops_hash_rows(cols, nkeys, start, m, h);
        /* The high bits: the low ones also pick hash-table slots downstream. */
        for (size_t i = 0; i < m; i++) part[start + i] = (int)((h[i] >> 32) % (uint64_t)nparts);
    }
    return MR_OK;
}

/* One partition's rows as a frame (a gather per partition keeps each write contiguous). */
static frame *shuffle_take(const frame *f, const int *part, int p, size_t *idx, mr_err *e)
{
    size_t n = frame_nrows(f), m = 0;
    for (size_t i = 0; i < n; i++)
        if (part[i] == p) idx[m++] = i;
    return ops_take(f, idx, m, e);
}

static mr_code shuffle_write_parts(imf_writer *w, const frame *f, int nparts,
                                   const char *const *keys, size_t nkeys, mr_err *e)
{
    size_t n = frame_nrows(f);
    int *part = malloc((n ? n : 1) * sizeof *part);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    mr_code code = part && idx ? MR_OK : mr_fail(e, MR_ENOMEM, "out of memory partitioning");
    if (code == MR_OK) code = shuffle_assign(f, keys, nkeys, nparts, part, e);
    for (int p = 0; code == MR_OK && p < nparts; p++) {
        frame *sub = shuffle_take(f, part, p, idx, e);
        code = sub ? imf_writer_add(w, sub, p, e) : e->code;
        frame_free(sub);
    }
    free(part);
    free(idx);
    return code;
}

mr_code shuffle_write(const frame *f, const char *local_path, int level, int nparts,
                      const char *const *keys, size_t nkeys, mr_err *e)
{
    MR_CHECK(nparts == 1 || nkeys > 0, e, MR_EINVAL,
             "compute.reducers is %d but the job names no partition keys: add "
             "partition_by = {\"key\", ...} to the job table, or declare the reduce as "
             "{ group_by = ..., agg = ... }", nparts);
    imf_writer *w = imf_writer_open(local_path, level, e);
    if (!w) return e->code;
    mr_code code = imf_writer_set_nparts(w, nparts, e);
    if (code == MR_OK)
        /* no rows: nothing to route, and a map that output nothing may lack the keys */
        code = nparts == 1 || frame_nrows(f) == 0
                   ? imf_writer_add(w, f, 0, e)
                   : shuffle_write_parts(w, f, nparts, keys, nkeys, e);
    if (code == MR_OK) code = imf_writer_close(w, e);
    imf_writer_free(w);
    return code;
}
