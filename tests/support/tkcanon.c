#include "tkcanon.h"

#include <string.h>

static bool tk__raw(tk_canon_t *buf, const void *p, size_t n)
{
    if (n > sizeof buf->b - buf->n)
        return false;
    if (n)
        memcpy(buf->b + buf->n, p, n);
    buf->n += n;
    return true;
}

static bool tk__be(tk_canon_t *buf, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        uint8_t byte = (uint8_t)(v >> (8 * i));
        if (!tk__raw(buf, &byte, 1))
            return false;
    }
    return true;
}

/* tag, 4-byte big-endian length, the bytes */
static bool tk__field(tk_canon_t *buf, uint8_t tag, const void *p, size_t n)
{
    return tk__raw(buf, &tag, 1) && tk__be(buf, n, 4) && tk__raw(buf, p, n);
}

static bool tk__str(tk_canon_t *buf, uint8_t tag, const char *s)
{
    return tk__field(buf, tag, s ? s : "", s ? strlen(s) : 0);
}

/* tag, then a fixed-width big-endian number */
static bool tk__num(tk_canon_t *buf, uint8_t tag, uint64_t v, int width)
{
    return tk__raw(buf, &tag, 1) && tk__be(buf, v, width);
}

bool tk_canonical(const hub_envelope_t *env, tk_canon_t *out)
{
    out->n = 0;
    return tk__raw(out, "LTH-ENVELOPE-V1", 16) /* with its NUL */ &&
           tk__str(out, 1, env->message_id) && tk__str(out, 2, env->correlation_id) &&
           tk__str(out, 3, env->sender) && tk__str(out, 4, env->receiver) &&
           tk__str(out, 5, env->service) && tk__num(out, 6, env->created_at_us, 8) &&
           tk__num(out, 7, env->ttl_ms, 4) && tk__str(out, 8, env->content_type) &&
           tk__field(out, 9, env->payload.data, env->payload.data ? env->payload.len : 0) &&
           tk__num(out, 10, (uint32_t)(int32_t)env->kind, 4) &&
           tk__num(out, 11, (uint32_t)(int32_t)env->delivery, 4);
}
