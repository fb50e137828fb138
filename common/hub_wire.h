/* hub_wire — encoding and decoding of the frames in proto/lth.proto, plus
 * the small helpers every peer needs (UUIDs, NACK code names, packing any
 * message; the clocks are hub_clock.h, included here).
 *
 * Ownership: hub_frame_decode() returns a frame the caller frees with
 * hub_frame_free(); hub_frame_encode() returns a malloc'ed buffer the caller
 * frees with free(). Decoding never trusts its input: any byte string yields
 * either a frame or HUB_EPARSE / HUB_EINVAL, never a crash.
 */
#ifndef HUB_WIRE_H
#define HUB_WIRE_H

#include "hub_arena.h"
#include "hub_clock.h"
#include "hub_error.h"
#include "lth.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define HUB_PROTOCOL_VERSION 1u
#define HUB_UUID_LEN 36

typedef Lth__V1__Frame hub_frame_t;
typedef Lth__V1__Envelope hub_envelope_t;

/* Decodes one ZeroMQ frame. Returns 0, HUB_EPARSE (not a Frame),
 * HUB_EINVAL (a frame without a body). The protocol version is left for the
 * caller to check, so that it can answer with the right NACK. */
int hub_frame_decode(const void *data, size_t len, hub_frame_t **out);
void hub_frame_free(hub_frame_t **frame_p);
/* The same into an arena: the frame and every field of it live in `arena`
 * until it is reset (never hub_frame_free()). */
int hub_frame_decode_in(hub_arena_t *arena, const void *data, size_t len, hub_frame_t **out);
/* hub_frame_decode_in(), except that a Deliveries frame of the plain shape
 * the hub sends (each field once, with its own wire type) is read in place:
 * its envelopes and keys point into data, which must outlive the frame. The
 * same result as hub_frame_decode_in() for what it reads so
 * (tests/unit/test_helpers.c). */
int hub_frame_view(hub_arena_t *arena, const void *data, size_t len, hub_frame_t **out);
/* Encodes `frame` (protocol_version is set here) into a new buffer. */
int hub_frame_encode(hub_frame_t *frame, uint8_t **out, size_t *out_len);
/* Packs any protobuf-c message into a malloc'ed buffer (*out, *out_len
 * bytes; never NULL on success, even for an empty message) that the caller
 * frees. 0 or HUB_ENOMEM. Inline, so that plugins using it (through
 * lth_domain) pull no object of hub_wire's in (see hub_clock.h). */
static inline int hub_pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return HUB_ENOMEM;
    protobuf_c_message_pack(msg, buf);
    *out = buf;
    *out_len = len;
    return 0;
}

/* Decodes an envelope; returns 0 or HUB_EPARSE. */
int hub_envelope_decode(const void *data, size_t len, hub_envelope_t **out);
void hub_envelope_free(hub_envelope_t **env_p);
/* The same into an arena (never hub_envelope_free(); see hub_arena.h). */
int hub_envelope_decode_in(hub_arena_t *arena, const void *data, size_t len, hub_envelope_t **out);
/* An envelope read in place into the arena: payload and signature point
 * into bytes (which must outlive it), the strings are copied. Only the
 * plain shape encoders produce (each field once, its own wire type,
 * in-range varints, printable-ASCII strings) is read so; anything else
 * gives NULL, and the caller decodes with hub_envelope_decode_in(), which
 * gives the same result for what this reads (tests/unit/test_admit.c,
 * tests/fuzz/fuzz_envelope.c). */
hub_envelope_t *hub_envelope_view(hub_arena_t *arena, const uint8_t *bytes, size_t len);
/* An envelope read into the arena: in place (hub_envelope_view) where it has
 * the plain shape, else decoded by protobuf-c (hub_envelope_decode_in), with
 * what the in-place attempt took given back first. Returns 0 or HUB_EPARSE;
 * *in_place (may be NULL) says which reader it took. The one way every
 * reader of received envelopes (hubd's admission and commit worker, the
 * SDK, hubbench) reads them. */
int hub_envelope_read_in(hub_arena_t *arena, const uint8_t *bytes, size_t len,
                         hub_envelope_t **out, bool *in_place);
/* A base-128 varint at p (before end) into *v: the bytes it took, 0 when
 * cut short or longer than ten bytes (the in-place readers' one varint). */
size_t hub_pb_varint(const uint8_t *p, const uint8_t *end, uint64_t *v);
/* A field's key or a length prefix, as protobuf-c reads them: a varint of
 * at most five bytes (protobuf-c refuses a longer one, so the in-place
 * readers must too); 0 otherwise. */
size_t hub_pb_head(const uint8_t *p, const uint8_t *end, uint64_t *v);
/* Checks the fields every envelope must have; on failure returns HUB_EINVAL
 * and points *problem at a sentence saying which field is wrong. */
int hub_envelope_check(const hub_envelope_t *env, const char **problem);
/* The message_id (field 1) of encoded envelope bytes, read without decoding
 * the rest, into out (HUB_UUID_LEN + 1 bytes): "" when there is none or it
 * is not a UUID. For refusing an envelope cheaply (a flood). */
void hub_envelope_peek_id(const uint8_t *data, size_t len, char *out);

/* One field of a protobuf message's top level, walked without decoding,
 * from *p (moved past it) to end: its number, and for a length-delimited
 * field its bytes in *value and *value_len (NULL and 0 for the others).
 * False at the end or on bytes that are not protobuf. */
bool hub_pb_next(const uint8_t **p, const uint8_t *end, uint32_t *field, const uint8_t **value,
                 size_t *value_len);

/* Checks that the encoded envelope `data` is unambiguous: every field of
 * lth.v1.Envelope that is not `repeated` appears at most once, at the top
 * level and inside batch_proof (a non-repeated message field encoded twice
 * would be merged, a scalar one read as its last value by protobuf-c but as
 * its first by other parsers, so that a receiver could read a service the
 * hub never checked). Repeated fields (BatchProof.path) may repeat; fields
 * the schema does not define are left to the caller, which refuses them
 * from the decoded copy. One pass over the bytes, no allocation: cheap
 * enough for every envelope. Returns 0, HUB_EINVAL with a sentence in why
 * naming the field ("field 5 (service) appears twice; ..."), or HUB_EPARSE
 * when the bytes are not protobuf wire format. */
int hub_envelope_check_encoding(const void *data, size_t len, char *why, size_t why_size);

/* A fresh random (version 4) UUID in lower-case text form. */
void hub_uuid_new(char out[HUB_UUID_LEN + 1]);
bool hub_uuid_valid(const char *text);

/* "MALFORMED_FRAME" etc. for a Lth__V1__NackCode. */
const char *hub_nack_code_name(int code);

#endif
