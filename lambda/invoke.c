#include "invoke.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../connectors/awsconf.h"
#include "../connectors/sigv4.h"

struct lambda_client {
    awsconf *conf;
    char region[64];
    char endpoint[512];   /* "https://lambda.us-east-1.amazonaws.com", no trailing '/' */
    char host[512];       /* what goes in the Host header and is signed */
};

static const char *invoke_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

lambda_client *lambda_client_create(const char *region, mr_err *e)
{
    awsconf *conf = awsconf_load(e);
    if (!conf) return NULL;
    if (!awsconf_has_credentials(conf)) {
        awsconf_free(conf);
        mr_fail(e, MR_EAUTH,
                "no AWS credentials to invoke Lambda with: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials");
        return NULL;
    }
    lambda_client *c = calloc(1, sizeof *c);
    if (!c) {
        awsconf_free(conf);
        mr_fail(e, MR_ENOMEM, "out of memory");
        return NULL;
    }
    c->conf = conf;
    snprintf(c->region, sizeof c->region, "%s", region && *region ? region : awsconf_region(conf));
    const char *ignore = invoke_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    const char *ep = NULL;
    if (!ignore || strcasecmp(ignore, "true") != 0) {
        ep = invoke_env("AWS_ENDPOINT_URL_LAMBDA");
        if (!ep) ep = invoke_env("AWS_ENDPOINT_URL");
    }
    if (ep) snprintf(c->endpoint, sizeof c->endpoint, "%s", ep);
    else snprintf(c->endpoint, sizeof c->endpoint, "https://lambda.%s.amazonaws.com", c->region);
    size_t n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/') c->endpoint[--n] = '\0';
    const char *h = strstr(c->endpoint, "://");
    h = h ? h + 3 : c->endpoint;
    size_t hl = strcspn(h, "/");
    if (hl == 0 || strchr(h, '/')) {
        lambda_client_free(c);
        mr_fail(e, MR_EINVAL, "Lambda endpoint '%s' must be scheme://host[:port] without a path", ep);
        return NULL;
    }
    memcpy(c->host, h, hl);
    c->host[hl] = '\0';
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return c;
}

void lambda_client_free(lambda_client *c)
{
    if (!c) return;
    awsconf_free(c->conf);
    free(c);
}

const char *lambda_client_endpoint(const lambda_client *c) { return c->endpoint; }
const char *lambda_client_region(const lambda_client *c) { return c->region; }

void lambda_response_reset(lambda_response *r)
{
    r->status = 0;
    r->function_error[0] = r->error_type[0] = r->request_id[0] = r->log_result[0] = '\0';
    r->len = 0;
    r->truncated = 0;
    if (r->body) r->body[0] = '\0';
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    free(r->payload);
    r->payload = NULL;
}

void lambda_response_clear(lambda_response *r)
{
    lambda_response_reset(r);
    free(r->body);
    r->body = NULL;
    r->cap = 0;
}

static size_t invoke_on_body(char *data, size_t size, size_t n, void *ud)
{
    lambda_response *r = ud;
    size_t add = size * n;
    if (r->len + add + 1 > LAMBDA_MAX_RESPONSE) {
        r->truncated = 1;
        add = LAMBDA_MAX_RESPONSE - 1 - r->len;   /* keep what fits, still drain the rest */
    }
    if (r->len + add + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + add + 1) cap *= 2;
        char *p = realloc(r->body, cap);
        if (!p) return 0;
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, add);
    r->len += add;
    r->body[r->len] = '\0';
    return size * n;
}

static void invoke_copy_header(const char *line, size_t n, const char *name, char *dst, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0) return;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    size_t len = (size_t)(end - v);
    if (len >= cap) len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t invoke_on_header(char *line, size_t size, size_t n, void *ud)
{
    lambda_response *r = ud;
    size_t len = size * n;
    if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {   /* a new response (redirect, 100) */
        r->function_error[0] = r->error_type[0] = r->log_result[0] = '\0';
        return len;
    }
    invoke_copy_header(line, len, "X-Amz-Function-Error", r->function_error, sizeof r->function_error);
    invoke_copy_header(line, len, "x-amzn-ErrorType", r->error_type, sizeof r->error_type);
    invoke_copy_header(line, len, "x-amzn-RequestId", r->request_id, sizeof r->request_id);
    invoke_copy_header(line, len, "X-Amz-Log-Result", r->log_result, sizeof r->log_result);
    return len;
}

/* Signs a request to path and returns the headers curl must send (Host, x-amz-date, ...). */
static struct curl_slist *invoke_sign(lambda_client *c, const char *method, const char *path,
                                      const char *payload, size_t len, int invoke, mr_err *e)
{
    char amz_date[SIGV4_AMZ_DATE], hash[SIGV4_HASH_HEX];
    sigv4_amz_date(time(NULL), amz_date);
    sigv4_sha256_hex(payload, len, hash);
    const char *token = awsconf_session_token(c->conf);
    sigv4_kv h[6];
    size_t nh = 0;
    h[nh++] = (sigv4_kv){"host", c->host};
    h[nh++] = (sigv4_kv){"x-amz-date", amz_date};
    if (invoke) {
        h[nh++] = (sigv4_kv){"x-amz-invocation-type", "RequestResponse"};
        h[nh++] = (sigv4_kv){"x-amz-log-type", "Tail"};
        h[nh++] = (sigv4_kv){"content-type", "application/json"};
    }
    if (token) h[nh++] = (sigv4_kv){"x-amz-security-token", token};
    sigv4_request req = {method, path, NULL, 0, h, nh, hash, 1};
    sigv4_credentials cred = {awsconf_access_key(c->conf), awsconf_secret_key(c->conf), token};
    char *auth = sigv4_authorization(&req, &cred, amz_date, c->region, "lambda", e);
    if (!auth) return NULL;
    struct curl_slist *out = NULL;
    char line[8192];
    for (size_t i = 0; i < nh; i++) {
        snprintf(line, sizeof line, "%s: %s", h[i].name, h[i].value);
        out = curl_slist_append(out, line);
    }
    snprintf(line, sizeof line, "Authorization: %s", auth);
    out = curl_slist_append(out, line);
    out = curl_slist_append(out, "Expect:");
    out = curl_slist_append(out, "Accept:");
    free(auth);
    if (!out) mr_fail(e, MR_ENOMEM, "out of memory");
    return out;
}

/* "<endpoint><encoded path>" for /2015-03-31/functions/<function><suffix>. */
static char *invoke_url(lambda_client *c, const char *function, const char *suffix, char **path)
{
    size_t n = strlen(function) + strlen(suffix) + 32;
    *path = malloc(n);
    if (!*path) return NULL;
    snprintf(*path, n, "/2015-03-31/functions/%s%s", function, suffix);
    char *enc = sigv4_canonical_uri(*path, 0);
    if (!enc) return NULL;
    size_t un = strlen(c->endpoint) + strlen(enc) + 1;
    char *url = malloc(un);
    if (url) snprintf(url, un, "%s%s", c->endpoint, enc);
    free(enc);
    return url;
}

static CURL *invoke_easy(lambda_client *c, const char *method, const char *function,
                         const char *suffix, const char *payload, long timeout_s,
                         lambda_response *resp, mr_err *e)
{
    lambda_response_reset(resp);
    MR_CHECK_NULL(function && *function && !strchr(function, '/'), e, MR_EINVAL,
                  "Lambda function name '%s' is empty or has a '/'", function ? function : "");
    resp->payload = strdup(payload ? payload : "");
    char *path = NULL;
    char *url = resp->payload ? invoke_url(c, function, suffix, &path) : NULL;
    if (!url) {
        free(path);
        mr_fail(e, MR_ENOMEM, "out of memory");
        return NULL;
    }
    size_t len = strlen(resp->payload);
    resp->headers = invoke_sign(c, method, path, resp->payload, len, payload != NULL, e);
    free(path);
    CURL *h = resp->headers ? curl_easy_init() : NULL;
    if (!h) {
        free(url);
        if (resp->headers) mr_fail(e, MR_ENOMEM, "curl_easy_init failed");
        return NULL;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);   /* curl copies the URL */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, resp->headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s > 0 ? timeout_s : 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, invoke_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, invoke_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_PRIVATE, resp);
    if (payload) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, resp->payload);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    return h;
}

CURL *lambda_client_invoke_handle(lambda_client *c, const char *function, const char *payload,
                                  long timeout_s, lambda_response *resp, mr_err *e)
{
    return invoke_easy(c, "POST", function, "/invocations", payload ? payload : "", timeout_s,
                       resp, e);
}

/* The "message" of a service error body ({"Type": ..., "message": ...}). */
static void invoke_service_message(const lambda_response *r, char *dst, size_t n)
{
    dst[0] = '\0';
    cJSON *o = r->body ? cJSON_Parse(r->body) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(o, "Message");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(o, "errorMessage");
    if (cJSON_IsString(m)) snprintf(dst, n, "%s", m->valuestring);
    else if (r->body) snprintf(dst, n, "%.300s", r->body);
    cJSON_Delete(o);
}

lambda_outcome lambda_classify(const lambda_response *r, CURLcode cc, const char *function,
                               char *why, size_t why_size)
{
    char msg[1024];
    if (cc != CURLE_OK) {
        snprintf(why, why_size, "invoking %s: %s", function, curl_easy_strerror(cc));
        return LAMBDA_RETRYABLE;
    }
    if (r->status == 200 && r->function_error[0]) {
        invoke_service_message(r, msg, sizeof msg);
        snprintf(why, why_size, "%s: function error (%s): %s", function, r->function_error, msg);
        return LAMBDA_FUNCTION_ERROR;
    }
    if (r->status >= 200 && r->status < 300) {
        if (r->truncated) {
            snprintf(why, why_size, "%s: response larger than %u bytes", function, LAMBDA_MAX_RESPONSE);
            return LAMBDA_FATAL;
        }
        why[0] = '\0';
        return LAMBDA_OK;
    }
    invoke_service_message(r, msg, sizeof msg);
    const char *type = r->error_type[0] ? r->error_type : "";
    snprintf(why, why_size, "%s: HTTP %ld %.*s%s%s (request id %s)", function, r->status,
             (int)strcspn(type, ":"), type, *type ? ": " : "", msg,
             r->request_id[0] ? r->request_id : "none");
    if (r->status == 429) return LAMBDA_THROTTLED;
    /* Lambda answers 502/500 for its own transient trouble and for EC2/ENI throttling. */
    if (r->status >= 500) return strstr(type, "Throttl") ? LAMBDA_THROTTLED : LAMBDA_RETRYABLE;
    return LAMBDA_FATAL;
}

lambda_outcome lambda_client_invoke(lambda_client *c, const char *function, const char *payload,
                                    long timeout_s, lambda_response *resp, char *why,
                                    size_t why_size)
{
    mr_err e = {0};
    CURL *h = lambda_client_invoke_handle(c, function, payload, timeout_s, resp, &e);
    if (!h) {
        snprintf(why, why_size, "%s", e.msg);
        return LAMBDA_FATAL;
    }
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_cleanup(h);
    return lambda_classify(resp, cc, function, why, why_size);
}

mr_code lambda_client_get_function(lambda_client *c, const char *function, int *memory_mb,
                                   int *timeout_s, mr_err *e)
{
    lambda_response r = {0};
    CURL *h = invoke_easy(c, "GET", function, "/configuration", NULL, 30, &r, e);
    if (!h) {
        lambda_response_clear(&r);
        return e->code;
    }
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(h);
    char why[1200];
    lambda_outcome out = lambda_classify(&r, cc, function, why, sizeof why);
    mr_code code = MR_OK;
    if (out != LAMBDA_OK) {
        code = mr_fail(e, r.status == 403 ? MR_EAUTH : r.status == 404 ? MR_ENOTFOUND : MR_ENET,
                       "GetFunctionConfiguration %s", why);
    } else {
        cJSON *o = cJSON_Parse(r.body ? r.body : "");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "MemorySize");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "Timeout");
        if (!cJSON_IsNumber(m)) code = mr_fail(e, MR_EFORMAT, "GetFunctionConfiguration %s: no MemorySize in %.200s",
                                               function, r.body ? r.body : "");
        if (code == MR_OK && memory_mb) *memory_mb = m->valueint;
        if (code == MR_OK && timeout_s) *timeout_s = cJSON_IsNumber(t) ? t->valueint : 0;
        cJSON_Delete(o);
    }
    lambda_response_clear(&r);
    return code;
}

int lambda_parse_report(const char *b64, double *billed_ms, int *memory_mb)
{
    size_t n = b64 ? strlen(b64) : 0;
    if (n == 0 || n % 4) return 0;
    unsigned char *text = malloc(n / 4 * 3 + 1);
    if (!text) return 0;
    int len = EVP_DecodeBlock(text, (const unsigned char *)b64, (int)n);
    if (len < 0) {
        free(text);
        return 0;
    }
    text[len] = '\0';
    const char *report = strstr((char *)text, "REPORT RequestId:");
    const char *b = report ? strstr(report, "Billed Duration:") : NULL;
    const char *m = report ? strstr(report, "Memory Size:") : NULL;
    if (b && billed_ms) *billed_ms = strtod(b + strlen("Billed Duration:"), NULL);
    if (m && memory_mb) *memory_mb = atoi(m + strlen("Memory Size:"));
    free(text);
    return b && m;
}

double lambda_backoff(int retry, double base, double cap, unsigned *seed)
{
    double limit = base;
    for (int i = 0; i < retry && limit < cap; i++) limit *= 2;
    if (limit > cap) limit = cap;
    return limit * ((double)rand_r(seed) / ((double)RAND_MAX + 1.0));
}
