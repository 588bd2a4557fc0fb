#!/usr/bin/env bash
# Builds luamr and runs every test: the Check unit tests and the end-to-end tests
# (including S3 against a local S3-compatible server), then the same suite built with
# AddressSanitizer and UndefinedBehaviorSanitizer, then a short run of every libFuzzer
# target (scripts/fuzz-ci.sh). Installs what is missing first.
# LUAMR_SKIP_SANITIZE=1 skips the sanitizer suite, LUAMR_SKIP_FUZZ=1 the fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test

jobs=$(nproc)
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 900)
}

echo "== release build: unit and end-to-end tests"
run_suite build
if [ "${LUAMR_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== ASan + UBSan build: the same suite"
  # CK_TIMEOUT_MULTIPLIER: Check's 120 s per test case is tight for the data-heavy cases
  # (reader splits) under ASan on 2 busy cores; ctest's own 300 s per program still applies.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 CK_TIMEOUT_MULTIPLIER=2 \
    LUAMR_SANITIZED=1 run_suite build-asan -DLUAMR_SANITIZE=ON
fi
if [ "${LUAMR_SKIP_FUZZ:-0}" != "1" ]; then
  echo "== fuzz: every libFuzzer target for a few seconds (LUAMR_SKIP_FUZZ=1 skips it)"
  bash scripts/fuzz-ci.sh
fi
