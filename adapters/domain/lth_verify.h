/* lth_verify — answers citizen.verify/v1: does what an applicant declared
 * match the population database? Verify, don't disclose: the answer says
 * match or mismatch per declared field, or why there is no comparison (not
 * found, invalid key, not permitted); it never carries a value of the record.
 *
 * lth_verify_answer() takes a request's content type and payload (an encoded
 * lth.domain.v1.CitizenVerifyRequest) and encodes the
 * lth.domain.v1.CitizenVerifyResponse, content type LTH_VERIFY_RESPONSE_TYPE:
 * - refused as a whole (RESPONSE_STATUS_INVALID, a reason, no results) when
 *   it is not a CitizenVerifyRequest, has no subjects or more than
 *   LTH_VERIFY_MAX_SUBJECTS, no purpose, a subject that declares nothing to
 *   compare or an invalid date of birth, or (under a disclosure set) no valid
 *   purpose_code;
 * - a requester that is not permitted (or, under a disclosure set, whose
 *   purpose no rule names) gets NOT_PERMITTED for every subject, and the
 *   database is not read;
 * - otherwise each subject is INVALID_KEY, NOT_FOUND or FOUND; for FOUND,
 *   each declared field is MATCH or MISMATCH, or WITHHELD when the purpose
 *   may not have that field compared (lth_disclose.h, LTH_USE_VERIFY);
 * - if the database fails, RESPONSE_STATUS_UNAVAILABLE with no results.
 *
 * Comparisons: names ignoring letter case (Vietnamese letters included:
 * "NGUYỄN VĂN AN" matches "Nguyễn Văn An") and repeated spaces; the date of
 * birth exactly; sex exactly; the residence against the permanent and the
 * temporary address, ignoring case, spaces and punctuation. Text is compared
 * as NFC UTF-8 (what every Vietnamese keyboard produces).
 *
 * Ownership: the caller owns *out (malloc'ed) and frees it with free().
 */
#ifndef LTH_VERIFY_H
#define LTH_VERIFY_H

#include "lth_lookup.h"

#define LTH_VERIFY_MAX_SUBJECTS 1000
#define LTH_VERIFY_REQUEST_TYPE LTH_DOMAIN_CONTENT_TYPE("CitizenVerifyRequest")
#define LTH_VERIFY_RESPONSE_TYPE LTH_DOMAIN_CONTENT_TYPE("CitizenVerifyResponse")

/* What one answer held: counts only, safe to log. */
typedef struct {
    int status;      /* lth.domain.v1.ResponseStatus */
    size_t subjects; /* in the request (0 if undecodable) */
    size_t all_match;
    size_t mismatch; /* FOUND with at least one MISMATCH */
    size_t not_found;
    size_t not_permitted;
    size_t invalid_key;
    size_t withheld; /* FOUND with a declared field WITHHELD */
} lth_verify_counts_t;

/* Answers one request; see the header comment. HUB_EINVAL for NULL
 * arguments, HUB_ENOMEM. */
int lth_verify_answer(lth_popdb_t *db, const lth_lookup_policy_t *policy, const char *content_type,
                      const uint8_t *payload, size_t payload_len, uint8_t **out, size_t *out_len,
                      lth_verify_counts_t *counts);

/* lth_verify_answer() over any source (lth_lookup.h). */
int lth_verify_answer_from(const lth_source_t *source, const lth_lookup_policy_t *policy,
                           const char *content_type, const uint8_t *payload, size_t payload_len,
                           uint8_t **out, size_t *out_len, lth_verify_counts_t *counts);

/* Folds text for comparison into out (at most out_size bytes with the NUL):
 * lower case (ASCII and the Latin letters Vietnamese uses), runs of spaces
 * as one, no leading or trailing space; with `drop_punct`, ',', '.', ';',
 * '-', '/' count as spaces. Exposed for tests. */
void lth_verify_fold(const char *text, bool drop_punct, char *out, size_t out_size);

#endif
