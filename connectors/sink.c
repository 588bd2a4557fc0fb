/* sink: buffered, atomically published byte destinations. See sink.h.
 * Writes are gathered in a 256 KiB buffer (and deflated there when gzip is on) before
 * they reach the backend, so callers may write a few bytes at a time cheaply. */
#define _GNU_SOURCE
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SINK_BUF_SIZE (256u * 1024)
#define SINK_MAX_SCHEMES 16

struct sink {
    sink_ops ops;
    void *ctx;
    char *name;
    char *buf;            /* pending uncompressed bytes */
    size_t len;
    uint64_t bytes;
    int gzip;
    z_stream z;
    char *zbuf;           /* deflate output */
    int done;             /* committed or aborted: the backend is finished */
};

static struct {
    char scheme[16];
    sink_opener open;
} sink_schemes[SINK_MAX_SCHEMES];
static int sink_nschemes;

void sink_register_scheme(const char *scheme, sink_opener open)
{
    for (int i = 0; i < sink_nschemes; i++) {
        if (strcmp(sink_schemes[i].scheme, scheme) == 0) {
            sink_schemes[i].open = open;
            return;
        }
    }
    if (sink_nschemes == SINK_MAX_SCHEMES || strlen(scheme) >= 16) return;
    strcpy(sink_schemes[sink_nschemes].scheme, scheme);
    sink_schemes[sink_nschemes].open = open;
    sink_nschemes++;
}

sink *sink_create(const sink_ops *ops, void *ctx, const char *name)
{
    sink *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ops = *ops;
    s->ctx = ctx;
    s->name = strdup(name ? name : "?");
    s->buf = malloc(SINK_BUF_SIZE);
    if (!s->name || !s->buf) {
        free(s->name);
        free(s->buf);
        free(s);
        return NULL;
    }
    return s;
}

const char *sink_name(const sink *s) { return s->name; }
uint64_t sink_bytes(const sink *s) { return s->bytes; }

/* Deflates (or passes through) the pending buffer to the backend. */
static mr_code sink_drain(sink *s, int finish, mr_err *e)
{
    if (!s->gzip) {
        if (s->len > 0) MR_TRY(s->ops.write(s->ctx, s->buf, s->len, e));
        s->len = 0;
        return MR_OK;
    }
    s->z.next_in = (Bytef *)s->buf;
    s->z.avail_in = (uInt)s->len;
    for (;;) {
        s->z.next_out = (Bytef *)s->zbuf;
        s->z.avail_out = SINK_BUF_SIZE;
        int rc = deflate(&s->z, finish ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_ERROR)
            return mr_fail(e, MR_EIO, "%s: gzip compression failed", s->name);
        size_t out = SINK_BUF_SIZE - s->z.avail_out;
        if (out > 0) MR_TRY(s->ops.write(s->ctx, s->zbuf, out, e));
        if (finish ? rc == Z_STREAM_END : (s->z.avail_in == 0 && s->z.avail_out != 0)) break;
    }
    s->len = 0;
    return MR_OK;
}

mr_code sink_write(sink *s, const void *buf, size_t n, mr_err *e)
{
    MR_CHECK(!s->done, e, MR_EINVAL, "%s: write after commit or abort", s->name);
    s->bytes += n;
    const char *p = buf;
    while (n > 0) {
        size_t room = SINK_BUF_SIZE - s->len;
        size_t k = n < room ? n : room;
        memcpy(s->buf + s->len, p, k);
        s->len += k;
        p += k;
        n -= k;
        if (s->len == SINK_BUF_SIZE) MR_TRY(sink_drain(s, 0, e));
    }
    return MR_OK;
}

mr_code sink_printf(sink *s, mr_err *e, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    MR_CHECK(n >= 0, e, MR_EINVAL, "%s: bad format string", s->name);
    if ((size_t)n < sizeof small) return sink_write(s, small, (size_t)n, e);
    char *big = malloc((size_t)n + 1);
    MR_CHECK(big, e, MR_ENOMEM, "%s: out of memory formatting", s->name);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    mr_code rc = sink_write(s, big, (size_t)n, e);
    free(big);
    return rc;
}

mr_code sink_commit(sink *s, mr_err *e)
{
    MR_CHECK(!s->done, e, MR_EINVAL, "%s: already committed or aborted", s->name);
    mr_code rc = sink_drain(s, 1, e);
    if (rc == MR_OK) rc = s->ops.commit(s->ctx, e);
    if (rc != MR_OK) {
        sink_abort(s);
        return rc;
    }
    s->done = 1;
    return MR_OK;
}

void sink_abort(sink *s)
{
    if (!s || s->done) return;
    s->done = 1;
    if (s->ops.abort) s->ops.abort(s->ctx);
}

void sink_free(sink *s)
{
    if (!s) return;
    sink_abort(s);
    if (s->ops.free) s->ops.free(s->ctx);
    if (s->gzip) deflateEnd(&s->z);
    free(s->zbuf);
    free(s->buf);
    free(s->name);
    free(s);
}

/* Turns on gzip for the bytes written from now on. */
static mr_code sink_enable_gzip(sink *s, mr_err *e)
{
    s->zbuf = malloc(SINK_BUF_SIZE);
    MR_CHECK(s->zbuf, e, MR_ENOMEM, "%s: out of memory", s->name);
    /* 15 + 16: gzip wrapper rather than zlib; level 6 is gzip(1)'s default trade-off. */
    MR_CHECK(deflateInit2(&s->z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, e,
             MR_ENOMEM, "%s: cannot initialise zlib", s->name);
    s->gzip = 1;
    return MR_OK;
}

/* ---- local files ---- */

typedef struct sink_file {
    int fd;
    char *tmp;
    char *path;
} sink_file;

static mr_code sink_file_write(void *ctx, const void *buf, size_t n, mr_err *e)
{
    sink_file *f = ctx;
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return mr_fail(e, MR_EIO, "%s: write failed: %s", f->path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return MR_OK;
}

static mr_code sink_file_commit(void *ctx, mr_err *e)
{
    sink_file *f = ctx;
    int rc = close(f->fd);
    f->fd = -1;
    MR_CHECK(rc == 0, e, MR_EIO, "%s: close failed: %s", f->path, strerror(errno));
    MR_CHECK(rename(f->tmp, f->path) == 0, e, MR_EIO, "%s: cannot publish (rename from %s): %s",
             f->path, f->tmp, strerror(errno));
    free(f->tmp);
    f->tmp = NULL;
    return MR_OK;
}

static void sink_file_abort(void *ctx)
{
    sink_file *f = ctx;
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->tmp) unlink(f->tmp);
    free(f->tmp);
    f->tmp = NULL;
}

static void sink_file_free(void *ctx)
{
    sink_file *f = ctx;
    sink_file_abort(f);
    free(f->path);
    free(f);
}

static const sink_ops sink_file_ops = {sink_file_write, sink_file_commit, sink_file_abort,
                                       sink_file_free};

/* mkdir -p for the folders above path. */
mr_code sink_make_parents(const char *path, mr_err *e)
{
    char *dir = strdup(path);
    MR_CHECK(dir, e, MR_ENOMEM, "out of memory");
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            mr_fail(e, MR_EIO, "%s: cannot create folder %s: %s", path, dir, strerror(errno));
            free(dir);
            return MR_EIO;
        }
        *p = '/';
    }
    free(dir);
    return MR_OK;
}

static sink *sink_open_file(const char *path, mr_err *e)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    MR_CHECK_NULL(*base, e, MR_EINVAL, "%s: output path names a folder, not a file", path);
    if (sink_make_parents(path, e) != MR_OK) return NULL;

    size_t dirlen = (size_t)(base - path);
    size_t cap = strlen(path) + 64;
    char *tmp = malloc(cap);
    sink_file *f = calloc(1, sizeof *f);
    char *copy = strdup(path);
    if (!tmp || !f || !copy) {
        free(tmp);
        free(f);
        free(copy);
        mr_fail(e, MR_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    /* The hidden temp name lives next to the destination so rename stays on one file
     * system; O_EXCL plus a counter keeps concurrent writers in one process apart. */
    static unsigned sink_seq;
    int fd = -1;
    for (unsigned attempt = 0; attempt < 1000 && fd < 0; attempt++) {
        unsigned seq = attempt == 0 ? 0 : __atomic_add_fetch(&sink_seq, 1, __ATOMIC_RELAXED);
        if (seq == 0)
            snprintf(tmp, cap, "%.*s.%s.tmp-%ld", (int)dirlen, path, base, (long)getpid());
        else
            snprintf(tmp, cap, "%.*s.%s.tmp-%ld-%u", (int)dirlen, path, base, (long)getpid(), seq);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        mr_fail(e, MR_EIO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        free(f);
        free(copy);
        return NULL;
    }
    f->fd = fd;
    f->tmp = tmp;
    f->path = copy;
    sink *s = sink_create(&sink_file_ops, f, path);
    if (!s) {
        sink_file_free(f);
        mr_fail(e, MR_ENOMEM, "%s: out of memory", path);
    }
    return s;
}

sink *sink_open(const char *uri, int gzip, mr_err *e)
{
    MR_CHECK_NULL(uri && *uri, e, MR_EINVAL, "empty output path");
    sink *s = NULL;
    const char *colon = strstr(uri, "://");
    size_t sl = colon ? (size_t)(colon - uri) : 0;
    for (size_t i = 0; i < sl; i++) {
        char c = uri[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.'))
            sl = 0;
    }
    if (sl == 0) {
        s = sink_open_file(uri, e);
    } else if (sl == 4 && strncmp(uri, "file", 4) == 0) {
        s = sink_open_file(uri + 7, e);
    } else {
        sink_opener open = NULL;
        for (int i = 0; i < sink_nschemes && !open; i++)
            if (strlen(sink_schemes[i].scheme) == sl && strncmp(sink_schemes[i].scheme, uri, sl) == 0)
                open = sink_schemes[i].open;
        if (!open) {
            mr_fail(e, MR_EINVAL, "%s: no writer registered for scheme '%.*s'", uri, (int)sl, uri);
            return NULL;
        }
        s = open(uri, e);
    }
    if (!s) return NULL;
    if (gzip && sink_enable_gzip(s, e) != MR_OK) {
        sink_free(s);
        return NULL;
    }
    return s;
}
