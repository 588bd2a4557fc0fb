/* package: `luamr package` — builds the Lambda deployment zip: bootstrap (this very
 * binary, linked with the search path $ORIGIN/lib) and every shared library it loaded
 * beyond glibc under lib/, after checking that nothing needs a glibc symbol newer than
 * provided.al2023's 2.34. Depends on lambda/zip, lambda/elf, engine/runner (to validate
 * the config) and the dynamic loader (dl_iterate_phdr). */
#ifndef LUAMR_LAMBDA_PACKAGE_H
#define LUAMR_LAMBDA_PACKAGE_H

#include <stddef.h>

#include "../engine/mr_error.h"

#define LAMBDA_GLIBC_MAX 2034   /* Amazon Linux 2023: glibc 2.34 */

/* 1 for libraries provided.al2023 has and that must not be shipped: glibc's own (libc,
 * libm, ld-linux, libpthread, ...) and libgcc_s (Debian 12's needs GLIBC_2.35; AL2023's
 * own is there because every C++/Rust function needs it). soname is a basename. */
int lambda_package_is_system_lib(const char *soname);

typedef struct lambda_package_opts {
    const char *output;        /* the zip to write */
    int skip_glibc_check;      /* package anyway (sanitizer builds, other targets) */
    int verbose;               /* list the files */
} lambda_package_opts;

/* Packages the running executable and its libraries. */
mr_code lambda_package_build(const lambda_package_opts *o, mr_err *e);

/* `luamr package [CONFIG] [-o function.zip] [--no-glibc-check]`; argv[0] is "package". */
int lambda_package_main(int argc, char **argv);

#endif
