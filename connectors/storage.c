/* storage: list/stat/remove/copy over local paths, dispatching URIs with a registered
 * scheme to their backend. See storage.h. */
#define _GNU_SOURCE
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink.h"
#include "stream.h"

#define STORAGE_MAX_SCHEMES 16

static struct {
    char scheme[16];
    storage_ops ops;
} storage_schemes[STORAGE_MAX_SCHEMES];
static int storage_nschemes;

void storage_register_scheme(const char *scheme, const storage_ops *ops)
{
    for (int i = 0; i < storage_nschemes; i++) {
        if (strcmp(storage_schemes[i].scheme, scheme) == 0) {
            storage_schemes[i].ops = *ops;
            return;
        }
    }
    if (storage_nschemes == STORAGE_MAX_SCHEMES || strlen(scheme) >= 16) return;
    strcpy(storage_schemes[storage_nschemes].scheme, scheme);
    storage_schemes[storage_nschemes].ops = *ops;
    storage_nschemes++;
}

/* Length of "scheme" in "scheme://rest", else 0. */
static size_t storage_scheme_len(const char *uri)
{
    const char *p = uri;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    if (p == uri || strncmp(p, "://", 3) != 0) return 0;
    return (size_t)(p - uri);
}

int storage_is_remote(const char *uri)
{
    size_t sl = storage_scheme_len(uri);
    return sl > 0 && !(sl == 4 && strncmp(uri, "file", 4) == 0);
}

/* The backend for a remote uri; NULL for local paths. Fails (MR_EINVAL) for an
 * unregistered scheme. */
static const storage_ops *storage_backend(const char *uri, int *unknown, mr_err *e)
{
    *unknown = 0;
    if (!storage_is_remote(uri)) return NULL;
    size_t sl = storage_scheme_len(uri);
    for (int i = 0; i < storage_nschemes; i++) {
        if (strlen(storage_schemes[i].scheme) == sl && strncmp(storage_schemes[i].scheme, uri, sl) == 0)
            return &storage_schemes[i].ops;
    }
    *unknown = 1;
    mr_fail(e, MR_EINVAL, "%s: no storage registered for scheme '%.*s'", uri, (int)sl, uri);
    return NULL;
}

static const char *storage_local_path(const char *uri)
{
    return strncmp(uri, "file://", 7) == 0 ? uri + 7 : uri;
}

char *storage_join(const char *base, const char *name)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/' && !(bl == 1)) bl--;
    while (*name == '/') name++;
    size_t nl = strlen(name);
    char *out = malloc(bl + nl + 2);
    if (!out) return NULL;
    if (bl == 0) {
        memcpy(out, name, nl + 1);
        return out;
    }
    memcpy(out, base, bl);
    size_t k = bl;
    if (base[bl - 1] != '/') out[k++] = '/';
    memcpy(out + k, name, nl + 1);
    return out;
}

/* ---- local list: collect every file below the folder, then sort the full paths ---- */

typedef struct storage_entry {
    char *path;
    uint64_t size;
} storage_entry;

typedef struct storage_walk {
    storage_entry *v;
    size_t n, cap;
} storage_walk;

static mr_code storage_walk_dir(storage_walk *w, const char *dir, mr_err *e)
{
    DIR *d = opendir(dir);
    MR_CHECK(d, e, errno == ENOENT ? MR_ENOTFOUND : MR_EIO, "%s: cannot list folder: %s", dir,
             strerror(errno));
    mr_code rc = MR_OK;
    struct dirent *de;
    while (rc == MR_OK && (de = readdir(d)) != NULL) {
        /* Hidden names are skipped: they include our own in-flight ".NAME.tmp-PID" files. */
        if (de->d_name[0] == '.') continue;
        char *path = storage_join(dir, de->d_name);
        if (!path) {
            rc = mr_fail(e, MR_ENOMEM, "out of memory listing %s", dir);
            break;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = mr_fail(e, MR_EIO, "%s: cannot stat: %s", path, strerror(errno));
            free(path);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = storage_walk_dir(w, path, e);
            free(path);
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (w->n == w->cap) {
            size_t ncap = w->cap ? w->cap * 2 : 64;
            storage_entry *nv = realloc(w->v, ncap * sizeof *nv);
            if (!nv) {
                free(path);
                rc = mr_fail(e, MR_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            w->v = nv;
            w->cap = ncap;
        }
        w->v[w->n].path = path;
        w->v[w->n].size = (uint64_t)st.st_size;
        w->n++;
    }
    closedir(d);
    return rc;
}

static int storage_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const storage_entry *)a)->path, ((const storage_entry *)b)->path);
}

static mr_code storage_local_list(const char *uri,
                                  mr_code (*fn)(const char *uri, uint64_t size, void *ud), void *ud,
                                  mr_err *e)
{
    const char *path = storage_local_path(uri);
    struct stat st;
    MR_CHECK(stat(path, &st) == 0, e, errno == ENOENT ? MR_ENOTFOUND : MR_EIO, "%s: %s", path,
             strerror(errno));
    if (!S_ISDIR(st.st_mode)) return fn(path, (uint64_t)st.st_size, ud);
    storage_walk w = {0};
    mr_code rc = storage_walk_dir(&w, path, e);
    if (rc == MR_OK) qsort(w.v, w.n, sizeof *w.v, storage_entry_cmp);
    for (size_t i = 0; i < w.n && rc == MR_OK; i++) rc = fn(w.v[i].path, w.v[i].size, ud);
    for (size_t i = 0; i < w.n; i++) free(w.v[i].path);
    free(w.v);
    return rc;
}

mr_code storage_list(const char *prefix_uri,
                     mr_code (*fn)(const char *uri, uint64_t size, void *ud), void *ud, mr_err *e)
{
    int unknown;
    const storage_ops *ops = storage_backend(prefix_uri, &unknown, e);
    if (unknown) return MR_EINVAL;
    if (ops) return ops->list(prefix_uri, fn, ud, e);
    return storage_local_list(prefix_uri, fn, ud, e);
}

/* ---- remove (a missing path is not an error, as with S3 DeleteObject) ---- */

static mr_code storage_local_remove(const char *path, mr_err *e)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return MR_OK;
        return mr_fail(e, MR_EIO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        MR_CHECK(d, e, MR_EIO, "%s: cannot open folder: %s", path, strerror(errno));
        mr_code rc = MR_OK;
        struct dirent *de;
        while (rc == MR_OK && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char *child = storage_join(path, de->d_name);
            if (!child) {
                rc = mr_fail(e, MR_ENOMEM, "out of memory");
                break;
            }
            rc = storage_local_remove(child, e);
            free(child);
        }
        closedir(d);
        MR_TRY(rc);
        MR_CHECK(rmdir(path) == 0 || errno == ENOENT, e, MR_EIO, "%s: cannot remove folder: %s",
                 path, strerror(errno));
        return MR_OK;
    }
    MR_CHECK(unlink(path) == 0 || errno == ENOENT, e, MR_EIO, "%s: cannot remove: %s", path,
             strerror(errno));
    return MR_OK;
}

mr_code storage_remove(const char *uri, mr_err *e)
{
    int unknown;
    const storage_ops *ops = storage_backend(uri, &unknown, e);
    if (unknown) return MR_EINVAL;
    if (ops) return ops->remove(uri, e);
    return storage_local_remove(storage_local_path(uri), e);
}

int storage_stat(const char *uri, uint64_t *size, mr_err *e)
{
    int unknown;
    const storage_ops *ops = storage_backend(uri, &unknown, e);
    if (unknown) return -1;
    if (ops) return ops->stat(uri, size, e);
    struct stat st;
    const char *path = storage_local_path(uri);
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        mr_fail(e, MR_EIO, "%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    if (size) *size = (uint64_t)st.st_size;
    return 1;
}

/* ---- copies: through a raw stream and an atomic sink, so the target appears whole ---- */

static mr_code storage_copy(const char *from, const char *to, mr_err *e)
{
    stream *in = stream_open_raw(from, 0, e);
    if (!in) return e ? e->code : MR_EIO;
    sink *out = sink_open(to, 0, e);
    if (!out) {
        stream_close(in);
        return e ? e->code : MR_EIO;
    }
    mr_code rc = MR_OK;
    for (;;) {
        const char *p;
        ssize_t n = stream_peek(in, &p, 1 << 20, e);
        if (n < 0) {
            rc = e ? e->code : MR_EIO;
            break;
        }
        if (n == 0) break;
        rc = sink_write(out, p, (size_t)n, e);
        if (rc != MR_OK) break;
        stream_skip(in, (size_t)n);
    }
    if (rc == MR_OK) rc = sink_commit(out, e);
    sink_free(out);
    stream_close(in);
    return rc;
}

mr_code storage_put_file(const char *local_path, const char *uri, mr_err *e)
{
    int unknown;
    const storage_ops *ops = storage_backend(uri, &unknown, e);
    if (unknown) return MR_EINVAL;
    if (ops) return ops->put_file(local_path, uri, e);
    return storage_copy(local_path, storage_local_path(uri), e);
}

mr_code storage_get_file(const char *uri, const char *local_path, mr_err *e)
{
    int unknown;
    const storage_ops *ops = storage_backend(uri, &unknown, e);
    if (unknown) return MR_EINVAL;
    if (ops) return ops->get_file(uri, local_path, e);
    return storage_copy(storage_local_path(uri), local_path, e);
}
