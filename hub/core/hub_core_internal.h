/* hub_core_internal.h — PRIVATE to hub/core: the server's state and the
 * functions its stages share. Nothing outside hub/core includes it but the
 * unit test that drives admission and commit without a connection
 * (tests/unit/test_admit.c); the public contract is hub_server.h.
 *
 * The data path, in the order an envelope takes it:
 *   hub_server.c    life cycle, dispatch of frames, Hello/heartbeat, timers, reloads, and
 *                   the one end-of-turn work (server__end_of_turn: a uv_check_t after
 *                   I/O, a uv_prepare_t before the loop blocks) where what handlers
 *                   enqueued is flushed, receipted and committed
 *   hub_view.c      Batch frames and envelopes read in place (what protobuf-c would
 *                   read, without its copies), or handed to protobuf-c
 *   hub_admit.c     admission: an envelope leaves as exactly one of NACK, online-only
 *                   enqueue or pending push; request tracking and the reply rule
 *   hub_pubsub.c    publications and durable subscriptions
 *   hub_meta.c      metaservices: what a member may ask the hub itself
 *   hub_commit.c    group commit: nothing is ACKed before the store's commit returns
 *   hub_delivery.c  delivery: early delivery, the in-flight window, the pump
 *   hub_send.c      frames out: deliveries, receipts (all receipt paths), slow peers
 *   hub_trust.c     keys, certificates, agreements, delegations
 *   hub_zap.c       ZAP: who may connect
 *   hub_outcome.c   outcomes: each envelope's refusal, acceptance, delivery, settle or
 *                   dead letter is recorded here, once, for audit, flows and metrics
 *   hub_members.c   the member table and the audit queue
 *   hub_archive_server.c  the message archive as the server uses it: opening,
 *                   maintenance, what the commit worker archives
 *   hub_server_ops.c  the hub as the operator surface sees it (hub_ops_source.h)
 *   hub_cluster.c   cluster = on: this node among several over one PostgreSQL store
 *                   (hub_cluster.h): notifications, member locations, the node link
 *
 * Beside the data path, modules split in several files share a private
 * header of their own:
 *   hub_audit_internal.h  the audit log: hub_audit_record.c (the line codec,
 *                   signed messages, file names) under hub_audit.c (the
 *                   writer and opening) and hub_audit_verify.c (verify, find);
 *                   hub_audit_start.c checks the whole log when hubd starts
 *   hub_cert_internal.h  member certificates: hub_cert.c (the format and
 *                   shared helpers) under hub_cert_verify.c (X.509 chain
 *                   validation) under hub_certdir.c (a directory of them);
 *                   hub_crl_state.c (the highest-CRL-number rule) and hub_ca.c
 *                   (the CA behind 'hubctl ca') use hub_cert.c only
 *   hub_archive_internal.h  the message archive: hub_archive_format.c (keys,
 *                   encryption, the record and seal codecs, walking a file)
 *                   under hub_archive.c (the writer) and hub_archive_read.c
 *                   (read and verify a directory)
 *   hub_bytes.h     integers in byte arrays (big- and little-endian), for the
 *                   files above and the store
 */
#ifndef HUB_CORE_INTERNAL_H
#define HUB_CORE_INTERNAL_H

#include "hub_server.h"
#include "hub_conf.h"
#include "hub_archive.h"
#include "hub_audit.h"
#include "hub_cert.h"
#include "hub_delegation.h"
#include "hub_error.h"
#include "hub_flows.h"
#include "hub_id.h"
#include "hub_jsonw.h"
#include "hub_keys.h"
#include "hub_log.h"
#include "hub_map.h"
#include "hub_metrics.h"
#include "hub_ops.h"
#include "hub_policy.h"
#include "hub_sign.h"
#include "hub_store.h"
#include "hub_tsa.h"
#include "hub_wire.h"
#include "hub_zsock.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sodium.h>
#include <unistd.h>
#include <zmq.h>

#define HUB__DRAIN_BUDGET 256 /* ZeroMQ messages read per loop turn */
/* ... and envelopes: a turn ends after about this many, so that a member
 * sending large batches cannot make everyone else's turn wait long. */
#define HUB__TURN_ENVELOPES 1024
/* ... and frame bytes kept for the turn's deliveries (hub_server.turn_arena). */
#define HUB__TURN_LENT_MAX (16u << 20)
#define HUB__MAX_COMMIT_ITEMS 8192 /* envelopes per store transaction */
/* Envelopes waiting for the store (admitted, not yet answered by a commit),
 * and each member's share of them, so that no member can take the store's
 * queue from the others (an admitted member is not a trusted one). The
 * rule (core__store_room):
 *   - while the envelopes the running commit has not taken (pending_n) are
 *     at most half of HUB__MAX_PENDING, everyone is admitted: a single fast
 *     sender is not held to a share it takes from nobody (hubbench's raw
 *     sender keeps some 20,000 unanswered at 190,000 a second);
 *   - past half, a member may hold at most HUB__MEMBER_PENDING_MAX waiting
 *     envelopes (its store_waiting, the running commit's included; a
 *     publication costs its publisher one per subscriber); over that it
 *     alone is told QUEUE_FULL with its own count. The SDK's window is as
 *     wide, so a member using it is never refused this;
 *   - all together fill at most HUB__MAX_PENDING; past that, only a member
 *     that holds fewer than HUB__PENDING_SMALL (the new ones included) is
 *     admitted, into a reserve of HUB__PENDING_RESERVE more: the hard cap,
 *     so that memory stays bounded whatever the senders do.
 * Why a modest sender is not refused: since pending_n was last at most
 * half the cap, each member that got envelopes in has at most its share of
 * those still waiting, so pending_n <= half + F x share for the F members
 * that did: one flooder, however fast, leaves a quarter of the cap to the
 * others. Two or more may fill it; then in the reserve each member
 * has fewer than HUB__PENDING_SMALL of its envelopes admitted there still
 * waiting (it enters only while its whole count, those included, stays
 * below that), so F flooders take at most F x HUB__PENDING_SMALL of it. A
 * member sending at a modest rate (under HUB__PENDING_SMALL per two
 * commits: 2,000 a second with 250 ms commits) is admitted unless fifteen
 * members flood at once, or the honest traffic alone outruns the disk,
 * when QUEUE_FULL is the right answer for all. */
#define HUB__MAX_PENDING 65536        /* ordinary cap, all senders (pending_n) */
#define HUB__MEMBER_PENDING_MAX 16384 /* waiting envelopes per member */
#define HUB__PENDING_SMALL 1024       /* a member under this may use the reserve */
#define HUB__PENDING_RESERVE 16384    /* hard cap: HUB__MAX_PENDING + this */
#define HUB__SPARE_ITEMS_MAX 4096     /* a commit's items array kept for the next, at most */
#define HUB__ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define HUB__READ_BATCH 512 /* messages read from a queue at a time */
/* What one connection can hold of the hub's memory: ZeroMQ keeps at most
 * HUB__SNDHWM frames for a peer that does not read, each Deliveries frame
 * is cut near HUB__FRAME_SOFT_MAX bytes, and what ZeroMQ will not take yet
 * waits in the member's own queue, counted in bytes against
 * max_waiting_bytes (send__waiting). */
#define HUB__SNDHWM 16
#define HUB__RCVHWM 1000
/* 128 KiB, not more: a frame is encrypted, sent, decrypted and read whole
 * at each step, so the receiver starts on the first envelopes only when
 * the frame's last has been written. With 1000 envelopes in flight, 1 MiB
 * frames left one or two frames circulating and most of the pipeline idle;
 * at 128 KiB about eight are in flight, each still carrying a hundred 1 KiB
 * envelopes (BENCHMARKS.md, "Smaller Deliveries frames"). */
#define HUB__FRAME_SOFT_MAX (128u << 10)
#define HUB__REFUSAL_LOGS_PER_S 5 /* refusal log lines per member and second */
#define HUB__WHY_MAX 512          /* bytes of a refusal's sentence */
#define HUB__RETRY_MS 2           /* frames ZeroMQ refused are offered again this often */

/* ------------------------------------------------------------------------ */
/* Members                                                                   */

typedef struct {
    uint64_t seq;
    uint64_t deadline_us; /* monotonic: redeliver when passed */
    uint32_t attempt;
    bool settled;
    char message_id[HUB_UUID_LEN + 1];
    const char *sender; /* interned: the sender member's id */
    /* A copy, not an allocation: one malloc/free less per delivery. */
    char service[HUB_STORE_NAME_MAX + 1];
    uint64_t accepted_at_us; /* wall clock */
} core__inflight_t;

/* What an audit record says of an envelope besides who, whom and which
 * service (hub_outcome.c fills it): never the payload nor a plain hash of
 * it. */
typedef struct {
    const char *purpose; /* interned (members__intern): the agreement's purpose; NULL: none */
    const char *outcome; /* static text: "request online-only", a NACK code, …; NULL: none */
    char dossier[HUB_AUDIT_WORD_MAX + 1]; /* the dossier code the payload names, or "" */
    bool has_digest;
    uint8_t digest[32]; /* the envelope digest (hub_sign.h); the log keeps a keyed MAC */
    /* Owned: a copy of the encoded envelope, for the message archive
     * (archive), from which the record's digest and dossier code are read
     * too when has_digest is unset (outcome__evidence_later); or NULL. */
    uint8_t *bytes;
    size_t len;
    bool archive; /* bytes go to the message archive too (online-only, hub_archive.c) */
} core__evidence_t;

/* An audit record waiting for the commit worker, which writes it with the
 * next group commit (so the loop never waits for the disk), unless it is an
 * online-only exchange's (online): the loop writes those itself at the end
 * of the turn, before the turn's deliveries leave (outcome__audit_online),
 * and the worker skips them (written) but still archives their envelopes.
 * Strings are owned copies, except sender and receiver, which point at
 * member ids that live as long as the server (or the hub's own id). */
typedef struct {
    hub_audit_event_t event;
    bool has_evidence;
    bool online;  /* written by the loop at the end of its turn */
    bool written; /* it was: in the log (page cache), synced by the next flush */
    uint64_t time_us;
    uint64_t hub_seq;
    char message_id[HUB_UUID_LEN + 1];
    const char *sender;
    const char *receiver;
    char *service;
    char *reason;
    core__evidence_t ev; /* when has_evidence */
} core__auditq_t;

typedef struct {
    uint64_t seq; /* 0 for online-only envelopes, which need no settle */
    uint32_t attempt;
    /* The sender's encoded envelope: an owned copy, or (lent) the pending
     * record's own bytes, which outlive this turn's flush (send__enqueue_lent). */
    uint8_t *bytes;
    size_t len;
    uint8_t sign_key[32]; /* the sender's Ed25519 key, for the receiver to verify */
    bool has_sign_key;
    bool lent; /* bytes are not this item's to free */
} core__outitem_t;

/* Receipts under construction for one sender. */
typedef struct {
    const char *sender;   /* for the audit log */
    const char *receiver; /* of the envelope being judged, once known to the hub */
    const char *service;
    const hub_envelope_t *env; /* the envelope being judged, once decoded (audit evidence) */
    const char *purpose;       /* its agreement's purpose, once known */
    bool audited;              /* refusals already in the audit log (the commit worker's) */
    Lth__V1__Ack *acks;
    Lth__V1__Ack **ack_ptrs;
    char (*ack_ids)[HUB_UUID_LEN + 1]; /* acks[i].message_id, when it fits */
    Lth__V1__Nack *nacks;
    Lth__V1__Nack **nack_ptrs;
    char **reasons;
    size_t n_acks, n_nacks, cap;
    uint32_t item; /* 1-based place in the Batch of the envelope being judged; 0 = none */
} core__receipts_t;

/* An encoded frame ZeroMQ would not take yet (the peer's pipe was full). */
typedef struct {
    uint8_t *buf;
    size_t len;
} core__blocked_t;

typedef struct members__member {
    char id[HUB_MEMBER_ID_MAX + 1];
    uint8_t rid[256]; /* ROUTER routing id of the live connection */
    size_t rid_len;
    uint64_t connected_at_us; /* wall clock */
    uint64_t last_seen_mono_us;
    uint64_t last_seen_us; /* wall clock */
    char address[64];      /* peer address of the live connection */
    char *services;        /* offered services, comma-separated (from Hello) */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;

    /* Durable delivery state (valid while online). */
    core__inflight_t *inflight; /* sorted by seq */
    size_t inflight_n, inflight_cap, inflight_open;
    uint64_t loaded_seq; /* highest seq handed out since (re)connect */
    uint64_t *settled;   /* settled seqs waiting for the next commit */
    size_t settled_n, settled_cap;
    size_t pending_late;    /* queued for it, not delivered early, not yet committed */

    /* Rate limit (token buckets, refilled by elapsed time, a second's worth
     * deep) and what it may hold; from hubd.conf, or its policy `limit`. */
    uint64_t rate_msgs, rate_bytes;
    uint64_t send_msgs, send_bytes, recv_msgs, recv_bytes; /* store quotas */
    double tokens_msgs, tokens_bytes;
    double flood_debt;             /* refusals not yet drained at its rate (hub_flood.c) */
    uint64_t flood_debt_mono_us;   /* when flood_debt was last drained */
    uint64_t banned_until_mono_us; /* cut off for flooding: its key is refused until then */
    int conn_fd;                   /* its connection's socket (ZMQ_SRCFD), -1 unknown */
    uint64_t refill_mono_us;
    /* Refusal log lines: at most HUB__REFUSAL_LOGS_PER_S a second each. */
    uint64_t refusal_log_window_us;
    uint64_t refusals_unlogged;
    uint64_t refusals; /* its envelopes refused since the hub started (alarms) */

    /* Outbound deliveries gathered during this loop turn. */
    core__outitem_t *out;
    size_t out_n, out_cap;
    uint64_t out_bytes; /* envelope bytes in out[] */
    /* Frames the peer's ZeroMQ pipe would not take yet, in order. */
    core__blocked_t *blocked;
    size_t blocked_head, blocked_n, blocked_cap;
    uint64_t blocked_bytes;
    uint64_t stalled_since_mono_us; /* last time it took a frame while frames waited */
    struct members__member *next_blocked;
    struct members__member *next_dirty;

    /* ACKs of online-only envelopes held for the next Deliveries frame
     * (Hello.receipts_in_deliveries), at most HUB__HOLD_RECEIPTS_US. */
    core__receipts_t *held;
    size_t held_n, held_cap;
    uint64_t held_since_mono_us;
    struct members__member *next_held;

    /* The small fields, together so that the struct has no holes. */
    uint32_t open_requests; /* its requests still waiting for a reply */
    /* Its envelopes waiting for the store, pending or in the running
     * commit (core__pending_t.payer): at most HUB__MEMBER_PENDING_MAX. */
    uint32_t store_waiting;
    uint32_t limits_gen;    /* == server's: the cached limits (above) are current */
    uint32_t refusal_logs;  /* lines logged in this second (HUB__REFUSAL_LOGS_PER_S) */
    bool online;
    bool backlog;          /* the store may hold more than loaded_seq */
    bool rescan;           /* cluster: read the queue again from its start (delivery__pump) */
    bool on_blocked_list;
    bool dirty;            /* on the list of members with deliveries to flush */
    bool piggyback;        /* Hello.receipts_in_deliveries */
    bool on_held_list;
} core__member_t;

typedef struct {
    struct members__member *m;
    core__receipts_t r;
} core__turnrcpt_t;

/* An envelope waiting for the next group commit. */
typedef struct {
    hub_store_msg_t msg;
    uint8_t *bytes;       /* owned */
    /* The member whose share of the store's queue it counts against
     * (store_waiting): its sender, or a publication's publisher for each
     * copy. Member records live as long as the server (a member taken out
     * of the keys by a reload keeps its record), so this cannot dangle;
     * NULL: counted against nobody. */
    struct members__member *payer;
    uint8_t sign_key[32]; /* the sender's Ed25519 key, when verify is set */
    bool verify;          /* check the signature on the worker */
    int verdict;          /* set by the worker: 0, or a HUB_E* code from verification */
    /* A published event is stored once per subscriber under ids derived from
     * its own; the copies form a group that gets one receipt, for this id. */
    char group_id[HUB_UUID_LEN + 1]; /* empty: not a fan-out copy */
    bool group_first;
    const char *delegated_from; /* interned: the authority addressed, when delegated */
    const char *delegated_procedure; /* interned: the procedure its rule named, or NULL */
    bool early;                      /* delivered before its commit (delivery__deliver_early) */
    const char *purpose;        /* interned: its agreement's purpose, for the audit log */
    uint64_t queued_mono_us;
    uint64_t request_expires_us; /* a REQUEST: track it in the store until then (wall clock) */
    /* A REQUEST already answered when its commit starts (admit__request_note):
     * by an online-only reply (the reply was ACKed: nothing to keep), or by
     * the queued reply with this seq; if that reply is stored by the same
     * commit, the request need not be tracked in the store at all. */
    bool answered_online;
    uint64_t answered_by_seq;
} core__pending_t;

/* A queued message to dead-letter with a reason of its own: its agreement
 * ended before it could be delivered (the reason names the agreement), or
 * its receiver refused it (Settle.rejects). */
typedef struct {
    uint64_t seq;
    char *reason; /* owned */
} core__deadpol_t;

typedef struct {
    char receiver[HUB_MEMBER_ID_MAX + 1];
    uint64_t *seqs;
    size_t n;
} core__ackgroup_t;

typedef struct {
    uv_work_t req;
    hub_server_t *server;
    core__pending_t *items;
    size_t n_items, items_cap; /* items_cap: its allocation, for reuse (commit__start) */
    hub_store_outcome_t *outcomes;
    int append_rc;
    core__ackgroup_t *acks;
    size_t n_acks;
    uint64_t *attempt_seqs;
    size_t n_attempts;
    uint64_t *dead_ttl, *dead_retry;
    size_t n_dead_ttl, n_dead_retry;
    core__deadpol_t *dead_policy;
    size_t n_dead_policy;
    char **answered; /* tracked requests answered: forget them in the store */
    size_t n_answered;
    int other_rc;
    core__auditq_t *audit; /* loop-side records to append first */
    size_t n_audit;
    int audit_rc;
    uint64_t audit_seq;       /* the log's sequence after this commit */
    hub_audit_head_t audit_head; /* its last durable checkpoint */
    hub_store_msg_t *dead;    /* metadata of what was dead-lettered, for the flows */
    const char **dead_reason; /* one per dead[]; static, or owned by dead_policy */
    size_t n_dead;
    bool prune_dedup; /* forget expired de-duplication records too */
    size_t pruned;
    uint64_t work_us; /* how long commit__work took (lth_hub_commit_seconds) */
} core__commit_t;

/* Online-only messages of one flow accepted one after the other (a Batch's
 * run), counted in the flows at once (outcome__passed_flush). */
typedef struct {
    const char *sender;   /* interned member id; NULL: nothing counted */
    const char *receiver; /* interned member id */
    char service[HUB_STORE_NAME_MAX + 1]; /* as the envelopes name it */
    const char *label;    /* service (above) or "_unlisted" (members__service_label) */
    uint64_t n, bytes, now_us;
} core__passed_t;

typedef struct cluster__cluster core__cluster_t; /* hub_cluster.c */
typedef struct admit__requests core__requests_t; /* hub_admit.c */

struct hub_server {
    hub_config_t cfg;
    core__cluster_t *cluster; /* cluster = on: this node among several; else NULL */
    uv_loop_t *loop;
    void *zctx;
    void *router;
    void *zap;
    hub_zsock_t *router_watch;
    hub_zsock_t *zap_watch;
    hub_keydir_t *keys;
    hub_keypair_t own_key;
    hub_policy_t *policy;     /* NULL: no policy_file, everything allowed (development) */
    uint64_t policy_since_us; /* wall clock: when this policy was loaded */
    hub_delegations_t *delegations;
    uv_timer_t cert_timer; /* reloads certificates when one expires or starts */
    uint64_t cert_timer_first_ms;
    hub_metric_family_t *cert_expiry;   /* lth_certificate_expiry_timestamp_seconds{member} */
    hub_metric_family_t *certs_refused; /* lth_certificates_refused{status} */
    hub_metric_family_t *commit_seconds; /* lth_hub_commit_seconds */
    hub_map_t *cert_not_after;          /* member id -> its certificate's end, s (uintptr_t) */
    uint64_t last_alarm_tick_us;        /* monotonic: alarms evaluated (hub_ops_tick) */
    hub_map_t *members;                 /* member id -> core__member_t */
    core__requests_t *requests;         /* tracked requests by message id (hub_admit.c) */
    size_t members_with_settles;        /* members whose settled list is not empty */
    hub_map_t *subs;                    /* "PUBLISHER/SERVICE/VERSION" -> core__sublist_t */
    char subs_path[PATH_MAX];
    uint64_t last_request_sweep_us;
    hub_store_t *store;
    hub_store_arena_t *arena;
    hub_store_msg_t *readbuf; /* HUB__READ_BATCH messages read from the store */
    char endpoint[256];

    uv_timer_t housekeeping;
    uv_signal_t sig_term, sig_int, sig_hup, sig_usr1, sig_usr2;
    bool handles_open;
    bool stopping;
    bool archive_busy; /* an archive maintenance job (expiry) is queued or running */
    /* A send on the ROUTER may have consumed the edge of its ZMQ_FD: look at
     * ZMQ_EVENTS once at the end of the turn (hub_zsock_kick), not after
     * every frame. */
    bool router_kick_due;

    core__member_t *dirty_head;
    core__turnrcpt_t *turn_rcpt; /* receipts to send at the end of this loop turn */
    size_t turn_rcpt_n, turn_rcpt_cap;
    core__member_t *held_head;    /* members holding receipts */
    core__member_t *blocked_list; /* members with frames ZeroMQ would not take yet */
    uv_timer_t retry_timer;      /* offers them again every HUB__RETRY_MS */
    uv_timer_t held_timer;       /* sends receipts held too long on their own */
    uv_check_t end_of_turn;      /* flush, receipts, commit: once per loop turn */
    uv_prepare_t before_sleep;   /* the same, before the loop blocks (idle reads, timers) */

    /* Group commit. */
    core__pending_t *pending;
    size_t pending_n, pending_cap;
    /* A finished commit's items array, kept for the next (commit__start):
     * a commit's thousand-odd 1 KiB records are not allocated, faulted in
     * and freed again every cycle. Owned; at most HUB__SPARE_ITEMS_MAX. */
    core__pending_t *items_spare;
    size_t items_spare_cap;
    uint64_t *dead_ttl, *dead_retry, *attempt_seqs;
    size_t dead_ttl_n, dead_ttl_cap, dead_retry_n, dead_retry_cap, attempt_n, attempt_cap;
    core__deadpol_t *dead_policy; /* agreement ended before delivery */
    size_t dead_policy_n, dead_policy_cap;
    char **answered; /* durable requests answered since the last commit */
    size_t answered_n, answered_cap;
    core__commit_t *commit;  /* in progress, or NULL */
    /* An operator's DLQ replay waits for a moment between commits; under a
     * steady stream there is none, so the router stops reading (input waits
     * in ZeroMQ) until the pending envelopes are committed and the replay's
     * retry gets its turn, or until this time (µs; 0 = reading). */
    uint64_t replay_drain_until_us;
    uint64_t next_seq;       /* the seq the next accepted envelope gets (preset_seq) */
    size_t pending_late_n;   /* pending envelopes not delivered early (they wait for a commit) */
    uv_timer_t commit_timer; /* a commit that waits for settles (HUB__SETTLE_WAIT_US) */

    hub_metrics_t *metrics;
    hub_flows_t *flows;
    core__passed_t passed; /* flows of online-only messages not yet counted */
    hub_ops_t *ops; /* the operator HTTP endpoint, or NULL */
    hub_ops_source_t ops_source;
    uint64_t audit_seq;       /* copied from the worker after each commit */
    const char *current_peer; /* Peer-Address of the message being handled */
    int current_fd;           /* its connection's socket (ZMQ_SRCFD), -1 unknown */
    hub_sigcache_t sigcache;  /* batch signatures verified on the loop thread */

    hub_audit_t *audit; /* NULL when the audit log is off; the loop appends and writes
                           while a commit appends and flushes (hub_audit.h: its mutex) */
    hub_map_t *interned; /* text -> itself: purposes, which outlive reloads of the policy */
    core__auditq_t *auditq;
    size_t auditq_n, auditq_cap;
    size_t audit_online_n;    /* online records queued this turn, not written yet */
    size_t audit_online_from; /* auditq before this index: looked at by outcome__audit_online */
    bool audit_tick_due;
    uint64_t last_audit_tick_us; /* monotonic */
    hub_archive_t *archive;      /* NULL when archive_dir is not set; any thread (locks) */
    uint64_t last_archive_us;    /* monotonic: when the last one was queued */
    hub_audit_head_t audit_head;  /* last durable checkpoint, copied after each commit */
    uint64_t audit_anchored_seq;  /* the store's anchor (worker-only while a commit runs) */
    uint64_t audit_gap;           /* records found missing at start (audit_accept_gap) */
    hub_tsa_client_t *tsa;        /* RFC 3161 time-stamping, or NULL */
    void *audit_start_check;      /* the check of the whole log, while it runs */
    uint64_t audit_tampered_seq;  /* where that check failed; 0 = fine or not done */
    bool prune_due;              /* de-duplication records to forget (every 1 or 10 s) */
    bool turn_lent;              /* see turn_arena below */
    uint64_t last_prune_us;      /* monotonic */
    uint64_t prune_accepted;     /* stats.envelopes_accepted when prune_due was last set */

    uint64_t refused_since_log;
    uint32_t limits_gen;   /* bumped by every reload: members re-read their limits */
    /* Look-ups by text that runs of one member make the same again and
     * again (a Batch frame is mostly for one receiver, from one sender):
     * the last receiver admit__route_envelope found (a registered key, and
     * its member record) and the last sender whose key send__enqueue
     * found. Both hold while keys_gen is unchanged. */
    uint32_t keys_gen; /* bumped whenever `keys` is replaced */
    core__member_t *last_receiver;
    const hub_keypair_t *last_sender_key;
    uint32_t last_receiver_gen, last_sender_gen;
    size_t open_requests_total; /* tracked requests not yet answered, all members */
    size_t turn_envelopes; /* envelopes read in this loop turn (HUB__TURN_ENVELOPES) */
    /* Frames read in this loop turn and each envelope decoded from them
     * (server__on_message, admit__route_envelope): reset at the end of the turn,
     * after the flush. An online-only envelope's delivery borrows its bytes
     * from the frame here (turn_lent: the frame is kept to the turn's
     * end; otherwise its memory is reused by the next frame). */
    hub_arena_t turn_arena;
    size_t turn_lent_bytes; /* frame bytes kept for deliveries this turn */
    /* Batch frames read in place (view__batch) whose envelopes a
     * delivery borrows: the received ZeroMQ messages themselves, closed at
     * the end of the turn after the flush, as the arena is reset. */
    zmq_msg_t *turn_msgs;
    size_t turn_msgs_n, turn_msgs_cap;
    uint64_t last_refusal_log_us;
    hub_server_stats_t stats;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* snprintf(dst, size, "%s", src) without the format machinery (hot path). */
static inline void core__copy_str(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static inline int core__grow(void **array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *grown = realloc(*array, ncap * elem);
    if (!grown)
        return HUB_ENOMEM;
    *array = grown;
    *cap = ncap;
    return 0;
}

/* An envelope created this recently (by the sender's clock, compared with
 * the hub's) by a sender connected for longer is not a re-send. */
#define HUB__FRESH_US 2000000u

/* How long a commit may wait for the settles of envelopes delivered before
 * it (commit__start). */
#define HUB__SETTLE_WAIT_US 30000u

/* Seqs handed out but not yet committed are lost with a crash; the hub
 * skips this many after a restart so that none is ever given twice (a
 * receiver may still settle one it got before the crash). Far more than
 * HUB__MAX_PENDING plus one commit. */
#define HUB__SEQ_RESTART_GAP (1u << 20)

/* How long an online-only ACK may wait for a Deliveries frame to ride in. */
#define HUB__HOLD_RECEIPTS_US 1000u

#define HUB__PUSH(arr, n, cap, value)                                                              \
    (core__grow((void **)&(arr), &(cap), (n) + 1, sizeof *(arr)) == 0                              \
         ? ((arr)[(n)++] = (value), 0)                                                             \
         : HUB_ENOMEM)

/* Whether member m may add n envelopes to those waiting for the store
 * (the rule at HUB__MAX_PENDING): CORE__ROOM, or which refusal. */
typedef enum {
    CORE__ROOM = 0,
    CORE__ROOM_MEMBER_FULL, /* m holds its share: QUEUE_FULL, naming its count */
    CORE__ROOM_HUB_FULL,    /* the store is behind for everyone: QUEUE_FULL */
} core__room_t;

static inline core__room_t core__store_room(const hub_server_t *self, const core__member_t *m,
                                            size_t n)
{
    size_t all = self->pending_n + n;
    if (all <= HUB__MAX_PENDING / 2)
        return CORE__ROOM;
    size_t mine = m->store_waiting + n;
    /* A member holding nothing may add a publication larger than its share
     * (its subscribers' copies), within the caps below. */
    if (mine > HUB__MEMBER_PENDING_MAX && m->store_waiting > 0)
        return CORE__ROOM_MEMBER_FULL;
    if (all <= HUB__MAX_PENDING ||
        (mine < HUB__PENDING_SMALL && all <= HUB__MAX_PENDING + HUB__PENDING_RESERVE))
        return CORE__ROOM;
    return CORE__ROOM_HUB_FULL;
}

/* Subscribers of one topic ("PUBLISHER/SERVICE/VERSION"). */
typedef struct {
    const char **members; /* interned member ids */
    size_t n, cap;
} core__sublist_t;

/* ------------------------------------------------------------------------ */
/* Shared between the stages (each defined in the file named)               */

/* hub_members.c */
void members__audit_q(hub_server_t *self, hub_audit_event_t event, const char *message_id,
                      uint64_t hub_seq, const char *sender, const char *receiver,
                      const char *service, const char *reason);
void members__audit_q_ev(hub_server_t *self, hub_audit_event_t event, const char *message_id,
                         uint64_t hub_seq, const char *sender, const char *receiver,
                         const char *service, const char *reason, const core__evidence_t *ev);
const char *members__intern(hub_server_t *self, const char *text);
void members__auditq_free(core__auditq_t *q, size_t n);
/* hub_audit_start.c: checks the whole log on a worker thread (at start);
 * _end waits for it (destroy). */
void audit_start__check(hub_server_t *self);
void audit_start__check_end(hub_server_t *self);
void members__held_free(core__member_t *m);
core__member_t *members__member(hub_server_t *self, const char *id);
void members__member_free(core__member_t *m);
/* The member after *cursor in self->members (a walk starts at 0), or NULL
 * at the end. CORE__FOREACH_MEMBER walks them all, with break and continue
 * as in any loop:
 *     CORE__FOREACH_MEMBER(self, m) { if (!m->online) continue; ... } */
core__member_t *members__next(const hub_server_t *self, size_t *cursor);
#define CORE__FOREACH_MEMBER(self, m)                                                              \
    for (size_t m##_cursor_ = 0, m##_once_ = 1; m##_once_; m##_once_ = 0)                          \
        for (core__member_t * (m); ((m) = members__next((self), &m##_cursor_)) != NULL;)
/* How many members are connected now. */
size_t members__online(const hub_server_t *self);
const char *members__service_label(hub_server_t *self, const char *sender, const char *receiver,
                                   const char *service);

/* hub_send.c */
void send__blocked_drop(core__member_t *m);
int send__enqueue_out(hub_server_t *self, core__member_t *m, const char *sender, uint64_t seq,
                      uint32_t attempt, const uint8_t *bytes, size_t len);
/* The same without a copy: bytes must stay valid until the end of this loop
 * turn, whose hook (server__end_of_turn) flushes every queued delivery before
 * anything else can free them. For an envelope delivered before its commit:
 * its pending record keeps the bytes until the commit is done, and a commit
 * starts only after the flush. */
int send__enqueue_lent(hub_server_t *self, core__member_t *m, const char *sender, uint64_t seq,
                       uint32_t attempt, uint8_t *bytes, size_t len);
void send__flush_all(hub_server_t *self);
void send__on_held_timer(uv_timer_t *t);
void send__on_retry_timer(uv_timer_t *t);
void send__receipt_ack(core__receipts_t *r, const char *message_id, uint64_t seq);
void send__receipt_ack_routed(core__receipts_t *r, const char *message_id, uint64_t seq,
                              const char *routed_to);
bool send__receipt_add_nack(hub_server_t *self, core__receipts_t *r, const char *message_id,
                            int code, const char *reason);
void send__receipt_nack(hub_server_t *self, core__receipts_t *r, const char *message_id, int code,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void send__receipts_free(core__receipts_t *r);
int send__receipts_init(core__receipts_t *r, size_t cap);
void send__receipts_send(hub_server_t *self, core__member_t *m, core__receipts_t *r);
bool send__refusal_log_ok(hub_server_t *self, core__member_t *m);
void send__error_rid(hub_server_t *self, const uint8_t *rid, size_t rid_len, int code,
                     const char *reason);
int send__frame(hub_server_t *self, core__member_t *m, hub_frame_t *frame);
/* A Deliveries frame of items[0..n) and rec (NULL: none), packed into msg
 * (initialised here; 0 or HUB_ENOMEM) as protobuf-c would pack it. */
int send__deliveries_pack(const core__outitem_t *items, size_t n, const Lth__V1__Receipts *rec,
                          zmq_msg_t *msg);
void send__turn_receipts_hold(hub_server_t *self);
void send__turn_receipts_send(hub_server_t *self);
uint64_t send__waiting(const core__member_t *m);

/* hub_delivery.c */
uint64_t delivery__backoff_us(const hub_server_t *self, uint32_t attempt);
bool delivery__deliver_early(hub_server_t *self, const core__member_t *sender,
                             uint64_t created_at_us, core__member_t *rcv, core__pending_t *p);
int delivery__inflight_add(hub_server_t *self, core__member_t *m, const hub_store_msg_t *msg,
                           uint32_t attempt);
void delivery__inflight_compact(core__member_t *m);
core__inflight_t *delivery__inflight_find(core__member_t *m, uint64_t seq);
void delivery__member_reset_delivery(core__member_t *m);
int delivery__pending_push(hub_server_t *self, core__pending_t *p);
void delivery__pump(hub_server_t *self, core__member_t *m);
void delivery__quota_for(hub_server_t *self, core__member_t *sender, core__member_t *receiver,
                         hub_store_quota_t *q);
void delivery__quota_nack(hub_server_t *self, core__receipts_t *r, const char *id,
                          const hub_store_msg_t *msg, hub_store_outcome_t outcome);
bool delivery__still_allowed(hub_server_t *self, const hub_store_msg_t *msg);

/* hub_commit.c */
void commit__start(hub_server_t *self);

/* hub_archive_server.c: opens the archive (archive_dir) with the hub's keys;
 * refused, with the reason, when its key file is not a 0600 file of 32
 * bytes */
int archive_server__open(hub_server_t *self, char *err, size_t err_size);
/* ... runs its expiry and time-based rotation on a worker (housekeeping) */
void archive_server__maintain_start(hub_server_t *self);
/* ... archives the envelopes a commit stored (worker thread) */
int archive_server__commit(hub_archive_t *archive, const core__commit_t *job);
/* ... and the online-only envelopes the loop accepted since the last commit
 * (their ACCEPTED records carry a copy: outcome__evidence_later) */
int archive_server__online(hub_archive_t *archive, const core__auditq_t *q, size_t n);
/* hub_outcome.c: each outcome of an envelope, recorded once for the audit
 * log, the flows and the counters. Loop thread, except where marked. */
void outcome__evidence_of(hub_server_t *self, const hub_envelope_t *env, const uint8_t *digest,
                          const char *purpose, core__evidence_t *out);
void outcome__evidence_later(hub_server_t *self, const hub_envelope_t *env, const uint8_t *bytes,
                             size_t len, const uint8_t *digest, const char *purpose,
                             core__evidence_t *out);
void outcome__refused(hub_server_t *self, core__receipts_t *r, const char *message_id, int code,
                      const char *reason);
void outcome__accepted(hub_server_t *self, const hub_envelope_t *env, const char *receiver,
                       size_t len, const core__evidence_t *ev, const char *outcome, bool delivered);
/* Counts in the flows the online-only messages outcome__accepted gathered:
 * at the end of each Batch and of each loop turn. */
void outcome__passed_flush(hub_server_t *self);
void outcome__committed(hub_server_t *self, const core__pending_t *items, size_t n, bool copy);
void outcome__delivered(hub_server_t *self, const hub_store_msg_t *msg, const char *receiver,
                        const char *why, bool flows);
void outcome__settled(hub_server_t *self, const core__member_t *m, const core__inflight_t *f,
                      uint64_t seq);
void outcome__dead_lettered(hub_server_t *self, const hub_store_msg_t *d);
/* Worker thread: the records a commit writes itself (before its ACKs). */
int outcome__audit_commit(hub_audit_t *audit, core__commit_t *job, hub_envelope_t **envs);
int outcome__audit_queue(hub_audit_t *audit, const core__auditq_t *q, size_t n);
/* Writes this turn's online-only records to the log (loop thread, end of
 * turn, before the deliveries are flushed). */
void outcome__audit_online(hub_server_t *self);

/* hub_trust.c */
const char *trust__forbidden(hub_server_t *self, const char *consumer, const char *provider,
                             const char *service, hub_policy_decision_t *d);
int trust__load_keys(hub_server_t *self, hub_keydir_t **out, char *err, size_t err_size);
int trust__load_policy(hub_server_t *self, hub_policy_t **policy, hub_delegations_t **delegations,
                       char *err, size_t err_size);
void trust__on_cert_timer(uv_timer_t *timer);

/* hub_pubsub.c */
int pubsub__load_subscriptions(hub_server_t *self, char *err, size_t err_size);
void pubsub__publish(hub_server_t *self, core__member_t *sender, const hub_envelope_t *env,
                     const uint8_t *bytes, size_t len, core__receipts_t *receipts, const char *mid);
int pubsub__save_subscriptions(hub_server_t *self);
int pubsub__subscribe(hub_server_t *self, const char *subscriber, const char *topic);

/* hub_flood.c */
void flood__seen(hub_server_t *self, core__member_t *m);
bool flood__banned(const hub_server_t *self, const core__member_t *m, uint64_t now);
void flood__note(hub_server_t *self, core__member_t *m, size_t refused);

/* hub_admit.c */
core__requests_t *admit__requests_new(void);
size_t admit__requests_size(const core__requests_t *t);
void admit__requests_destroy(core__requests_t **t_p); /* frees the requests too */
void admit__request_note(hub_server_t *self, core__pending_t *p);
void admit__expire_requests(hub_server_t *self, uint64_t now);
void admit__member_limits(hub_server_t *self, core__member_t *m);
int admit__rate_check(hub_server_t *self, core__member_t *m, size_t len, char *why);
void admit__request_loaded(const hub_store_request_t *sr, void *user);
/* bytes: an item of the Batch frame being read, in self->arena (an online-only
 * delivery borrows them until the end of the loop turn). */
void admit__route_envelope(hub_server_t *self, core__member_t *sender, const uint8_t *bytes,
                           size_t len, core__receipts_t *receipts);
const char *admit__signature_problem(int rc, bool has_key);
void admit__queue_full(hub_server_t *self, core__receipts_t *r, const char *message_id,
                       const core__member_t *sender, core__room_t room, bool publication);
/* Cache hints for an envelope about to be admitted (bytes: its encoding):
 * _slot fetches the request table's slot for its id and returns the id's
 * hash (0: none), which _request takes later to fetch the request there. */
uint64_t admit__prefetch_slot(hub_server_t *self, const uint8_t *bytes, size_t len);
void admit__prefetch_request(hub_server_t *self, uint64_t hash);
/* The request indexes' slot arrays (cap 8-byte slots, cap a power of two),
 * zeroed; from 2 MiB up mapped 2 MiB aligned and marked for huge pages.
 * NULL when out of memory. */
void *admit__slots_new(uint32_t cap);
void admit__slots_free(void *slots, uint32_t cap);

/* hub_view.c (envelopes are read with hub_envelope_read_in, hub_wire.h) */
/* A Batch frame (p, len) read in place into *batch (its envelopes point
 * into p; the item array is in the arena) and *version; false when it is
 * not in the plain shape clients encode: unpack with protobuf-c then. */
bool view__batch(hub_arena_t *arena, const uint8_t *p, size_t len, uint32_t *version,
                 Lth__V1__Batch *batch);

/* hub_meta.c */
int meta__metaservice(hub_server_t *self, core__member_t *caller, const hub_envelope_t *env,
                      char **json, size_t *json_len, const char **why);
void meta__reply_from_hub(hub_server_t *self, core__member_t *to, const hub_envelope_t *req,
                          const char *json, size_t len);

/* hub_server.c */
void server__housekeeping(uv_timer_t *timer);
int hub_server_reload_keys(hub_server_t *self, char *err, size_t err_size);

/* hub_server_ops.c: the callbacks the operator surface reads the hub by. */
hub_ops_source_t server_ops__source(hub_server_t *self);
void server_ops__replay_drained(hub_server_t *self); /* reading resumes after a DLQ replay */

/* hub_zap.c */
void zap__on_zap_readable(hub_zsock_t *zs, void *socket, void *user);

#endif
