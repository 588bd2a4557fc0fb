#include "linput.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>

#include "lframe.h"

/* The WARC bindings are another engineer's unit: use them only once both files exist, so
 * this file builds (and links) whatever state theirs is in. */
#if defined(__has_include)
#if __has_include("lwarc.h") && __has_include("lwarc.c")
#include "lwarc.h"
#define LINPUT_HAVE_WARC 1
#endif
#endif

#define LINPUT_MT "luamr.input"
#define LINPUT_JSON_MAX_DEPTH 200

typedef struct linput_ud {
    script_task *t;          /* NULL once the map call returned */
    linput_track *track;
    reader *r;
    reader_format fmt;       /* of the open reader */
    uint64_t bytes_base;     /* t->bytes_in before the open reader started */
} linput_ud;

static linput_ud *in_check(lua_State *L, int idx)
{
    return (linput_ud *)luaL_checkudata(L, idx, LINPUT_MT);
}

static script_task *in_task(lua_State *L, linput_ud *u)
{
    if (!u->t) luaL_error(L, "input is no longer valid: the map call it was given to has returned");
    return u->t;
}

static void in_close_reader(linput_ud *u)
{
    reader_free(u->r);
    u->r = NULL;
}

/* Records the reader's error for the task and raises it in Lua. */
static int in_fail(lua_State *L, linput_ud *u, const mr_err *e)
{
    if (u->track) u->track->err = *e;
    in_close_reader(u);
    return luaL_error(L, "%s", e->msg);
}

static void in_opts(const script_task *t, reader_opts *o)
{
    reader_format f;
    if (t->ropts) {
        *o = *t->ropts;
        return;
    }
    reader_opts_init(o);
    if (t->format && reader_format_parse(t->format, &f) == 0) o->format = f;
    if (t->format && strcmp(t->format, "tsv") == 0) o->delimiter = '\t';
}

static void in_open(lua_State *L, linput_ud *u, int lines_only)
{
    script_task *t = in_task(L, u);
    reader_opts o;
    mr_err e;
    in_close_reader(u);
    in_opts(t, &o);
    if (lines_only) o.format = READER_LINES;
    mr_err_clear(&e);
    u->r = reader_open(t->input_uri, &o, t->on_bad, t->bad_ud, &e);
    if (!u->r) in_fail(L, u, &e);
    u->fmt = o.format;
    u->bytes_base = t->bytes_in;
}

/* Is rec one that map failed on in an earlier attempt (skipFailingRecords)? Then it goes
 * to the error destination with the error map raised, and the iterator moves past it. */
static int in_skipped(script_task *t, const reader_rec *rec, mr_err *e)
{
    size_t lo = 0, hi = t->nskip;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->skip_records[mid] == rec->number) {
            char reason[1024];
            snprintf(reason, sizeof reason, "skipped: map raised an error on this record: %s",
                     t->skip_reasons ? t->skip_reasons[mid] : "(no message)");
            reader_bad bad = {t->input_uri, rec->number, rec->offset, NULL, reason, rec->raw,
                              rec->raw_len < 256 ? rec->raw_len : 256};
            if (t->on_bad && t->on_bad(&bad, t->bad_ud, e) != MR_OK) return -1;
            return 1;
        }
        if (t->skip_records[mid] < rec->number) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* 1 with rec filled, 0 at the end (reader closed); raises on a reader error. */
static int in_next(lua_State *L, linput_ud *u, reader_rec *rec)
{
    mr_err e;
    int rc;
    if (!u->r || !u->t) return 0;
    mr_err_clear(&e);
    for (;;) {
        rc = reader_next(u->r, rec, &e);
        if (rc != 1) break;
        int skip = in_skipped(u->t, rec, &e);
        if (skip < 0) return in_fail(L, u, &e);
        if (!skip) break;
    }
    if (rc < 0) return in_fail(L, u, &e);
    u->t->bytes_in = u->bytes_base + reader_bytes(u->r);
    if (rc == 0) {
        in_close_reader(u);
        return 0;
    }
    u->t->records_in++;
    if (u->track) u->track->record = rec->number;
    return 1;
}

static int lines_iter(lua_State *L)
{
    linput_ud *u = in_check(L, lua_upvalueindex(1));
    reader_rec rec;
    if (!in_next(L, u, &rec)) return 0;
    lua_pushlstring(L, rec.raw, rec.raw_len);
    return 1;
}

static int in_lines(lua_State *L)
{
    linput_ud *u = in_check(L, 1);
    in_open(L, u, 1);
    lua_settop(L, 1);
    lua_pushcclosure(L, lines_iter, 1);
    return 1;
}

static void push_json(lua_State *L, const cJSON *j, int depth)
{
    if (depth > LINPUT_JSON_MAX_DEPTH) luaL_error(L, "records: JSON nested deeper than %d levels", LINPUT_JSON_MAX_DEPTH);
    luaL_checkstack(L, 3, "records: JSON too deep");
    if (cJSON_IsTrue(j)) {
        lua_pushboolean(L, 1);
    } else if (cJSON_IsFalse(j)) {
        lua_pushboolean(L, 0);
    } else if (cJSON_IsNumber(j)) {
        lua_pushnumber(L, j->valuedouble);
    } else if (cJSON_IsString(j)) {
        lua_pushstring(L, j->valuestring ? j->valuestring : "");
    } else if (cJSON_IsArray(j)) {
        int i = 0;
        const cJSON *c;
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        cJSON_ArrayForEach(c, j) {
            i++;
            if (cJSON_IsNull(c)) continue;
            push_json(L, c, depth + 1);
            lua_rawseti(L, -2, i);
        }
    } else if (cJSON_IsObject(j)) {
        const cJSON *c;
        lua_newtable(L);
        cJSON_ArrayForEach(c, j) {
            if (cJSON_IsNull(c) || !c->string) continue;
            lua_pushstring(L, c->string);
            push_json(L, c, depth + 1);
            lua_rawset(L, -3);
        }
    } else {
        lua_pushnil(L);
    }
}

/* upvalues: input userdata, header-name cache (array of Lua strings) */
static int records_iter(lua_State *L)
{
    linput_ud *u = in_check(L, lua_upvalueindex(1));
    reader_rec rec;
    if (!in_next(L, u, &rec)) return 0;
    switch (u->fmt) {
    case READER_LINES:
        lua_pushlstring(L, rec.raw, rec.raw_len);
        return 1;
    case READER_JSONL:
        if (!rec.json) {
            lua_newtable(L);
            return 1;
        }
        push_json(L, (const cJSON *)rec.json, 0);
        return 1;
    case READER_CSV:
        break;
    }
    lua_createtable(L, rec.names ? 0 : (int)rec.nfields, rec.names ? (int)rec.nfields : 0);
    for (size_t i = 0; i < rec.nfields; i++) {
        if (rec.names) {
            /* header names are the same for every record: intern them once */
            lua_rawgeti(L, lua_upvalueindex(2), (int)i + 1);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushstring(L, rec.names[i] ? rec.names[i] : "");
                lua_pushvalue(L, -1);
                lua_rawseti(L, lua_upvalueindex(2), (int)i + 1);
            }
            lua_pushlstring(L, rec.fields[i], rec.field_lens[i]);
            lua_rawset(L, -3);
        } else {
            lua_pushlstring(L, rec.fields[i], rec.field_lens[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
    }
    return 1;
}

static int in_records(lua_State *L)
{
    linput_ud *u = in_check(L, 1);
    in_open(L, u, 0);
    lua_settop(L, 1);
    lua_newtable(L);
    lua_pushcclosure(L, records_iter, 2);
    return 1;
}

/* Counts what the open reader read since it had handed out `before` records into the
 * task's figures, and remembers the last record for error reports. */
static void in_count(linput_ud *u, uint64_t before)
{
    u->t->records_in += reader_records(u->r) - before;
    u->t->bytes_in = u->bytes_base + reader_bytes(u->r);
    if (u->track) u->track->record = reader_records(u->r);
}

static int in_frame(lua_State *L)
{
    linput_ud *u = in_check(L, 1);
    script_task *t;
    frame *f;
    mr_err e;
    in_open(L, u, 0);
    t = u->t;
    mr_err_clear(&e);
    f = reader_frame(u->r, &e);
    in_count(u, 0);
    if (!f && e.code == MR_ELIMIT && t->ropts && t->ropts->max_frame_bytes) {
        mr_wrap(&e, "input:frame(): ");
        size_t n = strlen(e.msg);
        snprintf(e.msg + n, sizeof e.msg - n, ", half of the task's memory budget "
                 "(compute.memoryMB): read it in batches (for f in input:frames() do "
                 "ctx:emit(...) end) or split the file (readConnector.splitSize)");
    }
    if (!f) return in_fail(L, u, &e);
    in_close_reader(u);
    lframe_push(L, f);
    return 1;
}

/* Rows per input:frames() batch unless the script says otherwise: enough that the per-batch
 * Lua work is noise, few enough that a batch of a wide file stays small. */
#define LINPUT_BATCH_ROWS 131072
/* A batch also ends at about this many bytes (or a quarter of input:frame()'s cap). */
#define LINPUT_BATCH_BYTES ((size_t)64 << 20)

/* upvalues: input userdata, rows per batch */
static int frames_iter(lua_State *L)
{
    linput_ud *u = in_check(L, lua_upvalueindex(1));
    size_t rows = (size_t)lua_tonumber(L, lua_upvalueindex(2));
    script_task *t;
    frame *f;
    mr_err e;
    if (!u->r || !u->t) return 0;
    t = u->t;
    size_t bytes = LINPUT_BATCH_BYTES;
    if (t->ropts && t->ropts->max_frame_bytes && t->ropts->max_frame_bytes / 4 < bytes)
        bytes = t->ropts->max_frame_bytes / 4;
    uint64_t before = reader_records(u->r);
    mr_err_clear(&e);
    f = reader_frame_batch(u->r, rows, bytes, &e);
    in_count(u, before);
    if (!f) return in_fail(L, u, &e);
    if (frame_nrows(f) == 0) {
        frame_free(f);
        in_close_reader(u);
        return 0;
    }
    lframe_push(L, f);
    return 1;
}

static int in_frames(lua_State *L)
{
    linput_ud *u = in_check(L, 1);
    lua_Number rows = luaL_optnumber(L, 2, LINPUT_BATCH_ROWS);
    if (rows < 1 || rows != rows) return luaL_argerror(L, 2, "rows per batch must be at least 1");
    in_open(L, u, 0);
    lua_settop(L, 1);
    lua_pushnumber(L, rows);
    lua_pushcclosure(L, frames_iter, 2);
    return 1;
}

static int in_index(lua_State *L)
{
    linput_ud *u = in_check(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "uri") == 0) {
        lua_pushstring(L, in_task(L, u)->input_uri);
        return 1;
    }
    if (strcmp(k, "format") == 0) {
        lua_pushstring(L, in_task(L, u)->format ? u->t->format : "lines");
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, k);
    return 1;
}

static int in_tostring(lua_State *L)
{
    linput_ud *u = in_check(L, 1);
    if (u->t) lua_pushfstring(L, "input(%s)", u->t->input_uri ? u->t->input_uri : "?");
    else lua_pushliteral(L, "input (closed)");
    return 1;
}

static int in_gc(lua_State *L)
{
    linput_ud *u = in_check(L, 1);
    in_close_reader(u);
    u->t = NULL;
    return 0;
}

void linput_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"lines", in_lines}, {"records", in_records}, {"frame", in_frame}, {"frames", in_frames},
        {NULL, NULL},
    };
    luaL_newmetatable(L, LINPUT_MT);
    lua_pushcfunction(L, in_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, in_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, in_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
#ifdef LINPUT_HAVE_WARC
    lwarc_register(L);
#endif
}

int linput_push(lua_State *L, script_task *t, linput_track *track, mr_err *e)
{
    linput_ud *u;
    reader_format f;
    if (t->format && strcmp(t->format, "warc") == 0) {
#ifdef LINPUT_HAVE_WARC
        return lwarc_push_input(L, t, e);
#else
        mr_fail(e, MR_EINVAL, "%s: warc reader not built", t->input_uri ? t->input_uri : "input");
        return -1;
#endif
    }
    if (!t->ropts && t->format && reader_format_parse(t->format, &f) != 0) {
        mr_fail(e, MR_EINVAL, "%s: unknown input format '%s'", t->input_uri ? t->input_uri : "input",
                t->format);
        return -1;
    }
    u = (linput_ud *)lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->t = t;
    u->track = track;
    luaL_getmetatable(L, LINPUT_MT);
    lua_setmetatable(L, -2);
    return 0;
}

void linput_close(lua_State *L, int idx)
{
    linput_ud *u = (linput_ud *)luaL_testudata(L, idx, LINPUT_MT);
    if (!u) {
#ifdef LINPUT_HAVE_WARC
        lwarc_close(L, idx);
#endif
        return;
    }
    in_close_reader(u);
    u->t = NULL;
    u->track = NULL;
}
