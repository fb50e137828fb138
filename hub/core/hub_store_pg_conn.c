/* hub_store_pg_conn.c — the PostgreSQL store's connections, errors,
 * schema and migrations, open/close/init/inspect and batches (see
 * hub_store_pg_internal.h). */
#include "hub_store_pg_internal.h"

#include "hub_bytes.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_store_codec.h"
#include "hub_wire.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reconnecting after a lost connection: the first attempt at once, then
 * after 100 ms, doubling to 2 s, so that a standby promoted after a few
 * seconds is found within 2 s of its promotion. */
#define BACKOFF_MIN_US 100000u
#define BACKOFF_MAX_US 2000000u
#define DEFAULT_MAX_BYTES (1ull << 30)

/* ---- the schema --------------------------------------------------------------
 * Migration N (1-based) is MIGRATIONS[N - 1]; each runs once, in order, in
 * the transaction that records it in hub_schema_version. Never edit a
 * released migration: add the next one. */
static const char *const MIGRATIONS[] = {
    /* 1: the tables of hub_store_pg_internal.h */
    "CREATE TABLE hub_meta ("
    "  id smallint PRIMARY KEY CHECK (id = 1),"
    "  next_seq bigint NOT NULL,"
    "  store_id text NOT NULL,"
    "  created_at_us bigint NOT NULL,"
    "  anchor_seq bigint NOT NULL DEFAULT 0,"
    "  anchor_hash bytea NOT NULL DEFAULT '\\x'::bytea);"
    "INSERT INTO hub_meta (id, next_seq, store_id, created_at_us) VALUES (1, 1,"
    "  md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text),"
    "  (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);"
    "CREATE TABLE hub_msgs ("
    "  seq bigint PRIMARY KEY,"
    "  message_id bytea NOT NULL, sender bytea NOT NULL, receiver bytea NOT NULL,"
    "  service bytea NOT NULL,"
    "  accepted_at_us bigint NOT NULL, expires_at_us bigint NOT NULL,"
    "  attempts integer NOT NULL DEFAULT 0,"
    "  envelope bytea NOT NULL,"
    "  dead boolean NOT NULL DEFAULT false, dead_reason bytea, dead_at_us bigint);"
    "CREATE INDEX hub_msgs_queue ON hub_msgs (receiver, seq) WHERE NOT dead;"
    "CREATE INDEX hub_msgs_expiry ON hub_msgs (expires_at_us, seq)"
    "  WHERE NOT dead AND expires_at_us > 0;"
    "CREATE INDEX hub_msgs_dead ON hub_msgs (dead_at_us) WHERE dead;"
    "CREATE TABLE hub_ids ("
    "  sender bytea NOT NULL, message_id bytea NOT NULL,"
    "  seq bigint NOT NULL, accepted_at_us bigint NOT NULL,"
    "  digest bytea NOT NULL, pinned boolean NOT NULL DEFAULT false,"
    "  PRIMARY KEY (sender, message_id));"
    "CREATE INDEX hub_ids_age ON hub_ids (accepted_at_us) WHERE NOT pinned;"
    "CREATE TABLE hub_held ("
    "  kind text NOT NULL, member bytea NOT NULL,"
    "  msgs bigint NOT NULL DEFAULT 0, bytes bigint NOT NULL DEFAULT 0,"
    "  queued bigint NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (kind, member));"
    "INSERT INTO hub_held (kind, member) VALUES ('t', '\\x'::bytea);"
    "CREATE TABLE hub_requests ("
    "  message_id bytea PRIMARY KEY, sender bytea NOT NULL, receiver bytea NOT NULL,"
    "  expires_at_us bigint NOT NULL);",
    /* 2: what each node counted (cluster = on, hub_cluster.h), cumulative,
     * so that /api/v1/flows and /api/v1/delegations answer for the whole
     * hub whichever node is asked. rev: the node's write that last changed
     * the row (each node writes once per beat, one transaction at a time),
     * so that the others read only what changed. */
    "CREATE TABLE hub_count_nodes ("
    "  node_id text PRIMARY KEY,"
    "  written_at_us bigint NOT NULL,"
    "  rev bigint NOT NULL);"
    "CREATE TABLE hub_flow_counts ("
    "  node_id text NOT NULL,"
    "  sender bytea NOT NULL, receiver bytea NOT NULL, service bytea NOT NULL,"
    "  accepted bigint NOT NULL, refused bigint NOT NULL, delivered bigint NOT NULL,"
    "  settled bigint NOT NULL, dead_lettered bigint NOT NULL, bytes bigint NOT NULL,"
    "  first_at_us bigint NOT NULL, last_at_us bigint NOT NULL,"
    "  refusals bytea NOT NULL,"
    "  rev bigint NOT NULL,"
    "  PRIMARY KEY (node_id, sender, receiver, service));"
    "CREATE INDEX hub_flow_counts_rev ON hub_flow_counts (node_id, rev);"
    "CREATE TABLE hub_delegation_counts ("
    "  node_id text NOT NULL,"
    "  rule bytea NOT NULL,"
    "  procedure bytea NOT NULL,"
    "  carried bigint NOT NULL, last_used_us bigint NOT NULL,"
    "  rev bigint NOT NULL,"
    "  PRIMARY KEY (node_id, rule, procedure));",
};
#define N_MIGRATIONS (sizeof MIGRATIONS / sizeof MIGRATIONS[0])
_Static_assert(N_MIGRATIONS == HUB_STORE_PG_SCHEMA, "HUB_STORE_PG_SCHEMA names the last migration");

/* Two hubd or hubctl applying migrations at once take turns. */
#define MIGRATION_LOCK "SELECT pg_advisory_xact_lock(7262011515)"

/* libpq's message on one line. */
static const char *pq_msg(const PGconn *c, char *buf, size_t size)
{
    snprintf(buf, size, "%s", c ? PQerrorMessage(c) : "out of memory");
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = p[1] ? ' ' : '\0';
    return buf;
}

/* ---- parameters and arrays -------------------------------------------------- */

void store_pg_conn__pg_p_i64(store_pg__params_t *p, uint64_t v)
{
    if (v > INT64_MAX)
        v = INT64_MAX;
    snprintf(p->txt[p->n], sizeof p->txt[0], "%llu", (unsigned long long)v);
    p->v[p->n] = p->txt[p->n];
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

void store_pg_conn__pg_p_bytes(store_pg__params_t *p, const void *b, size_t len)
{
    p->v[p->n] = len ? b : "";
    p->len[p->n] = (int)len;
    p->fmt[p->n++] = 1;
}

void store_pg_conn__pg_p_str(store_pg__params_t *p, const char *s)
{
    store_pg_conn__pg_p_bytes(p, s, strlen(s));
}

void store_pg_conn__pg_p_bool(store_pg__params_t *p, bool v)
{
    p->v[p->n] = v ? "t" : "f";
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

static void arr_put(store_pg__arr_t *a, const void *b, size_t len)
{
    hub_buf_put(&a->buf, b, len);
}

static void arr_be32(store_pg__arr_t *a, uint32_t v)
{
    uint8_t b[4];
    hub_put_be32(b, v);
    arr_put(a, b, 4);
}

void store_pg_conn__pg_arr_init(store_pg__arr_t *a, uint32_t oid)
{
    memset(a, 0, sizeof *a);
    arr_be32(a, 1);   /* ndim (0 when empty: set in p_arr) */
    arr_be32(a, 0);   /* no NULLs */
    arr_be32(a, oid); /* element type */
    arr_be32(a, 0);   /* dimension: patched */
    arr_be32(a, 1);   /* lower bound */
}

void store_pg_conn__pg_arr_i64(store_pg__arr_t *a, uint64_t v)
{
    if (v > INT64_MAX)
        v = INT64_MAX;
    uint8_t b[8];
    hub_put_be64(b, v);
    arr_be32(a, 8);
    arr_put(a, b, 8);
    a->n++;
}

void store_pg_conn__pg_arr_bytes(store_pg__arr_t *a, const void *b, size_t len)
{
    arr_be32(a, (uint32_t)len);
    arr_put(a, b, len);
    a->n++;
}

void store_pg_conn__pg_arr_str(store_pg__arr_t *a, const char *s)
{
    store_pg_conn__pg_arr_bytes(a, s, strlen(s));
}

void store_pg_conn__pg_arr_seqs(store_pg__arr_t *a, const uint64_t *seqs, size_t n)
{
    store_pg_conn__pg_arr_init(a, HUB__PG_INT8);
    for (size_t i = 0; i < n; i++)
        store_pg_conn__pg_arr_i64(a, seqs[i]);
}

int store_pg_conn__pg_p_arr(store_pg__params_t *p, store_pg__arr_t *a)
{
    if (a->buf.error || !a->buf.data || a->buf.len > INT32_MAX)
        return HUB_ENOMEM;
    uint8_t *head = (uint8_t *)a->buf.data;
    if (a->n == 0) {
        head[3] = 0; /* ndim 0: the empty array */
        a->buf.len = 12;
    } else {
        hub_put_be32(head + 12, a->n);
    }
    p->v[p->n] = a->buf.data;
    p->len[p->n] = (int)a->buf.len;
    p->fmt[p->n++] = 1;
    return 0;
}

void store_pg_conn__pg_arr_free(store_pg__arr_t *a)
{
    hub_buf_free(&a->buf);
    a->n = 0;
}

/* ---- results ----------------------------------------------------------------- */

uint64_t store_pg_conn__pg_u64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
        return 0;
    uint64_t v = hub_get_be64((const uint8_t *)PQgetvalue(res, row, col));
    return v > INT64_MAX ? 0 : v; /* negative: never written by the hub */
}

uint32_t store_pg_conn__pg_u32(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 4)
        return 0;
    const uint8_t *b = (const uint8_t *)PQgetvalue(res, row, col);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

bool store_pg_conn__pg_bool(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetlength(res, row, col) == 1 &&
           PQgetvalue(res, row, col)[0] != 0;
}

void store_pg_conn__pg_str(const PGresult *res, int row, int col, char *dst, size_t max)
{
    size_t len = (size_t)PQgetlength(res, row, col);
    if (len > max)
        len = max;
    memcpy(dst, PQgetvalue(res, row, col), len);
    dst[len] = '\0';
}

/* ---- errors ------------------------------------------------------------------ */

/* No answer, a lost connection, a server that went read-only (demoted) or
 * is shutting down: no longer the primary hubd should write to. */
static bool server_gone(const char *state)
{
    return !state || !strncmp(state, "08", 2) || !strcmp(state, "25006") ||
           !strncmp(state, "57P", 3);
}

/* A failed statement's SQLSTATE as a HUB_E* code. A server gone is
 * HUB_EAGAIN: the statement did not complete, and the same call may succeed
 * once hubd has connected again (to the new primary, after a failover). */
static int map_state(const char *state)
{
    if (server_gone(state))
        return HUB_EAGAIN; /* no answer; connection; read-only transaction; shutting down */
    if (!strcmp(state, "53100"))
        return HUB_EFULL; /* disk full */
    if (!strncmp(state, "53", 2))
        return HUB_ENOMEM;
    if (!strcmp(state, "42501") || !strncmp(state, "28", 2))
        return HUB_EPERM;
    if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))
        return HUB_EAGAIN;
    return HUB_ESTORE;
}

static const char *hint_for(int code, const char *state)
{
    if (state && !strcmp(state, "25006"))
        return "the server is read-only (a standby): list the primary in store_dsn, with "
               "target_session_attrs=read-write";
    if (code == HUB_EAGAIN && state && !server_gone(state))
        return "a conflict with another transaction (serialization, deadlock, lock): the work "
               "is tried again";
    switch (code) {
    case HUB_EAGAIN:
        return "the connection to PostgreSQL was lost or the server cannot write now: the "
               "statement did not complete (senders of a commit cut here are told UNAVAILABLE "
               "and resend); hubd connects again by itself";
    case HUB_EPERM:
        return "grant the store_dsn user rights on the hub_* tables (hubctl store init "
               "creates them as that user)";
    case HUB_EFULL: return "the database server's disk is full: free room there";
    default: return "check the PostgreSQL server's log";
    }
}

/* The connection record c belongs to, or NULL. */
static store_pg__conn_t *conn_of(store_pg__pg_t *self, const PGconn *c)
{
    if (self && c && c == self->w.conn)
        return &self->w;
    if (self && c && c == self->r.conn)
        return &self->r;
    return NULL;
}

/* A connection's outage begins: logged once, however many statements and
 * reconnection attempts fail until it ends (conn_ready logs the end). */
static void outage_begins(store_pg__conn_t *pc, const char *error)
{
    if (pc->down_since_us)
        return;
    pc->down_since_us = hub_monotonic_us();
    pc->attempts = 0;
    HUB_WARN("store", "PostgreSQL connection lost; reconnecting in the background",
             "conn=%s error=\"%s\" hint=\"commits fail as UNAVAILABLE (senders resend) until "
             "a server in store_dsn accepts writes again\"",
             pc->what, error);
}

static void statement_failed(store_pg__pg_t *self, PGconn *c, const char *state, int code)
{
    char buf[256];
    pq_msg(c, buf, sizeof buf);
    store_pg__conn_t *pc = conn_of(self, c);
    if (pc && (PQstatus(c) != CONNECTION_OK || server_gone(state))) {
        outage_begins(pc, buf);
        /* A server that still answers but takes no writes (demoted,
         * shutting down): the next call looks for the primary anew. */
        pc->stale = true;
        return;
    }
    HUB_ERROR("store", "PostgreSQL statement failed", "sqlstate=%s error=\"%s\" hint=\"%s\"",
              state ? state : "none", buf, hint_for(code, state));
}

/* What store_pg_conn__pg_exec and store_pg_conn__pg_exec_prepared do with a statement's result. */
static int exec_result(store_pg__pg_t *self, PGconn *c, PGresult *res, PGresult **out)
{
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out)
            *out = res;
        else
            PQclear(res);
        return 0;
    }
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int code = PQstatus(c) != CONNECTION_OK ? HUB_EAGAIN : map_state(state);
    if (state && !strcmp(state, "26000")) /* a prepared statement is gone: prepare again */
        self->prep_mask[c == self->r.conn] = 0;
    statement_failed(self, c, state, code);
    PQclear(res);
    return code;
}

int store_pg_conn__pg_exec(store_pg__pg_t *self, PGconn *c, const char *sql,
                           const store_pg__params_t *p, PGresult **out)
{
    if (out)
        *out = NULL;
    PGresult *res = PQexecParams(c, sql, p ? p->n : 0, NULL, p ? p->v : NULL, p ? p->len : NULL,
                                 p ? p->fmt : NULL, 1);
    return exec_result(self, c, res, out);
}

int store_pg_conn__pg_exec_prepared(store_pg__pg_t *self, PGconn *c, unsigned slot, const char *sql,
                                    const store_pg__params_t *p, PGresult **out)
{
    if (out)
        *out = NULL;
    if (slot >= 32)
        return HUB_EINVAL;
    char name[16];
    snprintf(name, sizeof name, "hub_%u", slot);
    int k = c == self->r.conn;
    if (self->prep_conn[k] != c || self->prep_pid[k] != PQbackendPID(c)) {
        /* A new connection: nothing prepared on it yet. (A rollback of the
         * transaction around the SET undoes it: the plan cache then
         * chooses by itself, as well in practice.) */
        int rc =
            store_pg_conn__pg_exec(self, c, "SET plan_cache_mode = force_generic_plan", NULL, NULL);
        if (rc != 0)
            return rc;
        self->prep_conn[k] = c;
        self->prep_pid[k] = PQbackendPID(c);
        self->prep_mask[k] = 0;
    }
    if (!(self->prep_mask[k] & (1u << slot))) {
        int rc = exec_result(self, c, PQprepare(c, name, sql, p ? p->n : 0, NULL), NULL);
        if (rc != 0)
            return rc;
        self->prep_mask[k] |= 1u << slot;
    }
    PGresult *res = PQexecPrepared(c, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                                   p ? p->fmt : NULL, 1);
    return exec_result(self, c, res, out);
}

/* Runs several statements without parameters in one round trip (the
 * simple protocol): the batch's savepoint handling. */
static int exec_many(store_pg__pg_t *self, PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(res);
        return 0;
    }
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int code = PQstatus(c) != CONNECTION_OK ? HUB_EAGAIN : map_state(state);
    statement_failed(self, c, state, code);
    PQclear(res);
    return code;
}

/* ---- connections ---------------------------------------------------------- */

/* The server's warnings (and the FATAL of a session it ends while idle) in
 * hubd's log, on one line, instead of libpq's raw lines on stderr. */
static void log_notice(void *arg, const char *message)
{
    (void)arg;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", message);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '"')
            *p = p[1] ? ' ' : '\0';
    if (!strncmp(buf, "FATAL", 5)) /* the session ends: the outage is logged once */
        HUB_DEBUG("store", "PostgreSQL says", "message=\"%s\"", buf);
    else
        HUB_WARN("store", "PostgreSQL says", "message=\"%s\"", buf);
}

/* Opens a connection and says what is wrong when it cannot: unreachable,
 * authentication, or a read-only server. */
static int connect_dsn(const char *dsn, PGconn **out, char *err, size_t err_size)
{
    *out = NULL;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (!opts) {
        char buf[256];
        bool oom = !perr;
        snprintf(buf, sizeof buf, "%s", perr ? perr : "out of memory");
        buf[strcspn(buf, "\n")] = '\0';
        PQfreemem(perr);
        hub_errf(err, err_size,
                 "store_dsn is not a valid libpq connection string (%s): write "
                 "'host=... port=... dbname=... user=...' or a postgresql:// URI",
                 buf);
        return oom ? HUB_ENOMEM : HUB_EINVAL;
    }
    PQconninfoFree(opts);
    /* Defaults that store_dsn may override (it is expanded after them): a
     * server that does not answer fails a connection attempt within 5 s,
     * and a dead peer is noticed by TCP keepalives within about 25 s, so
     * that no call waits for ever on a lost primary. */
    static const char *const keys[] = {"connect_timeout",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "application_name",
                                       "dbname",
                                       NULL};
    const char *const vals[] = {"5", "10", "5", "3", "hubd", dsn, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    char buf[300];
    if (!c) {
        hub_errf(err, err_size, "store: out of memory connecting to PostgreSQL");
        return HUB_ENOMEM;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        pq_msg(c, buf, sizeof buf);
        int code = HUB_EIO;
        if (strstr(buf, "authentication") || strstr(buf, "password") ||
            strstr(buf, "no pg_hba.conf entry") || strstr(buf, "role \"")) {
            code = HUB_EPERM;
            hub_errf(err, err_size,
                     "store_dsn: PostgreSQL refused the login (%s): check the user and password "
                     "in store_dsn (or ~/.pgpass) and the server's pg_hba.conf",
                     buf);
        } else if (strstr(buf, "read-write") || strstr(buf, "read only")) {
            hub_errf(err, err_size,
                     "store_dsn: no server in it accepts writes (%s): list the primary, and "
                     "keep target_session_attrs=read-write",
                     buf);
        } else if (strstr(buf, "database \"") && strstr(buf, "does not exist")) {
            code = HUB_ENOENT;
            hub_errf(err, err_size, "store_dsn: %s: create it (createdb) or fix dbname", buf);
        } else if (strstr(buf, "invalid") || strstr(buf, "missing \"=\"")) {
            code = HUB_EINVAL;
            hub_errf(err, err_size,
                     "store_dsn is not a valid libpq connection string (%s): write "
                     "'host=... port=... dbname=... user=...' or a postgresql:// URI",
                     buf);
        } else {
            hub_errf(err, err_size,
                     "store_dsn: cannot reach PostgreSQL (%s): check host and port, and that "
                     "the server runs and listens there",
                     buf);
        }
        PQfinish(c);
        return code;
    }
    /* Without target_session_attrs a standby may answer: refuse it here
     * rather than fail every commit. */
    PGresult *res =
        PQexec(c, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    bool standby = ok && PQgetvalue(res, 0, 0)[0] == 't';
    bool read_only = ok && PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (standby || read_only) {
        if (standby)
            hub_errf(err, err_size,
                     "store_dsn: the server %s:%s is a read-only standby: list the primary, and "
                     "add target_session_attrs=read-write to store_dsn",
                     PQhost(c), PQport(c));
        else
            hub_errf(err, err_size,
                     "store_dsn: the server %s:%s takes no writes from this user "
                     "(default_transaction_read_only is on): turn it off for the hub's user "
                     "or database (ALTER ROLE ... SET default_transaction_read_only = off)",
                     PQhost(c), PQport(c));
        PQfinish(c);
        return HUB_EIO;
    }
    res = PQexec(c, "SET client_min_messages = warning");
    PQclear(res);
    PQsetNoticeProcessor(c, log_notice, NULL);
    *out = c;
    return 0;
}

/* A usable connection in *pc, opened again when it broke (at most every
 * backoff). */
/* A usable connection in *pc, opened again when it broke: the first
 * attempt at once, then at most every backoff (HUB_EAGAIN meanwhile). With
 * a multi-host store_dsn and target_session_attrs=read-write, libpq tries
 * each host and keeps the one that takes writes: after a failover, the
 * promoted standby. The outage is logged once when it begins
 * (outage_begins) and once when it ends, with its length and attempts. */
/* Whether an idle connection is still open. A server that ended the
 * session while it sat idle has said so on the socket already (a FATAL
 * message, then the end of the stream): reading what is there, without
 * waiting, finds it before a statement is lost to it. One poll() when
 * nothing came. */
static bool idle_conn_alive(PGconn *c)
{
    for (int i = 0; i < 4; i++) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        if (p.fd < 0)
            return false;
        if (poll(&p, 1, 0) <= 0)
            return true;
        if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
            return false;
    }
    return PQstatus(c) == CONNECTION_OK;
}

static int conn_ready(store_pg__pg_t *self, store_pg__conn_t *pc)
{
    if (pc->conn && !pc->stale && PQstatus(pc->conn) == CONNECTION_OK &&
        PQtransactionStatus(pc->conn) == PQTRANS_IDLE && idle_conn_alive(pc->conn))
        return 0;
    if (pc->conn && !pc->stale && PQstatus(pc->conn) == CONNECTION_OK) {
        /* A transaction left open by a failed call: drop it. */
        PGresult *res = PQexec(pc->conn, "ROLLBACK");
        PQclear(res);
        if (PQstatus(pc->conn) == CONNECTION_OK && PQtransactionStatus(pc->conn) == PQTRANS_IDLE)
            return 0;
    }
    uint64_t now = hub_monotonic_us();
    if (now < pc->retry_at_us)
        return HUB_EAGAIN;
    if (pc->conn && !pc->down_since_us) {
        char buf[256];
        outage_begins(pc, pq_msg(pc->conn, buf, sizeof buf));
    }
    PQfinish(pc->conn);
    pc->conn = NULL;
    pc->stale = false;
    char err[512];
    pc->attempts++;
    int rc = connect_dsn(self->dsn, &pc->conn, err, sizeof err);
    if (rc != 0) {
        pc->backoff_us = pc->backoff_us ? pc->backoff_us * 2 : BACKOFF_MIN_US;
        if (pc->backoff_us > BACKOFF_MAX_US)
            pc->backoff_us = BACKOFF_MAX_US;
        pc->retry_at_us = hub_monotonic_us() + pc->backoff_us;
        if (!pc->down_since_us)
            outage_begins(pc, err);
        else
            HUB_DEBUG("store", "PostgreSQL connection attempt failed",
                      "conn=%s attempt=%u error=\"%s\" retry_ms=%llu", pc->what, pc->attempts, err,
                      (unsigned long long)(pc->backoff_us / 1000));
        return rc == HUB_EIO ? HUB_EAGAIN : rc;
    }
    if (pc->down_since_us)
        HUB_INFO("store", "PostgreSQL connection restored",
                 "conn=%s server=%s:%s outage_ms=%llu attempts=%u", pc->what, PQhost(pc->conn),
                 PQport(pc->conn),
                 (unsigned long long)((hub_monotonic_us() - pc->down_since_us) / 1000),
                 pc->attempts);
    pc->down_since_us = 0;
    pc->attempts = 0;
    pc->backoff_us = 0;
    pc->retry_at_us = 0;
    return 0;
}

/* The connection was found cut by the first statement of a call, before
 * anything of the call was sent (the server went while it sat idle): true
 * when it could be opened again at once, so that the call goes on on the
 * new connection instead of failing. */
static bool idle_cut(store_pg__pg_t *self, store_pg__conn_t *pc)
{
    if (pc->conn && !pc->stale && PQstatus(pc->conn) == CONNECTION_OK)
        return false; /* not cut: a conflict, which the caller reports */
    return conn_ready(self, pc) == 0;
}

static bool owns_batch(store_pg__pg_t *self)
{
    pthread_mutex_lock(&self->state_lock);
    bool own = self->batch && pthread_equal(self->batch_owner, pthread_self());
    pthread_mutex_unlock(&self->state_lock);
    return own;
}

bool store_pg_conn__pg_in_callback(store_pg__pg_t *self)
{
    pthread_mutex_lock(&self->state_lock);
    bool in = self->cb_depth && pthread_equal(self->cb_thread, pthread_self());
    pthread_mutex_unlock(&self->state_lock);
    return in;
}

void store_pg_conn__pg_callback_enter(store_pg__pg_t *self)
{
    pthread_mutex_lock(&self->state_lock);
    self->cb_depth++;
    self->cb_thread = pthread_self();
    pthread_mutex_unlock(&self->state_lock);
}

void store_pg_conn__pg_callback_leave(store_pg__pg_t *self)
{
    pthread_mutex_lock(&self->state_lock);
    self->cb_depth--;
    pthread_mutex_unlock(&self->state_lock);
}

/* How every transaction that writes the store begins: with the writers'
 * lock (a transaction-level advisory lock, held to its commit or rollback).
 * Several nodes write one database at once, and their transactions lock
 * rows of hub_held (every append and ack changes the 't' row and the
 * sender's and receiver's), hub_msgs, hub_ids and hub_meta, each statement
 * in an order of its own (a batch is appends, then acks one receiver at a
 * time, dead letters, ...): without one lock taken first, two nodes'
 * commits deadlocked (SQLSTATE 40P01, answered UNAVAILABLE). Writes are
 * serialised on the 't' row and hub_meta anyway; an advisory lock costs no
 * row version and no WAL, and does not wait for autovacuum. It also keeps
 * the appends' plain INSERT of new hub_ids rows (hub_store_pg.c) safe: no
 * other transaction can insert the same id between the read and the commit. */
#define HUB__PG_WRITE_BEGIN "BEGIN; SELECT pg_advisory_xact_lock(7415016)"

/* Inside a batch a savepoint is always open (the batch begins with one):
 * a write call that succeeds releases it and opens the next in one round
 * trip, one that fails rolls back to it, which keeps it. */
int store_pg_conn__pg_write_begin(store_pg__pg_t *self, PGconn **c, bool *own)
{
    if (owns_batch(self)) {
        if (store_pg_conn__pg_in_callback(self))
            return HUB_EINVAL;
        if (self->batch_err)
            return self->batch_err;
        *own = false;
        *c = self->w.conn;
        return 0;
    }
    pthread_mutex_lock(&self->wlock);
    int rc = conn_ready(self, &self->w);
    if (rc == 0)
        rc = exec_many(self, self->w.conn, HUB__PG_WRITE_BEGIN);
    if (rc == HUB_EAGAIN && idle_cut(self, &self->w))
        rc = exec_many(self, self->w.conn, HUB__PG_WRITE_BEGIN);
    if (rc != 0) {
        pthread_mutex_unlock(&self->wlock);
        return rc;
    }
    *own = true;
    *c = self->w.conn;
    return 0;
}

int store_pg_conn__pg_write_end(store_pg__pg_t *self, PGconn *c, bool own, int rc)
{
    if (!own) {
        int erc = exec_many(self, c,
                            rc == 0 ? "RELEASE SAVEPOINT hub_call; SAVEPOINT hub_call"
                                    : "ROLLBACK TO SAVEPOINT hub_call");
        if (erc != 0) {
            self->batch_err = erc; /* the batch cannot go on */
            return rc ? rc : erc;
        }
        return rc;
    }
    if (rc == 0)
        rc = store_pg_conn__pg_exec(self, c, "COMMIT", NULL, NULL);
    else
        (void)store_pg_conn__pg_exec(self, c, "ROLLBACK", NULL, NULL);
    pthread_mutex_unlock(&self->wlock);
    return rc;
}

int store_pg_conn__pg_read_begin(store_pg__pg_t *self, PGconn **c, bool *locked)
{
    if (owns_batch(self)) {
        *locked = false;
        if (self->batch_err)
            return self->batch_err;
        *c = self->w.conn;
        return 0;
    }
    pthread_mutex_lock(&self->rlock);
    int rc = conn_ready(self, &self->r);
    if (rc != 0) {
        pthread_mutex_unlock(&self->rlock);
        return rc;
    }
    *locked = true;
    *c = self->r.conn;
    return 0;
}

void store_pg_conn__pg_read_end(store_pg__pg_t *self, PGconn *c, bool locked, int rc)
{
    if (locked) {
        pthread_mutex_unlock(&self->rlock);
    } else if (rc != 0 && rc != HUB_ENOTFOUND && PQstatus(c) == CONNECTION_OK &&
               PQtransactionStatus(c) == PQTRANS_INERROR) {
        /* A read that failed inside the batch aborted its transaction:
         * back to the savepoint, which holds every call before it. */
        if (exec_many(self, c, "ROLLBACK TO SAVEPOINT hub_call") != 0)
            self->batch_err = HUB_ESTORE;
    }
}

/* ---- batches ------------------------------------------------------------------ */

int store_pg_conn__pg_batch_begin(hub_store_t *store)
{
    store_pg__pg_t *self = (store_pg__pg_t *)store;
    pthread_mutex_lock(&self->state_lock);
    bool busy = self->batch;
    pthread_mutex_unlock(&self->state_lock);
    if (busy)
        return HUB_EINVAL;
    pthread_mutex_lock(&self->wlock);
    int rc = conn_ready(self, &self->w);
    if (rc == 0)
        rc = exec_many(self, self->w.conn, HUB__PG_WRITE_BEGIN "; SAVEPOINT hub_call");
    if (rc == HUB_EAGAIN && idle_cut(self, &self->w))
        rc = exec_many(self, self->w.conn, HUB__PG_WRITE_BEGIN "; SAVEPOINT hub_call");
    if (rc != 0) {
        pthread_mutex_unlock(&self->wlock);
        return rc;
    }
    pthread_mutex_lock(&self->state_lock);
    self->batch = true;
    self->batch_owner = pthread_self();
    self->batch_err = 0;
    pthread_mutex_unlock(&self->state_lock);
    return 0;
}

static void batch_end(store_pg__pg_t *self)
{
    pthread_mutex_lock(&self->state_lock);
    self->batch = false;
    pthread_mutex_unlock(&self->state_lock);
    pthread_mutex_unlock(&self->wlock);
}

int store_pg_conn__pg_batch_commit(hub_store_t *store)
{
    store_pg__pg_t *self = (store_pg__pg_t *)store;
    if (!owns_batch(self) || store_pg_conn__pg_in_callback(self))
        return HUB_EINVAL;
    int rc = self->batch_err;
    if (rc == 0)
        rc = store_pg_conn__pg_exec(self, self->w.conn, "COMMIT", NULL, NULL);
    else
        (void)store_pg_conn__pg_exec(self, self->w.conn, "ROLLBACK", NULL, NULL);
    batch_end(self);
    return rc;
}

void store_pg_conn__pg_batch_abort(hub_store_t *store)
{
    store_pg__pg_t *self = (store_pg__pg_t *)store;
    if (!owns_batch(self) || store_pg_conn__pg_in_callback(self))
        return;
    (void)store_pg_conn__pg_exec(self, self->w.conn, "ROLLBACK", NULL, NULL);
    batch_end(self);
}

/* ---- schema ------------------------------------------------------------------- */

/* The schema version in the database: 0 when it has none. */
static int schema_version(PGconn *c, uint32_t *version, char *err, size_t err_size)
{
    *version = 0;
    PGresult *res = PQexec(c, "SELECT to_regclass('hub_schema_version') IS NOT NULL");
    char buf[256];
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        hub_errf(err, err_size, "store: cannot read the schema version: %s",
                 pq_msg(c, buf, sizeof buf));
        PQclear(res);
        return PQstatus(c) != CONNECTION_OK ? HUB_EIO : HUB_ESTORE;
    }
    bool has = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!has)
        return 0;
    res = PQexec(c, "SELECT coalesce(max(version), 0) FROM hub_schema_version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        hub_errf(err, err_size, "store: cannot read hub_schema_version: %s",
                 pq_msg(c, buf, sizeof buf));
        PQclear(res);
        return HUB_EPERM;
    }
    *version = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* schema_version, refusing a schema newer than this build knows. */
static int schema_version_known(PGconn *c, uint32_t *version, char *err, size_t err_size)
{
    int rc = schema_version(c, version, err, err_size);
    if (rc == 0 && *version > HUB_STORE_PG_SCHEMA) {
        hub_errf(err, err_size,
                 "store: the database's hub schema is version %u, newer than this build knows "
                 "(%u): run a hubd at least as new as the one that wrote it",
                 *version, HUB_STORE_PG_SCHEMA);
        rc = HUB_ESTORE;
    }
    return rc;
}

static int exec_simple(PGconn *c, const char *sql, const char *what, char *err, size_t err_size)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(res);
        return 0;
    }
    char buf[256];
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int code = PQstatus(c) != CONNECTION_OK ? HUB_EIO : map_state(state);
    hub_errf(err, err_size, "store: %s failed: %s (%s)", what, pq_msg(c, buf, sizeof buf),
             hint_for(code, state));
    PQclear(res);
    return code;
}

/* Applies the migrations after the version found, in one transaction. */
static int migrate(PGconn *c, uint32_t *from, char *err, size_t err_size)
{
    int rc = exec_simple(c, "BEGIN", "BEGIN", err, err_size);
    if (rc == 0)
        rc = exec_simple(c, MIGRATION_LOCK, "taking the migration lock", err, err_size);
    if (rc == 0)
        rc = exec_simple(c,
                         "CREATE TABLE IF NOT EXISTS hub_schema_version (version integer "
                         "PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                         "creating hub_schema_version", err, err_size);
    uint32_t v = 0;
    if (rc == 0)
        rc = schema_version_known(c, &v, err, err_size);
    for (uint32_t i = v; rc == 0 && i < HUB_STORE_PG_SCHEMA; i++) {
        char what[64], record[96];
        snprintf(what, sizeof what, "schema migration %u", i + 1);
        rc = exec_simple(c, MIGRATIONS[i], what, err, err_size);
        snprintf(record, sizeof record, "INSERT INTO hub_schema_version (version) VALUES (%u)",
                 i + 1);
        if (rc == 0)
            rc = exec_simple(c, record, what, err, err_size);
    }
    if (rc == 0)
        rc = exec_simple(c, "COMMIT", "committing the schema", err, err_size);
    else {
        PGresult *res = PQexec(c, "ROLLBACK");
        PQclear(res);
    }
    if (from)
        *from = v;
    return rc;
}

int hub_store_pg_init(const char *dsn, uint32_t *from, char *err, size_t err_size)
{
    if (from)
        *from = 0;
    if (!dsn || !*dsn) {
        hub_errf(err, err_size, "store: no store_dsn given: set store_dsn in hubd.conf");
        return HUB_EINVAL;
    }
    PGconn *c;
    int rc = connect_dsn(dsn, &c, err, err_size);
    if (rc != 0)
        return rc;
    rc = migrate(c, from, err, err_size);
    PQfinish(c);
    return rc;
}

/* ---- open, close, inspect --------------------------------------------------- */

void store_pg_conn__pg_close(hub_store_t **self_p)
{
    store_pg__pg_t *self = (store_pg__pg_t *)*self_p;
    if (owns_batch(self))
        store_pg_conn__pg_batch_abort(*self_p);
    PQfinish(self->w.conn);
    PQfinish(self->r.conn);
    pthread_mutex_destroy(&self->wlock);
    pthread_mutex_destroy(&self->rlock);
    pthread_mutex_destroy(&self->state_lock);
    free(self->dsn);
    free(self);
    *self_p = NULL;
}

uint32_t store_pg_conn__pg_upgraded_from(const hub_store_t *store)
{
    return ((const store_pg__pg_t *)(const void *)store)->upgraded_from;
}

uint32_t store_pg_conn__pg_opened_format(const hub_store_t *store)
{
    return ((const store_pg__pg_t *)(const void *)store)->opened_format;
}

int hub_store_open_pg(const char *dsn, bool do_migrate, const hub_store_limits_t *limits,
                      hub_store_t **out, char *err, size_t err_size)
{
    if (out)
        *out = NULL;
    if (!dsn || !*dsn || !out) {
        hub_errf(err, err_size, "store = postgresql needs store_dsn: set it in hubd.conf");
        return HUB_EINVAL;
    }
    if (limits && limits->reserve_percent > 50) {
        hub_errf(err, err_size,
                 "store: reserve_percent is %u; give 0 (no reserve) to 50 percent of the store",
                 limits->reserve_percent);
        return HUB_EINVAL;
    }
    store_pg__pg_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dsn = strdup(dsn))) {
        free(self);
        hub_errf(err, err_size, "store: out of memory");
        return HUB_ENOMEM;
    }
    pthread_mutex_init(&self->wlock, NULL);
    pthread_mutex_init(&self->rlock, NULL);
    pthread_mutex_init(&self->state_lock, NULL);
    self->base.ops = &store_pg__ops;
    snprintf(self->w.what, sizeof self->w.what, "writer");
    snprintf(self->r.what, sizeof self->r.what, "reader");
    if (limits)
        self->limits = *limits;
    self->max_bytes = self->limits.max_bytes ? self->limits.max_bytes : DEFAULT_MAX_BYTES;
    self->limit_bytes = self->max_bytes / 10 * 9;
    self->reserve_bytes = self->max_bytes / 100 * (90 - self->limits.reserve_percent);
    if (self->limits.reserve_percent == 0 || self->reserve_bytes > self->limit_bytes)
        self->reserve_bytes = self->limit_bytes;

    hub_store_t *store = (hub_store_t *)(void *)self;
    int rc = connect_dsn(dsn, &self->w.conn, err, err_size);
    uint32_t v = 0;
    if (rc == 0)
        rc = schema_version_known(self->w.conn, &v, err, err_size);
    if (rc == 0 && v < HUB_STORE_PG_SCHEMA && !do_migrate) {
        if (v == 0)
            hub_errf(err, err_size,
                     "store: the database in store_dsn has no hub schema: run `hubctl store "
                     "init` (or set store_migrate = yes in hubd.conf)");
        else
            hub_errf(err, err_size,
                     "store: the database's hub schema is version %u, this build needs %u: run "
                     "`hubctl store init` to migrate it (or set store_migrate = yes)",
                     v, HUB_STORE_PG_SCHEMA);
        rc = HUB_ESTORE;
    } else if (rc == 0 && v < HUB_STORE_PG_SCHEMA) {
        rc = migrate(self->w.conn, NULL, err, err_size);
        self->upgraded_from = v;
    }
    self->opened_format = v == HUB_STORE_PG_SCHEMA ? v : v ? v : 0;
    if (rc != 0) {
        store_pg_conn__pg_close(&store);
        return rc;
    }
    *out = store;
    return 0;
}

int hub_store_pg_inspect(const char *dsn, hub_store_info_t *out, char *err, size_t err_size)
{
    if (!dsn || !*dsn || !out) {
        hub_errf(err, err_size, "store: no store_dsn given");
        return HUB_EINVAL;
    }
    memset(out, 0, sizeof *out);
    PGconn *c;
    int rc = connect_dsn(dsn, &c, err, err_size);
    uint32_t v = 0;
    if (rc == 0)
        rc = schema_version(c, &v, err, err_size);
    if (rc == 0 && v == 0) {
        hub_errf(err, err_size, "store: the database has no hub schema: run `hubctl store init`");
        rc = HUB_ENOENT;
    }
    PGresult *res = NULL;
    if (rc == 0) {
        res = PQexec(c, "SELECT m.next_seq, m.store_id, m.created_at_us,"
                        " (SELECT count(*) FROM hub_msgs WHERE NOT dead),"
                        " (SELECT count(*) FROM hub_msgs WHERE dead) FROM hub_meta m");
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            char buf[256];
            hub_errf(err, err_size, "store: cannot read hub_meta: %s", pq_msg(c, buf, sizeof buf));
            rc = HUB_ESTORE;
        }
    }
    if (rc == 0) {
        out->format = v;
        out->next_seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(out->store_id, sizeof out->store_id, "%s", PQgetvalue(res, 0, 1));
        out->created_at_us = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
        out->messages = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
        out->dead = strtoull(PQgetvalue(res, 0, 4), NULL, 10);
    }
    PQclear(res);
    PQfinish(c);
    return rc;
}
