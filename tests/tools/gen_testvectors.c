/* gen_testvectors — writes proto/testvectors/lth-v1.json from the real
 * signing and framing code (common/hub_sign.c, common/hub_wire.c).
 *
 *   build/tests/gen_testvectors > proto/testvectors/lth-v1.json
 *
 * Everything in the output is deterministic: fixed message ids and clocks,
 * and Ed25519 (which signs deterministically) with a fixed, public test
 * key whose seed is SHA-256 of an ASCII label. That key belongs to no
 * member: no hub admits it. The test testvectors_fresh checks that the
 * committed file is exactly what this program writes, and
 * unit_test_testvectors (and the Python client's tests, and the Java
 * example) check the file against their own implementations.
 *
 * The canonical bytes are built independently of hub_sign.c (which hashes
 * them without ever holding them), by tests/support/tkcanon.c, and the program stops if their
 * SHA-256 differs from hub_envelope_digest(): the two definitions agree, or
 * no file is written. */
#include "hub_error.h"
#include "hub_sign.h"
#include "hub_wire.h"
#include "tkcanon.h"
#include "tkwire.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TV__KEY_LABEL "LTH-TESTVECTOR-KEY-V1"
#define TV__MEMBER "VN/GOV/TEST/VECTORS"

static void tv__die(const char *what)
{
    fprintf(stderr, "gen_testvectors: %s\n", what);
    exit(1);
}

static json_t *tv__hex(const void *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    if (!s)
        tv__die("out of memory");
    sodium_bin2hex(s, 2 * n + 1, p, n);
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* The envelopes: one of each kind and delivery, with Vietnamese text (UTF-8
 * lengths are bytes, not characters), an empty payload, binary bytes and
 * large integers, so that every rule of the canonical form is exercised. */
static const char tv__p0[] = "{\"so_dinh_danh\":\"001099012345\"}";
static const char tv__p1[] = "{\"ma_ho_so\":\"000.00.01.H26-261202-0001\",\"trang_thai\":"
                             "\"Đã tiếp nhận\"}";
static const uint8_t tv__p3[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
static const char tv__p4[] = "{\"ho_ten\":\"Nguyễn Văn An\"}";

typedef struct {
    const char *name;
    const char *about;
    hub_envelope_t env;
} tv__case_t;

static void tv__cases(tv__case_t *c, size_t *n)
{
    size_t k = 0;
    /* 2026-12-02T00:00:00Z */
    hub_envelope_t e =
        tkw_lookup_request("6f1c2a4e-8b3d-4f5a-9c7e-0d1e2f3a4b5c", 1796169600000000ull,
                           (const uint8_t *)tv__p0, strlen(tv__p0));
    e.sender = TV__MEMBER;
    c[k++] = (tv__case_t){"request", "an online-only request", e};

    e.message_id = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d";
    e.receiver = "VN/GOV/HN-VP/DVCQG";
    e.service = "dossier.status/v1";
    e.created_at_us = 1796169600123456ull;
    e.ttl_ms = 0;
    e.payload.data = (uint8_t *)tv__p1;
    e.payload.len = strlen(tv__p1);
    e.kind = LTH__V1__KIND__KIND_EVENT;
    e.delivery = LTH__V1__DELIVERY__DELIVERY_QUEUED;
    c[k++] = (tv__case_t){"event_utf8", "a queued event whose payload holds UTF-8 text", e};

    e.message_id = "c3d2e1f0-a9b8-4c7d-b6e5-f4a3b2c1d0e9";
    e.correlation_id = "6f1c2a4e-8b3d-4f5a-9c7e-0d1e2f3a4b5c";
    e.receiver = "VN/GOV/HN-STP/HOTICH";
    e.service = "citizen.lookup/v1";
    e.created_at_us = 1796169600500000ull;
    e.ttl_ms = 0;
    e.content_type = "";
    e.payload.data = NULL;
    e.payload.len = 0;
    e.kind = LTH__V1__KIND__KIND_REPLY;
    e.delivery = LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY;
    c[k++] = (tv__case_t){"reply_empty", "a reply with an empty content type and payload", e};

    e.message_id = "11111111-2222-4333-8444-555555555555";
    e.correlation_id = "";
    e.receiver = "VN/GOV/HN-STNMT/DATDAI";
    e.service = "parcel.document/v2";
    e.created_at_us = 0xffffffffffffffffull;
    e.ttl_ms = 0xffffffffu;
    e.content_type = "application/octet-stream";
    e.payload.data = (uint8_t *)tv__p3;
    e.payload.len = sizeof tv__p3;
    e.kind = LTH__V1__KIND__KIND_EVENT;
    e.delivery = LTH__V1__DELIVERY__DELIVERY_QUEUED;
    c[k++] = (tv__case_t){"binary_max_ints", "binary payload; created_at_us and ttl_ms at "
                                             "their largest values",
                          e};

    e.message_id = "9e8d7c6b-5a49-4382-a716-0f1e2d3c4b5a";
    e.receiver = "VN/GOV/HN-LGSP/HUB";
    e.service = "citizen.changed/v1";
    e.created_at_us = 1796169601000000ull;
    e.ttl_ms = 86400000;
    e.content_type = "application/json; charset=utf-8";
    e.payload.data = (uint8_t *)tv__p4;
    e.payload.len = strlen(tv__p4);
    e.kind = LTH__V1__KIND__KIND_EVENT;
    e.delivery = LTH__V1__DELIVERY__DELIVERY_QUEUED;
    c[k++] = (tv__case_t){"publication", "an event published through the hub (receiver = "
                                         "the hub's id)",
                          e};
    *n = k;
}

static json_t *tv__fields(const hub_envelope_t *e)
{
    json_t *f = json_object();
    json_object_set_new(f, "message_id", json_string(e->message_id));
    json_object_set_new(f, "correlation_id", json_string(e->correlation_id));
    json_object_set_new(f, "sender", json_string(e->sender));
    json_object_set_new(f, "receiver", json_string(e->receiver));
    json_object_set_new(f, "service", json_string(e->service));
    /* As a decimal string: JSON numbers lose precision past 2^53 in many
     * languages (proto3 JSON writes uint64 the same way). */
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)e->created_at_us);
    json_object_set_new(f, "created_at_us", json_string(num));
    json_object_set_new(f, "ttl_ms", json_integer(e->ttl_ms));
    json_object_set_new(f, "content_type", json_string(e->content_type));
    json_object_set_new(f, "payload_hex", tv__hex(e->payload.data, e->payload.len));
    json_object_set_new(f, "kind", json_integer(e->kind));
    json_object_set_new(f, "delivery", json_integer(e->delivery));
    return f;
}

static void tv__pack(const hub_envelope_t *e, uint8_t **out, size_t *len)
{
    *len = lth__v1__envelope__get_packed_size(e);
    *out = malloc(*len ? *len : 1);
    if (!*out)
        tv__die("out of memory");
    lth__v1__envelope__pack(e, *out);
}

static json_t *tv__frame(const char *name, const char *about, hub_frame_t *frame)
{
    uint8_t *buf;
    size_t len;
    if (hub_frame_encode(frame, &buf, &len) != 0)
        tv__die("cannot encode a frame");
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(name));
    json_object_set_new(j, "about", json_string(about));
    json_object_set_new(j, "hex", tv__hex(buf, len));
    free(buf);
    return j;
}

int main(void)
{
    if (sodium_init() < 0)
        tv__die("libsodium did not start");
    uint8_t seed[32], pk[32], sk[64];
    crypto_hash_sha256(seed, (const uint8_t *)TV__KEY_LABEL, strlen(TV__KEY_LABEL));
    crypto_sign_seed_keypair(pk, sk, seed);

    json_t *root = json_object();
    json_object_set_new(root, "format", json_string("lth-testvectors/1"));
    json_object_set_new(root, "about",
                        json_string("Test vectors for lth.v1 (proto/README.md): canonical "
                                    "envelope bytes, digests, single and batch signatures, "
                                    "Merkle roots and inclusion proofs, encoded envelopes and "
                                    "frames. All byte strings are lower-case hex. Generated by "
                                    "tests/tools/gen_testvectors.c from the hub's own code."));
    json_t *key = json_object();
    json_object_set_new(key, "about",
                        json_string("A public test key: its seed is printed here, so it "
                                    "proves nothing and no hub admits it. Never use it for a "
                                    "member."));
    json_object_set_new(key, "member_id", json_string(TV__MEMBER));
    json_object_set_new(key, "seed_rule", json_string("SHA-256 of the ASCII bytes "
                                                      "'" TV__KEY_LABEL "'"));
    json_object_set_new(key, "sign_seed_hex", tv__hex(seed, 32));
    json_object_set_new(key, "sign_public_hex", tv__hex(pk, 32));
    json_object_set_new(key, "sign_secret_key_file_hex", tv__hex(sk, 64));
    json_object_set_new(root, "key", key);

    tv__case_t cases[8];
    size_t n_cases;
    tv__cases(cases, &n_cases);
    uint8_t digests[8][HUB_DIGEST_LEN];
    json_t *envs = json_array();
    for (size_t i = 0; i < n_cases; i++) {
        hub_envelope_t e = cases[i].env;
        tk_canon_t canon;
        if (!tk_canonical(&e, &canon))
            tv__die("canonical form too long for the buffer");
        uint8_t check[32];
        crypto_hash_sha256(check, canon.b, canon.n);
        if (hub_envelope_digest(&e, digests[i]) != 0 || memcmp(check, digests[i], 32) != 0)
            tv__die("the canonical bytes built here and hub_envelope_digest() disagree");
        uint8_t *unsigned_bytes, *signed_bytes;
        size_t unsigned_len, signed_len;
        tv__pack(&e, &unsigned_bytes, &unsigned_len);
        uint8_t sig[HUB_SIGNATURE_LEN];
        if (hub_envelope_sign(&e, sk, sig) != 0 || hub_envelope_verify(&e, pk) != 0)
            tv__die("single signature failed");
        tv__pack(&e, &signed_bytes, &signed_len);
        /* Appending the signature to the unsigned encoding (what the SDK
         * does) gives the same bytes as encoding the signed envelope. */
        uint8_t *appended = malloc(unsigned_len ? unsigned_len : 1);
        size_t appended_len = unsigned_len;
        if (!appended)
            tv__die("out of memory");
        memcpy(appended, unsigned_bytes, unsigned_len);
        if (hub_envelope_append_signature(&appended, &appended_len, sig, NULL) != 0 ||
            appended_len != signed_len || memcmp(appended, signed_bytes, signed_len) != 0)
            tv__die("appending a signature differs from encoding it");
        free(appended);

        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(cases[i].name));
        json_object_set_new(j, "about", json_string(cases[i].about));
        json_object_set_new(j, "fields", tv__fields(&e));
        json_object_set_new(j, "canonical_hex", tv__hex(canon.b, canon.n));
        json_object_set_new(j, "digest_hex", tv__hex(digests[i], 32));
        json_object_set_new(j, "signature_hex", tv__hex(sig, sizeof sig));
        json_object_set_new(j, "encoded_unsigned_hex", tv__hex(unsigned_bytes, unsigned_len));
        json_object_set_new(j, "encoded_signed_hex", tv__hex(signed_bytes, signed_len));
        json_array_append_new(envs, j);
        free(unsigned_bytes);
        free(signed_bytes);
    }
    json_object_set_new(root, "envelopes", envs);

    /* Batches: 2 leaves (one level), 3 (an odd node promoted) and 5 (two
     * promotions), all over the envelopes above in a fixed order. */
    static const size_t sizes[] = {2, 3, 5};
    static const size_t order[] = {1, 0, 3, 4, 2};
    json_t *batches = json_array();
    uint8_t *batch_items[2] = {NULL, NULL};
    size_t batch_lens[2] = {0, 0};
    for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++) {
        size_t n = sizes[b];
        uint8_t d[8][HUB_DIGEST_LEN], rootb[HUB_DIGEST_LEN], sig[HUB_SIGNATURE_LEN];
        hub_batch_proof_t proofs[8];
        for (size_t i = 0; i < n; i++)
            memcpy(d[i], digests[order[i]], HUB_DIGEST_LEN);
        if (hub_batch_sign((const uint8_t(*)[HUB_DIGEST_LEN])d, n, sk, sig, proofs) != 0 ||
            hub_batch_root((const uint8_t(*)[HUB_DIGEST_LEN])d, n, rootb) != 0)
            tv__die("batch signature failed");
        uint8_t msg[HUB_BATCH_MSG_LEN];
        memcpy(msg, HUB_BATCH_DOMAIN, sizeof HUB_BATCH_DOMAIN); /* with its NUL */
        msg[13] = (uint8_t)(n >> 24);
        msg[14] = (uint8_t)(n >> 16);
        msg[15] = (uint8_t)(n >> 8);
        msg[16] = (uint8_t)n;
        memcpy(msg + 17, rootb, HUB_DIGEST_LEN);
        if (crypto_sign_verify_detached(sig, msg, sizeof msg, pk) != 0)
            tv__die("the batch message built here is not what hub_batch_sign() signs");
        json_t *j = json_object();
        char name[32];
        snprintf(name, sizeof name, "batch_of_%zu", n);
        json_object_set_new(j, "name", json_string(name));
        json_t *idx = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(idx, json_string(cases[order[i]].name));
        json_object_set_new(j, "leaves", idx);
        json_object_set_new(j, "root_hex", tv__hex(rootb, 32));
        json_object_set_new(j, "signed_message_hex", tv__hex(msg, sizeof msg));
        json_object_set_new(j, "signature_hex", tv__hex(sig, sizeof sig));
        json_t *pr = json_array();
        json_t *encs = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *p = json_object();
            json_object_set_new(p, "leaf_index", json_integer(proofs[i].leaf_index));
            json_object_set_new(p, "leaf_count", json_integer(proofs[i].leaf_count));
            json_t *path = json_array();
            for (size_t k = 0; k < proofs[i].path_len; k++)
                json_array_append_new(path, tv__hex(proofs[i].path[k], 32));
            json_object_set_new(p, "path_hex", path);
            json_array_append_new(pr, p);

            hub_envelope_t e = cases[order[i]].env;
            uint8_t *bytes;
            size_t len;
            tv__pack(&e, &bytes, &len);
            if (hub_envelope_append_signature(&bytes, &len, sig, &proofs[i]) != 0)
                tv__die("cannot append a batch signature");
            hub_envelope_t *dec = NULL;
            if (hub_envelope_decode(bytes, len, &dec) != 0 || hub_envelope_verify(dec, pk) != 0)
                tv__die("a batch-signed envelope does not verify");
            hub_envelope_free(&dec);
            json_array_append_new(encs, tv__hex(bytes, len));
            if (b == 0 && i < 2) {
                batch_items[i] = bytes;
                batch_lens[i] = len;
            } else {
                free(bytes);
            }
        }
        json_object_set_new(j, "proofs", pr);
        json_object_set_new(j, "encoded_signed_hex", encs);
        json_array_append_new(batches, j);
    }
    json_object_set_new(root, "batches", batches);

    /* Frames: each a whole ZeroMQ message. */
    json_t *frames = json_array();
    {
        Lth__V1__Hello hello = LTH__V1__HELLO__INIT;
        char *services[] = {"citizen.lookup/v1"};
        char *subs[] = {"VN/GOV/HN-VP/TTHC/catalogue.published/v1"};
        hello.protocol_version = 1;
        hello.member_id = TV__MEMBER;
        hello.services = services;
        hello.n_services = 1;
        hello.software = "testvectors 1";
        hello.subscriptions = subs;
        hello.n_subscriptions = 1;
        hello.receipts_in_deliveries = true;
        hub_frame_t f = tkw_hello_frame(&hello);
        json_array_append_new(frames, tv__frame("hello", "the first frame after connecting", &f));
    }
    {
        ProtobufCBinaryData items[2] = {{batch_lens[0], batch_items[0]},
                                        {batch_lens[1], batch_items[1]}};
        Lth__V1__Batch batch = tkw_batch(items, 2);
        hub_frame_t f = tkw_batch_frame(&batch);
        json_array_append_new(frames, tv__frame("batch", "the two envelopes of batch_of_2, "
                                                         "batch-signed, in one Batch frame",
                                                &f));
    }
    {
        Lth__V1__Ack ack = LTH__V1__ACK__INIT;
        Lth__V1__Ack *acks[] = {&ack};
        ack.message_id = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d";
        ack.hub_seq = 1048577;
        Lth__V1__Nack nack = LTH__V1__NACK__INIT;
        Lth__V1__Nack *nacks[] = {&nack};
        nack.message_id = "6f1c2a4e-8b3d-4f5a-9c7e-0d1e2f3a4b5c";
        nack.code = LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE;
        nack.reason = "VN/GOV/BCA/CSDLQGDC is not connected; send it queued, or try again later";
        Lth__V1__Receipts r = tkw_receipts(acks, 1);
        r.nacks = nacks;
        r.n_nacks = 1;
        hub_frame_t f = tkw_receipts_frame(&r);
        json_array_append_new(frames, tv__frame("receipts", "an ACK and a NACK from the hub",
                                                &f));
    }
    {
        Lth__V1__DeliveredEnvelope item = LTH__V1__DELIVERED_ENVELOPE__INIT;
        Lth__V1__DeliveredEnvelope *items[] = {&item};
        item.hub_seq = 1048577;
        item.envelope.data = batch_items[0];
        item.envelope.len = batch_lens[0];
        item.attempt = 1;
        item.sender_sign_key.data = pk;
        item.sender_sign_key.len = 32;
        Lth__V1__Deliveries d = tkw_deliveries(items, 1);
        hub_frame_t f = tkw_deliveries_frame(&d);
        json_array_append_new(frames, tv__frame("deliveries", "the first envelope of the "
                                                              "batch, delivered to its receiver",
                                                &f));
    }
    {
        uint64_t seqs[] = {1048577, 1048578};
        Lth__V1__Settle s = tkw_settle(seqs, 2);
        hub_frame_t f = tkw_settle_frame(&s);
        json_array_append_new(frames, tv__frame("settle", "two deliveries handled (packed "
                                                          "repeated uint64)",
                                                &f));
    }
    {
        Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
        hb.sent_at_us = 1796169600000000ull;
        hub_frame_t f = tkw_heartbeat_frame(&hb);
        json_array_append_new(frames, tv__frame("heartbeat", "a client's heartbeat", &f));
    }
    free(batch_items[0]);
    free(batch_items[1]);
    json_object_set_new(root, "frames", frames);

    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (!text)
        tv__die("cannot write JSON");
    fputs(text, stdout);
    fputc('\n', stdout);
    free(text);
    json_decref(root);
    sodium_memzero(sk, sizeof sk);
    return 0;
}
