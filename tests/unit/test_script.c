/* Unit tests for lua/: the script object, frame bindings, input bindings, ctx, strict
 * globals, the sandbox and the runaway guard. Expected values are computed in C from the
 * same data the scripts see. */
#define _GNU_SOURCE
#include <check.h>
#include <ctype.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/frame.h"
#include "engine/ops.h"
#include "lua/script.h"
#include "tmpdir.h"

/* ---------------------------------------------------------------- fixtures */


static void tmp_setup(void)
{
    tmpdir_make("test_script");
}

static void tmp_teardown(void) { tmpdir_remove(); }

static char *tmp_path(const char *name)
{
    char *p = malloc(strlen(tmpdir) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmpdir, name);
    return p;
}

static char *write_tmp(const char *name, const char *content)
{
    char *p = tmp_path(name);
    FILE *fp = fopen(p, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(content, fp);
    fclose(fp);
    return p;
}

typedef struct capture {
    char log[16384];
    int nbad;
    uint64_t bad_record[16];
    char bad_reason[16][256];
} capture;

static void cap_log(void *ud, const char *level, const char *msg)
{
    capture *c = ud;
    size_t n = strlen(c->log);
    snprintf(c->log + n, sizeof c->log - n, "%s: %s\n", level, msg);
}

static mr_code cap_bad(const reader_bad *b, void *ud, mr_err *e)
{
    capture *c = ud;
    (void)e;
    if (c->nbad < 16) {
        c->bad_record[c->nbad] = b->record;
        snprintf(c->bad_reason[c->nbad], sizeof c->bad_reason[0], "%s", b->reason);
    }
    c->nbad++;
    return MR_OK;
}

static void task_init(script_task *t, capture *c, const char *kind, const char *uri,
                      const char *format)
{
    memset(t, 0, sizeof *t);
    memset(c, 0, sizeof *c);
    t->run_id = "run-1";
    t->kind = kind;
    t->index = 7;
    t->ntasks = 9;
    t->input_uri = uri;
    t->format = format;
    t->on_bad = cap_bad;
    t->bad_ud = c;
    t->log = cap_log;
    t->log_ud = c;
}

static script *load_script(const char *name, const char *src)
{
    char *p = write_tmp(name, src);
    mr_err e;
    mr_err_clear(&e);
    script *s = script_create(p, NULL, 0, &e);
    ck_assert_msg(s != NULL, "loading %s: %s", name, e.msg);
    free(p);
    return s;
}

static mr_err load_error(const char *name, const char *src)
{
    char *p = write_tmp(name, src);
    mr_err e;
    mr_err_clear(&e);
    script *s = script_create(p, NULL, 0, &e);
    ck_assert_msg(s == NULL, "%s should not load", name);
    free(p);
    return e;
}

/* Runs map over a temp file holding data; fails the test on error. */
static frame *run_map(script *s, const char *data, const char *format, capture *c)
{
    char *in = write_tmp("input.dat", data);
    script_task t;
    mr_err e;
    task_init(&t, c, "map", in, format);
    frame *f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "map failed: %s", e.msg);
    free(in);
    return f;
}

static frame *run_reduce(script *s, const frame *in, mr_err *e)
{
    script_task t;
    capture c;
    task_init(&t, &c, "reduce", NULL, NULL);
    return script_run_frame_fn(s, "reduce", in, &t, e);
}

static frame *reduce_ok(script *s, const frame *in)
{
    mr_err e;
    frame *f = run_reduce(s, in, &e);
    ck_assert_msg(f != NULL, "reduce failed: %s", e.msg);
    return f;
}

/* ---------------------------------------------------------------- data */

static uint64_t lcg_state;
static uint32_t rnd(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 33);
}

#define NROWS 200
static const char *const KEYS[] = {"apple", "pear", "fig", "kiwi", "lime"};

/* id int64 (1..n), k string (null every 11th), g int64 0..5 (null every 13th),
 * x float64 (null every 7th), b bool */
static frame *make_frame(size_t n)
{
    mr_err e;
    frame *f = frame_create();
    frame_col *id = frame_add_col(f, "id", FRAME_I64, &e);
    frame_col *k = frame_add_col(f, "k", FRAME_STR, &e);
    frame_col *g = frame_add_col(f, "g", FRAME_I64, &e);
    frame_col *x = frame_add_col(f, "x", FRAME_F64, &e);
    frame_col *b = frame_add_col(f, "b", FRAME_BOOL, &e);
    lcg_state = 42;
    for (size_t i = 0; i < n; i++) {
        const char *key = KEYS[rnd() % 5];
        frame_col_push_i64(id, (int64_t)i + 1);
        if (i % 11 == 3) frame_col_push_null(k);
        else frame_col_push_str(k, key, strlen(key));
        if (i % 13 == 5) frame_col_push_null(g);
        else frame_col_push_i64(g, rnd() % 6);
        if (i % 7 == 2) frame_col_push_null(x);
        else frame_col_push_f64(x, (rnd() % 10000) / 1000.0);
        frame_col_push_bool(b, rnd() % 2);
    }
    return f;
}

static int cell_equal(const frame_col *a, size_t i, const frame_col *b, size_t j)
{
    int na = frame_col_is_null(a, i), nb = frame_col_is_null(b, j);
    size_t la, lb;
    if (na || nb) return na && nb;
    if (a->type == FRAME_STR && b->type == FRAME_STR) {
        const char *sa = frame_col_str(a, i, &la), *sb = frame_col_str(b, j, &lb);
        return la == lb && memcmp(sa, sb, la) == 0;
    }
    if (a->type == FRAME_STR || b->type == FRAME_STR) return 0;
    return frame_col_num(a, i) == frame_col_num(b, j);
}

/* Same columns (names, types, order) and cells. */
static void assert_frames_equal(const frame *a, const frame *b)
{
    ck_assert_uint_eq(frame_ncols(a), frame_ncols(b));
    ck_assert_uint_eq(frame_nrows(a), frame_nrows(b));
    for (size_t c = 0; c < frame_ncols(a); c++) {
        const frame_col *ca = frame_col_at(a, c), *cb = frame_col_at(b, c);
        ck_assert_str_eq(ca->name, cb->name);
        ck_assert_msg(ca->type == cb->type, "column %s: type %s vs %s", ca->name,
                      frame_type_name(ca->type), frame_type_name(cb->type));
        for (size_t i = 0; i < ca->len; i++)
            ck_assert_msg(cell_equal(ca, i, cb, i), "column %s row %zu differs", ca->name, i + 1);
    }
}

static const frame_col *col(const frame *f, const char *name)
{
    const frame_col *c = frame_col_by_name(f, name);
    ck_assert_msg(c != NULL, "no column %s", name);
    return c;
}

static int64_t i64_at(const frame *f, const char *name, size_t i)
{
    const frame_col *c = col(f, name);
    ck_assert_msg(!frame_col_is_null(c, i), "%s[%zu] is null", name, i);
    return (int64_t)frame_col_num(c, i);
}

static int str_eq_at(const frame_col *c, size_t i, const char *s)
{
    size_t n;
    const char *p;
    if (frame_col_is_null(c, i)) return s == NULL;
    if (!s) return 0;
    p = frame_col_str(c, i, &n);
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

typedef struct counters { char names[8][32]; double values[8]; int n; } counters;
static void take_counter(void *ud, const char *name, double v)
{
    counters *c = ud;
    snprintf(c->names[c->n], sizeof c->names[0], "%s", name);
    c->values[c->n++] = v;
}

/* ---------------------------------------------------------------- word count */

typedef struct wc { char word[32]; long n; } wc;

static int wc_cmp(const void *a, const void *b)
{
    const wc *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return strcmp(x->word, y->word);
}

/* tests/data/scripts/NAME in the source tree (CTest sets LUAMR_SOURCE_DIR). */
static char *example_path(const char *name)
{
    const char *src = getenv("LUAMR_SOURCE_DIR");
    char *p = malloc(4096);
    if (src) {
        snprintf(p, 4096, "%s/tests/data/scripts/%s", src, name);
    } else {   /* run by hand: this file is <src>/tests/unit/test_script.c */
        snprintf(p, 4096, "%s", __FILE__);
        char *cut = strstr(p, "tests/unit/");
        ck_assert_msg(cut != NULL, "set LUAMR_SOURCE_DIR");
        snprintf(cut, 4096 - (cut - p), "tests/data/scripts/%s", name);
    }
    return p;
}

static script *load_example(const char *name)
{
    char *p = example_path(name);
    mr_err e;
    script *s = script_create(p, NULL, 0, &e);
    ck_assert_msg(s != NULL, "loading %s: %s", p, e.msg);
    free(p);
    return s;
}

START_TEST(test_wordcount)
{
    static const char *const vocab[] = {"The", "quick", "brown", "fox", "jumps", "over",
                                        "lazy", "dog", "THE", "Fox", "a", "b"};
    char *text = malloc(200000);
    size_t n = 0;
    wc counts[64];
    size_t nw = 0;
    lcg_state = 7;
    for (int line = 0; line < 2000; line++) {
        int words = 1 + rnd() % 9;
        for (int w = 0; w < words; w++)
            n += sprintf(text + n, "%s%s", vocab[rnd() % 12], (rnd() % 3) ? " " : ", 42 ");
        text[n++] = '\n';
    }
    text[n] = '\0';
    /* independent count: lower-cased runs of letters */
    for (const char *p = text; *p;) {
        if (!isalpha((unsigned char)*p)) { p++; continue; }
        char w[32];
        size_t l = 0;
        while (isalpha((unsigned char)*p)) w[l++] = (char)tolower((unsigned char)*p++);
        w[l] = '\0';
        size_t j;
        for (j = 0; j < nw && strcmp(counts[j].word, w) != 0; j++) {}
        if (j == nw) { snprintf(counts[nw].word, sizeof counts[0].word, "%s", w); counts[nw++].n = 0; }
        counts[j].n++;
    }
    qsort(counts, nw, sizeof *counts, wc_cmp);

    script *s = load_example("wordcount.lua");
    ck_assert(script_has(s, "map"));
    ck_assert(script_has(s, "reduce"));
    ck_assert(!script_has(s, "combine"));
    capture c;
    frame *m = run_map(s, text, "lines", &c);
    frame *r = reduce_ok(s, m);
    ck_assert_uint_eq(frame_nrows(r), nw);
    ck_assert_str_eq(frame_col_at(r, 0)->name, "word");
    ck_assert_str_eq(frame_col_at(r, 1)->name, "n");
    for (size_t i = 0; i < nw; i++) {
        ck_assert_msg(str_eq_at(col(r, "word"), i, counts[i].word), "row %zu word", i);
        ck_assert_int_eq(i64_at(r, "n", i), counts[i].n);
    }
    frame_free(m);
    frame_free(r);
    script_free(s);
    free(text);
}
END_TEST

START_TEST(test_lines_counts_records)
{
    script *s = load_script("lines.lua",
        "return { map = function(input, ctx)\n"
        "  local f = frame.new()\n"
        "  for line in input:lines() do f:append{ line = line, len = #line } end\n"
        "  return f\n"
        "end }\n");
    char *in = write_tmp("in.txt", "alpha\nbe\n\ngamma delta\n");
    script_task t;
    capture c;
    mr_err e;
    task_init(&t, &c, "map", in, "lines");
    frame *f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), 4);
    ck_assert_uint_eq(t.records_in, 4);
    ck_assert_uint_eq(t.bytes_in, strlen("alpha\nbe\n\ngamma delta\n"));
    ck_assert(str_eq_at(col(f, "line"), 3, "gamma delta"));
    ck_assert_int_eq(i64_at(f, "len", 3), 11);
    ck_assert_int_eq(i64_at(f, "len", 2), 0);
    frame_free(f);
    free(in);
    script_free(s);
}
END_TEST

START_TEST(test_examples)
{
    static const char *const regions[] = {"north", "south", "east"};
    char csv[8192], txt[4096];
    size_t n = snprintf(csv, sizeof csv, "region,amount,name,qty\n");
    double total[3] = {0};
    long orders[3] = {0}, qty_sum[3] = {0}, qty_orders[3] = {0}, skipped = 0;
    lcg_state = 99;
    for (int i = 0; i < 120; i++) {
        int r = rnd() % 3, amount = (int)(rnd() % 50) - 5, qty = rnd() % 5;
        n += snprintf(csv + n, sizeof csv - n, "%s,%d,%s,%d\n", regions[r], amount, regions[r], qty);
        if (amount > 0) { total[r] += amount; orders[r]++; }
        if (qty >= 2) { qty_sum[r] += qty; qty_orders[r]++; } else skipped++;
    }
    capture c;
    mr_err e;

    script *s = load_example("csv_stats.lua");
    frame *m = run_map(s, csv, "csv", &c);
    frame *f = reduce_ok(s, m);
    ck_assert_uint_eq(frame_nrows(f), 3);
    for (size_t i = 0; i < 3; i++) {
        int r;
        for (r = 0; r < 3 && !str_eq_at(col(f, "region"), i, regions[r]); r++) {}
        ck_assert_int_lt(r, 3);
        ck_assert_double_eq(frame_col_num(col(f, "total"), i), total[r]);
        ck_assert_int_eq(i64_at(f, "orders", i), orders[r]);
        if (i > 0) ck_assert(frame_col_num(col(f, "total"), i) <= frame_col_num(col(f, "total"), i - 1));
    }
    frame_free(m); frame_free(f); script_free(s);

    s = load_example("emit_records.lua");
    m = run_map(s, csv, "csv", &c);
    counters cs = {0};
    script_drain_counters(s, take_counter, &cs);
    ck_assert_int_eq(cs.n, 1);
    ck_assert_double_eq(cs.values[0], skipped);
    f = reduce_ok(s, m);
    ck_assert_uint_eq(frame_nrows(f), 3);
    static const int by_name[] = {2, 0, 1};   /* east, north, south */
    for (size_t i = 0; i < 3; i++) {
        ck_assert(str_eq_at(col(f, "name"), i, regions[by_name[i]]));
        ck_assert_int_eq(i64_at(f, "qty", i), qty_sum[by_name[i]]);
        ck_assert_int_eq(i64_at(f, "orders", i), qty_orders[by_name[i]]);
    }
    frame_free(m); frame_free(f); script_free(s);

    s = load_example("join_lookup.lua");
    snprintf(txt, sizeof txt, "en one\nde zwei\nEN two\nxx ?\nfr un\nen three\n\n");
    m = run_map(s, txt, "lines", &c);
    f = run_reduce(s, m, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    static const char *const codes[] = {"en", "de", "fr", "xx"}, *const langs[] = {"English", "German", "French", NULL};
    static const int counts[] = {3, 1, 1, 1};
    ck_assert_uint_eq(frame_nrows(f), 4);
    for (size_t i = 0; i < 4; i++) {
        ck_assert(str_eq_at(col(f, "code"), i, codes[i]));
        ck_assert_int_eq(i64_at(f, "n", i), counts[i]);
        ck_assert(str_eq_at(col(f, "language"), i, langs[i]));
    }
    frame_free(m); frame_free(f); script_free(s);
}
END_TEST

/* ---------------------------------------------------------------- frame methods */

START_TEST(test_append_schema_evolution)
{
    script *s = load_script("append.lua",
        "return { reduce = function(_, ctx)\n"
        "  local f = frame.new()\n"
        "  f:append{ a = 1, s = 'x' }\n"
        "  f:append{ a = 2.5 }\n"
        "  f:append{ s = 'y', t = true }\n"
        "  f:append{ a = 4, s = 5 }\n"
        "  return f\n"
        "end }\n");
    frame *in = frame_create();
    frame *f = reduce_ok(s, in);
    ck_assert_uint_eq(frame_nrows(f), 4);
    ck_assert_uint_eq(frame_ncols(f), 3);
    const frame_col *a = col(f, "a"), *sc = col(f, "s"), *t = col(f, "t");
    ck_assert_int_eq(a->type, FRAME_F64);   /* widened by 2.5 */
    ck_assert_double_eq(frame_col_num(a, 0), 1.0);
    ck_assert_double_eq(frame_col_num(a, 1), 2.5);
    ck_assert(frame_col_is_null(a, 2));
    ck_assert_double_eq(frame_col_num(a, 3), 4.0);
    ck_assert_int_eq(sc->type, FRAME_STR);
    ck_assert(str_eq_at(sc, 0, "x"));
    ck_assert(frame_col_is_null(sc, 1));
    ck_assert(str_eq_at(sc, 2, "y"));
    ck_assert(str_eq_at(sc, 3, "5"));
    ck_assert_int_eq(t->type, FRAME_BOOL);
    ck_assert(frame_col_is_null(t, 0) && frame_col_is_null(t, 1) && frame_col_is_null(t, 3));
    ck_assert_int_eq(t->v.b[2], 1);
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

START_TEST(test_append_type_error)
{
    script *s = load_script("append_err.lua",
        "return { reduce = function(_, ctx)\n"
        "  local f = frame.new{ n = 'int64' }\n"
        "  f:append{ n = 1 }\n"
        "  f:append{ n = 'many' }\n"
        "  return f\n"
        "end }\n");
    frame *in = frame_create();
    mr_err e;
    frame *f = run_reduce(s, in, &e);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(e.code, MR_ESCRIPT);
    ck_assert_msg(strstr(e.msg, "append_err.lua:4:") != NULL, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "column 'n' is int64, got string (row 2)") != NULL, "%s", e.msg);
    frame_free(in);
    script_free(s);
}
END_TEST

START_TEST(test_new_and_from_rows)
{
    script *s = load_script("new.lua",
        "return { reduce = function(_, ctx)\n"
        "  local a = frame.new{ {'word', 'string'}, {'n', 'int64'}, {name = 'w', type = 'float64'} }\n"
        "  local b = frame.new{ zeta = 'bool', alpha = 'string' }\n"
        "  local c = frame.new{ x = {1, 2, 3}, y = {'p', nil, 'r'} }\n"
        "  local d = frame.from_rows({ {k = 'a', v = 1}, {k = 'b'} }, { {'k', 'string'}, {'v', 'float64'} })\n"
        "  local out = frame.new()\n"
        "  local function names(f) return table.concat(f:columns(), ',') end\n"
        "  local function types(f) local t = {} for _, c in ipairs(f:schema()) do t[#t+1] = c.type end return table.concat(t, ',') end\n"
        "  for _, f in ipairs{a, b, c, d} do out:append{ names = names(f), types = types(f), n = #f } end\n"
        "  out:append{ names = 'c.y2', types = tostring(c:get(2, 'y')), n = c:get(3, 1) }\n"
        "  out:append{ names = 'd.v', types = tostring(d:get(2, 'v')), n = d:get(1, 2) }\n"
        "  return out\n"
        "end }\n");
    frame *in = frame_create();
    frame *f = reduce_ok(s, in);
    static const char *const names[] = {"word,n,w", "alpha,zeta", "x,y", "k,v", "c.y2", "d.v"};
    static const char *const types[] = {"string,int64,float64", "string,bool", "int64,string",
                                        "string,float64", "nil", "nil"};
    static const int ns[] = {0, 0, 3, 2, 3, 1};
    ck_assert_uint_eq(frame_nrows(f), 6);
    for (size_t i = 0; i < 6; i++) {
        ck_assert_msg(str_eq_at(col(f, "names"), i, names[i]), "row %zu names", i);
        ck_assert_msg(str_eq_at(col(f, "types"), i, types[i]), "row %zu types", i);
        ck_assert_int_eq(i64_at(f, "n", i), ns[i]);
    }
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

/* Identity round trips: every accessor rebuilt into a frame must give back the input. */
START_TEST(test_accessors_roundtrip)
{
    static const char *const scripts[] = {
        /* rows() + append into a frame with the input's schema */
        "return { reduce = function(f, ctx) local sch = {} for _, c in ipairs(f:schema()) do sch[#sch+1] = {c.name, c.type} end\n"
        "  local g = frame.new(sch) for row in f:rows() do g:append(row) end return g end }",
        /* rows() + ctx:emit: new columns come in name order, so select the input's order */
        "local out\n"
        "return { reduce = function(f, ctx) for row, i in f:rows() do assert(row.id == i) ctx:emit(row) end end }",
        /* to_table + from_rows with the schema */
        "return { reduce = function(f) local sch = {} for _, c in ipairs(f:schema()) do sch[#sch+1] = {c.name, c.type} end\n"
        "  return frame.from_rows(f:to_table(), sch) end }",
        /* column() */
        "return { reduce = function(f) local g = frame.new{ {'id', f:column('id')} }\n"
        "  for i, name in ipairs(f:columns()) do if i > 1 then g:add_column(name, f:schema()[i].type)\n"
        "    local vals = f:column(i) local h = g:with_column(name, function(r) return vals[r.id] end) g = h end end\n"
        "  return g end }",
        /* get() and row() */
        "return { reduce = function(f) local g = frame.new{ {'id','int64'}, {'k','string'}, {'g','int64'}, {'x','float64'}, {'b','bool'} }\n"
        "  for i = 1, #f do local r = f:row(i) g:append{ id = f:get(i, 'id'), k = r.k, g = f:get(i, 3), x = r.x, b = r.b } end\n"
        "  return g end }",
        /* the input itself (borrowed: the engine gets a copy) */
        "return { reduce = function(f) return f end }",
        /* clone, then a list of rows */
        "return { reduce = function(f) return f:clone():to_table() end }",
    };
    frame *in = make_frame(NROWS);
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        script *s = load_script("roundtrip.lua", scripts[i]);
        frame *f = reduce_ok(s, in);
        ck_assert_ptr_ne(f, in);
        if (i == 1) {   /* emitted: columns by name */
            static const char *const order[] = {"b", "g", "id", "k", "x"};
            ck_assert_uint_eq(frame_ncols(f), 5);
            for (size_t c = 0; c < 5; c++) ck_assert_str_eq(frame_col_at(f, c)->name, order[c]);
            frame *sel = ops_select(f, (const char *const[]){"id", "k", "g", "x", "b"}, 5, NULL);
            assert_frames_equal(sel, in);
            frame_free(sel);
        } else if (i == 6) {   /* from rows without a schema: all-typed columns inferred, order by name */
            ck_assert_uint_eq(frame_nrows(f), NROWS);
            for (size_t r = 0; r < NROWS; r++) ck_assert_int_eq(i64_at(f, "id", r), (int64_t)r + 1);
        } else {
            assert_frames_equal(f, in);
        }
        frame_free(f);
        script_free(s);
    }
    frame_free(in);
}
END_TEST

START_TEST(test_shape_and_format)
{
    script *s = load_script("shape.lua",
        "return { reduce = function(f, ctx)\n"
        "  local sch = {}\n"
        "  for _, c in ipairs(f:schema()) do sch[#sch+1] = c.name .. ':' .. c.type end\n"
        "  return frame.from_rows{ { nrows = f:nrows(), len = #f, ncols = f:ncols(),\n"
        "    schema = table.concat(sch, ' '), text = tostring(f:head(3)), text2 = f:format(3) } }\n"
        "end }\n");
    frame *in = make_frame(NROWS);
    frame *f = reduce_ok(s, in);
    mr_err e;
    frame *h = ops_head(in, 3, &e);
    char *text = frame_format(h, 20), *text2 = frame_format(in, 3);
    ck_assert_int_eq(i64_at(f, "nrows", 0), NROWS);
    ck_assert_int_eq(i64_at(f, "len", 0), NROWS);
    ck_assert_int_eq(i64_at(f, "ncols", 0), 5);
    ck_assert(str_eq_at(col(f, "schema"), 0, "id:int64 k:string g:int64 x:float64 b:bool"));
    ck_assert(str_eq_at(col(f, "text"), 0, text));
    ck_assert(str_eq_at(col(f, "text2"), 0, text2));
    free(text);
    free(text2);
    frame_free(h);
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

START_TEST(test_head_select_concat)
{
    script *s = load_script("hsc.lua",
        "return { reduce = function(f)\n"
        "  return f:head(7):select('x', 'id'):concat(f:limit(2):select{'x', 'id'})\n"
        "end }\n");
    frame *in = make_frame(NROWS);
    frame *f = reduce_ok(s, in);
    ck_assert_uint_eq(frame_nrows(f), 9);
    ck_assert_uint_eq(frame_ncols(f), 2);
    ck_assert_str_eq(frame_col_at(f, 0)->name, "x");
    ck_assert_str_eq(frame_col_at(f, 1)->name, "id");
    for (size_t i = 0; i < 9; i++) {
        size_t src = i < 7 ? i : i - 7;
        ck_assert(cell_equal(col(f, "x"), i, col(in, "x"), src));
        ck_assert(cell_equal(col(f, "id"), i, col(in, "id"), src));
    }
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

START_TEST(test_filter)
{
    script *s = load_script("filter.lua",
        "return { reduce = function(f)\n"
        "  local a = f:filter(function(r) return r.g ~= nil and r.g > 2 and r.b end)\n"
        "  local b = f:filter('x', '>=', 5.5)\n"
        "  local c = f:filter('k', '==', 'fig')\n"
        "  return a:select('id'):with_column('which', 'a')\n"
        "    :concat(b:select('id'):with_column('which', 'b'), c:select('id'):with_column('which', 'c'))\n"
        "end }\n");
    frame *in = make_frame(NROWS);
    frame *f = reduce_ok(s, in);
    const frame_col *g = col(in, "g"), *x = col(in, "x"), *k = col(in, "k"), *b = col(in, "b");
    size_t out = 0;
    for (int which = 0; which < 3; which++) {
        for (size_t i = 0; i < NROWS; i++) {
            int keep;
            if (which == 0) keep = !frame_col_is_null(g, i) && g->v.i64[i] > 2 && b->v.b[i];
            else if (which == 1) keep = !frame_col_is_null(x, i) && x->v.f64[i] >= 5.5;
            else keep = str_eq_at(k, i, "fig");
            if (!keep) continue;
            ck_assert_msg(out < frame_nrows(f), "too few rows");
            ck_assert_int_eq(i64_at(f, "id", out), (int64_t)i + 1);
            const char w[2] = {(char)('a' + which), 0};
            ck_assert(str_eq_at(col(f, "which"), out, w));
            out++;
        }
    }
    ck_assert_uint_eq(frame_nrows(f), out);
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

START_TEST(test_with_column)
{
    script *s = load_script("wc.lua",
        "return { reduce = function(f)\n"
        "  local vals = {}\n"
        "  for i = 1, #f do vals[i] = (i % 3 == 0) and ('v' .. i) or nil end\n"
        "  return f:with_column('y', function(r) return r.g and r.g * 2 + 0.5 or nil end)\n"
        "          :with_column('z', vals):with_column('g', function(r) return r.id end)\n"
        "end }\n");
    frame *in = make_frame(NROWS);
    frame *f = reduce_ok(s, in);
    const frame_col *g = col(in, "g"), *y = col(f, "y"), *z = col(f, "z");
    ck_assert_uint_eq(frame_ncols(f), 7);
    ck_assert_int_eq(y->type, FRAME_F64);
    ck_assert_int_eq(z->type, FRAME_STR);
    for (size_t i = 0; i < NROWS; i++) {
        if (frame_col_is_null(g, i)) ck_assert(frame_col_is_null(y, i));
        else ck_assert_double_eq(frame_col_num(y, i), g->v.i64[i] * 2 + 0.5);
        char v[16];
        snprintf(v, sizeof v, "v%zu", i + 1);
        ck_assert(str_eq_at(z, i, (i + 1) % 3 == 0 ? v : NULL));
        ck_assert_int_eq(i64_at(f, "g", i), (int64_t)i + 1);   /* replaced in place */
    }
    ck_assert_str_eq(frame_col_at(f, 2)->name, "g");
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

static const frame *sort_src;
static int sort_cmp(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const frame_col *g = frame_col_by_name(sort_src, "g"), *k = frame_col_by_name(sort_src, "k");
    int na = frame_col_is_null(g, a), nb = frame_col_is_null(g, b);
    if (na != nb) return na - nb;                         /* nulls last */
    if (!na && g->v.i64[a] != g->v.i64[b]) return g->v.i64[a] > g->v.i64[b] ? -1 : 1;  /* desc */
    na = frame_col_is_null(k, a);
    nb = frame_col_is_null(k, b);
    if (na != nb) return na - nb;
    if (!na) {
        size_t la, lb;
        const char *sa = frame_col_str(k, a, &la), *sb = frame_col_str(k, b, &lb);
        int c = memcmp(sa, sb, la < lb ? la : lb);
        if (c) return c;
        if (la != lb) return la < lb ? -1 : 1;
    }
    return a < b ? -1 : a > b;                             /* stable */
}

START_TEST(test_sort_by)
{
    frame *in = make_frame(NROWS);
    size_t idx[NROWS];
    for (size_t i = 0; i < NROWS; i++) idx[i] = i;
    sort_src = in;
    qsort(idx, NROWS, sizeof *idx, sort_cmp);
    static const char *const variants[] = {
        "return { reduce = function(f) return f:sort_by({'g', 'desc'}, 'k') end }",
        "return { reduce = function(f) return f:sort_by{ {'g', desc = true}, {'k', 'asc'} } end }",
    };
    for (size_t v = 0; v < 2; v++) {
        script *s = load_script("sort.lua", variants[v]);
        frame *f = reduce_ok(s, in);
        ck_assert_uint_eq(frame_nrows(f), NROWS);
        for (size_t i = 0; i < NROWS; i++)
            ck_assert_msg(i64_at(f, "id", i) == (int64_t)idx[i] + 1, "variant %zu row %zu", v, i);
        frame_free(f);
        script_free(s);
    }
    frame_free(in);
}
END_TEST

START_TEST(test_distinct)
{
    script *s = load_script("distinct.lua",
        "return { reduce = function(f) return f:distinct('k', 'g'):select('k', 'g') end }");
    frame *in = make_frame(NROWS);
    frame *f = reduce_ok(s, in);
    const frame_col *k = col(in, "k"), *g = col(in, "g");
    size_t out = 0;
    for (size_t i = 0; i < NROWS; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = cell_equal(k, i, k, j) && cell_equal(g, i, g, j);
        if (seen) continue;
        ck_assert(cell_equal(col(f, "k"), out, k, i));
        ck_assert(cell_equal(col(f, "g"), out, g, i));
        out++;
    }
    ck_assert_uint_eq(frame_nrows(f), out);
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile_of(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, dbl_cmp);
    double h = (n - 1) * q;
    size_t lo = (size_t)floor(h);
    return lo + 1 < n ? v[lo] + (h - lo) * (v[lo + 1] - v[lo]) : v[lo];
}

START_TEST(test_group_by_agg)
{
    script *s = load_script("agg.lua",
        "return { reduce = function(f)\n"
        "  return f:group_by('k'):agg{ n = count(), s = sum('g'), m = mean('x'), lo = min('x'),\n"
        "    hi = max('g'), nd = count_distinct('g'), fx = first('x'), med = median('x'),\n"
        "    q9 = quantile('x', 0.9), cx = count('x'), aq = approx_quantile('x', 0.9) }\n"
        "end }\n");
    frame *in = make_frame(NROWS);
    frame *f = reduce_ok(s, in);
    static const char *const order[] = {"k", "n", "s", "m", "lo", "hi", "nd", "fx", "med", "q9", "cx", "aq"};
    ck_assert_uint_eq(frame_ncols(f), 12);
    for (size_t c = 0; c < 12; c++) ck_assert_str_eq(frame_col_at(f, c)->name, order[c]);
    const frame_col *k = col(in, "k"), *g = col(in, "g"), *x = col(in, "x");
    size_t ngroups = 0;
    for (size_t i = 0; i < NROWS; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = cell_equal(k, i, k, j);
        if (seen) continue;
        /* group of row i: compute everything independently */
        long n = 0, sum = 0, cx = 0, hi = -1;
        double xs[NROWS], xsum = 0, lo = INFINITY, fx = NAN;
        int gseen[6] = {0}, nd = 0;
        for (size_t j = i; j < NROWS; j++) {
            if (!cell_equal(k, i, k, j)) continue;
            n++;
            if (!frame_col_is_null(g, j)) {
                sum += g->v.i64[j];
                if (g->v.i64[j] > hi) hi = g->v.i64[j];
                if (!gseen[g->v.i64[j]]++) nd++;
            }
            if (!frame_col_is_null(x, j)) {
                if (isnan(fx)) fx = x->v.f64[j];
                xs[cx++] = x->v.f64[j];
                xsum += x->v.f64[j];
                if (x->v.f64[j] < lo) lo = x->v.f64[j];
            }
        }
        size_t r = ngroups++;
        ck_assert(cell_equal(col(f, "k"), r, k, i));
        ck_assert_int_eq(i64_at(f, "n", r), n);
        ck_assert_int_eq(i64_at(f, "s", r), sum);
        ck_assert_double_eq_tol(frame_col_num(col(f, "m"), r), xsum / cx, 1e-9);
        ck_assert_double_eq(frame_col_num(col(f, "lo"), r), lo);
        ck_assert_int_eq(i64_at(f, "hi", r), hi);
        ck_assert_int_eq(i64_at(f, "nd", r), nd);
        ck_assert_double_eq(frame_col_num(col(f, "fx"), r), fx);
        ck_assert_int_eq(i64_at(f, "cx", r), cx);
        double med = quantile_of(xs, cx, 0.5), q9 = quantile_of(xs, cx, 0.9);
        ck_assert_double_eq_tol(frame_col_num(col(f, "med"), r), med, 1e-9);
        ck_assert_double_eq_tol(frame_col_num(col(f, "q9"), r), q9, 1e-9);
        /* a sketch: near the exact value (x spans 0..10) */
        ck_assert_double_eq_tol(frame_col_num(col(f, "aq"), r), q9, 0.5);
    }
    ck_assert_uint_eq(frame_nrows(f), ngroups);
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

START_TEST(test_agg_whole_frame_and_count)
{
    script *s = load_script("agg2.lua",
        "return { reduce = function(f)\n"
        "  local t = f:agg{ total = sum('id'), rows = count() }\n"
        "  local c = f:group_by('b'):count('rows_per_b')\n"
        "  return t:with_column('true_rows', c:filter('b', '==', true):get(1, 'rows_per_b'))\n"
        "end }\n");
    frame *in = make_frame(NROWS);
    frame *f = reduce_ok(s, in);
    long ntrue = 0;
    for (size_t i = 0; i < NROWS; i++) ntrue += col(in, "b")->v.b[i];
    ck_assert_uint_eq(frame_nrows(f), 1);
    ck_assert_int_eq(i64_at(f, "total", 0), NROWS * (NROWS + 1) / 2);
    ck_assert_int_eq(i64_at(f, "rows", 0), NROWS);
    ck_assert_int_eq(i64_at(f, "true_rows", 0), ntrue);
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

START_TEST(test_join)
{
    script *s = load_script("join.lua",
        "return { reduce = function(f)\n"
        "  local r = frame.new{ {'k', 'string'}, {'label', 'string'} }\n"
        "  r:append{ k = 'apple', label = 'A' }\n"
        "  r:append{ k = 'fig', label = 'F1' }\n"
        "  r:append{ k = 'fig', label = 'F2' }\n"
        "  r:append{ label = 'nullkey' }\n"
        "  local inner = f:join(r, { on = 'k' })\n"
        "  local left = f:join(r, { on = {'k'}, how = 'left' })\n"
        "  local r2 = r:select('label', 'k'):with_column('kk', r:column('k')):select('kk', 'label')\n"
        "  local lr = f:join(r2, { on = { left = 'k', right = 'kk' } })\n"
        "  return inner:select('id', 'label'):with_column('how', 'inner')\n"
        "    :concat(left:select('id', 'label'):with_column('how', 'left'),\n"
        "            lr:select('id', 'label'):with_column('how', 'lr'))\n"
        "end }\n");
    frame *in = make_frame(NROWS);
    frame *f = reduce_ok(s, in);
    const frame_col *k = col(in, "k");
    static const char *const how[] = {"inner", "left", "lr"};
    size_t out = 0;
    for (int h = 0; h < 3; h++) {
        for (size_t i = 0; i < NROWS; i++) {
            const char *labels[2];
            size_t nl = 0;
            if (str_eq_at(k, i, "apple")) labels[nl++] = "A";
            if (str_eq_at(k, i, "fig")) { labels[nl++] = "F1"; labels[nl++] = "F2"; }
            if (nl == 0 && h == 1) labels[nl++] = NULL;   /* left join keeps the row */
            for (size_t j = 0; j < nl; j++, out++) {
                ck_assert_msg(out < frame_nrows(f), "too few rows");
                ck_assert_int_eq(i64_at(f, "id", out), (int64_t)i + 1);
                ck_assert_msg(str_eq_at(col(f, "label"), out, labels[j]), "%s row %zu", how[h], out);
                ck_assert(str_eq_at(col(f, "how"), out, how[h]));
            }
        }
    }
    ck_assert_uint_eq(frame_nrows(f), out);
    frame_free(f);
    frame_free(in);
    script_free(s);
}
END_TEST

START_TEST(test_borrowed_input_copy_on_write)
{
    script *s = load_script("cow.lua",
        "kept = nil\n"
        "return { reduce = function(f) f:append{ id = -1 } return f end }\n");
    frame *in = make_frame(10);
    frame *f = reduce_ok(s, in);
    ck_assert_uint_eq(frame_nrows(in), 10);   /* the engine's frame is untouched */
    ck_assert_uint_eq(frame_nrows(f), 11);
    ck_assert_int_eq(i64_at(f, "id", 10), -1);
    ck_assert(frame_col_is_null(col(f, "k"), 10));
    frame_free(f);
    frame_free(in);
    script_free(s);

    /* a reduce input kept past its call fails cleanly in the next task */
    s = load_script("keep.lua",
        "local kept\n"
        "return { reduce = function(f) if kept then return kept:head(1) end kept = f return f:head(1) end }\n");
    in = make_frame(10);
    f = reduce_ok(s, in);
    frame_free(f);
    mr_err e;
    f = run_reduce(s, in, &e);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(e.msg, "no longer valid") != NULL, "%s", e.msg);
    frame_free(in);
    script_free(s);
}
END_TEST

/* ---------------------------------------------------------------- ctx */

START_TEST(test_ctx)
{
    script *s = load_script("ctx.lua",
        "return { map = function(input, ctx)\n"
        "  print('hello', 1, true)\n"
        "  ctx:log('warn', 'careful', 2)\n"
        "  ctx:log('plain message')\n"
        "  for line in input:lines() do ctx:count('lines') ctx:count('chars', #line) end\n"
        "  ctx:emit{ task = ctx.task, ntasks = ctx.ntasks, kind = ctx.kind, input = ctx.input,\n"
        "            run_id = ctx.run_id, uri = input.uri, format = input.format }\n"
        "end }\n");
    capture c;
    frame *f = run_map(s, "ab\ncde\n", "lines", &c);
    ck_assert_uint_eq(frame_nrows(f), 1);
    ck_assert_int_eq(i64_at(f, "task", 0), 7);
    ck_assert_int_eq(i64_at(f, "ntasks", 0), 9);
    ck_assert(str_eq_at(col(f, "kind"), 0, "map"));
    ck_assert(str_eq_at(col(f, "run_id"), 0, "run-1"));
    ck_assert(str_eq_at(col(f, "format"), 0, "lines"));
    char *in = tmp_path("input.dat");
    ck_assert(str_eq_at(col(f, "input"), 0, in));
    ck_assert(str_eq_at(col(f, "uri"), 0, in));
    free(in);
    ck_assert_msg(strstr(c.log, "info: hello\t1\ttrue\n") != NULL, "%s", c.log);
    ck_assert_msg(strstr(c.log, "warn: careful 2\n") != NULL, "%s", c.log);
    ck_assert_msg(strstr(c.log, "info: plain message\n") != NULL, "%s", c.log);
    counters cs = {0};
    script_drain_counters(s, take_counter, &cs);
    ck_assert_int_eq(cs.n, 2);
    for (int i = 0; i < 2; i++) {
        if (strcmp(cs.names[i], "lines") == 0) ck_assert_double_eq(cs.values[i], 2);
        else if (strcmp(cs.names[i], "chars") == 0) ck_assert_double_eq(cs.values[i], 5);
        else ck_abort_msg("unexpected counter %s", cs.names[i]);
    }
    memset(&cs, 0, sizeof cs);
    script_drain_counters(s, take_counter, &cs);
    ck_assert_int_eq(cs.n, 0);
    frame_free(f);
    script_free(s);
}
END_TEST

/* ---------------------------------------------------------------- streaming emit */

/* What an emit_flush sink received: the frames, in order; optionally each run through the
 * job's combine first, as the engine's map task does (a call nested in the map's). */
typedef struct flushed {
    script *s;
    int combine;
    frame *rows;         /* every flushed batch appended */
    int calls;
    size_t max_rows;     /* the largest batch */
} flushed;

static mr_code take_flush(void *ud, frame *rows, mr_err *e)
{
    flushed *fl = ud;
    fl->calls++;
    if (frame_nrows(rows) > fl->max_rows) fl->max_rows = frame_nrows(rows);
    if (fl->combine) {
        script_task ct;
        capture c;
        task_init(&ct, &c, "combine", NULL, NULL);
        frame *out = script_run_frame_fn(fl->s, "combine", rows, &ct, e);
        frame_free(rows);
        if (!out) return e->code;
        rows = out;
    }
    mr_code rc = frame_append_frame(fl->rows, rows, e);
    frame_free(rows);
    return rc;
}

static frame *run_map_streaming(script *s, const char *data, flushed *fl, size_t flush_bytes,
                                mr_err *e)
{
    char *in = write_tmp("input.dat", data);
    script_task t;
    capture c;
    task_init(&t, &c, "map", in, "lines");
    fl->s = s;
    fl->rows = frame_create();
    t.emit_flush = take_flush;
    t.emit_ud = fl;
    t.emit_flush_bytes = flush_bytes;
    frame *f = script_run_map(s, &t, e);
    free(in);
    return f;
}

static char *numbered_lines(int n)
{
    char *d = malloc((size_t)n * 12 + 1), *p = d;
    for (int i = 1; i <= n; i++) p += sprintf(p, "%d\n", i);
    return d;
}

START_TEST(test_emit_streams)
{
    /* row tables: gathered and handed over every 4096 rows once past the flush size; what
     * is left when map returns is its result, after the flushed rows */
    script *s = load_script("emit_stream.lua",
        "return { map = function(input, ctx)\n"
        "  for line in input:lines() do ctx:emit{ n = tonumber(line) } end\n"
        "end }\n");
    char *data = numbered_lines(10000);
    flushed fl = {0};
    mr_err e;
    frame *rest = run_map_streaming(s, data, &fl, 1, &e);
    ck_assert_msg(rest != NULL, "%s", e.msg);
    ck_assert_int_eq(fl.calls, 2);
    ck_assert_uint_eq(frame_nrows(fl.rows), 8192);
    ck_assert_uint_eq(frame_nrows(rest), 10000 - 8192);
    for (size_t i = 0; i < 8192; i++) ck_assert_int_eq(i64_at(fl.rows, "n", i), (int64_t)i + 1);
    for (size_t i = 0; i < frame_nrows(rest); i++)
        ck_assert_int_eq(i64_at(rest, "n", i), (int64_t)(8193 + i));
    frame_free(rest);
    frame_free(fl.rows);

    /* frames: each emit past the size goes at once; rows emitted and a frame returned are
     * both output, emitted first */
    script_free(s);
    s = load_script("emit_frames.lua",
        "return { map = function(input, ctx)\n"
        "  for f in input:frames(1000) do ctx:emit(f) end\n"
        "  return frame.new{ line = {'last'} }\n"
        "end }\n");
    memset(&fl, 0, sizeof fl);
    rest = run_map_streaming(s, data, &fl, 1, &e);
    ck_assert_msg(rest != NULL, "%s", e.msg);
    ck_assert_int_eq(fl.calls, 10);
    ck_assert_uint_eq(fl.max_rows, 1000);
    ck_assert_uint_eq(frame_nrows(fl.rows), 10000);
    ck_assert_uint_eq(frame_nrows(rest), 1);
    ck_assert(str_eq_at(col(rest, "line"), 0, "last"));
    frame_free(rest);
    frame_free(fl.rows);

    /* without a sink nothing changes: every emitted row, then the returned frame */
    script_task t;
    capture c;
    char *in = write_tmp("input.dat", data);
    task_init(&t, &c, "map", in, "lines");
    rest = script_run_map(s, &t, &e);
    ck_assert_msg(rest != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(rest), 10001);
    ck_assert(str_eq_at(col(rest, "line"), 10000, "last"));
    frame_free(rest);
    free(in);
    free(data);
    script_free(s);
}
END_TEST

START_TEST(test_emit_combine_nested)
{
    /* the sink runs combine while map is still running: the map's own frames (f, kept
     * across the flushes) stay valid, and combine's ctx:emit is its own */
    script *s = load_script("emit_combine.lua",
        "return {\n"
        "  map = function(input, ctx)\n"
        "    local kept = frame.new{ k = {'x'} }\n"
        "    for f in input:frames(500) do\n"
        "      ctx:emit(f:with_column('k', function(r) return tostring(tonumber(r.line) % 3) end))\n"
        "    end\n"
        "    assert(#kept == 1 and kept:get(1, 'k') == 'x')\n"
        "  end,\n"
        "  combine = function(f, ctx)\n"
        "    assert(ctx.kind == 'combine')\n"
        "    for row in f:group_by('k'):agg{ n = count() }:rows() do ctx:emit(row) end\n"
        "  end,\n"
        "}\n");
    char *data = numbered_lines(3000);
    flushed fl = {0};
    fl.combine = 1;
    mr_err e;
    frame *rest = run_map_streaming(s, data, &fl, 1, &e);
    ck_assert_msg(rest != NULL, "%s", e.msg);
    ck_assert_int_eq(fl.calls, 6);
    ck_assert_uint_eq(frame_nrows(rest), 0);
    /* 6 batches of 500 lines, 3 keys each: the counts add up per key */
    int64_t per_key[3] = {0, 0, 0};
    ck_assert_uint_eq(frame_nrows(fl.rows), 18);
    for (size_t i = 0; i < 18; i++) {
        size_t len;
        const char *k = frame_col_str(col(fl.rows, "k"), i, &len);
        per_key[k[0] - '0'] += i64_at(fl.rows, "n", i);
    }
    ck_assert_int_eq(per_key[0], 1000);
    ck_assert_int_eq(per_key[1], 1000);
    ck_assert_int_eq(per_key[2], 1000);
    frame_free(rest);
    frame_free(fl.rows);

    /* an error in the nested combine fails the map, naming the combine's line */
    script_free(s);
    s = load_script("emit_combine_err.lua",
        "return {\n"
        "  map = function(input, ctx) for f in input:frames(100) do ctx:emit(f) end end,\n"
        "  combine = function(f, ctx)\n"
        "    error('combine broke')\n"
        "  end,\n"
        "}\n");
    memset(&fl, 0, sizeof fl);
    fl.combine = 1;
    rest = run_map_streaming(s, data, &fl, 1, &e);
    ck_assert_ptr_null(rest);
    ck_assert_msg(strstr(e.msg, "emit_combine_err.lua:4: combine broke") != NULL, "%s", e.msg);
    frame_free(fl.rows);
    free(data);
    script_free(s);
}
END_TEST

START_TEST(test_partition_fn)
{
    script *s = load_script("part.lua",
        "return { map = function() end,\n"
        "  partition = function(f, n, ctx)\n"
        "    assert(ctx.kind == 'partition' and n == 3)\n"
        "    local out = {}\n"
        "    for i, id in ipairs(f:column('id')) do out[i] = id % 3 + 1 end\n"
        "    if #f == 7 then return 5 end\n"
        "    if #f == 8 then out[#out] = nil end\n"
        "    if #f == 9 then out[2] = 4 end\n"
        "    return out\n"
        "  end }\n");
    frame *f = make_frame(NROWS);
    uint32_t part[NROWS];
    script_task t;
    capture c;
    mr_err e;
    task_init(&t, &c, "partition", NULL, NULL);
    ck_assert_int_eq(script_run_partition(s, f, 3, part, &t, &e), MR_OK);
    for (size_t i = 0; i < NROWS; i++) ck_assert_uint_eq(part[i], (uint32_t)((i + 1) % 3));
    frame_free(f);
    struct { size_t rows; const char *needle; } bad[] = {
        {7, "partition returned a number"},
        {8, "partition returned 7 values for 8 rows"},
        {9, "partition gave row 2 the reducer 4; reducers are 1..3"},
    };
    for (size_t k = 0; k < 3; k++) {
        f = make_frame(bad[k].rows);
        task_init(&t, &c, "partition", NULL, NULL);
        ck_assert_int_eq(script_run_partition(s, f, 3, part, &t, &e), MR_ESCRIPT);
        ck_assert_msg(strstr(e.msg, bad[k].needle) != NULL, "%s", e.msg);
        frame_free(f);
    }
    script_free(s);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(test_syntax_and_shape_errors)
{
    mr_err e = load_error("syntax.lua", "local x = 1\nlocal y = = 2\nreturn {}\n");
    ck_assert_int_eq(e.code, MR_ESCRIPT);
    ck_assert_msg(strstr(e.msg, "syntax.lua:2:") != NULL, "%s", e.msg);
    e = load_error("notable.lua", "return 42\n");
    ck_assert_msg(strstr(e.msg, "must return a table") != NULL, "%s", e.msg);
    e = load_error("nofn.lua", "return { combine = function() end }\n");
    ck_assert_msg(strstr(e.msg, "neither a map nor a reduce") != NULL, "%s", e.msg);
    e = load_error("toperr.lua", "local t = {}\nerror('top level boom')\n");
    ck_assert_msg(strstr(e.msg, "toperr.lua:2: top level boom") != NULL, "%s", e.msg);
    mr_err_clear(&e);
    ck_assert_ptr_null(script_create("/nonexistent/x.lua", NULL, 0, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    /* source given by the caller (as fetched from S3): chunk named after the path */
    const char *src = "return {\n map = function() error('from s3') end }";
    mr_err_clear(&e);
    script *s = script_create("s3://bucket/jobs/job.lua", src, strlen(src), &e);
    ck_assert_msg(s != NULL, "%s", e.msg);
    capture c;
    char *in = write_tmp("x.txt", "a\n");
    script_task t;
    task_init(&t, &c, "map", in, "lines");
    ck_assert_ptr_null(script_run_map(s, &t, &e));
    ck_assert_msg(strstr(e.msg, "s3://bucket/jobs/job.lua:2: from s3") != NULL, "%s", e.msg);
    free(in);
    script_free(s);
}
END_TEST

START_TEST(test_map_error_names_record)
{
    script *s = load_script("boom.lua",
        "return { map = function(input, ctx)\n"
        "  for line in input:lines() do\n"
        "    if line == 'bad' then\n"
        "      error('cannot handle ' .. line)\n"
        "    end\n"
        "  end\n"
        "end }\n");
    char *in = write_tmp("in.txt", "ok\nok\nfine\nbad\nok\n");
    script_task t;
    capture c;
    mr_err e;
    task_init(&t, &c, "map", in, "lines");
    ck_assert_ptr_null(script_run_map(s, &t, &e));
    ck_assert_int_eq(e.code, MR_ESCRIPT);
    ck_assert_msg(strstr(e.msg, "boom.lua:4: cannot handle bad") != NULL, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "record 4") != NULL, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "task 7") != NULL, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "stack traceback") != NULL, "%s", e.msg);
    ck_assert_uint_eq(t.records_in, 4);
    /* the state is still usable: a clean input runs */
    char *in2 = write_tmp("in2.txt", "ok\n");
    task_init(&t, &c, "map", in2, "lines");
    frame *f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), 0);
    frame_free(f);
    free(in);
    free(in2);
    script_free(s);
}
END_TEST

START_TEST(test_bad_return_and_moved_frame)
{
    script *s = load_script("ret.lua", "return { reduce = function() return 'oops' end }\n");
    frame *in = frame_create();
    mr_err e;
    ck_assert_ptr_null(run_reduce(s, in, &e));
    ck_assert_msg(strstr(e.msg, "returned a string") != NULL, "%s", e.msg);
    script_free(s);
    /* a frame made by one task and handed over cannot be used by the next */
    s = load_script("moved.lua",
        "local cache\n"
        "return { reduce = function() if not cache then cache = frame.new{ a = {1, 2} } return cache end\n"
        "  return cache:head(1) end }\n");
    frame *f = reduce_ok(s, in);
    ck_assert_uint_eq(frame_nrows(f), 2);
    frame_free(f);
    ck_assert_ptr_null(run_reduce(s, in, &e));
    /* `return cache:head(1)` is a tail call: the error names the function instead */
    ck_assert_msg(strstr(e.msg, "reduce function at ") && strstr(e.msg, "moved.lua:2") &&
                  strstr(e.msg, "f:clone()"), "%s", e.msg);
    frame_free(in);
    script_free(s);
}
END_TEST

/* ---------------------------------------------------------------- strict globals */

START_TEST(test_strict_globals)
{
    script *s = load_script("strict.lua",
        "limit = 3\n"
        "declared_nil = nil\n"
        "return { reduce = function(f)\n"
        "  local x = declared_nil\n"
        "  if limit > 2 then return frame.new{ v = { limit } } end\n"
        "end }\n");
    frame *in = frame_create();
    frame *f = reduce_ok(s, in);
    ck_assert_int_eq(i64_at(f, "v", 0), 3);
    frame_free(f);
    script_free(s);

    s = load_script("typo.lua",
        "return { reduce = function(f)\n"
        "  local n = 1\n"
        "  return frame.new{ v = { nn } }\n"
        "end }\n");
    mr_err e;
    ck_assert_ptr_null(run_reduce(s, in, &e));
    ck_assert_msg(strstr(e.msg, "typo.lua:3: undefined global 'nn'") != NULL, "%s", e.msg);
    script_free(s);

    s = load_script("assign.lua",
        "return { reduce = function(f)\n"
        "  total = 0\n"
        "end }\n");
    ck_assert_ptr_null(run_reduce(s, in, &e));
    ck_assert_msg(strstr(e.msg, "assign.lua:2: assignment to undeclared global 'total'") != NULL, "%s", e.msg);
    script_free(s);

    e = load_error("topread.lua", "local a = 1\nlocal b = undefined_thing\nreturn {}\n");
    ck_assert_msg(strstr(e.msg, "topread.lua:2: undefined global 'undefined_thing'") != NULL, "%s", e.msg);
    frame_free(in);
}
END_TEST

/* ---------------------------------------------------------------- sandbox */

START_TEST(test_sandbox)
{
    char *so = write_tmp("evil.so", "not really a shared object");
    char *mod = write_tmp("helper.lua", "local M = {}\nfunction M.twice(x) return 2 * x end\nreturn M\n");
    script *s = load_script("sandbox.lua",
        "local helper = require('helper')\n"
        "local function fails(f, ...) return not pcall(f, ...) end\n"
        "return { reduce = function(_, ctx)\n"
        "  local bc = string.dump(function() return 1 end)\n"
        "  return frame.from_rows{ {\n"
        "    os_execute = os.execute == nil, io_popen = io.popen == nil,\n"
        "    os_getenv = os.getenv == nil, os_remove = os.remove == nil,\n"
        "    os_time = type(os.time()) == 'number',\n"
        "    ffi = fails(require, 'ffi'), jit = fails(require, 'jit'), cmod = fails(require, 'evil'),\n"
        "    socket = fails(require, 'socket'), escape = fails(require, '..sandbox'),\n"
        "    debug = rawget(_G, 'debug') == nil, package = rawget(_G, 'package') == nil,\n"
        "    dofile = rawget(_G, 'dofile') == nil, loadfile = rawget(_G, 'loadfile') == nil,\n"
        "    load_bc = load(bc) == nil, loadstring_bc = loadstring(bc) == nil,\n"
        "    load_bmode = load('return 1', 'x', 'b') == nil,\n"
        "    load_text = load('return 1 + 1')() == 2,\n"
        "    io_open = fails(io.open, '/etc/passwd'), io_lines = fails(io.lines, '/etc/passwd'),\n"
        "    helper = helper.twice(21) == 42,\n"
        "  } }\n"
        "end }\n");
    frame *in = frame_create();
    frame *f = reduce_ok(s, in);
    ck_assert_uint_eq(frame_nrows(f), 1);
    ck_assert_uint_eq(frame_ncols(f), 21);
    for (size_t c = 0; c < frame_ncols(f); c++) {
        const frame_col *fc = frame_col_at(f, c);
        ck_assert_msg(fc->type == FRAME_BOOL && fc->v.b[0] == 1, "sandbox check '%s' failed", fc->name);
    }
    frame_free(f);
    script_free(s);

    /* a direct require of a C module names the rule */
    s = load_script("cmod.lua", "return { reduce = function() local m = require('evil') return m end }\n");
    mr_err e;
    ck_assert_ptr_null(run_reduce(s, in, &e));
    ck_assert_msg(strstr(e.msg, "cmod.lua:1:") && strstr(e.msg, "C modules are not allowed"), "%s", e.msg);
    script_free(s);
    frame_free(in);
    free(so);
    free(mod);
}
END_TEST

START_TEST(test_scratch_io)
{
    char *scratch = tmp_path("scratch");
    ck_assert_int_eq(mkdir(scratch, 0700), 0);
    script *s = load_script("scratch.lua",
        "return { map = function(input, ctx)\n"
        "  local f = assert(io.open('notes.txt', 'w'))\n"
        "  f:write('one\\ntwo\\n') f:close()\n"
        "  local n = 0\n"
        "  for l in io.lines('notes.txt') do n = n + 1 end\n"
        "  local outside = pcall(io.open, '/etc/hostname')\n"
        "  local dotdot = pcall(io.open, '../x.txt', 'w')\n"
        "  ctx:emit{ n = n, outside = outside, dotdot = dotdot }\n"
        "end }\n");
    char *in = write_tmp("in.txt", "x\n");
    script_task t;
    capture c;
    mr_err e;
    task_init(&t, &c, "map", in, "lines");
    t.scratch_dir = scratch;
    frame *f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_int_eq(i64_at(f, "n", 0), 2);
    ck_assert_int_eq(col(f, "outside")->v.b[0], 0);
    ck_assert_int_eq(col(f, "dotdot")->v.b[0], 0);
    char *notes = tmp_path("scratch/notes.txt");
    ck_assert_int_eq(access(notes, F_OK), 0);
    frame_free(f);
    /* without a scratch folder: no files at all */
    task_init(&t, &c, "map", in, "lines");
    ck_assert_ptr_null(script_run_map(s, &t, &e));
    ck_assert_msg(strstr(e.msg, "scratch.lua:2:") && strstr(e.msg, "cannot open files"), "%s", e.msg);
    free(notes);
    free(in);
    free(scratch);
    script_free(s);
}
END_TEST

/* ---------------------------------------------------------------- records */

START_TEST(test_csv_records_bad_rows)
{
    script *s = load_script("csv.lua",
        "return { map = function(input, ctx)\n"
        "  local f = frame.new{ {'name', 'string'}, {'qty', 'int64'} }\n"
        "  for r in input:records() do f:append{ name = r.name, qty = tonumber(r.qty) } end\n"
        "  return f\n"
        "end }\n");
    capture c;
    frame *f = run_map(s, "name,qty\nbolt,3\nnut,4,extra\nscrew,10\n\"wash,er\",7\n", "csv", &c);
    ck_assert_uint_eq(frame_nrows(f), 3);
    ck_assert(str_eq_at(col(f, "name"), 0, "bolt"));
    ck_assert(str_eq_at(col(f, "name"), 1, "screw"));
    ck_assert(str_eq_at(col(f, "name"), 2, "wash,er"));
    ck_assert_int_eq(i64_at(f, "qty", 1), 10);
    ck_assert_int_eq(c.nbad, 1);
    ck_assert_msg(c.bad_record[0] == 3, "bad record number %llu", (unsigned long long)c.bad_record[0]);
    frame_free(f);
    script_free(s);
}
END_TEST

START_TEST(test_csv_no_header_and_frame)
{
    script *s = load_script("csv2.lua",
        "return { map = function(input, ctx)\n"
        "  local f = frame.new()\n"
        "  for r in input:records() do f:append{ a = r[1], b = r[2], n = #r } end\n"
        "  return f\n"
        "end }\n");
    reader_opts ro;
    reader_opts_init(&ro);
    ro.format = READER_CSV;
    ro.header = 0;
    ro.delimiter = '\t';
    char *in = write_tmp("in.tsv", "x\ty\nz\tw\n");
    script_task t;
    capture c;
    mr_err e;
    task_init(&t, &c, "map", in, "tsv");
    t.ropts = &ro;
    frame *f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), 2);
    ck_assert(str_eq_at(col(f, "b"), 1, "w"));
    ck_assert_int_eq(i64_at(f, "n", 0), 2);
    ck_assert_uint_eq(t.records_in, 2);
    frame_free(f);
    script_free(s);

    /* input:frame(): typed columns straight from the reader */
    s = load_script("csv3.lua", "return { map = function(input) return input:frame() end }\n");
    char *in2 = write_tmp("in.csv", "id,price,ok\n1,2.5,true\n2,3,false\n3,,true\n");
    task_init(&t, &c, "map", in2, "csv");
    f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), 3);
    ck_assert_int_eq(col(f, "id")->type, FRAME_I64);
    ck_assert_int_eq(col(f, "price")->type, FRAME_F64);
    ck_assert(frame_col_is_null(col(f, "price"), 2));
    ck_assert_uint_eq(t.records_in, 3);
    frame_free(f);
    free(in);
    free(in2);
    script_free(s);
}
END_TEST

START_TEST(test_jsonl_records)
{
    script *s = load_script("json.lua",
        "return { map = function(input, ctx)\n"
        "  for r in input:records() do\n"
        "    ctx:emit{ id = r.id, city = r.addr and r.addr.city, ntags = r.tags and #r.tags, t2 = r.tags and r.tags[2] }\n"
        "  end\n"
        "end }\n");
    capture c;
    frame *f = run_map(s,
        "{\"id\": 1, \"addr\": {\"city\": \"Oslo\"}, \"tags\": [\"a\", \"b\"]}\n"
        "{\"id\": 2, broken\n"
        "{\"id\": 3, \"tags\": [\"x\", \"y\", \"z\"]}\n", "jsonl", &c);
    ck_assert_uint_eq(frame_nrows(f), 2);
    ck_assert_int_eq(i64_at(f, "id", 1), 3);
    ck_assert(str_eq_at(col(f, "city"), 0, "Oslo"));
    ck_assert(frame_col_is_null(col(f, "city"), 1));
    ck_assert_int_eq(i64_at(f, "ntags", 1), 3);
    ck_assert(str_eq_at(col(f, "t2"), 0, "b"));
    ck_assert_int_eq(c.nbad, 1);
    ck_assert_uint_eq(c.bad_record[0], 2);
    frame_free(f);
    script_free(s);
}
END_TEST

START_TEST(test_warc_without_reader)
{
    script *s = load_script("warc.lua", "return { map = function(input) return input:frame() end }\n");
    char *in = write_tmp("x.warc", "");
    script_task t;
    capture c;
    mr_err e;
    task_init(&t, &c, "map", in, "xml");
    ck_assert_ptr_null(script_run_map(s, &t, &e));
    ck_assert_msg(strstr(e.msg, "unknown input format 'xml'") != NULL, "%s", e.msg);
    free(in);
    script_free(s);
}
END_TEST

/* ---------------------------------------------------------------- runaway guard */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

START_TEST(test_runaway_guard)
{
    static const struct { const char *src; const char *where; } cases[] = {
        {"return { map = function(input, ctx)\n"
         "  local x = 0\n"
         "  while true do x = x + 1 end\n"
         "end }\n", "loop.lua:3: task exceeded its time limit"},
        /* catching the timeout does not help: the hook fires again at once */
        {"return { map = function(input, ctx)\n"
         "  while true do\n"
         "    pcall(function() while true do end end)\n"
         "  end\n"
         "end }\n", "task exceeded its time limit"},
    };
    for (size_t i = 0; i < 2; i++) {
        script *s = load_script("loop.lua", cases[i].src);
        char *in = write_tmp("in.txt", "x\n");
        script_task t;
        capture c;
        mr_err e;
        task_init(&t, &c, "map", in, "lines");
        double t0 = now();
        t.deadline = t0 + 0.3;
        ck_assert_ptr_null(script_run_map(s, &t, &e));
        double took = now() - t0;
        ck_assert_int_eq(e.code, MR_ETIMEOUT);
        ck_assert_msg(strstr(e.msg, cases[i].where) != NULL, "%s", e.msg);
        ck_assert_msg(took >= 0.29 && took < 10, "stopped after %.2fs", took);
        free(in);
        script_free(s);
    }
    /* a task without a deadline afterwards runs normally (hook and JIT restored) */
    script *s = load_script("after.lua",
        "return { map = function(input, ctx) local n = 0 for i = 1, 1e6 do n = n + i end\n"
        "  return frame.new{ n = { n } } end }\n");
    char *in = write_tmp("in.txt", "x\n");
    script_task t;
    capture c;
    mr_err e;
    task_init(&t, &c, "map", in, "lines");
    t.deadline = now() + 60;
    frame *f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_int_eq(i64_at(f, "n", 0), 500000500000LL);
    frame_free(f);
    free(in);
    script_free(s);
}
END_TEST

/* skipFailingRecords: the rerun of a map skips the records an earlier attempt failed on,
 * and reports each to on_bad with the error map raised. */
START_TEST(test_skip_records)
{
    script *s = load_script("skip.lua",
        "return { map = function(input, ctx)\n"
        "  local f = frame.new{ {'line', 'string'} }\n"
        "  for line in input:lines() do\n"
        "    if line:sub(1, 3) == 'bad' then error('cannot handle ' .. line) end\n"
        "    f:append{ line = line }\n"
        "  end\n"
        "  return f\n"
        "end }\n");
    char *in = write_tmp("skip.txt", "ok1\nbad\nok2\nok3\n");
    script_task t;
    capture c;
    mr_err e;
    /* first attempt: map fails on record 2 */
    task_init(&t, &c, "map", in, "lines");
    ck_assert_ptr_null(script_run_map(s, &t, &e));
    ck_assert_int_eq(e.code, MR_ESCRIPT);
    ck_assert_uint_eq(t.failed_record, 2);
    char reason[512];
    snprintf(reason, sizeof reason, "%s", e.msg);
    ck_assert_msg(strstr(reason, "cannot handle bad") != NULL, "%s", reason);

    /* rerun skipping it */
    uint64_t skip[] = {2};
    const char *reasons[] = {reason};
    task_init(&t, &c, "map", in, "lines");
    t.skip_records = skip;
    t.skip_reasons = reasons;
    t.nskip = 1;
    frame *f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), 3);
    ck_assert(str_eq_at(col(f, "line"), 0, "ok1"));
    ck_assert(str_eq_at(col(f, "line"), 1, "ok2"));
    ck_assert(str_eq_at(col(f, "line"), 2, "ok3"));
    ck_assert_uint_eq(t.failed_record, 0);
    ck_assert_int_eq(c.nbad, 1);
    ck_assert_uint_eq(c.bad_record[0], 2);
    ck_assert_msg(strstr(c.bad_reason[0], "skipped") != NULL, "%s", c.bad_reason[0]);
    ck_assert_msg(strstr(c.bad_reason[0], "cannot handle bad") != NULL, "%s", c.bad_reason[0]);
    frame_free(f);
    free(in);

    /* several, including the first and last records, without reasons; numbers past the
     * end change nothing; a later failure still names its own record number */
    in = write_tmp("skip2.txt", "bad1\nok1\nbad2\nok2\nbad3\nbad4\n");
    uint64_t skip2[] = {1, 3, 5, 99};
    task_init(&t, &c, "map", in, "lines");
    t.skip_records = skip2;
    t.nskip = 4;
    ck_assert_ptr_null(script_run_map(s, &t, &e));
    ck_assert_uint_eq(t.failed_record, 6);
    ck_assert_msg(strstr(e.msg, "cannot handle bad4") != NULL, "%s", e.msg);
    uint64_t skip3[] = {1, 3, 5, 6, 99};
    task_init(&t, &c, "map", in, "lines");
    t.skip_records = skip3;
    t.nskip = 5;
    f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), 2);
    ck_assert(str_eq_at(col(f, "line"), 0, "ok1"));
    ck_assert(str_eq_at(col(f, "line"), 1, "ok2"));
    ck_assert_int_eq(c.nbad, 4);
    uint64_t want[] = {1, 3, 5, 6};
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(c.bad_record[i], want[i]);
        ck_assert_msg(strstr(c.bad_reason[i], "skipped") != NULL, "%s", c.bad_reason[i]);
    }
    frame_free(f);
    free(in);
    script_free(s);

    /* records() over CSV: the record number map failed on is the one that is skipped */
    s = load_script("skipcsv.lua",
        "return { map = function(input, ctx)\n"
        "  local f = frame.new{ {'name', 'string'} }\n"
        "  for r in input:records() do\n"
        "    if r.name == 'nut' then error('no nuts') end\n"
        "    f:append{ name = r.name }\n"
        "  end\n"
        "  return f\n"
        "end }\n");
    in = write_tmp("skip.csv", "name,qty\nbolt,3\nnut,4\nscrew,10\n");
    task_init(&t, &c, "map", in, "csv");
    ck_assert_ptr_null(script_run_map(s, &t, &e));
    ck_assert_uint_gt(t.failed_record, 0);
    uint64_t skip4[] = {t.failed_record};
    const char *reasons4[] = {"no nuts here"};
    task_init(&t, &c, "map", in, "csv");
    t.skip_records = skip4;
    t.skip_reasons = reasons4;
    t.nskip = 1;
    f = script_run_map(s, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    ck_assert_uint_eq(frame_nrows(f), 2);
    ck_assert(str_eq_at(col(f, "name"), 0, "bolt"));
    ck_assert(str_eq_at(col(f, "name"), 1, "screw"));
    ck_assert_int_eq(c.nbad, 1);
    ck_assert_uint_eq(c.bad_record[0], skip4[0]);
    ck_assert_msg(strstr(c.bad_reason[0], "no nuts here") != NULL, "%s", c.bad_reason[0]);
    frame_free(f);
    free(in);
    script_free(s);
}
END_TEST

/* ---------------------------------------------------------------- declarations */

static void assert_agg(const groupby_agg *a, const char *out, groupby_fn fn, const char *col_name,
                       double q)
{
    ck_assert_str_eq(a->out, out);
    ck_assert_msg(a->fn == fn, "%s: fn %s, want %s", out, groupby_fn_name(a->fn), groupby_fn_name(fn));
    if (col_name) ck_assert_str_eq(a->col, col_name);
    else ck_assert_ptr_null(a->col);
    if (fn == GROUPBY_QUANTILE || fn == GROUPBY_APPROX_QUANTILE) ck_assert_double_eq(a->q, q);
}

START_TEST(test_declared_reduce)
{
    script *s = load_script("decl.lua",
        "return {\n"
        "  map = function(input, ctx) end,\n"
        "  reduce = { group_by = {\"k\"}, agg = { n = count(), s = sum(\"v\"), p = quantile(\"v\", 0.9) } },\n"
        "}\n");
    const script_groupby *g = script_declared_groupby(s);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->nkeys, 1);
    ck_assert_str_eq(g->keys[0], "k");
    ck_assert_uint_eq(g->naggs, 3);   /* source order, not the table's hash order */
    assert_agg(&g->aggs[0], "n", GROUPBY_COUNT, NULL, 0);
    assert_agg(&g->aggs[1], "s", GROUPBY_SUM, "v", 0);
    assert_agg(&g->aggs[2], "p", GROUPBY_QUANTILE, "v", 0.9);
    const char *const *keys = NULL;
    ck_assert_uint_eq(script_partition_keys(s, &keys), 1);   /* routed by the group_by keys */
    ck_assert_ptr_eq(keys, g->keys);
    ck_assert(script_has(s, "map"));
    ck_assert(!script_has(s, "reduce"));   /* a table, not a function */

    /* the C copies outlive whatever the Lua state does with the job table */
    char *in = write_tmp("decl.txt", "a\n");
    script *s2 = load_script("decl_gc.lua",
        "local job = { reduce = { group_by = {'key_' .. 'one', 'key_two'},\n"
        "  agg = { zeta = count(), alpha = max('col_' .. 'a'), mid = approx_quantile('w', 0.25),\n"
        "          b = 'min', a = 'sum' } } }\n"
        "job.map = function(input, ctx)\n"
        "  job.reduce = nil\n"
        "  for i = 1, 50000 do local t = { tostring(i) } end\n"
        "  collectgarbage('collect')\n"
        "end\n"
        "return job\n");
    capture c;
    script_task t;
    mr_err e;
    task_init(&t, &c, "map", in, "lines");
    frame *f = script_run_map(s2, &t, &e);
    ck_assert_msg(f != NULL, "%s", e.msg);
    frame_free(f);
    g = script_declared_groupby(s2);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->nkeys, 2);
    ck_assert_str_eq(g->keys[0], "key_one");
    ck_assert_str_eq(g->keys[1], "key_two");
    ck_assert_uint_eq(g->naggs, 5);
    /* constructors in source order; the string shorthands after them, by name, each
     * aggregating the column named like its output */
    assert_agg(&g->aggs[0], "zeta", GROUPBY_COUNT, NULL, 0);
    assert_agg(&g->aggs[1], "alpha", GROUPBY_MAX, "col_a", 0);
    assert_agg(&g->aggs[2], "mid", GROUPBY_APPROX_QUANTILE, "w", 0.25);
    assert_agg(&g->aggs[3], "a", GROUPBY_SUM, "a", 0);
    assert_agg(&g->aggs[4], "b", GROUPBY_MIN, "b", 0);
    free(in);
    script_free(s2);
    script_free(s);
}
END_TEST

START_TEST(test_declared_reduce_forms)
{
    /* a single key as a string; and a script that is nothing but a declarative reduce */
    script *s = load_script("only_reduce.lua",
        "return { reduce = { group_by = 'k', agg = { total = sum('v') } } }\n");
    const script_groupby *g = script_declared_groupby(s);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->nkeys, 1);
    ck_assert_str_eq(g->keys[0], "k");
    ck_assert_uint_eq(g->naggs, 1);
    assert_agg(&g->aggs[0], "total", GROUPBY_SUM, "v", 0);
    ck_assert(!script_has(s, "map"));
    const char *const *keys = NULL;
    ck_assert_uint_eq(script_partition_keys(s, &keys), 1);
    ck_assert_str_eq(keys[0], "k");
    script_free(s);

    /* no group_by (or an empty one): one row over everything, nothing to partition by */
    const char *srcs[] = {
        "return { reduce = { agg = { n = count() } } }\n",
        "return { reduce = { group_by = {}, agg = { n = count() } } }\n",
    };
    for (size_t i = 0; i < 2; i++) {
        s = load_script("nokeys.lua", srcs[i]);
        g = script_declared_groupby(s);
        ck_assert_ptr_nonnull(g);
        ck_assert_uint_eq(g->nkeys, 0);
        ck_assert_uint_eq(g->naggs, 1);
        keys = (const char *const *)&s;   /* must be reset */
        ck_assert_uint_eq(script_partition_keys(s, &keys), 0);
        ck_assert_ptr_null(keys);
        script_free(s);
    }

    /* a reduce function declares nothing */
    s = load_script("fn.lua", "return { reduce = function(f) return f end }\n");
    ck_assert_ptr_null(script_declared_groupby(s));
    keys = (const char *const *)&s;
    ck_assert_uint_eq(script_partition_keys(s, &keys), 0);
    ck_assert_ptr_null(keys);
    script_free(s);
    ck_assert_ptr_null(script_declared_groupby(NULL));
    ck_assert_uint_eq(script_partition_keys(NULL, &keys), 0);
}
END_TEST

START_TEST(test_partition_by)
{
    /* partition_by overrides the group_by keys */
    script *s = load_script("pb.lua",
        "return { partition_by = {'a', 'b'},\n"
        "  reduce = { group_by = {'a', 'b', 'c'}, agg = { n = count() } } }\n");
    const char *const *keys = NULL;
    ck_assert_uint_eq(script_partition_keys(s, &keys), 2);
    ck_assert_str_eq(keys[0], "a");
    ck_assert_str_eq(keys[1], "b");
    const script_groupby *g = script_declared_groupby(s);
    ck_assert_uint_eq(g->nkeys, 3);
    ck_assert_str_eq(g->keys[2], "c");
    script_free(s);

    /* with a reduce function, and as a single string */
    s = load_script("pb2.lua",
        "return { partition_by = 'user', map = function() end, reduce = function(f) return f end }\n");
    ck_assert_ptr_null(script_declared_groupby(s));
    ck_assert_uint_eq(script_partition_keys(s, &keys), 1);
    ck_assert_str_eq(keys[0], "user");
    script_free(s);
}
END_TEST

/* script_create fails with MR_ESCRIPT and a message holding every one of the needles. */
static void assert_load_fails(const char *src, const char *n1, const char *n2)
{
    mr_err e = load_error("bad_decl.lua", src);
    ck_assert_int_eq(e.code, MR_ESCRIPT);
    ck_assert_msg(strstr(e.msg, "bad_decl.lua") != NULL, "no script name in: %s", e.msg);
    ck_assert_msg(strstr(e.msg, n1) != NULL, "'%s' not in: %s", n1, e.msg);
    ck_assert_msg(!n2 || strstr(e.msg, n2) != NULL, "'%s' not in: %s", n2, e.msg);
}

START_TEST(test_declared_errors)
{
    assert_load_fails("return { reduce = { group_by = {'k'}, agg = 5 } }\n", "reduce.agg", "number");
    assert_load_fails("return { reduce = { group_by = {'k'} } }\n", "reduce.agg", "nil");
    assert_load_fails("return { reduce = { group_by = {1, 2}, agg = { n = count() } } }\n",
                      "reduce.group_by[1]", "number");
    assert_load_fails("return { reduce = { group_by = {'k', true}, agg = { n = count() } } }\n",
                      "reduce.group_by[2]", "boolean");
    assert_load_fails("return { reduce = { group_by = 7, agg = { n = count() } } }\n",
                      "reduce.group_by", "number");
    /* named fields are not a list of keys (and not "no keys" either) */
    assert_load_fails("return { reduce = { group_by = { key = 'k' }, agg = { n = count() } } }\n",
                      "reduce.group_by", "at least one column");
    /* an aggregate without an output name */
    assert_load_fails("return { reduce = { group_by = 'k', agg = { sum('v') } } }\n", "agg",
                      "output names must be strings");
    assert_load_fails("return { reduce = { group_by = {'k'}, agg = { x = 'foo' } } }\n",
                      "unknown aggregate 'foo'", "'x'");
    assert_load_fails("return { reduce = { group_by = {'k'}, agg = { x = 12 } } }\n", "'x'", "number");
    assert_load_fails("return { reduce = { group_by = {'k'}, agg = {} } }\n", "agg", "no aggregates");
    assert_load_fails("return { reduce = { group_by = {'k'}, agg = { k = count() } } }\n",
                      "reduce.agg", "'k'");
    /* an aggregate that does not exist as a constructor is an undefined global */
    assert_load_fails("return { reduce = { group_by = {'k'},\n agg = { x = median_abs('v') } } }\n",
                      "bad_decl.lua:2:", "median_abs");
    assert_load_fails("return { reduce = 5 }\n", "reduce must be a function or a table", "number");
    assert_load_fails("return { reduce = 'sum' }\n", "reduce must be a function or a table", "string");
    assert_load_fails("return { map = 'x' }\n", "map must be a function", "string");
    assert_load_fails("return { map = function() end, combine = {} }\n", "combine must be a function",
                      "table");
    assert_load_fails("return { map = function() end, partition_by = {} }\n", "partition_by",
                      "at least one");
    assert_load_fails("return { map = function() end, partition_by = {'a', 3} }\n",
                      "partition_by[2]", "number");
    assert_load_fails("return { map = function() end, partition_by = 3 }\n", "partition_by",
                      "number");
    /* neither map nor reduce */
    assert_load_fails("return { partition_by = {'a'} }\n", "neither a map nor a reduce", NULL);
}
END_TEST

START_TEST(test_order_by)
{
    struct { const char *decl; size_t n; const char *cols[3]; int desc[3]; } forms[] = {
        {"'v'", 1, {"v"}, {0}},
        {"{'v', 'desc'}", 1, {"v"}, {1}},
        {"{'v', desc = true}", 1, {"v"}, {1}},
        {"{ {'n', 'desc'}, 'k', {'s', 'asc'} }", 3, {"n", "k", "s"}, {1, 0, 0}},
        {"{ 'k' }", 1, {"k"}, {0}},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char src[256];
        snprintf(src, sizeof src, "return { map = function() end, order_by = %s }\n", forms[i].decl);
        script *s = load_script("ob.lua", src);
        const ops_sort_key *keys = NULL;
        ck_assert_uint_eq(script_order_keys(s, &keys), forms[i].n);
        for (size_t k = 0; k < forms[i].n; k++) {
            ck_assert_str_eq(keys[k].col, forms[i].cols[k]);
            ck_assert_int_eq(keys[k].descending, forms[i].desc[k]);
        }
        script_free(s);
    }
    script *s = load_script("noob.lua", "return { map = function() end }\n");
    const ops_sort_key *keys = NULL;
    ck_assert_uint_eq(script_order_keys(s, &keys), 0);
    script_free(s);
    assert_load_fails("return { map = function() end, order_by = {} }\n", "order_by", "at least one");
    assert_load_fails("return { map = function() end, order_by = 3 }\n", "order_by", "number");
    assert_load_fails("return { map = function() end, order_by = { {'v', 'up'} } }\n", "order_by",
                      "'up'");
    assert_load_fails("return { map = function() end, order_by = { {1} } }\n", "order_by",
                      "col must be a string");
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *script_suite(void)
{
    Suite *s = suite_create("script");
    struct { const char *name; const TTest *tests[12]; } cases[] = {
        {"wordcount", {test_wordcount, test_lines_counts_records, test_examples}},
        {"frame_build", {test_append_schema_evolution, test_append_type_error, test_new_and_from_rows,
                         test_accessors_roundtrip, test_shape_and_format}},
        {"frame_ops", {test_head_select_concat, test_filter, test_with_column, test_sort_by,
                       test_distinct, test_group_by_agg, test_agg_whole_frame_and_count, test_join,
                       test_borrowed_input_copy_on_write}},
        {"ctx", {test_ctx}},
        {"emit_stream", {test_emit_streams, test_emit_combine_nested, test_partition_fn}},
        {"errors", {test_syntax_and_shape_errors, test_map_error_names_record,
                    test_bad_return_and_moved_frame}},
        {"strict", {test_strict_globals}},
        {"sandbox", {test_sandbox, test_scratch_io}},
        {"records", {test_csv_records_bad_rows, test_csv_no_header_and_frame, test_jsonl_records,
                     test_warc_without_reader, test_skip_records}},
        {"runaway", {test_runaway_guard}},
        {"declared", {test_declared_reduce, test_declared_reduce_forms, test_partition_by,
                      test_declared_errors, test_order_by}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
        tcase_set_timeout(tc, 60);
        for (size_t j = 0; cases[i].tests[j]; j++) tcase_add_test(tc, cases[i].tests[j]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(script_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
