#!/usr/bin/env bash
# A script that raises an error: exit status 1, the message names file:line, the task
# and the record, and nothing is written to the destination.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
seq 1 100 >"$TMP/in/a.txt"; seq 1 100 >"$TMP/in/b.txt"
cat >"$TMP/bad.lua" <<'LUA'
local function check(line)
  if line == "42" then error("line 42 is not allowed") end
end
return {
  map = function(input, ctx)
    local f = frame.new{ x = "int64" }
    for line in input:lines() do
      check(line)
      f:append{ x = tonumber(line) }
    end
    return f
  end,
  reduce = function(f, ctx) return f end,
}
LUA
cat >"$TMP/job.json" <<JSON
{"name": "err", "script": "bad.lua",
 "readConnector": {"manifest": ["in/a.txt", "in/b.txt"], "format": "lines"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/result.json", "format": "json"}}
JSON
expect_status 1 run "$TMP/job.json"
expect_in "$TMP/err.txt" "bad.lua:2: line 42 is not allowed" "file:line and message"
expect_in "$TMP/err.txt" "map task [01]" "names the task"
expect_in "$TMP/err.txt" "record 42" "names the record"
expect_in "$TMP/err.txt" "traceback" "has a traceback"
expect_in "$TMP/err.txt" "FAILED" "one-paragraph summary"
[ ! -e "$TMP/out" ] || [ -z "$(ls -A "$TMP/out")" ] || { ls -la "$TMP/out"; fail "output was written"; }
pass "a script error fails the job with file:line, task and record, and writes nothing"

# An undefined global is an error too, not a silent nil.
cat >"$TMP/bad.lua" <<'LUA'
return { map = function(input, ctx) return frame.new{ x = undefined_thing } end }
LUA
expect_status 1 run "$TMP/job.json"
expect_in "$TMP/err.txt" "undefined_thing" "undefined global named"
pass "an undefined global fails the task"
