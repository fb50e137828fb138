/* hub_store_internal — what the files of the LMDB store share: the store
 * struct, the tables and their keys, the transaction rules, and the helpers
 * one part of the store offers another.
 *
 * PRIVATE to hub/core/hub_store_*.c: nothing else includes it (the rest of
 * the hub uses hub_store.h, the contract a second backend implements).
 *
 * The files, each on top of the ones before it (no call goes upwards):
 *   hub_store_codec.c  the bytes of records (pure; hub_store_codec.h)
 *   hub_store_batch.c  transactions, batches (group commit), the seq counter
 *   hub_store_held.c   what each member holds; quotas and the reserve
 *   hub_store_dedup.c  de-duplication records, look-ups, tracked requests
 *   hub_store_queue.c  append, per-receiver queues, attempts, expiry, acks
 *   hub_store_dlq.c    dead letters: moving, listing, replaying, purging
 *   hub_store_env.c    opening, formats and upgrades, inspect, backup, close
 *
 * Layout: eleven named LMDB databases in one environment. Every key that
 * must sort is big-endian, so LMDB's default memcmp order is numeric order.
 *
 *   meta      "format" -> u32 store format; "next_seq" -> u64 next seq;
 *             "audit_anchor" -> u64 seq, 32-byte hash (hub_store_audit_anchor_*);
 *             "store_id" -> 16 random bytes, "created_at" -> u64 µs (format 3)
 *   msgs      seq -> message record (queued and dead-lettered messages)
 *   queue     receiver \0 seq -> ""          per-receiver order
 *   expiry    expires_at seq -> ""           queued messages that can expire
 *   attempts  seq -> u32                     only once attempts > 0
 *   depth     receiver -> u64                queued messages per receiver
 *   ids       sender \0 message_id -> de-duplication record {seq,
 *             accepted_at, flags, envelope digest (format 4)}
 *   age       accepted_at seq -> ids key     ids entries still in their window
 *   dead      seq -> dead header (reason, dead_at, attempts); the record
 *             stays in msgs, so dead-lettering never copies an envelope and
 *             works when the store is full
 *   held      's' sender / 'r' receiver -> {u64 msgs, u64 bytes} what the
 *             member holds in msgs (entries at zero are deleted);
 *             "t" -> the same for all members together (format 2)
 *   requests  message_id -> u64 expires_at, sender \0 receiver \0: queued
 *             requests still waiting for their reply (hub_store_requests_*)
 * The values' bytes are in hub_store_codec.h. A message is queued when msgs
 * has its seq and dead does not.
 *
 * The ids/age pair: an ids entry is born with an age entry. prune_dedup()
 * walks age oldest first; when a window has passed it deletes the age entry
 * and then either deletes the ids entry or, when the message is still
 * queued or dead, marks it PINNED (kept for lookups). ack and purge delete a
 * PINNED ids entry that still names their seq; an unpinned one is left for
 * prune_dedup(). An ids entry may be overwritten by a newer message with the
 * same id after the window; the stale age entry is then dropped by prune
 * because its seq no longer matches.
 *
 * Every write that adds or removes a record in msgs changes held in the
 * same transaction, through a store__held_acc_t that sums a call's changes
 * per member and writes each entry once (a group commit of thousands of
 * envelopes touches a few entries, not thousands).
 *
 * Formats. 1: the layout above without the held table, store_id,
 * created_at and digests (hubd 0.1). 2: adds the held table (quotas). 3:
 * adds store_id and created_at, so that a backup names the store it was
 * taken from and a restore can check it got that store back. 4: the
 * de-duplication record keeps the envelope's digest (ID_REUSED); older
 * records, without one, still decode. Opening an older store upgrades it
 * in place, step by step, in open's one transaction; a format newer than
 * HUB_STORE_FORMAT is refused.
 *
 * Transactions. Every read function pairs store_batch__txn_read() with
 * store_batch__txn_read_end(); every write function pairs
 * store_batch__txn_write() with store_batch__txn_finish(). On the thread that
 * owns a batch those are children of the batch (see hub_store_batch.c).
 * Pointers LMDB hands out die with the next write in the same transaction:
 * copy what is needed first (store__rec_keys_t).
 */
#ifndef HUB_STORE_INTERNAL_H
#define HUB_STORE_INTERNAL_H

#include "hub_store.h"
#include "hub_store_backend.h"
#include "hub_store_codec.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define HUB__STORE_FORMAT_OLDEST 1u
#define HUB__HELD_KEY_MAX (1 + HUB_STORE_NAME_MAX)
#define HUB__SEQ_KEY 8u
#define HUB__PAIR_KEY 16u
#define HUB__QKEY_MAX (HUB_STORE_NAME_MAX + 1 + HUB__SEQ_KEY)
#define HUB__IDKEY_MAX (HUB_STORE_NAME_MAX + 1 + HUB_STORE_ID_MAX)

struct hub_store {
    store_backend__base_t base; /* first: the dispatch table (hub_store_backend.h) */
    MDB_env *env;
    MDB_dbi meta, msgs, queue, expiry, attempts, depth, ids, age, dead, held, requests;
    hub_store_limits_t limits;
    uint64_t map_bytes;     /* the map size LMDB settled on */
    uint64_t limit_pages;   /* 90% of the map, in pages: the append refusal line */
    uint64_t reserve_pages; /* (90 - reserve_percent)% of the map: past it, no member may
                               take more than half; == limit_pages when there is no reserve */
    unsigned page_size;
    uint32_t upgraded_from; /* the format open upgraded from, or 0 */

    /* The batch (hub_store_batch_begin). `batch` and `batch_owner` change
     * under batch_lock, so that any thread can ask whether it owns the
     * batch; the fields after them are used by the owner thread only. */
    pthread_mutex_t batch_lock;
    MDB_txn *batch;         /* the batch's write transaction, or NULL */
    pthread_t batch_owner;  /* the thread that began it */
    MDB_txn *batch_read;    /* the owner's read in progress: a child of batch */
    unsigned batch_reads;   /* reads sharing batch_read (nested by a queues callback) */
    int batch_err;          /* what broke the batch: commit returns it */
    uint32_t opened_format; /* the format found on disk at open (0 = new store) */
};

/* What write paths keep of a record before they modify the database (LMDB
 * may move pages under pointers taken earlier in a write transaction). */
typedef struct {
    char id[HUB_STORE_ID_MAX + 1];
    char sender[HUB_STORE_NAME_MAX + 1];
    char receiver[HUB_STORE_NAME_MAX + 1];
    uint64_t expires_at;
    uint32_t envelope_len;
} store__rec_keys_t;

/* ---- keys ---------------------------------------------------------------- */

static inline MDB_val store__seq_val(uint8_t buf[HUB__SEQ_KEY], uint64_t seq)
{
    hub_put_be64(buf, seq);
    return (MDB_val){HUB__SEQ_KEY, buf};
}

static inline MDB_val store__pair_val(uint8_t buf[HUB__PAIR_KEY], uint64_t hi, uint64_t seq)
{
    hub_put_be64(buf, hi);
    hub_put_be64(buf + 8, seq);
    return (MDB_val){HUB__PAIR_KEY, buf};
}

static inline MDB_val store__queue_key(uint8_t buf[HUB__QKEY_MAX], const char *receiver,
                                       uint64_t seq)
{
    size_t len = strlen(receiver);
    memcpy(buf, receiver, len);
    buf[len] = 0;
    hub_put_be64(buf + len + 1, seq);
    return (MDB_val){len + 1 + HUB__SEQ_KEY, buf};
}

static inline MDB_val store__ids_key(uint8_t buf[HUB__IDKEY_MAX], const char *sender,
                                     const char *id)
{
    size_t slen = strlen(sender), ilen = strlen(id);
    memcpy(buf, sender, slen);
    buf[slen] = 0;
    memcpy(buf + slen + 1, id, ilen);
    return (MDB_val){slen + 1 + ilen, buf};
}

static inline MDB_val store__str_val(const char *s)
{
    return (MDB_val){strlen(s), (void *)s};
}

static inline void store__copy_bytes_str(char *dst, const char *src, size_t len)
{
    memcpy(dst, src, len);
    dst[len] = 0;
}

/* ---- errors and small table helpers (hub_store_batch.c) ------------------- */

/* An LMDB or errno code as a HUB_E* code. */
int store_batch__map_rc(int rc);
/* Reads an 8-byte value; a missing key reads as 0 and not found. *out and
 * *found are set on every path, errors included. */
int store_batch__get_u64(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, uint64_t *out, bool *found);
int store_batch__put_u64(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, uint64_t value);
/* mdb_get telling a missing key apart: 0 with *found false when it is
 * absent, 0 with *found true and *v set, or a HUB_E* code. */
int store_batch__get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *v, bool *found);
int store_batch__has_key(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, bool *found);
/* Deletes key; a missing key is not an error. */
int store_batch__del_key(MDB_txn *txn, MDB_dbi dbi, MDB_val *key);

/* ---- transactions and batches (hub_store_batch.c) ------------------------- */

int store_batch__txn_read(hub_store_t *self, MDB_txn **txn);
void store_batch__txn_read_end(hub_store_t *self, MDB_txn *txn);
/* One entry of a store_batch__scan(), the i-th it gives: 1 takes it, 0 stops
 * before it, a HUB_E* code stops with that error. */
typedef int (*store_batch__visit_fn)(hub_store_t *self, MDB_txn *txn, const MDB_val *k,
                                     const MDB_val *v, size_t i, void *ctx);
/* A read (one read transaction) walking dbi in key order from `from`
 * (MDB_SET_RANGE; NULL: the first key), giving visit at most max entries.
 * *n is the number taken, also on an error. Returns 0, the visit's error,
 * or the error that ended the walk. */
int store_batch__scan(hub_store_t *self, MDB_dbi dbi, MDB_val *from, size_t max,
                      store_batch__visit_fn visit, void *ctx, size_t *n);
int store_batch__txn_write(hub_store_t *self, MDB_txn **txn);
/* Commits, or aborts when rc says the work failed; returns the outcome. */
int store_batch__txn_finish(hub_store_t *self, MDB_txn *txn, int rc);
int store_batch__next_seq_get(hub_store_t *self, MDB_txn *txn, uint64_t *next);
int store_batch__next_seq_put(hub_store_t *self, MDB_txn *txn, uint64_t next);
/* Pages holding data in this transaction's view (a child of a batch sees
 * the batch's uncommitted pages). */
int store_batch__used_pages(hub_store_t *self, MDB_txn *txn, uint64_t *out);
/* Pages an item may add: its record and a margin for indexes and splits. */
uint64_t store_batch__item_pages(const hub_store_t *self, size_t rec_len);
/* LMDB copies every page a transaction touches, deletes included: on
 * HUB_EFULL an idempotent batch call is retried in halves, each its own
 * transaction. flags (NULL, or one per seq for one_txn to set) goes along,
 * offset to each half. */
int store_batch__split_on_full(int (*one_txn)(hub_store_t *, const char *, const uint64_t *,
                                              size_t, bool *),
                               hub_store_t *self, const char *arg, const uint64_t *seqs, size_t n,
                               bool *flags);

/* ---- what members hold (hub_store_held.c) --------------------------------- */

/* One held entry a call changes: its value when first read, and the sum of
 * the call's changes. */
typedef struct {
    uint8_t key[HUB__HELD_KEY_MAX];
    size_t key_len;
    bool loaded;           /* base was read from the table */
    hub_store_held_t base; /* the table's value when loaded */
    int64_t d_msgs, d_bytes;
} store__held_entry_t;

/* A call's changes to held, keyed by entry (open addressing). */
typedef struct {
    store__held_entry_t *entries;
    size_t count, cap;
    uint32_t *slots; /* entry index + 1; 0 = empty; n_slots is a power of 2 */
    size_t n_slots;
    bool recount; /* a damaged record went: recount everything at flush */
} store__held_acc_t;

/* The three entries one message changes: its sender's, its receiver's, and
 * the total. */
typedef struct {
    store__held_entry_t *sender, *receiver, *total;
} store__held_trio_t;

int store_held__acc_trio(store__held_acc_t *acc, const char *sender, const char *receiver,
                         store__held_trio_t *out);
void store_held__trio_add(store__held_trio_t *t, int sign, uint32_t envelope_len);
int store_held__entry_load(hub_store_t *self, MDB_txn *txn, store__held_entry_t *e);
hub_store_held_t store_held__entry_now(const store__held_entry_t *e);
/* Counts one message in (+1) or out (-1) of the call's changes. */
int store_held__acc_count(store__held_acc_t *acc, const char *sender, const char *receiver,
                          uint32_t envelope_len, int sign);
/* Writes the call's changes (each changed entry once) when rc is 0; frees
 * acc either way; returns rc or the write's error. */
int store_held__acc_flush(hub_store_t *self, MDB_txn *txn, store__held_acc_t *acc, int rc);
/* Empties held and counts every record in msgs that decodes, in txn. */
int store_held__recount(hub_store_t *self, MDB_txn *txn);
/* Does m pass its quotas, given what its sender and receiver hold? */
hub_store_outcome_t store_held__quota_check(const hub_store_msg_t *m, const hub_store_held_t *s,
                                            const hub_store_held_t *r);
/* Past the reserve line: does the sender, or else the receiver, hold more
 * than half of what all members hold? */
hub_store_outcome_t store_held__reserve_check(const hub_store_held_t *s, const hub_store_held_t *r,
                                              const hub_store_held_t *total);

/* ---- de-duplication (hub_store_dedup.c) ----------------------------------- */

/* Is (sender, id) a duplicate at time `now`? *dup when it is, with
 * *orig_seq; *reused when the stored digest and `digest` are both known
 * and differ. ids: a cursor on self->ids in the append's transaction, left
 * where the id is or would go, so that store_dedup__put of the same id
 * finds its place from there (ids of one sender grow: the same page) instead
 * of searching the index from its root again. */
int store_dedup__check(hub_store_t *self, MDB_cursor *ids, MDB_val *ik, uint64_t now,
                       const uint8_t digest[HUB_STORE_DIGEST_LEN], bool *dup, bool *reused,
                       uint64_t *orig_seq);
/* Writes m's de-duplication record (and its age entry) under seq, through
 * the cursor store_dedup__check used. */
int store_dedup__put(hub_store_t *self, MDB_txn *txn, MDB_cursor *ids, const hub_store_msg_t *m,
                     uint64_t seq);
/* After a message leaves the store for good: a PINNED ids entry that still
 * names it goes too. */
int store_dedup__release(hub_store_t *self, MDB_txn *txn, const store__rec_keys_t *k, uint64_t seq);
/* Lookups by message id follow a replayed message from old_seq to new_seq. */
int store_dedup__move(hub_store_t *self, MDB_txn *txn, const store__rec_keys_t *k, uint64_t old_seq,
                      uint64_t new_seq);

/* ---- queues (hub_store_queue.c) ------------------------------------------- */

void store_queue__rec_keys(const store_codec__rec_view_t *v, store__rec_keys_t *k);
/* Adds the index entries of a queued message whose record is in msgs. */
int store_queue__index(hub_store_t *self, MDB_txn *txn, uint64_t seq, const char *receiver,
                       uint64_t expires_at);
/* Takes a queued message out of its queue: indexes, attempts and depth (the
 * record stays). */
int store_queue__unindex(hub_store_t *self, MDB_txn *txn, uint64_t seq, const store__rec_keys_t *k);
/* Reads a queued message's record and keeps its keys; *found is false when
 * seq is not stored or dead-lettered. */
int store_queue__load(hub_store_t *self, MDB_txn *txn, uint64_t seq, store__rec_keys_t *k,
                      bool *found);
int store_queue__attempts(hub_store_t *self, MDB_txn *txn, MDB_val *sk, uint32_t *out);
/* Fills *out from a record; the envelope into arena when arena is not NULL. */
int store_queue__fill_msg(const store_codec__rec_view_t *v, uint64_t seq, uint32_t attempts,
                          hub_store_msg_t *out, hub_store_arena_t *arena);

#endif
