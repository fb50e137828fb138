/* hub_store_codec.c — turns stored values into bytes and back, checking
 * every byte read from disk, without touching the database (see
 * hub_store_codec.h for the layouts). */
#include "hub_store_codec.h"

#include "hub_error.h"

#include <string.h>

bool store_codec__no_nul(const char *s, size_t len)
{
    return len == 0 || memchr(s, 0, len) == NULL;
}

/* ---- message records ----------------------------------------------------- */

int store_codec__rec_decode(const uint8_t *p, size_t len, store_codec__rec_view_t *out)
{
    if (!p || len < HUB__REC_HDR || p[0] != HUB__REC_FORMAT)
        return HUB_ESTORE;
    out->id_len = p[1];
    out->sender_len = p[2];
    out->receiver_len = p[3];
    out->service_len = p[4];
    out->accepted_at = hub_get_le64(p + 8);
    out->expires_at = hub_get_le64(p + HUB__REC_EXPIRES_AT);
    out->envelope_len = hub_get_le32(p + 24);
    uint64_t need = (uint64_t)HUB__REC_HDR + out->id_len + out->sender_len + out->receiver_len +
                    out->service_len + out->envelope_len;
    if (need != len || out->id_len == 0 || out->id_len > HUB_STORE_ID_MAX || out->sender_len == 0 ||
        out->receiver_len == 0)
        return HUB_ESTORE;
    const char *s = (const char *)p + HUB__REC_HDR;
    out->id = s;
    out->sender = s + out->id_len;
    out->receiver = out->sender + out->sender_len;
    out->service = out->receiver + out->receiver_len;
    out->envelope = (const uint8_t *)out->service + out->service_len;
    if (!store_codec__no_nul(out->id, out->id_len) ||
        !store_codec__no_nul(out->sender, out->sender_len) ||
        !store_codec__no_nul(out->receiver, out->receiver_len) ||
        !store_codec__no_nul(out->service, out->service_len))
        return HUB_ESTORE;
    return 0;
}

size_t store_codec__rec_size(const hub_store_msg_t *m)
{
    return HUB__REC_HDR + strlen(m->message_id) + strlen(m->sender) + strlen(m->receiver) +
           strlen(m->service) + m->envelope_len;
}

void store_codec__rec_encode(uint8_t *p, const hub_store_msg_t *m)
{
    size_t il = strlen(m->message_id), sl = strlen(m->sender), rl = strlen(m->receiver),
           vl = strlen(m->service);
    memset(p, 0, HUB__REC_HDR);
    p[0] = HUB__REC_FORMAT;
    p[1] = (uint8_t)il;
    p[2] = (uint8_t)sl;
    p[3] = (uint8_t)rl;
    p[4] = (uint8_t)vl;
    hub_put_le64(p + 8, m->accepted_at_us);
    hub_put_le64(p + HUB__REC_EXPIRES_AT, m->expires_at_us);
    hub_put_le32(p + 24, (uint32_t)m->envelope_len);
    uint8_t *q = p + HUB__REC_HDR;
    memcpy(q, m->message_id, il);
    q += il;
    memcpy(q, m->sender, sl);
    q += sl;
    memcpy(q, m->receiver, rl);
    q += rl;
    memcpy(q, m->service, vl);
    q += vl;
    if (m->envelope_len)
        memcpy(q, m->envelope, m->envelope_len);
}

/* ---- dead headers -------------------------------------------------------- */

int store_codec__dead_decode(const uint8_t *p, size_t len, store_codec__dead_view_t *out)
{
    if (!p || len < HUB__DEAD_HDR || p[0] != HUB__REC_FORMAT)
        return HUB_ESTORE;
    out->reason_len = p[1];
    out->attempts = hub_get_le32(p + 4);
    out->dead_at = hub_get_le64(p + 8);
    if (len != (size_t)HUB__DEAD_HDR + out->reason_len || out->reason_len > HUB_STORE_REASON_MAX)
        return HUB_ESTORE;
    out->reason = (const char *)p + HUB__DEAD_HDR;
    if (!store_codec__no_nul(out->reason, out->reason_len))
        return HUB_ESTORE;
    return 0;
}

size_t store_codec__reason_len(const char *reason)
{
    size_t len = strnlen(reason, HUB_STORE_REASON_MAX + 1);
    if (len <= HUB_STORE_REASON_MAX)
        return len;
    len = HUB_STORE_REASON_MAX;
    while (len > 0 && ((unsigned char)reason[len] & 0xC0) == 0x80)
        len--; /* reason[len] continues a sequence: cut before its lead byte */
    return len;
}

void store_codec__dead_encode(uint8_t *p, uint32_t attempts, uint64_t dead_at, const char *reason,
                              size_t reason_len)
{
    memset(p, 0, HUB__DEAD_HDR);
    p[0] = HUB__REC_FORMAT;
    p[1] = (uint8_t)reason_len;
    hub_put_le32(p + 4, attempts);
    hub_put_le64(p + 8, dead_at);
    if (reason_len)
        memcpy(p + HUB__DEAD_HDR, reason, reason_len);
}

/* ---- de-duplication records ---------------------------------------------- */

int store_codec__ids_decode(const uint8_t *p, size_t len, store_codec__ids_rec_t *out)
{
    if (!p || (len != HUB__IDS_VAL && len != HUB__IDS_VAL_OLD))
        return HUB_ESTORE;
    out->seq = hub_get_le64(p);
    out->accepted_at = hub_get_le64(p + 8);
    out->flags = p[16];
    if (len == HUB__IDS_VAL)
        memcpy(out->digest, p + HUB__IDS_VAL_OLD, HUB_STORE_DIGEST_LEN);
    else
        memset(out->digest, 0, HUB_STORE_DIGEST_LEN); /* written before digests were kept */
    return 0;
}

void store_codec__ids_encode(uint8_t out[HUB__IDS_VAL], const store_codec__ids_rec_t *r)
{
    hub_put_le64(out, r->seq);
    hub_put_le64(out + 8, r->accepted_at);
    out[16] = r->flags;
    memcpy(out + HUB__IDS_VAL_OLD, r->digest, HUB_STORE_DIGEST_LEN);
}

bool store_codec__digest_unknown(const uint8_t digest[HUB_STORE_DIGEST_LEN])
{
    uint8_t any = 0;
    for (size_t i = 0; i < HUB_STORE_DIGEST_LEN; i++)
        any |= digest[i];
    return any == 0;
}

/* ---- held counts --------------------------------------------------------- */

int store_codec__held_decode(const uint8_t *p, size_t len, hub_store_held_t *out)
{
    if (!p || len != HUB__HELD_VAL)
        return HUB_ESTORE;
    out->msgs = hub_get_le64(p);
    out->bytes = hub_get_le64(p + 8);
    return 0;
}

void store_codec__held_encode(uint8_t out[HUB__HELD_VAL], const hub_store_held_t *h)
{
    hub_put_le64(out, h->msgs);
    hub_put_le64(out + 8, h->bytes);
}

/* ---- tracked requests ---------------------------------------------------- */

size_t store_codec__request_encode(uint8_t buf[HUB__REQ_VAL_MAX], const hub_store_request_t *r)
{
    size_t sl = strlen(r->sender), rl = strlen(r->receiver);
    hub_put_le64(buf, r->expires_at_us);
    memcpy(buf + 8, r->sender, sl + 1);
    memcpy(buf + 8 + sl + 1, r->receiver, rl + 1);
    return 8 + sl + 1 + rl + 1;
}

bool store_codec__request_decode(const uint8_t *key, size_t key_len, const uint8_t *val,
                                 size_t val_len, hub_store_request_t *out)
{
    if (!key || !val || key_len == 0 || key_len > HUB_STORE_ID_MAX || val_len < 8 + 4 ||
        val_len > HUB__REQ_VAL_MAX)
        return false;
    const char *p = (const char *)val + 8, *end = (const char *)val + val_len;
    const char *z1 = memchr(p, '\0', (size_t)(end - p));
    if (!z1 || z1 == p)
        return false;
    const char *z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1));
    if (!z2 || z2 == z1 + 1 || z2 + 1 != end)
        return false;
    if ((size_t)(z1 - p) > HUB_STORE_NAME_MAX || (size_t)(z2 - z1 - 1) > HUB_STORE_NAME_MAX)
        return false;
    memcpy(out->message_id, key, key_len);
    out->message_id[key_len] = '\0';
    out->expires_at_us = hub_get_le64(val);
    memcpy(out->sender, p, (size_t)(z1 - p) + 1);
    memcpy(out->receiver, z1 + 1, (size_t)(z2 - z1));
    return store_codec__no_nul(out->message_id, key_len);
}
