/* runtime: a client of the Lambda Runtime API (2018-06-01) for a custom runtime — fetches
 * the next invocation, hands it to a handler, posts the handler's answer as the
 * invocation's response or error, and reports initialisation errors. Knows nothing about
 * luamr's tasks (lambda/bootstrap does). Depends on engine/mr_error, libcurl and cJSON.
 *
 * The API address is "host:port" as Lambda puts it in AWS_LAMBDA_RUNTIME_API. Requests
 * never go through a proxy, and the GET of the next invocation has no timeout: Lambda
 * freezes the process while it waits. */
#ifndef LUAMR_LAMBDA_RUNTIME_H
#define LUAMR_LAMBDA_RUNTIME_H

#include <stddef.h>

#include "../engine/mr_error.h"

#define LAMBDA_RUNTIME_ID_MAX 128

typedef struct lambda_invocation {
    char request_id[LAMBDA_RUNTIME_ID_MAX];
    char function_arn[256];
    char trace_id[256];
    double deadline;        /* wall clock (epoch seconds) from Lambda-Runtime-Deadline-Ms; 0 = none */
    const char *event;      /* the payload, NUL-terminated; valid during the handler call */
    size_t event_len;
} lambda_invocation;

/* Answers one invocation: sets *body to a malloc'd JSON text and returns 0 for a response,
 * or fills error_type (e.g. "luamr.timeout") and returns 1 for a function error, *body then
 * being the error document ({"errorMessage": ..., "errorType": ..., ...}). */
typedef int (*lambda_handler)(void *ud, const lambda_invocation *inv, char **body,
                              char *error_type, size_t error_type_size);

typedef struct lambda_runtime lambda_runtime;

lambda_runtime *lambda_runtime_create(const char *api, mr_err *e);
void lambda_runtime_free(lambda_runtime *rt);   /* accepts NULL */

/* Blocks until Lambda hands out the next invocation. inv->event stays valid until the next
 * call or lambda_runtime_free. */
mr_code lambda_runtime_next(lambda_runtime *rt, lambda_invocation *inv, mr_err *e);
mr_code lambda_runtime_respond(lambda_runtime *rt, const char *request_id, const char *body,
                               mr_err *e);
/* body NULL: built from error_type and message. */
mr_code lambda_runtime_fail(lambda_runtime *rt, const char *request_id, const char *error_type,
                            const char *message, const char *body, mr_err *e);
mr_code lambda_runtime_init_error(lambda_runtime *rt, const char *error_type,
                                  const char *message, mr_err *e);

/* Serves invocations until the API fails (returns that error) or, when max_events > 0,
 * after that many. A response the API refuses (too large, invocation gone) is logged to
 * stderr and the loop goes on. */
mr_code lambda_runtime_loop(lambda_runtime *rt, lambda_handler fn, void *ud, int max_events,
                            mr_err *e);

/* {"errorMessage": message, "errorType": type}. Malloc'd. */
char *lambda_runtime_error_json(const char *error_type, const char *message);

#endif
