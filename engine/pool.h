/* pool: the local executor — a pool of forked worker processes, each with its own Lua
 * state, running tasks handed out one at a time over a pipe, retrying a task that fails
 * or whose worker dies (by a signal, out of memory) or overruns the time limit, up to
 * max_attempts times.
 * Part of the runner; depends on task. Workers are processes, not threads: a crashing
 * script or reader takes down one attempt, never the job's bookkeeping. */
#ifndef LUAMR_POOL_H
#define LUAMR_POOL_H

#include "mr_error.h"
#include "task.h"

typedef struct pool_job {
    int ntasks;
    int workers;
    int max_attempts;
    /* Runs task i in a worker process (r is sent back to the parent). */
    void (*run)(void *ud, int task, int attempt, task_result *r);
    /* In the parent, once per finished attempt: final == 1 when no retry follows. */
    void (*done)(void *ud, int task, int attempt, const task_result *r, int final);
    /* In the parent, about every half second while tasks run (progress display). */
    void (*tick)(void *ud);
    void *ud;
    /* Seconds per attempt, 0 = none. The script stops itself at its deadline, but not
     * while it is inside one long C call (a pattern match, a sort): a worker still busy
     * POOL_TIMEOUT_GRACE seconds (plus a tenth of the limit) later is killed, and the
     * attempt fails with MR_ETIMEOUT. */
    double task_timeout;
    /* Optional: names task i for the messages about a worker that died ("map task 3
     * (in/a.csv)"); without it they say "task 3". */
    void (*describe)(void *ud, int task, char *buf, size_t n);
} pool_job;

#define POOL_TIMEOUT_GRACE 2.0

/* Runs every task; stops handing out tasks after the first one that fails for good and
 * returns its error (MR_OK when all succeeded). */
mr_code pool_run(const pool_job *job, mr_err *e);

#endif
