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

/* Where the records come from: the local database (lth_lookup_answer_for()
 * and lth_verify_answer() use lth_popdb_get()), or a remote one (the NDXP
 * gateway asks the national data-sharing platform). The rules above are the
 * same whatever the source: the source is only asked about valid keys of
 * permitted requests, and only for the fields the purpose allows. */
typedef struct {
    const char *consumer;     /* the hub-authenticated requester */
    const char *purpose;      /* as the request gave them */
    const char *purpose_code; /* "" when none */
    const char *dossier_code; /* "" when none */
    lth_fields_t fields;      /* the fields the answer may carry (lookup: plus
                                 last_changed when the mode needs the dates);
                                 verify: the fields to compare */
} lth_source_query_t;

/* A declared identity to compare (citizen.verify/v1): only the fields the
 * purpose may have compared are set; a text "" / a date {0,0,0} / sex 0 is
 * not declared. */
typedef struct {
    const char *personal_id;
    const char *full_name;
    lth_date_t date_of_birth;
    int sex; /* lth_sex_t, 0 = not declared */
    const char *residence;
} lth_source_declared_t;

typedef struct {
    /* Fills *out with the record of a valid personal ID number: 0,
     * HUB_ENOTFOUND, or another code when the source failed: then the
     * answer is RESPONSE_STATUS_UNAVAILABLE, with the sentence the source
     * wrote into why (a default when it wrote none). */
    int (*get)(void *ctx, const lth_source_query_t *q, const char *personal_id, lth_citizen_t *out,
               char *why, size_t why_size);
    /* Optional (citizen.verify/v1): compares d's declared fields itself and
     * sets in *same the bits of those that match; the same returns as get().
     * NULL: the record is fetched with get() and compared here. */
    int (*compare)(void *ctx, const lth_source_query_t *q, const lth_source_declared_t *d,
                   lth_fields_t *same, char *why, size_t why_size);
    void *ctx;
} lth_source_t;

/* lth_lookup_answer_for() over any source (db unused). */
int lth_lookup_answer_from(const lth_source_t *source, const lth_lookup_policy_t *policy,
                           const char *content_type, const uint8_t *payload, size_t payload_len,
                           uint8_t **out, size_t *out_len, lth_lookup_counts_t *counts);
/* The source over a local database. */
lth_source_t lth_source_popdb(lth_popdb_t *db);

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
