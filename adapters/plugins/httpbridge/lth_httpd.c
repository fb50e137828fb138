/* lth_httpd — the bridge's HTTP server on libmicrohttpd; see lth_httpd.h. */
#include "lth_httpd.h"

#include "hub_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTPD_URL_MAX 2048
#define HTTPD_VALUE_MAX 1024 /* the header values we keep (Content-Type, Authorization) */
#define HTTPD_SPARE_CONNECTIONS 16 /* accepted beyond max_connections, to be told 503 */

/* One request, from its request line (httpd_on_uri) to its end
 * (httpd_on_completed). */
typedef struct httpd_req {
    struct httpd_req *next;      /* in the server's deferred list */
    struct lth_httpd *server;
    struct MHD_Connection *conn;
    uint64_t id;
    char *body;
    size_t body_len, body_cap;
    lth_httpd_response_t answer; /* a deferred request's response, once completed */
    int early_status;            /* found unacceptable before its body: answer this */
    size_t discarded;            /* body bytes read and dropped before that answer */
    bool started;                /* the access handler has seen it */
    bool deferred;               /* suspended, waiting for lth_httpd_complete() */
    bool completed;              /* answer is filled in */
    char early_message[400];
    char peer[64];
    char cert_subject[512];
    char uri[HTTPD_URL_MAX + 1]; /* as sent; truncated ones get 414 */
    bool uri_too_long;
} httpd_req_t;

struct lth_httpd {
    struct MHD_Daemon *daemon;
    int fd;            /* the listening socket (the daemon closes it) */
    int epoll_fd;      /* the daemon's */
    int port;
    bool loopback;
    bool tls, client_certs;
    lth_httpd_config_t cfg;
    lth_httpd_handler_cb handler;
    void *user;
    uint64_t next_id;
    size_t n_conns;
    size_t n_deferred;
    httpd_req_t *deferred;
    char *tls_cert, *tls_key, *tls_ca; /* copies: the daemon keeps pointers */
};

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

/* ---- per-connection and per-request bookkeeping ------------------------------ */

/* Marks a connection over max_connections: its request gets 503. */
static char httpd_over_limit;

static void httpd_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                                enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    lth_httpd_t *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        s->n_conns++;
        *socket_context = s->n_conns > s->cfg.max_connections ? &httpd_over_limit : NULL;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        s->n_conns--;
    }
}

static void *httpd_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    lth_httpd_t *s = cls;
    httpd_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL; /* the access handler then refuses the request */
    r->server = s;
    r->conn = conn;
    r->id = ++s->next_id;
    size_t len = strlen(uri);
    r->uri_too_long = len > HTTPD_URL_MAX;
    snprintf(r->uri, sizeof r->uri, "%s", uri);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ci->client_addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ci->client_addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(r->peer, sizeof r->peer, "%s:%d", host, port);
    return r;
}

static void httpd_unlink_deferred(lth_httpd_t *s, httpd_req_t *r)
{
    for (httpd_req_t **link = &s->deferred; *link; link = &(*link)->next)
        if (*link == r) {
            *link = r->next;
            s->n_deferred--;
            break;
        }
    r->deferred = false;
}

static void httpd_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                               enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    lth_httpd_t *s = cls;
    httpd_req_t *r = *req_cls;
    if (!r)
        return;
    if (r->deferred)
        httpd_unlink_deferred(s, r);
    free(r->body);
    free(r->answer.body);
    free(r);
    *req_cls = NULL;
}

/* ---- answering ---------------------------------------------------------------- */

/* Adds the handler's extra header lines ("Name: value\r\n" each). */
static void httpd_add_headers(struct MHD_Response *m, const char *lines)
{
    char copy[sizeof ((lth_httpd_response_t *)0)->headers];
    snprintf(copy, sizeof copy, "%s", lines);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            continue;
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        MHD_add_response_header(m, line, value);
    }
}

/* Queues resp on the connection; takes resp->body. */
static enum MHD_Result httpd_queue(struct MHD_Connection *conn, lth_httpd_response_t *resp,
                                   bool close)
{
    int status = resp->status ? resp->status : 500;
    struct MHD_Response *m = MHD_create_response_from_buffer(
        resp->body ? resp->body_len : 0, resp->body ? resp->body : (void *)"",
        resp->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!m) {
        free(resp->body);
        resp->body = NULL;
        return MHD_NO;
    }
    resp->body = NULL; /* the response owns it now */
    MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type[0] ? resp->content_type : "application/json");
    MHD_add_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
    if (close)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONNECTION, "close");
    httpd_add_headers(m, resp->headers);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, m);
    MHD_destroy_response(m);
    return ret;
}

static enum MHD_Result httpd_queue_error(struct MHD_Connection *conn, int status,
                                         const char *message)
{
    lth_httpd_response_t resp;
    memset(&resp, 0, sizeof resp);
    lth_httpd_error(&resp, status, message, NULL);
    return httpd_queue(conn, &resp, true);
}

/* ---- the access handler --------------------------------------------------------- */

typedef struct {
    int content_type, authorization;
} httpd_header_count_t;

static enum MHD_Result httpd_count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value)
{
    (void)kind;
    (void)value;
    httpd_header_count_t *n = cls;
    if (!strcasecmp(key, "Content-Type"))
        n->content_type++;
    else if (!strcasecmp(key, "Authorization"))
        n->authorization++;
    return MHD_YES;
}

static bool httpd_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

/* The client certificate: 0 when it is there, issued by the configured CA
 * and valid now (its subject in r->cert_subject), else a sentence in why. */
static int httpd_check_client_cert(httpd_req_t *r, char *why, size_t why_size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t tls = ci ? (gnutls_session_t)ci->tls_session : NULL;
    unsigned n = 0;
    const gnutls_datum_t *peers = tls ? gnutls_certificate_get_peers(tls, &n) : NULL;
    if (!peers || n == 0) {
        snprintf(why, why_size,
                 "this bridge requires a TLS client certificate issued by the CA of "
                 "plugin.tls_client_ca; the connection presented none");
        return -1;
    }
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(tls, &status) != 0 || status != 0) {
        gnutls_datum_t text = {NULL, 0};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0)
            snprintf(why, why_size, "the TLS client certificate was refused: %s",
                     (const char *)text.data);
        else
            snprintf(why, why_size, "the TLS client certificate was refused");
        gnutls_free(text.data);
        return -1;
    }
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) == 0) {
        size_t size = sizeof r->cert_subject;
        if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) != 0 ||
            gnutls_x509_crt_get_dn(crt, r->cert_subject, &size) != 0)
            snprintf(r->cert_subject, sizeof r->cert_subject, "(unreadable subject)");
        gnutls_x509_crt_deinit(crt);
    }
    return 0;
}

/* Checks what can be checked before the body arrives; sets early_status. */
static void httpd_check_head(httpd_req_t *r, const char *method, const char *version)
{
    lth_httpd_t *s = r->server;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    char why[380];
    if (ci && ci->socket_context == &httpd_over_limit) {
        r->early_status = 503;
        snprintf(r->early_message, sizeof r->early_message,
                 "too many connections; try again in a moment");
        return;
    }
    if (strcmp(version, MHD_HTTP_VERSION_1_1) != 0 && strcmp(version, MHD_HTTP_VERSION_1_0) != 0) {
        r->early_status = 400;
        snprintf(r->early_message, sizeof r->early_message,
                 "not an HTTP/1.x request: the request line ends in '%.40s'", version);
        return;
    }
    if (!httpd_token(method)) {
        r->early_status = 400;
        snprintf(r->early_message, sizeof r->early_message,
                 "not an HTTP/1.x request: the method is not a token");
        return;
    }
    /* libmicrohttpd takes what lies between the method and the version as
     * the target, spaces included ("GET a b HTTP/1.1"): only origin-form
     * paths are requests to this server. */
    bool target_ok = r->uri[0] == '/';
    for (const unsigned char *p = (const unsigned char *)r->uri; target_ok && *p; p++)
        target_ok = *p > 0x20 && *p != 0x7f;
    if (!target_ok) {
        r->early_status = 400;
        snprintf(r->early_message, sizeof r->early_message,
                 "not an HTTP/1.x request: the request target must be a path such as "
                 "/route/NAME, without spaces or control characters");
        return;
    }
    if (r->uri_too_long) {
        r->early_status = 414;
        snprintf(r->early_message, sizeof r->early_message, "the URL is longer than %d bytes",
                 HTTPD_URL_MAX);
        return;
    }
    if (s->client_certs && httpd_check_client_cert(r, why, sizeof why) != 0) {
        r->early_status = 403;
        snprintf(r->early_message, sizeof r->early_message, "%s", why);
        return;
    }
    httpd_header_count_t n = {0, 0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, httpd_count_header, &n);
    if (n.content_type > 1 || n.authorization > 1) {
        r->early_status = 400;
        snprintf(r->early_message, sizeof r->early_message, "the request has two %s headers",
                 n.content_type > 1 ? "Content-Type" : "Authorization");
        return;
    }
    const char *ctype = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if ((ctype && strlen(ctype) > HTTPD_VALUE_MAX) || (auth && strlen(auth) > HTTPD_VALUE_MAX)) {
        r->early_status = 431;
        snprintf(r->early_message, sizeof r->early_message,
                 "a Content-Type or Authorization header is over %d bytes", HTTPD_VALUE_MAX);
        return;
    }
    const char *clen = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    if (clen && strtoull(clen, NULL, 10) > s->cfg.max_body_bytes) {
        r->early_status = 413;
        snprintf(r->early_message, sizeof r->early_message, "the body is larger than %zu bytes",
                 s->cfg.max_body_bytes);
    }
}

static int httpd_append_body(httpd_req_t *r, const char *data, size_t len)
{
    size_t max = r->server->cfg.max_body_bytes;
    if (r->body_len + len > max) {
        r->early_status = 413;
        snprintf(r->early_message, sizeof r->early_message, "the body is larger than %zu bytes",
                 max);
        return 0;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *grown = realloc(r->body, cap);
        if (!grown)
            return HUB_ENOMEM;
        r->body = grown;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static enum MHD_Result httpd_dispatch(httpd_req_t *r, const char *method)
{
    lth_httpd_t *s = r->server;
    char *query = strchr(r->uri, '?');
    if (query)
        *query++ = '\0';
    char *fragment = strchr(query ? query : r->uri, '#');
    if (fragment)
        *fragment = '\0';
    const char *ctype = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    lth_httpd_request_t req = {
        .method = method,
        .path = r->uri[0] ? r->uri : "/",
        .query = query ? query : "",
        .content_type = ctype ? ctype : "",
        .authorization = auth ? auth : "",
        .body = r->body ? r->body : "",
        .body_len = r->body_len,
        .peer = r->peer,
        .client_cert = r->cert_subject,
        .id = r->id,
    };
    lth_httpd_response_t resp;
    memset(&resp, 0, sizeof resp);
    s->handler(&req, &resp, s->user);
    if (resp.deferred) {
        free(resp.body);
        r->deferred = true;
        r->next = s->deferred;
        s->deferred = r;
        s->n_deferred++;
        MHD_suspend_connection(r->conn);
        return MHD_YES;
    }
    return httpd_queue(r->conn, &resp, false);
}

static enum MHD_Result httpd_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                        const char *method, const char *version,
                                        const char *upload_data, size_t *upload_data_size,
                                        void **req_cls)
{
    (void)cls;
    (void)url;
    httpd_req_t *r = *req_cls;
    if (!r)
        return MHD_NO; /* out of memory at its request line: close */
    if (!r->started) {
        r->started = true;
        httpd_check_head(r, method, version);
        /* A body too large to read, or too many connections: answered at
         * once (no "100 Continue"), and closed after. Any other refusal
         * reads and drops the body first (at most max_body_bytes of it):
         * closing with unread bytes would reset the connection, and the
         * client would lose the answer that says what is wrong. */
        if (r->early_status == 413 || r->early_status == 503)
            return httpd_queue_error(conn, r->early_status, r->early_message);
        return MHD_YES;
    }
    if (r->completed) { /* resumed by lth_httpd_complete() */
        r->completed = false;
        return httpd_queue(conn, &r->answer, false);
    }
    if (*upload_data_size) {
        if (r->early_status) {
            r->discarded += *upload_data_size;
            *upload_data_size = 0;
            if (r->discarded > r->server->cfg.max_body_bytes)
                return httpd_queue_error(conn, r->early_status, r->early_message);
            return MHD_YES;
        }
        if (httpd_append_body(r, upload_data, *upload_data_size) != 0)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->early_status)
        return httpd_queue_error(conn, r->early_status, r->early_message);
    return httpd_dispatch(r, method);
}

int lth_httpd_complete(lth_httpd_t *s, uint64_t id, lth_httpd_response_t *resp)
{
    if (!s || !resp)
        return HUB_EINVAL;
    httpd_req_t *r = s->deferred;
    while (r && r->id != id)
        r = r->next;
    if (!r) {
        free(resp->body);
        resp->body = NULL;
        return HUB_ENOTFOUND;
    }
    httpd_unlink_deferred(s, r);
    free(r->answer.body);
    r->answer = *resp;
    resp->body = NULL;
    r->completed = true;
    MHD_resume_connection(r->conn);
    return 0;
}

size_t lth_httpd_deferred(const lth_httpd_t *s) { return s ? s->n_deferred : 0; }

/* ---- serving ------------------------------------------------------------------ */

int lth_httpd_serve(lth_httpd_t *s, int timeout_ms)
{
    if (!s)
        return HUB_EINVAL;
    MHD_UNSIGNED_LONG_LONG due = 0;
    if (MHD_get_timeout(s->daemon, &due) == MHD_YES &&
        (timeout_ms < 0 || due < (MHD_UNSIGNED_LONG_LONG)timeout_ms))
        timeout_ms = (int)due;
    struct pollfd p = {.fd = s->epoll_fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) < 0) {
        if (errno == EINTR)
            return HUB_EAGAIN;
        return HUB_EIO;
    }
    return MHD_run(s->daemon) == MHD_YES ? 0 : HUB_EIO;
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

/* Binds the listening socket (libmicrohttpd gets it ready-made, so that
 * the errors name the address as the operator wrote it). */
static int httpd_bind(lth_httpd_t *s, const char *address, char *err, size_t err_size)
{
    char host[256], port[8];
    if (httpd_split(address, host, sizeof host, port, sizeof port) != 0) {
        snprintf(err, err_size, "'%s' is not HOST:PORT (e.g. 127.0.0.1:8088, [::1]:8088)",
                 address);
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
    int e = 0;
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
        snprintf(err, err_size, "cannot listen on %s: %s", address, strerror(e));
        return e == EADDRINUSE ? HUB_EEXIST : (e == EACCES || e == EPERM) ? HUB_EPERM : HUB_EIO;
    }
    struct sockaddr_storage bound;
    memset(&bound, 0, sizeof bound);
    socklen_t blen = sizeof bound;
    if (getsockname(s->fd, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&bound)->sin6_port
                            : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

static int httpd_start(lth_httpd_t *s, char *err, size_t err_size)
{
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_OptionItem opts[16];
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, s->fd, NULL};
    opts[n++] = (struct MHD_OptionItem){
        MHD_OPTION_CONNECTION_LIMIT, (intptr_t)(s->cfg.max_connections + HTTPD_SPARE_CONNECTIONS),
        NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                        (intptr_t)((s->cfg.request_timeout_ms + 999) / 1000),
                                        NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)httpd_on_uri, s};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)httpd_on_completed, s};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)httpd_on_connection, s};
    if (s->tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, err_size, "this libmicrohttpd has no TLS support");
            return HUB_EINVAL;
        }
        flags |= MHD_USE_TLS;
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key};
        if (s->tls_ca)
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, s->tls_ca};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, httpd_on_request, s, MHD_OPTION_ARRAY,
                                 opts, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, err_size,
                 s->tls ? "cannot start the HTTPS server: check that plugin.tls_cert, "
                          "plugin.tls_key (and plugin.tls_client_ca) are PEM files that "
                          "belong together"
                        : "cannot start the HTTP server");
        return s->tls ? HUB_EINVAL : HUB_EIO;
    }
    s->fd = -1; /* the daemon owns it now */
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    s->epoll_fd = di ? di->epoll_fd : -1;
    if (s->epoll_fd < 0) {
        snprintf(err, err_size, "libmicrohttpd gave no epoll descriptor");
        return HUB_EIO;
    }
    return 0;
}

int lth_httpd_new(const char *address, const lth_httpd_config_t *cfg, lth_httpd_handler_cb handler,
                  void *user, lth_httpd_t **out, char *err, size_t err_size)
{
    if (!address || !handler || !out) {
        snprintf(err, err_size, "'%s' is not HOST:PORT (e.g. 127.0.0.1:8088, [::1]:8088)",
                 address ? address : "");
        return HUB_EINVAL;
    }
    *out = NULL;
    lth_httpd_t *s = calloc(1, sizeof *s);
    if (!s)
        return HUB_ENOMEM;
    s->fd = -1;
    s->epoll_fd = -1;
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
    int rc = 0;
    if (s->cfg.tls_cert_pem || s->cfg.tls_key_pem || s->cfg.tls_client_ca_pem) {
        if (!s->cfg.tls_cert_pem || !s->cfg.tls_key_pem) {
            snprintf(err, err_size, "TLS needs both a certificate and its key");
            rc = HUB_EINVAL;
        } else {
            s->tls = true;
            s->client_certs = s->cfg.tls_client_ca_pem != NULL;
            s->tls_cert = strdup(s->cfg.tls_cert_pem);
            s->tls_key = strdup(s->cfg.tls_key_pem);
            s->tls_ca = s->client_certs ? strdup(s->cfg.tls_client_ca_pem) : NULL;
            if (!s->tls_cert || !s->tls_key || (s->client_certs && !s->tls_ca))
                rc = HUB_ENOMEM;
        }
        /* The copies are what the daemon sees; the caller's may go. */
        s->cfg.tls_cert_pem = s->cfg.tls_key_pem = s->cfg.tls_client_ca_pem = NULL;
    }
    if (rc == 0)
        rc = httpd_bind(s, address, err, err_size);
    if (rc == 0)
        rc = httpd_start(s, err, err_size);
    if (rc != 0) {
        lth_httpd_destroy(&s);
        return rc;
    }
    *out = s;
    return 0;
}

int lth_httpd_port(const lth_httpd_t *s) { return s ? s->port : 0; }

bool lth_httpd_loopback(const lth_httpd_t *s) { return s && s->loopback; }

bool lth_httpd_tls(const lth_httpd_t *s, bool *client_certs)
{
    if (client_certs)
        *client_certs = s && s->client_certs;
    return s && s->tls;
}

static void httpd_free_secret(char **p)
{
    if (*p) {
        memset(*p, 0, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

void lth_httpd_destroy(lth_httpd_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    lth_httpd_t *s = *s_p;
    *s_p = NULL;
    if (s->daemon) {
        /* libmicrohttpd must not stop with suspended connections: answer
         * them, and let one round resume them. */
        while (s->deferred) {
            lth_httpd_response_t resp;
            memset(&resp, 0, sizeof resp);
            lth_httpd_error(&resp, 503, "the bridge is stopping; try again shortly", NULL);
            lth_httpd_complete(s, s->deferred->id, &resp);
        }
        MHD_run(s->daemon);
        MHD_stop_daemon(s->daemon);
    }
    if (s->fd >= 0)
        close(s->fd);
    httpd_free_secret(&s->tls_key);
    free(s->tls_cert);
    free(s->tls_ca);
    free(s);
}

bool lth_httpd_bearer_ok(const char *authorization, const char *token)
{
    size_t len = strlen(token);
    if (!len || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    return strlen(given) == len && sodium_memcmp(given, token, len) == 0;
}
