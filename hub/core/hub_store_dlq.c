/* hub_store_dlq.c — the dead-letter queue: queued messages move into it
 * with a reason (their record stays where it is), operators list and read
 * them, replay one into its receiver's queue under a new seq, or purge. */
#include "hub_store_internal.h"

#include "hub_error.h"
#include "hub_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PURGE_CHUNK 4096u /* dead letters purged per transaction at most */

/* ---- moving messages in ------------------------------------------------------ */

/* moved (NULL or n flags): set for each seq moved, once the transaction
 * has committed. */
static int dead_letter_txn(hub_store_t *self, const char *reason, const uint64_t *seqs, size_t n,
                           bool *moved)
{
    size_t rlen = store_codec__reason_len(reason);
    uint64_t now = hub_now_us();
    MDB_txn *txn;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        store__rec_keys_t k;
        bool queued;
        uint32_t attempts;
        uint8_t sb[HUB__SEQ_KEY];
        MDB_val sk = store__seq_val(sb, seqs[i]);
        rc = store_queue__load(self, txn, seqs[i], &k, &queued);
        if (rc != 0 || !queued)
            continue;
        rc = store_queue__attempts(self, txn, &sk, &attempts);
        if (rc == 0)
            rc = store_queue__unindex(self, txn, seqs[i], &k);
        if (rc != 0)
            break;
        MDB_val dv = {HUB__DEAD_HDR + rlen, NULL};
        rc = store_batch__map_rc(mdb_put(txn, self->dead, &sk, &dv, MDB_RESERVE));
        if (rc != 0)
            break;
        store_codec__dead_encode(dv.mv_data, attempts, now, reason, rlen);
        if (moved)
            moved[i] = true;
    }
    rc = store_batch__txn_finish(self, txn, rc);
    if (rc != 0 && moved)
        memset(moved, 0, n * sizeof *moved);
    return rc;
}

int store_dlq__lmdb_dead_letter(hub_store_t *self, const uint64_t *seqs, size_t n,
                                const char *reason, bool *moved)
{
    return store_batch__split_on_full(dead_letter_txn, self, reason, seqs, n, moved);
}

/* ---- reading, replaying and purging ---------------------------------------- */

/* Fills *out from a dead header and the message record it stands for. */
static int fill_dead(hub_store_t *self, MDB_txn *txn, const MDB_val *v, uint64_t seq,
                     hub_store_dead_t *out, hub_store_arena_t *arena)
{
    uint8_t sb[HUB__SEQ_KEY];
    MDB_val sk = store__seq_val(sb, seq), rv;
    store_codec__dead_view_t dv;
    store_codec__rec_view_t view;
    int rc = store_codec__dead_decode(v->mv_data, v->mv_size, &dv);
    if (rc == 0) {
        int grc = mdb_get(txn, self->msgs, &sk, &rv);
        rc = grc == MDB_NOTFOUND ? HUB_ESTORE
                                 : store_batch__map_rc(grc); /* a header without a record */
    }
    if (rc == 0)
        rc = store_codec__rec_decode(rv.mv_data, rv.mv_size, &view);
    if (rc == 0)
        rc = store_queue__fill_msg(&view, seq, dv.attempts, &out->msg, arena);
    if (rc != 0)
        return rc;
    store__copy_bytes_str(out->reason, dv.reason, dv.reason_len);
    out->dead_at_us = dv.dead_at;
    return 0;
}

typedef struct {
    hub_store_dead_t *out;
    hub_store_arena_t *arena;
} dlq_read_t;

static int dlq_list_visit(hub_store_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
                          size_t i, void *ctx)
{
    dlq_read_t *d = ctx;
    if (k->mv_size != HUB__SEQ_KEY)
        return HUB_ESTORE;
    uint64_t seq = hub_get_be64(k->mv_data);
    int rc = fill_dead(self, txn, v, seq, &d->out[i], d->arena);
    if (rc == HUB_ESTORE) {
        memset(&d->out[i], 0, sizeof d->out[i]);
        d->out[i].msg.seq = seq; /* name the damaged dead letter */
    }
    return rc == 0 ? 1 : rc;
}

int store_dlq__lmdb_dlq_list(hub_store_t *self, uint64_t after_seq, size_t max,
                             hub_store_dead_t *out, size_t *n_out, hub_store_arena_t *arena)
{
    uint8_t sb[HUB__SEQ_KEY];
    MDB_val from = store__seq_val(sb, after_seq + 1);
    dlq_read_t d = {out, arena};
    return store_batch__scan(self, self->dead, &from, max, dlq_list_visit, &d, n_out);
}

int store_dlq__lmdb_dlq_get(hub_store_t *self, uint64_t seq, hub_store_dead_t *out,
                            hub_store_arena_t *arena)
{
    MDB_txn *txn;
    int rc = store_batch__txn_read(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t sb[HUB__SEQ_KEY];
    MDB_val k = store__seq_val(sb, seq), v;
    rc = store_batch__map_rc(mdb_get(txn, self->dead, &k, &v));
    if (rc == 0)
        rc = fill_dead(self, txn, &v, seq, out, arena);
    store_batch__txn_read_end(self, txn);
    return rc;
}

int store_dlq__lmdb_dlq_replay(hub_store_t *self, uint64_t seq, uint64_t new_ttl_us,
                               uint64_t preset_seq, uint64_t *new_seq)
{
    uint64_t now = hub_now_us();
    MDB_txn *txn;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t sb[HUB__SEQ_KEY], nb[HUB__SEQ_KEY];
    MDB_val sk = store__seq_val(sb, seq), v;
    uint8_t *copy = NULL;
    size_t size = 0;
    uint64_t next = 0;
    store_codec__rec_view_t view;
    store__rec_keys_t k;
    rc = store_batch__map_rc(mdb_get(txn, self->dead, &sk, &v));
    if (rc == 0) {
        int grc = mdb_get(txn, self->msgs, &sk, &v);
        rc = grc == MDB_NOTFOUND ? HUB_ESTORE : store_batch__map_rc(grc);
    }
    /* Copy the record: the writes below may move the page it is on. */
    if (rc == 0 && !(copy = malloc(v.mv_size ? v.mv_size : 1)))
        rc = HUB_ENOMEM;
    if (rc == 0) {
        size = v.mv_size;
        if (size)
            memcpy(copy, v.mv_data, size);
        rc = store_codec__rec_decode(copy, size, &view);
    }
    if (rc == 0) {
        store_queue__rec_keys(&view, &k);
        k.expires_at =
            new_ttl_us ? (new_ttl_us > UINT64_MAX - now ? UINT64_MAX : now + new_ttl_us) : 0;
        hub_put_le64(copy + HUB__REC_EXPIRES_AT, k.expires_at);
        rc = store_batch__next_seq_get(self, txn, &next);
        if (rc == 0 && preset_seq)
            next = preset_seq; /* unused: NOOVERWRITE below says so */
    }
    uint64_t used;
    if (rc == 0)
        rc = store_batch__used_pages(self, txn, &used);
    if (rc == 0 && used + store_batch__item_pages(self, size) > self->limit_pages)
        rc = HUB_EFULL; /* the same line as appends: keep room for acks */
    if (rc == 0) {
        MDB_val nk = store__seq_val(nb, next), rv = {size, copy};
        int mrc = mdb_put(txn, self->msgs, &nk, &rv, MDB_NOOVERWRITE);
        rc = mrc == MDB_KEYEXIST ? HUB_ESTORE : store_batch__map_rc(mrc);
    }
    if (rc == 0)
        rc = store_queue__index(self, txn, next, k.receiver, k.expires_at);
    if (rc == 0)
        rc = store_batch__map_rc(mdb_del(txn, self->dead, &sk, NULL));
    if (rc == 0)
        rc = store_batch__map_rc(mdb_del(txn, self->msgs, &sk, NULL));
    uint64_t stored_next = 0;
    if (rc == 0)
        rc = store_batch__next_seq_get(self, txn, &stored_next);
    if (rc == 0 && next + 1 > stored_next)
        rc = store_batch__next_seq_put(self, txn, next + 1);
    if (rc == 0) /* lookups by message id follow the message to its new seq */
        rc = store_dedup__move(self, txn, &k, seq, next);
    free(copy);
    rc = store_batch__txn_finish(self, txn, rc);
    if (rc == 0 && new_seq)
        *new_seq = next;
    return rc;
}

/* Deletes one dead letter (header and record) inside txn; *found says
 * whether it existed. A record that does not decode is deleted all the
 * same: purging is how an operator gets rid of it. */
static int purge_one(hub_store_t *self, MDB_txn *txn, uint64_t seq, bool *found,
                     store__held_acc_t *acc)
{
    uint8_t sb[HUB__SEQ_KEY];
    MDB_val sk = store__seq_val(sb, seq), v;
    int rc = store_batch__get(txn, self->dead, &sk, &v, found);
    if (rc != 0 || !*found)
        return rc;
    store_codec__rec_view_t view;
    store__rec_keys_t k;
    int grc = mdb_get(txn, self->msgs, &sk, &v);
    if (grc != 0 && grc != MDB_NOTFOUND)
        return store_batch__map_rc(grc);
    bool have_keys = grc == 0 && store_codec__rec_decode(v.mv_data, v.mv_size, &view) == 0;
    if (have_keys)
        store_queue__rec_keys(&view, &k);
    else if (grc == 0)
        acc->recount = true; /* a record that does not decode: whose was it? */
    rc = store_batch__map_rc(mdb_del(txn, self->dead, &sk, NULL));
    if (rc == 0)
        rc = store_batch__del_key(txn, self->msgs, &sk);
    if (rc == 0 && have_keys)
        rc = store_dedup__release(self, txn, &k, seq);
    if (rc == 0 && have_keys)
        rc = store_held__acc_count(acc, k.sender, k.receiver, k.envelope_len, -1);
    return rc;
}

int store_dlq__lmdb_dlq_purge(hub_store_t *self, uint64_t seq)
{
    MDB_txn *txn;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    bool found;
    store__held_acc_t acc = {0};
    rc = purge_one(self, txn, seq, &found, &acc);
    if (rc == 0 && !found)
        rc = HUB_ENOTFOUND;
    rc = store_held__acc_flush(self, txn, &acc, rc);
    return store_batch__txn_finish(self, txn, rc);
}

int store_dlq__lmdb_dlq_purge_older(hub_store_t *self, uint64_t before_us, size_t *purged)
{
    uint64_t *batch = malloc(PURGE_CHUNK * sizeof *batch);
    if (!batch)
        return HUB_ENOMEM;
    uint64_t from = 1;
    bool more = true;
    int rc = 0;
    size_t chunk = PURGE_CHUNK;
    while (rc == 0 && more) {
        uint64_t chunk_from = from;
        MDB_txn *txn;
        rc = store_batch__txn_write(self, &txn);
        if (rc != 0)
            break;
        MDB_cursor *c;
        size_t n = 0, scanned = 0;
        rc = store_batch__map_rc(mdb_cursor_open(txn, self->dead, &c));
        if (rc == 0) {
            uint8_t sb[HUB__SEQ_KEY];
            MDB_val k = store__seq_val(sb, from), v;
            int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            /* Scan a bounded stretch per transaction so appends get the
             * writer lock in between. */
            while (mrc == 0 && n < chunk && scanned < 16 * PURGE_CHUNK) {
                if (k.mv_size != HUB__SEQ_KEY) {
                    mrc = MDB_CORRUPTED;
                    break;
                }
                uint64_t seq = hub_get_be64(k.mv_data);
                store_codec__dead_view_t dv;
                /* An undecodable record is not "older": leave it to dlq_purge. */
                if (store_codec__dead_decode(v.mv_data, v.mv_size, &dv) == 0 &&
                    dv.dead_at < before_us)
                    batch[n++] = seq;
                scanned++;
                from = seq + 1;
                mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            }
            more = mrc == 0 && from != 0;
            if (mrc != 0 && mrc != MDB_NOTFOUND)
                rc = store_batch__map_rc(mrc);
            mdb_cursor_close(c);
        }
        size_t done = 0;
        store__held_acc_t acc = {0};
        for (size_t i = 0; rc == 0 && i < n; i++) {
            bool found;
            rc = purge_one(self, txn, batch[i], &found, &acc);
            done += found;
        }
        rc = store_held__acc_flush(self, txn, &acc, rc);
        rc = store_batch__txn_finish(self, txn, rc);
        if (rc == HUB_EFULL && chunk > 1) {
            /* Too many pages to copy in one go (see store_batch__split_on_full): retry
             * this stretch in smaller transactions. */
            chunk /= 2;
            from = chunk_from;
            more = true;
            rc = 0;
            continue;
        }
        if (rc == 0 && purged)
            *purged += done;
    }
    free(batch);
    return rc;
}
