/* fuzz_envelope — one encoded Envelope, as the hub and receivers decode it:
 * hub_envelope_decode(), hub_envelope_check(), hub_envelope_digest() and
 * hub_envelope_verify() with a fixed (fake) public key.
 *
 * Properties: decoding fails only with HUB_EPARSE; verify answers 0,
 * HUB_EINVAL when the signature is not 64 bytes or a batch proof is not
 * well formed (and for nothing else), or HUB_ECRYPTO; the
 * digest does not depend on the encoding (the envelope encoded again by
 * protobuf-c gives the same digest and the same verdict; protobuf-c may fail
 * to read back what it wrote only when it kept unknown fields); and any decoded
 * envelope, signed with the matching secret key (a single signature, its
 * batch proof dropped), verifies. hub_envelope_check_encoding() answers
 * every input with 0, HUB_EINVAL (naming the field that "appears twice") or
 * HUB_EPARSE; on a decoded envelope without unknown fields never
 * HUB_EPARSE, and protobuf-c's own encoding of it (each field once) always
 * passes. The hub's in-place reader on the admission path,
 * hub_envelope_view(), reads only what protobuf-c reads, and the same
 * envelope (both encoded again by protobuf-c give the same bytes); what it
 * reads without a batch proof passes hub_envelope_check_encoding(), which
 * admission then skips.
 */
#include "fuzz_util.h"
#include "hub_arena.h"
#include "hub_core_internal.h"
#include "hub_error.h"
#include "hub_sign.h"
#include "hub_wire.h"

#include <stdlib.h>
#include <string.h>

static uint8_t fuzz__pk[HUB_SIGN_PUBLIC_LEN];
static uint8_t fuzz__sk[HUB_SIGN_SECRET_LEN];

/* ref: what hub_envelope_decode() read from data, NULL when it refused. */
static void fuzz__view_matches(const uint8_t *data, size_t size, const hub_envelope_t *ref)
{
    hub_envelope_t *view = hub_envelope_view(fuzz_arena(), data, size);
    if (!view)
        return;
    FUZZ_CHECK(ref != NULL);
    size_t n = lth__v1__envelope__get_packed_size(view);
    FUZZ_CHECK(n == lth__v1__envelope__get_packed_size(ref));
    uint8_t *a = malloc(n ? n : 1), *b = malloc(n ? n : 1);
    FUZZ_CHECK(a && b);
    FUZZ_CHECK(lth__v1__envelope__pack(view, a) == n && lth__v1__envelope__pack(ref, b) == n);
    FUZZ_CHECK(memcmp(a, b, n) == 0);
    free(a);
    free(b);
    if (!view->batch_proof)
        FUZZ_CHECK(hub_envelope_check_encoding(data, size, NULL, 0) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        fuzz_sign_keys(fuzz__pk, fuzz__sk);
        ready = 1;
    }
    char why[HUB_ERRMSG_MAX];
    int twice = hub_envelope_check_encoding(data, size, why, sizeof why);
    FUZZ_CHECK(twice == 0 || twice == HUB_EPARSE ||
               (twice == HUB_EINVAL && strstr(why, "appears twice")));
    hub_envelope_t *env = NULL;
    int rc = hub_envelope_decode(data, size, &env);
    fuzz__view_matches(data, size, rc == 0 ? env : NULL);
    if (rc != 0) {
        FUZZ_CHECK(rc == HUB_EPARSE && env == NULL);
        return 0;
    }
    /* What the checker calls malformed protobuf-c kept as unknown fields,
     * or dropped: it skips a field numbered 0 (in the envelope or in its
     * batch proof) without keeping it, so the envelope packs shorter. */
    FUZZ_CHECK(twice != HUB_EPARSE || fuzz_pb_has_unknown(&env->base) ||
               protobuf_c_message_get_packed_size(&env->base) < size);
    const char *problem = NULL;
    rc = hub_envelope_check(env, &problem);
    FUZZ_CHECK(rc == 0 || (rc == HUB_EINVAL && problem && *problem));

    uint8_t digest[HUB_DIGEST_LEN];
    FUZZ_CHECK(hub_envelope_digest(env, digest) == 0);
    int verdict = hub_envelope_verify(env, fuzz__pk);
    bool sig_sized = env->signature.data && env->signature.len == HUB_SIGNATURE_LEN;
    if (!sig_sized)
        FUZZ_CHECK(verdict == HUB_EINVAL);
    else if (!env->batch_proof)
        FUZZ_CHECK(verdict == 0 || verdict == HUB_ECRYPTO);
    else
        FUZZ_CHECK(verdict == 0 || verdict == HUB_ECRYPTO || verdict == HUB_EINVAL);

    /* The same envelope as protobuf-c encodes it: same digest, same verdict. */
    size_t len = lth__v1__envelope__get_packed_size(env);
    uint8_t *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf != NULL);
    FUZZ_CHECK(lth__v1__envelope__pack(env, buf) == len);
    if (!fuzz_pb_has_unknown(&env->base))
        FUZZ_CHECK(hub_envelope_check_encoding(buf, len, why, sizeof why) == 0);
    hub_envelope_t *again = NULL;
    if (hub_envelope_decode(buf, len, &again) == 0) {
        uint8_t digest_again[HUB_DIGEST_LEN];
        FUZZ_CHECK(hub_envelope_digest(again, digest_again) == 0);
        FUZZ_CHECK(memcmp(digest, digest_again, sizeof digest) == 0);
        FUZZ_CHECK(hub_envelope_verify(again, fuzz__pk) == verdict);
        hub_envelope_free(&again);
    } else {
        FUZZ_CHECK(fuzz_pb_has_unknown(&env->base));
    }
    free(buf);

    /* Signed with the matching key, any decoded envelope verifies. The copy
     * shares env's strings; only its signature points at our buffer, and
     * the copy is never freed by protobuf-c. */
    hub_envelope_t copy = *env;
    copy.signature.data = NULL;
    copy.signature.len = 0;
    copy.batch_proof = NULL;
    uint8_t sig[HUB_SIGNATURE_LEN];
    FUZZ_CHECK(hub_envelope_sign(&copy, fuzz__sk, sig) == 0);
    FUZZ_CHECK(hub_envelope_verify(&copy, fuzz__pk) == 0);
    if (verdict == 0 && !env->batch_proof) /* Ed25519 is deterministic */
        FUZZ_CHECK(memcmp(env->signature.data, sig, sizeof sig) == 0);

    hub_envelope_free(&env);
    FUZZ_CHECK(env == NULL);
    return 0;
}
