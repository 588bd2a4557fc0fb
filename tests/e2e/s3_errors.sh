#!/usr/bin/env bash
# S3 failures reach the user as clear errors from the luamr binary: a missing input key
# (404 NoSuchKey), a wrong secret (403 SignatureDoesNotMatch) — naming the bucket and key,
# never printing the secret.
. "$(dirname "$0")/lib.sh.inc"
. "$LUAMR_SOURCE_DIR/tests/s3/lib.sh.inc"
s3_start_server "$TMP" luamr-e2e
s3_require_luamr_s3
trap 's3_stop; rm -rf "$TMP"' EXIT
cp "$LUAMR_SOURCE_DIR/scripts/examples/wordcount.lua" "$TMP/"
cat >"$TMP/job.json" <<JSON
{"name": "wc-missing", "script": "wordcount.lua",
 "readConnector": {"manifest": ["s3://luamr-e2e/nothing/here.txt"], "format": "lines"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/wc.csv", "format": "csv"}}
JSON
expect_status 1 run "$TMP/job.json"
expect_in "$TMP/err.txt" "s3://luamr-e2e/nothing" "the missing input is named"
pass "a missing S3 input is an error naming it"

echo "hello world" >"$TMP/hello.txt"
s3_aws s3 cp --quiet "$TMP/hello.txt" s3://luamr-e2e/in/hello.txt
sed -e 's#s3://luamr-e2e/nothing/here.txt#s3://luamr-e2e/in/#' "$TMP/job.json" >"$TMP/job2.json"
secret="not-the-right-secret-$$"
AWS_SECRET_ACCESS_KEY=$secret expect_status 1 run "$TMP/job2.json"
expect_in "$TMP/err.txt" "SignatureDoesNotMatch" "S3's error code"
expect_in "$TMP/err.txt" "403" "the HTTP status"
expect_in "$TMP/err.txt" "luamr-e2e" "the bucket"
if grep -q -- "$secret" "$TMP/err.txt" "$TMP/out.txt"; then fail "the secret was printed"; fi
pass "a wrong secret is a 403 SignatureDoesNotMatch naming the request, secret not shown"
