#!/usr/bin/env bash
# A CSV with bad rows: the good rows are counted, each bad row lands in the error
# destination with its file, line and reason, and past the limit the task fails.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
{ echo "name,qty,price"
  for i in $(seq 1 500); do echo "item$i,$i,$i.5"; done
  echo "broken,1,2,3"          # too many fields: line 502
  echo '"unterminated,1,2'     # quote never closed: swallows the rest of the file? no: next line
  echo "item501,501,501.5"
  echo "short"                 # too few fields
} >"$TMP/in/data.csv"
cat >"$TMP/job.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame() end,
  reduce = function(f, ctx) return f:group_by():agg{ n = count(), q = sum("qty") } end,
}
LUA
cat >"$TMP/job.json" <<JSON
{"name": "bad", "script": "job.lua",
 "readConnector": {"manifest": ["in/data.csv"], "format": "csv"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/r.csv", "format": "csv"},
 "errorConnector": {"location": "errors", "maxBadRecords": 10}}
JSON
expect_status 0 run "$TMP/job.json"
errs=$(cat "$TMP"/errors/*/*.jsonl)
echo "$errs" | grep -q '"record":502' || { echo "$errs"; fail "bad row 502 recorded with its line number"; }
echo "$errs" | grep -q 'data.csv' || fail "error names the file"
echo "$errs" | grep -q 'broken,1,2,3' || fail "error carries the raw row"
nbad=$(echo "$errs" | wc -l)
good=$(awk -F, 'NR > 1 && NF == 3' "$TMP/in/data.csv" | grep -vc '"' || true)
n=$(tail -n 1 "$TMP/out/r.csv" | cut -d, -f1)
[ "$n" -ge 500 ] || fail "good rows counted ($n)"
[ $((n + nbad)) -ge 502 ] || fail "every row is either counted or in the errors ($n + $nbad)"
expect_in "$TMP/err.txt" "bad records: $nbad" "summary counts bad records"
pass "bad CSV rows go to the error destination ($nbad bad, $n good; awk sees $good plain good rows)"

sed -i 's/"maxBadRecords": 10/"maxBadRecords": 1/' "$TMP/job.json"
rm -rf "$TMP/out"
expect_status 1 run "$TMP/job.json"
expect_in "$TMP/err.txt" "too many bad records" "limit named"
[ ! -e "$TMP/out/r.csv" ] || fail "no output after a failed job"
pass "past maxBadRecords the task fails and nothing is published"
