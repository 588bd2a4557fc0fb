#define _GNU_SOURCE
#include "package.h"

#include <getopt.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/runner.h"
#include "elf.h"
#include "zip.h"

#define PACKAGE_RPATH "$ORIGIN/lib"
#define PACKAGE_MAX_LIBS 256

int lambda_package_is_system_lib(const char *soname)
{
    static const char *const glibc[] = {
        "ld-linux-x86-64.so.", "ld-linux-aarch64.so.", "libc.so.", "libm.so.", "libdl.so.",
        "libpthread.so.", "librt.so.", "libresolv.so.", "libutil.so.", "libanl.so.",
        "libnsl.so.", "libnss_", "libBrokenLocale.so.", "libmvec.so.", "libthread_db.so.",
        "libc_malloc_debug.so.", "libmemusage.so", "libpcprofile.so", "libgcc_s.so.",
        "linux-vdso.so.", "linux-gate.so.",
    };
    for (size_t i = 0; i < sizeof glibc / sizeof glibc[0]; i++)
        if (strncmp(soname, glibc[i], strlen(glibc[i])) == 0) return 1;
    return 0;
}

typedef struct package_libs {
    char *paths[PACKAGE_MAX_LIBS];
    size_t n;
    int overflow;
} package_libs;

static int package_collect(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    package_libs *l = ud;
    const char *path = info->dlpi_name;
    if (!path || path[0] != '/') return 0;   /* the executable itself ("") and the vDSO */
    const char *base = strrchr(path, '/') + 1;
    if (lambda_package_is_system_lib(base)) return 0;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(strrchr(l->paths[i], '/') + 1, base) == 0) return 0;
    if (l->n == PACKAGE_MAX_LIBS) {
        l->overflow = 1;
        return 0;
    }
    l->paths[l->n++] = strdup(path);
    return 0;
}

static void package_libs_free(package_libs *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
}

/* Refuses a binary Lambda could not start: without $ORIGIN/lib the loader would look for
 * our libraries in AL2023's /lib64 (DT_RUNPATH only covers the binary's own dependencies,
 * so DT_RPATH it must be). */
static mr_code package_check_rpath(const char *exe, mr_err *e)
{
    char rpath[1024];
    int runpath = 0;
    int has = lambda_elf_rpath(exe, rpath, sizeof rpath, &runpath, e);
    if (has < 0) return e->code;
    MR_CHECK(has && strstr(rpath, PACKAGE_RPATH), e, MR_EINVAL,
             "%s has no " PACKAGE_RPATH " in its search path (it has '%s'): build it with the "
             "CMake rules in CMakeLists.txt (the luamr target links with "
             "-Wl,--disable-new-dtags,-rpath,'$ORIGIN/lib')", exe, has ? rpath : "");
    MR_CHECK(!runpath, e, MR_EINVAL,
             "%s has " PACKAGE_RPATH " as DT_RUNPATH, which the libraries' own dependencies "
             "do not see; link with --disable-new-dtags for DT_RPATH", exe);
    return MR_OK;
}

/* Names every file that needs a glibc newer than AL2023's, all at once. */
static mr_code package_check_glibc(const char *exe, const package_libs *l, int *newest, mr_err *e)
{
    char bad[1500] = "";
    size_t used = 0;
    *newest = 0;
    for (size_t i = 0; i <= l->n; i++) {
        const char *path = i == 0 ? exe : l->paths[i - 1];
        char ver[64];
        int need = lambda_elf_glibc_needed(path, ver, sizeof ver, e);
        if (need < 0) return e->code;
        if (need > *newest) *newest = need;
        if (need > LAMBDA_GLIBC_MAX && used < sizeof bad - 1)
            used += (size_t)snprintf(bad + used, sizeof bad - used, "%s%s needs %s", used ? "; " : "", path, ver);
    }
    MR_CHECK(used == 0, e, MR_EINVAL,
             "provided.al2023 has glibc 2.34, and %s; build luamr and its libraries on an older "
             "system (or package with --no-glibc-check for another target)", bad);
    return MR_OK;
}

mr_code lambda_package_build(const lambda_package_opts *o, mr_err *e)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    MR_CHECK(n > 0, e, MR_EIO, "cannot find this executable (/proc/self/exe)");
    exe[n] = '\0';
    MR_TRY(package_check_rpath(exe, e));
    package_libs libs = {{0}, 0, 0};
    dl_iterate_phdr(package_collect, &libs);
    mr_code code = libs.overflow ? mr_fail(e, MR_ELIMIT, "more than %d shared libraries", PACKAGE_MAX_LIBS) : MR_OK;
    int newest = 0;
    if (code == MR_OK && !o->skip_glibc_check) code = package_check_glibc(exe, &libs, &newest, e);
    lambda_zip *z = code == MR_OK ? lambda_zip_create(o->output, e) : NULL;
    if (code == MR_OK && !z) code = e->code;
    if (code == MR_OK) code = lambda_zip_add_file(z, "bootstrap", exe, 0755, e);
    for (size_t i = 0; code == MR_OK && i < libs.n; i++) {
        char name[512];
        snprintf(name, sizeof name, "lib/%s", strrchr(libs.paths[i], '/') + 1);
        code = lambda_zip_add_file(z, name, libs.paths[i], 0755, e);
        if (o->verbose && code == MR_OK) printf("  %-28s from %s\n", name, libs.paths[i]);
    }
    if (code == MR_OK) code = lambda_zip_close(z, e);
    if (code == MR_OK) {
        struct stat st;
        stat(o->output, &st);
        printf("%s: bootstrap and %zu libraries, %.1f MB", o->output, libs.n, (double)st.st_size / 1e6);
        if (newest) printf("; newest glibc needed: 2.%d (provided.al2023 has 2.34)", newest % 1000);
        printf("\n");
    }
    lambda_zip_free(z);
    package_libs_free(&libs);
    return code;
}

static int package_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "luamr package: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'luamr package --help')\n");
    return 2;
}

int lambda_package_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"no-glibc-check", no_argument, NULL, 'G'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    lambda_package_opts o = {"function.zip", 0, 0};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:v", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; break;
        case 'G': o.skip_glibc_check = 1; break;
        case 'v': o.verbose = 1; break;
        case 'h':
            printf("usage: luamr package [CONFIG] [-o function.zip] [--no-glibc-check] [-v]\n\n"
                   "Builds the Lambda deployment package (runtime provided.al2023): this binary as\n"
                   "bootstrap and the shared libraries it needs beyond glibc under lib/. CONFIG, when\n"
                   "given, is validated first. Deploy with lambda/template.yaml (docs/lambda.md).\n\n"
                   "  -o, --output FILE   the zip to write (default function.zip)\n"
                   "  --no-glibc-check    package even if a file needs glibc newer than 2.34\n"
                   "  -v, --verbose       list the libraries\n");
            return 0;
        default: return package_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind > 1) return package_usage("%s", "takes at most one CONFIG");
    mr_err e = {0};
    if (optind < argc) {
        if (runner_validate(argv[optind], &e) != MR_OK) {
            fprintf(stderr, "luamr package: %s\n", e.msg);
            return 1;
        }
        printf("%s: ok\n", argv[optind]);
    }
    if (lambda_package_build(&o, &e) != MR_OK) {
        fprintf(stderr, "luamr package: %s\n", e.msg);
        return 1;
    }
    return 0;
}
