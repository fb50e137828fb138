/* hub_store_batch.c — transactions: every store call runs in its own LMDB
 * transaction, or in a child of the calling thread's batch, so that a group
 * commit is one durable commit; plus the small table helpers and the seq
 * counter every other part uses. */
#include "hub_store_internal.h"

#include "hub_error.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

/* ---- errors ---------------------------------------------------------- */

int store_batch__map_rc(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return 0;
    case MDB_NOTFOUND: return HUB_ENOTFOUND;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case ENOSPC: return HUB_EFULL;
    case MDB_READERS_FULL: return HUB_EAGAIN;
    case ENOMEM: return HUB_ENOMEM;
    case EACCES:
    case EPERM:
    case EROFS: return HUB_EPERM;
    case EIO: return HUB_EIO;
    default: return HUB_ESTORE; /* corrupt, invalid, version mismatch, panic, ... */
    }
}

/* ---- transactions ------------------------------------------------------- */

/* The open batch when the calling thread owns it, else NULL. */
static MDB_txn *batch_mine(hub_store_t *self)
{
    pthread_mutex_lock(&self->batch_lock);
    MDB_txn *batch =
        self->batch && pthread_equal(self->batch_owner, pthread_self()) ? self->batch : NULL;
    pthread_mutex_unlock(&self->batch_lock);
    return batch;
}

/* Begins a child of the batch for one call. LMDB refuses a child of a
 * transaction that has failed (MDB_BAD_TXN): the batch is then broken, and
 * remembers it. Only out of memory leaves the batch as it was. */
static int batch_child(hub_store_t *self, MDB_txn *batch, MDB_txn **child)
{
    if (self->batch_err != 0)
        return self->batch_err;
    int mrc = mdb_txn_begin(self->env, batch, 0, child);
    if (mrc != 0 && mrc != ENOMEM)
        self->batch_err = store_batch__map_rc(mrc);
    return store_batch__map_rc(mrc);
}

/* Read functions pair store_batch__txn_read() with store_batch__txn_read_end(),
 * never mdb_txn_abort(): on the thread that owns the batch the transaction
 * is a child of it. */
int store_batch__txn_read(hub_store_t *self, MDB_txn **txn)
{
    MDB_txn *batch = batch_mine(self);
    if (!batch)
        return store_batch__map_rc(mdb_txn_begin(self->env, NULL, MDB_RDONLY, txn));
    /* The owner reads inside its batch, in a write child that is aborted at
     * the end: LMDB has no read-only child of a write transaction, and an
     * error while reading then taints the child, not the batch. A read from
     * a hub_store_queues() callback shares the callback's child. */
    if (!self->batch_read) {
        int rc = batch_child(self, batch, &self->batch_read);
        if (rc != 0) {
            self->batch_read = NULL;
            return rc;
        }
    }
    self->batch_reads++;
    *txn = self->batch_read;
    return 0;
}

void store_batch__txn_read_end(hub_store_t *self, MDB_txn *txn)
{
    if (batch_mine(self) && txn == self->batch_read) {
        if (--self->batch_reads > 0)
            return;
        self->batch_read = NULL;
    }
    mdb_txn_abort(txn);
}

int store_batch__scan(hub_store_t *self, MDB_dbi dbi, MDB_val *from, size_t max,
                      store_batch__visit_fn visit, void *ctx, size_t *n)
{
    *n = 0;
    MDB_txn *txn;
    MDB_cursor *c;
    int rc = store_batch__txn_read(self, &txn);
    if (rc != 0)
        return rc;
    rc = store_batch__map_rc(mdb_cursor_open(txn, dbi, &c));
    if (rc != 0) {
        store_batch__txn_read_end(self, txn);
        return rc;
    }
    MDB_val k = from ? *from : (MDB_val){0, NULL}, v;
    int mrc = mdb_cursor_get(c, &k, &v, from ? MDB_SET_RANGE : MDB_FIRST);
    while (mrc == 0 && *n < max) {
        int took = visit(self, txn, &k, &v, *n, ctx);
        if (took <= 0) {
            rc = took;
            break;
        }
        (*n)++;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = store_batch__map_rc(mrc);
    mdb_cursor_close(c);
    store_batch__txn_read_end(self, txn);
    return rc;
}

/* Write functions pair store_batch__txn_write() with store_batch__txn_finish().
 * On the thread that owns the batch the transaction is a child of it:
 * committing the child moves its changes into the batch, aborting it drops
 * only them. */
int store_batch__txn_write(hub_store_t *self, MDB_txn **txn)
{
    MDB_txn *batch = batch_mine(self);
    if (!batch)
        return store_batch__map_rc(mdb_txn_begin(self->env, NULL, 0, txn));
    if (self->batch_read)
        return HUB_EINVAL; /* a write from a hub_store_queues() callback */
    return batch_child(self, batch, txn);
}

/* Commits, or aborts when rc says the work failed; returns the outcome. */
int store_batch__txn_finish(hub_store_t *self, MDB_txn *txn, int rc)
{
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    int mrc = mdb_txn_commit(txn);
    /* A child fails to commit when LMDB had marked it failed (an error the
     * call did not act on) or when merging it into its parent runs out of
     * memory half-way; either way LMDB marks the parent failed too, and the
     * batch can no longer be committed: remember why. */
    if (mrc != 0 && batch_mine(self))
        self->batch_err = store_batch__map_rc(mrc);
    return store_batch__map_rc(mrc);
}

/* Reads an 8-byte value; a missing key reads as 0 and not found. *out and
 * *found are set on every path, errors included. */
int store_batch__get_u64(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, uint64_t *out, bool *found)
{
    *out = 0;
    MDB_val v;
    int rc = store_batch__get(txn, dbi, key, &v, found);
    if (rc != 0 || !*found)
        return rc;
    if (v.mv_size != 8) {
        *found = false;
        return HUB_ESTORE;
    }
    *out = hub_get_le64(v.mv_data);
    return 0;
}

int store_batch__put_u64(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, uint64_t value)
{
    uint8_t buf[8];
    hub_put_le64(buf, value);
    MDB_val v = {8, buf};
    return store_batch__map_rc(mdb_put(txn, dbi, key, &v, 0));
}

int store_batch__get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *v, bool *found)
{
    int rc = mdb_get(txn, dbi, key, v);
    *found = rc == 0;
    return rc == MDB_NOTFOUND ? 0 : store_batch__map_rc(rc);
}

int store_batch__has_key(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, bool *found)
{
    MDB_val v;
    return store_batch__get(txn, dbi, key, &v, found);
}

/* Deletes key; a missing key is not an error. */
int store_batch__del_key(MDB_txn *txn, MDB_dbi dbi, MDB_val *key)
{
    int rc = mdb_del(txn, dbi, key, NULL);
    return rc == MDB_NOTFOUND ? 0 : store_batch__map_rc(rc);
}

int store_batch__next_seq_get(hub_store_t *self, MDB_txn *txn, uint64_t *next)
{
    MDB_val k = store__str_val("next_seq");
    bool found;
    int rc = store_batch__get_u64(txn, self->meta, &k, next, &found);
    if (rc == 0 && (!found || *next == 0))
        rc = HUB_ESTORE; /* written at open */
    return rc;
}

int store_batch__next_seq_put(hub_store_t *self, MDB_txn *txn, uint64_t next)
{
    MDB_val k = store__str_val("next_seq");
    return store_batch__put_u64(txn, self->meta, &k, next);
}

/* Pages holding data in this transaction's view: every tree, including the
 * free-list's own pages, plus the two meta pages. A child of a batch sees
 * the batch's trees, so its uncommitted pages count. */
int store_batch__used_pages(hub_store_t *self, MDB_txn *txn, uint64_t *out)
{
    const MDB_dbi dbis[] = {
        0,           1,         self->meta, self->msgs, self->queue, self->expiry, self->attempts,
        self->depth, self->ids, self->age,  self->dead, self->held};
    uint64_t total = 2;
    for (size_t i = 0; i < sizeof dbis / sizeof dbis[0]; i++) {
        MDB_stat st;
        int rc = mdb_stat(txn, dbis[i], &st);
        if (rc != 0)
            return store_batch__map_rc(rc);
        total += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    }
    *out = total;
    return 0;
}

/* ---- batches --------------------------------------------------------- */

int store_batch__lmdb_batch_begin(hub_store_t *self)
{
    if (!self)
        return HUB_EINVAL;
    pthread_mutex_lock(&self->batch_lock);
    bool open = self->batch != NULL;
    pthread_mutex_unlock(&self->batch_lock);
    if (open)
        return HUB_EINVAL;
    /* Waits for LMDB's writer lock: for a write of another thread, or for
     * a batch that another thread began since the check above. */
    MDB_txn *txn;
    int rc = store_batch__map_rc(mdb_txn_begin(self->env, NULL, 0, &txn));
    if (rc != 0)
        return rc;
    self->batch_read = NULL;
    self->batch_reads = 0;
    self->batch_err = 0;
    pthread_mutex_lock(&self->batch_lock);
    self->batch = txn;
    self->batch_owner = pthread_self();
    pthread_mutex_unlock(&self->batch_lock);
    return 0;
}

/* Takes the calling thread's batch out of the store, for commit or abort;
 * NULL when it has none, or from inside a hub_store_queues() callback
 * (whose read transaction is a child of the batch). */
static MDB_txn *batch_take(hub_store_t *self)
{
    if (!self || !batch_mine(self) || self->batch_read)
        return NULL;
    pthread_mutex_lock(&self->batch_lock);
    MDB_txn *batch = self->batch;
    self->batch = NULL;
    pthread_mutex_unlock(&self->batch_lock);
    return batch;
}

int store_batch__lmdb_batch_commit(hub_store_t *self)
{
    MDB_txn *batch = batch_take(self);
    if (!batch)
        return HUB_EINVAL;
    if (self->batch_err != 0) {
        mdb_txn_abort(batch);
        return self->batch_err;
    }
    return store_batch__map_rc(mdb_txn_commit(batch));
}

void store_batch__lmdb_batch_abort(hub_store_t *self)
{
    MDB_txn *batch = batch_take(self);
    if (batch)
        mdb_txn_abort(batch);
}

/* ---- room ------------------------------------------------------------- */

/* Pages an item may add: its record (in overflow pages when large) and a
 * margin for index entries and page splits. */
uint64_t store_batch__item_pages(const hub_store_t *self, size_t rec_len)
{
    return (rec_len + 512 + self->page_size - 1) / self->page_size + 2;
}

/* LMDB copies every page a transaction touches, deletes included, and
 * reuses freed pages only a transaction later: a large ack or dead-letter
 * batch in a nearly full map can run out of pages. Both are idempotent, so
 * on HUB_EFULL the batch is retried in halves, each its own transaction. */
int store_batch__split_on_full(int (*one_txn)(hub_store_t *, const char *, const uint64_t *,
                                              size_t, bool *),
                               hub_store_t *self, const char *arg, const uint64_t *seqs, size_t n,
                               bool *flags)
{
    int rc = one_txn(self, arg, seqs, n, flags);
    if (rc != HUB_EFULL || n < 2)
        return rc;
    size_t half = n / 2;
    rc = store_batch__split_on_full(one_txn, self, arg, seqs, half, flags);
    if (rc == 0)
        rc = store_batch__split_on_full(one_txn, self, arg, seqs + half, n - half,
                                        flags ? flags + half : NULL);
    return rc;
}
