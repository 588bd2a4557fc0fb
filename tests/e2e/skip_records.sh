#!/usr/bin/env bash
# skipFailingRecords: records that make map raise are skipped (rerunning the map without
# them), land in the error destination, and are counted in the summary; off by default.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
seq 1 1000 >"$TMP/in/a.txt"
cat >"$TMP/job.lua" <<'LUA'
return {
  map = function(input, ctx)
    local f = frame.new{ x = "int64" }
    for line in input:lines() do
      local x = tonumber(line)
      if x % 250 == 0 then error("cannot handle " .. line) end
      f:append{ x = x }
    end
    return f
  end,
  reduce = function(f, ctx) return f:group_by():agg{ n = count(), s = sum("x") } end,
}
LUA
mk() { cat <<JSON
{"name": "skip", "script": "job.lua",
 "readConnector": {"manifest": ["in/a.txt"], "format": "lines"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/r.csv", "format": "csv"},
 "errorConnector": {"location": "errors", "maxBadRecords": $1, "skipFailingRecords": $2}}
JSON
}
mk 10 false >"$TMP/job.json"
expect_status 1 run "$TMP/job.json"
expect_in "$TMP/err.txt" "cannot handle 250" "off by default: the job fails"
mk 10 true >"$TMP/job.json"
expect_status 0 run "$TMP/job.json"
want=$(seq 1 1000 | awk '$1 % 250 != 0 {n++; s += $1} END {print n "," s}')
got=$(tail -n 1 "$TMP/out/r.csv")
[ "$got" = "$want" ] || fail "skipped records excluded: got $got want $want"
expect_in "$TMP/err.txt" "skipped records: 4" "summary counts skipped records"
n=$(cat "$TMP"/errors/*/*.jsonl | grep -c '"record":\(250\|500\|750\|1000\)')
[ "$n" = 4 ] || fail "each skipped record is in the error destination ($n)"
pass "skipFailingRecords skips the 4 failing records and records them"
mk 2 true >"$TMP/job.json"
expect_status 1 run "$TMP/job.json"
pass "past maxBadRecords skipping stops and the job fails"
