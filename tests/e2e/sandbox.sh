#!/usr/bin/env bash
# The script sandbox, through the binary: each forbidden thing fails the task with a
# message naming the script's file:line and what was refused; what is allowed (files in
# the task's scratch folder, Lua modules beside the script, source-text load) works.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in" "$TMP/job"
seq 1 3 >"$TMP/in/a.txt"
cat >"$TMP/job/job.json" <<'JSON'
{"name": "sandbox", "script": "job.lua",
 "readConnector": {"manifest": ["../in/a.txt"], "format": "lines"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/r.csv", "format": "csv"}}
JSON
printf 'not really a shared object' >"$TMP/job/evil.so"
printf 'local M = {}\nfunction M.twice(x) return 2 * x end\nreturn M\n' >"$TMP/job/helper.lua"

# refused BODY PATTERN WHAT: map's body (line 3 of job.lua) must fail matching PATTERN.
refused() {
  printf 'return {\n  map = function(input, ctx)\n    %s\n  end,\n}\n' "$1" >"$TMP/job/job.lua"
  expect_status 1 run "$TMP/job/job.json"
  expect_in "$TMP/err.txt" "luamr run: map task 0 .*job.lua:3: .*$2" "$3"
  pass "$3"
}
refused 'os.execute("id")' "attempt to call field 'execute' \(a nil value\)" "no os.execute"
refused 'io.popen("id")' "attempt to call field 'popen' \(a nil value\)" "no io.popen"
refused 'os.remove("/tmp/x")' "attempt to call field 'remove' \(a nil value\)" "no os.remove"
refused 'os.getenv("HOME")' "attempt to call field 'getenv' \(a nil value\)" "no os.getenv"
refused 'io.open("/etc/passwd")' "io.open: '/etc/passwd' is outside the task's scratch folder" \
  "no io.open outside the scratch folder"
refused 'io.open("../../etc/passwd")' "io.open: '../../etc/passwd': '..' is not allowed in paths" \
  "no '..' in io.open paths"
refused 'io.lines()' "reading standard input is not allowed" "no io.lines on standard input"
refused 'io.stdout:write("x")' "attempt to index field 'stdout' \(a nil value\)" "no io.stdout"
refused 'require("ffi")' "module 'ffi' not found.*C modules are not allowed" "no ffi"
refused 'require("evil")' "module 'evil' not found.*C modules are not allowed" "no C module (evil.so beside the script)"
refused 'require("..job")' "require: invalid module name '..job'" "no module path tricks"
refused 'debug.getinfo(1)' "undefined global 'debug'" "no debug library"
refused 'jit.off()' "undefined global 'jit'" "no jit library"
refused 'package.loadlib("./evil.so", "luaopen_evil")' "undefined global 'package'" "no package.loadlib"
refused 'dofile("/etc/passwd")' "undefined global 'dofile'" "no dofile"
refused 'newproxy(true)' "undefined global 'newproxy'" "no newproxy (script-set __gc)"
refused 'assert(load(string.dump(function() return 1 end)))' "load: binary chunks are not allowed" \
  "no bytecode through load"
refused 'assert(load("return 1", "x", "b"))' "load: binary chunks are not allowed" "no binary load mode"
refused 'getmetatable(input).__gc(input)' "attempt to index a nil value" \
  "the engine's userdata metatables are out of reach"
refused 'return frame.new{ x = { undefined_thing } }' "undefined global 'undefined_thing'" \
  "reading an unset global is an error"
refused 'total = 1' "assignment to undeclared global 'total' inside a function" \
  "assigning an undeclared global inside a function is an error"

# A bytecode script is refused before anything runs.
luajit -b - "$TMP/job/job.lua" <<'LUA'
return { map = function(input, ctx) return nil end }
LUA
expect_status 1 validate "$TMP/job/job.json"
expect_in "$TMP/err.txt" "job.lua is a bytecode chunk; give the Lua source" "bytecode script"
pass "a precompiled (bytecode) script is refused"

# What is allowed.
cat >"$TMP/job/job.lua" <<'LUA'
local helper = require("helper")
return {
  map = function(input, ctx)
    local f = assert(io.open("notes.txt", "w"))   -- the task's scratch folder
    for line in input:lines() do f:write(line, "\n") end
    f:close()
    local n = 0
    for _ in io.lines("notes.txt") do n = n + 1 end
    local ok = pcall(function() return undefined_global end)
    return frame.from_rows{ { n = helper.twice(n), text_load = load("return 40 + 2")(),
                              caught = not ok } }
  end,
}
LUA
expect_status 0 run "$TMP/job/job.json"
[ "$(cat "$TMP/job/out/r.csv")" = "$(printf 'caught,n,text_load\ntrue,6,42')" ] ||
  { cat "$TMP/job/out/r.csv"; fail "allowed operations"; }
pass "scratch-folder files, Lua modules beside the script and source-text load work"
