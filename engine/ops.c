#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Every operator builds its columns with exact-sized buffers and fills the typed arrays
 * directly (frame.c's push calls are for row-at-a-time producers). */

/* ---- building blocks ---- */

static frame *fail_oom(frame *out, mr_err *e, const char *what)
{
    frame_free(out);
    mr_fail(e, MR_ENOMEM, "ops: out of memory in %s", what);
    return NULL;
}

/* Rows idx[0..n) of src as a new standalone column; OPS_NO_ROW gives a null. */
frame_col *ops_take_col(const frame_col *src, const size_t *idx, size_t n)
{
    frame_col *c = frame_col_create(src->name, src->type, n);
    if (!c) return NULL;
    size_t none = 0;
    for (size_t i = 0; i < n; i++) none += idx[i] == OPS_NO_ROW;
#define OPS_TAKE(field)                                                                  \
    for (size_t i = 0; i < n; i++) c->v.field[i] = idx[i] == OPS_NO_ROW ? 0 : src->v.field[idx[i]]
    switch (src->type) {
    case FRAME_I64: OPS_TAKE(i64); break;
    case FRAME_F64: OPS_TAKE(f64); break;
    case FRAME_BOOL: OPS_TAKE(b); break;
    case FRAME_STR: {
        const int64_t *so = src->v.offs;
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            if (idx[i] != OPS_NO_ROW) total += (size_t)(so[idx[i] + 1] - so[idx[i]]);
        if (frame_col_reserve(c, n, total) != MR_OK) goto fail;
        int64_t *dof = c->v.offs;
        char *arena = c->arena;
        int64_t pos = 0;
        dof[0] = 0;
        for (size_t i = 0; i < n; i++) {
            if (idx[i] != OPS_NO_ROW) {
                int64_t a = so[idx[i]], len = so[idx[i] + 1] - a;
                memcpy(arena + pos, src->arena + a, (size_t)len);
                pos += len;
            }
            dof[i + 1] = pos;
        }
        c->arena_len = (size_t)pos;
        break;
    }
    }
#undef OPS_TAKE
    if (src->nulls || none) {
        if (frame_col_ensure_nulls(c) != MR_OK) goto fail;
        const uint8_t *s = src->nulls;
        for (size_t i = 0; i < n; i++)
            c->nulls[i] = idx[i] == OPS_NO_ROW ? 1 : s ? s[idx[i]] : 0;
    }
    c->len = n;
    return c;
fail:
    frame_col_free(c);
    return NULL;
}

/* Rows [start, start+n) of src as a new standalone column. */
static frame_col *slice_col(const frame_col *src, size_t start, size_t n)
{
    frame_col *c = frame_col_create(src->name, src->type, n);
    if (!c) return NULL;
    if (src->type == FRAME_STR) {
        int64_t a = src->v.offs[start], bytes = src->v.offs[start + n] - a;
        if (frame_col_reserve(c, n, (size_t)bytes) != MR_OK) goto fail;
        memcpy(c->arena, src->arena + a, (size_t)bytes);
        for (size_t i = 0; i <= n; i++) c->v.offs[i] = src->v.offs[start + i] - a;
        c->arena_len = (size_t)bytes;
    } else {
        size_t w = src->type == FRAME_BOOL ? 1 : 8;
        memcpy((char *)c->v.i64, (const char *)src->v.i64 + start * w, n * w);
    }
    if (src->nulls) {
        if (frame_col_ensure_nulls(c) != MR_OK) goto fail;
        memcpy(c->nulls, src->nulls + start, n);
    }
    c->len = n;
    return c;
fail:
    frame_col_free(c);
    return NULL;
}

static frame *attach_or_fail(frame *out, frame_col *c, mr_err *e, const char *what)
{
    if (!c) return fail_oom(out, e, what);
    if (frame_attach_col(out, c, e) != MR_OK) {
        frame_col_free(c);
        frame_free(out);
        return NULL;
    }
    return out;
}

/* ---- select / take / filter / head / concat ---- */

frame *ops_select(const frame *f, const char *const *names, size_t n, mr_err *e)
{
    for (size_t i = 0; i < n; i++) {
        MR_CHECK_NULL(frame_col_index(f, names[i]) >= 0, e, MR_ENOTFOUND,
                      "select: no column '%s'", names[i]);
        for (size_t j = 0; j < i; j++)
            MR_CHECK_NULL(strcmp(names[i], names[j]) != 0, e, MR_EINVAL,
                          "select: column '%s' named twice", names[i]);
    }
    frame *out = frame_create();
    if (!out) return fail_oom(NULL, e, "select");
    for (size_t i = 0; i < n; i++) {
        frame_col *c = frame_col_clone(frame_col_by_name(f, names[i]));
        if (!attach_or_fail(out, c, e, "select")) return NULL;
    }
    return out;
}

frame *ops_take(const frame *f, const size_t *idx, size_t n, mr_err *e)
{
    size_t rows = frame_nrows(f);
    for (size_t i = 0; i < n; i++)
        MR_CHECK_NULL(idx[i] < rows, e, MR_EINVAL,
                      "take: index %zu at position %zu is past the last row (%zu rows)", idx[i],
                      i, rows);
    frame *out = frame_create();
    if (!out) return fail_oom(NULL, e, "take");
    for (size_t c = 0; c < frame_ncols(f); c++)
        if (!attach_or_fail(out, ops_take_col(frame_col_at(f, c), idx, n), e, "take")) return NULL;
    return out;
}

frame *ops_filter_mask(const frame *f, const uint8_t *keep, mr_err *e)
{
    size_t rows = frame_nrows(f), k = 0;
    size_t *idx = malloc((rows ? rows : 1) * sizeof *idx);
    if (!idx) return fail_oom(NULL, e, "filter");
    /* Branch-free compaction: masks are often close to 50/50. */
    for (size_t i = 0; i < rows; i++) {
        idx[k] = i;
        k += keep[i] != 0;
    }
    frame *out = ops_take(f, idx, k, e);
    free(idx);
    return out;
}

frame *ops_head(const frame *f, size_t n, mr_err *e)
{
    size_t rows = frame_nrows(f);
    if (n > rows) n = rows;
    frame *out = frame_create();
    if (!out) return fail_oom(NULL, e, "head");
    for (size_t c = 0; c < frame_ncols(f); c++)
        if (!attach_or_fail(out, slice_col(frame_col_at(f, c), 0, n), e, "head")) return NULL;
    return out;
}

frame *ops_concat(const frame *const *frames, size_t n, mr_err *e)
{
    frame *out = frame_create();
    if (!out) return fail_oom(NULL, e, "concat");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += frame_nrows(frames[i]);
    for (size_t i = 0; i < n; i++) {
        if (frame_append_frame(out, frames[i], e) != MR_OK) {
            mr_wrap(e, "concat: frame %zu: ", i + 1);
            frame_free(out);
            return NULL;
        }
        if (i > 0 || frame_ncols(out) == 0) continue;
        /* Size every buffer once, after the first frame fixed most of the schema. */
        for (size_t c = 0; c < frame_ncols(out); c++) {
            frame_col *col = frame_col_at(out, c);
            size_t bytes = 0;
            if (col->type == FRAME_STR) {
                for (size_t j = 0; j < n; j++) {
                    const frame_col *s = frame_col_by_name(frames[j], col->name);
                    if (s && s->type == FRAME_STR) bytes += s->arena_len;
                }
            }
            if (frame_col_reserve(col, total, bytes) != MR_OK) return fail_oom(out, e, "concat");
        }
    }
    return out;
}

/* ---- compare-filter ---- */

int ops_cmp_parse(const char *s, ops_cmp *out)
{
    static const struct { const char *s; ops_cmp c; } ops[] = {
        {"==", OPS_EQ}, {"=", OPS_EQ}, {"~=", OPS_NE}, {"!=", OPS_NE}, {"<>", OPS_NE},
        {"<", OPS_LT},  {"<=", OPS_LE}, {">", OPS_GT},  {">=", OPS_GE},
    };
    if (!s) return -1;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(s, ops[i].s) == 0) {
            if (out) *out = ops[i].c;
            return 0;
        }
    }
    return -1;
}

/* One comparison over a whole typed array; the switch sits outside the loop so each
 * loop body is a single vectorisable compare. */
#define OPS_CMP_LOOP(keep, arr, n, cmp, k)                                  \
    do {                                                                    \
        switch (cmp) {                                                      \
        case OPS_EQ: for (size_t i_ = 0; i_ < (n); i_++) (keep)[i_] = (arr)[i_] == (k); break; \
        case OPS_NE: for (size_t i_ = 0; i_ < (n); i_++) (keep)[i_] = (arr)[i_] != (k); break; \
        case OPS_LT: for (size_t i_ = 0; i_ < (n); i_++) (keep)[i_] = (arr)[i_] < (k); break;  \
        case OPS_LE: for (size_t i_ = 0; i_ < (n); i_++) (keep)[i_] = (arr)[i_] <= (k); break; \
        case OPS_GT: for (size_t i_ = 0; i_ < (n); i_++) (keep)[i_] = (arr)[i_] > (k); break;  \
        case OPS_GE: for (size_t i_ = 0; i_ < (n); i_++) (keep)[i_] = (arr)[i_] >= (k); break; \
        }                                                                   \
    } while (0)

static int cmp_result(ops_cmp cmp, int c)
{
    switch (cmp) {
    case OPS_EQ: return c == 0;
    case OPS_NE: return c != 0;
    case OPS_LT: return c < 0;
    case OPS_LE: return c <= 0;
    case OPS_GT: return c > 0;
    case OPS_GE: return c >= 0;
    }
    return 0;
}

/* int64 column against a double, exactly: rewritten as an int64 comparison, or a
 * constant when no int64 can satisfy (or fail) it. Returns -1 for "compare with *k",
 * else the constant 0/1. */
static int i64_vs_double(ops_cmp *cmp, double d, int64_t *k)
{
    const double two63 = 9223372036854775808.0;
    if (isnan(d)) return *cmp == OPS_NE;
    if (d >= two63) return *cmp == OPS_LT || *cmp == OPS_LE || *cmp == OPS_NE;
    if (d < -two63) return *cmp == OPS_GT || *cmp == OPS_GE || *cmp == OPS_NE;
    if (d == floor(d)) {
        *k = (int64_t)d;
        return -1;
    }
    switch (*cmp) {
    case OPS_EQ: return 0;
    case OPS_NE: return 1;
    case OPS_LT:
    case OPS_LE: *cmp = OPS_LE; *k = (int64_t)floor(d); return -1;
    case OPS_GT:
    case OPS_GE: *cmp = OPS_GE; *k = (int64_t)ceil(d); return -1;
    }
    return 0;
}

static int str_cmp(const char *a, size_t la, const char *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c) return c;
    return (la > lb) - (la < lb);
}

static mr_code fill_cmp_mask(const frame_col *c, ops_cmp cmp, const ops_value *v, uint8_t *keep,
                             mr_err *e)
{
    size_t n = c->len;
    if (v->kind == OPS_VNULL) {
        memset(keep, 0, n);
        return MR_OK;
    }
    switch (c->type) {
    case FRAME_I64: {
        MR_CHECK(v->kind == OPS_VNUM, e, MR_EINVAL,
                 "filter: column '%s' is int64, cannot compare it with a %s", c->name,
                 v->kind == OPS_VSTR ? "string" : "boolean");
        int64_t k = 0;
        int constant = i64_vs_double(&cmp, v->num, &k);
        if (constant >= 0) memset(keep, constant, n);
        else OPS_CMP_LOOP(keep, c->v.i64, n, cmp, k);
        break;
    }
    case FRAME_F64: {
        MR_CHECK(v->kind == OPS_VNUM, e, MR_EINVAL,
                 "filter: column '%s' is float64, cannot compare it with a %s", c->name,
                 v->kind == OPS_VSTR ? "string" : "boolean");
        double k = v->num;
        OPS_CMP_LOOP(keep, c->v.f64, n, cmp, k);
        break;
    }
    case FRAME_BOOL: {
        MR_CHECK(v->kind == OPS_VBOOL || v->kind == OPS_VNUM, e, MR_EINVAL,
                 "filter: column '%s' is bool, cannot compare it with a string", c->name);
        if (v->kind == OPS_VNUM) {
            for (size_t i = 0; i < n; i++)
                keep[i] = (uint8_t)cmp_result(cmp, (c->v.b[i] > v->num) - (c->v.b[i] < v->num));
            break;
        }
        uint8_t k = v->b != 0;
        OPS_CMP_LOOP(keep, c->v.b, n, cmp, k);
        break;
    }
    case FRAME_STR: {
        MR_CHECK(v->kind == OPS_VSTR, e, MR_EINVAL,
                 "filter: column '%s' is string, cannot compare it with a %s", c->name,
                 v->kind == OPS_VNUM ? "number" : "boolean");
        const int64_t *o = c->v.offs;
        if (cmp == OPS_EQ || cmp == OPS_NE) {
            uint8_t want = cmp == OPS_EQ;
            for (size_t i = 0; i < n; i++) {
                size_t len = (size_t)(o[i + 1] - o[i]);
                int eq = len == v->len && memcmp(c->arena + o[i], v->str, len) == 0;
                keep[i] = (uint8_t)(eq == want);
            }
            break;
        }
        for (size_t i = 0; i < n; i++)
            keep[i] = (uint8_t)cmp_result(
                cmp, str_cmp(c->arena + o[i], (size_t)(o[i + 1] - o[i]), v->str, v->len));
        break;
    }
    }
    if (c->nulls)
        for (size_t i = 0; i < n; i++) keep[i] &= (uint8_t)!c->nulls[i];
    return MR_OK;
}

frame *ops_filter_cmp(const frame *f, const char *col, ops_cmp cmp, const ops_value *v,
                      mr_err *e)
{
    const frame_col *c = frame_col_by_name(f, col);
    MR_CHECK_NULL(c, e, MR_ENOTFOUND, "filter: no column '%s'", col);
    MR_CHECK_NULL(cmp >= OPS_EQ && cmp <= OPS_GE, e, MR_EINVAL, "filter: bad comparison %d",
                  (int)cmp);
    uint8_t *keep = malloc(c->len ? c->len : 1);
    if (!keep) return fail_oom(NULL, e, "filter");
    if (fill_cmp_mask(c, cmp, v, keep, e) != MR_OK) {
        free(keep);
        return NULL;
    }
    frame *out = ops_filter_mask(f, keep, e);
    free(keep);
    return out;
}

/* ---- sorting ---- */

/* Order-preserving maps to uint64: unsigned comparison of the images equals the typed
 * comparison. -0.0 maps with 0.0 and every NaN maps above +inf. */
static inline uint64_t sortkey_i64(int64_t v)
{
    return (uint64_t)v ^ 0x8000000000000000ull;
}

static inline uint64_t sortkey_f64(double v)
{
    uint64_t bits;
    if (v == 0) v = 0;                       /* -0.0 -> 0.0 */
    if (isnan(v)) return UINT64_MAX;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x8000000000000000ull) ? ~bits : bits | 0x8000000000000000ull;
}

/* First 8 bytes big-endian, zero-padded: a string's image never exceeds that of any
 * string greater than it, so equal images are the only ties left to resolve. */
static inline uint64_t sortkey_str(const frame_col *c, size_t row)
{
    size_t len;
    const unsigned char *p = (const unsigned char *)frame_col_str(c, row, &len);
    uint64_t k = 0;
    for (size_t i = 0; i < 8; i++) k = (k << 8) | (i < len ? p[i] : 0);
    return k;
}

static inline uint64_t sortkey_cell(const frame_col *c, size_t row)
{
    switch (c->type) {
    case FRAME_I64: return sortkey_i64(c->v.i64[row]);
    case FRAME_F64: return sortkey_f64(c->v.f64[row]);
    case FRAME_BOOL: return c->v.b[row];
    case FRAME_STR: return sortkey_str(c, row);
    }
    return 0;
}

/* Images of rows perm[0..n) of c, flipped for a descending key. The type switch sits
 * outside the loops. */
static void fill_sortkeys(const frame_col *c, const uint32_t *perm, size_t n, int desc,
                          uint64_t *out)
{
    uint64_t flip = desc ? UINT64_MAX : 0;
    switch (c->type) {
    case FRAME_I64:
        for (size_t i = 0; i < n; i++) out[i] = sortkey_i64(c->v.i64[perm[i]]) ^ flip;
        break;
    case FRAME_F64:
        for (size_t i = 0; i < n; i++) out[i] = sortkey_f64(c->v.f64[perm[i]]) ^ flip;
        break;
    case FRAME_BOOL:
        for (size_t i = 0; i < n; i++) out[i] = (uint64_t)c->v.b[perm[i]] ^ flip;
        break;
    case FRAME_STR:
        for (size_t i = 0; i < n; i++) out[i] = sortkey_str(c, perm[i]) ^ flip;
        break;
    }
}

#define OPS_RADIX_BITS 11
#define OPS_RADIX_SIZE (1u << OPS_RADIX_BITS)
#define OPS_RADIX_PASSES 6   /* 6 * 11 >= 64 */

/* Stable LSD radix sort of the pairs (keys[i], perm[i]) by key, 11 bits per pass
 * (histograms stay in L1); passes where every key shares the digit are skipped, so a
 * small key range costs one or two passes. On return *keys / *perm point at whichever
 * buffer of each pair holds the sorted result. */
static void radix_pairs(uint64_t **keys, uint64_t **ktmp, uint32_t **perm, uint32_t **ptmp,
                        size_t n, size_t (*hist)[OPS_RADIX_SIZE])
{
    uint64_t *ks = *keys, *kt = *ktmp;
    uint32_t *ps = *perm, *pt = *ptmp;
    const uint64_t mask = OPS_RADIX_SIZE - 1;
    memset(hist, 0, OPS_RADIX_PASSES * sizeof *hist);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = ks[i];
        for (int d = 0; d < OPS_RADIX_PASSES; d++) hist[d][(k >> (OPS_RADIX_BITS * d)) & mask]++;
    }
    for (int d = 0; d < OPS_RADIX_PASSES; d++) {
        int shift = OPS_RADIX_BITS * d;
        if (n == 0 || hist[d][(ks[0] >> shift) & mask] == n) continue;
        size_t pos = 0;
        for (size_t v = 0; v < OPS_RADIX_SIZE; v++) {
            size_t cnt = hist[d][v];
            hist[d][v] = pos;
            pos += cnt;
        }
        for (size_t i = 0; i < n; i++) {
            size_t at = hist[d][(ks[i] >> shift) & mask]++;
            kt[at] = ks[i];
            pt[at] = ps[i];
        }
        uint64_t *tk = ks; ks = kt; kt = tk;
        uint32_t *tp = ps; ps = pt; pt = tp;
    }
    *keys = ks;
    *ktmp = kt;
    *perm = ps;
    *ptmp = pt;
}

/* The body of ops_cmp_rows, inlined into merge_sort's comparator: there a and b are the
 * same column list, so the compiler folds the type-equality tests away and the same-frame
 * code is what it was before extsort shared this function. */
static inline __attribute__((always_inline))
int cmp_rows_at(const frame_col *const *a, size_t i, const frame_col *const *b, size_t j,
                const ops_sort_key *keys, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const frame_col *ca = a[k], *cb = b[k];
        int na = frame_col_is_null(ca, i), nb = frame_col_is_null(cb, j);
        if (na | nb) {
            if (na && nb) continue;
            return na ? 1 : -1;   /* nulls last whatever the direction */
        }
        int r;
        if (ca->type == FRAME_STR) {
            size_t la, lb;
            const char *pa = frame_col_str(ca, i, &la), *pb = frame_col_str(cb, j, &lb);
            r = str_cmp(pa, la, pb, lb);
        } else if (ca->type == cb->type) {
            /* Same type (int64/int64 included): the order-preserving images, no
             * conversion to double. */
            uint64_t ka = sortkey_cell(ca, i), kb = sortkey_cell(cb, j);
            r = (ka > kb) - (ka < kb);
        } else {
            /* Numbers of different types (rows of different frames): by value as
             * doubles, NaN above everything and equal to NaN. */
            double x = frame_col_num(ca, i), y = frame_col_num(cb, j);
            int xn = isnan(x), yn = isnan(y);
            r = (xn | yn) ? xn - yn : (x > y) - (x < y);
        }
        if (r) return keys[k].descending ? -r : r;
    }
    return 0;
}

int ops_cmp_rows(const frame_col *const *a, size_t i, const frame_col *const *b, size_t j,
                 const ops_sort_key *keys, size_t n)
{
    return cmp_rows_at(a, i, b, j, keys, n);
}

typedef struct sort_ctx {
    const frame_col *const *cols;
    const ops_sort_key *keys;
    size_t nk;
} sort_ctx;

static int cmp_rows(const sort_ctx *x, size_t a, size_t b)
{
    return cmp_rows_at(x->cols, a, x->cols, b, x->keys, x->nk);
}

/* Stable merge sort of idx[0..n): insertion-sorted runs of 16, then bottom-up merges.
 * tmp has room for n entries. */
static void merge_sort(const sort_ctx *x, size_t *idx, size_t n, size_t *tmp)
{
    const size_t run = 16;
    for (size_t lo = 0; lo < n; lo += run) {
        size_t hi = lo + run < n ? lo + run : n;
        for (size_t i = lo + 1; i < hi; i++) {
            size_t v = idx[i], j = i;
            while (j > lo && cmp_rows(x, idx[j - 1], v) > 0) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
    }
    if (n <= run) return;
    size_t *src = idx, *dst = tmp;
    for (size_t width = run; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, o = lo;
            /* Runs already in order are copied through without element comparisons. */
            if (mid >= hi || cmp_rows(x, src[mid - 1], src[mid]) <= 0) {
                memcpy(dst + lo, src + lo, (hi - lo) * sizeof *dst);
                continue;
            }
            while (i < mid && j < hi)
                dst[o++] = cmp_rows(x, src[j], src[i]) < 0 ? src[j++] : src[i++];
            while (i < mid) dst[o++] = src[i++];
            while (j < hi) dst[o++] = src[j++];
        }
        size_t *t = src; src = dst; dst = t;
    }
    if (src != idx) memcpy(idx, src, n * sizeof *idx);
}

/* Radix-sortable inputs (fewer than 2^32 rows). All-numeric keys: one stable radix sort
 * per key, least significant key first, each followed by a stable partition moving that
 * key's nulls to the end; exact, no comparisons. Otherwise the first key is radix-sorted
 * on its image (string prefix) with its nulls set aside, and only runs of equal images
 * (and the null run) are finished with the row comparator. */
static mr_code sort_radix(const sort_ctx *x, int all_numeric, size_t n, size_t *out)
{
    uint64_t *k0 = malloc(n * sizeof *k0), *k1 = malloc(n * sizeof *k1);
    uint32_t *p0 = malloc(n * sizeof *p0), *p1 = malloc(n * sizeof *p1);
    size_t (*hist)[OPS_RADIX_SIZE] = malloc(OPS_RADIX_PASSES * sizeof *hist);
    size_t *tmp = NULL;
    mr_code rc = MR_ENOMEM;
    if (!k0 || !k1 || !p0 || !p1 || !hist) goto done;
    for (size_t i = 0; i < n; i++) p0[i] = (uint32_t)i;
    if (all_numeric) {
        for (size_t kk = x->nk; kk-- > 0;) {
            const frame_col *c = x->cols[kk];
            fill_sortkeys(c, p0, n, x->keys[kk].descending, k0);
            radix_pairs(&k0, &k1, &p0, &p1, n, hist);
            if (!c->nulls) continue;
            size_t w = 0;
            for (size_t i = 0; i < n; i++)
                if (!c->nulls[p0[i]]) p1[w++] = p0[i];
            for (size_t i = 0; i < n; i++)
                if (c->nulls[p0[i]]) p1[w++] = p0[i];
            uint32_t *t = p0; p0 = p1; p1 = t;
        }
        for (size_t i = 0; i < n; i++) out[i] = p0[i];
        rc = MR_OK;
        goto done;
    }
    const frame_col *c = x->cols[0];
    size_t m = 0, nn = 0;
    if (c->nulls) {
        /* Non-null rows go to p0 for sorting; null rows keep input order at the end. */
        for (size_t i = 0; i < n; i++) {
            if (c->nulls[i]) p1[nn++] = (uint32_t)i;
            else p0[m++] = (uint32_t)i;
        }
        for (size_t i = 0; i < nn; i++) out[m + i] = p1[i];
    } else {
        m = n;
    }
    fill_sortkeys(c, p0, m, x->keys[0].descending, k0);
    radix_pairs(&k0, &k1, &p0, &p1, m, hist);
    for (size_t i = 0; i < m; i++) out[i] = p0[i];
    int refine = x->nk > 1 || c->type == FRAME_STR;
    if (!refine) {
        rc = MR_OK;
        goto done;
    }
    tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp) goto done;
    for (size_t a = 0; a < m;) {
        size_t b = a + 1;
        while (b < m && k0[b] == k0[a]) b++;
        if (b - a > 1) merge_sort(x, out + a, b - a, tmp);
        a = b;
    }
    if (nn > 1 && x->nk > 1) merge_sort(x, out + m, nn, tmp);
    rc = MR_OK;
done:
    free(k0);
    free(k1);
    free(p0);
    free(p1);
    free(hist);
    free(tmp);
    return rc;
}

size_t *ops_sort_index(const frame *f, const ops_sort_key *keys, size_t n, mr_err *e)
{
    size_t rows = frame_nrows(f);
    const frame_col **cols = malloc((n ? n : 1) * sizeof *cols);
    size_t *idx = malloc((rows ? rows : 1) * sizeof *idx);
    if (!cols || !idx) {
        free(cols);
        free(idx);
        mr_fail(e, MR_ENOMEM, "sort: out of memory for %zu rows", rows);
        return NULL;
    }
    int all_numeric = 1;
    for (size_t k = 0; k < n; k++) {
        cols[k] = frame_col_by_name(f, keys[k].col);
        if (!cols[k]) {
            free(cols);
            free(idx);
            mr_fail(e, MR_ENOTFOUND, "sort: no column '%s'", keys[k].col);
            return NULL;
        }
        if (cols[k]->type == FRAME_STR) all_numeric = 0;
    }
    sort_ctx x = {cols, keys, n};
    mr_code rc = MR_OK;
    if (n > 0 && rows > 64 && rows < UINT32_MAX) {
        rc = sort_radix(&x, all_numeric, rows, idx);
    } else {
        for (size_t i = 0; i < rows; i++) idx[i] = i;
        size_t *tmp = n > 0 ? malloc((rows ? rows : 1) * sizeof *tmp) : NULL;
        if (n > 0 && !tmp) rc = MR_ENOMEM;
        else if (n > 0) merge_sort(&x, idx, rows, tmp);
        free(tmp);
    }
    free(cols);
    if (rc != MR_OK) {
        free(idx);
        mr_fail(e, rc, "sort: out of memory for %zu rows", rows);
        return NULL;
    }
    return idx;
}

frame *ops_sort(const frame *f, const ops_sort_key *keys, size_t n, mr_err *e)
{
    size_t *idx = ops_sort_index(f, keys, n, e);
    if (!idx) return NULL;
    frame *out = ops_take(f, idx, frame_nrows(f), e);
    free(idx);
    return out;
}

/* ---- hashing ---- */

/* wyhash-style mixing: one 64x64->128 multiply folds both halves together. */
static inline uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

#define OPS_P0 0xa0761d6478bd642full
#define OPS_P1 0xe7037ed1a0b428dbull
#define OPS_P2 0x8ebc6af09c88c6e3ull
#define OPS_NULL_HASH 0x589965cc75374cc3ull

static inline uint64_t rd8(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t rd4(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

uint64_t ops_hash_bytes(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t a, b;
    seed ^= OPS_P0;
    if (len <= 16) {
        if (len >= 4) {
            size_t q = (len >> 3) << 2;
            a = (rd4(p) << 32) | rd4(p + q);
            b = (rd4(p + len - 4) << 32) | rd4(p + len - 4 - q);
        } else if (len > 0) {
            a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        while (i > 16) {
            seed = mum(rd8(p) ^ OPS_P1, rd8(p + 8) ^ seed);
            p += 16;
            i -= 16;
        }
        a = rd8(p + i - 16);
        b = rd8(p + i - 8);
    }
    return mum(OPS_P1 ^ len, mum(a ^ OPS_P1, b ^ seed));
}

static inline uint64_t hash_u64(uint64_t v)
{
    return mum(v ^ OPS_P0, OPS_P1);
}

uint64_t ops_hash_u64(uint64_t v)
{
    return hash_u64(v);
}

/* Integral doubles hash as the int64 they equal, so 1 and 1.0 meet in the same group
 * and -0.0 meets 0. */
static inline int double_as_i64(double d, int64_t *out)
{
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d) {
        *out = (int64_t)d;
        return 1;
    }
    return 0;
}

static inline uint64_t hash_cell(const frame_col *c, size_t row)
{
    if (frame_col_is_null(c, row)) return OPS_NULL_HASH;
    switch (c->type) {
    case FRAME_I64: return hash_u64((uint64_t)c->v.i64[row]);
    case FRAME_BOOL: return hash_u64(c->v.b[row]);
    case FRAME_F64: {
        double d = c->v.f64[row];
        int64_t i;
        if (double_as_i64(d, &i)) return hash_u64((uint64_t)i);
        if (isnan(d)) return OPS_P2;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return hash_u64(bits ^ OPS_P2);
    }
    case FRAME_STR: {
        size_t len;
        const char *s = frame_col_str(c, row, &len);
        return ops_hash_bytes(s, len, 0);
    }
    }
    return 0;
}

uint64_t ops_hash_row(const frame_col *const *cols, size_t ncols, size_t row)
{
    if (ncols == 1) return hash_cell(cols[0], row);
    uint64_t h = OPS_P2;
    for (size_t k = 0; k < ncols; k++) h = mum(h ^ hash_cell(cols[k], row), OPS_P1);
    return h;
}

/* Hashes of rows [start, start+n) of one column, type switch hoisted out of the loop. */
static void hash_col_range(const frame_col *c, size_t start, size_t n, uint64_t *h)
{
    switch (c->type) {
    case FRAME_I64: {
        const int64_t *v = c->v.i64 + start;
        for (size_t i = 0; i < n; i++) h[i] = hash_u64((uint64_t)v[i]);
        break;
    }
    case FRAME_BOOL: {
        const uint8_t *v = c->v.b + start;
        for (size_t i = 0; i < n; i++) h[i] = hash_u64(v[i]);
        break;
    }
    default:
        for (size_t i = 0; i < n; i++) h[i] = hash_cell(c, start + i);
        return;   /* hash_cell already handled nulls */
    }
    if (c->nulls)
        for (size_t i = 0; i < n; i++)
            if (c->nulls[start + i]) h[i] = OPS_NULL_HASH;
}

void ops_hash_rows(const frame_col *const *cols, size_t ncols, size_t start, size_t n,
                   uint64_t *out)
{
    if (ncols == 1) {
        hash_col_range(cols[0], start, n, out);
        return;
    }
    /* Column at a time through a small buffer: stays in L1, each loop is one type. */
    uint64_t buf[256];
    for (size_t i = 0; i < n; i++) out[i] = OPS_P2;
    for (size_t k = 0; k < ncols; k++) {
        for (size_t b = 0; b < n; b += 256) {
            size_t m = n - b < 256 ? n - b : 256;
            hash_col_range(cols[k], start + b, m, buf);
            for (size_t i = 0; i < m; i++) out[b + i] = mum(out[b + i] ^ buf[i], OPS_P1);
        }
    }
}

/* Numeric cells compare by value across int64/float64/bool; NaN equals NaN so that
 * grouping puts NaNs together, like nulls. */
static int cells_equal(const frame_col *a, size_t i, const frame_col *b, size_t j)
{
    int na = frame_col_is_null(a, i), nb = frame_col_is_null(b, j);
    if (na | nb) return na && nb;
    if (a->type == b->type) {
        switch (a->type) {
        case FRAME_I64: return a->v.i64[i] == b->v.i64[j];
        case FRAME_BOOL: return a->v.b[i] == b->v.b[j];
        case FRAME_F64: {
            double x = a->v.f64[i], y = b->v.f64[j];
            return x == y || (isnan(x) && isnan(y));
        }
        case FRAME_STR: {
            size_t la, lb;
            const char *pa = frame_col_str(a, i, &la), *pb = frame_col_str(b, j, &lb);
            return la == lb && memcmp(pa, pb, la) == 0;
        }
        }
    }
    if (a->type == FRAME_STR || b->type == FRAME_STR) return 0;
    if (a->type == FRAME_F64 || b->type == FRAME_F64) {
        const frame_col *fc = a->type == FRAME_F64 ? a : b, *ic = fc == a ? b : a;
        size_t fr = fc == a ? i : j, ir = fc == a ? j : i;
        int64_t as_int;
        if (!double_as_i64(fc->v.f64[fr], &as_int)) return 0;
        return as_int == (ic->type == FRAME_I64 ? ic->v.i64[ir] : ic->v.b[ir]);
    }
    /* int64 vs bool */
    const frame_col *bc = a->type == FRAME_BOOL ? a : b, *ic = bc == a ? b : a;
    return (bc == a ? a->v.b[i] : b->v.b[j]) == (ic == a ? a->v.i64[i] : b->v.i64[j]);
}

int ops_rows_equal(const frame_col *const *a, size_t i, const frame_col *const *b, size_t j,
                   size_t ncols)
{
    for (size_t k = 0; k < ncols; k++)
        if (!cells_equal(a[k], i, b[k], j)) return 0;
    return 1;
}

/* ---- distinct ---- */

/* Open addressing at load <= 1/2, grown as distinct rows appear so the table tracks the
 * number of distinct rows, not input rows. A slot holds the hash's high 32 bits (most
 * probes then skip the row comparison) and entry+1 (0 = empty). */
typedef struct distinct_set {
    uint64_t *slots;
    size_t cap;            /* power of two */
    size_t *rows;          /* entry -> first row */
    uint64_t *hashes;      /* entry -> hash, for rehashing */
    size_t n, rows_cap;
} distinct_set;

#define OPS_TAG_MASK 0xffffffff00000000ull

static void distinct_place(distinct_set *s, uint64_t h, size_t entry)
{
    size_t mask = s->cap - 1, at = (size_t)h & mask;
    while (s->slots[at]) at = (at + 1) & mask;
    s->slots[at] = (h & OPS_TAG_MASK) | (uint64_t)(entry + 1);
}

static mr_code distinct_grow(distinct_set *s)
{
    if (s->n == s->rows_cap) {
        size_t ncap = s->rows_cap ? s->rows_cap * 2 : 1024;
        size_t *r = realloc(s->rows, ncap * sizeof *r);
        if (!r) return MR_ENOMEM;
        s->rows = r;
        uint64_t *h = realloc(s->hashes, ncap * sizeof *h);
        if (!h) return MR_ENOMEM;
        s->hashes = h;
        s->rows_cap = ncap;
    }
    if ((s->n + 1) * 2 <= s->cap) return MR_OK;
    size_t ncap = s->cap ? s->cap * 2 : 2048;
    uint64_t *slots = calloc(ncap, sizeof *slots);
    if (!slots) return MR_ENOMEM;
    free(s->slots);
    s->slots = slots;
    s->cap = ncap;
    for (size_t j = 0; j < s->n; j++) distinct_place(s, s->hashes[j], j);
    return MR_OK;
}

frame *ops_distinct(const frame *f, const char *const *names, size_t n, mr_err *e)
{
    size_t rows = frame_nrows(f), nc = n ? n : frame_ncols(f);
    MR_CHECK_NULL(rows < UINT32_MAX, e, MR_ELIMIT,
                  "distinct: %zu rows is more than one frame supports", rows);
    const frame_col **cols = malloc((nc ? nc : 1) * sizeof *cols);
    if (!cols) return fail_oom(NULL, e, "distinct");
    for (size_t k = 0; k < nc; k++) {
        cols[k] = n ? frame_col_by_name(f, names[k]) : frame_col_at(f, k);
        if (!cols[k]) {
            free(cols);
            mr_fail(e, MR_ENOTFOUND, "distinct: no column '%s'", names[k]);
            return NULL;
        }
    }
    distinct_set s = {0};
    frame *out = NULL;
    if (distinct_grow(&s) != MR_OK) goto oom;
    uint64_t hbuf[1024];
    for (size_t r = 0; r < rows; r++) {
        if (r % 1024 == 0) ops_hash_rows(cols, nc, r, rows - r < 1024 ? rows - r : 1024, hbuf);
        uint64_t h = hbuf[r % 1024], tag = h & OPS_TAG_MASK;
        size_t mask = s.cap - 1, at = (size_t)h & mask;
        for (;;) {
            uint64_t v = s.slots[at];
            if (v == 0) {
                s.rows[s.n] = r;
                s.hashes[s.n] = h;
                s.slots[at] = tag | (uint64_t)(s.n + 1);
                s.n++;
                if (distinct_grow(&s) != MR_OK) goto oom;
                break;
            }
            if ((v & OPS_TAG_MASK) == tag &&
                ops_rows_equal(cols, s.rows[(v & 0xffffffffu) - 1], cols, r, nc))
                break;
            at = (at + 1) & mask;
        }
    }
    out = ops_take(f, s.rows, s.n, e);
    goto done;
oom:
    mr_fail(e, MR_ENOMEM, "ops: out of memory in distinct");
done:
    free(cols);
    free(s.slots);
    free(s.rows);
    free(s.hashes);
    return out;
}
