#!/usr/bin/env bash
# The engine-core group-by benchmark: 20 million CSV rows (a string key with ~1,000
# distinct values, a second with ~100, an int64 and a float64); luamr computes count, sum
# and p90 of the float per first key; mawk computes count and sum alone in the same run.
# Prints medians of $RUNS runs and the ratio (< 1 means luamr is faster).
# luamr runs the job as a user would write it: the reduce declared as a group-by (the
# engine combines in the mappers) over 16 MB splits on $CONCURRENCY (2) workers.
# SPLIT=0 reads the file as one task.
. "$(dirname "$0")/lib.sh.inc"
ROWS=${ROWS:-20000000}
csv=$(groupby_csv "$ROWS")   # made on first use (lib.sh.inc)
build_luamr
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cat >"$work/gb.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame() end,
  reduce = { group_by = {"k1"}, agg = { n = count(), s = sum("f"), p90 = quantile("f", 0.9) } },
}
LUA
cat >"$work/gb.json" <<JSON
{"name": "groupby-bench", "script": "gb.lua",
 "readConnector": {"manifest": ["$csv"], "format": "csv", "splitSize": ${SPLIT:-16777216}},
 "intermediate": {"location": "$work/imd"},
 "writeConnector": {"location": "$work/out.csv", "format": "csv"},
 "compute": {"concurrency": ${CONCURRENCY:-2}}}
JSON
t_luamr=$(median_time "$LUAMR" run -q "$work/gb.json")
# the answer must be right before its time means anything: counts and sums against mawk
tail -n +2 "$work/out.csv" | awk -F, '{ printf "%s %d %.3f\n", $1, $2, $3 }' | sort >"$work/got"
mawk -F, 'NR > 1 { n[$1]++; s[$1] += $4 } END { for (k in n) printf "%s %d %.3f\n", k, n[k], s[k] }' "$csv" |
  sort >"$work/want"
cmp -s "$work/got" "$work/want" || { diff "$work/want" "$work/got" | head -5; echo "luamr and mawk disagree" >&2; exit 1; }
t_mawk=$(median_time mawk -F, 'NR > 1 { n[$1]++; s[$1] += $4 } END { for (k in n) print k, n[k], s[k] }' "$csv")
echo "rows=$ROWS runs=$RUNS (medians)"
echo "luamr count+sum+p90: ${t_luamr}s"
echo "mawk  count+sum:     ${t_mawk}s"
echo "ratio luamr/mawk:    $(ratio "$t_luamr" "$t_mawk")"
