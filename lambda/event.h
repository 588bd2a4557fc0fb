/* event: the invocation event the Lambda executor sends and the bootstrap runs —
 * {"config": URI, "runId": ID, "kind": "map"|"reduce"|"publish", "index": N,
 * "fromRun"?: ID} — parsed and checked, every error naming the field. Depends on
 * engine/mr_error, engine/task (task_kind only) and cJSON. */
#ifndef LUAMR_LAMBDA_EVENT_H
#define LUAMR_LAMBDA_EVENT_H

#include "../engine/mr_error.h"
#include "../engine/task.h"

typedef struct lambda_event {
    char config[1024];
    char run_id[128];
    char from_run[128];    /* "" when absent */
    task_kind kind;
    int index;
} lambda_event;

mr_code lambda_event_parse(const char *json, lambda_event *ev, mr_err *e);
/* "map 3" */
void lambda_event_describe(const lambda_event *ev, char *dst, size_t n);
const char *lambda_event_kind_name(task_kind k);

#endif
