#include "hub_wire.h"
#include "hub_error.h"
#include "hub_id.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int hub_frame_decode(const void *data, size_t len, hub_frame_t **out)
{
    *out = lth__v1__frame__unpack(NULL, len, data);
    if (!*out)
        return HUB_EPARSE;
    if ((*out)->body_case == LTH__V1__FRAME__BODY__NOT_SET) {
        hub_frame_free(out);
        return HUB_EINVAL;
    }
    return 0;
}

int hub_frame_decode_in(hub_arena_t *arena, const void *data, size_t len, hub_frame_t **out)
{
    *out = lth__v1__frame__unpack(hub_arena_pb(arena), len, data);
    if (!*out)
        return HUB_EPARSE;
    if ((*out)->body_case == LTH__V1__FRAME__BODY__NOT_SET) {
        *out = NULL; /* its memory goes with the arena */
        return HUB_EINVAL;
    }
    return 0;
}

void hub_frame_free(hub_frame_t **frame_p)
{
    if (frame_p && *frame_p) {
        lth__v1__frame__free_unpacked(*frame_p, NULL);
        *frame_p = NULL;
    }
}

int hub_frame_encode(hub_frame_t *frame, uint8_t **out, size_t *out_len)
{
    frame->protocol_version = HUB_PROTOCOL_VERSION;
    return hub_pb_pack(&frame->base, out, out_len);
}

int hub_envelope_decode(const void *data, size_t len, hub_envelope_t **out)
{
    *out = lth__v1__envelope__unpack(NULL, len, data);
    return *out ? 0 : HUB_EPARSE;
}

int hub_envelope_decode_in(hub_arena_t *arena, const void *data, size_t len, hub_envelope_t **out)
{
    *out = lth__v1__envelope__unpack(hub_arena_pb(arena), len, data);
    return *out ? 0 : HUB_EPARSE;
}

size_t hub_pb_head(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    size_t k = hub_pb_varint(p, end, v);
    return k <= 5 ? k : 0;
}

size_t hub_pb_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
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
static char *wire__view_string(hub_arena_t *arena, const uint8_t *p, size_t n)
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
hub_envelope_t *hub_envelope_view(hub_arena_t *arena, const uint8_t *bytes, size_t len)
{
    hub_envelope_t *env = hub_arena_alloc(arena, sizeof *env);
    if (!env || !bytes)
        return NULL;
    lth__v1__envelope__init(env);
    const uint8_t *p = bytes, *end = bytes + len;
    uint32_t seen = 0;
    while (p < end) {
        uint64_t key, v;
        size_t k = hub_pb_head(p, end, &key);
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
        if (!(k = is_len ? hub_pb_head(p, end, &v) : hub_pb_varint(p, end, &v)))
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
            char *str = wire__view_string(arena, value, n);
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

int hub_envelope_read_in(hub_arena_t *arena, const uint8_t *bytes, size_t len,
                         hub_envelope_t **out, bool *in_place)
{
    hub_arena_mark_t mark = hub_arena_mark(arena);
    *out = hub_envelope_view(arena, bytes, len);
    if (in_place)
        *in_place = *out != NULL;
    if (*out)
        return 0;
    hub_arena_release(arena, mark); /* what the in-place attempt took */
    if (hub_envelope_decode_in(arena, bytes, len, out) != 0) {
        hub_arena_release(arena, mark);
        *out = NULL;
        return HUB_EPARSE;
    }
    return 0;
}

/* One DeliveredEnvelope in the plain shape: hub_seq (1), envelope (2),
 * attempt (3, 32 bits) and sender_sign_key (4), each at most once with its
 * own wire type; its bytes fields point into p. */
static bool wire__view_delivered(const uint8_t *p, const uint8_t *end,
                                 Lth__V1__DeliveredEnvelope *item)
{
    lth__v1__delivered_envelope__init(item);
    uint32_t seen = 0;
    while (p < end) {
        uint64_t key, v;
        size_t k = hub_pb_head(p, end, &key);
        if (!k || key > (4u << 3 | 7u))
            return false;
        p += k;
        uint32_t field = (uint32_t)(key >> 3), wire = (uint32_t)(key & 7);
        if (field == 0 || (seen & (1u << field)))
            return false;
        seen |= 1u << field;
        bool is_len = field == 2 || field == 4;
        if (wire != (is_len ? 2u : 0u) ||
            !(k = is_len ? hub_pb_head(p, end, &v) : hub_pb_varint(p, end, &v)))
            return false;
        p += k;
        if (field == 1) {
            item->hub_seq = v;
        } else if (field == 3) {
            if (v > UINT32_MAX || k > 5)
                return false;
            item->attempt = (uint32_t)v;
        } else {
            if (v > (uint64_t)(end - p))
                return false;
            ProtobufCBinaryData *b = field == 2 ? &item->envelope : &item->sender_sign_key;
            b->data = v ? (uint8_t *)p : NULL; /* as protobuf-c leaves an empty one */
            b->len = (size_t)v;
            p += v;
        }
    }
    return true;
}

/* A Deliveries frame in the plain shape the hub sends: protocol_version
 * (1) and deliveries (6) once each; in the Deliveries, items (1) and at
 * most one receipts (2, unpacked by protobuf-c into the arena). */
static hub_frame_t *wire__view_deliveries(hub_arena_t *arena, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len, *body = NULL, *body_end = NULL;
    uint64_t key, v, version = 0;
    bool have_version = false;
    size_t k;
    while (p < end) {
        if (!(k = hub_pb_head(p, end, &key)))
            return NULL;
        p += k;
        if (key == ((1u << 3) | 0u) && !have_version) {
            if (!(k = hub_pb_varint(p, end, &version)) || k > 5 || version > UINT32_MAX)
                return NULL;
            have_version = true;
        } else if (key == ((6u << 3) | 2u) && !body) {
            if (!(k = hub_pb_head(p, end, &v)) || v > (uint64_t)(end - p - k))
                return NULL;
            body = p + k;
            body_end = body + v;
            k += (size_t)v;
        } else {
            return NULL;
        }
        p += k;
    }
    if (!body)
        return NULL;
    /* Items counted first, for the array. */
    size_t n_items = 0;
    const uint8_t *receipts = NULL;
    size_t receipts_len = 0;
    for (const uint8_t *q = body; q < body_end;) {
        if (!(k = hub_pb_head(q, body_end, &key)))
            return NULL;
        q += k;
        if ((key != ((1u << 3) | 2u) && key != ((2u << 3) | 2u)) ||
            !(k = hub_pb_head(q, body_end, &v)) || v > (uint64_t)(body_end - q - k))
            return NULL;
        q += k;
        if (key == ((2u << 3) | 2u)) {
            if (receipts)
                return NULL;
            receipts = q;
            receipts_len = (size_t)v;
        } else {
            n_items++;
        }
        q += v;
    }
    hub_frame_t *frame = hub_arena_alloc(arena, sizeof *frame);
    Lth__V1__Deliveries *dl = hub_arena_alloc(arena, sizeof *dl);
    Lth__V1__DeliveredEnvelope *items =
        n_items ? hub_arena_alloc(arena, n_items * sizeof *items) : NULL;
    Lth__V1__DeliveredEnvelope **ptrs =
        n_items ? hub_arena_alloc(arena, n_items * sizeof *ptrs) : NULL;
    if (!frame || !dl || (n_items && (!items || !ptrs)))
        return NULL;
    lth__v1__frame__init(frame);
    lth__v1__deliveries__init(dl);
    frame->protocol_version = (uint32_t)version;
    frame->body_case = LTH__V1__FRAME__BODY_DELIVERIES;
    frame->deliveries = dl;
    dl->items = ptrs;
    if (receipts) {
        dl->receipts = lth__v1__receipts__unpack(hub_arena_pb(arena), receipts_len, receipts);
        if (!dl->receipts)
            return NULL;
    }
    for (const uint8_t *q = body; q < body_end;) {
        q += hub_pb_varint(q, body_end, &key);
        q += hub_pb_varint(q, body_end, &v);
        if (key == ((1u << 3) | 2u)) {
            /* The same bytes as counted above: n_items of them. */
            if (dl->n_items >= n_items || !wire__view_delivered(q, q + v, &items[dl->n_items]))
                return NULL;
            ptrs[dl->n_items] = &items[dl->n_items];
            dl->n_items++;
        }
        q += v;
    }
    return frame;
}

int hub_frame_view(hub_arena_t *arena, const void *data, size_t len, hub_frame_t **out)
{
    hub_arena_mark_t mark = hub_arena_mark(arena);
    *out = data ? wire__view_deliveries(arena, data, len) : NULL;
    if (*out)
        return 0;
    hub_arena_release(arena, mark);
    return hub_frame_decode_in(arena, data, len, out);
}

void hub_envelope_free(hub_envelope_t **env_p)
{
    if (env_p && *env_p) {
        lth__v1__envelope__free_unpacked(*env_p, NULL);
        *env_p = NULL;
    }
}

int hub_envelope_check(const hub_envelope_t *env, const char **problem)
{
    if (!hub_uuid_valid(env->message_id))
        *problem = "message_id must be a UUID in lower-case text form";
    else if (env->correlation_id[0] && !hub_uuid_valid(env->correlation_id))
        *problem = "correlation_id must be empty or a UUID";
    else if (env->kind == LTH__V1__KIND__KIND_REPLY && !env->correlation_id[0])
        *problem = "a reply needs correlation_id set to the request's message_id";
    else if (!hub_member_id_valid(env->sender))
        *problem = "sender must be a member id INSTANCE/CLASS/MEMBER/SUBSYSTEM";
    else if (!hub_member_id_valid(env->receiver))
        *problem = "receiver must be a member id INSTANCE/CLASS/MEMBER/SUBSYSTEM";
    else if (!hub_service_valid(env->service))
        *problem = "service must be SERVICE/VERSION, e.g. citizen.lookup/v1";
    else if ((int)env->kind < 0 || env->kind > LTH__V1__KIND__KIND_EVENT)
        *problem = "kind must be REQUEST, REPLY or EVENT";
    else if ((int)env->delivery < 0 || env->delivery > LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY)
        *problem = "delivery must be QUEUED or ONLINE_ONLY";
    else if (strlen(env->content_type) > 255)
        *problem = "content_type is longer than 255 bytes";
    else
        return 0;
    return HUB_EINVAL;
}

/* One pass over the fields of one message: a bit per field number seen
 * (numbers above 63 are not in our schema and are refused by the caller
 * as unknown fields). Which fields may repeat and which hold a nested
 * message is read from the descriptor's few fields first, so that the
 * pass itself costs a few shifts per field; the descriptor is searched
 * only to name a field or to descend into one. `outer` names the
 * enclosing field in messages ("batch_proof"), NULL at the top. */
static int hub__wire_check_once(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
                                size_t len, const char *outer, int depth, char *why,
                                size_t why_size)
{
    uint64_t repeated = 0, nested = 0;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->id > 63)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            repeated |= 1ull << f->id;
        else if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            nested |= 1ull << f->id;
    }
    uint64_t seen = 0;
    size_t off = 0;
    while (off < len) {
        uint64_t key, n;
        size_t k = hub_pb_varint(p + off, p + len, &key);
        if (!k)
            return HUB_EPARSE;
        off += k;
        uint64_t number = key >> 3;
        unsigned wire_type = (unsigned)(key & 7);
        const uint8_t *value = p + off;
        size_t value_len = 0;
        switch (wire_type) {
        case 0: /* varint */
            if (!(k = hub_pb_varint(p + off, p + len, &n)))
                return HUB_EPARSE;
            off += k;
            break;
        case 1: /* 64-bit */
        case 5: /* 32-bit */
            k = wire_type == 1 ? 8 : 4;
            if (len - off < k)
                return HUB_EPARSE;
            off += k;
            break;
        case 2: /* length-delimited */
            if (!(k = hub_pb_varint(p + off, p + len, &n)) || n > len - off - k)
                return HUB_EPARSE;
            value = p + off + k;
            value_len = (size_t)n;
            off += k + (size_t)n;
            break;
        default: /* groups (3, 4) and 6, 7: not in proto3 */
            return HUB_EPARSE;
        }
        if (number == 0)
            return HUB_EPARSE;
        if (number > 63)
            continue;
        uint64_t bit = 1ull << number;
        if (repeated & bit)
            continue;
        if (seen & bit) {
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field(desc, (unsigned)number);
            if (!f)
                continue; /* unknown: the caller refuses it from the decoded copy */
            snprintf(why, why_size,
                     "field %u (%s%s%s) appears twice; parsers disagree on which value counts, "
                     "so the hub refuses it: encode each field of the envelope once",
                     (unsigned)number, outer ? outer : "", outer ? "." : "", f->name);
            return HUB_EINVAL;
        }
        seen |= bit;
        if ((nested & bit) && wire_type == 2 && depth < 1) {
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field(desc, (unsigned)number);
            int rc = hub__wire_check_once(f->descriptor, value, value_len, f->name, depth + 1,
                                          why, why_size);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

int hub_envelope_check_encoding(const void *data, size_t len, char *why, size_t why_size)
{
    char dummy[8];
    if (!why || !why_size) {
        why = dummy;
        why_size = sizeof dummy;
    }
    why[0] = '\0';
    if (!data && len)
        return HUB_EINVAL;
    int rc = hub__wire_check_once(&lth__v1__envelope__descriptor, data, len, NULL, 0, why,
                                  why_size);
    if (rc == HUB_EPARSE)
        snprintf(why, why_size, "the envelope is not valid protobuf wire format");
    return rc;
}

/* Random bytes for message ids come from a small per-thread pool filled by
 * one getrandom() call (libsodium's randombytes_buf) instead of one system
 * call per id: senders make one id per envelope. A forked child starts
 * with an empty pool, so that parent and child never share ids. */
static _Thread_local uint8_t hub__rnd_pool[512];
static _Thread_local size_t hub__rnd_left;
static pthread_once_t hub__rnd_once = PTHREAD_ONCE_INIT;

static void hub__rnd_after_fork(void)
{
    sodium_memzero(hub__rnd_pool, sizeof hub__rnd_pool);
    hub__rnd_left = 0;
}

static void hub__rnd_register(void)
{
    pthread_atfork(NULL, NULL, hub__rnd_after_fork);
}

void hub_uuid_new(char out[HUB_UUID_LEN + 1])
{
    pthread_once(&hub__rnd_once, hub__rnd_register);
    if (hub__rnd_left < 16) {
        randombytes_buf(hub__rnd_pool, sizeof hub__rnd_pool);
        hub__rnd_left = sizeof hub__rnd_pool;
    }
    uint8_t b[16];
    uint8_t *src = hub__rnd_pool + sizeof hub__rnd_pool - hub__rnd_left;
    memcpy(b, src, sizeof b);
    sodium_memzero(src, sizeof b); /* used once */
    hub__rnd_left -= sizeof b;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < sizeof b; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
}

/* Lower-case hex digits. */
static const bool wire__hex[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
};

bool hub_uuid_valid(const char *text)
{
    /* Every envelope's ids pass here (twice for a message id): no branch
     * per character. */
    if (!text || strnlen(text, HUB_UUID_LEN + 1) != HUB_UUID_LEN || text[8] != '-' ||
        text[13] != '-' || text[18] != '-' || text[23] != '-')
        return false;
    static const uint8_t hex_at[32] = {0,  1,  2,  3,  4,  5,  6,  7,  9,  10, 11,
                                       12, 14, 15, 16, 17, 19, 20, 21, 22, 24, 25,
                                       26, 27, 28, 29, 30, 31, 32, 33, 34, 35};
    const unsigned char *u = (const unsigned char *)text;
    bool ok = true;
    for (size_t k = 0; k < sizeof hex_at; k++)
        ok &= wire__hex[u[hex_at[k]]];
    return ok;
}

const char *hub_nack_code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&lth__v1__nack_code__descriptor, code);
    /* Names are "NACK_X"; drop the prefix. */
    return v ? v->name + 5 : "UNKNOWN";
}

/* hub_pb_varint at *p, moving *p past it; false when cut short or too
 * long. */
static bool wire__varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    size_t k = hub_pb_varint(*p, end, v);
    *p += k;
    return k != 0;
}

bool hub_pb_next(const uint8_t **p, const uint8_t *end, uint32_t *field, const uint8_t **value,
                 size_t *value_len)
{
    uint64_t key, len = 0;
    if (!*p || *p >= end || !wire__varint(p, end, &key))
        return false;
    *field = (uint32_t)(key >> 3);
    *value = NULL;
    *value_len = 0;
    switch (key & 7) {
    case 0: /* varint */
        while (*p < end && (*(*p)++ & 0x80))
            ;
        return true;
    case 1: len = 8; break;
    case 5: len = 4; break;
    case 2:
        if (!wire__varint(p, end, &len))
            return false;
        *value = *p;
        *value_len = (size_t)len;
        break;
    default: return false;
    }
    if (len > (uint64_t)(end - *p))
        return false;
    *p += len;
    return true;
}

void hub_envelope_peek_id(const uint8_t *data, size_t len, char *out)
{
    out[0] = '\0';
    const uint8_t *p = data, *end = data ? data + len : NULL, *value;
    uint32_t field;
    size_t n;
    while (hub_pb_next(&p, end, &field, &value, &n)) {
        if (field != 1 || !value)
            continue;
        char id[HUB_UUID_LEN + 1];
        if (n != HUB_UUID_LEN)
            return;
        memcpy(id, value, n);
        id[n] = '\0';
        if (hub_uuid_valid(id))
            memcpy(out, id, sizeof id);
        return;
    }
}
