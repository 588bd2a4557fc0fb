#include "script.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "lframe.h"
#include "linput.h"
#include "prelude_bc.h"

/* Instructions between deadline checks while the task is within its time, and after it
 * ran out: then every instruction raises, so code that catches the timeout with pcall is
 * stopped by its very next instruction (a larger count would mostly land inside the
 * pcall'd loop again, which catches it forever). */
#define SCRIPT_HOOK_COUNT 1000000
#define SCRIPT_HOOK_EXPIRED_COUNT 1
#define SCRIPT_MAX_SOURCE ((size_t)64 << 20)

struct script {
    lua_State *L;
    char *path;
    char *dir;              /* folder require() loads modules from; NULL: not a local script */
    int job_ref;
    int counters_ref;
    int ctx_mt_ref;
    script_task *task;      /* the running task, NULL between tasks */
    linput_track track;
    unsigned epoch;
    int timed_out;
    char timeout_msg[512];  /* where the deadline caught the script, raised from then on */
    int jit_off;
    int emit_ref;           /* ctx:emit's frame for the running task, or LUA_NOREF */
    /* the declarative reduce and the partition keys, copied out of the Lua state */
    script_groupby groupby;
    int has_groupby;
    char **strs;            /* every string the two point into, freed with the script */
    size_t nstrs;
    const char **pkeys;
    size_t npkeys;
    ops_sort_key *okeys;    /* order_by */
    size_t nokeys;
};

static char script_key;

static script *script_of(lua_State *L)
{
    script *s;
    lua_pushlightuserdata(L, &script_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    s = (script *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *slurp_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!fp) return NULL;
    for (;;) {
        size_t got;
        if (n + 4096 + 1 > cap) {
            char *nb;
            cap = cap ? cap * 2 : 65536;
            if (cap > SCRIPT_MAX_SOURCE) {
                errno = EFBIG;
                goto fail;
            }
            nb = (char *)realloc(buf, cap);
            if (!nb) goto fail;
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (got == 0) break;
    }
    if (ferror(fp)) goto fail;
    fclose(fp);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    free(buf);
    fclose(fp);
    return NULL;
}

/* ---------------------------------------------------------------- logging */

static void script_log(script *s, const char *level, const char *msg)
{
    if (s && s->task && s->task->log) {
        s->task->log(s->task->log_ud, level, msg);
        return;
    }
    fprintf(stderr, "[%s] %s\n", level, msg);
}

/* Joins tostring() of the arguments first..top with sep into one string on the stack. */
static const char *join_args(lua_State *L, int first, const char *sep)
{
    int top = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = first; i <= top; i++) {
        if (i > first) luaL_addstring(&b, sep);
        lua_pushvalue(L, lua_upvalueindex(1));   /* the original tostring */
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        if (!lua_isstring(L, -1)) luaL_error(L, "'tostring' must return a string");
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

static int l_print(lua_State *L)
{
    script_log(script_of(L), "info", join_args(L, 1, "\t"));
    return 0;
}

static int ctx_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warn", "warning", "error", NULL};
    const char *level = "info";
    int first = 2;
    if (lua_gettop(L) >= 3 && lua_type(L, 2) == LUA_TSTRING) {
        const char *l = lua_tostring(L, 2);
        for (int i = 0; levels[i]; i++)
            if (strcmp(l, levels[i]) == 0) {
                level = strcmp(l, "warning") == 0 ? "warn" : levels[i];
                first = 3;
            }
    }
    script_log(script_of(L), level, join_args(L, first, " "));
    return 0;
}

/* ---------------------------------------------------------------- ctx */

static int ctx_count(lua_State *L)
{
    script *s = script_of(L);
    const char *name = luaL_checkstring(L, 2);
    lua_Number n = luaL_optnumber(L, 3, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->counters_ref);
    lua_getfield(L, -1, name);
    n += lua_tonumber(L, -1);
    lua_pop(L, 1);
    lua_pushnumber(L, n);
    lua_setfield(L, -2, name);
    return 0;
}

/* Hands the gathered rows (ctx:emit's frame) to the task's emit_flush; the next emit
 * starts a new frame. */
static int emit_flush_now(lua_State *L, script *s)
{
    script_task *t = s->task;
    mr_err e;
    mr_err_clear(&e);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->emit_ref);
    frame *rows = lframe_take(L, -1, &e);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, s->emit_ref);
    s->emit_ref = LUA_NOREF;
    if (!rows) return luaL_error(L, "ctx:emit: %s", e.msg);
    if (t->emit_flush(t->emit_ud, rows, &e) != MR_OK) {
        s->track.err = e;   /* the engine's failure, not the record's: never skipped */
        return luaL_error(L, "%s", e.msg);
    }
    return 0;
}

/* ctx:emit's frame for this task, made on the first emit; pushed. */
static int emit_frame(lua_State *L, script *s)
{
    if (s->emit_ref == LUA_NOREF) {
        frame *f = frame_create();
        if (!f) return luaL_error(L, "ctx:emit: out of memory");
        lframe_push(L, f);
        s->emit_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->emit_ref);
    return lua_gettop(L);
}

static int ctx_emit(lua_State *L)
{
    script *s = script_of(L);
    if (!s->task) return luaL_error(L, "ctx:emit: no task is running");
    int is_frame = lframe_get(L, 2) != NULL;
    if (!is_frame && !lua_istable(L, 2))
        return luaL_error(L, "ctx:emit: expected a row table or a frame, got %s", luaL_typename(L, 2));
    int fidx = emit_frame(L, s);
    if (!is_frame) {
        lframe_append_row(L, fidx, 2);
    } else {
        mr_err e;
        if (lframe_try_append_frame(L, fidx, 2, &e) != MR_OK) {
            /* a streaming task lets the engine reconcile the types (or name the clash) */
            if (!s->task->emit_flush || frame_nrows(lframe_get(L, fidx)) == 0)
                return luaL_error(L, "ctx:emit: %s", e.msg);
            emit_flush_now(L, s);
            fidx = emit_frame(L, s);
            lframe_append_frame(L, fidx, 2);
        }
    }
    /* rows are counted every 4096 since summing the buffers is not free */
    const frame *cur = lframe_get(L, fidx);
    size_t rows = frame_nrows(cur);
    if (!s->task->emit_flush || rows == 0 || (!is_frame && rows % 4096 != 0)) return 0;
    if (frame_mem_bytes(cur) < s->task->emit_flush_bytes) return 0;
    return emit_flush_now(L, s);
}

static void push_ctx(script *s, const script_task *t)
{
    lua_State *L = s->L;
    lua_createtable(L, 0, 8);
    lua_pushnumber(L, t->index);
    lua_setfield(L, -2, "task");
    lua_pushnumber(L, t->ntasks);
    lua_setfield(L, -2, "ntasks");
    lua_pushstring(L, t->kind ? t->kind : "");
    lua_setfield(L, -2, "kind");
    if (t->input_uri) {
        lua_pushstring(L, t->input_uri);
        lua_setfield(L, -2, "input");
    }
    lua_pushstring(L, t->run_id ? t->run_id : "");
    lua_setfield(L, -2, "run_id");
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ctx_mt_ref);
    lua_setmetatable(L, -2);
}

/* ---------------------------------------------------------------- sandbox */

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* load/loadstring that accept source text only: bytecode bypasses the compiler's checks
 * and can crash the VM. */
static int l_load(lua_State *L)
{
    size_t len = 0;
    const char *src, *name, *mode = luaL_optstring(L, 3, "t");
    int status;
    if (lua_type(L, 1) == LUA_TSTRING) {
        src = lua_tolstring(L, 1, &len);
        name = luaL_optstring(L, 2, src);
    } else {
        luaL_Buffer b;
        luaL_checktype(L, 1, LUA_TFUNCTION);
        name = luaL_optstring(L, 2, "=(load)");
        luaL_buffinit(L, &b);
        for (;;) {
            lua_pushvalue(L, 1);
            lua_call(L, 0, 1);
            if (lua_isnil(L, -1) || (lua_isstring(L, -1) && lua_objlen(L, -1) == 0)) {
                lua_pop(L, 1);
                break;
            }
            if (!lua_isstring(L, -1)) return luaL_error(L, "load: reader function must return a string");
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        src = lua_tolstring(L, -1, &len);
    }
    if (strchr(mode, 'b') && !strchr(mode, 't')) {
        lua_pushnil(L);
        lua_pushliteral(L, "load: binary chunks are not allowed");
        return 2;
    }
    if (len > 0 && src[0] == LUA_SIGNATURE[0]) {
        lua_pushnil(L);
        lua_pushliteral(L, "load: binary chunks are not allowed");
        return 2;
    }
    status = luaL_loadbufferx(L, src, len, name, "t");
    if (status != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (lua_gettop(L) >= 4 && !lua_isnil(L, 4)) {
        lua_pushvalue(L, 4);
        lua_setfenv(L, -2);
    }
    return 1;
}

/* xpcall(f, handler, ...) that runs the handler after the error has unwound rather than
 * at the point of the error. LuaJIT calls a message handler with hooks off when the error
 * was raised by a hook, so a handler that loops after a timeout would run out of the
 * deadline's reach. Without `debug` a handler cannot inspect the failed stack anyway.
 * In Lua, with pcall, so that f may still yield. Past the deadline the hook raises on the
 * first instruction after pcall(h, ...) returns, so the timeout is not swallowed here. */
static const char xpcall_src[] =
    "local pcall, type, error = pcall, type, error\n"
    "local function finish(h, ok, ...)\n"
    "  if ok then return true, ... end\n"
    "  local hok, v = pcall(h, (...))\n"
    "  if hok then return false, v end\n"
    "  return false, 'error in error handling'\n"
    "end\n"
    "return function(f, h, ...)\n"
    "  if type(h) ~= 'function' then\n"
    "    error(\"bad argument #2 to 'xpcall' (function expected, got \" .. type(h) .. ')', 2)\n"
    "  end\n"
    "  return finish(h, pcall(f, ...))\n"
    "end\n";

/* getmetatable that keeps the engine's userdata metatables (frames, inputs, WARC records)
 * to the engine: a script could otherwise call their __gc by hand or replace it with a
 * Lua function, which LuaJIT runs with hooks off. upvalue 1: the original. */
static int l_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    if (lua_type(L, 1) == LUA_TUSERDATA) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

static int valid_module_name(const char *n)
{
    if (!*n || *n == '.') return 0;
    for (const char *p = n; *p; p++) {
        if (*p == '.' && (p[1] == '.' || p[1] == '\0')) return 0;
        if (!(*p == '_' || *p == '.' || *p == '-' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    }
    return 1;
}

/* require(name): Lua modules from the job script's folder only; no C modules, no search
 * path the script could point elsewhere. upvalue 1: the loaded-modules table. */
static int l_require(lua_State *L)
{
    script *s = script_of(L);
    const char *name = luaL_checkstring(L, 1);
    char path[PATH_MAX], chunk[PATH_MAX + 2];
    char *src;
    size_t len, n;
    lua_settop(L, 1);
    lua_getfield(L, lua_upvalueindex(1), name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    if (!valid_module_name(name)) return luaL_error(L, "require: invalid module name '%s'", name);
    if (!s->dir)
        return luaL_error(L, "require '%s': modules load from the job script's folder, and this "
                             "script is not a local file", name);
    n = (size_t)snprintf(path, sizeof path, "%s/%s", s->dir, name);
    if (n + 5 >= sizeof path) return luaL_error(L, "require '%s': path too long", name);
    for (char *p = path + strlen(s->dir) + 1; *p; p++)
        if (*p == '.') *p = '/';
    strcat(path, ".lua");
    src = slurp_file(path, &len);
    if (!src)
        return luaL_error(L, "module '%s' not found: no file %s (only Lua modules in the job "
                             "script's folder can be required; C modules are not allowed)",
                          name, path);
    snprintf(chunk, sizeof chunk, "@%s", path);
    if (len > 0 && src[0] == LUA_SIGNATURE[0]) {
        free(src);
        return luaL_error(L, "require '%s': %s is a binary chunk (only source is allowed)", name, path);
    }
    if (luaL_loadbufferx(L, src, len, chunk, "t") != 0) {
        free(src);
        return lua_error(L);
    }
    free(src);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, lua_upvalueindex(1), name);
    return 1;
}

/* Resolves path under the task's scratch folder into out; raises when it is outside. */
static void scratch_path(lua_State *L, const char *fn, const char *path, char *out, size_t cap)
{
    script *s = script_of(L);
    const char *scratch = s && s->task ? s->task->scratch_dir : NULL;
    char real_scratch[PATH_MAX], dir[PATH_MAX], real_dir[PATH_MAX];
    char *slash;
    size_t rl;
    if (!scratch || !*scratch)
        luaL_error(L, "%s: scripts cannot open files (no scratch folder for this task)", fn);
    if (strstr(path, ".."))
        luaL_error(L, "%s: '%s': '..' is not allowed in paths", fn, path);
    if (path[0] == '/') snprintf(out, cap, "%s", path);
    else snprintf(out, cap, "%s/%s", scratch, path);
    if (!realpath(scratch, real_scratch)) luaL_error(L, "%s: scratch folder %s: %s", fn, scratch, strerror(errno));
    snprintf(dir, sizeof dir, "%s", out);
    slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    if (!realpath(dir, real_dir)) luaL_error(L, "%s: '%s': %s", fn, path, strerror(errno));
    rl = strlen(real_scratch);
    if (strncmp(real_dir, real_scratch, rl) != 0 || (real_dir[rl] != '\0' && real_dir[rl] != '/'))
        luaL_error(L, "%s: '%s' is outside the task's scratch folder", fn, path);
}

static int l_io_open(lua_State *L)
{
    char p[PATH_MAX];
    scratch_path(L, "io.open", luaL_checkstring(L, 1), p, sizeof p);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushstring(L, p);
    lua_pushstring(L, luaL_optstring(L, 2, "r"));
    lua_call(L, 2, LUA_MULTRET);
    return lua_gettop(L) - 2;
}

static int l_io_lines(lua_State *L)
{
    char p[PATH_MAX];
    if (lua_isnoneornil(L, 1)) return luaL_error(L, "io.lines: reading standard input is not allowed");
    scratch_path(L, "io.lines", luaL_checkstring(L, 1), p, sizeof p);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushstring(L, p);
    lua_call(L, 1, 1);
    return 1;
}

static int l_io_close(lua_State *L)
{
    luaL_checkudata(L, 1, "FILE*");   /* io.close() alone would close standard output */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_call(L, 1, LUA_MULTRET);
    return lua_gettop(L) - 1;
}

static int strict_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (lua_toboolean(L, -1)) {
        lua_pushnil(L);
        return 1;
    }
    if (lua_type(L, 2) == LUA_TSTRING) return luaL_error(L, "undefined global '%s'", lua_tostring(L, 2));
    return luaL_error(L, "undefined global (a %s key)", luaL_typename(L, 2));
}

/* New globals may be created by the script's top level (and C), not inside functions,
 * where a missing `local` is almost always a bug. */
static int strict_newindex(lua_State *L)
{
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "S", &ar) && strcmp(ar.what, "main") != 0 &&
        strcmp(ar.what, "C") != 0) {
        if (lua_type(L, 2) == LUA_TSTRING)
            return luaL_error(L, "assignment to undeclared global '%s' inside a function "
                                 "(use local, or assign it once at the top level of the script)",
                              lua_tostring(L, 2));
        return luaL_error(L, "assignment to an undeclared global inside a function");
    }
    lua_pushvalue(L, 2);
    lua_pushboolean(L, 1);
    lua_rawset(L, lua_upvalueindex(1));
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

static void open_lib(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_pushcfunction(L, fn);
    lua_pushstring(L, name);
    lua_call(L, 1, 0);
}

static void copy_field(lua_State *L, int from, int to, const char *k)
{
    lua_getfield(L, from, k);
    lua_setfield(L, to, k);
}

static void sandbox_os_io(lua_State *L)
{
    int top = lua_gettop(L);
    lua_getglobal(L, "os");                         /* top+1 */
    lua_createtable(L, 0, 4);                       /* top+2 */
    copy_field(L, top + 1, top + 2, "time");
    copy_field(L, top + 1, top + 2, "clock");
    copy_field(L, top + 1, top + 2, "date");
    copy_field(L, top + 1, top + 2, "difftime");
    lua_setglobal(L, "os");

    lua_getglobal(L, "io");                         /* top+2 */
    lua_createtable(L, 0, 4);                       /* top+3 */
    copy_field(L, top + 2, top + 3, "type");
    lua_getfield(L, top + 2, "open");
    lua_pushcclosure(L, l_io_open, 1);
    lua_setfield(L, top + 3, "open");
    lua_getfield(L, top + 2, "lines");
    lua_pushcclosure(L, l_io_lines, 1);
    lua_setfield(L, top + 3, "lines");
    lua_getfield(L, top + 2, "close");
    lua_pushcclosure(L, l_io_close, 1);
    lua_setfield(L, top + 3, "close");
    lua_setglobal(L, "io");

    /* the registry's copies of the full libraries must not be reachable either */
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    if (lua_istable(L, -1)) {
        lua_getglobal(L, "os");
        lua_setfield(L, -2, "os");
        lua_getglobal(L, "io");
        lua_setfield(L, -2, "io");
        lua_pushnil(L);
        lua_setfield(L, -2, "jit");
    }
    lua_settop(L, top);
}

static void sandbox_globals(lua_State *L)
{
    /* newproxy: userdata with a script-set __gc, which LuaJIT runs with hooks off, out of
     * the deadline's reach */
    static const char *const removed[] = {"dofile", "loadfile", "jit", "module", "package",
                                          "debug", "ffi", "newproxy", NULL};
    for (int i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_pushcfunction(L, l_load);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, l_load);
    lua_setglobal(L, "loadstring");
    if (luaL_loadbuffer(L, xpcall_src, sizeof xpcall_src - 1, "=xpcall") != 0) lua_error(L);
    lua_call(L, 0, 1);
    lua_setglobal(L, "xpcall");
    lua_getglobal(L, "getmetatable");
    lua_pushcclosure(L, l_getmetatable, 1);
    lua_setglobal(L, "getmetatable");
    lua_newtable(L);
    lua_pushcclosure(L, l_require, 1);
    lua_setglobal(L, "require");
    lua_getglobal(L, "tostring");
    lua_pushcclosure(L, l_print, 1);
    lua_setglobal(L, "print");
}

static void strict_globals(lua_State *L)
{
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_createtable(L, 0, 2);
    lua_newtable(L);                    /* declared-but-nil globals */
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, strict_index, 1);
    lua_setfield(L, -3, "__index");
    lua_pushcclosure(L, strict_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}

static void ctx_metatable(script *s)
{
    static const luaL_Reg methods[] = {
        {"count", ctx_count}, {"emit", ctx_emit}, {NULL, NULL},
    };
    lua_State *L = s->L;
    lua_createtable(L, 0, 1);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_getglobal(L, "tostring");
    lua_pushcclosure(L, ctx_log, 1);
    lua_setfield(L, -2, "log");
    lua_setfield(L, -2, "__index");
    s->ctx_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Runs inside lua_cpcall: everything here may raise (out of memory). */
static int setup_state(lua_State *L)
{
    script *s = (script *)lua_touserdata(L, 1);
    lua_pushlightuserdata(L, &script_key);
    lua_pushlightuserdata(L, s);
    lua_rawset(L, LUA_REGISTRYINDEX);

    open_lib(L, "", luaopen_base);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    open_lib(L, LUA_BITLIBNAME, luaopen_bit);
    open_lib(L, LUA_OSLIBNAME, luaopen_os);
    open_lib(L, LUA_IOLIBNAME, luaopen_io);
    open_lib(L, LUA_JITLIBNAME, luaopen_jit);   /* turns the compiler on; the table goes */
    sandbox_os_io(L);

    lframe_register(L);
    linput_register(L);
    sandbox_globals(L);
    ctx_metatable(s);
    lua_newtable(L);
    s->counters_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    if (luaL_loadbuffer(L, (const char *)luaJIT_BC_prelude, luaJIT_BC_prelude_SIZE, "=prelude") != 0)
        return lua_error(L);
    lframe_push_methods(L);
    lframe_push_grouped_methods(L);
    lua_call(L, 2, 0);
    strict_globals(L);
    return 0;
}

/* ---------------------------------------------------------------- create / free */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = (char *)malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static char *dir_of(const char *path)
{
    const char *slash;
    char *d;
    if (strstr(path, "://")) return NULL;
    slash = strrchr(path, '/');
    if (!slash) return dup_str(".");
    if (slash == path) return dup_str("/");
    d = (char *)malloc((size_t)(slash - path) + 1);
    if (!d) return NULL;
    memcpy(d, path, (size_t)(slash - path));
    d[slash - path] = '\0';
    return d;
}

/* ---------------------------------------------------------------- declarations */

/* Copies a Lua string into the script's own storage (raises when out of memory). */
static const char *keep_str(lua_State *L, script *s, const char *str)
{
    char **grown = (char **)realloc(s->strs, (s->nstrs + 1) * sizeof *grown);
    char *d = dup_str(str);
    if (grown) s->strs = grown;
    if (!grown || !d) {
        free(d);
        luaL_error(L, "out of memory");
    }
    s->strs[s->nstrs++] = d;
    return d;
}

/* Reads the list of column names at the top of the stack (field `what` of the job). */
static const char **read_names(lua_State *L, script *s, const char *what, size_t *n)
{
    const char **out;
    if (lua_type(L, -1) == LUA_TSTRING) {   /* a single key: group_by = "k" */
        out = (const char **)calloc(1, sizeof *out);
        if (!out) luaL_error(L, "out of memory");
        out[0] = keep_str(L, s, lua_tostring(L, -1));
        *n = 1;
        return out;
    }
    if (!lua_istable(L, -1))
        luaL_error(L, "%s must be a list of column names, got %s", what, luaL_typename(L, -1));
    *n = lua_objlen(L, -1);
    if (*n == 0) luaL_error(L, "%s must name at least one column", what);
    out = (const char **)calloc(*n, sizeof *out);
    if (!out) luaL_error(L, "out of memory");
    for (size_t i = 0; i < *n; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            free(out);
            luaL_error(L, "%s[%d] must be a column name, got %s", what, (int)i + 1,
                       luaL_typename(L, -1));
        }
        out[i] = keep_str(L, s, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return out;
}

/* Is the value at the top of the stack {}? ({ key = "k" } is not: read as a list of names
 * it would silently mean "no keys", one row over everything.) */
static int empty_table(lua_State *L)
{
    int empty;
    if (!lua_istable(L, -1)) return 0;
    lua_pushnil(L);
    empty = !lua_next(L, -2);
    if (!empty) lua_pop(L, 2);
    return empty;
}

/* reduce = { group_by = {...}, agg = {...} } */
static void read_declared_reduce(lua_State *L, script *s)
{
    int spec = lua_gettop(L);
    size_t naggs;
    groupby_agg *aggs;
    lua_getfield(L, spec, "group_by");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);   /* no keys: one row over everything */
    }
    if (empty_table(L)) {
        s->groupby.keys = NULL;
        s->groupby.nkeys = 0;
    } else {
        s->groupby.keys = read_names(L, s, "reduce.group_by", &s->groupby.nkeys);
    }
    lua_pop(L, 1);
    lua_getfield(L, spec, "agg");
    if (!lua_istable(L, -1))
        luaL_error(L, "reduce.agg must be a table of aggregates such as { n = count() }, got %s",
                   luaL_typename(L, -1));
    aggs = lframe_check_aggs(L, -1, &naggs);
    groupby_agg *copy = (groupby_agg *)calloc(naggs, sizeof *copy);
    if (!copy) luaL_error(L, "out of memory");
    s->groupby.aggs = copy;
    s->groupby.naggs = naggs;
    for (size_t i = 0; i < naggs; i++) {
        copy[i] = aggs[i];
        copy[i].out = keep_str(L, s, aggs[i].out);
        copy[i].col = aggs[i].col ? keep_str(L, s, aggs[i].col) : NULL;
    }
    for (size_t i = 0; i < naggs; i++)
        for (size_t k = 0; k < s->groupby.nkeys; k++)
            if (strcmp(copy[i].out, s->groupby.keys[k]) == 0)
                luaL_error(L, "reduce.agg: output '%s' has the name of a group_by key", copy[i].out);
    s->has_groupby = 1;
    lua_settop(L, spec);
}

/* order_by = "col" | {"col", "desc"} | { "a", {"b", desc = true}, ... } (at the top). */
static void read_order_by(lua_State *L, script *s)
{
    int spec = lua_gettop(L);
    int list = lua_istable(L, spec) && !lframe_is_sort_spec(L, spec);
    size_t n = list ? lua_objlen(L, spec) : 1;
    if (list && n == 0) luaL_error(L, "order_by must name at least one column");
    ops_sort_key *keys = (ops_sort_key *)calloc(n, sizeof *keys);
    if (!keys) luaL_error(L, "out of memory");
    s->okeys = keys;   /* freed by script_free even if a spec below is refused */
    for (size_t i = 0; i < n; i++) {
        if (list) lua_rawgeti(L, spec, (int)i + 1);
        else lua_pushvalue(L, spec);
        lframe_check_sort_spec(L, -1, "order_by", &keys[i]);
        keys[i].col = keep_str(L, s, keys[i].col);
        lua_pop(L, 1);
    }
    s->nokeys = n;
}

/* Runs under lua_cpcall: the job table's declarative parts, checked and copied to C. */
static int read_declarations(lua_State *L)
{
    script *s = (script *)lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->job_ref);
    int job = lua_gettop(L);
    lua_getfield(L, job, "reduce");
    if (lua_istable(L, -1)) read_declared_reduce(L, s);
    else if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        luaL_error(L, "reduce must be a function or a table { group_by = {...}, agg = {...} }, "
                      "got %s", luaL_typename(L, -1));
    lua_settop(L, job);
    lua_getfield(L, job, "partition_by");
    if (!lua_isnil(L, -1)) s->pkeys = read_names(L, s, "partition_by", &s->npkeys);
    lua_settop(L, job);
    lua_getfield(L, job, "order_by");
    if (!lua_isnil(L, -1)) read_order_by(L, s);
    lua_settop(L, job);
    for (const char *const *fn = (const char *const[]){"map", "combine", "partition", NULL}; *fn; fn++) {
        lua_getfield(L, job, *fn);
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
            luaL_error(L, "%s must be a function, got %s", *fn, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return 0;
}

const script_groupby *script_declared_groupby(const script *s)
{
    return s && s->has_groupby ? &s->groupby : NULL;
}

size_t script_order_keys(const script *s, const ops_sort_key **keys)
{
    *keys = s ? s->okeys : NULL;
    return s ? s->nokeys : 0;
}

size_t script_partition_keys(const script *s, const char *const **keys)
{
    *keys = NULL;
    if (!s) return 0;
    if (s->npkeys > 0) {
        *keys = s->pkeys;
        return s->npkeys;
    }
    if (s->has_groupby) {
        *keys = s->groupby.keys;
        return s->groupby.nkeys;
    }
    return 0;
}

script *script_create(const char *path, const char *source, size_t source_len, mr_err *e)
{
    script *s = (script *)calloc(1, sizeof *s);
    char *buf = NULL, *chunk = NULL;
    lua_State *L;
    int base;
    if (!path) path = "script.lua";
    if (!s) {
        mr_fail(e, MR_ENOMEM, "loading script %s: out of memory", path);
        return NULL;
    }
    s->job_ref = s->counters_ref = s->ctx_mt_ref = s->emit_ref = LUA_NOREF;
    s->path = dup_str(path);
    s->dir = dir_of(path);
    if (!s->path) {
        mr_fail(e, MR_ENOMEM, "loading script %s: out of memory", path);
        goto fail;
    }
    if (!source) {
        buf = slurp_file(path, &source_len);
        if (!buf) {
            mr_fail(e, errno == ENOENT ? MR_ENOTFOUND : MR_EIO, "cannot read script %s: %s", path,
                    strerror(errno));
            goto fail;
        }
        source = buf;
    }
    s->L = L = luaL_newstate();
    if (!L) {
        mr_fail(e, MR_ENOMEM, "loading script %s: cannot create a Lua state", path);
        goto fail;
    }
    if (lua_cpcall(L, setup_state, s) != 0) {
        mr_fail(e, MR_ESCRIPT, "setting up the Lua state for %s: %s", path, lua_tostring(L, -1));
        goto fail;
    }
    if (source_len > 0 && source[0] == LUA_SIGNATURE[0]) {
        mr_fail(e, MR_ESCRIPT, "script %s is a bytecode chunk; give the Lua source", path);
        goto fail;
    }
    chunk = (char *)malloc(strlen(path) + 2);
    if (!chunk) {
        mr_fail(e, MR_ENOMEM, "loading script %s: out of memory", path);
        goto fail;
    }
    chunk[0] = '@';
    strcpy(chunk + 1, path);
    base = lua_gettop(L);
    lua_pushcfunction(L, traceback);
    if (luaL_loadbufferx(L, source, source_len, chunk, "t") != 0) {
        mr_fail(e, MR_ESCRIPT, "%s", lua_tostring(L, -1));
        goto fail;
    }
    if (lua_pcall(L, 0, 1, base + 1) != 0) {
        mr_fail(e, MR_ESCRIPT, "running %s: %s", path, lua_tostring(L, -1));
        goto fail;
    }
    if (!lua_istable(L, -1)) {
        mr_fail(e, MR_ESCRIPT, "%s must return a table with map and/or reduce functions, got %s",
                path, luaL_typename(L, -1));
        goto fail;
    }
    s->job_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, base);
    if (lua_cpcall(L, read_declarations, s) != 0) {
        mr_fail(e, MR_ESCRIPT, "%s: %s", path, lua_tostring(L, -1));
        goto fail;
    }
    if (!script_has(s, "map") && !script_has(s, "reduce") && !s->has_groupby) {
        mr_fail(e, MR_ESCRIPT, "%s: the returned table has neither a map nor a reduce function", path);
        goto fail;
    }
    free(buf);
    free(chunk);
    return s;
fail:
    free(buf);
    free(chunk);
    script_free(s);
    return NULL;
}

void script_free(script *s)
{
    if (!s) return;
    if (s->L) lua_close(s->L);
    for (size_t i = 0; i < s->nstrs; i++) free(s->strs[i]);
    free(s->strs);
    free((void *)s->groupby.keys);
    free((void *)s->groupby.aggs);
    free(s->pkeys);
    free(s->okeys);
    free(s->path);
    free(s->dir);
    free(s);
}

int script_has(const script *s, const char *fn)
{
    int yes;
    if (!s || !s->L || s->job_ref == LUA_NOREF) return 0;
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->job_ref);
    lua_getfield(s->L, -1, fn);
    yes = lua_isfunction(s->L, -1);
    lua_pop(s->L, 2);
    return yes;
}

/* ---------------------------------------------------------------- running tasks */

/* The count hook: LuaJIT calls it from the interpreter only, which is why tasks with a
 * deadline run with the JIT compiler off (see task_begin). */
static void deadline_hook(lua_State *L, lua_Debug *ar)
{
    script *s = script_of(L);
    if (!s || !s->task || s->task->deadline <= 0) return;
    if (!s->timed_out) {
        if (wall_now() < s->task->deadline) return;
        s->timed_out = 1;
        lua_sethook(L, deadline_hook, LUA_MASKCOUNT, SCRIPT_HOOK_EXPIRED_COUNT);
        /* The line the runaway code was on. Later raises (after a pcall caught this one)
         * repeat it, so the report names the loop rather than the pcall around it. */
        if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
            snprintf(s->timeout_msg, sizeof s->timeout_msg, "%s:%d: task exceeded its time limit",
                     ar->short_src, ar->currentline);
        else
            snprintf(s->timeout_msg, sizeof s->timeout_msg, "task exceeded its time limit");
    }
    lua_pushstring(L, s->timeout_msg);
    lua_error(L);
}

static void task_begin(script *s, script_task *t)
{
    lua_State *L = s->L;
    s->task = t;
    s->epoch++;
    lframe_set_epoch(L, s->epoch);
    lframe_set_gc_min(L, t->frame_gc_bytes);
    s->track.record = 0;
    mr_err_clear(&s->track.err);
    s->timed_out = 0;
    s->timeout_msg[0] = '\0';
    s->emit_ref = LUA_NOREF;
    if (t->deadline > 0) {
        /* compiled traces never call hooks: drop them and interpret this task */
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_FLUSH);
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
        s->jit_off = 1;
        lua_sethook(L, deadline_hook, LUA_MASKCOUNT, SCRIPT_HOOK_COUNT);
    }
}

static void task_end(script *s)
{
    lua_State *L = s->L;
    lua_sethook(L, NULL, 0, 0);
    if (s->jit_off) {
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
        s->jit_off = 0;
    }
    if (s->emit_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s->emit_ref);
    s->emit_ref = LUA_NOREF;
    s->task = NULL;
}

/* Does the first line of msg carry a "file:line:" position? */
static int has_position(const char *msg)
{
    for (const char *p = msg; *p && *p != '\n'; p++) {
        if (*p != ':' || p[1] < '0' || p[1] > '9') continue;
        const char *q = p + 1;
        while (*q >= '0' && *q <= '9') q++;
        if (*q == ':') return 1;
    }
    return 0;
}

static void report_error(script *s, const char *kind, const script_task *t, const char *msg,
                         const char *fn_where, mr_err *e)
{
    mr_code code = MR_ESCRIPT;
    char where[768];
    size_t n;
    if (s->timed_out) {
        code = MR_ETIMEOUT;
        /* the timeout may surface as what it broke ("error in error handling") */
        if (!msg || !strstr(msg, "time limit")) msg = s->timeout_msg;
    } else if (s->track.err.code != MR_OK) {
        code = s->track.err.code;
    }
    if (strcmp(kind, "map") == 0) {
        uint64_t rec = s->track.record ? s->track.record : t->records_in;
        if (rec)
            snprintf(where, sizeof where, "map task %d (%s, record %llu)", t->index,
                     t->input_uri ? t->input_uri : "?", (unsigned long long)rec);
        else
            snprintf(where, sizeof where, "map task %d (%s, before the first record)", t->index,
                     t->input_uri ? t->input_uri : "?");
    } else {
        snprintf(where, sizeof where, "%s task %d", kind, t->index);
    }
    /* An error raised by a C function called as `return f(...)` has no Lua line: the tail
     * call replaced the script's frame. Name the function at least. */
    n = strlen(where);
    if (msg && !has_position(msg) && fn_where[0])
        snprintf(where + n, sizeof where - n, " (in the %s function at %s, in its return "
                 "expression)", kind, fn_where);
    mr_fail(e, code, "%s: %s", where, msg ? msg : "(error without a message)");
}

/* A function that emitted rows and also returned a frame outputs both, emitted rows
 * first: handed to emit_flush when the task streams, else put in front of f. */
static frame *task_result_after_emitted(script *s, const char *kind, const script_task *t,
                                        frame *f, mr_err *e)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->emit_ref);
    frame *emitted = lframe_take(L, -1, e);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, s->emit_ref);
    s->emit_ref = LUA_NOREF;
    if (emitted && t->emit_flush) {
        if (t->emit_flush(t->emit_ud, emitted, e) == MR_OK) return f;
    } else if (emitted && frame_append_frame(emitted, f, e) == MR_OK) {
        frame_free(f);
        return emitted;
    } else {
        frame_free(emitted);
    }
    frame_free(f);
    mr_wrap(e, "%s task %d: ", kind, t->index);
    return NULL;
}

/* Turns the value at idx (what map/reduce returned) into a frame for the engine. */
static frame *task_result(script *s, const char *kind, const script_task *t, int idx, mr_err *e)
{
    lua_State *L = s->L;
    frame *f;
    if (lframe_get(L, idx)) {
        f = lframe_take(L, idx, e);
        if (!f) mr_wrap(e, "%s task %d: ", kind, t->index);
        if (f && s->emit_ref != LUA_NOREF) f = task_result_after_emitted(s, kind, t, f, e);
        return f;
    }
    if (lua_isnil(L, idx)) {
        if (s->emit_ref != LUA_NOREF) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, s->emit_ref);
            f = lframe_take(L, -1, e);
            lua_pop(L, 1);
            return f;
        }
        f = frame_create();
        if (!f) mr_fail(e, MR_ENOMEM, "%s task %d: out of memory", kind, t->index);
        return f;
    }
    if (lua_istable(L, idx)) {   /* a list of row tables */
        int top = lua_gettop(L);
        lua_pushcfunction(L, traceback);
        lua_pushcfunction(L, lframe_from_rows);
        lua_pushvalue(L, idx);
        if (lua_pcall(L, 1, 1, top + 1) != 0) {
            mr_fail(e, MR_ESCRIPT, "%s task %d: the returned rows: %s", kind, t->index,
                    lua_tostring(L, -1));
            lua_settop(L, top);
            return NULL;
        }
        f = lframe_take(L, -1, e);
        lua_settop(L, top);
        if (f && s->emit_ref != LUA_NOREF) f = task_result_after_emitted(s, kind, t, f, e);
        return f;
    }
    mr_fail(e, MR_ESCRIPT, "%s task %d: %s returned a %s; return a frame, a list of row tables, "
                           "or nil (rows emitted with ctx:emit)", kind, t->index, kind,
            luaL_typename(L, idx));
    return NULL;
}

/* Pushes job[fn]; fills where with "file:line" of its definition. */
static int push_job_fn(script *s, const char *fn, char *where, size_t cap)
{
    lua_Debug ar;
    where[0] = '\0';
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->job_ref);
    lua_getfield(s->L, -1, fn);
    lua_remove(s->L, -2);
    if (!lua_isfunction(s->L, -1)) return 0;
    lua_pushvalue(s->L, -1);
    if (lua_getinfo(s->L, ">S", &ar) && ar.linedefined > 0)
        snprintf(where, cap, "%s:%d", ar.short_src, ar.linedefined);
    return 1;
}

frame *script_run_map(script *s, script_task *t, mr_err *e)
{
    lua_State *L;
    int base, rc;
    frame *out = NULL;
    char fn_where[512];
    if (!s || !t) {
        mr_fail(e, MR_EINVAL, "script_run_map: no script or task");
        return NULL;
    }
    L = s->L;
    base = lua_gettop(L);
    task_begin(s, t);
    lua_pushcfunction(L, traceback);                    /* base+1 */
    if (linput_push(L, t, &s->track, e) != 0) goto done; /* base+2 */
    if (!push_job_fn(s, "map", fn_where, sizeof fn_where)) { /* base+3 */
        mr_fail(e, MR_EINVAL, "%s has no map function", s->path);
        goto done;
    }
    lua_pushvalue(L, base + 2);
    push_ctx(s, t);
    rc = lua_pcall(L, 2, 1, base + 1);
    linput_close(L, base + 2);
    if (rc != 0) {
        t->failed_record = s->track.err.code == MR_OK ? s->track.record : 0;
        report_error(s, "map", t, lua_tostring(L, -1), fn_where, e);
        goto done;
    }
    out = task_result(s, "map", t, base + 3, e);
done:
    lua_settop(L, base);
    task_end(s);
    return out;
}

/* What a call made from inside a running map (its emit_flush) must put back. */
typedef struct call_nest {
    script_task *outer;
    int outer_emit;
} call_nest;

/* Begins t, or, run from a map's emit_flush, keeps the map's task begun (its state, time
 * limit and frames) and gives the call only a ctx:emit of its own. */
static void call_begin(script *s, script_task *t, call_nest *n)
{
    n->outer = s->task;
    n->outer_emit = s->emit_ref;
    if (n->outer) {
        s->task = t;
        s->emit_ref = LUA_NOREF;
    } else {
        task_begin(s, t);
    }
}

static void call_end(script *s, const call_nest *n)
{
    if (!n->outer) {
        task_end(s);
        return;
    }
    if (s->emit_ref != LUA_NOREF) luaL_unref(s->L, LUA_REGISTRYINDEX, s->emit_ref);
    s->task = n->outer;
    s->emit_ref = n->outer_emit;
}

frame *script_run_frame_fn(script *s, const char *fn, const frame *input, script_task *t,
                           mr_err *e)
{
    lua_State *L;
    int base, rc;
    frame *out = NULL;
    char fn_where[512];
    call_nest nest;
    if (!s || !t || !fn || !input) {
        mr_fail(e, MR_EINVAL, "script_run_frame_fn: missing script, function name, input or task");
        return NULL;
    }
    L = s->L;
    base = lua_gettop(L);
    call_begin(s, t, &nest);
    lua_pushcfunction(L, traceback);        /* base+1 */
    lframe_push_borrowed(L, input);         /* base+2 */
    if (!push_job_fn(s, fn, fn_where, sizeof fn_where)) { /* base+3 */
        mr_fail(e, MR_EINVAL, "%s has no %s function", s->path, fn);
        goto done;
    }
    lua_pushvalue(L, base + 2);
    push_ctx(s, t);
    rc = lua_pcall(L, 2, 1, base + 1);
    if (rc != 0) {
        report_error(s, fn, t, lua_tostring(L, -1), fn_where, e);
        goto done;
    }
    out = task_result(s, fn, t, base + 3, e);
done:
    /* after the result was taken: returning the input itself must copy it first */
    lframe_release(L, base + 2);
    lua_settop(L, base);
    /* Frames the call dropped are garbage that Lua sizes as a few bytes each; a reduce
     * run once per sub-partition would otherwise keep every call's frames until the
     * allocation-driven collection in lframe_push happens to run. */
    lua_gc(L, LUA_GCCOLLECT, 0);
    call_end(s, &nest);
    return out;
}

/* The reducer of each row from the array partition returned (at idx): 1..nparts. */
static mr_code partition_result(script *s, int idx, size_t nrows, int nparts, uint32_t *part,
                                const script_task *t, mr_err *e)
{
    lua_State *L = s->L;
    MR_CHECK(lua_istable(L, idx), e, MR_ESCRIPT,
             "%s task %d: partition returned a %s; return an array with the reducer (1..%d) "
             "of every row", t->kind, t->index, luaL_typename(L, idx), nparts);
    MR_CHECK(lua_objlen(L, idx) == nrows, e, MR_ESCRIPT,
             "%s task %d: partition returned %zu values for %zu rows", t->kind, t->index,
             (size_t)lua_objlen(L, idx), nrows);
    for (size_t i = 0; i < nrows; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        lua_Number v = lua_tonumber(L, -1);
        int ok = lua_type(L, -1) == LUA_TNUMBER && v >= 1 && v <= nparts && v == (lua_Number)(int)v;
        lua_pop(L, 1);
        MR_CHECK(ok, e, MR_ESCRIPT, "%s task %d: partition gave row %zu the reducer %.14g; "
                 "reducers are 1..%d", t->kind, t->index, i + 1, v, nparts);
        part[i] = (uint32_t)v - 1;
    }
    return MR_OK;
}

mr_code script_run_partition(script *s, const frame *input, int nparts, uint32_t *part,
                             script_task *t, mr_err *e)
{
    lua_State *L = s->L;
    int base = lua_gettop(L);
    char fn_where[512];
    call_nest nest;
    call_begin(s, t, &nest);
    lua_pushcfunction(L, traceback);        /* base+1 */
    lframe_push_borrowed(L, input);         /* base+2 */
    mr_code code = MR_OK;
    if (!push_job_fn(s, "partition", fn_where, sizeof fn_where)) { /* base+3 */
        code = mr_fail(e, MR_EINVAL, "%s has no partition function", s->path);
    } else {
        lua_pushvalue(L, base + 2);
        lua_pushnumber(L, nparts);
        push_ctx(s, t);
        if (lua_pcall(L, 3, 1, base + 1) != 0) {
            report_error(s, "partition", t, lua_tostring(L, -1), fn_where, e);
            code = e->code;
        } else {
            code = partition_result(s, base + 3, frame_nrows(input), nparts, part, t, e);
        }
    }
    lframe_release(L, base + 2);
    lua_settop(L, base);
    call_end(s, &nest);
    return code;
}

void script_drain_counters(script *s, script_counter_fn fn, void *ud)
{
    lua_State *L;
    if (!s || !s->L) return;
    L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->counters_ref);
    if (fn) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TSTRING) fn(ud, lua_tostring(L, -2), lua_tonumber(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_rawseti(L, LUA_REGISTRYINDEX, s->counters_ref);
}
