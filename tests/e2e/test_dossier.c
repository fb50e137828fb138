/* End to end: the dossier flow over real processes — hubd, and hub-adapter
 * running the population, procedure, sector, portal and report plugins.
 *
 * The procedure system submits SYNTHETIC dossiers from its generator; since
 * the generator is deterministic, the test knows which applicants have an
 * invalid ID number or do not exist. The test reads the adapters' SQLite
 * files (read-only, while they run) and asks the report over the hub:
 * - the full flow: every dossier decided, the portal's view equal to the
 *   procedure system's statuses, the report's counts adding up and equal to
 *   what the test computes from the procedure system's history;
 * - invalid ID numbers and unknown citizens: NOT_ACCEPTED (refused at
 *   reception, not RETURNED) with the reason, never forwarded;
 * - the portal offline while statuses are produced, then back: it catches up;
 * - duplicate and out-of-order changes sent straight to the portal and the
 *   report: older ones ignored, repeated ones counted once;
 * - the sector system and then the procedure system killed with SIGKILL in
 *   the middle of the flow: no dossier lost, none submitted or decided twice;
 * - delegation (ủy quyền): the hub routes an authority's dossiers to its
 *   delegate, which resolves them; the portal and the report name it;
 * - identity assurance and verification: a dossier whose applicant was
 *   authenticated below its procedure's level is not accepted before any
 *   identity check; enterprise registration confirms the declared identity
 *   (citizen.verify/v1) and does not accept a wrong declaration, naming the
 *   field;
 *   the population database answers under deploy/disclosure-demo.conf.
 * The hub runs with the demo's data-sharing agreements
 * (deploy/policy-demo.conf): deny by default.
 */
#include "domain.pb-c.h"
#include "hub_error.h"
#include "hubfix.h"
#include "tkcatalogue.h"
#include "lth_dossier.h"
#include "lth_report.h"
#include "lth_workcal.h"
#include "testkit.h"
#include "tkreport.h"
#include "tksql.h"

#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The members: tkcatalogue.h's dossier stack, and */
#define QHK "VN/GOV/HN-QHK/HOTICH" /* district civil status: a delegate */
#define CITIZENS 2000
#define WAIT_MS 120000

static hubfix_t fix;
static char db_proc[PATH_MAX], db_portal[PATH_MAX], db_report[PATH_MAX], db_dkkd[PATH_MAX],
    db_hotich[PATH_MAX], db_qhk[PATH_MAX];

/* The adapters this test started, to stop them and check their exits. */
typedef struct {
    const char *member;
    pid_t pid;
} running_t;
static running_t running[8];
static size_t n_running;
static int tick_ms = 100; /* of the next adapter started */
/* Shares of low-assurance applicants and wrong declarations of the next
 * procedure system started (and of the test's expectations). */
static int low_assurance_pct, mismatch_pct;

/* The demo's agreements (deploy/policy-demo.conf), and one for a district
 * that resolves civil-status dossiers under delegation. */
static void write_policy(void)
{
    char *demo = tk_demo_policy();
    char path[PATH_MAX];
    size_t len = strlen(demo) + 512;
    char *text = malloc(len);
    snprintf(text, len,
             "%s\nallow " QHK " -> " TTHC "/dossier.status/v1 purpose \"delegated civil "
             "status\"\n",
             demo);
    snprintf(path, sizeof path, "%s/policy.conf", fix.dir);
    tk_write_file(path, text);
    snprintf(path, sizeof path, "%s/delegations.conf", fix.dir);
    tk_write_file(path, "# none yet\n");
    free(text);
    free(demo);
}


/* The procedure plugin's catalogue settings (tkcatalogue.h). */
static char catalogue_conf[3 * PATH_MAX];

static void setup(void)
{
    hubfix_init(&fix, "redelivery_ms = 1000\npolicy_file = policy.conf\n"
                      "delegations_file = delegations.conf");
    write_policy();
    HUBFIX_ADD_MEMBERS(&fix, POP, TTHC, PORTAL, REPORT, DKKD, HOTICH, CCHC, QHK);
    hubfix_start(&fix);
    tk_dossier_db_paths(fix.dir, db_proc, db_portal, db_report);
    snprintf(db_dkkd, sizeof db_dkkd, "%s/sector-dkkd.db", fix.dir);
    snprintf(db_hotich, sizeof db_hotich, "%s/sector-hotich.db", fix.dir);
    snprintf(db_qhk, sizeof db_qhk, "%s/sector-qhk.db", fix.dir);
    n_running = 0;
    tick_ms = 100;
    tk_catalogue_use_shipped(fix.dir, catalogue_conf, sizeof catalogue_conf);
}

static void teardown(void)
{
    low_assurance_pct = mismatch_pct = 0;
    lth_procedure_release_all();
    hubfix_cleanup(&fix);
}

static void remember(const char *member, pid_t pid)
{
    for (size_t i = 0; i < n_running; i++) {
        if (!strcmp(running[i].member, member)) {
            running[i].pid = pid;
            return;
        }
    }
    ck_assert_uint_lt(n_running, 8);
    running[n_running++] = (running_t){member, pid};
}

static pid_t start(const char *member, const char *plugin, const char *conf)
{
    pid_t pid = hubfix_start_ticking(&fix, member, plugin, tick_ms, conf);
    remember(member, pid);
    return pid;
}

static void start_population(void)
{
    char conf[PATH_MAX + 512];
    const char *src = getenv("HUB_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    snprintf(conf, sizeof conf,
             "plugin.db = %s/pop.db\nplugin.citizens = %d\n"
             "plugin.disclosure_file = %s/deploy/disclosure-demo.conf\nlog_level = debug\n",
             fix.dir, CITIZENS, src);
    start(POP, "population", conf);
}

/* The procedure system's generator as configured below, for the test's own
 * expectations. */
static const char *const test_procedures[] = {"SYN-1.000001", "SYN-1.000002", "SYN-1.000003",
                                              "SYN-1.000004"};

static pid_t start_procedure(int dossiers, int invalid_pct, int unknown_pct, const char *procs,
                             int day_ms, int rate)
{
    char conf[3 * PATH_MAX + 1024];
    snprintf(conf, sizeof conf,
             "plugin.db = %s\nplugin.dossiers = %d\nplugin.rate_per_tick = %d\n"
             "plugin.population_citizens = %d\nplugin.invalid_percent = %d\n"
             "plugin.unknown_percent = %d\nplugin.procedures = %s\nplugin.day_ms = %d\n"
             "plugin.low_assurance_percent = %d\nplugin.mismatch_percent = %d\n%s",
             db_proc, dossiers, rate, CITIZENS, invalid_pct, unknown_pct, procs, day_ms,
             low_assurance_pct, mismatch_pct, catalogue_conf);
    return start(TTHC, "procedure", conf);
}

static pid_t start_sector(const char *member, const char *db)
{
    char conf[512];
    snprintf(conf, sizeof conf, "plugin.db = %s\nplugin.seed = 2\nplugin.late_percent = 25\n", db);
    return start(member, "sector", conf);
}

static pid_t start_portal(void)
{
    char conf[512];
    snprintf(conf, sizeof conf, "plugin.db = %s\n", db_portal);
    return start(PORTAL, "portal", conf);
}

static pid_t start_report(void)
{
    char conf[512];
    snprintf(conf, sizeof conf, "plugin.db = %s\n", db_report);
    return start(REPORT, "report", conf);
}

/* Stops every adapter this test started and checks each exited cleanly (a
 * sanitizer report makes the exit status non-zero). */
static void stop_all_cleanly(void)
{
    for (size_t i = 0; i < n_running; i++) {
        int status = tk_stop(running[i].pid);
        ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "the adapter of %s did not exit cleanly (status %d)", running[i].member,
                      status);
    }
    n_running = 0;
    tick_ms = 100;
}

/* ---- reading the adapters' files ---- */

/* The shared readers (tksql.h) under this file's names. */
static sqlite3 *open_ro(const char *path)
{
    return tk_sql_open_ro(path);
}

static void attach(sqlite3 *db, const char *path, const char *name)
{
    char *sql = sqlite3_mprintf("ATTACH DATABASE %Q AS %s", path, name);
    ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "attach %s: %s", path,
                  sqlite3_errmsg(db));
    sqlite3_free(sql);
}

static long long sql_int(const char *path, const char *sql)
{
    return tk_sql_int(path, sql);
}

static bool wait_sql(const char *path, const char *sql, long long at_least, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        if (sql_int(path, sql) >= at_least)
            return true;
        tk_sleep_ms(100);
    }
    return false;
}

/* Done, returned after acceptance, or not accepted at reception. */
#define DECIDED "SELECT count(*) FROM dossier WHERE status IN (4, 5, 7)"

/* Dossiers whose latest change the portal (or the report) holds. */
static long long synced(const char *other, const char *table)
{
    if (access(db_proc, R_OK) != 0 || access(other, R_OK) != 0)
        return -1;
    sqlite3 *db = open_ro(db_proc);
    attach(db, other, "o");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM main.dossier d JOIN o.%s v ON v.code = d.code AND "
             "v.seq = d.seq AND v.status = d.status",
             table);
    sqlite3_stmt *q = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    return v;
}

/* Waits until n dossiers are decided and, for each file given, synced. */
static void wait_complete(int n, bool portal, bool report)
{
    long long decided = 0, p = 0, r = 0;
    for (int waited = 0; waited <= WAIT_MS; waited += 200) {
        decided = sql_int(db_proc, DECIDED);
        p = portal ? synced(db_portal, "view") : n;
        r = report ? synced(db_report, "dossier") : n;
        if (decided == n && p == n && r == n)
            return;
        tk_sleep_ms(200);
    }
    ck_abort_msg("after %d s: %lld of %d decided, portal has %lld, report %lld up to date",
                 WAIT_MS / 1000, decided, n, p, r);
}

/* ---- the report over the hub ---- */

/* ---- the checks every flow test makes ---- */

/* The test's own account of each dossier, from the generator and the
 * procedure system's file. */
/* Asserts that a "SELECT count(*) ..." query counts nothing. */
static void assert_count_zero(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q;
    q = tk_sql_prepare(db, sql);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_msg(sqlite3_column_int64(q, 0) == 0, "%lld rows for %s",
                  (long long)sqlite3_column_int64(q, 0), sql);
    sqlite3_finalize(q);
}

/* Dossier `code` (the row q is on: identity at column 4, the authority's
 * receipt at 5, status at 6, first note at 7) was not accepted at once:
 * its identity check says `identity`, it was never forwarded, and its
 * first note holds each of the NULL-terminated parts. */
static void assert_not_accepted(sqlite3_stmt *q, const char *code, const char *identity,
                                const char *const parts[])
{
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 4), identity);
    ck_assert_int_eq(sqlite3_column_int(q, 6), LTH_STATUS_NOT_ACCEPTED);
    ck_assert_int_eq(sqlite3_column_type(q, 5), SQLITE_NULL); /* not forwarded */
    const char *note = (const char *)sqlite3_column_text(q, 7);
    for (size_t i = 0; parts[i]; i++)
        ck_assert_msg(note && strstr(note, parts[i]), "%s: %s", code, note ? note : "(none)");
}
#define ASSERT_NOT_ACCEPTED(q, code, identity, ...)                                                \
    assert_not_accepted((q), (code), (identity), (const char *const[]){__VA_ARGS__, NULL})

static void assert_flow(int n, int invalid_pct, int unknown_pct, const char *const *procs,
                        size_t n_procs)
{
    const lth_procedure_t *pp[8];
    for (size_t i = 0; i < n_procs; i++)
        pp[i] = lth_procedure_find(procs[i]);
    lth_dossier_gen_t gen = {.seed = 1,
                             .population_seed = 1,
                             .population_citizens = CITIZENS,
                             .invalid_percent = (unsigned)invalid_pct,
                             .unknown_percent = (unsigned)unknown_pct,
                             .low_assurance_percent = (unsigned)low_assurance_pct,
                             .mismatch_percent = (unsigned)mismatch_pct,
                             .procedures = pp,
                             .n_procedures = n_procs};
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q = tk_sql_prepare(db, "SELECT idx, code, procedure_code, authority, identity,"
                                         " forwarded_at, status, (SELECT note FROM history h"
                                         " WHERE h.code = d.code AND h.seq = 1)"
                                         " FROM dossier d ORDER BY idx");
    int seen = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        long long idx = sqlite3_column_int64(q, 0);
        ck_assert_int_eq(idx, ++seen); /* 1..n, none twice, none skipped */
        lth_gen_dossier_t g;
        ck_assert_int_eq(lth_dossier_generate(&gen, (uint64_t)idx, &g), 0);
        const char *code = (const char *)sqlite3_column_text(q, 1);
        /* The national structure: agency code, yymmdd of receipt, number. */
        char want_tail[16];
        snprintf(want_tail, sizeof want_tail, "-%06lld", idx);
        ck_assert_msg(!strncmp(code, "000.00.01.H26-", 14) && strlen(code) == 27 &&
                          !strcmp(code + 20, want_tail),
                      "%s is not 000.00.01.H26-yymmdd-%06lld", code, idx);
        ck_assert_str_eq((const char *)sqlite3_column_text(q, 2), g.procedure->code);
        ck_assert_str_eq((const char *)sqlite3_column_text(q, 3), g.procedure->authority);
        const char *identity = (const char *)sqlite3_column_text(q, 4);
        int status = sqlite3_column_int(q, 6);
        ck_assert_ptr_nonnull(identity);
        if (g.assurance.level < g.procedure->required_assurance) {
            /* Not accepted at once, whoever the applicant: no identity check. */
            ASSERT_NOT_ACCEPTED(q, code, "ASSURANCE", "mức độ 2", "59/2022",
                                "authenticated at level 1");
            continue;
        }
        if (g.applicant_kind == LTH_APPLICANT_CITIZEN && g.declared_wrong &&
            g.procedure->identity_check == LTH_CHECK_VERIFY) {
            ASSERT_NOT_ACCEPTED(q, code, "MISMATCH", "không khớp",
                                "(date_of_birth does not match)");
            continue;
        }
        switch (g.applicant_kind) {
        case LTH_APPLICANT_INVALID_ID:
            ASSERT_NOT_ACCEPTED(q, code, "INVALID_KEY", "không hợp lệ", "(");
            break;
        case LTH_APPLICANT_UNKNOWN:
            ASSERT_NOT_ACCEPTED(q, code, "NOT_FOUND", "không tìm thấy",
                                "no record with this personal ID number");
            break;
        default:
            ck_assert_str_eq(identity, "FOUND");
            ck_assert_int_ne(sqlite3_column_type(q, 5), SQLITE_NULL);
            ck_assert(status == LTH_STATUS_DONE || status == LTH_STATUS_RETURNED);
            break;
        }
    }
    sqlite3_finalize(q);
    ck_assert_int_eq(seen, n);
    /* Decided once: one final change per dossier, and the sequences 1..seq
     * without a gap. */
    assert_count_zero(db, "SELECT count(*) FROM (SELECT code FROM history"
                          " WHERE status IN (4, 5, 7) GROUP BY code"
                          " HAVING count(*) <> 1)");
    assert_count_zero(db, "SELECT count(*) FROM dossier d WHERE seq <>"
                          " (SELECT count(*) FROM history h WHERE h.code = d.code)"
                          " OR seq <> (SELECT max(seq) FROM history h"
                          " WHERE h.code = d.code)");
    sqlite3_close_v2(db);
}

/* Each sector system got exactly the dossiers forwarded to it, and every
 * step of its plans reached the procedure system once. */
static void assert_sector(const char *member, const char *db_path)
{
    sqlite3 *db = open_ro(db_proc);
    attach(db, db_path, "s");
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM main.dossier WHERE authority = '%s' AND forwarded_at"
             " IS NOT NULL), (SELECT count(*) FROM s.dossier),"
             " (SELECT count(*) FROM s.dossier sd JOIN main.dossier d USING(code)"
             "   WHERE d.authority_seq <> (SELECT max(n) FROM s.step WHERE code = sd.code)),"
             " (SELECT count(*) FROM s.step WHERE sent = 0)",
             member);
    sqlite3_stmt *q = tk_sql_prepare(db, sql);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1));
    ck_assert_int_eq(sqlite3_column_int64(q, 2), 0);
    ck_assert_int_eq(sqlite3_column_int64(q, 3), 0);
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
}

/* The report's counts add up and equal the test's own count from the
 * procedure system's file. */
static void assert_report(int n)
{
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q =
        tk_sql_prepare(db, "SELECT coalesce(sum(status = 4 AND decided_at <= due_at), 0),"
                           " coalesce(sum(status = 4 AND decided_at > due_at), 0),"
                           " coalesce(sum(status = 5), 0), coalesce(sum(status = 7), 0)"
                           " FROM dossier");
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    long long on_time = sqlite3_column_int64(q, 0), late = sqlite3_column_int64(q, 1),
              returned = sqlite3_column_int64(q, 2), not_accepted = sqlite3_column_int64(q, 3);
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    ck_assert_int_eq(on_time + late + returned + not_accepted, n);

    adp_client_t *c = hubfix_connect(&fix, CCHC);
    json_t *doc = tk_report_query(c, REPORT, "{\"format\":\"json\"}");
    json_t *total = json_object_get(doc, "total");
    ck_assert_int_eq(tk_json_int(total, "dossiers"), n);
    ck_assert_int_eq(tk_json_int(total, "on_time"), on_time);
    ck_assert_int_eq(tk_json_int(total, "late"), late);
    ck_assert_int_eq(tk_json_int(total, "returned"), returned);
    ck_assert_int_eq(tk_json_int(total, "not_accepted"), not_accepted);
    ck_assert_int_eq(tk_json_int(total, "overdue"), 0);
    ck_assert_int_eq(tk_json_int(total, "in_progress"), 0);
    long long sum = 0;
    json_t *rows = json_object_get(doc, "rows"), *row;
    size_t i;
    json_array_foreach(rows, i, row)
    {
        ck_assert_int_eq(tk_json_int(row, "dossiers"),
                         tk_json_int(row, "on_time") + tk_json_int(row, "late") +
                             tk_json_int(row, "overdue") + tk_json_int(row, "in_progress") +
                             tk_json_int(row, "returned") + tk_json_int(row, "not_accepted"));
        sum += tk_json_int(row, "dossiers");
    }
    ck_assert_int_eq(sum, n);
    json_decref(doc);

    /* The same as a table and as CSV. */
    adp_reply_t reply;
    ck_assert_int_eq(adp_request(c, REPORT, "report.query/v1", "application/json",
                                 "{\"format\":\"table\"}", 18, 0, 10000, &reply),
                     0);
    ck_assert_str_eq(reply.content_type, "text/plain; charset=utf-8");
    char *text = strndup((const char *)reply.payload, reply.payload_len);
    ck_assert_ptr_nonnull(strstr(text, "dossiers  on time  late  overdue  in progress  returned"));
    ck_assert_msg(strstr(text, "  satisfaction  not accepted\n"), "%s", text);
    char want[64];
    snprintf(want, sizeof want, "%*d  %*lld  %*lld", 8, n, 7, on_time, 4, late);
    ck_assert_msg(strstr(strstr(text, "\ntotal "), want), "%s\nwanted %s", text, want);
    free(text);
    adp_reply_free(&reply);
    ck_assert_int_eq(adp_request(c, REPORT, "report.query/v1", "application/json",
                                 "{\"format\":\"csv\",\"authority\":\"" DKKD "\"}",
                                 strlen("{\"format\":\"csv\",\"authority\":\"" DKKD "\"}"), 0,
                                 10000, &reply),
                     0);
    ck_assert_str_eq(reply.content_type, "text/csv; charset=utf-8");
    text = strndup((const char *)reply.payload, reply.payload_len);
    ck_assert_msg(!strncmp(text, "procedure_code,procedure_name,authority,dossiers,", 49), "%s",
                  text);
    ck_assert_ptr_null(strstr(text, HOTICH));
    free(text);
    adp_reply_free(&reply);
    adp_close(&c);
}

/* No adapter log holds an applicant's personal ID number. */
static void assert_no_personal_data_logged(void)
{
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q = tk_sql_prepare(db, "SELECT applicant FROM dossier");
    const char *members[] = {POP, TTHC, PORTAL, REPORT, DKKD, HOTICH};
    char *logs[6];
    for (int i = 0; i < 6; i++) {
        char path[PATH_MAX], slug[128];
        snprintf(slug, sizeof slug, "%s", members[i]);
        for (char *p = slug; *p; p++)
            if (*p == '/')
                *p = '.';
        snprintf(path, sizeof path, "%s/adapter-%s.log", fix.dir, slug);
        logs[i] = tk_read_file(path);
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(q, 0);
        for (int i = 0; i < 6; i++)
            ck_assert_msg(!logs[i] || strlen(id) < 10 || !strstr(logs[i], id),
                          "the log of %s holds an applicant's ID number", members[i]);
    }
    for (int i = 0; i < 6; i++)
        free(logs[i]);
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
}

/* ---- tests ---- */

/* The population database, the portal (when `portal`), reporting, the
 * sector systems of DKKD and HOTICH, and the procedure system with n
 * dossiers of procs (10% invalid, 10% unknown applicants, day_ms a day, 5
 * a tick), until every dossier is complete (wait_complete). */
static void run_procedure(int n, bool portal, const char *procs, int day_ms)
{
    start_population();
    if (portal)
        start_portal();
    start_report();
    start_sector(DKKD, db_dkkd);
    start_sector(HOTICH, db_hotich);
    start_procedure(n, 10, 10, procs, day_ms, 5);
    wait_complete(n, portal, true);
}

START_TEST(full_flow)
{
    const int n = 40;
    run_procedure(n, true, "SYN-1.000001,SYN-1.000002,SYN-1.000003,SYN-1.000004", 400);
    assert_flow(n, 10, 10, test_procedures, 4);
    assert_sector(DKKD, db_dkkd);
    assert_sector(HOTICH, db_hotich);
    assert_report(n);
    /* Both kinds of return happened (assert_flow checked each dossier
     * against the generator); the sectors' seed and shares give
     * supplement-requested and late dossiers too. */
    ck_assert_int_gt(
        sql_int(db_proc, "SELECT count(*) FROM dossier WHERE identity = 'INVALID_KEY'"), 0);
    ck_assert_int_gt(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE identity = 'NOT_FOUND'"),
                     0);
    ck_assert_int_gt(sql_int(db_proc, "SELECT count(*) FROM history WHERE status = 3"), 0);
    ck_assert_int_gt(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE status = 4 AND "
                                      "decided_at > due_at"),
                     0);
    /* Every late dossier was marked OVERDUE before it was done. */
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE status = 4 AND "
                                      "decided_at > due_at AND overdue_sent = 0"),
                     0);
    /* Nothing was applied twice at the portal: one applied change per change sent. */
    ck_assert_int_eq(sql_int(db_portal, "SELECT value FROM meta WHERE key = 'applied'"),
                     sql_int(db_proc, "SELECT count(*) FROM history"));
    assert_no_personal_data_logged();
    stop_all_cleanly();
}
END_TEST

START_TEST(invalid_and_unknown_applicants_are_not_accepted)
{
    const int n = 10;
    start_population();
    start_portal();
    start_report();
    start_sector(DKKD, db_dkkd);
    start_procedure(n, 50, 50, "SYN-1.000004", 1000, 5);
    wait_complete(n, true, true);
    const char *const procs[] = {"SYN-1.000004"};
    assert_flow(n, 50, 50, procs, 1);
    /* Not accepted (từ chối tiếp nhận) at the first change, with the
     * population database's reason; the sector system never saw them, and
     * none is counted as returned. */
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM view WHERE status = 7 AND seq = 1 "
                                        "AND actor = '" TTHC "'"),
                     n);
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM view WHERE note LIKE "
                                        "'%không hợp lệ (%' OR note LIKE '%không tìm thấy%'"),
                     n);
    ck_assert_int_le(sql_int(db_dkkd, "SELECT count(*) FROM dossier"), 0);
    /* The reasons say what is wrong with an invalid number. */
    ck_assert_int_gt(sql_int(db_portal, "SELECT count(*) FROM view WHERE note LIKE '%digit%'"), 0);
    assert_report(n);
    assert_no_personal_data_logged();
    stop_all_cleanly();
}
END_TEST

START_TEST(assurance_and_declared_identity_are_checked)
{
    /* Birth registration asks for level 1 and looks the parent up;
     * enterprise registration asks for level 2 and only verifies. */
    const int n = 40;
    low_assurance_pct = 30;
    mismatch_pct = 30;
    run_procedure(n, true, "SYN-1.000001,SYN-1.000004", 400);
    const char *const procs[] = {"SYN-1.000001", "SYN-1.000004"};
    assert_flow(n, 10, 10, procs, 2); /* each dossier against the generator */
    /* Both refusals happened, each only where it applies. */
    ck_assert_int_gt(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE identity = 'ASSURANCE' "
                                      "AND procedure_code = 'SYN-1.000004'"),
                     0);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE identity = 'ASSURANCE' "
                                      "AND procedure_code = 'SYN-1.000001'"),
                     0);
    ck_assert_int_gt(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE identity = 'MISMATCH' "
                                      "AND procedure_code = 'SYN-1.000004'"),
                     0);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE identity = 'MISMATCH' "
                                      "AND procedure_code = 'SYN-1.000001'"),
                     0);
    /* The portal shows the applicant why. */
    ck_assert_int_gt(sql_int(db_portal, "SELECT count(*) FROM view WHERE status = 7 AND note LIKE "
                                        "'%electronic identification level 2%'"),
                     0);
    /* The authority received only the dossiers that passed both. */
    ck_assert_int_eq(sql_int(db_dkkd, "SELECT count(*) FROM dossier"),
                     sql_int(db_proc, "SELECT count(*) FROM dossier WHERE procedure_code = "
                                      "'SYN-1.000004' AND identity = 'FOUND'"));
    assert_report(n);
    assert_no_personal_data_logged();
    /* The population database verified (never disclosed) for enterprise
     * registration and withheld what birth registration may not receive. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/adapter-VN.GOV.BCA.CSDLQGDC.log", fix.dir);
    char *log = tk_read_file(path);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(strstr(log, "citizen.verify from " TTHC ": status=ok"), "%s", log);
    ck_assert_msg(strstr(log, "citizen.lookup from " TTHC ": status=ok"), "%s", log);
    bool withheld = false;
    for (const char *l = log; (l = strstr(l, "citizen.lookup from " TTHC)) != NULL; l++) {
        const char *w = strstr(l, " withheld=");
        const char *eol = strchr(l, '\n');
        if (w && (!eol || w < eol) && atoi(w + 10) > 0)
            withheld = true;
    }
    ck_assert_msg(withheld, "no look-up withheld a field: %s", log);
    free(log);
    stop_all_cleanly();
}
END_TEST

START_TEST(portal_offline_then_back_catches_up)
{
    const int n = 20;
    /* Every status produced while the portal is not running. */
    run_procedure(n, false, "SYN-1.000001,SYN-1.000002,SYN-1.000004", 300);
    ck_assert_int_eq(access(db_portal, F_OK), -1);
    long long changes = sql_int(db_proc, "SELECT count(*) FROM history");
    ck_assert_int_gt(changes, 2 * n);
    start_portal();
    wait_complete(n, true, true);
    ck_assert_int_eq(sql_int(db_portal, "SELECT value FROM meta WHERE key = 'applied'"), changes);
    tk_sleep_ms(1500); /* past a redelivery period: nothing more arrives */
    ck_assert_int_eq(sql_int(db_portal, "SELECT coalesce(sum(changes), 0) FROM view"), changes);
    const char *const procs[] = {"SYN-1.000001", "SYN-1.000002", "SYN-1.000004"};
    assert_flow(n, 10, 10, procs, 3);
    stop_all_cleanly();
}
END_TEST

/* Sends one DossierStatusChange as the client's member and waits for the ACK. */
static void send_change(adp_client_t *c, const char *to, const char *code, int status, uint64_t seq,
                        uint64_t at_us, uint64_t due_us)
{
    lth_status_change_t ch;
    memset(&ch, 0, sizeof ch);
    snprintf(ch.dossier_code, sizeof ch.dossier_code, "%s", code);
    ch.status = status;
    snprintf(ch.actor, sizeof ch.actor, TTHC);
    ch.at_us = at_us;
    ch.sequence = seq;
    snprintf(ch.note, sizeof ch.note, "test change %llu", (unsigned long long)seq);
    snprintf(ch.procedure_code, sizeof ch.procedure_code, "SYN-1.000004");
    snprintf(ch.authority, sizeof ch.authority, DKKD);
    ch.due_at_us = due_us;
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(lth_status_change_encode(&ch, &buf, &len), 0);
    int rc = adp_send_event(c, to, "dossier.status/v1", LTH_STATUS_CHANGE_TYPE, buf, len, 0, 10000,
                            NULL);
    free(buf);
    ck_assert_msg(rc == 0, "send: %s", adp_last_error(c));
}

#define COUNTER(name) "SELECT value FROM meta WHERE key = '" name "'"

START_TEST(duplicate_and_out_of_order_changes)
{
    start_portal();
    start_report();
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    uint64_t now = (uint64_t)time(NULL) * 1000000u;
    uint64_t due = now + 3600000000ull;
    const char *targets[] = {PORTAL, REPORT};
    for (int t = 0; t < 2; t++) {
        /* A: 1, 3, then 2 (older than 3), then 3 again (a duplicate). */
        send_change(c, targets[t], "SYN-TEST-A", LTH_STATUS_RECEIVED, 1, now, due);
        send_change(c, targets[t], "SYN-TEST-A", LTH_STATUS_DONE, 3, now + 2, due);
        send_change(c, targets[t], "SYN-TEST-A", LTH_STATUS_PROCESSING, 2, now + 1, due);
        send_change(c, targets[t], "SYN-TEST-A", LTH_STATUS_DONE, 3, now + 2, due);
        /* B: the last change first; the earlier ones are all older. */
        send_change(c, targets[t], "SYN-TEST-B", LTH_STATUS_RETURNED, 2, now + 5, due);
        send_change(c, targets[t], "SYN-TEST-B", LTH_STATUS_RECEIVED, 1, now + 4, due);
        /* C: the same change twice. */
        send_change(c, targets[t], "SYN-TEST-C", LTH_STATUS_PROCESSING, 1, now, due);
        send_change(c, targets[t], "SYN-TEST-C", LTH_STATUS_PROCESSING, 1, now, due);
    }
    /* Something that is not a status change is refused and counted. */
    ck_assert_int_eq(adp_send_event(c, PORTAL, "dossier.status/v1", LTH_STATUS_CHANGE_TYPE,
                                    "\xff\x01", 2, 0, 10000, NULL),
                     0);
    const char *dbs[] = {db_portal, db_report};
    for (int t = 0; t < 2; t++) {
        ck_assert_msg(wait_sql(dbs[t],
                               "SELECT coalesce(sum(value), 0) FROM meta WHERE key IN ('applied',"
                               " 'ignored_older', 'ignored_duplicate')",
                               8, 20000),
                      "%s: not every change was handled", targets[t]);
        ck_assert_int_eq(sql_int(dbs[t], COUNTER("applied")), 4);           /* A1, A3, B2, C1 */
        ck_assert_int_eq(sql_int(dbs[t], COUNTER("ignored_older")), 2);     /* A2, B1 */
        ck_assert_int_eq(sql_int(dbs[t], COUNTER("ignored_duplicate")), 2); /* A3, C1 */
    }
    ck_assert(wait_sql(db_portal, COUNTER("refused"), 1, 20000));
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM view"), 3);
    ck_assert_int_eq(
        sql_int(db_portal, "SELECT count(*) FROM view WHERE code = 'SYN-TEST-A' AND status = 4 AND "
                           "seq = 3 AND changes = 2 AND note = 'test change 3'"),
        1);
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM view WHERE code = 'SYN-TEST-B' AND "
                                        "status = 5 AND seq = 2 AND changes = 1"),
                     1);
    ck_assert_int_eq(sql_int(db_portal, "SELECT count(*) FROM view WHERE code = 'SYN-TEST-C' AND "
                                        "status = 2 AND changes = 1"),
                     1);
    /* The report counts each dossier once: A done on time, B returned, C in
     * progress. */
    adp_client_t *q = hubfix_connect(&fix, CCHC);
    /* Deny by default: the reform office has no agreement to change the
     * portal's view. */
    ck_assert_int_eq(adp_send_event(q, PORTAL, "dossier.status/v1", LTH_STATUS_CHANGE_TYPE, "x", 1,
                                    0, 10000, NULL),
                     HUB_ENACK);
    ck_assert_int_eq(adp_last_nack_code(q), LTH__V1__NACK_CODE__NACK_FORBIDDEN);
    json_t *doc = tk_report_query(q, REPORT, "");
    json_t *total = json_object_get(doc, "total");
    ck_assert_int_eq(tk_json_int(total, "dossiers"), 3);
    ck_assert_int_eq(tk_json_int(total, "on_time"), 1);
    ck_assert_int_eq(tk_json_int(total, "returned"), 1);
    ck_assert_int_eq(tk_json_int(total, "in_progress"), 1);
    json_decref(doc);
    /* Requests the report cannot read are answered with what to fix. */
    const char *bad[][2] = {{"{\"format\":\"xml\"}", "format must be"},
                            {"{\"fromat\":\"csv\"}", "unknown member"},
                            {"[1,2]", "JSON object"},
                            {"{\"format\":\"csv\"", "JSON object"},
                            {"{\"authority\":\"nobody\"}", "authority must be a member id"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = tk_report_query(q, REPORT, bad[i][0]);
        const char *err = json_string_value(json_object_get(doc, "error"));
        ck_assert_msg(err && strstr(err, bad[i][1]), "%s: %s", bad[i][0], err ? err : "(none)");
        json_decref(doc);
    }
    adp_close(&q);
    adp_close(&c);
    stop_all_cleanly();
}
END_TEST

START_TEST(sector_and_procedure_killed_mid_flow_lose_nothing)
{
    const int n = 30;
    start_population();
    start_portal();
    start_report();
    pid_t sector = start_sector(DKKD, db_dkkd);
    tick_ms = 250; /* four dossiers a second */
    pid_t proc = start_procedure(n, 10, 10, "SYN-1.000004", 1000, 1);
    tick_ms = 100;
    /* The sector system dies once it has decided some dossiers and holds
     * others undecided. */
    ck_assert(wait_sql(db_dkkd, "SELECT count(*) FROM step WHERE sent = 1 AND status IN (4, 5)", 2,
                       60000));
    ck_assert_int_gt(sql_int(db_dkkd, "SELECT count(DISTINCT code) FROM step WHERE sent = 0"), 0);
    tk_kill9(sector);
    long long before = sql_int(db_proc, "SELECT count(*) FROM dossier");
    /* Dossiers keep coming meanwhile; the hub keeps them for the sector. */
    ck_assert(wait_sql(db_proc, "SELECT count(*) FROM dossier WHERE forwarded_at IS NOT NULL",
                       sql_int(db_proc, "SELECT count(*) FROM dossier WHERE forwarded_at IS NOT "
                                        "NULL") +
                           2,
                       30000));
    start_sector(DKKD, db_dkkd);
    /* Then the procedure system dies half-way through its dossiers. */
    ck_assert(wait_sql(db_proc, "SELECT count(*) FROM dossier", before + 4, 60000));
    tk_kill9(proc);
    long long submitted = sql_int(db_proc, "SELECT count(*) FROM dossier");
    ck_assert_int_lt(submitted, n);
    tk_sleep_ms(500);
    start_procedure(n, 10, 10, "SYN-1.000004", 1000, 5);
    wait_complete(n, true, true);
    const char *const procs[] = {"SYN-1.000004"};
    assert_flow(n, 10, 10, procs, 1);
    assert_sector(DKKD, db_dkkd);
    assert_report(n);
    tk_sleep_ms(1500); /* past a redelivery period */
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM dossier"), n);
    ck_assert_int_eq(
        sql_int(db_dkkd, "SELECT count(*) FROM dossier"),
        sql_int(db_proc, "SELECT count(*) FROM dossier WHERE forwarded_at IS NOT NULL"));
    assert_no_personal_data_logged();
    stop_all_cleanly();
}
END_TEST

START_TEST(delegated_authority_resolves_and_is_counted)
{
    /* Ủy quyền: the Department of Justice's civil-status office delegates
     * dossier.submit/v1 to the district's; the procedure system still
     * addresses the Department (its procedures' authority). */
    hubfix_stop(&fix);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/delegations.conf", fix.dir);
    tk_write_file(path, "delegate " HOTICH "/dossier.submit/v1 -> " QHK "\n");
    hubfix_start(&fix);
    const int n = 12;
    start_population();
    start_portal();
    start_report();
    start_sector(DKKD, db_dkkd);
    start_sector(QHK, db_qhk); /* HOTICH itself does not run */
    start_procedure(n, 10, 10, "SYN-1.000001,SYN-1.000004", 400, 4);
    wait_complete(n, true, true);
    const char *const procs[] = {"SYN-1.000001", "SYN-1.000004"};
    assert_flow(n, 10, 10, procs, 2);
    /* Every accepted civil-status dossier was resolved by the district. */
    long long civil = sql_int(db_proc, "SELECT count(*) FROM dossier WHERE authority = '" HOTICH
                                       "' AND forwarded_at IS NOT NULL");
    ck_assert_int_gt(civil, 0);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE resolver = '" QHK "'"),
                     civil);
    ck_assert_int_eq(sql_int(db_qhk, "SELECT count(*) FROM dossier"), civil);
    ck_assert_int_eq(sql_int(db_proc, "SELECT count(*) FROM dossier WHERE resolver IS NOT NULL "
                                      "AND authority <> '" HOTICH "'"),
                     0);
    /* The portal shows the district as the resolving authority, and the
     * report counts those dossiers under it. */
    ck_assert_int_eq(
        sql_int(db_portal, "SELECT count(*) FROM view WHERE authority = '" QHK "' AND actor = '" QHK
                           "' AND note LIKE '%ủy quyền%'"),
        sql_int(db_proc, "SELECT count(*) FROM dossier WHERE resolver = '" QHK "' AND status = 4"));
    adp_client_t *c = hubfix_connect(&fix, CCHC);
    json_t *doc = tk_report_query(c, REPORT, "{\"authority\":\"" QHK "\"}");
    ck_assert_int_eq(tk_json_int(json_object_get(doc, "total"), "dossiers"), civil);
    json_decref(doc);
    /* "Delegated by": per delegation and procedure, the dossiers carried
     * and those done on time and late, recomputed from the procedure
     * system's records (the authority addressed, the resolver, the DONE). */
    doc = tk_report_query(c, REPORT, "{\"format\":\"json\"}");
    json_t *dels = json_object_get(doc, "delegations");
    ck_assert_msg(json_is_array(dels), "no delegations section in the report");
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q =
        tk_sql_prepare(db, "SELECT d.authority, d.resolver, d.procedure_code, count(*),"
                           " sum(h.at_us IS NOT NULL AND (d.due_at = 0 OR h.at_us <= d.due_at)),"
                           " sum(h.at_us IS NOT NULL AND d.due_at > 0 AND h.at_us > d.due_at)"
                           " FROM dossier d LEFT JOIN history h ON h.code = d.code AND"
                           " h.status = 4 WHERE d.resolver IS NOT NULL AND d.resolver <>"
                           " d.authority GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
    size_t i = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        json_t *row = json_array_get(dels, i++);
        ck_assert_ptr_nonnull(row);
        ck_assert_str_eq(json_string_value(json_object_get(row, "delegated_by")),
                         (const char *)sqlite3_column_text(q, 0));
        ck_assert_str_eq(json_string_value(json_object_get(row, "delegate")),
                         (const char *)sqlite3_column_text(q, 1));
        ck_assert_str_eq(json_string_value(json_object_get(row, "procedure_code")),
                         (const char *)sqlite3_column_text(q, 2));
        long long carried = sqlite3_column_int64(q, 3), on_time = sqlite3_column_int64(q, 4),
                  late = sqlite3_column_int64(q, 5);
        ck_assert_int_eq(tk_json_int(row, "carried"), carried);
        ck_assert_int_eq(tk_json_int(row, "on_time"), on_time);
        ck_assert_int_eq(tk_json_int(row, "late"), late);
        double want = on_time + late ? 100.0 * (double)on_time / (double)(on_time + late) : 0.0;
        json_t *p = json_object_get(row, "pct_on_time");
        ck_assert(json_is_number(p));
        ck_assert_msg(fabs(json_number_value(p) - want) <= 0.051, "pct_on_time %.2f, want %.2f",
                      json_number_value(p), want);
    }
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    ck_assert_uint_eq(i, json_array_size(dels));
    ck_assert_uint_ge(i, 1);
    json_decref(doc);
    /* The table and the CSV carry the same section. */
    const char *fmts[] = {"{\"format\":\"csv\"}", "{\"format\":\"table\"}"};
    const char *needles[] = {"delegated_by,delegate,procedure_code,carried,on_time,late,"
                             "pct_on_time\r\n" HOTICH "," QHK ",SYN-1.000001,",
                             "Delegations (ủy quyền)"};
    for (int k = 0; k < 2; k++) {
        adp_reply_t reply;
        ck_assert_int_eq(adp_request(c, REPORT, "report.query/v1", "application/json", fmts[k],
                                     strlen(fmts[k]), 0, 10000, &reply),
                         0);
        char *body = strndup((const char *)reply.payload, reply.payload_len);
        adp_reply_free(&reply);
        ck_assert_msg(body && strstr(body, needles[k]), "%s", body ? body : "");
        free(body);
    }
    adp_close(&c);
    stop_all_cleanly();
}
END_TEST

/* With plugin.calendar the procedure system counts each dossier's limit in
 * working days and hours (deploy/calendar-vn.tsv): every due date it
 * stores is the one the working calendar gives for its receipt time. */
START_TEST(due_dates_follow_the_working_calendar)
{
    const int n = 12;
    char conf[4 * PATH_MAX + 512], cal_path[PATH_MAX], err[256];
    snprintf(cal_path, sizeof cal_path, "%s/deploy/calendar-vn.tsv", getenv("HUB_SOURCE_DIR"));
    snprintf(conf, sizeof conf,
             "plugin.db = %s\nplugin.dossiers = %d\nplugin.rate_per_tick = 4\n"
             "plugin.population_citizens = %d\nplugin.procedures = "
             "SYN-1.000001,SYN-1.000003,SYN-1.000004,SYN-1.000005\nplugin.calendar = %s\n%s",
             db_proc, n, CITIZENS, cal_path, catalogue_conf);
    start_population();
    start(TTHC, "procedure", conf);
    ck_assert(wait_sql(db_proc, "SELECT count(*) FROM dossier", n, 20000));
    lth_workcal_t *cal = NULL;
    ck_assert_msg(lth_workcal_load(cal_path, &cal, err, sizeof err) == 0, "%s", err);
    sqlite3 *db = open_ro(db_proc);
    sqlite3_stmt *q = tk_sql_prepare(db, "SELECT code, procedure_code, submitted_at, due_at FROM "
                                         "dossier");
    int rows = 0, working = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const lth_procedure_t *p = lth_procedure_find((const char *)sqlite3_column_text(q, 1));
        ck_assert_ptr_nonnull(p);
        int64_t at = sqlite3_column_int64(q, 2), due = sqlite3_column_int64(q, 3), want = 0;
        if (!strcmp(p->limit_text, "same working day"))
            ck_assert_int_eq(lth_workcal_due_same_day(cal, at, &want), 0);
        else
            ck_assert_int_eq(lth_workcal_due(cal, at, p->limit_amount, p->limit_unit, &want), 0);
        ck_assert_msg(due == want, "%s (%s, %s): due %lld, the calendar says %lld",
                      (const char *)sqlite3_column_text(q, 0), p->code, p->limit_text,
                      (long long)due, (long long)want);
        if (p->limit_unit != LTH_LIMIT_CALENDAR_DAYS)
            working++;
        rows++;
    }
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    lth_workcal_destroy(&cal);
    ck_assert_int_eq(rows, n);
    ck_assert_int_gt(working, 0);
    stop_all_cleanly();
    /* A calendar with a mistake stops the adapter with the line named. */
    char bad[PATH_MAX];
    snprintf(bad, sizeof bad, "%s/bad-calendar.tsv", fix.dir);
    tk_write_file(bad, "hours 08:00-12:00 13:00-17:00\nholiday 2026-13-01 x\n");
    snprintf(conf, sizeof conf, "plugin.db = %s\nplugin.calendar = %s\n%s", db_proc, bad,
             catalogue_conf);
    char *out = hubfix_adapter_refused(&fix, TTHC, "procedure", conf);
    TK_ASSERT_HOLDS(out, "bad-calendar.tsv:2", "YYYY-MM-DD");
    free(out);
}
END_TEST

TK_MAIN("e2e_dossier",
        TK_CASE("dossier", setup, teardown, 300, full_flow,
                invalid_and_unknown_applicants_are_not_accepted,
                assurance_and_declared_identity_are_checked, portal_offline_then_back_catches_up,
                duplicate_and_out_of_order_changes,
                sector_and_procedure_killed_mid_flow_lose_nothing,
                delegated_authority_resolves_and_is_counted, due_dates_follow_the_working_calendar))
