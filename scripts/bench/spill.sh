#!/usr/bin/env bash
# Memory-bounded group-by: $ROWS CSV rows (default 100 million) over $KEYS distinct string
# keys (default 10 million) and an int64 v, grouped by key with a declarative reduce
# (count and sum of v) under compute.memoryMB = $MEMORY_MB (default 256), so that the
# reduce-side merge has to spill (engine/spill.c). Runs luamr once under /usr/bin/time -v
# and prints its wall time, the peak RSS of its largest process (one task: what memoryMB
# bounds) against the budget (goal: under 2x; exit status 2 when over), sampled peaks of
# the map and reduce workers and of all processes together; then
# checks every group against DuckDB's count and sum (an independent computation) by
# comparing checksums of both sorted results.
# The data (streamed out by mawk, 1.3 GB at full size) goes to scripts/bench/data/.
#   bash scripts/bench/spill.sh                              # 100M rows, 10M keys, 256 MiB
#   ROWS=10000000 KEYS=1000000 bash scripts/bench/spill.sh   # quick
#   ROWS=10000000 KEYS=1000000 MEMORY_MB=32 bash scripts/bench/spill.sh   # quick, spilling
# Environment: ROWS, KEYS, MEMORY_MB, SPLIT (splitSize, default MEMORY_MB/8 MiB: the map
# side is not bounded by memoryMB, its memory follows the split), CONCURRENCY (2),
# REDUCERS (2), DUCKDB_THREADS (2), LUAMR.
source "$(dirname "$0")/lib.sh.inc"
ROWS=${ROWS:-100000000}
KEYS=${KEYS:-10000000}
MEMORY_MB=${MEMORY_MB:-256}
SPLIT=${SPLIT:-$((MEMORY_MB / 8 > 1 ? MEMORY_MB / 8 : 1))MB}
CONCURRENCY=${CONCURRENCY:-2}
REDUCERS=${REDUCERS:-2}
DUCKDB_THREADS=${DUCKDB_THREADS:-2}
csv="$DATA/spill-$ROWS-$KEYS.csv"
if [ ! -f "$csv" ]; then
  echo "generating $csv ..." >&2
  mawk -v n="$ROWS" -v keys="$KEYS" 'BEGIN { srand(2); print "k,v";
    for (r = 0; r < n; r++) printf "k%d,%d\n", int(rand() * keys), int(rand() * 1000) }' >"$csv.tmp"
  mv "$csv.tmp" "$csv"
fi
build_luamr
duckdb_setup

WORK=$(mktemp -d "${TMPDIR:-/tmp}/luamr-bench-spill.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/spill.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame() end,
  reduce = { group_by = {"k"}, agg = { n = count(), s = sum("v") } },
}
LUA
split=$SPLIT
[[ $split =~ ^[0-9]+$ ]] || split="\"$split\""
cat >"$WORK/spill.json" <<JSON
{"name": "spill-bench", "script": "spill.lua",
 "readConnector": {"manifest": ["$csv"], "format": "csv", "splitSize": $split,
                   "columns": [{"name": "k", "type": "string"}, {"name": "v", "type": "int64"}]},
 "intermediate": {"location": "$WORK/imd"},
 "writeConnector": {"location": "$WORK/out/", "format": "csv"},
 "compute": {"concurrency": $CONCURRENCY, "reducers": $REDUCERS, "memoryMB": $MEMORY_MB}}
JSON

# RSS samples every 0.2 s of luamr and its worker processes ("ms pid kib" lines): the max
# RSS from /usr/bin/time is exact but only that of the largest process; the samples tell
# which phase it was in (map and reduce workers are separate processes) and what all the
# processes hold together.
s=$(date +%s.%N)
/usr/bin/time -v -o "$WORK/time.txt" "$LUAMR" run "$WORK/spill.json" >"$WORK/log" 2>&1 &
tpid=$!
t0=$(date +%s%N)
while kill -0 "$tpid" 2>/dev/null; do
  lpid=$(pgrep -P "$tpid" | head -1 || true)
  if [ -n "$lpid" ]; then
    ms=$((($(date +%s%N) - t0) / 1000000))
    { ps -o pid=,rss= -p "$lpid"; ps -o pid=,rss= --ppid "$lpid"; } 2>/dev/null |
      awk -v ms="$ms" '{ print ms, $1, $2 }' >>"$WORK/rss.txt" || true
  fi
  sleep 0.2
done
wait "$tpid" || { echo "luamr failed:" >&2; grep -v '^\[' "$WORK/log" | tail -20 >&2; exit 1; }
e=$(date +%s.%N)
t_luamr=$(echo "$e - $s" | bc -l)
peak=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
map_ms=$(sed -n 's/^ *map: .*, \([0-9.]*\) s$/\1/p' "$WORK/log" | awk '{ printf "%d", $1 * 1000 }')
# Peak per phase: map workers (and the parent) start at once, reduce workers once the map
# phase has ended: a process first seen in the map phase's first half is a map worker.
read -r tree_peak map_peak red_peak < <(awk -v m="$((${map_ms:-0} / 2))" '
  !($2 in first) { first[$2] = $1 }
  { tot[$1] += $3; if ($3 > pk[$2]) pk[$2] = $3 }
  END { for (t in tot) if (tot[t] > tp) tp = tot[t]
        for (p in pk) if (first[p] < m) { if (pk[p] > mp) mp = pk[p] } else if (pk[p] > rp) rp = pk[p]
        print tp + 0, mp + 0, rp + 0 }' "$WORK/rss.txt")
spilled=$(sed -n 's/^ *spilled: \([0-9.]*\) MB.*/\1/p' "$WORK/log")

# The check: DuckDB's count and sum per key, and luamr's, as sorted "k,n,s" lines.
s=$(date +%s.%N)
duckdb_query --threads "$DUCKDB_THREADS" --temp-dir "$WORK/duckdb.tmp" \
  "COPY (SELECT k, count(*) AS n, sum(v) AS s FROM read_csv('$csv', columns = {'k': 'VARCHAR', 'v': 'BIGINT'}, header = true)
         GROUP BY k) TO '$WORK/duckdb.csv' (HEADER false)" >/dev/null
e=$(date +%s.%N)
t_duck=$(echo "$e - $s" | bc -l)
sort -S 25% "$WORK/duckdb.csv" -o "$WORK/duckdb.sorted"
awk -F, 'FNR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } { print $c["k"] "," $c["n"] "," $c["s"] }' \
  "$WORK"/out/*.csv | sort -S 25% -o "$WORK/luamr.sorted"
sum_d=$(md5sum <"$WORK/duckdb.sorted" | cut -d' ' -f1)
sum_l=$(md5sum <"$WORK/luamr.sorted" | cut -d' ' -f1)
totals() { awk -F, '{ g++; n += $2; s += $3 } END { printf "%.0f groups, %.0f rows, sum %.0f", g, n, s }' "$1"; }

echo "group-by of $ROWS rows over $KEYS keys ($(du -m "$csv" | cut -f1) MiB CSV), memoryMB $MEMORY_MB,"
echo "  splitSize $SPLIT, $CONCURRENCY workers, $REDUCERS reducers (one run)"
grep -E '^ +(map|reduce):' "$WORK/log" | sed 's/^ */  luamr /'
printf '  luamr wall time:           %8.2f s   (spilled %s MB)\n' "$t_luamr" "${spilled:-0}"
printf '  peak RSS, largest process: %8.1f MiB = %sx the budget (goal < 2x)\n' \
  "$(echo "$peak / 1024" | bc -l)" "$(ratio "$peak" "$((MEMORY_MB * 1024))")"
printf '  sampled peaks: map worker %.1f MiB, reduce worker %.1f MiB, all processes %.1f MiB\n' \
  "$(echo "$map_peak / 1024" | bc -l)" "$(echo "$red_peak / 1024" | bc -l)" "$(echo "$tree_peak / 1024" | bc -l)"
printf '  duckdb (check, %d threads): %7.2f s\n' "$DUCKDB_THREADS" "$t_duck"
echo "  luamr:  $(totals "$WORK/luamr.sorted"), md5 $sum_l"
echo "  duckdb: $(totals "$WORK/duckdb.sorted"), md5 $sum_d"
if [ "$sum_d" != "$sum_l" ]; then
  echo "RESULTS DIFFER: first differences (< luamr, > duckdb):" >&2
  diff "$WORK/luamr.sorted" "$WORK/duckdb.sorted" | head -10 >&2
  exit 1
fi
echo "  results agree: every key's count and sum are equal"
awk -v p="$peak" -v b="$((MEMORY_MB * 1024))" 'BEGIN { exit !(p < 2 * b) }' ||
  { echo "  peak RSS is over 2x the memory budget" >&2; exit 2; }
