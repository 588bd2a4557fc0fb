#!/usr/bin/env bash
# S3 read throughput: a 500 MiB object on the local test server (tests/s3/server.js),
# streamed by luamr's S3 client (tests/s3/s3cat) and by `aws s3 cp s3://... -`, in the
# same run. Prints the median times and the ratio aws/luamr (> 1: luamr is faster).
#   SIZE_MIB=500 RUNS=3 bash scripts/bench/s3.sh
source "$(dirname "$0")/lib.sh.inc"
SIZE_MIB=${SIZE_MIB:-500}
AWS=/usr/bin/aws   # another `aws` may come first on PATH
[ -x "$AWS" ] || { echo "needs the AWS CLI at $AWS (apt-get install awscli)" >&2; exit 1; }
[ -d "$ROOT/tests/s3/node_modules" ] || npm ci --prefix "$ROOT/tests/s3" --no-audit --no-fund >/dev/null

BUILD=${BUILD:-$ROOT/build}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target luamr_core >/dev/null
S3CAT="$DATA/s3cat"
# shellcheck disable=SC2046
cc -O2 -std=gnu11 -I"$ROOT" "$ROOT/tests/s3/s3cat.c" "$BUILD/libluamr_core.a" -o "$S3CAT" \
  $(pkg-config --libs luajit libcjson libcurl libdeflate zlib) -lcrypto -lm -ldl -lpthread

WORK=$(mktemp -d "${TMPDIR:-/tmp}/luamr-bench-s3.XXXXXX")
exec 3> >(NODE_OPTIONS=--openssl-legacy-provider node "$ROOT/tests/s3/server.js" --dir "$WORK/srv" \
  --bucket bench >"$WORK/port")
cleanup() { exec 3>&-; sleep 0.5; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 50); do grep -q PORT "$WORK/port" 2>/dev/null && break; sleep 0.1; done
PORT=$(awk '{print $2}' "$WORK/port")
[ -n "$PORT" ] || { echo "the S3 test server did not start" >&2; exit 1; }

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
URI="s3://bench/big-${SIZE_MIB}m.bin"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/big.bin"
"$S3CAT" -p "$WORK/big.bin" "$URI" 2>/dev/null
want=$(sha256sum <"$WORK/big.bin" | cut -d' ' -f1)
rm -f "$WORK/big.bin"

# Both readers must deliver the same bytes before their times mean anything.
got_luamr=$("$S3CAT" "$URI" 2>/dev/null | sha256sum | cut -d' ' -f1)
got_aws=$("$AWS" --endpoint-url "$AWS_ENDPOINT_URL" s3 cp "$URI" - | sha256sum | cut -d' ' -f1)
[ "$got_luamr" = "$want" ] || { echo "luamr read different bytes" >&2; exit 1; }
[ "$got_aws" = "$want" ] || { echo "aws read different bytes" >&2; exit 1; }

read_luamr() { "$S3CAT" "$URI" >/dev/null; }
read_aws() { "$AWS" --endpoint-url "$AWS_ENDPOINT_URL" s3 cp "$URI" - >/dev/null; }
t_luamr=$(median_time read_luamr)
t_aws=$(median_time read_aws)
/usr/bin/time -o "$WORK/rss" -f '%M' "$S3CAT" -n "$URI" >/dev/null 2>&1
rss=$(tail -1 "$WORK/rss")
mbps() { echo "scale=1; $SIZE_MIB / $1" | bc -l; }
echo "s3 read of a ${SIZE_MIB} MiB object from the local test server (median of $RUNS):"
printf '  luamr  %6.2f s  %7s MiB/s  peak RSS %s KiB\n' "$t_luamr" "$(mbps "$t_luamr")" "$rss"
printf '  aws    %6.2f s  %7s MiB/s\n' "$t_aws" "$(mbps "$t_aws")"
echo "  ratio aws/luamr: $(ratio "$t_aws" "$t_luamr")"
