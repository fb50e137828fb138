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
 * Config (plugin.*): see adapters/README.md, "report". Logs hold counts only.
 */
#include "dossier_intake.h"
#include "adp_plugin_util.h"
#include "hub_clock.h"
#include "lth_appdb.h"
#include "lth_dossier.h"
#include "lth_report.h"

#include <inttypes.h>
#include <stdlib.h>

#define REPORT_SUMMARY_EVERY_US 5000000u
#define REPORT_SERVICE_QUERY "report.query/v1"

static const char report_schema[] =
    "CREATE TABLE IF NOT EXISTS dossier("
    " code TEXT PRIMARY KEY, procedure_code TEXT NOT NULL, authority TEXT NOT NULL,"
    " status INTEGER NOT NULL, seq INTEGER NOT NULL, due_at INTEGER NOT NULL,"
    " done_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);";

typedef struct {
    const adp_plugin_host_t *host;
    sqlite3 *db;
    unsigned long queries, bad_queries;
    uint64_t next_summary_us;
    char last_summary[256];
} report_t;

/* Writes one status change into the table (dp_status_intake's apply). */
static int report_apply(sqlite3 *db, const lth_status_change_t *c)
{
    sqlite3_stmt *q = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO dossier(code, procedure_code, authority, status, seq, due_at, done_at,"
            " updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            " ON CONFLICT(code) DO UPDATE SET"
            " procedure_code = CASE WHEN ?2 = '' THEN procedure_code ELSE ?2 END,"
            " authority = CASE WHEN ?3 = '' THEN authority ELSE ?3 END,"
            " status = ?4, seq = ?5, due_at = CASE WHEN ?6 = 0 THEN due_at ELSE ?6 END,"
            " done_at = ?7, updated_at = ?8",
            -1, &q, NULL) != SQLITE_OK) {
        rc = HUB_ESTORE;
    } else {
        sqlite3_bind_text(q, 1, c->dossier_code, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, c->procedure_code, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, c->authority, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 4, c->status);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)c->sequence);
        sqlite3_bind_int64(q, 6, (sqlite3_int64)c->due_at_us);
        sqlite3_bind_int64(q, 7, (sqlite3_int64)(c->status == LTH_STATUS_DONE ? c->at_us : 0));
        sqlite3_bind_int64(q, 8, (sqlite3_int64)hub_now_us());
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
    }
    sqlite3_finalize(q);
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

/* ---- report.query/v1 ---- */

typedef struct {
    lth_report_format_t format;
    char procedure_code[LTH_PROCEDURE_CODE_MAX]; /* "" = every procedure */
    char authority[LTH_MEMBER_MAX];              /* "" = every authority */
} report_query_t;

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
            "   WHERE key NOT IN ('format', 'procedure_code', 'authority')),"
            " json_type(?1, '$.format'), json_extract(?1, '$.format'),"
            " json_type(?1, '$.procedure_code'), json_extract(?1, '$.procedure_code'),"
            " json_type(?1, '$.authority'), json_extract(?1, '$.authority')",
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
        *problem = "unknown member in the request: only format, procedure_code and authority";
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
    } else {
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
    reply->payload = (uint8_t *)body;
    reply->payload_len = n;
    snprintf(reply->content_type, sizeof reply->content_type, "application/json");
    return 0;
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
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(st->db,
                                "SELECT procedure_code, authority, status, due_at, done_at"
                                " FROM dossier WHERE (?1 = '' OR procedure_code = ?1)"
                                " AND (?2 = '' OR authority = ?2)",
                                -1, &q, NULL) == SQLITE_OK
                 ? 0
                 : HUB_ESTORE;
    if (rc == 0) {
        sqlite3_bind_text(q, 1, query.procedure_code, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, query.authority, -1, SQLITE_STATIC);
        int s;
        while (rc == 0 && (s = sqlite3_step(q)) == SQLITE_ROW)
            rc = lth_report_add(&r, (const char *)sqlite3_column_text(q, 0),
                                (const char *)sqlite3_column_text(q, 1), sqlite3_column_int(q, 2),
                                (uint64_t)sqlite3_column_int64(q, 3),
                                (uint64_t)sqlite3_column_int64(q, 4));
        if (rc == 0 && s != SQLITE_DONE)
            rc = HUB_ESTORE;
    }
    sqlite3_finalize(q);
    char *out = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = lth_report_render(&r, query.format, &out, &len);
    if (rc == 0) {
        reply->payload = (uint8_t *)out;
        reply->payload_len = len;
        snprintf(reply->content_type, sizeof reply->content_type, "%s",
                 lth_report_content_type(query.format));
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
    uint64_t now = hub_now_us();
    if (!force && now < st->next_summary_us)
        return;
    st->next_summary_us = now + REPORT_SUMMARY_EVERY_US;
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
    (void)client;
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
    lth_appdb_close(&st->db);
    free(st);
}

static int report_init(const adp_plugin_host_t *host, void **state, char *err, size_t err_size)
{
    report_t *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    st->host = host;
    int rc = dp_read_model_open(host, "the report's SQLite file", report_schema, report_on_status,
                                st, &st->db, err, err_size);
    if (rc == 0)
        rc = host->offer(host, REPORT_SERVICE_QUERY, report_on_query, st);
    if (rc != 0) {
        if (!err[0])
            snprintf(err, err_size, "%s", hub_strerror(rc));
        report_destroy(st);
        return rc;
    }
    *state = st;
    return 0;
}

ADP_PLUGIN_DEFINE("report",
                  "reporting: on-time, late and overdue dossiers per procedure and authority",
                  report_init, report_tick, report_destroy);
