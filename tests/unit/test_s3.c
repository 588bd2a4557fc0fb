/* Tests for connectors/s3 (and awsconf) against a real S3 implementation: the local test
 * server (tests/s3/server.js, @20minutes/s3rver, which verifies SigV4) and the fault proxy
 * in front of it (tests/s3/faultproxy.js). Both are started once by main(); they need
 * `npm ci --prefix tests/s3`. The AWS CLI interop case uses /usr/bin/aws when present. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "connectors/awsconf.h"
#include "connectors/s3.h"
#include "connectors/sink.h"
#include "connectors/storage.h"
#include "connectors/stream.h"

#define BUCKET "luamr-test"

static char server_dir[256];
static int server_port, proxy_port;
static pid_t server_pid, proxy_pid;
static FILE *server_stdin, *proxy_stdin;

/* ---- helpers ---- */

static mr_code count_fn(const char *uri, uint64_t size, void *ud);
static mr_code count_all(const char *uri, uint64_t size, void *ud);
static pid_t spawn_node(const char *const argv[], FILE **stdin_w, int *port);
static void stop_node(pid_t pid, FILE *stdin_w);

/* Deterministic bytes: the same (seed, offset) always gives the same byte, so data can be
 * checked at any offset without keeping a copy. */
static unsigned char gen_byte(uint64_t seed, uint64_t i)
{
    uint64_t x = (i / 8 + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (unsigned char)(x >> (8 * (i % 8)));
}

static char *gen_data(uint64_t seed, size_t n)
{
    char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = (char)gen_byte(seed, i);
    return p;
}

static void use_endpoint(int port)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    setenv("AWS_ENDPOINT_URL", url, 1);
    s3_reload_config();
}

/* Reads a stream from offset with reads of `chunk` bytes, up to max bytes, then closes it
 * (possibly mid-transfer). */
static char *read_some(const char *uri, uint64_t offset, size_t chunk, size_t max, size_t *len,
                       mr_err *e)
{
    stream *s = stream_open_raw(uri, offset, e);
    if (!s) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    while (n < max) {
        if (n + chunk > cap) {
            while (n + chunk > cap) cap *= 2;
            out = realloc(out, cap);
        }
        ssize_t k = stream_read(s, out + n, chunk < max - n ? chunk : max - n, e);
        if (k < 0) { free(out); stream_close(s); return NULL; }
        if (k == 0) break;
        n += (size_t)k;
    }
    stream_close(s);
    *len = n;
    return out;
}

/* Reads a whole stream with reads of `chunk` bytes. */
static char *read_all(const char *uri, uint64_t offset, size_t chunk, size_t *len, mr_err *e)
{
    return read_some(uri, offset, chunk, SIZE_MAX, len, e);
}

static int uploads_left(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/._S3rver_uploads", server_dir, BUCKET);
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    strncat(ud, p, 255 - strlen(ud) < size * n ? 255 - strlen(ud) : size * n);
    return size * n;
}

/* One counter of the fault proxy at port ("cuts", "gets", ...). */
static long proxy_stat(int port, const char *name)
{
    char url[96], body[256] = "", key[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/__faultproxy/stats", port);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *v = strstr(body, key);
    ck_assert_msg(v, "no %s in %s", name, body);
    return strtol(v + strlen(key), NULL, 10);
}

static void proxy_stats(long *slowdowns, long *cuts)
{
    *slowdowns = proxy_stat(proxy_port, "slowdowns");
    *cuts = proxy_stat(proxy_port, "cuts");
}

/* ---- objects ---- */

START_TEST(test_put_get_stat_odd_keys)
{
    static const char *keys[] = {"plain.txt", "dir/with space.txt", "a+b=c;d.txt",
                                 "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt", "tilde~%25(x)!.txt",
                                 "deep/er/and/deeper/key"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char uri[256];
        snprintf(uri, sizeof uri, "s3://" BUCKET "/odd/%s", keys[i]);
        size_t n = 1000 + i * 777;
        char *data = gen_data(i + 1, n);
        mr_err e = {0};
        ck_assert_msg(s3_put_object(uri, data, n, &e) == MR_OK, "%s: %s", uri, e.msg);
        uint64_t size = 0;
        ck_assert_int_eq(s3_stat(uri, &size, &e), 1);
        ck_assert_uint_eq(size, n);
        char *got = NULL;
        size_t len = 0;
        ck_assert_msg(s3_get_object(uri, &got, &len, 1 << 20, &e) == MR_OK, "%s", e.msg);
        ck_assert_uint_eq(len, n);
        ck_assert(memcmp(got, data, n) == 0);
        free(got);
        free(data);
    }
    /* '&' and '<' survive a round trip (s3rver escapes them twice in listings, unlike S3,
     * so they stay out of the listed folder). */
    mr_err e = {0};
    const char *amp = "s3://" BUCKET "/amp/x&y<z>.txt";
    ck_assert_int_eq(s3_put_object(amp, "amp", 3, &e), MR_OK);
    char *got = NULL;
    size_t len = 0;
    ck_assert_int_eq(s3_get_object(amp, &got, &len, 100, &e), MR_OK);
    ck_assert_str_eq(got, "amp");
    free(got);
    /* The listing gives the keys back exactly, entities decoded. */
    size_t count = 0;
    ck_assert_int_eq(s3_list("s3://" BUCKET "/odd", count_fn, &count, &e), MR_OK);
    ck_assert_uint_eq(count, sizeof keys / sizeof keys[0]);
}
END_TEST

static mr_code count_fn(const char *uri, uint64_t size, void *ud)
{
    static const char *want[] = {"/odd/plain.txt", "/odd/dir/with space.txt", "/odd/a+b=c;d.txt",
                                 "/odd/caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt",
                                 "/odd/tilde~%25(x)!.txt", "/odd/deep/er/and/deeper/key"};
    int hit = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char full[256];
        snprintf(full, sizeof full, "s3://" BUCKET "%s", want[i]);
        if (strcmp(uri, full) == 0) hit = 1;
    }
    ck_assert_msg(hit, "unexpected key in listing: %s", uri);
    ck_assert_uint_gt(size, 0);
    (*(size_t *)ud)++;
    return MR_OK;
}

START_TEST(test_stream_get_and_ranges)
{
    const char *uri = "s3://" BUCKET "/stream/three-mib.bin";
    size_t n = 3 * 1024 * 1024 + 12345;
    char *data = gen_data(42, n);
    mr_err e = {0};
    ck_assert_msg(s3_put_object(uri, data, n, &e) == MR_OK, "%s", e.msg);

    /* Through the registered scheme, with odd read sizes. */
    size_t chunks[] = {1, 4093, 65536, 3 << 20};
    for (size_t c = 0; c < 4; c++) {
        size_t len = 0;
        uint64_t off = c == 0 ? n - 5000 : c * 1000003;   /* 1-byte reads only near the end */
        char *got = read_all(uri, off, chunks[c], &len, &e);
        ck_assert_msg(got, "%s", e.msg);
        ck_assert_uint_eq(len, n - off);
        ck_assert(memcmp(got, data + off, len) == 0);
        free(got);
    }
    /* Offset at the end reads nothing. */
    size_t len = 1;
    char *got = read_all(uri, n, 4096, &len, &e);
    ck_assert_msg(got, "%s", e.msg);
    ck_assert_uint_eq(len, 0);
    free(got);

    ck_assert_int_eq(s3_get_range(uri, 1000, 5000, &got, &len, &e), MR_OK);
    ck_assert_uint_eq(len, 5000);
    ck_assert(memcmp(got, data + 1000, 5000) == 0);
    free(got);
    ck_assert_int_eq(s3_get_range(uri, n - 10, 100, &got, &len, &e), MR_OK);
    ck_assert_uint_eq(len, 10);
    ck_assert(memcmp(got, data + n - 10, 10) == 0);
    free(got);

    /* stream_open reads an empty object as empty. */
    ck_assert_int_eq(s3_put_object("s3://" BUCKET "/stream/empty", "", 0, &e), MR_OK);
    got = read_all("s3://" BUCKET "/stream/empty", 0, 100, &len, &e);
    ck_assert_msg(got, "%s", e.msg);
    ck_assert_uint_eq(len, 0);
    free(got);
    free(data);
}
END_TEST

START_TEST(test_delete)
{
    const char *uri = "s3://" BUCKET "/del/me.txt";
    mr_err e = {0};
    ck_assert_int_eq(s3_put_object(uri, "x", 1, &e), MR_OK);
    ck_assert_int_eq(storage_stat(uri, NULL, &e), 1);
    ck_assert_int_eq(storage_remove(uri, &e), MR_OK);
    ck_assert_int_eq(s3_stat(uri, NULL, &e), 0);
    ck_assert_int_eq(s3_delete(uri, &e), MR_OK);   /* already gone: not an error */
}
END_TEST

START_TEST(test_files)
{
    char dir[] = "/tmp/luamr-s3-files-XXXXXX", src[300], dst[300];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/in.bin", dir);
    snprintf(dst, sizeof dst, "%s/out.bin", dir);
    size_t n = 2 * 1024 * 1024 + 3;
    char *data = gen_data(7, n);
    FILE *f = fopen(src, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    mr_err e = {0};
    ck_assert_msg(storage_put_file(src, "s3://" BUCKET "/files/in.bin", &e) == MR_OK, "%s", e.msg);
    ck_assert_msg(storage_get_file("s3://" BUCKET "/files/in.bin", dst, &e) == MR_OK, "%s", e.msg);
    f = fopen(dst, "rb");
    char *back = malloc(n + 1);
    ck_assert_uint_eq(fread(back, 1, n + 1, f), n);
    fclose(f);
    ck_assert(memcmp(back, data, n) == 0);
    /* A failed download leaves no file behind. */
    ck_assert_int_ne(storage_get_file("s3://" BUCKET "/files/missing", dst, &e), MR_OK);
    unlink(src);
    unlink(dst);
    rmdir(dir);
    free(back);
    free(data);
}
END_TEST

/* luamr forks workers after the driver has talked to S3: parent and child must each get
 * their own connections, not share the inherited keep-alive socket. */
START_TEST(test_fork_keeps_connections_apart)
{
    mr_err e = {0};
    ck_assert_int_eq(s3_put_object("s3://" BUCKET "/fork/p", "parent", 6, &e), MR_OK);
    ck_assert_int_eq(s3_put_object("s3://" BUCKET "/fork/c", "child!", 6, &e), MR_OK);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        for (int i = 0; i < 200 && !bad; i++) {
            char *got = NULL;
            size_t len = 0;
            bad = s3_get_object("s3://" BUCKET "/fork/c", &got, &len, 100, NULL) != MR_OK ||
                  len != 6 || memcmp(got, "child!", 6) != 0;
            free(got);
        }
        _exit(bad);
    }
    for (int i = 0; i < 200; i++) {
        char *got = NULL;
        size_t len = 0;
        ck_assert_msg(s3_get_object("s3://" BUCKET "/fork/p", &got, &len, 100, &e) == MR_OK, "%s",
                      e.msg);
        ck_assert(len == 6 && memcmp(got, "parent", 6) == 0);
        free(got);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* ---- listing ---- */

typedef struct listing {
    size_t n;
    uint64_t bytes;
    int bad;
} listing;

static mr_code list_fn(const char *uri, uint64_t size, void *ud)
{
    listing *l = ud;
    const char *p = "s3://" BUCKET "/many/";
    if (strncmp(uri, p, strlen(p)) != 0) l->bad++;
    l->n++;
    l->bytes += size;
    return MR_OK;
}

START_TEST(test_list_paginates)
{
    mr_err e = {0};
    uint64_t want_bytes = 0;
    for (int i = 0; i < 1200; i++) {
        char uri[128], body[32];
        snprintf(uri, sizeof uri, "s3://" BUCKET "/many/k%05d", i);
        int len = snprintf(body, sizeof body, "%d", i * 7);
        want_bytes += (uint64_t)len;
        ck_assert_msg(s3_put_object(uri, body, (size_t)len, &e) == MR_OK, "%s", e.msg);
    }
    /* Siblings that share the string prefix but not the folder. */
    ck_assert_int_eq(s3_put_object("s3://" BUCKET "/many-not/x", "x", 1, &e), MR_OK);
    ck_assert_int_eq(s3_put_object("s3://" BUCKET "/manyx", "x", 1, &e), MR_OK);
    listing l = {0};
    ck_assert_msg(storage_list("s3://" BUCKET "/many", list_fn, &l, &e) == MR_OK, "%s", e.msg);
    ck_assert_uint_eq(l.n, 1200);
    ck_assert_uint_eq(l.bytes, want_bytes);
    ck_assert_int_eq(l.bad, 0);
    listing l2 = {0};
    ck_assert_int_eq(s3_list("s3://" BUCKET "/many/", list_fn, &l2, &e), MR_OK);
    ck_assert_uint_eq(l2.n, 1200);
}
END_TEST

/* ---- multipart ---- */

START_TEST(test_multipart_sink)
{
    setenv("LUAMR_S3_PART_SIZE", "5M", 1);
    const char *uri = "s3://" BUCKET "/mp/big.bin";
    size_t n = 21 * 1024 * 1024 + 333;   /* 5 parts of 5 MiB and a short last one */
    char *data = gen_data(99, n);
    mr_err e = {0};
    sink *s = sink_open(uri, 0, &e);
    ck_assert_msg(s, "%s", e.msg);
    size_t off = 0, step = 1;
    while (off < n) {
        size_t k = step < n - off ? step : n - off;
        ck_assert_msg(sink_write(s, data + off, k, &e) == MR_OK, "%s", e.msg);
        off += k;
        step = step * 3 + 17;   /* writes of every size, some larger than a part */
        if (step > (9u << 20)) step = 1;
    }
    ck_assert_int_eq(s3_stat(uri, NULL, &e), 0);   /* invisible until commit */
    ck_assert_msg(sink_commit(s, &e) == MR_OK, "%s", e.msg);
    sink_free(s);
    uint64_t size = 0;
    ck_assert_int_eq(s3_stat(uri, &size, &e), 1);
    ck_assert_uint_eq(size, n);
    size_t len = 0;
    char *got = read_all(uri, 0, 1 << 20, &len, &e);
    ck_assert_msg(got, "%s", e.msg);
    ck_assert_uint_eq(len, n);
    ck_assert(memcmp(got, data, n) == 0);
    ck_assert_int_eq(uploads_left(), 0);
    free(got);
    free(data);
}
END_TEST

START_TEST(test_multipart_abort_leaves_nothing)
{
    setenv("LUAMR_S3_PART_SIZE", "5M", 1);
    const char *uri = "s3://" BUCKET "/mp/aborted.bin";
    size_t n = 12 * 1024 * 1024;
    char *data = gen_data(5, n);
    mr_err e = {0};
    sink *s = sink_open(uri, 0, &e);
    ck_assert_int_eq(sink_write(s, data, n, &e), MR_OK);
    ck_assert_int_ge(uploads_left(), 1);   /* parts went up already */
    sink_abort(s);
    sink_free(s);
    ck_assert_int_eq(uploads_left(), 0);
    ck_assert_int_eq(s3_stat(uri, NULL, &e), 0);

    /* Freeing an uncommitted sink aborts too. */
    s = sink_open(uri, 0, &e);
    ck_assert_int_eq(sink_write(s, data, n, &e), MR_OK);
    sink_free(s);
    ck_assert_int_eq(uploads_left(), 0);
    ck_assert_int_eq(s3_stat(uri, NULL, &e), 0);

    /* Exactly one part: a single PUT, no upload at all. */
    s = sink_open(uri, 0, &e);
    ck_assert_int_eq(sink_write(s, data, 5u << 20, &e), MR_OK);
    ck_assert_int_eq(uploads_left(), 0);
    ck_assert_int_eq(sink_commit(s, &e), MR_OK);
    sink_free(s);
    uint64_t size = 0;
    ck_assert_int_eq(s3_stat(uri, &size, &e), 1);
    ck_assert_uint_eq(size, 5u << 20);
    free(data);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_missing_key)
{
    mr_err e = {0};
    char *got = NULL;
    size_t len;
    ck_assert_int_eq(s3_get_object("s3://" BUCKET "/no/such key", &got, &len, 100, &e), MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "NoSuchKey"));
    ck_assert_ptr_nonnull(strstr(e.msg, "GetObject"));
    ck_assert_ptr_nonnull(strstr(e.msg, "s3://" BUCKET "/no/such key"));
    ck_assert_ptr_nonnull(strstr(e.msg, "404"));
    mr_err_clear(&e);
    ck_assert_ptr_null(stream_open_raw("s3://" BUCKET "/no/such key", 0, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "NoSuchKey"));
    ck_assert_int_eq(s3_stat("s3://" BUCKET "/no/such key", NULL, &e), 0);
    ck_assert_int_eq(s3_get_object("s3://no-such-bucket/k", &got, &len, 100, &e), MR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "NoSuchBucket"));
}
END_TEST

START_TEST(test_wrong_secret)
{
    const char *secret = "definitely-not-the-secret-42";
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    s3_reload_config();
    mr_err e = {0};
    char *got = NULL;
    size_t len;
    ck_assert_int_eq(s3_get_object("s3://" BUCKET "/stream/three-mib.bin", &got, &len, 100, &e),
                     MR_EAUTH);
    ck_assert_ptr_nonnull(strstr(e.msg, "403"));
    ck_assert_ptr_nonnull(strstr(e.msg, "SignatureDoesNotMatch"));
    ck_assert_ptr_nonnull(strstr(e.msg, "GetObject s3://" BUCKET "/stream/three-mib.bin"));
    ck_assert_ptr_nonnull(strstr(e.msg, "environment"));
    ck_assert_ptr_null(strstr(e.msg, secret));
    ck_assert_int_eq(s3_put_object("s3://" BUCKET "/x", "x", 1, &e), MR_EAUTH);
    ck_assert_ptr_null(strstr(e.msg, secret));
    ck_assert_int_eq(s3_stat("s3://" BUCKET "/x", NULL, &e), -1);
    ck_assert_int_eq(e.code, MR_EAUTH);
}
END_TEST

START_TEST(test_no_credentials)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    s3_reload_config();
    mr_err e = {0};
    ck_assert_int_eq(s3_put_object("s3://" BUCKET "/x", "x", 1, &e), MR_EAUTH);
    ck_assert_ptr_nonnull(strstr(e.msg, "AWS_ACCESS_KEY_ID"));
}
END_TEST

START_TEST(test_profile_credentials)
{
    char dir[] = "/tmp/luamr-awsconf-XXXXXX", creds[300], conf[300];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(creds, sizeof creds, "%s/credentials", dir);
    snprintf(conf, sizeof conf, "%s/config", dir);
    FILE *f = fopen(creds, "w");
    fprintf(f, "[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n\n"
               "[test]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n");
    fclose(f);
    f = fopen(conf, "w");
    fprintf(f, "[profile test]\nregion = eu-west-3\ns3 =\n  addressing_style = path\n");
    fclose(f);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
    setenv("AWS_CONFIG_FILE", conf, 1);
    setenv("AWS_PROFILE", "test", 1);
    mr_err e = {0};
    awsconf *c = awsconf_load(&e);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(awsconf_access_key(c), "S3RVER");
    ck_assert_str_eq(awsconf_region(c), "eu-west-3");
    ck_assert_int_eq(awsconf_path_style(c), 1);
    ck_assert_ptr_nonnull(strstr(awsconf_source(c), "[test]"));
    awsconf_free(c);
    s3_reload_config();
    ck_assert_msg(s3_put_object("s3://" BUCKET "/profile.txt", "p", 1, &e) == MR_OK, "%s", e.msg);

    setenv("AWS_PROFILE", "nope", 1);
    ck_assert_ptr_null(awsconf_load(&e));
    ck_assert_ptr_nonnull(strstr(e.msg, "'nope'"));
    /* Environment keys win over the profile, as with the AWS CLI. */
    setenv("AWS_PROFILE", "default", 1);
    setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
    setenv("AWS_SESSION_TOKEN", "ENVTOKEN", 1);
    setenv("AWS_REGION", "ap-south-1", 1);
    c = awsconf_load(&e);
    ck_assert_str_eq(awsconf_access_key(c), "ENVKEY");
    ck_assert_str_eq(awsconf_session_token(c), "ENVTOKEN");
    ck_assert_str_eq(awsconf_region(c), "ap-south-1");
    awsconf_free(c);
    unlink(creds);
    unlink(conf);
    rmdir(dir);
}
END_TEST

START_TEST(test_unreachable_endpoint_retries)
{
    setenv("LUAMR_S3_MAX_ATTEMPTS", "3", 1);
    setenv("LUAMR_S3_BACKOFF_MS", "1", 1);
    use_endpoint(1);   /* nothing listens on port 1 */
    uint64_t before = s3_retry_count();
    mr_err e = {0};
    ck_assert_int_eq(s3_put_object("s3://" BUCKET "/x", "x", 1, &e), MR_ENET);
    ck_assert_uint_eq(s3_retry_count() - before, 2);
    ck_assert_ptr_nonnull(strstr(e.msg, "after 3 attempts"));
    ck_assert_ptr_nonnull(strstr(e.msg, "PutObject s3://" BUCKET "/x"));
}
END_TEST

START_TEST(test_wrong_region_hint)
{
    char target[16];
    snprintf(target, sizeof target, "%d", server_port);
    const char *src = getenv("LUAMR_SOURCE_DIR");
    char js[512];
    snprintf(js, sizeof js, "%s/tests/s3/faultproxy.js", src ? src : ".");
    const char *argv[] = {"node", js, "--target", target, "--bucket-region", "eu-west-3", NULL};
    FILE *in = NULL;
    int port = 0;
    pid_t pid = spawn_node(argv, &in, &port);
    ck_assert_int_gt(port, 0);
    use_endpoint(port);
    mr_err e = {0};
    char *got = NULL;
    size_t len;
    ck_assert_int_eq(s3_get_object("s3://" BUCKET "/k", &got, &len, 100, &e), MR_EIO);
    ck_assert_ptr_nonnull(strstr(e.msg, "HTTP 301 PermanentRedirect"));
    ck_assert_ptr_nonnull(strstr(e.msg, "set AWS_REGION=eu-west-3"));
    ck_assert_ptr_nonnull(strstr(e.msg, "not us-east-1"));
    /* HEAD answers carry no body: the header alone gives the region. */
    ck_assert_int_eq(s3_stat("s3://" BUCKET "/k", NULL, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "HeadObject"));
    ck_assert_ptr_nonnull(strstr(e.msg, "set AWS_REGION=eu-west-3"));
    stop_node(pid, in);
}
END_TEST

/* ---- faults ---- */

START_TEST(test_fault_proxy_byte_identical)
{
    setenv("LUAMR_S3_BACKOFF_MS", "2", 1);
    setenv("LUAMR_S3_MAX_ATTEMPTS", "8", 1);
    long slow0, cut0, slow1, cut1;
    proxy_stats(&slow0, &cut0);
    use_endpoint(proxy_port);
    uint64_t before = s3_retry_count();
    mr_err e = {0};
    enum { N = 24 };
    size_t sizes[N];
    for (int i = 0; i < N; i++) {
        char uri[96];
        sizes[i] = (size_t)(i * 131071 + 17) * (i % 3 == 0 ? 5 : 1);   /* up to ~15 MiB */
        snprintf(uri, sizeof uri, "s3://" BUCKET "/faults/o%02d", i);
        char *data = gen_data(1000 + i, sizes[i]);
        ck_assert_msg(s3_put_object(uri, data, sizes[i], &e) == MR_OK, "%s", e.msg);
        free(data);
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            char uri[96];
            snprintf(uri, sizeof uri, "s3://" BUCKET "/faults/o%02d", i);
            size_t len = 0;
            char *got = read_all(uri, 0, 65536, &len, &e);
            ck_assert_msg(got, "%s: %s", uri, e.msg);
            ck_assert_uint_eq(len, sizes[i]);
            char *data = gen_data(1000 + i, sizes[i]);
            ck_assert_msg(memcmp(got, data, len) == 0, "%s differs", uri);
            free(data);
            free(got);
        }
    }
    size_t count = 0;
    ck_assert_msg(s3_list("s3://" BUCKET "/faults", count_all, &count, &e) == MR_OK, "%s", e.msg);
    ck_assert_uint_eq(count, N);
    proxy_stats(&slow1, &cut1);
    uint64_t retries = s3_retry_count() - before;
    ck_assert_msg(slow1 - slow0 > 0 && cut1 - cut0 > 0, "the proxy injected no faults");
    /* Every injected fault costs exactly one retry; nothing else does. */
    ck_assert_uint_eq(retries, (uint64_t)(slow1 - slow0 + cut1 - cut0));
    fprintf(stderr, "fault proxy: %ld slowdowns, %ld cuts, %llu retries\n", slow1 - slow0,
            cut1 - cut0, (unsigned long long)retries);
}
END_TEST

static mr_code count_all(const char *uri, uint64_t size, void *ud)
{
    (*(size_t *)ud)++;
    return MR_OK;
}

/* A reader that stops for longer than the stall timeout: the paused transfer may be
 * dropped and resumed, but the bytes come out identical. */
START_TEST(test_slow_reader)
{
    setenv("LUAMR_S3_STALL_SECONDS", "1", 1);
    setenv("LUAMR_S3_BACKOFF_MS", "1", 1);
    s3_reload_config();
    const char *uri = "s3://" BUCKET "/slow/five-mib.bin";
    size_t n = 5 * 1024 * 1024 + 1;
    char *data = gen_data(11, n);
    mr_err e = {0};
    ck_assert_int_eq(s3_put_object(uri, data, n, &e), MR_OK);
    stream *s = stream_open_raw(uri, 0, &e);
    ck_assert_msg(s, "%s", e.msg);
    char *got = malloc(n);
    size_t off = 0;
    int naps = 0;
    for (;;) {
        ssize_t k = stream_read(s, got + off, n - off < 300000 ? n - off : 300000, &e);
        ck_assert_msg(k >= 0, "%s", e.msg);
        if (k == 0) break;
        off += (size_t)k;
        if (naps < 2 && off > (size_t)(naps + 1) * (2u << 20)) {
            naps++;
            sleep(3);
        }
    }
    stream_close(s);
    ck_assert_uint_eq(off, n);
    ck_assert(memcmp(got, data, n) == 0);
    free(got);
    free(data);
}
END_TEST

/* ---- parallel reads ---- */

#define MIB (1024u * 1024u)

/* Starts a fault-free proxy in front of the server that caps each response at rate_kbps,
 * like S3's per-connection cap, and counts GETs and how many run at once. */
static pid_t start_clean_proxy(const char *rate_kbps, FILE **in, int *port)
{
    char target[16], js[512];
    snprintf(target, sizeof target, "%d", server_port);
    const char *src = getenv("LUAMR_SOURCE_DIR");
    snprintf(js, sizeof js, "%s/tests/s3/faultproxy.js", src ? src : ".");
    const char *argv[] = {"node", js, "--target", target, "--slowdown", "0", "--cut", "0",
                          "--rate-kbps", rate_kbps, NULL};
    pid_t pid = spawn_node(argv, in, port);
    ck_assert_int_gt(*port, 0);
    return pid;
}

/* Reads [off, off + max) of uri through the stream scheme and compares with data. */
static void check_read(const char *uri, const char *data, size_t n, uint64_t off, size_t max)
{
    mr_err e = {0};
    size_t len = 0;
    char *got = read_some(uri, off, 65536 + 17, max, &len, &e);
    ck_assert_msg(got, "%s at %llu: %s", uri, (unsigned long long)off, e.msg);
    size_t want = n - off < max ? n - off : max;
    ck_assert_uint_eq(len, want);
    ck_assert_msg(memcmp(got, data + off, len) == 0, "%s at %llu differs", uri,
                  (unsigned long long)off);
    free(got);
}

/* An object of 8 chunks (the last short) read with 4 connections: the same bytes from
 * offset 0, from mid-chunk, and a read that also stops mid-chunk; one GET per chunk, more
 * than one at a time; one GET when parallel reads are off or the object is small. */
START_TEST(test_parallel_read_identical)
{
    setenv("LUAMR_S3_CHUNK", "1M", 1);
    setenv("LUAMR_S3_PARALLEL", "4", 1);
    const char *uri = "s3://" BUCKET "/par/eight-chunks.bin";
    size_t n = 7 * MIB + 12345;
    char *data = gen_data(2024, n);
    mr_err e = {0};
    ck_assert_msg(s3_put_object(uri, data, n, &e) == MR_OK, "%s", e.msg);
    FILE *in = NULL;
    int port = 0;
    pid_t pid = start_clean_proxy("16384", &in, &port);
    use_endpoint(port);

    long gets = proxy_stat(port, "gets");
    check_read(uri, data, n, 0, SIZE_MAX);
    ck_assert_int_eq(proxy_stat(port, "gets") - gets, 8);   /* the head, then 7 chunks */
    long most = proxy_stat(port, "maxInflight");
    /* +1: the head's connection, dropped at its chunk's end, may not be closed at the
     * proxy yet when the chunk that takes its place arrives. */
    ck_assert_msg(most >= 2 && most <= 4 + 1, "%ld GETs at once", most);

    uint64_t mid = MIB + MIB / 2 + 333;
    gets = proxy_stat(port, "gets");
    check_read(uri, data, n, mid, SIZE_MAX);
    ck_assert_int_eq(proxy_stat(port, "gets") - gets, (long)((n - mid + MIB - 1) / MIB));
    check_read(uri, data, n, 2 * MIB + 77, 3 * MIB + 5);   /* closed with chunks in flight */
    check_read(uri, data, n, n - 2 * MIB - 1, SIZE_MAX);   /* just over 2 chunks: parallel */

    gets = proxy_stat(port, "gets");
    check_read(uri, data, n, n - 2 * MIB, SIZE_MAX);       /* 2 chunks: one GET */
    ck_assert_int_eq(proxy_stat(port, "gets") - gets, 1);
    setenv("LUAMR_S3_PARALLEL", "1", 1);
    gets = proxy_stat(port, "gets");
    check_read(uri, data, n, 0, SIZE_MAX);
    ck_assert_int_eq(proxy_stat(port, "gets") - gets, 1);
    stop_node(pid, in);
    free(data);
}
END_TEST

/* Parallel reads through 503s and cut bodies: the same bytes, and every fault the reader
 * sees costs exactly one retry. The head asks for the rest of the object but stops after
 * one chunk, so a cut of its answer (halfway through more than two chunks) is never seen. */
START_TEST(test_parallel_read_faults)
{
    setenv("LUAMR_S3_CHUNK", "1M", 1);
    setenv("LUAMR_S3_PARALLEL", "4", 1);
    setenv("LUAMR_S3_BACKOFF_MS", "2", 1);
    setenv("LUAMR_S3_MAX_ATTEMPTS", "8", 1);
    long slow0 = proxy_stat(proxy_port, "slowdowns"), cut0 = proxy_stat(proxy_port, "cuts");
    long open0 = proxy_stat(proxy_port, "openCuts");
    use_endpoint(proxy_port);
    uint64_t before = s3_retry_count();
    static const size_t sizes[] = {3 * MIB + 1, 5 * MIB + 777, 6 * MIB, 7 * MIB + 12345};
    for (int i = 0; i < 4; i++) {
        char uri[96];
        snprintf(uri, sizeof uri, "s3://" BUCKET "/par-faults/o%d", i);
        char *data = gen_data(500 + i, sizes[i]);
        mr_err e = {0};
        ck_assert_msg(s3_put_object(uri, data, sizes[i], &e) == MR_OK, "%s", e.msg);
        for (int round = 0; round < 2; round++) {
            check_read(uri, data, sizes[i], 0, SIZE_MAX);
            check_read(uri, data, sizes[i], MIB / 2 + 4099 * (uint64_t)i, SIZE_MAX);
        }
        free(data);
    }
    long slow = proxy_stat(proxy_port, "slowdowns") - slow0;
    long cuts = proxy_stat(proxy_port, "cuts") - cut0;
    long seen = cuts - (proxy_stat(proxy_port, "openCuts") - open0);
    uint64_t retries = s3_retry_count() - before;
    ck_assert_msg(slow > 0 && seen > 0, "the proxy injected no faults (%ld, %ld)", slow, seen);
    ck_assert_uint_eq(retries, (uint64_t)(slow + seen));
    fprintf(stderr, "parallel reads through the fault proxy: %ld slowdowns, %ld cuts (%ld of "
            "them past a head's chunk), %llu retries\n", slow, cuts, cuts - seen,
            (unsigned long long)retries);
}
END_TEST

/* A chunk that fails for good fails the read, naming the operation, the object and S3's
 * answer, once the reader gets to it; the chunks before it arrive intact. */
START_TEST(test_parallel_read_error)
{
    setenv("LUAMR_S3_CHUNK", "1M", 1);
    setenv("LUAMR_S3_PARALLEL", "2", 1);
    const char *uri = "s3://" BUCKET "/par/gone.bin";
    size_t n = 8 * MIB;
    char *data = gen_data(7, n);
    mr_err e = {0};
    ck_assert_msg(s3_put_object(uri, data, n, &e) == MR_OK, "%s", e.msg);
    FILE *in = NULL;
    int port = 0;
    pid_t pid = start_clean_proxy("8192", &in, &port);   /* 1 MiB takes 1/8 s */
    use_endpoint(port);
    stream *s = stream_open_raw(uri, 0, &e);
    ck_assert_msg(s, "%s", e.msg);
    ck_assert_int_eq(s3_delete(uri, &e), MR_OK);   /* the head's answer is on its way */
    char *got = malloc(n);
    size_t off = 0;
    ssize_t k;
    while ((k = stream_read(s, got + off, n - off, &e)) > 0) off += (size_t)k;
    ck_assert_int_eq(k, -1);
    ck_assert_uint_ge(off, MIB);
    ck_assert_uint_lt(off, n);
    ck_assert_uint_eq(off % MIB, 0);   /* it stops where the failed chunk begins */
    ck_assert(memcmp(got, data, off) == 0);
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "S3 GetObject s3://" BUCKET "/par/gone.bin failed: HTTP 404 "
                                "NoSuchKey") && strstr(e.msg, "request id"), "%s", e.msg);
    stream_close(s);
    stop_node(pid, in);
    free(got);
    free(data);
}
END_TEST

/* ---- AWS CLI interop ---- */

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_aws_cli_interop)
{
    if (access("/usr/bin/aws", X_OK) != 0) {
        fprintf(stderr, "skipping AWS CLI interop: /usr/bin/aws not installed\n");
        return;
    }
    setenv("LUAMR_S3_PART_SIZE", "5M", 1);
    char dir[] = "/tmp/luamr-awscli-XXXXXX", path[300], cmd[1200];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/cli.bin", dir);
    size_t n = 9 * 1024 * 1024 + 7;   /* over the CLI's 8 MiB multipart threshold */
    char *data = gen_data(77, n);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    const char *env = "AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 "
                      "AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null "
                      "AWS_PAGER= ";
    snprintf(cmd, sizeof cmd, "%s /usr/bin/aws --endpoint-url http://127.0.0.1:%d s3 cp %s "
             "'s3://" BUCKET "/cli/up by cli+x.bin' >/dev/null", env, server_port, path);
    ck_assert_int_eq(run(cmd), 0);
    mr_err e = {0};
    size_t len = 0;
    char *got = read_all("s3://" BUCKET "/cli/up by cli+x.bin", 0, 1 << 16, &len, &e);
    ck_assert_msg(got, "%s", e.msg);
    ck_assert_uint_eq(len, n);
    ck_assert(memcmp(got, data, n) == 0);
    free(got);

    /* And the other way: a multipart upload of ours, downloaded by the CLI. */
    ck_assert_int_eq(storage_put_file(path, "s3://" BUCKET "/cli/up by luamr \xc3\xa9.bin", &e),
                     MR_OK);
    snprintf(cmd, sizeof cmd, "%s /usr/bin/aws --endpoint-url http://127.0.0.1:%d s3 cp "
             "'s3://" BUCKET "/cli/up by luamr \xc3\xa9.bin' %s.back >/dev/null && cmp %s %s.back",
             env, server_port, path, path, path);
    ck_assert_int_eq(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    run(cmd);
    free(data);
}
END_TEST

/* ---- harness ---- */

static pid_t spawn_node(const char *const argv[], FILE **stdin_w, int *port)
{
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execvp("node", (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *stdin_w = fdopen(in[1], "w");
    FILE *o = fdopen(out[0], "r");
    char line[128] = "";
    *port = 0;
    if (fgets(line, sizeof line, o)) sscanf(line, "PORT %d", port);
    fclose(o);
    return pid;
}

static void stop_node(pid_t pid, FILE *stdin_w)
{
    if (stdin_w) fclose(stdin_w);   /* the helpers exit when their stdin closes */
    if (pid > 0) waitpid(pid, NULL, 0);
}

static Suite *s3_suite(void)
{
    Suite *s = suite_create("s3");
    TCase *tc = tcase_create("objects");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_put_get_stat_odd_keys);
    tcase_add_test(tc, test_stream_get_and_ranges);
    tcase_add_test(tc, test_delete);
    tcase_add_test(tc, test_files);
    tcase_add_test(tc, test_fork_keeps_connections_apart);
    suite_add_tcase(s, tc);

    tc = tcase_create("list");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_list_paginates);
    suite_add_tcase(s, tc);

    tc = tcase_create("multipart");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_multipart_sink);
    tcase_add_test(tc, test_multipart_abort_leaves_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_missing_key);
    tcase_add_test(tc, test_wrong_secret);
    tcase_add_test(tc, test_no_credentials);
    tcase_add_test(tc, test_profile_credentials);
    tcase_add_test(tc, test_unreachable_endpoint_retries);
    tcase_add_test(tc, test_wrong_region_hint);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_fault_proxy_byte_identical);
    tcase_add_test(tc, test_slow_reader);
    suite_add_tcase(s, tc);

    tc = tcase_create("parallel");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_parallel_read_identical);
    tcase_add_test(tc, test_parallel_read_faults);
    tcase_add_test(tc, test_parallel_read_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("aws_cli");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_aws_cli_interop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *src = getenv("LUAMR_SOURCE_DIR");
    char server_js[512], proxy_js[512], target[16];
    snprintf(server_js, sizeof server_js, "%s/tests/s3/server.js", src ? src : ".");
    snprintf(proxy_js, sizeof proxy_js, "%s/tests/s3/faultproxy.js", src ? src : ".");
    char mods[600];
    snprintf(mods, sizeof mods, "%s/tests/s3/node_modules/@20minutes/s3rver", src ? src : ".");
    if (access(mods, R_OK) != 0) {
        fprintf(stderr, "test_s3: %s is missing: run `npm ci --prefix tests/s3` "
                "(and set LUAMR_SOURCE_DIR)\n", mods);
        return EXIT_FAILURE;
    }
    snprintf(server_dir, sizeof server_dir, "/tmp/luamr-s3-test-XXXXXX");
    if (!mkdtemp(server_dir)) return EXIT_FAILURE;
    signal(SIGPIPE, SIG_IGN);

    const char *sargv[] = {"node", server_js, "--dir", server_dir, "--bucket", BUCKET, NULL};
    server_pid = spawn_node(sargv, &server_stdin, &server_port);
    if (server_port <= 0) {
        fprintf(stderr, "test_s3: the S3 test server did not start\n");
        stop_node(server_pid, server_stdin);
        return EXIT_FAILURE;
    }
    snprintf(target, sizeof target, "%d", server_port);
    const char *pargv[] = {"node", proxy_js, "--target", target, "--seed", "20240601",
                           "--slowdown", "0.15", "--cut", "0.25", NULL};
    proxy_pid = spawn_node(pargv, &proxy_stdin, &proxy_port);

    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_ENDPOINT_URL_S3");
    setenv("AWS_REGION", "us-east-1", 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", server_port);
    setenv("AWS_ENDPOINT_URL", url, 1);
    s3_register();

    SRunner *sr = srunner_create(s3_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    s3_shutdown();
    stop_node(proxy_pid, proxy_stdin);
    stop_node(server_pid, server_stdin);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", server_dir);
    if (system(cmd) != 0) fprintf(stderr, "test_s3: could not remove %s\n", server_dir);
    return failed || proxy_port <= 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
