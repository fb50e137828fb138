/* ndxp_upstream — the national data-sharing platform's (NDXP) REST
 * interface to the National Population Database, as a record source for
 * lth_lookup and lth_verify (lth_source_t): one HTTPS POST per personal ID
 * number, OAuth2 client credentials, mutual TLS, retries within a deadline
 * (lth_httpc.h does the HTTP, the token cache and the retries).
 *
 * The interface (proto/DOMAIN.md, "The NDXP gateway", has it in full):
 *   POST BASE/citizens/lookup  {"personal_id", "fields": [...], "purpose",
 *        "purpose_code", "dossier_code", "requester"}
 *        200 {"citizen": {...}} with only the fields asked for;
 *        404 {"error": "citizen_not_found"}
 *   POST BASE/citizens/verify  {"personal_id", "declared": {...}, "purpose", ...}
 *        200 {"checks": {"full_name": "match" | "mismatch", ...}}; 404 as above
 * with "Authorization: Bearer TOKEN" and "X-Request-Id: the hub message id".
 *
 * Failures become a sentence whose first word is the lth.v1.NackCode name a
 * program can act on (FORBIDDEN, RATE_LIMITED, RECEIVER_OFFLINE, EXPIRED,
 * INTERNAL), which lth_lookup / lth_verify put in the UNAVAILABLE answer's
 * reason. The sentences hold statuses, attempts, times and setting names;
 * never a personal ID number, a name, a token or the secret.
 *
 * Ownership: ndxp_upstream_t owns its settings and the OAuth2 state; a call
 * (ndxp_call_t) lives on the handler's stack and borrows it.
 */
#ifndef NDXP_UPSTREAM_H
#define NDXP_UPSTREAM_H

#include "lth_httpc.h"
#include "lth_lookup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ndxp_upstream ndxp_upstream_t;

/* Reads the settings through get(user, KEY) (KEY without "plugin."):
 * base_url (https://, required), the OAuth2 and TLS settings of
 * lth_httpc_auth_from_config() (oauth2 only; client certificate and CA file
 * required), timeout_ms, retries, backoff_ms, backoff_max_ms. Errors name
 * the setting and what to write: HUB_EINVAL, HUB_EIO, HUB_ENOMEM. */
int ndxp_upstream_new(const char *(*get)(void *user, const char *key), void *user,
                      ndxp_upstream_t **out, char *err, size_t err_size);
void ndxp_upstream_destroy(ndxp_upstream_t **self_p);
/* For the start-up log line: "https://… with OAuth2 client credentials + …". */
const char *ndxp_upstream_describe(const ndxp_upstream_t *self, char *buf, size_t size);
unsigned ndxp_upstream_token_fetches(const ndxp_upstream_t *self);

/* One hub request answered through the platform. */
typedef struct {
    ndxp_upstream_t *upstream;
    uint64_t deadline_ms;     /* lth_httpc_now_ms() time: the request's TTL, or max_call_ms */
    const char *message_id;   /* sent as X-Request-Id */
    void (*idle)(void *user); /* run while waiting (heartbeats, other deliveries) */
    void *idle_user;
    /* What happened, for the log line: counts and statuses only. */
    unsigned calls, attempts, not_found;
    long last_status; /* the platform's last HTTP status; 0 = none */
    char code[24];    /* the NackCode name of a failure; "" = none */
} ndxp_call_t;

/* The source over the platform for one call. */
lth_source_t ndxp_source(ndxp_call_t *call);

#endif
