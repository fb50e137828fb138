/* hub_ops_routes — the read-only JSON routes of /api/v1 (status, members,
 * queues, flows, exchanges, throughput), health, and the dashboard's files. */
#include "hub_ops_internal.h"
#include "hub_dashboard.h"
#include "hub_delegation.h"
#include "hub_memberdir.h"
#include "hub_error.h"
#include "hub_jsonw.h"
#include "hub_log.h"
#include "hub_map.h"
#include "hub_store.h"
#include "hub_wire.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- JSON routes ------------------------------------------------------- */

void hub_ops__route_healthz(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    (void)self;
    (void)req;
    static const char body[] = "{\"status\":\"ok\"}";
    hub_ops__respond(resp, 200, "application/json", body, sizeof body - 1);
}

void hub_ops__route_readyz(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    (void)req;
    const char *why = NULL;
    bool ready = self->src.ready ? self->src.ready(self->src.ctx, &why) : false;
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    size_t n_alarms = 0;
    hub_alarms_active(self->alarms, &n_alarms);
    hub_jsonw_kv_str(&w, "status", !ready ? "not ready" : n_alarms ? "degraded" : "ready");
    if (!ready)
        hub_jsonw_kv_str(&w, "reason", why ? why : "the hub is starting");
    hub_ops__alarms_json(self, &w);
    hub_jsonw_object_end(&w);
    hub_ops__respond_json(resp, ready ? 200 : 503, &w);
}

typedef struct {
    uint64_t accepted, refused, delivered, settled, dead_lettered;
} ops_routes__sums_t;

void hub_ops__route_status(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    (void)req;
    uint64_t now = hub_now_us();
    hub_ops__figures_t fig;
    hub_ops__figures(self, &fig);
    hub_ops__members_t ms;
    hub_ops__queues_t qs;
    if (hub_ops__members_snapshot(self, &ms) != 0) {
        hub_ops__error(resp, 500, "out of memory");
        return;
    }
    if (hub_ops__queues_snapshot(self, &qs) != 0) {
        hub_ops__members_free(&ms);
        hub_ops__error(resp, 500, "out of memory");
        return;
    }
    size_t known = 0, connected = 0;
    for (size_t i = 0; i < ms.n; i++) {
        known += ms.items[i].known;
        connected += ms.items[i].online;
    }
    uint64_t depth = 0, in_flight = 0, oldest = 0;
    for (size_t i = 0; i < qs.n; i++) {
        depth += qs.items[i].depth;
        in_flight += qs.items[i].in_flight;
        uint64_t o = qs.items[i].oldest_accepted_us;
        if (o && (!oldest || o < oldest))
            oldest = o;
    }
    ops_routes__sums_t last_minute = {0};
    hub_flows_tick_t *ticks = malloc(HUB_FLOWS_THROUGHPUT_S * sizeof *ticks);
    if (ticks) {
        hub_flows_throughput(self->flows, now, ticks);
        for (size_t i = HUB_FLOWS_THROUGHPUT_S - 60; i < HUB_FLOWS_THROUGHPUT_S; i++) {
            last_minute.accepted += ticks[i].accepted;
            last_minute.refused += ticks[i].refused;
            last_minute.delivered += ticks[i].delivered;
            last_minute.settled += ticks[i].settled;
            last_minute.dead_lettered += ticks[i].dead_lettered;
        }
        free(ticks);
    }
    hub_http_stats_t hs;
    hub_http_stats(self->http, &hs);

    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_str(&w, "version", HUB_VERSION);
    hub_jsonw_kv_u64(&w, "now_us", now);
    hub_jsonw_kv_u64(&w, "started_at_us", self->started_at_us);
    hub_jsonw_kv_double(&w, "uptime_s", hub_ops__age_s(now, self->started_at_us), 3);
    hub_jsonw_kv_bool(&w, "ready", fig.ready);
    hub_ops__health_json(self, &w);
    hub_ops__alarms_json(self, &w);
    hub_jsonw_key(&w, "not_ready_reason");
    hub_jsonw_str(&w, fig.ready ? NULL : fig.why_not);
    hub_jsonw_key(&w, "members");
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "listed", ms.n);
    hub_jsonw_kv_u64(&w, "known", known);
    hub_jsonw_kv_u64(&w, "connected", connected);
    hub_jsonw_object_end(&w);
    hub_jsonw_key(&w, "queues");
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "receivers", qs.n);
    hub_jsonw_kv_u64(&w, "depth", depth);
    hub_jsonw_kv_u64(&w, "in_flight", in_flight);
    hub_jsonw_kv_double(&w, "oldest_age_s", hub_ops__age_s(now, oldest), 3);
    hub_jsonw_object_end(&w);
    hub_jsonw_kv_u64(&w, "dead_letters", fig.dead_letters);
    hub_jsonw_key(&w, "store");
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "used_bytes", fig.store_used);
    hub_jsonw_kv_u64(&w, "max_bytes", fig.store_max);
    hub_jsonw_object_end(&w);
    hub_jsonw_kv_u64(&w, "audit_seq", fig.audit_seq);
    hub_jsonw_kv_u64(&w, "flows", hub_flows_count(self->flows));
    hub_jsonw_key(&w, "last_minute");
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "accepted", last_minute.accepted);
    hub_jsonw_kv_u64(&w, "refused", last_minute.refused);
    hub_jsonw_kv_u64(&w, "delivered", last_minute.delivered);
    hub_jsonw_kv_u64(&w, "settled", last_minute.settled);
    hub_jsonw_kv_u64(&w, "dead_lettered", last_minute.dead_lettered);
    hub_jsonw_object_end(&w);
    hub_jsonw_key(&w, "counters");
    hub_jsonw_object_begin(&w);
    for (size_t i = 0; i < HUB_OPS__STAT_FAMILIES; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&fig.stats + hub_ops__stat_families[i].offset, sizeof v);
        /* "lth_hub_frames_received_total" -> "frames_received" */
        char key[64];
        const char *name = hub_ops__stat_families[i].name + strlen("lth_hub_");
        snprintf(key, sizeof key, "%.*s", (int)(strlen(name) - strlen("_total")), name);
        hub_jsonw_kv_u64(&w, key, v);
    }
    hub_jsonw_object_end(&w);
    hub_jsonw_key(&w, "refusals");
    hub_jsonw_object_begin(&w);
    for (int code = 1; code < 32; code++) {
        if (fig.stats.nacks_by_code[code])
            hub_jsonw_kv_u64(&w, hub_nack_code_name(code), fig.stats.nacks_by_code[code]);
    }
    hub_jsonw_object_end(&w);
    hub_jsonw_key(&w, "http");
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "requests", hs.requests);
    hub_jsonw_kv_u64(&w, "bad_requests", hs.bad_requests);
    hub_jsonw_kv_u64(&w, "timeouts", hs.timeouts);
    hub_jsonw_kv_u64(&w, "rejected_connections", hs.rejected_connections);
    hub_jsonw_kv_u64(&w, "open_connections", hs.open_connections);
    hub_jsonw_object_end(&w);
    hub_jsonw_kv_bool(&w, "dlq_token_configured", self->token[0] != '\0');
    hub_jsonw_object_end(&w);
    hub_ops__members_free(&ms);
    hub_ops__queues_free(&qs);
    hub_ops__respond_json(resp, 200, &w);
}

/* A listing's answer: {"now_us": now, "<name>": [ ... ]}, its items written
 * between the two calls. */
static void ops_routes__list_begin(hub_jsonw_t *w, uint64_t now, const char *name)
{
    hub_jsonw_init(w);
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_u64(w, "now_us", now);
    hub_jsonw_key(w, name);
    hub_jsonw_array_begin(w);
}

static void ops_routes__list_end(hub_jsonw_t *w, hub_http_response_t *resp)
{
    hub_jsonw_array_end(w);
    hub_jsonw_object_end(w);
    hub_ops__respond_json(resp, 200, w);
}

void hub_ops__route_members(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    (void)req;
    uint64_t now = hub_now_us();
    hub_ops__members_t ms;
    if (hub_ops__members_snapshot(self, &ms) != 0) {
        hub_ops__error(resp, 500, "out of memory");
        return;
    }
    size_t connected = 0;
    hub_jsonw_t w;
    ops_routes__list_begin(&w, now, "members");
    for (size_t i = 0; i < ms.n; i++) {
        const hub_ops__member_copy_t *m = &ms.items[i];
        connected += m->online;
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_str(&w, "id", m->id);
        const hub_memberdir_entry_t *named = hub_memberdir_find(self->directory, m->id);
        for (int f = 0; f < 3; f++) {
            static const char *const keys[] = {"name", "unit", "contact"};
            const char *v = !named ? NULL : f == 0 ? named->name : f == 1 ? named->unit
                                                                   : named->contact;
            hub_jsonw_key(&w, keys[f]);
            if (v)
                hub_jsonw_str(&w, v);
            else
                hub_jsonw_null(&w);
        }
        hub_jsonw_kv_bool(&w, "known", m->known);
        hub_jsonw_kv_bool(&w, "online", m->online);
        hub_jsonw_kv_str(&w, "state", m->online ? "connected" : m->known ? "offline" : "removed");
        hub_jsonw_kv_u64(&w, "connected_at_us", m->connected_at_us);
        hub_jsonw_kv_u64(&w, "last_seen_us", m->last_seen_us);
        hub_jsonw_key(&w, "last_seen_age_s");
        if (m->last_seen_us)
            hub_jsonw_double(&w, hub_ops__age_s(now, m->last_seen_us), 3);
        else
            hub_jsonw_null(&w);
        hub_jsonw_kv_str(&w, "address", m->address);
        hub_jsonw_key(&w, "services");
        hub_jsonw_csv(&w, m->services);
        hub_jsonw_kv_u64(&w, "msgs_in", m->msgs_in);
        hub_jsonw_kv_u64(&w, "msgs_out", m->msgs_out);
        hub_jsonw_kv_u64(&w, "bytes_in", m->bytes_in);
        hub_jsonw_kv_u64(&w, "bytes_out", m->bytes_out);
        hub_jsonw_kv_u64(&w, "in_flight", m->in_flight);
        /* Its durable envelopes waiting for the store (HUB__MEMBER_PENDING_MAX). */
        hub_jsonw_kv_u64(&w, "store_waiting", m->store_waiting);
        hub_jsonw_object_end(&w);
    }
    hub_jsonw_array_end(&w);
    hub_jsonw_kv_u64(&w, "count", ms.n);
    hub_jsonw_kv_u64(&w, "connected", connected);
    hub_jsonw_object_end(&w);
    hub_ops__members_free(&ms);
    hub_ops__respond_json(resp, 200, &w);
}

void hub_ops__route_queues(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    (void)req;
    uint64_t now = hub_now_us();
    hub_ops__queues_t qs;
    if (hub_ops__queues_snapshot(self, &qs) != 0) {
        hub_ops__error(resp, 500, "out of memory");
        return;
    }
    hub_jsonw_t w;
    ops_routes__list_begin(&w, now, "queues");
    for (size_t i = 0; i < qs.n; i++) {
        const hub_ops__queue_copy_t *q = &qs.items[i];
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_str(&w, "receiver", q->receiver);
        hub_jsonw_kv_u64(&w, "depth", q->depth);
        hub_jsonw_kv_u64(&w, "in_flight", q->in_flight);
        hub_jsonw_kv_u64(&w, "oldest_accepted_us", q->oldest_accepted_us);
        hub_jsonw_kv_double(&w, "oldest_age_s", hub_ops__age_s(now, q->oldest_accepted_us), 3);
        hub_jsonw_object_end(&w);
    }
    hub_jsonw_array_end(&w);
    hub_jsonw_object_end(&w);
    hub_ops__queues_free(&qs);
    hub_ops__respond_json(resp, 200, &w);
}

static void ops_routes__latency_json(hub_jsonw_t *w, const char *key, const hub_flows_latency_t *l)
{
    hub_jsonw_key(w, key);
    if (l->count == 0) {
        hub_jsonw_null(w);
        return;
    }
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_u64(w, "count", l->count);
    hub_jsonw_kv_double(w, "p50", l->p50_us / 1000.0, 3);
    hub_jsonw_kv_double(w, "p90", l->p90_us / 1000.0, 3);
    hub_jsonw_kv_double(w, "p99", l->p99_us / 1000.0, 3);
    hub_jsonw_kv_double(w, "max", l->max_us / 1000.0, 3);
    hub_jsonw_object_end(w);
}

static void ops_routes__window_json(hub_jsonw_t *w, const char *key, const hub_flows_window_t *win)
{
    hub_jsonw_key(w, key);
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_u64(w, "accepted", win->accepted);
    hub_jsonw_kv_u64(w, "errors", win->errors);
    ops_routes__latency_json(w, "end_to_end_ms", &win->end_to_end);
    ops_routes__latency_json(w, "hub_ms", &win->hub);
    hub_jsonw_object_end(w);
}

static void ops_routes__flow_json(const hub_flows_info_t *f, void *user)
{
    hub_jsonw_t *w = user;
    hub_jsonw_object_begin(w);
    hub_ops__flow_names_json(w, f->sender, f->receiver, f->service);
    hub_jsonw_kv_u64(w, "accepted", f->accepted);
    hub_jsonw_kv_u64(w, "refused", f->refused);
    hub_jsonw_kv_u64(w, "delivered", f->delivered);
    hub_jsonw_kv_u64(w, "settled", f->settled);
    hub_jsonw_kv_u64(w, "dead_lettered", f->dead_lettered);
    hub_jsonw_kv_u64(w, "errors", f->refused + f->dead_lettered);
    hub_jsonw_kv_u64(w, "bytes", f->bytes);
    hub_jsonw_kv_u64(w, "first_at_us", f->first_at_us);
    hub_jsonw_kv_u64(w, "last_at_us", f->last_at_us);
    hub_jsonw_key(w, "refusals");
    hub_jsonw_object_begin(w);
    for (size_t i = 0; i < f->n_refusals; i++)
        hub_jsonw_kv_u64(w, f->refusals[i].outcome, f->refusals[i].count);
    hub_jsonw_object_end(w);
    ops_routes__window_json(w, "minute", &f->minute);
    ops_routes__window_json(w, "hour", &f->hour);
    hub_jsonw_object_end(w);
}

static int ops_routes__cmp_flow_sum(const void *a, const void *b)
{
    const hub_flows_info_t *x = &(*(hub_flows_sum_t *const *)a)->info;
    const hub_flows_info_t *y = &(*(hub_flows_sum_t *const *)b)->info;
    int c = strcmp(x->sender, y->sender);
    if (!c)
        c = strcmp(x->receiver, y->receiver);
    return c ? c : strcmp(x->service, y->service);
}

/* Several nodes: which nodes' counts the answer adds up, and as of when. */
typedef struct {
    hub_jsonw_t *w;
    uint64_t now, oldest;
} ops_routes__count_nodes_t;

static void ops_routes__count_node_json(const hub_ops_count_node_t *n, void *user)
{
    ops_routes__count_nodes_t *c = user;
    hub_jsonw_object_begin(c->w);
    hub_jsonw_kv_str(c->w, "id", n->id);
    hub_jsonw_kv_u64(c->w, "as_of_us", n->as_of_us);
    hub_jsonw_kv_double(c->w, "age_s", hub_ops__age_s(c->now, n->as_of_us), 3);
    hub_jsonw_kv_bool(c->w, "self", n->self);
    hub_jsonw_object_end(c->w);
    if (!c->oldest || n->as_of_us < c->oldest)
        c->oldest = n->as_of_us;
}

/* Closes a list of several nodes' counts with "nodes" and "as_of_us" (the
 * oldest of them). */
static void ops_routes__cluster_list_end(hub_ops_t *self, hub_jsonw_t *w, uint64_t now,
                                         hub_http_response_t *resp)
{
    hub_jsonw_array_end(w);
    ops_routes__count_nodes_t c = {w, now, 0};
    hub_jsonw_key(w, "nodes");
    hub_jsonw_array_begin(w);
    self->src.count_nodes(self->src.ctx, ops_routes__count_node_json, &c);
    hub_jsonw_array_end(w);
    hub_jsonw_kv_u64(w, "as_of_us", c.oldest ? c.oldest : now);
    hub_jsonw_object_end(w);
    hub_ops__respond_json(resp, 200, w);
}

/* Several nodes: this node's flows (with its windows) plus what the
 * others (and this node before its start) counted. */
static void ops_routes__flows_cluster(hub_ops_t *self, uint64_t now, hub_http_response_t *resp)
{
    hub_flows_sums_t sums = {hub_map_new(), false};
    if (!sums.by_key) {
        hub_ops__error(resp, 500, "out of memory");
        return;
    }
    /* This node's flows first: their windows are the ones shown. */
    hub_flows_foreach(self->flows, now, hub_flows_sums_add, &sums);
    self->src.flow_counts(self->src.ctx, hub_flows_sums_add, &sums);
    size_t n = hub_map_size(sums.by_key), k = 0, cursor = 0;
    hub_flows_sum_t **sorted = malloc((n ? n : 1) * sizeof *sorted);
    void *value;
    while (hub_map_next(sums.by_key, &cursor, NULL, &value))
        if (sorted)
            sorted[k++] = value;
    if (sorted && !sums.oom) {
        qsort(sorted, k, sizeof *sorted, ops_routes__cmp_flow_sum);
        hub_jsonw_t w;
        ops_routes__list_begin(&w, now, "flows");
        for (size_t i = 0; i < k; i++)
            ops_routes__flow_json(&sorted[i]->info, &w);
        ops_routes__cluster_list_end(self, &w, now, resp);
    } else {
        hub_ops__error(resp, 500, "out of memory");
    }
    free(sorted);
    hub_map_destroy_all(&sums.by_key, hub_flows_sum_free);
}

void hub_ops__route_flows(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    (void)req;
    uint64_t now = hub_now_us();
    if (self->src.flow_counts && self->src.count_nodes) {
        ops_routes__flows_cluster(self, now, resp);
        return;
    }
    hub_jsonw_t w;
    ops_routes__list_begin(&w, now, "flows");
    hub_flows_foreach(self->flows, now, ops_routes__flow_json, &w);
    ops_routes__list_end(&w, resp);
}

static void ops_routes__exchange_json(const hub_flows_exchange_t *x, void *user)
{
    hub_jsonw_t *w = user;
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_str(w, "message_id", x->message_id);
    hub_ops__flow_names_json(w, x->sender, x->receiver, x->service);
    hub_jsonw_kv_str(w, "outcome", x->outcome);
    hub_jsonw_kv_u64(w, "bytes", x->bytes);
    hub_jsonw_kv_u64(w, "at_us", x->at_us);
    hub_jsonw_key(w, "latency_ms");
    if (x->latency_us)
        hub_jsonw_double(w, x->latency_us / 1000.0, 3);
    else
        hub_jsonw_null(w);
    hub_jsonw_object_end(w);
}

void hub_ops__route_exchanges(hub_ops_t *self, const hub_http_request_t *req,
                                 hub_http_response_t *resp)
{
    uint64_t limit;
    if (hub_ops__param_u64(req, resp, "limit", 1, HUB_FLOWS_EXCHANGES, HUB__OPS_LIST_DEFAULT,
                       &limit) < 0)
        return;
    char member[256];
    int rc = hub_http_query_get(req->query, "member", member, sizeof member);
    if (rc == HUB_ENOTFOUND) {
        member[0] = '\0';
    } else if (rc != 0) {
        hub_ops__error(resp, 400, "member must be a member id, e.g. VN/GOV/BCA/CSDLQGDC");
        return;
    }
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_key(&w, "exchanges");
    hub_jsonw_array_begin(&w);
    hub_flows_exchanges(self->flows, (size_t)limit, member, ops_routes__exchange_json, &w);
    ops_routes__list_end(&w, resp);
}

void hub_ops__route_throughput(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    (void)req;
    hub_flows_tick_t *ticks = malloc(HUB_FLOWS_THROUGHPUT_S * sizeof *ticks);
    if (!ticks) {
        hub_ops__error(resp, 500, "out of memory");
        return;
    }
    hub_flows_throughput(self->flows, hub_now_us(), ticks);
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "interval_s", 1);
    hub_jsonw_key(&w, "fields");
    hub_jsonw_raw(&w, "[\"second\",\"accepted\",\"refused\",\"delivered\",\"settled\","
                      "\"dead_lettered\"]",
                  strlen("[\"second\",\"accepted\",\"refused\",\"delivered\",\"settled\","
                         "\"dead_lettered\"]"));
    hub_jsonw_key(&w, "points");
    hub_jsonw_array_begin(&w);
    for (size_t i = 0; i < HUB_FLOWS_THROUGHPUT_S; i++) {
        char row[128];
        int n = snprintf(row, sizeof row, "[%" PRIu64 ",%u,%u,%u,%u,%u]", ticks[i].second,
                         ticks[i].accepted, ticks[i].refused, ticks[i].delivered,
                         ticks[i].settled, ticks[i].dead_lettered);
        hub_jsonw_raw(&w, row, (size_t)n);
    }
    hub_jsonw_array_end(&w);
    hub_jsonw_object_end(&w);
    free(ticks);
    hub_ops__respond_json(resp, 200, &w);
}

/* ---- the dashboard ------------------------------------------------------ */

/* Ủy quyền: the rules in force now and what each carried since the hub
 * started (kept across reloads for a rule written the same), so that the
 * City Office can check, review and evaluate each delegation. */
void hub_ops__route_delegations(hub_ops_t *self, const hub_http_request_t *req,
                                hub_http_response_t *resp)
{
    (void)req;
    const hub_delegations_t *d = self->src.delegations ? self->src.delegations(self->src.ctx) : NULL;
    uint64_t now = hub_now_us();
    hub_jsonw_t w;
    ops_routes__list_begin(&w, now, "delegations");
    bool cluster = self->src.delegation_counts && self->src.count_nodes;
    hub_delegation_info_t r;
    for (size_t i = 0; hub_delegations_info(d, i, &r) == 0; i++) {
        /* Several nodes: what the rule carried through the others too. */
        char rule[HUB_DELEGATION_KEY_MAX];
        uint64_t carried = r.carried, last_used_us = r.last_used_us;
        bool keyed = cluster && hub_delegation_info_key(&r, rule, sizeof rule) == 0;
        if (keyed) {
            uint64_t more, last;
            self->src.delegation_counts(self->src.ctx, rule, "", &more, &last);
            carried += more;
            if (last > last_used_us)
                last_used_us = last;
        }
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_str(&w, "authority", r.authority);
        hub_jsonw_kv_str(&w, "service", r.service);
        hub_jsonw_kv_str(&w, "delegate", r.delegate);
        hub_jsonw_key(&w, "procedures");
        hub_jsonw_array_begin(&w);
        for (size_t k = 0; k < r.n_procedures; k++) {
            hub_jsonw_object_begin(&w);
            hub_jsonw_kv_str(&w, "code", r.procedures[k]);
            uint64_t more = 0, last;
            if (keyed)
                self->src.delegation_counts(self->src.ctx, rule, r.procedures[k], &more, &last);
            hub_jsonw_kv_u64(&w, "carried", r.procedure_carried[k] + more);
            hub_jsonw_object_end(&w);
        }
        hub_jsonw_array_end(&w);
        hub_jsonw_kv_u64(&w, "from_us", r.from_us);
        hub_jsonw_key(&w, "until_us");
        if (r.until_us == UINT64_MAX)
            hub_jsonw_null(&w);
        else
            hub_jsonw_u64(&w, r.until_us);
        hub_jsonw_kv_bool(&w, "in_force", now >= r.from_us && now < r.until_us);
        hub_jsonw_kv_u64(&w, "line", r.line);
        hub_jsonw_kv_u64(&w, "carried", carried);
        hub_jsonw_kv_u64(&w, "last_used_us", last_used_us);
        hub_jsonw_object_end(&w);
    }
    if (cluster)
        ops_routes__cluster_list_end(self, &w, now, resp);
    else
        ops_routes__list_end(&w, resp);
}

bool hub_ops__route_asset(const hub_http_request_t *req, hub_http_response_t *resp)
{
    const char *path = !strcmp(req->path, "/") ? "/index.html" : req->path;
    for (size_t i = 0; i < hub_dashboard_n_assets; i++) {
        const hub_dashboard_asset_t *a = &hub_dashboard_assets[i];
        if (strcmp(a->path, path) != 0)
            continue;
        if (!hub_ops__is_get(req)) {
            hub_ops__method_not_allowed(resp, "GET");
            return true;
        }
        hub_ops__respond(resp, 200, a->content_type, a->data, a->len);
        /* Everything the page needs comes from this hub: forbid the rest. */
        hub_http_response_header(resp, "Content-Security-Policy",
                                 "default-src 'none'; script-src 'self'; style-src 'self'; "
                                 "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                 "form-action 'none'; frame-ancestors 'none'");
        hub_http_response_header(resp, "X-Frame-Options", "DENY");
        hub_http_response_header(resp, "Referrer-Policy", "no-referrer");
        return true;
    }
    return false;
}

/* The dashboard's catalogue in the language asked for (?lang=), else in the
 * configured one; both are assets (hub/dashboard/i18n.*.json). */
void hub_ops__route_i18n(hub_ops_t *self, const hub_http_request_t *req,
                            hub_http_response_t *resp)
{
    if (!hub_ops__is_get(req)) {
        hub_ops__method_not_allowed(resp, "GET");
        return;
    }
    char lang[8];
    int rc = hub_http_query_get(req->query, "lang", lang, sizeof lang);
    if (rc == HUB_ENOTFOUND)
        snprintf(lang, sizeof lang, "%s", self->lang);
    else if (rc != 0 || (strcmp(lang, "vi") != 0 && strcmp(lang, "en") != 0)) {
        hub_ops__error(resp, 400, "lang must be vi (Vietnamese) or en (English)");
        return;
    }
    char path[32];
    snprintf(path, sizeof path, "/i18n.%s.json", lang);
    for (size_t i = 0; i < hub_dashboard_n_assets; i++) {
        const hub_dashboard_asset_t *a = &hub_dashboard_assets[i];
        if (!strcmp(a->path, path)) {
            hub_ops__respond(resp, 200, "application/json", a->data, a->len);
            hub_http_response_header(resp, "Content-Language", lang);
            return;
        }
    }
    hub_ops__error(resp, 500, "the %s catalogue is missing from this build", lang);
}

/* GET /api/v1/nodes: the hubd nodes of this hub (several share one store
 * with cluster = on; one alone lists itself). */
typedef struct {
    hub_jsonw_t *w;
    uint64_t now;
    size_t n, alive;
} hub_ops__nodes_ctx_t;

static void hub_ops__node_json(const hub_ops_node_t *n, void *user)
{
    hub_ops__nodes_ctx_t *c = user;
    hub_jsonw_t *w = c->w;
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_str(w, "id", n->id);
    hub_jsonw_kv_str(w, "endpoint", n->endpoint);
    hub_jsonw_kv_u64(w, "heartbeat_at_us", n->heartbeat_at_us);
    hub_jsonw_kv_double(w, "heartbeat_age_s", hub_ops__age_s(c->now, n->heartbeat_at_us), 3);
    hub_jsonw_kv_u64(w, "members", n->members);
    hub_jsonw_kv_bool(w, "alive", n->alive);
    hub_jsonw_kv_bool(w, "self", n->self);
    hub_jsonw_object_end(w);
    c->n++;
    c->alive += n->alive;
}

void hub_ops__route_nodes(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    (void)req;
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_ops__nodes_ctx_t c = {&w, hub_now_us(), 0, 0};
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "now_us", c.now);
    hub_jsonw_key(&w, "nodes");
    hub_jsonw_array_begin(&w);
    if (self->src.nodes)
        self->src.nodes(self->src.ctx, hub_ops__node_json, &c);
    hub_jsonw_array_end(&w);
    hub_jsonw_kv_u64(&w, "count", c.n);
    hub_jsonw_kv_u64(&w, "alive", c.alive);
    hub_jsonw_object_end(&w);
    hub_ops__respond_json(resp, 200, &w);
}
