#!/usr/bin/env bash
# A local worker process that dies by a signal (a crash, the OOM killer, kill -9) is
# reported as "killed by signal N (name)", naming the task, and the task is retried up to
# compute.maxAttempts; past that the job fails with the same message and writes nothing.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
seq 1 100 >"$TMP/in/a.txt"
seq 101 200 >"$TMP/in/b.txt"
cat >"$TMP/slow.lua" <<'LUA'
return {
  map = function(input, ctx)
    local f = frame.new{ x = "int64" }
    for line in input:lines() do f:append{ x = tonumber(line) } end
    local t = os.time() + 2              -- long enough for the test to find the worker
    while os.time() < t do end
    return f
  end,
  reduce = function(f, ctx) return f:agg{ n = count(), s = sum("x") } end,
}
LUA
mk() {  # mk MAX_ATTEMPTS
  cat >"$TMP/job.json" <<JSON
{"name": "crash", "script": "slow.lua",
 "readConnector": {"manifest": ["in/"], "format": "lines"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/r.csv", "format": "csv"},
 "compute": {"concurrency": 1, "maxAttempts": $1}}
JSON
}
# The worker processes of luamr PID: its children, from /proc (the field after
# "pid (comm) state" is the parent; cat skips processes that vanish meanwhile).
workers_of() {
  cat /proc/[0-9]*/stat 2>/dev/null |
    awk -v want="$1" '{ pid = $1; sub(/^.*\) /, ""); if ($2 == want) print pid }' || true
}
# Runs the job in the background, kills its (first) worker with signal $1, waits for it.
run_and_kill() {
  local sig=$1 pid w=
  "$LUAMR" run "$TMP/job.json" >"$TMP/out.txt" 2>"$TMP/err.txt" &
  pid=$!
  for _ in $(seq 1 100); do
    w=$(workers_of "$pid" | head -n 1)
    [ -n "$w" ] && break
    sleep 0.05
  done
  [ -n "$w" ] || { kill "$pid"; fail "no worker process appeared"; }
  sleep 0.3                                # inside the map task by now
  kill -"$sig" "$w"
  RC=0
  wait "$pid" || RC=$?
}

# A crash: SIGSEGV, except under AddressSanitizer, whose handler turns a SIGSEGV into a
# report and exit status 1; it leaves SIGABRT alone.
SIG=SEGV; SIGNO=11; SIGNAME="Segmentation fault"
if [ "${LUAMR_SANITIZED:-0}" = 1 ] || nm -C "$LUAMR" 2>/dev/null | grep -q __asan_init; then
  SIG=ABRT; SIGNO=6; SIGNAME="Aborted"
fi
mk 2
run_and_kill "$SIG"
[ "$RC" = 0 ] || { cat "$TMP/err.txt"; fail "a retried task should let the job succeed (exit $RC)"; }
expect_in "$TMP/err.txt" "map task 0 attempt 1 failed, retrying: map task 0 \(.*a.txt\): worker process [0-9]+ was killed by signal $SIGNO \($SIGNAME\)" \
  "the crash is reported with the signal, naming the task"
expect_in "$TMP/err.txt" "task retries: 1" "the summary counts the retry"
[ "$(tail -n 1 "$TMP/out/r.csv")" = "200,20100" ] || fail "the retried job's output is complete"
pass "a worker killed by SIG$SIG is reported as such and its task retried (maxAttempts 2)"

rm -rf "$TMP/out"
mk 1
run_and_kill KILL
[ "$RC" = 1 ] || { cat "$TMP/err.txt"; fail "with maxAttempts 1 the job fails (exit $RC)"; }
expect_in "$TMP/err.txt" "luamr run: map task 0 \(.*a.txt\): worker process [0-9]+ was killed by signal 9 \(Killed\); out of memory, or killed from outside" \
  "SIGKILL is reported as a possible OOM kill"
grep -q "retrying" "$TMP/err.txt" && fail "maxAttempts 1 must not retry"
[ ! -e "$TMP/out/r.csv" ] || fail "a failed job wrote output"
pass "with maxAttempts 1 a worker killed by SIGKILL fails the job, naming signal 9 and OOM"
