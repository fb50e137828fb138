/* End to end: citizen data by the rules (issue 20) — the population adapter
 * (lth-population.so in hub-adapter) behind a real hubd, asked by SDK
 * clients over CURVE, with a disclosure file (fields by purpose):
 * - citizen.verify/v1 answers match / mismatch per declared field, not found
 *   or invalid, and never carries a value of the record (checked on the
 *   bytes of the reply);
 * - citizen.lookup/v1 returns only the fields the purpose may receive and
 *   names the others; the residence answer (permanent and temporary
 *   address, household head, relationship) agrees with the head's own
 *   record; a purpose without an agreement gets nothing;
 * - a malformed disclosure file stops the adapter with FILE:LINE. */
#define _GNU_SOURCE /* memmem */
#include "domain.pb-c.h"
#include "hub_error.h"
#include "hubfix.h"
#include "lth_citizen.h"
#include "lth_lookup.h"
#include "lth_verify.h"
#include "testkit.h"
#include "tkcitizen.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define POP "VN/GOV/BCA/CSDLQGDC"
#define TTHC "VN/GOV/HN-VP/TTHC"      /* the one-stop shop: several purposes */
#define HOTICH "VN/GOV/HN-STP/HOTICH" /* one purpose only */
#define OTHER "VN/GOV/HN-SXD/XAYDUNG" /* no line in the disclosure file */
#define SEED 1
#define CITIZENS 2000

typedef Lth__Domain__V1__CitizenVerifyResponse vresp_t;
typedef Lth__Domain__V1__CitizenVerifyResult vres_t;
typedef Lth__Domain__V1__CitizenLookupResponse lresp_t;

static hubfix_t fix;
static pid_t adapter;
static char adapter_log[PATH_MAX];

static const char disclosure[] =
    "# fields by purpose, as the data owner signed them\n"
    "disclose full_name,date_of_birth,sex,residence,household to " TTHC
    " for residence-registration\n"
    "disclose full_name,date_of_birth,sex,birth_province_code,residence,family to " TTHC
    " for judicial-record\n"
    "confirm full_name,date_of_birth,sex,residence to " TTHC " for enterprise-registration\n"
    "confirm full_name,date_of_birth to " TTHC " for land-registration   # no residence\n"
    "disclose full_name to " HOTICH " for civil-status\n";

static void setup(void)
{
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, POP, TTHC, HOTICH, OTHER);
    hubfix_start(&fix);
    char path[PATH_MAX], conf[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/disclosure.conf", fix.dir);
    tk_write_file(path, disclosure);
    snprintf(conf, sizeof conf,
             "plugin.db = %s/pop.db\nplugin.citizens = %d\nplugin.disclosure_file = %s\n"
             "log_level = debug\n",
             fix.dir, CITIZENS, path);
    adapter = hubfix_start_adapter(&fix, POP, "population", conf);
    snprintf(adapter_log, sizeof adapter_log, "%s/adapter-VN.GOV.BCA.CSDLQGDC.log", fix.dir);
}

static void teardown(void)
{
    hubfix_cleanup(&fix);
}

static lth_citizen_t citizen(size_t index)
{
    lth_citizen_t c;
    ck_assert_int_eq(lth_citizen_generate(SEED, index, &c), 0);
    return c;
}

/* The first citizen for which want() holds. */
static lth_citizen_t find_citizen(bool (*want)(const lth_citizen_t *))
{
    for (size_t i = 0; i < CITIZENS; i++) {
        lth_citizen_t c = citizen(i);
        if (want(&c))
            return c;
    }
    ck_abort_msg("no such citizen in the data set");
    return citizen(0);
}

static bool is_child_member(const lth_citizen_t *c)
{
    return c->relationship == LTH_REL_CHILD && c->temporary_residence[0];
}

/* A reply's bytes hold none of the record's values (only what the caller
 * sent may come back: the key). */
static void assert_no_record_value(const adp_reply_t *reply, const lth_citizen_t *c)
{
    const char *values[] = {c->full_name,         c->residence,   c->temporary_residence,
                            c->father_name,       c->mother_name, c->head_full_name,
                            c->previous_residence};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        ck_assert_msg(!values[i][0] ||
                          !memmem(reply->payload, reply->payload_len, values[i], strlen(values[i])),
                      "the reply carries a value of the record (%zu)", i);
    char dob[LTH_DATE_TEXT_LEN + 1];
    lth_date_format(c->date_of_birth, dob);
    ck_assert(!memmem(reply->payload, reply->payload_len, dob, strlen(dob)));
    if (strcmp(c->head_personal_id, c->personal_id) != 0)
        ck_assert(!memmem(reply->payload, reply->payload_len, c->head_personal_id, LTH_PID_LEN));
}

typedef tk_declared_t declared_t;

/* Sends a CitizenVerifyRequest; keeps the raw reply in *raw (free it). */
static vresp_t *verify(adp_client_t *c, const declared_t *subjects, size_t n, const char *purpose,
                       const char *purpose_code, adp_reply_t *raw)
{
    return tk_citizen_verify(c, POP, subjects, n, purpose, purpose_code, 0, 10000, raw);
}

static lresp_t *lookup(adp_client_t *c, const char *const *keys, size_t n, const char *purpose_code,
                       adp_reply_t *raw)
{
    Lth__Domain__V1__CitizenLookupRequest req = LTH__DOMAIN__V1__CITIZEN_LOOKUP_REQUEST__INIT;
    req.personal_ids = (char **)keys;
    req.n_personal_ids = n;
    req.purpose = "Đăng ký thường trú (test)";
    req.purpose_code = (char *)purpose_code;
    return tk_citizen_lookup(c, POP, &req, 0, 10000, raw);
}

static void assert_checks(const vres_t *r, int name, int dob, int sex, int residence, bool all)
{
    ck_assert_int_eq(r->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_int_eq(r->full_name, name);
    ck_assert_int_eq(r->date_of_birth, dob);
    ck_assert_int_eq(r->sex, sex);
    ck_assert_int_eq(r->residence, residence);
    ck_assert_int_eq(r->all_match, all);
    ck_assert_uint_eq(r->base.n_unknown_fields, 0);
}

/* Upper case of the ASCII letters and of the Vietnamese letters in s (the
 * ones the generator's names use), as a clerk might type them. */
static void upper_vi(const char *s, char *out, size_t size)
{
    static const char *const pairs[][2] = {
        {"ễ", "Ễ"}, {"ầ", "Ầ"}, {"ạ", "Ạ"}, {"ặ", "Ặ"}, {"ũ", "Ũ"}, {"ư", "Ư"}, {"ơ", "Ơ"},
        {"ă", "Ă"}, {"đ", "Đ"}, {"ê", "Ê"}, {"ô", "Ô"}, {"ú", "Ú"}, {"ứ", "Ứ"}, {"ả", "Ả"},
        {"ị", "Ị"}, {"ọ", "Ọ"}, {"à", "À"}, {"á", "Á"}, {"ế", "Ế"}, {"ủ", "Ủ"}, {"ợ", "Ợ"},
        {"ữ", "Ữ"}, {"ỹ", "Ỹ"}, {"ý", "Ý"}, {"ó", "Ó"}, {"ò", "Ò"}, {"ờ", "Ờ"}, {"ộ", "Ộ"},
        {"ồ", "Ồ"}, {"ể", "Ể"}, {"ừ", "Ừ"}, {"ậ", "Ậ"}, {"ấ", "Ấ"}, {"ỏ", "Ỏ"}, {"ở", "Ở"},
        {"ỷ", "Ỷ"}, {"ì", "Ì"}, {"í", "Í"}, {"ự", "Ự"}, {"ằ", "Ằ"}, {"ẳ", "Ẳ"}, {"ẵ", "Ẵ"},
        {"ẫ", "Ẫ"}, {"ẩ", "Ẩ"}, {"ố", "Ố"}, {"ắ", "Ắ"}, {"ệ", "Ệ"}, {"â", "Â"}, {"ỳ", "Ỳ"},
        {"ù", "Ù"}, {"ỉ", "Ỉ"}, {"ĩ", "Ĩ"}, {"ẽ", "Ẽ"}, {"é", "É"}, {"è", "È"}, {"ã", "Ã"},
        {"ỗ", "Ỗ"}, {"ổ", "Ổ"}, {"ớ", "Ớ"}, {"ỡ", "Ỡ"}, {"ỵ", "Ỵ"}, {"ẹ", "Ẹ"}, {"ẻ", "Ẻ"},
        {"ề", "Ề"}, {"ụ", "Ụ"}, {"ử", "Ử"},
    };
    size_t o = 0;
    while (*s && o + 4 < size) {
        bool done = false;
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0] && !done; i++) {
            size_t n = strlen(pairs[i][0]);
            if (!strncmp(s, pairs[i][0], n) && o + strlen(pairs[i][1]) < size) {
                memcpy(out + o, pairs[i][1], strlen(pairs[i][1]));
                o += strlen(pairs[i][1]);
                s += n;
                done = true;
            }
        }
        if (!done) {
            char ch = *s++;
            out[o++] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
        }
    }
    out[o] = '\0';
}

START_TEST(verify_matches_without_disclosing)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    lth_citizen_t a = find_citizen(is_child_member), b = citizen(11);
    lth_citizen_t nobody = citizen(CITIZENS + 5);
    char upper[LTH_CITIZEN_NAME_MAX * 2], sloppy_address[LTH_CITIZEN_ADDRESS_MAX * 2];
    upper_vi(a.full_name, upper, sizeof upper);
    ck_assert_str_ne(upper, a.full_name);
    /* The address as a clerk might type it: other case, spaces, no commas. */
    upper_vi(a.residence, sloppy_address, sizeof sloppy_address);
    for (char *p = sloppy_address; *p; p++)
        if (*p == ',')
            *p = ' ';
    lth_date_t wrong_day = lth_date_from_days(lth_date_to_days(b.date_of_birth) + 1);
    int other_sex = b.sex == LTH_SEX_MALE ? LTH_SEX_FEMALE : LTH_SEX_MALE;
    declared_t subjects[] = {
        /* everything right, the name in capitals, the address sloppy */
        {a.personal_id, upper, &a.date_of_birth, (int)a.sex, sloppy_address},
        /* the temporary residence is a residence too */
        {a.personal_id, a.full_name, NULL, 0, a.temporary_residence},
        /* wrong date of birth, wrong sex, someone else's name and address */
        {b.personal_id, a.full_name, &wrong_day, other_sex, a.residence},
        /* right name only */
        {b.personal_id, b.full_name, NULL, 0, NULL},
        {nobody.personal_id, nobody.full_name, &nobody.date_of_birth, (int)nobody.sex, NULL},
        {"00108501234", "Nguyễn Văn An", NULL, 0, NULL},
    };
    adp_reply_t raw;
    vresp_t *resp = verify(c, subjects, 6, "Đăng ký thành lập doanh nghiệp (test)",
                           "enterprise-registration", &raw);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK);
    ck_assert_uint_eq(resp->n_results, 6);
    const int M = LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_MATCH,
              X = LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_MISMATCH,
              N = LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_NOT_DECLARED;
    assert_checks(resp->results[0], M, M, M, M, true);
    ck_assert_str_eq(resp->results[0]->personal_id, a.personal_id);
    assert_checks(resp->results[1], M, N, N, M, true);
    assert_checks(resp->results[2], X, X, X, X, false);
    assert_checks(resp->results[3], M, N, N, N, true);
    ck_assert_int_eq(resp->results[4]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND);
    ck_assert_int_eq(resp->results[4]->all_match, false);
    ck_assert_int_eq(resp->results[5]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY);
    ck_assert_msg(strstr(resp->results[5]->reason, "12 digits"), "%s", resp->results[5]->reason);
    /* Nothing of b's record came back: the name and address sent were a's,
     * the date a day off, so a leak would show b's values. */
    assert_no_record_value(&raw, &b);
    lth__domain__v1__citizen_verify_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);

    /* A purpose whose agreement leaves out the residence: not compared. */
    declared_t land[] = {{a.personal_id, a.full_name, &a.date_of_birth, 0, a.residence}};
    resp = verify(c, land, 1, "Cấp GCN quyền sử dụng đất (test)", "land-registration", &raw);
    assert_checks(resp->results[0], M, M, N, LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_WITHHELD,
                  false);
    lth__domain__v1__citizen_verify_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);
    adp_close(&c);

    /* The log holds counts, no key, no name, no declared value. */
    ck_assert_int_eq(tk_stop(adapter), 0);
    char *log = tk_read_file(adapter_log);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(strstr(log, "citizen.verify from " TTHC ": status=ok subjects=6 all_match=3 "
                              "mismatch=1 not_found=1 invalid_key=1"),
                  "%s", log);
    ck_assert(!strstr(log, a.personal_id) && !strstr(log, b.personal_id));
    ck_assert(!strstr(log, a.full_name) && !strstr(log, upper) && !strstr(log, a.residence));
    free(log);
}
END_TEST

START_TEST(verify_refusals_say_what_to_fix)
{
    lth_citizen_t a = citizen(3);
    declared_t one[] = {{a.personal_id, a.full_name, NULL, 0, NULL}};
    declared_t empty[] = {{a.personal_id, NULL, NULL, 0, NULL}};
    lth_date_t bad = {2001, 2, 30};
    declared_t bad_date[] = {{a.personal_id, NULL, &bad, 0, NULL}};
    struct {
        const char *member;
        const declared_t *subjects;
        size_t n;
        const char *purpose, *code;
        int status;         /* of the response */
        const char *reason; /* part of the response's or the result's reason */
    } cases[] = {
        {TTHC, one, 0, "test", "enterprise-registration", 1, "no subjects"},
        {TTHC, one, 1, "", "enterprise-registration", 1, "purpose is required"},
        {TTHC, empty, 1, "test", "enterprise-registration", 1, "declares nothing to compare"},
        {TTHC, bad_date, 1, "test", "enterprise-registration", 1, "not a valid date"},
        {TTHC, one, 1, "test", "", 1, "purpose_code is required"},
        {TTHC, one, 1, "test", "Enterprise Registration", 1, "a-z, 0-9"},
        /* a purpose the member has no agreement for, and a member with none */
        {TTHC, one, 1, "test", "civil-status", 0, "no agreement with this database covers"},
        {OTHER, one, 1, "test", "enterprise-registration", 0, "no agreement"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        adp_client_t *c = hubfix_connect(&fix, cases[i].member);
        adp_reply_t raw;
        vresp_t *resp =
            verify(c, cases[i].subjects, cases[i].n, cases[i].purpose, cases[i].code, &raw);
        ck_assert_msg((int)resp->status == cases[i].status, "case %zu: status %d", i, resp->status);
        const char *reason = resp->reason;
        if (cases[i].status == 0) {
            ck_assert_uint_eq(resp->n_results, 1);
            ck_assert_int_eq(resp->results[0]->status,
                             LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_PERMITTED);
            ck_assert_int_eq(resp->results[0]->full_name,
                             LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_NOT_DECLARED);
            reason = resp->results[0]->reason;
        } else {
            ck_assert_uint_eq(resp->n_results, 0);
        }
        ck_assert_msg(strstr(reason, cases[i].reason), "case %zu: %s", i, reason);
        assert_no_record_value(&raw, &a);
        lth__domain__v1__citizen_verify_response__free_unpacked(resp, NULL);
        adp_reply_free(&raw);
        adp_close(&c);
    }
    /* A look-up payload sent to verify is told what to send. */
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    adp_reply_t raw;
    ck_assert_int_eq(adp_request(c, POP, LTH_SERVICE_CITIZEN_VERIFY, LTH_LOOKUP_REQUEST_TYPE, "", 0,
                                 0, 10000, &raw),
                     0);
    vresp_t *resp =
        lth__domain__v1__citizen_verify_response__unpack(NULL, raw.payload_len, raw.payload);
    ck_assert_ptr_nonnull(resp);
    ck_assert_msg(strstr(resp->reason, LTH_VERIFY_REQUEST_TYPE), "%s", resp->reason);
    lth__domain__v1__citizen_verify_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);
    adp_close(&c);
}
END_TEST

static bool has_withheld(const Lth__Domain__V1__CitizenLookupResult *r, const char *field)
{
    for (size_t i = 0; i < r->n_withheld_fields; i++)
        if (!strcmp(r->withheld_fields[i], field))
            return true;
    return false;
}

START_TEST(lookup_returns_the_fields_of_the_purpose)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    lth_citizen_t a = find_citizen(is_child_member);
    ck_assert_str_ne(a.head_personal_id, a.personal_id);
    lth_pid_info_t info;
    ck_assert_int_eq(lth_pid_check(a.head_personal_id, &info, NULL), 0);
    const char *keys[] = {a.personal_id, a.head_personal_id};

    /* Residence registration: residence and household, not family. */
    adp_reply_t raw;
    lresp_t *resp = lookup(c, keys, 2, "residence-registration", &raw);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK);
    const Lth__Domain__V1__CitizenLookupResult *r = resp->results[0], *h = resp->results[1];
    ck_assert_int_eq(r->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    const Lth__Domain__V1__Citizen *ct = r->citizen;
    ck_assert_str_eq(ct->full_name, a.full_name);
    ck_assert_ptr_nonnull(ct->residence);
    ck_assert_str_eq(ct->residence->permanent_address, a.residence);
    ck_assert_str_eq(ct->place_of_residence, a.residence);
    ck_assert_str_eq(ct->residence->temporary_address, a.temporary_residence);
    ck_assert_ptr_nonnull(ct->residence->temporary_until);
    ck_assert_uint_eq(ct->residence->temporary_until->year, (unsigned)a.temporary_until.year);
    ck_assert_str_eq(ct->residence->current_address, a.temporary_residence);
    ck_assert_ptr_nonnull(ct->household);
    ck_assert_str_eq(ct->household->head_personal_id, a.head_personal_id);
    ck_assert_str_eq(ct->household->head_full_name, a.head_full_name);
    ck_assert_int_eq(ct->household->relationship_to_head,
                     LTH__DOMAIN__V1__HOUSEHOLD_RELATIONSHIP__HOUSEHOLD_RELATIONSHIP_CHILD);
    /* Family relations withheld, and said so. */
    ck_assert_ptr_null(ct->family);
    ck_assert_str_eq(ct->birth_province_code, "");
    ck_assert_ptr_null(ct->last_changed);
    ck_assert_uint_eq(r->n_withheld_fields, 3);
    ck_assert(has_withheld(r, "family") && has_withheld(r, "birth_province_code") &&
              has_withheld(r, "last_changed"));
    ck_assert_msg(!memmem(raw.payload, raw.payload_len, a.mother_name, strlen(a.mother_name)) ||
                      !strcmp(a.mother_name, a.head_full_name),
                  "a parent's name left with the record");
    /* The head's own record agrees: head of the same household, same
     * permanent address. */
    ck_assert_int_eq(h->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_str_eq(h->citizen->full_name, a.head_full_name);
    ck_assert_str_eq(h->citizen->household->head_personal_id, a.head_personal_id);
    ck_assert_int_eq(h->citizen->household->relationship_to_head,
                     LTH__DOMAIN__V1__HOUSEHOLD_RELATIONSHIP__HOUSEHOLD_RELATIONSHIP_HEAD);
    ck_assert_str_eq(h->citizen->residence->permanent_address, a.residence);
    lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);

    /* Judicial record: family, not household. */
    resp = lookup(c, keys, 1, "judicial-record", &raw);
    ct = resp->results[0]->citizen;
    ck_assert_ptr_nonnull(ct->family);
    ck_assert_str_eq(ct->family->father_full_name, a.father_name);
    ck_assert_str_eq(ct->family->mother_full_name, a.mother_name);
    ck_assert_ptr_null(ct->household);
    ck_assert_str_eq(ct->birth_province_code, a.birth_province_code);
    ck_assert(has_withheld(resp->results[0], "household"));
    ck_assert(!memmem(raw.payload, raw.payload_len, a.head_personal_id, LTH_PID_LEN));
    lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);

    /* A confirm-only purpose: the look-up returns nothing but the key. */
    resp = lookup(c, keys, 1, "enterprise-registration", &raw);
    ck_assert_int_eq(resp->results[0]->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_uint_eq(resp->results[0]->n_withheld_fields, 8);
    assert_no_record_value(&raw, &a);
    lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);

    /* No agreed purpose: nothing, and the same answer for an absent key. */
    lth_citizen_t nobody = citizen(CITIZENS + 9);
    const char *both[] = {a.personal_id, nobody.personal_id};
    resp = lookup(c, both, 2, "tax-audit", &raw);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(resp->results[i]->status,
                         LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_PERMITTED);
        ck_assert_msg(strstr(resp->results[i]->reason, "'tax-audit'"), "%s",
                      resp->results[i]->reason);
    }
    assert_no_record_value(&raw, &a);
    lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);
    /* No purpose code at all: refused as a whole. */
    resp = lookup(c, keys, 1, "", &raw);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID);
    ck_assert_msg(strstr(resp->reason, "purpose_code is required"), "%s", resp->reason);
    lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);
    adp_close(&c);

    /* Another member may not borrow the one-stop shop's purposes. */
    c = hubfix_connect(&fix, HOTICH);
    resp = lookup(c, keys, 1, "residence-registration", &raw);
    ck_assert_int_eq(resp->results[0]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_PERMITTED);
    lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);
    resp = lookup(c, keys, 1, "civil-status", &raw);
    ck_assert_str_eq(resp->results[0]->citizen->full_name, a.full_name);
    ck_assert_ptr_null(resp->results[0]->citizen->residence);
    ck_assert_uint_eq(resp->results[0]->n_withheld_fields, 7);
    lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
    adp_reply_free(&raw);
    adp_close(&c);
}
END_TEST

START_TEST(bad_disclosure_file_stops_the_adapter)
{
    const char *bad[][2] = {
        {"disclose full_name,religion to " TTHC " for x\n", "disclosure.bad:1: 'religion' is not"},
        {"# ok\ndisclose full_name to " TTHC "\n", "disclosure.bad:2: write: disclose"},
        {"confirm sex to VN/GOV for y\n", "disclosure.bad:1: 'VN/GOV' is not a member id"},
        {"disclose sex to " TTHC " for Y\n", "disclosure.bad:1: 'Y': a purpose code"},
        {"disclose sex to " TTHC " for y\ndisclose sex to " TTHC " for y\n",
         "disclosure.bad:2: the same rule is written twice"},
    };
    char file[PATH_MAX], text[4096];
    snprintf(file, sizeof file, "%s/disclosure.bad", fix.dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tk_write_file(file, bad[i][0]);
        snprintf(text, sizeof text, "plugin.db = %s/pop.db\nplugin.disclosure_file = %s\n",
                 fix.dir, file);
        char *out = hubfix_adapter_refused(&fix, POP, "population", text);
        ck_assert_msg(strstr(out, "plugin.disclosure_file: ") && strstr(out, bad[i][1]),
                      "case %zu: %s", i, out);
        free(out);
    }
}
END_TEST

TK_MAIN("e2e_citizen",
        TK_CASE("citizen", setup, teardown, 120, verify_matches_without_disclosing,
                verify_refusals_say_what_to_fix, lookup_returns_the_fields_of_the_purpose,
                bad_disclosure_file_stops_the_adapter))
