/* fuzz_csv: libFuzzer entry for the csv target (logic in targets.c, shared with the
 * regression replay in tests/unit/test_fuzz_regressions.c). */
#include "targets.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_target_csv(data, size);
    return 0;
}
