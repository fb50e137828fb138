/* End to end: the population adapter (lth-population.so in hub-adapter)
 * behind a real hubd, asked by SDK clients over CURVE: found, not found and
 * invalid keys, batches, modes, refusals, a member without permission — and
 * no personal data in the adapter's log. */
#include "domain.pb-c.h"
#include "hub_error.h"
#include "hubfix.h"
#include "lth_citizen.h"
#include "lth_lookup.h"
#include "testkit.h"
#include "tkcitizen.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define POP "VN/GOV/BCA/CSDLQGDC"
#define TTHC "VN/GOV/HN-VP/TTHC"      /* permitted consumer */
#define HOTICH "VN/GOV/HN-STP/HOTICH" /* known to the hub, not permitted */
#define SEED 1                        /* the plugin's default plugin.seed */
#define CITIZENS 2000

typedef Lth__Domain__V1__CitizenLookupResponse response_t;
typedef Lth__Domain__V1__CitizenLookupResult result_t;

static hubfix_t fix;
static pid_t adapter;
static char adapter_log[PATH_MAX];

static void setup(void)
{
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, POP, TTHC, HOTICH);
    hubfix_start(&fix);
    char conf[1024];
    snprintf(conf, sizeof conf,
             "plugin.db = %s/pop.db\nplugin.citizens = %d\nplugin.allowed_consumers = " TTHC
             "\nlog_level = debug\n",
             fix.dir, CITIZENS);
    adapter = hubfix_start_adapter(&fix, POP, "population", conf);
    snprintf(adapter_log, sizeof adapter_log, "%s/adapter-VN.GOV.BCA.CSDLQGDC.log", fix.dir);
}

static void teardown(void) { hubfix_cleanup(&fix); }

static lth_citizen_t citizen(size_t index)
{
    lth_citizen_t c;
    ck_assert_int_eq(lth_citizen_generate(SEED, index, &c), 0);
    return c;
}

/* Sends a CitizenLookupRequest as the client's member and decodes the reply
 * (free with free_response). */
static response_t *lookup(adp_client_t *c, const char *const *keys, size_t n, int mode,
                          const lth_date_t *date)
{
    Lth__Domain__V1__Date d;
    Lth__Domain__V1__CitizenLookupRequest req = tk_citizen_lookup_request(keys, n, mode, date, &d);
    req.purpose = "Đăng ký thường trú: kiểm tra thông tin công dân (test)";
    req.dossier_code = "TEST-0001";
    return tk_citizen_lookup(c, POP, &req, 0, 10000, NULL);
}

static response_t *lookup_current(adp_client_t *c, const char *const *keys, size_t n)
{
    response_t *resp = lookup(c, keys, n, LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CURRENT, NULL);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK);
    ck_assert_str_eq(resp->reason, "");
    ck_assert_uint_eq(resp->n_results, n);
    return resp;
}

/* FOUND, field by field, against the generator's record. */
static void assert_found(const result_t *r, const lth_citizen_t *c, const char *residence,
                         lth_date_t last_changed)
{
    ck_assert_str_eq(r->personal_id, c->personal_id);
    ck_assert_int_eq(r->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_str_eq(r->reason, "");
    ck_assert_ptr_nonnull(r->citizen);
    ck_assert_str_eq(r->citizen->personal_id, c->personal_id);
    ck_assert_str_eq(r->citizen->full_name, c->full_name);
    tk_assert_date(r->citizen->date_of_birth, c->date_of_birth);
    ck_assert_int_eq((int)r->citizen->sex, c->sex == LTH_SEX_FEMALE
                                               ? LTH__DOMAIN__V1__SEX__SEX_FEMALE
                                               : LTH__DOMAIN__V1__SEX__SEX_MALE);
    ck_assert_str_eq(r->citizen->birth_province_code, c->birth_province_code);
    ck_assert_int_eq(strncmp(r->citizen->birth_province_code, c->personal_id, 3), 0);
    ck_assert_str_eq(r->citizen->place_of_residence, residence);
    tk_assert_date(r->citizen->last_changed, last_changed);
}

static void assert_status(const result_t *r, const char *key, int status, const char *reason_part)
{
    ck_assert_str_eq(r->personal_id, key);
    ck_assert_int_eq(r->status, status);
    ck_assert_ptr_null(r->citizen);
    ck_assert_msg(strstr(r->reason, reason_part), "reason: %s", r->reason);
}

/* Stops the adapter (so that LeakSanitizer has spoken), then checks that it
 * exited cleanly and that its log holds no sanitizer report and none of the
 * personal data it served. */
static void assert_adapter_log_clean(const lth_citizen_t *served, size_t n)
{
    char *log = tk_stop_clean(adapter, "hub-adapter", adapter_log);
    ck_assert_msg(strstr(log, "citizen.lookup from"), "no look-up logged: %s", log);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(!strstr(log, served[i].personal_id), "a personal ID number was logged");
        ck_assert_msg(!strstr(log, served[i].full_name), "a name was logged");
    }
    free(log);
}

/* The end of a test that served one citizen: the answer freed, the client
 * closed, and the adapter's log checked (assert_adapter_log_clean). */
static void finish(adp_client_t **c, response_t **resp, const lth_citizen_t *served)
{
    tk_citizen_lookup_free(resp);
    adp_close(c);
    assert_adapter_log_clean(served, 1);
}

START_TEST(found_citizen)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    lth_citizen_t who = citizen(42);
    const char *keys[] = {who.personal_id};
    response_t *resp = lookup_current(c, keys, 1);
    ck_assert_int_eq(resp->mode, LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CURRENT);
    ck_assert_ptr_null(resp->date);
    assert_found(resp->results[0], &who, who.residence, who.changed_on);
    finish(&c, &resp, &who);
}
END_TEST

START_TEST(valid_but_absent_id_is_not_found)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    /* Index past the data set: a well-formed ID that no record has (the
     * generator's IDs are unique per seed). */
    lth_citizen_t nobody = citizen(CITIZENS + 123);
    const char *keys[] = {nobody.personal_id};
    response_t *resp = lookup_current(c, keys, 1);
    assert_status(resp->results[0], nobody.personal_id,
                  LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND,
                  "no record with this personal ID number");
    finish(&c, &resp, &nobody);
}
END_TEST

START_TEST(invalid_ids_say_why)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    const char *keys[] = {"00108501234", "003085012345", "001785012345", "00108501234x"};
    response_t *resp = lookup_current(c, keys, 4);
    int invalid = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY;
    assert_status(resp->results[0], keys[0], invalid, "exactly 12 digits");
    assert_status(resp->results[1], keys[1], invalid, "province code");
    assert_status(resp->results[2], keys[2], invalid, "4th digit");
    assert_status(resp->results[3], keys[3], invalid, "digits only");
    tk_citizen_lookup_free(&resp);
    adp_close(&c);
}
END_TEST

START_TEST(batch_mixes_every_answer)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    lth_citizen_t served[3] = {citizen(0), citizen(CITIZENS - 1), citizen(CITIZENS)};
    const lth_citizen_t *a = &served[0], *b = &served[1], *absent = &served[2];
    const char *keys[] = {a->personal_id, "12345", absent->personal_id, b->personal_id,
                          a->personal_id};
    response_t *resp = lookup_current(c, keys, 5);
    assert_found(resp->results[0], a, a->residence, a->changed_on);
    assert_status(resp->results[1], "12345",
                  LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY, "exactly 12 digits");
    assert_status(resp->results[2], absent->personal_id,
                  LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND, "no record");
    assert_found(resp->results[3], b, b->residence, b->changed_on);
    assert_found(resp->results[4], a, a->residence, a->changed_on); /* asked twice */
    tk_citizen_lookup_free(&resp);

    /* The largest batch is answered; one key more is refused as a whole. */
    const char **many = malloc((LTH_LOOKUP_MAX_KEYS + 1) * sizeof *many);
    lth_citizen_t *people = malloc((LTH_LOOKUP_MAX_KEYS + 1) * sizeof *people);
    for (size_t i = 0; i <= LTH_LOOKUP_MAX_KEYS; i++) {
        people[i] = citizen(i);
        many[i] = people[i].personal_id;
    }
    resp = lookup_current(c, many, LTH_LOOKUP_MAX_KEYS);
    for (size_t i = 0; i < LTH_LOOKUP_MAX_KEYS; i++)
        if (resp->results[i]->status != LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND ||
            strcmp(resp->results[i]->citizen->full_name, people[i].full_name) != 0)
            ck_abort_msg("batch result %zu is not the citizen asked for", i);
    tk_citizen_lookup_free(&resp);
    resp = lookup(c, many, LTH_LOOKUP_MAX_KEYS + 1,
                  LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CURRENT, NULL);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID);
    ck_assert_uint_eq(resp->n_results, 0);
    ck_assert_msg(strstr(resp->reason, "at most 1000"), "reason: %s", resp->reason);
    tk_citizen_lookup_free(&resp);
    free(many);
    adp_close(&c);
    assert_adapter_log_clean(people, 50);
    free(people);
}
END_TEST

START_TEST(other_member_is_not_permitted)
{
    adp_client_t *c = hubfix_connect(&fix, HOTICH);
    lth_citizen_t a = citizen(7), absent = citizen(CITIZENS + 1);
    const char *keys[] = {a.personal_id, absent.personal_id};
    response_t *resp = lookup_current(c, keys, 2);
    int denied = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_PERMITTED;
    /* The same answer whether or not a record exists: nothing leaks. */
    assert_status(resp->results[0], a.personal_id, denied, "permitted consumers");
    assert_status(resp->results[1], absent.personal_id, denied, "permitted consumers");
    tk_citizen_lookup_free(&resp);
    adp_close(&c);
    /* The permitted member is still served. */
    c = hubfix_connect(&fix, TTHC);
    resp = lookup_current(c, keys, 1);
    assert_found(resp->results[0], &a, a.residence, a.changed_on);
    tk_citizen_lookup_free(&resp);
    adp_close(&c);
    ck_assert(tk_wait_file_contains(adapter_log, "not in plugin.allowed_consumers", 3000));
    assert_adapter_log_clean(&a, 1);
}
END_TEST

START_TEST(as_of_and_changes_since)
{
    /* A citizen whose residence changed after the record was made. */
    lth_citizen_t moved;
    size_t i = 0;
    do
        moved = citizen(i++);
    while (!moved.previous_residence[0]);
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    const char *keys[] = {moved.personal_id};
    int as_of = LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_AS_OF;
    int since = LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CHANGES_SINCE;

    lth_date_t before = lth_date_from_days(lth_date_to_days(moved.created_on) - 1);
    response_t *resp = lookup(c, keys, 1, as_of, &before);
    ck_assert_uint_eq(resp->n_results, 1);
    assert_status(resp->results[0], moved.personal_id,
                  LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND, "on the date asked");
    tk_citizen_lookup_free(&resp);
    resp = lookup(c, keys, 1, as_of, &moved.created_on);
    assert_found(resp->results[0], &moved, moved.previous_residence, moved.created_on);
    tk_citizen_lookup_free(&resp);

    resp = lookup(c, keys, 1, since, &moved.changed_on);
    ck_assert_uint_eq(resp->n_results, 1);
    assert_found(resp->results[0], &moved, moved.residence, moved.changed_on);
    tk_citizen_lookup_free(&resp);
    lth_date_t after = lth_date_from_days(lth_date_to_days(moved.changed_on) + 1);
    resp = lookup(c, keys, 1, since, &after);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK);
    ck_assert_uint_eq(resp->n_results, 0);
    tk_citizen_lookup_free(&resp);

    /* A plain-text payload gets an answer that says what to send. */
    adp_reply_t reply;
    ck_assert_int_eq(adp_request(c, POP, LTH_SERVICE_CITIZEN_LOOKUP, "application/json", "{}", 2, 0,
                                 10000, &reply),
                     0);
    resp = lth__domain__v1__citizen_lookup_response__unpack(NULL, reply.payload_len, reply.payload);
    adp_reply_free(&reply);
    ck_assert_ptr_nonnull(resp);
    ck_assert_int_eq(resp->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID);
    ck_assert_msg(strstr(resp->reason, LTH_LOOKUP_REQUEST_TYPE), "reason: %s", resp->reason);
    finish(&c, &resp, &moved);
}
END_TEST

START_TEST(existing_database_is_reused)
{
    /* A restart opens the file built by the first start. */
    ck_assert_int_eq(tk_stop(adapter), 0);
    char conf[1024];
    snprintf(conf, sizeof conf, "plugin.db = %s/pop.db\nplugin.citizens = 10\n", fix.dir);
    adapter = hubfix_start_adapter(&fix, POP, "population", conf);
    ck_assert(tk_wait_file_contains(adapter_log, "already holds 2000 citizens", 3000));
    adp_client_t *c = hubfix_connect(&fix, HOTICH); /* every member may, now */
    lth_citizen_t last = citizen(CITIZENS - 1);
    const char *keys[] = {last.personal_id};
    response_t *resp = lookup_current(c, keys, 1);
    assert_found(resp->results[0], &last, last.residence, last.changed_on);
    tk_citizen_lookup_free(&resp);
    adp_close(&c);

    /* A bad setting stops the adapter at start with a clear error. */
    char text[2048];
    snprintf(text, sizeof text, "plugin.db = %s/x.db\nplugin.allowed_consumers = VN/GOV/NOPE\n",
             fix.dir);
    char *out = hubfix_adapter_refused(&fix, POP, "population", text);
    ck_assert_msg(strstr(out, "plugin.allowed_consumers: 'VN/GOV/NOPE' is not a member id"), "%s",
                  out);
    free(out);
}
END_TEST

TK_MAIN("e2e_population",
        TK_CASE("population", setup, teardown, 120, found_citizen, valid_but_absent_id_is_not_found,
                invalid_ids_say_why, batch_mixes_every_answer, other_member_is_not_permitted,
                as_of_and_changes_since, existing_database_is_reused))
