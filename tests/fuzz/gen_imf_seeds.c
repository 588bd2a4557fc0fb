/* gen_imf_seeds: writes seed inputs for the imf fuzz target (tests/fuzz/corpus/imf/) with
 * the real writer, so the fuzzer starts from well-formed files of every block kind.
 * Depends on engine/imf and engine/frame. Not built by CMake (name is not fuzz_*):
 *   cc -I. tests/fuzz/gen_imf_seeds.c BUILD/libluamr_core.a -ldeflate -lcjson -lluajit-5.1 \
 *      -lcurl -lz -lcrypto -lm -ldl -lpthread -o /tmp/gen_imf_seeds && /tmp/gen_imf_seeds DIR
 * Each seed is one option byte (bit 0 set: the target rewrites CRCs, so mutations reach
 * the decoder) followed by the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/frame.h"
#include "engine/imf.h"

static void die(const char *what, const mr_err *e)
{
    fprintf(stderr, "gen_imf_seeds: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

/* rows rows of: string (dictionary-friendly or not), float64 with nulls, int64, bool. */
static frame *make_frame(int rows, int distinct)
{
    mr_err e;
    frame *f = frame_create();
    frame_col *s = frame_add_col(f, "s", FRAME_STR, &e);
    frame_col *d = frame_add_col(f, "d", FRAME_F64, &e);
    frame_col *i = frame_add_col(f, "i", FRAME_I64, &e);
    frame_col *b = frame_add_col(f, "b", FRAME_BOOL, &e);
    if (!s || !d || !i || !b) die("frame", &e);
    for (int r = 0; r < rows; r++) {
        char k[32];
        int n = snprintf(k, sizeof k, "k%d", distinct ? r : r % 3);
        if (r % 7 == 3) frame_col_push_null(s);
        else frame_col_push_str(s, k, (size_t)n);
        if (r % 5 == 0) frame_col_push_null(d);
        else frame_col_push_f64(d, r * 1.25);
        frame_col_push_i64(i, (int64_t)r * 1000003);
        frame_col_push_bool(b, r & 1);
    }
    return f;
}

static void write_seed(const char *dir, const char *name, int level, int group_rows,
                       int rows, int distinct, int parts)
{
    char tmp[4096], out[4096];
    snprintf(tmp, sizeof tmp, "%s/.tmp-%s.imf", dir, name);
    snprintf(out, sizeof out, "%s/seed-%s", dir, name);
    mr_err e;
    imf_writer *w = imf_writer_open(tmp, level, &e);
    if (!w) die("open", &e);
    if (group_rows && imf_writer_set_group_rows(w, (size_t)group_rows, &e) != MR_OK)
        die("group rows", &e);
    frame *f = make_frame(rows, distinct);
    for (int p = 0; p < parts; p++)
        if (imf_writer_add(w, f, p, &e) != MR_OK) die("add", &e);
    if (imf_writer_close(w, &e) != MR_OK) die("close", &e);
    imf_writer_free(w);
    frame_free(f);
    FILE *in = fopen(tmp, "rb"), *o = fopen(out, "wb");
    if (!in || !o) die(out, NULL);
    fputc(1, o);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, o);
    fclose(in);
    fclose(o);
    remove(tmp);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/imf";
    write_seed(dir, "stored-small", 0, 0, 5, 0, 1);
    write_seed(dir, "deflate-dict", 1, 16, 40, 0, 2);
    write_seed(dir, "deflate-plain-strings", 6, 0, 60, 1, 1);
    write_seed(dir, "planes", 1, 0, 4200, 0, 1);   /* >= 4096 rows: byte-plane blocks */
    write_seed(dir, "empty", 1, 0, 0, 0, 3);
    return 0;
}
