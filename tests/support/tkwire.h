/* tkwire — protocol frames as the tests build them by hand: a Frame
 * around one body, and the list bodies (Batch, Deliveries, Receipts,
 * Settle) around the caller's arrays.
 *
 * Header-only (static inline), so that the programs without the Check
 * fixture use it too: the fuzz seed writer (tests/fuzz/make_seeds.c) and
 * the test-vector generator (tests/tools/gen_testvectors.c). Nothing is
 * copied or owned: a frame points at its body and a body at the arrays it
 * was given, all of which must outlive its encoding.
 */
#ifndef TKWIRE_H
#define TKWIRE_H

#include "hub_clock.h"
#include "hub_wire.h"

#include <stddef.h>
#include <stdint.h>

/* tkw_<body>_frame(&body): a Frame (protocol_version left to
 * hub_frame_encode) whose body is that one. */
#define TKW__FRAME_OF(field, type, kase)                                                           \
    static inline hub_frame_t tkw_##field##_frame(type *body)                                      \
    {                                                                                              \
        hub_frame_t frame = LTH__V1__FRAME__INIT;                                                  \
        frame.body_case = LTH__V1__FRAME__BODY_##kase;                                             \
        frame.field = body;                                                                        \
        return frame;                                                                              \
    }
TKW__FRAME_OF(hello, Lth__V1__Hello, HELLO)
TKW__FRAME_OF(welcome, Lth__V1__Welcome, WELCOME)
TKW__FRAME_OF(batch, Lth__V1__Batch, BATCH)
TKW__FRAME_OF(receipts, Lth__V1__Receipts, RECEIPTS)
TKW__FRAME_OF(deliveries, Lth__V1__Deliveries, DELIVERIES)
TKW__FRAME_OF(settle, Lth__V1__Settle, SETTLE)
TKW__FRAME_OF(heartbeat, Lth__V1__Heartbeat, HEARTBEAT)
TKW__FRAME_OF(error, Lth__V1__Nack, ERROR)
#undef TKW__FRAME_OF

/* An envelope with a fresh message id (written into id), from sender to
 * receiver for service, made now; the caller sets the other fields. It
 * points at its arguments. */
static inline Lth__V1__Envelope tkw_envelope(char id[HUB_UUID_LEN + 1], const char *sender,
                                             const char *receiver, const char *service)
{
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    hub_uuid_new(id);
    env.message_id = id;
    env.sender = (char *)sender;
    env.receiver = (char *)receiver;
    env.service = (char *)service;
    env.created_at_us = hub_now_us();
    return env;
}

/* The sample request that the signing tests, the test vectors and the
 * fuzz seeds start from: HOTICH asks CSDLQGDC's citizen.lookup/v1 for JSON,
 * online-only, 30 s to live; the caller gives the id, the time and the
 * payload, and may change any field after. It points at its arguments. */
static inline Lth__V1__Envelope tkw_lookup_request(const char *message_id, uint64_t created_at_us,
                                                   const uint8_t *payload, size_t len)
{
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    env.message_id = (char *)message_id;
    env.sender = "VN/GOV/HN-STP/HOTICH";
    env.receiver = "VN/GOV/BCA/CSDLQGDC";
    env.service = "citizen.lookup/v1";
    env.created_at_us = created_at_us;
    env.ttl_ms = 30000;
    env.content_type = "application/json";
    env.payload.data = (uint8_t *)payload;
    env.payload.len = len;
    env.kind = LTH__V1__KIND__KIND_REQUEST;
    env.delivery = LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY;
    return env;
}

/* tkw_<body>(items, n): a body holding the caller's items[0..n) and nothing
 * else: a Batch of encoded envelopes, Deliveries, Receipts of ACKs (no
 * NACK), a Settle of hub_seqs (no reject). */
#define TKW__LIST_OF(name, type, init, field, item_type)                                           \
    static inline type tkw_##name(item_type *items, size_t n)                                      \
    {                                                                                              \
        type body = init;                                                                          \
        body.field = items;                                                                        \
        body.n_##field = n;                                                                        \
        return body;                                                                               \
    }
TKW__LIST_OF(batch, Lth__V1__Batch, LTH__V1__BATCH__INIT, envelopes, ProtobufCBinaryData)
TKW__LIST_OF(deliveries, Lth__V1__Deliveries, LTH__V1__DELIVERIES__INIT, items,
             Lth__V1__DeliveredEnvelope *)
TKW__LIST_OF(receipts, Lth__V1__Receipts, LTH__V1__RECEIPTS__INIT, acks, Lth__V1__Ack *)
TKW__LIST_OF(settle, Lth__V1__Settle, LTH__V1__SETTLE__INIT, hub_seqs, uint64_t)
#undef TKW__LIST_OF

#endif
