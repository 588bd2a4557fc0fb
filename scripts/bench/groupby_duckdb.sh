#!/usr/bin/env bash
# luamr against DuckDB on the group-by benchmark's CSV (groupby.sh's data: 20 million rows,
# k1 with ~1,000 distinct string keys, k2 ~100, an int64 i and a float64 f): count, sum and
# exact p90 of f per k1. luamr splits the file into byte ranges on $CONCURRENCY workers,
# once with a function reduce and once with the declarative reduce (engine combiner);
# DuckDB runs
#   SELECT k1, count(*), sum(f), quantile_cont(f, 0.9) FROM read_csv(...) GROUP BY k1
# on $DUCKDB_THREADS threads. All three run in turn, $RUNS rounds, in one run; the results
# must agree (counts exactly, sums and p90 within a relative 1e-9) before the medians and
# the ratios luamr/duckdb (< 1: luamr is faster) are printed.
#   RUNS=3 bash scripts/bench/groupby_duckdb.sh
#   ROWS=2000000 RUNS=1 bash scripts/bench/groupby_duckdb.sh          # a quick check
#   SPLITS="32MB 64MB 128MB" CONCURRENCY="2 3" bash scripts/bench/groupby_duckdb.sh   # a sweep
# Environment: ROWS (20000000), RUNS (3), SPLITS (byte sizes, "0" = one task per file;
# default "8MB 16MB": of 8MB-128MB the fastest on 2 cores for the function and the
# declarative reduce respectively), CONCURRENCY (workers,
# default 2), REDUCERS (default 1), DUCKDB_THREADS (2), LUAMR (the binary; default
# build/luamr, built when missing).
source "$(dirname "$0")/lib.sh.inc"
ROWS=${ROWS:-20000000}
SPLITS=${SPLITS:-8MB 16MB}
CONCURRENCY=${CONCURRENCY:-2}
REDUCERS=${REDUCERS:-1}
DUCKDB_THREADS=${DUCKDB_THREADS:-2}
csv=$(groupby_csv "$ROWS")
build_luamr
duckdb_setup

WORK=$(mktemp -d "${TMPDIR:-/tmp}/luamr-bench-gbduck.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Function reduce: the map ships k1 and f; one reducer per k1 partition groups them.
cat >"$WORK/fn.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame():select("k1", "f") end,
  partition_by = {"k1"},
  reduce = function(f, ctx)
    return f:group_by("k1"):agg{ n = count(), s = sum("f"), p90 = quantile("f", 0.9) }
  end,
}
LUA
# Declarative reduce: the engine combines each map task's rows into partial groups (for
# the quantile: each group's values) and merges them reduce-side within compute.memoryMB.
# group_by reads only k1 and f, so the map needs no select (which would copy the columns).
cat >"$WORK/decl.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame() end,
  reduce = { group_by = {"k1"}, agg = { n = count(), s = sum("f"), p90 = quantile("f", 0.9) } },
}
LUA
# job NAME SCRIPT SPLIT CONCURRENCY: writes $WORK/NAME.json, output $WORK/NAME.out(/)
job() {
  local split=$3 out="$WORK/$1.out"
  [ "$REDUCERS" -gt 1 ] && out="$out/"
  [[ $split =~ ^[0-9]+$ ]] || split="\"$split\""
  cat >"$WORK/$1.json" <<JSON
{"name": "groupby-duckdb-$1", "script": "$2.lua",
 "readConnector": {"manifest": ["$csv"], "format": "csv", "splitSize": $split},
 "intermediate": {"location": "$WORK/imd"},
 "writeConnector": {"location": "$out", "format": "csv"},
 "compute": {"concurrency": $4, "reducers": $REDUCERS}}
JSON
}
# The commands timed, as functions: run_<name> for each luamr variant, then run_duckdb.
names=()
for split in $SPLITS; do
  for conc in $CONCURRENCY; do
    for kind in fn decl; do
      name="$kind-$split-c$conc"
      [ "$REDUCERS" -gt 1 ] && name="$name-r$REDUCERS"
      job "$name" "$kind" "$split" "$conc"
      eval "run_$name() { rm -rf '$WORK/$name.out' '$WORK/imd'; \"\$LUAMR\" run -q '$WORK/$name.json'; }"
      names+=("$name")
    done
  done
done
run_duckdb() {
  duckdb_query --threads "$DUCKDB_THREADS" \
    "SELECT k1, count(*), sum(f), quantile_cont(f, 0.9) FROM read_csv('$csv') GROUP BY k1" \
    >"$WORK/duckdb.csv"
}
fns=()
for n in "${names[@]}"; do fns+=("run_$n"); done
fns+=(run_duckdb)
out=$(medians "${fns[@]}")   # exits here when a command fails
mapfile -t wall < <(cut -d' ' -f1 <<<"$out")
mapfile -t cpu < <(cut -d' ' -f2 <<<"$out")
t_duck=${wall[${#names[@]}]}
c_duck=${cpu[${#names[@]}]}

# luamr's CSV (header k1,n,s,p90 in some column order; one file or a folder of parts) as
# "k1,n,s,p90" lines sorted by key.
luamr_rows() {
  local files=("$1")
  [ -d "$1" ] && files=("$1"/part-*)
  awk -F, 'FNR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
           { print $c["k1"] "," $c["n"] "," $c["s"] "," $c["p90"] }' "${files[@]}" | sort
}
sort "$WORK/duckdb.csv" >"$WORK/duckdb.sorted"
ngroups=$(wc -l <"$WORK/duckdb.sorted")
for n in "${names[@]}"; do
  luamr_rows "$WORK/$n.out" >"$WORK/$n.sorted"
  join -t, -j1 -a1 -a2 -e MISSING -o 0,1.2,1.3,1.4,2.2,2.3,2.4 "$WORK/$n.sorted" "$WORK/duckdb.sorted" |
    awk -F, -v who="$n" '
      function rel(a, b) { d = a - b; if (d < 0) d = -d; m = (a < 0 ? -a : a); if (m < 1) m = 1; return d / m }
      $2 == "MISSING" || $5 == "MISSING" { print who ": key " $1 " only in one result" > "/dev/stderr"; bad++; next }
      $2 != $5 || rel($3, $6) > 1e-9 || rel($4, $7) > 1e-9 {
        print who " and duckdb disagree: " $0 > "/dev/stderr"; bad++ }
      END { exit bad > 0 }' || { echo "results differ ($n)" >&2; exit 1; }
done

echo "group-by of $ROWS rows ($(du -m "$csv" | cut -f1) MiB CSV) into $ngroups groups: count, sum, p90 of f per k1"
echo "medians of $RUNS interleaved runs; results checked against DuckDB (counts exact, sum and p90 within 1e-9)"
echo "  (name: reduce kind - splitSize - workers; CPU = user + sys of all processes)"
for i in "${!names[@]}"; do
  printf '  luamr %-20s wall %8.3f s  luamr/duckdb %5s   CPU %8.3f s  luamr/duckdb %5s\n' "${names[$i]}" \
    "${wall[$i]}" "$(ratio "${wall[$i]}" "$t_duck")" "${cpu[$i]}" "$(ratio "${cpu[$i]}" "$c_duck")"
done
printf '  duckdb, %d threads         wall %8.3f s                      CPU %8.3f s\n' "$DUCKDB_THREADS" "$t_duck" "$c_duck"
for kind in fn decl; do
  bi=""
  for i in "${!names[@]}"; do
    [[ ${names[$i]} == "$kind-"* ]] || continue
    if [ -z "$bi" ] || [ "$(echo "${wall[$i]} < ${wall[$bi]}" | bc -l)" = 1 ]; then bi=$i; fi
  done
  label=$([ "$kind" = fn ] && echo "function reduce:   " || echo "declarative reduce:")
  echo "fastest $label ${names[$bi]}, ${wall[$bi]} s, ratio luamr/duckdb $(ratio "${wall[$bi]}" "$t_duck") (wall), $(ratio "${cpu[$bi]}" "$c_duck") (CPU)"
done
