/* ops: whole-column frame operators (select, filter, take, sort, distinct, head, concat,
 * compare-filter), plus the row hashing, row equality and sort-order row comparison that
 * group-by, join, shuffle, spill and extsort build on. Depends on frame and mr_error. Every
 * operator reads its input frames and returns a new frame (NULL + e filled on failure);
 * inputs are never modified. */
#ifndef LUAMR_OPS_H
#define LUAMR_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/* Columns by name, in the given order; unknown name -> MR_ENOTFOUND naming it. */
frame *ops_select(const frame *f, const char *const *names, size_t n, mr_err *e);
/* Rows where keep[i] != 0 (keep has frame_nrows entries). */
frame *ops_filter_mask(const frame *f, const uint8_t *keep, mr_err *e);
/* Rows idx[0..n) of one column as a new column of the same name; an index of OPS_NO_ROW
 * gives a null (a left join's unmatched rows). */
#define OPS_NO_ROW SIZE_MAX
frame_col *ops_take_col(const frame_col *src, const size_t *idx, size_t n);
/* Rows idx[0..n) in that order (gather). */
frame *ops_take(const frame *f, const size_t *idx, size_t n, mr_err *e);
/* First n rows. */
frame *ops_head(const frame *f, size_t n, mr_err *e);
/* All frames stacked (schema union by name, as frame_append_frame). */
frame *ops_concat(const frame *const *frames, size_t n, mr_err *e);

typedef enum ops_cmp { OPS_EQ, OPS_NE, OPS_LT, OPS_LE, OPS_GT, OPS_GE } ops_cmp;
/* Parses "==", "=", "~=", "!=", "<", "<=", ">", ">="; -1 if unknown. */
int ops_cmp_parse(const char *s, ops_cmp *out);
typedef struct ops_value {
    enum { OPS_VNULL, OPS_VNUM, OPS_VSTR, OPS_VBOOL } kind;
    double num;
    const char *str;
    size_t len;
    int b;
} ops_value;
/* Rows where column `col` <cmp> value; nulls never match (SQL semantics). */
frame *ops_filter_cmp(const frame *f, const char *col, ops_cmp cmp, const ops_value *v,
                      mr_err *e);

typedef struct ops_sort_key {
    const char *col;
    int descending;   /* nulls sort last in both directions */
} ops_sort_key;
/* Stable sort by several keys. Strings order bytewise (memcmp, then shorter first);
 * numbers by value with -0.0 == 0.0 and NaN above +inf; nulls last in both directions.
 * Radix sort on order-preserving 64-bit images; comparisons only resolve ties. */
frame *ops_sort(const frame *f, const ops_sort_key *keys, size_t n, mr_err *e);
/* The sorted row order without building a frame (n = frame_nrows). Caller frees. */
size_t *ops_sort_index(const frame *f, const ops_sort_key *keys, size_t n, mr_err *e);
/* Row i of key columns a[] against row j of key columns b[] (a[k], b[k] hold key k; they
 * may come from different frames and differ in numeric type): <0, 0 or >0 in ops_sort's
 * order. A string key must be a string column on both sides. */
int ops_cmp_rows(const frame_col *const *a, size_t i, const frame_col *const *b, size_t j,
                 const ops_sort_key *keys, size_t n);
/* Rows whose values over the named columns (all columns when n == 0) were not seen
 * before: first occurrence kept with all its columns, input order preserved. Numbers
 * compare by value across int64/float64, NaN equals NaN, null equals null. */
frame *ops_distinct(const frame *f, const char *const *cols, size_t n, mr_err *e);

/* Hash of row i over the given columns (used by distinct, group-by, join, shuffle). */
uint64_t ops_hash_row(const frame_col *const *cols, size_t ncols, size_t row);
/* ops_hash_row for rows [start, start+n) into out[0..n), a column at a time (faster
 * than a call per row for group-by, join and shuffle). */
void ops_hash_rows(const frame_col *const *cols, size_t ncols, size_t start, size_t n,
                   uint64_t *out);
/* Rows a[i] and b[j] equal over parallel column lists (nulls equal each other). */
int ops_rows_equal(const frame_col *const *a, size_t i, const frame_col *const *b, size_t j,
                   size_t ncols);
/* The mixing ops_hash_row is built on, for callers hashing their own keys. (ops_hash_row
 * hashes an integral float64 as the int64 it equals, so 1 and 1.0 hash alike.) */
uint64_t ops_hash_bytes(const void *data, size_t len, uint64_t seed);
uint64_t ops_hash_u64(uint64_t v);

#endif
