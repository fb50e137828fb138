#include "hub_http.h"
#include "hub_error.h"
#include "hub_log.h"

#include <http_parser.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HUB__HTTP_COMP "http"
#define HUB__HTTP_READ_BUF (64u * 1024u)
#define HUB__HTTP_BACKLOG 128
/* After an error or a final response the server half-closes and reads (and
 * drops) what the client still sends, for this long or this much, so that
 * the client sees the response rather than a reset. */
#define HUB__HTTP_LINGER_MS 1000u
#define HUB__HTTP_LINGER_MAX_BYTES (4u * 1024u * 1024u)
/* Header bytes are counted as the request target plus every header's name
 * and value, plus these for the fixed parts of each line. The bytes
 * http_parser skips itself (extra spaces) are capped by its own 80 KiB
 * limit, which also answers 431. */
#define HUB__HTTP_REQUEST_LINE_OVERHEAD 16u
#define HUB__HTTP_HEADER_LINE_OVERHEAD 4u

/* A growable NUL-terminated byte buffer. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} hub__hbuf_t;

typedef enum {
    HUB__CONN_READING = 0, /* parsing requests, answering them */
    HUB__CONN_LINGER,      /* final response queued, write side shut, input dropped */
    HUB__CONN_CLOSING      /* uv_close() called on both handles */
} hub__conn_state_t;

typedef enum { HUB__TIMER_REQUEST = 0, HUB__TIMER_IDLE, HUB__TIMER_LINGER } hub__timer_kind_t;

typedef enum {
    HUB__HDR_OTHER = 0,
    HUB__HDR_AUTHORIZATION,
    HUB__HDR_CONTENT_TYPE,
    HUB__HDR_EXPECT,
    HUB__HDR_HOST
} hub__hdr_kind_t;

typedef struct hub__http_conn hub__http_conn_t;

struct hub__http_conn {
    uv_tcp_t tcp;                /* tcp.data and timer.data point back here */
    uv_timer_t timer;            /* request, idle or linger deadline */
    uv_shutdown_t shutdown_req;
    hub_http_server_t *server;
    hub__http_conn_t *prev, *next;
    http_parser parser;
    hub__conn_state_t state;
    hub__timer_kind_t timer_kind;
    int open_handles;            /* 2 until both close callbacks ran */
    unsigned pending_writes;     /* uv_write requests not yet called back */
    bool read_paused;            /* reading stopped until output drains */
    bool shutdown_done;          /* LINGER: the FIN went out */
    bool eof_seen;               /* LINGER: the client's FIN came in */
    size_t discarded;            /* LINGER: bytes dropped */
    uint8_t peer[17];            /* the client's address family and IP, for its limit */
    uint64_t request_start_ms;   /* loop time of the request's first byte (or the opening) */

    /* The request being parsed. */
    bool in_message;             /* its first byte has arrived */
    bool in_header_value;        /* the last header callback was a value */
    bool seen_authorization, seen_content_type, seen_host;
    hub__hdr_kind_t cur_header;
    int error_status;            /* set by a callback that stops the parser */
    size_t header_bytes;
    char field[32];              /* the current header's name, if it is short */
    size_t field_len;
    bool field_too_long;
    hub__hbuf_t url, path, query, authorization, content_type, expect, host, body;
};

typedef struct {
    uv_write_t req;
    char *head; /* freed after the write unless head_static */
    bool head_static;
    char *body; /* freed after the write */
} hub__http_write_t;

typedef struct {
    uv_tcp_t tcp;
    hub_http_server_t *server;
} hub__http_reject_t;

struct hub_http_response {
    int status;           /* 0 until the handler responds */
    char *content_type;   /* malloc'ed, or NULL */
    char *body;           /* malloc'ed, or NULL */
    size_t body_len;
    hub__hbuf_t extra;    /* "Name: value\r\n" lines added by the handler */
};

struct hub_http_server {
    uv_loop_t *loop;
    hub_http_config_t cfg;
    hub_http_handler_cb handler;
    void *user;
    uv_tcp_t listener;
    bool listen_tried;
    bool listener_open;   /* initialised and not yet called back from uv_close */
    int port;
    bool closing;         /* hub_http_close() was called */
    bool finished;        /* every handle closed after closing */
    bool destroy_requested;
    hub_http_closed_cb on_closed;
    void *closed_user;
    unsigned open_handles; /* listener, connections' tcp and timer, rejected sockets */
    hub__http_conn_t *conns;
    hub_http_stats_t stats;
    uv_tcp_t spare;       /* rejects a connection when memory is short */
    bool spare_busy;
    char read_buf[HUB__HTTP_READ_BUF]; /* one read at a time on this loop */
};

static const char hub__http_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                    "Content-Type: application/json\r\n"
                                    "Content-Length: 37\r\n"
                                    "Cache-Control: no-store\r\n"
                                    "X-Content-Type-Options: nosniff\r\n"
                                    "Connection: close\r\n"
                                    "\r\n"
                                    "{\"error\":\"too many open connections\"}";

static const char hub__http_503_client[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 55\r\n"
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Connection: close\r\n"
    "\r\n"
    "{\"error\":\"too many open connections from your address\"}";

static const char hub__http_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* ---- small buffers ---------------------------------------------------- */

static int hub__hbuf_reserve(hub__hbuf_t *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return HUB_ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *data = realloc(b->data, cap);
    if (!data)
        return HUB_ENOMEM;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int hub__hbuf_append(hub__hbuf_t *b, const char *p, size_t n)
{
    int rc = hub__hbuf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int hub__hbuf_printf(hub__hbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int hub__hbuf_printf(hub__hbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return HUB_EINVAL;
    int rc = hub__hbuf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

static void hub__hbuf_clear(hub__hbuf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static void hub__hbuf_free(hub__hbuf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* A C string view of b: "" when nothing was ever appended. */
static const char *hub__hbuf_str(const hub__hbuf_t *b) { return b->data ? b->data : ""; }

/* ---- server bookkeeping ----------------------------------------------- */

static void hub__server_maybe_finish(hub_http_server_t *server)
{
    if (!server->closing || server->open_handles > 0 || server->finished)
        return;
    server->finished = true;
    hub_http_closed_cb cb = server->on_closed;
    void *user = server->closed_user;
    if (server->destroy_requested)
        free(server);
    /* The server may be gone (or be destroyed by cb): only cb and user now. */
    if (cb)
        cb(user);
}

static void hub__conn_free(hub__http_conn_t *conn)
{
    hub__hbuf_free(&conn->url);
    hub__hbuf_free(&conn->path);
    hub__hbuf_free(&conn->query);
    hub__hbuf_free(&conn->authorization);
    hub__hbuf_free(&conn->content_type);
    hub__hbuf_free(&conn->host);
    hub__hbuf_free(&conn->expect);
    hub__hbuf_free(&conn->body);
    free(conn);
}

static void hub__conn_on_handle_closed(uv_handle_t *handle)
{
    hub__http_conn_t *conn = handle->data;
    hub_http_server_t *server = conn->server;
    server->open_handles--;
    if (--conn->open_handles > 0)
        return;
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        server->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    hub__conn_free(conn);
    hub__server_maybe_finish(server);
}

/* Closes at once; unsent output is dropped. */
static void hub__conn_close(hub__http_conn_t *conn)
{
    if (conn->state == HUB__CONN_CLOSING)
        return;
    conn->state = HUB__CONN_CLOSING;
    conn->server->stats.open_connections--;
    uv_timer_stop(&conn->timer);
    uv_close((uv_handle_t *)&conn->timer, hub__conn_on_handle_closed);
    uv_close((uv_handle_t *)&conn->tcp, hub__conn_on_handle_closed);
}

static void hub__conn_on_timer(uv_timer_t *timer);

/* Stops http_parser_execute() after the current callback. (Pausing a
 * parser that is already in an error state trips an assert in it.) */
static void hub__parser_stop(http_parser *parser)
{
    if (HTTP_PARSER_ERRNO(parser) == HPE_OK)
        http_parser_pause(parser, 1);
}

static void hub__conn_arm(hub__http_conn_t *conn, hub__timer_kind_t kind, uint64_t ms)
{
    conn->timer_kind = kind;
    uv_timer_start(&conn->timer, hub__conn_on_timer, ms, 0);
}

/* Arms the deadline of a request that begins now: its header section must
 * be complete within header_timeout_ms, the whole request within
 * request_timeout_ms (hub__conn_headers_done() moves to the latter). */
static void hub__conn_arm_request(hub__http_conn_t *conn)
{
    const hub_http_config_t *c = &conn->server->cfg;
    conn->request_start_ms = uv_now(conn->server->loop);
    hub__conn_arm(conn, HUB__TIMER_REQUEST,
                  c->header_timeout_ms < c->request_timeout_ms ? c->header_timeout_ms
                                                               : c->request_timeout_ms);
}

static void hub__conn_headers_done(hub__http_conn_t *conn)
{
    const hub_http_config_t *c = &conn->server->cfg;
    if (c->header_timeout_ms >= c->request_timeout_ms)
        return;
    uint64_t spent = uv_now(conn->server->loop) - conn->request_start_ms;
    uint64_t left = spent < c->request_timeout_ms ? c->request_timeout_ms - spent : 1;
    hub__conn_arm(conn, HUB__TIMER_REQUEST, left);
}

static size_t hub__conn_unsent(hub__http_conn_t *conn)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp);
}

/* ---- writing ---------------------------------------------------------- */

static void hub__on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void hub__on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void hub__on_write(uv_write_t *req, int status)
{
    hub__http_write_t *w = (hub__http_write_t *)req;
    hub__http_conn_t *conn = req->handle->data;
    if (!w->head_static)
        free(w->head);
    free(w->body);
    free(w);
    conn->pending_writes--;
    if (conn->state == HUB__CONN_CLOSING)
        return;
    if (status < 0) {
        HUB_DEBUG(HUB__HTTP_COMP, "write failed; closing the connection", "error=%s",
                  uv_err_name(status));
        hub__conn_close(conn);
        return;
    }
    if (conn->state == HUB__CONN_READING && conn->read_paused && hub__conn_unsent(conn) == 0) {
        conn->read_paused = false;
        if (uv_read_start((uv_stream_t *)&conn->tcp, hub__on_alloc, hub__on_read) != 0)
            hub__conn_close(conn);
    }
}

/* Queues head (owned unless head_static) and body (owned, may be NULL).
 * On failure frees them and closes the connection. */
static int hub__conn_write(hub__http_conn_t *conn, char *head, size_t head_len, bool head_static,
                           char *body, size_t body_len)
{
    hub__http_write_t *w = calloc(1, sizeof *w);
    if (!w) {
        if (!head_static)
            free(head);
        free(body);
        hub__conn_close(conn);
        return HUB_ENOMEM;
    }
    w->head = head;
    w->head_static = head_static;
    w->body = body;
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)head_len),
                        uv_buf_init(body, (unsigned)body_len)};
    int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, bufs, body_len ? 2 : 1, hub__on_write);
    if (rc != 0) {
        if (!head_static)
            free(head);
        free(body);
        free(w);
        hub__conn_close(conn);
        return HUB_EIO;
    }
    conn->pending_writes++;
    return 0;
}

static void hub__conn_on_shutdown(uv_shutdown_t *req, int status)
{
    hub__http_conn_t *conn = req->handle->data;
    if (conn->state == HUB__CONN_CLOSING)
        return;
    conn->shutdown_done = true;
    if (status < 0 || conn->eof_seen)
        hub__conn_close(conn);
}

/* The last response is queued: send FIN once it is out, drop what the
 * client still sends, and close on its FIN or after the linger time. */
static void hub__conn_linger(hub__http_conn_t *conn)
{
    if (conn->state != HUB__CONN_READING)
        return;
    conn->state = HUB__CONN_LINGER;
    hub__parser_stop(&conn->parser);
    hub__conn_arm(conn, HUB__TIMER_LINGER, HUB__HTTP_LINGER_MS);
    if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->tcp, hub__conn_on_shutdown) != 0) {
        hub__conn_close(conn);
        return;
    }
    if (conn->read_paused) {
        conn->read_paused = false;
        if (uv_read_start((uv_stream_t *)&conn->tcp, hub__on_alloc, hub__on_read) != 0)
            hub__conn_close(conn);
    }
}

static bool hub__header_text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    }
    return true;
}

/* Serialises resp and queues it; takes resp's body. keep_alive false makes
 * it the connection's last response. */
static void hub__conn_send(hub__http_conn_t *conn, hub_http_response_t *resp, bool head_only,
                           bool keep_alive, bool http10)
{
    int status = resp->status;
    bool no_body = head_only || status == 204 || status == 304;
    const char *reason = http_status_str((enum http_status)status);
    hub__hbuf_t head = {0};
    int rc = hub__hbuf_printf(&head, "HTTP/1.1 %d %s\r\n", status,
                              strcmp(reason, "<unknown>") ? reason : "Status");
    if (!rc && resp->content_type)
        rc = hub__hbuf_printf(&head, "Content-Type: %s\r\n", resp->content_type);
    if (!rc && status != 204)
        rc = hub__hbuf_printf(&head, "Content-Length: %zu\r\n", resp->body_len);
    if (!rc)
        rc = hub__hbuf_printf(&head, "Cache-Control: no-store\r\n"
                                     "X-Content-Type-Options: nosniff\r\n");
    if (!rc && resp->extra.len)
        rc = hub__hbuf_append(&head, resp->extra.data, resp->extra.len);
    if (!rc && !keep_alive)
        rc = hub__hbuf_printf(&head, "Connection: close\r\n");
    else if (!rc && http10)
        rc = hub__hbuf_printf(&head, "Connection: keep-alive\r\n");
    if (!rc)
        rc = hub__hbuf_append(&head, "\r\n", 2);
    if (rc) {
        hub__hbuf_free(&head);
        hub__conn_close(conn);
        return;
    }
    char *body = no_body ? NULL : resp->body;
    size_t body_len = no_body ? 0 : resp->body_len;
    if (!no_body)
        resp->body = NULL;
    if (hub__conn_write(conn, head.data, head.len, false, body, body_len) != 0)
        return;

    hub_http_server_t *server = conn->server;
    if (hub__conn_unsent(conn) > server->cfg.max_output_bytes) {
        server->stats.write_overflows++;
        HUB_DEBUG(HUB__HTTP_COMP, "client is not reading its responses; closing the connection",
                  "unsent=%zu limit=%zu", hub__conn_unsent(conn), server->cfg.max_output_bytes);
        hub__parser_stop(&conn->parser);
        hub__conn_close(conn);
        return;
    }
    if (!keep_alive) {
        hub__conn_linger(conn);
        return;
    }
    hub__conn_arm(conn, HUB__TIMER_IDLE, server->cfg.idle_timeout_ms);
    if (!conn->read_paused && hub__conn_unsent(conn) > 0) {
        conn->read_paused = true;
        uv_read_stop((uv_stream_t *)&conn->tcp);
    }
}

static void hub__response_init(hub_http_response_t *resp) { memset(resp, 0, sizeof *resp); }

static void hub__response_free(hub_http_response_t *resp)
{
    free(resp->content_type);
    free(resp->body);
    hub__hbuf_free(&resp->extra);
    memset(resp, 0, sizeof *resp);
}

static const char *hub__error_text(int status)
{
    switch (status) {
    case 400: return "malformed HTTP request";
    case 408: return "request not complete in time";
    case 411: return "chunked request bodies are not supported; send Content-Length";
    case 413: return "request body too large";
    case 431: return "request header section too large";
    case 505: return "only HTTP/1.x is supported";
    default: return http_status_str((enum http_status)status);
    }
}

/* Answers status with a JSON error and ends the connection. */
static void hub__conn_fail(hub__http_conn_t *conn, int status)
{
    if (conn->state != HUB__CONN_READING)
        return;
    if (status != 408)
        conn->server->stats.bad_requests++;
    HUB_DEBUG(HUB__HTTP_COMP, "rejecting a request", "status=%d reason=\"%s\"", status,
              hub__error_text(status));
    hub_http_response_t resp;
    hub__response_init(&resp);
    if (hub_http_respond_json_error(&resp, status, hub__error_text(status)) != 0) {
        hub__response_free(&resp);
        hub__conn_close(conn);
        return;
    }
    /* A HEAD request that we refused after its request line: no body. */
    bool head_only = conn->error_status != 0 && conn->parser.method == HTTP_HEAD;
    hub__conn_send(conn, &resp, head_only, false, false);
    hub__response_free(&resp);
}

/* ---- parsing ---------------------------------------------------------- */

static int hub__count_header_bytes(hub__http_conn_t *conn, size_t n)
{
    conn->header_bytes += n;
    if (conn->header_bytes > conn->server->cfg.max_header_bytes) {
        conn->error_status = 431;
        return -1;
    }
    return 0;
}

static int hub__on_message_begin(http_parser *parser)
{
    hub__http_conn_t *conn = parser->data;
    conn->in_message = true;
    conn->in_header_value = false;
    conn->seen_authorization = conn->seen_content_type = conn->seen_host = false;
    conn->cur_header = HUB__HDR_OTHER;
    conn->error_status = 0;
    conn->header_bytes = HUB__HTTP_REQUEST_LINE_OVERHEAD;
    conn->field_len = 0;
    conn->field_too_long = false;
    hub__hbuf_clear(&conn->url);
    hub__hbuf_clear(&conn->path);
    hub__hbuf_clear(&conn->query);
    hub__hbuf_clear(&conn->authorization);
    hub__hbuf_clear(&conn->content_type);
    hub__hbuf_clear(&conn->host);
    hub__hbuf_clear(&conn->expect);
    hub__hbuf_clear(&conn->body);
    /* The deadlines run from the first byte; trickling does not extend them. */
    hub__conn_arm_request(conn);
    return 0;
}

static int hub__on_url(http_parser *parser, const char *at, size_t n)
{
    hub__http_conn_t *conn = parser->data;
    if (hub__count_header_bytes(conn, n))
        return -1;
    return hub__hbuf_append(&conn->url, at, n) ? -1 : 0;
}

static int hub__on_header_field(http_parser *parser, const char *at, size_t n)
{
    hub__http_conn_t *conn = parser->data;
    if (conn->in_header_value || (conn->field_len == 0 && !conn->field_too_long)) {
        /* A new header line begins. */
        conn->in_header_value = false;
        conn->field_len = 0;
        conn->field_too_long = false;
        if (hub__count_header_bytes(conn, HUB__HTTP_HEADER_LINE_OVERHEAD))
            return -1;
    }
    if (hub__count_header_bytes(conn, n))
        return -1;
    if (conn->field_len + n < sizeof conn->field) {
        memcpy(conn->field + conn->field_len, at, n);
        conn->field_len += n;
    } else {
        conn->field_too_long = true;
    }
    return 0;
}

static hub__hdr_kind_t hub__classify_header(hub__http_conn_t *conn)
{
    if (conn->field_too_long)
        return HUB__HDR_OTHER;
    conn->field[conn->field_len] = '\0';
    if (strcasecmp(conn->field, "Authorization") == 0)
        return HUB__HDR_AUTHORIZATION;
    if (strcasecmp(conn->field, "Content-Type") == 0)
        return HUB__HDR_CONTENT_TYPE;
    if (strcasecmp(conn->field, "Expect") == 0)
        return HUB__HDR_EXPECT;
    if (strcasecmp(conn->field, "Host") == 0)
        return HUB__HDR_HOST;
    return HUB__HDR_OTHER;
}

static int hub__on_header_value(http_parser *parser, const char *at, size_t n)
{
    hub__http_conn_t *conn = parser->data;
    if (!conn->in_header_value) {
        conn->in_header_value = true;
        conn->cur_header = hub__classify_header(conn);
        /* Two Authorization or Content-Type headers: which one would a
         * proxy in front of us have looked at? Refuse to guess. */
        bool *seen = conn->cur_header == HUB__HDR_AUTHORIZATION  ? &conn->seen_authorization
                     : conn->cur_header == HUB__HDR_CONTENT_TYPE ? &conn->seen_content_type
                     : conn->cur_header == HUB__HDR_HOST         ? &conn->seen_host
                                                                 : NULL;
        if (seen) {
            if (*seen) {
                conn->error_status = 400;
                return -1;
            }
            *seen = true;
        }
    }
    if (hub__count_header_bytes(conn, n))
        return -1;
    hub__hbuf_t *dest = conn->cur_header == HUB__HDR_AUTHORIZATION  ? &conn->authorization
                        : conn->cur_header == HUB__HDR_CONTENT_TYPE ? &conn->content_type
                        : conn->cur_header == HUB__HDR_EXPECT       ? &conn->expect
                        : conn->cur_header == HUB__HDR_HOST         ? &conn->host
                                                                    : NULL;
    if (dest && hub__hbuf_append(dest, at, n))
        return -1;
    return 0;
}

static void hub__trim_trailing(hub__hbuf_t *b)
{
    while (b->len > 0 && (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\t'))
        b->data[--b->len] = '\0';
}

static int hub__on_headers_complete(http_parser *parser)
{
    hub__http_conn_t *conn = parser->data;
    hub_http_server_t *server = conn->server;
    if (parser->http_major != 1) {
        conn->error_status = 505;
        return -1;
    }
    if (parser->method == HTTP_CONNECT) {
        conn->error_status = 400;
        return -1;
    }
    if (parser->flags & F_CHUNKED) {
        conn->error_status = 411;
        return -1;
    }
    if ((parser->flags & F_CONTENTLENGTH) && parser->content_length > server->cfg.max_body_bytes) {
        conn->error_status = 413;
        return -1;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (conn->url.len == 0 || http_parser_parse_url(conn->url.data, conn->url.len, 0, &u) != 0) {
        conn->error_status = 400;
        return -1;
    }
    int rc = 0;
    if (u.field_set & (1u << UF_PATH))
        rc = hub__hbuf_append(&conn->path, conn->url.data + u.field_data[UF_PATH].off,
                              u.field_data[UF_PATH].len);
    else
        rc = hub__hbuf_append(&conn->path, "/", 1);
    if (!rc && (u.field_set & (1u << UF_QUERY)))
        rc = hub__hbuf_append(&conn->query, conn->url.data + u.field_data[UF_QUERY].off,
                              u.field_data[UF_QUERY].len);
    if (!rc)
        rc = hub__hbuf_append(&conn->body, "", 0); /* so that body is never NULL */
    if (rc)
        return -1;
    hub__trim_trailing(&conn->authorization);
    hub__trim_trailing(&conn->content_type);
    hub__trim_trailing(&conn->host);
    hub__trim_trailing(&conn->expect);
    hub__conn_headers_done(conn);
    if (parser->content_length > 0 && strcasecmp(hub__hbuf_str(&conn->expect), "100-continue") == 0)
        hub__conn_write(conn, (char *)hub__http_100, sizeof hub__http_100 - 1, true, NULL, 0);
    return conn->state == HUB__CONN_READING ? 0 : -1;
}

static int hub__on_body(http_parser *parser, const char *at, size_t n)
{
    hub__http_conn_t *conn = parser->data;
    if (conn->body.len + n > conn->server->cfg.max_body_bytes) {
        conn->error_status = 413;
        return -1;
    }
    return hub__hbuf_append(&conn->body, at, n) ? -1 : 0;
}

/* "Bearer <token>" (scheme case-insensitive) -> token, or NULL. */
static const char *hub__bearer(hub__hbuf_t *authorization)
{
    const char *p = hub__hbuf_str(authorization);
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return NULL;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p ? p : NULL;
}

static int hub__on_message_complete(http_parser *parser)
{
    hub__http_conn_t *conn = parser->data;
    hub_http_server_t *server = conn->server;
    conn->in_message = false;
    hub_http_request_t req = {
        .method = http_method_str((enum http_method)parser->method),
        .path = hub__hbuf_str(&conn->path),
        .query = hub__hbuf_str(&conn->query),
        .body = hub__hbuf_str(&conn->body),
        .body_len = conn->body.len,
        .bearer_token = hub__bearer(&conn->authorization),
        .content_type = conn->content_type.len ? conn->content_type.data : NULL,
        .host = conn->host.len ? conn->host.data : NULL,
        .keep_alive = http_should_keep_alive(parser) && !parser->upgrade && !server->closing,
    };
    hub_http_response_t resp;
    hub__response_init(&resp);
    server->stats.requests++;
    server->handler(&req, &resp, server->user);
    /* The handler may have closed the server, and with it this connection. */
    if (conn->state != HUB__CONN_READING) {
        hub__response_free(&resp);
        hub__parser_stop(parser);
        return 0;
    }
    if (resp.status == 0) {
        HUB_WARN(HUB__HTTP_COMP, "the handler did not respond; answering 500", "method=%s",
                 req.method);
        hub__response_free(&resp);
        hub__response_init(&resp);
        if (hub_http_respond_json_error(&resp, 500, "the handler did not respond") != 0) {
            hub__response_free(&resp);
            hub__conn_close(conn);
            hub__parser_stop(parser);
            return 0;
        }
    }
    bool keep_alive = req.keep_alive && !server->closing;
    hub__conn_send(conn, &resp, parser->method == HTTP_HEAD, keep_alive, parser->http_minor == 0);
    hub__response_free(&resp);
    if (conn->state != HUB__CONN_READING)
        hub__parser_stop(parser);
    return 0;
}

static const http_parser_settings hub__parser_settings = {
    .on_message_begin = hub__on_message_begin,
    .on_url = hub__on_url,
    .on_header_field = hub__on_header_field,
    .on_header_value = hub__on_header_value,
    .on_headers_complete = hub__on_headers_complete,
    .on_body = hub__on_body,
    .on_message_complete = hub__on_message_complete,
};

/* ---- reading and timers ----------------------------------------------- */

static void hub__on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    hub__http_conn_t *conn = handle->data;
    /* libuv calls read back before the next alloc: one buffer serves all. */
    *buf = uv_buf_init(conn->server->read_buf, HUB__HTTP_READ_BUF);
}

static void hub__on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    hub__http_conn_t *conn = stream->data;
    if (conn->state == HUB__CONN_CLOSING || nread == 0)
        return;
    if (nread < 0) {
        if (conn->state == HUB__CONN_LINGER) {
            conn->eof_seen = true;
            uv_read_stop(stream);
            if (conn->shutdown_done || nread != UV_EOF)
                hub__conn_close(conn);
        } else if (nread == UV_EOF && conn->pending_writes > 0 && !conn->in_message) {
            /* Half-closed after its requests: finish sending, then close. */
            uv_read_stop(stream);
            conn->eof_seen = true;
            hub__conn_linger(conn);
        } else {
            hub__conn_close(conn);
        }
        return;
    }
    if (conn->state == HUB__CONN_LINGER) {
        conn->discarded += (size_t)nread;
        if (conn->discarded > HUB__HTTP_LINGER_MAX_BYTES)
            hub__conn_close(conn);
        return;
    }
    http_parser_execute(&conn->parser, &hub__parser_settings, buf->base, (size_t)nread);
    if (conn->state != HUB__CONN_READING)
        return;
    enum http_errno err = HTTP_PARSER_ERRNO(&conn->parser);
    if (err != HPE_OK) {
        int status = conn->error_status ? conn->error_status
                     : err == HPE_HEADER_OVERFLOW ? 431
                                                  : 400;
        if (err != HPE_CB_url && err != HPE_CB_header_field && err != HPE_CB_header_value &&
            err != HPE_CB_headers_complete && err != HPE_CB_body)
            HUB_DEBUG(HUB__HTTP_COMP, "malformed request", "parser_error=%s",
                      http_errno_name(err));
        if (!conn->error_status && err >= HPE_CB_message_begin && err <= HPE_CB_chunk_complete) {
            /* A callback failed without a status: out of memory. */
            hub__conn_close(conn);
            return;
        }
        hub__conn_fail(conn, status);
    }
}

static void hub__conn_on_timer(uv_timer_t *timer)
{
    hub__http_conn_t *conn = timer->data;
    hub_http_server_t *server = conn->server;
    if (conn->state != HUB__CONN_READING) {
        hub__conn_close(conn);
        return;
    }
    if (conn->timer_kind == HUB__TIMER_IDLE) {
        server->stats.idle_closes++;
        hub__conn_close(conn);
        return;
    }
    server->stats.timeouts++;
    if (conn->in_message && conn->pending_writes == 0)
        hub__conn_fail(conn, 408);
    else
        hub__conn_close(conn);
}

/* ---- accepting -------------------------------------------------------- */

static void hub__reject_on_closed(uv_handle_t *handle)
{
    hub_http_server_t *server = handle->data;
    if (handle == (uv_handle_t *)&server->spare)
        server->spare_busy = false;
    else
        free(handle); /* the uv_tcp_t is the first member of hub__http_reject_t */
    server->open_handles--;
    hub__server_maybe_finish(server);
}

/* Accepts the pending connection, says 503 if the socket takes it now,
 * and closes. Accepting is what keeps libuv polling the listener. */
static void hub__reject(hub_http_server_t *server)
{
    uv_tcp_t *tcp;
    hub__http_reject_t *r = malloc(sizeof *r);
    if (r) {
        tcp = &r->tcp;
    } else if (!server->spare_busy) {
        tcp = &server->spare;
        server->spare_busy = true;
    } else {
        HUB_ERROR(HUB__HTTP_COMP, "out of memory; cannot accept a connection", NULL);
        return;
    }
    uv_tcp_init(server->loop, tcp);
    tcp->data = server;
    server->open_handles++;
    server->stats.rejected_connections++;
    if (uv_accept((uv_stream_t *)&server->listener, (uv_stream_t *)tcp) == 0) {
        uv_buf_t buf = uv_buf_init((char *)hub__http_503, sizeof hub__http_503 - 1);
        (void)uv_try_write((uv_stream_t *)tcp, &buf, 1);
    }
    uv_close((uv_handle_t *)tcp, hub__reject_on_closed);
}

/* Records conn's peer address and tells whether that address already has
 * max_connections_per_client other connections open. */
static bool hub__client_over_limit(hub_http_server_t *server, hub__http_conn_t *conn)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    memset(conn->peer, 0, sizeof conn->peer);
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&sa, &len) != 0)
        return false;
    if (sa.ss_family == AF_INET) {
        conn->peer[0] = 4;
        memcpy(conn->peer + 1, &((struct sockaddr_in *)&sa)->sin_addr, 4);
    } else if (sa.ss_family == AF_INET6) {
        conn->peer[0] = 6;
        memcpy(conn->peer + 1, &((struct sockaddr_in6 *)&sa)->sin6_addr, 16);
    } else {
        return false;
    }
    uint32_t same = 0;
    for (hub__http_conn_t *c = server->conns; c; c = c->next)
        if (c != conn && c->state != HUB__CONN_CLOSING &&
            !memcmp(c->peer, conn->peer, sizeof c->peer))
            same++;
    return same >= server->cfg.max_connections_per_client;
}

static void hub__on_connection(uv_stream_t *listener, int status)
{
    hub_http_server_t *server = listener->data;
    if (status < 0) {
        HUB_WARN(HUB__HTTP_COMP, "accepting a connection failed", "error=%s",
                 uv_strerror(status));
        return;
    }
    if (server->closing)
        return;
    if (server->stats.open_connections >= server->cfg.max_connections) {
        HUB_DEBUG(HUB__HTTP_COMP, "too many open connections; rejecting one", "open=%u",
                  server->stats.open_connections);
        hub__reject(server);
        return;
    }
    hub__http_conn_t *conn = calloc(1, sizeof *conn);
    if (!conn) {
        hub__reject(server);
        return;
    }
    conn->server = server;
    uv_tcp_init(server->loop, &conn->tcp);
    uv_timer_init(server->loop, &conn->timer);
    conn->tcp.data = conn;
    conn->timer.data = conn;
    conn->open_handles = 2;
    server->open_handles += 2;
    conn->next = server->conns;
    if (conn->next)
        conn->next->prev = conn;
    server->conns = conn;
    server->stats.open_connections++;
    http_parser_init(&conn->parser, HTTP_REQUEST);
    conn->parser.data = conn;
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        hub__conn_close(conn);
        return;
    }
    if (hub__client_over_limit(server, conn)) {
        /* One address must not take every slot (and /healthz with them). */
        server->stats.rejected_connections++;
        HUB_DEBUG(HUB__HTTP_COMP, "too many connections from one address; rejecting one",
                  "limit=%u", server->cfg.max_connections_per_client);
        uv_buf_t buf = uv_buf_init((char *)hub__http_503_client, sizeof hub__http_503_client - 1);
        (void)uv_try_write((uv_stream_t *)&conn->tcp, &buf, 1);
        hub__conn_close(conn);
        return;
    }
    if (uv_read_start((uv_stream_t *)&conn->tcp, hub__on_alloc, hub__on_read) != 0) {
        hub__conn_close(conn);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    hub__conn_arm_request(conn);
}

/* ---- public API ------------------------------------------------------- */

int hub_http_new(uv_loop_t *loop, const hub_http_config_t *cfg, hub_http_handler_cb handler,
                 void *user, hub_http_server_t **out)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!loop || !handler)
        return HUB_EINVAL;
    hub_http_server_t *server = calloc(1, sizeof *server);
    if (!server)
        return HUB_ENOMEM;
    if (cfg)
        server->cfg = *cfg;
    hub_http_config_t *c = &server->cfg;
    if (!c->max_header_bytes)
        c->max_header_bytes = 16u * 1024u;
    if (!c->max_body_bytes)
        c->max_body_bytes = 1024u * 1024u;
    if (!c->max_output_bytes)
        c->max_output_bytes = 8u * 1024u * 1024u;
    if (!c->request_timeout_ms)
        c->request_timeout_ms = 10000;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = 60000;
    if (!c->max_connections)
        c->max_connections = 256;
    if (!c->max_connections_per_client)
        c->max_connections_per_client = 32;
    if (!c->header_timeout_ms)
        c->header_timeout_ms = 5000;
    server->loop = loop;
    server->handler = handler;
    server->user = user;
    *out = server;
    return 0;
}

static int hub__uv_to_hub(int uv_rc)
{
    switch (uv_rc) {
    case UV_EADDRINUSE: return HUB_EEXIST;
    case UV_EACCES:
    case UV_EPERM: return HUB_EPERM;
    case UV_EINVAL:
    case UV_EADDRNOTAVAIL: return HUB_EINVAL;
    case UV_ENOMEM: return HUB_ENOMEM;
    default: return HUB_EIO;
    }
}

static void hub__on_listener_closed(uv_handle_t *handle)
{
    hub_http_server_t *server = handle->data;
    server->listener_open = false;
    server->open_handles--;
    hub__server_maybe_finish(server);
}

int hub_http_listen(hub_http_server_t *server, const char *host, int port)
{
    if (!server || !host || port < 0 || port > 65535 || server->listen_tried || server->closing)
        return HUB_EINVAL;
    server->listen_tried = true;
    struct sockaddr_storage addr;
    int rc = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                               : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        HUB_ERROR(HUB__HTTP_COMP, "not an IP address; give a numeric host such as 127.0.0.1",
                  "host=\"%.64s\"", host);
        return HUB_EINVAL;
    }
    rc = uv_tcp_init(server->loop, &server->listener);
    if (rc != 0)
        return hub__uv_to_hub(rc);
    server->listener.data = server;
    server->listener_open = true;
    server->open_handles++;
    rc = uv_tcp_bind(&server->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server->listener, HUB__HTTP_BACKLOG, hub__on_connection);
    if (rc == 0) {
        struct sockaddr_storage bound;
        int len = sizeof bound;
        rc = uv_tcp_getsockname(&server->listener, (struct sockaddr *)&bound, &len);
        if (rc == 0)
            server->port = ntohs(bound.ss_family == AF_INET6
                                     ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                     : ((struct sockaddr_in *)&bound)->sin_port);
    }
    if (rc != 0) {
        HUB_ERROR(HUB__HTTP_COMP, "cannot listen for HTTP; is another process on this port?",
                  "host=%.64s port=%d error=\"%s\"", host, port, uv_strerror(rc));
        uv_close((uv_handle_t *)&server->listener, hub__on_listener_closed);
        return hub__uv_to_hub(rc);
    }
    return 0;
}

int hub_http_port(const hub_http_server_t *server) { return server ? server->port : 0; }

void hub_http_stats(const hub_http_server_t *server, hub_http_stats_t *out)
{
    if (!out)
        return;
    if (!server) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = server->stats;
}

int hub_http_close(hub_http_server_t *server, hub_http_closed_cb on_closed, void *user)
{
    if (!server)
        return HUB_EINVAL;
    if (server->closing)
        return HUB_ECLOSED;
    server->closing = true;
    server->on_closed = on_closed;
    server->closed_user = user;
    if (server->listener_open && !uv_is_closing((uv_handle_t *)&server->listener))
        uv_close((uv_handle_t *)&server->listener, hub__on_listener_closed);
    /* hub__conn_close() only starts closing: the list stays intact. */
    for (hub__http_conn_t *conn = server->conns; conn; conn = conn->next)
        hub__conn_close(conn);
    hub__server_maybe_finish(server);
    return 0;
}

void hub_http_destroy(hub_http_server_t **server_p)
{
    if (!server_p || !*server_p)
        return;
    hub_http_server_t *server = *server_p;
    *server_p = NULL;
    if (server->open_handles == 0) {
        free(server);
        return;
    }
    server->destroy_requested = true;
    if (!server->closing)
        hub_http_close(server, NULL, NULL);
}

/* ---- responses -------------------------------------------------------- */

int hub_http_respond(hub_http_response_t *resp, int status, const char *content_type,
                     const void *body, size_t len)
{
    if (!resp || status < 200 || status > 599 || (len && !body) || len > UINT32_MAX ||
        (content_type && !hub__header_text_ok(content_type)))
        return HUB_EINVAL;
    char *ctype = NULL;
    if (content_type && !(ctype = strdup(content_type)))
        return HUB_ENOMEM;
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        free(ctype);
        return HUB_ENOMEM;
    }
    if (len)
        memcpy(copy, body, len);
    free(resp->content_type);
    free(resp->body);
    resp->status = status;
    resp->content_type = ctype;
    resp->body = copy;
    resp->body_len = len;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t hub__utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t min, cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2, min = 0x80, cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3, min = 0x800, cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4, min = 0x10000, cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int hub_http_respond_json_error(hub_http_response_t *resp, int status, const char *message)
{
    if (!resp || !message)
        return HUB_EINVAL;
    hub__hbuf_t json = {0};
    int rc = hub__hbuf_append(&json, "{\"error\":\"", 10);
    const unsigned char *p = (const unsigned char *)message;
    size_t left = strlen(message);
    while (!rc && left > 0) {
        unsigned char c = *p;
        size_t step = 1;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = hub__hbuf_append(&json, esc, 2);
        } else if (c == '\n') {
            rc = hub__hbuf_append(&json, "\\n", 2);
        } else if (c == '\r') {
            rc = hub__hbuf_append(&json, "\\r", 2);
        } else if (c == '\t') {
            rc = hub__hbuf_append(&json, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            rc = hub__hbuf_printf(&json, "\\u%04x", c);
        } else if ((step = hub__utf8_len(p, left)) == 0) {
            /* Invalid UTF-8 would make the document invalid JSON. */
            step = 1;
            rc = hub__hbuf_append(&json, "\\ufffd", 6);
        } else {
            rc = hub__hbuf_append(&json, (const char *)p, step);
        }
        p += step;
        left -= step;
    }
    if (!rc)
        rc = hub__hbuf_append(&json, "\"}", 2);
    if (!rc)
        rc = hub_http_respond(resp, status, "application/json", json.data, json.len);
    hub__hbuf_free(&json);
    return rc;
}

int hub_http_response_header(hub_http_response_t *resp, const char *name, const char *value)
{
    static const char *const reserved[] = {"Content-Length", "Content-Type", "Connection",
                                           "Transfer-Encoding", "Cache-Control",
                                           "X-Content-Type-Options"};
    if (!resp || !name || !value || !*name || !hub__header_text_ok(value))
        return HUB_EINVAL;
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p)))
            return HUB_EINVAL;
    }
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        if (strcasecmp(name, reserved[i]) == 0)
            return HUB_EINVAL;
    }
    return hub__hbuf_printf(&resp->extra, "%s: %s\r\n", name, value);
}

/* ---- query strings and tokens ----------------------------------------- */

static int hub__hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the next byte of src[*i..n): '+' is a space, %XX a byte.
 * Returns the byte, or -1 for a bad escape. */
static int hub__pct_next(const char *src, size_t n, size_t *i)
{
    char c = src[*i];
    if (c == '+') {
        (*i)++;
        return ' ';
    }
    if (c != '%') {
        (*i)++;
        return (unsigned char)c;
    }
    if (n - *i < 3)
        return -1;
    int hi = hub__hex(src[*i + 1]), lo = hub__hex(src[*i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    *i += 3;
    return hi * 16 + lo;
}

static bool hub__pct_equals(const char *src, size_t n, const char *name)
{
    size_t i = 0;
    const unsigned char *q = (const unsigned char *)name;
    while (i < n) {
        int c = hub__pct_next(src, n, &i);
        if (c < 0 || *q == '\0' || c != *q)
            return false;
        q++;
    }
    return *q == '\0';
}

int hub_http_query_get(const char *query, const char *name, char *buf, size_t size)
{
    if (!query || !name || !buf || size == 0)
        return HUB_EINVAL;
    buf[0] = '\0';
    const char *p = query;
    while (*p) {
        size_t pair_len = strcspn(p, "&");
        size_t key_len = strcspn(p, "=&");
        if (key_len > 0 && hub__pct_equals(p, key_len, name)) {
            const char *val = p + key_len;
            size_t val_len = pair_len - key_len;
            if (val_len > 0) { /* skip '=' */
                val++;
                val_len--;
            }
            size_t i = 0, out = 0;
            while (i < val_len) {
                int c = hub__pct_next(val, val_len, &i);
                if (c <= 0) {
                    buf[0] = '\0';
                    return HUB_EPARSE;
                }
                if (out + 1 >= size) {
                    buf[0] = '\0';
                    return HUB_EFULL;
                }
                buf[out++] = (char)c;
            }
            buf[out] = '\0';
            return 0;
        }
        p += pair_len;
        if (*p == '&')
            p++;
    }
    return HUB_ENOTFOUND;
}

bool hub_http_token_ok(const hub_http_request_t *req, const char *expected_token)
{
    if (!req || !req->bearer_token || !expected_token || !*expected_token)
        return false;
    unsigned char got[SHA256_DIGEST_LENGTH], want[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)req->bearer_token, strlen(req->bearer_token), got);
    SHA256((const unsigned char *)expected_token, strlen(expected_token), want);
    return CRYPTO_memcmp(got, want, sizeof got) == 0;
}
