#include "hub_server.h"
#include "hub_conf.h"
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

#define HUB__DRAIN_BUDGET 256       /* ZeroMQ messages read per loop turn */
/* ... and envelopes: a turn ends after about this many, so that a member
 * sending large batches cannot make everyone else's turn wait long. */
#define HUB__TURN_ENVELOPES 1024
#define HUB__MAX_COMMIT_ITEMS 8192  /* envelopes per store transaction */
#define HUB__MAX_PENDING 65536      /* envelopes waiting for the store, all senders */
#define HUB__ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define HUB__READ_BATCH 512         /* messages read from a queue at a time */
/* What one connection can hold of the hub's memory: ZeroMQ keeps at most
 * HUB__SNDHWM frames for a peer that does not read, each Deliveries frame
 * is cut near HUB__FRAME_SOFT_MAX bytes, and what ZeroMQ will not take yet
 * waits in the member's own queue, counted in bytes against
 * max_waiting_bytes (hub__waiting). */
#define HUB__SNDHWM 16
#define HUB__RCVHWM 1000
#define HUB__FRAME_SOFT_MAX (1u << 20)
#define HUB__REFUSAL_LOGS_PER_S 5   /* refusal log lines per member and second */
#define HUB__RETRY_MS 2             /* frames ZeroMQ refused are offered again this often */

/* ------------------------------------------------------------------------ */
/* Members                                                                   */

typedef struct {
    uint64_t seq;
    uint64_t deadline_us;    /* monotonic: redeliver when passed */
    uint32_t attempt;
    bool settled;
    char message_id[HUB_UUID_LEN + 1];
    const char *sender;      /* interned: the sender member's id */
    char *service;           /* owned */
    uint64_t accepted_at_us; /* wall clock */
} hub__inflight_t;

/* An audit record waiting for the commit worker, which alone writes the
 * log (so the loop never waits for the disk). Strings are owned copies,
 * except sender and receiver, which point at member ids that live as long
 * as the server. */
typedef struct {
    hub_audit_event_t event;
    uint64_t time_us;
    uint64_t hub_seq;
    char message_id[HUB_UUID_LEN + 1];
    const char *sender;
    const char *receiver;
    char *service;
    char *reason;
} hub__auditq_t;

typedef struct {
    uint64_t seq;      /* 0 for online-only envelopes, which need no settle */
    uint32_t attempt;
    uint8_t *bytes;    /* owned copy of the sender's encoded envelope */
    size_t len;
    uint8_t sign_key[32]; /* the sender's Ed25519 key, for the receiver to verify */
    bool has_sign_key;
} hub__outitem_t;

/* Receipts under construction for one sender. */
typedef struct {
    const char *sender; /* for the audit log */
    const char *receiver; /* of the envelope being judged, once known to the hub */
    const char *service;
    Lth__V1__Ack *acks;
    Lth__V1__Ack **ack_ptrs;
    Lth__V1__Nack *nacks;
    Lth__V1__Nack **nack_ptrs;
    char **reasons;
    size_t n_acks, n_nacks, cap;
} hub__receipts_t;

/* An encoded frame ZeroMQ would not take yet (the peer's pipe was full). */
typedef struct {
    uint8_t *buf;
    size_t len;
} hub__blocked_t;

typedef struct hub__member {
    char id[HUB_MEMBER_ID_MAX + 1];
    uint8_t rid[256];          /* ROUTER routing id of the live connection */
    size_t rid_len;
    bool online;
    uint64_t connected_at_us;  /* wall clock */
    uint64_t last_seen_mono_us;
    uint64_t last_seen_us;     /* wall clock */
    char address[64];          /* peer address of the live connection */
    char *services;            /* offered services, comma-separated (from Hello) */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;

    /* Durable delivery state (valid while online). */
    hub__inflight_t *inflight; /* sorted by seq */
    size_t inflight_n, inflight_cap, inflight_open;
    uint64_t loaded_seq;       /* highest seq handed out since (re)connect */
    bool backlog;              /* the store may hold more than loaded_seq */
    uint64_t *settled;         /* settled seqs waiting for the next commit */
    size_t settled_n, settled_cap;
    size_t pending_late;       /* queued for it, not delivered early, not yet committed */
    uint32_t open_requests;    /* its requests still waiting for a reply */

    /* Rate limit (token buckets, refilled by elapsed time, a second's worth
     * deep) and what it may hold; from hubd.conf, or its policy `limit`. */
    uint32_t limits_gen;       /* == server's: the cached limits are current */
    uint64_t rate_msgs, rate_bytes;
    uint64_t send_msgs, send_bytes, recv_msgs, recv_bytes; /* store quotas */
    double tokens_msgs, tokens_bytes;
    uint64_t refill_mono_us;
    /* Refusal log lines: at most HUB__REFUSAL_LOGS_PER_S a second each. */
    uint64_t refusal_log_window_us;
    uint32_t refusal_logs;
    uint64_t refusals_unlogged;

    /* Outbound deliveries gathered during this loop turn. */
    hub__outitem_t *out;
    size_t out_n, out_cap;
    uint64_t out_bytes;        /* envelope bytes in out[] */
    /* Frames the peer's ZeroMQ pipe would not take yet, in order. */
    hub__blocked_t *blocked;
    size_t blocked_head, blocked_n, blocked_cap;
    uint64_t blocked_bytes;
    uint64_t stalled_since_mono_us; /* last time it took a frame while frames waited */
    struct hub__member *next_blocked;
    bool on_blocked_list;
    struct hub__member *next_dirty;
    bool dirty;

    /* ACKs of online-only envelopes held for the next Deliveries frame
     * (Hello.receipts_in_deliveries), at most HUB__HOLD_RECEIPTS_US. */
    bool piggyback;
    hub__receipts_t *held;
    size_t held_n, held_cap;
    uint64_t held_since_mono_us;
    struct hub__member *next_held;
    bool on_held_list;
} hub__member_t;


typedef struct {
    struct hub__member *m;
    hub__receipts_t r;
} hub__turnrcpt_t;

/* An envelope waiting for the next group commit. */
typedef struct {
    hub_store_msg_t msg;
    uint8_t *bytes;        /* owned */
    uint8_t sign_key[32];  /* the sender's Ed25519 key, when verify is set */
    bool verify;           /* check the signature on the worker */
    int verdict;           /* set by the worker: 0, or a HUB_E* code from verification */
    /* A published event is stored once per subscriber under ids derived from
     * its own; the copies form a group that gets one receipt, for this id. */
    char group_id[HUB_UUID_LEN + 1]; /* empty: not a fan-out copy */
    bool group_first;
    const char *delegated_from; /* interned: the authority addressed, when delegated */
    bool early;            /* delivered before its commit (hub__deliver_early) */
    uint64_t queued_mono_us;
    uint64_t request_expires_us; /* a REQUEST: track it in the store until then (wall clock) */
} hub__pending_t;

/* A queued message to dead-letter because its agreement ended before it
 * could be delivered; the reason names the agreement. */
typedef struct {
    uint64_t seq;
    char *reason; /* owned */
} hub__deadpol_t;

typedef struct {
    char receiver[HUB_MEMBER_ID_MAX + 1];
    uint64_t *seqs;
    size_t n;
} hub__ackgroup_t;

typedef struct {
    uv_work_t req;
    hub_server_t *server;
    hub__pending_t *items;
    size_t n_items;
    hub_store_outcome_t *outcomes;
    int append_rc;
    hub__ackgroup_t *acks;
    size_t n_acks;
    uint64_t *attempt_seqs;
    size_t n_attempts;
    uint64_t *dead_ttl, *dead_retry;
    size_t n_dead_ttl, n_dead_retry;
    hub__deadpol_t *dead_policy;
    size_t n_dead_policy;
    char **answered;        /* tracked requests answered: forget them in the store */
    size_t n_answered;
    int other_rc;
    hub__auditq_t *audit;   /* loop-side records to append first */
    size_t n_audit;
    int audit_rc;
    uint64_t audit_seq;     /* the log's sequence after this commit */
    hub_store_msg_t *dead;  /* metadata of what was dead-lettered, for the flows */
    const char **dead_reason; /* one per dead[]; static, or owned by dead_policy */
    size_t n_dead;
    bool prune_dedup;       /* forget expired de-duplication records too */
    size_t pruned;
} hub__commit_t;

struct hub_server {
    hub_config_t cfg;
    uv_loop_t *loop;
    void *zctx;
    void *router;
    void *zap;
    hub_zsock_t *router_watch;
    hub_zsock_t *zap_watch;
    hub_keydir_t *keys;
    hub_keypair_t own_key;
    hub_policy_t *policy;          /* NULL: no policy_file, everything allowed (development) */
    uint64_t policy_since_us;      /* wall clock: when this policy was loaded */
    hub_delegations_t *delegations;
    uv_timer_t cert_timer;         /* reloads certificates when one expires or starts */
    uint64_t cert_timer_first_ms;
    hub_metric_family_t *cert_expiry; /* lth_certificate_expiry_timestamp_seconds{member} */
    hub_metric_family_t *certs_refused; /* lth_certificates_refused{status} */
    hub_map_t *members; /* member id -> hub__member_t */
    hub_map_t *requests; /* request message id -> hub__request_t */
    size_t members_with_settles; /* members whose settled list is not empty */
    hub_map_t *subs;     /* "PUBLISHER/SERVICE/VERSION" -> hub__sublist_t */
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

    hub__member_t *dirty_head;
    hub__turnrcpt_t *turn_rcpt; /* receipts to send at the end of this loop turn */
    size_t turn_rcpt_n, turn_rcpt_cap;
    hub__member_t *held_head;   /* members holding receipts */
    hub__member_t *blocked_list; /* members with frames ZeroMQ would not take yet */
    uv_timer_t retry_timer;     /* offers them again every HUB__RETRY_MS */
    uv_timer_t held_timer;      /* sends receipts held too long on their own */

    /* Group commit. */
    hub__pending_t *pending;
    size_t pending_n, pending_cap;
    uint64_t *dead_ttl, *dead_retry, *attempt_seqs;
    size_t dead_ttl_n, dead_ttl_cap, dead_retry_n, dead_retry_cap, attempt_n, attempt_cap;
    hub__deadpol_t *dead_policy;   /* agreement ended before delivery */
    size_t dead_policy_n, dead_policy_cap;
    char **answered;               /* durable requests answered since the last commit */
    size_t answered_n, answered_cap;
    hub__commit_t *commit; /* in progress, or NULL */
    uint64_t next_seq;     /* the seq the next accepted envelope gets (preset_seq) */
    size_t pending_late_n; /* pending envelopes not delivered early (they wait for a commit) */
    uv_timer_t commit_timer; /* a commit that waits for settles (HUB__SETTLE_WAIT_US) */

    hub_metrics_t *metrics;
    hub_flows_t *flows;
    hub_ops_t *ops;        /* the operator HTTP endpoint, or NULL */
    hub_ops_source_t ops_source;
    uint64_t audit_seq;    /* copied from the worker after each commit */
    const char *current_peer; /* Peer-Address of the message being handled */
    hub_sigcache_t sigcache;  /* batch signatures verified on the loop thread */

    hub_audit_t *audit;    /* NULL when the audit log is off; worker-only while a commit runs */
    hub__auditq_t *auditq;
    size_t auditq_n, auditq_cap;
    bool audit_tick_due;
    uint64_t last_audit_tick_us; /* monotonic */
    bool prune_due;              /* de-duplication records to forget (every 10 s) */
    uint64_t last_prune_us;      /* monotonic */

    uint64_t refused_since_log;
    uint32_t limits_gen;         /* bumped by every reload: members re-read their limits */
    size_t turn_envelopes;       /* envelopes read in this loop turn (HUB__TURN_ENVELOPES) */
    uint64_t last_refusal_log_us;
    hub_server_stats_t stats;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* snprintf(dst, size, "%s", src) without the format machinery (hot path). */
static void hub__copy_str(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static int hub__grow(void **array, size_t *cap, size_t need, size_t elem)
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
 * it (hub__commit_start). */
#define HUB__SETTLE_WAIT_US 30000u

/* Seqs handed out but not yet committed are lost with a crash; the hub
 * skips this many after a restart so that none is ever given twice (a
 * receiver may still settle one it got before the crash). Far more than
 * HUB__MAX_PENDING plus one commit. */
#define HUB__SEQ_RESTART_GAP (1u << 20)

/* How long an online-only ACK may wait for a Deliveries frame to ride in. */
#define HUB__HOLD_RECEIPTS_US 1000u

#define HUB__PUSH(arr, n, cap, value)                                                             \
    (hub__grow((void **)&(arr), &(cap), (n) + 1, sizeof *(arr)) == 0 ? ((arr)[(n)++] = (value), 0) \
                                                                     : HUB_ENOMEM)

static hub__member_t *hub__member(hub_server_t *self, const char *id)
{
    hub__member_t *m = hub_map_get(self->members, id);
    if (m)
        return m;
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->id, sizeof m->id, "%s", id);
    if (hub_map_put(self->members, m->id, m) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

/* The service as a metrics label: only services the receiver offered in a
 * Hello, so that a sender cannot grow the label set at will. */
static const char *hub__service_label(hub_server_t *self, const char *receiver,
                                      const char *service)
{
    hub__member_t *m = receiver && *receiver ? hub_map_get(self->members, receiver) : NULL;
    if (!m || !m->services || !service || !*service)
        return "_unlisted";
    size_t len = strlen(service);
    for (const char *p = m->services; (p = strstr(p, service)) != NULL; p += len) {
        bool starts = p == m->services || p[-1] == ',';
        bool ends = p[len] == '\0' || p[len] == ',';
        if (starts && ends)
            return service;
    }
    return "_unlisted";
}

static void hub__member_reset_delivery(hub__member_t *m);

static void hub__receipts_free(hub__receipts_t *r);

/* Forgets the receipts a member holds (they belong to its connection). */
static void hub__held_free(hub__member_t *m)
{
    for (size_t i = 0; i < m->held_n; i++)
        hub__receipts_free(&m->held[i]);
    m->held_n = 0;
}

static void hub__blocked_drop(hub__member_t *m);
static void hub__on_retry_timer(uv_timer_t *t);

static void hub__member_free(hub__member_t *m)
{
    hub__blocked_drop(m);
    hub__member_reset_delivery(m);
    hub__held_free(m);
    free(m->held);
    for (size_t i = 0; i < m->out_n; i++)
        free(m->out[i].bytes);
    free(m->out);
    free(m->inflight);
    free(m->settled);
    free(m->services);
    free(m);
}

/* Queues an audit record for the commit worker. */
static void hub__audit_q(hub_server_t *self, hub_audit_event_t event, const char *message_id,
                         uint64_t hub_seq, const char *sender, const char *receiver,
                         const char *service, const char *reason)
{
    if (!self->audit)
        return;
    hub__auditq_t q = {event, hub_now_us(), hub_seq, "", NULL, NULL, NULL, NULL};
    snprintf(q.message_id, sizeof q.message_id, "%s", message_id ? message_id : "");
    hub__member_t *s = sender && *sender ? hub__member(self, sender) : NULL;
    hub__member_t *r = receiver && *receiver ? hub__member(self, receiver) : NULL;
    q.sender = s ? s->id : "";
    q.receiver = r ? r->id : "";
    q.service = service && *service ? strdup(service) : NULL;
    q.reason = reason && *reason ? strdup(reason) : NULL;
    if (HUB__PUSH(self->auditq, self->auditq_n, self->auditq_cap, q) != 0) {
        free(q.service);
        free(q.reason);
        HUB_ERROR("audit", "out of memory: an audit record was lost", "event=%s",
                  hub_audit_event_name(event));
    }
}

static void hub__auditq_free(hub__auditq_t *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q[i].service);
        free(q[i].reason);
    }
    free(q);
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */

/* Bytes waiting to leave for a member: gathered deliveries and frames its
 * ZeroMQ pipe would not take yet. */
static uint64_t hub__waiting(const hub__member_t *m) { return m->out_bytes + m->blocked_bytes; }

static void hub__blocked_drop(hub__member_t *m)
{
    for (size_t i = 0; i < m->blocked_n; i++)
        free(m->blocked[(m->blocked_head + i) % m->blocked_cap].buf);
    free(m->blocked);
    m->blocked = NULL;
    m->blocked_head = m->blocked_n = m->blocked_cap = 0;
    m->blocked_bytes = 0;
    m->stalled_since_mono_us = 0;
}

/* Keeps an encoded frame (taking ownership) until the peer's pipe takes it. */
static int hub__blocked_push(hub_server_t *self, hub__member_t *m, uint8_t *buf, size_t len)
{
    if (m->blocked_n == m->blocked_cap) {
        size_t cap = m->blocked_cap ? 2 * m->blocked_cap : 8;
        hub__blocked_t *ring = malloc(cap * sizeof *ring);
        if (!ring) {
            free(buf);
            return HUB_ENOMEM;
        }
        for (size_t i = 0; i < m->blocked_n; i++)
            ring[i] = m->blocked[(m->blocked_head + i) % m->blocked_cap];
        free(m->blocked);
        m->blocked = ring;
        m->blocked_head = 0;
        m->blocked_cap = cap;
    }
    m->blocked[(m->blocked_head + m->blocked_n++) % m->blocked_cap] = (hub__blocked_t){buf, len};
    m->blocked_bytes += len;
    if (m->stalled_since_mono_us == 0)
        m->stalled_since_mono_us = hub_monotonic_us();
    if (!m->on_blocked_list) {
        m->on_blocked_list = true;
        m->next_blocked = self->blocked_list;
        self->blocked_list = m;
        if (!uv_is_active((uv_handle_t *)&self->retry_timer))
            uv_timer_start(&self->retry_timer, hub__on_retry_timer, HUB__RETRY_MS, HUB__RETRY_MS);
    }
    return 0;
}

/* One zmq send of an encoded frame: 0, HUB_EAGAIN (pipe full), or another
 * error (EHOSTUNREACH: the connection is gone and the member goes offline). */
static int hub__zmq_send(hub_server_t *self, hub__member_t *m, const uint8_t *buf, size_t len)
{
    if (zmq_send(self->router, m->rid, m->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(self->router, buf, len, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        if (e == EHOSTUNREACH) {
            HUB_INFO("router", "member connection gone", "member=%s", m->id);
            m->online = false;
            hub__blocked_drop(m);
        }
        return e == EAGAIN ? HUB_EAGAIN : HUB_EZMQ;
    }
    m->bytes_out += len;
    return 0;
}

/* Sends one frame to a member's live connection. A frame its pipe will not
 * take yet waits, in order, in the member's blocked queue (counted against
 * max_waiting_bytes), and is offered again every HUB__RETRY_MS; a member
 * that takes nothing for drain_timeout_ms is cut off (hub__housekeeping).
 * EHOSTUNREACH means the connection is gone: the member goes offline and
 * its unsettled deliveries stay in the store. */
static int hub__send_frame(hub_server_t *self, hub__member_t *m, hub_frame_t *frame)
{
    if (!m->online || m->rid_len == 0)
        return HUB_ECLOSED;
    uint8_t *buf;
    size_t len;
    int rc = hub_frame_encode(frame, &buf, &len);
    if (rc != 0)
        return rc;
    if (m->blocked_n == 0) {
        rc = hub__zmq_send(self, m, buf, len);
        /* Any call on the socket, a failed send too, may consume the edge
         * of ZMQ_FD: have the watcher look at ZMQ_EVENTS again. */
        hub_zsock_kick(self->router_watch);
        if (rc != HUB_EAGAIN) {
            free(buf);
            return rc;
        }
    }
    return hub__blocked_push(self, m, buf, len);
}

/* Offers waiting frames again, oldest first, to every member that has any. */
static void hub__retry_blocked(hub_server_t *self)
{
    hub__member_t **link = &self->blocked_list;
    bool tried = false;
    while (*link) {
        hub__member_t *m = *link;
        while (m->online && m->blocked_n > 0) {
            hub__blocked_t *b = &m->blocked[m->blocked_head];
            tried = true;
            if (hub__zmq_send(self, m, b->buf, b->len) != 0)
                break;
            m->blocked_bytes -= b->len;
            free(b->buf);
            m->blocked_head = (m->blocked_head + 1) % m->blocked_cap;
            m->blocked_n--;
            m->stalled_since_mono_us = hub_monotonic_us(); /* it is draining */
        }
        if (!m->online)
            hub__blocked_drop(m);
        if (m->blocked_n == 0) {
            m->stalled_since_mono_us = 0;
            m->on_blocked_list = false;
            *link = m->next_blocked;
            m->next_blocked = NULL;
        } else {
            link = &m->next_blocked;
        }
    }
    if (tried) /* even a failed send may consume ZMQ_FD's edge */
        hub_zsock_kick(self->router_watch);
    if (!self->blocked_list)
        uv_timer_stop(&self->retry_timer);
}

static void hub__on_retry_timer(uv_timer_t *t) { hub__retry_blocked(t->data); }

/* A frame-level refusal to a connection identified only by routing id. */
static void hub__send_error_rid(hub_server_t *self, const uint8_t *rid, size_t rid_len, int code,
                                const char *reason)
{
    Lth__V1__Nack nack = LTH__V1__NACK__INIT;
    nack.message_id = "";
    nack.code = (Lth__V1__NackCode)code;
    nack.reason = (char *)reason;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_ERROR;
    frame.error = &nack;
    uint8_t *buf;
    size_t len;
    if (hub_frame_encode(&frame, &buf, &len) != 0)
        return;
    if (zmq_send(self->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(self->router, buf, len, ZMQ_DONTWAIT);
    free(buf);
    hub_zsock_kick(self->router_watch);
    if (code > 0 && code < 32)
        self->stats.nacks_by_code[code]++;
}


static int hub__receipts_init(hub__receipts_t *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    if (cap == 0)
        cap = 1;
    r->cap = cap;
    r->acks = calloc(cap, sizeof *r->acks);
    r->ack_ptrs = calloc(cap, sizeof *r->ack_ptrs);
    r->nacks = calloc(cap, sizeof *r->nacks);
    r->nack_ptrs = calloc(cap, sizeof *r->nack_ptrs);
    r->reasons = calloc(cap, sizeof *r->reasons);
    return (r->acks && r->ack_ptrs && r->nacks && r->nack_ptrs && r->reasons) ? 0 : HUB_ENOMEM;
}

static void hub__receipts_free(hub__receipts_t *r)
{
    for (size_t i = 0; i < r->n_acks; i++)
        free(r->acks[i].message_id);
    for (size_t i = 0; i < r->n_nacks; i++) {
        free(r->reasons[i]);
        free(r->nacks[i].message_id);
    }
    free(r->acks);
    free(r->ack_ptrs);
    free(r->nacks);
    free(r->nack_ptrs);
    free(r->reasons);
}

static void hub__receipt_ack(hub__receipts_t *r, const char *message_id, uint64_t seq)
{
    if (r->n_acks >= r->cap)
        return;
    Lth__V1__Ack *a = &r->acks[r->n_acks];
    lth__v1__ack__init(a);
    a->message_id = strdup(message_id);
    if (!a->message_id)
        return;
    a->hub_seq = seq;
    r->ack_ptrs[r->n_acks++] = a;
}

/* A flooding member must not flood the log too: at most
 * HUB__REFUSAL_LOGS_PER_S refusal lines a second per member, then a count. */
static bool hub__refusal_log_ok(hub_server_t *self, hub__member_t *m)
{
    (void)self;
    uint64_t now = hub_monotonic_us();
    if (now - m->refusal_log_window_us >= 1000000u) {
        if (m->refusals_unlogged)
            HUB_INFO("router", "refusals not logged", "member=%s count=%llu", m->id,
                     (unsigned long long)m->refusals_unlogged);
        m->refusal_log_window_us = now;
        m->refusal_logs = 0;
        m->refusals_unlogged = 0;
    }
    if (m->refusal_logs >= HUB__REFUSAL_LOGS_PER_S) {
        m->refusals_unlogged++;
        return false;
    }
    m->refusal_logs++;
    return true;
}

/* Adds a NACK to the receipts and counts it; nothing else (no audit record,
 * no flow, no log line). False when it could not be added. */
static bool hub__receipt_add_nack(hub_server_t *self, hub__receipts_t *r, const char *message_id,
                                  int code, const char *reason)
{
    self->stats.envelopes_nacked++;
    if (code > 0 && code < 32)
        self->stats.nacks_by_code[code]++;
    if (r->n_nacks >= r->cap)
        return false;
    Lth__V1__Nack *n = &r->nacks[r->n_nacks];
    lth__v1__nack__init(n);
    n->message_id = strdup(message_id ? message_id : "");
    n->code = (Lth__V1__NackCode)code;
    r->reasons[r->n_nacks] = strdup(reason);
    if (!n->message_id || !r->reasons[r->n_nacks]) {
        free(n->message_id);
        free(r->reasons[r->n_nacks]);
        return false;
    }
    n->reason = r->reasons[r->n_nacks];
    r->nack_ptrs[r->n_nacks++] = n;
    return true;
}

/* A refusal: NACK, audit record, flow, and a log line (rate-limited per
 * member). */
static void hub__receipt_nack(hub_server_t *self, hub__receipts_t *r, const char *message_id,
                              int code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void hub__receipt_nack(hub_server_t *self, hub__receipts_t *r, const char *message_id,
                              int code, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (!hub__receipt_add_nack(self, r, message_id, code, reason))
        return;
    char audit_reason[600];
    snprintf(audit_reason, sizeof audit_reason, "%s: %s", hub_nack_code_name(code), reason);
    hub__audit_q(self, HUB_AUDIT_NACKED, message_id, 0, r->sender, NULL, NULL, audit_reason);
    if (self->flows) {
        uint64_t now = hub_now_us();
        const char *rcv = r->receiver ? r->receiver : "";
        const char *svc = r->receiver ? hub__service_label(self, r->receiver, r->service) : "";
        hub_flows_refused(self->flows, r->sender ? r->sender : "", rcv, svc,
                          hub_nack_code_name(code), now);
        hub_flows_exchange_t x = {message_id ? message_id : "", r->sender ? r->sender : "", rcv,
                                  svc, hub_nack_code_name(code), 0, now, 0};
        hub_flows_exchange(self->flows, &x);
    }
    hub__member_t *sm = r->sender ? hub_map_get(self->members, r->sender) : NULL;
    if (sm && !hub__refusal_log_ok(self, sm))
        return;
    HUB_INFO("router", "envelope refused", "member=%s code=%s message_id=%s reason=\"%s\"",
             r->sender ? r->sender : "-", hub_nack_code_name(code),
             message_id && *message_id ? message_id : "-", reason);
}

/* Sends one Receipts frame (nothing when both lists are empty). */
static void hub__receipts_frame(hub_server_t *self, hub__member_t *m, Lth__V1__Ack **acks,
                                size_t n_acks, Lth__V1__Nack **nacks, size_t n_nacks)
{
    if (n_acks == 0 && n_nacks == 0)
        return;
    Lth__V1__Receipts rec = LTH__V1__RECEIPTS__INIT;
    rec.n_acks = n_acks;
    rec.acks = acks;
    rec.n_nacks = n_nacks;
    rec.nacks = nacks;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_RECEIPTS;
    frame.receipts = &rec;
    hub__send_frame(self, m, &frame);
}

static void hub__receipts_send(hub_server_t *self, hub__member_t *m, hub__receipts_t *r)
{
    hub__receipts_frame(self, m, r->ack_ptrs, r->n_acks, r->nack_ptrs, r->n_nacks);
}

/* Queues an envelope for the member's next Deliveries frame. */
static int hub__enqueue_out(hub_server_t *self, hub__member_t *m, const char *sender,
                            uint64_t seq, uint32_t attempt, const uint8_t *bytes, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return HUB_ENOMEM;
    memcpy(copy, bytes, len);
    hub__outitem_t item = {seq, attempt, copy, len, {0}, false};
    const hub_keypair_t *kp = !strcmp(sender, self->own_key.member_id)
                                  ? &self->own_key
                                  : hub_keydir_find_member(self->keys, sender);
    if (kp && kp->has_sign) {
        memcpy(item.sign_key, kp->sign_public, 32);
        item.has_sign_key = true;
    }
    if (HUB__PUSH(m->out, m->out_n, m->out_cap, item) != 0) {
        free(copy);
        return HUB_ENOMEM;
    }
    m->out_bytes += len;
    if (!m->dirty) {
        m->dirty = true;
        m->next_dirty = self->dirty_head;
        self->dirty_head = m;
    }
    return 0;
}

/* The member's held ACKs as one array of pointers (malloc'ed; NULL when
 * none are held or memory is short). */
static Lth__V1__Ack **hub__held_acks(hub__member_t *m, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < m->held_n; i++)
        total += m->held[i].n_acks;
    *n = 0;
    Lth__V1__Ack **ptrs = total ? malloc(total * sizeof *ptrs) : NULL;
    for (size_t i = 0; ptrs && i < m->held_n; i++)
        for (size_t k = 0; k < m->held[i].n_acks; k++)
            ptrs[(*n)++] = m->held[i].ack_ptrs[k];
    return ptrs;
}

/* Sends the member's held ACKs in a Receipts frame of their own. */
static void hub__held_send(hub_server_t *self, hub__member_t *m)
{
    size_t n;
    Lth__V1__Ack **acks = hub__held_acks(m, &n);
    if (acks)
        hub__receipts_frame(self, m, acks, n, NULL, 0);
    free(acks);
    hub__held_free(m);
}

static void hub__flush_member(hub_server_t *self, hub__member_t *m)
{
    size_t done = 0;
    while (done < m->out_n) {
        /* Cap a Deliveries frame near HUB__FRAME_SOFT_MAX (and below
         * max_frame_bytes / 2), so that the few frames ZeroMQ keeps for a
         * slow peer hold a bounded number of bytes. */
        size_t n = 0, bytes = 0;
        size_t soft_max = self->cfg.max_frame_bytes / 2 < HUB__FRAME_SOFT_MAX
                              ? self->cfg.max_frame_bytes / 2
                              : HUB__FRAME_SOFT_MAX;
        while (done + n < m->out_n && (n == 0 || bytes + m->out[done + n].len < soft_max)) {
            bytes += m->out[done + n].len;
            n++;
        }
        Lth__V1__DeliveredEnvelope *items = calloc(n, sizeof *items);
        Lth__V1__DeliveredEnvelope **ptrs = calloc(n, sizeof *ptrs);
        if (items && ptrs) {
            for (size_t i = 0; i < n; i++) {
                lth__v1__delivered_envelope__init(&items[i]);
                items[i].hub_seq = m->out[done + i].seq;
                items[i].attempt = m->out[done + i].attempt;
                items[i].envelope.data = m->out[done + i].bytes;
                items[i].envelope.len = m->out[done + i].len;
                if (m->out[done + i].has_sign_key) {
                    items[i].sender_sign_key.data = m->out[done + i].sign_key;
                    items[i].sender_sign_key.len = 32;
                }
                ptrs[i] = &items[i];
            }
            Lth__V1__Deliveries d = LTH__V1__DELIVERIES__INIT;
            d.n_items = n;
            d.items = ptrs;
            /* Held ACKs ride along (Hello.receipts_in_deliveries). */
            Lth__V1__Receipts rec = LTH__V1__RECEIPTS__INIT;
            Lth__V1__Ack **acks = m->held_n ? hub__held_acks(m, &rec.n_acks) : NULL;
            if (acks) {
                rec.acks = acks;
                d.receipts = &rec;
            }
            hub_frame_t frame = LTH__V1__FRAME__INIT;
            frame.body_case = LTH__V1__FRAME__BODY_DELIVERIES;
            frame.deliveries = &d;
            if (hub__send_frame(self, m, &frame) == 0) {
                m->msgs_out += n;
                self->stats.deliveries += n;
            }
            if (acks) {
                free(acks);
                hub__held_free(m);
            }
        }
        free(items);
        free(ptrs);
        done += n;
    }
    for (size_t i = 0; i < m->out_n; i++)
        free(m->out[i].bytes);
    m->out_n = 0;
    m->out_bytes = 0;
}

static void hub__flush_all(hub_server_t *self)
{
    if (self->blocked_list)
        hub__retry_blocked(self);
    while (self->dirty_head) {
        hub__member_t *m = self->dirty_head;
        self->dirty_head = m->next_dirty;
        m->dirty = false;
        m->next_dirty = NULL;
        hub__flush_member(self, m);
    }
}

/* ------------------------------------------------------------------------ */
/* Durable delivery                                                          */

static uint64_t hub__backoff_us(const hub_server_t *self, uint32_t attempt)
{
    uint64_t delay = (uint64_t)self->cfg.redelivery_ms * 1000u;
    for (uint32_t i = 1; i < attempt && delay < 3600ull * 1000000u; i++)
        delay *= 2;
    return delay;
}

static hub__member_t *hub__member(hub_server_t *self, const char *id);

static int hub__inflight_add(hub_server_t *self, hub__member_t *m, const hub_store_msg_t *msg,
                             uint32_t attempt)
{
    hub__member_t *sender = hub__member(self, msg->sender);
    hub__inflight_t f = {msg->seq, hub_monotonic_us() + hub__backoff_us(self, attempt), attempt,
                         false, "", sender ? sender->id : "", strdup(msg->service),
                         msg->accepted_at_us};
    memcpy(f.message_id, msg->message_id, sizeof f.message_id);
    if (!f.service || HUB__PUSH(m->inflight, m->inflight_n, m->inflight_cap, f) != 0) {
        free(f.service);
        return HUB_ENOMEM;
    }
    m->inflight_open++;
    return 0;
}

static hub__inflight_t *hub__inflight_find(hub__member_t *m, uint64_t seq)
{
    size_t lo = 0, hi = m->inflight_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->inflight[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < m->inflight_n && m->inflight[lo].seq == seq) ? &m->inflight[lo] : NULL;
}

/* Drops settled entries from the array. */
static void hub__inflight_compact(hub__member_t *m)
{
    size_t w = 0;
    for (size_t r = 0; r < m->inflight_n; r++) {
        if (!m->inflight[r].settled)
            m->inflight[w++] = m->inflight[r];
        else
            free(m->inflight[r].service);
    }
    m->inflight_n = w;
    m->inflight_open = w;
}

static void hub__member_reset_delivery(hub__member_t *m)
{
    for (size_t i = 0; i < m->inflight_n; i++)
        free(m->inflight[i].service);
    m->inflight_n = 0;
    m->inflight_open = 0;
    m->loaded_seq = 0;
    m->backlog = true;
}

static const char *hub__forbidden(hub_server_t *self, const char *consumer, const char *provider,
                                  const char *service, hub_policy_decision_t *d);
static void hub__member_limits(hub_server_t *self, hub__member_t *m);

/* The store quotas a queued message from `sender` to `receiver` is held to. */
static void hub__quota_for(hub_server_t *self, hub__member_t *sender, hub__member_t *receiver,
                           hub_store_quota_t *q)
{
    hub__member_limits(self, sender);
    hub__member_limits(self, receiver);
    q->sender_msgs = sender->send_msgs;
    q->sender_bytes = sender->send_bytes;
    q->receiver_msgs = receiver->recv_msgs;
    q->receiver_bytes = receiver->recv_bytes;
}

/* The sentence of a QUOTA_EXCEEDED: whose quota, how much is held, what to do. */
static void hub__quota_nack(hub_server_t *self, hub__receipts_t *r, const char *id,
                            const hub_store_msg_t *msg, hub_store_outcome_t outcome)
{
    bool as_sender = outcome == HUB_STORE_QUOTA_SENDER;
    const char *who = as_sender ? msg->sender : msg->receiver;
    hub_store_held_t held = {0, 0};
    hub_store_held(self->store, who, as_sender ? &held : NULL, as_sender ? NULL : &held);
    hub__member_t *m = hub_map_get(self->members, who);
    uint64_t qm = m ? (as_sender ? m->send_msgs : m->recv_msgs) : 0;
    uint64_t qb = m ? (as_sender ? m->send_bytes : m->recv_bytes) : 0;
    if (as_sender)
        hub__receipt_nack(self, r, id, LTH__V1__NACK_CODE__NACK_QUOTA_EXCEEDED,
                          "your quota in the hub's store is used up: %s holds %llu messages, "
                          "%llu bytes (its quota: %llu messages, %llu bytes, or less when the "
                          "store is nearly full); nothing was stored: send again once your "
                          "receivers have taken their messages, or ask the operator for a "
                          "larger 'limit'",
                          who, (unsigned long long)held.msgs, (unsigned long long)held.bytes,
                          (unsigned long long)qm, (unsigned long long)qb);
    else
        hub__receipt_nack(self, r, id, LTH__V1__NACK_CODE__NACK_QUOTA_EXCEEDED,
                          "the receiver's quota in the hub's store is used up: %s holds %llu "
                          "messages, %llu bytes waiting for it (its quota: %llu messages, %llu "
                          "bytes, or less when the store is nearly full); nothing was stored: "
                          "send again once it has taken its messages",
                          who, (unsigned long long)held.msgs, (unsigned long long)held.bytes,
                          (unsigned long long)qm, (unsigned long long)qb);
}

/* Rule: a queued message is delivered only while the agreement it was
 * accepted under still holds; one whose agreement ended (by its date, or by
 * a reload) goes to the dead-letter queue with a reason naming it. The
 * check is needed only for messages accepted before the last instant the
 * agreements narrowed (a reload, or an agreement's end), so the common
 * path decodes nothing. Replies travel on their request's agreement.
 * Returns true when `msg` may be delivered; otherwise queues its dead
 * letter and returns false. */
static bool hub__still_allowed(hub_server_t *self, const hub_store_msg_t *msg)
{
    if (!self->policy)
        return true;
    uint64_t now = hub_now_us();
    uint64_t epoch = hub_policy_last_end(self->policy, now);
    if (self->policy_since_us > epoch)
        epoch = self->policy_since_us;
    if (msg->accepted_at_us >= epoch)
        return true;
    hub_envelope_t *env = NULL;
    if (hub_envelope_decode(msg->envelope, msg->envelope_len, &env) != 0)
        return true; /* it was checked at acceptance; the receiver's SDK refuses garbage */
    const char *consumer = msg->sender, *provider = env->receiver;
    bool check = env->kind != LTH__V1__KIND__KIND_REPLY;
    if (!strcmp(env->receiver, self->own_key.member_id)) {
        consumer = msg->receiver; /* a publication: the subscriber's agreement */
        provider = msg->sender;
    }
    hub_policy_decision_t d;
    const char *why = check ? hub__forbidden(self, consumer, provider, env->service, &d) : NULL;
    bool ok = why == NULL;
    if (!ok) {
        char reason[HUB_STORE_REASON_MAX + 1];
        snprintf(reason, sizeof reason, "agreement ended before delivery: %s:%u", d.file, d.line);
        hub__deadpol_t dp = {msg->seq, strdup(reason)};
        if (!dp.reason || HUB__PUSH(self->dead_policy, self->dead_policy_n,
                                    self->dead_policy_cap, dp) != 0)
            free(dp.reason);
        HUB_WARN("router", "agreement ended before delivery: dead-lettered",
                 "seq=%llu sender=%s receiver=%s service=%s reason=\"%s\"",
                 (unsigned long long)msg->seq, msg->sender, msg->receiver, msg->service, why);
    }
    hub_envelope_free(&env);
    return ok;
}

/* Hands queued messages to an online receiver while it has credit. */
static void hub__pump(hub_server_t *self, hub__member_t *m)
{
    if (!m->online || !m->backlog || self->stopping)
        return;
    while (m->online && m->backlog && m->inflight_open < self->cfg.max_in_flight &&
           hub__waiting(m) < self->cfg.max_waiting_bytes) {
        size_t want = self->cfg.max_in_flight - m->inflight_open;
        if (want > HUB__READ_BATCH)
            want = HUB__READ_BATCH;
        hub_store_msg_t *msgs = self->readbuf;
        size_t n = 0;
        hub_store_arena_reset(self->arena);
        int rc = hub_store_read_queue(self->store, m->id, m->loaded_seq, want, msgs, &n,
                                      self->arena);
        if (rc != 0) {
            HUB_ERROR("store", "cannot read a receiver's queue", "member=%s error=\"%s\"", m->id,
                      hub_strerror(rc));
            return;
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t attempt = msgs[i].attempts + 1;
            if (!hub__still_allowed(self, &msgs[i])) {
                m->loaded_seq = msgs[i].seq;
                continue;
            }
            if (hub__enqueue_out(self, m, msgs[i].sender, msgs[i].seq, attempt,
                                 msgs[i].envelope, msgs[i].envelope_len) != 0 ||
                hub__inflight_add(self, m, &msgs[i], attempt) != 0)
                return;
            hub__audit_q(self, HUB_AUDIT_DELIVERED, msgs[i].message_id, msgs[i].seq,
                         msgs[i].sender, m->id, msgs[i].service,
                         attempt == 1 ? "attempt 1" : "redelivery");
            if (attempt == 1) {
                uint64_t now = hub_now_us();
                hub_flows_delivered(self->flows, msgs[i].sender, m->id,
                                    hub__service_label(self, m->id, msgs[i].service),
                                    now > msgs[i].accepted_at_us ? now - msgs[i].accepted_at_us : 0,
                                    now);
            }
            m->loaded_seq = msgs[i].seq;
        }
        if (n < want)
            m->backlog = false;
    }
}

static void hub__commit_start(hub_server_t *self);
static const char *hub__signature_problem(int rc, bool has_key);

/* One receipt for all copies of a publication (items[i] is one copy):
 * ACK when every copy is stored, else the first refusal. A publisher that
 * sends again after a refusal only adds the missing copies (each copy has a
 * derived id, de-duplicated on its own). */
static void hub__group_receipt(hub_server_t *self, hub__commit_t *job, size_t i,
                               hub__receipts_t *r)
{
    hub__pending_t *item = &job->items[i];
    if (job->append_rc == 0 && item->verdict == 0 && job->outcomes[i] == HUB_STORE_OK) {
        const char *label = hub__service_label(self, item->msg.receiver, item->msg.service);
        hub_flows_accepted(self->flows, item->msg.sender, item->msg.receiver, label,
                           item->msg.envelope_len, hub_now_us());
    }
    if (!item->group_first)
        return;
    size_t end = i + 1;
    while (end < job->n_items && job->items[end].group_id[0] && !job->items[end].group_first)
        end++;
    for (size_t k = i; k < end; k++) {
        hub__pending_t *c = &job->items[k];
        if (job->append_rc != 0) {
            hub__receipt_nack(self, r, item->group_id, LTH__V1__NACK_CODE__NACK_INTERNAL,
                              "the hub's store could not commit (%s); send again later",
                              hub_strerror(job->append_rc));
            return;
        }
        if (c->verdict != 0) {
            hub__receipt_nack(self, r, item->group_id, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                              "%s", hub__signature_problem(c->verdict, true));
            return;
        }
        if (job->outcomes[k] == HUB_STORE_QUOTA_SENDER ||
            job->outcomes[k] == HUB_STORE_QUOTA_RECEIVER) {
            hub__quota_nack(self, r, item->group_id, &c->msg, job->outcomes[k]);
            return;
        }
        if (job->outcomes[k] == HUB_STORE_QUEUE_FULL || job->outcomes[k] == HUB_STORE_FULL) {
            bool queue = job->outcomes[k] == HUB_STORE_QUEUE_FULL;
            hub__receipt_nack(self, r, item->group_id,
                              queue ? LTH__V1__NACK_CODE__NACK_QUEUE_FULL
                                    : LTH__V1__NACK_CODE__NACK_STORE_FULL,
                              "the copy for subscriber %s was refused (%s); the other "
                              "subscribers have theirs: send the same message again later",
                              c->msg.receiver, queue ? "its queue is full" : "store full");
            return;
        }
    }
    hub__receipt_ack(r, item->group_id, item->msg.seq);
    self->stats.envelopes_accepted++;
}

static void hub__after_commit(uv_work_t *req, int status)
{
    hub__commit_t *job = req->data;
    hub_server_t *self = job->server;
    self->commit = NULL;
    self->stats.commits++;
    if (self->audit)
        self->audit_seq = job->audit_seq;
    (void)status;

    /* Receipts, one frame per sender. */
    hub_map_t *by_sender = hub_map_new();
    for (size_t i = 0; by_sender && i < job->n_items; i++) {
        hub_store_msg_t *msg = &job->items[i].msg;
        hub__receipts_t *r = hub_map_get(by_sender, msg->sender);
        if (!r) {
            r = malloc(sizeof *r);
            if (!r || hub__receipts_init(r, job->n_items) != 0 ||
                hub_map_put(by_sender, msg->sender, r) != 0) {
                if (r)
                    hub__receipts_free(r);
                free(r);
                continue;
            }
            hub__member_t *sm = hub__member(self, msg->sender);
            r->sender = sm ? sm->id : "";
        }
        if (job->items[i].group_id[0]) {
            hub__group_receipt(self, job, i, r);
            continue;
        }
        if (job->append_rc != 0) {
            hub__receipt_nack(self, r, msg->message_id, LTH__V1__NACK_CODE__NACK_INTERNAL,
                              "the hub's store could not commit (%s); nothing was stored, send "
                              "again later",
                              hub_strerror(job->append_rc));
            continue;
        }
        if (job->items[i].verdict != 0) {
            hub__receipt_nack(self, r, msg->message_id, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                              "%s", hub__signature_problem(job->items[i].verdict, true));
            continue;
        }
        switch (job->outcomes[i]) {
        case HUB_STORE_OK: {
            hub__receipt_ack(r, msg->message_id, msg->seq);
            self->stats.envelopes_accepted++;
            const char *label = hub__service_label(self, msg->receiver, msg->service);
            uint64_t now = hub_now_us();
            hub_flows_accepted(self->flows, msg->sender, msg->receiver, label,
                               msg->envelope_len, now);
            hub_flows_exchange_t x = {msg->message_id, msg->sender, msg->receiver, label,
                                      "accepted", msg->envelope_len, now, 0};
            hub_flows_exchange(self->flows, &x);
            break;
        }
        case HUB_STORE_DUPLICATE:
            hub__receipt_ack(r, msg->message_id, msg->seq);
            self->stats.duplicates++;
            break;
        case HUB_STORE_QUEUE_FULL:
            hub__receipt_nack(self, r, msg->message_id, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                              "the queue of %s is full (%llu messages); nothing was stored, "
                              "send again once it drains",
                              msg->receiver, (unsigned long long)self->cfg.max_queue_depth);
            break;
        case HUB_STORE_FULL:
            hub__receipt_nack(self, r, msg->message_id, LTH__V1__NACK_CODE__NACK_STORE_FULL,
                              "the hub's store is full; nothing was stored, send again later "
                              "(operators: drain or purge the dead-letter queue, or raise "
                              "max_store_bytes)");
            break;
        case HUB_STORE_QUOTA_SENDER:
        case HUB_STORE_QUOTA_RECEIVER:
            hub__quota_nack(self, r, msg->message_id, msg, job->outcomes[i]);
            break;
        }
    }
    size_t cursor = 0;
    const char *sender;
    void *value;
    while (by_sender && hub_map_next(by_sender, &cursor, &sender, &value)) {
        hub__receipts_t *r = value;
        hub__member_t *m = hub_map_get(self->members, sender);
        if (m)
            hub__receipts_send(self, m, r);
        hub__receipts_free(r);
        free(r);
    }
    hub_map_destroy(&by_sender);

    for (size_t i = 0; i < job->n_items; i++) {
        if (job->items[i].early)
            continue;
        hub__member_t *m = hub_map_get(self->members, job->items[i].msg.receiver);
        if (m && m->pending_late > 0)
            m->pending_late--;
    }
    /* Fast path: hand fresh messages straight to receivers that are caught up. */
    for (size_t i = 0; job->append_rc == 0 && i < job->n_items; i++) {
        if (job->items[i].verdict != 0 || job->outcomes[i] != HUB_STORE_OK)
            continue;
        hub_store_msg_t *msg = &job->items[i].msg;
        hub__member_t *m = hub_map_get(self->members, msg->receiver);
        if (!m || !m->online)
            continue;
        /* Delivered before the commit, to this connection (a reconnect since
         * starts its queue again from the store). */
        if (job->items[i].early && m->loaded_seq >= msg->seq)
            continue;
        if (!m->backlog && m->inflight_open < self->cfg.max_in_flight &&
            msg->seq > m->loaded_seq) {
            if (hub__enqueue_out(self, m, msg->sender, msg->seq, 1, job->items[i].bytes,
                                 job->items[i].msg.envelope_len) == 0 &&
                hub__inflight_add(self, m, msg, 1) == 0) {
                m->loaded_seq = msg->seq;
                hub__audit_q(self, HUB_AUDIT_DELIVERED, msg->message_id, msg->seq, msg->sender,
                             m->id, msg->service, "attempt 1");
                uint64_t now = hub_now_us();
                hub_flows_delivered(self->flows, msg->sender, m->id,
                                    hub__service_label(self, m->id, msg->service),
                                    now > msg->accepted_at_us ? now - msg->accepted_at_us : 0,
                                    now);
            } else {
                m->backlog = true;
            }
        } else {
            m->backlog = true;
        }
    }
    if (job->other_rc != 0)
        HUB_ERROR("store", "settle, attempt or dead-letter update failed; it will be retried",
                  "error=\"%s\"", hub_strerror(job->other_rc));
    self->stats.dead_lettered += job->n_dead;
    for (size_t i = 0; i < job->n_dead; i++) {
        const hub_store_msg_t *d = &job->dead[i];
        hub__member_t *sm = hub_map_get(self->members, d->sender);
        hub__member_t *rm = hub_map_get(self->members, d->receiver);
        if (sm && rm) /* bounded labels: both are members the hub knows */
            hub_flows_dead_lettered(self->flows, sm->id, rm->id,
                                    hub__service_label(self, rm->id, d->service), hub_now_us());
    }
    free(job->dead);
    free(job->dead_reason);
    if (job->pruned == HUB_STORE_PRUNE_BATCH)
        self->prune_due = true; /* more to forget: go on at the next commit */

    for (size_t i = 0; i < job->n_items; i++)
        free(job->items[i].bytes);
    free(job->items);
    free(job->outcomes);
    for (size_t i = 0; i < job->n_acks; i++)
        free(job->acks[i].seqs);
    free(job->acks);
    free(job->attempt_seqs);
    free(job->dead_ttl);
    free(job->dead_retry);
    for (size_t i = 0; i < job->n_dead_policy; i++)
        free(job->dead_policy[i].reason);
    free(job->dead_policy);
    for (size_t i = 0; i < job->n_answered; i++)
        free(job->answered[i]);
    free(job->answered);
    hub__auditq_free(job->audit, job->n_audit);
    if (job->audit_rc != 0)
        HUB_ERROR("audit", "writing the audit log failed", "error=\"%s\"",
                  hub_strerror(job->audit_rc));
    free(job);

    /* Receivers with a backlog get it now. */
    cursor = 0;
    while (hub_map_next(self->members, &cursor, NULL, &value))
        hub__pump(self, value);
    hub__flush_all(self);
    if (!self->stopping)
        hub__commit_start(self);
}

/* Appends one record to the audit log (worker thread only). */
static int hub__audit_put(hub_audit_t *audit, hub_audit_event_t event, uint64_t time_us,
                          const char *message_id, uint64_t hub_seq, const char *sender,
                          const char *receiver, const char *service, const char *reason,
                          const hub_envelope_t *env)
{
    hub_audit_record_t rec;
    memset(&rec, 0, sizeof rec);
    rec.event = event;
    rec.time_us = time_us;
    rec.message_id = message_id;
    rec.hub_seq = hub_seq;
    rec.sender = sender;
    rec.receiver = receiver;
    rec.service = service;
    rec.reason = reason;
    if (env) {
        /* The payload's digest and the sender's signature, never the payload. */
        hub_audit_payload_sha256(env->payload.data, env->payload.len, rec.payload_sha256);
        rec.has_payload_sha256 = true;
        rec.signature = env->signature.data;
        rec.signature_len = env->signature.len <= 64 ? env->signature.len : 64;
    }
    return hub_audit_append(audit, &rec);
}

/* Signature checks over items[begin, end) (worker threads; each item is
 * touched by one thread only). */
typedef struct {
    hub__pending_t *items;
    hub_envelope_t **envs;
    size_t begin, end;
} hub__verify_t;

static void *hub__verify_range(void *arg)
{
    hub__verify_t *v = arg;
    /* The envelopes of one signed batch sit next to each other: one
     * Ed25519 verification covers them (hub_sign.h, batch signatures). */
    hub_sigcache_t cache;
    memset(&cache, 0, sizeof cache);
    for (size_t i = v->begin; i < v->end; i++) {
        hub__pending_t *p = &v->items[i];
        if (!p->verify)
            continue;
        p->verdict = v->envs && v->envs[i]
                         ? hub_envelope_verify_cached(v->envs[i], p->sign_key, &cache)
                         : HUB_EINVAL;
    }
    return NULL;
}

static void hub__commit_work(uv_work_t *req)
{
    hub__commit_t *job = req->data;
    hub_server_t *server = job->server;
    hub_store_t *store = server->store;
    hub_audit_t *audit = server->audit;
    int arc = 0;

    /* Signatures are checked here, off the loop thread; the envelopes are
     * decoded again only when a signature or the audit log needs them. */
    hub_envelope_t **envs = NULL;
    if (job->n_items > 0 && (audit || server->cfg.require_signatures))
        envs = calloc(job->n_items, sizeof *envs);
    size_t n_ok = 0;
    hub_store_msg_t *msgs = job->n_items ? malloc(job->n_items * sizeof *msgs) : NULL;
    size_t *index = job->n_items ? malloc(job->n_items * sizeof *index) : NULL;
    job->append_rc = 0;
    bool batched = false;
    if (job->n_items > 0 && (!msgs || !index)) {
        job->append_rc = HUB_ENOMEM;
    } else {
        for (size_t i = 0; envs && i < job->n_items; i++)
            hub_envelope_decode(job->items[i].bytes, job->items[i].msg.envelope_len, &envs[i]);
        /* Ed25519 verification dominates the full path: a second thread
         * checks half of a large batch while this one checks the rest. */
        hub__verify_t halves[2] = {{job->items, envs, 0, job->n_items / 2},
                                   {job->items, envs, job->n_items / 2, job->n_items}};
        pthread_t helper;
        bool threaded = envs && server->cfg.require_signatures && job->n_items >= 64 &&
                        pthread_create(&helper, NULL, hub__verify_range, &halves[1]) == 0;
        if (threaded) {
            hub__verify_range(&halves[0]);
            pthread_join(helper, NULL);
        } else {
            halves[0].end = job->n_items;
            hub__verify_range(&halves[0]);
        }
        for (size_t i = 0; i < job->n_items; i++) {
            hub__pending_t *p = &job->items[i];
            /* The copies of one publication share the first copy's check. */
            if (p->group_id[0] && !p->group_first && i > 0)
                p->verdict = job->items[i - 1].verdict;
            if (p->verdict != 0)
                continue;
            index[n_ok] = i;
            msgs[n_ok++] = p->msg;
        }
        /* Everything from here that writes the store is one LMDB
         * transaction: one durable commit per cycle. Without a batch (it
         * could not begin) each call commits on its own: as durable, slower. */
        batched = hub_store_batch_begin(store) == 0;
        hub_store_outcome_t *outcomes = n_ok ? malloc(n_ok * sizeof *outcomes) : NULL;
        if (n_ok > 0 && !outcomes)
            job->append_rc = HUB_ENOMEM;
        else if (n_ok > 0)
            job->append_rc = hub_store_append(store, msgs, n_ok, outcomes);
        size_t n_req = 0;
        for (size_t k = 0; k < n_ok && job->append_rc == 0; k++) {
            size_t i = index[k];
            job->outcomes[i] = outcomes[k];
            job->items[i].msg.seq = msgs[k].seq;
            job->items[i].msg.accepted_at_us = msgs[k].accepted_at_us;
            n_req += outcomes[k] == HUB_STORE_OK && job->items[i].request_expires_us;
        }
        free(outcomes);
        /* Queued requests are tracked in the store too, in the same
         * commit, so that their replies are still accepted after a restart. */
        hub_store_request_t *reqs = n_req ? malloc(n_req * sizeof *reqs) : NULL;
        size_t nr = 0;
        for (size_t i = 0; reqs && i < job->n_items; i++) {
            const hub__pending_t *p = &job->items[i];
            if (p->verdict != 0 || job->outcomes[i] != HUB_STORE_OK || !p->request_expires_us)
                continue;
            hub_store_request_t *r = &reqs[nr++];
            memcpy(r->message_id, p->msg.message_id, sizeof r->message_id);
            memcpy(r->sender, p->msg.sender, sizeof r->sender);
            memcpy(r->receiver, p->msg.receiver, sizeof r->receiver);
            r->expires_at_us = p->request_expires_us;
        }
        if (nr > 0) {
            int r = hub_store_requests_put(store, reqs, nr);
            if (r != 0)
                job->append_rc = r; /* nothing of this cycle is ACKed */
        }
        free(reqs);
    }
    free(msgs);
    free(index);
    if (!batched)
        batched = hub_store_batch_begin(store) == 0;

    int rc = 0;
    if (job->n_answered > 0)
        rc = hub_store_requests_del(store, (const char *const *)job->answered, job->n_answered);
    for (size_t i = 0; i < job->n_acks; i++) {
        int r = hub_store_ack(store, job->acks[i].receiver, job->acks[i].seqs, job->acks[i].n);
        if (r != 0)
            rc = r;
    }
    if (job->n_attempts > 0 && (rc == 0))
        rc = hub_store_note_attempts(store, job->attempt_seqs, job->n_attempts);
    size_t n_policy = job->n_dead_policy;
    size_t n_groups = 2 + n_policy;
    struct hub__deadgroup {
        uint64_t *seqs;
        size_t n;
        const char *reason;
    } *dead = calloc(n_groups, sizeof *dead);
    if (!dead)
        n_groups = 0;
    else {
        dead[0] = (struct hub__deadgroup){job->dead_ttl, job->n_dead_ttl, "ttl expired"};
        dead[1] = (struct hub__deadgroup){job->dead_retry, job->n_dead_retry,
                                          "retry budget exhausted"};
        for (size_t i = 0; i < n_policy; i++)
            dead[2 + i] = (struct hub__deadgroup){&job->dead_policy[i].seq, 1,
                                                  job->dead_policy[i].reason};
    }
    size_t n_all_dead = job->n_dead_ttl + job->n_dead_retry + n_policy;
    for (size_t d = 0; d < n_groups; d++) {
        if (dead[d].n == 0)
            continue;
        int r = hub_store_dead_letter(store, dead[d].seqs, dead[d].n, dead[d].reason);
        if (r != 0)
            rc = r;
        if (r == 0 && !job->dead) {
            job->dead = calloc(n_all_dead, sizeof *job->dead);
            job->dead_reason = calloc(n_all_dead, sizeof *job->dead_reason);
            if (!job->dead_reason) {
                free(job->dead);
                job->dead = NULL;
            }
        }
        for (size_t i = 0; r == 0 && job->dead && i < dead[d].n; i++) {
            hub_store_dead_t dl;
            if (hub_store_dlq_get(store, dead[d].seqs[i], &dl, NULL) != 0)
                continue;
            job->dead[job->n_dead] = dl.msg;
            job->dead[job->n_dead].envelope = NULL;
            job->dead_reason[job->n_dead++] = dead[d].reason;
        }
    }
    free(dead);
    if (job->prune_dedup) {
        /* Forget message ids older than the window, a bounded batch at a
         * time, so that the store does not grow with every id ever seen. */
        size_t pruned = 0;
        int r = hub_store_prune_dedup(store, hub_now_us(), &pruned);
        if (r != 0)
            rc = r;
        job->pruned = pruned;
    }
    if (batched) {
        int crc = hub_store_batch_commit(store);
        if (crc != 0) {
            /* Nothing of this cycle is stored: no ACK, no settle, no
             * dead-letter happened; senders and redelivery try again. */
            job->append_rc = crc;
            rc = crc;
            job->n_dead = 0;
            job->pruned = 0;
        }
    }
    job->other_rc = rc;
    /* The audit log says what the store now holds. */
    for (size_t i = 0; audit && job->dead && i < job->n_dead; i++) {
        const hub_store_msg_t *d = &job->dead[i];
        int a = hub__audit_put(audit, HUB_AUDIT_DEAD_LETTERED, 0, d->message_id, d->seq,
                               d->sender, d->receiver, d->service, job->dead_reason[i], NULL);
        if (a != 0)
            arc = a;
    }
    for (size_t i = 0; audit && i < job->n_items; i++) {
        hub__pending_t *p = &job->items[i];
        char reason[320];
        hub_audit_event_t event = HUB_AUDIT_NACKED;
        if (p->verdict != 0)
            snprintf(reason, sizeof reason, "BAD_SIGNATURE: the signature does not verify");
        else if (job->append_rc != 0)
            snprintf(reason, sizeof reason, "INTERNAL: store commit failed (%s)",
                     hub_strerror(job->append_rc));
        else if (job->outcomes[i] == HUB_STORE_QUEUE_FULL)
            snprintf(reason, sizeof reason, "QUEUE_FULL");
        else if (job->outcomes[i] == HUB_STORE_FULL)
            snprintf(reason, sizeof reason, "STORE_FULL");
        else if (job->outcomes[i] == HUB_STORE_QUOTA_SENDER)
            snprintf(reason, sizeof reason, "QUOTA_EXCEEDED: the sender's");
        else if (job->outcomes[i] == HUB_STORE_QUOTA_RECEIVER)
            snprintf(reason, sizeof reason, "QUOTA_EXCEEDED: the receiver's");
        else if (job->outcomes[i] == HUB_STORE_DUPLICATE)
            continue; /* already recorded when first accepted */
        else
            event = HUB_AUDIT_ACCEPTED;
        if (event == HUB_AUDIT_ACCEPTED && p->delegated_from)
            snprintf(reason, sizeof reason, "delegated: addressed to %s", p->delegated_from);
        int r = hub__audit_put(audit, event, 0, p->msg.message_id,
                               event == HUB_AUDIT_ACCEPTED ? p->msg.seq : 0, p->msg.sender,
                               p->msg.receiver, p->msg.service,
                               event == HUB_AUDIT_ACCEPTED && !p->delegated_from ? NULL : reason,
                               envs ? envs[i] : NULL);
        if (r != 0)
            arc = r;
    }
    for (size_t i = 0; envs && i < job->n_items; i++)
        hub_envelope_free(&envs[i]);
    free(envs);
    /* Then what the loop recorded since the last commit, in order: after
     * the acceptances, since an envelope delivered before its commit has
     * its DELIVERED record here. */
    for (size_t i = 0; audit && i < job->n_audit; i++) {
        const hub__auditq_t *q = &job->audit[i];
        int r = hub__audit_put(audit, q->event, q->time_us, q->message_id, q->hub_seq, q->sender,
                               q->receiver, q->service, q->reason, NULL);
        if (r != 0)
            arc = r;
    }
    if (audit) {
        int r = hub_audit_tick(audit, hub_now_us());
        if (r == 0)
            r = hub_audit_flush(audit);
        if (r != 0)
            arc = r;
    }
    job->audit_rc = arc;
    job->audit_seq = audit ? hub_audit_seq(audit) : 0;
}

static void hub__on_commit_timer(uv_timer_t *t)
{
    hub__commit_start(t->data);
}

/* Starts a group commit of everything gathered so far, unless one runs. */
static void hub__commit_start(hub_server_t *self)
{
    if (self->commit)
        return;
    /* An envelope delivered early (hub__deliver_early) waits up to
     * HUB__SETTLE_WAIT_US for its receiver's settle: settled, the commit
     * keeps only its de-duplication record (hub_store_msg_t.settled)
     * instead of storing it now and deleting it in the next commit. The
     * commit takes the longest prefix of envelopes that are settled, were
     * not delivered early, or have waited long enough; the sender's ACK
     * waits for that, the round trip does not. */
    size_t ready = 0;
    uint64_t now_mono = hub_monotonic_us();
    while (ready < self->pending_n && ready < HUB__MAX_COMMIT_ITEMS) {
        const hub__pending_t *p = &self->pending[ready];
        if (!self->stopping && p->early && !p->msg.settled &&
            now_mono - p->queued_mono_us < HUB__SETTLE_WAIT_US)
            break;
        ready++;
    }
    /* An envelope that was not delivered early waits for its commit to be
     * delivered at all: the commit goes at least as far as the last one. */
    if (self->pending_late_n > 0) {
        size_t last = self->pending_n;
        while (last > ready && self->pending[last - 1].early)
            last--;
        if (last > ready)
            ready = last < HUB__MAX_COMMIT_ITEMS ? last : HUB__MAX_COMMIT_ITEMS;
    }
    if (ready < self->pending_n && ready < HUB__MAX_COMMIT_ITEMS &&
        !uv_is_active((uv_handle_t *)&self->commit_timer)) {
        uint64_t waited = now_mono - self->pending[ready].queued_mono_us;
        uint64_t left = waited < HUB__SETTLE_WAIT_US ? HUB__SETTLE_WAIT_US - waited : 0;
        uv_timer_start(&self->commit_timer, hub__on_commit_timer, (left + 999) / 1000, 0);
    }
    /* Members with settles to write are counted as they get their first,
     * so that an idle turn does not walk every member (10,000 of them). */
    size_t n_settled = self->members_with_settles;
    size_t cursor = 0;
    void *value;
    if (ready == 0 && n_settled == 0 && self->attempt_n == 0 &&
        self->dead_ttl_n == 0 && self->dead_retry_n == 0 && self->dead_policy_n == 0 &&
        self->answered_n == 0 && self->auditq_n == 0 &&
        !self->audit_tick_due && !self->prune_due)
        return;
    self->audit_tick_due = false;
    hub__commit_t *job = calloc(1, sizeof *job);
    if (!job)
        return;
    job->server = self;
    job->req.data = job;
    size_t take = ready;
    /* The copies of one publication commit together (one receipt). */
    while (take > 0 && take < self->pending_n && self->pending[take].group_id[0] &&
           !self->pending[take].group_first)
        take++;
    if (take > 0) {
        job->items = malloc(take * sizeof *job->items);
        job->outcomes = calloc(take, sizeof *job->outcomes);
        if (!job->items || !job->outcomes) {
            free(job->items);
            free(job->outcomes);
            free(job);
            return;
        }
        memcpy(job->items, self->pending, take * sizeof *job->items);
        for (size_t i = 0; i < take; i++)
            if (!job->items[i].early && self->pending_late_n > 0)
                self->pending_late_n--;
        memmove(self->pending, self->pending + take,
                (self->pending_n - take) * sizeof *self->pending);
        self->pending_n -= take;
        if (self->pending_n == 0 && self->pending_cap > 4096) {
            /* A burst is over: give its memory back. */
            free(self->pending);
            self->pending = NULL;
            self->pending_cap = 0;
        }
        job->n_items = take;
    }
    if (n_settled > 0) {
        job->acks = calloc(n_settled, sizeof *job->acks);
        cursor = 0;
        while (job->acks && job->n_acks < n_settled &&
               hub_map_next(self->members, &cursor, NULL, &value)) {
            hub__member_t *m = value;
            if (m->settled_n == 0)
                continue;
            hub__ackgroup_t *g = &job->acks[job->n_acks++];
            snprintf(g->receiver, sizeof g->receiver, "%s", m->id);
            g->seqs = m->settled;
            g->n = m->settled_n;
            self->members_with_settles--;
            m->settled = NULL;
            m->settled_n = m->settled_cap = 0;
        }
    }
    job->attempt_seqs = self->attempt_seqs;
    job->n_attempts = self->attempt_n;
    self->attempt_seqs = NULL;
    self->attempt_n = self->attempt_cap = 0;
    job->dead_ttl = self->dead_ttl;
    job->n_dead_ttl = self->dead_ttl_n;
    self->dead_ttl = NULL;
    self->dead_ttl_n = self->dead_ttl_cap = 0;
    job->dead_retry = self->dead_retry;
    job->n_dead_retry = self->dead_retry_n;
    self->dead_retry = NULL;
    self->dead_retry_n = self->dead_retry_cap = 0;
    job->dead_policy = self->dead_policy;
    job->n_dead_policy = self->dead_policy_n;
    self->dead_policy = NULL;
    self->dead_policy_n = self->dead_policy_cap = 0;
    job->answered = self->answered;
    job->n_answered = self->answered_n;
    self->answered = NULL;
    self->answered_n = self->answered_cap = 0;
    job->prune_dedup = self->prune_due;
    self->prune_due = false;
    job->audit = self->auditq;
    job->n_audit = self->auditq_n;
    self->auditq = NULL;
    self->auditq_n = self->auditq_cap = 0;
    self->commit = job;
    uv_queue_work(self->loop, &job->req, hub__commit_work, hub__after_commit);
}

/* ------------------------------------------------------------------------ */
/* Keys, certificates, agreements, delegations                              */

typedef struct {
    hub_server_t *self;
    uint64_t now;
} hub__cert_visit_t;

static int hub__on_expiring(const hub_cert_info_t *c, void *user)
{
    hub__cert_visit_t *v = user;
    uint64_t left_h = c->not_after_us > v->now ? (c->not_after_us - v->now) / 3600000000ull : 0;
    HUB_WARN("trust", "certificate expires soon: renew it ('hubctl cert issue')",
             "member=%s file=%s hours_left=%llu", c->keys.member_id[0] ? c->keys.member_id : "(CA)",
             c->file, (unsigned long long)left_h);
    return 0;
}

static void hub__on_cert_timer(uv_timer_t *timer);

/* Loads the member key table: from certificates (each checked against the
 * CA and the CRL) or, in development mode, from the key directory. */
static int hub__load_keys(hub_server_t *self, hub_keydir_t **out, char *err, size_t err_size)
{
    const hub_config_t *cfg = &self->cfg;
    if (!cfg->ca_cert[0])
        return hub_keydir_load(cfg->key_dir, out, err, err_size);
    uint64_t now = hub_now_us();
    hub_certdir_t *cd = NULL;
    int rc = hub_certdir_load(cfg->ca_cert, cfg->crl_file, cfg->cert_dir, now, &cd, err, err_size);
    hub_crl_id_t crl;
    hub_certdir_crl_id(cd, &crl);
    if (rc == 0) /* an older CRL must not un-revoke anyone */
        rc = hub_crl_state_advance(cfg->crl_state_file, cfg->crl_file, &crl, now, err, err_size);
    if (rc != 0) {
        hub_certdir_destroy(&cd);
        return rc;
    }
    size_t refused[16] = {0};
    for (size_t i = 0; i < hub_certdir_count(cd); i++) {
        const hub_cert_info_t *c = hub_certdir_at(cd, i);
        if (c->status == HUB_CERT_VALID) {
            const char *labels[] = {c->keys.member_id};
            hub_metric_set(self->cert_expiry, labels, (double)c->not_after_us / 1e6);
            continue;
        }
        if ((unsigned)c->status < 16)
            refused[c->status]++;
        HUB_WARN("trust", "certificate refused", "file=%s member=%s status=%s reason=\"%s\"",
                 c->file, c->keys.member_id, hub_cert_status_name(c->status), c->reason);
    }
    for (unsigned st = 0; st < 16; st++) {
        if (st == HUB_CERT_VALID)
            continue;
        const char *name = hub_cert_status_name((hub_cert_status_t)st);
        if (name && *name && strcmp(name, "unknown")) {
            const char *labels[] = {name};
            hub_metric_set(self->certs_refused, labels, (double)refused[st]);
        }
    }
    hub__cert_visit_t v = {self, now};
    hub_certdir_visit_expiring(cd, now, (uint64_t)cfg->cert_warn_days * 86400000000ull,
                               hub__on_expiring, &v);
    rc = hub_certdir_keydir(cd, out, err, err_size);
    /* Reload when the next certificate expires or becomes valid, so that an
     * expired member is cut off on time without a SIGHUP. */
    uint64_t next = hub_certdir_next_change_us(cd);
    uint64_t delay_ms = next > now ? (next - now) / 1000u + 1000u : 3600000u;
    if (delay_ms > 3600000u)
        delay_ms = 3600000u;
    if (self->handles_open)
        uv_timer_start(&self->cert_timer, hub__on_cert_timer, delay_ms, 0);
    else
        self->cert_timer_first_ms = delay_ms;
    hub_certdir_destroy(&cd);
    return rc;
}

static void hub__on_cert_timer(uv_timer_t *timer)
{
    hub_server_t *self = timer->data;
    char err[HUB_ERRMSG_MAX];
    if (hub_server_reload_keys(self, err, sizeof err) != 0)
        HUB_ERROR("trust", "certificate reload failed; keeping the previous keys", "error=\"%s\"",
                  err);
}

static int hub__load_policy(hub_server_t *self, hub_policy_t **policy,
                            hub_delegations_t **delegations, char *err, size_t err_size)
{
    *policy = NULL;
    *delegations = NULL;
    int rc = 0;
    if (self->cfg.policy_file[0])
        rc = hub_policy_load(self->cfg.policy_file, policy, err, err_size);
    if (rc == 0 && self->cfg.delegations_file[0])
        rc = hub_delegations_load(self->cfg.delegations_file, delegations, err, err_size);
    if (rc != 0)
        hub_policy_destroy(policy);
    return rc;
}

/* Agreement check for a call or an event; NULL when allowed, else why not. */
static const char *hub__forbidden(hub_server_t *self, const char *consumer, const char *provider,
                                  const char *service, hub_policy_decision_t *d)
{
    if (!self->policy)
        return NULL;
    hub_policy_check(self->policy, consumer, provider, service, hub_now_us(), d);
    return d->allowed ? NULL : d->reason;
}

/* ------------------------------------------------------------------------ */
/* Publish / subscribe                                                       */

/* Subscribers of one topic ("PUBLISHER/SERVICE/VERSION"). */
typedef struct {
    const char **members; /* interned member ids */
    size_t n, cap;
} hub__sublist_t;

static bool hub__subscribed(const hub__sublist_t *l, const char *member)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (!strcmp(l->members[i], member))
            return true;
    return false;
}

/* Adds a subscription; returns 1 when it is new, 0 when known, <0 on error. */
static int hub__subscribe(hub_server_t *self, const char *subscriber, const char *topic)
{
    hub__sublist_t *l = hub_map_get(self->subs, topic);
    if (l && hub__subscribed(l, subscriber))
        return 0;
    hub__member_t *m = hub__member(self, subscriber);
    if (!m)
        return HUB_ENOMEM;
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l || hub_map_put(self->subs, topic, l) != 0) {
            free(l);
            return HUB_ENOMEM;
        }
    }
    if (HUB__PUSH(l->members, l->n, l->cap, (const char *)m->id) != 0)
        return HUB_ENOMEM;
    return 1;
}

/* Writes every subscription to data_dir/subscriptions: tmp file, fsync,
 * rename, so a crash leaves the old list or the new one. Rare (a Hello with
 * a new subscription), so it runs on the loop thread. */
static int hub__save_subscriptions(hub_server_t *self)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", self->subs_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return HUB_EIO;
    fprintf(f, "# Durable subscriptions: SUBSCRIBER-ID PUBLISHER-ID/SERVICE/VERSION\n"
               "# Written by hubd; members subscribe in their Hello.\n");
    size_t cursor = 0;
    const char *topic;
    void *value;
    while (hub_map_next(self->subs, &cursor, &topic, &value)) {
        const hub__sublist_t *l = value;
        for (size_t i = 0; i < l->n; i++)
            fprintf(f, "%s %s\n", l->members[i], topic);
    }
    int rc = (fflush(f) == 0 && fsync(fileno(f)) == 0) ? 0 : HUB_EIO;
    if (fclose(f) != 0)
        rc = HUB_EIO;
    if (rc == 0 && rename(tmp, self->subs_path) != 0)
        rc = HUB_EIO;
    return rc;
}

static int hub__load_subscriptions(hub_server_t *self, char *err, size_t err_size)
{
    FILE *f = fopen(self->subs_path, "r");
    if (!f)
        return 0; /* none yet */
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *space = strchr(line, ' ');
        if (!space) {
            snprintf(err, err_size, "%s:%d: expected 'SUBSCRIBER TOPIC'", self->subs_path,
                     lineno);
            rc = HUB_EPARSE;
            break;
        }
        *space = '\0';
        if (!hub_member_id_valid(line)) {
            snprintf(err, err_size, "%s:%d: '%s' is not a member id", self->subs_path, lineno,
                     line);
            rc = HUB_EPARSE;
            break;
        }
        if (hub__subscribe(self, line, space + 1) < 0)
            rc = HUB_ENOMEM;
    }
    fclose(f);
    return rc;
}

/* The id under which a published event is stored for one subscriber: a
 * UUID derived from the event's id and the subscriber, so that a re-sent
 * publication de-duplicates copy by copy. */
static void hub__derive_id(const char *message_id, const char *subscriber,
                           char out[HUB_UUID_LEN + 1])
{
    crypto_hash_sha256_state st;
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)message_id, strlen(message_id) + 1);
    crypto_hash_sha256_update(&st, (const uint8_t *)subscriber, strlen(subscriber));
    crypto_hash_sha256_final(&st, h);
    h[6] = (uint8_t)((h[6] & 0x0f) | 0x80); /* version 8: custom */
    h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
    snprintf(out, HUB_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1],
             h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
             h[15]);
}

/* ------------------------------------------------------------------------ */
/* Envelopes                                                                 */

/* Requests awaiting a reply: message id -> who asked whom. A reply is
 * accepted only for a request tracked here, from the member the request was
 * routed to (the delegate, when delegated), to the request's sender, and
 * only once: the entry then remembers the reply's id, so that a re-send of
 * that same reply still passes and any other reply is refused. Entries are
 * forgotten after the request's TTL. Queued requests are also kept in the
 * store (hub_store_requests_*) so that their replies survive a restart. */
typedef struct {
    const char *sender;   /* interned member ids */
    const char *receiver;
    uint64_t expires_mono_us;
    bool durable;         /* also in the store, until answered */
    char id[HUB_UUID_LEN + 1];
    char answer_id[HUB_UUID_LEN + 1]; /* the accepted reply; "" = still open */
} hub__request_t;

#define HUB__MAX_TRACKED_REQUESTS 1000000

static void hub__request_forget(hub_server_t *self, hub__request_t *req)
{
    hub__member_t *s = hub_map_get(self->members, req->sender);
    if (s && !req->answer_id[0] && s->open_requests)
        s->open_requests--;
    hub_map_remove(self->requests, req->id);
    free(req);
}

/* Tracks a request the hub is about to accept. Returns 0, or a NACK code
 * with a sentence in *why when the sender has too many unanswered. */
static int hub__remember_request(hub_server_t *self, const char *message_id, const char *sender,
                                 const char *receiver, uint64_t ttl_ms, bool durable,
                                 const char **why)
{
    hub__member_t *s = hub__member(self, sender);
    hub__member_t *r = hub__member(self, receiver);
    if (!s || !r) {
        *why = "the hub is out of memory; send again later";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    hub__request_t *old = hub_map_get(self->requests, message_id);
    if (old && old->sender == s->id && old->receiver == r->id) {
        old->durable |= durable; /* a re-send: same request */
        return 0;
    }
    if (old && !old->answer_id[0]) {
        /* Never let one member's request displace another's. */
        *why = "another open request already has this message_id; give every envelope a new "
               "random UUID";
        return LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE;
    }
    if (s->open_requests >= self->cfg.max_open_requests ||
        hub_map_size(self->requests) >= HUB__MAX_TRACKED_REQUESTS) {
        *why = "too many of your requests are waiting for replies; wait for replies (or their "
               "TTL) before sending more requests";
        return LTH__V1__NACK_CODE__NACK_QUEUE_FULL;
    }
    hub__request_t *req = calloc(1, sizeof *req);
    if (!req) {
        *why = "the hub is out of memory; send again later";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    if (ttl_ms == 0)
        ttl_ms = 60000u;
    if (ttl_ms > self->cfg.max_ttl_ms)
        ttl_ms = self->cfg.max_ttl_ms;
    req->sender = s->id;
    req->receiver = r->id;
    req->durable = durable;
    req->expires_mono_us = hub_monotonic_us() + ttl_ms * 1000u;
    snprintf(req->id, sizeof req->id, "%s", message_id);
    if (old)
        hub__request_forget(self, old);
    if (hub_map_put(self->requests, req->id, req) != 0) {
        free(req);
        *why = "the hub is out of memory; send again later";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    s->open_requests++;
    return 0;
}

/* Decides whether a reply may pass: 0 with the request it answers in *out,
 * or NACK_FORBIDDEN with the reason in `why` (size HUB__WHY_MAX). Nothing
 * changes until hub__request_answered(). */
#define HUB__WHY_MAX 512
static int hub__admit_reply(hub_server_t *self, const hub_envelope_t *env, hub__request_t **out,
                            char *why)
{
    *out = NULL;
    hub__request_t *req = hub_map_get(self->requests, env->correlation_id);
    if (!req) {
        snprintf(why, HUB__WHY_MAX,
                 "a reply must answer a request the hub routed and still tracks; %s is unknown, "
                 "expired or was answered long ago (after a hub restart only queued requests "
                 "are remembered): send the reply only for a request you received",
                 env->correlation_id[0] ? env->correlation_id : "an empty correlation_id");
        return LTH__V1__NACK_CODE__NACK_FORBIDDEN;
    }
    if (strcmp(req->receiver, env->sender) != 0 || strcmp(req->sender, env->receiver) != 0) {
        snprintf(why, HUB__WHY_MAX,
                 "request %s went from %s to %s; only %s may answer it, and only to %s",
                 req->id, req->sender, req->receiver, req->receiver, req->sender);
        return LTH__V1__NACK_CODE__NACK_FORBIDDEN;
    }
    if (req->answer_id[0] && strcmp(req->answer_id, env->message_id) != 0) {
        snprintf(why, HUB__WHY_MAX,
                 "request %s was already answered by reply %s; a request gets one reply",
                 req->id, req->answer_id);
        return LTH__V1__NACK_CODE__NACK_FORBIDDEN;
    }
    *out = req; /* open, or answered by this same reply (a re-send) */
    return 0;
}

/* The reply `reply_id` to `req` has been accepted: no other reply will be. */
static void hub__request_answered(hub_server_t *self, hub__request_t *req, const char *reply_id)
{
    if (req->answer_id[0])
        return;
    snprintf(req->answer_id, sizeof req->answer_id, "%s", reply_id);
    hub__member_t *s = hub_map_get(self->members, req->sender);
    if (s && s->open_requests)
        s->open_requests--;
    if (req->durable) {
        /* Forgotten by the store with the next commit. */
        char *id = strdup(req->id);
        if (id && HUB__PUSH(self->answered, self->answered_n, self->answered_cap, id) != 0)
            free(id);
    }
}

static void hub__expire_requests(hub_server_t *self, uint64_t now)
{
    size_t cursor = 0;
    const char *key;
    void *value;
    /* Removal during iteration is safe with tombstones; a full scan once a
     * second is cheap next to the traffic that filled the map. */
    while (hub_map_next(self->requests, &cursor, &key, &value)) {
        hub__request_t *req = value;
        if (req->expires_mono_us <= now)
            hub__request_forget(self, req);
    }
}

/* hub_store_requests_load() callback: queued requests tracked again after a
 * restart. */
static void hub__request_loaded(const hub_store_request_t *sr, void *user)
{
    hub_server_t *self = user;
    uint64_t now = hub_now_us();
    uint64_t left_ms = sr->expires_at_us > now ? (sr->expires_at_us - now) / 1000u : 1;
    const char *why;
    if (hub__remember_request(self, sr->message_id, sr->sender, sr->receiver,
                              left_ms ? left_ms : 1, true, &why) != 0)
        HUB_WARN("router", "tracked request not restored", "message_id=%s reason=\"%s\"",
                 sr->message_id, why);
}

static const char *hub__signature_problem(int rc, bool has_key)
{
    if (!has_key)
        return "the hub has no signing key for the sender; regenerate its keys with 'hubctl "
               "keygen' and give the hub the new .pub file";
    if (rc == HUB_EINVAL)
        return "the envelope is not signed; sign the canonical digest with the member's "
               "Ed25519 key (proto/README.md)";
    return "the signature does not match the envelope and the sender's key; the envelope was "
           "changed after signing, or signed with another key";
}

/* ------------------------------------------------------------------------ */
/* Metaservices: what a member may ask the hub itself                       */

#define HUB__META_MEMBERS "lth.members/v1"   /* its partners (or all): id, online, services */
#define HUB__META_SERVICES "lth.services/v1" /* payload: a member id; its services */
#define HUB__META_ALLOWED "lth.allowed/v1"   /* the agreements the caller may use now */

static void hub__json_services(hub_jsonw_t *w, const char *services)
{
    hub_jsonw_array_begin(w);
    for (const char *p = services; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n)
            hub_jsonw_strn(w, p, n);
        p += n + (p[n] == ',');
    }
    hub_jsonw_array_end(w);
}

static int hub__meta_allowed_rule(const hub_policy_rule_t *rule, void *user)
{
    hub_jsonw_t *w = user;
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_str(w, "provider", rule->provider);
    hub_jsonw_kv_str(w, "service", rule->service);
    hub_jsonw_kv_str(w, "until", rule->until_text);
    hub_jsonw_kv_str(w, "purpose", rule->purpose);
    hub_jsonw_object_end(w);
    return 0;
}

/* Answers a REQUEST addressed to the hub. Returns 0, or a NACK code with a
 * sentence in why. */
/* Whether `caller` may see `member` in the directory: itself, a member it
 * has an agreement with (either way), or anyone when the operator made the
 * directory public (public_directory) or runs without a policy. */
static bool hub__may_see(const hub_server_t *self, const char *caller, const char *member)
{
    return self->cfg.public_directory || !self->policy || !strcmp(caller, member) ||
           hub_policy_related(self->policy, caller, member, hub_now_us());
}

static int hub__metaservice(hub_server_t *self, hub__member_t *caller, const hub_envelope_t *env,
                            char **json, size_t *json_len, const char **why)
{
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    if (!strcmp(env->service, HUB__META_MEMBERS)) {
        hub_jsonw_key(&w, "members");
        hub_jsonw_array_begin(&w);
        for (size_t i = 0; i < hub_keydir_count(self->keys); i++) {
            const hub_keypair_t *kp = hub_keydir_at(self->keys, i);
            if (!hub__may_see(self, caller->id, kp->member_id))
                continue;
            hub__member_t *m = hub_map_get(self->members, kp->member_id);
            hub_jsonw_object_begin(&w);
            hub_jsonw_kv_str(&w, "id", kp->member_id);
            hub_jsonw_kv_bool(&w, "online", m && m->online);
            hub_jsonw_key(&w, "services");
            hub__json_services(&w, m ? m->services : NULL);
            hub_jsonw_object_end(&w);
        }
        hub_jsonw_array_end(&w);
    } else if (!strcmp(env->service, HUB__META_SERVICES)) {
        char member[HUB_MEMBER_ID_MAX + 1];
        snprintf(member, sizeof member, "%.*s", (int)env->payload.len,
                 (const char *)env->payload.data);
        /* A member with no agreement with the caller is answered as if it
         * did not exist: the directory tells no more than the agreements. */
        if (!hub_keydir_find_member(self->keys, member) ||
            !hub__may_see(self, caller->id, member)) {
            hub_jsonw_free(&w);
            *why = "lth.services/v1 takes as its payload the id of a member you have an "
                   "agreement with";
            return LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER;
        }
        hub__member_t *m = hub_map_get(self->members, member);
        hub_jsonw_kv_str(&w, "member", member);
        hub_jsonw_kv_bool(&w, "online", m && m->online);
        hub_jsonw_key(&w, "services");
        hub__json_services(&w, m ? m->services : NULL);
    } else if (!strcmp(env->service, HUB__META_ALLOWED)) {
        hub_jsonw_kv_str(&w, "member", caller->id);
        hub_jsonw_kv_bool(&w, "policy", self->policy != NULL);
        hub_jsonw_key(&w, "allowed");
        hub_jsonw_array_begin(&w);
        if (self->policy)
            hub_policy_visit_allowed(self->policy, caller->id, hub_now_us(),
                                     hub__meta_allowed_rule, &w);
        hub_jsonw_array_end(&w);
    } else {
        hub_jsonw_free(&w);
        *why = "the hub answers " HUB__META_MEMBERS ", " HUB__META_SERVICES " and "
               HUB__META_ALLOWED "; to publish, send an EVENT";
        return LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE;
    }
    hub_jsonw_object_end(&w);
    if (hub_jsonw_finish(&w, json, json_len) != 0) {
        *why = "the hub is out of memory";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    return 0;
}

/* Sends the hub's own signed reply to a request. */
static void hub__reply_from_hub(hub_server_t *self, hub__member_t *to, const hub_envelope_t *req,
                                const char *json, size_t len)
{
    char id[HUB_UUID_LEN + 1];
    hub_uuid_new(id);
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    env.message_id = id;
    env.correlation_id = req->message_id;
    env.sender = self->own_key.member_id;
    env.receiver = to->id;
    env.service = req->service;
    env.created_at_us = hub_now_us();
    env.content_type = "application/json";
    env.payload.data = (uint8_t *)json;
    env.payload.len = len;
    env.kind = LTH__V1__KIND__KIND_REPLY;
    env.delivery = LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY;
    uint8_t sig[HUB_SIGNATURE_LEN];
    if (self->own_key.has_sign)
        hub_envelope_sign(&env, self->own_key.sign_secret, sig);
    size_t n = lth__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return;
    lth__v1__envelope__pack(&env, buf);
    hub__enqueue_out(self, to, self->own_key.member_id, 0, 1, buf, n);
    free(buf);
}

/* Queues an envelope for the next group commit. Its seq was taken from
 * self->next_seq already (preset_seq), so that it can be delivered early. */
static int hub__pending_push(hub_server_t *self, hub__pending_t *p)
{
    if (HUB__PUSH(self->pending, self->pending_n, self->pending_cap, *p) != 0)
        return HUB_ENOMEM;
    if (!p->early) {
        hub__member_t *r = hub__member(self, p->msg.receiver);
        if (r)
            r->pending_late++;
        self->pending_late_n++;
    }
    return 0;
}

/* Forwards a durable envelope to its receiver now, while the group commit
 * that makes it durable (and ACKs the sender) is still to come, when that
 * can neither reorder nor reveal anything:
 *   - the receiver is connected and caught up: nothing of its queue is
 *     waiting in the store, and nothing for it waits for a commit without
 *     having been delivered early (pending_late);
 *   - no signature needs checking (those are checked on the commit worker
 *     before anyone sees the envelope);
 *   - the store does not know the message already (a re-send is answered
 *     with its first ACK and not delivered again); the store is asked only
 *     for envelopes that may be re-sends (HUB__FRESH_US).
 * The receiver works while the store writes, so a round trip no longer
 * waits for the commits of request and reply in turn. Nothing is lost: the
 * sender is ACKed only after the commit, and if the hub stops before it,
 * the sender sends again and the receiver drops the duplicate by message
 * id (at-least-once delivery, as after any crash). A message the commit
 * then refuses (QUEUE_FULL, STORE_FULL, INTERNAL) has been seen by the
 * receiver and will come again when the sender retries. */
static bool hub__deliver_early(hub_server_t *self, const hub__member_t *sender,
                               uint64_t created_at_us, hub__member_t *rcv, hub__pending_t *p)
{
    if (p->verify || !rcv->online || rcv->backlog || rcv->pending_late > 0 ||
        rcv->inflight_open >= self->cfg.max_in_flight ||
        hub__waiting(rcv) + p->msg.envelope_len > self->cfg.max_waiting_bytes)
        return false;
    /* Clients send an envelope again after a reconnect, or when its
     * receipt is long overdue (the SDK: 30 s): only then can the store know
     * it already, so only then is it asked (a read on this thread). */
    uint64_t now = p->msg.accepted_at_us;
    bool fresh = created_at_us <= now + HUB__FRESH_US && now <= created_at_us + HUB__FRESH_US &&
                 now >= sender->connected_at_us + HUB__FRESH_US;
    uint64_t seq;
    hub_store_state_t state;
    if (!fresh && hub_store_lookup(self->store, p->msg.sender, p->msg.message_id, &seq,
                                   &state) != HUB_ENOTFOUND)
        return false;
    p->msg.seq = p->msg.preset_seq;
    if (hub__enqueue_out(self, rcv, p->msg.sender, p->msg.seq, 1, p->bytes,
                         p->msg.envelope_len) != 0)
        return false;
    if (hub__inflight_add(self, rcv, &p->msg, 1) != 0)
        rcv->backlog = true; /* untracked: the next pump reads it from the store */
    rcv->loaded_seq = p->msg.seq;
    p->early = true;
    hub__audit_q(self, HUB_AUDIT_DELIVERED, p->msg.message_id, p->msg.seq, p->msg.sender,
                 rcv->id, p->msg.service, "attempt 1, before the commit");
    hub_flows_delivered(self->flows, p->msg.sender, rcv->id,
                        hub__service_label(self, rcv->id, p->msg.service), 0, hub_now_us());
    return true;
}

/* An EVENT addressed to the hub itself is a publication: one copy per
 * subscriber of PUBLISHER/SERVICE, each durable in its own queue. */
static void hub__publish(hub_server_t *self, hub__member_t *sender, const hub_envelope_t *env,
                         const uint8_t *bytes, size_t len, hub__receipts_t *receipts,
                         const char *mid)
{
    const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
    if (env->kind != LTH__V1__KIND__KIND_EVENT) {
        if (env->kind == LTH__V1__KIND__KIND_REQUEST && self->cfg.require_signatures) {
            int vrc = skp && skp->has_sign
                          ? hub_envelope_verify_cached(env, skp->sign_public, &self->sigcache)
                          : HUB_EINVAL;
            if (vrc != 0) {
                hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                  "%s", hub__signature_problem(vrc, skp && skp->has_sign));
                return;
            }
        }
        char *json = NULL;
        size_t json_len = 0;
        const char *why = NULL;
        int code = env->kind == LTH__V1__KIND__KIND_REQUEST
                       ? hub__metaservice(self, sender, env, &json, &json_len, &why)
                       : LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE;
        if (code != 0) {
            hub__receipt_nack(self, receipts, mid, code, "%s",
                              why ? why : "the hub takes requests (metaservices) and events "
                                          "(publications), not replies");
            return;
        }
        hub__receipt_ack(receipts, env->message_id, 0);
        hub__reply_from_hub(self, sender, env, json, json_len);
        free(json);
        return;
    }
    if (self->cfg.require_signatures && (!skp || !skp->has_sign || env->signature.len == 0)) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "%s",
                          hub__signature_problem(HUB_EINVAL, skp && skp->has_sign));
        return;
    }
    char topic[HUB_MEMBER_ID_MAX + HUB_SERVICE_MAX + 2];
    snprintf(topic, sizeof topic, "%s/%s", env->sender, env->service);
    hub__sublist_t *l = hub_map_get(self->subs, topic);
    sender->msgs_in++;
    sender->bytes_in += len;
    if (!l || l->n == 0 || env->delivery == LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY) {
        if (l && self->cfg.require_signatures &&
            hub_envelope_verify_cached(env, skp->sign_public, &self->sigcache) != 0) {
            hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "%s",
                              hub__signature_problem(HUB_ECRYPTO, true));
            return;
        }
        /* Nobody subscribes (or online-only): hand it to connected
         * subscribers now; with none, there is nobody to keep it for. */
        for (size_t i = 0; l && i < l->n; i++) {
            hub__member_t *m = hub_map_get(self->members, l->members[i]);
            hub_policy_decision_t d;
            /* Every publish path checks each subscriber's agreement. */
            if (m && m->online && hub__waiting(m) + len <= self->cfg.max_waiting_bytes &&
                !hub__forbidden(self, m->id, env->sender, env->service, &d))
                hub__enqueue_out(self, m, env->sender, 0, 1, bytes, len);
        }
        hub__receipt_ack(receipts, env->message_id, 0);
        self->stats.envelopes_accepted++;
        return;
    }
    uint64_t ttl_ms = env->ttl_ms ? env->ttl_ms : self->cfg.default_ttl_ms;
    if (ttl_ms > self->cfg.max_ttl_ms)
        ttl_ms = self->cfg.max_ttl_ms;
    if (self->pending_n + l->n > HUB__MAX_PENDING) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                          "the hub's store is behind (%zu envelopes waiting to be written); "
                          "nothing was stored, publish again shortly",
                          self->pending_n);
        return;
    }
    uint64_t now = hub_now_us();
    bool first = true;
    for (size_t i = 0; i < l->n; i++) {
        /* An agreement that has ended ends the subscription's deliveries. */
        hub_policy_decision_t d;
        if (hub__forbidden(self, l->members[i], env->sender, env->service, &d))
            continue;
        hub__pending_t p;
        memset(&p, 0, sizeof p);
        p.bytes = malloc(len ? len : 1);
        if (!p.bytes)
            break;
        memcpy(p.bytes, bytes, len);
        hub__derive_id(env->message_id, l->members[i], p.msg.message_id);
        hub__copy_str(p.msg.sender, sizeof p.msg.sender, env->sender);
        hub__copy_str(p.msg.receiver, sizeof p.msg.receiver, l->members[i]);
        hub__copy_str(p.msg.service, sizeof p.msg.service, env->service);
        p.msg.accepted_at_us = now;
        p.msg.expires_at_us = now + ttl_ms * 1000u;
        p.msg.envelope = p.bytes;
        p.msg.envelope_len = len;
        hub__member_t *subm = hub__member(self, l->members[i]);
        if (subm)
            hub__quota_for(self, sender, subm, &p.msg.quota);
        snprintf(p.group_id, sizeof p.group_id, "%s", env->message_id);
        p.group_first = first;
        if (first && self->cfg.require_signatures) {
            memcpy(p.sign_key, skp->sign_public, 32);
            p.verify = true;
        }
        p.msg.preset_seq = self->next_seq++;
        if (hub__pending_push(self, &p) != 0) {
            free(p.bytes);
            break;
        }
        first = false;
    }
    if (first) {
        /* No subscriber may receive it now. */
        hub__receipt_ack(receipts, env->message_id, 0);
        self->stats.envelopes_accepted++;
    }
}

/* The member's limits, re-read after every reload: hubd.conf's defaults,
 * or its policy `limit` line. */
static void hub__member_limits(hub_server_t *self, hub__member_t *m)
{
    if (m->limits_gen == self->limits_gen && m->refill_mono_us)
        return;
    m->limits_gen = self->limits_gen;
    hub_policy_limits_t l = {
        .rate_msgs = self->cfg.rate_msgs,
        .rate_bytes = self->cfg.rate_bytes,
        .send_msgs = self->cfg.quota_send_msgs,
        .send_bytes = self->cfg.quota_send_bytes,
        .recv_msgs = self->cfg.quota_recv_msgs,
        .recv_bytes = self->cfg.quota_recv_bytes,
    };
    if (self->policy)
        hub_policy_limits(self->policy, m->id, &l);
    m->rate_msgs = l.rate_msgs;
    m->rate_bytes = l.rate_bytes;
    m->send_msgs = l.send_msgs;
    m->send_bytes = l.send_bytes;
    m->recv_msgs = l.recv_msgs;
    m->recv_bytes = l.recv_bytes;
    if (!m->refill_mono_us) {
        m->tokens_msgs = (double)m->rate_msgs;
        m->tokens_bytes = (double)m->rate_bytes;
        m->refill_mono_us = hub_monotonic_us();
    }
}

/* Token buckets: 0 when the member may send this envelope now, else
 * NACK_RATE_LIMITED with a sentence in why (HUB__WHY_MAX). A bucket holds
 * one second's worth, so short bursts pass and a steady flood is cut to
 * the rate, whatever the others do. */
static int hub__rate_check(hub_server_t *self, hub__member_t *m, size_t len, char *why)
{
    hub__member_limits(self, m);
    if (!m->rate_msgs && !m->rate_bytes)
        return 0;
    uint64_t now = hub_monotonic_us();
    double dt = (double)(now - m->refill_mono_us) / 1e6;
    m->refill_mono_us = now;
    m->tokens_msgs += dt * (double)m->rate_msgs;
    if (m->tokens_msgs > (double)m->rate_msgs)
        m->tokens_msgs = (double)m->rate_msgs;
    m->tokens_bytes += dt * (double)m->rate_bytes;
    if (m->tokens_bytes > (double)m->rate_bytes)
        m->tokens_bytes = (double)m->rate_bytes;
    bool msgs_ok = !m->rate_msgs || m->tokens_msgs >= 1.0;
    /* An envelope larger than a second's worth passes on a full bucket. */
    bool bytes_ok = !m->rate_bytes || m->tokens_bytes >= (double)len ||
                    m->tokens_bytes >= (double)m->rate_bytes;
    if (msgs_ok && bytes_ok) {
        m->tokens_msgs -= 1.0;
        m->tokens_bytes -= (double)len;
        return 0;
    }
    if (!msgs_ok)
        snprintf(why, HUB__WHY_MAX,
                 "%s may send %llu envelopes a second and is over that rate; slow down and send "
                 "this again in %.0f ms (the operator sets the rate: rate_msgs, or a 'limit' "
                 "line in the policy)",
                 m->id, (unsigned long long)m->rate_msgs,
                 1000.0 * (1.0 - m->tokens_msgs) / (double)m->rate_msgs + 1.0);
    else
        snprintf(why, HUB__WHY_MAX,
                 "%s may send %llu envelope bytes a second and is over that rate; slow down and "
                 "send this again in %.0f ms (the operator sets the rate: rate_bytes, or a "
                 "'limit' line in the policy)",
                 m->id, (unsigned long long)m->rate_bytes,
                 1000.0 * ((double)len - m->tokens_bytes) / (double)m->rate_bytes + 1.0);
    return LTH__V1__NACK_CODE__NACK_RATE_LIMITED;
}

static void hub__route_envelope(hub_server_t *self, hub__member_t *sender, const uint8_t *bytes,
                                size_t len, hub__receipts_t *receipts)
{
    hub_envelope_t *env = NULL;
    if (len > (size_t)self->cfg.max_payload_bytes + 65536u) {
        hub__receipt_nack(self, receipts, "", LTH__V1__NACK_CODE__NACK_PAYLOAD_TOO_LARGE,
                          "envelope of %zu bytes exceeds the hub's limit of %u payload bytes; "
                          "split the payload or send a reference to it",
                          len, self->cfg.max_payload_bytes);
        return;
    }
    if (hub_envelope_decode(bytes, len, &env) != 0) {
        hub__receipt_nack(self, receipts, "", LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                          "an item of the batch is not an encoded lth.v1.Envelope");
        return;
    }
    const char *problem = NULL;
    const char *mid = hub_uuid_valid(env->message_id) ? env->message_id : "";
    if (env->payload.len > self->cfg.max_payload_bytes) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_PAYLOAD_TOO_LARGE,
                          "payload of %zu bytes exceeds the hub's limit of %u bytes; split the "
                          "payload or send a reference to it",
                          env->payload.len, self->cfg.max_payload_bytes);
        goto done;
    }
    if (hub_envelope_check(env, &problem) != 0) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                          "%s", problem);
        goto done;
    }
    if (env->base.n_unknown_fields > 0 ||
        (env->batch_proof && env->batch_proof->base.n_unknown_fields > 0)) {
        /* The hub forwards the exact bytes, and the signature covers only
         * the fields of lth.v1.Envelope: an unknown field would travel
         * unsigned. */
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                          "the envelope has fields lth.v1.Envelope does not define; they "
                          "would not be covered by its signature: remove them");
        goto done;
    }
    char twice[HUB_ERRMSG_MAX]; /* a field encoded twice: forwarded bytes, ambiguous value */
    if (hub_envelope_check_encoding(bytes, len, twice, sizeof twice) != 0) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                          "%s", twice);
        goto done;
    }
    if (strcmp(env->sender, sender->id) != 0) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_SENDER_MISMATCH,
                          "the envelope claims sender %s but this connection is authenticated "
                          "as %s; set sender to your own member id",
                          env->sender, sender->id);
        goto done;
    }
    if (!strcmp(env->receiver, self->own_key.member_id)) {
        hub__publish(self, sender, env, bytes, len, receipts, mid);
        goto done;
    }
    if (!hub_keydir_find_member(self->keys, env->receiver)) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER,
                          "no member %s is registered with the hub; check the receiver id, or "
                          "ask the hub operator to add its key",
                          env->receiver);
        goto done;
    }
    hub__member_t *rcv = hub__member(self, env->receiver);
    if (rcv) {
        /* From here on, refusals are counted against this flow. */
        receipts->receiver = rcv->id;
        receipts->service = env->service;
    }
    /* Deny by default: a request or event needs a data-sharing agreement
     * with the member it is addressed to; a reply needs the request it
     * answers (hub__admit_reply, below, once the receiver is known). */
    if (env->kind != LTH__V1__KIND__KIND_REPLY) {
        hub_policy_decision_t decision;
        const char *why = hub__forbidden(self, env->sender, env->receiver, env->service,
                                         &decision);
        if (why) {
            hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_FORBIDDEN, "%s", why);
            goto done;
        }
    }
    /* Ủy quyền: the authority addressed has delegated this service. */
    unsigned deleg_line = 0;
    const char *delegate = hub_delegations_find(self->delegations, env->receiver, env->service,
                                                hub_now_us(), &deleg_line);
    if (delegate && env->kind != LTH__V1__KIND__KIND_REPLY) {
        if (!hub_keydir_find_member(self->keys, delegate)) {
            hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER,
                              "%s delegated %s to %s (delegations line %u), which has no key "
                              "at the hub; ask the operator to fix the delegation",
                              env->receiver, env->service, delegate, deleg_line);
            goto done;
        }
        hub__member_t *dm = hub__member(self, delegate);
        if (dm) {
            HUB_DEBUG("router", "delegated", "message_id=%s authority=%s delegate=%s",
                      env->message_id, env->receiver, delegate);
            rcv = dm;
            receipts->receiver = dm->id;
        }
    } else {
        delegate = NULL;
    }
    if (!rcv) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                          "the hub is out of memory; send again later");
        goto done;
    }
    /* Replies route back by correlation id: only to a request the hub
     * tracks, from its receiver, to its sender, once. */
    hub__request_t *answers = NULL;
    if (env->kind == LTH__V1__KIND__KIND_REPLY) {
        char why[HUB__WHY_MAX];
        int code = hub__admit_reply(self, env, &answers, why);
        if (code != 0) {
            hub__receipt_nack(self, receipts, mid, code, "%s", why);
            goto done;
        }
    }
    sender->msgs_in++;
    sender->bytes_in += len;
    if (env->delivery == LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY) {
        if (!rcv->online) {
            hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE,
                              "%s is not connected to the hub now; send with queued delivery to "
                              "have the hub keep it until the receiver returns",
                              rcv->id);
            goto done;
        }
        if (self->cfg.require_signatures) {
            const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
            int vrc = skp && skp->has_sign
                          ? hub_envelope_verify_cached(env, skp->sign_public, &self->sigcache)
                          : HUB_EINVAL;
            if (vrc != 0) {
                hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                  "%s", hub__signature_problem(vrc, skp && skp->has_sign));
                goto done;
            }
        }
        if (hub__waiting(rcv) + len > self->cfg.max_waiting_bytes) {
            hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                              "%s is not reading fast enough: %llu bytes already wait for it "
                              "(the limit is max_waiting_bytes = %llu); send again later, or "
                              "send with queued delivery",
                              rcv->id, (unsigned long long)hub__waiting(rcv),
                              (unsigned long long)self->cfg.max_waiting_bytes);
            goto done;
        }
        if (env->kind == LTH__V1__KIND__KIND_REQUEST) {
            const char *why;
            int code = hub__remember_request(self, env->message_id, env->sender, rcv->id,
                                             env->ttl_ms, false, &why);
            if (code != 0) {
                hub__receipt_nack(self, receipts, mid, code, "%s", why);
                goto done;
            }
        }
        if (hub__enqueue_out(self, rcv, env->sender, 0, 1, bytes, len) != 0) {
            hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                              "the hub is out of memory; send again later");
            goto done;
        }
        if (answers)
            hub__request_answered(self, answers, env->message_id);
        hub__receipt_ack(receipts, env->message_id, 0);
        self->stats.envelopes_accepted++;
        {
            const char *label = hub__service_label(self, rcv->id, env->service);
            uint64_t now = hub_now_us();
            hub_flows_accepted(self->flows, env->sender, rcv->id, label, len, now);
            hub_flows_delivered(self->flows, env->sender, rcv->id, label, 0, now);
        }
        goto done;
    }
    /* Durable: wait for the group commit, unless the store is this far
     * behind: then the sender is told to wait, and the hub's memory stays
     * bounded whatever the senders do. */
    if (self->pending_n >= HUB__MAX_PENDING) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                          "the hub's store is behind (%zu envelopes waiting to be written); "
                          "nothing was stored, send again shortly",
                          self->pending_n);
        goto done;
    }
    uint64_t ttl_ms = env->ttl_ms ? env->ttl_ms : self->cfg.default_ttl_ms;
    if (ttl_ms > self->cfg.max_ttl_ms)
        ttl_ms = self->cfg.max_ttl_ms;
    hub__pending_t p;
    memset(&p, 0, sizeof p);
    p.bytes = malloc(len ? len : 1);
    if (!p.bytes) {
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                          "the hub is out of memory; send again later");
        goto done;
    }
    memcpy(p.bytes, bytes, len);
    hub__copy_str(p.msg.message_id, sizeof p.msg.message_id, env->message_id);
    hub__copy_str(p.msg.sender, sizeof p.msg.sender, env->sender);
    hub__copy_str(p.msg.receiver, sizeof p.msg.receiver, rcv->id);
    if (delegate) {
        hub__member_t *authority = hub__member(self, env->receiver);
        p.delegated_from = authority ? authority->id : NULL;
    }
    hub__copy_str(p.msg.service, sizeof p.msg.service, env->service);
    p.msg.accepted_at_us = hub_now_us();
    p.msg.expires_at_us = p.msg.accepted_at_us + ttl_ms * 1000u;
    p.msg.envelope = p.bytes;
    p.msg.envelope_len = len;
    hub__quota_for(self, sender, rcv, &p.msg.quota);
    if (self->cfg.require_signatures) {
        /* Checked on the commit worker, off the loop thread. */
        const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
        if (!skp || !skp->has_sign || env->signature.len == 0) {
            free(p.bytes);
            hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "%s",
                              hub__signature_problem(HUB_EINVAL, skp && skp->has_sign));
            goto done;
        }
        memcpy(p.sign_key, skp->sign_public, 32);
        p.verify = true;
        /* A batch signature costs one Ed25519 check per batch (the cache),
         * so it is checked here, which lets the envelope go early; a single
         * signature (~75 µs) waits for the commit worker. */
        if (env->batch_proof) {
            int vrc = hub_envelope_verify_cached(env, skp->sign_public, &self->sigcache);
            if (vrc != 0) {
                free(p.bytes);
                hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                  "%s", hub__signature_problem(vrc, true));
                goto done;
            }
            p.verify = false;
        }
    }
    if (env->kind == LTH__V1__KIND__KIND_REQUEST) {
        const char *why;
        int code = hub__remember_request(self, env->message_id, env->sender, rcv->id,
                                         env->ttl_ms ? env->ttl_ms : ttl_ms, true, &why);
        if (code != 0) {
            free(p.bytes);
            hub__receipt_nack(self, receipts, mid, code, "%s", why);
            goto done;
        }
        p.request_expires_us = p.msg.expires_at_us;
    }
    if (answers)
        hub__request_answered(self, answers, env->message_id);
    p.msg.preset_seq = self->next_seq++;
    hub__deliver_early(self, sender, env->created_at_us, rcv, &p);
    p.queued_mono_us = hub_monotonic_us();
    if (hub__pending_push(self, &p) != 0) {
        free(p.bytes);
        hub__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                          "the hub is out of memory; send again later");
    }
done:
    receipts->receiver = NULL;
    receipts->service = NULL;
    hub_envelope_free(&env);
}

/* ------------------------------------------------------------------------ */
/* Frames from members                                                       */

static void hub__on_hello(hub_server_t *self, hub__member_t *m, const uint8_t *rid,
                          size_t rid_len, const Lth__V1__Hello *hello)
{
    if (hello->protocol_version < HUB_PROTOCOL_VERSION) {
        hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_UNSUPPORTED_VERSION,
                            "this hub speaks protocol version 1; upgrade the client");
        return;
    }
    if (hello->member_id[0] && strcmp(hello->member_id, m->id) != 0) {
        char reason[700];
        snprintf(reason, sizeof reason,
                 "hello claims member %.255s but this connection's key belongs to %s; use the "
                 "key file of the member you are",
                 hello->member_id, m->id);
        hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_SENDER_MISMATCH, reason);
        HUB_WARN("router", "hello with a member id that does not match the key",
                 "member=%s claimed=\"%.80s\"", m->id, hello->member_id);
        return;
    }
    size_t total = 1;
    for (size_t i = 0; i < hello->n_services; i++) {
        if (!hub_service_valid(hello->services[i])) {
            char reason[400];
            snprintf(reason, sizeof reason,
                     "offered service '%.100s' is not SERVICE/VERSION, e.g. citizen.lookup/v1",
                     hello->services[i]);
            hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME,
                                reason);
            return;
        }
        total += strlen(hello->services[i]) + 1;
    }
    bool subs_changed = false;
    for (size_t i = 0; i < hello->n_subscriptions; i++) {
        char publisher[HUB_MEMBER_ID_MAX + 1];
        const char *svc;
        if (!hub_member_service_split(hello->subscriptions[i], publisher, &svc)) {
            char reason[400];
            snprintf(reason, sizeof reason,
                     "subscription '%.100s' is not PUBLISHER-ID/SERVICE/VERSION, e.g. "
                     "VN/GOV/HN-VP/TTHC/catalogue.published/v1",
                     hello->subscriptions[i]);
            hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME,
                                reason);
            return;
        }
    }
    for (size_t i = 0; i < hello->n_subscriptions; i++) {
        /* A subscription is a standing call: it needs an agreement with the
         * publisher for that service, like a request would. */
        if (self->policy) {
            const char *topic = hello->subscriptions[i], *svc;
            char publisher[HUB_MEMBER_ID_MAX + 1];
            hub_member_service_split(topic, publisher, &svc); /* checked above */
            hub_policy_decision_t d;
            const char *why = hub__forbidden(self, m->id, publisher, svc, &d);
            if (why) {
                char reason[HUB_POLICY_REASON_MAX + 64];
                snprintf(reason, sizeof reason, "subscription %s refused: %s", topic, why);
                hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_FORBIDDEN,
                                    reason);
                continue;
            }
        }
        int added = hub__subscribe(self, m->id, hello->subscriptions[i]);
        if (added > 0) {
            subs_changed = true;
            HUB_INFO("router", "durable subscription added", "member=%s topic=%s", m->id,
                     hello->subscriptions[i]);
        }
    }
    if (subs_changed && hub__save_subscriptions(self) != 0)
        HUB_ERROR("router", "cannot save subscriptions; they hold until hubd restarts",
                  "path=%s", self->subs_path);
    char *services = calloc(1, total);
    if (!services)
        return;
    for (size_t i = 0; i < hello->n_services; i++) {
        if (i)
            strcat(services, ",");
        strcat(services, hello->services[i]);
    }
    free(m->services);
    m->services = services;
    bool was_online = m->online;
    hub__held_free(m); /* receipts of the previous connection: its envelopes come again */
    hub__blocked_drop(m); /* frames for the previous connection: what is durable comes again */
    m->piggyback = hello->receipts_in_deliveries;
    memcpy(m->rid, rid, rid_len);
    m->rid_len = rid_len;
    m->online = true;
    m->connected_at_us = hub_now_us();
    m->last_seen_mono_us = hub_monotonic_us();
    m->last_seen_us = m->connected_at_us;
    snprintf(m->address, sizeof m->address, "%s", self->current_peer ? self->current_peer : "");
    /* A (re)connecting member gets every unsettled message again, from the
     * start of its queue; its SDK drops the ones it has already handled. */
    hub__member_reset_delivery(m);
    /* What went to the previous connection before its commit comes again
     * after that commit, in order: until then nothing is delivered early. */
    hub__commit_t *running = self->commit;
    for (int k = 0; k < 2; k++) {
        hub__pending_t *items = k == 0 ? self->pending : running ? running->items : NULL;
        size_t n = k == 0 ? self->pending_n : running ? running->n_items : 0;
        for (size_t i = 0; i < n; i++) {
            if (items[i].early && !strcmp(items[i].msg.receiver, m->id)) {
                items[i].early = false;
                m->pending_late++;
                if (k == 0)
                    self->pending_late_n++;
            }
        }
    }
    HUB_INFO("router", was_online ? "member reconnected" : "member connected",
             "member=%s services=\"%s\"", m->id, services);
    hub__audit_q(self, HUB_AUDIT_MEMBER_CONNECTED, NULL, 0, m->id, NULL, NULL, services);

    Lth__V1__Welcome welcome = LTH__V1__WELCOME__INIT;
    welcome.member_id = m->id;
    welcome.hub_version = HUB_VERSION;
    welcome.max_payload_bytes = self->cfg.max_payload_bytes;
    welcome.heartbeat_ms = self->cfg.heartbeat_ms;
    welcome.signatures_required = self->cfg.require_signatures;
    welcome.hub_id = self->own_key.member_id;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_WELCOME;
    frame.welcome = &welcome;
    hub__send_frame(self, m, &frame);
    hub__pump(self, m);
}

/* Receipts for online-only and refused envelopes wait for the end of the
 * loop turn, after the turn's deliveries: the receiver's copy leaves first
 * (it is what the round trip waits for), and a sender gets one Receipts
 * frame for all its Batch frames of the turn. */
static void hub__turn_receipts_send(hub_server_t *self)
{
    for (size_t i = 0; i < self->turn_rcpt_n; i++) {
        if (!self->turn_rcpt[i].m)
            continue; /* held */
        hub__receipts_send(self, self->turn_rcpt[i].m, &self->turn_rcpt[i].r);
        hub__receipts_free(&self->turn_rcpt[i].r);
    }
    self->turn_rcpt_n = 0;
}

/* Moves this turn's ACK-only receipts of members that take receipts in
 * Deliveries frames to those members, before the turn's deliveries are
 * flushed (which then carry them). */
static void hub__turn_receipts_hold(hub_server_t *self)
{
    uint64_t now = 0;
    for (size_t i = 0; i < self->turn_rcpt_n; i++) {
        hub__member_t *m = self->turn_rcpt[i].m;
        if (!m->piggyback || !m->online || self->turn_rcpt[i].r.n_nacks > 0)
            continue;
        if (HUB__PUSH(m->held, m->held_n, m->held_cap, self->turn_rcpt[i].r) != 0)
            continue;
        self->turn_rcpt[i].m = NULL;
        if (m->held_n == 1)
            m->held_since_mono_us = now ? now : (now = hub_monotonic_us());
        if (!m->on_held_list) {
            m->on_held_list = true;
            m->next_held = self->held_head;
            self->held_head = m;
        }
    }
}

/* Sends, on their own, the held receipts that found no Deliveries frame
 * within HUB__HOLD_RECEIPTS_US; runs again while any are held. */
static void hub__on_held_timer(uv_timer_t *t)
{
    hub_server_t *self = t->data;
    uint64_t now = hub_monotonic_us();
    hub__member_t **link = &self->held_head;
    while (*link) {
        hub__member_t *m = *link;
        if (m->held_n > 0 && now - m->held_since_mono_us >= HUB__HOLD_RECEIPTS_US)
            hub__held_send(self, m);
        if (m->held_n == 0) {
            *link = m->next_held;
            m->next_held = NULL;
            m->on_held_list = false;
        } else {
            link = &m->next_held;
        }
    }
    if (self->held_head)
        uv_timer_start(&self->held_timer, hub__on_held_timer, 1, 0);
}

static void hub__on_batch(hub_server_t *self, hub__member_t *m, const Lth__V1__Batch *batch)
{
    hub__receipts_t receipts;
    if (hub__receipts_init(&receipts, batch->n_envelopes) != 0) {
        hub__receipts_free(&receipts);
        return;
    }
    receipts.sender = m->id;
    size_t limited = 0;
    char why[HUB__WHY_MAX];
    for (size_t i = 0; i < batch->n_envelopes; i++) {
        const ProtobufCBinaryData *e = &batch->envelopes[i];
        /* Over its rate, an envelope is refused before it costs anything
         * more: no decoding, and one audit record and log line per batch,
         * so that a flood is cheap to turn away. */
        if (hub__rate_check(self, m, e->len, why) != 0) {
            char id[HUB_UUID_LEN + 1];
            hub_envelope_peek_id(e->data, e->len, id);
            hub__receipt_add_nack(self, &receipts, id, LTH__V1__NACK_CODE__NACK_RATE_LIMITED,
                                  why);
            limited++;
            continue;
        }
        hub__route_envelope(self, m, e->data, e->len, &receipts);
    }
    self->turn_envelopes += batch->n_envelopes;
    if (limited) {
        char summary[HUB__WHY_MAX + 64];
        snprintf(summary, sizeof summary, "RATE_LIMITED: %zu envelopes of one batch: %s",
                 limited, why);
        hub__audit_q(self, HUB_AUDIT_NACKED, "", 0, m->id, NULL, NULL, summary);
        if (hub__refusal_log_ok(self, m))
            HUB_INFO("router", "envelopes refused", "member=%s code=RATE_LIMITED count=%zu",
                     m->id, limited);
    }
    if (receipts.n_acks == 0 && receipts.n_nacks == 0) {
        hub__receipts_free(&receipts); /* all queued: answered after the commit */
        return;
    }
    hub__turnrcpt_t t = {m, receipts};
    if (HUB__PUSH(self->turn_rcpt, self->turn_rcpt_n, self->turn_rcpt_cap, t) != 0) {
        hub__receipts_send(self, m, &receipts);
        hub__receipts_free(&receipts);
    }
}

/* A settle for an envelope delivered early whose commit has not started:
 * it is marked settled (hub__commit_start) and needs no store ack. Pending
 * envelopes are in seq order (their seqs were handed out as they came). */
static bool hub__settle_pending(hub_server_t *self, const hub__member_t *m, uint64_t seq)
{
    size_t lo = 0, hi = self->pending_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (self->pending[mid].msg.preset_seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == self->pending_n)
        return false;
    hub__pending_t *p = &self->pending[lo];
    if (p->msg.preset_seq != seq || !p->early || strcmp(p->msg.receiver, m->id) != 0)
        return false;
    p->msg.settled = true;
    return true;
}

static void hub__on_settle(hub_server_t *self, hub__member_t *m, const Lth__V1__Settle *settle)
{
    for (size_t i = 0; i < settle->n_hub_seqs; i++) {
        uint64_t seq = settle->hub_seqs[i];
        hub__inflight_t *f = hub__inflight_find(m, seq);
        if (f && !f->settled) {
            f->settled = true;
            m->inflight_open--;
            hub__audit_q(self, HUB_AUDIT_SETTLED, f->message_id, seq, f->sender, m->id,
                         f->service, NULL);
            uint64_t now = hub_now_us();
            uint64_t e2e = now > f->accepted_at_us ? now - f->accepted_at_us : 0;
            const char *label = hub__service_label(self, m->id, f->service);
            hub_flows_settled(self->flows, f->sender, m->id, label, e2e, now);
            hub_flows_exchange_t x = {f->message_id, f->sender, m->id, label, "settled", 0, now,
                                      e2e};
            hub_flows_exchange(self->flows, &x);
        } else if (!f) {
            hub__audit_q(self, HUB_AUDIT_SETTLED, NULL, seq, NULL, m->id, NULL,
                         "settled after a reconnect or restart");
        }
        /* Settle even what is not in flight here (e.g. a delivery made before
         * a hub restart): the store ignores seqs that are not queued. Only a
         * receiver's own queue can be settled by it. */
        if (hub__settle_pending(self, m, seq)) {
            self->stats.settled++;
            continue;
        }
        if (m->settled_n == 0)
            self->members_with_settles++;
        if (HUB__PUSH(m->settled, m->settled_n, m->settled_cap, seq) == 0)
            self->stats.settled++;
    }
    if (m->inflight_n > 0 && m->inflight_open * 2 < m->inflight_n)
        hub__inflight_compact(m);
    hub__pump(self, m);
}

static void hub__on_heartbeat(hub_server_t *self, hub__member_t *m, const uint8_t *rid,
                              size_t rid_len, const Lth__V1__Heartbeat *hb)
{
    Lth__V1__Heartbeat echo = LTH__V1__HEARTBEAT__INIT;
    echo.sent_at_us = hb->sent_at_us;
    echo.echo = true;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &echo;
    if (m->online && m->rid_len == rid_len && memcmp(m->rid, rid, rid_len) == 0) {
        hub__send_frame(self, m, &frame);
        return;
    }
    /* Not registered on this connection: tell the client to say hello. */
    hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_HELLO_REQUIRED,
                        "send a Hello first: the hub does not know this connection (it may "
                        "have restarted)");
}

static void hub__on_message(hub_server_t *self, const uint8_t *rid, size_t rid_len,
                            zmq_msg_t *body)
{
    self->stats.frames_in++;
    /* The sender is whoever owns the CURVE key this connection proved; the
     * ZAP handler put that key in User-Id. The key is looked up again on
     * every message so that a key removed on reload is cut off at once. */
    const char *key = zmq_msg_gets(body, "User-Id");
    const hub_keypair_t *kp = key ? hub_keydir_find_key(self->keys, key) : NULL;
    if (!kp) {
        hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_FORBIDDEN,
                            "this member's key is no longer admitted (removed from the key "
                            "directory, or its certificate expired or was revoked); ask the hub "
                            "operator");
        return;
    }
    hub__member_t *m = hub__member(self, kp->member_id);
    if (!m)
        return;
    m->last_seen_mono_us = hub_monotonic_us();
    m->last_seen_us = hub_now_us();
    self->current_peer = zmq_msg_gets(body, "Peer-Address");

    hub_frame_t *frame = NULL;
    int rc = hub_frame_decode(zmq_msg_data(body), zmq_msg_size(body), &frame);
    if (rc != 0) {
        self->stats.malformed_frames++;
        hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME,
                            "the message is not an encoded lth.v1.Frame with a body; see "
                            "proto/README.md for the framing");
        HUB_INFO("router", "malformed frame", "member=%s bytes=%zu", m->id, zmq_msg_size(body));
        return;
    }
    if (frame->protocol_version != HUB_PROTOCOL_VERSION) {
        hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_UNSUPPORTED_VERSION,
                            "this hub speaks protocol version 1; set Frame.protocol_version = 1");
        hub_frame_free(&frame);
        return;
    }
    bool registered = m->online && m->rid_len == rid_len && memcmp(m->rid, rid, rid_len) == 0;
    switch (frame->body_case) {
    case LTH__V1__FRAME__BODY_HELLO:
        hub__on_hello(self, m, rid, rid_len, frame->hello);
        break;
    case LTH__V1__FRAME__BODY_HEARTBEAT:
        hub__on_heartbeat(self, m, rid, rid_len, frame->heartbeat);
        break;
    case LTH__V1__FRAME__BODY_BATCH:
    case LTH__V1__FRAME__BODY_SETTLE:
        if (!registered) {
            hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_HELLO_REQUIRED,
                                "send a Hello first: the hub does not know this connection (it "
                                "may have restarted); then send the batch again");
            break;
        }
        if (frame->body_case == LTH__V1__FRAME__BODY_BATCH &&
            m->blocked_bytes > self->cfg.max_waiting_bytes) {
            /* It does not read its receipts: take nothing more from it
             * until it does (its SDK sends unanswered envelopes again). */
            self->stats.frames_dropped_unread++;
            break;
        }
        if (frame->body_case == LTH__V1__FRAME__BODY_BATCH)
            hub__on_batch(self, m, frame->batch);
        else
            hub__on_settle(self, m, frame->settle);
        break;
    default:
        self->stats.malformed_frames++;
        hub__send_error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME,
                            "clients may send only Hello, Batch, Settle and Heartbeat frames");
        break;
    }
    hub_frame_free(&frame);
}

static void hub__on_router_readable(hub_zsock_t *zs, void *socket, void *user)
{
    (void)zs;
    hub_server_t *self = user;
    self->turn_envelopes = 0;
    for (int n = 0; n < HUB__DRAIN_BUDGET && !self->stopping &&
                    self->turn_envelopes < HUB__TURN_ENVELOPES;
         n++) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            break;
        }
        bool ok = zmq_msg_more(&rid);
        zmq_msg_init(&body);
        if (ok && zmq_msg_recv(&body, socket, ZMQ_DONTWAIT) < 0)
            ok = false;
        /* A client may send more than one frame; we take exactly one. Drain
         * and refuse the rest. */
        bool extra = ok && zmq_msg_more(&body);
        while (zmq_msg_more(&body) || (!ok && zmq_msg_more(&rid))) {
            zmq_msg_t junk;
            zmq_msg_init(&junk);
            int r = zmq_msg_recv(&junk, socket, ZMQ_DONTWAIT);
            int more = r >= 0 && zmq_msg_more(&junk);
            zmq_msg_close(&junk);
            if (!more)
                break;
        }
        if (extra) {
            self->stats.malformed_frames++;
            hub__send_error_rid(self, zmq_msg_data(&rid), zmq_msg_size(&rid),
                                LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME,
                                "send exactly one ZeroMQ frame per message; see proto/README.md");
        } else if (ok && zmq_msg_size(&rid) <= 255) {
            hub__on_message(self, zmq_msg_data(&rid), zmq_msg_size(&rid), &body);
        }
        zmq_msg_close(&body);
        zmq_msg_close(&rid);
    }
    hub__turn_receipts_hold(self);
    hub__flush_all(self);
    hub__turn_receipts_send(self);
    if (self->held_head && !uv_is_active((uv_handle_t *)&self->held_timer))
        uv_timer_start(&self->held_timer, hub__on_held_timer, 1, 0);
    hub__commit_start(self);
}

/* ------------------------------------------------------------------------ */
/* ZAP: who may connect                                                      */

static void hub__zap_reply(void *zap, const zmq_msg_t *request_id, const char *code,
                           const char *text, const char *user_id)
{
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, zmq_msg_data((zmq_msg_t *)request_id), zmq_msg_size((zmq_msg_t *)request_id),
             ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, code, strlen(code), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, user_id, strlen(user_id), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, "", 0, ZMQ_DONTWAIT);
}

static void hub__on_zap_readable(hub_zsock_t *zs, void *socket, void *user)
{
    (void)zs;
    hub_server_t *self = user;
    for (int n = 0; n < HUB__DRAIN_BUDGET; n++) {
        /* version, request id, domain, address, identity, mechanism, key */
        zmq_msg_t parts[7];
        int count = 0;
        bool more = true;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, socket, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&part);
                break;
            }
            more = zmq_msg_more(&part);
            if (count < 7)
                parts[count++] = part;
            else
                zmq_msg_close(&part);
        }
        if (count == 0)
            break;
        if (count == 7) {
            char address[64] = "";
            snprintf(address, sizeof address, "%.*s", (int)zmq_msg_size(&parts[3]),
                     (const char *)zmq_msg_data(&parts[3]));
            bool curve = zmq_msg_size(&parts[5]) == 5 && !memcmp(zmq_msg_data(&parts[5]), "CURVE", 5);
            char z85[HUB_Z85_KEY_LEN + 1] = "";
            if (curve && zmq_msg_size(&parts[6]) == 32)
                zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32);
            const hub_keypair_t *kp = z85[0] ? hub_keydir_find_key(self->keys, z85) : NULL;
            if (kp) {
                hub__zap_reply(socket, &parts[1], "200", "OK", z85);
                HUB_DEBUG("zap", "key admitted", "member=%s address=%s", kp->member_id, address);
            } else {
                hub__zap_reply(socket, &parts[1], "400", "unknown key", "");
                self->stats.keys_refused++;
                self->refused_since_log++;
                /* Unknown keys are counted always but logged at most once a
                 * second, so that a flood cannot flood the log. */
                uint64_t now = hub_monotonic_us();
                if (now - self->last_refusal_log_us >= 1000000u) {
                    HUB_WARN("zap", "connection refused: CURVE key not in the key directory",
                             "address=%s key=%s refused_since_last_log=%llu", address,
                             z85[0] ? z85 : "-", (unsigned long long)self->refused_since_log);
                    self->refused_since_log = 0;
                    self->last_refusal_log_us = now;
                }
            }
            hub_zsock_kick(self->zap_watch);
        }
        for (int i = 0; i < count; i++)
            zmq_msg_close(&parts[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* Timers and signals                                                        */

static void hub__housekeeping(uv_timer_t *timer)
{
    hub_server_t *self = timer->data;
    uint64_t now = hub_monotonic_us();
    uint64_t silent_limit = (uint64_t)self->cfg.heartbeat_ms * 3000u;
    size_t cursor = 0;
    void *value;
    while (hub_map_next(self->members, &cursor, NULL, &value)) {
        hub__member_t *m = value;
        if (!m->online)
            continue;
        if (now - m->last_seen_mono_us > silent_limit) {
            HUB_INFO("router", "member silent, marked offline", "member=%s silent_ms=%llu",
                     m->id, (unsigned long long)((now - m->last_seen_mono_us) / 1000u));
            m->online = false;
            continue;
        }
        if (m->blocked_n > 0 && m->stalled_since_mono_us &&
            now - m->stalled_since_mono_us > (uint64_t)self->cfg.drain_timeout_ms * 1000u) {
            /* It takes nothing: cut it off, so that it holds no more of the
             * hub's memory; what is durable stays in the store. */
            HUB_WARN("router", "member not reading: cut off, its queue is kept",
                     "member=%s waiting_bytes=%llu stalled_ms=%llu", m->id,
                     (unsigned long long)hub__waiting(m),
                     (unsigned long long)((now - m->stalled_since_mono_us) / 1000u));
            hub__blocked_drop(m);
            m->online = false;
            continue;
        }
        /* Redeliver what the receiver has not settled in time. */
        for (size_t i = 0; i < m->inflight_n && hub__waiting(m) < self->cfg.max_waiting_bytes;
             i++) {
            hub__inflight_t *f = &m->inflight[i];
            if (f->settled || f->deadline_us > now)
                continue;
            if (f->attempt >= self->cfg.max_attempts) {
                HUB__PUSH(self->dead_retry, self->dead_retry_n, self->dead_retry_cap, f->seq);
                f->settled = true;
                m->inflight_open--;
                continue;
            }
            hub_store_arena_reset(self->arena);
            hub_store_msg_t msg;
            size_t n = 0;
            if (hub_store_read_queue(self->store, m->id, f->seq - 1, 1, &msg, &n, self->arena) !=
                    0 ||
                n == 0 || msg.seq != f->seq) {
                /* Gone from the store (settled or dead-lettered meanwhile). */
                f->settled = true;
                m->inflight_open--;
                continue;
            }
            if (!hub__still_allowed(self, &msg)) {
                f->settled = true;
                m->inflight_open--;
                continue;
            }
            f->attempt++;
            f->deadline_us = now + hub__backoff_us(self, f->attempt);
            hub__enqueue_out(self, m, msg.sender, f->seq, f->attempt, msg.envelope,
                             msg.envelope_len);
            hub__audit_q(self, HUB_AUDIT_DELIVERED, msg.message_id, f->seq, msg.sender, m->id,
                         msg.service, "redelivery after no settle");
            HUB__PUSH(self->attempt_seqs, self->attempt_n, self->attempt_cap, f->seq);
            self->stats.redeliveries++;
        }
    }
    if (now - self->last_prune_us >= 10000000u) {
        self->prune_due = true;
        self->last_prune_us = now;
    }
    if (now - self->last_request_sweep_us >= 1000000u) {
        hub__expire_requests(self, now);
        self->last_request_sweep_us = now;
    }
    if (self->audit && now - self->last_audit_tick_us >= 1000000u) {
        self->audit_tick_due = true;
        self->last_audit_tick_us = now;
    }
    /* Expired messages go to the dead-letter queue. */
    uint64_t expired[256];
    size_t n_expired = 0;
    if (hub_store_expired(self->store, hub_now_us(), expired, 256, &n_expired) == 0) {
        for (size_t i = 0; i < n_expired; i++)
            HUB__PUSH(self->dead_ttl, self->dead_ttl_n, self->dead_ttl_cap, expired[i]);
    }
    hub__flush_all(self);
    hub__commit_start(self);
}

static void hub__close_handles(hub_server_t *self);

static void hub__on_signal(uv_signal_t *handle, int signum)
{
    hub_server_t *self = handle->data;
    if (signum == SIGTERM || signum == SIGINT) {
        HUB_INFO("hubd", "shutting down", "signal=%d", signum);
        hub_server_stop(self);
    } else if (signum == SIGHUP) {
        char err[HUB_ERRMSG_MAX];
        if (hub_server_reload_keys(self, err, sizeof err) != 0)
            HUB_ERROR("hubd", "key directory reload failed; keeping the previous keys",
                      "error=\"%s\"", err);
    } else if (signum == SIGUSR1 || signum == SIGUSR2) {
        int level = (int)hub_log_get_level() + (signum == SIGUSR1 ? -1 : 1);
        if (level < HUB_LOG_DEBUG)
            level = HUB_LOG_DEBUG;
        if (level > HUB_LOG_ERROR)
            level = HUB_LOG_ERROR;
        hub_log_set_level((hub_log_level_t)level);
        hub_log(HUB_LOG_ERROR, "hubd", "log level changed", "level=%s",
                hub_log_level_name((hub_log_level_t)level));
    }
}

/* After a reload: subscriptions whose agreement no longer holds get
 * nothing (every publish checks each subscriber); say which. */
static void hub__review_subscriptions(hub_server_t *self)
{
    size_t cursor = 0;
    const char *topic;
    void *value;
    while (hub_map_next(self->subs, &cursor, &topic, &value)) {
        const hub__sublist_t *l = value;
        /* topic = PUBLISHER/SERVICE/VERSION, the publisher id has 4 parts */
        const char *p = topic;
        for (int k = 0; k < 4 && p; k++) {
            p = strchr(p, '/');
            if (p)
                p++;
        }
        if (!p)
            continue;
        char publisher[HUB_MEMBER_ID_MAX + 1];
        snprintf(publisher, sizeof publisher, "%.*s", (int)(p - 1 - topic), topic);
        for (size_t i = 0; i < l->n; i++) {
            hub_policy_decision_t d;
            const char *why = hub__forbidden(self, l->members[i], publisher, p, &d);
            if (why)
                HUB_WARN("router", "subscription suspended: no agreement in force",
                         "subscriber=%s topic=%s reason=\"%s\"", l->members[i], topic, why);
        }
    }
}

int hub_server_reload_keys(hub_server_t *self, char *err, size_t err_size)
{
    hub_keydir_t *fresh = NULL;
    int rc = hub__load_keys(self, &fresh, err, err_size);
    if (rc != 0)
        return rc;
    hub_policy_t *policy = NULL;
    hub_delegations_t *delegations = NULL;
    rc = hub__load_policy(self, &policy, &delegations, err, err_size);
    if (rc != 0) {
        /* All or nothing: keep the running keys and agreements. */
        hub_keydir_destroy(&fresh);
        return rc;
    }
    hub_policy_destroy(&self->policy);
    hub_delegations_destroy(&self->delegations);
    self->policy = policy;
    self->policy_since_us = hub_now_us();
    self->limits_gen++;
    self->delegations = delegations;
    hub__review_subscriptions(self);
    size_t cursor = 0;
    void *value;
    while (hub_map_next(self->members, &cursor, NULL, &value)) {
        hub__member_t *m = value;
        if (m->online && !hub_keydir_find_member(fresh, m->id)) {
            HUB_WARN("router", "member key removed: cut off, its queue is kept", "member=%s",
                     m->id);
            m->online = false;
        }
    }
    hub_keydir_destroy(&self->keys);
    self->keys = fresh;
    HUB_INFO("hubd", "key directory reloaded", "members=%zu agreements=%zu delegations=%zu",
             hub_keydir_count(fresh), self->policy ? hub_policy_rule_count(self->policy) : 0,
             hub_delegations_count(self->delegations));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The operator surface's view of the hub (hub_ops_source.h)                 */

static void hub__ops_members(void *ctx, hub_ops_member_visit visit, void *user)
{
    hub_server_t *self = ctx;
    /* Every member with a key, connected or not, then members seen that
     * have lost their key since. */
    for (size_t i = 0; i < hub_keydir_count(self->keys); i++) {
        const hub_keypair_t *kp = hub_keydir_at(self->keys, i);
        hub__member_t *m = hub_map_get(self->members, kp->member_id);
        hub_ops_member_t v = {kp->member_id, true, false, 0, 0, "", "", 0, 0, 0, 0, 0};
        if (m) {
            v.online = m->online;
            v.connected_at_us = m->connected_at_us;
            v.last_seen_us = m->last_seen_us;
            v.address = m->address;
            v.services = m->services ? m->services : "";
            v.msgs_in = m->msgs_in;
            v.msgs_out = m->msgs_out;
            v.bytes_in = m->bytes_in;
            v.bytes_out = m->bytes_out;
            v.in_flight = m->inflight_open;
        }
        visit(&v, user);
    }
    size_t cursor = 0;
    void *value;
    while (hub_map_next(self->members, &cursor, NULL, &value)) {
        hub__member_t *m = value;
        if (hub_keydir_find_member(self->keys, m->id))
            continue;
        hub_ops_member_t v = {m->id, false, m->online, m->connected_at_us, m->last_seen_us,
                              m->address, m->services ? m->services : "", m->msgs_in,
                              m->msgs_out, m->bytes_in, m->bytes_out, m->inflight_open};
        visit(&v, user);
    }
}

typedef struct {
    hub_server_t *self;
    hub_ops_queue_visit visit;
    void *user;
} hub__queue_visit_t;

static void hub__ops_queue_cb(const char *receiver, uint64_t depth, uint64_t oldest, void *user)
{
    hub__queue_visit_t *qv = user;
    hub__member_t *m = hub_map_get(qv->self->members, receiver);
    hub_ops_queue_t q = {receiver, depth, oldest, m ? m->inflight_open : 0};
    qv->visit(&q, qv->user);
}

static void hub__ops_queues(void *ctx, hub_ops_queue_visit visit, void *user)
{
    hub__queue_visit_t qv = {ctx, visit, user};
    hub_store_queues(((hub_server_t *)ctx)->store, hub__ops_queue_cb, &qv);
}

static void hub__ops_stats(void *ctx, hub_server_stats_t *out)
{
    hub_server_get_stats(ctx, out);
}

static void hub__ops_usage(void *ctx, uint64_t *used, uint64_t *max, uint64_t *dead,
                           uint64_t *audit_seq)
{
    hub_server_t *self = ctx;
    *used = *max = *dead = 0;
    hub_store_usage(self->store, used, max, dead);
    *audit_seq = self->audit_seq;
}

static bool hub__ops_ready(void *ctx, const char **why_not)
{
    hub_server_t *self = ctx;
    if (self->stopping) {
        *why_not = "shutting down";
        return false;
    }
    if (!self->store || !self->router || !self->keys) {
        *why_not = "store, socket or keys not ready";
        return false;
    }
    return true;
}

static struct hub_store *hub__ops_store(void *ctx) { return ((hub_server_t *)ctx)->store; }

static int hub__ops_dlq_replay(void *ctx, uint64_t seq)
{
    hub_server_t *self = ctx;
    hub_store_dead_t dead;
    int rc = hub_store_dlq_get(self->store, seq, &dead, NULL);
    if (rc != 0)
        return rc;
    uint64_t new_seq = 0;
    /* The replayed message gets the next seq of the hub's counter, and must
     * not be stored ahead of envelopes that already hold lower seqs (a
     * receiver's deliveries follow seq order): so only between commits. */
    if (self->pending_n > 0 || self->commit)
        return HUB_EAGAIN;
    /* An admin action: one store transaction on the loop thread. */
    rc = hub_store_dlq_replay(self->store, seq, (uint64_t)self->cfg.default_ttl_ms * 1000u,
                              self->next_seq++, &new_seq);
    if (rc != 0)
        return rc;
    char reason[64];
    snprintf(reason, sizeof reason, "replayed as hub_seq %llu", (unsigned long long)new_seq);
    hub__audit_q(self, HUB_AUDIT_REPLAYED, dead.msg.message_id, seq, dead.msg.sender,
                 dead.msg.receiver, dead.msg.service, reason);
    HUB_INFO("dlq", "dead letter replayed", "hub_seq=%llu new_seq=%llu receiver=%s",
             (unsigned long long)seq, (unsigned long long)new_seq, dead.msg.receiver);
    hub__member_t *m = hub_map_get(self->members, dead.msg.receiver);
    if (m) {
        m->backlog = true;
        hub__pump(self, m);
        hub__flush_all(self);
    }
    hub__commit_start(self);
    return 0;
}

static int hub__ops_dlq_purge(void *ctx, uint64_t seq)
{
    hub_server_t *self = ctx;
    hub_store_dead_t dead;
    int rc = hub_store_dlq_get(self->store, seq, &dead, NULL);
    if (rc == 0)
        rc = hub_store_dlq_purge(self->store, seq);
    if (rc == 0)
        HUB_INFO("dlq", "dead letter purged", "hub_seq=%llu receiver=%s",
                 (unsigned long long)seq, dead.msg.receiver);
    return rc;
}

static int hub__ops_dlq_purge_older(void *ctx, uint64_t before_us, uint64_t *purged)
{
    size_t n = 0;
    int rc = hub_store_dlq_purge_older(((hub_server_t *)ctx)->store, before_us, &n);
    *purged = n;
    if (rc == 0)
        HUB_INFO("dlq", "old dead letters purged", "count=%zu", n);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */

static int hub__zmq_fail(const char *what, char *err, size_t err_size)
{
    snprintf(err, err_size, "%s: %s", what, zmq_strerror(zmq_errno()));
    return HUB_EZMQ;
}

int hub_server_new(uv_loop_t *loop, const hub_config_t *cfg, hub_server_t **out, char *err,
                   size_t err_size)
{
    *out = NULL;
    if (!zmq_has("curve")) {
        snprintf(err, err_size, "this libzmq was built without CURVE; install Debian's libzmq5");
        return HUB_EZMQ;
    }
    hub_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    self->cfg = *cfg;
    self->loop = loop;
    if (self->cfg.audit && !self->cfg.audit_dir[0])
        snprintf(self->cfg.audit_dir, sizeof self->cfg.audit_dir, "%.*s/audit",
                 (int)(sizeof self->cfg.audit_dir - 7), self->cfg.data_dir);
    int rc = hub_keyfile_read(cfg->key_file, &self->own_key, err, err_size);
    if (rc == 0 && !self->own_key.has_secret) {
        snprintf(err, err_size,
                 "%s holds no secret key; key_file must name the hub's .secret file "
                 "(make one with 'hubctl keygen HUB-MEMBER-ID DIR')",
                 cfg->key_file);
        rc = HUB_EINVAL;
    }
    static const char *const member_label[] = {"member"}, *const status_label[] = {"status"};
    if (rc == 0 && (hub_metrics_new(0, &self->metrics) != 0 ||
                    hub_flows_new(self->metrics, 0, &self->flows) != 0 ||
                    hub_metrics_gauge(self->metrics, "lth_certificate_expiry_timestamp_seconds",
                                      "When each member's certificate expires (Unix time)",
                                      member_label, 1, &self->cert_expiry) != 0 ||
                    hub_metrics_gauge(self->metrics, "lth_certificates_refused",
                                      "Member certificates refused at the last load, by reason",
                                      status_label, 1, &self->certs_refused) != 0)) {
        snprintf(err, err_size, "out of memory");
        rc = HUB_ENOMEM;
    }
    if (rc == 0)
        rc = hub__load_keys(self, &self->keys, err, err_size);
    if (rc == 0)
        rc = hub__load_policy(self, &self->policy, &self->delegations, err, err_size);
    self->policy_since_us = hub_now_us();
    if (rc == 0 && !cfg->ca_cert[0])
        HUB_WARN("hubd", "development mode: members are admitted by the key directory alone; "
                         "set ca_cert, crl_file and cert_dir to require certificates",
                 "key_dir=%s", cfg->key_dir);
    if (rc == 0 && !self->policy)
        HUB_WARN("hubd", "no policy_file: every member may call every service (development "
                         "mode); set policy_file to deny by default",
                 NULL);
    if (rc == 0 && (!(self->members = hub_map_new()) || !(self->requests = hub_map_new()) ||
                    !(self->subs = hub_map_new()))) {
        snprintf(err, err_size, "out of memory");
        rc = HUB_ENOMEM;
    }
    if (rc == 0) {
        hub_store_limits_t limits = {
            .max_bytes = cfg->max_store_bytes,
            .max_queue_depth = cfg->max_queue_depth,
            .dedup_window_us = (uint64_t)cfg->dedup_window_ms * 1000u,
            .reserve_percent = cfg->store_reserve_percent,
        };
        rc = hub_store_open(cfg->data_dir, &limits, &self->store, err, err_size);
        if (rc == 0 && hub_store_upgraded_from(self->store))
            HUB_WARN("store", "store upgraded in place to the current format", "dir=%s from=%u",
                     cfg->data_dir, hub_store_upgraded_from(self->store));
    }
    if (rc == 0) {
        uint64_t next = 0;
        if ((rc = hub_store_next_seq(self->store, &next)) != 0)
            snprintf(err, err_size, "store %s: cannot read its sequence counter (%s)",
                     cfg->data_dir, hub_strerror(rc));
        self->next_seq = next + HUB__SEQ_RESTART_GAP;
    }
    if (rc == 0 && (rc = hub_store_arena_new(&self->arena)) != 0)
        snprintf(err, err_size, "out of memory");
    if (rc == 0) {
        snprintf(self->subs_path, sizeof self->subs_path, "%.*s/subscriptions",
                 (int)(sizeof self->subs_path - 15), cfg->data_dir);
        rc = hub__load_subscriptions(self, err, err_size);
    }
    if (rc == 0) {
        size_t expired = 0;
        rc = hub_store_requests_load(self->store, hub_now_us(), hub__request_loaded, self,
                                     &expired);
        if (rc != 0)
            snprintf(err, err_size, "store %s: cannot read its tracked requests (%s)",
                     cfg->data_dir, hub_strerror(rc));
        else if (hub_map_size(self->requests) || expired)
            HUB_INFO("hubd", "tracked requests restored", "open=%zu expired=%zu",
                     hub_map_size(self->requests), expired);
    }
    if (rc == 0 && !(self->readbuf = malloc(HUB__READ_BATCH * sizeof *self->readbuf))) {
        snprintf(err, err_size, "out of memory");
        rc = HUB_ENOMEM;
    }
    if (rc == 0 && cfg->require_signatures && !self->own_key.has_sign) {
        snprintf(err, err_size, "%s has no signing key; regenerate the hub's keys with 'hubctl "
                                "keygen'", cfg->key_file);
        rc = HUB_EINVAL;
    }
    if (rc == 0 && cfg->audit) {
        if (!self->own_key.has_sign) {
            snprintf(err, err_size, "%s has no signing key, which the audit log needs; "
                                    "regenerate the hub's keys with 'hubctl keygen'",
                     cfg->key_file);
            rc = HUB_EINVAL;
        } else {
            hub_audit_config_t acfg;
            memset(&acfg, 0, sizeof acfg);
            memcpy(acfg.sign_secret, self->own_key.sign_secret, 64);
            memcpy(acfg.sign_public, self->own_key.sign_public, 32);
            rc = hub_audit_open(self->cfg.audit_dir, &acfg, &self->audit, err, err_size);
            sodium_memzero(&acfg, sizeof acfg);
        }
    }
    if (rc != 0) {
        hub_server_destroy(&self);
        return rc;
    }

    self->zctx = zmq_ctx_new();
    /* The ZAP handler must be bound before the ROUTER, or a CURVE server
     * admits any client that knows its public key. */
    self->zap = self->zctx ? zmq_socket(self->zctx, ZMQ_REP) : NULL;
    int linger = 0;
    if (!self->zap || zmq_setsockopt(self->zap, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(self->zap, HUB__ZAP_ENDPOINT) != 0) {
        rc = hub__zmq_fail("cannot start the ZAP handler", err, err_size);
        hub_server_destroy(&self);
        return rc;
    }
    self->router = zmq_socket(self->zctx, ZMQ_ROUTER);
    int one = 1;
    int64_t max_msg = cfg->max_frame_bytes;
    int sndhwm = HUB__SNDHWM, rcvhwm = HUB__RCVHWM;
    /* A peer that opens a connection and never finishes the CURVE handshake
     * is dropped after this long (libzmq's default is 30 s). */
    int handshake_ms = 5000;
    /* Thousands of members reconnect at once after a hub restart: a deep
     * listen backlog keeps their SYNs from being dropped (default 100). */
    int backlog = 4096;
    uint8_t server_secret[32];
    if (!self->router ||
        zmq_setsockopt(self->router, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
        zmq_setsockopt(self->router, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) != 0 ||
        zmq_setsockopt(self->router, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) != 0 ||
        zmq_setsockopt(self->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) != 0 ||
        zmq_setsockopt(self->router, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof handshake_ms) != 0 ||
        zmq_setsockopt(self->router, ZMQ_BACKLOG, &backlog, sizeof backlog) != 0 ||
        zmq_setsockopt(self->router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_z85_decode(server_secret, self->own_key.curve_secret) == NULL ||
        zmq_setsockopt(self->router, ZMQ_CURVE_SECRETKEY, server_secret, 32) != 0 ||
        zmq_setsockopt(self->router, ZMQ_ZAP_DOMAIN, "lth", 3) != 0) {
        sodium_memzero(server_secret, sizeof server_secret);
        rc = hub__zmq_fail("cannot set up the CURVE ROUTER socket", err, err_size);
        hub_server_destroy(&self);
        return rc;
    }
    sodium_memzero(server_secret, sizeof server_secret);
    if (zmq_bind(self->router, cfg->listen) != 0) {
        char what[400];
        snprintf(what, sizeof what,
                 "cannot listen on %s (is another hubd running, or the address wrong?)",
                 cfg->listen);
        rc = hub__zmq_fail(what, err, err_size);
        hub_server_destroy(&self);
        return rc;
    }
    size_t len = sizeof self->endpoint;
    zmq_getsockopt(self->router, ZMQ_LAST_ENDPOINT, self->endpoint, &len);

    rc = hub_zsock_start(loop, self->zap, hub__on_zap_readable, self, &self->zap_watch);
    if (rc == 0)
        rc = hub_zsock_start(loop, self->router, hub__on_router_readable, self,
                             &self->router_watch);
    if (rc != 0) {
        snprintf(err, err_size, "cannot watch the sockets: %s", hub_strerror(rc));
        hub_server_destroy(&self);
        return rc;
    }
    if (cfg->http_listen[0]) {
        char token[HUB_OPS_TOKEN_MAX + 1] = "";
        if (cfg->http_token_file[0] &&
            hub_ops_read_token_file(cfg->http_token_file, token, sizeof token, err,
                                    err_size) != 0) {
            hub_server_destroy(&self);
            return HUB_EINVAL;
        }
        self->ops_source = (hub_ops_source_t){self,
                                              hub__ops_members,
                                              hub__ops_queues,
                                              hub__ops_stats,
                                              hub__ops_usage,
                                              hub__ops_ready,
                                              hub__ops_store,
                                              hub__ops_dlq_replay,
                                              hub__ops_dlq_purge,
                                              hub__ops_dlq_purge_older};
        hub_ops_config_t ocfg = {cfg->http_listen, token, {0}, cfg->http_allowed_hosts};
        ocfg.http.max_connections_per_client = cfg->http_max_connections_per_client;
        ocfg.http.header_timeout_ms = cfg->http_header_timeout_ms;
        ocfg.public_api = cfg->http_public;
        rc = hub_ops_new(loop, &ocfg, &self->ops_source, self->flows, self->metrics, &self->ops,
                         err, err_size);
        sodium_memzero(token, sizeof token);
        if (rc != 0) {
            hub_server_destroy(&self);
            return rc;
        }
        if (!cfg->http_token_file[0])
            HUB_WARN("hubd", "no http_token_file: the dead-letter API is closed", NULL);
    }
    uv_timer_init(loop, &self->cert_timer);
    self->cert_timer.data = self;
    if (cfg->ca_cert[0])
        uv_timer_start(&self->cert_timer, hub__on_cert_timer, self->cert_timer_first_ms, 0);
    uv_timer_init(loop, &self->housekeeping);
    self->housekeeping.data = self;
    uv_timer_init(loop, &self->held_timer);
    self->held_timer.data = self;
    uv_timer_init(loop, &self->retry_timer);
    self->retry_timer.data = self;
    uv_timer_init(loop, &self->commit_timer);
    self->commit_timer.data = self;
    uint64_t period = cfg->heartbeat_ms / 2 > 100 ? 100 : cfg->heartbeat_ms / 2;
    uv_timer_start(&self->housekeeping, hub__housekeeping, period, period);
    uv_signal_t *sigs[] = {&self->sig_term, &self->sig_int, &self->sig_hup, &self->sig_usr1,
                           &self->sig_usr2};
    int signums[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    for (int i = 0; i < 5; i++) {
        uv_signal_init(loop, sigs[i]);
        sigs[i]->data = self;
        uv_signal_start(sigs[i], hub__on_signal, signums[i]);
    }
    self->handles_open = true;
    HUB_INFO("hubd", "listening", "endpoint=%s hub=%s members=%zu store=%s", self->endpoint,
             self->own_key.member_id, hub_keydir_count(self->keys), cfg->data_dir);
    *out = self;
    return 0;
}

const char *hub_server_endpoint(const hub_server_t *self) { return self->endpoint; }

const char *hub_server_http_address(const hub_server_t *self)
{
    return self->ops ? hub_ops_address(self->ops) : NULL;
}

static void hub__close_handles(hub_server_t *self)
{
    if (!self->handles_open)
        return;
    self->handles_open = false;
    if (self->ops)
        hub_ops_close(self->ops, NULL, NULL);
    hub_zsock_close(&self->router_watch);
    hub_zsock_close(&self->zap_watch);
    uv_close((uv_handle_t *)&self->housekeeping, NULL);
    uv_close((uv_handle_t *)&self->held_timer, NULL);
    uv_close((uv_handle_t *)&self->retry_timer, NULL);
    uv_close((uv_handle_t *)&self->commit_timer, NULL);
    uv_close((uv_handle_t *)&self->cert_timer, NULL);
    uv_signal_t *sigs[] = {&self->sig_term, &self->sig_int, &self->sig_hup, &self->sig_usr1,
                           &self->sig_usr2};
    for (int i = 0; i < 5; i++)
        uv_close((uv_handle_t *)sigs[i], NULL);
}

void hub_server_stop(hub_server_t *self)
{
    if (self->stopping)
        return;
    self->stopping = true;
    /* A running commit finishes first (its after-callback sends the ACKs);
     * envelopes not yet committed were never ACKed, so senders resend them. */
    hub__close_handles(self);
}

int hub_server_run(hub_server_t *self)
{
    int rc = uv_run(self->loop, UV_RUN_DEFAULT);
    (void)rc;
    hub__close_handles(self);
    uv_run(self->loop, UV_RUN_DEFAULT);
    return 0;
}

void hub_server_get_stats(const hub_server_t *self, hub_server_stats_t *out)
{
    *out = self->stats;
}

void hub_server_destroy(hub_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_server_t *self = *self_p;
    if (self->handles_open) {
        hub__close_handles(self);
        uv_run(self->loop, UV_RUN_DEFAULT);
    }
    hub_ops_destroy(&self->ops);
    if (self->router)
        zmq_close(self->router);
    if (self->zap)
        zmq_close(self->zap);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    if (self->audit) {
        /* The loop is over and no commit runs: write what is queued, seal. */
        for (size_t i = 0; i < self->auditq_n; i++) {
            const hub__auditq_t *q = &self->auditq[i];
            hub__audit_put(self->audit, q->event, q->time_us, q->message_id, q->hub_seq,
                           q->sender, q->receiver, q->service, q->reason, NULL);
        }
        int arc = hub_audit_close(&self->audit);
        if (arc != 0)
            HUB_ERROR("audit", "could not seal the audit log", "error=\"%s\"",
                      hub_strerror(arc));
    }
    hub__auditq_free(self->auditq, self->auditq_n);
    for (size_t i = 0; i < self->turn_rcpt_n; i++)
        hub__receipts_free(&self->turn_rcpt[i].r);
    free(self->turn_rcpt);
    /* Members last: queued audit records point at their ids. */
    if (self->members) {
        size_t cursor = 0;
        void *value;
        while (hub_map_next(self->members, &cursor, NULL, &value))
            hub__member_free(value);
        hub_map_destroy(&self->members);
    }
    if (self->subs) {
        size_t cursor = 0;
        void *value;
        while (hub_map_next(self->subs, &cursor, NULL, &value)) {
            free(((hub__sublist_t *)value)->members);
            free(value);
        }
        hub_map_destroy(&self->subs);
    }
    if (self->requests) {
        size_t cursor = 0;
        void *value;
        while (hub_map_next(self->requests, &cursor, NULL, &value))
            free(value);
        hub_map_destroy(&self->requests);
    }
    hub_flows_destroy(&self->flows);
    hub_metrics_destroy(&self->metrics);
    free(self->readbuf);
    for (size_t i = 0; i < self->pending_n; i++)
        free(self->pending[i].bytes);
    free(self->pending);
    free(self->dead_ttl);
    free(self->dead_retry);
    for (size_t i = 0; i < self->dead_policy_n; i++)
        free(self->dead_policy[i].reason);
    free(self->dead_policy);
    for (size_t i = 0; i < self->answered_n; i++)
        free(self->answered[i]);
    free(self->answered);
    free(self->attempt_seqs);
    hub_store_arena_destroy(&self->arena);
    hub_store_close(&self->store);
    hub_keydir_destroy(&self->keys);
    hub_policy_destroy(&self->policy);
    hub_delegations_destroy(&self->delegations);
    hub_keypair_wipe(&self->own_key);
    free(self);
    *self_p = NULL;
}
