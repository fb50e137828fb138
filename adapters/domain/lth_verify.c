#include "lth_verify.h"

#include "domain.pb-c.h"
#include "hub_error.h"
#include "hub_wire.h"
#include "lth_pid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Lth__Domain__V1__CitizenVerifyRequest lth__vrequest_t;
typedef Lth__Domain__V1__CitizenVerifyResponse lth__vresponse_t;
typedef Lth__Domain__V1__CitizenVerifyResult lth__vresult_t;

#define LTH__FOLD_MAX (LTH_CITIZEN_ADDRESS_MAX * 2)

/* ---- folding text for comparison ---- */

/* Lower case of one code point, for ASCII and the Latin letters Vietnamese
 * writes with (Latin-1, Latin Extended-A and -B's Ơ and Ư, and Latin
 * Extended Additional's precomposed letters with tone marks). */
static uint32_t lth__lower(uint32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + 32;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 0x20;
    if ((c >= 0x100 && c <= 0x137 && c % 2 == 0) || (c >= 0x14A && c <= 0x177 && c % 2 == 0))
        return c + 1;
    if (c >= 0x139 && c <= 0x148 && c % 2 == 1)
        return c + 1;
    if (c == 0x1A0 || c == 0x1AF)
        return c + 1;
    if (c >= 0x1EA0 && c <= 0x1EF9 && c % 2 == 0)
        return c + 1;
    return c;
}

/* Decodes one UTF-8 sequence at s; *len its bytes. A byte that does not
 * start a valid sequence is returned as itself, length 1. */
static uint32_t lth__utf8_next(const unsigned char *s, size_t *len)
{
    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    size_t n = (s[0] & 0xE0) == 0xC0   ? 2
               : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    uint32_t c = n == 2 ? s[0] & 0x1Fu : n == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            n = 0;
            break;
        }
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if (n == 0) {
        *len = 1;
        return 0x80000000u | s[0]; /* not a code point: kept as the raw byte */
    }
    *len = n;
    return c;
}

static size_t lth__utf8_put(uint32_t c, char *out)
{
    if (c & 0x80000000u) {
        out[0] = (char)(c & 0xFF);
        return 1;
    }
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

void lth_verify_fold(const char *text, bool drop_punct, char *out, size_t out_size)
{
    if (!out || out_size == 0)
        return;
    size_t o = 0;
    bool pending_space = false;
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    while (*s) {
        size_t len = 1;
        uint32_t c = lth__utf8_next(s, &len);
        s += len;
        bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
                     (drop_punct && (c == ',' || c == '.' || c == ';' || c == '-' || c == '/'));
        if (space) {
            pending_space = o > 0;
            continue;
        }
        char buf[5];
        size_t n = lth__utf8_put(lth__lower(c), buf);
        if (o + (pending_space ? 1 : 0) + n + 1 > out_size)
            break;
        if (pending_space)
            out[o++] = ' ';
        pending_space = false;
        memcpy(out + o, buf, n);
        o += n;
    }
    out[o] = '\0';
}

static bool lth__same_text(const char *a, const char *b, bool drop_punct)
{
    char fa[LTH__FOLD_MAX], fb[LTH__FOLD_MAX];
    lth_verify_fold(a, drop_punct, fa, sizeof fa);
    lth_verify_fold(b, drop_punct, fb, sizeof fb);
    return fa[0] && !strcmp(fa, fb);
}

/* ---- answering ---- */

typedef struct {
    lth__vresult_t result;
    lth_citizen_t record;
    char key[LTH_PID_ECHO_MAX + 1];
} lth__vitem_t;

static int lth__vpack(lth__vresponse_t *resp, uint8_t **out, size_t *out_len)
{
    return hub_pb_pack(&resp->base, out, out_len);
}

static int lth__vrefuse(int status, const char *reason, uint8_t **out, size_t *out_len,
                        lth_verify_counts_t *counts)
{
    lth__vresponse_t resp = LTH__DOMAIN__V1__CITIZEN_VERIFY_RESPONSE__INIT;
    resp.status = (Lth__Domain__V1__ResponseStatus)status;
    resp.reason = (char *)reason;
    counts->status = status;
    return lth__vpack(&resp, out, out_len);
}

static bool lth__valid_date(const Lth__Domain__V1__Date *d)
{
    if (d->year > 9999 || d->month > 12 || d->day > 31)
        return false;
    return lth_date_valid((lth_date_t){(int)d->year, (int)d->month, (int)d->day});
}

static const char *lth__vrequest_problem(const lth__vrequest_t *req, char *buf, size_t size)
{
    if (req->n_subjects == 0)
        return "the request has no subjects: give 1 to 1000 declared identities";
    if (req->n_subjects > LTH_VERIFY_MAX_SUBJECTS) {
        snprintf(buf, size, "too many subjects: %zu in one request, at most %d; split the batch",
                 req->n_subjects, LTH_VERIFY_MAX_SUBJECTS);
        return buf;
    }
    if (!req->purpose || !req->purpose[0])
        return "purpose is required: say why the identity is verified (procedure, dossier)";
    for (size_t i = 0; i < req->n_subjects; i++) {
        const Lth__Domain__V1__DeclaredIdentity *s = req->subjects[i];
        bool any = (s->full_name && s->full_name[0]) || s->date_of_birth ||
                   s->sex != LTH__DOMAIN__V1__SEX__SEX_UNSPECIFIED ||
                   (s->residence && s->residence[0]);
        if (!any) {
            snprintf(buf, size,
                     "subject %zu declares nothing to compare: give full_name, date_of_birth, "
                     "sex or residence",
                     i + 1);
            return buf;
        }
        if (s->date_of_birth && !lth__valid_date(s->date_of_birth)) {
            snprintf(buf, size, "subject %zu: date_of_birth is not a valid date", i + 1);
            return buf;
        }
        if (s->sex != LTH__DOMAIN__V1__SEX__SEX_UNSPECIFIED &&
            s->sex != LTH__DOMAIN__V1__SEX__SEX_MALE &&
            s->sex != LTH__DOMAIN__V1__SEX__SEX_FEMALE) {
            snprintf(buf, size, "subject %zu: sex is not MALE, FEMALE or UNSPECIFIED", i + 1);
            return buf;
        }
    }
    return NULL;
}

/* One declared field: NOT_DECLARED, WITHHELD, MATCH or MISMATCH. */
static Lth__Domain__V1__FieldCheck lth__check(bool declared, bool allowed, bool same,
                                              bool *all_match, bool *any_mismatch,
                                              bool *any_withheld, bool *compared)
{
    if (!declared)
        return LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_NOT_DECLARED;
    if (!allowed) {
        *all_match = false;
        *any_withheld = true;
        return LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_WITHHELD;
    }
    *compared = true;
    if (same)
        return LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_MATCH;
    *all_match = false;
    *any_mismatch = true;
    return LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_MISMATCH;
}

/* The declared fields the purpose allows, as the source sees them. */
static lth_source_declared_t lth__declared(const Lth__Domain__V1__DeclaredIdentity *s,
                                           lth_fields_t allowed)
{
    lth_source_declared_t d = {s->personal_id, "", {0, 0, 0}, 0, ""};
    if ((allowed & LTH_FIELD_FULL_NAME) && s->full_name)
        d.full_name = s->full_name;
    if ((allowed & LTH_FIELD_DATE_OF_BIRTH) && s->date_of_birth)
        d.date_of_birth = (lth_date_t){(int)s->date_of_birth->year, (int)s->date_of_birth->month,
                                       (int)s->date_of_birth->day};
    if (allowed & LTH_FIELD_SEX)
        d.sex = (int)s->sex;
    if ((allowed & LTH_FIELD_RESIDENCE) && s->residence)
        d.residence = s->residence;
    return d;
}

/* Which declared fields match the record, as bits. */
static lth_fields_t lth__same_fields(const lth_source_declared_t *d, const lth_citizen_t *rec)
{
    lth_fields_t same = 0;
    if (d->full_name[0] && lth__same_text(d->full_name, rec->full_name, false))
        same |= LTH_FIELD_FULL_NAME;
    if (d->date_of_birth.year && lth_date_cmp(d->date_of_birth, rec->date_of_birth) == 0)
        same |= LTH_FIELD_DATE_OF_BIRTH;
    if (d->sex && d->sex == (int)rec->sex)
        same |= LTH_FIELD_SEX;
    if (d->residence[0] && (lth__same_text(d->residence, rec->residence, true) ||
                            lth__same_text(d->residence, rec->temporary_residence, true)))
        same |= LTH_FIELD_RESIDENCE;
    return same;
}

static void lth__compare(const Lth__Domain__V1__DeclaredIdentity *s, lth_fields_t same,
                         lth_fields_t allowed, lth__vresult_t *r, lth_verify_counts_t *counts)
{
    bool all = true, mismatch = false, withheld = false, compared = false;
    r->full_name = lth__check(s->full_name && s->full_name[0], allowed & LTH_FIELD_FULL_NAME,
                              same & LTH_FIELD_FULL_NAME, &all, &mismatch, &withheld, &compared);
    r->date_of_birth =
        lth__check(s->date_of_birth != NULL, allowed & LTH_FIELD_DATE_OF_BIRTH,
                   same & LTH_FIELD_DATE_OF_BIRTH, &all, &mismatch, &withheld, &compared);
    r->sex = lth__check(s->sex != LTH__DOMAIN__V1__SEX__SEX_UNSPECIFIED, allowed & LTH_FIELD_SEX,
                        same & LTH_FIELD_SEX, &all, &mismatch, &withheld, &compared);
    r->residence = lth__check(s->residence && s->residence[0], allowed & LTH_FIELD_RESIDENCE,
                              same & LTH_FIELD_RESIDENCE, &all, &mismatch, &withheld, &compared);
    r->all_match = all && compared;
    counts->all_match += r->all_match;
    counts->mismatch += mismatch;
    counts->withheld += withheld;
}

/* Compares one subject through the source: 0, HUB_ENOTFOUND or its failure. */
static int lth__check_subject(const lth_source_t *src, const lth_source_query_t *q,
                              const Lth__Domain__V1__DeclaredIdentity *s, lth_fields_t allowed,
                              lth_citizen_t *record, lth_fields_t *same, char *why, size_t why_size)
{
    lth_source_declared_t d = lth__declared(s, allowed);
    if (src->compare)
        return src->compare(src->ctx, q, &d, same, why, why_size);
    int rc = src->get(src->ctx, q, s->personal_id, record, why, why_size);
    if (rc == 0)
        *same = lth__same_fields(&d, record);
    return rc;
}

int lth_verify_answer(lth_popdb_t *db, const lth_lookup_policy_t *policy, const char *content_type,
                      const uint8_t *payload, size_t payload_len, uint8_t **out, size_t *out_len,
                      lth_verify_counts_t *counts)
{
    if (!db)
        return HUB_EINVAL;
    lth_source_t source = lth_source_popdb(db);
    return lth_verify_answer_from(&source, policy, content_type, payload, payload_len, out, out_len,
                                  counts);
}

int lth_verify_answer_from(const lth_source_t *src, const lth_lookup_policy_t *policy,
                           const char *content_type, const uint8_t *payload, size_t payload_len,
                           uint8_t **out, size_t *out_len, lth_verify_counts_t *counts)
{
    if (!src || !src->get || !policy || !out || !out_len || (!payload && payload_len))
        return HUB_EINVAL;
    lth_verify_counts_t scratch;
    if (!counts)
        counts = &scratch;
    memset(counts, 0, sizeof *counts);
    *out = NULL;
    *out_len = 0;
    const int invalid = LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID;
    if (!lth_domain_content_type_is(content_type, "CitizenVerifyRequest"))
        return lth__vrefuse(
            invalid, "send a CitizenVerifyRequest with content type " LTH_VERIFY_REQUEST_TYPE, out,
            out_len, counts);
    lth__vrequest_t *req =
        lth__domain__v1__citizen_verify_request__unpack(NULL, payload_len, payload);
    if (!req)
        return lth__vrefuse(invalid, "the payload is not a valid CitizenVerifyRequest", out,
                            out_len, counts);
    counts->subjects = req->n_subjects;
    char problem_buf[160], purpose_buf[256];
    const char *problem = lth__vrequest_problem(req, problem_buf, sizeof problem_buf);
    const char *denied = NULL;
    lth_fields_t allowed = LTH_FIELDS_ALL;
    lth_lookup_decide(policy, req->purpose_code, LTH_USE_VERIFY, &problem, &denied, &allowed,
                      purpose_buf, sizeof purpose_buf);
    if (problem) {
        int rc = lth__vrefuse(invalid, problem, out, out_len, counts);
        lth__domain__v1__citizen_verify_request__free_unpacked(req, NULL);
        return rc;
    }
    size_t n = req->n_subjects;
    lth__vitem_t *items = calloc(n, sizeof *items);
    lth__vresult_t **results = calloc(n, sizeof *results);
    int rc = HUB_ENOMEM, failed = 0;
    char failure[512] = "";
    lth_source_query_t query = {policy->consumer, req->purpose, req->purpose_code,
                                req->dossier_code, allowed};
    for (size_t i = 0; items && results && i < n && !failed; i++) {
        const Lth__Domain__V1__DeclaredIdentity *s = req->subjects[i];
        lth__vresult_t *r = &items[i].result;
        lth__domain__v1__citizen_verify_result__init(r);
        results[i] = r;
        lth_pid_echo(s->personal_id, items[i].key);
        r->personal_id = items[i].key;
        r->reason = "";
        const char *why = NULL;
        if (denied) {
            r->status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_PERMITTED;
            r->reason = (char *)denied;
            counts->not_permitted++;
        } else if (lth_pid_check(s->personal_id, NULL, &why) != 0) {
            r->status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY;
            r->reason = (char *)why;
            counts->invalid_key++;
        } else {
            lth_fields_t same = 0;
            int got = lth__check_subject(src, &query, s, allowed, &items[i].record, &same, failure,
                                         sizeof failure);
            if (got == HUB_ENOTFOUND) {
                r->status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND;
                r->reason = "no record with this personal ID number";
                counts->not_found++;
            } else if (got != 0) {
                failed = got;
            } else {
                r->status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND;
                lth__compare(s, same, allowed, r, counts);
            }
        }
    }
    if (items && results) {
        if (failed) {
            rc = lth__vrefuse(LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_UNAVAILABLE,
                              failure[0] ? failure
                                         : "the population database could not be read; try "
                                           "again later",
                              out, out_len, counts);
        } else {
            lth__vresponse_t resp = LTH__DOMAIN__V1__CITIZEN_VERIFY_RESPONSE__INIT;
            resp.status = LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK;
            resp.reason = "";
            resp.results = results;
            resp.n_results = n;
            counts->status = resp.status;
            rc = lth__vpack(&resp, out, out_len);
        }
    }
    /* The records held personal data: clear them before the memory goes back. */
    if (items)
        explicit_bzero(items, n * sizeof *items);
    free(items);
    free(results);
    lth__domain__v1__citizen_verify_request__free_unpacked(req, NULL);
    return rc;
}
