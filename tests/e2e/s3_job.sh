#!/usr/bin/env bash
# A whole job on S3: config, script, manifest prefix, intermediates, output and errors all
# s3:// URIs on the local test server; the word counts must equal tr|sort|uniq over the
# same files, and a second run through the fault proxy (503 SlowDown and cut bodies) must
# produce the same bytes. Nothing may be left half-uploaded.
. "$(dirname "$0")/lib.sh.inc"
. "$LUAMR_SOURCE_DIR/tests/s3/lib.sh.inc"
[ -x "$AWS_CLI" ] || fail "needs the AWS CLI at $AWS_CLI"
s3_start_server "$TMP" luamr-e2e
s3_require_luamr_s3
trap 's3_stop; rm -rf "$TMP"' EXIT

mkdir -p "$TMP/in"
i=0
for f in /usr/share/common-licenses/* "$LUAMR_SOURCE_DIR"/docs/*.md; do
  [ -f "$f" ] || continue; i=$((i+1)); cp "$f" "$TMP/in/text $i.txt"   # keys with spaces
done
gzip -k "$TMP/in/text 1.txt" && rm "$TMP/in/text 1.txt"
s3_aws s3 cp --recursive --quiet "$TMP/in" s3://luamr-e2e/input/
s3_aws s3 cp --quiet "$LUAMR_SOURCE_DIR/scripts/examples/wordcount.lua" s3://luamr-e2e/job/wordcount.lua
cat >"$TMP/job.json" <<JSON
{"name": "wc-s3", "script": "s3://luamr-e2e/job/wordcount.lua",
 "readConnector": {"manifest": ["s3://luamr-e2e/input/"], "format": "lines"},
 "intermediate": {"location": "s3://luamr-e2e/imd"},
 "writeConnector": {"location": "s3://luamr-e2e/out/wc.csv", "format": "csv"},
 "errorConnector": {"location": "s3://luamr-e2e/errors", "maxBadRecords": 0},
 "compute": {"concurrency": 2}}
JSON
s3_aws s3 cp --quiet "$TMP/job.json" s3://luamr-e2e/job/job.json

expect_status 0 run s3://luamr-e2e/job/job.json
expect_in "$TMP/err.txt" "succeeded" "summary"
s3_aws s3 cp --quiet s3://luamr-e2e/out/wc.csv "$TMP/wc.csv"
tail -n +2 "$TMP/wc.csv" | tr ',' ' ' >"$TMP/got.txt"
for f in "$TMP"/in/*; do case $f in *.gz) zcat "$f";; *) cat "$f";; esac; done |
  tr -cs 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | grep -v '^$' | sort | uniq -c |
  awk '{print $2, $1}' | sort -k2,2nr -k1,1 >"$TMP/want.txt"
diff "$TMP/want.txt" "$TMP/got.txt" >/dev/null || { diff "$TMP/want.txt" "$TMP/got.txt" | head; fail "word counts differ"; }
imd=$(s3_aws s3 ls --recursive s3://luamr-e2e/imd/ || true)
[ -n "$imd" ] || fail "intermediates were written to S3"
[ "$(s3_open_uploads)" = 0 ] || fail "multipart uploads left open"
pass "job with config, script, inputs, intermediates and output on S3 ($i files)"

# The same job through the fault proxy: same output bytes, retries reported.
s3_start_proxy 7 0.1 0.2
sed -e 's/"wc-s3"/"wc-s3-faults"/' -e 's#out/wc.csv#out-faults/wc.csv#' "$TMP/job.json" >"$TMP/job2.json"
s3_aws s3 cp --quiet "$TMP/job2.json" s3://luamr-e2e/job/job2.json
AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PROXY_PORT" LUAMR_S3_BACKOFF_MS=5 LUAMR_S3_MAX_ATTEMPTS=10 \
  expect_status 0 run s3://luamr-e2e/job/job2.json
s3_aws s3 cp --quiet s3://luamr-e2e/out-faults/wc.csv "$TMP/wc2.csv"
cmp -s "$TMP/wc.csv" "$TMP/wc2.csv" || fail "output through the fault proxy differs"
faults=$(node -e 'require("http").get(process.argv[1], r => { let b = ""; r.on("data", d => b += d);
  r.on("end", () => { const s = JSON.parse(b); console.log(s.slowdowns + s.cuts); }); })' \
  "http://127.0.0.1:$S3_PROXY_PORT/__faultproxy/stats")
[ "$faults" -gt 0 ] || fail "the fault proxy injected no fault"
[ "$(s3_open_uploads)" = 0 ] || fail "multipart uploads left open after faults"
pass "the job through $faults injected 503s and cut connections gives the same output"

# A failing job publishes nothing on S3.
cat >"$TMP/bad.lua" <<'LUA'
return { map = function(input, ctx) error("boom") end, reduce = function(f) return f end }
LUA
s3_aws s3 cp --quiet "$TMP/bad.lua" s3://luamr-e2e/job/bad.lua
sed -e 's#job/wordcount.lua#job/bad.lua#' -e 's#out/wc.csv#out-bad/wc.csv#' "$TMP/job.json" >"$TMP/job3.json"
s3_aws s3 cp --quiet "$TMP/job3.json" s3://luamr-e2e/job/job3.json
expect_status 1 run s3://luamr-e2e/job/job3.json
expect_in "$TMP/err.txt" "boom" "the script error is reported"
[ -z "$(s3_aws s3 ls s3://luamr-e2e/out-bad/ || true)" ] || fail "a failed job left output on S3"
[ "$(s3_open_uploads)" = 0 ] || fail "multipart uploads left open after a failed job"
pass "a failed job leaves no output and no open upload on S3"
