/* spill: memory-bounded reduce-side aggregation. Folds the partial group-by frames of
 * many intermediates (groupby_partial layout) into final groups while holding at most a
 * memory budget: intermediates are streamed row group by row group (imf_reader_next);
 * when the groups held would pass the budget, rows are hash-partitioned into spill files
 * on local disk (in the intermediate format) and each spill partition is merged on its
 * own, recursively if it is still too large (partitioned hash aggregation).
 * Depends on frame, ops, groupby, imf, extsort. */
#ifndef LUAMR_SPILL_H
#define LUAMR_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "groupby.h"
#include "mr_error.h"

typedef struct spill_stats {
    uint64_t rows_in;          /* partial rows read from the intermediates */
    uint64_t spilled_rows;     /* rows written to spill files */
    uint64_t spilled_bytes;    /* bytes of spill files */
    int spill_files;
    uint64_t peak_bytes;       /* largest frame memory held at once (frame_mem_bytes) */
} spill_stats;

/* Final groups go out through emit in batches (each batch owned by the callee), so the
 * result itself need not fit in the budget. The output is in key order: when the merge
 * spilled, the sorted groups of each spill partition are runs of an external merge sort
 * (extsort) whose merge makes the output. */
typedef mr_code (*spill_emit_fn)(void *ud, frame *batch, mr_err *e);

/* Merges partition `partition` (-1: all) of the local intermediate files paths[0..n)
 * holding groupby_partial frames for keys/aggs. scratch_dir holds the spill files, which
 * are removed before returning. */
mr_code spill_groupby_merge(const char *const *paths, size_t n, int partition,
                            const char *const *keys, size_t nkeys, const groupby_agg *aggs,
                            size_t naggs, uint64_t budget, const char *scratch_dir,
                            spill_emit_fn emit, void *ud, spill_stats *st, mr_err *e);

#endif
