/* Unit tests for the population database (lth_popdb), the citizen look-up
 * rules (lth_lookup), fields by purpose (lth_disclose) and verification
 * (lth_verify), in process, on a small synthetic database. */
#include "domain.pb-c.h"
#include "hub_error.h"
#include "lth_lookup.h"
#include "lth_popdb.h"
#include "lth_verify.h"
#include "testkit.h"
#include "tkcitizen.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED 5
#define CITIZENS 500

typedef Lth__Domain__V1__CitizenLookupResponse response_t;

static char dir[PATH_MAX], db_path[PATH_MAX];
static lth_popdb_t *db;

static void setup(void)
{
    char err[HUB_ERRMSG_MAX];
    tk_tmpdir(dir);
    snprintf(db_path, sizeof db_path, "%s/pop.db", dir);
    ck_assert_msg(lth_popdb_build(db_path, SEED, CITIZENS, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(lth_popdb_open(db_path, &db, err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
    lth_popdb_close(&db);
    tk_rmrf(dir);
}

static lth_citizen_t citizen(size_t index)
{
    lth_citizen_t c;
    ck_assert_int_eq(lth_citizen_generate(SEED, index, &c), 0);
    return c;
}

/* Encodes a request for keys with mode and optional date, answers it with
 * lth_lookup_answer and decodes the response (free with free_response). */
static response_t *ask_as(bool permitted, const char *content_type, const char *const *keys,
                          size_t n, int mode, const lth_date_t *date, const char *purpose,
                          lth_lookup_counts_t *counts)
{
    Lth__Domain__V1__Date d;
    Lth__Domain__V1__CitizenLookupRequest req = tk_citizen_lookup_request(keys, n, mode, date, &d);
    req.purpose = (char *)purpose;
    size_t len = lth__domain__v1__citizen_lookup_request__get_packed_size(&req);
    uint8_t *buf = malloc(len ? len : 1);
    lth__domain__v1__citizen_lookup_request__pack(&req, buf);
    uint8_t *out = NULL;
    size_t out_len = 0;
    ck_assert_int_eq(
        lth_lookup_answer(db, permitted, content_type, buf, len, &out, &out_len, counts), 0);
    free(buf);
    response_t *resp = lth__domain__v1__citizen_lookup_response__unpack(NULL, out_len, out);
    ck_assert_ptr_nonnull(resp);
    free(out);
    return resp;
}

static response_t *ask(const char *const *keys, size_t n, int mode, const lth_date_t *date)
{
    return ask_as(true, LTH_LOOKUP_REQUEST_TYPE, keys, n, mode, date, "unit test", NULL);
}

/* A CURRENT lookup of the n keys (purpose "test"), which must be answered
 * OK with a result for each key. */
static response_t *ask_current(bool permitted, const char *const *keys, size_t n,
                               lth_lookup_counts_t *counts)
{
    response_t *resp =
        ask_as(permitted, LTH_LOOKUP_REQUEST_TYPE, keys, n,
               LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CURRENT, NULL, "test", counts);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK);
    ck_assert_uint_eq(resp->n_results, n);
    return resp;
}

/* The result is FOUND and shows the record `c` (residence and last change
 * as given, for views as of a date). */
static void assert_found(const Lth__Domain__V1__CitizenLookupResult *r, const lth_citizen_t *c,
                         const char *residence, lth_date_t last_changed)
{
    ck_assert_int_eq(r->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_str_eq(r->personal_id, c->personal_id);
    ck_assert_str_eq(r->reason, "");
    ck_assert_ptr_nonnull(r->citizen);
    ck_assert_str_eq(r->citizen->personal_id, c->personal_id);
    ck_assert_str_eq(r->citizen->full_name, c->full_name);
    tk_assert_date(r->citizen->date_of_birth, c->date_of_birth);
    ck_assert_int_eq((int)r->citizen->sex, (int)c->sex);
    ck_assert_str_eq(r->citizen->birth_province_code, c->birth_province_code);
    ck_assert_str_eq(r->citizen->place_of_residence, residence);
    tk_assert_date(r->citizen->last_changed, last_changed);
}

static void assert_refused(response_t *resp, const char *reason_part)
{
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID);
    ck_assert_uint_eq(resp->n_results, 0);
    ck_assert_msg(strstr(resp->reason, reason_part), "reason: %s", resp->reason);
}

/* Index of a citizen whose record changed (want_change) or did not. */
static size_t find_citizen(bool want_change)
{
    for (size_t i = 0; i < CITIZENS; i++)
        if ((citizen(i).previous_residence[0] != '\0') == want_change)
            return i;
    ck_abort_msg("no such citizen");
    return 0;
}

START_TEST(database_holds_the_generated_records)
{
    lth_popdb_info_t info = lth_popdb_info(db);
    ck_assert_uint_eq(info.seed, SEED);
    ck_assert_uint_eq(info.citizens, CITIZENS);
    for (size_t i = 0; i < CITIZENS; i++) {
        lth_citizen_t want = citizen(i), got;
        if (lth_popdb_get(db, want.personal_id, &got) != 0 || memcmp(&want, &got, sizeof got))
            ck_abort_msg("record %zu differs from the generator's", i);
    }
    lth_citizen_t absent = citizen(CITIZENS), got;
    ck_assert_int_eq(lth_popdb_get(db, absent.personal_id, &got), HUB_ENOTFOUND);
    ck_assert_int_eq(lth_popdb_get(db, "' OR 1=1 --", &got), HUB_ENOTFOUND);
}
END_TEST

START_TEST(database_files_are_checked)
{
    char err[HUB_ERRMSG_MAX], path[PATH_MAX];
    /* Never overwritten. */
    ck_assert_int_eq(lth_popdb_build(db_path, SEED, 10, err, sizeof err), HUB_EEXIST);
    ck_assert_ptr_nonnull(strstr(err, "already exists"));
    ck_assert_int_eq(lth_popdb_build(db_path, SEED, 0, err, sizeof err), HUB_EINVAL);
    lth_popdb_t *other = NULL;
    snprintf(path, sizeof path, "%s/missing.db", dir);
    ck_assert_int_eq(lth_popdb_open(path, &other, err, sizeof err), HUB_ENOENT);
    ck_assert_ptr_null(other);
    snprintf(path, sizeof path, "%s/not-a-db", dir);
    tk_write_file(path, "this is not a SQLite database, not even close to one ..........");
    ck_assert_int_eq(lth_popdb_open(path, &other, err, sizeof err), HUB_ESTORE);
    ck_assert_msg(strstr(err, "not a population database"), "%s", err);
    ck_assert_ptr_null(other);
    lth_popdb_close(&other); /* NULL is fine */
    /* No temporary file is left behind. */
    snprintf(path, sizeof path, "%s/small.db", dir);
    ck_assert_int_eq(lth_popdb_build(path, 9, 3, err, sizeof err), 0);
    ck_assert_int_eq(lth_popdb_open(path, &other, err, sizeof err), 0);
    ck_assert_uint_eq(lth_popdb_info(other).citizens, 3);
    lth_popdb_close(&other);
    ck_assert_ptr_null(other);
}
END_TEST

START_TEST(popgen_builds_the_same_data_set)
{
    char path[PATH_MAX], err[HUB_ERRMSG_MAX];
    snprintf(path, sizeof path, "%s/gen.db", dir);
    char *out = NULL;
    char *argv[] = {(char *)tk_bin("lth-popgen"), "--db", path, "--citizens", "500", "--seed",
                    "5", NULL};
    ck_assert_int_eq(tk_run(argv, &out, 60000), 0);
    ck_assert_msg(strstr(out, "500 SYNTHETIC citizens (seed 5)"), "%s", out);
    ck_assert_msg(strstr(out, "synthetic, no real person"), "%s", out);
    lth_citizen_t first = citizen(0);
    ck_assert_msg(strstr(out, first.personal_id), "%s", out);
    free(out);
    lth_popdb_t *gen = NULL;
    ck_assert_msg(lth_popdb_open(path, &gen, err, sizeof err) == 0, "%s", err);
    for (size_t i = 0; i < CITIZENS; i += 7) {
        lth_citizen_t want = citizen(i), a, b;
        if (lth_popdb_get(gen, want.personal_id, &a) != 0 ||
            lth_popdb_get(db, want.personal_id, &b) != 0 || memcmp(&a, &b, sizeof a) != 0)
            ck_abort_msg("record %zu differs between lth-popgen and lth_popdb_build", i);
    }
    lth_popdb_close(&gen);
    /* It never overwrites, and says how to use it. */
    TK_RUN_SAYS(argv, 60000, 1, "already exists");
    char *bad[] = {(char *)tk_bin("lth-popgen"), "--db", path, "--citizens", "lots", NULL};
    TK_RUN_SAYS(bad, 60000, 2, "--citizens must be a whole number");
}
END_TEST

START_TEST(current_mode_answers_each_key)
{
    lth_citizen_t a = citizen(0), b = citizen(CITIZENS - 1), absent = citizen(CITIZENS + 7);
    const char *keys[] = {a.personal_id, "00108501234", absent.personal_id, b.personal_id,
                          "001985\x01\xff\x41 0123456789012345678901234567890123"};
    lth_lookup_counts_t counts;
    response_t *resp = ask_current(true, keys, 5, &counts);
    assert_found(resp->results[0], &a, a.residence, a.changed_on);
    ck_assert_int_eq(resp->results[1]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY);
    ck_assert_str_eq(resp->results[1]->personal_id, "00108501234");
    ck_assert_ptr_nonnull(strstr(resp->results[1]->reason, "12 digits"));
    ck_assert_ptr_null(resp->results[1]->citizen);
    ck_assert_int_eq(resp->results[2]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND);
    ck_assert_str_eq(resp->results[2]->personal_id, absent.personal_id);
    ck_assert_ptr_null(resp->results[2]->citizen);
    assert_found(resp->results[3], &b, b.residence, b.changed_on);
    /* An invalid key is echoed as printable ASCII, cut to 32 bytes. */
    ck_assert_int_eq(resp->results[4]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY);
    ck_assert_str_eq(resp->results[4]->personal_id, "001985??A 0123456789012345678901");
    ck_assert_uint_eq(strlen(resp->results[4]->personal_id), 32);
    ck_assert_uint_eq(counts.keys, 5);
    ck_assert_uint_eq(counts.found, 2);
    ck_assert_uint_eq(counts.not_found, 1);
    ck_assert_uint_eq(counts.invalid_key, 2);
    tk_citizen_lookup_free(&resp);
}
END_TEST

START_TEST(as_of_mode_shows_the_record_on_a_date)
{
    lth_citizen_t moved = citizen(find_citizen(true));
    const char *keys[] = {moved.personal_id};
    int as_of = LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_AS_OF;
    /* Before the record existed. */
    lth_date_t day = lth_date_from_days(lth_date_to_days(moved.created_on) - 1);
    response_t *resp = ask(keys, 1, as_of, &day);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK);
    ck_assert_int_eq(resp->mode, as_of);
    tk_assert_date(resp->date, day);
    ck_assert_int_eq(resp->results[0]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(resp->results[0]->reason, "on the date asked"));
    tk_citizen_lookup_free(&resp);
    /* Between creation and the change: the previous residence. */
    resp = ask(keys, 1, as_of, &moved.created_on);
    assert_found(resp->results[0], &moved, moved.previous_residence, moved.created_on);
    tk_citizen_lookup_free(&resp);
    /* From the change on: as it is. */
    resp = ask(keys, 1, as_of, &moved.changed_on);
    assert_found(resp->results[0], &moved, moved.residence, moved.changed_on);
    tk_citizen_lookup_free(&resp);
}
END_TEST

START_TEST(changes_since_mode_leaves_out_unchanged_records)
{
    /* One record that never changed, and one changed later than it was made. */
    lth_citizen_t stayed = citizen(find_citizen(false)), moved;
    size_t i = 0;
    do
        moved = citizen(i++);
    while (!moved.previous_residence[0] || lth_date_cmp(moved.changed_on, stayed.changed_on) <= 0);
    lth_citizen_t absent = citizen(CITIZENS);
    const char *keys[] = {moved.personal_id, stayed.personal_id, absent.personal_id, "x"};
    int since = LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CHANGES_SINCE;
    /* The day of the change itself counts ("on or after"). */
    lth_lookup_counts_t counts;
    response_t *resp =
        ask_as(true, LTH_LOOKUP_REQUEST_TYPE, keys, 4, since, &moved.changed_on, "sync", &counts);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK);
    ck_assert_int_eq(resp->mode, since);
    ck_assert_uint_eq(resp->n_results, 3);
    assert_found(resp->results[0], &moved, moved.residence, moved.changed_on);
    ck_assert_str_eq(resp->results[1]->personal_id, absent.personal_id);
    ck_assert_int_eq(resp->results[1]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND);
    ck_assert_str_eq(resp->results[2]->personal_id, "x");
    ck_assert_int_eq(resp->results[2]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY);
    ck_assert_uint_eq(counts.unchanged, 1);
    ck_assert_uint_eq(counts.found, 1);
    tk_citizen_lookup_free(&resp);
    /* The day after the change: neither. */
    lth_date_t after = lth_date_from_days(lth_date_to_days(moved.changed_on) + 1);
    resp = ask(keys, 2, since, &after);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK);
    ck_assert_uint_eq(resp->n_results, 0);
    tk_citizen_lookup_free(&resp);
    /* Since before the database existed: both, as they are. */
    lth_date_t long_ago = {2000, 1, 1};
    resp = ask(keys, 2, since, &long_ago);
    ck_assert_uint_eq(resp->n_results, 2);
    assert_found(resp->results[0], &moved, moved.residence, moved.changed_on);
    assert_found(resp->results[1], &stayed, stayed.residence, stayed.changed_on);
    tk_citizen_lookup_free(&resp);
}
END_TEST

START_TEST(not_permitted_members_see_nothing)
{
    lth_citizen_t a = citizen(3);
    const char *keys[] = {a.personal_id, "123"};
    lth_lookup_counts_t counts;
    response_t *resp = ask_current(false, keys, 2, &counts);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(resp->results[i]->status,
                         LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_PERMITTED);
        ck_assert_ptr_null(resp->results[i]->citizen);
        ck_assert_ptr_nonnull(strstr(resp->results[i]->reason, "data-sharing agreement"));
    }
    ck_assert_str_eq(resp->results[0]->personal_id, a.personal_id);
    ck_assert_uint_eq(counts.not_permitted, 2);
    ck_assert_uint_eq(counts.found, 0);
    tk_citizen_lookup_free(&resp);
}
END_TEST

START_TEST(bad_requests_are_refused_as_a_whole)
{
    lth_citizen_t a = citizen(0);
    const char *one[] = {a.personal_id};
    int current = LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CURRENT;
    lth_date_t day = {2024, 1, 1}, bad_day = {2023, 2, 29};
    response_t *resp;

    resp = ask(one, 0, current, NULL);
    assert_refused(resp, "no personal_ids");
    tk_citizen_lookup_free(&resp);
    resp = ask_as(true, LTH_LOOKUP_REQUEST_TYPE, one, 1, current, NULL, "", NULL);
    assert_refused(resp, "purpose is required");
    tk_citizen_lookup_free(&resp);
    resp = ask(one, 1, current, &day);
    assert_refused(resp, "mode CURRENT");
    tk_citizen_lookup_free(&resp);
    resp = ask(one, 1, LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_AS_OF, NULL);
    assert_refused(resp, "need a valid date");
    tk_citizen_lookup_free(&resp);
    resp = ask(one, 1, LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CHANGES_SINCE, &bad_day);
    assert_refused(resp, "need a valid date");
    tk_citizen_lookup_free(&resp);
    resp = ask(one, 1, 7, NULL);
    assert_refused(resp, "unknown mode");
    tk_citizen_lookup_free(&resp);
    resp = ask_as(true, "application/json", one, 1, current, NULL, "test", NULL);
    assert_refused(resp, LTH_LOOKUP_REQUEST_TYPE);
    tk_citizen_lookup_free(&resp);

    /* 1000 keys are answered, 1001 refused. */
    const char **many = malloc((LTH_LOOKUP_MAX_KEYS + 1) * sizeof *many);
    for (size_t i = 0; i <= LTH_LOOKUP_MAX_KEYS; i++)
        many[i] = a.personal_id;
    lth_lookup_counts_t counts;
    resp = ask_current(true, many, LTH_LOOKUP_MAX_KEYS, &counts);
    ck_assert_uint_eq(counts.found, LTH_LOOKUP_MAX_KEYS);
    tk_citizen_lookup_free(&resp);
    resp = ask_as(true, LTH_LOOKUP_REQUEST_TYPE, many, LTH_LOOKUP_MAX_KEYS + 1, current, NULL,
                  "test", &counts);
    assert_refused(resp, "at most 1000");
    ck_assert_int_eq(counts.status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID);
    ck_assert_uint_eq(counts.keys, LTH_LOOKUP_MAX_KEYS + 1);
    tk_citizen_lookup_free(&resp);
    free(many);

    /* A payload that is not a CitizenLookupRequest. */
    uint8_t *out = NULL;
    size_t out_len = 0;
    ck_assert_int_eq(lth_lookup_answer(db, true, LTH_LOOKUP_REQUEST_TYPE,
                                       (const uint8_t *)"\xff\xff\xff", 3, &out, &out_len, NULL),
                     0);
    resp = lth__domain__v1__citizen_lookup_response__unpack(NULL, out_len, out);
    free(out);
    ck_assert_ptr_nonnull(resp);
    assert_refused(resp, "not a valid CitizenLookupRequest");
    tk_citizen_lookup_free(&resp);
    ck_assert_int_eq(
        lth_lookup_answer(NULL, true, LTH_LOOKUP_REQUEST_TYPE, NULL, 0, &out, &out_len, NULL),
        HUB_EINVAL);
}
END_TEST

/* Round i of a random-payload test: buf gets a prefix of valid (len bytes)
 * of random length, with a random byte flipped in every other round; returns
 * its length. */
static size_t mangled(uint8_t *buf, const uint8_t *valid, size_t len, int i)
{
    size_t n = (size_t)rand() % (len + 1);
    memcpy(buf, valid, n);
    if (n > 0 && i % 2)
        buf[rand() % n] ^= (uint8_t)(1 + rand() % 255);
    return n;
}

START_TEST(random_payloads_never_crash)
{
    lth_citizen_t a = citizen(1);
    const char *keys[] = {a.personal_id, "001085012345"};
    Lth__Domain__V1__CitizenLookupRequest req = LTH__DOMAIN__V1__CITIZEN_LOOKUP_REQUEST__INIT;
    req.personal_ids = (char **)keys;
    req.n_personal_ids = 2;
    req.purpose = "fuzz";
    size_t len = lth__domain__v1__citizen_lookup_request__get_packed_size(&req);
    uint8_t valid[256];
    ck_assert_uint_lt(len, sizeof valid);
    lth__domain__v1__citizen_lookup_request__pack(&req, valid);
    srand(99);
    for (int i = 0; i < 3000; i++) {
        uint8_t buf[256];
        size_t n = mangled(buf, valid, len, i);
        uint8_t *out = NULL;
        size_t out_len = 0;
        if (lth_lookup_answer(db, true, LTH_LOOKUP_REQUEST_TYPE, buf, n, &out, &out_len, NULL) != 0)
            ck_abort_msg("iteration %d failed", i);
        response_t *resp = lth__domain__v1__citizen_lookup_response__unpack(NULL, out_len, out);
        if (!resp)
            ck_abort_msg("iteration %d: the response does not decode", i);
        lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
        free(out);
    }
}
END_TEST

START_TEST(households_agree_with_their_heads)
{
    size_t members = 0, temporary = 0;
    for (size_t i = 0; i < CITIZENS; i++) {
        lth_citizen_t c = citizen(i), head;
        if (c.temporary_residence[0]) {
            temporary++;
            ck_assert(lth_date_cmp(c.temporary_until, LTH_CITIZEN_REFERENCE_DATE) > 0);
        }
        ck_assert(c.father_name[0] && c.mother_name[0]);
        if (c.relationship == LTH_REL_HEAD) {
            ck_assert_str_eq(c.head_personal_id, c.personal_id);
            continue;
        }
        members++;
        /* The head is in the data set, an adult, head of its own household,
         * at the same address. */
        ck_assert_int_eq(lth_popdb_get(db, c.head_personal_id, &head), 0);
        ck_assert_int_eq(head.relationship, LTH_REL_HEAD);
        ck_assert_str_eq(head.full_name, c.head_full_name);
        ck_assert_str_eq(head.residence, c.residence);
        ck_assert_int_ge(LTH_CITIZEN_REFERENCE_DATE.year - head.date_of_birth.year, 18);
        int older = c.date_of_birth.year - head.date_of_birth.year;
        if (c.relationship == LTH_REL_CHILD) {
            ck_assert_int_ge(older, 18);
            ck_assert_str_eq(head.sex == LTH_SEX_MALE ? c.father_name : c.mother_name,
                             head.full_name);
        }
        if (c.relationship == LTH_REL_PARENT)
            ck_assert_int_le(older, -18);
        if (c.relationship == LTH_REL_GRANDPARENT)
            ck_assert_int_le(older, -45);
        if (c.relationship == LTH_REL_SPOUSE) {
            ck_assert_int_ne(c.sex, head.sex);
            ck_assert_str_eq(c.spouse_name, head.full_name);
        }
    }
    /* About two in three belong to someone else's household, one in seven
     * has a temporary residence. */
    ck_assert_uint_gt(members, CITIZENS / 3);
    ck_assert_uint_lt(members, CITIZENS * 9 / 10);
    ck_assert_uint_gt(temporary, CITIZENS / 14);
    ck_assert_uint_lt(temporary, CITIZENS / 4);
}
END_TEST

START_TEST(disclosure_rules_parse_and_combine)
{
    const char *text = "# the owner's copy\n"
                       "disclose full_name,residence to VN/GOV/HN-VP/TTHC for a  # trailing\n"
                       "\n"
                       "confirm date_of_birth,sex to VN/GOV/HN-VP/TTHC for a\n"
                       "confirm full_name to VN/GOV/HN-VP/TTHC for b\r\n";
    lth_disclosure_t *d = NULL;
    char err[HUB_ERRMSG_MAX] = "";
    ck_assert_msg(lth_disclosure_parse("t.conf", text, &d, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(lth_disclosure_count(d), 3);
    lth_fields_t f = 0;
    ck_assert(lth_disclosure_fields(d, "VN/GOV/HN-VP/TTHC", "a", LTH_USE_LOOKUP, &f));
    ck_assert_uint_eq(f, LTH_FIELD_FULL_NAME | LTH_FIELD_RESIDENCE);
    ck_assert(lth_disclosure_fields(d, "VN/GOV/HN-VP/TTHC", "a", LTH_USE_VERIFY, &f));
    ck_assert_uint_eq(f, LTH_FIELD_FULL_NAME | LTH_FIELD_RESIDENCE | LTH_FIELD_DATE_OF_BIRTH |
                             LTH_FIELD_SEX);
    /* confirm only: known purpose, nothing to return */
    ck_assert(lth_disclosure_fields(d, "VN/GOV/HN-VP/TTHC", "b", LTH_USE_LOOKUP, &f));
    ck_assert_uint_eq(f, 0);
    ck_assert(!lth_disclosure_fields(d, "VN/GOV/HN-VP/TTHC", "c", LTH_USE_VERIFY, &f));
    ck_assert(!lth_disclosure_fields(d, "VN/GOV/HN-STP/HOTICH", "a", LTH_USE_LOOKUP, &f));
    ck_assert_uint_eq(f, 0);
    lth_disclosure_destroy(&d);
    ck_assert_ptr_null(d);
    lth_disclosure_destroy(&d);

    const char *bad[][2] = {
        {"disclose full_name to VN/GOV/HN-VP/TTHC\n", "t.conf:1: write: disclose"},
        {"reveal full_name to VN/GOV/HN-VP/TTHC for a\n", "t.conf:1: write: disclose"},
        {"\ndisclose full_name,,sex to VN/GOV/HN-VP/TTHC for a\n", "t.conf:2: '' is not a field"},
        {"disclose name to VN/GOV/HN-VP/TTHC for a\n", "'name' is not a field"},
        {"disclose sex to * for a\n", "'*' is not a member id"},
        {"disclose sex to VN/GOV/HN-VP/TTHC for ÁB\n", "a purpose code has only"},
        {"confirm sex to VN/GOV/HN-VP/TTHC for a\nconfirm sex to VN/GOV/HN-VP/TTHC for a\n",
         "t.conf:2: the same rule is written twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ck_assert_int_ne(lth_disclosure_parse("t.conf", bad[i][0], &d, err, sizeof err), 0);
        ck_assert_ptr_null(d);
        ck_assert_msg(strstr(err, bad[i][1]), "case %zu: %s", i, err);
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/none.conf", dir);
    ck_assert_int_eq(lth_disclosure_load(path, &d, err, sizeof err), HUB_ENOENT);
    ck_assert_msg(strstr(err, "none.conf"), "%s", err);
}
END_TEST

START_TEST(verify_folds_case_spaces_and_punctuation)
{
    char a[128], b[128];
    lth_verify_fold("  NGUYỄN   VĂN  ĐỨC ", false, a, sizeof a);
    lth_verify_fold("Nguyễn Văn Đức", false, b, sizeof b);
    ck_assert_str_eq(a, b);
    ck_assert_str_eq(a, "nguyễn văn đức");
    lth_verify_fold("ƯỚC ƠN ẮÂÊÔ ÝỲỴỶỸ", false, a, sizeof a);
    ck_assert_str_eq(a, "ước ơn ắâêô ýỳỵỷỹ");
    lth_verify_fold("Số 12, ngõ 3 - Hà Nội.", true, a, sizeof a);
    lth_verify_fold("SỐ 12 NGÕ 3 HÀ NỘI", true, b, sizeof b);
    ck_assert_str_eq(a, b);
    /* Bytes that are not UTF-8 are kept, and the output is cut, not overrun. */
    lth_verify_fold("A\xff\xfe B", false, a, sizeof a);
    ck_assert_str_eq(a, "a\xff\xfe b");
    char small[6];
    lth_verify_fold("ĐĐĐĐĐĐ", false, small, sizeof small);
    ck_assert_str_eq(small, "đđ");
}
END_TEST

START_TEST(random_verify_payloads_never_crash)
{
    lth_citizen_t a = citizen(2);
    Lth__Domain__V1__DeclaredIdentity s = LTH__DOMAIN__V1__DECLARED_IDENTITY__INIT, *sp = &s;
    Lth__Domain__V1__Date dob = LTH__DOMAIN__V1__DATE__INIT;
    dob.year = (uint32_t)a.date_of_birth.year;
    dob.month = (uint32_t)a.date_of_birth.month;
    dob.day = (uint32_t)a.date_of_birth.day;
    s.personal_id = a.personal_id;
    s.full_name = a.full_name;
    s.date_of_birth = &dob;
    s.sex = (Lth__Domain__V1__Sex)a.sex;
    s.residence = a.residence;
    Lth__Domain__V1__CitizenVerifyRequest req = LTH__DOMAIN__V1__CITIZEN_VERIFY_REQUEST__INIT;
    req.subjects = &sp;
    req.n_subjects = 1;
    req.purpose = "fuzz";
    uint8_t valid[512];
    size_t len = lth__domain__v1__citizen_verify_request__get_packed_size(&req);
    ck_assert_uint_lt(len, sizeof valid);
    lth__domain__v1__citizen_verify_request__pack(&req, valid);
    lth_lookup_policy_t policy = {true, "VN/GOV/HN-VP/TTHC", NULL};
    /* The valid request first: everything matches. */
    uint8_t *out = NULL;
    size_t out_len = 0;
    lth_verify_counts_t n;
    ck_assert_int_eq(
        lth_verify_answer(db, &policy, LTH_VERIFY_REQUEST_TYPE, valid, len, &out, &out_len, &n), 0);
    ck_assert_uint_eq(n.all_match, 1);
    free(out);
    srand(7);
    for (int i = 0; i < 3000; i++) {
        uint8_t buf[512];
        size_t k = mangled(buf, valid, len, i);
        if (lth_verify_answer(db, &policy, LTH_VERIFY_REQUEST_TYPE, buf, k, &out, &out_len, NULL) !=
            0)
            ck_abort_msg("iteration %d failed", i);
        Lth__Domain__V1__CitizenVerifyResponse *resp =
            lth__domain__v1__citizen_verify_response__unpack(NULL, out_len, out);
        if (!resp)
            ck_abort_msg("iteration %d: the response does not decode", i);
        lth__domain__v1__citizen_verify_response__free_unpacked(resp, NULL);
        free(out);
    }
}
END_TEST

TK_MAIN("lookup",
        TK_CASE("lookup", setup, teardown, 120, database_holds_the_generated_records,
                database_files_are_checked, popgen_builds_the_same_data_set,
                current_mode_answers_each_key, as_of_mode_shows_the_record_on_a_date,
                changes_since_mode_leaves_out_unchanged_records, not_permitted_members_see_nothing,
                bad_requests_are_refused_as_a_whole, random_payloads_never_crash,
                households_agree_with_their_heads, disclosure_rules_parse_and_combine,
                verify_folds_case_spaces_and_punctuation, random_verify_payloads_never_crash))
