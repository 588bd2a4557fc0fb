#define _GNU_SOURCE   /* nftw, mkdtemp */
#include "task.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>
#include <stdarg.h>

#include "../connectors/reader.h"
#include "../connectors/sink.h"
#include "../connectors/storage.h"
#include "../connectors/writer.h"
#include "../connectors/s3.h"
#include "extsort.h"
#include "grace.h"
#include "groupby.h"
#include "imf.h"
#include "mapout.h"
#include "ops.h"
#include "shuffle.h"
#include "spill.h"

/* Bad input records of one task go to one JSON-lines object at the error destination,
 * opened on the first bad record so clean tasks leave nothing behind. */
typedef struct task_errors {
    const config *c;
    const task_spec *t;
    sink *out;
    uint64_t count;
} task_errors;

static double task_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *task_kind_name(task_kind k)
{
    switch (k) {
    case TASK_MAP: return "map";
    case TASK_REDUCE: return "reduce";
    case TASK_PUBLISH: return "publish";
    }
    return "task";
}

char *task_intermediate_uri(const char *run_dir, int map_index)
{
    char name[64];
    snprintf(name, sizeof name, "map-%05d.imf", map_index);
    return storage_join(run_dir, name);
}

static mr_code task_errors_write(task_errors *te, const reader_bad *bad, mr_err *e)
{
    if (!te->out) {
        char name[64];
        snprintf(name, sizeof name, "%s-%05d.jsonl", task_kind_name(te->t->kind), te->t->index);
        char *uri = storage_join(te->t->error_dir, name);
        te->out = sink_open(uri, 0, e);
        free(uri);
        if (!te->out) return e->code;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", bad->file ? bad->file : "");
    cJSON_AddNumberToObject(o, "record", (double)bad->record);
    cJSON_AddNumberToObject(o, "offset", (double)bad->offset);
    if (bad->field) cJSON_AddStringToObject(o, "field", bad->field);
    cJSON_AddStringToObject(o, "reason", bad->reason ? bad->reason : "");
    char *raw = strndup(bad->raw ? bad->raw : "", bad->raw ? bad->raw_len : 0);
    cJSON_AddStringToObject(o, "raw", raw ? raw : "");
    cJSON_AddNumberToObject(o, "task", te->t->index);
    free(raw);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    mr_code code = line ? sink_printf(te->out, e, "%s\n", line) : MR_ENOMEM;
    free(line);
    return code;
}

static mr_code task_on_bad(const reader_bad *bad, void *ud, mr_err *e)
{
    task_errors *te = ud;
    te->count++;
    MR_TRY(task_errors_write(te, bad, e));
    if (te->c->max_bad_records >= 0 && te->count > (uint64_t)te->c->max_bad_records)
        return mr_fail(e, MR_ELIMIT,
                       "%s: too many bad records (%llu, errorConnector.maxBadRecords is %lld); "
                       "last: record %llu: %s",
                       bad->file ? bad->file : "input", (unsigned long long)te->count,
                       (long long)te->c->max_bad_records, (unsigned long long)bad->record,
                       bad->reason ? bad->reason : "");
    return MR_OK;
}

static void task_log(void *ud, const char *level, const char *msg)
{
    const task_spec *t = ud;
    fprintf(stderr, "[%s %d] %s: %s\n", task_kind_name(t->kind), t->index, level, msg);
}

typedef struct task_counters {
    cJSON *obj;
} task_counters;

static void task_add_counter(void *ud, const char *name, double value)
{
    task_counters *tc = ud;
    cJSON *old = cJSON_GetObjectItemCaseSensitive(tc->obj, name);
    if (old) cJSON_SetNumberValue(old, old->valuedouble + value);
    else cJSON_AddNumberToObject(tc->obj, name, value);
}

static void task_collect_counters(script *s, task_result *r)
{
    task_counters tc = {cJSON_CreateObject()};
    script_drain_counters(s, task_add_counter, &tc);
    char *text = cJSON_PrintUnformatted(tc.obj);
    if (text && strlen(text) < sizeof r->counters) strcpy(r->counters, text);
    free(text);
    cJSON_Delete(tc.obj);
}

static void task_reader_opts(const config *c, const task_spec *t, reader_opts *o,
                             const char **names, frame_type *types)
{
    reader_opts_init(o);
    reader_format_parse(c->read_format, &o->format);
    if (c->delimiter) o->delimiter = c->delimiter;
    o->header = c->header;
    for (size_t i = 0; i < c->ncolumns; i++) {
        names[i] = c->columns[i].name;
        types[i] = c->columns[i].type;
    }
    o->col_names = c->ncolumns ? names : NULL;
    o->col_types = c->ncolumns ? types : NULL;
    o->ncols = c->ncolumns;
    o->max_records = t->sample;
    o->range_start = t->input->range_start;
    o->range_end = t->input->range_end;
}

/* The task's private scratch folder (spill files, downloads, the script's io.open),
 * removed when the task ends. */
static char task_scratch[4096];

static mr_code task_scratch_create(const task_spec *t, mr_err *e)
{
    const char *root = t->scratch_root;
    if (!root || !*root) root = getenv("TMPDIR");
    if (!root || !*root) root = "/tmp";
    snprintf(task_scratch, sizeof task_scratch, "%s/luamr-%s-%d-XXXXXX", root,
             task_kind_name(t->kind), t->index);
    MR_CHECK(mkdtemp(task_scratch), e, MR_EIO, "cannot create scratch folder %s: %s",
             task_scratch, strerror(errno));
    return MR_OK;
}

static int task_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void task_scratch_remove(void)
{
    if (task_scratch[0]) nftw(task_scratch, task_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    task_scratch[0] = '\0';
}

/* A local file to write an intermediate to: the destination itself when it is local,
 * else a file in the scratch folder uploaded afterwards. */
static char *task_scratch_path(const char *uri, const char *tag)
{
    if (!storage_is_remote(uri)) return strdup(uri);
    static unsigned seq;
    char buf[4200];
    snprintf(buf, sizeof buf, "%s/%u-%s", task_scratch, seq++, tag);
    return strdup(buf);
}

/* A local copy of an intermediate: the file itself, or a download into scratch. */
static char *task_fetch_intermediate(const char *uri, mr_err *e)
{
    char *path = task_scratch_path(uri, "in.imf");
    if (path && storage_is_remote(uri) && storage_get_file(uri, path, e) != MR_OK) {
        unlink(path);
        free(path);
        return NULL;
    }
    return path;
}

static void task_init_script_task(const config *c, const task_spec *t, script_task *st,
                                  task_errors *te)
{
    memset(st, 0, sizeof *st);
    st->run_id = t->run_id;
    st->kind = task_kind_name(t->kind);
    st->index = t->index;
    st->ntasks = t->ntasks;
    st->on_bad = task_on_bad;
    st->bad_ud = te;
    st->log = task_log;
    st->log_ud = (void *)t;
    st->deadline = t->deadline;
    st->scratch_dir = task_scratch;
    st->frame_gc_bytes = (size_t)(c->memory_budget / 8);
}

/* skipFailingRecords: the records map raised on, sorted, with the errors it raised. */
typedef struct task_skips {
    uint64_t *records;
    char **reasons;
    size_t n;
} task_skips;

static mr_code task_add_skip(task_skips *sk, uint64_t rec, const char *reason, mr_err *e)
{
    uint64_t *recs = realloc(sk->records, (sk->n + 1) * sizeof *recs);
    MR_CHECK(recs, e, MR_ENOMEM, "out of memory");
    sk->records = recs;
    char **reasons = realloc(sk->reasons, (sk->n + 1) * sizeof *reasons);
    MR_CHECK(reasons, e, MR_ENOMEM, "out of memory");
    sk->reasons = reasons;
    char *msg = strdup(reason);
    MR_CHECK(msg, e, MR_ENOMEM, "out of memory");
    size_t i = sk->n;
    while (i > 0 && recs[i - 1] > rec) {
        recs[i] = recs[i - 1];
        reasons[i] = reasons[i - 1];
        i--;
    }
    recs[i] = rec;
    reasons[i] = msg;
    sk->n++;
    return MR_OK;
}

static void task_skips_free(task_skips *sk)
{
    for (size_t i = 0; i < sk->n; i++) free(sk->reasons[i]);
    free(sk->reasons);
    free(sk->records);
}

/* The bad records of an attempt that is about to be rerun: the rerun reports them again. */
static void task_errors_reset(task_errors *te)
{
    sink_free(te->out);   /* uncommitted: discarded */
    te->out = NULL;
    te->count = 0;
}

/* A map task's output on its way out: every frame map hands over (its return value, or
 * the rows ctx:emit gathered past the flush size) is combined and routed to the
 * intermediate's partitions at once, so the task holds one batch, not its whole output. */
typedef struct task_mapping {
    const config *c;
    script *s;
    const script_task *st;
    const char *path;            /* local intermediate */
    const char *const *keys;
    size_t nkeys;
    int nparts;
    mapout *out;
} task_mapping;

static mr_code task_map_start(task_mapping *m, mr_err *e)
{
    mapout_free(m->out);
    m->out = mapout_create(m->path, m->c->intermediate_level, m->nparts, m->keys, m->nkeys,
                           (size_t)(m->c->memory_budget / 8), e);
    return m->out ? MR_OK : e->code;
}

/* Out to the partitions: by the job's partition function when it has one (with more than
 * one reducer), else by the partition keys. */
static mr_code task_map_route(task_mapping *m, const frame *f, mr_err *e)
{
    size_t n = frame_nrows(f);
    if (m->nparts == 1 || n == 0 || !script_has(m->s, "partition")) return mapout_add(m->out, f, e);
    uint32_t *part = malloc(n * sizeof *part);
    MR_CHECK(part, e, MR_ENOMEM, "out of memory partitioning %zu rows", n);
    script_task pt = *m->st;
    pt.kind = "partition";
    pt.emit_flush = NULL;
    mr_code rc = script_run_partition(m->s, f, m->nparts, part, &pt, e);
    if (rc == MR_OK) rc = mapout_add_assigned(m->out, f, part, e);
    free(part);
    return rc;
}

/* script_emit_fn: combine (the job's, then the declared reduce's partial aggregates) and
 * route one batch of map output. Takes rows. */
static mr_code task_map_emit(void *ud, frame *rows, mr_err *e)
{
    task_mapping *m = ud;
    frame *out = rows;
    if (script_has(m->s, "combine")) {
        script_task ct = *m->st;
        ct.kind = "combine";
        ct.emit_flush = NULL;
        frame *combined = script_run_frame_fn(m->s, "combine", out, &ct, e);
        frame_free(out);
        if (!combined) return e->code;
        out = combined;
    }
    const script_groupby *g = script_declared_groupby(m->s);
    /* the engine's combiner: partial aggregates, finished by the reducers (a map that
     * output nothing has no columns to aggregate, and nothing to combine) */
    if (g && (frame_nrows(out) > 0 || frame_ncols(out) > 0)) {
        frame *partial = groupby_partial(out, g->keys, g->nkeys, g->aggs, g->naggs, e);
        frame_free(out);
        if (!partial) return mr_wrap(e, "combining map output: ");
        out = partial;
    }
    mr_code rc = task_map_route(m, out, e);
    frame_free(out);
    return rc;
}

/* Runs map, rerunning it without the record it failed on while skipFailingRecords and the
 * bad-record budget allow (the MapReduce paper's skipping of bad records); every attempt
 * starts its output afresh. */
static mr_code task_run_map_skipping(const config *c, script *s, script_task *st,
                                     task_errors *te, task_result *r, task_mapping *m,
                                     mr_err *e)
{
    task_skips sk = {0};
    for (;;) {
        st->skip_records = sk.records;
        st->skip_reasons = (const char *const *)sk.reasons;
        st->nskip = sk.n;
        st->failed_record = 0;
        frame *out = task_map_start(m, e) == MR_OK ? script_run_map(s, st, e) : NULL;
        mr_code rc = out ? task_map_emit(m, out, e) : e->code;
        int skippable = rc != MR_OK && !out && c->skip_bad_map_records &&
                        e->code == MR_ESCRIPT && st->failed_record > 0 &&
                        (c->max_bad_records < 0 || te->count < (uint64_t)c->max_bad_records);
        if (!skippable || task_add_skip(&sk, st->failed_record, e->msg, e) != MR_OK) {
            r->skipped_records = sk.n;
            task_skips_free(&sk);
            return rc;
        }
        fprintf(stderr, "[map %d] skipping record %llu: %s\n", st->index,
                (unsigned long long)st->failed_record, e->msg);
        task_errors_reset(te);
        mr_err_clear(e);
    }
}

/* Rows ctx:emit gathers before they go out: a small share of the budget, since the batch
 * is copied while it is combined and routed. */
static size_t task_emit_flush_bytes(const config *c)
{
    uint64_t b = c->memory_budget / 8;
    return (size_t)(b < ((uint64_t)4 << 20) ? (uint64_t)4 << 20 : b);
}

static mr_code task_map(const config *c, script *s, const task_spec *t, task_result *r,
                        task_errors *te, mr_err *e)
{
    const char *names[c->ncolumns + 1];
    frame_type types[c->ncolumns + 1];
    reader_opts ro;
    script_task st;
    task_reader_opts(c, t, &ro, names, types);
    ro.max_frame_bytes = (size_t)(c->memory_budget / 2);
    task_init_script_task(c, t, &st, te);
    st.input_uri = t->input->uri;
    st.format = c->read_format;
    st.ropts = &ro;

    char *uri = task_intermediate_uri(t->run_dir, t->index);
    char *path = uri ? task_scratch_path(uri, "out.imf") : NULL;
    if (!path) free(uri);
    MR_CHECK(path, e, MR_ENOMEM, "out of memory");
    task_mapping m = {c, s, &st, path, NULL, 0, t->nparts > 0 ? t->nparts : 1, NULL};
    m.nkeys = script_partition_keys(s, &m.keys);
    st.emit_flush = task_map_emit;
    st.emit_ud = &m;
    st.emit_flush_bytes = task_emit_flush_bytes(c);

    mr_code code = sink_make_parents(path, e);
    if (code == MR_OK) code = task_run_map_skipping(c, s, &st, te, r, &m, e);
    r->records_in = st.records_in;
    r->bytes_in = st.bytes_in;
    if (code == MR_OK) {
        r->records_out = mapout_rows(m.out);
        code = mapout_finish(m.out, e);
    }
    if (code == MR_OK && storage_is_remote(uri)) code = storage_put_file(path, uri, e);
    if (storage_is_remote(uri)) unlink(path);
    if (code == MR_OK) snprintf(r->output, sizeof r->output, "%s", uri);
    mapout_free(m.out);
    free(path);
    free(uri);
    return code;
}

/* Where a reduce or publish result goes: the output format, or an intermediate that a
 * final publish merges into one document. */
typedef struct task_out {
    writer *w;
    imf_writer *imf;
    char *imf_path;
    const char *uri;
    uint64_t rows;
    extsort *order;      /* order_by: rows go through an external sort on their way out */
    const script *s;     /* whose order_by it is */
    uint64_t spilled;    /* by that sort */
} task_out;

static mr_code task_out_open(const config *c, const task_spec *t, task_out *o, mr_err *e)
{
    memset(o, 0, sizeof *o);
    o->uri = t->output_uri;
    if (t->reduce_to_intermediate) {
        o->imf_path = task_scratch_path(t->output_uri, "reduced.imf");
        MR_TRY(sink_make_parents(o->imf_path, e));
        o->imf = imf_writer_open(o->imf_path, c->intermediate_level, e);
        return o->imf ? MR_OK : e->code;
    }
    writer_format fmt = WRITER_JSON;
    MR_CHECK(writer_format_parse(c->write_format, &fmt) == 0, e, MR_EINVAL,
             "writeConnector.format: unknown format '%s'", c->write_format);
    o->w = writer_open(t->output_uri, fmt, c->write_gzip, e);
    return o->w ? MR_OK : e->code;
}

/* order_by names columns of the output: say so when one is missing. */
static mr_code task_out_check_order(const task_out *o, const frame *f, mr_err *e)
{
    const ops_sort_key *keys;
    size_t n = script_order_keys(o->s, &keys);
    for (size_t k = 0; k < n && frame_ncols(f) > 0; k++)
        MR_CHECK(frame_col_index(f, keys[k].col) >= 0, e, MR_EINVAL,
                 "order_by: the output has no column '%s'", keys[k].col);
    return MR_OK;
}

static mr_code task_out_append(task_out *o, const frame *f, mr_err *e)
{
    if (o->order) {
        MR_TRY(task_out_check_order(o, f, e));
        return extsort_add(o->order, f, e);
    }
    o->rows += frame_nrows(f);
    return o->w ? writer_append(o->w, f, e) : imf_writer_add(o->imf, f, 0, e);
}

/* extsort/spill emit callback: appends a batch to the task_out at ud and frees it. */
static mr_code task_out_take(void *ud, frame *batch, mr_err *e)
{
    mr_code code = task_out_append(ud, batch, e);
    frame_free(batch);
    return code;
}

/* The job's order_by for a reducer's output: half the budget for the sort, the rest for
 * the reduce that feeds it. */
static mr_code task_out_order(const config *c, script *s, task_out *o, mr_err *e)
{
    const ops_sort_key *keys;
    size_t n = script_order_keys(s, &keys);
    if (n == 0) return MR_OK;
    o->s = s;
    o->order = extsort_create(keys, n, c->memory_budget / 2, task_scratch, e);
    return o->order ? MR_OK : e->code;
}

static mr_code task_out_commit(task_out *o, mr_err *e)
{
    if (o->order) {
        extsort *sorter = o->order;
        o->order = NULL;
        mr_code code = extsort_finish(sorter, task_out_take, o, e);
        o->spilled = extsort_stats_of(sorter)->spilled_bytes;
        extsort_free(sorter);
        if (code != MR_OK) return mr_wrap(e, "order_by: ");
    }
    if (o->w) return writer_commit(o->w, e);
    MR_TRY(imf_writer_close(o->imf, e));
    if (storage_is_remote(o->uri)) return storage_put_file(o->imf_path, o->uri, e);
    return MR_OK;
}

static void task_out_free(task_out *o)
{
    extsort_free(o->order);
    writer_free(o->w);
    imf_writer_free(o->imf);
    if (o->imf_path && storage_is_remote(o->uri)) unlink(o->imf_path);
    free(o->imf_path);
}

static void task_fetched_free(const task_spec *t, char **paths)
{
    if (!paths) return;
    for (size_t i = 0; i < t->ninputs; i++) {
        if (paths[i] && storage_is_remote(t->inputs[i])) unlink(paths[i]);
        free(paths[i]);
    }
    free(paths);
}

/* The task's intermediates as local files (fetched when remote), paths[i] for inputs[i]. */
static char **task_fetch_all(const task_spec *t, mr_err *e)
{
    char **paths = calloc(t->ninputs + 1, sizeof *paths);
    MR_CHECK_NULL(paths, e, MR_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->ninputs; i++) {
        paths[i] = task_fetch_intermediate(t->inputs[i], e);
        if (paths[i]) continue;
        mr_wrap(e, "reading intermediate %s: ", t->inputs[i]);
        task_fetched_free(t, paths);
        return NULL;
    }
    return paths;
}

/* A declarative group-by reduce: partial aggregates merged within the memory budget,
 * spilling to the scratch folder when they would not fit. */
static mr_code task_reduce_declared(const config *c, const script_groupby *g,
                                    const task_spec *t, task_result *r, task_out *o,
                                    mr_err *e)
{
    char **paths = task_fetch_all(t, e);
    if (!paths) return e->code;
    spill_stats st = {0};
    mr_code code = spill_groupby_merge((const char *const *)paths, t->ninputs, t->index,
                                       g->keys, g->nkeys, g->aggs, g->naggs, c->memory_budget,
                                       task_scratch, task_out_take, o, &st, e);
    task_fetched_free(t, paths);
    r->spilled_bytes = st.spilled_bytes;
    r->records_in = st.rows_in;
    return code;
}

/* The reducers' parts of a declared group-by, each sorted by key, merged into one
 * document in key order without holding them all (extsort's merge). */
static mr_code task_publish_sorted(const config *c, const ops_sort_key *keys, size_t nkeys,
                                   const task_spec *t, task_result *r, task_out *o, mr_err *e)
{
    char **paths = task_fetch_all(t, e);
    if (!paths) return e->code;
    extsort_stats st = {0};
    mr_code code = extsort_merge_files((const char *const *)paths, t->ninputs, -1, keys,
                                       nkeys, c->memory_budget, task_scratch,
                                       task_out_take, o, &st, e);
    task_fetched_free(t, paths);
    r->spilled_bytes = st.spilled_bytes;
    r->records_in = st.rows;
    return code;
}

typedef struct task_reduce_call {
    script *s;
    script_task st;
    task_out *o;
} task_reduce_call;

static mr_code task_reduce_call_fn(void *ud, frame *rows, mr_err *e)
{
    task_reduce_call *call = ud;
    frame *out = script_run_frame_fn(call->s, "reduce", rows, &call->st, e);
    mr_code code = out ? task_out_append(call->o, out, e) : e->code;
    if (out != rows) frame_free(out);
    frame_free(rows);
    return code;
}

/* The script's reduce over this reducer's partition: called once when the input fits the
 * budget, else once per sub-partition by the partition keys (grace). */
static mr_code task_reduce_fn(const config *c, script *s, const task_spec *t, task_result *r,
                              task_errors *te, task_out *o, mr_err *e)
{
    char **paths = task_fetch_all(t, e);
    if (!paths) return e->code;
    task_reduce_call call = {.s = s, .o = o};
    task_init_script_task(c, t, &call.st, te);
    const char *const *keys = NULL;
    size_t nkeys = script_partition_keys(s, &keys);
    grace_stats st = {0};
    mr_code code = grace_run((const char *const *)paths, t->ninputs, t->index, keys, nkeys,
                             c->memory_budget, task_scratch, task_reduce_call_fn, &call, &st, e);
    task_fetched_free(t, paths);
    if (st.depth > 0)
        fprintf(stderr, "[reduce %d] %.1f MB of input over the memory budget: reduce ran on %d "
                "sub-partitions by key\n", t->index, st.spilled_bytes / 1e6, st.calls);
    r->spilled_bytes = st.spilled_bytes;
    r->records_in = st.rows_in;
    return code;
}

/* No reduce to run (a publish, or a job without reduce): the rows are copied through a
 * row group at a time. */
static mr_code task_copy_rows(const task_spec *t, task_result *r, task_out *o, mr_err *e)
{
    char **paths = task_fetch_all(t, e);
    if (!paths) return e->code;
    int partition = t->kind == TASK_REDUCE ? t->index : -1;
    frame *schema = shuffle_schema((const char *const *)paths, t->ninputs, e);
    mr_code code = schema ? MR_OK : e->code;
    int output_failed = 0;   /* the output's failure is not the intermediate's */
    for (size_t i = 0; code == MR_OK && i < t->ninputs; i++) {
        imf_reader *rd = imf_reader_open(paths[i], e);
        if (!rd) code = e->code;
        while (code == MR_OK) {
            frame *g = NULL;
            if ((code = imf_reader_next(rd, partition, &g, e)) != MR_OK || !g) break;
            r->records_in += frame_nrows(g);
            code = shuffle_conform(schema, &g, e);
            if (code == MR_OK) output_failed = (code = task_out_append(o, g, e)) != MR_OK;
            frame_free(g);
        }
        imf_reader_free(rd);
        if (code != MR_OK && !output_failed) mr_wrap(e, "reading intermediate %s: ", t->inputs[i]);
    }
    /* nothing at all still makes an (empty) output */
    if (code == MR_OK && r->records_in == 0) code = task_out_append(o, schema, e);
    frame_free(schema);
    task_fetched_free(t, paths);
    return code;
}

/* The rows of a reduce or publish task into o: the declared group-by, the merge of
 * sorted parts, the script's reduce, or a copy. */
static mr_code task_reduce_rows(const config *c, script *s, const task_spec *t, task_result *r,
                                task_errors *te, task_out *o, mr_err *e)
{
    const script_groupby *g = script_declared_groupby(s);
    const ops_sort_key *okeys;
    size_t nokeys = script_order_keys(s, &okeys);
    if (t->kind == TASK_REDUCE && g) return task_reduce_declared(c, g, t, r, o, e);
    if (t->kind == TASK_PUBLISH && t->ninputs > 1 && nokeys)
        return task_publish_sorted(c, okeys, nokeys, t, r, o, e);
    if (t->kind == TASK_PUBLISH && t->ninputs > 1 && g) {
        ops_sort_key gkeys[g->nkeys + 1];
        for (size_t k = 0; k < g->nkeys; k++) gkeys[k] = (ops_sort_key){g->keys[k], 0};
        return task_publish_sorted(c, gkeys, g->nkeys, t, r, o, e);
    }
    if (t->kind == TASK_REDUCE && script_has(s, "reduce"))
        return task_reduce_fn(c, s, t, r, te, o, e);
    return task_copy_rows(t, r, o, e);
}

static mr_code task_reduce(const config *c, script *s, const task_spec *t, task_result *r,
                           task_errors *te, mr_err *e)
{
    task_out o;
    MR_TRY(task_out_open(c, t, &o, e));
    mr_code code = t->kind == TASK_REDUCE ? task_out_order(c, s, &o, e) : MR_OK;
    if (code == MR_OK) code = task_reduce_rows(c, s, t, r, te, &o, e);
    if (code == MR_OK) code = task_out_commit(&o, e);
    r->spilled_bytes += o.spilled;
    r->records_out = o.rows;
    if (code == MR_OK) snprintf(r->output, sizeof r->output, "%s", t->output_uri);
    task_out_free(&o);
    return code;
}

void task_run(const config *c, script *s, const task_spec *t, task_result *r)
{
    mr_err err = {0};
    task_errors te = {c, t, NULL, 0};
    double start = task_now();
    mr_code code;
    memset(r, 0, sizeof *r);
    strcpy(r->counters, "{}");

    uint64_t retries_before = s3_retry_count();
    /* freed buffers kept for the next task count against this one's budget */
    frame_buf_set_cache_limit((size_t)(c->memory_budget / 8));
    code = task_scratch_create(t, &err);
    if (code == MR_OK)
        code = t->kind == TASK_MAP ? task_map(c, s, t, r, &te, &err)
                                   : task_reduce(c, s, t, r, &te, &err);
    task_scratch_remove();
    r->storage_retries = s3_retry_count() - retries_before;
    if (te.out) {
        mr_err cerr = {0};
        /* Bad records are published even when the task fails: they explain why. */
        if (sink_commit(te.out, &cerr) != MR_OK && code == MR_OK) {
            code = cerr.code;
            err = cerr;
        }
        sink_free(te.out);
    }
    if (s) task_collect_counters(s, r);
    r->bad_records = te.count;
    r->seconds = task_now() - start;
    r->code = code;
    if (code != MR_OK) {
        r->failed = 1;
        snprintf(r->error, sizeof r->error, "%s", err.msg[0] ? err.msg : mr_code_name(code));
    }
}

int task_kind_parse(const char *name, task_kind *out)
{
    static const task_kind kinds[] = {TASK_MAP, TASK_REDUCE, TASK_PUBLISH};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(name, task_kind_name(kinds[i])) == 0) {
            *out = kinds[i];
            return 0;
        }
    return -1;
}

char *task_result_to_json(const task_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", !r->failed);
    cJSON_AddNumberToObject(o, "recordsIn", (double)r->records_in);
    cJSON_AddNumberToObject(o, "recordsOut", (double)r->records_out);
    cJSON_AddNumberToObject(o, "badRecords", (double)r->bad_records);
    cJSON_AddNumberToObject(o, "bytesIn", (double)r->bytes_in);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddNumberToObject(o, "skippedRecords", (double)r->skipped_records);
    cJSON_AddNumberToObject(o, "storageRetries", (double)r->storage_retries);
    cJSON_AddNumberToObject(o, "spilledBytes", (double)r->spilled_bytes);
    cJSON_AddStringToObject(o, "output", r->output);
    cJSON *counters = cJSON_Parse(r->counters);
    cJSON_AddItemToObject(o, "counters", counters ? counters : cJSON_CreateObject());
    if (r->failed) {
        cJSON_AddStringToObject(o, "errorType", mr_code_name(r->code));
        cJSON_AddNumberToObject(o, "errorCode", r->code);
        cJSON_AddStringToObject(o, "errorMessage", r->error);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static double task_json_num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void task_json_str(const cJSON *o, const char *name, char *dst, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    snprintf(dst, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

mr_code task_result_from_json(const char *json, task_result *r, mr_err *e)
{
    cJSON *o = cJSON_Parse(json);
    MR_CHECK(cJSON_IsObject(o), e, MR_EFORMAT, "task result is not a JSON object: %.200s", json);
    memset(r, 0, sizeof *r);
    r->failed = !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"));
    r->records_in = (uint64_t)task_json_num(o, "recordsIn");
    r->records_out = (uint64_t)task_json_num(o, "recordsOut");
    r->bad_records = (uint64_t)task_json_num(o, "badRecords");
    r->bytes_in = (uint64_t)task_json_num(o, "bytesIn");
    r->seconds = task_json_num(o, "seconds");
    r->skipped_records = (uint64_t)task_json_num(o, "skippedRecords");
    r->storage_retries = (uint64_t)task_json_num(o, "storageRetries");
    r->spilled_bytes = (uint64_t)task_json_num(o, "spilledBytes");
    task_json_str(o, "output", r->output, sizeof r->output);
    char *counters = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, "counters"));
    snprintf(r->counters, sizeof r->counters, "%s", counters ? counters : "{}");
    free(counters);
    if (r->failed) {
        r->code = (mr_code)task_json_num(o, "errorCode");
        if (r->code == MR_OK) r->code = MR_EIO;
        task_json_str(o, "errorMessage", r->error, sizeof r->error);
    }
    cJSON_Delete(o);
    return MR_OK;
}
