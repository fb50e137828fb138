/* fuzz_http — bytes from an HTTP client to the operator endpoint (hub_http).
 *
 * hub_http's request path (our check of a connection's first bytes,
 * libmicrohttpd's parser under it, our header checks, the request the
 * handler sees, the responses) is reached only through a socket, so the
 * target runs the real server, once per process, on its own libuv loop bound
 * to 127.0.0.1 on a free port. Each input is one connection: a client socket
 * on the same loop writes the input, half-closes (FIN) and reads whatever
 * comes back until the server closes its side; then the loop runs until
 * the server has closed and freed the connection. The handler answers from
 * the request it is given (echoing the body, a query value, the content
 * type), so that responses, JSON errors and the helper functions see
 * fuzzer-chosen bytes too. The limits are small so that short inputs reach
 * 413, 431 and the output cap.
 *
 * Properties: the server never crashes or leaks, every connection is closed
 * within a few seconds of the client's FIN (its linger is one second), and
 * the request the handler sees is well-formed (a path, NUL-terminated
 * strings, a body of the announced length).
 */
#include "fuzz_util.h"
#include "hub_error.h"
#include "hub_http.h"
#include "hub_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define FUZZ_HTTP_BOUND_MS 5000 /* a connection still open by then is a bug */

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t sent;
    bool write_done; /* all sent (or the server will take no more) and FIN sent */
    bool read_done;  /* EOF or an error from the server's side */
    bool closed;     /* the poll handle's close callback ran */
    uv_poll_t poll;
    int fd;
} fuzz__client_t;

static uv_loop_t fuzz__loop;
static hub_http_server_t *fuzz__server;
static int fuzz__port;
static bool fuzz__timed_out;

static void fuzz__handler(const hub_http_request_t *req, hub_http_response_t *resp, void *user)
{
    (void)user;
    FUZZ_CHECK(req->method && req->path && req->path[0] != '\0' && req->query && req->body);
    FUZZ_CHECK(req->body[req->body_len] == '\0');
    char value[64];
    int found = hub_http_query_get(req->query, "member", value, sizeof value);
    FUZZ_CHECK(found == 0 || found == HUB_ENOTFOUND || found == HUB_EFULL ||
               found == HUB_EPARSE);
    FUZZ_CHECK(found == 0 || value[0] == '\0');
    bool authorised = hub_http_token_ok(req, "fuzz-token");
    int rc;
    if (!strcmp(req->path, "/nothing"))
        return; /* the server answers 500 */
    if (!strncmp(req->path, "/error", 6)) {
        FUZZ_CHECK(hub_http_respond_json_error(resp, 404, req->query) == 0);
        return;
    }
    if (!strncmp(req->path, "/status/", 8)) {
        rc = hub_http_respond(resp, atoi(req->path + 8), req->content_type, req->body,
                              req->body_len);
        FUZZ_CHECK(rc == 0 || rc == HUB_EINVAL);
        if (rc == 0)
            return;
    }
    if (req->content_type) {
        rc = hub_http_response_header(resp, "X-Content-Type-Seen", req->content_type);
        FUZZ_CHECK(rc == 0 || rc == HUB_EINVAL);
    }
    if (found == 0 && value[0]) {
        /* A header name chosen by the client: refused unless it is a token. */
        rc = hub_http_response_header(resp, value, "1");
        FUZZ_CHECK(rc == 0 || rc == HUB_EINVAL);
    }
    FUZZ_CHECK(hub_http_respond(resp, authorised ? 200 : 401, "application/octet-stream",
                                req->body, req->body_len) == 0);
}

static void fuzz__shutdown(void)
{
    if (!fuzz__server)
        return;
    hub_http_close(fuzz__server, NULL, NULL);
    hub_http_destroy(&fuzz__server);
    uv_run(&fuzz__loop, UV_RUN_DEFAULT);
    FUZZ_CHECK(uv_loop_close(&fuzz__loop) == 0);
}

static void fuzz__setup(void)
{
    hub_log_set_level(HUB_LOG_ERROR);
    FUZZ_CHECK(uv_loop_init(&fuzz__loop) == 0);
    hub_http_config_t cfg = {
        .max_header_bytes = 2048,
        .max_body_bytes = 4096,
        .max_output_bytes = 16384,
        .request_timeout_ms = 10000,
        .idle_timeout_ms = 10000,
        .max_connections = 4,
    };
    FUZZ_CHECK(hub_http_new(&fuzz__loop, &cfg, fuzz__handler, NULL, &fuzz__server) == 0);
    FUZZ_CHECK(hub_http_listen(fuzz__server, "127.0.0.1", 0) == 0);
    fuzz__port = hub_http_port(fuzz__server);
    FUZZ_CHECK(fuzz__port > 0);
    atexit(fuzz__shutdown);
}

static void fuzz__client_closed(uv_handle_t *handle)
{
    fuzz__client_t *c = handle->data;
    close(c->fd);
    c->closed = true;
}

static void fuzz__client_finish_write(fuzz__client_t *c)
{
    c->write_done = true;
    shutdown(c->fd, SHUT_WR);
}

static void fuzz__client_io(uv_poll_t *poll, int status, int events)
{
    fuzz__client_t *c = poll->data;
    if (status < 0) {
        c->write_done = c->read_done = true;
    } else {
        if ((events & UV_WRITABLE) && !c->write_done) {
            while (c->sent < c->size) {
                ssize_t n = send(c->fd, c->data + c->sent, c->size - c->sent, MSG_NOSIGNAL);
                if (n > 0) {
                    c->sent += (size_t)n;
                    continue;
                }
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                /* The server closed or reset: it will take no more. */
                FUZZ_CHECK(errno != ECONNREFUSED);
                c->sent = c->size;
            }
            if (c->sent == c->size)
                fuzz__client_finish_write(c);
        }
        if (events & UV_READABLE) {
            char buf[16384];
            for (;;) {
                ssize_t n = recv(c->fd, buf, sizeof buf, 0);
                if (n > 0)
                    continue;
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                c->read_done = true; /* EOF, or a reset */
                if (!c->write_done)
                    fuzz__client_finish_write(c);
                break;
            }
        }
    }
    if (c->read_done) {
        uv_poll_stop(poll);
        uv_close((uv_handle_t *)poll, fuzz__client_closed);
    } else if (c->write_done) {
        uv_poll_start(poll, UV_READABLE, fuzz__client_io);
    }
}

static void fuzz__on_bound(uv_timer_t *timer)
{
    (void)timer;
    fuzz__timed_out = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz__server)
        fuzz__setup();
    fuzz__client_t c = {.data = data, .size = size, .fd = -1};
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(c.fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fuzz__port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(c.fd, (struct sockaddr *)&addr, sizeof addr);
    FUZZ_CHECK(rc == 0 || errno == EINPROGRESS);
    FUZZ_CHECK(uv_poll_init_socket(&fuzz__loop, &c.poll, c.fd) == 0);
    c.poll.data = &c;
    FUZZ_CHECK(uv_poll_start(&c.poll, UV_READABLE | UV_WRITABLE, fuzz__client_io) == 0);

    uv_timer_t bound;
    FUZZ_CHECK(uv_timer_init(&fuzz__loop, &bound) == 0);
    fuzz__timed_out = false;
    uv_timer_start(&bound, fuzz__on_bound, FUZZ_HTTP_BOUND_MS, 0);

    /* Until the client has seen the server's side close and the server has
     * closed the connection; then one more turn runs its close callbacks. */
    hub_http_stats_t stats;
    for (;;) {
        hub_http_stats(fuzz__server, &stats);
        if (c.closed && stats.open_connections == 0)
            break;
        FUZZ_CHECK(!fuzz__timed_out);
        uv_run(&fuzz__loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&bound, NULL);
    uv_run(&fuzz__loop, UV_RUN_NOWAIT);
    uv_run(&fuzz__loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(stats.rejected_connections == 0);
    return 0;
}
