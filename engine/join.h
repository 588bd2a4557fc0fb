/* join: hash joins of two frames on one or more key columns. Depends on frame, ops. */
#ifndef LUAMR_JOIN_H
#define LUAMR_JOIN_H

#include <stddef.h>

#include "frame.h"

typedef enum join_kind { JOIN_INNER, JOIN_LEFT } join_kind;

/* Joins left and right where left.lkeys[i] == right.rkeys[i] for all i (nulls never
 * match). Output: all left columns, then right's non-key columns; a right column whose
 * name clashes with a left one gets the suffix "_right". Left row order is kept; a left
 * row matching several right rows repeats in right's order. The smaller side is built. */
frame *join_run(const frame *left, const frame *right, const char *const *lkeys,
                const char *const *rkeys, size_t nkeys, join_kind kind, mr_err *e);

#endif
