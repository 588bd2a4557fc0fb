#include "pool.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct pool_worker {
    pid_t pid;
    int to_fd, from_fd;     /* task numbers out, results in */
    int task;               /* running task, -1 when idle */
    int attempt;
    double started;         /* when the running task was handed out (monotonic seconds) */
    int overdue;            /* killed by the watchdog: past task_timeout and its grace */
} pool_worker;

typedef struct pool_state {
    const pool_job *job;
    pool_worker *w;
    int *attempts;          /* per task */
    int *queue, qhead, qtail;
    int running, finished;
    int failed_task;
    task_result failure;
} pool_state;

static double pool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int pool_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int pool_read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void pool_worker_main(const pool_job *job, int in_fd, int out_fd)
{
    int msg[2];
    task_result *r = malloc(sizeof *r);
    while (r && pool_read_all(in_fd, msg, sizeof msg) == 0) {
        job->run(job->ud, msg[0], msg[1], r);
        if (pool_write_all(out_fd, r, sizeof *r) != 0) break;
    }
    free(r);
    _exit(0);
}

static int pool_spawn(pool_state *ps, pool_worker *w, mr_err *e)
{
    int down[2], up[2];
    if (pipe(down) != 0) return mr_fail(e, MR_EIO, "pipe: %s", strerror(errno));
    if (pipe(up) != 0) {
        close(down[0]);
        close(down[1]);
        return mr_fail(e, MR_EIO, "pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return mr_fail(e, MR_EIO, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        for (int i = 0; i < ps->job->workers; i++) {   /* siblings' pipes are not ours */
            if (&ps->w[i] == w || ps->w[i].pid <= 0) continue;
            close(ps->w[i].to_fd);
            close(ps->w[i].from_fd);
        }
        signal(SIGPIPE, SIG_DFL);
        pool_worker_main(ps->job, down[0], up[1]);
    }
    close(down[0]);
    close(up[1]);
    w->pid = pid;
    w->to_fd = down[1];
    w->from_fd = up[0];
    w->task = -1;
    w->overdue = 0;
    return MR_OK;
}

static void pool_reap(const pool_job *job, pool_worker *w, char *why, size_t n)
{
    int status = 0;
    char name[512];
    size_t k;
    if (job->describe) job->describe(job->ud, w->task, name, sizeof name);
    else snprintf(name, sizeof name, "task %d", w->task);
    k = (size_t)snprintf(why, n, "%s: ", name);
    if (k < n) {
        why += k;
        n -= k;
    }
    close(w->to_fd);
    close(w->from_fd);
    if (waitpid(w->pid, &status, 0) > 0 && w->overdue) {
        snprintf(why, n, "the task exceeded its time limit (taskTimeoutSeconds %g) and was still "
                 "running %.1f s later, inside a C function where the script's own time check "
                 "cannot stop it (a long pattern match, sort or join); worker process %d was "
                 "killed", job->task_timeout, pool_now() - w->started - job->task_timeout,
                 (int)w->pid);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(why, n, "worker process %d was killed by signal %d (%s)%s", (int)w->pid, sig,
                 strsignal(sig), sig == SIGKILL ? "; out of memory, or killed from outside" : "");
    } else {
        snprintf(why, n, "worker process %d exited (status %d) in the middle of the task",
                 (int)w->pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    w->pid = 0;
}

/* Records an attempt's outcome; requeues a failed task while attempts remain. */
static void pool_finish(pool_state *ps, int task, int attempt, const task_result *r)
{
    int retry = r->failed && attempt < ps->job->max_attempts && ps->failed_task < 0;
    if (ps->job->done) ps->job->done(ps->job->ud, task, attempt, r, !retry);
    if (retry) {
        ps->queue[ps->qtail++] = task;
        return;
    }
    ps->finished++;
    if (r->failed && ps->failed_task < 0) {
        ps->failed_task = task;
        ps->failure = *r;
    }
}

static mr_code pool_dispatch(pool_state *ps, pool_worker *w, mr_err *e)
{
    int task = ps->queue[ps->qhead++];
    int msg[2] = {task, ++ps->attempts[task]};
    if (w->pid <= 0) MR_TRY(pool_spawn(ps, w, e));
    w->task = task;
    w->attempt = msg[1];
    w->started = pool_now();
    ps->running++;
    if (pool_write_all(w->to_fd, msg, sizeof msg) != 0) {
        /* The worker is gone already; the read side reports it. */
    }
    return MR_OK;
}

static void pool_collect(pool_state *ps, pool_worker *w)
{
    task_result *r = malloc(sizeof *r);
    int task = w->task, attempt = w->attempt;
    if (!r) return;
    if (pool_read_all(w->from_fd, r, sizeof *r) != 0) {
        memset(r, 0, sizeof *r);
        strcpy(r->counters, "{}");
        r->failed = 1;
        r->code = w->overdue ? MR_ETIMEOUT : MR_EIO;
        pool_reap(ps->job, w, r->error, sizeof r->error);
    } else if (w->overdue) {   /* it answered just as the watchdog killed it */
        char ignored[256];
        pool_reap(ps->job, w, ignored, sizeof ignored);
    }
    w->task = -1;
    ps->running--;
    pool_finish(ps, task, attempt, r);
    free(r);
}

/* Kills the workers whose task overran its limit by more than the grace period; the
 * next poll sees their pipe close and pool_collect reports the timeout. */
static void pool_watchdog(pool_state *ps)
{
    const pool_job *job = ps->job;
    if (job->task_timeout <= 0) return;
    double limit = job->task_timeout + POOL_TIMEOUT_GRACE + job->task_timeout / 10, now = pool_now();
    for (int i = 0; i < job->workers; i++) {
        pool_worker *w = &ps->w[i];
        if (w->task < 0 || w->pid <= 0 || w->overdue || now - w->started < limit) continue;
        w->overdue = 1;
        kill(w->pid, SIGKILL);
    }
}

static mr_code pool_loop(pool_state *ps, mr_err *e)
{
    const pool_job *job = ps->job;
    struct pollfd *fds = calloc((size_t)job->workers, sizeof *fds);
    MR_CHECK(fds, e, MR_ENOMEM, "out of memory");
    while (ps->finished < job->ntasks) {
        for (int i = 0; i < job->workers && ps->failed_task < 0; i++) {
            if (ps->w[i].task >= 0 || ps->qhead == ps->qtail) continue;
            mr_code c = pool_dispatch(ps, &ps->w[i], e);
            if (c != MR_OK) { free(fds); return c; }
        }
        if (ps->running == 0) break;   /* a failure stopped the dispatching */
        int nfds = 0;
        for (int i = 0; i < job->workers; i++) {
            fds[i].fd = ps->w[i].task >= 0 ? ps->w[i].from_fd : -1;
            fds[i].events = POLLIN;
            fds[i].revents = 0;
            nfds = i + 1;
        }
        int k = poll(fds, (nfds_t)nfds, 500);
        if (k < 0 && errno != EINTR) { free(fds); return mr_fail(e, MR_EIO, "poll: %s", strerror(errno)); }
        for (int i = 0; i < nfds; i++)
            if (fds[i].revents) pool_collect(ps, &ps->w[i]);
        pool_watchdog(ps);
        if (job->tick) job->tick(job->ud);
    }
    free(fds);
    return MR_OK;
}

static void pool_shutdown(pool_state *ps)
{
    for (int i = 0; i < ps->job->workers; i++) {
        pool_worker *w = &ps->w[i];
        if (w->pid <= 0) continue;
        if (w->task >= 0) kill(w->pid, SIGKILL);   /* the job already failed */
        close(w->to_fd);                           /* idle workers exit on EOF */
        close(w->from_fd);
        waitpid(w->pid, NULL, 0);
    }
}

mr_code pool_run(const pool_job *job, mr_err *e)
{
    pool_state ps = {0};
    ps.job = job;
    ps.failed_task = -1;
    int total_slots = job->ntasks * (job->max_attempts > 0 ? job->max_attempts : 1) + 1;
    ps.w = calloc((size_t)job->workers, sizeof *ps.w);
    ps.attempts = calloc((size_t)job->ntasks + 1, sizeof *ps.attempts);
    ps.queue = calloc((size_t)total_slots, sizeof *ps.queue);
    if (!ps.w || !ps.attempts || !ps.queue) {
        free(ps.w); free(ps.attempts); free(ps.queue);
        return mr_fail(e, MR_ENOMEM, "out of memory");
    }
    for (int i = 0; i < job->workers; i++) ps.w[i].task = -1;
    for (int i = 0; i < job->ntasks; i++) ps.queue[ps.qtail++] = i;
    signal(SIGPIPE, SIG_IGN);

    mr_code code = pool_loop(&ps, e);
    pool_shutdown(&ps);
    if (code == MR_OK && ps.failed_task >= 0)
        code = mr_fail(e, ps.failure.code ? ps.failure.code : MR_EIO, "%s", ps.failure.error);
    free(ps.w);
    free(ps.attempts);
    free(ps.queue);
    return code;
}
