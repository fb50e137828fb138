/* hub_store_pg.c — the operations of hub_store.h on PostgreSQL (tables and
 * connections: hub_store_pg_internal.h). Each call is a few statements on
 * one connection; a group commit is one transaction whose appends insert
 * many rows per statement (unnest over binary arrays). */
#include "hub_store_pg_internal.h"

#include "hub_error.h"
#include "hub_store_codec.h"
#include "hub_vec.h"
#include "hub_wire.h"

#include <stdlib.h>
#include <string.h>

/* ---- a small map: key bytes -> entry ------------------------------------- */

typedef struct {
    char *key;
    size_t klen;
    bool known;                /* read from the database, or stored by this call */
    bool in_db;                /* ids: read from the database */
    bool write;                /* ids: stored by this call */
    uint64_t seq, accepted_at; /* ids */
    uint8_t digest[HUB_STORE_DIGEST_LEN];
    uint64_t msgs, bytes, queued; /* held: the table's value */
    int64_t dm, db, dq;           /* held: this call's changes */
} ent_t;

/* Entries are allocated one by one: a pointer to one stays valid while
 * others are added. */
typedef struct {
    ent_t **e;
    size_t n, cap;
    uint32_t *slots;
    size_t nslots;
    bool oom;
} map_t;

static void map_free(map_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i]->key);
        free(m->e[i]);
    }
    free(m->e);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static ent_t *map_get(map_t *m, const void *key, size_t klen, bool create)
{
    if (m->oom)
        return NULL;
    if (create && (m->n + 1) * 2 > m->nslots) {
        size_t ns = m->nslots ? m->nslots * 2 : 64;
        uint32_t *slots = calloc(ns, sizeof *slots);
        if (!slots) {
            m->oom = true;
            return NULL;
        }
        for (size_t i = 0; i < m->n; i++) {
            uint64_t hash = store_backend__hash(m->e[i]->key, m->e[i]->klen);
            slots[store_backend__free_slot(slots, ns, hash)] = (uint32_t)i + 1;
        }
        free(m->slots);
        m->slots = slots;
        m->nslots = ns;
    }
    if (!m->nslots)
        return NULL;
    size_t j = store_backend__hash(key, klen) & (m->nslots - 1);
    while (m->slots[j]) {
        ent_t *e = m->e[m->slots[j] - 1];
        if (e->klen == klen && !memcmp(e->key, key, klen))
            return e;
        j = (j + 1) & (m->nslots - 1);
    }
    if (!create)
        return NULL;
    if (HUB_VEC_RESERVE(m->e, m->n, m->cap, 32) != 0) {
        m->oom = true;
        return NULL;
    }
    ent_t *e = calloc(1, sizeof *e);
    if (!e || !(e->key = malloc(klen ? klen : 1))) {
        free(e);
        m->oom = true;
        return NULL;
    }
    m->e[m->n] = e;
    memcpy(e->key, key, klen);
    e->klen = klen;
    m->slots[j] = (uint32_t)++m->n;
    return e;
}

/* "sender \0 id" and "kind member" keys. */
static size_t ids_key(char *buf, const char *sender, const char *id)
{
    size_t s = strlen(sender), i = strlen(id);
    memcpy(buf, sender, s);
    buf[s] = 0;
    memcpy(buf + s + 1, id, i);
    return s + 1 + i;
}

static size_t held_key(char *buf, char kind, const char *member)
{
    size_t m = strlen(member);
    buf[0] = kind;
    memcpy(buf + 1, member, m);
    return m + 1;
}

static hub_store_held_t held_now(const ent_t *e)
{
    hub_store_held_t h = {0, 0};
    if (e) {
        h.msgs = (uint64_t)((int64_t)e->msgs + e->dm);
        h.bytes = (uint64_t)((int64_t)e->bytes + e->db);
    }
    return h;
}

/* ---- appending ------------------------------------------------------------ */

static bool digest_unknown(const uint8_t d[HUB_STORE_DIGEST_LEN])
{
    for (size_t i = 0; i < HUB_STORE_DIGEST_LEN; i++)
        if (d[i])
            return false;
    return true;
}

/* The hot statements (store_pg_conn__pg_exec_prepared): the commit cycle's on the
 * writer, the loop thread's look-up and queue read on the reader. */
enum {
    PREP_NEXT_SEQ,
    PREP_IDS,
    PREP_HELD,
    PREP_APPEND,
    PREP_ACK,
    PREP_LOOKUP,
    PREP_READ_QUEUE,
    PREP_NONE = 32 /* read_prepared: not prepared */
};

/* Runs the prepared statement in slot with the arrays a and b as $1 and
 * $2; *res on 0. */
static int exec_arrays(store_pg__pg_t *self, PGconn *c, unsigned slot, const char *sql,
                       store_pg__arr_t *a, store_pg__arr_t *b, PGresult **res)
{
    store_pg__params_t p = {0};
    int rc = store_pg_conn__pg_p_arr(&p, a);
    if (rc == 0)
        rc = store_pg_conn__pg_p_arr(&p, b);
    if (rc == 0)
        rc = store_pg_conn__pg_exec_prepared(self, c, slot, sql, &p, res);
    return rc;
}

/* Reads the ids records and held entries the call's messages name. */
static int append_load(store_pg__pg_t *self, PGconn *c, const hub_store_msg_t *msgs, size_t n,
                       map_t *ids, map_t *held)
{
    char key[HUB_STORE_NAME_MAX + HUB_STORE_ID_MAX + 2];
    store_pg__arr_t s, id, hs, hr;
    store_pg_conn__pg_arr_init(&s, HUB__PG_BYTEA);
    store_pg_conn__pg_arr_init(&id, HUB__PG_BYTEA);
    store_pg_conn__pg_arr_init(&hs, HUB__PG_BYTEA);
    store_pg_conn__pg_arr_init(&hr, HUB__PG_BYTEA);
    for (size_t i = 0; i < n; i++) {
        if (self->limits.dedup_window_us) {
            store_pg_conn__pg_arr_str(&s, msgs[i].sender);
            store_pg_conn__pg_arr_str(&id, msgs[i].message_id);
        }
        if (!msgs[i].settled) {
            store_pg_conn__pg_arr_str(&hs, msgs[i].sender);
            store_pg_conn__pg_arr_str(&hr, msgs[i].receiver);
        }
    }
    int rc = 0;
    PGresult *res = NULL;
    if (self->limits.dedup_window_us) {
        rc = exec_arrays(self, c, PREP_IDS,
                         "SELECT i.sender, i.message_id, i.seq, i.accepted_at_us, i.digest "
                         "FROM hub_ids i JOIN unnest($1::bytea[], $2::bytea[]) AS k(s, m) "
                         "ON i.sender = k.s AND i.message_id = k.m",
                         &s, &id, &res);
        for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
            size_t sl = (size_t)PQgetlength(res, r, 0), il = (size_t)PQgetlength(res, r, 1);
            if (sl > HUB_STORE_NAME_MAX || il > HUB_STORE_ID_MAX)
                continue;
            memcpy(key, PQgetvalue(res, r, 0), sl);
            key[sl] = 0;
            memcpy(key + sl + 1, PQgetvalue(res, r, 1), il);
            ent_t *e = map_get(ids, key, sl + 1 + il, true);
            if (!e) {
                rc = HUB_ENOMEM;
                break;
            }
            e->known = true;
            e->in_db = true;
            e->seq = store_pg_conn__pg_u64(res, r, 2);
            e->accepted_at = store_pg_conn__pg_u64(res, r, 3);
            if (PQgetlength(res, r, 4) == HUB_STORE_DIGEST_LEN)
                memcpy(e->digest, PQgetvalue(res, r, 4), HUB_STORE_DIGEST_LEN);
        }
        PQclear(res);
        res = NULL;
    }
    if (rc == 0) {
        rc = exec_arrays(self, c, PREP_HELD,
                         "SELECT kind, member, msgs, bytes, queued FROM hub_held "
                         "WHERE kind = 't' OR (kind = 's' AND member = ANY($1::bytea[])) "
                         "OR (kind = 'r' AND member = ANY($2::bytea[]))",
                         &hs, &hr, &res);
        for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
            size_t ml = (size_t)PQgetlength(res, r, 1);
            if (ml > HUB_STORE_NAME_MAX || PQgetlength(res, r, 0) != 1)
                continue;
            key[0] = PQgetvalue(res, r, 0)[0];
            memcpy(key + 1, PQgetvalue(res, r, 1), ml);
            ent_t *e = map_get(held, key, ml + 1, true);
            if (!e) {
                rc = HUB_ENOMEM;
                break;
            }
            e->known = true;
            e->msgs = store_pg_conn__pg_u64(res, r, 2);
            e->bytes = store_pg_conn__pg_u64(res, r, 3);
            e->queued = store_pg_conn__pg_u64(res, r, 4);
        }
        PQclear(res);
    }
    store_pg_conn__pg_arr_free(&s);
    store_pg_conn__pg_arr_free(&id);
    store_pg_conn__pg_arr_free(&hs);
    store_pg_conn__pg_arr_free(&hr);
    return rc;
}

/* One statement for the whole call. The ids rows come one per id (the
 * call's map): ids the database did not have when the call read them are
 * plain inserts (n; every transaction that writes the store, on any node,
 * holds the writers' lock from its begin to its commit (HUB__PG_WRITE_BEGIN
 * in hub_store_pg_conn.c), so no other node can insert them meanwhile: a
 * node appending an id another node's commit in flight holds waits for that
 * commit, then reads the id and answers DUPLICATE or ID_REUSED),
 * the others, and all when no window is set (nothing was read),
 * upserts (i), which cost a speculative insertion each. The hub_held rows
 * are locked in (kind, member) order, as HUB__PG_REMOVE_TAIL locks them:
 * otherwise one node's append and another node's ack deadlock on the
 * sender's, receiver's and total rows (PostgreSQL aborts one, 40P01). */
static const char APPEND_SQL[] =
    "WITH m AS (INSERT INTO hub_msgs (seq, message_id, sender, receiver, service, "
    "accepted_at_us, expires_at_us, envelope) SELECT * FROM unnest($1::int8[], $2::bytea[], "
    "$3::bytea[], $4::bytea[], $5::bytea[], $6::int8[], $7::int8[], $8::bytea[])), "
    "n AS (INSERT INTO hub_ids (sender, message_id, seq, accepted_at_us, digest) "
    "SELECT * FROM unnest($9::bytea[], $10::bytea[], $11::int8[], $12::int8[], $13::bytea[])), "
    "i AS (INSERT INTO hub_ids (sender, message_id, seq, accepted_at_us, digest) "
    "SELECT * FROM unnest($14::bytea[], $15::bytea[], $16::int8[], $17::int8[], $18::bytea[]) "
    "ON CONFLICT (sender, message_id) DO UPDATE SET seq = excluded.seq, "
    "accepted_at_us = excluded.accepted_at_us, digest = excluded.digest, pinned = false), "
    "h AS (INSERT INTO hub_held (kind, member, msgs, bytes, queued) SELECT * FROM "
    "unnest($19::text[], $20::bytea[], $21::int8[], $22::int8[], $23::int8[]) "
    "AS hh (hk, hm, hc, hb, hq) ORDER BY hk COLLATE \"C\", hm "
    "ON CONFLICT (kind, member) DO UPDATE SET msgs = hub_held.msgs + excluded.msgs, "
    "bytes = hub_held.bytes + excluded.bytes, queued = hub_held.queued + excluded.queued) "
    "UPDATE hub_meta SET next_seq = greatest(next_seq, $24::int8) WHERE id = 1";

/* Signed deltas go through int8 arrays as two's complement. */
static int append_write(store_pg__pg_t *self, PGconn *c, const hub_store_msg_t *msgs, size_t n,
                        const hub_store_outcome_t *outcomes, const map_t *ids, map_t *held,
                        uint64_t next)
{
    enum {
        SEQ,
        ID,
        SND,
        RCV,
        SVC,
        ACC,
        EXP,
        ENV,
        NSND, /* new ids: NSND..NDIG; upserts: ISND..IDIG */
        NID,
        NSEQ,
        NACC,
        NDIG,
        ISND,
        IID,
        ISEQ,
        IACC,
        IDIG,
        HK,
        HM,
        HMS,
        HB,
        HQ,
        N_ARR
    };
    static const uint32_t oid[N_ARR] = {
        HUB__PG_INT8,  HUB__PG_BYTEA, HUB__PG_BYTEA, HUB__PG_BYTEA, HUB__PG_BYTEA, HUB__PG_INT8,
        HUB__PG_INT8,  HUB__PG_BYTEA, HUB__PG_BYTEA, HUB__PG_BYTEA, HUB__PG_INT8,  HUB__PG_INT8,
        HUB__PG_BYTEA, HUB__PG_BYTEA, HUB__PG_BYTEA, HUB__PG_INT8,  HUB__PG_INT8,  HUB__PG_BYTEA,
        HUB__PG_TEXT,  HUB__PG_BYTEA, HUB__PG_INT8,  HUB__PG_INT8,  HUB__PG_INT8};
    store_pg__arr_t a[N_ARR];
    for (int k = 0; k < N_ARR; k++)
        store_pg_conn__pg_arr_init(&a[k], oid[k]);
    for (size_t i = 0; i < n; i++) {
        const hub_store_msg_t *m = &msgs[i];
        if (outcomes[i] != HUB_STORE_OK)
            continue;
        if (!m->settled) {
            store_pg_conn__pg_arr_i64(&a[SEQ], m->seq);
            store_pg_conn__pg_arr_str(&a[ID], m->message_id);
            store_pg_conn__pg_arr_str(&a[SND], m->sender);
            store_pg_conn__pg_arr_str(&a[RCV], m->receiver);
            store_pg_conn__pg_arr_str(&a[SVC], m->service);
            store_pg_conn__pg_arr_i64(&a[ACC], m->accepted_at_us);
            store_pg_conn__pg_arr_i64(&a[EXP], m->expires_at_us);
            store_pg_conn__pg_arr_bytes(&a[ENV], m->envelope, m->envelope_len);
        }
    }
    for (size_t i = 0; i < ids->n; i++) {
        const ent_t *e = ids->e[i];
        if (!e->write)
            continue;
        int k = self->limits.dedup_window_us && !e->in_db ? NSND : ISND;
        size_t sl = strlen(e->key);
        store_pg_conn__pg_arr_bytes(&a[k], e->key, sl);
        store_pg_conn__pg_arr_bytes(&a[k + 1], e->key + sl + 1, e->klen - sl - 1);
        store_pg_conn__pg_arr_i64(&a[k + 2], e->seq);
        store_pg_conn__pg_arr_i64(&a[k + 3], e->accepted_at);
        store_pg_conn__pg_arr_bytes(&a[k + 4], e->digest, HUB_STORE_DIGEST_LEN);
    }
    for (size_t i = 0; i < held->n; i++) {
        const ent_t *e = held->e[i];
        if (!e->dm && !e->db && !e->dq)
            continue;
        store_pg_conn__pg_arr_bytes(&a[HK], e->key, 1);
        store_pg_conn__pg_arr_bytes(&a[HM], e->key + 1, e->klen - 1);
        uint8_t b[8];
        hub_put_be64(b, (uint64_t)e->dm);
        store_pg_conn__pg_arr_bytes(&a[HMS], b, 8);
        hub_put_be64(b, (uint64_t)e->db);
        store_pg_conn__pg_arr_bytes(&a[HB], b, 8);
        hub_put_be64(b, (uint64_t)e->dq);
        store_pg_conn__pg_arr_bytes(&a[HQ], b, 8);
    }
    store_pg__params_t p = {0};
    int rc = 0;
    for (int k = 0; rc == 0 && k < N_ARR; k++)
        rc = store_pg_conn__pg_p_arr(&p, &a[k]);
    if (rc == 0) {
        store_pg_conn__pg_p_i64(&p, next);
        rc = store_pg_conn__pg_exec_prepared(self, c, PREP_APPEND, APPEND_SQL, &p, NULL);
    }
    for (int k = 0; k < N_ARR; k++)
        store_pg_conn__pg_arr_free(&a[k]);
    return rc;
}

static int pg_append(hub_store_t *store, hub_store_msg_t *msgs, size_t n,
                     hub_store_outcome_t *outcomes)
{
    HUB__PG_SELF;
    PGconn *c;
    bool own;
    int rc = store_pg_conn__pg_write_begin(self, &c, &own);
    if (rc != 0)
        return rc;
    PGresult *res;
    uint64_t next = 0;
    rc = store_pg_conn__pg_exec_prepared(self, c, PREP_NEXT_SEQ,
                                         "SELECT next_seq FROM hub_meta WHERE id = 1 FOR UPDATE",
                                         NULL, &res);
    if (rc == 0) {
        if (PQntuples(res) == 1)
            next = store_pg_conn__pg_u64(res, 0, 0);
        else
            rc = HUB_ESTORE;
        PQclear(res);
    }
    map_t ids = {0}, held = {0};
    if (rc == 0)
        rc = append_load(self, c, msgs, n, &ids, &held);
    char key[HUB_STORE_NAME_MAX + HUB_STORE_ID_MAX + 2];
    ent_t *total = map_get(&held, "t", 1, false);
    uint64_t floor = next, first_next = next;
    bool stored = false;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        hub_store_msg_t *m = &msgs[i];
        if (m->preset_seq >= floor)
            floor = m->preset_seq + 1;
        /* Every id of the call has an entry, so that each is written once. */
        ent_t *ie = map_get(&ids, key, ids_key(key, m->sender, m->message_id), true);
        if (!ie) {
            rc = HUB_ENOMEM;
            break;
        }
        if (self->limits.dedup_window_us) {
            uint64_t at = m->accepted_at_us;
            if (ie->known &&
                (at < ie->accepted_at || at - ie->accepted_at < self->limits.dedup_window_us)) {
                bool reused = !digest_unknown(m->digest) && !digest_unknown(ie->digest) &&
                              memcmp(m->digest, ie->digest, HUB_STORE_DIGEST_LEN) != 0;
                outcomes[i] = reused ? HUB_STORE_ID_REUSED : HUB_STORE_DUPLICATE;
                m->seq = ie->seq;
                continue;
            }
        }
        m->seq = 0;
        ent_t *se = NULL, *re = NULL;
        hub_store_held_t s_held = {0, 0}, r_held = {0, 0}, tot = held_now(total);
        if (!m->settled) {
            se = map_get(&held, key, held_key(key, 's', m->sender), true);
            re = se ? map_get(&held, key, held_key(key, 'r', m->receiver), true) : NULL;
            total = map_get(&held, "t", 1, true);
            if (!se || !re || !total) {
                rc = HUB_ENOMEM;
                break;
            }
            if (self->limits.max_queue_depth &&
                (uint64_t)((int64_t)re->queued + re->dq) >= self->limits.max_queue_depth) {
                outcomes[i] = HUB_STORE_QUEUE_FULL;
                continue;
            }
            s_held = held_now(se);
            r_held = held_now(re);
            tot = held_now(total);
            const hub_store_quota_t *q = &m->quota;
            if ((q->sender_msgs && s_held.msgs >= q->sender_msgs) ||
                (q->sender_bytes && s_held.bytes + m->envelope_len > q->sender_bytes)) {
                outcomes[i] = HUB_STORE_QUOTA_SENDER;
                continue;
            }
            if ((q->receiver_msgs && r_held.msgs >= q->receiver_msgs) ||
                (q->receiver_bytes && r_held.bytes + m->envelope_len > q->receiver_bytes)) {
                outcomes[i] = HUB_STORE_QUOTA_RECEIVER;
                continue;
            }
        }
        uint64_t used = tot.bytes + tot.msgs * HUB__PG_ROW;
        uint64_t need = used + (m->settled ? 0 : m->envelope_len + HUB__PG_ROW);
        if (need > self->limit_bytes) {
            outcomes[i] = HUB_STORE_FULL;
            continue;
        }
        if (!m->settled && need > self->reserve_bytes) {
            if (s_held.bytes > tot.bytes / 2) {
                outcomes[i] = HUB_STORE_QUOTA_SENDER;
                continue;
            }
            if (r_held.bytes > tot.bytes / 2) {
                outcomes[i] = HUB_STORE_QUOTA_RECEIVER;
                continue;
            }
        }
        uint64_t seq = m->preset_seq ? m->preset_seq : next;
        if (!m->settled) {
            se->dm++;
            se->db += (int64_t)m->envelope_len;
            re->dm++;
            re->db += (int64_t)m->envelope_len;
            re->dq++;
            total->dm++;
            total->db += (int64_t)m->envelope_len;
        }
        ie->known = true;
        ie->write = true;
        ie->seq = seq;
        ie->accepted_at = m->accepted_at_us;
        memcpy(ie->digest, m->digest, HUB_STORE_DIGEST_LEN);
        m->seq = seq;
        if (seq >= next)
            next = seq + 1;
        outcomes[i] = HUB_STORE_OK;
        stored = true;
    }
    if (floor > next)
        next = floor;
    if (rc == 0 && ids.oom)
        rc = HUB_ENOMEM;
    if (rc == 0 && (stored || next != first_next))
        rc = append_write(self, c, msgs, n, outcomes, &ids, &held, next);
    map_free(&ids);
    map_free(&held);
    return store_pg_conn__pg_write_end(self, c, own, rc);
}

/* ---- simple reads ------------------------------------------------------------- */

/* Runs one read statement, prepared in slot (store_pg_conn__pg_exec_prepared)
 * or, with PREP_NONE, as it is; *res on 0. */
static int read_prepared(store_pg__pg_t *self, unsigned slot, const char *sql,
                         const store_pg__params_t *p, PGresult **res)
{
    PGconn *c;
    bool locked;
    int rc = store_pg_conn__pg_read_begin(self, &c, &locked);
    if (rc != 0)
        return rc;
    rc = slot == PREP_NONE ? store_pg_conn__pg_exec(self, c, sql, p, res)
                           : store_pg_conn__pg_exec_prepared(self, c, slot, sql, p, res);
    store_pg_conn__pg_read_end(self, c, locked, rc);
    return rc;
}

/* Runs one read statement; *res on 0. */
int store_pg__read1(store_pg__pg_t *self, const char *sql, const store_pg__params_t *p,
                    PGresult **res)
{
    return read_prepared(self, PREP_NONE, sql, p, res);
}

/* Runs one write statement as a whole call; *res (may be NULL) on 0. */
int store_pg__write1(store_pg__pg_t *self, const char *sql, const store_pg__params_t *p,
                     PGresult **res)
{
    PGconn *c;
    bool own;
    int rc = store_pg_conn__pg_write_begin(self, &c, &own);
    if (rc != 0)
        return rc;
    PGresult *r = NULL;
    rc = store_pg_conn__pg_exec(self, c, sql, p, &r);
    rc = store_pg_conn__pg_write_end(self, c, own, rc);
    if (rc == 0 && res)
        *res = r;
    else
        PQclear(r);
    return rc;
}

static int pg_next_seq(hub_store_t *store, uint64_t *next)
{
    HUB__PG_SELF;
    PGresult *res;
    int rc = store_pg__read1(self, "SELECT next_seq FROM hub_meta WHERE id = 1", NULL, &res);
    if (rc == 0) {
        if (PQntuples(res) == 1)
            *next = store_pg_conn__pg_u64(res, 0, 0);
        else
            rc = HUB_ESTORE;
        PQclear(res);
    }
    return rc;
}

int store_pg__anchor_read(store_pg__pg_t *self, const char *sql, const store_pg__params_t *p,
                          uint64_t *seq, uint8_t hash[32])
{
    PGresult *res;
    int rc = store_pg__read1(self, sql, p, &res);
    if (rc == 0) {
        *seq = 0;
        memset(hash, 0, 32);
        if (PQntuples(res) == 1 && PQgetlength(res, 0, 1) == 32) {
            *seq = store_pg_conn__pg_u64(res, 0, 0);
            memcpy(hash, PQgetvalue(res, 0, 1), 32);
        }
        PQclear(res);
    }
    return rc;
}

static int pg_anchor_get(hub_store_t *store, uint64_t *seq, uint8_t hash[32])
{
    HUB__PG_SELF;
    return store_pg__anchor_read(self, "SELECT anchor_seq, anchor_hash FROM hub_meta WHERE id = 1",
                                 NULL, seq, hash);
}

static int pg_anchor_put(hub_store_t *store, uint64_t seq, const uint8_t hash[32])
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_i64(&p, seq);
    store_pg_conn__pg_p_bytes(&p, hash, 32);
    return store_pg__write1(
        self, "UPDATE hub_meta SET anchor_seq = $1, anchor_hash = $2 WHERE id = 1", &p, NULL);
}

/* Fills *out from columns 0..8 (HUB__PG_MSG_COLS) and the envelope in column env
 * (-1: none). */
int store_pg__fill_msg(const PGresult *res, int r, int env, hub_store_msg_t *out,
                       hub_store_arena_t *arena)
{
    memset(out, 0, sizeof *out);
    out->seq = store_pg_conn__pg_u64(res, r, 0);
    store_pg_conn__pg_str(res, r, 1, out->message_id, HUB_STORE_ID_MAX);
    store_pg_conn__pg_str(res, r, 2, out->sender, HUB_STORE_NAME_MAX);
    store_pg_conn__pg_str(res, r, 3, out->receiver, HUB_STORE_NAME_MAX);
    store_pg_conn__pg_str(res, r, 4, out->service, HUB_STORE_NAME_MAX);
    out->accepted_at_us = store_pg_conn__pg_u64(res, r, 5);
    out->expires_at_us = store_pg_conn__pg_u64(res, r, 6);
    out->attempts = store_pg_conn__pg_u32(res, r, 7);
    out->envelope_len = (size_t)store_pg_conn__pg_u64(res, r, 8);
    if (arena && env >= 0) {
        size_t len = (size_t)PQgetlength(res, r, env);
        uint8_t *b = store_queue__arena_alloc(arena, len);
        if (!b)
            return HUB_ENOMEM;
        if (len)
            memcpy(b, PQgetvalue(res, r, env), len);
        out->envelope = b;
        out->envelope_len = len;
    }
    return 0;
}

static int pg_read_queue(hub_store_t *store, const char *receiver, uint64_t after_seq, size_t max,
                         hub_store_msg_t *out, size_t *n_out, hub_store_arena_t *arena)
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_str(&p, receiver);
    store_pg_conn__pg_p_i64(&p, after_seq);
    store_pg_conn__pg_p_i64(&p, max);
    PGresult *res = NULL;
    int rc = read_prepared(self, PREP_READ_QUEUE,
                           "SELECT " HUB__PG_MSG_COLS
                           ", envelope FROM hub_msgs WHERE receiver = $1 AND NOT dead "
                           "AND seq > $2 ORDER BY seq LIMIT $3",
                           &p, &res);
    for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
        rc = store_pg__fill_msg(res, r, 9, &out[r], arena);
        if (rc == 0)
            (*n_out)++;
    }
    PQclear(res);
    return rc;
}

static int pg_expired(hub_store_t *store, uint64_t now_us, uint64_t *seqs, size_t max,
                      size_t *n_out)
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_i64(&p, now_us);
    store_pg_conn__pg_p_i64(&p, max);
    PGresult *res;
    int rc = store_pg__read1(self,
                             "SELECT seq FROM hub_msgs WHERE NOT dead AND expires_at_us > 0 AND "
                             "expires_at_us <= $1 ORDER BY expires_at_us, seq LIMIT $2",
                             &p, &res);
    if (rc == 0) {
        for (int r = 0; r < PQntuples(res); r++)
            seqs[(*n_out)++] = store_pg_conn__pg_u64(res, r, 0);
        PQclear(res);
    }
    return rc;
}

static int pg_queues(hub_store_t *store, hub_store_queue_cb cb, void *user)
{
    HUB__PG_SELF;
    PGresult *res;
    int rc = store_pg__read1(
        self,
        "SELECT h.member, h.queued, (SELECT m.accepted_at_us FROM hub_msgs m WHERE "
        "m.receiver = h.member AND NOT m.dead ORDER BY m.seq LIMIT 1) FROM hub_held h "
        "WHERE h.kind = 'r' AND h.queued > 0 ORDER BY h.member",
        NULL, &res);
    if (rc != 0)
        return rc;
    /* The callback runs after the read: it may read the store again. */
    store_pg_conn__pg_callback_enter(self);
    for (int r = 0; r < PQntuples(res); r++) {
        char name[HUB_STORE_NAME_MAX + 1];
        store_pg_conn__pg_str(res, r, 0, name, HUB_STORE_NAME_MAX);
        cb(name, store_pg_conn__pg_u64(res, r, 1), store_pg_conn__pg_u64(res, r, 2), user);
    }
    store_pg_conn__pg_callback_leave(self);
    PQclear(res);
    return 0;
}

/* ---- removing messages ---------------------------------------------------- */

static int pg_ack(hub_store_t *store, const char *receiver, const uint64_t *seqs, size_t n)
{
    HUB__PG_SELF;
    store_pg__arr_t a;
    store_pg_conn__pg_arr_seqs(&a, seqs, n);
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_str(&p, receiver);
    int rc = store_pg_conn__pg_p_arr(&p, &a);
    PGconn *c;
    bool own;
    if (rc == 0 && (rc = store_pg_conn__pg_write_begin(self, &c, &own)) == 0) {
        rc = store_pg_conn__pg_exec_prepared(
            self, c, PREP_ACK,
            "WITH d AS (DELETE FROM hub_msgs WHERE receiver = $1 AND NOT "
            "dead AND seq = ANY($2::int8[]) " HUB__PG_REMOVED_COLS ")" HUB__PG_REMOVE_TAIL,
            &p, NULL);
        rc = store_pg_conn__pg_write_end(self, c, own, rc);
    }
    store_pg_conn__pg_arr_free(&a);
    return rc;
}

static int pg_note_attempts(hub_store_t *store, const uint64_t *seqs, size_t n)
{
    HUB__PG_SELF;
    store_pg__arr_t a;
    store_pg_conn__pg_arr_seqs(&a, seqs, n);
    store_pg__params_t p = {0};
    int rc = store_pg_conn__pg_p_arr(&p, &a);
    if (rc == 0)
        rc = store_pg__write1(self,
                              "UPDATE hub_msgs SET attempts = attempts + 1 WHERE NOT dead AND "
                              "seq = ANY($1::int8[])",
                              &p, NULL);
    store_pg_conn__pg_arr_free(&a);
    return rc;
}

/* ---- ids ------------------------------------------------------------------ */

static int pg_lookup(hub_store_t *store, const char *sender, const char *message_id, uint64_t *seq,
                     hub_store_state_t *state)
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_str(&p, sender);
    store_pg_conn__pg_p_str(&p, message_id);
    PGresult *res;
    int rc = read_prepared(self, PREP_LOOKUP,
                           "SELECT i.seq, m.dead FROM hub_ids i LEFT JOIN hub_msgs m ON "
                           "m.seq = i.seq WHERE i.sender = $1 AND i.message_id = $2",
                           &p, &res);
    if (rc != 0)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return HUB_ENOTFOUND;
    }
    if (seq)
        *seq = store_pg_conn__pg_u64(res, 0, 0);
    if (state)
        *state = PQgetisnull(res, 0, 1)              ? HUB_STORE_STATE_DONE
                 : store_pg_conn__pg_bool(res, 0, 1) ? HUB_STORE_STATE_DEAD
                                                     : HUB_STORE_STATE_QUEUED;
    PQclear(res);
    return 0;
}

static int pg_prune_dedup(hub_store_t *store, uint64_t now_us, size_t *pruned)
{
    HUB__PG_SELF;
    if (now_us < self->limits.dedup_window_us)
        return 0;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_i64(&p, now_us - self->limits.dedup_window_us);
    store_pg_conn__pg_p_i64(&p, HUB_STORE_PRUNE_BATCH);
    PGresult *res;
    int rc = store_pg__write1(
        self,
        "WITH c AS (SELECT sender, message_id, seq FROM hub_ids WHERE NOT pinned AND "
        "accepted_at_us <= $1 ORDER BY accepted_at_us LIMIT $2), "
        "p AS (UPDATE hub_ids i SET pinned = true FROM c WHERE i.sender = c.sender "
        "AND i.message_id = c.message_id AND EXISTS (SELECT 1 FROM hub_msgs m WHERE "
        "m.seq = c.seq)), "
        "x AS (DELETE FROM hub_ids i USING c WHERE i.sender = c.sender AND "
        "i.message_id = c.message_id AND NOT EXISTS (SELECT 1 FROM hub_msgs m WHERE "
        "m.seq = c.seq)) SELECT count(*) FROM c",
        &p, &res);
    if (rc == 0) {
        if (pruned)
            *pruned = (size_t)store_pg_conn__pg_u64(res, 0, 0);
        PQclear(res);
    }
    return rc;
}

/* ---- room and what members hold ------------------------------------------- */

static int pg_usage(hub_store_t *store, uint64_t *used_bytes, uint64_t *max_bytes,
                    uint64_t *dead_count)
{
    HUB__PG_SELF;
    PGresult *res;
    int rc = store_pg__read1(
        self,
        "SELECT msgs, bytes, (SELECT count(*) FROM hub_msgs WHERE dead) FROM hub_held "
        "WHERE kind = 't'",
        NULL, &res);
    if (rc != 0)
        return rc;
    uint64_t msgs = 0, bytes = 0, dead = 0;
    if (PQntuples(res) == 1) {
        msgs = store_pg_conn__pg_u64(res, 0, 0);
        bytes = store_pg_conn__pg_u64(res, 0, 1);
        dead = store_pg_conn__pg_u64(res, 0, 2);
    }
    PQclear(res);
    if (used_bytes)
        *used_bytes = bytes + msgs * HUB__PG_ROW;
    if (max_bytes)
        *max_bytes = self->max_bytes;
    if (dead_count)
        *dead_count = dead;
    return 0;
}

static int pg_held(hub_store_t *store, const char *member, hub_store_held_t *as_sender,
                   hub_store_held_t *as_receiver)
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_str(&p, member);
    PGresult *res;
    int rc = store_pg__read1(self,
                             "SELECT kind, msgs, bytes FROM hub_held WHERE member = $1 AND kind IN "
                             "('s', 'r')",
                             &p, &res);
    if (rc != 0)
        return rc;
    hub_store_held_t s = {0, 0}, r = {0, 0};
    for (int i = 0; i < PQntuples(res); i++) {
        hub_store_held_t *h = PQgetvalue(res, i, 0)[0] == 's' ? &s : &r;
        h->msgs = store_pg_conn__pg_u64(res, i, 1);
        h->bytes = store_pg_conn__pg_u64(res, i, 2);
    }
    PQclear(res);
    if (as_sender)
        *as_sender = s;
    if (as_receiver)
        *as_receiver = r;
    return 0;
}

static int pg_held_total(hub_store_t *store, hub_store_held_t *total)
{
    HUB__PG_SELF;
    PGresult *res;
    int rc = store_pg__read1(self, "SELECT msgs, bytes FROM hub_held WHERE kind = 't'", NULL, &res);
    if (rc != 0)
        return rc;
    total->msgs = PQntuples(res) == 1 ? store_pg_conn__pg_u64(res, 0, 0) : 0;
    total->bytes = PQntuples(res) == 1 ? store_pg_conn__pg_u64(res, 0, 1) : 0;
    PQclear(res);
    return 0;
}

const store_backend__ops_t store_pg__ops = {
    .name = "postgresql",
    .close = store_pg_conn__pg_close,
    .upgraded_from = store_pg_conn__pg_upgraded_from,
    .opened_format = store_pg_conn__pg_opened_format,
    .batch_begin = store_pg_conn__pg_batch_begin,
    .batch_commit = store_pg_conn__pg_batch_commit,
    .batch_abort = store_pg_conn__pg_batch_abort,
    .append = pg_append,
    .next_seq = pg_next_seq,
    .audit_anchor_get = pg_anchor_get,
    .audit_anchor_put = pg_anchor_put,
    .read_queue = pg_read_queue,
    .ack = pg_ack,
    .note_attempts = pg_note_attempts,
    .expired = pg_expired,
    .queues = pg_queues,
    .dead_letter = store_pg_dlq__pg_dead_letter,
    .dlq_list = store_pg_dlq__list,
    .dlq_get = store_pg_dlq__get,
    .dlq_replay = store_pg_dlq__replay,
    .dlq_purge = store_pg_dlq__purge,
    .dlq_purge_older = store_pg_dlq__purge_older,
    .lookup = pg_lookup,
    .prune_dedup = pg_prune_dedup,
    .usage = pg_usage,
    .held = pg_held,
    .held_total = pg_held_total,
    .requests_put = store_pg_dlq__pg_requests_put,
    .requests_del = store_pg_dlq__pg_requests_del,
    .requests_load = store_pg_dlq__pg_requests_load,
};
