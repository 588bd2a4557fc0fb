/* shuffle: routes a mapper's output rows to R reducers — hash-partitions a frame by its
 * key columns and writes every partition into one intermediate file (imf partitions), so
 * reducer r reads partition r of every intermediate — and, on the reducer's side, reads
 * the intermediates of many mappers as one schema. Depends on frame, ops, imf. */
#ifndef LUAMR_SHUFFLE_H
#define LUAMR_SHUFFLE_H

#include <stddef.h>

#include "frame.h"
#include "imf.h"
#include "mr_error.h"

/* The partition (0..nparts-1) of each row of f by the hash of the key columns. */
mr_code shuffle_assign(const frame *f, const char *const *keys, size_t nkeys, int nparts,
                       int *part, mr_err *e);
/* Writes f to local_path as an intermediate with nparts partitions (nparts 1: all rows in
 * partition 0, keys unused). A key missing from f is an error naming it. */
mr_code shuffle_write(const frame *f, const char *local_path, int level, int nparts,
                      const char *const *keys, size_t nkeys, mr_err *e);

/* Appends the rows of f to w, each to partition (hash of the keys) % nparts. seed 0 is
 * shuffle_assign's routing; another seed splits the rows of one such partition again
 * (a reducer's sub-partitions). Rows keep their order within a partition. */
mr_code shuffle_add_parts(imf_writer *w, const frame *f, const char *const *keys, size_t nkeys,
                          int nparts, unsigned seed, mr_err *e);

/* The schema (a frame without rows) of the intermediates paths[0..n) taken together: a
 * column that is int64 in one and float64 in another is float64, as appending them would
 * make it. Intermediates without columns (mappers that output nothing) are left out; all
 * of them without columns gives a frame without columns. */
frame *shuffle_schema(const char *const *paths, size_t n, mr_err *e);
/* Gives *f the columns and types of schema (replacing it by a copy only when they
 * differ); a column *f lacks is all null. */
mr_code shuffle_conform(const frame *schema, frame **f, mr_err *e);

#endif
