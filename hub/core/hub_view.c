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
        if (!(k = hub_pb_head(p, end, &key)))
            return false;
        p += k;
        if (key == ((1u << 3) | 0u) && !have_version) {
            if (!(k = hub_pb_varint(p, end, &v)) || k > 5 || v > UINT32_MAX)
                return false;
            p += k;
            *version = (uint32_t)v;
            have_version = true;
        } else if (key == ((4u << 3) | 2u) && !body) {
            if (!(k = hub_pb_head(p, end, &v)) || v > (uint64_t)(end - p - k))
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
    /* Each item's head is the first read of bytes that libzmq's I/O thread
     * has just decrypted on the other core, and only that head says where
     * the next item starts: one cache miss after another. Guessing that
     * the next items are as long as this one (clients send envelopes of
     * similar sizes; a wrong guess costs an idle prefetch), the first lines
     * of the item four ahead are fetched meanwhile, and admission later
     * finds each envelope's fields in the cache. */
    size_t n = 0;
    for (const uint8_t *q = body; q < body_end; n++) {
        const uint8_t *item = q;
        if (!(k = hub_pb_head(q, body_end, &key)) || key != ((1u << 3) | 2u))
            return false;
        q += k;
        if (!(k = hub_pb_head(q, body_end, &v)) || v > (uint64_t)(body_end - q - k))
            return false;
        q += k + v;
        size_t span = (size_t)(q - item);
        if (span * 4 < (size_t)(body_end - q)) {
            const uint8_t *ahead = q + span * 3;
            for (size_t line = 0; line < 256 && line < span; line += 64)
                __builtin_prefetch(ahead + line);
        }
    }
    ProtobufCBinaryData *items = n ? hub_arena_alloc(arena, n * sizeof *items) : NULL;
    if (n && !items)
        return false;
    size_t i = 0;
    for (const uint8_t *q = body; q < body_end; i++) {
        q += hub_pb_varint(q, body_end, &key);
        q += hub_pb_varint(q, body_end, &v);
        items[i].len = (size_t)v;
        items[i].data = v ? (uint8_t *)q : NULL; /* as protobuf-c leaves an empty one */
        q += v;
    }
    lth__v1__batch__init(batch);
    batch->n_envelopes = n;
    batch->envelopes = items;
    return true;
}
