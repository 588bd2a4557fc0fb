#include "plan.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../connectors/storage.h"
#include "../connectors/stream.h"

static mr_code plan_push(plan *p, const char *uri, uint64_t size, mr_err *e)
{
    if ((p->n & (p->n - 1)) == 0) {   /* grow at powers of two */
        size_t cap = p->n ? p->n * 2 : 16;
        plan_input *in = realloc(p->inputs, cap * sizeof *in);
        MR_CHECK(in, e, MR_ENOMEM, "out of memory planning tasks");
        p->inputs = in;
    }
    plan_input *in = &p->inputs[p->n];
    memset(in, 0, sizeof *in);
    in->uri = strdup(uri);
    MR_CHECK(in->uri, e, MR_ENOMEM, "out of memory planning tasks");
    in->size = size;
    p->n++;
    return MR_OK;
}

static mr_code plan_push_listed(const char *uri, uint64_t size, void *ud)
{
    const char *base = strrchr(uri, '/');
    base = base ? base + 1 : uri;
    /* Hidden files are our own temporaries (or an editor's); never inputs. */
    if (base[0] == '.' || base[0] == '_') return MR_OK;
    return plan_push(ud, uri, size, NULL);
}

static int plan_has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static mr_code plan_expand_remote(plan *p, const char *entry, mr_err *e)
{
    uint64_t size = 0;
    size_t before = p->n;
    size_t len = strlen(entry);
    if (len && entry[len - 1] != '/') {
        int st = storage_stat(entry, &size, e);
        if (st < 0) return e ? e->code : MR_EIO;
        if (st == 1) return plan_push(p, entry, size, e);
    }
    MR_TRY(storage_list(entry, plan_push_listed, p, e));
    MR_CHECK(p->n > before, e, MR_ENOTFOUND,
             "manifest entry '%s' matches no object (neither a key nor a prefix)", entry);
    return MR_OK;
}

static mr_code plan_expand_local(plan *p, const char *entry, mr_err *e)
{
    struct stat st;
    size_t before = p->n;
    if (plan_has_glob(entry)) {
        glob_t g;
        int rc = glob(entry, 0, NULL, &g);
        if (rc == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++) {
                mr_code c = plan_expand_local(p, g.gl_pathv[i], e);
                if (c != MR_OK) { globfree(&g); return c; }
            }
        }
        globfree(&g);
        MR_CHECK(p->n > before, e, MR_ENOTFOUND, "manifest entry '%s' matches no file", entry);
        return MR_OK;
    }
    MR_CHECK(stat(entry, &st) == 0, e, MR_ENOTFOUND, "manifest entry '%s': no such file or folder",
             entry);
    if (S_ISDIR(st.st_mode)) {
        MR_TRY(storage_list(entry, plan_push_listed, p, e));
        MR_CHECK(p->n > before, e, MR_ENOTFOUND, "manifest entry '%s': folder has no files", entry);
        return MR_OK;
    }
    return plan_push(p, entry, (uint64_t)st.st_size, e);
}

static mr_code plan_expand(plan *p, const char *entry, mr_err *e)
{
    if (storage_is_remote(entry)) return plan_expand_remote(p, entry, e);
    return plan_expand_local(p, entry, e);
}

/* Folder part of a manifest file's URI, with its trailing '/', so that relative lines
 * resolve against it. */
static char *plan_dirname(const char *uri)
{
    const char *slash = strrchr(uri, '/');
    if (!slash) return strdup("");
    return strndup(uri, (size_t)(slash - uri + 1));
}

static mr_code plan_read_manifest_file(plan *p, const char *uri, mr_err *e)
{
    stream *s = stream_open(uri, e);
    if (!s) return mr_wrap(e, "manifestFile: ");
    char *dir = plan_dirname(uri);
    const char *line;
    size_t len;
    int rc;
    mr_code code = MR_OK;
    while (code == MR_OK && (rc = stream_readline(s, &line, &len, e)) == 1) {
        while (len && (line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
        while (len && (*line == ' ' || *line == '\t')) { line++; len--; }
        if (len == 0 || line[0] == '#') continue;
        char *entry = strndup(line, len);
        char *full = NULL;
        if (entry[0] != '/' && !storage_is_remote(entry)) full = storage_join(dir, entry);
        code = plan_expand(p, full ? full : entry, e);
        free(full);
        free(entry);
    }
    if (code == MR_OK && rc < 0) code = e ? e->code : MR_EIO;
    free(dir);
    stream_close(s);
    return code;
}

/* Splits each plain (uncompressed, line-oriented) input larger than split_size into
 * byte ranges; the reader gives each record to the split where it starts. */
static mr_code plan_split(plan *p, uint64_t split_size, mr_err *e)
{
    plan out = {0};
    out.files = p->n;
    for (size_t i = 0; i < p->n; i++) {
        plan_input *in = &p->inputs[i];
        size_t nlen = strlen(in->uri);
        int compressed = nlen > 3 && strcmp(in->uri + nlen - 3, ".gz") == 0;
        if (compressed || in->size <= split_size) {
            MR_TRY(plan_push(&out, in->uri, in->size, e));
            continue;
        }
        for (uint64_t off = 0; off < in->size; off += split_size) {
            MR_TRY(plan_push(&out, in->uri, in->size, e));
            out.inputs[out.n - 1].range_start = off;
            out.inputs[out.n - 1].range_end = off + split_size < in->size ? off + split_size : in->size;
        }
    }
    plan_clear(p);
    *p = out;
    return MR_OK;
}

mr_code plan_build(const config *c, plan *p, mr_err *e)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < c->nmanifest; i++) MR_TRY(plan_expand(p, c->manifest[i], e));
    if (c->manifest_file) MR_TRY(plan_read_manifest_file(p, c->manifest_file, e));
    MR_CHECK(p->n > 0, e, MR_ENOTFOUND, "readConnector: the manifest lists no input files");
    p->files = p->n;
    if (c->split_size > 0 && strcmp(c->read_format, "warc") != 0)
        MR_TRY(plan_split(p, c->split_size, e));
    return MR_OK;
}

void plan_clear(plan *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) free(p->inputs[i].uri);
    free(p->inputs);
    memset(p, 0, sizeof *p);
}
