/* hub_audit — the hub's append-only, hash-chained, signed audit log.
 *
 * Every decision the hub takes about a message or a member is one record:
 * who sent what to whom, when, for what purpose, and what the hub did with
 * it. A record never holds the payload nor anything a reader can test a
 * guess against: not a plain hash of the payload (a look-up's payload is a
 * 12-digit personal ID and a fixed text, found again by hashing guesses),
 * not the bare envelope digest (hub_sign.h; its message id is in the record
 * and its other fields are few to guess, so a guessed personal ID could be
 * confirmed), and not the sender's signature over that digest (the same
 * test, with the sender's public key). It holds envelope_mac, an HMAC of
 * the envelope digest keyed from the hub's secret key
 * (hub_audit_envelope_mac()): the hub's operator can tell whether an
 * envelope a party presents is the one recorded; an auditor with the log
 * and the public key learns nothing about the payload. An auditor checks the log
 * with hub_audit_verify_dir() (`hubctl audit verify`) and the hub's Ed25519
 * public key, without trusting the machine that holds it.
 *
 * Files. The log is a directory of files audit-000001.log, audit-000002.log,
 * … (six digits or more; the number gives the order). A file is rotated once
 * it reaches max_file_bytes: the hub seals it with a checkpoint, syncs it, and
 * the next record opens the next number.
 *
 * Records. One JSON object per line, keys in this fixed order, ending "\n":
 *   {"seq":N,"ts":US,"event":"ACCEPTED","message_id":"…","hub_seq":N,
 *    "sender":"…","receiver":"…","service":"…","purpose":"…","dossier":"…",
 *    "outcome":"…","envelope_mac":"<hex>","sender_signature":"<hex>",
 *    "reason":"…","prev":"<64 hex>"}
 *   (logs written before these fields have "payload_sha256":"<hex>" where
 *   purpose … envelope_mac are; they still verify, as they were written.
 *   The hub now leaves sender_signature empty for envelopes: see above.)
 * and for checkpoints
 *   {"seq":N,"ts":US,"event":"CHECKPOINT","count":N,
 *    "prev_checkpoint":"<64 hex>","hub_signature":"<128 hex>","prev":"<64 hex>"}
 * - seq starts at 1 and grows by exactly 1 across all files; ts is wall-clock
 *   microseconds since the Unix epoch; hex is lower case; absent hashes and
 *   signatures are "".
 * - Text is JSON-escaped (\" \\ and \u00XX for control bytes only); bytes
 *   that are not UTF-8 become U+FFFD; ids and service are cut to
 *   HUB_AUDIT_ID_MAX bytes (purpose too), dossier and outcome to
 *   HUB_AUDIT_WORD_MAX and reason to HUB_AUDIT_REASON_MAX bytes, a cut
 *   string ending in "...". A line is canonical: the verifier re-renders
 *   every record it parses and requires the same bytes.
 * - prev is the SHA-256 of the previous line's exact bytes,
 *   newline included; 64 zeros for seq 1. The chain runs across files.
 * - A CHECKPOINT seals the chain: prev is the chain head it seals, count the
 *   records before it (= seq - 1), prev_checkpoint the hash of the previous
 *   checkpoint's line (zeros for the first), and hub_signature the Ed25519
 *   signature (libsodium) by the hub's key over
 *     "LTH-AUDIT-CHECKPOINT-V1" 0x00 || u64 seq || u64 ts || u64 count
 *     || prev (32 bytes) || prev_checkpoint (32 bytes)      (u64 big-endian)
 *   Every field of a checkpoint line is signed. The hub also logs each
 *   checkpoint's seq and head (hub_log, INFO), an anchor outside the log.
 * - A checkpoint is written after every checkpoint_every_records records,
 *   by hub_audit_tick() once checkpoint_every_us has passed since the last
 *   one (only if records were added), at rotation, and at close.
 * - RECOVERED records are written by hub_audit_open() when the previous run
 *   did not close the log: either the last line was cut by a crash during a
 *   write (the torn bytes stay where they are as evidence, and the log
 *   continues in a new file whose first record names them), or the log ends
 *   with records after its last checkpoint (a crash or a kill).
 *
 * What verification proves. A modified, removed, inserted or reordered
 * record breaks the chain; a changed checkpoint breaks its signature; a cut
 * line has no newline. Records after the last checkpoint are chained but not
 * signed: anyone who can write the directory can cut them off or add more,
 * so hub_audit_verify_dir() reports such a log as unsealed (HUB_EAGAIN),
 * which is normal while the hub runs. Cutting whole records back to an
 * earlier checkpoint, or deleting whole trailing files, is not detectable
 * from the log alone: hence anchors. The hub logs each checkpoint's seq and
 * line hash ("anchor=SEQ:HASH"), keeps the last durable one in its store
 * (config anchor_seq/anchor_hash: open refuses a log behind it), and
 * verification with hub_audit_verify_opts_t.anchor_* fails on a log that
 * ends before, or differs at, a head an auditor kept.
 *
 * Nodes. Several hubd nodes of one hub (sharing its key) each keep their
 * own log. A node that opens its log with hub_audit_config_t.node_id set
 * writes a NODE_OPENED record first (outcome: the node id; reason: "node
 * NODE_ID opened the log"); the records after it, up to the next
 * NODE_OPENED, are that node's. The record is chained and sealed like any
 * other, so the attribution is covered by the next checkpoint's signature.
 * Logs written before this record existed (or by tools that set no node
 * id) verify as before; their records name no node.
 *
 * Key rotation. A KEY_ROTATED record (reason "new hub signing key <hex>",
 * sender_signature: the new key's Ed25519 signature over
 * "LTH-AUDIT-KEY-ROTATION-V1" 0x00 || old public || new public) is followed
 * at once by a checkpoint signed with the old key; later checkpoints are
 * signed with the new one. The verifier starts from the key it is given and
 * follows each rotation; open refuses a log whose last checkpoint is signed
 * by another key unless a KEY_ROTATED record just before it names the key
 * open was given (or accept_key_change).
 *
 * Time-stamps. A TIMESTAMPED record (reason "checkpoint SEQ time-stamped:
 * token audit-cp-….tsr sha256 HEX") says that the RFC 3161 token over that
 * checkpoint's line hash is in the directory (hub_tsa.h writes it); the
 * verifier checks that the file is there with that hash and, given the TSA's
 * certificate, the token itself.
 *
 * Durability: hub_audit_append() buffers in memory and writes in large
 * blocks; it does not wait for the disk (except when a file is rotated twice
 * between two flushes). hub_audit_write() writes the buffer out with
 * write(2), without a sync: the records are then in the kernel's page cache
 * and survive the death of the process (kill -9, a crash, the OOM killer),
 * not a power loss or a kernel crash. hub_audit_flush() writes the buffer
 * out and fdatasync()s the current file, a file retired by rotation since
 * the last flush, and the directory when a file was created: what was
 * appended before the call survives a power loss once it returns 0. The
 * caller decides when. The hub:
 *   - flushes once per group commit, before it ACKs, so that an ACKed
 *     message is in the audit log;
 *   - writes the ACCEPTED records of what it accepts without the store
 *     (outcome "request online-only", "reply online-only", "event
 *     online-only"; envelopes the hub answers or keeps for nobody) at the
 *     end of the loop turn that routed them, before the turn's Deliveries
 *     and receipts go to ZeroMQ: an exchange that left the hub is in the
 *     file even if hubd is killed right after (one write(2) per turn that
 *     had such records; the loop thread renders and chains them);
 *   - flushes them with the group commit that the end of that same turn
 *     starts (or, while one runs, the next, which starts when it returns):
 *     a power loss loses at most the online-only records of the last commit
 *     cycle (the time of one group commit, a few ms on a healthy disk; as
 *     long as the store takes to commit when it is slow), never an ACKed
 *     durable message's record.
 * Open and close flush by themselves. After a kill the last line may be cut
 * (a write(2) cut short) or records may follow the last checkpoint: open
 * recovers both (RECOVERED records) and the chain verifies.
 *
 * Threads and ownership: append, tick, write, flush, seq and durable_head
 * may be called from several threads at once (the hub's loop appends and
 * writes while its commit worker appends and flushes): a mutex guards the
 * object, held during an append (a record's HMAC, rendering and hash) or a
 * write(2), never across flush's fdatasync() calls, so that appending never
 * waits for the disk. Records of concurrent appends are chained in the order
 * they take the mutex. Open, seal, rotate_key and close are for one thread
 * alone (no other call running). The object holds an exclusive flock() on
 * the directory (a second opener gets HUB_EAGAIN), and a copy of the signing
 * secret that close wipes. The strings of a record passed to append are only
 * read during the call. After an I/O error the object refuses further
 * appends (HUB_EIO): appending after a half-written line would bury it in
 * the chain; reopen to recover.
 */
#ifndef HUB_AUDIT_H
#define HUB_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_AUDIT_ID_MAX 256          /* bytes of message_id, sender, receiver, service, purpose */
#define HUB_AUDIT_REASON_MAX 1024     /* bytes of reason */
#define HUB_AUDIT_WORD_MAX 64         /* bytes of dossier and outcome */
#define HUB_AUDIT_SIGNATURE_MAX 64    /* bytes of a sender signature */
#define HUB_AUDIT_LINE_MAX 16384      /* longest possible record line */
#define HUB_AUDIT_FILE_NAME_MAX 32    /* "audit-000001.log" and a NUL */

typedef enum {
    HUB_AUDIT_ACCEPTED = 1,      /* durable in the store; ACK sent to the sender */
    HUB_AUDIT_DELIVERED,         /* handed to the receiver (reason: "attempt N") */
    HUB_AUDIT_SETTLED,           /* the receiver acknowledged it; may be forgotten */
    HUB_AUDIT_NACKED,            /* refused; reason: the NACK code name and text */
    HUB_AUDIT_DEAD_LETTERED,     /* moved to the dead-letter queue; reason says why */
    HUB_AUDIT_REPLAYED,          /* an operator replayed it from the dead-letter queue */
    HUB_AUDIT_EXPIRED,           /* its TTL ran out before delivery */
    HUB_AUDIT_MEMBER_CONNECTED,  /* sender: the member whose key was admitted */
    HUB_AUDIT_MEMBER_REFUSED,    /* reason: which key, and why it was refused */
    HUB_AUDIT_CHECKPOINT,        /* written by this module only */
    HUB_AUDIT_RECOVERED,         /* written by this module only */
    HUB_AUDIT_KEY_ROTATED,       /* written by hub_audit_rotate_key() only */
    HUB_AUDIT_TIMESTAMPED,       /* a checkpoint's RFC 3161 token is on disk (see below) */
    HUB_AUDIT_NODE_OPENED,       /* by hub_audit_open() only; outcome: the node id */
} hub_audit_event_t;

/* One record. For hub_audit_append() the caller fills what it knows (NULL
 * strings are empty, seq and prev_hash are ignored) and the log assigns seq
 * and prev_hash. hub_audit_find_message() hands out records whose strings
 * point into a buffer that lives until the callback returns. */
typedef struct {
    hub_audit_event_t event;
    uint64_t seq;                  /* audit sequence number, from 1 */
    uint64_t time_us;              /* wall clock µs; 0 means "now" on append */
    const char *message_id;        /* the envelope's message id, or empty */
    uint64_t hub_seq;              /* the store's sequence number, or 0 */
    const char *sender;            /* member ids, as the hub authenticated them */
    const char *receiver;
    const char *service;           /* "SERVICE/VERSION" */
    const char *purpose;           /* the agreement's purpose (policy), or empty */
    const char *dossier;           /* the dossier code the payload names, or empty */
    const char *outcome;           /* a short word: "online", "queued", a NACK code, … */
    bool has_digest;
    uint8_t digest[32];            /* on append: the envelope digest (hub_envelope_digest()),
                                      written as its hub_audit_envelope_mac(); in a parsed
                                      record: that MAC */
    bool legacy;                   /* an old line: digest is its payload_sha256 and
                                      purpose, dossier and outcome are absent */
    const uint8_t *signature;      /* the sender's envelope signature, or NULL */
    size_t signature_len;          /* at most HUB_AUDIT_SIGNATURE_MAX */
    const char *reason;            /* why: NACK code and text, refusal, attempt */
    uint8_t prev_hash[32];         /* SHA-256 of the previous line */
    const char *node_id;           /* ignored on append; in a found record: the node whose
                                      NODE_OPENED record came last before it, or "" */
} hub_audit_record_t;

typedef struct {
    uint64_t max_file_bytes;           /* rotate at this size; 0 = 64 MiB */
    uint64_t checkpoint_every_records; /* 0 = 1000; UINT64_MAX = never by count */
    uint64_t checkpoint_every_us;      /* 0 = 10 s; UINT64_MAX = never by time */
    uint8_t sign_secret[64];           /* the hub's Ed25519 key (libsodium layout) */
    uint8_t sign_public[32];           /* must match sign_secret */
    /* The last checkpoint the store recorded (hub_store_audit_anchor_get):
     * open refuses a log that ends before it (HUB_ESTALE-like HUB_EPARSE,
     * err names what is missing) unless accept_gap is set, and then writes
     * a RECOVERED record naming the gap (hub_audit_gap()). 0 = none. */
    uint64_t anchor_seq;
    uint8_t anchor_hash[32];
    bool accept_gap;
    /* Go on when the last checkpoint is signed by another key and no
     * KEY_ROTATED record hands the log over (the old key is lost): a
     * RECOVERED record says so, and verification names the point. */
    bool accept_key_change;
    /* This node's id (hub_config node_id), written in a NODE_OPENED record
     * at open; "" = none (tools that open the log, unit tests). */
    char node_id[HUB_AUDIT_WORD_MAX];
} hub_audit_config_t;

/* A checkpoint: its seq, its wall-clock time and the SHA-256 of its line
 * (newline included) - the value `hubctl audit verify --anchor SEQ:HASH`
 * checks and an RFC 3161 token's message imprint. */
typedef struct {
    uint64_t seq;                      /* 0: no checkpoint yet */
    uint64_t time_us;
    uint8_t hash[32];
} hub_audit_head_t;

typedef struct hub_audit hub_audit_t;

/* Opens the log in dir (created, mode 0750, when missing) and continues the
 * chain from its last file. Checks that the last file's records parse and
 * link; a last line cut by a crash, or records left unsealed, are noted in a
 * RECOVERED record (see hub_audit_open_notice()). Returns 0, HUB_EINVAL (bad
 * config or key pair), HUB_EAGAIN (another process has the log open),
 * HUB_EPARSE (the last file is damaged: run `hubctl audit verify`, move the
 * directory aside), HUB_EIO/HUB_ENOENT/HUB_EPERM, HUB_ENOMEM; err says which. */
int hub_audit_open(const char *dir, const hub_audit_config_t *config, hub_audit_t **out,
                   char *err, size_t err_size);

/* Appends one record (not CHECKPOINT or RECOVERED: HUB_EINVAL), and a
 * checkpoint after it when one is due. Returns 0, HUB_EINVAL, HUB_EIO,
 * HUB_ECRYPTO. */
int hub_audit_append(hub_audit_t *self, const hub_audit_record_t *rec);
/* Writes a checkpoint when checkpoint_every_us has passed since the last one
 * and records were added since. now_us: wall clock (hub_now_us()). */
int hub_audit_tick(hub_audit_t *self, uint64_t now_us);
/* Writes buffered records out (write(2): into the page cache, which a
 * killed process leaves behind) without waiting for the disk. Returns 0,
 * HUB_EINVAL, HUB_EIO. */
int hub_audit_write(hub_audit_t *self);
/* Writes buffered records out and fdatasync()s the current file. */
int hub_audit_flush(hub_audit_t *self);
/* Seals the log with a checkpoint (unless the last record is one), flushes,
 * wipes the key and frees. Accepts NULL and *self_p == NULL; sets *self_p to
 * NULL. Returns 0 or the error that kept the final checkpoint from disk. */
int hub_audit_close(hub_audit_t **self_p);
/* The seq of the last record written (0 for an empty log). */
uint64_t hub_audit_seq(const hub_audit_t *self);
/* What open found and recovered from, as a sentence, or NULL if the
 * previous run closed the log cleanly. */
const char *hub_audit_open_notice(const hub_audit_t *self);

/* The last checkpoint that a flush has made durable (seq 0 when none). */
void hub_audit_durable_head(const hub_audit_t *self, hub_audit_head_t *out);
/* Records the log was found to miss at open (accepted with accept_gap:
 * the store's anchor seq minus the log's last checkpoint seq), else 0. */
uint64_t hub_audit_gap(const hub_audit_t *self);
/* Writes a checkpoint unless the last record is one, and flushes. */
int hub_audit_seal(hub_audit_t *self);
/* Key rotation: appends a KEY_ROTATED record naming new_public and carrying
 * new_secret's signature over
 *   "LTH-AUDIT-KEY-ROTATION-V1" 0x00 || old public (32) || new public (32)
 * (proof that the holder of the new key asked for it), seals it with a
 * checkpoint signed by the old key, flushes, and from then on signs with
 * the new key. Returns 0, HUB_EINVAL (bad key pair, same key), HUB_EIO,
 * HUB_ECRYPTO. */
int hub_audit_rotate_key(hub_audit_t *self, const uint8_t new_secret[64],
                         const uint8_t new_public[32]);
/* The name of the time-stamp token file of the checkpoint at seq, in the
 * log's directory: "audit-cp-000000001234.tsr". */
#define HUB_AUDIT_TSR_NAME_MAX 40
void hub_audit_tsr_name(uint64_t seq, char out[HUB_AUDIT_TSR_NAME_MAX]);
/* The reason text of a TIMESTAMPED record (what the verifier expects):
 * "checkpoint SEQ time-stamped: token audit-cp-….tsr sha256 HEX". */
void hub_audit_timestamped_reason(uint64_t cp_seq, const uint8_t token_sha256[32], char *out,
                                  size_t size);
/* What a record holds for an envelope: HMAC-SHA256 over its 32-byte digest
 * with the key SHA-256("LTH-AUDIT-MAC-V1" 0x00 || the first 32 bytes of the
 * hub's Ed25519 secret key, its seed). Only who holds the hub's secret key
 * can compute it. */
void hub_audit_envelope_mac(const uint8_t sign_secret[64], const uint8_t digest[32],
                            uint8_t out[32]);
/* "ACCEPTED", …; "UNKNOWN" for a value outside the enum. */
const char *hub_audit_event_name(hub_audit_event_t event);

typedef struct {
    uint64_t files;              /* files read */
    uint64_t key_rotations;      /* KEY_ROTATED records followed */
    uint8_t final_key[32];       /* the key in force at the end of the log */
    uint64_t timestamps;         /* time-stamp tokens checked */
    uint64_t first_timestamped;  /* seq of the first time-stamped checkpoint, 0 = none */
    uint64_t last_timestamped;   /* seq of the last one */
    uint64_t records;            /* lines verified, checkpoints included */
    uint64_t checkpoints;        /* checkpoint signatures verified */
    uint64_t recoveries;         /* RECOVERED records (restarts after a crash) */
    uint64_t last_seq;           /* seq of the last verified record */
    uint64_t unsealed_records;   /* records after the last checkpoint */
    char node_id[HUB_AUDIT_WORD_MAX]; /* the node of the last NODE_OPENED record ("" = none) */
    uint64_t node_records;       /* NODE_OPENED records read */
    bool node_changed;           /* NODE_OPENED records name more than one node */
    /* Where the first problem is (empty / 0 when there is none). */
    char file[HUB_AUDIT_FILE_NAME_MAX];
    uint64_t line;               /* 1-based line in file */
    uint64_t seq;                /* the audit seq concerned */
    char message[512];           /* a sentence: what was found, or what failed */
} hub_audit_verify_report_t;

/* Checks every file of dir in order: each line parses and is canonical, seq
 * grows by 1, each prev matches the previous line, every checkpoint's
 * signature verifies with hub_sign_public and chains to the previous
 * checkpoint, cut lines are acknowledged by a RECOVERED record, and the log
 * ends with a checkpoint. Stops at the first problem. Returns
 *   0            the whole log is intact and sealed;
 *   HUB_EAGAIN   intact, but the last report->unsealed_records records come
 *                after the last checkpoint (the hub is running, crashed and
 *                has not restarted, or the tail was cut);
 *   HUB_EPARSE   modified, removed, inserted or reordered records, a cut
 *                line, a missing file, a broken checkpoint chain;
 *   HUB_ECRYPTO  a forged checkpoint, or one signed with another key;
 *   HUB_ENOENT   no audit files in dir; HUB_EIO, HUB_ENOMEM.
 * The report is filled in every case. */
int hub_audit_verify_dir(const char *dir, const uint8_t hub_sign_public[32],
                         hub_audit_verify_report_t *report);

/* What verification checks beyond the chain and the signatures. */
typedef struct {
    const uint8_t *hub_sign_public; /* the key the log begins with (required) */
    uint64_t anchor_seq;            /* a head an auditor kept: the record at */
    uint8_t anchor_hash[32];        /*   anchor_seq must hash to this; 0 = none */
    const char *tsa_cert;           /* PEM file of the TSA's certificate: check every
                                       token's signature and imprint; NULL = only that
                                       each token file named in the log is there unaltered */
    uint64_t stop_after_seq;        /* stop there, as if the log ended (0 = read it all):
                                       hubd checks what it found at open while it appends */
    bool early_keys_unknown;        /* hubd's own check: hub_sign_public is the key at the
                                       end; checkpoints before a KEY_ROTATED record may be
                                       signed by earlier keys it does not hold */
} hub_audit_verify_opts_t;

/* hub_audit_verify_dir() with options. Besides its codes: a log that ends
 * before the anchor, or holds another record there, is HUB_EPARSE; a key
 * change without a KEY_ROTATED record, or a forged token, HUB_ECRYPTO; a
 * missing or altered token file HUB_EPARSE. */
int hub_audit_verify_dir_opts(const char *dir, const hub_audit_verify_opts_t *opts,
                              hub_audit_verify_report_t *report);

/* Called once per record of the message, in log order; return non-zero to
 * stop. file is the file name, line 1-based. */
typedef int (*hub_audit_found_cb)(const hub_audit_record_t *rec, const char *file,
                                  uint64_t line, void *user);
/* Calls found for every record whose message_id equals message_id. Does not
 * verify the log (run hub_audit_verify_dir() for that); lines that do not
 * parse are skipped. Returns 0, HUB_ENOTFOUND (no record), HUB_ENOENT,
 * HUB_EIO, HUB_EINVAL. */
int hub_audit_find_message(const char *dir, const char *message_id, hub_audit_found_cb found,
                           void *user);

/* The node named by the last NODE_OPENED record of the log in dir, into
 * out (size bytes; "" when none), without verifying the log: to name a
 * log whose verification stopped before it. Returns 0, HUB_ENOTFOUND (no
 * NODE_OPENED record), HUB_ENOENT, HUB_EIO, HUB_ENOMEM. */
int hub_audit_node_of(const char *dir, char *out, size_t size);

/* What hub_audit_find() matches: every field given (non-NULL, non-empty)
 * must equal the record's; at least one must be given. */
typedef struct {
    const char *message_id;
    const char *service; /* "SERVICE/VERSION", e.g. "citizen.lookup/v1" */
} hub_audit_filter_t;
/* hub_audit_find_message() for any filter: calls found for every record
 * (checkpoints excluded) that matches, in log order. Same returns. */
int hub_audit_find(const char *dir, const hub_audit_filter_t *filter, hub_audit_found_cb found,
                   void *user);

#endif
