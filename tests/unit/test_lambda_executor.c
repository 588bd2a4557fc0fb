/* Unit tests for lambda/executor against a local server playing the Lambda Invoke API:
 * every task runs once and its result reaches the runner's callback; invocations stay
 * within the concurrency limit; function errors are retried up to max_attempts;
 * throttling and 5xx are retried without using attempts; timeouts and permanent errors
 * fail the job with the task named; billed GB-seconds come from the log tail. */
#include <check.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "lambda/executor.h"
#include "../lambda/testsrv.h"

#define MAX_TASKS 64

typedef struct fake_lambda {
    int delay_ms;
    int fail_first_attempt;    /* each task's first attempt is a handled function error */
    int always_fail;
    int sandbox_timeout;       /* Lambda's own timeout for every attempt */
    int throttle_first;        /* the first N invocations get 429 */
    int error5xx_first;        /* then the next N get 500 */
    int missing_function;      /* GetFunctionConfiguration (and Invoke) answer 404 */
    int billed_ms, memory_mb;  /* in the REPORT line of the log tail when > 0 */
    /* observed */
    int invocations, in_flight, max_in_flight;
    int attempts[MAX_TASKS];
} fake_lambda;

static void fake_invoke(testsrv *s, fake_lambda *f, const testsrv_request *req, testsrv_reply *rep)
{
    cJSON *ev = cJSON_Parse(req->body);
    int index = cJSON_GetObjectItem(ev, "index")->valueint;
    cJSON_Delete(ev);
    pthread_mutex_lock(&s->mu);
    int n = f->invocations++;
    if (n < f->throttle_first) {
        pthread_mutex_unlock(&s->mu);
        rep->status = 429;
        strcpy(rep->headers, "x-amzn-ErrorType: TooManyRequestsException\r\n");
        rep->body = strdup("{\"Reason\":\"ConcurrentInvocationLimitExceeded\",\"message\":\"Rate Exceeded.\"}");
        return;
    }
    if (n < f->throttle_first + f->error5xx_first) {
        pthread_mutex_unlock(&s->mu);
        rep->status = 500;
        strcpy(rep->headers, "x-amzn-ErrorType: ServiceException\r\n");
        rep->body = strdup("{\"message\":\"internal\"}");
        return;
    }
    int attempt = ++f->attempts[index];
    if (++f->in_flight > f->max_in_flight) f->max_in_flight = f->in_flight;
    pthread_mutex_unlock(&s->mu);
    usleep((useconds_t)f->delay_ms * 1000);
    char body[512];
    if (f->sandbox_timeout) {
        strcpy(rep->headers, "X-Amz-Function-Error: Unhandled\r\n");
        snprintf(body, sizeof body, "{\"errorMessage\":\"2024-01-01T00:00:00Z abc Task timed out after 1.00 seconds\","
                                    "\"errorType\":\"Sandbox.Timedout\"}");
    } else if (f->always_fail || (f->fail_first_attempt && attempt == 1)) {
        strcpy(rep->headers, "X-Amz-Function-Error: Unhandled\r\n");
        snprintf(body, sizeof body, "{\"ok\":false,\"counters\":{},\"errorType\":\"script error\",\"errorCode\":%d,"
                                    "\"errorMessage\":\"map task %d: job.lua:3: boom\"}", MR_ESCRIPT, index);
    } else {
        snprintf(body, sizeof body, "{\"ok\":true,\"recordsIn\":%d,\"recordsOut\":%d,\"badRecords\":0,"
                                    "\"bytesIn\":%d,\"seconds\":0.5,\"output\":\"s3://b/run/map-%05d.imf\","
                                    "\"counters\":{\"lines\":%d}}", index * 10 + 1, index, index * 100, index, index + 1);
    }
    if (f->billed_ms > 0) {
        char log[256];
        unsigned char b64[400];
        snprintf(log, sizeof log, "END RequestId: x\nREPORT RequestId: x\tDuration: 1.0 ms\t"
                                  "Billed Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: 9 MB\t\n",
                 f->billed_ms, f->memory_mb);
        EVP_EncodeBlock(b64, (unsigned char *)log, (int)strlen(log));
        size_t k = strlen(rep->headers);
        snprintf(rep->headers + k, sizeof rep->headers - k, "X-Amz-Log-Result: %s\r\n", b64);
    }
    rep->body = strdup(body);
    pthread_mutex_lock(&s->mu);
    f->in_flight--;
    pthread_mutex_unlock(&s->mu);
}

static void fake_handler(testsrv *s, const testsrv_request *req, testsrv_reply *rep)
{
    fake_lambda *f = s->ud;
    if (f->missing_function) {
        rep->status = 404;
        strcpy(rep->headers, "x-amzn-ErrorType: ResourceNotFoundException\r\n");
        rep->body = strdup("{\"Message\":\"Function not found: arn:aws:lambda:us-east-1:1:function:fn\"}");
    } else if (strcmp(req->method, "GET") == 0 && strstr(req->path, "/configuration")) {
        rep->body = strdup("{\"MemorySize\":512,\"Timeout\":60}");
    } else if (strcmp(req->method, "POST") == 0 && strstr(req->path, "/invocations")) {
        fake_invoke(s, f, req, rep);
    } else {
        rep->status = 400;
    }
}

/* ---- the runner's side ---- */

typedef struct runner_side {
    int ntasks;
    int finals[MAX_TASKS], failures[MAX_TASKS], last_attempt[MAX_TASKS];
    long long records_in;
    int done_calls;
} runner_side;

static char *make_event(void *ud, int task)
{
    (void)ud;
    char *s = malloc(128);
    snprintf(s, 128, "{\"config\":\"s3://b/job.json\",\"runId\":\"r\",\"kind\":\"map\",\"index\":%d}", task);
    return s;
}

static void on_done(void *ud, int task, int attempt, const task_result *r, int final)
{
    runner_side *rs = ud;
    rs->done_calls++;
    rs->last_attempt[task] = attempt;
    if (r->failed) rs->failures[task]++;
    if (final) rs->finals[task]++;
    if (final && !r->failed) rs->records_in += (long long)r->records_in;
}

static testsrv *srv;
static fake_lambda fake;
static runner_side side;

static void setup(void)
{
    memset(&fake, 0, sizeof fake);
    memset(&side, 0, sizeof side);
    srv = testsrv_start(fake_handler, &fake);
    ck_assert_ptr_nonnull(srv);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv->port);
    setenv("AWS_ENDPOINT_URL_LAMBDA", ep, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("LUAMR_LAMBDA_BACKOFF_MS", "5", 1);   /* the backoff's shape, not its length */
    unsetenv("LUAMR_LAMBDA_MEMORY_MB");
}

static void teardown(void)
{
    testsrv_stop(srv);
}

static mr_code run_job(int ntasks, int concurrency, int max_attempts, lambda_stats *st, mr_err *e)
{
    side.ntasks = ntasks;
    lambda_job job = {.ntasks = ntasks, .concurrency = concurrency, .max_attempts = max_attempts,
                      .function = "fn", .event = make_event, .done = on_done, .ud = &side,
                      .quiet = 1, .stats = st};
    return lambda_executor_run(&job, e);
}

/* Sum of the records the fake reports, computed the fake's way. */
static long long want_records(int ntasks)
{
    long long sum = 0;
    for (int i = 0; i < ntasks; i++) sum += i * 10 + 1;
    return sum;
}

START_TEST(test_all_tasks_once)
{
    fake.delay_ms = 30;
    lambda_stats st;
    mr_err e = {0};
    ck_assert_int_eq(run_job(20, 4, 3, &st, &e), MR_OK);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(side.finals[i], 1);
        ck_assert_int_eq(side.failures[i], 0);
        ck_assert_int_eq(fake.attempts[i], 1);
    }
    ck_assert_int_eq(side.records_in, want_records(20));
    ck_assert_int_eq(st.invocations, 20);
    ck_assert_int_eq(st.retries, 0);
    ck_assert_int_le(fake.max_in_flight, 4);
    ck_assert_int_ge(fake.max_in_flight, 2);   /* they do overlap */
    ck_assert_int_eq(st.memory_mb, 512);        /* from GetFunctionConfiguration */
}
END_TEST

START_TEST(test_function_error_retried)
{
    fake.fail_first_attempt = 1;
    lambda_stats st;
    mr_err e = {0};
    ck_assert_int_eq(run_job(6, 3, 2, &st, &e), MR_OK);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(fake.attempts[i], 2);
        ck_assert_int_eq(side.failures[i], 1);   /* reported, not final */
        ck_assert_int_eq(side.finals[i], 1);
        ck_assert_int_eq(side.last_attempt[i], 2);
    }
    ck_assert_int_eq(side.done_calls, 12);
    ck_assert_int_eq(st.retries, 6);
    ck_assert_int_eq(side.records_in, want_records(6));
}
END_TEST

START_TEST(test_permanent_error_fails_job)
{
    fake.always_fail = 1;
    lambda_stats st;
    mr_err e = {0};
    ck_assert_int_eq(run_job(1, 1, 3, &st, &e), MR_ESCRIPT);
    ck_assert_msg(strstr(e.msg, "map task 0: job.lua:3: boom") != NULL, "%s", e.msg);
    ck_assert_int_eq(fake.attempts[0], 3);
    ck_assert_int_eq(side.finals[0], 1);
    ck_assert_int_eq(side.last_attempt[0], 3);
}
END_TEST

START_TEST(test_throttles_do_not_use_attempts)
{
    fake.throttle_first = 5;
    fake.error5xx_first = 3;
    lambda_stats st;
    mr_err e = {0};
    ck_assert_msg(run_job(4, 4, 1, &st, &e) == MR_OK, "%s", e.msg);
    ck_assert_int_eq(st.throttles, 5);
    ck_assert_int_eq(st.service_errors, 3);
    ck_assert_int_eq(st.invocations, 4 + 5 + 3);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(side.finals[i], 1);
    ck_assert_int_eq(side.records_in, want_records(4));
}
END_TEST

START_TEST(test_throttled_for_good)
{
    fake.throttle_first = 1000;
    setenv("LUAMR_LAMBDA_MAX_THROTTLES", "3", 1);
    mr_err e = {0};
    mr_code code = run_job(2, 2, 3, NULL, &e);
    unsetenv("LUAMR_LAMBDA_MAX_THROTTLES");
    ck_assert_int_ne(code, MR_OK);
    ck_assert_msg(strstr(e.msg, "TooManyRequestsException") && strstr(e.msg, "map task"), "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "concurrency") != NULL, "%s", e.msg);
}
END_TEST

START_TEST(test_lambda_timeout)
{
    fake.sandbox_timeout = 1;
    mr_err e = {0};
    ck_assert_int_eq(run_job(1, 1, 2, NULL, &e), MR_ETIMEOUT);
    ck_assert_msg(strstr(e.msg, "map task 0") && strstr(e.msg, "timed out after 1.00 seconds"), "%s", e.msg);
    ck_assert_int_eq(fake.attempts[0], 2);
}
END_TEST

START_TEST(test_missing_function)
{
    fake.missing_function = 1;
    mr_err e = {0};
    ck_assert_int_eq(run_job(3, 2, 3, NULL, &e), MR_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "Function not found") != NULL, "%s", e.msg);
    ck_assert_int_eq(fake.invocations, 0);
}
END_TEST

START_TEST(test_billed_gb_seconds)
{
    fake.billed_ms = 250;
    fake.memory_mb = 2048;
    lambda_stats st;
    mr_err e = {0};
    ck_assert_int_eq(run_job(8, 8, 1, &st, &e), MR_OK);
    ck_assert_int_eq(st.memory_mb, 2048);   /* the REPORT line wins over the configuration */
    ck_assert_double_eq_tol(st.billed_seconds, 8 * 0.25, 1e-9);
    ck_assert_double_eq_tol(st.gb_seconds, 8 * 0.25 * 2.0, 1e-9);
}
END_TEST

static Suite *lambda_executor_suite(void)
{
    Suite *s = suite_create("lambda_executor");
    TCase *tc = tcase_create("success");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_all_tasks_once);
    tcase_add_test(tc, test_billed_gb_seconds);
    suite_add_tcase(s, tc);
    tc = tcase_create("retries");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_function_error_retried);
    tcase_add_test(tc, test_throttles_do_not_use_attempts);
    suite_add_tcase(s, tc);
    tc = tcase_create("failures");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_permanent_error_fails_job);
    tcase_add_test(tc, test_throttled_for_good);
    tcase_add_test(tc, test_lambda_timeout);
    tcase_add_test(tc, test_missing_function);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lambda_executor_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
