#!/usr/bin/env bash
# Hostile inputs are refused with a clear message (exit status 1, never a signal) or read
# with bounded memory: a 1 GiB CSV line (through a FIFO, so nothing lands on disk), WARC
# Content-Lengths of 2^63 and beyond, gzip bombs (1 GiB from ~2 MB, single- and
# multi-member), configs with wrong types, run ids and job names that would climb out of
# their folders, and S3 keys with '..'.
# Peak RSS is measured with /usr/bin/time -v when it is installed. docs/robustness.md
# lists every case.
. "$(dirname "$0")/lib.sh.inc"
WRITER_PID=
trap '[ -z "$WRITER_PID" ] || kill "$WRITER_PID" 2>/dev/null || true; rm -rf "$TMP"' EXIT
GIB=1073741824
HAVE_TIME=0; [ -x /usr/bin/time ] && HAVE_TIME=1

# Runs luamr under /usr/bin/time; sets RC and RSS_MB (peak resident set, 0 if unknown).
measure() {
  RC=0
  if [ "$HAVE_TIME" = 1 ]; then
    /usr/bin/time -v -o "$TMP/time.txt" "$LUAMR" "$@" >"$TMP/out.txt" 2>"$TMP/err.txt" || RC=$?
    RSS_MB=$(( $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$TMP/time.txt") / 1024 ))
  else
    "$LUAMR" "$@" >"$TMP/out.txt" 2>"$TMP/err.txt" || RC=$?
    RSS_MB=0
  fi
}
# A failure must be an orderly exit 1, not a crash (128+signal) or sanitizer abort.
expect_clean_failure() {
  [ "$RC" = 1 ] || { cat "$TMP/err.txt"; fail "$1: exit status $RC, expected 1"; }
  if grep -qE "AddressSanitizer|runtime error|Segmentation|core dumped" "$TMP/err.txt"; then
    cat "$TMP/err.txt"; fail "$1: crashed"
  fi
}
rss_below() {  # rss_below LIMIT_MB WHAT
  [ "$HAVE_TIME" = 1 ] || { echo "note: /usr/bin/time missing, $2 RSS not measured"; return; }
  [ "$RSS_MB" -lt "$1" ] || fail "$2: peak RSS ${RSS_MB} MB, expected < $1 MB"
  echo "   $2: peak RSS ${RSS_MB} MB"
}
cat >"$TMP/frame.lua" <<'LUA'
return {
  map = function(input, ctx) return input:frame() end,
  reduce = function(f, ctx) return f end,
}
LUA
cat >"$TMP/count.lua" <<'LUA'
-- Lines and bytes per input, summed: an independent check that every byte was streamed.
return {
  map = function(input, ctx)
    local n, bytes = 0, 0
    for line in input:lines() do n = n + 1; bytes = bytes + #line end
    local f = frame.new{ n = "int64", bytes = "int64" }
    f:append{ n = n, bytes = bytes }
    return f
  end,
  reduce = function(f, ctx) return f:agg{ n = sum("n"), bytes = sum("bytes") } end,
}
LUA
job() {  # job NAME SCRIPT FORMAT MANIFEST_GLOB [EXTRA_JSON]
  cat >"$TMP/$1.json" <<JSON
{"name": "$1", "script": "$2",
 "readConnector": {"manifest": ["$4"], "format": "$3"},
 "intermediate": {"location": "imd-$1"},
 "writeConnector": {"location": "out-$1/result.csv", "format": "csv"}${5:+, $5}}
JSON
}

# ---- 1. a CSV line of 1 GiB, streamed through a FIFO -----------------------------------
mkdir -p "$TMP/fifo"
mkfifo "$TMP/fifo/big.csv"
# The writer dies of SIGPIPE once luamr gives up; timeout bounds it if luamr never opens.
( { printf 'a,b\n1,'; head -c $GIB /dev/zero | tr '\0' x; printf '\n2,3\n'; } \
    >"$TMP/fifo/big.csv" 2>/dev/null ) &
WRITER_PID=$!
job bigline frame.lua csv "fifo/big.csv"
measure run "$TMP/bigline.json"
kill "$WRITER_PID" 2>/dev/null || true; wait "$WRITER_PID" 2>/dev/null || true; WRITER_PID=
expect_clean_failure "1 GiB CSV line"
expect_in "$TMP/err.txt" "big.csv line 2.*longer than [0-9]+ bytes" "the error names file, line and limit"
rss_below 600 "1 GiB CSV line"
pass "a 1 GiB CSV line is refused at the record limit, naming file and line"

# ---- 2. WARC Content-Length 2^63, 2^64, -1 ---------------------------------------------
mkdir -p "$TMP/warc"
python3 - "$TMP/warc" <<'PY'
import gzip, sys
d = sys.argv[1]
body = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html lang=\"en\">hi</html>"
good = (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://x/a\r\n"
        b"Content-Type: application/http; msgtype=response\r\nContent-Length: %d\r\n\r\n"
        % len(body)) + body + b"\r\n\r\n"
def bad(cl):
    return (b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: " + cl +
            b"\r\n\r\nhello\r\n\r\n")
open(d + "/plain.warc", "wb").write(good + bad(b"9223372036854775808") + good +
                                     bad(b"18446744073709551616") + good + bad(b"-1") + good)
open(d + "/members.warc.gz", "wb").write(gzip.compress(good) +
                                         gzip.compress(bad(b"9223372036854775807")) +
                                         gzip.compress(good))
PY
cp "$LUAMR_SOURCE_DIR/scripts/examples/warc_p90_by_language.lua" "$TMP/"
job warc warc_p90_by_language.lua warc "warc/*" \
  '"errorConnector": {"location": "errors-warc", "maxBadRecords": 10}'
measure run "$TMP/warc.json"
[ "$RC" = 0 ] || { cat "$TMP/err.txt"; fail "WARC with huge Content-Length: exit $RC"; }
cat "$TMP"/errors-warc/*/*.jsonl >"$TMP/warc-errors.txt"
[ "$(wc -l <"$TMP/warc-errors.txt")" = 4 ] || { cat "$TMP/warc-errors.txt"; fail "expected 4 bad WARC records"; }
expect_in "$TMP/warc-errors.txt" "Content-Length 9223372036854775808 runs past the end" "2^63 reported"
expect_in "$TMP/warc-errors.txt" "18446744073709551616" "2^64 reported"
expect_in "$TMP/warc-errors.txt" "9223372036854775807 runs past the end" "2^63-1 in a gzip member reported"
# 4 good records in plain.warc + 2 in members.warc.gz: the reader resynchronised each time.
expect_in "$TMP/out-warc/result.csv" "^en,6," "the good records are all read"
rss_below 200 "WARC Content-Length 2^63"
sed -i 's/"maxBadRecords": 10/"maxBadRecords": 0/' "$TMP/warc.json"
measure run "$TMP/warc.json"
expect_clean_failure "WARC Content-Length 2^63 with no bad-record budget"
expect_in "$TMP/err.txt" "plain.warc|members.warc.gz" "the failure names the file"
pass "WARC Content-Lengths of 2^63, 2^64 and -1 are bad records, not allocations"

# ---- 3. gzip bombs -------------------------------------------------------------------------
mkdir -p "$TMP/bomb1" "$TMP/bomb2" "$TMP/bomb3"
python3 - "$TMP" <<'PY'
import gzip, sys, zlib
d = sys.argv[1]
chunk = (b"0" * 1023 + b"\n") * 1024                 # 1 MiB, 1024 lines
with open(d + "/bomb1/lines.txt.gz", "wb") as f:     # one member, 1 GiB
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    for _ in range(1024):
        f.write(c.compress(chunk))
    f.write(c.flush())
with open(d + "/bomb2/members.txt.gz", "wb") as f:   # 1024 members of 1 MiB each
    f.write(gzip.compress(chunk, 9) * 1024)
with open(d + "/bomb3/zeros.txt.gz", "wb") as f:     # 256 MiB of NULs, no newline
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    z = bytes(1 << 20)
    for _ in range(256):
        f.write(c.compress(z))
    f.write(c.flush())
PY
for b in bomb1 bomb2; do
  job "$b" count.lua lines "$b/"
  measure run "$TMP/$b.json"
  [ "$RC" = 0 ] || { cat "$TMP/err.txt"; fail "$b: exit $RC"; }
  # 1 GiB = 2^20 lines of 1023 bytes + '\n'.
  expect_in "$TMP/out-$b/result.csv" "^(1048576,1072693248|1072693248,1048576)$" "$b: every line read"
  rss_below 300 "$b ($(du -k "$TMP/$b" | cut -f1) KB -> 1 GiB)"
done
job bomb3 count.lua lines "bomb3/"
measure run "$TMP/bomb3.json"
expect_clean_failure "256 MiB line of NULs"
expect_in "$TMP/err.txt" "zeros.txt.gz.*longer than [0-9]+ bytes" "the line limit names the file"
rss_below 600 "gzip bomb without newlines"
pass "gzip bombs stream with bounded memory; a bomb without newlines stops at the line limit"

# ---- 4. configs with wrong types -----------------------------------------------------------
cfg_bad() {  # cfg_bad JSON PATTERN WHAT
  printf '%s\n' "$1" >"$TMP/bad.json"
  measure validate "$TMP/bad.json"
  expect_clean_failure "config: $3"
  expect_in "$TMP/err.txt" "bad.json.*$2" "config: $3"
}
B='"name": "j", "script": "frame.lua", "readConnector": {"manifest": ["fifo/"]}'
cfg_bad '{"name": 7, "script": "frame.lua"}' "name" "a number as the name"
cfg_bad "{$B, \"compute\": {\"concurrency\": \"many\"}}" "compute.concurrency" "a string as concurrency"
cfg_bad "{$B, \"compute\": {\"concurrency\": -4}}" "compute.concurrency" "a negative concurrency"
cfg_bad "{$B, \"compute\": {\"memoryMB\": 1e400}}" "compute.memoryMB|invalid JSON|line 1" "an infinite memoryMB"
cfg_bad "{$B, \"compute\": {\"reducers\": 2.5}}" "compute.reducers" "a fractional reducer count"
cfg_bad "{$B, \"errorConnector\": {\"maxBadRecords\": true}}" "errorConnector.maxBadRecords" "a bool as maxBadRecords"
S='"name": "j", "script": "frame.lua"'
cfg_bad "{$S, \"readConnector\": {\"manifest\": [1, 2]}}" "readConnector.manifest" "numbers as manifest entries"
cfg_bad "{$S, \"readConnector\": {\"manifest\": \"x\", \"format\": \"csv\", \"csv\": {\"delimiter\": \",,\"}}}" "delimiter" "a two-character delimiter"
cfg_bad '[1, 2, 3]' "object" "an array at the top level"
cfg_bad "{$B, \"writeConnector\": {\"gzip\": \"yes\"}}" "writeConnector.gzip" "a string as a bool"
pass "configs with wrong types are refused naming the file and the field"

# ---- 5. paths that climb out of their folders ---------------------------------------------
# writeConnector.location resolves against the config's folder and may use "../" (the
# config is trusted to name its output; docs/config.md). Check it lands where it says.
mkdir -p "$TMP/jobdir" "$TMP/in5"
printf 'a,b\n1,2\n' >"$TMP/in5/x.csv"
cp "$TMP/frame.lua" "$TMP/jobdir/"
cat >"$TMP/jobdir/up.json" <<'JSON'
{"name": "up", "script": "frame.lua",
 "readConnector": {"manifest": ["../in5/x.csv"], "format": "csv"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "../outside/result.csv", "format": "csv"}}
JSON
measure run "$TMP/jobdir/up.json"
[ "$RC" = 0 ] || { cat "$TMP/err.txt"; fail "'../' output path: exit $RC"; }
[ -f "$TMP/outside/result.csv" ] || fail "'../' output path: not written beside the job folder"
pass "'../' in writeConnector.location resolves against the config folder (allowed by design)"

# A run id is a folder name under intermediate/ and errors/: "../" must not climb out.
for opt in --run-id --resume; do
  measure run "$TMP/jobdir/up.json" "$opt" "../../escaped-run"
  expect_clean_failure "$opt with '../'"
  expect_in "$TMP/err.txt" "$opt '../../escaped-run': a run id cannot start with '.'" "$opt names the rule"
  [ ! -e "$TMP/escaped-run" ] || fail "$opt '../../escaped-run' wrote outside intermediate.location"
done
measure run "$TMP/jobdir/up.json" --run-id "a/b"
expect_clean_failure "--run-id with '/'"
expect_in "$TMP/err.txt" "a run id is letters, digits" "--run-id with '/' names the rule"
pass "--run-id and --resume with '../' or '/' are refused"
# A job name names folders (default intermediate "<dir>/.luamr/<name>"): ".." would be the
# config folder itself.
cat >"$TMP/jobdir/dots.json" <<'JSON'
{"name": "..", "script": "frame.lua", "readConnector": {"manifest": ["../in5/x.csv"], "format": "csv"},
 "writeConnector": {"location": "out-dots/r.csv", "format": "csv"}}
JSON
measure validate "$TMP/jobdir/dots.json"
expect_clean_failure "job name '..'"
expect_in "$TMP/err.txt" "dots.json: name: cannot be empty or start with '.'" "job name '..' names the field"
pass "job name '..' is refused"

# ---- 6. S3 keys with '..' --------------------------------------------------------------
# Refused when the config is read, naming the field, before any request (no server needed).
s3_bad() {  # s3_bad FIELD JSON_FRAGMENT
  printf '{"name": "s3dots", "script": "frame.lua", %s}\n' "$2" >"$TMP/jobdir/s3dots.json"
  measure validate "$TMP/jobdir/s3dots.json"
  expect_clean_failure "S3 key with '..' in $1"
  expect_in "$TMP/err.txt" "s3dots.json: $1: 's3://bucket/[^']*' has a '\.\.' segment" "$1 with '..'"
}
s3_bad readConnector.manifest '"readConnector": {"manifest": ["s3://bucket/data/../secret/"]}'
s3_bad writeConnector.location '"readConnector": {"manifest": ["../in5/x.csv"]},
  "writeConnector": {"location": "s3://bucket/out/../../elsewhere/r.csv"}'
s3_bad intermediate.location '"readConnector": {"manifest": ["../in5/x.csv"]},
  "intermediate": {"location": "s3://bucket/tmp/.."}'
pass "S3 keys with a '..' segment are refused, naming the field"
