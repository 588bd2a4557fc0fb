/* linput: the input object a map function receives (metatable "luamr.input"): input.uri,
 * input.format, input:lines(), input:records(), input:frame(), input:frames(). Depends on
 * connectors/reader, lframe (for input:frame()), lwarc when built, and LuaJIT.
 * Every record handed out is counted into the task's records_in/bytes_in and its number
 * remembered, so a script error can name the record it happened on. */
#ifndef LUAMR_LINPUT_H
#define LUAMR_LINPUT_H

#include <stdint.h>

#include <lua.h>

#include "../engine/mr_error.h"
#include "script.h"

/* Shared between the script and the input object of the running task. */
typedef struct linput_track {
    uint64_t record;   /* number of the record the input last produced (0: none yet) */
    mr_err err;        /* the reader's own failure (I/O, bad-record budget), if any */
} linput_track;

/* Creates the metatable. Leaves the stack as it was. */
void linput_register(lua_State *L);
/* Pushes the input object for the map task t. Returns 0, or -1 with e filled (and
 * nothing pushed), e.g. for an unknown format. */
int linput_push(lua_State *L, script_task *t, linput_track *track, mr_err *e);
/* Closes the reader of the input object at idx and detaches it from the task, so a
 * reference the script kept fails cleanly instead of touching a finished task. */
void linput_close(lua_State *L, int idx);

#endif
