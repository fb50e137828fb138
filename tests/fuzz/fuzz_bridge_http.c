/* fuzz_bridge_http — bytes from an HTTP client to the HTTP bridge's server
 * (lth_httpd: libmicrohttpd driven by poll, with the bridge's own checks
 * and deferred answers on top).
 *
 * Like fuzz_http, the target runs the real server once per process, bound
 * to 127.0.0.1 on a free port, and each input is one connection: the client
 * writes the input, half-closes and reads until the server closes its side,
 * while the target drives lth_httpd_serve(). The handler answers requests
 * whose path starts with /defer later (resp->deferred, then
 * lth_httpd_complete() on the next round), as the bridge does while a hub
 * request is in flight, and the others at once, echoing the body. Limits
 * are small so that short inputs reach 413 and 414.
 *
 * Properties: the server never crashes or leaks; every connection ends
 * within a few seconds of the client's FIN (one cut mid-request waits for
 * request_timeout_ms, 1 s here); the handler sees well-formed
 * requests (a path starting with '/', NUL-terminated strings, a body no
 * larger than the limit); every deferred request is completed exactly once.
 */
#include "fuzz_util.h"
#include "hub_error.h"
#include "lth_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FUZZ_BRIDGE_BOUND_MS 5000 /* a connection still open by then is a bug */
#define FUZZ_BRIDGE_MAX_BODY 4096
#define FUZZ_BRIDGE_MAX_DEFERRED 64

static lth_httpd_t *fuzz__server;
static int fuzz__port;
static uint64_t fuzz__deferred[FUZZ_BRIDGE_MAX_DEFERRED];
static size_t fuzz__n_deferred;

static uint64_t fuzz__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fuzz__handler(const lth_httpd_request_t *req, lth_httpd_response_t *resp, void *user)
{
    (void)user;
    FUZZ_CHECK(req->method && req->method[0] && req->path && req->path[0] == '/');
    FUZZ_CHECK(req->query && req->content_type && req->authorization && req->peer &&
               req->client_cert && req->body);
    FUZZ_CHECK(req->body_len <= FUZZ_BRIDGE_MAX_BODY && req->body[req->body_len] == '\0');
    FUZZ_CHECK(strlen(req->path) <= 2048);
    if (!strncmp(req->path, "/defer", 6) && fuzz__n_deferred < FUZZ_BRIDGE_MAX_DEFERRED) {
        fuzz__deferred[fuzz__n_deferred++] = req->id;
        resp->deferred = true;
        return;
    }
    if (!strncmp(req->path, "/error", 6)) {
        lth_httpd_error(resp, 422, req->query, NULL);
        return;
    }
    resp->status = 200;
    resp->body = malloc(req->body_len + 1);
    FUZZ_CHECK(resp->body != NULL);
    memcpy(resp->body, req->body, req->body_len);
    resp->body_len = req->body_len;
    snprintf(resp->content_type, sizeof resp->content_type, "application/octet-stream");
}

/* Answers what was deferred in the last round. */
static void fuzz__complete_deferred(void)
{
    while (fuzz__n_deferred > 0) {
        uint64_t id = fuzz__deferred[--fuzz__n_deferred];
        lth_httpd_response_t resp;
        memset(&resp, 0, sizeof resp);
        lth_httpd_error(&resp, 504, "no reply in time", NULL);
        FUZZ_CHECK(lth_httpd_complete(fuzz__server, id, &resp) == 0);
        /* Twice is refused: the id is gone. */
        memset(&resp, 0, sizeof resp);
        FUZZ_CHECK(lth_httpd_complete(fuzz__server, id, &resp) == HUB_ENOTFOUND);
    }
}

static void fuzz__shutdown(void) { lth_httpd_destroy(&fuzz__server); }

static void fuzz__setup(void)
{
    lth_httpd_config_t cfg = {
        .max_body_bytes = FUZZ_BRIDGE_MAX_BODY,
        /* libmicrohttpd keeps a connection whose client half-closed in the
         * middle of a request until this timeout (whole seconds): short. */
        .request_timeout_ms = 1000,
        .max_connections = 4,
    };
    char err[256] = "";
    FUZZ_CHECK(lth_httpd_new("127.0.0.1:0", &cfg, fuzz__handler, NULL, &fuzz__server, err,
                             sizeof err) == 0);
    fuzz__port = lth_httpd_port(fuzz__server);
    FUZZ_CHECK(fuzz__port > 0);
    atexit(fuzz__shutdown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz__server)
        fuzz__setup();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fuzz__port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    FUZZ_CHECK(rc == 0 || errno == EINPROGRESS);
    size_t sent = 0;
    bool write_done = false, read_done = false;
    uint64_t bound = fuzz__now_ms() + FUZZ_BRIDGE_BOUND_MS;
    while (!read_done) {
        FUZZ_CHECK(fuzz__now_ms() < bound);
        rc = lth_httpd_serve(fuzz__server, 1);
        FUZZ_CHECK(rc == 0 || rc == HUB_EAGAIN); /* EAGAIN: libFuzzer's SIGALRM */
        fuzz__complete_deferred();
        if (!write_done) {
            ssize_t n = sent < size ? send(fd, data + sent, size - sent, MSG_NOSIGNAL) : 0;
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                     errno != ENOTCONN)
                sent = size; /* the server closed or reset: it takes no more */
            if (sent == size) {
                shutdown(fd, SHUT_WR);
                write_done = true;
            }
        }
        char buf[16384];
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n > 0)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                          errno == ENOTCONN))
                break;
            read_done = true; /* EOF, or a reset */
            break;
        }
    }
    close(fd);
    /* One more round lets the server see its side closed. */
    rc = lth_httpd_serve(fuzz__server, 0);
    FUZZ_CHECK(rc == 0 || rc == HUB_EAGAIN);
    fuzz__complete_deferred();
    return 0;
}
