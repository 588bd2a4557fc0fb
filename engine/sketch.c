#include "sketch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SKETCH_MAX_LEVELS 61   /* weights 2^h stay exact in a double and a uint64 */
#define SKETCH_MIN_CAP 8
#define SKETCH_MAGIC "LMK1"
#define SKETCH_HEADER_BYTES (4 + 2 + 1 + 1 + 8 + 8 + 8 + 8 + 8 + 8)

typedef struct sketch_level {
    double *v;      /* level 0 unsorted, levels >= 1 sorted ascending */
    uint32_t len, cap;
} sketch_level;

struct sketch {
    int k;
    int nlevels;
    uint64_t n;
    uint64_t rng;
    double min, max;
    double hard_err;   /* sum of 2^h over compactions */
    double var;        /* sum of 4^h over compactions */
    size_t retained;
    size_t total_cap;                  /* sum of cap[] over the live levels */
    uint32_t cap[SKETCH_MAX_LEVELS];   /* cached: pow() per update would dominate */
    sketch_level lv[SKETCH_MAX_LEVELS];
};

static uint64_t sketch_next_rand(sketch *s)
{
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s->rng = x;
    return x;
}

/* Capacity of level h: k at the top, shrinking by 2/3 per level downwards. */
static void sketch_set_levels(sketch *s, int nlevels)
{
    s->nlevels = nlevels;
    s->total_cap = 0;
    for (int h = 0; h < nlevels; h++) {
        double c = (double)s->k * pow(2.0 / 3.0, nlevels - 1 - h);
        uint32_t cap = (uint32_t)ceil(c);
        s->cap[h] = cap < SKETCH_MIN_CAP ? SKETCH_MIN_CAP : cap;
        s->total_cap += s->cap[h];
    }
}

static mr_code sketch_level_reserve(sketch_level *l, size_t need)
{
    if (need <= l->cap) return MR_OK;
    size_t cap = l->cap ? l->cap : 16;
    while (cap < need) cap *= 2;
    double *v = realloc(l->v, cap * sizeof *v);
    if (!v) return MR_ENOMEM;
    l->v = v;
    l->cap = (uint32_t)cap;
    return MR_OK;
}

sketch *sketch_create(int k)
{
    sketch *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (k <= 0) k = SKETCH_DEFAULT_K;
    if (k < SKETCH_MIN_K) k = SKETCH_MIN_K;
    if (k > SKETCH_MAX_K) k = SKETCH_MAX_K;
    s->k = k;
    sketch_set_levels(s, 1);
    s->rng = 0x9E3779B97F4A7C15ull;
    s->min = NAN;
    s->max = NAN;
    return s;
}

void sketch_free(sketch *s)
{
    if (!s) return;
    for (int h = 0; h < SKETCH_MAX_LEVELS; h++) free(s->lv[h].v);
    free(s);
}

int sketch_k(const sketch *s) { return s->k; }
uint64_t sketch_count(const sketch *s) { return s->n; }
size_t sketch_retained(const sketch *s) { return s->retained; }
double sketch_min(const sketch *s) { return s->min; }
double sketch_max(const sketch *s) { return s->max; }

static int sketch_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Merges sorted src[0..n) into the sorted level l. */
static mr_code sketch_level_merge_sorted(sketch_level *l, const double *src, size_t n)
{
    if (n == 0) return MR_OK;
    MR_TRY(sketch_level_reserve(l, (size_t)l->len + n));
    /* Merge from the back so no scratch buffer is needed. */
    size_t i = l->len, j = n, o = l->len + n;
    while (j > 0) {
        if (i > 0 && l->v[i - 1] > src[j - 1])
            l->v[--o] = l->v[--i];
        else
            l->v[--o] = src[--j];
    }
    l->len += (uint32_t)n;
    return MR_OK;
}

/* Halves level h into level h+1. The promoted half of a sorted run is every other item
 * from a random offset, which makes each compaction's rank error zero-mean. */
static mr_code sketch_compact(sketch *s, int h)
{
    if (h + 1 >= SKETCH_MAX_LEVELS) return MR_ELIMIT;
    if (h + 1 >= s->nlevels) sketch_set_levels(s, h + 2);
    sketch_level *l = &s->lv[h];
    if (h == 0) qsort(l->v, l->len, sizeof *l->v, sketch_cmp_double);
    uint32_t len = l->len;
    /* An odd item out stays behind (unpromoted), so no weight is invented or lost. */
    uint32_t start = len & 1u;
    uint32_t pairs = (len - start) / 2;
    if (pairs == 0) return MR_OK;
    uint32_t off = (uint32_t)(sketch_next_rand(s) >> 63);
    /* Reuse the upper part of this level in place: promoted items are written densely
     * to the front of the pair region, read in increasing order, so nothing is clobbered. */
    double *pr = l->v + start;
    for (uint32_t i = 0; i < pairs; i++) pr[i] = pr[2 * i + off];
    MR_TRY(sketch_level_merge_sorted(&s->lv[h + 1], pr, pairs));
    l->len = start;
    s->retained -= pairs;
    double w = ldexp(1.0, h);
    s->hard_err += w;
    s->var += w * w;
    return MR_OK;
}

static mr_code sketch_compress(sketch *s)
{
    while (s->retained > s->total_cap) {
        int h = 0;
        while (h < s->nlevels && s->lv[h].len < s->cap[h]) h++;
        if (h == s->nlevels) return MR_OK;   /* cannot happen: some level must be over */
        MR_TRY(sketch_compact(s, h));
    }
    return MR_OK;
}

mr_code sketch_update(sketch *s, double x)
{
    if (isnan(x)) return MR_OK;
    sketch_level *l0 = &s->lv[0];
    if (l0->len == l0->cap) MR_TRY(sketch_level_reserve(l0, (size_t)l0->len + 1));
    l0->v[l0->len++] = x;
    s->retained++;
    if (s->n == 0 || x < s->min) s->min = x;
    if (s->n == 0 || x > s->max) s->max = x;
    s->n++;
    /* Checking the level-0 capacity first keeps the common path free of the cap sum. */
    if (l0->len < s->cap[0]) return MR_OK;
    return sketch_compress(s);
}

mr_code sketch_merge(sketch *dst, const sketch *src, mr_err *e)
{
    if (src->n == 0) return MR_OK;
    for (int h = 0; h < src->nlevels; h++) {
        const sketch_level *sl = &src->lv[h];
        if (sl->len == 0) continue;
        if (h >= dst->nlevels) sketch_set_levels(dst, h + 1);
        sketch_level *dl = &dst->lv[h];
        mr_code rc;
        if (h == 0) {
            rc = sketch_level_reserve(dl, (size_t)dl->len + sl->len);
            if (rc == MR_OK) {
                memcpy(dl->v + dl->len, sl->v, sl->len * sizeof *sl->v);
                dl->len += sl->len;
            }
        } else {
            rc = sketch_level_merge_sorted(dl, sl->v, sl->len);
        }
        if (rc != MR_OK) return mr_fail(e, rc, "sketch merge: out of memory");
        dst->retained += sl->len;
    }
    if (dst->n == 0 || src->min < dst->min) dst->min = src->min;
    if (dst->n == 0 || src->max > dst->max) dst->max = src->max;
    dst->n += src->n;
    dst->hard_err += src->hard_err;
    dst->var += src->var;
    mr_code rc = sketch_compress(dst);
    if (rc != MR_OK) return mr_fail(e, rc, "sketch merge: cannot compact (%s)", mr_code_name(rc));
    return MR_OK;
}

typedef struct sketch_item {
    double v;
    uint64_t w;
} sketch_item;

static int sketch_cmp_item(const void *a, const void *b)
{
    double x = ((const sketch_item *)a)->v, y = ((const sketch_item *)b)->v;
    return (x > y) - (x < y);
}

double sketch_quantile(const sketch *s, double q)
{
    if (s->n == 0) return NAN;
    if (!(q > 0)) return s->min;   /* also catches NaN q */
    if (q >= 1) return s->max;
    sketch_item *it = malloc(s->retained * sizeof *it);
    if (!it) return NAN;
    size_t m = 0;
    uint64_t total = 0;
    for (int h = 0; h < s->nlevels; h++) {
        for (uint32_t i = 0; i < s->lv[h].len; i++) {
            it[m].v = s->lv[h].v[i];
            it[m].w = (uint64_t)1 << h;
            total += it[m].w;
            m++;
        }
    }
    qsort(it, m, sizeof *it, sketch_cmp_item);
    /* Retained weight equals n exactly (compactions keep total weight up to the odd item
     * rule, which keeps it exact), but use the sum to be safe against rounding of q*n. */
    double target = q * (double)total;
    uint64_t cum = 0;
    double out = s->max;
    for (size_t i = 0; i < m; i++) {
        cum += it[i].w;
        if ((double)cum >= target) {
            out = it[i].v;
            break;
        }
    }
    free(it);
    return out;
}

double sketch_rank_error(const sketch *s, double conf)
{
    if (s->n == 0 || s->var == 0) return 0;
    if (!(conf > 0)) conf = 0;
    if (conf >= 1) conf = 1 - 1e-12;
    return sqrt(2.0 * s->var * log(2.0 / (1.0 - conf))) / (double)s->n;
}

double sketch_max_rank_error(const sketch *s)
{
    if (s->n == 0) return 0;
    return s->hard_err / (double)s->n;
}

/* ---- serialization ---- */

static uint8_t *sketch_put_u64(uint8_t *p, uint64_t x)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(x >> (8 * i));
    return p + 8;
}
static uint8_t *sketch_put_f64(uint8_t *p, double d)
{
    uint64_t x;
    memcpy(&x, &d, sizeof x);
    return sketch_put_u64(p, x);
}
static uint64_t sketch_get_u64(const uint8_t *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x |= (uint64_t)p[i] << (8 * i);
    return x;
}
static double sketch_get_f64(const uint8_t *p)
{
    uint64_t x = sketch_get_u64(p);
    double d;
    memcpy(&d, &x, sizeof d);
    return d;
}

size_t sketch_serialized_size(const sketch *s)
{
    return SKETCH_HEADER_BYTES + 4 * (size_t)s->nlevels + 8 * s->retained;
}

size_t sketch_serialize(const sketch *s, void *out)
{
    uint8_t *p = out;
    memcpy(p, SKETCH_MAGIC, 4);
    p += 4;
    p[0] = (uint8_t)(s->k & 0xff);
    p[1] = (uint8_t)(s->k >> 8);
    p[2] = (uint8_t)s->nlevels;
    p[3] = 0;
    p += 4;
    p = sketch_put_u64(p, s->n);
    p = sketch_put_u64(p, s->rng);
    p = sketch_put_f64(p, s->min);
    p = sketch_put_f64(p, s->max);
    p = sketch_put_f64(p, s->hard_err);
    p = sketch_put_f64(p, s->var);
    for (int h = 0; h < s->nlevels; h++) {
        uint32_t len = s->lv[h].len;
        for (int i = 0; i < 4; i++) *p++ = (uint8_t)(len >> (8 * i));
    }
    for (int h = 0; h < s->nlevels; h++)
        for (uint32_t i = 0; i < s->lv[h].len; i++) p = sketch_put_f64(p, s->lv[h].v[i]);
    return (size_t)(p - (uint8_t *)out);
}

sketch *sketch_deserialize(const void *buf, size_t n, mr_err *e)
{
    const uint8_t *p = buf;
    MR_CHECK_NULL(n >= SKETCH_HEADER_BYTES, e, MR_ECORRUPT,
                  "sketch: %zu bytes is shorter than the %d-byte header", n,
                  SKETCH_HEADER_BYTES);
    MR_CHECK_NULL(memcmp(p, SKETCH_MAGIC, 4) == 0, e, MR_ECORRUPT,
                  "sketch: bad magic (not a luamr sketch)");
    int k = p[4] | (p[5] << 8);
    int nlevels = p[6];
    MR_CHECK_NULL(k >= SKETCH_MIN_K && nlevels >= 1 && nlevels <= SKETCH_MAX_LEVELS, e,
                  MR_ECORRUPT, "sketch: bad header (k %d, levels %d)", k, nlevels);
    size_t need = SKETCH_HEADER_BYTES + 4 * (size_t)nlevels;
    MR_CHECK_NULL(n >= need, e, MR_ECORRUPT, "sketch: truncated level table");
    const uint8_t *lens = p + SKETCH_HEADER_BYTES;
    size_t items = 0;
    uint64_t weight = 0;
    for (int h = 0; h < nlevels; h++) {
        uint32_t len = (uint32_t)lens[4 * h] | ((uint32_t)lens[4 * h + 1] << 8) |
                       ((uint32_t)lens[4 * h + 2] << 16) | ((uint32_t)lens[4 * h + 3] << 24);
        items += len;
        weight += (uint64_t)len << h;
    }
    MR_CHECK_NULL(n == need + 8 * items, e, MR_ECORRUPT,
                  "sketch: size %zu does not match %zu items in %d levels", n, items, nlevels);
    uint64_t count = sketch_get_u64(p + 8);
    MR_CHECK_NULL(count == weight, e, MR_ECORRUPT,
                  "sketch: count %llu does not match retained weight %llu",
                  (unsigned long long)count, (unsigned long long)weight);
    sketch *s = sketch_create(k);
    MR_CHECK_NULL(s != NULL, e, MR_ENOMEM, "sketch: out of memory");
    sketch_set_levels(s, nlevels);
    s->n = count;
    s->rng = sketch_get_u64(p + 16);
    if (s->rng == 0) s->rng = 0x9E3779B97F4A7C15ull;   /* xorshift must not be seeded 0 */
    s->min = sketch_get_f64(p + 24);
    s->max = sketch_get_f64(p + 32);
    s->hard_err = sketch_get_f64(p + 40);
    s->var = sketch_get_f64(p + 48);
    const uint8_t *q = p + need;
    for (int h = 0; h < nlevels; h++) {
        uint32_t len = (uint32_t)lens[4 * h] | ((uint32_t)lens[4 * h + 1] << 8) |
                       ((uint32_t)lens[4 * h + 2] << 16) | ((uint32_t)lens[4 * h + 3] << 24);
        if (sketch_level_reserve(&s->lv[h], len) != MR_OK) {
            sketch_free(s);
            mr_fail(e, MR_ENOMEM, "sketch: out of memory");
            return NULL;
        }
        for (uint32_t i = 0; i < len; i++, q += 8) s->lv[h].v[i] = sketch_get_f64(q);
        s->lv[h].len = len;
        /* Upper levels must be sorted for merging; repair rather than trust the bytes. */
        if (h > 0 && len > 1) qsort(s->lv[h].v, len, sizeof(double), sketch_cmp_double);
    }
    s->retained = items;
    return s;
}
