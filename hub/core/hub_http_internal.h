/* hub_http_internal — private to hub_http.c and hub_http_answer.c: the
 * response a handler fills in, and the small buffer both files build with.
 * Not for the rest of hub/core (hub_http.h is the contract). */
#ifndef HUB_HTTP_INTERNAL_H
#define HUB_HTTP_INTERNAL_H

#include "hub_http.h"

#include <stddef.h>

/* A growable NUL-terminated byte buffer. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} hub_http__hbuf_t;

struct hub_http_response {
    int status;             /* 0 until the handler responds */
    char *content_type;     /* malloc'ed, or NULL */
    char *body;             /* malloc'ed, or NULL */
    size_t body_len;
    hub_http__hbuf_t extra; /* "Name: value\r\n" lines added by the handler */
};

/* Appends n bytes (and keeps a NUL after them); HUB_ENOMEM. */
int hub_http__hbuf_append(hub_http__hbuf_t *b, const char *p, size_t n);
/* Appends printf-style; HUB_EINVAL, HUB_ENOMEM. */
int hub_http__hbuf_printf(hub_http__hbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void hub_http__hbuf_free(hub_http__hbuf_t *b);

void hub_http__response_init(hub_http_response_t *resp);
/* Frees what resp holds and zeroes it. */
void hub_http__response_free(hub_http_response_t *resp);

#endif
