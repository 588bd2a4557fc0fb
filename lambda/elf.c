#include "elf.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct elf_file {
    const unsigned char *p;
    size_t size;
    const Elf64_Ehdr *eh;
    const Elf64_Shdr *sh;
} elf_file;

static int elf_open(const char *path, elf_file *f, mr_err *e)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mr_fail(e, MR_EIO, "%s: cannot open: %s", path, strerror(errno)), -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return mr_fail(e, MR_EFORMAT, "%s: not an ELF file (too small)", path), -1;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return mr_fail(e, MR_EIO, "%s: mmap: %s", path, strerror(errno)), -1;
    f->p = m;
    f->size = (size_t)st.st_size;
    f->eh = m;
    const Elf64_Ehdr *h = f->eh;
    int ok = memcmp(h->e_ident, ELFMAG, SELFMAG) == 0 && h->e_ident[EI_CLASS] == ELFCLASS64 &&
             h->e_ident[EI_DATA] == ELFDATA2LSB && h->e_shentsize == sizeof(Elf64_Shdr) &&
             h->e_shoff < f->size && h->e_shnum <= (f->size - h->e_shoff) / sizeof(Elf64_Shdr);
    if (!ok) {
        munmap(m, f->size);
        return mr_fail(e, MR_EFORMAT, "%s: not a 64-bit little-endian ELF file with sections", path), -1;
    }
    f->sh = (const Elf64_Shdr *)(f->p + h->e_shoff);
    return 0;
}

static void elf_close(elf_file *f)
{
    if (f->p) munmap((void *)f->p, f->size);
}

/* The section's bytes, NULL when it lies outside the file. */
static const unsigned char *elf_section(const elf_file *f, const Elf64_Shdr *s)
{
    if (s->sh_type == SHT_NOBITS || s->sh_offset > f->size || s->sh_size > f->size - s->sh_offset) return NULL;
    return f->p + s->sh_offset;
}

static const char *elf_str(const elf_file *f, unsigned link, size_t off)
{
    if (link >= f->eh->e_shnum) return NULL;
    const Elf64_Shdr *s = &f->sh[link];
    const unsigned char *p = elf_section(f, s);
    if (!p || off >= s->sh_size || !memchr(p + off, 0, s->sh_size - off)) return NULL;
    return (const char *)p + off;
}

int lambda_elf_rpath(const char *path, char *dst, size_t n, int *runpath, mr_err *e)
{
    elf_file f;
    if (elf_open(path, &f, e) != 0) return -1;
    int found = 0;
    for (unsigned i = 0; i < f.eh->e_shnum && !found; i++) {
        const Elf64_Shdr *s = &f.sh[i];
        const unsigned char *p = s->sh_type == SHT_DYNAMIC ? elf_section(&f, s) : NULL;
        if (!p) continue;
        for (size_t k = 0; k + sizeof(Elf64_Dyn) <= s->sh_size; k += sizeof(Elf64_Dyn)) {
            const Elf64_Dyn *d = (const Elf64_Dyn *)(p + k);
            if (d->d_tag == DT_NULL) break;
            if (d->d_tag != DT_RPATH && d->d_tag != DT_RUNPATH) continue;
            const char *v = elf_str(&f, s->sh_link, d->d_un.d_val);
            if (!v) continue;
            snprintf(dst, n, "%s", v);
            if (runpath) *runpath = d->d_tag == DT_RUNPATH;
            found = 1;
            break;
        }
    }
    elf_close(&f);
    return found;
}

static int elf_glibc_rank(const char *name)
{
    if (strcmp(name, "GLIBC_ABI_DT_RELR") == 0) return 2036;
    int major, minor;
    if (sscanf(name, "GLIBC_%d.%d", &major, &minor) != 2) return 0;
    return major * 1000 + minor;
}

int lambda_elf_glibc_needed(const char *path, char *symbol_version, size_t n, mr_err *e)
{
    elf_file f;
    if (elf_open(path, &f, e) != 0) return -1;
    int best = 0;
    if (symbol_version && n) symbol_version[0] = '\0';
    for (unsigned i = 0; i < f.eh->e_shnum; i++) {
        const Elf64_Shdr *s = &f.sh[i];
        const unsigned char *p = s->sh_type == SHT_GNU_verneed ? elf_section(&f, s) : NULL;
        if (!p) continue;
        size_t off = 0;
        for (;;) {   /* a chain of Verneed records, each with a chain of Vernaux */
            if (off > s->sh_size || s->sh_size - off < sizeof(Elf64_Verneed)) break;
            const Elf64_Verneed *vn = (const Elf64_Verneed *)(p + off);
            size_t aoff = off + vn->vn_aux;
            for (unsigned a = 0; a < vn->vn_cnt; a++) {
                if (aoff > s->sh_size || s->sh_size - aoff < sizeof(Elf64_Vernaux)) break;
                const Elf64_Vernaux *va = (const Elf64_Vernaux *)(p + aoff);
                const char *name = elf_str(&f, s->sh_link, va->vna_name);
                int rank = name ? elf_glibc_rank(name) : 0;
                if (rank > best) {
                    best = rank;
                    if (symbol_version) snprintf(symbol_version, n, "%s", name);
                }
                if (!va->vna_next) break;
                aoff += va->vna_next;
            }
            if (!vn->vn_next) break;
            off += vn->vn_next;
        }
    }
    elf_close(&f);
    return best;
}
