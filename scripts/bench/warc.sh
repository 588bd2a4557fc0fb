#!/usr/bin/env bash
# WARC reading speed: the flagship job (scripts/examples/warc_p90_by_language.lua) over the
# large crawl (scripts/make_crawl.sh large, made on first use) with one worker, against
# plain decompression of the same files (libdeflate-gunzip and zcat), warcio counting the
# same records, and two workers against one.
#   RUNS=3 bash scripts/bench/warc.sh
source "$(dirname "$0")/lib.sh.inc"
build_luamr
CRAWL="$DATA/crawl-large"
if ! ls "$CRAWL"/crawl-r*-00000.warc.gz >/dev/null 2>&1; then
  echo "making the large crawl in $CRAWL (a few minutes)..." >&2
  "$ROOT/scripts/make_crawl.sh" large "$CRAWL" >/dev/null
fi
FILES=("$CRAWL"/*.warc.gz)
MB=$(du -cm "${FILES[@]}" | tail -1 | cut -f1)
RAW_MB=$(for f in "${FILES[@]}"; do zcat "$f"; done | wc -c | awk '{printf "%d", $1 / 1048576}')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/luamr-bench-warc.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cp "$ROOT/scripts/examples/warc_p90_by_language.lua" "$WORK/"
job() {  # job CONCURRENCY -> config path
  cat >"$WORK/job$1.json" <<JSON
{"name": "warc-bench-$1", "script": "warc_p90_by_language.lua",
 "readConnector": {"manifest": ["$CRAWL/*.warc.gz"], "format": "warc"},
 "intermediate": {"location": "$WORK/imd"},
 "writeConnector": {"location": "$WORK/out$1.csv", "format": "csv"},
 "compute": {"executor": "local", "concurrency": $1}}
JSON
  echo "$WORK/job$1.json"
}
gunzip_all() { for f in "${FILES[@]}"; do "$1" -c "$f" >/dev/null; done; }

echo "crawl: ${#FILES[@]} files, $MB MiB gzip, $RAW_MB MiB of WARC records"
t1=$(median_time "$LUAMR" run "$(job 1)")
t2=$(median_time "$LUAMR" run "$(job 2)")
cmp "$WORK/out1.csv" "$WORK/out2.csv" || { echo "1 and 2 workers disagree" >&2; exit 1; }
tld=$(median_time gunzip_all libdeflate-gunzip)
tz=$(median_time gunzip_all zcat)
echo "flagship job, 1 worker:      ${t1} s"
echo "flagship job, 2 workers:     ${t2} s   (speed-up x$(ratio "$t1" "$t2"))"
echo "libdeflate-gunzip -c > null: ${tld} s   (job / libdeflate = $(ratio "$t1" "$tld"))"
echo "zcat > null:                 ${tz} s   (job / zcat = $(ratio "$t1" "$tz"))"
if [ -d "$ROOT/tests/warcio/node_modules/warcio" ]; then
  n=$(node "$ROOT/tests/warcio/count.mjs" "${FILES[@]}")
  tw=$(median_time node "$ROOT/tests/warcio/count.mjs" "${FILES[@]}")
  echo "warcio counting $n records:  ${tw} s   (warcio / job = $(ratio "$tw" "$t1"))"
else
  echo "warcio: skipped (npm ci --prefix tests/warcio)"
fi
