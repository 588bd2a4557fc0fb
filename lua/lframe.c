#include "lframe.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "../engine/groupby.h"
#include "../engine/join.h"
#include "../engine/ops.h"

#define LFRAME_MT "luamr.frame"
#define LGROUPED_MT "luamr.grouped"
#define LBUILD_MT "luamr.colbuild"

/* Lua's GC sees only the userdata, not the columns behind it, so we force a collection
 * once this many bytes of new frames appeared (or as much as was live after the last
 * collection, if more). */
#define LFRAME_GC_MIN_BYTES ((size_t)64 << 20)
#define LFRAME_DEFAULT_PRINT_ROWS 20

typedef struct lframe_env {
    unsigned epoch;
    size_t live_bytes;
    size_t since_gc;
    size_t live_after_gc;
    size_t gc_min;     /* 0: LFRAME_GC_MIN_BYTES */
} lframe_env;
static char lframe_env_key;

enum { LF_OWNED, LF_BORROWED, LF_MOVED, LF_RELEASED };

/* Column lookups by the address of the (interned, anchored) key string: a row table's
 * keys are the same Lua strings row after row, so pointer equality is enough. */
typedef struct lf_key {
    const char *k;
    int col;
} lf_key;

/* One value of the row being appended, checked before anything is pushed so a type error
 * leaves the frame unchanged. */
typedef struct lf_slot {
    int col;
    int lt;
    double num;
    const char *s;
    size_t len;
    int b;
    const char *key;
} lf_slot;

typedef struct lframe_ud {
    frame *f;
    int state;
    unsigned epoch;
    size_t acct_bytes;
    lframe_env *env;
    int anchored;            /* has its own fenv table holding the cached key strings */
    lf_key *keys;
    size_t keys_cap, keys_used;
    lf_slot *slots;
    size_t slots_cap;
    uint32_t *stamp;         /* stamp[col] == gen: the current row set this column */
    size_t stamp_cap;
    uint32_t gen;
} lframe_ud;

typedef struct lf_build {
    frame_col *c;
    size_t pending_nulls;
    int fixed;
    frame_type type;
} lf_build;

enum { LV_OK, LV_WIDEN, LV_BAD };

/* ---------------------------------------------------------------- helpers */

static lframe_env *env_get(lua_State *L)
{
    lframe_env *env;
    lua_pushlightuserdata(L, &lframe_env_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    env = (lframe_env *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return env;
}

static int num_is_int(double d)
{
    return d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == floor(d);
}

static int fmt_num(char *buf, size_t n, double d)
{
    if (num_is_int(d)) return snprintf(buf, n, "%" PRId64, (int64_t)d);
    return snprintf(buf, n, "%.14g", d);
}

static const char *lt_name(lua_State *L, int lt)
{
    return lua_typename(L, lt);
}

static int lval_infer(lua_State *L, int idx, frame_type *t)
{
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER: *t = num_is_int(lua_tonumber(L, idx)) ? FRAME_I64 : FRAME_F64; return 0;
    case LUA_TSTRING: *t = FRAME_STR; return 0;
    case LUA_TBOOLEAN: *t = FRAME_BOOL; return 0;
    default: return -1;
    }
}

static int lval_read(lua_State *L, int idx, frame_type ct, lf_slot *v)
{
    int lt = lua_type(L, idx);
    v->lt = lt;
    switch (ct) {
    case FRAME_I64:
        if (lt != LUA_TNUMBER) return LV_BAD;
        v->num = lua_tonumber(L, idx);
        return num_is_int(v->num) ? LV_OK : LV_WIDEN;
    case FRAME_F64:
        if (lt != LUA_TNUMBER) return LV_BAD;
        v->num = lua_tonumber(L, idx);
        return LV_OK;
    case FRAME_BOOL:
        if (lt != LUA_TBOOLEAN) return LV_BAD;
        v->b = lua_toboolean(L, idx);
        return LV_OK;
    case FRAME_STR:
        if (lt == LUA_TSTRING) {
            v->s = lua_tolstring(L, idx, &v->len);
            return LV_OK;
        }
        if (lt == LUA_TNUMBER) {   /* formatted at push time: no Lua string to keep alive */
            v->num = lua_tonumber(L, idx);
            return LV_OK;
        }
        return LV_BAD;
    }
    return LV_BAD;
}

static mr_code lval_push(frame_col *c, const lf_slot *v)
{
    char buf[64];
    int n;
    switch (c->type) {
    case FRAME_I64: return frame_col_push_i64(c, (int64_t)v->num);
    case FRAME_F64: return frame_col_push_f64(c, v->num);
    case FRAME_BOOL: return frame_col_push_bool(c, v->b);
    case FRAME_STR:
        if (v->lt != LUA_TNUMBER) return frame_col_push_str(c, v->s, v->len);
        n = fmt_num(buf, sizeof buf, v->num);
        return frame_col_push_str(c, buf, (size_t)n);
    }
    return MR_EINVAL;
}

/* A float64 copy of an int64 column (same name, nulls kept). */
static frame_col *col_widen(const frame_col *c)
{
    frame_col *w = frame_col_create(c->name, FRAME_F64, c->len);
    if (!w) return NULL;
    for (size_t i = 0; i < c->len; i++) {
        mr_code rc = frame_col_is_null(c, i) ? frame_col_push_null(w)
                                             : frame_col_push_f64(w, (double)c->v.i64[i]);
        if (rc != MR_OK) {
            frame_col_free(w);
            return NULL;
        }
    }
    return w;
}

static void push_cell(lua_State *L, const frame_col *c, size_t i)
{
    size_t n;
    const char *s;
    if (frame_col_is_null(c, i)) {
        lua_pushnil(L);
        return;
    }
    switch (c->type) {
    case FRAME_I64: lua_pushnumber(L, (lua_Number)c->v.i64[i]); break;
    case FRAME_F64: lua_pushnumber(L, c->v.f64[i]); break;
    case FRAME_BOOL: lua_pushboolean(L, c->v.b[i]); break;
    case FRAME_STR:
        s = frame_col_str(c, i, &n);
        lua_pushlstring(L, s, n);
        break;
    }
}

/* Pushes an array of the first ncols column names; returns its absolute index. */
static int push_names(lua_State *L, const frame *f, size_t ncols)
{
    lua_createtable(L, (int)ncols, 0);
    for (size_t c = 0; c < ncols; c++) {
        lua_pushstring(L, frame_col_at(f, c)->name);
        lua_rawseti(L, -2, (int)c + 1);
    }
    return lua_gettop(L);
}

/* Sets row[name] = cell for every column (nil for nulls, so a reused table is clean). */
static void fill_row(lua_State *L, const frame *f, size_t ncols, size_t i, int names, int row)
{
    for (size_t c = 0; c < ncols; c++) {
        lua_rawgeti(L, names, (int)c + 1);
        push_cell(L, frame_col_at(f, c), i);
        lua_rawset(L, row);
    }
}

static void push_row(lua_State *L, const frame *f, size_t i, int names)
{
    size_t ncols = frame_ncols(f);
    lua_createtable(L, 0, (int)ncols);
    fill_row(L, f, ncols, i, names, lua_gettop(L));
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---------------------------------------------------------------- userdata */

void lframe_push(lua_State *L, frame *f)
{
    lframe_env *env = env_get(L);
    size_t bytes = frame_mem_bytes(f);
    lframe_ud *u;
    if (env) {
        /* live_bytes counts garbage not yet collected, so the pace is set by what was
         * live after the last collection */
        size_t min = env->gc_min ? env->gc_min : LFRAME_GC_MIN_BYTES;
        size_t limit = env->live_after_gc > min ? env->live_after_gc : min;
        env->since_gc += bytes;
        if (env->since_gc > limit) {
            lua_gc(L, LUA_GCCOLLECT, 0);
            env->since_gc = 0;
            env->live_after_gc = env->live_bytes;
        }
    }
    u = (lframe_ud *)lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->f = f;
    u->state = LF_OWNED;
    u->env = env;
    u->epoch = env ? env->epoch : 0;
    u->acct_bytes = bytes;
    if (env) env->live_bytes += bytes;
    luaL_getmetatable(L, LFRAME_MT);
    lua_setmetatable(L, -2);
}

void lframe_push_borrowed(lua_State *L, const frame *f)
{
    lframe_ud *u = (lframe_ud *)lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->f = (frame *)f;   /* never written through while borrowed: see lf_mut */
    u->state = LF_BORROWED;
    u->env = env_get(L);
    luaL_getmetatable(L, LFRAME_MT);
    lua_setmetatable(L, -2);
}

void lframe_release(lua_State *L, int idx)
{
    lframe_ud *u = (lframe_ud *)luaL_testudata(L, idx, LFRAME_MT);
    if (!u || u->state != LF_BORROWED) return;
    u->f = NULL;
    u->state = LF_RELEASED;
}

void lframe_set_epoch(lua_State *L, unsigned epoch)
{
    lframe_env *env = env_get(L);
    if (env) env->epoch = epoch;
}

void lframe_set_gc_min(lua_State *L, size_t bytes)
{
    lframe_env *env = env_get(L);
    if (env) env->gc_min = bytes;
}

static lframe_ud *lf_check(lua_State *L, int idx)
{
    return (lframe_ud *)luaL_checkudata(L, idx, LFRAME_MT);
}

static frame *lf_valid(lua_State *L, lframe_ud *u)
{
    if (u->f) return u->f;
    if (u->state == LF_MOVED)
        luaL_error(L, "frame was handed to the engine when its task returned; "
                      "return f:clone() to keep using it");
    luaL_error(L, "frame is no longer valid: it was the input of a call that has returned");
    return NULL;
}

static frame *lf_frame(lua_State *L, int idx)
{
    return lf_valid(L, lf_check(L, idx));
}

/* The frame for in-place changes: a borrowed frame is copied first. */
static frame *lf_mut(lua_State *L, lframe_ud *u)
{
    mr_err e;
    frame *c;
    lf_valid(L, u);
    if (u->state != LF_BORROWED) return u->f;
    c = frame_clone(u->f, &e);
    if (!c) luaL_error(L, "copying a reduce input to change it: %s", e.msg);
    u->f = c;
    u->state = LF_OWNED;
    if (u->env) u->epoch = u->env->epoch;
    return c;
}

const frame *lframe_get(lua_State *L, int idx)
{
    lframe_ud *u = (lframe_ud *)luaL_testudata(L, idx, LFRAME_MT);
    return u ? u->f : NULL;
}

frame *lframe_take(lua_State *L, int idx, mr_err *e)
{
    lframe_ud *u = (lframe_ud *)luaL_testudata(L, idx, LFRAME_MT);
    frame *f;
    if (!u) {
        mr_fail(e, MR_EINVAL, "expected a frame, got %s", luaL_typename(L, idx));
        return NULL;
    }
    if (!u->f) {
        mr_fail(e, MR_EINVAL, "the returned frame is no longer valid (already handed over)");
        return NULL;
    }
    if (u->state == LF_OWNED && u->env && u->epoch == u->env->epoch) {
        f = u->f;
        u->f = NULL;
        u->state = LF_MOVED;
        if (u->env->live_bytes >= u->acct_bytes) u->env->live_bytes -= u->acct_bytes;
        return f;
    }
    return frame_clone(u->f, e);
}

static int lf_gc(lua_State *L)
{
    lframe_ud *u = lf_check(L, 1);
    if (u->state == LF_OWNED) {
        frame_free(u->f);
        if (u->env && u->env->live_bytes >= u->acct_bytes) u->env->live_bytes -= u->acct_bytes;
    }
    u->f = NULL;
    u->state = LF_RELEASED;
    free(u->keys);
    free(u->slots);
    free(u->stamp);
    u->keys = NULL;
    u->slots = NULL;
    u->stamp = NULL;
    return 0;
}

static int lf_result(lua_State *L, frame *r, const char *what, const mr_err *e)
{
    if (!r) return luaL_error(L, "%s: %s", what, e->msg);
    lframe_push(L, r);
    return 1;
}

/* ---------------------------------------------------------------- append */

static size_t ptr_hash(const char *k)
{
    uintptr_t p = (uintptr_t)k;
    return (size_t)((p >> 3) * UINT64_C(0x9E3779B97F4A7C15) >> 17);
}

static void key_cache_clear(lframe_ud *u)
{
    if (u->keys) memset(u->keys, 0, u->keys_cap * sizeof *u->keys);
    u->keys_used = 0;
}

static int key_cache_get(const lframe_ud *u, const char *k)
{
    size_t m, h;
    if (!u->keys_cap) return -1;
    m = u->keys_cap - 1;
    for (h = ptr_hash(k) & m; u->keys[h].k; h = (h + 1) & m)
        if (u->keys[h].k == k) return u->keys[h].col;
    return -1;
}

static void key_cache_insert(lf_key *keys, size_t cap, const char *k, int col)
{
    size_t m = cap - 1, h;
    for (h = ptr_hash(k) & m; keys[h].k; h = (h + 1) & m)
        if (keys[h].k == k) break;
    keys[h].k = k;
    keys[h].col = col;
}

/* Caches key (the string at stack index kidx) -> col, anchoring the string in the
 * userdata's fenv table so its address cannot be reused by another string. */
static void key_cache_put(lua_State *L, lframe_ud *u, int uidx, int kidx, const char *k, int col)
{
    if ((u->keys_used + 1) * 2 > u->keys_cap) {
        size_t ncap = u->keys_cap ? u->keys_cap * 2 : 16;
        lf_key *nk = (lf_key *)calloc(ncap, sizeof *nk);
        if (!nk) luaL_error(L, "append: out of memory");
        for (size_t i = 0; i < u->keys_cap; i++)
            if (u->keys[i].k) key_cache_insert(nk, ncap, u->keys[i].k, u->keys[i].col);
        free(u->keys);
        u->keys = nk;
        u->keys_cap = ncap;
    }
    if (!u->anchored) {
        lua_newtable(L);
        lua_setfenv(L, uidx);
        u->anchored = 1;
    }
    lua_getfenv(L, uidx);
    lua_pushvalue(L, kidx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    key_cache_insert(u->keys, u->keys_cap, k, col);
    u->keys_used++;
}

static int resolve_col(lua_State *L, frame *f, const char *k, int vidx, size_t row)
{
    frame_type t;
    mr_err e;
    int ci = frame_col_index(f, k);
    if (ci >= 0) return ci;
    if (lval_infer(L, vidx, &t))
        luaL_error(L, "append: column '%s': cannot store a %s value (row %d)", k,
                   luaL_typename(L, vidx), (int)row);
    if (!frame_add_col(f, k, t, &e)) luaL_error(L, "append: %s", e.msg);
    return frame_col_index(f, k);
}

static void widen_in_frame(lua_State *L, lframe_ud *u, frame *f, int ci, size_t nslots)
{
    mr_err e;
    frame_col *w = col_widen(frame_col_at(f, ci));
    if (!w) luaL_error(L, "append: out of memory widening a column to float64");
    if (frame_attach_col(f, w, &e) != MR_OK) {
        frame_col_free(w);
        luaL_error(L, "append: %s", e.msg);
    }
    /* attach may have moved columns around: forget every cached position */
    key_cache_clear(u);
    for (size_t j = 0; j < nslots; j++) u->slots[j].col = frame_col_index(f, u->slots[j].key);
}

static void slots_reserve(lua_State *L, lframe_ud *u, size_t n)
{
    lf_slot *ns;
    size_t cap;
    if (n <= u->slots_cap) return;
    cap = u->slots_cap ? u->slots_cap * 2 : 16;
    while (cap < n) cap *= 2;
    ns = (lf_slot *)realloc(u->slots, cap * sizeof *ns);
    if (!ns) luaL_error(L, "append: out of memory");
    u->slots = ns;
    u->slots_cap = cap;
}

static void stamp_reserve(lua_State *L, lframe_ud *u, size_t n)
{
    uint32_t *ns;
    size_t cap;
    if (n <= u->stamp_cap) return;
    cap = u->stamp_cap ? u->stamp_cap * 2 : 16;
    while (cap < n) cap *= 2;
    ns = (uint32_t *)realloc(u->stamp, cap * sizeof *ns);
    if (!ns) luaL_error(L, "append: out of memory");
    memset(ns + u->stamp_cap, 0, (cap - u->stamp_cap) * sizeof *ns);
    u->stamp = ns;
    u->stamp_cap = cap;
}

/* Adds the row's unknown columns, sorted by name so the column order does not depend on
 * hash order. Rare: only rows that bring new columns get here. */
static void add_new_cols(lua_State *L, lframe_ud *u, frame *f, int tidx, size_t row)
{
    size_t n = 0, cap = 8;
    const char **keys;
    int kidx;
    lua_pushnil(L);
    while (lua_next(L, tidx)) {
        n++;
        lua_pop(L, 1);
    }
    if (n > cap) cap = n;
    keys = (const char **)lua_newuserdata(L, cap * sizeof *keys);
    kidx = lua_gettop(L);
    n = 0;
    lua_pushnil(L);
    while (lua_next(L, tidx)) {
        if (lua_type(L, -2) == LUA_TSTRING && frame_col_index(f, lua_tostring(L, -2)) < 0)
            keys[n++] = lua_tostring(L, -2);   /* anchored by the row table */
        lua_pop(L, 1);
    }
    qsort(keys, n, sizeof *keys, cmp_cstr);
    for (size_t i = 0; i < n; i++) {
        lua_getfield(L, tidx, keys[i]);
        resolve_col(L, f, keys[i], -1, row);
        lua_pop(L, 1);
    }
    lua_remove(L, kidx);
    key_cache_clear(u);
}

void lframe_append_row(lua_State *L, int fidx, int tidx)
{
    lframe_ud *u;
    frame *f;
    size_t n0, ns = 0, nc;
    fidx = fidx < 0 ? lua_gettop(L) + fidx + 1 : fidx;
    tidx = tidx < 0 ? lua_gettop(L) + tidx + 1 : tidx;
    u = lf_check(L, fidx);
    f = lf_mut(L, u);
    luaL_checktype(L, tidx, LUA_TTABLE);
    n0 = frame_nrows(f);

    /* pass 1: resolve and check every value; the frame only gains (null) columns */
    lua_pushnil(L);
    while (lua_next(L, tidx)) {
        size_t kl;
        const char *k;
        int ci, r;
        lf_slot *sl;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "append: column names must be strings, got %s (row %d)",
                       luaL_typename(L, -2), (int)(n0 + 1));
        k = lua_tolstring(L, -2, &kl);
        ci = key_cache_get(u, k);
        if (ci < 0) {
            ci = frame_col_index(f, k);
            if (ci < 0) {
                add_new_cols(L, u, f, tidx, n0 + 1);
                ci = resolve_col(L, f, k, -1, n0 + 1);
            }
            key_cache_put(L, u, fidx, lua_gettop(L) - 1, k, ci);
        }
        slots_reserve(L, u, ns + 1);
        sl = &u->slots[ns];
        r = lval_read(L, -1, frame_col_at(f, ci)->type, sl);
        if (r == LV_WIDEN) {
            widen_in_frame(L, u, f, ci, ns);
            ci = frame_col_index(f, k);
            r = lval_read(L, -1, frame_col_at(f, ci)->type, sl);
        }
        if (r != LV_OK)
            luaL_error(L, "append: column '%s' is %s, got %s (row %d)", k,
                       frame_type_name(frame_col_at(f, ci)->type), luaL_typename(L, -1),
                       (int)(n0 + 1));
        sl->col = ci;
        sl->key = k;
        ns++;
        lua_pop(L, 1);
    }

    /* pass 2: push the values, then nulls for the columns this row did not mention */
    nc = frame_ncols(f);
    stamp_reserve(L, u, nc);
    if (++u->gen == 0) {
        memset(u->stamp, 0, u->stamp_cap * sizeof *u->stamp);
        u->gen = 1;
    }
    for (size_t j = 0; j < ns; j++) {
        if (lval_push(frame_col_at(f, u->slots[j].col), &u->slots[j]) != MR_OK)
            luaL_error(L, "append: out of memory (row %d)", (int)(n0 + 1));
        u->stamp[u->slots[j].col] = u->gen;
    }
    if (ns < nc) {
        for (size_t c = 0; c < nc; c++)
            if (u->stamp[c] != u->gen && frame_col_push_null(frame_col_at(f, c)) != MR_OK)
                luaL_error(L, "append: out of memory (row %d)", (int)(n0 + 1));
    }
}

/* ---------------------------------------------------------------- column builder */

static int lb_gc(lua_State *L)
{
    lf_build *b = (lf_build *)luaL_checkudata(L, 1, LBUILD_MT);
    frame_col_free(b->c);
    b->c = NULL;
    return 0;
}

/* Pushes a builder (freed by the GC if an error interrupts the build). */
static lf_build *build_new(lua_State *L, int fixed, frame_type t)
{
    lf_build *b = (lf_build *)lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    b->fixed = fixed;
    b->type = t;
    luaL_getmetatable(L, LBUILD_MT);
    lua_setmetatable(L, -2);
    return b;
}

static void build_start(lua_State *L, lf_build *b, const char *name, frame_type t)
{
    b->c = frame_col_create(name, t, b->pending_nulls + 16);
    if (!b->c) luaL_error(L, "column '%s': out of memory", name);
    for (; b->pending_nulls; b->pending_nulls--)
        if (frame_col_push_null(b->c) != MR_OK) luaL_error(L, "column '%s': out of memory", name);
}

static void build_push(lua_State *L, lf_build *b, const char *name, int vidx, size_t row)
{
    lf_slot v;
    int r;
    if (lua_isnil(L, vidx)) {
        if (!b->c) {
            b->pending_nulls++;
        } else if (frame_col_push_null(b->c) != MR_OK) {
            luaL_error(L, "column '%s': out of memory", name);
        }
        return;
    }
    if (!b->c) {
        frame_type t = b->type;
        if (!b->fixed && lval_infer(L, vidx, &t))
            luaL_error(L, "column '%s': cannot store a %s value (row %d)", name,
                       luaL_typename(L, vidx), (int)row);
        build_start(L, b, name, t);
    }
    r = lval_read(L, vidx, b->c->type, &v);
    if (r == LV_WIDEN) {
        frame_col *w = col_widen(b->c);
        if (!w) luaL_error(L, "column '%s': out of memory", name);
        frame_col_free(b->c);
        b->c = w;
        r = lval_read(L, vidx, b->c->type, &v);
    }
    if (r != LV_OK)
        luaL_error(L, "column '%s' is %s, got %s (row %d)", name, frame_type_name(b->c->type),
                   lt_name(L, lua_type(L, vidx)), (int)row);
    if (lval_push(b->c, &v) != MR_OK) luaL_error(L, "column '%s': out of memory", name);
}

/* Hands the finished column to the caller (an all-null column defaults to string). */
static frame_col *build_finish(lua_State *L, lf_build *b, const char *name)
{
    frame_col *c;
    if (!b->c) build_start(L, b, name, b->fixed ? b->type : FRAME_STR);
    c = b->c;
    b->c = NULL;
    return c;
}

/* Attaches c to f; frees c and raises on failure. */
static void attach_or_raise(lua_State *L, frame *f, frame_col *c, const char *what)
{
    mr_err e;
    if (frame_attach_col(f, c, &e) == MR_OK) return;
    frame_col_free(c);
    luaL_error(L, "%s: %s", what, e.msg);
}

/* The length of a values array: its largest positive integer key, since nils (nulls)
 * leave holes that make # ambiguous. */
static size_t values_len(lua_State *L, int idx)
{
    size_t n = lua_objlen(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx < 0 ? idx - 1 : idx)) {
        if (lua_type(L, -2) == LUA_TNUMBER) {
            lua_Number k = lua_tonumber(L, -2);
            if (k >= 1 && k == floor(k) && (size_t)k > n) n = (size_t)k;
        }
        lua_pop(L, 1);
    }
    return n;
}

/* Builds a column from the array at tidx (n entries, nils are nulls) into f. */
static void add_values_col(lua_State *L, frame *f, const char *name, int tidx, size_t n,
                           int fixed, frame_type t, const char *what)
{
    lf_build *b = build_new(L, fixed, t);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, tidx, (int)i + 1);
        build_push(L, b, name, -1, i + 1);
        lua_pop(L, 1);
    }
    attach_or_raise(L, f, build_finish(L, b, name), what);
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- argument helpers */

static frame_col *col_arg(lua_State *L, const frame *f, int idx)
{
    frame_col *c;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i < 1 || (size_t)i > frame_ncols(f))
            luaL_error(L, "column %d out of range (1..%d)", (int)i, (int)frame_ncols(f));
        return frame_col_at(f, (size_t)i - 1);
    }
    c = frame_col_by_name(f, luaL_checkstring(L, idx));
    if (!c) luaL_error(L, "unknown column '%s'", lua_tostring(L, idx));
    return c;
}

static size_t row_arg(lua_State *L, const frame *f, int idx)
{
    lua_Integer i = luaL_checkinteger(L, idx);
    size_t n = frame_nrows(f);
    if (i < 1 || (size_t)i > n) luaL_error(L, "row %d out of range (1..%d)", (int)i, (int)n);
    return (size_t)i - 1;
}

/* Column names from the arguments first..top, or from one array argument. The result
 * lives in a userdata pushed on the stack (collected even if we raise later). */
static const char **names_arg(lua_State *L, int first, size_t *n)
{
    int top = lua_gettop(L);
    const char **v;
    if (first == top && lua_type(L, first) == LUA_TTABLE) {
        int t = first;
        size_t len = lua_objlen(L, t);
        v = (const char **)lua_newuserdata(L, (len ? len : 1) * sizeof *v);
        for (size_t i = 0; i < len; i++) {
            lua_rawgeti(L, t, (int)i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "column name %d: expected a string, got %s", (int)i + 1,
                           luaL_typename(L, -1));
            v[i] = lua_tostring(L, -1);   /* anchored by the table */
            lua_pop(L, 1);
        }
        *n = len;
        return v;
    }
    *n = top >= first ? (size_t)(top - first + 1) : 0;
    v = (const char **)lua_newuserdata(L, (*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) v[i] = luaL_checkstring(L, first + (int)i);
    return v;
}

/* ---------------------------------------------------------------- constructors */

/* nrows: the length every values column gets (shorter arrays end in nulls). */
static void add_spec_col(lua_State *L, frame *f, const char *name, int vidx, size_t nrows)
{
    mr_err e;
    frame_type t;
    if (lua_type(L, vidx) == LUA_TSTRING) {
        const char *tn = lua_tostring(L, vidx);
        if (frame_type_parse(tn, &t) != 0)
            luaL_error(L, "frame.new: column '%s': unknown type '%s' (use int64, float64, bool "
                          "or string)", name, tn);
        if (!frame_add_col(f, name, t, &e)) luaL_error(L, "frame.new: %s", e.msg);
        return;
    }
    if (lua_type(L, vidx) == LUA_TTABLE) {
        vidx = vidx < 0 ? lua_gettop(L) + vidx + 1 : vidx;
        if (values_len(L, vidx) > nrows)
            luaL_error(L, "frame.new: column '%s' has %d values, other columns %d", name,
                       (int)values_len(L, vidx), (int)nrows);
        add_values_col(L, f, name, vidx, nrows, 0, FRAME_STR, "frame.new");
        return;
    }
    luaL_error(L, "frame.new: column '%s': expected a type name or an array of values, got %s",
               name, luaL_typename(L, vidx));
}

/* Applies a schema/columns spec (table at sidx) to the frame userdata at fidx. */
static void apply_spec(lua_State *L, int sidx, frame *f)
{
    size_t alen = lua_objlen(L, sidx), nk = 0, nrows = 0;
    const char **keys;
    /* the longest values array sets the row count */
    lua_pushnil(L);
    while (lua_next(L, sidx)) {
        if (lua_istable(L, -1)) {
            size_t n;
            if (alen > 0) {   /* {name, values} or {name=, type=values} */
                lua_rawgeti(L, -1, 2);
                if (lua_isnil(L, -1)) {
                    lua_pop(L, 1);
                    lua_getfield(L, -1, "type");
                }
                n = lua_istable(L, -1) ? values_len(L, -1) : 0;
                lua_pop(L, 1);
            } else {
                n = values_len(L, -1);
            }
            if (n > nrows) nrows = n;
        }
        lua_pop(L, 1);
    }
    if (alen > 0) {   /* array form keeps the order: {{"word","string"}, {name=, type=}} */
        for (size_t i = 0; i < alen; i++) {
            int top = lua_gettop(L);
            lua_rawgeti(L, sidx, (int)i + 1);
            if (!lua_istable(L, -1))
                luaL_error(L, "frame.new: entry %d: expected {name, type}", (int)i + 1);
            lua_getfield(L, -1, "name");
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_rawgeti(L, -1, 1);
            }
            lua_getfield(L, -2, "type");
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_rawgeti(L, -2, 2);
            }
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "frame.new: entry %d: column name must be a string", (int)i + 1);
            add_spec_col(L, f, lua_tostring(L, -2), -1, nrows);
            lua_settop(L, top);
        }
        return;
    }
    /* map form: a table has no order, so columns are added by name */
    lua_pushnil(L);
    while (lua_next(L, sidx)) {
        nk++;
        lua_pop(L, 1);
    }
    keys = (const char **)lua_newuserdata(L, (nk ? nk : 1) * sizeof *keys);
    nk = 0;
    lua_pushnil(L);
    while (lua_next(L, sidx)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "frame.new: column names must be strings");
        keys[nk++] = lua_tostring(L, -2);
        lua_pop(L, 1);
    }
    qsort(keys, nk, sizeof *keys, cmp_cstr);
    /* value columns first: they set the row count that typed columns are padded to */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nk; i++) {
            lua_getfield(L, sidx, keys[i]);
            if ((lua_type(L, -1) == LUA_TTABLE) == (pass == 0)) add_spec_col(L, f, keys[i], -1, nrows);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

static frame *new_frame_or_raise(lua_State *L)
{
    frame *f = frame_create();
    if (!f) luaL_error(L, "frame.new: out of memory");
    return f;
}

static int f_new(lua_State *L)
{
    frame *f;
    int spec = !lua_isnoneornil(L, 1);
    if (spec) luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    f = new_frame_or_raise(L);
    lframe_push(L, f);
    if (spec) apply_spec(L, 1, f);
    return 1;
}

int lframe_from_rows(lua_State *L)
{
    frame *f;
    int fidx;
    size_t n;
    int spec = !lua_isnoneornil(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    if (spec) luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    f = new_frame_or_raise(L);
    lframe_push(L, f);
    fidx = lua_gettop(L);
    if (spec) apply_spec(L, 2, f);
    n = lua_objlen(L, 1);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (int)i + 1);
        lframe_append_row(L, fidx, -1);
        lua_pop(L, 1);
    }
    lua_settop(L, fidx);
    return 1;
}

mr_code lframe_try_append_frame(lua_State *L, int fidx, int sidx, mr_err *e)
{
    lframe_ud *u = lf_check(L, fidx);
    const frame *src = lf_frame(L, sidx);
    frame *dst = lf_mut(L, u);
    mr_code rc = frame_append_frame(dst, src, e);
    key_cache_clear(u);   /* new columns may have appeared */
    return rc;
}

void lframe_append_frame(lua_State *L, int fidx, int sidx)
{
    mr_err e;
    if (lframe_try_append_frame(L, fidx, sidx, &e) != MR_OK)
        luaL_error(L, "append frame: %s", e.msg);
}

static int concat_frames(lua_State *L, int first, int last, const char *what)
{
    size_t n = last >= first ? (size_t)(last - first + 1) : 0;
    const frame **v = (const frame **)lua_newuserdata(L, (n ? n : 1) * sizeof *v);
    mr_err e;
    for (size_t i = 0; i < n; i++) v[i] = lf_frame(L, first + (int)i);
    return lf_result(L, ops_concat(v, n, &e), what, &e);
}

static int f_concat(lua_State *L)
{
    size_t n;
    luaL_checktype(L, 1, LUA_TTABLE);
    n = lua_objlen(L, 1);
    lua_settop(L, 1);
    for (size_t i = 0; i < n; i++) lua_rawgeti(L, 1, (int)i + 1);
    return concat_frames(L, 2, 1 + (int)n, "frame.concat");
}

static int f_is_frame(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, LFRAME_MT) != NULL);
    return 1;
}

/* ---------------------------------------------------------------- methods */

static int m_append(lua_State *L)
{
    lframe_append_row(L, 1, 2);
    lua_settop(L, 1);
    return 1;
}

static int m_add_column(lua_State *L)
{
    lframe_ud *u = lf_check(L, 1);
    const char *name = luaL_checkstring(L, 2);
    frame *f = lf_mut(L, u);
    if (lua_type(L, 3) == LUA_TTABLE) {
        size_t n = frame_ncols(f) ? frame_nrows(f) : values_len(L, 3);
        if (values_len(L, 3) > n)
            return luaL_error(L, "add_column: '%s' has %d values, the frame %d rows", name,
                              (int)values_len(L, 3), (int)n);
        add_values_col(L, f, name, 3, n, 0, FRAME_STR, "add_column");
    } else {
        frame_type t;
        mr_err e;
        const char *tn = luaL_checkstring(L, 3);
        if (frame_type_parse(tn, &t) != 0)
            return luaL_error(L, "add_column: unknown type '%s' (use int64, float64, bool or string)", tn);
        if (!frame_add_col(f, name, t, &e)) return luaL_error(L, "add_column: %s", e.msg);
    }
    /* a replaced column may shift positions that append cached */
    key_cache_clear(u);
    lua_settop(L, 1);
    return 1;
}

static int m_column(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    const frame_col *c = col_arg(L, f, 2);
    lua_createtable(L, (int)c->len, 0);
    for (size_t i = 0; i < c->len; i++) {
        push_cell(L, c, i);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

static int m_get(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    size_t i = row_arg(L, f, 2);
    push_cell(L, col_arg(L, f, 3), i);
    return 1;
}

static int m_row(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    size_t i = row_arg(L, f, 2);
    int names = push_names(L, f, frame_ncols(f));
    push_row(L, f, i, names);
    return 1;
}

static int m_nrows(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)frame_nrows(lf_frame(L, 1)));
    return 1;
}

static int m_ncols(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)frame_ncols(lf_frame(L, 1)));
    return 1;
}

static int m_columns(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    push_names(L, f, frame_ncols(f));
    return 1;
}

static int m_schema(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    size_t nc = frame_ncols(f);
    lua_createtable(L, (int)nc, 0);
    for (size_t c = 0; c < nc; c++) {
        const frame_col *col = frame_col_at(f, c);
        lua_createtable(L, 0, 2);
        lua_pushstring(L, col->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, frame_type_name(col->type));
        lua_setfield(L, -2, "type");
        lua_rawseti(L, -2, (int)c + 1);
    }
    return 1;
}

/* upvalues: frame userdata, names table, next row (0-based) */
static int rows_iter(lua_State *L)
{
    const frame *f = lf_frame(L, lua_upvalueindex(1));
    size_t i = (size_t)lua_tonumber(L, lua_upvalueindex(3));
    if (i >= frame_nrows(f)) return 0;
    lua_pushnumber(L, (lua_Number)(i + 1));
    lua_replace(L, lua_upvalueindex(3));
    push_row(L, f, i, lua_upvalueindex(2));
    lua_pushnumber(L, (lua_Number)(i + 1));
    return 2;
}

static int m_rows(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    lua_settop(L, 1);
    push_names(L, f, frame_ncols(f));
    lua_pushnumber(L, 0);
    lua_pushcclosure(L, rows_iter, 3);
    return 1;
}

static int m_to_table(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    size_t n = frame_nrows(f);
    int names = push_names(L, f, frame_ncols(f));
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        push_row(L, f, i, names);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

static int m_head(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, 10);
    mr_err e;
    if (n < 0) return luaL_error(L, "head: n must be >= 0, got %d", (int)n);
    return lf_result(L, ops_head(f, (size_t)n, &e), "head", &e);
}

static int m_select(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    size_t n;
    const char **names = names_arg(L, 2, &n);
    mr_err e;
    return lf_result(L, ops_select(f, names, n, &e), "select", &e);
}

static void push_ops_value(lua_State *L, int idx, ops_value *v)
{
    memset(v, 0, sizeof *v);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE: v->kind = OPS_VNULL; break;
    case LUA_TNUMBER: v->kind = OPS_VNUM; v->num = lua_tonumber(L, idx); break;
    case LUA_TSTRING: v->kind = OPS_VSTR; v->str = lua_tolstring(L, idx, &v->len); break;
    case LUA_TBOOLEAN: v->kind = OPS_VBOOL; v->b = lua_toboolean(L, idx); break;
    default: luaL_error(L, "filter: cannot compare with a %s", luaL_typename(L, idx));
    }
}

static int m_filter(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    mr_err e;
    if (lua_type(L, 2) == LUA_TFUNCTION) {
        size_t n = frame_nrows(f), nc = frame_ncols(f);
        uint8_t *keep;
        int names, row;
        lua_settop(L, 2);
        keep = (uint8_t *)lua_newuserdata(L, n ? n : 1);
        names = push_names(L, f, nc);
        lua_createtable(L, 0, (int)nc);
        row = lua_gettop(L);
        /* one row table, refilled per row: predicates read it, they should not keep it */
        for (size_t i = 0; i < n; i++) {
            fill_row(L, f, nc, i, names, row);
            lua_pushvalue(L, 2);
            lua_pushvalue(L, row);
            lua_call(L, 1, 1);
            keep[i] = (uint8_t)lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
        return lf_result(L, ops_filter_mask(f, keep, &e), "filter", &e);
    } else {
        const char *col = luaL_checkstring(L, 2);
        const char *op = luaL_checkstring(L, 3);
        ops_cmp cmp;
        ops_value v;
        if (ops_cmp_parse(op, &cmp) != 0)
            return luaL_error(L, "filter: unknown operator '%s' (use == ~= < <= > >=)", op);
        if (frame_col_index(f, col) < 0) return luaL_error(L, "filter: unknown column '%s'", col);
        push_ops_value(L, 4, &v);
        return lf_result(L, ops_filter_cmp(f, col, cmp, &v, &e), "filter", &e);
    }
}

static int m_with_column(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    const char *name = luaL_checkstring(L, 2);
    size_t n = frame_nrows(f), nc = frame_ncols(f);
    int vt = lua_type(L, 3);
    lf_build *b;
    frame *g;
    mr_err e;
    frame_col *c;
    lua_settop(L, 3);
    if (vt == LUA_TTABLE && nc == 0) n = values_len(L, 3);
    if (vt == LUA_TTABLE && values_len(L, 3) > n)
        return luaL_error(L, "with_column: '%s' has %d values, the frame %d rows", name,
                          (int)values_len(L, 3), (int)n);
    b = build_new(L, 0, FRAME_STR);   /* index 4 */
    if (vt == LUA_TFUNCTION) {
        int names = push_names(L, f, nc), row;
        lua_createtable(L, 0, (int)nc);
        row = lua_gettop(L);
        for (size_t i = 0; i < n; i++) {
            fill_row(L, f, nc, i, names, row);
            lua_pushvalue(L, 3);
            lua_pushvalue(L, row);
            lua_call(L, 1, 1);
            build_push(L, b, name, -1, i + 1);
            lua_pop(L, 1);
        }
    } else if (vt == LUA_TTABLE) {
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, 3, (int)i + 1);
            build_push(L, b, name, -1, i + 1);
            lua_pop(L, 1);
        }
    } else {   /* a constant for every row */
        for (size_t i = 0; i < n; i++) build_push(L, b, name, 3, i + 1);
    }
    g = frame_clone(f, &e);
    if (!g) return luaL_error(L, "with_column: %s", e.msg);
    lframe_push(L, g);
    c = build_finish(L, b, name);
    attach_or_raise(L, g, c, "with_column");
    return 1;
}

static int m_concat(lua_State *L)
{
    return concat_frames(L, 1, lua_gettop(L), "concat");
}

static int m_clone(lua_State *L)
{
    mr_err e;
    return lf_result(L, frame_clone(lf_frame(L, 1), &e), "clone", &e);
}

void lframe_check_sort_spec(lua_State *L, int idx, const char *what, ops_sort_key *k)
{
    k->descending = 0;
    if (lua_type(L, idx) == LUA_TSTRING) {
        k->col = lua_tostring(L, idx);
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "%s: expected \"col\" or {\"col\", \"desc\"}, got %s", what,
                   luaL_typename(L, idx));
    lua_rawgeti(L, idx, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: {\"col\", \"desc\"}: col must be a string", what);
    k->col = lua_tostring(L, -1);   /* anchored by the spec table */
    lua_pop(L, 1);
    lua_rawgeti(L, idx, 2);
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *d = lua_tostring(L, -1);
        if (strcmp(d, "desc") == 0) k->descending = 1;
        else if (strcmp(d, "asc") != 0)
            luaL_error(L, "%s: direction must be \"asc\" or \"desc\", got '%s'", what, d);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "desc");
    if (lua_toboolean(L, -1)) k->descending = 1;
    lua_pop(L, 1);
}

int lframe_is_sort_spec(lua_State *L, int idx)
{
    if (!lua_istable(L, idx)) return 0;
    lua_rawgeti(L, idx, 2);
    int is_spec = lua_type(L, -1) == LUA_TSTRING &&
                  (strcmp(lua_tostring(L, -1), "asc") == 0 || strcmp(lua_tostring(L, -1), "desc") == 0);
    lua_pop(L, 1);
    lua_getfield(L, idx, "desc");
    is_spec = is_spec || !lua_isnil(L, -1);
    lua_pop(L, 1);
    return is_spec;
}

static int m_sort_by(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    int top = lua_gettop(L), first = 2;
    size_t n;
    ops_sort_key *keys;
    mr_err e;
    /* sort_by{ "a", {"b","desc"} }: one list of specs */
    if (top == 2 && lua_istable(L, 2)) {
        if (!lframe_is_sort_spec(L, 2)) {
            size_t len = lua_objlen(L, 2);
            for (size_t i = 0; i < len; i++) lua_rawgeti(L, 2, (int)i + 1);
            first = 3;
            top = lua_gettop(L);
        }
    }
    n = top >= first ? (size_t)(top - first + 1) : 0;
    if (n == 0) return luaL_error(L, "sort_by: give at least one column");
    keys = (ops_sort_key *)lua_newuserdata(L, n * sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        lframe_check_sort_spec(L, first + (int)i, "sort_by", &keys[i]);
        if (frame_col_index(f, keys[i].col) < 0)
            return luaL_error(L, "sort_by: unknown column '%s'", keys[i].col);
    }
    return lf_result(L, ops_sort(f, keys, n, &e), "sort_by", &e);
}

static int m_distinct(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    size_t n;
    const char **names = names_arg(L, 2, &n);
    mr_err e;
    return lf_result(L, ops_distinct(f, names, n, &e), "distinct", &e);
}

/* Key names from a string or an array at idx; pushes the scratch array. */
static const char **join_keys(lua_State *L, int idx, size_t *n, const char *side)
{
    const char **v;
    if (lua_type(L, idx) == LUA_TSTRING) {
        v = (const char **)lua_newuserdata(L, sizeof *v);
        v[0] = lua_tostring(L, idx);
        *n = 1;
        return v;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "join: %s keys must be a column name or a list of names", side);
    *n = lua_objlen(L, idx);
    v = (const char **)lua_newuserdata(L, (*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "join: %s key %d must be a string", side, (int)i + 1);
        v[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    return v;
}

static int m_join(lua_State *L)
{
    const frame *left = lf_frame(L, 1);
    const frame *right = lf_frame(L, 2);
    const char **lk, **rk;
    size_t nl, nr;
    join_kind kind = JOIN_INNER;
    int on;
    mr_err e;
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    lua_getfield(L, 3, "on");          /* 4 */
    on = 4;
    if (lua_isnil(L, on)) return luaL_error(L, "join: missing 'on' (a key column, a list, or {left=, right=})");
    lua_getfield(L, 3, "how");         /* 5 */
    if (!lua_isnil(L, 5)) {
        const char *how = luaL_checkstring(L, 5);
        if (strcmp(how, "left") == 0) kind = JOIN_LEFT;
        else if (strcmp(how, "inner") != 0)
            return luaL_error(L, "join: how must be \"inner\" or \"left\", got '%s'", how);
    }
    if (lua_istable(L, on)) {
        lua_getfield(L, on, "left");   /* 6 */
        lua_getfield(L, on, "right");  /* 7 */
        if (!lua_isnil(L, 6) || !lua_isnil(L, 7)) {
            if (lua_isnil(L, 6) || lua_isnil(L, 7))
                return luaL_error(L, "join: on = {left=..., right=...} needs both sides");
            lk = join_keys(L, 6, &nl, "left");
            rk = join_keys(L, 7, &nr, "right");
            if (nl != nr) return luaL_error(L, "join: %d left keys but %d right keys", (int)nl, (int)nr);
            return lf_result(L, join_run(left, right, lk, rk, nl, kind, &e), "join", &e);
        }
    }
    lk = join_keys(L, on, &nl, "on");
    if (nl == 0) return luaL_error(L, "join: no key columns");
    for (size_t i = 0; i < nl; i++) {
        if (frame_col_index(left, lk[i]) < 0) return luaL_error(L, "join: left frame has no column '%s'", lk[i]);
        if (frame_col_index(right, lk[i]) < 0) return luaL_error(L, "join: right frame has no column '%s'", lk[i]);
    }
    return lf_result(L, join_run(left, right, lk, lk, nl, kind, &e), "join", &e);
}

static int m_format(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, LFRAME_DEFAULT_PRINT_ROWS);
    char *s = frame_format(f, n < 0 ? 0 : (size_t)n);
    if (!s) return luaL_error(L, "format: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int m_tostring(lua_State *L)
{
    lframe_ud *u = lf_check(L, 1);
    if (!u->f) {
        lua_pushstring(L, "frame (no longer valid)");
        return 1;
    }
    lua_settop(L, 1);
    return m_format(L);
}

static int m_len(lua_State *L)
{
    return m_nrows(L);
}

/* ---------------------------------------------------------------- group_by / agg */

static int m_group_by(lua_State *L)
{
    const frame *f = lf_frame(L, 1);
    size_t n;
    const char **keys = names_arg(L, 2, &n);
    for (size_t i = 0; i < n; i++)
        if (frame_col_index(f, keys[i]) < 0) return luaL_error(L, "group_by: unknown column '%s'", keys[i]);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "frame");
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, keys[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "keys");
    luaL_getmetatable(L, LGROUPED_MT);
    lua_setmetatable(L, -2);
    return 1;
}

typedef struct agg_item {
    groupby_agg a;
    double seq;
} agg_item;

static int cmp_agg(const void *pa, const void *pb)
{
    const agg_item *a = (const agg_item *)pa, *b = (const agg_item *)pb;
    if (a->seq != b->seq) return a->seq < b->seq ? -1 : 1;
    return strcmp(a->a.out, b->a.out);
}

static int parse_agg_fn(const char *s, groupby_fn *fn)
{
    static const struct { const char *name; groupby_fn fn; } map[] = {
        {"count", GROUPBY_COUNT}, {"count_distinct", GROUPBY_COUNT_DISTINCT},
        {"sum", GROUPBY_SUM}, {"mean", GROUPBY_MEAN}, {"avg", GROUPBY_MEAN},
        {"min", GROUPBY_MIN}, {"max", GROUPBY_MAX}, {"first", GROUPBY_FIRST},
        {"quantile", GROUPBY_QUANTILE}, {"approx_quantile", GROUPBY_APPROX_QUANTILE},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].name) == 0) {
            *fn = map[i].fn;
            return 0;
        }
    return -1;
}

/* Reads one agg spec (the value at -1 for output name out) into it. */
static void read_agg(lua_State *L, const char *out, agg_item *it)
{
    const char *fn;
    it->a.out = out;
    it->a.col = NULL;
    it->a.q = 0.5;
    it->seq = 1e300;   /* shorthand specs go after constructed ones, by name */
    if (lua_type(L, -1) == LUA_TSTRING) {   /* agg{ n = "sum" }: the column named like the output */
        fn = lua_tostring(L, -1);
        if (parse_agg_fn(fn, &it->a.fn) != 0) luaL_error(L, "agg: '%s': unknown aggregate '%s'", out, fn);
        if (it->a.fn != GROUPBY_COUNT) it->a.col = out;
        return;
    }
    if (lua_type(L, -1) != LUA_TTABLE)
        luaL_error(L, "agg: '%s': expected an aggregate such as sum(\"col\"), got %s", out,
                   luaL_typename(L, -1));
    lua_getfield(L, -1, "fn");
    fn = lua_tostring(L, -1);
    if (!fn || parse_agg_fn(fn, &it->a.fn) != 0)
        luaL_error(L, "agg: '%s': unknown aggregate '%s'", out, fn ? fn : "?");
    lua_pop(L, 1);
    lua_getfield(L, -1, "col");
    if (lua_type(L, -1) == LUA_TSTRING) it->a.col = lua_tostring(L, -1);   /* anchored by the spec */
    else if (!lua_isnil(L, -1)) luaL_error(L, "agg: '%s': the column must be a name", out);
    lua_pop(L, 1);
    if (!it->a.col && it->a.fn != GROUPBY_COUNT)
        luaL_error(L, "agg: '%s': %s needs a column", out, fn);
    lua_getfield(L, -1, "q");
    if (!lua_isnil(L, -1)) it->a.q = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if ((it->a.fn == GROUPBY_QUANTILE || it->a.fn == GROUPBY_APPROX_QUANTILE) &&
        !(it->a.q >= 0 && it->a.q <= 1))
        luaL_error(L, "agg: '%s': quantile must be in [0, 1], got %g", out, it->a.q);
    lua_getfield(L, -1, "seq");
    if (lua_isnumber(L, -1)) it->seq = lua_tonumber(L, -1);
    lua_pop(L, 1);
}

groupby_agg *lframe_check_aggs(lua_State *L, int idx, size_t *naggs_out)
{
    size_t naggs = 0;
    agg_item *items;
    groupby_agg *aggs;
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        naggs++;
        lua_pop(L, 1);
    }
    if (naggs == 0) luaL_error(L, "agg: no aggregates given");
    items = (agg_item *)lua_newuserdata(L, naggs * sizeof *items);
    naggs = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "agg: output names must be strings");
        read_agg(L, lua_tostring(L, -2), &items[naggs++]);
        lua_pop(L, 1);
    }
    /* a table has no order; the constructors' sequence numbers recover the source order */
    qsort(items, naggs, sizeof *items, cmp_agg);
    aggs = (groupby_agg *)lua_newuserdata(L, naggs * sizeof *aggs);
    for (size_t i = 0; i < naggs; i++) aggs[i] = items[i].a;
    lua_remove(L, -2);
    *naggs_out = naggs;
    return aggs;
}

static int g_agg(lua_State *L)
{
    const frame *f;
    const char **keys;
    size_t nkeys, naggs;
    groupby_agg *aggs;
    mr_err e;
    int ok;
    luaL_checktype(L, 1, LUA_TTABLE);
    ok = lua_getmetatable(L, 1);
    if (ok) {
        luaL_getmetatable(L, LGROUPED_MT);
        ok = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!ok) return luaL_error(L, "agg: call it on f:group_by(...), as g:agg{...}");
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_getfield(L, 1, "frame");   /* 3 */
    f = lf_frame(L, 3);
    lua_getfield(L, 1, "keys");    /* 4 */
    keys = names_arg(L, 4, &nkeys);
    aggs = lframe_check_aggs(L, 2, &naggs);
    for (size_t i = 0; i < naggs; i++) {
        if (aggs[i].col && frame_col_index(f, aggs[i].col) < 0)
            return luaL_error(L, "agg: '%s': unknown column '%s'", aggs[i].out, aggs[i].col);
    }
    return lf_result(L, groupby_run(f, keys, nkeys, aggs, naggs, &e), "agg", &e);
}

/* ---------------------------------------------------------------- registration */

static const luaL_Reg frame_methods[] = {
    {"append", m_append},     {"add_column", m_add_column}, {"column", m_column},
    {"get", m_get},           {"row", m_row},               {"nrows", m_nrows},
    {"ncols", m_ncols},       {"columns", m_columns},       {"schema", m_schema},
    {"rows", m_rows},         {"head", m_head},             {"limit", m_head},
    {"select", m_select},     {"filter", m_filter},         {"with_column", m_with_column},
    {"concat", m_concat},     {"sort_by", m_sort_by},       {"distinct", m_distinct},
    {"join", m_join},         {"group_by", m_group_by},     {"to_table", m_to_table},
    {"format", m_format},     {"clone", m_clone},           {NULL, NULL},
};

static const luaL_Reg frame_lib[] = {
    {"new", f_new}, {"from_rows", lframe_from_rows}, {"concat", f_concat},
    {"is_frame", f_is_frame}, {NULL, NULL},
};

void lframe_register(lua_State *L)
{
    lframe_env *env;
    lua_pushlightuserdata(L, &lframe_env_key);
    env = (lframe_env *)lua_newuserdata(L, sizeof *env);
    memset(env, 0, sizeof *env);
    lua_rawset(L, LUA_REGISTRYINDEX);

    luaL_newmetatable(L, LFRAME_MT);
    lua_pushcfunction(L, lf_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, m_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, m_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "frame");
    lua_setfield(L, -2, "__name");
    lua_newtable(L);
    luaL_setfuncs(L, frame_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    luaL_newmetatable(L, LGROUPED_MT);
    lua_newtable(L);
    lua_pushcfunction(L, g_agg);
    lua_setfield(L, -2, "agg");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    luaL_newmetatable(L, LBUILD_MT);
    lua_pushcfunction(L, lb_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    lua_newtable(L);
    luaL_setfuncs(L, frame_lib, 0);
    lua_setglobal(L, "frame");
}

void lframe_push_methods(lua_State *L)
{
    luaL_getmetatable(L, LFRAME_MT);
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
}

void lframe_push_grouped_methods(lua_State *L)
{
    luaL_getmetatable(L, LGROUPED_MT);
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
}
