/* sigv4: AWS Signature Version 4 for HTTP requests (the Authorization header S3 and every
 * other AWS service check). Depends on engine/mr_error and OpenSSL libcrypto (SHA-256,
 * HMAC-SHA256); it builds strings only and sends nothing.
 *
 * We sign ourselves because Debian 12's libcurl 7.88 (CURLOPT_AWS_SIGV4) leaves out
 * x-amz-content-sha256 and session tokens and neither sorts nor encodes the query.
 *
 * Callers pass the request as it will go on the wire, unencoded: the path ("/bucket/my
 * key"), query names/values and every header to sign (host included). The same
 * encoders build the URL, so what is signed is exactly what is sent. */
#ifndef LUAMR_SIGV4_H
#define LUAMR_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "../engine/mr_error.h"

#define SIGV4_HASH_HEX 65          /* 64 hex digits + NUL */
#define SIGV4_AMZ_DATE 17          /* "20130524T000000Z" + NUL */
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct sigv4_kv {
    const char *name;
    const char *value;   /* NULL is the same as "" (a bare "?lifecycle" becomes "lifecycle=") */
} sigv4_kv;

typedef struct sigv4_request {
    const char *method;          /* "GET", "PUT", ... */
    const char *path;            /* unencoded absolute path: "/", "/bucket/a b+c.txt" */
    const sigv4_kv *query;       /* unencoded query parameters, any order */
    size_t nquery;
    const sigv4_kv *headers;     /* every header to sign, any case and order, host included */
    size_t nheaders;
    const char *payload_hash;    /* hex SHA-256 of the body, or SIGV4_UNSIGNED_PAYLOAD */
    int double_encode_path;      /* 0 for S3; 1 for the other services (encode the encoded) */
} sigv4_request;

typedef struct sigv4_credentials {
    const char *access_key;
    const char *secret_key;
    const char *session_token;   /* NULL for long-term keys; the caller must also send and
                                    sign it as x-amz-security-token */
} sigv4_credentials;

/* Lowercase hex SHA-256 of data into out[SIGV4_HASH_HEX]. */
void sigv4_sha256_hex(const void *data, size_t n, char *out);

/* RFC 3986 percent-encoding as SigV4 wants it: unreserved bytes (A-Z a-z 0-9 - . _ ~) are
 * kept, everything else becomes %XX with uppercase hex; '/' is kept when keep_slash.
 * Returns a malloc'd string, NULL when out of memory. */
char *sigv4_uri_encode(const char *s, size_t n, int keep_slash);

/* The encoded path as it goes in the URL and the canonical request (each segment encoded,
 * '/' kept; encoded twice when double_encode). Malloc'd. */
char *sigv4_canonical_uri(const char *path, int double_encode);

/* "a=1&b=&c=x%20y": names and values encoded, sorted by name then value. Also the query
 * string to put in the URL. Malloc'd ("" for none). */
char *sigv4_canonical_query(const sigv4_kv *query, size_t n);

/* The canonical request; *signed_headers (when not NULL) gets the "host;x-amz-date" list.
 * Both malloc'd. NULL on a header without a name or when out of memory. */
char *sigv4_canonical_request(const sigv4_request *r, char **signed_headers);

/* "AWS4-HMAC-SHA256\n<amz_date>\n<date>/<region>/<service>/aws4_request\n<hash>". Malloc'd. */
char *sigv4_string_to_sign(const char *canonical_request, const char *amz_date,
                           const char *region, const char *service);

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, yyyymmdd), region), service),
 * "aws4_request") into out[32]. */
void sigv4_signing_key(const char *secret_key, const char *yyyymmdd, const char *region,
                       const char *service, unsigned char out[32]);

/* The Authorization header value ("AWS4-HMAC-SHA256 Credential=...,SignedHeaders=...,
 * Signature=..."). amz_date must equal the x-amz-date header the caller signs and sends.
 * The secret never appears in the result or in e. Malloc'd; NULL with e set on failure. */
char *sigv4_authorization(const sigv4_request *r, const sigv4_credentials *c,
                          const char *amz_date, const char *region, const char *service,
                          mr_err *e);

/* t as "YYYYMMDDTHHMMSSZ" (UTC) into out[SIGV4_AMZ_DATE]. */
void sigv4_amz_date(time_t t, char *out);

#endif
