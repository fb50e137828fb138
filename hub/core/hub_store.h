/* hub_store — the hub's durable message queue: one LMDB environment in a
 * directory (DIR/data.mdb, mode 0600, and its lock file DIR/lock.mdb).
 *
 * What it holds. Every accepted message gets a hub sequence number (seq):
 * strictly increasing, never reused once stored, kept across restarts. A
 * message is queued for its receiver until the hub acknowledges it
 * (hub_store_ack) or moves it to the dead-letter queue (DLQ). Queues are
 * read in seq order, which is acceptance order, so each sender's order holds
 * per receiver. (sender, message_id) pairs are remembered for
 * limits.dedup_window_us after acceptance so that a re-sent message is
 * recognised and answered with its original seq; a pair is also kept, for
 * hub_store_lookup() only, while its message is still queued or
 * dead-lettered.
 *
 * Durability. Outside a batch, every write function is one write
 * transaction with LMDB's default durability (on commit LMDB syncs the data
 * pages, then the meta page): when it returns 0 the change is on disk.
 * hub_store_append() takes many messages in one transaction. When a write
 * function returns a negative code, nothing of that call was stored, with
 * two exceptions that are safe because they are idempotent: ack and
 * dead_letter, when the map is too full to do all of a call's seqs at once
 * (LMDB copies every page it touches, deletes included), split them into
 * smaller transactions, and so does dlq_purge_older; a failure half-way
 * leaves part done, and a retry finishes it.
 *
 * Batches (hub_store_batch_begin) make a whole group commit (append, ack,
 * note_attempts, dead_letter, prune_dedup, ...) one transaction and one
 * durable commit. Inside a batch each write call runs in a nested
 * transaction: when it returns 0 its changes have joined the batch but are
 * NOT durable; they are when hub_store_batch_commit() returns 0, and are
 * lost, all of them, when the commit fails, the batch is aborted or the
 * process dies first. So ACK nothing a batch accepted before its commit
 * returned 0. A call that fails inside a batch drops only its own changes,
 * with the same exceptions as above (the parts of a split ack that
 * succeeded join the batch). The seqs an uncommitted batch handed out were
 * never stored, and are handed out again after an abort or a failed
 * commit.
 *
 * Threads. Read functions (read_queue, dlq_list, dlq_get, expired, lookup,
 * queues, usage, held, held_total) use short read-only transactions (the environment is opened
 * with MDB_NOTLS) and may run on any thread, concurrently with a write. Write
 * functions (append, ack, note_attempts, dead_letter, dlq_replay, dlq_purge,
 * dlq_purge_older, prune_dedup) may run on any ONE thread at a time; the hub
 * runs them on its worker thread. LMDB's writer lock would serialise two
 * concurrent writers anyway, so breaking the rule costs latency, not data.
 * A batch belongs to the thread that began it: that thread's write calls go
 * into it, and its read calls read inside it, so they see its uncommitted
 * changes. Reads on other threads see the last committed state, as always;
 * writes on other threads wait on LMDB's writer lock until the batch ends,
 * so keep batches short (batch_begin returns HUB_EINVAL instead). Commit and
 * abort a batch on the thread that began it (LMDB's writer lock belongs to
 * that thread). open and close must not overlap any other call on the same
 * store; close aborts an open batch, and must then run on the batch's
 * thread too.
 *
 * Limits. limits->max_bytes is the LMDB map size (0 = 1 GiB): an append that
 * would take the pages in use past 90% of it is refused (HUB_STORE_FULL), so
 * that acks, dead-lettering and purges always have room to run. Inside a
 * batch the line counts the batch's own pages too; but pages that the batch
 * frees (by acks, purges, ...) can be reused only after it commits, so an
 * append that follows large deletes in the same batch may fail as a whole
 * with HUB_EFULL rather than see HUB_STORE_FULL outcomes: append first.
 * limits->max_queue_depth caps each receiver's queue (0 = no cap);
 * limits->dedup_window_us is the de-duplication window (0 = no
 * de-duplication, not even within one call).
 *
 * What each member holds. The store counts, in the same transaction as
 * every change, the messages and envelope bytes (envelope_len, not the
 * record's overhead) that each member holds in it as a sender and as a
 * receiver: queued and dead-lettered messages alike (a dead letter takes
 * room until it is purged); a settled append, which keeps only its id,
 * counts nothing. hub_store_held() reads them. Counts come from records
 * that decode: removing a damaged record (ack, dlq_purge) recounts the
 * whole store in that transaction, which is slow but rare.
 *
 * Quotas. An append may carry limits for its message (msg.quota, from the
 * hub's defaults and the policy's `limit` lines): it is refused with
 * HUB_STORE_QUOTA_SENDER when its sender already holds quota.sender_msgs
 * messages, or would hold more than quota.sender_bytes bytes with it, and
 * with HUB_STORE_QUOTA_RECEIVER likewise for its receiver (0 = no limit).
 * Earlier items of the same call count. Reserve: with
 * limits->reserve_percent = R (0..50), once the pages in use, counting this
 * append, would pass (90 - R)% of the map, a message is refused with
 * HUB_STORE_QUOTA_SENDER when its sender holds more than half of the bytes
 * all members hold, else with HUB_STORE_QUOTA_RECEIVER when its receiver
 * does: one flow cannot take the last of the store, while others still can
 * (up to the 90% line, HUB_STORE_FULL). R = 0: no reserve. An append is
 * judged in this order: duplicate, queue depth, sender quota, receiver
 * quota, the 90% line, the reserve. Settled appends hold nothing and skip
 * quotas and reserve; dlq_replay moves a held message and skips them too.
 *
 * Format. The meta table records the store format (2: the held counts). A
 * format-1 store is upgraded in place when opened: the counts are made by
 * one scan of the messages, in the same transaction that records format 2
 * (hub_store_upgraded_from() tells the caller, which logs it). A store
 * from a newer format is refused. There is no way back: a build that
 * reads only format 1 refuses a format-2 store, saying that data.mdb is not
 * a hub store (it does not know the held table's name).
 *
 * Ownership. Read functions copy strings into the caller's structs and
 * envelope bytes into the caller's arena; those stay valid until the arena
 * is reset or destroyed. Reads append to the arena, never reset it.
 *
 * Errors. 0 or a negative HUB_E* code: HUB_EINVAL (bad argument),
 * HUB_ENOMEM, HUB_EFULL (map or disk full), HUB_ESTORE (the data is corrupt
 * or unreadable; a record that does not decode gives HUB_ESTORE, never a
 * crash), HUB_EPERM (file permissions), HUB_EIO, HUB_ENOTFOUND (functions
 * that name one item), HUB_EAGAIN (too many concurrent readers).
 */
#ifndef HUB_STORE_H
#define HUB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_STORE_ID_MAX 36      /* message ids: 1..36 bytes (a UUID in text form) */
#define HUB_STORE_NAME_MAX 255   /* sender, receiver and service: up to 255 bytes */
#define HUB_STORE_REASON_MAX 127 /* dead-letter reasons are cut (at a UTF-8 boundary) to this */
#define HUB_STORE_PRUNE_BATCH 10000 /* hub_store_prune_dedup() forgets at most this many per call */
#define HUB_STORE_DIGEST_LEN 32     /* an envelope's digest (hub_sign.h): SHA-256 */

typedef struct hub_store hub_store_t;

typedef struct {
    uint64_t max_bytes;       /* LMDB map size; appends past ~90% of it are refused (0 = 1 GiB) */
    uint64_t max_queue_depth; /* per receiver; appends past it are refused (0 = no cap) */
    uint64_t dedup_window_us; /* how long (sender, message_id) is remembered after acceptance */
    uint32_t reserve_percent; /* 0..50: the last part of the store below the 90% line
                                 kept from any one member */
} hub_store_limits_t;

typedef struct {
    uint64_t msgs;  /* messages held (queued or dead-lettered) */
    uint64_t bytes; /* their envelope bytes */
} hub_store_held_t;

typedef struct {
    uint64_t sender_msgs, sender_bytes;     /* what the message's sender may hold; 0 = no limit */
    uint64_t receiver_msgs, receiver_bytes; /* what its receiver may hold; 0 = no limit */
} hub_store_quota_t;

typedef struct {
    uint64_t seq;                          /* hub sequence number; set by append */
    char message_id[HUB_STORE_ID_MAX + 1]; /* 1..36 bytes, NUL-terminated */
    char sender[HUB_STORE_NAME_MAX + 1];   /* authenticated member id; non-empty */
    char receiver[HUB_STORE_NAME_MAX + 1]; /* queue name; non-empty */
    char service[HUB_STORE_NAME_MAX + 1];  /* may be empty */
    uint64_t accepted_at_us;               /* wall clock; append uses now when 0 */
    uint64_t expires_at_us;                /* accepted_at + TTL; 0 = never expires */
    uint32_t attempts;                     /* delivery attempts recorded so far */
    const uint8_t *envelope;               /* exact encoded envelope bytes */
    size_t envelope_len;
    /* append only: nonzero = store the message under this seq, chosen by
     * the caller ahead of the commit (it must be at least the store's
     * next seq; later ones in the same call must be larger). */
    uint64_t preset_seq;
    /* append only: the receiver has already handled it (it was delivered
     * before this commit and settled): keep only its de-duplication and
     * look-up record, not the message. The outcome is OK or DUPLICATE. */
    bool settled;
    hub_store_quota_t quota; /* append only: limits checked for this message */
    /* append only: the envelope's canonical digest (hub_envelope_digest(),
     * which leaves the signature out), kept with the de-duplication record
     * so that a re-send is told from new content under the same id
     * (HUB_STORE_ID_REUSED). All zero: not known; then a re-send within the
     * window is a DUPLICATE whatever its content. Reads leave it zero. */
    uint8_t digest[HUB_STORE_DIGEST_LEN];
} hub_store_msg_t;

/* A growable byte arena for what read functions return. Memory handed out
 * never moves (the arena grows by adding blocks), so pointers stay valid
 * until hub_store_arena_reset() or hub_store_arena_destroy(). */
typedef struct hub_store_arena hub_store_arena_t;
int hub_store_arena_new(hub_store_arena_t **out);
/* Forgets everything handed out; keeps one block for reuse. */
void hub_store_arena_reset(hub_store_arena_t *self);
void hub_store_arena_destroy(hub_store_arena_t **self_p);

/* Opens (creating DIR, mode 0700, and its files, mode 0600, if missing) the
 * store in `dir`. On failure `err` (may be NULL) says what is wrong and what
 * to do: HUB_ESTORE when data.mdb is corrupt, not an LMDB file, from another
 * LMDB or a newer store format, or unreadable; HUB_EPERM when permissions
 * deny access; HUB_EINVAL when reserve_percent is above 50. A format-1
 * store is upgraded (see "Format" above). Note: LMDB does not checksum its
 * pages; garbage in the header pages is detected, but damage deep inside a
 * well-formed file may not be. */
int hub_store_open(const char *dir, const hub_store_limits_t *limits, hub_store_t **out,
                   char *err, size_t err_size);
void hub_store_close(hub_store_t **self_p);
/* The store format that hub_store_open() upgraded from (1), or 0 when the
 * store was already current or new: for the caller to log. */
uint32_t hub_store_upgraded_from(const hub_store_t *self);

/* Store formats. hub_store_open() upgrades a store of an older format in
 * place (one transaction, before anything else is written) and refuses a
 * newer one with HUB_ESTORE and the command to run. */
#define HUB_STORE_FORMAT 4u
/* The format the store had when it was opened: 0 for a store created by
 * this open, HUB_STORE_FORMAT when no upgrade was needed. */
uint32_t hub_store_opened_format(const hub_store_t *self);

/* What names a store, for checks, backups and restores. */
typedef struct {
    uint32_t format;        /* store format found on disk */
    char store_id[33];      /* 32 hex digits; empty in a format-1 store */
    uint64_t created_at_us; /* 0 in a format-1 store */
    uint64_t next_seq;      /* the next sequence number it will hand out */
    uint64_t messages;      /* messages queued (not dead-lettered) */
    uint64_t dead;          /* messages in the dead-letter queue */
} hub_store_info_t;

/* Reads a store's info without changing anything, from any process, also
 * while hubd runs it (LMDB read-only environment). HUB_ENOENT when dir has
 * no data.mdb; HUB_ESTORE when it is not a store or of an unknown format;
 * HUB_EPERM. */
int hub_store_inspect(const char *dir, hub_store_info_t *out, char *err, size_t err_size);

/* Copies the store in dir into dest_dir/data.mdb (created, mode 0600) as
 * one consistent snapshot, compacted, while hubd may be running and
 * writing: what was committed when the copy began is in it, nothing half
 * written is. out describes the copy (read back from it). */
int hub_store_backup(const char *dir, const char *dest_dir, hub_store_info_t *out, char *err,
                     size_t err_size);

/* Batches. hub_store_batch_begin() opens one write transaction on the
 * calling thread; until hub_store_batch_commit() or _abort(), every write
 * function called on that thread runs in a nested transaction inside it
 * (an LMDB child transaction): when the call succeeds its changes join the
 * batch (nothing durable yet); when it fails only that call's changes are
 * dropped, with the same per-call semantics as outside a batch (append all
 * or nothing, ack and dead_letter split on HUB_EFULL, ...). Read functions
 * called on that thread read inside the batch and see its changes; reads on
 * other threads see the last committed state. One batch at a time:
 * hub_store_batch_begin() returns HUB_EINVAL while one is open; write calls
 * from other threads wait for it to end (LMDB's writer lock).
 *
 * hub_store_batch_commit() makes the whole batch durable with one LMDB
 * commit and returns 0; on failure nothing of the batch is stored and it
 * returns the error. If LMDB could not fold one call into the batch (its
 * nested transaction failed to commit, which leaves the batch broken),
 * that call and every later write or read on the batch's thread return
 * that error, and so does the commit, which then stores nothing. The
 * commit returns HUB_EINVAL when the calling thread has no open batch.
 * hub_store_batch_abort() drops the batch; it does nothing when the calling
 * thread has none. Neither may be called from a hub_store_queues() callback
 * (commit returns HUB_EINVAL, abort does nothing), and a write function
 * called from one inside a batch returns HUB_EINVAL. */
int hub_store_batch_begin(hub_store_t *self);
int hub_store_batch_commit(hub_store_t *self);
void hub_store_batch_abort(hub_store_t *self);

typedef enum {
    HUB_STORE_OK = 0,     /* accepted; msgs[i].seq is the new seq */
    HUB_STORE_DUPLICATE,  /* (sender, message_id) accepted within the window; msgs[i].seq is
                             the ORIGINAL seq; nothing stored */
    HUB_STORE_QUEUE_FULL, /* the receiver's queue is at max_queue_depth; nothing stored */
    HUB_STORE_FULL,       /* the store is at 90% of max_bytes; nothing stored */
    HUB_STORE_QUOTA_SENDER,  /* the sender holds its quota (or most of the store past the
                                reserve line); nothing stored */
    HUB_STORE_QUOTA_RECEIVER, /* the receiver does; nothing stored */
    HUB_STORE_ID_REUSED /* (sender, message_id) accepted within the window with ANOTHER
                           digest (both known): new content under a used id; msgs[i].seq
                           is the original seq; nothing stored */
} hub_store_outcome_t;

/* Appends msgs[0..n) in ONE write transaction (inside a batch: one nested
 * transaction) and sets outcomes[i] for each. Reads sender, message_id,
 * receiver, service, accepted_at_us (0 = now), expires_at_us, the envelope
 * and quota; sets seq (and accepted_at_us when it was 0). The window is
 * judged at each item's accepted_at_us. Within one call the first of two
 * duplicates wins, and inside a batch a message appended by an earlier call
 * of the batch counts. Returns 0 when the transaction committed (inside a
 * batch: joined it), even if some items were refused; HUB_EINVAL (before
 * anything is written) when an item is malformed; or another negative code
 * when the commit failed, in which case NO item was stored, seqs are 0 and
 * outcomes are meaningless: NACK them all. */
int hub_store_append(hub_store_t *self, hub_store_msg_t *msgs, size_t n,
                     hub_store_outcome_t *outcomes);

/* Copies up to `max` messages queued for `receiver` with seq > after_seq, in
 * seq order, into out[]; *n_out is the count. Envelopes go into `arena`.
 * When a stored record is damaged it returns HUB_ESTORE with out[0..*n_out)
 * still valid and out[*n_out].seq naming the damaged message (only its seq
 * is set), which hub_store_ack() can remove. */
/* The seq the store would give the next message it appends (every seq it
 * has handed out is below it). A read; any thread. */
int hub_store_next_seq(hub_store_t *self, uint64_t *next);

int hub_store_read_queue(hub_store_t *self, const char *receiver, uint64_t after_seq,
                         size_t max, hub_store_msg_t *out, size_t *n_out,
                         hub_store_arena_t *arena);

/* Removes delivered-and-settled messages of `receiver`, one write
 * transaction. Seqs not queued for that receiver are ignored (so an ack is
 * idempotent and one receiver cannot remove another's messages). A damaged
 * record queued for `receiver` is removed too.
 * (sender, message_id) stays remembered until its window passes. */
int hub_store_ack(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n);

/* attempts++ for each queued seq (others ignored), one write transaction. */
int hub_store_note_attempts(hub_store_t *self, const uint64_t *seqs, size_t n);

/* Moves queued seqs (others ignored) to the DLQ with `reason`, e.g. "ttl
 * expired" or "retry budget exhausted (8 attempts)"; one write transaction. */
int hub_store_dead_letter(hub_store_t *self, const uint64_t *seqs, size_t n, const char *reason);

typedef struct {
    hub_store_msg_t msg;                   /* msg.attempts: attempts when it died */
    char reason[HUB_STORE_REASON_MAX + 1];
    uint64_t dead_at_us;
} hub_store_dead_t;

/* Lists dead letters with seq > after_seq, in seq order, up to max. With an
 * arena, envelopes are copied too; with arena NULL, msg.envelope is NULL and
 * msg.envelope_len still gives the size. A damaged record gives HUB_ESTORE
 * as in hub_store_read_queue(): out[*n_out].msg.seq names it, and
 * hub_store_dlq_purge() removes it. */
int hub_store_dlq_list(hub_store_t *self, uint64_t after_seq, size_t max, hub_store_dead_t *out,
                       size_t *n_out, hub_store_arena_t *arena);
/* One dead letter (envelope copied into arena, if not NULL); HUB_ENOTFOUND. */
int hub_store_dlq_get(hub_store_t *self, uint64_t seq, hub_store_dead_t *out,
                      hub_store_arena_t *arena);
/* Moves a dead letter back to its receiver's queue, attempts reset and
 * expiry now + new_ttl_us (0 = never). It gets a NEW seq (so that a reader
 * that has already passed the old seq still sees it), written to *new_seq
 * when not NULL; lookups by message id follow it. HUB_ENOTFOUND if `seq` is
 * not dead-lettered; HUB_EFULL when the store is past the 90% line. The
 * receiver's depth cap does not apply to replays. preset_seq: as in
 * hub_store_msg_t (0 = the store's next seq). */
int hub_store_dlq_replay(hub_store_t *self, uint64_t seq, uint64_t new_ttl_us,
                         uint64_t preset_seq, uint64_t *new_seq);
/* Deletes one dead letter, even a damaged one; HUB_ENOTFOUND. */
int hub_store_dlq_purge(hub_store_t *self, uint64_t seq);
/* Deletes dead letters with dead_at_us < before_us; *purged (may be NULL)
 * is the count. Runs in transactions of a few thousand so that appends are
 * not held up; on failure, those already committed stay purged. */
int hub_store_dlq_purge_older(hub_store_t *self, uint64_t before_us, size_t *purged);

/* Seqs of queued messages with 0 < expires_at_us <= now_us, earliest expiry
 * first, up to max (for the hub to dead-letter). */
int hub_store_expired(hub_store_t *self, uint64_t now_us, uint64_t *seqs, size_t max,
                      size_t *n_out);

typedef enum {
    HUB_STORE_STATE_QUEUED = 1, /* waiting for delivery or acknowledgement */
    HUB_STORE_STATE_DEAD,       /* in the dead-letter queue */
    HUB_STORE_STATE_DONE        /* acknowledged (or purged), still remembered for dedup */
} hub_store_state_t;

/* Finds (sender, message_id); HUB_ENOTFOUND if the store does not know it. */
int hub_store_lookup(hub_store_t *self, const char *sender, const char *message_id,
                     uint64_t *seq, hub_store_state_t *state);

/* Calls cb for every receiver with queued messages, in receiver-name order,
 * inside one read transaction (keep cb short; it may call read functions). */
typedef void (*hub_store_queue_cb)(const char *receiver, uint64_t depth,
                                   uint64_t oldest_accepted_us, void *user);
int hub_store_queues(hub_store_t *self, hub_store_queue_cb cb, void *user);

/* Bytes in pages that hold data (not free pages), the map size (max_bytes as
 * LMDB rounded it) and the number of dead letters. Any out-param may be NULL. */
int hub_store_usage(hub_store_t *self, uint64_t *used_bytes, uint64_t *max_bytes,
                    uint64_t *dead_count);

/* What `member` holds in the store as a sender and as a receiver (see
 * "What each member holds"); either out-param may be NULL. A member the
 * store knows nothing of gets zeros. A read; any thread. Returns 0,
 * HUB_EINVAL, or a read error. */
int hub_store_held(hub_store_t *self, const char *member, hub_store_held_t *as_sender,
                   hub_store_held_t *as_receiver);
/* What all members hold together (each message once). A read; any thread. */
int hub_store_held_total(hub_store_t *self, hub_store_held_t *total);

/* Forgets (sender, message_id) pairs accepted at or before now_us minus the
 * window, at most HUB_STORE_PRUNE_BATCH per call (call again while *pruned
 * equals it). A pair whose message is still queued or dead-lettered stops
 * counting for dedup but is kept for hub_store_lookup() until it goes. */
int hub_store_prune_dedup(hub_store_t *self, uint64_t now_us, size_t *pruned);

/* Tracked requests: a queued REQUEST waiting for its reply, kept so that
 * the hub still knows, after a restart, which reply it may accept (from the
 * request's receiver, to its sender, once). Keyed by the request's
 * message_id; a put with the same id replaces the entry. Write functions
 * (put, del) follow the rules of every write (one transaction, or a nested
 * one inside a batch). */
typedef struct {
    char message_id[HUB_STORE_ID_MAX + 1];
    char sender[HUB_STORE_NAME_MAX + 1];
    char receiver[HUB_STORE_NAME_MAX + 1];
    uint64_t expires_at_us; /* wall clock; the reply is refused after it; 0 = never */
} hub_store_request_t;

int hub_store_requests_put(hub_store_t *self, const hub_store_request_t *reqs, size_t n);
/* Forgets the requests named (answered); unknown ids are ignored. */
int hub_store_requests_del(hub_store_t *self, const char *const *ids, size_t n);
/* Calls cb for every tracked request not expired at now_us (a write: it
 * deletes the expired and damaged ones, counted in *expired, may be NULL). */
typedef void (*hub_store_request_cb)(const hub_store_request_t *req, void *user);
int hub_store_requests_load(hub_store_t *self, uint64_t now_us, hub_store_request_cb cb,
                            void *user, size_t *expired);

#endif
