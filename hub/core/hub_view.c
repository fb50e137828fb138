/* hub_view.c — frames and envelopes read in place, on the admission path.
 *
 * Contract: each reader takes the plain shape clients encode and gives
 * what protobuf-c would give for it, pointing into the received bytes
 * where protobuf-c would copy them (the hot path reads every envelope, and
 * protobuf-c copies every bytes field); for anything else it gives up
 * (NULL / false), and the caller decodes with protobuf-c, with the same
 * outcome and the same refusals as always. tests/unit/test_admit.c and
 * tests/fuzz/fuzz_envelope.c hold the envelope reader to protobuf-c.
 *
 * Private to hub/core.
 */
#include "hub_core_internal.h"

#include <stdint.h>
#include <string.h>

/* A base-128 varint at p (before end): the bytes it took, 0 when cut
 * short or longer than ten bytes. */
static size_t view__varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

/* A string field of the envelope, NUL-terminated in the arena: only
 * printable ASCII (what ids, services and content types are made of), so
 * that nothing protobuf-c would read differently is read here. */
static char *view__string(hub_arena_t *arena, const uint8_t *p, size_t n)
{
    /* Eight bytes at a time: a byte below 0x20, or above 0x7e (Bit
     * Twiddling Hacks' hasless and hasmore), sets its top bit here. */
    const uint64_t ones = 0x0101010101010101ull, tops = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        if ((((w - ones * 0x20) & ~w) | ((w + ones * (127 - 0x7e)) | w)) & tops)
            return NULL;
    }
    for (; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return NULL;
    char *s = hub_arena_alloc(arena, n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* An envelope decoded in place: payload and signature point into bytes
 * (which outlive the decoded envelope), where protobuf-c copies them; the
 * short strings are copied into the arena. Only the plain shape SDKs
 * encode is read so: each field of lth.v1.Envelope at most once, with its
 * own wire type, varints in their type's range, strings of printable
 * ASCII; anything else returns NULL, and the caller decodes with
 * protobuf-c as before (same result, same refusals). The batch proof, a
 * small nested message, is unpacked by protobuf-c into the arena. */
hub_envelope_t *view__envelope(hub_arena_t *arena, const uint8_t *bytes, size_t len)
{
    hub_envelope_t *env = hub_arena_alloc(arena, sizeof *env);
    if (!env || !bytes)
        return NULL;
    lth__v1__envelope__init(env);
    const uint8_t *p = bytes, *end = bytes + len;
    uint32_t seen = 0;
    while (p < end) {
        uint64_t key, v;
        size_t k = view__varint(p, end, &key);
        if (!k || key > (31u << 3))
            return NULL;
        p += k;
        uint32_t field = (uint32_t)(key >> 3), wire = (uint32_t)(key & 7);
        if (field == 0 || (seen & (1u << field)))
            return NULL;
        seen |= 1u << field;
        bool is_len = field <= 5 || field == 8 || field == 9 || field == 15 || field == 16;
        bool is_varint = field == 6 || field == 7 || field == 10 || field == 11;
        if (!(is_len && wire == 2) && !(is_varint && wire == 0))
            return NULL;
        if (!(k = view__varint(p, end, &v)))
            return NULL;
        p += k;
        if (is_varint) {
            /* created_at_us: 63 bits at most; the others 32 (enums 31). */
            uint64_t max = field == 6 ? INT64_MAX : field == 7 ? UINT32_MAX : INT32_MAX;
            if (v > max || k > (field == 6 ? 9u : 5u))
                return NULL;
            if (field == 6)
                env->created_at_us = v;
            else if (field == 7)
                env->ttl_ms = (uint32_t)v;
            else if (field == 10)
                env->kind = (Lth__V1__Kind)v;
            else
                env->delivery = (Lth__V1__Delivery)v;
            continue;
        }
        if (v > (uint64_t)(end - p))
            return NULL;
        const uint8_t *value = p;
        size_t n = (size_t)v;
        p += n;
        if (field == 9 || field == 15) {
            ProtobufCBinaryData *b = field == 9 ? &env->payload : &env->signature;
            b->data = n ? (uint8_t *)value : NULL; /* as protobuf-c leaves an empty one */
            b->len = n;
        } else if (field == 16) {
            env->batch_proof = lth__v1__batch_proof__unpack(hub_arena_pb(arena), n, value);
            if (!env->batch_proof)
                return NULL;
        } else {
            char *str = view__string(arena, value, n);
            if (!str)
                return NULL;
            char **slot[] = {NULL,
                             &env->message_id,
                             &env->correlation_id,
                             &env->sender,
                             &env->receiver,
                             &env->service,
                             NULL,
                             NULL,
                             &env->content_type};
            *slot[field] = str; /* field: 1-5 or 8 here */
        }
    }
    return env;
}

/* A Batch frame read in place: each envelope points into the received
 * message, where protobuf-c would copy every one of them (a bytes field is
 * always copied) before admission decodes it. Only the shape clients
 * encode is read so: protocol_version (field 1, a varint of at most 32
 * bits) and batch (field 4), each at most once, and a Batch of envelopes
 * (field 1) only. Anything else (another body, an unknown or repeated
 * field, an odd varint) returns false, and the frame goes to protobuf-c as
 * before, with the same outcome as always. The item array is in the
 * arena. */
bool view__batch(hub_arena_t *arena, const uint8_t *p, size_t len, uint32_t *version,
                 Lth__V1__Batch *batch)
{
    const uint8_t *end = p + len, *body = NULL, *body_end = NULL;
    bool have_version = false;
    uint64_t key, v;
    size_t k;
    *version = 0;
    while (p < end) {
        if (!(k = view__varint(p, end, &key)))
            return false;
        p += k;
        if (key == ((1u << 3) | 0u) && !have_version) {
            if (!(k = view__varint(p, end, &v)) || k > 5 || v > UINT32_MAX)
                return false;
            p += k;
            *version = (uint32_t)v;
            have_version = true;
        } else if (key == ((4u << 3) | 2u) && !body) {
            if (!(k = view__varint(p, end, &v)) || v > (uint64_t)(end - p - k))
                return false;
            body = p + k;
            body_end = body + v;
            p = body_end;
        } else {
            return false;
        }
    }
    if (!body)
        return false;
    size_t n = 0;
    for (const uint8_t *q = body; q < body_end; n++) {
        if (!(k = view__varint(q, body_end, &key)) || key != ((1u << 3) | 2u))
            return false;
        q += k;
        if (!(k = view__varint(q, body_end, &v)) || v > (uint64_t)(body_end - q - k))
            return false;
        q += k + v;
    }
    ProtobufCBinaryData *items = n ? hub_arena_alloc(arena, n * sizeof *items) : NULL;
    if (n && !items)
        return false;
    size_t i = 0;
    for (const uint8_t *q = body; q < body_end; i++) {
        q += view__varint(q, body_end, &key);
        q += view__varint(q, body_end, &v);
        items[i].len = (size_t)v;
        items[i].data = v ? (uint8_t *)q : NULL; /* as protobuf-c leaves an empty one */
        q += v;
    }
    lth__v1__batch__init(batch);
    batch->n_envelopes = n;
    batch->envelopes = items;
    return true;
}
