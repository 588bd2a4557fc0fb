/* extsort: external merge sort (see extsort.h).
 *
 * Runs are intermediate files of one partition, cut into small row groups so that a merge
 * pass holding one group of each of XS_FANIN runs stays near a quarter of the budget.
 * The merge keeps a binary heap of sources ordered by their current row, ties broken by
 * source number, which keeps the sort stable: runs are numbered in the order their rows
 * were added. */
#include "extsort.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imf.h"

/* Runs open at once in one merge pass; 64 passes of a budget's half each are 32x the
 * budget in one pass, 2048x in two. */
#define XS_FANIN 64
#define XS_BATCH_ROWS ((size_t)1 << 16)
#define XS_MIN_GROUP_ROWS ((size_t)1024)
#define XS_MAX_KEYS 64

struct extsort {
    ops_sort_key keys[XS_MAX_KEYS];
    char *key_names[XS_MAX_KEYS];
    size_t nkeys;
    uint64_t budget;
    char *scratch;
    frame *buf;               /* rows added in any order, not yet in a run */
    imf_writer *presorted;    /* the run extsort_add_sorted is writing */
    char *presorted_path;
    char **runs;              /* finished run files, in the order their rows came */
    size_t nruns, runs_cap;
    unsigned seq;
    int finished;
    extsort_stats st;
};

/* ---- the k-way merge ---- */

typedef struct xs_src {
    imf_reader *r;
    int partition;
    frame *cur;                     /* current row group, NULL when exhausted */
    size_t pos;
    const frame_col *kc[XS_MAX_KEYS];
    const frame_col **cols;         /* cur's columns in the merge schema's order */
} xs_src;

typedef struct xs_merge {
    const ops_sort_key *keys;
    size_t nkeys;
    xs_src *src;
    size_t nsrc;
    size_t *heap;
    size_t nheap;
    frame *schema;                  /* no rows: the sources' columns, widened */
    extsort_stats *st;
    uint64_t rows;                  /* rows handed out by this pass */
} xs_merge;

static int xs_less(const xs_merge *m, size_t a, size_t b)
{
    const xs_src *x = &m->src[a], *y = &m->src[b];
    int c = ops_cmp_rows(x->kc, x->pos, y->kc, y->pos, m->keys, m->nkeys);
    return c < 0 || (c == 0 && a < b);
}

static void xs_sift_down(xs_merge *m, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < m->nheap && xs_less(m, m->heap[l], m->heap[best])) best = l;
        if (r < m->nheap && xs_less(m, m->heap[r], m->heap[best])) best = r;
        if (best == i) return;
        size_t t = m->heap[i];
        m->heap[i] = m->heap[best];
        m->heap[best] = t;
        i = best;
    }
}

/* Moves a source to its next non-empty row group (cur = NULL at the end). */
static mr_code xs_src_load(xs_merge *m, xs_src *s, mr_err *e)
{
    frame_free(s->cur);
    s->cur = NULL;
    s->pos = 0;
    for (;;) {
        frame *g = NULL;
        MR_TRY(imf_reader_next(s->r, s->partition, &g, e));
        if (!g) return MR_OK;
        if (frame_nrows(g) > 0) {
            s->cur = g;
            break;
        }
        frame_free(g);
    }
    for (size_t k = 0; k < m->nkeys; k++) {
        s->kc[k] = frame_col_by_name(s->cur, m->keys[k].col);
        MR_CHECK(s->kc[k], e, MR_ENOTFOUND, "sort: no column '%s'", m->keys[k].col);
    }
    for (size_t c = 0; c < frame_ncols(m->schema); c++)
        s->cols[c] = frame_col_by_name(s->cur, frame_col_at(m->schema, c)->name);
    return MR_OK;
}

static void xs_merge_free(xs_merge *m)
{
    for (size_t i = 0; i < m->nsrc; i++) {
        imf_reader_free(m->src[i].r);
        frame_free(m->src[i].cur);
        free(m->src[i].cols);
    }
    free(m->src);
    free(m->heap);
    frame_free(m->schema);
}

/* Opens the sources, widens their schemas into one and checks the key columns. */
static mr_code xs_merge_open(xs_merge *m, const char *const *paths, size_t n, int partition,
                             mr_err *e)
{
    m->src = calloc(n ? n : 1, sizeof *m->src);
    m->heap = calloc(n ? n : 1, sizeof *m->heap);
    MR_CHECK(m->src && m->heap, e, MR_ENOMEM, "sort: out of memory");
    for (size_t i = 0; i < n; i++, m->nsrc++) {
        xs_src *s = &m->src[i];
        s->partition = partition;
        if (!(s->r = imf_reader_open(paths[i], e))) return e ? e->code : MR_EIO;
        const frame *sch = imf_reader_schema(s->r);
        if (!m->schema) {
            if (!(m->schema = frame_empty_like(sch, e))) return MR_ENOMEM;
        } else if (frame_append_frame(m->schema, sch, e) != MR_OK) {
            return mr_wrap(e, "sort: %s: ", paths[i]);
        }
    }
    if (!m->schema) return MR_OK;
    for (size_t k = 0; k < m->nkeys; k++)
        MR_CHECK(frame_col_by_name(m->schema, m->keys[k].col), e, MR_ENOTFOUND,
                 "sort: no column '%s'", m->keys[k].col);
    for (size_t i = 0; i < m->nsrc; i++) {
        xs_src *s = &m->src[i];
        s->cols = calloc(frame_ncols(m->schema) + 1, sizeof *s->cols);
        MR_CHECK(s->cols, e, MR_ENOMEM, "sort: out of memory");
        MR_TRY(xs_src_load(m, s, e));
        if (s->cur) m->heap[m->nheap++] = i;
    }
    for (size_t i = m->nheap / 2; i-- > 0;) xs_sift_down(m, i);
    return MR_OK;
}

static mr_code xs_push_row(frame *out, const xs_src *s, mr_err *e)
{
    for (size_t c = 0; c < frame_ncols(out); c++) {
        frame_col *dst = frame_col_at(out, c);
        mr_code rc = s->cols[c] ? frame_col_push_from(dst, s->cols[c], s->pos)
                                : frame_col_push_null(dst);
        MR_CHECK(rc == MR_OK, e, rc, "sort: column '%s': cannot merge values", dst->name);
    }
    return MR_OK;
}

static void xs_note_peak(xs_merge *m, const frame *batch)
{
    uint64_t bytes = frame_mem_bytes(batch);
    for (size_t i = 0; i < m->nsrc; i++)
        if (m->src[i].cur) bytes += frame_mem_bytes(m->src[i].cur);
    if (bytes > m->st->peak_bytes) m->st->peak_bytes = bytes;
}

/* Pops rows in order into batches handed to emit. */
static mr_code xs_merge_drain(xs_merge *m, extsort_emit_fn emit, void *ud, mr_err *e)
{
    frame *batch = NULL;
    mr_code rc = MR_OK;
    while (rc == MR_OK && m->nheap > 0) {
        if (!batch && !(batch = frame_empty_like(m->schema, e))) return MR_ENOMEM;
        xs_src *s = &m->src[m->heap[0]];
        if ((rc = xs_push_row(batch, s, e)) != MR_OK) break;
        if (++s->pos == frame_nrows(s->cur)) rc = xs_src_load(m, s, e);
        if (rc != MR_OK) break;
        if (!s->cur) m->heap[0] = m->heap[--m->nheap];
        xs_sift_down(m, 0);
        if (frame_nrows(batch) == XS_BATCH_ROWS) {
            xs_note_peak(m, batch);
            m->rows += XS_BATCH_ROWS;
            rc = emit(ud, batch, e);
            batch = NULL;
        }
    }
    if (rc == MR_OK && batch && frame_nrows(batch) > 0) {
        m->rows += frame_nrows(batch);
        rc = emit(ud, batch, e);
        batch = NULL;
    }
    frame_free(batch);
    return rc;
}

static mr_code xs_write_batch(void *ud, frame *batch, mr_err *e);

static mr_code xs_merge_paths(const ops_sort_key *keys, size_t nkeys,
                              const char *const *paths, size_t n, int partition,
                              extsort_emit_fn emit, void *ud, extsort_stats *st, mr_err *e)
{
    xs_merge m = {.keys = keys, .nkeys = nkeys, .st = st};
    mr_code rc = xs_merge_open(&m, paths, n, partition, e);
    if (rc == MR_OK && m.schema) rc = xs_merge_drain(&m, emit, ud, e);
    xs_merge_free(&m);
    st->passes++;
    if (emit != xs_write_batch) st->rows += m.rows;   /* the final pass */
    return rc;
}

/* ---- runs ---- */

extsort *extsort_create(const ops_sort_key *keys, size_t nkeys, uint64_t budget,
                        const char *scratch_dir, mr_err *e)
{
    MR_CHECK_NULL(nkeys <= XS_MAX_KEYS, e, MR_EINVAL, "sort: %zu keys (at most %d)", nkeys,
                  XS_MAX_KEYS);
    extsort *s = calloc(1, sizeof *s);
    MR_CHECK_NULL(s, e, MR_ENOMEM, "sort: out of memory");
    s->nkeys = nkeys;
    s->budget = budget;
    s->scratch = strdup(scratch_dir ? scratch_dir : ".");
    int ok = s->scratch != NULL;
    for (size_t k = 0; ok && k < nkeys; k++) {
        s->key_names[k] = strdup(keys[k].col);
        s->keys[k] = (ops_sort_key){s->key_names[k], keys[k].descending};
        ok = s->key_names[k] != NULL;
    }
    if (!ok) {
        extsort_free(s);
        mr_fail(e, MR_ENOMEM, "sort: out of memory");
        return NULL;
    }
    return s;
}

static void xs_remove_runs(extsort *s)
{
    for (size_t i = 0; i < s->nruns; i++) {
        unlink(s->runs[i]);
        free(s->runs[i]);
    }
    s->nruns = 0;
}

void extsort_free(extsort *s)
{
    if (!s) return;
    imf_writer_free(s->presorted);   /* unclosed: removes its temporary */
    free(s->presorted_path);
    xs_remove_runs(s);
    free(s->runs);
    frame_free(s->buf);
    for (size_t k = 0; k < s->nkeys; k++) free(s->key_names[k]);
    free(s->scratch);
    free(s);
}

const extsort_stats *extsort_stats_of(const extsort *s) { return &s->st; }

/* Rows per group of a run: one group of each of XS_FANIN runs within a quarter budget. */
static size_t xs_group_rows(const extsort *s, const frame *sample)
{
    size_t rows = frame_nrows(sample);
    uint64_t row_bytes = rows ? frame_mem_bytes(sample) / rows : 64;
    if (row_bytes == 0) row_bytes = 1;
    if (!s->budget) return XS_BATCH_ROWS;
    uint64_t g = s->budget / 4 / XS_FANIN / row_bytes;
    return g < XS_MIN_GROUP_ROWS ? XS_MIN_GROUP_ROWS : g > XS_BATCH_ROWS ? XS_BATCH_ROWS : (size_t)g;
}

static imf_writer *xs_run_open(extsort *s, const frame *sample, char **path, mr_err *e)
{
    char buf[PATH_MAX];
    int len = snprintf(buf, sizeof buf, "%s/luamr-sort-%ld-%p-%u.imf", s->scratch,
                       (long)getpid(), (void *)s, s->seq++);
    MR_CHECK_NULL(len > 0 && (size_t)len < sizeof buf, e, MR_EINVAL,
                  "sort: scratch path too long: %s", s->scratch);
    MR_CHECK_NULL((*path = strdup(buf)), e, MR_ENOMEM, "sort: out of memory");
    imf_writer *w = imf_writer_open(buf, 1, e);
    if (w && imf_writer_set_group_rows(w, xs_group_rows(s, sample), e) != MR_OK) {
        imf_writer_free(w);
        w = NULL;
    }
    if (!w) {
        free(*path);
        *path = NULL;
        mr_wrap(e, "sort: ");
    }
    return w;
}

/* Closes a run writer and keeps its file (takes path either way). */
static mr_code xs_run_close(extsort *s, imf_writer *w, char *path, mr_err *e)
{
    mr_code rc = imf_writer_close(w, e);
    s->st.spilled_bytes += imf_writer_bytes(w);
    imf_writer_free(w);
    if (rc == MR_OK && s->nruns == s->runs_cap) {
        size_t cap = s->runs_cap ? 2 * s->runs_cap : 16;
        char **r = realloc(s->runs, cap * sizeof *r);
        if (!r) rc = mr_fail(e, MR_ENOMEM, "sort: out of memory");
        else s->runs = r, s->runs_cap = cap;
    }
    if (rc != MR_OK) {
        unlink(path);
        free(path);
        return rc;
    }
    s->runs[s->nruns++] = path;
    s->st.runs++;
    return MR_OK;
}

static mr_code xs_close_presorted(extsort *s, mr_err *e)
{
    if (!s->presorted) return MR_OK;
    imf_writer *w = s->presorted;
    char *path = s->presorted_path;
    s->presorted = NULL;
    s->presorted_path = NULL;
    return xs_run_close(s, w, path, e);
}

/* Sorts the buffer into a run file, written a batch at a time so that only the buffer,
 * its order and one batch are held. */
static mr_code xs_spill_buffer(extsort *s, mr_err *e)
{
    size_t n = s->buf ? frame_nrows(s->buf) : 0;
    if (n == 0) return MR_OK;
    size_t *order = ops_sort_index(s->buf, s->keys, s->nkeys, e);
    if (!order) return mr_wrap(e, "sort: ");
    char *path = NULL;
    imf_writer *w = xs_run_open(s, s->buf, &path, e);
    mr_code rc = w ? MR_OK : e->code;
    for (size_t off = 0; rc == MR_OK && off < n; off += XS_BATCH_ROWS) {
        size_t m = n - off < XS_BATCH_ROWS ? n - off : XS_BATCH_ROWS;
        frame *batch = ops_take(s->buf, order + off, m, e);
        if (!batch) rc = mr_wrap(e, "sort: ");
        else rc = imf_writer_add(w, batch, 0, e);
        frame_free(batch);
    }
    uint64_t held = frame_mem_bytes(s->buf) + n * sizeof *order;
    if (held > s->st.peak_bytes) s->st.peak_bytes = held;
    free(order);
    if (rc == MR_OK) {
        rc = xs_run_close(s, w, path, e);
    } else {
        imf_writer_free(w);
        free(path);
    }
    frame_free(s->buf);
    s->buf = NULL;
    return rc;
}

mr_code extsort_add(extsort *s, const frame *f, mr_err *e)
{
    MR_CHECK(!s->finished, e, MR_EINVAL, "sort: rows added after finish");
    if (!s->buf && !(s->buf = frame_empty_like(f, e))) return MR_ENOMEM;
    if (frame_nrows(f) == 0) return MR_OK;
    MR_TRY(frame_append_frame(s->buf, f, e));
    /* The buffer, its sort order (a word per row) and one batch must fit. */
    uint64_t held = frame_mem_bytes(s->buf) + frame_nrows(s->buf) * sizeof(size_t);
    if (held > s->st.peak_bytes) s->st.peak_bytes = held;
    if (s->budget && held > s->budget / 2) return xs_spill_buffer(s, e);
    return MR_OK;
}

mr_code extsort_add_sorted(extsort *s, const frame *f, int new_run, mr_err *e)
{
    MR_CHECK(!s->finished, e, MR_EINVAL, "sort: rows added after finish");
    if (new_run) MR_TRY(xs_close_presorted(s, e));
    if (frame_nrows(f) == 0) return MR_OK;
    if (!s->presorted && !(s->presorted = xs_run_open(s, f, &s->presorted_path, e)))
        return e->code;
    return imf_writer_add(s->presorted, f, 0, e);
}

static mr_code xs_write_batch(void *ud, frame *batch, mr_err *e)
{
    mr_code rc = imf_writer_add(ud, batch, 0, e);
    frame_free(batch);
    return rc;
}

/* Merges runs[off..off+m) into one new run file (taking *path). */
static mr_code xs_merge_to_run(extsort *s, char **runs, size_t m, char **path, mr_err *e)
{
    frame *sample = NULL;
    imf_reader *r = imf_reader_open(runs[0], e);
    if (!r) return e->code;
    mr_code rc = imf_reader_next(r, 0, &sample, e);
    imf_reader_free(r);
    MR_TRY(rc);
    frame *empty = sample ? NULL : frame_create();
    imf_writer *w = xs_run_open(s, sample ? sample : empty, path, e);
    frame_free(sample);
    frame_free(empty);
    if (!w) return e->code;
    rc = xs_merge_paths(s->keys, s->nkeys, (const char *const *)runs, m, 0, xs_write_batch, w,
                        &s->st, e);
    if (rc == MR_OK) rc = imf_writer_close(w, e);
    s->st.spilled_bytes += imf_writer_bytes(w);
    imf_writer_free(w);
    if (rc != MR_OK) {
        unlink(*path);
        free(*path);
        *path = NULL;
    }
    return rc;
}

/* While there are more runs than one pass opens, merges consecutive groups of XS_FANIN
 * into one run each; keeping the groups in order keeps the sort stable. */
static mr_code xs_reduce_runs(extsort *s, mr_err *e)
{
    while (s->nruns > XS_FANIN) {
        size_t out = 0;
        for (size_t off = 0; off < s->nruns; off += XS_FANIN) {
            size_t m = s->nruns - off < XS_FANIN ? s->nruns - off : XS_FANIN;
            char *path = NULL;
            mr_code rc = m == 1 ? MR_OK : xs_merge_to_run(s, s->runs + off, m, &path, e);
            if (rc != MR_OK) {
                /* keep the list whole so that extsort_free removes every file */
                memmove(s->runs + out, s->runs + off, (s->nruns - off) * sizeof *s->runs);
                s->nruns = out + s->nruns - off;
                return rc;
            }
            if (m == 1) {
                s->runs[out++] = s->runs[off];
                continue;
            }
            for (size_t i = off; i < off + m; i++) {
                unlink(s->runs[i]);
                free(s->runs[i]);
            }
            s->runs[out++] = path;
            s->st.runs++;
        }
        s->nruns = out;
    }
    return MR_OK;
}

/* Everything fit: one in-memory sort, handed out in batches. */
static mr_code xs_emit_buffer(extsort *s, extsort_emit_fn emit, void *ud, mr_err *e)
{
    size_t n = s->buf ? frame_nrows(s->buf) : 0;
    if (n == 0) return MR_OK;
    size_t *order = ops_sort_index(s->buf, s->keys, s->nkeys, e);
    if (!order) return mr_wrap(e, "sort: ");
    mr_code rc = MR_OK;
    for (size_t off = 0; rc == MR_OK && off < n; off += XS_BATCH_ROWS) {
        size_t m = n - off < XS_BATCH_ROWS ? n - off : XS_BATCH_ROWS;
        frame *batch = ops_take(s->buf, order + off, m, e);
        if (!batch) rc = mr_wrap(e, "sort: ");
        else rc = emit(ud, batch, e);
        s->st.rows += m;
    }
    free(order);
    return rc;
}

mr_code extsort_finish(extsort *s, extsort_emit_fn emit, void *ud, mr_err *e)
{
    MR_CHECK(!s->finished, e, MR_EINVAL, "sort: finished twice");
    s->finished = 1;
    MR_TRY(xs_close_presorted(s, e));
    if (s->nruns == 0) return xs_emit_buffer(s, emit, ud, e);
    MR_TRY(xs_spill_buffer(s, e));
    MR_TRY(xs_reduce_runs(s, e));
    mr_code rc = xs_merge_paths(s->keys, s->nkeys, (const char *const *)s->runs, s->nruns, 0,
                                emit, ud, &s->st, e);
    xs_remove_runs(s);
    return rc;
}

/* Files already sorted: merged in groups of XS_FANIN into runs while there are too many,
 * then in one final pass. */
mr_code extsort_merge_files(const char *const *paths, size_t n, int partition,
                            const ops_sort_key *keys, size_t nkeys, uint64_t budget,
                            const char *scratch_dir, extsort_emit_fn emit, void *ud,
                            extsort_stats *st, mr_err *e)
{
    extsort *s = extsort_create(keys, nkeys, budget, scratch_dir, e);
    if (!s) return e->code;
    mr_code rc = MR_OK;
    if (n <= XS_FANIN) {
        rc = xs_merge_paths(s->keys, nkeys, paths, n, partition, emit, ud, &s->st, e);
    } else {
        for (size_t off = 0; rc == MR_OK && off < n; off += XS_FANIN) {
            size_t m = n - off < XS_FANIN ? n - off : XS_FANIN;
            frame *sample = frame_create();
            char *path = NULL;
            imf_writer *w = sample ? xs_run_open(s, sample, &path, e) : NULL;
            frame_free(sample);
            if (!w) {
                rc = e->code ? e->code : MR_ENOMEM;
                break;
            }
            rc = xs_merge_paths(s->keys, nkeys, paths + off, m, partition, xs_write_batch, w,
                                &s->st, e);
            if (rc == MR_OK) {
                rc = xs_run_close(s, w, path, e);
            } else {
                imf_writer_free(w);
                free(path);
            }
        }
        if (rc == MR_OK) rc = xs_reduce_runs(s, e);
        if (rc == MR_OK)
            rc = xs_merge_paths(s->keys, nkeys, (const char *const *)s->runs, s->nruns, 0,
                                emit, ud, &s->st, e);
    }
    if (st) *st = s->st;
    extsort_free(s);
    return rc;
}
