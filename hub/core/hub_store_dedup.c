/* hub_store_dedup.c — what the store remembers by message id: the
 * de-duplication record of every accepted (sender, message_id) with its
 * envelope digest, for its window and for look-ups, and the tracked
 * requests waiting for their reply. */
#include "hub_store_internal.h"

#include "hub_error.h"
#include "hub_vec.h"

#include <stdlib.h>
#include <string.h>

/* ---- de-duplication records ---------------------------------------------- */

int store_dedup__release(hub_store_t *self, MDB_txn *txn, const store__rec_keys_t *k, uint64_t seq)
{
    uint8_t ib[HUB__IDKEY_MAX];
    MDB_val ik = store__ids_key(ib, k->sender, k->id), v;
    bool found;
    int rc = store_batch__get(txn, self->ids, &ik, &v, &found);
    if (rc != 0 || !found)
        return rc;
    store_codec__ids_rec_t r;
    if (store_codec__ids_decode(v.mv_data, v.mv_size, &r) != 0)
        return store_batch__del_key(txn, self->ids, &ik); /* unreadable: nothing to keep */
    if (r.seq == seq && (r.flags & HUB__IDS_PINNED))
        return store_batch__del_key(txn, self->ids, &ik);
    return 0;
}

static int ids_put(hub_store_t *self, MDB_txn *txn, MDB_val *key, const store_codec__ids_rec_t *r)
{
    uint8_t buf[HUB__IDS_VAL];
    store_codec__ids_encode(buf, r);
    MDB_val v = {HUB__IDS_VAL, buf};
    return store_batch__map_rc(mdb_put(txn, self->ids, key, &v, 0));
}

int store_dedup__check(hub_store_t *self, MDB_cursor *ids, MDB_val *ik, uint64_t now,
                       const uint8_t digest[HUB_STORE_DIGEST_LEN], bool *dup, bool *reused,
                       uint64_t *orig_seq)
{
    *dup = false;
    *reused = false;
    if (self->limits.dedup_window_us == 0)
        return 0;
    MDB_val k = *ik, v;
    int rc = mdb_cursor_get(ids, &k, &v, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_batch__map_rc(rc);
    store_codec__ids_rec_t r;
    if (store_codec__ids_decode(v.mv_data, v.mv_size, &r) != 0)
        return 0; /* unreadable: treat as unknown; the append overwrites it */
    /* A clock that went backwards counts as "within the window". */
    if (now < r.accepted_at || now - r.accepted_at < self->limits.dedup_window_us) {
        *dup = true;
        *orig_seq = r.seq;
        /* An unknown digest (a record from before format 4, or a caller
         * that gave none) cannot tell a re-send from new content: it stays
         * a duplicate, as before. */
        *reused = !store_codec__digest_unknown(digest) && !store_codec__digest_unknown(r.digest) &&
                  memcmp(digest, r.digest, HUB_STORE_DIGEST_LEN) != 0;
    }
    return 0;
}

int store_dedup__put(hub_store_t *self, MDB_txn *txn, MDB_cursor *ids, const hub_store_msg_t *m,
                     uint64_t seq)
{
    uint8_t ib[HUB__IDKEY_MAX], ab[HUB__PAIR_KEY], vb[HUB__IDS_VAL];
    MDB_val ik = store__ids_key(ib, m->sender, m->message_id);
    store_codec__ids_rec_t r = {seq, m->accepted_at_us, 0, {0}};
    memcpy(r.digest, m->digest, HUB_STORE_DIGEST_LEN);
    store_codec__ids_encode(vb, &r);
    MDB_val iv = {HUB__IDS_VAL, vb};
    int rc = store_batch__map_rc(mdb_cursor_put(ids, &ik, &iv, 0));
    if (rc == 0) {
        /* (accepted_at, seq) almost always grows: MDB_APPEND fills the age
         * index's pages instead of splitting them in half (half the pages
         * to write at the commit); a key below the last one (the clock went
         * back) is put the ordinary way. */
        MDB_val ak = store__pair_val(ab, m->accepted_at_us, seq);
        int mrc = mdb_put(txn, self->age, &ak, &ik, MDB_APPEND);
        if (mrc == MDB_KEYEXIST)
            mrc = mdb_put(txn, self->age, &ak, &ik, 0);
        rc = store_batch__map_rc(mrc);
    }
    return rc;
}

int store_dedup__move(hub_store_t *self, MDB_txn *txn, const store__rec_keys_t *k, uint64_t old_seq,
                      uint64_t new_seq)
{
    uint8_t ib[HUB__IDKEY_MAX], ab[HUB__PAIR_KEY];
    MDB_val ik = store__ids_key(ib, k->sender, k->id), iv;
    store_codec__ids_rec_t r;
    int rc = 0;
    int grc = mdb_get(txn, self->ids, &ik, &iv);
    if (grc == 0 && store_codec__ids_decode(iv.mv_data, iv.mv_size, &r) == 0 && r.seq == old_seq) {
        if (!(r.flags & HUB__IDS_PINNED)) {
            MDB_val old_age = store__pair_val(ab, r.accepted_at, old_seq);
            rc = store_batch__del_key(txn, self->age, &old_age);
            MDB_val new_age = store__pair_val(ab, r.accepted_at, new_seq);
            if (rc == 0)
                rc = store_batch__map_rc(mdb_put(txn, self->age, &new_age, &ik, 0));
        }
        r.seq = new_seq;
        if (rc == 0)
            rc = ids_put(self, txn, &ik, &r);
    } else if (grc != 0 && grc != MDB_NOTFOUND) {
        rc = store_batch__map_rc(grc);
    }
    return rc;
}

/* ---- look-ups and forgetting --------------------------------------------- */

int store_dedup__lmdb_lookup(hub_store_t *self, const char *sender, const char *message_id,
                             uint64_t *seq, hub_store_state_t *state)
{
    MDB_txn *txn;
    int rc = store_batch__txn_read(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t ib[HUB__IDKEY_MAX], sb[HUB__SEQ_KEY];
    MDB_val ik = store__ids_key(ib, sender, message_id), v;
    store_codec__ids_rec_t r;
    bool queued = false, dead = false;
    rc = store_batch__map_rc(mdb_get(txn, self->ids, &ik, &v));
    if (rc == 0)
        rc = store_codec__ids_decode(v.mv_data, v.mv_size, &r);
    if (rc == 0) {
        MDB_val sk = store__seq_val(sb, r.seq);
        bool stored;
        rc = store_batch__has_key(txn, self->msgs, &sk, &stored);
        if (rc == 0 && stored)
            rc = store_batch__has_key(txn, self->dead, &sk, &dead);
        queued = stored && !dead;
    }
    store_batch__txn_read_end(self, txn);
    if (rc != 0)
        return rc;
    if (seq)
        *seq = r.seq;
    if (state)
        *state = queued ? HUB_STORE_STATE_QUEUED
                 : dead ? HUB_STORE_STATE_DEAD
                        : HUB_STORE_STATE_DONE;
    return 0;
}

int store_dedup__lmdb_prune_dedup(hub_store_t *self, uint64_t now_us, size_t *pruned)
{
    uint64_t window = self->limits.dedup_window_us;
    if (now_us < window)
        return 0;
    uint64_t cutoff = now_us - window; /* accepted at or before this: window over */
    uint8_t(*keys)[HUB__PAIR_KEY] = malloc((size_t)HUB_STORE_PRUNE_BATCH * HUB__PAIR_KEY);
    if (!keys)
        return HUB_ENOMEM;
    MDB_txn *txn;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0) {
        free(keys);
        return rc;
    }
    size_t n = 0;
    MDB_cursor *c;
    rc = store_batch__map_rc(mdb_cursor_open(txn, self->age, &c));
    if (rc == 0) {
        MDB_val k, v;
        int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (mrc == 0 && n < HUB_STORE_PRUNE_BATCH) {
            if (k.mv_size != HUB__PAIR_KEY) {
                mrc = MDB_CORRUPTED;
                break;
            }
            if (hub_get_be64(k.mv_data) > cutoff)
                break;
            memcpy(keys[n++], k.mv_data, HUB__PAIR_KEY);
            mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            rc = store_batch__map_rc(mrc);
        mdb_cursor_close(c);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        MDB_val ak = {HUB__PAIR_KEY, keys[i]}, av;
        rc = store_batch__map_rc(mdb_get(txn, self->age, &ak, &av));
        if (rc != 0)
            break;
        uint8_t ib[HUB__IDKEY_MAX];
        bool key_ok = av.mv_size > 0 && av.mv_size <= HUB__IDKEY_MAX;
        MDB_val ik = {key_ok ? av.mv_size : 0, ib}, iv;
        if (key_ok)
            memcpy(ib, av.mv_data, av.mv_size);
        rc = store_batch__map_rc(mdb_del(txn, self->age, &ak, NULL));
        if (rc != 0 || !key_ok)
            continue;
        uint64_t seq = hub_get_be64(keys[i] + 8);
        store_codec__ids_rec_t r;
        int grc = mdb_get(txn, self->ids, &ik, &iv);
        if (grc == MDB_NOTFOUND)
            continue;
        if (grc != 0) {
            rc = store_batch__map_rc(grc);
            break;
        }
        if (store_codec__ids_decode(iv.mv_data, iv.mv_size, &r) != 0) {
            rc = store_batch__del_key(txn, self->ids, &ik);
            continue;
        }
        if (r.seq != seq)
            continue; /* a newer message took this id over; its own age entry remains */
        uint8_t sb[HUB__SEQ_KEY];
        MDB_val sk = store__seq_val(sb, seq);
        bool stored; /* queued or dead-lettered */
        rc = store_batch__has_key(txn, self->msgs, &sk, &stored);
        if (rc != 0)
            break;
        if (stored) {
            r.flags |= HUB__IDS_PINNED; /* kept for lookups until the message goes */
            rc = ids_put(self, txn, &ik, &r);
        } else {
            rc = store_batch__del_key(txn, self->ids, &ik);
        }
    }
    free(keys);
    rc = store_batch__txn_finish(self, txn, rc);
    if (rc == 0 && pruned)
        *pruned = n;
    return rc;
}

/* ---- tracked requests ------------------------------------------------ */

int store_dedup__lmdb_requests_put(hub_store_t *self, const hub_store_request_t *reqs, size_t n)
{
    MDB_txn *txn = NULL;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t buf[HUB__REQ_VAL_MAX];
        MDB_val k = store__str_val(reqs[i].message_id);
        MDB_val v = {store_codec__request_encode(buf, &reqs[i]), buf};
        rc = store_batch__map_rc(mdb_put(txn, self->requests, &k, &v, 0));
    }
    return store_batch__txn_finish(self, txn, rc);
}

int store_dedup__lmdb_requests_del(hub_store_t *self, const char *const *ids, size_t n)
{
    MDB_txn *txn = NULL;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!store_backend__str_ok(ids[i], HUB_STORE_ID_MAX, false))
            continue;
        MDB_val k = store__str_val(ids[i]);
        rc = store_batch__del_key(txn, self->requests, &k);
    }
    return store_batch__txn_finish(self, txn, rc);
}

int store_dedup__lmdb_requests_load(hub_store_t *self, uint64_t now_us, hub_store_request_cb cb,
                                    void *user, size_t *expired)
{
    MDB_txn *txn;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    /* Expired and damaged entries are collected, then deleted after the
     * walk (a cursor is not moved under a delete). */
    char(*gone)[HUB_STORE_ID_MAX + 1] = NULL;
    size_t n_gone = 0, cap_gone = 0;
    MDB_cursor *c;
    rc = store_batch__map_rc(mdb_cursor_open(txn, self->requests, &c));
    if (rc == 0) {
        MDB_val k, v;
        int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        for (; mrc == 0 && rc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            hub_store_request_t r;
            if (store_codec__request_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &r) &&
                !(r.expires_at_us && r.expires_at_us <= now_us)) {
                cb(&r, user);
                continue;
            }
            if (k.mv_size == 0 || k.mv_size > HUB_STORE_ID_MAX)
                continue; /* cannot be named: left alone, never loaded */
            if ((rc = HUB_VEC_RESERVE(gone, n_gone, cap_gone, 64)) != 0)
                break;
            memcpy(gone[n_gone], k.mv_data, k.mv_size);
            gone[n_gone++][k.mv_size] = '\0';
        }
        if (rc == 0 && mrc != MDB_NOTFOUND)
            rc = store_batch__map_rc(mrc);
        mdb_cursor_close(c);
    }
    for (size_t i = 0; rc == 0 && i < n_gone; i++) {
        MDB_val k = {strlen(gone[i]), gone[i]};
        rc = store_batch__del_key(txn, self->requests, &k);
    }
    free(gone);
    rc = store_batch__txn_finish(self, txn, rc);
    if (rc == 0 && expired)
        *expired = n_gone;
    return rc;
}
