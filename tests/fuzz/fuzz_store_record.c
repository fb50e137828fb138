/* fuzz_store_record — the store's record codec (hub_store_codec.h): what
 * the LMDB store reads back from disk, where a damaged or tampered file
 * must give HUB_ESTORE, never a crash or a read past the value.
 *
 * Input: one byte choosing the kind of value, then its bytes:
 *   0 message record, 1 dead header, 2 de-duplication record, 3 held
 *   counts, 4 tracked request (one more byte: the key's length, then the
 *   key, then the value), 5 a message built from the bytes, encoded and
 *   decoded.
 *
 * Properties: a value that decodes has views inside its bytes, strings
 * without NUL and within the limits of hub_store.h, and encodes back to
 * the same bytes (but for the header bytes the format reserves); a message
 * within the limits encodes to a record that decodes to the same message.
 */
#include "fuzz_util.h"
#include "hub_error.h"
#include "hub_store.h"
#include "hub_store_codec.h"

#include <stdlib.h>
#include <string.h>

/* p[0..n) lies inside data[0..size). */
static bool inside(const void *p, size_t n, const uint8_t *data, size_t size)
{
    const uint8_t *b = p;
    return n == 0 || (b >= data && b + n <= data + size);
}

static void check_record(const uint8_t *data, size_t size)
{
    store_codec__rec_view_t v;
    if (store_codec__rec_decode(data, size, &v) != 0)
        return;
    FUZZ_CHECK(v.id_len >= 1 && v.id_len <= HUB_STORE_ID_MAX);
    FUZZ_CHECK(v.sender_len >= 1 && v.receiver_len >= 1);
    FUZZ_CHECK(inside(v.id, v.id_len, data, size) && inside(v.sender, v.sender_len, data, size));
    FUZZ_CHECK(inside(v.receiver, v.receiver_len, data, size));
    FUZZ_CHECK(inside(v.service, v.service_len, data, size));
    FUZZ_CHECK(inside(v.envelope, v.envelope_len, data, size));
    hub_store_msg_t m;
    memset(&m, 0, sizeof m);
    memcpy(m.message_id, v.id, v.id_len);
    memcpy(m.sender, v.sender, v.sender_len);
    memcpy(m.receiver, v.receiver, v.receiver_len);
    memcpy(m.service, v.service, v.service_len);
    FUZZ_CHECK(strlen(m.message_id) == v.id_len && strlen(m.sender) == v.sender_len);
    FUZZ_CHECK(strlen(m.receiver) == v.receiver_len && strlen(m.service) == v.service_len);
    m.accepted_at_us = v.accepted_at;
    m.expires_at_us = v.expires_at;
    m.envelope = v.envelope;
    m.envelope_len = v.envelope_len;
    FUZZ_CHECK(store_codec__rec_size(&m) == size);
    uint8_t *again = malloc(size);
    FUZZ_CHECK(again != NULL);
    store_codec__rec_encode(again, &m);
    /* Bytes 5..7 are reserved (written as 0, not checked when read). */
    FUZZ_CHECK(memcmp(again, data, 5) == 0);
    FUZZ_CHECK(memcmp(again + 8, data + 8, size - 8) == 0);
    free(again);
}

static void check_dead(const uint8_t *data, size_t size)
{
    store_codec__dead_view_t d;
    if (store_codec__dead_decode(data, size, &d) != 0)
        return;
    FUZZ_CHECK(d.reason_len <= HUB_STORE_REASON_MAX);
    FUZZ_CHECK(size == HUB__DEAD_HDR + (size_t)d.reason_len);
    FUZZ_CHECK(inside(d.reason, d.reason_len, data, size));
    FUZZ_CHECK(memchr(d.reason, 0, d.reason_len) == NULL);
    uint8_t again[HUB__DEAD_HDR + HUB_STORE_REASON_MAX];
    store_codec__dead_encode(again, d.attempts, d.dead_at, d.reason, d.reason_len);
    /* Bytes 2..3 are reserved. */
    FUZZ_CHECK(memcmp(again, data, 2) == 0);
    FUZZ_CHECK(memcmp(again + 4, data + 4, size - 4) == 0);
    /* A reason cut to fit stays a prefix and fits. */
    char text[HUB_STORE_REASON_MAX + 1];
    memcpy(text, d.reason, d.reason_len);
    text[d.reason_len] = '\0';
    FUZZ_CHECK(store_codec__reason_len(text) == d.reason_len);
}

static void check_ids(const uint8_t *data, size_t size)
{
    store_codec__ids_rec_t r;
    int rc = store_codec__ids_decode(data, size, &r);
    FUZZ_CHECK((rc == 0) == (size == HUB__IDS_VAL || size == HUB__IDS_VAL_OLD));
    if (rc != 0)
        return;
    uint8_t again[HUB__IDS_VAL];
    store_codec__ids_encode(again, &r);
    FUZZ_CHECK(memcmp(again, data, size) == 0 || size == HUB__IDS_VAL_OLD);
    FUZZ_CHECK(memcmp(again, data, HUB__IDS_VAL_OLD) == 0);
    if (size == HUB__IDS_VAL_OLD)
        FUZZ_CHECK(store_codec__digest_unknown(r.digest));
}

static void check_held(const uint8_t *data, size_t size)
{
    hub_store_held_t h;
    int rc = store_codec__held_decode(data, size, &h);
    FUZZ_CHECK((rc == 0) == (size == HUB__HELD_VAL));
    if (rc != 0)
        return;
    uint8_t again[HUB__HELD_VAL];
    store_codec__held_encode(again, &h);
    FUZZ_CHECK(memcmp(again, data, size) == 0);
}

static void check_request(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    size_t klen = data[0];
    if (klen > size - 1)
        klen = size - 1;
    const uint8_t *key = data + 1, *val = data + 1 + klen;
    size_t vlen = size - 1 - klen;
    hub_store_request_t r;
    if (!store_codec__request_decode(key, klen, val, vlen, &r))
        return;
    size_t il = strlen(r.message_id), sl = strlen(r.sender), rl = strlen(r.receiver);
    FUZZ_CHECK(il == klen && il >= 1 && il <= HUB_STORE_ID_MAX);
    FUZZ_CHECK(sl >= 1 && sl <= HUB_STORE_NAME_MAX && rl >= 1 && rl <= HUB_STORE_NAME_MAX);
    uint8_t again[HUB__REQ_VAL_MAX];
    size_t alen = store_codec__request_encode(again, &r);
    FUZZ_CHECK(alen == vlen && memcmp(again, val, vlen) == 0);
}

/* Takes up to max bytes from *data as a string without NUL (at least
 * min bytes; fewer when the input runs out: then 'x's). */
static void take_str(const uint8_t **data, size_t *size, char *out, size_t min, size_t max)
{
    size_t want = *size ? min + (*data)[0] % (max - min + 1) : min;
    if (*size) {
        (*data)++;
        (*size)--;
    }
    for (size_t i = 0; i < want; i++) {
        char c = 'x';
        if (*size) {
            c = (char)((*data)[0] ? (*data)[0] : 'z');
            (*data)++;
            (*size)--;
        }
        out[i] = c;
    }
    out[want] = '\0';
}

static void check_encode(const uint8_t *data, size_t size)
{
    hub_store_msg_t m;
    memset(&m, 0, sizeof m);
    take_str(&data, &size, m.message_id, 1, HUB_STORE_ID_MAX);
    take_str(&data, &size, m.sender, 1, HUB_STORE_NAME_MAX);
    take_str(&data, &size, m.receiver, 1, HUB_STORE_NAME_MAX);
    take_str(&data, &size, m.service, 0, HUB_STORE_NAME_MAX);
    m.accepted_at_us = size >= 8 ? hub_get_le64(data) : 0;
    m.expires_at_us = ~m.accepted_at_us;
    m.envelope = data;
    m.envelope_len = size;
    size_t len = store_codec__rec_size(&m);
    uint8_t *rec = malloc(len);
    FUZZ_CHECK(rec != NULL);
    store_codec__rec_encode(rec, &m);
    store_codec__rec_view_t v;
    FUZZ_CHECK(store_codec__rec_decode(rec, len, &v) == 0);
    FUZZ_CHECK(v.id_len == strlen(m.message_id) && !memcmp(v.id, m.message_id, v.id_len));
    FUZZ_CHECK(v.sender_len == strlen(m.sender) && !memcmp(v.sender, m.sender, v.sender_len));
    FUZZ_CHECK(v.receiver_len == strlen(m.receiver) &&
               !memcmp(v.receiver, m.receiver, v.receiver_len));
    FUZZ_CHECK(v.service_len == strlen(m.service) && !memcmp(v.service, m.service, v.service_len));
    FUZZ_CHECK(v.accepted_at == m.accepted_at_us && v.expires_at == m.expires_at_us);
    FUZZ_CHECK(v.envelope_len == m.envelope_len &&
               (size == 0 || !memcmp(v.envelope, m.envelope, size)));
    free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t kind = data[0];
    /* A copy of exactly the value's bytes, so that ASan sees any read past it. */
    size_t n = size - 1;
    uint8_t *value = malloc(n ? n : 1);
    FUZZ_CHECK(value != NULL);
    memcpy(value, data + 1, n);
    switch (kind % 6) {
    case 0: check_record(value, n); break;
    case 1: check_dead(value, n); break;
    case 2: check_ids(value, n); break;
    case 3: check_held(value, n); break;
    case 4: check_request(value, n); break;
    default: check_encode(value, n); break;
    }
    free(value);
    return 0;
}
