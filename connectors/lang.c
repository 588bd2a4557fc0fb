#include "lang.h"

#include <string.h>

/* ISO 639-3 (and 639-2/B where it differs) codes of the languages common on the web,
 * as CLD2 writes them in Common Crawl. Codes not listed stay as they are (a 3-letter
 * primary subtag is valid BCP 47). */
static const char lang_iso3[][2][4] = {
    {"afr", "af"}, {"amh", "am"}, {"ara", "ar"}, {"aze", "az"}, {"bel", "be"},
    {"ben", "bn"}, {"bos", "bs"}, {"bul", "bg"}, {"cat", "ca"}, {"ces", "cs"},
    {"chi", "zh"}, {"cym", "cy"}, {"cze", "cs"}, {"dan", "da"}, {"deu", "de"},
    {"dut", "nl"}, {"ell", "el"}, {"eng", "en"}, {"epo", "eo"}, {"est", "et"},
    {"eus", "eu"}, {"fas", "fa"}, {"fil", "tl"}, {"fin", "fi"}, {"fra", "fr"},
    {"fre", "fr"}, {"gle", "ga"}, {"glg", "gl"}, {"ger", "de"}, {"gre", "el"},
    {"guj", "gu"}, {"heb", "he"}, {"hin", "hi"}, {"hrv", "hr"}, {"hun", "hu"},
    {"hye", "hy"}, {"ind", "id"}, {"isl", "is"}, {"ita", "it"}, {"jpn", "ja"},
    {"kat", "ka"}, {"kaz", "kk"}, {"khm", "km"}, {"kan", "kn"}, {"kor", "ko"},
    {"lao", "lo"}, {"lat", "la"}, {"lav", "lv"}, {"lit", "lt"}, {"mal", "ml"},
    {"mar", "mr"}, {"may", "ms"}, {"mkd", "mk"}, {"mon", "mn"}, {"msa", "ms"},
    {"mya", "my"}, {"nep", "ne"}, {"nld", "nl"}, {"nno", "nn"}, {"nob", "nb"},
    {"nor", "no"}, {"pan", "pa"}, {"per", "fa"}, {"pol", "pl"}, {"por", "pt"},
    {"ron", "ro"}, {"rum", "ro"}, {"rus", "ru"}, {"sin", "si"}, {"slk", "sk"},
    {"slo", "sk"}, {"slv", "sl"}, {"spa", "es"}, {"sqi", "sq"}, {"srp", "sr"},
    {"swa", "sw"}, {"swe", "sv"}, {"tam", "ta"}, {"tel", "te"}, {"tgl", "tl"},
    {"tha", "th"}, {"tur", "tr"}, {"ukr", "uk"}, {"urd", "ur"}, {"uzb", "uz"},
    {"vie", "vi"}, {"zho", "zh"},
};

static int lang_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
static int lang_alpha(int c) { c = lang_lower(c); return c >= 'a' && c <= 'z'; }
static int lang_space(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'; }

size_t lang_normalize(const char *tag, size_t len, char *out)
{
    size_t i = 0, n = 0;
    out[0] = '\0';
    while (i < len && lang_space((unsigned char)tag[i])) i++;
    while (i + n < len && lang_alpha((unsigned char)tag[i + n])) n++;
    /* The primary subtag must end the tag or be followed by a subtag separator; "en2" or
     * "*" are not languages. Primary subtags are 2-3 letters (4-8 are reserved/registered
     * but never seen in the wild, so they are accepted too). */
    if (n < 2 || n > 8) return 0;
    if (i + n < len) {
        int c = (unsigned char)tag[i + n];
        if (c != '-' && c != '_' && c != ';' && c != ',' && !lang_space(c)) return 0;
    }
    for (size_t k = 0; k < n; k++) out[k] = (char)lang_lower((unsigned char)tag[i + k]);
    out[n] = '\0';
    if (n == 3) {
        for (size_t k = 0; k < sizeof lang_iso3 / sizeof lang_iso3[0]; k++) {
            if (memcmp(out, lang_iso3[k][0], 3) == 0) {
                memcpy(out, lang_iso3[k][1], 3);
                return 2;
            }
        }
    }
    return n;
}

size_t lang_first_of_list(const char *list, size_t len, char *out)
{
    const char *comma = memchr(list, ',', len);
    return lang_normalize(list, comma ? (size_t)(comma - list) : len, out);
}

static int lang_ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn) return 0;
    for (size_t i = 0; i < an; i++)
        if (lang_lower((unsigned char)a[i]) != b[i]) return 0;
    return 1;
}

/* Finds needle (lower case) case-insensitively in [p, end); NULL if absent. */
static const char *lang_find_ci(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    for (; p + n <= end; p++) {
        if (lang_lower((unsigned char)*p) != needle[0]) continue;
        size_t k = 1;
        while (k < n && lang_lower((unsigned char)p[k]) == needle[k]) k++;
        if (k == n) return p;
    }
    return NULL;
}

/* Walks the tags of [p, end) and their attributes. Elements whose content is raw text
 * (script, style) are skipped so code that mentions lang= is not taken for markup. */
size_t lang_from_html(const char *html, size_t len, char *out)
{
    const char *p = html, *end = html + (len < LANG_HTML_SCAN ? len : LANG_HTML_SCAN);
    char meta_lang[LANG_TAG_MAX] = "";
    out[0] = '\0';
    while (p < end) {
        p = memchr(p, '<', (size_t)(end - p));
        if (!p) break;
        p++;
        if (p + 3 <= end && memcmp(p, "!--", 3) == 0) {
            const char *c = lang_find_ci(p + 3, end, "-->");
            if (!c) break;
            p = c + 3;
            continue;
        }
        if (p < end && (*p == '!' || *p == '?' || *p == '/')) {
            const char *c = memchr(p, '>', (size_t)(end - p));
            if (!c) break;
            p = c + 1;
            continue;
        }
        if (p >= end || !lang_alpha((unsigned char)*p)) continue;
        const char *tag = p;
        while (p < end && !lang_space((unsigned char)*p) && *p != '>' && *p != '/') p++;
        size_t tag_len = (size_t)(p - tag);
        int is_meta = lang_ieq(tag, tag_len, "meta");
        int equiv_lang = 0;
        const char *content = NULL;
        size_t content_len = 0;
        for (;;) {   /* attributes */
            while (p < end && (lang_space((unsigned char)*p) || *p == '/')) p++;
            if (p >= end || *p == '>') break;
            const char *name = p;
            while (p < end && !lang_space((unsigned char)*p) && *p != '=' && *p != '>' && *p != '/')
                p++;
            size_t name_len = (size_t)(p - name);
            while (p < end && lang_space((unsigned char)*p)) p++;
            const char *val = NULL;
            size_t val_len = 0;
            if (p < end && *p == '=') {
                p++;
                while (p < end && lang_space((unsigned char)*p)) p++;
                if (p < end && (*p == '"' || *p == '\'')) {
                    const char *q = memchr(p + 1, *p, (size_t)(end - p - 1));
                    if (!q) { p = end; break; }
                    val = p + 1;
                    val_len = (size_t)(q - val);
                    p = q + 1;
                } else {
                    val = p;
                    while (p < end && !lang_space((unsigned char)*p) && *p != '>') p++;
                    val_len = (size_t)(p - val);
                }
            }
            if (!val) continue;
            if (lang_ieq(name, name_len, "lang") || lang_ieq(name, name_len, "xml:lang")) {
                size_t n = lang_first_of_list(val, val_len, out);
                if (n) return n;
            } else if (is_meta && lang_ieq(name, name_len, "http-equiv")) {
                equiv_lang = lang_ieq(val, val_len, "content-language");
            } else if (is_meta && lang_ieq(name, name_len, "content")) {
                content = val;
                content_len = val_len;
            }
        }
        if (is_meta && equiv_lang && content && !meta_lang[0])
            lang_first_of_list(content, content_len, meta_lang);
        if (lang_ieq(tag, tag_len, "script") || lang_ieq(tag, tag_len, "style")) {
            char close[10] = "</";
            for (size_t k = 0; k < tag_len; k++) close[2 + k] = (char)lang_lower((unsigned char)tag[k]);
            close[2 + tag_len] = '\0';
            const char *c = lang_find_ci(p, end, close);
            if (!c) break;
            p = c;
        }
    }
    size_t n = strlen(meta_lang);
    memcpy(out, meta_lang, n + 1);
    return n;
}

size_t lang_detect(const lang_input *in, char *out)
{
    size_t n = 0;
    if (in->warc_lang) n = lang_first_of_list(in->warc_lang, in->warc_lang_len, out);
    if (!n && in->http_lang) n = lang_first_of_list(in->http_lang, in->http_lang_len, out);
    if (!n && in->html) n = lang_from_html(in->html, in->html_len, out);
    if (n) return n;
    memcpy(out, "unknown", 8);
    return 7;
}
