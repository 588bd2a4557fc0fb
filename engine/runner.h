/* runner: runs a dataset — loads and validates the config and script, plans the mapper
 * tasks, runs them on an executor (local worker processes; Lambda later), runs the
 * reducer, publishes the output atomically and prints progress and a summary.
 * Sees engine, connectors and lua (with main.c, the only unit that does). */
#ifndef LUAMR_RUNNER_H
#define LUAMR_RUNNER_H

#include <stdint.h>

#include "config.h"
#include "mr_error.h"
#include "task.h"

typedef struct runner_opts {
    const char *config_uri;   /* local path or s3:// URI */
    int dry_run;              /* write to out_dir, sample records, print the head */
    uint64_t sample;          /* dry-run: at most N records per task (0 = all) */
    const char *out_dir;      /* dry-run destination (default ./dry-run-out) */
    int concurrency;          /* overrides compute.concurrency when > 0 */
    const char *executor;     /* overrides compute.executor */
    const char *function;     /* overrides compute.function */
    const char *run_id;       /* explicit run id (default: time + pid) */
    const char *resume;       /* run id to resume: skip tasks whose intermediates verify */
    const char *from_run;     /* REDUCER_ONLY: the earlier run to reduce (default: latest) */
    int quiet;                /* no progress line, no summary */
    int keep_intermediates;   /* default: kept (resume needs them) */
} runner_opts;

/* Loads the config (local or s3://). */
config *runner_load_config(const char *uri, mr_err *e);
/* `luamr validate`: config and script checks, nothing runs. */
mr_code runner_validate(const char *config_uri, mr_err *e);
/* Runs the job; returns MR_OK on success (e names the failing task otherwise). */
mr_code runner_run(const runner_opts *o, mr_err *e);

/* Runs one task of a run in this process, as a Lambda invocation does: o->config_uri and
 * o->run_id name the run; the plan is rebuilt from the config (it is deterministic), so
 * map task `index` reads the same input the driver planned. */
mr_code runner_run_task(const runner_opts *o, task_kind kind, int index, task_result *res,
                        mr_err *e);

#endif
