/* lth_httpc — one HTTP POST to a connected system, with a timeout per
 * attempt and retries, for the HTTP bridge's offered services (libcurl).
 *
 * Retries: after a connection failure (refused, reset, timed out, nothing
 * received) or an HTTP 5xx answer, the POST is sent again after a pause
 * (backoff_ms, doubling, at most 2 s), up to `retries` more times. Never
 * after a 4xx or another 2xx/3xx answer: the system has decided. Since a
 * retried POST may reach the system twice, the bridge sends the hub's message
 * id in a header for the system to de-duplicate by.
 *
 * While it waits — for the system, and during the pauses — the call runs
 * options.idle about every 10 ms, so that the caller can keep its other work
 * going (the bridge keeps the hub connection alive with it). Redirects are not
 * followed; only http and https URLs are used.
 *
 * Ownership: the result's body is malloc'ed; lth_httpc_result_free() frees.
 * Errors: 0 when an HTTP answer came (look at result.status, which may be a
 * 4xx/5xx), HUB_EIO when none did after every attempt (result.error says
 * why), HUB_EFULL when the answer was larger than max_response_bytes,
 * HUB_EINVAL, HUB_ENOMEM.
 */
#ifndef LTH_HTTPC_H
#define LTH_HTTPC_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t timeout_ms;        /* per attempt, connecting included */
    uint32_t retries;           /* further attempts after a retryable failure */
    uint32_t backoff_ms;        /* first pause between attempts (0 = 200 ms) */
    size_t max_response_bytes;  /* 0 = 1 MiB */
    void (*idle)(void *user);   /* called while waiting; may be NULL */
    void *idle_user;
} lth_httpc_options_t;

typedef struct {
    long status;             /* the last attempt's HTTP status; 0 if it got none */
    char content_type[128];  /* of the answer; "" when it had none */
    char *body;              /* malloc'ed, NUL-terminated; NULL when none */
    size_t body_len;
    unsigned attempts;
    char error[256];         /* status 0: why no answer came */
} lth_httpc_result_t;

/* Must be called once before any other call (curl_global_init). */
int lth_httpc_global_init(void);
void lth_httpc_global_cleanup(void);

/* POSTs body to url; headers are "Name: value" lines (NULL-terminated list,
 * may be NULL). */
int lth_httpc_post(const char *url, const char *const *headers, const void *body, size_t len,
                   const lth_httpc_options_t *options, lth_httpc_result_t *result);
void lth_httpc_result_free(lth_httpc_result_t *result);

#endif
