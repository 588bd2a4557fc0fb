/* Unit tests for lambda/runtime (the Runtime API client, against a local server playing
 * the Runtime API), lambda/event (the invocation event) and lambda/log (JSON log lines
 * and CloudWatch Embedded Metric Format). */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lambda/event.h"
#include "lambda/log.h"
#include "lambda/runtime.h"
#include "../lambda/testsrv.h"

/* ---- a fake Runtime API: hands out a list of events, records what comes back ---- */

#define MAX_POSTS 16

typedef struct fake_api {
    const char *const *events;
    int nevents, next;
    double deadline_ms;
    int init_error_status;   /* status for POST /init/error */
    struct {
        char path[1024];
        char error_type[128];
        char *body;
    } posts[MAX_POSTS];
    int nposts;
} fake_api;

static void fake_handler(testsrv *s, const testsrv_request *req, testsrv_reply *rep)
{
    fake_api *f = s->ud;
    pthread_mutex_lock(&s->mu);
    if (strcmp(req->method, "GET") == 0 &&
        strcmp(req->path, "/2018-06-01/runtime/invocation/next") == 0) {
        if (f->next >= f->nevents) {
            rep->status = 500;   /* ends the loop: the test has no more events */
        } else {
            int i = f->next++;
            snprintf(rep->headers, sizeof rep->headers,
                     "Lambda-Runtime-Aws-Request-Id: req-%d\r\n"
                     "Lambda-Runtime-Deadline-Ms: %.0f\r\n"
                     "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123:function:f\r\n"
                     "Lambda-Runtime-Trace-Id: Root=1-abc\r\n",
                     i, f->deadline_ms);
            rep->body = strdup(f->events[i]);
        }
    } else if (strcmp(req->method, "POST") == 0 && f->nposts < MAX_POSTS) {
        int i = f->nposts++;
        snprintf(f->posts[i].path, sizeof f->posts[i].path, "%s", req->path);
        testsrv_header(req, "Lambda-Runtime-Function-Error-Type", f->posts[i].error_type,
                       sizeof f->posts[i].error_type);
        f->posts[i].body = strdup(req->body);
        rep->status = strstr(req->path, "/init/error") && f->init_error_status ? f->init_error_status : 202;
        rep->body = strdup("{\"status\":\"OK\"}");
    } else {
        rep->status = 404;
    }
    pthread_mutex_unlock(&s->mu);
}

static void fake_free(fake_api *f)
{
    for (int i = 0; i < f->nposts; i++) free(f->posts[i].body);
}

static char api_addr[64];

static lambda_runtime *start_runtime(testsrv **srv, fake_api *f)
{
    *srv = testsrv_start(fake_handler, f);
    ck_assert_ptr_nonnull(*srv);
    snprintf(api_addr, sizeof api_addr, "127.0.0.1:%d", (*srv)->port);
    mr_err e = {0};
    lambda_runtime *rt = lambda_runtime_create(api_addr, &e);
    ck_assert_msg(rt != NULL, "%s", e.msg);
    return rt;
}

/* Echoes the event upper-cased unless it contains "fail"; checks the headers arrived. */
static double seen_deadline;
static char seen_arn[256];

static int echo_handler(void *ud, const lambda_invocation *inv, char **body, char *error_type,
                        size_t n)
{
    (void)ud;
    seen_deadline = inv->deadline;
    snprintf(seen_arn, sizeof seen_arn, "%s", inv->function_arn);
    if (strstr(inv->event, "fail")) {
        snprintf(error_type, n, "luamr.script_error");
        *body = lambda_runtime_error_json(error_type, "job.lua:7: boom");
        return 1;
    }
    *body = malloc(inv->event_len + 32);
    snprintf(*body, inv->event_len + 32, "{\"echo\":%s,\"id\":\"%s\"}", inv->event, inv->request_id);
    return 0;
}

START_TEST(test_loop_responds_in_order)
{
    const char *events[] = {"{\"n\":1}", "{\"n\":2}", "[3]"};
    fake_api f = {.events = events, .nevents = 3, .deadline_ms = 1893456000123.0};
    testsrv *srv;
    lambda_runtime *rt = start_runtime(&srv, &f);
    mr_err e = {0};
    ck_assert_int_eq(lambda_runtime_loop(rt, echo_handler, NULL, 3, &e), MR_OK);
    lambda_runtime_free(rt);
    testsrv_stop(srv);
    ck_assert_int_eq(f.nposts, 3);
    for (int i = 0; i < 3; i++) {
        char want_path[128], want_body[128];
        snprintf(want_path, sizeof want_path, "/2018-06-01/runtime/invocation/req-%d/response", i);
        snprintf(want_body, sizeof want_body, "{\"echo\":%s,\"id\":\"req-%d\"}", events[i], i);
        ck_assert_str_eq(f.posts[i].path, want_path);
        ck_assert_str_eq(f.posts[i].body, want_body);
        ck_assert_str_eq(f.posts[i].error_type, "");
    }
    ck_assert(seen_deadline > 1893456000.12 && seen_deadline < 1893456000.13);
    ck_assert_str_eq(seen_arn, "arn:aws:lambda:us-east-1:123:function:f");
    fake_free(&f);
}
END_TEST

START_TEST(test_loop_reports_function_error)
{
    const char *events[] = {"{\"please\":\"fail\"}", "{\"ok\":true}"};
    fake_api f = {.events = events, .nevents = 2};
    testsrv *srv;
    lambda_runtime *rt = start_runtime(&srv, &f);
    mr_err e = {0};
    ck_assert_int_eq(lambda_runtime_loop(rt, echo_handler, NULL, 2, &e), MR_OK);
    lambda_runtime_free(rt);
    testsrv_stop(srv);
    ck_assert_int_eq(f.nposts, 2);
    ck_assert_str_eq(f.posts[0].path, "/2018-06-01/runtime/invocation/req-0/error");
    ck_assert_str_eq(f.posts[0].error_type, "luamr.script_error");
    cJSON *o = cJSON_Parse(f.posts[0].body);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "errorMessage")->valuestring, "job.lua:7: boom");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "errorType")->valuestring, "luamr.script_error");
    cJSON_Delete(o);
    ck_assert_str_eq(f.posts[1].path, "/2018-06-01/runtime/invocation/req-1/response");
    ck_assert(seen_deadline == 0);   /* a deadline of 0 ms means none */
    fake_free(&f);
}
END_TEST

START_TEST(test_loop_ends_when_api_fails)
{
    const char *events[] = {"{}"};
    fake_api f = {.events = events, .nevents = 1};
    testsrv *srv;
    lambda_runtime *rt = start_runtime(&srv, &f);
    mr_err e = {0};
    ck_assert_int_eq(lambda_runtime_loop(rt, echo_handler, NULL, 0, &e), MR_ENET);
    ck_assert_msg(strstr(e.msg, "HTTP 500") != NULL, "%s", e.msg);
    lambda_runtime_free(rt);
    testsrv_stop(srv);
    ck_assert_int_eq(f.nposts, 1);
    fake_free(&f);
}
END_TEST

START_TEST(test_init_error)
{
    fake_api f = {.events = NULL};
    testsrv *srv;
    lambda_runtime *rt = start_runtime(&srv, &f);
    mr_err e = {0};
    ck_assert_int_eq(lambda_runtime_init_error(rt, "luamr.i/o_error", "scratch folder /tmp is not writable", &e), MR_OK);
    f.init_error_status = 500;
    ck_assert_int_ne(lambda_runtime_init_error(rt, "luamr.x", "again", &e), MR_OK);
    ck_assert_msg(strstr(e.msg, "/init/error") != NULL, "%s", e.msg);
    lambda_runtime_free(rt);
    testsrv_stop(srv);
    ck_assert_int_eq(f.nposts, 2);
    ck_assert_str_eq(f.posts[0].path, "/2018-06-01/runtime/init/error");
    ck_assert_str_eq(f.posts[0].error_type, "luamr.i/o_error");
    cJSON *o = cJSON_Parse(f.posts[0].body);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "errorMessage")->valuestring, "scratch folder /tmp is not writable");
    cJSON_Delete(o);
    fake_free(&f);
}
END_TEST

START_TEST(test_create_rejects_bad_address)
{
    mr_err e = {0};
    ck_assert_ptr_null(lambda_runtime_create(NULL, &e));
    ck_assert(strstr(e.msg, "AWS_LAMBDA_RUNTIME_API") != NULL);
    ck_assert_ptr_null(lambda_runtime_create("http://x/y", &e));
    ck_assert(strstr(e.msg, "host:port") != NULL);
    lambda_runtime_free(NULL);
}
END_TEST

/* ---- the event ---- */

START_TEST(test_event_parse)
{
    lambda_event ev;
    mr_err e = {0};
    ck_assert_int_eq(lambda_event_parse("{\"config\":\"s3://b/job.json\",\"runId\":\"r1\",\"kind\":\"reduce\","
                                        "\"index\":4,\"fromRun\":\"r0\"}", &ev, &e), MR_OK);
    ck_assert_str_eq(ev.config, "s3://b/job.json");
    ck_assert_str_eq(ev.run_id, "r1");
    ck_assert_str_eq(ev.from_run, "r0");
    ck_assert_int_eq(ev.kind, TASK_REDUCE);
    ck_assert_int_eq(ev.index, 4);
    char what[32];
    lambda_event_describe(&ev, what, sizeof what);
    ck_assert_str_eq(what, "reduce 4");
    ck_assert_int_eq(lambda_event_parse("{\"config\":\"c\",\"runId\":\"r\",\"kind\":\"publish\",\"index\":0}", &ev, &e), MR_OK);
    ck_assert_str_eq(ev.from_run, "");
    ck_assert_int_eq(ev.kind, TASK_PUBLISH);
}
END_TEST

START_TEST(test_event_errors_name_the_field)
{
    static const struct { const char *json, *field; } bad[] = {
        {"[1]", "not a JSON object"},
        {"{\"runId\":\"r\",\"kind\":\"map\",\"index\":0}", "\"config\""},
        {"{\"config\":\"c\",\"kind\":\"map\",\"index\":0}", "\"runId\""},
        {"{\"config\":\"c\",\"runId\":\"r\",\"kind\":\"sort\",\"index\":0}", "'sort'"},
        {"{\"config\":\"c\",\"runId\":\"r\",\"kind\":\"map\",\"index\":-1}", "\"index\""},
        {"{\"config\":\"c\",\"runId\":\"r\",\"kind\":\"map\",\"index\":1.5}", "\"index\""},
        {"{\"config\":\"c\",\"runId\":\"r\",\"kind\":\"map\"}", "\"index\""},
        {"{\"config\":\"c\",\"runId\":\"r\",\"kind\":\"map\",\"index\":1,\"fromRun\":7}", "\"fromRun\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lambda_event ev;
        mr_err e = {0};
        ck_assert_int_eq(lambda_event_parse(bad[i].json, &ev, &e), MR_EINVAL);
        ck_assert_msg(strstr(e.msg, bad[i].field) != NULL, "%s: %s", bad[i].json, e.msg);
    }
}
END_TEST

/* ---- logs ---- */

START_TEST(test_log_line_is_json)
{
    lambda_log_ctx ctx = {"req-9", "20240101-1", "map 3", "fn"};
    char *line = lambda_log_line(&ctx, "error", "job.lua:3: \"quoted\"\nnext line");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_null(strchr(line, '\n'));   /* one object per line, whatever the message */
    cJSON *o = cJSON_Parse(line);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "level")->valuestring, "error");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "requestId")->valuestring, "req-9");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "runId")->valuestring, "20240101-1");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "task")->valuestring, "map 3");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "message")->valuestring, "job.lua:3: \"quoted\"\nnext line");
    const char *t = cJSON_GetObjectItem(o, "time")->valuestring;
    ck_assert_int_eq(strlen(t), 24);
    ck_assert(t[10] == 'T' && t[23] == 'Z');
    cJSON_Delete(o);
    free(line);
}
END_TEST

START_TEST(test_emf_document)
{
    lambda_log_ctx ctx = {"req-1", "run-7", "map 0", "luamr-fn"};
    lambda_task_metrics m = {"map", 1000, 40, 123456, 2, 1500.5, 0};
    char *line = lambda_emf_line(&ctx, &m, 1700000000123.0);
    cJSON *o = cJSON_Parse(line);
    ck_assert_ptr_nonnull(o);
    cJSON *aws = cJSON_GetObjectItem(o, "_aws");
    ck_assert_double_eq(cJSON_GetObjectItem(aws, "Timestamp")->valuedouble, 1700000000123.0);
    cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(aws, "CloudWatchMetrics"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "Namespace")->valuestring, "luamr");
    /* Every dimension and every metric the directive names must be a member of the root:
     * CloudWatch drops the document otherwise. */
    cJSON *dims = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "Dimensions"), 0), *it;
    ck_assert_int_eq(cJSON_GetArraySize(dims), 2);
    cJSON_ArrayForEach(it, dims) ck_assert(cJSON_IsString(cJSON_GetObjectItem(o, it->valuestring)));
    int nmetrics = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(d, "Metrics")) {
        const char *name = cJSON_GetObjectItem(it, "Name")->valuestring;
        ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItem(o, name)), "metric %s missing", name);
        nmetrics++;
    }
    ck_assert_int_eq(nmetrics, 6);
    ck_assert_double_eq(cJSON_GetObjectItem(o, "Records")->valuedouble, 1000);
    ck_assert_double_eq(cJSON_GetObjectItem(o, "Bytes")->valuedouble, 123456);
    ck_assert_double_eq(cJSON_GetObjectItem(o, "BadRecords")->valuedouble, 2);
    ck_assert_double_eq(cJSON_GetObjectItem(o, "Duration")->valuedouble, 1500.5);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "Function")->valuestring, "luamr-fn");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "Kind")->valuestring, "map");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "runId")->valuestring, "run-7");
    cJSON_Delete(o);
    free(line);
}
END_TEST

static Suite *lambda_runtime_suite(void)
{
    Suite *s = suite_create("lambda_runtime");
    TCase *tc = tcase_create("runtime_api");
    tcase_add_test(tc, test_loop_responds_in_order);
    tcase_add_test(tc, test_loop_reports_function_error);
    tcase_add_test(tc, test_loop_ends_when_api_fails);
    tcase_add_test(tc, test_init_error);
    tcase_add_test(tc, test_create_rejects_bad_address);
    suite_add_tcase(s, tc);
    tc = tcase_create("event");
    tcase_add_test(tc, test_event_parse);
    tcase_add_test(tc, test_event_errors_name_the_field);
    suite_add_tcase(s, tc);
    tc = tcase_create("log");
    tcase_add_test(tc, test_log_line_is_json);
    tcase_add_test(tc, test_emf_document);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lambda_runtime_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
