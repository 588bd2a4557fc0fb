/* executor: the Lambda executor — runs a phase's tasks as concurrent invocations of one
 * Lambda function (Invoke API, SigV4 service "lambda"), retrying throttles, 5xx, function
 * errors and timeouts up to max_attempts. Depends on engine/task (task_result JSON) and
 * connectors (sigv4, awsconf). The runner builds each task's event. */
#ifndef LUAMR_LAMBDA_EXECUTOR_H
#define LUAMR_LAMBDA_EXECUTOR_H

#include "../engine/mr_error.h"
#include "../engine/task.h"

struct lambda_stats;

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
    /* Added after the first version; positional initialisers leave them zero. */
    int quiet;                 /* no summary line on stderr */
    struct lambda_stats *stats;   /* filled when not NULL */
} lambda_job;

/* What the invocations cost, for the run summary. */
typedef struct lambda_stats {
    int invocations;           /* HTTP requests, throttled and failed ones included */
    int retries;               /* task attempts after a function error or timeout */
    int throttles;             /* 429s (and throttling 5xx) retried */
    int service_errors;        /* other 5xx and transport failures retried */
    int memory_mb;             /* the function's (REPORT line or GetFunctionConfiguration) */
    double billed_seconds;     /* sum of billed durations */
    double gb_seconds;         /* billed_seconds x memory in GB */
    double task_seconds_max;   /* slowest successful invocation, as seen by the caller */
    double task_seconds_sum;
} lambda_stats;

/* Runs every task; returns the first task's error that failed for good (the phase stops
 * handing out tasks then), MR_OK when all succeeded. */
mr_code lambda_executor_run(const lambda_job *job, mr_err *e);

#endif
