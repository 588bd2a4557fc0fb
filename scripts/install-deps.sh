#!/usr/bin/env bash
# Installs what luamr needs to build and test on Debian 12 (run as root); skips what is
# already there so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

build_pkgs="build-essential cmake pkg-config libluajit-5.1-dev luajit libcjson-dev libcurl4-openssl-dev zlib1g-dev libdeflate-dev libssl-dev check"
test_pkgs="bc gawk mawk awscli libdeflate-tools wget python3 zip unzip binutils clang time"
# Node.js may come from elsewhere (NodeSource's nodejs bundles npm and conflicts with
# Debian's npm package): install Debian's only when the commands are missing.
command -v node >/dev/null 2>&1 || test_pkgs="$test_pkgs nodejs"
command -v npm >/dev/null 2>&1 || test_pkgs="$test_pkgs npm"

want="$build_pkgs"
[ "${1:-}" = "--test" ] && want="$build_pkgs $test_pkgs"

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
  for d in tests/s3 tests/warcio; do
    if [ -f "$d/package-lock.json" ] && [ ! -d "$d/node_modules" ]; then
      echo "npm ci in $d" >&2
      npm ci --prefix "$d" --no-audit --no-fund --silent >/dev/null
    fi
  done
fi
