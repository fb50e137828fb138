/* The dossier.status intake that the read models (portal, report) share:
 * decode the change, refuse a request or an undecodable payload (counted
 * as "refused"), and in one SQLite transaction look up the sequence last
 * applied to the dossier, apply the change only when it is newer (so a
 * redelivered or reordered change alters nothing), and count it as
 * "applied", "ignored_duplicate" or "ignored_older". Header-only, like
 * adp_plugin_util.h: each plugin is its own shared object. */
#ifndef DOSSIER_INTAKE_H
#define DOSSIER_INTAKE_H

#include "adp_plugin_util.h"
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
    if (rc == 0)
        rc = lth_appdb_commit(db);
    if (rc != 0) {
        adp_plugin_log(host, ADP_LOG_ERROR, "could not update %s: %s", what, lth_appdb_error(db));
        lth_appdb_rollback(db);
        return rc;
    }
    return 0;
}

#endif
