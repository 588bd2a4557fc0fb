/* extsort: external merge sort of frames within a memory budget. Rows added in any order
 * are buffered and, when the buffer passes half the budget, sorted and written to a run
 * file on local disk (in the intermediate format); rows that are already in key order go
 * straight to a run. Finishing merges the runs with a heap (k-way), in several passes
 * when there are more runs than one pass may hold open, and hands the sorted rows out in
 * batches. extsort_merge_files merges sorted files that exist already (mappers' sorted
 * intermediates, reducers' sorted parts) the same way, without sorting anything.
 * The order is ops_sort's: stable, nulls last, strings bytewise, numbers by value
 * (int64 and float64 compare by value across files). Depends on frame, ops, imf. */
#ifndef LUAMR_EXTSORT_H
#define LUAMR_EXTSORT_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "mr_error.h"
#include "ops.h"

typedef struct extsort extsort;

typedef struct extsort_stats {
    uint64_t rows;            /* rows handed out */
    uint64_t spilled_bytes;   /* bytes of run files written (every pass) */
    int runs;                 /* run files written */
    int passes;               /* merge passes, the final one included (0: all in memory) */
    uint64_t peak_bytes;      /* largest frame memory held at once (frame_mem_bytes) */
} extsort_stats;

/* Sorted rows go out in batches; the callee owns each batch. Same shape as spill_emit_fn. */
typedef mr_code (*extsort_emit_fn)(void *ud, frame *batch, mr_err *e);

/* budget 0: unlimited (sorts in memory). scratch_dir holds the run files, which are
 * removed by extsort_finish or extsort_free. keys are copied. */
extsort *extsort_create(const ops_sort_key *keys, size_t nkeys, uint64_t budget,
                        const char *scratch_dir, mr_err *e);
void extsort_free(extsort *s);   /* accepts NULL; removes run files left */
/* Rows in any order. */
mr_code extsort_add(extsort *s, const frame *f, mr_err *e);
/* Rows already in key order, continuing the current presorted run; new_run starts another
 * (each call with new_run = 0 must continue the order of the previous one). */
mr_code extsort_add_sorted(extsort *s, const frame *f, int new_run, mr_err *e);
/* Sorts and merges everything added and emits it; call once. */
mr_code extsort_finish(extsort *s, extsort_emit_fn emit, void *ud, mr_err *e);
const extsort_stats *extsort_stats_of(const extsort *s);

/* Merges partition `partition` (-1: all) of the local intermediate files paths[0..n),
 * each already sorted by keys within that partition. Ties keep file order. */
mr_code extsort_merge_files(const char *const *paths, size_t n, int partition,
                            const ops_sort_key *keys, size_t nkeys, uint64_t budget,
                            const char *scratch_dir, extsort_emit_fn emit, void *ud,
                            extsort_stats *st, mr_err *e);

#endif
