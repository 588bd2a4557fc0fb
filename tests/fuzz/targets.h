/* fuzz targets: one entry function per input parser luamr exposes to untrusted bytes —
 * the CSV, JSON-lines and lines(+gzip) readers, the gzip stream, the WARC reader, the
 * intermediate format reader/verifier and the config parser. Depends on connectors/reader,
 * connectors/stream, connectors/warc, engine/imf, engine/config.
 *
 * The same functions back the libFuzzer executables (tests/fuzz/fuzz_<name>.c) and the
 * regression replay (tests/unit/test_fuzz_regressions.c), so a saved crash input keeps
 * being replayed by every ordinary build. targets.c is #included by both (it is not part
 * of luamr_core), so include it exactly once per program.
 *
 * Each function consumes the whole input; a broken invariant (an error without a
 * message, a record view outside its buffer, an invalid frame) aborts, so libFuzzer and
 * the replay test both see it as a crash. Leading bytes select options as documented at
 * each target in targets.c. */
#ifndef LUAMR_FUZZ_TARGETS_H
#define LUAMR_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

int fuzz_target_csv(const uint8_t *data, size_t size);
int fuzz_target_jsonl(const uint8_t *data, size_t size);
int fuzz_target_lines(const uint8_t *data, size_t size);
int fuzz_target_gzip(const uint8_t *data, size_t size);
int fuzz_target_warc(const uint8_t *data, size_t size);
int fuzz_target_imf(const uint8_t *data, size_t size);
int fuzz_target_config(const uint8_t *data, size_t size);

typedef int (*fuzz_target_fn)(const uint8_t *data, size_t size);

/* Corpus folder name (tests/fuzz/corpus/<name>/) -> target; NULL-terminated. */
typedef struct fuzz_target_entry {
    const char *name;
    fuzz_target_fn fn;
} fuzz_target_entry;
extern const fuzz_target_entry fuzz_targets[];

fuzz_target_fn fuzz_target_by_name(const char *name);

#endif
