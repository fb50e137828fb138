/* hub_ops_metrics — renders /metrics (Prometheus text) from the hub's
 * sources, the process figures and the alarms, refreshed on each scrape. */
#include "hub_ops_internal.h"
#include "hub_delegation.h"
#include "hub_dashboard.h"
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

/* hub_server_stats_t fields mirrored as lth_hub_*_total (and in
 * /api/v1/status "counters"). Accepted and refused envelopes are not
 * metrics of their own: lth_messages_total{outcome} (per flow) and
 * lth_hub_refusals_total{code} count them already, and a second counter
 * of the same events only invites dashboards that disagree. */
const hub_ops__stat_family_t hub_ops__stat_families[HUB_OPS__STAT_FAMILIES] = {
    {"lth_hub_frames_received_total", "ZeroMQ messages received from members.",
     offsetof(hub_server_stats_t, frames_in), true},
    {"lth_hub_envelopes_accepted_total", "Envelopes ACKed (stored, or forwarded online-only).",
     offsetof(hub_server_stats_t, envelopes_accepted), false},
    {"lth_hub_envelopes_refused_total", "Envelopes NACKed.",
     offsetof(hub_server_stats_t, envelopes_nacked), false},
    {"lth_hub_deliveries_total", "Envelopes sent to receivers, redeliveries included.",
     offsetof(hub_server_stats_t, deliveries), true},
    {"lth_hub_redeliveries_total", "Envelopes sent again because they were not settled in time.",
     offsetof(hub_server_stats_t, redeliveries), true},
    {"lth_hub_settled_total", "Deliveries settled by their receivers.",
     offsetof(hub_server_stats_t, settled), true},
    {"lth_hub_dead_lettered_total", "Messages moved to the dead-letter queue.",
     offsetof(hub_server_stats_t, dead_lettered), true},
    {"lth_hub_duplicates_total", "Re-sent envelopes answered with their original ACK.",
     offsetof(hub_server_stats_t, duplicates), true},
    {"lth_hub_malformed_frames_total", "ZeroMQ messages that were not valid frames.",
     offsetof(hub_server_stats_t, malformed_frames), true},
    {"lth_hub_keys_refused_total", "CURVE handshakes refused: key not in the key directory.",
     offsetof(hub_server_stats_t, keys_refused), true},
    {"lth_hub_members_cut_off_total",
     "Member connections closed for flooding (kept sending over their rate); their keys are "
     "refused for flood_ban_seconds.",
     offsetof(hub_server_stats_t, members_cut_off), true},
    {"lth_hub_store_commits_total", "Store write transactions.",
     offsetof(hub_server_stats_t, commits), true},
};

static const char *const ops_metrics__http_family_names[7] = {"lth_http_requests_total",
                                                              "lth_http_bad_requests_total",
                                                              "lth_http_timeouts_total",
                                                              "lth_http_idle_closes_total",
                                                              "lth_http_rejected_connections_total",
                                                              "lth_http_write_overflows_total",
                                                              "lth_http_open_connections"};
static const char *const ops_metrics__http_family_help[7] = {
    "Complete HTTP requests served on the operator endpoint.",
    "HTTP requests answered 400, 411, 413, 431 or 505.",
    "HTTP connections closed for not completing a request in time.",
    "Kept-alive HTTP connections closed after being idle.",
    "HTTP connections refused because too many were open.",
    "HTTP connections closed because the client did not read its responses.",
    "HTTP connections open now."};
/* ---- process figures --------------------------------------------------- */

typedef struct {
    double rss_bytes, vsz_bytes, open_fds, max_fds, cpu_s;
} ops_metrics__proc_t;

static void ops_metrics__process(ops_metrics__proc_t *p)
{
    memset(p, 0, sizeof *p);
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long long size = 0, rss = 0;
        if (fscanf(f, "%llu %llu", &size, &rss) == 2) {
            p->vsz_bytes = (double)size * (double)page;
            p->rss_bytes = (double)rss * (double)page;
        }
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        size_t n = 0;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] != '.')
                n++;
        }
        closedir(d);
        p->open_fds = (double)(n > 0 ? n - 1 : 0); /* not the one opendir holds */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        p->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (double)rl.rlim_cur;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        p->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The process's start, wall clock µs: boot time plus its start in clock
 * ticks since boot (from /proc); `fallback` when /proc says nothing. */
uint64_t hub_ops__process_start_us(uint64_t fallback)
{
    unsigned long long btime = 0, ticks = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "btime %llu", &btime) == 1)
                break;
        }
        fclose(f);
    }
    f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* Field 2 (comm) may hold spaces: count fields after its ')'. */
        char *p = strrchr(buf, ')');
        int field = 2;
        while (p && *p && field < 22) {
            p = strchr(p + 1, ' ');
            if (p)
                field++;
        }
        if (p && field == 22)
            ticks = strtoull(p + 1, NULL, 10);
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (!btime || !ticks || hz <= 0)
        return fallback;
    return (uint64_t)btime * 1000000u + (uint64_t)ticks * 1000000u / (uint64_t)hz;
}

/* ---- alarms ------------------------------------------------------------- */

static const hub_ops__queue_copy_t *ops_metrics__queue_of(const hub_ops__queues_t *qs,
                                                          const char *receiver)
{
    hub_ops__queue_copy_t key = {.receiver = (char *)receiver};
    return qs->n ? bsearch(&key, qs->items, qs->n, sizeof *qs->items, hub_ops__cmp_queue) : NULL;
}

static void ops_metrics__alarm_ended(const hub_alarm_t *a, void *user)
{
    hub_ops_t *self = user;
    const char *const l[] = {hub_alarm_code_name(a->code), a->subject,
                             hub_alarm_level_name(a->level)};
    hub_metric_set(self->f_alarm, l, 0);
}

void hub_ops_tick(hub_ops_t *self)
{
    if (!self || !self->alarms)
        return;
    hub_ops__members_t ms;
    hub_ops__queues_t qs;
    if (hub_ops__members_snapshot(self, &ms) != 0)
        return;
    if (hub_ops__queues_snapshot(self, &qs) != 0) {
        hub_ops__members_free(&ms);
        return;
    }
    hub_ops__figures_t fig;
    hub_ops__figures(self, &fig);
    /* Every member, and receivers with a queue that are not members
     * (anymore): their messages wait too. */
    hub_alarm_sample_t *samples = calloc(ms.n + qs.n + 1, sizeof *samples);
    size_t n = 0;
    for (size_t i = 0; samples && i < ms.n; i++) {
        const hub_ops__member_copy_t *m = &ms.items[i];
        const hub_ops__queue_copy_t *q = ops_metrics__queue_of(&qs, m->id);
        samples[n++] = (hub_alarm_sample_t){m->id,
                                            m->online,
                                            m->last_seen_us,
                                            q ? q->depth : 0,
                                            q ? q->oldest_accepted_us : 0,
                                            m->cert_not_after_us,
                                            m->refusals};
    }
    for (size_t i = 0; samples && i < qs.n; i++) {
        hub_ops__member_copy_t key = {.id = qs.items[i].receiver};
        if (ms.n && bsearch(&key, ms.items, ms.n, sizeof *ms.items, hub_ops__cmp_member))
            continue;
        samples[n++] = (hub_alarm_sample_t){qs.items[i].receiver, false, 0, qs.items[i].depth,
                                            qs.items[i].oldest_accepted_us, 0, 0};
    }
    uint64_t audit_gap = 0, tsa_failing_s = 0, tampered_seq = 0;
    hub_ops_audit_alarm_figures(&self->src, &audit_gap, &tsa_failing_s, &tampered_seq);
    hub_alarms_set_audit(self->alarms, audit_gap, tsa_failing_s, tampered_seq);
    if (samples)
        hub_alarms_update(self->alarms, hub_now_us(), samples, n, fig.stats.dead_lettered,
                          fig.store_used, fig.store_max);
    free(samples);
    hub_ops__members_free(&ms);
    hub_ops__queues_free(&qs);
    /* The metric: ended (or re-levelled) series back to 0, active ones 1. */
    hub_alarms_take_ended(self->alarms, ops_metrics__alarm_ended, self);
    size_t n_active;
    const hub_alarm_t *a = hub_alarms_active(self->alarms, &n_active);
    double by_level[3] = {0};
    for (size_t i = 0; i < n_active; i++) {
        const char *const l[] = {hub_alarm_code_name(a[i].code), a[i].subject,
                                 hub_alarm_level_name(a[i].level)};
        hub_metric_set(self->f_alarm, l, 1);
        by_level[a[i].level == HUB_ALARM_CRITICAL ? 2 : 1]++;
    }
    const char *const warn_l[] = {"warning"}, *const crit_l[] = {"critical"};
    hub_metric_set(self->f_alarms_active, warn_l, by_level[1]);
    hub_metric_set(self->f_alarms_active, crit_l, by_level[2]);
}

/* "alarms": [...] as the dashboard, hubctl and scripts read them. */
void hub_ops__alarms_json(hub_ops_t *self, hub_jsonw_t *w)
{
    size_t n = 0;
    const hub_alarm_t *a = hub_alarms_active(self->alarms, &n);
    hub_jsonw_key(w, "alarms");
    hub_jsonw_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        char reason[600];
        hub_alarm_describe(&a[i], reason, sizeof reason);
        hub_jsonw_object_begin(w);
        hub_jsonw_kv_str(w, "level", hub_alarm_level_name(a[i].level));
        hub_jsonw_kv_str(w, "code", hub_alarm_code_name(a[i].code));
        hub_jsonw_kv_str(w, "subject", a[i].subject);
        const hub_memberdir_entry_t *named =
            a[i].subject[0] ? hub_memberdir_find(self->directory, a[i].subject) : NULL;
        hub_jsonw_key(w, "name");
        if (named)
            hub_jsonw_str(w, named->name);
        else
            hub_jsonw_null(w);
        hub_jsonw_kv_u64(w, "value", a[i].value);
        hub_jsonw_kv_u64(w, "limit", a[i].limit);
        hub_jsonw_kv_str(w, "reason", reason);
        hub_jsonw_object_end(w);
    }
    hub_jsonw_array_end(w);
}

/* "health": "ok" or "degraded"; "alarm_level": the worst level, or null. */
void hub_ops__health_json(const hub_ops_t *self, hub_jsonw_t *w)
{
    int worst = hub_alarms_worst(self->alarms);
    hub_jsonw_kv_str(w, "health", worst ? "degraded" : "ok");
    hub_jsonw_key(w, "alarm_level");
    if (worst)
        hub_jsonw_str(w, hub_alarm_level_name((hub_alarm_level_t)worst));
    else
        hub_jsonw_null(w);
}

/* ---- /metrics ---------------------------------------------------------- */

int hub_ops__register_families(hub_ops_t *self)
{
    hub_metrics_t *m = self->metrics;
    static const char *const member_l[] = {"member"};
    static const char *const receiver_l[] = {"receiver"};
    static const char *const code_l[] = {"code"};
    static const char *const version_l[] = {"version"};
    static const char *const alarm_l[] = {"code", "subject", "level"};
    static const char *const level_l[] = {"level"};
    static const char *const deleg_l[] = {"authority", "service", "delegate", "procedure"};
    static const char *const node_l[] = {"node_id"};
    /* Registered in this order (and rendered so): these, the audit
     * families, then the rest below. */
    const hub_metric_def_t state_defs[] = {
        {HUB_METRIC_GAUGE, "lth_members_known", "Members whose key is in the key directory.", NULL,
         0, &self->f_known, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_members_connected", "Members connected now.", NULL, 0,
         &self->f_connected, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_member_connected", "1 while the member is connected, else 0.",
         member_l, 1, &self->f_member_up, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_queue_depth",
         "Messages queued for the receiver (in flight included).", receiver_l, 1, &self->f_q_depth,
         NULL, 0},
        {HUB_METRIC_GAUGE, "lth_queue_in_flight",
         "Messages delivered to the receiver and not yet settled.", receiver_l, 1,
         &self->f_q_inflight, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_queue_oldest_age_seconds",
         "Age of the oldest message queued for the receiver.", receiver_l, 1, &self->f_q_age, NULL,
         0},
        {HUB_METRIC_GAUGE, "lth_dead_letters", "Messages in the dead-letter queue.", NULL, 0,
         &self->f_dead, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_store_used_bytes", "Bytes of the store holding data.", NULL, 0,
         &self->f_store_used, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_store_max_bytes", "The store's size limit in bytes.", NULL, 0,
         &self->f_store_max, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_audit_sequence",
         "Sequence number of the last audit record (0: audit log off).", NULL, 0, &self->f_audit,
         NULL, 0},
    };
    const hub_metric_def_t hub_defs[] = {
        {HUB_METRIC_COUNTER, "lth_hub_refusals_total", "Envelopes NACKed, by NACK code.", code_l, 1,
         &self->f_refused_code, NULL, 0},
        {HUB_METRIC_COUNTER, "lth_http_responses_total",
         "Responses of the operator API, by status code.", code_l, 1, &self->f_responses, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_alarm",
         "1 while the alarm holds at this level, else 0 (subject: the "
         "member, or \"\" for the hub).",
         alarm_l, 3, &self->f_alarm, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_alarms_active", "Alarms holding now, by level.", level_l, 1,
         &self->f_alarms_active, NULL, 0},
        {HUB_METRIC_COUNTER, "lth_delegation_carried_total",
         "Envelopes routed to a delegate (ủy quyền), by rule and, for a "
         "rule naming procedures, by procedure (\"\": a whole-service "
         "rule).",
         deleg_l, 4, &self->f_delegated, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_build_info", "The hub's version; always 1.", version_l, 1,
         &self->f_build, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_node_info",
         "The hubd node answering (hubd.conf node_id); always 1. Each node "
         "of several has its own /metrics.",
         node_l, 1, &self->f_node, NULL, 0},
    };
    const hub_metric_def_t process_defs[] = {
        {HUB_METRIC_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL,
         0, &self->f_proc_rss, NULL, 0},
        {HUB_METRIC_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL, 0,
         &self->f_proc_vsz, NULL, 0},
        {HUB_METRIC_GAUGE, "process_open_fds", "Open file descriptors.", NULL, 0, &self->f_proc_fds,
         NULL, 0},
        {HUB_METRIC_GAUGE, "process_max_fds", "The limit on open file descriptors.", NULL, 0,
         &self->f_proc_max_fds, NULL, 0},
        {HUB_METRIC_COUNTER, "process_cpu_seconds_total",
         "User and system CPU time spent, in seconds.", NULL, 0, &self->f_proc_cpu, NULL, 0},
        {HUB_METRIC_GAUGE, "process_start_time_seconds",
         "Start time of the process since the Unix epoch, in seconds.", NULL, 0,
         &self->f_proc_start, NULL, 0},
    };
    int rc = hub_metrics_register(m, state_defs, sizeof state_defs / sizeof state_defs[0]);
    if (!rc)
        rc = hub_ops_audit_metrics_new(m, &self->audit_metrics);
    if (!rc)
        rc = hub_metrics_register(m, hub_defs, sizeof hub_defs / sizeof hub_defs[0]);
    for (size_t i = 0; !rc && i < HUB_OPS__STAT_FAMILIES; i++)
        rc = !hub_ops__stat_families[i].metric
                 ? 0
                 : hub_metrics_counter(m, hub_ops__stat_families[i].name, hub_ops__stat_families[i].help,
                                       NULL, 0, &self->f_stat[i]);
    for (size_t i = 0; !rc && i < 7; i++) {
        if (i == 6)
            rc = hub_metrics_gauge(m, ops_metrics__http_family_names[i],
                                   ops_metrics__http_family_help[i], NULL, 0, &self->f_http[i]);
        else
            rc = hub_metrics_counter(m, ops_metrics__http_family_names[i],
                                     ops_metrics__http_family_help[i], NULL, 0, &self->f_http[i]);
    }
    if (!rc)
        rc = hub_metrics_register(m, process_defs, sizeof process_defs / sizeof process_defs[0]);
    if (!rc) {
        const char *const v[] = {HUB_VERSION};
        rc = hub_metric_set(self->f_build, v, 1);
    }
    if (!rc && self->node_id[0]) {
        const char *const n[] = {self->node_id};
        rc = hub_metric_set(self->f_node, n, 1);
    }
    return rc;
}

/* Sets family{label} for each name in `names` (a set kept across scrapes):
 * to the value given now, or 0 for names not given this time. */
static void ops_metrics__remember_label(hub_map_t *names, const char *name)
{
    if (!hub_map_get(names, name) && hub_map_size(names) < HUB__OPS_LABELS_MAX)
        hub_map_put(names, name, (void *)1);
}

static void ops_metrics__zero_labels(hub_map_t *names, hub_metric_family_t *const *families,
                                     size_t n)
{
    size_t cursor = 0;
    const char *name;
    void *value;
    while (hub_map_next(names, &cursor, &name, &value)) {
        const char *const l[] = {name};
        for (size_t i = 0; i < n; i++)
            hub_metric_set(families[i], l, 0);
    }
}

static void ops_metrics__refresh_metrics(hub_ops_t *self)
{
    uint64_t now = hub_now_us();
    hub_ops__members_t ms;
    if (hub_ops__members_snapshot(self, &ms) == 0) {
        size_t known = 0, connected = 0;
        ops_metrics__zero_labels(self->member_labels, &self->f_member_up, 1);
        for (size_t i = 0; i < ms.n; i++) {
            known += ms.items[i].known;
            connected += ms.items[i].online;
            ops_metrics__remember_label(self->member_labels, ms.items[i].id);
            const char *const l[] = {ms.items[i].id};
            hub_metric_set(self->f_member_up, l, ms.items[i].online ? 1 : 0);
        }
        hub_metric_set(self->f_known, NULL, (double)known);
        hub_metric_set(self->f_connected, NULL, (double)connected);
        hub_ops__members_free(&ms);
    }
    hub_ops__queues_t qs;
    if (hub_ops__queues_snapshot(self, &qs) == 0) {
        hub_metric_family_t *const fams[] = {self->f_q_depth, self->f_q_inflight, self->f_q_age};
        ops_metrics__zero_labels(self->receiver_labels, fams, 3);
        for (size_t i = 0; i < qs.n; i++) {
            ops_metrics__remember_label(self->receiver_labels, qs.items[i].receiver);
            const char *const l[] = {qs.items[i].receiver};
            hub_metric_set(self->f_q_depth, l, (double)qs.items[i].depth);
            hub_metric_set(self->f_q_inflight, l, (double)qs.items[i].in_flight);
            hub_metric_set(self->f_q_age, l, hub_ops__age_s(now, qs.items[i].oldest_accepted_us));
        }
        hub_ops__queues_free(&qs);
    }
    hub_ops__figures_t fig;
    hub_ops__figures(self, &fig);
    hub_metric_set(self->f_dead, NULL, (double)fig.dead_letters);
    hub_metric_set(self->f_store_used, NULL, (double)fig.store_used);
    hub_metric_set(self->f_store_max, NULL, (double)fig.store_max);
    hub_metric_set(self->f_audit, NULL, (double)fig.audit_seq);
    hub_ops_audit_metrics_set(&self->src, &self->audit_metrics);
    for (size_t i = 0; i < HUB_OPS__STAT_FAMILIES; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&fig.stats + hub_ops__stat_families[i].offset, sizeof v);
        if (hub_ops__stat_families[i].metric)
            hub_metric_set(self->f_stat[i], NULL, (double)v);
    }
    for (int code = 1; code < 32; code++) {
        if (fig.stats.nacks_by_code[code] == 0)
            continue;
        const char *const l[] = {hub_nack_code_name(code)};
        hub_metric_set(self->f_refused_code, l, (double)fig.stats.nacks_by_code[code]);
    }
    hub_http_stats_t hs;
    hub_http_stats(self->http, &hs);
    const double hv[7] = {(double)hs.requests,     (double)hs.bad_requests,
                          (double)hs.timeouts,     (double)hs.idle_closes,
                          (double)hs.rejected_connections, (double)hs.write_overflows,
                          (double)hs.open_connections};
    for (size_t i = 0; i < 7; i++)
        hub_metric_set(self->f_http[i], NULL, hv[i]);
    const hub_delegations_t *dl = self->src.delegations ? self->src.delegations(self->src.ctx) : NULL;
    hub_delegation_info_t r;
    for (size_t i = 0; hub_delegations_info(dl, i, &r) == 0; i++) {
        for (size_t k = 0; k < (r.n_procedures ? r.n_procedures : 1); k++) {
            const char *const l[] = {r.authority, r.service, r.delegate,
                                     r.n_procedures ? r.procedures[k] : ""};
            hub_metric_set(self->f_delegated, l,
                           (double)(r.n_procedures ? r.procedure_carried[k] : r.carried));
        }
    }
    ops_metrics__proc_t p;
    ops_metrics__process(&p);
    hub_metric_set(self->f_proc_rss, NULL, p.rss_bytes);
    hub_metric_set(self->f_proc_vsz, NULL, p.vsz_bytes);
    hub_metric_set(self->f_proc_fds, NULL, p.open_fds);
    hub_metric_set(self->f_proc_max_fds, NULL, p.max_fds);
    hub_metric_set(self->f_proc_cpu, NULL, p.cpu_s);
    hub_metric_set(self->f_proc_start, NULL, (double)self->started_at_us / 1e6);
}

void hub_ops__route_metrics(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    (void)req;
    ops_metrics__refresh_metrics(self);
    char *text;
    size_t len;
    if (hub_metrics_render(self->metrics, &text, &len) != 0) {
        hub_ops__error(resp, 500, "could not render the metrics (out of memory)");
        return;
    }
    hub_ops__respond(resp, 200, HUB_METRICS_CONTENT_TYPE, text, len);
    free(text);
}
