#define _GNU_SOURCE   /* memmem */
#include "s3.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "awsconf.h"
#include "sigv4.h"
#include "storage.h"

#define S3_STREAM_BUF (1u << 20)          /* what a streaming GET holds at most */
#define S3_CURL_BUF (256 * 1024)          /* libcurl's receive chunk */
#define S3_ERROR_BODY_MAX (64 * 1024)     /* error documents are small */
#define S3_LIST_BODY_MAX (64u << 20)      /* one ListObjectsV2 page of 1,000 keys */
#define S3_MIN_PART ((size_t)5 << 20)
#define S3_DEFAULT_PART ((size_t)8 << 20)
#define S3_MAX_PART ((size_t)5 << 30)
#define S3_MAX_PARTS 10000
#define S3_DEFAULT_CHUNK ((size_t)8 << 20)   /* one ranged GET of a parallel read */
#define S3_MIN_CHUNK ((size_t)1 << 20)
#define S3_MAX_CHUNK ((size_t)1 << 30)
#define S3_POOL_MAX 16

/* ------------------------------------------------------------------------------------
 * Process-wide state: the configuration (reference counted so a reload never pulls it
 * from under a request in flight), the shared connection cache and a pool of handles. */

typedef struct s3_cfg {
    awsconf *conf;
    int refs;
} s3_cfg;

static pthread_mutex_t s3_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t s3_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t s3_share_locks[CURL_LOCK_DATA_LAST];
static s3_cfg *s3_current;
static CURLSH *s3_share;
static CURL *s3_pool[S3_POOL_MAX];
static int s3_npool;
static atomic_uint_fast64_t s3_retries;

static void s3_share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
    pthread_mutex_lock(&s3_share_locks[d]);
}

static void s3_share_unlock(CURL *h, curl_lock_data d, void *ud)
{
    pthread_mutex_unlock(&s3_share_locks[d]);
}

/* Handles a forked child inherited: their sockets are the parent's too, so the child must
 * neither use nor close them (a TLS close_notify would break the parent's connection).
 * Kept reachable here rather than leaked. */
/* volatile: nothing reads these arrays, so the compiler would drop the stores (and the
 * arrays) and leave the handles unreachable after all (valgrind: definitely lost). */
static CURL *volatile s3_inherited[S3_POOL_MAX * 4];
static CURLSH *volatile s3_inherited_share[4];
static int s3_ninherited, s3_ninherited_share;

static void s3_atfork_child(void)
{
    pthread_mutex_init(&s3_lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&s3_share_locks[i], NULL);
    while (s3_npool) {
        CURL *h = s3_pool[--s3_npool];
        if (s3_ninherited < (int)(sizeof s3_inherited / sizeof s3_inherited[0]))
            s3_inherited[s3_ninherited++] = h;
    }
    if (s3_share && s3_ninherited_share < 4) s3_inherited_share[s3_ninherited_share++] = s3_share;
    s3_share = NULL;
}

static void s3_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&s3_share_locks[i], NULL);
    /* luamr forks its workers: each process needs connections of its own. */
    pthread_atfork(NULL, NULL, s3_atfork_child);
}

/* Called with s3_lock held. */
static CURLSH *s3_share_get(void)
{
    if (s3_share) return s3_share;
    s3_share = curl_share_init();
    if (!s3_share) return NULL;
    curl_share_setopt(s3_share, CURLSHOPT_LOCKFUNC, s3_share_lock);
    curl_share_setopt(s3_share, CURLSHOPT_UNLOCKFUNC, s3_share_unlock);
    /* One connection cache for every handle: keep-alive reuse across requests/streams. */
    curl_share_setopt(s3_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(s3_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(s3_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return s3_share;
}

uint64_t s3_retry_count(void) { return (uint64_t)atomic_load(&s3_retries); }

static void s3_cfg_release(s3_cfg *c)
{
    if (!c) return;
    pthread_mutex_lock(&s3_lock);
    int last = --c->refs == 0;
    pthread_mutex_unlock(&s3_lock);
    if (last) {
        awsconf_free(c->conf);
        free(c);
    }
}

static s3_cfg *s3_cfg_acquire(mr_err *e)
{
    pthread_once(&s3_once, s3_global_init);
    pthread_mutex_lock(&s3_lock);
    if (!s3_current) {
        awsconf *conf = awsconf_load(e);
        s3_cfg *c = conf ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            pthread_mutex_unlock(&s3_lock);
            if (conf) mr_fail(e, MR_ENOMEM, "out of memory loading the AWS configuration");
            else mr_wrap(e, "S3: ");
            awsconf_free(conf);
            return NULL;
        }
        c->conf = conf;
        c->refs = 1;   /* held by s3_current */
        s3_current = c;
    }
    s3_current->refs++;
    s3_cfg *c = s3_current;
    pthread_mutex_unlock(&s3_lock);
    return c;
}

void s3_reload_config(void)
{
    pthread_mutex_lock(&s3_lock);
    s3_cfg *old = s3_current;
    s3_current = NULL;
    pthread_mutex_unlock(&s3_lock);
    s3_cfg_release(old);
}

static CURL *s3_handle_get(void)
{
    pthread_once(&s3_once, s3_global_init);
    pthread_mutex_lock(&s3_lock);
    CURL *h = s3_npool ? s3_pool[--s3_npool] : NULL;
    CURLSH *share = s3_share_get();
    pthread_mutex_unlock(&s3_lock);
    if (h) curl_easy_reset(h);
    else h = curl_easy_init();
    if (h && share) curl_easy_setopt(h, CURLOPT_SHARE, share);
    return h;
}

static void s3_handle_put(CURL *h)
{
    if (!h) return;
    pthread_mutex_lock(&s3_lock);
    if (s3_npool < S3_POOL_MAX) {
        s3_pool[s3_npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s3_lock);
    if (h) curl_easy_cleanup(h);
}

void s3_shutdown(void)
{
    pthread_once(&s3_once, s3_global_init);
    pthread_mutex_lock(&s3_lock);
    while (s3_npool) curl_easy_cleanup(s3_pool[--s3_npool]);
    CURLSH *share = s3_share;
    s3_share = NULL;
    pthread_mutex_unlock(&s3_lock);
    if (share) curl_share_cleanup(share);
    s3_reload_config();
}

/* ------------------------------------------------------------------------------------
 * Tunables, backoff */

static long s3_env_long(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo) return def;
    return x > hi ? hi : x;
}

static int s3_max_attempts(void) { return (int)s3_env_long("LUAMR_S3_MAX_ATTEMPTS", 5, 1, 100); }

/* A size in bytes, or "NM" for N MiB, clamped to [lo, hi]. */
static size_t s3_env_size(const char *name, size_t def, size_t lo, size_t hi)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end == 'M' || *end == 'm') x <<= 20;
    if (x < lo) x = lo;
    if (x > hi) x = hi;
    return (size_t)x;
}

static size_t s3_part_size(void)
{
    return s3_env_size("LUAMR_S3_PART_SIZE", S3_DEFAULT_PART, S3_MIN_PART, S3_MAX_PART);
}

/* Connections a large streamed read may use at once (1: one, as for small objects). */
static int s3_parallel(void) { return (int)s3_env_long("LUAMR_S3_PARALLEL", 4, 1, 64); }

static size_t s3_chunk_size(void)
{
    return s3_env_size("LUAMR_S3_CHUNK", S3_DEFAULT_CHUNK, S3_MIN_CHUNK, S3_MAX_CHUNK);
}

static _Thread_local uint64_t s3_rng;

static uint64_t s3_random(void)
{
    if (!s3_rng) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s3_rng = (((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&ts) | 1;
    }
    s3_rng ^= s3_rng << 13;
    s3_rng ^= s3_rng >> 7;
    s3_rng ^= s3_rng << 17;
    return s3_rng;
}

/* Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)) ms. */
static long s3_backoff_ms(int attempt)
{
    long base = s3_env_long("LUAMR_S3_BACKOFF_MS", 100, 0, 60000);
    long cap = 20000;
    long window = base;
    for (int i = 0; i < attempt && window < cap; i++) window *= 2;
    if (window > cap) window = cap;
    return window <= 0 ? 0 : (long)(s3_random() % (uint64_t)window);
}

static void s3_backoff(int attempt)
{
    long ms = s3_backoff_ms(attempt);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static uint64_t s3_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------------------------
 * Small helpers: growable buffer, XML scanning */

typedef struct s3_buf {
    char *p;
    size_t len, cap, max;
    int overflow;
} s3_buf;

static int s3_buf_add(s3_buf *b, const void *s, size_t n)
{
    if (b->max && b->len + n > b->max) { b->overflow = 1; return -1; }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int s3_buf_str(s3_buf *b, const char *s) { return s3_buf_add(b, s, strlen(s)); }

/* Content of the next <tag>...</tag> in [p, end): returns its start and length, and
 * where scanning may go on, or NULL. S3's elements carry no attributes except the root. */
static const char *s3_xml_next(const char *p, const char *end, const char *tag, size_t *n,
                               const char **after)
{
    char open[64], close[64];
    int lo = snprintf(open, sizeof open, "<%s>", tag);
    int lc = snprintf(close, sizeof close, "</%s>", tag);
    if (!p || p >= end) return NULL;
    const char *a = memmem(p, (size_t)(end - p), open, (size_t)lo);
    if (!a) return NULL;
    a += lo;
    const char *b = memmem(a, (size_t)(end - a), close, (size_t)lc);
    if (!b) return NULL;
    *n = (size_t)(b - a);
    if (after) *after = b + lc;
    return a;
}

static void s3_utf8(s3_buf *out, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 63)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 63));
        u[2] = (char)(0x80 | (cp & 63)); n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63)); n = 4;
    }
    s3_buf_add(out, u, n);
}

/* XML text to bytes (entities decoded) into out, replacing its content. */
static void s3_xml_text(const char *s, size_t n, s3_buf *out)
{
    out->len = 0;
    s3_buf_add(out, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '&') { s3_buf_add(out, s + i, 1); continue; }
        const char *semi = memchr(s + i, ';', n - i);
        if (!semi || semi - (s + i) > 12) { s3_buf_add(out, s + i, 1); continue; }
        size_t len = (size_t)(semi - (s + i)) + 1;
        const char *ent = s + i;
        if (len == 5 && !memcmp(ent, "&amp;", 5)) s3_buf_add(out, "&", 1);
        else if (len == 4 && !memcmp(ent, "&lt;", 4)) s3_buf_add(out, "<", 1);
        else if (len == 4 && !memcmp(ent, "&gt;", 4)) s3_buf_add(out, ">", 1);
        else if (len == 6 && !memcmp(ent, "&quot;", 6)) s3_buf_add(out, "\"", 1);
        else if (len == 6 && !memcmp(ent, "&apos;", 6)) s3_buf_add(out, "'", 1);
        else if (len > 3 && ent[1] == '#') {
            int hex = ent[2] == 'x' || ent[2] == 'X';
            unsigned long cp = strtoul(ent + (hex ? 3 : 2), NULL, hex ? 16 : 10);
            s3_utf8(out, cp);
        } else {
            s3_buf_add(out, ent, len);
        }
        i += len - 1;
    }
}

/* One element's decoded text into dst (truncated to cap), "" when absent. */
static void s3_xml_get(const char *xml, size_t len, const char *tag, char *dst, size_t cap)
{
    size_t n;
    dst[0] = '\0';
    const char *v = s3_xml_next(xml, xml + len, tag, &n, NULL);
    if (!v) return;
    s3_buf tmp = {0};
    s3_xml_text(v, n, &tmp);
    snprintf(dst, cap, "%s", tmp.p ? tmp.p : "");
    free(tmp.p);
}

/* ------------------------------------------------------------------------------------
 * Requests */

mr_code s3_parse_uri(const char *uri, char **bucket, char **key, mr_err *e)
{
    *bucket = *key = NULL;
    MR_CHECK(uri && strncmp(uri, "s3://", 5) == 0, e, MR_EINVAL,
             "'%s' is not an s3:// URI", uri ? uri : "(null)");
    const char *b = uri + 5;
    const char *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    MR_CHECK(blen > 0, e, MR_EINVAL, "'%s': no bucket name after s3://", uri);
    /* S3 keys are not paths: "a/../b" is a key of its own, yet a folder-style reader
     * (and some S3-compatible servers) would take it as "b". Refuse it instead of reading
     * or writing an object the user did not mean. */
    for (const char *k = slash ? slash + 1 : b + blen; *k;) {
        size_t n = strcspn(k, "/");
        MR_CHECK(!(n == 2 && k[0] == '.' && k[1] == '.'), e, MR_EINVAL,
                 "'%s': the key has a '..' segment; S3 keys are names, not paths, so '..' "
                 "would not mean the parent folder (write the key without it)", uri);
        k += n;
        if (*k == '/') k++;
    }
    *bucket = strndup(b, blen);
    *key = strdup(slash ? slash + 1 : "");
    if (!*bucket || !*key) {
        free(*bucket);
        free(*key);
        *bucket = *key = NULL;
        return mr_fail(e, MR_ENOMEM, "out of memory parsing '%s'", uri);
    }
    return MR_OK;
}

typedef struct s3_req {
    const char *op;             /* S3's name for it, for messages: "GetObject" */
    const char *method;
    const char *bucket;
    const char *key;            /* "" for bucket-level requests */
    sigv4_kv query[6];
    size_t nquery;
    char range[64];             /* "bytes=0-9", "" for none */
    const char *if_match;
    const char *content_type;
    const char *body;           /* request body (PUT/POST), may be NULL */
    size_t body_len;
    int check_body_error;       /* a 200 may still carry <Error> (CompleteMultipartUpload) */
    size_t max_response;        /* cap on the collected body */
} s3_req;

typedef struct s3_resp {
    long status;
    s3_buf body;
    char request_id[128];
    char etag[256];
    char bucket_region[64];
    char error_code[128];       /* x-amz-error-code (HEAD answers have no body) */
    uint64_t content_length;
    int have_length;
    uint64_t total;             /* from Content-Range ".../total" */
    int have_total;
} s3_resp;

static void s3_resp_reset(s3_resp *r, size_t max)
{
    char *p = r->body.p;
    size_t cap = r->body.cap;
    memset(r, 0, sizeof *r);
    r->body.p = p;
    r->body.cap = cap;
    r->body.max = max;
    if (p) p[0] = '\0';
}

static void s3_header_value(const char *line, size_t n, char *dst, size_t cap)
{
    const char *colon = memchr(line, ':', n);
    if (!colon) return;
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    size_t len = (size_t)(end - v);
    if (len >= cap) len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static int s3_header_is(const char *line, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n > l && line[l] == ':' && strncasecmp(line, name, l) == 0;
}

static size_t s3_on_header(char *line, size_t size, size_t nmemb, void *ud)
{
    s3_resp *r = ud;
    size_t n = size * nmemb;
    char v[256];
    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new status line (after 100 Continue, or a redirect) starts a fresh header set. */
        size_t max = r->body.max;
        s3_resp_reset(r, max);
        const char *sp = memchr(line, ' ', n);
        if (sp) r->status = strtol(sp + 1, NULL, 10);
    } else if (s3_header_is(line, n, "x-amz-request-id")) {
        s3_header_value(line, n, r->request_id, sizeof r->request_id);
    } else if (s3_header_is(line, n, "etag")) {
        s3_header_value(line, n, r->etag, sizeof r->etag);
    } else if (s3_header_is(line, n, "x-amz-bucket-region")) {
        s3_header_value(line, n, r->bucket_region, sizeof r->bucket_region);
    } else if (s3_header_is(line, n, "x-amz-error-code")) {
        s3_header_value(line, n, r->error_code, sizeof r->error_code);
    } else if (s3_header_is(line, n, "content-length")) {
        s3_header_value(line, n, v, sizeof v);
        r->content_length = strtoull(v, NULL, 10);
        r->have_length = 1;
    } else if (s3_header_is(line, n, "content-range")) {
        s3_header_value(line, n, v, sizeof v);
        const char *slash = strchr(v, '/');
        if (slash && slash[1] != '*') {
            r->total = strtoull(slash + 1, NULL, 10);
            r->have_total = 1;
        }
    }
    return n;
}

static size_t s3_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    s3_resp *r = ud;
    size_t n = size * nmemb;
    /* Error documents are kept whatever the cap; only a success body may overflow. */
    if (r->status >= 300 && r->body.len + n > S3_ERROR_BODY_MAX) return n;
    if (r->status >= 300) {
        size_t max = r->body.max;
        r->body.max = 0;
        s3_buf_add(&r->body, data, n);
        r->body.max = max;
        return n;
    }
    return s3_buf_add(&r->body, data, n) == 0 ? n : 0;
}

typedef struct s3_upload {
    const char *p;
    size_t len, pos;
} s3_upload;

static size_t s3_on_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    s3_upload *u = ud;
    size_t n = size * nmemb, left = u->len - u->pos;
    if (n > left) n = left;
    memcpy(dst, u->p + u->pos, n);
    u->pos += n;
    return n;
}

static int s3_dns_bucket(const char *b)
{
    /* Virtual-hosted style needs a bucket that is a valid host label without dots
     * (dots break TLS certificate matching). */
    size_t n = strlen(b);
    if (n < 3 || n > 63) return 0;
    for (const char *c = b; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) return 0;
    return b[0] != '-' && b[n - 1] != '-';
}

/* Builds the URL, signs, and sets every option for r on h; *hdrs must be freed by the
 * caller after the transfer. */
static mr_code s3_prepare(CURL *h, const s3_cfg *cfg, const s3_req *r, s3_upload *up,
                          struct curl_slist **hdrs, char *errbuf, mr_err *e)
{
    const awsconf *c = cfg->conf;
    *hdrs = NULL;
    MR_CHECK(awsconf_has_credentials(c), e, MR_EAUTH,
             "S3 %s s3://%s/%s: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
             "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials)",
             r->op, r->bucket, r->key);
    const char *region = awsconf_region(c);
    char origin[600], host[512];
    s3_buf path = {0};
    const char *ep = awsconf_endpoint(c);
    int path_style = awsconf_path_style(c) || !s3_dns_bucket(r->bucket);
    if (ep) {
        const char *scheme_end = strstr(ep, "://");
        const char *hs = scheme_end ? scheme_end + 3 : ep;
        const char *ps = strchr(hs, '/');
        size_t hl = ps ? (size_t)(ps - hs) : strlen(hs);
        snprintf(host, sizeof host, "%.*s", (int)hl, hs);
        snprintf(origin, sizeof origin, "%s%.*s", scheme_end ? "" : "https://",
                 (int)(hs - ep + (ptrdiff_t)hl), ep);
        if (ps) s3_buf_str(&path, ps);   /* an endpoint may carry a base path */
        path_style = 1;
    } else {
        const char *suffix = strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
        if (path_style) snprintf(host, sizeof host, "s3.%s.%s", region, suffix);
        else snprintf(host, sizeof host, "%s.s3.%s.%s", r->bucket, region, suffix);
        snprintf(origin, sizeof origin, "https://%s", host);
    }
    if (path_style) {
        s3_buf_str(&path, "/");
        s3_buf_str(&path, r->bucket);
        if (r->key[0]) s3_buf_str(&path, "/");
    } else {
        s3_buf_str(&path, "/");
    }
    s3_buf_str(&path, r->key);

    char date[SIGV4_AMZ_DATE], hash[SIGV4_HASH_HEX];
    sigv4_amz_date(time(NULL), date);
    sigv4_sha256_hex(r->body ? r->body : "", r->body_len, hash);
    const char *token = awsconf_session_token(c);
    sigv4_kv hv[8];
    size_t nh = 0;
    hv[nh++] = (sigv4_kv){"host", host};
    hv[nh++] = (sigv4_kv){"x-amz-date", date};
    hv[nh++] = (sigv4_kv){"x-amz-content-sha256", hash};
    if (token) hv[nh++] = (sigv4_kv){"x-amz-security-token", token};
    if (r->range[0]) hv[nh++] = (sigv4_kv){"range", r->range};
    if (r->if_match) hv[nh++] = (sigv4_kv){"if-match", r->if_match};
    if (r->content_type) hv[nh++] = (sigv4_kv){"content-type", r->content_type};
    sigv4_request sr = {r->method, path.p, r->query, r->nquery, hv, nh, hash, 0};
    sigv4_credentials cr = {awsconf_access_key(c), awsconf_secret_key(c), token};
    char *auth = sigv4_authorization(&sr, &cr, date, region, "s3", e);
    char *epath = sigv4_canonical_uri(path.p, 0);
    char *query = sigv4_canonical_query(r->query, r->nquery);
    free(path.p);
    s3_buf url = {0};
    s3_buf_str(&url, origin);
    if (epath) s3_buf_str(&url, epath);
    if (query && *query) {
        s3_buf_str(&url, "?");
        s3_buf_str(&url, query);
    }
    free(epath);
    free(query);
    if (!auth || !url.p) {
        free(auth);
        free(url.p);
        if (auth) return mr_fail(e, MR_ENOMEM, "out of memory building an S3 request");
        return mr_wrap(e, "S3 %s s3://%s/%s: ", r->op, r->bucket, r->key);
    }

    struct curl_slist *l = NULL;
    char line[4096];
    for (size_t i = 0; i < nh; i++) {
        snprintf(line, sizeof line, "%s: %s", hv[i].name, hv[i].value);
        l = curl_slist_append(l, line);
    }
    s3_buf a = {0};
    s3_buf_str(&a, "Authorization: ");
    s3_buf_str(&a, auth);
    l = curl_slist_append(l, a.p);
    free(a.p);
    free(auth);
    /* No "Expect: 100-continue" round trip before each part. */
    l = curl_slist_append(l, "Expect:");
    *hdrs = l;

    curl_easy_setopt(h, CURLOPT_URL, url.p);
    free(url.p);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);   /* keys may hold "//" or "/./" */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                     s3_env_long("LUAMR_S3_STALL_SECONDS", 60, 1, 3600));
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)S3_CURL_BUF);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    errbuf[0] = '\0';
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        up->p = r->body ? r->body : "";
        up->len = r->body_len;
        up->pos = 0;
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, s3_on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, up);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
    return MR_OK;
}

static int s3_curl_transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

static int s3_status_transient(long status, const char *code)
{
    if (status == 500 || status == 502 || status == 503 || status == 504 || status == 429)
        return 1;
    return strcmp(code, "RequestTimeout") == 0 || strcmp(code, "SlowDown") == 0 ||
           strcmp(code, "InternalError") == 0 || strcmp(code, "ServiceUnavailable") == 0;
}

/* S3's error code/message/request id from a response (body, or headers for HEAD). */
typedef struct s3_errinfo {
    char code[128], message[512], request_id[128], region[64];
} s3_errinfo;

static void s3_errinfo_get(const s3_resp *r, s3_errinfo *x)
{
    const char *body = r->body.p ? r->body.p : "";
    s3_xml_get(body, r->body.len, "Code", x->code, sizeof x->code);
    s3_xml_get(body, r->body.len, "Message", x->message, sizeof x->message);
    s3_xml_get(body, r->body.len, "RequestId", x->request_id, sizeof x->request_id);
    s3_xml_get(body, r->body.len, "Region", x->region, sizeof x->region);
    if (!x->code[0]) snprintf(x->code, sizeof x->code, "%s", r->error_code);
    if (!x->code[0]) {
        const char *name = r->status == 404 ? "NotFound" : r->status == 403 ? "Forbidden"
                         : r->status == 301 ? "PermanentRedirect" : "UnknownError";
        snprintf(x->code, sizeof x->code, "%s", name);
    }
    if (!x->request_id[0]) snprintf(x->request_id, sizeof x->request_id, "%s", r->request_id);
    if (!x->region[0]) snprintf(x->region, sizeof x->region, "%s", r->bucket_region);
}

static mr_code s3_fail_status(mr_err *e, const s3_req *q, const s3_resp *r, const s3_cfg *cfg,
                              int attempts)
{
    s3_errinfo x;
    s3_errinfo_get(r, &x);
    char hint[600] = "";
    const char *region = awsconf_region(cfg->conf);
    if (x.region[0] && strcmp(x.region, region) != 0) {
        snprintf(hint, sizeof hint, "; the bucket is in region %s, not %s: set AWS_REGION=%s",
                 x.region, region, x.region);
    } else if (strcmp(x.code, "SignatureDoesNotMatch") == 0) {
        snprintf(hint, sizeof hint, "; check the secret access key (credentials from %s)",
                 awsconf_source(cfg->conf));
    } else if (r->status == 401 || r->status == 403 || strcmp(x.code, "InvalidAccessKeyId") == 0 ||
               strcmp(x.code, "ExpiredToken") == 0 || strcmp(x.code, "InvalidToken") == 0) {
        snprintf(hint, sizeof hint, "; credentials from %s", awsconf_source(cfg->conf));
    }
    char tries[64] = "";
    if (attempts > 1) snprintf(tries, sizeof tries, " after %d attempts", attempts);
    mr_code code = (r->status == 401 || r->status == 403) ? MR_EAUTH
                 : r->status == 404 ? MR_ENOTFOUND
                 : (r->status >= 500 || r->status == 429) ? MR_ENET : MR_EIO;
    return mr_fail(e, code, "S3 %s s3://%s/%s failed%s: HTTP %ld %s%s%s (request id %s)%s", q->op,
                   q->bucket, q->key, tries, r->status, x.code, x.message[0] ? ": " : "",
                   x.message, x.request_id[0] ? x.request_id : "none", hint);
}

static mr_code s3_fail_transport(mr_err *e, const s3_req *q, CURLcode cc, const char *errbuf,
                                 int attempts)
{
    return mr_fail(e, cc == CURLE_OPERATION_TIMEDOUT ? MR_ETIMEOUT : MR_ENET,
                   "S3 %s s3://%s/%s failed after %d attempt%s: %s%s%s", q->op, q->bucket, q->key,
                   attempts, attempts == 1 ? "" : "s", curl_easy_strerror(cc),
                   errbuf[0] ? " — " : "", errbuf);
}

/* One request with retries. On success resp holds the status, headers and body. */
static mr_code s3_call(const s3_req *q, s3_resp *resp, mr_err *e)
{
    s3_cfg *cfg = s3_cfg_acquire(e);
    if (!cfg) return e ? e->code : MR_EINVAL;
    int max = s3_max_attempts();
    mr_code rc = MR_OK;
    for (int attempt = 1;; attempt++) {
        s3_resp_reset(resp, q->max_response ? q->max_response : S3_LIST_BODY_MAX);
        CURL *h = s3_handle_get();
        if (!h) { rc = mr_fail(e, MR_ENOMEM, "S3: cannot create a curl handle"); break; }
        struct curl_slist *hdrs = NULL;
        s3_upload up = {0};
        char errbuf[CURL_ERROR_SIZE];
        rc = s3_prepare(h, cfg, q, &up, &hdrs, errbuf, e);
        if (rc != MR_OK) { s3_handle_put(h); break; }
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s3_on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
        CURLcode cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        curl_slist_free_all(hdrs);
        s3_handle_put(h);

        int transient;
        if (cc == CURLE_WRITE_ERROR && resp->body.overflow) {
            rc = mr_fail(e, MR_ELIMIT, "S3 %s s3://%s/%s: the response is larger than %zu bytes",
                         q->op, q->bucket, q->key, resp->body.max);
            break;
        }
        if (cc != CURLE_OK) {
            transient = s3_curl_transient(cc);
            if (!transient || attempt >= max) {
                rc = s3_fail_transport(e, q, cc, errbuf, attempt);
                break;
            }
        } else {
            int body_error = q->check_body_error && resp->status < 300 && resp->body.p &&
                             strstr(resp->body.p, "<Error>");
            if (resp->status < 300 && !body_error) { rc = MR_OK; break; }
            s3_errinfo x;
            s3_errinfo_get(resp, &x);
            if (body_error) resp->status = 500;
            transient = s3_status_transient(resp->status, x.code);
            if (!transient || attempt >= max) {
                rc = s3_fail_status(e, q, resp, cfg, attempt);
                break;
            }
        }
        atomic_fetch_add(&s3_retries, 1);
        s3_backoff(attempt);
    }
    s3_cfg_release(cfg);
    return rc;
}

static void s3_resp_free(s3_resp *r) { free(r->body.p); r->body.p = NULL; }

/* ------------------------------------------------------------------------------------
 * Simple operations */

typedef struct s3_target {
    char *bucket, *key;
} s3_target;

static void s3_target_free(s3_target *t) { free(t->bucket); free(t->key); }

int s3_stat(const char *uri, uint64_t *size, mr_err *e)
{
    s3_target t;
    if (s3_parse_uri(uri, &t.bucket, &t.key, e) != MR_OK) return -1;
    s3_req q = {.op = "HeadObject", .method = "HEAD", .bucket = t.bucket, .key = t.key};
    s3_resp r = {0};
    int out = -1;
    if (!t.key[0]) {
        out = 0;   /* a bucket is not an object */
    } else {
        mr_err tmp = {0};
        mr_code rc = s3_call(&q, &r, &tmp);
        if (rc == MR_OK) {
            if (size) *size = r.content_length;
            out = 1;
        } else if (rc == MR_ENOTFOUND) {
            out = 0;
        } else if (e) {
            *e = tmp;
        }
    }
    s3_resp_free(&r);
    s3_target_free(&t);
    return out;
}

static mr_code s3_get_into(const char *uri, const char *range, size_t max, char **data,
                           size_t *len, int empty_on_416, mr_err *e)
{
    s3_target t;
    *data = NULL;
    *len = 0;
    MR_TRY(s3_parse_uri(uri, &t.bucket, &t.key, e));
    s3_req q = {.op = "GetObject", .method = "GET", .bucket = t.bucket, .key = t.key,
                .max_response = max};
    if (range) snprintf(q.range, sizeof q.range, "%s", range);
    s3_resp r = {0};
    mr_err tmp = {0};
    mr_code rc = s3_call(&q, &r, &tmp);
    if (rc != MR_OK && empty_on_416 && r.status == 416) rc = MR_OK;
    else if (rc != MR_OK && e) *e = tmp;
    if (rc == MR_OK) {
        if (r.status == 416 || !r.body.p) {
            free(r.body.p);
            r.body.p = strdup("");
            r.body.len = 0;
        }
        *data = r.body.p;
        *len = r.body.len;
        r.body.p = NULL;
        if (!*data) rc = mr_fail(e, MR_ENOMEM, "out of memory reading %s", uri);
    }
    s3_resp_free(&r);
    s3_target_free(&t);
    return rc;
}

mr_code s3_get_object(const char *uri, char **data, size_t *len, size_t max_bytes, mr_err *e)
{
    return s3_get_into(uri, NULL, max_bytes ? max_bytes : (size_t)-1 / 2, data, len, 0, e);
}

mr_code s3_get_range(const char *uri, uint64_t offset, uint64_t len, char **data, size_t *got,
                     mr_err *e)
{
    char range[64];
    if (len == 0) {
        *data = strdup("");
        *got = 0;
        return *data ? MR_OK : mr_fail(e, MR_ENOMEM, "out of memory");
    }
    snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
    return s3_get_into(uri, range, (size_t)len, data, got, 1, e);
}

static mr_code s3_put_bytes(const char *bucket, const char *key, const void *data, size_t len,
                            mr_err *e)
{
    s3_req q = {.op = "PutObject", .method = "PUT", .bucket = bucket, .key = key,
                .body = data, .body_len = len};
    s3_resp r = {0};
    mr_code rc = s3_call(&q, &r, e);
    s3_resp_free(&r);
    return rc;
}

mr_code s3_put_object(const char *uri, const void *data, size_t len, mr_err *e)
{
    s3_target t;
    MR_TRY(s3_parse_uri(uri, &t.bucket, &t.key, e));
    mr_code rc = t.key[0] ? s3_put_bytes(t.bucket, t.key, data, len, e)
                          : mr_fail(e, MR_EINVAL, "'%s': no object key to write to", uri);
    s3_target_free(&t);
    return rc;
}

mr_code s3_delete(const char *uri, mr_err *e)
{
    s3_target t;
    MR_TRY(s3_parse_uri(uri, &t.bucket, &t.key, e));
    s3_req q = {.op = "DeleteObject", .method = "DELETE", .bucket = t.bucket, .key = t.key};
    s3_resp r = {0};
    mr_code rc = t.key[0] ? s3_call(&q, &r, e)
                          : mr_fail(e, MR_EINVAL, "'%s': refusing to delete a whole bucket", uri);
    s3_resp_free(&r);
    s3_target_free(&t);
    return rc;
}

mr_code s3_list(const char *prefix_uri,
                mr_code (*fn)(const char *uri, uint64_t size, void *ud), void *ud, mr_err *e)
{
    s3_target t;
    MR_TRY(s3_parse_uri(prefix_uri, &t.bucket, &t.key, e));
    s3_buf prefix = {0}, key = {0}, uri = {0}, token = {0};
    s3_buf_str(&prefix, t.key);
    if (prefix.len && prefix.p[prefix.len - 1] != '/') s3_buf_str(&prefix, "/");
    s3_resp r = {0};
    mr_code rc = MR_OK;
    for (int page = 0;; page++) {
        s3_req q = {.op = "ListObjectsV2", .method = "GET", .bucket = t.bucket, .key = ""};
        q.query[q.nquery++] = (sigv4_kv){"list-type", "2"};
        q.query[q.nquery++] = (sigv4_kv){"prefix", prefix.p ? prefix.p : ""};
        if (page) q.query[q.nquery++] = (sigv4_kv){"continuation-token", token.p};
        rc = s3_call(&q, &r, e);
        if (rc != MR_OK) break;
        const char *xml = r.body.p ? r.body.p : "", *end = xml + r.body.len, *p = xml;
        size_t n;
        const char *c;
        while (rc == MR_OK && (c = s3_xml_next(p, end, "Contents", &n, &p))) {
            size_t kn, sn;
            const char *k = s3_xml_next(c, c + n, "Key", &kn, NULL);
            const char *s = s3_xml_next(c, c + n, "Size", &sn, NULL);
            if (!k) continue;
            s3_xml_text(k, kn, &key);
            if (key.len && key.p[key.len - 1] == '/') continue;   /* a folder marker */
            uri.len = 0;
            s3_buf_str(&uri, "s3://");
            s3_buf_str(&uri, t.bucket);
            s3_buf_str(&uri, "/");
            s3_buf_str(&uri, key.p);
            rc = fn(uri.p, s ? strtoull(s, NULL, 10) : 0, ud);
        }
        if (rc != MR_OK) break;
        char trunc[16];
        s3_xml_get(xml, r.body.len, "IsTruncated", trunc, sizeof trunc);
        if (strcmp(trunc, "true") != 0) break;
        const char *tok = s3_xml_next(xml, end, "NextContinuationToken", &n, NULL);
        if (!tok || !n) {
            rc = mr_fail(e, MR_EFORMAT, "S3 ListObjectsV2 %s: a truncated page without "
                         "NextContinuationToken (page %d)", prefix_uri, page + 1);
            break;
        }
        s3_xml_text(tok, n, &token);
    }
    free(prefix.p);
    free(key.p);
    free(uri.p);
    free(token.p);
    s3_resp_free(&r);
    s3_target_free(&t);
    return rc;
}

/* ------------------------------------------------------------------------------------
 * Streaming GET. A transfer (s3_rstream) fetches the bytes [pos, end) of an object into
 * its buffer through a curl easy handle in its reader's multi handle, paused whenever the
 * buffer is full so that the reader pulls bytes at its own pace. A cut transfer resumes
 * with a ranged GET from the first byte not yet received (If-Match on the ETag, so a
 * changed object is an error rather than a splice) once its backoff is over; the backoff
 * is a deadline, not a sleep, so the reader's other transfers keep going meanwhile.
 *
 * A reader (s3_get) starts one open-ended transfer, the head, at the offset: one request,
 * as before, for small objects. When the head's first answer shows more than two chunks
 * (LUAMR_S3_CHUNK) left and LUAMR_S3_PARALLEL allows more than one connection, the head
 * stops after one chunk and the rest comes as consecutive chunks, up to N ranged GETs at
 * once into N reused chunk buffers, handed over strictly in order: S3 caps the throughput
 * of each connection, not of a client. */

typedef struct s3_rstream {
    s3_cfg *cfg;             /* cfg, t, uri and multi are the reader's */
    const s3_target *t;
    const char *uri;
    CURLM *multi;
    uint64_t pos;            /* object offset of the next byte to come from the network */
    uint64_t end;            /* offset to stop at, UINT64_MAX for the end of the object */
    uint64_t size;           /* object size once known, else UINT64_MAX */
    uint64_t skip;           /* bytes to drop when a server ignored our Range */
    uint64_t split;          /* head, until its first answer: the chunk size at which to
                                stop if the rest is large enough for a parallel read */
    uint64_t wake_ms;        /* a retry waits for its backoff until this monotonic time */
    char etag[256];
    CURL *easy;
    struct curl_slist *hdrs;
    s3_req req;
    s3_resp resp;
    char errbuf[CURL_ERROR_SIZE];
    char *buf;
    size_t cap, head, tail;
    int active, paused, eof, checked, attempts;
    uint64_t received;       /* this attempt's bytes */
    mr_err failed;           /* sticky: once failed, every read says why */
} s3_rstream;

/* The first answer fixes the ETag every later request must match, and the size. */
static void s3_rstream_check(s3_rstream *rs)
{
    rs->checked = 1;
    if (rs->resp.status == 200 && rs->req.range[0] && rs->pos > 0) rs->skip = rs->pos;
    if (rs->resp.status != 200 && rs->resp.status != 206) return;
    if (!rs->etag[0]) snprintf(rs->etag, sizeof rs->etag, "%s", rs->resp.etag);
    if (rs->resp.have_total) rs->size = rs->resp.total;
    else if (rs->resp.status == 200 && rs->resp.have_length) rs->size = rs->resp.content_length;
    if (rs->split && rs->size != UINT64_MAX && rs->size > rs->pos &&
        rs->size - rs->pos > 2 * rs->split)
        rs->end = rs->pos + rs->split;
    rs->split = 0;
}

static size_t s3_rstream_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    s3_rstream *rs = ud;
    size_t n = size * nmemb;
    if (!rs->checked) s3_rstream_check(rs);
    if (rs->resp.status != 200 && rs->resp.status != 206) return s3_on_body(data, size, nmemb, &rs->resp);
    size_t drop = rs->skip < n ? (size_t)rs->skip : n;
    size_t take = n - drop;
    /* A head cut short at its chunk stops here: refusing the rest ends the transfer. */
    int over = take > rs->end - rs->pos;
    if (over) take = (size_t)(rs->end - rs->pos);
    if (take > rs->cap - rs->tail && rs->head > 0) {
        memmove(rs->buf, rs->buf + rs->head, rs->tail - rs->head);
        rs->tail -= rs->head;
        rs->head = 0;
    }
    if (take > rs->cap - rs->tail) {
        rs->paused = 1;   /* libcurl keeps this chunk and hands it over again on unpause */
        return CURL_WRITEFUNC_PAUSE;
    }
    rs->skip -= drop;
    memcpy(rs->buf + rs->tail, data + drop, take);
    rs->tail += take;
    rs->pos += take;
    rs->received += take;
    return over ? 0 : n;
}

static void s3_rstream_stop(s3_rstream *rs)
{
    if (!rs->easy) return;
    curl_multi_remove_handle(rs->multi, rs->easy);
    curl_slist_free_all(rs->hdrs);
    rs->hdrs = NULL;
    s3_handle_put(rs->easy);
    rs->easy = NULL;
    rs->active = 0;
    rs->paused = 0;
}

static mr_code s3_rstream_start(s3_rstream *rs, mr_err *e)
{
    s3_req *q = &rs->req;
    *q = (s3_req){.op = "GetObject", .method = "GET", .bucket = rs->t->bucket, .key = rs->t->key};
    /* No Range for a whole object: "bytes=0-" on an empty object is a 416 on S3. */
    if (rs->end != UINT64_MAX)
        snprintf(q->range, sizeof q->range, "bytes=%" PRIu64 "-%" PRIu64, rs->pos, rs->end - 1);
    else if (rs->pos > 0)
        snprintf(q->range, sizeof q->range, "bytes=%" PRIu64 "-", rs->pos);
    if (rs->etag[0]) q->if_match = rs->etag;
    rs->easy = s3_handle_get();
    MR_CHECK(rs->easy, e, MR_ENOMEM, "S3: cannot create a curl handle");
    s3_resp_reset(&rs->resp, S3_ERROR_BODY_MAX);
    rs->checked = 0;
    rs->received = 0;
    s3_upload unused = {0};
    mr_code rc = s3_prepare(rs->easy, rs->cfg, q, &unused, &rs->hdrs, rs->errbuf, e);
    if (rc != MR_OK) {
        s3_handle_put(rs->easy);
        rs->easy = NULL;
        return rc;
    }
    curl_easy_setopt(rs->easy, CURLOPT_HEADERFUNCTION, s3_on_header);
    curl_easy_setopt(rs->easy, CURLOPT_HEADERDATA, &rs->resp);
    curl_easy_setopt(rs->easy, CURLOPT_WRITEFUNCTION, s3_rstream_on_body);
    curl_easy_setopt(rs->easy, CURLOPT_WRITEDATA, rs);
    curl_easy_setopt(rs->easy, CURLOPT_PRIVATE, rs);   /* the reader routes completions */
    if (curl_multi_add_handle(rs->multi, rs->easy) != CURLM_OK) {
        curl_slist_free_all(rs->hdrs);
        rs->hdrs = NULL;
        s3_handle_put(rs->easy);
        rs->easy = NULL;
        return mr_fail(e, MR_ENET, "S3 GetObject %s: cannot start the transfer", rs->uri);
    }
    rs->active = 1;
    return MR_OK;
}

/* Whether a transfer that ended without an error got every byte it was after. */
static int s3_rstream_complete(const s3_rstream *rs)
{
    uint64_t want = rs->end < rs->size ? rs->end : rs->size;
    return want == UINT64_MAX || rs->pos >= want;
}

/* The transfer ended: done, resumable (after a backoff), or failed. */
static mr_code s3_rstream_finish(s3_rstream *rs, CURLcode cc, mr_err *e)
{
    long status = rs->resp.status;
    if (cc == CURLE_OK) curl_easy_getinfo(rs->easy, CURLINFO_RESPONSE_CODE, &status);
    rs->resp.status = status;
    if (cc == CURLE_OK && !rs->checked) s3_rstream_check(rs);
    s3_rstream_stop(rs);
    if (cc == CURLE_WRITE_ERROR && rs->pos >= rs->end) {
        rs->eof = 1;   /* the head refused the bytes past its chunk */
        return MR_OK;
    }
    if (cc == CURLE_OK && (status == 200 || status == 206)) {
        if (s3_rstream_complete(rs)) {
            rs->eof = 1;
            return MR_OK;
        }
        cc = CURLE_PARTIAL_FILE;   /* the server closed early without curl noticing */
    }
    /* At or past the end of the object; a chunk, though, was promised its bytes. */
    if (cc == CURLE_OK && status == 416 && rs->end == UINT64_MAX) {
        rs->eof = 1;
        return MR_OK;
    }
    int transient;
    s3_errinfo x;
    if (cc != CURLE_OK) {
        transient = s3_curl_transient(cc);
    } else {
        s3_errinfo_get(&rs->resp, &x);
        transient = s3_status_transient(status, x.code);
    }
    if (rs->received > 0) rs->attempts = 0;   /* progress: a long read may be cut often */
    rs->attempts++;
    if (!transient || rs->attempts >= s3_max_attempts()) {
        mr_code rc;
        if (cc != CURLE_OK) {
            rc = s3_fail_transport(e, &rs->req, cc, rs->errbuf, rs->attempts);
        } else {
            rc = s3_fail_status(e, &rs->req, &rs->resp, rs->cfg, rs->attempts);
            if (status == 412)
                mr_wrap(e, "%s changed while being read (at byte %" PRIu64 "): ", rs->uri, rs->pos);
        }
        return rc;
    }
    atomic_fetch_add(&s3_retries, 1);
    rs->wake_ms = s3_now_ms() + (uint64_t)s3_backoff_ms(rs->attempts);
    return MR_OK;   /* the reader starts a ranged GET at rs->pos once wake_ms has passed */
}

/* Hands over up to n buffered bytes and lets a paused transfer go on. */
static size_t s3_rstream_take(s3_rstream *rs, void *buf, size_t n)
{
    size_t k = rs->tail - rs->head;
    if (k > n) k = n;
    memcpy(buf, rs->buf + rs->head, k);
    rs->head += k;
    if (rs->head == rs->tail) rs->head = rs->tail = 0;
    if (rs->paused) {
        rs->paused = 0;
        curl_easy_pause(rs->easy, CURLPAUSE_CONT);
    }
    return k;
}

static void s3_rstream_release(s3_rstream *rs)
{
    s3_rstream_stop(rs);
    s3_resp_free(&rs->resp);
    free(rs->buf);
    rs->buf = NULL;
}

typedef struct s3_get {
    s3_cfg *cfg;
    s3_target t;
    char *uri;
    CURLM *multi;
    s3_rstream head;         /* chunk 0: [offset, head.end), the whole read when small */
    s3_rstream *slots;       /* parallel read: chunk c >= 1 lives in slots[c % nslots] */
    int nslots;              /* connections at once (LUAMR_S3_PARALLEL) */
    uint64_t chunk;          /* bytes per chunk (LUAMR_S3_CHUNK) */
    uint64_t nchunks;        /* chunks in all, head included: 1 unless parallel */
    uint64_t cur;            /* the chunk being read */
    uint64_t started;        /* chunks [0, started) have been given a transfer */
    mr_err failed;           /* sticky reader-level failure (memory, curl multi) */
} s3_get;

static s3_rstream *s3_get_stream(s3_get *g, uint64_t c)
{
    return c == 0 ? &g->head : &g->slots[c % (uint64_t)g->nslots];
}

/* Points a free slot at [from, to): its buffer is kept, its state starts afresh. */
static void s3_get_assign(s3_get *g, s3_rstream *rs, uint64_t from, uint64_t to)
{
    rs->cfg = g->cfg;
    rs->t = &g->t;
    rs->uri = g->uri;
    rs->multi = g->multi;
    rs->pos = from;
    rs->end = to;
    rs->size = g->head.size;
    rs->skip = rs->split = rs->wake_ms = 0;
    memcpy(rs->etag, g->head.etag, sizeof rs->etag);   /* every chunk of one version */
    rs->head = rs->tail = 0;
    rs->eof = rs->attempts = 0;
    mr_err_clear(&rs->failed);
}

/* Once the head has stopped at one chunk: chunk c may start when the chunk that held its
 * slot before, c - nslots, has been read, so at most nslots chunks are ever buffered. */
static mr_code s3_get_fill(s3_get *g, mr_err *e)
{
    if (g->head.end == UINT64_MAX) return MR_OK;   /* a single transfer */
    uint64_t size = g->head.size;
    if (!g->slots) {
        g->slots = calloc((size_t)g->nslots, sizeof *g->slots);
        MR_CHECK(g->slots, e, MR_ENOMEM, "out of memory reading %s", g->uri);
        g->nchunks = 1 + (size - g->head.end + g->chunk - 1) / g->chunk;
    }
    while (g->started < g->nchunks && g->started < g->cur + (uint64_t)g->nslots) {
        s3_rstream *rs = s3_get_stream(g, g->started);
        if (!rs->buf) {
            rs->buf = malloc((size_t)g->chunk);
            MR_CHECK(rs->buf, e, MR_ENOMEM, "out of memory reading %s", g->uri);
            rs->cap = (size_t)g->chunk;
        }
        uint64_t from = g->head.end + (g->started - 1) * g->chunk;
        s3_get_assign(g, rs, from, size - from > g->chunk ? from + g->chunk : size);
        g->started++;
    }
    return MR_OK;
}

/* Starts the transfers whose turn or backoff has come; returns the milliseconds until
 * the next one is due (at most 1000). */
static long s3_get_restart(s3_get *g)
{
    uint64_t now = s3_now_ms();
    long wait = 1000;
    for (uint64_t c = g->cur; c < g->started; c++) {
        s3_rstream *rs = s3_get_stream(g, c);
        if (rs->active || rs->eof || rs->failed.code != MR_OK) continue;
        if (rs->wake_ms <= now) s3_rstream_start(rs, &rs->failed);
        else if ((long)(rs->wake_ms - now) < wait) wait = (long)(rs->wake_ms - now);
    }
    return wait;
}

/* Moves bytes on every transfer and settles those that ended. */
static void s3_get_perform(s3_get *g)
{
    int running = 0;
    CURLMcode mc = curl_multi_perform(g->multi, &running);
    if (mc != CURLM_OK) {
        mr_fail(&g->failed, MR_ENET, "S3 GetObject %s: %s", g->uri, curl_multi_strerror(mc));
        return;
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(g->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode cc = m->data.result;   /* m is gone once the handle is removed */
        s3_rstream *rs = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&rs);
        if (rs) s3_rstream_finish(rs, cc, &rs->failed);
    }
}

/* Whether the chunk being read has bytes, an end or an error to report. */
static int s3_get_ready(s3_get *g)
{
    s3_rstream *rs = s3_get_stream(g, g->cur);
    return rs->tail > rs->head || rs->eof || rs->failed.code != MR_OK || g->failed.code != MR_OK;
}

/* One round over every transfer. With block, then waits for the network or the next
 * retry unless the chunk being read has something to report. */
static void s3_get_step(s3_get *g, int block)
{
    s3_get_perform(g);
    if (g->failed.code != MR_OK || s3_get_fill(g, &g->failed) != MR_OK) return;
    long wait = s3_get_restart(g);
    if (block && !s3_get_ready(g)) curl_multi_poll(g->multi, NULL, 0, (int)wait, NULL);
}

static ssize_t s3_get_read(void *ctx, void *buf, size_t n, mr_err *e)
{
    s3_get *g = ctx;
    for (;;) {
        s3_rstream *rs = s3_get_stream(g, g->cur);
        if (rs->tail > rs->head) {
            size_t k = s3_rstream_take(rs, buf, n);
            /* Keep every socket drained while the reader works through the buffer; a
             * failure here is reported when the reader gets to it. */
            s3_get_step(g, 0);
            return (ssize_t)k;
        }
        const mr_err *f = g->failed.code != MR_OK ? &g->failed
                        : rs->failed.code != MR_OK ? &rs->failed : NULL;
        if (f) {
            if (e) *e = *f;
            return -1;
        }
        if (!rs->eof) {
            s3_get_step(g, 1);
            continue;
        }
        if (s3_get_fill(g, &g->failed) != MR_OK) continue;
        if (g->cur + 1 >= g->nchunks) return 0;
        g->cur++;   /* the slot just read takes the next chunk in the next step */
    }
}

static void s3_get_free(s3_get *g)
{
    if (!g) return;
    s3_rstream_release(&g->head);
    for (int i = 0; g->slots && i < g->nslots; i++) s3_rstream_release(&g->slots[i]);
    free(g->slots);
    if (g->multi) curl_multi_cleanup(g->multi);
    s3_cfg_release(g->cfg);
    s3_target_free(&g->t);
    free(g->uri);
    free(g);
}

static void s3_get_close(void *ctx) { s3_get_free(ctx); }

static const stream_ops s3_stream_ops = {s3_get_read, s3_get_close};

/* The head: an open-ended GET at offset, which may split off the rest as chunks. */
static mr_code s3_get_init_head(s3_get *g, uint64_t offset, mr_err *e)
{
    s3_rstream *h = &g->head;
    h->t = &g->t;
    h->uri = g->uri;
    h->multi = g->multi;
    h->cfg = g->cfg;
    h->pos = offset;
    h->end = h->size = UINT64_MAX;
    h->split = g->nslots > 1 ? g->chunk : 0;
    h->cap = S3_STREAM_BUF;
    h->buf = malloc(h->cap);
    MR_CHECK(h->buf, e, MR_ENOMEM, "out of memory opening %s", g->uri);
    /* Start now so that a missing object or bad credentials fail at open, not first read. */
    MR_TRY(s3_rstream_start(h, e));
    while (h->active && !h->checked && h->failed.code == MR_OK && g->failed.code == MR_OK)
        s3_get_step(g, 1);
    const mr_err *f = g->failed.code != MR_OK ? &g->failed : &h->failed;
    if (f->code != MR_OK && e) *e = *f;
    return f->code;
}

static s3_get *s3_get_open(const char *uri, uint64_t offset, mr_err *e)
{
    s3_get *g = calloc(1, sizeof *g);
    MR_CHECK_NULL(g, e, MR_ENOMEM, "out of memory opening %s", uri);
    if (s3_parse_uri(uri, &g->t.bucket, &g->t.key, e) != MR_OK) { free(g); return NULL; }
    g->uri = strdup(uri);
    g->multi = curl_multi_init();
    g->nslots = s3_parallel();
    g->chunk = s3_chunk_size();
    g->nchunks = g->started = 1;
    mr_code rc = !g->uri || !g->multi ? mr_fail(e, MR_ENOMEM, "out of memory opening %s", uri)
               : !g->t.key[0] ? mr_fail(e, MR_EINVAL, "'%s' names a bucket, not an object", uri)
               : MR_OK;
    if (rc == MR_OK && !(g->cfg = s3_cfg_acquire(e))) rc = e ? e->code : MR_EINVAL;
    if (rc == MR_OK) rc = s3_get_init_head(g, offset, e);
    if (rc != MR_OK) {
        s3_get_free(g);
        return NULL;
    }
    return g;
}

stream *s3_open_stream(const char *uri, uint64_t offset, mr_err *e)
{
    s3_get *g = s3_get_open(uri, offset, e);
    if (!g) return NULL;
    stream *s = stream_create(&s3_stream_ops, g, uri);
    if (!s) {
        s3_get_free(g);
        mr_fail(e, MR_ENOMEM, "out of memory opening %s", uri);
    }
    return s;
}

/* ------------------------------------------------------------------------------------
 * Upload sink: one part in memory; PUT when the whole object fits, else multipart. */

typedef struct s3_wsink {
    s3_target t;
    char *uri;
    char *buf;
    size_t len, cap, part_size;
    char *upload_id;
    char **etags;
    int nparts, etags_cap;
    int committed, aborted, failed;
} s3_wsink;

static size_t s3_wsink_part_limit(const s3_wsink *w)
{
    /* Grow parts every 1,000 so that 10,000 parts reach S3's 5 TiB object limit. */
    size_t size = w->part_size;
    for (int k = w->nparts / 1000; k > 0 && size < S3_MAX_PART / 2; k--) size *= 2;
    return size;
}

static mr_code s3_wsink_abort_upload(s3_wsink *w)
{
    if (!w->upload_id) return MR_OK;
    s3_req q = {.op = "AbortMultipartUpload", .method = "DELETE", .bucket = w->t.bucket,
                .key = w->t.key};
    q.query[q.nquery++] = (sigv4_kv){"uploadId", w->upload_id};
    s3_resp r = {0};
    mr_err e = {0};
    mr_code rc = s3_call(&q, &r, &e);
    if (rc != MR_OK && rc != MR_ENOTFOUND)
        fprintf(stderr, "luamr: warning: could not abort the multipart upload of %s: %s\n",
                w->uri, e.msg);
    s3_resp_free(&r);
    free(w->upload_id);
    w->upload_id = NULL;
    return rc;
}

static mr_code s3_wsink_fail(s3_wsink *w, mr_code rc)
{
    w->failed = 1;
    s3_wsink_abort_upload(w);
    return rc;
}

static mr_code s3_wsink_upload_part(s3_wsink *w, mr_err *e)
{
    if (!w->upload_id) {
        s3_req q = {.op = "CreateMultipartUpload", .method = "POST", .bucket = w->t.bucket,
                    .key = w->t.key};
        q.query[q.nquery++] = (sigv4_kv){"uploads", ""};
        s3_resp r = {0};
        mr_code rc = s3_call(&q, &r, e);
        if (rc == MR_OK) {
            char id[1024];
            s3_xml_get(r.body.p ? r.body.p : "", r.body.len, "UploadId", id, sizeof id);
            if (!id[0]) rc = mr_fail(e, MR_EFORMAT, "S3 CreateMultipartUpload %s: no UploadId "
                                     "in the answer", w->uri);
            else if (!(w->upload_id = strdup(id))) rc = mr_fail(e, MR_ENOMEM, "out of memory");
        }
        s3_resp_free(&r);
        if (rc != MR_OK) return s3_wsink_fail(w, rc);
    }
    if (w->nparts >= S3_MAX_PARTS)
        return s3_wsink_fail(w, mr_fail(e, MR_ELIMIT, "S3 upload %s: more than %d parts",
                                        w->uri, S3_MAX_PARTS));
    if (w->nparts == w->etags_cap) {
        int cap = w->etags_cap ? w->etags_cap * 2 : 64;
        char **p = realloc(w->etags, (size_t)cap * sizeof *p);
        if (!p) return s3_wsink_fail(w, mr_fail(e, MR_ENOMEM, "out of memory"));
        w->etags = p;
        w->etags_cap = cap;
    }
    char num[16];
    snprintf(num, sizeof num, "%d", w->nparts + 1);
    s3_req q = {.op = "UploadPart", .method = "PUT", .bucket = w->t.bucket, .key = w->t.key,
                .body = w->buf, .body_len = w->len};
    q.query[q.nquery++] = (sigv4_kv){"partNumber", num};
    q.query[q.nquery++] = (sigv4_kv){"uploadId", w->upload_id};
    s3_resp r = {0};
    mr_code rc = s3_call(&q, &r, e);
    if (rc == MR_OK && !r.etag[0])
        rc = mr_fail(e, MR_EFORMAT, "S3 UploadPart %s part %s: no ETag in the answer", w->uri, num);
    if (rc == MR_OK && !(w->etags[w->nparts] = strdup(r.etag)))
        rc = mr_fail(e, MR_ENOMEM, "out of memory");
    s3_resp_free(&r);
    if (rc != MR_OK) return s3_wsink_fail(w, rc);
    w->nparts++;
    w->len = 0;
    return MR_OK;
}

static mr_code s3_wsink_write(void *ctx, const void *data, size_t n, mr_err *e)
{
    s3_wsink *w = ctx;
    const char *p = data;
    MR_CHECK(!w->failed && !w->committed && !w->aborted, e, MR_EINVAL,
             "S3 upload %s: write after %s", w->uri,
             w->failed ? "a failure" : w->committed ? "commit" : "abort");
    while (n > 0) {
        size_t limit = s3_wsink_part_limit(w);
        /* A full part goes out only when more bytes follow, so an object of exactly one
         * part is still a single PUT. */
        if (w->len == limit) MR_TRY(s3_wsink_upload_part(w, e));
        if (w->len == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 64 * 1024;
            while (cap < w->len + 1) cap *= 2;
            if (cap > limit) cap = limit;
            char *b = realloc(w->buf, cap);
            if (!b) return s3_wsink_fail(w, mr_fail(e, MR_ENOMEM, "out of memory buffering %s", w->uri));
            w->buf = b;
            w->cap = cap;
        }
        size_t room = (w->cap < limit ? w->cap : limit) - w->len;
        size_t k = n < room ? n : room;
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
    }
    return MR_OK;
}

static mr_code s3_wsink_commit(void *ctx, mr_err *e)
{
    s3_wsink *w = ctx;
    MR_CHECK(!w->failed && !w->aborted, e, MR_EINVAL, "S3 upload %s: commit after %s", w->uri,
             w->failed ? "a failure" : "abort");
    if (w->committed) return MR_OK;
    if (!w->upload_id) {
        MR_TRY(s3_put_bytes(w->t.bucket, w->t.key, w->buf, w->len, e));
        w->committed = 1;
        return MR_OK;
    }
    if (w->len > 0) MR_TRY(s3_wsink_upload_part(w, e));
    s3_buf xml = {0};
    s3_buf_str(&xml, "<CompleteMultipartUpload>");
    for (int i = 0; i < w->nparts; i++) {
        char part[64];
        snprintf(part, sizeof part, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
        s3_buf_str(&xml, part);
        s3_buf_str(&xml, w->etags[i]);
        s3_buf_str(&xml, "</ETag></Part>");
    }
    s3_buf_str(&xml, "</CompleteMultipartUpload>");
    if (!xml.p) return s3_wsink_fail(w, mr_fail(e, MR_ENOMEM, "out of memory"));
    s3_req q = {.op = "CompleteMultipartUpload", .method = "POST", .bucket = w->t.bucket,
                .key = w->t.key, .body = xml.p, .body_len = xml.len, .check_body_error = 1,
                .content_type = "application/xml"};
    q.query[q.nquery++] = (sigv4_kv){"uploadId", w->upload_id};
    s3_resp r = {0};
    mr_code rc = s3_call(&q, &r, e);
    s3_resp_free(&r);
    free(xml.p);
    if (rc != MR_OK) return s3_wsink_fail(w, rc);
    free(w->upload_id);
    w->upload_id = NULL;
    w->committed = 1;
    return MR_OK;
}

static void s3_wsink_abort(void *ctx)
{
    s3_wsink *w = ctx;
    if (w->committed || w->aborted) return;
    w->aborted = 1;
    s3_wsink_abort_upload(w);
}

static void s3_wsink_free(void *ctx)
{
    s3_wsink *w = ctx;
    if (!w) return;
    s3_wsink_abort(w);
    for (int i = 0; i < w->nparts; i++) free(w->etags[i]);
    free(w->etags);
    free(w->buf);
    free(w->uri);
    s3_target_free(&w->t);
    free(w);
}

static const sink_ops s3_sink_ops = {s3_wsink_write, s3_wsink_commit, s3_wsink_abort, s3_wsink_free};

static s3_wsink *s3_wsink_create(const char *uri, mr_err *e)
{
    s3_wsink *w = calloc(1, sizeof *w);
    MR_CHECK_NULL(w, e, MR_ENOMEM, "out of memory opening %s", uri);
    if (s3_parse_uri(uri, &w->t.bucket, &w->t.key, e) != MR_OK) { free(w); return NULL; }
    w->uri = strdup(uri);
    w->part_size = s3_part_size();
    if (!w->uri || !w->t.key[0]) {
        int nokey = w->uri && !w->t.key[0];
        s3_wsink_free(w);
        if (nokey) mr_fail(e, MR_EINVAL, "'%s': no object key to write to", uri);
        else mr_fail(e, MR_ENOMEM, "out of memory opening %s", uri);
        return NULL;
    }
    return w;
}

sink *s3_open_sink(const char *uri, mr_err *e)
{
    s3_wsink *w = s3_wsink_create(uri, e);
    if (!w) return NULL;
    sink *s = sink_create(&s3_sink_ops, w, uri);
    if (!s) {
        s3_wsink_free(w);
        mr_fail(e, MR_ENOMEM, "out of memory opening %s", uri);
    }
    return s;
}

/* ------------------------------------------------------------------------------------
 * Files, storage and registration */

mr_code s3_put_file(const char *local_path, const char *uri, mr_err *e)
{
    FILE *f = fopen(local_path, "rb");
    MR_CHECK(f, e, MR_EIO, "cannot open %s to upload to %s: %s", local_path, uri, strerror(errno));
    s3_wsink *w = s3_wsink_create(uri, e);
    char *chunk = malloc(1 << 20);
    mr_code rc = w && chunk ? MR_OK : (w ? mr_fail(e, MR_ENOMEM, "out of memory") : MR_EINVAL);
    if (!w && e) rc = e->code;
    size_t n;
    while (rc == MR_OK && (n = fread(chunk, 1, 1 << 20, f)) > 0) rc = s3_wsink_write(w, chunk, n, e);
    if (rc == MR_OK && ferror(f))
        rc = mr_fail(e, MR_EIO, "reading %s to upload to %s: %s", local_path, uri, strerror(errno));
    if (rc == MR_OK) rc = s3_wsink_commit(w, e);
    fclose(f);
    free(chunk);
    s3_wsink_free(w);
    return rc;
}

mr_code s3_get_file(const char *uri, const char *local_path, mr_err *e)
{
    size_t plen = strlen(local_path) + 32;
    char *tmp = malloc(plen);
    MR_CHECK(tmp, e, MR_ENOMEM, "out of memory");
    snprintf(tmp, plen, "%s.tmp-%d", local_path, (int)getpid());
    s3_get *g = s3_get_open(uri, 0, e);
    if (!g) { free(tmp); return e ? e->code : MR_EIO; }
    FILE *f = fopen(tmp, "wb");
    mr_code rc = f ? MR_OK : mr_fail(e, MR_EIO, "cannot create %s: %s", tmp, strerror(errno));
    char *chunk = malloc(1 << 20);
    if (rc == MR_OK && !chunk) rc = mr_fail(e, MR_ENOMEM, "out of memory");
    while (rc == MR_OK) {
        ssize_t n = s3_get_read(g, chunk, 1 << 20, e);
        if (n < 0) rc = e ? e->code : MR_EIO;
        if (n <= 0) break;
        if (fwrite(chunk, 1, (size_t)n, f) != (size_t)n)
            rc = mr_fail(e, MR_EIO, "writing %s: %s", tmp, strerror(errno));
    }
    if (f && fclose(f) != 0 && rc == MR_OK) rc = mr_fail(e, MR_EIO, "writing %s: %s", tmp, strerror(errno));
    if (rc == MR_OK && rename(tmp, local_path) != 0)
        rc = mr_fail(e, MR_EIO, "renaming %s to %s: %s", tmp, local_path, strerror(errno));
    if (rc != MR_OK) unlink(tmp);
    free(chunk);
    free(tmp);
    s3_get_free(g);
    return rc;
}

static const storage_ops s3_storage_ops = {s3_list, s3_delete, s3_stat, s3_put_file, s3_get_file};

void s3_register(void)
{
    pthread_once(&s3_once, s3_global_init);
    stream_register_scheme("s3", s3_open_stream);
    sink_register_scheme("s3", s3_open_sink);
    storage_register_scheme("s3", &s3_storage_ops);
}
