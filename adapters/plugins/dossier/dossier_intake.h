/* The dossier.status intake that the read models (portal, report) share:
 * decode the change, refuse a request or an undecodable payload (counted
 * as "refused"), and in one SQLite transaction look up the sequence last
 * applied to the dossier, apply the change only when it is newer (so a
 * redelivered or reordered change alters nothing), and count it as
 * "applied", "ignored_duplicate" or "ignored_older". Also the end of a
 * transaction that every dossier plugin writes (dp_end). Header-only, like
 * adp_plugin_util.h: each plugin is its own shared object. */
#ifndef DOSSIER_INTAKE_H
#define DOSSIER_INTAKE_H

#include "adp_plugin_util.h"
#include "hub_clock.h"
#include "lth_appdb.h"
#include "lth_dossier.h"

/* Writes the change into the plugin's table (inside the transaction). */
typedef int (*dp_apply_fn)(sqlite3 *db, const lth_status_change_t *c);

static inline void dp_count(sqlite3 *db, const char *counter)
{
    uint64_t v = 0;
    if (lth_appdb_meta_get(db, counter, 0, &v) == 0)
        lth_appdb_meta_set(db, counter, v + 1);
}

/* Ends the transaction the caller began: commits when rc is 0; otherwise,
 * or when the commit fails, logs "could not <what>: <the database's
 * error>" and rolls back. Returns rc or the commit's error. */
static inline int dp_end(const adp_plugin_host_t *host, sqlite3 *db, int rc, const char *what)
{
    if (rc == 0)
        rc = lth_appdb_commit(db);
    if (rc != 0) {
        adp_plugin_log(host, ADP_LOG_ERROR, "could not %s: %s", what, lth_appdb_error(db));
        lth_appdb_rollback(db);
    }
    return rc;
}

/* seq_sql: "SELECT seq FROM <table> WHERE code = ?"; what: the read model's
 * name for log lines ("the portal view"). */
static inline int dp_status_intake(const adp_plugin_host_t *host, sqlite3 *db,
                                   const char *seq_sql, dp_apply_fn apply, const char *what,
                                   const adp_message_t *msg)
{
    lth_status_change_t c;
    const char *problem = NULL;
    if (msg->kind == ADP_REQUEST || lth_status_change_decode(msg->content_type, msg->payload,
                                                             msg->payload_len, &c, &problem) != 0) {
        adp_plugin_log(host, ADP_LOG_WARN, "dossier.status from %s refused: %s", msg->sender,
                       problem ? problem : "it is a request; send an event");
        if (lth_appdb_begin(db) == 0) {
            dp_count(db, "refused");
            lth_appdb_commit(db);
        }
        return 0;
    }
    int rc = lth_appdb_begin(db);
    if (rc != 0) {
        adp_plugin_log(host, ADP_LOG_ERROR, "%s: database busy or failing: %s", what,
                       lth_appdb_error(db));
        return rc;
    }
    uint64_t last = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, seq_sql, -1, &q, NULL) != SQLITE_OK)
        rc = HUB_ESTORE;
    if (rc == 0) {
        sqlite3_bind_text(q, 1, c.dossier_code, -1, SQLITE_STATIC);
        int s = sqlite3_step(q);
        if (s == SQLITE_ROW)
            last = (uint64_t)sqlite3_column_int64(q, 0);
        else if (s != SQLITE_DONE)
            rc = HUB_ESTORE;
    }
    sqlite3_finalize(q);
    lth_seq_verdict_t verdict = lth_seq_verdict(last, c.sequence);
    if (rc == 0 && verdict == LTH_SEQ_APPLY)
        rc = apply(db, &c);
    if (rc == 0)
        dp_count(db, verdict == LTH_SEQ_APPLY       ? "applied"
                     : verdict == LTH_SEQ_DUPLICATE ? "ignored_duplicate"
                                                    : "ignored_older");
    char doing[128];
    snprintf(doing, sizeof doing, "update %s", what);
    return dp_end(host, db, rc, doing);
}

/* The intake's counters, for the read model's summary line. */
typedef struct {
    uint64_t applied, older, dup, refused;
} dp_intake_counts_t;

static inline void dp_intake_counts(sqlite3 *db, dp_intake_counts_t *c)
{
    *c = (dp_intake_counts_t){0};
    lth_appdb_meta_get(db, "applied", 0, &c->applied);
    lth_appdb_meta_get(db, "ignored_older", 0, &c->older);
    lth_appdb_meta_get(db, "ignored_duplicate", 0, &c->dup);
    lth_appdb_meta_get(db, "refused", 0, &c->refused);
}

/* Whether a periodic summary is due (always when force); when it is, the
 * next one is every_us from now. */
static inline bool dp_summary_due(uint64_t *next_us, uint64_t every_us, bool force)
{
    uint64_t now = hub_now_us();
    if (!force && now < *next_us)
        return false;
    *next_us = now + every_us;
    return true;
}

/* The first one or two integer columns of sql's first row (b may be NULL);
 * what was not read stays 0. */
static inline void dp_query_counts(sqlite3 *db, const char *sql, long long *a, long long *b)
{
    sqlite3_stmt *q = NULL;
    *a = 0;
    if (b)
        *b = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
        *a = sqlite3_column_int64(q, 0);
        if (b)
            *b = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
}

/* The start every read model shares: opens plugin.db (its SQLite file, what
 * names it in the error) with schema and offers dossier.status/v1 with
 * on_status(user). 0, or a code with a sentence in err. */
static inline int dp_read_model_open(const adp_plugin_host_t *host, const char *what,
                                     const char *schema, adp_handler_cb on_status, void *user,
                                     sqlite3 **db, char *err, size_t err_size)
{
    const char *path = adp_plugin_conf_required(host, "db", what, err, err_size);
    int rc = path ? 0 : HUB_EINVAL;
    if (rc == 0)
        rc = lth_appdb_open(path, schema, db, err, err_size);
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_DOSSIER_STATUS, on_status, user);
    return rc;
}

#endif
