/* hub_store_pg_dlq.c — the PostgreSQL store's dead letters (moving,
 * listing, replaying, purging) and tracked requests (see
 * hub_store_pg_internal.h). */
#include "hub_store_pg_internal.h"

#include "hub_error.h"
#include "hub_store_codec.h"
#include "hub_wire.h"

#include <stdlib.h>
#include <string.h>

#define PURGE_CHUNK 4096u

/* ---- dead letters --------------------------------------------------------- */

int store_pg_dlq__pg_dead_letter(hub_store_t *store, const uint64_t *seqs, size_t n,
                                 const char *reason, bool *moved)
{
    HUB__PG_SELF;
    store_pg__arr_t a;
    store_pg_conn__pg_arr_seqs(&a, seqs, n);
    store_pg__params_t p = {0};
    int rc = store_pg_conn__pg_p_arr(&p, &a);
    store_pg_conn__pg_p_bytes(&p, reason, store_codec__reason_len(reason));
    store_pg_conn__pg_p_i64(&p, hub_now_us());
    /* The rows this statement moved: another node (or an earlier commit)
     * may have moved some of the seqs already. */
    PGresult *res = NULL;
    if (rc == 0)
        rc = store_pg__write1(
            self,
            "WITH d AS (UPDATE hub_msgs SET dead = true, dead_reason = $2, "
            "dead_at_us = $3 WHERE NOT dead AND seq = ANY($1::int8[]) RETURNING "
            "seq, receiver), h AS (UPDATE hub_held h SET queued = h.queued - g.c FROM "
            "(SELECT receiver, count(*) AS c FROM d GROUP BY receiver) g WHERE h.kind = 'r' "
            "AND h.member = g.receiver) SELECT seq FROM d",
            &p, &res);
    for (int r = 0; rc == 0 && moved && r < PQntuples(res); r++) {
        uint64_t seq = store_pg_conn__pg_u64(res, r, 0);
        for (size_t i = 0; i < n; i++)
            if (seqs[i] == seq)
                moved[i] = true;
    }
    PQclear(res);
    store_pg_conn__pg_arr_free(&a);
    return rc;
}

#define DEAD_COLS HUB__PG_MSG_COLS ", dead_reason, dead_at_us"

static int fill_dead(const PGresult *res, int r, hub_store_dead_t *out, hub_store_arena_t *arena)
{
    memset(out, 0, sizeof *out);
    int rc = store_pg__fill_msg(res, r, arena ? 11 : -1, &out->msg, arena);
    store_pg_conn__pg_str(res, r, 9, out->reason, HUB_STORE_REASON_MAX);
    out->dead_at_us = store_pg_conn__pg_u64(res, r, 10);
    return rc;
}

int store_pg_dlq__list(hub_store_t *store, uint64_t after_seq, size_t max, hub_store_dead_t *out,
                       size_t *n_out, hub_store_arena_t *arena)
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_i64(&p, after_seq);
    store_pg_conn__pg_p_i64(&p, max);
    PGresult *res;
    int rc = store_pg__read1(self,
                             arena ? "SELECT " DEAD_COLS
                                     ", envelope FROM hub_msgs WHERE dead AND seq > $1 "
                                     "ORDER BY seq LIMIT $2"
                                   : "SELECT " DEAD_COLS " FROM hub_msgs WHERE dead AND seq > $1 "
                                     "ORDER BY seq LIMIT $2",
                             &p, &res);
    if (rc != 0)
        return rc;
    for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
        rc = fill_dead(res, r, &out[r], arena);
        if (rc == 0)
            (*n_out)++;
    }
    PQclear(res);
    return rc;
}

int store_pg_dlq__get(hub_store_t *store, uint64_t seq, hub_store_dead_t *out,
                      hub_store_arena_t *arena)
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_i64(&p, seq);
    PGresult *res;
    int rc = store_pg__read1(self,
                             arena ? "SELECT " DEAD_COLS
                                     ", envelope FROM hub_msgs WHERE dead AND seq = $1"
                                   : "SELECT " DEAD_COLS " FROM hub_msgs WHERE dead AND seq = $1",
                             &p, &res);
    if (rc != 0)
        return rc;
    rc = PQntuples(res) == 1 ? fill_dead(res, 0, out, arena) : HUB_ENOTFOUND;
    PQclear(res);
    return rc;
}

int store_pg_dlq__replay(hub_store_t *store, uint64_t seq, uint64_t new_ttl_us, uint64_t preset_seq,
                         uint64_t *new_seq)
{
    HUB__PG_SELF;
    uint64_t now = hub_now_us();
    uint64_t expires =
        new_ttl_us ? (new_ttl_us > UINT64_MAX - now ? UINT64_MAX : now + new_ttl_us) : 0;
    PGconn *c;
    bool own;
    int rc = store_pg_conn__pg_write_begin(self, &c, &own);
    if (rc != 0)
        return rc;
    PGresult *res = NULL;
    uint64_t next = 0;
    rc = store_pg_conn__pg_exec(
        self, c,
        "SELECT m.next_seq, t.msgs, t.bytes FROM hub_meta m, hub_held t WHERE "
        "m.id = 1 AND t.kind = 't' FOR UPDATE OF m",
        NULL, &res);
    if (rc == 0) {
        if (PQntuples(res) != 1)
            rc = HUB_ESTORE;
        else if (store_pg_conn__pg_u64(res, 0, 2) + store_pg_conn__pg_u64(res, 0, 1) * HUB__PG_ROW >
                 self->limit_bytes)
            rc = HUB_EFULL; /* the same line as appends: keep room for acks */
        else
            next = preset_seq ? preset_seq : store_pg_conn__pg_u64(res, 0, 0);
        PQclear(res);
        res = NULL;
    }
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_i64(&p, seq);
    store_pg_conn__pg_p_i64(&p, next);
    store_pg_conn__pg_p_i64(&p, expires);
    if (rc == 0)
        rc = store_pg_conn__pg_exec(
            self, c,
            "WITH d AS (UPDATE hub_msgs SET seq = $2, dead = false, dead_reason = "
            "NULL, dead_at_us = NULL, attempts = 0, expires_at_us = $3 WHERE seq = "
            "$1 AND dead RETURNING sender, message_id, receiver), "
            "i AS (UPDATE hub_ids i SET seq = $2 FROM d WHERE i.sender = d.sender "
            "AND i.message_id = d.message_id AND i.seq = $1), "
            "h AS (UPDATE hub_held h SET queued = h.queued + 1 FROM d WHERE "
            "h.kind = 'r' AND h.member = d.receiver), "
            "n AS (UPDATE hub_meta SET next_seq = greatest(next_seq, $2::int8 + 1) "
            "WHERE id = 1 AND EXISTS (SELECT 1 FROM d)) SELECT count(*) FROM d",
            &p, &res);
    if (rc == 0) {
        if (store_pg_conn__pg_u64(res, 0, 0) != 1)
            rc = HUB_ENOTFOUND;
        PQclear(res);
    }
    rc = store_pg_conn__pg_write_end(self, c, own, rc);
    if (rc == 0 && new_seq)
        *new_seq = next;
    return rc;
}

int store_pg_dlq__purge(hub_store_t *store, uint64_t seq)
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_i64(&p, seq);
    PGresult *res;
    int rc = store_pg__write1(
        self,
        "WITH d AS (DELETE FROM hub_msgs WHERE dead AND seq = $1 " HUB__PG_REMOVED_COLS
        ")" HUB__PG_REMOVE_TAIL,
        &p, &res);
    if (rc == 0) {
        if (store_pg_conn__pg_u64(res, 0, 0) == 0)
            rc = HUB_ENOTFOUND;
        PQclear(res);
    }
    return rc;
}

int store_pg_dlq__purge_older(hub_store_t *store, uint64_t before_us, size_t *purged)
{
    HUB__PG_SELF;
    for (;;) {
        store_pg__params_t p = {0};
        store_pg_conn__pg_p_i64(&p, before_us);
        store_pg_conn__pg_p_i64(&p, PURGE_CHUNK);
        PGresult *res;
        int rc = store_pg__write1(
            self,
            "WITH d AS (DELETE FROM hub_msgs WHERE seq IN (SELECT seq FROM hub_msgs "
            "WHERE dead AND dead_at_us < $1 ORDER BY dead_at_us LIMIT $2) " HUB__PG_REMOVED_COLS
            ")" HUB__PG_REMOVE_TAIL,
            &p, &res);
        if (rc != 0)
            return rc;
        uint64_t k = store_pg_conn__pg_u64(res, 0, 0);
        PQclear(res);
        if (purged)
            *purged += (size_t)k;
        if (k < PURGE_CHUNK)
            return 0;
    }
}

/* ---- tracked requests ------------------------------------------------------ */

int store_pg_dlq__pg_requests_put(hub_store_t *store, const hub_store_request_t *reqs, size_t n)
{
    HUB__PG_SELF;
    store_pg__arr_t a[4];
    store_pg_conn__pg_arr_init(&a[0], HUB__PG_BYTEA);
    store_pg_conn__pg_arr_init(&a[1], HUB__PG_BYTEA);
    store_pg_conn__pg_arr_init(&a[2], HUB__PG_BYTEA);
    store_pg_conn__pg_arr_init(&a[3], HUB__PG_INT8);
    for (size_t i = 0; i < n; i++) {
        store_pg_conn__pg_arr_str(&a[0], reqs[i].message_id);
        store_pg_conn__pg_arr_str(&a[1], reqs[i].sender);
        store_pg_conn__pg_arr_str(&a[2], reqs[i].receiver);
        store_pg_conn__pg_arr_i64(&a[3], reqs[i].expires_at_us);
    }
    store_pg__params_t p = {0};
    int rc = 0;
    for (int k = 0; rc == 0 && k < 4; k++)
        rc = store_pg_conn__pg_p_arr(&p, &a[k]);
    if (rc == 0)
        rc = store_pg__write1(
            self,
            "INSERT INTO hub_requests (message_id, sender, receiver, expires_at_us) "
            "SELECT DISTINCT ON (k.i) k.i, k.s, k.r, k.e FROM unnest($1::bytea[], "
            "$2::bytea[], $3::bytea[], $4::int8[]) WITH ORDINALITY AS k(i, s, r, e, o) "
            "ORDER BY k.i, k.o DESC ON CONFLICT (message_id) DO UPDATE SET sender = "
            "excluded.sender, receiver = excluded.receiver, expires_at_us = "
            "excluded.expires_at_us",
            &p, NULL);
    for (int k = 0; k < 4; k++)
        store_pg_conn__pg_arr_free(&a[k]);
    return rc;
}

int store_pg_dlq__pg_requests_del(hub_store_t *store, const char *const *ids, size_t n)
{
    HUB__PG_SELF;
    for (size_t i = 0; i < n; i++)
        if (!store_backend__str_ok(ids[i], HUB_STORE_ID_MAX, false))
            return HUB_EINVAL;
    store_pg__arr_t a;
    store_pg_conn__pg_arr_init(&a, HUB__PG_BYTEA);
    for (size_t i = 0; i < n; i++)
        store_pg_conn__pg_arr_str(&a, ids[i]);
    store_pg__params_t p = {0};
    int rc = store_pg_conn__pg_p_arr(&p, &a);
    if (rc == 0)
        rc = store_pg__write1(self, "DELETE FROM hub_requests WHERE message_id = ANY($1::bytea[])",
                              &p, NULL);
    store_pg_conn__pg_arr_free(&a);
    return rc;
}

int store_pg_dlq__pg_requests_load(hub_store_t *store, uint64_t now_us, hub_store_request_cb cb,
                                   void *user, size_t *expired)
{
    HUB__PG_SELF;
    PGconn *c;
    bool own;
    int rc = store_pg_conn__pg_write_begin(self, &c, &own);
    if (rc != 0)
        return rc;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_i64(&p, now_us);
    PGresult *gone = NULL, *res = NULL;
    rc = store_pg_conn__pg_exec(self, c,
                                "WITH d AS (DELETE FROM hub_requests WHERE expires_at_us <> 0 AND "
                                "expires_at_us <= $1 RETURNING 1) SELECT count(*) FROM d",
                                &p, &gone);
    if (rc == 0)
        rc = store_pg_conn__pg_exec(
            self, c,
            "SELECT message_id, sender, receiver, expires_at_us FROM hub_requests "
            "ORDER BY message_id",
            NULL, &res);
    rc = store_pg_conn__pg_write_end(self, c, own, rc);
    if (rc == 0) {
        if (expired)
            *expired = (size_t)store_pg_conn__pg_u64(gone, 0, 0);
        for (int r = 0; r < PQntuples(res); r++) {
            hub_store_request_t q;
            store_pg_conn__pg_str(res, r, 0, q.message_id, HUB_STORE_ID_MAX);
            store_pg_conn__pg_str(res, r, 1, q.sender, HUB_STORE_NAME_MAX);
            store_pg_conn__pg_str(res, r, 2, q.receiver, HUB_STORE_NAME_MAX);
            q.expires_at_us = store_pg_conn__pg_u64(res, r, 3);
            cb(&q, user);
        }
    }
    PQclear(gone);
    PQclear(res);
    return rc;
}
