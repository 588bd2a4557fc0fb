#include "sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* A tiny growable string; every builder below appends to one. */
typedef struct sigv4_buf {
    char *p;
    size_t len, cap;
    int oom;
} sigv4_buf;

static void sigv4_buf_add(sigv4_buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sigv4_buf_str(sigv4_buf *b, const char *s) { sigv4_buf_add(b, s, strlen(s)); }

static char *sigv4_buf_finish(sigv4_buf *b)
{
    if (b->oom) { free(b->p); return NULL; }
    if (!b->p) return strdup("");
    return b->p;
}

static void sigv4_hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t n, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL);
    sigv4_hex(md, mdlen, out);
}

static void sigv4_hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
    unsigned int outlen = 32;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &outlen);
}

static int sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static void sigv4_encode_into(sigv4_buf *b, const char *s, size_t n, int keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (sigv4_unreserved(c) || (keep_slash && c == '/')) {
            sigv4_buf_add(b, (const char *)&c, 1);
        } else {
            char esc[3] = {'%', digits[c >> 4], digits[c & 15]};
            sigv4_buf_add(b, esc, 3);
        }
    }
}

char *sigv4_uri_encode(const char *s, size_t n, int keep_slash)
{
    sigv4_buf b = {0};
    sigv4_encode_into(&b, s, n, keep_slash);
    return sigv4_buf_finish(&b);
}

char *sigv4_canonical_uri(const char *path, int double_encode)
{
    if (!path || !*path) return strdup("/");
    char *once = sigv4_uri_encode(path, strlen(path), 1);
    if (!once || !double_encode) return once;
    char *twice = sigv4_uri_encode(once, strlen(once), 1);
    free(once);
    return twice;
}

typedef struct sigv4_pair {
    char *name;
    char *value;
} sigv4_pair;

static int sigv4_pair_cmp(const void *a, const void *b)
{
    const sigv4_pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static void sigv4_pairs_free(sigv4_pair *p, size_t n)
{
    if (!p) return;
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
}

char *sigv4_canonical_query(const sigv4_kv *query, size_t n)
{
    if (n == 0) return strdup("");
    sigv4_pair *p = calloc(n, sizeof *p);
    if (!p) return NULL;
    int oom = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = query[i].value ? query[i].value : "";
        p[i].name = sigv4_uri_encode(query[i].name, strlen(query[i].name), 0);
        p[i].value = sigv4_uri_encode(v, strlen(v), 0);
        if (!p[i].name || !p[i].value) oom = 1;
    }
    if (oom) { sigv4_pairs_free(p, n); return NULL; }
    /* SigV4 sorts by the encoded names (byte order), values break ties. */
    qsort(p, n, sizeof *p, sigv4_pair_cmp);
    sigv4_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (i) sigv4_buf_add(&b, "&", 1);
        sigv4_buf_str(&b, p[i].name);
        sigv4_buf_add(&b, "=", 1);
        sigv4_buf_str(&b, p[i].value);
    }
    sigv4_pairs_free(p, n);
    return sigv4_buf_finish(&b);
}

static char *sigv4_lower(const char *s)
{
    char *l = strdup(s);
    if (!l) return NULL;
    for (char *c = l; *c; c++) *c = (char)tolower((unsigned char)*c);
    return l;
}

/* Trim, and fold runs of spaces into one, as the canonical form asks. */
static char *sigv4_header_value(const char *v)
{
    if (!v) v = "";
    while (*v == ' ' || *v == '\t') v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = v[i] == ' ' || v[i] == '\t';
        if (sp && j && out[j - 1] == ' ') continue;
        out[j++] = sp ? ' ' : v[i];
    }
    out[j] = '\0';
    return out;
}

static int sigv4_pair_name_cmp(const void *a, const void *b)
{
    const sigv4_pair *x = a, *y = b;
    return strcmp(x->name, y->name);
}

char *sigv4_canonical_request(const sigv4_request *r, char **signed_headers)
{
    if (signed_headers) *signed_headers = NULL;
    size_t n = r->nheaders;
    sigv4_pair *h = calloc(n ? n : 1, sizeof *h);
    if (!h) return NULL;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!r->headers[i].name || !*r->headers[i].name) bad = 1;
        h[i].name = sigv4_lower(r->headers[i].name ? r->headers[i].name : "");
        h[i].value = sigv4_header_value(r->headers[i].value);
        if (!h[i].name || !h[i].value) bad = 1;
    }
    if (bad) { sigv4_pairs_free(h, n); return NULL; }
    /* Merge sort keeps the order of repeated headers, whose values join with ','. */
    for (size_t i = 1; i < n; i++) {
        sigv4_pair t = h[i];
        size_t j = i;
        while (j > 0 && sigv4_pair_name_cmp(&h[j - 1], &t) > 0) { h[j] = h[j - 1]; j--; }
        h[j] = t;
    }

    sigv4_buf canon = {0}, names = {0};
    char *uri = sigv4_canonical_uri(r->path, r->double_encode_path);
    char *query = sigv4_canonical_query(r->query, r->nquery);
    if (!uri || !query) canon.oom = 1;
    sigv4_buf_str(&canon, r->method);
    sigv4_buf_add(&canon, "\n", 1);
    if (uri) sigv4_buf_str(&canon, uri);
    sigv4_buf_add(&canon, "\n", 1);
    if (query) sigv4_buf_str(&canon, query);
    sigv4_buf_add(&canon, "\n", 1);
    for (size_t i = 0; i < n; i++) {
        int repeat = i > 0 && strcmp(h[i - 1].name, h[i].name) == 0;
        if (repeat) {
            canon.len--;   /* drop the previous '\n' and append ",value" */
            sigv4_buf_add(&canon, ",", 1);
        } else {
            if (names.len) sigv4_buf_add(&names, ";", 1);
            sigv4_buf_str(&names, h[i].name);
            sigv4_buf_str(&canon, h[i].name);
            sigv4_buf_add(&canon, ":", 1);
        }
        sigv4_buf_str(&canon, h[i].value);
        sigv4_buf_add(&canon, "\n", 1);
    }
    sigv4_buf_add(&canon, "\n", 1);
    if (names.p) sigv4_buf_str(&canon, names.p);
    sigv4_buf_add(&canon, "\n", 1);
    sigv4_buf_str(&canon, r->payload_hash ? r->payload_hash : SIGV4_UNSIGNED_PAYLOAD);
    free(uri);
    free(query);
    sigv4_pairs_free(h, n);

    char *c = sigv4_buf_finish(&canon);
    char *sh = sigv4_buf_finish(&names);
    if (!c || !sh) { free(c); free(sh); return NULL; }
    if (signed_headers) *signed_headers = sh;
    else free(sh);
    return c;
}

char *sigv4_string_to_sign(const char *canonical_request, const char *amz_date,
                           const char *region, const char *service)
{
    char hash[SIGV4_HASH_HEX];
    sigv4_sha256_hex(canonical_request, strlen(canonical_request), hash);
    sigv4_buf b = {0};
    sigv4_buf_str(&b, "AWS4-HMAC-SHA256\n");
    sigv4_buf_str(&b, amz_date);
    sigv4_buf_add(&b, "\n", 1);
    sigv4_buf_add(&b, amz_date, 8);
    sigv4_buf_add(&b, "/", 1);
    sigv4_buf_str(&b, region);
    sigv4_buf_add(&b, "/", 1);
    sigv4_buf_str(&b, service);
    sigv4_buf_str(&b, "/aws4_request\n");
    sigv4_buf_str(&b, hash);
    return sigv4_buf_finish(&b);
}

void sigv4_signing_key(const char *secret_key, const char *yyyymmdd, const char *region,
                       const char *service, unsigned char out[32])
{
    size_t slen = strlen(secret_key);
    char *k = malloc(slen + 5);
    unsigned char kdate[32], kregion[32], kservice[32];
    if (!k) { memset(out, 0, 32); return; }
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret_key, slen + 1);
    char date[9];
    snprintf(date, sizeof date, "%.8s", yyyymmdd);
    sigv4_hmac(k, slen + 4, date, kdate);
    sigv4_hmac(kdate, 32, region, kregion);
    sigv4_hmac(kregion, 32, service, kservice);
    sigv4_hmac(kservice, 32, "aws4_request", out);
    /* The secret should not linger in freed heap memory. */
    OPENSSL_cleanse(k, slen + 4);
    free(k);
    OPENSSL_cleanse(kdate, sizeof kdate);
    OPENSSL_cleanse(kregion, sizeof kregion);
    OPENSSL_cleanse(kservice, sizeof kservice);
}

char *sigv4_authorization(const sigv4_request *r, const sigv4_credentials *c,
                          const char *amz_date, const char *region, const char *service,
                          mr_err *e)
{
    MR_CHECK_NULL(c && c->access_key && *c->access_key && c->secret_key, e, MR_EAUTH,
                  "no AWS credentials to sign %s %s with", r->method, r->path);
    MR_CHECK_NULL(amz_date && strlen(amz_date) == 16, e, MR_EINVAL,
                  "bad x-amz-date '%s' (want YYYYMMDDTHHMMSSZ)", amz_date ? amz_date : "");
    char *signed_headers = NULL;
    char *canon = sigv4_canonical_request(r, &signed_headers);
    MR_CHECK_NULL(canon, e, MR_EINVAL, "cannot build the canonical request for %s %s "
                  "(a header without a name, or out of memory)", r->method, r->path);
    char *sts = sigv4_string_to_sign(canon, amz_date, region, service);
    free(canon);
    if (!sts) {
        free(signed_headers);
        mr_fail(e, MR_ENOMEM, "out of memory signing %s %s", r->method, r->path);
        return NULL;
    }
    unsigned char key[32], sig[32];
    char sighex[SIGV4_HASH_HEX];
    sigv4_signing_key(c->secret_key, amz_date, region, service, key);
    sigv4_hmac(key, sizeof key, sts, sig);
    OPENSSL_cleanse(key, sizeof key);
    sigv4_hex(sig, sizeof sig, sighex);
    free(sts);

    sigv4_buf b = {0};
    sigv4_buf_str(&b, "AWS4-HMAC-SHA256 Credential=");
    sigv4_buf_str(&b, c->access_key);
    sigv4_buf_add(&b, "/", 1);
    sigv4_buf_add(&b, amz_date, 8);
    sigv4_buf_add(&b, "/", 1);
    sigv4_buf_str(&b, region);
    sigv4_buf_add(&b, "/", 1);
    sigv4_buf_str(&b, service);
    sigv4_buf_str(&b, "/aws4_request,SignedHeaders=");
    sigv4_buf_str(&b, signed_headers);
    sigv4_buf_str(&b, ",Signature=");
    sigv4_buf_str(&b, sighex);
    free(signed_headers);
    char *auth = sigv4_buf_finish(&b);
    MR_CHECK_NULL(auth, e, MR_ENOMEM, "out of memory signing %s %s", r->method, r->path);
    return auth;
}

void sigv4_amz_date(time_t t, char *out)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, SIGV4_AMZ_DATE, "%Y%m%dT%H%M%SZ", &tm);
}
