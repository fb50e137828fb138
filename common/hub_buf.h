/* hub_buf — a growable byte buffer with a sticky error, for building a
 * text (an exposition, a JSON answer) or collecting a body piece by piece
 * without checking every append:
 *
 *     hub_buf_t b = {0};
 *     hub_buf_puts(&b, "a");
 *     hub_buf_put(&b, p, n);
 *     hub_buf_printf(&b, "%d", 42);
 *     if (b.error) { hub_buf_free(&b); return b_error; }   // HUB_ENOMEM
 *
 * data is NUL-terminated once anything (even "") is written, and NULL
 * before. After the first failure every call does nothing and returns that
 * error, and data keeps what was written before it. The caller owns data:
 * hub_buf_free(), or take it and free() it later. Header-only: the SDK and
 * plugins need no symbol for it.
 */
#ifndef HUB_BUF_H
#define HUB_BUF_H

#include "hub_error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data; /* len bytes and a NUL; NULL until the first write */
    size_t len; /* bytes written, without the NUL */
    size_t cap; /* bytes allocated */
    int error;  /* 0, or the first error (HUB_ENOMEM): sticky */
} hub_buf_t;

/* Room for n more bytes and a NUL; 0 or the buffer's error. */
static inline int hub_buf_reserve(hub_buf_t *b, size_t n)
{
    if (b->error)
        return b->error;
    if (n > SIZE_MAX / 2 - b->len) {
        b->error = HUB_ENOMEM;
        return b->error;
    }
    if (!b->data || b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) {
            b->error = HUB_ENOMEM;
            return b->error;
        }
        b->data = data;
        b->cap = cap;
    }
    return 0;
}

/* Appends n bytes from p; 0 or the buffer's error. */
static inline int hub_buf_put(hub_buf_t *b, const void *p, size_t n)
{
    int rc = hub_buf_reserve(b, n);
    if (rc != 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Appends printf-style; 0, HUB_EINVAL (the format failed: nothing is
 * written, and the buffer stays usable) or the buffer's error. */
static inline int hub_buf_printf(hub_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int hub_buf_printf(hub_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return HUB_EINVAL;
    int rc = hub_buf_reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt,
              ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Appends the string s without its NUL. */
static inline int hub_buf_puts(hub_buf_t *b, const char *s)
{
    return hub_buf_put(b, s, strlen(s));
}

/* Frees data and empties b (error included); b may be reused. */
static inline void hub_buf_free(hub_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

#endif
