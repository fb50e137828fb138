/* proto/testvectors/lth-v1.json against the C implementation: the digest,
 * single and batch signatures, Merkle roots and proofs, and the encodings
 * of envelopes and frames. The file is what other languages check
 * themselves against (adapters/python, adapters/examples/java), so the C
 * code must agree with every value in it; testvectors_fresh separately
 * checks that the file is what gen_testvectors writes today. */
#include "hub_error.h"
#include "hub_sign.h"
#include "hub_wire.h"
#include "testkit.h"

#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *tv__root;

static void tv__load(void)
{
    const char *src = getenv("HUB_SOURCE_DIR");
    ck_assert_msg(src != NULL, "HUB_SOURCE_DIR is not set (run through ctest)");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/proto/testvectors/lth-v1.json", src);
    json_error_t jerr;
    tv__root = json_load_file(path, 0, &jerr);
    ck_assert_msg(tv__root != NULL, "%s: %s (line %d)", path, jerr.text, jerr.line);
}

static void tv__unload(void) { json_decref(tv__root); }

static uint8_t *tv__hex_value(json_t *v, size_t *len)
{
    ck_assert(json_is_string(v));
    const char *s = json_string_value(v);
    size_t n = strlen(s) / 2;
    uint8_t *out = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(out);
    size_t got = 0;
    ck_assert_int_eq(sodium_hex2bin(out, n ? n : 1, s, strlen(s), NULL, &got, NULL), 0);
    ck_assert_uint_eq(got, n);
    *len = n;
    return out;
}

static uint8_t *tv__hex(json_t *obj, const char *key, size_t *len)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_string(v), "%s is missing", key);
    return tv__hex_value(v, len);
}

static void tv__hex_exact(json_t *obj, const char *key, uint8_t *out, size_t want)
{
    size_t n;
    uint8_t *b = tv__hex(obj, key, &n);
    ck_assert_msg(n == want, "%s has %zu bytes, not %zu", key, n, want);
    memcpy(out, b, n);
    free(b);
}

typedef struct {
    hub_envelope_t env;
    uint8_t *payload;
    char created[24];
} tv__env_t;

/* Builds an envelope from the vector's decoded fields (strings point into
 * the JSON, which outlives it). */
static void tv__env_from_fields(json_t *fields, tv__env_t *out)
{
    hub_envelope_t e = LTH__V1__ENVELOPE__INIT;
    e.message_id = (char *)json_string_value(json_object_get(fields, "message_id"));
    e.correlation_id = (char *)json_string_value(json_object_get(fields, "correlation_id"));
    e.sender = (char *)json_string_value(json_object_get(fields, "sender"));
    e.receiver = (char *)json_string_value(json_object_get(fields, "receiver"));
    e.service = (char *)json_string_value(json_object_get(fields, "service"));
    e.content_type = (char *)json_string_value(json_object_get(fields, "content_type"));
    ck_assert(e.message_id && e.correlation_id && e.sender && e.receiver && e.service &&
              e.content_type);
    const char *created = json_string_value(json_object_get(fields, "created_at_us"));
    ck_assert_ptr_nonnull(created);
    e.created_at_us = strtoull(created, NULL, 10);
    e.ttl_ms = (uint32_t)json_integer_value(json_object_get(fields, "ttl_ms"));
    e.kind = (Lth__V1__Kind)json_integer_value(json_object_get(fields, "kind"));
    e.delivery = (Lth__V1__Delivery)json_integer_value(json_object_get(fields, "delivery"));
    size_t n;
    out->payload = tv__hex(fields, "payload_hex", &n);
    e.payload.data = n ? out->payload : NULL;
    e.payload.len = n;
    out->env = e;
}

static void tv__key(uint8_t pk[32], uint8_t sk[64])
{
    json_t *key = json_object_get(tv__root, "key");
    ck_assert_ptr_nonnull(key);
    uint8_t seed[32], want_pk[32], want_sk[64], label_hash[32];
    tv__hex_exact(key, "sign_seed_hex", seed, 32);
    tv__hex_exact(key, "sign_public_hex", want_pk, 32);
    tv__hex_exact(key, "sign_secret_key_file_hex", want_sk, 64);
    crypto_hash_sha256(label_hash, (const uint8_t *)"LTH-TESTVECTOR-KEY-V1", 21);
    ck_assert_mem_eq(seed, label_hash, 32);
    ck_assert_int_eq(crypto_sign_seed_keypair(pk, sk, seed), 0);
    ck_assert_mem_eq(pk, want_pk, 32);
    /* The key file's sign-secret-key is libsodium's seed || public key. */
    ck_assert_mem_eq(sk, want_sk, 64);
    ck_assert_mem_eq(sk, seed, 32);
    ck_assert_mem_eq(sk + 32, pk, 32);
}

/* Reads the canonical bytes field by field as the spec describes them, so
 * that a wrong layout in the file (not only a wrong hash) fails here. */
static void tv__check_canonical_layout(const uint8_t *b, size_t n, const hub_envelope_t *e)
{
    ck_assert_uint_ge(n, 16);
    ck_assert_mem_eq(b, "LTH-ENVELOPE-V1\0", 16);
    size_t at = 16;
    const char *strs[] = {e->message_id, e->correlation_id, e->sender, e->receiver, e->service};
    for (uint8_t tag = 1; tag <= 11; tag++) {
        ck_assert_uint_lt(at, n);
        ck_assert_msg(b[at] == tag, "field %u expected at offset %zu, found 0x%02x", tag, at,
                      b[at]);
        at++;
        uint64_t v = 0;
        int width = tag == 6 ? 8 : 4;
        ck_assert_uint_le(at + (size_t)width, n);
        for (int i = 0; i < width; i++)
            v = (v << 8) | b[at + (size_t)i];
        at += (size_t)width;
        if (tag <= 5 || tag == 8 || tag == 9) {
            const void *want = tag <= 5 ? (const void *)strs[tag - 1]
                               : tag == 8 ? (const void *)e->content_type
                                          : (const void *)e->payload.data;
            size_t want_len = tag <= 5 ? strlen(strs[tag - 1])
                              : tag == 8 ? strlen(e->content_type)
                                         : e->payload.len;
            ck_assert_uint_eq(v, want_len);
            ck_assert_uint_le(at + want_len, n);
            if (want_len)
                ck_assert_mem_eq(b + at, want, want_len);
            at += want_len;
        } else if (tag == 6) {
            ck_assert_uint_eq(v, e->created_at_us);
        } else if (tag == 7) {
            ck_assert_uint_eq(v, e->ttl_ms);
        } else if (tag == 10) {
            ck_assert_uint_eq(v, (uint32_t)e->kind);
        } else {
            ck_assert_uint_eq(v, (uint32_t)e->delivery);
        }
    }
    ck_assert_uint_eq(at, n);
}

/* The vectors of one kind ("envelopes", "batches", "frames"): at least
 * at_least of them. */
static json_t *tv__vectors(const char *kind, size_t at_least)
{
    json_t *list = json_object_get(tv__root, kind);
    ck_assert_msg(json_array_size(list) >= at_least, "fewer than %zu %s vectors", at_least, kind);
    return list;
}

/* Checks one vector with the test key pk/sk. */
typedef void (*tv__check_fn)(json_t *v, const uint8_t pk[32], const uint8_t sk[64]);

/* Checks each of the vectors of `kind` (at least at_least of them). */
static void tv__each(const char *kind, size_t at_least, tv__check_fn check)
{
    uint8_t pk[32], sk[64];
    tv__key(pk, sk);
    json_t *list = tv__vectors(kind, at_least);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        check(v, pk, sk);
    }
}

START_TEST(test_key)
{
    uint8_t pk[32], sk[64];
    tv__key(pk, sk);
}
END_TEST

static void tv__check_envelope(json_t *v, const uint8_t pk[32], const uint8_t sk[64])
{
    const char *name = json_string_value(json_object_get(v, "name"));
    tv__env_t te;
    tv__env_from_fields(json_object_get(v, "fields"), &te);
    size_t canon_len, unsigned_len, signed_len;
    uint8_t *canon = tv__hex(v, "canonical_hex", &canon_len);
    uint8_t want_digest[32], want_sig[64], digest[32], sha[32], sig[64];
    tv__hex_exact(v, "digest_hex", want_digest, 32);
    tv__hex_exact(v, "signature_hex", want_sig, 64);
    tv__check_canonical_layout(canon, canon_len, &te.env);
    crypto_hash_sha256(sha, canon, canon_len);
    ck_assert_msg(!memcmp(sha, want_digest, 32), "%s: SHA-256(canonical) != digest", name);
    ck_assert_int_eq(hub_envelope_digest(&te.env, digest), 0);
    ck_assert_msg(!memcmp(digest, want_digest, 32), "%s: hub_envelope_digest differs", name);

    /* Encoding the fields gives the vector's bytes. */
    uint8_t *unsigned_bytes = tv__hex(v, "encoded_unsigned_hex", &unsigned_len);
    size_t packed_len = lth__v1__envelope__get_packed_size(&te.env);
    uint8_t *packed = malloc(packed_len + 1);
    ck_assert_ptr_nonnull(packed);
    lth__v1__envelope__pack(&te.env, packed);
    ck_assert_uint_eq(packed_len, unsigned_len);
    ck_assert_mem_eq(packed, unsigned_bytes, unsigned_len);

    /* Ed25519 is deterministic: signing gives the vector's signature. */
    ck_assert_int_eq(hub_envelope_sign(&te.env, sk, sig), 0);
    ck_assert_msg(!memcmp(sig, want_sig, 64), "%s: signature differs", name);

    /* The signed encoding decodes, digests the same and verifies;
     * appending the signature to the unsigned bytes gives it too. */
    uint8_t *signed_bytes = tv__hex(v, "encoded_signed_hex", &signed_len);
    hub_envelope_t *dec = NULL;
    ck_assert_int_eq(hub_envelope_decode(signed_bytes, signed_len, &dec), 0);
    ck_assert_int_eq(hub_envelope_verify(dec, pk), 0);
    ck_assert_int_eq(hub_envelope_digest(dec, digest), 0);
    ck_assert_mem_eq(digest, want_digest, 32);
    /* A changed payload byte (or, with no payload, a changed id) breaks it. */
    if (dec->payload.len)
        dec->payload.data[0] ^= 1;
    else
        dec->message_id[0] = dec->message_id[0] == 'a' ? 'b' : 'a';
    ck_assert_int_eq(hub_envelope_verify(dec, pk), HUB_ECRYPTO);
    hub_envelope_free(&dec);
    ck_assert_int_eq(hub_envelope_append_signature(&packed, &packed_len, want_sig, NULL), 0);
    ck_assert_uint_eq(packed_len, signed_len);
    ck_assert_mem_eq(packed, signed_bytes, signed_len);

    free(packed);
    free(unsigned_bytes);
    free(signed_bytes);
    free(canon);
    free(te.payload);
}

START_TEST(test_envelopes)
{
    tv__each("envelopes", 5, tv__check_envelope);
}
END_TEST

/* The digest of the envelope vector called `name`. */
static void tv__digest_of(const char *name, uint8_t out[32])
{
    json_t *envs = json_object_get(tv__root, "envelopes");
    size_t i;
    json_t *v;
    json_array_foreach(envs, i, v)
    {
        if (!strcmp(json_string_value(json_object_get(v, "name")), name)) {
            tv__hex_exact(v, "digest_hex", out, 32);
            return;
        }
    }
    ck_abort_msg("no envelope vector named %s", name);
}

static void tv__check_batch(json_t *v, const uint8_t pk[32], const uint8_t sk[64])
{
    json_t *leaves = json_object_get(v, "leaves");
    size_t n = json_array_size(leaves);
    ck_assert(n >= 2 && n <= 8);
    uint8_t digests[8][32], root[32], want_root[32], want_sig[64], sig[64];
    for (size_t i = 0; i < n; i++)
        tv__digest_of(json_string_value(json_array_get(leaves, i)), digests[i]);
    tv__hex_exact(v, "root_hex", want_root, 32);
    tv__hex_exact(v, "signature_hex", want_sig, 64);
    ck_assert_int_eq(hub_batch_root((const uint8_t(*)[32])digests, n, root), 0);
    ck_assert_mem_eq(root, want_root, 32);

    /* The signed message: "LTH-BATCH-V1" 0x00, u32 big-endian count, root. */
    uint8_t msg[HUB_BATCH_MSG_LEN];
    tv__hex_exact(v, "signed_message_hex", msg, sizeof msg);
    ck_assert_mem_eq(msg, "LTH-BATCH-V1\0", 13);
    ck_assert_uint_eq(((uint32_t)msg[13] << 24) | ((uint32_t)msg[14] << 16) |
                          ((uint32_t)msg[15] << 8) | msg[16],
                      n);
    ck_assert_mem_eq(msg + 17, want_root, 32);
    ck_assert_int_eq(crypto_sign_verify_detached(want_sig, msg, sizeof msg, pk), 0);

    hub_batch_proof_t proofs[8];
    ck_assert_int_eq(hub_batch_sign((const uint8_t(*)[32])digests, n, sk, sig, proofs), 0);
    ck_assert_mem_eq(sig, want_sig, 64);
    json_t *jproofs = json_object_get(v, "proofs");
    json_t *encs = json_object_get(v, "encoded_signed_hex");
    ck_assert_uint_eq(json_array_size(jproofs), n);
    ck_assert_uint_eq(json_array_size(encs), n);
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(jproofs, i);
        hub_batch_proof_t proof = {0};
        proof.leaf_index = (uint32_t)json_integer_value(json_object_get(p, "leaf_index"));
        proof.leaf_count = (uint32_t)json_integer_value(json_object_get(p, "leaf_count"));
        json_t *path = json_object_get(p, "path_hex");
        proof.path_len = json_array_size(path);
        ck_assert_uint_le(proof.path_len, HUB_BATCH_MAX_PATH);
        for (size_t k = 0; k < proof.path_len; k++) {
            size_t len;
            uint8_t *h = tv__hex_value(json_array_get(path, k), &len);
            ck_assert_uint_eq(len, 32);
            memcpy(proof.path[k], h, 32);
            free(h);
        }
        ck_assert_uint_eq(proof.leaf_index, i);
        ck_assert_uint_eq(proof.leaf_count, n);
        ck_assert_uint_eq(proof.path_len, proofs[i].path_len);
        for (size_t k = 0; k < proof.path_len; k++)
            ck_assert_mem_eq(proof.path[k], proofs[i].path[k], 32);
        ck_assert_int_eq(hub_batch_root_from_proof(digests[i], &proof, root), 0);
        ck_assert_mem_eq(root, want_root, 32);

        size_t len;
        uint8_t *bytes = tv__hex_value(json_array_get(encs, i), &len);
        hub_envelope_t *dec = NULL;
        ck_assert_int_eq(hub_envelope_decode(bytes, len, &dec), 0);
        ck_assert_ptr_nonnull(dec->batch_proof);
        ck_assert_int_eq(hub_envelope_verify(dec, pk), 0);
        /* A proof for another leaf position does not verify. */
        dec->batch_proof->leaf_index = (dec->batch_proof->leaf_index + 1) % (uint32_t)n;
        ck_assert_int_ne(hub_envelope_verify(dec, pk), 0);
        hub_envelope_free(&dec);
        free(bytes);
    }
}

START_TEST(test_batches)
{
    tv__each("batches", 3, tv__check_batch);
}
END_TEST

START_TEST(test_frames)
{
    uint8_t pk[32], sk[64];
    tv__key(pk, sk);
    json_t *frames = tv__vectors("frames", 6);
    int seen_batch = 0;
    size_t i;
    json_t *v;
    json_array_foreach(frames, i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        size_t len;
        uint8_t *bytes = tv__hex(v, "hex", &len);
        hub_frame_t *f = NULL;
        ck_assert_msg(hub_frame_decode(bytes, len, &f) == 0, "frame %s does not decode", name);
        ck_assert_uint_eq(f->protocol_version, 1);
        uint8_t *again;
        size_t again_len;
        ck_assert_int_eq(hub_frame_encode(f, &again, &again_len), 0);
        ck_assert_uint_eq(again_len, len);
        ck_assert_mem_eq(again, bytes, len);
        free(again);
        if (!strcmp(name, "batch")) {
            seen_batch = 1;
            ck_assert_int_eq(f->body_case, LTH__V1__FRAME__BODY_BATCH);
            ck_assert_uint_eq(f->batch->n_envelopes, 2);
            for (size_t k = 0; k < 2; k++) {
                hub_envelope_t *e = NULL;
                ck_assert_int_eq(hub_envelope_decode(f->batch->envelopes[k].data,
                                                     f->batch->envelopes[k].len, &e),
                                 0);
                ck_assert_int_eq(hub_envelope_verify(e, pk), 0);
                hub_envelope_free(&e);
            }
        } else if (!strcmp(name, "hello")) {
            ck_assert_int_eq(f->body_case, LTH__V1__FRAME__BODY_HELLO);
        } else if (!strcmp(name, "receipts")) {
            ck_assert_int_eq(f->body_case, LTH__V1__FRAME__BODY_RECEIPTS);
            ck_assert_uint_eq(f->receipts->n_acks, 1);
            ck_assert_uint_eq(f->receipts->n_nacks, 1);
        }
        hub_frame_free(&f);
        free(bytes);
    }
    ck_assert(seen_batch);
}
END_TEST

static int prepare(void)
{
    return sodium_init() < 0 ? EXIT_FAILURE : 0;
}

TK_MAIN_PREPARED(prepare, "testvectors",
                 TK_CASE("lth-v1.json", tv__load, tv__unload, 0, test_key, test_envelopes,
                         test_batches, test_frames))
