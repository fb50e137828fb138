/* hub_outcome.c — outcomes: every envelope the hub routes ends as one or
 * more of refused (with its NACK code), accepted, delivered, settled and
 * dead-lettered, and each is recorded here, once: its audit record, its
 * flow and its counters. The stages decide; this file only records.
 *
 * Audit records of the loop thread go to the commit worker in the audit
 * queue (members__audit_q_ev), which writes them with the next group commit:
 * the loop never waits for the disk. Those of online-only exchanges, which
 * leave the hub at the end of the turn with no commit to wait for, the loop
 * writes itself, just before (outcome__audit_online): a killed hubd leaves
 * no exchange out of the log. What the worker writes itself (the
 * acceptance of queued envelopes, before their ACK; dead letters) is at the
 * end of this file. A record holds a keyed MAC of the envelope digest,
 * never the payload, a plain hash of it or the signature (hub_audit.h says
 * why). */
#include "hub_core_internal.h"
#include "hub_ctype.h"

/* ------------------------------------------------------------------------ */
/* Evidence: what a record says of an envelope                               */

/* The dossier code of the known dossier services' payloads (proto/domain.proto):
 * CitizenLookupRequest.dossier_code (5) of citizen.lookup/v1, and
 * Dossier.dossier_code / DossierStatusChange.dossier_code (1) of
 * dossier.submit/v1 and dossier.status/v1, in their protobuf encoding. Only
 * the top level is walked, tags and lengths, no decoding and no copy of
 * anything but the code; any other service or content type has none. The
 * envelope carries no header for it, and a new signed field would change
 * the digest every SDK computes (LTH-ENVELOPE-V2). A code is not personal
 * data; bytes other than printable ASCII become '?'. */
static void outcome__dossier_code(const hub_envelope_t *env, char out[HUB_AUDIT_WORD_MAX + 1])
{
    out[0] = '\0';
    static const char media[] = "application/x-protobuf";
    if (!env->service || !env->content_type ||
        strncmp(env->content_type, media, sizeof media - 1) != 0 ||
        env->kind == LTH__V1__KIND__KIND_REPLY)
        return;
    uint32_t want;
    if (!strcmp(env->service, "citizen.lookup/v1"))
        want = 5;
    else if (!strcmp(env->service, "dossier.submit/v1") ||
             !strcmp(env->service, "dossier.status/v1"))
        want = 1;
    else
        return;
    const uint8_t *p = env->payload.data, *end = p + env->payload.len;
    const uint8_t *found = NULL;
    size_t found_len = 0;
    uint32_t field;
    const uint8_t *value;
    size_t value_len;
    /* The last occurrence wins, as protobuf decoders do. */
    while (p && p < end && hub_pb_next(&p, end, &field, &value, &value_len))
        if (field == want && value) {
            found = value;
            found_len = value_len;
        }
    if (found_len > HUB_AUDIT_WORD_MAX)
        found_len = HUB_AUDIT_WORD_MAX;
    for (size_t i = 0; found && i < found_len; i++)
        out[i] = found[i] >= 0x20 && found[i] < 0x7f ? (char)found[i] : '?';
    out[found ? found_len : 0] = '\0';
}

/* One parameter of the origin a gateway states in a forward's content type
 * (docs/HUB2HUB.md): the value of the last parameter called name, printable
 * ASCII only (anything else and '\\' become '?'), at most size - 1 bytes.
 * Empty when absent. The last: the gateway appends its parameters, and
 * hub_ct_next skips what a caller hid in a quoted value before them. */
static void outcome__origin_param(const char *ct, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    const char *cursor = ct;
    hub_ct_part_t part;
    if (!hub_ct_next(&cursor, &part)) /* the media type */
        return;
    while (hub_ct_next(&cursor, &part))
        if (hub_ct_named(&part, name))
            hub_ct_value(&part, out, size, NULL);
    for (unsigned char *p = (unsigned char *)out; *p; p++)
        if (*p < 0x20 || *p >= 0x7f || *p == '\\')
            *p = '?';
}

/* The origin a gateway member (adapters/plugins/hubgate) states for a
 * request it forwards from another hub, as a sentence for the record's
 * reason: the content type's lth-origin, lth-origin-hub and lth-origin-id
 * parameters, which the gateway signed with the envelope. The hub does not
 * check them: the record says whose claim it is. Requests only (a reply
 * that echoes its request's content type states nothing). false when there
 * is none (the usual case: one strstr over the content type). */
static bool outcome__origin_of(const hub_envelope_t *env, char *out, size_t size)
{
    if (!env || env->kind != LTH__V1__KIND__KIND_REQUEST || !env->content_type ||
        !strstr(env->content_type, "lth-origin=\""))
        return false;
    char member[HUB_MEMBER_ID_MAX + 1], hub[HUB_MEMBER_ID_MAX + 1], id[HUB_UUID_LEN + 1];
    outcome__origin_param(env->content_type, "lth-origin", member, sizeof member);
    outcome__origin_param(env->content_type, "lth-origin-hub", hub, sizeof hub);
    outcome__origin_param(env->content_type, "lth-origin-id", id, sizeof id);
    if (!member[0] && !hub[0] && !id[0])
        return false; /* only inside another parameter's quoted value */
    snprintf(out, size, "origin stated by the sender: %s at hub %s, request %s",
             member[0] ? member : "?", hub[0] ? hub : "?", id[0] ? id : "?");
    return true;
}

/* Fills what the audit record says of env: its digest (given, when the
 * signature check computed it, else computed here; the log keeps only a
 * keyed MAC of it), the dossier code and the purpose. Not the sender's
 * signature: with the sender's public key it would confirm a guessed
 * payload (hub_audit.h). */
void outcome__evidence_of(hub_server_t *self, const hub_envelope_t *env, const uint8_t *digest,
                          const char *purpose, core__evidence_t *out)
{
    memset(out, 0, sizeof *out);
    out->purpose = purpose && *purpose ? members__intern(self, purpose) : NULL;
    if (!env)
        return;
    if (digest) {
        memcpy(out->digest, digest, 32);
        out->has_digest = true;
    } else {
        out->has_digest = hub_envelope_digest(env, out->digest) == 0;
    }
    outcome__dossier_code(env, out->dossier);
}

/* The same for an envelope accepted without the store (outcome__accepted),
 * whose record the loop writes at the end of this turn: the digest (the
 * signature check's, when it ran; else hashed here, from the decoded
 * envelope) and the dossier code now, and a copy of the envelope for the
 * message archive, which keeps online-only envelopes as well as stored
 * ones (the commit worker hands it over). */
void outcome__evidence_later(hub_server_t *self, const hub_envelope_t *env, const uint8_t *bytes,
                             size_t len, const uint8_t *digest, const char *purpose,
                             core__evidence_t *out)
{
    outcome__evidence_of(self, env, digest, purpose, out);
    if (self->archive) {
        out->bytes = malloc(len ? len : 1);
        if (out->bytes) {
            memcpy(out->bytes, bytes, len);
            out->len = len;
            out->archive = true;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Outcomes (loop thread)                                                    */

/* A refusal: audit record, flow, and a log line (rate-limited per member).
 * The NACK itself is in the receipts already (send__receipt_add_nack). */
void outcome__refused(hub_server_t *self, core__receipts_t *r, const char *message_id, int code,
                      const char *reason)
{
    if (self->audit && !r->audited) {
        char audit_reason[1200], origin[600];
        int n =
            snprintf(audit_reason, sizeof audit_reason, "%s: %s", hub_nack_code_name(code), reason);
        if (n > 0 && (size_t)n < sizeof audit_reason &&
            outcome__origin_of(r->env, origin, sizeof origin))
            snprintf(audit_reason + n, sizeof audit_reason - (size_t)n, " (%s)", origin);
        core__evidence_t ev;
        outcome__evidence_of(self, r->env, NULL, r->purpose, &ev);
        ev.outcome = hub_nack_code_name(code);
        /* The receiver only once the hub knows it (never a name a member
         * made up); the service as the envelope says. */
        const char *service = r->service ? r->service : r->env ? r->env->service : NULL;
        members__audit_q_ev(self, HUB_AUDIT_NACKED, message_id, 0, r->sender, r->receiver, service,
                            audit_reason, &ev);
    }
    if (self->flows) {
        uint64_t now = hub_now_us();
        const char *rcv = r->receiver ? r->receiver : "";
        const char *svc =
            r->receiver ? members__service_label(self, r->sender, r->receiver, r->service) : "";
        hub_flows_refused(self->flows, r->sender ? r->sender : "", rcv, svc,
                          hub_nack_code_name(code), now);
        hub_flows_exchange_t x = {message_id ? message_id : "",
                                  r->sender ? r->sender : "",
                                  rcv,
                                  svc,
                                  hub_nack_code_name(code),
                                  0,
                                  now,
                                  0};
        hub_flows_exchange(self->flows, &x);
    }
    core__member_t *sm = r->sender ? hub_map_get(self->members, r->sender) : NULL;
    if (sm && !send__refusal_log_ok(self, sm))
        return;
    HUB_INFO("router", "envelope refused", "member=%s code=%s message_id=%s reason=\"%s\"",
             r->sender ? r->sender : "-", hub_nack_code_name(code),
             message_id && *message_id ? message_id : "-", reason);
}

/* Accepted without the store: online-only envelopes (handed to the
 * receiver's connection at once: delivered), publications nobody keeps,
 * and metaservice requests the hub answers itself. receiver: an interned
 * member id or the hub's own id. */
void outcome__accepted(hub_server_t *self, const hub_envelope_t *env, const char *receiver,
                       size_t len, const core__evidence_t *ev, const char *outcome, bool delivered)
{
    self->stats.envelopes_accepted++;
    if (self->audit) {
        core__evidence_t e;
        if (ev)
            e = *ev;
        else
            memset(&e, 0, sizeof e);
        e.outcome = outcome;
        char origin[600];
        bool has_origin = outcome__origin_of(env, origin, sizeof origin);
        if (!has_origin && env->kind != LTH__V1__KIND__KIND_REPLY && receiver &&
            strcmp(receiver, env->receiver) != 0) {
            /* Routed to a delegate (online-only): as for queued envelopes. */
            char procedure[HUB_PROCEDURE_CODE_MAX];
            const char *why = NULL;
            bool named = hub_delegation_procedure_of(env->content_type, procedure, &why) > 0;
            snprintf(origin, sizeof origin, "delegated by %s%s%s", env->receiver,
                     named ? " for procedure " : "", named ? procedure : "");
            has_origin = true;
        }
        size_t at = self->auditq_n;
        members__audit_q_ev(self, HUB_AUDIT_ACCEPTED, env->message_id, 0, env->sender, receiver,
                            env->service, has_origin ? origin : NULL, &e);
        if (self->auditq_n > at) {
            self->auditq[at].online = true; /* written at the end of this turn */
            self->audit_online_n++;
        }
    }
    if (!delivered || !self->flows)
        return;
    /* Counted once per run of one flow (a Batch's envelopes to one
     * receiver and service, usually): one look-up of the flow and of the
     * service's label, one clock read, instead of one each. */
    core__passed_t *run = &self->passed;
    if (run->sender && run->receiver == receiver && !strcmp(run->sender, env->sender) &&
        !strcmp(run->service, env->service)) {
        run->n++;
        run->bytes += len;
        return;
    }
    outcome__passed_flush(self);
    core__member_t *s = hub_map_get(self->members, env->sender); /* the hub itself: none */
    if (!s || strlen(env->service) >= sizeof run->service) {
        hub_flows_passed(self->flows, env->sender, receiver,
                         members__service_label(self, env->sender, receiver, env->service), len,
                         hub_now_us());
        return;
    }
    run->sender = s->id;
    run->receiver = receiver;
    core__copy_str(run->service, sizeof run->service, env->service);
    const char *label = members__service_label(self, env->sender, receiver, env->service);
    run->label = label == env->service ? run->service : label;
    run->n = 1;
    run->bytes = len;
    run->now_us = hub_now_us();
}

void outcome__passed_flush(hub_server_t *self)
{
    core__passed_t *run = &self->passed;
    if (!run->sender)
        return;
    hub_flows_passed_n(self->flows, run->sender, run->receiver, run->label, run->n, run->bytes,
                       run->now_us);
    run->sender = NULL;
    run->n = run->bytes = 0;
}

/* n queued envelopes of one flow (sender, receiver, service) are in the
 * store (their ACCEPTED records were written by the commit worker, before
 * the ACKs): the flow is counted once. copy: subscribers' copies of a
 * publication, whose one receipt is counted with the group's ACK; else
 * each is an accepted exchange too, of which the recent-exchanges list,
 * which keeps the last HUB_FLOWS_EXCHANGES, gets those that would stay
 * in it. */
void outcome__committed(hub_server_t *self, const core__pending_t *items, size_t n, bool copy)
{
    if (n == 0)
        return;
    const hub_store_msg_t *first = &items[0].msg;
    const char *label =
        members__service_label(self, first->sender, first->receiver, first->service);
    uint64_t now = hub_now_us(), bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += items[i].msg.envelope_len;
    hub_flows_accepted_n(self->flows, first->sender, first->receiver, label, n, bytes, now);
    if (copy)
        return;
    self->stats.envelopes_accepted += n;
    for (size_t i = n > HUB_FLOWS_EXCHANGES ? n - HUB_FLOWS_EXCHANGES : 0; i < n; i++) {
        const hub_store_msg_t *msg = &items[i].msg;
        hub_flows_exchange_t x = {msg->message_id, msg->sender,       msg->receiver, label,
                                  "accepted",      msg->envelope_len, now,           0};
        hub_flows_exchange(self->flows, &x);
    }
}

/* A queued envelope handed to its receiver's connection. why: "attempt 1",
 * "redelivery after no settle", …; flows: count it in the flows too (a
 * redelivery is not a new delivery there). */
void outcome__delivered(hub_server_t *self, const hub_store_msg_t *msg, const char *receiver,
                        const char *why, bool flows)
{
    members__audit_q(self, HUB_AUDIT_DELIVERED, msg->message_id, msg->seq, msg->sender, receiver,
                     msg->service, why);
    if (!flows)
        return;
    uint64_t now = hub_now_us();
    hub_flows_delivered(self->flows, msg->sender, receiver,
                        members__service_label(self, msg->sender, receiver, msg->service),
                        now > msg->accepted_at_us ? now - msg->accepted_at_us : 0, now);
}

/* The receiver settled seq: f is its delivery on this connection, or NULL
 * when it was delivered before a reconnect or a restart. */
void outcome__settled(hub_server_t *self, const core__member_t *m, const core__inflight_t *f,
                      uint64_t seq)
{
    if (!f) {
        members__audit_q(self, HUB_AUDIT_SETTLED, NULL, seq, NULL, m->id, NULL,
                         "settled after a reconnect or restart");
        return;
    }
    members__audit_q(self, HUB_AUDIT_SETTLED, f->message_id, seq, f->sender, m->id, f->service,
                     NULL);
    uint64_t now = hub_now_us();
    uint64_t e2e = now > f->accepted_at_us ? now - f->accepted_at_us : 0;
    const char *label = members__service_label(self, f->sender, m->id, f->service);
    hub_flows_settled(self->flows, f->sender, m->id, label, e2e, now);
    hub_flows_exchange_t x = {f->message_id, f->sender, m->id, label, "settled", 0, now, e2e};
    hub_flows_exchange(self->flows, &x);
}

/* A queued message went to the dead-letter queue (its record was written
 * by the commit worker, which moved it). */
void outcome__dead_lettered(hub_server_t *self, const hub_store_msg_t *d)
{
    self->stats.dead_lettered++;
    core__member_t *sm = hub_map_get(self->members, d->sender);
    core__member_t *rm = hub_map_get(self->members, d->receiver);
    if (sm && rm) /* bounded labels: both are members the hub knows */
        hub_flows_dead_lettered(self->flows, sm->id, rm->id,
                                members__service_label(self, sm->id, rm->id, d->service),
                                hub_now_us());
}

/* ------------------------------------------------------------------------ */
/* The records a commit writes itself (worker thread)                        */

static int outcome__put(hub_audit_t *audit, hub_audit_event_t event, uint64_t time_us,
                        const char *message_id, uint64_t hub_seq, const char *sender,
                        const char *receiver, const char *service, const char *reason,
                        const core__evidence_t *ev)
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
    if (ev) {
        rec.purpose = ev->purpose;
        rec.dossier = ev->dossier;
        rec.outcome = ev->outcome;
        rec.has_digest = ev->has_digest; /* the log writes its keyed MAC */
        memcpy(rec.digest, ev->digest, 32);
    }
    return hub_audit_append(audit, &rec);
}

/* What kind of envelope a queued acceptance was. */
static const char *outcome__queued_outcome(const core__pending_t *p, const hub_envelope_t *env)
{
    if (p->group_id[0])
        return "publication queued";
    if (!env)
        return "queued";
    switch (env->kind) {
    case LTH__V1__KIND__KIND_REQUEST: return "request queued";
    case LTH__V1__KIND__KIND_REPLY: return "reply queued";
    default: return "event queued";
    }
}

/* The dead letters and the fate of each queued envelope of one commit,
 * after the store's commit: the log says what the store now holds.
 * envs[i] is items[i] decoded (or NULL). Returns 0 or the last error. */
int outcome__audit_commit(hub_audit_t *audit, core__commit_t *job, hub_envelope_t **envs)
{
    int arc = 0;
    for (size_t i = 0; job->dead && i < job->n_dead; i++) {
        const hub_store_msg_t *d = &job->dead[i];
        core__evidence_t ev;
        memset(&ev, 0, sizeof ev);
        ev.outcome = "dead-lettered";
        int a = outcome__put(audit, HUB_AUDIT_DEAD_LETTERED, 0, d->message_id, d->seq, d->sender,
                             d->receiver, d->service, job->dead_reason[i], &ev);
        if (a != 0)
            arc = a;
    }
    for (size_t i = 0; i < job->n_items; i++) {
        core__pending_t *p = &job->items[i];
        const hub_envelope_t *env = envs ? envs[i] : NULL;
        char reason[640];
        hub_audit_event_t event = HUB_AUDIT_NACKED;
        const char *outcome = NULL;
        if (p->verdict != 0) {
            snprintf(reason, sizeof reason, "BAD_SIGNATURE: the signature does not verify");
            outcome = "BAD_SIGNATURE";
        } else if (job->append_rc == HUB_EAGAIN) {
            snprintf(reason, sizeof reason, "UNAVAILABLE: store commit did not complete (%s)",
                     hub_strerror(job->append_rc));
            outcome = "UNAVAILABLE";
        } else if (job->append_rc != 0) {
            snprintf(reason, sizeof reason, "INTERNAL: store commit failed (%s)",
                     hub_strerror(job->append_rc));
            outcome = "INTERNAL";
        } else if (job->outcomes[i] == HUB_STORE_QUEUE_FULL) {
            snprintf(reason, sizeof reason, "QUEUE_FULL");
            outcome = reason;
        } else if (job->outcomes[i] == HUB_STORE_FULL) {
            snprintf(reason, sizeof reason, "STORE_FULL");
            outcome = reason;
        } else if (job->outcomes[i] == HUB_STORE_QUOTA_SENDER) {
            snprintf(reason, sizeof reason, "QUOTA_EXCEEDED: the sender's");
            outcome = "QUOTA_EXCEEDED";
        } else if (job->outcomes[i] == HUB_STORE_QUOTA_RECEIVER) {
            snprintf(reason, sizeof reason, "QUOTA_EXCEEDED: the receiver's");
            outcome = "QUOTA_EXCEEDED";
        } else if (job->outcomes[i] == HUB_STORE_DUPLICATE) {
            continue; /* already recorded when first accepted */
        } else {
            event = HUB_AUDIT_ACCEPTED;
            outcome = outcome__queued_outcome(p, env);
        }
        bool has_reason = event != HUB_AUDIT_ACCEPTED;
        if (event == HUB_AUDIT_ACCEPTED && p->delegated_from) {
            /* "delegated by": the authority addressed, which the record's
             * receiver (the delegate) acts for. */
            snprintf(reason, sizeof reason, "delegated by %s%s%s", p->delegated_from,
                     p->delegated_procedure ? " for procedure " : "",
                     p->delegated_procedure ? p->delegated_procedure : "");
            has_reason = true;
        } else if (event == HUB_AUDIT_ACCEPTED) {
            has_reason = outcome__origin_of(env, reason, sizeof reason);
        }
        core__evidence_t ev;
        memset(&ev, 0, sizeof ev);
        ev.purpose = p->purpose;
        ev.outcome = outcome;
        if (env) {
            /* The digest the store keeps, when known: hashed once. */
            bool known = false;
            for (size_t k = 0; k < sizeof p->msg.digest && !known; k++)
                known = p->msg.digest[k] != 0;
            if (known) {
                memcpy(ev.digest, p->msg.digest, sizeof ev.digest);
                ev.has_digest = true;
            } else {
                ev.has_digest = hub_envelope_digest(env, ev.digest) == 0;
            }
            outcome__dossier_code(env, ev.dossier);
        }
        int r = outcome__put(audit, event, 0, p->msg.message_id,
                             event == HUB_AUDIT_ACCEPTED ? p->msg.seq : 0, p->msg.sender,
                             p->msg.receiver, p->msg.service, has_reason ? reason : NULL, &ev);
        if (r != 0)
            arc = r;
    }
    return arc;
}

/* Appends one queued record; a digest the loop could not compute is read
 * from the envelope's copy, with the dossier code. */
static int outcome__audit_item(hub_audit_t *audit, const core__auditq_t *q)
{
    core__evidence_t ev = {0};
    if (q->has_evidence)
        ev = q->ev;
    if (q->has_evidence && ev.bytes && !ev.has_digest) {
        hub_envelope_t *env = NULL;
        if (hub_envelope_decode(ev.bytes, ev.len, &env) == 0) {
            ev.has_digest = hub_envelope_digest(env, ev.digest) == 0;
            outcome__dossier_code(env, ev.dossier);
        }
        hub_envelope_free(&env);
    }
    return outcome__put(audit, q->event, q->time_us, q->message_id, q->hub_seq, q->sender,
                        q->receiver, q->service, q->reason, q->has_evidence ? &ev : NULL);
}

/* The records the loop queued since the last commit, in order, but those
 * the loop wrote itself (outcome__audit_online). */
int outcome__audit_queue(hub_audit_t *audit, const core__auditq_t *q, size_t n)
{
    int arc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = q[i].written ? 0 : outcome__audit_item(audit, &q[i]);
        if (r != 0)
            arc = r;
    }
    return arc;
}

/* ------------------------------------------------------------------------ */
/* Online-only exchanges (loop thread, end of turn)                          */

/* The records of the online-only exchanges of this turn go into the log,
 * in one write(2) and without a sync, before the turn's deliveries and
 * receipts go to ZeroMQ (server__end_of_turn): once an envelope has left,
 * its record is in the page cache, which a killed hubd leaves behind. The
 * group commit the same end of turn starts (or the next, while one runs)
 * takes them in the audit queue and its flush fdatasyncs them (hub_audit.h:
 * the bound on what a power loss takes). The log's mutex is held for each
 * append and the write, never across the worker's fdatasync. A failed
 * append leaves the record to the worker, which reports the error. */
void outcome__audit_online(hub_server_t *self)
{
    if (self->audit_online_n == 0)
        return;
    self->audit_online_n = 0;
    bool any = false;
    for (size_t i = self->audit_online_from; i < self->auditq_n; i++) {
        core__auditq_t *q = &self->auditq[i];
        if (q->online && !q->written && outcome__audit_item(self->audit, q) == 0)
            q->written = any = true;
    }
    self->audit_online_from = self->auditq_n;
    if (any)
        (void)hub_audit_write(self->audit); /* an error breaks the log: the worker says so */
}
