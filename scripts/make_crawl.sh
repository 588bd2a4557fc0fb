#!/usr/bin/env bash
# Builds a multilingual web crawl as .warc.gz from Debian manuals nobody here wrote:
# the manuals are served on 127.0.0.1 by scripts/crawl_server.py and crawled by
# `wget --warc-file`, so the WARC files are what a real crawler writes.
#
#   scripts/make_crawl.sh small [OUTDIR]   # ~3 MiB, 3 files  (default tests/data/crawl)
#   scripts/make_crawl.sh large [OUTDIR]   # hundreds of MiB (default scripts/bench/data/crawl-large)
#   ROUNDS=N scripts/make_crawl.sh large   # large = the whole corpus crawled N times (default 6)
#
# Needs wget, python3 and the manuals' packages (installed with apt-get when missing and
# we are root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
size=${1:-small}
case $size in
  small) out=${2:-$here/../tests/data/crawl} ;;
  large) out=${2:-$here/data/crawl-large} ;;
  *) echo "usage: $0 small|large [OUTDIR]" >&2; exit 2 ;;
esac

maint_langs="ca de es fr it ja ru vi"
devref_langs="de fr it ru"
faq_langs="de fr it ko nl ru"
pkgs="wget"
for l in "" $maint_langs; do pkgs="$pkgs maint-guide${l:+-$l}"; done
for l in "" $devref_langs; do pkgs="$pkgs developers-reference${l:+-$l}"; done
for l in "" $faq_langs; do pkgs="$pkgs debian-faq${l:+-$l}"; done
if [ "$size" = large ]; then
  for l in en de es fr id it ja pt zh-cn; do pkgs="$pkgs debian-reference-$l"; done
  pkgs="$pkgs installation-guide-amd64"
fi
# dpkg-query fails for packages it has never seen: that is what we are asking about.
missing=$( (dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $pkgs 2>/dev/null || true) \
  | awk '$1 == "ii" { print $2 }' | sort | comm -13 - <(tr ' ' '\n' <<<"$pkgs" | sort))
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >/dev/null
  else
    echo "missing packages: $missing (apt-get install them)" >&2; exit 1
  fi
fi

work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The site: one folder per manual and language, all linked from /index.html.
site=$work/site
mkdir -p "$site/maint-guide" "$site/devref" "$site/faq"
{
  echo '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Debian manuals</title></head><body><ul>'
  for l in en $maint_langs; do
    d=/usr/share/doc/maint-guide${l/#en/}; [ "$l" = en ] || d=/usr/share/doc/maint-guide-$l
    ln -s "$d/html" "$site/maint-guide/$l"
    idx=$(cd "$d/html" && ls index*.html | head -1)
    echo "<li><a href=\"maint-guide/$l/$idx\">maint-guide $l</a></li>"
  done
  for l in en $devref_langs; do
    d=/usr/share/doc/developers-reference; [ "$l" = en ] || d=$d-$l
    ln -s "$d/docs" "$site/devref/$l"
    echo "<li><a href=\"devref/$l/index.html\">developers-reference $l</a></li>"
  done
  # The FAQ ships one folder; its pages are NAME.LANG.html
  ln -s /usr/share/doc/debian/FAQ "$site/faq/all"
  for l in en $faq_langs; do
    if [ -e "/usr/share/doc/debian/FAQ/index.$l.html" ]; then
      echo "<li><a href=\"faq/all/index.$l.html\">FAQ $l</a></li>"
    elif [ -e "/usr/share/doc/debian/FAQ/$l/index.$l.html" ]; then
      echo "<li><a href=\"faq/all/$l/index.$l.html\">FAQ $l</a></li>"
    fi
  done
  if [ "$size" = large ]; then
    ln -s /usr/share/debian-reference "$site/reference"
    for f in /usr/share/debian-reference/index.*.html; do
      echo "<li><a href=\"reference/$(basename "$f")\">$(basename "$f")</a></li>"
    done
    ln -s /usr/share/doc/installation-guide-amd64 "$site/install"
    for d in /usr/share/doc/installation-guide-amd64/*/; do
      l=$(basename "$d"); [ -e "$d/index.html" ] || continue
      echo "<li><a href=\"install/$l/index.html\">install $l</a></li>"
    done
    # Every file of the manuals, PDFs and compressed text included, as a site's download
    # area would: large non-HTML responses a crawl is full of.
    echo '<li><a href="files.html">all files</a></li>'
    (cd "$site" && find -L maint-guide devref faq reference install -type f \
       \( -name '*.pdf' -o -name '*.gz' -o -name '*.epub' -o -name '*.txt' \) | sort \
       | awk 'BEGIN { print "<!DOCTYPE html><html lang=\"en\"><body><ul>" }
              { printf "<li><a href=\"%s\">%s</a></li>\n", $0, $0 }
              END { print "</ul></body></html>" }') > "$site/files.html"
  fi
  echo '</ul></body></html>'
} > "$site/index.html"

python3 "$here/crawl_server.py" "$site" "$work/port" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

mkdir -p "$out"
rm -f "$out"/crawl-*.warc.gz "$out"/crawl*-meta.warc.gz
crawl() {   # crawl URL WARC-PREFIX MAX-SIZE
  # exit 8 = some links were dead (404); that is part of a real crawl
  (cd "$work" && wget -q -r -l inf -e robots=off --delete-after -nd -P "$work/dl" \
     ${2:+--reject "$2"} --warc-file="$3" --warc-max-size="$4" "$1") || [ $? = 8 ]
}
if [ "$size" = small ]; then
  # Only the small manuals, HTML and their images/CSS, split in a few files.
  crawl "http://127.0.0.1:$port/index.html" "pdf,epub,gz,js,inv" "$out/crawl" 1500K
else
  rounds=${ROUNDS:-6}
  mkdir -p "$work/rounds"
  for r in $(seq "$rounds"); do
    # Same corpus under a new path each round, so every round's URIs are distinct.
    ln -s "$site" "$site/r$r" 2>/dev/null || true
    crawl "http://127.0.0.1:$port/r$r/index.html" "" "$out/crawl-r$r" 64M
  done
fi
ls -l "$out"
