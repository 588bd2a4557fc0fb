#include "task.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../connectors/reader.h"
#include "../connectors/sink.h"
#include "../connectors/storage.h"
#include "../connectors/writer.h"
#include "imf.h"
#include "ops.h"

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

/* A local file to write an intermediate to: the destination itself when it is local,
 * else a scratch file uploaded afterwards. */
static char *task_scratch_path(const char *uri, const char *tag)
{
    if (!storage_is_remote(uri)) return strdup(uri);
    const char *tmp = getenv("TMPDIR");
    char buf[512];
    snprintf(buf, sizeof buf, "%s/luamr-%d-%s", tmp && *tmp ? tmp : "/tmp", (int)getpid(), tag);
    return strdup(buf);
}

static mr_code task_write_intermediate(const config *c, const frame *f, const char *uri,
                                       mr_err *e)
{
    char *path = task_scratch_path(uri, "out.imf");
    mr_code code = sink_make_parents(path, e);
    imf_writer *w = code == MR_OK ? imf_writer_open(path, c->intermediate_level, e) : NULL;
    if (!w && code == MR_OK) code = e->code;
    if (code == MR_OK) code = imf_writer_add(w, f, 0, e);
    if (code == MR_OK) code = imf_writer_close(w, e);
    imf_writer_free(w);
    if (code == MR_OK && storage_is_remote(uri)) code = storage_put_file(path, uri, e);
    if (storage_is_remote(uri)) unlink(path);
    free(path);
    return code;
}

/* Reads one intermediate (downloading it first when remote) and appends it to *acc; the
 * first one read becomes *acc itself, so a single intermediate is never copied. */
static mr_code task_read_intermediate(const char *uri, int partition, frame **acc, mr_err *e)
{
    char *path = task_scratch_path(uri, "in.imf");
    mr_code code = MR_OK;
    if (storage_is_remote(uri)) code = storage_get_file(uri, path, e);
    frame *f = code == MR_OK ? imf_read_all(path, partition, e) : NULL;
    if (code == MR_OK && !f) code = e->code;
    if (code == MR_OK && !*acc) {
        *acc = f;
        f = NULL;
    } else if (code == MR_OK) {
        code = frame_append_frame(*acc, f, e);
    }
    frame_free(f);
    if (storage_is_remote(uri)) unlink(path);
    free(path);
    return code;
}

static mr_code task_write_output(const config *c, const frame *f, const char *uri, mr_err *e)
{
    writer_format fmt = WRITER_JSON;
    MR_CHECK(writer_format_parse(c->write_format, &fmt) == 0, e, MR_EINVAL,
             "writeConnector.format: unknown format '%s'", c->write_format);
    return writer_write_frame(f, uri, fmt, c->write_gzip, e);
}

static void task_init_script_task(const task_spec *t, script_task *st, task_errors *te)
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
}

static mr_code task_map(const config *c, script *s, const task_spec *t, task_result *r,
                        task_errors *te, mr_err *e)
{
    const char *names[c->ncolumns + 1];
    frame_type types[c->ncolumns + 1];
    reader_opts ro;
    script_task st;
    task_reader_opts(c, t, &ro, names, types);
    task_init_script_task(t, &st, te);
    st.input_uri = t->input->uri;
    st.format = c->read_format;
    st.ropts = &ro;

    frame *out = script_run_map(s, &st, e);
    r->records_in = st.records_in;
    r->bytes_in = st.bytes_in;
    if (!out) return e->code;
    if (script_has(s, "combine")) {
        st.kind = "combine";
        frame *combined = script_run_frame_fn(s, "combine", out, &st, e);
        frame_free(out);
        if (!combined) return e->code;
        out = combined;
    }
    r->records_out = frame_nrows(out);
    char *uri = task_intermediate_uri(t->run_dir, t->index);
    mr_code code = task_write_intermediate(c, out, uri, e);
    if (code == MR_OK) snprintf(r->output, sizeof r->output, "%s", uri);
    free(uri);
    frame_free(out);
    return code;
}

static mr_code task_gather(const task_spec *t, int partition, frame **acc, mr_err *e)
{
    for (size_t i = 0; i < t->ninputs; i++) {
        mr_code code = task_read_intermediate(t->inputs[i], partition, acc, e);
        if (code != MR_OK) return mr_wrap(e, "reading intermediate %s: ", t->inputs[i]);
    }
    if (!*acc) *acc = frame_create();
    MR_CHECK(*acc, e, MR_ENOMEM, "out of memory");
    return MR_OK;
}

static mr_code task_reduce(const config *c, script *s, const task_spec *t, task_result *r,
                           task_errors *te, mr_err *e)
{
    frame *all = NULL;
    mr_code code = task_gather(t, t->kind == TASK_REDUCE ? 0 : -1, &all, e);
    r->records_in = all ? frame_nrows(all) : 0;
    frame *out = all;
    if (code == MR_OK && t->kind == TASK_REDUCE && script_has(s, "reduce")) {
        script_task st;
        task_init_script_task(t, &st, te);
        out = script_run_frame_fn(s, "reduce", all, &st, e);
        if (!out) code = e->code;
    }
    if (code == MR_OK) {
        r->records_out = frame_nrows(out);
        code = task_write_output(c, out, t->output_uri, e);
        if (code == MR_OK) snprintf(r->output, sizeof r->output, "%s", t->output_uri);
    }
    if (out != all) frame_free(out);
    frame_free(all);
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

    code = t->kind == TASK_MAP ? task_map(c, s, t, r, &te, &err) : task_reduce(c, s, t, r, &te, &err);
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
