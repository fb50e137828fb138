/* make_seeds — writes the seed corpora of the fuzz targets:
 *
 *   fuzz_make_seeds OUTDIR      (e.g. tests/fuzz/corpus)
 *
 * fills OUTDIR/<target>/ for frame, envelope, conf, audit, http,
 * member_id and store_record. Frames and envelopes come from the real encoder, audit logs
 * from hub_audit itself. Every key is fake: derived from 32 zero bytes
 * (see fuzz_util.h), so that the committed seeds hold no secret; the seed
 * holding secret halves is named *-fake-secret-keys.txt, never *.secret.
 * Audit checkpoints carry the time they were written, so a regenerated
 * corpus differs in those bytes only.
 */
#include "fuzz_util.h"
#include "hub_audit.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_sha256.h"
#include "hub_sign.h"
#include "hub_store.h"
#include "hub_store_codec.h"
#include "hub_wire.h"
#include "tkwire.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEED_AUDIT_MESSAGE_ID "7d0e8a52-1c4b-4f0e-9a3d-000000000001"
#define SEED_T0 1735689600000000ull

static const char *seed__out;
static uint8_t seed__pk[32], seed__sk[64];

static void seed__write(const char *target, const char *name, const void *data, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", seed__out, target);
    FUZZ_CHECK(mkdir(path, 0755) == 0 || errno == EEXIST);
    snprintf(path, sizeof path, "%s/%s/%s", seed__out, target, name);
    fuzz_write_file(path, data, len, 0644);
    printf("%s (%zu bytes)\n", path, len);
}

static void seed__text(const char *target, const char *name, const char *text)
{
    seed__write(target, name, text, strlen(text));
}

/* ---- envelopes and frames ---------------------------------------------- */

static uint8_t seed__payload[] = {'{', '"', 'c', 'c', 'c', 'd', '"', ':', '"', '0', '0', '1',
                                  '"', '}', 0x00, 0xff};

/* An encoded envelope (malloc'ed); signed with the fake key when sign. */
static uint8_t *seed__envelope(const char *message_id, Lth__V1__Kind kind,
                               Lth__V1__Delivery delivery, bool sign, size_t *len)
{
    hub_envelope_t env =
        tkw_lookup_request(message_id, SEED_T0 + 123456, seed__payload, sizeof seed__payload);
    env.correlation_id =
        kind == LTH__V1__KIND__KIND_REPLY ? "0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c90" : "";
    env.kind = kind;
    env.delivery = delivery;
    uint8_t sig[HUB_SIGNATURE_LEN];
    if (sign)
        FUZZ_CHECK(hub_envelope_sign(&env, seed__sk, sig) == 0);
    *len = lth__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(*len ? *len : 1);
    FUZZ_CHECK(buf != NULL);
    lth__v1__envelope__pack(&env, buf);
    return buf;
}

static void seed__envelopes(void)
{
    size_t len;
    uint8_t *buf;
    buf = seed__envelope("0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c90", LTH__V1__KIND__KIND_REQUEST,
                         LTH__V1__DELIVERY__DELIVERY_QUEUED, true, &len);
    seed__write("envelope", "request-signed.bin", buf, len);
    /* The same request with a second service appended (what the hub
     * refuses as ambiguous: protobuf-c reads the last, others the first). */
    static const char dump[] = "secret.dump/v1";
    uint8_t *twice = malloc(len + 2 + sizeof dump);
    FUZZ_CHECK(twice != NULL);
    memcpy(twice, buf, len);
    twice[len] = 5 << 3 | 2;
    twice[len + 1] = sizeof dump - 1;
    memcpy(twice + len + 2, dump, sizeof dump - 1);
    seed__write("envelope", "service-twice.bin", twice, len + 2 + sizeof dump - 1);
    free(twice);
    free(buf);
    buf = seed__envelope("5a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", LTH__V1__KIND__KIND_REPLY,
                         LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY, true, &len);
    seed__write("envelope", "reply-online-signed.bin", buf, len);
    free(buf);
    buf = seed__envelope("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", LTH__V1__KIND__KIND_EVENT,
                         LTH__V1__DELIVERY__DELIVERY_QUEUED, false, &len);
    seed__write("envelope", "event-unsigned.bin", buf, len);
    free(buf);
    buf = seed__envelope("NOT-A-UUID", LTH__V1__KIND__KIND_REQUEST,
                         LTH__V1__DELIVERY__DELIVERY_QUEUED, false, &len);
    seed__write("envelope", "bad-message-id.bin", buf, len);
    free(buf);
    /* The middle one of three envelopes signed together (a batch signature
     * and its BatchProof appended, as the SDK sends them). */
    const char *ids[3] = {"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d",
                          "2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e",
                          "3c4d5e6f-7a8b-4c3d-ae4f-5a6b7c8d9eaf"};
    uint8_t digests[3][HUB_DIGEST_LEN];
    uint8_t *plain[3];
    size_t plain_len[3];
    for (int i = 0; i < 3; i++) {
        plain[i] = seed__envelope(ids[i], LTH__V1__KIND__KIND_EVENT,
                                  LTH__V1__DELIVERY__DELIVERY_QUEUED, false, &plain_len[i]);
        hub_envelope_t *env = NULL;
        FUZZ_CHECK(hub_envelope_decode(plain[i], plain_len[i], &env) == 0);
        FUZZ_CHECK(hub_envelope_digest(env, digests[i]) == 0);
        hub_envelope_free(&env);
    }
    uint8_t sig[HUB_SIGNATURE_LEN];
    hub_batch_proof_t proofs[3];
    FUZZ_CHECK(hub_batch_sign((const uint8_t(*)[HUB_DIGEST_LEN])digests, 3, seed__sk, sig,
                              proofs) == 0);
    FUZZ_CHECK(hub_envelope_append_signature(&plain[1], &plain_len[1], sig, &proofs[1]) == 0);
    seed__write("envelope", "event-batch-signed.bin", plain[1], plain_len[1]);
    for (int i = 0; i < 3; i++)
        free(plain[i]);
}

static void seed__frame(const char *name, hub_frame_t *frame)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    FUZZ_CHECK(hub_frame_encode(frame, &buf, &len) == 0);
    seed__write("frame", name, buf, len);
    free(buf);
}

static void seed__frames(void)
{
    hub_frame_t frame;

    Lth__V1__Hello hello = LTH__V1__HELLO__INIT;
    char *services[] = {"citizen.lookup/v1", "dossier.status/v2"};
    hello.protocol_version = 1;
    hello.member_id = "VN/GOV/HN-STP/HOTICH";
    hello.n_services = 2;
    hello.services = services;
    hello.software = "fuzz-seeds 1";
    frame = tkw_hello_frame(&hello);
    seed__frame("hello.bin", &frame);

    Lth__V1__Welcome welcome = LTH__V1__WELCOME__INIT;
    welcome.member_id = "VN/GOV/HN-STP/HOTICH";
    welcome.hub_version = "0.1.0";
    welcome.max_payload_bytes = 1u << 20;
    welcome.heartbeat_ms = 1000;
    frame = tkw_welcome_frame(&welcome);
    seed__frame("welcome.bin", &frame);

    size_t len1, len2;
    uint8_t *env1 = seed__envelope("0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c90",
                                   LTH__V1__KIND__KIND_REQUEST,
                                   LTH__V1__DELIVERY__DELIVERY_QUEUED, true, &len1);
    uint8_t *env2 = seed__envelope("5a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                                   LTH__V1__KIND__KIND_EVENT,
                                   LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY, false, &len2);
    uint8_t garbage[] = {0x0a, 0xff, 0x01};
    ProtobufCBinaryData items[3] = {{len1, env1}, {len2, env2}, {sizeof garbage, garbage}};
    Lth__V1__Batch batch = tkw_batch(items, 3);
    frame = tkw_batch_frame(&batch);
    seed__frame("batch.bin", &frame);

    Lth__V1__Ack ack = LTH__V1__ACK__INIT;
    ack.message_id = "0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c90";
    ack.hub_seq = 42;
    Lth__V1__Ack *acks[] = {&ack};
    Lth__V1__Nack nack = LTH__V1__NACK__INIT;
    nack.message_id = "5a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    nack.code = LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE;
    nack.reason = "the receiver is not connected";
    Lth__V1__Nack *nacks[] = {&nack};
    Lth__V1__Receipts receipts = tkw_receipts(acks, 1);
    receipts.n_nacks = 1;
    receipts.nacks = nacks;
    frame = tkw_receipts_frame(&receipts);
    seed__frame("receipts.bin", &frame);

    Lth__V1__DeliveredEnvelope delivered = LTH__V1__DELIVERED_ENVELOPE__INIT;
    delivered.hub_seq = 42;
    delivered.envelope.data = env1;
    delivered.envelope.len = len1;
    delivered.attempt = 1;
    Lth__V1__DeliveredEnvelope *delivered_items[] = {&delivered};
    Lth__V1__Deliveries deliveries = tkw_deliveries(delivered_items, 1);
    frame = tkw_deliveries_frame(&deliveries);
    seed__frame("deliveries.bin", &frame);

    uint64_t seqs[] = {42, 43, 1ull << 40};
    Lth__V1__Settle settle = tkw_settle(seqs, 3);
    frame = tkw_settle_frame(&settle);
    seed__frame("settle.bin", &frame);

    Lth__V1__Heartbeat heartbeat = LTH__V1__HEARTBEAT__INIT;
    heartbeat.sent_at_us = SEED_T0;
    heartbeat.echo = 1;
    frame = tkw_heartbeat_frame(&heartbeat);
    seed__frame("heartbeat.bin", &frame);

    Lth__V1__Nack error = LTH__V1__NACK__INIT;
    error.message_id = "";
    error.code = LTH__V1__NACK_CODE__NACK_HELLO_REQUIRED;
    error.reason = "send Hello first";
    frame = tkw_error_frame(&error);
    seed__frame("error.bin", &frame);

    free(env1);
    free(env2);
}

/* ---- configuration and key files ------------------------------------- */

static void seed__confs(void)
{
    seed__text("conf", "hubd-full.conf",
               "# hubd configuration (fuzz seed)\n"
               "listen = tcp://127.0.0.1:5555\n"
               "key_file = secrets/VN.GOV.HN-LGSP.HUB.key\n"
               "key_dir = keys\n"
               "data_dir = /var/lib/lth/data\n"
               "audit_dir = audit\n"
               "policy_file = \" policy.conf \"\n"
               "http_listen = 127.0.0.1:8080\n"
               "http_token_file = token\n"
               "http_public = yes\n"
               "http_max_connections_per_client = 32\n"
               "http_header_timeout_ms = 5000\n"
               "crl_state_file = state/crl.state\n"
               "max_flows = 10000\n"
               "alarm_offline_warn_s = 60\n"
               "alarm_offline_crit_s = 900\n"
               "alarm_store_warn_percent = 80\n"
               "alarm_refusals_crit = 0\n"
               "max_payload_bytes = 1048576\n"
               "max_frame_bytes = 16777216\n"
               "max_store_bytes = 1073741824\n"
               "max_queue_depth = 1000000\n"
               "max_in_flight = 1000\n"
               "redelivery_ms = 5000\n"
               "max_attempts = 8\n"
               "default_ttl_ms = 86400000\n"
               "max_ttl_ms = 2592000000\n"
               "heartbeat_ms = 1000\n"
               "require_signatures = no\n"
               "audit = yes\n"
               "\t log_level =  debug  \r\n");
    seed__text("conf", "hubd-minimal.conf",
               "key_file = hub.key\nkey_dir = keys\ndata_dir = data\n");
    seed__text("conf", "hubd-bad.conf",
               "key_file = hub.key\nkey_dir = keys\nmax_frame_bytes = 4096\n"
               "unknown_key = 1\n");
    seed__text("conf", "parser-errors.conf",
               "\n# comment\nu = 7\ns = short\nBad Key = x\nno equals sign\n");

    uint8_t sign_public[32], sign_secret[64];
    char curve_public[41], curve_secret[41];
    fuzz_sign_keys(sign_public, sign_secret);
    fuzz_curve_keys(curve_public, curve_secret);
    char pub_hex[65], sec_hex[129], text[1024];
    for (int i = 0; i < 32; i++)
        snprintf(pub_hex + 2 * i, 3, "%02x", sign_public[i]);
    for (int i = 0; i < 64; i++)
        snprintf(sec_hex + 2 * i, 3, "%02x", sign_secret[i]);
    snprintf(text, sizeof text,
             "# Liên Thông Hub member keys (public). FAKE: derived from zero bytes.\n"
             "member-id = VN/GOV/HN-STP/HOTICH\ncurve-public-key = %s\nsign-public-key = %s\n",
             curve_public, pub_hex);
    seed__text("conf", "member-fake.pub", text);
    snprintf(text, sizeof text,
             "# FAKE secret keys for fuzzing, derived from 32 zero bytes; not a real secret.\n"
             "member-id = VN/GOV/HN-STP/HOTICH\ncurve-public-key = %s\ncurve-secret-key = %s\n"
             "sign-public-key = %s\nsign-secret-key = %s\n",
             curve_public, curve_secret, pub_hex, sec_hex);
    seed__text("conf", "member-fake-secret-keys.txt", text);
}

/* ---- audit logs -------------------------------------------------------- */

static void seed__audit_config(hub_audit_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    memcpy(cfg->sign_public, seed__pk, 32);
    memcpy(cfg->sign_secret, seed__sk, 64);
    cfg->checkpoint_every_records = 4;
    cfg->checkpoint_every_us = UINT64_MAX;
}

static void seed__audit_append(hub_audit_t *log, int count)
{
    static const hub_audit_event_t events[] = {
        HUB_AUDIT_ACCEPTED,     HUB_AUDIT_DELIVERED,        HUB_AUDIT_SETTLED,
        HUB_AUDIT_NACKED,       HUB_AUDIT_DEAD_LETTERED,    HUB_AUDIT_REPLAYED,
        HUB_AUDIT_EXPIRED,      HUB_AUDIT_MEMBER_CONNECTED, HUB_AUDIT_MEMBER_REFUSED,
    };
    uint8_t sig[64];
    for (int k = 0; k < 64; k++)
        sig[k] = (uint8_t)k;
    for (int i = 0; i < count; i++) {
        hub_audit_event_t event = events[i % (int)(sizeof events / sizeof events[0])];
        bool member = event == HUB_AUDIT_MEMBER_CONNECTED || event == HUB_AUDIT_MEMBER_REFUSED;
        hub_audit_record_t rec = {
            .event = event,
            .time_us = SEED_T0 + (uint64_t)i * 1000,
            .message_id = member ? "" : SEED_AUDIT_MESSAGE_ID,
            .hub_seq = member ? 0 : 1000,
            .sender = "VN/GOV/HN-STP/HOTICH",
            .receiver = member ? "" : "VN/GOV/BCA/CSDLQGDC",
            .service = member ? "" : "citizen.lookup/v1",
            .has_digest = event == HUB_AUDIT_ACCEPTED,
            .outcome = event == HUB_AUDIT_ACCEPTED ? "request queued" : "",
            .purpose = event == HUB_AUDIT_ACCEPTED ? "verify applicants' identity" : "",
            .dossier = event == HUB_AUDIT_ACCEPTED ? "000.00.01.H26-250630-0001" : "",
            .signature = event == HUB_AUDIT_ACCEPTED ? sig : NULL,
            .signature_len = event == HUB_AUDIT_ACCEPTED ? sizeof sig : 0,
            .reason = event == HUB_AUDIT_NACKED ? "RECEIVER_OFFLINE: \"quoted\" \\ tab\t "
                                                  "Tiếng Việt \xff"
                      : event == HUB_AUDIT_DELIVERED ? "attempt 1"
                                                     : "",
        };
        hub_sha256(seed__payload, sizeof seed__payload, rec.digest);
        FUZZ_CHECK(hub_audit_append(log, &rec) == 0);
    }
}

static char *seed__read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    FUZZ_CHECK(f != NULL);
    char *buf = malloc(1 << 20);
    FUZZ_CHECK(buf != NULL);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void seed__audit(void)
{
    hub_audit_config_t cfg;
    seed__audit_config(&cfg);
    char err[HUB_ERRMSG_MAX], path[PATH_MAX];
    size_t len;
    char *buf;

    /* A sealed log: records of every kind, checkpoints every 4 records. */
    const char *sealed = fuzz_subdir("sealed");
    hub_audit_t *log = NULL;
    FUZZ_CHECK(hub_audit_open(sealed, &cfg, &log, err, sizeof err) == 0);
    seed__audit_append(log, 9);
    FUZZ_CHECK(hub_audit_close(&log) == 0);
    snprintf(path, sizeof path, "%s/audit-000001.log", sealed);
    buf = seed__read(path, &len);
    seed__write("audit", "sealed.log", buf, len);
    /* The same log with a last line cut by a crash. */
    static const char cut[] = "{\"seq\":13,\"ts\":1735689600009000,\"event\":\"ACCE";
    memcpy(buf + len, cut, sizeof cut - 1);
    seed__write("audit", "torn.log", buf, len + sizeof cut - 1);
    free(buf);

    /* A hub killed after writing records past its last checkpoint (a child
     * that exits without closing), then the restart that notes it. */
    const char *crashed = fuzz_subdir("crashed");
    fflush(NULL);
    pid_t pid = fork();
    FUZZ_CHECK(pid >= 0);
    if (pid == 0) {
        hub_audit_t *child = NULL;
        if (hub_audit_open(crashed, &cfg, &child, err, sizeof err) != 0)
            _exit(1);
        seed__audit_append(child, 6);
        _exit(hub_audit_flush(child) == 0 ? 0 : 1);
    }
    int status = 0;
    FUZZ_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
               WEXITSTATUS(status) == 0);
    snprintf(path, sizeof path, "%s/audit-000001.log", crashed);
    buf = seed__read(path, &len);
    seed__write("audit", "unsealed.log", buf, len);
    free(buf);
    FUZZ_CHECK(hub_audit_open(crashed, &cfg, &log, err, sizeof err) == 0);
    FUZZ_CHECK(hub_audit_open_notice(log) != NULL);
    seed__audit_append(log, 1);
    FUZZ_CHECK(hub_audit_close(&log) == 0);
    buf = seed__read(path, &len);
    seed__write("audit", "recovered.log", buf, len);
    free(buf);
    sodium_memzero(&cfg, sizeof cfg);
}

/* ---- HTTP requests ------------------------------------------------------ */

static void seed__http(void)
{
    seed__text("http", "get-metrics.txt", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    seed__text("http", "get-query-bearer.txt",
               "GET /api/dlq?limit=10&member=VN%2FGOV%2FBCA%2FCSDLQGDC HTTP/1.1\r\n"
               "Host: 127.0.0.1:8080\r\nAuthorization: Bearer fuzz-token\r\n"
               "Connection: close\r\n\r\n");
    seed__text("http", "post-json.txt",
               "POST /api/dlq/replay?member=X-Fuzz HTTP/1.1\r\nHost: h\r\n"
               "Authorization: bearer  fuzz-token \r\nContent-Type: application/json\r\n"
               "Content-Length: 26\r\n\r\n{\"message_id\":\"x\",\"n\":1}\n\n");
    seed__text("http", "head.txt", "HEAD /health HTTP/1.1\r\nHost: h\r\n\r\n");
    seed__text("http", "pipelined-keepalive.txt",
               "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
               "GET /error?why=%22x%22 HTTP/1.1\r\nHost: h\r\n\r\n"
               "GET /nothing HTTP/1.1\r\nHost: h\r\n\r\n"
               "GET /status/204 HTTP/1.1\r\nHost: h\r\n\r\n");
    seed__text("http", "http10.txt", "GET /status/200 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                     "GET / HTTP/1.0\r\n\r\n");
    seed__text("http", "expect-continue.txt",
               "PUT /status/201 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
               "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
    seed__text("http", "chunked.txt",
               "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n");
    seed__text("http", "duplicate-auth.txt",
               "GET / HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n");
    seed__text("http", "too-large-body.txt",
               "POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\nx");
    seed__text("http", "http2-version.txt", "GET / HTTP/2.0\r\n\r\n");
    seed__text("http", "connect.txt", "CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n");
    seed__text("http", "incomplete.txt", "GET /slow HTTP/1.1\r\nHost: h\r\nX-A: ");
    /* What hub_http checks before libmicrohttpd sees a byte, and around it. */
    static const char tls_hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
    seed__write("http", "tls-hello.bin", tls_hello, sizeof tls_hello - 1);
    seed__text("http", "absolute-form.txt",
               "GET http://127.0.0.1/api/v1/queues?member=A%2FB#frag HTTP/1.1\r\n"
               "Host: 127.0.0.1\r\nConnection: close\r\n\r\n");
    char many[8192];
    size_t off = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 300; i++)
        off += (size_t)snprintf(many + off, sizeof many - off, "X-%d: v\r\n", i);
    snprintf(many + off, sizeof many - off, "\r\n");
    seed__text("http", "many-headers.txt", many);
    seed__text("http", "leading-crlf-two-hosts.txt",
               "\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
}

/* ---- identifiers ---------------------------------------------------------- */

static void seed__ids(void)
{
    seed__text("member_id", "member.txt", "VN/GOV/BCA/CSDLQGDC");
    seed__text("member_id", "member-dashes.txt", "VN/GOV/HN-STP/HO_TICH-2");
    seed__text("member_id", "member-empty-part.txt", "VN/GOV//HOTICH");
    seed__text("member_id", "service.txt", "citizen.lookup/v1");
    seed__text("member_id", "uuid.txt", "0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c90");
    seed__text("member_id", "uuid-upper.txt", "0B6F1F7E-3C1A-4C2E-9A51-7D1F4E2B8C90");
    seed__text("member_id", "long-part.txt",
               "VN/GOV/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/X");
}

/* ---- store records -------------------------------------------------------- */

/* Writes kind byte + value as one seed of store_record. */
static void seed__store_value(const char *name, uint8_t kind, const void *value, size_t len)
{
    uint8_t *buf = malloc(len + 1);
    FUZZ_CHECK(buf != NULL);
    buf[0] = kind;
    memcpy(buf + 1, value, len);
    seed__write("store_record", name, buf, len + 1);
    free(buf);
}

static void seed__store(void)
{
    hub_store_msg_t m;
    memset(&m, 0, sizeof m);
    strcpy(m.message_id, "7d0e8a52-1c4b-4f0e-9a3d-000000000001");
    strcpy(m.sender, "VN/GOV/HN-STP/HOTICH");
    strcpy(m.receiver, "VN/GOV/BCA/CSDLQGDC");
    strcpy(m.service, "citizen.lookup/v1");
    m.accepted_at_us = SEED_T0;
    m.expires_at_us = SEED_T0 + 30000000;
    m.envelope = seed__payload;
    m.envelope_len = sizeof seed__payload;
    size_t len = store_codec__rec_size(&m);
    uint8_t *rec = malloc(len);
    FUZZ_CHECK(rec != NULL);
    store_codec__rec_encode(rec, &m);
    seed__store_value("record.bin", 0, rec, len);
    free(rec);

    const char *reason = "ttl expired";
    uint8_t dead[HUB__DEAD_HDR + 16];
    store_codec__dead_encode(dead, 3, SEED_T0, reason, strlen(reason));
    seed__store_value("dead.bin", 1, dead, HUB__DEAD_HDR + strlen(reason));

    store_codec__ids_rec_t ids = {1048577, SEED_T0, 0, {0}};
    for (size_t i = 0; i < sizeof ids.digest; i++)
        ids.digest[i] = (uint8_t)(0xA0 + i);
    uint8_t idv[HUB__IDS_VAL];
    store_codec__ids_encode(idv, &ids);
    seed__store_value("ids.bin", 2, idv, sizeof idv);
    seed__store_value("ids-format-3.bin", 2, idv, HUB__IDS_VAL_OLD);

    hub_store_held_t held = {2, 2048};
    uint8_t hv[HUB__HELD_VAL];
    store_codec__held_encode(hv, &held);
    seed__store_value("held.bin", 3, hv, sizeof hv);

    hub_store_request_t req;
    memset(&req, 0, sizeof req);
    strcpy(req.message_id, m.message_id);
    strcpy(req.sender, m.sender);
    strcpy(req.receiver, m.receiver);
    req.expires_at_us = SEED_T0 + 30000000;
    uint8_t rv[1 + HUB_STORE_ID_MAX + HUB__REQ_VAL_MAX];
    size_t klen = strlen(req.message_id);
    rv[0] = (uint8_t)klen;
    memcpy(rv + 1, req.message_id, klen);
    size_t vlen = store_codec__request_encode(rv + 1 + klen, &req);
    seed__store_value("request.bin", 4, rv, 1 + klen + vlen);

    static const uint8_t fields[] = {7, 'm', 'e', 's', 's', 'a', 'g', 'e', 3, 'S', '/', 'X',
                                     3, 'R', '/', 'Y', 0,   1,   2,   3,   4, 5,   6,   7};
    seed__store_value("encode.bin", 5, fields, sizeof fields);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR   (e.g. tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    seed__out = argv[1];
    FUZZ_CHECK(mkdir(seed__out, 0755) == 0 || errno == EEXIST);
    hub_log_set_level(HUB_LOG_ERROR);
    fuzz_sign_keys(seed__pk, seed__sk);
    seed__envelopes();
    seed__frames();
    seed__confs();
    seed__audit();
    seed__http();
    seed__ids();
    seed__store();
    return 0;
}
