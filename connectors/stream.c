/* stream: buffered pull streams over local files, registered schemes and gzip.
 * See stream.h. One buffer per stream (1 MiB by default, grown only for a line or a
 * peek larger than that), so memory stays bounded by the longest record. */
#define _GNU_SOURCE
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define STREAM_BUF_SIZE (1u << 20)
#define STREAM_DEFAULT_MAX_LINE ((size_t)64 << 20)
#define STREAM_MAX_SCHEMES 16

struct stream {
    stream_ops ops;
    void *ctx;
    char *name;
    char *buf;
    size_t cap, pos, end;   /* unread bytes are buf[pos..end) */
    uint64_t consumed;      /* bytes handed out (or skipped) so far */
    int eof;
    size_t max_line;
    stream *inner;          /* gunzip streams: the compressed source, for raw offsets */
};

/* ---- scheme registry ---- */

static struct {
    char scheme[16];
    stream_opener open;
} stream_schemes[STREAM_MAX_SCHEMES];
static int stream_nschemes;

void stream_register_scheme(const char *scheme, stream_opener open)
{
    for (int i = 0; i < stream_nschemes; i++) {
        if (strcmp(stream_schemes[i].scheme, scheme) == 0) {
            stream_schemes[i].open = open;
            return;
        }
    }
    if (stream_nschemes == STREAM_MAX_SCHEMES || strlen(scheme) >= 16) return;
    strcpy(stream_schemes[stream_nschemes].scheme, scheme);
    stream_schemes[stream_nschemes].open = open;
    stream_nschemes++;
}

/* Length of "scheme" when uri looks like "scheme://...", else 0. */
static size_t stream_scheme_len(const char *uri)
{
    const char *p = uri;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    if (p == uri || strncmp(p, "://", 3) != 0) return 0;
    return (size_t)(p - uri);
}

/* ---- generic buffered layer ---- */

stream *stream_create(const stream_ops *ops, void *ctx, const char *name)
{
    stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ops = *ops;
    s->ctx = ctx;
    s->name = strdup(name ? name : "?");
    s->buf = malloc(STREAM_BUF_SIZE);
    s->cap = STREAM_BUF_SIZE;
    s->max_line = STREAM_DEFAULT_MAX_LINE;
    if (!s->name || !s->buf) {
        free(s->name);
        free(s->buf);
        free(s);
        return NULL;
    }
    return s;
}

void stream_close(stream *s)
{
    if (!s) return;
    if (s->ops.close) s->ops.close(s->ctx);
    free(s->buf);
    free(s->name);
    free(s);
}

const char *stream_name(const stream *s) { return s->name; }
uint64_t stream_offset(const stream *s) { return s->consumed; }
uint64_t stream_raw_offset(const stream *s)
{
    return s->inner ? stream_raw_offset(s->inner) : s->consumed;
}
void stream_set_max_line(stream *s, size_t max_line) { s->max_line = max_line; }

/* Makes room for at least `want` unread bytes: moves unread bytes to the front and grows
 * the buffer if needed. */
static mr_code stream_make_room(stream *s, size_t want, mr_err *e)
{
    if (s->pos > 0 && (s->pos == s->end || s->cap - s->pos < want)) {
        memmove(s->buf, s->buf + s->pos, s->end - s->pos);
        s->end -= s->pos;
        s->pos = 0;
    }
    if (want > s->cap) {
        size_t ncap = s->cap;
        while (ncap < want) ncap *= 2;
        char *nb = realloc(s->buf, ncap);
        if (!nb) return mr_fail(e, MR_ENOMEM, "%s: out of memory growing the read buffer to %zu bytes",
                                s->name, ncap);
        s->buf = nb;
        s->cap = ncap;
    }
    return MR_OK;
}

/* Reads once from the backend into the free tail of the buffer. 1 read, 0 eof, -1 error. */
static int stream_fill_once(stream *s, mr_err *e)
{
    if (s->eof) return 0;
    if (s->end == s->cap) {
        if (stream_make_room(s, s->cap - s->pos + 1, e) != MR_OK) return -1;
    }
    ssize_t n = s->ops.read(s->ctx, s->buf + s->end, s->cap - s->end, e);
    if (n < 0) return -1;
    if (n == 0) {
        s->eof = 1;
        return 0;
    }
    s->end += (size_t)n;
    return 1;
}

ssize_t stream_peek(stream *s, const char **p, size_t n, mr_err *e)
{
    if (s->end - s->pos < n && !s->eof) {
        if (stream_make_room(s, n, e) != MR_OK) return -1;
        while (s->end - s->pos < n) {
            int rc = stream_fill_once(s, e);
            if (rc < 0) return -1;
            if (rc == 0) break;
        }
    }
    size_t avail = s->end - s->pos;
    *p = s->buf + s->pos;
    return (ssize_t)(avail < n ? avail : n);
}

void stream_skip(stream *s, size_t n)
{
    size_t avail = s->end - s->pos;
    if (n > avail) n = avail;
    s->pos += n;
    s->consumed += n;
}

ssize_t stream_read(stream *s, void *buf, size_t n, mr_err *e)
{
    size_t avail = s->end - s->pos;
    if (avail == 0) {
        if (s->eof) return 0;
        /* Large reads bypass the buffer: no point copying twice. */
        if (n >= s->cap / 2) {
            ssize_t got = s->ops.read(s->ctx, buf, n, e);
            if (got < 0) return -1;
            if (got == 0) s->eof = 1;
            s->consumed += (uint64_t)got;
            return got;
        }
        s->pos = s->end = 0;
        int rc = stream_fill_once(s, e);
        if (rc <= 0) return rc;
        avail = s->end - s->pos;
    }
    if (n > avail) n = avail;
    memcpy(buf, s->buf + s->pos, n);
    s->pos += n;
    s->consumed += n;
    return (ssize_t)n;
}

int stream_readline(stream *s, const char **line, size_t *len, mr_err *e)
{
    size_t scanned = 0;   /* bytes already known to hold no '\n' */
    for (;;) {
        char *start = s->buf + s->pos;
        size_t avail = s->end - s->pos;
        char *nl = memchr(start + scanned, '\n', avail - scanned);
        if (nl) {
            size_t n = (size_t)(nl - start);
            if (n > s->max_line) break;
            s->pos += n + 1;
            s->consumed += n + 1;
            if (n > 0 && start[n - 1] == '\r') n--;
            *line = start;
            *len = n;
            return 1;
        }
        scanned = avail;
        if (avail > s->max_line) break;
        if (s->eof) {
            if (avail == 0) return 0;
            s->pos += avail;
            s->consumed += avail;
            if (start[avail - 1] == '\r') avail--;
            *line = start;
            *len = avail;
            return 1;
        }
        /* Compact first; grow (doubling) only when the partial line fills the buffer. */
        if (stream_make_room(s, avail < s->cap ? avail + 1 : 2 * s->cap, e) != MR_OK) return -1;
        if (stream_fill_once(s, e) < 0) return -1;
    }
    mr_fail(e, MR_ELIMIT, "%s: line at byte %llu is longer than the %zu-byte limit", s->name,
            (unsigned long long)s->consumed, s->max_line);
    return -1;
}

/* ---- local files ---- */

typedef struct stream_file {
    int fd;
    char *path;
} stream_file;

static ssize_t stream_file_read(void *ctx, void *buf, size_t n, mr_err *e)
{
    stream_file *f = ctx;
    for (;;) {
        ssize_t got = read(f->fd, buf, n);
        if (got >= 0) return got;
        if (errno == EINTR) continue;
        mr_fail(e, MR_EIO, "%s: read failed: %s", f->path, strerror(errno));
        return -1;
    }
}

static void stream_file_close(void *ctx)
{
    stream_file *f = ctx;
    if (f->fd >= 0) close(f->fd);
    free(f->path);
    free(f);
}

static const stream_ops stream_file_ops = {stream_file_read, stream_file_close};

static stream *stream_open_file(const char *path, uint64_t offset, mr_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mr_fail(e, errno == ENOENT ? MR_ENOTFOUND : MR_EIO, "%s: cannot open: %s", path,
                strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        mr_fail(e, MR_EINVAL, "%s: is a directory, not a file", path);
        return NULL;
    }
    if (offset > 0 && lseek(fd, (off_t)offset, SEEK_SET) < 0) {
        mr_fail(e, MR_EIO, "%s: cannot seek to byte %llu: %s", path, (unsigned long long)offset,
                strerror(errno));
        close(fd);
        return NULL;
    }
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    stream_file *f = malloc(sizeof *f);
    char *copy = strdup(path);
    stream *s = NULL;
    if (f && copy) {
        f->fd = fd;
        f->path = copy;
        s = stream_create(&stream_file_ops, f, path);
    }
    if (!s) {
        if (f && copy) stream_file_close(f);
        else {
            close(fd);
            free(f);
            free(copy);
        }
        mr_fail(e, MR_ENOMEM, "%s: out of memory opening", path);
        return NULL;
    }
    return s;
}

stream *stream_open_raw(const char *uri, uint64_t offset, mr_err *e)
{
    MR_CHECK_NULL(uri && *uri, e, MR_EINVAL, "empty input path");
    size_t sl = stream_scheme_len(uri);
    if (sl == 0) return stream_open_file(uri, offset, e);
    if (sl == 4 && strncmp(uri, "file", 4) == 0) return stream_open_file(uri + 7, offset, e);
    for (int i = 0; i < stream_nschemes; i++) {
        if (strlen(stream_schemes[i].scheme) == sl && strncmp(stream_schemes[i].scheme, uri, sl) == 0)
            return stream_schemes[i].open(uri, offset, e);
    }
    mr_fail(e, MR_EINVAL, "%s: no reader registered for scheme '%.*s'", uri, (int)sl, uri);
    return NULL;
}

/* ---- gzip ---- */

typedef struct stream_gz {
    stream *inner;
    z_stream z;
    int in_member;   /* a member has started and not yet ended */
} stream_gz;

static ssize_t stream_gz_read(void *ctx, void *buf, size_t n, mr_err *e)
{
    stream_gz *g = ctx;
    g->z.next_out = buf;
    g->z.avail_out = (uInt)(n > (1u << 30) ? (1u << 30) : n);
    uInt want = g->z.avail_out;
    while (g->z.avail_out == want) {
        const char *p;
        ssize_t avail = stream_peek(g->inner, &p, 1, e);
        if (avail < 0) return -1;
        if (avail == 0) {
            if (g->in_member) {
                mr_fail(e, MR_EFORMAT,
                        "%s: truncated gzip stream (input ends at compressed byte offset %llu)",
                        g->inner->name, (unsigned long long)stream_raw_offset(g->inner));
                return -1;
            }
            break;
        }
        /* peek returned 1; the whole buffered run is usable. */
        size_t have = g->inner->end - g->inner->pos;
        g->z.next_in = (Bytef *)p;
        g->z.avail_in = (uInt)(have > (1u << 30) ? (1u << 30) : have);
        uInt before = g->z.avail_in;
        g->in_member = 1;
        int rc = inflate(&g->z, Z_NO_FLUSH);
        uint64_t at = stream_raw_offset(g->inner);
        stream_skip(g->inner, before - g->z.avail_in);
        if (rc == Z_STREAM_END) {
            /* Multi-member gzip (concatenated .gz files, bgzip): start the next member. */
            g->in_member = 0;
            inflateReset(&g->z);
            continue;
        }
        /* Z_BUF_ERROR: input used up mid-member; the next peek refills or reports eof. */
        if (rc == Z_OK || rc == Z_BUF_ERROR) continue;
        mr_fail(e, MR_EFORMAT, "%s: corrupt gzip data near compressed byte offset %llu: %s",
                g->inner->name, (unsigned long long)(at + (before - g->z.avail_in)),
                g->z.msg ? g->z.msg : "inflate failed");
        return -1;
    }
    return (ssize_t)(want - g->z.avail_out);
}

static void stream_gz_close(void *ctx)
{
    stream_gz *g = ctx;
    inflateEnd(&g->z);
    stream_close(g->inner);
    free(g);
}

static const stream_ops stream_gz_ops = {stream_gz_read, stream_gz_close};

stream *stream_gunzip(stream *inner, mr_err *e)
{
    if (!inner) return NULL;
    stream_gz *g = calloc(1, sizeof *g);
    if (!g) {
        stream_close(inner);
        mr_fail(e, MR_ENOMEM, "out of memory opening gzip stream");
        return NULL;
    }
    g->inner = inner;
    /* 15 + 32: a 32 KiB window with automatic gzip/zlib header detection. */
    if (inflateInit2(&g->z, 15 + 32) != Z_OK) {
        mr_fail(e, MR_ENOMEM, "%s: cannot initialise zlib", inner->name);
        stream_close(inner);
        free(g);
        return NULL;
    }
    stream *s = stream_create(&stream_gz_ops, g, inner->name);
    if (!s) {
        stream_gz_close(g);
        mr_fail(e, MR_ENOMEM, "out of memory opening gzip stream");
        return NULL;
    }
    s->inner = inner;
    return s;
}

static int stream_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

stream *stream_open(const char *uri, mr_err *e)
{
    stream *s = stream_open_raw(uri, 0, e);
    if (!s) return NULL;
    if (stream_ends_with(uri, ".gz") || stream_ends_with(uri, ".GZ")) return stream_gunzip(s, e);
    const char *p;
    ssize_t n = stream_peek(s, &p, 2, e);
    if (n < 0) {
        stream_close(s);
        return NULL;
    }
    if (n == 2 && (unsigned char)p[0] == 0x1f && (unsigned char)p[1] == 0x8b)
        return stream_gunzip(s, e);
    return s;
}

char *stream_slurp(const char *uri, size_t *len, size_t max_bytes, mr_err *e)
{
    stream *s = stream_open(uri, e);
    if (!s) return NULL;
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) goto nomem;
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) goto nomem;
            buf = nb;
        }
        ssize_t got = stream_read(s, buf + n, cap - n, e);
        if (got < 0) goto fail;
        if (got == 0) break;
        n += (size_t)got;
        if (max_bytes && n > max_bytes) {
            mr_fail(e, MR_ELIMIT, "%s: larger than the %zu-byte limit", uri, max_bytes);
            goto fail;
        }
    }
    stream_close(s);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
nomem:
    mr_fail(e, MR_ENOMEM, "%s: out of memory reading", uri);
fail:
    free(buf);
    stream_close(s);
    return NULL;
}
