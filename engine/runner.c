#include "runner.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../connectors/sink.h"
#include "../connectors/storage.h"
#include "../connectors/stream.h"
#include "../connectors/writer.h"
#include "../lambda/executor.h"
#include "../lua/script.h"
#include "imf.h"
#include "plan.h"
#include "pool.h"
#include "task.h"

#define RUNNER_MAX_SOURCE (16u << 20)

/* Task numbers of the map phase map onto mapper indexes through this table so resumed
 * tasks can be left out. */
static int *runner_todo;

/* Everything one run needs; forked workers inherit it. */
typedef struct run {
    const runner_opts *o;
    config *c;
    script *s;              /* worker-local: created lazily in each worker process */
    plan p;
    char run_id[64];
    char *run_dir, *error_dir, *output;
    char **intermediates;   /* per map task */
    size_t nintermediates;
    task_kind phase;
    int ntasks, done, tty;
    double start, phase_start, map_seconds, reduce_seconds;
    uint64_t records_in, records_out, bad, bytes_in, reduce_in, reduce_out;
    int resumed, retries;
    int nreducers;          /* compute.reducers */
    int merge_parts;        /* several reducers, one JSON document (or order_by): parts merged
                               at the end */
    int ordered;            /* the job has order_by */
    uint64_t skipped, storage_retries, spilled;
    struct lambda_stats lstats;  /* summed over the phases run on Lambda */
    int used_lambda;
    cJSON *counters;
} run;

static double runner_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double runner_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *runner_dirname(const char *uri)
{
    const char *slash = strrchr(uri, '/');
    if (!slash) return strdup(".");
    if (slash == uri) return strdup("/");
    return strndup(uri, (size_t)(slash - uri));
}

static const char *runner_basename(const char *uri)
{
    const char *slash = strrchr(uri, '/');
    return slash ? slash + 1 : uri;
}

config *runner_load_config(const char *uri, mr_err *e)
{
    if (!storage_is_remote(uri)) return config_load(uri, e);
    size_t len;
    char *text = stream_slurp(uri, &len, RUNNER_MAX_SOURCE, e);
    if (!text) return NULL;
    char *dir = runner_dirname(uri);
    config *c = config_parse(text, uri, dir, e);
    free(dir);
    free(text);
    return c;
}

static script *runner_load_script(const config *c, mr_err *e)
{
    if (!storage_is_remote(c->script)) return script_create(c->script, NULL, 0, e);
    size_t len;
    char *text = stream_slurp(c->script, &len, RUNNER_MAX_SOURCE, e);
    if (!text) return NULL;
    script *s = script_create(c->script, text, len, e);
    free(text);
    return s;
}

static mr_code runner_check_script(const config *c, const script *s, mr_err *e)
{
    int need_map = c->mode != CONFIG_REDUCER_ONLY;
    MR_CHECK(!need_map || script_has(s, "map"), e, MR_EINVAL,
             "%s: taskMode %s needs a map function, and the script's table has none",
             c->script, config_mode_name(c->mode));
    MR_CHECK(c->mode != CONFIG_REDUCER_ONLY || script_has(s, "reduce") ||
             script_declared_groupby(s), e, MR_EINVAL,
             "%s: taskMode REDUCER_ONLY needs a reduce function, and the script's table has none",
             c->script);
    const ops_sort_key *okeys;
    MR_CHECK(c->mode != CONFIG_MAPPER_ONLY || script_order_keys(s, &okeys) == 0, e, MR_EINVAL,
             "%s: order_by sorts the reducers' output, and taskMode MAPPER_ONLY has no reduce "
             "phase", c->script);
    return MR_OK;
}

mr_code runner_validate(const char *config_uri, mr_err *e)
{
    config *c = runner_load_config(config_uri, e);
    if (!c) return e->code;
    script *s = runner_load_script(c, e);
    mr_code code = s ? runner_check_script(c, s, e) : e->code;
    script_free(s);
    config_free(c);
    return code;
}

/* ---- output locations ---- */

static int runner_is_folder_uri(const char *uri)
{
    size_t n = strlen(uri);
    return n > 0 && uri[n - 1] == '/';
}

/* Part i of n of the job's output: the configured file itself for a single-part job
 * (unless it names a folder), else "<location>/part-00003.json". */
static char *runner_output_uri(const run *r, int part, int nparts)
{
    const config *c = r->c;
    writer_format fmt = WRITER_JSON;
    writer_format_parse(c->write_format, &fmt);
    const char *loc = r->output;
    if (nparts == 1 && !runner_is_folder_uri(loc)) return strdup(loc);
    char name[64];
    snprintf(name, sizeof name, "%s-%05d%s", nparts == 1 ? "result" : "part", part,
             writer_extension(fmt, c->write_gzip));
    return storage_join(loc, name);
}

static void runner_free_intermediates(run *r)
{
    size_t n = r->nintermediates + (r->merge_parts ? (size_t)r->nreducers : 0);
    for (size_t i = 0; r->intermediates && i < n; i++) free(r->intermediates[i]);
    free(r->intermediates);
    r->intermediates = NULL;
}

/* ---- progress and summary ---- */

/* Several reducers writing one JSON document leave their parts here for the merge. */
static char *runner_reduced_uri(const run *r, int part)
{
    char name[64];
    snprintf(name, sizeof name, "reduced-%05d.imf", part);
    return storage_join(r->run_dir, name);
}

static void runner_progress(run *r, int final)
{
    if (!r->tty || r->o->quiet) return;
    double el = runner_now() - r->phase_start;
    double mb = (double)r->bytes_in / 1e6;
    fprintf(stderr, "\r\033[K%s: %d/%d tasks  %llu records  %.1f MB  %.1f MB/s  %.1fs",
            task_kind_name(r->phase), r->done, r->ntasks, (unsigned long long)r->records_in, mb,
            el > 0 ? mb / el : 0.0, el);
    if (final) fputc('\n', stderr);
}

static void runner_tick(void *ud)
{
    runner_progress(ud, 0);
}

static void runner_merge_counters(run *r, const char *json)
{
    cJSON *obj = cJSON_Parse(json);
    cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        cJSON *old = cJSON_GetObjectItemCaseSensitive(r->counters, item->string);
        if (old) cJSON_SetNumberValue(old, old->valuedouble + item->valuedouble);
        else cJSON_AddNumberToObject(r->counters, item->string, item->valuedouble);
    }
    cJSON_Delete(obj);
}

static void runner_task_done(void *ud, int task, int attempt, const task_result *res, int final)
{
    run *r = ud;
    if (res->failed && !final) {
        r->retries++;
        if (!r->o->quiet)
            fprintf(stderr, "%s%s task %d attempt %d failed, retrying: %s\n", r->tty ? "\r\033[K" : "",
                    task_kind_name(r->phase), task, attempt, res->error);
        return;
    }
    if (res->failed) return;
    r->done++;
    r->bad += res->bad_records;
    r->skipped += res->skipped_records;
    r->storage_retries += res->storage_retries;
    r->spilled += res->spilled_bytes;
    runner_merge_counters(r, res->counters);
    if (r->phase == TASK_MAP) {
        r->records_in += res->records_in;
        r->records_out += res->records_out;
        r->bytes_in += res->bytes_in;
    } else if (r->phase == TASK_REDUCE) {
        r->reduce_in += res->records_in;
        r->reduce_out += res->records_out;
    }
    runner_progress(r, 0);
}

/* "big.csv 39 tasks, other.csv 4 tasks": the files that were split and their tasks (the
 * plan keeps a file's splits next to each other), the first few of them. */
static void runner_split_summary(const run *r, FILE *out)
{
    enum { SHOW = 4 };
    size_t shown = 0, split_files = 0;
    for (size_t i = 0; i < r->p.n;) {
        size_t j = i + 1;
        while (j < r->p.n && strcmp(r->p.inputs[j].uri, r->p.inputs[i].uri) == 0) j++;
        if (j - i > 1) {
            if (shown < SHOW) {
                const char *name = strrchr(r->p.inputs[i].uri, '/');
                fprintf(out, "%s%s %zu tasks", shown ? ", " : "  splits:  ",
                        name ? name + 1 : r->p.inputs[i].uri, j - i);
                shown++;
            }
            split_files++;
        }
        i = j;
    }
    if (split_files > shown) fprintf(out, ", and %zu more files", split_files - shown);
    int mb = r->c->split_size >= 1048576;
    if (shown)
        fprintf(out, " (splitSize %.0f %s; %zu files whole)\n",
                r->c->split_size / (mb ? 1048576.0 : 1024.0), mb ? "MB" : "KB",
                r->p.files - split_files);
}

static void runner_summary(run *r, mr_code code, const mr_err *e)
{
    if (r->o->quiet && code == MR_OK) return;
    double el = runner_now() - r->start;
    FILE *out = stderr;
    if (code == MR_OK)
        fprintf(out, "luamr: job '%s' (run %s) succeeded in %.2f s\n", r->c->name, r->run_id, el);
    else
        fprintf(out, "luamr: job '%s' (run %s) FAILED after %.2f s\n", r->c->name, r->run_id, el);
    if (r->c->mode != CONFIG_REDUCER_ONLY)
        fprintf(out,
                "  map:     %zu tasks over %zu files, %llu records in, %llu rows out, %.1f MB read, %.2f s%s\n",
                r->p.n, r->p.files, (unsigned long long)r->records_in,
                (unsigned long long)r->records_out, (double)r->bytes_in / 1e6, r->map_seconds,
                r->resumed ? " (some tasks resumed)" : "");
    if (r->c->mode != CONFIG_REDUCER_ONLY) runner_split_summary(r, out);
    if (r->c->mode == CONFIG_MAPPER_AND_REDUCER || r->c->mode == CONFIG_REDUCER_ONLY)
        fprintf(out, "  reduce:  %llu rows in, %llu rows out, %.2f s\n", (unsigned long long)r->reduce_in,
                (unsigned long long)r->reduce_out, r->reduce_seconds);
    if (r->bad)
        fprintf(out, "  bad records: %llu (in %s)\n", (unsigned long long)r->bad, r->error_dir);
    else
        fprintf(out, "  bad records: 0\n");
    if (r->skipped)
        fprintf(out, "  skipped records: %llu (map raised on them; see the bad records)\n",
                (unsigned long long)r->skipped);
    if (r->retries) fprintf(out, "  task retries: %d\n", r->retries);
    if (r->used_lambda)
        fprintf(out, "  lambda:  %d invocations (%d throttled), %.1f billed s, %.2f GB-s at %d MB\n",
                r->lstats.invocations, r->lstats.throttles, r->lstats.billed_seconds,
                r->lstats.gb_seconds, r->lstats.memory_mb);
    if (r->storage_retries)
        fprintf(out, "  storage retries: %llu (S3 requests retried)\n",
                (unsigned long long)r->storage_retries);
    if (r->spilled)
        fprintf(out, "  spilled: %.1f MB to local disk (memory budget %.0f MB)\n",
                (double)r->spilled / 1e6, (double)r->c->memory_budget / 1048576.0);
    if (cJSON_GetArraySize(r->counters) > 0) {
        char *text = cJSON_PrintUnformatted(r->counters);
        fprintf(out, "  counters: %s\n", text);
        free(text);
    }
    if (code == MR_OK && r->output) fprintf(out, "  output:  %s\n", r->output);
    if (code != MR_OK) fprintf(out, "  error: %s\n  nothing was written to the destination.\n", e->msg);
}

/* ---- phases ---- */

static void runner_worker_run(void *ud, int task, int attempt, task_result *res);

static int runner_uses_lambda(const run *r)
{
    const char *ex = r->o->executor ? r->o->executor : r->c->executor;
    return ex && strcmp(ex, "lambda") == 0;
}

/* The event a Lambda invocation gets for one task of this run. */
static char *runner_event(void *ud, int task)
{
    run *r = ud;
    int index = r->phase == TASK_MAP && runner_todo ? runner_todo[task] : task;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "config", r->o->config_uri);
    cJSON_AddStringToObject(o, "runId", r->run_id);
    cJSON_AddStringToObject(o, "kind", task_kind_name(r->phase));
    cJSON_AddNumberToObject(o, "index", index);
    if (r->o->from_run) cJSON_AddStringToObject(o, "fromRun", r->o->from_run);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* "map task 3 (in/a.csv)", for messages about a task whose worker died. */
static void runner_describe_task(void *ud, int task, char *buf, size_t n)
{
    run *r = ud;
    if (r->phase == TASK_MAP) {
        int index = runner_todo ? runner_todo[task] : task;
        snprintf(buf, n, "map task %d (%s)", index, r->p.inputs[index].uri);
    } else {
        snprintf(buf, n, "%s task %d", task_kind_name(r->phase), task);
    }
}

static mr_code runner_lambda(run *r, int ntasks, int workers, int attempts, mr_err *e)
{
    const char *fn = r->o->function ? r->o->function : r->c->function;
    MR_CHECK(fn && *fn, e, MR_EINVAL,
             "the lambda executor needs a function: --function NAME or compute.function");
    MR_CHECK(storage_is_remote(r->o->config_uri), e, MR_EINVAL,
             "the lambda executor needs the config on S3 (luamr upload CONFIG puts it there), "
             "not the local path %s", r->o->config_uri);
    lambda_stats st = {0};
    lambda_job job = {.ntasks = ntasks, .concurrency = workers, .max_attempts = attempts,
                      .function = fn, .region = r->c->region, .event = runner_event,
                      .done = runner_task_done, .tick = runner_tick, .ud = r,
                      .quiet = r->o->quiet, .stats = &st};
    r->used_lambda = 1;
    mr_code code = lambda_executor_run(&job, e);
    r->lstats.invocations += st.invocations;
    r->lstats.retries += st.retries;
    r->lstats.throttles += st.throttles;
    r->lstats.billed_seconds += st.billed_seconds;
    r->lstats.gb_seconds += st.gb_seconds;
    if (st.memory_mb) r->lstats.memory_mb = st.memory_mb;
    return code;
}

static mr_code runner_pool(run *r, task_kind phase, int ntasks, mr_err *e)
{
    r->phase = phase;
    r->ntasks = ntasks;
    r->done = 0;
    r->phase_start = runner_now();
    int workers = r->c->concurrency > 0 ? r->c->concurrency : 1;
    if (r->o->concurrency > 0) workers = r->o->concurrency;
    int attempts = r->c->max_attempts > 0 ? r->c->max_attempts : 1;
    mr_code code;
    if (runner_uses_lambda(r)) {
        code = runner_lambda(r, ntasks, r->o->concurrency > 0 ? r->o->concurrency
                                        : r->c->concurrency > 0 ? r->c->concurrency : 100,
                             attempts, e);
    } else {
        if (workers > ntasks) workers = ntasks;
        pool_job job = {ntasks, workers, attempts, runner_worker_run, runner_task_done, runner_tick, r,
                        r->c->task_timeout, runner_describe_task};
        code = pool_run(&job, e);
    }
    runner_progress(r, 1);
    if (phase == TASK_REDUCE) r->reduce_seconds = runner_now() - r->phase_start;
    else r->map_seconds = runner_now() - r->phase_start;
    return code;
}

static int runner_map_task_needed(run *r, int i)
{
    if (!r->o->resume) return 1;
    mr_err e = {0};
    uint64_t size;
    if (storage_stat(r->intermediates[i], &size, &e) != 1) return 1;
    if (storage_is_remote(r->intermediates[i])) return 0;   /* uploaded only when complete */
    return imf_verify(r->intermediates[i], &e) != MR_OK;
}


static void runner_worker_run(void *ud, int task, int attempt, task_result *res)
{
    run *r = ud;
    mr_err e = {0};
    task_spec t = {0};
    if (!r->s) r->s = runner_load_script(r->c, &e);
    t.kind = r->phase;
    t.run_id = r->run_id;
    t.run_dir = r->run_dir;
    t.error_dir = r->error_dir;
    t.sample = r->o->sample;
    t.deadline = r->c->task_timeout > 0 ? runner_wall() + r->c->task_timeout : 0;
    char *out = NULL;
    const char *one[1];
    const char *const *reduced = (const char *const *)r->intermediates + r->nintermediates;
    if (r->phase == TASK_MAP) {
        t.index = runner_todo ? runner_todo[task] : task;
        t.ntasks = (int)r->p.n;
        t.input = &r->p.inputs[t.index];
        t.nparts = r->nreducers;
    } else if (r->phase == TASK_REDUCE) {
        t.index = task;
        t.ntasks = r->nreducers;
        t.nparts = r->nreducers;
        t.inputs = (const char *const *)r->intermediates;
        t.ninputs = r->nintermediates;
        t.reduce_to_intermediate = r->merge_parts;
        t.output_uri = out = r->merge_parts ? runner_reduced_uri(r, task)
                                            : runner_output_uri(r, task, r->nreducers);
    } else if (r->merge_parts) {
        t.index = 0;
        t.ntasks = 1;
        t.inputs = reduced;
        t.ninputs = (size_t)r->nreducers;
        t.output_uri = out = runner_output_uri(r, 0, 1);
    } else {
        t.index = task;
        t.ntasks = (int)r->nintermediates;
        one[0] = r->intermediates[task];
        t.inputs = one;
        t.ninputs = 1;
        t.output_uri = out = runner_output_uri(r, task, (int)r->nintermediates);
    }
    if (!r->s) {
        memset(res, 0, sizeof *res);
        res->failed = 1;
        res->code = e.code;
        strcpy(res->counters, "{}");
        snprintf(res->error, sizeof res->error, "%s", e.msg);
    } else {
        task_run(r->c, r->s, &t, res);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s task %d ", task_kind_name(t.kind), t.index);
        /* script errors name the task (and record) already */
        if (res->failed && strncmp(res->error, prefix, strlen(prefix)) != 0) {
            char msg[MR_ERR_MSG_MAX];
            if (t.input)
                snprintf(msg, sizeof msg, "%s task %d (%s): %s", task_kind_name(t.kind), t.index,
                         t.input->uri, res->error);
            else
                snprintf(msg, sizeof msg, "%s task %d: %s", task_kind_name(t.kind), t.index,
                         res->error);
            snprintf(res->error, sizeof res->error, "%s", msg);
        }
    }
    free(out);
    (void)attempt;
}

static mr_code runner_map_phase(run *r, mr_err *e)
{
    r->nintermediates = r->p.n;
    r->intermediates = calloc(r->p.n, sizeof *r->intermediates);
    runner_todo = calloc(r->p.n, sizeof *runner_todo);
    MR_CHECK(r->intermediates && runner_todo, e, MR_ENOMEM, "out of memory");
    int ntodo = 0;
    for (size_t i = 0; i < r->p.n; i++) {
        r->intermediates[i] = task_intermediate_uri(r->run_dir, (int)i);
        if (runner_map_task_needed(r, (int)i)) runner_todo[ntodo++] = (int)i;
        else r->resumed++;
    }
    if (r->resumed && !r->o->quiet)
        fprintf(stderr, "luamr: resuming run %s: %d of %zu map tasks already done\n", r->run_id,
                r->resumed, r->p.n);
    if (ntodo == 0) return MR_OK;
    MR_TRY(runner_pool(r, TASK_MAP, ntodo, e));
    /* Hadoop-style marker: REDUCER_ONLY runs pick the latest run that has one. */
    char *marker = storage_join(r->run_dir, "_SUCCESS");
    sink *s = sink_open(marker, 0, e);
    free(marker);
    if (!s) return e->code;
    mr_code code = sink_commit(s, e);
    sink_free(s);
    return code;
}

typedef struct runner_listing {
    const char *base;
    size_t base_len;
    char best[64];
    char **files;
    size_t n, cap;
    const char *want_dir;
} runner_listing;

static mr_code runner_find_latest(const char *uri, uint64_t size, void *ud)
{
    runner_listing *l = ud;
    if (strncmp(uri, l->base, l->base_len) != 0) return MR_OK;
    const char *rest = uri + l->base_len;
    while (*rest == '/') rest++;
    const char *slash = strchr(rest, '/');
    if (!slash || strcmp(slash + 1, "_SUCCESS") != 0) return MR_OK;
    size_t n = (size_t)(slash - rest);
    if (n >= sizeof l->best) return MR_OK;
    char id[64];
    memcpy(id, rest, n);
    id[n] = '\0';
    if (strcmp(id, l->best) > 0) strcpy(l->best, id);
    return MR_OK;
}

static mr_code runner_collect_imf(const char *uri, uint64_t size, void *ud)
{
    runner_listing *l = ud;
    size_t n = strlen(uri);
    if (n < 4 || strcmp(uri + n - 4, ".imf") != 0) return MR_OK;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        char **f = realloc(l->files, l->cap * sizeof *f);
        if (!f) return MR_ENOMEM;
        l->files = f;
    }
    l->files[l->n++] = strdup(uri);
    return MR_OK;
}

static int runner_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* REDUCER_ONLY: the intermediates of an earlier run (--from-run, else the latest
 * completed one). */
static mr_code runner_find_intermediates(run *r, mr_err *e)
{
    runner_listing l = {0};
    l.base = r->c->intermediate;
    l.base_len = strlen(l.base);
    const char *from = r->o->from_run;
    if (!from) {
        MR_TRY(storage_list(r->c->intermediate, runner_find_latest, &l, e));
        MR_CHECK(l.best[0], e, MR_ENOTFOUND,
                 "REDUCER_ONLY: no completed run under intermediate.location %s (run the "
                 "mappers first, e.g. with taskMode MAPPER_ONLY)", r->c->intermediate);
        from = l.best;
    }
    free(r->run_dir);
    r->run_dir = storage_join(r->c->intermediate, from);
    MR_TRY(storage_list(r->run_dir, runner_collect_imf, &l, e));
    MR_CHECK(l.n > 0, e, MR_ENOTFOUND, "REDUCER_ONLY: no intermediates in %s", r->run_dir);
    qsort(l.files, l.n, sizeof *l.files, runner_cmp_str);
    r->intermediates = l.files;
    r->nintermediates = l.n;
    if (!r->o->quiet) fprintf(stderr, "luamr: reducing %zu intermediates of run %s\n", l.n, from);
    return MR_OK;
}

/* Removes the parts a failed MAPPER_ONLY publish had already written. */
static void runner_unpublish(run *r)
{
    for (size_t i = 0; i < r->nintermediates; i++) {
        mr_err e;
        char *uri = runner_output_uri(r, (int)i, (int)r->nintermediates);
        storage_remove(uri, &e);
        free(uri);
    }
}

static void runner_print_head(run *r)
{
    if (r->c->mode == CONFIG_MAPPER_ONLY) return;
    mr_err e = {0};
    char *uri = runner_output_uri(r, 0, 1);
    if (storage_is_remote(uri)) { free(uri); return; }
    size_t len;
    char *text = stream_slurp(uri, &len, 1 << 20, &e);
    if (text) {
        printf("%.*s%s", len > 4000 ? 4000 : (int)len, text, len > 4000 ? "\n...\n" : "");
        if (len && text[len - 1] != '\n') putchar('\n');
    }
    free(text);
    free(uri);
}

/* A run id names a folder under intermediate.location and errorConnector.location (and
 * comes from the command line or a Lambda event): one plain path segment, so that it can
 * neither climb out with "..", nor nest, nor be cut short silently. */
static mr_code runner_check_run_id(const char *id, const char *what, mr_err *e)
{
    size_t n = strlen(id);
    MR_CHECK(n > 0 && n < sizeof ((run *)0)->run_id, e, MR_EINVAL,
             "%s '%s': a run id is 1 to %zu characters", what, id, sizeof ((run *)0)->run_id - 1);
    MR_CHECK(id[0] != '.', e, MR_EINVAL,
             "%s '%s': a run id cannot start with '.' (it names a folder; '..' would climb "
             "out of the intermediate and error folders)", what, id);
    const char *bad = config_bad_name_char(id);
    MR_CHECK(!bad, e, MR_EINVAL,
             "%s '%s': a run id is letters, digits, '-', '_' and '.' (it names a folder), "
             "not '%c'", what, id, bad ? *bad : '?');
    return MR_OK;
}

static mr_code runner_make_run_id(run *r, mr_err *e)
{
    if (r->o->from_run) MR_TRY(runner_check_run_id(r->o->from_run, "--from-run", e));
    if (r->o->resume) {
        MR_TRY(runner_check_run_id(r->o->resume, "--resume", e));
        snprintf(r->run_id, sizeof r->run_id, "%s", r->o->resume);
        return MR_OK;
    }
    if (r->o->run_id) {
        MR_TRY(runner_check_run_id(r->o->run_id, "--run-id", e));
        snprintf(r->run_id, sizeof r->run_id, "%s", r->o->run_id);
        return MR_OK;
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(r->run_id, sizeof r->run_id, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(r->run_id + strlen(r->run_id), sizeof r->run_id - strlen(r->run_id), "-%d",
             (int)getpid());
    return MR_OK;
}

/* dry-run: the destinations move under out_dir. */
static mr_code runner_redirect_dry_run(run *r, mr_err *e)
{
    const char *dir = r->o->out_dir ? r->o->out_dir : "dry-run-out";
    config *c = r->c;
    char *out = storage_join(dir, c->write_location && !runner_is_folder_uri(c->write_location)
                                      ? runner_basename(c->write_location) : "output/");
    char *err = storage_join(dir, "_errors");
    char *imd = storage_join(dir, "_intermediate");
    MR_CHECK(out && err && imd, e, MR_ENOMEM, "out of memory");
    free(r->output);
    r->output = out;
    free(c->error_location);
    c->error_location = err;
    if (c->mode != CONFIG_REDUCER_ONLY) {
        free(c->intermediate);
        c->intermediate = imd;
    } else {
        free(imd);
    }
    return MR_OK;
}

static mr_code runner_prepare(run *r, mr_err *e)
{
    r->c = runner_load_config(r->o->config_uri, e);
    if (!r->c) return e->code;
    if (r->o->concurrency > 0) r->c->concurrency = r->o->concurrency;
    script *s = runner_load_script(r->c, e);
    if (!s) return e->code;
    mr_code code = runner_check_script(r->c, s, e);
    const ops_sort_key *okeys;
    r->ordered = script_order_keys(s, &okeys) > 0;
    script_free(s);
    MR_TRY(code);
    r->output = strdup(r->c->write_location ? r->c->write_location : "output/");
    if (r->o->dry_run) MR_TRY(runner_redirect_dry_run(r, e));
    MR_TRY(runner_make_run_id(r, e));
    r->nreducers = r->c->reducers > 0 ? r->c->reducers : 1;
    r->run_dir = storage_join(r->c->intermediate, r->run_id);
    r->error_dir = storage_join(r->c->error_location, r->run_id);
    if (r->c->mode != CONFIG_REDUCER_ONLY) MR_TRY(plan_build(r->c, &r->p, e));
    return MR_OK;
}

/* The reduced parts the final merge reads sit after the map intermediates in the same
 * array (so one free loop releases both). */
static mr_code runner_plan_reduced(run *r, mr_err *e)
{
    r->merge_parts = r->nreducers > 1 && (strcmp(r->c->write_format, "json") == 0 || r->ordered);
    if (!r->merge_parts) return MR_OK;
    char **all = realloc(r->intermediates,
                         (r->nintermediates + (size_t)r->nreducers) * sizeof *all);
    MR_CHECK(all, e, MR_ENOMEM, "out of memory");
    r->intermediates = all;
    for (int i = 0; i < r->nreducers; i++) all[r->nintermediates + i] = runner_reduced_uri(r, i);
    return MR_OK;
}

static void runner_unpublish_parts(run *r, int nparts)
{
    for (int i = 0; i < nparts; i++) {
        mr_err e;
        char *uri = runner_output_uri(r, i, nparts);
        storage_remove(uri, &e);
        free(uri);
    }
}

static mr_code runner_execute(run *r, mr_err *e)
{
    if (r->c->mode == CONFIG_REDUCER_ONLY) MR_TRY(runner_find_intermediates(r, e));
    else MR_TRY(runner_map_phase(r, e));
    if (r->c->mode == CONFIG_MAPPER_ONLY) {
        mr_code code = runner_pool(r, TASK_PUBLISH, (int)r->nintermediates, e);
        if (code != MR_OK) runner_unpublish(r);
        return code;
    }
    MR_TRY(runner_plan_reduced(r, e));
    mr_code code = runner_pool(r, TASK_REDUCE, r->nreducers, e);
    if (code != MR_OK && !r->merge_parts && r->nreducers > 1) runner_unpublish_parts(r, r->nreducers);
    if (code == MR_OK && r->merge_parts) code = runner_pool(r, TASK_PUBLISH, 1, e);
    return code;
}

mr_code runner_run(const runner_opts *o, mr_err *e)
{
    run r = {0};
    r.o = o;
    r.start = runner_now();
    r.tty = isatty(2);
    r.counters = cJSON_CreateObject();
    mr_code code = runner_prepare(&r, e);
    if (code == MR_OK) {
        code = runner_execute(&r, e);
        runner_summary(&r, code, e);
        if (code == MR_OK && o->dry_run) runner_print_head(&r);
    }
    runner_free_intermediates(&r);
    free(runner_todo);
    runner_todo = NULL;
    plan_clear(&r.p);
    free(r.run_dir);
    free(r.error_dir);
    free(r.output);
    cJSON_Delete(r.counters);
    config_free(r.c);
    return code;
}

mr_code runner_run_task(const runner_opts *o, task_kind kind, int index, task_result *res,
                        mr_err *e)
{
    run r = {0};
    r.o = o;
    r.start = runner_now();
    r.counters = cJSON_CreateObject();
    mr_code code = runner_prepare(&r, e);
    if (code == MR_OK && kind == TASK_MAP && (index < 0 || (size_t)index >= r.p.n))
        code = mr_fail(e, MR_EINVAL, "map task %d does not exist: the plan has %zu tasks", index, r.p.n);
    if (code == MR_OK && kind != TASK_MAP && r.c->mode == CONFIG_REDUCER_ONLY)
        code = runner_find_intermediates(&r, e);
    if (code == MR_OK && kind != TASK_MAP && r.c->mode != CONFIG_REDUCER_ONLY) {
        r.nintermediates = r.p.n;
        r.intermediates = calloc(r.p.n, sizeof *r.intermediates);
        for (size_t i = 0; r.intermediates && i < r.p.n; i++)
            r.intermediates[i] = task_intermediate_uri(r.run_dir, (int)i);
    }
    if (code == MR_OK && kind != TASK_MAP) code = runner_plan_reduced(&r, e);
    if (code == MR_OK) {
        r.phase = kind;
        runner_worker_run(&r, index, 1, res);
        code = res->failed ? mr_fail(e, res->code, "%s", res->error) : MR_OK;
    }
    script_free(r.s);
    runner_free_intermediates(&r);
    plan_clear(&r.p);
    free(r.run_dir);
    free(r.error_dir);
    free(r.output);
    cJSON_Delete(r.counters);
    config_free(r.c);
    return code;
}
