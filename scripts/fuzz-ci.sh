#!/usr/bin/env bash
# The short fuzz run CI does (scripts/test.sh calls it after the sanitizer suite): builds
# every libFuzzer target in build-fuzz (clang, ASan + UBSan, coverage on luamr_core too)
# and runs each for FUZZ_SECONDS (default 8) seconds from its seed and regression corpus
# in tests/fuzz/corpus/<target>/. About 2-3 minutes on 2 cores, the clang build included.
#
#   scripts/fuzz-ci.sh                   # every target, 8 s each
#   FUZZ_SECONDS=30 scripts/fuzz-ci.sh   # longer
#
# A crash fails the run (exit 1) and leaves the input, the log and the libFuzzer
# artifacts in a temporary folder named in the summary. Once the bug is fixed, copy the
# input to tests/fuzz/corpus/<target>/regress-<what>: test_fuzz_regressions replays it on
# every ordinary build, and this run starts from it. For long runs use scripts/fuzz.sh.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
command -v clang >/dev/null || { echo "fuzz-ci.sh: clang is needed (scripts/install-deps.sh --test installs it)" >&2; exit 2; }
rc=0
FUZZ_SECONDS=${FUZZ_SECONDS:-8} FUZZ_BUILD=${FUZZ_BUILD:-$SRC/build-fuzz} \
  FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)} bash "$SRC/scripts/fuzz.sh" "$@" || rc=$?
echo "== fuzz-ci: $(( $(date +%s) - start )) s in all (build included), exit $rc"
exit "$rc"
