#include "hub_sign.h"
#include "hub_bytes.h"
#include "hub_error.h"
#include "hub_sha256.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The digest's input is a few dozen small pieces (tags, lengths, ids)
 * around the payload: they are gathered in a buffer and hashed in a few
 * calls instead of one SHA-256 update each (the same bytes, so the same
 * digest). */
typedef struct {
    hub_sha256_t st;
    size_t n;
    uint8_t buf[512];
} hub__digest_in_t;

static void hub__put_raw(hub__digest_in_t *d, const void *data, size_t len)
{
    if (d->n + len > sizeof d->buf) {
        hub_sha256_update(&d->st, d->buf, d->n);
        d->n = 0;
        if (len > sizeof d->buf) {
            hub_sha256_update(&d->st, data, len);
            return;
        }
    }
    memcpy(d->buf + d->n, data, len);
    d->n += len;
}

static void hub__put_u32(hub__digest_in_t *d, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    hub__put_raw(d, b, sizeof b);
}

static void hub__put_u64(hub__digest_in_t *d, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    hub__put_raw(d, b, sizeof b);
}

static void hub__put_tag(hub__digest_in_t *d, uint8_t field_number)
{
    hub__put_raw(d, &field_number, 1);
}

/* A length-prefixed field; a NULL pointer is the empty value (protobuf-c
 * uses NULL for unset bytes, and hand-built envelopes may do so for strings). */
static int hub__put_bytes(hub__digest_in_t *d, uint8_t field_number, const void *data, size_t len)
{
    if (len > UINT32_MAX)
        return HUB_EINVAL;
    hub__put_tag(d, field_number);
    hub__put_u32(d, (uint32_t)len);
    if (len)
        hub__put_raw(d, data, len);
    return 0;
}

static int hub__put_string(hub__digest_in_t *d, uint8_t field_number, const char *s)
{
    return hub__put_bytes(d, field_number, s, s ? strlen(s) : 0);
}

int hub_envelope_digest(const hub_envelope_t *env, uint8_t out[HUB_DIGEST_LEN])
{
    if (!env || !out)
        return HUB_EINVAL;
    static const char domain[] = HUB_ENVELOPE_DIGEST_DOMAIN; /* sizeof includes the NUL */
    hub__digest_in_t d;
    hub_sha256_init(&d.st);
    d.n = 0;
    hub__put_raw(&d, domain, sizeof domain);
    int rc = 0;
    rc |= hub__put_string(&d, 1, env->message_id);
    rc |= hub__put_string(&d, 2, env->correlation_id);
    rc |= hub__put_string(&d, 3, env->sender);
    rc |= hub__put_string(&d, 4, env->receiver);
    rc |= hub__put_string(&d, 5, env->service);
    hub__put_tag(&d, 6);
    hub__put_u64(&d, env->created_at_us);
    hub__put_tag(&d, 7);
    hub__put_u32(&d, env->ttl_ms);
    rc |= hub__put_string(&d, 8, env->content_type);
    rc |= hub__put_bytes(&d, 9, env->payload.data, env->payload.len);
    hub__put_tag(&d, 10);
    hub__put_u32(&d, (uint32_t)(int32_t)env->kind);
    hub__put_tag(&d, 11);
    hub__put_u32(&d, (uint32_t)(int32_t)env->delivery);
    if (d.n)
        hub_sha256_update(&d.st, d.buf, d.n);
    hub_sha256_final(&d.st, out);
    if (rc != 0) {
        memset(out, 0, HUB_DIGEST_LEN);
        return HUB_EINVAL;
    }
    return 0;
}

int hub_envelope_sign(hub_envelope_t *env, const uint8_t sign_secret[HUB_SIGN_SECRET_LEN],
                      uint8_t sig_out[HUB_SIGNATURE_LEN])
{
    if (!env || !sign_secret || !sig_out)
        return HUB_EINVAL;
    if (sodium_init() < 0)
        return HUB_ECRYPTO;
    uint8_t digest[HUB_DIGEST_LEN];
    int rc = hub_envelope_digest(env, digest);
    if (rc != 0)
        return rc;
    if (crypto_sign_detached(sig_out, NULL, digest, sizeof digest, sign_secret) != 0)
        return HUB_ECRYPTO;
    env->signature.data = sig_out;
    env->signature.len = HUB_SIGNATURE_LEN;
    return 0;
}

int hub_envelope_verify(const hub_envelope_t *env, const uint8_t sign_public[HUB_SIGN_PUBLIC_LEN])
{
    return hub_envelope_verify_cached(env, sign_public, NULL);
}

/* ---- Batch signatures (RFC 9162 Merkle tree over envelope digests) ---- */

static void hub__leaf_hash(const uint8_t digest[HUB_DIGEST_LEN], uint8_t out[HUB_DIGEST_LEN])
{
    hub_sha256_t st;
    static const uint8_t prefix = 0x00;
    hub_sha256_init(&st);
    hub_sha256_update(&st, &prefix, 1);
    hub_sha256_update(&st, digest, HUB_DIGEST_LEN);
    hub_sha256_final(&st, out);
}

static void hub__node_hash(const uint8_t left[HUB_DIGEST_LEN], const uint8_t right[HUB_DIGEST_LEN],
                           uint8_t out[HUB_DIGEST_LEN])
{
    uint8_t buf[1 + 2 * HUB_DIGEST_LEN];
    buf[0] = 0x01;
    memcpy(buf + 1, left, HUB_DIGEST_LEN);
    memcpy(buf + 1 + HUB_DIGEST_LEN, right, HUB_DIGEST_LEN);
    hub_sha256(buf, sizeof buf, out);
}

static void hub__batch_message(uint32_t count, const uint8_t root[HUB_DIGEST_LEN],
                               uint8_t msg[HUB_BATCH_MSG_LEN])
{
    static const char domain[] = HUB_BATCH_DOMAIN; /* sizeof includes the NUL */
    _Static_assert(sizeof domain + 4 + HUB_DIGEST_LEN == HUB_BATCH_MSG_LEN, "batch message");
    memcpy(msg, domain, sizeof domain);
    uint8_t *p = msg + sizeof domain;
    hub_put_be32(p, count);
    memcpy(p + 4, root, HUB_DIGEST_LEN);
}

/* Builds the tree level by level: pairs of adjacent nodes are hashed and a
 * last node without a partner moves up unchanged. For any n this gives the
 * same tree as RFC 9162's split at the largest power of two below n. When
 * proofs is not NULL, every leaf's path is collected on the way up. */
static int hub__batch_tree(const uint8_t (*digests)[HUB_DIGEST_LEN], size_t n,
                           uint8_t root[HUB_DIGEST_LEN], hub_batch_proof_t *proofs)
{
    if (!digests || !root || n < 1 || n > HUB_BATCH_MAX_LEAVES)
        return HUB_EINVAL;
    uint8_t(*level)[HUB_DIGEST_LEN] = malloc(n * sizeof *level);
    size_t *pos = proofs ? malloc(n * sizeof *pos) : NULL; /* each leaf's node at this level */
    if (!level || (proofs && !pos)) {
        free(level);
        free(pos);
        return HUB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        hub__leaf_hash(digests[i], level[i]);
        if (proofs) {
            pos[i] = i;
            proofs[i].leaf_index = (uint32_t)i;
            proofs[i].leaf_count = (uint32_t)n;
            proofs[i].path_len = 0;
        }
    }
    size_t width = n;
    while (width > 1) {
        for (size_t i = 0; proofs && i < n; i++) {
            size_t sib = pos[i] ^ 1u;
            if (sib < width) /* else: the odd node out, promoted without a sibling */
                memcpy(proofs[i].path[proofs[i].path_len++], level[sib], HUB_DIGEST_LEN);
            pos[i] >>= 1;
        }
        size_t next = 0;
        for (size_t i = 0; i + 1 < width; i += 2)
            hub__node_hash(level[i], level[i + 1], level[next++]);
        if (width % 2)
            memmove(level[next++], level[width - 1], HUB_DIGEST_LEN);
        width = next;
    }
    memcpy(root, level[0], HUB_DIGEST_LEN);
    free(level);
    free(pos);
    return 0;
}

int hub_batch_root(const uint8_t (*digests)[HUB_DIGEST_LEN], size_t n,
                   uint8_t root[HUB_DIGEST_LEN])
{
    return hub__batch_tree(digests, n, root, NULL);
}

int hub_batch_sign(const uint8_t (*digests)[HUB_DIGEST_LEN], size_t n,
                   const uint8_t sign_secret[HUB_SIGN_SECRET_LEN],
                   uint8_t sig_out[HUB_SIGNATURE_LEN], hub_batch_proof_t *proofs)
{
    if (!sign_secret || !sig_out || !proofs || n < 2)
        return HUB_EINVAL;
    if (sodium_init() < 0)
        return HUB_ECRYPTO;
    uint8_t root[HUB_DIGEST_LEN], msg[HUB_BATCH_MSG_LEN];
    int rc = hub__batch_tree(digests, n, root, proofs);
    if (rc != 0)
        return rc;
    hub__batch_message((uint32_t)n, root, msg);
    if (crypto_sign_detached(sig_out, NULL, msg, sizeof msg, sign_secret) != 0)
        return HUB_ECRYPTO;
    return 0;
}

/* hub__node_hash(left, right, out), remembered in cache (may be NULL). */
static void hub__node_hash_cached(hub_sigcache_t *cache, const uint8_t left[HUB_DIGEST_LEN],
                                  const uint8_t right[HUB_DIGEST_LEN], uint8_t out[HUB_DIGEST_LEN])
{
    if (!cache) {
        hub__node_hash(left, right, out);
        return;
    }
    uint64_t a, b;
    memcpy(&a, left, sizeof a);
    memcpy(&b, right, sizeof b);
    size_t k = (size_t)((a ^ (b * 0x9e3779b97f4a7c15ull)) >> 32) % HUB_SIGCACHE_NODES;
    if (cache->nodes[k].used && !memcmp(cache->nodes[k].children, left, HUB_DIGEST_LEN) &&
        !memcmp(cache->nodes[k].children + HUB_DIGEST_LEN, right, HUB_DIGEST_LEN)) {
        cache->node_hits++;
        memcpy(out, cache->nodes[k].node, HUB_DIGEST_LEN);
        return;
    }
    uint8_t children[2 * HUB_DIGEST_LEN];
    memcpy(children, left, HUB_DIGEST_LEN); /* out may be left or right */
    memcpy(children + HUB_DIGEST_LEN, right, HUB_DIGEST_LEN);
    hub__node_hash(left, right, out);
    memcpy(cache->nodes[k].children, children, sizeof children);
    memcpy(cache->nodes[k].node, out, HUB_DIGEST_LEN);
    cache->nodes[k].used = 1;
}

static int hub__root_from_proof(const uint8_t digest[HUB_DIGEST_LEN],
                                const hub_batch_proof_t *proof, uint8_t root[HUB_DIGEST_LEN],
                                hub_sigcache_t *cache)
{
    if (!digest || !proof || !root || proof->leaf_count < 2 ||
        proof->leaf_count > HUB_BATCH_MAX_LEAVES || proof->leaf_index >= proof->leaf_count ||
        proof->path_len > HUB_BATCH_MAX_PATH)
        return HUB_EINVAL;
    /* RFC 9162, section 2.1.3.2. */
    uint32_t fn = proof->leaf_index, sn = proof->leaf_count - 1;
    uint8_t r[HUB_DIGEST_LEN];
    hub__leaf_hash(digest, r);
    for (size_t i = 0; i < proof->path_len; i++) {
        if (sn == 0)
            return HUB_EINVAL;
        if ((fn & 1u) || fn == sn) {
            hub__node_hash_cached(cache, proof->path[i], r, r);
            if (!(fn & 1u)) {
                do {
                    fn >>= 1;
                    sn >>= 1;
                } while (!(fn & 1u) && fn != 0);
            }
        } else {
            hub__node_hash_cached(cache, r, proof->path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return HUB_EINVAL;
    memcpy(root, r, HUB_DIGEST_LEN);
    return 0;
}

int hub_batch_root_from_proof(const uint8_t digest[HUB_DIGEST_LEN],
                              const hub_batch_proof_t *proof, uint8_t root[HUB_DIGEST_LEN])
{
    return hub__root_from_proof(digest, proof, root, NULL);
}

/* The proof an envelope carries, copied out of protobuf-c's structs. */
static int hub__proof_from_env(const hub_envelope_t *env, hub_batch_proof_t *proof)
{
    const Lth__V1__BatchProof *bp = env->batch_proof;
    if (bp->n_path > HUB_BATCH_MAX_PATH)
        return HUB_EINVAL;
    proof->leaf_index = bp->leaf_index;
    proof->leaf_count = bp->leaf_count;
    proof->path_len = bp->n_path;
    for (size_t i = 0; i < bp->n_path; i++) {
        if (bp->path[i].len != HUB_DIGEST_LEN)
            return HUB_EINVAL;
        memcpy(proof->path[i], bp->path[i].data, HUB_DIGEST_LEN);
    }
    return 0;
}

int hub_envelope_verify_cached(const hub_envelope_t *env,
                               const uint8_t sign_public[HUB_SIGN_PUBLIC_LEN],
                               hub_sigcache_t *cache)
{
    if (!env || !sign_public)
        return HUB_EINVAL;
    uint8_t digest[HUB_DIGEST_LEN];
    int rc = hub_envelope_digest(env, digest);
    return rc != 0 ? rc : hub_envelope_verify_digest(env, digest, sign_public, cache);
}

int hub_envelope_verify_out(const hub_envelope_t *env,
                            const uint8_t sign_public[HUB_SIGN_PUBLIC_LEN],
                            hub_sigcache_t *cache, uint8_t digest_out[HUB_DIGEST_LEN])
{
    if (!env || !sign_public || !digest_out)
        return HUB_EINVAL;
    int rc = hub_envelope_digest(env, digest_out);
    return rc != 0 ? rc : hub_envelope_verify_digest(env, digest_out, sign_public, cache);
}

int hub_envelope_verify_digest(const hub_envelope_t *env, const uint8_t digest[HUB_DIGEST_LEN],
                               const uint8_t sign_public[HUB_SIGN_PUBLIC_LEN],
                               hub_sigcache_t *cache)
{
    if (!env || !digest || !sign_public)
        return HUB_EINVAL;
    if (!env->signature.data || env->signature.len != HUB_SIGNATURE_LEN)
        return HUB_EINVAL;
    if (sodium_init() < 0)
        return HUB_ECRYPTO;
    int rc;
    if (!env->batch_proof) {
        if (crypto_sign_verify_detached(env->signature.data, digest, HUB_DIGEST_LEN,
                                        sign_public) != 0)
            return HUB_ECRYPTO;
        return 0;
    }
    hub_batch_proof_t proof;
    uint8_t root[HUB_DIGEST_LEN];
    rc = hub__proof_from_env(env, &proof);
    if (rc == 0)
        rc = hub__root_from_proof(digest, &proof, root, cache);
    if (rc != 0)
        return rc;
    for (size_t i = 0; cache && i < HUB_SIGCACHE_SLOTS; i++) {
        if (cache->slot[i].used && cache->slot[i].count == proof.leaf_count &&
            !memcmp(cache->slot[i].root, root, HUB_DIGEST_LEN) &&
            !memcmp(cache->slot[i].key, sign_public, HUB_SIGN_PUBLIC_LEN) &&
            !memcmp(cache->slot[i].sig, env->signature.data, HUB_SIGNATURE_LEN)) {
            cache->hits++;
            return 0;
        }
    }
    uint8_t msg[HUB_BATCH_MSG_LEN];
    hub__batch_message(proof.leaf_count, root, msg);
    if (cache)
        cache->verifies++;
    if (crypto_sign_verify_detached(env->signature.data, msg, sizeof msg, sign_public) != 0)
        return HUB_ECRYPTO;
    if (cache) {
        unsigned k = cache->next++ % HUB_SIGCACHE_SLOTS;
        memcpy(cache->slot[k].key, sign_public, HUB_SIGN_PUBLIC_LEN);
        memcpy(cache->slot[k].root, root, HUB_DIGEST_LEN);
        memcpy(cache->slot[k].sig, env->signature.data, HUB_SIGNATURE_LEN);
        cache->slot[k].count = proof.leaf_count;
        cache->slot[k].used = 1;
    }
    return 0;
}

/* Packs fields 15 and 16 into out (room bytes; out may be NULL to size
 * them): the number of bytes they take, or 0 when room is short or the
 * proof is invalid. */
static size_t sign__pack_tail(uint8_t *out, size_t room, const uint8_t sig[HUB_SIGNATURE_LEN],
                              const hub_batch_proof_t *proof)
{
    if (!sig || (proof && proof->path_len > HUB_BATCH_MAX_PATH))
        return 0;
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    Lth__V1__BatchProof bp = LTH__V1__BATCH_PROOF__INIT;
    ProtobufCBinaryData path[HUB_BATCH_MAX_PATH];
    env.signature.data = (uint8_t *)sig;
    env.signature.len = HUB_SIGNATURE_LEN;
    if (proof) {
        bp.leaf_index = proof->leaf_index;
        bp.leaf_count = proof->leaf_count;
        for (size_t i = 0; i < proof->path_len; i++) {
            path[i].data = (uint8_t *)proof->path[i];
            path[i].len = HUB_DIGEST_LEN;
        }
        bp.path = path;
        bp.n_path = proof->path_len;
        env.batch_proof = &bp;
    }
    /* Every other field is at its proto3 default, so only 15 and 16 are
     * written (an empty string is not encoded by protobuf-c). */
    size_t tail = lth__v1__envelope__get_packed_size(&env);
    if (out && tail <= room)
        lth__v1__envelope__pack(&env, out);
    return !out || tail <= room ? tail : 0;
}

int hub_envelope_append_signature(uint8_t **bytes, size_t *len,
                                  const uint8_t sig[HUB_SIGNATURE_LEN],
                                  const hub_batch_proof_t *proof)
{
    if (!bytes || !len || (!*bytes && *len))
        return HUB_EINVAL;
    size_t tail = sign__pack_tail(NULL, 0, sig, proof);
    if (tail == 0)
        return HUB_EINVAL;
    uint8_t *grown = realloc(*bytes, *len + tail);
    if (!grown)
        return HUB_ENOMEM;
    sign__pack_tail(grown + *len, tail, sig, proof);
    *bytes = grown;
    *len += tail;
    return 0;
}

size_t hub_envelope_pack_signature(uint8_t *out, size_t room,
                                   const uint8_t sig[HUB_SIGNATURE_LEN],
                                   const hub_batch_proof_t *proof)
{
    return out ? sign__pack_tail(out, room, sig, proof) : 0;
}
