/* tkcitizen — citizen.lookup/v1 and citizen.verify/v1 asked of a member,
 * as the end-to-end tests of the citizen services (population, ndxp, the
 * access register) ask them: the request packed, sent, and the answer
 * checked (from that member, of the response type) and decoded.
 *
 * Built with the tests that link lth_domain (tests/e2e/CMakeLists.txt).
 * Failures fail the calling Check test.
 */
#ifndef TKCITIZEN_H
#define TKCITIZEN_H

#include "adp.h"
#include "domain.pb-c.h"
#include "lth_date.h"

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* A declared identity to verify; NULL (and sex 0) leave a field out. */
typedef struct {
    const char *id;
    const char *name;
    const lth_date_t *dob;
    int sex;
    const char *residence;
} tk_declared_t;

/* Sends req to member `to` (adp_request's flags and timeout) and returns
 * the decoded answer (free with lth__domain__v1__citizen_lookup_response__
 * free_unpacked). The raw reply is kept in *raw (free it) when raw is not
 * NULL. */
Lth__Domain__V1__CitizenLookupResponse *
tk_citizen_lookup(adp_client_t *c, const char *to, const Lth__Domain__V1__CitizenLookupRequest *req,
                  uint32_t flags, uint32_t timeout_ms, adp_reply_t *raw);

/* Asks `to` to verify subjects[0..n) (at most 8) for purpose; as
 * tk_citizen_lookup otherwise. */
Lth__Domain__V1__CitizenVerifyResponse *
tk_citizen_verify(adp_client_t *c, const char *to, const tk_declared_t *subjects, size_t n,
                  const char *purpose, const char *purpose_code, uint32_t flags,
                  uint32_t timeout_ms, adp_reply_t *raw);

/* Frees a citizen.lookup/v1 answer and sets the pointer to NULL. */
static inline void tk_citizen_lookup_free(Lth__Domain__V1__CitizenLookupResponse **resp)
{
    lth__domain__v1__citizen_lookup_response__free_unpacked(*resp, NULL);
    *resp = NULL;
}

/* Asserts that the answer's date is d. Inline, so that the unit tests of
 * the lookup (which do not link this file's library) use it too. */
static inline void tk_assert_date(const Lth__Domain__V1__Date *pb, lth_date_t d)
{
    ck_assert_ptr_nonnull(pb);
    ck_assert_uint_eq(pb->year, (unsigned)d.year);
    ck_assert_uint_eq(pb->month, (unsigned)d.month);
    ck_assert_uint_eq(pb->day, (unsigned)d.day);
}

/* A citizen.lookup/v1 request for keys[0..n) in mode, as of *date when
 * date is not NULL (then *d holds it, and must outlive the request); the
 * caller sets purpose and the rest. */
static inline Lth__Domain__V1__CitizenLookupRequest
tk_citizen_lookup_request(const char *const *keys, size_t n, int mode, const lth_date_t *date,
                          Lth__Domain__V1__Date *d)
{
    Lth__Domain__V1__CitizenLookupRequest req = LTH__DOMAIN__V1__CITIZEN_LOOKUP_REQUEST__INIT;
    req.personal_ids = (char **)keys;
    req.n_personal_ids = n;
    req.mode = (Lth__Domain__V1__LookupMode)mode;
    if (date) {
        *d = (Lth__Domain__V1__Date)LTH__DOMAIN__V1__DATE__INIT;
        d->year = (uint32_t)date->year;
        d->month = (uint32_t)date->month;
        d->day = (uint32_t)date->day;
        req.date = d;
    }
    return req;
}

#endif
