#include "log.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

static double log_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
}

static void log_add_str(cJSON *o, const char *name, const char *v)
{
    if (v && *v) cJSON_AddStringToObject(o, name, v);
}

static void log_add_ctx(cJSON *o, const lambda_log_ctx *ctx)
{
    if (!ctx) return;
    log_add_str(o, "requestId", ctx->request_id);
    log_add_str(o, "runId", ctx->run_id);
    log_add_str(o, "task", ctx->task);
}

static char *log_print(cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

char *lambda_log_line(const lambda_log_ctx *ctx, const char *level, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    double ms = log_epoch_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[96];
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((long long)ms % 1000));
    cJSON_AddStringToObject(o, "time", stamp);
    cJSON_AddStringToObject(o, "level", level ? level : "info");
    log_add_ctx(o, ctx);
    cJSON_AddStringToObject(o, "message", message ? message : "");
    return log_print(o);
}

static void log_metric_def(cJSON *list, const char *name, const char *unit)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "Name", name);
    cJSON_AddStringToObject(m, "Unit", unit);
    cJSON_AddItemToArray(list, m);
}

char *lambda_emf_line(const lambda_log_ctx *ctx, const lambda_task_metrics *m, double epoch_ms)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON *aws = cJSON_AddObjectToObject(o, "_aws");
    cJSON_AddNumberToObject(aws, "Timestamp", epoch_ms > 0 ? epoch_ms : log_epoch_ms());
    cJSON *directive = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(aws, "CloudWatchMetrics"), directive);
    cJSON_AddStringToObject(directive, "Namespace", LAMBDA_LOG_NAMESPACE);
    cJSON *dims = cJSON_CreateArray();
    cJSON_AddItemToArray(dims, cJSON_CreateString("Function"));
    cJSON_AddItemToArray(dims, cJSON_CreateString("Kind"));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(directive, "Dimensions"), dims);
    cJSON *defs = cJSON_AddArrayToObject(directive, "Metrics");
    log_metric_def(defs, "Records", "Count");
    log_metric_def(defs, "RecordsOut", "Count");
    log_metric_def(defs, "Bytes", "Bytes");
    log_metric_def(defs, "Duration", "Milliseconds");
    log_metric_def(defs, "BadRecords", "Count");
    log_metric_def(defs, "Failed", "Count");
    cJSON_AddStringToObject(o, "Function", ctx && ctx->function && *ctx->function ? ctx->function : "luamr");
    cJSON_AddStringToObject(o, "Kind", m->kind ? m->kind : "unknown");
    cJSON_AddNumberToObject(o, "Records", (double)m->records_in);
    cJSON_AddNumberToObject(o, "RecordsOut", (double)m->records_out);
    cJSON_AddNumberToObject(o, "Bytes", (double)m->bytes_in);
    cJSON_AddNumberToObject(o, "Duration", m->duration_ms);
    cJSON_AddNumberToObject(o, "BadRecords", (double)m->bad_records);
    cJSON_AddNumberToObject(o, "Failed", m->failed ? 1 : 0);
    log_add_ctx(o, ctx);   /* searchable, but not dimensions (one metric per run would cost) */
    return log_print(o);
}

static void log_emit(FILE *out, char *line)
{
    if (!line) return;
    fputs(line, out);
    fputc('\n', out);
    fflush(out);
    free(line);
}

void lambda_log(FILE *out, const lambda_log_ctx *ctx, const char *level, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_emit(out, lambda_log_line(ctx, level, msg));
}

void lambda_log_metrics(FILE *out, const lambda_log_ctx *ctx, const lambda_task_metrics *m)
{
    log_emit(out, lambda_emf_line(ctx, m, 0));
}
