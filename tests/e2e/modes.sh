#!/usr/bin/env bash
# Task modes: MAPPER_ONLY then REDUCER_ONLY gives what MAPPER_AND_REDUCER gives, and
# MAPPER_ONLY writes one part per mapper; dry-run samples and writes to its own folder.
. "$(dirname "$0")/lib.sh.inc"
ex="$LUAMR_SOURCE_DIR/scripts/examples"
cp -r "$ex/data" "$TMP/data"; cp "$ex/sales_by_region.lua" "$TMP/"
mk() {  # mk MODE OUT
  cat <<JSON
{"name": "sales", "script": "sales_by_region.lua", "taskMode": "$1",
 "readConnector": {"manifest": ["data/sales-*.csv"], "format": "csv"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "$2", "format": "csv"}}
JSON
}
mk MAPPER_AND_REDUCER out/full.csv >"$TMP/full.json"
mk MAPPER_ONLY parts/ >"$TMP/map.json"
mk REDUCER_ONLY out/reduced.csv >"$TMP/red.json"
expect_status 0 run "$TMP/full.json"
expect_status 0 run "$TMP/map.json"
[ "$(ls "$TMP/parts" | wc -l)" = 2 ] || { ls "$TMP/parts"; fail "MAPPER_ONLY writes one part per mapper"; }
rows=$(cat "$TMP"/parts/*.csv | grep -vc '^region,')
[ "$rows" = 5000 ] || fail "MAPPER_ONLY parts hold every row ($rows)"
expect_status 0 run "$TMP/red.json"
cmp "$TMP/out/full.csv" "$TMP/out/reduced.csv" || fail "REDUCER_ONLY over MAPPER_ONLY's intermediates differs from MAPPER_AND_REDUCER"
pass "MAPPER_ONLY + REDUCER_ONLY == MAPPER_AND_REDUCER"

# sums per region/product equal awk's
tail -n +2 "$TMP/out/full.csv" | awk -F, '{printf "%s %s %d %.2f\n", $1, $2, $3, $4}' >"$TMP/got.txt"
tail -q -n +2 "$TMP"/data/sales-*.csv | awk -F, '{n[$2" "$3]++; s[$2" "$3]+=$5} END {for (k in n) printf "%s %d %.2f\n", k, n[k], s[k]}' | sort >"$TMP/want.txt"
compare_numeric "$TMP/want.txt" "$TMP/got.txt" "sales by region"
pass "sales by region equals awk"

(cd "$TMP" && expect_status 0 dry-run full.json --sample 100 --out "$TMP/dry")
expect_in "$TMP/out.txt" "region" "dry-run prints the head of the result"
n=$(tail -n +2 "$TMP/dry/full.csv" | awk -F, '{s += $3} END {print s}')
[ "$n" = 200 ] || fail "dry-run --sample 100 over 2 files reads 200 records ($n)"
pass "dry-run samples and writes under --out"
