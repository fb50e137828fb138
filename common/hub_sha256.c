/* The SHA256_* functions are deprecated in OpenSSL 3.0 in favour of EVP,
 * which this file avoids on purpose (hub_sha256.h says why). They remain
 * in 3.x and use the same assembly as EVP. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "hub_sha256.h"

#include <openssl/sha.h>
#include <string.h>

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((hub_sha256_t *)0)->opaque),
               "hub_sha256_t is too small for SHA256_CTX");

void hub_sha256_init(hub_sha256_t *st)
{
    SHA256_Init((SHA256_CTX *)(void *)st->opaque);
}

void hub_sha256_update(hub_sha256_t *st, const void *data, size_t len)
{
    if (len)
        SHA256_Update((SHA256_CTX *)(void *)st->opaque, data, len);
}

void hub_sha256_final(hub_sha256_t *st, uint8_t out[HUB_SHA256_LEN])
{
    SHA256_Final(out, (SHA256_CTX *)(void *)st->opaque);
    memset(st, 0, sizeof *st);
}

void hub_sha256(const void *data, size_t len, uint8_t out[HUB_SHA256_LEN])
{
    hub_sha256_t st;
    hub_sha256_init(&st);
    hub_sha256_update(&st, data, len);
    hub_sha256_final(&st, out);
}
