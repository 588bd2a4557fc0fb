/* warc: the WARC reader. See warc.h.
 *
 * Two buffers: `in` holds raw (compressed) bytes, `win` the decoded bytes records are
 * parsed from. For plain files `win` is filled straight from the stream. For gzip, each
 * member is inflated whole into the free end of `win` with libdeflate (one call, no
 * per-byte state); a member that does not fit the input buffer or the window limit is
 * streamed with zlib instead. Parsing keeps positions relative to win_pos, because
 * filling may compact the window; pointers handed out are taken only once a record is
 * complete, and stay valid until the next warc_next. */
#define _GNU_SOURCE
#include "warc.h"

#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lang.h"

#define WARC_IN_CAP ((size_t)4 << 20)      /* raw buffer: members up to this go to libdeflate */
#define WARC_PLAIN_CHUNK ((size_t)1 << 20)
#define WARC_MIN_FREE ((size_t)1 << 20)    /* window space offered to one member at first */
#define WARC_ZCHUNK ((size_t)256 << 10)    /* zlib output per step */
#define WARC_LOOKAHEAD 16                  /* bytes after a block checked for the next record */
#define WARC_RAW_PREFIX 256                /* raw bytes shown with a bad record */

enum { FILL_OK = 1, FILL_END = 0, FILL_ERR = -1, FILL_BROKEN = 2 };

typedef struct warc_mark {
    size_t win_off;      /* where a member's output starts in win */
    uint64_t raw_off;    /* the member's offset in the file */
} warc_mark;

struct warc_reader {
    char *uri;
    stream *src;
    warc_opts o;
    reader_bad_fn on_bad;
    void *bad_ud;
    int gz;                    /* -1 until the first bytes are seen */
    int src_eof;
    uint64_t bytes;            /* raw bytes consumed */

    unsigned char *in;         /* gzip: raw bytes in[in_pos..in_len) */
    size_t in_pos, in_len;
    uint64_t in_base;          /* file offset of in[0] */

    char *win;                 /* decoded bytes; unconsumed: win[win_pos..win_len) */
    size_t win_pos, win_len, win_cap, win_limit;
    uint64_t win_moves;        /* bumped whenever window bytes move (pointers go stale) */
    uint64_t win_base;         /* plain: file offset of win[0] */
    warc_mark *marks;          /* gzip: members whose output is in win, in order */
    size_t nmarks, marks_cap;

    struct libdeflate_decompressor *ld;
    z_stream zs;
    int zs_init, zs_active;
    uint64_t member_off;       /* file offset of the member being decoded */
    int scanning;              /* after a broken member: look for the next gzip magic */

    warc_header *hdrs;
    size_t hdrs_cap;
    size_t consume;            /* window bytes the current record occupies */
    uint64_t skip;             /* bytes of an oversized block still to discard */
    int quiet;                 /* resynchronising: one bad report per bad stretch */
    uint64_t nrec, ngood, nbad;
    char *badbuf;              /* raw prefix copied for a bad report */
    /* A broken gzip member found while peeking past a record is reported once that record
     * is handed out, so bad records keep their place in the numbering. */
    int pending;
    uint64_t pending_off;
    char pending_reason[160];
    size_t pending_raw_len;
};

static const char *const warc_type_names[] = {
    "warcinfo", "request", "response", "metadata", "resource", "revisit", "conversion",
    "continuation", "other",
};

const char *warc_type_name(warc_type t)
{
    return (unsigned)t <= WARC_OTHER ? warc_type_names[t] : "other";
}

static int warc_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static int warc_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn) return 0;
    for (size_t i = 0; i < an; i++)
        if (warc_lower((unsigned char)a[i]) != warc_lower((unsigned char)b[i])) return 0;
    return 1;
}

static int warc_iprefix(const char *s, size_t n, const char *prefix)
{
    size_t pn = strlen(prefix);
    return n >= pn && warc_ieq(s, pn, prefix, pn);
}

warc_type warc_type_parse(const char *s, size_t n)
{
    for (int t = 0; t < WARC_OTHER; t++)
        if (warc_ieq(s, n, warc_type_names[t], strlen(warc_type_names[t]))) return (warc_type)t;
    return WARC_OTHER;
}

void warc_opts_init(warc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_block = (size_t)64 << 20;
    o->max_header = (size_t)1 << 20;
}

/* ---------------------------------------------------------------- bad records */

static mr_code warc_report(warc_reader *r, uint64_t offset, const char *reason,
                           const char *raw, size_t raw_len, mr_err *e)
{
    r->nrec++;
    r->nbad++;
    if (r->quiet || !r->on_bad) {
        r->quiet = 1;
        return MR_OK;
    }
    r->quiet = 1;
    if (raw_len > WARC_RAW_PREFIX) raw_len = WARC_RAW_PREFIX;
    if (raw != r->badbuf) memmove(r->badbuf, raw, raw_len);   /* raw may point into win */
    reader_bad bad = {
        .file = r->uri, .record = r->nrec, .offset = offset, .field = NULL,
        .reason = reason, .raw = r->badbuf, .raw_len = raw_len,
    };
    return r->on_bad(&bad, r->bad_ud, e);
}

static void warc_defer_bad(warc_reader *r, uint64_t offset, const char *reason, const char *raw,
                           size_t raw_len)
{
    if (r->pending) return;
    if (raw_len > WARC_RAW_PREFIX) raw_len = WARC_RAW_PREFIX;
    memcpy(r->badbuf, raw, raw_len);
    r->pending_raw_len = raw_len;
    r->pending_off = offset;
    snprintf(r->pending_reason, sizeof r->pending_reason, "%s", reason);
    r->pending = 1;
}

static int warc_flush_bad(warc_reader *r, mr_err *e)
{
    if (!r->pending) return 0;
    r->pending = 0;
    return warc_report(r, r->pending_off, r->pending_reason, r->badbuf, r->pending_raw_len, e) == MR_OK ? 0 : -1;
}

/* ---------------------------------------------------------------- raw input */

/* Moves the unread raw bytes to the front and reads until the buffer is full or the
 * stream ends. */
static int warc_in_refill(warc_reader *r, mr_err *e)
{
    size_t avail = r->in_len - r->in_pos;
    if (r->in_pos) {
        memmove(r->in, r->in + r->in_pos, avail);
        r->in_base += r->in_pos;
        r->in_pos = 0;
        r->in_len = avail;
    }
    while (!r->src_eof && r->in_len < WARC_IN_CAP) {
        ssize_t got = stream_read(r->src, r->in + r->in_len, WARC_IN_CAP - r->in_len, e);
        if (got < 0) return FILL_ERR;
        if (got == 0) r->src_eof = 1;
        r->in_len += (size_t)got;
    }
    return FILL_OK;
}

/* ---------------------------------------------------------------- the window */

static void warc_win_compact(warc_reader *r)
{
    size_t pos = r->win_pos;
    if (pos == 0) return;
    memmove(r->win, r->win + pos, r->win_len - pos);
    r->win_moves++;
    r->win_len -= pos;
    r->win_pos = 0;
    r->win_base += pos;
    /* Keep the member that covers the new start, and those after it. */
    size_t keep = 0;
    while (keep + 1 < r->nmarks && r->marks[keep + 1].win_off <= pos) keep++;
    if (r->nmarks) {
        memmove(r->marks, r->marks + keep, (r->nmarks - keep) * sizeof *r->marks);
        r->nmarks -= keep;
        for (size_t i = 0; i < r->nmarks; i++)
            r->marks[i].win_off = r->marks[i].win_off > pos ? r->marks[i].win_off - pos : 0;
    }
}

/* Makes at least `free` bytes free at the end of the window. */
static int warc_win_reserve(warc_reader *r, size_t free, mr_err *e)
{
    if (r->win_cap - r->win_len >= free) return FILL_OK;
    warc_win_compact(r);
    if (r->win_cap - r->win_len >= free) return FILL_OK;
    size_t cap = r->win_cap ? r->win_cap : WARC_MIN_FREE;
    while (cap - r->win_len < free) cap *= 2;
    char *w = realloc(r->win, cap);
    if (!w) {
        mr_fail(e, MR_ENOMEM, "%s: out of memory for a %zu-byte WARC window", r->uri, cap);
        return FILL_ERR;
    }
    r->win = w;
    r->win_cap = cap;
    r->win_moves++;
    return FILL_OK;
}

static int warc_mark_push(warc_reader *r, uint64_t raw_off, mr_err *e)
{
    if (r->nmarks == r->marks_cap) {
        size_t cap = r->marks_cap ? r->marks_cap * 2 : 16;
        warc_mark *m = realloc(r->marks, cap * sizeof *m);
        if (!m) {
            mr_fail(e, MR_ENOMEM, "%s: out of memory", r->uri);
            return FILL_ERR;
        }
        r->marks = m;
        r->marks_cap = cap;
    }
    /* With one record per member the window empties between records: reuse the slot. */
    if (r->nmarks && r->marks[r->nmarks - 1].win_off == r->win_len) r->nmarks--;
    r->marks[r->nmarks++] = (warc_mark){r->win_len, raw_off};
    return FILL_OK;
}

/* File offset of the record starting at window position pos. */
static uint64_t warc_offset_at(const warc_reader *r, size_t pos)
{
    if (!r->gz) return r->win_base + pos;
    uint64_t off = r->member_off;
    for (size_t i = 0; i < r->nmarks && r->marks[i].win_off <= pos; i++) off = r->marks[i].raw_off;
    return off;
}

/* ---------------------------------------------------------------- gzip members */

static int warc_gz_magic(const unsigned char *p) { return p[0] == 0x1f && p[1] == 0x8b && p[2] == 8 && !(p[3] & 0xe0); }

/* A member failed to inflate: report it, drop its partial output and scan for the next. */
static int warc_gz_broken(warc_reader *r, const char *why, mr_err *e)
{
    size_t start = r->win_pos;
    if (r->nmarks && r->marks[r->nmarks - 1].win_off > start) start = r->marks[r->nmarks - 1].win_off;
    char reason[160];
    snprintf(reason, sizeof reason, "%s gzip member", why);
    if (r->zs_active && r->zs.msg) snprintf(reason, sizeof reason, "%s gzip member: %s", why, r->zs.msg);
    if (!r->scanning) {
        const char *raw = r->win + start;
        size_t raw_len = r->win_len - start;
        if (raw_len == 0 && r->member_off >= r->in_base) {   /* nothing decoded: show it raw */
            raw = (const char *)r->in + (r->member_off - r->in_base);
            raw_len = r->in_len - (size_t)(r->member_off - r->in_base);
        }
        warc_defer_bad(r, r->member_off, reason, raw, raw_len);
    }
    r->win_len = start;
    if (r->nmarks && r->marks[r->nmarks - 1].win_off >= start) r->nmarks--;
    r->zs_active = 0;
    r->scanning = 1;
    if (r->member_off + 1 > r->in_base && r->member_off + 1 - r->in_base <= r->in_len)
        r->in_pos = (size_t)(r->member_off + 1 - r->in_base);
    (void)e;
    return FILL_BROKEN;
}

/* Streams the current member through zlib until some output or its end. */
static int warc_zs_step(warc_reader *r, mr_err *e)
{
    for (;;) {
        if (r->in_pos == r->in_len && !r->src_eof && warc_in_refill(r, e) < 0) return FILL_ERR;
        if (warc_win_reserve(r, WARC_ZCHUNK, e) < 0) return FILL_ERR;
        size_t avail_in = r->in_len - r->in_pos, avail_out = r->win_cap - r->win_len;
        if (avail_out > 4 * WARC_ZCHUNK) avail_out = 4 * WARC_ZCHUNK;
        r->zs.next_in = r->in + r->in_pos;
        r->zs.avail_in = (uInt)avail_in;
        r->zs.next_out = (Bytef *)r->win + r->win_len;
        r->zs.avail_out = (uInt)avail_out;
        int zrc = inflate(&r->zs, Z_NO_FLUSH);
        size_t used = avail_in - r->zs.avail_in, made = avail_out - r->zs.avail_out;
        r->in_pos += used;
        r->bytes += used;
        r->win_len += made;
        if (zrc == Z_STREAM_END) {
            r->zs_active = 0;
            r->scanning = 0;
            return FILL_OK;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) return warc_gz_broken(r, "corrupt", e);
        if (made) return FILL_OK;
        if (r->in_pos == r->in_len && r->src_eof) return warc_gz_broken(r, "truncated", e);
    }
}

static int warc_zs_start(warc_reader *r, mr_err *e)
{
    if (!r->zs_init) {
        memset(&r->zs, 0, sizeof r->zs);
        if (inflateInit2(&r->zs, 16 + MAX_WBITS) != Z_OK) {
            mr_fail(e, MR_ENOMEM, "%s: cannot initialise zlib", r->uri);
            return FILL_ERR;
        }
        r->zs_init = 1;
    } else {
        inflateReset(&r->zs);
    }
    r->zs_active = 1;
    return warc_zs_step(r, e);
}

/* Skips raw bytes up to the next plausible gzip member header. */
static int warc_gz_scan(warc_reader *r, mr_err *e)
{
    for (;;) {
        size_t avail = r->in_len - r->in_pos;
        const unsigned char *p = r->in + r->in_pos;
        for (size_t i = 0; i + 4 <= avail; i++) {
            if (warc_gz_magic(p + i)) {
                r->in_pos += i;
                r->bytes += i;
                return FILL_OK;
            }
        }
        size_t keep = avail < 3 ? avail : 3;
        r->bytes += avail - keep;
        r->in_pos = r->in_len - keep;
        if (r->src_eof) {
            r->bytes += keep;
            r->in_pos = r->in_len;
            return FILL_END;
        }
        if (warc_in_refill(r, e) < 0) return FILL_ERR;
    }
}

/* Decodes the next member (or the next piece of a streamed one) onto the window. */
static int warc_gz_decode(warc_reader *r, mr_err *e)
{
    if (r->zs_active) return warc_zs_step(r, e);
    if (r->in_len - r->in_pos < WARC_IN_CAP / 2 && !r->src_eof && warc_in_refill(r, e) < 0)
        return FILL_ERR;
    for (;;) {
        if (r->scanning) {
            int rc = warc_gz_scan(r, e);
            if (rc != FILL_OK) return rc;
        }
        size_t avail = r->in_len - r->in_pos;
        if (avail == 0) return FILL_END;
        r->member_off = r->in_base + r->in_pos;
        if (avail < 18 || !warc_gz_magic(r->in + r->in_pos)) {
            /* Trailing zero padding (some writers pad to a block size) is not an error. */
            const unsigned char *p = r->in + r->in_pos;
            size_t z = 0;
            while (z < avail && p[z] == 0) z++;
            if (z == avail && r->src_eof) {
                r->in_pos = r->in_len;
                r->bytes += avail;
                return FILL_END;
            }
            if (!r->scanning) {
                warc_defer_bad(r, r->member_off, "not a gzip member (bad magic)", (const char *)p, avail);
                r->scanning = 1;
                r->in_pos++;
                return FILL_BROKEN;
            }
            r->in_pos++;
            continue;
        }
        break;
    }
    if (warc_mark_push(r, r->member_off, e) < 0) return FILL_ERR;
    size_t free_want = WARC_MIN_FREE;
    for (;;) {
        if (warc_win_reserve(r, free_want, e) < 0) return FILL_ERR;
        size_t in_used = 0, out_used = 0;
        enum libdeflate_result res = libdeflate_gzip_decompress_ex(
            r->ld, r->in + r->in_pos, r->in_len - r->in_pos, r->win + r->win_len,
            r->win_cap - r->win_len, &in_used, &out_used);
        if (res == LIBDEFLATE_SUCCESS) {
            r->in_pos += in_used;
            r->bytes += in_used;
            r->win_len += out_used;
            r->scanning = 0;
            return FILL_OK;
        }
        if (res == LIBDEFLATE_INSUFFICIENT_SPACE && r->win_cap - r->win_len < r->win_limit) {
            free_want = (r->win_cap - r->win_len) * 2;
            continue;
        }
        /* The member may just be cut by the buffer's end: refill once, retry. */
        if (res != LIBDEFLATE_INSUFFICIENT_SPACE && !r->src_eof &&
            (r->in_pos > 0 || r->in_len < WARC_IN_CAP)) {
            if (warc_in_refill(r, e) < 0) return FILL_ERR;
            r->member_off = r->in_base + r->in_pos;
            r->marks[r->nmarks - 1].raw_off = r->member_off;
            continue;
        }
        /* Too big for one call, truncated or corrupt: zlib streams it and tells which. */
        return warc_zs_start(r, e);
    }
}

/* Ensures need bytes are available at win_pos. FILL_END when the input ends first,
 * FILL_BROKEN when a gzip member broke (already reported; more input may follow). */
static int warc_fill(warc_reader *r, size_t need, mr_err *e)
{
    while (r->win_len - r->win_pos < need) {
        if (r->gz) {
            int rc = warc_gz_decode(r, e);
            if (rc != FILL_OK) return rc;
            continue;
        }
        if (r->src_eof) return FILL_END;
        if (warc_win_reserve(r, need > WARC_PLAIN_CHUNK ? need : WARC_PLAIN_CHUNK, e) < 0)
            return FILL_ERR;
        ssize_t got = stream_read(r->src, r->win + r->win_len, r->win_cap - r->win_len, e);
        if (got < 0) return FILL_ERR;
        if (got == 0) r->src_eof = 1;
        r->win_len += (size_t)got;
        r->bytes += (uint64_t)got;
    }
    return FILL_OK;
}

/* Detects gzip from the first bytes, not the name (WET/WAT/.warc/.arc.gz all look alike). */
static int warc_sniff(warc_reader *r, mr_err *e)
{
    if (warc_in_refill(r, e) < 0) return FILL_ERR;
    r->gz = r->in_len >= 2 && r->in[0] == 0x1f && r->in[1] == 0x8b;
    if (r->gz) return FILL_OK;
    /* Plain: hand the bytes read so far to the window. */
    if (warc_win_reserve(r, r->in_len > WARC_PLAIN_CHUNK ? r->in_len : WARC_PLAIN_CHUNK, e) < 0)
        return FILL_ERR;
    memcpy(r->win, r->in, r->in_len);
    r->win_len = r->in_len;
    r->bytes = r->in_len;
    r->in_len = r->in_pos = 0;
    free(r->in);
    r->in = NULL;
    return FILL_OK;
}

/* ---------------------------------------------------------------- open / free */

warc_reader *warc_open_stream(stream *raw, const char *name, const warc_opts *o,
                              reader_bad_fn on_bad, void *ud, mr_err *e)
{
    warc_reader *r = calloc(1, sizeof *r);
    if (!r) {
        stream_close(raw);
        MR_CHECK_NULL(0, e, MR_ENOMEM, "%s: out of memory", name);
    }
    r->src = raw;
    r->uri = strdup(name ? name : stream_name(raw));
    if (o) r->o = *o; else warc_opts_init(&r->o);
    if (!r->o.max_block) r->o.max_block = (size_t)64 << 20;
    if (!r->o.max_header) r->o.max_header = (size_t)1 << 20;
    r->win_limit = r->o.max_block + r->o.max_header + WARC_MIN_FREE;
    r->on_bad = on_bad;
    r->bad_ud = ud;
    r->gz = -1;
    r->in = malloc(WARC_IN_CAP);
    r->badbuf = malloc(WARC_RAW_PREFIX);
    r->hdrs_cap = 32;
    r->hdrs = malloc(r->hdrs_cap * sizeof *r->hdrs);
    r->ld = libdeflate_alloc_decompressor();
    if (!r->uri || !r->in || !r->badbuf || !r->hdrs || !r->ld) {
        warc_free(r);
        MR_CHECK_NULL(0, e, MR_ENOMEM, "%s: out of memory", name);
    }
    if (warc_sniff(r, e) < 0) {
        mr_wrap(e, "%s: ", r->uri);
        warc_free(r);
        return NULL;
    }
    return r;
}

warc_reader *warc_open(const char *uri, const warc_opts *o, reader_bad_fn on_bad, void *ud,
                       mr_err *e)
{
    stream *s = stream_open_raw(uri, 0, e);
    if (!s) return NULL;
    return warc_open_stream(s, uri, o, on_bad, ud, e);
}

void warc_free(warc_reader *r)
{
    if (!r) return;
    stream_close(r->src);
    if (r->zs_init) inflateEnd(&r->zs);
    if (r->ld) libdeflate_free_decompressor(r->ld);
    free(r->uri);
    free(r->in);
    free(r->win);
    free(r->marks);
    free(r->hdrs);
    free(r->badbuf);
    free(r);
}

/* ---------------------------------------------------------------- records */

static int warc_at_record(const char *p, size_t n)
{
    return n >= 6 && memcmp(p, "WARC/", 5) == 0 && p[5] >= '0' && p[5] <= '9';
}

/* Moves win_pos to the next plausible record start after it: a "WARC/<digit>" at a line
 * start or at the start of a gzip member. FILL_END when there is none. */
static int warc_resync(warc_reader *r, mr_err *e)
{
    size_t from = 1;   /* relative to win_pos */
    for (;;) {
        size_t avail = r->win_len - r->win_pos;
        const char *base = r->win + r->win_pos;
        size_t best = (size_t)-1;
        for (size_t i = 0; i < r->nmarks; i++) {
            size_t m = r->marks[i].win_off;
            if (m >= r->win_pos + from && warc_at_record(r->win + m, r->win_len - m)) {
                best = m - r->win_pos;
                break;
            }
        }
        if (from == 0 && best == (size_t)-1 && warc_at_record(base, avail)) best = 0;
        if (from < avail) {
            const char *hit = base + (from ? from - 1 : 0);
            while ((hit = memmem(hit, (size_t)(base + avail - hit), "\nWARC/", 6)) != NULL) {
                size_t at = (size_t)(hit - base) + 1;
                if (at >= best) break;
                if (warc_at_record(hit + 1, avail - at)) { best = at; break; }
                hit++;
            }
        }
        if (best != (size_t)-1) {
            r->win_pos += best;
            return FILL_OK;
        }
        /* Keep a tail that may hold the start of the pattern ("\nWARC/" is 6 bytes). */
        size_t keep = avail < 6 ? avail : 6;
        if (avail > keep) {
            r->win_pos += avail - keep;
            from = 1;
        }
        if (avail == 0) from = 0;
        int rc = warc_fill(r, keep + 1, e);
        if (rc == FILL_END) {
            r->win_pos = r->win_len;
            return FILL_END;
        }
        if (rc == FILL_ERR) return FILL_ERR;
    }
}

/* Discards the tail of an oversized block. */
static int warc_skip_tail(warc_reader *r, mr_err *e)
{
    while (r->skip) {
        size_t avail = r->win_len - r->win_pos;
        if (!avail) {
            int rc = warc_fill(r, 1, e);
            if (rc == FILL_ERR) return FILL_ERR;
            if (rc != FILL_OK) { r->skip = 0; return rc; }
            continue;
        }
        size_t d = avail < r->skip ? avail : (size_t)r->skip;
        r->win_pos += d;
        r->skip -= d;
    }
    return FILL_OK;
}

static const char *warc_find_hdr_end(const char *p, size_t n, size_t *hdr_len)
{
    const char *crlf = memmem(p, n, "\r\n\r\n", 4);
    const char *lf = memmem(p, crlf ? (size_t)(crlf - p) + 2 : n, "\n\n", 2);
    if (lf && (!crlf || lf < crlf)) { *hdr_len = (size_t)(lf - p) + 2; return lf; }
    if (crlf) *hdr_len = (size_t)(crlf - p) + 4;
    return crlf;
}

/* Parses the header section [0, n) of the record at win_pos into r->hdrs. Returns 0, 1
 * with a reason naming the offending line in why, or -1 out of memory. */
static int warc_parse_headers(warc_reader *r, const char *p, size_t n, size_t *nhdrs,
                              char *why, size_t why_cap, mr_err *e)
{
    const char *end = p + n, *line = memchr(p, '\n', n);
    size_t count = 0, lineno = 1;
    line = line ? line + 1 : end;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        const char *stop = eol > line && eol[-1] == '\r' ? eol - 1 : eol;
        lineno++;
        if (stop == line) break;   /* the blank line */
        if ((*line == ' ' || *line == '\t') && count) {   /* folded continuation */
            warc_header *h = &r->hdrs[count - 1];
            h->value_len = (size_t)(stop - h->value);
        } else {
            const char *colon = memchr(line, ':', (size_t)(stop - line));
            if (!colon || colon == line) {
                snprintf(why, why_cap, "malformed WARC header line %zu (no 'Name: value'): %.*s",
                         lineno, (int)((stop - line) > 80 ? 80 : (stop - line)), line);
                return 1;
            }
            for (const char *c = line; c < colon; c++) {
                if (*c <= ' ' || *c >= 127) {
                    snprintf(why, why_cap, "malformed WARC header line %zu (bad field name): %.*s",
                             lineno, (int)((stop - line) > 80 ? 80 : (stop - line)), line);
                    return 1;
                }
            }
            if (count == r->hdrs_cap) {
                warc_header *h = realloc(r->hdrs, 2 * r->hdrs_cap * sizeof *h);
                if (!h) { mr_fail(e, MR_ENOMEM, "%s: out of memory", r->uri); return -1; }
                r->hdrs = h;
                r->hdrs_cap *= 2;
            }
            const char *v = colon + 1;
            while (v < stop && (*v == ' ' || *v == '\t')) v++;
            const char *ve = stop;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            r->hdrs[count++] = (warc_header){line, v, (size_t)(colon - line), (size_t)(ve - v)};
        }
        line = eol + 1;
    }
    *nhdrs = count;
    return 0;
}

static const char *warc_lookup(const warc_header *h, size_t n, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (warc_ieq(h[i].name, h[i].name_len, name, nl)) {
            if (len) *len = h[i].value_len;
            return h[i].value;
        }
    }
    return NULL;
}

static int warc_parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Splits an HTTP block into status, headers and payload. */
static void warc_parse_http(warc_record *rec)
{
    const char *b = rec->block;
    size_t n = rec->block_len, hlen = 0;
    rec->payload = b;
    rec->payload_len = n;
    rec->payload_length = rec->content_length;
    if (!warc_find_hdr_end(b, n, &hlen)) {
        /* No blank line: the block is headers only (a revisit, or cut short). */
        rec->http_headers = b;
        rec->http_headers_len = n;
        rec->payload = b + n;
        rec->payload_len = 0;
        rec->payload_length = 0;
    } else {
        rec->http_headers = b;
        rec->http_headers_len = hlen;
        rec->payload = b + hlen;
        rec->payload_len = n - hlen;
        rec->payload_length = rec->content_length - hlen;
    }
    if (n > 9 && memcmp(b, "HTTP/", 5) == 0) {
        const char *sp = memchr(b, ' ', n < 16 ? n : 16);
        if (sp && sp + 4 <= b + n && sp[1] >= '0' && sp[1] <= '9' && sp[2] >= '0' &&
            sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9')
            rec->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
    }
}

static int warc_bad_here(warc_reader *r, const char *reason, size_t show, mr_err *e)
{
    size_t avail = r->win_len - r->win_pos;
    if (warc_report(r, warc_offset_at(r, r->win_pos), reason, r->win + r->win_pos,
                    show < avail ? show : avail, e) != MR_OK)
        return FILL_ERR;
    return FILL_OK;
}

int warc_next(warc_reader *r, warc_record *rec, mr_err *e)
{
    char why[256];
    r->win_pos += r->consume;
    r->consume = 0;
    if (r->skip && warc_skip_tail(r, e) == FILL_ERR) return -1;
    if (r->o.max_records && r->ngood >= r->o.max_records) return 0;
    for (;;) {
        if (warc_flush_bad(r, e) < 0) return -1;
        /* Blank lines between records (the spec's CRLF CRLF, or sloppier) */
        for (;;) {
            int rc = warc_fill(r, 1, e);
            if (rc == FILL_ERR) return -1;
            if (rc == FILL_END) return warc_flush_bad(r, e);
            if (rc == FILL_BROKEN) { if (warc_flush_bad(r, e) < 0) return -1; continue; }
            char c = r->win[r->win_pos];
            if (c != '\r' && c != '\n') break;
            r->win_pos++;
        }
        int rc = warc_fill(r, 6, e);
        if (rc == FILL_ERR) return -1;
        if (rc == FILL_BROKEN) continue;
        if (rc == FILL_END || !warc_at_record(r->win + r->win_pos, r->win_len - r->win_pos)) {
            if (warc_bad_here(r, rc == FILL_END ? "trailing bytes after the last record"
                                                : "expected a WARC/1.x version line",
                              WARC_RAW_PREFIX, e) < 0)
                return -1;
            if (rc == FILL_END) { r->win_pos = r->win_len; return warc_flush_bad(r, e); }
            rc = warc_resync(r, e);
            if (rc == FILL_ERR) return -1;
            if (rc == FILL_END) return warc_flush_bad(r, e);
            continue;
        }
        /* The header section, read until its blank line. */
        size_t hdr_len = 0, scanned = 0;
        for (;;) {
            size_t avail = r->win_len - r->win_pos;
            size_t from = scanned > 3 ? scanned - 3 : 0;
            if (warc_find_hdr_end(r->win + r->win_pos + from, avail - from, &hdr_len)) {
                hdr_len += from;
                break;
            }
            scanned = avail;
            hdr_len = 0;
            if (avail > r->o.max_header) break;
            rc = warc_fill(r, avail + 1, e);
            if (rc != FILL_OK) break;
        }
        if (rc == FILL_ERR) return -1;
        if (rc == FILL_BROKEN) continue;
        if (!hdr_len) {
            int end = rc == FILL_END;
            if (warc_bad_here(r, end ? "truncated WARC header (input ends before the blank line)"
                                     : "WARC header section longer than the limit",
                              WARC_RAW_PREFIX, e) < 0)
                return -1;
            if (end) { r->win_pos = r->win_len; return warc_flush_bad(r, e); }
            if ((rc = warc_resync(r, e)) == FILL_ERR) return -1;
            if (rc == FILL_END) return warc_flush_bad(r, e);
            continue;
        }
        size_t nhdrs = 0;
        int prc = warc_parse_headers(r, r->win + r->win_pos, hdr_len, &nhdrs, why, sizeof why, e);
        if (prc < 0) return -1;
        const char *bad = prc ? why : NULL;
        uint64_t clen = 0;
        const char *v;
        size_t vlen;
        if (!bad) {
            v = warc_lookup(r->hdrs, nhdrs, "Content-Length", &vlen);
            if (!v) bad = "missing Content-Length";
            else if (warc_parse_u64(v, vlen, &clen) < 0) {
                snprintf(why, sizeof why, "bad Content-Length '%.*s'", (int)(vlen > 40 ? 40 : vlen), v);
                bad = why;
            }
        }
        if (!bad && !warc_lookup(r->hdrs, nhdrs, "WARC-Type", NULL)) bad = "missing WARC-Type";
        /* The block, and a peek past it: the next record must start right there. */
        int truncated = clen > r->o.max_block;
        size_t keep = truncated ? r->o.max_block : (size_t)clen;
        if (!bad) {
            uint64_t moves = r->win_moves;
            rc = warc_fill(r, hdr_len + keep + (truncated ? 0 : WARC_LOOKAHEAD), e);
            if (rc == FILL_ERR) return -1;
            if (moves != r->win_moves &&
                warc_parse_headers(r, r->win + r->win_pos, hdr_len, &nhdrs, why, sizeof why, e) < 0)
                return -1;
            if (rc == FILL_BROKEN && r->win_len - r->win_pos < hdr_len + keep) continue;
            size_t avail = r->win_len - r->win_pos;
            if (avail < hdr_len + keep) {
                snprintf(why, sizeof why,
                         "Content-Length %llu runs past the end of the input (%zu bytes left)",
                         (unsigned long long)clen, avail - hdr_len);
                bad = why;
            } else if (!truncated) {
                const char *after = r->win + r->win_pos + hdr_len + keep;
                size_t left = avail - hdr_len - keep, k = 0;
                while (k < left && (after[k] == '\r' || after[k] == '\n')) k++;
                /* Right after the block: the CRLF CRLF trailer (then anything: garbage there
                 * is the next record's problem) or line ends and the next record. */
                int trailer = left >= 4 && memcmp(after, "\r\n\r\n", 4) == 0;
                if (!trailer && k < left && !(k > 0 && warc_at_record(after + k, left - k)) &&
                    !(left - k < 6 && memcmp(after + k, "WARC/", left - k) == 0 && k > 0)) {
                    snprintf(why, sizeof why,
                             "Content-Length %llu does not end at a record boundary",
                             (unsigned long long)clen);
                    bad = why;
                }
            }
        }
        if (bad) {
            if (warc_bad_here(r, bad, hdr_len, e) < 0) return -1;
            if ((rc = warc_resync(r, e)) == FILL_ERR) return -1;
            if (rc == FILL_END) return warc_flush_bad(r, e);
            continue;
        }

        const char *p = r->win + r->win_pos;
        memset(rec, 0, sizeof *rec);
        r->nrec++;
        r->ngood++;
        r->quiet = 0;
        rec->number = r->nrec;
        rec->offset = warc_offset_at(r, r->win_pos);
        const char *eol = memchr(p, '\n', hdr_len);
        rec->version = p;
        rec->version_len = (size_t)(eol - p) - (eol > p && eol[-1] == '\r');
        rec->headers = r->hdrs;
        rec->nheaders = nhdrs;
        rec->type_name = warc_lookup(r->hdrs, nhdrs, "WARC-Type", &rec->type_name_len);
        rec->type = warc_type_parse(rec->type_name, rec->type_name_len);
        rec->content_length = clen;
        rec->block = p + hdr_len;
        rec->block_len = keep;
        rec->block_truncated = truncated;
        rec->payload = rec->block;
        rec->payload_len = keep;
        rec->payload_length = clen;
        v = warc_lookup(r->hdrs, nhdrs, "Content-Type", &vlen);
        if ((v && warc_iprefix(v, vlen, "application/http")) ||
            (keep >= 5 && memcmp(rec->block, "HTTP/", 5) == 0)) {
            rec->is_http = 1;
            warc_parse_http(rec);
        }
        r->consume = hdr_len + keep;
        if (truncated) r->skip = clen - keep;
        return 1;
    }
}

/* ---------------------------------------------------------------- accessors */

const char *warc_record_header(const warc_record *rec, const char *name, size_t *len)
{
    return warc_lookup(rec->headers, rec->nheaders, name, len);
}

const char *warc_record_http_header(const warc_record *rec, const char *name, size_t *len)
{
    if (!rec->is_http) return NULL;
    const char *p = rec->http_headers, *end = p + rec->http_headers_len;
    size_t nl = strlen(name);
    const char *line = memchr(p, '\n', rec->http_headers_len);
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && warc_ieq(line, nl, name, nl)) {
            const char *v = line + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            if (len) *len = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

const char *warc_record_uri(const warc_record *rec, size_t *len)
{
    size_t n;
    const char *v = warc_record_header(rec, "WARC-Target-URI", &n);
    if (!v) return NULL;
    if (n >= 2 && v[0] == '<' && v[n - 1] == '>') { v++; n -= 2; }
    *len = n;
    return v;
}

static size_t warc_media_type(const char *v, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    while (n && (*v == ' ' || *v == '\t')) { v++; n--; }
    while (k < n && v[k] != ';' && v[k] != ' ' && v[k] != '\t' && k + 1 < cap) {
        out[k] = (char)warc_lower((unsigned char)v[k]);
        k++;
    }
    if (cap) out[k] = '\0';
    return k;
}

size_t warc_record_mime(const warc_record *rec, char *out, size_t cap)
{
    size_t n = 0, k = 0;
    const char *v = NULL;
    if (rec->is_http) v = warc_record_http_header(rec, "Content-Type", &n);
    if (v) k = warc_media_type(v, n, out, cap);
    if (!k && (v = warc_record_header(rec, "WARC-Identified-Payload-Type", &n)))
        k = warc_media_type(v, n, out, cap);
    if (!k && !rec->is_http && (v = warc_record_header(rec, "Content-Type", &n)))
        k = warc_media_type(v, n, out, cap);
    if (!k && cap) out[0] = '\0';
    return k;
}

/* HTML is searched only when the payload claims to be markup, or says nothing and looks
 * like it: scanning images for lang= would waste time and find noise. */
static int warc_looks_markup(const warc_record *rec, const char *mime, size_t mime_len)
{
    if (mime_len) return strstr(mime, "html") || strstr(mime, "xml");
    const char *p = rec->payload;
    size_t n = rec->payload_len, i = 0;
    if (n >= 3 && (unsigned char)p[0] == 0xef && (unsigned char)p[1] == 0xbb && (unsigned char)p[2] == 0xbf) i = 3;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
    return i < n && p[i] == '<';
}

size_t warc_record_language(const warc_record *rec, char *out)
{
    lang_input in = {0};
    char mime[128];
    size_t mime_len = warc_record_mime(rec, mime, sizeof mime);
    in.warc_lang = warc_record_header(rec, "WARC-Identified-Content-Language", &in.warc_lang_len);
    in.http_lang = warc_record_http_header(rec, "Content-Language", &in.http_lang_len);
    if ((rec->type == WARC_RESPONSE || rec->type == WARC_RESOURCE ||
         rec->type == WARC_CONVERSION) && warc_looks_markup(rec, mime, mime_len)) {
        in.html = rec->payload;
        in.html_len = rec->payload_len;
    }
    return lang_detect(&in, out);
}

/* ---------------------------------------------------------------- frames */

static const char *const warc_col_names[WARC_NCOLS] = {
    "type", "uri", "date", "record_id", "status", "mime", "language", "content_length",
    "payload_length", "offset",
};

const char *warc_col_name(warc_col c)
{
    return (unsigned)c < WARC_NCOLS ? warc_col_names[c] : "?";
}

int warc_col_parse(const char *name, warc_col *out)
{
    for (int i = 0; i < WARC_NCOLS; i++) {
        if (strcmp(name, warc_col_names[i]) == 0) { *out = (warc_col)i; return 0; }
    }
    return -1;
}

static frame_type warc_col_type(warc_col c)
{
    switch (c) {
    case WARC_COL_STATUS: case WARC_COL_CONTENT_LENGTH: case WARC_COL_PAYLOAD_LENGTH:
    case WARC_COL_OFFSET:
        return FRAME_I64;
    default:
        return FRAME_STR;
    }
}

static mr_code warc_push_opt_str(frame_col *c, const char *s, size_t n)
{
    return s ? frame_col_push_str(c, s, n) : frame_col_push_null(c);
}

static mr_code warc_push_cell(frame_col *c, warc_col which, const warc_record *rec)
{
    const char *s;
    size_t n = 0;
    char buf[128];
    switch (which) {
    case WARC_COL_TYPE:
        return frame_col_push_str(c, warc_type_name(rec->type), strlen(warc_type_name(rec->type)));
    case WARC_COL_URI:
        s = warc_record_uri(rec, &n);
        return warc_push_opt_str(c, s, n);
    case WARC_COL_DATE:
        s = warc_record_header(rec, "WARC-Date", &n);
        return warc_push_opt_str(c, s, n);
    case WARC_COL_RECORD_ID:
        s = warc_record_header(rec, "WARC-Record-ID", &n);
        return warc_push_opt_str(c, s, n);
    case WARC_COL_STATUS:
        return rec->status ? frame_col_push_i64(c, rec->status) : frame_col_push_null(c);
    case WARC_COL_MIME:
        n = warc_record_mime(rec, buf, sizeof buf);
        return n ? frame_col_push_str(c, buf, n) : frame_col_push_null(c);
    case WARC_COL_LANGUAGE:
        n = warc_record_language(rec, buf);
        return frame_col_push_str(c, buf, n);
    case WARC_COL_CONTENT_LENGTH:
        return frame_col_push_i64(c, (int64_t)rec->content_length);
    case WARC_COL_PAYLOAD_LENGTH:
        return frame_col_push_i64(c, (int64_t)rec->payload_length);
    case WARC_COL_OFFSET:
        return frame_col_push_i64(c, (int64_t)rec->offset);
    default:
        return MR_EINVAL;
    }
}

frame *warc_frame(warc_reader *r, const warc_col *cols, size_t ncols, unsigned type_mask,
                  mr_err *e)
{
    warc_col all[WARC_NCOLS];
    if (ncols == 0) {
        for (int i = 0; i < WARC_NCOLS; i++) all[i] = (warc_col)i;
        cols = all;
        ncols = WARC_NCOLS;
    }
    frame_col *fc[WARC_NCOLS];
    MR_CHECK_NULL(ncols <= WARC_NCOLS, e, MR_EINVAL, "%s: too many WARC columns", r->uri);
    frame *f = frame_create();
    MR_CHECK_NULL(f, e, MR_ENOMEM, "%s: out of memory", r->uri);
    for (size_t i = 0; i < ncols; i++) {
        fc[i] = frame_add_col(f, warc_col_name(cols[i]), warc_col_type(cols[i]), e);
        if (!fc[i]) { frame_free(f); return NULL; }
    }
    warc_record rec;
    int rc;
    while ((rc = warc_next(r, &rec, e)) == 1) {
        if (type_mask && !(type_mask & (1u << rec.type))) continue;
        for (size_t i = 0; i < ncols; i++) {
            if (warc_push_cell(fc[i], cols[i], &rec) != MR_OK) {
                mr_fail(e, MR_ENOMEM, "%s: out of memory building the WARC frame", r->uri);
                frame_free(f);
                return NULL;
            }
        }
    }
    if (rc < 0) { frame_free(f); return NULL; }
    return f;
}

uint64_t warc_records(const warc_reader *r) { return r->ngood; }
uint64_t warc_bad_count(const warc_reader *r) { return r->nbad; }
uint64_t warc_bytes(const warc_reader *r)
{
    return r->gz == 1 ? r->in_base + r->in_pos : r->bytes;
}
const char *warc_uri(const warc_reader *r) { return r->uri; }
int warc_is_gzip(const warc_reader *r) { return r->gz; }
