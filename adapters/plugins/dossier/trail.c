/* lth-trail — prints each dossier's trail through the hub from the SQLite
 * files of the dossier adapters: submitted (procedure system) → identity
 * verified or not (population database) → forwarded to the authority →
 * every status change and the decision → the status the portal shows →
 * how the report counts it. Reads the files read-only, while the adapters
 * run.
 *
 *   lth-trail --procedure FILE [--portal FILE] [--report FILE]
 *             [--wait N] [--timeout SECONDS] [--summary]
 *
 * --wait N waits until the procedure system has N dossiers, all decided
 * (DONE, RETURNED, NOT_ACCEPTED, WITHDRAWN or RESULT_HANDED_OVER), and the portal and the report
 * (when given) hold each one's latest change; exit status 1 if that does not happen within the
 * timeout (default 60 s). --summary prints one line of counts instead of
 * the trails: dossiers, decided, open, overdue (open past the due time),
 * portal_synced and report_synced (holding the dossier's latest change). Prints no personal data
 * (no applicant ID numbers).
 *
 * Procedure names come from the catalogue the procedure system holds in
 * force, which it writes into its own file on each (re)load (table
 * `catalogue`, catalogue_copy.h): a procedure added or amended by a reload
 * is named as the reload says, a repealed one keeps its name.
 */
#include "hub_error.h"
#include "hub_clock.h"
#include "lth_appdb.h"
#include "lth_dossier.h"
#include "lth_report.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *procedure, *portal, *report;
} trail_files_t;

typedef struct {
    long long dossiers, decided, overdue, portal_synced, report_synced;
} trail_counts_t;

static void trail_since(char *out, size_t size, uint64_t from, uint64_t at)
{
    double s = at >= from ? (double)(at - from) / 1e6 : -(double)(from - at) / 1e6;
    if (s < 1 && s > -1)
        snprintf(out, size, "+%.0f ms", s * 1000);
    else
        snprintf(out, size, "+%.1f s", s);
}

/* Opens the procedure file and attaches the others as portal / report. */
static sqlite3 *trail_open(const trail_files_t *f, bool quiet)
{
    sqlite3 *db = NULL;
    char err[512];
    if (access(f->procedure, R_OK) != 0 ||
        lth_appdb_open_readonly(f->procedure, &db, err, sizeof err) != 0) {
        if (!quiet)
            fprintf(stderr, "lth-trail: cannot read %s\n", f->procedure);
        return NULL;
    }
    const char *names[] = {"portal", "report"};
    const char *paths[] = {f->portal, f->report};
    for (int i = 0; i < 2; i++) {
        if (!paths[i])
            continue;
        if (access(paths[i], R_OK) != 0) {
            if (!quiet)
                fprintf(stderr, "lth-trail: cannot read %s\n", paths[i]);
            sqlite3_close_v2(db);
            return NULL;
        }
        sqlite3_stmt *q = NULL;
        int rc = sqlite3_prepare_v2(db, "ATTACH DATABASE ? AS ?", -1, &q, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(q, 1, paths[i], -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, names[i], -1, SQLITE_STATIC);
            rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        }
        sqlite3_finalize(q);
        if (rc != SQLITE_OK) {
            if (!quiet)
                fprintf(stderr, "lth-trail: cannot attach %s: %s\n", paths[i], sqlite3_errmsg(db));
            sqlite3_close_v2(db);
            return NULL;
        }
    }
    return db;
}

/* Counts; HUB_ESTORE while a file is not ready (an adapter still starting). */
static int trail_count(sqlite3 *db, const trail_files_t *f, trail_counts_t *c)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT count(*), coalesce(sum(d.status IN (4, 5, 7, 10, 11)), 0),"
             " coalesce(sum(d.status NOT IN (4, 5, 7, 10, 11) AND d.due_at > 0 AND d.due_at < ?),"
             " 0), %s, %s"
             " FROM main.dossier d",
             f->portal ? "(SELECT count(*) FROM main.dossier x JOIN portal.view v ON v.code = "
                         "x.code AND v.seq = x.seq)"
                       : "0",
             f->report ? "(SELECT count(*) FROM main.dossier x JOIN report.dossier r ON r.code = "
                         "x.code AND r.seq = x.seq)"
                       : "0");
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)hub_now_us());
    int rc = HUB_ESTORE;
    if (sqlite3_step(q) == SQLITE_ROW) {
        c->dossiers = sqlite3_column_int64(q, 0);
        c->decided = sqlite3_column_int64(q, 1);
        c->overdue = sqlite3_column_int64(q, 2);
        c->portal_synced = sqlite3_column_int64(q, 3);
        c->report_synced = sqlite3_column_int64(q, 4);
        rc = 0;
    }
    sqlite3_finalize(q);
    return rc;
}

static bool trail_complete(const trail_files_t *f, const trail_counts_t *c, long long want)
{
    return c->dossiers >= want && c->decided == c->dossiers &&
           (!f->portal || c->portal_synced == c->dossiers) &&
           (!f->report || c->report_synced == c->dossiers);
}

/* The changes after the first two of an accepted dossier (RECEIVED and
 * PROCESSING, shown as "identity verified" and "forwarded"). */
static void trail_print_history(sqlite3 *db, const char *code, uint64_t submitted, bool accepted)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT status, at_us, actor FROM main.history WHERE code = ? "
                           "AND seq > ? ORDER BY seq",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, accepted ? 2 : 0);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int status = sqlite3_column_int(q, 0);
        /* MEMBER/SUBSYSTEM is enough to tell the actors apart. */
        const char *actor = (const char *)sqlite3_column_text(q, 2);
        const char *p = strchr(actor, '/');
        p = p ? strchr(p + 1, '/') : NULL;
        char when[32];
        trail_since(when, sizeof when, submitted, (uint64_t)sqlite3_column_int64(q, 1));
        printf(" → %s %s (%s)", lth_status_name(status), when, p ? p + 1 : actor);
    }
    sqlite3_finalize(q);
}

/* MEMBER/SUBSYSTEM of a member id: enough to tell the actors apart. */
static const char *trail_short(const char *member)
{
    const char *p = member ? strchr(member, '/') : NULL;
    p = p ? strchr(p + 1, '/') : NULL;
    return p ? p + 1 : (member ? member : "");
}

/* A second line, when there is something to show: the steps of a liên
 * thông dossier as the portal holds them, the fee paid through the portal
 * and the applicant's rating (the procedure system's records). */
static void trail_print_extras(sqlite3 *db, const trail_files_t *f, const char *code,
                               uint64_t submitted)
{
    sqlite3_stmt *q = NULL;
    bool any = false;
    if (f->portal && sqlite3_prepare_v2(db,
                                        "SELECT n, steps, authority, due_at, first_at, last_at,"
                                        " status FROM portal.step WHERE code = ? ORDER BY n",
                                        -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
        while (sqlite3_step(q) == SQLITE_ROW) {
            char from[32], to[32], due[32];
            trail_since(from, sizeof from, submitted, (uint64_t)sqlite3_column_int64(q, 4));
            trail_since(to, sizeof to, submitted, (uint64_t)sqlite3_column_int64(q, 5));
            trail_since(due, sizeof due, submitted, (uint64_t)sqlite3_column_int64(q, 3));
            printf("%s step %d/%d %s %s..%s, due %s: %s",
                   any ? " →" : "   liên thông:", sqlite3_column_int(q, 0),
                   sqlite3_column_int(q, 1), trail_short((const char *)sqlite3_column_text(q, 2)),
                   from, to, due, lth_status_name(sqlite3_column_int(q, 6)));
            any = true;
        }
    }
    sqlite3_finalize(q);
    q = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT (SELECT max(amount) FROM main.payment p WHERE p.code = ?1 AND"
                           " p.outcome = 1), (SELECT count(*) FROM main.payment p WHERE"
                           " p.code = ?1 AND p.outcome = 2), (SELECT score_sum * 1.0 / ratings"
                           " FROM main.feedback WHERE code = ?1)",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            if (sqlite3_column_type(q, 0) != SQLITE_NULL) {
                printf("%s fee paid online %lld VND%s", any ? ";" : "  ",
                       sqlite3_column_int64(q, 0),
                       sqlite3_column_int64(q, 1) ? " (after a failed attempt)" : "");
                any = true;
            }
            if (sqlite3_column_type(q, 2) != SQLITE_NULL) {
                printf("%s rated %.2f of 5", any ? ";" : "  ", sqlite3_column_double(q, 2));
                any = true;
            }
        }
    }
    sqlite3_finalize(q);
    if (any)
        putchar('\n');
}

static void trail_print(sqlite3 *db, const trail_files_t *f)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT d.code, d.procedure_code, d.authority, d.submitted_at, d.identity,"
             " d.identity_at, d.forwarded_at, d.seq, d.status, %s, %s, d.resolver"
             " FROM main.dossier d %s %s"
             " ORDER BY d.idx",
             f->portal ? "v.status, v.seq" : "NULL, NULL",
             f->report ? "r.status, r.seq, r.due_at, r.done_at" : "NULL, NULL, NULL, NULL",
             f->portal ? "LEFT JOIN portal.view v ON v.code = d.code" : "",
             f->report ? "LEFT JOIN report.dossier r ON r.code = d.code" : "");
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
        fprintf(stderr, "lth-trail: %s\n", sqlite3_errmsg(db));
        return;
    }
    sqlite3_stmt *names = NULL;
    if (sqlite3_prepare_v2(db, "SELECT name FROM main.catalogue WHERE code = ?", -1, &names,
                           NULL) != SQLITE_OK)
        fprintf(stderr,
                "lth-trail: %s holds no procedure catalogue (written by the procedure system "
                "when it loads plugin.catalogue_file): procedures are shown by code only\n",
                f->procedure);
    uint64_t now = hub_now_us();
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *code = (const char *)sqlite3_column_text(q, 0);
        const char *proc = (const char *)sqlite3_column_text(q, 1);
        uint64_t submitted = (uint64_t)sqlite3_column_int64(q, 3);
        char t[32];
        printf("%s  %s", code, proc);
        if (names) {
            sqlite3_bind_text(names, 1, proc, -1, SQLITE_STATIC);
            printf(" %s", sqlite3_step(names) == SQLITE_ROW
                              ? (const char *)sqlite3_column_text(names, 0)
                              : "(not in the catalogue)");
            sqlite3_reset(names);
        }
        printf(" → %s", (const char *)sqlite3_column_text(q, 2));
        if (sqlite3_column_type(q, 15) != SQLITE_NULL)
            printf(", delegated to %s", (const char *)sqlite3_column_text(q, 15));
        printf("\n   submitted");
        const char *identity = (const char *)sqlite3_column_text(q, 4);
        if (!identity) {
            printf(" → identity check pending\n");
            continue;
        }
        trail_since(t, sizeof t, submitted, (uint64_t)sqlite3_column_int64(q, 5));
        if (!strcmp(identity, "FOUND"))
            printf(" → identity verified %s", t);
        else if (!strcmp(identity, "PROCEDURE"))
            printf(" → not accepted %s: the procedure is not in force", t);
        else
            printf(" → %s %s",
                   !strcmp(identity, "NOT_FOUND")   ? "identity not found"
                   : !strcmp(identity, "MISMATCH")  ? "declared identity does not match"
                   : !strcmp(identity, "ASSURANCE") ? "authenticated below the required level"
                                                    : "identity invalid",
                   t);
        if (sqlite3_column_type(q, 6) != SQLITE_NULL) {
            trail_since(t, sizeof t, submitted, (uint64_t)sqlite3_column_int64(q, 6));
            printf(" → forwarded %s", t);
        }
        trail_print_history(db, code, submitted, !strcmp(identity, "FOUND"));
        long long seq = sqlite3_column_int64(q, 7);
        if (f->portal) {
            if (sqlite3_column_type(q, 9) == SQLITE_NULL)
                printf(" → portal: nothing yet");
            else
                printf(" → portal: %s%s", lth_status_name(sqlite3_column_int(q, 9)),
                       sqlite3_column_int64(q, 10) == seq ? "" : " (catching up)");
        }
        if (f->report) {
            if (sqlite3_column_type(q, 11) == SQLITE_NULL)
                printf(" → report: nothing yet");
            else
                printf(" → counted: %s%s",
                       lth_outcome_name(lth_report_classify(
                           sqlite3_column_int(q, 11), (uint64_t)sqlite3_column_int64(q, 13),
                           (uint64_t)sqlite3_column_int64(q, 14), now)),
                       sqlite3_column_int64(q, 12) == seq ? "" : " (catching up)");
        }
        putchar('\n');
        trail_print_extras(db, f, code, submitted);
    }
    sqlite3_finalize(names);
    sqlite3_finalize(q);
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: lth-trail --procedure FILE [--portal FILE] [--report FILE]\n"
                 "                 [--wait N] [--timeout SECONDS] [--summary]\n"
                 "Prints each dossier's trail from the dossier adapters' SQLite files.\n");
}

int main(int argc, char **argv)
{
    trail_files_t f = {NULL, NULL, NULL};
    long long want = -1;
    long timeout_s = 60;
    bool summary = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--procedure") && i + 1 < argc)
            f.procedure = argv[++i];
        else if (!strcmp(argv[i], "--portal") && i + 1 < argc)
            f.portal = argv[++i];
        else if (!strcmp(argv[i], "--report") && i + 1 < argc)
            f.report = argv[++i];
        else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
            want = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout_s = atol(argv[++i]);
        else if (!strcmp(argv[i], "--summary"))
            summary = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "lth-trail: unknown or incomplete argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!f.procedure) {
        usage(stderr);
        return 2;
    }
    trail_counts_t c = {0, 0, 0, 0, 0};
    int status = 0;
    sqlite3 *db = NULL;
    if (want >= 0) {
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            if (!db)
                db = trail_open(&f, true);
            if (db && trail_count(db, &f, &c) == 0 && trail_complete(&f, &c, want))
                break;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec >= timeout_s) {
                fprintf(stderr,
                        "lth-trail: after %ld s: %lld dossiers, %lld decided, portal has %lld "
                        "and the report %lld up to date (waiting for %lld)\n",
                        timeout_s, c.dossiers, c.decided, c.portal_synced, c.report_synced, want);
                status = 1;
                break;
            }
            nanosleep(&(struct timespec){0, 200000000}, NULL);
        }
    }
    if (!db)
        db = trail_open(&f, false);
    if (!db)
        return 1;
    if (summary) {
        if (trail_count(db, &f, &c) != 0) {
            fprintf(stderr, "lth-trail: %s\n", sqlite3_errmsg(db));
            status = 1;
        } else {
            printf("dossiers=%lld decided=%lld open=%lld overdue=%lld portal_synced=%lld "
                   "report_synced=%lld\n",
                   c.dossiers, c.decided, c.dossiers - c.decided, c.overdue, c.portal_synced,
                   c.report_synced);
        }
    } else {
        trail_print(db, &f);
    }
    sqlite3_close_v2(db);
    return status;
}
