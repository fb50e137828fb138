/* lth_httpd — the bridge's HTTP/1.1 (and HTTPS) server: GNU libmicrohttpd
 * driven by poll(), for a plugin that has no event loop of its own
 * (hub-adapter runs plugins on one thread, inside the SDK's loop).
 *
 * One job: accept connections on one listening socket, hand each complete
 * request to one handler, and write back what the handler answered. The
 * caller drives everything with lth_httpd_serve(), which waits up to a
 * timeout for socket activity and does whatever is ready (libmicrohttpd in
 * its external-epoll mode); nothing happens in between.
 *
 * Many requests in flight: a handler that cannot answer at once (the bridge
 * waits for the hub's reply) sets resp->deferred; the connection is then
 * suspended, other clients are served meanwhile, and the caller answers
 * later with lth_httpd_complete(server, req->id, &resp). Connections stay
 * open between requests (HTTP/1.1 keep-alive) unless the client or an error
 * closes them.
 *
 * TLS: with tls_cert_pem and tls_key_pem the server speaks HTTPS only; with
 * tls_client_ca_pem as well, every request must come with a client
 * certificate that this CA issued and that is valid now, or it gets 403
 * naming what is wrong (no certificate, unknown issuer, expired, ...), and
 * the request's client_cert holds the certificate's subject DN.
 *
 * What the server enforces itself, answering with a JSON body
 * {"error": "..."}: a body over max_body_bytes gets 413 (before it is read
 * when Content-Length says so; "Expect: 100-continue" then gets 413 instead
 * of 100); a request line that is not HTTP/1.x gets 400; a URL over 2 KiB
 * gets 414; a Content-Type or Authorization header over 1 KiB gets 431, two
 * of either 400; a header section over libmicrohttpd's per-connection memory
 * is refused by libmicrohttpd; a connection silent for request_timeout_ms is
 * closed; beyond max_connections open connections, a new one's request gets
 * 503 and the connection closes.
 *
 * Ownership: a request lives only during the handler call (its id stays
 * valid until completed); the handler puts a malloc'ed body into the
 * response, which the server frees, also when it was deferred and the
 * client has gone.
 * Errors: HUB_EINVAL (bad listen address, bad TLS material), HUB_EEXIST
 * (address in use), HUB_EPERM, HUB_EIO, HUB_ENOMEM; lth_httpd_serve()
 * returns HUB_EAGAIN when a signal interrupted its wait, so that the caller
 * can look at its flags; lth_httpd_complete() HUB_ENOTFOUND for an unknown
 * id.
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
    const char *client_cert;   /* the verified client certificate's subject DN; "" when none */
    uint64_t id;               /* names the request in lth_httpd_complete() */
} lth_httpd_request_t;

typedef struct {
    int status;              /* 0 = 500 */
    char content_type[128];  /* "" = application/json */
    char *body;              /* malloc'ed; the server frees it */
    size_t body_len;
    char headers[512];       /* extra header lines, each ending "\r\n" */
    bool deferred;           /* set by the handler: answered later by lth_httpd_complete() */
} lth_httpd_response_t;

typedef void (*lth_httpd_handler_cb)(const lth_httpd_request_t *req, lth_httpd_response_t *resp,
                                     void *user);

/* Zero in any field means the default beside it. */
typedef struct {
    size_t max_body_bytes;       /* 1 MiB */
    uint32_t request_timeout_ms; /* 10 s from the connection's opening to a complete request */
    uint32_t max_connections;    /* 64 */
    const char *tls_cert_pem;    /* PEM certificate (chain) of the server; NULL = plain HTTP */
    const char *tls_key_pem;     /* its PEM private key (needed with tls_cert_pem) */
    const char *tls_client_ca_pem; /* PEM CA certificate(s): client certificates are required
                                      and verified against them; NULL = none asked for */
} lth_httpd_config_t;

/* Binds `listen` ("HOST:PORT", "[::1]:PORT"; port 0 = any free port). */
int lth_httpd_new(const char *listen, const lth_httpd_config_t *cfg, lth_httpd_handler_cb handler,
                  void *user, lth_httpd_t **out, char *err, size_t err_size);
/* The bound port (useful after port 0). */
int lth_httpd_port(const lth_httpd_t *server);
/* true when the listening address is a loopback one. */
bool lth_httpd_loopback(const lth_httpd_t *server);
/* true when the server speaks HTTPS; true in *client_certs when it
 * requires client certificates. */
bool lth_httpd_tls(const lth_httpd_t *server, bool *client_certs);
/* Answers the request `id` that a handler deferred: takes resp->body (freed
 * here whatever happens) and sends the response on the next
 * lth_httpd_serve(). HUB_ENOTFOUND when no deferred request has that id. */
int lth_httpd_complete(lth_httpd_t *server, uint64_t id, lth_httpd_response_t *resp);
/* Requests deferred and not completed yet. */
size_t lth_httpd_deferred(const lth_httpd_t *server);
/* Waits up to timeout_ms for activity and serves what is ready: accepts,
 * reads, calls the handler for each complete request, writes, times out.
 * Returns 0, or HUB_EAGAIN when a signal interrupted the wait. */
int lth_httpd_serve(lth_httpd_t *server, int timeout_ms);
/* Answers every deferred request 503, closes every connection and the
 * listener, and frees. */
void lth_httpd_destroy(lth_httpd_t **server_p);

/* true when authorization (a request's, "" when none) is "Bearer TOKEN"
 * with this token (compared in constant time); never for an empty token. */
bool lth_httpd_bearer_ok(const char *authorization, const char *token);

/* Fills resp with `status` and a JSON body {"error": message} plus the
 * members of `extra` (a JSON object, may be NULL; consumed). For handlers. */
void lth_httpd_error(lth_httpd_response_t *resp, int status, const char *message,
                     json_t *extra);

#endif
