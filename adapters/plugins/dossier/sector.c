/* sector — a sector system that resolves dossiers (business registration,
 * VN/GOV/HN-SKHDT/DKKD, is the example; any authority can run it).
 *
 * It offers dossier.submit/v1: each Dossier it receives gets a deterministic,
 * SIMULATED decision plan, fixed on receipt and kept in SQLite (plugin.db):
 * from the dossier code and plugin.seed, a share of dossiers is refused
 * (RETURNED), a share first gets SUPPLEMENT_REQUESTED and PROCESSING, and the
 * rest are DONE, most before the due time and a share after it (late). The
 * steps happen at fractions of the dossier's processing time (due_at -
 * submitted_at). On each tick, the steps whose time has come are sent as
 * DossierStatusChange events (sequence = step number) back to the member
 * that submitted the dossier (dossier.status/v1). A change's at_us is the
 * step's planned time, or the time the dossier arrived if that is later.
 *
 * Idempotent: a dossier delivered again (a redelivery, a duplicate) is
 * recognised by its code and changes nothing; a restart continues the plan,
 * and each step is queued exactly once (lth_appdb.h). Under delegation (ủy
 * quyền) the hub routes to this member dossiers addressed to an authority
 * that delegated dossier.submit/v1 to it: it resolves them in its own name
 * (its status changes name it as actor and authority). A Dossier whose
 * authority_member_id is not the member it was addressed to is returned at
 * once as misaddressed.
 *
 * Config (plugin.*): see adapters/README.md, "sector". Logs hold counts only.
 */
#include "adp_plugin_util.h"
#include "dossier_intake.h"
#include "hub_clock.h"
#include "lth_appdb.h"
#include "lth_dossier.h"
#include "lth_portal.h"

#include <sodium.h>

#include <inttypes.h>
#include <stdlib.h>

#define SECTOR_SUMMARY_EVERY_US 5000000u
#define SECTOR_MAX_STEPS 4

static const char sector_schema[] =
    "CREATE TABLE IF NOT EXISTS dossier("
    " code TEXT PRIMARY KEY, procedure_code TEXT NOT NULL, reply_to TEXT NOT NULL,"
    " submitted_at INTEGER NOT NULL, due_at INTEGER NOT NULL, received_at INTEGER NOT NULL,"
    " deliveries INTEGER NOT NULL DEFAULT 1);"
    "CREATE TABLE IF NOT EXISTS step("
    " code TEXT NOT NULL, n INTEGER NOT NULL, status INTEGER NOT NULL, at_us INTEGER NOT NULL,"
    " note TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(code, n));"
    "CREATE INDEX IF NOT EXISTS step_due ON step(sent, at_us);";

typedef struct {
    const adp_plugin_host_t *host;
    sqlite3 *db;
    uint64_t seed, refuse_pct, supplement_pct, late_pct;
    bool results; /* plugin.results: send a signed electronic result with each DONE */
    bool warned_unsigned;
    unsigned long received, redelivered, refused, steps_sent, delegated;
    uint64_t next_summary_us;
    char last_summary[256];
} sector_t;

typedef struct {
    int status;
    uint64_t at_us;
    char note[LTH_NOTE_MAX];
} sector_step_t;

static uint64_t sector_hash(uint64_t seed, const char *code)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (const unsigned char *p = (const unsigned char *)code; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* The decision plan of one dossier: 1 to 3 steps. */
/* addressed: the member the dossier was sent to — this one, or an authority
 * that delegated the service to this one (the hub routed it here). */
static size_t sector_plan(const sector_t *st, const lth_dossier_t *d, const char *me,
                          const char *addressed, uint64_t received_at,
                          sector_step_t steps[SECTOR_MAX_STEPS])
{
    size_t n = 0;
    uint64_t base = d->submitted_at_us ? d->submitted_at_us : received_at;
    uint64_t span = d->due_at_us > base ? d->due_at_us - base : 1000000u;
    if (d->authority[0] && strcmp(d->authority, addressed) != 0) {
        steps[0] = (sector_step_t){LTH_STATUS_RETURNED, received_at, ""};
        snprintf(steps[0].note, sizeof steps[0].note,
                 "Trả hồ sơ: thủ tục thuộc thẩm quyền của %s, không phải của %s", d->authority,
                 addressed);
        return 1;
    }
    const char *behalf = strcmp(addressed, me) != 0 ? addressed : NULL;
    uint64_t h = sector_hash(st->seed, d->dossier_code);
    unsigned r_refuse = (unsigned)(h % 100), r_supplement = (unsigned)((h >> 8) % 100),
             r_late = (unsigned)((h >> 16) % 100), spread = (unsigned)((h >> 24) % 300);
#define AT(permille) (base + span / 1000u * (permille) + (span % 1000u) * (permille) / 1000u)
    if (r_refuse < st->refuse_pct) {
        steps[n] = (sector_step_t){LTH_STATUS_RETURNED, AT(400 + spread), ""};
        snprintf(steps[n++].note, LTH_NOTE_MAX,
                 "Từ chối giải quyết: hồ sơ không đủ điều kiện (mô phỏng)");
    } else {
        if (r_supplement < st->supplement_pct) {
            steps[n] = (sector_step_t){LTH_STATUS_SUPPLEMENT_REQUESTED, AT(250), ""};
            snprintf(steps[n++].note, LTH_NOTE_MAX,
                     "Đề nghị bổ sung, hoàn thiện giấy tờ (mô phỏng)");
            steps[n] = (sector_step_t){LTH_STATUS_PROCESSING, AT(450), ""};
            snprintf(steps[n++].note, LTH_NOTE_MAX, "Đã nhận giấy tờ bổ sung; tiếp tục giải quyết");
        }
        bool late = r_late < st->late_pct;
        steps[n] = (sector_step_t){LTH_STATUS_DONE, AT((late ? 1150u : 550u) + spread), ""};
        if (behalf)
            snprintf(steps[n++].note, LTH_NOTE_MAX,
                     "Đã giải quyết (theo ủy quyền của %s); kết quả số KQ-%s", behalf,
                     d->dossier_code);
        else
            snprintf(steps[n++].note, LTH_NOTE_MAX, "Đã giải quyết; kết quả số KQ-%s",
                     d->dossier_code);
    }
#undef AT
    for (size_t i = 0; i < n; i++)
        if (steps[i].at_us < received_at)
            steps[i].at_us = received_at;
    return n;
}

static int sector_on_dossier(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                             void *user)
{
    (void)reply;
    sector_t *st = user;
    lth_dossier_t d;
    const char *problem = NULL;
    if (msg->kind == ADP_REQUEST ||
        lth_dossier_decode(msg->content_type, msg->payload, msg->payload_len, &d, &problem) != 0) {
        st->refused++;
        adp_plugin_log(st->host, ADP_LOG_WARN, "dossier.submit from %s refused: %s", msg->sender,
                       problem ? problem : "it is a request; send an event");
        return 0;
    }
    memset(d.applicant_id, 0, sizeof d.applicant_id); /* not needed for the simulation */
    uint64_t now = hub_now_us();
    const char *me = adp_member_id(client);
    int rc = lth_appdb_begin(st->db);
    sqlite3_stmt *q = NULL;
    if (rc == 0 && sqlite3_prepare_v2(st->db,
                                      "INSERT INTO dossier(code, procedure_code, reply_to, "
                                      "submitted_at, due_at, received_at) VALUES(?, ?, ?, ?, ?, ?) "
                                      "ON CONFLICT(code) DO UPDATE SET deliveries = deliveries + 1",
                                      -1, &q, NULL) != SQLITE_OK)
        rc = HUB_ESTORE;
    if (rc == 0) {
        sqlite3_bind_text(q, 1, d.dossier_code, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, d.procedure_code, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, msg->sender, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)d.submitted_at_us);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)d.due_at_us);
        sqlite3_bind_int64(q, 6, (sqlite3_int64)now);
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
    }
    sqlite3_finalize(q);
    q = NULL;
    /* A new dossier has no steps yet; one seen before keeps its plan. */
    bool is_new = false;
    if (rc == 0 && sqlite3_prepare_v2(st->db, "SELECT count(*) FROM step WHERE code = ?", -1, &q,
                                      NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, d.dossier_code, -1, SQLITE_STATIC);
        is_new = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int64(q, 0) == 0;
    }
    sqlite3_finalize(q);
    q = NULL;
    if (rc == 0 && is_new) {
        sector_step_t steps[SECTOR_MAX_STEPS];
        size_t n = sector_plan(st, &d, me ? me : "", msg->receiver, now, steps);
        if (me && strcmp(msg->receiver, me) != 0)
            st->delegated++;
        if (sqlite3_prepare_v2(
                st->db, "INSERT INTO step(code, n, status, at_us, note) VALUES(?, ?, ?, ?, ?)", -1,
                &q, NULL) != SQLITE_OK)
            rc = HUB_ESTORE;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            sqlite3_bind_text(q, 1, d.dossier_code, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 2, (sqlite3_int64)i + 1);
            sqlite3_bind_int(q, 3, steps[i].status);
            sqlite3_bind_int64(q, 4, (sqlite3_int64)steps[i].at_us);
            sqlite3_bind_text(q, 5, steps[i].note, -1, SQLITE_STATIC);
            rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
            sqlite3_reset(q);
        }
        sqlite3_finalize(q);
    }
    rc = dp_end(st->host, st->db, rc, "record a dossier");
    if (rc != 0)
        return rc;
    if (is_new)
        st->received++;
    else
        st->redelivered++;
    return 0;
}

typedef struct {
    char code[LTH_DOSSIER_CODE_MAX];
    char procedure_code[LTH_PROCEDURE_CODE_MAX];
    char reply_to[LTH_MEMBER_MAX];
    uint64_t submitted_at, due_at, at_us, n;
    int status;
    char note[LTH_NOTE_MAX];
} sector_due_t;

/* The electronic result of a DONE dossier (SIMULATED: a reference to a
 * synthetic PDF), coded "<dossier code>-KQ1" and signed with this member's
 * key, queued for the member the dossier came from (dossier.result/v1). */
static int sector_queue_result(sector_t *st, adp_client_t *client, const sector_due_t *due)
{
    lth_result_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.dossier_code, sizeof r.dossier_code, "%s", due->code);
    snprintf(r.result_code, sizeof r.result_code, "%s-KQ1", due->code);
    snprintf(r.procedure_code, sizeof r.procedure_code, "%s", due->procedure_code);
    snprintf(r.uri, sizeof r.uri, "https://ketqua.hanoi.example.invalid/%s.pdf", r.result_code);
    char body[160];
    int body_len = snprintf(body, sizeof body, "ket qua (synthetic) %s", r.result_code);
    crypto_hash_sha256(r.sha256, (const uint8_t *)body, (unsigned long long)body_len);
    snprintf(r.media_type, sizeof r.media_type, "application/pdf");
    r.size_bytes = (uint64_t)body_len;
    snprintf(r.signer, sizeof r.signer, "%s", adp_member_id(client));
    r.decided_at_us = due->at_us;
    char text[1024];
    size_t text_len = lth_result_signing_text(&r, text, sizeof text);
    if (text_len == 0 || adp_sign_detached(client, (const uint8_t *)text, text_len, r.signature,
                                           r.signer_public_key) != 0) {
        if (!st->warned_unsigned)
            adp_plugin_log(st->host, ADP_LOG_WARN,
                           "electronic results cannot be signed (the member key file has no "
                           "signing key): none are sent");
        st->warned_unsigned = true;
        return 0;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = lth_result_encode(&r, &buf, &len);
    if (rc == 0)
        rc = lth_outq_add(st->db, due->reply_to, LTH_SERVICE_DOSSIER_RESULT, LTH_RESULT_TYPE, buf,
                          len);
    free(buf);
    return rc;
}

/* Queues the steps whose time has come, in one transaction. */
static void sector_send_due(sector_t *st, adp_client_t *client)
{
    uint64_t now = hub_now_us();
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT s.code, d.procedure_code, d.reply_to, d.submitted_at, d.due_at,"
                           " s.at_us, s.n, s.status, s.note FROM step s JOIN dossier d USING(code)"
                           " WHERE s.sent = 0 AND s.at_us <= ? ORDER BY s.at_us, s.code, s.n"
                           " LIMIT 256",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)now);
    sector_due_t *due = calloc(256, sizeof *due);
    size_t n = 0;
    while (due && n < 256 && sqlite3_step(q) == SQLITE_ROW) {
        sector_due_t *s = &due[n++];
        snprintf(s->code, sizeof s->code, "%s", (const char *)sqlite3_column_text(q, 0));
        snprintf(s->procedure_code, sizeof s->procedure_code, "%s",
                 (const char *)sqlite3_column_text(q, 1));
        snprintf(s->reply_to, sizeof s->reply_to, "%s", (const char *)sqlite3_column_text(q, 2));
        s->submitted_at = (uint64_t)sqlite3_column_int64(q, 3);
        s->due_at = (uint64_t)sqlite3_column_int64(q, 4);
        s->at_us = (uint64_t)sqlite3_column_int64(q, 5);
        s->n = (uint64_t)sqlite3_column_int64(q, 6);
        s->status = sqlite3_column_int(q, 7);
        snprintf(s->note, sizeof s->note, "%s", (const char *)sqlite3_column_text(q, 8));
    }
    sqlite3_finalize(q);
    q = NULL;
    const char *me = adp_member_id(client);
    int rc = n && lth_appdb_begin(st->db) == 0 ? 0 : HUB_ESTORE;
    if (rc == 0 && sqlite3_prepare_v2(st->db, "UPDATE step SET sent = 1 WHERE code = ? AND n = ?",
                                      -1, &q, NULL) != SQLITE_OK)
        rc = HUB_ESTORE;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        lth_status_change_t c;
        memset(&c, 0, sizeof c);
        snprintf(c.dossier_code, sizeof c.dossier_code, "%s", due[i].code);
        c.status = due[i].status;
        snprintf(c.actor, sizeof c.actor, "%s", me ? me : "");
        c.at_us = due[i].at_us;
        c.sequence = due[i].n;
        snprintf(c.note, sizeof c.note, "%s", due[i].note);
        snprintf(c.procedure_code, sizeof c.procedure_code, "%s", due[i].procedure_code);
        snprintf(c.authority, sizeof c.authority, "%s", me ? me : "");
        c.submitted_at_us = due[i].submitted_at;
        c.due_at_us = due[i].due_at;
        uint8_t *buf = NULL;
        size_t len = 0;
        rc = lth_status_change_encode(&c, &buf, &len);
        if (rc == 0)
            rc = lth_outq_add(st->db, due[i].reply_to, LTH_SERVICE_DOSSIER_STATUS,
                              LTH_STATUS_CHANGE_TYPE, buf, len);
        free(buf);
        if (rc == 0 && st->results && c.status == LTH_STATUS_DONE)
            rc = sector_queue_result(st, client, &due[i]);
        sqlite3_bind_text(q, 1, due[i].code, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)due[i].n);
        if (rc == 0 && sqlite3_step(q) != SQLITE_DONE)
            rc = HUB_ESTORE;
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    free(due);
    if (n == 0)
        return;
    if (dp_end(st->host, st->db, rc, "queue status changes") != 0)
        return;
    st->steps_sent += n;
}

static void sector_summary(sector_t *st)
{
    if (!dp_summary_due(&st->next_summary_us, SECTOR_SUMMARY_EVERY_US, false))
        return;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT (SELECT count(*) FROM dossier),"
                           " (SELECT count(DISTINCT code) FROM step WHERE sent = 0),"
                           " (SELECT count(*) FROM step WHERE sent = 1 AND status = 4),"
                           " (SELECT count(*) FROM step WHERE sent = 1 AND status = 5)",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    char line[256] = "";
    if (sqlite3_step(q) == SQLITE_ROW)
        snprintf(line, sizeof line,
                 "dossiers: received=%lld open=%lld done=%lld returned=%lld redelivered=%lu "
                 "refused=%lu delegated_to_us=%lu",
                 sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1), sqlite3_column_int64(q, 2),
                 sqlite3_column_int64(q, 3), st->redelivered, st->refused, st->delegated);
    sqlite3_finalize(q);
    adp_plugin_log_changed(st->host, st->last_summary, sizeof st->last_summary, line);
}

static int sector_tick(void *state, adp_client_t *client)
{
    sector_t *st = state;
    sector_send_due(st, client);
    int rc = lth_outq_flush(st->db, client, 0, NULL);
    if (rc != 0)
        adp_plugin_log(st->host, ADP_LOG_WARN,
                       "could not hand every queued event to the SDK (%s); will retry",
                       rc == HUB_ESTORE ? lth_appdb_error(st->db) : hub_strerror(rc));
    sector_summary(st);
    return 0;
}

static void sector_destroy(void *state)
{
    sector_t *st = state;
    if (!st)
        return;
    lth_appdb_close(&st->db);
    free(st);
}

static int sector_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    sector_t *st = state;
    st->host = host;
    const char *db =
        adp_plugin_conf_required(host, "db", "the sector system's SQLite file", err, err_size);
    int rc = db ? 0 : HUB_EINVAL;
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "seed", 0, UINT64_MAX, 1, &st->seed, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "refuse_percent", 0, 100, 5, &st->refuse_pct, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "supplement_percent", 0, 100, 20, &st->supplement_pct, err,
                                 err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "late_percent", 0, 100, 15, &st->late_pct, err, err_size);
    uint64_t results = 1;
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "results", 0, 1, 1, &results, err, err_size);
    st->results = results != 0;
    if (rc == 0)
        rc = lth_appdb_open(db, sector_schema, &st->db, err, err_size);
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_DOSSIER_SUBMIT, sector_on_dossier, st);
    if (rc != 0)
        return rc;
    adp_plugin_log(host, ADP_LOG_INFO,
                   "sector system: simulated decisions (refused %" PRIu64 "%%, supplement %" PRIu64
                   "%%, late %" PRIu64 "%%)",
                   st->refuse_pct, st->supplement_pct, st->late_pct);
    return 0;
}

ADP_PLUGIN_DEFINE_STATE("sector",
                        "sector system: receives dossiers, decides (simulated), reports statuses",
                        sector_t, sector_start, sector_tick, sector_destroy);
