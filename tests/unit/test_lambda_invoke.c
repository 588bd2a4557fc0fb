/* Unit tests for lambda/invoke: the signed Invoke and GetFunctionConfiguration requests
 * (checked against a local server that re-derives the signature from what arrived),
 * the classification of Lambda's answers, the REPORT line of the log tail and the
 * backoff. */
#include <check.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/sigv4.h"
#include "lambda/invoke.h"
#include "../lambda/testsrv.h"

#define AK "AKIDLAMBDATEST"
#define SK "lambda/secret+key"

/* ---- a server that records the request and checks its signature ---- */

typedef struct seen {
    testsrv_request req;
    char auth[1024], invocation_type[64], log_type[32], token[128];
    int signature_ok;
    char why[2600];
    int status;
    const char *reply_headers, *reply_body;
} seen;

static void percent_decode(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 1 < n; i++) {
        if (in[i] == '%' && in[i + 1] && in[i + 2]) {
            char hex[3] = {in[i + 1], in[i + 2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
}

/* Rebuilds the Authorization value from the request as received. */
static void check_signature(seen *s, const testsrv_request *r)
{
    char amz_date[32], region[64] = "", names[512] = "";
    testsrv_header(r, "x-amz-date", amz_date, sizeof amz_date);
    const char *cred = strstr(s->auth, "Credential=");
    const char *sh = strstr(s->auth, "SignedHeaders=");
    if (!cred || !sh) {
        snprintf(s->why, sizeof s->why, "no Credential/SignedHeaders in '%s'", s->auth);
        return;
    }
    /* Credential=AK/yyyymmdd/region/lambda/aws4_request */
    sscanf(cred, "Credential=%*[^/]/%*[^/]/%63[^/]/", region);
    sscanf(sh, "SignedHeaders=%511[^,]", names);
    sigv4_kv h[16];
    char values[16][512];
    size_t nh = 0;
    for (char *save, *name = strtok_r(names, ";", &save); name && nh < 16; name = strtok_r(NULL, ";", &save)) {
        testsrv_header(r, name, values[nh], sizeof values[nh]);
        h[nh] = (sigv4_kv){name, values[nh]};
        nh++;
    }
    char path[1024], hash[SIGV4_HASH_HEX];
    percent_decode(r->path, path, sizeof path);
    sigv4_sha256_hex(r->body, r->body_len, hash);
    sigv4_request req = {r->method, path, NULL, 0, h, nh, hash, 1};
    sigv4_credentials c = {AK, SK, s->token[0] ? s->token : NULL};
    mr_err e = {0};
    char *want = sigv4_authorization(&req, &c, amz_date, region, "lambda", &e);
    s->signature_ok = want && strcmp(want, s->auth) == 0;
    if (!s->signature_ok) snprintf(s->why, sizeof s->why, "sent %.1000s\nwant %.1000s", s->auth, want ? want : e.msg);
    free(want);
}

static void record_handler(testsrv *srv, const testsrv_request *r, testsrv_reply *rep)
{
    seen *s = srv->ud;
    pthread_mutex_lock(&srv->mu);
    free(s->req.body);   /* the previous request's, when a test makes several */
    s->req = *r;
    s->req.body = strdup(r->body);
    testsrv_header(r, "Authorization", s->auth, sizeof s->auth);
    testsrv_header(r, "X-Amz-Invocation-Type", s->invocation_type, sizeof s->invocation_type);
    testsrv_header(r, "X-Amz-Log-Type", s->log_type, sizeof s->log_type);
    testsrv_header(r, "x-amz-security-token", s->token, sizeof s->token);
    check_signature(s, r);
    rep->status = s->status ? s->status : 200;
    snprintf(rep->headers, sizeof rep->headers, "%s", s->reply_headers ? s->reply_headers : "");
    rep->body = strdup(s->reply_body ? s->reply_body : "{}");
    pthread_mutex_unlock(&srv->mu);
}

static testsrv *srv;
static seen last;

static void env_setup(void)
{
    memset(&last, 0, sizeof last);
    srv = testsrv_start(record_handler, &last);
    ck_assert_ptr_nonnull(srv);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv->port);
    setenv("AWS_ENDPOINT_URL_LAMBDA", ep, 1);
    setenv("AWS_ACCESS_KEY_ID", AK, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SK, 1);
    setenv("AWS_REGION", "eu-west-3", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
}

static void env_teardown(void)
{
    testsrv_stop(srv);
    free(last.req.body);
}

static lambda_client *client(void)
{
    mr_err e = {0};
    lambda_client *c = lambda_client_create(NULL, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    return c;
}

START_TEST(test_invoke_request_is_signed)
{
    lambda_client *c = client();
    ck_assert_str_eq(lambda_client_region(c), "eu-west-3");
    last.reply_body = "{\"ok\":true}";
    lambda_response r = {0};
    char why[512];
    const char *payload = "{\"config\":\"s3://b/job.json\",\"index\":3}";
    ck_assert_int_eq(lambda_client_invoke(c, "luamr-fn", payload, 10, &r, why, sizeof why), LAMBDA_OK);
    ck_assert_str_eq(r.body, "{\"ok\":true}");
    ck_assert_str_eq(last.req.method, "POST");
    ck_assert_str_eq(last.req.path, "/2015-03-31/functions/luamr-fn/invocations");
    ck_assert_str_eq(last.req.body, payload);
    ck_assert_str_eq(last.invocation_type, "RequestResponse");
    ck_assert_str_eq(last.log_type, "Tail");
    ck_assert_msg(strncmp(last.auth, "AWS4-HMAC-SHA256 Credential=" AK "/", 29 + strlen(AK)) == 0, "%s", last.auth);
    ck_assert_msg(strstr(last.auth, "/eu-west-3/lambda/aws4_request") != NULL, "%s", last.auth);
    ck_assert_msg(last.signature_ok, "%s", last.why);
    lambda_response_clear(&r);
    lambda_client_free(c);
}
END_TEST

START_TEST(test_invoke_arn_and_session_token)
{
    setenv("AWS_SESSION_TOKEN", "tok/en=", 1);
    mr_err e = {0};
    lambda_client *c = lambda_client_create("ap-south-1", &e);   /* explicit region wins */
    ck_assert_ptr_nonnull(c);
    lambda_response r = {0};
    char why[512];
    const char *arn = "arn:aws:lambda:ap-south-1:123456789012:function:luamr:prod";
    ck_assert_int_eq(lambda_client_invoke(c, arn, "{}", 10, &r, why, sizeof why), LAMBDA_OK);
    ck_assert_str_eq(last.req.path,
                     "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aap-south-1%3A123456789012%3Afunction%3Aluamr%3Aprod/invocations");
    ck_assert_str_eq(last.token, "tok/en=");
    ck_assert_msg(strstr(last.auth, "x-amz-security-token") != NULL, "%s", last.auth);
    ck_assert_msg(strstr(last.auth, "/ap-south-1/lambda/") != NULL, "%s", last.auth);
    ck_assert_msg(last.signature_ok, "%s", last.why);
    lambda_response_clear(&r);
    lambda_client_free(c);
}
END_TEST

START_TEST(test_get_function_configuration)
{
    lambda_client *c = client();
    last.reply_body = "{\"FunctionName\":\"f\",\"MemorySize\":1769,\"Timeout\":120}";
    int mem = 0, timeout = 0;
    mr_err e = {0};
    ck_assert_int_eq(lambda_client_get_function(c, "f", &mem, &timeout, &e), MR_OK);
    ck_assert_int_eq(mem, 1769);
    ck_assert_int_eq(timeout, 120);
    ck_assert_str_eq(last.req.method, "GET");
    ck_assert_str_eq(last.req.path, "/2015-03-31/functions/f/configuration");
    ck_assert_msg(last.signature_ok, "%s", last.why);
    last.status = 404;
    last.reply_headers = "x-amzn-ErrorType: ResourceNotFoundException:http://internal.amazon.com/\r\n";
    last.reply_body = "{\"Type\":\"User\",\"Message\":\"Function not found: arn:aws:lambda:f\"}";
    ck_assert_int_eq(lambda_client_get_function(c, "f", &mem, &timeout, &e), MR_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "ResourceNotFoundException: Function not found") != NULL, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "internal.amazon") == NULL, "%s", e.msg);
    lambda_client_free(c);
}
END_TEST

START_TEST(test_no_credentials)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
    setenv("AWS_CONFIG_FILE", "/dev/null", 1);
    mr_err e = {0};
    ck_assert_ptr_null(lambda_client_create(NULL, &e));
    ck_assert_int_eq(e.code, MR_EAUTH);
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    unsetenv("AWS_CONFIG_FILE");
}
END_TEST

START_TEST(test_endpoint_from_region)
{
    unsetenv("AWS_ENDPOINT_URL_LAMBDA");
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1/", 1);
    lambda_client *c = client();
    ck_assert_str_eq(lambda_client_endpoint(c), "http://127.0.0.1:1");
    lambda_client_free(c);
    setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
    c = client();
    ck_assert_str_eq(lambda_client_endpoint(c), "https://lambda.eu-west-3.amazonaws.com");
    lambda_client_free(c);
    unsetenv("AWS_ENDPOINT_URL");
}
END_TEST

/* ---- what comes back ---- */

typedef struct answer {
    int status;
    const char *headers, *body;
    lambda_outcome want;
    const char *why_has;
} answer;

START_TEST(test_classify_answers)
{
    static const answer cases[] = {
        {200, "", "{\"ok\":true}", LAMBDA_OK, ""},
        {200, "X-Amz-Function-Error: Unhandled\r\n",
         "{\"errorMessage\":\"Task timed out after 3.00 seconds\",\"errorType\":\"Sandbox.Timedout\"}",
         LAMBDA_FUNCTION_ERROR, "Task timed out after 3.00 seconds"},
        {429, "x-amzn-ErrorType: TooManyRequestsException\r\n",
         "{\"Reason\":\"ReservedFunctionConcurrentInvocationLimitExceeded\",\"message\":\"Rate Exceeded.\"}",
         LAMBDA_THROTTLED, "TooManyRequestsException: Rate Exceeded."},
        {502, "x-amzn-ErrorType: EC2ThrottledException\r\n", "{\"message\":\"slow down\"}",
         LAMBDA_THROTTLED, "EC2ThrottledException"},
        {500, "x-amzn-ErrorType: ServiceException\r\n", "{\"message\":\"oops\"}", LAMBDA_RETRYABLE, "HTTP 500"},
        {403, "x-amzn-ErrorType: AccessDeniedException\r\n", "{\"Message\":\"not authorized to perform lambda:InvokeFunction\"}",
         LAMBDA_FATAL, "AccessDeniedException: not authorized"},
        {413, "x-amzn-ErrorType: RequestTooLargeException\r\n", "{\"message\":\"Request must be smaller\"}",
         LAMBDA_FATAL, "RequestTooLargeException"},
    };
    lambda_client *c = client();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        last.status = cases[i].status;
        last.reply_headers = cases[i].headers;
        last.reply_body = cases[i].body;
        lambda_response r = {0};
        char why[1024];
        lambda_outcome got = lambda_client_invoke(c, "fn", "{}", 10, &r, why, sizeof why);
        ck_assert_msg(got == cases[i].want, "case %zu: got %d want %d (%s)", i, got, cases[i].want, why);
        ck_assert_msg(strstr(why, cases[i].why_has) != NULL, "case %zu: '%s' lacks '%s'", i, why, cases[i].why_has);
        if (got != LAMBDA_OK) ck_assert_msg(strstr(why, "fn") != NULL, "%s", why);   /* names the function */
        lambda_response_clear(&r);
    }
    lambda_client_free(c);
}
END_TEST

START_TEST(test_transport_failure_is_retryable)
{
    setenv("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:1", 1);   /* nothing listens there */
    lambda_client *c = client();
    lambda_response r = {0};
    char why[512];
    ck_assert_int_eq(lambda_client_invoke(c, "fn", "{}", 5, &r, why, sizeof why), LAMBDA_RETRYABLE);
    ck_assert_msg(strstr(why, "invoking fn") != NULL, "%s", why);
    lambda_response_clear(&r);
    lambda_client_free(c);
}
END_TEST

START_TEST(test_report_line)
{
    const char *log = "START RequestId: 1 Version: $LATEST\nhello\nEND RequestId: 1\n"
                      "REPORT RequestId: 1\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\t"
                      "Memory Size: 2048 MB\tMax Memory Used: 99 MB\tInit Duration: 20.1 ms\t\n";
    unsigned char b64[1024];
    EVP_EncodeBlock(b64, (const unsigned char *)log, (int)strlen(log));
    double billed = 0;
    int mem = 0;
    ck_assert_int_eq(lambda_parse_report((char *)b64, &billed, &mem), 1);
    ck_assert_double_eq(billed, 1235);
    ck_assert_int_eq(mem, 2048);
    ck_assert_int_eq(lambda_parse_report("", &billed, &mem), 0);
    ck_assert_int_eq(lambda_parse_report("bm90IGEgcmVwb3J0", &billed, &mem), 0);   /* "not a report" */
    ck_assert_int_eq(lambda_parse_report("###", &billed, &mem), 0);
}
END_TEST

START_TEST(test_backoff_bounds)
{
    unsigned seed = 42;
    for (int retry = 0; retry < 12; retry++) {
        double limit = 0.1;
        for (int i = 0; i < retry; i++) limit *= 2;
        if (limit > 3) limit = 3;
        double sum = 0;
        for (int k = 0; k < 2000; k++) {
            double d = lambda_backoff(retry, 0.1, 3, &seed);
            ck_assert(d >= 0 && d <= limit);
            sum += d;
        }
        /* full jitter: uniform on [0, limit], so the mean is near limit / 2 */
        ck_assert_msg(sum / 2000 > limit * 0.4 && sum / 2000 < limit * 0.6, "retry %d mean %f", retry, sum / 2000);
    }
}
END_TEST

static Suite *lambda_invoke_suite(void)
{
    Suite *s = suite_create("lambda_invoke");
    TCase *tc = tcase_create("request");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_add_test(tc, test_invoke_request_is_signed);
    tcase_add_test(tc, test_invoke_arn_and_session_token);
    tcase_add_test(tc, test_get_function_configuration);
    tcase_add_test(tc, test_no_credentials);
    tcase_add_test(tc, test_endpoint_from_region);
    suite_add_tcase(s, tc);
    tc = tcase_create("classify");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_add_test(tc, test_classify_answers);
    tcase_add_test(tc, test_transport_failure_is_retryable);
    suite_add_tcase(s, tc);
    tc = tcase_create("accounting");
    tcase_add_test(tc, test_report_line);
    tcase_add_test(tc, test_backoff_bounds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lambda_invoke_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
