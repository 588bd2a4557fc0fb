#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c, clang + ASan + UBSan) and runs each for
# FUZZ_SECONDS (default 60) seconds, starting from tests/fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=10 scripts/fuzz.sh csv  # named targets only
#
# Env: FUZZ_SECONDS, FUZZ_BUILD (build dir, default build-fuzz), FUZZ_OUT (new corpus
# entries, crash artifacts and logs; default a temporary folder that is kept when
# something crashed), FUZZ_MAX_LEN (default 8192), FUZZ_JOBS (cmake -j, default 2),
# FUZZ_KEEP_GOING=1 (libFuzzer -fork=1 mode: keep fuzzing past crashes, collecting every
# distinct artifact instead of stopping at the first), FUZZ_ARGS (more libFuzzer flags).
# New interesting inputs go to FUZZ_OUT, never into the repository: copy a crash input
# to tests/fuzz/corpus/<target>/regress-<what> by hand once it is understood, and
# test_fuzz_regressions replays it on every build.
# Exit status: 0 when no target crashed, 1 otherwise (the summary names the artifacts).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${FUZZ_SECONDS:-60}
BUILD=${FUZZ_BUILD:-$SRC/build-fuzz}
MAX_LEN=${FUZZ_MAX_LEN:-8192}
JOBS=${FUZZ_JOBS:-2}
ALL=(csv jsonl lines gzip warc imf config)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")

command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang)" >&2; exit 2; }
for t in "${TARGETS[@]}"; do
  [ -f "$SRC/tests/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: unknown target '$t' (known: ${ALL[*]})" >&2; exit 2; }
done

echo "== configuring $BUILD (clang, LUAMR_FUZZ, ASan+UBSan)"
CC=clang cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUAMR_FUZZ=ON \
  -DLUAMR_SANITIZE=ON >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]/#/fuzz_}" >/dev/null

OUT=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/luamr-fuzz.XXXXXX")}
mkdir -p "$OUT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
printf '%-8s %10s %8s %s\n' target execs seconds result >"$OUT/summary.txt"
for t in "${TARGETS[@]}"; do
  mkdir -p "$OUT/corpus-$t" "$OUT/artifacts-$t"
  echo "== fuzz_$t for ${SECONDS_EACH}s"
  rc=0
  extra=()
  [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && extra=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  # The scratch corpus comes first: libFuzzer writes new inputs only to the first folder.
  # shellcheck disable=SC2086
  "$BUILD/fuzz_$t" "$OUT/corpus-$t" "$SRC/tests/fuzz/corpus/$t" \
    -max_total_time="$SECONDS_EACH" -max_len="$MAX_LEN" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$OUT/artifacts-$t/" -print_final_stats=1 "${extra[@]}" ${FUZZ_ARGS:-} \
    >"$OUT/$t.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log" | tail -1)
  secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$OUT/$t.log" | tail -1)
  # fork mode prints no final stats: take the last "#N:" progress line.
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\):.*/\1/p' "$OUT/$t.log" | tail -1)
  [ -z "$(ls -A "$OUT/artifacts-$t")" ] || rc=1
  if [ "$rc" = 0 ]; then
    result=ok
  else
    result="CRASH: $(ls "$OUT/artifacts-$t" | head -3 | tr '\n' ' ')"
    failed+=("$t")
    grep -E "^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz invariant)" "$OUT/$t.log" | head -5 || true
  fi
  printf '%-8s %10s %8s %s\n' "$t" "${execs:-?}" "$SECONDS_EACH" "$result" >>"$OUT/summary.txt"
  echo "   execs=${execs:-?} (${secs:-?}/s) $result"
done
echo "== summary ($OUT)"
cat "$OUT/summary.txt"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]}; logs and inputs in $OUT" >&2
  exit 1
fi
[ -n "${FUZZ_OUT:-}" ] || rm -rf "$OUT"
