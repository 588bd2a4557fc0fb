/* s3cat: a tiny driver of luamr's S3 client for benchmarks and manual checks.
 *   s3cat s3://bucket/key            streams the object to stdout
 *   s3cat -n s3://bucket/key         streams it, counts the bytes, writes nothing
 *   s3cat -p FILE s3://bucket/key    uploads FILE (multipart when large)
 *   s3cat -l s3://bucket/prefix      lists keys and sizes
 * Prints bytes and retries to stderr. Credentials/endpoint as for luamr (AWS_* variables).
 * Built by scripts/bench/s3.sh against a build's libluamr_core.a. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "connectors/s3.h"
#include "connectors/stream.h"

static mr_code print_key(const char *uri, uint64_t size, void *ud)
{
    printf("%llu\t%s\n", (unsigned long long)size, uri);
    return MR_OK;
}

int main(int argc, char **argv)
{
    mr_err e = {0};
    s3_register();
    if (argc == 4 && strcmp(argv[1], "-p") == 0) {
        if (s3_put_file(argv[2], argv[3], &e) != MR_OK) goto fail;
        fprintf(stderr, "s3cat: uploaded %s, %llu retries\n", argv[3],
                (unsigned long long)s3_retry_count());
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "-l") == 0) {
        if (s3_list(argv[2], print_key, NULL, &e) != MR_OK) goto fail;
        return 0;
    }
    int count_only = argc == 3 && strcmp(argv[1], "-n") == 0;
    if (argc != 2 && !count_only) {
        fprintf(stderr, "usage: s3cat [-n] URI | -p FILE URI | -l PREFIX\n");
        return 2;
    }
    stream *s = stream_open_raw(argv[argc - 1], 0, &e);
    if (!s) goto fail;
    static char buf[1 << 20];
    unsigned long long total = 0;
    for (;;) {
        ssize_t n = stream_read(s, buf, sizeof buf, &e);
        if (n < 0) { stream_close(s); goto fail; }
        if (n == 0) break;
        total += (unsigned long long)n;
        if (!count_only && fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            perror("s3cat: stdout");
            stream_close(s);
            return 1;
        }
    }
    stream_close(s);
    fprintf(stderr, "s3cat: %llu bytes, %llu retries\n", total,
            (unsigned long long)s3_retry_count());
    s3_shutdown();
    return 0;
fail:
    fprintf(stderr, "s3cat: %s\n", e.msg);
    return 1;
}
