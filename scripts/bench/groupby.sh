#!/usr/bin/env bash
# The engine-core group-by benchmark: 20 million CSV rows (a string key with ~1,000
# distinct values, a second with ~100, an int64 and a float64); luamr computes count, sum
# and p90 of the float per first key; mawk computes count and sum alone in the same run.
# Prints medians of $RUNS runs and the ratio (< 1 means luamr is faster).
. "$(dirname "$0")/lib.sh.inc"
ROWS=${ROWS:-20000000}
csv=$(groupby_csv "$ROWS")   # made on first use (lib.sh.inc)
build_luamr
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cat >"$work/gb.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame():select("k1", "f") end,
  reduce = function(f, ctx)
    return f:group_by("k1"):agg{ n = count(), s = sum("f"), p90 = quantile("f", 0.9) }
  end,
}
LUA
cat >"$work/gb.json" <<JSON
{"name": "groupby-bench", "script": "gb.lua",
 "readConnector": {"manifest": ["$csv"], "format": "csv"${SPLIT:+, \"splitSize\": $SPLIT}},
 "intermediate": {"location": "$work/imd"},
 "writeConnector": {"location": "$work/out.csv", "format": "csv"},
 "compute": {"concurrency": ${CONCURRENCY:-2}}}
JSON
t_luamr=$(median_time "$LUAMR" run -q "$work/gb.json")
t_mawk=$(median_time mawk -F, 'NR > 1 { n[$1]++; s[$1] += $4 } END { for (k in n) print k, n[k], s[k] }' "$csv")
echo "rows=$ROWS runs=$RUNS (medians)"
echo "luamr count+sum+p90: ${t_luamr}s"
echo "mawk  count+sum:     ${t_mawk}s"
echo "ratio luamr/mawk:    $(ratio "$t_luamr" "$t_mawk")"
