#!/usr/bin/env bash
# Failures through the Lambda executor: a script error reaches `luamr run` with the
# script's file:line (after max_attempts); a task that cannot finish before the function's
# deadline is stopped by the bootstrap and reported as a timeout (not killed by Lambda);
# an unknown function fails before any task runs.
. "$(dirname "$0")/lib.sh.inc"
. "$LUAMR_SOURCE_DIR/tests/s3/lib.sh.inc"
. "$LUAMR_SOURCE_DIR/tests/lambda/lib.sh.inc"
[ -x "$AWS_CLI" ] || fail "needs the AWS CLI at $AWS_CLI"
s3_start_server "$TMP" luamr-lerr
s3_require_luamr_s3
trap 'lambda_stop_emulator; s3_stop; rm -rf "$TMP"' EXIT
lambda_package
printf 'a b c\nd e f\n' >"$TMP/in.txt"
s3_aws s3 cp --quiet "$TMP/in.txt" s3://luamr-lerr/input/in.txt

job() {  # job NAME SCRIPT-BODY: uploads NAME.lua and NAME.json
  mkdir -p "$TMP/$1"
  printf '%s\n' "$2" >"$TMP/$1/$1.lua"
  cat >"$TMP/$1/$1.json" <<JSON
{"name": "$1", "script": "$1.lua",
 "readConnector": {"manifest": ["s3://luamr-lerr/input/"], "format": "lines"},
 "intermediate": {"location": "s3://luamr-lerr/imd-$1"},
 "writeConnector": {"location": "s3://luamr-lerr/out-$1/r.csv", "format": "csv"},
 "compute": {"executor": "lambda", "function": "luamr-test", "maxAttempts": 2}}
JSON
  "$LUAMR" upload "$TMP/$1/$1.json" --to "s3://luamr-lerr/job-$1/" >/dev/null || fail "upload $1"
}

job broken 'return {
  map = function(input, ctx)
    local n = nil
    return n.field
  end,
  reduce = function(f) return f end,
}'
lambda_start_emulator --function luamr-test --timeout 20
LUAMR_LAMBDA_BACKOFF_MS=20 expect_status 1 run s3://luamr-lerr/job-broken/broken.json
expect_in "$TMP/err.txt" "broken.lua:4:" "the script error names file:line"
expect_in "$TMP/err.txt" "attempt 1 failed, retrying" "the failed attempt was retried"
[ -z "$(s3_aws s3 ls s3://luamr-lerr/out-broken/ || true)" ] || fail "a failed job left output"
pass "a script error comes back from Lambda as broken.lua:4 after 2 attempts"

job spin 'return {
  map = function(input, ctx)
    local x = 0
    while true do x = x + 1 end
  end,
  reduce = function(f) return f end,
}'
lambda_start_emulator --function luamr-test --timeout 3
start=$(date +%s)
LUAMR_LAMBDA_BACKOFF_MS=20 expect_status 1 run s3://luamr-lerr/job-spin/spin.json
took=$(( $(date +%s) - start ))
expect_in "$TMP/err.txt" "timeout: the task did not finish within the Lambda invocation's time" "timeout reported by the bootstrap"
[ "$(lambda_stat timeouts)" = 0 ] || fail "Lambda had to kill the runtime: the bootstrap did not stop the task in time"
[ "$(lambda_stat scratch_left)" = 0 ] || fail "scratch files left behind by the stopped task"
[ "$took" -lt 30 ] || fail "the timeout took ${took}s"
pass "a task past its deadline is stopped and reported as a timeout (${took}s for 2 attempts)"

expect_status 1 run s3://luamr-lerr/job-spin/spin.json --function no-such-function
expect_in "$TMP/err.txt" "Function not found" "unknown function"
pass "an unknown function fails before any task runs"
