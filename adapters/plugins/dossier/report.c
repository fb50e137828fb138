/* report — reporting for the city's administrative-reform indices
 * (VN/GOV/HN-VP/BAOCAO in the demo) as a hub member.
 *
 * It offers dossier.status/v1 and keeps, per dossier, the latest status by
 * sequence (older and repeated changes are ignored, as at the portal), its
 * procedure, authority and due time, and when it was done (SQLite,
 * plugin.db). It offers report.query/v1, which answers on-time, late,
 * overdue, in-progress and returned counts per procedure and authority as of
 * the moment asked (lth_report.h; request and answer formats in
 * proto/DOMAIN.md):
 *
 *   request  application/json  {"format": "table" | "csv" | "json",
 *                               "procedure_code": "...", "authority": "..."}
 *            (every member optional; an empty payload asks for JSON)
 *   answer   text/plain table, text/csv, or application/json;
 *            a request it cannot read gets application/json {"error": "..."}
 *
 * It names procedures from its own copy of the procedure catalogue, kept
 * from what the procedure system publishes (catalogue_copy.h): reporting
 * may run on another machine than the procedure system, and a procedure
 * added or amended by a reload reaches it as a CatalogueDelta.
 *
 * Config (plugin.*): see adapters/README.md, "report". Logs hold counts only.
 */
#include "dossier_intake.h"
#include "adp_plugin_util.h"
#include "hub_clock.h"
#include "lth_appdb.h"
#include "lth_dossier.h"
#include "lth_report.h"
#include "lth_portal.h"
#include "lth_workcal.h"
#include "catalogue_copy.h"

#include <time.h>

#include <inttypes.h>
#include <stdlib.h>

#define REPORT_SUMMARY_EVERY_US 5000000u
#define REPORT_SERVICE_QUERY "report.query/v1"

static const char report_schema[] =
    "CREATE TABLE IF NOT EXISTS dossier("
    " code TEXT PRIMARY KEY, procedure_code TEXT NOT NULL, authority TEXT NOT NULL,"
    " status INTEGER NOT NULL, seq INTEGER NOT NULL, due_at INTEGER NOT NULL,"
    " done_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " submitted_at INTEGER NOT NULL DEFAULT 0, decided_at INTEGER NOT NULL DEFAULT 0,"
    " channel INTEGER NOT NULL DEFAULT 0,"
    /* Ủy quyền: the authority addressed when a delegate (authority) resolves it. */
    " delegated_by TEXT NOT NULL DEFAULT '');"
    /* What the procedure system relays besides status changes (issue 19). */
    "CREATE TABLE IF NOT EXISTS result(result_code TEXT PRIMARY KEY, code TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS payment(transaction_ref TEXT PRIMARY KEY, code TEXT NOT NULL,"
    " outcome INTEGER NOT NULL, channel INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS feedback(code TEXT PRIMARY KEY, ratings INTEGER NOT NULL,"
    " score_sum INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS synced(code TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
    /* Liên thông: each step, on its own time limit. */
    "CREATE TABLE IF NOT EXISTS step(code TEXT NOT NULL, n INTEGER NOT NULL,"
    " authority TEXT NOT NULL, due_at INTEGER NOT NULL, done_at INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(code, n));";

typedef struct {
    const adp_plugin_host_t *host;
    sqlite3 *db;
    unsigned long queries, bad_queries;
    lth_workcal_t *calendar; /* plugin.calendar: working hours; NULL = elapsed hours */
    catcopy_t *catalogue;    /* its copy of the published catalogue: the names */
    uint64_t next_summary_us;
    char last_summary[256];
} report_t;

/* sql about step n of c's dossier: ?1 code, ?2 n, ?3 the step's authority,
 * ?4 its due time, ?5 the change's time. */
static int report_step_sql(sqlite3 *db, const char *sql, const lth_status_change_t *c, int n)
{
    return lth_appdb_run(db, sql, "titII", c->dossier_code, n, c->step_authority, c->step_due_at_us,
                         c->at_us);
}

/* Liên thông: the step of a change; its first change closes the step before
 * (the hand-over), a decision that ends the dossier closes its own. */
static int report_apply_step(sqlite3 *db, const lth_status_change_t *c)
{
    int rc = report_step_sql(db,
                             "INSERT INTO step(code, n, authority, due_at) VALUES(?1, ?2, ?3, ?4)"
                             " ON CONFLICT(code, n) DO UPDATE SET authority = ?3,"
                             " due_at = CASE WHEN ?4 = 0 THEN due_at ELSE ?4 END",
                             c, (int)c->step);
    if (rc == 0 && c->step > 1)
        rc = report_step_sql(db,
                             "UPDATE step SET done_at = ?5 WHERE code = ?1 AND n = ?2 AND"
                             " done_at = 0",
                             c, (int)c->step - 1);
    if (rc == 0 && lth_status_final(c->status))
        rc = report_step_sql(db,
                             "UPDATE step SET done_at = ?5 WHERE code = ?1 AND n = ?2 AND"
                             " done_at = 0",
                             c, (int)c->step);
    return rc;
}

/* Writes one status change into the table (dp_status_intake's apply). */
static int report_apply(sqlite3 *db, const lth_status_change_t *c)
{
    int rc = lth_appdb_run(
        db,
        "INSERT INTO dossier(code, procedure_code, authority, status, seq, due_at, done_at,"
        " updated_at, submitted_at, decided_at, channel, delegated_by)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        " ON CONFLICT(code) DO UPDATE SET"
        " procedure_code = CASE WHEN ?2 = '' THEN procedure_code ELSE ?2 END,"
        " authority = CASE WHEN ?3 = '' THEN authority ELSE ?3 END,"
        " status = ?4, seq = ?5, due_at = CASE WHEN ?6 = 0 THEN due_at ELSE ?6 END,"
        " done_at = CASE WHEN ?4 = 11 THEN done_at ELSE ?7 END, updated_at = ?8,"
        " submitted_at = CASE WHEN ?9 = 0 THEN submitted_at ELSE ?9 END,"
        " decided_at = CASE WHEN decided_at = 0 THEN ?10 ELSE decided_at END,"
        " channel = CASE WHEN ?11 = 0 THEN channel ELSE ?11 END,"
        " delegated_by = CASE WHEN ?12 = '' THEN delegated_by ELSE ?12 END",
        "tttiIIIIIIit", c->dossier_code, c->procedure_code, c->authority, c->status, c->sequence,
        c->due_at_us, c->status == LTH_STATUS_DONE ? c->at_us : 0, hub_now_us(), c->submitted_at_us,
        lth_status_final(c->status) ? c->at_us : 0, c->channel, c->delegated_by);
    if (rc == 0 && c->step > 0)
        rc = report_apply_step(db, c);
    return rc;
}

static int report_on_status(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                            void *user)
{
    (void)client;
    (void)reply;
    report_t *st = user;
    return dp_status_intake(st->host, st->db, "SELECT seq FROM dossier WHERE code = ?",
                            report_apply, "the report", msg);
}

/* ---- what the procedure system relays (issue 19) ---- */

static int report_on_relayed(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                             void *user)
{
    (void)client;
    (void)reply;
    report_t *st = user;
    const char *why = NULL;
    int rc = 0;
    if (msg->kind == ADP_REQUEST)
        return 0;
    if (!strcmp(msg->service, LTH_SERVICE_DOSSIER_RESULT)) {
        lth_result_t r;
        if (lth_result_decode(msg->content_type, msg->payload, msg->payload_len, &r, &why) == 0)
            rc = lth_appdb_run(st->db,
                               "INSERT OR IGNORE INTO result(result_code, code) VALUES(?, ?)", "tt",
                               r.result_code, r.dossier_code);
    } else if (!strcmp(msg->service, LTH_SERVICE_PAYMENT_STATUS)) {
        lth_payment_t p;
        if (lth_payment_decode(msg->content_type, msg->payload, msg->payload_len, &p, &why) == 0)
            rc = lth_appdb_run(st->db,
                               "INSERT OR IGNORE INTO payment(transaction_ref, code, outcome, "
                               "channel) VALUES(?, ?, ?, ?)",
                               "ttii", p.transaction_ref, p.dossier_code, (int)p.outcome,
                               (int)p.channel);
    } else if (!strcmp(msg->service, LTH_SERVICE_FEEDBACK)) {
        lth_feedback_t f;
        if (lth_feedback_decode(msg->content_type, msg->payload, msg->payload_len, &f, &why) == 0) {
            uint64_t sum = 0;
            for (size_t i = 0; i < f.n_ratings; i++)
                sum += f.ratings[i].score;
            rc = lth_appdb_run(st->db,
                               "INSERT OR IGNORE INTO feedback(code, ratings, score_sum) "
                               "VALUES(?, ?, ?)",
                               "tII", f.dossier_code, (uint64_t)f.n_ratings, sum);
        }
    } else {
        lth_receipt_t r;
        if (lth_receipt_decode(msg->content_type, msg->payload, msg->payload_len, &r, &why) == 0 &&
            r.accepted && r.sequence > 0)
            rc = lth_appdb_run(st->db,
                               "INSERT INTO synced(code, seq) VALUES(?1, ?2) ON CONFLICT(code) DO "
                               "UPDATE SET seq = max(seq, ?2)",
                               "tI", r.dossier_code, r.sequence);
    }
    if (why)
        adp_plugin_log(st->host, ADP_LOG_WARN, "%s from %s refused: %s", msg->service, msg->sender,
                       why);
    if (rc != 0)
        adp_plugin_log(st->host, ADP_LOG_ERROR, "could not record %s: %s", msg->service,
                       lth_appdb_error(st->db));
    return rc;
}

/* ---- report.query/v1 ---- */

typedef enum { REPORT_BY_SUBMITTED = 0, REPORT_BY_DECIDED = 1 } report_by_t;

typedef struct {
    uint64_t from_us, to_us; /* [from, to): 0, 0 = every dossier */
    report_by_t by;
    lth_report_format_t format;
    char procedure_code[LTH_PROCEDURE_CODE_MAX]; /* "" = every procedure */
    char authority[LTH_MEMBER_MAX];              /* "" = every authority */
} report_query_t;

/* Column col (json_type) and col + 1 (the value) as a local date: its
 * midnight in Asia/Ho_Chi_Minh, or the next day's when end (a period's `to`
 * is included). Absent: 0. HUB_EINVAL when not a "YYYY-MM-DD" text. */
static int report_parse_day(sqlite3_stmt *q, int col, bool end, uint64_t *out)
{
    *out = 0;
    if (sqlite3_column_type(q, col) == SQLITE_NULL)
        return 0;
    lth_date_t d;
    if (strcmp((const char *)sqlite3_column_text(q, col), "text") != 0 ||
        lth_date_parse((const char *)sqlite3_column_text(q, col + 1), &d) != 0)
        return HUB_EINVAL;
    struct tm tm = {
        .tm_year = d.year - 1900, .tm_mon = d.month - 1, .tm_mday = d.day + (end ? 1 : 0)};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || t < LTH_WORKCAL_UTC_OFFSET_S)
        return HUB_EINVAL;
    *out = (uint64_t)(t - LTH_WORKCAL_UTC_OFFSET_S) * 1000000u;
    return 0;
}

/* Reads the request with SQLite's JSON functions; *problem says what is wrong. */
static int report_parse_query(report_t *st, const adp_message_t *msg, report_query_t *out,
                              const char **problem)
{
    memset(out, 0, sizeof *out);
    out->format = LTH_REPORT_JSON;
    if (msg->payload_len == 0)
        return 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(
            st->db,
            "SELECT json_valid(?1) AND json_type(?1) = 'object',"
            " (SELECT group_concat(key) FROM json_each(?1)"
            "   WHERE key NOT IN ('format', 'procedure_code', 'authority', 'from', 'to', 'by')),"
            " json_type(?1, '$.format'), json_extract(?1, '$.format'),"
            " json_type(?1, '$.procedure_code'), json_extract(?1, '$.procedure_code'),"
            " json_type(?1, '$.authority'), json_extract(?1, '$.authority'),"
            " json_type(?1, '$.from'), json_extract(?1, '$.from'),"
            " json_type(?1, '$.to'), json_extract(?1, '$.to'),"
            " json_type(?1, '$.by'), json_extract(?1, '$.by')",
            -1, &q, NULL) != SQLITE_OK) {
        *problem = "the report database cannot read JSON";
        return HUB_ESTORE;
    }
    sqlite3_bind_text(q, 1, (const char *)msg->payload, (int)msg->payload_len, SQLITE_STATIC);
    int rc = HUB_EINVAL;
    /* json_each on text that is not JSON is an error: check validity first. */
    sqlite3_stmt *v = NULL;
    bool valid = false;
    if (sqlite3_prepare_v2(st->db, "SELECT json_valid(?1) AND json_type(?1) = 'object'", -1, &v,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(v, 1, (const char *)msg->payload, (int)msg->payload_len, SQLITE_STATIC);
        valid = sqlite3_step(v) == SQLITE_ROW && sqlite3_column_int(v, 0) == 1;
    }
    sqlite3_finalize(v);
    if (!valid) {
        *problem = "the request must be a JSON object, e.g. {\"format\":\"table\"}";
    } else if (sqlite3_step(q) != SQLITE_ROW) {
        *problem = "the request could not be read";
    } else if (sqlite3_column_type(q, 1) != SQLITE_NULL) {
        *problem = "unknown member in the request: only format, procedure_code, authority, "
                   "from, to and by";
    } else if (sqlite3_column_type(q, 2) != SQLITE_NULL &&
               (strcmp((const char *)sqlite3_column_text(q, 2), "text") != 0 ||
                lth_report_format_parse((const char *)sqlite3_column_text(q, 3), &out->format) !=
                    0)) {
        *problem = "format must be \"table\", \"csv\" or \"json\"";
    } else if (sqlite3_column_type(q, 4) != SQLITE_NULL &&
               (strcmp((const char *)sqlite3_column_text(q, 4), "text") != 0 ||
                (size_t)sqlite3_column_bytes(q, 5) >= sizeof out->procedure_code)) {
        *problem = "procedure_code must be a procedure code, e.g. \"SYN-1.000004\"";
    } else if (sqlite3_column_type(q, 6) != SQLITE_NULL &&
               (strcmp((const char *)sqlite3_column_text(q, 6), "text") != 0 ||
                hub_member_id_problem((const char *)sqlite3_column_text(q, 7)))) {
        *problem = "authority must be a member id, e.g. \"VN/GOV/HN-SKHDT/DKKD\"";
    } else if (report_parse_day(q, 8, false, &out->from_us) != 0 ||
               report_parse_day(q, 10, true, &out->to_us) != 0) {
        *problem = "from and to must be dates \"YYYY-MM-DD\" (Asia/Ho_Chi_Minh), to included";
    } else if (sqlite3_column_type(q, 12) != SQLITE_NULL &&
               (strcmp((const char *)sqlite3_column_text(q, 12), "text") != 0 ||
                (strcmp((const char *)sqlite3_column_text(q, 13), "submitted") != 0 &&
                 strcmp((const char *)sqlite3_column_text(q, 13), "decided") != 0))) {
        *problem = "by must be \"submitted\" or \"decided\"";
    } else if (out->from_us && out->to_us && out->to_us <= out->from_us) {
        *problem = "to must not come before from";
    } else {
        if (sqlite3_column_type(q, 12) != SQLITE_NULL &&
            !strcmp((const char *)sqlite3_column_text(q, 13), "decided"))
            out->by = REPORT_BY_DECIDED;
        if (sqlite3_column_type(q, 5) != SQLITE_NULL)
            snprintf(out->procedure_code, sizeof out->procedure_code, "%s",
                     (const char *)sqlite3_column_text(q, 5));
        if (sqlite3_column_type(q, 7) != SQLITE_NULL)
            snprintf(out->authority, sizeof out->authority, "%s",
                     (const char *)sqlite3_column_text(q, 7));
        rc = 0;
    }
    sqlite3_finalize(q);
    return rc;
}

static int report_reply_error(adp_reply_t *reply, const char *problem)
{
    /* problem is one of our own sentences: only '"' needs escaping. */
    size_t cap = strlen(problem) * 2 + 32;
    char *body = malloc(cap);
    if (!body)
        return HUB_ENOMEM;
    size_t n = (size_t)snprintf(body, cap, "{\"error\":\"");
    for (const char *p = problem; *p; p++) {
        if (*p == '"' || *p == '\\')
            body[n++] = '\\';
        body[n++] = *p;
    }
    n += (size_t)snprintf(body + n, cap - n, "\"}\n");
    adp_plugin_reply(reply, body, n, "application/json");
    return 0;
}

static void report_json_string(FILE *f, const char *text)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The period filter every report query shares, with ?1 the procedure
 * ('' any) and ?2 the authority ('' any) that the query tests itself:
 * ?3..?4 the period (0: open), ?5 by decision date (else submission). */
#define REPORT_PERIOD_SQL                                                                          \
    " AND (?3 = 0 OR (CASE WHEN ?5 THEN d.decided_at ELSE d.submitted_at END) >= ?3)"              \
    " AND (?4 = 0 OR (CASE WHEN ?5 THEN d.decided_at ELSE d.submitted_at END) < ?4)"               \
    " AND (?5 = 0 OR d.decided_at > 0)"

/* Prepares sql (its ?1..?5 as REPORT_PERIOD_SQL says) with the query's
 * filter bound. */
static int report_prepare(report_t *st, const char *sql, const report_query_t *query,
                          sqlite3_stmt **q)
{
    *q = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, q, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    sqlite3_bind_text(*q, 1, query->procedure_code, -1, SQLITE_STATIC);
    sqlite3_bind_text(*q, 2, query->authority, -1, SQLITE_STATIC);
    sqlite3_bind_int64(*q, 3, (sqlite3_int64)query->from_us);
    sqlite3_bind_int64(*q, 4, (sqlite3_int64)query->to_us);
    sqlite3_bind_int(*q, 5, query->by == REPORT_BY_DECIDED);
    return 0;
}

/* A section appended to a rendered answer: a memory stream that starts
 * with the first `keep` bytes of out. NULL when out of memory. */
static FILE *report_section_begin(char **buf, size_t *size, const char *out, size_t keep)
{
    FILE *f = open_memstream(buf, size);
    if (f)
        fwrite(out, 1, keep, f);
    return f;
}

/* Closes the section's stream and, when its statement ran to the end (s
 * is SQLITE_DONE), makes it the answer in *out. */
static int report_section_end(FILE *f, char **buf, const size_t *size, int s, char **out,
                              size_t *len)
{
    /* The stream sets *buf and *size when it is closed. */
    if (fclose(f) != 0 || !*buf || s != SQLITE_DONE) {
        free(*buf);
        return s != SQLITE_DONE ? HUB_ESTORE : HUB_ENOMEM;
    }
    free(*out);
    *out = *buf;
    *len = *size;
    return 0;
}

/* Liên thông: appends "steps" to the JSON answer — per procedure, step and
 * authority, the dossiers that entered the step, ended it (done, or
 * returned there), on time and late against the step's own limit, and
 * still open past it. */
static int report_append_steps(report_t *st, const report_query_t *query, char **out, size_t *len)
{
    static const char sql[] =
        "SELECT d.procedure_code, s.n, s.authority, count(*), sum(s.done_at > 0),"
        " sum(s.done_at > 0 AND (s.due_at = 0 OR s.done_at <= s.due_at)),"
        " sum(s.done_at > 0 AND s.due_at > 0 AND s.done_at > s.due_at),"
        " sum(s.done_at = 0 AND s.due_at > 0 AND s.due_at < ?6)"
        " FROM step s JOIN dossier d USING(code)"
        " WHERE (?1 = '' OR d.procedure_code = ?1)"
        " AND (?2 = '' OR d.authority = ?2)" REPORT_PERIOD_SQL " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    sqlite3_stmt *q = NULL;
    if (report_prepare(st, sql, query, &q) != 0)
        return HUB_ESTORE;
    sqlite3_bind_int64(q, 6, (sqlite3_int64)hub_now_us());
    char *buf = NULL;
    size_t size = 0;
    /* The rendering ends in "}\n": the steps go before that brace. */
    FILE *f = report_section_begin(&buf, &size, *out, *len >= 2 ? *len - 2 : 0);
    if (!f) {
        sqlite3_finalize(q);
        return HUB_ENOMEM;
    }
    fputs(",\"steps\":[", f);
    int s, rows = 0;
    while ((s = sqlite3_step(q)) == SQLITE_ROW) {
        fputs(rows++ ? ",{\"procedure_code\":" : "{\"procedure_code\":", f);
        report_json_string(f, (const char *)sqlite3_column_text(q, 0));
        fprintf(f, ",\"step\":%d,\"authority\":", sqlite3_column_int(q, 1));
        report_json_string(f, (const char *)sqlite3_column_text(q, 2));
        fprintf(f,
                ",\"entered\":%lld,\"ended\":%lld,\"on_time\":%lld,\"late\":%lld,"
                "\"overdue\":%lld}",
                sqlite3_column_int64(q, 3), sqlite3_column_int64(q, 4), sqlite3_column_int64(q, 5),
                sqlite3_column_int64(q, 6), sqlite3_column_int64(q, 7));
    }
    sqlite3_finalize(q);
    fputs("]}\n", f);
    return report_section_end(f, &buf, &size, s, out, len);
}

/* Ủy quyền: appends the "delegations" section — per delegation (the
 * authority addressed, the delegate that resolved, the procedure), the
 * dossiers it carried, those done on time and late against their limit,
 * and the on-time rate of those done — in the answer's own format: a JSON
 * member, a second CSV block after an empty line, or a second table. */
static int report_append_delegations(report_t *st, const report_query_t *query, char **out,
                                     size_t *len)
{
    static const char sql[] =
        "SELECT d.delegated_by, d.authority, d.procedure_code, count(*),"
        " sum(d.done_at > 0 AND (d.due_at = 0 OR d.done_at <= d.due_at)),"
        " sum(d.done_at > 0 AND d.due_at > 0 AND d.done_at > d.due_at)"
        " FROM dossier d WHERE d.delegated_by <> ''"
        " AND (?1 = '' OR d.procedure_code = ?1)"
        " AND (?2 = '' OR d.authority = ?2 OR d.delegated_by = ?2)" REPORT_PERIOD_SQL
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    sqlite3_stmt *q = NULL;
    if (report_prepare(st, sql, query, &q) != 0)
        return HUB_ESTORE;
    bool json = query->format == LTH_REPORT_JSON;
    char *buf = NULL;
    size_t size = 0;
    /* A JSON rendering ends in "}\n": the section goes before that brace. */
    FILE *f = report_section_begin(&buf, &size, *out, json && *len >= 2 ? *len - 2 : *len);
    if (!f) {
        sqlite3_finalize(q);
        return HUB_ENOMEM;
    }
    if (json)
        fputs(",\"delegations\":[", f);
    else if (query->format == LTH_REPORT_CSV)
        fputs("\r\ndelegated_by,delegate,procedure_code,carried,on_time,late,pct_on_time\r\n", f);
    else
        fprintf(f,
                "\nDelegations (ủy quyền): delegated by -> delegate, procedure\n"
                "%-28s %-28s %-14s %8s %8s %6s %10s\n",
                "delegated by", "delegate", "procedure", "carried", "on time", "late", "on time %");
    int s, rows = 0;
    while ((s = sqlite3_step(q)) == SQLITE_ROW) {
        const char *by = (const char *)sqlite3_column_text(q, 0),
                   *delegate = (const char *)sqlite3_column_text(q, 1),
                   *code = (const char *)sqlite3_column_text(q, 2);
        long long carried = sqlite3_column_int64(q, 3), on_time = sqlite3_column_int64(q, 4),
                  late = sqlite3_column_int64(q, 5);
        double pct = on_time + late ? 100.0 * (double)on_time / (double)(on_time + late) : 0.0;
        if (json) {
            fputs(rows ? ",{\"delegated_by\":" : "{\"delegated_by\":", f);
            report_json_string(f, by);
            fputs(",\"delegate\":", f);
            report_json_string(f, delegate);
            fputs(",\"procedure_code\":", f);
            report_json_string(f, code);
            fprintf(f, ",\"carried\":%lld,\"on_time\":%lld,\"late\":%lld,\"pct_on_time\":%.1f}",
                    carried, on_time, late, pct);
        } else if (query->format == LTH_REPORT_CSV) {
            /* Member ids and procedure codes hold no ',' or '"'. */
            fprintf(f, "%s,%s,%s,%lld,%lld,%lld,%.1f\r\n", by, delegate, code, carried, on_time,
                    late, pct);
        } else {
            fprintf(f, "%-28s %-28s %-14s %8lld %8lld %6lld %10.1f\n", by, delegate, code, carried,
                    on_time, late, pct);
        }
        rows++;
    }
    sqlite3_finalize(q);
    if (json)
        fputs("]}\n", f);
    else if (!rows && query->format != LTH_REPORT_CSV)
        fputs("(none)\n", f);
    return report_section_end(f, &buf, &size, s, out, len);
}

/* Processing time: office time with plugin.calendar, elapsed time without. */
static uint64_t report_working_us(const report_t *st, uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    if (!st->calendar)
        return to - from;
    return lth_workcal_working_us(st->calendar, (int64_t)from, (int64_t)to);
}

static int report_on_query(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                           void *user)
{
    (void)client;
    report_t *st = user;
    if (msg->kind != ADP_REQUEST)
        return 0;
    report_query_t query;
    const char *problem = NULL;
    if (report_parse_query(st, msg, &query, &problem) != 0) {
        st->bad_queries++;
        adp_plugin_log(st->host, ADP_LOG_WARN, "report.query from %s refused: %s", msg->sender,
                       problem);
        return report_reply_error(reply, problem);
    }
    lth_report_t r;
    lth_report_init(&r, hub_now_us());
    static const char sql[] =
        "SELECT d.procedure_code, d.authority, d.status, d.due_at, d.done_at,"
        " d.submitted_at, d.decided_at, d.channel = 1, coalesce(s.seq, 0) >= d.seq,"
        " EXISTS (SELECT 1 FROM result x WHERE x.code = d.code),"
        " EXISTS (SELECT 1 FROM payment p WHERE p.code = d.code AND p.outcome = 1),"
        " EXISTS (SELECT 1 FROM payment p WHERE p.code = d.code AND p.outcome = 1"
        "   AND p.channel = 1),"
        " coalesce(f.ratings, 0), coalesce(f.score_sum, 0)"
        " FROM dossier d LEFT JOIN synced s USING(code) LEFT JOIN feedback f USING(code)"
        " WHERE (?1 = '' OR d.procedure_code = ?1)"
        " AND (?2 = '' OR d.authority = ?2)" REPORT_PERIOD_SQL;
    sqlite3_stmt *q = NULL;
    int rc = report_prepare(st, sql, &query, &q);
    if (rc == 0) {
        int s;
        while (rc == 0 && (s = sqlite3_step(q)) == SQLITE_ROW) {
            uint64_t submitted = (uint64_t)sqlite3_column_int64(q, 5),
                     decided = (uint64_t)sqlite3_column_int64(q, 6);
            long long ratings = sqlite3_column_int64(q, 12);
            lth_report_dossier_t d = {
                .procedure_code = (const char *)sqlite3_column_text(q, 0),
                .authority = (const char *)sqlite3_column_text(q, 1),
                .status = sqlite3_column_int(q, 2),
                .due_at_us = (uint64_t)sqlite3_column_int64(q, 3),
                .done_at_us = (uint64_t)sqlite3_column_int64(q, 4),
                .decided_at_us = decided,
                .working_us = decided ? report_working_us(st, submitted, decided) : 0,
                .online = sqlite3_column_int(q, 7) != 0,
                .synced = sqlite3_column_int(q, 8) != 0,
                .has_result = sqlite3_column_int(q, 9) != 0,
                .paid = sqlite3_column_int(q, 10) != 0,
                .paid_online = sqlite3_column_int(q, 11) != 0,
                .rating = ratings ? (double)sqlite3_column_int64(q, 13) / (double)ratings : 0.0};
            rc = lth_report_add_dossier(&r, &d);
        }
        if (rc == 0 && s != SQLITE_DONE)
            rc = HUB_ESTORE;
    }
    sqlite3_finalize(q);
    char *out = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = lth_report_render(&r, query.format, &out, &len);
    if (rc == 0 && query.format == LTH_REPORT_JSON)
        rc = report_append_steps(st, &query, &out, &len);
    if (rc == 0)
        rc = report_append_delegations(st, &query, &out, &len);
    if (rc == 0) {
        adp_plugin_reply(reply, out, len, lth_report_content_type(query.format));
        st->queries++;
        adp_plugin_log(st->host, ADP_LOG_DEBUG, "report.query from %s: %zu rows, %lu dossiers",
                       msg->sender, r.n_rows, r.total.dossiers);
    } else {
        adp_plugin_log(st->host, ADP_LOG_ERROR, "report.query from %s failed: %s", msg->sender,
                       rc == HUB_ESTORE ? lth_appdb_error(st->db) : hub_strerror(rc));
        rc = report_reply_error(reply, "the report could not be computed; try again later");
    }
    lth_report_free(&r);
    return rc;
}

static void report_summary(report_t *st, bool force)
{
    if (!dp_summary_due(&st->next_summary_us, REPORT_SUMMARY_EVERY_US, force))
        return;
    dp_intake_counts_t c;
    dp_intake_counts(st->db, &c);
    long long dossiers;
    dp_query_counts(st->db, "SELECT count(*) FROM dossier", &dossiers, NULL);
    char line[256];
    snprintf(line, sizeof line,
             "report: dossiers=%lld changes applied=%" PRIu64 " ignored_older=%" PRIu64
             " ignored_duplicate=%" PRIu64 " refused=%" PRIu64 " queries=%lu bad_queries=%lu",
             dossiers, c.applied, c.older, c.dup, c.refused, st->queries, st->bad_queries);
    adp_plugin_log_changed(st->host, st->last_summary, sizeof st->last_summary, line);
}

static int report_tick(void *state, adp_client_t *client)
{
    report_t *st = state;
    catcopy_tick(st->catalogue, client); /* the whole catalogue, when it lacks it */
    report_summary(state, false);
    return 0;
}

static void report_destroy(void *state)
{
    report_t *st = state;
    if (!st)
        return;
    if (st->db)
        report_summary(st, true);
    catcopy_destroy(&st->catalogue);
    lth_appdb_close(&st->db);
    lth_workcal_destroy(&st->calendar);
    free(st);
}

static int report_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    report_t *st = state;
    st->host = host;
    int rc = dp_read_model_open(host, "the report's SQLite file", report_schema, report_on_status,
                                st, &st->db, err, err_size);
    /* A report.db from before the delegations section lacks the column:
     * add it (an error here only means it is there already). */
    if (rc == 0)
        (void)sqlite3_exec(st->db,
                           "ALTER TABLE dossier ADD COLUMN delegated_by TEXT NOT NULL DEFAULT ''",
                           NULL, NULL, NULL);
    if (rc == 0)
        rc = host->offer(host, REPORT_SERVICE_QUERY, report_on_query, st);
    const char *relayed[] = {LTH_SERVICE_DOSSIER_RESULT, LTH_SERVICE_PAYMENT_STATUS,
                             LTH_SERVICE_FEEDBACK, LTH_SERVICE_DOSSIER_SYNCED};
    for (size_t i = 0; rc == 0 && i < sizeof relayed / sizeof relayed[0]; i++)
        rc = host->offer(host, relayed[i], report_on_relayed, st);
    const char *calendar = host->config(host, "calendar");
    if (rc == 0 && calendar && *calendar)
        rc = lth_workcal_load(calendar, &st->calendar, err, err_size);
    if (rc == 0)
        rc = catcopy_new(host, st->db, "reporting", &st->catalogue, err, err_size);
    return rc;
}

ADP_PLUGIN_DEFINE_STATE("report",
                        "reporting: on-time, late and overdue dossiers per procedure and authority",
                        report_t, report_start, report_tick, report_destroy);
