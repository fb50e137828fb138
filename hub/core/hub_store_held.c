/* hub_store_held.c — what each member holds in the store, as sender and as
 * receiver, kept exact in the same transaction as every change, and the
 * quota and reserve rules judged from it. */
#include "hub_store_internal.h"

#include "hub_error.h"

#include <stdlib.h>
#include <string.h>

/* ---- the held table and a call's changes to it ------------------------- */

static MDB_val held_key(uint8_t buf[HUB__HELD_KEY_MAX], char role, const char *member)
{
    size_t len = strlen(member);
    buf[0] = (uint8_t)role;
    memcpy(buf + 1, member, len);
    return (MDB_val){1 + len, buf};
}

static int held_get(hub_store_t *self, MDB_txn *txn, MDB_val *key, hub_store_held_t *out)
{
    MDB_val v;
    bool found;
    *out = (hub_store_held_t){0, 0};
    int rc = store_batch__get(txn, self->held, key, &v, &found);
    if (rc != 0 || !found)
        return rc;
    return store_codec__held_decode(v.mv_data, v.mv_size, out);
}

/* held_get for (role, member): 't' and "" for the total. */
static int held_read(hub_store_t *self, MDB_txn *txn, char role, const char *member,
                     hub_store_held_t *out)
{
    uint8_t kb[HUB__HELD_KEY_MAX];
    MDB_val k = held_key(kb, role, member);
    return held_get(self, txn, &k, out);
}

static int held_put(hub_store_t *self, MDB_txn *txn, MDB_val *key, const hub_store_held_t *h)
{
    if (h->msgs == 0 && h->bytes == 0)
        return store_batch__del_key(txn, self->held, key);
    uint8_t buf[HUB__HELD_VAL];
    store_codec__held_encode(buf, h);
    MDB_val v = {HUB__HELD_VAL, buf};
    return store_batch__map_rc(mdb_put(txn, self->held, key, &v, 0));
}

static void held_acc_free(store__held_acc_t *acc)
{
    free(acc->entries);
    free(acc->slots);
    *acc = (store__held_acc_t){0};
}

static int held_acc_grow(store__held_acc_t *acc)
{
    size_t cap = acc->cap ? acc->cap * 2 : 16, n_slots = cap * 2;
    store__held_entry_t *entries = realloc(acc->entries, cap * sizeof *entries);
    if (!entries)
        return HUB_ENOMEM;
    acc->entries = entries;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return HUB_ENOMEM;
    for (size_t i = 0; i < acc->count; i++) {
        uint64_t hash = store_backend__hash(entries[i].key, entries[i].key_len);
        slots[store_backend__free_slot(slots, n_slots, hash)] = (uint32_t)(i + 1);
    }
    free(acc->slots);
    acc->slots = slots;
    acc->n_slots = n_slots;
    acc->cap = cap;
    return 0;
}

/* The call's entry for (role, member), created unloaded at zero change;
 * NULL when out of memory. */
static store__held_entry_t *held_acc_entry(store__held_acc_t *acc, char role, const char *member)
{
    uint8_t kb[HUB__HELD_KEY_MAX];
    MDB_val k = held_key(kb, role, member);
    uint64_t hash = store_backend__hash(kb, k.mv_size);
    size_t j = 0;
    if (acc->n_slots) {
        j = hash & (acc->n_slots - 1);
        while (acc->slots[j]) {
            store__held_entry_t *e = &acc->entries[acc->slots[j] - 1];
            if (e->key_len == k.mv_size && !memcmp(e->key, kb, k.mv_size))
                return e;
            j = (j + 1) & (acc->n_slots - 1);
        }
    }
    if (acc->count == acc->cap) {
        /* Growing moves the entries: pointers to them taken before go stale. */
        if (held_acc_grow(acc) != 0)
            return NULL;
        j = store_backend__free_slot(acc->slots, acc->n_slots, hash);
    }
    store__held_entry_t *e = &acc->entries[acc->count];
    memset(e, 0, sizeof *e);
    memcpy(e->key, kb, k.mv_size);
    e->key_len = k.mv_size;
    acc->slots[j] = (uint32_t)++acc->count;
    return e;
}

int store_held__entry_load(hub_store_t *self, MDB_txn *txn, store__held_entry_t *e)
{
    if (e->loaded)
        return 0;
    MDB_val k = {e->key_len, e->key};
    int rc = held_get(self, txn, &k, &e->base);
    e->loaded = rc == 0;
    return rc;
}

/* What the entry holds now: the table's value plus the call's changes
 * (counters never go below zero). Loaded entries only. */
hub_store_held_t store_held__entry_now(const store__held_entry_t *e)
{
    hub_store_held_t h = e->base;
    h.msgs = e->d_msgs < 0 && (uint64_t)-e->d_msgs > h.msgs ? 0 : h.msgs + (uint64_t)e->d_msgs;
    h.bytes =
        e->d_bytes < 0 && (uint64_t)-e->d_bytes > h.bytes ? 0 : h.bytes + (uint64_t)e->d_bytes;
    return h;
}

int store_held__acc_trio(store__held_acc_t *acc, const char *sender, const char *receiver,
                         store__held_trio_t *out)
{
    out->sender = held_acc_entry(acc, 's', sender);
    out->receiver = out->sender ? held_acc_entry(acc, 'r', receiver) : NULL;
    out->total = out->receiver ? held_acc_entry(acc, 't', "") : NULL;
    /* Entries may move when the table grows: look them up again. */
    if (out->total) {
        out->sender = held_acc_entry(acc, 's', sender);
        out->receiver = held_acc_entry(acc, 'r', receiver);
    }
    return out->sender && out->receiver && out->total ? 0 : HUB_ENOMEM;
}

void store_held__trio_add(store__held_trio_t *t, int sign, uint32_t envelope_len)
{
    store__held_entry_t *es[3] = {t->sender, t->receiver, t->total};
    for (int i = 0; i < 3; i++) {
        es[i]->d_msgs += sign;
        es[i]->d_bytes += sign * (int64_t)envelope_len;
    }
}

/* Counts one message in or out of the call's changes. */
int store_held__acc_count(store__held_acc_t *acc, const char *sender, const char *receiver,
                          uint32_t envelope_len, int sign)
{
    store__held_trio_t t;
    int rc = store_held__acc_trio(acc, sender, receiver, &t);
    if (rc == 0)
        store_held__trio_add(&t, sign, envelope_len);
    return rc;
}

/* Empties held and counts every record in msgs that decodes, in txn. */
int store_held__recount(hub_store_t *self, MDB_txn *txn)
{
    store__held_acc_t acc = {0};
    int rc = store_batch__map_rc(mdb_drop(txn, self->held, 0));
    MDB_cursor *c = NULL;
    if (rc == 0)
        rc = store_batch__map_rc(mdb_cursor_open(txn, self->msgs, &c));
    MDB_val k, v;
    int mrc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        store_codec__rec_view_t view;
        char sender[HUB_STORE_NAME_MAX + 1], receiver[HUB_STORE_NAME_MAX + 1];
        if (store_codec__rec_decode(v.mv_data, v.mv_size, &view) == 0) {
            store__copy_bytes_str(sender, view.sender, view.sender_len);
            store__copy_bytes_str(receiver, view.receiver, view.receiver_len);
            rc = store_held__acc_count(&acc, sender, receiver, view.envelope_len, +1);
        }
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (c)
        mdb_cursor_close(c);
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = store_batch__map_rc(mrc);
    for (size_t i = 0; rc == 0 && i < acc.count; i++) {
        store__held_entry_t *e = &acc.entries[i];
        MDB_val hk = {e->key_len, e->key};
        hub_store_held_t h = {(uint64_t)e->d_msgs, (uint64_t)e->d_bytes};
        rc = held_put(self, txn, &hk, &h);
    }
    held_acc_free(&acc);
    return rc;
}

/* Writes the call's changes: each changed entry once. Frees acc. */
int store_held__acc_flush(hub_store_t *self, MDB_txn *txn, store__held_acc_t *acc, int rc)
{
    if (rc == 0 && acc->recount)
        rc = store_held__recount(self, txn);
    for (size_t i = 0; rc == 0 && !acc->recount && i < acc->count; i++) {
        store__held_entry_t *e = &acc->entries[i];
        if (e->d_msgs == 0 && e->d_bytes == 0)
            continue;
        rc = store_held__entry_load(self, txn, e);
        if (rc != 0)
            break;
        hub_store_held_t now = store_held__entry_now(e);
        MDB_val k = {e->key_len, e->key};
        rc = held_put(self, txn, &k, &now);
    }
    held_acc_free(acc);
    return rc;
}

/* ---- quotas and the reserve ------------------------------------------- */

/* Does m pass its quotas, given what its sender and receiver hold with the
 * call's earlier items? HUB_STORE_OK or the QUOTA outcome. */
hub_store_outcome_t store_held__quota_check(const hub_store_msg_t *m, const hub_store_held_t *s,
                                            const hub_store_held_t *r)
{
    const hub_store_quota_t *q = &m->quota;
    uint64_t len = m->envelope_len;
    if ((q->sender_msgs && s->msgs >= q->sender_msgs) ||
        (q->sender_bytes && (len > q->sender_bytes || s->bytes > q->sender_bytes - len)))
        return HUB_STORE_QUOTA_SENDER;
    if ((q->receiver_msgs && r->msgs >= q->receiver_msgs) ||
        (q->receiver_bytes && (len > q->receiver_bytes || r->bytes > q->receiver_bytes - len)))
        return HUB_STORE_QUOTA_RECEIVER;
    return HUB_STORE_OK;
}

/* Past the reserve line: does m's sender, or else its receiver, hold more
 * than half of what all members hold? */
hub_store_outcome_t store_held__reserve_check(const hub_store_held_t *s, const hub_store_held_t *r,
                                              const hub_store_held_t *total)
{
    /* x > total / 2 (rounded down) is 2x > total, without overflow. */
    if (s->bytes > total->bytes / 2)
        return HUB_STORE_QUOTA_SENDER;
    if (r->bytes > total->bytes / 2)
        return HUB_STORE_QUOTA_RECEIVER;
    return HUB_STORE_OK;
}

/* ---- reads -------------------------------------------------------------- */

int store_held__lmdb_usage(hub_store_t *self, uint64_t *used_bytes, uint64_t *max_bytes,
                           uint64_t *dead_count)
{
    MDB_txn *txn;
    int rc = store_batch__txn_read(self, &txn);
    if (rc != 0)
        return rc;
    uint64_t pages = 0;
    MDB_stat st;
    rc = store_batch__used_pages(self, txn, &pages);
    if (rc == 0)
        rc = store_batch__map_rc(mdb_stat(txn, self->dead, &st));
    store_batch__txn_read_end(self, txn);
    if (rc != 0)
        return rc;
    if (used_bytes)
        *used_bytes = pages * self->page_size;
    if (max_bytes)
        *max_bytes = self->map_bytes;
    if (dead_count)
        *dead_count = st.ms_entries;
    return 0;
}

int store_held__lmdb_held(hub_store_t *self, const char *member, hub_store_held_t *as_sender,
                          hub_store_held_t *as_receiver)
{
    MDB_txn *txn;
    int rc = store_batch__txn_read(self, &txn);
    if (rc != 0)
        return rc;
    hub_store_held_t s = {0, 0}, r = {0, 0};
    rc = held_read(self, txn, 's', member, &s);
    if (rc == 0)
        rc = held_read(self, txn, 'r', member, &r);
    store_batch__txn_read_end(self, txn);
    if (rc != 0)
        return rc;
    if (as_sender)
        *as_sender = s;
    if (as_receiver)
        *as_receiver = r;
    return 0;
}

int store_held__lmdb_held_total(hub_store_t *self, hub_store_held_t *total)
{
    MDB_txn *txn;
    int rc = store_batch__txn_read(self, &txn);
    if (rc != 0)
        return rc;
    rc = held_read(self, txn, 't', "", total);
    store_batch__txn_read_end(self, txn);
    return rc;
}
