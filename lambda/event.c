#include "event.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const char *lambda_event_kind_name(task_kind k)
{
    switch (k) {
    case TASK_MAP: return "map";
    case TASK_REDUCE: return "reduce";
    case TASK_PUBLISH: return "publish";
    }
    return "unknown";
}

static mr_code event_string(const cJSON *o, const char *name, int required, char *dst, size_t n,
                            mr_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    dst[0] = '\0';
    if (!v && !required) return MR_OK;
    MR_CHECK(cJSON_IsString(v) && v->valuestring[0], e, MR_EINVAL,
             "invocation event: \"%s\" must be a non-empty string", name);
    MR_CHECK(strlen(v->valuestring) < n, e, MR_EINVAL,
             "invocation event: \"%s\" is longer than %zu bytes", name, n - 1);
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return MR_OK;
}

static mr_code event_fields(const cJSON *o, lambda_event *ev, mr_err *e)
{
    MR_TRY(event_string(o, "config", 1, ev->config, sizeof ev->config, e));
    MR_TRY(event_string(o, "runId", 1, ev->run_id, sizeof ev->run_id, e));
    MR_TRY(event_string(o, "fromRun", 0, ev->from_run, sizeof ev->from_run, e));
    char kind[16];
    MR_TRY(event_string(o, "kind", 1, kind, sizeof kind, e));
    if (strcmp(kind, "map") == 0) ev->kind = TASK_MAP;
    else if (strcmp(kind, "reduce") == 0) ev->kind = TASK_REDUCE;
    else if (strcmp(kind, "publish") == 0) ev->kind = TASK_PUBLISH;
    else return mr_fail(e, MR_EINVAL, "invocation event: \"kind\" is map, reduce or publish, not '%s'", kind);
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(o, "index");
    MR_CHECK(cJSON_IsNumber(idx) && idx->valuedouble >= 0 && idx->valuedouble < 1e9 &&
                 floor(idx->valuedouble) == idx->valuedouble,
             e, MR_EINVAL, "invocation event: \"index\" must be a whole number >= 0");
    ev->index = (int)idx->valuedouble;
    return MR_OK;
}

mr_code lambda_event_parse(const char *json, lambda_event *ev, mr_err *e)
{
    memset(ev, 0, sizeof *ev);
    cJSON *o = cJSON_Parse(json ? json : "");
    MR_CHECK(cJSON_IsObject(o), (cJSON_Delete(o), e), MR_EINVAL,
             "invocation event is not a JSON object: %.200s (luamr functions are invoked by "
             "'luamr run --executor lambda')", json ? json : "");
    mr_code code = event_fields(o, ev, e);
    cJSON_Delete(o);
    return code;
}

void lambda_event_describe(const lambda_event *ev, char *dst, size_t n)
{
    snprintf(dst, n, "%s %d", lambda_event_kind_name(ev->kind), ev->index);
}
