#include "zip.h"

#include <errno.h>
#include <libdeflate.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* 2020-01-01 00:00 in MS-DOS format: reproducible archives. */
#define ZIP_DOS_TIME 0
#define ZIP_DOS_DATE ((2020 - 1980) << 9 | 1 << 5 | 1)
#define ZIP_MAX_ENTRIES 4096

typedef struct zip_entry {
    char *name;
    uint32_t crc, csize, usize, offset, mode;
    uint16_t method;
} zip_entry;

struct lambda_zip {
    FILE *f;
    char *path, *tmp;
    zip_entry *entries;
    size_t n, cap;
    uint64_t offset;
    struct libdeflate_compressor *comp;
    int closed;
};

static void zip_u16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void zip_u32(unsigned char *p, uint32_t v)
{
    zip_u16(p, v & 0xffff);
    zip_u16(p + 2, v >> 16);
}

lambda_zip *lambda_zip_create(const char *path, mr_err *e)
{
    lambda_zip *z = calloc(1, sizeof *z);
    MR_CHECK_NULL(z, e, MR_ENOMEM, "out of memory");
    z->path = strdup(path);
    z->tmp = malloc(strlen(path) + 5);
    z->comp = libdeflate_alloc_compressor(9);
    if (!z->path || !z->tmp || !z->comp) {
        lambda_zip_free(z);
        mr_fail(e, MR_ENOMEM, "out of memory");
        return NULL;
    }
    sprintf(z->tmp, "%s.tmp", path);
    z->f = fopen(z->tmp, "wb");
    if (!z->f) {
        mr_fail(e, MR_EIO, "%s: cannot create: %s", z->tmp, strerror(errno));
        lambda_zip_free(z);
        return NULL;
    }
    return z;
}

static mr_code zip_write(lambda_zip *z, const void *p, size_t n, mr_err *e)
{
    MR_CHECK(fwrite(p, 1, n, z->f) == n, e, MR_EIO, "%s: write failed: %s", z->tmp, strerror(errno));
    z->offset += n;
    return MR_OK;
}

mr_code lambda_zip_add_data(lambda_zip *z, const char *name, const void *data, size_t len,
                            unsigned mode, mr_err *e)
{
    size_t nl = strlen(name);
    MR_CHECK(nl > 0 && nl < 0xffff && name[0] != '/', e, MR_EINVAL, "zip entry name '%s' is not relative", name);
    MR_CHECK(len < 0xffffffffu && z->offset < 0xf0000000u, e, MR_ELIMIT,
             "%s: zip entry %s makes the archive larger than 4 GB", z->path, name);
    MR_CHECK(z->n < ZIP_MAX_ENTRIES, e, MR_ELIMIT, "%s: more than %d entries", z->path, ZIP_MAX_ENTRIES);
    if (z->n == z->cap) {
        size_t cap = z->cap ? z->cap * 2 : 32;
        zip_entry *p = realloc(z->entries, cap * sizeof *p);
        MR_CHECK(p, e, MR_ENOMEM, "out of memory");
        z->entries = p;
        z->cap = cap;
    }
    size_t bound = libdeflate_deflate_compress_bound(z->comp, len);
    unsigned char *out = malloc(bound ? bound : 1);
    MR_CHECK(out, e, MR_ENOMEM, "out of memory compressing %s", name);
    size_t clen = len ? libdeflate_deflate_compress(z->comp, data, len, out, bound) : 0;
    zip_entry *en = &z->entries[z->n];
    en->name = strdup(name);
    en->crc = (uint32_t)libdeflate_crc32(0, data, len);
    en->usize = (uint32_t)len;
    en->method = clen > 0 && clen < len ? 8 : 0;   /* stored when deflate does not help */
    en->csize = en->method ? (uint32_t)clen : (uint32_t)len;
    en->offset = (uint32_t)z->offset;
    en->mode = mode;
    if (!en->name) {
        free(out);
        return mr_fail(e, MR_ENOMEM, "out of memory");
    }
    unsigned char h[30];
    zip_u32(h, 0x04034b50);
    zip_u16(h + 4, 20);
    zip_u16(h + 6, 0);
    zip_u16(h + 8, en->method);
    zip_u16(h + 10, ZIP_DOS_TIME);
    zip_u16(h + 12, ZIP_DOS_DATE);
    zip_u32(h + 14, en->crc);
    zip_u32(h + 18, en->csize);
    zip_u32(h + 22, en->usize);
    zip_u16(h + 26, (unsigned)nl);
    zip_u16(h + 28, 0);
    z->n++;
    mr_code code = zip_write(z, h, sizeof h, e);
    if (code == MR_OK) code = zip_write(z, name, nl, e);
    if (code == MR_OK) code = zip_write(z, en->method ? out : data, en->csize, e);
    free(out);
    return code;
}

mr_code lambda_zip_add_file(lambda_zip *z, const char *name, const char *src_path, unsigned mode,
                            mr_err *e)
{
    FILE *f = fopen(src_path, "rb");
    MR_CHECK(f, e, MR_EIO, "%s: cannot open: %s", src_path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return mr_fail(e, MR_EIO, "%s: not a regular file", src_path);
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len ? len : 1);
    size_t got = buf ? fread(buf, 1, len, f) : 0;
    fclose(f);
    if (!buf || got != len) {
        free(buf);
        return mr_fail(e, buf ? MR_EIO : MR_ENOMEM, "%s: cannot read", src_path);
    }
    mr_code code = lambda_zip_add_data(z, name, buf, len, mode, e);
    free(buf);
    return code;
}

mr_code lambda_zip_close(lambda_zip *z, mr_err *e)
{
    uint64_t start = z->offset;
    for (size_t i = 0; i < z->n; i++) {
        zip_entry *en = &z->entries[i];
        size_t nl = strlen(en->name);
        unsigned char h[46];
        zip_u32(h, 0x02014b50);
        zip_u16(h + 4, 3 << 8 | 20);    /* made by Unix: the external attributes hold the mode */
        zip_u16(h + 6, 20);
        zip_u16(h + 8, 0);
        zip_u16(h + 10, en->method);
        zip_u16(h + 12, ZIP_DOS_TIME);
        zip_u16(h + 14, ZIP_DOS_DATE);
        zip_u32(h + 16, en->crc);
        zip_u32(h + 20, en->csize);
        zip_u32(h + 24, en->usize);
        zip_u16(h + 28, (unsigned)nl);
        zip_u16(h + 30, 0);
        zip_u16(h + 32, 0);
        zip_u16(h + 34, 0);
        zip_u16(h + 36, 0);
        zip_u32(h + 38, (uint32_t)(S_IFREG | (en->mode & 07777)) << 16);
        zip_u32(h + 42, en->offset);
        MR_TRY(zip_write(z, h, sizeof h, e));
        MR_TRY(zip_write(z, en->name, nl, e));
    }
    unsigned char end[22];
    zip_u32(end, 0x06054b50);
    zip_u16(end + 4, 0);
    zip_u16(end + 6, 0);
    zip_u16(end + 8, (unsigned)z->n);
    zip_u16(end + 10, (unsigned)z->n);
    zip_u32(end + 12, (uint32_t)(z->offset - start));
    zip_u32(end + 16, (uint32_t)start);
    zip_u16(end + 20, 0);
    MR_TRY(zip_write(z, end, sizeof end, e));
    int rc = fclose(z->f);
    z->f = NULL;
    MR_CHECK(rc == 0, e, MR_EIO, "%s: %s", z->tmp, strerror(errno));
    MR_CHECK(rename(z->tmp, z->path) == 0, e, MR_EIO, "rename %s to %s: %s", z->tmp, z->path, strerror(errno));
    z->closed = 1;
    return MR_OK;
}

size_t lambda_zip_entries(const lambda_zip *z) { return z->n; }

void lambda_zip_free(lambda_zip *z)
{
    if (!z) return;
    if (z->f) fclose(z->f);
    if (!z->closed && z->tmp) remove(z->tmp);
    for (size_t i = 0; i < z->n; i++) free(z->entries[i].name);
    free(z->entries);
    if (z->comp) libdeflate_free_compressor(z->comp);
    free(z->path);
    free(z->tmp);
    free(z);
}
