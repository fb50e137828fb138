/* hub_sign — the canonical digest of an envelope and its Ed25519 signature.
 *
 * A sender signs the digest of its envelope with its Ed25519 secret key; the
 * hub, and again the receiver, verify it with the sender's public key (from
 * the member's .pub file). The digest is SHA-256 (libsodium's
 * crypto_hash_sha256) over a canonical byte string, not over the protobuf
 * encoding, so that it does not depend on how an encoder orders fields,
 * packs integers or omits defaults. A client in any language reproduces it
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
 *   - signature (field 15) is not part of the digest, nor are fields this
 *     version of the schema does not know. A new field means a new prefix
 *     ("LTH-ENVELOPE-V2"), never a silent change to V1.
 *
 * The signature is Ed25519 (libsodium crypto_sign_detached, 64 bytes) over
 * the 32 digest bytes, and travels in the envelope's signature field.
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

/* Checks env->signature against env's digest and the sender's public key.
 * Returns 0, HUB_EINVAL (no signature, or not 64 bytes) or HUB_ECRYPTO (the
 * signature does not match this envelope and key). */
int hub_envelope_verify(const hub_envelope_t *env, const uint8_t sign_public[HUB_SIGN_PUBLIC_LEN]);

#endif
