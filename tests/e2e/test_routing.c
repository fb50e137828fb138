/* End to end: hubd and hub-adapter as separate processes on 127.0.0.1 with
 * fresh keys; requests, replies, refusals, and abuse from a member. */
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_sign.h"
#include "hubfix.h"
#include "testkit.h"
#include "tkwire.h"

#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define A "VN/GOV/BCA/CSDLQGDC"
#define B "VN/GOV/HN-STP/HOTICH"
#define OPS "VN/GOV/HN-LGSP/OPS"
#define GHOST "VN/GOV/HN-SKHDT/DKKD" /* known to the hub, never connected */
#define STRANGER "VN/GOV/XX/UNKNOWN" /* keys exist, but not in the hub's key dir */

static hubfix_t fix;

static void setup_common(const char *extra)
{
    hubfix_init(&fix, extra);
    HUBFIX_ADD_MEMBERS(&fix, A, B, OPS, GHOST);
    hubfix_add_member(&fix, STRANGER, false);
    hubfix_start(&fix);
    hubfix_start_adapter(&fix, A, "echo", NULL);
    hubfix_start_adapter(&fix, B, "echo", "plugin.relay_to = " A);
}

static void setup(void) { setup_common("max_payload_bytes = 4096"); }
static void setup_small_window(void)
{
    setup_common("max_payload_bytes = 4096\nmax_in_flight = 4\nredelivery_ms = 1000");
}
/* A short redelivery period, so that a wait for "nothing more" can see a
 * redelivered duplicate. */
static void setup_redelivering(void)
{
    setup_common("max_payload_bytes = 4096\nredelivery_ms = 500");
}
static void teardown(void) { hubfix_cleanup(&fix); }

/* The operator's view: ping works, i.e. the hub still serves everyone. */
static void assert_hub_serves(void)
{
    hubfix_assert_serves(&fix, OPS, A);
}

START_TEST(request_and_reply_between_adapters)
{
    adp_client_t *c = hubfix_connect(&fix, OPS);
    /* OPS -> B relay/v1 -> (B asks A echo/v1) -> A replies -> B replies. */
    const char *payload = "{\"so_dinh_danh\":\"001085012345\"}";
    adp_reply_t reply;
    int rc = adp_request(c, B, "relay/v1", "application/json", payload, strlen(payload), 0, 5000,
                         &reply);
    ck_assert_msg(rc == 0, "relay failed: %s", adp_last_error(c));
    ck_assert_str_eq(reply.sender, B);
    ck_assert_str_eq(reply.content_type, "application/json");
    ck_assert_uint_eq(reply.payload_len, strlen(payload));
    ck_assert_int_eq(memcmp(reply.payload, payload, reply.payload_len), 0);
    adp_reply_free(&reply);

    /* And an online-only request straight to A. */
    rc = adp_request(c, A, "echo/v1", "text/plain", "x", 1, ADP_ONLINE_ONLY, 5000, &reply);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(reply.sender, A);
    adp_reply_free(&reply);
    adp_close(&c);
}
END_TEST

START_TEST(ping_command_reports_round_trip)
{
    char ctl[PATH_MAX], secret[PATH_MAX], text[2048];
    snprintf(ctl, sizeof ctl, "%s/hubctl.conf", fix.dir);
    hubfix_secret_path(&fix, OPS, secret);
    snprintf(text, sizeof text,
             "hub_endpoint = %s\nhub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub\n"
             "member_key_file = %s\n",
             fix.endpoint, secret);
    tk_write_file(ctl, text);
    char *ok[] = {(char *)tk_bin("hubctl"), "--config", ctl, "ping", A, "--count", "2", NULL};
    TK_RUN_SAYS(ok, 20000, 0, "pong from " A ": seq=2 time=");
    char *offline[] = {(char *)tk_bin("hubctl"), "--config", ctl, "ping", GHOST, NULL};
    TK_RUN_SAYS(offline, 20000, 3, "RECEIVER_OFFLINE");
    char *unknown[] = {(char *)tk_bin("hubctl"), "--config", ctl, "ping", "VN/GOV/NO/SUCH", NULL};
    TK_RUN_SAYS(unknown, 20000, 4, "UNKNOWN_RECEIVER");
}
END_TEST

START_TEST(unknown_key_is_refused_and_gets_no_traffic)
{
    char err[512];
    adp_client_t *c = NULL;
    int rc = hubfix_try_connect(&fix, STRANGER, NULL, 3000, &c, err, sizeof err);
    ck_assert_int_eq(rc, HUB_EREFUSED);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, "did not accept this member's key"), "error: %s", err);

    /* A raw socket with the stranger's key: nothing it sends gets through,
     * nothing comes back. */
    rawcli_t raw;
    rawcli_open(&raw, &fix, STRANGER);
    Lth__V1__Hello hello = LTH__V1__HELLO__INIT;
    hello.protocol_version = 1;
    hello.member_id = STRANGER;
    hub_frame_t frame = tkw_hello_frame(&hello);
    int dontwait_rc = zmq_send(raw.sock, "x", 1, ZMQ_DONTWAIT);
    (void)dontwait_rc;
    uint8_t *buf;
    size_t len;
    hub_frame_encode(&frame, &buf, &len);
    zmq_send(raw.sock, buf, len, ZMQ_DONTWAIT);
    free(buf);
    hub_frame_t *answer = rawcli_recv(&raw, 1500);
    ck_assert_ptr_null(answer);
    rawcli_close(&raw);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "CURVE key not in the key directory", 3000),
                  "refusal not logged");
    assert_hub_serves();
}
END_TEST

static Lth__V1__Nack *expect_nack(rawcli_t *raw, hub_frame_t **holder)
{
    *holder = rawcli_recv_case(raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_msg(*holder != NULL, "no receipts");
    ck_assert_uint_eq((*holder)->receipts->n_nacks, 1);
    ck_assert_uint_eq((*holder)->receipts->n_acks, 0);
    return (*holder)->receipts->nacks[0];
}

START_TEST(spoofed_sender_is_refused)
{
    rawcli_t raw;
    rawcli_open(&raw, &fix, OPS);
    /* Hello claiming another member. */
    rawcli_send_hello(&raw, A, NULL);
    hub_frame_t *err = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_ERROR, 5000);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(err->error->code, LTH__V1__NACK_CODE__NACK_SENDER_MISMATCH);
    ck_assert_msg(strstr(err->error->reason, OPS), "reason: %s", err->error->reason);
    hub_frame_free(&err);

    /* An envelope claiming another sender. */
    rawcli_hello(&raw, OPS);
    char id[37];
    rawcli_send_envelope(&raw, &fix, A, B, "echo/v1", "hi", 2, 0, id);
    hub_frame_t *holder;
    Lth__V1__Nack *nack = expect_nack(&raw, &holder);
    ck_assert_int_eq(nack->code, LTH__V1__NACK_CODE__NACK_SENDER_MISMATCH);
    ck_assert_str_eq(nack->message_id, id);
    ck_assert_msg(strstr(nack->reason, "authenticated as " OPS), "reason: %s", nack->reason);
    hub_frame_free(&holder);
    rawcli_close(&raw);
    assert_hub_serves();
}
END_TEST

/* Hello with Hello.receipts_in_deliveries set or not. */
static void hello_as(rawcli_t *c, const char *member_id, bool piggyback)
{
    Lth__V1__Hello hello = LTH__V1__HELLO__INIT;
    hello.protocol_version = 1;
    hello.member_id = (char *)member_id;
    hello.receipts_in_deliveries = piggyback;
    hub_frame_t frame = tkw_hello_frame(&hello);
    rawcli_send_frame(c, &frame);
    hub_frame_t *w = rawcli_recv_case(c, LTH__V1__FRAME__BODY_WELCOME, 5000);
    ck_assert_msg(w != NULL, "no Welcome for %s", member_id);
    hub_frame_free(&w);
}

/* An online-only envelope a member sends to itself is delivered in the same
 * loop turn as its ACK is due: a client that reads Deliveries.receipts gets
 * both in ONE frame; one that does not gets a Receipts frame of its own. */
START_TEST(online_only_acks_ride_in_deliveries_when_asked)
{
    for (int piggyback = 0; piggyback < 2; piggyback++) {
        rawcli_t raw;
        rawcli_open(&raw, &fix, OPS);
        hello_as(&raw, OPS, piggyback);
        char id[37];
        rawcli_send_envelope(&raw, &fix, OPS, OPS, "note/v1", "tin", 3,
                             LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY, id);
        bool delivered = false, acked = false;
        int frames = 0;
        while (!(delivered && acked)) {
            hub_frame_t *f = rawcli_recv(&raw, 5000);
            ck_assert_msg(f != NULL, "piggyback=%d: delivered=%d acked=%d", piggyback, delivered,
                          acked);
            frames++;
            const Lth__V1__Receipts *r = NULL;
            if (f->body_case == LTH__V1__FRAME__BODY_DELIVERIES) {
                ck_assert_uint_eq(f->deliveries->n_items, 1);
                hub_envelope_t *got = rawcli_delivered_envelope(f);
                ck_assert_str_eq(got->message_id, id);
                hub_envelope_free(&got);
                delivered = true;
                r = f->deliveries->receipts;
                if (!piggyback)
                    ck_assert_ptr_null(r);
            } else if (f->body_case == LTH__V1__FRAME__BODY_RECEIPTS) {
                r = f->receipts;
            }
            if (r) {
                ck_assert_uint_eq(r->n_nacks, 0);
                ck_assert_uint_eq(r->n_acks, 1);
                ck_assert_str_eq(r->acks[0]->message_id, id);
                ck_assert_uint_eq(r->acks[0]->hub_seq, 0);
                acked = true;
            }
            hub_frame_free(&f);
        }
        ck_assert_int_eq(frames, piggyback ? 1 : 2);
        rawcli_close(&raw);
    }
}
END_TEST

/* One Ed25519 signature over a batch's Merkle root (proto/README.md): the
 * hub takes every envelope whose proof leads to the signed root, refuses
 * the one changed after signing, and the receiver gets the good ones with
 * signatures that verify on their own. */
START_TEST(batch_signed_envelopes_are_checked_one_by_one)
{
    enum { N = 5, TAMPERED = 3 };
    char secret[PATH_MAX], err[256];
    hub_keypair_t kp;
    hubfix_secret_path(&fix, OPS, secret);
    ck_assert_int_eq(hub_keyfile_read(secret, &kp, err, sizeof err), 0);
    char ids[N][37];
    uint8_t digests[N][32];
    hub_envelope_t envs[N];
    char payload[N][16];
    for (int i = 0; i < N; i++) {
        hub_envelope_t e = LTH__V1__ENVELOPE__INIT;
        hub_uuid_new(ids[i]);
        snprintf(payload[i], sizeof payload[i], "ho so %d", i);
        e.message_id = ids[i];
        e.sender = OPS;
        e.receiver = GHOST; /* offline: the hub keeps them, and we read its answer */
        e.service = "note/v1";
        e.created_at_us = hub_now_us();
        e.content_type = "text/plain";
        e.payload.data = (uint8_t *)payload[i];
        e.payload.len = strlen(payload[i]);
        e.kind = LTH__V1__KIND__KIND_EVENT;
        envs[i] = e;
        ck_assert_int_eq(hub_envelope_digest(&envs[i], digests[i]), 0);
    }
    uint8_t sig[64];
    hub_batch_proof_t proofs[N];
    ck_assert_int_eq(hub_batch_sign((const uint8_t(*)[32])digests, N, kp.sign_secret, sig, proofs),
                     0);
    hub_keypair_wipe(&kp);
    payload[TAMPERED][0] = 'H'; /* changed after signing */
    ProtobufCBinaryData items[N];
    for (int i = 0; i < N; i++) {
        items[i].len = lth__v1__envelope__get_packed_size(&envs[i]);
        items[i].data = malloc(items[i].len);
        ck_assert_ptr_nonnull(items[i].data);
        lth__v1__envelope__pack(&envs[i], items[i].data);
        ck_assert_int_eq(
            hub_envelope_append_signature(&items[i].data, &items[i].len, sig, &proofs[i]), 0);
    }
    rawcli_t raw;
    rawcli_connect(&raw, &fix, OPS);
    rawcli_send_batch(&raw, items, N);
    int acks = 0, nacks = 0;
    while (acks + nacks < N) {
        hub_frame_t *f = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
        ck_assert_msg(f != NULL, "receipts missing: %d acks, %d nacks", acks, nacks);
        for (size_t k = 0; k < f->receipts->n_acks; k++) {
            ck_assert_str_ne(f->receipts->acks[k]->message_id, ids[TAMPERED]);
            ck_assert_uint_gt(f->receipts->acks[k]->hub_seq, 0);
            acks++;
        }
        for (size_t k = 0; k < f->receipts->n_nacks; k++) {
            ck_assert_str_eq(f->receipts->nacks[k]->message_id, ids[TAMPERED]);
            ck_assert_int_eq(f->receipts->nacks[k]->code, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE);
            nacks++;
        }
        hub_frame_free(&f);
    }
    ck_assert_int_eq(acks, N - 1);
    ck_assert_int_eq(nacks, 1);
    rawcli_close(&raw);

    /* The receiver comes online and gets the four, each verifiable. */
    rawcli_t ghost;
    rawcli_connect(&ghost, &fix, GHOST);
    int got = 0;
    while (got < N - 1) {
        hub_frame_t *f = rawcli_recv_case(&ghost, LTH__V1__FRAME__BODY_DELIVERIES, 5000);
        ck_assert_msg(f != NULL, "only %d deliveries", got);
        for (size_t k = 0; k < f->deliveries->n_items; k++) {
            const Lth__V1__DeliveredEnvelope *d = f->deliveries->items[k];
            hub_envelope_t *e = NULL;
            ck_assert_int_eq(hub_envelope_decode(d->envelope.data, d->envelope.len, &e), 0);
            ck_assert_ptr_nonnull(e->batch_proof);
            ck_assert_uint_eq(d->sender_sign_key.len, 32);
            ck_assert_int_eq(hub_envelope_verify(e, d->sender_sign_key.data), 0);
            ck_assert_str_ne(e->message_id, ids[TAMPERED]);
            hub_envelope_free(&e);
            got++;
        }
        hub_frame_free(&f);
    }
    rawcli_close(&ghost);
    for (int i = 0; i < N; i++)
        free(items[i].data);
}
END_TEST

/* A queued envelope for a connected receiver is delivered before its store
 * commit; once the receiver settles it, the sender's ACK names the same
 * hub_seq, and the same envelope sent again is answered with that ACK and
 * not delivered a second time. */
START_TEST(early_delivery_then_resend_is_not_delivered_again)
{
    rawcli_t snd, rcv;
    rawcli_connect(&rcv, &fix, GHOST);
    rawcli_connect(&snd, &fix, OPS);
    char id[37];
    size_t len;
    uint8_t *env = rawcli_envelope(&fix, OPS, GHOST, "note/v1", "to khai", 7,
                                   LTH__V1__DELIVERY__DELIVERY_QUEUED, id, &len);
    rawcli_send_batch1(&snd, env, len);
    hub_frame_t *f = rawcli_recv_case(&rcv, LTH__V1__FRAME__BODY_DELIVERIES, 5000);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(f->deliveries->n_items, 1);
    uint64_t seq = f->deliveries->items[0]->hub_seq;
    ck_assert_uint_gt(seq, 0);
    hub_frame_free(&f);
    rawcli_settle(&rcv, &seq, 1);
    for (int round = 0; round < 2; round++) {
        f = rawcli_recv_case(&snd, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
        ck_assert_msg(f != NULL, "no receipt in round %d", round);
        ck_assert_uint_eq(f->receipts->n_nacks, 0);
        ck_assert_uint_eq(f->receipts->n_acks, 1);
        ck_assert_str_eq(f->receipts->acks[0]->message_id, id);
        ck_assert_uint_eq(f->receipts->acks[0]->hub_seq, seq);
        hub_frame_free(&f);
        if (round == 0)
            rawcli_send_batch1(&snd, env, len); /* the same bytes again */
    }
    /* Nothing more for the receiver, over three redelivery periods
     * (redelivery_ms = 500) in which it stays online by heartbeats: neither
     * the re-sent copy nor a redelivery of the settled original. */
    uint64_t until = hub_monotonic_us() + 1500000u;
    while (hub_monotonic_us() < until) {
        rawcli_heartbeat(&rcv);
        f = rawcli_recv_case(&rcv, LTH__V1__FRAME__BODY_DELIVERIES, 100);
        ck_assert_msg(f == NULL, "the envelope was delivered again (attempt %u)",
                      f ? f->deliveries->items[0]->attempt : 0);
    }
    free(env);
    rawcli_close(&snd);
    rawcli_close(&rcv);
}
END_TEST

START_TEST(forged_reply_is_refused)
{
    /* OPS asks A; GHOST (a known member) tries to answer in A's place. */
    rawcli_t ops, ghost;
    rawcli_connect(&ops, &fix, OPS);
    rawcli_connect(&ghost, &fix, GHOST);
    char req_id[37];
    /* A request whose reply A will try to forge: OPS -> GHOST. */
    hub_uuid_new(req_id);
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    env.message_id = req_id;
    env.sender = OPS;
    env.receiver = GHOST; /* GHOST is online now, so the request is accepted */
    env.service = "echo/v1";
    env.kind = LTH__V1__KIND__KIND_REQUEST;
    env.delivery = LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY;
    env.content_type = "text/plain";
    char secret[PATH_MAX], err[256];
    hub_keypair_t kp;
    uint8_t sig[64];
    hubfix_secret_path(&fix, OPS, secret);
    ck_assert_int_eq(hub_keyfile_read(secret, &kp, err, sizeof err), 0);
    hub_envelope_sign(&env, kp.sign_secret, sig);
    size_t len = lth__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(len);
    lth__v1__envelope__pack(&env, buf);
    rawcli_send_batch1(&ops, buf, len);
    free(buf);
    hub_frame_t *rec = rawcli_recv_case(&ops, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_ptr_nonnull(rec);
    ck_assert_uint_eq(rec->receipts->n_acks, 1);
    hub_frame_free(&rec);
    /* A (a third member) answers a request that went to GHOST. */
    hub_keypair_t bkp;
    hubfix_secret_path(&fix, A, secret);
    ck_assert_int_eq(hub_keyfile_read(secret, &bkp, err, sizeof err), 0);
    rawcli_t a_raw;
    rawcli_connect(&a_raw, &fix, A);
    char reply_id[37];
    hub_uuid_new(reply_id);
    Lth__V1__Envelope fake = LTH__V1__ENVELOPE__INIT;
    fake.message_id = reply_id;
    fake.correlation_id = req_id;
    fake.sender = A;
    fake.receiver = OPS;
    fake.service = "echo/v1";
    fake.kind = LTH__V1__KIND__KIND_REPLY;
    fake.delivery = LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY;
    fake.content_type = "text/plain";
    hub_envelope_sign(&fake, bkp.sign_secret, sig);
    len = lth__v1__envelope__get_packed_size(&fake);
    buf = malloc(len);
    lth__v1__envelope__pack(&fake, buf);
    rawcli_send_batch1(&a_raw, buf, len);
    free(buf);
    hub_frame_t *holder;
    Lth__V1__Nack *nack = expect_nack(&a_raw, &holder);
    ck_assert_int_eq(nack->code, LTH__V1__NACK_CODE__NACK_FORBIDDEN);
    ck_assert_msg(strstr(nack->reason, "only " GHOST " may answer"), "%s", nack->reason);
    hub_frame_free(&holder);
    hub_keypair_wipe(&kp);
    hub_keypair_wipe(&bkp);
    rawcli_close(&a_raw);
    rawcli_close(&ghost);
    rawcli_close(&ops);
}
END_TEST

START_TEST(each_nack_reason)
{
    rawcli_t raw;
    rawcli_connect(&raw, &fix, OPS);
    hub_frame_t *holder;
    Lth__V1__Nack *nack;
    char id[37];
    size_t len;
    uint8_t *env;

    /* Unknown receiver. */
    rawcli_send_envelope(&raw, &fix, OPS, "VN/GOV/NO/SUCH", "echo/v1", "x", 1, 0, id);
    nack = expect_nack(&raw, &holder);
    ck_assert_int_eq(nack->code, LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER);
    ck_assert_str_eq(nack->message_id, id);
    hub_frame_free(&holder);

    /* Receiver offline (online-only delivery). */
    rawcli_send_envelope(&raw, &fix, OPS, GHOST, "echo/v1", "x", 1,
                         LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY, id);
    nack = expect_nack(&raw, &holder);
    ck_assert_int_eq(nack->code, LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE);
    ck_assert_msg(strstr(nack->reason, GHOST), "reason: %s", nack->reason);
    hub_frame_free(&holder);

    /* Payload over the configured maximum (4096 in this fixture). */
    char *big = calloc(1, 5000);
    env = rawcli_envelope(&fix, OPS, A, "echo/v1", big, 5000, 0, id, &len);
    free(big);
    rawcli_send_batch1(&raw, env, len);
    free(env);
    nack = expect_nack(&raw, &holder);
    ck_assert_int_eq(nack->code, LTH__V1__NACK_CODE__NACK_PAYLOAD_TOO_LARGE);
    ck_assert_msg(strstr(nack->reason, "4096"), "reason: %s", nack->reason);
    hub_frame_free(&holder);

    /* Malformed frame. */
    rawcli_send(&raw, "\xff\xff\xff garbage", 12);
    hub_frame_t *err = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_ERROR, 5000);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(err->error->code, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME);
    hub_frame_free(&err);

    /* Malformed envelope inside a well-formed batch. */
    rawcli_send_batch1(&raw, (const uint8_t *)"\x0a\x05hello", 7);
    nack = expect_nack(&raw, &holder);
    ck_assert_int_eq(nack->code, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE);
    hub_frame_free(&holder);

    /* A field lth.v1.Envelope does not define (number 20): unsigned cargo. */
    env = rawcli_envelope(&fix, OPS, A, "echo/v1", "x", 1, 0, id, &len);
    uint8_t *extended = malloc(len + 3);
    memcpy(extended, env, len);
    extended[len] = 0xa0; /* field 20, varint */
    extended[len + 1] = 0x01;
    extended[len + 2] = 0x07;
    rawcli_send_batch1(&raw, extended, len + 3);
    free(extended);
    free(env);
    nack = expect_nack(&raw, &holder);
    ck_assert_int_eq(nack->code, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE);
    ck_assert_msg(strstr(nack->reason, "signature"), "%s", nack->reason);
    hub_frame_free(&holder);

    /* Unsupported protocol version. */
    Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
    hub_frame_t frame = tkw_heartbeat_frame(&hb);
    frame.protocol_version = 2;
    rawcli_send_frame(&raw, &frame);
    err = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_ERROR, 5000);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(err->error->code, LTH__V1__NACK_CODE__NACK_UNSUPPORTED_VERSION);
    hub_frame_free(&err);

    /* The same connection is still served. */
    rawcli_send_envelope(&raw, &fix, OPS, A, "echo/v1", "ok", 2, 0, id);
    hub_frame_t *rec = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_ptr_nonnull(rec);
    ck_assert_uint_eq(rec->receipts->n_acks, 1);
    ck_assert_str_eq(rec->receipts->acks[0]->message_id, id);
    ck_assert_uint_gt(rec->receipts->acks[0]->hub_seq, 0);
    hub_frame_free(&rec);
    rawcli_close(&raw);
    assert_hub_serves();
}
END_TEST

START_TEST(survives_random_and_truncated_frames)
{
    rawcli_t raw;
    rawcli_connect(&raw, &fix, OPS);
    /* A valid batch to truncate. */
    size_t len;
    uint8_t *env = rawcli_envelope(&fix, OPS, A, "echo/v1", "payload", 7, 0, NULL, &len);
    ProtobufCBinaryData item = {len, env};
    Lth__V1__Batch batch = tkw_batch(&item, 1);
    hub_frame_t frame = tkw_batch_frame(&batch);
    uint8_t *valid;
    size_t valid_len;
    hub_frame_encode(&frame, &valid, &valid_len);
    free(env);
    srand(12345);
    for (int i = 0; i < 1000; i++) {
        uint8_t buf[512];
        size_t n;
        if (i % 2 == 0) {
            n = (size_t)rand() % sizeof buf;
            for (size_t k = 0; k < n; k++)
                buf[k] = (uint8_t)rand();
        } else {
            n = (size_t)rand() % valid_len;
            memcpy(buf, valid, n);
            if (n > 0 && i % 4 == 1)
                buf[rand() % n] ^= (uint8_t)(1 + rand() % 255);
        }
        zmq_send(raw.sock, buf, n, 0);
    }
    free(valid);
    /* Drain whatever answers came back. */
    hub_frame_t *f;
    while ((f = rawcli_recv(&raw, 300)) != NULL)
        hub_frame_free(&f);
    rawcli_close(&raw);
    assert_hub_serves();
}
END_TEST

START_TEST(key_removed_on_sighup_is_cut_off)
{
    adp_client_t *c = hubfix_connect(&fix, OPS);
    /* A is the last receiver the hub looks up before the reload (it
     * remembers that one until the keys are reloaded): an event, which
     * nothing answers. */
    int rc = adp_send_event(c, A, "echo/v1", "text/plain", "x", 1, 0, 5000, NULL);
    ck_assert_msg(rc == 0 || adp_last_nack_code(c) != LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER,
                  "%s", adp_last_error(c));
    adp_reply_t reply;
    hubfix_forget_member(&fix, A);
    kill(fix.hubd, SIGHUP);
    ck_assert(tk_wait_file_contains(fix.hubd_log, "key directory reloaded", 3000));
    rc = adp_request(c, A, "echo/v1", "text/plain", "x", 1, 0, 3000, &reply);
    ck_assert_int_eq(rc, HUB_ENACK);
    ck_assert_int_eq(adp_last_nack_code(c), LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER);
    adp_close(&c);
}
END_TEST

START_TEST(bad_config_is_refused_with_a_clear_error)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/bad.conf", fix.dir);
    tk_write_file(path, "listen = tcp://127.0.0.1:*\nkey_file = x\nkey_dir = keys\n"
                        "data_dir = d\nmax_payload_bytes = lots\n");
    char *argv[] = {(char *)tk_bin("hubd"), "--config", path, NULL};
    TK_RUN_SAYS(argv, 5000, 1, "bad.conf:5: max_payload_bytes must be a whole number");
    tk_write_file(path, "listen = tcp://127.0.0.1:*\nkey_file = missing.secret\nkey_dir = keys\n"
                        "data_dir = d\n");
    TK_RUN_SAYS(argv, 5000, 1, "missing.secret");
    tk_write_file(path, "listen = tcp://127.0.0.1:*\nkey_file = secrets/VN.GOV.HN-LGSP.HUB.secret\n"
                        "key_dir = keys\ndata_dir = d\nshiny = yes\n");
    TK_RUN_SAYS(argv, 5000, 1, "unknown setting 'shiny'");
    /* A world-readable secret key is refused. */
    char secret[PATH_MAX];
    hubfix_secret_path(&fix, HUBFIX_HUB_ID, secret);
    chmod(secret, 0644);
    tk_write_file(path, "listen = tcp://127.0.0.1:*\nkey_file = secrets/VN.GOV.HN-LGSP.HUB.secret\n"
                        "key_dir = keys\ndata_dir = d\n");
    TK_RUN_SAYS(argv, 5000, 1, "chmod 600");
    chmod(secret, 0600);
}
END_TEST

/* The error frame that answers what was just sent; asserts its code and
 * that its reason holds `why`. */
static void expect_error(rawcli_t *raw, int code, const char *why)
{
    hub_frame_t *err = rawcli_recv_case(raw, LTH__V1__FRAME__BODY_ERROR, 5000);
    ck_assert_msg(err != NULL, "no error frame (expected code %d)", code);
    ck_assert_int_eq(err->error->code, code);
    ck_assert_msg(strstr(err->error->reason, why), "reason: %s", err->error->reason);
    hub_frame_free(&err);
}

START_TEST(frames_before_hello_multipart_and_hub_only_bodies_are_refused)
{
    rawcli_t raw;
    rawcli_open(&raw, &fix, OPS);
    /* A batch and a settle before any Hello on this connection. */
    char id[37];
    size_t len;
    uint8_t *env = rawcli_envelope(&fix, OPS, A, "echo/v1", "x", 1, 0, id, &len);
    rawcli_send_batch1(&raw, env, len);
    expect_error(&raw, LTH__V1__NACK_CODE__NACK_HELLO_REQUIRED, "send a Hello first");
    uint64_t seq = 1;
    rawcli_settle(&raw, &seq, 1);
    expect_error(&raw, LTH__V1__NACK_CODE__NACK_HELLO_REQUIRED, "send a Hello first");
    /* After the Hello the same batch is taken. */
    rawcli_hello(&raw, OPS);
    rawcli_send_batch1(&raw, env, len);
    free(env);
    rawcli_expect_ack(&raw, id, 5000);

    /* Two ZeroMQ frames in one message (a valid Frame first). */
    uint8_t *buf = rawcli_heartbeat_bytes(&len);
    ck_assert_int_ge(zmq_send(raw.sock, buf, len, ZMQ_SNDMORE), 0);
    ck_assert_int_ge(zmq_send(raw.sock, buf, len, 0), 0);
    free(buf);
    expect_error(&raw, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME, "exactly one ZeroMQ frame");

    /* Bodies only the hub sends: Welcome, Receipts, Deliveries. */
    Lth__V1__Welcome welcome = LTH__V1__WELCOME__INIT;
    welcome.member_id = OPS;
    Lth__V1__Receipts receipts = LTH__V1__RECEIPTS__INIT;
    Lth__V1__Deliveries deliveries = LTH__V1__DELIVERIES__INIT;
    hub_frame_t hub_only[3] = {LTH__V1__FRAME__INIT, LTH__V1__FRAME__INIT, LTH__V1__FRAME__INIT};
    hub_only[0].body_case = LTH__V1__FRAME__BODY_WELCOME;
    hub_only[0].welcome = &welcome;
    hub_only[1].body_case = LTH__V1__FRAME__BODY_RECEIPTS;
    hub_only[1].receipts = &receipts;
    hub_only[2].body_case = LTH__V1__FRAME__BODY_DELIVERIES;
    hub_only[2].deliveries = &deliveries;
    for (int i = 0; i < 3; i++) {
        rawcli_send_frame(&raw, &hub_only[i]);
        expect_error(&raw, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME,
                     "clients may send only Hello, Batch, Settle and Heartbeat");
    }
    rawcli_close(&raw);
    assert_hub_serves();
}
END_TEST

/* Deliveries to a raw receiver that never settles, with the time each
 * arrived: attempt numbers and hub_seqs, for up to ms. */
typedef struct {
    int n;
    uint64_t seq[64];
    uint32_t attempt[64];
    uint64_t at_us[64];
} arrivals_t;

static void collect(rawcli_t *raw, arrivals_t *a, int ms)
{
    uint64_t until = hub_monotonic_us() + (uint64_t)ms * 1000u;
    while (hub_monotonic_us() < until) {
        rawcli_heartbeat(raw);
        hub_frame_t *f = rawcli_recv_case(raw, LTH__V1__FRAME__BODY_DELIVERIES, 20);
        for (size_t i = 0; f && i < f->deliveries->n_items && a->n < 64; i++, a->n++) {
            a->seq[a->n] = f->deliveries->items[i]->hub_seq;
            a->attempt[a->n] = f->deliveries->items[i]->attempt;
            a->at_us[a->n] = hub_monotonic_us();
        }
        hub_frame_free(&f);
    }
}

START_TEST(redelivery_backs_off_doubling)
{
    /* redelivery_ms = 500 here: attempts at about 0, 500, 1,500 and
     * 3,500 ms (waits of 500, 1,000, 2,000). */
    rawcli_t rcv, snd;
    rawcli_connect(&rcv, &fix, GHOST);
    rawcli_connect(&snd, &fix, OPS);
    char id[37];
    rawcli_send_envelope(&snd, &fix, OPS, GHOST, "note/v1", "again", 5, 0, id);
    arrivals_t a = {0};
    collect(&rcv, &a, 4200);
    ck_assert_msg(a.n >= 4, "only %d deliveries in 4.2 s", a.n);
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(a.attempt[i], (uint32_t)i + 1);
        ck_assert_uint_eq(a.seq[i], a.seq[0]);
    }
    double gap[3];
    for (int i = 0; i < 3; i++)
        gap[i] = (double)(a.at_us[i + 1] - a.at_us[i]) / 1000.0;
    printf("routing: redelivery waits %.0f, %.0f, %.0f ms (redelivery_ms = 500)\n", gap[0],
           gap[1], gap[2]);
    /* Each wait at least its period, and about twice the one before (a
     * constant period would give ratios near 1). */
    ck_assert_msg(gap[0] >= 450 && gap[1] >= 950 && gap[2] >= 1950,
                  "waits %.0f, %.0f, %.0f ms", gap[0], gap[1], gap[2]);
    ck_assert_msg(gap[1] / gap[0] > 1.4 && gap[1] / gap[0] < 2.5, "wait 2 is %.2f times wait 1",
                  gap[1] / gap[0]);
    ck_assert_msg(gap[2] / gap[1] > 1.6 && gap[2] / gap[1] < 2.5, "wait 3 is %.2f times wait 2",
                  gap[2] / gap[1]);
    rawcli_close(&snd);
    rawcli_close(&rcv);
}
END_TEST

START_TEST(max_in_flight_bounds_unsettled_deliveries)
{
    /* max_in_flight = 4 here: 10 events for a receiver that does not
     * settle; it gets 4, then one more for each it settles. */
    rawcli_t rcv, snd;
    rawcli_connect(&rcv, &fix, GHOST);
    rawcli_connect(&snd, &fix, OPS);
    for (int i = 0; i < 10; i++) {
        char id[37], payload[16];
        int plen = snprintf(payload, sizeof payload, "f %d", i);
        rawcli_send_envelope(&snd, &fix, OPS, GHOST, "note/v1", payload, (size_t)plen, 0, id);
    }
    int acked = 0;
    for (int w = 0; w < 50 && acked < 10; w++) {
        hub_frame_t *f = rawcli_recv_case(&snd, LTH__V1__FRAME__BODY_RECEIPTS, 100);
        acked += f ? (int)f->receipts->n_acks : 0;
        hub_frame_free(&f);
    }
    ck_assert_int_eq(acked, 10);
    arrivals_t a = {0};
    collect(&rcv, &a, 400); /* less than the redelivery period (1,000 ms) */
    ck_assert_int_eq(a.n, 4);
    /* Settling two lets exactly two more come. */
    uint64_t done[2] = {a.seq[0], a.seq[1]};
    rawcli_settle(&rcv, done, 2);
    arrivals_t b = {0};
    collect(&rcv, &b, 400);
    ck_assert_int_eq(b.n, 2);
    for (int i = 0; i < b.n; i++) {
        ck_assert_uint_eq(b.attempt[i], 1);
        ck_assert_uint_gt(b.seq[i], a.seq[3]);
    }
    rawcli_close(&snd);
    rawcli_close(&rcv);
}
END_TEST

TK_MAIN("e2e_routing",
        TK_CASE("routing", setup, teardown, 120, request_and_reply_between_adapters,
                ping_command_reports_round_trip, unknown_key_is_refused_and_gets_no_traffic,
                spoofed_sender_is_refused, each_nack_reason,
                frames_before_hello_multipart_and_hub_only_bodies_are_refused,
                forged_reply_is_refused, online_only_acks_ride_in_deliveries_when_asked,
                batch_signed_envelopes_are_checked_one_by_one, survives_random_and_truncated_frames,
                key_removed_on_sighup_is_cut_off, bad_config_is_refused_with_a_clear_error),
        TK_CASE("redelivery", setup_redelivering, teardown, 120,
                early_delivery_then_resend_is_not_delivered_again, redelivery_backs_off_doubling),
        TK_CASE("in_flight", setup_small_window, teardown, 60,
                max_in_flight_bounds_unsettled_deliveries))
