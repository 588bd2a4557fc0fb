/* test_fuzz_regressions: replays every file under tests/fuzz/corpus/<target>/ through the
 * same entry functions the libFuzzer targets use (tests/fuzz/targets.c), so seeds and
 * saved crash inputs are re-run by every ordinary build, without clang. A regression
 * shows up as a crash/abort of one loop iteration (the file is named on stderr).
 * The "counts" case checks the harness itself: on valid inputs built here, each target
 * returns the record/row/byte count computed independently of the reader under test. */
#include "../fuzz/targets.c"

#include <check.h>
#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

#define MAX_FILES 4096

/* luamr handles a failed malloc as MR_ENOMEM; under ASan a huge request (a damaged file
 * claiming 2^34 rows) must likewise return NULL instead of aborting the replay. Ignored
 * by builds without ASan. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

typedef struct corpus {
    const char *target;
    char *files[MAX_FILES];
    int n;
} corpus;

static corpus corpora[16];
static char source_dir[4096];

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void find_source_dir(void)
{
    const char *env = getenv("LUAMR_SOURCE_DIR");
    if (env && *env) {
        snprintf(source_dir, sizeof source_dir, "%s", env);
        return;
    }
    /* __FILE__ is absolute in CMake builds: strip "/tests/unit/<file>". */
    snprintf(source_dir, sizeof source_dir, "%s", __FILE__);
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(source_dir, '/');
        if (slash) *slash = '\0';
    }
}

static void load_corpus(corpus *c, const char *target)
{
    char dir[4400];
    c->target = target;
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", source_dir, target);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) && c->n < MAX_FILES) {
        if (de->d_name[0] == '.') continue;
        char path[4700];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        c->files[c->n++] = strdup(path);
    }
    closedir(d);
    qsort(c->files, (size_t)c->n, sizeof c->files[0], cmp_str);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    ck_assert(buf != NULL);
    ck_assert_msg(fread(buf, 1, (size_t)n, fp) == (size_t)n, "short read of %s", path);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void replay(const corpus *c, int i)
{
    const char *path = c->files[i];
    fuzz_target_fn fn = fuzz_target_by_name(c->target);
    ck_assert_ptr_nonnull(fn);
    fprintf(stderr, "replaying %s\n", path);
    size_t len;
    uint8_t *buf = read_file(path, &len);
    /* A copy exactly len bytes long, so ASan catches a read one past the input. */
    uint8_t *exact = malloc(len ? len : 1);
    ck_assert(exact != NULL);
    memcpy(exact, buf, len);
    free(buf);
    int rc = fn(exact, len);
    free(exact);
    ck_assert_msg(rc >= 0, "%s: target returned %d", path, rc);
}

#define REPLAY_TEST(name, idx)                                  \
    START_TEST(test_replay_##name) { replay(&corpora[idx], _i); } \
    END_TEST

REPLAY_TEST(csv, 0)
REPLAY_TEST(jsonl, 1)
REPLAY_TEST(lines, 2)
REPLAY_TEST(gzip, 3)
REPLAY_TEST(warc, 4)
REPLAY_TEST(imf, 5)
REPLAY_TEST(config, 6)

START_TEST(test_every_target_has_a_corpus)
{
    for (int t = 0; fuzz_targets[t].name; t++) {
        ck_assert_str_eq(corpora[t].target, fuzz_targets[t].name);
        ck_assert_msg(corpora[t].n > 0, "tests/fuzz/corpus/%s/ holds no inputs",
                      fuzz_targets[t].name);
    }
}
END_TEST

/* ---- the harness returns independently computed counts on valid inputs ---- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert(b->p != NULL);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_add(b, tmp, (size_t)n);
}

static size_t count_byte(const uint8_t *p, size_t n, uint8_t c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += p[i] == c;
    return k;
}

static buf gzip_of(const uint8_t *p, size_t n)
{
    z_stream z = {0};
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    buf out = {0};
    out.cap = deflateBound(&z, n) + 16;
    out.p = malloc(out.cap);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = out.p;
    z.avail_out = (uInt)out.cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.len = out.cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

START_TEST(test_counts_csv_jsonl_lines)
{
    unsigned seed = 12345;
    buf csv = {0}, jsonl = {0};
    uint8_t csv_opts[4] = {4 | 0, 0, 0, 0};          /* header; next, then frame */
    buf_add(&csv, csv_opts, 4);
    buf_printf(&csv, "id,price,name\n");
    uint8_t jl_opts[4] = {128 | 1, 0, 0, 0};          /* reader_next only, 1-byte reads */
    buf_add(&jsonl, jl_opts, 4);
    int rows = 500 + _i * 37;
    for (int i = 0; i < rows; i++) {
        seed = seed * 1103515245u + 12345u;
        buf_printf(&csv, "%d,%u.%02u,\"n,%u\"\n", i, seed % 1000, seed % 100, seed % 7);
        buf_printf(&jsonl, "{\"id\": %d, \"v\": %u, \"s\": \"x%u\"}\n", i, seed % 1000, seed);
    }
    /* Independent count: rows are the newline-terminated lines minus the header. */
    ck_assert_int_eq(fuzz_target_csv(csv.p, csv.len),
                     (int)count_byte(csv.p + 4, csv.len - 4, '\n') - 1);
    csv.p[0] = 4 | 128 | 3;   /* the same via reader_next only, 4 KiB reads */
    ck_assert_int_eq(fuzz_target_csv(csv.p, csv.len),
                     (int)count_byte(csv.p + 4, csv.len - 4, '\n') - 1);
    ck_assert_int_eq(fuzz_target_jsonl(jsonl.p, jsonl.len),
                     (int)count_byte(jsonl.p + 4, jsonl.len - 4, '\n'));

    /* lines over gzip: the gzip magic is detected, and a ".gz" name forces it too. */
    buf gz = gzip_of(jsonl.p + 4, jsonl.len - 4);
    buf lines = {0};
    uint8_t ln_opts[4] = {128 | 2, 0, 0, 0};
    buf_add(&lines, ln_opts, 4);
    buf_add(&lines, gz.p, gz.len);
    size_t want = count_byte(jsonl.p + 4, jsonl.len - 4, '\n');
    ck_assert_int_eq(fuzz_target_lines(lines.p, lines.len), (int)want);
    lines.p[0] = 16 | 3;
    ck_assert_int_eq(fuzz_target_lines(lines.p, lines.len), (int)want);

    /* gzip stream: decompressed byte count equals the original length. */
    buf g = {0};
    uint8_t g_opt = 0x70 | 1;   /* 128-byte reads, 1-byte chunks */
    buf_add(&g, &g_opt, 1);
    buf_add(&g, gz.p, gz.len);
    ck_assert_int_eq(fuzz_target_gzip(g.p, g.len), (int)(jsonl.len - 4));
    g.p[0] = 4;   /* readline: bytes minus the newlines */
    ck_assert_int_eq(fuzz_target_gzip(g.p, g.len), (int)(jsonl.len - 4 - want));
    free(csv.p);
    free(jsonl.p);
    free(gz.p);
    free(lines.p);
    free(g.p);
}
END_TEST

START_TEST(test_counts_warc)
{
    buf w = {0};
    uint8_t opts[2] = {7u << 5, 0};   /* warc_next to the end */
    buf_add(&w, opts, 2);
    int nrec = 3 + _i;
    for (int i = 0; i < nrec; i++) {
        char body[256];
        int bl = snprintf(body, sizeof body,
                          "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html lang=\"en\">%d</html>",
                          i);
        buf_printf(&w, "WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://x/%d\r\n"
                   "Content-Type: application/http; msgtype=response\r\n"
                   "Content-Length: %d\r\n\r\n", i, bl);
        buf_add(&w, body, (size_t)bl);
        buf_printf(&w, "\r\n\r\n");
    }
    ck_assert_int_eq(fuzz_target_warc(w.p, w.len), nrec);
    w.p[0] = 1u << 5 | 2;   /* one by warc_next, the rest by warc_frame, 7-byte reads */
    ck_assert_int_eq(fuzz_target_warc(w.p, w.len), nrec);
    free(w.p);
}
END_TEST

static buf imf_bytes(int rows)
{
    char path[] = "/tmp/luamr-test-fuzz-imf-XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    mr_err e;
    frame *f = frame_create();
    frame_col *a = frame_add_col(f, "k", FRAME_STR, &e);
    frame_col *b = frame_add_col(f, "v", FRAME_F64, &e);
    frame_col *c = frame_add_col(f, "n", FRAME_I64, &e);
    ck_assert(a && b && c);
    for (int i = 0; i < rows; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "key%d", i % 13);
        ck_assert_int_eq(frame_col_push_str(a, k, (size_t)n), MR_OK);
        ck_assert_int_eq(i % 5 ? frame_col_push_f64(b, i * 0.5) : frame_col_push_null(b), MR_OK);
        ck_assert_int_eq(frame_col_push_i64(c, i), MR_OK);
    }
    imf_writer *w = imf_writer_open(path, 1, &e);
    ck_assert_msg(w != NULL, "%s", e.msg);
    ck_assert_int_eq(imf_writer_set_group_rows(w, 100, &e), MR_OK);
    ck_assert_int_eq(imf_writer_add(w, f, 0, &e), MR_OK);
    ck_assert_int_eq(imf_writer_add(w, f, 2, &e), MR_OK);
    ck_assert_msg(imf_writer_close(w, &e) == MR_OK, "%s", e.msg);
    imf_writer_free(w);
    frame_free(f);
    size_t len;
    uint8_t *p = read_file(path, &len);
    unlink(path);
    buf out = {0};
    uint8_t flag = 0;
    buf_add(&out, &flag, 1);
    buf_add(&out, p, len);
    free(p);
    return out;
}

START_TEST(test_counts_imf)
{
    int rows = 250 + _i * 11;
    buf b = imf_bytes(rows);
    ck_assert_int_eq(fuzz_target_imf(b.p, b.len), 2 * rows);   /* two partitions added */
    b.p[0] = 1;   /* rewriting the CRCs of an intact file changes nothing */
    ck_assert_int_eq(fuzz_target_imf(b.p, b.len), 2 * rows);
    b.p[0] = 2;   /* partition 0 only */
    ck_assert_int_eq(fuzz_target_imf(b.p, b.len), rows);
    /* A flipped byte inside the data is caught by a CRC (not read as data) ... */
    b.p[0] = 0;
    b.p[b.len / 2] ^= 0x40;
    ck_assert_int_eq(fuzz_target_imf(b.p, b.len), 0);
    free(b.p);
}
END_TEST

START_TEST(test_counts_config)
{
    const char *good = "{\"name\": \"j\", \"script\": \"j.lua\", "
                       "\"readConnector\": {\"manifest\": [\"in/*.csv\"], \"format\": \"csv\"}}";
    ck_assert_int_eq(fuzz_target_config((const uint8_t *)good, strlen(good)), 1);
    const char *typed = "{\"name\": \"j\", \"script\": 5}";
    ck_assert_int_eq(fuzz_target_config((const uint8_t *)typed, strlen(typed)), 0);
}
END_TEST

static Suite *fuzz_regressions_suite(void)
{
    Suite *s = suite_create("fuzz_regressions");
    TCase *tc = tcase_create("corpus");
    tcase_add_test(tc, test_every_target_has_a_corpus);
    suite_add_tcase(s, tc);

    const TTest *replays[] = {test_replay_csv, test_replay_jsonl, test_replay_lines,
                              test_replay_gzip, test_replay_warc, test_replay_imf,
                              test_replay_config};
    static char names[16][64];   /* Check keeps the name pointer, not a copy */
    for (int t = 0; fuzz_targets[t].name; t++) {
        snprintf(names[t], sizeof names[t], "replay_%s", fuzz_targets[t].name);
        tc = tcase_create(names[t]);
        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, replays[t], 0, corpora[t].n);
        suite_add_tcase(s, tc);
    }

    tc = tcase_create("counts");
    tcase_add_loop_test(tc, test_counts_csv_jsonl_lines, 0, 2);
    tcase_add_loop_test(tc, test_counts_warc, 0, 2);
    tcase_add_loop_test(tc, test_counts_imf, 0, 2);
    tcase_add_test(tc, test_counts_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    find_source_dir();
    for (int t = 0; fuzz_targets[t].name; t++) load_corpus(&corpora[t], fuzz_targets[t].name);
    SRunner *sr = srunner_create(fuzz_regressions_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    for (int t = 0; fuzz_targets[t].name; t++)
        for (int i = 0; i < corpora[t].n; i++) free(corpora[t].files[i]);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
