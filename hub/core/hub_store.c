/* hub_store — see hub_store.h for the contract.
 *
 * Layout: ten named LMDB databases in one environment. Every key that must
 * sort is big-endian, so LMDB's default memcmp order is numeric order.
 *
 *   meta      "format" -> u32 store format; "next_seq" -> u64 next seq;
 *             "store_id" -> 16 random bytes, "created_at" -> u64 µs (format 3)
 *   msgs      seq -> message record (queued and dead-lettered messages)
 *   queue     receiver \0 seq -> ""          per-receiver order
 *   expiry    expires_at seq -> ""           queued messages that can expire
 *   attempts  seq -> u32                     only once attempts > 0
 *   depth     receiver -> u64                queued messages per receiver
 *   ids       sender \0 message_id -> {seq, accepted_at, flags}
 *   age       accepted_at seq -> ids key     ids entries still in their window
 *   dead      seq -> dead header (reason, dead_at, attempts); the record
 *             stays in msgs, so dead-lettering never copies an envelope and
 *             works when the store is full
 *   held      's' sender / 'r' receiver -> {u64 msgs, u64 bytes} what the
 *             member holds in msgs (entries at zero are deleted);
 *             "t" -> the same for all members together (format 2)
 *   requests  message_id -> u64 expires_at, sender \0 receiver \0: queued
 *             requests still waiting for their reply (hub_store_requests_*)
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
 * same transaction, through a held_acc_t that sums a call's changes per
 * member and writes each entry once (a group commit of thousands of
 * envelopes touches a few entries, not thousands).
 *
 * Message record (little-endian integers; 28-byte header, then the bytes):
 *   u8 format(1) u8 id_len u8 sender_len u8 receiver_len u8 service_len
 *   u8[3] 0  u64 accepted_at  u64 expires_at  u32 envelope_len
 *   id sender receiver service envelope
 * Dead header: u8 format(1) u8 reason_len u8[2] 0 u32 attempts
 *   u64 dead_at, reason.
 * A message is queued when msgs has its seq and dead does not.
 *
 * Formats. 1: the layout above without the held table, store_id and
 * created_at (hubd 0.1). 2: adds the held table (quotas). 3: adds store_id
 * and created_at, so that a backup names the store it was taken from and a
 * restore can check it got that store back. Opening an older store
 * upgrades it in place, step by step, in open's one transaction; a format
 * newer than STORE_FORMAT is refused.
 */
#include "hub_store.h"

#include "hub_error.h"
#include "hub_log.h"
#include "hub_wire.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

/* The store's format, in meta "format": 2 added the held table, 3 the
 * store's id and creation time. Records and dead headers carry their own
 * format byte, still 1. */
#define STORE_FORMAT HUB_STORE_FORMAT
#define STORE_FORMAT_OLDEST 1u
#define REC_FORMAT 1u
#define HELD_VAL 16u
#define HELD_KEY_MAX (1 + HUB_STORE_NAME_MAX)
#define REC_HDR 28u
#define DEAD_HDR 16u
#define IDS_VAL 17u
#define IDS_PINNED 0x01u
#define SEQ_KEY 8u
#define PAIR_KEY 16u
#define QKEY_MAX (HUB_STORE_NAME_MAX + 1 + SEQ_KEY)
#define IDKEY_MAX (HUB_STORE_NAME_MAX + 1 + HUB_STORE_ID_MAX)
#define DEFAULT_MAP_BYTES (1ull << 30)
#define PURGE_CHUNK 4096u

struct hub_store {
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
    MDB_txn *batch;        /* the batch's write transaction, or NULL */
    pthread_t batch_owner; /* the thread that began it */
    MDB_txn *batch_read;   /* the owner's read in progress: a child of batch */
    unsigned batch_reads;  /* reads sharing batch_read (nested by a queues callback) */
    int batch_err;         /* what broke the batch: commit returns it */
    uint32_t opened_format; /* the format found on disk at open (0 = new store) */
};

/* A decoded message record; pointers into the record's bytes. */
typedef struct {
    const char *id, *sender, *receiver, *service;
    uint8_t id_len, sender_len, receiver_len, service_len;
    uint64_t accepted_at, expires_at;
    const uint8_t *envelope;
    uint32_t envelope_len;
} rec_view_t;

/* What write paths keep of a record before they modify the database (LMDB
 * may move pages under pointers taken earlier in a write transaction). */
typedef struct {
    char id[HUB_STORE_ID_MAX + 1];
    char sender[HUB_STORE_NAME_MAX + 1];
    char receiver[HUB_STORE_NAME_MAX + 1];
    uint64_t expires_at;
    uint32_t envelope_len;
} rec_keys_t;

/* ---- byte helpers ---------------------------------------------------- */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static MDB_val seq_val(uint8_t buf[SEQ_KEY], uint64_t seq)
{
    put_be64(buf, seq);
    return (MDB_val){SEQ_KEY, buf};
}

static MDB_val pair_val(uint8_t buf[PAIR_KEY], uint64_t hi, uint64_t seq)
{
    put_be64(buf, hi);
    put_be64(buf + 8, seq);
    return (MDB_val){PAIR_KEY, buf};
}

static MDB_val queue_key(uint8_t buf[QKEY_MAX], const char *receiver, uint64_t seq)
{
    size_t len = strlen(receiver);
    memcpy(buf, receiver, len);
    buf[len] = 0;
    put_be64(buf + len + 1, seq);
    return (MDB_val){len + 1 + SEQ_KEY, buf};
}

static MDB_val ids_key(uint8_t buf[IDKEY_MAX], const char *sender, const char *id)
{
    size_t slen = strlen(sender), ilen = strlen(id);
    memcpy(buf, sender, slen);
    buf[slen] = 0;
    memcpy(buf + slen + 1, id, ilen);
    return (MDB_val){slen + 1 + ilen, buf};
}

static MDB_val str_val(const char *s)
{
    return (MDB_val){strlen(s), (void *)s};
}

/* ---- errors ---------------------------------------------------------- */

static int map_rc(int rc)
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

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || err_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

/* ---- records ----------------------------------------------------------- */

static bool no_nul(const char *s, size_t len)
{
    return memchr(s, 0, len) == NULL;
}

static int rec_decode(const MDB_val *v, rec_view_t *out)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < REC_HDR || p[0] != REC_FORMAT)
        return HUB_ESTORE;
    out->id_len = p[1];
    out->sender_len = p[2];
    out->receiver_len = p[3];
    out->service_len = p[4];
    out->accepted_at = get_le64(p + 8);
    out->expires_at = get_le64(p + 16);
    out->envelope_len = get_le32(p + 24);
    uint64_t need = (uint64_t)REC_HDR + out->id_len + out->sender_len + out->receiver_len +
                    out->service_len + out->envelope_len;
    if (need != v->mv_size || out->id_len == 0 || out->id_len > HUB_STORE_ID_MAX ||
        out->sender_len == 0 || out->receiver_len == 0)
        return HUB_ESTORE;
    const char *s = (const char *)p + REC_HDR;
    out->id = s;
    out->sender = s + out->id_len;
    out->receiver = out->sender + out->sender_len;
    out->service = out->receiver + out->receiver_len;
    out->envelope = (const uint8_t *)out->service + out->service_len;
    if (!no_nul(out->id, out->id_len) || !no_nul(out->sender, out->sender_len) ||
        !no_nul(out->receiver, out->receiver_len) || !no_nul(out->service, out->service_len))
        return HUB_ESTORE;
    return 0;
}

static size_t rec_size(const hub_store_msg_t *m)
{
    return REC_HDR + strlen(m->message_id) + strlen(m->sender) + strlen(m->receiver) +
           strlen(m->service) + m->envelope_len;
}

static void rec_encode(uint8_t *p, const hub_store_msg_t *m)
{
    size_t il = strlen(m->message_id), sl = strlen(m->sender), rl = strlen(m->receiver),
           vl = strlen(m->service);
    memset(p, 0, REC_HDR);
    p[0] = REC_FORMAT;
    p[1] = (uint8_t)il;
    p[2] = (uint8_t)sl;
    p[3] = (uint8_t)rl;
    p[4] = (uint8_t)vl;
    put_le64(p + 8, m->accepted_at_us);
    put_le64(p + 16, m->expires_at_us);
    put_le32(p + 24, (uint32_t)m->envelope_len);
    uint8_t *q = p + REC_HDR;
    memcpy(q, m->message_id, il);
    q += il;
    memcpy(q, m->sender, sl);
    q += sl;
    memcpy(q, m->receiver, rl);
    q += rl;
    memcpy(q, m->service, vl);
    q += vl;
    if (m->envelope_len)
        memcpy(q, m->envelope, m->envelope_len);
}

static void copy_str(char *dst, const char *src, size_t len)
{
    memcpy(dst, src, len);
    dst[len] = 0;
}

static void rec_keys(const rec_view_t *v, rec_keys_t *k)
{
    copy_str(k->id, v->id, v->id_len);
    copy_str(k->sender, v->sender, v->sender_len);
    copy_str(k->receiver, v->receiver, v->receiver_len);
    k->expires_at = v->expires_at;
    k->envelope_len = v->envelope_len;
}

typedef struct {
    uint32_t attempts;
    uint64_t dead_at;
    const char *reason;
    uint8_t reason_len;
} dead_view_t;

static int dead_decode(const MDB_val *v, dead_view_t *out)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < DEAD_HDR || p[0] != REC_FORMAT)
        return HUB_ESTORE;
    out->reason_len = p[1];
    out->attempts = get_le32(p + 4);
    out->dead_at = get_le64(p + 8);
    if (v->mv_size != (size_t)DEAD_HDR + out->reason_len || out->reason_len > HUB_STORE_REASON_MAX)
        return HUB_ESTORE;
    out->reason = (const char *)p + DEAD_HDR;
    if (!no_nul(out->reason, out->reason_len))
        return HUB_ESTORE;
    return 0;
}

typedef struct {
    uint64_t seq, accepted_at;
    uint8_t flags;
} ids_rec_t;

static int ids_decode(const MDB_val *v, ids_rec_t *out)
{
    if (v->mv_size != IDS_VAL)
        return HUB_ESTORE;
    const uint8_t *p = v->mv_data;
    out->seq = get_le64(p);
    out->accepted_at = get_le64(p + 8);
    out->flags = p[16];
    return 0;
}

static int ids_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, const ids_rec_t *r)
{
    uint8_t buf[IDS_VAL];
    put_le64(buf, r->seq);
    put_le64(buf + 8, r->accepted_at);
    buf[16] = r->flags;
    MDB_val v = {IDS_VAL, buf};
    return mdb_put(txn, dbi, key, &v, 0);
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

static void *arena_alloc(hub_store_arena_t *a, size_t n)
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
        self->batch_err = map_rc(mrc);
    return map_rc(mrc);
}

/* Read functions pair txn_read() with txn_read_end(), never mdb_txn_abort():
 * on the thread that owns the batch the transaction is a child of it. */
static int txn_read(hub_store_t *self, MDB_txn **txn)
{
    MDB_txn *batch = batch_mine(self);
    if (!batch)
        return map_rc(mdb_txn_begin(self->env, NULL, MDB_RDONLY, txn));
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

static void txn_read_end(hub_store_t *self, MDB_txn *txn)
{
    if (batch_mine(self) && txn == self->batch_read) {
        if (--self->batch_reads > 0)
            return;
        self->batch_read = NULL;
    }
    mdb_txn_abort(txn);
}

/* Write functions pair txn_write() with txn_finish(). On the thread that
 * owns the batch the transaction is a child of it: committing the child
 * moves its changes into the batch, aborting it drops only them. */
static int txn_write(hub_store_t *self, MDB_txn **txn)
{
    MDB_txn *batch = batch_mine(self);
    if (!batch)
        return map_rc(mdb_txn_begin(self->env, NULL, 0, txn));
    if (self->batch_read)
        return HUB_EINVAL; /* a write from a hub_store_queues() callback */
    return batch_child(self, batch, txn);
}

/* Commits, or aborts when rc says the work failed; returns the outcome. */
static int txn_finish(hub_store_t *self, MDB_txn *txn, int rc)
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
        self->batch_err = map_rc(mrc);
    return map_rc(mrc);
}

/* Reads an 8-byte value; a missing key reads as 0 and not found. *out and
 * *found are set on every path, errors included. */
static int get_u64(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, uint64_t *out, bool *found)
{
    *found = false;
    *out = 0;
    MDB_val v;
    int rc = mdb_get(txn, dbi, key, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return map_rc(rc);
    if (v.mv_size != 8)
        return HUB_ESTORE;
    *found = true;
    *out = get_le64(v.mv_data);
    return 0;
}

static int put_u64(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, uint64_t value)
{
    uint8_t buf[8];
    put_le64(buf, value);
    MDB_val v = {8, buf};
    return map_rc(mdb_put(txn, dbi, key, &v, 0));
}

static int has_key(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, bool *found)
{
    MDB_val v;
    int rc = mdb_get(txn, dbi, key, &v);
    *found = rc == 0;
    return rc == MDB_NOTFOUND ? 0 : map_rc(rc);
}

/* Deletes key; a missing key is not an error. */
static int del_key(MDB_txn *txn, MDB_dbi dbi, MDB_val *key)
{
    int rc = mdb_del(txn, dbi, key, NULL);
    return rc == MDB_NOTFOUND ? 0 : map_rc(rc);
}

static int next_seq_get(hub_store_t *self, MDB_txn *txn, uint64_t *next)
{
    MDB_val k = str_val("next_seq");
    bool found;
    int rc = get_u64(txn, self->meta, &k, next, &found);
    if (rc == 0 && (!found || *next == 0))
        rc = HUB_ESTORE; /* written at open */
    return rc;
}

static int next_seq_put(hub_store_t *self, MDB_txn *txn, uint64_t next)
{
    MDB_val k = str_val("next_seq");
    return put_u64(txn, self->meta, &k, next);
}

/* Pages holding data in this transaction's view: every tree, including the
 * free-list's own pages, plus the two meta pages. A child of a batch sees
 * the batch's trees, so its uncommitted pages count. */
static int used_pages(hub_store_t *self, MDB_txn *txn, uint64_t *out)
{
    const MDB_dbi dbis[] = {0,           1,           self->meta, self->msgs,
                            self->queue, self->expiry, self->attempts, self->depth,
                            self->ids,   self->age,   self->dead, self->held};
    uint64_t total = 2;
    for (size_t i = 0; i < sizeof dbis / sizeof dbis[0]; i++) {
        MDB_stat st;
        int rc = mdb_stat(txn, dbis[i], &st);
        if (rc != 0)
            return map_rc(rc);
        total += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    }
    *out = total;
    return 0;
}

/* ---- what members hold -------------------------------------------------- */

/* One held entry a call changes: its value when first read, and the sum of
 * the call's changes. */
typedef struct {
    uint8_t key[HELD_KEY_MAX];
    size_t key_len;
    bool loaded;           /* base was read from the table */
    hub_store_held_t base; /* the table's value when loaded */
    int64_t d_msgs, d_bytes;
} held_entry_t;

/* A call's changes to held, keyed by entry (open addressing). */
typedef struct {
    held_entry_t *entries;
    size_t count, cap;
    uint32_t *slots; /* entry index + 1; 0 = empty; n_slots is a power of 2 */
    size_t n_slots;
    bool recount;    /* a damaged record went: recount everything at flush */
} held_acc_t;

static MDB_val held_key(uint8_t buf[HELD_KEY_MAX], char role, const char *member)
{
    size_t len = strlen(member);
    buf[0] = (uint8_t)role;
    memcpy(buf + 1, member, len);
    return (MDB_val){1 + len, buf};
}

static int held_get(hub_store_t *self, MDB_txn *txn, MDB_val *key, hub_store_held_t *out)
{
    MDB_val v;
    int rc = mdb_get(txn, self->held, key, &v);
    *out = (hub_store_held_t){0, 0};
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return map_rc(rc);
    if (v.mv_size != HELD_VAL)
        return HUB_ESTORE;
    out->msgs = get_le64(v.mv_data);
    out->bytes = get_le64((const uint8_t *)v.mv_data + 8);
    return 0;
}

static int held_put(hub_store_t *self, MDB_txn *txn, MDB_val *key, const hub_store_held_t *h)
{
    if (h->msgs == 0 && h->bytes == 0)
        return del_key(txn, self->held, key);
    uint8_t buf[HELD_VAL];
    put_le64(buf, h->msgs);
    put_le64(buf + 8, h->bytes);
    MDB_val v = {HELD_VAL, buf};
    return map_rc(mdb_put(txn, self->held, key, &v, 0));
}

static void held_acc_free(held_acc_t *acc)
{
    free(acc->entries);
    free(acc->slots);
    *acc = (held_acc_t){0};
}

static uint64_t held_hash(const uint8_t *key, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return h;
}

static int held_acc_grow(held_acc_t *acc)
{
    size_t cap = acc->cap ? acc->cap * 2 : 16, n_slots = cap * 2;
    held_entry_t *entries = realloc(acc->entries, cap * sizeof *entries);
    if (!entries)
        return HUB_ENOMEM;
    acc->entries = entries;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return HUB_ENOMEM;
    for (size_t i = 0; i < acc->count; i++) {
        size_t j = held_hash(entries[i].key, entries[i].key_len) & (n_slots - 1);
        while (slots[j])
            j = (j + 1) & (n_slots - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    free(acc->slots);
    acc->slots = slots;
    acc->n_slots = n_slots;
    acc->cap = cap;
    return 0;
}

/* The call's entry for (role, member), created unloaded at zero change;
 * NULL when out of memory. */
static held_entry_t *held_acc_entry(held_acc_t *acc, char role, const char *member)
{
    uint8_t kb[HELD_KEY_MAX];
    MDB_val k = held_key(kb, role, member);
    uint64_t hash = held_hash(kb, k.mv_size);
    size_t j = 0;
    if (acc->n_slots) {
        j = hash & (acc->n_slots - 1);
        while (acc->slots[j]) {
            held_entry_t *e = &acc->entries[acc->slots[j] - 1];
            if (e->key_len == k.mv_size && !memcmp(e->key, kb, k.mv_size))
                return e;
            j = (j + 1) & (acc->n_slots - 1);
        }
    }
    if (acc->count == acc->cap) {
        /* Growing moves the entries: pointers to them taken before go stale. */
        if (held_acc_grow(acc) != 0)
            return NULL;
        j = hash & (acc->n_slots - 1);
        while (acc->slots[j])
            j = (j + 1) & (acc->n_slots - 1);
    }
    held_entry_t *e = &acc->entries[acc->count];
    memset(e, 0, sizeof *e);
    memcpy(e->key, kb, k.mv_size);
    e->key_len = k.mv_size;
    acc->slots[j] = (uint32_t)++acc->count;
    return e;
}

static int held_entry_load(hub_store_t *self, MDB_txn *txn, held_entry_t *e)
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
static hub_store_held_t held_entry_now(const held_entry_t *e)
{
    hub_store_held_t h = e->base;
    h.msgs = e->d_msgs < 0 && (uint64_t)-e->d_msgs > h.msgs ? 0 : h.msgs + (uint64_t)e->d_msgs;
    h.bytes =
        e->d_bytes < 0 && (uint64_t)-e->d_bytes > h.bytes ? 0 : h.bytes + (uint64_t)e->d_bytes;
    return h;
}

/* The three entries one message changes: its sender's, its receiver's, and
 * the total. */
typedef struct {
    held_entry_t *sender, *receiver, *total;
} held_trio_t;

static int held_acc_trio(held_acc_t *acc, const char *sender, const char *receiver,
                         held_trio_t *out)
{
    out->sender = held_acc_entry(acc, 's', sender);
    out->receiver = out->sender ? held_acc_entry(acc, 'r', receiver) : NULL;
    out->total = out->receiver ? held_acc_entry(acc, 't', "") : NULL;
    /* Entries may move when the table grows: look them up again. */
    if (out->total) {
        out->sender = held_acc_entry(acc, 's', sender);
        out->receiver = held_acc_entry(acc, 'r', receiver);
    }
    return out->total ? 0 : HUB_ENOMEM;
}

static void held_trio_add(held_trio_t *t, int sign, uint32_t envelope_len)
{
    held_entry_t *es[3] = {t->sender, t->receiver, t->total};
    for (int i = 0; i < 3; i++) {
        es[i]->d_msgs += sign;
        es[i]->d_bytes += sign * (int64_t)envelope_len;
    }
}

/* Counts one message in or out of the call's changes. */
static int held_acc_count(held_acc_t *acc, const char *sender, const char *receiver,
                          uint32_t envelope_len, int sign)
{
    held_trio_t t;
    int rc = held_acc_trio(acc, sender, receiver, &t);
    if (rc == 0)
        held_trio_add(&t, sign, envelope_len);
    return rc;
}

/* Empties held and counts every record in msgs that decodes, in txn. */
static int held_recount(hub_store_t *self, MDB_txn *txn)
{
    held_acc_t acc = {0};
    int rc = map_rc(mdb_drop(txn, self->held, 0));
    MDB_cursor *c = NULL;
    if (rc == 0)
        rc = map_rc(mdb_cursor_open(txn, self->msgs, &c));
    MDB_val k, v;
    int mrc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        rec_view_t view;
        char sender[HUB_STORE_NAME_MAX + 1], receiver[HUB_STORE_NAME_MAX + 1];
        if (rec_decode(&v, &view) == 0) {
            copy_str(sender, view.sender, view.sender_len);
            copy_str(receiver, view.receiver, view.receiver_len);
            rc = held_acc_count(&acc, sender, receiver, view.envelope_len, +1);
        }
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (c)
        mdb_cursor_close(c);
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = map_rc(mrc);
    for (size_t i = 0; rc == 0 && i < acc.count; i++) {
        held_entry_t *e = &acc.entries[i];
        MDB_val hk = {e->key_len, e->key};
        hub_store_held_t h = {(uint64_t)e->d_msgs, (uint64_t)e->d_bytes};
        rc = held_put(self, txn, &hk, &h);
    }
    held_acc_free(&acc);
    return rc;
}

/* Writes the call's changes: each changed entry once. Frees acc. */
static int held_acc_flush(hub_store_t *self, MDB_txn *txn, held_acc_t *acc, int rc)
{
    if (rc == 0 && acc->recount)
        rc = held_recount(self, txn);
    for (size_t i = 0; rc == 0 && !acc->recount && i < acc->count; i++) {
        held_entry_t *e = &acc->entries[i];
        if (e->d_msgs == 0 && e->d_bytes == 0)
            continue;
        rc = held_entry_load(self, txn, e);
        if (rc != 0)
            break;
        hub_store_held_t now = held_entry_now(e);
        MDB_val k = {e->key_len, e->key};
        rc = held_put(self, txn, &k, &now);
    }
    held_acc_free(acc);
    return rc;
}

/* Upgrades a format-1 store to format 2 inside open's transaction: counts
 * what each member holds (one scan of msgs) and records the new format.
 * Kept apart so that a general format-upgrade step can call it. */
static int upgrade_format_1_to_2(hub_store_t *self, MDB_txn *txn)
{
    int rc = held_recount(self, txn);
    if (rc == 0) {
        uint8_t fb[4];
        put_le32(fb, 2);
        MDB_val fk = str_val("format"), fv = {4, fb};
        rc = map_rc(mdb_put(txn, self->meta, &fk, &fv, 0));
    }
    return rc;
}

/* Changes a receiver's depth by +1 or -1, deleting the entry at zero. */
static int depth_add(hub_store_t *self, MDB_txn *txn, const char *receiver, int delta)
{
    MDB_val k = str_val(receiver);
    uint64_t depth;
    bool found;
    int rc = get_u64(txn, self->depth, &k, &depth, &found);
    if (rc != 0)
        return rc;
    if (delta > 0)
        return put_u64(txn, self->depth, &k, depth + 1);
    if (depth <= 1)
        return found ? del_key(txn, self->depth, &k) : 0;
    return put_u64(txn, self->depth, &k, depth - 1);
}

/* Adds the index entries of a queued message whose record is in msgs. */
static int index_queued(hub_store_t *self, MDB_txn *txn, uint64_t seq, const char *receiver,
                        uint64_t expires_at)
{
    uint8_t qb[QKEY_MAX], eb[PAIR_KEY];
    MDB_val empty = {0, NULL};
    MDB_val qk = queue_key(qb, receiver, seq);
    int rc = mdb_put(txn, self->queue, &qk, &empty, 0);
    if (rc == 0 && expires_at != 0) {
        MDB_val ek = pair_val(eb, expires_at, seq);
        rc = mdb_put(txn, self->expiry, &ek, &empty, 0);
    }
    if (rc != 0)
        return map_rc(rc);
    return depth_add(self, txn, receiver, +1);
}

/* Takes a queued message out of its queue: indexes, attempts and depth (the
 * record stays). */
static int unqueue(hub_store_t *self, MDB_txn *txn, uint64_t seq, const rec_keys_t *k)
{
    uint8_t sb[SEQ_KEY], qb[QKEY_MAX], eb[PAIR_KEY];
    MDB_val sk = seq_val(sb, seq), qk = queue_key(qb, k->receiver, seq);
    int rc = del_key(txn, self->attempts, &sk);
    if (rc == 0)
        rc = del_key(txn, self->queue, &qk);
    if (rc == 0 && k->expires_at != 0) {
        MDB_val ek = pair_val(eb, k->expires_at, seq);
        rc = del_key(txn, self->expiry, &ek);
    }
    if (rc == 0)
        rc = depth_add(self, txn, k->receiver, -1);
    return rc;
}

/* Removes a queued message: its record too. */
static int remove_queued(hub_store_t *self, MDB_txn *txn, uint64_t seq, const rec_keys_t *k)
{
    uint8_t sb[SEQ_KEY];
    MDB_val sk = seq_val(sb, seq);
    int rc = del_key(txn, self->msgs, &sk);
    return rc == 0 ? unqueue(self, txn, seq, k) : rc;
}

/* After a message leaves the store for good: a PINNED ids entry (window
 * over, kept only for lookups) that still names it goes too. */
static int ids_release(hub_store_t *self, MDB_txn *txn, const rec_keys_t *k, uint64_t seq)
{
    uint8_t ib[IDKEY_MAX];
    MDB_val ik = ids_key(ib, k->sender, k->id), v;
    int rc = mdb_get(txn, self->ids, &ik, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return map_rc(rc);
    ids_rec_t r;
    if (ids_decode(&v, &r) != 0)
        return del_key(txn, self->ids, &ik); /* unreadable: nothing to keep */
    if (r.seq == seq && (r.flags & IDS_PINNED))
        return del_key(txn, self->ids, &ik);
    return 0;
}

/* Is seq queued (stored and not dead-lettered)? Does not read the record. */
static int is_queued(hub_store_t *self, MDB_txn *txn, MDB_val *sk, bool *queued)
{
    bool stored, dead = false;
    int rc = has_key(txn, self->msgs, sk, &stored);
    if (rc == 0 && stored)
        rc = has_key(txn, self->dead, sk, &dead);
    *queued = rc == 0 && stored && !dead;
    return rc;
}

/* Reads a queued message's record and keeps its keys. */
static int load_queued(hub_store_t *self, MDB_txn *txn, uint64_t seq, rec_keys_t *k, bool *found)
{
    uint8_t sb[SEQ_KEY];
    MDB_val sk = seq_val(sb, seq), v;
    int rc = mdb_get(txn, self->msgs, &sk, &v);
    *found = false;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return map_rc(rc);
    rec_view_t view;
    if (rec_decode(&v, &view) != 0)
        return HUB_ESTORE;
    rec_keys(&view, k);
    bool dead;
    rc = has_key(txn, self->dead, &sk, &dead);
    *found = rc == 0 && !dead;
    return rc;
}

/* ---- argument checks ---------------------------------------------------- */

/* A NUL-terminated string of 1..max bytes (0..max when may_be_empty). */
static bool str_ok(const char *s, size_t max, bool may_be_empty)
{
    if (!s)
        return false;
    size_t len = strnlen(s, max + 1);
    return len <= max && (may_be_empty || len > 0);
}

static int msg_check(const hub_store_msg_t *m)
{
    if (!str_ok(m->message_id, HUB_STORE_ID_MAX, false) ||
        !str_ok(m->sender, HUB_STORE_NAME_MAX, false) ||
        !str_ok(m->receiver, HUB_STORE_NAME_MAX, false) ||
        !str_ok(m->service, HUB_STORE_NAME_MAX, true))
        return HUB_EINVAL;
    if (m->envelope_len > UINT32_MAX || (m->envelope_len && !m->envelope))
        return HUB_EINVAL;
    return 0;
}

/* ---- open and close ------------------------------------------------------ */

static int mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

/* The names this module keeps in LMDB's main database. */
static const char *const db_names[] = {"meta", "msgs", "queue", "expiry", "attempts", "depth",
                                       "ids",  "age",  "dead",  "held",   "requests"};

static bool known_db(const MDB_val *k)
{
    for (size_t i = 0; i < sizeof db_names / sizeof db_names[0]; i++)
        if (k->mv_size == strlen(db_names[i]) && !memcmp(k->mv_data, db_names[i], k->mv_size))
            return true;
    return false;
}

static int last_seq(MDB_txn *txn, MDB_dbi dbi, uint64_t *out)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc != 0)
        return map_rc(rc);
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    *out = 0;
    if (rc == 0 && k.mv_size != SEQ_KEY)
        rc = MDB_CORRUPTED;
    else if (rc == 0)
        *out = get_be64(k.mv_data);
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : map_rc(rc);
}

/* Opens (creating) the databases and checks the format; in one txn. */
static int open_dbs(hub_store_t *self, const char *dir, char *err, size_t err_size)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc != 0) {
        set_err(err, err_size, "store %s: cannot start a transaction: %s", dir, mdb_strerror(rc));
        return map_rc(rc);
    }
    /* A valid LMDB file that some other program wrote has other names in
     * its main database; refuse it rather than mix our data into it. */
    MDB_dbi main_dbi;
    MDB_cursor *c = NULL;
    rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (rc == 0)
        rc = mdb_cursor_open(txn, main_dbi, &c);
    MDB_val k, v;
    bool foreign = false;
    while (rc == 0 && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0)
        foreign |= !known_db(&k);
    if (c)
        mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND || foreign) {
        mdb_txn_abort(txn);
        set_err(err, err_size,
                "store %s: data.mdb is %s: move %s aside and restart to begin with an empty "
                "store, or restore it from backup",
                dir, foreign ? "an LMDB file but not a Liên Thông Hub store" : mdb_strerror(rc),
                dir);
        return HUB_ESTORE;
    }
    MDB_dbi *dbis[] = {&self->meta,  &self->msgs, &self->queue, &self->expiry,
                       &self->attempts, &self->depth, &self->ids, &self->age,
                       &self->dead,  &self->held, &self->requests};
    rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof dbis / sizeof dbis[0]; i++)
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, dbis[i]);
    if (rc != 0) {
        mdb_txn_abort(txn);
        set_err(err, err_size,
                "store %s: cannot open its tables (%s): move %s aside and restart to begin with "
                "an empty store, or restore it from backup",
                dir, mdb_strerror(rc), dir);
        return map_rc(rc) == HUB_EFULL ? HUB_EFULL : HUB_ESTORE;
    }

    MDB_val fk = str_val("format");
    rc = mdb_get(txn, self->meta, &fk, &v);
    uint64_t last_msg = 0, last_dead = 0, next = 0;
    bool found = false;
    int hrc = 0;
    uint32_t format = 0;
    if (rc == 0) {
        format = v.mv_size == 4 ? get_le32(v.mv_data) : 0;
        if (format < STORE_FORMAT_OLDEST || format > STORE_FORMAT) {
            mdb_txn_abort(txn);
            if (format > STORE_FORMAT)
                set_err(err, err_size,
                        "store %s: written in store format %u by a newer hubd; this hubd reads "
                        "formats %u to %u: install the newer hubd again, or restore the backup "
                        "taken before the upgrade with 'hubctl restore BACKUP-DIR'",
                        dir, format, STORE_FORMAT_OLDEST, STORE_FORMAT);
            else
                set_err(err, err_size,
                        "store %s: its format record is damaged: move %s aside and restart to "
                        "begin with an empty store, or restore it from backup",
                        dir, dir);
            return HUB_ESTORE;
        }
        rc = 0;
        if (format == 1) {
            hrc = upgrade_format_1_to_2(self, txn);
            if (hrc != 0) {
                mdb_txn_abort(txn);
                set_err(err, err_size,
                        "store %s: cannot upgrade it from store format 1 to %u (%s): make room "
                        "on the disk and restart, or run the previous hubd version",
                        dir, STORE_FORMAT, hub_strerror(hrc));
                return hrc == HUB_EFULL || hrc == HUB_ENOMEM ? hrc : HUB_ESTORE;
            }
        }
        if (format < STORE_FORMAT)
            self->upgraded_from = format;
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
    self->opened_format = format;
    /* A new store, or an upgrade from an older format: the records format
     * 3 added, then the format itself, in this one transaction. */
    if (rc == 0 && format < STORE_FORMAT) {
        uint8_t id[16], at[8], fb[4];
        if (getrandom(id, sizeof id, 0) != (ssize_t)sizeof id) {
            mdb_txn_abort(txn);
            set_err(err, err_size, "store %s: no random bytes for its id: %s", dir,
                    strerror(errno));
            return HUB_EIO;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        put_le64(at, (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
        put_le32(fb, STORE_FORMAT);
        MDB_val ik = str_val("store_id"), iv = {sizeof id, id};
        MDB_val ak = str_val("created_at"), av = {sizeof at, at};
        MDB_val fv = {sizeof fb, fb};
        rc = mdb_put(txn, self->meta, &ik, &iv, 0);
        if (rc == 0)
            rc = mdb_put(txn, self->meta, &ak, &av, 0);
        if (rc == 0)
            rc = mdb_put(txn, self->meta, &fk, &fv, 0);
    }
    if (rc == 0) {
        MDB_val nk = str_val("next_seq");
        hrc = get_u64(txn, self->meta, &nk, &next, &found);
        if (hrc == 0)
            hrc = last_seq(txn, self->msgs, &last_msg);
        if (hrc == 0)
            hrc = last_seq(txn, self->dead, &last_dead);
        /* next_seq is written with every seq handed out; if it is missing
         * while messages exist, or behind them, seqs could be reused. */
        if (hrc == 0 && (found ? next == 0 || next <= last_msg || next <= last_dead
                               : last_msg != 0 || last_dead != 0))
            hrc = HUB_ESTORE;
        if (hrc == 0 && !found)
            hrc = put_u64(txn, self->meta, &nk, 1);
    }
    if (rc != 0 || hrc != 0) {
        mdb_txn_abort(txn);
        int code = rc != 0 ? map_rc(rc) : hrc;
        set_err(err, err_size,
                "store %s: its sequence counter is %s: move %s aside and restart to begin "
                "with an empty store, or restore it from backup",
                dir, rc != 0 ? mdb_strerror(rc) : "missing or behind the stored messages", dir);
        return code == HUB_EFULL || code == HUB_ENOMEM || code == HUB_EPERM ? code : HUB_ESTORE;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        set_err(err, err_size, "store %s: cannot write its header: %s", dir, mdb_strerror(rc));
        return map_rc(rc);
    }
    return 0; /* hub_server logs an upgrade (hub_store_upgraded_from) */
}

/* The files hold personal data: make sure group and others cannot read them,
 * even when they were created by an older build or restored from backup. */
static void tighten_mode(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        (void)chmod(path, st.st_mode & 0700);
}

int hub_store_open(const char *dir, const hub_store_limits_t *limits, hub_store_t **out,
                   char *err, size_t err_size)
{
    if (out)
        *out = NULL;
    if (!dir || !*dir || !out || strlen(dir) > PATH_MAX - 16) {
        set_err(err, err_size, "store: no directory given, or its path is too long");
        return HUB_EINVAL;
    }
    int e = mkdir_p(dir);
    if (e != 0) {
        set_err(err, err_size, "store %s: cannot create the directory: %s%s", dir, strerror(e),
                e == EACCES ? " (check the permissions of its parent)" : "");
        return e == EACCES || e == EPERM || e == EROFS ? HUB_EPERM : HUB_EIO;
    }
    struct stat dir_st;
    if (stat(dir, &dir_st) != 0 || !S_ISDIR(dir_st.st_mode)) {
        set_err(err, err_size, "store %s: exists but is not a directory: give a directory", dir);
        return HUB_EINVAL;
    }
    hub_store_t *self = calloc(1, sizeof *self);
    if (!self || pthread_mutex_init(&self->batch_lock, NULL) != 0) {
        free(self);
        set_err(err, err_size, "store %s: out of memory", dir);
        return HUB_ENOMEM;
    }
    if (limits)
        self->limits = *limits;
    if (self->limits.reserve_percent > 50) {
        set_err(err, err_size,
                "store %s: reserve_percent is %u; give 0 (no reserve) to 50 percent of the store",
                dir, self->limits.reserve_percent);
        hub_store_close(&self);
        return HUB_EINVAL;
    }
    uint64_t map = self->limits.max_bytes ? self->limits.max_bytes : DEFAULT_MAP_BYTES;
    if (map > SIZE_MAX) {
        hub_store_close(&self);
        set_err(err, err_size, "store %s: max_bytes is larger than this machine can map", dir);
        return HUB_EINVAL;
    }

    int rc = mdb_env_create(&self->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(self->env, 16);
    if (rc == 0)
        rc = mdb_env_set_mapsize(self->env, (size_t)map);
    if (rc != 0) {
        set_err(err, err_size, "store %s: cannot set up LMDB: %s", dir, mdb_strerror(rc));
        hub_store_close(&self);
        return map_rc(rc);
    }
    /* MDB_NOTLS: read transactions are not tied to a thread, so the loop
     * thread can read while the worker thread writes. No MDB_NOSYNC: an
     * append is durable when it returns. */
    rc = mdb_env_open(self->env, dir, MDB_NOTLS, 0600);
    if (rc != 0) {
        int code = map_rc(rc);
        if (code == HUB_EPERM)
            set_err(err, err_size,
                    "store %s: %s: make the directory and its files owned and writable by the "
                    "user that runs hubd (directory 0700, files 0600)",
                    dir, mdb_strerror(rc));
        else if (code == HUB_ENOMEM || code == HUB_EFULL)
            set_err(err, err_size, "store %s: cannot map the store: %s", dir, mdb_strerror(rc));
        else {
            code = HUB_ESTORE;
            set_err(err, err_size,
                    "store %s: data.mdb is corrupt, not an LMDB file, from another LMDB "
                    "version, or unreadable (%s): move %s aside and restart to begin with an "
                    "empty store, or restore it from backup",
                    dir, mdb_strerror(rc), dir);
        }
        hub_store_close(&self);
        return code;
    }
    tighten_mode(dir, "data.mdb");
    tighten_mode(dir, "lock.mdb");

    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(self->env, &info);
    mdb_env_stat(self->env, &st);
    self->page_size = st.ms_psize;
    self->map_bytes = info.me_mapsize;
    self->limit_pages = self->map_bytes / self->page_size / 10 * 9;
    self->reserve_pages =
        self->map_bytes / self->page_size * (90 - self->limits.reserve_percent) / 100;
    if (self->limits.reserve_percent == 0 || self->reserve_pages > self->limit_pages)
        self->reserve_pages = self->limit_pages;

    rc = open_dbs(self, dir, err, err_size);
    if (rc != 0) {
        hub_store_close(&self);
        return rc;
    }
    *out = self;
    return 0;
}

uint32_t hub_store_upgraded_from(const hub_store_t *self)
{
    return self ? self->upgraded_from : 0;
}

void hub_store_close(hub_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_store_t *self = *self_p;
    if (self->batch)
        mdb_txn_abort(self->batch); /* and its child, if a read is in progress */
    if (self->env)
        mdb_env_close(self->env);
    pthread_mutex_destroy(&self->batch_lock);
    free(self);
    *self_p = NULL;
}

uint32_t hub_store_opened_format(const hub_store_t *self)
{
    return self ? self->opened_format : 0;
}

static void info_fill(MDB_txn *txn, MDB_dbi meta, hub_store_info_t *out)
{
    MDB_val k = str_val("format"), v;
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 4)
        out->format = get_le32(v.mv_data);
    k = str_val("store_id");
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 16) {
        static const char hex[] = "0123456789abcdef";
        const uint8_t *b = v.mv_data;
        for (size_t i = 0; i < 16; i++) {
            out->store_id[2 * i] = hex[b[i] >> 4];
            out->store_id[2 * i + 1] = hex[b[i] & 15];
        }
        out->store_id[32] = '\0';
    }
    k = str_val("created_at");
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 8)
        out->created_at_us = get_le64(v.mv_data);
    k = str_val("next_seq");
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 8)
        out->next_seq = get_le64(v.mv_data);
}

/* Opens dir's environment read-only, from any process, while hubd may run
 * (LMDB's readers share the lock file with the writer). */
static int env_open_rdonly(const char *dir, unsigned flags, MDB_env **env, char *err,
                           size_t err_size)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path) {
        set_err(err, err_size, "store %s: path too long", dir);
        return HUB_EINVAL;
    }
    if (stat(path, &st) != 0) {
        int e = errno;
        set_err(err, err_size, "store %s: no data.mdb (%s)", dir, strerror(e));
        return e == ENOENT ? HUB_ENOENT : e == EACCES ? HUB_EPERM : HUB_EIO;
    }
    int rc = mdb_env_create(env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(*env, 16);
    if (rc == 0)
        rc = mdb_env_open(*env, dir, MDB_RDONLY | MDB_NOTLS | flags, 0600);
    if (rc != 0) {
        int code = map_rc(rc);
        set_err(err, err_size, "store %s: cannot open it read-only: %s%s", dir, mdb_strerror(rc),
                code == HUB_EPERM ? " (run as root or as the user that runs hubd)" : "");
        if (*env)
            mdb_env_close(*env);
        *env = NULL;
        return code == HUB_EPERM ? code : HUB_ESTORE;
    }
    return 0;
}

static int inspect_env(MDB_env *env, const char *dir, hub_store_info_t *out, char *err,
                       size_t err_size)
{
    MDB_txn *txn = NULL;
    MDB_dbi meta, msgs, dead;
    memset(out, 0, sizeof *out);
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        txn = NULL;
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "msgs", 0, &msgs);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "dead", 0, &dead);
    if (rc != 0) {
        if (txn)
            mdb_txn_abort(txn);
        set_err(err, err_size, "store %s: not a Liên Thông Hub store (%s)", dir, mdb_strerror(rc));
        return HUB_ESTORE;
    }
    info_fill(txn, meta, out);
    MDB_stat ms, ds;
    if (mdb_stat(txn, msgs, &ms) == 0 && mdb_stat(txn, dead, &ds) == 0) {
        out->messages = ms.ms_entries - (ms.ms_entries >= ds.ms_entries ? ds.ms_entries : 0);
        out->dead = ds.ms_entries;
    }
    mdb_txn_abort(txn);
    if (out->format < STORE_FORMAT_OLDEST || out->format > STORE_FORMAT) {
        set_err(err, err_size,
                "store %s: store format %u; this hubd reads formats %u to %u: install the hubd "
                "that wrote it, or restore a backup taken with this version",
                dir, out->format, STORE_FORMAT_OLDEST, STORE_FORMAT);
        return HUB_ESTORE;
    }
    return 0;
}

int hub_store_inspect(const char *dir, hub_store_info_t *out, char *err, size_t err_size)
{
    MDB_env *env = NULL;
    memset(out, 0, sizeof *out);
    int rc = env_open_rdonly(dir, 0, &env, err, err_size);
    if (rc != 0)
        return rc;
    rc = inspect_env(env, dir, out, err, err_size);
    mdb_env_close(env);
    return rc;
}

int hub_store_backup(const char *dir, const char *dest_dir, hub_store_info_t *out, char *err,
                     size_t err_size)
{
    MDB_env *env = NULL;
    memset(out, 0, sizeof *out);
    int rc = env_open_rdonly(dir, 0, &env, err, err_size);
    if (rc != 0)
        return rc;
    rc = inspect_env(env, dir, out, err, err_size); /* a store of a known format */
    if (rc == 0) {
        int e = mkdir_p(dest_dir);
        if (e != 0) {
            set_err(err, err_size, "backup %s: cannot create it: %s", dest_dir, strerror(e));
            rc = e == EACCES || e == EPERM || e == EROFS ? HUB_EPERM : HUB_EIO;
        }
    }
    if (rc == 0) {
        /* One read transaction: a consistent snapshot while hubd writes;
         * compacting drops free pages, so the copy is as small as the data. */
        int mrc = mdb_env_copy2(env, dest_dir, MDB_CP_COMPACT);
        if (mrc != 0) {
            set_err(err, err_size, "backup of store %s into %s failed: %s", dir, dest_dir,
                    mdb_strerror(mrc));
            rc = map_rc(mrc) == HUB_ESTORE ? HUB_EIO : map_rc(mrc);
        }
    }
    mdb_env_close(env);
    if (rc != 0)
        return rc;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/data.mdb", dest_dir);
    (void)chmod(path, 0600);
    /* What the copy holds, read from the copy itself (without a lock file:
     * nothing else opens it): the snapshot is later than any look at the
     * source, and the manifest must describe exactly this. */
    rc = env_open_rdonly(dest_dir, MDB_NOLOCK, &env, err, err_size);
    if (rc == 0) {
        rc = inspect_env(env, dest_dir, out, err, err_size);
        mdb_env_close(env);
    }
    return rc;
}

/* ---- batches --------------------------------------------------------- */

int hub_store_batch_begin(hub_store_t *self)
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
    int rc = map_rc(mdb_txn_begin(self->env, NULL, 0, &txn));
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

int hub_store_batch_commit(hub_store_t *self)
{
    MDB_txn *batch = batch_take(self);
    if (!batch)
        return HUB_EINVAL;
    if (self->batch_err != 0) {
        mdb_txn_abort(batch);
        return self->batch_err;
    }
    return map_rc(mdb_txn_commit(batch));
}

void hub_store_batch_abort(hub_store_t *self)
{
    MDB_txn *batch = batch_take(self);
    if (batch)
        mdb_txn_abort(batch);
}

/* ---- append ---------------------------------------------------------- */

/* Pages an item may add: its record (in overflow pages when large) and a
 * margin for index entries and page splits. */
static uint64_t item_pages(const hub_store_t *self, size_t rec_len)
{
    return (rec_len + 512 + self->page_size - 1) / self->page_size + 2;
}

/* Is (sender, id) a duplicate at time `now`? Sets *orig_seq when it is. */
static int dedup_check(hub_store_t *self, MDB_txn *txn, MDB_val *ik, uint64_t now, bool *dup,
                       uint64_t *orig_seq)
{
    *dup = false;
    if (self->limits.dedup_window_us == 0)
        return 0;
    MDB_val v;
    int rc = mdb_get(txn, self->ids, ik, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return map_rc(rc);
    ids_rec_t r;
    if (ids_decode(&v, &r) != 0)
        return 0; /* unreadable: treat as unknown; the append overwrites it */
    /* A clock that went backwards counts as "within the window". */
    if (now < r.accepted_at || now - r.accepted_at < self->limits.dedup_window_us) {
        *dup = true;
        *orig_seq = r.seq;
    }
    return 0;
}

static int append_one(hub_store_t *self, MDB_txn *txn, hub_store_msg_t *m, uint64_t seq)
{
    uint8_t sb[SEQ_KEY], ib[IDKEY_MAX], ab[PAIR_KEY];
    MDB_val sk = seq_val(sb, seq);
    MDB_val rv = {rec_size(m), NULL};
    int rc;
    if (m->settled)
        goto ids; /* handled already: nothing to queue */
    /* Seqs almost always grow: MDB_APPEND fills pages instead of splitting
     * them in half, which halves the pages an append writes. A preset seq
     * below the last one (a replay got a later seq meanwhile) is put the
     * ordinary way. */
    rc = mdb_put(txn, self->msgs, &sk, &rv, MDB_APPEND | MDB_RESERVE);
    if (rc == MDB_KEYEXIST)
        rc = mdb_put(txn, self->msgs, &sk, &rv, MDB_NOOVERWRITE | MDB_RESERVE);
    if (rc == MDB_KEYEXIST)
        return HUB_ESTORE; /* the counter is behind the data */
    if (rc != 0)
        return map_rc(rc);
    rec_encode(rv.mv_data, m);
    int hrc = index_queued(self, txn, seq, m->receiver, m->expires_at_us);
    if (hrc != 0)
        return hrc;
ids:;
    MDB_val ik = ids_key(ib, m->sender, m->message_id);
    ids_rec_t r = {seq, m->accepted_at_us, 0};
    rc = ids_put(txn, self->ids, &ik, &r);
    if (rc == 0) {
        MDB_val ak = pair_val(ab, m->accepted_at_us, seq);
        rc = mdb_put(txn, self->age, &ak, &ik, 0);
    }
    return map_rc(rc);
}

/* Does m pass its quotas, given what its sender and receiver hold with the
 * call's earlier items? HUB_STORE_OK or the QUOTA outcome. */
static hub_store_outcome_t quota_check(const hub_store_msg_t *m, const hub_store_held_t *s,
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
static hub_store_outcome_t reserve_check(const hub_store_held_t *s, const hub_store_held_t *r,
                                         const hub_store_held_t *total)
{
    /* x > total / 2 (rounded down) is 2x > total, without overflow. */
    if (s->bytes > total->bytes / 2)
        return HUB_STORE_QUOTA_SENDER;
    if (r->bytes > total->bytes / 2)
        return HUB_STORE_QUOTA_RECEIVER;
    return HUB_STORE_OK;
}

int hub_store_append(hub_store_t *self, hub_store_msg_t *msgs, size_t n,
                     hub_store_outcome_t *outcomes)
{
    if (!self || (n && (!msgs || !outcomes)))
        return HUB_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (msg_check(&msgs[i]) != 0)
            return HUB_EINVAL;
    if (n == 0)
        return 0;

    uint64_t now = hub_now_us();
    MDB_txn *txn;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    uint64_t next, used;
    rc = next_seq_get(self, txn, &next);
    if (rc == 0)
        rc = used_pages(self, txn, &used);
    bool stored = false;
    uint64_t floor = next; /* past every preset seq of this call, stored or not */
    held_acc_t acc = {0};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        hub_store_msg_t *m = &msgs[i];
        if (m->preset_seq >= floor)
            floor = m->preset_seq + 1;
        if (m->accepted_at_us == 0)
            m->accepted_at_us = now;
        uint8_t ib[IDKEY_MAX];
        MDB_val ik = ids_key(ib, m->sender, m->message_id);
        bool dup;
        uint64_t orig = 0;
        rc = dedup_check(self, txn, &ik, m->accepted_at_us, &dup, &orig);
        if (rc != 0)
            break;
        if (dup) {
            outcomes[i] = HUB_STORE_DUPLICATE;
            m->seq = orig;
            continue;
        }
        m->seq = 0;
        if (self->limits.max_queue_depth && !m->settled) {
            MDB_val dk = str_val(m->receiver);
            uint64_t depth;
            bool found;
            rc = get_u64(txn, self->depth, &dk, &depth, &found);
            if (rc != 0)
                break;
            if (depth >= self->limits.max_queue_depth) {
                outcomes[i] = HUB_STORE_QUEUE_FULL;
                continue;
            }
        }
        /* What the sender and receiver hold, this call's earlier items
         * included: read once per member and call, then kept in acc. */
        held_trio_t held = {0};
        hub_store_held_t s_held = {0, 0}, r_held = {0, 0}, total = {0, 0};
        if (!m->settled) {
            rc = held_acc_trio(&acc, m->sender, m->receiver, &held);
            if (rc == 0)
                rc = held_entry_load(self, txn, held.sender);
            if (rc == 0)
                rc = held_entry_load(self, txn, held.receiver);
            if (rc == 0)
                rc = held_entry_load(self, txn, held.total);
            if (rc != 0)
                break;
            s_held = held_entry_now(held.sender);
            r_held = held_entry_now(held.receiver);
            total = held_entry_now(held.total);
            hub_store_outcome_t quota = quota_check(m, &s_held, &r_held);
            if (quota != HUB_STORE_OK) {
                outcomes[i] = quota;
                continue;
            }
        }
        uint64_t need = used + item_pages(self, rec_size(m));
        if (need > self->limit_pages) {
            outcomes[i] = HUB_STORE_FULL;
            continue;
        }
        if (!m->settled && need > self->reserve_pages) {
            hub_store_outcome_t reserve = reserve_check(&s_held, &r_held, &total);
            if (reserve != HUB_STORE_OK) {
                outcomes[i] = reserve;
                continue;
            }
        }
        uint64_t seq = m->preset_seq ? m->preset_seq : next;
        rc = append_one(self, txn, m, seq);
        if (rc == 0)
            rc = used_pages(self, txn, &used);
        if (rc != 0)
            break;
        if (!m->settled)
            held_trio_add(&held, +1, (uint32_t)m->envelope_len);
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
        rc = next_seq_put(self, txn, next);
    rc = held_acc_flush(self, txn, &acc, rc);
    rc = txn_finish(self, txn, rc);
    if (rc != 0) {
        /* Nothing was stored: make sure no caller ACKs a seq from this call. */
        for (size_t i = 0; i < n; i++) {
            msgs[i].seq = 0;
            outcomes[i] = HUB_STORE_FULL;
        }
    }
    return rc;
}

/* ---- reads ------------------------------------------------------------- */

int hub_store_next_seq(hub_store_t *self, uint64_t *next)
{
    if (!self || !next)
        return HUB_EINVAL;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    rc = next_seq_get(self, txn, next);
    txn_read_end(self, txn);
    return rc;
}

/* Fills *out from a record; envelope into arena when arena is not NULL. */
static int fill_msg(const rec_view_t *v, uint64_t seq, uint32_t attempts, hub_store_msg_t *out,
                    hub_store_arena_t *arena)
{
    memset(out, 0, sizeof *out);
    out->seq = seq;
    copy_str(out->message_id, v->id, v->id_len);
    copy_str(out->sender, v->sender, v->sender_len);
    copy_str(out->receiver, v->receiver, v->receiver_len);
    copy_str(out->service, v->service, v->service_len);
    out->accepted_at_us = v->accepted_at;
    out->expires_at_us = v->expires_at;
    out->attempts = attempts;
    out->envelope_len = v->envelope_len;
    if (arena) {
        uint8_t *p = arena_alloc(arena, v->envelope_len);
        if (!p)
            return HUB_ENOMEM;
        if (v->envelope_len)
            memcpy(p, v->envelope, v->envelope_len);
        out->envelope = p;
    }
    return 0;
}

static int get_attempts(hub_store_t *self, MDB_txn *txn, MDB_val *sk, uint32_t *out)
{
    MDB_val v;
    int rc = mdb_get(txn, self->attempts, sk, &v);
    *out = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return map_rc(rc);
    if (v.mv_size != 4)
        return HUB_ESTORE;
    *out = get_le32(v.mv_data);
    return 0;
}

int hub_store_read_queue(hub_store_t *self, const char *receiver, uint64_t after_seq,
                         size_t max, hub_store_msg_t *out, size_t *n_out,
                         hub_store_arena_t *arena)
{
    if (n_out)
        *n_out = 0;
    if (!self || !str_ok(receiver, HUB_STORE_NAME_MAX, false) || !n_out || !arena ||
        (max && !out))
        return HUB_EINVAL;
    if (max == 0 || after_seq == UINT64_MAX)
        return 0;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    MDB_cursor *c;
    rc = map_rc(mdb_cursor_open(txn, self->queue, &c));
    if (rc != 0) {
        txn_read_end(self, txn);
        return rc;
    }
    size_t rlen = strlen(receiver), n = 0;
    uint8_t qb[QKEY_MAX];
    MDB_val k = queue_key(qb, receiver, after_seq + 1), v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (mrc == 0 && n < max) {
        if (k.mv_size != rlen + 1 + SEQ_KEY || memcmp(k.mv_data, qb, rlen + 1) != 0)
            break; /* past this receiver */
        uint64_t seq = get_be64((const uint8_t *)k.mv_data + rlen + 1);
        uint8_t sb[SEQ_KEY];
        MDB_val sk = seq_val(sb, seq), rv;
        rec_view_t view;
        uint32_t attempts;
        int grc = mdb_get(txn, self->msgs, &sk, &rv);
        if (grc != 0) {
            rc = grc == MDB_NOTFOUND ? HUB_ESTORE : map_rc(grc); /* index without record */
        } else {
            rc = rec_decode(&rv, &view);
            if (rc == 0)
                rc = get_attempts(self, txn, &sk, &attempts);
            if (rc == 0)
                rc = fill_msg(&view, seq, attempts, &out[n], arena);
        }
        if (rc != 0) {
            if (rc == HUB_ESTORE) {
                memset(&out[n], 0, sizeof out[n]);
                out[n].seq = seq; /* name the damaged message */
            }
            break;
        }
        n++;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = map_rc(mrc);
    mdb_cursor_close(c);
    txn_read_end(self, txn);
    *n_out = n;
    return rc;
}

/* ---- ack, attempts, dead letters ---------------------------------------- */

/* Removes a queued message whose record does not decode: what can be found
 * without it goes (the expiry entry by a scan, as this is rare). */
static int remove_damaged(hub_store_t *self, MDB_txn *txn, uint64_t seq, const char *receiver)
{
    uint8_t sb[SEQ_KEY], qb[QKEY_MAX];
    MDB_val sk = seq_val(sb, seq), qk = queue_key(qb, receiver, seq);
    bool dead;
    int rc = has_key(txn, self->dead, &sk, &dead);
    if (rc == 0 && !dead) /* a dead letter's record is the DLQ's to remove */
        rc = del_key(txn, self->msgs, &sk);
    if (rc == 0)
        rc = del_key(txn, self->attempts, &sk);
    if (rc == 0)
        rc = del_key(txn, self->queue, &qk);
    if (rc == 0)
        rc = depth_add(self, txn, receiver, -1);
    MDB_cursor *c;
    if (rc == 0)
        rc = map_rc(mdb_cursor_open(txn, self->expiry, &c));
    if (rc != 0)
        return rc;
    MDB_val k, v;
    uint8_t found[PAIR_KEY];
    bool hit = false;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        if (k.mv_size == PAIR_KEY && get_be64((const uint8_t *)k.mv_data + 8) == seq) {
            memcpy(found, k.mv_data, PAIR_KEY);
            hit = true;
            break;
        }
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return map_rc(mrc);
    if (hit) {
        MDB_val ek = {PAIR_KEY, found};
        rc = del_key(txn, self->expiry, &ek);
    }
    return rc;
}

/* LMDB copies every page a transaction touches, deletes included, and
 * reuses freed pages only a transaction later: a large ack or dead-letter
 * batch in a nearly full map can run out of pages. Both are idempotent, so
 * on HUB_EFULL the batch is retried in halves, each its own transaction. */
static int split_on_full(int (*one_txn)(hub_store_t *, const char *, const uint64_t *, size_t),
                         hub_store_t *self, const char *arg, const uint64_t *seqs, size_t n)
{
    int rc = one_txn(self, arg, seqs, n);
    if (rc != HUB_EFULL || n < 2)
        return rc;
    size_t half = n / 2;
    rc = split_on_full(one_txn, self, arg, seqs, half);
    if (rc == 0)
        rc = split_on_full(one_txn, self, arg, seqs + half, n - half);
    return rc;
}

static int ack_txn(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n)
{
    MDB_txn *txn;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    held_acc_t acc = {0};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* The queue index says whose message a seq is, even when its record
         * is damaged; a receiver can only remove its own. */
        uint8_t qb[QKEY_MAX];
        MDB_val qk = queue_key(qb, receiver, seqs[i]);
        bool mine;
        rc = has_key(txn, self->queue, &qk, &mine);
        if (rc != 0 || !mine)
            continue;
        rec_keys_t k;
        bool found;
        rc = load_queued(self, txn, seqs[i], &k, &found);
        if (rc == HUB_ESTORE || (rc == 0 && !found)) {
            rc = remove_damaged(self, txn, seqs[i], receiver);
            acc.recount = true; /* whose it was, and its size, are unknown */
            continue;
        }
        if (rc == 0)
            rc = remove_queued(self, txn, seqs[i], &k);
        if (rc == 0)
            rc = ids_release(self, txn, &k, seqs[i]);
        if (rc == 0)
            rc = held_acc_count(&acc, k.sender, k.receiver, k.envelope_len, -1);
    }
    rc = held_acc_flush(self, txn, &acc, rc);
    return txn_finish(self, txn, rc);
}

int hub_store_ack(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n)
{
    if (!self || !str_ok(receiver, HUB_STORE_NAME_MAX, false) || (n && !seqs))
        return HUB_EINVAL;
    return n ? split_on_full(ack_txn, self, receiver, seqs, n) : 0;
}

int hub_store_note_attempts(hub_store_t *self, const uint64_t *seqs, size_t n)
{
    if (!self || (n && !seqs))
        return HUB_EINVAL;
    if (n == 0)
        return 0;
    MDB_txn *txn;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t sb[SEQ_KEY], ab[4];
        MDB_val sk = seq_val(sb, seqs[i]);
        bool queued;
        uint32_t attempts;
        rc = is_queued(self, txn, &sk, &queued);
        if (rc != 0 || !queued)
            continue;
        rc = get_attempts(self, txn, &sk, &attempts);
        if (rc != 0)
            break;
        put_le32(ab, attempts == UINT32_MAX ? attempts : attempts + 1);
        MDB_val av = {4, ab};
        rc = map_rc(mdb_put(txn, self->attempts, &sk, &av, 0));
    }
    return txn_finish(self, txn, rc);
}

/* The longest prefix of `reason` that fits and does not cut a UTF-8
 * sequence in half. */
static size_t reason_len(const char *reason)
{
    size_t len = strnlen(reason, HUB_STORE_REASON_MAX + 1);
    if (len <= HUB_STORE_REASON_MAX)
        return len;
    len = HUB_STORE_REASON_MAX;
    while (len > 0 && ((unsigned char)reason[len] & 0xC0) == 0x80)
        len--; /* reason[len] continues a sequence: cut before its lead byte */
    return len;
}

static int dead_letter_txn(hub_store_t *self, const char *reason, const uint64_t *seqs, size_t n)
{
    size_t rlen = reason_len(reason);
    uint64_t now = hub_now_us();
    MDB_txn *txn;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rec_keys_t k;
        bool queued;
        uint32_t attempts;
        uint8_t sb[SEQ_KEY];
        MDB_val sk = seq_val(sb, seqs[i]);
        rc = load_queued(self, txn, seqs[i], &k, &queued);
        if (rc != 0 || !queued)
            continue;
        rc = get_attempts(self, txn, &sk, &attempts);
        if (rc == 0)
            rc = unqueue(self, txn, seqs[i], &k);
        if (rc != 0)
            break;
        MDB_val dv = {DEAD_HDR + rlen, NULL};
        rc = map_rc(mdb_put(txn, self->dead, &sk, &dv, MDB_RESERVE));
        if (rc != 0)
            break;
        uint8_t *p = dv.mv_data;
        memset(p, 0, DEAD_HDR);
        p[0] = REC_FORMAT;
        p[1] = (uint8_t)rlen;
        put_le32(p + 4, attempts);
        put_le64(p + 8, now);
        memcpy(p + DEAD_HDR, reason, rlen);
    }
    return txn_finish(self, txn, rc);
}

int hub_store_dead_letter(hub_store_t *self, const uint64_t *seqs, size_t n, const char *reason)
{
    if (!self || (n && !seqs) || !reason)
        return HUB_EINVAL;
    return n ? split_on_full(dead_letter_txn, self, reason, seqs, n) : 0;
}

/* ---- dead-letter queue ----------------------------------------------- */

/* Fills *out from a dead header and the message record it stands for. */
static int fill_dead(hub_store_t *self, MDB_txn *txn, const MDB_val *v, uint64_t seq,
                     hub_store_dead_t *out, hub_store_arena_t *arena)
{
    uint8_t sb[SEQ_KEY];
    MDB_val sk = seq_val(sb, seq), rv;
    dead_view_t dv;
    rec_view_t view;
    int rc = dead_decode(v, &dv);
    if (rc == 0) {
        int grc = mdb_get(txn, self->msgs, &sk, &rv);
        rc = grc == MDB_NOTFOUND ? HUB_ESTORE : map_rc(grc); /* a header without a record */
    }
    if (rc == 0)
        rc = rec_decode(&rv, &view);
    if (rc == 0)
        rc = fill_msg(&view, seq, dv.attempts, &out->msg, arena);
    if (rc != 0)
        return rc;
    copy_str(out->reason, dv.reason, dv.reason_len);
    out->dead_at_us = dv.dead_at;
    return 0;
}

int hub_store_dlq_list(hub_store_t *self, uint64_t after_seq, size_t max, hub_store_dead_t *out,
                       size_t *n_out, hub_store_arena_t *arena)
{
    if (n_out)
        *n_out = 0;
    if (!self || !n_out || (max && !out))
        return HUB_EINVAL;
    if (max == 0 || after_seq == UINT64_MAX)
        return 0;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    MDB_cursor *c;
    rc = map_rc(mdb_cursor_open(txn, self->dead, &c));
    if (rc != 0) {
        txn_read_end(self, txn);
        return rc;
    }
    uint8_t sb[SEQ_KEY];
    MDB_val k = seq_val(sb, after_seq + 1), v;
    size_t n = 0;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (mrc == 0 && n < max) {
        if (k.mv_size != SEQ_KEY) {
            rc = HUB_ESTORE;
            break;
        }
        uint64_t seq = get_be64(k.mv_data);
        rc = fill_dead(self, txn, &v, seq, &out[n], arena);
        if (rc != 0) {
            if (rc == HUB_ESTORE) {
                memset(&out[n], 0, sizeof out[n]);
                out[n].msg.seq = seq; /* name the damaged dead letter */
            }
            break;
        }
        n++;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = map_rc(mrc);
    mdb_cursor_close(c);
    txn_read_end(self, txn);
    *n_out = n;
    return rc;
}

int hub_store_dlq_get(hub_store_t *self, uint64_t seq, hub_store_dead_t *out,
                      hub_store_arena_t *arena)
{
    if (!self || !out)
        return HUB_EINVAL;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t sb[SEQ_KEY];
    MDB_val k = seq_val(sb, seq), v;
    rc = map_rc(mdb_get(txn, self->dead, &k, &v));
    if (rc == 0)
        rc = fill_dead(self, txn, &v, seq, out, arena);
    txn_read_end(self, txn);
    return rc;
}

int hub_store_dlq_replay(hub_store_t *self, uint64_t seq, uint64_t new_ttl_us,
                         uint64_t preset_seq, uint64_t *new_seq)
{
    if (!self)
        return HUB_EINVAL;
    uint64_t now = hub_now_us();
    MDB_txn *txn;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t sb[SEQ_KEY], nb[SEQ_KEY], ib[IDKEY_MAX], ab[PAIR_KEY];
    MDB_val sk = seq_val(sb, seq), v;
    uint8_t *copy = NULL;
    size_t size = 0;
    uint64_t next = 0;
    rec_view_t view;
    rec_keys_t k;
    rc = map_rc(mdb_get(txn, self->dead, &sk, &v));
    if (rc == 0) {
        int grc = mdb_get(txn, self->msgs, &sk, &v);
        rc = grc == MDB_NOTFOUND ? HUB_ESTORE : map_rc(grc);
    }
    /* Copy the record: the writes below may move the page it is on. */
    if (rc == 0 && !(copy = malloc(v.mv_size ? v.mv_size : 1)))
        rc = HUB_ENOMEM;
    if (rc == 0) {
        size = v.mv_size;
        if (size)
            memcpy(copy, v.mv_data, size);
        MDB_val cv = {size, copy};
        rc = rec_decode(&cv, &view);
    }
    if (rc == 0) {
        rec_keys(&view, &k);
        k.expires_at = new_ttl_us ? (new_ttl_us > UINT64_MAX - now ? UINT64_MAX : now + new_ttl_us)
                                  : 0;
        put_le64(copy + 16, k.expires_at); /* the record's expires_at field */
        rc = next_seq_get(self, txn, &next);
        if (rc == 0 && preset_seq)
            next = preset_seq; /* unused: NOOVERWRITE below says so */
    }
    uint64_t used;
    if (rc == 0)
        rc = used_pages(self, txn, &used);
    if (rc == 0 && used + item_pages(self, size) > self->limit_pages)
        rc = HUB_EFULL; /* the same line as appends: keep room for acks */
    if (rc == 0) {
        MDB_val nk = seq_val(nb, next), rv = {size, copy};
        int mrc = mdb_put(txn, self->msgs, &nk, &rv, MDB_NOOVERWRITE);
        rc = mrc == MDB_KEYEXIST ? HUB_ESTORE : map_rc(mrc);
    }
    if (rc == 0)
        rc = index_queued(self, txn, next, k.receiver, k.expires_at);
    if (rc == 0)
        rc = map_rc(mdb_del(txn, self->dead, &sk, NULL));
    if (rc == 0)
        rc = map_rc(mdb_del(txn, self->msgs, &sk, NULL));
    uint64_t stored_next = 0;
    if (rc == 0)
        rc = next_seq_get(self, txn, &stored_next);
    if (rc == 0 && next + 1 > stored_next)
        rc = next_seq_put(self, txn, next + 1);
    if (rc == 0) {
        /* Lookups by message id follow the message to its new seq. */
        MDB_val ik = ids_key(ib, k.sender, k.id), iv;
        ids_rec_t r;
        int grc = mdb_get(txn, self->ids, &ik, &iv);
        if (grc == 0 && ids_decode(&iv, &r) == 0 && r.seq == seq) {
            if (!(r.flags & IDS_PINNED)) {
                MDB_val old_age = pair_val(ab, r.accepted_at, seq);
                rc = del_key(txn, self->age, &old_age);
                MDB_val new_age = pair_val(ab, r.accepted_at, next);
                if (rc == 0)
                    rc = map_rc(mdb_put(txn, self->age, &new_age, &ik, 0));
            }
            r.seq = next;
            if (rc == 0)
                rc = map_rc(ids_put(txn, self->ids, &ik, &r));
        } else if (grc != 0 && grc != MDB_NOTFOUND) {
            rc = map_rc(grc);
        }
    }
    free(copy);
    rc = txn_finish(self, txn, rc);
    if (rc == 0 && new_seq)
        *new_seq = next;
    return rc;
}

/* Deletes one dead letter (header and record) inside txn; *found says
 * whether it existed. A record that does not decode is deleted all the
 * same: purging is how an operator gets rid of it. */
static int purge_one(hub_store_t *self, MDB_txn *txn, uint64_t seq, bool *found,
                     held_acc_t *acc)
{
    uint8_t sb[SEQ_KEY];
    MDB_val sk = seq_val(sb, seq), v;
    int rc = mdb_get(txn, self->dead, &sk, &v);
    *found = rc == 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return map_rc(rc);
    rec_view_t view;
    rec_keys_t k;
    int grc = mdb_get(txn, self->msgs, &sk, &v);
    if (grc != 0 && grc != MDB_NOTFOUND)
        return map_rc(grc);
    bool have_keys = grc == 0 && rec_decode(&v, &view) == 0;
    if (have_keys)
        rec_keys(&view, &k);
    else if (grc == 0)
        acc->recount = true; /* a record that does not decode: whose was it? */
    rc = map_rc(mdb_del(txn, self->dead, &sk, NULL));
    if (rc == 0)
        rc = del_key(txn, self->msgs, &sk);
    if (rc == 0 && have_keys)
        rc = ids_release(self, txn, &k, seq);
    if (rc == 0 && have_keys)
        rc = held_acc_count(acc, k.sender, k.receiver, k.envelope_len, -1);
    return rc;
}

int hub_store_dlq_purge(hub_store_t *self, uint64_t seq)
{
    if (!self)
        return HUB_EINVAL;
    MDB_txn *txn;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    bool found;
    held_acc_t acc = {0};
    rc = purge_one(self, txn, seq, &found, &acc);
    if (rc == 0 && !found)
        rc = HUB_ENOTFOUND;
    rc = held_acc_flush(self, txn, &acc, rc);
    return txn_finish(self, txn, rc);
}

int hub_store_dlq_purge_older(hub_store_t *self, uint64_t before_us, size_t *purged)
{
    if (purged)
        *purged = 0;
    if (!self)
        return HUB_EINVAL;
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
        rc = txn_write(self, &txn);
        if (rc != 0)
            break;
        MDB_cursor *c;
        size_t n = 0, scanned = 0;
        rc = map_rc(mdb_cursor_open(txn, self->dead, &c));
        if (rc == 0) {
            uint8_t sb[SEQ_KEY];
            MDB_val k = seq_val(sb, from), v;
            int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            /* Scan a bounded stretch per transaction so appends get the
             * writer lock in between. */
            while (mrc == 0 && n < chunk && scanned < 16 * PURGE_CHUNK) {
                if (k.mv_size != SEQ_KEY) {
                    mrc = MDB_CORRUPTED;
                    break;
                }
                uint64_t seq = get_be64(k.mv_data);
                dead_view_t dv;
                /* An undecodable record is not "older": leave it to dlq_purge. */
                if (dead_decode(&v, &dv) == 0 && dv.dead_at < before_us)
                    batch[n++] = seq;
                scanned++;
                from = seq + 1;
                mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            }
            more = mrc == 0 && from != 0;
            if (mrc != 0 && mrc != MDB_NOTFOUND)
                rc = map_rc(mrc);
            mdb_cursor_close(c);
        }
        size_t done = 0;
        held_acc_t acc = {0};
        for (size_t i = 0; rc == 0 && i < n; i++) {
            bool found;
            rc = purge_one(self, txn, batch[i], &found, &acc);
            done += found;
        }
        rc = held_acc_flush(self, txn, &acc, rc);
        rc = txn_finish(self, txn, rc);
        if (rc == HUB_EFULL && chunk > 1) {
            /* Too many pages to copy in one go (see split_on_full): retry
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

/* ---- expiry, look-up, statistics ----------------------------------------- */

int hub_store_expired(hub_store_t *self, uint64_t now_us, uint64_t *seqs, size_t max,
                      size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    if (!self || !n_out || (max && !seqs))
        return HUB_EINVAL;
    if (max == 0)
        return 0;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    MDB_cursor *c;
    rc = map_rc(mdb_cursor_open(txn, self->expiry, &c));
    if (rc != 0) {
        txn_read_end(self, txn);
        return rc;
    }
    size_t n = 0;
    MDB_val k, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0 && n < max) {
        if (k.mv_size != PAIR_KEY) {
            rc = HUB_ESTORE;
            break;
        }
        if (get_be64(k.mv_data) > now_us)
            break;
        seqs[n++] = get_be64((const uint8_t *)k.mv_data + 8);
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = map_rc(mrc);
    mdb_cursor_close(c);
    txn_read_end(self, txn);
    if (rc == 0)
        *n_out = n;
    return rc;
}

int hub_store_lookup(hub_store_t *self, const char *sender, const char *message_id,
                     uint64_t *seq, hub_store_state_t *state)
{
    if (!self || !str_ok(sender, HUB_STORE_NAME_MAX, false) ||
        !str_ok(message_id, HUB_STORE_ID_MAX, false))
        return HUB_EINVAL;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t ib[IDKEY_MAX], sb[SEQ_KEY];
    MDB_val ik = ids_key(ib, sender, message_id), v;
    ids_rec_t r;
    bool queued = false, dead = false;
    rc = map_rc(mdb_get(txn, self->ids, &ik, &v));
    if (rc == 0)
        rc = ids_decode(&v, &r);
    if (rc == 0) {
        MDB_val sk = seq_val(sb, r.seq);
        bool stored;
        rc = has_key(txn, self->msgs, &sk, &stored);
        if (rc == 0 && stored)
            rc = has_key(txn, self->dead, &sk, &dead);
        queued = stored && !dead;
    }
    txn_read_end(self, txn);
    if (rc != 0)
        return rc;
    if (seq)
        *seq = r.seq;
    if (state)
        *state = queued ? HUB_STORE_STATE_QUEUED : dead ? HUB_STORE_STATE_DEAD
                                                         : HUB_STORE_STATE_DONE;
    return 0;
}

int hub_store_queues(hub_store_t *self, hub_store_queue_cb cb, void *user)
{
    if (!self || !cb)
        return HUB_EINVAL;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    MDB_cursor *dc = NULL, *qc = NULL;
    rc = map_rc(mdb_cursor_open(txn, self->depth, &dc));
    if (rc == 0)
        rc = map_rc(mdb_cursor_open(txn, self->queue, &qc));
    MDB_val k, v;
    int mrc = rc == 0 ? mdb_cursor_get(dc, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        if (k.mv_size == 0 || k.mv_size > HUB_STORE_NAME_MAX || v.mv_size != 8 ||
            !no_nul(k.mv_data, k.mv_size)) {
            rc = HUB_ESTORE;
            break;
        }
        char receiver[HUB_STORE_NAME_MAX + 1];
        copy_str(receiver, k.mv_data, k.mv_size);
        uint64_t depth = get_le64(v.mv_data), oldest = 0;
        /* The first queue entry of this receiver is its oldest message. */
        uint8_t qb[QKEY_MAX];
        MDB_val qk = queue_key(qb, receiver, 0), qv;
        int qrc = mdb_cursor_get(qc, &qk, &qv, MDB_SET_RANGE);
        if (qrc == 0 && qk.mv_size == k.mv_size + 1 + SEQ_KEY &&
            !memcmp(qk.mv_data, qb, k.mv_size + 1)) {
            uint8_t sb[SEQ_KEY];
            MDB_val sk = seq_val(sb, get_be64((const uint8_t *)qk.mv_data + k.mv_size + 1)), rv;
            rec_view_t view;
            if (mdb_get(txn, self->msgs, &sk, &rv) == 0 && rec_decode(&rv, &view) == 0)
                oldest = view.accepted_at;
        } else if (qrc != 0 && qrc != MDB_NOTFOUND) {
            rc = map_rc(qrc);
            break;
        }
        cb(receiver, depth, oldest, user);
        mrc = mdb_cursor_get(dc, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = map_rc(mrc);
    if (qc)
        mdb_cursor_close(qc);
    if (dc)
        mdb_cursor_close(dc);
    txn_read_end(self, txn);
    return rc;
}

int hub_store_usage(hub_store_t *self, uint64_t *used_bytes, uint64_t *max_bytes,
                    uint64_t *dead_count)
{
    if (!self)
        return HUB_EINVAL;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    uint64_t pages = 0;
    MDB_stat st;
    rc = used_pages(self, txn, &pages);
    if (rc == 0)
        rc = map_rc(mdb_stat(txn, self->dead, &st));
    txn_read_end(self, txn);
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

int hub_store_held(hub_store_t *self, const char *member, hub_store_held_t *as_sender,
                   hub_store_held_t *as_receiver)
{
    if (as_sender)
        *as_sender = (hub_store_held_t){0, 0};
    if (as_receiver)
        *as_receiver = (hub_store_held_t){0, 0};
    if (!self || !str_ok(member, HUB_STORE_NAME_MAX, false))
        return HUB_EINVAL;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t kb[HELD_KEY_MAX];
    hub_store_held_t s = {0, 0}, r = {0, 0};
    MDB_val k = held_key(kb, 's', member);
    rc = held_get(self, txn, &k, &s);
    if (rc == 0) {
        k = held_key(kb, 'r', member);
        rc = held_get(self, txn, &k, &r);
    }
    txn_read_end(self, txn);
    if (rc != 0)
        return rc;
    if (as_sender)
        *as_sender = s;
    if (as_receiver)
        *as_receiver = r;
    return 0;
}

int hub_store_held_total(hub_store_t *self, hub_store_held_t *total)
{
    if (total)
        *total = (hub_store_held_t){0, 0};
    if (!self || !total)
        return HUB_EINVAL;
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t kb[HELD_KEY_MAX];
    MDB_val k = held_key(kb, 't', "");
    rc = held_get(self, txn, &k, total);
    txn_read_end(self, txn);
    return rc;
}

int hub_store_prune_dedup(hub_store_t *self, uint64_t now_us, size_t *pruned)
{
    if (pruned)
        *pruned = 0;
    if (!self)
        return HUB_EINVAL;
    uint64_t window = self->limits.dedup_window_us;
    if (now_us < window)
        return 0;
    uint64_t cutoff = now_us - window; /* accepted at or before this: window over */
    uint8_t(*keys)[PAIR_KEY] = malloc((size_t)HUB_STORE_PRUNE_BATCH * PAIR_KEY);
    if (!keys)
        return HUB_ENOMEM;
    MDB_txn *txn;
    int rc = txn_write(self, &txn);
    if (rc != 0) {
        free(keys);
        return rc;
    }
    size_t n = 0;
    MDB_cursor *c;
    rc = map_rc(mdb_cursor_open(txn, self->age, &c));
    if (rc == 0) {
        MDB_val k, v;
        int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (mrc == 0 && n < HUB_STORE_PRUNE_BATCH) {
            if (k.mv_size != PAIR_KEY) {
                mrc = MDB_CORRUPTED;
                break;
            }
            if (get_be64(k.mv_data) > cutoff)
                break;
            memcpy(keys[n++], k.mv_data, PAIR_KEY);
            mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            rc = map_rc(mrc);
        mdb_cursor_close(c);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        MDB_val ak = {PAIR_KEY, keys[i]}, av;
        rc = map_rc(mdb_get(txn, self->age, &ak, &av));
        if (rc != 0)
            break;
        uint8_t ib[IDKEY_MAX];
        bool key_ok = av.mv_size > 0 && av.mv_size <= IDKEY_MAX;
        MDB_val ik = {key_ok ? av.mv_size : 0, ib}, iv;
        if (key_ok)
            memcpy(ib, av.mv_data, av.mv_size);
        rc = map_rc(mdb_del(txn, self->age, &ak, NULL));
        if (rc != 0 || !key_ok)
            continue;
        uint64_t seq = get_be64(keys[i] + 8);
        ids_rec_t r;
        int grc = mdb_get(txn, self->ids, &ik, &iv);
        if (grc == MDB_NOTFOUND)
            continue;
        if (grc != 0) {
            rc = map_rc(grc);
            break;
        }
        if (ids_decode(&iv, &r) != 0) {
            rc = del_key(txn, self->ids, &ik);
            continue;
        }
        if (r.seq != seq)
            continue; /* a newer message took this id over; its own age entry remains */
        uint8_t sb[SEQ_KEY];
        MDB_val sk = seq_val(sb, seq);
        bool stored; /* queued or dead-lettered */
        rc = has_key(txn, self->msgs, &sk, &stored);
        if (rc != 0)
            break;
        if (stored) {
            r.flags |= IDS_PINNED; /* kept for lookups until the message goes */
            rc = map_rc(ids_put(txn, self->ids, &ik, &r));
        } else {
            rc = del_key(txn, self->ids, &ik);
        }
    }
    free(keys);
    rc = txn_finish(self, txn, rc);
    if (rc == 0 && pruned)
        *pruned = n;
    return rc;
}

/* ---- tracked requests ------------------------------------------------ */

#define REQ_VAL_MAX (8u + 2u * (HUB_STORE_NAME_MAX + 1u))

int hub_store_requests_put(hub_store_t *self, const hub_store_request_t *reqs, size_t n)
{
    if (!self || (n && !reqs))
        return HUB_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!str_ok(reqs[i].message_id, HUB_STORE_ID_MAX, false) ||
            !str_ok(reqs[i].sender, HUB_STORE_NAME_MAX, false) ||
            !str_ok(reqs[i].receiver, HUB_STORE_NAME_MAX, false))
            return HUB_EINVAL;
    if (n == 0)
        return 0;
    MDB_txn *txn = NULL;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t buf[REQ_VAL_MAX];
        size_t sl = strlen(reqs[i].sender), rl = strlen(reqs[i].receiver);
        put_le64(buf, reqs[i].expires_at_us);
        memcpy(buf + 8, reqs[i].sender, sl + 1);
        memcpy(buf + 8 + sl + 1, reqs[i].receiver, rl + 1);
        MDB_val k = str_val(reqs[i].message_id), v = {8 + sl + 1 + rl + 1, buf};
        rc = map_rc(mdb_put(txn, self->requests, &k, &v, 0));
    }
    return txn_finish(self, txn, rc);
}

int hub_store_requests_del(hub_store_t *self, const char *const *ids, size_t n)
{
    if (!self || (n && !ids))
        return HUB_EINVAL;
    if (n == 0)
        return 0;
    MDB_txn *txn = NULL;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!str_ok(ids[i], HUB_STORE_ID_MAX, false))
            continue;
        MDB_val k = str_val(ids[i]);
        rc = del_key(txn, self->requests, &k);
    }
    return txn_finish(self, txn, rc);
}

/* Decodes a requests record into *out; false when it is damaged. */
static bool request_decode(const MDB_val *k, const MDB_val *v, hub_store_request_t *out)
{
    if (k->mv_size == 0 || k->mv_size > HUB_STORE_ID_MAX || v->mv_size < 8 + 4 ||
        v->mv_size > REQ_VAL_MAX)
        return false;
    const char *p = (const char *)v->mv_data + 8, *end = (const char *)v->mv_data + v->mv_size;
    const char *z1 = memchr(p, '\0', (size_t)(end - p));
    if (!z1 || z1 == p)
        return false;
    const char *z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1));
    if (!z2 || z2 == z1 + 1 || z2 + 1 != end)
        return false;
    memcpy(out->message_id, k->mv_data, k->mv_size);
    out->message_id[k->mv_size] = '\0';
    out->expires_at_us = get_le64(v->mv_data);
    memcpy(out->sender, p, (size_t)(z1 - p) + 1);
    memcpy(out->receiver, z1 + 1, (size_t)(z2 - z1));
    return no_nul(out->message_id, k->mv_size);
}

int hub_store_requests_load(hub_store_t *self, uint64_t now_us, hub_store_request_cb cb,
                            void *user, size_t *expired)
{
    if (expired)
        *expired = 0;
    if (!self || !cb)
        return HUB_EINVAL;
    MDB_txn *txn;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    /* Expired and damaged entries are collected, then deleted after the
     * walk (a cursor is not moved under a delete). */
    char (*gone)[HUB_STORE_ID_MAX + 1] = NULL;
    size_t n_gone = 0, cap_gone = 0;
    MDB_cursor *c;
    rc = map_rc(mdb_cursor_open(txn, self->requests, &c));
    if (rc == 0) {
        MDB_val k, v;
        int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        for (; mrc == 0 && rc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            hub_store_request_t r;
            if (request_decode(&k, &v, &r) && !(r.expires_at_us && r.expires_at_us <= now_us)) {
                cb(&r, user);
                continue;
            }
            if (k.mv_size == 0 || k.mv_size > HUB_STORE_ID_MAX)
                continue; /* cannot be named: left alone, never loaded */
            if (n_gone == cap_gone) {
                size_t cap = cap_gone ? 2 * cap_gone : 64;
                void *grown = realloc(gone, cap * sizeof *gone);
                if (!grown) {
                    rc = HUB_ENOMEM;
                    break;
                }
                gone = grown;
                cap_gone = cap;
            }
            memcpy(gone[n_gone], k.mv_data, k.mv_size);
            gone[n_gone++][k.mv_size] = '\0';
        }
        if (rc == 0 && mrc != MDB_NOTFOUND)
            rc = map_rc(mrc);
        mdb_cursor_close(c);
    }
    for (size_t i = 0; rc == 0 && i < n_gone; i++) {
        MDB_val k = {strlen(gone[i]), gone[i]};
        rc = del_key(txn, self->requests, &k);
    }
    free(gone);
    rc = txn_finish(self, txn, rc);
    if (rc == 0 && expired)
        *expired = n_gone;
    return rc;
}

/* ---- the audit log's anchor (meta "audit_anchor": u64 seq || 32-byte hash) */

int hub_store_audit_anchor_get(hub_store_t *self, uint64_t *seq, uint8_t hash[32])
{
    if (!self || !seq || !hash)
        return HUB_EINVAL;
    *seq = 0;
    memset(hash, 0, 32);
    MDB_txn *txn;
    int rc = txn_read(self, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = str_val("audit_anchor"), v;
    int mrc = mdb_get(txn, self->meta, &k, &v);
    if (mrc == 0 && v.mv_size == 40) {
        *seq = get_le64(v.mv_data);
        memcpy(hash, (const uint8_t *)v.mv_data + 8, 32);
    } else if (mrc == 0) {
        rc = HUB_ESTORE;
    } else if (mrc != MDB_NOTFOUND) {
        rc = map_rc(mrc);
    }
    txn_read_end(self, txn);
    return rc;
}

int hub_store_audit_anchor_put(hub_store_t *self, uint64_t seq, const uint8_t hash[32])
{
    if (!self || !hash)
        return HUB_EINVAL;
    MDB_txn *txn = NULL;
    int rc = txn_write(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t buf[40];
    put_le64(buf, seq);
    memcpy(buf + 8, hash, 32);
    MDB_val k = str_val("audit_anchor"), v = {sizeof buf, buf};
    rc = map_rc(mdb_put(txn, self->meta, &k, &v, 0));
    return txn_finish(self, txn, rc);
}
