/* Unit tests for connectors/sigv4: the worked examples AWS publishes with their
 * signatures (S3 "Signature Calculations for the Authorization Header: Transferring
 * Payload in a Single Chunk", the SigV4 test suite and the signing-key example), plus the
 * encoding rules the examples do not exercise. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/sigv4.h"

#define S3_AK "AKIAIOSFODNN7EXAMPLE"
#define S3_SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_DATE "20130524T000000Z"
#define S3_HOST "examplebucket.s3.amazonaws.com"

static const sigv4_credentials s3_creds = {S3_AK, S3_SK, NULL};

/* Pulls "Signature=..." out of an Authorization value. */
static const char *sig_of(const char *auth)
{
    const char *s = strstr(auth, "Signature=");
    return s ? s + strlen("Signature=") : "";
}

/* ---- the S3 examples ---- */

START_TEST(test_s3_get_object_range)
{
    sigv4_kv h[] = {
        {"Host", S3_HOST},
        {"Range", "bytes=0-9"},
        {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
        {"x-amz-date", S3_DATE},
    };
    sigv4_request r = {"GET", "/test.txt", NULL, 0, h, 4, SIGV4_EMPTY_SHA256, 0};

    char *signed_headers = NULL;
    char *canon = sigv4_canonical_request(&r, &signed_headers);
    ck_assert_ptr_nonnull(canon);
    ck_assert_str_eq(canon,
                     "GET\n/test.txt\n\n"
                     "host:examplebucket.s3.amazonaws.com\n"
                     "range:bytes=0-9\n"
                     "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
                     "x-amz-date:20130524T000000Z\n\n"
                     "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
    ck_assert_str_eq(signed_headers, "host;range;x-amz-content-sha256;x-amz-date");

    char *sts = sigv4_string_to_sign(canon, S3_DATE, "us-east-1", "s3");
    ck_assert_str_eq(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                          "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");

    mr_err e = {0};
    char *auth = sigv4_authorization(&r, &s3_creds, S3_DATE, "us-east-1", "s3", &e);
    ck_assert_ptr_nonnull(auth);
    ck_assert_str_eq(auth,
                     "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                     "aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                     "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    free(auth);
    free(sts);
    free(canon);
    free(signed_headers);
}
END_TEST

START_TEST(test_s3_put_object)
{
    const char *body = "Welcome to Amazon S3.";
    char hash[SIGV4_HASH_HEX];
    sigv4_sha256_hex(body, strlen(body), hash);
    ck_assert_str_eq(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");

    /* Headers deliberately out of order and mixed case: the signer sorts and lowercases. */
    sigv4_kv h[] = {
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"Host", S3_HOST},
        {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
        {"x-amz-date", S3_DATE},
        {"X-Amz-Content-Sha256", hash},
    };
    sigv4_request r = {"PUT", "/test$file.text", NULL, 0, h, 5, hash, 0};
    char *canon = sigv4_canonical_request(&r, NULL);
    ck_assert_ptr_nonnull(strstr(canon, "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013"));
    mr_err e = {0};
    char *auth = sigv4_authorization(&r, &s3_creds, S3_DATE, "us-east-1", "s3", &e);
    ck_assert_ptr_nonnull(auth);
    ck_assert_ptr_nonnull(
        strstr(auth, "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"));
    ck_assert_str_eq(sig_of(auth), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    free(auth);
    free(canon);
}
END_TEST

START_TEST(test_s3_get_lifecycle)
{
    sigv4_kv q[] = {{"lifecycle", NULL}};
    sigv4_kv h[] = {
        {"Host", S3_HOST},
        {"x-amz-date", S3_DATE},
        {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
    };
    sigv4_request r = {"GET", "/", q, 1, h, 3, SIGV4_EMPTY_SHA256, 0};
    char *canon = sigv4_canonical_request(&r, NULL);
    ck_assert_ptr_nonnull(strstr(canon, "GET\n/\nlifecycle=\nhost:"));
    mr_err e = {0};
    char *auth = sigv4_authorization(&r, &s3_creds, S3_DATE, "us-east-1", "s3", &e);
    ck_assert_str_eq(sig_of(auth), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    free(auth);
    free(canon);
}
END_TEST

START_TEST(test_s3_list_objects)
{
    /* Given unsorted: the canonical query must come out as max-keys=2&prefix=J. */
    sigv4_kv q[] = {{"prefix", "J"}, {"max-keys", "2"}};
    sigv4_kv h[] = {
        {"Host", S3_HOST},
        {"x-amz-date", S3_DATE},
        {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
    };
    sigv4_request r = {"GET", "/", q, 2, h, 3, SIGV4_EMPTY_SHA256, 0};
    char *query = sigv4_canonical_query(q, 2);
    ck_assert_str_eq(query, "max-keys=2&prefix=J");
    mr_err e = {0};
    char *auth = sigv4_authorization(&r, &s3_creds, S3_DATE, "us-east-1", "s3", &e);
    ck_assert_str_eq(sig_of(auth), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    free(auth);
    free(query);
}
END_TEST

/* ---- the general SigV4 examples (non-S3 service, double-encoded paths) ---- */

START_TEST(test_suite_vanilla_query_order)
{
    /* aws-sig-v4-test-suite/get-vanilla-query-order-key-case */
    sigv4_credentials c = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};
    sigv4_kv q[] = {{"Param2", "value2"}, {"Param1", "value1"}};
    sigv4_kv h[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
    sigv4_request r = {"GET", "/", q, 2, h, 2, SIGV4_EMPTY_SHA256, 1};
    mr_err e = {0};
    char *auth = sigv4_authorization(&r, &c, "20150830T123600Z", "us-east-1", "service", &e);
    ck_assert_str_eq(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                           "aws4_request,SignedHeaders=host;x-amz-date,"
                           "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    free(auth);
}
END_TEST

START_TEST(test_signing_key_example)
{
    /* The "derive a signing key" example of the SigV4 documentation (IAM, 2012-02-15). */
    unsigned char key[32];
    char hex[65];
    sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam",
                      key);
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = d[key[i] >> 4];
        hex[2 * i + 1] = d[key[i] & 15];
    }
    hex[64] = '\0';
    ck_assert_str_eq(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}
END_TEST

/* ---- encoding and canonical form ---- */

START_TEST(test_uri_encode)
{
    char *s = sigv4_uri_encode("a b+c~d_e-f.g/h*", 16, 0);
    ck_assert_str_eq(s, "a%20b%2Bc~d_e-f.g%2Fh%2A");
    free(s);
    s = sigv4_uri_encode("dir/x y", 7, 1);
    ck_assert_str_eq(s, "dir/x%20y");
    free(s);
    /* Non-ASCII goes byte by byte, uppercase hex: "é" is C3 A9 in UTF-8. */
    s = sigv4_canonical_uri("/b/caf\xc3\xa9 1.txt", 0);
    ck_assert_str_eq(s, "/b/caf%C3%A9%201.txt");
    free(s);
    s = sigv4_canonical_uri("/b/caf\xc3\xa9 1.txt", 1);
    ck_assert_str_eq(s, "/b/caf%25C3%25A9%25201.txt");
    free(s);
    s = sigv4_canonical_uri("", 0);
    ck_assert_str_eq(s, "/");
    free(s);
}
END_TEST

START_TEST(test_canonical_query_rules)
{
    sigv4_kv q[] = {{"prefix", "a b/c+d"}, {"list-type", "2"}, {"continuation-token", "x=="},
                    {"uploads", ""}, {"a", "2"}, {"a", "1"}};
    char *s = sigv4_canonical_query(q, 6);
    ck_assert_str_eq(s, "a=1&a=2&continuation-token=x%3D%3D&list-type=2&prefix=a%20b%2Fc%2Bd&uploads=");
    free(s);
    s = sigv4_canonical_query(NULL, 0);
    ck_assert_str_eq(s, "");
    free(s);
}
END_TEST

START_TEST(test_header_trim_and_repeat)
{
    sigv4_kv h[] = {{"X-Amz-Meta-B", "  two   words  "}, {"host", "h"}, {"x-amz-meta-a", "1"},
                    {"X-AMZ-META-A", "2"}};
    sigv4_request r = {"HEAD", "/k", NULL, 0, h, 4, SIGV4_UNSIGNED_PAYLOAD, 0};
    char *sh = NULL;
    char *canon = sigv4_canonical_request(&r, &sh);
    ck_assert_str_eq(canon, "HEAD\n/k\n\nhost:h\nx-amz-meta-a:1,2\nx-amz-meta-b:two words\n\n"
                            "host;x-amz-meta-a;x-amz-meta-b\nUNSIGNED-PAYLOAD");
    ck_assert_str_eq(sh, "host;x-amz-meta-a;x-amz-meta-b");
    free(canon);
    free(sh);
}
END_TEST

/* ---- credentials and dates ---- */

START_TEST(test_session_token_changes_signature)
{
    sigv4_credentials tok = {S3_AK, S3_SK, "FQoGZXIvYXdzEXAMPLETOKEN"};
    sigv4_kv h1[] = {{"host", S3_HOST}, {"x-amz-date", S3_DATE},
                     {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
    sigv4_kv h2[] = {{"host", S3_HOST}, {"x-amz-date", S3_DATE},
                     {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
                     {"x-amz-security-token", tok.session_token}};
    sigv4_request r1 = {"GET", "/k", NULL, 0, h1, 3, SIGV4_EMPTY_SHA256, 0};
    sigv4_request r2 = {"GET", "/k", NULL, 0, h2, 4, SIGV4_EMPTY_SHA256, 0};
    mr_err e = {0};
    char *a1 = sigv4_authorization(&r1, &tok, S3_DATE, "us-east-1", "s3", &e);
    char *a2 = sigv4_authorization(&r2, &tok, S3_DATE, "us-east-1", "s3", &e);
    ck_assert_ptr_nonnull(strstr(a2, "x-amz-date;x-amz-security-token,"));
    ck_assert_str_ne(sig_of(a1), sig_of(a2));
    /* Neither the secret nor the token travels in the header value. */
    ck_assert_ptr_null(strstr(a2, S3_SK));
    ck_assert_ptr_null(strstr(a2, tok.session_token));
    free(a1);
    free(a2);
}
END_TEST

START_TEST(test_missing_credentials)
{
    sigv4_credentials none = {NULL, NULL, NULL};
    sigv4_kv h[] = {{"host", "h"}};
    sigv4_request r = {"GET", "/bucket/key", NULL, 0, h, 1, SIGV4_EMPTY_SHA256, 0};
    mr_err e = {0};
    ck_assert_ptr_null(sigv4_authorization(&r, &none, S3_DATE, "us-east-1", "s3", &e));
    ck_assert_int_eq(e.code, MR_EAUTH);
    ck_assert_ptr_nonnull(strstr(e.msg, "/bucket/key"));
    ck_assert_ptr_null(sigv4_authorization(&r, &s3_creds, "2013-05-24", "us-east-1", "s3", &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
}
END_TEST

START_TEST(test_amz_date)
{
    char d[SIGV4_AMZ_DATE];
    sigv4_amz_date(0, d);
    ck_assert_str_eq(d, "19700101T000000Z");
    /* 2013-05-24 00:00:00 UTC = 15849 days after the epoch. */
    sigv4_amz_date((time_t)15849 * 86400, d);
    ck_assert_str_eq(d, S3_DATE);
}
END_TEST

static Suite *sigv4_suite(void)
{
    Suite *s = suite_create("sigv4");
    TCase *tc = tcase_create("s3_examples");
    tcase_add_test(tc, test_s3_get_object_range);
    tcase_add_test(tc, test_s3_put_object);
    tcase_add_test(tc, test_s3_get_lifecycle);
    tcase_add_test(tc, test_s3_list_objects);
    suite_add_tcase(s, tc);

    tc = tcase_create("sigv4_examples");
    tcase_add_test(tc, test_suite_vanilla_query_order);
    tcase_add_test(tc, test_signing_key_example);
    suite_add_tcase(s, tc);

    tc = tcase_create("canonical_form");
    tcase_add_test(tc, test_uri_encode);
    tcase_add_test(tc, test_canonical_query_rules);
    tcase_add_test(tc, test_header_trim_and_repeat);
    suite_add_tcase(s, tc);

    tc = tcase_create("credentials");
    tcase_add_test(tc, test_session_token_changes_signature);
    tcase_add_test(tc, test_missing_credentials);
    tcase_add_test(tc, test_amz_date);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sigv4_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
