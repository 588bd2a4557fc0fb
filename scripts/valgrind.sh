#!/usr/bin/env bash
# Runs the Check unit tests (tests/unit/test_*.c; not the end-to-end tests, and a plain
# -O2 -g build, not the sanitizer one) under valgrind memcheck:
#   valgrind --error-exitcode=1 --leak-check=full
# with CK_FORK=no, so each test's checks run in the process valgrind watches. Any memory
# error or definite/possible leak fails that test. Prints one line per test and a summary.
# test_s3 keeps CK_FORK=yes: its checks rely on a fresh process each (environment,
# credentials files, one fork test); valgrind follows those forked children and checks
# each at its exit all the same.
#
#   scripts/valgrind.sh                      # every unit test
#   scripts/valgrind.sh test_frame test_imf  # named tests only
#
# Env: VALGRIND_FORK_TESTS (tests run with CK_FORK=yes, default "test_s3"),
# VALGRIND_BUILD (build dir, default build-valgrind), VALGRIND_JOBS (tests run side
# by side, default nproc), VALGRIND_OUT (logs; default a temporary folder kept when a
# test failed), VALGRIND_ARGS (more valgrind flags).
# Suppressions: tests/valgrind.supp (LuaJIT-internal false positives only; see there).
# Exit status: 0 when every test passed cleanly, 1 otherwise.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${VALGRIND_BUILD:-$SRC/build-valgrind}
JOBS=${VALGRIND_JOBS:-$(nproc)}
if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing valgrind" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
  else
    echo "valgrind.sh: valgrind is needed (apt-get install valgrind)" >&2
    exit 2
  fi
fi

TESTS=("$@")
if [ ${#TESTS[@]} -eq 0 ]; then
  for f in "$SRC"/tests/unit/test_*.c; do TESTS+=("$(basename "$f" .c)"); done
fi
for t in "${TESTS[@]}"; do
  [ -f "$SRC/tests/unit/$t.c" ] || { echo "valgrind.sh: no tests/unit/$t.c" >&2; exit 2; }
done

echo "== building ${#TESTS[@]} unit tests in $BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUAMR_SANITIZE=OFF >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target "${TESTS[@]}" >/dev/null

OUT=${VALGRIND_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/luamr-valgrind.XXXXXX")}
mkdir -p "$OUT"
VALGRIND_FORK_TESTS=${VALGRIND_FORK_TESTS-test_s3}
export SRC BUILD OUT VALGRIND_ARGS VALGRIND_FORK_TESTS
run_one() {
  local t=$1 rc=0 start fork=no
  start=$(date +%s)
  case " $VALGRIND_FORK_TESTS " in *" $t "*) fork=yes ;; esac
  # Without fork there is no per-check timeout; with it, valgrind needs a generous one.
  # shellcheck disable=SC2086
  (cd "$BUILD" && CK_FORK=$fork CK_DEFAULT_TIMEOUT=1200 LUAMR_SOURCE_DIR="$SRC" \
     valgrind --error-exitcode=1 --leak-check=full --num-callers=30 \
       --suppressions="$SRC/tests/valgrind.supp" ${VALGRIND_ARGS:-} "./$t") \
    >"$OUT/$t.log" 2>&1 || rc=$?
  local errs
  errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$OUT/$t.log" | tail -1)
  printf '%-28s %s %5ss  valgrind errors: %s\n' "$t" "$([ "$rc" = 0 ] && echo ok || echo FAIL)" \
    "$(( $(date +%s) - start ))" "${errs:-?}" | tee "$OUT/$t.result"
}
export -f run_one
start=$(date +%s)
echo "== running under valgrind, $JOBS at a time (logs in $OUT)"
printf '%s\n' "${TESTS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}

failed=()
for t in "${TESTS[@]}"; do
  grep -q " ok " "$OUT/$t.result" 2>/dev/null || failed+=("$t")
done
echo "== summary: $(( ${#TESTS[@]} - ${#failed[@]} )) of ${#TESTS[@]} clean in $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo "--- $t ($OUT/$t.log)"
    grep -E "^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|Argument|[0-9,]+ bytes in .* (definitely|possibly))|^[0-9]+%: Checks|:[EF]:" \
      "$OUT/$t.log" | head -8 || true
  done
  echo "valgrind.sh: not clean: ${failed[*]}; logs in $OUT" >&2
  exit 1
fi
[ -n "${VALGRIND_OUT:-}" ] || rm -rf "$OUT"
