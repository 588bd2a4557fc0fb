#!/usr/bin/env bash
# Bad WARC input: a gzip member cut in half, garbage between members and a record whose
# Content-Length runs past the end. Each goes to the error destination with the file and
# offset; the reader resynchronises and the job's answer is the one over the good records.
# With no bad-record budget the job fails and names the file.
. "$(dirname "$0")/lib.sh.inc"
EX=$LUAMR_SOURCE_DIR/scripts/examples
CRAWL=$LUAMR_SOURCE_DIR/tests/data/crawl
cp "$EX/warc_p90_by_language.lua" "$TMP/"
mkdir -p "$TMP/in"
src=$CRAWL/crawl-00000.warc.gz
# Member offsets of the file, from its own gzip headers: python's zlib walks the members.
python3 - "$src" "$TMP/in/broken.warc.gz" <<'PY'
import sys, zlib
data = open(sys.argv[1], "rb").read()
offs, pos = [], 0
while pos < len(data):
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    d.decompress(data[pos:])
    offs.append(pos)
    pos = len(data) - len(d.unused_data)
cut = offs[10] + (offs[11] - offs[10]) // 2          # member 10 cut in half
out = data[:cut] + data[offs[11]:offs[20]] + b"garbage between members" + data[offs[20]:]
# the last record: claim 1 MiB more than there is, as one more member
last = b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: 1048576\r\n\r\nshort\r\n\r\n"
c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
out += c.compress(last) + c.flush()
open(sys.argv[2], "wb").write(out)
print(offs[10], offs[20], len(offs))
PY
cp "$CRAWL/crawl-00001.warc.gz" "$TMP/in/"
cat >"$TMP/job.json" <<JSON
{"name": "bad", "script": "warc_p90_by_language.lua",
 "readConnector": {"manifest": ["in/*"], "format": "warc"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/p90.csv", "format": "csv"},
 "errorConnector": {"location": "out/errors", "maxBadRecords": 10}}
JSON
expect_status 0 run "$TMP/job.json"
cat "$TMP"/out/errors/*/*.jsonl >"$TMP/errors.txt" 2>/dev/null || fail "no error destination written"
[ "$(wc -l <"$TMP/errors.txt")" = 3 ] || { cat "$TMP/errors.txt"; fail "expected 3 bad records"; }
expect_in "$TMP/errors.txt" "broken.warc.gz" "bad records name the file"
expect_in "$TMP/errors.txt" "gzip member" "the cut member is reported"
expect_in "$TMP/errors.txt" "runs past the end" "the long Content-Length is reported"
[ "$(wc -l <"$TMP/out/p90.csv")" -ge 6 ] || fail "the good records still give an answer"
pass "bad WARC records go to the error destination, the rest is read"

sed -i 's/"maxBadRecords": 10/"maxBadRecords": 0/' "$TMP/job.json"
rm -rf "$TMP/out"
rc=0; "$LUAMR" run "$TMP/job.json" >"$TMP/out.txt" 2>"$TMP/err.txt" || rc=$?
[ "$rc" != 0 ] || fail "the job should fail when the bad-record budget is 0"
expect_in "$TMP/err.txt" "broken.warc.gz" "the failure names the file"
pass "with no bad-record budget the job fails naming the file"
