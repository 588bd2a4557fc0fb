#!/usr/bin/env bash
# The command line: help, usage errors (exit 2), validate.
. "$(dirname "$0")/lib.sh.inc"
expect_status 0 --help; expect_in "$TMP/out.txt" "dry-run" "--help lists dry-run"
for c in run dry-run validate; do
  expect_status 0 "$c" --help; expect_in "$TMP/out.txt" "usage: luamr $c" "$c --help"
done
expect_status 2; expect_status 2 frobnicate; expect_in "$TMP/err.txt" "unknown command 'frobnicate'" "unknown command"
expect_status 2 run; expect_status 2 run --bogus x.json; expect_in "$TMP/err.txt" "unknown option" "unknown option"
expect_status 2 dry-run --sample zero x.json; expect_in "$TMP/err.txt" "positive whole number" "bad --sample"
[ "$(wc -l <"$TMP/err.txt")" = 1 ] || fail "a usage error is one line"
pass "help and usage errors"

ex="$LUAMR_SOURCE_DIR/scripts/examples"
for cfg in "$ex"/*.json; do expect_status 0 validate "$cfg"; done
pass "the shipped example configs validate"

mkdir -p "$TMP/v"; cp "$ex/wordcount.lua" "$TMP/v/"
printf '{"name":"x","script":"wordcount.lua","readConnector":{"manifest":["a"],"format":"xml"},"writeConnector":{"location":"o.json"}}' >"$TMP/v/bad.json"
expect_status 1 validate "$TMP/v/bad.json"; expect_in "$TMP/err.txt" "readConnector.format" "names the bad field"
printf '{"name":"x","script":"wordcount.lua","readConnector":{"manifest":["a"]},"writeConnector":{"location":"o.json","fromat":"csv"}}' >"$TMP/v/typo.json"
expect_status 1 validate "$TMP/v/typo.json"; expect_in "$TMP/err.txt" "fromat" "names the unknown field"
printf 'return { map = function(input, ctx)\n  local x = = 1\nend }\n' >"$TMP/v/syntax.lua"
printf '{"name":"x","script":"syntax.lua","readConnector":{"manifest":["a"]},"writeConnector":{"location":"o.json"}}' >"$TMP/v/syn.json"
expect_status 1 validate "$TMP/v/syn.json"; expect_in "$TMP/err.txt" "syntax.lua:2" "names the script line"
expect_status 1 run "$TMP/v/syn.json"
pass "validate names the wrong field or script line, and run refuses to start"
