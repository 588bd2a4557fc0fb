#!/usr/bin/env python3
"""Serves a folder on 127.0.0.1 for scripts/make_crawl.sh, like a plain Apache would.

Files named NAME.LANG.html (the Debian manuals' convention, e.g. ch01.de.html,
index.zh-cn.html) get a Content-Language header, as Apache's AddLanguage/MultiViews
would send, so the crawl exercises every language source luamr knows: HTTP
Content-Language here, lang/xml:lang attributes in other manuals, and none at all.

usage: crawl_server.py ROOT PORT_FILE   (binds an ephemeral port, writes it to PORT_FILE)
"""
import http.server
import os
import re
import sys

LANG_SUFFIX = re.compile(r"\.([a-z]{2,3}(?:[-_][a-zA-Z]{2,4})?)\.html?$")


class Handler(http.server.SimpleHTTPRequestHandler):
    # Small responses would otherwise wait on Nagle + delayed ACK (40 ms each).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def end_headers(self):
        m = LANG_SUFFIX.search(self.path.split("?", 1)[0])
        if m:
            lang = m.group(1).replace("_", "-")
            if "-" in lang:
                primary, region = lang.split("-", 1)
                lang = primary + "-" + region.upper()
            self.send_header("Content-Language", lang)
        super().end_headers()

    def log_message(self, fmt, *args):
        pass


def main():
    root, port_file = sys.argv[1], sys.argv[2]
    os.chdir(root)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
