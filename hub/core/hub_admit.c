/* hub_admit.c — admission: every envelope of a Batch leaves as exactly one
 * of a NACK, an online-only enqueue or a pending push for the group commit.
 * Also the tracking of requests, on which the reply rule rests, and the
 * per-member rate. */
#include "hub_core_internal.h"
#include "hub_cluster.h"

#include <sodium.h>

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
    const char *sender; /* interned member ids */
    const char *receiver;
    const char *purpose; /* interned: the agreement's, for its reply's audit record */
    uint64_t expires_mono_us;
    bool durable; /* also in the store, until answered */
    char id[HUB_UUID_LEN + 1];
    char answer_id[HUB_UUID_LEN + 1]; /* the accepted reply; "" = still open */
    uint64_t answer_seq; /* the reply's seq when it was queued; 0: online-only */
} admit__request_t;

/* A table of tracked requests: open addressing over {hash, request}
 * pairs, keyed by the request's message id, which the request holds (no
 * copy of the key, and the hash is compared before the request is read:
 * one cache line per probe). */
typedef struct {
    uint64_t hash;
    admit__request_t *req; /* NULL: empty; HUB__REQ_GONE: removed */
} admit__reqslot_t;

typedef struct {
    admit__reqslot_t *slots;
    size_t cap;  /* a power of two */
    size_t size; /* requests held */
    size_t used; /* requests + removed slots */
} admit__table_t;

/* An answered request, in the order answered, which is the order in which
 * they fall due (the grace is the same for all). */
typedef struct {
    uint64_t hash;
    uint64_t due_mono_us;
    const admit__request_t *req; /* compared, not read, until found in the table */
} admit__answered_t;

/* Open requests and answered ones are kept apart: the open ones are few
 * (what is in flight) and are scanned for their TTL once a second; the
 * answered ones are many (35 s of traffic: four million at 120,000
 * requests a second) and leave in the order they were answered, from the
 * head of a ring, so that nothing walks them. A look-up tries the open
 * table first. The hash is SipHash with a key drawn when the tables are
 * made, so that no member can choose ids that collide. */
struct admit__requests {
    admit__table_t open;
    admit__table_t answered;
    admit__answered_t *ring;
    size_t ring_head, ring_n, ring_cap; /* ring_cap: 0 or a power of two */
    unsigned char key[crypto_shorthash_KEYBYTES];
};

static admit__request_t admit__req_gone_mark;
#define HUB__REQ_GONE (&admit__req_gone_mark)

static uint64_t admit__req_hash(const core__requests_t *t, const char *id)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)id, strlen(id), t->key);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

static int admit__table_init(admit__table_t *t)
{
    t->cap = 1024;
    t->size = t->used = 0;
    t->slots = calloc(t->cap, sizeof *t->slots);
    return t->slots ? 0 : HUB_ENOMEM;
}

static void admit__table_free(admit__table_t *t)
{
    for (size_t i = 0; t->slots && i < t->cap; i++)
        if (t->slots[i].req && t->slots[i].req != HUB__REQ_GONE)
            free(t->slots[i].req);
    free(t->slots);
    t->slots = NULL;
}

core__requests_t *admit__requests_new(void)
{
    core__requests_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (admit__table_init(&t->open) != 0 || admit__table_init(&t->answered) != 0) {
        admit__table_free(&t->open);
        free(t);
        return NULL;
    }
    crypto_shorthash_keygen(t->key);
    return t;
}

size_t admit__requests_size(const core__requests_t *t)
{
    return t ? t->open.size + t->answered.size : 0;
}

void admit__requests_destroy(core__requests_t **t_p)
{
    core__requests_t *t = t_p ? *t_p : NULL;
    if (!t)
        return;
    admit__table_free(&t->open);
    admit__table_free(&t->answered);
    free(t->ring);
    free(t);
    *t_p = NULL;
}

static admit__reqslot_t *admit__req_find(const admit__table_t *t, const char *id, uint64_t hash)
{
    size_t mask = t->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        admit__reqslot_t *s = &t->slots[i];
        if (!s->req)
            return NULL;
        if (s->hash == hash && s->req != HUB__REQ_GONE && !strcmp(s->req->id, id))
            return s;
    }
}

/* The slot of id in either table (*in says which), or NULL. */
static admit__reqslot_t *admit__req_lookup(const core__requests_t *t, const char *id,
                                           uint64_t hash, admit__table_t **in)
{
    admit__reqslot_t *s = admit__req_find(&t->open, id, hash);
    *in = (admit__table_t *)&t->open;
    if (!s && t->answered.size) {
        s = admit__req_find(&t->answered, id, hash);
        *in = (admit__table_t *)&t->answered;
    }
    return s;
}

/* Fetching ahead (server__on_batch): the open table's slot for the id an
 * envelope will be looked up by, then the request in it, are brought into
 * the cache while the envelopes before it are admitted: the reply of a
 * request that was admitted a moment ago, by another batch, has usually
 * left the cache since. */
uint64_t admit__prefetch_slot(hub_server_t *self, const uint8_t *bytes, size_t len)
{
    /* The id: correlation_id (field 2) when set (a reply), else
     * message_id (field 1); clients encode both first. */
    const uint8_t *p = bytes, *end = bytes ? bytes + len : NULL, *value, *id = NULL;
    uint32_t field;
    size_t n, id_len = 0;
    for (int k = 0; k < 2 && hub_pb_next(&p, end, &field, &value, &n); k++) {
        if (value && n && (field == 1 || field == 2)) {
            id = value;
            id_len = n;
        }
    }
    if (!id || id_len != HUB_UUID_LEN)
        return 0;
    const core__requests_t *t = self->requests;
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, id, id_len, t->key);
    uint64_t hash;
    memcpy(&hash, out, sizeof hash);
    __builtin_prefetch(&t->open.slots[hash & (t->open.cap - 1)]);
    /* A reply's request moves there; a new request's id is looked for
     * there: the one large table, where each of these is a cache miss. */
    __builtin_prefetch(&t->answered.slots[hash & (t->answered.cap - 1)], 1);
    return hash;
}

void admit__prefetch_request(hub_server_t *self, uint64_t hash)
{
    const admit__table_t *t = &self->requests->open;
    const admit__reqslot_t *s = &t->slots[hash & (t->cap - 1)];
    if (hash && s->hash == hash && s->req && s->req != HUB__REQ_GONE)
        __builtin_prefetch(s->req);
}

static admit__request_t *admit__req_get(const core__requests_t *t, const char *id)
{
    admit__table_t *in;
    admit__reqslot_t *s = admit__req_lookup(t, id, admit__req_hash(t, id), &in);
    return s ? s->req : NULL;
}

/* Rehashes into a table twice as large when the requests fill half of it,
 * else of the same size (removed slots dropped). */
static int admit__req_rehash(admit__table_t *t)
{
    size_t ncap = t->size * 2 >= t->cap / 2 ? t->cap * 2 : t->cap;
    admit__reqslot_t *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return HUB_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        admit__reqslot_t *s = &t->slots[i];
        if (!s->req || s->req == HUB__REQ_GONE)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].req)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    t->used = t->size;
    return 0;
}

/* Adds req (its id, whose hash is given, not yet in the table). */
static int admit__req_put(admit__table_t *t, admit__request_t *req, uint64_t hash)
{
    if ((t->used + 1) * 10 >= t->cap * 7 && admit__req_rehash(t) != 0)
        return HUB_ENOMEM;
    size_t mask = t->cap - 1;
    size_t i = hash & mask;
    while (t->slots[i].req && t->slots[i].req != HUB__REQ_GONE)
        i = (i + 1) & mask;
    if (!t->slots[i].req)
        t->used++;
    t->slots[i] = (admit__reqslot_t){hash, req};
    t->size++;
    return 0;
}

static void admit__req_remove(admit__table_t *t, admit__reqslot_t *s)
{
    s->req = HUB__REQ_GONE;
    t->size--;
}

#define HUB__MAX_TRACKED_REQUESTS 1000000
/* How long an answered request is remembered (re-sends of its reply). */
#define HUB__ANSWERED_GRACE_US (35u * 1000000u) /* past the SDK's 30 s re-send */

static void admit__request_forget(hub_server_t *self, admit__table_t *in, admit__reqslot_t *slot)
{
    admit__request_t *req = slot->req;
    core__member_t *s = hub_map_get(self->members, req->sender);
    if (!req->answer_id[0]) {
        if (s && s->open_requests)
            s->open_requests--;
        if (self->open_requests_total)
            self->open_requests_total--;
    }
    admit__req_remove(in, slot);
    free(req);
}

/* Tracks a request from s to r the hub is about to accept. Returns 0, or a
 * NACK code with a sentence in *why when the sender has too many
 * unanswered. */
static int admit__remember_request_of(hub_server_t *self, const char *message_id, core__member_t *s,
                                      core__member_t *r, const char *purpose, uint64_t ttl_ms,
                                      bool durable, const char **why)
{
    uint64_t hash = admit__req_hash(self->requests, message_id);
    admit__table_t *old_in;
    admit__reqslot_t *old_slot = admit__req_lookup(self->requests, message_id, hash, &old_in);
    admit__request_t *old = old_slot ? old_slot->req : NULL;
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
        self->open_requests_total >= HUB__MAX_TRACKED_REQUESTS) {
        *why = "too many of your requests are waiting for replies; wait for replies (or their "
               "TTL) before sending more requests";
        return LTH__V1__NACK_CODE__NACK_QUEUE_FULL;
    }
    admit__request_t *req = calloc(1, sizeof *req);
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
    req->purpose = purpose;
    req->durable = durable;
    req->expires_mono_us = hub_monotonic_us() + ttl_ms * 1000u;
    core__copy_str(req->id, sizeof req->id, message_id);
    if (old)
        admit__request_forget(self, old_in, old_slot);
    if (admit__req_put(&self->requests->open, req, hash) != 0) {
        free(req);
        *why = "the hub is out of memory; send again later";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    s->open_requests++;
    self->open_requests_total++;
    return 0;
}

/* The same by member ids. */
static int admit__remember_request(hub_server_t *self, const char *message_id, const char *sender,
                                   const char *receiver, const char *purpose, uint64_t ttl_ms,
                                   bool durable, const char **why)
{
    core__member_t *s = members__member(self, sender);
    core__member_t *r = members__member(self, receiver);
    if (!s || !r) {
        *why = "the hub is out of memory; send again later";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    return admit__remember_request_of(self, message_id, s, r, purpose, ttl_ms, durable, why);
}

/* Decides whether a reply may pass: 0 with the request it answers in *out,
 * or NACK_FORBIDDEN with the reason in `why` (size HUB__WHY_MAX). Nothing
 * changes until admit__request_answered(). */
static int admit__reply(hub_server_t *self, const hub_envelope_t *env, admit__request_t **out,
                        char *why)
{
    *out = NULL;
    admit__request_t *req = admit__req_get(self->requests, env->correlation_id);
    if (req && req->answer_id[0] && req->expires_mono_us <= hub_monotonic_us())
        req = NULL; /* answered, and its TTL or grace is over: due to leave */
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
                 "request %s went from %s to %s; only %s may answer it, and only to %s", req->id,
                 req->sender, req->receiver, req->receiver, req->sender);
        return LTH__V1__NACK_CODE__NACK_FORBIDDEN;
    }
    if (req->answer_id[0] && strcmp(req->answer_id, env->message_id) != 0) {
        snprintf(why, HUB__WHY_MAX,
                 "request %s was already answered by reply %s; a request gets one reply", req->id,
                 req->answer_id);
        return LTH__V1__NACK_CODE__NACK_FORBIDDEN;
    }
    *out = req; /* open, or answered by this same reply (a re-send) */
    return 0;
}

/* Moves req from the open table to the answered one, at the ring's tail,
 * due at due_mono_us. Out of memory, it stays in the open table, where the
 * scan of admit__expire_requests() forgets it in time all the same. */
static void admit__request_move_answered(core__requests_t *t, admit__request_t *req,
                                         uint64_t due_mono_us)
{
    uint64_t hash = admit__req_hash(t, req->id);
    admit__reqslot_t *slot = admit__req_find(&t->open, req->id, hash);
    if (!slot)
        return; /* answered already (a re-send), or in the answered table */
    if (t->ring_n == t->ring_cap) {
        size_t cap = t->ring_cap ? 2 * t->ring_cap : 1024;
        admit__answered_t *ring = malloc(cap * sizeof *ring);
        if (!ring)
            return;
        for (size_t i = 0; i < t->ring_n; i++)
            ring[i] = t->ring[(t->ring_head + i) & (t->ring_cap - 1)];
        free(t->ring);
        t->ring = ring;
        t->ring_cap = cap;
        t->ring_head = 0;
    }
    if (admit__req_put(&t->answered, req, hash) != 0)
        return;
    admit__req_remove(&t->open, slot);
    t->ring[(t->ring_head + t->ring_n++) & (t->ring_cap - 1)] =
        (admit__answered_t){hash, due_mono_us, req};
}

/* The reply `reply_id` to `req` has been accepted: no other reply will be. */
static void admit__request_answered(hub_server_t *self, admit__request_t *req, const char *reply_id)
{
    if (req->answer_id[0])
        return;
    core__copy_str(req->answer_id, sizeof req->answer_id, reply_id);
    /* Answered: kept only long enough to accept a re-send of this reply
     * and refuse any other, not for the rest of the request's TTL (a day,
     * for queued ones): the table would fill with answered requests. */
    uint64_t grace = hub_monotonic_us() + HUB__ANSWERED_GRACE_US;
    if (req->expires_mono_us > grace)
        req->expires_mono_us = grace;
    core__member_t *s = hub_map_get(self->members, req->sender);
    if (s && s->open_requests)
        s->open_requests--;
    if (self->open_requests_total)
        self->open_requests_total--;
    admit__request_move_answered(self->requests, req, grace);
    if (req->durable) {
        /* Forgotten by the store with the next commit. */
        char *id = strdup(req->id);
        if (id && HUB__PUSH(self->answered, self->answered_n, self->answered_cap, id) != 0)
            free(id);
    }
}

/* At the start of its commit (loop thread): whether a queued request is
 * answered already, and how (core__pending_t.answered_*). */
void admit__request_note(hub_server_t *self, core__pending_t *p)
{
    if (!p->request_expires_us)
        return;
    const admit__request_t *req = admit__req_get(self->requests, p->msg.message_id);
    if (!req || !req->answer_id[0])
        return;
    p->answered_online = req->answer_seq == 0;
    p->answered_by_seq = req->answer_seq;
}

/* The answered table's slot holding exactly `req` (by address: a request
 * the ring names may have been forgotten and freed since), or NULL. */
static admit__reqslot_t *admit__answered_slot(const admit__table_t *t, uint64_t hash,
                                              const admit__request_t *req)
{
    size_t mask = t->cap - 1;
    for (size_t i = hash & mask; t->slots[i].req; i = (i + 1) & mask)
        if (t->slots[i].hash == hash && t->slots[i].req == req)
            return &t->slots[i];
    return NULL;
}

void admit__expire_requests(hub_server_t *self, uint64_t now)
{
    /* The open table, whole, once a second: it holds what is in flight (and
     * queued requests waiting for their receiver), not the answered ones;
     * removed slots are dropped by the next rehash. */
    core__requests_t *t = self->requests;
    for (size_t i = 0; i < t->open.cap; i++) {
        admit__reqslot_t *s = &t->open.slots[i];
        if (s->req && s->req != HUB__REQ_GONE && s->req->expires_mono_us <= now)
            admit__request_forget(self, &t->open, s);
    }
    /* The answered ones from the ring's head, as they fall due. One the
     * ring names may be gone already (replaced by a new request with its
     * id), or be a new request at the same address answered later: then
     * its own, later entry is the one that removes it. */
    while (t->ring_n && t->ring[t->ring_head].due_mono_us <= now) {
        admit__answered_t a = t->ring[t->ring_head];
        t->ring_head = (t->ring_head + 1) & (t->ring_cap - 1);
        t->ring_n--;
        admit__reqslot_t *s = admit__answered_slot(&t->answered, a.hash, a.req);
        if (s && s->req->expires_mono_us <= now)
            admit__request_forget(self, &t->answered, s);
    }
}

/* hub_store_requests_load() callback: queued requests tracked again after a
 * restart. */
void admit__request_loaded(const hub_store_request_t *sr, void *user)
{
    hub_server_t *self = user;
    uint64_t now = hub_now_us();
    uint64_t left_ms = sr->expires_at_us > now ? (sr->expires_at_us - now) / 1000u : 1;
    const char *why;
    if (admit__remember_request(self, sr->message_id, sr->sender, sr->receiver, NULL,
                                left_ms ? left_ms : 1, true, &why) != 0)
        HUB_WARN("router", "tracked request not restored", "message_id=%s reason=\"%s\"",
                 sr->message_id, why);
}

const char *admit__signature_problem(int rc, bool has_key)
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

/* The member's limits, re-read after every reload: hubd.conf's defaults,
 * or its policy `limit` line. */
void admit__member_limits(hub_server_t *self, core__member_t *m)
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
int admit__rate_check(hub_server_t *self, core__member_t *m, size_t len, char *why)
{
    admit__member_limits(self, m);
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

void admit__route_envelope(hub_server_t *self, core__member_t *sender, const uint8_t *bytes,
                           size_t len, core__receipts_t *receipts)
{
    hub_envelope_t *env = NULL;
    /* Decoded into the turn's arena, and given back at the end. */
    hub_arena_mark_t mark = hub_arena_mark(&self->turn_arena);
    if (len > (size_t)self->cfg.max_payload_bytes + 65536u) {
        send__receipt_nack(self, receipts, "", LTH__V1__NACK_CODE__NACK_PAYLOAD_TOO_LARGE,
                           "envelope of %zu bytes exceeds the hub's limit of %u payload bytes; "
                           "split the payload or send a reference to it",
                           len, self->cfg.max_payload_bytes);
        return;
    }
    bool in_place = false;
    if (hub_envelope_read_in(&self->turn_arena, bytes, len, &env, &in_place) != 0) {
        send__receipt_nack(self, receipts, "", LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                           "an item of the batch is not an encoded lth.v1.Envelope");
        return;
    }
    /* Read in place: each field once, valid wire format (what
     * hub_envelope_check_encoding checks), but for the batch proof. */
    bool plain = in_place && !env->batch_proof;
    const char *problem = NULL;
    const char *mid = hub_uuid_valid(env->message_id) ? env->message_id : "";
    receipts->env = env; /* refusals from here on carry its evidence (outcome__refused) */
    if (env->payload.len > self->cfg.max_payload_bytes) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_PAYLOAD_TOO_LARGE,
                           "payload of %zu bytes exceeds the hub's limit of %u bytes; split the "
                           "payload or send a reference to it",
                           env->payload.len, self->cfg.max_payload_bytes);
        goto done;
    }
    if (hub_envelope_check(env, &problem) != 0) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE, "%s",
                           problem);
        goto done;
    }
    if (env->base.n_unknown_fields > 0 ||
        (env->batch_proof && env->batch_proof->base.n_unknown_fields > 0)) {
        /* The hub forwards the exact bytes, and the signature covers only
         * the fields of lth.v1.Envelope: an unknown field would travel
         * unsigned. */
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                           "the envelope has fields lth.v1.Envelope does not define; they "
                           "would not be covered by its signature: remove them");
        goto done;
    }
    char twice[HUB_ERRMSG_MAX]; /* a field encoded twice: forwarded bytes, ambiguous value */
    if (!plain && hub_envelope_check_encoding(bytes, len, twice, sizeof twice) != 0) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE, "%s",
                           twice);
        goto done;
    }
    if (strcmp(env->sender, sender->id) != 0) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_SENDER_MISMATCH,
                           "the envelope claims sender %s but this connection is authenticated "
                           "as %s; set sender to your own member id",
                           env->sender, sender->id);
        goto done;
    }
    if (!strcmp(env->receiver, self->own_key.member_id)) {
        pubsub__publish(self, sender, env, bytes, len, receipts, mid);
        goto done;
    }
    if (!hub_keydir_find_member(self->keys, env->receiver)) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER,
                           "no member %s is registered with the hub; check the receiver id, or "
                           "ask the hub operator to add its key",
                           env->receiver);
        goto done;
    }
    core__member_t *rcv = members__member(self, env->receiver);
    if (rcv) {
        /* From here on, refusals are counted against this flow. */
        receipts->receiver = rcv->id;
        receipts->service = env->service;
    }
    /* Deny by default: a request or event needs a data-sharing agreement
     * with the member it is addressed to; a reply needs the request it
     * answers (admit__reply, below, once the receiver is known). */
    const char *purpose = NULL; /* the agreement's, for the audit log */
    if (env->kind != LTH__V1__KIND__KIND_REPLY) {
        hub_policy_decision_t decision;
        const char *why =
            trust__forbidden(self, env->sender, env->receiver, env->service, &decision);
        if (why) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_FORBIDDEN, "%s", why);
            goto done;
        }
        if (self->policy && self->audit && decision.purpose && *decision.purpose) {
            purpose = members__intern(self, decision.purpose);
            receipts->purpose = purpose;
        }
    }
    /* Ủy quyền: the authority addressed has delegated this service, or the
     * procedure the envelope names in its signed content type (never read
     * from the payload). */
    const hub_delegation_rule_t *deleg_rule = NULL;
    const char *delegate = NULL;
    char procedure[HUB_PROCEDURE_CODE_MAX] = "";
    if (self->delegations && env->kind != LTH__V1__KIND__KIND_REPLY) {
        const char *why = NULL;
        int prc = hub_delegation_procedure_of(env->content_type, procedure, &why);
        if (prc < 0) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                               "%s", why);
            goto done;
        }
        if (prc > 0 && !self->cfg.require_signatures) {
            /* The hub routes by it: it must be the sender's word, signed,
             * even where the hub does not require signatures otherwise. */
            const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
            int vrc = skp && skp->has_sign
                          ? hub_envelope_verify_cached(env, skp->sign_public, &self->sigcache)
                          : HUB_EINVAL;
            if (vrc != 0) {
                send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                   "the content type names procedure %s (lth-procedure), by which "
                                   "the hub routes delegated dossiers, but the envelope is not "
                                   "signed by %s's key: sign it, or leave the parameter out",
                                   procedure, env->sender);
                goto done;
            }
        }
        deleg_rule = hub_delegations_match(self->delegations, env->receiver, env->service,
                                           procedure, hub_now_us());
        delegate = hub_delegation_rule_delegate(deleg_rule);
    }
    if (delegate) {
        if (!hub_keydir_find_member(self->keys, delegate)) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER,
                               "%s delegated %s to %s (delegations line %u), which has no key "
                               "at the hub; ask the operator to fix the delegation",
                               env->receiver, env->service, delegate,
                               hub_delegation_rule_line(deleg_rule));
            goto done;
        }
        core__member_t *dm = members__member(self, delegate);
        if (dm) {
            HUB_DEBUG("router", "delegated", "message_id=%s authority=%s delegate=%s line=%u",
                      env->message_id, env->receiver, delegate,
                      hub_delegation_rule_line(deleg_rule));
            rcv = dm;
            receipts->receiver = dm->id;
        }
    }
    if (!rcv) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                           "the hub is out of memory; send again later");
        goto done;
    }
    /* Replies route back by correlation id: only to a request the hub
     * tracks, from its receiver, to its sender, once. */
    admit__request_t *answers = NULL;
    if (env->kind == LTH__V1__KIND__KIND_REPLY) {
        char why[HUB__WHY_MAX];
        int code = admit__reply(self, env, &answers, why);
        if (code != 0) {
            send__receipt_nack(self, receipts, mid, code, "%s", why);
            goto done;
        }
        purpose = answers->purpose; /* a reply serves its request's purpose */
    }
    sender->msgs_in++;
    sender->bytes_in += len;
    if (env->delivery == LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY) {
        /* Several nodes: a receiver connected to another one is reached
         * over the node link (hub_cluster.c), once admitted here. */
        bool remote = !rcv->online && self->cluster && cluster__located(self, rcv->id);
        if (!rcv->online && !remote) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE,
                               "%s is not connected to the hub now; send with queued delivery to "
                               "have the hub keep it until the receiver returns",
                               rcv->id);
            goto done;
        }
        uint8_t digest[HUB_DIGEST_LEN];
        bool have_digest = false;
        if (self->cfg.require_signatures) {
            const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
            int vrc = skp && skp->has_sign ? hub_envelope_verify_out(env, skp->sign_public,
                                                                        &self->sigcache, digest)
                                           : HUB_EINVAL;
            have_digest = vrc == 0;
            if (vrc != 0) {
                send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                   "%s", admit__signature_problem(vrc, skp && skp->has_sign));
                goto done;
            }
        }
        if (!remote && send__waiting(rcv) + len > self->cfg.max_waiting_bytes) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                               "%s is not reading fast enough: %llu bytes already wait for it "
                               "(the limit is max_waiting_bytes = %llu); send again later, or "
                               "send with queued delivery",
                               rcv->id, (unsigned long long)send__waiting(rcv),
                               (unsigned long long)self->cfg.max_waiting_bytes);
            goto done;
        }
        if (env->kind == LTH__V1__KIND__KIND_REQUEST && !remote) {
            const char *why; /* env->sender is sender->id (checked above) */
            int code = admit__remember_request_of(self, env->message_id, sender, rcv, purpose,
                                                  env->ttl_ms, false, &why);
            if (code != 0) {
                send__receipt_nack(self, receipts, mid, code, "%s", why);
                goto done;
            }
        }
        if (remote && !cluster__forward(self, rcv->id, bytes, len)) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE,
                               "%s is connected to another node of the hub, which cannot be "
                               "reached now; send again shortly, or send with queued delivery",
                               rcv->id);
            goto done;
        }
        /* The bytes are the Batch frame's, in the turn's arena: the
         * delivery borrows them until the end of this turn. */
        if (!remote &&
            send__enqueue_lent(self, rcv, env->sender, 0, 1, (uint8_t *)bytes, len) != 0) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                               "the hub is out of memory; send again later");
            goto done;
        }
        self->turn_lent = true;
        if (answers)
            admit__request_answered(self, answers, env->message_id);
        send__receipt_ack_routed(receipts, env->message_id, 0, delegate ? rcv->id : NULL);
        if (delegate)
            hub_delegations_note_use(self->delegations, deleg_rule, procedure, hub_now_us());
        core__evidence_t ev;
        if (self->audit) /* the digest once: the signature check's, when it ran */
            outcome__evidence_later(self, env, bytes, len, have_digest ? digest : NULL, purpose,
                                    &ev);
        outcome__accepted(self, env, rcv->id, len, self->audit ? &ev : NULL,
                          env->kind == LTH__V1__KIND__KIND_REQUEST ? "request online-only"
                          : env->kind == LTH__V1__KIND__KIND_REPLY ? "reply online-only"
                                                                   : "event online-only",
                          true);
        goto done;
    }
    /* Durable: wait for the group commit, unless the store is this far
     * behind: then the sender is told to wait, and the hub's memory stays
     * bounded whatever the senders do. */
    if (self->pending_n >= HUB__MAX_PENDING) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                           "the hub's store is behind (%zu envelopes waiting to be written); "
                           "nothing was stored, send again shortly",
                           self->pending_n);
        goto done;
    }
    uint64_t ttl_ms = env->ttl_ms ? env->ttl_ms : self->cfg.default_ttl_ms;
    if (ttl_ms > self->cfg.max_ttl_ms)
        ttl_ms = self->cfg.max_ttl_ms;
    core__pending_t p;
    memset(&p, 0, sizeof p);
    p.bytes = malloc(len ? len : 1);
    if (!p.bytes) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                           "the hub is out of memory; send again later");
        goto done;
    }
    memcpy(p.bytes, bytes, len);
    /* Room in the pending array first: once delivered early, the envelope
     * lends its bytes to the delivery until the end of this turn
     * (send__enqueue_lent), so it can no longer be given up. */
    if (core__grow((void **)&self->pending, &self->pending_cap, self->pending_n + 1,
                   sizeof *self->pending) != 0) {
        free(p.bytes);
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                           "the hub is out of memory; send again later");
        goto done;
    }
    core__copy_str(p.msg.message_id, sizeof p.msg.message_id, env->message_id);
    core__copy_str(p.msg.sender, sizeof p.msg.sender, env->sender);
    core__copy_str(p.msg.receiver, sizeof p.msg.receiver, rcv->id);
    if (delegate) {
        core__member_t *authority = members__member(self, env->receiver);
        p.delegated_from = authority ? authority->id : NULL;
        /* Only a code the rule names: the interned set stays bounded. */
        if (procedure[0] && hub_delegation_rule_names(deleg_rule, procedure))
            p.delegated_procedure = members__intern(self, procedure);
    }
    core__copy_str(p.msg.service, sizeof p.msg.service, env->service);
    p.purpose = purpose;
    p.msg.accepted_at_us = hub_now_us();
    p.msg.expires_at_us = p.msg.accepted_at_us + ttl_ms * 1000u;
    p.msg.envelope = p.bytes;
    p.msg.envelope_len = len;
    delivery__quota_for(self, sender, rcv, &p.msg.quota);
    if (self->cfg.require_signatures) {
        /* Checked on the commit worker, off the loop thread. */
        const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
        if (!skp || !skp->has_sign || env->signature.len == 0) {
            free(p.bytes);
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "%s",
                               admit__signature_problem(HUB_EINVAL, skp && skp->has_sign));
            goto done;
        }
        memcpy(p.sign_key, skp->sign_public, 32);
        p.verify = true;
        /* A batch signature costs one Ed25519 check per batch (the cache),
         * so it is checked here, which lets the envelope go early; a single
         * signature (~75 µs) waits for the commit worker. */
        if (env->batch_proof) {
            /* The digest is kept for the store's de-duplication record:
             * the envelope is hashed once. */
            int vrc = hub_envelope_digest(env, p.msg.digest);
            if (vrc == 0)
                vrc = hub_envelope_verify_digest(env, p.msg.digest, skp->sign_public,
                                                 &self->sigcache);
            if (vrc != 0) {
                free(p.bytes);
                send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                   "%s", admit__signature_problem(vrc, true));
                goto done;
            }
            p.verify = false;
        }
    }
    /* The store's de-duplication record keeps the digest (ID_REUSED): from
     * this decode, so that the commit worker decodes the envelope again
     * only for a signature it checks or the audit log. A failure leaves it
     * zero (the worker tries again). */
    if (!p.verify && !(self->cfg.require_signatures && env->batch_proof))
        (void)hub_envelope_digest(env, p.msg.digest);
    if (env->kind == LTH__V1__KIND__KIND_REQUEST) {
        const char *why;
        int code = admit__remember_request_of(self, env->message_id, sender, rcv, purpose,
                                              env->ttl_ms ? env->ttl_ms : ttl_ms, true, &why);
        if (code != 0) {
            free(p.bytes);
            send__receipt_nack(self, receipts, mid, code, "%s", why);
            goto done;
        }
        p.request_expires_us = p.msg.expires_at_us;
    }
    if (answers)
        admit__request_answered(self, answers, env->message_id);
    p.msg.preset_seq = self->next_seq++;
    if (answers && !strcmp(answers->answer_id, env->message_id) && !answers->answer_seq)
        answers->answer_seq = p.msg.preset_seq;
    delivery__deliver_early(self, sender, env->created_at_us, rcv, &p);
    p.queued_mono_us = hub_monotonic_us();
    if (delivery__pending_push(self, &p) != 0) { /* cannot fail: room was made above */
        free(p.bytes);
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                           "the hub is out of memory; send again later");
    }
done:
    receipts->receiver = NULL;
    receipts->service = NULL;
    receipts->env = NULL;
    receipts->purpose = NULL;
    env = NULL;
    hub_arena_release(&self->turn_arena, mark);
}

/* An online-only envelope another node of the hub admitted (agreement,
 * signature and reply rule checked there) for a member connected here:
 * handed to it, or dropped when it has gone meanwhile (online-only). A
 * request is tracked here, so that its reply, sent to this node, passes the
 * reply rule and goes back over the link. */
void admit__forwarded(hub_server_t *self, const char *receiver, const char *origin,
                      const uint8_t *bytes, size_t len)
{
    core__member_t *rcv = hub_map_get(self->members, receiver);
    hub_envelope_t *env = NULL;
    if (!rcv || !rcv->online || hub_envelope_decode(bytes, len, &env) != 0) {
        HUB_INFO("cluster", "forwarded envelope dropped: receiver not connected here",
                 "receiver=%s", receiver);
        hub_envelope_free(&env);
        return;
    }
    if (env->kind == LTH__V1__KIND__KIND_REQUEST) {
        const char *why;
        if (admit__remember_request(self, env->message_id, env->sender, rcv->id, NULL, env->ttl_ms,
                                    false, &why) != 0)
            HUB_WARN("cluster", "forwarded request not tracked; its reply will be refused",
                     "message_id=%s why=\"%s\"", env->message_id, why);
    }
    core__member_t *from = members__member(self, env->sender); /* for the reply's admission */
    if (from && !from->online)
        cluster__came_from(self, env->sender, origin);
    if (send__enqueue_out(self, rcv, env->sender, 0, 1, bytes, len) != 0)
        HUB_WARN("cluster", "forwarded envelope dropped: out of memory", "receiver=%s", receiver);
    hub_envelope_free(&env);
}

/* Several nodes: a queued envelope this node delivers may have been
 * admitted by another. A request is tracked here too (its reply comes to
 * this node); a reply closes the request this node tracked for its sender
 * (the reply was admitted where the request's receiver is connected). */
void admit__cluster_delivered(hub_server_t *self, const hub_store_msg_t *msg)
{
    admit__request_t *req = NULL;
    hub_envelope_t *env = NULL;
    if (hub_envelope_decode(msg->envelope, msg->envelope_len, &env) != 0)
        return;
    if (env->kind == LTH__V1__KIND__KIND_REQUEST &&
        !admit__req_get(self->requests, msg->message_id)) {
        const char *why;
        if (admit__remember_request(self, msg->message_id, msg->sender, msg->receiver, NULL,
                                    env->ttl_ms, true, &why) != 0)
            HUB_WARN("cluster", "request from another node not tracked; its reply will be refused",
                     "message_id=%s why=\"%s\"", msg->message_id, why);
    } else if (env->kind == LTH__V1__KIND__KIND_REPLY &&
               (req = admit__req_get(self->requests, env->correlation_id)) != NULL &&
               !strcmp(req->sender, msg->receiver)) {
        admit__request_answered(self, req, msg->message_id);
    }
    hub_envelope_free(&env);
}
