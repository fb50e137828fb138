/* hub_store — the hub's durable message store: THE CONTRACT every backend
 * implements (LMDB, hub_store_*.c; PostgreSQL, hub_store_pg*.c; the
 * dispatch between them is hub_store.c and hub_store_backend.h), so that
 * the hub above it (hub_commit.c, hub_delivery.c, hub_ops.c, ...) never
 * knows which one runs. What is specific to the LMDB backend is marked
 * "LMDB:" below and gathered at the end of this comment.
 *
 * What it holds. Every accepted message gets a hub sequence number (seq):
 * strictly increasing, never reused once stored, kept across restarts. A
 * message is queued for its receiver until the hub acknowledges it
 * (hub_store_ack) or moves it to the dead-letter queue (DLQ). Queues are
 * read in seq order, which is acceptance order, so each sender's order holds
 * per receiver. (sender, message_id) pairs are remembered, with the
 * envelope's digest, for limits.dedup_window_us after acceptance so that a
 * re-sent message is recognised and answered with its original seq, and
 * new content under a used id is refused (HUB_STORE_ID_REUSED); a pair is
 * also kept, for hub_store_lookup() only, while its message is still
 * queued or dead-lettered. Tracked requests (below) are kept alongside.
 *
 * Durability. Outside a batch, every write function is one transaction:
 * when it returns 0 the change is durable (on disk, and for a replicated
 * backend confirmed by its standby); when it returns a negative code,
 * nothing of that call was stored, with two exceptions that are safe
 * because they are idempotent: ack and dead_letter, when the store is too
 * full to do all of a call's seqs at once (LMDB: it copies every page a
 * transaction touches, deletes included), split them into smaller
 * transactions, and so does dlq_purge_older; a failure half-way leaves
 * part done, and a retry finishes it. hub_store_append() takes many
 * messages in one transaction.
 *
 * Batches (hub_store_batch_begin) make a whole group commit (append, ack,
 * note_attempts, dead_letter, prune_dedup, requests_put, ...) one
 * transaction and one durable commit. Inside a batch each write call runs
 * in a nested transaction (a savepoint): when it returns 0 its changes have
 * joined the batch but are NOT durable; they are when
 * hub_store_batch_commit() returns 0, and are lost, all of them, when the
 * commit fails, the batch is aborted or the process dies first. So ACK
 * nothing a batch accepted before its commit returned 0. A call that fails
 * inside a batch drops only its own changes, with the same exceptions as
 * above (the parts of a split ack that succeeded join the batch). The seqs
 * an uncommitted batch handed out were never stored, and are handed out
 * again after an abort or a failed commit.
 *
 * Threads. Read functions (next_seq, read_queue, dlq_list, dlq_get,
 * expired, lookup, queues, usage, held, held_total) may run on any thread,
 * concurrently with a write, and see the last committed state. Write
 * functions (append, ack, note_attempts, dead_letter, dlq_replay,
 * dlq_purge, dlq_purge_older, prune_dedup, requests_*) may run on any ONE
 * thread at a time; the hub runs them on its worker thread (a second
 * concurrent writer waits: it costs latency, not data). A batch belongs to
 * the thread that began it: that thread's write calls go into it, and its
 * read calls read inside it, so they see its uncommitted changes; writes
 * on other threads wait until the batch ends, so keep batches short.
 * Commit and abort a batch on the thread that began it. open and close
 * must not overlap any other call on the same store; close aborts an open
 * batch, and must then run on the batch's thread too.
 *
 * Limits. limits->max_bytes is the size of the store (0 = 1 GiB): an
 * append that would take it past 90% of that is refused (HUB_STORE_FULL),
 * so that acks, dead-lettering and purges always have room to run. Inside
 * a batch the line counts the batch's own writes too; room that the batch
 * frees (by acks, purges, ...) may count only after it commits, so an
 * append that follows large deletes in the same batch may fail as a whole
 * with HUB_EFULL rather than see HUB_STORE_FULL outcomes: append first.
 * limits->max_queue_depth caps each receiver's queue (0 = no cap);
 * limits->dedup_window_us is the de-duplication window (0 = no
 * de-duplication, not even within one call, and no ID_REUSED).
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
 * limits->reserve_percent = R (0..50), once the store, counting this
 * append, would pass (90 - R)% of max_bytes, a message is refused with
 * HUB_STORE_QUOTA_SENDER when its sender holds more than half of the bytes
 * all members hold, else with HUB_STORE_QUOTA_RECEIVER when its receiver
 * does: one flow cannot take the last of the store, while others still can
 * (up to the 90% line, HUB_STORE_FULL). R = 0: no reserve. An append is
 * judged in this order: duplicate (or reused id), queue depth, sender
 * quota, receiver quota, the 90% line, the reserve. Settled appends hold
 * nothing and skip quotas and reserve; dlq_replay moves a held message and
 * skips them too.
 *
 * Format. The store records its format (HUB_STORE_FORMAT): an older one is
 * upgraded in place when opened, in one transaction before anything else
 * is written (hub_store_upgraded_from() tells the caller, which logs it); a
 * newer one is refused with HUB_ESTORE and what to run. There is no way
 * back: a build that reads only older formats refuses the upgraded store.
 * Formats: 1 (hubd 0.1); 2 adds what each member holds; 3 names the store
 * (hub_store_info_t.store_id); 4 keeps each message id's envelope digest
 * (ID_REUSED): ids accepted before the upgrade have no digest and stay
 * plain duplicates until their window passes.
 *
 * Ownership. Read functions copy strings into the caller's structs and
 * envelope bytes into the caller's arena; those stay valid until the arena
 * is reset or destroyed. Reads append to the arena, never reset it. The
 * store keeps no pointer into what the caller passes once a call returns.
 *
 * Errors. 0 or a negative HUB_E* code: HUB_EINVAL (bad argument, or a call
 * the rules above forbid), HUB_ENOMEM, HUB_EFULL (the store or the disk is
 * full), HUB_ESTORE (the data is corrupt or unreadable; a record that does
 * not decode gives HUB_ESTORE, never a crash), HUB_EPERM (file or database
 * permissions), HUB_EIO, HUB_ENOENT (inspect/backup: no store there),
 * HUB_ENOTFOUND (functions that name one item), HUB_EAGAIN (too many
 * concurrent readers or connections: try again).
 *
 * LMDB (this backend). One LMDB environment in a directory (DIR/data.mdb,
 * mode 0600, and its lock file DIR/lock.mdb). max_bytes is LMDB's map
 * size, and the 90% line counts pages in use; freed pages are reused only
 * after the transaction that freed them. Commits use LMDB's default
 * durability (data pages synced, then the meta page). Reads use short
 * read-only transactions (the environment is opened with MDB_NOTLS, so a
 * read transaction is not tied to a thread); a batch is one LMDB write
 * transaction, each call in a child transaction, and LMDB's single writer
 * lock is what makes writers on other threads wait. hub_store_inspect()
 * and hub_store_backup() read the files of a directory while hubd may run:
 * a PostgreSQL backend would back up with its own tools instead. LMDB does
 * not checksum its pages: garbage in the header pages is detected, but
 * damage deep inside a well-formed file may not be. The layout of the
 * tables and records is in hub_store_internal.h and hub_store_codec.h.
 */
#ifndef HUB_STORE_H
#define HUB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_STORE_ID_MAX 36      /* message ids: 1..36 bytes (a UUID in text form) */
#define HUB_STORE_NAME_MAX 255   /* sender, receiver and service: up to 255 bytes */
#define HUB_STORE_REASON_MAX 127 /* dead-letter reasons are cut (at a UTF-8 boundary) to this */
#define HUB_STORE_PRUNE_BATCH 2000 /* hub_store_prune_dedup() forgets at most this many per call */
#define HUB_STORE_DIGEST_LEN 32     /* an envelope's digest (hub_sign.h): SHA-256 */

typedef struct hub_store hub_store_t;

typedef struct {
    uint64_t max_bytes;       /* the store's size; appends past 90% of it are refused
                                 (0 = 1 GiB). LMDB: the map size */
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
    size_t envelope_len;                   /* at most UINT32_MAX */
    /* append only: nonzero = store the message under this seq, chosen by
     * the caller ahead of the commit (it must be at least the store's
     * next seq; later ones in the same call must be larger). */
    uint64_t preset_seq;
    /* append only: the receiver has already handled it (it was delivered
     * before this commit and settled): keep only its de-duplication and
     * look-up record, not the message. The outcome is OK, DUPLICATE or
     * ID_REUSED. */
    bool settled;
    hub_store_quota_t quota; /* append only: limits checked for this message */
    /* append only: the envelope's canonical digest (hub_envelope_digest(),
     * which leaves the signature out), kept with the de-duplication record
     * so that a re-send is told from new content under the same id
     * (HUB_STORE_ID_REUSED). All zero: not known; then a re-send within the
     * window is a DUPLICATE whatever its content. Reads leave it zero. */
    uint8_t digest[HUB_STORE_DIGEST_LEN];
} hub_store_msg_t;

/* ---- arena ---------------------------------------------------------------
 * A growable byte arena for what read functions return. Memory handed out
 * never moves (the arena grows by adding blocks), so pointers stay valid
 * until hub_store_arena_reset() or hub_store_arena_destroy(). Not tied to a
 * backend; one thread at a time. */
typedef struct hub_store_arena hub_store_arena_t;
/* 0, HUB_EINVAL (out is NULL) or HUB_ENOMEM. */
int hub_store_arena_new(hub_store_arena_t **out);
/* Forgets everything handed out; keeps one block for reuse. NULL: nothing. */
void hub_store_arena_reset(hub_store_arena_t *self);
/* Frees the arena and sets *self_p to NULL; NULL or *NULL: nothing. */
void hub_store_arena_destroy(hub_store_arena_t **self_p);

/* ---- life -------------------------------------------------------------- */

/* Opens the store in `dir`, creating it (LMDB: DIR with mode 0700, its files
 * with mode 0600) when missing, and upgrades an older format (see
 * "Format"); on return 0, *out is ready for every call and nothing written
 * before is lost. On failure *out is NULL, nothing stored was changed
 * (an upgrade is one transaction), and `err` (may be NULL) says what is
 * wrong and what to do: HUB_ESTORE when the data is corrupt, not a hub
 * store (LMDB: not an LMDB file, from another LMDB version), of a newer
 * format, or unreadable; HUB_EPERM when permissions deny access; HUB_EINVAL
 * for a missing dir or reserve_percent above 50; HUB_EFULL, HUB_ENOMEM,
 * HUB_EIO. */
int hub_store_open(const char *dir, const hub_store_limits_t *limits, hub_store_t **out,
                   char *err, size_t err_size);
/* Backends. hub_store_open() opens the LMDB store in a directory; a
 * PostgreSQL store is opened with hub_store_open_pg() (below, after
 * hub_store_backup(), with what differs there). Every other function works
 * on either. */
typedef enum {
    HUB_STORE_LMDB = 0,  /* one LMDB file in data_dir (the default) */
    HUB_STORE_POSTGRESQL /* a PostgreSQL database named by a libpq connection string */
} hub_store_backend_t;
/* "lmdb" or "postgresql"; "" for NULL. */
const char *hub_store_backend_name(const hub_store_t *self);

/* Aborts an open batch (see the threads rule), releases everything and sets
 * *self_p to NULL; what was committed stays. NULL or *NULL: nothing. */
void hub_store_close(hub_store_t **self_p);
/* The store format that hub_store_open() upgraded from (1..HUB_STORE_FORMAT
 * - 1), or 0 when the store was already current or new: for the caller to
 * log. 0 for NULL. */
uint32_t hub_store_upgraded_from(const hub_store_t *self);

/* Store formats. hub_store_open() upgrades a store of an older format in
 * place (one transaction, before anything else is written) and refuses a
 * newer one with HUB_ESTORE and the command to run. */
#define HUB_STORE_FORMAT 4u
/* The format the store had when it was opened: 0 for a store created by
 * this open, HUB_STORE_FORMAT when no upgrade was needed. 0 for NULL. */
uint32_t hub_store_opened_format(const hub_store_t *self);

/* What names a store, for checks, backups and restores. */
typedef struct {
    uint32_t format;        /* store format found on disk */
    char store_id[33];      /* 32 hex digits; empty in a format-1 or -2 store */
    uint64_t created_at_us; /* 0 in a format-1 or -2 store */
    uint64_t next_seq;      /* the next sequence number it will hand out */
    uint64_t messages;      /* messages queued (not dead-lettered) */
    uint64_t dead;          /* messages in the dead-letter queue */
} hub_store_info_t;

/* Reads a store's info without changing anything, from any process, also
 * while hubd runs it (LMDB: a read-only environment over the directory).
 * 0 with *out filled; HUB_ENOENT when dir holds no store; HUB_ESTORE when
 * it is not a store or of an unknown format; HUB_EPERM; err says which. */
int hub_store_inspect(const char *dir, hub_store_info_t *out, char *err, size_t err_size);

/* Copies the store in dir into dest_dir (LMDB: dest_dir/data.mdb, created
 * with mode 0600) as one consistent snapshot, compacted, while hubd may be
 * running and writing: what was committed when the copy began is in it,
 * nothing half written is. On 0, out describes the copy (read back from
 * it); on failure err says what went wrong (HUB_ENOENT, HUB_ESTORE,
 * HUB_EPERM, HUB_EIO, HUB_EFULL) and the copy must not be used. A backend
 * that lives outside the hub (PostgreSQL) backs up with its own tools. */
int hub_store_backup(const char *dir, const char *dest_dir, hub_store_info_t *out, char *err,
                     size_t err_size);

/* PostgreSQL (hub_store_pg*.c). `dsn` is a libpq connection string (may
 * name several hosts; add target_session_attrs=read-write so that only the
 * primary is used). open checks the schema (hub_store_pg_init() creates
 * it): a database without it, or with an older one, is refused unless
 * `migrate` is true, which applies the missing migrations; a newer schema
 * is always refused. Errors name what is wrong and what to do: HUB_EIO when
 * the server cannot be reached or is read-only, HUB_EPERM for
 * authentication or privileges, HUB_ESTORE for the schema. What differs
 * from LMDB: max_bytes (0 = 1 GiB) caps the envelope bytes of the messages
 * held plus HUB_STORE_PG_ROW_BYTES a message, not the database's files;
 * hub_store_inspect()/backup() take a directory (LMDB only): use
 * hub_store_pg_inspect() and PostgreSQL's own tools (pg_dump,
 * pg_basebackup). A lost connection fails the call (nothing of it is
 * stored, nothing is ACKed) and is opened again, with backoff, by a later
 * call. */
#define HUB_STORE_PG_ROW_BYTES 256u
#define HUB_STORE_PG_SCHEMA 2u /* the schema version this build writes */
int hub_store_open_pg(const char *dsn, bool migrate, const hub_store_limits_t *limits,
                      hub_store_t **out, char *err, size_t err_size);
/* Creates the schema in an empty database, or applies the migrations an
 * older one lacks (one transaction); *from (may be NULL) is the version
 * found (0 = none). Refuses a newer schema. */
int hub_store_pg_init(const char *dsn, uint32_t *from, char *err, size_t err_size);
/* hub_store_inspect() for a PostgreSQL store (format = schema version). */
int hub_store_pg_inspect(const char *dsn, hub_store_info_t *out, char *err, size_t err_size);

/* ---- batches (group commit) -------------------------------------------------
 * hub_store_batch_begin() opens one write transaction on the calling
 * thread; until hub_store_batch_commit() or _abort(), every write function
 * called on that thread runs in a nested transaction inside it (LMDB: a
 * child transaction; PostgreSQL: a savepoint): when the call succeeds its
 * changes join the batch (nothing durable yet); when it fails only that
 * call's changes are dropped, with the same per-call semantics as outside a
 * batch (append all or nothing, ack and dead_letter split on HUB_EFULL,
 * ...). Read functions called on that thread read inside the batch and see
 * its changes; reads on other threads see the last committed state. One
 * batch at a time: hub_store_batch_begin() returns HUB_EINVAL while one is
 * open (or for NULL), and may wait for a write running on another thread;
 * write calls from other threads wait for the batch to end.
 *
 * hub_store_batch_commit() makes the whole batch durable with one commit
 * and returns 0; on failure nothing of the batch is stored and it returns
 * the error (HUB_EFULL, HUB_EIO, HUB_ESTORE, ...). If the backend could not
 * fold one call into the batch (LMDB: its child transaction failed to
 * commit, which leaves the batch broken), that call and every later write
 * or read on the batch's thread return that error, and so does the commit,
 * which then stores nothing. The commit returns HUB_EINVAL when the calling
 * thread has no open batch. hub_store_batch_abort() drops the batch; it
 * does nothing when the calling thread has none. Neither may be called from
 * a hub_store_queues() callback (commit returns HUB_EINVAL, abort does
 * nothing), and a write function called from one inside a batch returns
 * HUB_EINVAL. */
int hub_store_batch_begin(hub_store_t *self);
int hub_store_batch_commit(hub_store_t *self);
void hub_store_batch_abort(hub_store_t *self);

/* ---- appending ------------------------------------------------------------ */

typedef enum {
    HUB_STORE_OK = 0,     /* accepted; msgs[i].seq is the new seq */
    HUB_STORE_DUPLICATE,  /* (sender, message_id) accepted within the window with the same
                             digest (or one not known); msgs[i].seq is the ORIGINAL seq;
                             nothing stored */
    HUB_STORE_QUEUE_FULL, /* the receiver's queue is at max_queue_depth; nothing stored */
    HUB_STORE_FULL,       /* the store is at 90% of max_bytes; nothing stored */
    HUB_STORE_QUOTA_SENDER,   /* the sender holds its quota (or most of the store past the
                                 reserve line); nothing stored */
    HUB_STORE_QUOTA_RECEIVER, /* the receiver does; nothing stored */
    HUB_STORE_ID_REUSED       /* (sender, message_id) accepted within the window with ANOTHER
                                 digest (both known): new content under a used id; msgs[i].seq
                                 is the original seq; nothing stored */
} hub_store_outcome_t;

/* Appends msgs[0..n) in ONE write transaction (inside a batch: one nested
 * transaction) and sets outcomes[i] for each. Reads sender, message_id,
 * receiver, service, accepted_at_us (0 = now), expires_at_us, the envelope,
 * preset_seq, settled, quota and digest; sets seq (and accepted_at_us when
 * it was 0). The window is judged at each item's accepted_at_us. Within one
 * call the first of two items with one id wins, and inside a batch a
 * message appended by an earlier call of the batch counts. Returns 0 when
 * the transaction committed (durable; inside a batch: joined it), even if
 * some items were refused; HUB_EINVAL (before anything is written) when an
 * item is malformed (a string too long or empty where it may not be, an
 * envelope over 4 GiB or NULL with a length); or another negative code
 * (HUB_EFULL, HUB_ESTORE, HUB_EIO, HUB_ENOMEM) when the commit failed, in
 * which case NO item was stored, every seq is 0 and every outcome
 * HUB_STORE_FULL: NACK them all. A preset seq is used up even when its item
 * was refused (the store's next seq passes it). */
int hub_store_append(hub_store_t *self, hub_store_msg_t *msgs, size_t n,
                     hub_store_outcome_t *outcomes);

/* ---- queues ------------------------------------------------------------------ */

/* The seq the store would give the next message it appends (every seq it
 * has handed out is below it). A read; any thread. 0, HUB_EINVAL, or a read
 * error (HUB_ESTORE when the counter is missing). */
int hub_store_next_seq(hub_store_t *self, uint64_t *next);

/* The audit log's anchor: the last checkpoint (seq, SHA-256 of its line)
 * the hub made durable, so that a log cut back behind it is noticed at the
 * next start. get: seq 0 when none was ever put. put: inside the caller's
 * batch when it owns one (no commit of its own then), else one
 * transaction. Any thread. */
int hub_store_audit_anchor_get(hub_store_t *self, uint64_t *seq, uint8_t hash[32]);
int hub_store_audit_anchor_put(hub_store_t *self, uint64_t seq, const uint8_t hash[32]);

/* Copies up to `max` messages queued for `receiver` with seq > after_seq, in
 * seq order, into out[]; *n_out is the count (0 when none). Envelopes go
 * into `arena` (required). A read; any thread. When a stored record is
 * damaged it returns HUB_ESTORE with out[0..*n_out) still valid and
 * out[*n_out].seq naming the damaged message (only its seq is set), which
 * hub_store_ack() can remove. HUB_EINVAL for a bad receiver, NULL n_out or
 * arena; HUB_ENOMEM when the arena cannot grow. */
int hub_store_read_queue(hub_store_t *self, const char *receiver, uint64_t after_seq,
                         size_t max, hub_store_msg_t *out, size_t *n_out,
                         hub_store_arena_t *arena);

/* Removes delivered-and-settled messages of `receiver`, one write
 * transaction (split on HUB_EFULL, see "Durability"). Seqs not queued for
 * that receiver are ignored (so an ack is idempotent and one receiver
 * cannot remove another's messages). A damaged record queued for
 * `receiver` is removed too. (sender, message_id) stays remembered until
 * its window passes. 0 when every named message is gone (durably, or from
 * the batch); HUB_EINVAL, or a write error with part done. */
int hub_store_ack(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n);

/* attempts++ for each queued seq (others ignored), one write transaction.
 * 0, HUB_EINVAL, or a write error with nothing changed. */
int hub_store_note_attempts(hub_store_t *self, const uint64_t *seqs, size_t n);

/* Seqs of queued messages with 0 < expires_at_us <= now_us, earliest expiry
 * first, up to max (for the hub to dead-letter). A read; any thread. */
int hub_store_expired(hub_store_t *self, uint64_t now_us, uint64_t *seqs, size_t max,
                      size_t *n_out);

/* Calls cb for every receiver with queued messages, in receiver-name order,
 * with its depth and the acceptance time of its oldest message, inside one
 * read transaction (keep cb short; it may call read functions, not write
 * ones). 0, HUB_EINVAL, or a read error (HUB_ESTORE for a damaged entry,
 * after cb ran for the ones before it). */
typedef void (*hub_store_queue_cb)(const char *receiver, uint64_t depth,
                                   uint64_t oldest_accepted_us, void *user);
int hub_store_queues(hub_store_t *self, hub_store_queue_cb cb, void *user);

/* ---- dead letters ------------------------------------------------------------ */

/* Moves queued seqs (others ignored) to the DLQ with `reason` (cut to
 * HUB_STORE_REASON_MAX bytes), e.g. "ttl expired" or "retry budget
 * exhausted (8 attempts)", keeping their attempts; one write transaction
 * (split on HUB_EFULL, see "Durability"). Works when the store is full.
 * moved (NULL, or n flags) says which seqs this call moved: a seq that was
 * not queued (dead-lettered already, by this node or another, settled, or
 * unknown) is false, so the caller reports each dead letter once. On an
 * error the flags of the part not done are false.
 * 0, HUB_EINVAL, or a write error with part done. */
int hub_store_dead_letter(hub_store_t *self, const uint64_t *seqs, size_t n, const char *reason);
int hub_store_dead_letter_moved(hub_store_t *self, const uint64_t *seqs, size_t n,
                                const char *reason, bool *moved);

typedef struct {
    hub_store_msg_t msg;                   /* msg.attempts: attempts when it died */
    char reason[HUB_STORE_REASON_MAX + 1];
    uint64_t dead_at_us;
} hub_store_dead_t;

/* Lists dead letters with seq > after_seq, in seq order, up to max. With an
 * arena, envelopes are copied too; with arena NULL, msg.envelope is NULL and
 * msg.envelope_len still gives the size. A read; any thread. A damaged
 * record gives HUB_ESTORE as in hub_store_read_queue(): out[*n_out].msg.seq
 * names it, and hub_store_dlq_purge() removes it. */
int hub_store_dlq_list(hub_store_t *self, uint64_t after_seq, size_t max, hub_store_dead_t *out,
                       size_t *n_out, hub_store_arena_t *arena);
/* One dead letter (envelope copied into arena, if not NULL). A read; 0,
 * HUB_ENOTFOUND when seq is not dead-lettered, HUB_ESTORE when damaged. */
int hub_store_dlq_get(hub_store_t *self, uint64_t seq, hub_store_dead_t *out,
                      hub_store_arena_t *arena);
/* Moves a dead letter back to its receiver's queue, attempts reset and
 * expiry now + new_ttl_us (0 = never), one write transaction. It gets a
 * NEW seq (so that a reader that has already passed the old seq still sees
 * it), written to *new_seq when not NULL; lookups by message id follow it.
 * HUB_ENOTFOUND if `seq` is not dead-lettered; HUB_EFULL when the store is
 * past the 90% line. The receiver's depth cap and quotas do not apply to
 * replays. preset_seq: as in hub_store_msg_t (0 = the store's next seq;
 * HUB_ESTORE when it is taken). */
int hub_store_dlq_replay(hub_store_t *self, uint64_t seq, uint64_t new_ttl_us,
                         uint64_t preset_seq, uint64_t *new_seq);
/* Deletes one dead letter, even a damaged one; one write transaction.
 * 0, HUB_ENOTFOUND, or a write error with nothing changed. */
int hub_store_dlq_purge(hub_store_t *self, uint64_t seq);
/* Deletes dead letters with dead_at_us < before_us; *purged (may be NULL)
 * is the count. Runs in transactions of a few thousand so that appends are
 * not held up; on failure, those already committed stay purged (and are
 * counted). Damaged ones are left for hub_store_dlq_purge(). */
int hub_store_dlq_purge_older(hub_store_t *self, uint64_t before_us, size_t *purged);

/* ---- de-duplication and look-ups ------------------------------------------- */

typedef enum {
    HUB_STORE_STATE_QUEUED = 1, /* waiting for delivery or acknowledgement */
    HUB_STORE_STATE_DEAD,       /* in the dead-letter queue */
    HUB_STORE_STATE_DONE        /* acknowledged (or purged), still remembered for dedup */
} hub_store_state_t;

/* Finds (sender, message_id): its seq and state (either may be NULL). A
 * read; any thread. 0, HUB_ENOTFOUND if the store does not know it (never
 * seen, or forgotten by prune_dedup), HUB_EINVAL, or a read error. */
int hub_store_lookup(hub_store_t *self, const char *sender, const char *message_id,
                     uint64_t *seq, hub_store_state_t *state);

/* Forgets (sender, message_id) pairs accepted at or before now_us minus the
 * window, at most HUB_STORE_PRUNE_BATCH per call (call again while *pruned
 * equals it), one write transaction. A pair whose message is still queued
 * or dead-lettered stops counting for dedup but is kept for
 * hub_store_lookup() until it goes. 0, HUB_EINVAL, or a write error with
 * nothing forgotten. */
int hub_store_prune_dedup(hub_store_t *self, uint64_t now_us, size_t *pruned);

/* ---- room and what members hold ------------------------------------------- */

/* Bytes in use (LMDB: pages that hold data, not free pages), the store's
 * size (max_bytes as the backend rounded it) and the number of dead
 * letters. Any out-param may be NULL. A read; any thread. */
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

/* ---- tracked requests -------------------------------------------------------
 * A queued REQUEST waiting for its reply, kept so that the hub still knows,
 * after a restart, which reply it may accept (from the request's receiver,
 * to its sender, once). Keyed by the request's message_id; a put with the
 * same id replaces the entry. Write functions (put, del, load) follow the
 * rules of every write (one transaction, or a nested one inside a batch):
 * 0 when done, or an error with nothing changed; HUB_EINVAL for a bad
 * argument (put checks every entry before writing any). */
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
 * deletes the expired and damaged ones, counted in *expired, may be NULL).
 * cb may read the store but not write to it. */
typedef void (*hub_store_request_cb)(const hub_store_request_t *req, void *user);
int hub_store_requests_load(hub_store_t *self, uint64_t now_us, hub_store_request_cb cb,
                            void *user, size_t *expired);

#endif
