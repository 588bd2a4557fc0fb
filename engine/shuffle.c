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

/* Where row i goes: the high bits of its hash (the low ones also pick hash-table slots
 * downstream), re-mixed for a seed other than 0. */
static inline unsigned shuffle_part_of(uint64_t h, unsigned seed, int nparts)
{
    if (seed) h = ops_hash_u64(h ^ (UINT64_C(0x9E3779B97F4A7C15) * seed));
    return (unsigned)((h >> 32) % (uint64_t)nparts);
}

mr_code shuffle_add_assigned(imf_writer *w, const frame *f, const uint32_t *part, int nparts,
                             mr_err *e)
{
    size_t n = frame_nrows(f);
    size_t *start = calloc((size_t)nparts + 2, sizeof *start);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    mr_code code = start && idx ? MR_OK
                                : mr_fail(e, MR_ENOMEM, "out of memory partitioning %zu rows", n);
    if (code == MR_OK) {
        /* a counting sort by partition: one pass to count, one to place (start[p + 1]
         * ends up where partition p begins, and the placing moves it to where p ends) */
        for (size_t i = 0; i < n; i++) start[part[i] + 2]++;
        for (int p = 0; p < nparts; p++) start[p + 2] += start[p + 1];
        for (size_t i = 0; i < n; i++) idx[start[part[i] + 1]++] = i;
    }
    for (int p = 0; code == MR_OK && p < nparts; p++) {
        size_t lo = start[p], hi = start[p + 1];   /* start[0] stays 0 */
        if (hi == lo) continue;
        frame *sub = ops_take(f, idx + lo, hi - lo, e);
        code = sub ? imf_writer_add(w, sub, p, e) : e->code;
        frame_free(sub);
    }
    free(start);
    free(idx);
    return code;
}

mr_code shuffle_add_parts(imf_writer *w, const frame *f, const char *const *keys, size_t nkeys,
                          int nparts, unsigned seed, mr_err *e)
{
    size_t n = frame_nrows(f);
    MR_CHECK(nparts >= 1, e, MR_EINVAL, "partitioning rows: %d partitions (at least 1)", nparts);
    if (n == 0 || nparts == 1) return imf_writer_add(w, f, 0, e);
    const frame_col *cols[nkeys ? nkeys : 1];
    for (size_t k = 0; k < nkeys; k++) {
        cols[k] = frame_col_by_name(f, keys[k]);
        MR_CHECK(cols[k], e, MR_ENOTFOUND,
                 "partition key '%s' is not a column of the map output", keys[k]);
    }
    uint64_t *h = malloc(n * sizeof *h);
    uint32_t *part = malloc(n * sizeof *part);
    mr_code code = h && part ? MR_OK
                             : mr_fail(e, MR_ENOMEM, "out of memory partitioning %zu rows", n);
    if (code == MR_OK) {
        ops_hash_rows(cols, nkeys, 0, n, h);
        for (size_t i = 0; i < n; i++) part[i] = shuffle_part_of(h[i], seed, nparts);
        code = shuffle_add_assigned(w, f, part, nparts, e);
    }
    free(h);
    free(part);
    return code;
}

frame *shuffle_schema(const char *const *paths, size_t n, mr_err *e)
{
    frame *schema = NULL;
    for (size_t i = 0; i < n; i++) {
        imf_reader *r = imf_reader_open(paths[i], e);
        if (!r) break;
        const frame *s = imf_reader_schema(r);
        mr_code rc = MR_OK;
        if (frame_ncols(s) == 0) {
            /* a mapper that output nothing */
        } else if (!schema) {
            if (!(schema = frame_empty_like(s, e))) rc = MR_ENOMEM;
        } else if ((rc = frame_append_frame(schema, s, e)) != MR_OK) {
            mr_wrap(e, "%s: ", paths[i]);
        }
        imf_reader_free(r);
        if (rc != MR_OK) break;
        if (i + 1 == n) return schema ? schema : frame_create();
    }
    if (n == 0) return frame_create();
    frame_free(schema);
    return NULL;
}

mr_code shuffle_conform(const frame *schema, frame **f, mr_err *e)
{
    int same = frame_ncols(*f) == frame_ncols(schema);
    for (size_t i = 0; same && i < frame_ncols(schema); i++) {
        const frame_col *tc = frame_col_at(schema, i), *fc = frame_col_by_name(*f, tc->name);
        same = fc && fc->type == tc->type;
    }
    if (same) return MR_OK;
    frame *c = frame_empty_like(schema, e);
    if (!c) return e ? e->code : MR_ENOMEM;
    mr_code rc = frame_append_frame(c, *f, e);
    if (rc != MR_OK) {
        frame_free(c);
        return rc;
    }
    frame_free(*f);
    *f = c;
    return MR_OK;
}

mr_code shuffle_source_next(shuffle_source_reader *in, frame **g, mr_err *e)
{
    const shuffle_source *src = in->src;
    size_t nfiles = src->shared ? 1 : src->n;
    *g = NULL;
    for (;;) {
        if (!in->r) {
            if (in->next >= nfiles) return MR_OK;
            in->name = src->shared ? src->shared_path : src->paths[in->next];
            in->next++;
            in->r = src->shared ? src->shared : imf_reader_open(in->name, e);
            if (!in->r) return e ? e->code : MR_EIO;
        }
        mr_code rc = imf_reader_next(in->r, src->partition, g, e);
        if (rc != MR_OK || *g) return rc;
        shuffle_source_close(in);
    }
}

void shuffle_source_close(shuffle_source_reader *in)
{
    if (in->r && in->r != in->src->shared) imf_reader_free(in->r);
    in->r = NULL;
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
                   : shuffle_add_parts(w, f, keys, nkeys, nparts, 0, e);
    if (code == MR_OK) code = imf_writer_close(w, e);
    imf_writer_free(w);
    return code;
}
