#include "groupby.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "sketch.h"

/* Design: one pass gives every row a dense group id (uint32) through an open-addressing
 * table; every aggregate is then a tight loop over (gid[i], value[i]) into per-group
 * arrays. Memory is O(rows) for the ids plus O(groups) per aggregate; exact quantiles
 * add one contiguous copy of the values, bucketed by group with a counting sort. */

#define GB_EMPTY UINT32_MAX
#define GB_MAX_GROUPS (UINT32_MAX - 1)

typedef enum gb_mode { GB_RUN, GB_PARTIAL, GB_MERGE } gb_mode;

typedef struct gb_groups {
    uint32_t *gid;       /* per row */
    size_t n;            /* rows */
    size_t ng;           /* groups */
    size_t *first_row;   /* per group: its first row, for key output and equality */
    size_t cap;
} gb_groups;

/* ---------------------------------------------------------------- hashing */

static inline uint64_t gb_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* The n < 8 bytes at p as a little-endian word with zero high bytes, what memcpy into a
 * zeroed uint64_t gives, but from two overlapping fixed-size loads: a variable-length
 * memcpy is a library call and a store-forwarding stall (measured: half of gb_assign_str's
 * time on 7-byte keys). Overlapping bytes are OR'ed with themselves. */
static inline uint64_t gb_load_tail(const char *p, size_t n)
{
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        return (uint64_t)a | ((uint64_t)b << (8 * (n - 4)));
    }
    if (n >= 2) {
        uint16_t a, b;
        memcpy(&a, p, 2);
        memcpy(&b, p + n - 2, 2);
        return (uint64_t)a | ((uint64_t)b << (8 * (n - 2)));
    }
    return n ? (uint64_t)(uint8_t)p[0] : 0;
}

static inline uint64_t gb_hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xbf58476d1ce4e5b9ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n) h = (h ^ gb_load_tail(p, n)) * 0x94d049bb133111ebull;
    return gb_mix64(h);
}

/* Float identity for distinct counting: -0.0 equals 0.0 and all NaNs are one value. */
static inline uint64_t gb_f64_bits(double d)
{
    uint64_t b;
    if (d == 0) return 0;
    if (isnan(d)) return 0x7ff8000000000000ull;
    memcpy(&b, &d, sizeof b);
    return b;
}

static inline double gb_num(const frame_col *c, size_t i)
{
    switch (c->type) {
    case FRAME_I64: return (double)c->v.i64[i];
    case FRAME_F64: return c->v.f64[i];
    case FRAME_BOOL: return (double)c->v.b[i];
    default: return NAN;
    }
}

/* ---------------------------------------------------------------- groups */

static mr_code gb_new_group(gb_groups *G, size_t row, uint32_t *out, mr_err *e)
{
    if (G->ng >= GB_MAX_GROUPS)
        return mr_fail(e, MR_ELIMIT, "group_by: more than %lu groups", (unsigned long)GB_MAX_GROUPS);
    if (G->ng == G->cap) {
        size_t cap = G->cap ? G->cap * 2 : 1024;
        size_t *fr = realloc(G->first_row, cap * sizeof *fr);
        if (!fr) return mr_fail(e, MR_ENOMEM, "group_by: out of memory for %zu groups", cap);
        G->first_row = fr;
        G->cap = cap;
    }
    G->first_row[G->ng] = row;
    *out = (uint32_t)G->ng++;
    return MR_OK;
}

/* Sparse while the table fits in L2 (short probe runs, few mispredicted branches: 1/8
 * load measured 30% faster than 1/2 on 1000 keys), dense once it is big. */
static inline int gb_table_full(size_t used, size_t cap)
{
    return used * (cap <= 32768 ? 8 : 2) > cap;
}

static size_t gb_initial_slots(size_t n)
{
    /* Most group-bys have few groups; start small and let the table double, so a
     * low-cardinality key stays in L1/L2. */
    size_t cap = 256;
    (void)n;
    return cap;
}

/* Keys are mostly short: compare them as one or two words instead of calling memcmp. */
static inline int gb_bytes_eq(const char *a, const char *b, size_t n)
{
    if (n < 8) return gb_load_tail(a, n) == gb_load_tail(b, n);
    if (n == 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        return x == y;
    }
    if (n <= 16) {
        uint64_t x1, y1, x2, y2;
        memcpy(&x1, a, 8);
        memcpy(&y1, b, 8);
        memcpy(&x2, a + n - 8, 8);
        memcpy(&y2, b + n - 8, 8);
        return x1 == y1 && x2 == y2;
    }
    return memcmp(a, b, n) == 0;
}

/* String keys: 16-byte slots (32-bit hash tag, group, offset) pointing into a private
 * arena of the distinct keys stored as [u32 length][bytes]. A hit touches the slot and
 * one arena line; with few keys both stay in L1/L2, with millions of keys a lookup costs
 * two cache misses (going through the frame's arena or per-group arrays cost four). */
typedef struct gb_tslot {
    uint32_t tag;
    uint32_t g;
    uint64_t off;
} gb_tslot;

typedef struct gb_keyarena {
    char *p;
    size_t len, cap;
} gb_keyarena;

static mr_code gb_keyarena_add(gb_keyarena *a, const char *s, uint32_t n, uint64_t *off, mr_err *e)
{
    size_t need = a->len + 4 + n;
    if (need > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16384;
        while (cap < need) cap *= 2;
        char *np = realloc(a->p, cap);
        if (!np) return mr_fail(e, MR_ENOMEM, "group_by: out of memory for %zu bytes of keys", cap);
        a->p = np;
        a->cap = cap;
    }
    *off = a->len;
    memcpy(a->p + a->len, &n, 4);
    if (n) memcpy(a->p + a->len + 4, s, n);
    a->len = need;
    return MR_OK;
}

static mr_code gb_tslot_grow(gb_tslot **slots, size_t *cap, const gb_keyarena *a, mr_err *e)
{
    size_t ncap = *cap * 2, mask = ncap - 1;
    gb_tslot *ns = malloc(ncap * sizeof *ns);
    if (!ns) return mr_fail(e, MR_ENOMEM, "group_by: out of memory growing the hash table");
    for (size_t i = 0; i < ncap; i++) ns[i].g = GB_EMPTY;
    for (size_t i = 0; i < *cap; i++) {
        gb_tslot s = (*slots)[i];
        if (s.g == GB_EMPTY) continue;
        uint32_t n;
        memcpy(&n, a->p + s.off, 4);
        size_t idx = gb_hash_bytes(a->p + s.off + 4, n) & mask;
        while (ns[idx].g != GB_EMPTY) idx = (idx + 1) & mask;
        ns[idx] = s;
    }
    free(*slots);
    *slots = ns;
    *cap = ncap;
    return MR_OK;
}

#define GB_BATCH 32

/* Fast path: one string key. Rows go in batches: hash all and prefetch their slots, then
 * prefetch the keys those slots point to, then probe. With millions of keys each row
 * needs two dependent cache misses, and the batches let them overlap across rows
 * (measured 3.8 s -> see report for 10M rows / 1M keys); with few keys the prefetches
 * hit cache and cost little. The prefetch stages only read, so groups inserted while
 * probing cannot make them wrong, only less useful. */
static mr_code gb_assign_str(const frame_col *c, gb_groups *G, mr_err *e)
{
    size_t cap = gb_initial_slots(G->n), used = 0;
    gb_tslot *slots = malloc(cap * sizeof *slots);
    if (!slots) return mr_fail(e, MR_ENOMEM, "group_by: out of memory");
    for (size_t i = 0; i < cap; i++) slots[i].g = GB_EMPTY;
    gb_keyarena keys = {0};
    uint32_t null_gid = GB_EMPTY;
    const int64_t *offs = c->v.offs;
    const char *arena = c->arena;
    uint64_t hb[GB_BATCH];
    mr_code rc = MR_OK;
    for (size_t base = 0; base < G->n; base += GB_BATCH) {
        size_t end = base + GB_BATCH < G->n ? base + GB_BATCH : G->n;
        size_t mask = cap - 1;
        for (size_t i = base; i < end; i++) {
            hb[i - base] = gb_hash_bytes(arena + offs[i], (size_t)(offs[i + 1] - offs[i]));
            __builtin_prefetch(&slots[hb[i - base] & mask]);
        }
        for (size_t i = base; i < end; i++) {
            const gb_tslot *s = &slots[hb[i - base] & mask];
            if (s->g != GB_EMPTY) __builtin_prefetch(keys.p + s->off);
        }
        for (size_t i = base; i < end; i++) {
            if (c->nulls && c->nulls[i]) {
                if (null_gid == GB_EMPTY && (rc = gb_new_group(G, i, &null_gid, e)) != MR_OK) goto done;
                G->gid[i] = null_gid;
                continue;
            }
            const char *p = arena + offs[i];
            uint32_t len = (uint32_t)(offs[i + 1] - offs[i]);
            uint64_t h = hb[i - base];
            uint32_t tag = (uint32_t)(h >> 32);
            size_t idx = h & (cap - 1);
            uint32_t g;
            for (;;) {
                gb_tslot *s = &slots[idx];
                if (s->g == GB_EMPTY) {
                    if ((rc = gb_new_group(G, i, &g, e)) != MR_OK) goto done;
                    if ((rc = gb_keyarena_add(&keys, p, len, &s->off, e)) != MR_OK) goto done;
                    s->tag = tag;
                    s->g = g;
                    if (gb_table_full(++used, cap) &&
                        (rc = gb_tslot_grow(&slots, &cap, &keys, e)) != MR_OK)
                        goto done;
                    break;
                }
                if (s->tag == tag) {
                    const char *k = keys.p + s->off;
                    uint32_t klen;
                    memcpy(&klen, k, 4);
                    if (klen == len && gb_bytes_eq(k + 4, p, len)) {
                        g = s->g;
                        break;
                    }
                }
                idx = (idx + 1) & (cap - 1);
            }
            G->gid[i] = g;
        }
    }
done:
    free(slots);
    free(keys.p);
    return rc;
}

/* A slot of the int64-key table (k: the key, probed from gb_mix64(k)) and of the generic
 * one (k: the row hash, probed from k). */
typedef struct gb_kslot {
    uint64_t k;
    uint32_t g;
} gb_kslot;

/* Doubles a gb_kslot table; both tables grow alike but for whether k is already the
 * hash. */
static mr_code gb_kslot_grow(gb_kslot **slots, size_t *cap, int k_is_hash, mr_err *e)
{
    size_t ncap = *cap * 2, mask = ncap - 1;
    gb_kslot *ns = malloc(ncap * sizeof *ns);
    if (!ns) return mr_fail(e, MR_ENOMEM, "group_by: out of memory growing the hash table");
    for (size_t i = 0; i < ncap; i++) ns[i].g = GB_EMPTY;
    for (size_t i = 0; i < *cap; i++) {
        gb_kslot s = (*slots)[i];
        if (s.g == GB_EMPTY) continue;
        size_t idx = (k_is_hash ? s.k : gb_mix64(s.k)) & mask;
        while (ns[idx].g != GB_EMPTY) idx = (idx + 1) & mask;
        ns[idx] = s;
    }
    free(*slots);
    *slots = ns;
    *cap = ncap;
    return MR_OK;
}

/* Fast path: one int64 key compared by value. */
static mr_code gb_assign_i64(const frame_col *c, gb_groups *G, mr_err *e)
{
    size_t cap = gb_initial_slots(G->n), used = 0;
    gb_kslot *slots = malloc(cap * sizeof *slots);
    if (!slots) return mr_fail(e, MR_ENOMEM, "group_by: out of memory");
    for (size_t i = 0; i < cap; i++) slots[i].g = GB_EMPTY;
    uint32_t null_gid = GB_EMPTY;
    mr_code rc = MR_OK;
    for (size_t i = 0; i < G->n; i++) {
        if (c->nulls && c->nulls[i]) {
            if (null_gid == GB_EMPTY && (rc = gb_new_group(G, i, &null_gid, e)) != MR_OK) break;
            G->gid[i] = null_gid;
            continue;
        }
        int64_t v = c->v.i64[i];
        size_t mask = cap - 1, idx = gb_mix64((uint64_t)v) & mask;
        uint32_t g;
        for (;;) {
            gb_kslot *s = &slots[idx];
            if (s->g == GB_EMPTY) {
                if ((rc = gb_new_group(G, i, &g, e)) != MR_OK) goto done;
                s->k = (uint64_t)v;
                s->g = g;
                if (gb_table_full(++used, cap) && (rc = gb_kslot_grow(&slots, &cap, 0, e)) != MR_OK) goto done;
                break;
            }
            if (s->k == (uint64_t)v) {
                g = s->g;
                break;
            }
            idx = (idx + 1) & mask;
        }
        G->gid[i] = g;
    }
done:
    free(slots);
    return rc;
}

/* Any key combination: the shared row hash and row equality from ops. */
static mr_code gb_assign_generic(const frame_col *const *kc, size_t nk, gb_groups *G, mr_err *e)
{
    size_t cap = gb_initial_slots(G->n), used = 0;
    gb_kslot *slots = malloc(cap * sizeof *slots);
    if (!slots) return mr_fail(e, MR_ENOMEM, "group_by: out of memory");
    for (size_t i = 0; i < cap; i++) slots[i].g = GB_EMPTY;
    mr_code rc = MR_OK;
    for (size_t i = 0; i < G->n; i++) {
        uint64_t h = gb_mix64(ops_hash_row(kc, nk, i));
        size_t mask = cap - 1, idx = h & mask;
        uint32_t g;
        for (;;) {
            gb_kslot *s = &slots[idx];
            if (s->g == GB_EMPTY) {
                if ((rc = gb_new_group(G, i, &g, e)) != MR_OK) goto done;
                s->k = h;
                s->g = g;
                if (gb_table_full(++used, cap) && (rc = gb_kslot_grow(&slots, &cap, 1, e)) != MR_OK) goto done;
                break;
            }
            if (s->k == h && ops_rows_equal(kc, i, kc, G->first_row[s->g], nk)) {
                g = s->g;
                break;
            }
            idx = (idx + 1) & mask;
        }
        G->gid[i] = g;
    }
done:
    free(slots);
    return rc;
}

static void gb_groups_free(gb_groups *G)
{
    frame_buf_free(G->gid, (G->n ? G->n : 1) * sizeof *G->gid);
    free(G->first_row);
    memset(G, 0, sizeof *G);
}

static mr_code gb_assign(const frame_col *const *kc, size_t nk, size_t n, gb_groups *G, mr_err *e)
{
    memset(G, 0, sizeof *G);
    G->n = n;
    if (n > 0 && !(G->gid = frame_buf_alloc(n * sizeof *G->gid)))
        return mr_fail(e, MR_ENOMEM, "group_by: out of memory for %zu rows", n);
    if (nk == 0) {
        if (n > 0) memset(G->gid, 0, n * sizeof *G->gid);
        uint32_t g;
        return gb_new_group(G, 0, &g, e);   /* one group even for no rows */
    }
    if (nk == 1 && kc[0]->type == FRAME_STR) return gb_assign_str(kc[0], G, e);
    if (nk == 1 && kc[0]->type == FRAME_I64) return gb_assign_i64(kc[0], G, e);
    return gb_assign_generic(kc, nk, G, e);
}

/* ---------------------------------------------------------------- quantiles */

static void gb_insertion_sort(double *v, ptrdiff_t lo, ptrdiff_t hi)
{
    for (ptrdiff_t i = lo + 1; i <= hi; i++) {
        double x = v[i];
        ptrdiff_t j = i - 1;
        while (j >= lo && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

static int gb_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline void gb_swap(double *a, double *b)
{
    double t = *a;
    *a = *b;
    *b = t;
}

/* Floyd-Rivest selection: recursing on a small sample brackets the k-th element with two
 * pivots so tightly that each element is compared about once (n + min(k, n-k) + o(n)
 * comparisons, against ~3n for median-of-3 quickselect). A round budget guards against
 * adversarial inputs: when exhausted, the rest of the range is sorted (O(n log n)).
 * Afterwards v[k] is the k-th smallest and v[<k] <= v[k] <= v[>k]. */
static void gb_select_range(double *v, ptrdiff_t left, ptrdiff_t right, ptrdiff_t k, int budget)
{
    while (right > left) {
        if (right - left < 16) {
            gb_insertion_sort(v, left, right);
            return;
        }
        if (budget-- <= 0) {
            qsort(v + left, (size_t)(right - left + 1), sizeof *v, gb_cmp_double);
            return;
        }
        if (right - left > 600) {
            double n = (double)(right - left + 1), i = (double)(k - left + 1);
            double z = log(n), s = 0.5 * exp(2 * z / 3);
            double sd = 0.5 * sqrt(z * s * (n - s) / n) * (i - n / 2 < 0 ? -1 : 1);
            ptrdiff_t nl = (ptrdiff_t)((double)k - i * s / n + sd);
            ptrdiff_t nr = (ptrdiff_t)((double)k + (n - i) * s / n + sd);
            if (nl < left) nl = left;
            if (nr > right) nr = right;
            gb_select_range(v, nl, nr, k, budget);
        }
        double t = v[k];
        ptrdiff_t i = left, j = right;
        gb_swap(&v[left], &v[k]);
        if (v[right] > t) gb_swap(&v[right], &v[left]);
        while (i < j) {
            gb_swap(&v[i], &v[j]);
            i++;
            j--;
            while (v[i] < t) i++;
            while (v[j] > t) j--;
        }
        if (v[left] == t) {
            gb_swap(&v[left], &v[j]);
        } else {
            j++;
            gb_swap(&v[j], &v[right]);
        }
        if (j <= k) left = j + 1;
        if (k <= j) right = j - 1;
    }
}

static void gb_select(double *v, size_t n, size_t k)
{
    int budget = 8;
    for (size_t m = n; m > 1; m >>= 1) budget += 2;
    gb_select_range(v, 0, (ptrdiff_t)n - 1, (ptrdiff_t)k, budget);
}

double groupby_quantile(double *v, size_t n, double q)
{
    if (n == 0) return NAN;
    if (!(q > 0)) q = 0;   /* also maps NaN q to 0 */
    if (q > 1) q = 1;
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo >= n) lo = n - 1;
    double t = h - (double)lo;
    gb_select(v, n, lo);
    double a = v[lo];
    if (t <= 0 || lo + 1 >= n) return a;
    /* After selection everything past lo is >= v[lo]; the next order statistic is the
     * minimum of that tail. */
    double b = v[lo + 1];
    for (size_t i = lo + 2; i < n; i++)
        if (v[i] < b) b = v[i];
    /* numpy's _lerp: the two-sided form keeps the result monotone in q. */
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

/* ---------------------------------------------------------------- aggregates */

typedef struct gb_ctx {
    const gb_groups *G;
    const char *fname;      /* for messages */
} gb_ctx;

static frame_col *gb_col_new(const char *name, frame_type t, size_t rows, mr_err *e)
{
    frame_col *c = frame_col_create(name, t, rows);
    if (!c) mr_fail(e, MR_ENOMEM, "group_by: out of memory for column '%s'", name);
    return c;
}

static frame_col *gb_fail_col(frame_col *c, mr_err *e, const char *name)
{
    frame_col_free(c);
    mr_fail(e, MR_ENOMEM, "group_by: out of memory building column '%s'", name);
    return NULL;
}

/* Non-null value count per group (all rows when c is NULL). */
static uint64_t *gb_counts(const gb_groups *G, const frame_col *c, int skip_nan, mr_err *e)
{
    uint64_t *cnt = calloc(G->ng ? G->ng : 1, sizeof *cnt);
    if (!cnt) {
        mr_fail(e, MR_ENOMEM, "group_by: out of memory");
        return NULL;
    }
    const uint32_t *gid = G->gid;
    if (!c || (!c->nulls && !(skip_nan && c->type == FRAME_F64))) {
        for (size_t i = 0; i < G->n; i++) cnt[gid[i]]++;
        return cnt;
    }
    for (size_t i = 0; i < G->n; i++) {
        if (c->nulls && c->nulls[i]) continue;
        if (skip_nan && c->type == FRAME_F64 && isnan(c->v.f64[i])) continue;
        cnt[gid[i]]++;
    }
    return cnt;
}

static frame_col *gb_agg_count(const gb_groups *G, const frame_col *c, const char *name, mr_err *e)
{
    uint64_t *cnt = gb_counts(G, c, 0, e);
    if (!cnt) return NULL;
    frame_col *out = gb_col_new(name, FRAME_I64, G->ng, e);
    for (size_t g = 0; out && g < G->ng; g++)
        if (frame_col_push_i64(out, (int64_t)cnt[g]) != MR_OK) out = gb_fail_col(out, e, name);
    free(cnt);
    return out;
}

/* Sum of an int64 column of counts (merging COUNT partials): nulls count as 0. */
static frame_col *gb_agg_sum_counts(const gb_groups *G, const frame_col *c, const char *name,
                                    mr_err *e)
{
    int64_t *s = calloc(G->ng ? G->ng : 1, sizeof *s);
    if (!s) {
        mr_fail(e, MR_ENOMEM, "group_by: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < G->n; i++)
        if (!frame_col_is_null(c, i)) s[G->gid[i]] += (int64_t)gb_num(c, i);
    frame_col *out = gb_col_new(name, FRAME_I64, G->ng, e);
    for (size_t g = 0; out && g < G->ng; g++)
        if (frame_col_push_i64(out, s[g]) != MR_OK) out = gb_fail_col(out, e, name);
    free(s);
    return out;
}

static frame_col *gb_agg_sum(const gb_groups *G, const frame_col *c, const char *name, mr_err *e)
{
    size_t ng = G->ng ? G->ng : 1;
    const uint32_t *gid = G->gid;
    uint64_t *cnt = calloc(ng, sizeof *cnt);
    frame_col *out = NULL;
    if (!cnt) goto oom;
    if (c->type == FRAME_F64) {
        double *s = calloc(ng, sizeof *s);
        if (!s) goto oom;
        const double *v = c->v.f64;
        if (!c->nulls) {
            for (size_t i = 0; i < G->n; i++) {
                s[gid[i]] += v[i];
                cnt[gid[i]]++;
            }
        } else {
            for (size_t i = 0; i < G->n; i++) {
                if (c->nulls[i]) continue;
                s[gid[i]] += v[i];
                cnt[gid[i]]++;
            }
        }
        out = gb_col_new(name, FRAME_F64, G->ng, e);
        for (size_t g = 0; out && g < G->ng; g++) {
            mr_code rc = cnt[g] ? frame_col_push_f64(out, s[g]) : frame_col_push_null(out);
            if (rc != MR_OK) out = gb_fail_col(out, e, name);
        }
        free(s);
    } else {
        /* Unsigned so overflow wraps instead of being undefined. */
        uint64_t *s = calloc(ng, sizeof *s);
        if (!s) goto oom;
        for (size_t i = 0; i < G->n; i++) {
            if (c->nulls && c->nulls[i]) continue;
            s[gid[i]] += c->type == FRAME_I64 ? (uint64_t)c->v.i64[i] : (uint64_t)c->v.b[i];
            cnt[gid[i]]++;
        }
        out = gb_col_new(name, FRAME_I64, G->ng, e);
        for (size_t g = 0; out && g < G->ng; g++) {
            mr_code rc = cnt[g] ? frame_col_push_i64(out, (int64_t)s[g]) : frame_col_push_null(out);
            if (rc != MR_OK) out = gb_fail_col(out, e, name);
        }
        free(s);
    }
    free(cnt);
    return out;
oom:
    free(cnt);
    mr_fail(e, MR_ENOMEM, "group_by: out of memory computing '%s'", name);
    return NULL;
}

/* Mean from per-group sums and counts; in merge mode sums and counts come from the
 * partial columns. */
static frame_col *gb_agg_mean(const gb_groups *G, const frame_col *vals, const frame_col *counts,
                              const char *name, mr_err *e)
{
    size_t ng = G->ng ? G->ng : 1;
    double *s = calloc(ng, sizeof *s);
    uint64_t *cnt = calloc(ng, sizeof *cnt);
    frame_col *out = NULL;
    if (!s || !cnt) {
        mr_fail(e, MR_ENOMEM, "group_by: out of memory computing '%s'", name);
        goto done;
    }
    for (size_t i = 0; i < G->n; i++) {
        if (frame_col_is_null(vals, i)) continue;
        uint32_t g = G->gid[i];
        s[g] += gb_num(vals, i);
        if (!counts)
            cnt[g]++;
        else if (!frame_col_is_null(counts, i))
            cnt[g] += (uint64_t)gb_num(counts, i);
    }
    out = gb_col_new(name, FRAME_F64, G->ng, e);
    for (size_t g = 0; out && g < G->ng; g++) {
        mr_code rc = cnt[g] ? frame_col_push_f64(out, s[g] / (double)cnt[g])
                            : frame_col_push_null(out);
        if (rc != MR_OK) out = gb_fail_col(out, e, name);
    }
done:
    free(s);
    free(cnt);
    return out;
}

static int gb_str_cmp(const frame_col *c, size_t i, size_t j)
{
    size_t la, lb;
    const char *a = frame_col_str(c, i, &la), *b = frame_col_str(c, j, &lb);
    int r = memcmp(a, b, la < lb ? la : lb);
    if (r) return r;
    return (la > lb) - (la < lb);
}

/* Row of the min/max (or first) non-null value per group; SIZE_MAX for none.
 * which: -1 min, +1 max, 0 first. Float NaNs are skipped by min and max. */
static size_t *gb_pick_rows(const gb_groups *G, const frame_col *c, int which, mr_err *e)
{
    size_t *best = malloc((G->ng ? G->ng : 1) * sizeof *best);
    if (!best) {
        mr_fail(e, MR_ENOMEM, "group_by: out of memory");
        return NULL;
    }
    for (size_t g = 0; g < G->ng; g++) best[g] = SIZE_MAX;
    const uint32_t *gid = G->gid;
    for (size_t i = 0; i < G->n; i++) {
        if (c->nulls && c->nulls[i]) continue;
        size_t *b = &best[gid[i]];
        if (*b == SIZE_MAX) {
            if (which == 0 || c->type != FRAME_F64 || !isnan(c->v.f64[i])) *b = i;
            continue;
        }
        if (which == 0) continue;
        int cmp;
        switch (c->type) {
        case FRAME_I64: cmp = (c->v.i64[i] > c->v.i64[*b]) - (c->v.i64[i] < c->v.i64[*b]); break;
        case FRAME_F64: cmp = (c->v.f64[i] > c->v.f64[*b]) - (c->v.f64[i] < c->v.f64[*b]); break;
        case FRAME_BOOL: cmp = (int)c->v.b[i] - (int)c->v.b[*b]; break;
        default: cmp = gb_str_cmp(c, i, *b); break;
        }
        if (cmp * which > 0) *b = i;   /* ties keep the earliest row */
    }
    return best;
}

static frame_col *gb_gather_rows(const frame_col *c, const size_t *rows, size_t ng,
                                 const char *name, mr_err *e)
{
    frame_col *out = gb_col_new(name, c->type, ng, e);
    for (size_t g = 0; out && g < ng; g++) {
        mr_code rc = rows[g] == SIZE_MAX ? frame_col_push_null(out)
                                         : frame_col_push_from(out, c, rows[g]);
        if (rc != MR_OK) out = gb_fail_col(out, e, name);
    }
    return out;
}

static frame_col *gb_agg_pick(const gb_groups *G, const frame_col *c, int which,
                              const char *name, mr_err *e)
{
    size_t *rows = gb_pick_rows(G, c, which, e);
    if (!rows) return NULL;
    frame_col *out = gb_gather_rows(c, rows, G->ng, name, e);
    free(rows);
    return out;
}

/* Values bucketed by group: group g's non-null, non-NaN values are
 * vals[start[g] .. start[g+1]). One counting sort, no per-group allocation. */
typedef struct gb_buckets {
    double *vals;        /* frame_buf_alloc'd, nvals (at least 1) entries */
    size_t nvals;
    size_t *start;
} gb_buckets;

static void gb_buckets_free(gb_buckets *b)
{
    frame_buf_free(b->vals, (b->nvals ? b->nvals : 1) * sizeof *b->vals);
    free(b->start);
    b->vals = NULL;
    b->nvals = 0;
    b->start = NULL;
}

static mr_code gb_bucket_values(const gb_groups *G, const frame_col *c, gb_buckets *b, mr_err *e)
{
    size_t ng = G->ng;
    uint64_t *cnt = gb_counts(G, c, 1, e);
    if (!cnt) return e ? e->code : MR_ENOMEM;
    b->start = malloc((ng + 1) * sizeof *b->start);
    size_t *pos = malloc((ng ? ng : 1) * sizeof *pos);
    size_t total = 0;
    if (b->start && pos) {
        for (size_t g = 0; g < ng; g++) {
            b->start[g] = total;
            pos[g] = total;
            total += cnt[g];
        }
        b->start[ng] = total;
        b->nvals = total;
        b->vals = frame_buf_alloc((total ? total : 1) * sizeof *b->vals);
    }
    free(cnt);
    if (!b->start || !pos || !b->vals) {
        free(pos);
        gb_buckets_free(b);
        return mr_fail(e, MR_ENOMEM, "group_by: out of memory bucketing %zu values of '%s'",
                       total, c->name);
    }
    const uint32_t *gid = G->gid;
    if (c->type == FRAME_F64) {
        const double *v = c->v.f64;
        if (!c->nulls) {
            for (size_t i = 0; i < G->n; i++)
                if (!isnan(v[i])) b->vals[pos[gid[i]]++] = v[i];
        } else {
            for (size_t i = 0; i < G->n; i++)
                if (!c->nulls[i] && !isnan(v[i])) b->vals[pos[gid[i]]++] = v[i];
        }
    } else {
        for (size_t i = 0; i < G->n; i++)
            if (!(c->nulls && c->nulls[i])) b->vals[pos[gid[i]]++] = gb_num(c, i);
    }
    free(pos);
    return MR_OK;
}

static frame_col *gb_quantiles_from_buckets(const gb_buckets *b, size_t ng, double q,
                                            const char *name, mr_err *e)
{
    frame_col *out = gb_col_new(name, FRAME_F64, ng, e);
    for (size_t g = 0; out && g < ng; g++) {
        size_t len = b->start[g + 1] - b->start[g];
        mr_code rc = len ? frame_col_push_f64(out, groupby_quantile(b->vals + b->start[g], len, q))
                         : frame_col_push_null(out);
        if (rc != MR_OK) out = gb_fail_col(out, e, name);
    }
    return out;
}

/* Per-group sketches, created on first value. */
static sketch **gb_sketches_build(const gb_groups *G, const frame_col *c, mr_err *e)
{
    sketch **sk = calloc(G->ng ? G->ng : 1, sizeof *sk);
    if (!sk) {
        mr_fail(e, MR_ENOMEM, "group_by: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < G->n; i++) {
        if (frame_col_is_null(c, i)) continue;
        double x = gb_num(c, i);
        if (isnan(x)) continue;
        sketch **s = &sk[G->gid[i]];
        if (!*s && !(*s = sketch_create(0))) goto oom;
        if (sketch_update(*s, x) != MR_OK) goto oom;
    }
    return sk;
oom:
    for (size_t g = 0; g < G->ng; g++) sketch_free(sk[g]);
    free(sk);
    mr_fail(e, MR_ENOMEM, "group_by: out of memory in approx_quantile of '%s'", c->name);
    return NULL;
}

static void gb_sketches_free(sketch **sk, size_t ng)
{
    if (!sk) return;
    for (size_t g = 0; g < ng; g++) sketch_free(sk[g]);
    free(sk);
}

static frame_col *gb_sketch_quantiles(sketch **sk, size_t ng, double q, const char *name,
                                      mr_err *e)
{
    frame_col *out = gb_col_new(name, FRAME_F64, ng, e);
    for (size_t g = 0; out && g < ng; g++) {
        mr_code rc = sk[g] && sketch_count(sk[g]) ? frame_col_push_f64(out, sketch_quantile(sk[g], q))
                                                  : frame_col_push_null(out);
        if (rc != MR_OK) out = gb_fail_col(out, e, name);
    }
    return out;
}

/* ---- distinct values: one hash set over (group, value) pairs ---- */

static inline uint64_t gb_cell_hash(const frame_col *c, size_t i)
{
    switch (c->type) {
    case FRAME_I64: return gb_mix64((uint64_t)c->v.i64[i]);
    case FRAME_F64: return gb_mix64(gb_f64_bits(c->v.f64[i]));
    case FRAME_BOOL: return gb_mix64(c->v.b[i]);
    default: {
        size_t len;
        const char *p = frame_col_str(c, i, &len);
        return gb_hash_bytes(p, len);
    }
    }
}

static inline int gb_cell_eq(const frame_col *c, size_t i, size_t j)
{
    switch (c->type) {
    case FRAME_I64: return c->v.i64[i] == c->v.i64[j];
    case FRAME_F64: return gb_f64_bits(c->v.f64[i]) == gb_f64_bits(c->v.f64[j]);
    case FRAME_BOOL: return c->v.b[i] == c->v.b[j];
    default: {
        size_t la, lb;
        const char *a = frame_col_str(c, i, &la), *b = frame_col_str(c, j, &lb);
        return la == lb && memcmp(a, b, la) == 0;
    }
    }
}

typedef struct gb_dslot {
    uint64_t h;
    size_t row;   /* SIZE_MAX: empty */
} gb_dslot;

/* Rows holding the first occurrence of each distinct (group, non-null value), in row
 * order; *nout of them. gid gives the rows' groups (length c->len). */
static size_t *gb_distinct_rows(const uint32_t *gid, size_t n, const frame_col *c, size_t *nout,
                                mr_err *e)
{
    size_t cap = 1024, used = 0;
    gb_dslot *slots = malloc(cap * sizeof *slots);
    size_t *rows = malloc(1024 * sizeof *rows), rcap = 1024;
    if (!slots || !rows) goto oom;
    for (size_t i = 0; i < cap; i++) slots[i].row = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (c->nulls && c->nulls[i]) continue;
        uint64_t h = gb_mix64(gb_cell_hash(c, i) ^ ((uint64_t)gid[i] * 0x9E3779B97F4A7C15ull));
        size_t mask = cap - 1, idx = h & mask;
        for (;;) {
            gb_dslot *s = &slots[idx];
            if (s->row == SIZE_MAX) {
                s->h = h;
                s->row = i;
                if (used == rcap) {
                    size_t *nr = realloc(rows, rcap * 2 * sizeof *rows);
                    if (!nr) goto oom;
                    rows = nr;
                    rcap *= 2;
                }
                rows[used++] = i;
                if (used * 2 > cap) {
                    size_t ncap = cap * 2, nmask = ncap - 1;
                    gb_dslot *ns = malloc(ncap * sizeof *ns);
                    if (!ns) goto oom;
                    for (size_t k = 0; k < ncap; k++) ns[k].row = SIZE_MAX;
                    for (size_t k = 0; k < cap; k++) {
                        if (slots[k].row == SIZE_MAX) continue;
                        size_t j = slots[k].h & nmask;
                        while (ns[j].row != SIZE_MAX) j = (j + 1) & nmask;
                        ns[j] = slots[k];
                    }
                    free(slots);
                    slots = ns;
                    cap = ncap;
                }
                break;
            }
            if (s->h == h && gid[s->row] == gid[i] && gb_cell_eq(c, s->row, i)) break;
            idx = (idx + 1) & mask;
        }
    }
    free(slots);
    *nout = used;
    return rows;
oom:
    free(slots);
    free(rows);
    mr_fail(e, MR_ENOMEM, "group_by: out of memory counting distinct values of '%s'", c->name);
    return NULL;
}

static frame_col *gb_agg_count_distinct(const uint32_t *gid, size_t n, size_t ng,
                                        const frame_col *c, const char *name, mr_err *e)
{
    size_t nd;
    size_t *rows = gb_distinct_rows(gid, n, c, &nd, e);
    if (!rows) return NULL;
    int64_t *cnt = calloc(ng ? ng : 1, sizeof *cnt);
    frame_col *out = NULL;
    if (!cnt) {
        mr_fail(e, MR_ENOMEM, "group_by: out of memory");
    } else {
        for (size_t k = 0; k < nd; k++) cnt[gid[rows[k]]]++;
        out = gb_col_new(name, FRAME_I64, ng, e);
        for (size_t g = 0; out && g < ng; g++)
            if (frame_col_push_i64(out, cnt[g]) != MR_OK) out = gb_fail_col(out, e, name);
    }
    free(cnt);
    free(rows);
    return out;
}

/* ---------------------------------------------------------------- partial blobs */

static inline void gb_put_u64(uint8_t *p, uint64_t x)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(x >> (8 * i));
}
static inline uint64_t gb_get_u64(const uint8_t *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x |= (uint64_t)p[i] << (8 * i);
    return x;
}

typedef struct gb_buf {
    uint8_t *p;
    size_t len, cap;
} gb_buf;

static mr_code gb_buf_need(gb_buf *b, size_t more)
{
    if (b->len + more <= b->cap) return MR_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return MR_ENOMEM;
    b->p = p;
    b->cap = cap;
    return MR_OK;
}

/* QUANTILE partial: each group's values as packed LE float64. */
static frame_col *gb_partial_values(const gb_groups *G, const frame_col *c, const char *name,
                                    mr_err *e)
{
    gb_buckets b = {0};
    if (gb_bucket_values(G, c, &b, e) != MR_OK) return NULL;
    frame_col *out = gb_col_new(name, FRAME_STR, G->ng, e);
    /* The buckets are already the packed layout (little-endian host, see imf.h): each
     * group's cell is a copy of its bucket, into an arena sized once. */
    if (out && frame_col_reserve(out, G->ng, 8 * b.start[G->ng]) != MR_OK)
        out = gb_fail_col(out, e, name);
    for (size_t g = 0; out && g < G->ng; g++) {
        size_t len = b.start[g + 1] - b.start[g];
        mr_code rc = len == 0 ? frame_col_push_null(out)
                              : frame_col_push_str(out, (const char *)(b.vals + b.start[g]), 8 * len);
        if (rc != MR_OK) out = gb_fail_col(out, e, name);
    }
    gb_buckets_free(&b);
    return out;
}

/* QUANTILE merge: concatenates each group's packed values, then selects. */
static frame_col *gb_merge_values(const gb_groups *G, const frame_col *c, double q,
                                  const char *name, mr_err *e)
{
    if (c->type != FRAME_STR) {
        mr_fail(e, MR_EFORMAT, "group_by merge: partial column '%s' should be packed values (string), got %s",
                c->name, frame_type_name(c->type));
        return NULL;
    }
    size_t ng = G->ng;
    gb_buckets b = {0};
    b.start = calloc(ng + 1, sizeof *b.start);
    size_t *pos = calloc(ng ? ng : 1, sizeof *pos);
    frame_col *out = NULL;
    if (!b.start || !pos) goto oom;
    for (size_t i = 0; i < G->n; i++) {
        if (frame_col_is_null(c, i)) continue;
        size_t len;
        frame_col_str(c, i, &len);
        if (len % 8) {
            mr_fail(e, MR_EFORMAT, "group_by merge: column '%s' row %zu: %zu bytes is not a whole number of float64 values",
                    c->name, i, len);
            goto fail;
        }
        b.start[G->gid[i] + 1] += len / 8;
    }
    for (size_t g = 0; g < ng; g++) {
        b.start[g + 1] += b.start[g];
        pos[g] = b.start[g];
    }
    b.nvals = ng ? b.start[ng] : 0;
    b.vals = frame_buf_alloc((b.nvals ? b.nvals : 1) * sizeof *b.vals);
    if (!b.vals) goto oom;
    for (size_t i = 0; i < G->n; i++) {
        if (frame_col_is_null(c, i)) continue;
        size_t len;
        const char *p = frame_col_str(c, i, &len);
        /* packed little-endian float64 is the host layout */
        memcpy(b.vals + pos[G->gid[i]], p, len);
        pos[G->gid[i]] += len / 8;
    }
    out = gb_quantiles_from_buckets(&b, ng, q, name, e);
    goto done;
oom:
    mr_fail(e, MR_ENOMEM, "group_by merge: out of memory for '%s'", name);
fail:
    out = NULL;
done:
    free(pos);
    gb_buckets_free(&b);
    return out;
}

static frame_col *gb_partial_sketch(const gb_groups *G, const frame_col *c, const char *name,
                                    mr_err *e)
{
    sketch **sk = gb_sketches_build(G, c, e);
    if (!sk) return NULL;
    gb_buf buf = {0};
    frame_col *out = gb_col_new(name, FRAME_STR, G->ng, e);
    for (size_t g = 0; out && g < G->ng; g++) {
        mr_code rc;
        if (!sk[g]) {
            rc = frame_col_push_null(out);
        } else {
            size_t sz = sketch_serialized_size(sk[g]);
            buf.len = 0;
            rc = gb_buf_need(&buf, sz);
            if (rc == MR_OK) {
                sketch_serialize(sk[g], buf.p);
                rc = frame_col_push_str(out, (const char *)buf.p, sz);
            }
        }
        if (rc != MR_OK) out = gb_fail_col(out, e, name);
    }
    free(buf.p);
    gb_sketches_free(sk, G->ng);
    return out;
}

static frame_col *gb_merge_sketch(const gb_groups *G, const frame_col *c, double q,
                                  const char *name, mr_err *e)
{
    if (c->type != FRAME_STR) {
        mr_fail(e, MR_EFORMAT, "group_by merge: partial column '%s' should hold sketches (string), got %s",
                c->name, frame_type_name(c->type));
        return NULL;
    }
    sketch **sk = calloc(G->ng ? G->ng : 1, sizeof *sk);
    frame_col *out = NULL;
    if (!sk) {
        mr_fail(e, MR_ENOMEM, "group_by merge: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < G->n; i++) {
        if (frame_col_is_null(c, i)) continue;
        size_t len;
        const char *p = frame_col_str(c, i, &len);
        sketch *part = sketch_deserialize(p, len, e);
        if (!part) {
            mr_wrap(e, "group_by merge: column '%s' row %zu: ", c->name, i);
            goto done;
        }
        sketch **dst = &sk[G->gid[i]];
        if (!*dst) {
            *dst = part;
            continue;
        }
        mr_code rc = sketch_merge(*dst, part, e);
        sketch_free(part);
        if (rc != MR_OK) goto done;
    }
    out = gb_sketch_quantiles(sk, G->ng, q, name, e);
done:
    gb_sketches_free(sk, G->ng);
    return out;
}

static frame_col *gb_partial_distinct(const gb_groups *G, const frame_col *c, const char *name,
                                      mr_err *e)
{
    size_t nd;
    size_t *rows = gb_distinct_rows(G->gid, G->n, c, &nd, e);
    if (!rows) return NULL;
    size_t ng = G->ng;
    size_t *start = calloc(ng + 1, sizeof *start), *sorted = malloc((nd ? nd : 1) * sizeof *sorted);
    size_t *pos = malloc((ng ? ng : 1) * sizeof *pos);
    gb_buf buf = {0};
    frame_col *out = NULL;
    if (!start || !sorted || !pos) {
        mr_fail(e, MR_ENOMEM, "group_by: out of memory");
        goto done;
    }
    for (size_t k = 0; k < nd; k++) start[G->gid[rows[k]] + 1]++;
    for (size_t g = 0; g < ng; g++) {
        start[g + 1] += start[g];
        pos[g] = start[g];
    }
    for (size_t k = 0; k < nd; k++) sorted[pos[G->gid[rows[k]]]++] = rows[k];
    uint8_t tag = c->type == FRAME_STR ? 's' : c->type == FRAME_F64 ? 'f' : 'i';
    out = gb_col_new(name, FRAME_STR, ng, e);
    for (size_t g = 0; out && g < ng; g++) {
        mr_code rc = MR_OK;
        if (start[g] == start[g + 1]) {
            rc = frame_col_push_null(out);
        } else {
            buf.len = 0;
            rc = gb_buf_need(&buf, 1);
            if (rc == MR_OK) buf.p[buf.len++] = tag;
            for (size_t k = start[g]; rc == MR_OK && k < start[g + 1]; k++) {
                size_t r = sorted[k];
                if (tag == 's') {
                    size_t len;
                    const char *p = frame_col_str(c, r, &len);
                    if ((rc = gb_buf_need(&buf, 4 + len)) != MR_OK) break;
                    for (int b = 0; b < 4; b++) buf.p[buf.len++] = (uint8_t)(len >> (8 * b));
                    memcpy(buf.p + buf.len, p, len);
                    buf.len += len;
                } else {
                    uint64_t bits;
                    if (tag == 'f') {
                        double d = c->v.f64[r];
                        memcpy(&bits, &d, 8);
                    } else {
                        bits = (uint64_t)(c->type == FRAME_I64 ? c->v.i64[r] : (int64_t)c->v.b[r]);
                    }
                    if ((rc = gb_buf_need(&buf, 8)) != MR_OK) break;
                    gb_put_u64(buf.p + buf.len, bits);
                    buf.len += 8;
                }
            }
            if (rc == MR_OK) rc = frame_col_push_str(out, (const char *)buf.p, buf.len);
        }
        if (rc != MR_OK) out = gb_fail_col(out, e, name);
    }
done:
    free(buf.p);
    free(start);
    free(sorted);
    free(pos);
    free(rows);
    return out;
}

/* COUNT_DISTINCT merge: decodes every partial's values into one temporary column with a
 * parallel group id array, then counts distinct pairs as groupby_run does. */
static frame_col *gb_merge_distinct(const gb_groups *G, const frame_col *c, const char *name,
                                    mr_err *e)
{
    if (c->type != FRAME_STR) {
        mr_fail(e, MR_EFORMAT, "group_by merge: partial column '%s' should hold packed values (string), got %s",
                c->name, frame_type_name(c->type));
        return NULL;
    }
    int seen_s = 0, seen_f = 0, seen_i = 0;
    size_t total = 0;
    for (size_t i = 0; i < G->n; i++) {
        if (frame_col_is_null(c, i)) continue;
        size_t len;
        const uint8_t *p = (const uint8_t *)frame_col_str(c, i, &len);
        if (len == 0 || (p[0] != 's' && p[0] != 'f' && p[0] != 'i') ||
            (p[0] != 's' && (len - 1) % 8)) {
            mr_fail(e, MR_EFORMAT, "group_by merge: column '%s' row %zu: malformed distinct-value list",
                    c->name, i);
            return NULL;
        }
        seen_s |= p[0] == 's';
        seen_f |= p[0] == 'f';
        seen_i |= p[0] == 'i';
        total += p[0] == 's' ? 1 : (len - 1) / 8;   /* strings: counted while decoding */
    }
    if (seen_s && (seen_f || seen_i)) {
        mr_fail(e, MR_EFORMAT, "group_by merge: column '%s' mixes string and number partials", c->name);
        return NULL;
    }
    frame_type t = seen_s ? FRAME_STR : seen_f ? FRAME_F64 : FRAME_I64;
    frame_col *vals = frame_col_create("distinct", t, total);
    size_t gcap = total ? total : 1, nv = 0;
    uint32_t *vgid = malloc(gcap * sizeof *vgid);
    frame_col *out = NULL;
    if (!vals || !vgid) goto oom;
    for (size_t i = 0; i < G->n; i++) {
        if (frame_col_is_null(c, i)) continue;
        size_t len;
        const uint8_t *p = (const uint8_t *)frame_col_str(c, i, &len);
        size_t off = 1;
        while (off < len) {
            mr_code rc;
            if (p[0] == 's') {
                if (off + 4 > len) goto bad;
                size_t sl = (size_t)p[off] | ((size_t)p[off + 1] << 8) | ((size_t)p[off + 2] << 16) |
                            ((size_t)p[off + 3] << 24);
                off += 4;
                if (sl > len - off) goto bad;
                rc = frame_col_push_str(vals, (const char *)p + off, sl);
                off += sl;
            } else {
                uint64_t bits = gb_get_u64(p + off);
                off += 8;
                if (t == FRAME_I64) {
                    rc = frame_col_push_i64(vals, (int64_t)bits);
                } else {
                    double d;
                    if (p[0] == 'f')
                        memcpy(&d, &bits, 8);
                    else
                        d = (double)(int64_t)bits;
                    rc = frame_col_push_f64(vals, d);
                }
            }
            if (rc != MR_OK) goto oom;
            if (nv == gcap) {
                uint32_t *ng2 = realloc(vgid, gcap * 2 * sizeof *vgid);
                if (!ng2) goto oom;
                vgid = ng2;
                gcap *= 2;
            }
            vgid[nv++] = G->gid[i];
        }
        continue;
    bad:
        mr_fail(e, MR_EFORMAT, "group_by merge: column '%s' row %zu: truncated string in distinct-value list",
                c->name, i);
        goto done;
    }
    out = gb_agg_count_distinct(vgid, nv, G->ng, vals, name, e);
    goto done;
oom:
    mr_fail(e, MR_ENOMEM, "group_by merge: out of memory for '%s'", name);
done:
    frame_col_free(vals);
    free(vgid);
    return out;
}

/* ---------------------------------------------------------------- driver */

static const char *gb_out_name(const groupby_agg *a)
{
    if (a->out) return a->out;
    return a->col ? a->col : "count";
}

static int gb_numeric(frame_type t) { return t == FRAME_I64 || t == FRAME_F64 || t == FRAME_BOOL; }

static mr_code gb_check_aggs(const frame *f, const char *const *keys, size_t nkeys,
                             const groupby_agg *aggs, size_t naggs, gb_mode mode, mr_err *e)
{
    for (size_t a = 0; a < naggs; a++) {
        const groupby_agg *ag = &aggs[a];
        const char *name = gb_out_name(ag);
        const char *fn = groupby_fn_name(ag->fn);
        MR_CHECK(strcmp(fn, "?") != 0, e, MR_EINVAL, "group_by: aggregate '%s' has an unknown function (%d)",
                 name, (int)ag->fn);
        for (size_t k = 0; k < nkeys; k++)
            MR_CHECK(strcmp(keys[k], name) != 0, e, MR_EINVAL,
                     "group_by: aggregate output '%s' has the name of a key column", name);
        for (size_t b = 0; b < a; b++)
            MR_CHECK(strcmp(gb_out_name(&aggs[b]), name) != 0, e, MR_EINVAL,
                     "group_by: two aggregates are named '%s'", name);
        if (ag->fn == GROUPBY_QUANTILE || ag->fn == GROUPBY_APPROX_QUANTILE)
            MR_CHECK(ag->q >= 0 && ag->q <= 1, e, MR_EINVAL,
                     "group_by: %s '%s': q = %g is outside [0, 1]", fn, name, ag->q);
        if (mode == GB_MERGE) continue;   /* partial columns are checked when read */
        if (!ag->col) {
            MR_CHECK(ag->fn == GROUPBY_COUNT, e, MR_EINVAL, "group_by: %s '%s' needs an input column",
                     fn, name);
            continue;
        }
        const frame_col *c = frame_col_by_name(f, ag->col);
        MR_CHECK(c != NULL, e, MR_ENOTFOUND, "group_by: %s '%s': no column '%s'", fn, name, ag->col);
        switch (ag->fn) {
        case GROUPBY_SUM:
        case GROUPBY_MEAN:
        case GROUPBY_QUANTILE:
        case GROUPBY_APPROX_QUANTILE:
            MR_CHECK(gb_numeric(c->type), e, MR_EINVAL,
                     "group_by: %s '%s' needs a numeric column, but '%s' is %s", fn, name, ag->col,
                     frame_type_name(c->type));
            break;
        default: break;
        }
    }
    return MR_OK;
}

static const frame_col *gb_partial_col(const frame *f, const char *out, const char *suffix,
                                       mr_err *e)
{
    char nm[1024];
    snprintf(nm, sizeof nm, "%s%s", out, suffix);
    const frame_col *c = frame_col_by_name(f, nm);
    if (!c) mr_fail(e, MR_ENOTFOUND, "group_by merge: partial frame lacks column '%s'", nm);
    return c;
}

static mr_code gb_attach(frame *out, frame_col *c, mr_err *e)
{
    if (!c) return e ? e->code : MR_ENOMEM;
    mr_code rc = frame_attach_col(out, c, e);
    if (rc != MR_OK) frame_col_free(c);
    return rc;
}

/* One output aggregate in run mode; in partial mode this produces the partial column(s). */
static mr_code gb_emit(frame *out, const frame *f, const gb_groups *G, const groupby_agg *ag,
                       gb_mode mode, gb_buckets *cache, const frame_col **cache_col, mr_err *e)
{
    const char *name = gb_out_name(ag);
    const frame_col *c = ag->col ? frame_col_by_name(f, ag->col) : NULL;
    char nm[1024];
    switch (ag->fn) {
    case GROUPBY_COUNT: return gb_attach(out, gb_agg_count(G, c, name, e), e);
    case GROUPBY_SUM: return gb_attach(out, gb_agg_sum(G, c, name, e), e);
    case GROUPBY_MIN: return gb_attach(out, gb_agg_pick(G, c, -1, name, e), e);
    case GROUPBY_MAX: return gb_attach(out, gb_agg_pick(G, c, +1, name, e), e);
    case GROUPBY_FIRST: return gb_attach(out, gb_agg_pick(G, c, 0, name, e), e);
    case GROUPBY_MEAN:
        if (mode == GB_RUN) return gb_attach(out, gb_agg_mean(G, c, NULL, name, e), e);
        snprintf(nm, sizeof nm, "%s.sum", name);
        {
            frame_col *s = gb_agg_sum(G, c, nm, e);
            if (s && s->type != FRAME_F64) {
                /* Partial sums are float64 so partials of int and float inputs concatenate. */
                frame_col *d = gb_col_new(nm, FRAME_F64, G->ng, e);
                for (size_t g = 0; d && g < G->ng; g++) {
                    mr_code rc = frame_col_is_null(s, g) ? frame_col_push_null(d)
                                                         : frame_col_push_f64(d, (double)s->v.i64[g]);
                    if (rc != MR_OK) d = gb_fail_col(d, e, nm);
                }
                frame_col_free(s);
                s = d;
            }
            MR_TRY(gb_attach(out, s, e));
        }
        snprintf(nm, sizeof nm, "%s.count", name);
        return gb_attach(out, gb_agg_count(G, c, nm, e), e);
    case GROUPBY_COUNT_DISTINCT:
        if (mode == GB_RUN) return gb_attach(out, gb_agg_count_distinct(G->gid, G->n, G->ng, c, name, e), e);
        snprintf(nm, sizeof nm, "%s.distinct", name);
        return gb_attach(out, gb_partial_distinct(G, c, nm, e), e);
    case GROUPBY_QUANTILE:
        if (mode == GB_PARTIAL) {
            snprintf(nm, sizeof nm, "%s.values", name);
            return gb_attach(out, gb_partial_values(G, c, nm, e), e);
        }
        /* Selection only permutes within a bucket, so several quantiles of one column
         * share one bucketing. */
        if (*cache_col != c) {
            gb_buckets_free(cache);
            *cache_col = NULL;
            MR_TRY(gb_bucket_values(G, c, cache, e));
            *cache_col = c;
        }
        return gb_attach(out, gb_quantiles_from_buckets(cache, G->ng, ag->q, name, e), e);
    case GROUPBY_APPROX_QUANTILE:
        if (mode == GB_PARTIAL) {
            snprintf(nm, sizeof nm, "%s.sketch", name);
            return gb_attach(out, gb_partial_sketch(G, c, nm, e), e);
        } else {
            sketch **sk = gb_sketches_build(G, c, e);
            if (!sk) return e ? e->code : MR_ENOMEM;
            frame_col *r = gb_sketch_quantiles(sk, G->ng, ag->q, name, e);
            gb_sketches_free(sk, G->ng);
            return gb_attach(out, r, e);
        }
    }
    return mr_fail(e, MR_EINVAL, "group_by: unknown aggregate function");
}

static mr_code gb_emit_merge(frame *out, const frame *f, const gb_groups *G, const groupby_agg *ag,
                             mr_err *e)
{
    const char *name = gb_out_name(ag);
    const frame_col *c, *c2;
    switch (ag->fn) {
    case GROUPBY_COUNT:
        if (!(c = gb_partial_col(f, name, "", e))) return e ? e->code : MR_ENOTFOUND;
        MR_CHECK(gb_numeric(c->type), e, MR_EFORMAT, "group_by merge: count column '%s' is %s",
                 name, frame_type_name(c->type));
        return gb_attach(out, gb_agg_sum_counts(G, c, name, e), e);
    case GROUPBY_SUM:
        if (!(c = gb_partial_col(f, name, "", e))) return e ? e->code : MR_ENOTFOUND;
        MR_CHECK(gb_numeric(c->type), e, MR_EFORMAT, "group_by merge: sum column '%s' is %s",
                 name, frame_type_name(c->type));
        return gb_attach(out, gb_agg_sum(G, c, name, e), e);
    case GROUPBY_MIN:
    case GROUPBY_MAX:
    case GROUPBY_FIRST:
        if (!(c = gb_partial_col(f, name, "", e))) return e ? e->code : MR_ENOTFOUND;
        return gb_attach(out, gb_agg_pick(G, c, ag->fn == GROUPBY_MIN ? -1 : ag->fn == GROUPBY_MAX, name, e), e);
    case GROUPBY_MEAN:
        if (!(c = gb_partial_col(f, name, ".sum", e))) return e ? e->code : MR_ENOTFOUND;
        if (!(c2 = gb_partial_col(f, name, ".count", e))) return e ? e->code : MR_ENOTFOUND;
        MR_CHECK(gb_numeric(c->type) && gb_numeric(c2->type), e, MR_EFORMAT,
                 "group_by merge: mean partial columns of '%s' must be numeric", name);
        return gb_attach(out, gb_agg_mean(G, c, c2, name, e), e);
    case GROUPBY_COUNT_DISTINCT:
        if (!(c = gb_partial_col(f, name, ".distinct", e))) return e ? e->code : MR_ENOTFOUND;
        return gb_attach(out, gb_merge_distinct(G, c, name, e), e);
    case GROUPBY_QUANTILE:
        if (!(c = gb_partial_col(f, name, ".values", e))) return e ? e->code : MR_ENOTFOUND;
        return gb_attach(out, gb_merge_values(G, c, ag->q, name, e), e);
    case GROUPBY_APPROX_QUANTILE:
        if (!(c = gb_partial_col(f, name, ".sketch", e))) return e ? e->code : MR_ENOTFOUND;
        return gb_attach(out, gb_merge_sketch(G, c, ag->q, name, e), e);
    }
    return mr_fail(e, MR_EINVAL, "group_by: unknown aggregate function");
}

static frame *gb_execute(const frame *f, const char *const *keys, size_t nkeys,
                         const groupby_agg *aggs, size_t naggs, gb_mode mode, mr_err *e)
{
    MR_CHECK_NULL(f != NULL, e, MR_EINVAL, "group_by: no frame");
    MR_CHECK_NULL(nkeys <= 64, e, MR_EINVAL, "group_by: %zu key columns (at most 64)", nkeys);
    const frame_col *kc[64];
    for (size_t k = 0; k < nkeys; k++) {
        kc[k] = frame_col_by_name(f, keys[k]);
        MR_CHECK_NULL(kc[k] != NULL, e, MR_ENOTFOUND, "group_by: no key column '%s'", keys[k]);
        for (size_t j = 0; j < k; j++)
            MR_CHECK_NULL(strcmp(keys[j], keys[k]) != 0, e, MR_EINVAL,
                          "group_by: key column '%s' given twice", keys[k]);
    }
    if (gb_check_aggs(f, keys, nkeys, aggs, naggs, mode, e) != MR_OK) return NULL;

    gb_groups G;
    if (gb_assign(kc, nkeys, frame_nrows(f), &G, e) != MR_OK) {
        gb_groups_free(&G);
        return NULL;
    }
    frame *out = frame_create();
    gb_buckets cache = {0};
    const frame_col *cache_col = NULL;
    mr_code rc = out ? MR_OK : mr_fail(e, MR_ENOMEM, "group_by: out of memory");
    for (size_t k = 0; rc == MR_OK && k < nkeys; k++)
        rc = gb_attach(out, gb_gather_rows(kc[k], G.first_row, G.ng, keys[k], e), e);
    for (size_t a = 0; rc == MR_OK && a < naggs; a++)
        rc = mode == GB_MERGE ? gb_emit_merge(out, f, &G, &aggs[a], e)
                              : gb_emit(out, f, &G, &aggs[a], mode, &cache, &cache_col, e);
    gb_buckets_free(&cache);
    gb_groups_free(&G);
    if (rc != MR_OK) {
        frame_free(out);
        return NULL;
    }
    return out;
}

frame *groupby_run(const frame *f, const char *const *keys, size_t nkeys,
                   const groupby_agg *aggs, size_t naggs, mr_err *e)
{
    return gb_execute(f, keys, nkeys, aggs, naggs, GB_RUN, e);
}

frame *groupby_partial(const frame *f, const char *const *keys, size_t nkeys,
                       const groupby_agg *aggs, size_t naggs, mr_err *e)
{
    return gb_execute(f, keys, nkeys, aggs, naggs, GB_PARTIAL, e);
}

frame *groupby_merge(const frame *partials, const char *const *keys, size_t nkeys,
                     const groupby_agg *aggs, size_t naggs, mr_err *e)
{
    return gb_execute(partials, keys, nkeys, aggs, naggs, GB_MERGE, e);
}

static const struct {
    const char *name;
    groupby_fn fn;
} gb_fn_names[] = {
    {"count", GROUPBY_COUNT},
    {"count_distinct", GROUPBY_COUNT_DISTINCT},
    {"sum", GROUPBY_SUM},
    {"mean", GROUPBY_MEAN},
    {"avg", GROUPBY_MEAN},
    {"min", GROUPBY_MIN},
    {"max", GROUPBY_MAX},
    {"first", GROUPBY_FIRST},
    {"quantile", GROUPBY_QUANTILE},
    {"percentile", GROUPBY_QUANTILE},
    {"approx_quantile", GROUPBY_APPROX_QUANTILE},
    {"approx_percentile", GROUPBY_APPROX_QUANTILE},
};

int groupby_fn_parse(const char *name, groupby_fn *out)
{
    for (size_t i = 0; i < sizeof gb_fn_names / sizeof gb_fn_names[0]; i++) {
        if (strcmp(name, gb_fn_names[i].name) == 0) {
            *out = gb_fn_names[i].fn;
            return 0;
        }
    }
    return -1;
}

const char *groupby_fn_name(groupby_fn fn)
{
    for (size_t i = 0; i < sizeof gb_fn_names / sizeof gb_fn_names[0]; i++)
        if (gb_fn_names[i].fn == fn) return gb_fn_names[i].name;
    return "?";
}
