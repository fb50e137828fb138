/* hub_members.c — the member table (one record per member id, interned:
 * its id pointer lives as long as the server) and the queue of audit
 * records the loop hands to the commit worker. */
#include "hub_core_internal.h"

core__member_t *members__next(const hub_server_t *self, size_t *cursor)
{
    void *value;
    return hub_map_next(self->members, cursor, NULL, &value) ? value : NULL;
}

size_t members__online(const hub_server_t *self)
{
    size_t online = 0;
    CORE__FOREACH_MEMBER (self, m)
        online += m->online;
    return online;
}

core__member_t *members__member(hub_server_t *self, const char *id)
{
    core__member_t *m = hub_map_get(self->members, id);
    if (m)
        return m;
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->id, sizeof m->id, "%s", id);
    m->conn_fd = -1;
    if (hub_map_put(self->members, m->id, m) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

static bool members__offers(hub_server_t *self, const char *member, const char *service)
{
    core__member_t *m = member && *member ? hub_map_get(self->members, member) : NULL;
    if (!m || !m->services)
        return false;
    size_t len = strlen(service);
    for (const char *p = m->services; (p = strstr(p, service)) != NULL; p += len) {
        bool starts = p == m->services || p[-1] == ',';
        bool ends = p[len] == '\0' || p[len] == ',';
        if (starts && ends)
            return true;
    }
    return false;
}

/* The service as a metrics label: only a service offered in a Hello, so
 * that no member can grow the label set at will. A request's service is
 * one its receiver offers; a reply carries its request's service, which
 * the replier (its sender) offers, so a reply is labelled by the service
 * of its request, not "_unlisted". */
const char *members__service_label(hub_server_t *self, const char *sender, const char *receiver,
                                   const char *service)
{
    if (!service || !*service)
        return "_unlisted";
    if (members__offers(self, receiver, service) || members__offers(self, sender, service))
        return service;
    return "_unlisted";
}

/* Forgets the receipts a member holds (they belong to its connection). */
void members__held_free(core__member_t *m)
{
    for (size_t i = 0; i < m->held_n; i++)
        send__receipts_free(&m->held[i]);
    m->held_n = 0;
}

void members__member_free(core__member_t *m)
{
    send__blocked_drop(m);
    delivery__member_reset_delivery(m);
    members__held_free(m);
    free(m->held);
    for (size_t i = 0; i < m->out_n; i++)
        if (!m->out[i].lent)
            free(m->out[i].bytes);
    free(m->out);
    free(m->inflight);
    free(m->settled);
    free(m->services);
    free(m);
}

/* Queues an audit record for the commit worker. */
void members__audit_q(hub_server_t *self, hub_audit_event_t event, const char *message_id,
                      uint64_t hub_seq, const char *sender, const char *receiver,
                      const char *service, const char *reason)
{
    members__audit_q_ev(self, event, message_id, hub_seq, sender, receiver, service, reason, NULL);
}

/* The same with what the record says of the envelope (hub_outcome.c). The
 * hub's own id is kept as it is (it is no member of the table). */
void members__audit_q_ev(hub_server_t *self, hub_audit_event_t event, const char *message_id,
                         uint64_t hub_seq, const char *sender, const char *receiver,
                         const char *service, const char *reason, const core__evidence_t *ev)
{
    if (!self->audit) {
        if (ev)
            free(ev->bytes);
        return;
    }
    core__auditq_t q;
    q.event = event;
    q.time_us = hub_now_us();
    q.hub_seq = hub_seq;
    core__copy_str(q.message_id, sizeof q.message_id, message_id);
    const char *own = self->own_key.member_id;
    core__member_t *s =
        sender && *sender && strcmp(sender, own) ? members__member(self, sender) : NULL;
    core__member_t *r =
        receiver && *receiver && strcmp(receiver, own) ? members__member(self, receiver) : NULL;
    q.sender = s ? s->id : sender && !strcmp(sender, own) ? own : "";
    q.receiver = r ? r->id : receiver && !strcmp(receiver, own) ? own : "";
    q.service = service && *service ? strdup(service) : NULL;
    q.reason = reason && *reason ? strdup(reason) : NULL;
    q.has_evidence = ev != NULL;
    q.online = q.written = false;
    if (ev)
        q.ev = *ev; /* takes its bytes */
    else
        q.ev.bytes = NULL;
    if (HUB__PUSH(self->auditq, self->auditq_n, self->auditq_cap, q) != 0) {
        free(q.service);
        free(q.reason);
        free(q.ev.bytes);
        HUB_ERROR("audit", "out of memory: an audit record was lost", "event=%s",
                  hub_audit_event_name(event));
    }
}

/* One copy of text for as long as the server lives (purposes: a record in
 * the audit queue outlives a reload of the policy that held its text).
 * NULL when out of memory. The set grows only with the operator's texts. */
const char *members__intern(hub_server_t *self, const char *text)
{
    if (!self->interned)
        return NULL;
    const char *known = hub_map_get(self->interned, text);
    if (known)
        return known;
    char *copy = strdup(text);
    if (!copy || hub_map_put(self->interned, copy, copy) != 0) {
        free(copy);
        return NULL;
    }
    return copy;
}

void members__auditq_free(core__auditq_t *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q[i].service);
        free(q[i].reason);
        if (q[i].has_evidence)
            free(q[i].ev.bytes);
    }
    free(q);
}
