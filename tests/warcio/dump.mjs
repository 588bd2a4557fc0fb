// Independent reading of WARC files with webrecorder's warcio, for cross-checking
// luamr's reader (tests/unit/test_warc.c, tests/e2e/warc_*.sh).
//
//   node tests/warcio/dump.mjs FILE...      one TSV line per record:
//     type  target-uri  http-status  payload-length  http-content-type  content-language
// payload-length is the HTTP body as transferred (warcio's raw payload, not de-chunked or
// decoded); for non-HTTP records it is the block length. Fields absent are empty.
import fs from "node:fs";
import { WARCParser } from "warcio";

async function dump(path) {
  const parser = new WARCParser(fs.createReadStream(path));
  let out = [];
  for await (const record of parser) {
    const type = record.warcType || "";
    let uri = record.warcTargetURI || "";
    if (uri.startsWith("<") && uri.endsWith(">")) uri = uri.slice(1, -1);
    const http = record.httpHeaders;
    let status = "", ctype = "", clang = "";
    if (http) {
      if (http.statusCode !== undefined && /^HTTP\//.test(http.protocol || "")) status = String(http.statusCode);
      ctype = http.headers.get("Content-Type") || "";
      clang = http.headers.get("Content-Language") || "";
    }
    const payload = await record.readFully(false);
    out.push([type, uri, status, payload.length, ctype, clang].join("\t"));
    if (out.length >= 1000) { process.stdout.write(out.join("\n") + "\n"); out = []; }
  }
  if (out.length) process.stdout.write(out.join("\n") + "\n");
}

for (const f of process.argv.slice(2)) await dump(f);
