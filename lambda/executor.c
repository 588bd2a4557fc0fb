#include "executor.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "invoke.h"

/* Throttles and service errors do not use up a task's attempts (the function never ran),
 * but they are bounded so a job against a function that can never run ends. */
#define EXEC_MAX_THROTTLES 40
#define EXEC_MAX_SERVICE_ERRORS 8
#define EXEC_DEFAULT_HTTP_TIMEOUT 960   /* Lambda's 900 s maximum plus slack */
/* Price of x86_64 Lambda in us-east-1 (per GB-second and per request), for the summary's
 * estimate only. */
#define EXEC_PRICE_GB_S 0.0000166667
#define EXEC_PRICE_REQUEST 0.0000002

typedef struct exec_slot {
    CURL *h;
    int task;
    double started;
    lambda_response resp;
} exec_slot;

typedef struct exec_task {
    int attempts, throttles, service_errors;
    double not_before;   /* monotonic time a retry may start */
    int waiting;         /* in the retry list */
} exec_task;

typedef struct exec_state {
    const lambda_job *job;
    lambda_client *client;
    CURLM *multi;
    exec_slot *slots;
    int nslots, inflight, limit;
    exec_task *tasks;
    int next_fresh, finished;
    int *retry;            /* tasks waiting for a retry */
    int nretry;
    int failed_task;
    task_result failure;
    long http_timeout;
    double last_throttle;
    unsigned seed;
    lambda_stats st;
} exec_state;

static double exec_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds; LUAMR_LAMBDA_BACKOFF_MS (default 500) is the first throttle delay, the other
 * delays scale with it (tests make it small). */
static double exec_backoff_base(void)
{
    const char *v = getenv("LUAMR_LAMBDA_BACKOFF_MS");
    double ms = v && *v ? atof(v) : 500;
    return (ms > 0 ? ms : 500) / 1000.0;
}

static int exec_env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v && atoi(v) > 0 ? atoi(v) : def;
}

/* "map task 3" from the event, for messages about an invocation that never reached
 * the task. */
static void exec_describe(const exec_state *s, int task, char *dst, size_t n)
{
    char *ev = s->job->event(s->job->ud, task);
    cJSON *o = ev ? cJSON_Parse(ev) : NULL;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(o, "index");
    if (cJSON_IsString(k) && cJSON_IsNumber(i)) snprintf(dst, n, "%s task %d", k->valuestring, i->valueint);
    else snprintf(dst, n, "task %d", task);
    cJSON_Delete(o);
    free(ev);
}

static void exec_fail_result(task_result *r, mr_code code, const char *msg)
{
    memset(r, 0, sizeof *r);
    r->failed = 1;
    r->code = code;
    strcpy(r->counters, "{}");
    snprintf(r->error, sizeof r->error, "%s", msg);
}

static mr_code exec_start(exec_state *s, exec_slot *slot, int task, mr_err *e)
{
    char *event = s->job->event(s->job->ud, task);
    MR_CHECK(event, e, MR_ENOMEM, "out of memory building the event of task %d", task);
    CURL *h = lambda_client_invoke_handle(s->client, s->job->function, event, s->http_timeout,
                                          &slot->resp, e);
    free(event);
    if (!h) return e->code;
    CURLMcode mc = curl_multi_add_handle(s->multi, h);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(h);
        return mr_fail(e, MR_ENET, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    }
    slot->h = h;
    slot->task = task;
    slot->started = exec_now();
    s->inflight++;
    s->st.invocations++;
    return MR_OK;
}

/* The next task to start: a retry whose time has come, else a fresh one; -1 for none. */
static int exec_pick(exec_state *s, double now, double *next_due)
{
    for (int i = 0; i < s->nretry; i++) {
        int t = s->retry[i];
        if (s->tasks[t].not_before <= now) {
            s->retry[i] = s->retry[--s->nretry];
            s->tasks[t].waiting = 0;
            return t;
        }
        if (s->tasks[t].not_before < *next_due) *next_due = s->tasks[t].not_before;
    }
    if (s->next_fresh < s->job->ntasks) return s->next_fresh++;
    return -1;
}

static void exec_schedule_retry(exec_state *s, int task, double delay)
{
    s->tasks[task].not_before = exec_now() + delay;
    s->tasks[task].waiting = 1;
    s->retry[s->nretry++] = task;
}

static void exec_final_failure(exec_state *s, int task, const task_result *r)
{
    s->finished++;
    if (s->failed_task < 0) {
        s->failed_task = task;
        s->failure = *r;
    }
}

/* A function error's body: our bootstrap sends a task result (with "errorCode"); Lambda
 * itself sends {"errorMessage", "errorType"} for timeouts and crashed runtimes. */
static void exec_function_error(exec_state *s, exec_slot *slot, task_result *r)
{
    const lambda_response *resp = &slot->resp;
    mr_err pe = {0};
    cJSON *o = resp->body ? cJSON_Parse(resp->body) : NULL;
    if (cJSON_GetObjectItemCaseSensitive(o, "errorCode") &&
        task_result_from_json(resp->body, r, &pe) == MR_OK && r->failed) {
        cJSON_Delete(o);
        return;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "errorType");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "errorMessage");
    const char *ts = cJSON_IsString(type) ? type->valuestring : resp->function_error;
    const char *ms = cJSON_IsString(msg) ? msg->valuestring : (resp->body ? resp->body : "");
    int timed_out = strstr(ts, "Timedout") || strstr(ts, "Timeout") || strstr(ms, "timed out");
    char what[64], text[MR_ERR_MSG_MAX];
    exec_describe(s, slot->task, what, sizeof what);
    snprintf(text, sizeof text, "%s: Lambda %s: %s: %.1500s", what,
             timed_out ? "timed out" : "function error", ts, ms);
    exec_fail_result(r, timed_out ? MR_ETIMEOUT : MR_EIO, text);
    cJSON_Delete(o);
}

static void exec_account(exec_state *s, exec_slot *slot, double seconds)
{
    double billed_ms = 0;
    int mem = 0;
    if (!lambda_parse_report(slot->resp.log_result, &billed_ms, &mem)) billed_ms = ceil(seconds * 1000);
    if (mem > 0) s->st.memory_mb = mem;
    s->st.billed_seconds += billed_ms / 1000;
    s->st.gb_seconds += billed_ms / 1000 * (s->st.memory_mb > 0 ? s->st.memory_mb : 128) / 1024.0;
}

static void exec_finish(exec_state *s, exec_slot *slot, CURLcode cc)
{
    const lambda_job *job = s->job;
    int task = slot->task;
    exec_task *t = &s->tasks[task];
    double seconds = exec_now() - slot->started;
    curl_easy_getinfo(slot->h, CURLINFO_RESPONSE_CODE, &slot->resp.status);
    char why[MR_ERR_MSG_MAX];
    lambda_outcome out = lambda_classify(&slot->resp, cc, job->function, why, sizeof why);
    task_result r;
    mr_err pe = {0};
    if (out == LAMBDA_THROTTLED && ++t->throttles <= exec_env_int("LUAMR_LAMBDA_MAX_THROTTLES", EXEC_MAX_THROTTLES)) {
        s->st.throttles++;
        double now = exec_now();
        /* Back off as a group too: fewer invocations in flight until they stop failing. */
        if (now - s->last_throttle > 1.0 && s->limit > 1) s->limit = (s->limit + 1) / 2;
        s->last_throttle = now;
        double b = exec_backoff_base();
        exec_schedule_retry(s, task, b * 0.4 + lambda_backoff(t->throttles, b, 40 * b, &s->seed));
        return;
    }
    if (out == LAMBDA_RETRYABLE &&
        ++t->service_errors <= exec_env_int("LUAMR_LAMBDA_MAX_SERVICE_ERRORS", EXEC_MAX_SERVICE_ERRORS)) {
        s->st.service_errors++;
        double b = exec_backoff_base();
        exec_schedule_retry(s, task, lambda_backoff(t->service_errors, b, 40 * b, &s->seed));
        return;
    }
    if (out == LAMBDA_OK) {
        exec_account(s, slot, seconds);
        if (task_result_from_json(slot->resp.body ? slot->resp.body : "", &r, &pe) != MR_OK) {
            char what[64];
            exec_describe(s, task, what, sizeof what);
            char text[MR_ERR_MSG_MAX];
            snprintf(text, sizeof text, "%s: %s answered something that is not a luamr task result "
                     "(is it a luamr function?): %.300s", what, job->function, pe.msg);
            exec_fail_result(&r, MR_EFORMAT, text);
        }
    } else if (out == LAMBDA_FUNCTION_ERROR) {
        exec_account(s, slot, seconds);
        exec_function_error(s, slot, &r);
    } else {
        char what[64], text[MR_ERR_MSG_MAX];
        exec_describe(s, task, what, sizeof what);
        snprintf(text, sizeof text, "%s: %.1800s%s", what, why,
                 out == LAMBDA_THROTTLED ? " (still throttled after every retry: raise the "
                                           "function's reserved concurrency or lower compute.concurrency)"
                                         : "");
        exec_fail_result(&r, slot->resp.status == 403 ? MR_EAUTH : MR_ENET, text);
        t->attempts = job->max_attempts;   /* not worth another attempt */
    }
    int attempt = ++t->attempts > job->max_attempts ? job->max_attempts : t->attempts;
    if (!r.failed) {
        if (s->limit < job->concurrency) s->limit++;
        if (seconds > s->st.task_seconds_max) s->st.task_seconds_max = seconds;
        s->st.task_seconds_sum += seconds;
        s->finished++;
        if (job->done) job->done(job->ud, task, attempt, &r, 1);
        return;
    }
    int retry = t->attempts < job->max_attempts && s->failed_task < 0;
    if (job->done) job->done(job->ud, task, attempt, &r, !retry);
    if (retry) {
        s->st.retries++;
        double b = exec_backoff_base();
        exec_schedule_retry(s, task, lambda_backoff(t->attempts, b / 2, 10 * b, &s->seed));
    } else {
        exec_final_failure(s, task, &r);
    }
}

static void exec_release(exec_state *s, exec_slot *slot)
{
    curl_multi_remove_handle(s->multi, slot->h);
    curl_easy_cleanup(slot->h);
    slot->h = NULL;
    slot->task = -1;
    lambda_response_reset(&slot->resp);
    s->inflight--;
}

static exec_slot *exec_slot_of(exec_state *s, CURL *h)
{
    for (int i = 0; i < s->nslots; i++)
        if (s->slots[i].h == h) return &s->slots[i];
    return NULL;
}

static mr_code exec_loop(exec_state *s, mr_err *e)
{
    const lambda_job *job = s->job;
    while (s->finished < job->ntasks) {
        double now = exec_now(), next_due = now + 0.25;
        for (int i = 0; i < s->nslots && s->inflight < s->limit && s->failed_task < 0; i++) {
            if (s->slots[i].h) continue;
            int task = exec_pick(s, now, &next_due);
            if (task < 0) break;
            MR_TRY(exec_start(s, &s->slots[i], task, e));
        }
        if (s->inflight == 0 && (s->failed_task >= 0 || s->nretry == 0)) break;
        int running = 0;
        CURLMcode mc = curl_multi_perform(s->multi, &running);
        MR_CHECK(mc == CURLM_OK, e, MR_ENET, "curl_multi_perform: %s", curl_multi_strerror(mc));
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(s->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            exec_slot *slot = exec_slot_of(s, m->easy_handle);
            if (!slot) continue;
            CURLcode cc = m->data.result;
            exec_finish(s, slot, cc);
            exec_release(s, slot);
        }
        if (job->tick) job->tick(job->ud);
        int wait_ms = (int)((next_due - exec_now()) * 1000);
        if (wait_ms < 1) wait_ms = 1;
        if (wait_ms > 250) wait_ms = 250;
        if (s->inflight > 0) curl_multi_poll(s->multi, NULL, 0, wait_ms, NULL);
        else usleep((useconds_t)wait_ms * 1000);
    }
    return MR_OK;
}

/* Asks the function's memory (for GB-seconds) and timeout (to bound each request). A
 * function that does not exist stops the job here rather than in every task. */
static mr_code exec_prepare(exec_state *s, mr_err *e)
{
    int mem = 0, timeout = 0;
    mr_err ge = {0};
    mr_code code = lambda_client_get_function(s->client, s->job->function, &mem, &timeout, &ge);
    if (code == MR_ENOTFOUND)
        return mr_fail(e, code, "%s (region %s, endpoint %s)", ge.msg,
                       lambda_client_region(s->client), lambda_client_endpoint(s->client));
    /* Without lambda:GetFunctionConfiguration the REPORT lines still tell the memory. */
    s->st.memory_mb = exec_env_int("LUAMR_LAMBDA_MEMORY_MB", mem);
    s->http_timeout = timeout > 0 ? timeout + 60 : EXEC_DEFAULT_HTTP_TIMEOUT;
    return MR_OK;
}

static void exec_summary(const exec_state *s)
{
    const lambda_stats *st = &s->st;
    int ok = s->job->ntasks - (s->failed_task >= 0);
    fprintf(stderr,
            "lambda: %d invocations of %s for %d tasks (%d retried, %d throttled, %d service errors); "
            "task time avg %.2f s, max %.2f s; billed %.1f s = %.3f GB-s at %d MB (~$%.6f)\n",
            st->invocations, s->job->function, s->job->ntasks, st->retries, st->throttles,
            st->service_errors, ok > 0 ? st->task_seconds_sum / ok : 0.0, st->task_seconds_max,
            st->billed_seconds, st->gb_seconds, st->memory_mb,
            st->gb_seconds * EXEC_PRICE_GB_S + st->invocations * EXEC_PRICE_REQUEST);
}

mr_code lambda_executor_run(const lambda_job *job, mr_err *e)
{
    MR_CHECK(job && job->ntasks >= 0 && job->event && job->function, e, MR_EINVAL,
             "lambda_executor_run: incomplete job");
    if (job->ntasks == 0) return MR_OK;
    exec_state s = {0};
    s.job = job;
    s.failed_task = -1;
    s.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    s.nslots = job->concurrency > 0 ? job->concurrency : 1;
    if (s.nslots > job->ntasks) s.nslots = job->ntasks;
    s.limit = s.nslots;
    s.slots = calloc((size_t)s.nslots, sizeof *s.slots);
    s.tasks = calloc((size_t)job->ntasks, sizeof *s.tasks);
    s.retry = calloc((size_t)job->ntasks, sizeof *s.retry);
    mr_code code = s.slots && s.tasks && s.retry ? MR_OK : mr_fail(e, MR_ENOMEM, "out of memory");
    if (code == MR_OK) {
        s.client = lambda_client_create(job->region, e);
        if (!s.client) code = e->code;
    }
    if (code == MR_OK) code = exec_prepare(&s, e);
    if (code == MR_OK) {
        s.multi = curl_multi_init();
        if (!s.multi) code = mr_fail(e, MR_ENOMEM, "curl_multi_init failed");
    }
    if (code == MR_OK) {
        curl_multi_setopt(s.multi, CURLMOPT_MAXCONNECTS, (long)s.nslots);
        code = exec_loop(&s, e);
    }
    for (int i = 0; s.slots && i < s.nslots; i++) {
        if (s.slots[i].h) exec_release(&s, &s.slots[i]);   /* the job failed: stop waiting */
        lambda_response_clear(&s.slots[i].resp);
    }
    if (code == MR_OK && s.failed_task >= 0)
        code = mr_fail(e, s.failure.code ? s.failure.code : MR_EIO, "%s", s.failure.error);
    if (s.multi && !job->quiet) exec_summary(&s);
    if (job->stats) *job->stats = s.st;
    if (s.multi) curl_multi_cleanup(s.multi);
    lambda_client_free(s.client);
    free(s.slots);
    free(s.tasks);
    free(s.retry);
    return code;
}
