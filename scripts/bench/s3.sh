#!/usr/bin/env bash
# S3 read throughput: one large object on the local test server (tests/s3/server.js),
# streamed by luamr's S3 client (tests/s3/s3cat) with one connection and with parallel
# ranged GETs, and by `aws s3 cp s3://... -`, in the same run:
#   1. straight from the server, where nothing caps a connection;
#   2. through tests/s3/faultproxy.js capping every response at RATE_MIBPS, as S3 caps
#      each connection (50-90 MB/s): the case parallel ranged GETs are for.
# Prints median times, MiB/s and ratios (> 1: the first named is slower).
#   SIZE_MIB=500 RUNS=3 PARALLEL=4 RATE_MIBPS=50 bash scripts/bench/s3.sh
source "$(dirname "$0")/lib.sh.inc"
source "$ROOT/tests/s3/lib.sh.inc"
SIZE_MIB=${SIZE_MIB:-500}
PARALLEL=${PARALLEL:-4}
RATE_MIBPS=${RATE_MIBPS:-50}
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
cleanup() { s3_stop; rm -rf "$WORK"; }
trap cleanup EXIT
s3_start_server "$WORK" bench
s3_start_proxy 1 0 0 $((RATE_MIBPS * 1024))
DIRECT="http://127.0.0.1:$S3_PORT" CAPPED="http://127.0.0.1:$S3_PROXY_PORT"

URI="s3://bench/big-${SIZE_MIB}m.bin"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/big.bin"
"$S3CAT" -p "$WORK/big.bin" "$URI" 2>/dev/null
want=$(sha256sum <"$WORK/big.bin" | cut -d' ' -f1)
rm -f "$WORK/big.bin"

# READER ENDPOINT: the object to stdout. READER is luamr1, luamrN or aws.
fetch() {
  case $1 in
    luamr1) AWS_ENDPOINT_URL=$2 LUAMR_S3_PARALLEL=1 "$S3CAT" "$URI" ;;
    luamrN) AWS_ENDPOINT_URL=$2 LUAMR_S3_PARALLEL=$PARALLEL "$S3CAT" "$URI" ;;
    aws) "$AWS" --endpoint-url "$2" s3 cp "$URI" - ;;
  esac
}
# Every reader must deliver the same bytes before its times mean anything.
for r in luamr1 luamrN aws; do
  for ep in "$DIRECT" "$CAPPED"; do
    got=$(fetch "$r" "$ep" 2>/dev/null | sha256sum | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "$r via $ep read different bytes" >&2; exit 1; }
  done
done

d_luamr1() { fetch luamr1 "$DIRECT"; }
d_luamrN() { fetch luamrN "$DIRECT"; }
d_aws() { fetch aws "$DIRECT"; }
c_luamr1() { fetch luamr1 "$CAPPED"; }
c_luamrN() { fetch luamrN "$CAPPED"; }
c_aws() { fetch aws "$CAPPED"; }
mapfile -t t < <(medians d_luamr1 d_luamrN d_aws c_luamr1 c_luamrN c_aws | cut -d' ' -f1)
rss() {
  AWS_ENDPOINT_URL=$DIRECT LUAMR_S3_PARALLEL=$1 /usr/bin/time -o "$WORK/rss" -f '%M' \
    "$S3CAT" -n "$URI" >/dev/null 2>&1
  tail -1 "$WORK/rss"
}
rss1=$(rss 1)
rssN=$(rss "$PARALLEL")
mbps() { echo "scale=1; $SIZE_MIB / $1" | bc -l; }
row() { printf '  %-26s %6.2f s  %7s MiB/s%s\n' "$1" "$2" "$(mbps "$2")" "${3:-}"; }
echo "s3 read of a ${SIZE_MIB} MiB object (median of $RUNS rounds)"
echo "straight from the local test server:"
row "luamr, 1 connection" "${t[0]}" "  peak RSS $rss1 KiB"
row "luamr, $PARALLEL connections" "${t[1]}" "  peak RSS $rssN KiB"
row "aws s3 cp" "${t[2]}"
echo "  ratios: luamr 1/$PARALLEL connections $(ratio "${t[0]}" "${t[1]}"), aws/luamr $(ratio "${t[2]}" "${t[1]}")"
echo "through the proxy, each connection capped at $RATE_MIBPS MiB/s:"
row "luamr, 1 connection" "${t[3]}"
row "luamr, $PARALLEL connections" "${t[4]}"
row "aws s3 cp" "${t[5]}"
echo "  ratios: luamr 1/$PARALLEL connections $(ratio "${t[3]}" "${t[4]}"), aws/luamr $(ratio "${t[5]}" "${t[4]}")"
