#define _GNU_SOURCE   /* mremap */
#include "frame.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <sys/mman.h>

struct frame {
    frame_col **cols;
    size_t ncols, cap;
};

/* Smallest allocations we make: value arrays and string arenas are never NULL, so
 * pointer arithmetic and memcpy on empty columns stay defined. */
#define FRAME_MIN_ROWS 8
#define FRAME_MIN_ARENA 16

static size_t elem_size(frame_type t)
{
    switch (t) {
    case FRAME_BOOL: return 1;
    default: return 8;
    }
}

const char *frame_type_name(frame_type t)
{
    switch (t) {
    case FRAME_I64: return "int64";
    case FRAME_F64: return "float64";
    case FRAME_BOOL: return "bool";
    case FRAME_STR: return "string";
    }
    return "?";
}

int frame_type_parse(const char *name, frame_type *out)
{
    static const struct { const char *name; frame_type t; } names[] = {
        {"int64", FRAME_I64},   {"int", FRAME_I64},     {"integer", FRAME_I64},
        {"float64", FRAME_F64}, {"float", FRAME_F64},   {"double", FRAME_F64},
        {"number", FRAME_F64},  {"bool", FRAME_BOOL},   {"boolean", FRAME_BOOL},
        {"string", FRAME_STR},  {"str", FRAME_STR},
    };
    if (!name) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            if (out) *out = names[i].t;
            return 0;
        }
    }
    return -1;
}

/* ---- column buffers ----
 * Buffers of FRAME_BIG bytes or more (the columns of a mapper's input and output, a
 * reducer's merged partials) are mapped directly, in whole 2 MB units, and advised to use
 * transparent huge pages: a task touches hundreds of MB of fresh memory, and with 4 KB
 * pages every 4 KB cost a page fault (measured: over a third of the CPU time of a
 * 20M-row group-by went to faults and to realloc copying). Growing a mapping is an
 * mremap, which moves page tables instead of copying bytes. Fresh pages are zeroed by the
 * kernel, which costs as much as touching them, so a few freed mappings (FRAME_CACHE_BYTES
 * at most) are kept for the next buffer: the next task of a worker, or the next
 * intermediate a reducer reads, reuses its predecessor's pages. The rest is unmapped at
 * once. Smaller buffers use malloc. The size of a buffer is always known from the column
 * (cap, arena_cap), so frame_buf_free and frame_buf_realloc are given it. */
#if defined(__SANITIZE_ADDRESS__)
#define FRAME_MALLOC_ONLY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FRAME_MALLOC_ONLY 1
#endif
#endif
#ifdef FRAME_MALLOC_ONLY
/* AddressSanitizer checks only malloc'd buffers (redzones): keep every buffer there. */
void *frame_buf_alloc(size_t n) { return malloc(n ? n : 1); }
void *frame_buf_calloc(size_t n) { return calloc(n ? n : 1, 1); }
void frame_buf_free(void *p, size_t n) { (void)n; free(p); }
void frame_buf_set_cache_limit(size_t bytes) { (void)bytes; }
void *frame_buf_realloc(void *p, size_t old, size_t n)
{
    (void)old;
    return realloc(p, n ? n : 1);
}
#else
#define FRAME_BIG ((size_t)2 << 20)
#define FRAME_HUGE ((size_t)2 << 20)
#define FRAME_CACHE_SLOTS 16
#define FRAME_CACHE_BYTES ((size_t)64 << 20)
/* A task may set more (a share of its budget), up to this. */
#define FRAME_CACHE_MAX ((size_t)1 << 30)
static size_t big_cache_limit = FRAME_CACHE_BYTES;

static size_t big_len(size_t n)
{
    return (n + FRAME_HUGE - 1) & ~(FRAME_HUGE - 1);
}

static struct {
    pthread_mutex_t lock;
    void *p[FRAME_CACHE_SLOTS];
    size_t len[FRAME_CACHE_SLOTS];
    size_t n, bytes;
} big_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A cached mapping of at least len bytes (the smallest such, trimmed to len), or NULL. */
static void *big_cache_take(size_t len)
{
    pthread_mutex_lock(&big_cache.lock);
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < big_cache.n; i++)
        if (big_cache.len[i] >= len && (best == SIZE_MAX || big_cache.len[i] < big_cache.len[best]))
            best = i;
    void *p = NULL;
    size_t have = 0;
    if (best != SIZE_MAX) {
        p = big_cache.p[best];
        have = big_cache.len[best];
        big_cache.bytes -= have;
        big_cache.n--;
        big_cache.p[best] = big_cache.p[big_cache.n];
        big_cache.len[best] = big_cache.len[big_cache.n];
    }
    pthread_mutex_unlock(&big_cache.lock);
    if (p && have > len) munmap((char *)p + len, have - len);
    return p;
}

/* Keeps a freed mapping for reuse when there is room, else unmaps it. */
static void big_cache_put(void *p, size_t len)
{
    pthread_mutex_lock(&big_cache.lock);
    int keep = len <= big_cache_limit;
    if (keep) {
        /* make room by dropping the smallest entries */
        while (big_cache.n > 0 &&
               (big_cache.n == FRAME_CACHE_SLOTS || big_cache.bytes + len > big_cache_limit)) {
            size_t small = 0;
            for (size_t i = 1; i < big_cache.n; i++)
                if (big_cache.len[i] < big_cache.len[small]) small = i;
            if (big_cache.len[small] >= len) {
                keep = 0;
                break;
            }
            munmap(big_cache.p[small], big_cache.len[small]);
            big_cache.bytes -= big_cache.len[small];
            big_cache.n--;
            big_cache.p[small] = big_cache.p[big_cache.n];
            big_cache.len[small] = big_cache.len[big_cache.n];
        }
    }
    if (keep) {
        big_cache.p[big_cache.n] = p;
        big_cache.len[big_cache.n++] = len;
        big_cache.bytes += len;
    }
    pthread_mutex_unlock(&big_cache.lock);
    if (!keep) munmap(p, len);
}

void frame_buf_set_cache_limit(size_t bytes)
{
    pthread_mutex_lock(&big_cache.lock);
    big_cache_limit = bytes < FRAME_CACHE_MAX ? bytes : FRAME_CACHE_MAX;
    while (big_cache.n > 0 && big_cache.bytes > big_cache_limit) {
        big_cache.n--;
        munmap(big_cache.p[big_cache.n], big_cache.len[big_cache.n]);
        big_cache.bytes -= big_cache.len[big_cache.n];
    }
    pthread_mutex_unlock(&big_cache.lock);
}

static void *big_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    if (((uintptr_t)p & (FRAME_HUGE - 1)) != 0) {
        /* Not on a huge-page boundary: map one unit more and trim both ends. */
        munmap(p, len);
        char *q = mmap(NULL, len + FRAME_HUGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED) return NULL;
        size_t head = (FRAME_HUGE - ((uintptr_t)q & (FRAME_HUGE - 1))) & (FRAME_HUGE - 1);
        if (head) munmap(q, head);
        if (FRAME_HUGE - head) munmap(q + head + len, FRAME_HUGE - head);
        p = q + head;
    }
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
}

void *frame_buf_alloc(size_t n)
{
    if (n < FRAME_BIG) return malloc(n ? n : 1);
    void *p = big_cache_take(big_len(n));
    return p ? p : big_map(big_len(n));
}

void *frame_buf_calloc(size_t n)
{
    if (n < FRAME_BIG) return calloc(n ? n : 1, 1);
    void *p = big_cache_take(big_len(n));
    if (p) return memset(p, 0, n);
    return big_map(big_len(n));   /* fresh anonymous pages read as zero */
}

void frame_buf_free(void *p, size_t n)
{
    if (!p) return;
    if (n < FRAME_BIG) free(p);
    else big_cache_put(p, big_len(n));
}

void *frame_buf_realloc(void *p, size_t old, size_t n)
{
    if (!p) return frame_buf_alloc(n);
    if (old < FRAME_BIG && n < FRAME_BIG) return realloc(p, n ? n : 1);
    if (old >= FRAME_BIG && n >= FRAME_BIG) {
        size_t ol = big_len(old), nl = big_len(n);
        if (nl == ol) return p;
        if (nl < ol) {
            munmap((char *)p + nl, ol - nl);
            return p;
        }
        /* In place when the address space after it is free, else move the pages into a
         * fresh huge-page-aligned mapping (no copy either way). */
        void *q = mremap(p, ol, nl, 0);
        if (q != MAP_FAILED) return q;
        void *dst = big_map(nl);
        if (!dst) return NULL;
        q = mremap(p, ol, ol, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
        if (q == MAP_FAILED) {
            munmap(dst, nl);
            return NULL;
        }
        return q;
    }
    /* Crossing the threshold: copy once. */
    void *q = frame_buf_alloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    frame_buf_free(p, old);
    return q;
}
#endif /* FRAME_MALLOC_ONLY */

/* ---- standalone columns ---- */

static size_t values_bytes(frame_type t, size_t cap)
{
    return t == FRAME_STR ? (cap + 1) * sizeof(int64_t) : cap * elem_size(t);
}

frame_col *frame_col_create(const char *name, frame_type t, size_t cap_hint)
{
    if (t < FRAME_I64 || t > FRAME_STR) return NULL;
    frame_col *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->name = strdup(name ? name : "");
    c->type = t;
    c->cap = cap_hint < FRAME_MIN_ROWS ? FRAME_MIN_ROWS : cap_hint;
    if (cap_hint > (SIZE_MAX / 16)) goto fail;
    c->v.i64 = frame_buf_alloc(values_bytes(t, c->cap));
    if (!c->name || !c->v.i64) goto fail;
    if (t == FRAME_STR) {
        c->v.offs[0] = 0;
        c->arena_cap = FRAME_MIN_ARENA;
        c->arena = frame_buf_alloc(c->arena_cap);
        if (!c->arena) goto fail;
    }
    return c;
fail:
    frame_col_free(c);
    return NULL;
}

void frame_col_free(frame_col *c)
{
    if (!c) return;
    free(c->name);
    frame_buf_free(c->v.i64, values_bytes(c->type, c->cap));
    frame_buf_free(c->arena, c->arena_cap);
    frame_buf_free(c->nulls, c->cap);
    free(c);
}

static mr_code grow_rows(frame_col *c, size_t rows)
{
    if (rows <= c->cap) return MR_OK;
    size_t ncap = c->cap * 2;
    if (ncap < rows) ncap = rows;
    if (ncap > SIZE_MAX / 16) return MR_ENOMEM;
    /* Buffer sizes follow from cap, so either both grow or nothing changes: the null
     * bytes go to a new buffer first, copied once the values have grown. */
    uint8_t *nl = NULL;
    if (c->nulls && !(nl = frame_buf_alloc(ncap))) return MR_ENOMEM;
    void *v = frame_buf_realloc(c->v.i64, values_bytes(c->type, c->cap), values_bytes(c->type, ncap));
    if (!v) {
        frame_buf_free(nl, ncap);
        return MR_ENOMEM;
    }
    c->v.i64 = v;
    if (nl) {
        memcpy(nl, c->nulls, c->cap);
        frame_buf_free(c->nulls, c->cap);
        c->nulls = nl;
    }
    c->cap = ncap;
    return MR_OK;
}

static mr_code grow_arena(frame_col *c, size_t bytes)
{
    if (bytes <= c->arena_cap) return MR_OK;
    size_t ncap = c->arena_cap * 2;
    if (ncap < bytes) ncap = bytes;
    char *a = frame_buf_realloc(c->arena, c->arena_cap, ncap);
    if (!a) return MR_ENOMEM;
    c->arena = a;
    c->arena_cap = ncap;
    return MR_OK;
}

mr_code frame_col_reserve(frame_col *c, size_t rows, size_t arena_bytes)
{
    MR_TRY(grow_rows(c, rows));
    if (c->type == FRAME_STR) MR_TRY(grow_arena(c, arena_bytes));
    return MR_OK;
}

mr_code frame_col_rename(frame_col *c, const char *name)
{
    char *n = strdup(name ? name : "");
    if (!n) return MR_ENOMEM;
    free(c->name);
    c->name = n;
    return MR_OK;
}

mr_code frame_col_ensure_nulls(frame_col *c)
{
    if (c->nulls) return MR_OK;
    c->nulls = frame_buf_calloc(c->cap);
    return c->nulls ? MR_OK : MR_ENOMEM;
}

/* Room for one more row; marks it non-null when a null array exists. */
static inline mr_code push_slot(frame_col *c)
{
    if (c->len == c->cap) MR_TRY(grow_rows(c, c->len + 1));
    if (c->nulls) c->nulls[c->len] = 0;
    return MR_OK;
}

mr_code frame_col_push_i64(frame_col *c, int64_t v)
{
    if (c->type == FRAME_F64) return frame_col_push_f64(c, (double)v);
    if (c->type == FRAME_STR) return MR_EINVAL;
    MR_TRY(push_slot(c));
    if (c->type == FRAME_BOOL) c->v.b[c->len] = v != 0;
    else c->v.i64[c->len] = v;
    c->len++;
    return MR_OK;
}

mr_code frame_col_push_f64(frame_col *c, double v)
{
    if (c->type != FRAME_F64) return MR_EINVAL;
    MR_TRY(push_slot(c));
    c->v.f64[c->len++] = v;
    return MR_OK;
}

mr_code frame_col_push_bool(frame_col *c, int v)
{
    if (c->type != FRAME_BOOL) return MR_EINVAL;
    MR_TRY(push_slot(c));
    c->v.b[c->len++] = v != 0;
    return MR_OK;
}

mr_code frame_col_push_str(frame_col *c, const char *s, size_t n)
{
    if (c->type != FRAME_STR) return MR_EINVAL;
    if (c->arena_len + n > c->arena_cap) MR_TRY(grow_arena(c, c->arena_len + n));
    MR_TRY(push_slot(c));
    if (n) memcpy(c->arena + c->arena_len, s, n);
    c->arena_len += n;
    c->v.offs[++c->len] = (int64_t)c->arena_len;
    return MR_OK;
}

mr_code frame_col_push_null(frame_col *c)
{
    if (c->len == c->cap) MR_TRY(grow_rows(c, c->len + 1));
    MR_TRY(frame_col_ensure_nulls(c));
    c->nulls[c->len] = 1;
    switch (c->type) {
    case FRAME_I64: c->v.i64[c->len] = 0; break;
    case FRAME_F64: c->v.f64[c->len] = 0; break;
    case FRAME_BOOL: c->v.b[c->len] = 0; break;
    case FRAME_STR: c->v.offs[c->len + 1] = (int64_t)c->arena_len; break;
    }
    c->len++;
    return MR_OK;
}

/* n null rows at once (padding during unions). */
static mr_code push_nulls(frame_col *c, size_t n)
{
    if (n == 0) return MR_OK;
    MR_TRY(grow_rows(c, c->len + n));
    MR_TRY(frame_col_ensure_nulls(c));
    memset(c->nulls + c->len, 1, n);
    if (c->type == FRAME_STR) {
        for (size_t i = 1; i <= n; i++) c->v.offs[c->len + i] = (int64_t)c->arena_len;
    } else {
        memset((char *)c->v.i64 + c->len * elem_size(c->type), 0, n * elem_size(c->type));
    }
    c->len += n;
    return MR_OK;
}

mr_code frame_col_push_from(frame_col *c, const frame_col *src, size_t src_row)
{
    if (frame_col_is_null(src, src_row)) return frame_col_push_null(c);
    switch (src->type) {
    case FRAME_I64: return frame_col_push_i64(c, src->v.i64[src_row]);
    case FRAME_F64: return frame_col_push_f64(c, src->v.f64[src_row]);
    case FRAME_BOOL:
        if (c->type != FRAME_BOOL) return MR_EINVAL;
        return frame_col_push_bool(c, src->v.b[src_row]);
    case FRAME_STR: {
        size_t n;
        const char *s = frame_col_str(src, src_row, &n);
        return frame_col_push_str(c, s, n);
    }
    }
    return MR_EINVAL;
}

double frame_col_num(const frame_col *c, size_t i)
{
    if (frame_col_is_null(c, i)) return NAN;
    switch (c->type) {
    case FRAME_I64: return (double)c->v.i64[i];
    case FRAME_F64: return c->v.f64[i];
    case FRAME_BOOL: return c->v.b[i];
    default: return NAN;
    }
}

int frame_col_all_null(const frame_col *c)
{
    if (c->len == 0) return 1;
    if (!c->nulls) return 0;
    for (size_t i = 0; i < c->len; i++)
        if (!c->nulls[i]) return 0;
    return 1;
}

mr_code frame_col_append_col(frame_col *dst, const frame_col *src)
{
    size_t n = src->len, base = dst->len;
    if (n == 0) return MR_OK;
    int widen = dst->type == FRAME_F64 && src->type == FRAME_I64;
    if (dst->type != src->type && !widen) {
        if (frame_col_all_null(src)) return push_nulls(dst, n);
        return MR_EINVAL;
    }
    MR_TRY(grow_rows(dst, base + n));
    if (src->nulls || dst->nulls) {
        MR_TRY(frame_col_ensure_nulls(dst));
        if (src->nulls) memcpy(dst->nulls + base, src->nulls, n);
        else memset(dst->nulls + base, 0, n);
    }
    if (widen) {
        for (size_t i = 0; i < n; i++) dst->v.f64[base + i] = (double)src->v.i64[i];
    } else if (src->type == FRAME_STR) {
        size_t bytes = (size_t)src->v.offs[n];
        MR_TRY(grow_arena(dst, dst->arena_len + bytes));
        if (bytes) memcpy(dst->arena + dst->arena_len, src->arena, bytes);
        int64_t shift = (int64_t)dst->arena_len;
        for (size_t i = 1; i <= n; i++) dst->v.offs[base + i] = src->v.offs[i] + shift;
        dst->arena_len += bytes;
    } else {
        memcpy((char *)dst->v.i64 + base * elem_size(dst->type), src->v.i64,
               n * elem_size(dst->type));
    }
    dst->len = base + n;
    return MR_OK;
}

frame_col *frame_col_clone(const frame_col *src)
{
    frame_col *c = frame_col_create(src->name, src->type, src->len);
    if (!c) return NULL;
    if (src->type == FRAME_STR && grow_arena(c, src->arena_len) != MR_OK) goto fail;
    if (frame_col_append_col(c, src) != MR_OK) goto fail;
    return c;
fail:
    frame_col_free(c);
    return NULL;
}

/* Changes the type of an entirely-null column in place (its values carry no data). */
static mr_code col_retype_null(frame_col *c, frame_type t)
{
    frame_col *fresh = frame_col_create(c->name, t, c->cap);
    if (!fresh) return MR_ENOMEM;
    if (push_nulls(fresh, c->len) != MR_OK) {
        frame_col_free(fresh);
        return MR_ENOMEM;
    }
    /* Swap contents, not pointers: the frame and callers hold c. */
    frame_col old = *c;
    char *fresh_name = fresh->name;
    *c = *fresh;
    c->name = old.name;
    *fresh = old;
    fresh->name = fresh_name;
    frame_col_free(fresh);
    return MR_OK;
}

/* int64 -> float64 in place: both are 8 bytes wide. */
static void col_widen_f64(frame_col *c)
{
    for (size_t i = 0; i < c->len; i++) c->v.f64[i] = (double)c->v.i64[i];
    c->type = FRAME_F64;
}

/* ---- frames ---- */

frame *frame_create(void)
{
    return calloc(1, sizeof(frame));
}

void frame_free(frame *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->ncols; i++) frame_col_free(f->cols[i]);
    free(f->cols);
    free(f);
}

size_t frame_nrows(const frame *f)
{
    return f->ncols ? f->cols[0]->len : 0;
}

size_t frame_ncols(const frame *f)
{
    return f->ncols;
}

frame_col *frame_col_at(const frame *f, size_t i)
{
    return i < f->ncols ? f->cols[i] : NULL;
}

int frame_col_index(const frame *f, const char *name)
{
    for (size_t i = 0; i < f->ncols; i++)
        if (strcmp(f->cols[i]->name, name) == 0) return (int)i;
    return -1;
}

frame_col *frame_col_by_name(const frame *f, const char *name)
{
    int i = frame_col_index(f, name);
    return i < 0 ? NULL : f->cols[i];
}

static mr_code push_col(frame *f, frame_col *c)
{
    if (f->ncols == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 8;
        frame_col **cols = realloc(f->cols, ncap * sizeof *cols);
        if (!cols) return MR_ENOMEM;
        f->cols = cols;
        f->cap = ncap;
    }
    f->cols[f->ncols++] = c;
    return MR_OK;
}

frame_col *frame_add_col(frame *f, const char *name, frame_type t, mr_err *e)
{
    MR_CHECK_NULL(frame_col_index(f, name) < 0, e, MR_EINVAL,
                  "frame: duplicate column '%s'", name);
    size_t rows = frame_nrows(f);
    frame_col *c = frame_col_create(name, t, rows);
    if (!c || push_nulls(c, rows) != MR_OK || push_col(f, c) != MR_OK) {
        frame_col_free(c);
        mr_fail(e, MR_ENOMEM, "frame: out of memory adding column '%s'", name);
        return NULL;
    }
    return c;
}

mr_code frame_attach_col(frame *f, frame_col *c, mr_err *e)
{
    int at = frame_col_index(f, c->name);
    /* The length to match is that of the other columns, not the one being replaced. */
    const frame_col *ref = NULL;
    for (size_t i = 0; i < f->ncols && !ref; i++)
        if ((int)i != at) ref = f->cols[i];
    MR_CHECK(!ref || ref->len == c->len, e, MR_EINVAL,
             "frame: column '%s' has %zu rows, frame has %zu", c->name, c->len, ref ? ref->len : 0);
    if (at >= 0) {
        frame_col_free(f->cols[at]);
        f->cols[at] = c;
        return MR_OK;
    }
    MR_CHECK(push_col(f, c) == MR_OK, e, MR_ENOMEM, "frame: out of memory attaching '%s'",
             c->name);
    return MR_OK;
}

mr_code frame_drop_col(frame *f, const char *name, mr_err *e)
{
    int at = frame_col_index(f, name);
    MR_CHECK(at >= 0, e, MR_ENOTFOUND, "frame: no column '%s' to drop", name);
    frame_col_free(f->cols[at]);
    memmove(f->cols + at, f->cols + at + 1, (f->ncols - at - 1) * sizeof *f->cols);
    f->ncols--;
    return MR_OK;
}

mr_code frame_validate(const frame *f, mr_err *e)
{
    size_t rows = frame_nrows(f);
    for (size_t i = 0; i < f->ncols; i++) {
        const frame_col *c = f->cols[i];
        MR_CHECK(c->len == rows, e, MR_EINVAL,
                 "frame: column '%s' has %zu rows, column '%s' has %zu", c->name, c->len,
                 f->cols[0]->name, rows);
        MR_CHECK(c->len <= c->cap, e, MR_EINVAL, "frame: column '%s' longer than its buffer",
                 c->name);
        for (size_t j = 0; j < i; j++)
            MR_CHECK(strcmp(f->cols[j]->name, c->name) != 0, e, MR_EINVAL,
                     "frame: duplicate column '%s'", c->name);
        if (c->type != FRAME_STR) continue;
        MR_CHECK(c->v.offs[0] == 0 && (size_t)c->v.offs[c->len] == c->arena_len &&
                     c->arena_len <= c->arena_cap,
                 e, MR_EINVAL, "frame: string column '%s' has a bad arena", c->name);
        for (size_t r = 0; r < c->len; r++)
            MR_CHECK(c->v.offs[r] <= c->v.offs[r + 1], e, MR_EINVAL,
                     "frame: string column '%s' row %zu has a negative length", c->name, r);
    }
    return MR_OK;
}

frame *frame_clone(const frame *f, mr_err *e)
{
    frame *out = frame_create();
    MR_CHECK_NULL(out, e, MR_ENOMEM, "frame: out of memory cloning");
    for (size_t i = 0; i < f->ncols; i++) {
        frame_col *c = frame_col_clone(f->cols[i]);
        if (!c || push_col(out, c) != MR_OK) {
            frame_col_free(c);
            frame_free(out);
            mr_fail(e, MR_ENOMEM, "frame: out of memory cloning column '%s'", f->cols[i]->name);
            return NULL;
        }
    }
    return out;
}

frame *frame_empty_like(const frame *f, mr_err *e)
{
    frame *out = frame_create();
    MR_CHECK_NULL(out, e, MR_ENOMEM, "frame: out of memory");
    for (size_t i = 0; i < f->ncols; i++) {
        if (!frame_add_col(out, f->cols[i]->name, f->cols[i]->type, e)) {
            frame_free(out);
            return NULL;
        }
    }
    return out;
}

size_t frame_mem_bytes(const frame *f)
{
    size_t total = sizeof *f + f->cap * sizeof *f->cols;
    for (size_t i = 0; i < f->ncols; i++) {
        const frame_col *c = f->cols[i];
        total += sizeof *c + strlen(c->name) + 1 + values_bytes(c->type, c->cap) +
                 c->arena_cap + (c->nulls ? c->cap : 0);
    }
    return total;
}

/* ---- append / union ---- */

static int types_compatible(const frame_col *d, const frame_col *s)
{
    if (d->type == s->type) return 1;
    if ((d->type == FRAME_I64 && s->type == FRAME_F64) ||
        (d->type == FRAME_F64 && s->type == FRAME_I64))
        return 1;
    return frame_col_all_null(d) || frame_col_all_null(s);
}

mr_code frame_append_frame(frame *dst, const frame *src, mr_err *e)
{
    if (dst == src) {
        frame *copy = frame_clone(src, e);
        if (!copy) return e ? e->code : MR_ENOMEM;
        mr_code rc = frame_append_frame(dst, copy, e);
        frame_free(copy);
        return rc;
    }
    /* Check every column first so a type clash leaves dst untouched. */
    for (size_t i = 0; i < src->ncols; i++) {
        const frame_col *s = src->cols[i];
        const frame_col *d = frame_col_by_name(dst, s->name);
        MR_CHECK(!d || types_compatible(d, s), e, MR_EINVAL,
                 "frame: cannot append column '%s': %s vs %s", s->name,
                 frame_type_name(d ? d->type : s->type), frame_type_name(s->type));
    }
    MR_TRY(frame_validate(src, e));
    size_t base = frame_nrows(dst), n = frame_nrows(src);
    for (size_t i = 0; i < src->ncols; i++) {
        const frame_col *s = src->cols[i];
        frame_col *d = frame_col_by_name(dst, s->name);
        if (!d) {
            if (!frame_add_col(dst, s->name, s->type, e)) return e ? e->code : MR_ENOMEM;
            continue;
        }
        if (d->type == s->type) continue;
        if (d->type == FRAME_I64 && s->type == FRAME_F64) {
            col_widen_f64(d);
        } else if (!(d->type == FRAME_F64 && s->type == FRAME_I64) && frame_col_all_null(d) &&
                   !frame_col_all_null(s)) {
            MR_CHECK(col_retype_null(d, s->type) == MR_OK, e, MR_ENOMEM,
                     "frame: out of memory retyping column '%s'", s->name);
        }
    }
    for (size_t i = 0; i < dst->ncols; i++) {
        frame_col *d = dst->cols[i];
        const frame_col *s = frame_col_by_name(src, d->name);
        mr_code rc = s ? frame_col_append_col(d, s) : push_nulls(d, n);
        MR_CHECK(rc == MR_OK, e, rc, "frame: appending column '%s' at row %zu: %s", d->name,
                 base, rc == MR_EINVAL ? "type mismatch" : "out of memory");
    }
    return MR_OK;
}

/* ---- text formatting ---- */

typedef struct fbuf {
    char *p;
    size_t len, cap;
    int oom;
} fbuf;

static void fb_put(fbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 256;
        while (ncap < b->len + n + 1) ncap *= 2;
        char *p = realloc(b->p, ncap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void fb_fmt(fbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fb_fmt(fbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) fb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void fb_pad(fbuf *b, size_t n)
{
    static const char spaces[] = "                                ";
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        fb_put(b, spaces, k);
        n -= k;
    }
}

/* Shortest representation that reads back as the same double, capped at 10 significant
 * digits because a table is for eyes, not round trips; ".0" keeps floats visibly float. */
static int format_double(char *out, size_t cap, double v)
{
    if (isnan(v)) return snprintf(out, cap, "nan");
    if (isinf(v)) return snprintf(out, cap, v < 0 ? "-inf" : "inf");
    int n = 0;
    for (int prec = 1; prec <= 10; prec++) {
        n = snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) break;
    }
    if (!strpbrk(out, ".e") && (size_t)n + 2 < cap) {
        memcpy(out + n, ".0", 3);
        n += 2;
    }
    return n;
}

#define FRAME_FMT_MAX_STR 40

/* Display form of a string cell: control bytes escaped, long values cut with "...".
 * Writes at most 3*FRAME_FMT_MAX_STR + 12 bytes. */
static size_t format_str(char *out, const char *s, size_t n, size_t *width)
{
    size_t o = 0, w = 0, i = 0;
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int cont = (ch & 0xC0) == 0x80;
        /* Cut between code points, unless the bytes are not UTF-8 at all. */
        if ((w >= FRAME_FMT_MAX_STR || o >= 3 * FRAME_FMT_MAX_STR) && (!cont || o >= 3 * FRAME_FMT_MAX_STR + 4))
            break;
        if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", ch);
            w += 4;
        } else {
            out[o++] = (char)ch;
            if (!cont) w++;   /* count UTF-8 code points, not bytes */
        }
    }
    if (i < n) {
        memcpy(out + o, "...", 3);
        o += 3;
        w += 3;
    }
    out[o] = '\0';
    *width = w;
    return o;
}

/* One cell as text; returns its display width. buf holds at least 4*MAX_STR+16 bytes. */
static size_t format_cell(const frame_col *c, size_t r, char *buf, size_t *bytes)
{
    int n;
    if (frame_col_is_null(c, r)) {
        n = snprintf(buf, 8, "NULL");
        *bytes = (size_t)n;
        return (size_t)n;
    }
    switch (c->type) {
    case FRAME_I64: n = snprintf(buf, 32, "%lld", (long long)c->v.i64[r]); break;
    case FRAME_F64: n = format_double(buf, 64, c->v.f64[r]); break;
    case FRAME_BOOL: n = snprintf(buf, 8, "%s", c->v.b[r] ? "true" : "false"); break;
    default: {
        size_t len, w;
        const char *s = frame_col_str(c, r, &len);
        *bytes = format_str(buf, s, len, &w);
        return w;
    }
    }
    *bytes = (size_t)n;
    return (size_t)n;
}

char *frame_format(const frame *f, size_t max_rows)
{
    fbuf b = {0};
    size_t rows = frame_nrows(f), shown = rows < max_rows ? rows : max_rows;
    size_t nc = f->ncols;
    size_t *width = calloc(nc ? nc : 1, sizeof *width);
    char cell[4 * FRAME_FMT_MAX_STR + 32];
    if (!width) return NULL;
    for (size_t i = 0; i < nc; i++) {
        const frame_col *c = f->cols[i];
        size_t w = strlen(c->name), tw = strlen(frame_type_name(c->type)), bytes;
        if (tw > w) w = tw;
        for (size_t r = 0; r < shown; r++) {
            size_t cw = format_cell(c, r, cell, &bytes);
            if (cw > w) w = cw;
        }
        width[i] = w;
    }
    for (int line = 0; line < 3; line++) {
        for (size_t i = 0; i < nc; i++) {
            const frame_col *c = f->cols[i];
            const char *txt = line == 0 ? c->name : line == 1 ? frame_type_name(c->type) : NULL;
            int right = c->type != FRAME_STR;
            fb_put(&b, i ? "  " : "", i ? 2 : 0);
            if (!txt) {
                for (size_t k = 0; k < width[i]; k++) fb_put(&b, "-", 1);
                continue;
            }
            size_t tl = strlen(txt);
            if (right) fb_pad(&b, width[i] - tl);
            fb_put(&b, txt, tl);
            if (!right && i + 1 < nc) fb_pad(&b, width[i] - tl);
        }
        fb_put(&b, "\n", 1);
    }
    for (size_t r = 0; r < shown; r++) {
        for (size_t i = 0; i < nc; i++) {
            const frame_col *c = f->cols[i];
            size_t bytes, w = format_cell(c, r, cell, &bytes);
            int right = c->type != FRAME_STR;
            fb_put(&b, i ? "  " : "", i ? 2 : 0);
            if (right) fb_pad(&b, width[i] - w);
            fb_put(&b, cell, bytes);
            if (!right && i + 1 < nc) fb_pad(&b, width[i] - w);
        }
        fb_put(&b, "\n", 1);
    }
    if (shown < rows) fb_put(&b, "...\n", 4);
    fb_fmt(&b, "(%zu row%s, %zu column%s)\n", rows, rows == 1 ? "" : "s", nc,
           nc == 1 ? "" : "s");
    free(width);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
