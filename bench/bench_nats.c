/* The NATS baseline: request/reply through a nats-server child (Debian's
 * nats-server package), plain or TLS (a fresh self-signed certificate that
 * the client trusts and verifies), with the C client (libnats-dev). The
 * responder answers each request with its payload; the client keeps
 * `inflight` requests outstanding from its reply subscription's callback. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NATS_SERVER_PATH
#define NATS_SERVER_PATH "/usr/sbin/nats-server"
#endif

#ifndef HAVE_NATS

void bench_nats(bool tls, int inflight, bench_result_t *out)
{
    (void)tls;
    (void)inflight;
    bench_result_na(out, "n/a (hubbench was built without libnats-dev)");
}

void bench_jetstream(int batch, bench_result_t *out)
{
    (void)batch;
    bench_result_na(out, "n/a (hubbench was built without libnats-dev)");
}

#else

#include <nats/nats.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

typedef struct {
    bench_window_t win;
    bench_lat_t lat;
    natsConnection *client, *server;
    uint64_t seq;
} nats__case_t;

/* A self-signed P-256 certificate for localhost / 127.0.0.1. */
static int nats__make_cert(const char *cert_path, const char *key_path)
{
    int rc = -1;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *cf = NULL, *kf = NULL;
    if (!pkey || !x)
        goto out;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    const struct {
        int nid;
        const char *value;
    } exts[] = {{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                {NID_basic_constraints, "critical,CA:TRUE"}};
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
        if (!ext)
            goto out;
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (!X509_sign(x, pkey, EVP_sha256()))
        goto out;
    cf = fopen(cert_path, "w");
    kf = fopen(key_path, "w");
    if (cf && kf && PEM_write_X509(cf, x) &&
        PEM_write_PrivateKey(kf, pkey, NULL, NULL, 0, NULL, NULL))
        rc = 0;
out:
    if (cf)
        fclose(cf);
    if (kf)
        fclose(kf);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

static void nats__on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *user)
{
    (void)sub;
    (void)user;
    const char *reply = natsMsg_GetReply(msg);
    if (reply)
        natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

static void nats__send(nats__case_t *nc)
{
    uint8_t payload[BENCH_PAYLOAD];
    memset(payload, 'x', sizeof payload);
    bench_payload_fill(payload, sizeof payload, ++nc->seq);
    atomic_fetch_add(&nc->win.outstanding, 1);
    natsConnection_PublishRequest(nc->client, "bench.req", "bench.rep", payload, sizeof payload);
}

static void nats__on_reply(natsConnection *conn, natsSubscription *sub, natsMsg *msg, void *user)
{
    (void)conn;
    (void)sub;
    nats__case_t *nc = user;
    uint64_t sent =
        bench_payload_sent_ns((const uint8_t *)natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
    if (bench_window_complete(&nc->win, &nc->lat, sent))
        nats__send(nc);
}

static bool nats__drained(void *user)
{
    nats__case_t *nc = user;
    return atomic_load(&nc->win.outstanding) <= 0;
}

static natsStatus nats__connect(natsConnection **out, const char *url, const char *ca_file,
                                bool send_asap)
{
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, url);
    if (s == NATS_OK && ca_file) {
        s = natsOptions_SetSecure(opts, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(opts, ca_file);
        if (s == NATS_OK)
            s = natsOptions_SetExpectedHostname(opts, "localhost");
    }
    if (s == NATS_OK)
        s = natsOptions_SetMaxPendingMsgs(opts, 1000000);
    /* One in flight: write each message at once instead of leaving it to
     * the flusher thread (which costs about a millisecond a message). */
    if (s == NATS_OK && send_asap)
        s = natsOptions_SetSendAsap(opts, true);
    /* Try for a while: the server may still be starting. */
    for (int i = 0; s == NATS_OK && i < 100; i++) {
        s = natsConnection_Connect(out, opts);
        if (s != NATS_NO_SERVER)
            break;
        s = NATS_OK;
        tkp_sleep_ms(50);
    }
    if (s == NATS_OK && !*out)
        s = NATS_NO_SERVER;
    natsOptions_Destroy(opts);
    return s;
}

void bench_nats(bool tls, int inflight, bench_result_t *out)
{
    if (access(NATS_SERVER_PATH, X_OK) != 0) {
        bench_result_na(out, "n/a (%s not installed: apt-get install nats-server)",
                        NATS_SERVER_PATH);
        return;
    }
    char dir[PATH_MAX], log[PATH_MAX + 16], cert[PATH_MAX + 16], key[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/nats-%s-%d", bench_opts.workdir, tls ? "tls" : "plain", inflight);
    tkp_rmrf(dir);
    mkdir(dir, 0700);
    snprintf(log, sizeof log, "%s/nats-server.log", dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    if (tls && nats__make_cert(cert, key) != 0) {
        bench_result_na(out, "n/a (could not make a TLS certificate with OpenSSL)");
        return;
    }
    int port = bench_free_port();
    char port_s[16], url[64];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(url, sizeof url, "%s://127.0.0.1:%d", tls ? "tls" : "nats", port);
    char *argv[12] = {NATS_SERVER_PATH, "-a", "127.0.0.1", "-p", port_s, NULL};
    if (tls) {
        argv[5] = "--tls";
        argv[6] = "--tlscert";
        argv[7] = cert;
        argv[8] = "--tlskey";
        argv[9] = key;
    }
    pid_t pid = tkp_spawn(argv, log);
    nats__case_t *nc = calloc(1, sizeof *nc);
    natsSubscription *sub_s = NULL, *sub_c = NULL;
    if (!nc) {
        bench_result_na(out, "out of memory");
        tkp_stop(pid);
        return;
    }
    bench_window_init(&nc->win);
    natsStatus s = nats__connect(&nc->server, url, tls ? cert : NULL, inflight == 1);
    if (s == NATS_OK)
        s = nats__connect(&nc->client, url, tls ? cert : NULL, inflight == 1);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&sub_s, nc->server, "bench.req", nats__on_request, nc);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub_s, -1, -1);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&sub_c, nc->client, "bench.rep", nats__on_reply, nc);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub_c, -1, -1);
    if (s == NATS_OK)
        s = natsConnection_Flush(nc->server);
    if (s == NATS_OK)
        s = natsConnection_Flush(nc->client);
    if (s != NATS_OK) {
        bench_result_na(out, "n/a (NATS: %s; see %s)", natsStatus_GetText(s), log);
    } else {
        for (int i = 0; i < inflight; i++)
            nats__send(nc);
        natsConnection_Flush(nc->client);
        nc->win.cpu_pid = pid;
        nc->win.envelopes_per_msg = 2; /* request and reply */
        bench_window_run(&nc->win, nats__drained, nc);
        /* The reply callback may still run until the subscription closes. */
        natsSubscription_Unsubscribe(sub_c);
        natsSubscription_Unsubscribe(sub_s);
        tkp_sleep_ms(50);
        bench_result_from(out, &nc->win, &nc->lat);
    }
    natsSubscription_Destroy(sub_c);
    natsSubscription_Destroy(sub_s);
    natsConnection_Destroy(nc->client);
    natsConnection_Destroy(nc->server);
    bench_case_end(pid, &nc->lat, dir);
    free(nc);
}

/* ---- JetStream: durable publish, the closest NATS has to the hub's durable
 * events. One thread publishes asynchronously and waits for the acks of
 * every `batch` messages (js_PublishAsyncComplete); a message's latency is
 * its send → the ack of its whole batch. nats-server 2.9 acknowledges a
 * file-store publish once written, and fsyncs on its own schedule (every
 * 2 minutes by default); the hub acknowledges after fdatasync. */

typedef struct {
    bench_window_t win;
    bench_lat_t lat;
    natsConnection *conn;
    jsCtx *js;
    int batch;
    _Atomic bool done;
} nats__js_t;

static void *nats__js_publisher(void *arg)
{
    nats__js_t *j = arg;
    uint8_t payload[BENCH_PAYLOAD];
    memset(payload, 'x', sizeof payload);
    uint64_t *sent = calloc((size_t)j->batch, sizeof *sent);
    uint64_t seq = 0;
    while (sent && atomic_load(&j->win.phase) < BENCH_DRAIN) {
        for (int i = 0; i < j->batch; i++) {
            bench_payload_fill(payload, sizeof payload, ++seq);
            sent[i] = bench_now_ns();
            natsStatus s = js_PublishAsync(j->js, "bench.js", payload, sizeof payload, NULL);
            if (s != NATS_OK)
                bench_window_error(&j->win, "js_PublishAsync: %s", natsStatus_GetText(s));
        }
        natsStatus s = js_PublishAsyncComplete(j->js, NULL);
        if (s != NATS_OK)
            bench_window_error(&j->win, "js_PublishAsyncComplete: %s", natsStatus_GetText(s));
        uint64_t acked = bench_now_ns();
        if (atomic_load(&j->win.phase) == BENCH_MEASURE) {
            for (int i = 0; i < j->batch; i++)
                bench_lat_add(&j->lat, acked - sent[i]);
            atomic_fetch_add(&j->win.completed, (unsigned long long)j->batch);
        }
    }
    free(sent);
    atomic_store(&j->done, true);
    return NULL;
}

static bool nats__js_drained(void *user)
{
    return atomic_load(&((nats__js_t *)user)->done);
}

void bench_jetstream(int batch, bench_result_t *out)
{
    if (access(NATS_SERVER_PATH, X_OK) != 0) {
        bench_result_na(out, "n/a (%s not installed: apt-get install nats-server)",
                        NATS_SERVER_PATH);
        return;
    }
    char dir[PATH_MAX], log[PATH_MAX + 16], store[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/jetstream-%d", bench_opts.workdir, batch);
    tkp_rmrf(dir);
    mkdir(dir, 0700);
    snprintf(log, sizeof log, "%s/nats-server.log", dir);
    snprintf(store, sizeof store, "%s/store", dir);
    int port = bench_free_port();
    char port_s[16], url[64];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    char *argv[] = {NATS_SERVER_PATH, "-a", "127.0.0.1", "-p", port_s, "-js", "-sd", store, NULL};
    pid_t pid = tkp_spawn(argv, log);
    nats__js_t *j = calloc(1, sizeof *j);
    if (!j) {
        bench_result_na(out, "out of memory");
        tkp_stop(pid);
        return;
    }
    j->batch = batch;
    bench_window_init(&j->win);
    natsStatus s = nats__connect(&j->conn, url, NULL, false);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&j->js, j->conn, NULL);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (s == NATS_OK) {
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        const char *subjects[] = {"bench.js"};
        cfg.Name = "BENCH";
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        /* Wait for the JetStream subsystem to come up with the server. */
        for (int i = 0; i < 50; i++) {
            s = js_AddStream(&si, j->js, &cfg, NULL, &jerr);
            if (s == NATS_OK)
                break;
            tkp_sleep_ms(100);
        }
        jsStreamInfo_Destroy(si);
    }
    if (s != NATS_OK) {
        bench_result_na(out, "n/a (JetStream: %s, error %d; see %s)", natsStatus_GetText(s),
                        (int)jerr, log);
    } else {
        pthread_t t;
        pthread_create(&t, NULL, nats__js_publisher, j);
        j->win.cpu_pid = pid;
        bench_window_run(&j->win, nats__js_drained, j);
        pthread_join(t, NULL);
        bench_result_from(out, &j->win, &j->lat);
    }
    jsCtx_Destroy(j->js);
    natsConnection_Destroy(j->conn);
    bench_case_end(pid, &j->lat, dir);
    free(j);
}

#endif
