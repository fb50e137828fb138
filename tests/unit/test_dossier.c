/* Unit tests for the dossier flow's pure logic: the procedure catalogue and
 * processing limits, the synthetic dossier generator, the ordering rule for
 * status changes, the Dossier and DossierStatusChange codecs, and the report
 * (classification, aggregation, table / CSV / JSON). */
#include "hub_error.h"
#include "lth_catalogue.h"
#include "lth_citizen.h"
#include "lth_dossier.h"
#include "lth_pid.h"
#include "lth_portal.h"
#include "lth_procedure.h"
#include "lth_report.h"
#include "testkit.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#define DAY LTH_DAY_US

/* Encodes *value with lth_<kind>_encode and asserts that lth_<kind>_decode
 * (as TYPE, into *out) returns rc, with a problem holding `says` ("": any
 * problem, or none). */
#define ASSERT_DECODE(kind, type, value, out, rc, says)                                            \
    do {                                                                                           \
        uint8_t *decode_buf = NULL;                                                                \
        size_t decode_len = 0;                                                                     \
        const char *decode_problem = NULL;                                                         \
        ck_assert_int_eq(lth_##kind##_encode((value), &decode_buf, &decode_len), 0);               \
        int decode_rc =                                                                            \
            lth_##kind##_decode((type), decode_buf, decode_len, (out), &decode_problem);           \
        ck_assert_msg(decode_rc == (rc) &&                                                         \
                          (!*(says) || (decode_problem && strstr(decode_problem, (says)))),        \
                      "decoded as %s: %d, %s", (type), decode_rc,                                  \
                      decode_problem ? decode_problem : "(no problem given)");                     \
        free(decode_buf);                                                                          \
    } while (0)
/* *value encodes, and decodes back (as TYPE, into *out). */
#define ASSERT_ROUND_TRIP(kind, type, value, out) ASSERT_DECODE(kind, type, value, out, 0, "")
/* *value encodes, and decoding it (as TYPE, into *out) refuses it with
 * HUB_EPARSE and a problem holding `says`. */
#define ASSERT_REFUSED(kind, type, value, out, says)                                               \
    ASSERT_DECODE(kind, type, value, out, HUB_EPARSE, says)

/* The catalogue is data (no built-in list): every case runs with the one
 * the repository ships installed. */
static void install_shipped_catalogue(void)
{
    char path[4096], err[600];
    snprintf(path, sizeof path, "%s/deploy/catalogue-hn.tsv", getenv("HUB_SOURCE_DIR"));
    lth_catalogue_t *c = NULL;
    ck_assert_msg(lth_catalogue_load(path, &c, err, sizeof err) == 0, "%s", err);
    lth_procedure_install(c);
}

static void release_catalogue(void)
{
    lth_procedure_release_all();
}

/* ---- procedures and limits ---- */

START_TEST(catalogue_matches_its_limit_texts)
{
    ck_assert_uint_eq(lth_procedure_count(), 6);
    for (size_t i = 0; i < lth_procedure_count(); i++) {
        const lth_procedure_t *p = lth_procedure_at(i);
        ck_assert_ptr_nonnull(p);
        ck_assert_ptr_eq(lth_procedure_find(p->code), p);
        ck_assert_msg(!strncmp(p->code, "SYN-", 4), "%s is not labelled synthetic", p->code);
        unsigned amount = 0;
        lth_limit_unit_t unit = 0;
        ck_assert_int_eq(lth_limit_parse(p->limit_text, &amount, &unit), 0);
        ck_assert_uint_eq(amount, p->limit_amount);
        ck_assert_int_eq(unit, p->limit_unit);
        ck_assert_ptr_nonnull(p->authority);
    }
    ck_assert_ptr_null(lth_procedure_at(6));
    ck_assert_ptr_null(lth_procedure_find("1.001234"));
    ck_assert_ptr_null(lth_procedure_find(NULL));
    ck_assert_str_eq(lth_procedure_find("SYN-1.000004")->authority, "VN/GOV/HN-SKHDT/DKKD");
}
END_TEST

START_TEST(limits_parse_and_last)
{
    unsigned a;
    lth_limit_unit_t u;
    ck_assert_int_eq(lth_limit_parse("same working day", &a, &u), 0);
    ck_assert(a == 8 && u == LTH_LIMIT_WORKING_HOURS);
    ck_assert_int_eq(lth_limit_parse("1 day", &a, &u), 0);
    ck_assert(a == 1 && u == LTH_LIMIT_CALENDAR_DAYS);
    ck_assert_int_eq(lth_limit_parse("1 working day", &a, &u), 0);
    ck_assert(a == 1 && u == LTH_LIMIT_WORKING_DAYS);
    ck_assert_int_eq(lth_limit_parse("4 working hours", &a, &u), 0);
    ck_assert(a == 4 && u == LTH_LIMIT_WORKING_HOURS);
    const char *bad[] = {"",      "0 days",  "3 weeks",         "3days",      "1 days",
                         "2 day", "-1 days", "3 working  days", "99999 days", "same day"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(lth_limit_parse(bad[i], &a, &u) == HUB_EINVAL, "accepted '%s'", bad[i]);
    ck_assert_int_eq(lth_limit_parse(NULL, &a, &u), HUB_EINVAL);

    ck_assert_uint_eq(lth_limit_duration_us(8, LTH_LIMIT_WORKING_HOURS, DAY), DAY);
    ck_assert_uint_eq(lth_limit_duration_us(3, LTH_LIMIT_WORKING_DAYS, DAY), 3 * DAY);
    ck_assert_uint_eq(lth_limit_duration_us(30, LTH_LIMIT_CALENDAR_DAYS, 300000), 9000000);
    ck_assert_uint_eq(lth_limit_duration_us(8, LTH_LIMIT_WORKING_HOURS, 400000), 400000);
    ck_assert_uint_eq(lth_limit_duration_us(3, 0, DAY), 0);
    ck_assert_uint_eq(lth_limit_duration_us(4000000000u, LTH_LIMIT_CALENDAR_DAYS, UINT64_MAX / 2),
                      UINT64_MAX);
}
END_TEST

/* ---- the generator ---- */

static lth_dossier_gen_t gen_params(void)
{
    lth_dossier_gen_t g = {.seed = 1,
                           .population_seed = 1,
                           .population_citizens = 2000,
                           .invalid_percent = 10,
                           .unknown_percent = 10};
    return g;
}

START_TEST(generator_is_deterministic_and_spreads_kinds)
{
    lth_dossier_gen_t g = gen_params();
    int kinds[3] = {0, 0, 0};
    for (uint64_t i = 1; i <= 300; i++) {
        lth_gen_dossier_t a, b;
        ck_assert_int_eq(lth_dossier_generate(&g, i, &a), 0);
        ck_assert_int_eq(lth_dossier_generate(&g, i, &b), 0);
        ck_assert_mem_eq(&a, &b, sizeof a);
        char code[LTH_DOSSIER_CODE_MAX];
        snprintf(code, sizeof code, "SYN-H26-%06u", (unsigned)i);
        ck_assert_str_eq(a.code, code);
        ck_assert_uint_eq(a.index, i);
        /* Procedures go round the catalogue. */
        ck_assert_ptr_eq(a.procedure, lth_procedure_at((size_t)((i - 1 + g.seed) % 6)));
        kinds[a.applicant_kind]++;
        lth_pid_info_t info;
        const char *problem = NULL;
        int rc = lth_pid_check(a.applicant_id, &info, &problem);
        if (a.applicant_kind == LTH_APPLICANT_INVALID_ID) {
            ck_assert_msg(rc == HUB_EINVAL, "dossier %u: an invalid ID passed the check",
                          (unsigned)i);
        } else {
            ck_assert_msg(rc == 0, "dossier %u: %s", (unsigned)i, problem);
        }
        if (a.applicant_kind == LTH_APPLICANT_UNKNOWN) {
            /* Past the data set: no citizen 0..1999 has it. */
            for (size_t k = 0; k < 2000; k += 1) {
                lth_citizen_t c;
                lth_citizen_generate(1, k, &c);
                if (!strcmp(c.personal_id, a.applicant_id))
                    ck_abort_msg("dossier %u: 'unknown' applicant is citizen %zu", (unsigned)i, k);
            }
        }
    }
    /* 10 % and 10 % of every hundred, exactly. */
    ck_assert_int_eq(kinds[LTH_APPLICANT_INVALID_ID], 30);
    ck_assert_int_eq(kinds[LTH_APPLICANT_UNKNOWN], 30);
    ck_assert_int_eq(kinds[LTH_APPLICANT_CITIZEN], 240);

    /* Another seed gives other dossiers. */
    lth_dossier_gen_t g2 = gen_params();
    g2.seed = 2;
    lth_gen_dossier_t a, b;
    ck_assert_int_eq(lth_dossier_generate(&g, 5, &a), 0);
    ck_assert_int_eq(lth_dossier_generate(&g2, 5, &b), 0);
    ck_assert(a.procedure != b.procedure || strcmp(a.applicant_id, b.applicant_id) != 0);
}
END_TEST

START_TEST(generator_citizens_exist_and_filters_apply)
{
    lth_dossier_gen_t g = gen_params();
    g.invalid_percent = 0;
    g.unknown_percent = 0;
    const lth_procedure_t *only[] = {lth_procedure_find("SYN-1.000004")};
    g.procedures = only;
    g.n_procedures = 1;
    /* Every applicant is one of the population's 2000 citizens. */
    static char ids[2000][LTH_PID_LEN + 1];
    for (size_t k = 0; k < 2000; k++) {
        lth_citizen_t c;
        lth_citizen_generate(1, k, &c);
        memcpy(ids[k], c.personal_id, sizeof ids[k]);
    }
    for (uint64_t i = 1; i <= 50; i++) {
        lth_gen_dossier_t d;
        ck_assert_int_eq(lth_dossier_generate(&g, i, &d), 0);
        ck_assert_ptr_eq(d.procedure, only[0]);
        ck_assert_int_eq(d.applicant_kind, LTH_APPLICANT_CITIZEN);
        bool found = false;
        for (size_t k = 0; k < 2000 && !found; k++)
            found = !strcmp(ids[k], d.applicant_id);
        ck_assert_msg(found, "dossier %u: applicant not in the population", (unsigned)i);
    }
    lth_gen_dossier_t d;
    g.invalid_percent = 60;
    g.unknown_percent = 50;
    ck_assert_int_eq(lth_dossier_generate(&g, 1, &d), HUB_EINVAL);
    g = gen_params();
    ck_assert_int_eq(lth_dossier_generate(&g, 0, &d), HUB_EINVAL);
    ck_assert_int_eq(lth_dossier_generate(&g, 1000000000u, &d), HUB_EINVAL);
    g.population_citizens = 0;
    ck_assert_int_eq(lth_dossier_generate(&g, 1, &d), HUB_EINVAL);
}
END_TEST

/* ---- ordering ---- */

START_TEST(sequence_rule)
{
    ck_assert_int_eq(lth_seq_verdict(0, 1), LTH_SEQ_APPLY);
    ck_assert_int_eq(lth_seq_verdict(0, 5), LTH_SEQ_APPLY); /* gaps are fine */
    ck_assert_int_eq(lth_seq_verdict(3, 4), LTH_SEQ_APPLY);
    ck_assert_int_eq(lth_seq_verdict(3, 3), LTH_SEQ_DUPLICATE);
    ck_assert_int_eq(lth_seq_verdict(3, 2), LTH_SEQ_OLDER);
    ck_assert_int_eq(lth_seq_verdict(UINT64_MAX, 1), LTH_SEQ_OLDER);
    ck_assert_str_eq(lth_status_name(LTH_STATUS_SUPPLEMENT_REQUESTED), "SUPPLEMENT_REQUESTED");
    ck_assert_str_eq(lth_status_name(99), "UNSPECIFIED");
    ck_assert_str_eq(lth_status_name(-1), "UNSPECIFIED");
    ck_assert(lth_status_final(LTH_STATUS_DONE) && lth_status_final(LTH_STATUS_RETURNED));
    ck_assert(!lth_status_final(LTH_STATUS_OVERDUE) && !lth_status_final(LTH_STATUS_PROCESSING));
}
END_TEST

/* ---- codecs ---- */

START_TEST(status_change_round_trip_and_refusals)
{
    lth_status_change_t c = {.dossier_code = "SYN-H26-000042",
                             .status = LTH_STATUS_DONE,
                             .actor = "VN/GOV/HN-SKHDT/DKKD",
                             .at_us = 1751272800000000ull,
                             .sequence = 5,
                             .note = "Đã giải quyết",
                             .procedure_code = "SYN-1.000004",
                             .authority = "VN/GOV/HN-SKHDT/DKKD",
                             .submitted_at_us = 1751200000000000ull,
                             .due_at_us = 1751300000000000ull};
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(lth_status_change_encode(&c, &buf, &len), 0);
    lth_status_change_t d;
    const char *problem = "x";
    ck_assert_int_eq(lth_status_change_decode(LTH_STATUS_CHANGE_TYPE, buf, len, &d, &problem), 0);
    ck_assert_ptr_null(problem);
    ck_assert_mem_eq(&c, &d, sizeof c);
    ck_assert_int_eq(lth_status_change_decode("application/json", buf, len, &d, &problem),
                     HUB_EPARSE);
    ck_assert_ptr_nonnull(strstr(problem, "content type"));
    ck_assert_int_eq(lth_status_change_decode(LTH_STATUS_CHANGE_TYPE, (const uint8_t *)"\xff\xff",
                                              2, &d, &problem),
                     HUB_EPARSE);
    free(buf);

    /* Each spoiled in one field: refused, with a reason naming it. */
    for (int k = 0; k < 4; k++) {
        lth_status_change_t bad = c;
        const char *want = NULL;
        switch (k) {
        case 0:
            bad.sequence = 0;
            want = "sequence";
            break;
        case 1:
            bad.status = 0;
            want = "status";
            break;
        case 2:
            bad.status = LTH_STATUS_LAST + 1;
            want = "status";
            break;
        default:
            bad.dossier_code[0] = '\0';
            want = "dossier_code";
            break;
        }
        ck_assert_int_eq(lth_status_change_encode(&bad, &buf, &len), 0);
        ck_assert_int_eq(lth_status_change_decode(LTH_STATUS_CHANGE_TYPE, buf, len, &d, &problem),
                         HUB_EPARSE);
        ck_assert_msg(strstr(problem, want), "case %d: %s", k, problem);
        free(buf);
    }
}
END_TEST

START_TEST(dossier_round_trip)
{
    lth_dossier_t d = {.dossier_code = "SYN-H26-000007",
                       .procedure_code = "SYN-1.000004",
                       .applicant_id = "001085012345",
                       .submitted_at_us = 1,
                       .due_at_us = 2,
                       .received_by = "VN/GOV/HN-VP/TTHC",
                       .authority = "VN/GOV/HN-SKHDT/DKKD"};
    lth_dossier_t e;
    ASSERT_ROUND_TRIP(dossier, LTH_DOSSIER_TYPE, &d, &e);
    ck_assert_uint_eq(e.documents, 1); /* the synthetic form, with a 32-byte digest */
    e.documents = 0;
    ck_assert_mem_eq(&d, &e, sizeof d);
    ASSERT_DECODE(dossier, LTH_STATUS_CHANGE_TYPE, &d, &e, HUB_EPARSE, "");
    d.dossier_code[0] = '\0';
    ASSERT_REFUSED(dossier, LTH_DOSSIER_TYPE, &d, &e, "dossier_code");
}
END_TEST

/* ---- the report ---- */

#define T0 1751000000000000ull
#define H 3600000000ull

START_TEST(outcomes)
{
    ck_assert_int_eq(lth_report_classify(LTH_STATUS_DONE, T0, T0 - 1, T0 + H), LTH_OUTCOME_ON_TIME);
    ck_assert_int_eq(lth_report_classify(LTH_STATUS_DONE, T0, T0, T0 + H), LTH_OUTCOME_ON_TIME);
    ck_assert_int_eq(lth_report_classify(LTH_STATUS_DONE, T0, T0 + 1, T0), LTH_OUTCOME_LATE);
    ck_assert_int_eq(lth_report_classify(LTH_STATUS_DONE, 0, T0, T0), LTH_OUTCOME_ON_TIME);
    ck_assert_int_eq(lth_report_classify(LTH_STATUS_RETURNED, T0, 0, T0 + H), LTH_OUTCOME_RETURNED);
    ck_assert_int_eq(lth_report_classify(LTH_STATUS_WITHDRAWN, T0, 0, T0 + H),
                     LTH_OUTCOME_RETURNED);
    /* Refused at reception: counted apart from returned. */
    ck_assert_int_eq(lth_report_classify(LTH_STATUS_NOT_ACCEPTED, T0, 0, T0 + H),
                     LTH_OUTCOME_NOT_ACCEPTED);
    for (int s = LTH_STATUS_RECEIVED; s <= LTH_STATUS_OVERDUE; s++) {
        if (lth_status_final(s))
            continue;
        ck_assert_int_eq(lth_report_classify(s, T0, 0, T0 + 1), LTH_OUTCOME_OVERDUE);
        ck_assert_int_eq(lth_report_classify(s, T0, 0, T0), LTH_OUTCOME_IN_PROGRESS);
        ck_assert_int_eq(lth_report_classify(s, 0, 0, T0 + H), LTH_OUTCOME_IN_PROGRESS);
    }
    ck_assert_str_eq(lth_outcome_name(LTH_OUTCOME_ON_TIME), "on time");
    ck_assert_str_eq(lth_outcome_name(LTH_OUTCOME_OVERDUE), "overdue");
    ck_assert_str_eq(lth_outcome_name(LTH_OUTCOME_NOT_ACCEPTED), "not accepted");
}
END_TEST

/* A small report: DKKD 3 (on time, late, overdue), HOTICH birth 3 (returned,
 * in progress, not accepted), one more procedure by a made-up authority with awkward
 * characters, added out of order. */
static void small_report(lth_report_t *r)
{
    lth_report_init(r, T0);
    ck_assert_int_eq(lth_report_add(r, "SYN-1.000004", "VN/GOV/HN-SKHDT/DKKD", LTH_STATUS_DONE,
                                    T0 - H, T0 - 2 * H),
                     0);
    ck_assert_int_eq(
        lth_report_add(r, "SYN-1.000001", "VN/GOV/HN-STP/HOTICH", LTH_STATUS_RETURNED, T0 + H, 0),
        0);
    ck_assert_int_eq(lth_report_add(r, "X,\"Q\"", "VN/GOV/A\\B/\"C\"", LTH_STATUS_PROCESSING, 0, 0),
                     0);
    ck_assert_int_eq(lth_report_add(r, "SYN-1.000004", "VN/GOV/HN-SKHDT/DKKD", LTH_STATUS_DONE,
                                    T0 - 2 * H, T0 - H),
                     0);
    ck_assert_int_eq(
        lth_report_add(r, "SYN-1.000001", "VN/GOV/HN-STP/HOTICH", LTH_STATUS_PROCESSING, T0 + H, 0),
        0);
    ck_assert_int_eq(lth_report_add(r, "SYN-1.000004", "VN/GOV/HN-SKHDT/DKKD",
                                    LTH_STATUS_SUPPLEMENT_REQUESTED, T0 - 1, 0),
                     0);
    ck_assert_int_eq(lth_report_add(r, "SYN-1.000001", "VN/GOV/HN-STP/HOTICH",
                                    LTH_STATUS_NOT_ACCEPTED, T0 + H, 0),
                     0);
}

START_TEST(aggregation_adds_up)
{
    lth_report_t r;
    small_report(&r);
    ck_assert_uint_eq(r.n_rows, 3);
    /* Sorted by procedure code, then authority. */
    ck_assert_str_eq(r.rows[0].procedure_code, "SYN-1.000001");
    ck_assert_str_eq(r.rows[1].procedure_code, "SYN-1.000004");
    ck_assert_str_eq(r.rows[2].procedure_code, "X,\"Q\"");
    const lth_report_row_t *dkkd = &r.rows[1];
    ck_assert_uint_eq(dkkd->dossiers, 3);
    ck_assert_uint_eq(dkkd->on_time, 1);
    ck_assert_uint_eq(dkkd->late, 1);
    ck_assert_uint_eq(dkkd->overdue, 1);
    ck_assert_uint_eq(r.rows[0].returned, 1);
    ck_assert_uint_eq(r.rows[0].not_accepted, 1);
    ck_assert_uint_eq(r.rows[1].not_accepted, 0);
    ck_assert_uint_eq(r.rows[0].in_progress, 1);
    ck_assert_uint_eq(r.rows[2].in_progress, 1);
    unsigned long sum = 0;
    for (size_t i = 0; i < r.n_rows; i++) {
        const lth_report_row_t *row = &r.rows[i];
        ck_assert_uint_eq(row->dossiers, row->on_time + row->late + row->overdue +
                                             row->in_progress + row->returned + row->not_accepted);
        sum += row->dossiers;
    }
    ck_assert_uint_eq(r.total.dossiers, 7);
    ck_assert_uint_eq(sum, 7);
    ck_assert_uint_eq(r.total.on_time + r.total.late + r.total.overdue + r.total.in_progress +
                          r.total.returned + r.total.not_accepted,
                      7);
    ck_assert_int_eq(lth_report_add(&r, NULL, "x", 1, 0, 0), HUB_EINVAL);
    lth_report_free(&r);
    lth_report_free(&r); /* twice is harmless */

    /* Many rows: the sorted insertion holds. */
    lth_report_init(&r, T0);
    for (int i = 0; i < 500; i++) {
        char code[32];
        snprintf(code, sizeof code, "P-%03d", (i * 7919) % 500);
        ck_assert_int_eq(lth_report_add(&r, code, "VN/GOV/A/B", LTH_STATUS_DONE, 0, 0), 0);
    }
    ck_assert_uint_eq(r.n_rows, 500);
    for (size_t i = 1; i < r.n_rows; i++)
        ck_assert_int_lt(strcmp(r.rows[i - 1].procedure_code, r.rows[i].procedure_code), 0);
    lth_report_free(&r);
}
END_TEST

START_TEST(renderings)
{
    lth_report_t r;
    small_report(&r);
    char *out = NULL;
    size_t len = 0;
    lth_report_format_t f;
    ck_assert_int_eq(lth_report_format_parse("table", &f), 0);
    ck_assert_int_eq(f, LTH_REPORT_TABLE);
    ck_assert_int_eq(lth_report_format_parse("TABLE", &f), HUB_EINVAL);
    ck_assert_int_eq(lth_report_format_parse(NULL, &f), HUB_EINVAL);
    ck_assert_str_eq(lth_report_content_type(LTH_REPORT_CSV), "text/csv; charset=utf-8");

    /* Table: a title, a header, a line per row, a rule, the total; columns
     * line up although names are UTF-8. */
    ck_assert_int_eq(lth_report_render(&r, LTH_REPORT_TABLE, &out, &len), 0);
    ck_assert_uint_eq(strlen(out), len);
    ck_assert_ptr_nonnull(strstr(out, "as of 2025-06-27T04:53:20Z\n"));
    ck_assert_ptr_nonnull(strstr(out, "Đăng ký thành lập doanh nghiệp"));
    ck_assert_ptr_nonnull(strstr(out, "on time  late  overdue  in progress  returned  early  avg "
                                      "work h  synced %  online %  e-result %  paid online %  "
                                      "satisfaction  not accepted\n"));
    char *line = strstr(out, "SYN-1.000004");
    ck_assert_ptr_nonnull(line);
    char *eol = strchr(line, '\n');
    *eol = '\0';
    ck_assert_msg(strstr(line, "        3        1     1        1            0         0"), "%s",
                  line);
    *eol = '\n';
    char *total = strstr(out, "\ntotal ");
    ck_assert_ptr_nonnull(total);
    ck_assert_ptr_nonnull(
        strstr(total, "        7        1     1        1            2         1      0"));
    /* The not-accepted column, appended last. */
    ck_assert_msg(strstr(total, "             1\n"), "%s", total);
    /* Every line of the table proper has the same width in characters. */
    size_t widths[16], n = 0;
    for (char *p = strchr(out, '\n') + 1; *p && n < 16; n++) {
        char *e = strchr(p, '\n');
        size_t w = 0;
        for (char *q = p; q < e; q++)
            w += ((unsigned char)*q & 0xC0) != 0x80;
        widths[n] = w;
        p = e + 1;
    }
    ck_assert_uint_eq(n, 6);
    for (size_t i = 1; i < n; i++)
        ck_assert_uint_eq(widths[i], widths[0]);
    free(out);

    /* CSV: RFC 4180 quoting; no total line. */
    ck_assert_int_eq(lth_report_render(&r, LTH_REPORT_CSV, &out, &len), 0);
    ck_assert_str_eq(out,
                     "procedure_code,procedure_name,authority,dossiers,on_time,late,overdue,"
                     "in_progress,returned,early,avg_working_hours,pct_synced,pct_online,"
                     "pct_electronic_result,pct_paid_online,avg_satisfaction,not_accepted\r\n"
                     "SYN-1.000001,Đăng ký khai sinh,VN/GOV/HN-STP/HOTICH,3,0,0,0,1,1,"
                     "0,0.00,0.00,0.00,0.00,0.00,0.00,1\r\n"
                     "SYN-1.000004,Đăng ký thành lập doanh nghiệp,VN/GOV/HN-SKHDT/DKKD,3,1,1,1,0,"
                     "0,0,0.00,0.00,0.00,0.00,0.00,0.00,0\r\n"
                     "\"X,\"\"Q\"\"\",,\"VN/GOV/A\\B/\"\"C\"\"\",1,0,0,0,1,0,"
                     "0,0.00,0.00,0.00,0.00,0.00,0.00,0\r\n");
    free(out);

    /* JSON: valid, escaped, the same numbers. */
    ck_assert_int_eq(lth_report_render(&r, LTH_REPORT_JSON, &out, &len), 0);
    json_error_t jerr;
    json_t *doc = json_loadb(out, len, 0, &jerr);
    ck_assert_msg(doc != NULL, "invalid JSON: %s: %s", jerr.text, out);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "as_of")), "2025-06-27T04:53:20Z");
    json_t *rows = json_object_get(doc, "rows");
    ck_assert_uint_eq(json_array_size(rows), 3);
    json_t *odd = json_array_get(rows, 2);
    ck_assert_str_eq(json_string_value(json_object_get(odd, "procedure_code")), "X,\"Q\"");
    ck_assert_str_eq(json_string_value(json_object_get(odd, "authority")), "VN/GOV/A\\B/\"C\"");
    json_t *dkkd = json_array_get(rows, 1);
    ck_assert_str_eq(json_string_value(json_object_get(dkkd, "procedure_name")),
                     "Đăng ký thành lập doanh nghiệp");
    ck_assert_int_eq(json_integer_value(json_object_get(dkkd, "late")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "total"), "dossiers")),
                     7);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(doc, "total"), "not_accepted")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "total"), "returned")),
                     1);
    json_decref(doc);
    free(out);

    /* An empty report renders too. */
    lth_report_free(&r);
    lth_report_init(&r, T0);
    ck_assert_int_eq(lth_report_render(&r, LTH_REPORT_JSON, &out, &len), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"rows\":[]"));
    free(out);
    lth_report_free(&r);
}
END_TEST

/* ---- the portal's synchronisation profile (issue 19) ---- */

START_TEST(transitions_follow_the_portal_table)
{
    /* The flow the procedure system and a sector system produce. */
    const int path[] = {0,
                        LTH_STATUS_RECEIVED,
                        LTH_STATUS_PROCESSING,
                        LTH_STATUS_SUPPLEMENT_REQUESTED,
                        LTH_STATUS_PROCESSING,
                        LTH_STATUS_FINANCIAL_OBLIGATION_REQUESTED,
                        LTH_STATUS_PROCESSING,
                        LTH_STATUS_SUSPENDED,
                        LTH_STATUS_OVERDUE,
                        LTH_STATUS_DONE,
                        LTH_STATUS_RESULT_HANDED_OVER};
    for (size_t i = 1; i < sizeof path / sizeof path[0]; i++)
        ck_assert_msg(lth_status_transition_allowed(path[i - 1], path[i]), "%s -> %s",
                      lth_status_name(path[i - 1]), lth_status_name(path[i]));
    ck_assert(lth_status_transition_allowed(0, LTH_STATUS_NOT_ACCEPTED));
    /* Refused at reception is NOT_ACCEPTED; RETURNED only after acceptance. */
    ck_assert(!lth_status_transition_allowed(0, LTH_STATUS_RETURNED));
    ck_assert(lth_status_transition_allowed(LTH_STATUS_PROCESSING, LTH_STATUS_RETURNED));
    ck_assert(lth_status_transition_allowed(LTH_STATUS_SUPPLEMENT_REQUESTED, LTH_STATUS_WITHDRAWN));
    /* Refused, with both states named. */
    char why[512];
    ck_assert_int_eq(
        lth_status_transition_check(LTH_STATUS_RECEIVED, LTH_STATUS_DONE, why, sizeof why),
        HUB_EINVAL);
    ck_assert_msg(strstr(why, "DONE cannot follow RECEIVED") && strstr(why, "PROCESSING"), "%s",
                  why);
    ck_assert_int_eq(
        lth_status_transition_check(LTH_STATUS_DONE, LTH_STATUS_PROCESSING, why, sizeof why),
        HUB_EINVAL);
    ck_assert_msg(strstr(why, "PROCESSING cannot follow DONE: after DONE come RESULT_HANDED_OVER"),
                  "%s", why);
    ck_assert_int_eq(
        lth_status_transition_check(LTH_STATUS_RETURNED, LTH_STATUS_DONE, why, sizeof why),
        HUB_EINVAL);
    ck_assert_msg(strstr(why, "RETURNED is final"), "%s", why);
    ck_assert(!lth_status_transition_allowed(LTH_STATUS_PROCESSING, LTH_STATUS_RESULT_HANDED_OVER));
    ck_assert(!lth_status_transition_allowed(LTH_STATUS_OVERDUE, LTH_STATUS_OVERDUE));
    ck_assert(!lth_status_transition_allowed(LTH_STATUS_PROCESSING, LTH_STATUS_NOT_ACCEPTED));
    ck_assert(!lth_status_transition_allowed(LTH_STATUS_PROCESSING, 99));
    /* After a gap: SUPPLEMENT_REQUESTED -> DONE is not a step, but reachable
     * (through PROCESSING); nothing is reachable from a final status. */
    ck_assert(lth_status_reachable(LTH_STATUS_SUPPLEMENT_REQUESTED, LTH_STATUS_DONE));
    ck_assert(lth_status_reachable(LTH_STATUS_PROCESSING, LTH_STATUS_RESULT_HANDED_OVER));
    ck_assert(!lth_status_reachable(LTH_STATUS_RETURNED, LTH_STATUS_DONE));
    ck_assert(!lth_status_reachable(LTH_STATUS_DONE, LTH_STATUS_PROCESSING));
    ck_assert(!lth_status_reachable(LTH_STATUS_PROCESSING, LTH_STATUS_RECEIVED));
    for (int st = 1; st <= LTH_STATUS_LAST; st++)
        ck_assert_int_eq(lth_status_parse(lth_status_name(st)), st);
    ck_assert(lth_status_final(LTH_STATUS_WITHDRAWN) && lth_status_final(LTH_STATUS_NOT_ACCEPTED));
    ck_assert(!lth_status_final(LTH_STATUS_RESULT_HANDED_OVER));
}
END_TEST

START_TEST(reform_index_figures)
{
    lth_report_t r;
    lth_report_init(&r, T0 + 100 * H);
    /* Due at T0 + 48 h. Early: done a local day before; on time: the due
     * day; late: after; returned. */
    lth_report_dossier_t d = {.procedure_code = "SYN-1.000004",
                              .authority = "VN/GOV/HN-SKHDT/DKKD",
                              .status = LTH_STATUS_RESULT_HANDED_OVER,
                              .due_at_us = T0 + 48 * H,
                              .done_at_us = T0 + 2 * H,
                              .decided_at_us = T0 + 2 * H,
                              .working_us = 2 * H,
                              .synced = true,
                              .online = true,
                              .has_result = true,
                              .paid = true,
                              .paid_online = true,
                              .rating = 4.5};
    ck_assert_int_eq(lth_report_add_dossier(&r, &d), 0);
    d.status = LTH_STATUS_DONE;
    d.done_at_us = d.decided_at_us = T0 + 48 * H;
    d.working_us = 6 * H;
    d.online = d.paid_online = d.has_result = false;
    d.rating = 0;
    ck_assert_int_eq(lth_report_add_dossier(&r, &d), 0);
    d.done_at_us = d.decided_at_us = T0 + 49 * H;
    d.working_us = 7 * H;
    d.synced = false;
    d.rating = 2.5;
    ck_assert_int_eq(lth_report_add_dossier(&r, &d), 0);
    d.status = LTH_STATUS_RETURNED;
    d.working_us = 1 * H;
    d.paid = false;
    d.rating = 0;
    ck_assert_int_eq(lth_report_add_dossier(&r, &d), 0);
    const lth_report_row_t *t = &r.total;
    ck_assert_uint_eq(t->dossiers, 4);
    ck_assert_uint_eq(t->on_time, 2);
    ck_assert_uint_eq(t->early, 1);
    ck_assert_uint_eq(t->late, 1);
    ck_assert_uint_eq(t->returned, 1);
    ck_assert_uint_eq(t->decided, 4);
    ck_assert_uint_eq(t->working_us, 16 * H);
    ck_assert_uint_eq(t->synced, 2);
    ck_assert_uint_eq(t->online, 1);
    ck_assert_uint_eq(t->with_result, 1);
    ck_assert_uint_eq(t->paid, 3);
    ck_assert_uint_eq(t->paid_online, 1);
    ck_assert_uint_eq(t->rated, 2);
    char *out = NULL;
    size_t len = 0;
    ck_assert_int_eq(lth_report_render(&r, LTH_REPORT_JSON, &out, &len), 0);
    json_error_t jerr;
    json_t *doc = json_loadb(out, len, 0, &jerr);
    ck_assert_msg(doc != NULL, "%s", out);
    json_t *total = json_object_get(doc, "total");
    ck_assert_int_eq(json_integer_value(json_object_get(total, "received")), 4);
    ck_assert(fabs(json_number_value(json_object_get(total, "avg_working_hours")) - 4.0) < 1e-9);
    ck_assert(fabs(json_number_value(json_object_get(total, "pct_synced")) - 50.0) < 1e-9);
    ck_assert(fabs(json_number_value(json_object_get(total, "pct_electronic_result")) - 33.33) <
              1e-9);
    ck_assert(fabs(json_number_value(json_object_get(total, "pct_paid_online")) - 33.33) < 1e-9);
    ck_assert(fabs(json_number_value(json_object_get(total, "avg_satisfaction")) - 3.5) < 1e-9);
    json_decref(doc);
    free(out);
    lth_report_free(&r);
}
END_TEST

START_TEST(national_dossier_codes)
{
    char code[LTH_DOSSIER_CODE_MAX];
    /* 2026-07-02T18:30Z is 3 July in Hà Nội. */
    ck_assert_int_eq(lth_dossier_code_national("000.00.01.H26", 1783017000000000ull, 42, code), 0);
    ck_assert_str_eq(code, "000.00.01.H26-260703-000042");
    ck_assert_int_eq(lth_dossier_code_national("h26", 0, 1, code), HUB_EINVAL);
    ck_assert_int_eq(lth_dossier_code_national("", 0, 1, code), HUB_EINVAL);
    ck_assert_int_eq(lth_dossier_code_national("000.00.01.H26", 0, 0, code), HUB_EINVAL);
}
END_TEST

START_TEST(result_signature_and_code)
{
    ck_assert_int_ge(sodium_init(), 0);
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    lth_result_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.dossier_code, sizeof r.dossier_code, "000.00.01.H26-260703-000001");
    snprintf(r.result_code, sizeof r.result_code, "000.00.01.H26-260703-000001-KQ1");
    snprintf(r.uri, sizeof r.uri, "https://example.invalid/kq.pdf");
    memset(r.sha256, 0xab, sizeof r.sha256);
    snprintf(r.media_type, sizeof r.media_type, "application/pdf");
    r.size_bytes = 1234;
    snprintf(r.signer, sizeof r.signer, "VN/GOV/HN-SKHDT/DKKD");
    r.decided_at_us = 1780000000000000ull;
    memcpy(r.signer_public_key, pk, 32);
    char text[1024];
    size_t n = lth_result_signing_text(&r, text, sizeof text);
    ck_assert_uint_gt(n, 0);
    crypto_sign_detached(r.signature, NULL, (const uint8_t *)text, n, sk);
    lth_result_t d;
    ASSERT_ROUND_TRIP(result, LTH_RESULT_TYPE, &r, &d);
    ck_assert_str_eq(d.result_code, r.result_code);
    ck_assert_uint_eq(d.size_bytes, 1234);
    /* A reference field changed after signing: refused. */
    r.size_bytes = 1235;
    ASSERT_REFUSED(result, LTH_RESULT_TYPE, &r, &d, "signature does not verify");
    /* Codes: the dossier's, -KQ, 1..9999. */
    ck_assert_uint_eq(lth_result_number("A-1", "A-1-KQ12"), 12);
    ck_assert_uint_eq(lth_result_number("A-1", "A-1-KQ0"), 0);
    ck_assert_uint_eq(lth_result_number("A-1", "A-2-KQ1"), 0);
    ck_assert_uint_eq(lth_result_number("A-1", "A-1-KQ12345"), 0);
    ck_assert_uint_eq(lth_result_number("A-1", "A-1-KQ1x"), 0);
    snprintf(r.result_code, sizeof r.result_code, "KQ-000.00.01.H26-260703-000001");
    ASSERT_REFUSED(result, LTH_RESULT_TYPE, &r, &d, "result_code");
}
END_TEST

START_TEST(payment_and_feedback_refusals)
{
    lth_payment_t p = {.dossier_code = "D-1",
                       .procedure_code = "SYN-1.000004",
                       .fee_vnd = 50000,
                       .amount_vnd = 50000,
                       .transaction_ref = "PG-1",
                       .outcome = LTH_PAYMENT_PAID,
                       .channel = LTH_CHANNEL_ONLINE};
    lth_payment_t pd;
    ASSERT_ROUND_TRIP(payment, LTH_PAYMENT_TYPE, &p, &pd);
    ck_assert_uint_eq(pd.amount_vnd, 50000);
    p.amount_vnd = 40000;
    ASSERT_REFUSED(payment, LTH_PAYMENT_TYPE, &p, &pd, "amount_vnd");
    ck_assert_uint_eq(lth_procedure_fee_vnd("SYN-1.000004"), 50000);
    ck_assert_uint_eq(lth_procedure_fee_vnd("SYN-1.000001"), 0);

    lth_feedback_t f = {.dossier_code = "D-1", .n_ratings = 2};
    snprintf(f.ratings[0].criterion, sizeof f.ratings[0].criterion, "officials");
    f.ratings[0].score = 5;
    snprintf(f.ratings[1].criterion, sizeof f.ratings[1].criterion, "time");
    f.ratings[1].score = 4;
    lth_feedback_t fd;
    ASSERT_ROUND_TRIP(feedback, LTH_FEEDBACK_TYPE, &f, &fd);
    ck_assert(lth_feedback_mean(&fd) > 4.49 && lth_feedback_mean(&fd) < 4.51);
    f.ratings[1].score = 6;
    ASSERT_REFUSED(feedback, LTH_FEEDBACK_TYPE, &f, &fd, "1 (very dissatisfied) to 5");
    f.ratings[1].score = 3;
    snprintf(f.ratings[1].criterion, sizeof f.ratings[1].criterion, "officials");
    ASSERT_REFUSED(feedback, LTH_FEEDBACK_TYPE, &f, &fd, "twice");
}
END_TEST

TK_MAIN("dossier", TK_CASE("dossier", install_shipped_catalogue, release_catalogue, 0, catalogue_matches_its_limit_texts,
                           limits_parse_and_last, generator_is_deterministic_and_spreads_kinds,
                           generator_citizens_exist_and_filters_apply, sequence_rule,
                           status_change_round_trip_and_refusals, dossier_round_trip, outcomes,
                           aggregation_adds_up, renderings, transitions_follow_the_portal_table,
                           reform_index_figures, national_dossier_codes, result_signature_and_code,
                           payment_and_feedback_refusals))
