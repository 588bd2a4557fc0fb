#define _XOPEN_SOURCE 700
#include "bootstrap.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../connectors/s3.h"
#include "../engine/runner.h"
#include "../engine/task.h"
#include "event.h"
#include "log.h"
#include "runtime.h"

#define BOOT_RESULT_MAX (64u << 10)   /* a task result is a few kB (counters, error) */

typedef struct boot {
    double started;            /* lambda_bootstrap_main entry, monotonic */
    const char *function;
    const char *scratch_root;
    int served;
} boot;

static double boot_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double boot_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int lambda_bootstrap_wanted(const char *argv0, int argc)
{
    const char *base = argv0 ? strrchr(argv0, '/') : NULL;
    base = base ? base + 1 : argv0;
    if (base && strcmp(base, "bootstrap") == 0) return 1;
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    return api && *api && argc < 2;
}

/* "luamr.script_error" from "script error": Lambda's error types are identifiers. */
static void boot_error_type(mr_code code, char *dst, size_t n)
{
    snprintf(dst, n, "luamr.%s", mr_code_name(code));
    for (char *p = dst; *p; p++)
        if (*p == ' ' || *p == '/') *p = '_';
}

static int boot_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void boot_rm_tree(const char *dir)
{
    nftw(dir, boot_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The child: runs the task and writes its result JSON to fd. Never returns. */
static void boot_child(const lambda_event *ev, const char *scratch, int fd)
{
    signal(SIGPIPE, SIG_IGN);
    setenv("TMPDIR", scratch, 1);
    runner_opts o = {0};
    o.config_uri = ev->config;
    o.run_id = ev->run_id;
    o.from_run = ev->from_run[0] ? ev->from_run : NULL;
    o.quiet = 1;
    task_result res;
    memset(&res, 0, sizeof res);
    strcpy(res.counters, "{}");
    mr_err e = {0};
    if (runner_run_task(&o, ev->kind, ev->index, &res, &e) != MR_OK && !res.failed) {
        res.failed = 1;   /* the task never started: config, script or plan */
        res.code = e.code ? e.code : MR_EIO;
        snprintf(res.error, sizeof res.error, "%s task %d: %.1990s", lambda_event_kind_name(ev->kind),
                 ev->index, e.msg);
    }
    char *json = task_result_to_json(&res);
    size_t len = json ? strlen(json) : 0, off = 0;
    while (off < len) {
        ssize_t k = write(fd, json + off, len - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        off += (size_t)k;
    }
    fflush(NULL);
    _exit(json && off == len ? 0 : 3);
}

static double boot_margin(void)
{
    const char *v = getenv("LUAMR_LAMBDA_DEADLINE_MARGIN_MS");
    double ms = v && *v ? atof(v) : 1000;
    return (ms < 0 ? 0 : ms) / 1000.0;
}

/* Reads the child's answer until EOF or the stop time; returns 1 when it timed out. */
static int boot_collect(int fd, double stop_wall, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    for (;;) {
        int wait_ms = -1;
        if (stop_wall > 0) {
            double left = stop_wall - boot_wall();
            if (left <= 0) return 1;
            wait_ms = (int)(left * 1000) + 1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int k = poll(&p, 1, wait_ms);
        if (k < 0 && errno == EINTR) continue;
        if (k == 0) continue;   /* the loop top decides whether time is up */
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        *len += (size_t)n;
        if (*len == cap - 1) break;
    }
    buf[*len] = '\0';
    return 0;
}

static void boot_fail(task_result *r, mr_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void boot_fail(task_result *r, mr_code code, const char *fmt, ...)
{
    memset(r, 0, sizeof *r);
    strcpy(r->counters, "{}");
    r->failed = 1;
    r->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

/* Runs the task in a child process; fills r and returns the result JSON (malloc'd). */
static char *boot_run(boot *b, const lambda_event *ev, const lambda_invocation *inv,
                      const char *what, task_result *r)
{
    char scratch[512];
    snprintf(scratch, sizeof scratch, "%s/luamr-task-XXXXXX", b->scratch_root);
    int fds[2] = {-1, -1};
    pid_t pid = -1;
    if (!mkdtemp(scratch)) {
        boot_fail(r, MR_EIO, "%s: cannot create a scratch folder under %s: %s", what, b->scratch_root,
                  strerror(errno));
        return task_result_to_json(r);
    }
    if (pipe(fds) == 0) pid = fork();
    if (pid == 0) {
        close(fds[0]);
        boot_child(ev, scratch, fds[1]);
    }
    if (fds[1] >= 0) close(fds[1]);
    if (pid < 0) {
        if (fds[0] >= 0) close(fds[0]);
        boot_rm_tree(scratch);
        boot_fail(r, MR_ENOMEM, "%s: cannot start the task process: %s", what, strerror(errno));
        return task_result_to_json(r);
    }
    double start = boot_wall();
    double stop = inv->deadline > 0 ? inv->deadline - boot_margin() : 0;
    char *buf = malloc(BOOT_RESULT_MAX);
    size_t len = 0;
    int timed_out = buf ? boot_collect(fds[0], stop, buf, BOOT_RESULT_MAX, &len) : 0;
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    boot_rm_tree(scratch);
    mr_err pe = {0};
    if (timed_out) {
        boot_fail(r, MR_ETIMEOUT,
                  "%s: timeout: the task did not finish within the Lambda invocation's time "
                  "(stopped after %.1f s, %.1f s before the function's deadline); raise the "
                  "function's timeout or split the input (readConnector.splitSize)",
                  what, boot_wall() - start, boot_margin());
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        boot_fail(r, MR_EIO, "%s: the task process was killed by signal %d (%s)%s", what, sig,
                  strsignal(sig), sig == SIGKILL ? ": out of memory? raise the function's memory" : "");
    } else if (!buf || len == 0 || task_result_from_json(buf, r, &pe) != MR_OK) {
        boot_fail(r, MR_EIO, "%s: the task process exited (status %d) without a result", what,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    } else {
        return buf;   /* as the task wrote it */
    }
    free(buf);
    return task_result_to_json(r);
}

static int boot_handle(void *ud, const lambda_invocation *inv, char **body, char *error_type,
                       size_t error_type_size)
{
    boot *b = ud;
    double t0 = boot_mono();
    lambda_log_ctx ctx = {inv->request_id, NULL, NULL, b->function};
    if (inv->trace_id[0]) setenv("_X_AMZN_TRACE_ID", inv->trace_id, 1);
    if (b->served++ == 0)
        lambda_log(stdout, &ctx, "info", "first invocation %.1f ms after start-up",
                   (t0 - b->started) * 1000);
    lambda_event ev;
    mr_err e = {0};
    if (lambda_event_parse(inv->event, &ev, &e) != MR_OK) {
        lambda_log(stdout, &ctx, "error", "%s", e.msg);
        boot_error_type(e.code, error_type, error_type_size);
        *body = lambda_runtime_error_json(error_type, e.msg);
        return 1;
    }
    char what[64];
    lambda_event_describe(&ev, what, sizeof what);
    ctx.run_id = ev.run_id;
    ctx.task = what;
    lambda_log(stdout, &ctx, "info", "start %s of run %s (config %s, %.1f s left)", what, ev.run_id,
               ev.config, inv->deadline > 0 ? inv->deadline - boot_wall() : -1.0);
    task_result r;
    *body = boot_run(b, &ev, inv, what, &r);
    double ms = (boot_mono() - t0) * 1000;
    lambda_task_metrics m = {lambda_event_kind_name(ev.kind), r.records_in, r.records_out,
                             r.bytes_in, r.bad_records, ms, r.failed};
    lambda_log_metrics(stdout, &ctx, &m);
    if (r.failed) {
        boot_error_type(r.code, error_type, error_type_size);
        lambda_log(stdout, &ctx, "error", "%s failed after %.0f ms: %s", what, ms, r.error);
        return 1;
    }
    lambda_log(stdout, &ctx, "info", "%s done in %.0f ms: %llu records in, %llu out, %llu bad",
               what, ms, (unsigned long long)r.records_in, (unsigned long long)r.records_out,
               (unsigned long long)r.bad_records);
    return 0;
}

/* Lambda's /tmp, or TMPDIR when set (tests); it must be writable before we take work. */
static const char *boot_scratch_root(mr_err *e)
{
    const char *t = getenv("TMPDIR");
    const char *root = t && *t ? t : "/tmp";
    char probe[512];
    snprintf(probe, sizeof probe, "%s/luamr-probe-XXXXXX", root);
    MR_CHECK_NULL(mkdtemp(probe), e, MR_EIO, "scratch folder %s is not writable: %s", root,
                  strerror(errno));
    rmdir(probe);
    return root;
}

int lambda_bootstrap_main(void)
{
    boot b = {0};
    b.started = boot_mono();
    s3_register();   /* a function reads everything from S3; idempotent after main's call */
    b.function = getenv("AWS_LAMBDA_FUNCTION_NAME");
    setvbuf(stdout, NULL, _IOLBF, 0);
    lambda_log_ctx ctx = {NULL, NULL, NULL, b.function};
    mr_err e = {0};
    lambda_runtime *rt = lambda_runtime_create(getenv("AWS_LAMBDA_RUNTIME_API"), &e);
    if (!rt) {
        lambda_log(stdout, &ctx, "fatal", "%s", e.msg);
        return 1;
    }
    b.scratch_root = boot_scratch_root(&e);
    if (!b.scratch_root) {
        char type[64];
        boot_error_type(e.code, type, sizeof type);
        lambda_log(stdout, &ctx, "fatal", "init: %s", e.msg);
        mr_err pe = {0};
        lambda_runtime_init_error(rt, type, e.msg, &pe);
        lambda_runtime_free(rt);
        return 1;
    }
    mr_code code = lambda_runtime_loop(rt, boot_handle, &b, 0, &e);
    if (code != MR_OK) lambda_log(stdout, &ctx, "fatal", "%s", e.msg);
    lambda_runtime_free(rt);
    return code == MR_OK ? 0 : 1;
}
