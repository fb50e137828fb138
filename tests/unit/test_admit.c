/* Admission and group commit driven without a connection: a real server
 * (its store on disk, real keys made here) on a loop this thread runs, and
 * envelopes handed straight to admit__route_envelope() as a member's Batch
 * would hand them. No client socket: each admission check is seen as the
 * NACK code and sentence it leaves in the receipts, and the commit as what
 * the store holds and what the hub counts as ACKed after it. */
#include "hub_config.h"
#include "hub_core_internal.h"
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_server.h"
#include "hub_sign.h"
#include "hub_wire.h"
#include "testkit.h"
#include "tkwire.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUB_ID "VN/GOV/HN-LGSP/HUB"
#define SENDER_ID "VN/GOV/HN-STP/HOTICH"
#define RECEIVER_ID "VN/GOV/BCA/CSDLQGDC"
#define SERVICE "citizen.lookup/v1"

static char dir[PATH_MAX];
static uv_loop_t loop;
static hub_server_t *server;
static hub_keypair_t sender_kp, receiver_kp; /* secret halves kept to sign with */
static core__member_t *sender;
static core__receipts_t receipts;

/* Makes id's keys; the hub's secret file, or a member's .pub in keys/. */
static void keygen(const char *id, bool member, hub_keypair_t *keep)
{
    hub_keypair_t kp;
    char err[HUB_ERRMSG_MAX], where[PATH_MAX + 16];
    ck_assert_int_eq(hub_keypair_generate(id, &kp), 0);
    snprintf(where, sizeof where, "%s/%s", dir, member ? "tmp" : "secrets");
    ck_assert_msg(hub_keypair_write(&kp, where, NULL, NULL, err, sizeof err) == 0, "%s", err);
    if (member) {
        char slug[256], from[PATH_MAX + 300], to[PATH_MAX + 300];
        hub_member_id_to_slug(id, slug, sizeof slug);
        snprintf(from, sizeof from, "%s/tmp/%s.pub", dir, slug);
        snprintf(to, sizeof to, "%s/keys/%s.pub", dir, slug);
        ck_assert_int_eq(rename(from, to), 0);
    }
    if (keep)
        *keep = kp;
    else
        hub_keypair_wipe(&kp);
}

static void setup(void)
{
    tk_tmpdir(dir);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/keys", dir);
    mkdir(path, 0755);
    keygen(HUB_ID, false, NULL);
    keygen(SENDER_ID, true, &sender_kp);
    keygen(RECEIVER_ID, true, &receiver_kp);
    hub_config_t cfg;
    hub_config_defaults(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "tcp://127.0.0.1:*"); /* bound; nobody connects */
    snprintf(cfg.key_file, sizeof cfg.key_file, "%s/secrets/VN.GOV.HN-LGSP.HUB.secret", dir);
    snprintf(cfg.key_dir, sizeof cfg.key_dir, "%s/keys", dir);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", dir);
    char err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_msg(hub_server_new(&loop, &cfg, &server, err, sizeof err) == 0, "%s", err);
    sender = members__member(server, SENDER_ID);
    ck_assert_ptr_nonnull(sender);
    ck_assert_int_eq(send__receipts_init(&receipts, 4), 0);
    receipts.sender = sender->id;
}

static void teardown(void)
{
    send__receipts_free(&receipts);
    hub_server_stop(server);
    hub_server_run(server); /* closes the handles */
    hub_server_destroy(&server);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    hub_keypair_wipe(&sender_kp);
    hub_keypair_wipe(&receiver_kp);
    tk_rmrf(dir);
}

/* env with a JSON payload, signed with sign_secret unless NULL, packed
 * (malloc'ed). */
static uint8_t *envelope_pack(Lth__V1__Envelope env, const uint8_t *sign_secret, size_t *len)
{
    env.content_type = "application/json";
    static uint8_t payload[] = "{\"so_dinh_danh\":\"001099012345\"}";
    env.payload.data = payload;
    env.payload.len = sizeof payload - 1;
    uint8_t sig[HUB_SIGNATURE_LEN];
    if (sign_secret)
        ck_assert_int_eq(hub_envelope_sign(&env, sign_secret, sig), 0);
    *len = lth__v1__envelope__get_packed_size(&env);
    uint8_t *bytes = malloc(*len);
    ck_assert_ptr_nonnull(bytes);
    lth__v1__envelope__pack(&env, bytes);
    return bytes;
}

/* An encoded envelope from `from` to `to`, signed with sign_secret unless
 * that is NULL. Returns its bytes (malloc'ed) and their length. */
static uint8_t *envelope(const char *from, const char *to, Lth__V1__Delivery delivery,
                         const uint8_t *sign_secret, char id[HUB_UUID_LEN + 1], size_t *len)
{
    Lth__V1__Envelope env = tkw_envelope(id, from, to, SERVICE);
    env.kind = LTH__V1__KIND__KIND_EVENT;
    env.delivery = delivery;
    return envelope_pack(env, sign_secret, len);
}

/* Routes bytes as one envelope of member m's Batch. */
static void route_from(core__member_t *m, const uint8_t *bytes, size_t len)
{
    /* As a Batch frame's item: in the server's arena, where an online-only
     * delivery may borrow them until the end of the loop turn. */
    uint8_t *item = hub_arena_alloc(&server->turn_arena, len);
    ck_assert_ptr_nonnull(item);
    memcpy(item, bytes, len);
    receipts.sender = m->id;
    receipts.item = 1;
    admit__route_envelope(server, m, item, len, &receipts);
    receipts.item = 0;
    receipts.sender = sender->id;
}

/* Routes bytes as one envelope of sender's Batch. */
static void route(const uint8_t *bytes, size_t len)
{
    route_from(sender, bytes, len);
}

/* Makes an envelope as envelope() does and routes it; its id into id. */
static void route_new(const char *from, const char *to, Lth__V1__Delivery delivery,
                      const uint8_t *sign_secret, char id[HUB_UUID_LEN + 1])
{
    size_t len;
    uint8_t *bytes = envelope(from, to, delivery, sign_secret, id, &len);
    route(bytes, len);
    free(bytes);
}

/* The one NACK the receipts hold has code and its sentence holds `says`. */
static void assert_nack(int code, const char *says)
{
    ck_assert_uint_eq(receipts.n_acks, 0);
    ck_assert_uint_eq(receipts.n_nacks, 1);
    ck_assert_int_eq(receipts.nacks[0].code, code);
    ck_assert_msg(strstr(receipts.reasons[0], says), "the sentence \"%s\" does not say \"%s\"",
                  receipts.reasons[0], says);
    ck_assert_uint_eq(server->pending_n, 0); /* nothing waits for the store */
}

static void on_queue(const char *receiver, uint64_t depth, uint64_t oldest, void *user)
{
    (void)oldest;
    if (!strcmp(receiver, RECEIVER_ID))
        *(uint64_t *)user = depth;
}

/* What the store holds for the receiver. */
static uint64_t stored(void)
{
    uint64_t depth = 0;
    ck_assert_int_eq(hub_store_queues(server->store, on_queue, &depth), 0);
    return depth;
}

/* Starts the group commit and runs the loop until it has returned. */
static void commit(void)
{
    commit__start(server);
    ck_assert_ptr_nonnull(server->commit);
    while (server->commit)
        uv_run(&loop, UV_RUN_ONCE);
}

static uint64_t accepted(void)
{
    hub_server_stats_t st;
    hub_server_get_stats(server, &st);
    return st.envelopes_accepted;
}

START_TEST(test_not_an_envelope)
{
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};
    route(junk, sizeof junk);
    assert_nack(LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE, "not an encoded lth.v1.Envelope");
}
END_TEST

START_TEST(test_sender_must_be_the_connection)
{
    char id[HUB_UUID_LEN + 1];
    route_new(RECEIVER_ID, SENDER_ID, LTH__V1__DELIVERY__DELIVERY_QUEUED, sender_kp.sign_secret,
              id);
    assert_nack(LTH__V1__NACK_CODE__NACK_SENDER_MISMATCH, "authenticated as " SENDER_ID);
    ck_assert_str_eq(receipts.nacks[0].message_id, id);
}
END_TEST

START_TEST(test_unknown_receiver)
{
    char id[HUB_UUID_LEN + 1];
    route_new(SENDER_ID, "VN/GOV/XX/NOBODY", LTH__V1__DELIVERY__DELIVERY_QUEUED,
              sender_kp.sign_secret, id);
    assert_nack(LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER, "no member VN/GOV/XX/NOBODY");
}
END_TEST

START_TEST(test_online_only_to_an_offline_receiver)
{
    char id[HUB_UUID_LEN + 1];
    route_new(SENDER_ID, RECEIVER_ID, LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY,
              sender_kp.sign_secret, id);
    assert_nack(LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE, "send with queued delivery");
}
END_TEST

START_TEST(test_unsigned_is_refused_before_the_store)
{
    char id[HUB_UUID_LEN + 1];
    route_new(SENDER_ID, RECEIVER_ID, LTH__V1__DELIVERY__DELIVERY_QUEUED, NULL, id);
    assert_nack(LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "the envelope is not signed");
    ck_assert_uint_eq(stored(), 0);
}
END_TEST

START_TEST(test_rate_check)
{
    server->cfg.rate_msgs = 2;
    server->limits_gen++; /* as a reload does: the member's limits are read again */
    char why[HUB__WHY_MAX];
    ck_assert_int_eq(admit__rate_check(server, sender, 100, why), 0);
    ck_assert_int_eq(admit__rate_check(server, sender, 100, why), 0);
    ck_assert_int_eq(admit__rate_check(server, sender, 100, why),
                     LTH__V1__NACK_CODE__NACK_RATE_LIMITED);
    ck_assert_msg(strstr(why, SENDER_ID " may send 2 envelopes a second"), "%s", why);
    ck_assert_msg(strstr(why, "rate_msgs"), "%s", why);
}
END_TEST

/* A queued envelope leaves admission as a pending push: no ACK, nothing
 * stored; after the commit returns it is in the store and counted ACKed. */
START_TEST(test_queued_is_acked_only_after_the_commit)
{
    char id[HUB_UUID_LEN + 1];
    route_new(SENDER_ID, RECEIVER_ID, LTH__V1__DELIVERY__DELIVERY_QUEUED, sender_kp.sign_secret,
              id);
    ck_assert_uint_eq(receipts.n_acks, 0);
    ck_assert_uint_eq(receipts.n_nacks, 0);
    ck_assert_uint_eq(server->pending_n, 1);
    ck_assert_str_eq(server->pending[0].msg.message_id, id);
    ck_assert_uint_eq(stored(), 0);
    ck_assert_uint_eq(accepted(), 0);
    commit();
    ck_assert_uint_eq(server->pending_n, 0);
    ck_assert_uint_eq(stored(), 1);
    ck_assert_uint_eq(accepted(), 1);
}
END_TEST

/* A single signature is checked on the commit worker: one that does not
 * match the sender's key is never stored nor ACKed. */
START_TEST(test_bad_signature_is_not_committed)
{
    hub_keypair_t other;
    ck_assert_int_eq(hub_keypair_generate(SENDER_ID, &other), 0);
    char id[HUB_UUID_LEN + 1];
    route_new(SENDER_ID, RECEIVER_ID, LTH__V1__DELIVERY__DELIVERY_QUEUED, other.sign_secret, id);
    hub_keypair_wipe(&other);
    ck_assert_uint_eq(receipts.n_nacks, 0);
    ck_assert_uint_eq(server->pending_n, 1);
    commit();
    ck_assert_uint_eq(server->pending_n, 0);
    ck_assert_uint_eq(stored(), 0);
    ck_assert_uint_eq(accepted(), 0);
    hub_server_stats_t st;
    hub_server_get_stats(server, &st);
    ck_assert_uint_eq(st.nacks_by_code[LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE], 1);
}
END_TEST

/* Each durable envelope counts against its sender's share of those waiting
 * for the store from admission until its commit answers it, stored or
 * refused (the rule at HUB__MAX_PENDING). */
START_TEST(test_store_share_counts_until_the_commit_answers)
{
    char id[HUB_UUID_LEN + 1];
    route_new(SENDER_ID, RECEIVER_ID, LTH__V1__DELIVERY__DELIVERY_QUEUED, sender_kp.sign_secret,
              id);
    ck_assert_uint_eq(server->pending_n, 1);
    ck_assert_ptr_eq(server->pending[0].payer, sender);
    ck_assert_uint_eq(sender->store_waiting, 1);
    commit();
    ck_assert_uint_eq(stored(), 1);
    ck_assert_uint_eq(sender->store_waiting, 0);
    /* Refused by the commit (a signature that does not verify): off the
     * share too. */
    hub_keypair_t other;
    ck_assert_int_eq(hub_keypair_generate(SENDER_ID, &other), 0);
    route_new(SENDER_ID, RECEIVER_ID, LTH__V1__DELIVERY__DELIVERY_QUEUED, other.sign_secret, id);
    hub_keypair_wipe(&other);
    ck_assert_uint_eq(sender->store_waiting, 1);
    commit();
    ck_assert_uint_eq(stored(), 1);
    ck_assert_uint_eq(sender->store_waiting, 0);
}
END_TEST

/* While the queue is at most half full everyone is admitted; past half a
 * member holding its share is refused with its own count, whatever the
 * others hold; past the hub-wide cap only a member holding little is
 * admitted, into the reserve, up to the hard cap. The queue's length is
 * faked (nothing is in the array; admission refuses before adding). */
START_TEST(test_store_share_rule)
{
    char id[HUB_UUID_LEN + 1];
    core__member_t *other = members__member(server, RECEIVER_ID);
    ck_assert_ptr_nonnull(other);
    other->store_waiting = HUB__MEMBER_PENDING_MAX;
    server->pending_n = HUB__MAX_PENDING / 2 - 1;
    ck_assert_int_eq(core__store_room(server, other, 1), CORE__ROOM);
    server->pending_n = HUB__MAX_PENDING / 2;
    ck_assert_int_eq(core__store_room(server, other, 1), CORE__ROOM_MEMBER_FULL);
    other->store_waiting = 0;
    sender->store_waiting = HUB__MEMBER_PENDING_MAX;
    route_new(SENDER_ID, RECEIVER_ID, LTH__V1__DELIVERY__DELIVERY_QUEUED, sender_kp.sign_secret,
              id);
    server->pending_n = 0;
    assert_nack(LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                "you have 16384 envelopes waiting to be written to the hub's store (the limit "
                "per member is 16384); nothing was stored: wait for the ACKs");
    send__receipts_free(&receipts);
    ck_assert_int_eq(send__receipts_init(&receipts, 4), 0);
    sender->store_waiting = 0;

    server->pending_n = HUB__MAX_PENDING / 2;
    ck_assert_int_eq(core__store_room(server, other, 1), CORE__ROOM);
    other->store_waiting = HUB__MEMBER_PENDING_MAX - 1;
    ck_assert_int_eq(core__store_room(server, other, 1), CORE__ROOM);
    ck_assert_int_eq(core__store_room(server, other, 2), CORE__ROOM_MEMBER_FULL);
    /* The others hold the hub-wide cap (faked: nothing is in the array). */
    server->pending_n = HUB__MAX_PENDING;
    ck_assert_int_eq(core__store_room(server, other, 1), CORE__ROOM_HUB_FULL);
    other->store_waiting = HUB__PENDING_SMALL - 2;
    ck_assert_int_eq(core__store_room(server, other, 1), CORE__ROOM);
    ck_assert_int_eq(core__store_room(server, other, 2), CORE__ROOM_HUB_FULL);
    server->pending_n = HUB__MAX_PENDING + HUB__PENDING_RESERVE - 1;
    ck_assert_int_eq(core__store_room(server, other, 1), CORE__ROOM);
    server->pending_n = HUB__MAX_PENDING + HUB__PENDING_RESERVE;
    other->store_waiting = 0;
    ck_assert_int_eq(core__store_room(server, other, 1), CORE__ROOM_HUB_FULL);
    /* Admission says so with the hub-wide sentence. */
    sender->store_waiting = HUB__PENDING_SMALL;
    server->pending_n = HUB__MAX_PENDING;
    route_new(SENDER_ID, RECEIVER_ID, LTH__V1__DELIVERY__DELIVERY_QUEUED, sender_kp.sign_secret,
              id);
    server->pending_n = 0;
    sender->store_waiting = 0;
    assert_nack(LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                "the hub's store is behind (65536 envelopes waiting to be written)");
}
END_TEST

/* hub_envelope_view() reads what protobuf-c reads, or gives up (and the
 * hub then decodes with protobuf-c): compared field by field over plain,
 * batch-signed and odd envelopes and thousands of mutations of them. */
static void same_envelope(const hub_envelope_t *a, const hub_envelope_t *b)
{
    ck_assert_str_eq(a->message_id, b->message_id);
    ck_assert_str_eq(a->correlation_id, b->correlation_id);
    ck_assert_str_eq(a->sender, b->sender);
    ck_assert_str_eq(a->receiver, b->receiver);
    ck_assert_str_eq(a->service, b->service);
    ck_assert_str_eq(a->content_type, b->content_type);
    ck_assert_uint_eq(a->created_at_us, b->created_at_us);
    ck_assert_uint_eq(a->ttl_ms, b->ttl_ms);
    ck_assert_int_eq(a->kind, b->kind);
    ck_assert_int_eq(a->delivery, b->delivery);
    ck_assert_uint_eq(a->base.n_unknown_fields, b->base.n_unknown_fields);
    const ProtobufCBinaryData *x[] = {&a->payload, &a->signature};
    const ProtobufCBinaryData *y[] = {&b->payload, &b->signature};
    for (int i = 0; i < 2; i++) {
        ck_assert_uint_eq(x[i]->len, y[i]->len);
        ck_assert(!x[i]->len || !memcmp(x[i]->data, y[i]->data, x[i]->len));
        ck_assert(x[i]->len || (!x[i]->data && !y[i]->data));
    }
    ck_assert(!a->batch_proof == !b->batch_proof);
    if (a->batch_proof) {
        uint8_t pa[4096], pb[4096];
        size_t na = lth__v1__batch_proof__get_packed_size(a->batch_proof);
        size_t nb = lth__v1__batch_proof__get_packed_size(b->batch_proof);
        ck_assert(na == nb && na <= sizeof pa);
        lth__v1__batch_proof__pack(a->batch_proof, pa);
        lth__v1__batch_proof__pack(b->batch_proof, pb);
        ck_assert(!memcmp(pa, pb, na));
    }
}

/* Decodes bytes both ways; true when the view read them. */
static bool view_matches(hub_arena_t *arena, const uint8_t *bytes, size_t len)
{
    hub_arena_reset(arena);
    hub_envelope_t *view = hub_envelope_view(arena, bytes, len);
    hub_envelope_t *ref = NULL;
    int rc = hub_envelope_decode(bytes, len, &ref);
    if (view) {
        ck_assert_msg(rc == 0, "the view read %zu bytes protobuf-c refuses", len);
        same_envelope(view, ref);
        /* Admission skips that check for what the view read (but a batch
         * proof): it must pass. */
        if (!view->batch_proof)
            ck_assert_int_eq(hub_envelope_check_encoding(bytes, len, NULL, 0), 0);
    }
    hub_envelope_free(&ref);
    return view != NULL;
}

START_TEST(test_envelope_view_reads_what_protobuf_c_reads)
{
    hub_arena_t arena;
    hub_arena_init(&arena);
    uint8_t *samples[4];
    size_t lens[4];
    char id[HUB_UUID_LEN + 1];
    /* Signed, as SDKs send them. */
    samples[0] = envelope(SENDER_ID, RECEIVER_ID, LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY,
                          sender_kp.sign_secret, id, &lens[0]);
    /* Unsigned, a reply with every scalar set. */
    Lth__V1__Envelope env = tkw_envelope(id, RECEIVER_ID, SENDER_ID, SERVICE);
    char corr[HUB_UUID_LEN + 1];
    hub_uuid_new(corr);
    env.correlation_id = corr;
    env.kind = LTH__V1__KIND__KIND_REPLY;
    env.delivery = LTH__V1__DELIVERY__DELIVERY_QUEUED;
    env.ttl_ms = 4000000000u;
    env.created_at_us = 1764720000000000ull;
    env.content_type = "application/x-protobuf; lth-procedure=\"1.000001\"";
    uint8_t payload[1024];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7);
    env.payload.data = payload;
    env.payload.len = sizeof payload;
    lens[1] = lth__v1__envelope__get_packed_size(&env);
    samples[1] = malloc(lens[1]);
    lth__v1__envelope__pack(&env, samples[1]);
    /* With a batch proof. */
    Lth__V1__BatchProof proof = LTH__V1__BATCH_PROOF__INIT;
    uint8_t node[2][32];
    memset(node, 0xab, sizeof node);
    ProtobufCBinaryData path[2] = {{32, node[0]}, {32, node[1]}};
    proof.leaf_index = 3;
    proof.leaf_count = 4;
    proof.path = path;
    proof.n_path = 2;
    env.batch_proof = &proof;
    env.signature.data = payload;
    env.signature.len = 64;
    lens[2] = lth__v1__envelope__get_packed_size(&env);
    samples[2] = malloc(lens[2]);
    lth__v1__envelope__pack(&env, samples[2]);
    /* Empty: every field absent. */
    Lth__V1__Envelope empty = LTH__V1__ENVELOPE__INIT;
    lens[3] = lth__v1__envelope__get_packed_size(&empty);
    samples[3] = malloc(lens[3] ? lens[3] : 1);
    lth__v1__envelope__pack(&empty, samples[3]);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(view_matches(&arena, samples[i], lens[i]), "sample %d not read in place", i);
    view_matches(&arena, samples[3], lens[3]);
    /* Mutations: bytes changed, cut short, a field repeated or appended. */
    uint64_t rnd = 0x9e3779b97f4a7c15ull;
    uint8_t buf[4096];
    for (int round = 0; round < 20000; round++) {
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        int which = (int)(rnd % 4);
        size_t len = lens[which];
        memcpy(buf, samples[which], len);
        switch ((rnd >> 8) % 4) {
        case 0: /* a few bytes changed */
            for (int k = 0; k < 1 + (int)((rnd >> 16) % 3) && len; k++)
                buf[(rnd >> (20 + 8 * k)) % len] = (uint8_t)(rnd >> (12 + k));
            break;
        case 1: /* cut short */ len = len ? (size_t)((rnd >> 16) % len) : 0; break;
        case 2: { /* a field of another sample appended (may repeat one) */
            size_t extra = (size_t)((rnd >> 16) % 48);
            const uint8_t *from = samples[(rnd >> 24) % 3];
            memcpy(buf + len, from + (rnd >> 32) % 16, extra);
            len += extra;
            break;
        }
        default: { /* a key of any field number and wire type, then a value */
            uint8_t key = (uint8_t)(rnd >> 16) & 0x7f;
            buf[len++] = key;
            buf[len++] = (uint8_t)((rnd >> 24) % 5);
            for (int k = 0; k < 4; k++)
                buf[len++] = (uint8_t)(rnd >> (32 + 8 * k));
            break;
        }
        }
        view_matches(&arena, buf, len);
    }
    for (int i = 0; i < 4; i++)
        free(samples[i]);
    hub_arena_destroy(&arena);
}
END_TEST

/* The Deliveries frames the hub encodes by hand (send__deliveries_pack)
 * are the bytes protobuf-c packs for the same frame. */
START_TEST(test_deliveries_packed_as_protobuf_c_packs)
{
    static uint8_t envs[3][20000];
    for (size_t i = 0; i < sizeof envs; i++)
        ((uint8_t *)envs)[i] = (uint8_t)(i * 31);
    core__outitem_t items[5];
    memset(items, 0, sizeof items);
    size_t lens[] = {1100, 100, 0, 20000, 127};
    uint64_t seqs[] = {0, 1, 300, 1ull << 40, 127};
    for (int i = 0; i < 5; i++) {
        items[i].seq = seqs[i];
        items[i].attempt = (uint32_t)(i == 2 ? 0 : i * 70 + 1);
        items[i].bytes = envs[i % 3];
        items[i].len = lens[i];
        items[i].has_sign_key = i % 2 == 0;
        memset(items[i].sign_key, 0x40 + i, sizeof items[i].sign_key);
    }
    Lth__V1__Ack acks[3], *ack_ptrs[3];
    char ack_ids[3][HUB_UUID_LEN + 1];
    for (int i = 0; i < 3; i++) {
        lth__v1__ack__init(&acks[i]);
        hub_uuid_new(ack_ids[i]);
        acks[i].message_id = ack_ids[i];
        acks[i].hub_seq = (uint64_t)i * 1000;
        ack_ptrs[i] = &acks[i];
    }
    Lth__V1__Receipts rec = LTH__V1__RECEIPTS__INIT;
    rec.acks = ack_ptrs;
    rec.n_acks = 3;
    for (size_t n = 0; n <= 5; n++) {
        for (int with_rec = 0; with_rec < 2; with_rec++) {
            Lth__V1__DeliveredEnvelope d[5], *dp[5];
            for (size_t i = 0; i < n; i++) {
                lth__v1__delivered_envelope__init(&d[i]);
                d[i].hub_seq = items[i].seq;
                d[i].attempt = items[i].attempt;
                d[i].envelope.data = items[i].len ? (uint8_t *)items[i].bytes : NULL;
                d[i].envelope.len = items[i].len;
                if (items[i].has_sign_key) {
                    d[i].sender_sign_key.data = items[i].sign_key;
                    d[i].sender_sign_key.len = sizeof items[i].sign_key;
                }
                dp[i] = &d[i];
            }
            Lth__V1__Deliveries dl = LTH__V1__DELIVERIES__INIT;
            dl.items = dp;
            dl.n_items = n;
            dl.receipts = with_rec ? &rec : NULL;
            hub_frame_t frame = LTH__V1__FRAME__INIT;
            frame.protocol_version = HUB_PROTOCOL_VERSION;
            frame.body_case = LTH__V1__FRAME__BODY_DELIVERIES;
            frame.deliveries = &dl;
            size_t want_len = lth__v1__frame__get_packed_size(&frame);
            uint8_t *want = malloc(want_len);
            ck_assert_ptr_nonnull(want);
            lth__v1__frame__pack(&frame, want);
            zmq_msg_t msg;
            ck_assert_int_eq(send__deliveries_pack(items, n, with_rec ? &rec : NULL, &msg), 0);
            ck_assert_uint_eq(zmq_msg_size(&msg), want_len);
            ck_assert_msg(!memcmp(zmq_msg_data(&msg), want, want_len),
                          "%zu items%s: not the bytes protobuf-c packs", n,
                          with_rec ? " and receipts" : "");
            zmq_msg_close(&msg);
            free(want);
        }
    }
}
END_TEST

/* A queued request or reply from `from` (a member of this hub, signing with
 * sign_secret), routed as its own Batch's item: a new one when id is "" (its
 * id into id), else a re-send with that id. */
static void route_kind(const char *from, const char *to, Lth__V1__Kind kind, const char *corr,
                       uint64_t ttl_ms, const uint8_t *sign_secret, char id[HUB_UUID_LEN + 1])
{
    char fresh[HUB_UUID_LEN + 1];
    Lth__V1__Envelope env = tkw_envelope(fresh, from, to, SERVICE);
    if (id[0] == '\0')
        memcpy(id, fresh, sizeof fresh);
    env.message_id = id; /* as given: a re-send */
    env.kind = kind;
    env.delivery = LTH__V1__DELIVERY__DELIVERY_QUEUED;
    env.correlation_id = (char *)(corr ? corr : "");
    env.ttl_ms = ttl_ms;
    size_t len;
    uint8_t *bytes = envelope_pack(env, sign_secret, &len);
    core__member_t *m = members__member(server, from);
    ck_assert_ptr_nonnull(m);
    route_from(m, bytes, len);
    free(bytes);
}

static void receipts_clear(void)
{
    send__receipts_free(&receipts);
    ck_assert_int_eq(send__receipts_init(&receipts, 4), 0);
    receipts.sender = sender->id;
}

/* A reply from the receiver to `corr` (id as route_kind() takes it): it
 * passes admission and is committed, or is refused saying `refusal`. */
static void reply_is(const char *corr, char id[HUB_UUID_LEN + 1], const char *refusal)
{
    route_kind(RECEIVER_ID, SENDER_ID, LTH__V1__KIND__KIND_REPLY, corr, 0, receiver_kp.sign_secret,
               id);
    if (refusal) {
        assert_nack(LTH__V1__NACK_CODE__NACK_FORBIDDEN, refusal);
        receipts_clear();
        return;
    }
    ck_assert_uint_eq(receipts.n_nacks, 0);
    ck_assert_uint_eq(server->pending_n, 1);
    commit();
}

/* The reply rule over time: an answered request is remembered for the
 * grace (35 s: a re-send of its reply passes, any other reply is
 * refused), then forgotten; an open request is forgotten at its TTL; the
 * answered ones do not keep the open ones' expiry from running. */
START_TEST(test_answered_requests_are_kept_for_the_grace_then_forgotten)
{
    char req[HUB_UUID_LEN + 1] = "", reply[HUB_UUID_LEN + 1] = "", brief[HUB_UUID_LEN + 1] = "";
    char other[HUB_UUID_LEN + 1] = "", other2[HUB_UUID_LEN + 1] = "";
    route_kind(SENDER_ID, RECEIVER_ID, LTH__V1__KIND__KIND_REQUEST, NULL, 0,
               sender_kp.sign_secret, req);
    route_kind(SENDER_ID, RECEIVER_ID, LTH__V1__KIND__KIND_REQUEST, NULL, 2000,
               sender_kp.sign_secret, brief);
    ck_assert_uint_eq(receipts.n_nacks, 0);
    commit();
    ck_assert_uint_eq(admit__requests_size(server->requests), 2);
    uint64_t t0 = hub_monotonic_us();
    reply_is(req, reply, NULL);
    /* Past the brief request's TTL: it goes, the answered one stays. */
    admit__expire_requests(server, t0 + 3000000u);
    ck_assert_uint_eq(admit__requests_size(server->requests), 1);
    reply_is(brief, other, "unknown, expired");
    /* Within the grace: another reply is refused, a re-send of the reply
     * passes. */
    admit__expire_requests(server, t0 + 30000000u);
    ck_assert_uint_eq(admit__requests_size(server->requests), 1);
    reply_is(req, other2, "already answered by reply");
    reply_is(req, reply, NULL);
    /* After the grace: forgotten, and the re-send is refused. */
    admit__expire_requests(server, hub_monotonic_us() + 36000000u);
    ck_assert_uint_eq(admit__requests_size(server->requests), 0);
    reply_is(req, reply, "unknown, expired");
}
END_TEST

/* Many answered requests leave in the order answered, each at its own
 * grace. */
START_TEST(test_answered_requests_leave_in_order)
{
    enum { N = 300 };
    static char reqs[N][HUB_UUID_LEN + 1];
    char reply[HUB_UUID_LEN + 1];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < N; i++)
        route_kind(SENDER_ID, RECEIVER_ID, LTH__V1__KIND__KIND_REQUEST, NULL, 0,
                   sender_kp.sign_secret, reqs[i]);
    commit();
    uint64_t first = 0, half = 0;
    for (int i = 0; i < N; i++) {
        if (i == 0)
            first = hub_monotonic_us();
        if (i == N / 2) {
            commit();
            usleep(20000); /* the second half answered 20 ms later */
            half = hub_monotonic_us();
        }
        reply[0] = '\0';
        route_kind(RECEIVER_ID, SENDER_ID, LTH__V1__KIND__KIND_REPLY, reqs[i], 0,
                   receiver_kp.sign_secret, reply);
    }
    ck_assert_uint_eq(receipts.n_nacks, 0);
    commit();
    ck_assert_uint_eq(admit__requests_size(server->requests), N);
    /* Between the two halves' graces: only the first half is gone. */
    admit__expire_requests(server, half + 35000000u - 10000u);
    ck_assert_uint_ge(half + 35000000u - 10000u, first + 35000000u);
    ck_assert_uint_eq(admit__requests_size(server->requests), N - N / 2);
    admit__expire_requests(server, hub_monotonic_us() + 36000000u);
    ck_assert_uint_eq(admit__requests_size(server->requests), 0);
}
END_TEST

/* A reply from anyone but the request's receiver, or to anyone but its
 * sender, is refused, naming both; a refusal for a second reply names the
 * reply that was accepted, as it was sent. */
START_TEST(test_reply_only_from_the_receiver_to_the_sender)
{
    char req[HUB_UUID_LEN + 1] = "", reply[HUB_UUID_LEN + 1] = "", other[HUB_UUID_LEN + 1] = "";
    route_kind(SENDER_ID, RECEIVER_ID, LTH__V1__KIND__KIND_REQUEST, NULL, 0,
               sender_kp.sign_secret, req);
    ck_assert_uint_eq(receipts.n_nacks, 0);
    commit();
    route_kind(SENDER_ID, RECEIVER_ID, LTH__V1__KIND__KIND_REPLY, req, 0, sender_kp.sign_secret,
               other);
    char says[1024];
    snprintf(says, sizeof says,
             "request %s went from %s to %s; only %s may answer it, and only to %s", req,
             SENDER_ID, RECEIVER_ID, RECEIVER_ID, SENDER_ID);
    assert_nack(LTH__V1__NACK_CODE__NACK_FORBIDDEN, says);
    receipts_clear();
    reply_is(req, reply, NULL);
    other[0] = '\0';
    snprintf(says, sizeof says, "request %s was already answered by reply %s", req, reply);
    reply_is(req, other, says);
    reply_is(req, reply, NULL); /* a re-send */
}
END_TEST

/* An answered request's id used again by another member is a new request
 * (the answered one is forgotten at once, though it stays in the ring of
 * answered ones until its turn); the counts stay right. */
START_TEST(test_answered_id_used_again_by_another_member)
{
    char req[HUB_UUID_LEN + 1] = "", reply[HUB_UUID_LEN + 1] = "", back[HUB_UUID_LEN + 1] = "";
    char later[HUB_UUID_LEN + 1] = "", later_reply[HUB_UUID_LEN + 1] = "";
    route_kind(SENDER_ID, RECEIVER_ID, LTH__V1__KIND__KIND_REQUEST, NULL, 0,
               sender_kp.sign_secret, req);
    commit();
    reply_is(req, reply, NULL);
    route_kind(SENDER_ID, RECEIVER_ID, LTH__V1__KIND__KIND_REQUEST, NULL, 0,
               sender_kp.sign_secret, later);
    commit();
    reply_is(later, later_reply, NULL);
    ck_assert_uint_eq(admit__requests_size(server->requests), 2);
    /* The receiver asks the sender under the answered request's id. */
    core__member_t *rm = members__member(server, RECEIVER_ID);
    route_kind(RECEIVER_ID, SENDER_ID, LTH__V1__KIND__KIND_REQUEST, NULL, 0,
               receiver_kp.sign_secret, req);
    ck_assert_uint_eq(receipts.n_nacks, 0);
    commit();
    ck_assert_uint_eq(admit__requests_size(server->requests), 2);
    ck_assert_uint_eq(rm->open_requests, 1);
    ck_assert_uint_eq(sender->open_requests, 0);
    /* The old reply is now from the wrong member. */
    reply_is(req, reply, "only " SENDER_ID " may answer it");
    /* The sender answers the new request. */
    route_kind(SENDER_ID, RECEIVER_ID, LTH__V1__KIND__KIND_REPLY, req, 0, sender_kp.sign_secret,
               back);
    ck_assert_uint_eq(receipts.n_nacks, 0);
    commit();
    ck_assert_uint_eq(rm->open_requests, 0);
    ck_assert_uint_eq(admit__requests_size(server->requests), 2);
    /* The ring's head is the forgotten record: it leaves, the others
     * after it at their grace. */
    reply_is(later, later_reply, NULL);
    admit__expire_requests(server, hub_monotonic_us() + 36000000u);
    ck_assert_uint_eq(admit__requests_size(server->requests), 0);
    reply_is(later, later_reply, "unknown, expired");
}
END_TEST

/* Routes n queued requests (their ids into ids), then their replies (into
 * replies), all accepted, and commits them (once: a commit waits for the
 * disk). */
static void answered_n(size_t n, char (*ids)[HUB_UUID_LEN + 1], char (*replies)[HUB_UUID_LEN + 1])
{
    for (size_t i = 0; i < n; i++) {
        ids[i][0] = '\0';
        route_kind(SENDER_ID, RECEIVER_ID, LTH__V1__KIND__KIND_REQUEST, NULL, 0,
                   sender_kp.sign_secret, ids[i]);
    }
    commit();
    for (size_t i = 0; i < n; i++) {
        replies[i][0] = '\0';
        route_kind(RECEIVER_ID, SENDER_ID, LTH__V1__KIND__KIND_REPLY, ids[i], 0,
                   receiver_kp.sign_secret, replies[i]);
    }
    ck_assert_uint_eq(receipts.n_nacks, 0);
    commit();
}

/* Re-sends of each reply pass, and another reply to each request is
 * refused, for ids[from, to). */
static void replies_hold(size_t from, size_t to, char (*ids)[HUB_UUID_LEN + 1],
                         char (*replies)[HUB_UUID_LEN + 1])
{
    for (size_t i = from; i < to; i++) {
        route_kind(RECEIVER_ID, SENDER_ID, LTH__V1__KIND__KIND_REPLY, ids[i], 0,
                   receiver_kp.sign_secret, replies[i]);
        if (receipts.n_nacks != 0)
            ck_abort_msg("re-send %zu refused: %s", i, receipts.reasons[0]);
        char other[HUB_UUID_LEN + 1] = "";
        route_kind(RECEIVER_ID, SENDER_ID, LTH__V1__KIND__KIND_REPLY, ids[i], 0,
                   receiver_kp.sign_secret, other);
        /* (no ck_assert per item: each one costs check a write) */
        if (receipts.n_nacks != 1 || !strstr(receipts.reasons[0], replies[i]))
            ck_abort_msg("another reply to %zu not refused as answered by %s", i, replies[i]);
        receipts_clear();
    }
    commit();
}

/* Thousands of answered requests: the tables grow past their first size,
 * the ring of answered ones gives up blocks at its head (the ones that
 * left) and takes new ones at its tail, its table of blocks wraps around
 * and then grows while wrapped; every request still finds its reply, and
 * they leave in order. */
START_TEST(test_answered_requests_wrap_and_grow)
{
    /* The ring, the pool and the indexes start at 1024 records. */
    enum { A = 600, B = 600, C = 1100 };
    static char ids[A + B + C][HUB_UUID_LEN + 1], replies[A + B + C][HUB_UUID_LEN + 1];
    answered_n(A, ids, replies);
    ck_assert_uint_eq(admit__requests_size(server->requests), A);
    admit__expire_requests(server, hub_monotonic_us() + 36000000u);
    ck_assert_uint_eq(admit__requests_size(server->requests), 0);
    /* The next ones wrap around the end of the ring. */
    answered_n(B, ids + A, replies + A);
    ck_assert_uint_eq(admit__requests_size(server->requests), B);
    replies_hold(A, A + B, ids, replies);
    uint64_t between = hub_monotonic_us();
    usleep(20000);
    /* And these make it grow, wrapped. */
    answered_n(C, ids + A + B, replies + A + B);
    ck_assert_uint_eq(admit__requests_size(server->requests), B + C);
    replies_hold(A, A + B + C, ids, replies);
    admit__expire_requests(server, between + 35000000u);
    ck_assert_uint_eq(admit__requests_size(server->requests), C);
    reply_is(ids[A], replies[A], "unknown, expired");
    reply_is(ids[A + B - 1], replies[A + B - 1], "unknown, expired");
    replies_hold(A + B, A + B + C, ids, replies);
    admit__expire_requests(server, hub_monotonic_us() + 36000000u);
    ck_assert_uint_eq(admit__requests_size(server->requests), 0);
    reply_is(ids[A + B + C - 1], replies[A + B + C - 1], "unknown, expired");
}
END_TEST

/* The indexes' slot arrays: small ones from malloc, large ones mapped on
 * 2 MiB boundaries (for huge pages); both zeroed, writable to the end. */
START_TEST(test_index_slots_zeroed_and_aligned)
{
    const uint32_t caps[] = {1024, 1u << 18, 1u << 20};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        uint32_t cap = caps[k];
        uint64_t *s = admit__slots_new(cap);
        ck_assert_ptr_nonnull(s);
        if ((size_t)cap * 8 >= (2u << 20))
            ck_assert_uint_eq((uintptr_t)s & ((2u << 20) - 1), 0);
        uint64_t any = 0;
        for (uint32_t i = 0; i < cap; i++) {
            any |= s[i];
            s[i] = i + 1;
        }
        ck_assert_uint_eq(any, 0);
        ck_assert_uint_eq(s[cap - 1], cap);
        admit__slots_free(s, cap);
    }
    admit__slots_free(NULL, 1u << 20);
    admit__slots_free(NULL, 1024);
}
END_TEST

TK_MAIN("admit",
        TK_CASE("admit", setup, teardown, 30, test_not_an_envelope,
                test_sender_must_be_the_connection, test_unknown_receiver,
                test_online_only_to_an_offline_receiver, test_unsigned_is_refused_before_the_store,
                test_rate_check, test_queued_is_acked_only_after_the_commit,
                test_bad_signature_is_not_committed,
                test_store_share_counts_until_the_commit_answers, test_store_share_rule,
                test_envelope_view_reads_what_protobuf_c_reads,
                test_deliveries_packed_as_protobuf_c_packs,
                test_answered_requests_are_kept_for_the_grace_then_forgotten,
                test_answered_requests_leave_in_order,
                test_reply_only_from_the_receiver_to_the_sender,
                test_answered_id_used_again_by_another_member,
                test_answered_requests_wrap_and_grow, test_index_slots_zeroed_and_aligned))
