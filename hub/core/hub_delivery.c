/* hub_delivery.c — getting queued envelopes to their receivers: early
 * delivery before the commit, the in-flight window and redelivery backoff,
 * the pump that reads a receiver's queue from the store, and the re-check
 * of agreements at delivery. */
#include "hub_core_internal.h"
#include "hub_cluster.h"
#include "hub_vec.h"

/* ------------------------------------------------------------------------ */
/* Durable delivery                                                          */

uint64_t delivery__backoff_us(const hub_server_t *self, uint32_t attempt)
{
    uint64_t delay = (uint64_t)self->cfg.redelivery_ms * 1000u;
    for (uint32_t i = 1; i < attempt && delay < 3600ull * 1000000u; i++)
        delay *= 2;
    return delay;
}

int delivery__inflight_add(hub_server_t *self, core__member_t *m, const hub_store_msg_t *msg,
                           uint32_t attempt)
{
    core__member_t *sender = members__member(self, msg->sender);
    if (core__grow((void **)&m->inflight, &m->inflight_cap, m->inflight_n + 1,
                   sizeof *m->inflight) != 0)
        return HUB_ENOMEM;
    /* Filled in place: the entry is ~340 bytes, the service usually short.
     * Kept in seq order: with several nodes (cluster) a queue read again
     * from its start may hand out a seq below one in flight. */
    size_t at = m->inflight_n;
    if (at > 0 && m->inflight[at - 1].seq > msg->seq) {
        while (at > 0 && m->inflight[at - 1].seq > msg->seq)
            at--;
        memmove(&m->inflight[at + 1], &m->inflight[at], (m->inflight_n - at) * sizeof *m->inflight);
    }
    m->inflight_n++;
    core__inflight_t *f = &m->inflight[at];
    f->seq = msg->seq;
    f->deadline_us = hub_monotonic_us() + delivery__backoff_us(self, attempt);
    f->attempt = attempt;
    f->settled = false;
    memcpy(f->message_id, msg->message_id, sizeof f->message_id);
    f->sender = sender ? sender->id : "";
    core__copy_str(f->service, sizeof f->service, msg->service);
    f->accepted_at_us = msg->accepted_at_us;
    m->inflight_open++;
    return 0;
}

core__inflight_t *delivery__inflight_find(core__member_t *m, uint64_t seq)
{
    size_t lo;
    HUB_VEC_LOWER_BOUND(m->inflight, m->inflight_n, seq, seq, lo);
    return (lo < m->inflight_n && m->inflight[lo].seq == seq) ? &m->inflight[lo] : NULL;
}

/* Drops settled entries from the array. */
void delivery__inflight_compact(core__member_t *m)
{
    size_t w = 0;
    for (size_t r = 0; r < m->inflight_n; r++) {
        if (!m->inflight[r].settled && w != r)
            m->inflight[w++] = m->inflight[r];
        else if (!m->inflight[r].settled)
            w++;
    }
    m->inflight_n = w;
    m->inflight_open = w;
}

void delivery__member_reset_delivery(core__member_t *m)
{
    m->inflight_n = 0;
    m->inflight_open = 0;
    m->loaded_seq = 0;
    m->backlog = true;
}

/* The store quotas a queued message from `sender` to `receiver` is held to. */
void delivery__quota_for(hub_server_t *self, core__member_t *sender, core__member_t *receiver,
                         hub_store_quota_t *q)
{
    admit__member_limits(self, sender);
    admit__member_limits(self, receiver);
    q->sender_msgs = sender->send_msgs;
    q->sender_bytes = sender->send_bytes;
    q->receiver_msgs = receiver->recv_msgs;
    q->receiver_bytes = receiver->recv_bytes;
}

/* The sentence of a QUOTA_EXCEEDED: whose quota, how much is held, what to do. */
void delivery__quota_nack(hub_server_t *self, core__receipts_t *r, const char *id,
                          const hub_store_msg_t *msg, hub_store_outcome_t outcome)
{
    bool as_sender = outcome == HUB_STORE_QUOTA_SENDER;
    const char *who = as_sender ? msg->sender : msg->receiver;
    hub_store_held_t held = {0, 0};
    hub_store_held(self->store, who, as_sender ? &held : NULL, as_sender ? NULL : &held);
    core__member_t *m = hub_map_get(self->members, who);
    uint64_t qm = m ? (as_sender ? m->send_msgs : m->recv_msgs) : 0;
    uint64_t qb = m ? (as_sender ? m->send_bytes : m->recv_bytes) : 0;
    if (as_sender)
        send__receipt_nack(self, r, id, LTH__V1__NACK_CODE__NACK_QUOTA_EXCEEDED,
                           "your quota in the hub's store is used up: %s holds %llu messages, "
                           "%llu bytes (its quota: %llu messages, %llu bytes, or less when the "
                           "store is nearly full); nothing was stored: send again once your "
                           "receivers have taken their messages, or ask the operator for a "
                           "larger 'limit'",
                           who, (unsigned long long)held.msgs, (unsigned long long)held.bytes,
                           (unsigned long long)qm, (unsigned long long)qb);
    else
        send__receipt_nack(self, r, id, LTH__V1__NACK_CODE__NACK_QUOTA_EXCEEDED,
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
bool delivery__still_allowed(hub_server_t *self, const hub_store_msg_t *msg)
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
    const char *why = check ? trust__forbidden(self, consumer, provider, env->service, &d) : NULL;
    bool ok = why == NULL;
    if (!ok) {
        char reason[HUB_STORE_REASON_MAX + 1];
        snprintf(reason, sizeof reason, "agreement ended before delivery: %s:%u", d.file, d.line);
        core__deadpol_t dp = {msg->seq, strdup(reason)};
        if (!dp.reason ||
            HUB__PUSH(self->dead_policy, self->dead_policy_n, self->dead_policy_cap, dp) != 0)
            free(dp.reason);
        HUB_WARN("router", "agreement ended before delivery: dead-lettered",
                 "seq=%llu sender=%s receiver=%s service=%s reason=\"%s\"",
                 (unsigned long long)msg->seq, msg->sender, msg->receiver, msg->service, why);
    }
    hub_envelope_free(&env);
    return ok;
}

/* True when the receiver settled seq and its store ack is still to come. */
static bool delivery__settled_find(const core__member_t *m, uint64_t seq)
{
    for (size_t i = 0; i < m->settled_n; i++)
        if (m->settled[i] == seq)
            return true;
    return false;
}

/* True when seq's store ack is being written by the commit in progress
 * (commit__start moved m->settled there): the row is still in the queue
 * until that commit ends, and a rescan must not hand it out again. */
static bool delivery__committing_find(const hub_server_t *self, const core__member_t *m,
                                      uint64_t seq)
{
    const core__commit_t *job = self->commit;
    if (!job)
        return false;
    for (size_t g = 0; g < job->n_acks; g++) {
        if (strcmp(job->acks[g].receiver, m->id) != 0)
            continue;
        for (size_t i = 0; i < job->acks[g].n; i++)
            if (job->acks[g].seqs[i] == seq)
                return true;
    }
    return false;
}

/* Hands queued messages to an online receiver while it has credit. */
void delivery__pump(hub_server_t *self, core__member_t *m)
{
    if (!m->online || !m->backlog || self->stopping)
        return;
    /* Several nodes hand out seqs from blocks of their own, so what another
     * node (or a late commit here) queued may sit below loaded_seq: a
     * notified queue is read from its start, skipping what is in flight. */
    bool cluster = self->cluster != NULL;
    uint64_t after = m->loaded_seq;
    if (cluster && m->rescan)
        after = 0;
    m->rescan = false;
    while (m->online && m->backlog && m->inflight_open < self->cfg.max_in_flight &&
           send__waiting(m) < self->cfg.max_waiting_bytes) {
        size_t want = self->cfg.max_in_flight - m->inflight_open;
        if (want > HUB__READ_BATCH)
            want = HUB__READ_BATCH;
        hub_store_msg_t *msgs = self->readbuf;
        size_t n = 0;
        hub_store_arena_reset(self->arena);
        int rc = hub_store_read_queue(self->store, m->id, after, want, msgs, &n, self->arena);
        if (rc == HUB_EAGAIN) { /* the store's database is away: it logs that once */
            HUB_DEBUG("store", "cannot read a receiver's queue now", "member=%s", m->id);
            return;
        }
        if (rc != 0) {
            HUB_ERROR("store", "cannot read a receiver's queue", "member=%s error=\"%s\"", m->id,
                      hub_strerror(rc));
            return;
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t attempt = msgs[i].attempts + 1;
            after = msgs[i].seq;
            if (cluster && (delivery__inflight_find(m, after) || delivery__settled_find(m, after) ||
                            delivery__committing_find(self, m, after)))
                continue;
            if (!delivery__still_allowed(self, &msgs[i])) {
                if (after > m->loaded_seq)
                    m->loaded_seq = after;
                continue;
            }
            if (send__enqueue_out(self, m, msgs[i].sender, msgs[i].seq, attempt, msgs[i].envelope,
                                  msgs[i].envelope_len) != 0 ||
                delivery__inflight_add(self, m, &msgs[i], attempt) != 0)
                return;
            outcome__delivered(self, &msgs[i], m->id, attempt == 1 ? "attempt 1" : "redelivery",
                               attempt == 1);
            if (after > m->loaded_seq)
                m->loaded_seq = after;
            if (cluster)
                admit__cluster_delivered(self, &msgs[i]);
        }
        if (n < want)
            m->backlog = false;
    }
}

/* Queues an envelope for the next group commit. Its seq was taken from
 * self->next_seq already (preset_seq), so that it can be delivered early.
 * It counts against its payer's share until its commit is done
 * (commit__after_commit). */
int delivery__pending_push(hub_server_t *self, core__pending_t *p)
{
    if (HUB__PUSH(self->pending, self->pending_n, self->pending_cap, *p) != 0)
        return HUB_ENOMEM;
    if (p->payer)
        p->payer->store_waiting++;
    if (!p->early) {
        core__member_t *r = members__member(self, p->msg.receiver);
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
 *     with its first ACK and not delivered again; other content under its
 *     id is refused with ID_REUSED by the commit); the store is asked only
 *     for envelopes that may be re-sends (HUB__FRESH_US). An envelope that
 *     looks fresh but reuses an old id with new content is therefore
 *     forwarded before the commit refuses it: the receiver sees an id it
 *     was given before (SDKs drop it), and asking the store for every
 *     envelope would cost the loop a read transaction each.
 * The receiver works while the store writes, so a round trip no longer
 * waits for the commits of request and reply in turn. Nothing is lost: the
 * sender is ACKed only after the commit, and if the hub stops before it,
 * the sender sends again and the receiver drops the duplicate by message
 * id (at-least-once delivery, as after any crash). A message the commit
 * then refuses (QUEUE_FULL, STORE_FULL, INTERNAL) has been seen by the
 * receiver and will come again when the sender retries. */
bool delivery__deliver_early(hub_server_t *self, const core__member_t *sender,
                             uint64_t created_at_us, core__member_t *rcv, core__pending_t *p)
{
    if (p->verify || !rcv->online || rcv->backlog || rcv->pending_late > 0 ||
        rcv->inflight_open >= self->cfg.max_in_flight ||
        send__waiting(rcv) + p->msg.envelope_len > self->cfg.max_waiting_bytes)
        return false;
    /* Clients send an envelope again after a reconnect, or when its
     * receipt is long overdue (the SDK: 30 s): only then can the store know
     * it already, so only then is it asked (a read on this thread). */
    uint64_t now = p->msg.accepted_at_us;
    bool fresh = created_at_us <= now + HUB__FRESH_US && now <= created_at_us + HUB__FRESH_US &&
                 now >= sender->connected_at_us + HUB__FRESH_US;
    uint64_t seq;
    hub_store_state_t state;
    if (!fresh && hub_store_lookup(self->store, p->msg.sender, p->msg.message_id, &seq, &state) !=
                      HUB_ENOTFOUND)
        return false;
    p->msg.seq = p->msg.preset_seq;
    /* Lent, not copied: the pending record keeps the bytes past this turn's
     * flush (the caller has made room for it in self->pending already). */
    if (send__enqueue_lent(self, rcv, p->msg.sender, p->msg.seq, 1, p->bytes,
                           p->msg.envelope_len) != 0)
        return false;
    if (delivery__inflight_add(self, rcv, &p->msg, 1) != 0)
        rcv->backlog = true; /* untracked: the next pump reads it from the store */
    if (p->msg.seq > rcv->loaded_seq)
        rcv->loaded_seq = p->msg.seq;
    p->early = true;
    outcome__delivered(self, &p->msg, rcv->id, "attempt 1, before the commit", true);
    return true;
}
