/* hub_server_ops.c — the hub as the operator surface sees it
 * (hub_ops_source.h): members, queues, counters, readiness and the
 * dead-letter actions, each a callback over the server's state, run on the
 * loop thread. */
#include "hub_core_internal.h"
#include "hub_cluster.h"

/* Public (hub_server.h), here so that this file needs nothing of
 * hub_server.c: the counters are what the operator surface shows. */
void hub_server_get_stats(const hub_server_t *self, hub_server_stats_t *out)
{
    *out = self->stats;
}

static void server_ops__members(void *ctx, hub_ops_member_visit visit, void *user)
{
    hub_server_t *self = ctx;
    /* Every member with a key, connected or not, then members seen that
     * have lost their key since. */
    for (size_t i = 0; i < hub_keydir_count(self->keys); i++) {
        const hub_keypair_t *kp = hub_keydir_at(self->keys, i);
        core__member_t *m = hub_map_get(self->members, kp->member_id);
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
            v.refusals = m->refusals;
            v.store_waiting = m->store_waiting;
        }
        /* Several nodes: connected to another one (hub_cluster.h). */
        const char *elsewhere = NULL;
        if (!v.online && self->cluster && cluster__elsewhere(self, kp->member_id, &elsewhere)) {
            v.online = true;
            v.services = elsewhere ? elsewhere : "";
        }
        if (self->cert_not_after)
            v.cert_not_after_us =
                (uint64_t)(uintptr_t)hub_map_get(self->cert_not_after, kp->member_id) * 1000000u;
        visit(&v, user);
    }
    CORE__FOREACH_MEMBER (self, m) {
        if (hub_keydir_find_member(self->keys, m->id))
            continue;
        hub_ops_member_t v = {m->id,
                              false,
                              m->online,
                              m->connected_at_us,
                              m->last_seen_us,
                              m->address,
                              m->services ? m->services : "",
                              m->msgs_in,
                              m->msgs_out,
                              m->bytes_in,
                              m->bytes_out,
                              m->inflight_open,
                              m->refusals,
                              0,
                              m->store_waiting};
        visit(&v, user);
    }
}

typedef struct {
    hub_server_t *self;
    hub_ops_queue_visit visit;
    void *user;
} server_ops__queue_visit_t;

static void server_ops__queue_cb(const char *receiver, uint64_t depth, uint64_t oldest, void *user)
{
    server_ops__queue_visit_t *qv = user;
    core__member_t *m = hub_map_get(qv->self->members, receiver);
    hub_ops_queue_t q = {receiver, depth, oldest, m ? m->inflight_open : 0};
    qv->visit(&q, qv->user);
}

static void server_ops__queues(void *ctx, hub_ops_queue_visit visit, void *user)
{
    server_ops__queue_visit_t qv = {ctx, visit, user};
    hub_store_queues(((hub_server_t *)ctx)->store, server_ops__queue_cb, &qv);
}

static void server_ops__stats(void *ctx, hub_server_stats_t *out)
{
    hub_server_get_stats(ctx, out);
}

static void server_ops__usage(void *ctx, uint64_t *used, uint64_t *max, uint64_t *dead,
                              uint64_t *audit_seq)
{
    hub_server_t *self = ctx;
    *used = *max = *dead = 0;
    hub_store_usage(self->store, used, max, dead);
    *audit_seq = self->audit_seq;
}

static void server_ops__audit(void *ctx, hub_ops_audit_t *out)
{
    hub_server_t *self = ctx;
    memset(out, 0, sizeof *out);
    out->on = self->cfg.audit;
    out->seq = self->audit_seq;
    out->head = self->audit_head;
    memcpy(out->sign_public, self->own_key.sign_public, 32);
    out->gap = self->audit_gap;
    out->tampered_seq = self->audit_tampered_seq;
    out->tsa_on = self->tsa != NULL;
    hub_tsa_client_state(self->tsa, &out->tsa);
}

static const struct hub_delegations *server_ops__delegations(void *ctx)
{
    return ((hub_server_t *)ctx)->delegations;
}

static bool server_ops__ready(void *ctx, const char **why_not)
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

static struct hub_store *server_ops__store(void *ctx)
{
    return ((hub_server_t *)ctx)->store;
}

/* Reading resumes once a replay had its moment between commits (or its
 * operator stopped retrying: server__end_of_turn). */
void server_ops__replay_drained(hub_server_t *self)
{
    if (!self->replay_drain_until_us)
        return;
    self->replay_drain_until_us = 0;
    hub_zsock_resume(self->router_watch);
}

static int server_ops__dlq_replay(void *ctx, uint64_t seq)
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
    if (self->pending_n > 0 || self->commit) {
        if (!self->replay_drain_until_us) {
            hub_zsock_pause(self->router_watch);
            HUB_INFO("dlq", "replay waits for the commits in flight: reading paused",
                     "hub_seq=%llu", (unsigned long long)seq);
        }
        /* Renewed by each retry (hubctl retries every 25 ms). */
        self->replay_drain_until_us = hub_now_us() + 500000u;
        return HUB_EAGAIN;
    }
    server_ops__replay_drained(self);
    /* An admin action: one store transaction on the loop thread. */
    rc = hub_store_dlq_replay(self->store, seq, (uint64_t)self->cfg.default_ttl_ms * 1000u,
                              self->next_seq++, &new_seq);
    if (rc != 0)
        return rc;
    char reason[64];
    snprintf(reason, sizeof reason, "replayed as hub_seq %llu", (unsigned long long)new_seq);
    members__audit_q(self, HUB_AUDIT_REPLAYED, dead.msg.message_id, seq, dead.msg.sender,
                     dead.msg.receiver, dead.msg.service, reason);
    HUB_INFO("dlq", "dead letter replayed", "hub_seq=%llu new_seq=%llu receiver=%s",
             (unsigned long long)seq, (unsigned long long)new_seq, dead.msg.receiver);
    core__member_t *m = hub_map_get(self->members, dead.msg.receiver);
    if (m) {
        m->backlog = true;
        m->rescan = true; /* cluster: the new seq may be below loaded_seq */
        delivery__pump(self, m);
    }
    return 0; /* flushed and committed at the end of this turn */
}

static int server_ops__dlq_purge(void *ctx, uint64_t seq)
{
    hub_server_t *self = ctx;
    hub_store_dead_t dead;
    int rc = hub_store_dlq_get(self->store, seq, &dead, NULL);
    if (rc == 0)
        rc = hub_store_dlq_purge(self->store, seq);
    if (rc == 0)
        HUB_INFO("dlq", "dead letter purged", "hub_seq=%llu receiver=%s", (unsigned long long)seq,
                 dead.msg.receiver);
    return rc;
}

static int server_ops__dlq_purge_older(void *ctx, uint64_t before_us, uint64_t *purged)
{
    size_t n = 0;
    int rc = hub_store_dlq_purge_older(((hub_server_t *)ctx)->store, before_us, &n);
    *purged = n;
    if (rc == 0)
        HUB_INFO("dlq", "old dead letters purged", "count=%zu", n);
    return rc;
}

/* One node alone lists itself; several list what the store says (as the
 * last cluster beat read it). */
static void server_ops__nodes(void *ctx, hub_ops_node_visit visit, void *user)
{
    hub_server_t *self = ctx;
    if (self->cluster) {
        cluster__nodes(self, visit, user);
        return;
    }
    uint32_t online = (uint32_t)members__online(self);
    hub_ops_node_t n = {self->cfg.node_id, self->endpoint, hub_now_us(), online, true, true};
    visit(&n, user);
}

static hub_ops_source_t server_ops__source_one(hub_server_t *self);

/* Several nodes: flows and delegation counts for the whole hub. */
static void server_ops__count_nodes(void *ctx, hub_ops_count_node_visit visit, void *user)
{
    cluster__count_nodes(ctx, visit, user);
}

static void server_ops__flow_counts(void *ctx, hub_flows_visit visit, void *user)
{
    cluster__flow_counts(ctx, visit, user);
}

static void server_ops__delegation_counts(void *ctx, const char *rule_key, const char *procedure,
                                          uint64_t *carried, uint64_t *last_used_us)
{
    cluster__delegation_counts(ctx, rule_key, procedure, carried, last_used_us);
}

hub_ops_source_t server_ops__source(hub_server_t *self)
{
    hub_ops_source_t src = server_ops__source_one(self);
    if (self->cluster) {
        src.count_nodes = server_ops__count_nodes;
        src.flow_counts = server_ops__flow_counts;
        src.delegation_counts = server_ops__delegation_counts;
    }
    return src;
}

static hub_ops_source_t server_ops__source_one(hub_server_t *self)
{
    return (hub_ops_source_t){self,
                              server_ops__members,
                              server_ops__queues,
                              server_ops__stats,
                              server_ops__usage,
                              server_ops__ready,
                              server_ops__store,
                              server_ops__dlq_replay,
                              server_ops__dlq_purge,
                              server_ops__dlq_purge_older,
                              server_ops__audit,
                              server_ops__nodes,
                              server_ops__delegations,
                              NULL,
                              NULL,
                              NULL};
}
