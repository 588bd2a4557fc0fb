#!/usr/bin/env bash
# The flagship WARC job over the committed crawl (tests/data/crawl): p90 of the HTML page
# size per language. Checked against webrecorder's warcio + an independent language
# finder and percentile in Node (tests/warcio/p90.mjs), and the record-by-record version
# of the job must give the same answer. The input also comes through a manifest file
# (gzipped, Common Crawl warc.paths style) naming files that do not end in .warc.gz.
. "$(dirname "$0")/lib.sh.inc"
EX=$LUAMR_SOURCE_DIR/scripts/examples
CRAWL=$LUAMR_SOURCE_DIR/tests/data/crawl
cp "$EX/warc_p90_by_language.lua" "$EX/warc_p90_by_language_records.lua" "$TMP/"
job() {  # job NAME SCRIPT READ-CONNECTOR-JSON
  cat >"$TMP/$1.json" <<JSON
{"name": "$1", "script": "$2",
 "readConnector": $3,
 "intermediate": {"location": "imd-$1"},
 "writeConnector": {"location": "out/$1.csv", "format": "csv"},
 "errorConnector": {"location": "out/errors-$1"},
 "compute": {"executor": "local", "concurrency": 2}}
JSON
}
job frame warc_p90_by_language.lua "{\"manifest\": [\"$CRAWL/*.warc.gz\"], \"format\": \"warc\"}"
expect_status 0 run "$TMP/frame.json"
records=$(for f in "$CRAWL"/*.warc.gz; do zcat "$f"; done | grep -ac '^WARC-Type: ')
expect_in "$TMP/err.txt" "$records records in" "summary counts every WARC record"
[ "$(wc -l <"$TMP/out/frame.csv")" -ge 7 ] || fail "expected at least 6 languages"

# Same job, record by record in Lua; files renamed and listed in a gzipped manifest.
mkdir -p "$TMP/segments"
i=0
for f in "$CRAWL"/*.warc.gz; do i=$((i + 1)); cp "$f" "$TMP/segments/part-$i.data"; echo "$TMP/segments/part-$i.data"; done |
  gzip >"$TMP/warc.paths.gz"
job records warc_p90_by_language_records.lua '{"manifestFile": "warc.paths.gz", "format": "warc"}'
expect_status 0 run "$TMP/records.json"
cmp "$TMP/out/frame.csv" "$TMP/out/records.csv" || fail "records() and frame() versions differ"
pass "flagship frame and record versions agree ($(($(wc -l <"$TMP/out/frame.csv") - 1)) languages, $records records)"

# Independent: warcio + Node.
if [ -d "$LUAMR_SOURCE_DIR/tests/warcio/node_modules/warcio" ] && command -v node >/dev/null; then
  node "$LUAMR_SOURCE_DIR/tests/warcio/p90.mjs" "$CRAWL"/*.warc.gz >"$TMP/warcio.json"
  node -e 'for (const r of JSON.parse(require("fs").readFileSync(process.argv[1])))
             console.log([r.language, r.pages, r.p90].join(","))' "$TMP/warcio.json" >"$TMP/want.txt"
  head -1 "$TMP/out/frame.csv" | grep -q '^language,pages,p90$' || fail "unexpected header: $(head -1 "$TMP/out/frame.csv")"
  tail -n +2 "$TMP/out/frame.csv" >"$TMP/got.txt"
  compare_numeric "$TMP/want.txt" "$TMP/got.txt" "p90 per language vs warcio"
  pass "flagship p90 per language equals warcio + Node"
else
  echo "skip - warcio check (run: npm ci --prefix tests/warcio)"
fi
