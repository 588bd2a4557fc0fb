/* mapout: a map task's output on its way to the intermediate file. It takes the output as
 * a sequence of frames (what map returned, or the batches ctx:emit flushed while map ran),
 * routes each one's rows to the R partitions as it comes (shuffle_add_parts), and so holds
 * no more than the frame in hand plus the intermediate writer's buffers, however much the
 * task outputs.
 *
 * Batches may disagree on types where appending them would reconcile them (int64 then
 * float64, a column all null in one batch, a column new in a later batch): the file then
 * gets the widened schema. Such a change starts a new generation file; mapout_finish
 * rewrites the generations into one intermediate, partition by partition, in order.
 * Types that cannot be reconciled (a string column where numbers were written) are an
 * error naming the column. Depends on frame, imf, shuffle. */
#ifndef LUAMR_MAPOUT_H
#define LUAMR_MAPOUT_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "mr_error.h"

typedef struct mapout mapout;

/* An output that mapout_finish publishes at local_path (an imf file with nparts
 * partitions, rows routed by the keys; nparts 1 needs no keys, and adding rows to more
 * partitions without keys or an assignment is an error). level: imf deflate level.
 * buffer_bytes bounds the small batches held per partition before they are written as one
 * row group (imf_writer_set_pending_max; 0: imf's default). */
mapout *mapout_create(const char *local_path, int level, int nparts, const char *const *keys,
                      size_t nkeys, size_t buffer_bytes, mr_err *e);
/* Routes the rows of f (which the caller keeps). A frame without rows still counts: the
 * intermediate of a map that output nothing keeps the columns it had. */
mr_code mapout_add(mapout *m, const frame *f, mr_err *e);
/* The same, with row i going to partition part[i] (< nparts) instead of by the keys:
 * the job's own partition function. */
mr_code mapout_add_assigned(mapout *m, const frame *f, const uint32_t *part, mr_err *e);
/* Writes the intermediate and renames it into place. */
mr_code mapout_finish(mapout *m, mr_err *e);
uint64_t mapout_rows(const mapout *m);
/* Times the schema widened (0 for most tasks). */
unsigned mapout_generations(const mapout *m);
/* Removes whatever was not finished. Accepts NULL. */
void mapout_free(mapout *m);

#endif
