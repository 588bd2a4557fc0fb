#!/usr/bin/env bash
# S3 at scale: a manifest prefix of 1,200 objects (listed over two ListObjectsV2 pages),
# keys with spaces, '+' and non-ASCII characters, and an output of more than 20 MiB that
# goes up as a multipart upload. The output must be byte-identical to the same job run on
# local copies of the files, and equal to sort(1) over the same lines.
. "$(dirname "$0")/lib.sh.inc"
. "$LUAMR_SOURCE_DIR/tests/s3/lib.sh.inc"
[ -x "$AWS_CLI" ] || fail "needs the AWS CLI at $AWS_CLI"
s3_start_server "$TMP" luamr-e2e
s3_require_luamr_s3
trap 's3_stop; rm -rf "$TMP"' EXIT

N=1200
mkdir -p "$TMP/in/sub dir"
# 1,200 files of 180 lines of ~100 bytes: ~21 MiB of lines in all.
awk -v n="$N" -v dir="$TMP/in" 'BEGIN {
  srand(7); pad = sprintf("%80s", ""); gsub(/ /, "x", pad);
  for (i = 0; i < n; i++) {
    if (i % 3 == 0) f = sprintf("%s/sub dir/part %04d.txt", dir, i);
    else if (i % 3 == 1) f = sprintf("%s/a+b=%04d.txt", dir, i);
    else f = sprintf("%s/caf\303\251-\345\214\227\344\272\254-%04d.txt", dir, i);
    for (j = 0; j < 180; j++) printf "%08d-%04d-%03d %s\n", int(rand() * 1e8), i, j, pad > f;
    close(f);
  } }'
[ "$(find "$TMP/in" -type f | wc -l)" = "$N" ] || fail "made $N input files"
s3_aws s3 cp --recursive --quiet "$TMP/in" "s3://luamr-e2e/many/"
[ "$(s3_aws s3 ls --recursive s3://luamr-e2e/many/ | wc -l)" = "$N" ] || fail "uploaded $N objects"

cat >"$TMP/sortlines.lua" <<'LUA'
return {
  map = function(input, ctx)
    local f = frame.new{ {"line", "string"} }
    for line in input:lines() do f:append{ line = line } end
    return f
  end,
  reduce = function(f, ctx) return f:sort_by("line") end,
}
LUA
job() {  # job NAME MANIFEST OUTPUT
  cat <<JSON
{"name": "$1", "script": "sortlines.lua",
 "readConnector": {"manifest": ["$2"], "format": "lines"},
 "intermediate": {"location": "$TMP/imd-$1"},
 "writeConnector": {"location": "$3", "format": "csv"},
 "compute": {"concurrency": 2}}
JSON
}
job s3 "s3://luamr-e2e/many/" "s3://luamr-e2e/out/sorted.csv" >"$TMP/s3.json"
job local "$TMP/in" "$TMP/local.csv" >"$TMP/local.json"

s3_start_proxy 1 0 0   # no faults: it only counts the UploadPart requests
AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PROXY_PORT" expect_status 0 run "$TMP/s3.json"
parts=$(node -e 'require("http").get(process.argv[1], r => { let b = ""; r.on("data", d => b += d);
  r.on("end", () => console.log(JSON.parse(b).parts)); })' "http://127.0.0.1:$S3_PROXY_PORT/__faultproxy/stats")
expect_in "$TMP/err.txt" "$N tasks" "one map task per object of the prefix"
expect_status 0 run "$TMP/local.json"
s3_aws s3 cp --quiet s3://luamr-e2e/out/sorted.csv "$TMP/s3.csv"
size=$(stat -c %s "$TMP/s3.csv")
[ "$size" -gt $((20 * 1024 * 1024)) ] || fail "output is over 20 MiB ($size bytes)"
cmp -s "$TMP/s3.csv" "$TMP/local.csv" || fail "S3 and local runs give different bytes"
{ echo line; find "$TMP/in" -type f -exec cat {} + | sort; } >"$TMP/want.csv"
cmp -s "$TMP/want.csv" "$TMP/s3.csv" || fail "output differs from sort(1) over the inputs"
[ "$(s3_open_uploads)" = 0 ] || fail "multipart uploads left open"
[ "$parts" -ge 3 ] || fail "the output went up as a multipart upload of 8 MiB parts ($parts parts)"
pass "1,200-object prefix with odd keys -> $((size / 1048576)) MiB output in $parts parts, same as local and sort(1)"
