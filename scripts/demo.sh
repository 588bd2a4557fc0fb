#!/usr/bin/env bash
# Builds luamr and runs the flagship example: the 90th-percentile page length per
# language over the sample web crawl (WARC files) that ships in tests/data/crawl.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target luamr
./build/luamr run scripts/examples/warc_p90_by_language.json
echo
echo "== result (scripts/examples/out/warc_p90_by_language.json):"
cat scripts/examples/out/warc_p90_by_language.json
