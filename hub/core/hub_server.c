/* hub_server.c — hubd's life cycle and dispatch: creates and destroys the
 * server, reads frames from the ROUTER and hands each to its stage (Hello,
 * Batch -> hub_admit.c, Settle, Heartbeat), runs the timers (housekeeping,
 * redelivery, expiry) and the reloads (SIGHUP); the operator surface's view
 * of the hub is hub_server_ops.c. See hub_core_internal.h for the map of the
 * stages. */
#include "hub_core_internal.h"
#include "hub_cluster.h"
#include "hub_vec.h"

/* ------------------------------------------------------------------------ */
/* Frames from members                                                       */

static void server__on_hello(hub_server_t *self, core__member_t *m, const uint8_t *rid,
                             size_t rid_len, const Lth__V1__Hello *hello)
{
    if (hello->protocol_version < HUB_PROTOCOL_VERSION) {
        send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_UNSUPPORTED_VERSION,
                        "this hub speaks protocol version 1; upgrade the client");
        return;
    }
    if (hello->member_id[0] && strcmp(hello->member_id, m->id) != 0) {
        char reason[700];
        snprintf(reason, sizeof reason,
                 "hello claims member %.255s but this connection's key belongs to %s; use the "
                 "key file of the member you are",
                 hello->member_id, m->id);
        send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_SENDER_MISMATCH, reason);
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
            send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME, reason);
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
            send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME, reason);
            return;
        }
    }
    /* Refused subscriptions are named in the Welcome (and, for older
     * clients, in a frame-level FORBIDDEN error each). */
    Lth__V1__Nack *refused = calloc(hello->n_subscriptions + 1, sizeof *refused);
    Lth__V1__Nack **refused_ptrs = calloc(hello->n_subscriptions + 1, sizeof *refused_ptrs);
    size_t n_refused = 0;
    for (size_t i = 0; i < hello->n_subscriptions; i++) {
        /* A subscription is a standing call: it needs an agreement with the
         * publisher for that service, like a request would. */
        if (self->policy) {
            const char *topic = hello->subscriptions[i], *svc;
            char publisher[HUB_MEMBER_ID_MAX + 1];
            hub_member_service_split(topic, publisher, &svc); /* checked above */
            hub_policy_decision_t d;
            const char *why = trust__forbidden(self, m->id, publisher, svc, &d);
            if (why) {
                char reason[HUB_POLICY_REASON_MAX + 64];
                snprintf(reason, sizeof reason, "subscription %s refused: %s", topic, why);
                send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_FORBIDDEN, reason);
                if (refused && refused_ptrs) {
                    Lth__V1__Nack *n = &refused[n_refused];
                    lth__v1__nack__init(n);
                    n->message_id = (char *)topic;
                    n->code = LTH__V1__NACK_CODE__NACK_FORBIDDEN;
                    n->reason = strdup(why);
                    if (n->reason)
                        refused_ptrs[n_refused++] = n;
                }
                continue;
            }
        }
        int added = pubsub__subscribe(self, m->id, hello->subscriptions[i]);
        if (added > 0) {
            subs_changed = true;
            HUB_INFO("router", "durable subscription added", "member=%s topic=%s", m->id,
                     hello->subscriptions[i]);
        }
    }
    if (subs_changed && pubsub__save_subscriptions(self) != 0)
        HUB_ERROR("router", "cannot save subscriptions; they hold until hubd restarts", "path=%s",
                  self->subs_path);
    char *services = calloc(1, total);
    if (!services) {
        for (size_t i = 0; i < n_refused; i++)
            free(refused[i].reason);
        free(refused);
        free(refused_ptrs);
        return;
    }
    for (size_t i = 0; i < hello->n_services; i++) {
        if (i)
            strcat(services, ",");
        strcat(services, hello->services[i]);
    }
    free(m->services);
    m->services = services;
    bool was_online = m->online;
    members__held_free(m); /* receipts of the previous connection: its envelopes come again */
    send__blocked_drop(m); /* frames for the previous connection: what is durable comes again */
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
    delivery__member_reset_delivery(m);
    /* What went to the previous connection before its commit comes again
     * after that commit, in order: until then nothing is delivered early. */
    core__commit_t *running = self->commit;
    for (int k = 0; k < 2; k++) {
        core__pending_t *items = k == 0 ? self->pending : running ? running->items : NULL;
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
    members__audit_q(self, HUB_AUDIT_MEMBER_CONNECTED, NULL, 0, m->id, NULL, NULL, services);
    cluster__member_online(self, m->id); /* several nodes: the others learn it now */

    Lth__V1__Welcome welcome = LTH__V1__WELCOME__INIT;
    welcome.member_id = m->id;
    welcome.hub_version = HUB_VERSION;
    welcome.max_payload_bytes = self->cfg.max_payload_bytes;
    welcome.heartbeat_ms = self->cfg.heartbeat_ms;
    welcome.signatures_required = self->cfg.require_signatures;
    welcome.hub_id = self->own_key.member_id;
    welcome.refused_subscriptions = refused_ptrs;
    welcome.n_refused_subscriptions = n_refused;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_WELCOME;
    frame.welcome = &welcome;
    send__frame(self, m, &frame);
    for (size_t i = 0; i < n_refused; i++)
        free(refused[i].reason);
    free(refused);
    free(refused_ptrs);
    delivery__pump(self, m);
}

static void server__on_batch(hub_server_t *self, core__member_t *m, const Lth__V1__Batch *batch)
{
    core__receipts_t receipts;
    if (send__receipts_init(&receipts, batch->n_envelopes) != 0) {
        send__receipts_free(&receipts);
        return;
    }
    receipts.sender = m->id;
    size_t limited = 0;
    char why[HUB__WHY_MAX];
    size_t n = batch->n_envelopes;
    /* Memory fetched ahead of admission, which would otherwise wait for
     * it: an envelope's first bytes three items ahead, its request-table
     * slot two ahead, the request in that slot one ahead. */
    uint64_t hash_next = /* item i + 1's */
        n > 1 ? admit__prefetch_slot(self, batch->envelopes[1].data, batch->envelopes[1].len) : 0;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCBinaryData *e = &batch->envelopes[i];
        if (i + 3 < n && e[3].data) {
            __builtin_prefetch(e[3].data);
            __builtin_prefetch(e[3].data + 64);
        }
        admit__prefetch_request(self, hash_next);
        hash_next = i + 2 < n ? admit__prefetch_slot(self, e[2].data, e[2].len) : 0;
        /* Over its rate, an envelope is refused before it costs anything
         * more: no decoding, and one audit record and log line per batch,
         * so that a flood is cheap to turn away. */
        if (admit__rate_check(self, m, e->len, why) != 0) {
            receipts.item = (uint32_t)i + 1;
            char id[HUB_UUID_LEN + 1];
            hub_envelope_peek_id(e->data, e->len, id);
            send__receipt_add_nack(self, &receipts, id, LTH__V1__NACK_CODE__NACK_RATE_LIMITED, why);
            limited++;
            continue;
        }
        receipts.item = (uint32_t)i + 1;
        admit__route_envelope(self, m, e->data, e->len, &receipts);
    }
    receipts.item = 0;
    outcome__passed_flush(self); /* the flows are up to date between frames */
    self->turn_envelopes += batch->n_envelopes;
    if (limited) {
        char summary[HUB__WHY_MAX + 64];
        snprintf(summary, sizeof summary, "RATE_LIMITED: %zu envelopes of one batch: %s", limited,
                 why);
        core__evidence_t ev;
        memset(&ev, 0, sizeof ev);
        ev.outcome = "RATE_LIMITED";
        members__audit_q_ev(self, HUB_AUDIT_NACKED, "", 0, m->id, NULL, NULL, summary, &ev);
        if (send__refusal_log_ok(self, m))
            HUB_INFO("router", "envelopes refused", "member=%s code=RATE_LIMITED count=%zu", m->id,
                     limited);
        flood__note(self, m, limited);
        if (!m->online) {
            send__receipts_free(&receipts);
            return;
        }
    }
    if (receipts.n_acks == 0 && receipts.n_nacks == 0) {
        send__receipts_free(&receipts); /* all queued: answered after the commit */
        return;
    }
    core__turnrcpt_t t = {m, receipts};
    if (HUB__PUSH(self->turn_rcpt, self->turn_rcpt_n, self->turn_rcpt_cap, t) != 0) {
        send__receipts_send(self, m, &receipts);
        send__receipts_free(&receipts);
    }
}

/* A settle for an envelope delivered early whose commit has not started:
 * it is marked settled (commit__start) and needs no store ack. Pending
 * envelopes are in seq order (their seqs were handed out as they came). */
static bool server__settle_pending(hub_server_t *self, const core__member_t *m, uint64_t seq)
{
    size_t lo;
    HUB_VEC_LOWER_BOUND(self->pending, self->pending_n, msg.preset_seq, seq, lo);
    if (lo == self->pending_n)
        return false;
    core__pending_t *p = &self->pending[lo];
    if (p->msg.preset_seq != seq || !p->early || strcmp(p->msg.receiver, m->id) != 0)
        return false;
    p->msg.settled = true;
    return true;
}

static void server__on_settle(hub_server_t *self, core__member_t *m, const Lth__V1__Settle *settle)
{
    for (size_t i = 0; i < settle->n_hub_seqs; i++) {
        uint64_t seq = settle->hub_seqs[i];
        core__inflight_t *f = delivery__inflight_find(m, seq);
        if (f && !f->settled) {
            f->settled = true;
            m->inflight_open--;
            outcome__settled(self, m, f, seq);
        } else if (!f) {
            outcome__settled(self, m, NULL, seq);
        }
        /* Settle even what is not in flight here (e.g. a delivery made before
         * a hub restart): the store ignores seqs that are not queued. Only a
         * receiver's own queue can be settled by it. */
        if (server__settle_pending(self, m, seq)) {
            self->stats.settled++;
            continue;
        }
        if (m->settled_n == 0)
            self->members_with_settles++;
        if (HUB__PUSH(m->settled, m->settled_n, m->settled_cap, seq) == 0)
            self->stats.settled++;
    }
    /* Deliveries the receiver's handler refused for good (Settle.rejects):
     * dead-lettered with its reason. Only its own deliveries in flight on
     * this connection: a seq it names is checked against them, so that no
     * member can dead-letter another's messages. */
    for (size_t i = 0; i < settle->n_rejects; i++) {
        const Lth__V1__Reject *rj = settle->rejects[i];
        core__inflight_t *f = rj ? delivery__inflight_find(m, rj->hub_seq) : NULL;
        if (!f || f->settled)
            continue;
        f->settled = true;
        m->inflight_open--;
        /* The store cuts reasons to HUB_STORE_REASON_MAX (at a UTF-8 boundary). */
        char reason[HUB_MEMBER_ID_MAX + 320];
        snprintf(reason, sizeof reason, "refused by %s: %.256s", m->id,
                 rj->reason && *rj->reason ? rj->reason : "no reason given");
        core__deadpol_t dp = {rj->hub_seq, strdup(reason)};
        if (!dp.reason ||
            HUB__PUSH(self->dead_policy, self->dead_policy_n, self->dead_policy_cap, dp) != 0)
            free(dp.reason);
    }
    if (m->inflight_n > 0 && m->inflight_open * 2 < m->inflight_n)
        delivery__inflight_compact(m);
    delivery__pump(self, m);
}

static void server__on_heartbeat(hub_server_t *self, core__member_t *m, const uint8_t *rid,
                                 size_t rid_len, const Lth__V1__Heartbeat *hb)
{
    Lth__V1__Heartbeat echo = LTH__V1__HEARTBEAT__INIT;
    echo.sent_at_us = hb->sent_at_us;
    echo.echo = true;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &echo;
    if (m->online && m->rid_len == rid_len && memcmp(m->rid, rid, rid_len) == 0) {
        send__frame(self, m, &frame);
        return;
    }
    /* Not registered on this connection: tell the client to say hello. */
    send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_HELLO_REQUIRED,
                    "send a Hello first: the hub does not know this connection (it may "
                    "have restarted)");
}

static void server__on_message(hub_server_t *self, const uint8_t *rid, size_t rid_len,
                               zmq_msg_t *body)
{
    self->stats.frames_in++;
    /* The sender is whoever owns the CURVE key this connection proved; the
     * ZAP handler put that key in User-Id. The key is looked up again on
     * every message so that a key removed on reload is cut off at once. */
    const char *key = zmq_msg_gets(body, "User-Id");
    const hub_keypair_t *kp = key ? hub_keydir_find_key(self->keys, key) : NULL;
    if (!kp) {
        send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_FORBIDDEN,
                        "this member's key is no longer admitted (removed from the key "
                        "directory, or its certificate expired or was revoked); ask the hub "
                        "operator");
        return;
    }
    core__member_t *m = members__member(self, kp->member_id);
    if (!m)
        return;
    uint64_t now_mono = hub_monotonic_us();
    if (flood__banned(self, m, now_mono)) {
        /* Cut off for flooding: what was already on its way is dropped
         * unread (the connection is closing). */
        self->stats.frames_dropped_unread++;
        return;
    }
    self->current_fd = zmq_msg_get(body, ZMQ_SRCFD);
    flood__seen(self, m);
    m->last_seen_mono_us = now_mono;
    m->last_seen_us = hub_now_us();
    self->current_peer = zmq_msg_gets(body, "Peer-Address");

    hub_frame_t *frame = NULL;
    hub_arena_mark_t mark = hub_arena_mark(&self->turn_arena);
    self->turn_lent = false;
    const uint8_t *data = zmq_msg_data(body);
    size_t size = zmq_msg_size(body);
    /* A Batch is read in place when the message can be kept to the end of
     * the turn for the deliveries that borrow its envelopes: room for it
     * first, and a message large enough not to live inside its zmq_msg_t
     * (whose data would move with it). */
    hub_frame_t view_frame = LTH__V1__FRAME__INIT;
    Lth__V1__Batch view_batch;
    bool in_place = size > 64 &&
                    core__grow((void **)&self->turn_msgs, &self->turn_msgs_cap,
                               self->turn_msgs_n + 1, sizeof *self->turn_msgs) == 0 &&
                    view__batch(&self->turn_arena, data, size, &view_frame.protocol_version,
                                       &view_batch);
    int rc = 0;
    if (in_place) {
        view_frame.body_case = LTH__V1__FRAME__BODY_BATCH;
        view_frame.batch = &view_batch;
        frame = &view_frame;
    } else {
        hub_arena_release(&self->turn_arena, mark);
        rc = hub_frame_decode_in(&self->turn_arena, data, size, &frame);
    }
    if (rc != 0) {
        hub_arena_release(&self->turn_arena, mark);
        self->stats.malformed_frames++;
        send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME,
                        "the message is not an encoded lth.v1.Frame with a body; see "
                        "proto/README.md for the framing");
        HUB_INFO("router", "malformed frame", "member=%s bytes=%zu", m->id, zmq_msg_size(body));
        return;
    }
    if (frame->protocol_version != HUB_PROTOCOL_VERSION) {
        send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_UNSUPPORTED_VERSION,
                        "this hub speaks protocol version 1; set Frame.protocol_version = 1");
        hub_arena_release(&self->turn_arena, mark);
        return;
    }
    bool registered = m->online && m->rid_len == rid_len && memcmp(m->rid, rid, rid_len) == 0;
    switch (frame->body_case) {
    case LTH__V1__FRAME__BODY_HELLO: server__on_hello(self, m, rid, rid_len, frame->hello); break;
    case LTH__V1__FRAME__BODY_HEARTBEAT:
        server__on_heartbeat(self, m, rid, rid_len, frame->heartbeat);
        break;
    case LTH__V1__FRAME__BODY_BATCH:
    case LTH__V1__FRAME__BODY_SETTLE:
        if (!registered) {
            send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_HELLO_REQUIRED,
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
            server__on_batch(self, m, frame->batch);
        else
            server__on_settle(self, m, frame->settle);
        break;
    default:
        self->stats.malformed_frames++;
        send__error_rid(self, rid, rid_len, LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME,
                        "clients may send only Hello, Batch, Settle and Heartbeat frames");
        break;
    }
    /* The frame goes with the arena: at the end of the turn when a
     * delivery borrows bytes of it, now otherwise. */
    if (self->turn_lent) {
        self->turn_lent_bytes += size;
        if (in_place) { /* room was made above */
            zmq_msg_t *kept = &self->turn_msgs[self->turn_msgs_n++];
            zmq_msg_init(kept);
            zmq_msg_move(kept, body);
        }
    } else {
        hub_arena_release(&self->turn_arena, mark);
    }
    self->turn_lent = false;
}

/* The Batch messages kept for this turn's deliveries (server__on_message). */
static void server__turn_msgs_close(hub_server_t *self)
{
    for (size_t i = 0; i < self->turn_msgs_n; i++)
        zmq_msg_close(&self->turn_msgs[i]);
    self->turn_msgs_n = 0;
}

static void server__on_router_readable(hub_zsock_t *zs, void *socket, void *user)
{
    (void)zs;
    hub_server_t *self = user;
    self->turn_envelopes = 0;
    for (int n = 0;
         n < HUB__DRAIN_BUDGET && !self->stopping && self->turn_envelopes < HUB__TURN_ENVELOPES &&
         self->turn_lent_bytes < HUB__TURN_LENT_MAX;
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
            send__error_rid(self, zmq_msg_data(&rid), zmq_msg_size(&rid),
                            LTH__V1__NACK_CODE__NACK_MALFORMED_FRAME,
                            "send exactly one ZeroMQ frame per message; see proto/README.md");
        } else if (ok && zmq_msg_size(&rid) <= 255) {
            server__on_message(self, zmq_msg_data(&rid), zmq_msg_size(&rid), &body);
        }
        zmq_msg_close(&body);
        zmq_msg_close(&rid);
    }
    /* What this turn enqueued leaves at its end (server__end_of_turn). */
}

/* The end of every loop turn (redis's beforeSleep), whichever handlers ran
 * in it (frames read, timers, a commit done, an operator's replay): they
 * only enqueue; here ACK-only receipts are moved to the Deliveries frames
 * they ride in, the turn's deliveries are flushed, the other receipts sent
 * (after the deliveries: the receiver's copy is what a round trip waits
 * for), and a group commit of what is pending starts.
 *
 * It runs twice a turn, which costs nothing when nothing was enqueued: as
 * a uv_check_t, after the I/O callbacks, and as a uv_prepare_t, right before
 * the loop blocks for I/O. The second is what redis's beforeSleep is: frames
 * read by the watcher's uv_idle_t (input left over from an earlier read, or
 * found by a kick after a send) and work done by timers run before the poll;
 * with the check alone their deliveries waited in the loop until the next
 * wake-up (the next frame, a finished commit or a timer: up to 100 ms), which
 * cost the durable one-in-flight round trip ~15% of its rate (BENCHMARKS.md,
 * "Single-in-flight latency"). */
static void server__end_of_turn(hub_server_t *self)
{
    /* Online-only exchanges are in the audit log before they leave. */
    outcome__audit_online(self);
    outcome__passed_flush(self);
    send__turn_receipts_hold(self);
    send__flush_all(self);
    /* Every delivery that borrowed frame bytes has been encoded. */
    hub_arena_reset(&self->turn_arena);
    server__turn_msgs_close(self);
    self->turn_lent_bytes = 0;
    send__turn_receipts_send(self);
    if (self->held_head && !uv_is_active((uv_handle_t *)&self->held_timer))
        uv_timer_start(&self->held_timer, send__on_held_timer, 1, 0);
    if (self->replay_drain_until_us && hub_now_us() > self->replay_drain_until_us)
        server_ops__replay_drained(self); /* no retry came: read again */
    if (!self->stopping)
        commit__start(self);
    /* Once for all the sends of this turn (send__frame). */
    if (self->router_kick_due) {
        self->router_kick_due = false;
        hub_zsock_kick(self->router_watch);
    }
}

static void server__on_end_of_turn(uv_check_t *check)
{
    server__end_of_turn(check->data);
}

static void server__on_before_sleep(uv_prepare_t *prepare)
{
    server__end_of_turn(prepare->data);
}

/* ------------------------------------------------------------------------ */
/* Timers and signals                                                        */

void server__housekeeping(uv_timer_t *timer)
{
    hub_server_t *self = timer->data;
    uint64_t now = hub_monotonic_us();
    uint64_t silent_limit = (uint64_t)self->cfg.heartbeat_ms * 3000u;
    CORE__FOREACH_MEMBER (self, m) {
        if (!m->online)
            continue;
        if (now - m->last_seen_mono_us > silent_limit) {
            HUB_INFO("router", "member silent, marked offline", "member=%s silent_ms=%llu", m->id,
                     (unsigned long long)((now - m->last_seen_mono_us) / 1000u));
            m->online = false;
            continue;
        }
        if (m->blocked_n > 0 && m->stalled_since_mono_us &&
            now - m->stalled_since_mono_us > (uint64_t)self->cfg.drain_timeout_ms * 1000u) {
            /* It takes nothing: cut it off, so that it holds no more of the
             * hub's memory; what is durable stays in the store. */
            HUB_WARN("router", "member not reading: cut off, its queue is kept",
                     "member=%s waiting_bytes=%llu stalled_ms=%llu", m->id,
                     (unsigned long long)send__waiting(m),
                     (unsigned long long)((now - m->stalled_since_mono_us) / 1000u));
            send__blocked_drop(m);
            m->online = false;
            continue;
        }
        /* Redeliver what the receiver has not settled in time. */
        for (size_t i = 0; i < m->inflight_n && send__waiting(m) < self->cfg.max_waiting_bytes;
             i++) {
            core__inflight_t *f = &m->inflight[i];
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
            if (!delivery__still_allowed(self, &msg)) {
                f->settled = true;
                m->inflight_open--;
                continue;
            }
            f->attempt++;
            f->deadline_us = now + delivery__backoff_us(self, f->attempt);
            send__enqueue_out(self, m, msg.sender, f->seq, f->attempt, msg.envelope,
                              msg.envelope_len);
            outcome__delivered(self, &msg, m->id, "redelivery after no settle", false);
            HUB__PUSH(self->attempt_seqs, self->attempt_n, self->attempt_cap, f->seq);
            self->stats.redeliveries++;
        }
    }
    /* Expired de-duplication records are forgotten every second while
     * envelopes are accepted, and every 10 s regardless. With only the 10 s
     * beat, 30,000 events a second left 300,000 records to forget at once:
     * thirty commits in a row, each longer by 10,000 deletions
     * (hubbench --sustain's stalls on a 10 s beat; BENCHMARKS.md). */
    uint64_t since_prune = now - self->last_prune_us;
    if (since_prune >= 10000000u ||
        (since_prune >= 1000000u && self->stats.envelopes_accepted != self->prune_accepted)) {
        self->prune_due = true;
        self->last_prune_us = now;
        self->prune_accepted = self->stats.envelopes_accepted;
    }
    if (self->ops && now - self->last_alarm_tick_us >= 1000000u) {
        hub_ops_tick(self->ops);
        self->last_alarm_tick_us = now;
    }
    if (now - self->last_request_sweep_us >= 1000000u) {
        admit__expire_requests(self, now);
        self->last_request_sweep_us = now;
    }
    if (self->archive && !self->archive_busy && now - self->last_archive_us >= 60000000u) {
        self->last_archive_us = now;
        archive_server__maintain_start(self);
    }
    if (self->audit && now - self->last_audit_tick_us >= 1000000u) {
        self->audit_tick_due = true;
        self->last_audit_tick_us = now;
    }
    /* Expired messages go to the dead-letter queue. The store is asked
     * only when none it named before still waits for its commit: until
     * then they are queued in the store, it would name them again, and
     * each would be dead-lettered, logged, counted and audited twice. */
    uint64_t expired[256];
    size_t n_expired = 0;
    if (self->dead_ttl_n == 0 && !(self->commit && self->commit->n_dead_ttl) &&
        hub_store_expired(self->store, hub_now_us(), expired, 256, &n_expired) == 0) {
        for (size_t i = 0; i < n_expired; i++)
            HUB__PUSH(self->dead_ttl, self->dead_ttl_n, self->dead_ttl_cap, expired[i]);
    }
    /* Sent and committed at the end of this turn (server__end_of_turn). */
}

static void server__close_handles(hub_server_t *self);

static void server__on_signal(uv_signal_t *handle, int signum)
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
        if (hub_ops_reload_directory(self->ops, err, sizeof err) != 0)
            HUB_ERROR("hubd", "member directory reload failed; keeping the previous names",
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
static void server__review_subscriptions(hub_server_t *self)
{
    size_t cursor = 0;
    const char *topic;
    void *value;
    while (hub_map_next(self->subs, &cursor, &topic, &value)) {
        const core__sublist_t *l = value;
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
            const char *why = trust__forbidden(self, l->members[i], publisher, p, &d);
            if (why)
                HUB_WARN("router", "subscription suspended: no agreement in force",
                         "subscriber=%s topic=%s reason=\"%s\"", l->members[i], topic, why);
        }
    }
}

int hub_server_reload_keys(hub_server_t *self, char *err, size_t err_size)
{
    hub_keydir_t *fresh = NULL;
    int rc = trust__load_keys(self, &fresh, err, err_size);
    if (rc != 0)
        return rc;
    hub_policy_t *policy = NULL;
    hub_delegations_t *delegations = NULL;
    rc = trust__load_policy(self, &policy, &delegations, err, err_size);
    if (rc != 0) {
        /* All or nothing: keep the running keys and agreements. */
        hub_keydir_destroy(&fresh);
        return rc;
    }
    hub_delegations_carry_counts(delegations, self->delegations);
    hub_policy_destroy(&self->policy);
    hub_delegations_destroy(&self->delegations);
    self->policy = policy;
    self->policy_since_us = hub_now_us();
    self->limits_gen++;
    self->delegations = delegations;
    server__review_subscriptions(self);
    CORE__FOREACH_MEMBER (self, m) {
        if (m->online && !hub_keydir_find_member(fresh, m->id)) {
            HUB_WARN("router", "member key removed: cut off, its queue is kept", "member=%s",
                     m->id);
            m->online = false;
        }
    }
    hub_keydir_destroy(&self->keys);
    self->keys = fresh;
    self->keys_gen++;
    HUB_INFO("hubd", "key directory reloaded", "members=%zu agreements=%zu delegations=%zu",
             hub_keydir_count(fresh), self->policy ? hub_policy_rule_count(self->policy) : 0,
             hub_delegations_count(self->delegations));
    return 0;
}

/* A checkpoint's token is on disk: the log records it (TIMESTAMPED). */
static void server__tsa_stamped(void *user, uint64_t cp_seq, const uint8_t token_sha256[32],
                                uint64_t gen_time_us)
{
    hub_server_t *self = user;
    char reason[HUB_AUDIT_REASON_MAX];
    hub_audit_timestamped_reason(cp_seq, token_sha256, reason, sizeof reason);
    members__audit_q(self, HUB_AUDIT_TIMESTAMPED, NULL, 0, NULL, NULL, NULL, reason);
    (void)gen_time_us;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */

static int server__zmq_fail(const char *what, char *err, size_t err_size)
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
    self->current_fd = -1;
    hub_arena_init(&self->turn_arena);
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
    /* A slow disk shows here before senders stall: the SDK's window holds
     * about 270 ms of posting at 30,000 events/s (BENCHMARKS.md). */
    static const double server__commit_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,   0.25,   0.5,   1,    2.5};
    if (rc == 0 && (hub_metrics_new(0, &self->metrics) != 0 ||
                    hub_flows_new(self->metrics, cfg->max_flows, &self->flows) != 0 ||
                    hub_metrics_gauge(self->metrics, "lth_certificate_expiry_timestamp_seconds",
                                      "When each member's certificate expires (Unix time)",
                                      member_label, 1, &self->cert_expiry) != 0 ||
                    hub_metrics_gauge(self->metrics, "lth_certificates_refused",
                                      "Member certificates refused at the last load, by reason",
                                      status_label, 1, &self->certs_refused) != 0 ||
                    hub_metrics_histogram(self->metrics, "lth_hub_commit_seconds",
                                          "How long each group commit took (signature checks, "
                                          "the store's write and fdatasyncs, the audit log's "
                                          "records and fdatasync): what ACKs wait for",
                                          NULL, 0, server__commit_buckets,
                                          sizeof server__commit_buckets /
                                              sizeof server__commit_buckets[0],
                                          &self->commit_seconds) != 0)) {
        snprintf(err, err_size, "out of memory");
        rc = HUB_ENOMEM;
    }
    if (rc == 0)
        rc = trust__load_keys(self, &self->keys, err, err_size);
    if (rc == 0)
        rc = trust__load_policy(self, &self->policy, &self->delegations, err, err_size);
    self->policy_since_us = hub_now_us();
    if (rc == 0 && !cfg->ca_cert[0])
        HUB_WARN("hubd",
                 "development mode: members are admitted by the key directory alone; "
                 "set ca_cert, crl_file and cert_dir to require certificates",
                 "key_dir=%s", cfg->key_dir);
    if (rc == 0 && !self->policy)
        HUB_WARN("hubd",
                 "no policy_file: every member may call every service (development "
                 "mode); set policy_file to deny by default",
                 NULL);
    if (rc == 0 && (!(self->members = hub_map_new()) || !(self->requests = admit__requests_new()) ||
                    !(self->subs = hub_map_new()) || !(self->interned = hub_map_new()))) {
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
        /* LMDB creates data_dir; with PostgreSQL it still holds the audit
         * log and state files. */
        if (cfg->store_backend == HUB_STORE_POSTGRESQL && mkdir(cfg->data_dir, 0700) != 0 &&
            errno != EEXIST)
            HUB_WARN("store", "cannot create data_dir", "dir=%s error=\"%s\"", cfg->data_dir,
                     strerror(errno));
        if (cfg->store_backend == HUB_STORE_POSTGRESQL)
            HUB_INFO("store", "opening the PostgreSQL store", "migrate=%s",
                     cfg->store_migrate ? "yes" : "no");
        /* Several nodes: the store's connections name this node, so that
         * its own commits' notifications can be told apart. */
        char *dsn = cfg->cluster ? hub_cluster_store_dsn(cfg->store_dsn, cfg->node_id) : NULL;
        rc = cfg->store_backend == HUB_STORE_POSTGRESQL
                 ? hub_store_open_pg(dsn ? dsn : cfg->store_dsn, cfg->store_migrate, &limits,
                                     &self->store, err, err_size)
                 : hub_store_open(cfg->data_dir, &limits, &self->store, err, err_size);
        free(dsn);
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
    /* Several nodes: a block of seqs of this node's own, and the shared
     * tables (hub_cluster.h). */
    if (rc == 0 && cfg->cluster)
        rc = cluster__start(self, err, err_size);
    if (rc == 0 && (rc = hub_store_arena_new(&self->arena)) != 0)
        snprintf(err, err_size, "out of memory");
    if (rc == 0) {
        snprintf(self->subs_path, sizeof self->subs_path, "%.*s/subscriptions",
                 (int)(sizeof self->subs_path - 15), cfg->data_dir);
        rc = pubsub__load_subscriptions(self, err, err_size);
    }
    if (rc == 0) {
        size_t expired = 0;
        rc = hub_store_requests_load(self->store, hub_now_us(), admit__request_loaded, self,
                                     &expired);
        if (rc != 0)
            snprintf(err, err_size, "store %s: cannot read its tracked requests (%s)",
                     cfg->data_dir, hub_strerror(rc));
        else if (admit__requests_size(self->requests) || expired)
            HUB_INFO("hubd", "tracked requests restored", "open=%zu expired=%zu",
                     admit__requests_size(self->requests), expired);
    }
    if (rc == 0 && !(self->readbuf = malloc(HUB__READ_BATCH * sizeof *self->readbuf))) {
        snprintf(err, err_size, "out of memory");
        rc = HUB_ENOMEM;
    }
    if (rc == 0 && cfg->require_signatures && !self->own_key.has_sign) {
        snprintf(err, err_size,
                 "%s has no signing key; regenerate the hub's keys with 'hubctl "
                 "keygen'",
                 cfg->key_file);
        rc = HUB_EINVAL;
    }
    if (rc == 0 && cfg->audit) {
        if (!self->own_key.has_sign) {
            snprintf(err, err_size,
                     "%s has no signing key, which the audit log needs; "
                     "regenerate the hub's keys with 'hubctl keygen'",
                     cfg->key_file);
            rc = HUB_EINVAL;
        } else {
            hub_audit_config_t acfg;
            memset(&acfg, 0, sizeof acfg);
            memcpy(acfg.sign_secret, self->own_key.sign_secret, 64);
            memcpy(acfg.sign_public, self->own_key.sign_public, 32);
            acfg.accept_gap = cfg->audit_accept_gap;
            acfg.accept_key_change = cfg->audit_accept_key_change;
            acfg.max_file_bytes = cfg->audit_max_file_bytes;
            acfg.checkpoint_every_records = cfg->audit_checkpoint_records;
            snprintf(acfg.node_id, sizeof acfg.node_id, "%s", cfg->node_id);
            rc = hub_store_audit_anchor_get(self->store, &acfg.anchor_seq, acfg.anchor_hash);
            if (rc != 0)
                snprintf(err, err_size, "store %s: cannot read the audit log's anchor (%s)",
                         cfg->data_dir, hub_strerror(rc));
            else
                rc = hub_audit_open(self->cfg.audit_dir, &acfg, &self->audit, err, err_size);
            self->audit_anchored_seq = acfg.anchor_seq;
            sodium_memzero(&acfg, sizeof acfg);
        }
    }
    if (rc == 0 && cfg->archive_dir[0])
        rc = archive_server__open(self, err, err_size);
    if (rc == 0 && self->audit) {
        self->audit_gap = hub_audit_gap(self->audit);
        if (self->audit_gap) {
            /* Seal the RECOVERED record naming the gap and anchor there. */
            rc = hub_audit_seal(self->audit);
            hub_audit_head_t head;
            hub_audit_durable_head(self->audit, &head);
            if (rc == 0)
                rc = hub_store_audit_anchor_put(self->store, head.seq, head.hash);
            self->audit_anchored_seq = head.seq;
            if (rc != 0)
                snprintf(err, err_size, "cannot seal the audit log after the gap (%s)",
                         hub_strerror(rc));
        }
        hub_audit_durable_head(self->audit, &self->audit_head);
        self->audit_seq = hub_audit_seq(self->audit);
        audit_start__check(self);
    }
    if (rc == 0 && self->audit && cfg->audit_tsa_url[0]) {
        hub_tsa_config_t tcfg = {
            .url = cfg->audit_tsa_url,
            .cert_pem = cfg->audit_tsa_cert[0] ? cfg->audit_tsa_cert : NULL,
            .dir = self->cfg.audit_dir,
            .every_us = (uint64_t)cfg->audit_tsa_every_s * 1000000u,
            .retry_us = (uint64_t)cfg->audit_tsa_retry_s * 1000000u,
        };
        rc = hub_tsa_client_new(loop, &tcfg, server__tsa_stamped, self, &self->tsa);
        if (rc != 0)
            snprintf(err, err_size, "cannot start the audit time-stamping client (%s)",
                     hub_strerror(rc));
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
        rc = server__zmq_fail("cannot start the ZAP handler", err, err_size);
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
    if (!self->router || zmq_setsockopt(self->router, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
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
        rc = server__zmq_fail("cannot set up the CURVE ROUTER socket", err, err_size);
        hub_server_destroy(&self);
        return rc;
    }
    sodium_memzero(server_secret, sizeof server_secret);
    if (zmq_bind(self->router, cfg->listen) != 0) {
        char what[400];
        snprintf(what, sizeof what,
                 "cannot listen on %s (is another hubd running, or the address wrong?)",
                 cfg->listen);
        rc = server__zmq_fail(what, err, err_size);
        hub_server_destroy(&self);
        return rc;
    }
    size_t len = sizeof self->endpoint;
    zmq_getsockopt(self->router, ZMQ_LAST_ENDPOINT, self->endpoint, &len);

    rc = hub_zsock_start(loop, self->zap, zap__on_zap_readable, self, &self->zap_watch);
    if (rc == 0)
        rc = hub_zsock_start(loop, self->router, server__on_router_readable, self,
                             &self->router_watch);
    if (rc != 0) {
        snprintf(err, err_size, "cannot watch the sockets: %s", hub_strerror(rc));
        hub_server_destroy(&self);
        return rc;
    }
    if (cfg->http_listen[0]) {
        char token[HUB_OPS_TOKEN_MAX + 1] = "";
        if (cfg->http_token_file[0] && hub_ops_read_token_file(cfg->http_token_file, token,
                                                               sizeof token, err, err_size) != 0) {
            hub_server_destroy(&self);
            return HUB_EINVAL;
        }
        self->ops_source = server_ops__source(self);
        hub_ops_config_t ocfg = {cfg->http_listen, token, {0}, cfg->http_allowed_hosts};
        ocfg.http.max_connections_per_client = cfg->http_max_connections_per_client;
        ocfg.http.header_timeout_ms = cfg->http_header_timeout_ms;
        ocfg.public_api = cfg->http_public;
        ocfg.lang = cfg->lang[0] ? cfg->lang : NULL;
        ocfg.members_file = cfg->members_file;
        ocfg.alarms = &cfg->alarms;
        ocfg.node_id = cfg->node_id;
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
        uv_timer_start(&self->cert_timer, trust__on_cert_timer, self->cert_timer_first_ms, 0);
    uv_timer_init(loop, &self->housekeeping);
    self->housekeeping.data = self;
    uv_timer_init(loop, &self->held_timer);
    self->held_timer.data = self;
    uv_timer_init(loop, &self->retry_timer);
    self->retry_timer.data = self;
    uv_timer_init(loop, &self->commit_timer);
    self->commit_timer.data = self;
    uv_check_init(loop, &self->end_of_turn);
    self->end_of_turn.data = self;
    uv_check_start(&self->end_of_turn, server__on_end_of_turn);
    uv_prepare_init(loop, &self->before_sleep);
    self->before_sleep.data = self;
    uv_prepare_start(&self->before_sleep, server__on_before_sleep);
    uint64_t period = cfg->heartbeat_ms / 2 > 100 ? 100 : cfg->heartbeat_ms / 2;
    uv_timer_start(&self->housekeeping, server__housekeeping, period, period);
    uv_signal_t *sigs[] = {&self->sig_term, &self->sig_int, &self->sig_hup, &self->sig_usr1,
                           &self->sig_usr2};
    int signums[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    for (int i = 0; i < 5; i++) {
        uv_signal_init(loop, sigs[i]);
        sigs[i]->data = self;
        uv_signal_start(sigs[i], server__on_signal, signums[i]);
    }
    self->handles_open = true;
    if ((rc = cluster__watch(self, err, err_size)) != 0) {
        hub_server_destroy(&self);
        return rc;
    }
    HUB_INFO("hubd", "listening", "endpoint=%s hub=%s members=%zu store=%s", self->endpoint,
             self->own_key.member_id, hub_keydir_count(self->keys), cfg->data_dir);
    *out = self;
    return 0;
}

const char *hub_server_endpoint(const hub_server_t *self)
{
    return self->endpoint;
}

const char *hub_server_http_address(const hub_server_t *self)
{
    return self->ops ? hub_ops_address(self->ops) : NULL;
}

static void server__close_handles(hub_server_t *self)
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
    uv_close((uv_handle_t *)&self->end_of_turn, NULL);
    uv_close((uv_handle_t *)&self->before_sleep, NULL);
    uv_close((uv_handle_t *)&self->cert_timer, NULL);
    cluster__close(self);
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
    server__close_handles(self);
}

int hub_server_run(hub_server_t *self)
{
    int rc = uv_run(self->loop, UV_RUN_DEFAULT);
    (void)rc;
    server__close_handles(self);
    uv_run(self->loop, UV_RUN_DEFAULT);
    return 0;
}

/* The members map's and the subscriptions map's values, for
 * hub_map_destroy_all. */
static void server__member_free(void *value)
{
    members__member_free(value);
}

static void server__sublist_free(void *value)
{
    free(((core__sublist_t *)value)->members);
    free(value);
}

void hub_server_destroy(hub_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_server_t *self = *self_p;
    audit_start__check_end(self);
    if (self->tsa) {
        hub_tsa_client_destroy(&self->tsa);
        uv_run(self->loop, UV_RUN_NOWAIT); /* its uv_async_t closes */
    }
    if (self->handles_open) {
        server__close_handles(self);
        uv_run(self->loop, UV_RUN_DEFAULT);
    } else if (self->router_watch || self->zap_watch) {
        /* hub_server_new() failed after it began watching the sockets (the
         * HTTP endpoint could not start, say). */
        hub_zsock_close(&self->router_watch);
        hub_zsock_close(&self->zap_watch);
        uv_run(self->loop, UV_RUN_DEFAULT);
    }
    hub_ops_destroy(&self->ops);
    server__turn_msgs_close(self); /* ZeroMQ messages, before its context ends */
    cluster__destroy(self);        /* its sockets close before the ZeroMQ context ends */
    if (self->router)
        zmq_close(self->router);
    if (self->zap)
        zmq_close(self->zap);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    if (self->audit) {
        /* The loop is over and no commit runs: write what is queued, seal. */
        outcome__audit_queue(self->audit, self->auditq, self->auditq_n);
        /* Seal, and anchor the final checkpoint in the store. */
        int arc = hub_audit_seal(self->audit);
        hub_audit_head_t head;
        hub_audit_durable_head(self->audit, &head);
        if (arc == 0 && self->store && head.seq > self->audit_anchored_seq)
            arc = hub_store_audit_anchor_put(self->store, head.seq, head.hash);
        int crc = hub_audit_close(&self->audit);
        if (arc == 0)
            arc = crc;
        if (arc != 0)
            HUB_ERROR("audit", "could not seal the audit log", "error=\"%s\"", hub_strerror(arc));
    }
    int xrc = hub_archive_close(&self->archive);
    if (xrc != 0)
        HUB_ERROR("archive", "could not seal the message archive", "error=\"%s\"",
                  hub_strerror(xrc));
    members__auditq_free(self->auditq, self->auditq_n);
    for (size_t i = 0; i < self->turn_rcpt_n; i++)
        send__receipts_free(&self->turn_rcpt[i].r);
    free(self->turn_rcpt);
    hub_arena_destroy(&self->turn_arena);
    free(self->turn_msgs);
    /* Members last: queued audit records point at their ids. */
    hub_map_destroy_all(&self->members, server__member_free);
    hub_map_destroy_all(&self->subs, server__sublist_free);
    admit__requests_destroy(&self->requests);
    hub_map_destroy(&self->cert_not_after);
    /* After the audit queue: its records point at these texts. */
    hub_map_destroy_all(&self->interned, free);
    hub_flows_destroy(&self->flows);
    hub_metrics_destroy(&self->metrics);
    free(self->readbuf);
    for (size_t i = 0; i < self->pending_n; i++)
        free(self->pending[i].bytes);
    free(self->pending);
    free(self->items_spare);
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
