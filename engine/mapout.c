#include "mapout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imf.h"
#include "shuffle.h"

struct mapout {
    char *path;
    int level, nparts;
    const char *const *keys;
    size_t nkeys;
    frame *schema;        /* no rows: the current generation's columns; NULL before any */
    uint8_t *has_values;  /* per schema column: some non-null value was written */
    imf_writer *w;        /* the current generation */
    unsigned ngens;       /* generations closed so far */
    unsigned widenings;   /* schema changes */
    size_t buffer_bytes;  /* the writer's coalescing buffers (0: imf's default) */
    uint64_t rows;
};

static char *mo_gen_path(const mapout *m, unsigned gen)
{
    size_t n = strlen(m->path) + 16;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s.g%u", m->path, gen);
    return p;
}

mapout *mapout_create(const char *local_path, int level, int nparts, const char *const *keys,
                      size_t nkeys, size_t buffer_bytes, mr_err *e)
{
    mapout *m = calloc(1, sizeof *m);
    MR_CHECK_NULL(m, e, MR_ENOMEM, "out of memory");
    m->path = strdup(local_path);
    if (!m->path) {
        free(m);
        mr_fail(e, MR_ENOMEM, "out of memory");
        return NULL;
    }
    m->level = level;
    m->nparts = nparts > 0 ? nparts : 1;
    m->keys = keys;
    m->nkeys = nkeys;
    m->buffer_bytes = buffer_bytes;
    return m;
}

static mr_code mo_open_gen(mapout *m, mr_err *e)
{
    char *p = mo_gen_path(m, m->ngens);
    MR_CHECK(p, e, MR_ENOMEM, "out of memory");
    m->w = imf_writer_open(p, m->level, e);
    free(p);
    if (!m->w) return e->code;
    if (m->buffer_bytes) imf_writer_set_pending_max(m->w, m->buffer_bytes);
    return imf_writer_set_nparts(m->w, m->nparts, e);
}

static mr_code mo_close_gen(mapout *m, mr_err *e)
{
    mr_code rc = imf_writer_close(m->w, e);
    imf_writer_free(m->w);
    m->w = NULL;
    if (rc == MR_OK) m->ngens++;
    return rc;
}

/* The type column `name` takes when the batch column c (NULL: absent) meets the
 * current column s (NULL: new); -1 on a clash (e filled). */
static int mo_widened_type(const frame_col *s, int s_has_values, const frame_col *c,
                           mr_err *e)
{
    if (!c) return (int)s->type;
    if (!s) return (int)c->type;
    if (s->type == c->type || frame_col_all_null(c) ||
        (s->type == FRAME_F64 && c->type == FRAME_I64))
        return (int)s->type;
    if ((s->type == FRAME_I64 && c->type == FRAME_F64) || !s_has_values) return (int)c->type;
    mr_fail(e, MR_EINVAL, "map output: column '%s' is %s in the rows output so far and %s in a "
            "later batch: give it one type (readConnector.columns, or convert it in map)",
            c->name, frame_type_name(s->type), frame_type_name(c->type));
    return -1;
}

/* The schema that holds both the current one and f's columns (current columns first, in
 * their order, then f's new ones), with has_values updated: 1 when it differs from the
 * current schema (a new generation), 0 when f fits as it is, -1 on a clash. */
static int mo_widen(const mapout *m, const frame *f, frame **next, uint8_t *hv, mr_err *e)
{
    int changed = 0;
    size_t ns = frame_ncols(m->schema);
    *next = frame_create();
    if (!*next) return mr_fail(e, MR_ENOMEM, "out of memory"), -1;
    for (size_t i = 0; i < ns + frame_ncols(f); i++) {
        const frame_col *s = i < ns ? frame_col_at(m->schema, i) : NULL;
        const frame_col *c = s ? frame_col_by_name(f, s->name) : frame_col_at(f, i - ns);
        if (!s && frame_col_by_name(m->schema, c->name)) continue;
        int t = mo_widened_type(s, s && m->has_values[i], c, e);
        if (t < 0 || !frame_add_col(*next, s ? s->name : c->name, (frame_type)t, e)) return -1;
        size_t at = frame_ncols(*next) - 1;
        hv[at] = (uint8_t)((s && m->has_values[i]) || (c && !frame_col_all_null(c)));
        changed |= !s || t != (int)s->type;
    }
    return changed;
}

/* f with the schema's columns and types: f itself when it has them, else a converted copy
 * in *owned. */
static const frame *mo_conform(const frame *schema, const frame *f, frame **owned, mr_err *e)
{
    int same = frame_ncols(f) == frame_ncols(schema);
    for (size_t i = 0; same && i < frame_ncols(schema); i++) {
        const frame_col *tc = frame_col_at(schema, i), *fc = frame_col_by_name(f, tc->name);
        same = fc && fc->type == tc->type;
    }
    *owned = NULL;
    if (same) return f;
    frame *c = frame_empty_like(schema, e);
    if (!c) return NULL;
    if (frame_append_frame(c, f, e) != MR_OK) {
        frame_free(c);
        return NULL;
    }
    return *owned = c;
}

/* Rows to their partitions: part[i] when given, else by the hash of the keys. */
static mr_code mo_route(mapout *m, const frame *f, const uint32_t *part, mr_err *e)
{
    if (m->nparts == 1 || frame_nrows(f) == 0) return imf_writer_add(m->w, f, 0, e);
    if (part) return shuffle_add_assigned(m->w, f, part, m->nparts, e);
    MR_CHECK(m->nkeys > 0, e, MR_EINVAL,
             "compute.reducers is %d but the job names no partition keys: add "
             "partition_by = {\"key\", ...} to the job table, or declare the reduce as "
             "{ group_by = ..., agg = ... }", m->nparts);
    return shuffle_add_parts(m->w, f, m->keys, m->nkeys, m->nparts, 0, e);
}

/* The current schema becomes a widened one, in a new generation, when f needs it. */
static mr_code mo_adapt(mapout *m, const frame *f, mr_err *e)
{
    size_t cap = frame_ncols(m->schema) + frame_ncols(f);
    uint8_t *hv = calloc(cap, 1);
    MR_CHECK(hv, e, MR_ENOMEM, "out of memory");
    frame *next = NULL;
    int changed = mo_widen(m, f, &next, hv, e);
    if (changed < 0) {
        frame_free(next);
        free(hv);
        return e->code;
    }
    free(m->has_values);
    m->has_values = hv;
    if (!changed) {
        frame_free(next);
        return MR_OK;
    }
    frame_free(m->schema);
    m->schema = next;
    m->widenings++;
    if (m->rows == 0) {   /* nothing written yet: the open generation just changes schema */
        imf_writer_free(m->w);
        return mo_open_gen(m, e);
    }
    MR_TRY(mo_close_gen(m, e));
    return mo_open_gen(m, e);
}

mr_code mapout_add(mapout *m, const frame *f, mr_err *e)
{
    return mapout_add_assigned(m, f, NULL, e);
}

mr_code mapout_add_assigned(mapout *m, const frame *f, const uint32_t *part, mr_err *e)
{
    if (frame_ncols(f) == 0) return MR_OK;   /* no columns, no rows: nothing to keep */
    if (!m->schema) {
        m->schema = frame_empty_like(f, e);
        if (!m->schema) return e->code;
        m->has_values = calloc(frame_ncols(f), 1);
        MR_CHECK(m->has_values, e, MR_ENOMEM, "out of memory");
        for (size_t i = 0; i < frame_ncols(f); i++)
            m->has_values[i] = (uint8_t)!frame_col_all_null(frame_col_at(f, i));
        MR_TRY(mo_open_gen(m, e));
    } else {
        MR_TRY(mo_adapt(m, f, e));
    }
    frame *owned;
    const frame *g = mo_conform(m->schema, f, &owned, e);
    if (!g) return e->code;
    mr_code rc = mo_route(m, g, part, e);
    frame_free(owned);
    if (rc == MR_OK) m->rows += frame_nrows(f);
    return rc;
}

/* Generations 0..ngens-1 into one file at m->path, partition by partition in order. */
static mr_code mo_merge_gens(mapout *m, mr_err *e)
{
    imf_reader **r = calloc(m->ngens, sizeof *r);
    MR_CHECK(r, e, MR_ENOMEM, "out of memory");
    imf_writer *w = NULL;
    mr_code rc = MR_OK;
    for (unsigned g = 0; g < m->ngens && rc == MR_OK; g++) {
        char *p = mo_gen_path(m, g);
        r[g] = p ? imf_reader_open(p, e) : NULL;
        if (!r[g]) rc = p ? e->code : mr_fail(e, MR_ENOMEM, "out of memory");
        free(p);
    }
    if (rc == MR_OK) {
        w = imf_writer_open(m->path, m->level, e);
        if (w && m->buffer_bytes) imf_writer_set_pending_max(w, m->buffer_bytes);
        rc = w ? imf_writer_set_nparts(w, m->nparts, e) : e->code;
    }
    for (int p = 0; p < m->nparts && rc == MR_OK; p++) {
        for (unsigned g = 0; g < m->ngens && rc == MR_OK; g++) {
            frame *fr;
            while (rc == MR_OK && (rc = imf_reader_next(r[g], p, &fr, e)) == MR_OK && fr) {
                frame *owned;
                const frame *c = mo_conform(m->schema, fr, &owned, e);
                rc = c ? imf_writer_add(w, c, p, e) : e->code;
                frame_free(owned);
                frame_free(fr);
            }
        }
    }
    if (rc == MR_OK) rc = imf_writer_close(w, e);
    imf_writer_free(w);
    for (unsigned g = 0; g < m->ngens; g++) imf_reader_free(r[g]);
    free(r);
    return rc;
}

mr_code mapout_finish(mapout *m, mr_err *e)
{
    if (!m->schema) {   /* the map output nothing: an intermediate without columns */
        frame *none = frame_create();
        MR_CHECK(none, e, MR_ENOMEM, "out of memory");
        imf_writer *w = imf_writer_open(m->path, m->level, e);
        mr_code rc = w ? imf_writer_set_nparts(w, m->nparts, e) : e->code;
        if (rc == MR_OK) rc = imf_writer_add(w, none, 0, e);
        if (rc == MR_OK) rc = imf_writer_close(w, e);
        imf_writer_free(w);
        frame_free(none);
        return rc;
    }
    MR_TRY(mo_close_gen(m, e));
    if (m->ngens == 1) {
        char *p = mo_gen_path(m, 0);
        MR_CHECK(p, e, MR_ENOMEM, "out of memory");
        int ok = rename(p, m->path) == 0;
        free(p);
        MR_CHECK(ok, e, MR_EIO, "%s: rename: %s", m->path, strerror(errno));
        m->ngens = 0;
        return MR_OK;
    }
    mr_code rc = mo_merge_gens(m, e);
    return rc;
}

uint64_t mapout_rows(const mapout *m) { return m->rows; }

unsigned mapout_generations(const mapout *m) { return m->widenings; }

void mapout_free(mapout *m)
{
    if (!m) return;
    imf_writer_free(m->w);
    for (unsigned g = 0; g < m->ngens; g++) {
        char *p = mo_gen_path(m, g);
        if (p) unlink(p);
        free(p);
    }
    frame_free(m->schema);
    free(m->has_values);
    free(m->path);
    free(m);
}
