/* hub_store_queue.c — per-receiver queues: append gives each accepted
 * message its seq (judging duplicates, depth, quotas and room first),
 * receivers read in seq order, acks remove, attempts count, expiry lists
 * what has outlived its TTL. */
#include "hub_store_internal.h"

#include "hub_error.h"
#include "hub_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- records --------------------------------------------------------------- */

void store_queue__rec_keys(const store_codec__rec_view_t *v, store__rec_keys_t *k)
{
    store__copy_bytes_str(k->id, v->id, v->id_len);
    store__copy_bytes_str(k->sender, v->sender, v->sender_len);
    store__copy_bytes_str(k->receiver, v->receiver, v->receiver_len);
    k->expires_at = v->expires_at;
    k->envelope_len = v->envelope_len;
}

/* ---- arena ----------------------------------------------------------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t cap, used;
    unsigned char data[];
} arena_block_t;

struct hub_store_arena {
    arena_block_t *head; /* the block being filled; older ones follow */
};

#define ARENA_MIN_BLOCK (64u * 1024u)
#define ARENA_MAX_GROW (4u * 1024u * 1024u)

int hub_store_arena_new(hub_store_arena_t **out)
{
    if (!out)
        return HUB_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : HUB_ENOMEM;
}

void hub_store_arena_reset(hub_store_arena_t *self)
{
    if (!self || !self->head)
        return;
    arena_block_t *b = self->head->next;
    while (b) {
        arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    self->head->next = NULL;
    self->head->used = 0;
}

void hub_store_arena_destroy(hub_store_arena_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_store_arena_reset(*self_p);
    free((*self_p)->head);
    free(*self_p);
    *self_p = NULL;
}

void *store_queue__arena_alloc(hub_store_arena_t *a, size_t n)
{
    if (n == 0)
        n = 1; /* never hand out NULL for an empty envelope */
    arena_block_t *h = a->head;
    if (!h || h->cap - h->used < n) {
        size_t cap = h ? h->cap * 2 : ARENA_MIN_BLOCK;
        if (cap > ARENA_MAX_GROW)
            cap = ARENA_MAX_GROW;
        if (cap < n)
            cap = n;
        if (cap > SIZE_MAX - sizeof(arena_block_t))
            return NULL;
        arena_block_t *b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = h;
        a->head = h = b;
    }
    void *p = h->data + h->used;
    h->used += n;
    return p;
}

/* ---- indexes: queue order, expiry, depth ------------------------------------ */

/* Changes a receiver's depth by +1 or -1, deleting the entry at zero. */
static int depth_add(hub_store_t *self, MDB_txn *txn, const char *receiver, int delta)
{
    MDB_val k = store__str_val(receiver);
    uint64_t depth;
    bool found;
    int rc = store_batch__get_u64(txn, self->depth, &k, &depth, &found);
    if (rc != 0)
        return rc;
    if (delta > 0)
        return store_batch__put_u64(txn, self->depth, &k, depth + 1);
    if (depth <= 1)
        return found ? store_batch__del_key(txn, self->depth, &k) : 0;
    return store_batch__put_u64(txn, self->depth, &k, depth - 1);
}

/* Adds the index entries of a queued message whose record is in msgs. */
int store_queue__index(hub_store_t *self, MDB_txn *txn, uint64_t seq, const char *receiver,
                       uint64_t expires_at)
{
    uint8_t qb[HUB__QKEY_MAX], eb[HUB__PAIR_KEY];
    MDB_val empty = {0, NULL};
    MDB_val qk = store__queue_key(qb, receiver, seq);
    int rc = mdb_put(txn, self->queue, &qk, &empty, 0);
    if (rc == 0 && expires_at != 0) {
        MDB_val ek = store__pair_val(eb, expires_at, seq);
        rc = mdb_put(txn, self->expiry, &ek, &empty, 0);
    }
    if (rc != 0)
        return store_batch__map_rc(rc);
    return depth_add(self, txn, receiver, +1);
}

/* Takes a queued message out of its queue: indexes, attempts and depth (the
 * record stays). */
int store_queue__unindex(hub_store_t *self, MDB_txn *txn, uint64_t seq, const store__rec_keys_t *k)
{
    uint8_t sb[HUB__SEQ_KEY], qb[HUB__QKEY_MAX], eb[HUB__PAIR_KEY];
    MDB_val sk = store__seq_val(sb, seq), qk = store__queue_key(qb, k->receiver, seq);
    int rc = store_batch__del_key(txn, self->attempts, &sk);
    if (rc == 0)
        rc = store_batch__del_key(txn, self->queue, &qk);
    if (rc == 0 && k->expires_at != 0) {
        MDB_val ek = store__pair_val(eb, k->expires_at, seq);
        rc = store_batch__del_key(txn, self->expiry, &ek);
    }
    if (rc == 0)
        rc = depth_add(self, txn, k->receiver, -1);
    return rc;
}

/* Removes a queued message: its record too. */
static int remove_queued(hub_store_t *self, MDB_txn *txn, uint64_t seq, const store__rec_keys_t *k)
{
    uint8_t sb[HUB__SEQ_KEY];
    MDB_val sk = store__seq_val(sb, seq);
    int rc = store_batch__del_key(txn, self->msgs, &sk);
    return rc == 0 ? store_queue__unindex(self, txn, seq, k) : rc;
}

/* Is seq queued (stored and not dead-lettered)? Does not read the record. */
static int is_queued(hub_store_t *self, MDB_txn *txn, MDB_val *sk, bool *queued)
{
    bool stored, dead = false;
    int rc = store_batch__has_key(txn, self->msgs, sk, &stored);
    if (rc == 0 && stored)
        rc = store_batch__has_key(txn, self->dead, sk, &dead);
    *queued = rc == 0 && stored && !dead;
    return rc;
}

/* Reads a queued message's record and keeps its keys. */
int store_queue__load(hub_store_t *self, MDB_txn *txn, uint64_t seq, store__rec_keys_t *k,
                      bool *found)
{
    uint8_t sb[HUB__SEQ_KEY];
    MDB_val sk = store__seq_val(sb, seq), v;
    bool stored;
    *found = false;
    int rc = store_batch__get(txn, self->msgs, &sk, &v, &stored);
    if (rc != 0 || !stored)
        return rc;
    store_codec__rec_view_t view;
    if (store_codec__rec_decode(v.mv_data, v.mv_size, &view) != 0)
        return HUB_ESTORE;
    store_queue__rec_keys(&view, k);
    bool dead;
    rc = store_batch__has_key(txn, self->dead, &sk, &dead);
    *found = rc == 0 && !dead;
    return rc;
}

/* ---- append ---------------------------------------------------------------- */

/* The store's size is measured (store_batch__used_pages) once per this many
 * appends of a call, and bounded in between: one append adds at most its
 * record's pages (store_batch__item_pages) and HUB__APPEND_PAGES_MAX more,
 * a page per level and a new root in each of the B-trees it writes (seven,
 * at most eight levels each even with 255-byte member names). */
#define HUB__USED_MEASURE_EVERY 64
#define HUB__APPEND_PAGES_MAX 128

/* Stores one accepted message under seq: its record and indexes (unless
 * settled), and its de-duplication record. */
static int append_one(hub_store_t *self, MDB_txn *txn, MDB_cursor *ids, hub_store_msg_t *m,
                      uint64_t seq)
{
    uint8_t sb[HUB__SEQ_KEY];
    MDB_val sk = store__seq_val(sb, seq);
    MDB_val rv = {store_codec__rec_size(m), NULL};
    if (m->settled) /* handled already: nothing to queue, only its id to keep */
        return store_dedup__put(self, txn, ids, m, seq);
    /* Seqs almost always grow: MDB_APPEND fills pages instead of splitting
     * them in half, which halves the pages an append writes. A preset seq
     * below the last one (a replay got a later seq meanwhile) is put the
     * ordinary way. */
    int rc = mdb_put(txn, self->msgs, &sk, &rv, MDB_APPEND | MDB_RESERVE);
    if (rc == MDB_KEYEXIST)
        rc = mdb_put(txn, self->msgs, &sk, &rv, MDB_NOOVERWRITE | MDB_RESERVE);
    if (rc == MDB_KEYEXIST)
        return HUB_ESTORE; /* the counter is behind the data */
    if (rc != 0)
        return store_batch__map_rc(rc);
    store_codec__rec_encode(rv.mv_data, m);
    rc = store_queue__index(self, txn, seq, m->receiver, m->expires_at_us);
    return rc == 0 ? store_dedup__put(self, txn, ids, m, seq) : rc;
}

int store_queue__lmdb_append(hub_store_t *self, hub_store_msg_t *msgs, size_t n,
                             hub_store_outcome_t *outcomes)
{
    MDB_txn *txn;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    uint64_t next = 0, used = 0;
    MDB_cursor *ids = NULL; /* the de-duplication index, checked then written per id */
    rc = store_batch__map_rc(mdb_cursor_open(txn, self->ids, &ids));
    if (rc == 0)
        rc = store_batch__next_seq_get(self, txn, &next);
    if (rc == 0)
        rc = store_batch__used_pages(self, txn, &used);
    /* used is measured (twelve mdb_stat calls) every
     * HUB__USED_MEASURE_EVERY appends; in between it is bounded above by
     * the last measure plus HUB__APPEND_PAGES_MAX per append since. Where
     * that bound stays below the limits, the exact figure would pass them
     * too; anywhere near them it is measured again before any decision. */
    uint64_t used_bound = used, since_measure = 0;
    bool stored = false;
    uint64_t floor = next; /* past every preset seq of this call, stored or not */
    store__held_acc_t acc = {0};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        hub_store_msg_t *m = &msgs[i];
        if (m->preset_seq >= floor)
            floor = m->preset_seq + 1;
        uint8_t ib[HUB__IDKEY_MAX];
        MDB_val ik = store__ids_key(ib, m->sender, m->message_id);
        bool dup, reused;
        uint64_t orig = 0;
        rc = store_dedup__check(self, ids, &ik, m->accepted_at_us, m->digest, &dup, &reused, &orig);
        if (rc != 0)
            break;
        if (dup) {
            outcomes[i] = reused ? HUB_STORE_ID_REUSED : HUB_STORE_DUPLICATE;
            m->seq = orig;
            continue;
        }
        m->seq = 0;
        if (self->limits.max_queue_depth && !m->settled) {
            MDB_val dk = store__str_val(m->receiver);
            uint64_t depth;
            bool found;
            rc = store_batch__get_u64(txn, self->depth, &dk, &depth, &found);
            if (rc != 0)
                break;
            if (depth >= self->limits.max_queue_depth) {
                outcomes[i] = HUB_STORE_QUEUE_FULL;
                continue;
            }
        }
        /* What the sender and receiver hold, this call's earlier items
         * included: read once per member and call, then kept in acc. */
        store__held_trio_t held = {0};
        hub_store_held_t s_held = {0, 0}, r_held = {0, 0}, total = {0, 0};
        if (!m->settled) {
            rc = store_held__acc_trio(&acc, m->sender, m->receiver, &held);
            if (rc == 0)
                rc = store_held__entry_load(self, txn, held.sender);
            if (rc == 0)
                rc = store_held__entry_load(self, txn, held.receiver);
            if (rc == 0)
                rc = store_held__entry_load(self, txn, held.total);
            if (rc != 0)
                break;
            s_held = store_held__entry_now(held.sender);
            r_held = store_held__entry_now(held.receiver);
            total = store_held__entry_now(held.total);
            hub_store_outcome_t quota = store_held__quota_check(m, &s_held, &r_held);
            if (quota != HUB_STORE_OK) {
                outcomes[i] = quota;
                continue;
            }
        }
        uint64_t item_pages = store_batch__item_pages(self, store_codec__rec_size(m));
        uint64_t guard = m->settled ? self->limit_pages : self->reserve_pages;
        if (guard > self->limit_pages)
            guard = self->limit_pages;
        if (used_bound + item_pages > guard && used_bound != used) {
            rc = store_batch__used_pages(self, txn, &used);
            if (rc != 0)
                break;
            used_bound = used;
            since_measure = 0;
        }
        uint64_t need = used_bound + item_pages;
        if (need > self->limit_pages) {
            outcomes[i] = HUB_STORE_FULL;
            continue;
        }
        if (!m->settled && need > self->reserve_pages) {
            hub_store_outcome_t reserve = store_held__reserve_check(&s_held, &r_held, &total);
            if (reserve != HUB_STORE_OK) {
                outcomes[i] = reserve;
                continue;
            }
        }
        uint64_t seq = m->preset_seq ? m->preset_seq : next;
        rc = append_one(self, txn, ids, m, seq);
        if (rc == 0 && ++since_measure >= HUB__USED_MEASURE_EVERY) {
            rc = store_batch__used_pages(self, txn, &used);
            used_bound = used;
            since_measure = 0;
        } else if (rc == 0) {
            used_bound += HUB__APPEND_PAGES_MAX + item_pages;
        }
        if (rc != 0)
            break;
        if (!m->settled)
            store_held__trio_add(&held, +1, (uint32_t)m->envelope_len);
        m->seq = seq;
        if (seq >= next)
            next = seq + 1;
        outcomes[i] = HUB_STORE_OK;
        stored = true;
    }
    /* A preset seq is used up even when its message was not stored (a
     * duplicate, a full queue): the caller may have shown it to a receiver. */
    bool advanced = floor > next;
    if (advanced)
        next = floor;
    if (rc == 0 && (stored || advanced))
        rc = store_batch__next_seq_put(self, txn, next);
    rc = store_held__acc_flush(self, txn, &acc, rc);
    if (ids)
        mdb_cursor_close(ids);
    return store_batch__txn_finish(self, txn, rc);
}

/* ---- reads ------------------------------------------------------------- */

int store_queue__lmdb_next_seq(hub_store_t *self, uint64_t *next)
{
    MDB_txn *txn;
    int rc = store_batch__txn_read(self, &txn);
    if (rc != 0)
        return rc;
    rc = store_batch__next_seq_get(self, txn, next);
    store_batch__txn_read_end(self, txn);
    return rc;
}

/* Fills *out from a record; envelope into arena when arena is not NULL. */
int store_queue__fill_msg(const store_codec__rec_view_t *v, uint64_t seq, uint32_t attempts,
                          hub_store_msg_t *out, hub_store_arena_t *arena)
{
    memset(out, 0, sizeof *out);
    out->seq = seq;
    store__copy_bytes_str(out->message_id, v->id, v->id_len);
    store__copy_bytes_str(out->sender, v->sender, v->sender_len);
    store__copy_bytes_str(out->receiver, v->receiver, v->receiver_len);
    store__copy_bytes_str(out->service, v->service, v->service_len);
    out->accepted_at_us = v->accepted_at;
    out->expires_at_us = v->expires_at;
    out->attempts = attempts;
    out->envelope_len = v->envelope_len;
    if (arena) {
        uint8_t *p = store_queue__arena_alloc(arena, v->envelope_len);
        if (!p)
            return HUB_ENOMEM;
        if (v->envelope_len)
            memcpy(p, v->envelope, v->envelope_len);
        out->envelope = p;
    }
    return 0;
}

int store_queue__attempts(hub_store_t *self, MDB_txn *txn, MDB_val *sk, uint32_t *out)
{
    MDB_val v;
    bool found;
    *out = 0;
    int rc = store_batch__get(txn, self->attempts, sk, &v, &found);
    if (rc != 0 || !found)
        return rc;
    if (v.mv_size != 4)
        return HUB_ESTORE;
    *out = hub_get_le32(v.mv_data);
    return 0;
}

typedef struct {
    const uint8_t *prefix; /* the receiver's queue keys: its name and a 0 byte */
    size_t prefix_len;
    hub_store_msg_t *out;
    hub_store_arena_t *arena;
} queue_read_t;

static int read_queue_visit(hub_store_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
                            size_t i, void *ctx)
{
    (void)v;
    queue_read_t *q = ctx;
    if (k->mv_size != q->prefix_len + HUB__SEQ_KEY || memcmp(k->mv_data, q->prefix, q->prefix_len))
        return 0; /* past this receiver */
    uint64_t seq = hub_get_be64((const uint8_t *)k->mv_data + q->prefix_len);
    uint8_t sb[HUB__SEQ_KEY];
    MDB_val sk = store__seq_val(sb, seq), rv;
    store_codec__rec_view_t view;
    uint32_t attempts;
    int rc, grc = mdb_get(txn, self->msgs, &sk, &rv);
    if (grc != 0) {
        rc = grc == MDB_NOTFOUND ? HUB_ESTORE
                                 : store_batch__map_rc(grc); /* index without record */
    } else {
        rc = store_codec__rec_decode(rv.mv_data, rv.mv_size, &view);
        if (rc == 0)
            rc = store_queue__attempts(self, txn, &sk, &attempts);
        if (rc == 0)
            rc = store_queue__fill_msg(&view, seq, attempts, &q->out[i], q->arena);
    }
    if (rc == HUB_ESTORE) {
        memset(&q->out[i], 0, sizeof q->out[i]);
        q->out[i].seq = seq; /* name the damaged message */
    }
    return rc == 0 ? 1 : rc;
}

int store_queue__lmdb_read_queue(hub_store_t *self, const char *receiver, uint64_t after_seq,
                                 size_t max, hub_store_msg_t *out, size_t *n_out,
                                 hub_store_arena_t *arena)
{
    uint8_t qb[HUB__QKEY_MAX];
    MDB_val from = store__queue_key(qb, receiver, after_seq + 1);
    queue_read_t q = {qb, strlen(receiver) + 1, out, arena};
    return store_batch__scan(self, self->queue, &from, max, read_queue_visit, &q, n_out);
}

/* ---- acks and attempts ---------------------------------------------------- */

/* Removes a queued message whose record does not decode: what can be found
 * without it goes (the expiry entry by a scan, as this is rare). */
static int remove_damaged(hub_store_t *self, MDB_txn *txn, uint64_t seq, const char *receiver)
{
    uint8_t sb[HUB__SEQ_KEY], qb[HUB__QKEY_MAX];
    MDB_val sk = store__seq_val(sb, seq), qk = store__queue_key(qb, receiver, seq);
    bool dead;
    int rc = store_batch__has_key(txn, self->dead, &sk, &dead);
    if (rc == 0 && !dead) /* a dead letter's record is the DLQ's to remove */
        rc = store_batch__del_key(txn, self->msgs, &sk);
    if (rc == 0)
        rc = store_batch__del_key(txn, self->attempts, &sk);
    if (rc == 0)
        rc = store_batch__del_key(txn, self->queue, &qk);
    if (rc == 0)
        rc = depth_add(self, txn, receiver, -1);
    MDB_cursor *c;
    if (rc == 0)
        rc = store_batch__map_rc(mdb_cursor_open(txn, self->expiry, &c));
    if (rc != 0)
        return rc;
    MDB_val k, v;
    uint8_t found[HUB__PAIR_KEY];
    bool hit = false;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        if (k.mv_size == HUB__PAIR_KEY && hub_get_be64((const uint8_t *)k.mv_data + 8) == seq) {
            memcpy(found, k.mv_data, HUB__PAIR_KEY);
            hit = true;
            break;
        }
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return store_batch__map_rc(mrc);
    if (hit) {
        MDB_val ek = {HUB__PAIR_KEY, found};
        rc = store_batch__del_key(txn, self->expiry, &ek);
    }
    return rc;
}

static int ack_txn(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n,
                   bool *unused)
{
    (void)unused;
    MDB_txn *txn;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    store__held_acc_t acc = {0};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* The queue index says whose message a seq is, even when its record
         * is damaged; a receiver can only remove its own. */
        uint8_t qb[HUB__QKEY_MAX];
        MDB_val qk = store__queue_key(qb, receiver, seqs[i]);
        bool mine;
        rc = store_batch__has_key(txn, self->queue, &qk, &mine);
        if (rc != 0 || !mine)
            continue;
        store__rec_keys_t k;
        bool found;
        rc = store_queue__load(self, txn, seqs[i], &k, &found);
        if (rc == HUB_ESTORE || (rc == 0 && !found)) {
            rc = remove_damaged(self, txn, seqs[i], receiver);
            acc.recount = true; /* whose it was, and its size, are unknown */
            continue;
        }
        if (rc == 0)
            rc = remove_queued(self, txn, seqs[i], &k);
        if (rc == 0)
            rc = store_dedup__release(self, txn, &k, seqs[i]);
        if (rc == 0)
            rc = store_held__acc_count(&acc, k.sender, k.receiver, k.envelope_len, -1);
    }
    rc = store_held__acc_flush(self, txn, &acc, rc);
    return store_batch__txn_finish(self, txn, rc);
}

int store_queue__lmdb_ack(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n)
{
    return store_batch__split_on_full(ack_txn, self, receiver, seqs, n, NULL);
}

int store_queue__lmdb_note_attempts(hub_store_t *self, const uint64_t *seqs, size_t n)
{
    MDB_txn *txn;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t sb[HUB__SEQ_KEY], ab[4];
        MDB_val sk = store__seq_val(sb, seqs[i]);
        bool queued;
        uint32_t attempts;
        rc = is_queued(self, txn, &sk, &queued);
        if (rc != 0 || !queued)
            continue;
        rc = store_queue__attempts(self, txn, &sk, &attempts);
        if (rc != 0)
            break;
        hub_put_le32(ab, attempts == UINT32_MAX ? attempts : attempts + 1);
        MDB_val av = {4, ab};
        rc = store_batch__map_rc(mdb_put(txn, self->attempts, &sk, &av, 0));
    }
    return store_batch__txn_finish(self, txn, rc);
}

/* ---- expiry and the list of queues --------------------------------------- */

typedef struct {
    uint64_t now_us;
    uint64_t *seqs;
} expired_read_t;

/* Expiry keys are (expires_at, seq), in time order. */
static int expired_visit(hub_store_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
                         size_t i, void *ctx)
{
    (void)self;
    (void)txn;
    (void)v;
    expired_read_t *e = ctx;
    if (k->mv_size != HUB__PAIR_KEY)
        return HUB_ESTORE;
    if (hub_get_be64(k->mv_data) > e->now_us)
        return 0;
    e->seqs[i] = hub_get_be64((const uint8_t *)k->mv_data + 8);
    return 1;
}

int store_queue__lmdb_expired(hub_store_t *self, uint64_t now_us, uint64_t *seqs, size_t max,
                              size_t *n_out)
{
    expired_read_t e = {now_us, seqs};
    size_t n;
    int rc = store_batch__scan(self, self->expiry, NULL, max, expired_visit, &e, &n);
    if (rc == 0)
        *n_out = n;
    return rc;
}

int store_queue__lmdb_queues(hub_store_t *self, hub_store_queue_cb cb, void *user)
{
    MDB_txn *txn;
    int rc = store_batch__txn_read(self, &txn);
    if (rc != 0)
        return rc;
    MDB_cursor *dc = NULL, *qc = NULL;
    rc = store_batch__map_rc(mdb_cursor_open(txn, self->depth, &dc));
    if (rc == 0)
        rc = store_batch__map_rc(mdb_cursor_open(txn, self->queue, &qc));
    MDB_val k, v;
    int mrc = rc == 0 ? mdb_cursor_get(dc, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        if (k.mv_size == 0 || k.mv_size > HUB_STORE_NAME_MAX || v.mv_size != 8 ||
            !store_codec__no_nul(k.mv_data, k.mv_size)) {
            rc = HUB_ESTORE;
            break;
        }
        char receiver[HUB_STORE_NAME_MAX + 1];
        store__copy_bytes_str(receiver, k.mv_data, k.mv_size);
        uint64_t depth = hub_get_le64(v.mv_data), oldest = 0;
        /* The first queue entry of this receiver is its oldest message. */
        uint8_t qb[HUB__QKEY_MAX];
        MDB_val qk = store__queue_key(qb, receiver, 0), qv;
        int qrc = mdb_cursor_get(qc, &qk, &qv, MDB_SET_RANGE);
        if (qrc == 0 && qk.mv_size == k.mv_size + 1 + HUB__SEQ_KEY &&
            !memcmp(qk.mv_data, qb, k.mv_size + 1)) {
            uint8_t sb[HUB__SEQ_KEY];
            MDB_val sk = store__seq_val(sb,
                                        hub_get_be64((const uint8_t *)qk.mv_data + k.mv_size + 1)),
                    rv;
            store_codec__rec_view_t view;
            if (mdb_get(txn, self->msgs, &sk, &rv) == 0 &&
                store_codec__rec_decode(rv.mv_data, rv.mv_size, &view) == 0)
                oldest = view.accepted_at;
        } else if (qrc != 0 && qrc != MDB_NOTFOUND) {
            rc = store_batch__map_rc(qrc);
            break;
        }
        cb(receiver, depth, oldest, user);
        mrc = mdb_cursor_get(dc, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = store_batch__map_rc(mrc);
    if (qc)
        mdb_cursor_close(qc);
    if (dc)
        mdb_cursor_close(dc);
    store_batch__txn_read_end(self, txn);
    return rc;
}
