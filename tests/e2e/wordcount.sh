#!/usr/bin/env bash
# Word count over real text files (the license texts Debian ships plus our docs),
# compared with tr | sort | uniq.
. "$(dirname "$0")/lib.sh.inc"
mkdir -p "$TMP/in"
i=0
for f in /usr/share/common-licenses/* "$LUAMR_SOURCE_DIR"/docs/*.md; do
  [ -f "$f" ] || continue; i=$((i+1)); cp "$f" "$TMP/in/text-$i.txt"
done
gzip -k "$TMP/in/text-1.txt" && rm "$TMP/in/text-1.txt"   # one input gzip-compressed
cp "$LUAMR_SOURCE_DIR/scripts/examples/wordcount.lua" "$TMP/"
cat >"$TMP/job.json" <<JSON
{"name": "wc", "script": "wordcount.lua",
 "readConnector": {"manifest": ["in/"], "format": "lines"},
 "intermediate": {"location": "imd"},
 "writeConnector": {"location": "out/wc.csv", "format": "csv"},
 "compute": {"concurrency": 2}}
JSON
expect_status 0 run "$TMP/job.json"
expect_in "$TMP/err.txt" "succeeded" "summary"
tail -n +2 "$TMP/out/wc.csv" | tr ',' ' ' >"$TMP/got.txt"
for f in "$TMP"/in/*; do case $f in *.gz) zcat "$f";; *) cat "$f";; esac; done |
  tr -cs 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | grep -v '^$' | sort | uniq -c |
  awk '{print $2, $1}' | sort -k2,2nr -k1,1 >"$TMP/want.txt"
diff "$TMP/want.txt" "$TMP/got.txt" >/dev/null || { diff "$TMP/want.txt" "$TMP/got.txt" | head; fail "word counts differ"; }
pass "word count over $i files equals tr|sort|uniq ($(wc -l <"$TMP/want.txt") words)"
