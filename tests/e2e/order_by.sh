#!/usr/bin/env bash
# order_by: a job's whole output in one order, under a memory budget. Each reducer sorts
# its output with the external sort (spilling past its share of memoryMB) and the parts
# are merged into one file. Checked against sort(1); a declared group-by ordered by an
# aggregate against awk | sort; bad order_by specs fail before any task runs.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
mawk 'BEGIN { srand(3); print "k,v"; for (i = 0; i < 1000000; i++)
  printf "k%d,%d\n", int(rand() * 200000), int(rand() * 1000000) }' >"$TMP/in/d.csv"

mk() {  # mk SCRIPT OUT FORMAT [MODE]
  cat <<JSON
{"name": "ob", "script": "$1", "taskMode": "${4:-MAPPER_AND_REDUCER}",
 "readConnector": {"manifest": ["in/d.csv"], "format": "csv"},
 "intermediate": {"location": "imd-$2"},
 "writeConnector": {"location": "$2", "format": "$3"},
 "compute": {"concurrency": 2, "reducers": 3, "memoryMB": 16}}
JSON
}

# 1M rows (14 MB of CSV) sorted by v descending, then k, by 3 reducers within 16 MB each
cat >"$TMP/sort.lua" <<'LUA'
return {
  map = function(input, ctx) for f in input:frames() do ctx:emit(f) end end,
  partition_by = {"k"},
  order_by = { {"v", "desc"}, "k" },
}
LUA
mk sort.lua out1/ csv >"$TMP/j1.json"
expect_status 0 run "$TMP/j1.json"
expect_in "$TMP/err.txt" "spilled: [0-9.]+ MB to local disk" "the sort spilled"
[ "$(ls "$TMP/out1" | wc -l)" = 1 ] || { ls "$TMP/out1"; fail "expected one output file"; }
tail -n +2 "$TMP/in/d.csv" | sort -t, -k2,2nr -k1,1 >"$TMP/want1.csv"
tail -q -n +2 "$TMP/out1"/* >"$TMP/got1.csv"
cmp -s "$TMP/want1.csv" "$TMP/got1.csv" || { diff "$TMP/want1.csv" "$TMP/got1.csv" | head; fail "order differs from sort(1)"; }
pass "order_by over 1M rows, 3 reducers, memoryMB 16: one file, spilled, equal to sort -k2,2nr -k1,1"

# a declared group-by ordered by an aggregate, as one JSON document
cat >"$TMP/top.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame() end,
  reduce = { group_by = {"k"}, agg = { n = count(), s = sum("v") } },
  order_by = { {"n", desc = true}, {"s", "desc"}, "k" },
}
LUA
mk top.lua out2.json json >"$TMP/j2.json"
expect_status 0 run "$TMP/j2.json"
awk -F, 'NR > 1 { n[$1]++; s[$1] += $2 } END { for (k in n) printf "%s,%d,%d\n", k, n[k], s[k] }' "$TMP/in/d.csv" |
  sort -t, -k2,2nr -k3,3nr -k1,1 >"$TMP/want2.csv"
sed -n 's/^.*"k":"\([^"]*\)","n":\([0-9]*\),"s":\([0-9]*\)}.*$/\1,\2,\3/p' "$TMP/out2.json" >"$TMP/got2.csv"
cmp -s "$TMP/want2.csv" "$TMP/got2.csv" || { diff "$TMP/want2.csv" "$TMP/got2.csv" | head; fail "ordered group-by differs from awk | sort"; }
pass "declared group-by ordered by count desc, sum desc, key: equal to awk | sort ($(wc -l <"$TMP/want2.csv") groups)"

# mistakes are caught before any task runs, or name the column
cat >"$TMP/badspec.lua" <<'LUA'
return { map = function(input, ctx) return input:frame() end, partition_by = {"k"},
         order_by = { {"v", "down"} } }
LUA
mk badspec.lua out3.csv csv >"$TMP/j3.json"
expect_status 1 run "$TMP/j3.json"
expect_in "$TMP/err.txt" "order_by: direction must be \"asc\" or \"desc\", got 'down'" "bad direction"
cat >"$TMP/nocol.lua" <<'LUA'
return { map = function(input, ctx) return input:frame() end, partition_by = {"k"},
         order_by = "missing" }
LUA
mk nocol.lua out4.csv csv >"$TMP/j4.json"
expect_status 1 run "$TMP/j4.json"
expect_in "$TMP/err.txt" "order_by: .*missing" "unknown column named"
[ ! -e "$TMP/out4.csv" ] || fail "a failed job left output behind"
mk sort.lua out5/ csv MAPPER_ONLY >"$TMP/j5.json"
expect_status 1 run "$TMP/j5.json"
expect_in "$TMP/err.txt" "order_by sorts the reducers' output, and taskMode MAPPER_ONLY has no reduce phase" "mode check"
pass "a bad direction, an unknown column and MAPPER_ONLY fail clearly and leave no output"

# the shipped example: batches, a declared group-by, 2 reducers, ordered by revenue
cp -r "$LUAMR_SOURCE_DIR/scripts/examples/top_products."* "$LUAMR_SOURCE_DIR/scripts/examples/data" "$TMP/"
expect_status 0 run "$TMP/top_products.json"
awk -F, 'FNR > 1 && $4 > 0 { n[$3]++; s[$3] += $5 } END { for (p in n) printf "%s,%d,%.2f\n", p, n[p], s[p] }' \
  "$TMP"/data/sales-*.csv | sort -t, -k3,3nr -k1,1 >"$TMP/want6.csv"
tail -n +2 "$TMP/out/top_products.csv" | awk -F, '{ printf "%s,%d,%.2f\n", $1, $2, $3 }' >"$TMP/got6.csv"
cmp -s "$TMP/want6.csv" "$TMP/got6.csv" || { diff "$TMP/want6.csv" "$TMP/got6.csv"; fail "top_products differs from awk"; }
pass "scripts/examples/top_products: revenue per product, best first, equals awk"
