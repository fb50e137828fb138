#include "adp.h"
#include "adp_journal.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_log.h"
#include "hub_map.h"
#include "hub_sign.h"
#include "hub_vec.h"
#include "hub_wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <zmq.h>

#define ADP__DEDUP_WINDOW 65536 /* message ids remembered per client */
#define ADP__MAX_BATCH 512      /* envelopes per Batch frame */
/* Envelopes per batch signature (hub_sign.h): one Ed25519 signature and one
 * verification at the hub and at each receiver per this many, against two
 * more path digests (68 bytes) per envelope than at 64; 256 measured best
 * (BENCHMARKS.md, issue 21, helper full21). */
#define ADP__SIGN_BATCH 256
/* Envelopes sent and not yet answered by the hub. The hub delivers an
 * envelope before its group commit and ACKs it after, so this window, not
 * the delivery, is what a slow commit stops: it must hold what the sender
 * posts during about two commits (the one running and the next, which
 * takes what came meanwhile). At 4,096 a sender at 30,000/s stopped
 * whenever one commit's fdatasyncs took more than ~70 ms, which a shared
 * disk does several times a minute (hubbench --sustain's stalls of
 * 50-200 ms, BENCHMARKS.md, "Where the sustained run's stalls come
 * from"); 16,384 rides over ~270 ms at that rate. The hub still bounds
 * what waits for its store (HUB__MAX_PENDING: QUEUE_FULL beyond it), and
 * the outbox holds these envelopes anyway. */
#define ADP__WINDOW 16384
/* The most a signature and its batch proof add to an encoded envelope:
 * field 15 (2 + 64 bytes) and field 16 (3 + two varints + a path of up to
 * HUB_BATCH_MAX_PATH digests of 2 + 32 bytes). */
#define ADP__SIG_ROOM                                                                              \
    (2 + HUB_SIGNATURE_LEN + 3 + 2 * 10 + HUB_BATCH_MAX_PATH * (2 + HUB_DIGEST_LEN))
#define ADP__RESEND_US 30000000u /* resend after this long without any receipt */
/* After UNAVAILABLE (the hub's store did not complete a commit): the same
 * envelopes go again after 200 ms, doubling to 5 s while the hub keeps
 * answering so. */
#define ADP__RETRY_MIN_MS 200u
#define ADP__RETRY_MAX_MS 5000u
/* Failover between the endpoints of a hub's nodes (adp_config_t.hub_endpoint
 * with several): a node that served and went away is left after
 * ADP__LOSS_MS; a node moved to gets ADP__TRY_MS to welcome, doubled after
 * each full round of the list that welcomed nowhere, up to ADP__TRY_MAX_MS;
 * each delay plus up to half of it again at random, so that the members a
 * node lost do not all arrive at the next one in step. */
#define ADP__LOSS_MS 300u
#define ADP__TRY_MS 1000u
#define ADP__TRY_MAX_MS 8000u

/* A handler for a name: an offered service (empty = the default handler)
 * or a durable subscription to PUBLISHER/SERVICE/VERSION. */
typedef struct {
    char name[HUB_MEMBER_ID_MAX + HUB_SERVICE_MAX + 2];
    adp_handler_cb handler;
    void *user;
} adp__route_t;

typedef enum { ADP__PENDING = 0, ADP__ACKED, ADP__NACKED } adp__state_t;

/* An envelope the hub has not ACKed yet. */
typedef struct {
    char id[HUB_UUID_LEN + 1];
    uint8_t *bytes;
    size_t len;
    size_t cap;            /* bytes allocated at `bytes` (room for the signature) */
    uint64_t sent_mono_us; /* 0 = not sent on the current connection */
    adp__state_t state;
    bool waited;           /* a caller waits for the result; it frees the entry */
    uint64_t order;        /* posting order, kept when messages are sent again */
    uint64_t hub_seq;
    int nack_code;
    char *reason;          /* with a NACK: the hub's sentence (malloc'ed), else NULL */
    unsigned queued;       /* references in the client's unsent list */
    bool dropped;          /* out of the outbox, freed when the last reference goes */
    bool needs_sig;        /* encoded without a signature: signed when first sent */
    bool restored;         /* read back from the state directory's outbox at adp_new() */
    bool retry;            /* answered UNAVAILABLE: sent again at retry_at_mono_us */
    uint8_t digest[HUB_DIGEST_LEN];
    uint64_t hash;         /* the outbox index's hash of id (adp__index_put) */
    /* The encoded envelope, allocated with the entry (adp__outmsg_new): one
     * malloc and one free per message instead of two. `bytes` points here
     * unless the signature did not fit (not expected). */
    uint8_t room[];
} adp__outmsg_t;

/* The outbox by message id: open addressing with linear probing over the
 * entries themselves, the key being the id each entry holds (no copy of
 * it, no allocation per message), deletion by backward shift (no
 * tombstones to lengthen the probes of a busy sender), hashed with SipHash
 * under a key drawn per client. */
typedef struct {
    uint64_t hash;
    adp__outmsg_t *m; /* NULL = empty */
} adp__slot_t;

typedef struct {
    adp__slot_t *slots;
    size_t cap; /* a power of two */
    size_t size;
    uint8_t key[crypto_shorthash_KEYBYTES];
} adp__index_t;

/* SipHash-2-4 of a string under a table's key. */
static uint64_t adp__siphash(const uint8_t key[crypto_shorthash_KEYBYTES], const char *text)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const uint8_t *)text, strlen(text), key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

/* Backward-shift deletion in linear probing: whether the entry in slot j,
 * whose home slot is `home`, may move up to the freed slot i (its home is
 * not cyclically within (i, j]). */
static bool adp__may_shift(size_t i, size_t j, size_t home)
{
    return i <= j ? (home <= i || home > j) : (home <= i && home > j);
}

static uint64_t adp__id_hash(const adp__index_t *x, const char *id)
{
    return adp__siphash(x->key, id);
}

static int adp__index_init(adp__index_t *x)
{
    x->cap = 64;
    x->size = 0;
    x->slots = calloc(x->cap, sizeof *x->slots);
    randombytes_buf(x->key, sizeof x->key);
    return x->slots ? 0 : HUB_ENOMEM;
}

static adp__slot_t *adp__index_find(const adp__index_t *x, const char *id, uint64_t hash)
{
    if (!x->slots)
        return NULL;
    size_t mask = x->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        adp__slot_t *s = &x->slots[i];
        if (!s->m)
            return NULL;
        if (s->hash == hash && !strcmp(s->m->id, id))
            return s;
    }
}

static adp__outmsg_t *adp__index_get(const adp__index_t *x, const char *id)
{
    adp__slot_t *s = adp__index_find(x, id, adp__id_hash(x, id));
    return s ? s->m : NULL;
}

static void adp__index_place(adp__slot_t *slots, size_t cap, uint64_t hash, adp__outmsg_t *m)
{
    size_t i = hash & (cap - 1);
    while (slots[i].m)
        i = (i + 1) & (cap - 1);
    slots[i] = (adp__slot_t){hash, m};
}

/* Adds m under m->id, which the index must not hold yet; m->hash is its
 * hash from then on. */
static int adp__index_put(adp__index_t *x, adp__outmsg_t *m)
{
    if ((x->size + 1) * 2 > x->cap) { /* at most half full */
        size_t ncap = x->cap * 2;
        adp__slot_t *nslots = calloc(ncap, sizeof *nslots);
        if (!nslots)
            return HUB_ENOMEM;
        for (size_t i = 0; i < x->cap; i++)
            if (x->slots[i].m)
                adp__index_place(nslots, ncap, x->slots[i].hash, x->slots[i].m);
        free(x->slots);
        x->slots = nslots;
        x->cap = ncap;
    }
    m->hash = adp__id_hash(x, m->id);
    adp__index_place(x->slots, x->cap, m->hash, m);
    x->size++;
    return 0;
}

/* Takes m out of the index (if there): found by the hash it was put with
 * and by address, without hashing or comparing its id again. */
static void adp__index_remove(adp__index_t *x, const adp__outmsg_t *m)
{
    if (!x->slots)
        return;
    size_t mask = x->cap - 1;
    adp__slot_t *s = NULL;
    for (size_t k = m->hash & mask; x->slots[k].m; k = (k + 1) & mask) {
        if (x->slots[k].m == m) {
            s = &x->slots[k];
            break;
        }
    }
    if (!s)
        return;
    size_t i = (size_t)(s - x->slots);
    /* Backward shift: move up each later entry of the run that may sit in
     * the freed slot (its home is not cyclically within (i, j]). */
    for (size_t j = (i + 1) & mask; x->slots[j].m; j = (j + 1) & mask) {
        if (adp__may_shift(i, j, x->slots[j].hash & mask)) {
            x->slots[i] = x->slots[j];
            i = j;
        }
    }
    x->slots[i] = (adp__slot_t){0, NULL};
    x->size--;
}

/* The entries in slot order: *cursor starts at 0; NULL at the end. */
static adp__outmsg_t *adp__index_next(const adp__index_t *x, size_t *cursor)
{
    while (x->slots && *cursor < x->cap) {
        adp__outmsg_t *m = x->slots[(*cursor)++].m;
        if (m)
            return m;
    }
    return NULL;
}

/* The messages handled lately, "SENDER/MESSAGE_ID", the newest
 * ADP__DEDUP_WINDOW of them: a ring of the keys (oldest first, for eviction
 * and for compacting seen.jnl) and an open-addressing index over it whose
 * slots hold the low half of the key's SipHash (under a key drawn per
 * client: senders choose message ids) and the key's ring position. One hash
 * and one probe sequence per look-up, one allocation per handled message. */
#define ADP__SEEN_SLOTS (2u * ADP__DEDUP_WINDOW) /* a power of two: at most half full */
/* Keys shorter than this ("SENDER/MESSAGE_ID" with a sender id of up to 26
 * bytes) are kept in the ring's own slab, at their ring position: no
 * malloc and free per handled message; longer ones are strdup'ed. The slab
 * is calloc'ed: its pages are the kernel's zero pages until written. */
#define ADP__SEEN_INLINE 64u
typedef struct {
    uint32_t hash; /* the low half of the key's hash (its home: hash & mask) */
    uint32_t pos;  /* ring position + 1; 0 = empty */
} adp__seen_slot_t;

typedef struct {
    char **ring;             /* ADP__DEDUP_WINDOW keys (NULL = unused); each points
                                into inl at its position, or to a strdup'ed copy */
    char (*inl)[ADP__SEEN_INLINE]; /* ADP__DEDUP_WINDOW short keys */
    uint32_t *ring_hash;     /* the same keys' hashes */
    uint64_t adds;           /* keys added in all: a look-up's miss still holds
                                while this has not changed */
    size_t next;             /* the ring's next position (its oldest key) */
    adp__seen_slot_t *slots; /* ADP__SEEN_SLOTS */
    uint8_t key[crypto_shorthash_KEYBYTES];
} adp__seenset_t;

static uint32_t adp__seen_hash(const adp__seenset_t *x, const char *key)
{
    return (uint32_t)adp__siphash(x->key, key);
}

static int adp__seenset_init(adp__seenset_t *x)
{
    x->ring = calloc(ADP__DEDUP_WINDOW, sizeof *x->ring);
    x->inl = calloc(ADP__DEDUP_WINDOW, sizeof *x->inl);
    x->ring_hash = calloc(ADP__DEDUP_WINDOW, sizeof *x->ring_hash);
    x->slots = calloc(ADP__SEEN_SLOTS, sizeof *x->slots);
    randombytes_buf(x->key, sizeof x->key);
    return x->ring && x->inl && x->ring_hash && x->slots ? 0 : HUB_ENOMEM;
}

static void adp__seenset_free(adp__seenset_t *x)
{
    for (size_t i = 0; x->ring && x->inl && i < ADP__DEDUP_WINDOW; i++)
        if (x->ring[i] != x->inl[i])
            free(x->ring[i]);
    free(x->ring);
    free(x->inl);
    free(x->ring_hash);
    free(x->slots);
}

/* The slot holding key, or SIZE_MAX. */
static size_t adp__seenset_find(const adp__seenset_t *x, const char *key, uint32_t hash)
{
    const size_t mask = ADP__SEEN_SLOTS - 1;
    if (!x->slots)
        return SIZE_MAX;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const adp__seen_slot_t *s = &x->slots[i];
        if (!s->pos)
            return SIZE_MAX;
        if (s->hash == hash && !strcmp(x->ring[s->pos - 1], key))
            return i;
    }
}

static void adp__seenset_unslot(adp__seenset_t *x, size_t i)
{
    const size_t mask = ADP__SEEN_SLOTS - 1;
    /* Backward shift, as in adp__index_remove. */
    for (size_t j = (i + 1) & mask; x->slots[j].pos; j = (j + 1) & mask) {
        if (adp__may_shift(i, j, x->slots[j].hash & mask)) {
            x->slots[i] = x->slots[j];
            i = j;
        }
    }
    x->slots[i] = (adp__seen_slot_t){0, 0};
}

static bool adp__seenset_has(const adp__seenset_t *x, const char *key, uint32_t hash)
{
    return adp__seenset_find(x, key, hash) != SIZE_MAX;
}

/* Adds key (hash = adp__seen_hash(key)), evicting the oldest when the ring
 * is full; a key already present stays where it is. `absent`: the caller's
 * look-up missed and nothing was added since (x->adds unchanged), so the
 * probe is not repeated. */
static void adp__seenset_add(adp__seenset_t *x, const char *key, uint32_t hash, bool absent)
{
    if (!absent && adp__seenset_has(x, key, hash))
        return;
    size_t pos = x->next;
    size_t len = strlen(key);
    char *copy = len < ADP__SEEN_INLINE ? x->inl[pos] : strdup(key);
    if (!copy)
        return; /* not remembered: a redelivery would reach the handler again */
    const size_t mask = ADP__SEEN_SLOTS - 1;
    if (x->ring[pos]) {
        /* The oldest key's slot: found by its ring position, without
         * reading the key again. */
        for (size_t i = x->ring_hash[pos] & mask; x->slots[i].pos; i = (i + 1) & mask) {
            if (x->slots[i].pos == pos + 1) {
                adp__seenset_unslot(x, i);
                break;
            }
        }
        if (x->ring[pos] != x->inl[pos])
            free(x->ring[pos]);
    }
    if (copy == x->inl[pos])
        memcpy(copy, key, len + 1);
    x->ring[pos] = copy;
    x->adds++;
    x->ring_hash[pos] = hash;
    size_t i = hash & mask;
    while (x->slots[i].pos)
        i = (i + 1) & mask;
    x->slots[i] = (adp__seen_slot_t){hash, (uint32_t)pos + 1};
    x->next = (pos + 1) % ADP__DEDUP_WINDOW;
}

/* A reply a caller is waiting for. A reply is accepted only from the member
 * the request was sent to, or from the member the hub's ACK says it routed
 * the request to (a delegated service). A reply from another member that
 * comes before the ACK is held until the ACK says who may answer. */
typedef struct {
    bool done;
    adp_reply_t reply;
    char receiver[HUB_MEMBER_ID_MAX + 1];  /* the member the request was sent to */
    char routed_to[HUB_MEMBER_ID_MAX + 1]; /* from the ACK: its delegate, or "" */
    bool acked;
    bool held; /* reply holds a reply from another member, waiting for the ACK */
} adp__await_t;

/* Whether `sender` may answer the request `w` waits for. */
static bool adp__may_answer(const adp__await_t *w, const char *sender)
{
    return !strcmp(sender, w->receiver) || (w->routed_to[0] && !strcmp(sender, w->routed_to));
}

struct adp_client {
    void *zctx;
    void *sock;
    void *monitor;
    hub_keypair_t key;
    char hub_public[HUB_Z85_KEY_LEN + 1];
    char endpoint[HUB_ENDPOINT_MAX]; /* the endpoint in use: endpoints[ep_index] */
    char endpoints[HUB_ENDPOINTS_MAX][HUB_ENDPOINT_MAX]; /* the hub's nodes, as configured */
    size_t n_endpoints, ep_index;
    char endpoint_list[512]; /* the list as configured, for messages */
    uint64_t failover_at_us; /* several endpoints: move on at this time unless welcomed
                                (0 = not scheduled) */
    unsigned ep_moves;       /* moves since the last Welcome */
    uint64_t failovers;      /* moves in all (adp_failovers) */
    unsigned socket_gen;     /* sockets opened: names each monitor */
    char software[128];

    adp__route_t *offers;
    size_t n_offers, cap_offers;
    adp__route_t *subs;
    size_t n_subs, cap_subs;
    char hub_id[HUB_MEMBER_ID_MAX + 1]; /* from the Welcome */

    bool handshaken; /* CURVE handshake done on the current connection */
    bool signatures_required; /* the hub said so in its Welcome */
    bool sign_always;         /* adp_set_sign_always */
    bool welcomed;   /* Welcome received since */
    bool refused;
    uint32_t heartbeat_ms;
    uint32_t max_payload;
    uint64_t last_rx_mono_us, last_hb_mono_us, last_hello_mono_us;

    adp__index_t outbox;      /* message id -> adp__outmsg_t */
    size_t n_pending;         /* entries of outbox not answered by the hub yet */
    adp_outcome_cb on_outcome; /* adp_set_outcome_handler */
    void *outcome_user;
    adp__outmsg_t **unsent;   /* entries to put in the next Batch, in order (each
                                 counted in its `queued`) */
    size_t n_unsent, cap_unsent;
    hub_map_t *awaits;        /* request message id -> adp__await_t */
    adp__seenset_t seen;      /* messages handled lately, "sender/message_id" */
    /* Frames from the hub and the envelopes in them are decoded here and
     * given back when handled (marks, so that a handler's own adp_run()
     * nests): no malloc per field of every delivery. */
    hub_arena_t arena;
    hub_map_t *in_doubt;      /* keys begun but not finished before a restart */
    uint64_t *settle;         /* hub seqs to settle */
    size_t n_settle, cap_settle;
    Lth__V1__Reject **rejects; /* deliveries to dead-letter, sent with the next settle */
    size_t n_rejects, cap_rejects;
    char dead_letter_reason[401]; /* adp_dead_letter_reason() in the running handler */
    uint64_t hub_ping_sent_us;    /* adp_ping_hub(): sent_at_us of the heartbeat awaited */
    uint64_t hub_ping_rtt_us;     /* its round trip once echoed; 0 before */
    int depth;                /* nesting of handler calls */

    char last_error[600];
    int last_nack;
    uint64_t next_order;
    uint32_t connect_timeout_ms;
    uint32_t ttl_ms;
    size_t in_window;               /* sent on this connection, not yet answered */
    uint64_t last_receipt_mono_us;
    size_t n_retry;            /* outbox entries marked retry */
    uint64_t retry_at_mono_us; /* when they go again (0 = none waits) */
    uint32_t retry_backoff_ms; /* the next wait; 0 = ADP__RETRY_MIN_MS */
    uint32_t id_seq;           /* adp__new_id: ids made in the millisecond id_ms */
    uint64_t id_ms;            /* the time of the last id, Unix ms */
    size_t resent;             /* envelopes sent again after UNAVAILABLE, in all */

    adp__journal_t *outbox_jnl; /* NULL without a state_dir */
    adp__journal_t *seen_jnl;
    bool outbox_dirty;          /* appended since the last sync */
    bool seen_dirty;
    hub_sigcache_t sigcache;    /* batch signatures of deliveries already verified */
    hub_batch_proof_t *proofs;  /* ADP__SIGN_BATCH of them, for adp__sign_unsigned */
};

static void adp__error(adp_client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void adp__error(adp_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* va_start just above: clang 14's analyzer misreads it (llvm bug 41311). */
    vsnprintf(c->last_error, sizeof c->last_error, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
}

static int adp__push_u64(uint64_t **arr, size_t *n, size_t *cap, uint64_t v)
{
    if (HUB_VEC_RESERVE((*arr), *n, *cap, 64) != 0)
        return HUB_ENOMEM;
    (*arr)[(*n)++] = v;
    return 0;
}

/* A new outbox entry, zeroed, with room for cap bytes of envelope. */
static adp__outmsg_t *adp__outmsg_new(size_t cap)
{
    adp__outmsg_t *m = malloc(sizeof *m + cap);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m); /* the header only: the envelope is written over */
    m->bytes = m->room;
    m->cap = cap;
    return m;
}

static void adp__outmsg_free(adp__outmsg_t *m)
{
    if (m->bytes != m->room)
        free(m->bytes);
    free(m->reason);
    free(m);
}

/* m leaves the outbox for good: freed now, or once the unsent list has let
 * go of it (adp__unsent_release). */
static void adp__outmsg_drop(adp_client_t *c, adp__outmsg_t *m)
{
    adp__index_remove(&c->outbox, m);
    if (m->queued > 0)
        m->dropped = true;
    else
        adp__outmsg_free(m);
}

/* The unsent list lets go of one reference to m. */
static void adp__unsent_release(adp__outmsg_t *m)
{
    if (m->queued > 0)
        m->queued--;
    if (m->dropped && m->queued == 0)
        adp__outmsg_free(m);
}

/* The hub's sentence for a NACKed entry ("" when there is none). */
static const char *adp__reason(const adp__outmsg_t *m)
{
    return m->reason ? m->reason : "";
}

/* ------------------------------------------------------------------------ */
/* Sending frames                                                            */

static int adp__send(adp_client_t *c, hub_frame_t *frame)
{
    if (!c->sock)
        return HUB_ECLOSED;
    /* Packed straight into the message ZeroMQ sends: no buffer of our own
     * and no second copy of a Batch of up to 8 MiB. */
    frame->protocol_version = HUB_PROTOCOL_VERSION;
    size_t len = protobuf_c_message_get_packed_size(&frame->base);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, len) != 0)
        return HUB_ENOMEM;
    protobuf_c_message_pack(&frame->base, zmq_msg_data(&msg));
    if (zmq_msg_send(&msg, c->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return HUB_EAGAIN;
    }
    return 0;
}

static void adp__send_hello(adp_client_t *c)
{
    Lth__V1__Hello hello = LTH__V1__HELLO__INIT;
    hello.protocol_version = HUB_PROTOCOL_VERSION;
    hello.member_id = c->key.member_id;
    hello.software = c->software;
    hello.receipts_in_deliveries = true;
    char **services = calloc(c->n_offers + 1, sizeof *services);
    size_t n = 0;
    for (size_t i = 0; services && i < c->n_offers; i++)
        if (c->offers[i].name[0])
            services[n++] = c->offers[i].name;
    hello.services = services;
    hello.n_services = n;
    char **topics = calloc(c->n_subs + 1, sizeof *topics);
    for (size_t i = 0; topics && i < c->n_subs; i++)
        topics[i] = c->subs[i].name;
    hello.subscriptions = topics;
    hello.n_subscriptions = topics ? c->n_subs : 0;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_HELLO;
    frame.hello = &hello;
    adp__send(c, &frame);
    free(services);
    free(topics);
    c->last_hello_mono_us = hub_monotonic_us();
}

static void adp__send_heartbeat(adp_client_t *c)
{
    Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
    hb.sent_at_us = hub_monotonic_us();
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &hb;
    adp__send(c, &frame);
    c->last_hb_mono_us = hub_monotonic_us();
}

static void adp__free_rejects(adp_client_t *c)
{
    for (size_t i = 0; i < c->n_rejects; i++) {
        free(c->rejects[i]->reason);
        free(c->rejects[i]);
    }
    c->n_rejects = 0;
}

/* A delivery the handler refused for good (ADP_DEAD_LETTER). */
static void adp__push_reject(adp_client_t *c, uint64_t hub_seq, const char *reason)
{
    if (HUB_VEC_RESERVE(c->rejects, c->n_rejects, c->cap_rejects, 16) != 0)
        return; /* not dead-lettered now: it comes again */
    Lth__V1__Reject *r = malloc(sizeof *r);
    char *why = strdup(reason);
    if (!r || !why) {
        free(r);
        free(why);
        return;
    }
    lth__v1__reject__init(r);
    r->hub_seq = hub_seq;
    r->reason = why;
    c->rejects[c->n_rejects++] = r;
}

static void adp__flush_settle(adp_client_t *c)
{
    if ((c->n_settle == 0 && c->n_rejects == 0) || !c->welcomed)
        return;
    if (c->seen_dirty && c->seen_jnl) {
        adp__journal_sync(c->seen_jnl);
        c->seen_dirty = false;
    }
    Lth__V1__Settle settle = LTH__V1__SETTLE__INIT;
    settle.hub_seqs = c->settle;
    settle.n_hub_seqs = c->n_settle;
    settle.rejects = c->rejects;
    settle.n_rejects = c->n_rejects;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_SETTLE;
    frame.settle = &settle;
    if (adp__send(c, &frame) == 0) {
        c->n_settle = 0;
        adp__free_rejects(c);
    }
}

/* Appends a signature (and its batch proof) to an envelope encoded without:
 * the two fields are packed straight into the room the envelope was
 * allocated with (no allocation, no copy, no realloc splitting the block). */
static int adp__append_sig(adp__outmsg_t *m, const uint8_t sig[HUB_SIGNATURE_LEN],
                           const hub_batch_proof_t *proof)
{
    size_t tail = hub_envelope_pack_signature(m->bytes + m->len, m->cap - m->len, sig, proof);
    if (tail == 0) { /* not expected: ADP__SIG_ROOM is the most */
        uint8_t *grown = malloc(m->len ? m->len : 1);
        if (!grown)
            return HUB_ENOMEM;
        memcpy(grown, m->bytes, m->len);
        size_t len = m->len;
        int rc = hub_envelope_append_signature(&grown, &len, sig, proof);
        if (rc != 0) {
            free(grown);
            return rc;
        }
        if (m->bytes != m->room)
            free(m->bytes);
        m->bytes = grown;
        m->cap = len;
        tail = len - m->len;
    }
    m->len += tail;
    m->needs_sig = false;
    return 0;
}

/* Signs the unsigned envelopes among msgs[0..n): up to ADP__SIGN_BATCH of
 * them share one Ed25519 signature over their Merkle root (hub_sign.h), so
 * that a sender, the hub and every receiver pay one signature operation per
 * batch instead of one per envelope; a lone envelope gets a plain one. */
static int adp__sign_unsigned(adp_client_t *c, adp__outmsg_t **msgs, size_t n)
{
    if (c->welcomed && !c->signatures_required && !c->sign_always) {
        /* The hub does not check signatures and nobody asked for them. */
        for (size_t i = 0; i < n; i++)
            msgs[i]->needs_sig = false;
        return 0;
    }
    uint8_t digests[ADP__SIGN_BATCH][HUB_DIGEST_LEN];
    if (!c->proofs && !(c->proofs = malloc(ADP__SIGN_BATCH * sizeof *c->proofs)))
        return HUB_ENOMEM;
    hub_batch_proof_t *proofs = c->proofs;
    adp__outmsg_t *chunk[ADP__SIGN_BATCH];
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        for (; i < n && k < ADP__SIGN_BATCH; i++) {
            if (!msgs[i]->needs_sig)
                continue;
            chunk[k] = msgs[i];
            memcpy(digests[k++], msgs[i]->digest, HUB_DIGEST_LEN);
        }
        if (k == 0)
            break;
        uint8_t sig[HUB_SIGNATURE_LEN];
        if (k == 1) {
            if (crypto_sign_detached(sig, NULL, digests[0], HUB_DIGEST_LEN,
                                     c->key.sign_secret) != 0)
                return HUB_ECRYPTO;
        } else if (hub_batch_sign((const uint8_t(*)[HUB_DIGEST_LEN])digests, k,
                                  c->key.sign_secret, sig, proofs) != 0) {
            return HUB_ECRYPTO;
        }
        for (size_t j = 0; j < k; j++) {
            int rc = adp__append_sig(chunk[j], sig, k == 1 ? NULL : &proofs[j]);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* Sends unsent outbox entries in Batch frames. */
static void adp__flush_outbox(adp_client_t *c)
{
    if (c->outbox_dirty && c->outbox_jnl) {
        /* One fdatasync for everything posted since the last batch. */
        adp__journal_sync(c->outbox_jnl);
        c->outbox_dirty = false;
    }
    if (!c->welcomed || c->n_unsent == 0)
        return;
    size_t done = 0;
    /* Flow control: at most ADP__WINDOW envelopes wait for the hub's answer,
     * so that a sender faster than the hub's store waits here instead of
     * piling frames into the hub's socket. */
    while (done < c->n_unsent && c->in_window < ADP__WINDOW) {
        ProtobufCBinaryData items[ADP__MAX_BATCH];
        adp__outmsg_t *sent[ADP__MAX_BATCH];
        size_t n = 0, bytes = 0;
        size_t i = done;
        for (; i < c->n_unsent && n < ADP__MAX_BATCH && c->in_window + n < ADP__WINDOW; i++) {
            adp__outmsg_t *m = c->unsent[i];
            if (m->dropped || m->state != ADP__PENDING)
                continue;
            if (n > 0 && bytes + m->len > (8u << 20))
                break;
            items[n].data = m->bytes;
            items[n].len = m->len;
            sent[n++] = m;
            bytes += m->len;
        }
        if (n > 0 && adp__sign_unsigned(c, sent, n) != 0)
            break; /* out of memory: keep them for the next pump */
        for (size_t k = 0; k < n; k++) {
            items[k].data = sent[k]->bytes;
            items[k].len = sent[k]->len;
        }
        if (n > 0) {
            Lth__V1__Batch batch = LTH__V1__BATCH__INIT;
            batch.envelopes = items;
            batch.n_envelopes = n;
            hub_frame_t frame = LTH__V1__FRAME__INIT;
            frame.body_case = LTH__V1__FRAME__BODY_BATCH;
            frame.batch = &batch;
            if (adp__send(c, &frame) != 0)
                break; /* not connected: keep them for later */
            uint64_t now = hub_monotonic_us();
            for (size_t k = 0; k < n; k++) {
                if (!sent[k]->sent_mono_us)
                    c->in_window++;
                sent[k]->sent_mono_us = now;
            }
        }
        done = i;
    }
    for (size_t k = 0; k < done; k++)
        adp__unsent_release(c->unsent[k]);
    memmove(c->unsent, c->unsent + done, (c->n_unsent - done) * sizeof *c->unsent);
    c->n_unsent -= done;
}

static int adp__queue_unsent(adp_client_t *c, adp__outmsg_t *m)
{
    if (HUB_VEC_RESERVE(c->unsent, c->n_unsent, c->cap_unsent, 64) != 0)
        return HUB_ENOMEM;
    m->queued++;
    c->unsent[c->n_unsent++] = m;
    return 0;
}

/* The unsent list is emptied. */
static void adp__unsent_clear(adp_client_t *c)
{
    for (size_t k = 0; k < c->n_unsent; k++)
        adp__unsent_release(c->unsent[k]);
    c->n_unsent = 0;
}

static int adp__by_order(const void *a, const void *b)
{
    const adp__outmsg_t *x = *(adp__outmsg_t *const *)a, *y = *(adp__outmsg_t *const *)b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* After a (re)connect every unacknowledged message goes out again: the hub
 * answers a durable duplicate with its original ACK. */
/* The outbox's pending messages in posting order (a malloc'ed array of n;
 * NULL, n = 0, when out of memory). */
static adp__outmsg_t **adp__pending_in_order(const adp_client_t *c, size_t *n)
{
    *n = 0;
    size_t cursor = 0;
    adp__outmsg_t **pending = malloc((c->outbox.size + 1) * sizeof *pending);
    adp__outmsg_t *m;
    while (pending && (m = adp__index_next(&c->outbox, &cursor)) != NULL)
        if (m->state == ADP__PENDING)
            pending[(*n)++] = m;
    if (pending)
        qsort(pending, *n, sizeof *pending, adp__by_order);
    return pending;
}

static void adp__requeue_all(adp_client_t *c)
{
    adp__unsent_clear(c);
    /* Posting order is kept, so that the hub accepts each sender's
     * messages in the order they were posted. */
    size_t n = 0;
    adp__outmsg_t **pending = adp__pending_in_order(c, &n);
    for (size_t i = 0; i < n; i++) {
        pending[i]->sent_mono_us = 0;
        pending[i]->retry = false;
        adp__queue_unsent(c, pending[i]);
    }
    c->in_window = 0;
    c->n_retry = 0;
    c->retry_at_mono_us = 0;
    free(pending);
}

/* The hub answered UNAVAILABLE: its store did not complete the commit, the
 * envelope is not accepted, and the same envelope may be sent again (a
 * commit that completed after all gets its original ACK). It stays pending
 * and goes again after the retry delay, in posting order with the others
 * waiting so (adp__retry_due). */
static void adp__retry_later(adp_client_t *c, adp__outmsg_t *m, const char *reason)
{
    if (m->sent_mono_us && c->in_window > 0)
        c->in_window--;
    m->sent_mono_us = 0;
    if (m->retry)
        return;
    m->retry = true;
    c->n_retry++;
    if (!c->retry_at_mono_us) {
        uint32_t wait = c->retry_backoff_ms ? c->retry_backoff_ms : ADP__RETRY_MIN_MS;
        c->retry_at_mono_us = hub_monotonic_us() + (uint64_t)wait * 1000u;
        c->retry_backoff_ms = wait * 2 > ADP__RETRY_MAX_MS ? ADP__RETRY_MAX_MS : wait * 2;
        HUB_WARN("adp", "the hub did not complete a commit; sending the same messages again",
                 "message_id=%s retry_ms=%u reason=\"%s\"", m->id, wait, reason);
    }
}

static void adp__retry_due(adp_client_t *c)
{
    if (!c->n_retry || !c->welcomed || hub_monotonic_us() < c->retry_at_mono_us)
        return;
    size_t n = 0;
    adp__outmsg_t **pending = adp__pending_in_order(c, &n);
    if (!pending)
        return; /* out of memory: at the next pump */
    for (size_t i = 0; i < n; i++) {
        if (!pending[i]->retry)
            continue;
        pending[i]->retry = false;
        c->resent++;
        adp__queue_unsent(c, pending[i]);
    }
    free(pending);
    c->n_retry = 0;
    c->retry_at_mono_us = 0;
}

/* ------------------------------------------------------------------------ */
/* Building envelopes                                                        */

/* A new message id: a time-ordered UUID (version 7, RFC 9562): 48 bits of
 * Unix milliseconds, then a 12-bit count of the ids made in that
 * millisecond (so that one client's ids only grow), then 62 random bits.
 * The hub keeps every accepted id for its de-duplication window in an
 * index keyed by sender and id: ids that grow land on the index's last
 * pages, where random (version 4) ids rewrote a page of it per message in
 * each commit. */
static void adp__new_id(adp_client_t *c, char out[HUB_UUID_LEN + 1])
{
    hub_uuid_new(out); /* the random bits, the variant and the form */
    uint64_t ms = hub_now_us() / 1000u;
    if (ms > c->id_ms) {
        c->id_ms = ms;
        c->id_seq = 0;
    } else if (++c->id_seq > 0xfffu) { /* 4096 in a millisecond: borrow the next */
        c->id_ms++;
        c->id_seq = 0;
    }
    static const char hex[] = "0123456789abcdef";
    static const int digit_at[12] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12}; /* tttttttt-tttt */
    uint64_t t = c->id_ms & 0xffffffffffffull;
    for (int i = 11; i >= 0; i--, t >>= 4)
        out[digit_at[i]] = hex[t & 0xf];
    out[14] = '7';
    out[15] = hex[(c->id_seq >> 8) & 0xf];
    out[16] = hex[(c->id_seq >> 4) & 0xf];
    out[17] = hex[c->id_seq & 0xf];
}

/* Posts an envelope. message_id and created_at_us are the application's
 * own (adp_post_event_as) or NULL and 0 (a fresh UUID, now). */
static int adp__post_as(adp_client_t *c, const char *message_id, uint64_t created_at_us,
                        const char *receiver, const char *service, const char *content_type,
                        const void *payload, size_t payload_len, adp_kind_t kind,
                        const char *correlation_id, int flags, bool waited,
                        char id_out[HUB_UUID_LEN + 1])
{
    if (!receiver || !service || (!payload && payload_len)) {
        adp__error(c, "receiver, service and payload are required");
        return HUB_EINVAL;
    }
    if (c->max_payload && payload_len > c->max_payload) {
        adp__error(c, "payload of %zu bytes exceeds the hub's limit of %u bytes", payload_len,
                   c->max_payload);
        return HUB_EINVAL;
    }
    if (message_id && !hub_uuid_valid(message_id)) {
        adp__error(c, "message id '%.40s' is not a UUID in lower-case text form, e.g. "
                      "6f1c2a4e-8b3d-4f5a-9c7e-0d1e2f3a4b5c", message_id);
        return HUB_EINVAL;
    }
    if (message_id && adp__index_get(&c->outbox, message_id)) {
        adp__error(c, "message %s is already in the outbox; its outcome will be reported",
                   message_id);
        return HUB_EEXIST;
    }
    char id[HUB_UUID_LEN + 1];
    if (message_id)
        memcpy(id, message_id, HUB_UUID_LEN + 1);
    else
        adp__new_id(c, id);
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    env.message_id = id;
    env.correlation_id = (char *)(correlation_id ? correlation_id : "");
    env.sender = c->key.member_id;
    env.receiver = (char *)receiver;
    env.service = (char *)service;
    env.created_at_us = created_at_us ? created_at_us : hub_now_us();
    env.content_type = (char *)(content_type ? content_type : "application/octet-stream");
    env.payload.data = (uint8_t *)payload;
    env.payload.len = payload_len;
    env.kind = (Lth__V1__Kind)kind;
    env.delivery = (flags & ADP_ONLINE_ONLY) ? LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY
                                             : LTH__V1__DELIVERY__DELIVERY_QUEUED;
    env.ttl_ms = c->ttl_ms;
    /* Envelopes are signed (when the hub requires it, or when asked), the
     * hub and the receiver verify them: the envelopes posted between two
     * sends share one signature over their Merkle root (adp__sign_unsigned),
     * so only the digest is taken here. */
    uint8_t digest[HUB_DIGEST_LEN];
    if (c->key.has_sign && hub_envelope_digest(&env, digest) != 0) {
        adp__error(c, "computing the envelope's digest failed");
        return HUB_EINVAL;
    }
    size_t len = lth__v1__envelope__get_packed_size(&env);
    /* With room for the signature and its batch proof, packed after the
     * envelope when it is sent (adp__append_sig). */
    adp__outmsg_t *m = adp__outmsg_new(len + ADP__SIG_ROOM);
    if (!m)
        return HUB_ENOMEM;
    memcpy(m->id, id, sizeof m->id);
    if (c->key.has_sign) {
        memcpy(m->digest, digest, sizeof m->digest);
        m->needs_sig = true;
    }
    m->len = lth__v1__envelope__pack(&env, m->bytes);
    m->waited = waited;
    m->order = c->next_order++;
    if (c->outbox_jnl) {
        int jrc = adp__journal_append(c->outbox_jnl, 'P', m->bytes, m->len);
        if (jrc != 0) {
            adp__error(c, "cannot keep the message in the state directory's outbox (%s)",
                       hub_strerror(jrc));
            adp__outmsg_free(m);
            return jrc;
        }
        c->outbox_dirty = true;
    }
    if (adp__index_put(&c->outbox, m) != 0) {
        adp__outmsg_free(m);
        return HUB_ENOMEM;
    }
    if (adp__queue_unsent(c, m) != 0) {
        adp__outmsg_drop(c, m);
        return HUB_ENOMEM;
    }
    c->n_pending++;
    if (id_out)
        memcpy(id_out, m->id, HUB_UUID_LEN + 1);
    return 0;
}

static int adp__post(adp_client_t *c, const char *receiver, const char *service,
                     const char *content_type, const void *payload, size_t payload_len,
                     adp_kind_t kind, const char *correlation_id, int flags, bool waited,
                     char id_out[HUB_UUID_LEN + 1])
{
    return adp__post_as(c, NULL, 0, receiver, service, content_type, payload, payload_len, kind,
                        correlation_id, flags, waited, id_out);
}

/* ------------------------------------------------------------------------ */
/* Receiving                                                                 */

/* "SENDER/MESSAGE_ID" into key (size bytes), cut short as snprintf would. */
static void adp__seen_key(char *key, size_t size, const char *sender, const char *id)
{
    size_t ns = strlen(sender), ni = strlen(id);
    if (ns + 1 + ni >= size) {
        snprintf(key, size, "%s/%s", sender, id);
        return;
    }
    memcpy(key, sender, ns);
    key[ns] = '/';
    memcpy(key + ns + 1, id, ni + 1);
}

/* Remembers a handled message in memory. */
static void adp__seen_add(adp_client_t *c, const char *key)
{
    adp__seenset_add(&c->seen, key, adp__seen_hash(&c->seen, key), false);
}

static void adp__seen_emit(adp__journal_t *j, void *user)
{
    adp_client_t *c = user;
    for (size_t k = 0; k < ADP__DEDUP_WINDOW; k++) {
        const char *key = c->seen.ring[(c->seen.next + k) % ADP__DEDUP_WINDOW];
        if (key)
            adp__journal_append(j, 'S', key, strlen(key));
    }
}

/* Remembers a handled message (in memory, and in seen.jnl when kept); hash
 * is adp__seen_hash(key); adds is c->seen.adds when the caller's look-up of
 * key missed (a handler's own adp_run() may have added it since). */
static void adp__seen_record(adp_client_t *c, const char *key, uint32_t hash, uint64_t adds)
{
    adp__seenset_add(&c->seen, key, hash, c->seen.adds == adds);
    if (!c->seen_jnl)
        return;
    if (adp__journal_append(c->seen_jnl, 'S', key, strlen(key)) != 0)
        HUB_ERROR("adp", "cannot record a handled message in the state directory", NULL);
    c->seen_dirty = true;
    if (adp__journal_records(c->seen_jnl) > 2 * ADP__DEDUP_WINDOW)
        adp__journal_compact(c->seen_jnl, adp__seen_emit, c);
}

static const adp__route_t *adp__find_offer(const adp_client_t *c, const char *service)
{
    const adp__route_t *fallback = NULL;
    for (size_t i = 0; i < c->n_offers; i++) {
        if (!strcmp(c->offers[i].name, service))
            return &c->offers[i];
        if (!c->offers[i].name[0])
            fallback = &c->offers[i];
    }
    return fallback;
}

static void adp__handle_delivery(adp_client_t *c, const Lth__V1__DeliveredEnvelope *item)
{
    hub_envelope_t *env = NULL;
    hub_arena_mark_t mark = hub_arena_mark(&c->arena);
    /* In place where it has the plain shape (no copy of the payload). */
    if (hub_envelope_read_in(&c->arena, item->envelope.data, item->envelope.len, &env, NULL) != 0) {
        HUB_WARN("adp", "undecodable delivery dropped", "hub_seq=%llu",
                 (unsigned long long)item->hub_seq);
        goto settle;
    }
    /* Non-repudiation end to end: check the sender's signature again, with
     * the key the hub bound to the sender's member id. */
    if (env->signature.len > 0 && item->sender_sign_key.len == HUB_SIGN_PUBLIC_LEN) {
        if (hub_envelope_verify_cached(env, item->sender_sign_key.data, &c->sigcache) != 0) {
            HUB_ERROR("adp", "delivery with a bad signature refused; not settled",
                      "message_id=%s sender=%s", env->message_id, env->sender);
            hub_arena_release(&c->arena, mark);
            return;
        }
    } else if (c->signatures_required) {
        HUB_ERROR("adp", "unsigned delivery refused; not settled", "message_id=%s sender=%s",
                  env->message_id, env->sender);
        hub_arena_release(&c->arena, mark);
        return;
    }
    char seen_key[HUB_MEMBER_ID_MAX + HUB_UUID_LEN + 2];
    adp__seen_key(seen_key, sizeof seen_key, env->sender, env->message_id);
    uint32_t seen_hash = adp__seen_hash(&c->seen, seen_key);
    if (adp__seenset_has(&c->seen, seen_key, seen_hash)) {
        HUB_DEBUG("adp", "duplicate delivery dropped", "message_id=%s", env->message_id);
        goto settle;
    }
    const uint64_t seen_adds = c->seen.adds; /* the look-up missed as of now */
    bool in_doubt = hub_map_size(c->in_doubt) > 0 && hub_map_remove(c->in_doubt, seen_key);
    if (c->seen_jnl && env->kind != LTH__V1__KIND__KIND_REPLY)
        adp__journal_append(c->seen_jnl, 'B', seen_key, strlen(seen_key));
    adp_message_t msg = {
        .message_id = env->message_id,
        .correlation_id = env->correlation_id,
        .sender = env->sender,
        .receiver = env->receiver,
        .service = env->service,
        .content_type = env->content_type,
        .payload = env->payload.data,
        .payload_len = env->payload.len,
        .kind = (adp_kind_t)env->kind,
        .created_at_us = env->created_at_us,
        .hub_seq = item->hub_seq,
        .attempt = item->attempt,
        .in_doubt = in_doubt,
        .ttl_ms = env->ttl_ms,
        .sender_sign_key =
            item->sender_sign_key.len == HUB_SIGN_PUBLIC_LEN ? item->sender_sign_key.data : NULL,
    };
    int flags = env->delivery == LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY ? ADP_ONLINE_ONLY : 0;
    if (msg.kind == ADP_REPLY) {
        adp__await_t *w = hub_map_get(c->awaits, env->correlation_id);
        adp__seen_record(c, seen_key, seen_hash, seen_adds);
        if (w && !w->done) {
            bool may = adp__may_answer(w, env->sender);
            if (!may && (w->acked || w->held)) {
                HUB_WARN("adp", "reply from a member the request was not sent to: dropped",
                         "message_id=%s correlation_id=%s sender=%s receiver=%s",
                         env->message_id, env->correlation_id, env->sender, w->receiver);
                goto settle;
            }
            if (w->held) { /* the real receiver's reply replaces a held one */
                free(w->reply.payload);
                memset(&w->reply, 0, sizeof w->reply);
            }
            /* Accepted now, or held until the ACK names the delegate. */
            w->done = may;
            w->held = !may;
            snprintf(w->reply.content_type, sizeof w->reply.content_type, "%s",
                     env->content_type);
            snprintf(w->reply.sender, sizeof w->reply.sender, "%s", env->sender);
            w->reply.payload = malloc(env->payload.len ? env->payload.len : 1);
            if (w->reply.payload) {
                memcpy(w->reply.payload, env->payload.data, env->payload.len);
                w->reply.payload_len = env->payload.len;
            }
        }
        goto settle;
    }
    adp_reply_t reply;
    memset(&reply, 0, sizeof reply);
    int rc = HUB_ENOTFOUND;
    if (!strcmp(env->service, ADP_PING_SERVICE)) {
        /* Built in: every member answers pings with the payload it got. */
        reply.payload = malloc(env->payload.len ? env->payload.len : 1);
        if (reply.payload) {
            memcpy(reply.payload, env->payload.data, env->payload.len);
            reply.payload_len = env->payload.len;
            snprintf(reply.content_type, sizeof reply.content_type, "%s", env->content_type);
            rc = 0;
        }
    } else if (c->hub_id[0] && !strcmp(env->receiver, c->hub_id)) {
        /* A publication we subscribed to. */
        char topic[HUB_MEMBER_ID_MAX + HUB_SERVICE_MAX + 2];
        snprintf(topic, sizeof topic, "%s/%s", env->sender, env->service);
        const adp__route_t *sub = NULL;
        for (size_t i = 0; i < c->n_subs && !sub; i++)
            if (!strcmp(c->subs[i].name, topic))
                sub = &c->subs[i];
        if (!sub) {
            HUB_WARN("adp", "publication without a subscription handler; not settled",
                     "topic=%s", topic);
            hub_arena_release(&c->arena, mark);
            return;
        }
        /* Publications get no reply; the handler's verdict counts. */
        c->dead_letter_reason[0] = '\0';
        c->depth++;
        int verdict = sub->handler(c, &msg, &reply, sub->user);
        c->depth--;
        rc = verdict == ADP_LATER || verdict == ADP_DEAD_LETTER ? verdict : HUB_ENOTFOUND;
    } else {
        const adp__route_t *offer = adp__find_offer(c, env->service);
        if (!offer) {
            /* Not settled: the hub delivers it again later (and dead-letters
             * it once the retry budget is spent), so nothing is lost while a
             * handler is missing. */
            HUB_WARN("adp", "no handler for the service of a delivered message; not settled",
                     "service=%s sender=%s", env->service, env->sender);
            hub_arena_release(&c->arena, mark);
            return;
        }
        c->dead_letter_reason[0] = '\0';
        c->depth++;
        rc = offer->handler(c, &msg, &reply, offer->user);
        c->depth--;
    }
    if (rc == ADP_LATER || rc == ADP_DEAD_LETTER) {
        /* Not handled: neither remembered nor settled, so that the hub
         * delivers it again (LATER) or dead-letters it (DEAD_LETTER). A
         * redelivery of an online-only message is not possible: it is lost,
         * as the handler's verdict says its sender must try again. */
        free(reply.payload);
        if (c->seen_jnl && env->kind != LTH__V1__KIND__KIND_REPLY)
            adp__journal_append(c->seen_jnl, 'U', seen_key, strlen(seen_key));
        if (rc == ADP_DEAD_LETTER && item->hub_seq) {
            adp__push_reject(c, item->hub_seq,
                             c->dead_letter_reason[0] ? c->dead_letter_reason
                                                      : "refused by the receiver's handler");
            HUB_WARN("adp", "handler refused a message for good; asking the hub to dead-letter it",
                     "hub_seq=%llu service=%s sender=%s", (unsigned long long)item->hub_seq,
                     env->service, env->sender);
        } else {
            HUB_INFO("adp", "handler asked for a later redelivery", "hub_seq=%llu service=%s",
                     (unsigned long long)item->hub_seq, env->service);
        }
        hub_arena_release(&c->arena, mark);
        return;
    }
    if (msg.kind == ADP_REQUEST && rc == 0)
        adp__post(c, env->sender, env->service,
                  reply.content_type[0] ? reply.content_type : "application/octet-stream",
                  reply.payload, reply.payload_len, ADP_REPLY, env->message_id, flags, false,
                  NULL);
    free(reply.payload);
    /* Handled: remember it before settling, so that a redelivery (after a
     * lost settle, or a restart) does not reach the handler again. */
    adp__seen_record(c, seen_key, seen_hash, seen_adds);
settle:
    if (item->hub_seq)
        adp__push_u64(&c->settle, &c->n_settle, &c->cap_settle, item->hub_seq);
    hub_arena_release(&c->arena, mark);
}

static void adp__outbox_emit(adp__journal_t *j, void *user);

/* The hub has answered for message id: the outbox need not keep it. */
static void adp__outbox_done(adp_client_t *c, const char *id)
{
    if (!c->outbox_jnl)
        return;
    adp__journal_append(c->outbox_jnl, 'A', id, strlen(id));
    c->outbox_dirty = true;
    if (adp__journal_records(c->outbox_jnl) > 2 * c->outbox.size + 10000)
        adp__journal_compact(c->outbox_jnl, adp__outbox_emit, c);
}

/* m has just been answered: it no longer counts as pending, and the
 * application's outcome handler hears of it (whether or not a caller waits
 * for it, timed out, or the message came back from the state directory). */
static void adp__report(adp_client_t *c, const adp__outmsg_t *m)
{
    if (c->n_pending > 0)
        c->n_pending--;
    if (!c->on_outcome)
        return;
    adp_outcome_t o = {
        .message_id = m->id,
        .acked = m->state == ADP__ACKED,
        .hub_seq = m->hub_seq,
        .nack_code = m->state == ADP__NACKED ? m->nack_code : 0,
        .reason = m->state == ADP__NACKED ? adp__reason(m) : "",
        .restored = m->restored,
    };
    c->depth++;
    c->on_outcome(c, &o, c->outcome_user);
    c->depth--;
}

static void adp__handle_receipts(adp_client_t *c, const Lth__V1__Receipts *r)
{
    for (size_t i = 0; i < r->n_acks; i++) {
        adp__outmsg_t *m = adp__index_get(&c->outbox, r->acks[i]->message_id);
        if (!m || m->state != ADP__PENDING)
            continue;
        if (m->sent_mono_us && c->in_window > 0)
            c->in_window--;
        /* Answered before it is journalled as such: adp__outbox_done() may
         * compact the journal, which rewrites every PENDING message, and
         * this one must not be among them (it would be sent again after a
         * restart, a duplicate once the hub's de-duplication window ends). */
        m->state = ADP__ACKED;
        m->hub_seq = r->acks[i]->hub_seq;
        if (m->retry) {
            m->retry = false; /* an earlier send's ACK came after all */
            if (c->n_retry > 0)
                c->n_retry--;
        }
        c->retry_backoff_ms = 0;
        adp__await_t *w = hub_map_size(c->awaits) ? hub_map_get(c->awaits, m->id) : NULL;
        if (w) {
            /* Who may answer: the receiver, or the delegate the hub names. */
            w->acked = true;
            snprintf(w->routed_to, sizeof w->routed_to, "%s",
                     r->acks[i]->routed_to ? r->acks[i]->routed_to : "");
            if (w->held && !w->done) {
                w->held = false;
                if (adp__may_answer(w, w->reply.sender)) {
                    w->done = true;
                } else {
                    HUB_WARN("adp", "reply from a member the request was not sent to: dropped",
                             "correlation_id=%s sender=%s receiver=%s", m->id, w->reply.sender,
                             w->receiver);
                    free(w->reply.payload);
                    memset(&w->reply, 0, sizeof w->reply);
                }
            }
        }
        adp__outbox_done(c, m->id);
        adp__report(c, m);
        if (!m->waited)
            adp__outmsg_drop(c, m);
    }
    for (size_t i = 0; i < r->n_nacks; i++) {
        const Lth__V1__Nack *n = r->nacks[i];
        adp__outmsg_t *m = n->message_id[0] ? adp__index_get(&c->outbox, n->message_id) : NULL;
        adp__error(c, "the hub refused the message (%s): %s", hub_nack_code_name(n->code),
                   n->reason);
        c->last_nack = n->code;
        if (!m) {
            HUB_WARN("adp", "hub refused an envelope", "code=%s reason=\"%s\"",
                     hub_nack_code_name(n->code), n->reason);
            continue;
        }
        if (m->state != ADP__PENDING)
            continue;
        if (n->code == LTH__V1__NACK_CODE__NACK_UNAVAILABLE) {
            adp__error(c,
                       "the hub did not complete the commit (UNAVAILABLE): %s; sending the "
                       "same message again",
                       n->reason);
            adp__retry_later(c, m, n->reason);
            continue;
        }
        if (m->sent_mono_us && c->in_window > 0)
            c->in_window--;
        m->state = ADP__NACKED; /* before adp__outbox_done(), as for an ACK */
        m->nack_code = n->code;
        free(m->reason);
        m->reason = strdup(n->reason); /* NULL when out of memory: "" then */
        adp__outbox_done(c, m->id);
        adp__report(c, m);
        if (!m->waited) {
            HUB_WARN("adp", "hub refused an envelope", "message_id=%s code=%s reason=\"%s\"",
                     m->id, hub_nack_code_name(n->code), n->reason);
            adp__outmsg_drop(c, m);
        }
    }
}

static void adp__handle_frame(adp_client_t *c, const void *data, size_t len)
{
    hub_frame_t *frame = NULL;
    hub_arena_mark_t mark = hub_arena_mark(&c->arena);
    /* Deliveries in place (the ZeroMQ message outlives the frame). */
    if (hub_frame_view(&c->arena, data, len, &frame) != 0) {
        hub_arena_release(&c->arena, mark);
        HUB_WARN("adp", "undecodable frame from the hub dropped", "bytes=%zu", len);
        return;
    }
    c->last_rx_mono_us = hub_monotonic_us();
    switch (frame->body_case) {
    case LTH__V1__FRAME__BODY_WELCOME: {
        bool first = !c->welcomed;
        c->welcomed = true;
        c->ep_moves = 0;
        c->failover_at_us = 0;
        c->heartbeat_ms = frame->welcome->heartbeat_ms ? frame->welcome->heartbeat_ms : 1000;
        c->max_payload = frame->welcome->max_payload_bytes;
        c->signatures_required = frame->welcome->signatures_required;
        snprintf(c->hub_id, sizeof c->hub_id, "%s", frame->welcome->hub_id);
        if (first)
            HUB_INFO("adp", "connected to the hub", "member=%s hub_version=%s endpoint=%s",
                     c->key.member_id, frame->welcome->hub_version, c->endpoint);
        c->last_receipt_mono_us = hub_monotonic_us();
        adp__requeue_all(c);
        adp__flush_outbox(c);
        break;
    }
    case LTH__V1__FRAME__BODY_RECEIPTS:
        c->last_receipt_mono_us = hub_monotonic_us();
        adp__handle_receipts(c, frame->receipts);
        adp__flush_outbox(c); /* the window has room again */
        break;
    case LTH__V1__FRAME__BODY_DELIVERIES:
        if (frame->deliveries->receipts) { /* ACKs riding along (Hello.receipts_in_deliveries) */
            c->last_receipt_mono_us = hub_monotonic_us();
            adp__handle_receipts(c, frame->deliveries->receipts);
        }
        for (size_t i = 0; i < frame->deliveries->n_items; i++)
            adp__handle_delivery(c, frame->deliveries->items[i]);
        adp__flush_settle(c);
        adp__flush_outbox(c);
        break;
    case LTH__V1__FRAME__BODY_HEARTBEAT:
        if (frame->heartbeat->echo && c->hub_ping_sent_us &&
            frame->heartbeat->sent_at_us == c->hub_ping_sent_us) {
            uint64_t rtt = hub_monotonic_us() - c->hub_ping_sent_us;
            c->hub_ping_rtt_us = rtt ? rtt : 1;
        }
        break;
    case LTH__V1__FRAME__BODY_ERROR: {
        const Lth__V1__Nack *n = frame->error;
        c->last_nack = n->code;
        adp__error(c, "the hub refused a frame (%s): %s", hub_nack_code_name(n->code),
                   n->reason);
        if (n->code == LTH__V1__NACK_CODE__NACK_HELLO_REQUIRED) {
            c->welcomed = false;
            if (hub_monotonic_us() - c->last_hello_mono_us > 100000u)
                adp__send_hello(c);
        } else {
            HUB_WARN("adp", "hub refused a frame", "code=%s reason=\"%s\"",
                     hub_nack_code_name(n->code), n->reason);
        }
        break;
    }
    default:
        break;
    }
    hub_arena_release(&c->arena, mark); /* the frame, and all it held */
}

static void adp__handle_monitor(adp_client_t *c)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, c->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
        }
        zmq_msg_close(&ev);
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, c->monitor, 0);
        zmq_msg_close(&addr);
        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            c->handshaken = true;
            c->refused = false;
            adp__send_hello(c);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            c->refused = true;
            c->welcomed = false;
            adp__error(c,
                       "the hub did not accept this member's key (%s, ZAP status %u); ask the hub "
                       "operator to add this member's .pub file to the hub's key directory",
                       c->key.member_id, value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            c->welcomed = false;
            adp__error(c, "the CURVE handshake with the hub failed; check that hub_key_file is "
                          "the hub's current public key");
            break;
        case ZMQ_EVENT_DISCONNECTED:
            c->handshaken = false;
            c->welcomed = false;
            break;
        default:
            break;
        }
    }
}

/* Closes the connection's socket and its monitor (messages queued in them
 * are dropped: the outbox sends them again after the next Welcome). */
static void adp__close_socket(adp_client_t *c)
{
    if (c->sock) {
        zmq_socket_monitor(c->sock, NULL, 0);
        zmq_close(c->sock);
        c->sock = NULL;
    }
    if (c->monitor) {
        zmq_close(c->monitor);
        c->monitor = NULL;
    }
    c->handshaken = false;
    c->welcomed = false;
}

/* Opens a DEALER socket with its monitor and connects it to c->endpoint.
 * A socket per endpoint, not one socket moved between endpoints: events
 * and queued frames of a connection left behind then never reach the new
 * one. */
static int adp__open_socket(adp_client_t *c, char *err, size_t err_size)
{
    c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    uint8_t secret[32], pub[32], server[32];
    /* Reconnecting to one endpoint is libzmq's: the first retry after ivl,
     * each further one after twice the last interval, capped at ivl_max
     * (capped exponential backoff). Both are drawn at random per client, so
     * that the adapters a restarted hub lost do not all come back in step. */
    int linger = 0, one = 1;
    int ivl = 200 + (int)randombytes_uniform(200), ivl_max = 2000 + (int)randombytes_uniform(1000);
    int64_t max_msg = 64ll << 20;
    bool ok = c->sock && zmq_z85_decode(secret, c->key.curve_secret) &&
              zmq_z85_decode(pub, c->key.curve_public) && zmq_z85_decode(server, c->hub_public) &&
              zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, server, 32) == 0 &&
              zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, pub, 32) == 0 &&
              zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, secret, 32) == 0 &&
              zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger) == 0 &&
              zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof one) == 0 &&
              zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) == 0 &&
              zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) == 0 &&
              zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) == 0;
    sodium_memzero(secret, sizeof secret);
    char mon_ep[80];
    snprintf(mon_ep, sizeof mon_ep, "inproc://adp-monitor-%p-%u", (void *)c, c->socket_gen++);
    ok = ok &&
         zmq_socket_monitor(c->sock, mon_ep,
                            ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_DISCONNECTED) == 0;
    c->monitor = ok ? zmq_socket(c->zctx, ZMQ_PAIR) : NULL;
    ok = ok && c->monitor && zmq_setsockopt(c->monitor, ZMQ_LINGER, &linger, sizeof linger) == 0 &&
         zmq_connect(c->monitor, mon_ep) == 0;
    if (!ok || zmq_connect(c->sock, c->endpoint) != 0) {
        snprintf(err, err_size, "cannot connect to %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
        adp__close_socket(c);
        return HUB_EZMQ;
    }
    return 0;
}

/* How long a node just moved to gets to welcome: ADP__TRY_MS, doubled per
 * full round of the list without a Welcome, capped; plus jitter. */
static uint64_t adp__try_us(const adp_client_t *c)
{
    unsigned rounds = c->n_endpoints ? c->ep_moves / (unsigned)c->n_endpoints : 0;
    uint64_t ms = ADP__TRY_MS;
    while (rounds-- > 0 && ms < ADP__TRY_MAX_MS)
        ms *= 2;
    if (ms > ADP__TRY_MAX_MS)
        ms = ADP__TRY_MAX_MS;
    return (ms + randombytes_uniform((uint32_t)ms / 2 + 1)) * 1000u;
}

/* Leaves the current endpoint for the next in the list (the first after
 * the last). Everything unanswered is sent again after the next node's
 * Welcome, under the same message ids: a node sharing the store answers
 * what the lost one had stored with its original ACK. */
static void adp__move_endpoint(adp_client_t *c, uint64_t now)
{
    char from[HUB_ENDPOINT_MAX];
    snprintf(from, sizeof from, "%s", c->endpoint);
    adp__close_socket(c);
    c->ep_index = (c->ep_index + 1) % c->n_endpoints;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", c->endpoints[c->ep_index]);
    c->ep_moves++;
    c->failovers++;
    c->failover_at_us = now + adp__try_us(c);
    HUB_WARN("adp", "hub node lost: moving to the next hub endpoint",
             "member=%s from=%s to=%s unanswered=%zu", c->key.member_id, from, c->endpoint,
             c->n_pending);
    char err[HUB_ERRMSG_MAX];
    if (adp__open_socket(c, err, sizeof err) != 0) /* tried again at the next move */
        adp__error(c, "%s", err);
}

/* With several endpoints: schedules a move when the current one does not
 * serve (no Welcome: disconnected, silent, never answered), cancels it
 * when it does, and moves when it is due. */
static void adp__failover_tick(adp_client_t *c, uint64_t now)
{
    if (c->n_endpoints < 2 || c->refused)
        return;
    if (c->welcomed) {
        c->failover_at_us = 0;
        return;
    }
    if (!c->failover_at_us)
        c->failover_at_us =
            now + (ADP__LOSS_MS + randombytes_uniform(ADP__LOSS_MS / 2 + 1)) * 1000u;
    else if (now >= c->failover_at_us || !c->sock)
        adp__move_endpoint(c, now);
}

/* One round: wait up to timeout_ms for input, process it, run timers. */
static void adp__pump(adp_client_t *c, int timeout_ms)
{
    /* What was posted or handled since the last round goes out before the
     * wait, not after it (an adp_run(client, 50) after adp_post_event()
     * sent the event up to 50 ms late). */
    if (c->welcomed && c->sock && (c->n_unsent || c->n_settle || c->n_rejects)) {
        adp__flush_settle(c);
        adp__flush_outbox(c);
    }
    zmq_pollitem_t items[2] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->monitor, 0, ZMQ_POLLIN, 0}};
    uint64_t now = hub_monotonic_us();
    uint64_t hb_us = (uint64_t)(c->heartbeat_ms ? c->heartbeat_ms : 1000) * 1000u;
    /* Timers run only on a connection whose CURVE handshake is done: the
     * next heartbeat, and the next Hello while no Welcome has come. Before
     * that there is nothing to do but wait for the monitor's events (libzmq
     * reconnects on its own, with exponential backoff and jitter, see
     * adp_new), so the poll sleeps for the whole timeout: waking at once
     * for a heartbeat that cannot be sent kept a CPU busy while the hub was
     * down. */
    if (c->handshaken) {
        uint64_t due = c->last_hb_mono_us + hb_us;
        if (!c->welcomed && c->last_hello_mono_us + hb_us < due)
            due = c->last_hello_mono_us + hb_us;
        int64_t until_ms = due > now ? (int64_t)((due - now + 999u) / 1000u) : 0;
        if (timeout_ms < 0 || timeout_ms > until_ms)
            timeout_ms = (int)until_ms;
    } else if (timeout_ms < 0) {
        timeout_ms = 0;
    }
    if (c->n_retry && c->welcomed) {
        int64_t until_ms =
            c->retry_at_mono_us > now ? (int64_t)((c->retry_at_mono_us - now + 999u) / 1000u) : 0;
        if (timeout_ms < 0 || timeout_ms > until_ms)
            timeout_ms = (int)until_ms;
    }
    if (c->failover_at_us) { /* wake up for the move */
        int64_t until_ms =
            c->failover_at_us > now ? (int64_t)((c->failover_at_us - now + 999u) / 1000u) : 0;
        if (timeout_ms < 0 || timeout_ms > until_ms)
            timeout_ms = (int)until_ms;
    }
    if (!c->sock) { /* no socket after a failed move: wait for the next */
        if (timeout_ms > 0)
            zmq_poll(NULL, 0, timeout_ms);
        adp__failover_tick(c, hub_monotonic_us());
        return;
    }
    if (zmq_poll(items, 2, timeout_ms) > 0) {
        if (items[1].revents & ZMQ_POLLIN)
            adp__handle_monitor(c);
        for (int n = 0; n < 1024; n++) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&msg);
                break;
            }
            adp__handle_frame(c, zmq_msg_data(&msg), zmq_msg_size(&msg));
            zmq_msg_close(&msg);
        }
    }
    now = hub_monotonic_us();
    if (c->handshaken && now - c->last_hb_mono_us >= hb_us)
        adp__send_heartbeat(c);
    if (c->welcomed && now - c->last_rx_mono_us > 3 * hb_us) {
        HUB_WARN("adp", "the hub is silent; saying hello again", "member=%s endpoint=%s",
                 c->key.member_id, c->endpoint);
        c->welcomed = false;
    }
    adp__failover_tick(c, now);
    if (!c->sock)
        return;
    if (c->handshaken && !c->welcomed && now - c->last_hello_mono_us >= hb_us)
        adp__send_hello(c);
    /* A reconnect resends everything unanswered (see the Welcome). As a
     * safety net, if the hub has answered nothing for a long while although
     * envelopes wait for it, send them again; a durable duplicate gets its
     * original ACK. Progress (any receipt) resets the clock, so a slow but
     * working hub is never flooded with resends. */
    if (c->welcomed && c->in_window > 0 && now - c->last_receipt_mono_us > ADP__RESEND_US) {
        HUB_WARN("adp", "no receipt from the hub for 30 s; sending unanswered messages again",
                 "count=%zu", c->in_window);
        c->last_receipt_mono_us = now;
        adp__requeue_all(c);
    }
    adp__retry_due(c);
    adp__flush_settle(c);
    adp__flush_outbox(c);
}

/* ------------------------------------------------------------------------ */
/* State directory                                                           */

static void adp__outbox_emit(adp__journal_t *j, void *user)
{
    adp_client_t *c = user;
    size_t n = 0;
    adp__outmsg_t **pending = adp__pending_in_order(c, &n);
    for (size_t i = 0; i < n; i++)
        adp__journal_append(j, 'P', pending[i]->bytes, pending[i]->len);
    free(pending);
}

static void adp__outbox_replay(uint8_t type, const uint8_t *data, size_t len, void *user)
{
    adp_client_t *c = user;
    if (type == 'A') {
        char id[HUB_UUID_LEN + 1];
        snprintf(id, sizeof id, "%.*s", (int)len, (const char *)data);
        adp__outmsg_t *m = adp__index_get(&c->outbox, id);
        if (m) {
            c->n_pending--;
            adp__outmsg_drop(c, m);
        }
        return;
    }
    hub_envelope_t *env = NULL;
    if (type != 'P' || hub_envelope_decode(data, len, &env) != 0 ||
        !hub_uuid_valid(env->message_id)) {
        hub_envelope_free(&env);
        return;
    }
    adp__outmsg_t *m = adp__outmsg_new(len + ADP__SIG_ROOM);
    if (m) {
        memcpy(m->bytes, data, len);
        m->len = len;
        memcpy(m->id, env->message_id, HUB_UUID_LEN + 1);
        m->order = c->next_order++;
        m->restored = true;
        /* Kept as posted, before its signature: it is signed when sent. */
        if (env->signature.len == 0 && c->key.has_sign &&
            hub_envelope_digest(env, m->digest) == 0)
            m->needs_sig = true;
        if (!adp__index_get(&c->outbox, m->id) && adp__index_put(&c->outbox, m) == 0) {
            c->n_pending++;
            m = NULL;
        }
    }
    if (m)
        adp__outmsg_free(m);
    hub_envelope_free(&env);
}

static void adp__seen_replay(uint8_t type, const uint8_t *data, size_t len, void *user)
{
    adp_client_t *c = user;
    char key[HUB_MEMBER_ID_MAX + HUB_UUID_LEN + 2];
    if ((type != 'S' && type != 'B' && type != 'U') || len >= sizeof key)
        return;
    memcpy(key, data, len);
    key[len] = '\0';
    if (type == 'U') {
        /* Undone: the handler ran to its end and left the message
         * unhandled (ADP_LATER, ADP_DEAD_LETTER), so it is not in doubt. */
        hub_map_remove(c->in_doubt, key);
        return;
    }
    if (type == 'B') {
        /* Begun: if no 'S' follows, the adapter stopped inside the handler. */
        hub_map_put(c->in_doubt, key, (void *)1);
        return;
    }
    hub_map_remove(c->in_doubt, key);
    adp__seen_add(c, key);
}

static int adp__open_state(adp_client_t *c, const char *dir, char *err, size_t err_size)
{
    int rc = adp__journal_open(dir, "outbox.jnl", adp__outbox_replay, c, &c->outbox_jnl, err,
                               err_size);
    if (rc == 0)
        rc = adp__journal_open(dir, "seen.jnl", adp__seen_replay, c, &c->seen_jnl, err,
                               err_size);
    if (rc == 0 && c->outbox.size > 0) {
        HUB_INFO("adp", "outbox restored: unacknowledged messages will be sent again",
                 "count=%zu", c->outbox.size);
        adp__requeue_all(c);
        /* Start the file afresh with only what is still pending. */
        adp__journal_compact(c->outbox_jnl, adp__outbox_emit, c);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

int adp_new(const adp_config_t *cfg, adp_client_t **out, char *err, size_t err_size)
{
    *out = NULL;
    if (!cfg || !cfg->hub_endpoint || !cfg->hub_key_file || !cfg->member_key_file) {
        snprintf(err, err_size, "hub_endpoint, hub_key_file and member_key_file are required");
        return HUB_EINVAL;
    }
    adp_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    hub_arena_init(&c->arena);
    int rc = hub_endpoint_list_parse("hub_endpoint", cfg->hub_endpoint, c->endpoints,
                                     HUB_ENDPOINTS_MAX, &c->n_endpoints, err, err_size);
    if (rc != 0) {
        free(c);
        return rc;
    }
    snprintf(c->endpoint_list, sizeof c->endpoint_list, "%s", cfg->hub_endpoint);
    /* The first endpoint is the preferred node (give members lists in
     * different orders to spread them over the nodes). */
    c->ep_index = 0;
    rc = hub_keyfile_read(cfg->member_key_file, &c->key, err, err_size);
    if (rc == 0 && !c->key.has_secret) {
        snprintf(err, err_size, "%s has no secret key: use the member's .secret file",
                 cfg->member_key_file);
        rc = HUB_EINVAL;
    }
    hub_keypair_t hub_key;
    if (rc == 0) {
        rc = hub_keyfile_read(cfg->hub_key_file, &hub_key, err, err_size);
        if (rc == 0) {
            memcpy(c->hub_public, hub_key.curve_public, sizeof c->hub_public);
            hub_keypair_wipe(&hub_key);
        }
    }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", c->endpoints[c->ep_index]);
    snprintf(c->software, sizeof c->software, "%s", cfg->software ? cfg->software : "adp " HUB_VERSION);
    if (rc == 0 && sodium_init() < 0) { /* before the index draws its key */
        snprintf(err, err_size, "libsodium could not be initialised");
        rc = HUB_ECRYPTO;
    }
    int out_rc = rc == 0 ? adp__index_init(&c->outbox) : 0;
    c->awaits = hub_map_new();
    int seen_rc = rc == 0 ? adp__seenset_init(&c->seen) : 0;
    c->in_doubt = hub_map_new();
    if (rc == 0 && (out_rc != 0 || seen_rc != 0 || !c->awaits || !c->in_doubt)) {
        snprintf(err, err_size, "out of memory");
        rc = HUB_ENOMEM;
    }
    if (rc == 0 && cfg->state_dir && cfg->state_dir[0])
        rc = adp__open_state(c, cfg->state_dir, err, err_size);
    if (rc != 0) {
        adp_close(&c);
        return rc;
    }
    c->zctx = zmq_ctx_new();
    rc = c->zctx ? adp__open_socket(c, err, err_size) : HUB_EZMQ;
    if (rc != 0) {
        if (!c->zctx)
            snprintf(err, err_size, "cannot create a ZeroMQ context: %s",
                     zmq_strerror(zmq_errno()));
        adp_close(&c);
        return rc;
    }
    if (c->n_endpoints > 1)
        c->failover_at_us = hub_monotonic_us() + adp__try_us(c);
    c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000;
    *out = c;
    return 0;
}

int adp_start(adp_client_t *c, char *err, size_t err_size)
{
    uint32_t timeout = c->connect_timeout_ms;
    uint64_t deadline = hub_monotonic_us() + (uint64_t)timeout * 1000u;
    while (!c->welcomed && !c->refused && hub_monotonic_us() < deadline)
        adp__pump(c, 50);
    if (c->welcomed)
        return 0;
    if (c->refused) {
        snprintf(err, err_size, "%s", c->last_error);
        return HUB_EREFUSED;
    }
    snprintf(err, err_size,
             "no answer from a hub at %s within %u ms%s%s; check hub_endpoint and that hubd runs",
             c->endpoint_list, timeout, c->last_error[0] ? ": " : "", c->last_error);
    return HUB_ETIMEDOUT;
}

int adp_connect(const adp_config_t *cfg, adp_client_t **out, char *err, size_t err_size)
{
    adp_client_t *c = NULL;
    int rc = adp_new(cfg, &c, err, err_size);
    if (rc == 0)
        rc = adp_start(c, err, err_size);
    if (rc != 0) {
        adp_close(&c);
        return rc;
    }
    *out = c;
    return 0;
}

void adp_close(adp_client_t **client_p)
{
    if (!client_p || !*client_p)
        return;
    adp_client_t *c = *client_p;
    if (c->sock)
        adp__flush_settle(c);
    adp__close_socket(c);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    adp__unsent_clear(c); /* frees the entries only it still held */
    free(c->unsent);
    size_t slot = 0;
    adp__outmsg_t *m;
    while ((m = adp__index_next(&c->outbox, &slot)) != NULL)
        adp__outmsg_free(m);
    free(c->outbox.slots);
    if (c->awaits) {
        size_t cursor = 0;
        void *value;
        while (hub_map_next(c->awaits, &cursor, NULL, &value)) {
            adp__await_t *w = value;
            free(w->reply.payload);
            free(w);
        }
        hub_map_destroy(&c->awaits);
    }
    adp__journal_close(&c->outbox_jnl);
    adp__journal_close(&c->seen_jnl);
    hub_map_destroy(&c->in_doubt);
    adp__seenset_free(&c->seen);
    free(c->settle);
    adp__free_rejects(c);
    free(c->rejects);
    free(c->offers);
    free(c->subs);
    hub_keypair_wipe(&c->key);
    hub_arena_destroy(&c->arena);
    free(c->proofs);
    free(c);
    *client_p = NULL;
}

/* Sets name's handler in routes, adding the name when it is new: 1 when
 * added, 0 when replaced, HUB_ENOMEM. */
static int adp__route_set(adp__route_t **routes, size_t *n, size_t *cap, size_t first,
                          const char *name, adp_handler_cb handler, void *user)
{
    for (size_t i = 0; i < *n; i++) {
        if (!strcmp((*routes)[i].name, name)) {
            (*routes)[i].handler = handler;
            (*routes)[i].user = user;
            return 0;
        }
    }
    if (HUB_VEC_RESERVE(*routes, *n, *cap, first) != 0)
        return HUB_ENOMEM;
    adp__route_t *r = &(*routes)[(*n)++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->handler = handler;
    r->user = user;
    return 1;
}

int adp_offer(adp_client_t *c, const char *service, adp_handler_cb handler, void *user)
{
    if (!c || !handler || (service && !hub_service_valid(service))) {
        if (c)
            adp__error(c, "service must be SERVICE/VERSION, e.g. citizen.lookup/v1");
        return HUB_EINVAL;
    }
    int rc = adp__route_set(&c->offers, &c->n_offers, &c->cap_offers, 8, service ? service : "",
                            handler, user);
    if (rc == 1 && c->welcomed && service)
        adp__send_hello(c); /* tell the hub about the new service */
    return rc < 0 ? rc : 0;
}

/* Waits for the hub's answer to one posted message; frees the entry. */
static int adp__await_receipt(adp_client_t *c, const char *id, uint64_t deadline,
                              uint64_t *hub_seq)
{
    for (;;) {
        adp__outmsg_t *m = adp__index_get(&c->outbox, id);
        if (!m)
            return HUB_EINVAL;
        if (m->state != ADP__PENDING) {
            int rc = 0;
            if (m->state == ADP__NACKED) {
                c->last_nack = m->nack_code;
                adp__error(c, "the hub refused the message (%s): %s",
                           hub_nack_code_name(m->nack_code), adp__reason(m));
                rc = HUB_ENACK;
            } else if (hub_seq) {
                *hub_seq = m->hub_seq;
            }
            adp__outmsg_drop(c, m);
            return rc;
        }
        uint64_t now = hub_monotonic_us();
        if (now >= deadline) {
            /* Leave it in the outbox: it will still be sent and ACKed. */
            m->waited = false;
            if (c->refused)
                return HUB_EREFUSED;
            adp__error(c, "the hub did not acknowledge the message in time%s",
                       c->welcomed ? "" : " (not connected to the hub)");
            return HUB_ETIMEDOUT;
        }
        int wait = (int)((deadline - now) / 1000u);
        adp__pump(c, wait > 100 ? 100 : wait);
    }
}

/* Posts a request (not yet flushed) and registers the await its reply
 * fills, under id (HUB_UUID_LEN + 1 bytes), into *w. */
static int adp__request_post(adp_client_t *c, const char *receiver, const char *service,
                             const char *content_type, const void *payload, size_t payload_len,
                             int flags, char *id, adp__await_t **w)
{
    int rc = adp__post(c, receiver, service, content_type, payload, payload_len, ADP_REQUEST, NULL,
                       flags, true, id);
    if (rc != 0)
        return rc;
    *w = calloc(1, sizeof **w);
    if (!*w || hub_map_put(c->awaits, id, *w) != 0) {
        free(*w);
        *w = NULL;
        return HUB_ENOMEM;
    }
    snprintf((*w)->receiver, sizeof(*w)->receiver, "%s", receiver);
    return 0;
}

int adp_request(adp_client_t *c, const char *receiver, const char *service,
                const char *content_type, const void *payload, size_t payload_len, int flags,
                uint32_t timeout_ms, adp_reply_t *reply)
{
    if (!c || !reply)
        return HUB_EINVAL;
    memset(reply, 0, sizeof *reply);
    c->last_nack = 0;
    char id[HUB_UUID_LEN + 1];
    adp__await_t *w = NULL;
    int rc =
        adp__request_post(c, receiver, service, content_type, payload, payload_len, flags, id, &w);
    if (rc != 0)
        return rc;
    uint64_t deadline = hub_monotonic_us() + (uint64_t)timeout_ms * 1000u;
    adp__flush_outbox(c);
    rc = adp__await_receipt(c, id, deadline, NULL);
    while (rc == 0 && !w->done) {
        uint64_t now = hub_monotonic_us();
        if (now >= deadline) {
            adp__error(c, "no reply from %s within %u ms", receiver, timeout_ms);
            rc = HUB_ETIMEDOUT;
            break;
        }
        int wait = (int)((deadline - now) / 1000u);
        adp__pump(c, wait > 100 ? 100 : wait);
    }
    hub_map_remove(c->awaits, id);
    if (rc == 0)
        *reply = w->reply;
    else
        free(w->reply.payload);
    free(w);
    return rc;
}

int adp_subscribe(adp_client_t *c, const char *topic, adp_handler_cb handler, void *user)
{
    if (!c || !topic || !handler)
        return HUB_EINVAL;
    char publisher[HUB_MEMBER_ID_MAX + 1];
    const char *service;
    if (!hub_member_service_split(topic, publisher, &service)) {
        adp__error(c, "a subscription is PUBLISHER-ID/SERVICE/VERSION, e.g. "
                      "VN/GOV/HN-VP/TTHC/catalogue.published/v1, not '%.100s'", topic);
        return HUB_EINVAL;
    }
    int rc = adp__route_set(&c->subs, &c->n_subs, &c->cap_subs, 4, topic, handler, user);
    if (rc == 1 && c->welcomed)
        adp__send_hello(c);
    return rc < 0 ? rc : 0;
}

int adp_publish(adp_client_t *c, const char *service, const char *content_type,
                const void *payload, size_t payload_len, int flags, char message_id_out[37])
{
    if (!c)
        return HUB_EINVAL;
    if (!c->hub_id[0]) {
        adp__error(c, "not connected yet: the hub's id comes with its Welcome");
        return HUB_ECLOSED;
    }
    return adp__post(c, c->hub_id, service, content_type, payload, payload_len, ADP_EVENT, NULL,
                     flags, false, message_id_out);
}

int adp_request_start(adp_client_t *c, const char *receiver, const char *service,
                      const char *content_type, const void *payload, size_t payload_len,
                      int flags, char id_out[37])
{
    if (!c || !id_out)
        return HUB_EINVAL;
    adp__await_t *w = NULL;
    int rc = adp__request_post(c, receiver, service, content_type, payload, payload_len, flags,
                               id_out, &w);
    if (rc != 0)
        return rc;
    adp__flush_outbox(c);
    return 0;
}

int adp_request_poll(adp_client_t *c, const char *id, adp_reply_t *reply)
{
    if (!c || !id || !reply)
        return HUB_EINVAL;
    adp__outmsg_t *m = adp__index_get(&c->outbox, id);
    if (m && m->state == ADP__NACKED) {
        c->last_nack = m->nack_code;
        adp__error(c, "the hub refused the message (%s): %s", hub_nack_code_name(m->nack_code),
                   adp__reason(m));
        adp_request_cancel(c, id);
        return HUB_ENACK;
    }
    if (m && m->state == ADP__ACKED) {
        /* Accepted by the hub: only the reply is awaited now. */
        adp__outmsg_drop(c, m);
    }
    adp__await_t *w = hub_map_get(c->awaits, id);
    if (!w)
        return HUB_ENOTFOUND;
    if (!w->done)
        return HUB_EAGAIN;
    *reply = w->reply;
    hub_map_remove(c->awaits, id);
    free(w);
    return 0;
}

void adp_request_cancel(adp_client_t *c, const char *id)
{
    if (!c || !id)
        return;
    adp__outmsg_t *m = adp__index_get(&c->outbox, id);
    if (m && m->state != ADP__PENDING) {
        adp__outmsg_drop(c, m);
    } else if (m) {
        m->waited = false; /* still sent; its receipt is dropped */
    }
    adp__await_t *w = hub_map_remove(c->awaits, id);
    if (w) {
        free(w->reply.payload);
        free(w);
    }
}

void adp_request_withdraw(adp_client_t *c, const char *id)
{
    if (!c || !id)
        return;
    adp__outmsg_t *m = adp__index_get(&c->outbox, id);
    if (m && m->state == ADP__PENDING) {
        if (m->sent_mono_us && c->in_window > 0)
            c->in_window--;
        if (c->n_pending > 0)
            c->n_pending--;
        /* Not pending any more before the journal may be compacted (which
         * rewrites the pending messages), as for an answer. */
        m->state = ADP__NACKED;
        adp__outbox_done(c, m->id);
        adp__outmsg_drop(c, m);
    }
    adp_request_cancel(c, id);
}

int adp_post_reply(adp_client_t *c, const char *requester, const char *service,
                   const char *request_id, const char *content_type, const void *payload,
                   size_t payload_len, int flags)
{
    if (!c || !request_id || !hub_uuid_valid(request_id)) {
        if (c)
            adp__error(c, "a reply needs the request's message id (a UUID)");
        return HUB_EINVAL;
    }
    int rc = adp__post(c, requester, service, content_type, payload, payload_len, ADP_REPLY,
                       request_id, flags, false, NULL);
    if (rc == 0)
        adp__flush_outbox(c);
    return rc;
}

int adp_post_event(adp_client_t *c, const char *receiver, const char *service,
                   const char *content_type, const void *payload, size_t payload_len, int flags,
                   char message_id_out[37])
{
    if (!c)
        return HUB_EINVAL;
    return adp__post(c, receiver, service, content_type, payload, payload_len, ADP_EVENT, NULL,
                     flags, false, message_id_out);
}

int adp_send_event(adp_client_t *c, const char *receiver, const char *service,
                   const char *content_type, const void *payload, size_t payload_len, int flags,
                   uint32_t timeout_ms, uint64_t *hub_seq)
{
    if (!c)
        return HUB_EINVAL;
    c->last_nack = 0;
    char id[HUB_UUID_LEN + 1];
    int rc = adp__post(c, receiver, service, content_type, payload, payload_len, ADP_EVENT, NULL,
                       flags, true, id);
    if (rc != 0)
        return rc;
    adp__flush_outbox(c);
    return adp__await_receipt(c, id, hub_monotonic_us() + (uint64_t)timeout_ms * 1000u, hub_seq);
}

void adp_set_ttl(adp_client_t *c, uint32_t ttl_ms)
{
    if (c)
        c->ttl_ms = ttl_ms;
}

void adp_set_sign_always(adp_client_t *c, bool always)
{
    if (c)
        c->sign_always = always;
}

size_t adp_outbox_size(const adp_client_t *c) { return c ? c->n_pending : 0; }

void adp_set_outcome_handler(adp_client_t *c, adp_outcome_cb cb, void *user)
{
    if (c) {
        c->on_outcome = cb;
        c->outcome_user = user;
    }
}

size_t adp_outbox_list(const adp_client_t *c, adp_pending_t *out, size_t max)
{
    if (!c)
        return 0;
    size_t n = 0, cursor = 0;
    adp__outmsg_t **pending = malloc((c->outbox.size + 1) * sizeof *pending);
    adp__outmsg_t *m;
    while (pending && (m = adp__index_next(&c->outbox, &cursor)) != NULL)
        if (m->state == ADP__PENDING)
            pending[n++] = m;
    if (!pending)
        return c->n_pending;
    qsort(pending, n, sizeof *pending, adp__by_order);
    for (size_t i = 0; i < n && i < max && out; i++) {
        memcpy(out[i].message_id, pending[i]->id, HUB_UUID_LEN + 1);
        out[i].restored = pending[i]->restored;
    }
    free(pending);
    return n;
}

int adp_post_event_as(adp_client_t *c, const char *message_id, uint64_t created_at_us,
                      const char *receiver, const char *service, const char *content_type,
                      const void *payload, size_t payload_len, int flags)
{
    if (!c || !message_id)
        return HUB_EINVAL;
    return adp__post_as(c, message_id, created_at_us, receiver, service, content_type, payload,
                        payload_len, ADP_EVENT, NULL, flags, false, NULL);
}

int adp_run(adp_client_t *c, int timeout_ms)
{
    if (!c)
        return HUB_EINVAL;
    uint64_t deadline = hub_monotonic_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000u;
    do {
        uint64_t now = hub_monotonic_us();
        int wait = now < deadline ? (int)((deadline - now) / 1000u) : 0;
        adp__pump(c, wait);
    } while (hub_monotonic_us() < deadline);
    return c->refused ? HUB_EREFUSED : 0;
}

int adp_ping_hub(adp_client_t *c, uint32_t timeout_ms, uint64_t *rtt_us)
{
    if (!c)
        return HUB_EINVAL;
    if (!c->welcomed) {
        adp__error(c, "not connected to the hub");
        return HUB_ECLOSED;
    }
    /* A heartbeat the hub echoes with the same sent_at_us: the hub alone,
     * no member in the way (proto/README.md, Pinging the hub itself). */
    Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
    hb.sent_at_us = hub_monotonic_us();
    if (hb.sent_at_us == c->last_hb_mono_us)
        hb.sent_at_us++; /* not to be mistaken for the SDK's own heartbeat */
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &hb;
    c->hub_ping_sent_us = hb.sent_at_us;
    c->hub_ping_rtt_us = 0;
    if (adp__send(c, &frame) != 0) {
        c->hub_ping_sent_us = 0;
        adp__error(c, "cannot send to the hub now");
        return HUB_EAGAIN;
    }
    uint64_t deadline = hb.sent_at_us + (uint64_t)timeout_ms * 1000u;
    while (!c->hub_ping_rtt_us && hub_monotonic_us() < deadline) {
        int wait = (int)((deadline - hub_monotonic_us()) / 1000u);
        adp__pump(c, wait > 100 ? 100 : wait);
    }
    c->hub_ping_sent_us = 0;
    if (!c->hub_ping_rtt_us) {
        adp__error(c, "the hub did not answer a ping within %u ms", timeout_ms);
        return HUB_ETIMEDOUT;
    }
    if (rtt_us)
        *rtt_us = c->hub_ping_rtt_us;
    return 0;
}

void adp_dead_letter_reason(adp_client_t *c, const char *reason)
{
    if (c)
        snprintf(c->dead_letter_reason, sizeof c->dead_letter_reason, "%s",
                 reason ? reason : "");
}

const char *adp_member_id(const adp_client_t *c) { return c ? c->key.member_id : ""; }

int adp_sign_detached(const adp_client_t *c, const uint8_t *data, size_t len, uint8_t sig[64],
                      uint8_t public_key[32])
{
    if (!c || (!data && len) || !sig || !public_key)
        return HUB_EINVAL;
    if (!c->key.has_sign)
        return HUB_ENOTFOUND;
    if (crypto_sign_detached(sig, NULL, data, (unsigned long long)len, c->key.sign_secret) != 0)
        return HUB_EINVAL;
    memcpy(public_key, c->key.sign_public, 32);
    return 0;
}
const char *adp_last_error(const adp_client_t *c) { return c ? c->last_error : ""; }
int adp_last_nack_code(const adp_client_t *c) { return c ? c->last_nack : 0; }
size_t adp_resent_count(const adp_client_t *c)
{
    return c ? c->resent : 0;
}
const char *adp_hub_endpoint(const adp_client_t *c)
{
    return c ? c->endpoint : "";
}
uint64_t adp_failovers(const adp_client_t *c)
{
    return c ? c->failovers : 0;
}
bool adp_connected(const adp_client_t *c) { return c && c->welcomed; }

void adp_reply_free(adp_reply_t *reply)
{
    if (reply) {
        free(reply->payload);
        reply->payload = NULL;
        reply->payload_len = 0;
    }
}
