/* fuzz_config: libFuzzer entry for the config target (logic in targets.c, shared with the
 * regression replay in tests/unit/test_fuzz_regressions.c). */
#include "targets.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_target_config(data, size);
    return 0;
}
