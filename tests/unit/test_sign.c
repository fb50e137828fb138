/* Unit tests for hub_sign: the canonical envelope digest and Ed25519
 * signatures. The known-answer digest below was computed once from the
 * definition in hub_sign.h (and reproduced by an independent Python script);
 * the test also rebuilds the canonical bytes by hand. */
#include "hub_error.h"
#include "hub_sign.h"
#include "hub_wire.h"
#include "testkit.h"
#include "tkcanon.h"
#include "tkwire.h"

#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SHA-256 of the canonical bytes of the envelope made by ts__sample(). */
static const char ts__expected_digest_hex[] =
    "e13c860b49cc2341552f4cb205484f2d4cbf49e8eeb9fd9c80db5dfd84ca2467";
/* Ed25519 signature of that digest with the key from seed 0x01 0x02 … 0x20. */
static const char ts__expected_sig_hex[] =
    "ed9a5e450b50f22e3d7d7c63376cecaea33c649b19d479a7eb843d68131863fc"
    "049abe5266410b470b6043b6e66b615ba4f3ddc2be4f952769a92278bbac1a0b";

static uint8_t ts__payload[] = {'{', '"', 'a', '"', ':', '1', '}', 0x00, 0xff};

static hub_envelope_t ts__sample(void)
{
    return tkw_lookup_request("0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c90", 1735689600123456ull,
                              ts__payload, sizeof ts__payload);
}

static void ts__key_from_seed(uint8_t pk[32], uint8_t sk[64])
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(i + 1);
    ck_assert_int_eq(crypto_sign_seed_keypair(pk, sk, seed), 0);
}

static void ts__hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* The sample signed with the seed's key (pk, sk): the signature goes into
 * sig, which the envelope points at; asserts the signing succeeds. */
static hub_envelope_t ts__signed_sample(uint8_t pk[32], uint8_t sk[64], uint8_t sig[64])
{
    ts__key_from_seed(pk, sk);
    hub_envelope_t env = ts__sample();
    ck_assert_int_eq(hub_envelope_sign(&env, sk, sig), 0);
    return env;
}

START_TEST(test_digest_known_answer)
{
    hub_envelope_t env = ts__sample();
    uint8_t digest[32];
    ck_assert_int_eq(hub_envelope_digest(&env, digest), 0);
    char hex[65];
    ts__hex(digest, 32, hex);

    /* The canonical form rebuilt independently of hub_sign.c. */
    tk_canon_t buf;
    ck_assert(tk_canonical(&env, &buf));
    uint8_t by_hand[32];
    crypto_hash_sha256(by_hand, buf.b, buf.n);
    ck_assert_mem_eq(digest, by_hand, 32);
    ck_assert_str_eq(hex, ts__expected_digest_hex);

    /* The same fields after a protobuf round trip (protobuf-c omits defaults
     * on the wire; the decoder gives "" and NULL back) digest the same. */
    uint8_t *wire = malloc(lth__v1__envelope__get_packed_size(&env));
    ck_assert_ptr_nonnull(wire);
    size_t len = lth__v1__envelope__pack(&env, wire);
    hub_envelope_t *decoded = NULL;
    ck_assert_int_eq(hub_envelope_decode(wire, len, &decoded), 0);
    uint8_t again[32];
    ck_assert_int_eq(hub_envelope_digest(decoded, again), 0);
    ck_assert_mem_eq(digest, again, 32);
    hub_envelope_free(&decoded);
    free(wire);

    /* NULL strings and bytes count as empty. */
    hub_envelope_t a = LTH__V1__ENVELOPE__INIT, b = LTH__V1__ENVELOPE__INIT;
    b.message_id = b.correlation_id = b.sender = b.receiver = b.service = NULL;
    b.content_type = NULL;
    uint8_t da[32], db[32];
    ck_assert_int_eq(hub_envelope_digest(&a, da), 0);
    ck_assert_int_eq(hub_envelope_digest(&b, db), 0);
    ck_assert_mem_eq(da, db, 32);
    ck_assert_int_eq(hub_envelope_digest(NULL, da), HUB_EINVAL);
}
END_TEST

START_TEST(test_every_field_changes_digest)
{
    hub_envelope_t base = ts__sample();
    uint8_t d0[32];
    ck_assert_int_eq(hub_envelope_digest(&base, d0), 0);
    uint8_t other_payload[] = {'{', '"', 'a', '"', ':', '2', '}', 0x00, 0xff};
    for (int field = 1; field <= 11; field++) {
        hub_envelope_t env = ts__sample();
        switch (field) {
        case 1: env.message_id = "0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c91"; break;
        case 2: env.correlation_id = "0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c90"; break;
        case 3: env.sender = "VN/GOV/HN-STP/HOTICK"; break;
        case 4: env.receiver = "VN/GOV/BCA/CSDLQGDD"; break;
        case 5: env.service = "citizen.lookup/v2"; break;
        case 6: env.created_at_us++; break;
        case 7: env.ttl_ms++; break;
        case 8: env.content_type = "application/jsom"; break;
        case 9: env.payload.data = other_payload; break;
        case 10: env.kind = LTH__V1__KIND__KIND_EVENT; break;
        case 11: env.delivery = LTH__V1__DELIVERY__DELIVERY_QUEUED; break;
        }
        uint8_t d[32];
        ck_assert_int_eq(hub_envelope_digest(&env, d), 0);
        ck_assert_msg(memcmp(d, d0, 32) != 0, "changing field %d left the digest unchanged",
                      field);
    }
    /* Moving bytes across a field boundary changes the digest too. */
    hub_envelope_t x = ts__sample(), y = ts__sample();
    x.sender = "VN/GOV/A";
    x.receiver = "B/C";
    y.sender = "VN/GOV/A/B";
    y.receiver = "C";
    uint8_t dx[32], dy[32];
    ck_assert_int_eq(hub_envelope_digest(&x, dx), 0);
    ck_assert_int_eq(hub_envelope_digest(&y, dy), 0);
    ck_assert(memcmp(dx, dy, 32) != 0);
    /* A shorter payload is not the same as one with a trailing zero. */
    hub_envelope_t p = ts__sample();
    p.payload.len--;
    ck_assert_int_eq(hub_envelope_digest(&p, dx), 0);
    ck_assert(memcmp(dx, d0, 32) != 0);
    /* The signature is not part of the digest. */
    hub_envelope_t s = ts__sample();
    uint8_t junk[64] = {1, 2, 3};
    s.signature.data = junk;
    s.signature.len = sizeof junk;
    ck_assert_int_eq(hub_envelope_digest(&s, dx), 0);
    ck_assert_mem_eq(dx, d0, 32);
}
END_TEST

START_TEST(test_sign_verify_round_trip)
{
    uint8_t pk[32], sk[64], sig[64];
    hub_envelope_t env = ts__signed_sample(pk, sk, sig);
    ck_assert_ptr_eq(env.signature.data, sig);
    ck_assert_uint_eq(env.signature.len, 64);
    char hex[129];
    ts__hex(sig, 64, hex);
    ck_assert_str_eq(hex, ts__expected_sig_hex); /* Ed25519 is deterministic */
    ck_assert_int_eq(hub_envelope_verify(&env, pk), 0);

    /* Through the wire: the receiver verifies the decoded copy. */
    uint8_t *wire = malloc(lth__v1__envelope__get_packed_size(&env));
    ck_assert_ptr_nonnull(wire);
    size_t len = lth__v1__envelope__pack(&env, wire);
    hub_envelope_t *decoded = NULL;
    ck_assert_int_eq(hub_envelope_decode(wire, len, &decoded), 0);
    ck_assert_int_eq(hub_envelope_verify(decoded, pk), 0);
    hub_envelope_free(&decoded);
    free(wire);
}
END_TEST

START_TEST(test_tampering_fails)
{
    uint8_t pk[32], sk[64], sig[64];
    hub_envelope_t env = ts__signed_sample(pk, sk, sig);

    /* Every byte of the signature matters. */
    for (int i = 0; i < 64; i++) {
        sig[i] ^= 0x01;
        ck_assert_int_eq(hub_envelope_verify(&env, pk), HUB_ECRYPTO);
        sig[i] ^= 0x01;
    }
    ck_assert_int_eq(hub_envelope_verify(&env, pk), 0);

    /* A changed field after signing. */
    env.receiver = "VN/GOV/BCA/OTHER";
    ck_assert_int_eq(hub_envelope_verify(&env, pk), HUB_ECRYPTO);
    env.receiver = "VN/GOV/BCA/CSDLQGDC";
    ts__payload[0] = '[';
    ck_assert_int_eq(hub_envelope_verify(&env, pk), HUB_ECRYPTO);
    ts__payload[0] = '{';
    ck_assert_int_eq(hub_envelope_verify(&env, pk), 0);

    /* Wrong key. */
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    ck_assert_int_eq(hub_envelope_verify(&env, pk2), HUB_ECRYPTO);
    uint8_t zero_key[32] = {0};
    ck_assert_int_eq(hub_envelope_verify(&env, zero_key), HUB_ECRYPTO);

    /* Stripped or wrong-length signature. */
    env.signature.len = 63;
    ck_assert_int_eq(hub_envelope_verify(&env, pk), HUB_EINVAL);
    env.signature.len = 0;
    ck_assert_int_eq(hub_envelope_verify(&env, pk), HUB_EINVAL);
    env.signature.data = NULL;
    env.signature.len = 64;
    ck_assert_int_eq(hub_envelope_verify(&env, pk), HUB_EINVAL);
    hub_envelope_t unsigned_env = ts__sample();
    ck_assert_int_eq(hub_envelope_verify(&unsigned_env, pk), HUB_EINVAL);
    ck_assert_int_eq(hub_envelope_verify(NULL, pk), HUB_EINVAL);
    ck_assert_int_eq(hub_envelope_sign(&unsigned_env, NULL, sig), HUB_EINVAL);
}
END_TEST

/* ---- batch signatures ---- */

/* RFC 9162's MTH written the way the RFC defines it (recursive split at the
 * largest power of two below n), independently of hub_sign.c's level-wise
 * construction. */
static void ts__mth(const uint8_t (*d)[32], size_t n, uint8_t out[32])
{
    if (n == 1) {
        uint8_t buf[33] = {0x00};
        memcpy(buf + 1, d[0], 32);
        crypto_hash_sha256(out, buf, sizeof buf);
        return;
    }
    size_t k = 1;
    while (k * 2 < n)
        k *= 2;
    uint8_t buf[65] = {0x01};
    ts__mth(d, k, buf + 1);
    ts__mth(d + k, n - k, buf + 33);
    crypto_hash_sha256(out, buf, sizeof buf);
}

START_TEST(test_batch_tree_matches_rfc9162)
{
    uint8_t pk[32], sk[64];
    ts__key_from_seed(pk, sk);
    static uint8_t d[HUB_BATCH_MAX_LEAVES][32];
    for (size_t i = 0; i < HUB_BATCH_MAX_LEAVES; i++)
        crypto_hash_sha256(d[i], (const uint8_t *)&i, sizeof i);
    static hub_batch_proof_t proofs[HUB_BATCH_MAX_LEAVES];
    const size_t sizes[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 31, 32, 33, 63, 64, 65, 100, 1023, 1024};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        uint8_t want[32], got[32];
        ts__mth(d, n, want);
        ck_assert_int_eq(hub_batch_root(d, n, got), 0);
        ck_assert_msg(!memcmp(want, got, 32), "root differs from RFC 9162 MTH at n=%zu", n);
        if (n < 2)
            continue;
        uint8_t sig[64];
        ck_assert_int_eq(hub_batch_sign(d, n, sk, sig, proofs), 0);
        for (size_t i = 0; i < n; i++) {
            uint8_t r[32];
            ck_assert_uint_le(proofs[i].path_len, HUB_BATCH_MAX_PATH);
            ck_assert_int_eq(hub_batch_root_from_proof(d[i], &proofs[i], r), 0);
            ck_assert_msg(!memcmp(r, want, 32), "leaf %zu of %zu does not lead to the root", i,
                          n);
            /* Another leaf's digest with this leaf's proof leads elsewhere. */
            if (hub_batch_root_from_proof(d[(i + 1) % n], &proofs[i], r) == 0)
                ck_assert(memcmp(r, want, 32) != 0);
        }
    }
    uint8_t r[32], sig[64];
    ck_assert_int_eq(hub_batch_root(d, 0, r), HUB_EINVAL);
    ck_assert_int_eq(hub_batch_root(d, HUB_BATCH_MAX_LEAVES + 1, r), HUB_EINVAL);
    ck_assert_int_eq(hub_batch_sign(d, 1, sk, sig, proofs), HUB_EINVAL);
    hub_batch_proof_t bad = proofs[0];
    bad.leaf_index = bad.leaf_count;
    ck_assert_int_eq(hub_batch_root_from_proof(d[0], &bad, r), HUB_EINVAL);
    bad = proofs[0];
    bad.path_len--; /* too short for this tree */
    ck_assert_int_eq(hub_batch_root_from_proof(d[0], &bad, r), HUB_EINVAL);
}
END_TEST

/* Encodes env without a signature, then appends the signature fields, the
 * way the SDK does it; returns the decoded result. */
static hub_envelope_t *ts__batch_signed(hub_envelope_t *env, const uint8_t sig[64],
                                        const hub_batch_proof_t *proof)
{
    size_t len = lth__v1__envelope__get_packed_size(env);
    uint8_t *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    lth__v1__envelope__pack(env, buf);
    ck_assert_int_eq(hub_envelope_append_signature(&buf, &len, sig, proof), 0);
    hub_envelope_t *out = NULL;
    ck_assert_int_eq(hub_envelope_decode(buf, len, &out), 0);
    free(buf);
    return out;
}

/* n copies of the sample with ids of their own, their digests in d, signed
 * as one batch with sk (one signature, a proof each). */
static void ts__sign_samples(hub_envelope_t *envs, char (*ids)[37], uint8_t (*d)[32], int n,
                             const uint8_t sk[64], uint8_t sig[64], hub_batch_proof_t *proofs)
{
    for (int i = 0; i < n; i++) {
        envs[i] = ts__sample();
        snprintf(ids[i], 37, "0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8%03d", i);
        envs[i].message_id = ids[i];
        ck_assert_int_eq(hub_envelope_digest(&envs[i], d[i]), 0);
    }
    ck_assert_int_eq(hub_batch_sign((const uint8_t(*)[32])d, (size_t)n, sk, sig, proofs), 0);
}

START_TEST(test_batch_signed_envelopes)
{
    uint8_t pk[32], sk[64], other_pk[32], other_sk[64];
    ts__key_from_seed(pk, sk);
    crypto_sign_keypair(other_pk, other_sk);
    enum { N = 5 };
    hub_envelope_t envs[N];
    char ids[N][37];
    uint8_t d[N][32];
    uint8_t sig[64];
    hub_batch_proof_t proofs[N];
    ts__sign_samples(envs, ids, d, N, sk, sig, proofs);

    hub_sigcache_t cache;
    memset(&cache, 0, sizeof cache);
    hub_envelope_t *dec[N];
    for (int i = 0; i < N; i++) {
        dec[i] = ts__batch_signed(&envs[i], sig, &proofs[i]);
        ck_assert_ptr_nonnull(dec[i]->batch_proof);
        ck_assert_uint_eq(dec[i]->base.n_unknown_fields, 0);
        ck_assert_int_eq(hub_envelope_verify(dec[i], pk), 0);
        ck_assert_int_eq(hub_envelope_verify_cached(dec[i], pk, &cache), 0);
        ck_assert_int_eq(hub_envelope_verify(dec[i], other_pk), HUB_ECRYPTO);
    }
    /* One Ed25519 verification for the five envelopes of one batch. */
    ck_assert_uint_eq(cache.verifies, 1);
    ck_assert_uint_eq(cache.hits, N - 1);

    /* A changed payload no longer leads to the signed root, cached or not. */
    uint8_t tampered_payload[] = {'{', '"', 'a', '"', ':', '2', '}', 0x00, 0xff};
    hub_envelope_t t = envs[2];
    t.payload.data = tampered_payload;
    hub_envelope_t *td = ts__batch_signed(&t, sig, &proofs[2]);
    ck_assert_int_eq(hub_envelope_verify_cached(td, pk, &cache), HUB_ECRYPTO);
    hub_envelope_free(&td);
    /* Another envelope's proof does not fit this one. */
    td = ts__batch_signed(&envs[1], sig, &proofs[3]);
    ck_assert_int_ne(hub_envelope_verify_cached(td, pk, &cache), 0);
    hub_envelope_free(&td);
    /* A forged signature on a genuine proof is not let through by the cache. */
    uint8_t forged[64];
    memcpy(forged, sig, 64);
    forged[10] ^= 0x01;
    td = ts__batch_signed(&envs[0], forged, &proofs[0]);
    ck_assert_int_eq(hub_envelope_verify_cached(td, pk, &cache), HUB_ECRYPTO);
    hub_envelope_free(&td);
    /* The batch signature is not a signature of any single digest. */
    hub_envelope_t *single = ts__batch_signed(&envs[0], sig, NULL);
    ck_assert_int_eq(hub_envelope_verify(single, pk), HUB_ECRYPTO);
    hub_envelope_free(&single);
    /* A path element of the wrong length is malformed, not a crash. */
    dec[4]->batch_proof->path[0].len = 31;
    ck_assert_int_eq(hub_envelope_verify(dec[4], pk), HUB_EINVAL);
    dec[4]->batch_proof->path[0].len = 32;
    dec[4]->batch_proof->leaf_count = 1;
    ck_assert_int_eq(hub_envelope_verify(dec[4], pk), HUB_EINVAL);
    for (int i = 0; i < N; i++)
        hub_envelope_free(&dec[i]);
}
END_TEST

/* A batch of 256 as the SDK signs it: the inner nodes its envelopes share
 * are hashed once through the cache, and a tampered envelope or path is
 * still refused after those nodes are remembered. */
START_TEST(test_batch_nodes_cached_still_checked)
{
    uint8_t pk[32], sk[64];
    ts__key_from_seed(pk, sk);
    enum { N = 256 };
    static hub_envelope_t envs[N];
    static char ids[N][37];
    static uint8_t d[N][32];
    static hub_batch_proof_t proofs[N];
    uint8_t sig[64];
    ts__sign_samples(envs, ids, d, N, sk, sig, proofs);
    hub_sigcache_t *cache = calloc(1, sizeof *cache);
    ck_assert_ptr_nonnull(cache);
    for (int i = 0; i < N; i++) {
        hub_envelope_t *e = ts__batch_signed(&envs[i], sig, &proofs[i]);
        ck_assert_int_eq(hub_envelope_verify_cached(e, pk, cache), 0);
        hub_envelope_free(&e);
    }
    ck_assert_uint_eq(cache->verifies, 1);
    /* 255 inner nodes of 8 levels: 2,048 node hashes without the cache. */
    ck_assert_uint_ge(cache->node_hits, 2048 - 255 - 64);

    /* Each of these leads to remembered nodes part of the way at most. */
    uint8_t tampered_payload[] = {'{', '"', 'a', '"', ':', '2', '}', 0x00, 0xff};
    hub_envelope_t t = envs[77];
    t.payload.data = tampered_payload;
    hub_envelope_t *td = ts__batch_signed(&t, sig, &proofs[77]);
    ck_assert_int_eq(hub_envelope_verify_cached(td, pk, cache), HUB_ECRYPTO);
    hub_envelope_free(&td);
    /* A sibling's proof: the first node is a remembered one (the two
     * leaves in the other order are not), the root is not the signed one. */
    td = ts__batch_signed(&envs[76], sig, &proofs[77]);
    ck_assert_int_ne(hub_envelope_verify_cached(td, pk, cache), 0);
    hub_envelope_free(&td);
    /* One path element changed near the root. */
    hub_batch_proof_t bad = proofs[200];
    bad.path[bad.path_len - 1][5] ^= 0x40;
    td = ts__batch_signed(&envs[200], sig, &bad);
    ck_assert_int_eq(hub_envelope_verify_cached(td, pk, cache), HUB_ECRYPTO);
    hub_envelope_free(&td);
    /* The genuine envelope still verifies with and without the cache. */
    td = ts__batch_signed(&envs[200], sig, &proofs[200]);
    ck_assert_int_eq(hub_envelope_verify_cached(td, pk, cache), 0);
    ck_assert_int_eq(hub_envelope_verify(td, pk), 0);
    hub_envelope_free(&td);
    free(cache);
}
END_TEST

/* hub_envelope_pack_signature writes into the room after an envelope the
 * bytes hub_envelope_append_signature appends (the SDK's outbox entries are
 * allocated with that room), and nothing when the room is short. */
START_TEST(test_pack_signature_in_room)
{
    uint8_t pk[32], sk[64];
    ts__key_from_seed(pk, sk);
    enum { N = 3 };
    struct {
        hub_envelope_t envs[N];
        char ids[N][37];
        uint8_t d[N][32], sig[64];
        hub_batch_proof_t proofs[N];
    } b;
    ts__sign_samples(b.envs, b.ids, b.d, N, sk, b.sig, b.proofs);
    const uint8_t *sig = b.sig;
    const hub_batch_proof_t *proofs = b.proofs;
    hub_envelope_t *envs = b.envs;
    uint8_t plain_sig[64]; /* a lone envelope's signature: no proof */
    ck_assert_int_eq(crypto_sign_detached(plain_sig, NULL, b.d[0], 32, sk), 0);
    for (int i = 0; i <= N; i++) {
        const hub_batch_proof_t *proof = i < N ? &proofs[i] : NULL;
        const uint8_t *s = i < N ? sig : plain_sig;
        hub_envelope_t *env = &envs[i < N ? i : 0];
        size_t len = lth__v1__envelope__get_packed_size(env);
        uint8_t *want = malloc(len);
        ck_assert_ptr_nonnull(want);
        lth__v1__envelope__pack(env, want);
        size_t want_len = len;
        ck_assert_int_eq(hub_envelope_append_signature(&want, &want_len, s, proof), 0);
        size_t tail = want_len - len;
        uint8_t buf[4096];
        ck_assert_uint_le(want_len + 1, sizeof buf);
        lth__v1__envelope__pack(env, buf);
        memset(buf + len, 0xa5, sizeof buf - len);
        /* One byte short: nothing written. */
        ck_assert_uint_eq(hub_envelope_pack_signature(buf + len, tail - 1, s, proof), 0);
        ck_assert_uint_eq(buf[len], 0xa5);
        ck_assert_uint_eq(hub_envelope_pack_signature(buf + len, sizeof buf - len, s, proof),
                          tail);
        ck_assert_mem_eq(buf, want, want_len);
        ck_assert_uint_eq(buf[want_len], 0xa5); /* and nothing after */
        hub_envelope_t *dec = NULL;
        ck_assert_int_eq(hub_envelope_decode(buf, want_len, &dec), 0);
        ck_assert_int_eq(hub_envelope_verify(dec, pk), 0);
        hub_envelope_free(&dec);
        free(want);
    }
    hub_batch_proof_t bad = proofs[0];
    bad.path_len = HUB_BATCH_MAX_PATH + 1;
    uint8_t buf[64];
    ck_assert_uint_eq(hub_envelope_pack_signature(buf, sizeof buf, sig, &bad), 0);
    ck_assert_uint_eq(hub_envelope_pack_signature(NULL, 100, sig, NULL), 0);
}
END_TEST

static int prepare(void)
{
    return sodium_init() < 0 ? EXIT_FAILURE : 0;
}

TK_MAIN_PREPARED(prepare, "sign",
                 TK_CASE("envelope", NULL, NULL, 0, test_digest_known_answer,
                         test_every_field_changes_digest, test_sign_verify_round_trip,
                         test_tampering_fails, test_batch_tree_matches_rfc9162,
                         test_batch_signed_envelopes, test_batch_nodes_cached_still_checked,
                         test_pack_signature_in_room))
