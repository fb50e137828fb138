/* hub_ops_internal — private to hub/core/hub_ops*.c: the operator
 * endpoint's state and the helpers its files share.
 *
 * hub_ops.c keeps the life cycle, the route table, the Host rule and the
 * small response helpers; hub_ops_metrics.c renders /metrics, the process
 * figures and the alarms; hub_ops_routes.c the JSON routes of /api/v1 and
 * the dashboard's files; hub_ops_dlq.c the dead-letter API. Each route has
 * the signature ops__route_fn (hub_ops.c) and answers through the
 * hub_ops__respond* helpers, which record the status for
 * lth_http_responses_total. Nothing outside these files includes this.
 */
#ifndef HUB_OPS_INTERNAL_H
#define HUB_OPS_INTERNAL_H

#include "hub_ops.h"
#include "hub_jsonw.h"
#include "hub_map.h"
#include "hub_memberdir.h"
#include "hub_ops_audit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB__OPS_COMP "ops"
#define HUB__OPS_LIST_DEFAULT 100u
#define HUB__OPS_LIST_MAX 1000u
/* Label values the gauges below remember (members, receivers) so that a
 * member that left, or a queue that emptied, reads 0 rather than its last
 * value. Bounded like every family. */
#define HUB__OPS_LABELS_MAX 10000u
#define HUB_OPS__DLQ_PATH "/api/v1/dlq"
#define HUB_OPS__STAT_FAMILIES 12

struct hub_ops {
    uv_loop_t *loop;
    hub_http_server_t *http;
    hub_ops_source_t src;
    hub_flows_t *flows;
    hub_metrics_t *metrics;
    bool own_metrics;
    char token[HUB_OPS_TOKEN_MAX + 1];
    bool public_api;         /* listening beyond loopback: /api/ and /metrics need the token */
    char allowed_hosts[512]; /* ",name,name," (lower case), or "" */
    char address[300];
    char lang[8];                 /* "vi" or "en": when a request names none */
    char node_id[64];             /* lth_node_info's label; "" = no series */
    hub_memberdir_t *directory;   /* agency names; NULL = none */
    char directory_path[4096];    /* its file, re-read on SIGHUP; "" = none */
    uint64_t started_at_us;       /* this process's start, wall clock */
    hub_map_t *member_labels;     /* member ids given a lth_member_connected series */
    hub_map_t *receiver_labels;   /* receivers given lth_queue_* series */
    hub_ops_closed_cb on_closed;
    void *closed_user;
    bool close_started, http_closed, destroy_requested;
    /* Families refreshed on every scrape. */
    hub_metric_family_t *f_known, *f_connected, *f_member_up, *f_q_depth, *f_q_inflight,
        *f_q_age, *f_dead, *f_store_used, *f_store_max, *f_audit, *f_refused_code,
        *f_responses, *f_build, *f_node;
    hub_metric_family_t *f_stat[HUB_OPS__STAT_FAMILIES];
    hub_ops_audit_metrics_t audit_metrics;
    hub_metric_family_t *f_http[7];
    hub_alarms_t *alarms;
    hub_metric_family_t *f_alarm, *f_alarms_active;
    hub_metric_family_t *f_delegated; /* lth_delegation_carried_total */
    hub_metric_family_t *f_proc_rss, *f_proc_vsz, *f_proc_fds, *f_proc_max_fds, *f_proc_cpu,
        *f_proc_start;
};

/* A hub_server_stats_t field mirrored as lth_hub_*_total (and in
 * /api/v1/status "counters"); metric false: in the status only. */
typedef struct {
    const char *name, *help;
    size_t offset;
    bool metric;
} hub_ops__stat_family_t;
extern const hub_ops__stat_family_t hub_ops__stat_families[HUB_OPS__STAT_FAMILIES];

/* Copies of what the sources report, taken per request. */
typedef struct {
    char *id, *address, *services;
    bool known, online;
    uint64_t connected_at_us, last_seen_us, msgs_in, msgs_out, bytes_in, bytes_out, in_flight;
    uint64_t refusals, cert_not_after_us, store_waiting;
} hub_ops__member_copy_t;

typedef struct {
    hub_ops__member_copy_t *items;
    size_t n, cap;
    bool failed;
} hub_ops__members_t;

typedef struct {
    char *receiver;
    uint64_t depth, oldest_accepted_us, in_flight;
} hub_ops__queue_copy_t;

typedef struct {
    hub_ops__queue_copy_t *items;
    size_t n, cap;
    bool failed;
} hub_ops__queues_t;

typedef struct {
    uint64_t store_used, store_max, dead_letters, audit_seq;
    hub_server_stats_t stats;
    bool ready;
    const char *why_not;
} hub_ops__figures_t;

/* hub_ops.c: responses, parameters, snapshots. */
double hub_ops__age_s(uint64_t now_us, uint64_t then_us);
bool hub_ops__authorised(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);
int hub_ops__cmp_member(const void *a, const void *b);
int hub_ops__cmp_queue(const void *a, const void *b);
void hub_ops__error(hub_http_response_t *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hub_ops__figures(hub_ops_t *self, hub_ops__figures_t *f);
/* The names of a flow, as every list of the API gives them: "sender",
 * "receiver" and "service" members of the object being written. */
void hub_ops__flow_names_json(hub_jsonw_t *w, const char *sender, const char *receiver,
                              const char *service);
bool hub_ops__is_get(const hub_http_request_t *req);
void hub_ops__members_free(hub_ops__members_t *ms);
int hub_ops__members_snapshot(hub_ops_t *self, hub_ops__members_t *ms);
void hub_ops__method_not_allowed(hub_http_response_t *resp, const char *allow);
int hub_ops__param_u64(const hub_http_request_t *req, hub_http_response_t *resp, const char *name, uint64_t min, uint64_t max, uint64_t dflt, uint64_t *out);
bool hub_ops__parse_seq(const char *s, size_t len, uint64_t *out);
void hub_ops__queues_free(hub_ops__queues_t *qs);
int hub_ops__queues_snapshot(hub_ops_t *self, hub_ops__queues_t *qs);
void hub_ops__respond(hub_http_response_t *resp, int status, const char *content_type, const void *body, size_t len);
void hub_ops__respond_json(hub_http_response_t *resp, int status, hub_jsonw_t *w);

/* hub_ops_metrics.c */
void hub_ops__alarms_json(hub_ops_t *self, hub_jsonw_t *w);
void hub_ops__health_json(const hub_ops_t *self, hub_jsonw_t *w);
uint64_t hub_ops__process_start_us(uint64_t fallback);
int hub_ops__register_families(hub_ops_t *self);
void hub_ops__route_metrics(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);

/* hub_ops_routes.c */
bool hub_ops__route_asset(const hub_http_request_t *req, hub_http_response_t *resp);
void hub_ops__route_exchanges(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);
void hub_ops__route_flows(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);
void hub_ops__route_healthz(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);
void hub_ops__route_i18n(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);
void hub_ops__route_members(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);
void hub_ops__route_nodes(hub_ops_t *self, const hub_http_request_t *req,
                          hub_http_response_t *resp);
void hub_ops__route_queues(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);
void hub_ops__route_readyz(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);
void hub_ops__route_status(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);
void hub_ops__route_delegations(hub_ops_t *self, const hub_http_request_t *req,
                                hub_http_response_t *resp);
void hub_ops__route_throughput(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);

/* hub_ops_dlq.c */
void hub_ops__route_dlq(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp);

#endif
