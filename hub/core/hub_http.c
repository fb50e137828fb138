/* hub_http — the operator endpoint's HTTP/1.1 server: GNU libmicrohttpd
 * driven from the caller's libuv loop; see hub_http.h.
 *
 * How libmicrohttpd runs here. The routes read server state that only the
 * loop thread may touch, so libmicrohttpd has no thread of its own: it runs
 * in its external-epoll mode (MHD_USE_EPOLL, no internal thread), and one
 * uv_poll_t watches its epoll descriptor. When that descriptor is readable
 * (some connection can be read or written), MHD_run() does the ready work
 * without blocking and calls the handler for each complete request; a
 * uv_timer_t follows MHD_get_timeout() for work it has left over.
 *
 * What stays ours. libmicrohttpd parses and writes HTTP; the limits that
 * keep one client from hurting the others are enforced here, because
 * libmicrohttpd either lacks them or cannot answer them the way our
 * clients rely on:
 *   - we own the listening socket (a uv_poll_t on it) and accept ourselves,
 *     so that a connection over max_connections, or over
 *     max_connections_per_client from one address, is told 503 and closed
 *     before libmicrohttpd sees it; the others are handed over with
 *     MHD_add_connection();
 *   - every connection has a uv_timer_t for its deadlines (header section,
 *     whole request, response taken, keep-alive idle), in milliseconds and
 *     from the request's start: libmicrohttpd's own timeout is in seconds
 *     and restarts on every byte, which a trickling client exploits. A
 *     deadline that passes writes 408 (when a request had begun and nothing
 *     was answered yet) and shuts the socket down both ways; libmicrohttpd
 *     sees the end of the stream and closes;
 *   - we keep a duplicate of each connection's descriptor, so that when
 *     libmicrohttpd closes a connection after an error response with the
 *     client's bytes still unread, we can half-close and drop what the
 *     client still sends (for up to a second) instead of letting the close
 *     reset the connection and the client lose the answer.
 * Error answers written by this file are JSON ({"error": "..."}); the few
 * that libmicrohttpd writes itself (a malformed request line or header, a
 * header section beyond its per-connection memory, a request target too
 * long, an HTTP version other than 1.x) keep its status (400, 431, 414,
 * 505) and its short HTML body, and close the connection too.
 *
 * What a handler calls to answer (responses, JSON errors, query strings,
 * tokens) is in hub_http_answer.c; hub_http_internal.h is shared by both. */
#define _GNU_SOURCE /* accept4 */
#include "hub_http.h"
#include "hub_error.h"
#include "hub_http_internal.h"
#include "hub_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define HUB__HTTP_COMP "http"
#define HUB__HTTP_BACKLOG 128
#define HUB__HTTP_ACCEPT_BATCH 1024 /* accepts per listener wake-up: the backlog empties at once */
/* After libmicrohttpd closes a connection the server half-closes and reads
 * (and drops) what the client still sends, for this long or this much, so
 * that the client sees the response rather than a reset. */
#define HUB__HTTP_LINGER_MS 1000u
#define HUB__HTTP_LINGER_MAX_BYTES (4u * 1024u * 1024u)
/* Connections libmicrohttpd may hold beyond max_connections: lingering ones
 * no longer count for it, but rejected ones never reach it. */
#define HUB__HTTP_SPARE_CONNECTIONS 16

typedef enum {
    HUB__TIMER_HEADER = 0, /* the header section must be complete by then */
    HUB__TIMER_REQUEST,    /* the whole request must be complete by then */
    HUB__TIMER_SEND,       /* the response must have been taken by then */
    HUB__TIMER_IDLE,       /* kept alive: the next request must begin by then */
    HUB__TIMER_EOF,        /* half-closed by the client: is anything left to answer? */
    HUB__TIMER_LINGER      /* closed by libmicrohttpd: stop dropping input then */
} http__timer_kind_t;

typedef struct http__conn http__conn_t;

/* One accepted connection, from accept() to the close of its last handle. */
struct http__conn {
    hub_http_server_t *server;
    http__conn_t *prev, *next;
    struct MHD_Connection *mhd;  /* NULL before libmicrohttpd announces it, and after */
    uv_timer_t timer;            /* timer.data and poll.data point back here */
    uv_poll_t poll;              /* on keep_fd: its first bytes, and LINGER's input */
    int fd;                      /* the descriptor libmicrohttpd owns (and closes) */
    int keep_fd;                 /* our duplicate: the socket outlives libmicrohttpd's close */
    int open_handles;            /* the timer and the poll handle */
    bool handed;                 /* given to libmicrohttpd (which then owns fd) */
    http__timer_kind_t timer_kind;
    uint64_t request_start_ms;   /* loop time of the request's start (or the opening) */
    uint8_t peer[17];            /* the client's address family and IP, for its limit */
    struct sockaddr_storage addr; /* the client's address, for libmicrohttpd */
    socklen_t addr_len;
    bool in_request;             /* its request line has arrived */
    bool answered;               /* a response is queued for the current request */
    bool cut;                    /* we shut the socket down: no handler, no linger */
    bool lingering;
    bool peer_closed;            /* the client's FIN came in */
    size_t discarded;            /* LINGER: bytes dropped */
};

/* One request, from its request line (http__on_uri) to its end
 * (http__on_completed). */
typedef struct {
    http__conn_t *conn;
    bool started;                /* the access handler has seen it */
    bool answered;               /* the handler (or an error) queued a response */
    int early_status;            /* refused at its header: answer this once the body is in */
    hub_buf_t uri;               /* the request target, as sent */
    hub_buf_t body;
} http__req_t;

struct hub_http_server {
    uv_loop_t *loop;
    hub_http_config_t cfg;
    hub_http_handler_cb handler;
    void *user;
    struct MHD_Daemon *daemon;
    int listen_fd;
    uv_poll_t listener;   /* on listen_fd */
    uv_poll_t mhd_poll;   /* on libmicrohttpd's epoll descriptor */
    uv_timer_t mhd_timer; /* libmicrohttpd's own timeout */
    bool listen_tried;
    int port;
    bool in_mhd;          /* inside MHD_run(): the handler may be running */
    bool closing;         /* hub_http_close() was called */
    bool finished;        /* every handle closed after closing */
    bool destroy_requested;
    hub_http_closed_cb on_closed;
    void *closed_user;
    unsigned open_handles; /* listener, mhd_poll, mhd_timer, connections' handles */
    http__conn_t *conns;
    hub_http_stats_t stats;
};

static const char http__http_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Content-Length: 37\r\n"
                                     "Cache-Control: no-store\r\n"
                                     "X-Content-Type-Options: nosniff\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "{\"error\":\"too many open connections\"}";

static const char http__http_503_client[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 55\r\n"
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Connection: close\r\n"
    "\r\n"
    "{\"error\":\"too many open connections from your address\"}";

static const char http__http_400[] = "HTTP/1.1 400 Bad Request\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Content-Length: 34\r\n"
                                     "Cache-Control: no-store\r\n"
                                     "X-Content-Type-Options: nosniff\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "{\"error\":\"malformed HTTP request\"}";

static const char http__http_505[] = "HTTP/1.1 505 HTTP Version Not Supported\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Content-Length: 38\r\n"
                                     "Cache-Control: no-store\r\n"
                                     "X-Content-Type-Options: nosniff\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "{\"error\":\"only HTTP/1.x is supported\"}";

static const char http__http_408[] = "HTTP/1.1 408 Request Timeout\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Content-Length: 40\r\n"
                                     "Cache-Control: no-store\r\n"
                                     "X-Content-Type-Options: nosniff\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "{\"error\":\"request not complete in time\"}";

/* ---- driving libmicrohttpd -------------------------------------------- */

static void http__stop_daemon(hub_http_server_t *server);

static void http__on_mhd_timer(uv_timer_t *timer);

/* Lets libmicrohttpd do what is ready, then re-arms its timeout. Never
 * from inside libmicrohttpd's callbacks (only from libuv's). */
static void http__mhd_run(hub_http_server_t *server)
{
    if (!server->daemon || server->in_mhd)
        return;
    server->in_mhd = true;
    MHD_run(server->daemon);
    server->in_mhd = false;
    if (server->closing) { /* a handler closed the server */
        http__stop_daemon(server);
        return;
    }
    MHD_UNSIGNED_LONG_LONG due = 0;
    if (MHD_get_timeout(server->daemon, &due) == MHD_YES)
        uv_timer_start(&server->mhd_timer, http__on_mhd_timer, due, 0);
    else
        uv_timer_stop(&server->mhd_timer);
}

static void http__on_mhd_timer(uv_timer_t *timer)
{
    http__mhd_run(timer->data);
}

static void http__on_mhd_poll(uv_poll_t *poll, int status, int events)
{
    (void)status;
    (void)events;
    http__mhd_run(poll->data);
}

/* ---- server and connection bookkeeping -------------------------------- */

static void http__server_maybe_finish(hub_http_server_t *server)
{
    if (!server->closing || server->open_handles > 0 || server->finished || server->daemon)
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

static void http__server_on_handle_closed(uv_handle_t *handle)
{
    hub_http_server_t *server = handle->data;
    server->open_handles--;
    http__server_maybe_finish(server);
}

static void http__conn_on_handle_closed(uv_handle_t *handle)
{
    http__conn_t *conn = handle->data;
    hub_http_server_t *server = conn->server;
    server->open_handles--;
    if (--conn->open_handles > 0)
        return;
    if (conn->keep_fd >= 0)
        close(conn->keep_fd);
    free(conn);
    http__server_maybe_finish(server);
}

/* Forgets conn: out of the list and the counts, its handles closing. The
 * descriptor libmicrohttpd owns is libmicrohttpd's to close. */
static void http__conn_release(http__conn_t *conn)
{
    hub_http_server_t *server = conn->server;
    if (uv_is_closing((uv_handle_t *)&conn->timer))
        return; /* released already */
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        server->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
    server->stats.open_connections--;
    if (!conn->handed && conn->fd >= 0)
        close(conn->fd);
    conn->fd = -1;
    uv_timer_stop(&conn->timer);
    uv_close((uv_handle_t *)&conn->timer, http__conn_on_handle_closed);
    uv_close((uv_handle_t *)&conn->poll, http__conn_on_handle_closed);
}

static void http__conn_on_timer(uv_timer_t *timer);

static void http__conn_arm(http__conn_t *conn, http__timer_kind_t kind, uint64_t ms)
{
    conn->timer_kind = kind;
    uv_timer_start(&conn->timer, http__conn_on_timer, ms, 0);
}

/* Arms the deadline of a request that begins now: its header section must
 * be complete within header_timeout_ms, the whole request within
 * request_timeout_ms (http__conn_headers_done() moves to the latter). */
static void http__conn_arm_request(http__conn_t *conn)
{
    const hub_http_config_t *c = &conn->server->cfg;
    conn->request_start_ms = uv_now(conn->server->loop);
    http__conn_arm(conn, HUB__TIMER_HEADER,
                   c->header_timeout_ms < c->request_timeout_ms ? c->header_timeout_ms
                                                                : c->request_timeout_ms);
}

static void http__conn_headers_done(http__conn_t *conn)
{
    const hub_http_config_t *c = &conn->server->cfg;
    uint64_t spent = uv_now(conn->server->loop) - conn->request_start_ms;
    uint64_t left = spent < c->request_timeout_ms ? c->request_timeout_ms - spent : 1;
    http__conn_arm(conn, HUB__TIMER_REQUEST, left);
}

/* Ends the connection from our side: libmicrohttpd reads the end of the
 * stream and closes it (and calls the handler no more for it). */
static void http__conn_cut(http__conn_t *conn)
{
    if (conn->cut)
        return;
    conn->cut = true;
    uv_timer_stop(&conn->timer);
    if (conn->handed)
        shutdown(conn->keep_fd, SHUT_RDWR);
    else
        http__conn_release(conn); /* still ours alone */
}

/* The client half-closed (its FIN came) and libmicrohttpd has taken what
 * was buffered: once nothing is left to answer, end the connection, as
 * libmicrohttpd (edge-triggered) would not see the end of the stream that
 * came with the request's last bytes. */
static void http__conn_eof_check(http__conn_t *conn)
{
    if (conn->cut || conn->lingering || !conn->mhd || conn->answered)
        return; /* closed, or an answer is on its way (completion checks again) */
    int unread = 0;
    if (ioctl(conn->keep_fd, FIONREAD, &unread) == 0 && unread > 0) {
        http__conn_arm(conn, HUB__TIMER_EOF, 10); /* libmicrohttpd has more to read */
        return;
    }
    http__conn_cut(conn);
}

static void http__conn_on_peer_closed(uv_poll_t *poll, int status, int events)
{
    (void)status;
    (void)events;
    http__conn_t *conn = poll->data;
    hub_http_server_t *server = conn->server;
    uv_poll_stop(poll);
    conn->peer_closed = true;
    http__mhd_run(server);
    http__conn_eof_check(conn);
    http__mhd_run(server);
}

static void http__conn_on_timer(uv_timer_t *timer)
{
    http__conn_t *conn = timer->data;
    hub_http_server_t *server = conn->server;
    switch (conn->timer_kind) {
    case HUB__TIMER_EOF:
        http__mhd_run(server); /* pipelined requests still buffered begin now */
        http__conn_eof_check(conn);
        http__mhd_run(server);
        return;
    case HUB__TIMER_LINGER: http__conn_release(conn); return;
    case HUB__TIMER_IDLE:
        server->stats.idle_closes++;
        break;
    case HUB__TIMER_SEND:
        server->stats.write_overflows++;
        HUB_DEBUG(HUB__HTTP_COMP, "client is not reading its response; closing the connection",
                  "waited_ms=%u", server->cfg.request_timeout_ms);
        break;
    case HUB__TIMER_HEADER:
    case HUB__TIMER_REQUEST:
        server->stats.timeouts++;
        /* A connection that sent nothing is just closed. The socket takes
         * a short answer at once, or the client does not get one. */
        if (conn->in_request && !conn->answered)
            (void)!send(conn->keep_fd, http__http_408, sizeof http__http_408 - 1,
                        MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
    }
    http__conn_cut(conn);
    http__mhd_run(server);
}

/* ---- lingering after libmicrohttpd's close ----------------------------- */

static void http__conn_on_linger_read(uv_poll_t *poll, int status, int events)
{
    (void)events;
    http__conn_t *conn = poll->data;
    char buf[16384];
    for (int i = 0; i < 16 && status == 0; i++) {
        ssize_t n = recv(conn->keep_fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            conn->discarded += (size_t)n;
            if (conn->discarded <= HUB__HTTP_LINGER_MAX_BYTES)
                continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        break; /* the client's FIN, an error, or enough dropped */
    }
    uv_poll_stop(poll);
    http__conn_release(conn);
}

/* libmicrohttpd closed conn (its answer is written, FIN included when the
 * kernel takes it): drop what the client still sends until its FIN, for at
 * most HUB__HTTP_LINGER_MS, then close our duplicate, which really closes. */
static void http__conn_linger(http__conn_t *conn)
{
    hub_http_server_t *server = conn->server;
    if (conn->cut || server->closing) {
        http__conn_release(conn);
        return;
    }
    conn->lingering = true;
    if (!conn->handed) {
        close(conn->fd);
        conn->fd = -1;
    }
    shutdown(conn->keep_fd, SHUT_WR);
    http__conn_arm(conn, HUB__TIMER_LINGER, HUB__HTTP_LINGER_MS);
    if (uv_poll_start(&conn->poll, UV_READABLE, http__conn_on_linger_read) != 0)
        http__conn_release(conn);
}

/* ---- libmicrohttpd's callbacks ---------------------------------------- */

static http__conn_t *http__conn_of(struct MHD_Connection *mhd)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void http__on_connection(void *cls, struct MHD_Connection *mhd, void **socket_context,
                                enum MHD_ConnectionNotificationCode toe)
{
    hub_http_server_t *server = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
        for (http__conn_t *c = server->conns; ci && c; c = c->next)
            if (!c->mhd && c->fd == ci->connect_fd) {
                c->mhd = mhd;
                *socket_context = c;
                break;
            }
        return;
    }
    http__conn_t *conn = *socket_context;
    if (toe != MHD_CONNECTION_NOTIFY_CLOSED || !conn)
        return;
    *socket_context = NULL;
    conn->mhd = NULL;
    conn->fd = -1;
    uv_timer_stop(&conn->timer);
    http__conn_linger(conn);
}

static void *http__on_uri(void *cls, const char *uri, struct MHD_Connection *mhd)
{
    (void)cls;
    http__conn_t *conn = http__conn_of(mhd);
    http__req_t *r = calloc(1, sizeof *r);
    if (!r || hub_buf_put(&r->uri, uri, strlen(uri)) != 0) {
        free(r);
        return NULL; /* the access handler then refuses the request */
    }
    r->conn = conn;
    if (conn) {
        conn->in_request = true;
        conn->answered = false;
        /* The deadlines run from the request's start; trickling does not
         * extend them. A kept-alive connection's next request starts now. */
        if (conn->timer_kind == HUB__TIMER_IDLE || conn->timer_kind == HUB__TIMER_EOF)
            http__conn_arm_request(conn);
    }
    return r;
}

static void http__on_completed(void *cls, struct MHD_Connection *mhd, void **req_cls,
                               enum MHD_RequestTerminationCode toe)
{
    hub_http_server_t *server = cls;
    http__req_t *r = *req_cls;
    *req_cls = NULL;
    /* Refused by libmicrohttpd itself (malformed, too large): it answered
     * an error and ends the connection. */
    if (r && !r->answered && toe == MHD_REQUEST_TERMINATED_WITH_ERROR && r->conn && !r->conn->cut)
        server->stats.bad_requests++;
    http__conn_t *conn = r ? r->conn : http__conn_of(mhd);
    if (conn && conn->mhd && !conn->cut) {
        conn->in_request = false;
        conn->answered = false;
        if (conn->peer_closed)
            http__conn_arm(conn, HUB__TIMER_EOF, 0);
        else if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
            http__conn_arm(conn, HUB__TIMER_IDLE, server->cfg.idle_timeout_ms);
    }
    if (r) {
        hub_buf_free(&r->uri);
        hub_buf_free(&r->body);
        free(r);
    }
}

/* ---- answering -------------------------------------------------------- */

/* Queues resp on the connection (takes its body). keep_alive false makes it
 * the connection's last response; http10_keep_alive says so to an HTTP/1.0
 * client that asked. */
static enum MHD_Result http__queue(http__req_t *r, struct MHD_Connection *mhd,
                                   hub_http_response_t *resp, bool keep_alive,
                                   bool http10_keep_alive)
{
    http__conn_t *conn = r->conn; /* never NULL here: http__on_request checked */
    hub_http_server_t *server = conn->server;
    if (conn->keep_fd >= 0) {
        /* What the client has not taken yet, plus this: over the cap, it
         * pipelines requests but does not read the answers. */
        int unsent = 0;
        if (ioctl(conn->keep_fd, SIOCOUTQ, &unsent) == 0 && unsent > 0 &&
            (size_t)unsent + resp->body_len > server->cfg.max_output_bytes) {
            server->stats.write_overflows++;
            HUB_DEBUG(HUB__HTTP_COMP,
                      "client is not reading its responses; closing the connection",
                      "unsent=%d limit=%zu", unsent, server->cfg.max_output_bytes);
            r->answered = true;
            return MHD_NO;
        }
    }
    struct MHD_Response *m =
        MHD_create_response_from_buffer(resp->body_len, resp->body, MHD_RESPMEM_MUST_FREE);
    if (!m)
        return MHD_NO;
    resp->body = NULL;
    resp->body_len = 0;
    if (resp->content_type)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    MHD_add_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
    /* The handler's headers: names are tokens and values have no control
     * characters (hub_http_response_header() checked), so ": " splits. */
    char *save = NULL;
    for (char *line = resp->extra.data ? strtok_r(resp->extra.data, "\r\n", &save) : NULL; line;
         line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        MHD_add_response_header(m, line, colon + 2);
    }
    if (!keep_alive)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONNECTION, "close");
    else if (http10_keep_alive)
        MHD_set_response_options(m, MHD_RF_SEND_KEEP_ALIVE_HEADER, MHD_RO_END);
    enum MHD_Result rc = MHD_queue_response(mhd, (unsigned)resp->status, m);
    MHD_destroy_response(m);
    r->answered = true;
    if (rc == MHD_YES) {
        conn->answered = true;
        http__conn_arm(conn, HUB__TIMER_SEND, server->cfg.request_timeout_ms);
    }
    return rc;
}

static const char *http__error_text(int status)
{
    switch (status) {
    case 400: return "malformed HTTP request";
    case 411: return "chunked request bodies are not supported; send Content-Length";
    case 413: return "request body too large";
    case 431: return "request header section too large";
    case 505: return "only HTTP/1.x is supported";
    default: return "the server could not answer";
    }
}

/* Answers status with a JSON error and ends the connection. */
static enum MHD_Result http__queue_error(http__req_t *r, struct MHD_Connection *mhd, int status)
{
    r->conn->server->stats.bad_requests++;
    HUB_DEBUG(HUB__HTTP_COMP, "rejecting a request", "status=%d reason=\"%s\"", status,
              http__error_text(status));
    hub_http_response_t resp;
    hub_http__response_init(&resp);
    enum MHD_Result rc = MHD_NO;
    if (hub_http_respond_json_error(&resp, status, http__error_text(status)) == 0)
        rc = http__queue(r, mhd, &resp, false, false);
    hub_http__response_free(&resp);
    return rc;
}

/* ---- requests --------------------------------------------------------- */

typedef struct {
    unsigned authorization, content_type, host, content_length;
    bool chunked;
} http__header_count_t;

static enum MHD_Result http__count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value)
{
    (void)kind;
    http__header_count_t *n = cls;
    if (!strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION))
        n->authorization++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE))
        n->content_type++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_HOST))
        n->host++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        n->content_length++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) && value && *value)
        n->chunked = true;
    return MHD_YES;
}

/* The status a request gets at the end of its header section, or 0. */
static int http__check_head(hub_http_server_t *server, struct MHD_Connection *mhd,
                            const char *method, const char *version)
{
    if (strncmp(version, "HTTP/1.", 7) != 0)
        return 505;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci && ci->header_size > server->cfg.max_header_bytes)
        return 431;
    if (!strcmp(method, "CONNECT"))
        return 400;
    http__header_count_t n = {0};
    MHD_get_connection_values(mhd, MHD_HEADER_KIND, http__count_header, &n);
    /* Two Authorization or Content-Type headers: which one would a proxy in
     * front of us have looked at? Refuse to guess. */
    if (n.authorization > 1 || n.content_type > 1 || n.host > 1 || n.content_length > 1)
        return 400;
    if (n.chunked)
        return 411;
    const char *clen = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen && strtoull(clen, NULL, 10) > server->cfg.max_body_bytes)
        return 413;
    return 0;
}

/* value without the spaces and tabs around it, copied into buf. */
static const char *http__trimmed(const char *value, char *buf, size_t size)
{
    if (!value)
        return NULL;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen(value);
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (len >= size)
        len = size - 1;
    memcpy(buf, value, len);
    buf[len] = '\0';
    return buf;
}

/* "Bearer <token>" (scheme case-insensitive) -> token, or NULL. */
static const char *http__bearer(const char *authorization)
{
    const char *p = authorization;
    if (!p || strlen(p) < 7 || strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return NULL;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p ? p : NULL;
}

/* Does the Connection header hold `token` (comma-separated, any case)? */
static bool http__connection_has(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    for (const char *p = value; p && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t end = len;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        if (end == tlen && !strncasecmp(p, token, tlen))
            return true;
        p += len;
    }
    return false;
}

static enum MHD_Result http__dispatch(hub_http_server_t *server, http__req_t *r,
                                      struct MHD_Connection *mhd, const char *method,
                                      const char *version)
{
    /* The request target as sent: path and query still percent-encoded
     * (libmicrohttpd's own url argument is decoded). */
    char *target = r->uri.data ? r->uri.data : (char *)"";
    char *hash = strchr(target, '#');
    if (hash)
        *hash = '\0';
    char *query = strchr(target, '?');
    if (query)
        *query++ = '\0';
    if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
        char *slash = strchr(strstr(target, "//") + 2, '/'); /* absolute form */
        target = slash ? slash : (char *)"";
    }
    char ctype_buf[1024], host_buf[512], conn_buf[256];
    char auth_buf[2048] = ""; /* zeroed: clang-analyzer cannot follow http__trimmed() */
    const char *ctype = http__trimmed(
        MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE), ctype_buf,
        sizeof ctype_buf);
    const char *auth = http__trimmed(
        MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION), auth_buf,
        sizeof auth_buf);
    const char *host =
        http__trimmed(MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
                      host_buf, sizeof host_buf);
    const char *connection =
        http__trimmed(MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION),
                      conn_buf, sizeof conn_buf);
    bool http10 = strcmp(version, MHD_HTTP_VERSION_1_0) == 0;
    bool keep_alive = http10 ? http__connection_has(connection, "keep-alive")
                             : !http__connection_has(connection, "close");
    if (hub_buf_put(&r->body, "", 0) != 0) /* so that body is never NULL */
        return MHD_NO;
    hub_http_request_t req = {
        .method = method,
        .path = target[0] ? target : "/",
        .query = query ? query : "",
        .body = r->body.data,
        .body_len = r->body.len,
        .bearer_token = http__bearer(auth),
        .content_type = ctype && *ctype ? ctype : NULL,
        .host = host && *host ? host : NULL,
        .keep_alive = keep_alive && !server->closing,
    };
    hub_http_response_t resp;
    hub_http__response_init(&resp);
    server->stats.requests++;
    server->handler(&req, &resp, server->user);
    if (resp.status == 0) {
        HUB_WARN(HUB__HTTP_COMP, "the handler did not respond; answering 500", "method=%s",
                 req.method);
        hub_http__response_free(&resp);
        hub_http__response_init(&resp);
        if (hub_http_respond_json_error(&resp, 500, "the handler did not respond") != 0) {
            hub_http__response_free(&resp);
            return MHD_NO;
        }
    }
    /* The handler may have closed the server: this is the last answer. */
    keep_alive = keep_alive && !server->closing;
    enum MHD_Result rc = http__queue(r, mhd, &resp, keep_alive, http10 && keep_alive);
    hub_http__response_free(&resp);
    return rc;
}

static enum MHD_Result http__on_request(void *cls, struct MHD_Connection *mhd, const char *url,
                                        const char *method, const char *version,
                                        const char *upload_data, size_t *upload_data_size,
                                        void **req_cls)
{
    (void)url;
    hub_http_server_t *server = cls;
    http__req_t *r = *req_cls;
    if (!r || !r->conn || r->conn->cut)
        return MHD_NO; /* out of memory at its request line, or timed out: close */
    if (!r->started) {
        r->started = true;
        http__conn_headers_done(r->conn);
        int status = http__check_head(server, mhd, method, version);
        /* A body too large to read is refused at once (no "100 Continue");
         * the others after reading (and dropping) the body: the close that
         * follows must not find the client's bytes unread. */
        if (status == 413 || status == 411 || status == 505)
            return http__queue_error(r, mhd, status);
        r->early_status = status;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->early_status) {
            if (r->body.len + *upload_data_size > server->cfg.max_body_bytes)
                return http__queue_error(r, mhd, 413); /* Content-Length said otherwise */
            if (hub_buf_put(&r->body, upload_data, *upload_data_size) != 0)
                return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->answered)
        return MHD_YES;
    if (r->early_status)
        return http__queue_error(r, mhd, r->early_status);
    return http__dispatch(server, r, mhd, method, version);
}

/* ---- accepting -------------------------------------------------------- */

static void http__peer_key(const struct sockaddr_storage *sa, uint8_t key[17])
{
    memset(key, 0, 17);
    if (sa->ss_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->ss_family == AF_INET6) {
        key[0] = 6;
        memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

/* How many connections from the address `key` are open. */
static uint32_t http__client_connections(const hub_http_server_t *server, const uint8_t key[17])
{
    uint32_t same = 0;
    for (const http__conn_t *c = server->conns; c; c = c->next)
        if (!memcmp(c->peer, key, 17))
            same++;
    return same;
}

/* Tells a connection refused on arrival why, if the socket takes it now. */
static void http__reject(hub_http_server_t *server, int fd, const char *answer, size_t len)
{
    server->stats.rejected_connections++;
    (void)!send(fd, answer, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
}

/* What the client's first n bytes at p earn at once: 400 when they cannot
 * begin an HTTP request (a method token and a space, or the empty lines a
 * client may send first), 505 when the request line is there and names
 * another HTTP version, else 0 (libmicrohttpd takes it from there). */
static int http__first_bytes_status(const char *p, size_t n)
{
    if (n > 0 && (p[0] == '\r' || p[0] == '\n'))
        return 0;
    size_t i = 0;
    while (i < n && p[i] != ' ') {
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') || p[i] == '-' ||
              p[i] == '_'))
            return 400;
        i++;
    }
    if (i == 0)
        return 400;
    const char *eol = memchr(p, '\n', n);
    if (!eol)
        return 0; /* the request line is not all here: libmicrohttpd decides */
    size_t len = (size_t)(eol - p);
    if (len > 0 && p[len - 1] == '\r')
        len--;
    const char *version = p + len;
    while (version > p && version[-1] != ' ')
        version--;
    size_t vlen = (size_t)(p + len - version);
    if (vlen >= 5 && !memcmp(version, "HTTP/", 5) && (vlen < 7 || memcmp(version, "HTTP/1.", 7)))
        return 505;
    return 0;
}

/* The client's first bytes are here: bytes that cannot begin an HTTP
 * request (a TLS hello, binary noise) get 400 from us, as libmicrohttpd
 * would close without a word; the rest goes to libmicrohttpd. */
static void http__conn_on_first_bytes(uv_poll_t *poll, int status, int events)
{
    (void)events;
    http__conn_t *conn = poll->data;
    hub_http_server_t *server = conn->server;
    uv_poll_stop(poll);
    char head[512];
    ssize_t n = status < 0 ? -1 : recv(conn->keep_fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && status >= 0) {
        uv_poll_start(poll, UV_READABLE, http__conn_on_first_bytes);
        return;
    }
    if (n <= 0) { /* closed before a word */
        http__conn_cut(conn);
        return;
    }
    int refusal = http__first_bytes_status(head, (size_t)n);
    if (refusal) {
        server->stats.bad_requests++;
        HUB_DEBUG(HUB__HTTP_COMP, "rejecting a request", "status=%d reason=\"%s\"", refusal,
                  refusal == 505 ? "not HTTP/1.x" : "not an HTTP request line");
        if (refusal == 505)
            (void)!send(conn->keep_fd, http__http_505, sizeof http__http_505 - 1,
                        MSG_DONTWAIT | MSG_NOSIGNAL);
        else
            (void)!send(conn->keep_fd, http__http_400, sizeof http__http_400 - 1,
                        MSG_DONTWAIT | MSG_NOSIGNAL);
        uv_timer_stop(&conn->timer);
        http__conn_linger(conn);
        return;
    }
    conn->handed = true;
    if (MHD_add_connection(server->daemon, conn->fd, (const struct sockaddr *)&conn->addr,
                           conn->addr_len) != MHD_YES) {
        /* libmicrohttpd closed fd. */
        HUB_WARN(HUB__HTTP_COMP, "libmicrohttpd refused a connection", "error=\"%s\"",
                 strerror(errno));
        conn->fd = -1;
        conn->cut = true;
        http__conn_release(conn);
        return;
    }
    uv_poll_start(poll, UV_DISCONNECT, http__conn_on_peer_closed);
    http__mhd_run(server);
}

static void http__accept_one(hub_http_server_t *server, int fd, struct sockaddr_storage *sa,
                             socklen_t sa_len)
{
    uint8_t key[17];
    http__peer_key(sa, key);
    if (server->stats.open_connections >= server->cfg.max_connections) {
        HUB_DEBUG(HUB__HTTP_COMP, "too many open connections; rejecting one", "open=%u",
                  server->stats.open_connections);
        http__reject(server, fd, http__http_503, sizeof http__http_503 - 1);
        return;
    }
    if (key[0] && http__client_connections(server, key) >= server->cfg.max_connections_per_client) {
        /* One address must not take every slot (and /healthz with them). */
        HUB_DEBUG(HUB__HTTP_COMP, "too many connections from one address; rejecting one",
                  "limit=%u", server->cfg.max_connections_per_client);
        http__reject(server, fd, http__http_503_client, sizeof http__http_503_client - 1);
        return;
    }
    http__conn_t *conn = calloc(1, sizeof *conn);
    int keep = conn ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (keep < 0) {
        free(conn);
        http__reject(server, fd, http__http_503, sizeof http__http_503 - 1);
        return;
    }
    conn->server = server;
    conn->fd = fd;
    conn->keep_fd = keep;
    memcpy(conn->peer, key, sizeof conn->peer);
    if (uv_poll_init(server->loop, &conn->poll, keep) != 0) {
        close(keep);
        free(conn);
        http__reject(server, fd, http__http_503, sizeof http__http_503 - 1);
        return;
    }
    conn->poll.data = conn;
    uv_timer_init(server->loop, &conn->timer);
    conn->timer.data = conn;
    conn->open_handles = 2;
    server->open_handles += 2;
    conn->next = server->conns;
    if (conn->next)
        conn->next->prev = conn;
    server->conns = conn;
    server->stats.open_connections++;
    memcpy(&conn->addr, sa, sa_len);
    conn->addr_len = sa_len;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    http__conn_arm_request(conn);
    if (uv_poll_start(&conn->poll, UV_READABLE, http__conn_on_first_bytes) != 0)
        http__conn_cut(conn);
}

static void http__on_listener(uv_poll_t *poll, int status, int events)
{
    (void)events;
    hub_http_server_t *server = poll->data;
    if (status < 0 || server->closing)
        return;
    for (int i = 0; i < HUB__HTTP_ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        memset(&sa, 0, sizeof sa);
        socklen_t sa_len = sizeof sa;
        int fd = accept4(server->listen_fd, (struct sockaddr *)&sa, &sa_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                HUB_WARN(HUB__HTTP_COMP, "accepting a connection failed", "error=\"%s\"",
                         strerror(errno));
            break;
        }
        http__accept_one(server, fd, &sa, sa_len);
    }
    http__mhd_run(server);
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
    server->listen_fd = -1;
    *out = server;
    return 0;
}

static int http__errno_to_hub(int e)
{
    switch (e) {
    case EADDRINUSE: return HUB_EEXIST;
    case EACCES:
    case EPERM: return HUB_EPERM;
    case EINVAL:
    case EADDRNOTAVAIL: return HUB_EINVAL;
    case ENOMEM:
    case ENOBUFS: return HUB_ENOMEM;
    default: return HUB_EIO;
    }
}

static int http__bind(hub_http_server_t *server, const struct sockaddr *addr, socklen_t len)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, addr, len) != 0 || listen(fd, HUB__HTTP_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    memset(&bound, 0, sizeof bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        server->port = ntohs(bound.ss_family == AF_INET6
                                 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                 : ((struct sockaddr_in *)&bound)->sin_port);
    server->listen_fd = fd;
    return 0;
}

static int http__start_daemon(hub_http_server_t *server)
{
    const hub_http_config_t *c = &server->cfg;
    /* libmicrohttpd's per-connection memory holds the header section (and
     * the read buffer): room for max_header_bytes and the parsed headers,
     * so that our own check answers 431, and only a far larger header
     * section meets libmicrohttpd's. */
    size_t pool = 2 * c->max_header_bytes + 32u * 1024u;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)(c->max_connections + HUB__HTTP_SPARE_CONNECTIONS),
         NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)pool, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 0, NULL}, /* our timers keep the time */
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)http__on_uri, server},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)http__on_completed, server},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)http__on_connection, server},
        {MHD_OPTION_END, 0, NULL},
    };
    server->daemon =
        MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, http__on_request,
                         server, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!server->daemon)
        return HUB_EIO;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    int epoll_fd = di ? di->epoll_fd : -1;
    if (epoll_fd < 0 || uv_poll_init(server->loop, &server->mhd_poll, epoll_fd) != 0) {
        MHD_stop_daemon(server->daemon);
        server->daemon = NULL;
        return HUB_EIO;
    }
    server->mhd_poll.data = server;
    server->open_handles++;
    uv_timer_init(server->loop, &server->mhd_timer);
    server->mhd_timer.data = server;
    server->open_handles++;
    uv_poll_start(&server->mhd_poll, UV_READABLE, http__on_mhd_poll);
    return 0;
}

/* Closes the handles around libmicrohttpd, then stops it (it closes every
 * connection, and its epoll descriptor after libuv has let go of it). */
static void http__stop_daemon(hub_http_server_t *server)
{
    if (!server->daemon || server->in_mhd)
        return;
    uv_close((uv_handle_t *)&server->mhd_poll, http__server_on_handle_closed);
    uv_close((uv_handle_t *)&server->mhd_timer, http__server_on_handle_closed);
    struct MHD_Daemon *daemon = server->daemon;
    MHD_stop_daemon(daemon);
    server->daemon = NULL;
    /* Connections libmicrohttpd never announced (none, normally). */
    while (server->conns) {
        http__conn_t *conn = server->conns;
        conn->cut = true;
        http__conn_release(conn);
    }
    /* The handles just closed call http__server_maybe_finish() later. */
}

int hub_http_listen(hub_http_server_t *server, const char *host, int port)
{
    if (!server || !host || port < 0 || port > 65535 || server->listen_tried || server->closing)
        return HUB_EINVAL;
    server->listen_tried = true;
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    bool v6 = strchr(host, ':') != NULL;
    int rc = v6 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        HUB_ERROR(HUB__HTTP_COMP, "not an IP address; give a numeric host such as 127.0.0.1",
                  "host=\"%.64s\"", host);
        return HUB_EINVAL;
    }
    int e = http__bind(server, (const struct sockaddr *)&addr,
                       v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    if (e != 0) {
        HUB_ERROR(HUB__HTTP_COMP, "cannot listen for HTTP; is another process on this port?",
                  "host=%.64s port=%d error=\"%s\"", host, port, strerror(e));
        return http__errno_to_hub(e);
    }
    rc = http__start_daemon(server);
    if (rc == 0 && uv_poll_init(server->loop, &server->listener, server->listen_fd) != 0)
        rc = HUB_EIO;
    if (rc != 0) {
        HUB_ERROR(HUB__HTTP_COMP, "cannot start the HTTP server", "error=\"%s\"",
                  hub_strerror(rc));
        server->closing = true;
        http__stop_daemon(server);
        close(server->listen_fd);
        server->listen_fd = -1;
        server->port = 0;
        server->closing = false;
        server->finished = false;
        return rc;
    }
    server->listener.data = server;
    server->open_handles++;
    uv_poll_start(&server->listener, UV_READABLE, http__on_listener);
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
    if (server->listen_fd >= 0) {
        /* uv_close() lets go of the descriptor at once: close it now, so
         * that no client connects to a server that will not answer. */
        uv_close((uv_handle_t *)&server->listener, http__server_on_handle_closed);
        close(server->listen_fd);
        server->listen_fd = -1;
    }
    /* Lingering connections are libmicrohttpd's no more: ours to end. */
    for (http__conn_t *conn = server->conns, *next; conn; conn = next) {
        next = conn->next;
        if (conn->lingering || !conn->handed)
            http__conn_release(conn);
    }
    /* From the handler, libmicrohttpd is still running: http__mhd_run()
     * stops it when it returns. */
    http__stop_daemon(server);
    http__server_maybe_finish(server);
    return 0;
}

void hub_http_destroy(hub_http_server_t **server_p)
{
    if (!server_p || !*server_p)
        return;
    hub_http_server_t *server = *server_p;
    *server_p = NULL;
    if (server->open_handles == 0 && !server->daemon) {
        if (server->listen_fd >= 0)
            close(server->listen_fd);
        free(server);
        return;
    }
    server->destroy_requested = true;
    if (!server->closing)
        hub_http_close(server, NULL, NULL);
}
