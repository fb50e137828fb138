/* hub_http_answer — what a handler of hub_http uses to read a request and
 * fill in its answer (see hub_http.h): responses, JSON errors, query
 * strings, bearer tokens. Nothing here touches a socket. */
#include "hub_bytes.h"
#include "hub_error.h"
#include "hub_http.h"
#include "hub_http_internal.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool http_answer__header_text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    }
    return true;
}

void hub_http__response_init(hub_http_response_t *resp) { memset(resp, 0, sizeof *resp); }

void hub_http__response_free(hub_http_response_t *resp)
{
    free(resp->content_type);
    free(resp->body);
    hub_buf_free(&resp->extra);
    memset(resp, 0, sizeof *resp);
}

/* ---- responses -------------------------------------------------------- */

int hub_http_respond(hub_http_response_t *resp, int status, const char *content_type,
                     const void *body, size_t len)
{
    if (!resp || status < 200 || status > 599 || (len && !body) || len > UINT32_MAX ||
        (content_type && !http_answer__header_text_ok(content_type)))
        return HUB_EINVAL;
    char *ctype = NULL;
    if (content_type && !(ctype = strdup(content_type)))
        return HUB_ENOMEM;
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        free(ctype);
        return HUB_ENOMEM;
    }
    if (len)
        memcpy(copy, body, len);
    free(resp->content_type);
    free(resp->body);
    resp->status = status;
    resp->content_type = ctype;
    resp->body = copy;
    resp->body_len = len;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t http_answer__utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t min, cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2, min = 0x80, cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3, min = 0x800, cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4, min = 0x10000, cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int hub_http_respond_json_error(hub_http_response_t *resp, int status, const char *message)
{
    if (!resp || !message)
        return HUB_EINVAL;
    hub_buf_t json = {0};
    int rc = hub_buf_put(&json, "{\"error\":\"", 10);
    const unsigned char *p = (const unsigned char *)message;
    size_t left = strlen(message);
    while (!rc && left > 0) {
        unsigned char c = *p;
        size_t step = 1;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = hub_buf_put(&json, esc, 2);
        } else if (c == '\n') {
            rc = hub_buf_put(&json, "\\n", 2);
        } else if (c == '\r') {
            rc = hub_buf_put(&json, "\\r", 2);
        } else if (c == '\t') {
            rc = hub_buf_put(&json, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            rc = hub_buf_printf(&json, "\\u%04x", c);
        } else if ((step = http_answer__utf8_len(p, left)) == 0) {
            /* Invalid UTF-8 would make the document invalid JSON. */
            step = 1;
            rc = hub_buf_put(&json, "\\ufffd", 6);
        } else {
            rc = hub_buf_put(&json, (const char *)p, step);
        }
        p += step;
        left -= step;
    }
    if (!rc)
        rc = hub_buf_put(&json, "\"}", 2);
    if (!rc)
        rc = hub_http_respond(resp, status, "application/json", json.data, json.len);
    hub_buf_free(&json);
    return rc;
}

int hub_http_response_header(hub_http_response_t *resp, const char *name, const char *value)
{
    static const char *const reserved[] = {"Content-Length", "Content-Type", "Connection",
                                           "Transfer-Encoding", "Cache-Control",
                                           "X-Content-Type-Options"};
    if (!resp || !name || !value || !*name || !http_answer__header_text_ok(value))
        return HUB_EINVAL;
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p)))
            return HUB_EINVAL;
    }
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        if (strcasecmp(name, reserved[i]) == 0)
            return HUB_EINVAL;
    }
    return hub_buf_printf(&resp->extra, "%s: %s\r\n", name, value);
}

/* ---- query strings and tokens ----------------------------------------- */

/* Decodes the next byte of src[*i..n): '+' is a space, %XX a byte.
 * Returns the byte, or -1 for a bad escape. */
static int http_answer__pct_next(const char *src, size_t n, size_t *i)
{
    char c = src[*i];
    if (c == '+') {
        (*i)++;
        return ' ';
    }
    if (c != '%') {
        (*i)++;
        return (unsigned char)c;
    }
    if (n - *i < 3)
        return -1;
    int hi = hub_hex_digit(src[*i + 1]), lo = hub_hex_digit(src[*i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    *i += 3;
    return hi * 16 + lo;
}

static bool http_answer__pct_equals(const char *src, size_t n, const char *name)
{
    size_t i = 0;
    const unsigned char *q = (const unsigned char *)name;
    while (i < n) {
        int c = http_answer__pct_next(src, n, &i);
        if (c < 0 || *q == '\0' || c != *q)
            return false;
        q++;
    }
    return *q == '\0';
}

int hub_http_query_get(const char *query, const char *name, char *buf, size_t size)
{
    if (!query || !name || !buf || size == 0)
        return HUB_EINVAL;
    buf[0] = '\0';
    const char *p = query;
    while (*p) {
        size_t pair_len = strcspn(p, "&");
        size_t key_len = strcspn(p, "=&");
        if (key_len > 0 && http_answer__pct_equals(p, key_len, name)) {
            const char *val = p + key_len;
            size_t val_len = pair_len - key_len;
            if (val_len > 0) { /* skip '=' */
                val++;
                val_len--;
            }
            size_t i = 0, out = 0;
            while (i < val_len) {
                int c = http_answer__pct_next(val, val_len, &i);
                if (c <= 0) {
                    buf[0] = '\0';
                    return HUB_EPARSE;
                }
                if (out + 1 >= size) {
                    buf[0] = '\0';
                    return HUB_EFULL;
                }
                buf[out++] = (char)c;
            }
            buf[out] = '\0';
            return 0;
        }
        p += pair_len;
        if (*p == '&')
            p++;
    }
    return HUB_ENOTFOUND;
}

bool hub_http_token_ok(const hub_http_request_t *req, const char *expected_token)
{
    if (!req || !req->bearer_token || !expected_token || !*expected_token)
        return false;
    unsigned char got[SHA256_DIGEST_LENGTH], want[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)req->bearer_token, strlen(req->bearer_token), got);
    SHA256((const unsigned char *)expected_token, strlen(expected_token), want);
    return CRYPTO_memcmp(got, want, sizeof got) == 0;
}
