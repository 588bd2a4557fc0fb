#include "runtime.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RUNTIME_PREFIX "/2018-06-01/runtime"
/* Lambda caps a synchronous payload at 6 MB; anything past that is not an event. */
#define RUNTIME_MAX_EVENT (6u << 20)

struct lambda_runtime {
    CURL *curl;
    char base[300];        /* "http://host:port/2018-06-01/runtime" */
    char *buf;             /* body of the last GET, reused across invocations */
    size_t len, cap;
    int too_large;
    lambda_invocation *inv;   /* headers of the GET land here */
};

static size_t runtime_on_body(char *data, size_t size, size_t n, void *ud)
{
    lambda_runtime *rt = ud;
    size_t add = size * n;
    if (rt->len + add + 1 > RUNTIME_MAX_EVENT) {
        rt->too_large = 1;
        return 0;
    }
    if (rt->len + add + 1 > rt->cap) {
        size_t cap = rt->cap ? rt->cap : 4096;
        while (cap < rt->len + add + 1) cap *= 2;
        char *p = realloc(rt->buf, cap);
        if (!p) return 0;
        rt->buf = p;
        rt->cap = cap;
    }
    memcpy(rt->buf + rt->len, data, add);
    rt->len += add;
    rt->buf[rt->len] = '\0';
    return add;
}

static size_t runtime_discard(char *data, size_t size, size_t n, void *ud)
{
    (void)data;
    (void)ud;
    return size * n;
}

/* Copies a header value (trimmed) when the line is "name: value". */
static int runtime_header(const char *line, size_t n, const char *name, char *dst, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0) return 0;
    const char *v = line + k + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    size_t len = (size_t)(end - v);
    if (len >= cap) len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
    return 1;
}

static size_t runtime_on_header(char *line, size_t size, size_t n, void *ud)
{
    lambda_runtime *rt = ud;
    lambda_invocation *inv = rt->inv;
    size_t len = size * n;
    char deadline[32];
    if (!inv) return len;
    runtime_header(line, len, "Lambda-Runtime-Aws-Request-Id", inv->request_id, sizeof inv->request_id);
    runtime_header(line, len, "Lambda-Runtime-Invoked-Function-Arn", inv->function_arn,
                   sizeof inv->function_arn);
    runtime_header(line, len, "Lambda-Runtime-Trace-Id", inv->trace_id, sizeof inv->trace_id);
    if (runtime_header(line, len, "Lambda-Runtime-Deadline-Ms", deadline, sizeof deadline))
        inv->deadline = strtod(deadline, NULL) / 1000.0;
    return len;
}

lambda_runtime *lambda_runtime_create(const char *api, mr_err *e)
{
    MR_CHECK_NULL(api && *api, e, MR_EINVAL,
                  "AWS_LAMBDA_RUNTIME_API is not set: the bootstrap runs inside Lambda (or the test emulator)");
    MR_CHECK_NULL(strlen(api) < 200 && !strchr(api, '/'), e, MR_EINVAL,
                  "AWS_LAMBDA_RUNTIME_API must be host:port, got '%.200s'", api);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    lambda_runtime *rt = calloc(1, sizeof *rt);
    MR_CHECK_NULL(rt, e, MR_ENOMEM, "out of memory");
    rt->curl = curl_easy_init();
    if (!rt->curl) {
        free(rt);
        mr_fail(e, MR_ENOMEM, "curl_easy_init failed");
        return NULL;
    }
    snprintf(rt->base, sizeof rt->base, "http://%s" RUNTIME_PREFIX, api);
    return rt;
}

void lambda_runtime_free(lambda_runtime *rt)
{
    if (!rt) return;
    curl_easy_cleanup(rt->curl);
    free(rt->buf);
    free(rt);
}

/* One request on the kept-alive connection; returns the HTTP status or -1 (e set). */
static long runtime_request(lambda_runtime *rt, const char *method, const char *path,
                            const char *body, const char *error_type, mr_err *e)
{
    CURL *c = rt->curl;
    char url[600];
    snprintf(url, sizeof url, "%s%s", rt->base, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    struct curl_slist *h = NULL;
    char ethdr[200];
    if (strcmp(method, "POST") == 0) {
        h = curl_slist_append(h, "Content-Type: application/json");
        h = curl_slist_append(h, "Expect:");
        if (error_type) {
            snprintf(ethdr, sizeof ethdr, "Lambda-Runtime-Function-Error-Type: %s", error_type);
            h = curl_slist_append(h, ethdr);
        }
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, runtime_discard);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    } else {
        rt->len = 0;
        rt->too_large = 0;
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, runtime_on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, rt);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, runtime_on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, rt);
    }
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        mr_fail(e, rt->too_large ? MR_ELIMIT : MR_ENET, "Runtime API %s %s: %s", method, url,
                rt->too_large ? "event larger than 6 MB" : curl_easy_strerror(cc));
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

mr_code lambda_runtime_next(lambda_runtime *rt, lambda_invocation *inv, mr_err *e)
{
    memset(inv, 0, sizeof *inv);
    rt->inv = inv;
    long status = runtime_request(rt, "GET", "/invocation/next", NULL, NULL, e);
    rt->inv = NULL;
    if (status < 0) return e->code;
    MR_CHECK(status == 200, e, MR_ENET, "Runtime API GET /invocation/next answered HTTP %ld: %.300s",
             status, rt->buf ? rt->buf : "");
    MR_CHECK(inv->request_id[0], e, MR_EFORMAT,
             "Runtime API GET /invocation/next: no Lambda-Runtime-Aws-Request-Id header");
    if (!rt->buf) runtime_on_body("", 1, 0, rt);   /* an empty event is still a string */
    if (!rt->buf) return mr_fail(e, MR_ENOMEM, "out of memory");
    inv->event = rt->buf;
    inv->event_len = rt->len;
    return MR_OK;
}

static mr_code runtime_post(lambda_runtime *rt, const char *path, const char *body,
                            const char *error_type, mr_err *e)
{
    long status = runtime_request(rt, "POST", path, body, error_type, e);
    if (status < 0) return e->code;
    MR_CHECK(status == 202 || status == 200, e, status == 413 ? MR_ELIMIT : MR_ENET,
             "Runtime API POST %s answered HTTP %ld%s", path, status,
             status == 413 ? " (payload too large)" : status == 410 ? " (invocation gone: timed out?)" : "");
    return MR_OK;
}

mr_code lambda_runtime_respond(lambda_runtime *rt, const char *request_id, const char *body,
                               mr_err *e)
{
    char path[LAMBDA_RUNTIME_ID_MAX + 64];
    snprintf(path, sizeof path, "/invocation/%s/response", request_id);
    return runtime_post(rt, path, body, NULL, e);
}

char *lambda_runtime_error_json(const char *error_type, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "errorMessage", message ? message : "");
    cJSON_AddStringToObject(o, "errorType", error_type ? error_type : "luamr.error");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static mr_code runtime_post_error(lambda_runtime *rt, const char *path, const char *error_type,
                                  const char *message, const char *body, mr_err *e)
{
    char *own = body ? NULL : lambda_runtime_error_json(error_type, message);
    MR_CHECK(body || own, e, MR_ENOMEM, "out of memory");
    mr_code code = runtime_post(rt, path, body ? body : own, error_type ? error_type : "luamr.error", e);
    free(own);
    return code;
}

mr_code lambda_runtime_fail(lambda_runtime *rt, const char *request_id, const char *error_type,
                            const char *message, const char *body, mr_err *e)
{
    char path[LAMBDA_RUNTIME_ID_MAX + 64];
    snprintf(path, sizeof path, "/invocation/%s/error", request_id);
    return runtime_post_error(rt, path, error_type, message, body, e);
}

mr_code lambda_runtime_init_error(lambda_runtime *rt, const char *error_type,
                                  const char *message, mr_err *e)
{
    return runtime_post_error(rt, "/init/error", error_type, message, NULL, e);
}

mr_code lambda_runtime_loop(lambda_runtime *rt, lambda_handler fn, void *ud, int max_events,
                            mr_err *e)
{
    for (int n = 0; max_events <= 0 || n < max_events; n++) {
        lambda_invocation inv;
        MR_TRY(lambda_runtime_next(rt, &inv, e));
        char *body = NULL;
        char error_type[128] = "";
        int failed = fn(ud, &inv, &body, error_type, sizeof error_type);
        mr_err pe = {0};
        mr_code code;
        if (!body) {
            code = lambda_runtime_fail(rt, inv.request_id, "luamr.internal",
                                       "the handler produced no answer (out of memory?)", NULL, &pe);
        } else if (failed) {
            code = lambda_runtime_fail(rt, inv.request_id, error_type[0] ? error_type : "luamr.error",
                                       NULL, body, &pe);
        } else {
            code = lambda_runtime_respond(rt, inv.request_id, body, &pe);
            if (code == MR_ELIMIT)   /* tell the caller rather than leave it waiting */
                code = lambda_runtime_fail(rt, inv.request_id, "luamr.limit",
                                           "the task's result is larger than Lambda's 6 MB response limit",
                                           NULL, &pe);
        }
        free(body);
        if (code != MR_OK) fprintf(stderr, "luamr bootstrap: invocation %s: %s\n", inv.request_id, pe.msg);
    }
    return MR_OK;
}
