/* sketch: a mergeable quantile sketch (KLL: Karnin, Lang, Liberty 2016) with a byte
 * serialization, used by approx_quantile and by mapper-side partial aggregation.
 * Depends on mr_error only.
 *
 * The sketch keeps a stack of compactors; level h holds items of weight 2^h. When the
 * sketch is full, the lowest over-full level is sorted and every other item (random
 * offset) is promoted to the next level with double weight. Capacities shrink by 2/3 per
 * level below the top (never under 8), so about 3k items are retained whatever n is.
 *
 * Error bound (rank error, normalized by n). For any value y, the sketch's rank estimate
 * R'(y) differs from the true rank R(y) = #{x <= y} by the sum of the compaction errors;
 * a compaction of level h changes it by 0 or +-2^h with equal probability, independently.
 * The sketch tracks V = sum of 4^h over its compactions (merges add both sides'), so by
 * Hoeffding, for one query, P(|R'(y) - R(y)| > t) <= 2 exp(-t^2 / (2V)).
 * sketch_rank_error(s, conf) returns sqrt(2 V ln(2/(1-conf))) / n: with probability conf,
 * sketch_quantile(s, q) returns a value x with #{v < x} <= (q + eps) n and
 * #{v <= x} >= (q - eps) n. For k = 200 this is about 1.3% at conf = 0.99 whatever n
 * (typical observed errors are ~0.3%). sketch_max_rank_error() is the deterministic
 * worst case (sum of 2^h), always true but loose.
 * The random offsets come from a per-sketch xorshift seeded with a constant, so runs are
 * reproducible. NaN inputs are ignored. */
#ifndef LUAMR_SKETCH_H
#define LUAMR_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#include "mr_error.h"

#define SKETCH_DEFAULT_K 200
#define SKETCH_MIN_K 8
#define SKETCH_MAX_K 65535

typedef struct sketch sketch;

/* k <= 0 selects SKETCH_DEFAULT_K; k is clamped to [SKETCH_MIN_K, SKETCH_MAX_K].
 * NULL when out of memory. */
sketch *sketch_create(int k);
void sketch_free(sketch *s);               /* accepts NULL */
int sketch_k(const sketch *s);

/* Adds one value (NaN ignored). MR_ENOMEM on allocation failure. */
mr_code sketch_update(sketch *s, double x);
/* Folds src into dst (src unchanged). Sketches with different k merge; dst keeps its k. */
mr_code sketch_merge(sketch *dst, const sketch *src, mr_err *e);

uint64_t sketch_count(const sketch *s);    /* values added (across merges) */
size_t sketch_retained(const sketch *s);   /* items held */
double sketch_min(const sketch *s);        /* NaN when empty */
double sketch_max(const sketch *s);
/* Value x such that about q*n values are <= x; q clamped to [0,1]; q = 0 and q = 1 give
 * the exact min and max. NaN when empty. */
double sketch_quantile(const sketch *s, double q);
/* Normalized rank error that holds with probability conf for one query (see above).
 * 0 while nothing has been compacted (the sketch is then exact). */
double sketch_rank_error(const sketch *s, double conf);
/* Deterministic normalized rank error bound (always true, usually far above the
 * probabilistic one). */
double sketch_max_rank_error(const sketch *s);

/* Byte form (little-endian, versioned, "LMK1"): stable across machines. */
size_t sketch_serialized_size(const sketch *s);
/* Writes exactly sketch_serialized_size(s) bytes to out; returns that size. */
size_t sketch_serialize(const sketch *s, void *out);
/* Parses bytes written by sketch_serialize; MR_ECORRUPT (naming what is wrong) on bad
 * input. NULL on failure. */
sketch *sketch_deserialize(const void *buf, size_t n, mr_err *e);

#endif
