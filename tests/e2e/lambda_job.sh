#!/usr/bin/env bash
# A word count through the Lambda executor: inputs, script, config, intermediates and
# output on the S3 test server, every task an invocation of the packaged bootstrap in the
# Lambda emulator. The output must be byte-identical to the same job run locally, even
# though the first attempt of every task crashes its runtime and the first invocations
# are throttled (429). Scratch files must not outlive an invocation.
. "$(dirname "$0")/lib.sh.inc"
. "$LUAMR_SOURCE_DIR/tests/s3/lib.sh.inc"
. "$LUAMR_SOURCE_DIR/tests/lambda/lib.sh.inc"
[ -x "$AWS_CLI" ] || fail "needs the AWS CLI at $AWS_CLI"
s3_start_server "$TMP" luamr-lambda
s3_require_luamr_s3
trap 'lambda_stop_emulator; s3_stop; rm -rf "$TMP"' EXIT
lambda_package

mkdir -p "$TMP/in"
i=0
for f in /usr/share/common-licenses/* "$LUAMR_SOURCE_DIR"/docs/*.md; do
  [ -f "$f" ] || continue; i=$((i+1)); cp "$f" "$TMP/in/text-$i.txt"
  [ $i -ge 8 ] && break
done
gzip "$TMP/in/text-1.txt"
cp "$LUAMR_SOURCE_DIR/scripts/examples/wordcount.lua" "$TMP/"
s3_aws s3 cp --recursive --quiet "$TMP/in" s3://luamr-lambda/input/

# The reference: the same job, locally.
cat >"$TMP/local.json" <<JSON
{"name": "wc", "script": "wordcount.lua",
 "readConnector": {"manifest": ["in/"], "format": "lines"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/wc.csv", "format": "csv"},
 "compute": {"concurrency": 2}}
JSON
expect_status 0 run "$TMP/local.json"

mkdir -p "$TMP/up"
cp "$TMP/wordcount.lua" "$TMP/up/"
cat >"$TMP/up/job.json" <<JSON
{"name": "wc", "script": "wordcount.lua",
 "readConnector": {"manifest": ["s3://luamr-lambda/input/"], "format": "lines"},
 "intermediate": {"location": "s3://luamr-lambda/imd"},
 "writeConnector": {"location": "s3://luamr-lambda/out/wc.csv", "format": "csv"},
 "compute": {"executor": "lambda", "function": "luamr-test", "concurrency": 4, "maxAttempts": 2}}
JSON
expect_status 0 upload "$TMP/up/job.json" --to s3://luamr-lambda/job/
expect_in "$TMP/out.txt" "s3://luamr-lambda/job/job.json" "upload names the config URI"
s3_aws s3 cp --quiet s3://luamr-lambda/job/job.json "$TMP/uploaded.json"
grep -q '"script":[[:space:]]*"wordcount.lua"' "$TMP/uploaded.json" || { cat "$TMP/uploaded.json"; fail "uploaded config names the uploaded script"; }

lambda_start_emulator --function luamr-test --concurrency 4 --crash-first-attempt --throttle-first 3
LUAMR_LAMBDA_BACKOFF_MS=20 expect_status 0 run s3://luamr-lambda/job/job.json
expect_in "$TMP/err.txt" "succeeded" "summary"
expect_in "$TMP/err.txt" "lambda: [0-9]+ invocations of luamr-test" "the executor's summary"
expect_in "$TMP/err.txt" "GB-s at 1024 MB" "billed GB-seconds at the function's memory"
s3_aws s3 cp --quiet s3://luamr-lambda/out/wc.csv "$TMP/lambda-wc.csv"
cmp -s "$TMP/out/wc.csv" "$TMP/lambda-wc.csv" || { diff "$TMP/out/wc.csv" "$TMP/lambda-wc.csv" | head; fail "Lambda output differs from the local run"; }
pass "word count over $i files through Lambda equals the local run byte for byte"

crashed=$(lambda_stat crashed); throttled=$(lambda_stat throttled)
[ "$throttled" -ge 3 ] || fail "the emulator throttled $throttled invocations, expected >= 3"
[ "$crashed" -ge $((i + 1)) ] || fail "only $crashed first attempts crashed, expected one per task ($i maps + reduce)"
expect_in "$TMP/err.txt" "attempt 1 failed, retrying: .*Runtime.ExitError" "retries are reported with Lambda's reason"
pass "$crashed crashed first attempts retried, $throttled throttled invocations retried"

[ "$(lambda_stat scratch_left)" = 0 ] || { lambda_stats; fail "scratch files left in the function's /tmp"; }
[ "$(lambda_stat bad_signatures)" = 0 ] || fail "the emulator rejected signatures"
grep -q '"_aws":{"Timestamp":[0-9]*,"CloudWatchMetrics"' "$TMP/lambda.log" || fail "no EMF metrics in the function's log"
grep -q '"level":"info","requestId":"[^"]*","runId":"[^"]*","task":"map 0","message":"start map 0' "$TMP/lambda.log" ||
  { head -5 "$TMP/lambda.log"; fail "no JSON log line for map 0"; }
cold=$(lambda_stats | python3 -c 'import json,sys; c = json.load(sys.stdin)["cold_starts_ms"]; print("%.1f" % (sum(c) / len(c)))')
pass "no scratch left, EMF metrics and JSON logs written; cold start (spawn to first /next) ${cold} ms"
