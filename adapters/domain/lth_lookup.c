#include "lth_lookup.h"

#include "domain.pb-c.h"
#include "hub_error.h"
#include "hub_wire.h"
#include "lth_pid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Lth__Domain__V1__CitizenLookupRequest lth__request_t;
typedef Lth__Domain__V1__CitizenLookupResponse lth__response_t;


/* Everything one result points at, so that a response is one allocation of
 * items plus one array of pointers. */
typedef struct {
    Lth__Domain__V1__CitizenLookupResult result;
    Lth__Domain__V1__Citizen citizen;
    Lth__Domain__V1__Date birth;
    Lth__Domain__V1__Date changed;
    Lth__Domain__V1__Residence residence;
    Lth__Domain__V1__Date temporary_until;
    Lth__Domain__V1__Household household;
    Lth__Domain__V1__FamilyRelations family;
    char *withheld[LTH_FIELD_COUNT];
    lth_citizen_t record;
    char key[LTH_PID_ECHO_MAX + 1];
} lth__item_t;

static void lth__date_to_pb(lth_date_t d, Lth__Domain__V1__Date *pb)
{
    lth__domain__v1__date__init(pb);
    pb->year = (uint32_t)d.year;
    pb->month = (uint32_t)d.month;
    pb->day = (uint32_t)d.day;
}

static bool lth__date_from_pb(const Lth__Domain__V1__Date *pb, lth_date_t *out)
{
    if (!pb || pb->year > 9999 || pb->month > 12 || pb->day > 31)
        return false;
    lth_date_t d = {(int)pb->year, (int)pb->month, (int)pb->day};
    if (!lth_date_valid(d))
        return false;
    *out = d;
    return true;
}

static int lth__pack(lth__response_t *resp, uint8_t **out, size_t *out_len)
{
    return hub_pb_pack(&resp->base, out, out_len);
}

/* A response refusing the request as a whole. */
static int lth__refuse(int status, const char *reason, const lth__request_t *req, uint8_t **out,
                       size_t *out_len, lth_lookup_counts_t *counts)
{
    lth__response_t resp = LTH__DOMAIN__V1__CITIZEN_LOOKUP_RESPONSE__INIT;
    resp.status = (Lth__Domain__V1__ResponseStatus)status;
    resp.reason = (char *)reason;
    if (req) {
        resp.mode = req->mode;
        resp.date = req->date;
    }
    counts->status = status;
    return lth__pack(&resp, out, out_len);
}

/* The reason a request is refused as a whole, or NULL if it is well-formed. */
static const char *lth__request_problem(const lth__request_t *req, lth_date_t *date, char *buf,
                                        size_t buf_size)
{
    if (req->n_personal_ids == 0)
        return "the request has no personal_ids: give 1 to 1000 keys";
    if (req->n_personal_ids > LTH_LOOKUP_MAX_KEYS) {
        snprintf(buf, buf_size, "too many keys: %zu in one request, at most %d; split the batch",
                 req->n_personal_ids, LTH_LOOKUP_MAX_KEYS);
        return buf;
    }
    if (!req->purpose || !req->purpose[0])
        return "purpose is required: say why the data is needed (procedure, dossier)";
    switch (req->mode) {
    case LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CURRENT:
        if (req->date)
            return "a date was given with mode CURRENT: set mode AS_OF or CHANGES_SINCE, or "
                   "leave the date out";
        return NULL;
    case LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_AS_OF:
    case LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CHANGES_SINCE:
        if (!lth__date_from_pb(req->date, date))
            return "modes AS_OF and CHANGES_SINCE need a valid date (year, month, day)";
        return NULL;
    default:
        return "unknown mode: use CURRENT, AS_OF or CHANGES_SINCE";
    }
}

/* The record into item, only the fields allowed; the others are named in
 * withheld_fields. */
static void lth__fill_found(lth__item_t *item, lth_fields_t allowed)
{
    Lth__Domain__V1__Citizen *c = &item->citizen;
    const lth_citizen_t *rec = &item->record;
    lth__domain__v1__citizen__init(c);
    c->personal_id = item->record.personal_id;
    if (allowed & LTH_FIELD_FULL_NAME)
        c->full_name = item->record.full_name;
    if (allowed & LTH_FIELD_DATE_OF_BIRTH) {
        lth__date_to_pb(rec->date_of_birth, &item->birth);
        c->date_of_birth = &item->birth;
    }
    if (allowed & LTH_FIELD_SEX)
        c->sex = rec->sex == LTH_SEX_FEMALE ? LTH__DOMAIN__V1__SEX__SEX_FEMALE
                                            : LTH__DOMAIN__V1__SEX__SEX_MALE;
    if (allowed & LTH_FIELD_BIRTH_PROVINCE)
        c->birth_province_code = item->record.birth_province_code;
    if (allowed & LTH_FIELD_RESIDENCE) {
        Lth__Domain__V1__Residence *r = &item->residence;
        lth__domain__v1__residence__init(r);
        c->place_of_residence = item->record.residence;
        r->permanent_address = item->record.residence;
        r->temporary_address = item->record.temporary_residence;
        if (rec->temporary_until.year) {
            lth__date_to_pb(rec->temporary_until, &item->temporary_until);
            r->temporary_until = &item->temporary_until;
        }
        r->current_address =
            rec->temporary_residence[0] ? item->record.temporary_residence : item->record.residence;
        c->residence = r;
    }
    if (allowed & LTH_FIELD_HOUSEHOLD) {
        Lth__Domain__V1__Household *h = &item->household;
        lth__domain__v1__household__init(h);
        h->head_personal_id = item->record.head_personal_id;
        h->head_full_name = item->record.head_full_name;
        h->relationship_to_head = (Lth__Domain__V1__HouseholdRelationship)rec->relationship;
        c->household = h;
    }
    if (allowed & LTH_FIELD_FAMILY) {
        Lth__Domain__V1__FamilyRelations *f = &item->family;
        lth__domain__v1__family_relations__init(f);
        f->father_full_name = item->record.father_name;
        f->mother_full_name = item->record.mother_name;
        f->spouse_full_name = item->record.spouse_name;
        c->family = f;
    }
    if (allowed & LTH_FIELD_LAST_CHANGED) {
        lth__date_to_pb(rec->changed_on, &item->changed);
        c->last_changed = &item->changed;
    }
    size_t n = 0;
    for (unsigned i = 0; i < LTH_FIELD_COUNT; i++)
        if (!(allowed & (1u << i)))
            item->withheld[n++] = (char *)lth_field_name(i);
    item->result.withheld_fields = item->withheld;
    item->result.n_withheld_fields = n;
    item->result.status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND;
    item->result.citizen = c;
}

void lth_lookup_decide(const lth_lookup_policy_t *policy, const char *purpose_code, lth_use_t use,
                       const char **problem, const char **denied, lth_fields_t *fields, char *buf,
                       size_t buf_size)
{
    *denied = NULL;
    *fields = LTH_FIELDS_ALL;
    if (*problem)
        return;
    if (!policy->permitted) {
        *denied = "the requesting member is not among this database's permitted consumers; "
                  "a data-sharing agreement is needed";
        return;
    }
    bool whole = false;
    const char *why =
        lth_lookup_purpose_check(policy, purpose_code, use, fields, &whole, buf, buf_size);
    if (whole)
        *problem = why;
    else
        *denied = why;
}

const char *lth_lookup_purpose_check(const lth_lookup_policy_t *policy, const char *purpose_code,
                                     lth_use_t use, lth_fields_t *fields, bool *invalid, char *buf,
                                     size_t buf_size)
{
    *invalid = false;
    *fields = LTH_FIELDS_ALL;
    if (!policy->disclosure)
        return NULL;
    const char *problem = lth_purpose_code_problem(purpose_code);
    if (problem) {
        *invalid = true;
        snprintf(buf, buf_size,
                 "purpose_code is required here and must name the purpose as the agreement with "
                 "this database does (e.g. residence-registration): %s",
                 problem);
        return buf;
    }
    if (!lth_disclosure_fields(policy->disclosure, policy->consumer, purpose_code, use, fields)) {
        snprintf(buf, buf_size,
                 "no agreement with this database covers purpose '%s' for the requesting member; "
                 "ask the data owner to add it, or use an agreed purpose_code",
                 purpose_code);
        return buf;
    }
    return NULL;
}

static int lth__popdb_get(void *ctx, const lth_source_query_t *q, const char *personal_id,
                          lth_citizen_t *out, char *why, size_t why_size)
{
    (void)q;
    (void)why;
    (void)why_size;
    return lth_popdb_get(ctx, personal_id, out);
}

lth_source_t lth_source_popdb(lth_popdb_t *db)
{
    lth_source_t source = {lth__popdb_get, NULL, db};
    return source;
}

/* Answers one key into item; returns false if the key is to be left out,
 * the source's code through *failed (its sentence in why) if it failed. */
static bool lth__answer_key(const lth_source_t *src, const lth_source_query_t *q,
                            const char *denied, lth_fields_t allowed, const lth__request_t *req,
                            lth_date_t date, const char *key, lth__item_t *item,
                            lth_lookup_counts_t *counts, int *failed, char *why, size_t why_size)
{
    Lth__Domain__V1__CitizenLookupResult *r = &item->result;
    lth__domain__v1__citizen_lookup_result__init(r);
    r->reason = "";
    lth_pid_echo(key, item->key);
    r->personal_id = item->key;
    if (denied) {
        r->status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_PERMITTED;
        r->reason = (char *)denied;
        counts->not_permitted++;
        return true;
    }
    const char *problem = NULL;
    if (lth_pid_check(key, NULL, &problem) != 0) {
        r->status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY;
        r->reason = (char *)problem;
        counts->invalid_key++;
        return true;
    }
    int rc = src->get(src->ctx, q, key, &item->record, why, why_size);
    if (rc == 0 && req->mode == LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_AS_OF)
        rc = lth_citizen_as_of(&item->record, date, &item->record);
    if (rc == HUB_ENOTFOUND) {
        r->status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND;
        r->reason = req->mode == LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_AS_OF
                        ? "no record with this personal ID number on the date asked"
                        : "no record with this personal ID number";
        counts->not_found++;
        return true;
    }
    if (rc != 0) {
        *failed = rc;
        return false;
    }
    if (req->mode == LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CHANGES_SINCE &&
        lth_date_cmp(item->record.changed_on, date) < 0) {
        counts->unchanged++;
        return false;
    }
    lth__fill_found(item, allowed);
    counts->found++;
    if (allowed != LTH_FIELDS_ALL)
        counts->withheld++;
    return true;
}

int lth_lookup_answer(lth_popdb_t *db, bool permitted, const char *content_type,
                      const uint8_t *payload, size_t payload_len, uint8_t **out, size_t *out_len,
                      lth_lookup_counts_t *counts)
{
    lth_lookup_policy_t policy = {permitted, NULL, NULL};
    return lth_lookup_answer_for(db, &policy, content_type, payload, payload_len, out, out_len,
                                 counts);
}

int lth_lookup_answer_for(lth_popdb_t *db, const lth_lookup_policy_t *policy,
                          const char *content_type, const uint8_t *payload, size_t payload_len,
                          uint8_t **out, size_t *out_len, lth_lookup_counts_t *counts)
{
    if (!db)
        return HUB_EINVAL;
    lth_source_t source = lth_source_popdb(db);
    return lth_lookup_answer_from(&source, policy, content_type, payload, payload_len, out, out_len,
                                  counts);
}

int lth_lookup_answer_from(const lth_source_t *src, const lth_lookup_policy_t *policy,
                           const char *content_type, const uint8_t *payload, size_t payload_len,
                           uint8_t **out, size_t *out_len, lth_lookup_counts_t *counts)
{
    if (!src || !src->get || !policy || !out || !out_len || (!payload && payload_len))
        return HUB_EINVAL;
    lth_lookup_counts_t scratch;
    if (!counts)
        counts = &scratch;
    memset(counts, 0, sizeof *counts);
    *out = NULL;
    *out_len = 0;
    if (!lth_domain_content_type_is(content_type, "CitizenLookupRequest"))
        return lth__refuse(LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID,
                           "send a CitizenLookupRequest with content type " LTH_LOOKUP_REQUEST_TYPE,
                           NULL, out, out_len, counts);
    lth__request_t *req =
        lth__domain__v1__citizen_lookup_request__unpack(NULL, payload_len, payload);
    if (!req)
        return lth__refuse(LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID,
                           "the payload is not a valid CitizenLookupRequest", NULL, out, out_len,
                           counts);
    counts->keys = req->n_personal_ids;
    lth_date_t date = {0, 0, 0};
    char problem_buf[128], purpose_buf[256];
    const char *problem = lth__request_problem(req, &date, problem_buf, sizeof problem_buf);
    const char *denied = NULL;
    lth_fields_t allowed = LTH_FIELDS_ALL;
    lth_lookup_decide(policy, req->purpose_code, LTH_USE_LOOKUP, &problem, &denied, &allowed,
                      purpose_buf, sizeof purpose_buf);
    if (problem) {
        int rc = lth__refuse(LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID, problem,
                             req, out, out_len, counts);
        lth__domain__v1__citizen_lookup_request__free_unpacked(req, NULL);
        return rc;
    }
    size_t n = req->n_personal_ids;
    lth__item_t *items = calloc(n, sizeof *items);
    Lth__Domain__V1__CitizenLookupResult **results = calloc(n, sizeof *results);
    int rc = HUB_ENOMEM;
    char failure[512] = "";
    lth_source_query_t query = {policy->consumer, req->purpose, req->purpose_code,
                                req->dossier_code, allowed};
    if (req->mode != LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CURRENT)
        query.fields |= LTH_FIELD_LAST_CHANGED; /* the dates AS_OF and CHANGES_SINCE need */
    if (items && results) {
        size_t kept = 0;
        int failed = 0;
        for (size_t i = 0; i < n && !failed; i++) {
            if (lth__answer_key(src, &query, denied, allowed, req, date, req->personal_ids[i],
                                &items[kept], counts, &failed, failure, sizeof failure)) {
                results[kept] = &items[kept].result;
                kept++;
            }
        }
        if (failed) {
            rc = lth__refuse(LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_UNAVAILABLE,
                             failure[0] ? failure
                                        : "the population database could not be read; try again "
                                          "later",
                             req, out, out_len, counts);
        } else {
            lth__response_t resp = LTH__DOMAIN__V1__CITIZEN_LOOKUP_RESPONSE__INIT;
            resp.status = LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK;
            resp.mode = req->mode;
            resp.date = req->date;
            resp.results = results;
            resp.n_results = kept;
            counts->status = resp.status;
            rc = lth__pack(&resp, out, out_len);
        }
    }
    /* The records held personal data: clear them before the memory goes back. */
    if (items)
        explicit_bzero(items, n * sizeof *items);
    free(items);
    free(results);
    lth__domain__v1__citizen_lookup_request__free_unpacked(req, NULL);
    return rc;
}
