/* executor: the Lambda executor — runs a phase's tasks as concurrent invocations of one
 * Lambda function (Invoke API, SigV4 service "lambda"), retrying throttles, 5xx, function
 * errors and timeouts up to max_attempts. Depends on engine/task (task_result JSON) and
 * connectors (sigv4, awsconf). The runner builds each task's event. */
#ifndef LUAMR_LAMBDA_EXECUTOR_H
#define LUAMR_LAMBDA_EXECUTOR_H

#include "../engine/mr_error.h"
#include "../engine/task.h"

typedef struct lambda_job {
    int ntasks;
    int concurrency;           /* invocations in flight at most */
    int max_attempts;
    const char *function;      /* name or ARN */
    const char *region;        /* NULL: from the environment */
    /* The invocation event for task i (malloc'd JSON text). */
    char *(*event)(void *ud, int task);
    /* As pool_job.done: once per finished attempt, final when no retry follows. */
    void (*done)(void *ud, int task, int attempt, const task_result *r, int final);
    void (*tick)(void *ud);
    void *ud;
} lambda_job;

/* Runs every task; returns the first task's error that failed for good (the phase stops
 * handing out tasks then), MR_OK when all succeeded. */
mr_code lambda_executor_run(const lambda_job *job, mr_err *e);

#endif
