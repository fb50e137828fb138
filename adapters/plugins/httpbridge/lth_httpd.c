/* lth_httpd — a small poll()-driven HTTP/1.1 server; see lth_httpd.h. */
#define _GNU_SOURCE /* accept4 */
#include "lth_httpd.h"

#include "hub_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTPD_URL_MAX 2048
#define HTTPD_VALUE_MAX 1024   /* the header values we keep (Content-Type, Authorization) */
#define HTTPD_DRAIN_MS 1000    /* how long a closing connection's input is discarded */
#define HTTPD_WRITE_MS 10000   /* how long a client may take to read its response */

typedef enum { HTTPD_READING, HTTPD_WRITING, HTTPD_DRAINING } httpd_state_t;

/* The headers the server keeps. */
enum { HTTPD_H_OTHER, HTTPD_H_CONTENT_TYPE, HTTPD_H_AUTHORIZATION, HTTPD_H_EXPECT };

/* Fields ordered by size (clang-tidy's padding check). */
typedef struct httpd_conn {
    struct httpd_conn *next;
    struct lth_httpd *server;
    uint64_t deadline_ms;
    /* Request head: lengths of the buffers below. */
    size_t url_len, field_len, content_type_len, authorization_len, expect_len;
    char *value_dst;    /* where the current header's value goes, or NULL */
    size_t *value_len;
    /* Body, and response. */
    char *body;
    size_t body_len, body_cap;
    char *out;
    size_t out_len, out_off;
    http_parser parser;
    int fd;
    httpd_state_t state;
    int early_status;   /* a callback found the request unacceptable: answer this */
    int header;         /* HTTPD_H_* of the header being read */
    int seen_content_type, seen_authorization;
    bool closed;        /* socket closed; freed by httpd_sweep() */
    bool complete;      /* a whole request has been parsed */
    bool in_value;
    char field[32];
    char peer[64];
    char expect[64];
    char early_message[128];
    char content_type[HTTPD_VALUE_MAX + 1];
    char authorization[HTTPD_VALUE_MAX + 1];
    char url[HTTPD_URL_MAX + 1];
} httpd_conn_t;

struct lth_httpd {
    int fd;
    int port;
    bool loopback;
    lth_httpd_config_t cfg;
    lth_httpd_handler_cb handler;
    void *user;
    http_parser_settings settings;
    httpd_conn_t *conns;
    size_t n_conns;
};

static uint64_t httpd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *httpd_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

void lth_httpd_error(lth_httpd_response_t *resp, int status, const char *message, json_t *extra)
{
    json_t *obj = json_object();
    if (obj)
        json_object_set_new(obj, "error", json_string(message ? message : ""));
    if (obj && extra)
        json_object_update(obj, extra);
    json_decref(extra);
    free(resp->body);
    resp->body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    json_decref(obj);
    resp->status = status;
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
}

/* ---- connections ------------------------------------------------------------ */

/* Closes the socket at once; the memory goes at the end of the serving
 * round (httpd_sweep), so that nothing in the round holds a freed pointer. */
static void httpd_close(httpd_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->closed = true;
}

static void httpd_free(httpd_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->body);
    free(c->out);
    free(c);
}

static void httpd_sweep(lth_httpd_t *s)
{
    httpd_conn_t **link = &s->conns;
    while (*link) {
        httpd_conn_t *c = *link;
        if (c->closed) {
            *link = c->next;
            s->n_conns--;
            httpd_free(c);
        } else {
            link = &c->next;
        }
    }
}

/* Queues a response and starts writing it. */
static void httpd_respond(httpd_conn_t *c, const lth_httpd_response_t *resp)
{
    int status = resp->status ? resp->status : 500;
    const char *ctype = resp->content_type[0] ? resp->content_type : "application/json";
    bool head = c->complete && c->parser.method == HTTP_HEAD;
    size_t body_len = head ? 0 : resp->body_len;
    char head_text[1024];
    int n = snprintf(head_text, sizeof head_text,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\nCache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\n%s\r\n",
                     status, httpd_reason(status), ctype, resp->body_len, resp->headers);
    if (n < 0 || (size_t)n >= sizeof head_text)
        n = snprintf(head_text, sizeof head_text,
                     "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n"),
        body_len = 0;
    free(c->out);
    c->out = malloc((size_t)n + body_len);
    c->out_off = 0;
    c->out_len = 0;
    if (c->out) {
        memcpy(c->out, head_text, (size_t)n);
        if (body_len)
            memcpy(c->out + n, resp->body, body_len);
        c->out_len = (size_t)n + body_len;
    }
    c->state = HTTPD_WRITING;
    c->deadline_ms = httpd_now_ms() + HTTPD_WRITE_MS;
}

static void httpd_respond_error(httpd_conn_t *c, int status, const char *message)
{
    lth_httpd_response_t resp;
    memset(&resp, 0, sizeof resp);
    lth_httpd_error(&resp, status, message, NULL);
    httpd_respond(c, &resp);
    free(resp.body);
}

/* Writes what it can; when all is written, half-closes and drains. */
static void httpd_write(httpd_conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        httpd_close(c); /* the client went away */
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = HTTPD_DRAINING;
    c->deadline_ms = httpd_now_ms() + HTTPD_DRAIN_MS;
}

/* ---- parser callbacks ------------------------------------------------------- */

static int httpd_abort(httpd_conn_t *c, int status, const char *message)
{
    c->early_status = status;
    snprintf(c->early_message, sizeof c->early_message, "%s", message);
    return -1;
}

static int httpd_on_url(http_parser *p, const char *at, size_t len)
{
    httpd_conn_t *c = p->data;
    if (c->url_len + len > HTTPD_URL_MAX)
        return httpd_abort(c, 414, "the URL is longer than 2048 bytes");
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int httpd_on_header_field(http_parser *p, const char *at, size_t len)
{
    httpd_conn_t *c = p->data;
    if (c->in_value) {
        c->in_value = false;
        c->field_len = 0;
    }
    /* Long names are none of the ones we keep: remember only that. */
    if (c->field_len + len < sizeof c->field) {
        memcpy(c->field + c->field_len, at, len);
        c->field_len += len;
    } else {
        c->field_len = sizeof c->field; /* too long: matches nothing */
    }
    return 0;
}

static int httpd_on_header_value(http_parser *p, const char *at, size_t len)
{
    httpd_conn_t *c = p->data;
    if (!c->in_value) {
        c->in_value = true;
        c->value_dst = NULL;
        c->header = HTTPD_H_OTHER;
        if (c->field_len < sizeof c->field) {
            c->field[c->field_len] = '\0';
            if (!strcasecmp(c->field, "Content-Type")) {
                if (c->seen_content_type++)
                    return httpd_abort(c, 400, "the request has two Content-Type headers");
                c->header = HTTPD_H_CONTENT_TYPE;
                c->value_dst = c->content_type;
                c->value_len = &c->content_type_len;
            } else if (!strcasecmp(c->field, "Authorization")) {
                if (c->seen_authorization++)
                    return httpd_abort(c, 400, "the request has two Authorization headers");
                c->header = HTTPD_H_AUTHORIZATION;
                c->value_dst = c->authorization;
                c->value_len = &c->authorization_len;
            } else if (!strcasecmp(c->field, "Expect")) {
                c->header = HTTPD_H_EXPECT;
                c->expect_len = 0;
            }
        }
    }
    if (c->header == HTTPD_H_EXPECT) {
        if (c->expect_len + len < sizeof c->expect) {
            memcpy(c->expect + c->expect_len, at, len);
            c->expect_len += len;
            c->expect[c->expect_len] = '\0';
        }
        return 0;
    }
    if (!c->value_dst)
        return 0;
    if (*c->value_len + len > HTTPD_VALUE_MAX)
        return httpd_abort(c, 431, "a Content-Type or Authorization header is over 1024 bytes");
    memcpy(c->value_dst + *c->value_len, at, len);
    *c->value_len += len;
    c->value_dst[*c->value_len] = '\0';
    return 0;
}

static int httpd_on_headers_complete(http_parser *p)
{
    httpd_conn_t *c = p->data;
    size_t max = c->server->cfg.max_body_bytes;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > max) {
        char message[128];
        snprintf(message, sizeof message, "the body is larger than %zu bytes", max);
        return httpd_abort(c, 413, message);
    }
    if (c->expect_len && !strcasecmp(c->expect, "100-continue")) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        /* Best effort: a client that does not get it sends the body anyway. */
        ssize_t n = send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL);
        (void)n;
    }
    return 0;
}

static int httpd_on_body(http_parser *p, const char *at, size_t len)
{
    httpd_conn_t *c = p->data;
    size_t max = c->server->cfg.max_body_bytes;
    if (c->body_len + len > max) {
        char message[128];
        snprintf(message, sizeof message, "the body is larger than %zu bytes", max);
        return httpd_abort(c, 413, message);
    }
    if (c->body_len + len + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < c->body_len + len + 1)
            cap *= 2;
        char *grown = realloc(c->body, cap);
        if (!grown)
            return httpd_abort(c, 503, "out of memory");
        c->body = grown;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return 0;
}

static int httpd_on_message_complete(http_parser *p)
{
    httpd_conn_t *c = p->data;
    c->complete = true;
    http_parser_pause(p, 1); /* one request per connection */
    return 0;
}

/* ---- serving ---------------------------------------------------------------- */

static void httpd_dispatch(httpd_conn_t *c)
{
    lth_httpd_t *s = c->server;
    char *query = strchr(c->url, '?');
    if (query)
        *query++ = '\0';
    char *fragment = strchr(query ? query : c->url, '#');
    if (fragment)
        *fragment = '\0';
    lth_httpd_request_t req = {
        .method = http_method_str((enum http_method)c->parser.method),
        .path = c->url[0] ? c->url : "/",
        .query = query ? query : "",
        .content_type = c->content_type,
        .authorization = c->authorization,
        .body = c->body ? c->body : "",
        .body_len = c->body_len,
        .peer = c->peer,
    };
    lth_httpd_response_t resp;
    memset(&resp, 0, sizeof resp);
    s->handler(&req, &resp, s->user);
    httpd_respond(c, &resp);
    free(resp.body);
}

/* Parses more input; returns true when it closed (and freed) c. */
static bool httpd_feed(httpd_conn_t *c, const char *data, size_t len, bool eof)
{
    http_parser_execute(&c->parser, &c->server->settings, data, len);
    if (c->early_status) {
        httpd_respond_error(c, c->early_status, c->early_message);
        return false;
    }
    if (c->complete) {
        httpd_dispatch(c);
        return false;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_HEADER_OVERFLOW) {
        httpd_respond_error(c, 431, "the request's header section is too large");
    } else if (e != HPE_OK) {
        char message[160];
        snprintf(message, sizeof message, "not an HTTP/1.x request: %s",
                 http_errno_description(e));
        httpd_respond_error(c, 400, message);
    } else if (eof) {
        httpd_close(c); /* the client gave up half-way */
        return true;
    }
    return false;
}

static void httpd_read(httpd_conn_t *c)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (c->state == HTTPD_DRAINING) {
            if (n <= 0) {
                httpd_close(c);
                return;
            }
            continue; /* discard */
        }
        if (n < 0) {
            httpd_close(c);
            return;
        }
        if (httpd_feed(c, n > 0 ? buf : NULL, (size_t)n, n == 0))
            return;
        if (c->state == HTTPD_WRITING) {
            httpd_write(c); /* most responses go out at once */
            return;
        }
        if (n == 0)
            return;
    }
}

static void httpd_accept(lth_httpd_t *s)
{
    for (;;) {
        struct sockaddr_storage addr;
        memset(&addr, 0, sizeof addr);
        socklen_t alen = sizeof addr;
        int fd = accept4(s->fd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or out of descriptors: try again on the next round */
        }
        if (s->n_conns >= s->cfg.max_connections) {
            static const char busy[] =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                "Content-Length: 56\r\nConnection: close\r\n\r\n"
                "{\"error\":\"too many connections; try again in a moment\"}";
            ssize_t n = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
            (void)n;
            close(fd);
            continue;
        }
        httpd_conn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->server = s;
        c->fd = fd;
        c->state = HTTPD_READING;
        c->deadline_ms = httpd_now_ms() + s->cfg.request_timeout_ms;
        char host[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (addr.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&addr;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            port = ntohs(in->sin_port);
        } else if (addr.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            port = ntohs(in6->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        c->next = s->conns;
        s->conns = c;
        s->n_conns++;
    }
}

int lth_httpd_serve(lth_httpd_t *s, int timeout_ms)
{
    if (!s)
        return HUB_EINVAL;
    size_t cap = s->n_conns + 1;
    struct pollfd *fds = calloc(cap, sizeof *fds);
    httpd_conn_t **who = calloc(cap, sizeof *who);
    if (!fds || !who) {
        free(fds);
        free(who);
        return HUB_ENOMEM;
    }
    uint64_t now = httpd_now_ms();
    size_t n = 0;
    fds[n++] = (struct pollfd){.fd = s->fd, .events = POLLIN};
    for (httpd_conn_t *c = s->conns; c; c = c->next) {
        fds[n] = (struct pollfd){.fd = c->fd,
                                 .events = c->state == HTTPD_WRITING ? POLLOUT : POLLIN};
        who[n++] = c;
        int until = c->deadline_ms > now ? (int)(c->deadline_ms - now) : 0;
        if (timeout_ms < 0 || until < timeout_ms)
            timeout_ms = until;
    }
    int ready = poll(fds, n, timeout_ms);
    if (ready < 0) {
        int e = errno;
        free(fds);
        free(who);
        return e == EINTR ? HUB_EAGAIN : HUB_EIO;
    }
    /* Connections first (a handler may take a while; new ones wait). */
    for (size_t i = 1; i < n; i++) {
        httpd_conn_t *c = who[i];
        if (!fds[i].revents || c->closed)
            continue;
        if (c->state == HTTPD_WRITING)
            httpd_write(c);
        else
            httpd_read(c);
    }
    bool incoming = fds[0].revents & POLLIN;
    free(fds);
    free(who);
    /* Deadlines. */
    now = httpd_now_ms();
    for (httpd_conn_t *c = s->conns; c; c = c->next) {
        if (c->closed || now < c->deadline_ms)
            continue;
        if (c->state == HTTPD_READING) {
            char message[96];
            snprintf(message, sizeof message, "the request was not complete within %u ms",
                     (unsigned)s->cfg.request_timeout_ms);
            httpd_respond_error(c, 408, message);
            httpd_write(c);
        } else {
            httpd_close(c);
        }
    }
    httpd_sweep(s);
    if (incoming)
        httpd_accept(s);
    return 0;
}

/* ---- lifetime ----------------------------------------------------------------- */

static int httpd_split(const char *listen, char *host, size_t host_size, char *port,
                       size_t port_size)
{
    const char *colon;
    const char *h = listen;
    size_t hlen;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':')
            return HUB_EINVAL;
        h = listen + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return HUB_EINVAL;
        hlen = (size_t)(colon - listen);
    }
    const char *p = colon + 1;
    if (!hlen || hlen >= host_size || !*p || strlen(p) >= port_size ||
        strspn(p, "0123456789") != strlen(p) || atoi(p) > 65535)
        return HUB_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, port_size, "%s", p);
    return 0;
}

int lth_httpd_new(const char *address, const lth_httpd_config_t *cfg, lth_httpd_handler_cb handler,
                  void *user, lth_httpd_t **out, char *err, size_t err_size)
{
    char host[256], port[8];
    if (!address || !handler || !out ||
        httpd_split(address, host, sizeof host, port, sizeof port) != 0) {
        snprintf(err, err_size, "'%s' is not HOST:PORT (e.g. 127.0.0.1:8088, [::1]:8088)",
                 address ? address : "");
        return HUB_EINVAL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, err_size, "cannot resolve '%s': %s", host, gai_strerror(gai));
        return HUB_EINVAL;
    }
    lth_httpd_t *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return HUB_ENOMEM;
    }
    s->fd = -1;
    int rc = HUB_EIO, e = 0;
    for (struct addrinfo *a = ai; a && s->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            e = errno;
            close(fd);
            continue;
        }
        s->fd = fd;
        if (a->ai_family == AF_INET)
            s->loopback = (ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >> 24) == 127;
        else if (a->ai_family == AF_INET6)
            s->loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
    }
    freeaddrinfo(ai);
    if (s->fd < 0) {
        rc = e == EADDRINUSE ? HUB_EEXIST : (e == EACCES || e == EPERM) ? HUB_EPERM : HUB_EIO;
        snprintf(err, err_size, "cannot listen on %s: %s", address, strerror(e));
        free(s);
        return rc;
    }
    struct sockaddr_storage bound;
    memset(&bound, 0, sizeof bound);
    socklen_t blen = sizeof bound;
    if (getsockname(s->fd, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&bound)->sin6_port
                            : ((struct sockaddr_in *)&bound)->sin_port);
    if (cfg)
        s->cfg = *cfg;
    if (!s->cfg.max_body_bytes)
        s->cfg.max_body_bytes = 1u << 20;
    if (!s->cfg.request_timeout_ms)
        s->cfg.request_timeout_ms = 10000;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = 64;
    s->handler = handler;
    s->user = user;
    s->settings.on_url = httpd_on_url;
    s->settings.on_header_field = httpd_on_header_field;
    s->settings.on_header_value = httpd_on_header_value;
    s->settings.on_headers_complete = httpd_on_headers_complete;
    s->settings.on_body = httpd_on_body;
    s->settings.on_message_complete = httpd_on_message_complete;
    *out = s;
    return 0;
}

int lth_httpd_port(const lth_httpd_t *s) { return s ? s->port : 0; }

bool lth_httpd_loopback(const lth_httpd_t *s) { return s && s->loopback; }

void lth_httpd_destroy(lth_httpd_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    lth_httpd_t *s = *s_p;
    for (httpd_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        httpd_free(c);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s);
    *s_p = NULL;
}
