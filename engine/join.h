/* join: hash joins of two frames on one or more key columns. Depends on frame, ops (row
 * hash and equality: int64, float64 and bool keys compare by value across types; a string
 * key joined to a non-string key is an error) and mr_error. */
#ifndef LUAMR_JOIN_H
#define LUAMR_JOIN_H

#include <stddef.h>

#include "frame.h"

typedef enum join_kind { JOIN_INNER, JOIN_LEFT } join_kind;

/* Joins left and right where left.lkeys[i] == right.rkeys[i] for all i (nulls never
 * match). Output: all left columns, then right's non-key columns; a right column whose
 * name clashes with a left one gets the suffix "_right". Left row order is kept; a left
 * row matching several right rows repeats in right's order. Inner joins build the hash
 * table on the smaller side, left joins always on the right; unmatched left rows of a
 * left join get nulls in the right columns. Memory: the build side's table (3 words per
 * row) plus two row indexes per output row. */
frame *join_run(const frame *left, const frame *right, const char *const *lkeys,
                const char *const *rkeys, size_t nkeys, join_kind kind, mr_err *e);

#endif
