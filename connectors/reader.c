/* reader: lines, CSV (RFC 4180) and JSON lines over a stream, record by record or
 * straight into a typed frame. See reader.h.
 *
 * Records are parsed in place inside a window peeked from the stream (1 MiB at a time,
 * more only for a record longer than that): field pointers point into the stream's
 * buffer, and only quoted fields with "" escapes are copied (into one scratch buffer).
 *
 * Type inference (reader_frame, CSV): the first RD_INFER_ROWS good rows are staged,
 * their types decided (int64 < float64 < string, bool < string), then replayed; later
 * rows are parsed with those types, and a column is converted in place when a value
 * needs it (int64 -> float64, anything -> string). JSON lines carry their own types, so
 * their columns are typed by the first value and promoted the same way.
 *
 * Byte-range splits: a split opened at range_start > 0 starts at the first record start
 * after range_start - 1, and ends with the record that starts before range_end (that
 * record is read to its end, past range_end). For lines and JSON lines a record starts
 * after every '\n'. For CSV a '\n' inside a quoted field is no record start, and the
 * split cannot see the quotes before it; so it tries each parser state the byte before
 * range_start could be in (see rd_csv_resync) and keeps the one the data does not
 * contradict. Valid RFC 4180 input contradicts a wrong guess at its first quote, so in
 * practice every record is read by exactly one split; input that never contradicts
 * either guess falls back to "outside quotes". Line numbers are 0 inside a split. */
#define _GNU_SOURCE
#include "reader.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"
#include "writer.h"

#define RD_CHUNK (1u << 20)
#define RD_MAX_RECORD ((size_t)64 << 20)
#define RD_INFER_ROWS 10000
#define RD_INFER_BYTES ((size_t)32 << 20)
#define RD_RAW_PREFIX 256

enum { CELL_NULL, CELL_TEXT, CELL_QTEXT, CELL_JNUM, CELL_JBOOL, CELL_JSTR, CELL_JRAW };
#define RD_TYPE_NONE (-1)

typedef struct rd_cell {
    const char *p;
    size_t n;
    int kind;
    double num;
} rd_cell;

typedef union rd_val {
    int64_t i;
    double f;
    int b;
    struct {
        const char *p;
        size_t n;
    } s;
} rd_val;

/* The frame being built and per-column state. */
typedef struct rd_fb {
    frame *f;
    size_t ncols, cap;
    frame_col **col;
    uint8_t *fixed;   /* type given by the schema: values that do not fit are bad records */
    uint8_t *seen;    /* a non-null value has fixed the (inferred) type */
    int *src;         /* csv: field index feeding the column */
    rd_val *val;
    uint8_t *isnull;
    rd_cell *cells;
    char (*numtxt)[40];
} rd_fb;

struct reader {
    char *uri;
    reader_opts o;
    char **schema_names;
    frame_type *schema_types;
    size_t nschema;
    reader_bad_fn on_bad;
    void *ud;

    stream *s;
    int gz;
    uint64_t abs_base;          /* absolute input offset of stream offset 0 */
    uint64_t win_off;           /* absolute input offset of win[0] */
    const char *win;            /* window into the stream buffer */
    size_t wlen, wpos;
    int eof;                    /* the window holds everything that is left */
    int done;                   /* range end or max_records reached */
    uint64_t batch_end;         /* reader_frame_batch: stop once nrec reaches it (0: none) */
    size_t frame_bytes_cap;     /* a frame being built stops at about this size (0: none) */
    int frame_bytes_hit;        /* ... and it did */
    size_t frame_check_rows;    /* rows at which the frame's size is looked at next */
    uint64_t line;              /* line number of the next record (0: unknown) */
    uint64_t nrec, nbad;

    /* current record */
    uint64_t rec_off, rec_line;
    const char *rec_raw;
    size_t rec_raw_len;

    /* csv */
    char delim;
    const char **fptr;
    size_t *flen;
    uint8_t *fq;                /* 0 unquoted, 1 quoted, 2 quoted with "" escapes */
    size_t fcap, nf;
    size_t rec_nl;              /* newlines inside quoted fields of the record */
    int any_esc;                /* some field of the record holds "" escapes */
    const char *anomaly;
    size_t anomaly_field;
    char *unq;
    size_t unq_cap;
    char **names;               /* header or schema names; NULL until known */
    size_t ncols;

    /* jsonl */
    cJSON *json;

    char reason[512];
};

/* ---------------------------------------------------------------- numbers ---- */

static const double rd_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline int rd_parse_i64(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (n == 0) return 0;
    if (p[0] == '-' || p[0] == '+') {
        neg = p[0] == '-';
        i = 1;
        if (n == 1) return 0;
    }
    if (n - i > 19) return 0;   /* 19 digits always fit in a uint64 */
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)p[i] - '0';
        if (d > 9) return 0;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return 0;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)v;
    }
    return 1;
}

static int rd_is_special_float(const char *p, size_t n)
{
    if (n > 0 && (*p == '-' || *p == '+')) p++, n--;
    return (n == 3 && (strncasecmp(p, "nan", 3) == 0 || strncasecmp(p, "inf", 3) == 0)) ||
           (n == 8 && strncasecmp(p, "infinity", 8) == 0);
}

static int rd_parse_f64_slow(const char *p, size_t n, double *out)
{
    char small[128];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return 0;
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    int ok = end == buf + n;
    if (buf != small) free(buf);
    if (ok) *out = v;
    return ok;
}

/* Decimal numbers ([+-]digits[.digits][e[+-]digits], ".5", "5.") and nan/inf. Plain
 * decimals with at most 15 significant digits and a small exponent are computed as
 * mantissa * or / an exact power of ten: both operands are exact doubles, so the one
 * IEEE operation rounds correctly. Everything else goes to strtod. */
static int rd_parse_f64_general(const char *p, size_t n, double *out);

static inline int rd_parse_f64(const char *p, size_t n, double *out)
{
    /* The common shape first: [-]digits[.digits], at most 15 digits in all. */
    const char *s = p, *end = p + n;
    int neg = s < end && *s == '-';
    s += neg;
    const char *d0 = s;
    uint64_t m = 0;
    while (s < end && (unsigned)(*s - '0') <= 9) m = m * 10 + (unsigned)(*s++ - '0');
    size_t ni = (size_t)(s - d0), nf = 0;
    if (s < end && *s == '.') {
        const char *f0 = ++s;
        while (s < end && (unsigned)(*s - '0') <= 9) m = m * 10 + (unsigned)(*s++ - '0');
        nf = (size_t)(s - f0);
    }
    if (s == end && ni + nf > 0 && ni + nf <= 15) {
        double v = (double)m / rd_pow10[nf];
        *out = neg ? -v : v;
        return 1;
    }
    return rd_parse_f64_general(p, n, out);
}

static int rd_parse_f64_general(const char *p, size_t n, double *out)
{
    const char *s = p, *end = p + n;
    int neg = 0, ndig = 0, any = 0, dropped = 0;
    int64_t exp10 = 0;
    uint64_t mant = 0;
    if (s < end && (*s == '-' || *s == '+')) neg = *s++ == '-';
    for (; s < end && (unsigned)(*s - '0') <= 9; s++) {
        unsigned d = (unsigned)(*s - '0');
        any = 1;
        if (mant == 0 && d == 0) continue;
        if (ndig < 19) {
            mant = mant * 10 + d;
            ndig++;
        } else {
            exp10++;
            dropped = 1;
        }
    }
    if (s < end && *s == '.') {
        for (s++; s < end && (unsigned)(*s - '0') <= 9; s++) {
            unsigned d = (unsigned)(*s - '0');
            any = 1;
            if (mant == 0 && d == 0) {
                exp10--;
                continue;
            }
            if (ndig < 19) {
                mant = mant * 10 + d;
                ndig++;
                exp10--;
            } else {
                dropped = 1;
            }
        }
    }
    if (!any) return rd_is_special_float(p, n) && rd_parse_f64_slow(p, n, out);
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        int eneg = 0;
        if (s < end && (*s == '-' || *s == '+')) eneg = *s++ == '-';
        if (s == end || (unsigned)(*s - '0') > 9) return 0;
        int64_t ev = 0;
        for (; s < end && (unsigned)(*s - '0') <= 9; s++)
            if (ev < 100000) ev = ev * 10 + (*s - '0');
        exp10 += eneg ? -ev : ev;
    }
    if (s != end) return 0;
    if (mant == 0) {
        *out = neg ? -0.0 : 0.0;
        return 1;
    }
    if (!dropped && ndig <= 15 && exp10 >= -22 && exp10 <= 22) {
        double v = (double)mant;
        v = exp10 < 0 ? v / rd_pow10[-exp10] : v * rd_pow10[exp10];
        *out = neg ? -v : v;
        return 1;
    }
    return rd_parse_f64_slow(p, n, out);
}

static inline int rd_parse_bool(const char *p, size_t n, int *out)
{
    if (n == 4 && strncasecmp(p, "true", 4) == 0) return *out = 1, 1;
    if (n == 5 && strncasecmp(p, "false", 5) == 0) return *out = 0, 1;
    return 0;
}

/* ------------------------------------------------------------ bad records ---- */

/* Reports the current record as bad (reason already in r->reason). 0 go on, -1 stop. */
static int rd_bad(reader *r, const char *field, mr_err *e)
{
    r->nbad++;
    if (!r->on_bad) return 0;
    reader_bad b = {r->uri, r->rec_line, r->rec_off, field, r->reason, r->rec_raw,
                    r->rec_raw_len > RD_RAW_PREFIX ? RD_RAW_PREFIX : r->rec_raw_len};
    mr_err_clear(e);
    mr_code rc = r->on_bad(&b, r->ud, e);
    if (rc == MR_OK) return 0;
    if (!e || e->code == MR_OK)
        mr_fail(e, rc, "%s line %llu (byte %llu): %s", r->uri, (unsigned long long)r->rec_line,
                (unsigned long long)r->rec_off, r->reason);
    return -1;
}

/* ----------------------------------------------------------------- window ---- */

/* More input for a record that does not end inside the window. 1 ok, -1 error. */
static int rd_refill(reader *r, mr_err *e)
{
    size_t left = r->wlen - r->wpos;
    if (left >= RD_MAX_RECORD) {
        mr_fail(e, MR_ELIMIT,
                "%s line %llu (byte %llu): record longer than %zu bytes (an unterminated quote?)",
                r->uri, (unsigned long long)r->line,
                (unsigned long long)(r->abs_base + stream_offset(r->s) + r->wpos), RD_MAX_RECORD);
        return -1;
    }
    stream_skip(r->s, r->wpos);
    r->wpos = 0;
    r->win_off = r->abs_base + stream_offset(r->s);
    size_t want = left < RD_CHUNK / 2 ? RD_CHUNK : 2 * left;
    ssize_t n = stream_peek(r->s, &r->win, want, e);
    if (n < 0) return -1;
    r->wlen = (size_t)n;
    r->eof = (size_t)n < want;
    return 1;
}

static inline uint64_t rd_pos_offset(const reader *r, size_t wpos)
{
    return r->win_off + wpos;
}

/* Next line from the window: 1 (line in *p,*n without "\n" or "\r\n"), 0 end, -1 error. */
static int rd_next_line(reader *r, const char **p, size_t *n, mr_err *e)
{
    for (;;) {
        const char *start = r->win + r->wpos;
        size_t avail = r->wlen - r->wpos;
        const char *nl = avail ? memchr(start, '\n', avail) : NULL;
        if (nl || (r->eof && avail > 0)) {
            size_t len = nl ? (size_t)(nl - start) : avail;
            r->rec_off = rd_pos_offset(r, r->wpos);
            r->rec_line = r->line;
            r->wpos += nl ? len + 1 : len;
            if (r->line) r->line++;
            if (len > 0 && start[len - 1] == '\r') len--;
            *p = start;
            *n = len;
            r->rec_raw = start;
            r->rec_raw_len = len;
            return 1;
        }
        if (r->eof) return 0;
        if (rd_refill(r, e) < 0) return -1;
    }
}

/* -------------------------------------------------------------------- csv ---- */

static int rd_grow_fields(reader *r)
{
    size_t ncap = r->fcap ? r->fcap * 2 : 16;
    const char **fp = realloc(r->fptr, ncap * sizeof *fp);
    if (!fp) return -1;
    r->fptr = fp;
    size_t *fl = realloc(r->flen, ncap * sizeof *fl);
    if (!fl) return -1;
    r->flen = fl;
    uint8_t *fq = realloc(r->fq, ncap);
    if (!fq) return -1;
    r->fq = fq;
    r->fcap = ncap;
    return 0;
}

static size_t rd_count_nl(const char *p, const char *end)
{
    size_t k = 0;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

#define RD_SCAN_MORE ((size_t)0)
#define RD_SCAN_NOMEM ((size_t)-1)

/* Splits one record starting at p into r->fptr/flen/fq. Returns the bytes consumed
 * (terminator included), RD_SCAN_MORE when the record may continue past end and more
 * input can come, RD_SCAN_NOMEM. *raw_len gets the record length without terminator. */
static size_t rd_csv_scan(reader *r, const char *p, const char *end, int eof, size_t *raw_len)
{
    const char delim = r->delim;
    const char *q = p;
    size_t nf = 0;
    r->rec_nl = 0;
    r->anomaly = NULL;
    r->any_esc = 0;
    /* Most rows hold no quote: find the line end with memchr, then cut at delimiters. */
    const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
    if (nl && !memchr(p, '"', (size_t)(nl - p))) {
        const char *lend = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        for (;;) {
            if (nf == r->fcap && rd_grow_fields(r) < 0) return RD_SCAN_NOMEM;
            const char *s = q;
            while (s < lend && *s != delim) s++;
            r->fptr[nf] = q;
            r->flen[nf] = (size_t)(s - q);
            r->fq[nf++] = 0;
            if (s == lend) break;
            q = s + 1;
        }
        r->nf = nf;
        *raw_len = (size_t)(lend - p);
        return (size_t)(nl + 1 - p);
    }
    for (;;) {
        if (nf == r->fcap && rd_grow_fields(r) < 0) return RD_SCAN_NOMEM;
        if (q < end && *q == '"') {
            const char *s = q + 1;
            uint8_t esc = 1;
            const char *close;
            for (;;) {
                close = memchr(s, '"', (size_t)(end - s));
                if (!close) {
                    if (!eof) return RD_SCAN_MORE;
                    break;
                }
                if (close + 1 < end && close[1] == '"') {
                    esc = 2;
                    r->any_esc = 1;
                    s = close + 2;
                    continue;
                }
                if (close + 1 == end && !eof) return RD_SCAN_MORE;
                break;
            }
            if (!close) {
                r->anomaly = "unterminated quoted field";
                r->anomaly_field = nf;
                r->rec_nl += rd_count_nl(q, end);
                r->fptr[nf] = q + 1;
                r->flen[nf] = (size_t)(end - q - 1);
                r->fq[nf++] = esc;
                r->nf = nf;
                *raw_len = (size_t)(end - p);
                return (size_t)(end - p);
            }
            r->rec_nl += rd_count_nl(q + 1, close);
            r->fptr[nf] = q + 1;
            r->flen[nf] = (size_t)(close - q - 1);
            r->fq[nf++] = esc;
            q = close + 1;
            if (q == end) break;
            if (*q == delim) {
                q++;
                continue;
            }
            if (*q == '\n') {
                r->nf = nf;
                *raw_len = (size_t)(q - p);
                return (size_t)(q + 1 - p);
            }
            if (*q == '\r' && q + 1 < end && q[1] == '\n') {
                r->nf = nf;
                *raw_len = (size_t)(q - p);
                return (size_t)(q + 2 - p);
            }
            if (*q == '\r' && q + 1 == end && !eof) return RD_SCAN_MORE;
            /* Text after a closing quote: keep the record boundary, flag the record. */
            if (!r->anomaly) {
                r->anomaly = "unexpected character after a closing quote";
                r->anomaly_field = nf - 1;
            }
            while (q < end && *q != delim && *q != '\n') q++;
            if (q == end && !eof) return RD_SCAN_MORE;
            if (q == end) break;
            if (*q == delim) {
                q++;
                continue;
            }
            r->nf = nf;
            *raw_len = (size_t)(q - p);
            return (size_t)(q + 1 - p);
        } else {
            const char *s = q;
            while (s < end && *s != delim && *s != '\n') s++;
            if (s == end && !eof) return RD_SCAN_MORE;
            size_t n = (size_t)(s - q);
            r->fptr[nf] = q;
            r->fq[nf] = 0;
            if (s == end) {
                if (n > 0 && s[-1] == '\r') n--;
                r->flen[nf++] = n;
                q = end;
                break;
            }
            if (*s == delim) {
                r->flen[nf++] = n;
                q = s + 1;
                continue;
            }
            size_t raw = (size_t)(s - p);
            if (n > 0 && s[-1] == '\r') {
                n--;
                raw--;
            }
            r->flen[nf++] = n;
            r->nf = nf;
            *raw_len = raw;
            return (size_t)(s + 1 - p);
        }
    }
    /* Record ends at end of input without a newline. */
    r->nf = nf;
    *raw_len = (size_t)(q - p);
    if (*raw_len > 0 && p[*raw_len - 1] == '\r') (*raw_len)--;
    return (size_t)(q - p);
}

/* Copies quoted fields that hold "" escapes into the scratch buffer, unescaped. */
static int rd_csv_unescape(reader *r, size_t rec_len)
{
    if (!r->any_esc) return 0;
    if (r->unq_cap < rec_len) {
        char *nb = realloc(r->unq, rec_len);
        if (!nb) return -1;
        r->unq = nb;
        r->unq_cap = rec_len;
    }
    char *out = r->unq;
    for (size_t i = 0; i < r->nf; i++) {
        if (r->fq[i] != 2) continue;
        const char *s = r->fptr[i], *end = s + r->flen[i];
        char *start = out;
        while (s < end) {
            const char *qq = memchr(s, '"', (size_t)(end - s));
            size_t k = qq ? (size_t)(qq - s) + 1 : (size_t)(end - s);
            memcpy(out, s, k);
            out += k;
            s += k;
            if (qq && s < end && *s == '"') s++;   /* "" -> " */
        }
        r->fptr[i] = start;
        r->flen[i] = (size_t)(out - start);
    }
    return 0;
}

/* The next well-formed CSV record into the field arrays: 1, 0 at end, -1 error.
 * Empty lines are skipped; malformed rows are reported and skipped. */
static int rd_csv_record(reader *r, mr_err *e)
{
    for (;;) {
        if (r->done) return 0;
        const char *p = r->win + r->wpos, *end = r->win + r->wlen;
        if (p == end) {
            if (r->eof) return 0;
            if (rd_refill(r, e) < 0) return -1;
            continue;
        }
        if (r->o.range_end && rd_pos_offset(r, r->wpos) >= r->o.range_end) {
            r->done = 1;
            return 0;
        }
        if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
            r->wpos += *p == '\n' ? 1 : 2;
            if (r->line) r->line++;
            continue;
        }
        size_t raw_len = 0;
        size_t used = rd_csv_scan(r, p, end, r->eof, &raw_len);
        if (used == RD_SCAN_NOMEM) {
            mr_fail(e, MR_ENOMEM, "%s: out of memory parsing a record", r->uri);
            return -1;
        }
        if (used == RD_SCAN_MORE) {
            if (rd_refill(r, e) < 0) return -1;
            continue;
        }
        r->rec_off = rd_pos_offset(r, r->wpos);
        r->rec_line = r->line;
        r->rec_raw = p;
        r->rec_raw_len = raw_len;
        r->wpos += used;
        if (r->line) r->line += 1 + r->rec_nl;
        if (r->anomaly) {
            snprintf(r->reason, sizeof r->reason, "field %zu: %s", r->anomaly_field + 1, r->anomaly);
            if (rd_bad(r, r->names && r->anomaly_field < r->ncols ? r->names[r->anomaly_field] : NULL,
                       e) < 0)
                return -1;
            continue;
        }
        if (r->names && r->nf != r->ncols) {
            snprintf(r->reason, sizeof r->reason, "row has %zu field%s, %s has %zu", r->nf,
                     r->nf == 1 ? "" : "s", r->o.header ? "header" : "schema", r->ncols);
            if (rd_bad(r, NULL, e) < 0) return -1;
            continue;
        }
        if (rd_csv_unescape(r, raw_len) < 0) {
            mr_fail(e, MR_ENOMEM, "%s: out of memory parsing a record", r->uri);
            return -1;
        }
        return 1;
    }
}

/* Takes names from the current record (the header row), making them unique and
 * non-empty so they can name frame columns. */
static mr_code rd_set_names_from_record(reader *r, mr_err *e)
{
    r->ncols = r->nf;
    r->names = calloc(r->nf ? r->nf : 1, sizeof *r->names);
    MR_CHECK(r->names, e, MR_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->nf; i++) {
        char buf[64];
        const char *src = r->fptr[i];
        size_t n = r->flen[i];
        if (n == 0) {
            n = (size_t)snprintf(buf, sizeof buf, "c%zu", i + 1);
            src = buf;
        }
        char *name = strndup(src, n);
        MR_CHECK(name, e, MR_ENOMEM, "out of memory");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(r->names[j], name) != 0) continue;
            /* duplicate header: x, x_2, x_3 ... */
            size_t len = strlen(name) + 24;
            char *alt = malloc(len);
            MR_CHECK(alt, e, MR_ENOMEM, "out of memory");
            for (size_t k = 2;; k++) {
                snprintf(alt, len, "%s_%zu", name, k);
                size_t m = 0;
                while (m < i && strcmp(r->names[m], alt) != 0) m++;
                if (m == i) break;
            }
            free(name);
            name = alt;
            break;
        }
        r->names[i] = name;
    }
    return MR_OK;
}

static mr_code rd_set_names(reader *r, const char *const *names, size_t n, mr_err *e)
{
    r->ncols = n;
    r->names = calloc(n ? n : 1, sizeof *r->names);
    MR_CHECK(r->names, e, MR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        r->names[i] = strdup(names[i]);
        MR_CHECK(r->names[i], e, MR_ENOMEM, "out of memory");
    }
    return MR_OK;
}

/* Header of a split that does not start at 0: read from the top of the file. */
static mr_code rd_read_header_elsewhere(reader *r, mr_err *e)
{
    reader_opts o = r->o;
    o.range_start = o.range_end = 0;
    o.max_records = 0;
    o.ncols = 0;
    reader *h = reader_open(r->uri, &o, NULL, NULL, e);
    if (!h) return e ? e->code : MR_EIO;
    mr_code rc = MR_OK;
    if (h->names) {
        rc = rd_set_names(r, (const char *const *)h->names, h->ncols, e);
    } else {
        rc = mr_fail(e, MR_EFORMAT, "%s: no header row", r->uri);
    }
    reader_free(h);
    return rc;
}

/* CSV split start. The byte before range_start may lie outside quotes, inside a quoted
 * field, or just after a quote inside one; each guess is a parser state. All guesses
 * run over the window (1 MiB) at once; a guess dies on what RFC 4180 cannot hold (text
 * after a closing quote, a quote inside an unquoted field, a row whose field count
 * differs from the header's). The first record start of the survivor (a '\n' outside
 * quotes) is where the split begins; with several survivors, "outside" wins. */
static int rd_skip_first_line(reader *r, mr_err *e);

enum { RD_H_START, RD_H_UNQ, RD_H_Q, RD_H_QQ };

typedef struct rd_guess {
    int state, dead;
    size_t first;     /* window position of the first record start, SIZE_MAX if none */
    size_t fields;    /* delimiters seen in the current record */
} rd_guess;

static void rd_guess_boundary(const reader *r, rd_guess *g, size_t pos)
{
    int empty_line = g->state == RD_H_START && g->fields == 0;
    if (g->first == SIZE_MAX) g->first = pos + 1;
    else if (r->names && !empty_line && g->fields + 1 != r->ncols) g->dead = 1;
    g->fields = 0;
    g->state = RD_H_START;
}

static void rd_guess_step(const reader *r, rd_guess *g, char c, size_t pos)
{
    if (g->dead) return;
    switch (g->state) {
    case RD_H_START:
        if (c == '"') g->state = RD_H_Q;
        else if (c == r->delim) g->fields++;
        else if (c == '\n') rd_guess_boundary(r, g, pos);
        else g->state = RD_H_UNQ;
        break;
    case RD_H_UNQ:
        if (c == r->delim) {
            g->fields++;
            g->state = RD_H_START;
        } else if (c == '\n') {
            rd_guess_boundary(r, g, pos);
        } else if (c == '"') {
            g->dead = 1;
        }
        break;
    case RD_H_Q:
        if (c == '"') g->state = RD_H_QQ;
        break;
    default:   /* RD_H_QQ: the quote just seen escapes or closes */
        if (c == '"') {
            g->state = RD_H_Q;
        } else if (c == r->delim) {
            g->fields++;
            g->state = RD_H_START;
        } else if (c == '\n') {
            rd_guess_boundary(r, g, pos);
        } else if (c != '\r') {
            g->dead = 1;
        }
        break;
    }
}

/* rd_csv_resync over a window without a single quote, with the outcome of the general
 * loop at a fraction of its cost (it ran three guesses a byte over the whole window, 6% of
 * a group-by's CPU time): the guess "inside quotes" can then never change state, die or
 * find a record start, so it is never chosen and the general loop never stops early. The
 * other two are stepped to the first '\n', where the survivors have both found that record
 * start and are in the same state; from there they share one fate, decided line by line:
 * a non-empty line whose field count differs from the header's kills them. */
static void rd_resync_noquote(const reader *r, rd_guess *g)
{
    size_t pos = r->wpos;
    const char *w = r->win;
    const char *nl = memchr(w + pos, '\n', r->wlen - pos);
    size_t stop = nl ? (size_t)(nl - w) + 1 : r->wlen;
    for (; pos < stop; pos++) {
        rd_guess_step(r, &g[0], w[pos], pos);
        rd_guess_step(r, &g[2], w[pos], pos);
    }
    if (!nl || !r->names || (g[0].dead && g[2].dead)) return;
    const char delim = r->delim;
    while (pos < r->wlen) {
        const char *p = w + pos;
        const char *end = memchr(p, '\n', r->wlen - pos);
        if (!end) break;   /* a last partial line is no boundary */
        size_t len = (size_t)(end - p), k = 0;
        for (size_t i = 0; i < len; i++) k += p[i] == delim;
        if (len > 0 && k + 1 != r->ncols) {
            g[0].dead = g[2].dead = 1;
            return;
        }
        pos += len + 1;
    }
}

static int rd_csv_resync(reader *r, mr_err *e)
{
    while (r->wlen - r->wpos < RD_CHUNK / 2 && !r->eof)
        if (rd_refill(r, e) < 0) return -1;
    rd_guess g[3] = {{RD_H_START, 0, SIZE_MAX, 0}, {RD_H_Q, 0, SIZE_MAX, 0}, {RD_H_QQ, 0, SIZE_MAX, 0}};
    int noquote = r->wpos < r->wlen && !memchr(r->win + r->wpos, '"', r->wlen - r->wpos);
    if (noquote) rd_resync_noquote(r, g);
    for (size_t pos = noquote ? r->wlen : r->wpos; pos < r->wlen; pos++) {
        char c = r->win[pos];
        int alive = 0, found = 1;
        for (int k = 0; k < 3; k++) {
            rd_guess_step(r, &g[k], c, pos);
            alive += !g[k].dead;
            if (!g[k].dead) found = g[k].first != SIZE_MAX;
        }
        if (alive == 0 || (alive == 1 && found)) break;
        /* Guesses in the same state with the same first record agree from here on. */
        int agree = 1;
        rd_guess *ref = NULL;
        for (int k = 0; k < 3 && agree; k++) {
            if (g[k].dead) continue;
            if (!ref) ref = &g[k];
            else agree = g[k].state == ref->state && g[k].first == ref->first && g[k].first != SIZE_MAX;
        }
        if (alive >= 2 && agree) break;
        /* At the end of the input a guess still inside quotes left a quote open. */
        if (pos + 1 == r->wlen && r->eof)
            for (int k = 0; k < 3; k++)
                if (!g[k].dead && g[k].state == RD_H_Q && alive > 1) g[k].dead = 1, alive--;
    }
    for (int k = 0; k < 3; k++) {
        if (g[k].dead || g[k].first == SIZE_MAX) continue;
        r->wpos = g[k].first;
        return 1;
    }
    /* No evidence either way (e.g. a record longer than the window): line-based start. */
    return rd_skip_first_line(r, e);
}

/* ------------------------------------------------------------------- open ---- */

int reader_format_parse(const char *name, reader_format *out)
{
    if (!name) return -1;
    if (strcmp(name, "lines") == 0 || strcmp(name, "text") == 0) *out = READER_LINES;
    else if (strcmp(name, "csv") == 0 || strcmp(name, "tsv") == 0) *out = READER_CSV;
    else if (strcmp(name, "jsonl") == 0 || strcmp(name, "json") == 0 || strcmp(name, "ndjson") == 0)
        *out = READER_JSONL;
    else return -1;
    return 0;
}

void reader_opts_init(reader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = READER_LINES;
    o->header = 1;
}

void reader_free(reader *r)
{
    if (!r) return;
    stream_close(r->s);
    if (r->json) cJSON_Delete(r->json);
    if (r->names)
        for (size_t i = 0; i < r->ncols; i++) free(r->names[i]);
    free(r->names);
    for (size_t i = 0; i < r->nschema; i++) free(r->schema_names[i]);
    free(r->schema_names);
    free(r->schema_types);
    free(r->fptr);
    free(r->flen);
    free(r->fq);
    free(r->unq);
    free(r->uri);
    free(r);
}

static mr_code rd_copy_schema(reader *r, const reader_opts *o, mr_err *e)
{
    if (o->ncols == 0) return MR_OK;
    r->nschema = o->ncols;
    r->schema_names = calloc(o->ncols, sizeof *r->schema_names);
    MR_CHECK(r->schema_names, e, MR_ENOMEM, "out of memory");
    if (o->col_types) {
        r->schema_types = malloc(o->ncols * sizeof *r->schema_types);
        MR_CHECK(r->schema_types, e, MR_ENOMEM, "out of memory");
        memcpy(r->schema_types, o->col_types, o->ncols * sizeof *r->schema_types);
    }
    for (size_t i = 0; i < o->ncols; i++) {
        char buf[32];
        const char *n = o->col_names && o->col_names[i] ? o->col_names[i] : NULL;
        if (!n) {
            snprintf(buf, sizeof buf, "c%zu", i + 1);
            n = buf;
        }
        r->schema_names[i] = strdup(n);
        MR_CHECK(r->schema_names[i], e, MR_ENOMEM, "out of memory");
    }
    r->o.col_names = (const char *const *)r->schema_names;
    r->o.col_types = r->schema_types;
    return MR_OK;
}

static mr_code rd_open_stream(reader *r, mr_err *e)
{
    uint64_t start = r->o.range_start;
    if (start == 0) {
        r->s = stream_open(r->uri, e);
        if (!r->s) return e ? e->code : MR_EIO;
        r->line = 1;
        return MR_OK;
    }
    size_t n = strlen(r->uri);
    MR_CHECK(!(n > 3 && strcmp(r->uri + n - 3, ".gz") == 0), e, MR_EINVAL,
             "%s: byte-range splits need an uncompressed input", r->uri);
    /* One byte early: if it is '\n', the record at range_start belongs to this split. */
    r->s = stream_open_raw(r->uri, start - 1, e);
    if (!r->s) return e ? e->code : MR_EIO;
    r->abs_base = start - 1;
    r->win_off = start - 1;
    r->line = 0;
    return MR_OK;
}

/* Line-based split start: just past the first '\n' at or after range_start - 1. */
static int rd_skip_first_line(reader *r, mr_err *e)
{
    for (;;) {
        if (r->wpos == r->wlen) {
            if (r->eof) return 0;
            if (rd_refill(r, e) < 0) return -1;
            continue;
        }
        const char *nl = memchr(r->win + r->wpos, '\n', r->wlen - r->wpos);
        if (nl) {
            r->wpos = (size_t)(nl + 1 - r->win);
            return 1;
        }
        r->wpos = r->wlen;
    }
}

reader *reader_open(const char *uri, const reader_opts *o, reader_bad_fn on_bad, void *ud,
                    mr_err *e)
{
    reader *r = calloc(1, sizeof *r);
    MR_CHECK_NULL(r, e, MR_ENOMEM, "out of memory opening %s", uri);
    r->uri = strdup(uri);
    r->win = "";   /* never NULL: pointer arithmetic on it is always defined */
    if (o) r->o = *o;
    else reader_opts_init(&r->o);
    r->on_bad = on_bad;
    r->ud = ud;
    r->delim = r->o.delimiter ? r->o.delimiter : ',';
    if (!r->uri || rd_copy_schema(r, o ? o : &r->o, e) != MR_OK) goto fail;
    if (rd_open_stream(r, e) != MR_OK) goto fail;
    if (r->o.format != READER_CSV) {
        if (r->o.range_start > 0 && rd_skip_first_line(r, e) < 0) goto fail;
        return r;
    }

    if (r->o.header) {
        if (r->o.range_start == 0) {
            /* names are unknown while reading the header row itself */
            int rc = rd_csv_record(r, e);
            if (rc < 0) goto fail;
            if (rc == 1 && rd_set_names_from_record(r, e) != MR_OK) goto fail;
        } else if (rd_read_header_elsewhere(r, e) != MR_OK) {
            goto fail;
        }
    } else if (r->nschema) {
        if (rd_set_names(r, (const char *const *)r->schema_names, r->nschema, e) != MR_OK) goto fail;
    }
    if (r->o.range_start > 0 && rd_csv_resync(r, e) < 0) goto fail;
    return r;
fail:
    reader_free(r);
    return NULL;
}

uint64_t reader_records(const reader *r) { return r->nrec; }
uint64_t reader_bad_count(const reader *r) { return r->nbad; }
const char *reader_uri(const reader *r) { return r->uri; }
uint64_t reader_bytes(const reader *r)
{
    /* Window bytes consumed but not yet skipped in the stream count too. */
    uint64_t raw = stream_raw_offset(r->s);
    return stream_offset(r->s) == raw ? raw + r->wpos : raw;
}

/* ------------------------------------------------------------ reader_next ---- */

/* Headerless CSV without a schema: the first good row fixes the field count and the
 * names are c1..cN. The row is left unread. 0 ok (also at end), -1 error. */
static int rd_csv_learn_width(reader *r, mr_err *e)
{
    int rc = rd_csv_record(r, e);
    if (rc <= 0) return rc;
    r->wpos = (size_t)(r->rec_raw - r->win);
    r->line = r->rec_line;
    r->ncols = r->nf;
    r->names = calloc(r->nf ? r->nf : 1, sizeof *r->names);
    if (!r->names) return mr_fail(e, MR_ENOMEM, "out of memory"), -1;
    for (size_t i = 0; i < r->nf; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "c%zu", i + 1);
        if (!(r->names[i] = strdup(buf))) return mr_fail(e, MR_ENOMEM, "out of memory"), -1;
    }
    return 0;
}

static int rd_limit_reached(reader *r)
{
    if (r->o.max_records && r->nrec >= r->o.max_records) r->done = 1;
    return r->done || (r->batch_end && r->nrec >= r->batch_end);
}

/* Records still wanted: max_records and the batch's end, whichever comes first. */
static uint64_t rd_records_left(const reader *r, uint64_t cap)
{
    if (r->o.max_records && r->o.max_records - r->nrec < cap) cap = r->o.max_records - r->nrec;
    if (r->batch_end && r->batch_end - r->nrec < cap) cap = r->batch_end - r->nrec;
    return cap;
}

int reader_next(reader *r, reader_rec *rec, mr_err *e)
{
    if (rd_limit_reached(r)) return 0;
    memset(rec, 0, sizeof *rec);
    if (r->o.format == READER_CSV) {
        if (!r->names && rd_csv_learn_width(r, e) < 0) return -1;
        int rc = rd_csv_record(r, e);
        if (rc <= 0) return rc;
        rec->nfields = r->nf;
        rec->fields = r->fptr;
        rec->field_lens = r->flen;
        rec->names = r->o.header ? (const char *const *)r->names : NULL;
    } else {
        for (;;) {
            const char *p;
            size_t n;
            if (r->o.range_end && rd_pos_offset(r, r->wpos) >= r->o.range_end) {
                r->done = 1;
                return 0;
            }
            int rc = rd_next_line(r, &p, &n, e);
            if (rc <= 0) return rc;
            if (r->o.format == READER_LINES) break;
            if (r->json) cJSON_Delete(r->json);
            r->json = NULL;
            size_t k = 0;
            while (k < n && (p[k] == ' ' || p[k] == '\t')) k++;
            if (k == n) continue;   /* blank lines separate nothing in JSON lines */
            r->json = cJSON_ParseWithLength(p, n);
            if (r->json && cJSON_IsObject(r->json)) break;
            snprintf(r->reason, sizeof r->reason, "%s",
                     r->json ? "line is not a JSON object" : "invalid JSON");
            if (r->json) cJSON_Delete(r->json);
            r->json = NULL;
            if (rd_bad(r, NULL, e) < 0) return -1;
        }
        rec->json = r->json;
    }
    r->nrec++;
    rec->number = r->nrec;
    rec->offset = r->rec_off;
    rec->raw = r->rec_raw;
    rec->raw_len = r->rec_raw_len;
    return 1;
}

/* ---------------------------------------------------------- frame builder ---- */

static void rd_fb_free(rd_fb *b)
{
    frame_free(b->f);
    free(b->col);
    free(b->fixed);
    free(b->seen);
    free(b->src);
    free(b->val);
    free(b->isnull);
    free(b->cells);
    free(b->numtxt);
    memset(b, 0, sizeof *b);
}

static mr_code rd_fb_reserve(rd_fb *b, size_t n, mr_err *e)
{
    if (n <= b->cap) return MR_OK;
    size_t ncap = b->cap ? b->cap : 8;
    while (ncap < n) ncap *= 2;
#define RD_GROW(ptr)                                                          \
    do {                                                                      \
        void *np_ = realloc(ptr, ncap * sizeof *(ptr));                       \
        MR_CHECK(np_, e, MR_ENOMEM, "out of memory building a frame");        \
        ptr = np_;                                                            \
    } while (0)
    RD_GROW(b->col);
    RD_GROW(b->fixed);
    RD_GROW(b->seen);
    RD_GROW(b->src);
    RD_GROW(b->val);
    RD_GROW(b->isnull);
    RD_GROW(b->cells);
    RD_GROW(b->numtxt);
#undef RD_GROW
    b->cap = ncap;
    return MR_OK;
}

/* Adds a column; type < 0 means "to be inferred" (an int64 placeholder until a value). */
static mr_code rd_fb_add(rd_fb *b, const char *name, int type, int src, mr_err *e)
{
    MR_TRY(rd_fb_reserve(b, b->ncols + 1, e));
    frame_col *c = frame_add_col(b->f, name, type < 0 ? FRAME_I64 : (frame_type)type, e);
    if (!c) return e ? e->code : MR_ENOMEM;
    size_t i = b->ncols++;
    b->col[i] = c;
    b->fixed[i] = type >= 0;
    b->seen[i] = type >= 0;
    b->src[i] = src;
    return MR_OK;
}

static int rd_cell_class(const rd_cell *c)
{
    int64_t i;
    double f;
    int b;
    switch (c->kind) {
    case CELL_NULL: return RD_TYPE_NONE;
    case CELL_TEXT:
    case CELL_QTEXT:
        if (c->n == 0) return RD_TYPE_NONE;
        if (rd_parse_i64(c->p, c->n, &i)) return FRAME_I64;
        if (rd_parse_f64(c->p, c->n, &f)) return FRAME_F64;
        if (rd_parse_bool(c->p, c->n, &b)) return FRAME_BOOL;
        return FRAME_STR;
    case CELL_JNUM:
        return c->num == floor(c->num) && fabs(c->num) <= 9007199254740992.0 ? FRAME_I64 : FRAME_F64;
    case CELL_JBOOL: return FRAME_BOOL;
    default: return FRAME_STR;
    }
}

static int rd_type_join(int a, int b)
{
    if (a == RD_TYPE_NONE) return b;
    if (b == RD_TYPE_NONE || a == b) return a;
    if ((a == FRAME_I64 && b == FRAME_F64) || (a == FRAME_F64 && b == FRAME_I64)) return FRAME_F64;
    return FRAME_STR;
}

/* Converts a cell to type t: 1 value, 2 null, 0 does not fit. */
static inline int rd_cell_to(rd_fb *b, size_t col, const rd_cell *c, frame_type t, rd_val *v)
{
    switch (c->kind) {
    case CELL_NULL: return 2;
    case CELL_TEXT:
    case CELL_QTEXT:
    case CELL_JSTR:
        if (c->n == 0 && (t != FRAME_STR || c->kind == CELL_TEXT)) return 2;
        switch (t) {
        case FRAME_I64: return rd_parse_i64(c->p, c->n, &v->i);
        case FRAME_F64: return rd_parse_f64(c->p, c->n, &v->f);
        case FRAME_BOOL: return rd_parse_bool(c->p, c->n, &v->b);
        case FRAME_STR:
            v->s.p = c->p;
            v->s.n = c->n;
            return 1;
        }
        return 0;
    case CELL_JRAW:
        if (t != FRAME_STR) return 0;
        v->s.p = c->p;
        v->s.n = c->n;
        return 1;
    case CELL_JNUM:
        switch (t) {
        case FRAME_I64:
            if (c->num != floor(c->num) || fabs(c->num) > 9.2e18) return 0;
            v->i = (int64_t)c->num;
            return 1;
        case FRAME_F64: v->f = c->num; return 1;
        case FRAME_BOOL: return 0;
        case FRAME_STR:
            v->s.p = b->numtxt[col];
            if (c->num == floor(c->num) && fabs(c->num) < 9.2e18)
                v->s.n = (size_t)snprintf(b->numtxt[col], 40, "%lld", (long long)c->num);
            else
                v->s.n = writer_fmt_f64(b->numtxt[col], c->num);
            return 1;
        }
        return 0;
    case CELL_JBOOL:
        if (t == FRAME_BOOL) {
            v->b = c->num != 0;
            return 1;
        }
        if (t != FRAME_STR) return 0;
        v->s.p = c->num != 0 ? "true" : "false";
        v->s.n = c->num != 0 ? 4 : 5;
        return 1;
    }
    return 0;
}

/* Rebuilds column i as type t (same rows, nulls kept). */
static mr_code rd_fb_retype(rd_fb *b, size_t i, frame_type t, mr_err *e)
{
    frame_col *old = b->col[i];
    size_t n = old->len;
    frame_col *c = frame_col_create(old->name, t, n ? n : 16);
    MR_CHECK(c, e, MR_ENOMEM, "out of memory converting column '%s'", old->name);
    mr_code rc = MR_OK;
    for (size_t r = 0; r < n && rc == MR_OK; r++) {
        if (!b->seen[i] || frame_col_is_null(old, r)) {
            rc = frame_col_push_null(c);
            continue;
        }
        char buf[40];
        switch (t) {
        case FRAME_F64: rc = frame_col_push_f64(c, frame_col_num(old, r)); break;
        case FRAME_STR:
            if (old->type == FRAME_I64) {
                int k = snprintf(buf, sizeof buf, "%lld", (long long)old->v.i64[r]);
                rc = frame_col_push_str(c, buf, (size_t)k);
            } else if (old->type == FRAME_F64) {
                rc = frame_col_push_str(c, buf, writer_fmt_f64(buf, old->v.f64[r]));
            } else {
                rc = old->v.b[r] ? frame_col_push_str(c, "true", 4) : frame_col_push_str(c, "false", 5);
            }
            break;
        default: rc = MR_EINVAL; break;
        }
    }
    if (rc != MR_OK) {
        frame_col_free(c);
        return mr_fail(e, rc, "converting column '%s' to %s failed", old->name, frame_type_name(t));
    }
    MR_TRY(frame_attach_col(b->f, c, e));
    b->col[i] = frame_col_at(b->f, i);
    return MR_OK;
}

/* Appends one row from b->cells. 1 appended, 0 bad record (reported), -1 error. */
static int rd_fb_row(reader *r, rd_fb *b, mr_err *e)
{
    for (size_t i = 0; i < b->ncols; i++) {
        const rd_cell *c = &b->cells[i];
        frame_col *col = b->col[i];
        int rc = rd_cell_to(b, i, c, col->type, &b->val[i]);
        if (rc) {
            b->isnull[i] = rc == 2;
            continue;
        }
        if (b->fixed[i]) {
            if (c->kind == CELL_JNUM || c->kind == CELL_JBOOL)
                snprintf(r->reason, sizeof r->reason, "field '%s': JSON %s is not a valid %s",
                         col->name, c->kind == CELL_JNUM ? "number" : "boolean",
                         frame_type_name(col->type));
            else
                snprintf(r->reason, sizeof r->reason, "field '%s': '%.*s%s' is not a valid %s",
                         col->name, c->n > 64 ? 64 : (int)c->n, c->p, c->n > 64 ? "..." : "",
                         frame_type_name(col->type));
            return rd_bad(r, col->name, e) < 0 ? -1 : 0;
        }
        int t = b->seen[i] ? rd_type_join(col->type, rd_cell_class(c)) : rd_cell_class(c);
        if (rd_fb_retype(b, i, (frame_type)t, e) != MR_OK) return -1;
        rc = rd_cell_to(b, i, c, (frame_type)t, &b->val[i]);
        if (rc == 0) {
            mr_fail(e, MR_EINVAL, "%s: internal error converting column '%s'", r->uri, col->name);
            return -1;
        }
        b->isnull[i] = rc == 2;
    }
    for (size_t i = 0; i < b->ncols; i++) {
        frame_col *col = b->col[i];
        mr_code rc;
        if (b->isnull[i]) {
            rc = frame_col_push_null(col);
        } else {
            b->seen[i] = 1;
            switch (col->type) {
            case FRAME_I64: rc = frame_col_push_i64(col, b->val[i].i); break;
            case FRAME_F64: rc = frame_col_push_f64(col, b->val[i].f); break;
            case FRAME_BOOL: rc = frame_col_push_bool(col, b->val[i].b); break;
            default: rc = frame_col_push_str(col, b->val[i].s.p, b->val[i].s.n); break;
            }
        }
        if (rc != MR_OK) {
            mr_fail(e, rc, "%s: out of memory appending to column '%s'", r->uri, col->name);
            return -1;
        }
    }
    return 1;
}

/* Columns never given a value become all-null string columns. */
static mr_code rd_fb_finish(rd_fb *b, mr_err *e)
{
    for (size_t i = 0; i < b->ncols; i++)
        if (!b->seen[i]) MR_TRY(rd_fb_retype(b, i, FRAME_STR, e));
    return MR_OK;
}

/* Has the frame being built reached frame_bytes_cap? Looked at every 4096 rows (and once
 * the inference rows are in), since summing the columns' buffers is not free. */
static int rd_frame_full(reader *r, const rd_fb *b)
{
    if (!r->frame_bytes_cap || b->ncols == 0) return 0;
    size_t rows = b->col[0]->len;
    if (rows < r->frame_check_rows) return 0;
    r->frame_check_rows = rows + 4096;
    if (frame_mem_bytes(b->f) < r->frame_bytes_cap) return 0;
    r->frame_bytes_hit = 1;
    return 1;
}

/* ------------------------------------------------------------ frame: csv ---- */

static void rd_csv_cells(reader *r, rd_fb *b)
{
    for (size_t i = 0; i < b->ncols; i++) {
        rd_cell *c = &b->cells[i];
        int k = b->src[i];
        c->p = r->fptr[k];
        c->n = r->flen[k];
        c->kind = r->fq[k] ? CELL_QTEXT : CELL_TEXT;
    }
}

/* The hot path: every field parses as its column's current type. Anything else (a
 * promotion, a bad value) goes through the general rd_fb_row. */
static int rd_csv_row_fast(reader *r, rd_fb *b, mr_err *e)
{
    size_t nc = b->ncols;
    for (size_t i = 0; i < nc; i++) {
        const char *p = r->fptr[i];
        size_t n = r->flen[i];
        rd_val *v = &b->val[i];
        frame_type t = b->col[i]->type;
        b->isnull[i] = 0;
        if (n == 0) {
            if (t == FRAME_STR && r->fq[i]) {
                v->s.p = p;
                v->s.n = 0;
            } else {
                b->isnull[i] = 1;
            }
            continue;
        }
        switch (t) {
        case FRAME_I64:
            if (!rd_parse_i64(p, n, &v->i)) goto general;
            break;
        case FRAME_F64:
            if (!rd_parse_f64(p, n, &v->f)) goto general;
            break;
        case FRAME_BOOL:
            if (!rd_parse_bool(p, n, &v->b)) goto general;
            break;
        default:
            v->s.p = p;
            v->s.n = n;
            break;
        }
    }
    for (size_t i = 0; i < nc; i++) {
        frame_col *col = b->col[i];
        mr_code rc;
        if (b->isnull[i]) {
            rc = frame_col_push_null(col);
        } else {
            switch (col->type) {
            case FRAME_I64: rc = frame_col_push_i64(col, b->val[i].i); break;
            case FRAME_F64: rc = frame_col_push_f64(col, b->val[i].f); break;
            case FRAME_BOOL: rc = frame_col_push_bool(col, b->val[i].b); break;
            default: rc = frame_col_push_str(col, b->val[i].s.p, b->val[i].s.n); break;
            }
            b->seen[i] = 1;
        }
        if (rc != MR_OK) {
            mr_fail(e, rc, "%s: out of memory appending to column '%s'", r->uri, col->name);
            return -1;
        }
    }
    return 1;
general:
    rd_csv_cells(r, b);
    return rd_fb_row(r, b, e);
}

/* Pushes the current record; counts it. 1 pushed, 0 skipped, -1 error. */
static int rd_csv_push(reader *r, rd_fb *b, mr_err *e)
{
    int rc = rd_csv_row_fast(r, b, e);
    if (rc == 1) r->nrec++;
    return rc;
}

typedef struct rd_stage {
    char *bytes;
    size_t len, cap;
    size_t *start;     /* record i is bytes[start[i]..start[i+1]) */
    uint64_t *off, *line;
    size_t n, ncap;
} rd_stage;

static void rd_stage_free(rd_stage *s)
{
    free(s->bytes);
    free(s->start);
    free(s->off);
    free(s->line);
}

static mr_code rd_stage_add(rd_stage *s, const char *p, size_t n, uint64_t off, uint64_t line,
                            mr_err *e)
{
    if (s->n + 2 > s->ncap) {
        size_t ncap = s->ncap ? s->ncap * 2 : 1024;
        size_t *st = realloc(s->start, ncap * sizeof *st);
        MR_CHECK(st, e, MR_ENOMEM, "out of memory");
        s->start = st;
        uint64_t *o = realloc(s->off, ncap * sizeof *o);
        MR_CHECK(o, e, MR_ENOMEM, "out of memory");
        s->off = o;
        uint64_t *l = realloc(s->line, ncap * sizeof *l);
        MR_CHECK(l, e, MR_ENOMEM, "out of memory");
        s->line = l;
        s->ncap = ncap;
    }
    if (s->len + n > s->cap) {
        size_t ncap = s->cap ? s->cap : 1 << 16;
        while (ncap < s->len + n) ncap *= 2;
        char *nb = realloc(s->bytes, ncap);
        MR_CHECK(nb, e, MR_ENOMEM, "out of memory");
        s->bytes = nb;
        s->cap = ncap;
    }
    if (s->n == 0) s->start[0] = 0;
    if (n) memcpy(s->bytes + s->len, p, n);
    s->len += n;
    s->off[s->n] = off;
    s->line[s->n] = line;
    s->start[++s->n] = s->len;
    return MR_OK;
}

/* Re-splits staged record i into the field arrays. */
static int rd_stage_scan(reader *r, rd_stage *s, size_t i, mr_err *e)
{
    /* only empty records staged: no bytes were ever allocated (NULL + 0 is undefined) */
    const char *p = s->bytes ? s->bytes + s->start[i] : "";
    size_t n = s->start[i + 1] - s->start[i], raw_len;
    if (rd_csv_scan(r, p, p + n, 1, &raw_len) == RD_SCAN_NOMEM || rd_csv_unescape(r, n) < 0) {
        mr_fail(e, MR_ENOMEM, "%s: out of memory", r->uri);
        return -1;
    }
    r->rec_raw = p;
    r->rec_raw_len = n;
    r->rec_off = s->off[i];
    r->rec_line = s->line[i];
    return 0;
}

/* Stages the first block of rows, decides the types of the columns still to infer and
 * appends the staged rows. */
static int rd_csv_infer(reader *r, rd_fb *b, mr_err *e)
{
    rd_stage s = {0};
    int rc = 0;
    uint64_t limit = rd_records_left(r, RD_INFER_ROWS);
    /* the staged rows all go into the frame: keep them within a capped frame's size */
    size_t stage_bytes = RD_INFER_BYTES;
    if (r->frame_bytes_cap && r->frame_bytes_cap / 2 < stage_bytes) stage_bytes = r->frame_bytes_cap / 2;
    while (s.n < limit && (s.n == 0 || s.len < stage_bytes)) {
        rc = rd_csv_record(r, e);
        if (rc <= 0) break;
        if (rd_stage_add(&s, r->rec_raw, r->rec_raw_len, r->rec_off, r->rec_line, e) != MR_OK) {
            rc = -1;
            break;
        }
    }
    if (rc < 0) goto done;
    int *hint = malloc((b->ncols ? b->ncols : 1) * sizeof *hint);
    if (!hint) {
        mr_fail(e, MR_ENOMEM, "out of memory");
        rc = -1;
        goto done;
    }
    for (size_t c = 0; c < b->ncols; c++) hint[c] = RD_TYPE_NONE;
    for (size_t i = 0; i < s.n && rc >= 0; i++) {
        if ((rc = rd_stage_scan(r, &s, i, e)) < 0) break;
        rd_csv_cells(r, b);
        for (size_t c = 0; c < b->ncols; c++)
            if (!b->fixed[c]) hint[c] = rd_type_join(hint[c], rd_cell_class(&b->cells[c]));
    }
    for (size_t c = 0; c < b->ncols && rc >= 0; c++) {
        if (b->fixed[c] || hint[c] == RD_TYPE_NONE) continue;
        if (rd_fb_retype(b, c, (frame_type)hint[c], e) != MR_OK) rc = -1;
        b->seen[c] = 1;
    }
    free(hint);
    for (size_t i = 0; i < s.n && rc >= 0; i++) {
        if ((rc = rd_stage_scan(r, &s, i, e)) < 0) break;
        rc = rd_csv_push(r, b, e);
    }
done:
    rd_stage_free(&s);
    return rc < 0 ? -1 : 0;
}

static mr_code rd_csv_columns(reader *r, rd_fb *b, mr_err *e)
{
    for (size_t i = 0; i < r->ncols; i++) {
        int type = -1;
        if (r->schema_types) {
            for (size_t k = 0; k < r->nschema; k++)
                if (strcmp(r->schema_names[k], r->names[i]) == 0) type = (int)r->schema_types[k];
        }
        MR_TRY(rd_fb_add(b, r->names[i], type, (int)i, e));
    }
    if (r->o.header && r->schema_types) {
        for (size_t k = 0; k < r->nschema; k++) {
            size_t i = 0;
            while (i < r->ncols && strcmp(r->schema_names[k], r->names[i]) != 0) i++;
            MR_CHECK(i < r->ncols, e, MR_EINVAL, "%s: column '%s' of the schema is not in the header",
                     r->uri, r->schema_names[k]);
        }
    }
    return MR_OK;
}

/* Rows after which a byte-range split sizes its columns for the whole range. */
#define RD_RESERVE_AFTER 8192

/* A byte-range split knows how many bytes it will read: once RD_RESERVE_AFTER rows show
 * the bytes per row (and per string cell), every column is sized for the whole range
 * (plus a margin), so the buffers do not double, and copy, their way up. */
static void rd_fb_reserve_range(reader *r, rd_fb *b, uint64_t start_off)
{
    if (!r->o.range_end || b->ncols == 0) return;
    uint64_t pos = rd_pos_offset(r, r->wpos);
    size_t rows = b->col[0]->len;
    if (rows == 0 || pos <= start_off || r->o.range_end <= pos) return;
    double scale = (double)(r->o.range_end - start_off) / (double)(pos - start_off) * 1.05;
    if (scale > 1e6) return;
    size_t want = (size_t)((double)rows * scale) + 64;
    if (r->o.max_records && want > r->o.max_records) want = (size_t)r->o.max_records + 1;
    for (size_t i = 0; i < b->ncols; i++) {
        frame_col *c = b->col[i];
        size_t bytes = c->type == FRAME_STR ? (size_t)((double)c->arena_len * scale) + 64 : 0;
        /* only a hint: a failure here shows up, if ever, when the rows are appended */
        (void)frame_col_reserve(c, want, bytes);
    }
}

static frame *rd_frame_csv(reader *r, rd_fb *b, mr_err *e)
{
    int rc;
    if (!r->names && rd_csv_learn_width(r, e) < 0) return NULL;
    if (rd_csv_columns(r, b, e) != MR_OK) return NULL;
    uint64_t start_off = rd_pos_offset(r, r->wpos);
    int reserved = 0;
    int any_infer = 0;
    for (size_t i = 0; i < b->ncols; i++) any_infer |= !b->fixed[i];
    if (any_infer && rd_csv_infer(r, b, e) < 0) return NULL;
    if (b->ncols && b->col[0]->len > r->frame_check_rows) r->frame_check_rows = b->col[0]->len;
    while (!rd_limit_reached(r) && !rd_frame_full(r, b)) {
        rc = rd_csv_record(r, e);
        if (rc < 0) return NULL;
        if (rc == 0) break;
        if (rd_csv_push(r, b, e) < 0) return NULL;
        if (!reserved && !r->batch_end && b->ncols && b->col[0]->len >= RD_RESERVE_AFTER) {
            rd_fb_reserve_range(r, b, start_off);
            reserved = 1;
        }
    }
    if (rd_fb_finish(b, e) != MR_OK) return NULL;
    frame *f = b->f;
    b->f = NULL;
    return f;
}

/* ---------------------------------------------------------- frame: jsonl ---- */

static int rd_json_col(reader *r, rd_fb *b, const char *key, size_t hint, mr_err *e)
{
    if (hint < b->ncols && strcmp(b->col[hint]->name, key) == 0) return (int)hint;
    for (size_t i = 0; i < b->ncols; i++)
        if (strcmp(b->col[i]->name, key) == 0) return (int)i;
    if (r->schema_types) return -2;   /* not in the schema: ignored */
    if (rd_fb_add(b, key, -1, 0, e) != MR_OK) return -1;
    b->cells[b->ncols - 1].kind = CELL_NULL;
    return (int)b->ncols - 1;
}

static frame *rd_frame_jsonl(reader *r, rd_fb *b, mr_err *e)
{
    for (size_t k = 0; k < r->nschema; k++)
        if (rd_fb_add(b, r->schema_names[k], r->schema_types ? (int)r->schema_types[k] : -1, 0, e) !=
            MR_OK)
            return NULL;
    char **owned = NULL;
    size_t nowned = 0, owned_cap = 0;
    frame *out = NULL;
    for (;;) {
        reader_rec rec;
        int rc = reader_next(r, &rec, e);
        if (rc < 0) goto done;
        if (rc == 0) break;
        r->nrec--;
        for (size_t i = 0; i < b->ncols; i++) b->cells[i].kind = CELL_NULL;
        size_t pos = 0;
        for (cJSON *it = ((cJSON *)rec.json)->child; it; it = it->next, pos++) {
            int ci = rd_json_col(r, b, it->string ? it->string : "", pos, e);
            if (ci == -1) goto done;
            if (ci < 0) continue;
            rd_cell *c = &b->cells[ci];
            c->kind = CELL_NULL;
            if (cJSON_IsNumber(it)) {
                c->kind = CELL_JNUM;
                c->num = it->valuedouble;
            } else if (cJSON_IsBool(it)) {
                c->kind = CELL_JBOOL;
                c->num = cJSON_IsTrue(it);
            } else if (cJSON_IsString(it)) {
                c->kind = CELL_JSTR;
                c->p = it->valuestring;
                c->n = strlen(it->valuestring);
            } else if (cJSON_IsArray(it) || cJSON_IsObject(it)) {
                char *txt = cJSON_PrintUnformatted(it);
                if (!txt) {
                    mr_fail(e, MR_ENOMEM, "out of memory");
                    goto done;
                }
                if (nowned == owned_cap) {
                    owned_cap = owned_cap ? owned_cap * 2 : 8;
                    char **no = realloc(owned, owned_cap * sizeof *no);
                    if (!no) {
                        free(txt);
                        mr_fail(e, MR_ENOMEM, "out of memory");
                        goto done;
                    }
                    owned = no;
                }
                owned[nowned++] = txt;
                c->kind = CELL_JRAW;
                c->p = txt;
                c->n = strlen(txt);
            }
        }
        rc = rd_fb_row(r, b, e);
        for (size_t i = 0; i < nowned; i++) free(owned[i]);
        nowned = 0;
        if (rc < 0) goto done;
        if (rc == 1) r->nrec++;
        if (rd_frame_full(r, b)) break;
    }
    if (rd_fb_finish(b, e) == MR_OK) {
        out = b->f;
        b->f = NULL;
    }
done:
    for (size_t i = 0; i < nowned; i++) free(owned[i]);
    free(owned);
    return out;
}

/* ---------------------------------------------------------- frame: lines ---- */

static frame *rd_frame_lines(reader *r, rd_fb *b, mr_err *e)
{
    if (rd_fb_add(b, "line", FRAME_STR, 0, e) != MR_OK) return NULL;
    frame_col *c = b->col[0];
    for (;;) {
        reader_rec rec;
        int rc = reader_next(r, &rec, e);
        if (rc < 0) return NULL;
        if (rc == 0) break;
        if (frame_col_push_str(c, rec.raw, rec.raw_len) != MR_OK) {
            mr_fail(e, MR_ENOMEM, "%s: out of memory", r->uri);
            return NULL;
        }
        if (rd_frame_full(r, b)) break;
    }
    frame *f = b->f;
    b->f = NULL;
    return f;
}

static frame *rd_frame(reader *r, mr_err *e)
{
    rd_fb b = {0};
    b.f = frame_create();
    MR_CHECK_NULL(b.f, e, MR_ENOMEM, "out of memory");
    frame *f = NULL;
    switch (r->o.format) {
    case READER_CSV: f = rd_frame_csv(r, &b, e); break;
    case READER_JSONL: f = rd_frame_jsonl(r, &b, e); break;
    default: f = rd_frame_lines(r, &b, e); break;
    }
    rd_fb_free(&b);
    return f;
}

frame *reader_frame(reader *r, mr_err *e)
{
    r->frame_bytes_cap = r->o.max_frame_bytes;
    r->frame_bytes_hit = 0;
    r->frame_check_rows = 4096;
    frame *f = rd_frame(r, e);
    if (f && r->frame_bytes_cap && frame_mem_bytes(f) > r->frame_bytes_cap) r->frame_bytes_hit = 1;
    if (f && r->frame_bytes_hit) {
        mr_fail(e, MR_ELIMIT, "%s: the frame of the input passed %.1f MB at record %llu",
                r->uri, frame_mem_bytes(f) / 1048576.0, (unsigned long long)r->nrec);
        frame_free(f);
        f = NULL;
    }
    r->frame_bytes_cap = 0;
    return f;
}

frame *reader_frame_batch(reader *r, size_t max_rows, size_t max_bytes, mr_err *e)
{
    r->batch_end = r->nrec + (max_rows ? max_rows : 1);
    r->frame_bytes_cap = max_bytes;
    r->frame_check_rows = 4096;
    frame *f = rd_frame(r, e);
    r->batch_end = 0;
    r->frame_bytes_cap = 0;
    return f;
}
