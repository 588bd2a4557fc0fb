/* lang: the language of a web page from what the page and its record say about it — no
 * statistical guessing. Depends on nothing (plain C).
 *
 * Sources, first usable one wins (docs/warc.md):
 *   1. WARC-Identified-Content-Language (Common Crawl's CLD2 result; first of the list,
 *      ISO 639-3 mapped to 639-1 for common languages: eng -> en)
 *   2. the HTTP Content-Language header (first of the list)
 *   3. the first lang or xml:lang attribute on any element in the first 64 KiB of HTML
 *   4. <meta http-equiv="content-language" content="..."> in those 64 KiB
 *   5. "unknown"
 * Every value is normalised to its primary subtag in lower case (en-US, EN_us -> en).
 * A value that is not a language tag (empty, "*", digits) counts as absent. */
#ifndef LUAMR_LANG_H
#define LUAMR_LANG_H

#include <stddef.h>

#define LANG_TAG_MAX 16                 /* bytes for any result, NUL included */
#define LANG_HTML_SCAN (64 * 1024)      /* how much HTML is searched */

/* The primary subtag of one tag, lower case, 639-3 mapped to 639-1 where known. Returns
 * its length, 0 (out = "") when tag is not a language tag. */
size_t lang_normalize(const char *tag, size_t len, char *out);
/* The first entry of a comma-separated list ("eng,fra", "de-DE, en;q=0.5"), normalised. */
size_t lang_first_of_list(const char *list, size_t len, char *out);
/* Sources 3 and 4 over the first LANG_HTML_SCAN bytes of html. 0 when none. */
size_t lang_from_html(const char *html, size_t len, char *out);

typedef struct lang_input {
    const char *warc_lang;   /* WARC-Identified-Content-Language or NULL */
    size_t warc_lang_len;
    const char *http_lang;   /* HTTP Content-Language or NULL */
    size_t http_lang_len;
    const char *html;        /* the payload when it is HTML, else NULL */
    size_t html_len;
} lang_input;

/* All sources in order; writes "unknown" when none gives a language. */
size_t lang_detect(const lang_input *in, char *out);

#endif
