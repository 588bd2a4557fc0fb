/* groupby: hash aggregation (group_by(keys):agg{...}), exact quantiles, and the
 * partial/merge pair that lets mappers pre-aggregate (combiner) before the shuffle.
 * Depends on frame, ops (row hashing for multi-column keys), sketch and mr_error.
 *
 * Semantics shared by groupby_run and groupby_merge:
 *  - nulls in key columns form their own group; nulls in value columns are skipped
 *    (NaN float64 values are skipped too by MIN, MAX and the quantiles);
 *  - a group with no non-null values gets null for SUM, MEAN, MIN, MAX, FIRST and the
 *    quantiles, 0 for COUNT and COUNT_DISTINCT (SQL semantics);
 *  - output types: COUNT/COUNT_DISTINCT int64; SUM int64 for int64/bool input, else
 *    float64; MEAN and the quantiles float64; MIN/MAX/FIRST keep the input type
 *    (MIN/MAX accept numbers, bools and strings; strings compare bytewise);
 *  - an empty frame gives zero rows with keys, one row without (count 0, others null);
 *  - agg.out NULL names the column after agg.col (or "count"); duplicate output names
 *    are an error. */
#ifndef LUAMR_GROUPBY_H
#define LUAMR_GROUPBY_H

#include <stddef.h>

#include "frame.h"
#include "mr_error.h"

typedef enum groupby_fn {
    GROUPBY_COUNT,          /* rows in the group (col NULL) or non-null values of col */
    GROUPBY_COUNT_DISTINCT, /* distinct non-null values of col */
    GROUPBY_SUM,            /* int64 stays int64, float -> float64; nulls skipped */
    GROUPBY_MEAN,           /* float64 */
    GROUPBY_MIN,
    GROUPBY_MAX,
    GROUPBY_FIRST,          /* first non-null value in input order */
    GROUPBY_QUANTILE,       /* exact, linear interpolation (numpy default / Spark percentile) */
    GROUPBY_APPROX_QUANTILE /* mergeable sketch (see sketch.h when present) */
} groupby_fn;

typedef struct groupby_agg {
    const char *out;    /* output column name */
    groupby_fn fn;
    const char *col;    /* input column (NULL for count of rows) */
    double q;           /* quantile in [0,1] for (APPROX_)QUANTILE */
} groupby_agg;

/* One output row per distinct key combination (nulls form their own group), key columns
 * first then one column per aggregate, groups in order of first appearance.
 * nkeys == 0 aggregates the whole frame into one row. */
frame *groupby_run(const frame *f, const char *const *keys, size_t nkeys,
                   const groupby_agg *aggs, size_t naggs, mr_err *e);

/* Exact quantile of v[0..n) by linear interpolation between order statistics:
 * h = (n-1)q, result = x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]).
 * Reorders v (Floyd-Rivest selection of x[floor h], then a min scan for the next order
 * statistic; expected ~1.5n comparisons, O(n log n) worst case). v must not contain NaN
 * (group-by drops them first). q is clamped to [0,1]. NaN when n == 0. */
double groupby_quantile(double *v, size_t n, double q);

/* ---- combiner support ----
 * groupby_partial computes per-group partial states from a mapper's rows; any number of
 * partial frames, concatenated (ops_concat / frame_append_frame, any order of rows),
 * are folded by groupby_merge into exactly what groupby_run would have produced on all
 * the original rows (group order: first appearance in the concatenated partials).
 * The same keys and aggs must be passed to both calls. FIRST in a merge is the first
 * non-null partial value in row order, so concatenate partials in input order to keep
 * groupby_run's meaning.
 *
 * Partial frame layout: the key columns (same names and types), then per aggregate:
 *   COUNT            <out>            int64  count
 *   SUM              <out>            int64/float64 sum, null when no values yet
 *   MIN, MAX, FIRST  <out>            input type, null when no values yet
 *   MEAN             <out>.sum        float64 sum (null when no values)
 *                    <out>.count      int64   non-null values
 *   APPROX_QUANTILE  <out>.sketch     string: sketch_serialize bytes (null when empty)
 *   QUANTILE         <out>.values     string: the group's non-null values, packed
 *                                     little-endian float64 (exact needs them all)
 *   COUNT_DISTINCT   <out>.distinct   string: the group's distinct non-null values:
 *                                     a type byte 'i' (int64/bool as int64) or 'f'
 *                                     then 8-byte LE values, or 's' then per value a
 *                                     4-byte LE length and the bytes
 * String cells are binary (may hold NUL bytes); the intermediate format must keep bytes.
 * A partial frame has one row per group, so it is never larger than its input for the
 * mergeable aggregates; QUANTILE and COUNT_DISTINCT partials are as large as the values. */
frame *groupby_partial(const frame *f, const char *const *keys, size_t nkeys,
                       const groupby_agg *aggs, size_t naggs, mr_err *e);
frame *groupby_merge(const frame *partials, const char *const *keys, size_t nkeys,
                     const groupby_agg *aggs, size_t naggs, mr_err *e);

/* Name <-> enum for the script layer: "count", "count_distinct", "sum", "mean"
 * (also "avg"), "min", "max", "first", "quantile" (also "percentile"),
 * "approx_quantile" (also "approx_percentile"). -1 if unknown. */
int groupby_fn_parse(const char *name, groupby_fn *out);
const char *groupby_fn_name(groupby_fn fn);

#endif
