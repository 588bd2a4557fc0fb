/* imf: writer, reader and verifier of the intermediate file format.
 * Layout (docs/intermediate-format.md has the byte-level description):
 *
 *   header   "LUAMRIMF" u32 version u32 flags
 *   schema   u32 ncols u32 len entries[len] u32 crc
 *   groups   { group header (24 bytes), per column: blocks (24-byte header + payload) }*
 *   footer   "IMFF" u32 ngroups u32 nparts u32 0, entries[ngroups] (32 bytes), u32 crc
 *   trailer  u64 footer_offset u64 footer_len u32 crc "IMFE"
 *
 * Every byte after the fixed header is under some CRC, and the fixed header is compared
 * field by field, so a flipped byte anywhere is reported instead of read. */
#include "imf.h"

#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "imf writes host-order integers and assumes a little-endian host"
#endif

#define IMF_MAGIC "LUAMRIMF"
#define HDR_SIZE 16
#define SCHEMA_FIXED 8     /* ncols + len */
#define BLOCK_HDR 24
#define GROUP_HDR 24
#define FOOTER_FIXED 16
#define FOOTER_ENTRY 32
#define TRAILER_SIZE 24
#define GROUP_MAGIC 0x50524752u   /* "RGRP" */
#define FOOTER_MAGIC 0x46464d49u  /* "IMFF" */
#define TRAILER_MAGIC 0x45464d49u /* "IMFE" */
#define MAX_COLS 65535

/* Block kinds: the reader knows which kinds must follow each other for a column type. */
enum { BK_NULLS = 1, BK_VALUES, BK_STR_LENS, BK_STR_BYTES, BK_DICT_LENS, BK_DICT_BYTES,
       BK_DICT_INDEX, BK_PLANE };
enum { CODEC_STORED = 0, CODEC_DEFLATE = 1 };
enum { FILTER_NONE = 0, FILTER_SHUFFLE = 1 };

/* Below this a block is stored raw: deflate's fixed cost outweighs any gain. */
#define MIN_COMPRESS 128
/* Large blocks first compress a sample and are compressed in full only when the sample
 * shrinks enough. Level 1 (the default) asks for a halving: deflate runs at ~200 MB/s, so
 * compressing a byte plane that only loses 40% would double the cost of writing a float
 * column. Higher levels accept smaller gains. */
#define SAMPLE_FROM ((size_t)256 << 10)
#define SAMPLE_SIZE ((size_t)64 << 10)
/* From this many rows on, 8-byte values are stored as 8 byte-plane blocks, each compressed
 * or stored on its own: the sign/exponent planes of doubles compress, the low mantissa
 * planes do not, and storing those raw is what keeps a float column cheap to write. */
#define PLANE_MIN_ROWS 4096
/* Frames smaller than this (or than the group size) are collected per partition and
 * written as one group: a shuffle that adds a few rows per reducer per batch would otherwise
 * produce groups whose headers outweigh their data. PENDING_MAX bounds what is held. */
#define COALESCE_ROWS ((size_t)1 << 16)
#define PENDING_MAX ((size_t)64 << 20)
/* Dictionary encoding of strings is abandoned past this many distinct values. */
#define DICT_MAX 65536
/* DEFLATE expands at most 1032 times (a 258-byte match in 2 bits): a block claiming more
 * raw bytes than that is damaged, and refusing it bounds every allocation a row count
 * drives to about 1032 times the file's size. */
#define INFLATE_MAX_RATIO 1032u

static const char *block_name(int kind)
{
    switch (kind) {
    case BK_NULLS: return "nulls";
    case BK_VALUES: return "values";
    case BK_STR_LENS: return "string lengths";
    case BK_STR_BYTES: return "string bytes";
    case BK_DICT_LENS: return "dictionary lengths";
    case BK_DICT_BYTES: return "dictionary bytes";
    case BK_DICT_INDEX: return "dictionary index";
    case BK_PLANE: return "byte plane";
    default: return "unknown";
    }
}

/* ---- little helpers ---- */

typedef struct ibuf {
    uint8_t *p;
    size_t cap;
} ibuf;

static mr_code ibuf_ensure(ibuf *b, size_t n)
{
    if (n <= b->cap) return MR_OK;
    size_t ncap = b->cap ? b->cap * 2 : 4096;
    if (ncap < n) ncap = n;
    /* the column-buffer allocator: a group's buffers are megabytes, and the next file a
     * reducer reads reuses the pages of the last one instead of faulting in fresh ones */
    uint8_t *p = frame_buf_realloc(b->p, b->cap, ncap);
    if (!p) return MR_ENOMEM;
    b->p = p;
    b->cap = ncap;
    return MR_OK;
}

static void ibuf_free(ibuf *b)
{
    frame_buf_free(b->p, b->cap);
    b->p = NULL;
    b->cap = 0;
}

static void put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static uint64_t get_uw(const uint8_t *p, int width, size_t i)
{
    switch (width) {
    case 1: return p[i];
    case 2: return get_u16(p + 2 * i);
    case 4: return get_u32(p + 4 * i);
    default: return get_u64(p + 8 * i);
    }
}

static void put_uw(uint8_t *p, int width, size_t i, uint64_t v)
{
    switch (width) {
    case 1: p[i] = (uint8_t)v; break;
    case 2: put_u16(p + 2 * i, (uint16_t)v); break;
    case 4: put_u32(p + 4 * i, (uint32_t)v); break;
    default: put_u64(p + 8 * i, v); break;
    }
}

static int width_for(uint64_t max)
{
    if (max <= 0xff) return 1;
    if (max <= 0xffff) return 2;
    if (max <= 0xffffffffu) return 4;
    return 8;
}

static uint32_t crc32_of(uint32_t crc, const void *p, size_t n)
{
    return n ? libdeflate_crc32(crc, p, n) : crc;
}

/* Byte-plane transpose of 8-byte values: the sign/exponent bytes of doubles and the high
 * bytes of integers end up in long, highly repetitive runs deflate handles well. */
static void shuffle8(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) dst[(size_t)b * n + i] = src[i * 8 + b];
}

static void unshuffle8(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) dst[i * 8 + b] = src[(size_t)b * n + i];
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)(uint8_t)p[i] << (8 * i);
    h = (h ^ v) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    return h;
}

/* ================================ writer ================================ */

typedef struct group_ent {
    uint64_t offset, length, nrows;
    uint32_t partition;
} group_ent;

struct imf_writer {
    char *path, *tmp_path;
    FILE *fp;
    int level;
    struct libdeflate_compressor *comp;
    size_t group_rows;
    int nparts_fixed;          /* 0 = derive from the partitions added */
    int max_part;
    int failed, closed;
    frame *schema;             /* NULL until the first add */
    int *colmap;               /* schema column -> column of the frame being added */
    frame **pending;           /* per partition: small frames collected, schema order */
    size_t *pending_mem;
    size_t npending, pending_bytes;
    size_t pending_max;        /* pending_bytes past this flush every partition */
    uint64_t off, raw_bytes;
    group_ent *groups;
    size_t ngroups, groups_cap;
    ibuf enc, dict_bytes, shuf, comp_out;
    /* dictionary scratch, reused across groups */
    uint32_t *slots;           /* dict id + 1, 0 = empty */
    size_t nslots;
    int64_t *dict_off;         /* source arena offset of each dictionary entry */
    uint32_t *dict_len;
    uint64_t *dict_hash;
};

static mr_code wfail_io(imf_writer *w, mr_err *e, const char *what)
{
    w->failed = 1;
    return mr_fail(e, MR_EIO, "imf %s: %s: %s", w->path, what, strerror(errno));
}

static mr_code wwrite(imf_writer *w, const void *p, size_t n, mr_err *e)
{
    if (n && fwrite(p, 1, n, w->fp) != n) return wfail_io(w, e, "write failed");
    w->off += n;
    return MR_OK;
}

imf_writer *imf_writer_open(const char *local_path, int level, mr_err *e)
{
    MR_CHECK_NULL(local_path && *local_path, e, MR_EINVAL, "imf: empty output path");
    if (level < 0) level = 1;
    MR_CHECK_NULL(level <= 12, e, MR_EINVAL,
                  "imf %s: compression level %d out of range 0..12", local_path, level);
    imf_writer *w = calloc(1, sizeof *w);
    MR_CHECK_NULL(w, e, MR_ENOMEM, "imf %s: out of memory", local_path);
    w->level = level;
    w->group_rows = IMF_GROUP_ROWS;
    w->pending_max = PENDING_MAX;
    w->max_part = -1;
    w->path = strdup(local_path);
    size_t n = strlen(local_path) + 16;
    w->tmp_path = malloc(n);
    if (!w->path || !w->tmp_path) goto nomem;
    snprintf(w->tmp_path, n, "%s.tmp.XXXXXX", local_path);
    int fd = mkstemp(w->tmp_path);
    if (fd < 0) {
        mr_fail(e, MR_EIO, "imf %s: cannot create temporary %s: %s", local_path, w->tmp_path,
                strerror(errno));
        w->tmp_path[0] = '\0';
        imf_writer_free(w);
        return NULL;
    }
    w->fp = fdopen(fd, "wb");
    if (!w->fp) {
        close(fd);
        goto nomem;
    }
    setvbuf(w->fp, NULL, _IOFBF, 1 << 20);
    if (level > 0 && !(w->comp = libdeflate_alloc_compressor(level))) goto nomem;
    return w;
nomem:
    mr_fail(e, MR_ENOMEM, "imf %s: out of memory", local_path);
    imf_writer_free(w);
    return NULL;
}

mr_code imf_writer_set_group_rows(imf_writer *w, size_t rows, mr_err *e)
{
    MR_CHECK(rows >= 1, e, MR_EINVAL, "imf %s: group rows must be >= 1", w->path);
    w->group_rows = rows;
    return MR_OK;
}

void imf_writer_set_pending_max(imf_writer *w, size_t bytes)
{
    w->pending_max = bytes;
}

mr_code imf_writer_set_nparts(imf_writer *w, int nparts, mr_err *e)
{
    MR_CHECK(nparts >= 1 && nparts <= IMF_MAX_PARTS, e, MR_EINVAL,
             "imf %s: partition count %d out of range 1..%d", w->path, nparts, IMF_MAX_PARTS);
    MR_CHECK(w->max_part < nparts, e, MR_EINVAL,
             "imf %s: partition count %d but partition %d was already written", w->path,
             nparts, w->max_part);
    w->nparts_fixed = nparts;
    return MR_OK;
}

uint64_t imf_writer_bytes(const imf_writer *w) { return w ? w->off : 0; }
uint64_t imf_writer_raw_bytes(const imf_writer *w) { return w ? w->raw_bytes : 0; }

static mr_code write_header(imf_writer *w, mr_err *e)
{
    uint8_t hdr[HDR_SIZE];
    memcpy(hdr, IMF_MAGIC, 8);
    put_u32(hdr + 8, IMF_VERSION);
    put_u32(hdr + 12, 0);
    MR_TRY(wwrite(w, hdr, sizeof hdr, e));

    size_t ncols = frame_ncols(w->schema), len = 0;
    for (size_t j = 0; j < ncols; j++) len += 4 + strlen(frame_col_at(w->schema, j)->name);
    MR_CHECK(ibuf_ensure(&w->enc, SCHEMA_FIXED + len + 4) == MR_OK, e, MR_ENOMEM,
             "imf %s: out of memory", w->path);
    uint8_t *p = w->enc.p;
    put_u32(p, (uint32_t)ncols);
    put_u32(p + 4, (uint32_t)len);
    size_t pos = SCHEMA_FIXED;
    for (size_t j = 0; j < ncols; j++) {
        const frame_col *c = frame_col_at(w->schema, j);
        size_t nl = strlen(c->name);
        p[pos] = (uint8_t)c->type;
        p[pos + 1] = 0;
        put_u16(p + pos + 2, (uint16_t)nl);
        memcpy(p + pos + 4, c->name, nl);
        pos += 4 + nl;
    }
    put_u32(p + pos, crc32_of(0, p, pos));
    return wwrite(w, p, pos + 4, e);
}

/* The first frame's columns become the schema; later frames are matched by name. */
static mr_code bind_schema(imf_writer *w, const frame *f, mr_err *e)
{
    size_t ncols = frame_ncols(f);
    if (!w->schema) {
        MR_CHECK(ncols <= MAX_COLS, e, MR_EINVAL, "imf %s: %zu columns (max %d)", w->path,
                 ncols, MAX_COLS);
        for (size_t j = 0; j < ncols; j++)
            MR_CHECK(strlen(frame_col_at(f, j)->name) <= 0xffff, e, MR_EINVAL,
                     "imf %s: column %zu: name longer than 65535 bytes", w->path, j);
        w->schema = frame_empty_like(f, e);
        if (!w->schema) return e ? e->code : MR_ENOMEM;
        w->colmap = calloc(ncols ? ncols : 1, sizeof *w->colmap);
        MR_CHECK(w->colmap, e, MR_ENOMEM, "imf %s: out of memory", w->path);
        MR_TRY(write_header(w, e));
    }
    size_t sn = frame_ncols(w->schema);
    for (size_t j = 0; j < sn; j++) {
        const frame_col *s = frame_col_at(w->schema, j);
        int k = frame_col_index(f, s->name);
        MR_CHECK(k >= 0, e, MR_EINVAL, "imf %s: frame lacks column '%s' of the file's schema",
                 w->path, s->name);
        const frame_col *c = frame_col_at(f, (size_t)k);
        MR_CHECK(c->type == s->type, e, MR_EINVAL,
                 "imf %s: column '%s' is %s but the file's schema says %s", w->path, s->name,
                 frame_type_name(c->type), frame_type_name(s->type));
        w->colmap[j] = k;
    }
    if (ncols != sn) {
        for (size_t j = 0; j < ncols; j++)
            MR_CHECK(frame_col_index(w->schema, frame_col_at(f, j)->name) >= 0, e, MR_EINVAL,
                     "imf %s: column '%s' is not in the file's schema", w->path,
                     frame_col_at(f, j)->name);
    }
    return MR_OK;
}

/* Compresses (or stores) one block and writes header + payload. */
static mr_code write_block(imf_writer *w, int kind, int width, int filter, const uint8_t *data,
                           size_t raw_len, mr_err *e)
{
    if (filter == FILTER_SHUFFLE) {
        MR_CHECK(ibuf_ensure(&w->shuf, raw_len) == MR_OK, e, MR_ENOMEM,
                 "imf %s: out of memory", w->path);
        shuffle8(w->shuf.p, data, raw_len / 8);
        data = w->shuf.p;
    }
    int codec = CODEC_STORED;
    const uint8_t *payload = data;
    size_t stored = raw_len;
    if (w->comp && raw_len >= MIN_COMPRESS) {
        size_t avail = raw_len - raw_len / 32;   /* must save at least ~3% to be worth it */
        MR_CHECK(ibuf_ensure(&w->comp_out, avail) == MR_OK, e, MR_ENOMEM,
                 "imf %s: out of memory", w->path);
        int worth = 1;
        if (raw_len >= SAMPLE_FROM) {
            size_t keep = w->level == 1   ? SAMPLE_SIZE / 2
                          : w->level <= 3 ? SAMPLE_SIZE - SAMPLE_SIZE / 4
                                          : SAMPLE_SIZE - SAMPLE_SIZE / 32;
            worth = libdeflate_deflate_compress(w->comp, data, SAMPLE_SIZE, w->comp_out.p,
                                                keep) != 0;
        }
        size_t got = worth ? libdeflate_deflate_compress(w->comp, data, raw_len, w->comp_out.p,
                                                         avail)
                           : 0;
        if (got) {
            codec = CODEC_DEFLATE;
            payload = w->comp_out.p;
            stored = got;
        }
    }
#ifdef IMF_TRACE
    fprintf(stderr, "block %-18s raw %10zu stored %10zu\n", block_name(kind), raw_len, stored);
#endif
    uint8_t hdr[BLOCK_HDR];
    hdr[0] = (uint8_t)kind;
    hdr[1] = (uint8_t)codec;
    hdr[2] = (uint8_t)filter;
    hdr[3] = (uint8_t)width;
    put_u64(hdr + 4, raw_len);
    put_u64(hdr + 12, stored);
    put_u32(hdr + 20, crc32_of(crc32_of(0, hdr, 20), payload, stored));
    MR_TRY(wwrite(w, hdr, sizeof hdr, e));
    return wwrite(w, payload, stored, e);
}

static mr_code write_nulls(imf_writer *w, const frame_col *c, size_t s, size_t n, mr_err *e)
{
    int any = 0;
    if (c->nulls)
        for (size_t i = 0; i < n && !any; i++) any = c->nulls[s + i] != 0;
    if (!any) return write_block(w, BK_NULLS, 0, FILTER_NONE, NULL, 0, e);
    size_t nb = (n + 7) / 8;
    MR_CHECK(ibuf_ensure(&w->enc, nb) == MR_OK, e, MR_ENOMEM, "imf %s: out of memory",
             w->path);
    memset(w->enc.p, 0, nb);
    for (size_t i = 0; i < n; i++)
        if (c->nulls[s + i]) w->enc.p[i >> 3] |= (uint8_t)(1u << (i & 7));
    return write_block(w, BK_NULLS, 0, FILTER_NONE, w->enc.p, nb, e);
}

static mr_code write_plain_strings(imf_writer *w, const frame_col *c, size_t s, size_t n,
                                   mr_err *e)
{
    const int64_t *o = c->v.offs;
    uint64_t maxlen = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t l = (uint64_t)(o[s + i + 1] - o[s + i]);
        if (l > maxlen) maxlen = l;
    }
    int width = width_for(maxlen);
    MR_CHECK(ibuf_ensure(&w->enc, n * (size_t)width) == MR_OK, e, MR_ENOMEM,
             "imf %s: out of memory", w->path);
    for (size_t i = 0; i < n; i++)
        put_uw(w->enc.p, width, i, (uint64_t)(o[s + i + 1] - o[s + i]));
    MR_TRY(write_block(w, BK_STR_LENS, width, FILTER_NONE, w->enc.p, n * (size_t)width, e));
    return write_block(w, BK_STR_BYTES, 0, FILTER_NONE, (const uint8_t *)c->arena + o[s],
                       (size_t)(o[s + n] - o[s]), e);
}

/* Builds a dictionary of the group's distinct strings. Returns 0 (and writes nothing) when
 * the column has too many distinct values for a dictionary to pay. Low-cardinality keys are
 * the common mapper output, and an index of 1-2 bytes per row beats compressing the text. */
static mr_code try_dict_strings(imf_writer *w, const frame_col *c, size_t s, size_t n,
                                int *done, mr_err *e)
{
    *done = 0;
    size_t limit = n / 4 < DICT_MAX ? n / 4 : DICT_MAX;
    if (limit < 2) return MR_OK;
    size_t nslots = 64;
    while (nslots < 2 * limit) nslots *= 2;
    if (nslots > w->nslots) {
        uint32_t *sl = realloc(w->slots, nslots * sizeof *sl);
        MR_CHECK(sl, e, MR_ENOMEM, "imf %s: out of memory", w->path);
        w->slots = sl;
        w->nslots = nslots;
    }
    if (!w->dict_off) {
        w->dict_off = malloc(DICT_MAX * sizeof *w->dict_off);
        w->dict_len = malloc(DICT_MAX * sizeof *w->dict_len);
        w->dict_hash = malloc(DICT_MAX * sizeof *w->dict_hash);
        MR_CHECK(w->dict_off && w->dict_len && w->dict_hash, e, MR_ENOMEM,
                 "imf %s: out of memory", w->path);
    }
    memset(w->slots, 0, nslots * sizeof *w->slots);
    MR_CHECK(ibuf_ensure(&w->enc, n * 2) == MR_OK, e, MR_ENOMEM, "imf %s: out of memory",
             w->path);
    uint16_t *idx = (uint16_t *)(void *)w->enc.p;
    const int64_t *o = c->v.offs;
    const char *a = c->arena;
    size_t nd = 0, mask = nslots - 1;
    uint64_t maxlen = 0, dbytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (frame_col_is_null(c, s + i)) {
            idx[i] = 0;
            continue;
        }
        const char *p = a + o[s + i];
        size_t len = (size_t)(o[s + i + 1] - o[s + i]);
        uint64_t h = hash_bytes(p, len);
        size_t slot = (size_t)h & mask;
        for (;;) {
            uint32_t id = w->slots[slot];
            if (id == 0) {
                if (nd == limit) return MR_OK;   /* too many distinct values */
                w->dict_off[nd] = o[s + i];
                w->dict_len[nd] = (uint32_t)len;
                w->dict_hash[nd] = h;
                if (len > maxlen) maxlen = len;
                dbytes += len;
                w->slots[slot] = (uint32_t)++nd;
                idx[i] = (uint16_t)(nd - 1);
                break;
            }
            if (w->dict_hash[id - 1] == h && w->dict_len[id - 1] == len &&
                memcmp(a + w->dict_off[id - 1], p, len) == 0) {
                idx[i] = (uint16_t)(id - 1);
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
    if (maxlen > UINT32_MAX) return MR_OK;
    int lw = width_for(maxlen);
    MR_CHECK(ibuf_ensure(&w->dict_bytes, dbytes + nd * (size_t)lw) == MR_OK, e, MR_ENOMEM,
             "imf %s: out of memory", w->path);
    uint8_t *lens = w->dict_bytes.p + dbytes;
    for (size_t d = 0, pos = 0; d < nd; d++) {
        memcpy(w->dict_bytes.p + pos, a + w->dict_off[d], w->dict_len[d]);
        pos += w->dict_len[d];
        put_uw(lens, lw, d, w->dict_len[d]);
    }
    MR_TRY(write_block(w, BK_DICT_LENS, lw, FILTER_NONE, lens, nd * (size_t)lw, e));
    MR_TRY(write_block(w, BK_DICT_BYTES, 0, FILTER_NONE, w->dict_bytes.p, dbytes, e));
    /* Indexes are bit-packed to just enough bits: random keys leave deflate little to
     * find in them, so packing is both smaller and far cheaper than compressing. */
    int bits = 1;
    while (((size_t)1 << bits) < nd) bits++;
    size_t packed = (n * (size_t)bits + 7) / 8;
    MR_CHECK(ibuf_ensure(&w->shuf, packed) == MR_OK, e, MR_ENOMEM, "imf %s: out of memory",
             w->path);
    uint8_t *out = w->shuf.p;
    uint64_t acc = 0;
    int nb = 0;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= (uint64_t)idx[i] << nb;
        nb += bits;
        while (nb >= 8) {
            out[pos++] = (uint8_t)acc;
            acc >>= 8;
            nb -= 8;
        }
    }
    if (nb) out[pos++] = (uint8_t)acc;
    *done = 1;
    return write_block(w, BK_DICT_INDEX, bits, FILTER_NONE, out, packed, e);
}

static mr_code write_values8(imf_writer *w, const uint8_t *src, size_t n, mr_err *e)
{
    if (n < PLANE_MIN_ROWS) return write_block(w, BK_VALUES, 8, FILTER_SHUFFLE, src, n * 8, e);
    MR_CHECK(ibuf_ensure(&w->enc, n * 8) == MR_OK, e, MR_ENOMEM, "imf %s: out of memory",
             w->path);
    shuffle8(w->enc.p, src, n);
    for (size_t b = 0; b < 8; b++)
        MR_TRY(write_block(w, BK_PLANE, 1, FILTER_NONE, w->enc.p + b * n, n, e));
    return MR_OK;
}

static mr_code write_column(imf_writer *w, const frame_col *c, size_t s, size_t n, mr_err *e)
{
    MR_TRY(write_nulls(w, c, s, n, e));
    switch (c->type) {
    case FRAME_I64:
        w->raw_bytes += n * 8;
        return write_values8(w, (const uint8_t *)(c->v.i64 + s), n, e);
    case FRAME_F64:
        w->raw_bytes += n * 8;
        return write_values8(w, (const uint8_t *)(c->v.f64 + s), n, e);
    case FRAME_BOOL:
        w->raw_bytes += n;
        return write_block(w, BK_VALUES, 1, FILTER_NONE, c->v.b + s, n, e);
    case FRAME_STR: {
        w->raw_bytes += n * 8 + (size_t)(c->v.offs[s + n] - c->v.offs[s]);
        int done;
        MR_TRY(try_dict_strings(w, c, s, n, &done, e));
        return done ? MR_OK : write_plain_strings(w, c, s, n, e);
    }
    }
    return mr_fail(e, MR_EINVAL, "imf %s: column '%s' has unknown type %d", w->path, c->name,
                   (int)c->type);
}

/* End of the group starting at s: at most group_rows rows and IMF_GROUP_STR_BYTES of any
 * string column (always at least one row). */
static size_t group_end(const imf_writer *w, const frame *f, size_t s, size_t nrows)
{
    size_t end = nrows - s > w->group_rows ? s + w->group_rows : nrows;
    for (size_t j = 0; j < frame_ncols(f); j++) {
        const frame_col *c = frame_col_at(f, j);
        if (c->type != FRAME_STR) continue;
        const int64_t *o = c->v.offs;
        if ((size_t)(o[end] - o[s]) <= IMF_GROUP_STR_BYTES) continue;
        size_t lo = s + 1, hi = end;   /* largest m in [lo, hi] within the limit, else s+1 */
        while (lo < hi) {
            size_t m = lo + (hi - lo + 1) / 2;
            if ((size_t)(o[m] - o[s]) <= IMF_GROUP_STR_BYTES) lo = m;
            else hi = m - 1;
        }
        end = lo;
    }
    return end;
}

/* colmap: schema column j is column colmap[j] of f; NULL when f is in schema order. */
static mr_code write_group(imf_writer *w, const frame *f, const int *colmap, size_t s,
                           size_t n, int partition, mr_err *e)
{
    if (w->ngroups == w->groups_cap) {
        size_t ncap = w->groups_cap ? w->groups_cap * 2 : 64;
        group_ent *g = realloc(w->groups, ncap * sizeof *g);
        MR_CHECK(g, e, MR_ENOMEM, "imf %s: out of memory", w->path);
        w->groups = g;
        w->groups_cap = ncap;
    }
    uint64_t start = w->off;
    uint8_t hdr[GROUP_HDR];
    size_t ncols = frame_ncols(w->schema);
    put_u32(hdr, GROUP_MAGIC);
    put_u32(hdr + 4, (uint32_t)partition);
    put_u64(hdr + 8, n);
    put_u32(hdr + 16, (uint32_t)ncols);
    put_u32(hdr + 20, crc32_of(0, hdr, 20));
    MR_TRY(wwrite(w, hdr, sizeof hdr, e));
    for (size_t j = 0; j < ncols; j++) {
        mr_code rc = write_column(w, frame_col_at(f, colmap ? (size_t)colmap[j] : j), s, n, e);
        if (rc != MR_OK) {
            w->failed = 1;
            return rc;
        }
    }
    w->groups[w->ngroups++] = (group_ent){start, w->off - start, n, (uint32_t)partition};
    return MR_OK;
}

static mr_code write_rows(imf_writer *w, const frame *f, const int *colmap, int partition,
                          mr_err *e)
{
    size_t nrows = frame_nrows(f);
    for (size_t s = 0; s < nrows;) {
        size_t end = group_end(w, f, s, nrows);
        MR_TRY(write_group(w, f, colmap, s, end - s, partition, e));
        s = end;
    }
    return MR_OK;
}

static mr_code flush_pending(imf_writer *w, int partition, mr_err *e)
{
    if ((size_t)partition >= w->npending || !w->pending[partition]) return MR_OK;
    frame *f = w->pending[partition];
    w->pending[partition] = NULL;
    w->pending_bytes -= w->pending_mem[partition];
    w->pending_mem[partition] = 0;
    mr_code rc = write_rows(w, f, NULL, partition, e);
    frame_free(f);
    return rc;
}

static mr_code flush_all_pending(imf_writer *w, mr_err *e)
{
    for (size_t p = 0; p < w->npending; p++) MR_TRY(flush_pending(w, (int)p, e));
    return MR_OK;
}

mr_code imf_writer_add(imf_writer *w, const frame *f, int partition, mr_err *e)
{
    MR_CHECK(w && f, e, MR_EINVAL, "imf: imf_writer_add without a writer or frame");
    MR_CHECK(!w->failed && !w->closed, e, MR_EINVAL,
             "imf %s: writer already %s", w->path, w->closed ? "closed" : "failed");
    int limit = w->nparts_fixed ? w->nparts_fixed : IMF_MAX_PARTS;
    MR_CHECK(partition >= 0 && partition < limit, e, MR_EINVAL,
             "imf %s: partition %d out of range 0..%d", w->path, partition, limit - 1);
    MR_TRY(frame_validate(f, e));
    MR_TRY(bind_schema(w, f, e));
    if (partition > w->max_part) w->max_part = partition;
    size_t nrows = frame_nrows(f);
    size_t small = w->group_rows < COALESCE_ROWS ? w->group_rows : COALESCE_ROWS;
    if (nrows == 0) return MR_OK;
    if (nrows >= small) {
        MR_TRY(flush_pending(w, partition, e));   /* rows of a partition stay in order */
        return write_rows(w, f, w->colmap, partition, e);
    }
    if ((size_t)partition >= w->npending) {
        size_t ncap = w->npending ? w->npending : 8;
        while (ncap <= (size_t)partition) ncap *= 2;
        frame **pf = realloc(w->pending, ncap * sizeof *pf);
        if (pf) w->pending = pf;
        size_t *pm = pf ? realloc(w->pending_mem, ncap * sizeof *pm) : NULL;
        MR_CHECK(pf && pm, e, MR_ENOMEM, "imf %s: out of memory", w->path);
        w->pending_mem = pm;
        memset(pf + w->npending, 0, (ncap - w->npending) * sizeof *pf);
        memset(pm + w->npending, 0, (ncap - w->npending) * sizeof *pm);
        w->npending = ncap;
    }
    frame **pp = &w->pending[partition];
    if (!*pp && !(*pp = frame_empty_like(w->schema, e))) return e ? e->code : MR_ENOMEM;
    MR_TRY(frame_append_frame(*pp, f, e));
    size_t mem = frame_mem_bytes(*pp);
    w->pending_bytes += mem - w->pending_mem[partition];
    w->pending_mem[partition] = mem;
    if (frame_nrows(*pp) >= small) return flush_pending(w, partition, e);
    return w->pending_bytes > w->pending_max ? flush_all_pending(w, e) : MR_OK;
}

static mr_code write_footer(imf_writer *w, mr_err *e)
{
    size_t len = FOOTER_FIXED + w->ngroups * FOOTER_ENTRY + 4;
    MR_CHECK(ibuf_ensure(&w->enc, len) == MR_OK, e, MR_ENOMEM, "imf %s: out of memory",
             w->path);
    uint8_t *p = w->enc.p;
    int nparts = w->nparts_fixed ? w->nparts_fixed : (w->max_part < 0 ? 1 : w->max_part + 1);
    put_u32(p, FOOTER_MAGIC);
    put_u32(p + 4, (uint32_t)w->ngroups);
    put_u32(p + 8, (uint32_t)nparts);
    put_u32(p + 12, 0);
    for (size_t i = 0; i < w->ngroups; i++) {
        uint8_t *q = p + FOOTER_FIXED + i * FOOTER_ENTRY;
        put_u64(q, w->groups[i].offset);
        put_u64(q + 8, w->groups[i].length);
        put_u64(q + 16, w->groups[i].nrows);
        put_u32(q + 24, w->groups[i].partition);
        put_u32(q + 28, 0);
    }
    put_u32(p + len - 4, crc32_of(0, p, len - 4));
    uint64_t footer_off = w->off;
    MR_TRY(wwrite(w, p, len, e));
    uint8_t t[TRAILER_SIZE];
    put_u64(t, footer_off);
    put_u64(t + 8, len);
    put_u32(t + 16, crc32_of(0, t, 16));
    put_u32(t + 20, TRAILER_MAGIC);
    return wwrite(w, t, sizeof t, e);
}

mr_code imf_writer_close(imf_writer *w, mr_err *e)
{
    MR_CHECK(w, e, MR_EINVAL, "imf: imf_writer_close without a writer");
    MR_CHECK(!w->failed && !w->closed, e, MR_EINVAL,
             "imf %s: writer already %s", w->path, w->closed ? "closed" : "failed");
    mr_code rc = MR_OK;
    if (!w->schema) {   /* nothing added: an empty file with an empty schema */
        w->schema = frame_create();
        if (!w->schema) rc = mr_fail(e, MR_ENOMEM, "imf %s: out of memory", w->path);
        if (rc == MR_OK) rc = write_header(w, e);
    }
    if (rc == MR_OK) rc = flush_all_pending(w, e);
    if (rc == MR_OK) rc = write_footer(w, e);
    FILE *fp = w->fp;
    w->fp = NULL;
    if (fflush(fp) != 0 && rc == MR_OK) rc = wfail_io(w, e, "flush failed");
    if (fclose(fp) != 0 && rc == MR_OK) rc = wfail_io(w, e, "close failed");
    if (rc == MR_OK && rename(w->tmp_path, w->path) != 0)
        rc = wfail_io(w, e, "rename of the temporary file failed");
    if (rc != MR_OK) {
        w->failed = 1;
        return rc;
    }
    w->closed = 1;
    return MR_OK;
}

void imf_writer_free(imf_writer *w)
{
    if (!w) return;
    if (w->fp) fclose(w->fp);
    if (!w->closed && w->tmp_path && w->tmp_path[0]) unlink(w->tmp_path);
    if (w->comp) libdeflate_free_compressor(w->comp);
    frame_free(w->schema);
    free(w->colmap);
    for (size_t p = 0; p < w->npending; p++) frame_free(w->pending[p]);
    free(w->pending);
    free(w->pending_mem);
    free(w->groups);
    ibuf_free(&w->enc);
    ibuf_free(&w->dict_bytes);
    ibuf_free(&w->shuf);
    ibuf_free(&w->comp_out);
    free(w->slots);
    free(w->dict_off);
    free(w->dict_len);
    free(w->dict_hash);
    free(w->path);
    free(w->tmp_path);
    free(w);
}

/* ================================ reader ================================ */

struct imf_reader {
    char *path;
    int fd;
    uint64_t size;
    frame *schema;
    uint64_t data_start, footer_off;
    group_ent *groups;
    size_t ngroups;
    int nparts;
    size_t *cursor;               /* per partition, [nparts] for "all" */
    struct libdeflate_decompressor *dec;
    ibuf gbuf;                    /* one group's stored bytes */
    ibuf blk[4];                  /* decoded blocks of the column being read */
    ibuf shuf;
};

/* Where a block sits, for error messages and decoding. */
typedef struct bctx {
    imf_reader *r;
    size_t group;
    const char *col;
    const uint8_t *g;             /* group bytes */
    uint64_t glen, pos;           /* pos: offset of the next block within the group */
} bctx;

typedef struct blockv {
    int kind, width, codec, filter;
    uint64_t raw_len, stored_len;
    uint64_t at;                  /* file offset of the block header */
    const uint8_t *payload;       /* stored bytes, inside the group buffer */
    const uint8_t *data;          /* decoded data (raw_len bytes) when decoding */
} blockv;

static mr_code corrupt(const imf_reader *r, mr_err *e, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static mr_code corrupt(const imf_reader *r, mr_err *e, uint64_t off, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mr_fail(e, MR_ECORRUPT, "imf %s: %s at byte %llu", r->path, what,
                   (unsigned long long)off);
}

static mr_code pread_all(imf_reader *r, void *buf, size_t n, uint64_t off, mr_err *e)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(r->fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0)
            return mr_fail(e, MR_EIO, "imf %s: read failed at byte %llu: %s", r->path,
                           (unsigned long long)(off + got), strerror(errno));
        if (k == 0)
            return corrupt(r, e, off + got, "unexpected end of file (file shrank?)");
        got += (size_t)k;
    }
    return MR_OK;
}

static mr_code read_schema(imf_reader *r, mr_err *e)
{
    uint8_t fixed[SCHEMA_FIXED];
    MR_TRY(pread_all(r, fixed, sizeof fixed, HDR_SIZE, e));
    uint32_t ncols = get_u32(fixed), len = get_u32(fixed + 4);
    uint64_t room = r->size - HDR_SIZE - SCHEMA_FIXED - TRAILER_SIZE;
    if ((uint64_t)len + 4 > room || ncols > MAX_COLS || (uint64_t)ncols * 4 > len)
        return corrupt(r, e, HDR_SIZE, "schema: implausible size (%u columns, %u bytes) "
                       "in a %llu-byte file", ncols, len, (unsigned long long)r->size);
    MR_CHECK(ibuf_ensure(&r->gbuf, SCHEMA_FIXED + (size_t)len + 4) == MR_OK, e, MR_ENOMEM,
             "imf %s: out of memory", r->path);
    uint8_t *p = r->gbuf.p;
    memcpy(p, fixed, SCHEMA_FIXED);
    MR_TRY(pread_all(r, p + SCHEMA_FIXED, (size_t)len + 4, HDR_SIZE + SCHEMA_FIXED, e));
    uint32_t want = get_u32(p + SCHEMA_FIXED + len), got = crc32_of(0, p, SCHEMA_FIXED + len);
    if (want != got)
        return corrupt(r, e, HDR_SIZE, "schema: CRC mismatch (stored %08x, computed %08x)",
                       want, got);
    r->schema = frame_create();
    MR_CHECK(r->schema, e, MR_ENOMEM, "imf %s: out of memory", r->path);
    size_t pos = SCHEMA_FIXED, end = SCHEMA_FIXED + len;
    char name[65536];
    for (uint32_t j = 0; j < ncols; j++) {
        if (pos + 4 > end) return corrupt(r, e, HDR_SIZE + pos, "schema: column %u cut short", j);
        int type = p[pos];
        size_t nl = get_u16(p + pos + 2);
        if (type > FRAME_STR || p[pos + 1] != 0 || pos + 4 + nl > end)
            return corrupt(r, e, HDR_SIZE + pos, "schema: column %u: bad entry", j);
        memcpy(name, p + pos + 4, nl);
        name[nl] = '\0';
        if (!frame_add_col(r->schema, name, (frame_type)type, NULL))
            return corrupt(r, e, HDR_SIZE + pos, "schema: column %u: duplicate name '%s'", j,
                           name);
        pos += 4 + nl;
    }
    if (pos != end) return corrupt(r, e, HDR_SIZE + pos, "schema: trailing bytes");
    r->data_start = HDR_SIZE + SCHEMA_FIXED + len + 4;
    return MR_OK;
}

static mr_code read_footer(imf_reader *r, mr_err *e)
{
    uint8_t t[TRAILER_SIZE];
    uint64_t toff = r->size - TRAILER_SIZE;
    MR_TRY(pread_all(r, t, sizeof t, toff, e));
    if (get_u32(t + 20) != TRAILER_MAGIC || get_u32(t + 16) != crc32_of(0, t, 16))
        return corrupt(r, e, toff, "footer missing or damaged (no valid trailer at the end; "
                       "truncated or unfinished file?)");
    uint64_t foff = get_u64(t), flen = get_u64(t + 8);
    if (foff < r->data_start || flen < FOOTER_FIXED + 4 || foff + flen != toff)
        return corrupt(r, e, toff, "trailer points to a footer at %llu+%llu that does not end "
                       "at the trailer", (unsigned long long)foff, (unsigned long long)flen);
    MR_CHECK(ibuf_ensure(&r->gbuf, (size_t)flen) == MR_OK, e, MR_ENOMEM,
             "imf %s: out of memory", r->path);
    uint8_t *p = r->gbuf.p;
    MR_TRY(pread_all(r, p, (size_t)flen, foff, e));
    uint32_t want = get_u32(p + flen - 4), got = crc32_of(0, p, (size_t)flen - 4);
    if (want != got)
        return corrupt(r, e, foff, "footer: CRC mismatch (stored %08x, computed %08x)", want,
                       got);
    uint32_t ngroups = get_u32(p + 4), nparts = get_u32(p + 8);
    if (get_u32(p) != FOOTER_MAGIC || get_u32(p + 12) != 0 ||
        flen != FOOTER_FIXED + (uint64_t)ngroups * FOOTER_ENTRY + 4 || nparts < 1 ||
        nparts > IMF_MAX_PARTS)
        return corrupt(r, e, foff, "footer: bad magic or sizes (%u groups, %u partitions)",
                       ngroups, nparts);
    r->footer_off = foff;
    r->nparts = (int)nparts;
    r->groups = calloc(ngroups ? ngroups : 1, sizeof *r->groups);
    r->cursor = calloc(nparts + 1, sizeof *r->cursor);
    MR_CHECK(r->groups && r->cursor, e, MR_ENOMEM, "imf %s: out of memory", r->path);
    uint64_t expect = r->data_start;
    for (uint32_t i = 0; i < ngroups; i++) {
        const uint8_t *q = p + FOOTER_FIXED + (size_t)i * FOOTER_ENTRY;
        group_ent g = {get_u64(q), get_u64(q + 8), get_u64(q + 16), get_u32(q + 24)};
        if (g.offset != expect || g.length < GROUP_HDR || g.length > foff - g.offset ||
            g.nrows == 0 || g.partition >= nparts || get_u32(q + 28) != 0)
            return corrupt(r, e, foff + FOOTER_FIXED + (uint64_t)i * FOOTER_ENTRY,
                           "footer: group %u entry inconsistent (offset %llu, length %llu, "
                           "partition %u)", i, (unsigned long long)g.offset,
                           (unsigned long long)g.length, g.partition);
        r->groups[i] = g;
        expect = g.offset + g.length;
    }
    if (expect != foff)
        return corrupt(r, e, expect, "footer: groups end at %llu but the footer starts at %llu",
                       (unsigned long long)expect, (unsigned long long)foff);
    r->ngroups = ngroups;
    return MR_OK;
}

imf_reader *imf_reader_open(const char *local_path, mr_err *e)
{
    imf_reader *r = calloc(1, sizeof *r);
    MR_CHECK_NULL(r, e, MR_ENOMEM, "imf %s: out of memory", local_path);
    r->fd = -1;
    r->path = strdup(local_path);
    if (!r->path || !(r->dec = libdeflate_alloc_decompressor())) {
        mr_fail(e, MR_ENOMEM, "imf %s: out of memory", local_path);
        goto fail;
    }
    r->fd = open(local_path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        mr_fail(e, errno == ENOENT ? MR_ENOTFOUND : MR_EIO, "imf %s: cannot open: %s",
                local_path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(r->fd, &st) != 0) {
        mr_fail(e, MR_EIO, "imf %s: stat failed: %s", local_path, strerror(errno));
        goto fail;
    }
    r->size = (uint64_t)st.st_size;
    uint64_t min = HDR_SIZE + SCHEMA_FIXED + 4 + FOOTER_FIXED + 4 + TRAILER_SIZE;
    if (r->size < min) {
        corrupt(r, e, r->size, "file too short (%llu bytes) to be an imf file: truncated?",
                (unsigned long long)r->size);
        goto fail;
    }
    uint8_t hdr[HDR_SIZE];
    if (pread_all(r, hdr, sizeof hdr, 0, e) != MR_OK) goto fail;
    if (memcmp(hdr, IMF_MAGIC, 8) != 0) {
        corrupt(r, e, 0, "bad magic (not an imf intermediate file)");
        goto fail;
    }
    if (get_u32(hdr + 8) != IMF_VERSION) {
        corrupt(r, e, 8, "unsupported version %u (this build reads version %d)",
                get_u32(hdr + 8), IMF_VERSION);
        goto fail;
    }
    if (get_u32(hdr + 12) != 0) {
        corrupt(r, e, 12, "unknown header flags %08x", get_u32(hdr + 12));
        goto fail;
    }
    if (read_schema(r, e) != MR_OK || read_footer(r, e) != MR_OK) goto fail;
    return r;
fail:
    imf_reader_free(r);
    return NULL;
}

void imf_reader_free(imf_reader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    if (r->dec) libdeflate_free_decompressor(r->dec);
    frame_free(r->schema);
    free(r->groups);
    free(r->cursor);
    ibuf_free(&r->gbuf);
    for (int i = 0; i < 4; i++) ibuf_free(&r->blk[i]);
    ibuf_free(&r->shuf);
    free(r->path);
    free(r);
}

int imf_reader_nparts(const imf_reader *r) { return r->nparts; }
size_t imf_reader_ngroups(const imf_reader *r) { return r->ngroups; }
const frame *imf_reader_schema(const imf_reader *r) { return r->schema; }

uint64_t imf_reader_rows(const imf_reader *r, int partition)
{
    uint64_t n = 0;
    for (size_t i = 0; i < r->ngroups; i++)
        if (partition < 0 || r->groups[i].partition == (uint32_t)partition) n += r->groups[i].nrows;
    return n;
}

void imf_reader_rewind(imf_reader *r)
{
    memset(r->cursor, 0, ((size_t)r->nparts + 1) * sizeof *r->cursor);
}

/* Parses the next block header and checks its kind and CRC; the payload stays in the group
 * buffer until decode_block. */
static mr_code next_block(bctx *b, int kind_a, int kind_b, blockv *v, mr_err *e)
{
    imf_reader *r = b->r;
    uint64_t at = r->groups[b->group].offset + b->pos;
    const char *expect = kind_b == BK_DICT_LENS ? "string lengths or dictionary"
                         : kind_b == BK_PLANE   ? "values"
                                                : block_name(kind_a);
    if (b->glen - b->pos < BLOCK_HDR)
        return corrupt(r, e, at, "group %zu, column '%s': %s block header cut short", b->group,
                       b->col, expect);
    const uint8_t *h = b->g + b->pos;
    v->at = at;
    v->kind = h[0];
    v->codec = h[1];
    v->filter = h[2];
    v->width = h[3];
    v->raw_len = get_u64(h + 4);
    v->stored_len = get_u64(h + 12);
    if (v->stored_len > b->glen - b->pos - BLOCK_HDR)
        return corrupt(r, e, at, "group %zu, column '%s': %s block of %llu bytes runs past "
                       "the group end (short block)", b->group, b->col, expect,
                       (unsigned long long)v->stored_len);
    v->payload = h + BLOCK_HDR;
    uint32_t want = get_u32(h + 20);
    uint32_t got = crc32_of(crc32_of(0, h, 20), v->payload, (size_t)v->stored_len);
    if (want != got)
        return corrupt(r, e, at, "group %zu, column '%s': %s block: CRC mismatch (stored "
                       "%08x, computed %08x)", b->group, b->col, expect, want, got);
    if ((v->kind != kind_a && (!kind_b || v->kind != kind_b)) || v->codec > CODEC_DEFLATE ||
        v->filter > FILTER_SHUFFLE || v->width > 16 ||
        (v->codec == CODEC_STORED && v->stored_len != v->raw_len) ||
        (v->filter == FILTER_SHUFFLE && (v->raw_len % 8) != 0) ||
        v->raw_len > SIZE_MAX / 2 ||
        (v->codec == CODEC_DEFLATE && v->raw_len / INFLATE_MAX_RATIO > v->stored_len + 1))
        return corrupt(r, e, at, "group %zu, column '%s': expected a %s block, found kind %d "
                       "codec %d filter %d width %d", b->group, b->col, expect, v->kind,
                       v->codec, v->filter, v->width);
    b->pos += BLOCK_HDR + v->stored_len;
    v->data = NULL;
    return MR_OK;
}

static mr_code inflate_to(bctx *b, const blockv *v, uint8_t *dst, mr_err *e)
{
    if (libdeflate_deflate_decompress(b->r->dec, v->payload, (size_t)v->stored_len, dst,
                                      (size_t)v->raw_len, NULL) != LIBDEFLATE_SUCCESS)
        return corrupt(b->r, e, v->at, "group %zu, column '%s': %s block does not decompress "
                       "to %llu bytes", b->group, b->col, block_name(v->kind),
                       (unsigned long long)v->raw_len);
    return MR_OK;
}

/* Sets v->data to the block's raw bytes: in place for stored blocks, else in out. */
static mr_code decode_block(bctx *b, blockv *v, ibuf *out, mr_err *e)
{
    imf_reader *r = b->r;
    if (v->codec == CODEC_STORED && v->filter == FILTER_NONE) {
        v->data = v->payload;
        return MR_OK;
    }
    ibuf *dst = v->filter == FILTER_SHUFFLE ? &r->shuf : out;
    const uint8_t *raw = v->payload;
    if (v->codec == CODEC_DEFLATE) {
        MR_CHECK(ibuf_ensure(dst, (size_t)v->raw_len) == MR_OK, e, MR_ENOMEM,
                 "imf %s: out of memory", r->path);
        MR_TRY(inflate_to(b, v, dst->p, e));
        raw = dst->p;
    }
    if (v->filter == FILTER_SHUFFLE) {
        MR_CHECK(ibuf_ensure(out, (size_t)v->raw_len) == MR_OK, e, MR_ENOMEM,
                 "imf %s: out of memory", r->path);
        unshuffle8(out->p, raw, (size_t)v->raw_len / 8);
        raw = out->p;
    }
    v->data = raw;
    return MR_OK;
}

static mr_code bad_size(bctx *b, const blockv *v, mr_err *e, const char *why)
{
    return corrupt(b->r, e, v->at, "group %zu, column '%s': %s block: %s", b->group, b->col,
                   block_name(v->kind), why);
}

/* Sum of n width-byte lengths (when decoded); fails unless the block is n entries long. */
static mr_code sum_lengths(bctx *b, const blockv *v, uint64_t n, uint64_t *sum, mr_err *e)
{
    if (v->raw_len != n * (uint64_t)v->width)
        return bad_size(b, v, e, "length does not match the entry count");
    uint64_t s = 0;
    if (v->data)
        for (uint64_t i = 0; i < n; i++) s += get_uw(v->data, v->width, (size_t)i);
    *sum = s;
    return MR_OK;
}

static int length_width_ok(int w) { return w == 1 || w == 2 || w == 4 || w == 8; }

/* The 8-byte values of a numeric column (one shuffled block, or 8 byte planes) into
 * blk[1]; data stays NULL when not decoding. */
static mr_code read_values8(bctx *b, size_t n, int decode, const uint8_t **data, mr_err *e)
{
    imf_reader *r = b->r;
    blockv v;
    *data = NULL;
    MR_TRY(next_block(b, BK_VALUES, BK_PLANE, &v, e));
    if (v.kind == BK_VALUES) {
        if (v.width != 8 || v.raw_len != (uint64_t)n * 8)
            return bad_size(b, &v, e, "size does not match the row count");
        if (decode) MR_TRY(decode_block(b, &v, &r->blk[1], e));
        *data = v.data;
        return MR_OK;
    }
    const uint8_t *planes[8];
    /* n comes from the footer: the first plane's size vouches for it before it sizes buffers */
    if (v.width != 1 || v.filter != FILTER_NONE || v.raw_len != n)
        return bad_size(b, &v, e, "size does not match the row count");
    if (decode)
        MR_CHECK(ibuf_ensure(&r->shuf, n * 8) == MR_OK && ibuf_ensure(&r->blk[1], n * 8) == MR_OK,
                 e, MR_ENOMEM, "imf %s: out of memory", r->path);
    for (int p = 0; p < 8; p++) {
        if (p > 0) MR_TRY(next_block(b, BK_PLANE, 0, &v, e));
        if (v.width != 1 || v.filter != FILTER_NONE || v.raw_len != n)
            return bad_size(b, &v, e, "size does not match the row count");
        if (!decode) continue;
        if (v.codec == CODEC_STORED) {
            planes[p] = v.payload;
        } else {
            MR_TRY(inflate_to(b, &v, r->shuf.p + (size_t)p * n, e));
            planes[p] = r->shuf.p + (size_t)p * n;
        }
    }
    if (!decode) return MR_OK;
    uint8_t *out = r->blk[1].p;
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < 8; p++) out[i * 8 + (size_t)p] = planes[p][i];
    *data = out;
    return MR_OK;
}

static uint32_t unpack_bits(const uint8_t *p, size_t len, size_t i, int bits)
{
    size_t bit = i * (size_t)bits, byte = bit >> 3;
    uint32_t v = 0;
    if (byte + 4 <= len) memcpy(&v, p + byte, 4);
    else
        for (size_t k = 0; byte + k < len; k++) v |= (uint32_t)p[byte + k] << (8 * k);
    return (v >> (bit & 7)) & ((1u << bits) - 1);
}

/* Reads one column of a group; appends its rows to c when c is not NULL (else only
 * checks structure and CRCs, for imf_verify). */
static mr_code read_column(bctx *b, frame_type type, size_t n, frame_col *c, mr_err *e)
{
    imf_reader *r = b->r;
    blockv nv, v;
    int decode = c != NULL;
    MR_TRY(next_block(b, BK_NULLS, 0, &nv, e));
    if (nv.width != 0 || (nv.raw_len != 0 && nv.raw_len != (n + 7) / 8))
        return bad_size(b, &nv, e, "bitmap size does not match the row count");
    if (decode && nv.raw_len) MR_TRY(decode_block(b, &nv, &r->blk[0], e));
    const uint8_t *nulls = nv.raw_len ? nv.data : NULL;
#define IS_NULL(i) (nulls && (nulls[(i) >> 3] >> ((i) & 7) & 1))
    if (type == FRAME_I64 || type == FRAME_F64 || type == FRAME_BOOL) {
        const uint8_t *d;
        if (type == FRAME_BOOL) {
            MR_TRY(next_block(b, BK_VALUES, 0, &v, e));
            if (v.width != 1 || v.raw_len != (uint64_t)n)
                return bad_size(b, &v, e, "size does not match the row count");
            if (decode) MR_TRY(decode_block(b, &v, &r->blk[1], e));
            d = v.data;
        } else {
            MR_TRY(read_values8(b, n, decode, &d, e));
        }
        if (!decode) return MR_OK;
        MR_CHECK(frame_col_reserve(c, c->len + n, 0) == MR_OK, e, MR_ENOMEM,
                 "imf %s: out of memory", r->path);
        if (!nulls && !c->nulls && c->type == type && type != FRAME_BOOL) {
            /* no nulls either side, same 8-byte type: the block is the column's layout */
            memcpy(c->v.i64 + c->len, d, n * 8);
            c->len += n;
            return MR_OK;
        }
        for (size_t i = 0; i < n; i++) {
            mr_code rc;
            if (IS_NULL(i)) rc = frame_col_push_null(c);
            else if (type == FRAME_BOOL) rc = frame_col_push_bool(c, d[i] != 0);
            else if (type == FRAME_I64) rc = frame_col_push_i64(c, (int64_t)get_u64(d + 8 * i));
            else {
                double x;
                memcpy(&x, d + 8 * i, 8);
                rc = frame_col_push_f64(c, x);
            }
            MR_CHECK(rc == MR_OK, e, rc, "imf %s: out of memory", r->path);
        }
        return MR_OK;
    }
    blockv lv, bv, iv;
    MR_TRY(next_block(b, BK_STR_LENS, BK_DICT_LENS, &lv, e));
    if (!length_width_ok(lv.width))
        return bad_size(b, &lv, e, "bad length width");
    if (decode) MR_TRY(decode_block(b, &lv, &r->blk[1], e));
    MR_TRY(next_block(b, lv.kind == BK_STR_LENS ? BK_STR_BYTES : BK_DICT_BYTES, 0, &bv, e));
    if (bv.width != 0) return bad_size(b, &bv, e, "bad width");
    if (decode) MR_TRY(decode_block(b, &bv, &r->blk[2], e));
    if (lv.kind == BK_STR_LENS) {
        uint64_t total;
        MR_TRY(sum_lengths(b, &lv, n, &total, e));
        if (decode && total != bv.raw_len)
            return bad_size(b, &bv, e, "size does not match the sum of string lengths");
        if (!decode) return MR_OK;
        MR_CHECK(frame_col_reserve(c, c->len + n, c->arena_len + (size_t)total) == MR_OK, e,
                 MR_ENOMEM, "imf %s: out of memory", r->path);
        const char *s = (const char *)bv.data;
        if (!nulls && !c->nulls && c->type == FRAME_STR) {
            /* the bytes are the arena's, back to back: one copy, then the offsets */
            if (total) memcpy(c->arena + c->arena_len, s, (size_t)total);
            int64_t *offs = c->v.offs + c->len;
            int64_t at = (int64_t)c->arena_len;
            for (size_t i = 0; i < n; i++) {
                at += (int64_t)get_uw(lv.data, lv.width, i);
                offs[i + 1] = at;
            }
            c->arena_len += (size_t)total;
            c->len += n;
            return MR_OK;
        }
        for (size_t i = 0; i < n; i++) {
            size_t l = (size_t)get_uw(lv.data, lv.width, i);
            mr_code rc = IS_NULL(i) ? frame_col_push_null(c) : frame_col_push_str(c, s, l);
            MR_CHECK(rc == MR_OK, e, rc, "imf %s: out of memory", r->path);
            s += l;
        }
        return MR_OK;
    }
    if (lv.raw_len % (uint64_t)lv.width != 0)
        return bad_size(b, &lv, e, "size is not a whole number of entries");
    uint64_t nd = lv.raw_len / (uint64_t)lv.width, dbytes;
    MR_TRY(sum_lengths(b, &lv, nd, &dbytes, e));
    if (decode && dbytes != bv.raw_len)
        return bad_size(b, &bv, e, "size does not match the sum of dictionary lengths");
    MR_TRY(next_block(b, BK_DICT_INDEX, 0, &iv, e));
    if (iv.width < 1 || iv.width > 16 || iv.filter != FILTER_NONE ||
        iv.raw_len != ((uint64_t)n * (uint64_t)iv.width + 7) / 8)
        return bad_size(b, &iv, e, "size does not match the row count");
    if (!decode) return MR_OK;
    MR_TRY(decode_block(b, &iv, &r->blk[3], e));
    /* Entry offsets go to the shuffle scratch: no block of a string column uses it. */
    MR_CHECK(ibuf_ensure(&r->shuf, (size_t)(nd + 1) * sizeof(uint64_t)) == MR_OK, e,
             MR_ENOMEM, "imf %s: out of memory", r->path);
    uint64_t *doff = (uint64_t *)(void *)r->shuf.p;
    doff[0] = 0;
    for (uint64_t d = 0; d < nd; d++) doff[d + 1] = doff[d] + get_uw(lv.data, lv.width, d);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (IS_NULL(i)) continue;
        uint32_t id = unpack_bits(iv.data, (size_t)iv.raw_len, i, iv.width);
        if (id >= nd) return bad_size(b, &iv, e, "index points past the dictionary");
        total += doff[id + 1] - doff[id];
    }
    MR_CHECK(frame_col_reserve(c, c->len + n, c->arena_len + (size_t)total) == MR_OK, e,
             MR_ENOMEM, "imf %s: out of memory", r->path);
    const char *s = (const char *)bv.data;
    for (size_t i = 0; i < n; i++) {
        mr_code rc;
        if (IS_NULL(i)) rc = frame_col_push_null(c);
        else {
            uint32_t id = unpack_bits(iv.data, (size_t)iv.raw_len, i, iv.width);
            rc = frame_col_push_str(c, s + doff[id], (size_t)(doff[id + 1] - doff[id]));
        }
        MR_CHECK(rc == MR_OK, e, rc, "imf %s: out of memory", r->path);
    }
    return MR_OK;
#undef IS_NULL
}

/* Loads group gi and appends its rows to dst (NULL: check only). */
static mr_code read_group(imf_reader *r, size_t gi, frame *dst, mr_err *e)
{
    const group_ent *g = &r->groups[gi];
    MR_CHECK(g->length <= SIZE_MAX, e, MR_ENOMEM, "imf %s: group too large", r->path);
    MR_CHECK(ibuf_ensure(&r->gbuf, (size_t)g->length) == MR_OK, e, MR_ENOMEM,
             "imf %s: out of memory reading group %zu", r->path, gi);
    MR_TRY(pread_all(r, r->gbuf.p, (size_t)g->length, g->offset, e));
    const uint8_t *h = r->gbuf.p;
    if (get_u32(h + 20) != crc32_of(0, h, 20))
        return corrupt(r, e, g->offset, "group %zu: header CRC mismatch", gi);
    if (get_u32(h) != GROUP_MAGIC || get_u32(h + 4) != g->partition ||
        get_u64(h + 8) != g->nrows || get_u32(h + 16) != frame_ncols(r->schema))
        return corrupt(r, e, g->offset, "group %zu: header disagrees with the footer", gi);
    bctx b = {r, gi, "", r->gbuf.p, g->length, GROUP_HDR};
    size_t n = (size_t)g->nrows;
    for (size_t j = 0; j < frame_ncols(r->schema); j++) {
        const frame_col *s = frame_col_at(r->schema, j);
        b.col = s->name;
        MR_TRY(read_column(&b, s->type, n, dst ? frame_col_at(dst, j) : NULL, e));
    }
    if (b.pos != b.glen)
        return corrupt(r, e, g->offset + b.pos, "group %zu: %llu unexpected bytes after the "
                       "last column", gi, (unsigned long long)(b.glen - b.pos));
    return MR_OK;
}

mr_code imf_reader_next(imf_reader *r, int partition, frame **out, mr_err *e)
{
    *out = NULL;
    if (partition >= r->nparts) return MR_OK;
    size_t *cur = &r->cursor[partition < 0 ? r->nparts : partition];
    while (*cur < r->ngroups && partition >= 0 &&
           r->groups[*cur].partition != (uint32_t)partition)
        (*cur)++;
    if (*cur >= r->ngroups) return MR_OK;
    size_t gi = (*cur)++;
    frame *f = frame_empty_like(r->schema, e);
    if (!f) return e ? e->code : MR_ENOMEM;
    mr_code rc = read_group(r, gi, f, e);
    if (rc != MR_OK) {
        frame_free(f);
        return rc;
    }
    *out = f;
    return MR_OK;
}

frame *imf_read_all(const char *local_path, int partition, mr_err *e)
{
    imf_reader *r = imf_reader_open(local_path, e);
    if (!r) return NULL;
    frame *f = frame_empty_like(r->schema, e);
    if (!f) goto fail;
    uint64_t rows = imf_reader_rows(r, partition);
    /* The footer's row counts are only checked against the blocks as the groups are read:
     * reserve no more than the file could hold (read_column grows the columns past it). */
    if (rows / INFLATE_MAX_RATIO > r->size) rows = r->size * INFLATE_MAX_RATIO;
    for (size_t j = 0; j < frame_ncols(f); j++) {
        if (frame_col_reserve(frame_col_at(f, j), (size_t)rows, 0) != MR_OK) {
            mr_fail(e, MR_ENOMEM, "imf %s: out of memory for %llu rows", local_path,
                    (unsigned long long)rows);
            goto fail;
        }
    }
    for (size_t gi = 0; gi < r->ngroups; gi++) {
        if (partition >= 0 && r->groups[gi].partition != (uint32_t)partition) continue;
        if (read_group(r, gi, f, e) != MR_OK) goto fail;
    }
    imf_reader_free(r);
    return f;
fail:
    frame_free(f);
    imf_reader_free(r);
    return NULL;
}

mr_code imf_verify(const char *local_path, mr_err *e)
{
    imf_reader *r = imf_reader_open(local_path, e);
    if (!r) return e ? e->code : MR_ECORRUPT;
    mr_code rc = MR_OK;
    for (size_t gi = 0; gi < r->ngroups && rc == MR_OK; gi++) rc = read_group(r, gi, NULL, e);
    imf_reader_free(r);
    return rc;
}
