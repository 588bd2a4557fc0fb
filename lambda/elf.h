/* elf: the two facts about an ELF file that decide whether it runs on Lambda's
 * provided.al2023 (glibc 2.34) — its run-time search path (DT_RPATH / DT_RUNPATH) and the
 * newest glibc symbol version it needs (its version-needed section, what `objdump -T`
 * shows on undefined symbols). Reads 64-bit little-endian ELF files from disk.
 * Depends on engine/mr_error. */
#ifndef LUAMR_LAMBDA_ELF_H
#define LUAMR_LAMBDA_ELF_H

#include <stddef.h>

#include "../engine/mr_error.h"

/* 1 and the search path in dst when the file has one (*runpath 1 for DT_RUNPATH, 0 for
 * DT_RPATH), 0 without, -1 on error. */
int lambda_elf_rpath(const char *path, char *dst, size_t n, int *runpath, mr_err *e);

/* The newest "GLIBC_2.N" version the file needs, as 2 * 1000 + N (2034 for GLIBC_2.34; 0
 * when it needs none); *symbol_version gets the name ("GLIBC_2.35") when not NULL.
 * GLIBC_ABI_DT_RELR counts as 2.36, the release that introduced it. -1 on error. */
int lambda_elf_glibc_needed(const char *path, char *symbol_version, size_t n, mr_err *e);

#endif
