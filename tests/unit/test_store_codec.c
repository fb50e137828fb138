/* Unit tests for hub_store_codec: the bytes of what the store keeps, without
 * a database. Every decoder must take back what its encoder wrote, and
 * refuse (HUB_ESTORE / false) bytes it did not write, without reading past
 * them. */
#include "hub_error.h"
#include "hub_store.h"
#include "hub_store_codec.h"
#include "testkit.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static void make_msg(hub_store_msg_t *m, const char *envelope)
{
    memset(m, 0, sizeof *m);
    strcpy(m->message_id, "7d0e8a52-1c4b-4f0e-9a3d-000000000001");
    strcpy(m->sender, "VN/GOV/HN-STP/HOTICH");
    strcpy(m->receiver, "VN/GOV/BCA/CSDLQGDC");
    strcpy(m->service, "citizen.lookup/v1");
    m->accepted_at_us = 1735689600000000ull;
    m->expires_at_us = 1735689630000000ull;
    m->envelope = (const uint8_t *)envelope;
    m->envelope_len = strlen(envelope);
}

/* Encodes m into a malloc'ed buffer of *len bytes. */
static uint8_t *encode(const hub_store_msg_t *m, size_t *len)
{
    *len = store_codec__rec_size(m);
    uint8_t *p = malloc(*len);
    ck_assert_ptr_nonnull(p);
    store_codec__rec_encode(p, m);
    return p;
}

START_TEST(record_round_trip)
{
    hub_store_msg_t m;
    make_msg(&m, "{\"cccd\":\"001\"}");
    size_t len;
    uint8_t *p = encode(&m, &len);
    ck_assert_uint_eq(len, HUB__REC_HDR + 36 + 20 + 19 + 17 + 14);
    store_codec__rec_view_t v;
    ck_assert_int_eq(store_codec__rec_decode(p, len, &v), 0);
    ck_assert_uint_eq(v.id_len, 36);
    ck_assert(memcmp(v.id, m.message_id, 36) == 0);
    ck_assert(memcmp(v.sender, m.sender, v.sender_len) == 0);
    ck_assert(memcmp(v.receiver, m.receiver, v.receiver_len) == 0);
    ck_assert(memcmp(v.service, m.service, v.service_len) == 0);
    ck_assert_uint_eq(v.accepted_at, m.accepted_at_us);
    ck_assert_uint_eq(v.expires_at, m.expires_at_us);
    ck_assert_uint_eq(v.envelope_len, m.envelope_len);
    ck_assert(memcmp(v.envelope, m.envelope, m.envelope_len) == 0);
    /* The in-place expiry change a replay makes reads back. */
    hub_put_le64(p + HUB__REC_EXPIRES_AT, 42);
    ck_assert_int_eq(store_codec__rec_decode(p, len, &v), 0);
    ck_assert_uint_eq(v.expires_at, 42);
    free(p);

    /* An empty service and an empty envelope are allowed. */
    make_msg(&m, "");
    m.service[0] = '\0';
    p = encode(&m, &len);
    ck_assert_int_eq(store_codec__rec_decode(p, len, &v), 0);
    ck_assert_uint_eq(v.service_len, 0);
    ck_assert_uint_eq(v.envelope_len, 0);
    free(p);
}
END_TEST

START_TEST(damaged_records_are_refused)
{
    hub_store_msg_t m;
    make_msg(&m, "payload");
    size_t len;
    uint8_t *p = encode(&m, &len);
    store_codec__rec_view_t v;
    /* Every truncation, and one byte too many. */
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(store_codec__rec_decode(p, cut, &v), HUB_ESTORE);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, p, len);
    longer[len] = 0;
    ck_assert_int_eq(store_codec__rec_decode(longer, len + 1, &v), HUB_ESTORE);
    free(longer);
    ck_assert_int_eq(store_codec__rec_decode(NULL, 0, &v), HUB_ESTORE);

    uint8_t saved;
    /* An unknown record format. */
    saved = p[0];
    p[0] = 2;
    ck_assert_int_eq(store_codec__rec_decode(p, len, &v), HUB_ESTORE);
    p[0] = saved;
    /* A NUL inside the sender. */
    saved = p[HUB__REC_HDR + 36 + 3];
    p[HUB__REC_HDR + 36 + 3] = 0;
    ck_assert_int_eq(store_codec__rec_decode(p, len, &v), HUB_ESTORE);
    p[HUB__REC_HDR + 36 + 3] = saved;
    /* Lengths that do not add up to the record's size. */
    p[1] = 35;
    ck_assert_int_eq(store_codec__rec_decode(p, len, &v), HUB_ESTORE);
    p[1] = 36;
    hub_put_le32(p + 24, 0xFFFFFFFFu);
    ck_assert_int_eq(store_codec__rec_decode(p, len, &v), HUB_ESTORE);
    hub_put_le32(p + 24, (uint32_t)m.envelope_len);
    ck_assert_int_eq(store_codec__rec_decode(p, len, &v), 0);
    free(p);

    /* An id of 0 or more than 36 bytes, an empty sender or receiver. */
    uint8_t hdr[HUB__REC_HDR + 40];
    memset(hdr, 'a', sizeof hdr);
    memset(hdr, 0, HUB__REC_HDR);
    hdr[0] = HUB__REC_FORMAT;
    hdr[1] = 37, hdr[2] = 1, hdr[3] = 1, hdr[4] = 1; /* 37 + 3 = 40 */
    ck_assert_int_eq(store_codec__rec_decode(hdr, sizeof hdr, &v), HUB_ESTORE);
    hdr[1] = 36, hdr[2] = 2, hdr[3] = 2, hdr[4] = 0;
    ck_assert_int_eq(store_codec__rec_decode(hdr, sizeof hdr, &v), 0);
    hdr[2] = 0, hdr[3] = 4;
    ck_assert_int_eq(store_codec__rec_decode(hdr, sizeof hdr, &v), HUB_ESTORE);
    hdr[2] = 4, hdr[3] = 0;
    ck_assert_int_eq(store_codec__rec_decode(hdr, sizeof hdr, &v), HUB_ESTORE);
    hdr[1] = 0, hdr[2] = 38, hdr[3] = 2;
    ck_assert_int_eq(store_codec__rec_decode(hdr, sizeof hdr, &v), HUB_ESTORE);
}
END_TEST

START_TEST(dead_header_round_trip_and_damage)
{
    uint8_t buf[HUB__DEAD_HDR + HUB_STORE_REASON_MAX];
    const char *reason = "retry budget exhausted (8 attempts)";
    size_t rl = store_codec__reason_len(reason);
    ck_assert_uint_eq(rl, strlen(reason));
    store_codec__dead_encode(buf, 8, 1735689600000000ull, reason, rl);
    store_codec__dead_view_t d;
    ck_assert_int_eq(store_codec__dead_decode(buf, HUB__DEAD_HDR + rl, &d), 0);
    ck_assert_uint_eq(d.attempts, 8);
    ck_assert_uint_eq(d.dead_at, 1735689600000000ull);
    ck_assert_uint_eq(d.reason_len, rl);
    ck_assert(memcmp(d.reason, reason, rl) == 0);
    ck_assert_int_eq(store_codec__dead_decode(buf, HUB__DEAD_HDR + rl - 1, &d), HUB_ESTORE);
    ck_assert_int_eq(store_codec__dead_decode(buf, HUB__DEAD_HDR - 1, &d), HUB_ESTORE);
    buf[HUB__DEAD_HDR + 2] = 0;
    ck_assert_int_eq(store_codec__dead_decode(buf, HUB__DEAD_HDR + rl, &d), HUB_ESTORE);
    buf[0] = 9;
    ck_assert_int_eq(store_codec__dead_decode(buf, HUB__DEAD_HDR + rl, &d), HUB_ESTORE);

    /* Long reasons are cut at HUB_STORE_REASON_MAX, never inside a UTF-8
     * sequence: 'ệ' is 3 bytes. */
    char long_reason[400] = "";
    while (strlen(long_reason) + 3 < sizeof long_reason)
        strcat(long_reason, "\xe1\xbb\x87");
    size_t cut = store_codec__reason_len(long_reason);
    ck_assert_uint_le(cut, HUB_STORE_REASON_MAX);
    ck_assert_uint_eq(cut % 3, 0);
    ck_assert_uint_eq(cut, HUB_STORE_REASON_MAX / 3 * 3);
}
END_TEST

START_TEST(dedup_record_keeps_the_digest)
{
    store_codec__ids_rec_t r = {.seq = 1048577, .accepted_at = 1735689600000000ull, .flags = 0};
    for (size_t i = 0; i < HUB_STORE_DIGEST_LEN; i++)
        r.digest[i] = (uint8_t)(i + 1);
    uint8_t buf[HUB__IDS_VAL];
    store_codec__ids_encode(buf, &r);
    store_codec__ids_rec_t back;
    ck_assert_int_eq(store_codec__ids_decode(buf, sizeof buf, &back), 0);
    ck_assert_uint_eq(back.seq, r.seq);
    ck_assert_uint_eq(back.accepted_at, r.accepted_at);
    ck_assert_uint_eq(back.flags, 0);
    ck_assert(memcmp(back.digest, r.digest, HUB_STORE_DIGEST_LEN) == 0);
    ck_assert(!store_codec__digest_unknown(back.digest));
    /* The form before format 4 (17 bytes) decodes with an unknown digest. */
    buf[16] = HUB__IDS_PINNED;
    ck_assert_int_eq(store_codec__ids_decode(buf, HUB__IDS_VAL_OLD, &back), 0);
    ck_assert_uint_eq(back.seq, r.seq);
    ck_assert_uint_eq(back.flags, HUB__IDS_PINNED);
    ck_assert(store_codec__digest_unknown(back.digest));
    /* Any other length is damage. */
    ck_assert_int_eq(store_codec__ids_decode(buf, 16, &back), HUB_ESTORE);
    ck_assert_int_eq(store_codec__ids_decode(buf, 18, &back), HUB_ESTORE);
    ck_assert_int_eq(store_codec__ids_decode(buf, 48, &back), HUB_ESTORE);
    ck_assert_int_eq(store_codec__ids_decode(NULL, 49, &back), HUB_ESTORE);
}
END_TEST

START_TEST(held_and_request_round_trip)
{
    hub_store_held_t h = {3, 3072}, hb;
    uint8_t hbuf[HUB__HELD_VAL];
    store_codec__held_encode(hbuf, &h);
    ck_assert_int_eq(store_codec__held_decode(hbuf, sizeof hbuf, &hb), 0);
    ck_assert_uint_eq(hb.msgs, 3);
    ck_assert_uint_eq(hb.bytes, 3072);
    ck_assert_int_eq(store_codec__held_decode(hbuf, 15, &hb), HUB_ESTORE);

    hub_store_request_t r, back;
    memset(&r, 0, sizeof r);
    strcpy(r.message_id, "0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c90");
    strcpy(r.sender, "VN/GOV/HN-STP/HOTICH");
    strcpy(r.receiver, "VN/GOV/BCA/CSDLQGDC");
    r.expires_at_us = 1735689630000000ull;
    uint8_t buf[HUB__REQ_VAL_MAX];
    size_t len = store_codec__request_encode(buf, &r);
    const uint8_t *key = (const uint8_t *)r.message_id;
    size_t klen = strlen(r.message_id);
    ck_assert(store_codec__request_decode(key, klen, buf, len, &back));
    ck_assert_str_eq(back.message_id, r.message_id);
    ck_assert_str_eq(back.sender, r.sender);
    ck_assert_str_eq(back.receiver, r.receiver);
    ck_assert_uint_eq(back.expires_at_us, r.expires_at_us);
    /* Damage: truncated, a missing terminator, an empty sender, a key too long. */
    ck_assert(!store_codec__request_decode(key, klen, buf, len - 1, &back));
    ck_assert(!store_codec__request_decode(key, 0, buf, len, &back));
    ck_assert(!store_codec__request_decode(key, HUB_STORE_ID_MAX + 1, buf, len, &back));
    uint8_t empty[12] = {0};
    empty[9] = 'R';
    ck_assert(!store_codec__request_decode(key, klen, empty, sizeof empty, &back));
    /* A sender longer than a member id can be: refused, not copied past
     * the struct's field. */
    uint8_t big[HUB__REQ_VAL_MAX];
    memset(big, 'S', sizeof big);
    big[HUB__REQ_VAL_MAX - 3] = 0;
    big[HUB__REQ_VAL_MAX - 2] = 'R';
    big[HUB__REQ_VAL_MAX - 1] = 0;
    ck_assert(!store_codec__request_decode(key, klen, big, sizeof big, &back));
}
END_TEST

TK_MAIN("store_codec", TK_CASE("core", NULL, NULL, 0, record_round_trip,
                               damaged_records_are_refused, dead_header_round_trip_and_damage,
                               dedup_record_keeps_the_digest, held_and_request_round_trip))
