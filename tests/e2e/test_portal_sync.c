/* End to end: the national portal's synchronisation profile and the
 * reform-index report (issue 19 items 1 and 2), over real processes — hubd,
 * and hub-adapter running the population, procedure, sector, portal and
 * report plugins, with the demo's data-sharing agreements.
 *
 * - the status vocabulary: an authority's change the transition table does
 *   not allow is refused, recorded with both states named, and changes
 *   nothing; the next legal one applies;
 * - electronic results: each DONE dossier's result, signed by its authority's
 *   member key, reaches the portal through the procedure system; the portal
 *   and the procedure system verify the signature; a result signed with
 *   another key, or for a dossier that ended without one, is refused; the
 *   dossier is then RESULT_HANDED_OVER;
 * - the portal's receipts (dossier.synced/v1) and statistics.sync/v1;
 * - payments (the catalogue's fee checked) and ratings from the portal;
 * - report.query/v1 and `hubctl report` over a period: every figure equals
 *   what the test recomputes from the procedure system's own records (its
 *   SQLite file: dossiers, history, results, payments, ratings, receipts).
 */
#include "domain.pb-c.h"
#include "hub_error.h"
#include "hubfix.h"
#include "tkcatalogue.h"
#include "lth_dossier.h"
#include "lth_portal.h"
#include "lth_procedure.h"
#include "lth_workcal.h"
#include "testkit.h"
#include "tkreport.h"
#include "tksql.h"

#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The members: tkcatalogue.h's dossier stack. */
#define CITIZENS 2000
#define WAIT_MS 120000

static hubfix_t fix;
static char db_proc[PATH_MAX], db_portal[PATH_MAX], db_report[PATH_MAX], db_dkkd[PATH_MAX],
    db_hotich[PATH_MAX], calendar[PATH_MAX];
static pid_t pids[8];
static const char *pid_members[8];
static size_t n_pids;


/* The procedure plugin's catalogue settings (tkcatalogue.h). */
static char catalogue_conf[3 * PATH_MAX];

static void setup(void)
{
    hubfix_init(&fix, "redelivery_ms = 1000\npolicy_file = policy.conf");
    tk_demo_policy_write(fix.dir);
    HUBFIX_ADD_MEMBERS(&fix, POP, TTHC, PORTAL, REPORT, DKKD, HOTICH, CCHC);
    hubfix_start(&fix);
    tk_dossier_db_paths(fix.dir, db_proc, db_portal, db_report);
    snprintf(db_dkkd, sizeof db_dkkd, "%s/sector-dkkd.db", fix.dir);
    snprintf(db_hotich, sizeof db_hotich, "%s/sector-hotich.db", fix.dir);
    /* Office hours all day, every day: the dossiers of a test take seconds,
     * and their working time must not be 0 because the test ran at night. */
    snprintf(calendar, sizeof calendar, "%s/calendar.tsv", fix.dir);
    tk_write_file(calendar, "hours 00:00-24:00\nweekend\nyears 2025 2026 2027 2028 2029 2030\n");
    n_pids = 0;
    tk_catalogue_use_shipped(fix.dir, catalogue_conf, sizeof catalogue_conf);
}

static void teardown(void)
{
    lth_procedure_release_all();
    hubfix_cleanup(&fix);
}

static pid_t start(const char *member, const char *plugin, const char *conf)
{
    pid_t pid = hubfix_start_ticking(&fix, member, plugin, 100, conf);
    ck_assert_uint_lt(n_pids, 8);
    pid_members[n_pids] = member;
    pids[n_pids++] = pid;
    return pid;
}

static void stop(pid_t pid)
{
    for (size_t i = 0; i < n_pids; i++) {
        if (pids[i] != pid)
            continue;
        int status = tk_stop(pid);
        ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "the adapter of %s did not exit cleanly (status %d)", pid_members[i], status);
        pids[i] = pids[--n_pids];
        pid_members[i] = pid_members[n_pids];
        return;
    }
    ck_abort_msg("not started here");
}

static void stop_all_cleanly(void)
{
    while (n_pids)
        stop(pids[0]);
}

static void start_population(void)
{
    char conf[PATH_MAX + 512];
    snprintf(conf, sizeof conf,
             "plugin.db = %s/pop.db\nplugin.citizens = %d\n"
             "plugin.disclosure_file = %s/deploy/disclosure-demo.conf\n",
             fix.dir, CITIZENS, getenv("HUB_SOURCE_DIR"));
    start(POP, "population", conf);
}

/* The portal, with `extra` configuration lines. */
static pid_t start_portal_with(const char *extra)
{
    char conf[PATH_MAX + 512];
    snprintf(conf, sizeof conf, "plugin.db = %s\n%s", db_portal, extra);
    return start(PORTAL, "portal", conf);
}

static pid_t start_portal(void)
{
    return start_portal_with("");
}

static void start_report(void)
{
    char conf[2 * PATH_MAX + 64];
    snprintf(conf, sizeof conf, "plugin.db = %s\nplugin.calendar = %s\n", db_report, calendar);
    start(REPORT, "report", conf);
}

static void start_sector(const char *member, const char *db)
{
    char conf[PATH_MAX + 128];
    snprintf(conf, sizeof conf,
             "plugin.db = %s\nplugin.seed = 3\nplugin.late_percent = 30\n"
             "plugin.refuse_percent = 15\nplugin.supplement_percent = 30\n",
             db);
    start(member, "sector", conf);
}

static void start_procedure_with(int n, const char *procs, int invalid_pct, int day_ms,
                                 const char *extra)
{
    char conf[3 * PATH_MAX + 1024];
    snprintf(conf, sizeof conf,
             "plugin.db = %s\nplugin.dossiers = %d\nplugin.rate_per_tick = 4\n"
             "plugin.population_citizens = %d\nplugin.invalid_percent = %d\n"
             "plugin.unknown_percent = 0\nplugin.procedures = %s\nplugin.day_ms = %d\n"
             "plugin.online_percent = 60\nplugin.hand_over_results = 1\n"
             "plugin.statistics_ms = 300\n%s%s",
             db_proc, n, CITIZENS, invalid_pct, procs, day_ms, catalogue_conf, extra);
    start(TTHC, "procedure", conf);
}

static void start_procedure(int n, const char *procs, int invalid_pct)
{
    start_procedure_with(n, procs, invalid_pct, 600, "");
}

/* ---- reading the adapters' files ---- */

/* The shared readers (tksql.h) under this file's names; wait_eq waits
 * WAIT_MS. */
static sqlite3 *open_ro(const char *path)
{
    return tk_sql_open_ro(path);
}

static long long sql_int(const char *path, const char *sql)
{
    return tk_sql_int(path, sql);
}

static void wait_eq(const char *path, const char *sql, long long want, const char *what)
{
    tk_sql_wait_eq(path, sql, want, WAIT_MS, what);
}

/* ---- sending as a member ---- */

static void send_event(adp_client_t *c, const char *to, const char *service, const char *type,
                       const uint8_t *buf, size_t len)
{
    int rc = adp_send_event(c, to, service, type, buf, len, 0, 10000, NULL);
    ck_assert_msg(rc == 0, "%s to %s: %s", service, to, adp_last_error(c));
}

/* Encodes *value with lth_<kind>_encode and sends it from c to TTHC as an
 * event of service, with content type `type`. */
#define SEND_ENCODED(c, kind, service, type, value)                                                \
    do {                                                                                           \
        uint8_t *send_buf = NULL;                                                                  \
        size_t send_len = 0;                                                                       \
        ck_assert_int_eq(lth_##kind##_encode((value), &send_buf, &send_len), 0);                   \
        send_event((c), TTHC, (service), (type), send_buf, send_len);                              \
        free(send_buf);                                                                            \
    } while (0)

static void send_change(adp_client_t *c, const char *code, int status, uint64_t seq)
{
    lth_status_change_t ch;
    memset(&ch, 0, sizeof ch);
    snprintf(ch.dossier_code, sizeof ch.dossier_code, "%s", code);
    ch.status = status;
    snprintf(ch.actor, sizeof ch.actor, "%s", adp_member_id(c));
    ch.at_us = (uint64_t)time(NULL) * 1000000u;
    ch.sequence = seq;
    snprintf(ch.authority, sizeof ch.authority, "%s", adp_member_id(c));
    SEND_ENCODED(c, status_change, LTH_SERVICE_DOSSIER_STATUS, LTH_STATUS_CHANGE_TYPE, &ch);
}

/* A result for code, signed with the client's member key, or with a key of
 * its own when forged. */
static void send_result(adp_client_t *c, const char *code, bool forged)
{
    lth_result_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.dossier_code, sizeof r.dossier_code, "%s", code);
    snprintf(r.result_code, sizeof r.result_code, "%s-KQ1", code);
    snprintf(r.uri, sizeof r.uri, "https://ketqua.example.invalid/%s.pdf", code);
    randombytes_buf(r.sha256, sizeof r.sha256);
    snprintf(r.media_type, sizeof r.media_type, "application/pdf");
    r.size_bytes = 4096;
    snprintf(r.signer, sizeof r.signer, "%s", adp_member_id(c));
    r.decided_at_us = (uint64_t)time(NULL) * 1000000u;
    char text[1024];
    size_t n = lth_result_signing_text(&r, text, sizeof text);
    if (forged) {
        uint8_t sk[64];
        crypto_sign_keypair(r.signer_public_key, sk);
        crypto_sign_detached(r.signature, NULL, (const uint8_t *)text, n, sk);
    } else {
        ck_assert_int_eq(
            adp_sign_detached(c, (const uint8_t *)text, n, r.signature, r.signer_public_key), 0);
    }
    SEND_ENCODED(c, result, LTH_SERVICE_DOSSIER_RESULT, LTH_RESULT_TYPE, &r);
}

/* Waits until the procedure system has refused one status change of dossier
 * code that matches `where` (SQL over the refusal table's seq, from_status,
 * to_status and reason); `what` names it in a failure. */
static void wait_refusal(const char *code, const char *where, const char *what)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM refusal WHERE code = '%s' AND %s", code, where);
    wait_eq(db_proc, sql, 1, what);
}

/* ---- item 1: transitions and results from an authority ---- */

START_TEST(illegal_transitions_and_forged_results_are_refused)
{
    ck_assert_int_ge(sodium_init(), 0);
    start_population();
    start_portal();
    /* Enterprise registration dossiers go to DKKD, played by the test; a
     * day of an hour, so that none falls overdue meanwhile. */
    start_procedure_with(6, "SYN-1.000004", 0, 3600000, "");
    wait_eq(db_proc, "SELECT count(*) FROM dossier WHERE forwarded_at IS NOT NULL", 6,
            "dossiers forwarded to DKKD");
    char code[LTH_DOSSIER_CODE_MAX], other[LTH_DOSSIER_CODE_MAX];
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q = tk_sql_prepare(db, "SELECT code FROM dossier ORDER BY idx LIMIT 2");
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    snprintf(code, sizeof code, "%s", (const char *)sqlite3_column_text(q, 0));
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    snprintf(other, sizeof other, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT status FROM dossier WHERE code = '%s'", code);
    ck_assert_int_eq(sql_int(db_proc, sql), LTH_STATUS_PROCESSING);

    adp_client_t *c = hubfix_connect(&fix, DKKD);
    /* 1: handed over before any decision: refused, both states named. */
    send_change(c, code, LTH_STATUS_RESULT_HANDED_OVER, 1);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM refusal WHERE code = '%s' AND seq = 1 AND from_status = 2 AND "
             "to_status = 11 AND reason LIKE 'RESULT_HANDED_OVER cannot follow PROCESSING: after "
             "PROCESSING come %%DONE%%'",
             code);
    wait_eq(db_proc, sql, 1, "the refusal of RESULT_HANDED_OVER after PROCESSING");
    snprintf(sql, sizeof sql, "SELECT status FROM dossier WHERE code = '%s'", code);
    ck_assert_int_eq(sql_int(db_proc, sql), LTH_STATUS_PROCESSING);
    /* 2: DONE applies; 3: a supplement request after it is refused. */
    send_change(c, code, LTH_STATUS_DONE, 2);
    wait_eq(db_proc, sql, LTH_STATUS_DONE, "the dossier DONE");
    send_change(c, code, LTH_STATUS_SUPPLEMENT_REQUESTED, 3);
    wait_refusal(code,
                 "seq = 3 AND reason = 'SUPPLEMENT_REQUESTED cannot follow DONE: after DONE come "
                 "RESULT_HANDED_OVER'",
                 "the refusal of SUPPLEMENT_REQUESTED after DONE");
    /* The portal saw DONE and nothing refused. */
    snprintf(sql, sizeof sql, "SELECT status FROM view WHERE code = '%s'", code);
    wait_eq(db_portal, sql, LTH_STATUS_DONE, "the portal's status");
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM history WHERE status IN (3, 11)"), 0);

    /* A result signed with a key the hub does not bind to DKKD: refused. */
    send_result(c, code, true);
    wait_eq(db_proc,
            "SELECT count(*) FROM rejected WHERE service = 'dossier.result/v1' AND reason LIKE "
            "'signer_public_key is not the signing key the hub binds to the sender'",
            1, "the forged result refused");
    /* DKKD's own: verified, relayed, verified again and kept by the portal,
     * confirmed by its receipt; the dossier is handed over. */
    send_result(c, code, false);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM result WHERE code = '%s' AND signer = '" DKKD "' AND "
             "result_code = '%s-KQ1'",
             code, code);
    wait_eq(db_portal, sql, 1, "the result at the portal");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM result WHERE code = '%s' AND portal_accepted = 1", code);
    wait_eq(db_proc, sql, 1, "the portal's receipt for the result");
    snprintf(sql, sizeof sql, "SELECT status FROM view WHERE code = '%s'", code);
    wait_eq(db_portal, sql, LTH_STATUS_RESULT_HANDED_OVER, "the result handed over");
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM refused_result"), 0);

    /* A result for a dossier returned without one: refused. */
    send_change(c, other, LTH_STATUS_RETURNED, 1);
    snprintf(sql, sizeof sql, "SELECT status FROM dossier WHERE code = '%s'", other);
    wait_eq(db_proc, sql, LTH_STATUS_RETURNED, "the other dossier returned");
    send_result(c, other, false);
    wait_eq(db_proc,
            "SELECT count(*) FROM rejected WHERE service = 'dossier.result/v1' AND reason LIKE "
            "'the dossier ended without a result%'",
            1, "the result of a returned dossier refused");
    /* The rest of the vocabulary, as the portal sees it: a fee asked,
     * processing, suspended, withdrawn by the applicant — then nothing. */
    char third[LTH_DOSSIER_CODE_MAX];
    tk_sql_text(db_proc, "SELECT code FROM dossier ORDER BY idx LIMIT 1 OFFSET 2", third,
                sizeof third);
    const int path[] = {LTH_STATUS_FINANCIAL_OBLIGATION_REQUESTED, LTH_STATUS_PROCESSING,
                        LTH_STATUS_SUSPENDED, LTH_STATUS_WITHDRAWN};
    for (int i = 0; i < 4; i++)
        send_change(c, third, path[i], (uint64_t)i + 1);
    snprintf(sql, sizeof sql, "SELECT status FROM view WHERE code = '%s'", third);
    wait_eq(db_portal, sql, LTH_STATUS_WITHDRAWN, "the withdrawn dossier at the portal");
    snprintf(sql, sizeof sql,
             "SELECT group_concat(status, ',') FROM (SELECT status FROM history WHERE code = '%s'"
             " ORDER BY seq)",
             third);
    char statuses[64];
    tk_sql_text(db_proc, sql, statuses, sizeof statuses);
    ck_assert_str_eq(statuses, "1,2,8,2,9,10");
    send_change(c, third, LTH_STATUS_DONE, 5);
    wait_refusal(third, "reason = 'DONE cannot follow WITHDRAWN: WITHDRAWN is final'",
                 "the refusal of DONE after WITHDRAWN");
    /* Delivery may reorder: a change after a gap in the sender's sequence
     * applies when the missing ones can lead to it (SUPPLEMENT_REQUESTED,
     * then DONE with PROCESSING still on its way); the late one is then
     * older and ignored; one no path leads to is refused. */
    char fourth[LTH_DOSSIER_CODE_MAX];
    tk_sql_text(db_proc, "SELECT code FROM dossier ORDER BY idx LIMIT 1 OFFSET 3", fourth,
                sizeof fourth);
    send_change(c, fourth, LTH_STATUS_SUPPLEMENT_REQUESTED, 1);
    send_change(c, fourth, LTH_STATUS_DONE, 3);
    snprintf(sql, sizeof sql, "SELECT status FROM dossier WHERE code = '%s'", fourth);
    wait_eq(db_proc, sql, LTH_STATUS_DONE, "DONE after a gap applied");
    send_change(c, fourth, LTH_STATUS_PROCESSING, 2);
    send_change(c, fourth, LTH_STATUS_RECEIVED, 5);
    wait_refusal(fourth, "seq = 5 AND reason LIKE 'RECEIVED cannot follow DONE%'",
                 "an unreachable status after a gap refused");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM history WHERE code = '%s' AND seq > 2", fourth);
    ck_assert_int_eq(sql_int(db_proc, sql), 2); /* SUPPLEMENT_REQUESTED, DONE */
    adp_close(&c);
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/adapter-VN.GOV.HN-VP.TTHC.log", fix.dir);
    ck_assert(tk_wait_file_contains(log, "RESULT_HANDED_OVER cannot follow PROCESSING", 5000));
    stop_all_cleanly();
}
END_TEST

/* ---- item 1 + 2: the whole flow, then the report recomputed ---- */

/* The test's own figures for one (procedure, authority). */
typedef struct {
    char procedure[LTH_PROCEDURE_CODE_MAX], authority[LTH_MEMBER_MAX];
    long long received, on_time, early, late, overdue, returned, not_accepted, decided, synced,
        online, done, with_result, paid, paid_online, rated;
    double working_us, rating_sum;
} figures_t;

static uint64_t local_day(uint64_t us)
{
    return (us / 1000000u + 7u * 3600u) / 86400u;
}

/* Recomputes the report from the procedure system's records, working time
 * by the test's calendar. */
static size_t recompute(figures_t *rows, size_t cap, figures_t *total)
{
    lth_workcal_t *cal = NULL;
    char err[256];
    ck_assert_msg(lth_workcal_load(calendar, &cal, err, sizeof err) == 0, "%s", err);
    memset(total, 0, sizeof *total);
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q = tk_sql_prepare(
        db, "SELECT d.procedure_code, coalesce(d.resolver, d.authority), d.status, d.due_at,"
            " d.submitted_at, coalesce(d.decided_at, 0), d.channel, d.portal_seq = d.seq,"
            " (SELECT at_us FROM history h WHERE h.code = d.code AND h.status = 4),"
            " EXISTS (SELECT 1 FROM result r WHERE r.code = d.code),"
            " EXISTS (SELECT 1 FROM payment p WHERE p.code = d.code AND p.outcome = 1),"
            " EXISTS (SELECT 1 FROM payment p WHERE p.code = d.code AND p.outcome = 1"
            "   AND p.channel = 1),"
            " (SELECT ratings FROM feedback f WHERE f.code = d.code),"
            " (SELECT score_sum FROM feedback f WHERE f.code = d.code)"
            " FROM dossier d ORDER BY 1, 2");
    size_t n = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *proc = (const char *)sqlite3_column_text(q, 0),
                   *auth = (const char *)sqlite3_column_text(q, 1);
        if (n == 0 || strcmp(rows[n - 1].procedure, proc) || strcmp(rows[n - 1].authority, auth)) {
            ck_assert_uint_lt(n, cap);
            memset(&rows[n], 0, sizeof rows[n]);
            snprintf(rows[n].procedure, sizeof rows[n].procedure, "%s", proc);
            snprintf(rows[n].authority, sizeof rows[n].authority, "%s", auth);
            n++;
        }
        figures_t *f[2] = {&rows[n - 1], total};
        int status = sqlite3_column_int(q, 2);
        uint64_t due = (uint64_t)sqlite3_column_int64(q, 3),
                 submitted = (uint64_t)sqlite3_column_int64(q, 4),
                 decided = (uint64_t)sqlite3_column_int64(q, 5),
                 done_at = (uint64_t)sqlite3_column_int64(q, 8);
        bool done = sqlite3_column_type(q, 8) != SQLITE_NULL;
        long long ratings = sqlite3_column_int64(q, 12);
        for (int k = 0; k < 2; k++) {
            f[k]->received++;
            if (done && (due == 0 || done_at <= due)) {
                f[k]->on_time++;
                if (due && local_day(done_at) < local_day(due))
                    f[k]->early++;
            } else if (done) {
                f[k]->late++;
            } else if (status == LTH_STATUS_RETURNED) {
                f[k]->returned++;
            } else if (status == LTH_STATUS_NOT_ACCEPTED) {
                f[k]->not_accepted++; /* refused at reception */
            } else {
                ck_abort_msg("dossier still open (status %d)", status);
            }
            if (decided) {
                f[k]->decided++;
                f[k]->working_us +=
                    (double)lth_workcal_working_us(cal, (int64_t)submitted, (int64_t)decided);
            }
            f[k]->synced += sqlite3_column_int(q, 7);
            f[k]->online += sqlite3_column_int(q, 6) == LTH_CHANNEL_ONLINE;
            f[k]->done += done;
            f[k]->with_result += done && sqlite3_column_int(q, 9);
            f[k]->paid += sqlite3_column_int(q, 10);
            f[k]->paid_online += sqlite3_column_int(q, 11);
            if (ratings) {
                f[k]->rated++;
                f[k]->rating_sum += (double)sqlite3_column_int64(q, 13) / (double)ratings;
            }
        }
    }
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    lth_workcal_destroy(&cal);
    return n;
}

static double pct(long long part, long long whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void assert_near(double got, double want, const char *what, const char *row)
{
    ck_assert_msg(fabs(got - want) <= 0.0051, "%s %s: report %.4f, recomputed %.4f", row, what, got,
                  want);
}

static void assert_row(json_t *row, const figures_t *f, const char *name)
{
    ck_assert_int_eq(tk_json_int(row, "received"), f->received);
    ck_assert_int_eq(tk_json_int(row, "dossiers"), f->received);
    ck_assert_int_eq(tk_json_int(row, "on_time"), f->on_time);
    ck_assert_int_eq(tk_json_int(row, "early"), f->early);
    ck_assert_int_eq(tk_json_int(row, "late"), f->late);
    ck_assert_int_eq(tk_json_int(row, "overdue"), 0);
    ck_assert_int_eq(tk_json_int(row, "in_progress"), 0);
    ck_assert_int_eq(tk_json_int(row, "returned"), f->returned);
    ck_assert_int_eq(tk_json_int(row, "not_accepted"), f->not_accepted);
    ck_assert_int_eq(tk_json_int(row, "decided"), f->decided);
    ck_assert_int_eq(tk_json_int(row, "synced"), f->synced);
    ck_assert_int_eq(tk_json_int(row, "online"), f->online);
    ck_assert_int_eq(tk_json_int(row, "with_result"), f->with_result);
    ck_assert_int_eq(tk_json_int(row, "paid"), f->paid);
    ck_assert_int_eq(tk_json_int(row, "paid_online"), f->paid_online);
    ck_assert_int_eq(tk_json_int(row, "rated"), f->rated);
    assert_near(tk_json_num(row, "avg_working_hours"),
                f->decided ? f->working_us / 3600e6 / (double)f->decided : 0, "avg_working_hours",
                name);
    assert_near(tk_json_num(row, "pct_synced"), pct(f->synced, f->received), "pct_synced", name);
    assert_near(tk_json_num(row, "pct_online"), pct(f->online, f->received), "pct_online", name);
    assert_near(tk_json_num(row, "pct_electronic_result"), pct(f->with_result, f->done),
                "pct_electronic_result", name);
    assert_near(tk_json_num(row, "pct_paid_online"), pct(f->paid_online, f->paid),
                "pct_paid_online", name);
    assert_near(tk_json_num(row, "avg_satisfaction"),
                f->rated ? f->rating_sum / (double)f->rated : 0, "avg_satisfaction", name);
}

/* "YYYY-MM-DD" of the local date (Asia/Ho_Chi_Minh) of now + days. */
static void local_date(int days, char out[16])
{
    time_t t = time(NULL) + 7 * 3600 + (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

/* `hubctl report ARGS` as CCHC; returns its output (malloc'ed). */
static char *hubctl_report(const char *const *args, size_t n_args)
{
    char conf[PATH_MAX];
    snprintf(conf, sizeof conf, "%s/hubctl-cchc.conf", fix.dir);
    hubfix_member_conf(&fix, CCHC, NULL, conf);
    char *argv[16] = {(char *)tk_bin("hubctl"), "--config", conf, "report"};
    size_t k = 4;
    for (size_t i = 0; i < n_args && k < 15; i++)
        argv[k++] = (char *)args[i];
    argv[k] = NULL;
    char *out = NULL;
    int rc = tk_run(argv, &out, 20000);
    ck_assert_msg(rc == 0, "hubctl report failed (%d): %s", rc, out ? out : "");
    return out;
}

/* Reporting, the sector systems of DKKD and HOTICH and the procedure
 * system with n dossiers of SYN-1.000001, -4 and -3 (invalid_pct of them
 * with an invalid applicant) run until every dossier is decided: returned,
 * not accepted or handed over. */
static void decide_all(int n, int invalid_pct)
{
    start_report();
    start_sector(DKKD, db_dkkd);
    start_sector(HOTICH, db_hotich);
    start_procedure(n, "SYN-1.000001,SYN-1.000004,SYN-1.000003", invalid_pct);
    wait_eq(db_proc, "SELECT count(*) FROM dossier WHERE status IN (5, 7, 11)", n,
            "dossiers returned, not accepted or handed over");
}

/* Waits until reporting holds the portal's receipt for the latest change
 * of each of the n dossiers. */
static void wait_receipts_reported(int n)
{
    wait_eq(db_report,
            "SELECT count(*) FROM dossier d JOIN synced s USING(code) WHERE s.seq >= d.seq", n,
            "receipts at reporting");
}

START_TEST(synchronisation_profile_and_report_match_the_trails)
{
    ck_assert_int_ge(sodium_init(), 0);
    const int n = 24;
    start_population();
    pid_t portal = start_portal();
    /* Every dossier decided; every DONE one handed over with its result. */
    decide_all(n, 10);
    long long done = sql_int(db_proc, "SELECT count(*) FROM dossier WHERE status = 11");
    ck_assert_int_gt(done, 0);
    ck_assert_int_gt(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE status = 5"), 0);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM result"), done);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM refusal"), 0);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM rejected"), 0);
    /* The portal confirmed every change and result; it holds each result,
     * signed by the dossier's authority, and the latest statistics. */
    wait_eq(db_proc, "SELECT count(*) FROM dossier WHERE portal_seq = seq", n,
            "dossiers whose latest change the portal confirmed");
    wait_eq(db_proc, "SELECT count(*) FROM result WHERE portal_accepted = 1", done,
            "results the portal accepted");
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM view WHERE status = 11"), done);
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM result"), done);
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM result r JOIN view v USING(code)"
                                        " WHERE r.signer = v.authority AND r.result_code ="
                                        " r.code || '-KQ1' AND length(r.signer_key) = 64"),
                     done);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(dossiers), 0) FROM statistics WHERE publisher = '" TTHC "'");
    wait_eq(db_portal, sql, n, "dossiers in the portal's statistics");
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(DISTINCT authority) FROM statistics"), 2);
    wait_eq(db_portal, "SELECT coalesce(sum(dossiers), 0) FROM statistics WHERE status = 11", done,
            "dossiers handed over in the portal's statistics");

    /* The portal's payment platform and ratings: played by the test, as
     * the portal, while the portal adapter is stopped. */
    stop(portal);
    adp_client_t *c = hubfix_connect(&fix, PORTAL);
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q = tk_sql_prepare(db, "SELECT code, procedure_code, status, idx FROM dossier"
                                         " ORDER BY idx");
    int payments = 0, ratings = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *code = (const char *)sqlite3_column_text(q, 0),
                   *proc = (const char *)sqlite3_column_text(q, 1);
        int idx = sqlite3_column_int(q, 3);
        uint8_t *buf = NULL;
        size_t len = 0;
        uint64_t fee = lth_procedure_fee_vnd(proc);
        if (fee && sqlite3_column_int(q, 2) == 11) {
            lth_payment_t p = {.fee_vnd = fee,
                               .amount_vnd = fee,
                               .outcome = LTH_PAYMENT_PAID,
                               .channel = (idx / 3) % 2 ? LTH_CHANNEL_COUNTER : LTH_CHANNEL_ONLINE};
            snprintf(p.dossier_code, sizeof p.dossier_code, "%s", code);
            snprintf(p.procedure_code, sizeof p.procedure_code, "%s", proc);
            snprintf(p.transaction_ref, sizeof p.transaction_ref, "PAYGOV-%06d", idx);
            ck_assert_int_eq(lth_payment_encode(&p, &buf, &len), 0);
            send_event(c, TTHC, LTH_SERVICE_PAYMENT_STATUS, LTH_PAYMENT_TYPE, buf, len);
            /* Again: the same transaction counts once. */
            send_event(c, TTHC, LTH_SERVICE_PAYMENT_STATUS, LTH_PAYMENT_TYPE, buf, len);
            free(buf);
            payments++;
        }
        if (idx % 4 != 0) {
            lth_feedback_t f = {.n_ratings = 3};
            snprintf(f.dossier_code, sizeof f.dossier_code, "%s", code);
            const char *criteria[] = {"access", "officials", "time"};
            for (int k = 0; k < 3; k++) {
                snprintf(f.ratings[k].criterion, sizeof f.ratings[k].criterion, "%s", criteria[k]);
                f.ratings[k].score = 1 + (unsigned)(idx + k) % 5;
            }
            SEND_ENCODED(c, feedback, LTH_SERVICE_FEEDBACK, LTH_FEEDBACK_TYPE, &f);
            ratings++;
        }
    }
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    ck_assert_int_gt(payments, 0);
    /* A fee other than the catalogue's, and a rating of no dossier: refused. */
    lth_payment_t bad = {.dossier_code = "",
                         .fee_vnd = 40000,
                         .amount_vnd = 40000,
                         .transaction_ref = "PAYGOV-BAD",
                         .outcome = LTH_PAYMENT_PAID,
                         .channel = LTH_CHANNEL_ONLINE};
    sql_int(db_proc, "SELECT 1");
    db = open_ro(db_proc);
    q = tk_sql_prepare(db, "SELECT code FROM dossier WHERE procedure_code = "
                           "'SYN-1.000004' LIMIT 1");
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    snprintf(bad.dossier_code, sizeof bad.dossier_code, "%s",
             (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    SEND_ENCODED(c, payment, LTH_SERVICE_PAYMENT_STATUS, LTH_PAYMENT_TYPE, &bad);
    lth_feedback_t nobody = {.dossier_code = "NO-SUCH-DOSSIER", .n_ratings = 1};
    snprintf(nobody.ratings[0].criterion, sizeof nobody.ratings[0].criterion, "time");
    nobody.ratings[0].score = 1;
    SEND_ENCODED(c, feedback, LTH_SERVICE_FEEDBACK, LTH_FEEDBACK_TYPE, &nobody);
    adp_close(&c);
    wait_eq(db_proc,
            "SELECT count(*) FROM rejected WHERE service = 'payment.status/v1' AND reason ="
            " 'fee_vnd 40000 is not the fee the catalogue sets for SYN-1.000004 (50000 VND)'",
            1, "the wrong fee refused");
    wait_eq(db_proc,
            "SELECT count(*) FROM rejected WHERE service = 'feedback.submit/v1' AND reason ="
            " 'no dossier with that code here'",
            1, "the rating of no dossier refused");
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM payment"), payments);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM feedback"), ratings);
    start_portal();

    /* Reporting holds what the procedure system relayed. */
    wait_eq(db_report, "SELECT count(*) FROM payment", payments, "payments at reporting");
    wait_eq(db_report, "SELECT count(*) FROM feedback", ratings, "ratings at reporting");
    wait_eq(db_report, "SELECT count(*) FROM result", done, "results at reporting");
    wait_receipts_reported(n);

    /* The report over today (submitted, then decided) equals the test's
     * own figures from the procedure system's records. */
    figures_t rows[16], total;
    size_t n_rows = recompute(rows, 16, &total);
    ck_assert_int_eq(total.received, n);
    ck_assert_int_gt(total.paid_online, 0);
    ck_assert_int_lt(total.paid_online, total.paid);
    ck_assert_int_gt(total.online, 0);
    ck_assert_int_lt(total.online, n);
    ck_assert(total.working_us > 0);
    char today[16], yesterday[16], tomorrow[16], request[256];
    local_date(0, today);
    local_date(-1, yesterday);
    local_date(1, tomorrow);
    adp_client_t *r = hubfix_connect(&fix, CCHC);
    const char *bys[] = {"submitted", "decided"};
    for (int b = 0; b < 2; b++) {
        /* A day either side: dossiers submitted just before midnight. */
        snprintf(request, sizeof request,
                 "{\"format\":\"json\",\"from\":\"%s\",\"to\":\"%s\",\"by\":\"%s\"}", yesterday,
                 tomorrow, bys[b]);
        json_t *doc = tk_report_query(r, REPORT, request);
        json_t *jrows = json_object_get(doc, "rows");
        ck_assert_uint_eq(json_array_size(jrows), n_rows);
        for (size_t i = 0; i < n_rows; i++) {
            json_t *row = json_array_get(jrows, i);
            ck_assert_str_eq(json_string_value(json_object_get(row, "procedure_code")),
                             rows[i].procedure);
            ck_assert_str_eq(json_string_value(json_object_get(row, "authority")),
                             rows[i].authority);
            assert_row(row, &rows[i], rows[i].procedure);
        }
        assert_row(json_object_get(doc, "total"), &total, "total");
        json_decref(doc);
    }
    /* A period with no dossier. */
    snprintf(request, sizeof request, "{\"from\":\"2020-01-01\",\"to\":\"2020-01-31\"}");
    json_t *doc = tk_report_query(r, REPORT, request);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "rows")), 0);
    json_decref(doc);
    /* Bad periods are answered with what to fix. */
    const char *bad_requests[][2] = {
        {"{\"from\":\"2026-13-01\"}", "YYYY-MM-DD"},
        {"{\"by\":\"paid\"}", "by must be"},
        {"{\"from\":\"2026-07-02\",\"to\":\"2026-07-01\"}", "to must not come before from"}};
    for (size_t i = 0; i < 3; i++) {
        doc = tk_report_query(r, REPORT, bad_requests[i][0]);
        const char *e = json_string_value(json_object_get(doc, "error"));
        ck_assert_msg(e && strstr(e, bad_requests[i][1]), "%s: %s", bad_requests[i][0],
                      e ? e : "(none)");
        json_decref(doc);
    }
    adp_close(&r);

    /* hubctl report: the same figures, as JSON, CSV and a table. */
    const char *args_json[] = {"--json", "--from", yesterday, "--to", tomorrow};
    char *out = hubctl_report(args_json, 5);
    json_error_t jerr;
    doc = json_loads(out, 0, &jerr);
    ck_assert_msg(doc != NULL, "hubctl report --json: %s", out);
    assert_row(json_object_get(doc, "total"), &total, "hubctl total");
    json_decref(doc);
    free(out);
    const char *args_csv[] = {"--csv", "--from", yesterday, "--to", tomorrow, "--by", "decided"};
    out = hubctl_report(args_csv, 7);
    ck_assert_msg(strstr(out, "procedure_code,procedure_name,authority,dossiers,on_time,late,"
                              "overdue,in_progress,returned,early,avg_working_hours,pct_synced,"
                              "pct_online,pct_electronic_result,pct_paid_online,"
                              "avg_satisfaction,not_accepted\r\n"),
                  "%s", out);
    free(out);
    const char *args_table[] = {"--from", today, "--to", tomorrow};
    out = hubctl_report(args_table, 4);
    ck_assert_msg(strstr(out, "synced %") && strstr(out, "satisfaction") && strstr(out, "total"),
                  "%s", out);
    free(out);
    const char *args_bad[] = {"--from", "01/07/2026"};
    char conf[PATH_MAX];
    snprintf(conf, sizeof conf, "%s/hubctl-cchc.conf", fix.dir);
    char *argv[] = {(char *)tk_bin("hubctl"), "--config",          conf, "report",
                    (char *)args_bad[0],      (char *)args_bad[1], NULL};
    ck_assert_int_eq(tk_run(argv, &out, 10000), 2);
    ck_assert_msg(out && strstr(out, "YYYY-MM-DD"), "%s", out ? out : "");
    free(out);
    stop_all_cleanly();
}
END_TEST

/* ---- item 6: a dossier that passes several authorities ---- */

#define STEP_DAY_US 600000ull /* plugin.day_ms = 600 */

START_TEST(dossier_passes_several_authorities)
{
    const int n = 12;
    start_population();
    start_portal();
    start_report();
    start_sector(DKKD, db_dkkd);
    start_sector(HOTICH, db_hotich);
    /* Enterprise registration passes the business registry (2 working
     * days), then civil status (1 working day), each on its own limit. */
    start_procedure_with(n, "SYN-1.000004", 0, 600,
                         "plugin.chains = SYN-1.000004: " DKKD " (2 working days) > " HOTICH
                         " (1 working day)\n");
    wait_eq(db_proc, "SELECT count(*) FROM dossier WHERE status IN (5, 7, 11)", n,
            "dossiers returned, not accepted or handed over");
    wait_eq(db_proc, "SELECT count(*) FROM dossier WHERE portal_seq = seq", n,
            "dossiers whose latest change the portal confirmed");
    long long forwarded = sql_int(db_proc, "SELECT count(*) FROM dossier WHERE forwarded_at IS "
                                           "NOT NULL");
    long long second = sql_int(db_proc, "SELECT count(*) FROM chain_step WHERE n = 2");
    long long done = sql_int(db_proc, "SELECT count(*) FROM dossier WHERE status = 11");
    ck_assert_int_gt(forwarded, 0);
    ck_assert_int_gt(second, 0);
    ck_assert_int_gt(done, 0);
    /* Step 1 at the registry for every forwarded dossier, step 2 at civil
     * status for those the registry completed, each with its own limit
     * counted from its own start; step 2 starts when step 1 is done. */
    ck_assert_int_eq(
        sql_int(db_proc, "SELECT count(*) FROM chain_step WHERE n = 1 AND authority = '" DKKD "'"),
        forwarded);
    ck_assert_int_eq(sql_int(db_proc,
                             "SELECT count(*) FROM chain_step WHERE n = 2 AND authority = '" HOTICH
                             "'"),
                     second);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM chain_step WHERE n = 1 AND status = 4"),
                     second);
    char sql[768];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM chain_step WHERE due_at - started_at <> CASE n WHEN 1 THEN %llu "
             "ELSE %llu END",
             2 * STEP_DAY_US, STEP_DAY_US);
    ck_assert_int_eq(sql_int(db_proc, sql), 0);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM chain_step a JOIN chain_step b"
                                      " ON a.code = b.code AND a.n = 1 AND b.n = 2"
                                      " WHERE b.started_at <> a.done_at"),
                     0);
    /* Every handed-over dossier went through both steps; the registry's
     * refusals ended theirs at step 1. */
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM dossier d WHERE status = 11 AND"
                                      " (steps <> 2 OR step <> 2 OR NOT EXISTS (SELECT 1 FROM"
                                      " chain_step s WHERE s.code = d.code AND n = 2 AND"
                                      " s.status = 4))"),
                     0);
    ck_assert_int_eq(sql_int(db_dkkd, "SELECT count(*) FROM dossier"), forwarded);
    ck_assert_int_eq(sql_int(db_hotich, "SELECT count(*) FROM dossier"), second);
    /* Each step counted against its own limit: the hand-over note says
     * whether step 1 kept its limit, and agrees with the step's times. */
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM history h JOIN chain_step s"
                                      " ON s.code = h.code AND s.n = 1"
                                      " WHERE h.note LIKE 'Liên thông: bước 1/2 xong tại " DKKD
                                      " (trong hạn%' AND s.done_at <= s.due_at"),
                     sql_int(db_proc, "SELECT count(*) FROM chain_step WHERE n = 1 AND status = 4"
                                      " AND done_at <= due_at"));
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM history WHERE note LIKE"
                                      " 'Liên thông: bước 1/2 xong tại%'"),
                     second);
    /* The portal was told each step, its authority and its due time, and
     * closed step 1 when step 2 began. */
    sqlite3 *db = open_ro(db_proc);
    char *attach = sqlite3_mprintf("ATTACH DATABASE %Q AS p", db_portal);
    ck_assert_int_eq(sqlite3_exec(db, attach, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(attach);
    sqlite3_stmt *q =
        tk_sql_prepare(db, "SELECT (SELECT count(*) FROM main.chain_step c JOIN"
                           " p.step s ON s.code = c.code AND s.n = c.n AND"
                           " s.authority = c.authority AND s.due_at = c.due_at AND"
                           " s.steps = 2),"
                           " (SELECT count(*) FROM p.step WHERE n = 1 AND status = 4),"
                           " (SELECT count(*) FROM p.view WHERE status = 11 AND"
                           " authority = '" HOTICH "'),"
                           " (SELECT count(*) FROM p.result WHERE signer = '" HOTICH "')");
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int64(q, 0), forwarded + second);
    ck_assert_int_eq(sqlite3_column_int64(q, 1), second);
    ck_assert_int_eq(sqlite3_column_int64(q, 2), done);
    ck_assert_int_eq(sqlite3_column_int64(q, 3), done);
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM refusal"), 0);
    /* The report counts each step against its own limit: the same as the
     * procedure system's records of the steps. */
    wait_eq(db_report, "SELECT count(*) FROM step", forwarded + second, "steps at reporting");
    adp_client_t *r = hubfix_connect(&fix, CCHC);
    json_t *doc = tk_report_query(r, REPORT, "{}");
    json_t *steps = json_object_get(doc, "steps");
    ck_assert_uint_eq(json_array_size(steps), 2);
    for (int k = 0; k < 2; k++) {
        json_t *row = json_array_get(steps, (size_t)k);
        ck_assert_int_eq(tk_json_int(row, "step"), k + 1);
        ck_assert_str_eq(json_string_value(json_object_get(row, "authority")), k ? HOTICH : DKKD);
        snprintf(sql, sizeof sql,
                 "SELECT count(*) * 1000000 + sum(done_at IS NOT NULL) * 10000 +"
                 " sum(done_at <= due_at) * 100 + sum(done_at > due_at)"
                 " FROM chain_step WHERE n = %d",
                 k + 1);
        long long packed = sql_int(db_proc, sql);
        ck_assert_int_eq(tk_json_int(row, "entered"), packed / 1000000);
        ck_assert_int_eq(tk_json_int(row, "ended"), packed / 10000 % 100);
        ck_assert_int_eq(tk_json_int(row, "on_time"), packed / 100 % 100);
        ck_assert_int_eq(tk_json_int(row, "late"), packed % 100);
        ck_assert_int_eq(tk_json_int(row, "overdue"), 0);
    }
    ck_assert_int_gt(tk_json_int(json_array_get(steps, 0), "entered"), 0);
    json_decref(doc);
    adp_close(&r);
    /* The registry's own results of step 1 are not the dossier's. */
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM rejected"), 0);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM result WHERE signer <> '" HOTICH "'"),
                     0);
    stop_all_cleanly();
}
END_TEST

/* With a working calendar, each step's own limit is counted in working
 * days (deploy/calendar-vn.tsv: weekends, public holidays, office hours). */
START_TEST(chain_steps_count_working_days)
{
    const int n = 4;
    char cal_path[PATH_MAX], conf[PATH_MAX * 4 + 512], err[256];
    snprintf(cal_path, sizeof cal_path, "%s/deploy/calendar-vn.tsv", getenv("HUB_SOURCE_DIR"));
    snprintf(conf, sizeof conf,
             "plugin.db = %s\nplugin.dossiers = %d\nplugin.rate_per_tick = 4\n"
             "plugin.population_citizens = %d\nplugin.invalid_percent = 0\n"
             "plugin.unknown_percent = 0\nplugin.procedures = SYN-1.000004\n"
             "plugin.calendar = %s\nplugin.chains = SYN-1.000004: " DKKD
             " (2 working days) > " HOTICH " (8 working hours)\n%s",
             db_proc, n, CITIZENS, cal_path, catalogue_conf);
    start_population();
    start(TTHC, "procedure", conf);
    wait_eq(db_proc, "SELECT count(*) FROM chain_step WHERE n = 1", n, "first steps started");
    lth_workcal_t *cal = NULL;
    ck_assert_msg(lth_workcal_load(cal_path, &cal, err, sizeof err) == 0, "%s", err);
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q = tk_sql_prepare(db, "SELECT s.started_at, s.due_at, d.step_due_at, d.due_at,"
                                         " d.authority FROM chain_step s JOIN dossier d"
                                         " USING(code) WHERE s.n = 1");
    int rows = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t started = sqlite3_column_int64(q, 0), due = sqlite3_column_int64(q, 1), want = 0;
        ck_assert_int_eq(lth_workcal_due(cal, started, 2, LTH_LIMIT_WORKING_DAYS, &want), 0);
        ck_assert_int_eq(due, want);
        ck_assert_int_eq(sqlite3_column_int64(q, 2), due); /* what the portal is told */
        /* The dossier's own limit (3 working days from submission) stays. */
        ck_assert_int_gt(sqlite3_column_int64(q, 3), due);
        ck_assert_str_eq((const char *)sqlite3_column_text(q, 4), DKKD);
        rows++;
    }
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    lth_workcal_destroy(&cal);
    ck_assert_int_eq(rows, n);
    stop_all_cleanly();
}
END_TEST

/* ---- item 7: the portal plays the applicants (plugin.simulate_*) ---- */

/* The portal pays every online dossier of a procedure with a fee when it is
 * received (a declined card first now and then) and rates every decided
 * dossier; the procedure system accepts each, reporting counts them, and
 * the report equals the test's own figures from the procedure system's
 * records. */
START_TEST(portal_simulation_pays_and_rates_what_the_report_counts)
{
    ck_assert_int_ge(sodium_init(), 0);
    const int n = 20;
    start_population();
    start_portal_with("plugin.simulate_payments = 100\nplugin.simulate_ratings = 100\n"
                      "plugin.seed = 7\n");
    decide_all(n, 0);
    /* Eligible: online, a fee, received. SYN-1.000001 is free. */
    const char *eligible_sql =
        "SELECT count(*) FROM dossier d WHERE d.channel = 1 AND d.procedure_code IN"
        " ('SYN-1.000003', 'SYN-1.000004') AND EXISTS (SELECT 1 FROM history h WHERE"
        " h.code = d.code AND h.status = 1)";
    long long eligible = sql_int(db_proc, eligible_sql);
    long long decided =
        sql_int(db_proc, "SELECT count(DISTINCT code) FROM history WHERE status = 4");
    ck_assert_int_gt(eligible, 0);
    ck_assert_int_gt(decided, 0);
    wait_eq(db_proc, "SELECT count(DISTINCT code) FROM payment WHERE outcome = 1", eligible,
            "dossiers paid through the portal");
    wait_eq(db_proc, "SELECT count(*) FROM feedback", decided, "dossiers rated");
    /* Only those: no counter dossier, no free procedure, each paid once
     * with the catalogue's fee; nothing refused. */
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM payment p JOIN dossier d USING(code)"
                                      " WHERE d.channel <> 1 OR d.procedure_code ="
                                      " 'SYN-1.000001'"),
                     0);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM payment WHERE outcome = 1"), eligible);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM payment p JOIN dossier d USING(code)"
                                      " WHERE p.outcome = 1 AND p.amount <> CASE d.procedure_code"
                                      " WHEN 'SYN-1.000003' THEN 200000 ELSE 50000 END"),
                     0);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM rejected"), 0);
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM applicant WHERE paid = 1"), eligible);
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM applicant WHERE rated = 1"), decided);
    /* The portal confirmed every dossier's latest change, and reporting
     * holds those changes and the receipts. */
    wait_eq(db_proc, "SELECT count(*) FROM dossier WHERE portal_seq = seq", n,
            "dossiers whose latest change the portal confirmed");
    long long payments = sql_int(db_proc, "SELECT count(*) FROM payment");
    wait_eq(db_report, "SELECT count(*) FROM payment", payments, "payments at reporting");
    wait_eq(db_report, "SELECT count(*) FROM feedback", decided, "ratings at reporting");
    wait_eq(db_report, "SELECT sum(seq) FROM dossier",
            sql_int(db_proc, "SELECT sum(seq) FROM dossier"), "every change at reporting");
    wait_receipts_reported(n);

    figures_t rows[16], total;
    size_t n_rows = recompute(rows, 16, &total);
    ck_assert_int_eq(total.paid, eligible);
    ck_assert_int_eq(total.paid_online, eligible);
    ck_assert_int_eq(total.rated, decided);
    ck_assert(total.rating_sum / (double)total.rated >= 1.0);
    adp_client_t *r = hubfix_connect(&fix, CCHC);
    json_t *doc = tk_report_query(r, REPORT, "{\"format\":\"json\"}");
    json_t *jrows = json_object_get(doc, "rows");
    ck_assert_uint_eq(json_array_size(jrows), n_rows);
    for (size_t i = 0; i < n_rows; i++)
        assert_row(json_array_get(jrows, i), &rows[i], rows[i].procedure);
    assert_row(json_object_get(doc, "total"), &total, "total");
    ck_assert(tk_json_num(json_object_get(doc, "total"), "pct_paid_online") > 0);
    ck_assert(tk_json_num(json_object_get(doc, "total"), "avg_satisfaction") >= 1.0);
    json_decref(doc);
    adp_close(&r);
    stop_all_cleanly();
}
END_TEST

/* A payment is checked against the fee of the catalogue in force: after a
 * reload (SIGHUP) amending the fee, the new fee is accepted and the old one
 * refused with a reason naming both. */
static void send_payment(adp_client_t *c, const char *code, uint64_t fee, const char *ref)
{
    lth_payment_t p = {.fee_vnd = fee,
                       .amount_vnd = fee,
                       .outcome = LTH_PAYMENT_PAID,
                       .channel = LTH_CHANNEL_ONLINE};
    snprintf(p.dossier_code, sizeof p.dossier_code, "%s", code);
    snprintf(p.procedure_code, sizeof p.procedure_code, "SYN-1.000004");
    snprintf(p.transaction_ref, sizeof p.transaction_ref, "%s", ref);
    SEND_ENCODED(c, payment, LTH_SERVICE_PAYMENT_STATUS, LTH_PAYMENT_TYPE, &p);
}

START_TEST(payment_fee_follows_the_catalogue_in_force)
{
    start_population();
    char shipped[PATH_MAX], tsv[PATH_MAX], status[PATH_MAX + 8];
    snprintf(shipped, sizeof shipped, "%s/deploy/catalogue-hn.tsv", getenv("HUB_SOURCE_DIR"));
    snprintf(tsv, sizeof tsv, "%s/catalogue-hn.tsv", fix.dir);
    snprintf(status, sizeof status, "%s.status", tsv);
    char *v1 = tk_read_file(shipped);
    ck_assert_ptr_nonnull(v1);
    tk_write_file(tsv, v1);
    char conf[3 * PATH_MAX + 1024];
    snprintf(conf, sizeof conf,
             "plugin.db = %s\nplugin.dossiers = 2\nplugin.rate_per_tick = 4\n"
             "plugin.population_citizens = %d\nplugin.invalid_percent = 0\n"
             "plugin.unknown_percent = 0\nplugin.procedures = SYN-1.000004\n"
             "plugin.catalogue_file = %s\n",
             db_proc, CITIZENS, tsv);
    pid_t proc = start(TTHC, "procedure", conf);
    wait_eq(db_proc, "SELECT count(*) FROM dossier", 2, "dossiers submitted");
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q = tk_sql_prepare(db, "SELECT code FROM dossier ORDER BY idx");
    char codes[2][LTH_DOSSIER_CODE_MAX];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
        snprintf(codes[i], sizeof codes[i], "%s", (const char *)sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    sqlite3_close_v2(db);

    /* Enterprise registration's fee amended from 50 000 to 65 000 VND. */
    const char *row = strstr(v1, "\tEnterprise registration\t");
    ck_assert_ptr_nonnull(row);
    const char *fee = strstr(row, "\t3 working days\t50000\t");
    ck_assert_ptr_nonnull(fee);
    size_t at = (size_t)(fee - v1) + strlen("\t3 working days\t");
    char *v2 = malloc(strlen(v1) + 1);
    snprintf(v2, strlen(v1) + 1, "%.*s65%s", (int)at, v1, v1 + at + 2);
    tk_write_file(tsv, v2);
    free(v2);
    free(v1);
    kill(proc, SIGHUP);
    ck_assert_msg(tk_wait_file_contains(status, "amended SYN-1.000004", 10000),
                  "the reload amending the fee was not published (%s)", status);

    adp_client_t *c = hubfix_connect(&fix, PORTAL);
    send_payment(c, codes[0], 50000, "PAYGOV-OLD-FEE");
    send_payment(c, codes[1], 65000, "PAYGOV-NEW-FEE");
    adp_close(&c);
    wait_eq(db_proc,
            "SELECT count(*) FROM rejected WHERE service = 'payment.status/v1' AND reason ="
            " 'fee_vnd 50000 is not the fee the catalogue sets for SYN-1.000004 (65000 VND)'",
            1, "the old fee refused, naming the new");
    wait_eq(db_proc,
            "SELECT count(*) FROM payment WHERE transaction_ref = 'PAYGOV-NEW-FEE' AND"
            " amount = 65000",
            1, "the new fee accepted");
    ck_assert_int_eq(
        sql_int(db_proc, "SELECT count(*) FROM payment WHERE transaction_ref = 'PAYGOV-OLD-FEE'"),
        0);
    stop_all_cleanly();
}
END_TEST

TK_MAIN("e2e_portal_sync",
        TK_CASE("portal_sync", setup, teardown, 300,
                illegal_transitions_and_forged_results_are_refused,
                synchronisation_profile_and_report_match_the_trails,
                dossier_passes_several_authorities, chain_steps_count_working_days,
                portal_simulation_pays_and_rates_what_the_report_counts,
                payment_fee_follows_the_catalogue_in_force))
