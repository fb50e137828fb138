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
 * With plugin.simulate_payments or plugin.simulate_ratings it also plays
 * the applicant's side, for the demo (off by default): an online dossier of
 * a procedure with a fee is paid through the portal's payment platform when
 * it is received or a financial obligation is requested (payment.status/v1,
 * the catalogue's fee, sometimes a failed attempt first), and a decided
 * dossier is rated (feedback.submit/v1, 1-5 per criterion), both sent to the
 * procedure system the statuses came from. Which dossiers, and the scores,
 * follow from plugin.seed and the dossier code, so a run is reproducible;
 * table `applicant` keeps what was sent, in the transaction that queues it.
 *
 * The fees it charges are those of its own copy of the procedure catalogue,
 * kept from what the procedure system publishes (catalogue_copy.h), as the
 * national portal follows the province's published procedures: a reload
 * that amends a fee reaches the portal as a CatalogueDelta.
 *
 * Config (plugin.*): see adapters/README.md, "portal". Logs hold counts only.
 */
#include "dossier_intake.h"
#include "adp_plugin_util.h"
#include "hub_clock.h"
#include "lth_appdb.h"
#include "lth_dossier.h"
#include "lth_portal.h"
#include "lth_procedure.h"
#include "catalogue_copy.h"
#include "domain.pb-c.h"

#include <sodium.h>

#include <inttypes.h>
#include <stdlib.h>

#define PORTAL_SUMMARY_EVERY_US 5000000u

static const char portal_schema[] =
    "CREATE TABLE IF NOT EXISTS view("
    " code TEXT PRIMARY KEY, status INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " at_us INTEGER NOT NULL, actor TEXT NOT NULL, note TEXT NOT NULL,"
    " procedure_code TEXT NOT NULL, authority TEXT NOT NULL, due_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL, changes INTEGER NOT NULL);"
    /* Electronic results whose signature verified, and those refused. */
    "CREATE TABLE IF NOT EXISTS result("
    " result_code TEXT PRIMARY KEY, code TEXT NOT NULL, signer TEXT NOT NULL,"
    " signer_key TEXT NOT NULL, sha256 TEXT NOT NULL, media_type TEXT NOT NULL,"
    " size INTEGER NOT NULL, uri TEXT NOT NULL, decided_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS refused_result("
    " id INTEGER PRIMARY KEY, code TEXT NOT NULL, sender TEXT NOT NULL, reason TEXT NOT NULL);"
    /* The newest statistics.sync/v1 of each publisher, per authority. */
    "CREATE TABLE IF NOT EXISTS statistics("
    " publisher TEXT NOT NULL, authority TEXT NOT NULL, sequence INTEGER NOT NULL,"
    " period_from INTEGER NOT NULL, period_to INTEGER NOT NULL, status INTEGER NOT NULL,"
    " dossiers INTEGER NOT NULL, on_time INTEGER NOT NULL, late INTEGER NOT NULL,"
    " overdue INTEGER NOT NULL, PRIMARY KEY(publisher, authority, status));"
    /* Liên thông: each step of a dossier that passes several authorities,
     * with its own time limit and the last status it had. */
    "CREATE TABLE IF NOT EXISTS step("
    " code TEXT NOT NULL, n INTEGER NOT NULL, steps INTEGER NOT NULL, authority TEXT NOT NULL,"
    " due_at INTEGER NOT NULL, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL,"
    " status INTEGER NOT NULL, PRIMARY KEY(code, n));"
    /* The applicant simulation: what was sent for each dossier. */
    "CREATE TABLE IF NOT EXISTS applicant("
    " code TEXT PRIMARY KEY, paid INTEGER NOT NULL DEFAULT 0, rated INTEGER NOT NULL DEFAULT 0);";

typedef struct {
    const adp_plugin_host_t *host;
    sqlite3 *db;
    uint64_t next_summary_us;
    char last_summary[256];
    uint64_t pay_pct;         /* plugin.simulate_payments: % of online fee dossiers paid */
    uint64_t rate_pct;        /* plugin.simulate_ratings: % of decided dossiers rated */
    uint64_t seed;            /* plugin.seed */
    catcopy_t *catalogue;     /* its copy of the published catalogue */
    bool unknown_fee_warned;  /* a dossier of a procedure the copy lacks was logged */
} portal_t;

/* Writes one status change into the table (dp_status_intake's apply). */
static int portal_apply(sqlite3 *db, const lth_status_change_t *c)
{
    /* Context fields are optional in a change: keep what an earlier one said. */
    int rc = lth_appdb_run(
        db,
        "INSERT INTO view(code, status, seq, at_us, actor, note, procedure_code, authority,"
        " due_at, updated_at, changes) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)"
        " ON CONFLICT(code) DO UPDATE SET status = ?2, seq = ?3, at_us = ?4, actor = ?5,"
        " note = ?6, procedure_code = CASE WHEN ?7 = '' THEN procedure_code ELSE ?7 END,"
        " authority = CASE WHEN ?8 = '' THEN authority ELSE ?8 END,"
        " due_at = CASE WHEN ?9 = 0 THEN due_at ELSE ?9 END, updated_at = ?10,"
        " changes = changes + 1",
        "tiIIttttII", c->dossier_code, c->status, c->sequence, c->at_us, c->actor, c->note,
        c->procedure_code, c->authority, c->due_at_us, hub_now_us());
    if (rc == 0 && c->step > 0)
        rc = lth_appdb_run(db,
                           "INSERT INTO step(code, n, steps, authority, due_at, first_at,"
                           " last_at, status) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)"
                           " ON CONFLICT(code, n) DO UPDATE SET last_at = ?6, status = ?7,"
                           " authority = ?4",
                           "tiitIIi", c->dossier_code, (int)c->step, (int)c->steps,
                           c->step_authority, c->step_due_at_us, c->at_us, c->status);
    /* The first change of step n is the hand-over: step n - 1 was DONE at
     * that moment. */
    if (rc == 0 && c->step > 1)
        rc = lth_appdb_run(db,
                           "UPDATE step SET status = 4, last_at = ?3 WHERE code = ?1 AND"
                           " n = ?2 AND status <> 4",
                           "tiI", c->dossier_code, (int)c->step - 1, c->at_us);
    return rc;
}

/* Queues a receipt for the member that synchronised (dossier.synced/v1). */
static int portal_receipt(portal_t *st, adp_client_t *client, const char *to,
                          const lth_receipt_t *r)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = lth_receipt_encode(r, &buf, &len);
    if (rc == 0)
        rc = lth_appdb_begin(st->db);
    if (rc == 0) {
        rc = lth_outq_add(st->db, to, LTH_SERVICE_DOSSIER_SYNCED, LTH_RECEIPT_TYPE, buf, len);
        rc = rc == 0 ? lth_appdb_commit(st->db) : rc;
        if (rc != 0)
            lth_appdb_rollback(st->db);
    }
    free(buf);
    if (rc == 0)
        lth_outq_flush(st->db, client, 0, NULL);
    return rc;
}

/* ---- the applicant's side (plugin.simulate_*) ---- */

/* A number that depends only on the seed, the dossier code and what it is
 * for (FNV-1a, then a SplitMix64 finaliser). */
static uint64_t portal_roll(const portal_t *st, const char *code, const char *what)
{
    uint64_t h = 1469598103934665603u ^ st->seed;
    for (const char *p = code; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    for (const char *p = what; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    h += 0x9e3779b97f4a7c15u;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

/* Whether the simulation already did `column` (paid, rated) for code. */
static bool portal_sim_done(portal_t *st, const char *code, const char *column)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT %s FROM applicant WHERE code = ?", column);
    sqlite3_stmt *q = NULL;
    bool done = false;
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
        done = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) != 0;
    }
    sqlite3_finalize(q);
    return done;
}

/* Queues the messages and marks `column` done for code, in one transaction. */
static int portal_sim_send(portal_t *st, adp_client_t *client, const char *to, const char *code,
                           const char *column, const char *service, const char *type,
                           uint8_t *const *bufs, const size_t *lens, size_t n)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "INSERT INTO applicant(code, %s) VALUES(?, 1) ON CONFLICT(code) DO UPDATE SET %s = 1",
             column, column);
    int rc = lth_appdb_begin(st->db);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = lth_outq_add(st->db, to, service, type, bufs[i], lens[i]);
    sqlite3_stmt *q = NULL;
    if (rc == 0 && sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK)
        rc = HUB_ESTORE;
    if (rc == 0) {
        sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
    }
    sqlite3_finalize(q);
    rc = rc == 0 ? lth_appdb_commit(st->db) : rc;
    if (rc != 0) {
        adp_plugin_log(st->host, ADP_LOG_ERROR, "applicant simulation: could not queue %s: %s",
                       service, lth_appdb_error(st->db));
        lth_appdb_rollback(st->db);
        return rc;
    }
    lth_outq_flush(st->db, client, 0, NULL);
    return 0;
}

/* The fee of an online dossier, paid when it is received or a financial
 * obligation is requested: one attempt in eight fails first (a declined
 * card), then the applicant pays again. */
static int portal_sim_payment(portal_t *st, adp_client_t *client, const char *to,
                              const lth_status_change_t *c)
{
    uint64_t fee = lth_procedure_fee_vnd(c->procedure_code);
    if (st->pay_pct && c->status == LTH_STATUS_RECEIVED && !lth_procedure_find(c->procedure_code) &&
        !st->unknown_fee_warned) {
        st->unknown_fee_warned = true;
        adp_plugin_log(st->host, ADP_LOG_WARN,
                       "applicant simulation: %s is not in force in the portal's catalogue "
                       "copy: no fee to pay (is catalogue.published/v1 received? see the "
                       "start-up line)",
                       c->procedure_code);
    }
    if (!st->pay_pct || c->channel != LTH_CHANNEL_ONLINE || !fee ||
        (c->status != LTH_STATUS_RECEIVED &&
         c->status != LTH_STATUS_FINANCIAL_OBLIGATION_REQUESTED) ||
        portal_roll(st, c->dossier_code, "pay") % 100u >= st->pay_pct ||
        portal_sim_done(st, c->dossier_code, "paid"))
        return 0;
    uint64_t ref = portal_roll(st, c->dossier_code, "ref");
    bool fails_first = portal_roll(st, c->dossier_code, "fail") % 8u == 0;
    uint8_t *bufs[2] = {NULL, NULL};
    size_t lens[2] = {0, 0}, n = 0;
    int rc = 0;
    for (unsigned attempt = fails_first ? 0 : 1; rc == 0 && attempt < 2; attempt++) {
        lth_payment_t p;
        memset(&p, 0, sizeof p);
        snprintf(p.dossier_code, sizeof p.dossier_code, "%s", c->dossier_code);
        snprintf(p.procedure_code, sizeof p.procedure_code, "%s", c->procedure_code);
        snprintf(p.transaction_ref, sizeof p.transaction_ref, "SIMPAY-%016" PRIx64 "-%u", ref,
                 attempt + 1);
        p.fee_vnd = fee;
        p.outcome = attempt ? LTH_PAYMENT_PAID : LTH_PAYMENT_FAILED;
        p.amount_vnd = attempt ? fee : 0;
        p.channel = LTH_CHANNEL_ONLINE;
        p.at_us = hub_now_us();
        if (!attempt)
            snprintf(p.reason, sizeof p.reason, "card declined (simulated)");
        rc = lth_payment_encode(&p, &bufs[n], &lens[n]);
        n += rc == 0;
    }
    if (rc == 0)
        rc = portal_sim_send(st, client, to, c->dossier_code, "paid", LTH_SERVICE_PAYMENT_STATUS,
                             LTH_PAYMENT_TYPE, bufs, lens, n);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    return rc;
}

/* A decided dossier (the last step's decision under liên thông) is rated on
 * four criteria, mostly 4 or 5, sometimes lower. */
static int portal_sim_rating(portal_t *st, adp_client_t *client, const char *to,
                             const lth_status_change_t *c)
{
    static const char *const criteria[] = {"access", "documents", "officials", "time"};
    if (!st->rate_pct ||
        (c->status != LTH_STATUS_DONE && c->status != LTH_STATUS_RESULT_HANDED_OVER) ||
        c->step < c->steps || portal_roll(st, c->dossier_code, "rate") % 100u >= st->rate_pct ||
        portal_sim_done(st, c->dossier_code, "rated"))
        return 0;
    lth_feedback_t f;
    memset(&f, 0, sizeof f);
    snprintf(f.dossier_code, sizeof f.dossier_code, "%s", c->dossier_code);
    for (size_t i = 0; i < sizeof criteria / sizeof criteria[0]; i++) {
        uint64_t h = portal_roll(st, c->dossier_code, criteria[i]);
        snprintf(f.ratings[i].criterion, sizeof f.ratings[i].criterion, "%s", criteria[i]);
        f.ratings[i].score =
            h % 10u == 0 ? 1u + (unsigned)(h / 10u % 3u) : 4u + (unsigned)(h / 10u % 2u);
        f.n_ratings++;
    }
    f.at_us = hub_now_us();
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = lth_feedback_encode(&f, &buf, &len);
    if (rc == 0)
        rc = portal_sim_send(st, client, to, c->dossier_code, "rated", LTH_SERVICE_FEEDBACK,
                             LTH_FEEDBACK_TYPE, &buf, &len, 1);
    free(buf);
    return rc;
}

/* Applies the change (dp_status_intake), then answers the sender with a
 * receipt for the sequence the view now holds: a redelivered change is
 * confirmed again, so that a lost receipt is made good. */
static int portal_on_status(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                            void *user)
{
    (void)reply;
    portal_t *st = user;
    int rc = dp_status_intake(st->host, st->db, "SELECT seq FROM view WHERE code = ?", portal_apply,
                              "the portal view", msg);
    lth_status_change_t c;
    if (rc != 0 || msg->kind == ADP_REQUEST ||
        lth_status_change_decode(msg->content_type, msg->payload, msg->payload_len, &c, NULL) != 0)
        return rc;
    lth_receipt_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.dossier_code, sizeof r.dossier_code, "%s", c.dossier_code);
    r.sequence = c.sequence;
    r.accepted = true;
    rc = portal_receipt(st, client, msg->sender, &r);
    /* The applicant's side: a redelivered change finds it done already. */
    if (rc == 0)
        rc = portal_sim_payment(st, client, msg->sender, &c);
    if (rc == 0)
        rc = portal_sim_rating(st, client, msg->sender, &c);
    return rc;
}

/* dossier.result/v1: the result's own signature is verified (decoding does
 * it), and its signer must be the authority the portal's view names for the
 * dossier; kept, and answered with a receipt either way. */
static int portal_on_result(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                            void *user)
{
    (void)reply;
    portal_t *st = user;
    if (msg->kind == ADP_REQUEST)
        return 0;
    lth_result_t res;
    const char *why = NULL;
    lth_result_decode(msg->content_type, msg->payload, msg->payload_len, &res, &why);
    char authority[LTH_MEMBER_MAX] = "";
    if (!why) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(st->db, "SELECT authority FROM view WHERE code = ?", -1, &q, NULL) ==
            SQLITE_OK) {
            sqlite3_bind_text(q, 1, res.dossier_code, -1, SQLITE_STATIC);
            if (sqlite3_step(q) == SQLITE_ROW)
                snprintf(authority, sizeof authority, "%s",
                         (const char *)sqlite3_column_text(q, 0));
        }
        sqlite3_finalize(q);
        if (!authority[0])
            why = "the portal has no status of that dossier yet";
        else if (strcmp(authority, res.signer) != 0)
            why = "the result is not signed by the dossier's deciding authority";
    }
    int rc = lth_appdb_begin(st->db);
    sqlite3_stmt *q = NULL;
    if (rc == 0 && why) {
        adp_plugin_log(st->host, ADP_LOG_WARN, "dossier.result from %s refused: %s", msg->sender,
                       why);
        if (sqlite3_prepare_v2(st->db,
                               "INSERT INTO refused_result(code, sender, reason) VALUES(?, ?, ?)",
                               -1, &q, NULL) != SQLITE_OK)
            rc = HUB_ESTORE;
        if (rc == 0) {
            sqlite3_bind_text(q, 1, res.dossier_code, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, msg->sender, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, why, -1, SQLITE_STATIC);
        }
    } else if (rc == 0) {
        if (sqlite3_prepare_v2(st->db,
                               "INSERT OR IGNORE INTO result(result_code, code, signer, signer_key,"
                               " sha256, media_type, size, uri, decided_at)"
                               " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               -1, &q, NULL) != SQLITE_OK)
            rc = HUB_ESTORE;
        char key[65], digest[65];
        sodium_bin2hex(key, sizeof key, res.signer_public_key, 32);
        sodium_bin2hex(digest, sizeof digest, res.sha256, 32);
        if (rc == 0) {
            sqlite3_bind_text(q, 1, res.result_code, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, res.dossier_code, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, res.signer, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 4, key, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 5, digest, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 6, res.media_type, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 7, (sqlite3_int64)res.size_bytes);
            sqlite3_bind_text(q, 8, res.uri, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 9, (sqlite3_int64)res.decided_at_us);
        }
    }
    if (rc == 0 && sqlite3_step(q) != SQLITE_DONE)
        rc = HUB_ESTORE;
    sqlite3_finalize(q);
    rc = dp_end(st->host, st->db, rc, "record a result");
    if (rc != 0)
        return rc;
    lth_receipt_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.dossier_code, sizeof r.dossier_code, "%s", res.dossier_code);
    snprintf(r.result_code, sizeof r.result_code, "%s", res.result_code);
    r.accepted = why == NULL;
    snprintf(r.reason, sizeof r.reason, "%s", why ? why : "");
    return res.dossier_code[0] ? portal_receipt(st, client, msg->sender, &r) : 0;
}

/* statistics.sync/v1: the newest sequence of each publisher replaces what
 * it said before. */
static int portal_on_statistics(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                                void *user)
{
    (void)client;
    (void)reply;
    portal_t *st = user;
    if (msg->kind == ADP_REQUEST ||
        !lth_domain_content_type_is(msg->content_type, "StatisticsSync"))
        return 0;
    Lth__Domain__V1__StatisticsSync *m =
        lth__domain__v1__statistics_sync__unpack(NULL, msg->payload_len, msg->payload);
    if (!m) {
        adp_plugin_log(st->host, ADP_LOG_WARN,
                       "statistics.sync from %s refused: not a "
                       "StatisticsSync",
                       msg->sender);
        return 0;
    }
    uint64_t last = 0;
    long long have = 0;
    {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(st->db, "SELECT max(sequence) FROM statistics WHERE publisher = ?",
                               -1, &q, NULL) == SQLITE_OK) {
            sqlite3_bind_text(q, 1, msg->sender, -1, SQLITE_STATIC);
            if (sqlite3_step(q) == SQLITE_ROW)
                have = sqlite3_column_int64(q, 0);
        }
        sqlite3_finalize(q);
        last = (uint64_t)have;
    }
    int rc = 0;
    if (m->sequence > last && (rc = lth_appdb_begin(st->db)) == 0) {
        sqlite3_stmt *del = NULL, *ins = NULL;
        if (sqlite3_prepare_v2(st->db, "DELETE FROM statistics WHERE publisher = ?", -1, &del,
                               NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(st->db,
                               "INSERT OR REPLACE INTO statistics VALUES(?, ?, ?, ?, ?, ?, ?, ?, "
                               "?, ?)",
                               -1, &ins, NULL) != SQLITE_OK)
            rc = HUB_ESTORE;
        if (rc == 0) {
            sqlite3_bind_text(del, 1, msg->sender, -1, SQLITE_STATIC);
            rc = sqlite3_step(del) == SQLITE_DONE ? 0 : HUB_ESTORE;
        }
        for (size_t i = 0; rc == 0 && i < m->n_authorities; i++) {
            const Lth__Domain__V1__AuthorityStatistics *a = m->authorities[i];
            for (size_t j = 0; rc == 0 && j < a->n_counts; j++) {
                sqlite3_bind_text(ins, 1, msg->sender, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, a->authority_member_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 3, (sqlite3_int64)m->sequence);
                sqlite3_bind_int64(ins, 4, (sqlite3_int64)a->period_from_us);
                sqlite3_bind_int64(ins, 5, (sqlite3_int64)a->period_to_us);
                sqlite3_bind_int(ins, 6, (int)a->counts[j]->status);
                sqlite3_bind_int64(ins, 7, (sqlite3_int64)a->counts[j]->dossiers);
                sqlite3_bind_int64(ins, 8, (sqlite3_int64)a->on_time);
                sqlite3_bind_int64(ins, 9, (sqlite3_int64)a->late);
                sqlite3_bind_int64(ins, 10, (sqlite3_int64)a->overdue);
                rc = sqlite3_step(ins) == SQLITE_DONE ? 0 : HUB_ESTORE;
                sqlite3_reset(ins);
            }
        }
        sqlite3_finalize(del);
        sqlite3_finalize(ins);
        rc = rc == 0 ? lth_appdb_commit(st->db) : rc;
        if (rc != 0)
            lth_appdb_rollback(st->db);
    }
    lth__domain__v1__statistics_sync__free_unpacked(m, NULL);
    return rc;
}

static void portal_summary(portal_t *st, bool force)
{
    if (!dp_summary_due(&st->next_summary_us, PORTAL_SUMMARY_EVERY_US, force))
        return;
    dp_intake_counts_t c;
    dp_intake_counts(st->db, &c);
    long long dossiers, final;
    dp_query_counts(st->db, "SELECT count(*), sum(status IN (4, 5, 7)) FROM view", &dossiers,
                    &final);
    long long paid = 0, rated = 0;
    if (st->pay_pct || st->rate_pct)
        dp_query_counts(st->db,
                        "SELECT coalesce(sum(paid), 0), coalesce(sum(rated), 0)"
                        " FROM applicant",
                        &paid, &rated);
    char line[256];
    snprintf(line, sizeof line,
             "portal view: dossiers=%lld final=%lld changes applied=%" PRIu64
             " ignored_older=%" PRIu64 " ignored_duplicate=%" PRIu64 " refused=%" PRIu64
             " simulated paid=%lld rated=%lld",
             dossiers, final, c.applied, c.older, c.dup, c.refused, paid, rated);
    adp_plugin_log_changed(st->host, st->last_summary, sizeof st->last_summary, line);
}

static int portal_tick(void *state, adp_client_t *client)
{
    portal_t *st = state;
    catcopy_tick(st->catalogue, client);     /* the whole catalogue, when it lacks it */
    lth_outq_flush(st->db, client, 0, NULL); /* receipts a crash left queued */
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
    catcopy_destroy(&st->catalogue);
    lth_appdb_close(&st->db);
    free(st);
}

static int portal_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    portal_t *st = state;
    st->host = host;
    int rc = dp_read_model_open(host, "the portal view's SQLite file", portal_schema,
                                portal_on_status, st, &st->db, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "simulate_payments", 0, 100, 0, &st->pay_pct, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "simulate_ratings", 0, 100, 0, &st->rate_pct, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "seed", 0, UINT64_MAX, 1, &st->seed, err, err_size);
    /* The fees the simulated payments carry: the portal's copy of the
     * catalogue the procedure system publishes, not a file of its own. */
    if (rc == 0 && host->config(host, "catalogue_file")) {
        snprintf(err, err_size,
                 "plugin.catalogue_file is not read by the portal: it keeps its own copy of "
                 "the catalogue the procedure system publishes (catalogue.published/v1 of "
                 "plugin.publisher); remove the line");
        rc = HUB_EINVAL;
    }
    if (rc == 0)
        rc = catcopy_new(host, st->db, "the portal", &st->catalogue, err, err_size);
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_DOSSIER_RESULT, portal_on_result, st);
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_STATISTICS, portal_on_statistics, st);
    return rc;
}

ADP_PLUGIN_DEFINE_STATE("portal",
                        "National Public Service Portal: keeps each dossier's latest status",
                        portal_t, portal_start, portal_tick, portal_destroy);
