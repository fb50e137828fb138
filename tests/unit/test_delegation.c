/* hub_delegation: parsing, lookup by time, and refusal of bad files. */
#include "hub_delegation.h"
#include "hub_error.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load(const char *text, hub_delegations_t **d, char *err)
{
    return hub_delegations_load(tk_scratch_write("delegations.conf", text), d, err, 512);
}

START_TEST(routes_by_period)
{
    hub_delegations_t *d = NULL;
    char err[512];
    ck_assert_msg(load("# birth registration delegated to a district\n"
                       "delegate VN/GOV/HN-STP/HOTICH/birth.register/v1 -> VN/GOV/HN-QHK/HOTICH "
                       "until 2026-12-31\n"
                       "delegate VN/GOV/HN-STP/HOTICH/birth.register/v1 -> VN/GOV/HN-QBD/HOTICH "
                       "from 2027-01-01\n",
                       &d, err) == 0,
                  "%s", err);
    ck_assert_uint_eq(hub_delegations_count(d), 2);
    unsigned line = 0;
    /* 2026-11-28 and 2027-06-01, in µs. */
    uint64_t now = 1795824000ull * 1000000u, later = 1811980800ull * 1000000u;
    ck_assert_str_eq(hub_delegations_find(d, "VN/GOV/HN-STP/HOTICH", "birth.register/v1", now,
                                          &line),
                     "VN/GOV/HN-QHK/HOTICH");
    ck_assert_uint_eq(line, 2);
    ck_assert_str_eq(hub_delegations_find(d, "VN/GOV/HN-STP/HOTICH", "birth.register/v1", later,
                                          &line),
                     "VN/GOV/HN-QBD/HOTICH");
    ck_assert_ptr_null(
        hub_delegations_find(d, "VN/GOV/HN-STP/HOTICH", "marriage.register/v1", now, NULL));
    ck_assert_ptr_null(hub_delegations_find(d, "VN/GOV/HN-QHK/HOTICH", "birth.register/v1", now,
                                            NULL));
    hub_delegations_destroy(&d);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(refuses_bad_files_naming_the_line)
{
    hub_delegations_t *d = NULL;
    char err[512];
    ck_assert_int_eq(load("\ndelegate VN/GOV/A/B/s/v1 VN/GOV/C/D\n", &d, err), HUB_EPARSE);
    ck_assert_msg(strstr(err, "delegations.conf:2:"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/A/B\n", &d, err), HUB_EPARSE);
    ck_assert_msg(strstr(err, "itself"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/C/D\n"
                          "delegate VN/GOV/A/B/s/v1 -> VN/GOV/E/F\n",
                          &d, err),
                     HUB_EPARSE);
    ck_assert_msg(strstr(err, "one delegate at a time"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/C/D\n"
                          "delegate VN/GOV/C/D/s/v1 -> VN/GOV/E/F\n",
                          &d, err),
                     HUB_EPARSE);
    ck_assert_msg(strstr(err, "again"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/C/D until tomorrow\n", &d, err),
                     HUB_EPARSE);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(hub_delegations_load("/nonexistent/d.conf", &d, err, sizeof err), HUB_ENOENT);
}
END_TEST

START_TEST(rules_naming_procedures)
{
    hub_delegations_t *d = NULL;
    char err[512];
    ck_assert_msg(load("delegate VN/GOV/A/B/dossier.submit/v1 -> VN/GOV/C/D\n"
                       "delegate VN/GOV/A/B/dossier.submit/v1 -> VN/GOV/E/F procedure "
                       "SYN-1.000001,SYN-1.000002\n"
                       "delegate VN/GOV/A/B/dossier.submit/v1 -> VN/GOV/G/H procedures "
                       "SYN-1.000003 until 2020-12-31\n",
                       &d, err) == 0,
                  "%s", err);
    uint64_t now = 1795824000ull * 1000000u;
    const char *svc = "dossier.submit/v1";
    /* A rule naming the procedure wins; others fall to the whole service. */
    const hub_delegation_rule_t *r = hub_delegations_match(d, "VN/GOV/A/B", svc, "SYN-1.000002", now);
    ck_assert_str_eq(hub_delegation_rule_delegate(r), "VN/GOV/E/F");
    ck_assert_uint_eq(hub_delegation_rule_line(r), 2);
    ck_assert_str_eq(hub_delegation_rule_delegate(
                         hub_delegations_match(d, "VN/GOV/A/B", svc, "SYN-1.000004", now)),
                     "VN/GOV/C/D");
    /* An ended rule: the whole-service one applies. */
    ck_assert_str_eq(hub_delegation_rule_delegate(
                         hub_delegations_match(d, "VN/GOV/A/B", svc, "SYN-1.000003", now)),
                     "VN/GOV/C/D");
    ck_assert_str_eq(hub_delegations_find(d, "VN/GOV/A/B", svc, now, NULL), "VN/GOV/C/D");
    /* Counts, per rule and per procedure, kept by a reload of the same rule. */
    hub_delegations_note_use(d, r, "SYN-1.000002", now);
    hub_delegations_note(d, "VN/GOV/A/B", svc, "SYN-1.000001", "VN/GOV/E/F", now);
    hub_delegations_note(d, "VN/GOV/A/B", svc, "SYN-1.000001", "VN/GOV/X/Y", now); /* not its */
    hub_delegation_info_t info;
    ck_assert_int_eq(hub_delegations_info(d, 1, &info), 0);
    ck_assert_uint_eq(info.carried, 2);
    ck_assert_uint_eq(info.n_procedures, 2);
    ck_assert_str_eq(info.procedures[0], "SYN-1.000001");
    ck_assert_uint_eq(info.procedure_carried[0], 1);
    ck_assert_uint_eq(info.procedure_carried[1], 1);
    ck_assert_uint_eq(info.last_used_us, now);
    ck_assert_int_eq(hub_delegations_info(d, 3, &info), HUB_ENOTFOUND);
    hub_delegations_t *again = NULL;
    ck_assert_msg(load("delegate VN/GOV/A/B/dossier.submit/v1 -> VN/GOV/E/F procedure "
                       "SYN-1.000001,SYN-1.000002\n"
                       "delegate VN/GOV/A/B/dossier.submit/v1 -> VN/GOV/C/D procedure SYN-1.000009\n",
                       &again, err) == 0,
                  "%s", err);
    hub_delegations_carry_counts(again, d);
    ck_assert_int_eq(hub_delegations_info(again, 0, &info), 0);
    ck_assert_uint_eq(info.carried, 2);
    ck_assert_int_eq(hub_delegations_info(again, 1, &info), 0);
    ck_assert_uint_eq(info.carried, 0);
    hub_delegations_destroy(&again);
    hub_delegations_destroy(&d);
    /* One delegate per procedure at a time; codes must be codes. */
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/C/D procedure P1,P2\n"
                          "delegate VN/GOV/A/B/s/v1 -> VN/GOV/E/F procedure P2\n",
                          &d, err),
                     HUB_EPARSE);
    ck_assert_msg(strstr(err, ":2:") && strstr(err, "for P2"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/C/D procedure P1;x\n", &d, err),
                     HUB_EPARSE);
    ck_assert_msg(strstr(err, "not a procedure code"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/C/D procedure\n", &d, err),
                     HUB_EPARSE);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(the_procedure_parameter)
{
    char code[HUB_PROCEDURE_CODE_MAX];
    const char *why = NULL;
    const char *t = "application/x-protobuf; proto=lth.domain.v1.Dossier";
    ck_assert_int_eq(hub_delegation_procedure_of(t, code, &why), 0);
    ck_assert_int_eq(hub_delegation_procedure_of("text/plain", code, &why), 0);
    ck_assert_int_eq(hub_delegation_procedure_of(NULL, code, &why), 0);
    ck_assert_int_eq(
        hub_delegation_procedure_of("application/x-protobuf; lth-procedure=SYN-1.000001", code,
                                    &why),
        1);
    ck_assert_str_eq(code, "SYN-1.000001");
    ck_assert_int_eq(hub_delegation_procedure_of("a/b;LTH-Procedure = \"SYN-1.2\" ; x=1", code,
                                                 &why),
                     1);
    ck_assert_str_eq(code, "SYN-1.2");
    /* Inside another parameter's quoted value: not a parameter. */
    ck_assert_int_eq(hub_delegation_procedure_of("a/b; note=\"x; lth-procedure=P1\"", code, &why),
                     0);
    ck_assert_int_eq(hub_delegation_procedure_of("a/b; lth-procedure=P1; lth-procedure=P1", code,
                                                 &why),
                     HUB_EPARSE);
    ck_assert_msg(strstr(why, "twice"), "%s", why);
    ck_assert_int_eq(hub_delegation_procedure_of("a/b; lth-procedure=", code, &why), HUB_EPARSE);
    ck_assert_int_eq(hub_delegation_procedure_of("a/b; lth-procedure=\"a b\"", code, &why),
                     HUB_EPARSE);
    ck_assert_int_eq(hub_delegation_procedure_of("a/b; lth-procedure=0123456789012345678901234567890123",
                                                 code, &why),
                     HUB_EPARSE);
    /* Other parameters with the name as a prefix are not it. */
    ck_assert_int_eq(hub_delegation_procedure_of("a/b; lth-procedures=P1", code, &why), 0);
}
END_TEST

TK_MAIN("delegation", TK_CASE("delegation", tk_scratch_setup, tk_scratch_teardown, 0,
                              routes_by_period, refuses_bad_files_naming_the_line,
                              rules_naming_procedures, the_procedure_parameter))
