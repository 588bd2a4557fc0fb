/* shuffle: routes a mapper's output rows to R reducers — hash-partitions a frame by its
 * key columns and writes every partition into one intermediate file (imf partitions), so
 * reducer r reads partition r of every intermediate. Depends on frame, ops, imf. */
#ifndef LUAMR_SHUFFLE_H
#define LUAMR_SHUFFLE_H

#include <stddef.h>

#include "frame.h"
#include "mr_error.h"

/* The partition (0..nparts-1) of each row of f by the hash of the key columns. */
mr_code shuffle_assign(const frame *f, const char *const *keys, size_t nkeys, int nparts,
                       int *part, mr_err *e);
/* Writes f to local_path as an intermediate with nparts partitions (nparts 1: all rows in
 * partition 0, keys unused). A key missing from f is an error naming it. */
mr_code shuffle_write(const frame *f, const char *local_path, int level, int nparts,
                      const char *const *keys, size_t nkeys, mr_err *e);

#endif
