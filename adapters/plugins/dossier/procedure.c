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
#include "dossier_intake.h"
#include "hub_wire.h"
#include "lth_appdb.h"
#include "lth_dossier.h"
#include "lth_lookup.h"
#include "lth_workcal.h"
#include "lth_domain.h"
#include "lth_procedure.h"
#include "lth_verify.h"
#include "catalogue_pub.h"
#include "lth_portal.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>
#include <time.h>
#include <stdlib.h>

#define PROC_MAX_PROCEDURES 64
#define PROC_MAX_CHAINS 8
#define PROC_MAX_STEPS 4

/* A procedure that passes several authorities (liên thông): each step's
 * authority and its own time limit (plugin.chains). */
typedef struct {
    char authority[LTH_MEMBER_MAX];
    char limit_text[32];
    unsigned amount;
    lth_limit_unit_t unit;
} proc_step_t;

typedef struct {
    char code[LTH_PROCEDURE_CODE_MAX];
    size_t n;
    proc_step_t steps[PROC_MAX_STEPS];
} proc_chain_t;
#define PROC_SUMMARY_EVERY_US 5000000u
#define PROC_RECORDS 3 /* result, payment, feedback: proc_records */
#define PROC_PURPOSE "Tiếp nhận hồ sơ TTHC %s: xác minh danh tính người nộp hồ sơ"

static const char proc_schema[] =
    "CREATE TABLE IF NOT EXISTS dossier("
    " code TEXT PRIMARY KEY, idx INTEGER UNIQUE NOT NULL,"
    " procedure_code TEXT NOT NULL, authority TEXT NOT NULL,"
    " applicant TEXT NOT NULL," /* personal data: never logged */
    " submitted_at INTEGER NOT NULL, due_at INTEGER NOT NULL,"
    " identity TEXT," /* NULL until checked: FOUND, NOT_FOUND, INVALID_KEY, MISMATCH,
                         ASSURANCE (not accepted for its applicant's assurance level) */
    " identity_at INTEGER, forwarded_at INTEGER, decided_at INTEGER,"
    " status INTEGER NOT NULL DEFAULT 0,"        /* latest DossierStatus */
    " seq INTEGER NOT NULL DEFAULT 0,"           /* sequence of the latest change sent */
    " authority_seq INTEGER NOT NULL DEFAULT 0," /* last applied change from the authority */
    " resolver TEXT," /* the delegate that resolves it, if not the authority */
    " overdue_sent INTEGER NOT NULL DEFAULT 0,"
    " channel INTEGER NOT NULL DEFAULT 0,"    /* Channel: online or at the counter */
    " portal_seq INTEGER NOT NULL DEFAULT 0," /* the latest change the portal confirmed */
    " handed_over INTEGER NOT NULL DEFAULT 0,"
    " step INTEGER NOT NULL DEFAULT 0, steps INTEGER NOT NULL DEFAULT 0," /* liên thông */
    " step_due_at INTEGER NOT NULL DEFAULT 0);"
    /* Each step of a dossier that passes several authorities, with its own
     * time limit. */
    "CREATE TABLE IF NOT EXISTS chain_step("
    " code TEXT NOT NULL, n INTEGER NOT NULL, authority TEXT NOT NULL,"
    " started_at INTEGER NOT NULL, due_at INTEGER NOT NULL, done_at INTEGER,"
    " status INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(code, n));"
    /* Changes refused by the transition table (proto/DOMAIN.md, "Status
     * vocabulary"), once per (dossier, sender, sequence). */
    "CREATE TABLE IF NOT EXISTS refusal("
    " code TEXT NOT NULL, sender TEXT NOT NULL, seq INTEGER NOT NULL,"
    " from_status INTEGER NOT NULL, to_status INTEGER NOT NULL, reason TEXT NOT NULL,"
    " at_us INTEGER NOT NULL, PRIMARY KEY(code, sender, seq));"
    /* Signed electronic results, as received from the deciding authority. */
    "CREATE TABLE IF NOT EXISTS result("
    " result_code TEXT PRIMARY KEY, code TEXT NOT NULL, signer TEXT NOT NULL,"
    " sha256 TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL,"
    " decided_at INTEGER NOT NULL, received_at INTEGER NOT NULL,"
    " portal_accepted INTEGER);" /* NULL until the portal's receipt */
    "CREATE TABLE IF NOT EXISTS payment("
    " transaction_ref TEXT PRIMARY KEY, code TEXT NOT NULL, outcome INTEGER NOT NULL,"
    " amount INTEGER NOT NULL, channel INTEGER NOT NULL, at_us INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS feedback("
    " code TEXT PRIMARY KEY, ratings INTEGER NOT NULL, score_sum INTEGER NOT NULL,"
    " at_us INTEGER NOT NULL);"
    /* Messages another member sent that were not applied, with why. */
    "CREATE TABLE IF NOT EXISTS rejected("
    " id INTEGER PRIMARY KEY, service TEXT NOT NULL, sender TEXT NOT NULL,"
    " code TEXT NOT NULL, reason TEXT NOT NULL, at_us INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS declared("
    " code TEXT PRIMARY KEY," /* what the applicant declared: personal data, never logged */
    " full_name TEXT NOT NULL, date_of_birth TEXT NOT NULL, sex INTEGER NOT NULL,"
    " residence TEXT NOT NULL,"
    " assurance INTEGER NOT NULL, auth_method INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dossier_unchecked ON dossier(identity, idx);"
    "CREATE TABLE IF NOT EXISTS history("
    " code TEXT NOT NULL, seq INTEGER NOT NULL, status INTEGER NOT NULL, actor TEXT NOT NULL,"
    " at_us INTEGER NOT NULL, note TEXT NOT NULL, PRIMARY KEY(code, seq));";

typedef struct proc proc_t;
typedef struct proc_record proc_record_t;

/* The user of proc_on_record for one kind of event. */
typedef struct {
    proc_t *st;
    const proc_record_t *kind;
} proc_recorder_t;

struct proc {
    const adp_plugin_host_t *host;
    sqlite3 *db;
    uint64_t dossiers, rate, day_us, lookup_timeout_ms, overdue_grace_us;
    lth_dossier_gen_t gen;
    /* plugin.procedures: the codes applicants apply for, and what the
     * generator draws from (the procedure in force, else a stand-in that
     * carries only the code: its dossiers are not accepted). */
    const lth_procedure_t *procs[PROC_MAX_PROCEDURES];
    char proc_codes[PROC_MAX_PROCEDURES][LTH_PROCEDURE_CODE_MAX];
    lth_procedure_t proc_stand_in[PROC_MAX_PROCEDURES];
    char population[LTH_MEMBER_MAX], portal[LTH_MEMBER_MAX], report[LTH_MEMBER_MAX];
    bool lookup_failing; /* to log a failing look-up once, not every tick */
    bool nothing_in_force_warned;
    uint64_t lookups;    /* look-ups that reached the hub (answered, refused, timed out) */
    unsigned long ignored_changes, refused_changes, delegated;
    uint64_t next_summary_us;
    char last_summary[512];
    catpub_t *catalogue;      /* publishes the catalogue (catalogue_pub.h) */
    struct proc_batch *batch; /* the identity checks' buffers, kept between ticks */
    char me[LTH_MEMBER_MAX];  /* this member's id, for changes made while submitting */
    lth_workcal_t *calendar;  /* plugin.calendar: working days and hours, or NULL */
    bool calendar_warned;     /* a due date past the calendar's years was logged */
    uint64_t online_pct;      /* plugin.online_percent: share submitted through the portal */
    bool hand_over;           /* plugin.hand_over_results: RESULT_HANDED_OVER once a DONE
                                 dossier has its electronic result */
    uint64_t statistics_us;   /* plugin.statistics_ms: statistics.sync/v1 period; 0 = off */
    uint64_t next_statistics_us;
    unsigned long illegal_changes;        /* refused by the transition table */
    char agency_code[40];                 /* plugin.agency_code: starts each dossier code */
    proc_chain_t chains[PROC_MAX_CHAINS]; /* plugin.chains */
    size_t n_chains;
    proc_recorder_t recorders[PROC_RECORDS];
};

/* One dossier row, as the flow needs it. */
typedef struct {
    char code[LTH_DOSSIER_CODE_MAX];
    char procedure_code[LTH_PROCEDURE_CODE_MAX];
    char authority[LTH_MEMBER_MAX]; /* as addressed (the procedure's authority) */
    char resolver[LTH_MEMBER_MAX];  /* "" or the delegate that answers for it */
    char applicant[LTH_APPLICANT_MAX];
    uint64_t submitted_at, due_at, seq, authority_seq;
    int status;
    int channel;
    bool forwarded;
    unsigned step, steps; /* liên thông: the current step of steps; 0 = one authority */
    uint64_t step_due_at;
    bool handoff; /* the next PROCESSING hands the dossier to the next step */
    bool gap;     /* the change follows a gap in its sender's sequence */
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
                           "forwarded_at IS NOT NULL, channel, step, steps, step_due_at "
                           "FROM dossier WHERE code = ?",
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
        d->channel = sqlite3_column_int(q, 11);
        d->step = (unsigned)sqlite3_column_int(q, 12);
        d->steps = (unsigned)sqlite3_column_int(q, 13);
        d->step_due_at = (uint64_t)sqlite3_column_int64(q, 14);
        d->handoff = false;
        d->gap = false;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HUB_ENOTFOUND : HUB_ESTORE;
}

/* One statement about the dossier `code` (?1), with a and b as ?2 and ?3
 * where it uses them. */
static int proc_step(sqlite3 *db, const char *sql, const char *code, uint64_t a, uint64_t b)
{
    return lth_appdb_run(db, sql, "tII", code, a, b);
}

/* Records the dossier's next status change and queues it for the portal and
 * reporting (inside the caller's transaction). */
static int proc_emit(proc_t *st, proc_dossier_t *d, int status, const char *actor, uint64_t at_us,
                     const char *note)
{
    char why[LTH_NOTE_MAX];
    /* Handing a dossier on to the next authority of its chain keeps it
     * PROCESSING: the one same-state change the table admits. */
    bool handoff = d->handoff && status == LTH_STATUS_PROCESSING &&
                   lth_status_transition_allowed(d->status, LTH_STATUS_SUPPLEMENT_REQUESTED);
    bool after_gap = d->gap && lth_status_reachable(d->status, status);
    if (!handoff && !after_gap &&
        lth_status_transition_check(d->status, status, why, sizeof why) != 0) {
        adp_plugin_log(st->host, ADP_LOG_ERROR, "procedure system: %s: not sent: %s", d->code, why);
        return HUB_EINVAL;
    }
    lth_status_change_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.dossier_code, sizeof c.dossier_code, "%s", d->code);
    c.status = status;
    c.channel = d->channel;
    snprintf(c.actor, sizeof c.actor, "%s", actor);
    c.at_us = at_us;
    c.sequence = d->seq + 1;
    snprintf(c.note, sizeof c.note, "%s", note);
    snprintf(c.procedure_code, sizeof c.procedure_code, "%s", d->procedure_code);
    /* Who resolves it: under delegation (ủy quyền), the delegate. */
    snprintf(c.authority, sizeof c.authority, "%s", d->resolver[0] ? d->resolver : d->authority);
    if (d->resolver[0] && strcmp(d->resolver, d->authority) != 0)
        snprintf(c.delegated_by, sizeof c.delegated_by, "%s", d->authority);
    c.submitted_at_us = d->submitted_at;
    c.due_at_us = d->due_at;
    c.step = d->step;
    c.steps = d->steps;
    if (d->steps)
        snprintf(c.step_authority, sizeof c.step_authority, "%s",
                 d->resolver[0] ? d->resolver : d->authority);
    c.step_due_at_us = d->step_due_at;

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
static uint64_t proc_due_limit(proc_t *st, const char *limit_text, unsigned amount,
                               lth_limit_unit_t unit, uint64_t now)
{
    if (!st->calendar)
        return now + lth_limit_duration_us(amount, unit, st->day_us);
    int64_t due = 0;
    int rc = !strcmp(limit_text, "same working day")
                 ? lth_workcal_due_same_day(st->calendar, (int64_t)now, &due)
                 : lth_workcal_due(st->calendar, (int64_t)now, amount, unit, &due);
    if (rc != 0)
        return now + lth_limit_duration_us(amount, unit, LTH_DAY_US);
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

static uint64_t proc_due(proc_t *st, const lth_procedure_t *p, uint64_t now)
{
    return proc_due_limit(st, p->limit_text, p->limit_amount, p->limit_unit, now);
}

static const proc_chain_t *proc_chain_of(const proc_t *st, const char *procedure_code)
{
    for (size_t i = 0; i < st->n_chains; i++)
        if (!strcmp(st->chains[i].code, procedure_code))
            return &st->chains[i];
    return NULL;
}

/* Starts step n (1-based) of the dossier's chain at now: its authority
 * becomes the dossier's, with the step's own due time (inside the caller's
 * transaction). */
static int proc_chain_enter(proc_t *st, proc_dossier_t *d, const proc_chain_t *chain, unsigned n,
                            uint64_t now)
{
    const proc_step_t *s = &chain->steps[n - 1];
    uint64_t due = proc_due_limit(st, s->limit_text, s->amount, s->unit, now);
    int rc = lth_appdb_run(st->db,
                           "INSERT OR IGNORE INTO chain_step(code, n, authority, started_at, "
                           "due_at) VALUES(?, ?, ?, ?, ?)",
                           "titII", d->code, (int)n, s->authority, now, due);
    if (rc == 0)
        rc = lth_appdb_run(st->db,
                           "UPDATE dossier SET step = ?2, steps = ?3, step_due_at = ?4, "
                           "authority = ?5, authority_seq = 0, resolver = NULL WHERE code = ?1",
                           "tiiIt", d->code, (int)n, (int)chain->n, due, s->authority);
    if (rc == 0) {
        d->step = n;
        d->steps = (unsigned)chain->n;
        d->step_due_at = due;
        snprintf(d->authority, sizeof d->authority, "%s", s->authority);
        d->resolver[0] = '\0';
        d->authority_seq = 0;
    }
    return rc;
}

/* Queues the Dossier for its current authority (dossier.submit/v1); in a
 * chain, with the step's due time, which is what that authority answers
 * for. */
static int proc_forward(proc_t *st, const proc_dossier_t *d, const char *me)
{
    lth_dossier_t msg;
    memset(&msg, 0, sizeof msg);
    snprintf(msg.dossier_code, sizeof msg.dossier_code, "%s", d->code);
    snprintf(msg.procedure_code, sizeof msg.procedure_code, "%s", d->procedure_code);
    snprintf(msg.applicant_id, sizeof msg.applicant_id, "%s", d->applicant);
    msg.submitted_at_us = d->submitted_at;
    msg.due_at_us = d->steps ? d->step_due_at : d->due_at;
    snprintf(msg.received_by, sizeof msg.received_by, "%s", me);
    snprintf(msg.authority, sizeof msg.authority, "%s", d->authority);
    /* How the applicant was authenticated travels with the dossier. */
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT assurance, auth_method FROM declared WHERE code = ?", -1,
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
    int rc = lth_dossier_encode(&msg, &buf, &len);
    if (rc == 0)
        rc = lth_outq_add(st->db, d->authority, LTH_SERVICE_DOSSIER_SUBMIT, type, buf, len);
    free(buf);
    explicit_bzero(&msg, sizeof msg); /* the applicant's ID */
    return rc;
}

/* Refuses at reception (NOT_ACCEPTED, từ chối tiếp nhận: never received,
 * not RETURNED, which is an authority sending back an accepted dossier) a
 * dossier whose applicant was authenticated below the level its procedure
 * requires (inside the caller's transaction). */
/* Not accepted at reception (NOT_ACCEPTED with the reason): for the
 * applicant's assurance level (ASSURANCE) or a procedure not in force
 * (PROCEDURE), the population database not asked. */
static int proc_refuse_at_reception(proc_t *st, const char *code, const char *why_tag,
                                    const char *reason, uint64_t now)
{
    proc_dossier_t d;
    int rc = proc_load(st, code, &d);
    bool assurance = !strcmp(why_tag, "ASSURANCE");
    if (rc == 0)
        rc = proc_step(st->db,
                       assurance ? "UPDATE dossier SET identity = 'ASSURANCE', identity_at = ?2, "
                                   "decided_at = ?2 WHERE code = ?1"
                                 : "UPDATE dossier SET identity = 'PROCEDURE', identity_at = ?2, "
                                   "decided_at = ?2 WHERE code = ?1",
                       code, now, 0);
    if (rc == 0)
        rc = proc_emit(st, &d, LTH_STATUS_NOT_ACCEPTED, st->me, now, reason);
    memset(&d, 0, sizeof d);
    return rc;
}

/* Online or at the counter: plugin.online_percent of the dossiers, spread
 * evenly and the same for an index on every run (the test recomputes it). */
static int proc_channel(const proc_t *st, uint64_t index)
{
    return (index * 37u) % 100u < st->online_pct ? LTH_CHANNEL_ONLINE : LTH_CHANNEL_COUNTER;
}

static int proc_insert_declared(sqlite3 *db, const lth_gen_dossier_t *g)
{
    char dob[LTH_DATE_TEXT_LEN + 1];
    lth_date_format(g->declared.date_of_birth, dob);
    return lth_appdb_run(db,
                         "INSERT INTO declared(code, full_name, date_of_birth, sex, residence, "
                         "assurance, auth_method) VALUES(?, ?, ?, ?, ?, ?, ?)",
                         "tttitii", g->code, g->declared.full_name, dob, (int)g->declared.sex,
                         g->declared.residence, (int)g->assurance.level, (int)g->assurance.method);
}

/* Why a dossier for code is not accepted: the procedure is not in force. */
static void proc_not_in_force(const char *code, char *reason, size_t size)
{
    const lth_procedure_t *rep = lth_procedure_find_repealed(code);
    if (rep)
        snprintf(reason, size,
                 "Không tiếp nhận: thủ tục %s (%s) đã bị bãi bỏ theo Quyết định %s ngày %s "
                 "(procedure repealed by decision %s of %s, effective %s: no new dossiers)",
                 code, rep->name, rep->decision ? rep->decision : "?",
                 rep->decision_date ? rep->decision_date : "?", rep->decision ? rep->decision : "?",
                 rep->decision_date ? rep->decision_date : "?",
                 rep->effective_date ? rep->effective_date : "?");
    else
        snprintf(reason, size,
                 "Không tiếp nhận: thủ tục %s không có trong danh mục TTHC đang có hiệu lực "
                 "(not a procedure in force in the catalogue: no dossiers)",
                 code);
}

/* plugin.procedures: each code as the catalogue in force has it now, or
 * its stand-in. */
static void proc_refresh_procedures(proc_t *st)
{
    for (size_t i = 0; st->gen.procedures && i < st->gen.n_procedures; i++) {
        const lth_procedure_t *p = lth_procedure_find(st->proc_codes[i]);
        st->procs[i] = p ? p : &st->proc_stand_in[i];
    }
}

static int proc_submit(proc_t *st)
{
    uint64_t next;
    if (lth_appdb_meta_get(st->db, "next_index", 1, &next) != 0)
        return HUB_ESTORE;
    if (next > st->dossiers)
        return 0;
    if (!st->gen.procedures && lth_procedure_count() == 0) {
        if (!st->nothing_in_force_warned)
            adp_plugin_log(st->host, ADP_LOG_WARN,
                           "no procedure is in force in plugin.catalogue_file: no dossiers are "
                           "submitted until a reload (SIGHUP) brings one");
        st->nothing_in_force_warned = true;
        return 0;
    }
    st->nothing_in_force_warned = false;
    if (lth_appdb_begin(st->db) != 0)
        return HUB_ESTORE;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(st->db,
                                "INSERT INTO dossier(code, idx, procedure_code, authority, "
                                "applicant, submitted_at, due_at, channel) "
                                "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                                -1, &q, NULL) == SQLITE_OK
                 ? 0
                 : HUB_ESTORE;
    uint64_t made = 0, refused = 0, not_in_force = 0;
    proc_refresh_procedures(st);
    for (; rc == 0 && made < st->rate && next <= st->dossiers; made++, next++) {
        lth_gen_dossier_t g;
        rc = lth_dossier_generate(&st->gen, next, &g);
        if (rc != 0)
            break;
        /* The catalogue in force since the last reload decides: limit,
         * authority, and whether the procedure is received at all. */
        const lth_procedure_t *in_force = lth_procedure_find(g.procedure->code);
        uint64_t now = hub_now_us();
        uint64_t due = in_force ? proc_due(st, g.procedure, now) : 0;
        /* The national structure: agency code, date of receipt, number. */
        rc = lth_dossier_code_national(st->agency_code, now, g.index, g.code);
        if (rc != 0)
            break;
        g.assurance.at_us = now;
        sqlite3_bind_text(q, 1, g.code, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)g.index);
        sqlite3_bind_text(q, 3, g.procedure->code, -1, SQLITE_STATIC);
        /* Not in force: the reception desk (this system) refuses it. */
        sqlite3_bind_text(q, 4, in_force ? g.procedure->authority : st->me, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, g.applicant_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 6, (sqlite3_int64)now);
        sqlite3_bind_int64(q, 7, (sqlite3_int64)due);
        sqlite3_bind_int(q, 8, proc_channel(st, g.index));
        if (sqlite3_step(q) != SQLITE_DONE)
            rc = HUB_ESTORE;
        sqlite3_reset(q);
        char reason[LTH_NOTE_MAX];
        if (rc == 0 && !in_force) {
            proc_not_in_force(g.procedure->code, reason, sizeof reason);
            rc = proc_refuse_at_reception(st, g.code, "PROCEDURE", reason, now);
            not_in_force++;
            explicit_bzero(&g, sizeof g);
            continue;
        }
        if (rc == 0)
            rc = proc_insert_declared(st->db, &g);
        /* Identity assurance first: below the procedure's level, the
         * population database is not even asked. */
        if (rc == 0 &&
            lth_assurance_refusal(g.procedure, &g.assurance, reason, sizeof reason) == 0) {
            rc = proc_refuse_at_reception(st, g.code, "ASSURANCE", reason, now);
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
        adp_plugin_log(st->host, refused || not_in_force ? ADP_LOG_INFO : ADP_LOG_DEBUG,
                       "submitted %" PRIu64 " dossiers (next index %" PRIu64 "); %" PRIu64
                       " not accepted: applicant authenticated below the procedure's required "
                       "level; %" PRIu64 " not accepted: procedure not in force in the "
                       "catalogue (repealed, or not in plugin.catalogue_file)",
                       made, next, refused, not_in_force);
    return 0;
}

/* ---- identity checks ---- */

/* FOUND (and, for a verification, every declared field matched): receive,
 * forward to the authority (in a chain, to its first step's), processing. */
static int proc_accept(proc_t *st, adp_client_t *client, proc_dossier_t *d, uint64_t now)
{
    const char *me = proc_me(client);
    int rc =
        proc_step(st->db, "UPDATE dossier SET identity = 'FOUND', identity_at = ?2 WHERE code = ?1",
                  d->code, now, 0);
    if (rc == 0)
        rc = proc_emit(st, d, LTH_STATUS_RECEIVED, me, now,
                       "Đã tiếp nhận hồ sơ; danh tính người nộp đã được xác minh");
    const proc_chain_t *chain = proc_chain_of(st, d->procedure_code);
    if (rc == 0 && chain)
        rc = proc_chain_enter(st, d, chain, 1, now);
    if (rc == 0)
        rc = proc_forward(st, d, me);
    if (rc == 0)
        rc = proc_step(st->db, "UPDATE dossier SET forwarded_at = ?2 WHERE code = ?1", d->code, now,
                       0);
    char note[LTH_NOTE_MAX];
    if (chain)
        snprintf(note, sizeof note,
                 "Đã chuyển hồ sơ liên thông: bước 1/%zu tại cơ quan có thẩm quyền %s", chain->n,
                 d->authority);
    else
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

/* INVALID_KEY, NOT_FOUND or MISMATCH: not accepted (từ chối tiếp nhận: the
 * identity of the applicant cannot be verified, so the dossier is refused at
 * reception, never RECEIVED), with the population database's reason (or the
 * fields that did not match). */
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
             why == PROC_ID_INVALID ? "Từ chối tiếp nhận: số định danh cá nhân không hợp lệ"
             : why == PROC_ID_NOT_FOUND
                 ? "Từ chối tiếp nhận: không tìm thấy công dân trong CSDLQG về dân cư"
                 : "Từ chối tiếp nhận: thông tin người nộp khai không khớp với CSDLQG về dân "
                   "cư",
             reason && *reason        ? reason
             : why == PROC_ID_INVALID ? "invalid personal ID number"
                                      : "not found");
    if (rc == 0)
        rc = proc_emit(st, d, LTH_STATUS_NOT_ACCEPTED, proc_me(client), now, note);
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
    return dp_end(st->host, st->db, rc, "record identity checks");
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
                   "identity %s (%s): %zu dossiers: verified=%zu not_accepted=%zu waiting=%zu%s",
                   what, p->purpose_code, b->n, accepted, returned, waiting,
                   waiting ? " (the population database does not permit this member or purpose)"
                           : "");
}

/* Asks the population database about a batch and unpacks its answer (of
 * type `answer`); NULL when either failed (the log says which). Free with
 * protobuf_c_message_free_unpacked(). */
static ProtobufCMessage *proc_ask_batch(proc_t *st, adp_client_t *client, const char *service,
                                        const char *type, const ProtobufCMessage *req,
                                        const ProtobufCMessageDescriptor *answer)
{
    adp_reply_t reply;
    if (proc_ask(st, client, service, type, req, answer->short_name, &reply) != 0)
        return NULL;
    ProtobufCMessage *resp =
        protobuf_c_message_unpack(answer, NULL, reply.payload_len, reply.payload);
    if (!resp)
        proc_lookup_failed(st, "the answer is not a %s", answer->short_name);
    adp_reply_free(&reply);
    return resp;
}

/* A citizen.lookup/v1 answer: FOUND is enough. False when the answer as a
 * whole is not usable (logged). */
static bool proc_read_lookup(proc_t *st, proc_batch_t *b, const ProtobufCMessage *answer)
{
    const Lth__Domain__V1__CitizenLookupResponse *resp = (const void *)answer;
    if (!proc_answer_ok(st, resp->status, resp->n_results, b->n))
        return false;
    for (size_t i = 0; i < b->n; i++) {
        b->outcome[i] = proc_outcome_of(resp->results[i]->status);
        b->reason[i] = resp->results[i]->reason;
    }
    return true;
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

/* A citizen.verify/v1 answer: FOUND and every declared field matches. */
static bool proc_read_verify(proc_t *st, proc_batch_t *b, const ProtobufCMessage *answer)
{
    const Lth__Domain__V1__CitizenVerifyResponse *resp = (const void *)answer;
    if (!proc_answer_ok(st, resp->status, resp->n_results, b->n))
        return false;
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
    return true;
}

/* One kind of identity check: the service asked, its request type, the
 * answer's message, how to read it into the batch, and its name in logs. */
typedef struct {
    const char *service, *request_type;
    const ProtobufCMessageDescriptor *answer;
    bool (*read)(proc_t *st, proc_batch_t *b, const ProtobufCMessage *answer);
    const char *what;
} proc_check_t;

static const proc_check_t proc_lookup_check = {
    LTH_SERVICE_CITIZEN_LOOKUP, LTH_LOOKUP_REQUEST_TYPE,
    &lth__domain__v1__citizen_lookup_response__descriptor, proc_read_lookup, "look-ups"};
static const proc_check_t proc_verify_check = {
    LTH_SERVICE_CITIZEN_VERIFY, LTH_VERIFY_REQUEST_TYPE,
    &lth__domain__v1__citizen_verify_response__descriptor, proc_read_verify, "verifications"};

/* Asks about a batch with req, reads the answer and applies the outcomes. */
static void proc_check_batch(proc_t *st, adp_client_t *client, const lth_procedure_t *p,
                             proc_batch_t *b, const ProtobufCMessage *req,
                             const proc_check_t *check)
{
    ProtobufCMessage *resp =
        proc_ask_batch(st, client, check->service, check->request_type, req, check->answer);
    if (resp && check->read(st, b, resp))
        proc_apply_and_log(st, client, p, b, check->what);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
}

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
    proc_check_batch(st, client, p, b, &req.base, &proc_lookup_check);
}

static void proc_verify_batch(proc_t *st, adp_client_t *client, const lth_procedure_t *p,
                              proc_batch_t *b, const char *purpose)
{
    Lth__Domain__V1__CitizenVerifyRequest req = LTH__DOMAIN__V1__CITIZEN_VERIFY_REQUEST__INIT;
    req.subjects = b->subject_ptrs;
    req.n_subjects = b->n;
    req.purpose = (char *)purpose;
    req.purpose_code = (char *)p->purpose_code;
    req.dossier_code = b->n == 1 ? b->codes[0] : "";
    proc_check_batch(st, client, p, b, &req.base, &proc_verify_check);
}

static void proc_check_identities(proc_t *st, adp_client_t *client)
{
    if (!st->batch && !(st->batch = calloc(1, sizeof *st->batch)))
        return;
    /* The repealed procedures too: a dossier received before the repeal
     * still has its applicant checked. */
    const lth_procedure_t *p;
    bool repealed;
    for (size_t i = 0; (p = lth_procedure_listed_at(i, &repealed)); i++) {
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

/* Gives each dossier that select_sql names (its first column, at most 64 a
 * call; `arg` bound to its one parameter, if it has one) the status change
 * `status` with `note`, and marks it with mark_sql (?1 = the code), in one
 * transaction. The number of dossiers changed: 0 also when that failed
 * (logged as "could not <what>"). */
static size_t proc_emit_each(proc_t *st, adp_client_t *client, const char *select_sql, uint64_t arg,
                             int status, const char *note, const char *mark_sql, const char *what)
{
    uint64_t now = hub_now_us();
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, select_sql, -1, &q, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_bind_parameter_count(q) > 0)
        sqlite3_bind_int64(q, 1, (sqlite3_int64)arg);
    char codes[64][LTH_DOSSIER_CODE_MAX];
    size_t n = 0;
    while (n < 64 && sqlite3_step(q) == SQLITE_ROW)
        snprintf(codes[n++], LTH_DOSSIER_CODE_MAX, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    if (n == 0 || lth_appdb_begin(st->db) != 0)
        return 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        proc_dossier_t d;
        rc = proc_load(st, codes[i], &d);
        if (rc == 0)
            rc = proc_emit(st, &d, status, proc_me(client), now, note);
        if (rc == 0)
            rc = proc_step(st->db, mark_sql, codes[i], 0, 0);
    }
    if (rc == 0 && lth_appdb_commit(st->db) == 0)
        return n;
    adp_plugin_log(st->host, ADP_LOG_ERROR, "could not %s: %s", what, lth_appdb_error(st->db));
    lth_appdb_rollback(st->db);
    return 0;
}

static void proc_mark_overdue(proc_t *st, adp_client_t *client)
{
    size_t n = proc_emit_each(
        st, client,
        "SELECT code FROM dossier WHERE overdue_sent = 0 AND due_at > 0 AND "
        "due_at < ? AND status IN (2, 3, 8, 9) ORDER BY idx LIMIT 1000",
        hub_now_us() - st->overdue_grace_us, LTH_STATUS_OVERDUE, "Quá hạn giải quyết theo quy định",
        "UPDATE dossier SET overdue_sent = 1 WHERE code = ?1", "mark dossiers overdue");
    if (n > 0)
        adp_plugin_log(st->host, ADP_LOG_DEBUG, "%zu dossiers overdue", n);
}

/* ---- changes from the authorities ---- */

static bool proc_was_step_authority(proc_t *st, const char *code, const char *member);

/* A change the transition table does not allow: not applied, recorded with
 * the reason (both states named) once per (dossier, sender, sequence), and
 * its sequence counted as used so that the sender's next change applies. */
static int proc_refuse_transition(proc_t *st, const proc_dossier_t *d, const char *sender,
                                  const lth_status_change_t *c, const char *why)
{
    st->illegal_changes++;
    adp_plugin_log(st->host, ADP_LOG_WARN, "dossier.status from %s for %s refused: %s", sender,
                   d->code, why);
    int rc = lth_appdb_begin(st->db);
    if (rc == 0)
        rc = lth_appdb_run(st->db,
                           "INSERT OR IGNORE INTO refusal(code, sender, seq, from_status, "
                           "to_status, reason, at_us) VALUES(?, ?, ?, ?, ?, ?, ?)",
                           "ttIiitI", d->code, sender, (uint64_t)c->sequence, d->status,
                           (int)c->status, why, hub_now_us());
    if (rc == 0)
        rc = proc_step(st->db, "UPDATE dossier SET authority_seq = ?2 WHERE code = ?1", d->code,
                       c->sequence, 0);
    if (rc == 0)
        rc = lth_appdb_commit(st->db);
    if (rc != 0) {
        lth_appdb_rollback(st->db);
        return rc;
    }
    return 0;
}

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
    } else if (d.steps && strcmp(msg->sender, d.authority) != 0 &&
               proc_was_step_authority(st, d.code, msg->sender)) {
        why = "the dossier has moved on to the next authority of its chain (liên thông)";
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
    char illegal[LTH_NOTE_MAX];
    /* After a gap in the authority's sequence (an earlier change still on
     * its way: delivery may reorder), the change is checked for being
     * reachable; the missing ones may be what makes it a direct step. */
    d.gap = c.sequence > d.authority_seq + 1 && lth_status_reachable(d.status, c.status);
    if (!d.gap && lth_status_transition_check(d.status, c.status, illegal, sizeof illegal) != 0)
        return proc_refuse_transition(st, &d, msg->sender, &c, illegal);
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
    /* Liên thông: a DONE from any step but the last hands the dossier on
     * to the next authority instead of ending it. */
    const proc_chain_t *chain = d.steps ? proc_chain_of(st, d.procedure_code) : NULL;
    bool handoff = chain && c.status == LTH_STATUS_DONE && d.step < d.steps && d.step < chain->n;
    bool final = lth_status_final(c.status) && !handoff;
    if (rc == 0 && d.steps)
        rc = proc_step(st->db,
                       "UPDATE chain_step SET status = ?3, done_at = CASE WHEN ?3 IN (4, 5, 7, 10)"
                       " THEN ?2 ELSE done_at END WHERE code = ?1 AND n = (SELECT step FROM"
                       " dossier WHERE code = ?1)",
                       d.code, at, (uint64_t)c.status);
    /* A decision that comes after the time limit, before the periodic
     * sweep (or within its grace) marked the dossier overdue: it is marked
     * OVERDUE now, first, so that every late dossier is reported overdue
     * to the portal whatever the sweep's timing. */
    if (rc == 0 && final && d.due_at > 0 && at > d.due_at) {
        rc = proc_step(st->db,
                       "UPDATE dossier SET overdue_sent = 1 WHERE code = ?1 AND overdue_sent = 0",
                       d.code, 0, 0);
        if (rc == 0 && sqlite3_changes(st->db) > 0)
            rc = proc_emit(st, &d, LTH_STATUS_OVERDUE, proc_me(client), at,
                           "Quá hạn giải quyết theo quy định");
    }
    if (rc == 0 && handoff) {
        char note[LTH_NOTE_MAX];
        unsigned done_step = d.step;
        bool step_late = d.step_due_at > 0 && at > d.step_due_at;
        rc = proc_chain_enter(st, &d, chain, done_step + 1, at);
        snprintf(note, sizeof note,
                 "Liên thông: bước %u/%u xong tại %s (%s hạn của bước); chuyển đến %s", done_step,
                 d.steps, msg->sender, step_late ? "quá" : "trong", d.authority);
        d.handoff = true;
        if (rc == 0)
            rc = proc_emit(st, &d, LTH_STATUS_PROCESSING, proc_me(client), at, note);
        if (rc == 0)
            rc = proc_forward(st, &d, proc_me(client));
    } else if (rc == 0) {
        rc = proc_emit(st, &d, c.status, msg->sender, at, c.note);
    }
    if (rc == 0 && final)
        rc = proc_step(st->db, "UPDATE dossier SET decided_at = ?2 WHERE code = ?1", d.code, at, 0);
    rc = dp_end(st->host, st->db, rc, "record a status change");
    if (rc != 0)
        return rc;
    proc_flush(st, client);
    return 0;
}

/* ---- the portal's synchronisation profile ---- */

/* A message that is not applied: logged and kept with why (table rejected). */
static void proc_reject(proc_t *st, const char *service, const char *sender, const char *code,
                        const char *why)
{
    adp_plugin_log(st->host, ADP_LOG_WARN, "%s from %s refused: %s", service, sender, why);
    lth_appdb_run(st->db,
                  "INSERT INTO rejected(service, sender, code, reason, at_us) "
                  "VALUES(?, ?, ?, ?, ?)",
                  "ttttI", service, sender, code ? code : "", why, hub_now_us());
}

/* The end of an event handler's checks that found why the event cannot be
 * applied: kept with proc_reject (about the dossier `code` unless the
 * message is a request) and settled. */
static int proc_refused(proc_t *st, const char *service, const adp_message_t *msg, const char *code,
                        const char *why)
{
    proc_reject(st, service, msg->sender, msg->kind == ADP_REQUEST ? "" : code, why);
    return 0;
}

/* The first check of every event handler: an event (not a request), from
 * `from` when it is not NULL (else why_not). NULL when it passes. */
static const char *proc_event_problem(const adp_message_t *msg, const char *from,
                                      const char *why_not)
{
    if (msg->kind == ADP_REQUEST)
        return "it is a request; send an event";
    if (from && strcmp(msg->sender, from) != 0)
        return why_not;
    return NULL;
}

/* Records one message with insert_sql (its parameters bound by bind) and,
 * when it is new, relays the exact bytes received to `to` members (the
 * portal, reporting), in one transaction. */
typedef void (*proc_bind_fn)(sqlite3_stmt *q, const void *item);

static int proc_record_and_relay(proc_t *st, adp_client_t *client, const char *insert_sql,
                                 proc_bind_fn bind, const void *item, const adp_message_t *msg,
                                 const char *const *to, size_t n_to, bool *is_new)
{
    *is_new = false;
    int rc = lth_appdb_begin(st->db);
    sqlite3_stmt *q = NULL;
    if (rc == 0 && sqlite3_prepare_v2(st->db, insert_sql, -1, &q, NULL) != SQLITE_OK)
        rc = HUB_ESTORE;
    if (rc == 0) {
        bind(q, item);
        rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
        *is_new = rc == 0 && sqlite3_changes(st->db) > 0;
    }
    sqlite3_finalize(q);
    for (size_t i = 0; rc == 0 && *is_new && i < n_to; i++)
        if (to[i] && to[i][0])
            rc = lth_outq_add(st->db, to[i], msg->service, msg->content_type, msg->payload,
                              msg->payload_len);
    char doing[256];
    snprintf(doing, sizeof doing, "record %s", msg->service);
    rc = dp_end(st->host, st->db, rc, doing);
    if (rc != 0)
        return rc;
    proc_flush(st, client);
    return 0;
}

static void proc_bind_result(sqlite3_stmt *q, const void *item)
{
    const lth_result_t *r = item;
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, r->sha256, sizeof r->sha256);
    sqlite3_bind_text(q, 1, r->result_code, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, r->dossier_code, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, r->signer, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 5, r->media_type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 6, (sqlite3_int64)r->size_bytes);
    sqlite3_bind_int64(q, 7, (sqlite3_int64)r->decided_at_us);
    sqlite3_bind_int64(q, 8, (sqlite3_int64)hub_now_us());
}

/* The dossier a message is about, or why it cannot be applied to it. */
static const char *proc_dossier_for(proc_t *st, const char *code, proc_dossier_t *d, int *rc)
{
    *rc = proc_load(st, code, d);
    if (*rc == HUB_ENOTFOUND) {
        *rc = 0;
        return "no dossier with that code here";
    }
    return NULL;
}

/* Whether member resolved an earlier step of the dossier's chain. */
static bool proc_was_step_authority(proc_t *st, const char *code, const char *member)
{
    sqlite3_stmt *q = NULL;
    bool was = false;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT 1 FROM chain_step s JOIN dossier d USING(code) WHERE code = ?"
                           " AND s.authority = ? AND s.n < d.step",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, code, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, member, -1, SQLITE_STATIC);
        was = sqlite3_step(q) == SQLITE_ROW;
    }
    sqlite3_finalize(q);
    return was;
}

/* An event this member records, decoded (proc_records says which), and
 * room for a sentence saying why it is refused. */
typedef struct {
    union { /* first: the item is also its decoded message */
        lth_result_t result;
        lth_payment_t payment;
        lth_feedback_t feedback;
    };
    char note[LTH_NOTE_MAX];
} proc_item_t;

/* What a check returns for an event that is settled without a word to its
 * sender (the check logged why). */
static const char proc_ignored[] = "";

/* dossier.result/v1 from the deciding authority: checked (its own
 * signature, the signer is the sender, the key is the one the hub binds to
 * the sender, the dossier was decided with a result or is still open), kept
 * and relayed to the portal and reporting. */
static const char *proc_check_result(proc_t *st, const adp_message_t *msg, proc_item_t *item,
                                     const proc_dossier_t *d)
{
    const lth_result_t *r = &item->result;
    if (!d->forwarded ||
        (strcmp(msg->sender, d->authority) != 0 && strcmp(msg->sender, d->resolver) != 0)) {
        if (!proc_was_step_authority(st, r->dossier_code, msg->sender))
            return "the sender is not the authority deciding the dossier";
        /* Liên thông: an earlier step's own output; that authority keeps
         * it, the dossier's result is the last step's. */
        adp_plugin_log(st->host, ADP_LOG_DEBUG,
                       "dossier.result from %s: an earlier step's result of %s, not relayed",
                       msg->sender, r->dossier_code);
        return proc_ignored;
    }
    if (strcmp(r->signer, msg->sender) != 0)
        return "signer_member_id is not the sender: an authority sends the results it signed";
    if (!msg->sender_sign_key || memcmp(msg->sender_sign_key, r->signer_public_key, 32) != 0)
        return "signer_public_key is not the signing key the hub binds to the sender";
    if (d->status == LTH_STATUS_RETURNED || d->status == LTH_STATUS_NOT_ACCEPTED ||
        d->status == LTH_STATUS_WITHDRAWN)
        return "the dossier ended without a result (returned, not accepted or withdrawn)";
    return NULL;
}

static void proc_bind_payment(sqlite3_stmt *q, const void *item)
{
    const lth_payment_t *p = item;
    sqlite3_bind_text(q, 1, p->transaction_ref, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, p->dossier_code, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 3, p->outcome);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)p->amount_vnd);
    sqlite3_bind_int(q, 5, p->channel);
    sqlite3_bind_int64(q, 6, (sqlite3_int64)p->at_us);
}

/* payment.status/v1 from the portal's payment platform: the fee must be the
 * catalogue's for the dossier's procedure. */
static const char *proc_check_payment(proc_t *st, const adp_message_t *msg, proc_item_t *item,
                                      const proc_dossier_t *d)
{
    const lth_payment_t *p = &item->payment;
    (void)st;
    (void)msg;
    if (p->procedure_code[0] && strcmp(p->procedure_code, d->procedure_code) != 0)
        return "procedure_code is not the dossier's procedure";
    if (!lth_procedure_find(d->procedure_code))
        return "the dossier's procedure is not in the catalogue in force (repealed?): no fee to "
               "check the payment against";
    if (p->fee_vnd != lth_procedure_fee_vnd(d->procedure_code)) {
        /* The catalogue in force: after a reload amending the fee, the new one. */
        snprintf(item->note, sizeof item->note,
                 "fee_vnd %llu is not the fee the catalogue sets for %s (%llu VND)",
                 (unsigned long long)p->fee_vnd, d->procedure_code,
                 (unsigned long long)lth_procedure_fee_vnd(d->procedure_code));
        return item->note;
    }
    return NULL;
}

static void proc_bind_feedback(sqlite3_stmt *q, const void *item)
{
    const lth_feedback_t *f = item;
    unsigned sum = 0;
    for (size_t i = 0; i < f->n_ratings; i++)
        sum += f->ratings[i].score;
    sqlite3_bind_text(q, 1, f->dossier_code, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)f->n_ratings);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)sum);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)f->at_us);
}

/* feedback.submit/v1 from the portal: one rating per dossier, once it is
 * decided. */
static const char *proc_check_feedback(proc_t *st, const adp_message_t *msg, proc_item_t *item,
                                       const proc_dossier_t *d)
{
    (void)st;
    (void)msg;
    (void)item;
    if (!lth_status_final(d->status) && d->status != LTH_STATUS_RESULT_HANDED_OVER)
        return "a dossier is rated once it is decided";
    return NULL;
}

/* An event about a dossier that this member checks, records (once, by its
 * key in insert_sql) and relays to reporting, and to the portal when
 * to_portal. */
struct proc_record {
    const char *service;
    enum { PROC_RESULT, PROC_PAYMENT, PROC_FEEDBACK } type; /* the member of proc_item_t */
    bool from_portal; /* only the portal sends it (from_why otherwise) */
    const char *from_why;
    /* Why the event cannot be applied to its dossier d, or NULL;
     * proc_ignored when it is settled quietly. */
    const char *(*check)(proc_t *st, const adp_message_t *msg, proc_item_t *item,
                         const proc_dossier_t *d);
    const char *insert_sql;
    proc_bind_fn bind;
    bool to_portal;
    const char *again; /* why a second one is refused, or NULL: none is */
};

/* The events proc_on_record handles; its user is one of st->recorders. */
static const proc_record_t proc_records[PROC_RECORDS] = {
    {LTH_SERVICE_DOSSIER_RESULT, PROC_RESULT, false, NULL, proc_check_result,
     "INSERT OR IGNORE INTO result(result_code, code, signer, sha256, media_type, size, "
     "decided_at, received_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
     proc_bind_result, true, NULL},
    {LTH_SERVICE_PAYMENT_STATUS, PROC_PAYMENT, true,
     "payments come from the portal's payment platform (plugin.portal)", proc_check_payment,
     "INSERT OR IGNORE INTO payment(transaction_ref, code, outcome, amount, channel, at_us) "
     "VALUES(?, ?, ?, ?, ?, ?)",
     proc_bind_payment, false, NULL},
    {LTH_SERVICE_FEEDBACK, PROC_FEEDBACK, true, "ratings come from the portal (plugin.portal)",
     proc_check_feedback,
     "INSERT OR IGNORE INTO feedback(code, ratings, score_sum, at_us) VALUES(?, ?, ?, ?)",
     proc_bind_feedback, false, "the dossier was rated already: the first rating counts"},
};

/* Decodes msg, an event of that kind, into item: NULL, or why it does not
 * decode. On success *code is the dossier code it names. */
static const char *proc_decode_record(const proc_record_t *kind, const adp_message_t *msg,
                                      proc_item_t *item, const char **code)
{
    const char *ct = msg->content_type, *why = NULL;
    const uint8_t *pb = msg->payload;
    size_t len = msg->payload_len;
    if (kind->type == PROC_RESULT && !lth_result_decode(ct, pb, len, &item->result, &why))
        *code = item->result.dossier_code;
    else if (kind->type == PROC_PAYMENT && !lth_payment_decode(ct, pb, len, &item->payment, &why))
        *code = item->payment.dossier_code;
    else if (kind->type == PROC_FEEDBACK &&
             !lth_feedback_decode(ct, pb, len, &item->feedback, &why))
        *code = item->feedback.dossier_code;
    return why;
}

static int proc_on_record(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                          void *user)
{
    (void)reply;
    const proc_recorder_t *rec = user;
    proc_t *st = rec->st;
    const proc_record_t *kind = rec->kind;
    proc_item_t item;
    memset(&item, 0, sizeof item);
    const char *code = "";
    proc_dossier_t d;
    int rc = 0;
    const char *why =
        proc_event_problem(msg, kind->from_portal ? st->portal : NULL, kind->from_why);
    if (!why)
        why = proc_decode_record(kind, msg, &item, &code);
    if (!why && !(why = proc_dossier_for(st, code, &d, &rc)) && rc == 0)
        why = kind->check(st, msg, &item, &d);
    if (rc != 0 || why == proc_ignored)
        return rc;
    if (why)
        return proc_refused(st, kind->service, msg, code, why);
    const char *to[] = {kind->to_portal ? st->portal : NULL, st->report};
    bool is_new = false;
    rc =
        proc_record_and_relay(st, client, kind->insert_sql, kind->bind, &item, msg, to, 2, &is_new);
    if (rc == 0 && !is_new && kind->again)
        proc_reject(st, kind->service, msg->sender, code, kind->again);
    return rc;
}

/* dossier.synced/v1: the portal's receipt for a change or a result. */
static int proc_on_synced(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                          void *user)
{
    (void)reply;
    proc_t *st = user;
    lth_receipt_t r;
    const char *why =
        proc_event_problem(msg, st->portal, "receipts come from the portal (plugin.portal)");
    if (!why)
        lth_receipt_decode(msg->content_type, msg->payload, msg->payload_len, &r, &why);
    if (why) {
        proc_reject(st, LTH_SERVICE_DOSSIER_SYNCED, msg->sender, "", why);
        return 0;
    }
    if (!r.accepted)
        adp_plugin_log(st->host, ADP_LOG_WARN, "the portal refused %s %s: %s", r.dossier_code,
                       r.result_code[0] ? r.result_code : "a change", r.reason);
    int rc = lth_appdb_begin(st->db);
    if (rc == 0 && r.accepted && r.sequence > 0)
        rc =
            proc_step(st->db, "UPDATE dossier SET portal_seq = max(portal_seq, ?2) WHERE code = ?1",
                      r.dossier_code, r.sequence, 0);
    if (rc == 0 && r.result_code[0])
        rc = lth_appdb_run(st->db, "UPDATE result SET portal_accepted = ? WHERE result_code = ?",
                           "it", (int)r.accepted, r.result_code);
    if (rc == 0 && st->report[0])
        rc = lth_outq_add(st->db, st->report, msg->service, msg->content_type, msg->payload,
                          msg->payload_len);
    rc = dp_end(st->host, st->db, rc, "record a portal receipt");
    if (rc != 0)
        return rc;
    proc_flush(st, client);
    return 0;
}

/* RESULT_HANDED_OVER for DONE dossiers whose electronic result is here
 * (plugin.hand_over_results). */
static void proc_hand_over(proc_t *st, adp_client_t *client)
{
    if (st->hand_over)
        proc_emit_each(st, client,
                       "SELECT code FROM dossier d WHERE status = 4 AND handed_over = 0 AND "
                       "EXISTS (SELECT 1 FROM result r WHERE r.code = d.code) "
                       "ORDER BY idx LIMIT 64",
                       0, LTH_STATUS_RESULT_HANDED_OVER, "Đã trả kết quả điện tử cho người nộp",
                       "UPDATE dossier SET handed_over = 1 WHERE code = ?1", "hand results over");
}

/* statistics.sync/v1: every plugin.statistics_ms, the dossiers of each
 * authority by latest status, with on-time, late and overdue counts. */
static void proc_sync_statistics(proc_t *st)
{
    uint64_t now = hub_now_us();
    if (!st->statistics_us || !st->portal[0] || now < st->next_statistics_us)
        return;
    st->next_statistics_us = now + st->statistics_us;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(
            st->db,
            "SELECT coalesce(resolver, authority) AS a, status, count(*),"
            " sum(status IN (4, 11) AND decided_at <= due_at OR status IN (4, 11) AND due_at = 0),"
            " sum(status IN (4, 11) AND due_at > 0 AND decided_at > due_at),"
            " sum(status IN (1, 2, 3, 6, 8, 9) AND due_at > 0 AND due_at < ?1),"
            " min(submitted_at) FROM dossier GROUP BY a, status ORDER BY a, status",
            -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)now);
    Lth__Domain__V1__AuthorityStatistics auths[32], *auth_ptrs[32];
    Lth__Domain__V1__StatusCount counts[32][LTH_STATUS_LAST + 1],
        *count_ptrs[32][LTH_STATUS_LAST + 1];
    char names[32][LTH_MEMBER_MAX];
    size_t n = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(q, 0);
        if (n == 0 || strcmp(names[n - 1], a) != 0) {
            if (n == 32)
                break;
            lth__domain__v1__authority_statistics__init(&auths[n]);
            snprintf(names[n], sizeof names[n], "%s", a);
            auths[n].authority_member_id = names[n];
            auths[n].period_from_us = (uint64_t)sqlite3_column_int64(q, 6);
            auths[n].period_to_us = now;
            auths[n].counts = count_ptrs[n];
            auth_ptrs[n] = &auths[n];
            n++;
        }
        Lth__Domain__V1__AuthorityStatistics *s = &auths[n - 1];
        if ((uint64_t)sqlite3_column_int64(q, 6) < s->period_from_us)
            s->period_from_us = (uint64_t)sqlite3_column_int64(q, 6);
        if (s->n_counts > LTH_STATUS_LAST)
            continue;
        Lth__Domain__V1__StatusCount *c = &counts[n - 1][s->n_counts];
        lth__domain__v1__status_count__init(c);
        c->status = (Lth__Domain__V1__DossierStatus)sqlite3_column_int(q, 1);
        c->dossiers = (uint64_t)sqlite3_column_int64(q, 2);
        count_ptrs[n - 1][s->n_counts++] = c;
        s->on_time += (uint64_t)sqlite3_column_int64(q, 3);
        s->late += (uint64_t)sqlite3_column_int64(q, 4);
        s->overdue += (uint64_t)sqlite3_column_int64(q, 5);
    }
    sqlite3_finalize(q);
    if (n == 0)
        return;
    uint64_t seq = 0;
    if (lth_appdb_meta_get(st->db, "statistics_seq", 0, &seq) != 0)
        return;
    Lth__Domain__V1__StatisticsSync m = LTH__DOMAIN__V1__STATISTICS_SYNC__INIT;
    m.publisher_member_id = st->me;
    m.sequence = seq + 1;
    m.authorities = auth_ptrs;
    m.n_authorities = n;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (hub_pb_pack(&m.base, &buf, &len) != 0 || lth_appdb_begin(st->db) != 0) {
        free(buf);
        return;
    }
    int rc =
        lth_outq_add(st->db, st->portal, LTH_SERVICE_STATISTICS, LTH_STATISTICS_TYPE, buf, len);
    if (rc == 0)
        rc = lth_appdb_meta_set(st->db, "statistics_seq", seq + 1);
    dp_end(st->host, st->db, rc, "queue statistics for the portal");
    free(buf);
}

/* ---- tick ---- */

static void proc_summary(proc_t *st)
{
    if (!dp_summary_due(&st->next_summary_us, PROC_SUMMARY_EVERY_US, false))
        return;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT count(*), sum(identity IS NULL), sum(status = 5), "
                           "sum(status = 4), (SELECT count(*) FROM outq), sum(status = 7) "
                           "FROM dossier",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    char line[512] = "";
    if (sqlite3_step(q) == SQLITE_ROW) {
        long long total = sqlite3_column_int64(q, 0), unchecked = sqlite3_column_int64(q, 1),
                  returned = sqlite3_column_int64(q, 2), done = sqlite3_column_int64(q, 3),
                  not_accepted = sqlite3_column_int64(q, 5);
        snprintf(line, sizeof line,
                 "dossiers: submitted=%lld of %" PRIu64 " identity_pending=%lld open=%lld "
                 "done=%lld returned=%lld not_accepted=%lld queued_events=%lld "
                 "ignored_changes=%lu refused_changes=%lu illegal_transitions=%lu "
                 "resolved_by_delegates=%lu",
                 total, st->dossiers, unchecked, total - unchecked - returned - not_accepted - done,
                 done, returned, not_accepted, sqlite3_column_int64(q, 4), st->ignored_changes,
                 st->refused_changes, st->illegal_changes, st->delegated);
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
    proc_hand_over(st, client);
    proc_sync_statistics(st);
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
        return 0; /* the whole catalogue in force */
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", list);
    char *save = NULL;
    size_t n = 0;
    for (char *code = strtok_r(copy, ", ", &save); code; code = strtok_r(NULL, ", ", &save)) {
        if (n == PROC_MAX_PROCEDURES) {
            snprintf(err, err_size, "plugin.procedures: at most %d", PROC_MAX_PROCEDURES);
            return HUB_EINVAL;
        }
        if (strlen(code) >= sizeof st->proc_codes[n]) {
            snprintf(err, err_size, "plugin.procedures: '%.40s' is not a procedure code", code);
            return HUB_EINVAL;
        }
        /* A code not in force is allowed (a reload may add it): its
         * dossiers are not accepted meanwhile, each saying why. */
        if (!lth_procedure_find(code))
            adp_plugin_log(st->host, ADP_LOG_WARN,
                           "plugin.procedures: %s is not in force in plugin.catalogue_file "
                           "(%s): its dossiers are not accepted until a reload adds it",
                           code, lth_procedure_find_repealed(code) ? "repealed" : "not listed");
        snprintf(st->proc_codes[n], sizeof st->proc_codes[n], "%s", code);
        st->proc_stand_in[n].code = st->proc_codes[n];
        st->proc_stand_in[n].name = "";
        st->proc_stand_in[n].authority = "";
        n++;
    }
    if (n == 0) {
        snprintf(err, err_size, "plugin.procedures is empty: list codes, or leave it out");
        return HUB_EINVAL;
    }
    st->gen.procedures = st->procs;
    st->gen.n_procedures = n;
    proc_refresh_procedures(st);
    return 0;
}

static char *proc_trim(char *t)
{
    while (*t == ' ' || *t == '\t')
        t++;
    char *e = t + strlen(t);
    while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return t;
}

/* plugin.chains: procedures that pass several authorities (liên thông),
 *   CODE: MEMBER (LIMIT) > MEMBER (LIMIT) [> …] [; CODE: …]
 * e.g. "SYN-1.000004: VN/GOV/HN-SKHDT/DKKD (1 working day) >
 * VN/GOV/HN-STP/HOTICH (8 working hours)". */
static int proc_parse_chains(proc_t *st, const char *text, char *err, size_t err_size)
{
    if (!text || !*text)
        return 0;
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", text);
    char *save = NULL;
    for (char *item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        char *colon = strchr(item, ':');
        if (!colon) {
            snprintf(err, err_size,
                     "plugin.chains: '%s' has no ':'; write CODE: MEMBER (LIMIT) > MEMBER (LIMIT)",
                     proc_trim(item));
            return HUB_EINVAL;
        }
        *colon = '\0';
        char *code = proc_trim(item);
        if (!lth_procedure_find(code)) {
            snprintf(err, err_size, "plugin.chains: '%s' is not a procedure of the catalogue",
                     code);
            return HUB_EINVAL;
        }
        if (st->n_chains == PROC_MAX_CHAINS) {
            snprintf(err, err_size, "plugin.chains: at most %d procedures", PROC_MAX_CHAINS);
            return HUB_EINVAL;
        }
        proc_chain_t *chain = &st->chains[st->n_chains];
        memset(chain, 0, sizeof *chain);
        snprintf(chain->code, sizeof chain->code, "%s", code);
        char *save2 = NULL;
        for (char *step = strtok_r(colon + 1, ">", &save2); step;
             step = strtok_r(NULL, ">", &save2)) {
            char *open = strchr(step, '('), *close = strrchr(step, ')');
            if (!open || !close || close < open) {
                snprintf(err, err_size,
                         "plugin.chains: step '%s' of %s must be MEMBER (LIMIT), e.g. "
                         "VN/GOV/HN-STP/HOTICH (2 working days)",
                         proc_trim(step), code);
                return HUB_EINVAL;
            }
            *open = '\0';
            *close = '\0';
            char *member = proc_trim(step), *limit = proc_trim(open + 1);
            if (chain->n == PROC_MAX_STEPS) {
                snprintf(err, err_size, "plugin.chains: %s has more than %d steps", code,
                         PROC_MAX_STEPS);
                return HUB_EINVAL;
            }
            proc_step_t *s = &chain->steps[chain->n];
            if (hub_member_id_problem(member)) {
                snprintf(err, err_size, "plugin.chains: '%s' in %s is not a member id", member,
                         code);
                return HUB_EINVAL;
            }
            if (lth_limit_parse(limit, &s->amount, &s->unit) != 0) {
                snprintf(err, err_size,
                         "plugin.chains: '%s' in %s is not a time limit (\"N working days\", "
                         "\"N working hours\", \"same working day\", \"N days\")",
                         limit, code);
                return HUB_EINVAL;
            }
            snprintf(s->authority, sizeof s->authority, "%s", member);
            snprintf(s->limit_text, sizeof s->limit_text, "%s", limit);
            chain->n++;
        }
        if (chain->n < 2) {
            snprintf(err, err_size, "plugin.chains: %s names fewer than two authorities", code);
            return HUB_EINVAL;
        }
        st->n_chains++;
    }
    return 0;
}

static int proc_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    proc_t *st = state;
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
    uint64_t stats_ms = 0, hand_over = 0;
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "online_percent", 0, 100, 100, &st->online_pct, err,
                                 err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "statistics_ms", 0, 86400000, 60000, &stats_ms, err,
                                 err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "hand_over_results", 0, 1, 0, &hand_over, err, err_size);
    st->statistics_us = stats_ms * 1000u;
    st->hand_over = hand_over != 0;
    if (rc == 0)
        rc = adp_plugin_conf_member(host, "population", "VN/GOV/BCA/CSDLQGDC", 0, st->population,
                                    sizeof st->population, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_member(host, "portal", "VN/GOV/VPCP/DVCQG", 1, st->portal,
                                    sizeof st->portal, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_member(host, "report", "VN/GOV/HN-VP/BAOCAO", 1, st->report,
                                    sizeof st->report, err, err_size);
    if (rc == 0) /* the catalogue is kept in it too (catalogue_copy.h) */
        rc = lth_appdb_open(db, proc_schema, &st->db, err, err_size);
    if (rc == 0) /* first: plugin.procedures names codes of this catalogue */
        rc = catpub_new(host, st->db, &st->catalogue, err, err_size);
    if (rc == 0)
        rc = proc_parse_procedures(st, host->config(host, "procedures"), err, err_size);
    if (rc == 0)
        rc = proc_parse_chains(st, host->config(host, "chains"), err, err_size);
    const char *agency = host->config(host, "agency_code");
    snprintf(st->agency_code, sizeof st->agency_code, "%s", agency ? agency : "000.00.01.H26");
    char probe[LTH_DOSSIER_CODE_MAX];
    if (rc == 0 && lth_dossier_code_national(st->agency_code, 0, 1, probe) != 0) {
        snprintf(err, err_size,
                 "plugin.agency_code '%s' is not an agency code: 1-32 of A-Z 0-9 '.', e.g. "
                 "000.00.01.H26",
                 st->agency_code);
        rc = HUB_EINVAL;
    }
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
        rc = host->offer(host, LTH_SERVICE_DOSSIER_STATUS, proc_on_status, st);
    for (size_t i = 0; rc == 0 && i < PROC_RECORDS; i++) {
        st->recorders[i].st = st;
        st->recorders[i].kind = &proc_records[i];
        rc = host->offer(host, proc_records[i].service, proc_on_record, &st->recorders[i]);
    }
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_DOSSIER_SYNCED, proc_on_synced, st);
    if (rc != 0)
        return rc;
    uint64_t next = 1;
    lth_appdb_meta_get(st->db, "next_index", 1, &next);
    adp_plugin_log(host, ADP_LOG_INFO,
                   "procedure system: %" PRIu64 " synthetic dossiers to submit (%" PRIu64
                   " already), %" PRIu64 " per tick; identity checks at %s; statuses to %s and %s",
                   st->dossiers, next - 1, st->rate, st->population,
                   st->portal[0] ? st->portal : "(none)", st->report[0] ? st->report : "(none)");
    return 0;
}

ADP_PLUGIN_DEFINE_STATE(
    "procedure",
    "procedure information system: submits synthetic dossiers, checks identities, "
    "forwards, relays statuses",
    proc_t, proc_start, proc_tick, proc_destroy);
