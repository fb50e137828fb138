/* End to end: a hostile member, or a hostile neighbour on the same machine,
 * against a real hubd on 127.0.0.1 (issue 12, items 4, 6, 7 and 8). Each
 * case attacks, asserts the refusal and its words, and then that honest
 * traffic still flows:
 *   - an older CRL put back and SIGHUP (and a restart): refused, the
 *     revoked member stays out;
 *   - an envelope with its service encoded twice: MALFORMED_ENVELOPE
 *     naming the field;
 *   - a key directory at mode 0777 with a planted .pub, SIGHUP (and a
 *     restart); a policy file others may write: refused;
 *   - http_listen beyond loopback without http_public; the API with
 *     http_public but without the token; 300 idle connections from one
 *     address while /healthz is asked from another. */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define A "VN/GOV/BCA/CSDLQGDC"
#define OPS "VN/GOV/HN-LGSP/OPS"
#define VICTIM "VN/GOV/HN-STP/HOTICH"   /* revoked in the CRL case */
#define PLANTED "VN/GOV/XX/PLANTED"     /* keys exist; the hub never listed it */
#define TOKEN "hostile-edge-operator-token"

static hubfix_t fix;
static char ca_dir[PATH_MAX];

static void teardown(void) { hubfix_cleanup(&fix); }

/* The hub still routes: OPS asks A's echo adapter and gets its answer. */
static void assert_hub_serves(void)
{
    hubfix_assert_serves(&fix, OPS, A);
}

/* Connecting as member_id: 0, or the SDK's error (HUB_EREFUSED when the
 * hub does not accept the key). */
static int try_connect(const char *member_id)
{
    char err[512];
    adp_client_t *c = NULL;
    int rc = hubfix_try_connect(&fix, member_id, NULL, 2000, &c, err, sizeof err);
    adp_close(&c);
    return rc;
}

/* Runs hubd on the fixture's configuration to its exit (it must refuse to
 * start); returns its exit code and its output in *out. */
static int hubd_refuses(char **out)
{
    char *argv[] = {(char *)tk_bin("hubd"), "--config", fix.conf_path, NULL};
    return tk_run(argv, out, 10000);
}

/* After a refused reload: member is still refused and the others are
 * served; then hubd, stopped, must refuse to start again. Returns what it
 * said (free it). */
static char *refused_now_and_at_start(const char *member_id)
{
    ck_assert_int_eq(try_connect(member_id), HUB_EREFUSED);
    assert_hub_serves();
    hubfix_stop(&fix);
    char *out = NULL;
    ck_assert_int_ne(hubd_refuses(&out), 0);
    return out;
}

static void copy_file(const char *from, const char *to)
{
    char *text = tk_read_file(from);
    ck_assert_msg(text != NULL, "cannot read %s", from);
    tk_write_file(to, text);
    free(text);
}

/* ---- item 4: an older CRL ----------------------------------------------- */

static int ctl(char *const argv[], char **out) { return tk_run(argv, out, 20000); }

static void setup_certs(void)
{
    hubfix_init(&fix, "ca_cert = ca/ca/ca.crt\ncrl_file = ca/ca/crl.pem\ncert_dir = ca/certs");
    hubfix_ca_init(&fix, ca_dir);
    const char *members[] = {A, OPS, VICTIM};
    for (int i = 0; i < 3; i++) {
        hubfix_add_member(&fix, members[i], false);
        hubfix_cert_issue(&fix, ca_dir, members[i], NULL, NULL);
    }
    hubfix_start(&fix);
    hubfix_start_adapter(&fix, A, "echo", NULL);
}

START_TEST(older_crl_does_not_unrevoke_a_member)
{
    char crl[PATH_MAX], old_crl[PATH_MAX], state[PATH_MAX];
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", ca_dir);
    snprintf(old_crl, sizeof old_crl, "%s/old-crl.pem", fix.dir);
    snprintf(state, sizeof state, "%s/data/crl.state", fix.dir);
    ck_assert_msg(tk_wait_file(state, 2000), "no CRL state file at %s", state);
    copy_file(crl, old_crl); /* CRL number 01: nobody revoked */
    ck_assert_int_eq(try_connect(VICTIM), 0);

    /* The operator revokes VICTIM (CRL number 02) and reloads. */
    hubfix_cert_revoke(&fix, ca_dir, VICTIM);
    ck_assert_int_eq(try_connect(VICTIM), HUB_EREFUSED);

    /* The attacker puts the old, validly signed CRL back and reloads. */
    copy_file(old_crl, crl);
    kill(fix.hubd, SIGHUP);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "is older than the CRL this hub accepted",
                                        3000),
                  "no refusal of the old CRL in %s", fix.hubd_log);
    char *log = tk_read_file(fix.hubd_log);
    ck_assert_msg(strstr(log, "keeping the previous keys") && strstr(log, "number 01") &&
                      strstr(log, "number 02"),
                  "%s", log);
    free(log);
    /* Nor after a restart: the newest CRL is remembered in the state file. */
    char *out = refused_now_and_at_start(VICTIM);
    ck_assert_msg(strstr(out, crl) && strstr(out, "number 01") && strstr(out, "number 02") &&
                      strstr(out, state) && strstr(out, "hubctl ca crl"),
                  "%s", out);
    free(out);

    /* The operator re-signs the CRL (number 03): the hub starts, VICTIM
     * stays out, the others are served. */
    char *resign[] = {(char *)tk_bin("hubctl"), "ca", "crl", ca_dir, NULL};
    ck_assert_msg(ctl(resign, &out) == 0, "%s", out ? out : "");
    free(out);
    hubfix_start(&fix);
    ck_assert_int_eq(try_connect(VICTIM), HUB_EREFUSED);
    char *text = tk_read_file(state);
    ck_assert_msg(text && strstr(text, "crl_number = 03"), "%s", text ? text : "(none)");
    free(text);
    assert_hub_serves();
}
END_TEST

/* ---- plain fixture: A (echo), OPS, PLANTED's keys ------------------------ */

static void setup_plain_with(const char *extra)
{
    hubfix_init(&fix, extra);
    HUBFIX_ADD_MEMBERS(&fix, A, OPS);
    hubfix_add_member(&fix, PLANTED, false);
    hubfix_start(&fix);
    hubfix_start_adapter(&fix, A, "echo", NULL);
}

static void setup_plain(void) { setup_plain_with(NULL); }

/* ---- item 6: a field encoded twice -------------------------------------- */

START_TEST(envelope_with_a_field_twice_is_refused)
{
    rawcli_t raw;
    rawcli_connect(&raw, &fix, OPS);
    char id[37];
    size_t len;
    uint8_t *env = rawcli_envelope(&fix, OPS, A, "echo/v1", "x", 1, 0, id, &len);
    /* A second service before the signed one: protobuf-c (the hub, the
     * SDK) reads the last, "echo/v1", which the signature covers; a parser
     * keeping the first would read a service the hub never checked. */
    static const char other[] = "admin.dump/v1";
    uint8_t *twice = malloc(len + 2 + sizeof other);
    twice[0] = 5 << 3 | 2;
    twice[1] = sizeof other - 1;
    memcpy(twice + 2, other, sizeof other - 1);
    memcpy(twice + 2 + sizeof other - 1, env, len);
    rawcli_send_batch1(&raw, twice, len + 2 + sizeof other - 1);
    free(twice);
    hub_frame_t *f = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_msg(f != NULL, "no receipt");
    ck_assert_uint_eq(f->receipts->n_acks, 0);
    ck_assert_uint_eq(f->receipts->n_nacks, 1);
    Lth__V1__Nack *nack = f->receipts->nacks[0];
    ck_assert_int_eq(nack->code, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE);
    ck_assert_str_eq(nack->message_id, id);
    ck_assert_msg(strstr(nack->reason, "field 5 (service) appears twice"), "%s", nack->reason);
    hub_frame_free(&f);

    /* The same envelope encoded once is accepted on the same connection. */
    rawcli_send_batch1(&raw, env, len);
    free(env);
    f = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_msg(f != NULL, "no receipt for the honest envelope");
    ck_assert_uint_eq(f->receipts->n_nacks, 0);
    ck_assert_uint_eq(f->receipts->n_acks, 1);
    ck_assert_str_eq(f->receipts->acks[0]->message_id, id);
    hub_frame_free(&f);
    rawcli_close(&raw);
    assert_hub_serves();
}
END_TEST

/* ---- item 7: files others can write ------------------------------------- */

START_TEST(planted_key_in_a_writable_key_dir_is_refused)
{
    char keys[PATH_MAX];
    snprintf(keys, sizeof keys, "%s/keys", fix.dir);
    ck_assert_int_eq(try_connect(PLANTED), HUB_EREFUSED);
    /* Someone made the key directory world-writable, and any local user
     * drops a .pub in it; then the operator (or a timer) reloads. */
    ck_assert_int_eq(chmod(keys, 0777), 0);
    hubfix_register_member(&fix, PLANTED);
    kill(fix.hubd, SIGHUP);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "chmod go-w %s", keys);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, want, 3000), "no refusal in %s",
                  fix.hubd_log);
    char *log = tk_read_file(fix.hubd_log);
    ck_assert_msg(strstr(log, "keeping the previous keys") && strstr(log, "mode 0777"), "%s",
                  log);
    free(log);
    /* At start: hubd refuses to run on it. */
    char *out = refused_now_and_at_start(PLANTED);
    ck_assert_msg(strstr(out, "key directory") && strstr(out, "mode 0777") && strstr(out, want),
                  "%s", out);
    free(out);

    /* The directory fixed but the planted file writable by its group. */
    ck_assert_int_eq(chmod(keys, 0755), 0);
    char planted[PATH_MAX];
    snprintf(planted, sizeof planted, "%s/VN.GOV.XX.PLANTED.pub", keys);
    ck_assert_int_eq(chmod(planted, 0664), 0);
    ck_assert_int_ne(hubd_refuses(&out), 0);
    snprintf(want, sizeof want, "chmod go-w %s", planted);
    ck_assert_msg(strstr(out, "mode 0664") && strstr(out, want), "%s", out);
    free(out);

    /* A policy file others may write. */
    hubfix_forget_member(&fix, PLANTED);
    char policy[PATH_MAX];
    snprintf(policy, sizeof policy, "%s/policy.conf", fix.dir);
    tk_write_file(policy, "# nothing allowed\n");
    ck_assert_int_eq(chmod(policy, 0666), 0);
    char *conf = tk_read_file(fix.conf_path);
    hubfix_append_conf(&fix, "policy_file = policy.conf\n");
    ck_assert_int_ne(hubd_refuses(&out), 0);
    snprintf(want, sizeof want, "chmod go-w %s", policy);
    ck_assert_msg(strstr(out, "policy file") && strstr(out, "mode 0666") && strstr(out, want),
                  "%s", out);
    free(out);

    /* Back to a clean setup: the hub starts and serves; PLANTED stays out. */
    tk_write_file(fix.conf_path, conf);
    free(conf);
    hubfix_start(&fix);
    ck_assert_int_eq(try_connect(PLANTED), HUB_EREFUSED);
    assert_hub_serves();
}
END_TEST

/* ---- item 8: the HTTP endpoint ------------------------------------------ */

static int http_port(void)
{
    const char *colon = strrchr(fix.http, ':');
    ck_assert_msg(colon != NULL, "no HTTP address in the ready file");
    return atoi(colon + 1);
}

static int tcp_connect_from(const char *source, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, source, &src.sin_addr);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* GET path from 127.0.0.1 (with the bearer token when not NULL); returns
 * the status (0: no answer) and the response in *text when not NULL. */
static int http_get(const char *path, const char *token, char **text)
{
    int fd = tcp_connect_from("127.0.0.1", http_port());
    if (fd < 0)
        return 0;
    char req[1024];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sConnection: close\r\n\r\n", path,
             token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
    (void)!send(fd, req, strlen(req), MSG_NOSIGNAL);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while (len + 1 < cap && (n = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fd);
    int status = 0;
    sscanf(buf, "HTTP/1.1 %d", &status);
    if (text)
        *text = buf;
    else
        free(buf);
    return status;
}

START_TEST(http_beyond_loopback_needs_http_public_and_a_token)
{
    char *conf = tk_read_file(fix.conf_path);
    hubfix_stop(&fix);
    /* Nothing is bound in this test but 127.0.0.1: the refusals come from
     * the configuration check, before any socket. */
    hubfix_append_conf(&fix, "http_listen = 0.0.0.0:0\n");
    char *out = NULL;
    ck_assert_int_ne(hubd_refuses(&out), 0);
    ck_assert_msg(strstr(out, "http_listen = 0.0.0.0:0 is not a loopback address") &&
                      strstr(out, "http_public = yes"),
                  "%s", out);
    free(out);
    tk_write_file(fix.conf_path, conf);
    hubfix_append_conf(&fix, "http_listen = [::]:0\nhttp_public = yes\n");
    ck_assert_int_ne(hubd_refuses(&out), 0);
    ck_assert_msg(strstr(out, "http_public = yes needs http_token_file"), "%s", out);
    free(out);
    tk_write_file(fix.conf_path, conf);
    free(conf);
}
END_TEST

/* The token file must exist before hubd starts. */
static void setup_public(void)
{
    memset(&fix, 0, sizeof fix);
    hubfix_init(&fix, "http_listen = 127.0.0.1:0\nhttp_public = yes\nhttp_token_file = token\n");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/token", fix.dir);
    tk_write_file(path, TOKEN "\n");
    chmod(path, 0600);
    HUBFIX_ADD_MEMBERS(&fix, A, OPS);
    hubfix_start(&fix);
    hubfix_start_adapter(&fix, A, "echo", NULL);
}

START_TEST(public_api_needs_the_token)
{
    assert_hub_serves();
    char *text = NULL;
    static const char *const closed[] = {"/api/v1/members", "/api/v1/status",
                                         "/api/v1/exchanges", "/api/v1/queues", "/metrics"};
    for (size_t i = 0; i < sizeof closed / sizeof closed[0]; i++) {
        int status = http_get(closed[i], NULL, &text);
        ck_assert_msg(status == 401, "%s without a token: %d\n%s", closed[i], status, text);
        ck_assert_msg(!strstr(text, A), "%s leaks member ids without a token:\n%s", closed[i],
                      text);
        free(text);
        ck_assert_int_eq(http_get(closed[i], "not-the-token", NULL), 401);
    }
    ck_assert_int_eq(http_get("/api/v1/members", TOKEN, &text), 200);
    ck_assert_msg(strstr(text, A), "%s", text);
    free(text);
    ck_assert_int_eq(http_get("/metrics", TOKEN, NULL), 200);
    /* Health stays open for load balancers. */
    ck_assert_int_eq(http_get("/healthz", NULL, NULL), 200);
    ck_assert_int_eq(http_get("/readyz", NULL, NULL), 200);
}
END_TEST

static void setup_http(void) { setup_plain_with("http_listen = 127.0.0.1:0\n"); }

/* 300 idle connections from 127.0.0.2: the hub keeps at most
 * http_max_connections_per_client (32) of them, so /healthz asked from
 * 127.0.0.1 meanwhile answers 200 every time; the ones it kept are closed
 * after the header deadline (5 s); messages keep flowing. */
START_TEST(idle_connections_from_one_address_do_not_starve_healthz)
{
    enum { N = 300 };
    int port = http_port();
    static int fds[N];
    int opened = 0;
    uint64_t start = hub_monotonic_us();
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect_from("127.0.0.2", port);
        opened += fds[i] >= 0;
    }
    ck_assert_int_gt(opened, 250);
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = hub_monotonic_us();
        char *text = NULL;
        int status = http_get("/healthz", NULL, &text);
        ck_assert_msg(status == 200, "healthz %d during the attack: %d\n%s", i, status, text);
        free(text);
        ck_assert_msg(hub_monotonic_us() - t0 < 1000000, "healthz %d took %llu us", i,
                      (unsigned long long)(hub_monotonic_us() - t0));
    }
    assert_hub_serves();
    /* The hub closes every one of them: at once beyond the limit, the
     * rest at the header deadline. None may stay open past 9 s. */
    int closed = 0;
    while (closed < opened && hub_monotonic_us() - start < 9000000) {
        struct pollfd pfd[N];
        int n = 0;
        for (int i = 0; i < N; i++)
            if (fds[i] >= 0)
                pfd[n++] = (struct pollfd){fds[i], POLLIN, 0};
        if (poll(pfd, (nfds_t)n, 200) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[512];
            ssize_t got = recv(pfd[k].fd, buf, sizeof buf, MSG_DONTWAIT);
            if (got > 0)
                continue; /* a 503 or 408 first; the close follows */
            if (got < 0 && errno == EAGAIN)
                continue;
            for (int i = 0; i < N; i++)
                if (fds[i] == pfd[k].fd)
                    fds[i] = -1;
            close(pfd[k].fd);
            closed++;
        }
    }
    uint64_t took = hub_monotonic_us() - start;
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    ck_assert_msg(closed == opened, "%d of %d idle connections still open after %llu ms",
                  opened - closed, opened, (unsigned long long)(took / 1000));
    /* What the operator sees. */
    char *text = NULL;
    ck_assert_int_eq(http_get("/metrics", NULL, &text), 200);
    const char *line = strstr(text, "\nlth_http_rejected_connections_total ");
    ck_assert_msg(line != NULL, "%s", text);
    double rejected = atof(line + strlen("\nlth_http_rejected_connections_total "));
    ck_assert_msg(rejected >= N - 32 - 10, "rejected %.0f", rejected);
    free(text);
}
END_TEST

TK_MAIN("e2e_hostile_edge",
        TK_CASE("crl", setup_certs, teardown, 120, older_crl_does_not_unrevoke_a_member),
        TK_CASE("plain", setup_plain, teardown, 120, envelope_with_a_field_twice_is_refused,
                planted_key_in_a_writable_key_dir_is_refused,
                http_beyond_loopback_needs_http_public_and_a_token),
        TK_CASE("public", setup_public, teardown, 120, public_api_needs_the_token),
        TK_CASE("http", setup_http, teardown, 120,
                idle_connections_from_one_address_do_not_starve_healthz))
