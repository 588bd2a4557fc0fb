/* writer: frames out as one JSON document, JSON lines or CSV, through a sink. See
 * writer.h. Rows are formatted into a 64 KiB local buffer that is handed to the sink
 * when full, so no call per cell reaches the sink. */
#define _GNU_SOURCE
#include "writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink.h"

#define WR_BUF_SIZE (64u * 1024)

struct writer {
    sink *s;
    writer_format fmt;
    uint64_t rows;
    int started;        /* json: "[" written; csv: header written */
    int failed;
    char **names;       /* csv: header of the first frame, which later frames must match */
    size_t ncols;
    char *buf;
    size_t len;
};

int writer_format_parse(const char *name, writer_format *out)
{
    if (!name) return -1;
    if (strcmp(name, "json") == 0) *out = WRITER_JSON;
    else if (strcmp(name, "jsonl") == 0 || strcmp(name, "ndjson") == 0) *out = WRITER_JSONL;
    else if (strcmp(name, "csv") == 0) *out = WRITER_CSV;
    else return -1;
    return 0;
}

const char *writer_extension(writer_format f, int gzip)
{
    switch (f) {
    case WRITER_JSONL: return gzip ? ".jsonl.gz" : ".jsonl";
    case WRITER_CSV: return gzip ? ".csv.gz" : ".csv";
    default: return gzip ? ".json.gz" : ".json";
    }
}

static const double wr_pow10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* Values with a short decimal form (prices, measurements) without printf: the fewest
 * decimals d such that round(v * 10^d) / 10^d == v. Both operands of that division are
 * exact doubles, so it is what a correctly rounding parser computes for the printed
 * text: the output reads back to v. 0 when no form with <= 15 digits is found. */
static size_t wr_fmt_f64_fast(char *buf, double v)
{
    double a = fabs(v);
    if (!(a >= 1e-6 && a < 1e15)) return 0;
    for (int d = 0; d <= 15; d++) {
        double scaled = a * wr_pow10[d];
        if (scaled >= 1e15) return 0;
        double m = floor(scaled + 0.5);
        if (m / wr_pow10[d] != a) continue;
        uint64_t u = (uint64_t)m;
        char tmp[40], *p = tmp + sizeof tmp;
        int digits = 0;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
            digits++;
            if (digits == d) *--p = '.';
        } while (u || digits <= d);
        size_t n = (size_t)(tmp + sizeof tmp - p);
        size_t k = 0;
        if (v < 0) buf[k++] = '-';
        memcpy(buf + k, p, n);
        k += n;
        if (d == 0) {
            buf[k++] = '.';
            buf[k++] = '0';
        }
        buf[k] = '\0';
        return k;
    }
    return 0;
}

size_t writer_fmt_f64(char *buf, double v)
{
    if (isnan(v)) return (size_t)snprintf(buf, 32, "nan");
    if (isinf(v)) return (size_t)snprintf(buf, 32, v < 0 ? "-inf" : "inf");
    size_t fast = wr_fmt_f64_fast(buf, v);
    if (fast) return fast;
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, 32, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eE")) {
        buf[n++] = '.';
        buf[n++] = '0';
        buf[n] = '\0';
    }
    return (size_t)n;
}

/* ---- output buffer ---- */

static mr_code wr_flush(writer *w, mr_err *e)
{
    if (w->len == 0) return MR_OK;
    mr_code rc = sink_write(w->s, w->buf, w->len, e);
    w->len = 0;
    return rc;
}

static inline mr_code wr_put(writer *w, const char *p, size_t n, mr_err *e)
{
    if (w->len + n > WR_BUF_SIZE) {
        MR_TRY(wr_flush(w, e));
        if (n > WR_BUF_SIZE) return sink_write(w->s, p, n, e);
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return MR_OK;
}

static inline mr_code wr_putc(writer *w, char c, mr_err *e)
{
    if (w->len == WR_BUF_SIZE) MR_TRY(wr_flush(w, e));
    w->buf[w->len++] = c;
    return MR_OK;
}

static mr_code wr_i64(writer *w, int64_t v, mr_err *e)
{
    char tmp[24], *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    return wr_put(w, p, (size_t)(tmp + sizeof tmp - p), e);
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not valid (overlong,
 * surrogate, beyond U+10FFFF, truncated). */
static size_t wr_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned min, cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, min = 0x10000, cp = c & 0x07;
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

/* Escapes s as the inside of a JSON string literal into out, which needs 6 * n bytes:
 * quotes, backslashes and control characters escaped; invalid UTF-8 bytes replaced by
 * U+FFFD so the document stays valid JSON. Returns the bytes written. */
static size_t wr_json_escape(char *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    char *o = out;
    while (p < end) {
        unsigned c = *p;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            *o++ = (char)c;
            p++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = wr_utf8_len(p, end);
            if (k) {
                memcpy(o, p, k);
                o += k;
                p += k;
                continue;
            }
            memcpy(o, "\xef\xbf\xbd", 3);   /* U+FFFD */
            o += 3;
            p++;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            o[0] = 'u';
            o[1] = '0';
            o[2] = '0';
            o[3] = "0123456789abcdef"[c >> 4];
            o[4] = "0123456789abcdef"[c & 15];
            o += 5;
            break;
        }
        p++;
    }
    return (size_t)(o - out);
}

#define WR_ESC_CHUNK 4096

/* A quoted JSON string, escaped straight into the output buffer in chunks that never
 * split a UTF-8 sequence. */
static mr_code wr_json_str(writer *w, const char *s, size_t n, mr_err *e)
{
    MR_TRY(wr_putc(w, '"', e));
    while (n > 0) {
        size_t k = n;
        if (k > WR_ESC_CHUNK) {
            k = WR_ESC_CHUNK;
            /* back up to a lead byte so the sequence stays whole (at most 3 bytes) */
            for (int back = 0; back < 3 && ((unsigned char)s[k] & 0xc0) == 0x80; back++) k--;
        }
        if (w->len + 6 * k > WR_BUF_SIZE) MR_TRY(wr_flush(w, e));
        w->len += wr_json_escape(w->buf + w->len, s, k);
        s += k;
        n -= k;
    }
    return wr_putc(w, '"', e);
}

static mr_code wr_json_value(writer *w, const frame_col *c, size_t r, mr_err *e)
{
    if (frame_col_is_null(c, r)) return wr_put(w, "null", 4, e);
    switch (c->type) {
    case FRAME_I64: return wr_i64(w, c->v.i64[r], e);
    case FRAME_F64: {
        double v = c->v.f64[r];
        if (!isfinite(v)) return wr_put(w, "null", 4, e);
        char buf[32];
        return wr_put(w, buf, writer_fmt_f64(buf, v), e);
    }
    case FRAME_BOOL: return c->v.b[r] ? wr_put(w, "true", 4, e) : wr_put(w, "false", 5, e);
    case FRAME_STR: {
        size_t n;
        const char *s = frame_col_str(c, r, &n);
        return wr_json_str(w, s, n, e);
    }
    }
    return MR_OK;
}

/* Every row repeats the keys: escape them once per frame as '"name":' and ',"name":'. */
static mr_code wr_json_keys(const frame *f, char **keys, size_t *offs, mr_err *e)
{
    size_t nc = frame_ncols(f), total = 0;
    for (size_t i = 0; i < nc; i++) total += 6 * strlen(frame_col_at(f, i)->name) + 4;
    *keys = malloc(total + 1);
    MR_CHECK(*keys, e, MR_ENOMEM, "out of memory");
    char *o = *keys;
    for (size_t i = 0; i < nc; i++) {
        const char *name = frame_col_at(f, i)->name;
        offs[i] = (size_t)(o - *keys);
        if (i) *o++ = ',';
        *o++ = '"';
        o += wr_json_escape(o, name, strlen(name));
        *o++ = '"';
        *o++ = ':';
    }
    offs[nc] = (size_t)(o - *keys);
    return MR_OK;
}

static mr_code wr_json_rows(writer *w, const frame *f, mr_err *e)
{
    size_t nc = frame_ncols(f), nr = frame_nrows(f);
    size_t *offs = malloc((nc + 1) * sizeof *offs);
    MR_CHECK(offs, e, MR_ENOMEM, "out of memory");
    char *keys = NULL;
    mr_code rc = wr_json_keys(f, &keys, offs, e);
    for (size_t r = 0; r < nr && rc == MR_OK; r++) {
        if (w->fmt == WRITER_JSON) rc = wr_put(w, w->rows == 0 ? "[\n" : ",\n", 2, e);
        if (rc == MR_OK) rc = wr_putc(w, '{', e);
        for (size_t i = 0; i < nc && rc == MR_OK; i++) {
            rc = wr_put(w, keys + offs[i], offs[i + 1] - offs[i], e);
            if (rc == MR_OK) rc = wr_json_value(w, frame_col_at(f, i), r, e);
        }
        if (rc == MR_OK) rc = wr_putc(w, '}', e);
        if (rc == MR_OK && w->fmt == WRITER_JSONL) rc = wr_putc(w, '\n', e);
        w->rows++;
    }
    free(keys);
    free(offs);
    return rc;
}

/* ---- csv ---- */

static mr_code wr_csv_text(writer *w, const char *s, size_t n, mr_err *e)
{
    /* Empty strings are quoted so that they read back as "" and not as null. */
    int quote = n == 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) return wr_put(w, s, n, e);
    MR_TRY(wr_putc(w, '"', e));
    const char *run = s, *end = s + n;
    for (const char *p = s; p < end; p++) {
        if (*p != '"') continue;
        MR_TRY(wr_put(w, run, (size_t)(p + 1 - run), e));
        run = p;   /* the quote is written again: "" */
    }
    MR_TRY(wr_put(w, run, (size_t)(end - run), e));
    return wr_putc(w, '"', e);
}

static mr_code wr_csv_header(writer *w, const frame *f, mr_err *e)
{
    size_t nc = frame_ncols(f);
    if (w->started) {
        MR_CHECK(nc == w->ncols, e, MR_EINVAL, "%s: frame has %zu columns, the CSV header has %zu",
                 sink_name(w->s), nc, w->ncols);
        for (size_t i = 0; i < nc; i++)
            MR_CHECK(strcmp(frame_col_at(f, i)->name, w->names[i]) == 0, e, MR_EINVAL,
                     "%s: column %zu is '%s', the CSV header has '%s'", sink_name(w->s), i + 1,
                     frame_col_at(f, i)->name, w->names[i]);
        return MR_OK;
    }
    w->names = calloc(nc ? nc : 1, sizeof *w->names);
    MR_CHECK(w->names, e, MR_ENOMEM, "out of memory");
    w->ncols = nc;
    for (size_t i = 0; i < nc; i++) {
        const char *name = frame_col_at(f, i)->name;
        w->names[i] = strdup(name);
        MR_CHECK(w->names[i], e, MR_ENOMEM, "out of memory");
        if (i) MR_TRY(wr_putc(w, ',', e));
        MR_TRY(wr_csv_text(w, name, strlen(name), e));
    }
    if (nc) MR_TRY(wr_putc(w, '\n', e));
    w->started = 1;
    return MR_OK;
}

static mr_code wr_csv_rows(writer *w, const frame *f, mr_err *e)
{
    MR_TRY(wr_csv_header(w, f, e));
    size_t nc = frame_ncols(f), nr = frame_nrows(f);
    for (size_t r = 0; r < nr; r++) {
        for (size_t i = 0; i < nc; i++) {
            const frame_col *c = frame_col_at(f, i);
            if (i) MR_TRY(wr_putc(w, ',', e));
            if (frame_col_is_null(c, r)) continue;   /* null: an empty, unquoted cell */
            switch (c->type) {
            case FRAME_I64: MR_TRY(wr_i64(w, c->v.i64[r], e)); break;
            case FRAME_F64: {
                char buf[32];
                MR_TRY(wr_put(w, buf, writer_fmt_f64(buf, c->v.f64[r]), e));
                break;
            }
            case FRAME_BOOL: MR_TRY(c->v.b[r] ? wr_put(w, "true", 4, e) : wr_put(w, "false", 5, e)); break;
            case FRAME_STR: {
                size_t n;
                const char *s = frame_col_str(c, r, &n);
                MR_TRY(wr_csv_text(w, s, n, e));
                break;
            }
            }
        }
        MR_TRY(wr_putc(w, '\n', e));
        w->rows++;
    }
    return MR_OK;
}

/* ---- public ---- */

writer *writer_open(const char *uri, writer_format f, int gzip, mr_err *e)
{
    writer *w = calloc(1, sizeof *w);
    MR_CHECK_NULL(w, e, MR_ENOMEM, "out of memory opening %s", uri);
    w->fmt = f;
    w->buf = malloc(WR_BUF_SIZE);
    if (!w->buf) {
        free(w);
        mr_fail(e, MR_ENOMEM, "out of memory opening %s", uri);
        return NULL;
    }
    w->s = sink_open(uri, gzip, e);
    if (!w->s) {
        free(w->buf);
        free(w);
        return NULL;
    }
    return w;
}

mr_code writer_append(writer *w, const frame *f, mr_err *e)
{
    MR_CHECK(!w->failed, e, MR_EINVAL, "%s: writer already failed", sink_name(w->s));
    MR_TRY(frame_validate(f, e));
    mr_code rc = w->fmt == WRITER_CSV ? wr_csv_rows(w, f, e) : wr_json_rows(w, f, e);
    if (rc != MR_OK) w->failed = 1;
    return rc;
}

mr_code writer_commit(writer *w, mr_err *e)
{
    MR_CHECK(!w->failed, e, MR_EINVAL, "%s: not committed, an earlier write failed", sink_name(w->s));
    if (w->fmt == WRITER_JSON) MR_TRY(w->rows ? wr_put(w, "\n]\n", 3, e) : wr_put(w, "[]\n", 3, e));
    MR_TRY(wr_flush(w, e));
    return sink_commit(w->s, e);
}

void writer_free(writer *w)
{
    if (!w) return;
    sink_free(w->s);
    for (size_t i = 0; i < w->ncols; i++) free(w->names[i]);
    free(w->names);
    free(w->buf);
    free(w);
}

uint64_t writer_rows(const writer *w) { return w->rows; }

mr_code writer_write_frame(const frame *f, const char *uri, writer_format fmt, int gzip, mr_err *e)
{
    writer *w = writer_open(uri, fmt, gzip, e);
    if (!w) return e ? e->code : MR_EIO;
    mr_code rc = writer_append(w, f, e);
    if (rc == MR_OK) rc = writer_commit(w, e);
    writer_free(w);
    return rc;
}
