#include "hub_jsonw.h"
#include "hub_error.h"
#include "hub_utf8.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hub_jsonw_init(hub_jsonw_t *w) { memset(w, 0, sizeof *w); }

void hub_jsonw_free(hub_jsonw_t *w)
{
    hub_buf_free(&w->out);
    memset(w, 0, sizeof *w);
}

/* Appends n bytes; after the first error, nothing. */
static void jsonw__put(hub_jsonw_t *w, const char *p, size_t n) { hub_buf_put(&w->out, p, n); }

/* Before any value: the comma, and the check that objects get keys. */
static bool jsonw__value_start(hub_jsonw_t *w)
{
    if (w->out.error)
        return false;
    if (w->in_object[w->depth] && w->depth > 0) {
        if (!w->key_pending) {
            w->out.error = HUB_EINVAL;
            return false;
        }
        w->key_pending = false;
        return true;
    }
    if (w->depth == 0 && w->has_items[0]) {
        w->out.error = HUB_EINVAL; /* one top-level value only */
        return false;
    }
    if (w->has_items[w->depth])
        jsonw__put(w, ",", 1);
    w->has_items[w->depth] = true;
    return !w->out.error;
}

static void jsonw__open(hub_jsonw_t *w, bool object)
{
    if (!jsonw__value_start(w))
        return;
    if (w->depth >= HUB_JSONW_MAX_DEPTH) {
        w->out.error = HUB_EINVAL;
        return;
    }
    jsonw__put(w, object ? "{" : "[", 1);
    w->depth++;
    w->in_object[w->depth] = object;
    w->has_items[w->depth] = false;
}

static void jsonw__close(hub_jsonw_t *w, bool object)
{
    if (w->out.error)
        return;
    if (w->depth == 0 || w->in_object[w->depth] != object || w->key_pending) {
        w->out.error = HUB_EINVAL;
        return;
    }
    w->depth--;
    jsonw__put(w, object ? "}" : "]", 1);
}

void hub_jsonw_object_begin(hub_jsonw_t *w)
{
    jsonw__open(w, true);
}
void hub_jsonw_object_end(hub_jsonw_t *w)
{
    jsonw__close(w, true);
}
void hub_jsonw_array_begin(hub_jsonw_t *w)
{
    jsonw__open(w, false);
}
void hub_jsonw_array_end(hub_jsonw_t *w)
{
    jsonw__close(w, false);
}

static void jsonw__put_string(hub_jsonw_t *w, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    jsonw__put(w, "\"", 1);
    size_t run = 0; /* bytes at p[i - run .. i) to copy as they are */
    size_t i = 0;
    while (i < len && !w->out.error) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char ubuf[8];
        size_t step = 1;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '/' && i > 0 && p[i - 1] == '<')
            esc = "\\/";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
            esc = ubuf;
        } else if (c >= 0x80) {
            step = hub_utf8_len(p + i, len - i);
            if (step == 0) {
                esc = "\\ufffd";
                step = 1;
            }
        }
        if (esc) {
            jsonw__put(w, s + i - run, run);
            jsonw__put(w, esc, strlen(esc));
            run = 0;
        } else {
            run += step;
        }
        i += step;
    }
    jsonw__put(w, s + i - run, run);
    jsonw__put(w, "\"", 1);
}

void hub_jsonw_key(hub_jsonw_t *w, const char *key)
{
    if (w->out.error)
        return;
    if (w->depth == 0 || !w->in_object[w->depth] || w->key_pending || !key) {
        w->out.error = HUB_EINVAL;
        return;
    }
    if (w->has_items[w->depth])
        jsonw__put(w, ",", 1);
    w->has_items[w->depth] = true;
    jsonw__put_string(w, key, strlen(key));
    jsonw__put(w, ":", 1);
    w->key_pending = true;
}

void hub_jsonw_strn(hub_jsonw_t *w, const char *s, size_t len)
{
    if (!jsonw__value_start(w))
        return;
    if (!s)
        jsonw__put(w, "null", 4);
    else
        jsonw__put_string(w, s, len);
}

void hub_jsonw_str(hub_jsonw_t *w, const char *s) { hub_jsonw_strn(w, s, s ? strlen(s) : 0); }

void hub_jsonw_u64(hub_jsonw_t *w, uint64_t v)
{
    char buf[24];
    hub_jsonw_raw(w, buf, (size_t)snprintf(buf, sizeof buf, "%" PRIu64, v));
}

void hub_jsonw_i64(hub_jsonw_t *w, int64_t v)
{
    char buf[24];
    hub_jsonw_raw(w, buf, (size_t)snprintf(buf, sizeof buf, "%" PRId64, v));
}

void hub_jsonw_double(hub_jsonw_t *w, double v, int decimals)
{
    if (!jsonw__value_start(w))
        return;
    if (!isfinite(v)) {
        jsonw__put(w, "null", 4);
        return;
    }
    if (decimals < 0)
        decimals = 0;
    if (decimals > 9)
        decimals = 9;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%.*f", decimals, v);
    if (n <= 0 || (size_t)n >= sizeof buf) {
        n = snprintf(buf, sizeof buf, "%.17g", v);
    } else if (decimals > 0) {
        while (n > 1 && buf[n - 1] == '0')
            n--;
        if (buf[n - 1] == '.')
            n--;
    }
    if (n == 2 && buf[0] == '-' && buf[1] == '0')
        n = snprintf(buf, sizeof buf, "0");
    jsonw__put(w, buf, (size_t)n);
}

void hub_jsonw_bool(hub_jsonw_t *w, bool v)
{
    if (jsonw__value_start(w))
        jsonw__put(w, v ? "true" : "false", v ? 4 : 5);
}

void hub_jsonw_null(hub_jsonw_t *w)
{
    if (jsonw__value_start(w))
        jsonw__put(w, "null", 4);
}

void hub_jsonw_raw(hub_jsonw_t *w, const char *json, size_t len)
{
    if (jsonw__value_start(w))
        jsonw__put(w, json, len);
}

void hub_jsonw_kv_str(hub_jsonw_t *w, const char *key, const char *s)
{
    hub_jsonw_key(w, key);
    hub_jsonw_str(w, s);
}

void hub_jsonw_kv_u64(hub_jsonw_t *w, const char *key, uint64_t v)
{
    hub_jsonw_key(w, key);
    hub_jsonw_u64(w, v);
}

void hub_jsonw_kv_double(hub_jsonw_t *w, const char *key, double v, int decimals)
{
    hub_jsonw_key(w, key);
    hub_jsonw_double(w, v, decimals);
}

void hub_jsonw_kv_bool(hub_jsonw_t *w, const char *key, bool v)
{
    hub_jsonw_key(w, key);
    hub_jsonw_bool(w, v);
}

int hub_jsonw_finish(hub_jsonw_t *w, char **out, size_t *len)
{
    if (!out || !len)
        return HUB_EINVAL;
    *out = NULL;
    *len = 0;
    if (!w->out.error && (w->depth != 0 || w->key_pending || !w->has_items[0]))
        w->out.error = HUB_EINVAL;
    int rc = w->out.error;
    if (rc) {
        hub_jsonw_free(w);
        return rc;
    }
    *out = w->out.data;
    *len = w->out.len;
    memset(w, 0, sizeof *w);
    return 0;
}

void hub_jsonw_csv(hub_jsonw_t *w, const char *list)
{
    hub_jsonw_array_begin(w);
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n)
            hub_jsonw_strn(w, p, n);
        p += n + (p[n] == ',');
    }
    hub_jsonw_array_end(w);
}
