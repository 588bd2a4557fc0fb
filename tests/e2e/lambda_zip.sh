#!/usr/bin/env bash
# The deployment zip: unzipped into an empty folder, bootstrap starts with a clean
# environment (no LD_LIBRARY_PATH: its own lib/ through $ORIGIN/lib), every library it
# loads comes from lib/ or is glibc / libgcc_s (which provided.al2023 has), and no file
# needs a glibc symbol newer than 2.34 (objdump -T, independently of luamr's own check).
. "$(dirname "$0")/lib.sh.inc"
. "$LUAMR_SOURCE_DIR/tests/lambda/lib.sh.inc"
sanitized=0
lambda_sanitized && sanitized=1
lambda_package
expect_in "$TMP/package.txt" "function.zip: bootstrap and [0-9]+ libraries" "package summary"

mkdir "$TMP/task"
(cd "$TMP/task" && unzip -q "$TMP/function.zip")
[ -x "$TMP/task/bootstrap" ] || fail "bootstrap is not executable after unzip"
readelf -d "$TMP/task/bootstrap" | grep -q 'RPATH.*\[\$ORIGIN/lib\]' || fail "bootstrap has no DT_RPATH \$ORIGIN/lib"

# Every shared object the loader picks must be in lib/ or be glibc / libgcc_s.
env -i /usr/bin/ldd "$TMP/task/bootstrap" >"$TMP/ldd.txt" 2>&1 || { cat "$TMP/ldd.txt"; fail "ldd failed"; }
grep -q 'not found' "$TMP/ldd.txt" && { cat "$TMP/ldd.txt"; fail "a library is missing from the zip"; }
outside=$(awk '/=>/ && $3 !~ /\/task\/(\.\/)?lib\// {print $1}' "$TMP/ldd.txt" |
  grep -Ev '^(libc|libm|libdl|libpthread|librt|libresolv|libgcc_s)\.so' |
  grep -Ev '^(libasan|libubsan|libstdc\+\+)\.so' || true)
[ -z "$outside" ] || { cat "$TMP/ldd.txt"; fail "loaded from the system instead of lib/: $outside"; }
nlibs=$(ls "$TMP/task/lib" | wc -l)
pass "zip unpacks to bootstrap + $nlibs libraries; ldd resolves them all to lib/ or glibc"

# Started with a clean environment and no Runtime API, bootstrap loads and says why it stops.
got=0
(cd "$TMP/task" && env -i ./bootstrap >"$TMP/boot.out" 2>&1) || got=$?
[ "$got" = 1 ] || { cat "$TMP/boot.out"; fail "bootstrap exited $got, expected 1"; }
grep -q '"level":"fatal".*AWS_LAMBDA_RUNTIME_API is not set' "$TMP/boot.out" || { cat "$TMP/boot.out"; fail "no JSON fatal line"; }
pass "bootstrap starts in a clean environment and logs JSON"

if [ $sanitized = 1 ]; then
  pass "glibc symbol versions not checked in a sanitizer build"
  exit 0
fi
newest=""
for f in "$TMP/task/bootstrap" "$TMP"/task/lib/*; do
  v=$(objdump -T "$f" | awk '$0 ~ /\*UND\*/' | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -1)
  [ -n "$v" ] || continue
  case $(printf '%s\nGLIBC_2.34\n' "$v" | sort -V | tail -1) in
    GLIBC_2.34) ;;
    *) fail "$(basename "$f") needs $v (provided.al2023 has glibc 2.34)";;
  esac
  newest=$(printf '%s\n%s\n' "$newest" "$v" | sort -V | tail -1)
done
pass "no file in the zip needs a glibc symbol newer than 2.34 (newest: $newest)"
