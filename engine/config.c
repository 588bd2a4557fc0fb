/* config: parsing and validation of the dataset config (see config.h, docs/config.md).
 * Every field is looked up from a table of known keys per object so that a typo is an
 * error with a suggestion instead of a silently ignored setting. */
#include "config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (4u << 20)
#define MB ((uint64_t)1 << 20)

/* Parsing context: the error sink and the label errors start with. */
typedef struct pctx {
    config *c;
    mr_err *e;
    const char *src;   /* config path, or "config" for inline text */
} pctx;

static mr_code bad(pctx *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static mr_code bad(pctx *p, const char *path, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mr_fail(p->e, MR_EINVAL, "%s: %s: %s", p->src, path, what);
}

static mr_code nomem(pctx *p) { return mr_fail(p->e, MR_ENOMEM, "%s: out of memory", p->src); }

/* "a string 'x'", "the number 4", ... for "expected ..., got ..." messages. */
static void describe(const cJSON *v, char *out, size_t cap)
{
    if (cJSON_IsString(v)) snprintf(out, cap, "the string '%.60s'", v->valuestring);
    else if (cJSON_IsNumber(v)) snprintf(out, cap, "the number %.17g", v->valuedouble);
    else if (cJSON_IsBool(v)) snprintf(out, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v)) snprintf(out, cap, "null");
    else if (cJSON_IsArray(v)) snprintf(out, cap, "an array");
    else snprintf(out, cap, "an object");
}

static void join_path(char *out, size_t cap, const char *parent, const char *key)
{
    if (parent && *parent) snprintf(out, cap, "%s.%s", parent, key);
    else snprintf(out, cap, "%s", key);
}

/* ---- unknown keys ---- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Fails on a key not in known (with the closest known key as a hint) or a repeated key. */
static mr_code check_keys(pctx *p, const cJSON *obj, const char *path,
                          const char *const *known)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        char where[256];
        join_path(where, sizeof where, path, it->string);
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (strcmp(prev->string, it->string) == 0)
                return bad(p, where, "field given twice");
        int found = 0;
        for (size_t k = 0; known[k] && !found; k++) found = strcmp(known[k], it->string) == 0;
        if (found) continue;
        const char *best = NULL;
        size_t bestd = SIZE_MAX;
        for (size_t k = 0; known[k]; k++) {
            size_t d = edit_distance(it->string, known[k]);
            if (d < bestd) {
                bestd = d;
                best = known[k];
            }
        }
        size_t len = strlen(it->string), allow = len / 3 > 2 ? len / 3 : 2;
        if (best && bestd <= allow) return bad(p, where, "unknown field (did you mean '%s'?)", best);
        char list[512] = "";
        for (size_t k = 0; known[k]; k++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", known[k]);
        }
        return bad(p, where, "unknown field (known fields here: %s)", list);
    }
    return MR_OK;
}

/* ---- typed getters: absent fields leave *out alone ---- */

static const cJSON *field(const cJSON *obj, const char *key)
{
    return obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static mr_code get_object(pctx *p, const cJSON *obj, const char *key, const char *parent,
                          const cJSON **out)
{
    const cJSON *v = field(obj, key);
    *out = NULL;
    if (!v) return MR_OK;
    char where[256], got[96];
    join_path(where, sizeof where, parent, key);
    describe(v, got, sizeof got);
    if (!cJSON_IsObject(v)) return bad(p, where, "expected an object, got %s", got);
    *out = v;
    return MR_OK;
}

static mr_code get_string(pctx *p, const cJSON *obj, const char *key, const char *parent,
                          char **out)
{
    const cJSON *v = field(obj, key);
    if (!v) return MR_OK;
    char where[256], got[96];
    join_path(where, sizeof where, parent, key);
    describe(v, got, sizeof got);
    if (!cJSON_IsString(v)) return bad(p, where, "expected a string, got %s", got);
    if (!v->valuestring[0]) return bad(p, where, "expected a non-empty string");
    char *s = strdup(v->valuestring);
    if (!s) return nomem(p);
    free(*out);
    *out = s;
    return MR_OK;
}

static mr_code get_bool(pctx *p, const cJSON *obj, const char *key, const char *parent,
                        int *out)
{
    const cJSON *v = field(obj, key);
    if (!v) return MR_OK;
    char where[256], got[96];
    join_path(where, sizeof where, parent, key);
    describe(v, got, sizeof got);
    if (!cJSON_IsBool(v)) return bad(p, where, "expected true or false, got %s", got);
    *out = cJSON_IsTrue(v);
    return MR_OK;
}

static mr_code get_int(pctx *p, const cJSON *obj, const char *key, const char *parent,
                       int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = field(obj, key);
    if (!v) return MR_OK;
    char where[256], got[96];
    join_path(where, sizeof where, parent, key);
    describe(v, got, sizeof got);
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < -9.0e15 || d > 9.0e15)
        return bad(p, where, "expected an integer from %lld to %lld, got %s", (long long)lo,
                   (long long)hi, got);
    if (d < (double)lo || d > (double)hi)
        return bad(p, where, "expected an integer from %lld to %lld, got %s", (long long)lo,
                   (long long)hi, got);
    *out = (int64_t)d;
    return MR_OK;
}

static mr_code get_int32(pctx *p, const cJSON *obj, const char *key, const char *parent,
                         int lo, int hi, int *out)
{
    int64_t v = *out;
    MR_TRY(get_int(p, obj, key, parent, lo, hi, &v));
    *out = (int)v;
    return MR_OK;
}

/* One of a fixed set of words; *out is set to a copy of the canonical spelling. */
static mr_code get_enum(pctx *p, const cJSON *obj, const char *key, const char *parent,
                        const char *const *allowed, char **out)
{
    const cJSON *v = field(obj, key);
    if (!v) return MR_OK;
    char where[256], got[96], list[256] = "";
    join_path(where, sizeof where, parent, key);
    describe(v, got, sizeof got);
    for (size_t k = 0; allowed[k]; k++) {
        if (cJSON_IsString(v) && strcmp(v->valuestring, allowed[k]) == 0) {
            char *s = strdup(allowed[k]);
            if (!s) return nomem(p);
            free(*out);
            *out = s;
            return MR_OK;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", allowed[k]);
    }
    return bad(p, where, "expected one of %s, got %s", list, got);
}

/* Bytes: an integer, or a string with a binary unit ("64MB", "1.5 GiB", "512k"). */
static mr_code get_size(pctx *p, const cJSON *obj, const char *key, const char *parent,
                        uint64_t *out)
{
    const cJSON *v = field(obj, key);
    if (!v) return MR_OK;
    char where[256], got[96];
    join_path(where, sizeof where, parent, key);
    describe(v, got, sizeof got);
    if (cJSON_IsNumber(v)) {
        int64_t n = 0;
        MR_TRY(get_int(p, obj, key, parent, 0, INT64_C(1) << 50, &n));
        *out = (uint64_t)n;
        return MR_OK;
    }
    if (!cJSON_IsString(v))
        return bad(p, where, "expected a byte count (a number, or a string like \"64MB\"), "
                   "got %s", got);
    char *end;
    errno = 0;
    double num = strtod(v->valuestring, &end);
    while (*end == ' ') end++;
    static const struct { const char *unit; double mult; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1024.0}, {"kb", 1024.0}, {"kib", 1024.0},
        {"m", 1048576.0}, {"mb", 1048576.0}, {"mib", 1048576.0},
        {"g", 1073741824.0}, {"gb", 1073741824.0}, {"gib", 1073741824.0},
        {"t", 1099511627776.0}, {"tb", 1099511627776.0}, {"tib", 1099511627776.0},
    };
    if (end != v->valuestring && errno == 0 && num >= 0 && isfinite(num)) {
        for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
            if (strcasecmp(end, units[k].unit) != 0) continue;
            double bytes = num * units[k].mult;
            if (bytes <= (double)(INT64_C(1) << 50)) {
                *out = (uint64_t)bytes;
                return MR_OK;
            }
        }
    }
    return bad(p, where, "expected a byte count like 134217728, \"128MB\" or \"1GB\", got %s",
               got);
}

/* ---- paths ---- */

static int path_is_absolute(const char *s)
{
    return s[0] == '/' || strstr(s, "://") != NULL;
}

/* Relative paths are taken from the config's folder, so a job folder can move as a whole. */
static char *resolve(const char *dir, const char *path)
{
    if (path_is_absolute(path) || !dir || !*dir) return strdup(path);
    while (path[0] == '.' && path[1] == '/') path += 2;
    size_t ld = strlen(dir);
    int slash = ld > 0 && dir[ld - 1] == '/';
    if (!*path || strcmp(path, ".") == 0) return slash ? strdup(dir) : strndup(dir, ld);
    size_t n = ld + strlen(path) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s%s%s", dir, slash ? "" : "/", path);
    return out;
}

static mr_code resolve_in_place(pctx *p, char **s)
{
    if (!*s) return MR_OK;
    char *r = resolve(p->c->dir, *s);
    if (!r) return nomem(p);
    free(*s);
    *s = r;
    return MR_OK;
}

/* ---- sections ---- */

static const char *const READ_FORMATS[] = {"lines", "csv", "tsv", "jsonl", "warc", NULL};
static const char *const WRITE_FORMATS[] = {"json", "jsonl", "csv", NULL};
static const char *const EXECUTORS[] = {"local", "lambda", NULL};

static mr_code parse_manifest(pctx *p, const cJSON *rc)
{
    const cJSON *m = field(rc, "manifest");
    if (!m) return MR_OK;
    char got[96];
    describe(m, got, sizeof got);
    if (cJSON_IsString(m)) {
        if (!m->valuestring[0])
            return bad(p, "readConnector.manifest", "expected a non-empty path");
        p->c->manifest = calloc(1, sizeof *p->c->manifest);
        if (!p->c->manifest || !(p->c->manifest[0] = resolve(p->c->dir, m->valuestring)))
            return nomem(p);
        p->c->nmanifest = 1;
        return MR_OK;
    }
    if (!cJSON_IsArray(m))
        return bad(p, "readConnector.manifest",
                   "expected a path or an array of paths (files, folders, globs, s3:// "
                   "prefixes), got %s", got);
    size_t n = (size_t)cJSON_GetArraySize(m);
    p->c->manifest = calloc(n ? n : 1, sizeof *p->c->manifest);
    if (!p->c->manifest) return nomem(p);
    size_t i = 0;
    for (const cJSON *it = m->child; it; it = it->next, i++) {
        char where[64];
        snprintf(where, sizeof where, "readConnector.manifest[%zu]", i);
        describe(it, got, sizeof got);
        if (!cJSON_IsString(it) || !it->valuestring[0])
            return bad(p, where, "expected a non-empty path string, got %s", got);
        if (!(p->c->manifest[i] = resolve(p->c->dir, it->valuestring))) return nomem(p);
        p->c->nmanifest = i + 1;
    }
    return MR_OK;
}

static mr_code parse_columns(pctx *p, const cJSON *rc)
{
    static const char *const KEYS[] = {"name", "type", NULL};
    const cJSON *cols = field(rc, "columns");
    if (!cols) return MR_OK;
    char got[96];
    describe(cols, got, sizeof got);
    if (!cJSON_IsArray(cols))
        return bad(p, "readConnector.columns",
                   "expected an array of {\"name\": ..., \"type\": ...}, got %s", got);
    size_t n = (size_t)cJSON_GetArraySize(cols);
    p->c->columns = calloc(n ? n : 1, sizeof *p->c->columns);
    if (!p->c->columns) return nomem(p);
    size_t i = 0;
    for (const cJSON *it = cols->child; it; it = it->next, i++) {
        char where[64];
        snprintf(where, sizeof where, "readConnector.columns[%zu]", i);
        describe(it, got, sizeof got);
        if (!cJSON_IsObject(it))
            return bad(p, where, "expected an object {\"name\": ..., \"type\": ...}, got %s",
                       got);
        MR_TRY(check_keys(p, it, where, KEYS));
        config_column *col = &p->c->columns[i];
        p->c->ncolumns = i + 1;
        char *type = NULL;
        MR_TRY(get_string(p, it, "name", where, &col->name));
        if (!col->name) return bad(p, where, "missing \"name\"");
        for (size_t k = 0; k < i; k++)
            if (strcmp(p->c->columns[k].name, col->name) == 0)
                return bad(p, where, "column '%s' is listed twice", col->name);
        mr_code rc2 = get_string(p, it, "type", where, &type);
        if (rc2 != MR_OK) return rc2;
        if (!type) return bad(p, where, "missing \"type\"");
        int ok = frame_type_parse(type, &col->type) == 0;
        if (!ok) {
            char tw[96];
            snprintf(tw, sizeof tw, "%s.type", where);
            bad(p, tw, "expected one of int64, float64, bool, string, got the string '%.60s'",
                type);
        }
        free(type);
        if (!ok) return MR_EINVAL;
    }
    return MR_OK;
}

static mr_code parse_read(pctx *p, const cJSON *root)
{
    static const char *const KEYS[] = {"manifest", "manifestFile", "format", "csv",
                                       "columns", "splitSize", NULL};
    static const char *const CSV_KEYS[] = {"delimiter", "header", NULL};
    const cJSON *rc, *csv;
    config *c = p->c;
    MR_TRY(get_object(p, root, "readConnector", "", &rc));
    if (!rc) return MR_OK;
    MR_TRY(check_keys(p, rc, "readConnector", KEYS));
    MR_TRY(parse_manifest(p, rc));
    MR_TRY(get_string(p, rc, "manifestFile", "readConnector", &c->manifest_file));
    MR_TRY(resolve_in_place(p, &c->manifest_file));
    MR_TRY(get_enum(p, rc, "format", "readConnector", READ_FORMATS, &c->read_format));
    if (c->read_format && strcmp(c->read_format, "tsv") == 0) c->delimiter = '\t';
    MR_TRY(get_object(p, rc, "csv", "readConnector", &csv));
    if (csv) {
        const char *fmt = c->read_format ? c->read_format : "lines";
        if (strcmp(fmt, "csv") != 0 && strcmp(fmt, "tsv") != 0)
            return bad(p, "readConnector.csv", "only applies to format csv or tsv (format is "
                       "%s)", fmt);
        MR_TRY(check_keys(p, csv, "readConnector.csv", CSV_KEYS));
        const cJSON *d = field(csv, "delimiter");
        if (d) {
            char got[96];
            describe(d, got, sizeof got);
            if (!cJSON_IsString(d) || strlen(d->valuestring) != 1)
                return bad(p, "readConnector.csv.delimiter",
                           "expected a single-character string such as \",\", \";\" or "
                           "\"\\t\", got %s", got);
            c->delimiter = d->valuestring[0];
        }
        MR_TRY(get_bool(p, csv, "header", "readConnector.csv", &c->header));
    }
    MR_TRY(parse_columns(p, rc));
    return get_size(p, rc, "splitSize", "readConnector", &c->split_size);
}

static mr_code parse_intermediate(pctx *p, const cJSON *root)
{
    static const char *const KEYS[] = {"location", "compressionLevel", NULL};
    const cJSON *o;
    MR_TRY(get_object(p, root, "intermediate", "", &o));
    if (!o) return MR_OK;
    MR_TRY(check_keys(p, o, "intermediate", KEYS));
    MR_TRY(get_string(p, o, "location", "intermediate", &p->c->intermediate));
    MR_TRY(resolve_in_place(p, &p->c->intermediate));
    return get_int32(p, o, "compressionLevel", "intermediate", 0, 9,
                     &p->c->intermediate_level);
}

static mr_code parse_write(pctx *p, const cJSON *root)
{
    static const char *const KEYS[] = {"location", "format", "gzip", NULL};
    const cJSON *o;
    MR_TRY(get_object(p, root, "writeConnector", "", &o));
    if (!o) return MR_OK;
    MR_TRY(check_keys(p, o, "writeConnector", KEYS));
    MR_TRY(get_string(p, o, "location", "writeConnector", &p->c->write_location));
    MR_TRY(resolve_in_place(p, &p->c->write_location));
    MR_TRY(get_enum(p, o, "format", "writeConnector", WRITE_FORMATS, &p->c->write_format));
    return get_bool(p, o, "gzip", "writeConnector", &p->c->write_gzip);
}

static mr_code parse_error(pctx *p, const cJSON *root)
{
    static const char *const KEYS[] = {"location", "maxBadRecords", "skipFailingRecords", NULL};
    const cJSON *o;
    MR_TRY(get_object(p, root, "errorConnector", "", &o));
    if (!o) return MR_OK;
    MR_TRY(check_keys(p, o, "errorConnector", KEYS));
    MR_TRY(get_string(p, o, "location", "errorConnector", &p->c->error_location));
    MR_TRY(resolve_in_place(p, &p->c->error_location));
    MR_TRY(get_int(p, o, "maxBadRecords", "errorConnector", -1, INT64_C(1) << 50,
                   &p->c->max_bad_records));
    return get_bool(p, o, "skipFailingRecords", "errorConnector", &p->c->skip_bad_map_records);
}

static mr_code parse_compute(pctx *p, const cJSON *root, int *attempts_set, int *memory_set)
{
    static const char *const KEYS[] = {"executor", "concurrency", "maxAttempts", "reducers",
                                       "memoryMB", "taskTimeoutSeconds", "function", "region",
                                       NULL};
    const cJSON *o;
    config *c = p->c;
    MR_TRY(get_object(p, root, "compute", "", &o));
    if (!o) return MR_OK;
    MR_TRY(check_keys(p, o, "compute", KEYS));
    MR_TRY(get_enum(p, o, "executor", "compute", EXECUTORS, &c->executor));
    MR_TRY(get_int32(p, o, "concurrency", "compute", 1, 100000, &c->concurrency));
    *attempts_set = field(o, "maxAttempts") != NULL;
    MR_TRY(get_int32(p, o, "maxAttempts", "compute", 1, 100, &c->max_attempts));
    MR_TRY(get_int32(p, o, "reducers", "compute", 1, 65536, &c->reducers));
    int64_t mem = 0;
    MR_TRY(get_int(p, o, "memoryMB", "compute", 16, INT64_C(1) << 24, &mem));
    *memory_set = mem > 0;
    if (mem > 0) c->memory_budget = (uint64_t)mem * MB;
    const cJSON *t = field(o, "taskTimeoutSeconds");
    if (t) {
        char got[96];
        describe(t, got, sizeof got);
        if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) || !isfinite(t->valuedouble))
            return bad(p, "compute.taskTimeoutSeconds",
                       "expected a number of seconds >= 0 (0 = no limit), got %s", got);
        c->task_timeout = t->valuedouble;
    }
    MR_TRY(get_string(p, o, "function", "compute", &c->function));
    return get_string(p, o, "region", "compute", &c->region);
}

/* ---- defaults and cross-field rules ---- */

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static uint64_t physical_ram(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || size <= 0) return (uint64_t)4096 * MB;
    return (uint64_t)pages * (uint64_t)size;
}

static mr_code set_default_str(pctx *p, char **field_, const char *value)
{
    if (*field_) return MR_OK;
    *field_ = strdup(value);
    return *field_ ? MR_OK : nomem(p);
}

/* The errors folder sits beside the output: inside it when the location is a folder
 * (ends with '/'), else next to the output file. */
static char *default_error_location(const char *write_location)
{
    size_t n = strlen(write_location);
    if (n && write_location[n - 1] == '/') return resolve(write_location, "_errors");
    const char *slash = strrchr(write_location, '/');
    if (!slash) return strdup("_errors");
    char *dir = strndup(write_location, (size_t)(slash - write_location + 1));
    if (!dir) return NULL;
    char *out = resolve(dir, "_errors");
    free(dir);
    return out;
}

static mr_code apply_defaults(pctx *p, int attempts_set, int memory_set)
{
    config *c = p->c;
    int lambda = strcmp(c->executor, "lambda") == 0;
    if (!c->intermediate) {
        char rel[512];
        snprintf(rel, sizeof rel, ".luamr/%s", c->name);
        if (!(c->intermediate = resolve(c->dir, rel))) return nomem(p);
    }
    if (!c->write_location && !(c->write_location = resolve(c->dir, "output/"))) return nomem(p);
    if (!c->error_location && !(c->error_location = default_error_location(c->write_location)))
        return nomem(p);
    if (!attempts_set) c->max_attempts = lambda ? 3 : 1;
    if (!memory_set) {
        if (lambda) c->memory_budget = 1024 * MB;
        else {
            uint64_t share = physical_ram() / 4 * 3 / (uint64_t)c->concurrency;
            share -= share % MB;   /* whole MB, as the JSON field says */
            c->memory_budget = share < 64 * MB ? 64 * MB : share;
        }
    }
    if (c->split_size == CONFIG_SPLIT_AUTO) {
        /* Spark's 128 MB, or less where a split's frame would crowd the budget */
        uint64_t auto_split = c->memory_budget / 8;
        auto_split -= auto_split % MB;
        c->split_size = auto_split > 128 * MB ? 128 * MB : auto_split < MB ? MB : auto_split;
    }
    /* Inside the function the budget is a share of its memory. (After the splits: the
     * driver, which plans them, does not know that memory, and every task must see the
     * same plan.) */
    const char *fn_mb = getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
    if (lambda && !memory_set && fn_mb && atol(fn_mb) >= 128)
        c->memory_budget = (uint64_t)atol(fn_mb) / 4 * 3 * MB;
    if (!c->region) {
        const char *r = getenv("AWS_REGION");
        if (!r || !*r) r = getenv("AWS_DEFAULT_REGION");
        if (r && *r && !(c->region = strdup(r))) return nomem(p);
    }
    return MR_OK;
}

static mr_code check_rules(pctx *p)
{
    config *c = p->c;
    if (c->mode != CONFIG_REDUCER_ONLY && c->nmanifest == 0 && !c->manifest_file)
        return bad(p, "readConnector", "taskMode %s reads input: give readConnector.manifest "
                   "(paths, folders, globs or s3:// prefixes) or readConnector.manifestFile",
                   config_mode_name(c->mode));
    if (strcmp(c->executor, "lambda") == 0 && !c->function)
        return bad(p, "compute.function", "required when compute.executor is lambda (the "
                   "name or ARN of the deployed luamr function)");
    return MR_OK;
}

/* S3 keys are names, not paths: "s3://b/data/../x" (also what a relative "../x" in a
 * config on S3 resolves to) is a key of its own, not "s3://b/x". Refused here, naming the
 * field, before anything runs (the S3 connector refuses such keys too). */
static mr_code check_s3_key(pctx *p, const char *field, const char *uri)
{
    if (!uri || strncmp(uri, "s3://", 5) != 0) return MR_OK;
    for (const char *k = uri + 5; *k;) {
        size_t n = strcspn(k, "/");
        if (n == 2 && k[0] == '.' && k[1] == '.')
            return bad(p, field, "'%s' has a '..' segment: S3 keys are names, not paths, so it "
                       "would not mean the parent folder (write the full key; a relative path "
                       "in a config on S3 cannot climb above the config's folder)", uri);
        k += n;
        if (*k == '/') k++;
    }
    return MR_OK;
}

static mr_code check_s3_keys(pctx *p)
{
    const config *c = p->c;
    MR_TRY(check_s3_key(p, "script", c->script));
    for (size_t i = 0; i < c->nmanifest; i++)
        MR_TRY(check_s3_key(p, "readConnector.manifest", c->manifest[i]));
    MR_TRY(check_s3_key(p, "readConnector.manifestFile", c->manifest_file));
    MR_TRY(check_s3_key(p, "intermediate.location", c->intermediate));
    MR_TRY(check_s3_key(p, "writeConnector.location", c->write_location));
    return check_s3_key(p, "errorConnector.location", c->error_location);
}

const char *config_bad_name_char(const char *name)
{
    for (const char *s = name; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') return s;
    return NULL;
}

static mr_code parse_root(pctx *p, const cJSON *root)
{
    static const char *const KEYS[] = {"name", "description", "script", "taskMode",
                                       "readConnector", "intermediate", "writeConnector",
                                       "errorConnector", "compute", NULL};
    static const char *const MODES[] = {"MAPPER_AND_REDUCER", "MAPPER_ONLY", "REDUCER_ONLY",
                                        NULL};
    config *c = p->c;
    MR_TRY(check_keys(p, root, "", KEYS));
    MR_TRY(get_string(p, root, "name", "", &c->name));
    if (!c->name) return bad(p, "name", "required (a job name such as \"wordcount\")");
    if (config_bad_name_char(c->name))
        return bad(p, "name", "expected letters, digits, '-', '_' or '.' (it names "
                   "folders), got '%s'", c->name);
    if (c->name[0] == '.' || !c->name[0])
        return bad(p, "name", "cannot be empty or start with '.' (it names folders such as "
                   ".luamr/<name>; '..' would be the config's own folder), got '%s'", c->name);
    MR_TRY(get_string(p, root, "description", "", &c->description));
    MR_TRY(get_string(p, root, "script", "", &c->script));
    if (!c->script) return bad(p, "script", "required (the path of the job's Lua script)");
    MR_TRY(resolve_in_place(p, &c->script));
    char *mode = NULL;
    mr_code rc = get_enum(p, root, "taskMode", "", MODES, &mode);
    if (rc != MR_OK) return rc;
    if (mode) {
        for (int m = 0; MODES[m]; m++)
            if (strcmp(mode, MODES[m]) == 0) c->mode = (config_mode)m;
        free(mode);
    }
    MR_TRY(parse_read(p, root));
    MR_TRY(parse_intermediate(p, root));
    MR_TRY(parse_write(p, root));
    MR_TRY(parse_error(p, root));
    int attempts_set = 0, memory_set = 0;
    MR_TRY(parse_compute(p, root, &attempts_set, &memory_set));
    MR_TRY(apply_defaults(p, attempts_set, memory_set));
    MR_TRY(check_s3_keys(p));
    return check_rules(p);
}

/* Pre-parse defaults; string defaults are filled after parsing (they depend on fields). */
static mr_code init_defaults(pctx *p)
{
    config *c = p->c;
    c->mode = CONFIG_MAPPER_AND_REDUCER;
    c->delimiter = ',';
    c->header = 1;
    c->intermediate_level = 1;
    c->max_bad_records = 0;
    c->concurrency = online_cpus();
    c->reducers = 1;
    c->split_size = CONFIG_SPLIT_AUTO;
    MR_TRY(set_default_str(p, &c->read_format, "lines"));
    MR_TRY(set_default_str(p, &c->write_format, "json"));
    return set_default_str(p, &c->executor, "local");
}

static void syntax_error(pctx *p, const char *text, const char *at)
{
    size_t line = 1, col = 1;
    for (const char *s = text; at && s < at && *s; s++) {
        if (*s == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char near[32] = "";
    if (at && *at) {
        size_t k = 0;
        for (; k < sizeof near - 1 && at[k] && at[k] != '\n'; k++) near[k] = at[k];
        near[k] = '\0';
    }
    mr_fail(p->e, MR_EINVAL, "%s: line %zu, column %zu: invalid JSON%s%s%s", p->src, line, col,
            *near ? " near '" : (at && !*at ? " (unexpected end of text)" : ""), near,
            *near ? "'" : "");
}

config *config_parse(const char *json_text, const char *path, const char *dir, mr_err *e)
{
    config *c = calloc(1, sizeof *c);
    MR_CHECK_NULL(c, e, MR_ENOMEM, "config: out of memory");
    pctx p = {c, e, path && *path ? path : "config"};
    char cwd[4096];
    if (!dir) dir = getcwd(cwd, sizeof cwd) ? cwd : ".";
    c->path = path ? strdup(path) : NULL;
    c->dir = strdup(dir);
    if ((path && !c->path) || !c->dir || init_defaults(&p) != MR_OK) {
        nomem(&p);
        config_free(c);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = json_text ? cJSON_ParseWithOpts(json_text, &end, 1) : NULL;
    if (!root) {
        if (!json_text) mr_fail(e, MR_EINVAL, "%s: no config text", p.src);
        else syntax_error(&p, json_text, end ? end : cJSON_GetErrorPtr());
        config_free(c);
        return NULL;
    }
    mr_code rc = cJSON_IsObject(root) ? parse_root(&p, root)
                                      : mr_fail(e, MR_EINVAL, "%s: expected a JSON object at "
                                                "the top level", p.src);
    cJSON_Delete(root);
    if (rc != MR_OK) {
        config_free(c);
        return NULL;
    }
    return c;
}

config *config_load(const char *path, mr_err *e)
{
    FILE *fp = fopen(path, "rb");
    MR_CHECK_NULL(fp, e, errno == ENOENT ? MR_ENOTFOUND : MR_EIO, "%s: cannot open config: %s",
                  path, strerror(errno));
    char *text = malloc(CONFIG_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, CONFIG_MAX_BYTES + 1, fp) : 0;
    int err = ferror(fp);
    fclose(fp);
    if (!text || err || n > CONFIG_MAX_BYTES) {
        free(text);
        mr_fail(e, !text ? MR_ENOMEM : err ? MR_EIO : MR_ELIMIT,
                "%s: %s", path, !text ? "out of memory" : err ? "read failed"
                : "config larger than 4 MB");
        return NULL;
    }
    text[n] = '\0';
    /* Relative paths resolve against the config's own folder, made absolute so they survive
     * a change of working directory. */
    char *abs = realpath(path, NULL);
    char *dir = NULL;
    if (abs) {
        char *slash = strrchr(abs, '/');
        dir = slash == abs ? strdup("/") : strndup(abs, (size_t)(slash - abs));
    }
    config *c = config_parse(text, path, dir ? dir : ".", e);
    free(dir);
    free(abs);
    free(text);
    return c;
}

void config_free(config *c)
{
    if (!c) return;
    free(c->path);
    free(c->dir);
    free(c->name);
    free(c->description);
    free(c->script);
    for (size_t i = 0; i < c->nmanifest; i++) free(c->manifest[i]);
    free(c->manifest);
    free(c->manifest_file);
    free(c->read_format);
    for (size_t i = 0; i < c->ncolumns; i++) free(c->columns[i].name);
    free(c->columns);
    free(c->intermediate);
    free(c->write_location);
    free(c->write_format);
    free(c->error_location);
    free(c->executor);
    free(c->function);
    free(c->region);
    free(c);
}

const char *config_mode_name(config_mode m)
{
    switch (m) {
    case CONFIG_MAPPER_AND_REDUCER: return "MAPPER_AND_REDUCER";
    case CONFIG_MAPPER_ONLY: return "MAPPER_ONLY";
    case CONFIG_REDUCER_ONLY: return "REDUCER_ONLY";
    }
    return "unknown";
}

/* ---- output ---- */

static void add_str(cJSON *o, const char *key, const char *v)
{
    if (v) cJSON_AddStringToObject(o, key, v);
}

char *config_to_json(const config *c)
{
    if (!c) return NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    add_str(root, "name", c->name);
    add_str(root, "description", c->description);
    add_str(root, "script", c->script);
    cJSON_AddStringToObject(root, "taskMode", config_mode_name(c->mode));

    cJSON *rc = cJSON_AddObjectToObject(root, "readConnector");
    if (rc && c->nmanifest) {
        cJSON *m = cJSON_AddArrayToObject(rc, "manifest");
        for (size_t i = 0; m && i < c->nmanifest; i++)
            cJSON_AddItemToArray(m, cJSON_CreateString(c->manifest[i]));
    }
    if (rc) {
        add_str(rc, "manifestFile", c->manifest_file);
        add_str(rc, "format", c->read_format);
        if (c->read_format && (!strcmp(c->read_format, "csv") || !strcmp(c->read_format, "tsv"))) {
            cJSON *csv = cJSON_AddObjectToObject(rc, "csv");
            char d[2] = {c->delimiter, '\0'};
            if (csv) {
                cJSON_AddStringToObject(csv, "delimiter", d);
                cJSON_AddBoolToObject(csv, "header", c->header);
            }
        }
        if (c->ncolumns) {
            cJSON *cols = cJSON_AddArrayToObject(rc, "columns");
            for (size_t i = 0; cols && i < c->ncolumns; i++) {
                cJSON *col = cJSON_CreateObject();
                if (!col) continue;
                cJSON_AddStringToObject(col, "name", c->columns[i].name);
                cJSON_AddStringToObject(col, "type", frame_type_name(c->columns[i].type));
                cJSON_AddItemToArray(cols, col);
            }
        }
        cJSON_AddNumberToObject(rc, "splitSize", (double)c->split_size);
    }
    cJSON *im = cJSON_AddObjectToObject(root, "intermediate");
    if (im) {
        add_str(im, "location", c->intermediate);
        cJSON_AddNumberToObject(im, "compressionLevel", c->intermediate_level);
    }
    cJSON *wc = cJSON_AddObjectToObject(root, "writeConnector");
    if (wc) {
        add_str(wc, "location", c->write_location);
        add_str(wc, "format", c->write_format);
        cJSON_AddBoolToObject(wc, "gzip", c->write_gzip);
    }
    cJSON *ec = cJSON_AddObjectToObject(root, "errorConnector");
    if (ec) {
        add_str(ec, "location", c->error_location);
        cJSON_AddNumberToObject(ec, "maxBadRecords", (double)c->max_bad_records);
        cJSON_AddBoolToObject(ec, "skipFailingRecords", c->skip_bad_map_records);
    }
    cJSON *cp = cJSON_AddObjectToObject(root, "compute");
    if (cp) {
        add_str(cp, "executor", c->executor);
        cJSON_AddNumberToObject(cp, "concurrency", c->concurrency);
        cJSON_AddNumberToObject(cp, "maxAttempts", c->max_attempts);
        cJSON_AddNumberToObject(cp, "reducers", c->reducers);
        cJSON_AddNumberToObject(cp, "memoryMB", (double)(c->memory_budget / MB));
        cJSON_AddNumberToObject(cp, "taskTimeoutSeconds", c->task_timeout);
        add_str(cp, "function", c->function);
        add_str(cp, "region", c->region);
    }
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    return out;
}
