/* hub_tsa — RFC 3161 time-stamps for the audit log's checkpoints.
 *
 * Two parts:
 *   hub_tsa_verify()   checks one token (a DER TimeStampResp, what
 *                      `openssl ts -reply` writes) against a checkpoint's
 *                      hash and, when given, the TSA's certificate: status
 *                      granted, version, message imprint (SHA-256), and the
 *                      signature by a certificate the PEM file vouches for
 *                      (with the critical timeStamping key usage). Pure: no
 *                      state, used by hubd and by `hubctl audit verify`.
 *   hub_tsa_client_t   hubd's client: one thread of its own that POSTs
 *                      time-stamp requests (application/timestamp-query)
 *                      to the configured TSA URL with libcurl, never on the
 *                      loop thread. The loop offers each new durable
 *                      checkpoint; the thread stamps the newest one once
 *                      every_us has passed since the last token, writes the
 *                      token to DIR/audit-cp-SEQ.tsr (temporary file, fsync,
 *                      rename, fsync of the directory), and hands the loop
 *                      the token's SHA-256 through a uv_async_t, so that the
 *                      hub records a TIMESTAMPED audit record naming it. A
 *                      TSA that fails or is down is retried after retry_us
 *                      with the newest checkpoint then; it delays
 *                      time-stamps, never messages, and hub_tsa_client_state()
 *                      says since when it fails (metrics, alarm).
 *
 * Ownership: the client owns its thread, its uv_async_t (closed by
 * hub_tsa_client_destroy(), which joins the thread; the loop must run
 * afterwards for the close callback) and copies of the strings it is given.
 * Errors: HUB_EINVAL, HUB_ENOMEM, HUB_ECRYPTO (a forged or mismatching
 * token), HUB_EPARSE (not a token), HUB_EIO, HUB_ETIMEDOUT.
 */
#ifndef HUB_TSA_H
#define HUB_TSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Checks a DER TimeStampResp: status granted, version 1, imprint SHA-256
 * equal to hash, and, when tsa_cert_pem names a file, the signature by a
 * certificate that file holds or vouches for. *gen_time_us (may be NULL)
 * gets the token's time. err says what is wrong. */
int hub_tsa_verify(const uint8_t *resp, size_t len, const uint8_t hash[32],
                   const char *tsa_cert_pem, uint64_t *gen_time_us, char *err, size_t err_size);

typedef struct {
    const char *url;      /* http(s)://host:port/path of the TSA */
    const char *cert_pem; /* the TSA's certificate, to check replies; NULL = imprint only */
    const char *dir;      /* the audit directory: tokens go there */
    uint64_t every_us;    /* at most one token per this long; 0 = every checkpoint */
    uint64_t retry_us;    /* after a failure; 0 = 30 s */
    uint64_t timeout_us;  /* per request; 0 = 10 s */
} hub_tsa_config_t;

/* What the loop learns when a token is on disk (loop thread). */
typedef void (*hub_tsa_stamped_cb)(void *user, uint64_t cp_seq, const uint8_t token_sha256[32],
                                   uint64_t gen_time_us);

typedef struct {
    uint64_t tokens;           /* written since start */
    uint64_t failures;         /* requests that failed since start */
    uint64_t last_stamped_seq; /* checkpoint of the newest token; 0 = none yet */
    uint64_t failing_since_us; /* wall clock of the first failure since the last
                                  success; 0 = not failing */
    uint64_t pending_seq;      /* newest checkpoint without a token; 0 = none */
    char last_error[256];
} hub_tsa_state_t;

typedef struct hub_tsa_client hub_tsa_client_t;

int hub_tsa_client_new(uv_loop_t *loop, const hub_tsa_config_t *cfg, hub_tsa_stamped_cb stamped,
                       void *user, hub_tsa_client_t **out);
/* A new checkpoint is durable (loop thread; cheap: wakes the thread). */
void hub_tsa_client_offer(hub_tsa_client_t *self, uint64_t seq, const uint8_t hash[32]);
void hub_tsa_client_state(hub_tsa_client_t *self, hub_tsa_state_t *out);
/* Stops the thread (an HTTP request in progress ends at its timeout). */
void hub_tsa_client_destroy(hub_tsa_client_t **self_p);

#endif
