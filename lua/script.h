/* script: the user's job script in a sandboxed LuaJIT state — the only unit (with the
 * other files in lua/) that touches the Lua stack. Depends on engine (frame, ops, groupby,
 * join), connectors (reader, warc) and LuaJIT.
 *
 * A job script returns a table with map, reduce and/or combine functions. One script
 * object (one lua_State) per worker process; it is reused across the tasks that worker
 * runs. User code always runs under lua_pcall with a traceback handler; chunks are named
 * "@path" so errors carry file:line. */
#ifndef LUAMR_SCRIPT_H
#define LUAMR_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "../connectors/reader.h"
#include "../engine/frame.h"
#include "../engine/groupby.h"
#include "../engine/mr_error.h"
#include "../engine/ops.h"

typedef struct script script;

/* Loads the job script; source may be NULL (read path from disk), else the script text
 * (e.g. fetched from S3) with path used for the chunk name. Fails on a syntax error
 * (file:line), a script that does not return a table, or one with neither map nor reduce. */
script *script_create(const char *path, const char *source, size_t source_len, mr_err *e);
void script_free(script *s);        /* accepts NULL */
/* Does the job table define this function ("map", "reduce", "combine", "partition")? */
int script_has(const script *s, const char *fn);

typedef void (*script_log_fn)(void *ud, const char *level, const char *msg);
typedef void (*script_counter_fn)(void *ud, const char *name, double value);
/* Takes the rows ctx:emit gathered (the callee owns and frees the frame). */
typedef mr_code (*script_emit_fn)(void *ud, frame *rows, mr_err *e);

/* What a task's ctx shows the script and what the engine needs back. */
typedef struct script_task {
    const char *run_id;
    const char *kind;           /* "map", "reduce", "combine" */
    int index;                  /* task number (0-based) */
    int ntasks;
    const char *input_uri;      /* map: the manifest entry */
    const char *format;         /* map: "lines", "csv", "tsv", "jsonl", "warc" */
    const reader_opts *ropts;   /* map: reader options (format, schema, sample, range) */
    reader_bad_fn on_bad;       /* bad input records go here */
    void *bad_ud;
    script_log_fn log;          /* ctx:log(...) / print() go here */
    void *log_ud;
    double deadline;            /* wall-clock seconds (CLOCK_REALTIME) or 0; past it the
                                   script is stopped with MR_ETIMEOUT naming the line */
    /* filled by the run: */
    uint64_t records_in;        /* input records the task read */
    uint64_t bytes_in;
    /* optional (added after the first version; zero-initialise the struct): */
    const char *scratch_dir;    /* the task's private folder: io.open works only under it;
                                   NULL = the script cannot open files at all */
    /* skipFailingRecords: record numbers (1-based, sorted) the input iterators skip
     * because map raised an error on them in an earlier attempt. */
    const uint64_t *skip_records;
    const char *const *skip_reasons;   /* the error map raised on each, for on_bad */
    size_t nskip;
    /* filled when map raises an error while a record is current: its number, else 0 */
    uint64_t failed_record;
    /* map: once the rows gathered by ctx:emit pass emit_flush_bytes they are handed to
     * emit_flush, so a map that emits more than its memory budget streams its output.
     * emit_flush may call script_run_frame_fn (a combine) while map is running.
     * NULL: rows stay in memory until map returns. */
    script_emit_fn emit_flush;
    void *emit_ud;
    size_t emit_flush_bytes;
    /* frames the script drops are collected once new ones add up to this many bytes
     * (or to the live ones, if more); 0 = 64 MB. A share of the task's memory budget. */
    size_t frame_gc_bytes;
} script_task;

/* map(input, ctx): returns the task's output frame (the returned frame, or the rows the
 * script emitted with ctx:emit when it returned nil). */
frame *script_run_map(script *s, script_task *t, mr_err *e);
/* reduce(frame, ctx) / combine(frame, ctx): input is the concatenated mapper output
 * (ownership stays with the caller). May be called from a task's emit_flush while that
 * task's map runs: the call then shares the map's Lua state, time limit and frames. */
frame *script_run_frame_fn(script *s, const char *fn, const frame *input, script_task *t,
                           mr_err *e);
/* partition(frame, nparts, ctx): the job's own routing of map output rows. Fills
 * part[0..nrows) with each row's reducer, 0-based (the script returns them 1-based);
 * MR_ESCRIPT for a script error or a value that is not a reducer number. May be called
 * from emit_flush, like script_run_frame_fn. */
mr_code script_run_partition(script *s, const frame *input, int nparts, uint32_t *part,
                             script_task *t, mr_err *e);
/* Calls fn for every ctx:count(name, n) total the script accumulated since the last call,
 * then resets them. */
void script_drain_counters(script *s, script_counter_fn fn, void *ud);

/* A declarative reduce — the job table's `reduce = { group_by = {"k1", ...}, agg = {
 * out = sum("v"), ... } }` — as C structures, so the engine can aggregate partially in the
 * mappers (groupby_partial) and finish in the reducers (groupby_merge) without Lua.
 * NULL when reduce is a function (or absent). Valid as long as the script. */
typedef struct script_groupby {
    const char *const *keys;
    size_t nkeys;
    const groupby_agg *aggs;
    size_t naggs;
} script_groupby;
const script_groupby *script_declared_groupby(const script *s);

/* The keys that route map output rows to reducers: the job table's
 * `partition_by = {"k1", ...}`, else the declarative reduce's group_by keys. Returns the
 * count (0 when the job names none) and points *keys at them. */
size_t script_partition_keys(const script *s, const char *const **keys);
/* The job table's `order_by`: the order of the job's whole output (each reducer sorts its
 * output with an external sort; several reducers' parts are merged into one). Returns
 * the count (0: none) and points *keys at them. */
size_t script_order_keys(const script *s, const ops_sort_key **keys);

#endif
