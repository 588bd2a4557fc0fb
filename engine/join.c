#include "join.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* The build side's rows grouped by hash bucket: the entries of bucket b are
 * ent[start[b] .. start[b+1]), in input order (a stable counting sort). A probe reads one
 * pair of offsets and then contiguous entries, instead of chasing a chain across three
 * arrays, so matches come out in the build side's order without sorting.
 * Key equality and hashing are ops_hash_rows / ops_rows_equal, which compare int64,
 * float64 and bool by value, so an int64 key joins a float64 key. */

#define JOIN_NONE OPS_NO_ROW
#define JOIN_MAX_KEYS 64
/* Rows hashed at a time on the probe side. */
#define JOIN_BLOCK 4096

/* One build row in bucket order: its key (a single int64 key on both sides) or its hash
 * (any other key), beside the row, so a probe touches one cache line per candidate. */
typedef struct join_entry {
    uint64_t tag;
    size_t row;
} join_entry;

typedef struct join_table {
    size_t *start;       /* mask + 2 entries */
    join_entry *ent;
    int int_key;
    size_t mask;
} join_table;

typedef struct join_pairs {
    size_t *l, *r;
    size_t n, cap;
} join_pairs;

static int join_has_null_key(const frame_col *const *k, size_t nk, size_t row)
{
    for (size_t i = 0; i < nk; i++)
        if (frame_col_is_null(k[i], row)) return 1;
    return 0;
}

static void join_table_free(join_table *t)
{
    free(t->start);
    free(t->ent);
}

static mr_code join_build(join_table *t, const frame_col *const *bk, size_t nk, size_t nb,
                          int int_key, mr_err *e)
{
    size_t cap = 16;
    while (cap < nb) cap *= 2;
    t->mask = cap - 1;
    t->int_key = int_key;
    uint64_t *h = malloc((nb ? nb : 1) * sizeof *h);
    t->start = calloc(cap + 2, sizeof *t->start);
    t->ent = malloc((nb ? nb : 1) * sizeof *t->ent);
    if (!h || !t->start || !t->ent) {
        free(h);
        return mr_fail(e, MR_ENOMEM, "join: out of memory building a table of %zu rows", nb);
    }
    ops_hash_rows(bk, nk, 0, nb, h);
    /* count per bucket (offset by 2, so after the prefix sum start[b + 1] is where bucket
     * b begins, and the fill below moves it to where bucket b ends) */
    for (size_t r = 0; r < nb; r++)
        if (!join_has_null_key(bk, nk, r)) t->start[(h[r] & t->mask) + 2]++;   /* nulls never match */
    for (size_t b = 2; b < cap + 2; b++) t->start[b] += t->start[b - 1];
    for (size_t r = 0; r < nb; r++) {
        if (join_has_null_key(bk, nk, r)) continue;
        join_entry *en = &t->ent[t->start[(h[r] & t->mask) + 1]++];
        en->tag = int_key ? (uint64_t)bk[0]->v.i64[r] : h[r];
        en->row = r;
    }
    free(h);
    return MR_OK;
}

static mr_code join_pairs_grow(join_pairs *p, size_t want, mr_err *e)
{
    size_t cap = p->cap ? p->cap * 2 : 1024;
    if (cap < want) cap = want;
    size_t *nl = realloc(p->l, cap * sizeof *nl);
    if (!nl) return mr_fail(e, MR_ENOMEM, "join: out of memory for %zu output rows", cap);
    p->l = nl;
    size_t *nr = realloc(p->r, cap * sizeof *nr);
    if (!nr) return mr_fail(e, MR_ENOMEM, "join: out of memory for %zu output rows", cap);
    p->r = nr;
    p->cap = cap;
    return MR_OK;
}

static inline mr_code join_pairs_push(join_pairs *p, size_t l, size_t r, mr_err *e)
{
    if (p->n == p->cap) MR_TRY(join_pairs_grow(p, 0, e));
    p->l[p->n] = l;
    p->r[p->n] = r;
    p->n++;
    return MR_OK;
}

/* Probes every row of the probe side; pairs come out as (build row, probe row) in probe
 * order. keep_unmatched adds (JOIN_NONE, probe row) for probe rows without a match.
 * Hashes are computed a block at a time and each row's bucket is prefetched a few rows
 * ahead: the table is far larger than the caches, and a probe is mostly waiting on it. */
static mr_code join_probe(const join_table *t, const frame_col *const *bk,
                          const frame_col *const *pk, size_t nk, size_t np, int keep_unmatched,
                          join_pairs *out_build, mr_err *e)
{
    enum { AHEAD = 8 };
    uint64_t h[JOIN_BLOCK];
    const int64_t *pkey = t->int_key ? pk[0]->v.i64 : NULL;
    /* most joins find at most one match per probe row: size the pairs for that at once */
    if (out_build->cap < np) MR_TRY(join_pairs_grow(out_build, np, e));
    for (size_t base = 0; base < np; base += JOIN_BLOCK) {
        size_t n = np - base < JOIN_BLOCK ? np - base : JOIN_BLOCK;
        ops_hash_rows(pk, nk, base, n, h);
        for (size_t k = 0; k < n && k < AHEAD; k++) __builtin_prefetch(&t->start[h[k] & t->mask]);
        for (size_t k = 0; k < n; k++) {
            if (k + AHEAD < n) {
                const size_t *sa = &t->start[h[k + AHEAD] & t->mask];
                __builtin_prefetch(sa);
                if (k + AHEAD / 2 < n) __builtin_prefetch(&t->ent[t->start[h[k + AHEAD / 2] & t->mask]]);
            }
            size_t i = base + k;
            int matched = 0;
            if (!join_has_null_key(pk, nk, i)) {
                size_t b = h[k] & t->mask, lo = t->start[b], hi = t->start[b + 1];
                for (size_t at = lo; at < hi; at++) {
                    const join_entry *en = &t->ent[at];
                    if (pkey ? en->tag != (uint64_t)pkey[i]
                             : en->tag != h[k] || !ops_rows_equal(pk, i, bk, en->row, nk))
                        continue;
                    MR_TRY(join_pairs_push(out_build, en->row, i, e));
                    matched = 1;
                }
            }
            if (!matched && keep_unmatched) MR_TRY(join_pairs_push(out_build, JOIN_NONE, i, e));
        }
    }
    return MR_OK;
}

/* Stable counting sort of pairs by their left row, restoring left order when the left
 * side was the build side (pairs were produced in right order). */
static mr_code join_sort_by_left(join_pairs *p, size_t nleft, mr_err *e)
{
    size_t *start = calloc(nleft + 1, sizeof *start);
    size_t *nl = malloc((p->n ? p->n : 1) * sizeof *nl);
    size_t *nr = malloc((p->n ? p->n : 1) * sizeof *nr);
    if (!start || !nl || !nr) {
        free(start);
        free(nl);
        free(nr);
        return mr_fail(e, MR_ENOMEM, "join: out of memory ordering %zu output rows", p->n);
    }
    for (size_t k = 0; k < p->n; k++) start[p->l[k] + 1]++;
    for (size_t i = 0; i < nleft; i++) start[i + 1] += start[i];
    for (size_t k = 0; k < p->n; k++) {
        size_t d = start[p->l[k]]++;
        nl[d] = p->l[k];
        nr[d] = p->r[k];
    }
    free(start);
    free(p->l);
    free(p->r);
    p->l = nl;
    p->r = nr;
    p->cap = p->n ? p->n : 1;
    return MR_OK;
}

static mr_code join_gather(frame *out, const frame_col *src, const char *name, const size_t *rows,
                           size_t n, mr_err *e)
{
    frame_col *c = ops_take_col(src, rows, n);
    if (!c || frame_col_rename(c, name) != MR_OK) {
        frame_col_free(c);
        return mr_fail(e, MR_ENOMEM, "join: out of memory for column '%s'", name);
    }
    mr_code rc = frame_attach_col(out, c, e);
    if (rc != MR_OK) frame_col_free(c);
    return rc;
}

static int join_is_key(const char *const *keys, size_t nk, const char *name)
{
    for (size_t k = 0; k < nk; k++)
        if (strcmp(keys[k], name) == 0) return 1;
    return 0;
}

static mr_code join_emit(frame *out, const frame *left, const frame *right,
                         const char *const *rkeys, size_t nk, const join_pairs *p, mr_err *e)
{
    for (size_t c = 0; c < frame_ncols(left); c++) {
        const frame_col *src = frame_col_at(left, c);
        MR_TRY(join_gather(out, src, src->name, p->l, p->n, e));
    }
    for (size_t c = 0; c < frame_ncols(right); c++) {
        const frame_col *src = frame_col_at(right, c);
        if (join_is_key(rkeys, nk, src->name)) continue;
        char name[1024];
        snprintf(name, sizeof name, "%s", src->name);
        /* Repeat the suffix until unique, so "x_right" already on the left still works. */
        while (frame_col_by_name(out, name) || frame_col_by_name(left, name)) {
            size_t len = strlen(name);
            MR_CHECK(len + 7 < sizeof name, e, MR_EINVAL, "join: column name '%s' too long",
                     src->name);
            memcpy(name + len, "_right", 7);
        }
        MR_TRY(join_gather(out, src, name, p->r, p->n, e));
    }
    return MR_OK;
}

static mr_code join_resolve(const frame *f, const char *side, const char *const *keys, size_t nk,
                            const frame_col **out, mr_err *e)
{
    for (size_t k = 0; k < nk; k++) {
        out[k] = frame_col_by_name(f, keys[k]);
        MR_CHECK(out[k] != NULL, e, MR_ENOTFOUND, "join: the %s frame has no key column '%s'", side,
                 keys[k]);
    }
    return MR_OK;
}

frame *join_run(const frame *left, const frame *right, const char *const *lkeys,
                const char *const *rkeys, size_t nkeys, join_kind kind, mr_err *e)
{
    MR_CHECK_NULL(left && right, e, MR_EINVAL, "join: missing frame");
    MR_CHECK_NULL(nkeys >= 1 && nkeys <= JOIN_MAX_KEYS, e, MR_EINVAL,
                  "join: %zu key columns (1 to %d)", nkeys, JOIN_MAX_KEYS);
    MR_CHECK_NULL(kind == JOIN_INNER || kind == JOIN_LEFT, e, MR_EINVAL, "join: unknown kind %d",
                  (int)kind);
    const frame_col *lk[JOIN_MAX_KEYS], *rk[JOIN_MAX_KEYS];
    if (join_resolve(left, "left", lkeys, nkeys, lk, e) != MR_OK) return NULL;
    if (join_resolve(right, "right", rkeys, nkeys, rk, e) != MR_OK) return NULL;
    for (size_t k = 0; k < nkeys; k++) {
        int ls = lk[k]->type == FRAME_STR, rs = rk[k]->type == FRAME_STR;
        MR_CHECK_NULL(ls == rs, e, MR_EINVAL,
                      "join: key '%s' is %s on the left but '%s' is %s on the right", lkeys[k],
                      frame_type_name(lk[k]->type), rkeys[k], frame_type_name(rk[k]->type));
    }
    size_t nl = frame_nrows(left), nr = frame_nrows(right);
    int build_left = kind == JOIN_INNER && nl < nr;
    int int_key = nkeys == 1 && lk[0]->type == FRAME_I64 && rk[0]->type == FRAME_I64;
    join_table t = {0};
    join_pairs p = {0};
    frame *out = NULL;
    mr_code rc;
    if (build_left) {
        rc = join_build(&t, lk, nkeys, nl, int_key, e);
        if (rc == MR_OK) rc = join_probe(&t, lk, rk, nkeys, nr, 0, &p, e);
        if (rc == MR_OK) rc = join_sort_by_left(&p, nl, e);
    } else {
        /* Probe with the left side: pairs come out as (right, left); swap the roles. */
        join_pairs q = {0};
        rc = join_build(&t, rk, nkeys, nr, int_key, e);
        if (rc == MR_OK) rc = join_probe(&t, rk, lk, nkeys, nl, kind == JOIN_LEFT, &q, e);
        p.l = q.r;
        p.r = q.l;
        p.n = q.n;
        p.cap = q.cap;
    }
    join_table_free(&t);
    if (rc == MR_OK && !(out = frame_create())) rc = mr_fail(e, MR_ENOMEM, "join: out of memory");
    if (rc == MR_OK) rc = join_emit(out, left, right, rkeys, nkeys, &p, e);
    free(p.l);
    free(p.r);
    if (rc != MR_OK) {
        frame_free(out);
        return NULL;
    }
    return out;
}
