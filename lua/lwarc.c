#include "lwarc.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "../connectors/lang.h"
#include "../connectors/warc.h"
#include "lframe.h"

#define LWARC_INPUT_MT "luamr.warc_input"
#define LWARC_REC_MT "luamr.warc_record"

typedef struct lwarc_input {
    script_task *t;          /* NULL once closed (the map call returned) */
    char *uri;
    warc_reader *r;
    warc_record rec;         /* the record the loop is on */
    uint64_t gen;            /* bumped on every step, so stale record views are caught */
    uint64_t bytes_base;
} lwarc_input;

typedef struct lwarc_rec {
    lwarc_input *in;         /* kept alive through the record's environment table */
    uint64_t gen;
} lwarc_rec;

static lwarc_input *in_check(lua_State *L, int idx)
{
    return (lwarc_input *)luaL_checkudata(L, idx, LWARC_INPUT_MT);
}

static void in_close_reader(lwarc_input *in)
{
    warc_free(in->r);
    in->r = NULL;
    in->gen++;
}

static script_task *in_task(lua_State *L, lwarc_input *in)
{
    if (!in->t) luaL_error(L, "input is no longer valid: the map call it was given to has returned");
    return in->t;
}

static unsigned type_mask_arg(lua_State *L, int idx)
{
    unsigned mask = 0;
    if (lua_isnoneornil(L, idx)) return 0;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        warc_type t = warc_type_parse(s, n);
        if (t == WARC_OTHER) luaL_error(L, "unknown WARC record type '%s'", s);
        return 1u << t;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    for (int i = 1;; i++) {
        lua_rawgeti(L, idx, i);
        if (lua_isnil(L, -1)) { lua_pop(L, 1); break; }
        size_t n;
        const char *s = luaL_checklstring(L, -1, &n);
        warc_type t = warc_type_parse(s, n);
        if (t == WARC_OTHER) luaL_error(L, "unknown WARC record type '%s'", s);
        mask |= 1u << t;
        lua_pop(L, 1);
    }
    return mask;
}

static void in_open(lua_State *L, lwarc_input *in)
{
    script_task *t = in_task(L, in);
    warc_opts o;
    mr_err e;
    in_close_reader(in);
    warc_opts_init(&o);
    if (t->ropts) o.max_records = t->ropts->max_records;
    mr_err_clear(&e);
    in->r = warc_open(in->uri, &o, t->on_bad, t->bad_ud, &e);
    if (!in->r) luaL_error(L, "%s", e.msg);
    in->bytes_base = t->bytes_in;
}

/* ---------------------------------------------------------------- records */

static lwarc_rec *rec_check(lua_State *L, int idx)
{
    lwarc_rec *u = (lwarc_rec *)luaL_checkudata(L, idx, LWARC_REC_MT);
    if (u->gen != u->in->gen)
        luaL_error(L, "WARC record used after the loop moved on (records are views; copy what "
                      "you need, e.g. rec.uri or rec:payload())");
    return u;
}

static void push_opt(lua_State *L, const char *s, size_t n)
{
    if (s) lua_pushlstring(L, s, n);
    else lua_pushnil(L);
}

static int rec_header(lua_State *L)
{
    lwarc_rec *u = rec_check(L, 1);
    const char *name = luaL_checkstring(L, 2);
    size_t n = 0;
    const char *v = warc_record_header(&u->in->rec, name, &n);
    push_opt(L, v, n);
    return 1;
}

static int rec_http_header(lua_State *L)
{
    lwarc_rec *u = rec_check(L, 1);
    const char *name = luaL_checkstring(L, 2);
    size_t n = 0;
    const char *v = warc_record_http_header(&u->in->rec, name, &n);
    push_opt(L, v, n);
    return 1;
}

static void push_bytes(lua_State *L, const char *p, size_t n, int max_idx)
{
    if (!lua_isnoneornil(L, max_idx)) {
        lua_Integer max = luaL_checkinteger(L, max_idx);
        if (max < 0) luaL_argerror(L, max_idx, "must be >= 0");
        if ((size_t)max < n) n = (size_t)max;
    }
    lua_pushlstring(L, p, n);
}

static int rec_payload(lua_State *L)
{
    lwarc_rec *u = rec_check(L, 1);
    push_bytes(L, u->in->rec.payload, u->in->rec.payload_len, 2);
    return 1;
}

static int rec_block(lua_State *L)
{
    lwarc_rec *u = rec_check(L, 1);
    push_bytes(L, u->in->rec.block, u->in->rec.block_len, 2);
    return 1;
}

static int rec_language(lua_State *L)
{
    lwarc_rec *u = rec_check(L, 1);
    char lang[LANG_TAG_MAX];
    size_t n = warc_record_language(&u->in->rec, lang);
    lua_pushlstring(L, lang, n);
    return 1;
}

static int rec_index(lua_State *L)
{
    lwarc_rec *u = rec_check(L, 1);
    const warc_record *r = &u->in->rec;
    const char *k = luaL_checkstring(L, 2);
    const char *s;
    size_t n = 0;
    char buf[128];
    switch (k[0]) {
    case 't':
        if (strcmp(k, "type") == 0) { lua_pushstring(L, warc_type_name(r->type)); return 1; }
        if (strcmp(k, "truncated") == 0) { lua_pushboolean(L, r->block_truncated); return 1; }
        break;
    case 'u':
        if (strcmp(k, "uri") == 0) { s = warc_record_uri(r, &n); push_opt(L, s, n); return 1; }
        break;
    case 's':
        if (strcmp(k, "status") == 0) {
            if (r->status) lua_pushinteger(L, r->status);
            else lua_pushnil(L);
            return 1;
        }
        break;
    case 'p':
        if (strcmp(k, "payload_length") == 0) { lua_pushnumber(L, (lua_Number)r->payload_length); return 1; }
        break;
    case 'c':
        if (strcmp(k, "content_length") == 0) { lua_pushnumber(L, (lua_Number)r->content_length); return 1; }
        if (strcmp(k, "content_type") == 0) {
            s = r->is_http ? warc_record_http_header(r, "Content-Type", &n)
                           : warc_record_header(r, "Content-Type", &n);
            push_opt(L, s, n);
            return 1;
        }
        break;
    case 'm':
        if (strcmp(k, "mime") == 0) {
            n = warc_record_mime(r, buf, sizeof buf);
            push_opt(L, n ? buf : NULL, n);
            return 1;
        }
        break;
    case 'd':
        if (strcmp(k, "date") == 0) { s = warc_record_header(r, "WARC-Date", &n); push_opt(L, s, n); return 1; }
        break;
    case 'r':
        if (strcmp(k, "record_id") == 0) { s = warc_record_header(r, "WARC-Record-ID", &n); push_opt(L, s, n); return 1; }
        break;
    case 'o':
        if (strcmp(k, "offset") == 0) { lua_pushnumber(L, (lua_Number)r->offset); return 1; }
        break;
    case 'n':
        if (strcmp(k, "number") == 0) { lua_pushnumber(L, (lua_Number)r->number); return 1; }
        break;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, k);
    return 1;
}

static int rec_tostring(lua_State *L)
{
    lwarc_rec *u = (lwarc_rec *)luaL_checkudata(L, 1, LWARC_REC_MT);
    if (u->gen != u->in->gen) {
        lua_pushliteral(L, "warc record (stale)");
        return 1;
    }
    size_t n = 0;
    const char *uri = warc_record_uri(&u->in->rec, &n);
    lua_pushfstring(L, "warc %s record %s", warc_type_name(u->in->rec.type), uri ? uri : "");
    return 1;
}

/* upvalues: the input, the environment table every record of it shares, the type mask */
static int records_iter(lua_State *L)
{
    lwarc_input *in = in_check(L, lua_upvalueindex(1));
    unsigned mask = (unsigned)lua_tointeger(L, lua_upvalueindex(3));
    mr_err e;
    int rc;
    if (!in->r || !in->t) return 0;
    mr_err_clear(&e);
    do {
        in->gen++;
        rc = warc_next(in->r, &in->rec, &e);
        if (rc == 1) in->t->records_in++;
    } while (rc == 1 && mask && !(mask & (1u << in->rec.type)));
    in->t->bytes_in = in->bytes_base + warc_bytes(in->r);
    if (rc < 0) {
        in_close_reader(in);
        return luaL_error(L, "%s", e.msg);
    }
    if (rc == 0) {
        in_close_reader(in);
        return 0;
    }
    lwarc_rec *u = (lwarc_rec *)lua_newuserdata(L, sizeof *u);
    u->in = in;
    u->gen = in->gen;
    luaL_getmetatable(L, LWARC_REC_MT);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_setfenv(L, -2);
    return 1;
}

static int in_records(lua_State *L)
{
    lwarc_input *in = in_check(L, 1);
    unsigned mask = type_mask_arg(L, 2);
    in_open(L, in);
    lua_settop(L, 1);
    lua_getfenv(L, 1);           /* {input}: keeps the input alive while records are */
    lua_pushinteger(L, (lua_Integer)mask);
    lua_pushcclosure(L, records_iter, 3);
    return 1;
}

/* input:frame{columns = {...}, types = {...}} */
static int in_frame(lua_State *L)
{
    lwarc_input *in = in_check(L, 1);
    warc_col cols[WARC_NCOLS];
    size_t ncols = 0;
    unsigned mask = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "columns");
        if (!lua_isnil(L, -1)) {
            luaL_checktype(L, -1, LUA_TTABLE);
            for (int i = 1;; i++) {
                lua_rawgeti(L, -1, i);
                if (lua_isnil(L, -1)) { lua_pop(L, 1); break; }
                const char *name = luaL_checkstring(L, -1);
                warc_col c;
                if (warc_col_parse(name, &c) != 0)
                    luaL_error(L, "input:frame: unknown WARC column '%s' (known: type, uri, date, "
                                  "record_id, status, mime, language, content_length, "
                                  "payload_length, offset)", name);
                if (ncols == WARC_NCOLS) luaL_error(L, "input:frame: column '%s' given twice", name);
                cols[ncols++] = c;
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        lua_getfield(L, 2, "types");
        mask = type_mask_arg(L, lua_gettop(L));
        lua_pop(L, 1);
    }
    in_open(L, in);
    script_task *t = in->t;
    mr_err e;
    mr_err_clear(&e);
    uint64_t before = warc_records(in->r);
    frame *f = warc_frame(in->r, cols, ncols, mask, &e);
    t->records_in += warc_records(in->r) - before;
    t->bytes_in = in->bytes_base + warc_bytes(in->r);
    in_close_reader(in);
    if (!f) return luaL_error(L, "%s", e.msg);
    lframe_push(L, f);
    return 1;
}

static int in_index(lua_State *L)
{
    lwarc_input *in = in_check(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "uri") == 0) {
        lua_pushstring(L, in->uri);
        return 1;
    }
    if (strcmp(k, "format") == 0) {
        lua_pushliteral(L, "warc");
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, k);
    return 1;
}

static int in_tostring(lua_State *L)
{
    lwarc_input *in = in_check(L, 1);
    lua_pushfstring(L, "input(%s, warc)%s", in->uri, in->t ? "" : " (closed)");
    return 1;
}

static int in_gc(lua_State *L)
{
    lwarc_input *in = in_check(L, 1);
    in_close_reader(in);
    free(in->uri);
    in->uri = NULL;
    in->t = NULL;
    return 0;
}

static void new_metatable(lua_State *L, const char *name, lua_CFunction index,
                          lua_CFunction tostring, lua_CFunction gc, const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    if (gc) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
}

void lwarc_register(lua_State *L)
{
    static const luaL_Reg in_methods[] = {
        {"records", in_records}, {"frame", in_frame}, {NULL, NULL},
    };
    static const luaL_Reg rec_methods[] = {
        {"header", rec_header}, {"http_header", rec_http_header}, {"payload", rec_payload},
        {"block", rec_block}, {"language", rec_language}, {NULL, NULL},
    };
    new_metatable(L, LWARC_INPUT_MT, in_index, in_tostring, in_gc, in_methods);
    new_metatable(L, LWARC_REC_MT, rec_index, rec_tostring, NULL, rec_methods);
}

int lwarc_push_input(lua_State *L, const script_task *t, mr_err *e)
{
    const char *uri = t->input_uri ? t->input_uri : "";
    char *copy = strdup(uri);
    if (!copy) return mr_fail(e, MR_ENOMEM, "%s: out of memory", uri), -1;
    lwarc_input *in = (lwarc_input *)lua_newuserdata(L, sizeof *in);
    memset(in, 0, sizeof *in);
    /* The task is the caller's and not const to it; the input only updates the task's
     * records_in/bytes_in counters, as the other formats' input does. */
    in->t = (script_task *)t;
    in->uri = copy;
    luaL_getmetatable(L, LWARC_INPUT_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, 1);
    lua_setfenv(L, -2);
    return 0;
}

void lwarc_close(lua_State *L, int idx)
{
    lwarc_input *in = (lwarc_input *)luaL_testudata(L, idx, LWARC_INPUT_MT);
    if (!in) return;
    in_close_reader(in);
    in->t = NULL;
}
