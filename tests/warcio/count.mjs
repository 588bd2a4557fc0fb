// Counts the records of WARC files with warcio (the benchmark's reference reader):
// every record is parsed and its payload read through, as luamr's reader does.
//   node tests/warcio/count.mjs FILE...   -> "<records>"
import fs from "node:fs";
import { WARCParser } from "warcio";

let n = 0;
for (const path of process.argv.slice(2)) {
  for await (const rec of new WARCParser(fs.createReadStream(path))) {
    await rec.readFully(false);
    n++;
  }
}
console.log(n);
