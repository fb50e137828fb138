/* hub_store_codec — the bytes of every value the store keeps, encoded and
 * decoded by pure functions (no LMDB, no I/O, no allocation), so that a
 * record read from disk is checked in one place and fuzzed on its own.
 *
 * PRIVATE to the store (hub_store_*.c), its unit test and its fuzz target:
 * nothing else includes it. A second backend keeps its own layout.
 *
 * Every decoder takes bytes of any length and content: it returns
 * HUB_ESTORE (or false) for anything it did not write, never reads past
 * `len`, and points the view into the caller's bytes (valid as long as
 * they are). Encoders write into a buffer the caller sized with the
 * matching _size() function or constant.
 *
 * Layouts (integers little-endian unless said; keys are big-endian in
 * hub_store_internal.h so that they sort):
 *
 *   message record (REC_HDR = 28 bytes, then the bytes):
 *     u8 format(1) u8 id_len u8 sender_len u8 receiver_len u8 service_len
 *     u8[3] 0  u64 accepted_at  u64 expires_at  u32 envelope_len
 *     id sender receiver service envelope
 *     id 1..36 bytes, sender and receiver non-empty; no NUL inside a string.
 *   dead header (DEAD_HDR = 16 bytes, then the reason):
 *     u8 format(1) u8 reason_len u8[2] 0 u32 attempts u64 dead_at reason
 *   de-duplication record (ids):
 *     u64 seq u64 accepted_at u8 flags [u8[32] envelope digest]
 *     17 bytes up to store format 3; 49 bytes from format 4 (a digest of 32
 *     zero bytes: not known). Both decode.
 *   held counts: u64 msgs u64 bytes
 *   tracked request: u64 expires_at, sender \0 receiver \0 (key: message_id)
 */
#ifndef HUB_STORE_CODEC_H
#define HUB_STORE_CODEC_H

#include "hub_bytes.h" /* the integers: big-endian keys, little-endian values */
#include "hub_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB__REC_FORMAT 1u /* the format byte of records and dead headers */
#define HUB__REC_HDR 28u
#define HUB__DEAD_HDR 16u
#define HUB__IDS_VAL_OLD 17u /* a de-duplication record without digest (format <= 3) */
#define HUB__IDS_VAL 49u
#define HUB__IDS_PINNED 0x01u /* window over; kept for look-ups only */
#define HUB__HELD_VAL 16u
#define HUB__REQ_VAL_MAX (8u + 2u * (HUB_STORE_NAME_MAX + 1u))

/* True when s[0..len) holds no NUL byte. */
bool store_codec__no_nul(const char *s, size_t len);

/* ---- message records ----------------------------------------------------- */

/* A decoded message record: pointers into the record's bytes. */
typedef struct {
    const char *id, *sender, *receiver, *service;
    uint8_t id_len, sender_len, receiver_len, service_len;
    uint64_t accepted_at, expires_at;
    const uint8_t *envelope;
    uint32_t envelope_len;
} store_codec__rec_view_t;

int store_codec__rec_decode(const uint8_t *p, size_t len, store_codec__rec_view_t *out);
/* The record's size for m (strings as long as strlen says; the caller has
 * checked them against the limits in hub_store.h). */
size_t store_codec__rec_size(const hub_store_msg_t *m);
/* Writes m's record (store_codec__rec_size(m) bytes) into p. */
void store_codec__rec_encode(uint8_t *p, const hub_store_msg_t *m);
/* Offset of expires_at in a record, for an in-place change (dlq replay). */
#define HUB__REC_EXPIRES_AT 16u

/* ---- dead headers -------------------------------------------------------- */

typedef struct {
    uint32_t attempts;
    uint64_t dead_at;
    const char *reason;
    uint8_t reason_len;
} store_codec__dead_view_t;

int store_codec__dead_decode(const uint8_t *p, size_t len, store_codec__dead_view_t *out);
/* The longest prefix of reason that fits HUB_STORE_REASON_MAX without
 * cutting a UTF-8 sequence in half. */
size_t store_codec__reason_len(const char *reason);
/* Writes a dead header of HUB__DEAD_HDR + reason_len bytes into p;
 * reason_len from store_codec__reason_len(). */
void store_codec__dead_encode(uint8_t *p, uint32_t attempts, uint64_t dead_at, const char *reason,
                              size_t reason_len);

/* ---- de-duplication records ---------------------------------------------- */

typedef struct {
    uint64_t seq, accepted_at;
    uint8_t flags;                        /* HUB__IDS_PINNED */
    uint8_t digest[HUB_STORE_DIGEST_LEN]; /* all zero: not known */
} store_codec__ids_rec_t;

int store_codec__ids_decode(const uint8_t *p, size_t len, store_codec__ids_rec_t *out);
void store_codec__ids_encode(uint8_t out[HUB__IDS_VAL], const store_codec__ids_rec_t *r);
/* True when the digest is all zero (not known). */
bool store_codec__digest_unknown(const uint8_t digest[HUB_STORE_DIGEST_LEN]);

/* ---- held counts --------------------------------------------------------- */

int store_codec__held_decode(const uint8_t *p, size_t len, hub_store_held_t *out);
void store_codec__held_encode(uint8_t out[HUB__HELD_VAL], const hub_store_held_t *h);

/* ---- tracked requests ---------------------------------------------------- */

/* Writes r's value into buf (HUB__REQ_VAL_MAX bytes); returns its length.
 * r's strings must be within the limits of hub_store_request_t. */
size_t store_codec__request_encode(uint8_t buf[HUB__REQ_VAL_MAX], const hub_store_request_t *r);
/* Decodes key (the message id) and value into *out; false when damaged. */
bool store_codec__request_decode(const uint8_t *key, size_t key_len, const uint8_t *val,
                                 size_t val_len, hub_store_request_t *out);

#endif
