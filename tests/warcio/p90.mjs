// The flagship result computed independently of luamr: warcio reads the WARC files, this
// file finds each page's language (its own implementation of the rules in docs/warc.md)
// and takes the 90th percentile by linear interpolation.
//
//   node tests/warcio/p90.mjs FILE...   -> JSON [{language, pages, p90}, ...] by language
import fs from "node:fs";
import { WARCParser } from "warcio";

const ISO3 = {
  afr: "af", amh: "am", ara: "ar", aze: "az", bel: "be", ben: "bn", bos: "bs", bul: "bg",
  cat: "ca", ces: "cs", chi: "zh", cym: "cy", cze: "cs", dan: "da", deu: "de", dut: "nl",
  ell: "el", eng: "en", epo: "eo", est: "et", eus: "eu", fas: "fa", fil: "tl", fin: "fi",
  fra: "fr", fre: "fr", gle: "ga", glg: "gl", ger: "de", gre: "el", guj: "gu", heb: "he",
  hin: "hi", hrv: "hr", hun: "hu", hye: "hy", ind: "id", isl: "is", ita: "it", jpn: "ja",
  kat: "ka", kaz: "kk", khm: "km", kan: "kn", kor: "ko", lao: "lo", lat: "la", lav: "lv",
  lit: "lt", mal: "ml", mar: "mr", may: "ms", mkd: "mk", mon: "mn", msa: "ms", mya: "my",
  nep: "ne", nld: "nl", nno: "nn", nob: "nb", nor: "no", pan: "pa", per: "fa", pol: "pl",
  por: "pt", ron: "ro", rum: "ro", rus: "ru", sin: "si", slk: "sk", slo: "sk", slv: "sl",
  spa: "es", sqi: "sq", srp: "sr", swa: "sw", swe: "sv", tam: "ta", tel: "te", tgl: "tl",
  tha: "th", tur: "tr", ukr: "uk", urd: "ur", uzb: "uz", vie: "vi", zho: "zh",
};

function normalize(tag) {
  const m = /^\s*([A-Za-z]{2,8})(?=$|[-_;,\s])/.exec(tag || "");
  if (!m) return "";
  const p = m[1].toLowerCase();
  return ISO3[p] || p;
}
const firstOfList = (v) => normalize((v || "").split(",")[0]);

function fromHtml(bytes) {
  const html = Buffer.from(bytes.subarray(0, 65536)).toString("latin1")
    .replace(/<!--[\s\S]*?(-->|$)/g, " ")
    .replace(/<(script|style)\b[^>]*>[\s\S]*?(<\/\1|$)/gi, " ");
  let meta = "";
  const tagRe = /<([A-Za-z][^\s\/>]*)((?:[^>"']|"[^"]*"|'[^']*')*)>?/g;
  let t;
  while ((t = tagRe.exec(html))) {
    const attrs = {};
    const attrRe = /([^\s=\/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
    let a;
    while ((a = attrRe.exec(t[2]))) {
      const name = a[1].toLowerCase();
      const val = a[2] ?? a[3] ?? a[4];
      if (val === undefined) continue;
      if (name === "lang" || name === "xml:lang") {
        const l = firstOfList(val);
        if (l) return l;
      }
      if (!(name in attrs)) attrs[name] = val;
    }
    if (!meta && t[1].toLowerCase() === "meta" &&
        (attrs["http-equiv"] || "").toLowerCase() === "content-language" && attrs.content)
      meta = firstOfList(attrs.content);
  }
  return meta;
}

function quantile(sorted, q) {
  const h = (sorted.length - 1) * q, lo = Math.floor(h);
  return lo + 1 < sorted.length ? sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
}

const byLang = new Map();
for (const path of process.argv.slice(2)) {
  for await (const rec of new WARCParser(fs.createReadStream(path))) {
    const http = rec.httpHeaders;
    const payload = await rec.readFully(false);
    if (rec.warcType !== "response" || !http || http.statusCode !== 200) continue;
    const mime = (http.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
    if (mime !== "text/html") continue;
    const lang = firstOfList(rec.warcHeader("WARC-Identified-Content-Language")) ||
      firstOfList(http.headers.get("Content-Language")) || fromHtml(payload) || "unknown";
    if (!byLang.has(lang)) byLang.set(lang, []);
    byLang.get(lang).push(payload.length);
  }
}
const out = [...byLang.keys()].sort().map((language) => {
  const v = byLang.get(language).sort((a, b) => a - b);
  return { language, pages: v.length, p90: quantile(v, 0.9) };
});
console.log(JSON.stringify(out, null, 1));
