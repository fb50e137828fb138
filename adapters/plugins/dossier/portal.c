/* portal — the National Public Service Portal's status synchronisation
 * (Cổng DVCQG, VN/GOV/VPCP/DVCQG) as a hub member.
 *
 * It offers dossier.status/v1 and keeps the portal's view of every dossier
 * (its latest status, note, actor, time, procedure and authority) in SQLite
 * (plugin.db, table `view`). Changes arrive at least once and possibly out of
 * order: one is applied only if its sequence is greater than the last applied
 * for that dossier (lth_seq_verdict); an older change or the same one again
 * changes nothing and is counted (table meta: applied, ignored_older,
 * ignored_duplicate, refused). The view and the counters change in one
 * transaction, before the SDK settles the delivery, so that a crash at any
 * point neither loses nor double-counts a change.
 *
 * Config (plugin.*): see adapters/README.md, "portal". Logs hold counts only.
 */
#include "dossier_intake.h"
#include "adp_plugin_util.h"
#include "hub_clock.h"
#include "lth_appdb.h"
#include "lth_dossier.h"

#include <inttypes.h>
#include <stdlib.h>

#define PORTAL_SUMMARY_EVERY_US 5000000u

static const char portal_schema[] =
    "CREATE TABLE IF NOT EXISTS view("
    " code TEXT PRIMARY KEY, status INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " at_us INTEGER NOT NULL, actor TEXT NOT NULL, note TEXT NOT NULL,"
    " procedure_code TEXT NOT NULL, authority TEXT NOT NULL, due_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL, changes INTEGER NOT NULL);";

typedef struct {
    const adp_plugin_host_t *host;
    sqlite3 *db;
    uint64_t next_summary_us;
    char last_summary[256];
} portal_t;

/* Writes one status change into the table (dp_status_intake's apply). */
static int portal_apply(sqlite3 *db, const lth_status_change_t *c)
{
    sqlite3_stmt *q = NULL;
    int rc = 0;
    /* Context fields are optional in a change: keep what an earlier one said. */
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO view(code, status, seq, at_us, actor, note, procedure_code, authority,"
            " due_at, updated_at, changes) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)"
            " ON CONFLICT(code) DO UPDATE SET status = ?2, seq = ?3, at_us = ?4, actor = ?5,"
            " note = ?6, procedure_code = CASE WHEN ?7 = '' THEN procedure_code ELSE ?7 END,"
            " authority = CASE WHEN ?8 = '' THEN authority ELSE ?8 END,"
            " due_at = CASE WHEN ?9 = 0 THEN due_at ELSE ?9 END, updated_at = ?10,"
            " changes = changes + 1",
            -1, &q, NULL) != SQLITE_OK) {
        rc = HUB_ESTORE;
    } else {
        sqlite3_bind_text(q, 1, c->dossier_code, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 2, c->status);
        sqlite3_bind_int64(q, 3, (sqlite3_int64)c->sequence);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)c->at_us);
        sqlite3_bind_text(q, 5, c->actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, c->note, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 7, c->procedure_code, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 8, c->authority, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 9, (sqlite3_int64)c->due_at_us);
        sqlite3_bind_int64(q, 10, (sqlite3_int64)hub_now_us());
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
    }
    sqlite3_finalize(q);
    return rc;
}

static int portal_on_status(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                            void *user)
{
    (void)client;
    (void)reply;
    portal_t *st = user;
    return dp_status_intake(st->host, st->db, "SELECT seq FROM view WHERE code = ?",
                            portal_apply, "the portal view", msg);
}

static void portal_summary(portal_t *st, bool force)
{
    uint64_t now = hub_now_us();
    if (!force && now < st->next_summary_us)
        return;
    st->next_summary_us = now + PORTAL_SUMMARY_EVERY_US;
    dp_intake_counts_t c;
    dp_intake_counts(st->db, &c);
    long long dossiers, final;
    dp_query_counts(st->db, "SELECT count(*), sum(status IN (4, 5)) FROM view", &dossiers, &final);
    char line[256];
    snprintf(line, sizeof line,
             "portal view: dossiers=%lld final=%lld changes applied=%" PRIu64
             " ignored_older=%" PRIu64 " ignored_duplicate=%" PRIu64 " refused=%" PRIu64,
             dossiers, final, c.applied, c.older, c.dup, c.refused);
    adp_plugin_log_changed(st->host, st->last_summary, sizeof st->last_summary, line);
}

static int portal_tick(void *state, adp_client_t *client)
{
    (void)client;
    portal_summary(state, false);
    return 0;
}

static void portal_destroy(void *state)
{
    portal_t *st = state;
    if (!st)
        return;
    if (st->db)
        portal_summary(st, true);
    lth_appdb_close(&st->db);
    free(st);
}

static int portal_init(const adp_plugin_host_t *host, void **state, char *err, size_t err_size)
{
    portal_t *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    st->host = host;
    int rc = dp_read_model_open(host, "the portal view's SQLite file", portal_schema,
                                portal_on_status, st, &st->db, err, err_size);
    if (rc != 0) {
        if (!err[0])
            snprintf(err, err_size, "%s", hub_strerror(rc));
        portal_destroy(st);
        return rc;
    }
    *state = st;
    return 0;
}

ADP_PLUGIN_DEFINE("portal", "National Public Service Portal: keeps each dossier's latest status",
                  portal_init, portal_tick, portal_destroy);
