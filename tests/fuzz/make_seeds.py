#!/usr/bin/env python3
"""Writes the seed inputs of tests/fuzz/corpus/<target>/ (seed-*) from the repository's
sample data plus small hand-made edge cases. Regression inputs (crash-*, regress-*) are
kept as found; this script only rewrites seed-* files. IMF seeds come from
tests/fuzz/gen_imf_seeds.c (they need the real writer). Option-byte layouts are described
at each target in tests/fuzz/targets.c.

usage: python3 tests/fuzz/make_seeds.py [SOURCE_DIR]"""
import gzip
import os
import sys
import zlib

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
CORPUS = os.path.join(SRC, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def head_lines(path, n):
    with open(os.path.join(SRC, path), "rb") as f:
        return b"".join(f.readline() for _ in range(n))


def gz(data, level=6):
    return gzip.compress(data, level)


# ---- csv: [flags][types][range start][range len|stop bit] ----
sales = head_lines("scripts/examples/data/sales-1.csv", 12)
put("csv", "sales", bytes([4, 0, 0, 0]) + sales)
put("csv", "sales-frame-1byte", bytes([4 | 1, 0, 3, 0]) + sales)
put("csv", "sales-next-only", bytes([4 | 128, 0, 0, 0]) + sales)
put("csv", "sales-range", bytes([4 | 32, 0, 40, 60]) + sales)
put("csv", "schema-typed", bytes([16 | 2, 0 | (1 << 2) | (3 << 4) | 64, 0, 0]) +
    b"1,2.5,x\n-3,1e3,\"y\"\"z\"\n,,\n9223372036854775807,nan,\"multi\nline\"\n")
put("csv", "quotes", bytes([4, 0, 0, 0]) +
    b'a,b,c\n"1","x ""q""",\n"unterminated,2,3\n4,5\n6,7,8,9\r\n')
put("csv", "tsv", bytes([4 | 8 | 3, 0, 0, 0]) + b"k\tv\nx\t1\ny\t2.5\nz\ttrue\n")
put("csv", "bad-stop", bytes([4, 0, 0, 128]) + b"a,b\n1,2\n3\n4,5,6\n7,8\n")
put("csv", "promote", bytes([4, 0, 0, 0]) + b"n\n1\n2\n3.5\nfoo\n\n" + b"x" * 40 + b"\n")

# ---- jsonl ----
users = head_lines("scripts/examples/data/users.jsonl", 8)
orders = head_lines("scripts/examples/data/orders.jsonl", 8)
put("jsonl", "users", bytes([0, 0, 0, 0]) + users)
put("jsonl", "orders-next", bytes([128 | 1, 0, 0, 0]) + orders)
put("jsonl", "orders-range", bytes([32, 0, 50, 80]) + orders)
put("jsonl", "schema", bytes([16, 0 | (1 << 2) | (2 << 4) | 64, 0, 0]) +
    b'{"a": 1, "b": 2.5, "c": true}\n{"a": "x"}\n{"c": null, "d": [1,2]}\n')
put("jsonl", "mixed", bytes([0, 0, 0, 0]) +
    b'{"x": 1}\n{"x": 2.5, "y": {"n": [1, {"z": null}]}}\nnot json\n[1,2]\n{"x": 9007199254740993}\n'
    b'{"x": "s", "x": 3}\n\n{"\\u00e9": "\\ud83d\\ude00"}\n')

# ---- lines (+gzip): [flags (bit 4: .gz name)][..][..][..] ----
text = head_lines("docs/contributing.md", 20)
put("lines", "plain", bytes([128, 0, 0, 0]) + text)
put("lines", "gzip-magic", bytes([3, 0, 2, 0]) + gz(text))
put("lines", "gzip-named", bytes([16 | 1, 0, 0, 0]) + gz(text))
put("lines", "gzip-multimember", bytes([16 | 128, 0, 0, 0]) + gz(b"one\ntwo\n") + gz(b"three\r\nfour"))
put("lines", "range", bytes([32, 0, 30, 50]) + text)

# ---- gzip: [flags] ----
put("gzip", "text", bytes([0x70]) + gz(text))
put("gzip", "readline", bytes([4 | 2]) + gz(text))
put("gzip", "readline-limit", bytes([4 | 8]) + gz(b"short\n" + b"y" * 100 + b"\nend\n"))
put("gzip", "multimember", bytes([1]) + gz(b"a" * 50) + gz(b"b" * 50))
put("gzip", "zlib-header", bytes([0x30]) + zlib.compress(b"zlib wrapped\n" * 5))
put("gzip", "truncated", bytes([0]) + gz(text)[:-20])
put("gzip", "zeros", bytes([0xF3]) + gz(b"\0" * 200000, 9))

# ---- warc: [flags][type mask] ----
crawl = gzip.open(os.path.join(SRC, "tests/data/crawl/crawl-00000.warc.gz")).read()
# The first few records, cut at a record boundary.
cut = 0
for _ in range(4):
    cut = crawl.index(b"\r\n\r\nWARC/1.0\r\n", cut + 1)
plain = crawl[:cut + 4]
put("warc", "plain", bytes([7 << 5, 0]) + plain)
put("warc", "plain-frame", bytes([1 << 5 | 3, 0]) + plain)
put("warc", "plain-small", bytes([7 << 5 | 4 | 8, 0]) + plain)
members = b""
pos = 0
for _ in range(3):   # one gzip member per record, as Common Crawl writes them
    nxt = plain.index(b"\r\n\r\nWARC/1.0\r\n", pos) + 4 if pos < len(plain) - 20 else len(plain)
    members += gz(plain[pos:nxt])
    pos = nxt
put("warc", "gzip-members", bytes([7 << 5 | 2, 0]) + members)
put("warc", "gzip-frame", bytes([0, 1 << 2]) + members)
meta = open(os.path.join(SRC, "tests/data/crawl/crawl-meta.warc.gz"), "rb").read()
put("warc", "meta", bytes([7 << 5, 0]) + meta)
rec = (b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: %d\r\n\r\n%s\r\n\r\n")
put("warc", "edge", bytes([7 << 5, 0]) +
    rec % (5, b"hello") + b"garbage\r\n" + rec % (99999, b"short") +
    b"WARC/1.1\r\nWARC-Type: response\r\nContent-Type: application/http\r\nContent-Length: 30\r\n\r\n"
    b"HTTP/1.1 404 Not Found\r\n\r\nab\r\n\r\n")

# ---- config ----
for name in ("full", "minimal", "reducer-only", "typo", "syntax-error"):
    with open(os.path.join(SRC, "tests/data/configs", name + ".json"), "rb") as f:
        put("config", name, f.read())
for name in os.listdir(os.path.join(SRC, "scripts/examples")):
    if name.endswith(".json"):
        with open(os.path.join(SRC, "scripts/examples", name), "rb") as f:
            put("config", "example-" + name[:-5], f.read())
put("config", "wrong-types", b'{"name": 7, "script": ["x"], "compute": {"concurrency": "many",'
    b' "memoryMB": -1, "taskTimeoutSeconds": 1e400}}')
put("config", "escape", b'{"name": "j", "script": "../../etc/x.lua", "writeConnector": '
    b'{"location": "../../../tmp/out/"}, "readConnector": {"manifest": ["in/*"]}}')
