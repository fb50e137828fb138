/* hub_sha256 — SHA-256 for the hot paths (envelope digests, batch proofs,
 * the audit chain and payload hashes).
 *
 * OpenSSL's implementation uses the CPU's SHA extensions where it has them
 * (about 1.1 GB/s on the project's reference machine, against ~0.2 GB/s for
 * libsodium 1.0.18's portable code): a 1 KiB envelope is hashed up to three
 * times on the full path, so this is most of the cost of a signature check
 * once Ed25519 is amortised over a batch.
 *
 * It is OpenSSL's low-level SHA256_* interface, not EVP: that one keeps no
 * per-thread state (EVP's fetch and error queue allocate per thread, which
 * the hub's worker threads would never free) and does no allocation. Any
 * thread; no initialisation needed. */
#ifndef HUB_SHA256_H
#define HUB_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define HUB_SHA256_LEN 32

typedef struct {
    /* Opaque storage for OpenSSL's SHA256_CTX (checked at compile time in
     * hub_sha256.c), so that users need not include OpenSSL headers. */
    _Alignas(8) unsigned char opaque[128];
} hub_sha256_t;

void hub_sha256_init(hub_sha256_t *st);
void hub_sha256_update(hub_sha256_t *st, const void *data, size_t len);
void hub_sha256_final(hub_sha256_t *st, uint8_t out[HUB_SHA256_LEN]);
/* One call: out = SHA-256(data[0..len)). */
void hub_sha256(const void *data, size_t len, uint8_t out[HUB_SHA256_LEN]);

#endif
