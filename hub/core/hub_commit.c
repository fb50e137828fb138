/* hub_commit.c — group commit: pending envelopes, settles, attempts and
 * dead letters go to the store in one transaction on the worker thread,
 * with their audit records; nothing is ACKed before the store's commit
 * returns (commit__after_commit sends the receipts). */
#include "hub_core_internal.h"
#include "hub_vec.h"

#define HUB__DEAD_LOG_LINES 20 /* dead letters logged one by one per commit */

/* The refusal of an envelope whose commit failed: UNAVAILABLE (retryable)
 * when the store did not complete it but may on a resend (its database
 * connection was lost, the database is failing over: HUB_EAGAIN), INTERNAL
 * otherwise. */
static void commit__failed(hub_server_t *self, core__receipts_t *r, const char *message_id, int rc,
                           bool publication)
{
    if (rc == HUB_EAGAIN)
        send__receipt_nack(self, r, message_id, LTH__V1__NACK_CODE__NACK_UNAVAILABLE,
                           "the hub's store did not complete the commit of this %s (its database "
                           "connection was lost or the database is failing over): it is not "
                           "accepted; send the same envelope again, unchanged (same message_id): "
                           "a commit that completed after all gets its original ACK",
                           publication ? "publication" : "envelope");
    else
        send__receipt_nack(self, r, message_id, LTH__V1__NACK_CODE__NACK_INTERNAL,
                           "the hub's store could not commit (%s); nothing was stored, send "
                           "again later",
                           hub_strerror(rc));
}

/* One receipt for all copies of a publication (items[i] is one copy):
 * ACK when every copy is stored, else the first refusal. A publisher that
 * sends again after a refusal only adds the missing copies (each copy has a
 * derived id, de-duplicated on its own). */
static void commit__group_receipt(hub_server_t *self, core__commit_t *job, size_t i,
                                  core__receipts_t *r)
{
    core__pending_t *item = &job->items[i];
    if (job->append_rc == 0 && item->verdict == 0 && job->outcomes[i] == HUB_STORE_OK)
        outcome__committed(self, item, 1, true);
    if (!item->group_first)
        return;
    size_t end = i + 1;
    while (end < job->n_items && job->items[end].group_id[0] && !job->items[end].group_first)
        end++;
    for (size_t k = i; k < end; k++) {
        core__pending_t *c = &job->items[k];
        if (job->append_rc != 0) {
            commit__failed(self, r, item->group_id, job->append_rc, true);
            return;
        }
        if (c->verdict != 0) {
            send__receipt_nack(self, r, item->group_id, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                               "%s", admit__signature_problem(c->verdict, true));
            return;
        }
        if (job->outcomes[k] == HUB_STORE_QUOTA_SENDER ||
            job->outcomes[k] == HUB_STORE_QUOTA_RECEIVER) {
            delivery__quota_nack(self, r, item->group_id, &c->msg, job->outcomes[k]);
            return;
        }
        if (job->outcomes[k] == HUB_STORE_ID_REUSED) {
            send__receipt_nack(self, r, item->group_id, LTH__V1__NACK_CODE__NACK_ID_REUSED,
                               "message_id %s was published before with other content; the "
                               "earlier publication stands (a subscriber added since may have "
                               "got this one): give new content a new message_id",
                               item->group_id);
            return;
        }
        if (job->outcomes[k] == HUB_STORE_QUEUE_FULL || job->outcomes[k] == HUB_STORE_FULL) {
            bool queue = job->outcomes[k] == HUB_STORE_QUEUE_FULL;
            send__receipt_nack(self, r, item->group_id,
                               queue ? LTH__V1__NACK_CODE__NACK_QUEUE_FULL
                                     : LTH__V1__NACK_CODE__NACK_STORE_FULL,
                               "the copy for subscriber %s was refused (%s); the other "
                               "subscribers have theirs: send the same message again later",
                               c->msg.receiver, queue ? "its queue is full" : "store full");
            return;
        }
    }
    send__receipt_ack(r, item->group_id, item->msg.seq);
    self->stats.envelopes_accepted++;
}

static bool commit__same_flow(const hub_store_msg_t *a, const hub_store_msg_t *b)
{
    return !strcmp(a->sender, b->sender) && !strcmp(a->receiver, b->receiver) &&
           !strcmp(a->service, b->service);
}

static void commit__after_commit(uv_work_t *req, int status)
{
    core__commit_t *job = req->data;
    hub_server_t *self = job->server;
    self->commit = NULL;
    self->stats.commits++;
    hub_metric_observe(self->commit_seconds, NULL, (double)job->work_us / 1e6);
    if (self->audit) {
        self->audit_seq = job->audit_seq;
        if (job->audit_head.seq > self->audit_head.seq) {
            self->audit_head = job->audit_head;
            hub_tsa_client_offer(self->tsa, job->audit_head.seq, job->audit_head.hash);
        }
    }
    (void)status;

    /* Receipts, one frame per sender. Consecutive envelopes mostly share
     * their sender and their flow: the last sender's receipts are at hand
     * without a look-up, and a run of one flow's stored envelopes is
     * counted at once (outcome__committed) before anything else of the
     * commit is recorded. */
    hub_map_t *by_sender = hub_map_new();
    core__receipts_t *last_r = NULL;
    const char *last_sender = NULL;
    size_t run_first = 0, run_n = 0;
    for (size_t i = 0; by_sender && i < job->n_items; i++) {
        hub_store_msg_t *msg = &job->items[i].msg;
        bool stored = job->append_rc == 0 && job->items[i].verdict == 0 &&
                      !job->items[i].group_id[0] && job->outcomes[i] == HUB_STORE_OK;
        if (run_n > 0 && !(stored && run_first + run_n == i &&
                           commit__same_flow(&job->items[run_first].msg, msg))) {
            outcome__committed(self, &job->items[run_first], run_n, false);
            run_n = 0;
        }
        core__receipts_t *r = last_sender && !strcmp(last_sender, msg->sender)
                                  ? last_r
                                  : hub_map_get(by_sender, msg->sender);
        if (!r) {
            r = malloc(sizeof *r);
            if (!r || send__receipts_init(r, job->n_items) != 0 ||
                hub_map_put(by_sender, msg->sender, r) != 0) {
                if (r)
                    send__receipts_free(r);
                free(r);
                continue;
            }
            core__member_t *sm = members__member(self, msg->sender);
            r->sender = sm ? sm->id : "";
            r->audited = true; /* the worker wrote this commit's refusals */
        }
        last_r = r;
        last_sender = msg->sender;
        if (job->items[i].group_id[0]) {
            commit__group_receipt(self, job, i, r);
            continue;
        }
        if (job->append_rc != 0) {
            commit__failed(self, r, msg->message_id, job->append_rc, false);
            continue;
        }
        if (job->items[i].verdict != 0) {
            send__receipt_nack(self, r, msg->message_id, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                               "%s", admit__signature_problem(job->items[i].verdict, true));
            continue;
        }
        switch (job->outcomes[i]) {
        case HUB_STORE_OK: {
            core__member_t *rm =
                job->items[i].delegated_from ? hub_map_get(self->members, msg->receiver) : NULL;
            send__receipt_ack_routed(r, msg->message_id, msg->seq, rm ? rm->id : NULL);
            if (rm)
                hub_delegations_note(self->delegations, job->items[i].delegated_from,
                                     msg->service, job->items[i].delegated_procedure, rm->id,
                                     hub_now_us());
            if (run_n++ == 0)
                run_first = i;
            break;
        }
        case HUB_STORE_DUPLICATE: {
            core__member_t *rm =
                job->items[i].delegated_from ? hub_map_get(self->members, msg->receiver) : NULL;
            send__receipt_ack_routed(r, msg->message_id, msg->seq, rm ? rm->id : NULL);
            self->stats.duplicates++;
            break;
        }
        case HUB_STORE_ID_REUSED:
            send__receipt_nack(self, r, msg->message_id, LTH__V1__NACK_CODE__NACK_ID_REUSED,
                               "message_id %s was accepted before (hub_seq %llu) with other "
                               "content; nothing was stored and the earlier message stands: "
                               "give new content a new message_id, resend only the exact same "
                               "envelope",
                               msg->message_id, (unsigned long long)msg->seq);
            break; /* counted with the refusals (flows, audit), not as a duplicate */
        case HUB_STORE_QUEUE_FULL:
            send__receipt_nack(self, r, msg->message_id, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                               "the queue of %s is full (%llu messages); nothing was stored, "
                               "send again once it drains",
                               msg->receiver, (unsigned long long)self->cfg.max_queue_depth);
            break;
        case HUB_STORE_FULL:
            send__receipt_nack(self, r, msg->message_id, LTH__V1__NACK_CODE__NACK_STORE_FULL,
                               "the hub's store is full; nothing was stored, send again later "
                               "(operators: drain or purge the dead-letter queue, or raise "
                               "max_store_bytes)");
            break;
        case HUB_STORE_QUOTA_SENDER:
        case HUB_STORE_QUOTA_RECEIVER:
            delivery__quota_nack(self, r, msg->message_id, msg, job->outcomes[i]);
            break;
        }
    }
    outcome__committed(self, &job->items[run_first], run_n, false);
    size_t cursor = 0;
    const char *sender;
    void *value;
    while (by_sender && hub_map_next(by_sender, &cursor, &sender, &value)) {
        core__receipts_t *r = value;
        core__member_t *m = hub_map_get(self->members, sender);
        if (m)
            send__receipts_send(self, m, r);
        send__receipts_free(r);
        free(r);
    }
    hub_map_destroy(&by_sender);

    for (size_t i = 0; i < job->n_items; i++) {
        /* Answered (ACK or NACK, stored or not): off its payer's share. */
        core__member_t *payer = job->items[i].payer;
        if (payer && payer->store_waiting > 0)
            payer->store_waiting--;
        if (job->items[i].early)
            continue;
        core__member_t *m = hub_map_get(self->members, job->items[i].msg.receiver);
        if (m && m->pending_late > 0)
            m->pending_late--;
    }
    /* Fast path: hand fresh messages straight to receivers that are caught up. */
    core__member_t *last_m = NULL;
    const char *last_receiver = NULL;
    for (size_t i = 0; job->append_rc == 0 && i < job->n_items; i++) {
        if (job->items[i].verdict != 0 || job->outcomes[i] != HUB_STORE_OK)
            continue;
        hub_store_msg_t *msg = &job->items[i].msg;
        core__member_t *m = last_receiver && !strcmp(last_receiver, msg->receiver)
                                ? last_m
                                : hub_map_get(self->members, msg->receiver);
        last_m = m;
        last_receiver = msg->receiver;
        if (!m || !m->online)
            continue;
        /* Delivered before the commit, to this connection (a reconnect since
         * starts its queue again from the store). */
        if (job->items[i].early && m->loaded_seq >= msg->seq)
            continue;
        if (!m->backlog && m->inflight_open < self->cfg.max_in_flight && msg->seq > m->loaded_seq) {
            if (send__enqueue_out(self, m, msg->sender, msg->seq, 1, job->items[i].bytes,
                                  job->items[i].msg.envelope_len) == 0 &&
                delivery__inflight_add(self, m, msg, 1) == 0) {
                m->loaded_seq = msg->seq;
                outcome__delivered(self, msg, m->id, "attempt 1", true);
            } else {
                m->backlog = true;
                m->rescan = true;
            }
        } else {
            m->backlog = true;
            m->rescan = true; /* cluster: its seq may be below loaded_seq */
        }
    }
    /* HUB_EAGAIN: the store lost its database and logs the outage once
     * itself; not a line per commit tried meanwhile. */
    if (job->other_rc == HUB_EAGAIN)
        HUB_DEBUG("store",
                  "settle, attempt or dead-letter update did not complete; it will be "
                  "retried",
                  "error=\"%s\"", hub_strerror(job->other_rc));
    else if (job->other_rc != 0)
        HUB_ERROR("store", "settle, attempt or dead-letter update failed; it will be retried",
                  "error=\"%s\"", hub_strerror(job->other_rc));
    /* One log line per dead letter, up to HUB__DEAD_LOG_LINES a commit; the
     * rest in one line, so that a mass expiry cannot flood the log. */
    for (size_t i = 0; i < job->n_dead && i < HUB__DEAD_LOG_LINES; i++) {
        const hub_store_msg_t *d = &job->dead[i];
        HUB_WARN("store", "message dead-lettered",
                 "seq=%llu message_id=%s sender=%s receiver=%s service=%s attempts=%u "
                 "reason=\"%s\"",
                 (unsigned long long)d->seq, d->message_id, d->sender, d->receiver, d->service,
                 (unsigned)d->attempts, job->dead_reason[i] ? job->dead_reason[i] : "");
    }
    if (job->n_dead > HUB__DEAD_LOG_LINES)
        HUB_WARN("store", "more messages dead-lettered in the same commit",
                 "count=%zu first_seq=%llu last_seq=%llu see=\"hubctl dlq list\"",
                 job->n_dead - HUB__DEAD_LOG_LINES,
                 (unsigned long long)job->dead[HUB__DEAD_LOG_LINES].seq,
                 (unsigned long long)job->dead[job->n_dead - 1].seq);
    for (size_t i = 0; i < job->n_dead; i++)
        outcome__dead_lettered(self, &job->dead[i]);
    free(job->dead);
    free(job->dead_reason);
    if (job->pruned == HUB_STORE_PRUNE_BATCH)
        self->prune_due = true; /* more to forget: go on at the next commit */

    for (size_t i = 0; i < job->n_items; i++)
        free(job->items[i].bytes);
    if (job->items && !self->items_spare && job->items_cap <= HUB__SPARE_ITEMS_MAX) {
        self->items_spare = job->items; /* for the next commit (commit__start) */
        self->items_spare_cap = job->items_cap;
    } else {
        free(job->items);
    }
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
    members__auditq_free(job->audit, job->n_audit);
    if (job->audit_rc != 0)
        HUB_ERROR("audit", "writing the audit log failed", "error=\"%s\"",
                  hub_strerror(job->audit_rc));
    free(job);

    /* Receivers with a backlog get it now. */
    cursor = 0;
    while (hub_map_next(self->members, &cursor, NULL, &value))
        delivery__pump(self, value);
    /* Flushed, and the next commit started, at the end of this turn
     * (server__end_of_turn); once the hub stops that hook is closed. */
    if (self->stopping)
        send__flush_all(self);
}

/* Digests and signature checks over items[begin, end) (worker threads; each
 * item is touched by one thread only). */
typedef struct {
    core__pending_t *items;
    hub_envelope_t **envs; /* decoded into arena: freed with it */
    hub_arena_t *arena;    /* this range's own (one thread each) */
    size_t begin, end;
    bool decode_all; /* the audit log reads every envelope (outcome__audit_commit) */
} commit__verify_t;

static void *commit__verify_range(void *arg)
{
    commit__verify_t *v = arg;
    /* The envelopes of one signed batch sit next to each other: one
     * Ed25519 verification covers them (hub_sign.h, batch signatures). */
    hub_sigcache_t cache;
    memset(&cache, 0, sizeof cache);
    for (size_t i = v->begin; i < v->end; i++) {
        core__pending_t *p = &v->items[i];
        /* The store keeps the digest with the message id, so that a re-send
         * under the same id is told from new content (ID_REUSED); admission
         * computed it from its own decode unless the signature is checked
         * here. The envelope is decoded again only for a signature, the
         * audit log or a digest still missing. A digest that cannot be
         * computed stays zero: the store then treats a re-send as a
         * duplicate, as before digests were kept. */
        bool have = false;
        for (size_t k = 0; k < sizeof p->msg.digest && !have; k++)
            have = p->msg.digest[k] != 0;
        /* Read in place where it has the plain shape (no copies, nothing
         * to free one by one), else by protobuf-c: the same result. */
        if (!have || p->verify || v->decode_all)
            hub_envelope_read_in(v->arena, p->bytes, p->msg.envelope_len, &v->envs[i], NULL);
        if (!have && (!v->envs[i] || hub_envelope_digest(v->envs[i], p->msg.digest) != 0)) {
            memset(p->msg.digest, 0, sizeof p->msg.digest);
            if (p->verify)
                p->verdict = HUB_EINVAL;
            continue;
        }
        if (p->verify)
            p->verdict = hub_envelope_verify_digest(v->envs[i], p->msg.digest, p->sign_key, &cache);
    }
    return NULL;
}

/* Whether request p was answered before this commit by a reply that is
 * now settled for good: an online-only one (ACKed already), or a queued one
 * this same commit stores. Items are in seq order. */
static bool commit__answered_in_job(const core__commit_t *job, const core__pending_t *p)
{
    if (p->answered_online)
        return true;
    if (!p->answered_by_seq)
        return false;
    size_t lo;
    HUB_VEC_LOWER_BOUND(job->items, job->n_items, msg.preset_seq, p->answered_by_seq, lo);
    return lo < job->n_items && job->items[lo].msg.preset_seq == p->answered_by_seq &&
           job->items[lo].verdict == 0 && job->outcomes[lo] == HUB_STORE_OK;
}

static void commit__work(uv_work_t *req)
{
    core__commit_t *job = req->data;
    hub_server_t *server = job->server;
    hub_store_t *store = server->store;
    hub_audit_t *audit = server->audit;
    int arc = 0;
    uint64_t started_us = hub_monotonic_us();

    /* Envelopes are decoded again here, off the loop thread, for their
     * signatures and audit records (and a digest admission could not
     * compute). */
    hub_envelope_t **envs = job->n_items ? calloc(job->n_items, sizeof *envs) : NULL;
    hub_arena_t arenas[2];
    hub_arena_init(&arenas[0]);
    hub_arena_init(&arenas[1]);
    size_t n_ok = 0;
    hub_store_msg_t *msgs = job->n_items ? malloc(job->n_items * sizeof *msgs) : NULL;
    size_t *index = job->n_items ? malloc(job->n_items * sizeof *index) : NULL;
    job->append_rc = 0;
    bool batched = false;
    if (job->n_items > 0 && (!msgs || !index || !envs)) {
        job->append_rc = HUB_ENOMEM;
    } else {
        /* Ed25519 verification dominates the full path: a second thread
         * checks half of a large batch while this one checks the rest. */
        commit__verify_t halves[2] = {
            {job->items, envs, &arenas[0], 0, job->n_items / 2, audit != NULL},
            {job->items, envs, &arenas[1], job->n_items / 2, job->n_items, audit != NULL}};
        pthread_t helper;
        bool threaded = job->n_items >= 64 && (audit || server->cfg.require_signatures) &&
                        pthread_create(&helper, NULL, commit__verify_range, &halves[1]) == 0;
        if (threaded) {
            commit__verify_range(&halves[0]);
            pthread_join(helper, NULL);
        } else {
            halves[0].end = job->n_items;
            commit__verify_range(&halves[0]);
        }
        for (size_t i = 0; i < job->n_items; i++) {
            core__pending_t *p = &job->items[i];
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
            const core__pending_t *p = &job->items[i];
            if (p->verdict != 0 || job->outcomes[i] != HUB_STORE_OK || !p->request_expires_us)
                continue;
            if (commit__answered_in_job(job, p))
                continue; /* its reply is in this very commit: nothing to remember */
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
    struct commit__deadgroup {
        uint64_t *seqs;
        size_t n;
        const char *reason;
    } *dead = calloc(n_groups, sizeof *dead);
    if (!dead)
        n_groups = 0;
    else {
        dead[0] = (struct commit__deadgroup){job->dead_ttl, job->n_dead_ttl, "ttl expired"};
        dead[1] = (struct commit__deadgroup){job->dead_retry, job->n_dead_retry,
                                             "retry budget exhausted"};
        for (size_t i = 0; i < n_policy; i++)
            dead[2 + i] =
                (struct commit__deadgroup){&job->dead_policy[i].seq, 1, job->dead_policy[i].reason};
    }
    size_t n_all_dead = job->n_dead_ttl + job->n_dead_retry + n_policy;
    for (size_t d = 0; d < n_groups; d++) {
        if (dead[d].n == 0)
            continue;
        /* Reported once: a seq another node (sharing the store) or an
         * earlier commit dead-lettered is not moved again. */
        bool *moved = calloc(dead[d].n, sizeof *moved);
        int r = moved ? hub_store_dead_letter_moved(store, dead[d].seqs, dead[d].n,
                                                    dead[d].reason, moved)
                      : HUB_ENOMEM;
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
            if (!moved[i] || hub_store_dlq_get(store, dead[d].seqs[i], &dl, NULL) != 0)
                continue;
            job->dead[job->n_dead] = dl.msg;
            job->dead[job->n_dead].envelope = NULL;
            job->dead_reason[job->n_dead++] = dead[d].reason;
        }
        free(moved);
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
    /* The log's last durable checkpoint becomes the store's anchor, in the
     * same commit: a log later cut back behind it is refused at start. */
    hub_audit_head_t anchor = {0};
    if (audit && batched) {
        hub_audit_durable_head(audit, &anchor);
        if (anchor.seq <= server->audit_anchored_seq ||
            hub_store_audit_anchor_put(store, anchor.seq, anchor.hash) != 0)
            anchor.seq = 0;
    }
    if (batched) {
        int crc = hub_store_batch_commit(store);
        if (crc == 0 && anchor.seq)
            server->audit_anchored_seq = anchor.seq;
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
    archive_server__commit(server->archive, job); /* whole envelopes, encrypted, when configured */
    archive_server__online(server->archive, job->audit, job->n_audit);
    /* The audit log says what the store now holds (hub_outcome.c), then
     * what the loop recorded since the last commit, in order: after the
     * acceptances, since an envelope delivered before its commit has its
     * DELIVERED record there. */
    if (audit)
        arc = outcome__audit_commit(audit, job, envs);
    free(envs);
    hub_arena_destroy(&arenas[0]);
    hub_arena_destroy(&arenas[1]);
    if (audit) {
        int r = outcome__audit_queue(audit, job->audit, job->n_audit);
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
    hub_audit_durable_head(audit, &job->audit_head);
    job->work_us = hub_monotonic_us() - started_us;
}

static void commit__on_commit_timer(uv_timer_t *t)
{
    commit__start(t->data);
}

/* Starts a group commit of everything gathered so far, unless one runs. */
void commit__start(hub_server_t *self)
{
    if (self->commit)
        return;
    /* An envelope delivered early (delivery__deliver_early) waits up to
     * HUB__SETTLE_WAIT_US for its receiver's settle: settled, the commit
     * keeps only its de-duplication record (hub_store_msg_t.settled)
     * instead of storing it now and deleting it in the next commit. The
     * commit takes the longest prefix of envelopes that are settled, were
     * not delivered early, or have waited long enough; the sender's ACK
     * waits for that, the round trip does not. */
    size_t ready = 0;
    uint64_t now_mono = hub_monotonic_us();
    while (ready < self->pending_n && ready < HUB__MAX_COMMIT_ITEMS) {
        const core__pending_t *p = &self->pending[ready];
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
        uv_timer_start(&self->commit_timer, commit__on_commit_timer, (left + 999) / 1000, 0);
    }
    /* Members with settles to write are counted as they get their first,
     * so that an idle turn does not walk every member (10,000 of them). */
    size_t n_settled = self->members_with_settles;
    size_t cursor = 0;
    void *value;
    if (ready == 0 && n_settled == 0 && self->attempt_n == 0 && self->dead_ttl_n == 0 &&
        self->dead_retry_n == 0 && self->dead_policy_n == 0 && self->answered_n == 0 &&
        self->auditq_n == 0 && !self->audit_tick_due && !self->prune_due)
        return;
    self->audit_tick_due = false;
    core__commit_t *job = calloc(1, sizeof *job);
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
        job->outcomes = calloc(take, sizeof *job->outcomes);
        if (!job->outcomes) {
            free(job);
            return;
        }
        if (take == self->pending_n) {
            /* Everything waiting goes: the commit takes the array itself,
             * and the next envelopes go to the last commit's (kept). */
            job->items = self->pending;
            job->items_cap = self->pending_cap;
            self->pending = self->items_spare;
            self->pending_cap = self->items_spare_cap;
            self->items_spare = NULL;
            self->items_spare_cap = 0;
        } else {
            /* The commit takes the array too, and the envelopes that wait
             * for the next one move to the last commit's array, when it can
             * hold them: an item (about 1 KiB) is copied once, only if it
             * stays, instead of the taken ones out and the rest down; and
             * no array is allocated (nor its pages touched anew). */
            size_t rest = self->pending_n - take;
            if (self->items_spare && self->items_spare_cap >= rest &&
                self->pending_cap <= HUB__SPARE_ITEMS_MAX) {
                memcpy(self->items_spare, self->pending + take, rest * sizeof *self->pending);
                job->items = self->pending;
                job->items_cap = self->pending_cap;
                self->pending = self->items_spare;
                self->pending_cap = self->items_spare_cap;
                self->items_spare = NULL;
                self->items_spare_cap = 0;
            } else {
                /* No spare to take the rest, or a pending array too large
                 * to keep as one (a burst): it stays, the taken envelopes
                 * are copied out. */
                if (self->items_spare && self->items_spare_cap >= take) {
                    job->items = self->items_spare;
                    job->items_cap = self->items_spare_cap;
                    self->items_spare = NULL;
                    self->items_spare_cap = 0;
                } else {
                    job->items = malloc(take * sizeof *job->items);
                    job->items_cap = take;
                }
                if (!job->items) {
                    free(job->outcomes);
                    free(job);
                    return;
                }
                memcpy(job->items, self->pending, take * sizeof *job->items);
                memmove(self->pending, self->pending + take, rest * sizeof *self->pending);
            }
        }
        self->pending_n -= take;
        for (size_t i = 0; i < take; i++)
            admit__request_note(self, &job->items[i]);
        for (size_t i = 0; i < take; i++)
            if (!job->items[i].early && self->pending_late_n > 0)
                self->pending_late_n--;
        if (self->pending_n == 0 && self->pending_cap > HUB__SPARE_ITEMS_MAX) {
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
            core__member_t *m = value;
            if (m->settled_n == 0)
                continue;
            core__ackgroup_t *g = &job->acks[job->n_acks++];
            snprintf(g->receiver, sizeof g->receiver, "%s", m->id);
            HUB_VEC_TAKE(g->seqs, g->n, m->settled, m->settled_n, m->settled_cap);
            self->members_with_settles--;
        }
    }
    HUB_VEC_TAKE(job->attempt_seqs, job->n_attempts, self->attempt_seqs, self->attempt_n,
                 self->attempt_cap);
    HUB_VEC_TAKE(job->dead_ttl, job->n_dead_ttl, self->dead_ttl, self->dead_ttl_n,
                 self->dead_ttl_cap);
    HUB_VEC_TAKE(job->dead_retry, job->n_dead_retry, self->dead_retry, self->dead_retry_n,
                 self->dead_retry_cap);
    HUB_VEC_TAKE(job->dead_policy, job->n_dead_policy, self->dead_policy, self->dead_policy_n,
                 self->dead_policy_cap);
    HUB_VEC_TAKE(job->answered, job->n_answered, self->answered, self->answered_n,
                 self->answered_cap);
    job->prune_dedup = self->prune_due;
    self->prune_due = false;
    /* Online records the end of the turn has not written yet (none when
     * this runs from there) are written here: not left to this commit. */
    outcome__audit_online(self);
    HUB_VEC_TAKE(job->audit, job->n_audit, self->auditq, self->auditq_n, self->auditq_cap);
    self->audit_online_from = 0;
    self->commit = job;
    uv_queue_work(self->loop, &job->req, commit__work, commit__after_commit);
}
