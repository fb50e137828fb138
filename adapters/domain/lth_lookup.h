/* lth_lookup — answers citizen.lookup/v1 from a population database.
 *
 * lth_lookup_answer() takes a request's content type and payload (an encoded
 * lth.domain.v1.CitizenLookupRequest), checks it, looks each key up and
 * encodes the lth.domain.v1.CitizenLookupResponse, content type
 * LTH_LOOKUP_RESPONSE_TYPE. The rules (proto/DOMAIN.md has the full table):
 * - the request as a whole is refused (RESPONSE_STATUS_INVALID, a reason, no
 *   results) when it is not a CitizenLookupRequest, has no keys or more than
 *   LTH_LOOKUP_MAX_KEYS, has no purpose, an unknown mode, no valid date for
 *   AS_OF / CHANGES_SINCE, or a date with CURRENT;
 * - a requester that is not permitted gets NOT_PERMITTED for every key, and
 *   the database is not read;
 * - with a disclosure set (lth_disclose.h), a request without a valid
 *   purpose_code is refused as a whole, a (requester, purpose_code) that no
 *   rule names gets NOT_PERMITTED for every key, and a FOUND record carries
 *   only the fields the purpose may receive, the others left empty and named
 *   in withheld_fields;
 * - otherwise each key is INVALID_KEY (lth_pid_check's sentence), NOT_FOUND
 *   or FOUND, as of the mode; CHANGES_SINCE leaves out the records unchanged
 *   since the date;
 * - if the database fails, RESPONSE_STATUS_UNAVAILABLE with no results.
 *
 * Personal data never leaves this module except in the response: counts say
 * what happened, for logs and metrics.
 *
 * Ownership: the caller owns *out (malloc'ed) and frees it with free().
 */
#ifndef LTH_LOOKUP_H
#define LTH_LOOKUP_H

#include "lth_disclose.h"
#include "lth_domain.h"
#include "lth_popdb.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LTH_LOOKUP_MAX_KEYS 1000
#define LTH_LOOKUP_REQUEST_TYPE LTH_DOMAIN_CONTENT_TYPE("CitizenLookupRequest")
#define LTH_LOOKUP_RESPONSE_TYPE LTH_DOMAIN_CONTENT_TYPE("CitizenLookupResponse")

/* What one answer held: counts only, safe to log. */
typedef struct {
    int status;  /* lth.domain.v1.ResponseStatus of the response */
    size_t keys; /* keys in the request (0 if it could not be decoded) */
    size_t found;
    size_t not_found;
    size_t not_permitted;
    size_t invalid_key;
    size_t unchanged; /* CHANGES_SINCE: records left out */
    size_t withheld;  /* FOUND records with fields withheld for the purpose */
} lth_lookup_counts_t;

/* What the provider knows about the requester. */
typedef struct {
    bool permitted;                     /* the requester may see records here at all */
    const char *consumer;               /* the hub-authenticated sender */
    const lth_disclosure_t *disclosure; /* NULL: every field to every permitted requester */
} lth_lookup_policy_t;

/* Answers one request. `permitted`: whether the requesting member (the
 * hub-authenticated sender) may see records here. On 0, *out / *out_len hold
 * the encoded response (also for a refused request); counts may be NULL.
 * Returns HUB_EINVAL for NULL arguments, HUB_ENOMEM. */
int lth_lookup_answer(lth_popdb_t *db, bool permitted, const char *content_type,
                      const uint8_t *payload, size_t payload_len, uint8_t **out, size_t *out_len,
                      lth_lookup_counts_t *counts);
/* The same under a policy (fields by purpose). */
int lth_lookup_answer_for(lth_popdb_t *db, const lth_lookup_policy_t *policy,
                          const char *content_type, const uint8_t *payload, size_t payload_len,
                          uint8_t **out, size_t *out_len, lth_lookup_counts_t *counts);

/* For a request's purpose_code under a policy: the fields allowed for `use`
 * (into *fields), or a sentence saying why the request is refused as a
 * whole (*invalid: a missing or malformed purpose code) or why every key is
 * NOT_PERMITTED (no rule names that consumer and purpose; written into buf).
 * NULL when answered. Shared by citizen.lookup and citizen.verify. */
const char *lth_lookup_purpose_check(const lth_lookup_policy_t *policy, const char *purpose_code,
                                     lth_use_t use, lth_fields_t *fields, bool *invalid, char *buf,
                                     size_t buf_size);
/* What citizen.lookup and citizen.verify decide before reading the
 * database, after the request's own checks (*problem, NULL when it passed
 * them): *problem when the request is refused as a whole (INVALID), else
 * *denied when every key is NOT_PERMITTED (the consumer is not permitted,
 * or no rule names it and the purpose), else both NULL and *fields the
 * fields the purpose allows. Sentences may be written into buf. */
void lth_lookup_decide(const lth_lookup_policy_t *policy, const char *purpose_code, lth_use_t use,
                       const char **problem, const char **denied, lth_fields_t *fields, char *buf,
                       size_t buf_size);

#endif
