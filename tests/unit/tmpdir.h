/* tmpdir: a fresh temporary folder per Check test, for the unit tests that write files.
 * A test file calls tmpdir_make("test_x") from its setup fixture and tmpdir_remove() from
 * its teardown, and builds paths under `tmpdir`. Depends on Check and POSIX (mkdtemp,
 * nftw). Header-only: each test program is one translation unit. */
#ifndef LUAMR_TEST_TMPDIR_H
#define LUAMR_TEST_TMPDIR_H

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

static char tmpdir[256];

static inline void tmpdir_make(const char *prefix)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s_XXXXXX", prefix);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static inline int tmpdir_rm_entry(const char *p, const struct stat *sb, int flag,
                                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Removes the folder and everything in it. */
static inline void tmpdir_remove(void)
{
    nftw(tmpdir, tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
