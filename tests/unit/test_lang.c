/* Unit tests for connectors/lang: tag normalisation, lists, HTML scanning and the order
 * of the sources. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/lang.h"

static const char *norm(const char *tag)
{
    static char out[LANG_TAG_MAX];
    size_t n = lang_normalize(tag, strlen(tag), out);
    ck_assert_uint_eq(n, strlen(out));
    return out;
}

static const char *html(const char *doc)
{
    static char out[LANG_TAG_MAX];
    size_t n = lang_from_html(doc, strlen(doc), out);
    ck_assert_uint_eq(n, strlen(out));
    return out;
}

START_TEST(test_normalize_primary_subtag)
{
    ck_assert_str_eq(norm("en"), "en");
    ck_assert_str_eq(norm("en-US"), "en");
    ck_assert_str_eq(norm("EN_us"), "en");
    ck_assert_str_eq(norm("  de-DE-1996 "), "de");
    ck_assert_str_eq(norm("zh-Hant-TW"), "zh");
    ck_assert_str_eq(norm("pt-br"), "pt");
    ck_assert_str_eq(norm("fr;q=0.8"), "fr");
}
END_TEST

START_TEST(test_normalize_iso639_3)
{
    ck_assert_str_eq(norm("eng"), "en");
    ck_assert_str_eq(norm("DEU"), "de");
    ck_assert_str_eq(norm("ger"), "de");
    ck_assert_str_eq(norm("fra"), "fr");
    ck_assert_str_eq(norm("zho"), "zh");
    ck_assert_str_eq(norm("jpn"), "ja");
    ck_assert_str_eq(norm("rus"), "ru");
    /* A 3-letter code without a 2-letter equivalent is kept. */
    ck_assert_str_eq(norm("haw"), "haw");
    ck_assert_str_eq(norm("yue-HK"), "yue");
}
END_TEST

START_TEST(test_normalize_rejects_non_tags)
{
    ck_assert_str_eq(norm(""), "");
    ck_assert_str_eq(norm("*"), "");
    ck_assert_str_eq(norm("e"), "");
    ck_assert_str_eq(norm("x-klingon"), "");
    ck_assert_str_eq(norm("en2"), "");
    ck_assert_str_eq(norm("123"), "");
    ck_assert_str_eq(norm("abcdefghi"), "");
}
END_TEST

START_TEST(test_first_of_list)
{
    char out[LANG_TAG_MAX];
    const char *l1 = "eng,fra,deu";
    ck_assert_uint_eq(lang_first_of_list(l1, strlen(l1), out), 2);
    ck_assert_str_eq(out, "en");
    const char *l2 = "de-DE, en;q=0.5";
    lang_first_of_list(l2, strlen(l2), out);
    ck_assert_str_eq(out, "de");
    /* Only the first entry counts: a bad first entry means no language from this source. */
    const char *l3 = ",fr";
    ck_assert_uint_eq(lang_first_of_list(l3, strlen(l3), out), 0);
}
END_TEST

START_TEST(test_html_lang_attribute)
{
    ck_assert_str_eq(html("<!DOCTYPE html><html lang=\"en-GB\"><head></head></html>"), "en");
    ck_assert_str_eq(html("<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang='DE'>"), "de");
    ck_assert_str_eq(html("<HTML LANG=fr><body>"), "fr");
    /* Any element, the first one wins. */
    ck_assert_str_eq(html("<html><body><div class=x lang = \"it\"><p lang=\"es\">"), "it");
    /* Attribute names are matched whole: hreflang/data-lang are not lang. */
    ck_assert_str_eq(html("<link rel=alternate hreflang=\"ru\" href=x><a data-lang=\"ko\">"
                          "<span lang=\"vi\">"), "vi");
    /* An empty lang says "unknown" there; keep looking. */
    ck_assert_str_eq(html("<html lang=\"\"><body lang=\"nl\">"), "nl");
}
END_TEST

START_TEST(test_html_skips_comments_and_scripts)
{
    ck_assert_str_eq(html("<!-- <html lang=\"xx\"> --><html lang=\"ja\">"), "ja");
    ck_assert_str_eq(html("<script>var s = '<p lang=\"xx\">';</script><p lang=\"ca\">"), "ca");
    ck_assert_str_eq(html("<style>p[lang=xx]{}</style><STYLE></style><b lang=sv>"), "sv");
    ck_assert_str_eq(html("<p title=\"a > b lang=xx\" lang=pl>"), "pl");
    ck_assert_str_eq(html("<html><body>no language here</body></html>"), "");
}
END_TEST

START_TEST(test_html_meta_content_language)
{
    ck_assert_str_eq(html("<head><meta http-equiv=\"Content-Language\" content=\"pt-BR\"></head>"), "pt");
    ck_assert_str_eq(html("<meta content='ko' http-equiv='content-language'>"), "ko");
    /* lang attributes come before the meta element, wherever they are. */
    ck_assert_str_eq(html("<meta http-equiv=\"content-language\" content=\"de\"><p lang=fi>"), "fi");
    /* Other http-equiv values do not count. */
    ck_assert_str_eq(html("<meta http-equiv=\"content-type\" content=\"text/html\">"), "");
}
END_TEST

START_TEST(test_html_scans_first_64k_only)
{
    size_t pad = LANG_HTML_SCAN + 100;
    char *doc = malloc(pad + 64);
    memset(doc, ' ', pad);
    strcpy(doc + pad, "<html lang=\"en\">");
    char out[LANG_TAG_MAX];
    ck_assert_uint_eq(lang_from_html(doc, strlen(doc), out), 0);
    /* Just inside the limit it is found. */
    size_t at = LANG_HTML_SCAN - 40;
    memcpy(doc + at, "<p lang=\"el\">", 13);
    ck_assert_uint_eq(lang_from_html(doc, strlen(doc), out), 2);
    ck_assert_str_eq(out, "el");
    free(doc);
}
END_TEST

START_TEST(test_detect_order)
{
    char out[LANG_TAG_MAX];
    const char *page = "<html lang=\"fr\">";
    lang_input in = {0};
    ck_assert_uint_eq(lang_detect(&in, out), 7);
    ck_assert_str_eq(out, "unknown");
    in.html = page;
    in.html_len = strlen(page);
    lang_detect(&in, out);
    ck_assert_str_eq(out, "fr");
    in.http_lang = "de-AT";
    in.http_lang_len = 5;
    lang_detect(&in, out);
    ck_assert_str_eq(out, "de");
    in.warc_lang = "eng,deu";
    in.warc_lang_len = 7;
    lang_detect(&in, out);
    ck_assert_str_eq(out, "en");
    /* An unusable source falls through to the next. */
    in.warc_lang = "";
    in.warc_lang_len = 0;
    in.http_lang = "*";
    in.http_lang_len = 1;
    lang_detect(&in, out);
    ck_assert_str_eq(out, "fr");
}
END_TEST

static Suite *lang_suite(void)
{
    Suite *s = suite_create("lang");
    TCase *tc = tcase_create("normalize");
    tcase_add_test(tc, test_normalize_primary_subtag);
    tcase_add_test(tc, test_normalize_iso639_3);
    tcase_add_test(tc, test_normalize_rejects_non_tags);
    tcase_add_test(tc, test_first_of_list);
    suite_add_tcase(s, tc);
    tc = tcase_create("html");
    tcase_add_test(tc, test_html_lang_attribute);
    tcase_add_test(tc, test_html_skips_comments_and_scripts);
    tcase_add_test(tc, test_html_meta_content_language);
    tcase_add_test(tc, test_html_scans_first_64k_only);
    suite_add_tcase(s, tc);
    tc = tcase_create("detect");
    tcase_add_test(tc, test_detect_order);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lang_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
