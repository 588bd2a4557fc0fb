/* testsrv: a small HTTP/1.1 server on 127.0.0.1 for the Lambda unit tests, playing the
 * Runtime API or the Invoke API. One thread per connection (keep-alive honoured), each
 * request handed to a callback that may sleep to hold it in flight. Header-only: included
 * by tests/unit/test_lambda_*.c. Depends on POSIX sockets and pthreads. */
#ifndef LUAMR_TESTS_LAMBDA_TESTSRV_H
#define LUAMR_TESTS_LAMBDA_TESTSRV_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct testsrv_request {
    char method[16];
    char path[1024];       /* as sent (percent-encoded) */
    char headers[8192];    /* "name: value\r\n" lines as received */
    char *body;            /* NUL-terminated */
    size_t body_len;
} testsrv_request;

typedef struct testsrv_reply {
    int status;
    char headers[8192];    /* extra "name: value\r\n" lines */
    char *body;            /* malloc'd or NULL; the server frees it */
} testsrv_reply;

typedef struct testsrv testsrv;
typedef void (*testsrv_handler)(testsrv *s, const testsrv_request *req, testsrv_reply *rep);

struct testsrv {
    int fd, port;
    pthread_t thread;
    testsrv_handler handler;
    void *ud;
    pthread_mutex_t mu;    /* for the handler's own bookkeeping */
    int stopping, conns;
};

/* A header's value (trimmed) into dst; 1 when present. */
static inline int testsrv_header(const testsrv_request *r, const char *name, char *dst, size_t n)
{
    size_t k = strlen(name);
    for (const char *line = r->headers; *line;) {
        const char *eol = strstr(line, "\r\n");
        if (!eol) break;
        if ((size_t)(eol - line) > k && line[k] == ':' && strncasecmp(line, name, k) == 0) {
            const char *v = line + k + 1;
            while (*v == ' ') v++;
            size_t len = (size_t)(eol - v);
            if (len >= n) len = n - 1;
            memcpy(dst, v, len);
            dst[len] = '\0';
            return 1;
        }
        line = eol + 2;
    }
    if (n) dst[0] = '\0';
    return 0;
}

static inline int testsrv_read_request(int fd, char *buf, size_t cap, size_t *have, testsrv_request *r)
{
    char *end;
    while (!(buf[*have] = '\0', end = strstr(buf, "\r\n\r\n"))) {
        if (*have + 1 >= cap) return -1;
        ssize_t n = recv(fd, buf + *have, cap - 1 - *have, 0);
        if (n <= 0) return -1;
        *have += (size_t)n;
    }
    size_t head = (size_t)(end - buf) + 4;
    memset(r, 0, sizeof *r);
    if (sscanf(buf, "%15s %1023s", r->method, r->path) != 2) return -1;
    const char *hs = strstr(buf, "\r\n") + 2;
    size_t hl = head - 2 - (size_t)(hs - buf);
    if (hl >= sizeof r->headers) hl = sizeof r->headers - 1;
    memcpy(r->headers, hs, hl);
    r->headers[hl] = '\0';
    char cl[32];
    size_t len = testsrv_header(r, "Content-Length", cl, sizeof cl) ? (size_t)atol(cl) : 0;
    r->body = malloc(len + 1);
    size_t got = *have - head < len ? *have - head : len;
    memcpy(r->body, buf + head, got);
    while (got < len) {
        ssize_t n = recv(fd, r->body + got, len - got, 0);
        if (n <= 0) {
            free(r->body);
            r->body = NULL;
            return -1;
        }
        got += (size_t)n;
    }
    r->body[len] = '\0';
    r->body_len = len;
    size_t used = head + (len < *have - head ? len : *have - head);
    memmove(buf, buf + used, *have - used);
    *have -= used;
    return 0;
}

static inline const char *testsrv_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    default: return "Status";
    }
}

typedef struct testsrv_conn {
    testsrv *s;
    int fd;
} testsrv_conn;

static inline void *testsrv_conn_main(void *arg)
{
    testsrv_conn *c = arg;
    char *buf = malloc(65536);
    size_t have = 0;
    testsrv_request req;
    while (testsrv_read_request(c->fd, buf, 65536, &have, &req) == 0) {
        testsrv_reply rep;
        memset(&rep, 0, sizeof rep);
        rep.status = 200;
        c->s->handler(c->s, &req, &rep);
        size_t blen = rep.body ? strlen(rep.body) : 0;
        char head[9000];
        int hn = snprintf(head, sizeof head,
                          "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nContent-Type: application/json\r\n%s\r\n",
                          rep.status, testsrv_reason(rep.status), blen, rep.headers);
        int ok = send(c->fd, head, (size_t)hn, MSG_NOSIGNAL) == hn &&
                 (blen == 0 || send(c->fd, rep.body, blen, MSG_NOSIGNAL) == (ssize_t)blen);
        free(rep.body);
        free(req.body);
        if (!ok) break;
    }
    free(buf);
    close(c->fd);
    pthread_mutex_lock(&c->s->mu);
    c->s->conns--;
    pthread_mutex_unlock(&c->s->mu);
    free(c);
    return NULL;
}

static inline void *testsrv_accept_main(void *arg)
{
    testsrv *s = arg;
    for (;;) {
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0) break;
        pthread_mutex_lock(&s->mu);
        int stop = s->stopping;
        if (!stop) s->conns++;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            close(fd);
            break;
        }
        testsrv_conn *c = malloc(sizeof *c);
        c->s = s;
        c->fd = fd;
        pthread_t t;
        pthread_create(&t, NULL, testsrv_conn_main, c);
        pthread_detach(t);
    }
    return NULL;
}

/* Listens on a free port of 127.0.0.1; NULL on failure. */
static inline testsrv *testsrv_start(testsrv_handler handler, void *ud)
{
    testsrv *s = calloc(1, sizeof *s);
    s->handler = handler;
    s->ud = ud;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->fd, 128) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &al) != 0) {
        close(s->fd);
        free(s);
        return NULL;
    }
    s->port = ntohs(a.sin_port);
    pthread_create(&s->thread, NULL, testsrv_accept_main, s);
    return s;
}

/* Stops accepting and waits (up to 5 s) for open connections to end: clients must have
 * closed theirs (curl handles freed) first. */
static inline void testsrv_stop(testsrv *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&s->mu);
        int n = s->conns;
        pthread_mutex_unlock(&s->mu);
        if (n == 0) break;
        usleep(10000);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

#endif
