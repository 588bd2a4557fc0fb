#!/usr/bin/env bash
# compute.taskTimeoutSeconds stops a runaway script at the limit, naming the line it was
# looping on, even when the loop runs inside pcall or a coroutine; the attempt is retried
# per compute.maxAttempts. A task stuck inside one long C call (where the script's own
# check cannot run) is killed by the local executor shortly after the limit.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
seq 1 10 >"$TMP/in/a.txt"
mk() {  # mk SCRIPT MAX_ATTEMPTS
  cat >"$TMP/job.json" <<JSON
{"name": "timeout", "script": "$1",
 "readConnector": {"manifest": ["in/a.txt"], "format": "lines"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/r.csv", "format": "csv"},
 "compute": {"taskTimeoutSeconds": 1, "maxAttempts": $2}}
JSON
}
# Runs the job expecting failure; sets SECS to how long it took.
run_timed() {
  local t0 t1
  t0=$(date +%s.%N)
  expect_status 1 run "$TMP/job.json"
  t1=$(date +%s.%N)
  SECS=$(echo "$t1 - $t0" | bc)
}
took_between() {  # took_between MIN MAX WHAT
  [ "$(echo "$SECS >= $1 && $SECS < $2" | bc)" = 1 ] || fail "$3: took ${SECS}s, expected $1-$2 s"
}

# ---- an endless loop inside pcall, retried once ----
cat >"$TMP/loop.lua" <<'LUA'
return {
  map = function(input, ctx)
    local n = 0
    while true do
      local ok = pcall(function()
        while true do n = n + 1 end
      end)
    end
  end,
}
LUA
mk loop.lua 2
run_timed
expect_in "$TMP/err.txt" "attempt 1 failed, retrying: map task 0 \(.*a.txt.*\): .*loop.lua:6: task exceeded its time limit" \
  "the first attempt names the looping line"
expect_in "$TMP/err.txt" "luamr run: map task 0 \(.*a.txt.*\): .*loop.lua:6: task exceeded its time limit" \
  "the final error names the looping line"
expect_in "$TMP/err.txt" "task retries: 1" "the timeout was retried once (maxAttempts 2)"
took_between 2 15 "two attempts of 1 s"
pass "an endless loop inside pcall is stopped at the limit, naming loop.lua:6, and retried"

# ---- a loop in a coroutine, its error caught with pcall each time ----
cat >"$TMP/co.lua" <<'LUA'
return {
  map = function(input, ctx)
    while true do
      pcall(coroutine.wrap(function()
        local x = 0
        while true do x = x + 1 end
      end))
    end
  end,
}
LUA
mk co.lua 1
run_timed
expect_in "$TMP/err.txt" "luamr run: map task 0 .*co.lua:6: task exceeded its time limit" "names the coroutine's loop"
took_between 1 10 "one attempt of 1 s"
pass "a loop inside a coroutine is stopped too"

# ---- an error handler that loops: xpcall cannot hide the timeout either ----
cat >"$TMP/handler.lua" <<'LUA'
return {
  map = function(input, ctx)
    while true do
      xpcall(function() while true do end end, function() while true do end end)
    end
  end,
}
LUA
mk handler.lua 1
run_timed
expect_in "$TMP/err.txt" "luamr run: map task 0 .*handler.lua:4: task exceeded its time limit" "xpcall handler"
took_between 1 10 "one attempt of 1 s"
pass "a looping xpcall handler does not keep the task alive"

# ---- stuck inside one C call: the executor kills the worker ----
cat >"$TMP/cstuck.lua" <<'LUA'
return {
  map = function(input, ctx)
    local s = string.rep("a", 100000)
    return s:find(".-.-.-.-b") and nil    -- hours of backtracking inside string.find
  end,
}
LUA
mk cstuck.lua 1
run_timed
expect_in "$TMP/err.txt" "luamr run: map task 0 \(.*a.txt\): the task exceeded its time limit \(taskTimeoutSeconds 1\) and was still running .* inside a C function" \
  "the watchdog names the task and the limit"
took_between 2 15 "the limit plus the grace period"
pass "a task stuck inside a C function is killed shortly after its time limit"
