/* lframe: frames as Lua userdata (metatable "luamr.frame"), the grouped object returned by
 * f:group_by (metatable "luamr.grouped") and the global `frame` table. Depends on
 * engine (frame, ops, groupby, join) and LuaJIT; used by script.c and linput.c.
 *
 * A frame userdata either owns its frame (freed in __gc) or borrows one the engine owns
 * (a reduce input): a borrowed frame is copied on the first mutation and becomes invalid
 * once the call that received it returns. Frames returned to the engine are moved out of
 * their userdata when they were created by the task that returns them, else copied. */
#ifndef LUAMR_LFRAME_H
#define LUAMR_LFRAME_H

#include <lua.h>

#include "../engine/frame.h"
#include "../engine/groupby.h"
#include "../engine/mr_error.h"
#include "../engine/ops.h"

/* Creates the metatables and sets the global `frame`. Leaves the stack as it was. */
void lframe_register(lua_State *L);

/* Pushes the method tables of frames and grouped objects (for the prelude to extend). */
void lframe_push_methods(lua_State *L);
void lframe_push_grouped_methods(lua_State *L);

/* Pushes a new frame userdata owning f. Frees f and raises on failure. */
void lframe_push(lua_State *L, frame *f);
/* Pushes a userdata borrowing f (copy-on-write). Invalidate it with lframe_release. */
void lframe_push_borrowed(lua_State *L, const frame *f);
/* Ends a borrow: the userdata at idx no longer refers to the engine's frame. */
void lframe_release(lua_State *L, int idx);

/* The frame of the userdata at idx, or NULL when the value is not a (valid) frame. */
const frame *lframe_get(lua_State *L, int idx);
/* Hands the frame at idx to the engine: moved out when created in the current epoch,
 * else copied. NULL + e when idx is not a valid frame or the copy fails. */
frame *lframe_take(lua_State *L, int idx, mr_err *e);

/* Appends the row table at tidx to the frame userdata at fidx (as f:append). Raises. */
void lframe_append_row(lua_State *L, int fidx, int tidx);

/* Appends every row of the frame at sidx to the frame userdata at fidx (ctx:emit(f)). */
void lframe_append_frame(lua_State *L, int fidx, int sidx);
/* The same, returning the error (a type clash leaves the target as it was). */
mr_code lframe_try_append_frame(lua_State *L, int fidx, int sidx, mr_err *e);
/* frame.from_rows(rows[, schema]) as a lua_CFunction (for callers that must not look it
 * up through the script's globals). */
int lframe_from_rows(lua_State *L);

/* Reads the aggregate table at idx (g:agg's argument: { out = sum("col"), ... }) into an
 * array in the constructors' source order, left on the stack as a userdata (its strings
 * are anchored by the table at idx). Raises on a malformed spec. */
groupby_agg *lframe_check_aggs(lua_State *L, int idx, size_t *naggs);
/* One sort key at idx: "col", {"col", "desc"|"asc"} or {"col", desc = true}; errors
 * start with `what`. k->col points into the Lua value (anchor it). */
void lframe_check_sort_spec(lua_State *L, int idx, const char *what, ops_sort_key *k);
/* Is the value at idx one key spec ({"col", "desc"}) rather than a list of them? */
int lframe_is_sort_spec(lua_State *L, int idx);

/* Frames created while the epoch is current count as the task's own (see lframe_take).
 * The script bumps the epoch at the start of every task. */
void lframe_set_epoch(lua_State *L, unsigned epoch);
/* A full collection runs once new frames add up to the live frames' bytes, or to this
 * many if more (0: 64 MB): garbage frames are invisible to Lua's own pacing. */
void lframe_set_gc_min(lua_State *L, size_t bytes);

#endif
