/* lwarc: the Lua face of the WARC reader — the map input object for format "warc"
 * (metatable "luamr.warc_input") and its records (metatable "luamr.warc_record").
 * Depends on connectors/warc, connectors/lang, lframe (input:frame()), script.h and LuaJIT.
 *
 *   input.uri, input.format ("warc")
 *   for rec in input:records([types]) do ... end    types: "response" or {"response", ...}
 *   input:frame{columns = {...}, types = {...}}      one row per record, built in C
 *
 * A record is a small view of the reader's current record: it is valid until the loop
 * moves on (using it later raises an error instead of showing another record). Fields:
 * rec.type, rec.uri, rec.date, rec.record_id, rec.status (nil when not an HTTP response),
 * rec.payload_length, rec.content_length, rec.content_type (as written), rec.mime (media
 * type, lower case), rec.offset, rec.number, rec.truncated; methods rec:header(name),
 * rec:http_header(name), rec:payload([max]) and rec:block([max]) (the only calls that copy
 * bytes into Lua), rec:language(). See docs/warc.md. */
#ifndef LUAMR_LWARC_H
#define LUAMR_LWARC_H

#include <lua.h>

#include "../engine/mr_error.h"
#include "script.h"

/* Creates the metatables. Leaves the stack as it was. */
void lwarc_register(lua_State *L);
/* Pushes the map input object for the WARC file t->input_uri. The file is opened on the
 * first records()/frame() call. Returns 0, or -1 with e filled and nothing pushed. */
int lwarc_push_input(lua_State *L, const script_task *t, mr_err *e);
/* Closes the reader of the WARC input at idx (no-op for other values) and detaches it
 * from its task, so a reference the script kept fails cleanly afterwards. */
void lwarc_close(lua_State *L, int idx);

#endif
