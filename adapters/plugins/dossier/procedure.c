/* procedure — the city's procedure information system (Hệ thống thông tin
 * giải quyết TTHC, VN/GOV/HN-VP/TTHC) as a hub member.
 *
 * On every tick it submits dossiers from a deterministic generator of
 * SYNTHETIC dossiers (lth_dossier.h); returns at once a dossier whose
 * applicant was authenticated below the level its procedure requires
 * (Decree 59/2022); checks each other applicant's identity with the National
 * Population Database — citizen.lookup/v1 where the authority needs data
 * from the record, citizen.verify/v1 where the declared identity only has to
 * be confirmed (the catalogue says which, lth_procedure.h), a batch per
 * procedure per tick, under the procedure's purpose code; returns the
 * dossier when the ID number is invalid, no citizen has it or the declared
 * identity does not match, and otherwise receives it and forwards it to the
 * competent authority (dossier.submit/v1). Every status change it makes, and every change the
 * authority — or the delegate the hub routed the dossier to (ủy quyền) —
 * reports back (dossier.status/v1, which it offers), goes as a
 * DossierStatusChange event with this system's per-dossier sequence to the
 * portal and to reporting (both dossier.status/v1). A dossier still open past
 * its due time (plus plugin.overdue_grace_ms) gets an OVERDUE change.
 *
 * State (dossiers, statuses, the history of changes, the generator's next
 * index, events not yet handed to the SDK) lives in SQLite (plugin.db), so a
 * restart continues where it stopped: the generator index is the dossier
 * code, so no dossier is submitted twice. Events are queued in the same
 * transaction as the change that causes them (lth_appdb.h) and then posted;
 * set state_dir so that the SDK's outbox survives a restart too.
 *
 * Config (plugin.*): see adapters/README.md, "procedure". Logs hold counts,
 * never a personal ID number.
 */
#include "domain.pb-c.h"
#include "adp_plugin_util.h"
#include "hub_wire.h"
#include "lth_appdb.h"
#include "lth_dossier.h"
#include "lth_lookup.h"
#include "lth_workcal.h"
#include "lth_domain.h"
#include "lth_procedure.h"
#include "lth_verify.h"
#include "catalogue_pub.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <stdlib.h>

#define PROC_MAX_PROCEDURES 64
#define PROC_SUMMARY_EVERY_US 5000000u
#define PROC_PURPOSE "Tiếp nhận hồ sơ TTHC %s: xác minh danh tính người nộp hồ sơ"

static const char proc_schema[] =
    "CREATE TABLE IF NOT EXISTS dossier("
    " code TEXT PRIMARY KEY, idx INTEGER UNIQUE NOT NULL,"
    " procedure_code TEXT NOT NULL, authority TEXT NOT NULL,"
    " applicant TEXT NOT NULL," /* personal data: never logged */
    " submitted_at INTEGER NOT NULL, due_at INTEGER NOT NULL,"
    " identity TEXT," /* NULL until checked: FOUND, NOT_FOUND, INVALID_KEY, MISMATCH,
                         ASSURANCE (returned for its applicant's assurance level) */
    " identity_at INTEGER, forwarded_at INTEGER, decided_at INTEGER,"
    " status INTEGER NOT NULL DEFAULT 0,"        /* latest DossierStatus */
    " seq INTEGER NOT NULL DEFAULT 0,"           /* sequence of the latest change sent */
    " authority_seq INTEGER NOT NULL DEFAULT 0," /* last applied change from the authority */
    " resolver TEXT," /* the delegate that resolves it, if not the authority */
    " overdue_sent INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS declared("
    " code TEXT PRIMARY KEY," /* what the applicant declared: personal data, never logged */
    " full_name TEXT NOT NULL, date_of_birth TEXT NOT NULL, sex INTEGER NOT NULL,"
    " residence TEXT NOT NULL,"
    " assurance INTEGER NOT NULL, auth_method INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dossier_unchecked ON dossier(identity, idx);"
    "CREATE TABLE IF NOT EXISTS history("
    " code TEXT NOT NULL, seq INTEGER NOT NULL, status INTEGER NOT NULL, actor TEXT NOT NULL,"
    " at_us INTEGER NOT NULL, note TEXT NOT NULL, PRIMARY KEY(code, seq));";

typedef struct {
    const adp_plugin_host_t *host;
    sqlite3 *db;
    uint64_t dossiers, rate, day_us, lookup_timeout_ms, overdue_grace_us;
    lth_dossier_gen_t gen;
    const lth_procedure_t *procs[PROC_MAX_PROCEDURES];
    char population[LTH_MEMBER_MAX], portal[LTH_MEMBER_MAX], report[LTH_MEMBER_MAX];
    bool lookup_failing; /* to log a failing look-up once, not every tick */
    uint64_t lookups;    /* look-ups that reached the hub (answered, refused, timed out) */
    unsigned long ignored_changes, refused_changes, delegated;
    uint64_t next_summary_us;
    char last_summary[512];
    catpub_t *catalogue;      /* publishes the catalogue (catalogue_pub.h) */
    struct proc_batch *batch; /* the identity checks' buffers, kept between ticks */
    char me[LTH_MEMBER_MAX];  /* this member's id, for changes made while submitting */
    lth_workcal_t *calendar;  /* plugin.calendar: working days and hours, or NULL */
    bool calendar_warned;     /* a due date past the calendar's years was logged */
} proc_t;

/* One dossier row, as the flow needs it. */
typedef struct {
    char code[LTH_DOSSIER_CODE_MAX];
    char procedure_code[LTH_PROCEDURE_CODE_MAX];
    char authority[LTH_MEMBER_MAX]; /* as addressed (the procedure's authority) */
    char resolver[LTH_MEMBER_MAX];  /* "" or the delegate that answers for it */
    char applicant[LTH_APPLICANT_MAX];
    uint64_t submitted_at, due_at, seq, authority_seq;
    int status;
    bool forwarded;
} proc_dossier_t;

static const char *proc_me(adp_client_t *client)
{
    const char *me = client ? adp_member_id(client) : NULL;
    return me ? me : "";
}

static int proc_load(proc_t *st, const char *code, proc_dossier_t *d)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT code, procedure_code, authority, applicant, submitted_at, "
                           "due_at, seq, authority_seq, status, coalesce(resolver, ''), "
                           "forwarded_at IS NOT NULL FROM dossier WHERE code = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        snprintf(d->code, sizeof d->code, "%s", (const char *)sqlite3_column_text(q, 0));
        snprintf(d->procedure_code, sizeof d->procedure_code, "%s",
                 (const char *)sqlite3_column_text(q, 1));
        snprintf(d->authority, sizeof d->authority, "%s", (const char *)sqlite3_column_text(q, 2));
        snprintf(d->applicant, sizeof d->applicant, "%s", (const char *)sqlite3_column_text(q, 3));
        d->submitted_at = (uint64_t)sqlite3_column_int64(q, 4);
        d->due_at = (uint64_t)sqlite3_column_int64(q, 5);
        d->seq = (uint64_t)sqlite3_column_int64(q, 6);
        d->authority_seq = (uint64_t)sqlite3_column_int64(q, 7);
        d->status = sqlite3_column_int(q, 8);
        snprintf(d->resolver, sizeof d->resolver, "%s", (const char *)sqlite3_column_text(q, 9));
        d->forwarded = sqlite3_column_int(q, 10) != 0;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HUB_ENOTFOUND : HUB_ESTORE;
}

static int proc_step(sqlite3 *db, const char *sql, const char *code, uint64_t a, uint64_t b)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    int n = sqlite3_bind_parameter_count(q);
    sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
    if (n >= 2)
        sqlite3_bind_int64(q, 2, (sqlite3_int64)a);
    if (n >= 3)
        sqlite3_bind_int64(q, 3, (sqlite3_int64)b);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : HUB_ESTORE;
}

/* Records the dossier's next status change and queues it for the portal and
 * reporting (inside the caller's transaction). */
static int proc_emit(proc_t *st, proc_dossier_t *d, int status, const char *actor, uint64_t at_us,
                     const char *note)
{
    lth_status_change_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.dossier_code, sizeof c.dossier_code, "%s", d->code);
    c.status = status;
    snprintf(c.actor, sizeof c.actor, "%s", actor);
    c.at_us = at_us;
    c.sequence = d->seq + 1;
    snprintf(c.note, sizeof c.note, "%s", note);
    snprintf(c.procedure_code, sizeof c.procedure_code, "%s", d->procedure_code);
    /* Who resolves it: under delegation (ủy quyền), the delegate. */
    snprintf(c.authority, sizeof c.authority, "%s", d->resolver[0] ? d->resolver : d->authority);
    c.submitted_at_us = d->submitted_at;
    c.due_at_us = d->due_at;

    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO history(code, seq, status, actor, at_us, note) "
                           "VALUES(?, ?, ?, ?, ?, ?)",
                           -1, &q, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    sqlite3_bind_text(q, 1, d->code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)c.sequence);
    sqlite3_bind_int(q, 3, status);
    sqlite3_bind_text(q, 4, actor, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, (sqlite3_int64)at_us);
    sqlite3_bind_text(q, 6, c.note, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
    sqlite3_finalize(q);
    if (rc == 0)
        rc = proc_step(st->db, "UPDATE dossier SET status = ?3, seq = ?2 WHERE code = ?1", d->code,
                       c.sequence, (uint64_t)status);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = lth_status_change_encode(&c, &buf, &len);
    if (rc == 0 && st->portal[0])
        rc = lth_outq_add(st->db, st->portal, LTH_SERVICE_DOSSIER_STATUS, LTH_STATUS_CHANGE_TYPE,
                          buf, len);
    if (rc == 0 && st->report[0])
        rc = lth_outq_add(st->db, st->report, LTH_SERVICE_DOSSIER_STATUS, LTH_STATUS_CHANGE_TYPE,
                          buf, len);
    free(buf);
    if (rc == 0) {
        d->seq = c.sequence;
        d->status = status;
    }
    return rc;
}

static void proc_flush(proc_t *st, adp_client_t *client)
{
    int rc = lth_outq_flush(st->db, client, 0, NULL);
    if (rc != 0)
        adp_plugin_log(st->host, ADP_LOG_WARN,
                       "could not hand every queued event to the SDK (%s); will retry",
                       rc == HUB_ESTORE ? lth_appdb_error(st->db) : hub_strerror(rc));
}

/* ---- submitting ---- */

/* When a dossier received at now is due: with plugin.calendar, in working
 * days and hours (lth_workcal.h); without, every day a working day and a
 * day plugin.day_ms long (demos and tests run days in seconds). */
static uint64_t proc_due(proc_t *st, const lth_procedure_t *p, uint64_t now)
{
    if (!st->calendar)
        return now + lth_limit_duration_us(p->limit_amount, p->limit_unit, st->day_us);
    int64_t due = 0;
    int rc =
        !strcmp(p->limit_text, "same working day")
            ? lth_workcal_due_same_day(st->calendar, (int64_t)now, &due)
            : lth_workcal_due(st->calendar, (int64_t)now, p->limit_amount, p->limit_unit, &due);
    if (rc != 0)
        return now + lth_limit_duration_us(p->limit_amount, p->limit_unit, LTH_DAY_US);
    time_t secs = (time_t)(due / 1000000 + LTH_WORKCAL_UTC_OFFSET_S);
    struct tm tm;
    gmtime_r(&secs, &tm);
    if (!lth_workcal_covers(st->calendar, tm.tm_year + 1900) && !st->calendar_warned) {
        st->calendar_warned = true;
        adp_plugin_log(
            st->host, ADP_LOG_WARN,
            "procedure system: a due date falls in %d, which plugin.calendar does not "
            "list in 'years'; it is counted with weekends only: add that year's holidays",
            tm.tm_year + 1900);
    }
    return (uint64_t)due;
}

/* Returns a dossier whose applicant was authenticated below the level its
 * procedure requires (inside the caller's transaction). */
static int proc_refuse_assurance(proc_t *st, const char *code, const char *reason, uint64_t now)
{
    proc_dossier_t d;
    int rc = proc_load(st, code, &d);
    if (rc == 0)
        rc = proc_step(st->db,
                       "UPDATE dossier SET identity = 'ASSURANCE', identity_at = ?2, "
                       "decided_at = ?2 WHERE code = ?1",
                       code, now, 0);
    if (rc == 0)
        rc = proc_emit(st, &d, LTH_STATUS_RETURNED, st->me, now, reason);
    memset(&d, 0, sizeof d);
    return rc;
}

static int proc_insert_declared(sqlite3 *db, const lth_gen_dossier_t *g)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO declared(code, full_name, date_of_birth, sex, residence, "
                           "assurance, auth_method) VALUES(?, ?, ?, ?, ?, ?, ?)",
                           -1, &q, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    char dob[LTH_DATE_TEXT_LEN + 1];
    lth_date_format(g->declared.date_of_birth, dob);
    sqlite3_bind_text(q, 1, g->code, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, g->declared.full_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, dob, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 4, g->declared.sex);
    sqlite3_bind_text(q, 5, g->declared.residence, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 6, (int)g->assurance.level);
    sqlite3_bind_int(q, 7, (int)g->assurance.method);
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
    sqlite3_finalize(q);
    return rc;
}

static int proc_submit(proc_t *st)
{
    uint64_t next;
    if (lth_appdb_meta_get(st->db, "next_index", 1, &next) != 0)
        return HUB_ESTORE;
    if (next > st->dossiers)
        return 0;
    if (lth_appdb_begin(st->db) != 0)
        return HUB_ESTORE;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(st->db,
                                "INSERT INTO dossier(code, idx, procedure_code, authority, "
                                "applicant, submitted_at, due_at) VALUES(?, ?, ?, ?, ?, ?, ?)",
                                -1, &q, NULL) == SQLITE_OK
                 ? 0
                 : HUB_ESTORE;
    uint64_t made = 0, refused = 0;
    for (; rc == 0 && made < st->rate && next <= st->dossiers; made++, next++) {
        lth_gen_dossier_t g;
        rc = lth_dossier_generate(&st->gen, next, &g);
        if (rc != 0)
            break;
        uint64_t now = hub_now_us();
        uint64_t due = proc_due(st, g.procedure, now);
        g.assurance.at_us = now;
        sqlite3_bind_text(q, 1, g.code, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)g.index);
        sqlite3_bind_text(q, 3, g.procedure->code, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, g.procedure->authority, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, g.applicant_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 6, (sqlite3_int64)now);
        sqlite3_bind_int64(q, 7, (sqlite3_int64)due);
        if (sqlite3_step(q) != SQLITE_DONE)
            rc = HUB_ESTORE;
        sqlite3_reset(q);
        if (rc == 0)
            rc = proc_insert_declared(st->db, &g);
        /* Identity assurance first: below the procedure's level, the
         * population database is not even asked. */
        char reason[LTH_NOTE_MAX];
        if (rc == 0 &&
            lth_assurance_refusal(g.procedure, &g.assurance, reason, sizeof reason) == 0) {
            rc = proc_refuse_assurance(st, g.code, reason, now);
            refused++;
        }
        explicit_bzero(&g, sizeof g);
    }
    sqlite3_finalize(q);
    if (rc == 0)
        rc = lth_appdb_meta_set(st->db, "next_index", next);
    if (rc == 0)
        rc = lth_appdb_commit(st->db);
    if (rc != 0) {
        lth_appdb_rollback(st->db);
        adp_plugin_log(st->host, ADP_LOG_ERROR, "could not submit dossiers: %s",
                       lth_appdb_error(st->db));
        return rc;
    }
    if (made)
        adp_plugin_log(st->host, refused ? ADP_LOG_INFO : ADP_LOG_DEBUG,
                       "submitted %" PRIu64 " dossiers (next index %" PRIu64 "); %" PRIu64
                       " returned: applicant authenticated below the procedure's required level",
                       made, next, refused);
    return 0;
}

/* ---- identity checks ---- */

/* FOUND (and, for a verification, every declared field matched): receive,
 * forward to the authority, processing. */
static int proc_accept(proc_t *st, adp_client_t *client, proc_dossier_t *d, uint64_t now)
{
    const char *me = proc_me(client);
    int rc =
        proc_step(st->db, "UPDATE dossier SET identity = 'FOUND', identity_at = ?2 WHERE code = ?1",
                  d->code, now, 0);
    if (rc == 0)
        rc = proc_emit(st, d, LTH_STATUS_RECEIVED, me, now,
                       "Đã tiếp nhận hồ sơ; danh tính người nộp đã được xác minh");
    lth_dossier_t msg;
    memset(&msg, 0, sizeof msg);
    snprintf(msg.dossier_code, sizeof msg.dossier_code, "%s", d->code);
    snprintf(msg.procedure_code, sizeof msg.procedure_code, "%s", d->procedure_code);
    snprintf(msg.applicant_id, sizeof msg.applicant_id, "%s", d->applicant);
    msg.submitted_at_us = d->submitted_at;
    msg.due_at_us = d->due_at;
    snprintf(msg.received_by, sizeof msg.received_by, "%s", me);
    snprintf(msg.authority, sizeof msg.authority, "%s", d->authority);
    /* How the applicant was authenticated travels with the dossier. */
    sqlite3_stmt *q = NULL;
    if (rc == 0 &&
        sqlite3_prepare_v2(st->db, "SELECT assurance, auth_method FROM declared WHERE code = ?", -1,
                           &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, d->code, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            msg.assurance.level = (unsigned)sqlite3_column_int(q, 0);
            msg.assurance.method = (lth_auth_method_t)sqlite3_column_int(q, 1);
            msg.assurance.at_us = d->submitted_at;
        }
    }
    sqlite3_finalize(q);
    uint8_t *buf = NULL;
    size_t len = 0;
    /* The procedure, signed with the envelope, lets the hub route a dossier
     * delegated per procedure (ủy quyền) without reading it. */
    char type[160];
    snprintf(type, sizeof type, LTH_DOSSIER_TYPE "; lth-procedure=%s", d->procedure_code);
    if (rc == 0)
        rc = lth_dossier_encode(&msg, &buf, &len);
    if (rc == 0)
        rc = lth_outq_add(st->db, d->authority, LTH_SERVICE_DOSSIER_SUBMIT, type, buf, len);
    free(buf);
    memset(&msg, 0, sizeof msg); /* the applicant's ID */
    if (rc == 0)
        rc = proc_step(st->db, "UPDATE dossier SET forwarded_at = ?2 WHERE code = ?1", d->code, now,
                       0);
    char note[LTH_NOTE_MAX];
    snprintf(note, sizeof note, "Đã chuyển hồ sơ đến cơ quan có thẩm quyền %s", d->authority);
    if (rc == 0)
        rc = proc_emit(st, d, LTH_STATUS_PROCESSING, me, now, note);
    return rc;
}

/* What the population database said about one applicant. */
typedef enum {
    PROC_ID_ACCEPT,
    PROC_ID_INVALID,
    PROC_ID_NOT_FOUND,
    PROC_ID_MISMATCH,
    PROC_ID_WAIT
} proc_outcome_t;

/* INVALID_KEY, NOT_FOUND or MISMATCH: returned, with the population
 * database's reason (or the fields that did not match). */
static int proc_return(proc_t *st, adp_client_t *client, proc_dossier_t *d, uint64_t now,
                       proc_outcome_t why, const char *reason)
{
    const char *sql =
        why == PROC_ID_INVALID
            ? "UPDATE dossier SET identity = 'INVALID_KEY', identity_at = ?2, decided_at = ?2 "
              "WHERE code = ?1"
        : why == PROC_ID_NOT_FOUND
            ? "UPDATE dossier SET identity = 'NOT_FOUND', identity_at = ?2, decided_at = ?2 "
              "WHERE code = ?1"
            : "UPDATE dossier SET identity = 'MISMATCH', identity_at = ?2, decided_at = ?2 "
              "WHERE code = ?1";
    int rc = proc_step(st->db, sql, d->code, now, 0);
    char note[LTH_NOTE_MAX];
    snprintf(note, sizeof note, "%s (%s)",
             why == PROC_ID_INVALID ? "Trả hồ sơ: số định danh cá nhân không hợp lệ"
             : why == PROC_ID_NOT_FOUND
                 ? "Trả hồ sơ: không tìm thấy công dân trong CSDLQG về dân cư"
                 : "Trả hồ sơ: thông tin người nộp khai không khớp với CSDLQG về dân cư",
             reason && *reason        ? reason
             : why == PROC_ID_INVALID ? "invalid personal ID number"
                                      : "not found");
    if (rc == 0)
        rc = proc_emit(st, d, LTH_STATUS_RETURNED, proc_me(client), now, note);
    return rc;
}

static void proc_lookup_failed(proc_t *st, const char *fmt, const char *detail)
{
    if (!st->lookup_failing) {
        char line[512];
        snprintf(line, sizeof line, fmt, detail);
        adp_plugin_log(st->host, ADP_LOG_WARN, "identity checks wait: %s; retrying every tick",
                       line);
    }
    st->lookup_failing = true;
}

/* One batch of applicants of one procedure, as read from the file. */
typedef struct proc_batch {
    size_t n;
    char *codes[LTH_LOOKUP_MAX_KEYS];
    char *keys[LTH_LOOKUP_MAX_KEYS];
    Lth__Domain__V1__DeclaredIdentity subjects[LTH_LOOKUP_MAX_KEYS];
    Lth__Domain__V1__Date births[LTH_LOOKUP_MAX_KEYS];
    Lth__Domain__V1__DeclaredIdentity *subject_ptrs[LTH_LOOKUP_MAX_KEYS];
    char *names[LTH_LOOKUP_MAX_KEYS];
    char *residences[LTH_LOOKUP_MAX_KEYS];
    proc_outcome_t outcome[LTH_LOOKUP_MAX_KEYS];
    const char *reason[LTH_LOOKUP_MAX_KEYS]; /* into the reply, or reason_buf */
    char reason_buf[LTH_LOOKUP_MAX_KEYS][160];
} proc_batch_t;

static void proc_batch_clear(proc_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->codes[i]);
        if (b->keys[i])
            explicit_bzero(b->keys[i], strlen(b->keys[i]));
        free(b->keys[i]);
        if (b->names[i])
            explicit_bzero(b->names[i], strlen(b->names[i]));
        free(b->names[i]);
        if (b->residences[i])
            explicit_bzero(b->residences[i], strlen(b->residences[i]));
        free(b->residences[i]);
    }
    explicit_bzero(b, sizeof *b);
}

static char *proc_column_dup(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    return strdup(t ? (const char *)t : "");
}

/* Reads the unchecked applicants of procedure p: with their declared
 * identity (verify), or those to look up (every one of a look-up procedure,
 * and those of a verify procedure submitted before declarations were kept). */
static void proc_collect(proc_t *st, const lth_procedure_t *p, bool verify, proc_batch_t *b)
{
    b->n = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT d.code, d.applicant, x.full_name, x.date_of_birth, x.sex, "
                           "x.residence FROM dossier d LEFT JOIN declared x USING(code) "
                           "WHERE d.identity IS NULL AND d.procedure_code = ?1 AND "
                           "(CASE WHEN ?2 THEN x.code IS NOT NULL ELSE (?3 = 0 OR x.code IS "
                           "NULL) END) ORDER BY d.idx LIMIT ?4",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(q, 1, p->code, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, verify);
    sqlite3_bind_int(q, 3, p->identity_check == LTH_CHECK_VERIFY);
    sqlite3_bind_int(q, 4, LTH_LOOKUP_MAX_KEYS);
    while (b->n < LTH_LOOKUP_MAX_KEYS && sqlite3_step(q) == SQLITE_ROW) {
        size_t i = b->n;
        b->codes[i] = proc_column_dup(q, 0);
        b->keys[i] = proc_column_dup(q, 1);
        b->names[i] = proc_column_dup(q, 2);
        b->residences[i] = proc_column_dup(q, 5);
        b->n++; /* counted before the check, so that clearing frees what was made */
        if (!b->codes[i] || !b->keys[i] || !b->names[i] || !b->residences[i]) {
            break;
        }
        Lth__Domain__V1__DeclaredIdentity *s = &b->subjects[i];
        lth__domain__v1__declared_identity__init(s);
        s->personal_id = b->keys[i];
        if (verify) {
            lth_date_t dob;
            const unsigned char *t = sqlite3_column_text(q, 3);
            s->full_name = b->names[i];
            s->residence = b->residences[i];
            s->sex = (Lth__Domain__V1__Sex)sqlite3_column_int(q, 4);
            if (t && lth_date_parse((const char *)t, &dob) == 0) {
                lth__domain__v1__date__init(&b->births[i]);
                b->births[i].year = (uint32_t)dob.year;
                b->births[i].month = (uint32_t)dob.month;
                b->births[i].day = (uint32_t)dob.day;
                s->date_of_birth = &b->births[i];
            }
        }
        b->subject_ptrs[i] = s;
        b->outcome[i] = PROC_ID_WAIT;
        b->reason[i] = "";
    }
    sqlite3_finalize(q);
    if (b->n && (!b->codes[b->n - 1] || !b->keys[b->n - 1] || !b->names[b->n - 1] ||
                 !b->residences[b->n - 1]))
        proc_batch_clear(b); /* out of memory: try again next tick */
}

/* Applies the outcomes of one batch, in one transaction. */
static int proc_apply_outcomes(proc_t *st, adp_client_t *client, proc_batch_t *b,
                               size_t *n_accepted, size_t *n_returned, size_t *n_waiting)
{
    uint64_t now = hub_now_us();
    if (lth_appdb_begin(st->db) != 0)
        return HUB_ESTORE;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        proc_dossier_t d;
        if (proc_load(st, b->codes[i], &d) != 0) {
            rc = HUB_ESTORE;
            break;
        }
        switch (b->outcome[i]) {
        case PROC_ID_ACCEPT:
            rc = proc_accept(st, client, &d, now);
            ++*n_accepted;
            break;
        case PROC_ID_INVALID:
        case PROC_ID_NOT_FOUND:
        case PROC_ID_MISMATCH:
            rc = proc_return(st, client, &d, now, b->outcome[i], b->reason[i]);
            ++*n_returned;
            break;
        default: /* NOT_PERMITTED: the provider's configuration; ask again later */
            ++*n_waiting;
            break;
        }
        memset(&d, 0, sizeof d);
    }
    if (rc == 0)
        rc = lth_appdb_commit(st->db);
    if (rc != 0) {
        adp_plugin_log(st->host, ADP_LOG_ERROR, "could not record identity checks: %s",
                       lth_appdb_error(st->db));
        lth_appdb_rollback(st->db);
    }
    return rc;
}

static proc_outcome_t proc_outcome_of(int lookup_status)
{
    switch (lookup_status) {
    case LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND: return PROC_ID_ACCEPT;
    case LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY: return PROC_ID_INVALID;
    case LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND: return PROC_ID_NOT_FOUND;
    default: return PROC_ID_WAIT;
    }
}

/* Sends one request (req, packed here; the packed personal data is wiped
 * after sending) to the population database, online only: if it is not
 * connected, the batch is asked again next tick rather than left in its
 * queue. On 0, *reply holds the answer of the content type wanted. */
static int proc_ask(proc_t *st, adp_client_t *client, const char *service, const char *type,
                    const ProtobufCMessage *req, const char *answer_type, adp_reply_t *reply)
{
    memset(reply, 0, sizeof *reply);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = hub_pb_pack(req, &buf, &len);
    if (rc != 0)
        return rc;
    rc = adp_request(client, st->population, service, type, buf, len, ADP_ONLINE_ONLY,
                     (uint32_t)st->lookup_timeout_ms, reply);
    explicit_bzero(buf, len);
    free(buf);
    if (!strcmp(service, LTH_SERVICE_CITIZEN_LOOKUP) &&
        (rc == 0 || rc == HUB_ENACK || rc == HUB_ETIMEDOUT))
        st->lookups++; /* the hub's audit log has one record of each */
    if (rc != 0) {
        proc_lookup_failed(st, "%s",
                           rc == HUB_ENACK || rc == HUB_ETIMEDOUT ? adp_last_error(client)
                                                                  : hub_strerror(rc));
        return rc;
    }
    if (!lth_domain_content_type_is(reply->content_type, answer_type)) {
        proc_lookup_failed(st, "the answer is not a %s", answer_type);
        adp_reply_free(reply);
        return HUB_EPARSE;
    }
    return 0;
}

static bool proc_answer_ok(proc_t *st, int status, size_t n_results, size_t n)
{
    if (status != LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK) {
        proc_lookup_failed(st, "the population database answered %s",
                           status == LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID
                               ? "INVALID"
                               : "UNAVAILABLE");
        return false;
    }
    if (n_results != n) {
        proc_lookup_failed(st, "%s", "the answer does not have one result per applicant");
        return false;
    }
    return true;
}

/* Applies a batch's identity outcomes and says so (what: "look-ups" or
 * "verifications"). */
static void proc_apply_and_log(proc_t *st, adp_client_t *client, const lth_procedure_t *p,
                               proc_batch_t *b, const char *what)
{
    size_t accepted = 0, returned = 0, waiting = 0;
    if (proc_apply_outcomes(st, client, b, &accepted, &returned, &waiting) != 0)
        return;
    if (st->lookup_failing)
        adp_plugin_log(st->host, ADP_LOG_INFO, "identity checks answered again");
    st->lookup_failing = false;
    adp_plugin_log(st->host, waiting ? ADP_LOG_WARN : ADP_LOG_DEBUG,
                   "identity %s (%s): %zu dossiers: verified=%zu returned=%zu waiting=%zu%s", what,
                   p->purpose_code, b->n, accepted, returned, waiting,
                   waiting ? " (the population database does not permit this member or purpose)"
                           : "");
}

/* citizen.lookup/v1 for a batch: FOUND is enough. */
static void proc_lookup_batch(proc_t *st, adp_client_t *client, const lth_procedure_t *p,
                              proc_batch_t *b, const char *purpose)
{
    Lth__Domain__V1__CitizenLookupRequest req = LTH__DOMAIN__V1__CITIZEN_LOOKUP_REQUEST__INIT;
    req.personal_ids = b->keys;
    req.n_personal_ids = b->n;
    req.mode = LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CURRENT;
    req.purpose = (char *)purpose;
    req.purpose_code = (char *)p->purpose_code;
    req.dossier_code = b->n == 1 ? b->codes[0] : "";
    adp_reply_t reply;
    if (proc_ask(st, client, LTH_SERVICE_CITIZEN_LOOKUP, LTH_LOOKUP_REQUEST_TYPE, &req.base,
                 "CitizenLookupResponse", &reply) != 0)
        return;
    Lth__Domain__V1__CitizenLookupResponse *resp =
        lth__domain__v1__citizen_lookup_response__unpack(NULL, reply.payload_len, reply.payload);
    if (!resp)
        proc_lookup_failed(st, "%s", "the answer is not a CitizenLookupResponse");
    if (resp && proc_answer_ok(st, resp->status, resp->n_results, b->n)) {
        for (size_t i = 0; i < b->n; i++) {
            b->outcome[i] = proc_outcome_of(resp->results[i]->status);
            b->reason[i] = resp->results[i]->reason;
        }
        proc_apply_and_log(st, client, p, b, "look-ups");
    }
    if (resp)
        lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
    adp_reply_free(&reply);
}

/* The declared fields that did not match, as "date_of_birth, sex". */
static void proc_mismatch_text(const Lth__Domain__V1__CitizenVerifyResult *r, char *out,
                               size_t size)
{
    const struct {
        Lth__Domain__V1__FieldCheck check;
        const char *name;
    } f[] = {{r->full_name, "full_name"},
             {r->date_of_birth, "date_of_birth"},
             {r->sex, "sex"},
             {r->residence, "residence"}};
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].check == LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_MATCH ||
            f[i].check == LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_NOT_DECLARED)
            continue;
        int n = snprintf(out + o, size - o, "%s%s%s", o ? ", " : "", f[i].name,
                         f[i].check == LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_WITHHELD
                             ? " not verifiable for this purpose"
                             : " does not match");
        if (n < 0 || (size_t)n >= size - o)
            break;
        o += (size_t)n;
    }
}

/* citizen.verify/v1 for a batch: FOUND and every declared field matches. */
static void proc_verify_batch(proc_t *st, adp_client_t *client, const lth_procedure_t *p,
                              proc_batch_t *b, const char *purpose)
{
    Lth__Domain__V1__CitizenVerifyRequest req = LTH__DOMAIN__V1__CITIZEN_VERIFY_REQUEST__INIT;
    req.subjects = b->subject_ptrs;
    req.n_subjects = b->n;
    req.purpose = (char *)purpose;
    req.purpose_code = (char *)p->purpose_code;
    req.dossier_code = b->n == 1 ? b->codes[0] : "";
    adp_reply_t reply;
    if (proc_ask(st, client, LTH_SERVICE_CITIZEN_VERIFY, LTH_VERIFY_REQUEST_TYPE, &req.base,
                 "CitizenVerifyResponse", &reply) != 0)
        return;
    Lth__Domain__V1__CitizenVerifyResponse *resp =
        lth__domain__v1__citizen_verify_response__unpack(NULL, reply.payload_len, reply.payload);
    if (!resp)
        proc_lookup_failed(st, "%s", "the answer is not a CitizenVerifyResponse");
    if (resp && proc_answer_ok(st, resp->status, resp->n_results, b->n)) {
        for (size_t i = 0; i < b->n; i++) {
            const Lth__Domain__V1__CitizenVerifyResult *r = resp->results[i];
            b->outcome[i] = proc_outcome_of(r->status);
            b->reason[i] = r->reason;
            if (b->outcome[i] == PROC_ID_ACCEPT && !r->all_match) {
                b->outcome[i] = PROC_ID_MISMATCH;
                proc_mismatch_text(r, b->reason_buf[i], sizeof b->reason_buf[i]);
                b->reason[i] = b->reason_buf[i];
            }
        }
        proc_apply_and_log(st, client, p, b, "verifications");
    }
    if (resp)
        lth__domain__v1__citizen_verify_response__free_unpacked(resp, NULL);
    adp_reply_free(&reply);
}

static void proc_check_identities(proc_t *st, adp_client_t *client)
{
    if (!st->batch && !(st->batch = calloc(1, sizeof *st->batch)))
        return;
    for (size_t i = 0; i < lth_procedure_count(); i++) {
        const lth_procedure_t *p = lth_procedure_at(i);
        char purpose[256];
        snprintf(purpose, sizeof purpose, PROC_PURPOSE, p->code);
        for (int verify = 0; verify <= (p->identity_check == LTH_CHECK_VERIFY); verify++) {
            proc_collect(st, p, verify, st->batch);
            if (st->batch->n == 0)
                continue;
            if (verify)
                proc_verify_batch(st, client, p, st->batch, purpose);
            else
                proc_lookup_batch(st, client, p, st->batch, purpose);
            proc_batch_clear(st->batch);
        }
    }
}

/* ---- overdue ---- */

static void proc_mark_overdue(proc_t *st, adp_client_t *client)
{
    uint64_t now = hub_now_us();
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT code FROM dossier WHERE overdue_sent = 0 AND due_at > 0 AND "
                           "due_at < ? AND status IN (2, 3) ORDER BY idx LIMIT 1000",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)(now - st->overdue_grace_us));
    char codes[64][LTH_DOSSIER_CODE_MAX];
    size_t n = 0;
    while (n < 64 && sqlite3_step(q) == SQLITE_ROW)
        snprintf(codes[n++], LTH_DOSSIER_CODE_MAX, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    if (n == 0 || lth_appdb_begin(st->db) != 0)
        return;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        proc_dossier_t d;
        rc = proc_load(st, codes[i], &d);
        if (rc == 0)
            rc = proc_emit(st, &d, LTH_STATUS_OVERDUE, proc_me(client), now,
                           "Quá hạn giải quyết theo quy định");
        if (rc == 0)
            rc = proc_step(st->db, "UPDATE dossier SET overdue_sent = 1 WHERE code = ?1", codes[i],
                           0, 0);
    }
    if (rc == 0 && lth_appdb_commit(st->db) == 0) {
        adp_plugin_log(st->host, ADP_LOG_DEBUG, "%zu dossiers overdue", n);
        return;
    }
    adp_plugin_log(st->host, ADP_LOG_ERROR, "could not mark dossiers overdue: %s",
                   lth_appdb_error(st->db));
    lth_appdb_rollback(st->db);
}

/* ---- changes from the authorities ---- */

static int proc_on_status(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                          void *user)
{
    (void)reply;
    proc_t *st = user;
    lth_status_change_t c;
    const char *problem = NULL;
    if (msg->kind == ADP_REQUEST || lth_status_change_decode(msg->content_type, msg->payload,
                                                             msg->payload_len, &c, &problem) != 0) {
        st->refused_changes++;
        adp_plugin_log(st->host, ADP_LOG_WARN, "dossier.status from %s refused: %s", msg->sender,
                       problem ? problem : "it is a request; send an event");
        return 0;
    }
    proc_dossier_t d;
    int rc = proc_load(st, c.dossier_code, &d);
    const char *why = NULL;
    bool bind = false;
    if (rc == HUB_ENOTFOUND) {
        why = "no dossier with that code here";
    } else if (rc != 0) {
        adp_plugin_log(st->host, ADP_LOG_ERROR, "cannot read the dossier database: %s",
                       lth_appdb_error(st->db));
        return rc;
    } else if (!d.forwarded) {
        why = "the dossier was not forwarded to anyone";
    } else if (strcmp(msg->sender, d.authority) != 0 && strcmp(msg->sender, d.resolver) != 0) {
        /* Ủy quyền: the hub routed the dossier to the authority's delegate,
         * which answers in its own name. The first member other than the
         * authority to answer, naming itself as the resolving authority,
         * becomes the dossier's resolver; nobody else may answer after it. */
        if (d.resolver[0])
            why = "the dossier is resolved by another member";
        else if (strcmp(c.authority, msg->sender) != 0)
            why = "the sender is not the dossier's authority, nor a delegate naming itself "
                  "as the resolving authority";
        else
            bind = true;
    }
    if (why) {
        st->refused_changes++;
        adp_plugin_log(st->host, ADP_LOG_WARN, "dossier.status from %s refused: %s", msg->sender,
                       why);
        return 0;
    }
    if (lth_seq_verdict(d.authority_seq, c.sequence) != LTH_SEQ_APPLY) {
        st->ignored_changes++; /* a redelivery or a late older change */
        return 0;
    }
    uint64_t at = c.at_us ? c.at_us : hub_now_us();
    rc = lth_appdb_begin(st->db);
    if (rc == 0 && bind) {
        sqlite3_stmt *q = NULL;
        rc = sqlite3_prepare_v2(st->db, "UPDATE dossier SET resolver = ? WHERE code = ?", -1, &q,
                                NULL) == SQLITE_OK
                 ? 0
                 : HUB_ESTORE;
        if (rc == 0) {
            sqlite3_bind_text(q, 1, msg->sender, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, d.code, -1, SQLITE_STATIC);
            rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
        }
        sqlite3_finalize(q);
        snprintf(d.resolver, sizeof d.resolver, "%s", msg->sender);
        st->delegated++;
    }
    if (rc == 0)
        rc = proc_step(st->db, "UPDATE dossier SET authority_seq = ?2 WHERE code = ?1", d.code,
                       c.sequence, 0);
    /* A decision that comes after the time limit, before the periodic
     * sweep (or within its grace) marked the dossier overdue: it is marked
     * OVERDUE now, first, so that every late dossier is reported overdue
     * to the portal whatever the sweep's timing. */
    if (rc == 0 && lth_status_final(c.status) && d.due_at > 0 && at > d.due_at) {
        rc = proc_step(st->db,
                       "UPDATE dossier SET overdue_sent = 1 WHERE code = ?1 AND overdue_sent = 0",
                       d.code, 0, 0);
        if (rc == 0 && sqlite3_changes(st->db) > 0)
            rc = proc_emit(st, &d, LTH_STATUS_OVERDUE, proc_me(client), at,
                           "Quá hạn giải quyết theo quy định");
    }
    if (rc == 0)
        rc = proc_emit(st, &d, c.status, msg->sender, at, c.note);
    if (rc == 0 && lth_status_final(c.status))
        rc = proc_step(st->db, "UPDATE dossier SET decided_at = ?2 WHERE code = ?1", d.code, at, 0);
    if (rc == 0)
        rc = lth_appdb_commit(st->db);
    if (rc != 0) {
        adp_plugin_log(st->host, ADP_LOG_ERROR, "could not record a status change: %s",
                       lth_appdb_error(st->db));
        lth_appdb_rollback(st->db);
        return rc;
    }
    proc_flush(st, client);
    return 0;
}

/* ---- tick ---- */

static void proc_summary(proc_t *st)
{
    uint64_t now = hub_now_us();
    if (now < st->next_summary_us)
        return;
    st->next_summary_us = now + PROC_SUMMARY_EVERY_US;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT count(*), sum(identity IS NULL), sum(status = 5), "
                           "sum(status = 4), (SELECT count(*) FROM outq) FROM dossier",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    char line[512] = "";
    if (sqlite3_step(q) == SQLITE_ROW) {
        long long total = sqlite3_column_int64(q, 0), unchecked = sqlite3_column_int64(q, 1),
                  returned = sqlite3_column_int64(q, 2), done = sqlite3_column_int64(q, 3);
        snprintf(line, sizeof line,
                 "dossiers: submitted=%lld of %" PRIu64 " identity_pending=%lld open=%lld "
                 "done=%lld returned=%lld queued_events=%lld ignored_changes=%lu "
                 "refused_changes=%lu resolved_by_delegates=%lu",
                 total, st->dossiers, unchecked, total - unchecked - returned - done, done,
                 returned, sqlite3_column_int64(q, 4), st->ignored_changes, st->refused_changes,
                 st->delegated);
    }
    sqlite3_finalize(q);
    adp_plugin_log_changed(st->host, st->last_summary, sizeof st->last_summary, line);
}

static int proc_tick(void *state, adp_client_t *client)
{
    proc_t *st = state;
    if (!st->me[0])
        snprintf(st->me, sizeof st->me, "%s", proc_me(client));
    catpub_tick(st->catalogue, client); /* the catalogue, whole or changed */
    proc_flush(st, client); /* what a crash left queued */
    proc_submit(st);
    proc_check_identities(st, client);
    proc_mark_overdue(st, client);
    proc_flush(st, client);
    proc_summary(st);
    return 0;
}

/* ---- set-up ---- */

static void proc_destroy(void *state)
{
    proc_t *st = state;
    if (!st)
        return;
    lth_workcal_destroy(&st->calendar);
    catpub_destroy(&st->catalogue);
    /* For comparison with the hub's audit log (scripts/demo.sh). */
    adp_plugin_log(st->host, ADP_LOG_INFO, "identity look-ups sent this run: %" PRIu64,
                   st->lookups);
    lth_appdb_close(&st->db);
    free(st->batch);
    free(st);
}

static int proc_parse_procedures(proc_t *st, const char *list, char *err, size_t err_size)
{
    if (!list)
        return 0; /* the whole catalogue */
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", list);
    char *save = NULL;
    size_t n = 0;
    for (char *code = strtok_r(copy, ", ", &save); code; code = strtok_r(NULL, ", ", &save)) {
        const lth_procedure_t *p = lth_procedure_find(code);
        if (!p) {
            snprintf(err, err_size,
                     "plugin.procedures: '%s' is not a procedure of the catalogue (SYN-1.000001 "
                     "to SYN-1.%06zu)",
                     code, lth_procedure_count());
            return HUB_EINVAL;
        }
        if (n == PROC_MAX_PROCEDURES) {
            snprintf(err, err_size, "plugin.procedures: at most %d", PROC_MAX_PROCEDURES);
            return HUB_EINVAL;
        }
        st->procs[n++] = p;
    }
    if (n == 0) {
        snprintf(err, err_size, "plugin.procedures is empty: list codes, or leave it out");
        return HUB_EINVAL;
    }
    st->gen.procedures = st->procs;
    st->gen.n_procedures = n;
    return 0;
}

static int proc_init(const adp_plugin_host_t *host, void **state, char *err, size_t err_size)
{
    proc_t *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    st->host = host;
    const char *db =
        adp_plugin_conf_required(host, "db", "the procedure system's SQLite file", err, err_size);
    uint64_t citizens = 0, invalid = 0, unknown = 0, day_ms = 0;
    int rc = db ? 0 : HUB_EINVAL;
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "dossiers", 0, 999999999, 20, &st->dossiers, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "seed", 0, UINT32_MAX, 1, &st->gen.seed, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "rate_per_tick", 1, 1000, 5, &st->rate, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "population_seed", 0, UINT64_MAX, 1,
                                 &st->gen.population_seed, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "population_citizens", 1, 999000, 10000, &citizens, err,
                                 err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "invalid_percent", 0, 100, 10, &invalid, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "unknown_percent", 0, 100, 10, &unknown, err, err_size);
    uint64_t low_assurance = 0, mismatch = 0;
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "low_assurance_percent", 0, 100, 0, &low_assurance, err,
                                 err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "mismatch_percent", 0, 100, 0, &mismatch, err, err_size);
    st->gen.low_assurance_percent = (unsigned)low_assurance;
    st->gen.mismatch_percent = (unsigned)mismatch;
    if (rc == 0 && invalid + unknown > 100) {
        snprintf(err, err_size, "plugin.invalid_percent + plugin.unknown_percent exceed 100");
        rc = HUB_EINVAL;
    }
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "day_ms", 1, 86400000, 86400000, &day_ms, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "lookup_timeout_ms", 100, 600000, 5000,
                                 &st->lookup_timeout_ms, err, err_size);
    uint64_t grace_ms = 0;
    if (rc == 0)
        rc =
            adp_plugin_conf_u64(host, "overdue_grace_ms", 0, 86400000, 0, &grace_ms, err, err_size);
    st->overdue_grace_us = grace_ms * 1000u;
    if (rc == 0)
        rc = adp_plugin_conf_member(host, "population", "VN/GOV/BCA/CSDLQGDC", 0, st->population,
                                    sizeof st->population, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_member(host, "portal", "VN/GOV/VPCP/DVCQG", 1, st->portal,
                                    sizeof st->portal, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_member(host, "report", "VN/GOV/HN-VP/BAOCAO", 1, st->report,
                                    sizeof st->report, err, err_size);
    if (rc == 0) /* first: plugin.procedures names codes of this catalogue */
        rc = catpub_new(host, &st->catalogue, err, err_size);
    if (rc == 0)
        rc = proc_parse_procedures(st, host->config(host, "procedures"), err, err_size);
    st->gen.population_citizens = (size_t)citizens;
    st->gen.invalid_percent = (unsigned)invalid;
    st->gen.unknown_percent = (unsigned)unknown;
    st->day_us = day_ms * 1000u;
    const char *calendar = host->config(host, "calendar");
    if (rc == 0 && calendar && *calendar) {
        if (day_ms != 86400000) {
            snprintf(err, err_size,
                     "plugin.calendar counts real working days: leave plugin.day_ms at 86400000 "
                     "with it, or leave plugin.calendar out");
            rc = HUB_EINVAL;
        } else {
            rc = lth_workcal_load(calendar, &st->calendar, err, err_size);
        }
    }
    if (rc == 0)
        rc = lth_appdb_open(db, proc_schema, &st->db, err, err_size);
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_DOSSIER_STATUS, proc_on_status, st);
    if (rc != 0) {
        if (!err[0])
            snprintf(err, err_size, "%s", hub_strerror(rc));
        proc_destroy(st);
        return rc;
    }
    uint64_t next = 1;
    lth_appdb_meta_get(st->db, "next_index", 1, &next);
    adp_plugin_log(host, ADP_LOG_INFO,
                   "procedure system: %" PRIu64 " synthetic dossiers to submit (%" PRIu64
                   " already), %" PRIu64 " per tick; identity checks at %s; statuses to %s and %s",
                   st->dossiers, next - 1, st->rate, st->population,
                   st->portal[0] ? st->portal : "(none)", st->report[0] ? st->report : "(none)");
    *state = st;
    return 0;
}

ADP_PLUGIN_DEFINE("procedure",
                  "procedure information system: submits synthetic dossiers, checks identities, "
                  "forwards, relays statuses",
                  proc_init, proc_tick, proc_destroy);
