/* hub_http — the HTTP/1.1 server of the operator endpoint, on the caller's
 * libuv loop: GNU libmicrohttpd parses and writes HTTP (driven from the loop
 * through its epoll descriptor, no thread of its own); accepting, the limits
 * below and the deadlines are ours (hub_http.c says why).
 *
 * One job: turn bytes from loopback clients into complete requests, hand
 * each to one synchronous handler, and write back what the handler filled
 * in. Everything runs on the loop thread and nothing blocks it; the handler
 * must not block either (it answers from memory: metrics, health, queues).
 *
 * The handler sees a hub_http_request_t that lives only for the call, and
 * answers through hub_http_respond() and friends; those copy what they are
 * given, so the handler keeps ownership of its own buffers. A handler that
 * does not respond gets 500. HEAD requests get the handler's headers
 * without the body.
 *
 * What the server enforces, so that a hostile or broken client costs a
 * bounded amount of memory and time (limits in hub_http_config_t):
 *   - a header section over max_header_bytes gets 431 and the connection
 *     closes; a body over max_body_bytes gets 413 (before the body is read,
 *     when Content-Length says so); bytes that are not HTTP/1.x, CONNECT,
 *     and a repeated Authorization, Content-Type, Host or Content-Length
 *     header get 400; an HTTP version other than 1.x gets 505. These
 *     answers are JSON, except the few libmicrohttpd gives itself (a
 *     malformed header line, a header section far beyond max_header_bytes):
 *     same status, its short HTML body;
 *   - chunked request bodies are not supported: they get 411 (Length
 *     Required) and the connection closes — send Content-Length;
 *   - a request whose header section is not complete within
 *     header_timeout_ms of its first byte (or of the connection's opening),
 *     or that is not complete within request_timeout_ms, gets 408 and is
 *     closed (a connection that sent nothing is just closed); a keep-alive
 *     connection with no new request within idle_timeout_ms is closed;
 *   - beyond max_connections open connections, or beyond
 *     max_connections_per_client from the client's IP address, a new
 *     connection is accepted, sent 503 if that can be done without waiting,
 *     and closed: one client holding idle connections cannot take every
 *     slot, and /healthz keeps answering the others;
 *   - one response at a time per connection; a connection whose unsent
 *     output would exceed max_output_bytes, or that has not taken its
 *     response within request_timeout_ms, is closed (a client that
 *     pipelines requests but never reads);
 *   - a client that half-closes gets the answers to what it sent, then the
 *     connection closes.
 * Responses always carry Content-Length, Cache-Control: no-store and
 * X-Content-Type-Options: nosniff, and Connection: close when the server
 * closes afterwards. After an error response the server half-closes and
 * discards input for up to a second, so that the client reads the error
 * instead of a reset.
 *
 * Lifetime: hub_http_new() allocates; hub_http_listen() binds once;
 * hub_http_close() closes the listener and every connection and calls back
 * when all their handles are closed, after which uv_loop_close() can
 * succeed; hub_http_destroy() frees (a server still open is closed first
 * and freed when the loop has run its close callbacks).
 *
 * Errors: HUB_EINVAL (bad argument, or listen called twice), HUB_ENOMEM,
 * HUB_EEXIST (address in use), HUB_EPERM (not allowed to bind), HUB_EIO
 * (any other socket error; the log says which), HUB_ENOTFOUND, HUB_EFULL,
 * HUB_EPARSE (hub_http_query_get).
 *
 * Not thread-safe: call everything from the loop thread.
 */
#ifndef HUB_HTTP_H
#define HUB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hub_http_server hub_http_server_t;
typedef struct hub_http_response hub_http_response_t;

/* Zero in any field means the default given beside it. */
typedef struct {
    size_t max_header_bytes;     /* 16 KiB: request line plus header lines */
    size_t max_body_bytes;       /* 1 MiB */
    size_t max_output_bytes;     /* 8 MiB of unsent response per connection */
    uint32_t request_timeout_ms; /* 10 s from a request's first byte to its end */
    uint32_t header_timeout_ms;  /* 5 s from a request's first byte to its header's end */
    uint32_t idle_timeout_ms;    /* 60 s between requests on a kept-alive connection */
    uint32_t max_connections;    /* 256 */
    uint32_t max_connections_per_client; /* 32 open at once from one IP address */
} hub_http_config_t;

/* One request, valid only during the handler call. Strings are
 * NUL-terminated; path and query are as sent (still percent-encoded). */
typedef struct {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* "/api/dlq"; never empty */
    const char *query;        /* "limit=10&member=VN%2FGOV" without '?'; "" when none */
    const char *body;         /* NUL-terminated for convenience; may hold NULs */
    size_t body_len;
    const char *bearer_token; /* from "Authorization: Bearer <token>", or NULL */
    const char *content_type; /* the Content-Type header, or NULL */
    const char *host;         /* the Host header, or NULL (two Host headers: 400) */
    bool keep_alive;          /* the connection stays open after the response */
} hub_http_request_t;

typedef void (*hub_http_handler_cb)(const hub_http_request_t *req, hub_http_response_t *resp,
                                    void *user);
typedef void (*hub_http_closed_cb)(void *user);

typedef struct {
    uint64_t requests;             /* complete requests passed to the handler */
    uint64_t bad_requests;         /* answered 400, 411, 413, 431 or 505 */
    uint64_t timeouts;             /* closed: no complete request in request_timeout_ms */
    uint64_t idle_closes;          /* closed: kept alive but idle for idle_timeout_ms */
    uint64_t rejected_connections; /* closed on arrival: max_connections were open, or
                                      max_connections_per_client from that address */
    uint64_t write_overflows;      /* closed: unsent output over max_output_bytes, or a
                                      response not taken within request_timeout_ms */
    uint32_t open_connections;     /* connections open now (rejected ones not counted) */
} hub_http_stats_t;

/* Creates a server on `loop`; cfg may be NULL for the defaults (it is
 * copied). The handler is called once per complete request. */
int hub_http_new(uv_loop_t *loop, const hub_http_config_t *cfg, hub_http_handler_cb handler,
                 void *user, hub_http_server_t **out);
/* Binds to host (IPv4 or IPv6 literal, e.g. "127.0.0.1") and port (0 picks
 * a free one) and starts accepting. Once per server, even if it fails. */
int hub_http_listen(hub_http_server_t *server, const char *host, int port);
/* The bound port after a successful hub_http_listen(), else 0. */
int hub_http_port(const hub_http_server_t *server);
/* Copies the counters into *out. */
void hub_http_stats(const hub_http_server_t *server, hub_http_stats_t *out);
/* Stops accepting and closes every connection, unsent responses included.
 * on_closed (may be NULL) runs from the loop once every handle is closed.
 * Returns HUB_ECLOSED if the server was already closing. Safe to call from
 * the handler. */
int hub_http_close(hub_http_server_t *server, hub_http_closed_cb on_closed, void *user);
/* Frees the server and sets *server_p to NULL; NULL is fine. A server with
 * open handles is closed first and freed from its last close callback, so
 * run the loop before uv_loop_close(). Do not call it from the handler. */
void hub_http_destroy(hub_http_server_t **server_p);

/* Sets the response: status (200-599), content type (e.g.
 * "application/json"; NULL for none) and a body that is copied. Calling it
 * again replaces the earlier answer. HUB_EINVAL for a bad status or a
 * content type holding control characters; HUB_ENOMEM. */
int hub_http_respond(hub_http_response_t *resp, int status, const char *content_type,
                     const void *body, size_t len);
/* Responds with `{"error":"<message>"}` (message JSON-escaped) as
 * application/json. */
int hub_http_respond_json_error(hub_http_response_t *resp, int status, const char *message);
/* Adds a response header, e.g. ("WWW-Authenticate", "Bearer"). The name
 * must be a token, the value free of control characters; the headers the
 * server writes itself (Content-Length, Content-Type, Connection,
 * Transfer-Encoding, Cache-Control, X-Content-Type-Options) are refused
 * with HUB_EINVAL. */
int hub_http_response_header(hub_http_response_t *resp, const char *name, const char *value);

/* Finds `name` in a query string ("a=1&b=x%20y") and writes its value,
 * percent-decoded ('+' is a space), NUL-terminated, into buf. The first
 * occurrence wins; "a" alone has the value "". Returns 0, HUB_ENOTFOUND,
 * HUB_EFULL (buf too small; buf holds ""), HUB_EPARSE (bad %-escape or an
 * encoded NUL), HUB_EINVAL. */
int hub_http_query_get(const char *query, const char *name, char *buf, size_t size);

/* True when the request carries exactly `expected_token` as its bearer
 * token. Compares in constant time (over SHA-256 digests, so the length
 * does not leak either). An empty or NULL expected token matches nothing. */
bool hub_http_token_ok(const hub_http_request_t *req, const char *expected_token);

#endif
