/* hub_sign — the canonical digest of an envelope and its Ed25519 signature.
 *
 * A sender signs the digest of its envelope with its Ed25519 secret key; the
 * hub, and again the receiver, verify it with the sender's public key (from
 * the member's .pub file). The digest is SHA-256 (hub_sha256.h) over a
 * canonical byte string, not over the protobuf encoding, so that it does
 * not depend on how an encoder orders fields, packs integers or omits
 * defaults. A client in any language reproduces it
 * from the decoded fields:
 *
 *   digest = SHA-256( "LTH-ENVELOPE-V1" 0x00                  16 bytes
 *                     0x01 u32(len) message_id                 (string)
 *                     0x02 u32(len) correlation_id             (string)
 *                     0x03 u32(len) sender                     (string)
 *                     0x04 u32(len) receiver                   (string)
 *                     0x05 u32(len) service                    (string)
 *                     0x06 u64(created_at_us)
 *                     0x07 u32(ttl_ms)
 *                     0x08 u32(len) content_type               (string)
 *                     0x09 u32(len) payload                    (bytes)
 *                     0x0a u32(kind)                           (enum value)
 *                     0x0b u32(delivery) )                     (enum value)
 *
 *   - Each field starts with one byte holding its field number in
 *     proto/lth.proto; fields come in field-number order, and every field is
 *     always present: an unset string or bytes field is length 0, an unset
 *     number is 0.
 *   - u32 and u64 are unsigned big-endian integers of 4 and 8 bytes. A
 *     string or bytes field is u32(length in bytes) followed by exactly
 *     those bytes: strings as UTF-8, without a terminating NUL.
 *   - An enum is its numeric value as a 32-bit two's-complement integer.
 *   - signature (field 15) and batch_proof (16) are not part of the
 *     digest, nor are fields this version of the schema does not know.
 *     A new field means a new prefix ("LTH-ENVELOPE-V2"), never a silent
 *     change to V1.
 *
 * The signature is Ed25519 (libsodium crypto_sign_detached, 64 bytes) over
 * the 32 digest bytes, and travels in the envelope's signature field; or,
 * for a batch of envelopes signed at once, over the batch's Merkle root
 * (below). signature (15) and batch_proof (16) are not part of the digest.
 *
 * Ownership: hub_envelope_sign() points env->signature at the caller's
 * sig_out buffer, which must outlive every use of env. Use it on envelopes the
 * caller built (LTH__V1__ENVELOPE__INIT), not on one from
 * hub_envelope_decode(): protobuf-c would later free sig_out.
 *
 * Errors: HUB_EINVAL for a NULL argument or a field longer than 4 GiB,
 * HUB_EINVAL from hub_envelope_verify() when the signature is missing or not
 * 64 bytes, HUB_ECRYPTO when it does not verify (or libsodium fails).
 */
#ifndef HUB_SIGN_H
#define HUB_SIGN_H

#include "hub_wire.h"

#include <stdint.h>

#define HUB_ENVELOPE_DIGEST_DOMAIN "LTH-ENVELOPE-V1" /* followed by one 0x00 byte */
#define HUB_DIGEST_LEN 32
#define HUB_SIGNATURE_LEN 64
#define HUB_SIGN_PUBLIC_LEN 32
#define HUB_SIGN_SECRET_LEN 64

/* Writes the canonical digest of env (all fields but signature) into out. */
int hub_envelope_digest(const hub_envelope_t *env, uint8_t out[HUB_DIGEST_LEN]);

/* Signs env's digest with an Ed25519 secret key (libsodium layout), writes
 * the signature into sig_out and sets env->signature to {sig_out, 64}. */
int hub_envelope_sign(hub_envelope_t *env, const uint8_t sign_secret[HUB_SIGN_SECRET_LEN],
                      uint8_t sig_out[HUB_SIGNATURE_LEN]);

/* Checks env->signature against env's digest and the sender's public key
 * (for a batch-signed envelope: against the root its batch_proof leads to).
 * Returns 0, HUB_EINVAL (no signature, not 64 bytes, or a batch_proof that
 * is not well formed) or HUB_ECRYPTO (the signature does not match this
 * envelope and key). */
int hub_envelope_verify(const hub_envelope_t *env, const uint8_t sign_public[HUB_SIGN_PUBLIC_LEN]);

/* ---- Batch signatures --------------------------------------------------
 *
 * One Ed25519 signature may cover many envelopes: the sender builds the
 * Merkle tree of RFC 9162 (section 2.1.1, SHA-256) whose leaves are the
 * envelopes' 32-byte digests (leaf hash = SHA-256(0x00 || digest), node
 * hash = SHA-256(0x01 || left || right)), and signs
 *
 *   "LTH-BATCH-V1" 0x00 || u32(leaf_count) || root            (49 bytes)
 *
 * Each envelope then carries that signature (field 15) and a BatchProof
 * (field 16): its leaf index, the leaf count and its RFC 9162 inclusion path
 * (section 2.1.3.1, leaf upwards). A verifier recomputes the root from the
 * envelope's own digest and the path (RFC 9162 section 2.1.3.2) and checks
 * the signature over the 49 bytes above. The message a batch signature
 * signs (49 bytes, domain-prefixed) can never be mistaken for a single
 * envelope's 32-byte digest, and each envelope stays verifiable on its own:
 * the receiver, an auditor or a court needs nothing but the envelope.
 * A verifier that sees many envelopes of one batch verifies the signature
 * once (hub_sigcache_t), which is what makes this worth doing: Ed25519
 * verification is ~75 µs of CPU, the path ~3 µs. */
#define HUB_BATCH_DOMAIN "LTH-BATCH-V1" /* followed by one 0x00 byte */
#define HUB_BATCH_MAX_LEAVES 1024
#define HUB_BATCH_MAX_PATH 10 /* log2(HUB_BATCH_MAX_LEAVES) */
#define HUB_BATCH_MSG_LEN 49

typedef struct {
    uint32_t leaf_index;
    uint32_t leaf_count;
    size_t path_len;
    uint8_t path[HUB_BATCH_MAX_PATH][HUB_DIGEST_LEN];
} hub_batch_proof_t;

/* Signs the n envelope digests (2 <= n <= HUB_BATCH_MAX_LEAVES) with one
 * signature: writes it to sig_out and each digest's proof to proofs[i].
 * Returns 0, HUB_EINVAL or HUB_ECRYPTO. */
int hub_batch_sign(const uint8_t (*digests)[HUB_DIGEST_LEN], size_t n,
                   const uint8_t sign_secret[HUB_SIGN_SECRET_LEN],
                   uint8_t sig_out[HUB_SIGNATURE_LEN], hub_batch_proof_t *proofs);

/* The root a digest and its proof lead to; HUB_EINVAL when the proof is not
 * well formed (index >= count, count outside 2..1024, wrong path length). */
int hub_batch_root_from_proof(const uint8_t digest[HUB_DIGEST_LEN],
                              const hub_batch_proof_t *proof, uint8_t root[HUB_DIGEST_LEN]);

/* The Merkle tree head of n digests (RFC 9162 MTH); for tests and tools. */
int hub_batch_root(const uint8_t (*digests)[HUB_DIGEST_LEN], size_t n,
                   uint8_t root[HUB_DIGEST_LEN]);

/* Appends fields 15 (signature) and 16 (batch_proof; omitted when proof is
 * NULL) to an envelope encoded without them, growing the malloc'ed buffer
 * *bytes (of *len bytes) with realloc: protobuf parsers accept fields in any
 * order, and these two come last in field-number order anyway. On error
 * (HUB_EINVAL, HUB_ENOMEM) *bytes and *len are unchanged. */
int hub_envelope_append_signature(uint8_t **bytes, size_t *len,
                                  const uint8_t sig[HUB_SIGNATURE_LEN],
                                  const hub_batch_proof_t *proof);
/* The same two fields packed into out, which has room bytes (the room an
 * encoder left after an envelope): the bytes written, or 0 when they do not
 * fit or the proof is invalid (out is then unchanged). No allocation. */
size_t hub_envelope_pack_signature(uint8_t *out, size_t room,
                                   const uint8_t sig[HUB_SIGNATURE_LEN],
                                   const hub_batch_proof_t *proof);

/* A small cache of batch signatures already verified, so that the envelopes
 * of one batch cost one Ed25519 verification between them. Not thread-safe:
 * one per thread. A hit requires the same key, leaf count, root AND the
 * same 64 signature bytes as the verified entry. */
#define HUB_SIGCACHE_SLOTS 32
/* Inner nodes of batch trees remembered: the envelopes of one batch share
 * the upper part of their paths, so that each node of a batch's tree is
 * hashed about once instead of once per envelope below it. A node is a
 * pure function of its two children: a remembered one is returned only for
 * the very same 64 bytes, so that every proof is still checked in full
 * (same verdicts); a miss only costs the hash. */
#define HUB_SIGCACHE_NODES 512
typedef struct {
    struct {
        uint8_t key[HUB_SIGN_PUBLIC_LEN];
        uint8_t root[HUB_DIGEST_LEN];
        uint8_t sig[HUB_SIGNATURE_LEN];
        uint32_t count;
        int used;
    } slot[HUB_SIGCACHE_SLOTS];
    unsigned next;
    uint64_t hits, verifies; /* for tests and metrics */
    struct {
        uint8_t children[2 * HUB_DIGEST_LEN]; /* left, right */
        uint8_t node[HUB_DIGEST_LEN];         /* SHA-256(0x01 || left || right) */
        uint8_t used;
    } nodes[HUB_SIGCACHE_NODES];
    uint64_t node_hits; /* for tests */
} hub_sigcache_t;

/* hub_envelope_verify() with a cache for batch signatures (cache may be
 * NULL: then every signature is verified). Single signatures are always
 * verified. */
int hub_envelope_verify_cached(const hub_envelope_t *env,
                               const uint8_t sign_public[HUB_SIGN_PUBLIC_LEN],
                               hub_sigcache_t *cache);
/* hub_envelope_verify_cached() with env's digest already computed (by
 * hub_envelope_digest(), of this very env), for a caller that needs the
 * digest too: the envelope is hashed once. */
int hub_envelope_verify_digest(const hub_envelope_t *env, const uint8_t digest[HUB_DIGEST_LEN],
                               const uint8_t sign_public[HUB_SIGN_PUBLIC_LEN],
                               hub_sigcache_t *cache);
/* hub_envelope_verify_cached(), also writing env's digest to digest_out as
 * soon as it is computed, whatever the verdict: the hub records it in the
 * audit log without hashing the envelope twice. */
int hub_envelope_verify_out(const hub_envelope_t *env,
                            const uint8_t sign_public[HUB_SIGN_PUBLIC_LEN],
                            hub_sigcache_t *cache, uint8_t digest_out[HUB_DIGEST_LEN]);

#endif
