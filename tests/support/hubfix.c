#include "hubfix.h"
#include "hub_keys.h"
#include "hub_sign.h"
#include "testkit.h"
#include "tkwire.h"

#include <check.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

static void slug(const char *member_id, char *out)
{
    ck_assert_int_eq(hub_member_id_to_slug(member_id, out, 256), 0);
}

void hubfix_secret_path(const hubfix_t *f, const char *member_id, char *out)
{
    char s[256];
    slug(member_id, s);
    snprintf(out, PATH_MAX, "%s/secrets/%s.secret", f->dir, s);
}

void hubfix_public_path(const hubfix_t *f, const char *member_id, char *out)
{
    char s[256];
    slug(member_id, s);
    snprintf(out, PATH_MAX, "%s/secrets/%s.pub", f->dir, s);
}

static void keygen(hubfix_t *f, const char *member_id)
{
    char secrets[PATH_MAX];
    snprintf(secrets, sizeof secrets, "%s/secrets", f->dir);
    char *argv[] = {(char *)tk_bin("hubctl"), "keygen", (char *)member_id, secrets, NULL};
    char *out = NULL;
    int rc = tk_run(argv, &out, 10000);
    ck_assert_msg(rc == 0, "hubctl keygen %s failed: %s", member_id, out ? out : "");
    free(out);
}

/* hubd.conf from f->extra_conf; with PostgreSQL (HUB_TEST_PG_DSN) the
 * store lines too. */
static void write_conf(hubfix_t *f)
{
    const char *pg_dsn = getenv("HUB_TEST_PG_DSN");
    if (pg_dsn && *pg_dsn) {
        size_t len = strlen(f->extra_conf);
        snprintf(f->extra_conf + len, sizeof f->extra_conf - len,
                 "\nstore = postgresql\nstore_dsn = %s\nstore_migrate = yes\n", pg_dsn);
    }
    char conf[4096];
    /* Certificate mode (extra_conf names a CA) replaces the key directory. */
    bool certs = strstr(f->extra_conf, "ca_cert") != NULL;
    snprintf(conf, sizeof conf,
             "listen = tcp://127.0.0.1:*\n"
             "key_file = secrets/VN.GOV.HN-LGSP.HUB.secret\n"
             "%s"
             "data_dir = data\n"
             "heartbeat_ms = 300\n"
             "%s\n",
             certs ? "" : "key_dir = keys\n", f->extra_conf);
    tk_write_file(f->conf_path, conf);
}

void hubfix_init(hubfix_t *f, const char *extra_conf)
{
    memset(f, 0, sizeof *f);
    tk_tmpdir(f->dir);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/keys", f->dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    keygen(f, HUBFIX_HUB_ID);
    snprintf(f->extra_conf, sizeof f->extra_conf, "%s", extra_conf ? extra_conf : "");
    snprintf(f->conf_path, sizeof f->conf_path, "%s/hubd.conf", f->dir);
    snprintf(f->hubd_log, sizeof f->hubd_log, "%s/hubd.log", f->dir);
    /* The PostgreSQL runs (tests/support/with_postgres.sh): the store goes
     * into an emptied database; data_dir keeps the audit log. */
    const char *pg_dsn = getenv("HUB_TEST_PG_DSN");
    if (pg_dsn && *pg_dsn) {
        PGconn *c = PQconnectdb(pg_dsn);
        ck_assert_msg(PQstatus(c) == CONNECTION_OK, "PostgreSQL: %s", PQerrorMessage(c));
        PQclear(PQexec(c, "SET client_min_messages = warning"));
        /* No session of an earlier test may hold a lock into this one. */
        PQclear(PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "pid <> pg_backend_pid() AND datname = current_database()"));
        PGresult *res = PQexec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
    }
    write_conf(f);
}

/* A second hubd node of the same hub (cluster tests): in first's directory,
 * sharing its keys (symbolic links), with its own data directory and log. */
void hubfix_init_node(hubfix_t *f, const hubfix_t *first, const char *name, const char *extra_conf)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/%s", first->dir, name);
    ck_assert_int_eq(mkdir(f->dir, 0700), 0);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/secrets", f->dir);
    ck_assert_int_eq(symlink("../secrets", path), 0);
    snprintf(path, sizeof path, "%s/keys", f->dir);
    ck_assert_int_eq(symlink("../keys", path), 0);
    snprintf(f->extra_conf, sizeof f->extra_conf, "%s", extra_conf ? extra_conf : "");
    snprintf(f->conf_path, sizeof f->conf_path, "%s/hubd.conf", f->dir);
    snprintf(f->hubd_log, sizeof f->hubd_log, "%s/hubd.log", f->dir);
    write_conf(f);
}

void hubfix_register_member(hubfix_t *f, const char *member_id)
{
    char src[PATH_MAX], dst[PATH_MAX], s[256];
    hubfix_public_path(f, member_id, src);
    slug(member_id, s);
    snprintf(dst, sizeof dst, "%s/keys/%s.pub", f->dir, s);
    char *text = tk_read_file(src);
    ck_assert_ptr_nonnull(text);
    tk_write_file(dst, text);
    free(text);
}

void hubfix_add_member(hubfix_t *f, const char *member_id, bool known)
{
    keygen(f, member_id);
    if (known)
        hubfix_register_member(f, member_id);
}

void hubfix_post_record(adp_client_t *c, const char *receiver, const char *tag, int n)
{
    char payload[64];
    int len = snprintf(payload, sizeof payload, "%s %d", tag, n);
    ck_assert_int_eq(
        adp_post_event(c, receiver, "record/v1", "text/plain", payload, (size_t)len, 0, NULL), 0);
}

void hubfix_send_record(adp_client_t *c, const char *receiver, const char *tag, int n)
{
    char payload[64];
    int len = snprintf(payload, sizeof payload, "%s %d", tag, n);
    ck_assert_int_eq(
        adp_send_event(c, receiver, "record/v1", "text/plain", payload, (size_t)len, 0, 5000, NULL),
        0);
}

int hubfix_reply_text(adp_reply_t *reply, const char *text)
{
    size_t len = strlen(text);
    reply->payload = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(reply->payload);
    memcpy(reply->payload, text, len);
    reply->payload_len = len;
    snprintf(reply->content_type, sizeof reply->content_type, "text/plain");
    return 0;
}

void hubfix_run_until_exactly(adp_client_t *c, const int *count, int n, int timeout_ms,
                              int quiet_ms)
{
    for (int waited = 0; waited < timeout_ms && *count < n; waited += 50)
        adp_run(c, 50);
    ck_assert_int_eq(*count, n);
    adp_run(c, quiet_ms);
    ck_assert_int_eq(*count, n);
}

void hubfix_make_tls(hubfix_t *f, const char *steps)
{
    size_t size = strlen(f->dir) + strlen(steps) + 1024;
    char *script = malloc(size);
    ck_assert_ptr_nonnull(script);
    snprintf(
        script, size,
        "set -e; d='%s/tls'; mkdir -p \"$d\"; cd \"$d\"; umask 077\n"
        "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1; }\n"
        "ca() { key $1.key; openssl req -x509 -new -key $1.key -out $1.pem -days 2 "
        "-subj \"/O=Test/CN=$2\"; }\n"
        "leaf() { key $1.key; openssl req -new -key $1.key -out $1.csr -subj \"/O=Test/CN=$3\"; "
        "printf '%%s\\n' \"$4\" > $1.ext; openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key "
        "-CAcreateserial -out $1.pem -days 2 -extfile $1.ext; }\n"
        "%s",
        f->dir, steps);
    tk_sh_ok("openssl", script, 30000);
    free(script);
}

void hubfix_add_members(hubfix_t *f, const char *const member_ids[])
{
    for (const char *const *id = member_ids; *id; id++)
        hubfix_add_member(f, *id, true);
}

void hubfix_forget_member(hubfix_t *f, const char *member_id)
{
    char dst[PATH_MAX], s[256];
    slug(member_id, s);
    snprintf(dst, sizeof dst, "%s/keys/%s.pub", f->dir, s);
    ck_assert_int_eq(unlink(dst), 0);
}

/* A start that did not finish: says where it stopped (the end of hubd's
 * log, and with PostgreSQL what each session of the database waits for),
 * since a CI run keeps nothing else. */
static void start_failed(hubfix_t *f)
{
    char *log = tk_read_file(f->hubd_log);
    const char *tail = log ? log : "(no log)";
    size_t len = strlen(tail);
    if (len > 3000)
        tail += len - 3000;
    fprintf(stderr, "hubfix: hubd did not start within 30 s; the end of %s:\n%s\n", f->hubd_log,
            tail);
    const char *pg_dsn = getenv("HUB_TEST_PG_DSN");
    if (pg_dsn && *pg_dsn) {
        PGconn *c = PQconnectdb(pg_dsn);
        PGresult *res = PQexec(c, "SELECT pid, application_name, state, wait_event_type, "
                                  "wait_event, left(query, 120) FROM pg_stat_activity WHERE "
                                  "datname = current_database() AND pid <> pg_backend_pid()");
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            for (int i = 0; i < PQntuples(res); i++)
                fprintf(stderr, "hubfix: PostgreSQL session %s (%s) %s, waiting on %s/%s: %s\n",
                        PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                        PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5));
        else
            fprintf(stderr, "hubfix: PostgreSQL: %s\n", PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
    }
    free(log);
    ck_abort_msg("hubd did not start; see %s", f->hubd_log);
}

void hubfix_start(hubfix_t *f)
{
    char ready[PATH_MAX];
    snprintf(ready, sizeof ready, "%s/hubd.ready", f->dir);
    unlink(ready);
    if (f->endpoint[0]) {
        /* Restart on the same port, so that clients reconnect. */
        char *conf = tk_read_file(f->conf_path);
        ck_assert_ptr_nonnull(conf);
        char *line = strstr(conf, "listen = ");
        ck_assert_ptr_nonnull(line);
        char *eol = strchr(line, '\n');
        char fixed[8192];
        snprintf(fixed, sizeof fixed, "%.*slisten = %s%s", (int)(line - conf), conf, f->endpoint,
                 eol ? eol : "\n");
        tk_write_file(f->conf_path, fixed);
        free(conf);
    }
    char *argv[] = {(char *)tk_bin("hubd"), "--config", f->conf_path, "--ready-file", ready,
                    NULL};
    f->hubd = tk_spawn(argv, f->hubd_log);
    /* 30 s: the suite runs tests in parallel with soak and fsync-heavy
     * benchmarks, and a start on PostgreSQL applies the schema first. */
    if (!tk_wait_file(ready, 30000))
        start_failed(f);
    char *text = tk_read_file(ready);
    ck_assert_ptr_nonnull(text);
    char *ep = strstr(text, "endpoint=");
    ck_assert_ptr_nonnull(ep);
    ep += strlen("endpoint=");
    ep[strcspn(ep, "\n")] = '\0';
    snprintf(f->endpoint, sizeof f->endpoint, "%s", ep);
    free(text);
    text = tk_read_file(ready);
    char *http = text ? strstr(text, "http=") : NULL;
    f->http[0] = '\0';
    if (http) {
        http += 5;
        http[strcspn(http, "\n")] = '\0';
        snprintf(f->http, sizeof f->http, "%s", http);
    }
    free(text);
}

void hubfix_stop(hubfix_t *f)
{
    int status = tk_stop(f->hubd);
    f->hubd = 0;
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "hubd did not shut down cleanly (status %d); see %s", status, f->hubd_log);
}

bool hubfix_hub_alive(hubfix_t *f)
{
    return f->hubd > 0 && waitpid(f->hubd, NULL, WNOHANG) == 0;
}

void hubfix_member_conf(hubfix_t *f, const char *member_id, const char *extra_conf,
                        const char *path)
{
    char secret[PATH_MAX];
    hubfix_secret_path(f, member_id, secret);
    size_t size = strlen(extra_conf ? extra_conf : "") + 3 * PATH_MAX + 256;
    char *conf = malloc(size);
    ck_assert_ptr_nonnull(conf);
    snprintf(conf, size,
             "hub_endpoint = %s\nhub_key_file = %s/secrets/VN.GOV.HN-LGSP.HUB.pub\n"
             "member_key_file = %s\n%s",
             f->endpoint, f->dir, secret, extra_conf ? extra_conf : "");
    tk_write_file(path, conf);
    free(conf);
}

void hubfix_adapter_conf(hubfix_t *f, const char *member_id, const char *plugin,
                         const char *extra_conf, const char *path)
{
    size_t size = strlen(extra_conf ? extra_conf : "") + PATH_MAX + 32;
    char *lines = malloc(size);
    ck_assert_ptr_nonnull(lines);
    snprintf(lines, size, "plugin = %s\n%s\n", tk_plugin(plugin), extra_conf ? extra_conf : "");
    hubfix_member_conf(f, member_id, lines, path);
    free(lines);
}

char *hubfix_adapter_refused(hubfix_t *f, const char *member_id, const char *plugin,
                             const char *extra_conf)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/bad.conf", f->dir);
    hubfix_adapter_conf(f, member_id, plugin, extra_conf, path);
    char *argv[] = {(char *)tk_bin("hub-adapter"), "--config", path, NULL};
    char *out = NULL;
    int rc = tk_run(argv, &out, 10000);
    ck_assert_msg(rc == 1, "hub-adapter (%s, %s) exited %d, not refusing to start: %s", member_id,
                  plugin, rc, out ? out : "");
    ck_assert_ptr_nonnull(out);
    return out;
}

pid_t hubfix_start_adapter(hubfix_t *f, const char *member_id, const char *plugin,
                           const char *extra_conf)
{
    char s[256], conf_path[PATH_MAX], log_path[PATH_MAX];
    slug(member_id, s);
    snprintf(conf_path, sizeof conf_path, "%s/adapter-%s.conf", f->dir, s);
    snprintf(log_path, sizeof log_path, "%s/adapter-%s.log", f->dir, s);
    hubfix_adapter_conf(f, member_id, plugin, extra_conf, conf_path);
    /* A fresh log for every start, so that "serving" means this start. */
    unlink(log_path);
    char *argv[] = {(char *)tk_bin("hub-adapter"), "--config", conf_path, NULL};
    pid_t pid = tk_spawn(argv, log_path);
    ck_assert_msg(tk_wait_file_contains(log_path, "msg=\"serving\"", 10000),
                  "adapter %s did not start; see %s", member_id, log_path);
    return pid;
}

pid_t hubfix_start_ticking(hubfix_t *f, const char *member_id, const char *plugin, int tick_ms,
                           const char *extra_conf)
{
    char s[256];
    slug(member_id, s);
    size_t len = strlen(f->dir) + strlen(s) + (extra_conf ? strlen(extra_conf) : 0) + 64;
    char *full = malloc(len);
    ck_assert_ptr_nonnull(full);
    snprintf(full, len, "state_dir = %s/state-%s\ntick_ms = %d\n%s", f->dir, s, tick_ms,
             extra_conf ? extra_conf : "");
    pid_t pid = hubfix_start_adapter(f, member_id, plugin, full);
    free(full);
    return pid;
}

pid_t hubfix_start_tls_mock(hubfix_t *f, const char *script, const char *const extra[], int *port)
{
    const char *src = getenv("HUB_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    char path[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX], log[PATH_MAX];
    snprintf(path, sizeof path, "%s/tests/tools/%s", src, script);
    snprintf(cert, sizeof cert, "%s/server.pem", f->dir);
    snprintf(key, sizeof key, "%s/server.key", f->dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", f->dir);
    snprintf(log, sizeof log, "%s/mock.log", f->dir);
    char *argv[32] = {"/usr/bin/python3", path, f->dir, "--cert", cert, "--key", key, "--ca", ca};
    size_t n = 9;
    for (size_t i = 0; extra && extra[i]; i++) {
        ck_assert_uint_lt(n, sizeof argv / sizeof argv[0] - 1);
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    pid_t pid = tk_spawn(argv, log);
    char port_path[PATH_MAX];
    snprintf(port_path, sizeof port_path, "%s/port", f->dir);
    ck_assert_msg(tk_wait_file(port_path, 10000), "the mock %s did not start; see %s", script, log);
    char *text = tk_read_file(port_path);
    *port = text ? atoi(text) : 0;
    free(text);
    ck_assert_int_gt(*port, 0);
    return pid;
}

void hubfix_client_conf(hubfix_t *f, const char *member_id, hubfix_client_conf_t *c)
{
    snprintf(c->hub_pub, sizeof c->hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", f->dir);
    hubfix_secret_path(f, member_id, c->secret);
    adp_config_t cfg = {f->endpoint, c->hub_pub, c->secret, 5000, "test", NULL};
    c->cfg = cfg;
}

int hubfix_try_connect(hubfix_t *f, const char *member_id, const char *software,
                       uint32_t connect_timeout_ms, adp_client_t **c, char *err, size_t err_size)
{
    hubfix_client_conf_t conf;
    hubfix_client_conf(f, member_id, &conf);
    if (software)
        conf.cfg.software = software;
    if (connect_timeout_ms)
        conf.cfg.connect_timeout_ms = connect_timeout_ms;
    *c = NULL;
    return adp_connect(&conf.cfg, c, err, err_size);
}

static void *hubfix__sender_main(void *arg)
{
    hubfix_sender_t *s = arg;
    char err[512];
    adp_client_t *c = NULL;
    if (hubfix_try_connect(s->fix, s->from, s->tag, 0, &c, err, sizeof err) != 0) {
        snprintf(s->error, sizeof s->error, "connect: %s", err);
        return NULL;
    }
    while (!s->stop) {
        for (int k = 0; k < s->batch && !s->stop; k++) {
            char payload[64];
            int len = snprintf(payload, sizeof payload, "%s %ld", s->tag, s->posted);
            if (adp_post_event(c, s->to, s->service, "text/plain", payload, (size_t)len, 0, NULL) !=
                0) {
                snprintf(s->error, sizeof s->error, "post: %s", adp_last_error(c));
                s->stop = true;
            } else {
                s->posted++;
            }
        }
        adp_run(c, s->pause_ms);
        for (int w = 0; s->max_outbox && adp_outbox_size(c) > s->max_outbox && w < 500; w++)
            adp_run(c, s->pause_ms);
    }
    for (int waited = 0; adp_outbox_size(c) > 0 && waited < s->drain_ms; waited += 100)
        adp_run(c, 100);
    if (adp_outbox_size(c) > 0 && !s->error[0])
        snprintf(s->error, sizeof s->error, "%zu never ACKed", adp_outbox_size(c));
    adp_close(&c);
    return NULL;
}

void hubfix_sender_start(hubfix_sender_t *s, hubfix_t *f, const char *from, const char *to,
                         const char *service, const char *tag)
{
    s->fix = f;
    s->from = from;
    s->to = to;
    s->service = service;
    s->tag = tag;
    ck_assert_int_eq(pthread_create(&s->thread, NULL, hubfix__sender_main, s), 0);
}

void hubfix_sender_join(hubfix_sender_t *s)
{
    pthread_join(s->thread, NULL);
}

adp_client_t *hubfix_connect_state(hubfix_t *f, const char *member_id, const char *state_dir)
{
    hubfix_client_conf_t conf;
    hubfix_client_conf(f, member_id, &conf);
    conf.cfg.state_dir = state_dir;
    char err[512];
    adp_client_t *c = NULL;
    int rc = adp_connect(&conf.cfg, &c, err, sizeof err);
    ck_assert_msg(rc == 0, "connect as %s failed: %s", member_id, err);
    return c;
}

adp_client_t *hubfix_connect(hubfix_t *f, const char *member_id)
{
    return hubfix_connect_state(f, member_id, NULL);
}

void hubfix_cleanup(hubfix_t *f)
{
    /* hubd first, and its exit status checked: a crash at shutdown (or
     * earlier, unnoticed) fails the test. -1: it was already reaped
     * (hubfix_hub_alive saw it die) or did not stop within 5 s. */
    int status = 0;
    bool had_hub = f->hubd > 0;
    if (had_hub)
        status = tk_stop(f->hubd);
    f->hubd = 0;
    bool clean = !had_hub || (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tk_stop_all();
    /* HUB_TEST_KEEP=1 keeps the directory (logs, configs) for a post-mortem;
     * so does a hubd that did not exit cleanly. */
    const char *keep = getenv("HUB_TEST_KEEP");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", f->dir);
    if (f->dir[0] && ((keep && *keep == '1') || !clean))
        fprintf(stderr, "kept test directory %s\n", f->dir);
    else if (f->dir[0])
        tk_rmrf(f->dir);
    f->dir[0] = '\0';
    ck_assert_msg(clean, "hubd did not shut down cleanly (status %d); see %s/hubd.log", status,
                  dir);
}

void rawcli_open_buffers(rawcli_t *c, hubfix_t *f, const char *member_id, int rcvhwm, int rcvbuf)
{
    char hub_pub[PATH_MAX], secret[PATH_MAX], err[512];
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", f->dir);
    hubfix_secret_path(f, member_id, secret);
    hub_keypair_t me, hub;
    ck_assert_msg(hub_keyfile_read(secret, &me, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(hub_keyfile_read(hub_pub, &hub, err, sizeof err) == 0, "%s", err);
    c->ctx = zmq_ctx_new();
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    uint8_t sk[32], pk[32], srv[32];
    zmq_z85_decode(sk, me.curve_secret);
    zmq_z85_decode(pk, me.curve_public);
    zmq_z85_decode(srv, hub.curve_public);
    int linger = 0;
    zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, srv, 32);
    zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, pk, 32);
    zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sk, 32);
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (rcvhwm > 0)
        zmq_setsockopt(c->sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    if (rcvbuf > 0)
        zmq_setsockopt(c->sock, ZMQ_RCVBUF, &rcvbuf, sizeof rcvbuf);
    ck_assert_int_eq(zmq_connect(c->sock, f->endpoint), 0);
    hub_keypair_wipe(&me);
}

void rawcli_open(rawcli_t *c, hubfix_t *f, const char *member_id)
{
    rawcli_open_buffers(c, f, member_id, 0, 0);
}

void rawcli_connect(rawcli_t *c, hubfix_t *f, const char *member_id)
{
    rawcli_open(c, f, member_id);
    rawcli_hello(c, member_id);
}

void rawcli_send(rawcli_t *c, const void *data, size_t len)
{
    ck_assert_int_ge(zmq_send(c->sock, data, len, 0), 0);
}

void rawcli_send_frame(rawcli_t *c, hub_frame_t *frame)
{
    uint8_t *buf;
    size_t len;
    uint32_t version = frame->protocol_version;
    ck_assert_int_eq(hub_frame_encode(frame, &buf, &len), 0);
    if (version > 1) {
        /* hub_frame_encode stamps version 1: re-encode with the asked one. */
        free(buf);
        frame->protocol_version = version;
        len = lth__v1__frame__get_packed_size(frame);
        buf = malloc(len);
        lth__v1__frame__pack(frame, buf);
    }
    rawcli_send(c, buf, len);
    free(buf);
}

void rawcli_settle(rawcli_t *c, const uint64_t *hub_seqs, size_t n)
{
    Lth__V1__Settle settle = tkw_settle((uint64_t *)hub_seqs, n);
    hub_frame_t sf = tkw_settle_frame(&settle);
    rawcli_send_frame(c, &sf);
}

void rawcli_heartbeat(rawcli_t *c)
{
    Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
    hb.sent_at_us = hub_now_us();
    hub_frame_t frame = tkw_heartbeat_frame(&hb);
    rawcli_send_frame(c, &frame);
}

uint8_t *rawcli_heartbeat_bytes(size_t *len)
{
    Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
    hub_frame_t frame = tkw_heartbeat_frame(&hb);
    uint8_t *buf;
    ck_assert_int_eq(hub_frame_encode(&frame, &buf, len), 0);
    return buf;
}

hub_frame_t *rawcli_recv(rawcli_t *c, int timeout_ms)
{
    zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, c->sock, 0) < 0) {
        zmq_msg_close(&msg);
        return NULL;
    }
    hub_frame_t *frame = NULL;
    hub_frame_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &frame);
    zmq_msg_close(&msg);
    return frame;
}

hub_frame_t *rawcli_recv_case(rawcli_t *c, int body_case, int timeout_ms)
{
    uint64_t deadline = hub_monotonic_us() + (uint64_t)timeout_ms * 1000u;
    while (hub_monotonic_us() < deadline) {
        int left = (int)((deadline - hub_monotonic_us()) / 1000u);
        hub_frame_t *frame = rawcli_recv(c, left > 0 ? left : 1);
        if (frame && (int)frame->body_case == body_case)
            return frame;
        hub_frame_free(&frame);
    }
    return NULL;
}

void rawcli_send_hello(rawcli_t *c, const char *member_id, const char *subscription)
{
    Lth__V1__Hello hello = LTH__V1__HELLO__INIT;
    hello.protocol_version = 1;
    hello.member_id = (char *)member_id;
    char *subs[] = {(char *)subscription};
    if (subscription) {
        hello.subscriptions = subs;
        hello.n_subscriptions = 1;
    }
    hub_frame_t frame = tkw_hello_frame(&hello);
    rawcli_send_frame(c, &frame);
}

void rawcli_hello(rawcli_t *c, const char *member_id)
{
    rawcli_send_hello(c, member_id, NULL);
    hub_frame_t *reply = rawcli_recv_case(c, LTH__V1__FRAME__BODY_WELCOME, 5000);
    ck_assert_msg(reply != NULL, "no Welcome for %s", member_id);
    ck_assert_str_eq(reply->welcome->member_id, member_id);
    hub_frame_free(&reply);
}

void rawcli_close(rawcli_t *c)
{
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    c->sock = c->ctx = NULL;
}

uint8_t *rawcli_envelope(hubfix_t *f, const char *sender, const char *receiver,
                         const char *service, const void *payload, size_t len, int delivery,
                         char id_out[37], size_t *out_len)
{
    int signing = delivery & (RAWCLI_UNSIGNED | RAWCLI_BAD_SIGNATURE);
    delivery &= 0xff;
    char id[37];
    Lth__V1__Envelope env = tkw_envelope(id, sender, receiver, service);
    env.content_type = "text/plain";
    env.payload.data = (uint8_t *)payload;
    env.payload.len = len;
    env.kind = LTH__V1__KIND__KIND_EVENT;
    env.delivery = (Lth__V1__Delivery)delivery;
    uint8_t sig[64];
    char secret[PATH_MAX], err[256];
    hub_keypair_t kp;
    hubfix_secret_path(f, sender, secret);
    if (!(signing & RAWCLI_UNSIGNED) && access(secret, R_OK) == 0 &&
        hub_keyfile_read(secret, &kp, err, sizeof err) == 0) {
        ck_assert_int_eq(hub_envelope_sign(&env, kp.sign_secret, sig), 0);
        if (signing & RAWCLI_BAD_SIGNATURE)
            sig[7] ^= 0x40;
        hub_keypair_wipe(&kp);
    }
    *out_len = lth__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(*out_len);
    lth__v1__envelope__pack(&env, buf);
    if (id_out)
        memcpy(id_out, id, 37);
    return buf;
}

void rawcli_send_batch(rawcli_t *c, ProtobufCBinaryData *items, size_t n)
{
    Lth__V1__Batch batch = tkw_batch(items, n);
    hub_frame_t frame = tkw_batch_frame(&batch);
    rawcli_send_frame(c, &frame);
}

hub_envelope_t *rawcli_delivered_envelope(const hub_frame_t *f)
{
    hub_envelope_t *env = NULL;
    ck_assert_int_eq(hub_envelope_decode(f->deliveries->items[0]->envelope.data,
                                         f->deliveries->items[0]->envelope.len, &env),
                     0);
    return env;
}

void rawcli_send_envelope(rawcli_t *c, hubfix_t *f, const char *sender, const char *receiver,
                          const char *service, const void *payload, size_t len, int delivery,
                          char id_out[37])
{
    size_t env_len;
    uint8_t *env =
        rawcli_envelope(f, sender, receiver, service, payload, len, delivery, id_out, &env_len);
    rawcli_send_batch1(c, env, env_len);
    free(env);
}

void rawcli_send_batch1(rawcli_t *c, const uint8_t *env, size_t len)
{
    ProtobufCBinaryData item = {len, (uint8_t *)env};
    rawcli_send_batch(c, &item, 1);
}

void rawcli_expect_ack(rawcli_t *c, const char *message_id, int timeout_ms)
{
    hub_frame_t *rec = rawcli_recv_case(c, LTH__V1__FRAME__BODY_RECEIPTS, timeout_ms);
    ck_assert_msg(rec != NULL, "no receipt for %s within %d ms", message_id, timeout_ms);
    ck_assert_uint_eq(rec->receipts->n_acks, 1);
    ck_assert_str_eq(rec->receipts->acks[0]->message_id, message_id);
    hub_frame_free(&rec);
}

void hubfix_append_conf(hubfix_t *f, const char *lines)
{
    char *conf = tk_read_file(f->conf_path);
    ck_assert_ptr_nonnull(conf);
    size_t n = strlen(conf) + strlen(lines) + 1;
    char *grown = malloc(n);
    ck_assert_ptr_nonnull(grown);
    snprintf(grown, n, "%s%s", conf, lines);
    tk_write_file(f->conf_path, grown);
    free(grown);
    free(conf);
}

void hubfix_restart_with(hubfix_t *f, const char *lines)
{
    hubfix_stop(f);
    hubfix_append_conf(f, lines);
    hubfix_start(f);
}

const char *hubfix_failsync_lib(hubfix_t *f)
{
    const char *lib = getenv("HUB_FAILSYNC_LIB");
    if (!lib || access(lib, R_OK) != 0) {
        hubfix_cleanup(f);
        tk_skip("HUB_FAILSYNC_LIB not set or not built (run through ctest)");
    }
    return lib;
}

void hubfix_start_preloaded(hubfix_t *f, const char *lib)
{
    setenv("LD_PRELOAD", lib, 1);
#if defined(__SANITIZE_ADDRESS__)
    /* ASan wants its runtime first in the library list; the preloaded
     * libraries (libfaketime, tests/faults/failsync.c) only wrap calls ASan
     * does not intercept, so let them go first. */
    const char *asan = getenv("ASAN_OPTIONS");
    char *saved = asan ? strdup(asan) : NULL;
    char options[1024];
    snprintf(options, sizeof options, "%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", options, 1);
#endif
    hubfix_start(f);
    unsetenv("LD_PRELOAD");
#if defined(__SANITIZE_ADDRESS__)
    if (saved)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(saved);
#endif
}

void hubfix_ca_init(hubfix_t *f, char *ca_dir)
{
    snprintf(ca_dir, PATH_MAX, "%s/ca", f->dir);
    char *out = NULL;
    char *argv[] = {(char *)tk_bin("hubctl"), "ca", "init", ca_dir, NULL};
    ck_assert_msg(tk_run(argv, &out, 20000) == 0, "hubctl ca init: %s", out ? out : "");
    free(out);
}

void hubfix_cert_issue(hubfix_t *f, const char *ca_dir, const char *member_id,
                       const char *not_before, const char *not_after)
{
    char pub[PATH_MAX];
    hubfix_public_path(f, member_id, pub);
    /* hubctl cert issue MEMBER --ca DIR --pub FILE, two options, NULL. */
    char *argv[8 + 4 + 1] = {(char *)tk_bin("hubctl"), "cert", "issue", (char *)member_id};
    int n = 4;
    argv[n++] = "--ca";
    argv[n++] = (char *)ca_dir;
    argv[n++] = "--pub";
    argv[n++] = pub;
    if (not_before) {
        argv[n++] = "--not-before";
        argv[n++] = (char *)not_before;
    }
    if (not_after) {
        argv[n++] = "--not-after";
        argv[n++] = (char *)not_after;
    }
    argv[n] = NULL;
    char *out = NULL;
    ck_assert_msg(tk_run(argv, &out, 20000) == 0, "cert issue %s: %s", member_id, out ? out : "");
    free(out);
}

int hubfix_http_port(hubfix_t *f)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/hubd.ready", f->dir);
    char *ready = tk_read_file(path);
    ck_assert_ptr_nonnull(ready);
    char *http = strstr(ready, "http=");
    ck_assert_msg(http, "no http= line in the ready file: %s", ready);
    char *colon = strrchr(strtok(http + 5, "\n"), ':');
    ck_assert_ptr_nonnull(colon);
    int port = atoi(colon + 1);
    ck_assert_int_gt(port, 0);
    free(ready);
    return port;
}

void hubfix_assert_serves(hubfix_t *f, const char *from, const char *echo_member)
{
    ck_assert_msg(hubfix_hub_alive(f), "hubd died; see %s", f->hubd_log);
    adp_client_t *c = hubfix_connect(f, from);
    adp_reply_t reply;
    int rc =
        adp_request(c, echo_member, "echo/v1", "text/plain", "still there?", 12, 0, 5000, &reply);
    ck_assert_msg(rc == 0, "request from %s to %s's echo failed: %s", from, echo_member,
                  adp_last_error(c));
    ck_assert_uint_eq(reply.payload_len, 12);
    ck_assert_int_eq(memcmp(reply.payload, "still there?", 12), 0);
    ck_assert_str_eq(reply.sender, echo_member);
    adp_reply_free(&reply);
    adp_close(&c);
}

char *hubfix_audit_show(hubfix_t *f, const char *message_id)
{
    char audit[PATH_MAX];
    snprintf(audit, sizeof audit, "%s/data/audit", f->dir);
    char *out = NULL;
    char *argv[] = {(char *)tk_bin("hubctl"), "audit", "show", audit, "--message",
                    (char *)message_id,       NULL};
    int rc = tk_run(argv, &out, 10000);
    ck_assert_msg(rc == 0, "hubctl audit show --message %s exited %d: %s", message_id, rc,
                  out ? out : "");
    ck_assert_ptr_nonnull(out);
    return out;
}

void hubfix_cert_revoke(hubfix_t *f, const char *ca_dir, const char *member_id)
{
    char *out = NULL;
    char *argv[] = {(char *)tk_bin("hubctl"), "cert", "revoke", (char *)member_id, "--ca",
                    (char *)ca_dir,           NULL};
    ck_assert_msg(tk_run(argv, &out, 20000) == 0, "cert revoke %s: %s", member_id, out ? out : "");
    free(out);
    kill(f->hubd, SIGHUP);
    ck_assert(tk_wait_file_contains(f->hubd_log, "status=revoked", 3000));
}

int hubfix_count_handler(adp_client_t *c, const adp_message_t *msg, adp_reply_t *reply, void *user)
{
    (void)c;
    (void)msg;
    (void)reply;
    (*(int *)user)++;
    return 0;
}
