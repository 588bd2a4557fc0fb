/* invoke: a client of the Lambda Invoke API (2015-03-31) — builds SigV4-signed
 * RequestResponse invocations as libcurl easy handles (the executor drives many at once
 * on a curl multi handle), classifies what comes back (success, function error, throttle,
 * retryable service error, fatal error), reads the billed duration from the log tail, and
 * asks GetFunctionConfiguration for the function's memory and timeout.
 * Depends on engine/mr_error, connectors/sigv4 (signing, service "lambda"),
 * connectors/awsconf (credentials, region), libcurl and cJSON.
 *
 * Endpoint: AWS_ENDPOINT_URL_LAMBDA, else AWS_ENDPOINT_URL, else
 * https://lambda.REGION.amazonaws.com (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true skips both
 * variables). */
#ifndef LUAMR_LAMBDA_INVOKE_H
#define LUAMR_LAMBDA_INVOKE_H

#include <curl/curl.h>
#include <stddef.h>

#include "../engine/mr_error.h"

typedef struct lambda_client lambda_client;

/* region NULL: from the environment and profile (awsconf). Fails without credentials. */
lambda_client *lambda_client_create(const char *region, mr_err *e);
void lambda_client_free(lambda_client *c);   /* accepts NULL */
const char *lambda_client_endpoint(const lambda_client *c);
const char *lambda_client_region(const lambda_client *c);

typedef enum lambda_outcome {
    LAMBDA_OK = 0,          /* 200, the function answered */
    LAMBDA_FUNCTION_ERROR,  /* 200 with X-Amz-Function-Error: the task failed or timed out */
    LAMBDA_THROTTLED,       /* 429 TooManyRequestsException (and EC2/ENI throttles) */
    LAMBDA_RETRYABLE,       /* 5xx, a dropped connection, a transport timeout */
    LAMBDA_FATAL            /* anything else: 4xx (no such function, access denied, ...) */
} lambda_outcome;

/* One invocation's HTTP exchange. Reset with lambda_response_reset between attempts. */
typedef struct lambda_response {
    long status;
    char function_error[64];   /* X-Amz-Function-Error: "Handled" / "Unhandled" */
    char error_type[128];      /* x-amzn-ErrorType of a service error */
    char request_id[96];       /* x-amzn-RequestId */
    char log_result[8192];     /* X-Amz-Log-Result (base64 log tail) */
    char *body;                /* NUL-terminated */
    size_t len, cap;
    int truncated;             /* the body passed LAMBDA_MAX_RESPONSE and was cut */
    struct curl_slist *headers;
    char *payload;             /* what was sent (owned: the easy handle points into it) */
} lambda_response;

#define LAMBDA_MAX_RESPONSE (6u << 20)

void lambda_response_reset(lambda_response *r);
void lambda_response_clear(lambda_response *r);   /* frees the buffers */

/* An easy handle for one invocation of function (name, partial or full ARN) with payload
 * (copied), signed now: add it to a multi handle right away. resp receives the answer;
 * timeout_s bounds the whole exchange (0 = none). */
CURL *lambda_client_invoke_handle(lambda_client *c, const char *function, const char *payload,
                                  long timeout_s, lambda_response *resp, mr_err *e);

/* Classifies a finished exchange (cc from the multi's message); *why gets a one-line
 * description for logs and errors naming the function. */
lambda_outcome lambda_classify(const lambda_response *r, CURLcode cc, const char *function,
                               char *why, size_t why_size);

/* Blocking single invocation (tests, tools): returns the outcome; e set when FATAL. */
lambda_outcome lambda_client_invoke(lambda_client *c, const char *function, const char *payload,
                                    long timeout_s, lambda_response *resp, char *why,
                                    size_t why_size);

/* GetFunctionConfiguration: MemorySize (MB) and Timeout (s). */
mr_code lambda_client_get_function(lambda_client *c, const char *function, int *memory_mb,
                                   int *timeout_s, mr_err *e);

/* From the base64 log tail's REPORT line: "Billed Duration: N ms" and "Memory Size: M MB".
 * Returns 1 when both were found. */
int lambda_parse_report(const char *log_result_b64, double *billed_ms, int *memory_mb);

/* Exponential backoff with full jitter: a uniform delay in [0, min(cap, base * 2^retry)]
 * seconds; seed is advanced (rand_r). */
double lambda_backoff(int retry, double base, double cap, unsigned *seed);

#endif
