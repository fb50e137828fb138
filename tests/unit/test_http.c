/* Tests for hub_http: a real server on 127.0.0.1 (ephemeral port) on a
 * libuv loop in the test's main thread, and a client thread that talks to
 * it over plain blocking sockets. The client thread records its first
 * failure; the main thread asserts after the loop has closed cleanly. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "hub_error.h"
#include "hub_http.h"
#include "tkloop.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "s3cret-token"
#define BIG_BODY_LEN (256u * 1024u)

/* ---- harness ---------------------------------------------------------- */

typedef struct harness harness_t;
typedef void (*scenario_fn)(harness_t *h);

struct harness {
    uv_loop_t loop;
    hub_http_server_t *server;
    uv_async_t wake;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool want_stats, stats_ready, done, closed_called;
    hub_http_stats_t stats;       /* the last snapshot taken for the client */
    hub_http_stats_t final_stats; /* taken when the client finished */
    int port;
    scenario_fn scenario;
    char failure[1024];
};

static void on_wake(uv_async_t *async)
{
    harness_t *h = async->data;
    pthread_mutex_lock(&h->mu);
    if (h->want_stats) {
        hub_http_stats(h->server, &h->stats);
        h->want_stats = false;
        h->stats_ready = true;
        pthread_cond_broadcast(&h->cond);
    }
    bool done = h->done;
    pthread_mutex_unlock(&h->mu);
    if (done) {
        hub_http_stats(h->server, &h->final_stats);
        int rc = hub_http_close(h->server, tk_set_flag, &h->closed_called);
        if (rc == HUB_ECLOSED) /* a handler closed it already */
            h->closed_called = true;
        uv_close((uv_handle_t *)&h->wake, NULL);
    }
}

/* From the client thread: a copy of the server's counters, read on the
 * loop thread. */
static hub_http_stats_t snapshot(harness_t *h)
{
    pthread_mutex_lock(&h->mu);
    h->want_stats = true;
    h->stats_ready = false;
    uv_async_send(&h->wake);
    while (!h->stats_ready)
        pthread_cond_wait(&h->cond, &h->mu);
    hub_http_stats_t s = h->stats;
    pthread_mutex_unlock(&h->mu);
    return s;
}

static void *client_main(void *arg)
{
    harness_t *h = arg;
    h->scenario(h);
    pthread_mutex_lock(&h->mu);
    h->done = true;
    pthread_mutex_unlock(&h->mu);
    uv_async_send(&h->wake);
    return NULL;
}

static void echo_handler(const hub_http_request_t *req, hub_http_response_t *resp, void *user);

/* Runs scenario against a fresh server with cfg, then closes everything
 * and checks that the loop closes. Returns the final counters. */
static hub_http_stats_t run_scenario(const hub_http_config_t *cfg, scenario_fn scenario)
{
    harness_t *h = calloc(1, sizeof *h);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(uv_loop_init(&h->loop), 0);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cond, NULL);
    ck_assert_int_eq(hub_http_new(&h->loop, cfg, echo_handler, h, &h->server), 0);
    ck_assert_int_eq(hub_http_listen(h->server, "127.0.0.1", 0), 0);
    h->port = hub_http_port(h->server);
    ck_assert_int_gt(h->port, 0);
    h->scenario = scenario;
    tk_loop_with_client(&h->loop, &h->wake, on_wake, client_main, h);
    ck_assert_msg(h->closed_called, "the server's close callback did not run");
    hub_http_destroy(&h->server);
    ck_assert_ptr_null(h->server);
    ck_assert_int_eq(uv_loop_close(&h->loop), 0);
    ck_assert_msg(h->failure[0] == '\0', "client: %s", h->failure);
    hub_http_stats_t stats = h->final_stats;
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cond);
    free(h);
    return stats;
}

/* ---- the handler under test ------------------------------------------ */

static void json_str(char *out, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

static void echo_handler(const hub_http_request_t *req, hub_http_response_t *resp, void *user)
{
    harness_t *h = user;
    if (strcmp(req->path, "/big") == 0) {
        char *big = malloc(BIG_BODY_LEN);
        memset(big, 'x', BIG_BODY_LEN);
        hub_http_respond(resp, 200, "text/plain", big, BIG_BODY_LEN);
        free(big);
        return;
    }
    if (strcmp(req->path, "/auth") == 0) {
        if (!hub_http_token_ok(req, TOKEN)) {
            hub_http_respond_json_error(resp, 401, "a valid bearer token is required");
            hub_http_response_header(resp, "WWW-Authenticate", "Bearer");
            return;
        }
        hub_http_respond(resp, 200, "text/plain", "welcome", 7);
        return;
    }
    if (strcmp(req->path, "/noresp") == 0)
        return;
    if (strcmp(req->path, "/err") == 0) {
        hub_http_respond_json_error(resp, 409, "bad \"x\"\n\\ \x01 Nguy\xe1\xbb\x85n \xff!");
        return;
    }
    if (strcmp(req->path, "/shutdown") == 0) {
        hub_http_close(h->server, tk_set_flag, &h->closed_called);
        return;
    }
    if (strcmp(req->path, "/api-checks") == 0) {
        const char *bad = NULL;
        if (hub_http_respond(resp, 99, NULL, "", 0) != HUB_EINVAL)
            bad = "status 99 accepted";
        else if (hub_http_respond(resp, 200, "text/plain\r\nX-Evil: 1", "", 0) != HUB_EINVAL)
            bad = "CRLF in content type accepted";
        else if (hub_http_response_header(resp, "Content-Length", "5") != HUB_EINVAL)
            bad = "reserved header accepted";
        else if (hub_http_response_header(resp, "X-Ok", "a\r\nX-Evil: 1") != HUB_EINVAL)
            bad = "CRLF in header value accepted";
        else if (hub_http_response_header(resp, "Bad Name", "v") != HUB_EINVAL)
            bad = "space in header name accepted";
        else if (hub_http_response_header(resp, "X-Request-Kind", "checks") != 0)
            bad = "valid header refused";
        const char *text = bad ? bad : "ok";
        hub_http_respond(resp, bad ? 500 : 200, "text/plain", text, strlen(text));
        return;
    }
    char name[256], path[512], query[512], body[2048], token[256], ctype[256], out[4096];
    int rc = hub_http_query_get(req->query, "name", name, sizeof name);
    if (rc != 0)
        snprintf(name, sizeof name, "<%d>", rc);
    json_str(path, sizeof path, req->path, strlen(req->path));
    json_str(query, sizeof query, req->query, strlen(req->query));
    json_str(body, sizeof body, req->body, req->body_len);
    if (req->bearer_token)
        json_str(token, sizeof token, req->bearer_token, strlen(req->bearer_token));
    else
        strcpy(token, "null");
    if (req->content_type)
        json_str(ctype, sizeof ctype, req->content_type, strlen(req->content_type));
    else
        strcpy(ctype, "null");
    char name_json[300];
    json_str(name_json, sizeof name_json, name, strlen(name));
    int n = snprintf(out, sizeof out,
                     "{\"method\":\"%s\",\"path\":%s,\"query\":%s,\"name\":%s,\"token\":%s,"
                     "\"content_type\":%s,\"body\":%s}",
                     req->method, path, query, name_json, token, ctype, body);
    hub_http_respond(resp, 200, "application/json", out, (size_t)n);
}

/* ---- a blocking client ------------------------------------------------ */

typedef struct {
    int fd;
    char *buf; /* bytes received and not yet consumed */
    size_t len, cap;
} client_t;

typedef struct {
    int status;   /* 0 when no complete response came */
    char head[8192];
    char *body;   /* malloc'ed, NUL-terminated */
    size_t body_len;
    bool conn_close;
} response_t;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Connects to the server on port, with a receive buffer of rcvbuf bytes
 * (0: the default) and from the address source (NULL: the kernel's choice;
 * e.g. "127.0.0.2", as Linux answers every 127.0.0.0/8 address: another
 * client, for the per-address limit). */
static int client_open_ex(client_t *c, int port, int rcvbuf, const char *source)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in src = {.sin_family = AF_INET};
    if (source)
        inet_pton(AF_INET, source, &src.sin_addr);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((source && bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) ||
        connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->cap = 1 << 16;
    c->buf = malloc(c->cap);
    return 0;
}

static int client_open(client_t *c, int port, int rcvbuf)
{
    return client_open_ex(c, port, rcvbuf, NULL);
}

static int client_open_from(client_t *c, int port, const char *source)
{
    return client_open_ex(c, port, 0, source);
}

static void client_close(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
}

static bool client_send(client_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool client_sends(client_t *c, const char *text)
{
    return client_send(c, text, strlen(text));
}

/* Reads more bytes; returns the count, 0 on EOF, -1 on error or timeout. */
static ssize_t client_fill(client_t *c)
{
    if (c->cap - c->len < 4096) {
        c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
        }
        return n;
    }
}

/* Reads one response (head plus Content-Length bytes). */
static void client_response(client_t *c, response_t *r)
{
    memset(r, 0, sizeof *r);
    char *end;
    while (!(c->buf && c->len && (end = memmem(c->buf, c->len, "\r\n\r\n", 4)))) {
        if (client_fill(c) <= 0)
            return;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (head_len >= sizeof r->head)
        return;
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    size_t clen = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    if (cl)
        clen = strtoul(cl + 17, NULL, 10);
    r->conn_close = strcasestr(r->head, "\r\nConnection: close\r\n") != NULL;
    while (c->len < head_len + clen) {
        if (client_fill(c) <= 0)
            return;
    }
    r->body = malloc(clen + 1);
    memcpy(r->body, c->buf + head_len, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    memmove(c->buf, c->buf + head_len + clen, c->len - head_len - clen);
    c->len -= head_len + clen;
    sscanf(r->head, "HTTP/1.1 %d", &r->status);
}

/* Sends request on c and reads the response into r; false if it could not
 * be sent. */
static bool client_ask(client_t *c, const char *request, response_t *r)
{
    if (!client_sends(c, request))
        return false;
    client_response(c, r);
    return true;
}

static void response_free(response_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* Waits for the server to close: true on EOF or reset (buffered bytes are
 * kept), false if the connection is still open after 5 s. */
static bool client_wait_closed(client_t *c)
{
    for (;;) {
        ssize_t n = client_fill(c);
        if (n == 0)
            return true;
        if (n < 0)
            return errno == ECONNRESET;
    }
}

static bool has_header(const response_t *r, const char *line)
{
    char needle[256];
    snprintf(needle, sizeof needle, "\r\n%s\r\n", line);
    return strcasestr(r->head, needle) != NULL;
}

/* One request on a fresh connection; the response goes to r. */
static bool roundtrip(harness_t *h, const char *request, response_t *r)
{
    client_t c;
    if (client_open(&c, h->port, 0) != 0)
        return false;
    bool ok = client_ask(&c, request, r);
    client_close(&c);
    return ok;
}

/* ---- scenarios -------------------------------------------------------- */

static void sc_get_query(harness_t *h)
{
    response_t r;
    TK_CHECK(h, roundtrip(h,
                          "GET /echo/a%2Fb?name=Nguy%E1%BB%85n+V%C4%83n&x=1 HTTP/1.1\r\n"
                          "Host: 127.0.0.1\r\nConnection: close\r\n\r\n",
                          &r));
    TK_CHECK(h, r.status == 200, "status %d", r.status);
    TK_CHECK(h, has_header(&r, "Content-Type: application/json"), "%s", r.head);
    TK_CHECK(h, has_header(&r, "Cache-Control: no-store"), "%s", r.head);
    TK_CHECK(h, has_header(&r, "X-Content-Type-Options: nosniff"), "%s", r.head);
    TK_CHECK(h, has_header(&r, "Connection: close"), "%s", r.head);
    const char *want = "{\"method\":\"GET\",\"path\":\"/echo/a%2Fb\","
                       "\"query\":\"name=Nguy%E1%BB%85n+V%C4%83n&x=1\","
                       "\"name\":\"Nguy\xe1\xbb\x85n V\xc4\x83n\",\"token\":null,"
                       "\"content_type\":null,\"body\":\"\"}";
    TK_CHECK(h, strcmp(r.body, want) == 0, "body %s", r.body);
    response_free(&r);
}

static void sc_post_body(harness_t *h)
{
    response_t r;
    TK_CHECK(h, roundtrip(h,
                          "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Authorization: Bearer abc.def\r\nContent-Length: 15\r\n\r\n"
                          "{\"ma_hs\":\"H1\"}\n",
                          &r));
    TK_CHECK(h, r.status == 200, "status %d", r.status);
    const char *want = "{\"method\":\"POST\",\"path\":\"/submit\",\"query\":\"\","
                       "\"name\":\"<-17>\","
                       "\"token\":\"abc.def\",\"content_type\":\"application/json\","
                       "\"body\":\"{\\\"ma_hs\\\":\\\"H1\\\"}\\u000a\"}";
    TK_CHECK(h, strcmp(r.body, want) == 0, "body %s", r.body);
    TK_CHECK(h, !r.conn_close, "%s", r.head);
    response_free(&r);
}

static void sc_keep_alive(harness_t *h)
{
    client_t c;
    response_t r;
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    TK_CHECK(h, client_ask(&c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n", &r));
    TK_CHECK(h, r.status == 200 && !r.conn_close, "%s", r.head);
    TK_CHECK(h, strstr(r.body, "\"/one\""), "%s", r.body);
    response_free(&r);
    TK_CHECK(h, client_ask(&c, "GET /two HTTP/1.1\r\nHost: x\r\n\r\n", &r));
    TK_CHECK(h, r.status == 200 && !r.conn_close, "%s", r.head);
    TK_CHECK(h, strstr(r.body, "\"/two\""), "%s", r.body);
    response_free(&r);
    /* Two pipelined in one write, answered in order; the second closes. */
    TK_CHECK(h, client_ask(&c,
                           "GET /three HTTP/1.1\r\nHost: x\r\n\r\n"
                           "HEAD /four HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                           &r));
    TK_CHECK(h, r.status == 200 && strstr(r.body, "\"/three\""), "%s", r.head);
    response_free(&r);
    /* HEAD: the length of the body that GET would send, but no body. */
    char *end = NULL;
    while (!(c.len && (end = memmem(c.buf, c.len, "\r\n\r\n", 4))))
        TK_CHECK(h, client_fill(&c) > 0);
    TK_CHECK(h, strncmp(c.buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", c.buf);
    TK_CHECK(h, strcasestr(c.buf, "\r\nConnection: close\r\n"), "%s", c.buf);
    const char *cl = strcasestr(c.buf, "\r\nContent-Length: ");
    TK_CHECK(h, cl && strtoul(cl + 18, NULL, 10) > 50, "%s", c.buf);
    size_t head_len = (size_t)(end - c.buf) + 4;
    TK_CHECK(h, client_wait_closed(&c));
    TK_CHECK(h, c.len == head_len, "HEAD response carried %zu body bytes", c.len - head_len);
    client_close(&c);
    hub_http_stats_t s = snapshot(h);
    TK_CHECK(h, s.requests == 4, "requests %llu", (unsigned long long)s.requests);
}

static void sc_http10(harness_t *h)
{
    client_t c;
    response_t r;
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    TK_CHECK(h, client_ask(&c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r));
    TK_CHECK(h, r.status == 200 && has_header(&r, "Connection: keep-alive"), "%s", r.head);
    response_free(&r);
    TK_CHECK(h, client_ask(&c, "GET /b HTTP/1.0\r\n\r\n", &r));
    TK_CHECK(h, r.status == 200 && r.conn_close, "%s", r.head);
    response_free(&r);
    TK_CHECK(h, client_wait_closed(&c), "HTTP/1.0 without keep-alive must close");
    client_close(&c);
}

static void sc_tokens(harness_t *h)
{
    static const struct {
        const char *auth; /* Authorization header line, or "" */
        int status;
    } cases[] = {
        {"", 401},
        {"Authorization: Bearer wrong\r\n", 401},
        {"Authorization: Bearer s3cret-token-longer\r\n", 401},
        {"Authorization: Bearer s3cret-toke\r\n", 401},
        {"Authorization: Basic czNjcmV0LXRva2Vu\r\n", 401},
        {"Authorization: Bearer\r\n", 401},
        {"Authorization: Bearer " TOKEN "\r\n", 200},
        {"Authorization: bearer   " TOKEN "  \r\n", 200},
        {"Authorization: Bearer " TOKEN "\r\nAuthorization: Bearer x\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[512];
        snprintf(req, sizeof req, "GET /auth HTTP/1.1\r\nHost: x\r\n%s\r\n", cases[i].auth);
        response_t r;
        TK_CHECK(h, roundtrip(h, req, &r));
        TK_CHECK(h, r.status == cases[i].status, "case %zu: status %d", i, r.status);
        if (r.status == 401)
            TK_CHECK(h, has_header(&r, "WWW-Authenticate: Bearer"), "%s", r.head);
        if (r.status == 200)
            TK_CHECK(h, strcmp(r.body, "welcome") == 0);
        response_free(&r);
    }
}

/* Sends request, expects `status` with Connection: close, then the close.
 * json: the body is our {"error": ...}; the few refusals libmicrohttpd
 * writes itself (malformed header lines, HTTP/2, a header section beyond
 * its memory) have its short HTML body instead. */
static void expect_refused(harness_t *h, const char *request, size_t len, int status, bool json)
{
    client_t c;
    response_t r;
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    TK_CHECK(h, client_send(&c, request, len));
    client_response(&c, &r);
    TK_CHECK(h, r.status == status, "want %d, got %d: %s", status, r.status, r.head);
    TK_CHECK(h, r.conn_close, "%s", r.head);
    if (json) {
        TK_CHECK(h, has_header(&r, "Content-Type: application/json"), "%s", r.head);
        TK_CHECK(h, strncmp(r.body, "{\"error\":\"", 10) == 0, "%s", r.body);
    }
    response_free(&r);
    TK_CHECK(h, client_wait_closed(&c), "connection still open after %d", status);
    client_close(&c);
}

static void expect_rejected(harness_t *h, const char *request, size_t len, int status)
{
    expect_refused(h, request, len, status, true);
}

/* After each abuse the server still answers a normal request. */
static void expect_healthy(harness_t *h)
{
    response_t r;
    TK_CHECK(h, roundtrip(h, "GET /still-ok HTTP/1.1\r\nHost: x\r\n\r\n", &r));
    TK_CHECK(h, r.status == 200, "server no longer answers: %d", r.status);
    response_free(&r);
}

static void sc_oversize_headers(harness_t *h)
{
    size_t pad = 20 * 1024;
    char *req = malloc(pad + 256);
    int n = sprintf(req, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    memset(req + n, 'a', pad);
    strcpy(req + n + pad, "\r\n\r\n");
    expect_rejected(h, req, strlen(req), 431);
    /* Many small headers add up just the same (beyond libmicrohttpd's
     * memory for a connection: its answer). */
    size_t off = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
    for (int i = 0; off + 32 < pad; i++)
        off += (size_t)sprintf(req + off, "X-%d: v\r\n", i);
    strcpy(req + off, "\r\n");
    expect_refused(h, req, strlen(req), 431, false);
    /* A long request target too. */
    off = (size_t)sprintf(req, "GET /");
    memset(req + off, 'p', pad);
    strcpy(req + off + pad, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_rejected(h, req, strlen(req), 431);
    /* Refusing a HEAD request: the head only, then the close. */
    n = sprintf(req, "HEAD / HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    memset(req + n, 'a', pad);
    strcpy(req + n + pad, "\r\n\r\n");
    client_t c;
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    TK_CHECK(h, client_sends(&c, req));
    TK_CHECK(h, client_wait_closed(&c));
    TK_CHECK(h, c.len > 20 && strncmp(c.buf, "HTTP/1.1 431 ", 13) == 0, "%s", c.buf);
    TK_CHECK(h, strcmp(c.buf + c.len - 4, "\r\n\r\n") == 0, "HEAD got a body: %s", c.buf);
    client_close(&c);
    free(req);
    expect_healthy(h);
    hub_http_stats_t s = snapshot(h);
    TK_CHECK(h, s.bad_requests == 4, "bad_requests %llu", (unsigned long long)s.bad_requests);
}

static void sc_oversize_body(harness_t *h)
{
    /* Declared too large: refused before any body byte is read. */
    const char *req = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n";
    expect_rejected(h, req, strlen(req), 413);
    /* Declared too large and sent anyway: the client still reads the 413. */
    size_t body = 2000000;
    char *full = malloc(body + 128);
    int n = sprintf(full, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", body);
    memset(full + n, 'b', body);
    expect_rejected(h, full, (size_t)n + body, 413);
    free(full);
    /* Exactly at the limit is fine. */
    size_t limit = 64 * 1024;
    full = malloc(limit + 128);
    n = sprintf(full, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", limit);
    memset(full + n, 'b', limit);
    client_t c;
    response_t r;
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    TK_CHECK(h, client_send(&c, full, (size_t)n + limit));
    free(full);
    client_response(&c, &r);
    TK_CHECK(h, r.status == 200, "at the limit: %d", r.status);
    response_free(&r);
    client_close(&c);
    /* Chunked bodies are refused with 411. */
    req = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n0\r\n\r\n";
    expect_rejected(h, req, strlen(req), 411);
    expect_healthy(h);
}

static void sc_garbage(harness_t *h)
{
    static const char tls_hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
    expect_rejected(h, tls_hello, sizeof tls_hello - 1, 400);
    const char *bad_header = "GET / HTTP/1.1\r\nHost x\r\n\r\n";
    expect_refused(h, bad_header, strlen(bad_header), 400, false);
    const char *two_lengths = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    expect_rejected(h, two_lengths, strlen(two_lengths), 400);
    const char *http2 = "GET / HTTP/2.0\r\nHost: x\r\n\r\n";
    expect_rejected(h, http2, strlen(http2), 505);
    expect_healthy(h);
    hub_http_stats_t s = snapshot(h);
    TK_CHECK(h, s.bad_requests == 4, "bad_requests %llu", (unsigned long long)s.bad_requests);
}

/* A client trickles a header byte every 50 ms: the server must close it
 * (408) at the header deadline, which the trickle does not move. */
static void trickled_header_closed(harness_t *h)
{
    client_t c;
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    double start = now_ms();
    TK_CHECK(h, client_sends(&c, "GET /slow HTTP/1.1\r\nHost: x\r\n"));
    bool closed = false;
    while (now_ms() - start < 3000) {
        if (!client_sends(&c, "X")) {
            closed = true;
            break;
        }
        struct timeval tv = {0, 50000};
        setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t n = client_fill(&c);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            closed = true;
            break;
        }
    }
    double elapsed = now_ms() - start;
    TK_CHECK(h, closed, "server kept a trickling client for %.0f ms", elapsed);
    TK_CHECK(h, elapsed >= 250 && elapsed < 1500, "closed after %.0f ms", elapsed);
    if (c.len)
        TK_CHECK(h, strncmp(c.buf, "HTTP/1.1 408 ", 13) == 0, "%s", c.buf);
    client_close(&c);
}

static void sc_slowloris(harness_t *h)
{
    trickled_header_closed(h);
    expect_healthy(h);
    hub_http_stats_t s = snapshot(h);
    TK_CHECK(h, s.timeouts == 1, "timeouts %llu", (unsigned long long)s.timeouts);
}

static bool wait_open(harness_t *h, uint32_t want);

/* The header section has its own, shorter deadline (300 ms here): a
 * trickled header gets 408 then, though the request may take 3 s; a
 * request whose headers came in time may send its body more slowly. */
static void sc_header_deadline(harness_t *h)
{
    trickled_header_closed(h);
    client_t c;
    /* Headers at once, then a 10-byte body over about 600 ms: served. */
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    TK_CHECK(h, client_sends(&c, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"));
    for (int i = 0; i < 10; i++) {
        struct timespec ts = {0, 60 * 1000 * 1000};
        nanosleep(&ts, NULL);
        TK_CHECK(h, client_sends(&c, "b"), "closed after %d body bytes", i);
    }
    response_t r;
    client_response(&c, &r);
    TK_CHECK(h, r.status == 200, "slow body after timely headers: %d", r.status);
    TK_CHECK(h, r.body && strstr(r.body, "\"body\":\"bbbbbbbbbb\""), "%s", r.body ? r.body : "");
    response_free(&r);
    client_close(&c);
    hub_http_stats_t s = snapshot(h);
    TK_CHECK(h, s.timeouts == 1, "timeouts %llu", (unsigned long long)s.timeouts);
}

/* One address may hold max_connections_per_client (3 here); its fourth is
 * told 503 and closed, and another address is still served. */
static void sc_per_client_limit(harness_t *h)
{
    client_t held[3];
    for (int i = 0; i < 3; i++)
        TK_CHECK(h, client_open_from(&held[i], h->port, "127.0.0.2") == 0);
    TK_CHECK(h, wait_open(h, 3), "open %u", snapshot(h).open_connections);
    client_t extra;
    TK_CHECK(h, client_open_from(&extra, h->port, "127.0.0.2") == 0);
    TK_CHECK(h, client_wait_closed(&extra), "the fourth connection from one address was kept");
    TK_CHECK(h,
             extra.len > 0 && strncmp(extra.buf, "HTTP/1.1 503 ", 13) == 0 &&
                 strstr(extra.buf, "from your address"),
             "%.*s", (int)extra.len, extra.buf ? extra.buf : "");
    client_close(&extra);
    expect_healthy(h); /* from 127.0.0.1 */
    hub_http_stats_t s = snapshot(h);
    TK_CHECK(h, s.rejected_connections == 1, "rejected %llu",
             (unsigned long long)s.rejected_connections);
    /* One of the three closes: that address may connect again. */
    client_close(&held[0]);
    TK_CHECK(h, wait_open(h, 2), "open %u", snapshot(h).open_connections);
    TK_CHECK(h, client_open_from(&held[0], h->port, "127.0.0.2") == 0);
    TK_CHECK(h, client_sends(&held[0], "GET /again HTTP/1.1\r\nHost: x\r\n\r\n"));
    response_t r;
    client_response(&held[0], &r);
    TK_CHECK(h, r.status == 200, "after one closed: %d", r.status);
    response_free(&r);
    for (int i = 0; i < 3; i++)
        client_close(&held[i]);
}

static void sc_idle(harness_t *h)
{
    client_t c;
    response_t r;
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    TK_CHECK(h, client_ask(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r));
    TK_CHECK(h, r.status == 200 && !r.conn_close);
    response_free(&r);
    double start = now_ms();
    TK_CHECK(h, client_wait_closed(&c), "idle connection not closed");
    double elapsed = now_ms() - start;
    TK_CHECK(h, elapsed >= 150 && elapsed < 1500, "closed after %.0f ms", elapsed);
    client_close(&c);
    hub_http_stats_t s = snapshot(h);
    TK_CHECK(h, s.idle_closes == 1 && s.timeouts == 0, "idle %llu timeouts %llu",
             (unsigned long long)s.idle_closes, (unsigned long long)s.timeouts);
}

static bool wait_open(harness_t *h, uint32_t want)
{
    for (int i = 0; i < 200; i++) {
        if (snapshot(h).open_connections == want)
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void sc_max_connections(harness_t *h)
{
    client_t held[4];
    for (int i = 0; i < 4; i++)
        TK_CHECK(h, client_open(&held[i], h->port, 0) == 0);
    TK_CHECK(h, wait_open(h, 4), "open %u", snapshot(h).open_connections);
    client_t extra;
    TK_CHECK(h, client_open(&extra, h->port, 0) == 0);
    TK_CHECK(h, client_wait_closed(&extra), "the fifth connection was kept");
    if (extra.len)
        TK_CHECK(h, strncmp(extra.buf, "HTTP/1.1 503 ", 13) == 0, "%s", extra.buf);
    client_close(&extra);
    hub_http_stats_t s = snapshot(h);
    TK_CHECK(h, s.rejected_connections == 1 && s.open_connections == 4, "rejected %llu open %u",
             (unsigned long long)s.rejected_connections, s.open_connections);
    /* The held connections still work. */
    response_t r;
    TK_CHECK(h, client_ask(&held[0], "GET /held HTTP/1.1\r\nHost: x\r\n\r\n", &r));
    TK_CHECK(h, r.status == 200, "%d", r.status);
    response_free(&r);
    /* Once one goes, a new client is served. */
    client_close(&held[3]);
    TK_CHECK(h, wait_open(h, 3));
    expect_healthy(h);
    for (int i = 0; i < 3; i++)
        client_close(&held[i]);
}

static void sc_slow_reader(harness_t *h)
{
    client_t c;
    TK_CHECK(h, client_open(&c, h->port, 4096) == 0);
    /* 64 pipelined requests for 256 KiB each, and never read. */
    char reqs[64 * 40];
    size_t off = 0;
    for (int i = 0; i < 64; i++)
        off += (size_t)sprintf(reqs + off, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    TK_CHECK(h, client_send(&c, reqs, off));
    bool overflowed = false;
    for (int i = 0; i < 300 && !overflowed; i++) {
        overflowed = snapshot(h).write_overflows == 1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    TK_CHECK(h, overflowed, "a client that does not read was not cut off");
    size_t total = 0;
    for (;;) {
        ssize_t n = client_fill(&c);
        if (n <= 0)
            break;
        total += c.len;
        c.len = 0;
    }
    TK_CHECK(h, total < 64u * BIG_BODY_LEN, "got %zu bytes", total);
    client_close(&c);
    expect_healthy(h);
}

static void sc_misc_responses(harness_t *h)
{
    response_t r;
    TK_CHECK(h, roundtrip(h, "GET /noresp HTTP/1.1\r\nHost: x\r\n\r\n", &r));
    TK_CHECK(h, r.status == 500, "%d", r.status);
    TK_CHECK(h, strcmp(r.body, "{\"error\":\"the handler did not respond\"}") == 0, "%s", r.body);
    response_free(&r);
    TK_CHECK(h, roundtrip(h, "GET /err HTTP/1.1\r\nHost: x\r\n\r\n", &r));
    TK_CHECK(h, r.status == 409, "%d", r.status);
    const char *want = "{\"error\":\"bad \\\"x\\\"\\n\\\\ \\u0001 Nguy\xe1\xbb\x85n \\ufffd!\"}";
    TK_CHECK(h, strcmp(r.body, want) == 0, "%s", r.body);
    response_free(&r);
    TK_CHECK(h, roundtrip(h, "GET /api-checks HTTP/1.1\r\nHost: x\r\n\r\n", &r));
    TK_CHECK(h, r.status == 200, "%d %s", r.status, r.body);
    TK_CHECK(h, has_header(&r, "X-Request-Kind: checks"), "%s", r.head);
    response_free(&r);
    /* Expect: 100-continue gets the interim response first. */
    client_t c;
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    TK_CHECK(h, client_ask(&c,
                           "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                           "Expect: 100-continue\r\n\r\n",
                           &r));
    TK_CHECK(h, r.status == 100, "%s", r.head);
    response_free(&r);
    TK_CHECK(h, client_ask(&c, "hi", &r));
    TK_CHECK(h, r.status == 200 && strstr(r.body, "\"body\":\"hi\""), "%s", r.body);
    response_free(&r);
    client_close(&c);
}

static void sc_close_from_handler(harness_t *h)
{
    client_t idle;
    TK_CHECK(h, client_open(&idle, h->port, 0) == 0);
    TK_CHECK(h, wait_open(h, 1));
    client_t c;
    TK_CHECK(h, client_open(&c, h->port, 0) == 0);
    TK_CHECK(h, client_sends(&c, "POST /shutdown HTTP/1.1\r\nHost: x\r\n\r\n"));
    TK_CHECK(h, client_wait_closed(&c));
    TK_CHECK(h, client_wait_closed(&idle));
    client_close(&c);
    client_close(&idle);
    TK_CHECK(h, client_open(&c, h->port, 0) != 0, "still accepting after close");
}

/* ---- tests ------------------------------------------------------------ */

/* A test: `scenario` against a server configured by cfg (NULL: the
 * defaults). */
#define SCENARIO_TEST(name, cfg, scenario)                                                         \
    START_TEST(name)                                                                               \
    {                                                                                              \
        run_scenario((cfg), (scenario));                                                           \
    }                                                                                              \
    END_TEST
/* The same, then the server's final counter `counter` must be `want`. */
#define SCENARIO_TEST_COUNTS(name, cfg, scenario, counter, want)                                   \
    START_TEST(name)                                                                               \
    {                                                                                              \
        ck_assert_uint_eq(run_scenario((cfg), (scenario)).counter, (want));                        \
    }                                                                                              \
    END_TEST
/* A configuration from designated initialisers, for the two above. */
#define CFG(...) (&(hub_http_config_t){__VA_ARGS__})

SCENARIO_TEST(test_get_with_query_and_percent_encoding, NULL, sc_get_query)

START_TEST(test_post_body_and_bearer)
{
    hub_http_stats_t s = run_scenario(NULL, sc_post_body);
    ck_assert_uint_eq(s.requests, 1);
    ck_assert_uint_eq(s.bad_requests, 0);
}
END_TEST

SCENARIO_TEST(test_keep_alive_pipelining_and_head, NULL, sc_keep_alive)
SCENARIO_TEST(test_http10, NULL, sc_http10)
SCENARIO_TEST(test_bearer_tokens, NULL, sc_tokens)
SCENARIO_TEST(test_oversize_headers_431, NULL, sc_oversize_headers)
SCENARIO_TEST_COUNTS(test_oversize_body_413_and_chunked_411, CFG(.max_body_bytes = 64 * 1024),
                     sc_oversize_body, bad_requests, 3)
SCENARIO_TEST(test_garbage_400, NULL, sc_garbage)
SCENARIO_TEST(test_slowloris_closed, CFG(.request_timeout_ms = 300), sc_slowloris)
SCENARIO_TEST(test_header_deadline, CFG(.header_timeout_ms = 300, .request_timeout_ms = 3000),
              sc_header_deadline)
SCENARIO_TEST(test_max_connections_per_client, CFG(.max_connections_per_client = 3),
              sc_per_client_limit)
SCENARIO_TEST(test_idle_keep_alive_closed, CFG(.idle_timeout_ms = 200), sc_idle)
SCENARIO_TEST(test_max_connections, CFG(.max_connections = 4), sc_max_connections)
SCENARIO_TEST_COUNTS(test_slow_reader_cut_off, CFG(.max_output_bytes = 1024 * 1024), sc_slow_reader,
                     write_overflows, 1)
SCENARIO_TEST(test_misc_responses, NULL, sc_misc_responses)
SCENARIO_TEST(test_close_from_handler, NULL, sc_close_from_handler)

static void noop_handler(const hub_http_request_t *req, hub_http_response_t *resp, void *user)
{
    (void)req;
    (void)resp;
    (void)user;
}

START_TEST(test_lifecycle)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    hub_http_server_t *a = NULL, *b = NULL, *never = NULL;
    ck_assert_int_eq(hub_http_new(NULL, NULL, noop_handler, NULL, &a), HUB_EINVAL);
    ck_assert_ptr_null(a);
    ck_assert_int_eq(hub_http_new(&loop, NULL, NULL, NULL, &a), HUB_EINVAL);
    ck_assert_int_eq(hub_http_new(&loop, NULL, noop_handler, NULL, &a), 0);
    ck_assert_int_eq(hub_http_new(&loop, NULL, noop_handler, NULL, &b), 0);
    ck_assert_int_eq(hub_http_new(&loop, NULL, noop_handler, NULL, &never), 0);
    ck_assert_int_eq(hub_http_port(a), 0);
    ck_assert_int_eq(hub_http_listen(a, "localhost", 0), HUB_EINVAL); /* numeric only */
    ck_assert_int_eq(hub_http_listen(a, "127.0.0.1", 0), HUB_EINVAL); /* once per server */
    ck_assert_int_eq(hub_http_listen(b, "127.0.0.1", 0), 0);
    int port = hub_http_port(b);
    ck_assert_int_gt(port, 0);
    /* The port is taken: a clear error, and the server can still be freed. */
    hub_http_server_t *c = NULL;
    ck_assert_int_eq(hub_http_new(&loop, NULL, noop_handler, NULL, &c), 0);
    ck_assert_int_eq(hub_http_listen(c, "127.0.0.1", port), HUB_EEXIST);
    hub_http_destroy(&c);
    ck_assert_ptr_null(c);
    /* Destroying without closing first, and twice, is fine. */
    hub_http_destroy(&b);
    hub_http_destroy(&b);
    hub_http_destroy(&a);
    hub_http_destroy(&never);
    hub_http_destroy(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_query_get)
{
    char buf[32];
    const char *q = "a=1&name=Tr%E1%BA%A7n+Th%E1%BB%8B&empty=&flag&x%5By%5D=2&a=second&bad=%zz"
                    "&nul=a%00b&long=0123456789012345678901234567890123456789";
    ck_assert_int_eq(hub_http_query_get(q, "a", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "1");
    ck_assert_int_eq(hub_http_query_get(q, "name", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "Tr\xe1\xba\xa7n Th\xe1\xbb\x8b");
    ck_assert_int_eq(hub_http_query_get(q, "empty", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(hub_http_query_get(q, "flag", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(hub_http_query_get(q, "x[y]", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "2");
    ck_assert_int_eq(hub_http_query_get(q, "missing", buf, sizeof buf), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_http_query_get(q, "nam", buf, sizeof buf), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_http_query_get(q, "bad", buf, sizeof buf), HUB_EPARSE);
    ck_assert_int_eq(hub_http_query_get(q, "nul", buf, sizeof buf), HUB_EPARSE);
    ck_assert_int_eq(hub_http_query_get(q, "long", buf, sizeof buf), HUB_EFULL);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(hub_http_query_get("a=%4", "a", buf, sizeof buf), HUB_EPARSE);
    ck_assert_int_eq(hub_http_query_get("", "a", buf, sizeof buf), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_http_query_get("&&a=%41&", "a", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "A");
    ck_assert_int_eq(hub_http_query_get(q, "a", buf, 0), HUB_EINVAL);
    ck_assert_int_eq(hub_http_query_get(NULL, "a", buf, sizeof buf), HUB_EINVAL);
}
END_TEST

START_TEST(test_token_ok_edge_cases)
{
    hub_http_request_t req = {.bearer_token = "abc"};
    ck_assert(hub_http_token_ok(&req, "abc"));
    ck_assert(!hub_http_token_ok(&req, "abd"));
    ck_assert(!hub_http_token_ok(&req, "abcd"));
    ck_assert(!hub_http_token_ok(&req, ""));
    ck_assert(!hub_http_token_ok(&req, NULL));
    ck_assert(!hub_http_token_ok(NULL, "abc"));
    req.bearer_token = NULL;
    ck_assert(!hub_http_token_ok(&req, "abc"));
}
END_TEST

TK_MAIN("hub_http",
        TK_CASE("server", NULL, NULL, 30,
                test_get_with_query_and_percent_encoding, test_post_body_and_bearer,
                test_keep_alive_pipelining_and_head, test_http10, test_bearer_tokens,
                test_oversize_headers_431, test_oversize_body_413_and_chunked_411,
                test_garbage_400, test_slowloris_closed, test_header_deadline,
                test_max_connections_per_client, test_idle_keep_alive_closed,
                test_max_connections, test_slow_reader_cut_off, test_misc_responses,
                test_close_from_handler, test_lifecycle),
        TK_CASE("helpers", NULL, NULL, 0,
                test_query_get, test_token_ok_edge_cases))
