#include "hub_sign.h"
#include "hub_error.h"

#include <sodium.h>
#include <string.h>

static void hub__put_u32(crypto_hash_sha256_state *st, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    crypto_hash_sha256_update(st, b, sizeof b);
}

static void hub__put_u64(crypto_hash_sha256_state *st, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    crypto_hash_sha256_update(st, b, sizeof b);
}

static void hub__put_tag(crypto_hash_sha256_state *st, uint8_t field_number)
{
    crypto_hash_sha256_update(st, &field_number, 1);
}

/* A length-prefixed field; a NULL pointer is the empty value (protobuf-c
 * uses NULL for unset bytes, and hand-built envelopes may do so for strings). */
static int hub__put_bytes(crypto_hash_sha256_state *st, uint8_t field_number, const void *data,
                          size_t len)
{
    if (len > UINT32_MAX)
        return HUB_EINVAL;
    hub__put_tag(st, field_number);
    hub__put_u32(st, (uint32_t)len);
    if (len)
        crypto_hash_sha256_update(st, data, len);
    return 0;
}

static int hub__put_string(crypto_hash_sha256_state *st, uint8_t field_number, const char *s)
{
    return hub__put_bytes(st, field_number, s, s ? strlen(s) : 0);
}

int hub_envelope_digest(const hub_envelope_t *env, uint8_t out[HUB_DIGEST_LEN])
{
    if (!env || !out)
        return HUB_EINVAL;
    static const char domain[] = HUB_ENVELOPE_DIGEST_DOMAIN; /* sizeof includes the NUL */
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)domain, sizeof domain);
    int rc = 0;
    rc |= hub__put_string(&st, 1, env->message_id);
    rc |= hub__put_string(&st, 2, env->correlation_id);
    rc |= hub__put_string(&st, 3, env->sender);
    rc |= hub__put_string(&st, 4, env->receiver);
    rc |= hub__put_string(&st, 5, env->service);
    hub__put_tag(&st, 6);
    hub__put_u64(&st, env->created_at_us);
    hub__put_tag(&st, 7);
    hub__put_u32(&st, env->ttl_ms);
    rc |= hub__put_string(&st, 8, env->content_type);
    rc |= hub__put_bytes(&st, 9, env->payload.data, env->payload.len);
    hub__put_tag(&st, 10);
    hub__put_u32(&st, (uint32_t)(int32_t)env->kind);
    hub__put_tag(&st, 11);
    hub__put_u32(&st, (uint32_t)(int32_t)env->delivery);
    crypto_hash_sha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
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
    if (!env || !sign_public)
        return HUB_EINVAL;
    if (!env->signature.data || env->signature.len != HUB_SIGNATURE_LEN)
        return HUB_EINVAL;
    if (sodium_init() < 0)
        return HUB_ECRYPTO;
    uint8_t digest[HUB_DIGEST_LEN];
    int rc = hub_envelope_digest(env, digest);
    if (rc != 0)
        return rc;
    if (crypto_sign_verify_detached(env->signature.data, digest, sizeof digest, sign_public) != 0)
        return HUB_ECRYPTO;
    return 0;
}
