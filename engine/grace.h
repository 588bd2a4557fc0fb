/* grace: feeds a reducer's input to a reduce function within a memory budget. The rows
 * of partition p of every intermediate are read a row group at a time; when they fit in
 * a third of the budget they go to the function at once, as one frame. When they do not,
 * they are hash-partitioned by the job's partition keys into sub-partitions on local disk
 * (in the intermediate format) and the function is called once per sub-partition,
 * recursively when one is still too large: the grace hash join's partitioning, applied to
 * whatever the reduce does (join, group-by, sort within a key). That is sound because
 * partition_by already promises that the reduce is correct on any set of whole keys, as
 * each of R reducers sees only its own. Without keys nothing can be split, and input over
 * the budget is an error. Depends on frame, imf, shuffle. */
#ifndef LUAMR_GRACE_H
#define LUAMR_GRACE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "mr_error.h"

typedef struct grace_stats {
    uint64_t rows_in;          /* rows read from the intermediates */
    uint64_t spilled_bytes;    /* bytes of sub-partition files */
    int calls;                 /* times the function was called */
    int depth;                 /* deepest level of sub-partitioning (0: none) */
    uint64_t peak_bytes;       /* largest input frame held (frame_mem_bytes) */
} grace_stats;

/* Receives the rows of one (sub-)partition; the callee owns the frame. */
typedef mr_code (*grace_fn)(void *ud, frame *rows, mr_err *e);

/* Calls fn on partition `partition` (-1: all) of the local intermediates paths[0..n), in
 * one piece or in sub-partitions by keys[0..nkeys) as the budget (0: unlimited) requires.
 * Rows of one key are always in the same call, in input order. fn is called at least
 * once (with an empty frame when there are no rows). scratch_dir holds the sub-partition
 * files, which are removed before returning. */
mr_code grace_run(const char *const *paths, size_t n, int partition, const char *const *keys,
                  size_t nkeys, uint64_t budget, const char *scratch_dir, grace_fn fn, void *ud,
                  grace_stats *st, mr_err *e);

#endif
