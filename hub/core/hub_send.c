/* hub_send.c — everything that leaves the hub: a member's Deliveries are
 * gathered during a loop turn and flushed at its end; receipts (ACK/NACK)
 * are built, held for a Deliveries frame to ride in, or sent; frames a slow
 * peer's pipe will not take wait here, counted against max_waiting_bytes. */
#include "hub_core_internal.h"

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */

/* Bytes waiting to leave for a member: gathered deliveries and frames its
 * ZeroMQ pipe would not take yet. */
uint64_t send__waiting(const core__member_t *m)
{
    return m->out_bytes + m->blocked_bytes;
}

void send__blocked_drop(core__member_t *m)
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
static int send__blocked_push(hub_server_t *self, core__member_t *m, uint8_t *buf, size_t len)
{
    if (m->blocked_n == m->blocked_cap) {
        size_t cap = m->blocked_cap ? 2 * m->blocked_cap : 8;
        core__blocked_t *ring = malloc(cap * sizeof *ring);
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
    m->blocked[(m->blocked_head + m->blocked_n++) % m->blocked_cap] = (core__blocked_t){buf, len};
    m->blocked_bytes += len;
    if (m->stalled_since_mono_us == 0)
        m->stalled_since_mono_us = hub_monotonic_us();
    if (!m->on_blocked_list) {
        m->on_blocked_list = true;
        m->next_blocked = self->blocked_list;
        self->blocked_list = m;
        if (!uv_is_active((uv_handle_t *)&self->retry_timer))
            uv_timer_start(&self->retry_timer, send__on_retry_timer, HUB__RETRY_MS, HUB__RETRY_MS);
    }
    return 0;
}

/* The code for a send to m that ZeroMQ refused: HUB_EAGAIN (pipe full), or
 * HUB_EZMQ (on EHOSTUNREACH the connection is gone: m goes offline). */
static int send__zmq_failed(core__member_t *m)
{
    int e = zmq_errno();
    if (e == EHOSTUNREACH) {
        HUB_INFO("router", "member connection gone", "member=%s", m->id);
        m->online = false;
        send__blocked_drop(m);
    }
    return e == EAGAIN ? HUB_EAGAIN : HUB_EZMQ;
}

/* One zmq send of an encoded frame: 0, HUB_EAGAIN (pipe full), or another
 * error (EHOSTUNREACH: the connection is gone and the member goes offline). */
static int send__zmq_send(hub_server_t *self, core__member_t *m, const uint8_t *buf, size_t len)
{
    if (zmq_send(self->router, m->rid, m->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(self->router, buf, len, ZMQ_DONTWAIT) < 0)
        return send__zmq_failed(m);
    m->bytes_out += len;
    return 0;
}

/* send__zmq_send() for a message of len bytes (kept by the caller on a
 * failure, given to ZeroMQ on success, when msg is emptied). */
static int send__zmq_send_msg(hub_server_t *self, core__member_t *m, zmq_msg_t *msg, size_t len)
{
    if (zmq_send(self->router, m->rid, m->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(msg, self->router, ZMQ_DONTWAIT) < 0)
        return send__zmq_failed(m);
    m->bytes_out += len;
    return 0;
}

/* Sends msg, an encoded frame packed straight into the message ZeroMQ
 * sends (no buffer of our own, no copy of a frame of up to a MiB into
 * zmq_send's), to m's live connection; msg is closed in every case. A
 * frame its pipe will not take yet is copied into m's blocked queue (see
 * send__frame). */
static int send__msg(hub_server_t *self, core__member_t *m, zmq_msg_t *msg)
{
    size_t len = zmq_msg_size(msg);
    if (m->blocked_n == 0) {
        int rc = send__zmq_send_msg(self, m, msg, len);
        /* Any call on the socket, a failed send too, may consume the edge
         * of ZMQ_FD: the watcher looks at ZMQ_EVENTS again at the end of
         * this loop turn (one system call per turn, not per frame). */
        self->router_kick_due = true;
        if (rc != HUB_EAGAIN) {
            zmq_msg_close(msg);
            return rc;
        }
    }
    uint8_t *buf = malloc(len ? len : 1);
    if (buf)
        memcpy(buf, zmq_msg_data(msg), len);
    zmq_msg_close(msg);
    if (!buf)
        return HUB_ENOMEM;
    return send__blocked_push(self, m, buf, len);
}

/* Sends one frame to a member's live connection. A frame its pipe will not
 * take yet waits, in order, in the member's blocked queue (counted against
 * max_waiting_bytes), and is offered again every HUB__RETRY_MS; a member
 * that takes nothing for drain_timeout_ms is cut off (server__housekeeping).
 * EHOSTUNREACH means the connection is gone: the member goes offline and
 * its unsettled deliveries stay in the store. */
int send__frame(hub_server_t *self, core__member_t *m, hub_frame_t *frame)
{
    if (!m->online || m->rid_len == 0)
        return HUB_ECLOSED;
    frame->protocol_version = HUB_PROTOCOL_VERSION;
    size_t len;
    if (m->blocked_n > 0) {
        uint8_t *buf;
        int rc = hub_frame_encode(frame, &buf, &len);
        if (rc != 0)
            return rc;
        return send__blocked_push(self, m, buf, len);
    }
    len = protobuf_c_message_get_packed_size(&frame->base);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, len ? len : 1) != 0)
        return HUB_ENOMEM;
    protobuf_c_message_pack(&frame->base, zmq_msg_data(&msg));
    return send__msg(self, m, &msg);
}

/* ------------------------------------------------------------------------ */
/* Deliveries frames, encoded by hand                                       */

static size_t send__varint_len(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

static uint8_t *send__varint_put(uint8_t *p, uint64_t v)
{
    for (; v >= 0x80; v >>= 7)
        *p++ = (uint8_t)(v | 0x80);
    *p++ = (uint8_t)v;
    return p;
}

/* The encoded size of one lth.v1.DeliveredEnvelope (without its key and
 * length in the Deliveries). */
static size_t send__item_len(const core__outitem_t *it)
{
    size_t n = 0;
    if (it->seq)
        n += 1 + send__varint_len(it->seq);
    if (it->len)
        n += 1 + send__varint_len(it->len) + it->len;
    if (it->attempt)
        n += 1 + send__varint_len(it->attempt);
    if (it->has_sign_key)
        n += 2 + sizeof it->sign_key;
    return n;
}

/* A Frame of protocol version 1 with a Deliveries body of items[0..n) and
 * the receipts rec (NULL: none), packed into msg: the bytes protobuf-c
 * would give (fields in number order, proto3 defaults left out; the unit
 * test compares them), without its copies. protobuf-c packs each nested
 * message after one byte of room for its length and moves it along when
 * the length takes more: every envelope of 128 bytes or more, then the
 * whole Deliveries. Here each length is known first, and each envelope is
 * copied once, into the message ZeroMQ sends. */
int send__deliveries_pack(const core__outitem_t *items, size_t n, const Lth__V1__Receipts *rec,
                          zmq_msg_t *msg)
{
    size_t body = 0;
    for (size_t i = 0; i < n; i++) {
        size_t il = send__item_len(&items[i]);
        body += 1 + send__varint_len(il) + il;
    }
    size_t rlen = rec ? protobuf_c_message_get_packed_size(&rec->base) : 0;
    if (rec)
        body += 1 + send__varint_len(rlen) + rlen;
    size_t total = 2 + 1 + send__varint_len(body) + body;
    if (zmq_msg_init_size(msg, total) != 0)
        return HUB_ENOMEM;
    uint8_t *p = zmq_msg_data(msg);
    *p++ = (1u << 3) | 0u; /* protocol_version */
    *p++ = HUB_PROTOCOL_VERSION;
    *p++ = (6u << 3) | 2u; /* deliveries */
    p = send__varint_put(p, body);
    for (size_t i = 0; i < n; i++) {
        const core__outitem_t *it = &items[i];
        *p++ = (1u << 3) | 2u; /* items */
        p = send__varint_put(p, send__item_len(it));
        if (it->seq) {
            *p++ = (1u << 3) | 0u; /* hub_seq */
            p = send__varint_put(p, it->seq);
        }
        if (it->len) {
            *p++ = (2u << 3) | 2u; /* envelope */
            p = send__varint_put(p, it->len);
            memcpy(p, it->bytes, it->len);
            p += it->len;
        }
        if (it->attempt) {
            *p++ = (3u << 3) | 0u; /* attempt */
            p = send__varint_put(p, it->attempt);
        }
        if (it->has_sign_key) {
            *p++ = (4u << 3) | 2u; /* sender_sign_key */
            *p++ = (uint8_t)sizeof it->sign_key;
            memcpy(p, it->sign_key, sizeof it->sign_key);
            p += sizeof it->sign_key;
        }
    }
    if (rec) {
        *p++ = (2u << 3) | 2u; /* receipts */
        p = send__varint_put(p, rlen);
        protobuf_c_message_pack(&rec->base, p); /* rlen bytes: the end of msg */
    }
    return 0;
}

/* Offers waiting frames again, oldest first, to every member that has any. */
static void send__retry_blocked(hub_server_t *self)
{
    core__member_t **link = &self->blocked_list;
    bool tried = false;
    while (*link) {
        core__member_t *m = *link;
        while (m->online && m->blocked_n > 0) {
            core__blocked_t *b = &m->blocked[m->blocked_head];
            tried = true;
            if (send__zmq_send(self, m, b->buf, b->len) != 0)
                break;
            m->blocked_bytes -= b->len;
            free(b->buf);
            m->blocked_head = (m->blocked_head + 1) % m->blocked_cap;
            m->blocked_n--;
            m->stalled_since_mono_us = hub_monotonic_us(); /* it is draining */
        }
        if (!m->online)
            send__blocked_drop(m);
        if (m->blocked_n == 0) {
            m->stalled_since_mono_us = 0;
            m->on_blocked_list = false;
            *link = m->next_blocked;
            m->next_blocked = NULL;
        } else {
            link = &m->next_blocked;
        }
    }
    /* Even a failed send may consume ZMQ_FD's edge (and the peer's
     * "room again" command arrives the same way): look again, at the end
     * of this turn. */
    (void)tried;
    self->router_kick_due = true;
    if (!self->blocked_list)
        uv_timer_stop(&self->retry_timer);
}

void send__on_retry_timer(uv_timer_t *t)
{
    send__retry_blocked(t->data);
}

/* A frame-level refusal to a connection identified only by routing id. */
void send__error_rid(hub_server_t *self, const uint8_t *rid, size_t rid_len, int code,
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
    self->router_kick_due = true;
    if (code > 0 && code < 32)
        self->stats.nacks_by_code[code]++;
}

int send__receipts_init(core__receipts_t *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    if (cap == 0)
        cap = 1;
    r->cap = cap;
    r->acks = calloc(cap, sizeof *r->acks);
    r->ack_ptrs = calloc(cap, sizeof *r->ack_ptrs);
    r->ack_ids = malloc(cap * sizeof *r->ack_ids);
    r->nacks = calloc(cap, sizeof *r->nacks);
    r->nack_ptrs = calloc(cap, sizeof *r->nack_ptrs);
    r->reasons = calloc(cap, sizeof *r->reasons);
    return (r->acks && r->ack_ptrs && r->ack_ids && r->nacks && r->nack_ptrs && r->reasons)
               ? 0
               : HUB_ENOMEM;
}

void send__receipts_free(core__receipts_t *r)
{
    for (size_t i = 0; i < r->n_acks; i++)
        if (r->acks[i].message_id != r->ack_ids[i])
            free(r->acks[i].message_id);
    for (size_t i = 0; i < r->n_nacks; i++) {
        free(r->reasons[i]);
        free(r->nacks[i].message_id);
    }
    free(r->acks);
    free(r->ack_ptrs);
    free(r->ack_ids);
    free(r->nacks);
    free(r->nack_ptrs);
    free(r->reasons);
}

void send__receipt_ack(core__receipts_t *r, const char *message_id, uint64_t seq)
{
    send__receipt_ack_routed(r, message_id, seq, NULL);
}

/* routed_to: an interned member id (lives as long as the server), or NULL. */
void send__receipt_ack_routed(core__receipts_t *r, const char *message_id, uint64_t seq,
                              const char *routed_to)
{
    if (r->n_acks >= r->cap)
        return;
    Lth__V1__Ack *a = &r->acks[r->n_acks];
    lth__v1__ack__init(a);
    size_t len = strlen(message_id);
    if (len <= HUB_UUID_LEN) { /* every valid id: no allocation per ACK */
        a->message_id = memcpy(r->ack_ids[r->n_acks], message_id, len + 1);
    } else {
        a->message_id = strdup(message_id);
        if (!a->message_id)
            return;
    }
    a->hub_seq = seq;
    if (routed_to)
        a->routed_to = (char *)routed_to;
    r->ack_ptrs[r->n_acks++] = a;
}

/* A flooding member must not flood the log too: at most
 * HUB__REFUSAL_LOGS_PER_S refusal lines a second per member, then a count. */
bool send__refusal_log_ok(hub_server_t *self, core__member_t *m)
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
bool send__receipt_add_nack(hub_server_t *self, core__receipts_t *r, const char *message_id,
                            int code, const char *reason)
{
    self->stats.envelopes_nacked++;
    if (code > 0 && code < 32)
        self->stats.nacks_by_code[code]++;
    core__member_t *sm = r->sender ? hub_map_get(self->members, r->sender) : NULL;
    if (sm)
        sm->refusals++;
    if (r->n_nacks >= r->cap)
        return false;
    Lth__V1__Nack *n = &r->nacks[r->n_nacks];
    lth__v1__nack__init(n);
    n->message_id = strdup(message_id ? message_id : "");
    n->code = (Lth__V1__NackCode)code;
    /* An item whose message_id could not be read is named by its place in
     * the Batch (1-based). */
    n->batch_item = message_id && *message_id ? 0 : r->item;
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

/* A refusal: the NACK, then its outcome (audit record, flow, log line:
 * outcome__refused). */
void send__receipt_nack(hub_server_t *self, core__receipts_t *r, const char *message_id, int code,
                        const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (!send__receipt_add_nack(self, r, message_id, code, reason))
        return;
    outcome__refused(self, r, message_id, code, reason);
}

/* Sends one Receipts frame (nothing when both lists are empty). */
static void send__receipts_frame(hub_server_t *self, core__member_t *m, Lth__V1__Ack **acks,
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
    send__frame(self, m, &frame);
}

void send__receipts_send(hub_server_t *self, core__member_t *m, core__receipts_t *r)
{
    send__receipts_frame(self, m, r->ack_ptrs, r->n_acks, r->nack_ptrs, r->n_nacks);
}

/* Queues an envelope for the member's next Deliveries frame. */
static int send__enqueue(hub_server_t *self, core__member_t *m, const char *sender, uint64_t seq,
                         uint32_t attempt, uint8_t *bytes, size_t len, bool lent)
{
    core__outitem_t item = {seq, attempt, bytes, len, {0}, false, lent};
    const hub_keypair_t *kp = self->last_sender_key;
    if (!kp || self->last_sender_gen != self->keys_gen || strcmp(sender, kp->member_id) != 0) {
        kp = !strcmp(sender, self->own_key.member_id) ? &self->own_key
                                                       : hub_keydir_find_member(self->keys, sender);
        self->last_sender_key = kp;
        self->last_sender_gen = self->keys_gen;
    }
    if (kp && kp->has_sign) {
        memcpy(item.sign_key, kp->sign_public, 32);
        item.has_sign_key = true;
    }
    if (HUB__PUSH(m->out, m->out_n, m->out_cap, item) != 0)
        return HUB_ENOMEM;
    m->out_bytes += len;
    if (!m->dirty) {
        m->dirty = true;
        m->next_dirty = self->dirty_head;
        self->dirty_head = m;
    }
    return 0;
}

int send__enqueue_out(hub_server_t *self, core__member_t *m, const char *sender, uint64_t seq,
                      uint32_t attempt, const uint8_t *bytes, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return HUB_ENOMEM;
    memcpy(copy, bytes, len);
    int rc = send__enqueue(self, m, sender, seq, attempt, copy, len, false);
    if (rc != 0)
        free(copy);
    return rc;
}

int send__enqueue_lent(hub_server_t *self, core__member_t *m, const char *sender, uint64_t seq,
                       uint32_t attempt, uint8_t *bytes, size_t len)
{
    return send__enqueue(self, m, sender, seq, attempt, bytes, len, true);
}

/* The member's held ACKs as one array of pointers (malloc'ed; NULL when
 * none are held or memory is short). */
static Lth__V1__Ack **send__held_acks(core__member_t *m, size_t *n)
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
static void send__held_send(hub_server_t *self, core__member_t *m)
{
    size_t n;
    Lth__V1__Ack **acks = send__held_acks(m, &n);
    if (acks)
        send__receipts_frame(self, m, acks, n, NULL, 0);
    free(acks);
    members__held_free(m);
}

static void send__flush_member(hub_server_t *self, core__member_t *m)
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
        /* Held ACKs ride along (Hello.receipts_in_deliveries). */
        Lth__V1__Receipts rec = LTH__V1__RECEIPTS__INIT;
        Lth__V1__Ack **acks = m->held_n ? send__held_acks(m, &rec.n_acks) : NULL;
        rec.acks = acks;
        zmq_msg_t msg;
        if (m->online && m->rid_len > 0 &&
            send__deliveries_pack(&m->out[done], n, acks ? &rec : NULL, &msg) == 0 &&
            send__msg(self, m, &msg) == 0) {
            m->msgs_out += n;
            self->stats.deliveries += n;
        }
        if (acks) {
            free(acks);
            members__held_free(m);
        }
        done += n;
    }
    for (size_t i = 0; i < m->out_n; i++)
        if (!m->out[i].lent)
            free(m->out[i].bytes);
    m->out_n = 0;
    m->out_bytes = 0;
}

void send__flush_all(hub_server_t *self)
{
    if (self->blocked_list)
        send__retry_blocked(self);
    while (self->dirty_head) {
        core__member_t *m = self->dirty_head;
        self->dirty_head = m->next_dirty;
        m->dirty = false;
        m->next_dirty = NULL;
        send__flush_member(self, m);
    }
}

/* Receipts for online-only and refused envelopes wait for the end of the
 * loop turn, after the turn's deliveries: the receiver's copy leaves first
 * (it is what the round trip waits for), and a sender gets one Receipts
 * frame for all its Batch frames of the turn. */
void send__turn_receipts_send(hub_server_t *self)
{
    for (size_t i = 0; i < self->turn_rcpt_n; i++) {
        if (!self->turn_rcpt[i].m)
            continue; /* held */
        send__receipts_send(self, self->turn_rcpt[i].m, &self->turn_rcpt[i].r);
        send__receipts_free(&self->turn_rcpt[i].r);
    }
    self->turn_rcpt_n = 0;
}

/* Moves this turn's ACK-only receipts of members that take receipts in
 * Deliveries frames to those members, before the turn's deliveries are
 * flushed (which then carry them). */
void send__turn_receipts_hold(hub_server_t *self)
{
    uint64_t now = 0;
    for (size_t i = 0; i < self->turn_rcpt_n; i++) {
        core__member_t *m = self->turn_rcpt[i].m;
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
void send__on_held_timer(uv_timer_t *t)
{
    hub_server_t *self = t->data;
    uint64_t now = hub_monotonic_us();
    core__member_t **link = &self->held_head;
    while (*link) {
        core__member_t *m = *link;
        if (m->held_n > 0 && now - m->held_since_mono_us >= HUB__HOLD_RECEIPTS_US)
            send__held_send(self, m);
        if (m->held_n == 0) {
            *link = m->next_held;
            m->next_held = NULL;
            m->on_held_list = false;
        } else {
            link = &m->next_held;
        }
    }
    if (self->held_head)
        uv_timer_start(&self->held_timer, send__on_held_timer, 1, 0);
}
