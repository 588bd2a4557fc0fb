/* Unit tests for the packaging units: lambda/zip (read back with Info-ZIP's unzip, an
 * independent implementation), lambda/elf (compared with objdump and with binaries linked
 * here with a known search path), lambda/package's list of system libraries, and
 * lambda/upload's rewriting of the config. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lambda/elf.h"
#include "lambda/package.h"
#include "lambda/upload.h"
#include "lambda/zip.h"

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/luamr-test-package-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static int run(const char *fmt, const char *a, const char *b)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    return system(cmd);
}

/* ---- zip ---- */

START_TEST(test_zip_round_trip)
{
    char path[300], src[300], out[300];
    snprintf(path, sizeof path, "%s/t.zip", dir);
    snprintf(src, sizeof src, "%s/random.bin", dir);
    /* incompressible, compressible and empty entries */
    FILE *f = fopen(src, "wb");
    unsigned seed = 7;
    for (int i = 0; i < 100000; i++) fputc(rand_r(&seed) & 0xff, f);
    fclose(f);
    char text[20000];
    for (size_t i = 0; i < sizeof text - 1; i++) text[i] = "hello lambda\n"[i % 13];
    text[sizeof text - 1] = '\0';
    mr_err e = {0};
    lambda_zip *z = lambda_zip_create(path, &e);
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(lambda_zip_add_file(z, "bootstrap", src, 0755, &e), MR_OK);
    ck_assert_int_eq(lambda_zip_add_data(z, "lib/text.txt", text, strlen(text), 0644, &e), MR_OK);
    ck_assert_int_eq(lambda_zip_add_data(z, "empty", "", 0, 0600, &e), MR_OK);
    ck_assert_int_eq(lambda_zip_add_data(z, "/abs", "x", 1, 0644, &e), MR_EINVAL);
    ck_assert_int_eq(lambda_zip_entries(z), 3);
    ck_assert_int_eq(lambda_zip_close(z, &e), MR_OK);
    lambda_zip_free(z);

    ck_assert_int_eq(run("unzip -tq '%s' >/dev/null%s", path, ""), 0);
    ck_assert_int_eq(run("unzip -p '%s' bootstrap | cmp -s - '%s'", path, src), 0);
    snprintf(out, sizeof out, "%s/text.txt", dir);
    f = fopen(out, "w");
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(run("unzip -p '%s' lib/text.txt | cmp -s - '%s'", path, out), 0);
    ck_assert_int_eq(run("test -z \"$(unzip -p '%s' empty)\"%s", path, ""), 0);
    /* the permissions Lambda needs: bootstrap executable */
    ck_assert_int_eq(run("unzip -Z '%s' | grep -q '^-rwxr-xr-x .* bootstrap$'%s", path, ""), 0);
    ck_assert_int_eq(run("unzip -Z '%s' | grep -q '^-rw-r--r-- .* lib/text.txt$'%s", path, ""), 0);
    ck_assert_int_eq(run("unzip -Z '%s' | grep -q '^-rw------- .* empty$'%s", path, ""), 0);
    /* the same input gives the same bytes */
    char again[300];
    snprintf(again, sizeof again, "%s/again.zip", dir);
    z = lambda_zip_create(again, &e);
    lambda_zip_add_file(z, "bootstrap", src, 0755, &e);
    lambda_zip_add_data(z, "lib/text.txt", text, strlen(text), 0644, &e);
    lambda_zip_add_data(z, "empty", "", 0, 0600, &e);
    ck_assert_int_eq(lambda_zip_close(z, &e), MR_OK);
    lambda_zip_free(z);
    ck_assert_int_eq(run("cmp -s '%s' '%s'", path, again), 0);
}
END_TEST

START_TEST(test_zip_unclosed_leaves_nothing)
{
    char path[300], tmp[310];
    snprintf(path, sizeof path, "%s/half.zip", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    mr_err e = {0};
    lambda_zip *z = lambda_zip_create(path, &e);
    lambda_zip_add_data(z, "a", "abc", 3, 0644, &e);
    ck_assert_int_eq(access(tmp, F_OK), 0);
    lambda_zip_free(z);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    ck_assert_int_ne(access(path, F_OK), 0);
    lambda_zip_free(NULL);
    z = lambda_zip_create(path, &e);
    ck_assert_int_eq(lambda_zip_add_file(z, "x", "/nonexistent", 0644, &e), MR_EIO);
    ck_assert(strstr(e.msg, "/nonexistent") != NULL);
    lambda_zip_free(z);
    ck_assert_int_ne(access(tmp, F_OK), 0);
}
END_TEST

/* ---- elf ---- */

/* The newest GLIBC_2.N objdump -T shows on undefined symbols, as 2000 + N. */
static int objdump_glibc(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "objdump -T '%s' | grep -F '*UND*' | grep -o 'GLIBC_2\\.[0-9]*' | sort -t. -k2,2n | tail -1",
             path);
    FILE *p = popen(cmd, "r");
    int minor = -1;
    if (fscanf(p, "GLIBC_2.%d", &minor) != 1) minor = -1;
    pclose(p);
    return minor < 0 ? 0 : 2000 + minor;
}

START_TEST(test_elf_glibc_matches_objdump)
{
    static const char *const libs[] = {
        "/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libcurl.so.4",
        "/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libcrypto.so.3",
        "/lib/x86_64-linux-gnu/libluajit-5.1.so.2",
    };
    int checked = 0;
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        if (access(libs[i], R_OK) != 0) continue;
        mr_err e = {0};
        char ver[64];
        int got = lambda_elf_glibc_needed(libs[i], ver, sizeof ver, &e);
        ck_assert_msg(got == objdump_glibc(libs[i]), "%s: %d vs objdump %d", libs[i], got, objdump_glibc(libs[i]));
        if (got) {
            char want[32];
            snprintf(want, sizeof want, "GLIBC_2.%d", got - 2000);
            ck_assert_str_eq(ver, want);
        }
        checked++;
    }
    ck_assert_int_gt(checked, 0);
    mr_err e = {0};
    ck_assert_int_eq(lambda_elf_glibc_needed("/etc/hostname", NULL, 0, &e), -1);
    ck_assert(strstr(e.msg, "/etc/hostname") != NULL);
}
END_TEST

START_TEST(test_elf_rpath_kinds)
{
    char src[300], rpath_bin[300], runpath_bin[300], none_bin[300];
    snprintf(src, sizeof src, "%s/m.c", dir);
    snprintf(rpath_bin, sizeof rpath_bin, "%s/rpath", dir);
    snprintf(runpath_bin, sizeof runpath_bin, "%s/runpath", dir);
    snprintf(none_bin, sizeof none_bin, "%s/none", dir);
    FILE *f = fopen(src, "w");
    fputs("int main(void) { return 0; }\n", f);
    fclose(f);
    ck_assert_int_eq(run("cc -o '%s' '%s' -Wl,--disable-new-dtags,-rpath,'$ORIGIN/lib'", rpath_bin, src), 0);
    ck_assert_int_eq(run("cc -o '%s' '%s' -Wl,--enable-new-dtags,-rpath,/opt/x", runpath_bin, src), 0);
    ck_assert_int_eq(run("cc -o '%s' '%s'", none_bin, src), 0);
    char got[256];
    int runpath = -1;
    mr_err e = {0};
    ck_assert_int_eq(lambda_elf_rpath(rpath_bin, got, sizeof got, &runpath, &e), 1);
    ck_assert_str_eq(got, "$ORIGIN/lib");
    ck_assert_int_eq(runpath, 0);
    ck_assert_int_eq(lambda_elf_rpath(runpath_bin, got, sizeof got, &runpath, &e), 1);
    ck_assert_str_eq(got, "/opt/x");
    ck_assert_int_eq(runpath, 1);
    ck_assert_int_eq(lambda_elf_rpath(none_bin, got, sizeof got, &runpath, &e), 0);
    ck_assert_int_eq(lambda_elf_rpath(src, got, sizeof got, &runpath, &e), -1);
}
END_TEST

/* ---- what is shipped ---- */

START_TEST(test_system_libs)
{
    static const char *const system_libs[] = {"libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2",
                                              "libpthread.so.0", "libresolv.so.2", "libgcc_s.so.1",
                                              "libnss_dns.so.2", "linux-vdso.so.1"};
    static const char *const shipped[] = {"libcurl.so.4", "libluajit-5.1.so.2", "libcrypto.so.3",
                                          "libcjson.so.1", "libz.so.1", "libcom_err.so.2",
                                          "libmagic.so.1", "libcrypt.so.1"};
    for (size_t i = 0; i < sizeof system_libs / sizeof system_libs[0]; i++)
        ck_assert_msg(lambda_package_is_system_lib(system_libs[i]), "%s", system_libs[i]);
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++)
        ck_assert_msg(!lambda_package_is_system_lib(shipped[i]), "%s", shipped[i]);
}
END_TEST

/* ---- upload ---- */

START_TEST(test_upload_rewrite)
{
    const char *cfg = "{\"name\":\"j\",\"script\":\"../scripts/job.lua\","
                      "\"readConnector\":{\"manifest\":[\"s3://b/in/\",\"more/\"]},"
                      "\"writeConnector\":{\"location\":\"s3://b/out/r.csv\"},"
                      "\"errorConnector\":{\"location\":\"errors\"}}";
    char *notes = NULL;
    mr_err e = {0};
    char *out = lambda_upload_rewrite(cfg, "job.json", "job.lua", "s3://b/jobs/j", &notes, &e);
    ck_assert_msg(out != NULL, "%s", e.msg);
    cJSON *o = cJSON_Parse(out);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "script")->valuestring, "job.lua");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "name")->valuestring, "j");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "readConnector"), "manifest"), 1)->valuestring,
                     "more/");
    cJSON_Delete(o);
    ck_assert_ptr_nonnull(notes);
    ck_assert_msg(strstr(notes, "readConnector.manifest[1] 'more/' -> s3://b/jobs/j/more/"), "%s", notes);
    ck_assert_msg(strstr(notes, "errorConnector.location 'errors' -> s3://b/jobs/j/errors"), "%s", notes);
    ck_assert_msg(!strstr(notes, "s3://b/in/"), "%s", notes);
    free(out);
    free(notes);

    const char *bad = "{\"name\":\"j\",\"script\":\"a.lua\",\"writeConnector\":{\"location\":\"/home/me/out.csv\"}}";
    ck_assert_ptr_null(lambda_upload_rewrite(bad, "job.json", "a.lua", "s3://b/p", &notes, &e));
    ck_assert_msg(strstr(e.msg, "writeConnector.location") && strstr(e.msg, "/home/me/out.csv"), "%s", e.msg);
    ck_assert_ptr_null(notes);
    ck_assert_ptr_null(lambda_upload_rewrite("[1,2]", "job.json", "a.lua", "s3://b/p", &notes, &e));
    ck_assert_int_eq(e.code, MR_EFORMAT);
}
END_TEST

static Suite *lambda_package_suite(void)
{
    Suite *s = suite_create("lambda_package");
    TCase *tc = tcase_create("zip");
    tcase_add_checked_fixture(tc, make_dir, remove_dir);
    tcase_add_test(tc, test_zip_round_trip);
    tcase_add_test(tc, test_zip_unclosed_leaves_nothing);
    suite_add_tcase(s, tc);
    tc = tcase_create("elf");
    tcase_add_checked_fixture(tc, make_dir, remove_dir);
    tcase_add_test(tc, test_elf_glibc_matches_objdump);
    tcase_add_test(tc, test_elf_rpath_kinds);
    suite_add_tcase(s, tc);
    tc = tcase_create("contents");
    tcase_add_test(tc, test_system_libs);
    tcase_add_test(tc, test_upload_rewrite);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lambda_package_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
