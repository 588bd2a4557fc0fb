#!/usr/bin/env bash
# Shuffle to several reducers, declarative reduce with the engine's combiner, splits:
# the same answer as one reducer and as awk, keys sorted within each part.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
awk -v dir="$TMP/in" 'BEGIN { srand(5);
  for (p = 0; p < 3; p++) { file = dir "/p" p ".csv"; print "k,v,d" > file;
    for (r = 0; r < 40000; r++) printf "key_%d,%d,%.3f\n", int(rand()*3000), int(rand()*100), rand()*50 > file } }'
cat >"$TMP/decl.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame() end,
  reduce = { group_by = "k", agg = { n = count(), s = sum("v"), p90 = quantile("d", 0.9) } },
}
LUA
cat >"$TMP/fn.lua" <<'LUA'
return {
  partition_by = { "k" },
  map = function(input, ctx) return input:frame() end,
  reduce = function(f, ctx)
    return f:group_by("k"):agg{ n = count(), s = sum("v"), p90 = quantile("d", 0.9) }:sort_by("k")
  end,
}
LUA
mk() {  # mk SCRIPT REDUCERS FORMAT LOCATION [SPLIT]
  cat <<JSON
{"name": "r", "script": "$1",
 "readConnector": {"manifest": ["in/"], "format": "csv"${5:+, \"splitSize\": $5}},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "$4", "format": "$3"},
 "compute": {"concurrency": 2, "reducers": $2}}
JSON
}
tail -q -n +2 "$TMP"/in/*.csv | sort -t, -k1,1 -k3,3g | awk -F, '
  function flush() { if (n == 0) return; h = (n - 1) * 0.9; lo = int(h);
    p = (lo + 1 < n) ? v[lo] + (h - lo) * (v[lo + 1] - v[lo]) : v[lo];
    printf "%s,%d,%d,%.10g\n", key, n, s, p }
  $1 != key { flush(); key = $1; n = 0; s = 0 }
  { v[n++] = $3 + 0; s += $2 }
  END { flush() }' >"$TMP/want.csv"

mk decl.lua 4 csv parts/ >"$TMP/j1.json"
expect_status 0 run "$TMP/j1.json"
[ "$(ls "$TMP/parts" | wc -l)" = 4 ] || { ls "$TMP/parts"; fail "4 reducers write 4 parts"; }
for f in "$TMP"/parts/*.csv; do
  tail -n +2 "$f" | cut -d, -f1 >"$TMP/keys"; sort -c "$TMP/keys" || fail "keys sorted within $f"
done
tail -q -n +2 "$TMP"/parts/*.csv | awk -F, '{printf "%s,%s,%s,%.10g\n", $1, $2, $3, $4}' | sort >"$TMP/got.csv"
compare_numeric "$TMP/want.csv" "$TMP/got.csv" "4 reducers, declarative"
pass "declarative group-by over 4 reducers equals sort+awk (keys sorted in each part)"

mk fn.lua 3 json out/all.json 400000 >"$TMP/j2.json"
expect_status 0 run "$TMP/j2.json"
expect_in "$TMP/err.txt" "map: +[0-9]+ tasks over 3 files" "splits"
expect_in "$TMP/err.txt" "splits: +p0.csv [2-9] tasks, p1.csv [2-9] tasks, p2.csv [2-9] tasks \(splitSize 391 KB; 0 files whole\)" "tasks per file"
python3 - "$TMP/out/all.json" >"$TMP/got2.csv" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    print("%s,%d,%d,%.10g" % (r["k"], r["n"], r["s"], r["p90"]))
PY
sort "$TMP/got2.csv" >"$TMP/got2s.csv"
compare_numeric "$TMP/want.csv" "$TMP/got2s.csv" "3 reducers, one JSON document"
pass "a script reduce over 3 reducers with partition_by and splits merges into one JSON document"

# A mapper whose input is empty outputs a frame without columns: with several reducers
# and the engine's combiner, it simply contributes nothing.
echo "k,v,d" >"$TMP/in/empty.csv"
cat >"$TMP/decl_empty.lua" <<'LUA'
return {
  map = function(input, ctx)
    local f = input:frame()
    if #f == 0 then return nil end
    return f
  end,
  reduce = { group_by = "k", agg = { n = count(), s = sum("v"), p90 = quantile("d", 0.9) } },
}
LUA
mk decl_empty.lua 2 csv parts2/ >"$TMP/j3.json"
expect_status 0 run "$TMP/j3.json"
tail -q -n +2 "$TMP"/parts2/*.csv | awk -F, '{printf "%s,%s,%s,%.10g\n", $1, $2, $3, $4}' | sort >"$TMP/got3.csv"
compare_numeric "$TMP/want.csv" "$TMP/got3.csv" "an empty mapper among 2 reducers"
pass "a mapper with no output (no columns) among 2 reducers and the engine's combiner"

# The job's own partition function routes rows: keys below key_1000 to reducer 1, the
# rest to reducer 2; a reducer number out of range fails naming the row.
cat >"$TMP/custom.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame() end,
  partition = function(f, n, ctx)
    local out = {}
    for i, k in ipairs(f:column("k")) do out[i] = tonumber(k:sub(5)) < 1000 and 1 or 2 end
    return out
  end,
  reduce = function(f, ctx)
    return f:group_by("k"):agg{ n = count(), s = sum("v"), p90 = quantile("d", 0.9) }:sort_by("k")
  end,
}
LUA
rm -f "$TMP/in/empty.csv"
mk custom.lua 2 csv parts4/ >"$TMP/j4.json"
expect_status 0 run "$TMP/j4.json"
p0=$(ls "$TMP"/parts4/* | head -1); p1=$(ls "$TMP"/parts4/* | tail -1)
tail -n +2 "$p0" | awk -F, 'substr($1, 5) + 0 >= 1000 { bad = 1 } END { exit bad }' || fail "a key >= 1000 in the first part"
tail -n +2 "$p1" | awk -F, 'substr($1, 5) + 0 < 1000 { bad = 1 } END { exit bad }' || fail "a key < 1000 in the second part"
tail -q -n +2 "$TMP"/parts4/* | awk -F, '{printf "%s,%s,%s,%.10g\n", $1, $2, $3, $4}' | sort >"$TMP/got4.csv"
compare_numeric "$TMP/want.csv" "$TMP/got4.csv" "a partition function over 2 reducers"
pass "a Lua partition function decides each row's reducer; results equal sort+awk"

sed 's/and 1 or 2/and 1 or 3/' "$TMP/custom.lua" >"$TMP/custom_bad.lua"
mk custom_bad.lua 2 csv parts5/ >"$TMP/j5.json"
expect_status 1 run "$TMP/j5.json"
expect_in "$TMP/err.txt" "partition gave row [0-9]+ the reducer 3; reducers are 1..2" "out-of-range reducer named"
[ ! -e "$TMP/parts5" ] || [ -z "$(ls "$TMP/parts5")" ] || fail "a failed job left output behind"
pass "a partition function returning a reducer out of range fails naming the row"
