/* shuffle: routes a mapper's output rows to R reducers — hash-partitions a frame by its
 * key columns and writes every partition into one intermediate file (imf partitions), so
 * reducer r reads partition r of every intermediate — and, on the reducer's side, reads
 * the intermediates of many mappers as one schema. Depends on frame, ops, imf. */
#ifndef LUAMR_SHUFFLE_H
#define LUAMR_SHUFFLE_H

#include <stddef.h>
#include <stdint.h>

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

/* Appends the rows of f to w, row i to partition part[i] (< nparts): a partitioning the
 * caller chose (the job's partition function). Rows keep their order within a partition. */
mr_code shuffle_add_assigned(imf_writer *w, const frame *f, const uint32_t *part, int nparts,
                             mr_err *e);
/* The schema (a frame without rows) of the intermediates paths[0..n) taken together: a
 * column that is int64 in one and float64 in another is float64, as appending them would
 * make it. Intermediates without columns (mappers that output nothing) are left out; all
 * of them without columns gives a frame without columns. */
frame *shuffle_schema(const char *const *paths, size_t n, mr_err *e);
/* Gives *f the columns and types of schema (replacing it by a copy only when they
 * differ); a column *f lacks is all null. */
mr_code shuffle_conform(const frame *schema, frame **f, mr_err *e);

/* One reduce level's input: partition `partition` of each of paths[0..n) in turn (the
 * intermediates), or of `shared`, a file the caller holds open (a sub-partition file of
 * the level above, at shared_path). grace and spill split a reducer's input the same way
 * and read their levels through this one reader rather than two copies of the loop. */
typedef struct shuffle_source {
    const char *const *paths;
    size_t n;
    imf_reader *shared;
    const char *shared_path;
    int partition;
} shuffle_source;

/* A source read a row group at a time, one file open at a time. Start from
 * {.src = &source}; end with shuffle_source_close, also after an error. */
typedef struct shuffle_source_reader {
    const shuffle_source *src;
    size_t next;        /* files opened so far */
    imf_reader *r;      /* the file being read, NULL between files */
    const char *name;   /* its path, for messages */
} shuffle_source_reader;

/* *g = the next row group (the caller frees it), NULL after the last. A file that does
 * not open is imf_reader_open's error. */
mr_code shuffle_source_next(shuffle_source_reader *in, frame **g, mr_err *e);
/* Closes the file being read, unless it is the shared one (its owner closes that). */
void shuffle_source_close(shuffle_source_reader *in);

#endif
