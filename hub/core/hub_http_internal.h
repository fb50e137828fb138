/* hub_http_internal — private to hub_http.c and hub_http_answer.c: the
 * response a handler fills in.
 * Not for the rest of hub/core (hub_http.h is the contract). */
#ifndef HUB_HTTP_INTERNAL_H
#define HUB_HTTP_INTERNAL_H

#include "hub_buf.h"
#include "hub_http.h"

#include <stddef.h>

struct hub_http_response {
    int status;             /* 0 until the handler responds */
    char *content_type;     /* malloc'ed, or NULL */
    char *body;             /* malloc'ed, or NULL */
    size_t body_len;
    hub_buf_t extra; /* "Name: value\r\n" lines added by the handler */
};

void hub_http__response_init(hub_http_response_t *resp);
/* Frees what resp holds and zeroes it. */
void hub_http__response_free(hub_http_response_t *resp);

#endif
