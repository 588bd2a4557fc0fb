#!/usr/bin/env bash
# Map tasks within the memory budget. A gzip CSV (not splittable: one map task) of 2.5M rows
# read with input:frames() and ctx:emit under memoryMB 32 streams its output to the
# intermediate: the declared group-by equals awk's, a Lua combine runs once per flushed
# batch, and the peak RSS stays under 2x the budget. input:frame() on the same file fails
# with a clear error instead of growing past the budget. Types that change between batches
# are widened (int64 then float64), or rejected naming the column.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
mawk 'BEGIN { srand(21); print "user,kind,bytes";
  for (i = 0; i < 2500000; i++)
    printf "u%d,%s,%d\n", int(rand() * 30000), (rand() < 0.5 ? "view" : "click"), int(rand() * 100000) }' \
  | gzip -1 >"$TMP/in/ev.csv.gz"
zcat "$TMP/in/ev.csv.gz" | awk -F, 'NR > 1 && $2 == "view" { n[$1]++; s[$1] += $3 }
  END { for (u in n) printf "%s,%d,%d\n", u, n[u], s[u] }' | sort >"$TMP/want.csv"

# The rows of an output (one file, or a folder of part files with a header each).
rows_of() { if [ -d "$1" ]; then tail -q -n +2 "$1"/part-*; else tail -n +2 "$1"; fi; }
mk() {  # mk SCRIPT OUT [INPUT]
  cat <<JSON
{"name": "ms", "script": "$1",
 "readConnector": {"manifest": ["${3:-in/ev.csv.gz}"], "format": "csv"},
 "intermediate": {"location": "imd-$2"},
 "writeConnector": {"location": "$2", "format": "csv"},
 "compute": {"concurrency": 1, "reducers": 2, "memoryMB": 32}}
JSON
}

cat >"$TMP/stream.lua" <<'LUA'
return {
  map = function(input, ctx)
    for f in input:frames() do ctx:emit(f:filter("kind", "==", "view"):select("user", "bytes")) end
  end,
  reduce = { group_by = {"user"}, agg = { n = count(), s = sum("bytes") } },
}
LUA
mk stream.lua out1.csv >"$TMP/j1.json"
/usr/bin/time -v -o "$TMP/time.txt" "$LUAMR" run "$TMP/j1.json" >"$TMP/out.txt" 2>"$TMP/err.txt" ||
  { cat "$TMP/err.txt"; fail "streaming job failed"; }
expect_in "$TMP/err.txt" "map: +1 tasks over 1 files, 2500000 records in" "one map task read every record"
rows_of "$TMP/out1.csv" | sort >"$TMP/got.csv"
cmp -s "$TMP/want.csv" "$TMP/got.csv" || { diff "$TMP/want.csv" "$TMP/got.csv" | head; fail "streamed group-by differs from awk"; }
pass "input:frames() + ctx:emit over a 2.5M-row gzip CSV: group-by equals awk ($(wc -l <"$TMP/want.csv") users)"

rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TMP/time.txt")
raw_mb=$(( $(zcat "$TMP/in/ev.csv.gz" | wc -c) >> 20 ))
if [ "${LUAMR_SANITIZED:-0}" = 1 ] || nm -C "$LUAMR" 2>/dev/null | grep -q __asan_init; then
  pass "peak RSS $((rss_kb >> 10)) MiB (not checked under sanitizers)"
else
  [ "$rss_kb" -lt $((64 << 10)) ] || fail "peak RSS $((rss_kb >> 10)) MiB is over 2x memoryMB 32 (input: $raw_mb MB of CSV)"
  pass "peak RSS $((rss_kb >> 10)) MiB under 2x memoryMB 32 while one task read $raw_mb MB of CSV"
fi

# A Lua combine runs on every flushed batch, and the function reduce finishes the sums.
cat >"$TMP/combine.lua" <<'LUA'
return {
  map = function(input, ctx)
    for f in input:frames(50000) do ctx:emit(f:filter("kind", "==", "view"):select("user", "bytes")) end
  end,
  combine = function(f, ctx)
    ctx:count("combine_calls")
    return f:group_by("user"):agg{ n = count(), s = sum("bytes") }
  end,
  partition_by = {"user"},
  reduce = function(f, ctx)
    return f:group_by("user"):agg{ n = sum("n"), s = sum("s") }
  end,
}
LUA
mk combine.lua out2.csv >"$TMP/j2.json"
expect_status 0 run "$TMP/j2.json"
calls=$(grep -oE 'combine_calls[^0-9]*[0-9]+' "$TMP/err.txt" | grep -oE '[0-9]+$' | head -1)
[ -n "$calls" ] && [ "$calls" -gt 1 ] || { cat "$TMP/err.txt"; fail "combine ran ${calls:-0} times, expected once per flushed batch"; }
rows_of "$TMP/out2.csv" | sort >"$TMP/got2.csv"
cmp -s "$TMP/want.csv" "$TMP/got2.csv" || { diff "$TMP/want.csv" "$TMP/got2.csv" | head; fail "combined output differs from awk"; }
pass "a Lua combine ran on each of $calls flushed batches; result equals awk"

# input:frame() on the same file stops at half the budget with a message that says what to do.
cat >"$TMP/whole.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame():filter("kind", "==", "view") end,
  reduce = { group_by = {"user"}, agg = { n = count() } },
}
LUA
mk whole.lua out3.csv >"$TMP/j3.json"
expect_status 1 run "$TMP/j3.json"
expect_in "$TMP/err.txt" "input:frame\(\): .*ev.csv.gz: the frame of the input passed 16.0 MB at record [0-9]+, half of the task's memory budget .*input:frames\(\)" "clear error"
[ ! -e "$TMP/out3.csv" ] || fail "a failed job left output behind"
pass "input:frame() past half the budget fails naming the file, the record and the way out"

# Types that change between batches: int64 then float64 is widened ...
awk 'BEGIN { print "k,v"; for (i = 0; i < 30000; i++) printf "k%d,%s\n", i % 7, (i < 20000 ? i : i + 0.5) }' >"$TMP/in/widen.csv"
awk -F, 'NR > 1 { s[$1] += $2 } END { for (k in s) printf "%s,%.1f\n", k, s[k] }' "$TMP/in/widen.csv" | sort >"$TMP/want4.csv"
cat >"$TMP/widen.lua" <<'LUA'
return {
  map = function(input, ctx) for f in input:frames(10000) do ctx:emit(f) end end,
  reduce = { group_by = {"k"}, agg = { s = sum("v") } },
}
LUA
mk widen.lua out4.csv in/widen.csv >"$TMP/j4.json"
expect_status 0 run "$TMP/j4.json"
rows_of "$TMP/out4.csv" | awk -F, '{ printf "%s,%.1f\n", $1, $2 }' | sort >"$TMP/got4.csv"
cmp -s "$TMP/want4.csv" "$TMP/got4.csv" || { diff "$TMP/want4.csv" "$TMP/got4.csv" | head; fail "widened sums differ from awk"; }
pass "a column int64 in early batches and float64 in later ones is widened; sums equal awk"

# ... a number column that turns into text is an error naming the column.
# (enough int64 rows that ctx:emit flushed them before the text arrives)
awk 'BEGIN { print "k,v"; for (i = 0; i < 500000; i++) printf "k%d,%s\n", i % 7, (i < 400000 ? i : "n/a") }' >"$TMP/in/clash.csv"
cat >"$TMP/clash.lua" <<'LUA'
return {
  map = function(input, ctx) for f in input:frames(100000) do ctx:emit(f) end end,
  partition_by = {"k"},
  reduce = function(f, ctx) return f end,
}
LUA
mk clash.lua out5.csv in/clash.csv >"$TMP/j5.json"
expect_status 1 run "$TMP/j5.json"
expect_in "$TMP/err.txt" "column 'v' is int64 in the rows output so far and string in a later batch" "type clash named"
[ ! -e "$TMP/out5.csv" ] || fail "a failed job left output behind"
pass "a column that turns from numbers to text fails naming the column"
