/* log: what the bootstrap writes to stdout inside Lambda — one JSON object per line
 * (time, level, request id, run id, task, message), which CloudWatch Logs Insights reads
 * as fields, and per-task metrics in CloudWatch Embedded Metric Format, which CloudWatch
 * turns into metrics without an API call. Depends on engine/mr_error and cJSON. */
#ifndef LUAMR_LAMBDA_LOG_H
#define LUAMR_LAMBDA_LOG_H

#include <stdint.h>
#include <stdio.h>

#define LAMBDA_LOG_NAMESPACE "luamr"

typedef struct lambda_log_ctx {
    const char *request_id;   /* NULL outside an invocation */
    const char *run_id;
    const char *task;         /* "map 3" */
    const char *function;     /* AWS_LAMBDA_FUNCTION_NAME */
} lambda_log_ctx;

typedef struct lambda_task_metrics {
    const char *kind;         /* "map" | "reduce" | "publish" */
    uint64_t records_in, records_out, bytes_in, bad_records;
    double duration_ms;
    int failed;
} lambda_task_metrics;

/* {"time": "...Z", "level": level, "requestId", "runId", "task", "message"}, no newline.
 * Malloc'd. */
char *lambda_log_line(const lambda_log_ctx *ctx, const char *level, const char *message);
/* The EMF document for one task: namespace luamr, dimensions [Function, Kind], metrics
 * Records, RecordsOut, Bytes, Duration, BadRecords, Failed. Malloc'd. */
char *lambda_emf_line(const lambda_log_ctx *ctx, const lambda_task_metrics *m, double epoch_ms);

/* Formats and writes one line to out and flushes (Lambda may freeze the process right
 * after the response). */
void lambda_log(FILE *out, const lambda_log_ctx *ctx, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void lambda_log_metrics(FILE *out, const lambda_log_ctx *ctx, const lambda_task_metrics *m);

#endif
