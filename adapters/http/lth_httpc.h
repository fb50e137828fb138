/* lth_httpc — one HTTP POST to a system outside the hub, with a timeout per
 * attempt and retries (libcurl). Shared by the plugins that call out: the
 * HTTP bridge's offered services and the NDXP gateway.
 *
 * Retries: after a connection failure (refused, reset, timed out, nothing
 * received) or an HTTP 5xx answer, the POST is sent again after a pause
 * (backoff_ms, doubling, at most backoff_max_ms), up to `retries` more
 * times; with `jitter`, each pause is drawn between half and all of that.
 * With `retry_429`, a 429 answer is retried too, after its Retry-After
 * (seconds or an HTTP date; the backoff when it has none). Never after
 * another 4xx or a 2xx/3xx answer: the system has decided. With a
 * `deadline_ms`, no attempt starts and no pause ends after it, and each
 * attempt's timeout is cut to what is left: the caller's answer comes in
 * time. Since a retried POST may reach the system twice, callers send an id
 * in a header for the system to de-duplicate by.
 *
 * While it waits — for the system, and during the pauses — the call runs
 * options.idle about every 10 ms, so that the caller can keep its other work
 * going (the bridge keeps the hub connection alive with it). Redirects are not
 * followed; only http and https URLs are used.
 *
 * Outbound authentication (lth_httpc_auth_t, optional, from the bridge's
 * plugin.* settings): a bearer token read from a file; or OAuth2 client
 * credentials (RFC 6749 section 4.4: the client id and secret in HTTP Basic
 * to the token endpoint), the access token cached until shortly before its
 * expires_in and fetched again then, or at once when the system answers 401
 * (one more attempt with the new token); and, with either or alone, a client
 * certificate and key for TLS and a CA file to check the system's
 * certificate (also used towards the token endpoint). Tokens and secrets are
 * never put in result.error or logged.
 *
 * Ownership: the result's body is malloc'ed; lth_httpc_result_free() frees.
 * Errors: 0 when an HTTP answer came (look at result.status, which may be a
 * 4xx/5xx), HUB_EIO when none did after every attempt (result.error says
 * why), HUB_EFULL when the answer was larger than max_response_bytes,
 * HUB_EINVAL, HUB_ENOMEM.
 */
#ifndef LTH_HTTPC_H
#define LTH_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lth_httpc_auth lth_httpc_auth_t;

typedef struct {
    uint32_t timeout_ms;        /* per attempt, connecting included */
    uint32_t retries;           /* further attempts after a retryable failure */
    uint32_t backoff_ms;        /* first pause between attempts (0 = 200 ms) */
    size_t max_response_bytes;  /* 0 = 1 MiB */
    void (*idle)(void *user);   /* called while waiting; may be NULL */
    void *idle_user;
    lth_httpc_auth_t *auth; /* outbound authentication; NULL = none */
    uint32_t backoff_max_ms;    /* longest pause (0 = 2000 ms) */
    bool jitter;                /* pauses drawn from [pause/2, pause] */
    bool retry_429;             /* retry 429 after its Retry-After */
    uint64_t deadline_ms;       /* lth_httpc_now_ms() time to give up by; 0 = none */
    const char *user_agent;     /* NULL = "lth-httpbridge/VERSION" */
} lth_httpc_options_t;

typedef struct {
    long status;             /* the last attempt's HTTP status; 0 if it got none */
    char content_type[128];  /* of the answer; "" when it had none */
    char *body;              /* malloc'ed, NUL-terminated; NULL when none */
    size_t body_len;
    unsigned attempts;
    char error[256];         /* status 0: why no answer came */
    uint32_t retry_after_ms; /* the last answer's Retry-After; 0 when none */
    bool tls_failed;         /* status 0 because TLS failed (certificate, CA, handshake) */
    bool deadline_hit;       /* retrying stopped at options.deadline_ms */
    bool token_failed;       /* OAuth2: no access token could be had (error says why) */
    long token_status;       /* with token_failed: the token endpoint's HTTP status, 0 = none */
} lth_httpc_result_t;

/* The monotonic clock deadline_ms counts in, in milliseconds. */
uint64_t lth_httpc_now_ms(void);

/* Must be called once before any other call (curl_global_init). */
int lth_httpc_global_init(void);
void lth_httpc_global_cleanup(void);

/* POSTs body to url; headers are "Name: value" lines (NULL-terminated list,
 * may be NULL). */
int lth_httpc_post(const char *url, const char *const *headers, const void *body, size_t len,
                   const lth_httpc_options_t *options, lth_httpc_result_t *result);
void lth_httpc_result_free(lth_httpc_result_t *result);

/* Reads the outbound authentication settings through get(user, KEY) (KEY
 * without the "plugin." prefix; NULL when unset):
 *   http_auth = none | bearer | oauth2         (default none)
 *   http_token_file = PATH                     bearer: the token, first line
 *   oauth2_token_url = https://…               oauth2: the token endpoint
 *   oauth2_client_id = ID
 *   oauth2_client_secret_file = PATH           the secret, first line
 *   oauth2_scope = SCOPE                       optional
 *   http_client_cert = PATH, http_client_key = PATH   TLS client certificate (PEM)
 *   http_ca_file = PATH                        CA certificates to check the system's
 * Secret files (token, client secret, client key) must not be readable by
 * group or others. *out is NULL when nothing is set. Errors name the
 * setting and what to write: HUB_EINVAL, HUB_EIO (a file), HUB_ENOMEM. */
int lth_httpc_auth_from_config(const char *(*get)(void *user, const char *key), void *user,
                               lth_httpc_auth_t **out, char *err, size_t err_size);
/* "none", "bearer token", "OAuth2 client credentials", plus " + client
 * certificate": for a log line. */
const char *lth_httpc_auth_describe(const lth_httpc_auth_t *auth, char *buf, size_t size);
/* Access tokens fetched so far (OAuth2). */
unsigned lth_httpc_auth_token_fetches(const lth_httpc_auth_t *auth);
/* Wipes the secrets; accepts NULL and sets *auth_p to NULL. */
void lth_httpc_auth_destroy(lth_httpc_auth_t **auth_p);

/* Opens path, the file the setting plugin.KEY names, for reading; with
 * secret, a file that group or others may read is refused. Returns the
 * descriptor (its size in *size), or HUB_EIO ("plugin.KEY: cannot read
 * PATH: REASON") or HUB_EPERM ("plugin.KEY PATH can be read by other users:
 * chmod 600 it") with the sentence in err. */
int lth_httpc_open_file(const char *key, const char *path, bool secret, size_t *size, char *err,
                        size_t err_size);
/* A bearer token: the first line of plugin.KEY's file (owner-only), at
 * least 16 characters, into token (token_size bytes). 0 or a code with a
 * sentence in err. */
int lth_httpc_read_token(const char *key, const char *path, char *token, size_t token_size,
                         char *err, size_t err_size);

#endif
