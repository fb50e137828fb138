/* hub_store_pg_internal — what the files of the PostgreSQL store share.
 *
 * PRIVATE to hub/core/hub_store_pg*.c:
 *   hub_store_pg_conn.c  connections, errors, the schema and its
 *                        migrations, open/close/init/inspect, batches
 *   hub_store_pg.c       appends, queues, acks, ids, what members hold
 *   hub_store_pg_dlq.c   dead letters and tracked requests
 *   hub_store_pg_cluster.c  several nodes (hub_cluster.h): their shared
 *                        tables and triggers, per-node audit anchors
 *
 * Tables (hub/core/sql/001_init.sql, embedded as HUB__PG_MIGRATIONS):
 *   hub_schema_version  one row per migration applied
 *   hub_meta            one row: next_seq, store_id, created_at, audit anchor
 *   hub_msgs            seq -> message; queued (dead = false) or dead-lettered
 *   hub_ids             (sender, message_id) -> seq, accepted_at, digest,
 *                       pinned: de-duplication and look-ups, as LMDB's ids
 *                       (the primary key makes an id unique across nodes)
 *   hub_held            ('s'|'r'|'t', member) -> msgs, bytes held, and for
 *                       'r' the queued count (depth)
 *   hub_requests        tracked requests
 * and, migration 2, what each node of several counted (hub_cluster_counts.h):
 *   hub_count_nodes     node_id -> when it last wrote its counts, its write number
 *   hub_flow_counts     (node_id, sender, receiver, service) -> lifetime counts
 *   hub_delegation_counts (node_id, rule, procedure) -> envelopes carried
 * Names and ids are bytea (any bytes; ordered as LMDB orders them).
 *
 * Connections. One writer connection (`w`), guarded by wlock, which a batch
 * holds from begin to end (so writers on other threads wait, as the
 * contract says); one reader connection (`r`, guarded by rlock) for reads
 * on other threads, in autocommit (they see the last committed state).
 * Reads on the batch's thread use `w`, inside the batch. Every write
 * transaction (a batch, or a call outside one) takes the writers' advisory
 * lock first, so that several nodes' transactions, which lock rows of
 * hub_held, hub_msgs, hub_ids and hub_meta in orders of their own, never
 * deadlock: one global lock order (hub_store_pg_conn.c). A call that finds
 * its connection broken tries to open it again (at once, then at most every
 * backoff: 100 ms doubling to 2 s), and fails with HUB_EAGAIN meanwhile; a
 * statement cut by a lost connection, a demoted (read-only) or stopping
 * server fails with HUB_EAGAIN too, which the commit answers as the
 * retryable NACK UNAVAILABLE. Each outage is logged once when it begins
 * and once when it ends.
 */
#ifndef HUB_STORE_PG_INTERNAL_H
#define HUB_STORE_PG_INTERNAL_H

#include "hub_buf.h"
#include "hub_store_backend.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define HUB__PG_PARAMS 24

typedef struct {
    PGconn *conn;
    uint64_t retry_at_us; /* monotonic: no new connection attempt before this */
    uint64_t backoff_us;
    uint64_t down_since_us; /* monotonic: when the outage began; 0 = up */
    unsigned attempts;      /* connection attempts in this outage */
    bool stale;             /* answers but takes no writes: open it again */
    char what[8];           /* "writer" / "reader", for logs */
} store_pg__conn_t;

typedef struct store_pg__pg {
    store_backend__base_t base; /* first: the dispatch table */
    char *dsn;
    hub_store_limits_t limits;
    uint64_t max_bytes, limit_bytes, reserve_bytes;
    uint32_t opened_format, upgraded_from;

    pthread_mutex_t wlock, rlock, state_lock;
    store_pg__conn_t w, r;
    /* The batch: batch and batch_owner change under state_lock; batch_err
     * is the owner's. */
    bool batch;
    pthread_t batch_owner;
    int batch_err;
    unsigned cb_depth; /* inside a hub_store_queues() callback on cb_thread */
    pthread_t cb_thread;
    /* Statements prepared (store_pg_conn__pg_exec_prepared) on the writer [0] and
     * the reader [1]: which connection (and server process) they were
     * prepared on, and a bit per statement slot. */
    PGconn *prep_conn[2];
    int prep_pid[2];
    uint32_t prep_mask[2];
    /* Several active nodes (hub_store_pg_cluster.c): this node's id, which
     * keys its audit anchor; "" for one node. */
    char node_id[64];
} store_pg__pg_t;

/* Parameters of one statement: text, or binary (bytea, arrays). */
typedef struct {
    int n;
    const char *v[HUB__PG_PARAMS];
    int len[HUB__PG_PARAMS];
    int fmt[HUB__PG_PARAMS];
    char txt[HUB__PG_PARAMS][24];
} store_pg__params_t;

void store_pg_conn__pg_p_i64(store_pg__params_t *p, uint64_t v); /* clamped to INT64_MAX */
void store_pg_conn__pg_p_bytes(store_pg__params_t *p, const void *b, size_t len);
void store_pg_conn__pg_p_str(store_pg__params_t *p, const char *s);
void store_pg_conn__pg_p_bool(store_pg__params_t *p, bool v);

/* A one-dimensional array in PostgreSQL's binary format. */
typedef struct {
    hub_buf_t buf; /* header and elements; buf.error: it could not grow */
    uint32_t n;
} store_pg__arr_t;

#define HUB__PG_INT8 20u
#define HUB__PG_INT4 23u
#define HUB__PG_TEXT 25u
#define HUB__PG_BYTEA 17u
void store_pg_conn__pg_arr_init(store_pg__arr_t *a, uint32_t oid);
void store_pg_conn__pg_arr_i64(store_pg__arr_t *a, uint64_t v);
void store_pg_conn__pg_arr_bytes(store_pg__arr_t *a, const void *b, size_t len);
void store_pg_conn__pg_arr_str(store_pg__arr_t *a, const char *s);
/* An int8 array of the n sequence numbers. */
void store_pg_conn__pg_arr_seqs(store_pg__arr_t *a, const uint64_t *seqs, size_t n);
/* Adds the array as the next parameter (binary); HUB_ENOMEM if it could
 * not grow. The array must outlive the statement. */
int store_pg_conn__pg_p_arr(store_pg__params_t *p, store_pg__arr_t *a);
void store_pg_conn__pg_arr_free(store_pg__arr_t *a);

/* Runs sql with p on c (binary results). *res is set when rc is 0 (the
 * caller clears it; NULL allowed to mean "clear it for me"); otherwise
 * the error is mapped to a HUB_E* code and logged. */
int store_pg_conn__pg_exec(store_pg__pg_t *self, PGconn *c, const char *sql,
                           const store_pg__params_t *p, PGresult **res);
/* As store_pg_conn__pg_exec, for the hot statements (the commit cycle's, and the
 * loop thread's look-ups and queue reads): prepared once per connection
 * as "hub_<slot>" (plan_cache_mode = force_generic_plan on that
 * connection, so that binding arrays of thousands of rows does not plan
 * the statement again each time), then executed by name. slot < 32; sql
 * must be the same for a slot. */
int store_pg_conn__pg_exec_prepared(store_pg__pg_t *self, PGconn *c, unsigned slot, const char *sql,
                                    const store_pg__params_t *p, PGresult **res);
uint64_t store_pg_conn__pg_u64(const PGresult *res, int row, int col);
uint32_t store_pg_conn__pg_u32(const PGresult *res, int row, int col);
bool store_pg_conn__pg_bool(const PGresult *res, int row, int col);
/* Copies a bytea/text column into dst (max bytes + NUL). */
void store_pg_conn__pg_str(const PGresult *res, int row, int col, char *dst, size_t max);

/* Writes: begin gives the connection to write on, in a transaction of its
 * own (outside a batch) or after the batch's open savepoint (inside); end
 * commits or rolls back by rc and returns the outcome. */
int store_pg_conn__pg_write_begin(store_pg__pg_t *self, PGconn **c, bool *own);
int store_pg_conn__pg_write_end(store_pg__pg_t *self, PGconn *c, bool own, int rc);
/* Reads: the batch's connection on its thread, else the reader. */
int store_pg_conn__pg_read_begin(store_pg__pg_t *self, PGconn **c, bool *locked);
/* rc: the read's outcome (a failed read inside the batch rolls back to
 * its savepoint). */
void store_pg_conn__pg_read_end(store_pg__pg_t *self, PGconn *c, bool locked, int rc);
bool store_pg_conn__pg_in_callback(store_pg__pg_t *self);
void store_pg_conn__pg_callback_enter(store_pg__pg_t *self);
void store_pg_conn__pg_callback_leave(store_pg__pg_t *self);

extern const store_backend__ops_t store_pg__ops;
int store_pg_conn__pg_batch_begin(hub_store_t *store);
int store_pg_conn__pg_batch_commit(hub_store_t *store);
void store_pg_conn__pg_batch_abort(hub_store_t *store);
void store_pg_conn__pg_close(hub_store_t **self_p);
uint32_t store_pg_conn__pg_upgraded_from(const hub_store_t *store);
uint32_t store_pg_conn__pg_opened_format(const hub_store_t *store);

/* ---- shared by the operations (hub_store_pg.c, hub_store_pg_dlq.c) ---- */

#define HUB__PG_SELF store_pg__pg_t *self = (store_pg__pg_t *)(void *)store
#define HUB__PG_ROW HUB_STORE_PG_ROW_BYTES

/* The columns fill_msg reads (0..8). */
#define HUB__PG_MSG_COLS                                                                           \
    "seq, message_id, sender, receiver, service, accepted_at_us, expires_at_us, attempts, "        \
    "octet_length(envelope)::int8"

/* Every statement that deletes messages (a CTE d, HUB__PG_REMOVED_COLS)
 * ends in HUB__PG_REMOVE_TAIL: what the members hold goes down, and pinned
 * ids records that name the messages go. The hub_held rows are changed in
 * (kind, member) order, as an append changes them (an upsert of negative
 * deltas: UPDATE ... FROM locks in the join's order), so that two nodes'
 * append and ack cannot deadlock. */
#define HUB__PG_REMOVE_TAIL                                                                        \
    ", g AS (SELECT 's'::text AS kind, sender AS member, count(*) AS c, sum(len)::int8 AS b, "     \
    "0::int8 AS q FROM d GROUP BY sender UNION ALL SELECT 'r', receiver, count(*), "               \
    "sum(len)::int8, count(*) FILTER (WHERE NOT dead) FROM d GROUP BY receiver UNION ALL "         \
    "SELECT 't', '\\x'::bytea, count(*), coalesce(sum(len), 0)::int8, 0 FROM d), "                 \
    "u AS (INSERT INTO hub_held (kind, member, msgs, bytes, queued) SELECT kind, member, -c, -b, "  \
    "-q FROM g WHERE c > 0 AND EXISTS (SELECT 1 FROM hub_held e WHERE e.kind = g.kind AND "        \
    "e.member = g.member) ORDER BY kind COLLATE \"C\", member ON CONFLICT (kind, member) DO "       \
    "UPDATE SET msgs = hub_held.msgs + excluded.msgs, bytes = hub_held.bytes + excluded.bytes, "   \
    "queued = hub_held.queued + excluded.queued), "                                                \
    "x AS (DELETE FROM hub_ids i USING d WHERE i.pinned AND i.sender = d.sender AND "              \
    "i.message_id = d.message_id AND i.seq = d.seq) SELECT count(*) FROM d"
#define HUB__PG_REMOVED_COLS                                                                       \
    "RETURNING seq, message_id, sender, receiver, octet_length(envelope)::int8 AS len, dead"

/* One read statement on the caller's connection (store_pg_conn__pg_read_begin);
 * *res on 0. */
int store_pg__read1(store_pg__pg_t *self, const char *sql, const store_pg__params_t *p,
                    PGresult **res);
/* The audit anchor (seq, 32-byte hash) from the one row sql reads, zeros
 * when there is none. */
int store_pg__anchor_read(store_pg__pg_t *self, const char *sql, const store_pg__params_t *p,
                          uint64_t *seq, uint8_t hash[32]);
/* One write statement as a whole call; *res (may be NULL) on 0. */
int store_pg__write1(store_pg__pg_t *self, const char *sql, const store_pg__params_t *p,
                     PGresult **res);
/* Fills *out from the HUB__PG_MSG_COLS of row r and the envelope in column env
 * (-1: none) into arena. */
int store_pg__fill_msg(const PGresult *res, int r, int env, hub_store_msg_t *out,
                       hub_store_arena_t *arena);

/* hub_store_pg_dlq.c */
int store_pg_dlq__pg_dead_letter(hub_store_t *store, const uint64_t *seqs, size_t n,
                                 const char *reason, bool *moved);
int store_pg_dlq__list(hub_store_t *store, uint64_t after_seq, size_t max, hub_store_dead_t *out,
                       size_t *n_out, hub_store_arena_t *arena);
int store_pg_dlq__get(hub_store_t *store, uint64_t seq, hub_store_dead_t *out,
                      hub_store_arena_t *arena);
int store_pg_dlq__replay(hub_store_t *store, uint64_t seq, uint64_t new_ttl_us, uint64_t preset_seq,
                         uint64_t *new_seq);
int store_pg_dlq__purge(hub_store_t *store, uint64_t seq);
int store_pg_dlq__purge_older(hub_store_t *store, uint64_t before_us, size_t *purged);
int store_pg_dlq__pg_requests_put(hub_store_t *store, const hub_store_request_t *reqs, size_t n);
int store_pg_dlq__pg_requests_del(hub_store_t *store, const char *const *ids, size_t n);
int store_pg_dlq__pg_requests_load(hub_store_t *store, uint64_t now_us, hub_store_request_cb cb,
                                   void *user, size_t *expired);

#endif
