/* lth_httpd — a small HTTP/1.1 server driven by poll(), for a plugin that
 * has no event loop of its own (hub-adapter runs plugins on one thread,
 * inside the SDK's loop).
 *
 * One job: accept connections on one listening socket, turn their bytes into
 * complete requests (nodejs http-parser), hand each request to one
 * synchronous handler, and write back what the handler filled in. The caller
 * drives everything with lth_httpd_serve(), which waits up to a timeout for
 * socket activity and does whatever is ready; nothing happens in between.
 * The handler may take its time (it runs on the caller's thread): other
 * clients wait in the meantime, queued by the kernel.
 *
 * One request per connection: every response carries "Connection: close",
 * after which the server half-closes and discards input for up to a second,
 * so that a client still sending reads the response rather than a reset.
 *
 * What the server enforces itself, answering with a JSON body
 * {"error": "..."}: a body over max_body_bytes gets 413 (before it is read
 * when Content-Length says so; "Expect: 100-continue" gets its 100 or 413 at
 * once); bytes that are not HTTP/1.x get 400; a URL over 2 KiB gets 414;
 * header lines over the parser's limit get 431; a request not complete within
 * request_timeout_ms of the connection's opening gets 408; beyond
 * max_connections open connections, a new one gets 503.
 *
 * Ownership: a request lives only during the handler call; the handler puts
 * a malloc'ed body into the response, which the server frees.
 * Errors: HUB_EINVAL (bad listen address), HUB_EEXIST (address in use),
 * HUB_EPERM, HUB_EIO, HUB_ENOMEM; lth_httpd_serve() returns HUB_EAGAIN when a
 * signal interrupted its wait, so that the caller can look at its flags.
 * Not thread-safe: one thread calls everything.
 */
#ifndef LTH_HTTPD_H
#define LTH_HTTPD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lth_httpd lth_httpd_t;

typedef struct {
    const char *method;        /* "POST", "GET", ... */
    const char *path;          /* as sent, without the query; never empty */
    const char *query;         /* after '?', "" when none */
    const char *content_type;  /* "" when none */
    const char *authorization; /* "" when none */
    const char *body;          /* NUL-terminated for convenience */
    size_t body_len;
    const char *peer;          /* "127.0.0.1:50312" */
} lth_httpd_request_t;

typedef struct {
    int status;              /* 0 = 500 */
    char content_type[128];  /* "" = application/json */
    char *body;              /* malloc'ed; the server frees it */
    size_t body_len;
    char headers[512];       /* extra header lines, each ending "\r\n" */
} lth_httpd_response_t;

typedef void (*lth_httpd_handler_cb)(const lth_httpd_request_t *req, lth_httpd_response_t *resp,
                                     void *user);

/* Zero in any field means the default beside it. */
typedef struct {
    size_t max_body_bytes;       /* 1 MiB */
    uint32_t request_timeout_ms; /* 10 s from the connection's opening to a complete request */
    uint32_t max_connections;    /* 64 */
} lth_httpd_config_t;

/* Binds `listen` ("HOST:PORT", "[::1]:PORT"; port 0 = any free port). */
int lth_httpd_new(const char *listen, const lth_httpd_config_t *cfg, lth_httpd_handler_cb handler,
                  void *user, lth_httpd_t **out, char *err, size_t err_size);
/* The bound port (useful after port 0). */
int lth_httpd_port(const lth_httpd_t *server);
/* true when the listening address is a loopback one. */
bool lth_httpd_loopback(const lth_httpd_t *server);
/* Waits up to timeout_ms for activity and serves what is ready: accepts,
 * reads, calls the handler for each complete request, writes, times out.
 * Returns 0, or HUB_EAGAIN when a signal interrupted the wait. */
int lth_httpd_serve(lth_httpd_t *server, int timeout_ms);
/* Closes every connection and the listener, and frees. */
void lth_httpd_destroy(lth_httpd_t **server_p);

/* Fills resp with `status` and a JSON body {"error": message} plus the
 * members of `extra` (a JSON object, may be NULL; consumed). For handlers. */
void lth_httpd_error(lth_httpd_response_t *resp, int status, const char *message,
                     json_t *extra);

#endif
