/* groupby: hash aggregation (group_by(keys):agg{...}) and exact quantiles over frames.
 * Depends on frame, ops (hashing) and mr_error. */
#ifndef LUAMR_GROUPBY_H
#define LUAMR_GROUPBY_H

#include <stddef.h>

#include "frame.h"

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
 * Reorders v (selection, not a full sort). NaN when n == 0. */
double groupby_quantile(double *v, size_t n, double q);

#endif
