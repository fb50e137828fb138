/* fuzz_frame — one ZeroMQ message as the hub receives it from a member (and
 * as a member receives one from the hub): hub_frame_decode(), then every
 * envelope a batch or a deliveries body carries, through
 * hub_envelope_decode() and hub_envelope_check(), then the frame encoded
 * again and decoded once more (what the hub does with the bodies it sends).
 *
 * The two in-place readers of frames are held to protobuf-c on the same
 * bytes: the SDK's hub_frame_view() (Deliveries) and hubd's view__batch()
 * (Batch).
 *
 * Properties: decoding fails only with HUB_EPARSE or HUB_EINVAL and then
 * leaves no frame; a check failure names a problem; a decoded frame encodes,
 * and, unless protobuf-c kept unknown fields in it (see fuzz_util.h), the
 * encoding decodes to a frame with the same body. hub_frame_view() succeeds
 * exactly when hub_frame_decode() does, with a frame that packs to the same
 * bytes; view__batch() reads a frame only where protobuf-c reads a Batch
 * frame, with the same version and the same envelope bytes.
 */
#include "fuzz_util.h"
#include "hub_arena.h"
#include "hub_core_internal.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_wire.h"

#include <stdlib.h>
#include <string.h>

static void fuzz__envelope_bytes(const ProtobufCBinaryData *bytes)
{
    hub_envelope_t *env = NULL;
    int rc = hub_envelope_decode(bytes->data, bytes->len, &env);
    if (rc != 0) {
        FUZZ_CHECK(rc == HUB_EPARSE && env == NULL);
        return;
    }
    const char *problem = NULL;
    rc = hub_envelope_check(env, &problem);
    FUZZ_CHECK(rc == 0 || (rc == HUB_EINVAL && problem && *problem));
    hub_envelope_free(&env);
    FUZZ_CHECK(env == NULL);
}

static void fuzz__body(const hub_frame_t *frame)
{
    switch (frame->body_case) {
    case LTH__V1__FRAME__BODY_HELLO:
        (void)hub_member_id_problem(frame->hello->member_id);
        for (size_t i = 0; i < frame->hello->n_services; i++)
            (void)hub_service_valid(frame->hello->services[i]);
        break;
    case LTH__V1__FRAME__BODY_WELCOME:
        (void)hub_member_id_valid(frame->welcome->member_id);
        break;
    case LTH__V1__FRAME__BODY_BATCH:
        for (size_t i = 0; i < frame->batch->n_envelopes; i++)
            fuzz__envelope_bytes(&frame->batch->envelopes[i]);
        break;
    case LTH__V1__FRAME__BODY_RECEIPTS:
        for (size_t i = 0; i < frame->receipts->n_acks; i++)
            (void)hub_uuid_valid(frame->receipts->acks[i]->message_id);
        for (size_t i = 0; i < frame->receipts->n_nacks; i++) {
            const char *name = hub_nack_code_name(frame->receipts->nacks[i]->code);
            FUZZ_CHECK(name && *name);
        }
        break;
    case LTH__V1__FRAME__BODY_DELIVERIES:
        for (size_t i = 0; i < frame->deliveries->n_items; i++)
            fuzz__envelope_bytes(&frame->deliveries->items[i]->envelope);
        break;
    case LTH__V1__FRAME__BODY_ERROR: {
        const char *name = hub_nack_code_name(frame->error->code);
        FUZZ_CHECK(name && *name);
        break;
    }
    default:
        break;
    }
}

/* The packed bytes of a frame (malloc'ed, *n long). */
static uint8_t *fuzz__packed(const hub_frame_t *frame, size_t *n)
{
    *n = lth__v1__frame__get_packed_size(frame);
    uint8_t *buf = malloc(*n ? *n : 1);
    FUZZ_CHECK(buf && lth__v1__frame__pack(frame, buf) == *n);
    return buf;
}

/* ref: what hub_frame_decode() read from data, NULL when it refused. */
static void fuzz__views_match(const uint8_t *data, size_t size, const hub_frame_t *ref)
{
    hub_arena_t *arena = fuzz_arena();
    hub_frame_t *view = NULL;
    int rc = hub_frame_view(arena, data, size, &view);
    FUZZ_CHECK((rc == 0) == (ref != NULL));
    if (rc == 0) {
        size_t n = 0, m = 0;
        uint8_t *a = fuzz__packed(view, &n), *b = fuzz__packed(ref, &m);
        FUZZ_CHECK(n == m && memcmp(a, b, n) == 0);
        free(a);
        free(b);
    }

    uint32_t version = 0;
    Lth__V1__Batch batch;
    if (!view__batch(fuzz_arena(), data, size, &version, &batch))
        return;
    FUZZ_CHECK(ref != NULL && ref->body_case == LTH__V1__FRAME__BODY_BATCH);
    FUZZ_CHECK(version == ref->protocol_version);
    FUZZ_CHECK(batch.n_envelopes == ref->batch->n_envelopes);
    for (size_t i = 0; i < batch.n_envelopes; i++) {
        const ProtobufCBinaryData *x = &batch.envelopes[i], *y = &ref->batch->envelopes[i];
        FUZZ_CHECK(x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hub_frame_t *frame = NULL;
    int rc = hub_frame_decode(data, size, &frame);
    fuzz__views_match(data, size, rc == 0 ? frame : NULL);
    if (rc != 0) {
        FUZZ_CHECK((rc == HUB_EPARSE || rc == HUB_EINVAL) && frame == NULL);
        return 0;
    }
    FUZZ_CHECK(frame != NULL && frame->body_case != LTH__V1__FRAME__BODY__NOT_SET);
    fuzz__body(frame);

    uint8_t *buf = NULL;
    size_t len = 0;
    FUZZ_CHECK(hub_frame_encode(frame, &buf, &len) == 0);
    hub_frame_t *again = NULL;
    rc = hub_frame_decode(buf, len, &again);
    if (rc == 0) {
        FUZZ_CHECK(again->body_case == frame->body_case);
        FUZZ_CHECK(again->protocol_version == HUB_PROTOCOL_VERSION);
        hub_frame_free(&again);
    } else {
        FUZZ_CHECK(fuzz_pb_has_unknown(&frame->base));
    }
    free(buf);
    hub_frame_free(&frame);
    FUZZ_CHECK(frame == NULL);
    return 0;
}
