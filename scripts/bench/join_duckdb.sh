#!/usr/bin/env bash
# luamr against DuckDB on a join: $ORDERS order rows (default 10 million: order_id,
# user_id, amount; user ids drawn from 1.2x the users, so about 1/6 find no user) joined
# with $USERS user rows (default 1 million: user_id, country with 200 values, age), then
# count, sum(amount) and sum(age) per country:
#   SELECT country, count(*), sum(amount), sum(age)
#   FROM orders JOIN users USING (user_id) GROUP BY country
# luamr does it as in scripts/examples/join_users_orders.lua: each map task reads a byte
# range of one CSV and tags its rows with the dataset; reduce splits them again, joins and
# aggregates. With REDUCERS > 1 the map output is partitioned by user_id, each reducer
# joins its share and writes its per-country partial sums, and the bench adds up the
# parts (a few hundred rows) when it checks the result. DuckDB runs the query on
# $DUCKDB_THREADS threads. Both run in turn, $RUNS rounds, in one run; the per-country
# results must be equal (all integers) before medians and ratios are printed.
#   RUNS=3 bash scripts/bench/join_duckdb.sh
#   ORDERS=1000000 USERS=100000 RUNS=1 bash scripts/bench/join_duckdb.sh     # quick
# Environment: ORDERS, USERS, RUNS (3), SPLIT (splitSize, 64MB), CONCURRENCY (2),
# REDUCERS (a list, default "1 2"), DUCKDB_THREADS (2), LUAMR.
source "$(dirname "$0")/lib.sh.inc"
ORDERS=${ORDERS:-10000000}
USERS=${USERS:-1000000}
SPLIT=${SPLIT:-64MB}
CONCURRENCY=${CONCURRENCY:-2}
REDUCERS=${REDUCERS:-1 2}
DUCKDB_THREADS=${DUCKDB_THREADS:-2}
users="$DATA/join-users-$USERS.csv"
orders="$DATA/join-orders-$ORDERS-$USERS.csv"
if [ ! -f "$users" ]; then
  echo "generating $users ..." >&2
  mawk -v n="$USERS" 'BEGIN { srand(3); print "user_id,country,age";
    for (u = 0; u < n; u++) printf "%d,c%d,%d\n", u, int(rand() * 200), 18 + int(rand() * 60) }' >"$users.tmp"
  mv "$users.tmp" "$users"
fi
if [ ! -f "$orders" ]; then
  echo "generating $orders ..." >&2
  mawk -v n="$ORDERS" -v u="$USERS" 'BEGIN { srand(4); print "order_id,user_id,amount";
    for (i = 0; i < n; i++) printf "%d,%d,%d\n", i, int(rand() * u * 1.2), 1 + int(rand() * 100000) }' >"$orders.tmp"
  mv "$orders.tmp" "$orders"
fi
build_luamr
duckdb_setup

WORK=$(mktemp -d "${TMPDIR:-/tmp}/luamr-bench-join.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/join.lua" <<'LUA'
-- ds: 1 for users, 2 for orders (from the input's file name)
local function dataset_of(uri) return uri:match("join%-users%-[^/]*$") and 1 or 2 end

return {
  map = function(input, ctx)
    local ds = dataset_of(input.uri)
    local f = input:frame()
    if ds == 2 then f = f:select("user_id", "amount") end
    return f:with_column("ds", ds)
  end,
  partition_by = {"user_id"},
  reduce = function(f, ctx)
    local users = f:filter("ds", "==", 1):select("user_id", "country", "age")
    local orders = f:filter("ds", "==", 2):select("user_id", "amount")
    return orders:join(users, { on = "user_id" })
                 :group_by("country")
                 :agg{ n = count(), amount = sum("amount"), age = sum("age") }
  end,
}
LUA
split=$SPLIT
[[ $split =~ ^[0-9]+$ ]] || split="\"$split\""
names=()
for red in $REDUCERS; do
  name="r$red"
  out="$WORK/$name.out"
  [ "$red" -gt 1 ] && out="$out/"
  cat >"$WORK/$name.json" <<JSON
{"name": "join-bench-$name", "script": "join.lua",
 "readConnector": {"manifest": ["$users", "$orders"], "format": "csv", "splitSize": $split},
 "intermediate": {"location": "$WORK/imd"},
 "writeConnector": {"location": "$out", "format": "csv"},
 "compute": {"concurrency": $CONCURRENCY, "reducers": $red}}
JSON
  eval "run_$name() { rm -rf '$WORK/$name.out' '$WORK/imd'; \"\$LUAMR\" run -q '$WORK/$name.json'; }"
  names+=("$name")
done
run_duckdb() {
  duckdb_query --threads "$DUCKDB_THREADS" \
    "SELECT country, count(*), sum(amount), sum(age)
     FROM read_csv('$orders') AS o JOIN read_csv('$users') AS u USING (user_id)
     GROUP BY country" >"$WORK/duckdb.csv"
}
fns=()
for n in "${names[@]}"; do fns+=("run_$n"); done
fns+=(run_duckdb)
out=$(medians "${fns[@]}")   # exits here when a command fails
mapfile -t wall < <(cut -d' ' -f1 <<<"$out")
mapfile -t cpu < <(cut -d' ' -f2 <<<"$out")
t_duck=${wall[${#names[@]}]}
c_duck=${cpu[${#names[@]}]}

# Per-country "country,n,amount,age" lines, sorted; luamr's parts are added up.
sort "$WORK/duckdb.csv" >"$WORK/duckdb.sorted"
for n in "${names[@]}"; do
  files=("$WORK/$n.out")
  [ -d "$WORK/$n.out" ] && files=("$WORK/$n.out"/*.csv)
  awk -F, 'FNR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
           { k = $c["country"]; n[k] += $c["n"]; a[k] += $c["amount"]; g[k] += $c["age"] }
           END { for (k in n) printf "%s,%.0f,%.0f,%.0f\n", k, n[k], a[k], g[k] }' "${files[@]}" |
    sort >"$WORK/$n.sorted"
  cmp -s "$WORK/$n.sorted" "$WORK/duckdb.sorted" || {
    echo "luamr ($n) and duckdb disagree (< luamr, > duckdb):" >&2
    diff "$WORK/$n.sorted" "$WORK/duckdb.sorted" | head >&2
    exit 1
  }
done
read -r rows amount < <(awk -F, '{ n += $2; a += $3 } END { printf "%.0f %.0f\n", n, a }' "$WORK/duckdb.sorted")

echo "join of $ORDERS orders with $USERS users ($(du -cm "$orders" "$users" | tail -1 | cut -f1) MiB CSV),"
echo "  $rows joined rows in $(wc -l <"$WORK/duckdb.sorted") countries, sum(amount) $amount: luamr and DuckDB agree"
echo "medians of $RUNS interleaved runs (splitSize $SPLIT, $CONCURRENCY workers; CPU = user + sys of all processes):"
for i in "${!names[@]}"; do
  printf '  luamr, %s reducer(s):  wall %8.3f s  luamr/duckdb %5s   CPU %8.3f s  luamr/duckdb %5s\n' \
    "${names[$i]#r}" "${wall[$i]}" "$(ratio "${wall[$i]}" "$t_duck")" "${cpu[$i]}" "$(ratio "${cpu[$i]}" "$c_duck")"
done
printf '  duckdb, %d threads:     wall %8.3f s                      CPU %8.3f s\n' "$DUCKDB_THREADS" "$t_duck" "$c_duck"
