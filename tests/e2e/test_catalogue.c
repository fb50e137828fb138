/* The procedure catalogue through the hub's publish/subscribe: the city's
 * procedure system publishes its list on each start; the national TTHC
 * database subscribes durably and gets every new version, including one
 * published while it was offline. The catalogue as data: the procedure
 * system reads it from a file (deploy/catalogue-hn.tsv), publishes what a
 * reload changed, and shows which changes the national catalogue has
 * acknowledged, rejected (with its reason) or not answered yet. */
#include "hubfix.h"
#include "testkit.h"
#include "tkcatalogue.h"
#include "tksql.h"

#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CSDLTTHC "VN/GOV/VPCP/CSDLTTHC"

static hubfix_t fix;

static char *version_line(const char *path)
{
    char *text = tk_read_file(path);
    if (text)
        text[strcspn(text, "\n")] = '\0';
    return text;
}

START_TEST(subscriber_gets_each_published_catalogue)
{
    hubfix_init(&fix, "policy_file = policy.conf");
    hubfix_add_member(&fix, TTHC, true);
    hubfix_add_member(&fix, CSDLTTHC, true);
    char path[PATH_MAX], cat_file[PATH_MAX], cat_conf[PATH_MAX + 64], proc_conf[3 * PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/policy.conf", fix.dir);
    /* The subscription needs an agreement, like a call would. */
    tk_write_file(path, "allow " CSDLTTHC " -> " TTHC "/catalogue.published/v1 purpose "
                        "\"national TTHC catalogue\"\n");
    hubfix_start(&fix);
    snprintf(cat_file, sizeof cat_file, "%s/catalogue.txt", fix.dir);
    snprintf(cat_conf, sizeof cat_conf, "plugin.file = %s\nplugin.publisher = " TTHC "\n",
             cat_file);
    pid_t sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    snprintf(proc_conf, sizeof proc_conf,
             "plugin.db = %s/proc.db\nplugin.dossiers = 0\n"
             "plugin.catalogue_file = %s/deploy/catalogue-hn.tsv\n"
             "plugin.catalogue_status = %s/catalogue.status\n",
             fix.dir, getenv("HUB_SOURCE_DIR"), fix.dir);
    pid_t pub = hubfix_start_adapter(&fix, TTHC, "procedure", proc_conf);
    ck_assert_msg(tk_wait_file_contains(cat_file, "Đăng ký khai sinh", 10000),
                  "catalogue not received");
    char *text = tk_read_file(cat_file);
    ck_assert_ptr_nonnull(strstr(text, "from " TTHC));
    ck_assert_ptr_nonnull(strstr(text, "SYN-1.000001\t"));
    free(text);
    char *v1 = version_line(cat_file);

    /* The subscriber goes away; a new version is published meanwhile. */
    tk_stop(sub);
    tk_stop(pub);
    pub = hubfix_start_adapter(&fix, TTHC, "procedure", proc_conf);
    tk_sleep_ms(1500);
    char *still = version_line(cat_file);
    ck_assert_str_eq(still, v1);
    sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    char *v2 = NULL;
    for (int w = 0; w < 100; w++) {
        free(v2);
        v2 = version_line(cat_file);
        if (strcmp(v2, v1) != 0)
            break;
        tk_sleep_ms(100);
    }
    ck_assert_str_ne(v2, v1);
    free(v1);
    free(v2);
    free(still);
    hubfix_cleanup(&fix);
}
END_TEST


/* ---- the catalogue as data (issue 19 item 4) ----------------------------- */

static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "'%s' not in the catalogue", from);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

static bool wait_contains(const char *path, const char *needle, int ms)
{
    return tk_wait_file_contains(path, needle, ms);
}

#define ROW7                                                                                       \
    "4001/QĐ-UBND\t2026-10-01\t2026-10-15\tin-force\tSYN-1.000007\tCấp bản sao trích lục hộ "     \
    "tịch\tCopy of a civil-status extract\tcommune\t" STP_ID "\tsame working day\t8000\tTờ khai "  \
    "cấp bản sao trích lục hộ tịch\tfull\tlookup\t1\tbirth-registration\n"
#define STP_ID "VN/GOV/HN-STP/HOTICH"

/* The decision both tests publish: v1 with `from` amended to `to` and
 * SYN-1.000007 added, written to tsv; returns the new text (free it). */
static char *amend_and_add_row7(const char *v1, const char *from, const char *to, const char *tsv)
{
    char *amended = replace(v1, from, to);
    char *v2 = malloc(strlen(amended) + sizeof ROW7);
    ck_assert_ptr_nonnull(v2);
    sprintf(v2, "%s%s", amended, ROW7);
    free(amended);
    tk_write_file(tsv, v2);
    return v2;
}

START_TEST(catalogue_changes_are_published_acknowledged_or_rejected)
{
    hubfix_init(&fix, "policy_file = policy.conf");
    hubfix_add_member(&fix, TTHC, true);
    hubfix_add_member(&fix, CSDLTTHC, true);
    char path[PATH_MAX], tsv[PATH_MAX], status[PATH_MAX], cat_file[PATH_MAX];
    char cat_conf[PATH_MAX + 64], proc_conf[3 * PATH_MAX];
    snprintf(path, sizeof path, "%s/policy.conf", fix.dir);
    tk_write_file(path, "allow " CSDLTTHC " -> " TTHC "/catalogue.published/v1\n"
                        "allow " CSDLTTHC " -> " TTHC "/catalogue.ack/v1\n");
    hubfix_start(&fix);
    /* The catalogue the repository ships. */
    char shipped[PATH_MAX];
    snprintf(shipped, sizeof shipped, "%s/deploy/catalogue-hn.tsv", getenv("HUB_SOURCE_DIR"));
    char *v1 = tk_read_file(shipped);
    ck_assert_ptr_nonnull(v1);
    snprintf(tsv, sizeof tsv, "%s/catalogue-hn.tsv", fix.dir);
    snprintf(status, sizeof status, "%s/catalogue.status", fix.dir);
    tk_write_file(tsv, v1);
    snprintf(cat_file, sizeof cat_file, "%s/catalogue.txt", fix.dir);
    snprintf(cat_conf, sizeof cat_conf, "plugin.file = %s\n", cat_file);
    pid_t sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    snprintf(proc_conf, sizeof proc_conf,
             "plugin.db = %s/proc.db\nplugin.dossiers = 0\nplugin.catalogue_file = %s\n"
             "plugin.catalogue_status = %s\n",
             fix.dir, tsv, status);
    pid_t pub = hubfix_start_adapter(&fix, TTHC, "procedure", proc_conf);
    char pub_log[PATH_MAX];
    snprintf(pub_log, sizeof pub_log, "%s/adapter-VN.GOV.HN-VP.TTHC.log", fix.dir);
    ck_assert_msg(wait_contains(cat_file, "1520/QĐ-UBND", 10000), "catalogue not received");
    ck_assert(wait_contains(status, "whole catalogue, 6 procedures: acknowledged by " CSDLTTHC,
                            10000));
    ck_assert(wait_contains(status, "unacknowledged 0, rejected 0", 1000));

    /* An addition and an amendment while the national catalogue is away:
     * published, shown as unacknowledged. */
    tk_stop(sub);
    char *v2 = amend_and_add_row7(v1, "3 working days", "5 working days", tsv);
    kill(pub, SIGHUP);
    ck_assert_msg(wait_contains(status, "amended SYN-1.000004; added SYN-1.000007: unacknowledged",
                                10000),
                  "no unacknowledged delta in %s", status);
    ck_assert(wait_contains(status, "unacknowledged 1,", 1000));
    ck_assert(wait_contains(status, "7 procedures in force", 1000));
    ck_assert(wait_contains(pub_log, "awaiting acknowledgement from " CSDLTTHC, 1000));
    /* It comes back, gets the change, acknowledges it. */
    sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    ck_assert_msg(wait_contains(cat_file, "SYN-1.000007\t" STP_ID "\tCấp bản sao", 10000),
                  "the addition did not arrive");
    ck_assert(wait_contains(status, "added SYN-1.000007: acknowledged by " CSDLTTHC, 10000));
    ck_assert(wait_contains(status, "unacknowledged 0, rejected 0", 2000));

    /* A broken file: the error names line and field; nothing is published
     * and the catalogue in force stays. */
    char *broken = replace(v2, "5 working days", "5 wrking days");
    tk_write_file(tsv, broken);
    free(broken);
    kill(pub, SIGHUP);
    ck_assert_msg(wait_contains(pub_log, "catalogue-hn.tsv:15: field limit: '5 wrking days'", 10000),
                  "the error does not name line 15 and the field; see %s", pub_log);
    ck_assert(wait_contains(status, "last reload refused, the catalogue in force stays", 2000));
    ck_assert(wait_contains(status, "7 procedures in force", 1000));
    ck_assert(wait_contains(pub_log, "stays in force", 1000));
    char *held = tk_read_file(cat_file);
    ck_assert_int_eq(tk_count_of(status, "published"), 2);

    /* The national catalogue lost a version (its file restored from an old
     * copy): the next change cannot apply, and it says why. */
    tk_stop(sub);
    const char *from = strstr(held, " from ");
    ck_assert_ptr_nonnull(from);
    char *old = malloc(strlen(from) + 16);
    sprintf(old, "version 1%s", from);
    tk_write_file(cat_file, old);
    free(old);
    free(held);
    sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    char *v3 = replace(v2, "in-force\tSYN-1.000006", "repealed\tSYN-1.000006");
    char *v3b = replace(v3, "3187/QĐ-UBND\t2025-07-08\t2025-07-15\trepealed",
                        "4002/QĐ-UBND\t2026-11-02\t2026-11-02\trepealed");
    tk_write_file(tsv, v3b);
    kill(pub, SIGHUP);
    ck_assert_msg(wait_contains(status, "repealed SYN-1.000006: rejected by " CSDLTTHC, 10000),
                  "no rejection in %s", status);
    ck_assert(wait_contains(status, "a publication was missed", 1000));
    ck_assert(wait_contains(status, "unacknowledged 0, rejected 1", 1000));
    ck_assert(wait_contains(pub_log, "REJECTED by " CSDLTTHC, 1000));
    ck_assert_int_eq(tk_count_of(status, "last reload refused"), 0);
    char *text = tk_read_file(cat_file);
    ck_assert_msg(strstr(text, "SYN-1.000006\t"), "a rejected change was applied: %s", text);
    free(text);
    free(v3);
    free(v3b);
    free(v2);
    free(v1);
    hubfix_cleanup(&fix);
}
END_TEST


/* ---- every consumer follows a reload (issue 19 item 4) ------------------- */

/* The members: tkcatalogue.h's dossier stack. */
#define NAME7 "Cấp bản sao trích lục hộ tịch"

static char *run_tool(char **argv)
{
    char *out = NULL;
    int rc = tk_run(argv, &out, 20000);
    ck_assert_msg(rc == 0, "%s failed (%d): %s", argv[0], rc, out ? out : "");
    return out;
}

static char *hubctl_report_json(void)
{
    char conf[PATH_MAX];
    snprintf(conf, sizeof conf, "%s/hubctl-cchc.conf", fix.dir);
    hubfix_member_conf(&fix, CCHC, NULL, conf);
    char *argv[] = {(char *)tk_bin("hubctl"), "--config", conf, "report", "--json", NULL};
    return run_tool(argv);
}

/* Waits until sql (over path) counts at least one row. */
static void wait_some(const char *path, const char *sql, const char *what)
{
    for (int waited = 0; waited < 40000; waited += 200) {
        if (tk_sql_int(path, sql) > 0)
            return;
        tk_sleep_ms(200);
    }
    ck_abort_msg("timed out: %s (%s)", what, sql);
}

/* sql_fmt with its one %lld replaced by after (the last dossier index
 * before a change), into sql (1024 bytes). */
static const char *since(char sql[1024], const char *sql_fmt, long long after)
{
    snprintf(sql, 1024, sql_fmt, after);
    return sql;
}

/* A procedure added and a fee amended by a reload reach the portal (the fee
 * it pays), reporting (the name it reports) and the trail, through the hub
 * — none of them reads the procedure system's file — and a repeal stops new
 * dossiers for the procedure, each refused saying so. */
START_TEST(a_reload_reaches_the_portal_the_report_and_the_trail)
{
    hubfix_init(&fix, "redelivery_ms = 1000\npolicy_file = policy.conf");
    char shipped[PATH_MAX], tsv[PATH_MAX], status[PATH_MAX];
    char db_proc[PATH_MAX], db_portal[PATH_MAX], db_report[PATH_MAX], conf[4 * PATH_MAX];
    const char *src = getenv("HUB_SOURCE_DIR");
    tk_demo_policy_write(fix.dir);
    HUBFIX_ADD_MEMBERS(&fix, POP, TTHC, PORTAL, REPORT, CCHC, DKKD, STP_ID);
    hubfix_start(&fix);
    tk_dossier_db_paths(fix.dir, db_proc, db_portal, db_report);
    snprintf(shipped, sizeof shipped, "%s/deploy/catalogue-hn.tsv", src);
    snprintf(tsv, sizeof tsv, "%s/catalogue-hn.tsv", fix.dir);
    snprintf(status, sizeof status, "%s/catalogue.status", fix.dir);
    char *v1 = tk_read_file(shipped);
    ck_assert_ptr_nonnull(v1);
    tk_write_file(tsv, v1);

    snprintf(conf, sizeof conf, "plugin.db = %s/pop.db\nplugin.citizens = 2000\n"
             "plugin.disclosure_file = %s/deploy/disclosure-demo.conf\n", fix.dir, src);
    hubfix_start_ticking(&fix, POP, "population", 100, conf);
    const char *sectors[] = {DKKD, STP_ID};
    for (int i = 0; i < 2; i++) {
        snprintf(conf, sizeof conf, "plugin.db = %s/sector-%d.db\nplugin.late_percent = 0\n"
                 "plugin.refuse_percent = 0\nplugin.supplement_percent = 0\n", fix.dir, i);
        hubfix_start_ticking(&fix, sectors[i], "sector", 100, conf);
    }
    /* Reporting starts after the procedure system has published its whole
     * catalogue: it asks for it (catalogue.get/v1). The portal follows
     * from the start. */
    snprintf(conf, sizeof conf, "plugin.db = %s\nplugin.simulate_payments = 100\nplugin.seed = 5\n",
             db_portal);
    hubfix_start_ticking(&fix, PORTAL, "portal", 100, conf);
    /* Applicants ask for enterprise registration and for SYN-1.000007,
     * which no decision has announced yet. */
    snprintf(conf, sizeof conf,
             "plugin.db = %s\nplugin.dossiers = 100000\nplugin.rate_per_tick = 1\n"
             "plugin.population_citizens = 2000\nplugin.invalid_percent = 0\n"
             "plugin.unknown_percent = 0\nplugin.procedures = SYN-1.000004,SYN-1.000007\n"
             "plugin.day_ms = 1000\nplugin.overdue_grace_ms = 60000\n"
             "plugin.catalogue_file = %s\nplugin.catalogue_status = %s\n",
             db_proc, tsv, status);
    pid_t proc = hubfix_start_ticking(&fix, TTHC, "procedure", 250, conf);
    char proc_log[PATH_MAX];
    snprintf(proc_log, sizeof proc_log, "%s/adapter-VN.GOV.HN-VP.TTHC.log", fix.dir);
    ck_assert(wait_contains(proc_log, "plugin.procedures: SYN-1.000007 is not in force", 10000));
    ck_assert(wait_contains(status, "whole catalogue, 6 procedures", 10000));
    snprintf(conf, sizeof conf, "plugin.db = %s\n", db_report);
    hubfix_start_ticking(&fix, REPORT, "report", 100, conf);

    /* Before the decision: SYN-1.000007 is not received, saying why;
     * enterprise registration is paid at its fee, 50 000. */
    wait_some(db_proc,
              "SELECT count(*) FROM dossier d JOIN history h USING(code) WHERE"
              " d.procedure_code = 'SYN-1.000007' AND d.status = 7 AND d.identity = 'PROCEDURE'"
              " AND h.note LIKE '%not a procedure in force in the catalogue%'",
              "SYN-1.000007 refused before it is announced");
    wait_some(db_proc,
              "SELECT count(*) FROM payment p JOIN dossier d USING(code) WHERE"
              " d.procedure_code = 'SYN-1.000004' AND p.outcome = 1 AND p.amount = 50000",
              "enterprise registration paid at 50 000");
    wait_some(db_report, "SELECT count(*) FROM catalogue WHERE code = 'SYN-1.000004'",
              "reporting asked for the whole catalogue");

    /* The decision: SYN-1.000007 added (8 000 VND), enterprise
     * registration's fee amended to 65 000. */
    char *v2 = amend_and_add_row7(v1, "\t3 working days\t50000\t", "\t3 working days\t65000\t", tsv);
    kill(proc, SIGHUP);
    ck_assert_msg(wait_contains(status, "amended SYN-1.000004; added SYN-1.000007", 10000),
                  "the reload was not published (%s)", status);
    long long after = tk_sql_int(db_proc, "SELECT max(idx) FROM dossier");
    char sql[1024];
    wait_some(db_proc,
              since(sql,
                    "SELECT count(*) FROM payment p JOIN dossier d USING(code) WHERE"
                    " d.procedure_code = 'SYN-1.000007' AND d.idx > %lld AND p.outcome = 1"
                    " AND p.amount = 8000",
                    after),
              "the portal paid the new procedure's fee, 8 000");
    wait_some(db_proc,
              since(sql,
                    "SELECT count(*) FROM payment p JOIN dossier d USING(code) WHERE"
                    " d.procedure_code = 'SYN-1.000004' AND d.idx > %lld AND p.outcome = 1"
                    " AND p.amount = 65000",
                    after),
              "the portal paid the amended fee, 65 000");
    ck_assert_int_eq(
        tk_sql_int(db_proc, since(sql,
                                  "SELECT count(*) FROM rejected r JOIN dossier d USING(code) WHERE"
                                  " r.service = 'payment.status/v1' AND d.idx > %lld",
                                  after)),
        0);
    ck_assert_int_eq(
        tk_sql_int(db_portal, "SELECT fee_vnd FROM catalogue WHERE code = 'SYN-1.000004'"), 65000);
    /* Reporting names the new procedure (its own copy, from the delta). */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM dossier WHERE procedure_code = 'SYN-1.000007' AND status = 4");
    wait_some(db_report, sql, "a dossier of SYN-1.000007 decided, as reporting has it");
    char *json = hubctl_report_json();
    ck_assert_msg(strstr(json, "\"procedure_code\":\"SYN-1.000007\",\"procedure_name\":\"" NAME7
                               "\""),
                  "the report does not name SYN-1.000007: %s", json);
    free(json);
    /* The trail names it (the procedure system's catalogue in force). */
    char *trail_argv[] = {(char *)tk_bin("lth-trail"), "--procedure", db_proc, "--portal",
                          db_portal, "--report", db_report, NULL};
    char *trail = run_tool(trail_argv);
    ck_assert_msg(strstr(trail, "SYN-1.000007 " NAME7 " → " STP_ID), "%s", trail);
    free(trail);

    /* The repeal: no new dossier for it is received, each one saying so. */
    char *v3 = replace(v2, "4001/QĐ-UBND\t2026-10-01\t2026-10-15\tin-force\tSYN-1.000007",
                       "4002/QĐ-UBND\t2026-11-02\t2026-11-02\trepealed\tSYN-1.000007");
    tk_write_file(tsv, v3);
    kill(proc, SIGHUP);
    ck_assert_msg(wait_contains(status, "repealed SYN-1.000007", 10000),
                  "the repeal was not published (%s)", status);
    after = tk_sql_int(db_proc, "SELECT max(idx) FROM dossier");
    wait_some(db_proc,
              since(sql,
                    "SELECT count(*) FROM dossier d JOIN history h USING(code) WHERE"
                    " d.procedure_code = 'SYN-1.000007' AND d.idx > %lld AND d.status = 7"
                    " AND h.note LIKE '%%repealed by decision 4002/QĐ-UBND of 2026-11-02%%'",
                    after),
              "SYN-1.000007 refused after its repeal, naming the decision");
    ck_assert_int_eq(
        tk_sql_int(
            db_proc,
            since(
                sql,
                "SELECT count(*) FROM dossier WHERE procedure_code = 'SYN-1.000007' AND idx > %lld"
                " AND (identity IS NULL OR identity <> 'PROCEDURE')",
                after)),
        0);
    wait_some(db_portal, "SELECT repealed FROM catalogue WHERE code = 'SYN-1.000007'",
              "the portal holds SYN-1.000007 as repealed");
    wait_some(db_report, "SELECT repealed FROM catalogue WHERE code = 'SYN-1.000007'",
              "reporting holds SYN-1.000007 as repealed");
    /* Its dossiers keep their name in the report. */
    json = hubctl_report_json();
    ck_assert_msg(strstr(json, "\"procedure_code\":\"SYN-1.000007\",\"procedure_name\":\"" NAME7
                               "\""),
                  "a repealed procedure lost its name: %s", json);
    free(json);
    free(v3);
    free(v2);
    free(v1);
    hubfix_cleanup(&fix);
}
END_TEST

/* No built-in list stands in for a missing catalogue: the procedure system
 * does not start without plugin.catalogue_file, and says what to write. */
START_TEST(no_catalogue_file_is_a_clear_error)
{
    hubfix_init(&fix, NULL);
    hubfix_add_member(&fix, TTHC, true);
    hubfix_start(&fix);
    char db_line[PATH_MAX + 32];
    snprintf(db_line, sizeof db_line, "plugin.db = %s/proc.db", fix.dir);
    char *out = hubfix_adapter_refused(&fix, TTHC, "procedure", db_line);
    TK_ASSERT_HOLDS(out, "plugin.catalogue_file is required",
                    "write 'plugin.catalogue_file = PATH'");
    free(out);
    hubfix_cleanup(&fix);
}
END_TEST

TK_MAIN("e2e_catalogue",
        TK_CASE("catalogue", NULL, NULL, 120, subscriber_gets_each_published_catalogue),
        TK_CASE("as_data", NULL, NULL, 180, catalogue_changes_are_published_acknowledged_or_rejected),
        TK_CASE("consumers", NULL, NULL, 240, no_catalogue_file_is_a_clear_error,
                a_reload_reaches_the_portal_the_report_and_the_trail))
