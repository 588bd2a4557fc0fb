#!/usr/bin/env bash
# Resume after failure: a run killed with SIGKILL in the middle of the map phase, resumed
# with --resume, skips the map tasks whose intermediates verify and gives byte-identical
# output to an uninterrupted run.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
for i in 1 2 3 4 5 6; do seq $((i * 1000)) $((i * 1000 + 999)) >"$TMP/in/part-$i.txt"; done
cat >"$TMP/slow.lua" <<'LUA'
return {
  map = function(input, ctx)
    local f = frame.new{ bucket = "int64", x = "int64" }
    for line in input:lines() do
      local x = tonumber(line)
      f:append{ bucket = x % 7, x = x }
    end
    local t = os.clock() + 0.4          -- a slow mapper, so the kill lands mid-phase
    while os.clock() < t do end
    return f
  end,
  reduce = function(f, ctx)
    return f:group_by("bucket"):agg{ n = count(), s = sum("x"), p50 = median("x") }:sort_by("bucket")
  end,
}
LUA
cat >"$TMP/job.json" <<JSON
{"name": "resume", "script": "slow.lua",
 "readConnector": {"manifest": ["in/"], "format": "lines"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/result.json", "format": "json"},
 "compute": {"concurrency": 1}}
JSON
expect_status 0 run "$TMP/job.json" --run-id clean
cp "$TMP/out/result.json" "$TMP/clean.json"; rm -rf "$TMP/out"

setsid "$LUAMR" run "$TMP/job.json" --run-id killed >"$TMP/k.out" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  n=$(ls "$TMP/imd/killed" 2>/dev/null | grep -c '^map-.*\.imf$' || true)
  [ "$n" -ge 2 ] && break
  sleep 0.05
done
kill -9 -- -"$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
done_before=$(ls "$TMP/imd/killed" | grep -c '^map-.*\.imf$' || true)
[ "$done_before" -ge 2 ] && [ "$done_before" -lt 6 ] || fail "the kill should land mid-map ($done_before of 6 done)"
[ ! -e "$TMP/out/result.json" ] || fail "a killed run published output"
pass "SIGKILL in the map phase after $done_before of 6 tasks leaves no output"

# A corrupt intermediate is not trusted: it is rerun.
printf 'garbage' >>"$TMP/imd/killed/map-00000.imf"
expect_status 0 run "$TMP/job.json" --resume killed
expect_in "$TMP/err.txt" "resuming run killed: $((done_before - 1)) of 6 map tasks already done" "resume skips verified tasks"
cmp "$TMP/clean.json" "$TMP/out/result.json" || fail "resumed output differs from the uninterrupted run"
pass "resumed run is byte-identical to an uninterrupted one (corrupt intermediate rerun)"
