/* frame: typed columnar frames, the unit of data every luamr stage passes on.
 * Depends on mr_error only. A frame owns named columns of equal length; each column is
 * int64, float64, bool or string, with an optional per-row null byte array. Strings live
 * in one byte arena per column with int64 offsets (no per-cell allocation), so appending
 * a row never mallocs except when a buffer doubles.
 *
 * Columns are plain structs so operators can loop over their arrays directly; treat
 * them as read-only outside frame.c except through the frame_col_push_* calls. */
#ifndef LUAMR_FRAME_H
#define LUAMR_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "mr_error.h"

typedef enum frame_type {
    FRAME_I64 = 0,
    FRAME_F64 = 1,
    FRAME_BOOL = 2,
    FRAME_STR = 3
} frame_type;

typedef struct frame_col {
    char *name;
    frame_type type;
    size_t len;          /* rows */
    size_t cap;          /* rows allocated */
    union {
        int64_t *i64;
        double *f64;
        uint8_t *b;      /* bool: 0 or 1 */
        int64_t *offs;   /* string: len+1 offsets into arena, offs[0] == 0 */
    } v;
    char *arena;         /* string bytes (not NUL-terminated per cell) */
    size_t arena_len, arena_cap;
    uint8_t *nulls;      /* NULL when the column has no nulls; else nulls[i] == 1 means null */
} frame_col;

typedef struct frame frame;

const char *frame_type_name(frame_type t);
/* "int64"|"float64"|"bool"|"string" (also "int", "float", "double", "str", "boolean"). */
int frame_type_parse(const char *name, frame_type *out);

/* ---- frames ---- */
frame *frame_create(void);
void frame_free(frame *f);                 /* accepts NULL */
size_t frame_nrows(const frame *f);        /* 0 when no columns */
size_t frame_ncols(const frame *f);
frame_col *frame_col_at(const frame *f, size_t i);
frame_col *frame_col_by_name(const frame *f, const char *name);   /* NULL if absent */
int frame_col_index(const frame *f, const char *name);            /* -1 if absent */

/* Adds an empty column padded with nulls to the frame's current row count.
 * Fails (NULL) on a duplicate name or out of memory. */
frame_col *frame_add_col(frame *f, const char *name, frame_type t, mr_err *e);
/* Takes ownership of a standalone column (from frame_col_create); its length must equal
 * frame_nrows (or the frame has no columns yet). Replaces a column of the same name.
 * On failure the caller still owns c. */
mr_code frame_attach_col(frame *f, frame_col *c, mr_err *e);
/* Removes and frees the named column; MR_ENOTFOUND if absent. */
mr_code frame_drop_col(frame *f, const char *name, mr_err *e);
/* All columns have the same length? MR_EINVAL naming the column if not. */
mr_code frame_validate(const frame *f, mr_err *e);
/* Deep copy. */
frame *frame_clone(const frame *f, mr_err *e);
/* An empty frame with the same column names and types. */
frame *frame_empty_like(const frame *f, mr_err *e);
/* Bytes held by the frame's buffers (for memory budgets and summaries). */
size_t frame_mem_bytes(const frame *f);

/* ---- standalone columns ---- */
frame_col *frame_col_create(const char *name, frame_type t, size_t cap_hint);
void frame_col_free(frame_col *c);         /* accepts NULL */
/* Ensures room for `rows` rows and `arena_bytes` string bytes in total (not additional). */
mr_code frame_col_reserve(frame_col *c, size_t rows, size_t arena_bytes);
mr_code frame_col_rename(frame_col *c, const char *name);

/* Appends; return MR_OK, MR_ENOMEM, or MR_EINVAL for a value of the wrong type.
 * push_null works for every type; push_i64 also fills float64 (converted) and bool
 * (v != 0) columns. */
mr_code frame_col_push_i64(frame_col *c, int64_t v);
mr_code frame_col_push_f64(frame_col *c, double v);
mr_code frame_col_push_bool(frame_col *c, int v);
mr_code frame_col_push_str(frame_col *c, const char *s, size_t n);
mr_code frame_col_push_null(frame_col *c);
/* Appends row src_row of src (same type) to c, null-preserving. */
mr_code frame_col_push_from(frame_col *c, const frame_col *src, size_t src_row);
/* Appends every row of src (same type, or int64 src into a float64 c; an all-null src
 * of any type appends nulls). MR_EINVAL on other type mismatches. */
mr_code frame_col_append_col(frame_col *c, const frame_col *src);
/* Deep copy (name included); NULL when out of memory. */
frame_col *frame_col_clone(const frame_col *src);
/* Allocates the null byte array (zeroed, cap entries) if absent, so bulk writers that
 * fill v[] directly can set nulls[i]. Null cells hold 0 / an empty string by convention. */
mr_code frame_col_ensure_nulls(frame_col *c);

static inline int frame_col_is_null(const frame_col *c, size_t i)
{
    return c->nulls != NULL && c->nulls[i];
}
static inline const char *frame_col_str(const frame_col *c, size_t i, size_t *len)
{
    *len = (size_t)(c->v.offs[i + 1] - c->v.offs[i]);
    return c->arena + c->v.offs[i];
}
/* Numeric value of an i64/f64/bool cell as a double (NaN for null/string). */
double frame_col_num(const frame_col *c, size_t i);
/* No non-null value (an empty column counts). */
int frame_col_all_null(const frame_col *c);

/* Large scratch buffers with the allocation policy of column buffers (big ones mapped in
 * huge-page units, see frame.c), for operators that build column-sized arrays. The size
 * given to free/realloc must be the size the buffer was allocated (or last resized) with.
 * calloc'd buffers read as zero. NULL when out of memory. */
void *frame_buf_alloc(size_t n);
void *frame_buf_calloc(size_t n);
void *frame_buf_realloc(void *p, size_t old_n, size_t n);
void frame_buf_free(void *p, size_t n);   /* accepts NULL */
/* Freed buffers kept for reuse take at most this many bytes (default 64 MB, at most
 * 1 GB; a task sets a share of its memory budget). Frees what is over at once. */
void frame_buf_set_cache_limit(size_t bytes);

/* ---- whole-frame helpers ---- */
/* Appends all rows of src to dst; columns matched by name, missing ones padded with
 * nulls, int64 widened to float64 where the other side is float64. Creates columns in
 * dst that it lacks (null-padded for dst's existing rows). An entirely-null column takes
 * the other side's type. Other type clashes fail with MR_EINVAL before dst is touched. */
mr_code frame_append_frame(frame *dst, const frame *src, mr_err *e);

/* Writes f as an aligned text table (at most max_rows rows, "..." after) into a
 * malloc'd NUL-terminated string; the caller frees it. */
char *frame_format(const frame *f, size_t max_rows);

#endif
