#include "hub_ops.h"
#include "hub_dashboard.h"
#include "hub_memberdir.h"
#include "hub_error.h"
#include "hub_jsonw.h"
#include "hub_ops_audit.h"
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

#define HUB__OPS_COMP "ops"
#define HUB__OPS_LIST_DEFAULT 100u
#define HUB__OPS_LIST_MAX 1000u
/* Label values the gauges below remember (members, receivers) so that a
 * member that left, or a queue that emptied, reads 0 rather than its last
 * value. Bounded like every family. */
#define HUB__OPS_LABELS_MAX 10000u

#define HUB__N_STATS 12 /* entries of hub__stat_families */

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
    hub_memberdir_t *directory;   /* agency names; NULL = none */
    uint64_t started_at_us;       /* this process's start, wall clock */
    hub_map_t *member_labels;     /* member ids given a lth_member_connected series */
    hub_map_t *receiver_labels;   /* receivers given lth_queue_* series */
    hub_ops_closed_cb on_closed;
    void *closed_user;
    bool close_started, http_closed, destroy_requested;
    /* Families refreshed on every scrape. */
    hub_metric_family_t *f_known, *f_connected, *f_member_up, *f_q_depth, *f_q_inflight,
        *f_q_age, *f_dead, *f_store_used, *f_store_max, *f_audit, *f_refused_code,
        *f_responses, *f_build;
    hub_metric_family_t *f_stat[HUB__N_STATS];
    hub_ops_audit_metrics_t audit_metrics;
    hub_metric_family_t *f_http[7];
    hub_alarms_t *alarms;
    hub_metric_family_t *f_alarm, *f_alarms_active;
    hub_metric_family_t *f_proc_rss, *f_proc_vsz, *f_proc_fds, *f_proc_max_fds, *f_proc_cpu,
        *f_proc_start;
};

/* hub_server_stats_t fields mirrored as lth_hub_*_total (and in
 * /api/v1/status "counters"). Accepted and refused envelopes are not
 * metrics of their own: lth_messages_total{outcome} (per flow) and
 * lth_hub_refusals_total{code} count them already, and a second counter
 * of the same events only invites dashboards that disagree. */
static const struct {
    const char *name, *help;
    size_t offset;
    bool metric;
} hub__stat_families[HUB__N_STATS] = {
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

static const char *const hub__http_family_names[7] = {
    "lth_http_requests_total",        "lth_http_bad_requests_total",
    "lth_http_timeouts_total",        "lth_http_idle_closes_total",
    "lth_http_rejected_connections_total", "lth_http_write_overflows_total",
    "lth_http_open_connections"};
static const char *const hub__http_family_help[7] = {
    "Complete HTTP requests served on the operator endpoint.",
    "HTTP requests answered 400, 411, 413, 431 or 505.",
    "HTTP connections closed for not completing a request in time.",
    "Kept-alive HTTP connections closed after being idle.",
    "HTTP connections refused because too many were open.",
    "HTTP connections closed because the client did not read its responses.",
    "HTTP connections open now."};

/* ---- small helpers ----------------------------------------------------- */

/* The status of the response being built, for lth_http_responses_total
 * (hub_http keeps it to itself). One request at a time per thread. */
static _Thread_local int hub__status;

static void hub__respond(hub_http_response_t *resp, int status, const char *content_type,
                         const void *body, size_t len)
{
    if (hub_http_respond(resp, status, content_type, body, len) == 0)
        hub__status = status;
}

static void hub__respond_error(hub_http_response_t *resp, int status, const char *msg)
{
    if (hub_http_respond_json_error(resp, status, msg) == 0)
        hub__status = status;
}

static void hub__respond_json(hub_http_response_t *resp, int status, hub_jsonw_t *w)
{
    char *text;
    size_t len;
    if (hub_jsonw_finish(w, &text, &len) != 0) {
        hub__respond_error(resp, 500, "could not build the answer (out of memory)");
        return;
    }
    hub__respond(resp, status, "application/json", text, len);
    free(text);
}

static void hub__error(hub_http_response_t *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void hub__error(hub_http_response_t *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hub__respond_error(resp, status, msg);
}

/* A query parameter that must be a whole number in [min, max]. Returns 0
 * (found, *out set), 1 (absent, *out = dflt) or -1 (400 sent). */
static int hub__param_u64(const hub_http_request_t *req, hub_http_response_t *resp,
                          const char *name, uint64_t min, uint64_t max, uint64_t dflt,
                          uint64_t *out)
{
    char buf[32];
    *out = dflt;
    int rc = hub_http_query_get(req->query, name, buf, sizeof buf);
    if (rc == HUB_ENOTFOUND)
        return 1;
    bool ok = rc == 0 && buf[0] != '\0';
    uint64_t v = 0;
    for (const char *p = buf; ok && *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            ok = false;
        else
            v = v * 10 + (uint64_t)(*p - '0');
    }
    if (!ok || v < min || v > max) {
        hub__error(resp, 400, "%s must be a whole number from %" PRIu64 " to %" PRIu64, name, min,
                   max);
        return -1;
    }
    *out = v;
    return 0;
}

static bool hub__parse_seq(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return v > 0;
}

static bool hub__is_get(const hub_http_request_t *req)
{
    return !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
}

static void hub__method_not_allowed(hub_http_response_t *resp, const char *allow)
{
    hub__error(resp, 405, "this path accepts %s only", allow);
    hub_http_response_header(resp, "Allow", allow);
}

/* True when the request may touch the DLQ; otherwise answers 401/403. */
static bool hub__authorised(hub_ops_t *self, const hub_http_request_t *req,
                            hub_http_response_t *resp)
{
    if (!self->token[0]) {
        hub__error(resp, 403,
                   "the dead-letter queue is closed over HTTP: no operator token is configured "
                   "(set http_token_file in hubd.conf)");
        return false;
    }
    if (!hub_http_token_ok(req, self->token)) {
        hub__error(resp, 401,
                   req->bearer_token ? "the operator token is wrong"
                                     : "this call needs the operator token: send "
                                       "'Authorization: Bearer <token>'");
        hub_http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"lth-hub\"");
        return false;
    }
    return true;
}

static double hub__age_s(uint64_t now_us, uint64_t then_us)
{
    return then_us && now_us > then_us ? (double)(now_us - then_us) / 1e6 : 0.0;
}

/* ---- source snapshots -------------------------------------------------- */

typedef struct {
    char *id, *address, *services;
    bool known, online;
    uint64_t connected_at_us, last_seen_us, msgs_in, msgs_out, bytes_in, bytes_out, in_flight;
    uint64_t refusals, cert_not_after_us;
} hub__member_copy_t;

typedef struct {
    hub__member_copy_t *items;
    size_t n, cap;
    bool failed;
} hub__members_t;

static char *hub__dup(const char *s) { return strdup(s ? s : ""); }

static void hub__collect_member(const hub_ops_member_t *m, void *user)
{
    hub__members_t *ms = user;
    if (ms->failed)
        return;
    if (ms->n == ms->cap) {
        size_t cap = ms->cap ? ms->cap * 2 : 64;
        hub__member_copy_t *items = realloc(ms->items, cap * sizeof *items);
        if (!items) {
            ms->failed = true;
            return;
        }
        ms->items = items;
        ms->cap = cap;
    }
    hub__member_copy_t *c = &ms->items[ms->n];
    c->id = hub__dup(m->member_id);
    c->address = hub__dup(m->address);
    c->services = hub__dup(m->services);
    if (!c->id || !c->address || !c->services) {
        free(c->id);
        free(c->address);
        free(c->services);
        ms->failed = true;
        return;
    }
    c->known = m->known;
    c->online = m->online;
    c->connected_at_us = m->connected_at_us;
    c->last_seen_us = m->last_seen_us;
    c->msgs_in = m->msgs_in;
    c->msgs_out = m->msgs_out;
    c->bytes_in = m->bytes_in;
    c->bytes_out = m->bytes_out;
    c->in_flight = m->in_flight;
    c->refusals = m->refusals;
    c->cert_not_after_us = m->cert_not_after_us;
    ms->n++;
}

static int hub__cmp_member(const void *a, const void *b)
{
    return strcmp(((const hub__member_copy_t *)a)->id, ((const hub__member_copy_t *)b)->id);
}

static void hub__members_free(hub__members_t *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        free(ms->items[i].id);
        free(ms->items[i].address);
        free(ms->items[i].services);
    }
    free(ms->items);
    memset(ms, 0, sizeof *ms);
}

static int hub__members_snapshot(hub_ops_t *self, hub__members_t *ms)
{
    memset(ms, 0, sizeof *ms);
    if (self->src.members)
        self->src.members(self->src.ctx, hub__collect_member, ms);
    if (ms->failed) {
        hub__members_free(ms);
        return HUB_ENOMEM;
    }
    if (ms->n > 1)
        qsort(ms->items, ms->n, sizeof *ms->items, hub__cmp_member);
    return 0;
}

typedef struct {
    char *receiver;
    uint64_t depth, oldest_accepted_us, in_flight;
} hub__queue_copy_t;

typedef struct {
    hub__queue_copy_t *items;
    size_t n, cap;
    bool failed;
} hub__queues_t;

static void hub__collect_queue(const hub_ops_queue_t *q, void *user)
{
    hub__queues_t *qs = user;
    if (qs->failed)
        return;
    if (qs->n == qs->cap) {
        size_t cap = qs->cap ? qs->cap * 2 : 64;
        hub__queue_copy_t *items = realloc(qs->items, cap * sizeof *items);
        if (!items) {
            qs->failed = true;
            return;
        }
        qs->items = items;
        qs->cap = cap;
    }
    hub__queue_copy_t *c = &qs->items[qs->n];
    if (!(c->receiver = hub__dup(q->receiver))) {
        qs->failed = true;
        return;
    }
    c->depth = q->depth;
    c->oldest_accepted_us = q->oldest_accepted_us;
    c->in_flight = q->in_flight;
    qs->n++;
}

static int hub__cmp_queue(const void *a, const void *b)
{
    return strcmp(((const hub__queue_copy_t *)a)->receiver,
                  ((const hub__queue_copy_t *)b)->receiver);
}

static void hub__queues_free(hub__queues_t *qs)
{
    for (size_t i = 0; i < qs->n; i++)
        free(qs->items[i].receiver);
    free(qs->items);
    memset(qs, 0, sizeof *qs);
}

static int hub__queues_snapshot(hub_ops_t *self, hub__queues_t *qs)
{
    memset(qs, 0, sizeof *qs);
    if (self->src.queues)
        self->src.queues(self->src.ctx, hub__collect_queue, qs);
    if (qs->failed) {
        hub__queues_free(qs);
        return HUB_ENOMEM;
    }
    if (qs->n > 1)
        qsort(qs->items, qs->n, sizeof *qs->items, hub__cmp_queue);
    return 0;
}

typedef struct {
    uint64_t store_used, store_max, dead_letters, audit_seq;
    hub_server_stats_t stats;
    bool ready;
    const char *why_not;
} hub__figures_t;

static void hub__figures(hub_ops_t *self, hub__figures_t *f)
{
    memset(f, 0, sizeof *f);
    if (self->src.usage)
        self->src.usage(self->src.ctx, &f->store_used, &f->store_max, &f->dead_letters,
                        &f->audit_seq);
    if (self->src.stats)
        self->src.stats(self->src.ctx, &f->stats);
    f->why_not = NULL;
    f->ready = self->src.ready ? self->src.ready(self->src.ctx, &f->why_not) : false;
    if (!f->ready && !f->why_not)
        f->why_not = self->src.ready ? "the hub is starting" : "the hub gave no readiness check";
}

/* ---- process figures --------------------------------------------------- */

typedef struct {
    double rss_bytes, vsz_bytes, open_fds, max_fds, cpu_s;
} hub__proc_t;

static void hub__process(hub__proc_t *p)
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
static uint64_t hub__process_start_us(uint64_t fallback)
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

static const hub__queue_copy_t *hub__queue_of(const hub__queues_t *qs, const char *receiver)
{
    hub__queue_copy_t key = {.receiver = (char *)receiver};
    return qs->n ? bsearch(&key, qs->items, qs->n, sizeof *qs->items, hub__cmp_queue) : NULL;
}

static void hub__alarm_ended(const hub_alarm_t *a, void *user)
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
    hub__members_t ms;
    hub__queues_t qs;
    if (hub__members_snapshot(self, &ms) != 0)
        return;
    if (hub__queues_snapshot(self, &qs) != 0) {
        hub__members_free(&ms);
        return;
    }
    hub__figures_t fig;
    hub__figures(self, &fig);
    /* Every member, and receivers with a queue that are not members
     * (anymore): their messages wait too. */
    hub_alarm_sample_t *samples = calloc(ms.n + qs.n + 1, sizeof *samples);
    size_t n = 0;
    for (size_t i = 0; samples && i < ms.n; i++) {
        const hub__member_copy_t *m = &ms.items[i];
        const hub__queue_copy_t *q = hub__queue_of(&qs, m->id);
        samples[n++] = (hub_alarm_sample_t){m->id,
                                            m->online,
                                            m->last_seen_us,
                                            q ? q->depth : 0,
                                            q ? q->oldest_accepted_us : 0,
                                            m->cert_not_after_us,
                                            m->refusals};
    }
    for (size_t i = 0; samples && i < qs.n; i++) {
        hub__member_copy_t key = {.id = qs.items[i].receiver};
        if (ms.n && bsearch(&key, ms.items, ms.n, sizeof *ms.items, hub__cmp_member))
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
    hub__members_free(&ms);
    hub__queues_free(&qs);
    /* The metric: ended (or re-levelled) series back to 0, active ones 1. */
    hub_alarms_take_ended(self->alarms, hub__alarm_ended, self);
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
static void hub__alarms_json(hub_ops_t *self, hub_jsonw_t *w)
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
static void hub__health_json(const hub_ops_t *self, hub_jsonw_t *w)
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

static int hub__register_families(hub_ops_t *self)
{
    hub_metrics_t *m = self->metrics;
    static const char *const member_l[] = {"member"};
    static const char *const receiver_l[] = {"receiver"};
    static const char *const code_l[] = {"code"};
    static const char *const version_l[] = {"version"};
    int rc = hub_metrics_gauge(m, "lth_members_known", "Members whose key is in the key directory.",
                               NULL, 0, &self->f_known);
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_members_connected", "Members connected now.", NULL, 0,
                               &self->f_connected);
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_member_connected",
                               "1 while the member is connected, else 0.", member_l, 1,
                               &self->f_member_up);
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_queue_depth",
                               "Messages queued for the receiver (in flight included).",
                               receiver_l, 1, &self->f_q_depth);
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_queue_in_flight",
                               "Messages delivered to the receiver and not yet settled.",
                               receiver_l, 1, &self->f_q_inflight);
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_queue_oldest_age_seconds",
                               "Age of the oldest message queued for the receiver.", receiver_l,
                               1, &self->f_q_age);
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_dead_letters", "Messages in the dead-letter queue.", NULL,
                               0, &self->f_dead);
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_store_used_bytes", "Bytes of the store holding data.",
                               NULL, 0, &self->f_store_used);
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_store_max_bytes", "The store's size limit in bytes.", NULL,
                               0, &self->f_store_max);
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_audit_sequence",
                               "Sequence number of the last audit record (0: audit log off).",
                               NULL, 0, &self->f_audit);
    if (!rc)
        rc = hub_ops_audit_metrics_new(m, &self->audit_metrics);
    if (!rc)
        rc = hub_metrics_counter(m, "lth_hub_refusals_total", "Envelopes NACKed, by NACK code.",
                                 code_l, 1, &self->f_refused_code);
    if (!rc)
        rc = hub_metrics_counter(m, "lth_http_responses_total",
                                 "Responses of the operator API, by status code.", code_l, 1,
                                 &self->f_responses);
    if (!rc) {
        static const char *const alarm_l[] = {"code", "subject", "level"};
        rc = hub_metrics_gauge(m, "lth_alarm",
                               "1 while the alarm holds at this level, else 0 (subject: the "
                               "member, or \"\" for the hub).",
                               alarm_l, 3, &self->f_alarm);
    }
    if (!rc) {
        static const char *const level_l[] = {"level"};
        rc = hub_metrics_gauge(m, "lth_alarms_active", "Alarms holding now, by level.", level_l,
                               1, &self->f_alarms_active);
    }
    if (!rc)
        rc = hub_metrics_gauge(m, "lth_build_info", "The hub's version; always 1.", version_l, 1,
                               &self->f_build);
    for (size_t i = 0; !rc && i < HUB__N_STATS; i++)
        rc = !hub__stat_families[i].metric
                 ? 0
                 : hub_metrics_counter(m, hub__stat_families[i].name, hub__stat_families[i].help,
                                       NULL, 0, &self->f_stat[i]);
    for (size_t i = 0; !rc && i < 7; i++) {
        if (i == 6)
            rc = hub_metrics_gauge(m, hub__http_family_names[i], hub__http_family_help[i], NULL,
                                   0, &self->f_http[i]);
        else
            rc = hub_metrics_counter(m, hub__http_family_names[i], hub__http_family_help[i],
                                     NULL, 0, &self->f_http[i]);
    }
    if (!rc)
        rc = hub_metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size in bytes.",
                               NULL, 0, &self->f_proc_rss);
    if (!rc)
        rc = hub_metrics_gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                               NULL, 0, &self->f_proc_vsz);
    if (!rc)
        rc = hub_metrics_gauge(m, "process_open_fds", "Open file descriptors.", NULL, 0,
                               &self->f_proc_fds);
    if (!rc)
        rc = hub_metrics_gauge(m, "process_max_fds", "The limit on open file descriptors.", NULL,
                               0, &self->f_proc_max_fds);
    if (!rc)
        rc = hub_metrics_counter(m, "process_cpu_seconds_total",
                                 "User and system CPU time spent, in seconds.", NULL, 0,
                                 &self->f_proc_cpu);
    if (!rc)
        rc = hub_metrics_gauge(m, "process_start_time_seconds",
                               "Start time of the process since the Unix epoch, in seconds.", NULL,
                               0, &self->f_proc_start);
    if (!rc) {
        const char *const v[] = {HUB_VERSION};
        rc = hub_metric_set(self->f_build, v, 1);
    }
    return rc;
}

/* Sets family{label} for each name in `names` (a set kept across scrapes):
 * to the value given now, or 0 for names not given this time. */
static void hub__remember_label(hub_map_t *names, const char *name)
{
    if (!hub_map_get(names, name) && hub_map_size(names) < HUB__OPS_LABELS_MAX)
        hub_map_put(names, name, (void *)1);
}

static void hub__zero_labels(hub_map_t *names, hub_metric_family_t *const *families, size_t n)
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

static void hub__refresh_metrics(hub_ops_t *self)
{
    uint64_t now = hub_now_us();
    hub__members_t ms;
    if (hub__members_snapshot(self, &ms) == 0) {
        size_t known = 0, connected = 0;
        hub__zero_labels(self->member_labels, &self->f_member_up, 1);
        for (size_t i = 0; i < ms.n; i++) {
            known += ms.items[i].known;
            connected += ms.items[i].online;
            hub__remember_label(self->member_labels, ms.items[i].id);
            const char *const l[] = {ms.items[i].id};
            hub_metric_set(self->f_member_up, l, ms.items[i].online ? 1 : 0);
        }
        hub_metric_set(self->f_known, NULL, (double)known);
        hub_metric_set(self->f_connected, NULL, (double)connected);
        hub__members_free(&ms);
    }
    hub__queues_t qs;
    if (hub__queues_snapshot(self, &qs) == 0) {
        hub_metric_family_t *const fams[] = {self->f_q_depth, self->f_q_inflight, self->f_q_age};
        hub__zero_labels(self->receiver_labels, fams, 3);
        for (size_t i = 0; i < qs.n; i++) {
            hub__remember_label(self->receiver_labels, qs.items[i].receiver);
            const char *const l[] = {qs.items[i].receiver};
            hub_metric_set(self->f_q_depth, l, (double)qs.items[i].depth);
            hub_metric_set(self->f_q_inflight, l, (double)qs.items[i].in_flight);
            hub_metric_set(self->f_q_age, l, hub__age_s(now, qs.items[i].oldest_accepted_us));
        }
        hub__queues_free(&qs);
    }
    hub__figures_t fig;
    hub__figures(self, &fig);
    hub_metric_set(self->f_dead, NULL, (double)fig.dead_letters);
    hub_metric_set(self->f_store_used, NULL, (double)fig.store_used);
    hub_metric_set(self->f_store_max, NULL, (double)fig.store_max);
    hub_metric_set(self->f_audit, NULL, (double)fig.audit_seq);
    hub_ops_audit_metrics_set(&self->src, &self->audit_metrics);
    for (size_t i = 0; i < HUB__N_STATS; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&fig.stats + hub__stat_families[i].offset, sizeof v);
        if (hub__stat_families[i].metric)
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
    hub__proc_t p;
    hub__process(&p);
    hub_metric_set(self->f_proc_rss, NULL, p.rss_bytes);
    hub_metric_set(self->f_proc_vsz, NULL, p.vsz_bytes);
    hub_metric_set(self->f_proc_fds, NULL, p.open_fds);
    hub_metric_set(self->f_proc_max_fds, NULL, p.max_fds);
    hub_metric_set(self->f_proc_cpu, NULL, p.cpu_s);
    hub_metric_set(self->f_proc_start, NULL, (double)self->started_at_us / 1e6);
}

static void hub__route_metrics(hub_ops_t *self, hub_http_response_t *resp)
{
    hub__refresh_metrics(self);
    char *text;
    size_t len;
    if (hub_metrics_render(self->metrics, &text, &len) != 0) {
        hub__error(resp, 500, "could not render the metrics (out of memory)");
        return;
    }
    hub__respond(resp, 200, HUB_METRICS_CONTENT_TYPE, text, len);
    free(text);
}

/* ---- JSON routes ------------------------------------------------------- */

static void hub__route_healthz(hub_http_response_t *resp)
{
    static const char body[] = "{\"status\":\"ok\"}";
    hub__respond(resp, 200, "application/json", body, sizeof body - 1);
}

static void hub__route_readyz(hub_ops_t *self, hub_http_response_t *resp)
{
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
    hub__alarms_json(self, &w);
    hub_jsonw_object_end(&w);
    hub__respond_json(resp, ready ? 200 : 503, &w);
}

typedef struct {
    uint64_t accepted, refused, delivered, settled, dead_lettered;
} hub__sums_t;

static void hub__route_status(hub_ops_t *self, hub_http_response_t *resp)
{
    uint64_t now = hub_now_us();
    hub__figures_t fig;
    hub__figures(self, &fig);
    hub__members_t ms;
    hub__queues_t qs;
    if (hub__members_snapshot(self, &ms) != 0) {
        hub__error(resp, 500, "out of memory");
        return;
    }
    if (hub__queues_snapshot(self, &qs) != 0) {
        hub__members_free(&ms);
        hub__error(resp, 500, "out of memory");
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
    hub__sums_t last_minute = {0};
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
    hub_jsonw_kv_double(&w, "uptime_s", hub__age_s(now, self->started_at_us), 3);
    hub_jsonw_kv_bool(&w, "ready", fig.ready);
    hub__health_json(self, &w);
    hub__alarms_json(self, &w);
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
    hub_jsonw_kv_double(&w, "oldest_age_s", hub__age_s(now, oldest), 3);
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
    for (size_t i = 0; i < HUB__N_STATS; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&fig.stats + hub__stat_families[i].offset, sizeof v);
        /* "lth_hub_frames_received_total" -> "frames_received" */
        char key[64];
        const char *name = hub__stat_families[i].name + strlen("lth_hub_");
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
    hub__members_free(&ms);
    hub__queues_free(&qs);
    hub__respond_json(resp, 200, &w);
}

static void hub__route_members(hub_ops_t *self, hub_http_response_t *resp)
{
    uint64_t now = hub_now_us();
    hub__members_t ms;
    if (hub__members_snapshot(self, &ms) != 0) {
        hub__error(resp, 500, "out of memory");
        return;
    }
    size_t connected = 0;
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "now_us", now);
    hub_jsonw_key(&w, "members");
    hub_jsonw_array_begin(&w);
    for (size_t i = 0; i < ms.n; i++) {
        const hub__member_copy_t *m = &ms.items[i];
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
            hub_jsonw_double(&w, hub__age_s(now, m->last_seen_us), 3);
        else
            hub_jsonw_null(&w);
        hub_jsonw_kv_str(&w, "address", m->address);
        hub_jsonw_key(&w, "services");
        hub_jsonw_array_begin(&w);
        for (const char *p = m->services; *p;) {
            size_t len = strcspn(p, ",");
            if (len)
                hub_jsonw_strn(&w, p, len);
            p += len;
            if (*p == ',')
                p++;
        }
        hub_jsonw_array_end(&w);
        hub_jsonw_kv_u64(&w, "msgs_in", m->msgs_in);
        hub_jsonw_kv_u64(&w, "msgs_out", m->msgs_out);
        hub_jsonw_kv_u64(&w, "bytes_in", m->bytes_in);
        hub_jsonw_kv_u64(&w, "bytes_out", m->bytes_out);
        hub_jsonw_kv_u64(&w, "in_flight", m->in_flight);
        hub_jsonw_object_end(&w);
    }
    hub_jsonw_array_end(&w);
    hub_jsonw_kv_u64(&w, "count", ms.n);
    hub_jsonw_kv_u64(&w, "connected", connected);
    hub_jsonw_object_end(&w);
    hub__members_free(&ms);
    hub__respond_json(resp, 200, &w);
}

static void hub__route_queues(hub_ops_t *self, hub_http_response_t *resp)
{
    uint64_t now = hub_now_us();
    hub__queues_t qs;
    if (hub__queues_snapshot(self, &qs) != 0) {
        hub__error(resp, 500, "out of memory");
        return;
    }
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "now_us", now);
    hub_jsonw_key(&w, "queues");
    hub_jsonw_array_begin(&w);
    for (size_t i = 0; i < qs.n; i++) {
        const hub__queue_copy_t *q = &qs.items[i];
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_str(&w, "receiver", q->receiver);
        hub_jsonw_kv_u64(&w, "depth", q->depth);
        hub_jsonw_kv_u64(&w, "in_flight", q->in_flight);
        hub_jsonw_kv_u64(&w, "oldest_accepted_us", q->oldest_accepted_us);
        hub_jsonw_kv_double(&w, "oldest_age_s", hub__age_s(now, q->oldest_accepted_us), 3);
        hub_jsonw_object_end(&w);
    }
    hub_jsonw_array_end(&w);
    hub_jsonw_object_end(&w);
    hub__queues_free(&qs);
    hub__respond_json(resp, 200, &w);
}

static void hub__latency_json(hub_jsonw_t *w, const char *key, const hub_flows_latency_t *l)
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

static void hub__window_json(hub_jsonw_t *w, const char *key, const hub_flows_window_t *win)
{
    hub_jsonw_key(w, key);
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_u64(w, "accepted", win->accepted);
    hub_jsonw_kv_u64(w, "errors", win->errors);
    hub__latency_json(w, "end_to_end_ms", &win->end_to_end);
    hub__latency_json(w, "hub_ms", &win->hub);
    hub_jsonw_object_end(w);
}

static void hub__flow_json(const hub_flows_info_t *f, void *user)
{
    hub_jsonw_t *w = user;
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_str(w, "sender", f->sender);
    hub_jsonw_kv_str(w, "receiver", f->receiver);
    hub_jsonw_kv_str(w, "service", f->service);
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
    hub__window_json(w, "minute", &f->minute);
    hub__window_json(w, "hour", &f->hour);
    hub_jsonw_object_end(w);
}

static void hub__route_flows(hub_ops_t *self, hub_http_response_t *resp)
{
    uint64_t now = hub_now_us();
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "now_us", now);
    hub_jsonw_key(&w, "flows");
    hub_jsonw_array_begin(&w);
    hub_flows_foreach(self->flows, now, hub__flow_json, &w);
    hub_jsonw_array_end(&w);
    hub_jsonw_object_end(&w);
    hub__respond_json(resp, 200, &w);
}

static void hub__exchange_json(const hub_flows_exchange_t *x, void *user)
{
    hub_jsonw_t *w = user;
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_str(w, "message_id", x->message_id);
    hub_jsonw_kv_str(w, "sender", x->sender);
    hub_jsonw_kv_str(w, "receiver", x->receiver);
    hub_jsonw_kv_str(w, "service", x->service);
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

static void hub__route_exchanges(hub_ops_t *self, const hub_http_request_t *req,
                                 hub_http_response_t *resp)
{
    uint64_t limit;
    if (hub__param_u64(req, resp, "limit", 1, HUB_FLOWS_EXCHANGES, HUB__OPS_LIST_DEFAULT,
                       &limit) < 0)
        return;
    char member[256];
    int rc = hub_http_query_get(req->query, "member", member, sizeof member);
    if (rc == HUB_ENOTFOUND) {
        member[0] = '\0';
    } else if (rc != 0) {
        hub__error(resp, 400, "member must be a member id, e.g. VN/GOV/BCA/CSDLQGDC");
        return;
    }
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_key(&w, "exchanges");
    hub_jsonw_array_begin(&w);
    hub_flows_exchanges(self->flows, (size_t)limit, member, hub__exchange_json, &w);
    hub_jsonw_array_end(&w);
    hub_jsonw_object_end(&w);
    hub__respond_json(resp, 200, &w);
}

static void hub__route_throughput(hub_ops_t *self, hub_http_response_t *resp)
{
    hub_flows_tick_t *ticks = malloc(HUB_FLOWS_THROUGHPUT_S * sizeof *ticks);
    if (!ticks) {
        hub__error(resp, 500, "out of memory");
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
    hub__respond_json(resp, 200, &w);
}

/* ---- the dead-letter queue ---------------------------------------------- */

static hub_store_t *hub__store(hub_ops_t *self, hub_http_response_t *resp)
{
    hub_store_t *store = self->src.store ? self->src.store(self->src.ctx) : NULL;
    if (!store)
        hub__error(resp, 503, "the store is not open");
    return store;
}

static void hub__dead_json(hub_jsonw_t *w, const hub_store_dead_t *d)
{
    hub_jsonw_kv_u64(w, "seq", d->msg.seq);
    hub_jsonw_kv_str(w, "message_id", d->msg.message_id);
    hub_jsonw_kv_str(w, "sender", d->msg.sender);
    hub_jsonw_kv_str(w, "receiver", d->msg.receiver);
    hub_jsonw_kv_str(w, "service", d->msg.service);
    hub_jsonw_kv_str(w, "reason", d->reason);
    hub_jsonw_kv_u64(w, "attempts", d->msg.attempts);
    hub_jsonw_kv_u64(w, "accepted_at_us", d->msg.accepted_at_us);
    hub_jsonw_kv_u64(w, "dead_at_us", d->dead_at_us);
    hub_jsonw_kv_u64(w, "envelope_bytes", d->msg.envelope_len);
}

static void hub__route_dlq_list(hub_ops_t *self, const hub_http_request_t *req,
                                hub_http_response_t *resp)
{
    uint64_t after, limit;
    if (hub__param_u64(req, resp, "after", 0, UINT64_MAX - 1, 0, &after) < 0 ||
        hub__param_u64(req, resp, "limit", 1, HUB__OPS_LIST_MAX, HUB__OPS_LIST_DEFAULT,
                       &limit) < 0)
        return;
    hub_store_t *store = hub__store(self, resp);
    if (!store)
        return;
    /* One more than asked for tells whether there is a next page. */
    hub_store_dead_t *items = calloc((size_t)limit + 1, sizeof *items);
    if (!items) {
        hub__error(resp, 500, "out of memory");
        return;
    }
    size_t n = 0;
    int rc = hub_store_dlq_list(store, after, (size_t)limit + 1, items, &n, NULL);
    uint64_t damaged = rc == HUB_ESTORE ? items[n].msg.seq : 0;
    if (rc != 0 && rc != HUB_ESTORE) {
        free(items);
        hub__error(resp, 500, "cannot read the dead-letter queue: %s", hub_strerror(rc));
        return;
    }
    uint64_t total = 0;
    hub_store_usage(store, NULL, NULL, &total);
    bool more = n > limit;
    if (more)
        n = (size_t)limit;
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "total", total);
    hub_jsonw_key(&w, "dead_letters");
    hub_jsonw_array_begin(&w);
    for (size_t i = 0; i < n; i++) {
        hub_jsonw_object_begin(&w);
        hub__dead_json(&w, &items[i]);
        hub_jsonw_object_end(&w);
    }
    hub_jsonw_array_end(&w);
    hub_jsonw_key(&w, "next_after");
    if (more)
        hub_jsonw_u64(&w, items[n - 1].msg.seq);
    else
        hub_jsonw_null(&w);
    if (damaged) {
        /* Say so, and name it: purging it is the way out. */
        hub_jsonw_kv_u64(&w, "damaged_seq", damaged);
    }
    hub_jsonw_object_end(&w);
    free(items);
    hub__respond_json(resp, 200, &w);
}

static void hub__route_dlq_get(hub_ops_t *self, const hub_http_request_t *req,
                               hub_http_response_t *resp, uint64_t seq)
{
    uint64_t want_payload;
    if (hub__param_u64(req, resp, "payload", 0, 1, 0, &want_payload) < 0)
        return;
    hub_store_t *store = hub__store(self, resp);
    if (!store)
        return;
    hub_store_arena_t *arena = NULL;
    if (hub_store_arena_new(&arena) != 0) {
        hub__error(resp, 500, "out of memory");
        return;
    }
    hub_store_dead_t *d = calloc(1, sizeof *d);
    int rc = d ? hub_store_dlq_get(store, seq, d, arena) : HUB_ENOMEM;
    if (rc != 0) {
        if (rc == HUB_ENOTFOUND)
            hub__error(resp, 404, "no dead letter with seq %" PRIu64, seq);
        else
            hub__error(resp, 500, "cannot read dead letter %" PRIu64 ": %s", seq,
                       hub_strerror(rc));
        free(d);
        hub_store_arena_destroy(&arena);
        return;
    }
    hub_envelope_t *env = NULL;
    if (d->msg.envelope && hub_envelope_decode(d->msg.envelope, d->msg.envelope_len, &env) != 0)
        env = NULL;
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub__dead_json(&w, d);
    hub_jsonw_kv_bool(&w, "envelope_readable", env != NULL);
    if (env) {
        hub_jsonw_kv_str(&w, "correlation_id", env->correlation_id);
        hub_jsonw_kv_str(&w, "content_type", env->content_type);
        hub_jsonw_kv_u64(&w, "created_at_us", env->created_at_us);
        hub_jsonw_kv_u64(&w, "ttl_ms", env->ttl_ms);
        hub_jsonw_kv_str(&w, "kind", env->kind == LTH__V1__KIND__KIND_REPLY   ? "reply"
                                     : env->kind == LTH__V1__KIND__KIND_EVENT ? "event"
                                                                              : "request");
        hub_jsonw_kv_u64(&w, "payload_bytes", env->payload.len);
        if (want_payload) {
            size_t b64_len = sodium_base64_encoded_len(env->payload.len,
                                                       sodium_base64_VARIANT_ORIGINAL);
            char *b64 = malloc(b64_len);
            if (b64) {
                sodium_bin2base64(b64, b64_len, env->payload.data, env->payload.len,
                                  sodium_base64_VARIANT_ORIGINAL);
                hub_jsonw_kv_str(&w, "payload_base64", b64);
                free(b64);
            } else {
                w.error = HUB_ENOMEM;
            }
        }
    }
    hub_jsonw_object_end(&w);
    hub_envelope_free(&env);
    free(d);
    hub_store_arena_destroy(&arena);
    if (want_payload)
        HUB_INFO(HUB__OPS_COMP, "dead letter payload read over HTTP", "seq=%" PRIu64, seq);
    hub__respond_json(resp, 200, &w);
}

static void hub__dlq_result(hub_http_response_t *resp, int rc, const char *what, uint64_t seq)
{
    if (rc == 0) {
        hub_jsonw_t w;
        hub_jsonw_init(&w);
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_u64(&w, what, seq);
        hub_jsonw_object_end(&w);
        hub__respond_json(resp, 200, &w);
    } else if (rc == HUB_ENOTFOUND) {
        hub__error(resp, 404, "no dead letter with seq %" PRIu64, seq);
    } else if (rc == HUB_EFULL) {
        hub__error(resp, 503, "the store is full; purge dead letters or raise max_store_bytes");
    } else if (rc == HUB_EAGAIN) {
        hub__error(resp, 503, "the hub is writing messages to its store right now; send the "
                              "same request again in a moment");
    } else {
        hub__error(resp, 500, "could not do it: %s", hub_strerror(rc));
    }
}

/* A POST body must be empty or a JSON object: anything else is a client's
 * mistake that should not pass silently. */
static bool hub__post_body_ok(const hub_http_request_t *req, hub_http_response_t *resp)
{
    size_t i = 0;
    while (i < req->body_len && strchr(" \t\r\n", req->body[i]))
        i++;
    if (i == req->body_len)
        return true;
    size_t j = req->body_len;
    while (j > i && strchr(" \t\r\n", req->body[j - 1]))
        j--;
    if (req->body[i] == '{' && req->body[j - 1] == '}' && j - i >= 2) {
        /* Only {} is meaningful today; other members are not understood. */
        bool empty = true;
        for (size_t k = i + 1; k < j - 1; k++)
            empty = empty && strchr(" \t\r\n", req->body[k]) != NULL;
        if (empty)
            return true;
        hub__error(resp, 400, "this call takes no parameters in its body; send {} or nothing");
        return false;
    }
    hub__error(resp, 400, "the body is not a JSON object; send {} or nothing");
    return false;
}

static void hub__route_dlq(hub_ops_t *self, const hub_http_request_t *req,
                           hub_http_response_t *resp, const char *rest)
{
    /* rest: "" | "/" | "/SEQ" | "/SEQ/replay" | "/SEQ/purge" | "/purge" */
    if (rest[0] == '\0' || !strcmp(rest, "/")) {
        if (!hub__is_get(req)) {
            hub__method_not_allowed(resp, "GET");
            return;
        }
        if (hub__authorised(self, req, resp))
            hub__route_dlq_list(self, req, resp);
        return;
    }
    rest++;
    if (!strcmp(rest, "purge")) {
        if (strcmp(req->method, "POST") != 0) {
            hub__method_not_allowed(resp, "POST");
            return;
        }
        if (!hub__authorised(self, req, resp) || !hub__post_body_ok(req, resp))
            return;
        uint64_t older_than_s;
        int found = hub__param_u64(req, resp, "older_than_s", 0, 100ull * 365 * 86400, 0,
                                   &older_than_s);
        if (found < 0)
            return;
        if (found == 1) {
            hub__error(resp, 400, "older_than_s is required: purge dead letters older than that "
                                  "many seconds (0 = all)");
            return;
        }
        uint64_t now = hub_now_us();
        uint64_t before = now > older_than_s * 1000000u ? now - older_than_s * 1000000u : 0;
        if (older_than_s == 0)
            before = UINT64_MAX;
        uint64_t purged = 0;
        int rc = self->src.dlq_purge_older ? self->src.dlq_purge_older(self->src.ctx, before,
                                                                       &purged)
                                           : HUB_EINVAL;
        if (rc != 0) {
            hub__error(resp, 500, "purge failed: %s", hub_strerror(rc));
            return;
        }
        HUB_INFO(HUB__OPS_COMP, "dead letters purged over HTTP",
                 "older_than_s=%" PRIu64 " purged=%" PRIu64, older_than_s, purged);
        hub_jsonw_t w;
        hub_jsonw_init(&w);
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_u64(&w, "purged", purged);
        hub_jsonw_object_end(&w);
        hub__respond_json(resp, 200, &w);
        return;
    }
    size_t seq_len = strcspn(rest, "/");
    uint64_t seq;
    if (!hub__parse_seq(rest, seq_len, &seq)) {
        hub__error(resp, 400, "a dead letter is named by its seq, a whole number above 0");
        return;
    }
    const char *action = rest + seq_len;
    if (action[0] == '\0') {
        if (!hub__is_get(req)) {
            hub__method_not_allowed(resp, "GET");
            return;
        }
        if (hub__authorised(self, req, resp))
            hub__route_dlq_get(self, req, resp, seq);
        return;
    }
    bool replay = !strcmp(action, "/replay"), purge = !strcmp(action, "/purge");
    if (!replay && !purge) {
        hub__error(resp, 404, "no such path; dead letters have /replay and /purge");
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        hub__method_not_allowed(resp, "POST");
        return;
    }
    if (!hub__authorised(self, req, resp) || !hub__post_body_ok(req, resp))
        return;
    int rc;
    if (replay)
        rc = self->src.dlq_replay ? self->src.dlq_replay(self->src.ctx, seq) : HUB_EINVAL;
    else
        rc = self->src.dlq_purge ? self->src.dlq_purge(self->src.ctx, seq) : HUB_EINVAL;
    if (rc == 0)
        HUB_INFO(HUB__OPS_COMP, replay ? "dead letter replayed over HTTP"
                                       : "dead letter purged over HTTP",
                 "seq=%" PRIu64, seq);
    hub__dlq_result(resp, rc, replay ? "replayed" : "purged", seq);
}

/* ---- the dashboard ------------------------------------------------------ */

static bool hub__route_asset(const hub_http_request_t *req, hub_http_response_t *resp)
{
    const char *path = !strcmp(req->path, "/") ? "/index.html" : req->path;
    for (size_t i = 0; i < hub_dashboard_n_assets; i++) {
        const hub_dashboard_asset_t *a = &hub_dashboard_assets[i];
        if (strcmp(a->path, path) != 0)
            continue;
        if (!hub__is_get(req)) {
            hub__method_not_allowed(resp, "GET");
            return true;
        }
        hub__respond(resp, 200, a->content_type, a->data, a->len);
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
static void hub__route_i18n(const hub_ops_t *self, const hub_http_request_t *req,
                            hub_http_response_t *resp)
{
    if (!hub__is_get(req)) {
        hub__method_not_allowed(resp, "GET");
        return;
    }
    char lang[8];
    int rc = hub_http_query_get(req->query, "lang", lang, sizeof lang);
    if (rc == HUB_ENOTFOUND)
        snprintf(lang, sizeof lang, "%s", self->lang);
    else if (rc != 0 || (strcmp(lang, "vi") != 0 && strcmp(lang, "en") != 0)) {
        hub__error(resp, 400, "lang must be vi (Vietnamese) or en (English)");
        return;
    }
    char path[32];
    snprintf(path, sizeof path, "/i18n.%s.json", lang);
    for (size_t i = 0; i < hub_dashboard_n_assets; i++) {
        const hub_dashboard_asset_t *a = &hub_dashboard_assets[i];
        if (!strcmp(a->path, path)) {
            hub__respond(resp, 200, "application/json", a->data, a->len);
            hub_http_response_header(resp, "Content-Language", lang);
            return;
        }
    }
    hub__error(resp, 500, "the %s catalogue is missing from this build", lang);
}

/* ---- routing ------------------------------------------------------------ */

static void hub__route(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    const char *path = req->path;
    static const char api[] = "/api/v1/";
    /* Beyond loopback, what names members, addresses and message ids is
     * for the operator only; health and the dashboard's own files stay
     * open (they hold no data; the dashboard's calls need the token). */
    if (self->public_api && (!strncmp(path, "/api/", 5) || !strcmp(path, "/metrics")) &&
        !hub__authorised(self, req, resp))
        return;
    if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz") || !strcmp(path, "/metrics")) {
        if (!hub__is_get(req))
            hub__method_not_allowed(resp, "GET");
        else if (path[1] == 'h')
            hub__route_healthz(resp);
        else if (path[1] == 'r')
            hub__route_readyz(self, resp);
        else
            hub__route_metrics(self, resp);
        return;
    }
    if (!strcmp(path, "/i18n.json")) {
        hub__route_i18n(self, req, resp);
        return;
    }
    if (!strncmp(path, api, sizeof api - 1)) {
        const char *rest = path + sizeof api - 1;
        if (!strcmp(rest, "audit/head")) {
            hub__status = hub_ops_audit_route(&self->src, req, resp);
            return;
        }
        if (!strncmp(rest, "dlq", 3) && (rest[3] == '\0' || rest[3] == '/')) {
            hub__route_dlq(self, req, resp, rest + 3);
            return;
        }
        static const char *const gets[] = {"status", "members", "flows", "queues", "exchanges",
                                           "throughput"};
        for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
            if (strcmp(rest, gets[i]) != 0)
                continue;
            if (!hub__is_get(req)) {
                hub__method_not_allowed(resp, "GET");
                return;
            }
            switch (i) {
            case 0: hub__route_status(self, resp); break;
            case 1: hub__route_members(self, resp); break;
            case 2: hub__route_flows(self, resp); break;
            case 3: hub__route_queues(self, resp); break;
            case 4: hub__route_exchanges(self, req, resp); break;
            default: hub__route_throughput(self, resp); break;
            }
            return;
        }
    } else if (hub__route_asset(req, resp)) {
        return;
    }
    hub__error(resp, 404,
               "no such path; see /api/v1/status, /api/v1/members, /api/v1/flows, "
               "/api/v1/queues, /api/v1/exchanges, /api/v1/dlq, /metrics, /healthz, /readyz");
}

/* Is the Host a client used one we answer to? An IP literal or localhost,
 * or a configured name; a request without Host (HTTP/1.0 tools) is not
 * from a browser and passes. A web page that had its own domain name
 * resolve to 127.0.0.1 (DNS rebinding) sends that name, and is refused. */
static bool hub__host_ok(const hub_ops_t *self, const char *host)
{
    if (!host)
        return true;
    char name[256];
    size_t n;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return false;
        n = (size_t)(end - host - 1);
        if (n == 0 || n >= sizeof name)
            return false;
        memcpy(name, host + 1, n);
        name[n] = '\0';
        struct in6_addr a6;
        return inet_pton(AF_INET6, name, &a6) == 1;
    }
    n = strcspn(host, ":");
    if (n == 0 || n >= sizeof name)
        return false;
    for (size_t i = 0; i < n; i++)
        name[i] = (char)tolower((unsigned char)host[i]);
    name[n] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1 || !strcmp(name, "localhost"))
        return true;
    if (!self->allowed_hosts[0])
        return false;
    char needle[260];
    snprintf(needle, sizeof needle, ",%s,", name);
    return strstr(self->allowed_hosts, needle) != NULL;
}

static void hub__on_request(const hub_http_request_t *req, hub_http_response_t *resp,
                            void *user)
{
    hub_ops_t *self = user;
    hub__status = 500; /* what hub_http answers when nothing was set */
    if (!hub__host_ok(self, req->host)) {
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(req->host, ":"), req->host);
        hub__error(resp, 421,
                   "this endpoint answers to its IP address or localhost, not to '%s'; to reach "
                   "it by that name, add it to http_allowed_hosts in hubd.conf",
                   name);
    } else {
        hub__route(self, req, resp);
    }
    char code[8];
    snprintf(code, sizeof code, "%d", hub__status);
    const char *const l[] = {code};
    hub_metric_inc(self->f_responses, l, 1);
}

/* ---- life cycle --------------------------------------------------------- */

static int hub__parse_listen(const char *listen, char *host, size_t host_size, int *port);

bool hub_ops_listen_is_loopback(const char *listen)
{
    char host[256];
    int port;
    if (!listen || hub__parse_listen(listen, host, sizeof host, &port) != 0)
        return false;
    unsigned char addr[16];
    if (strchr(host, ':')) {
        static const unsigned char one[16] = {[15] = 1};
        return uv_inet_pton(AF_INET6, host, addr) == 0 && !memcmp(addr, one, 16);
    }
    return uv_inet_pton(AF_INET, host, addr) == 0 && addr[0] == 127;
}

static int hub__parse_listen(const char *listen, char *host, size_t host_size, int *port)
{
    const char *colon;
    size_t host_len;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':')
            return HUB_EINVAL;
        host_len = (size_t)(end - listen - 1);
        if (host_len == 0 || host_len >= host_size)
            return HUB_EINVAL;
        memcpy(host, listen + 1, host_len);
        colon = end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || strchr(listen, ':') != colon)
            return HUB_EINVAL;
        host_len = (size_t)(colon - listen);
        if (host_len == 0 || host_len >= host_size)
            return HUB_EINVAL;
        memcpy(host, listen, host_len);
    }
    host[host_len] = '\0';
    if (!strcmp(host, "localhost"))
        snprintf(host, host_size, "127.0.0.1");
    unsigned char addr[16];
    if (uv_inet_pton(strchr(host, ':') ? AF_INET6 : AF_INET, host, addr) != 0)
        return HUB_EINVAL;
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5)
        return HUB_EINVAL;
    long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return HUB_EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return HUB_EINVAL;
    *port = (int)v;
    return 0;
}

static struct {
    char lang[8];
    char members_file[PATH_MAX];
} hub__site = {"vi", ""};

void hub_ops_site_defaults(const char *lang, const char *members_file)
{
    snprintf(hub__site.lang, sizeof hub__site.lang, "%s", lang && lang[0] ? lang : "vi");
    snprintf(hub__site.members_file, sizeof hub__site.members_file, "%s",
             members_file ? members_file : "");
}

int hub_ops_new(uv_loop_t *loop, const hub_ops_config_t *cfg, const hub_ops_source_t *src,
                hub_flows_t *flows, hub_metrics_t *metrics, hub_ops_t **out, char *err,
                size_t err_size)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        err_size = sizeof dummy;
    }
    err[0] = '\0';
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!loop || !cfg || !cfg->listen || !src) {
        snprintf(err, err_size, "hub_ops_new: missing argument");
        return HUB_EINVAL;
    }
    char host[256];
    int port;
    if (hub__parse_listen(cfg->listen, host, sizeof host, &port) != 0) {
        snprintf(err, err_size,
                 "http_listen '%.100s' is not HOST:PORT with a numeric address, e.g. "
                 "127.0.0.1:8080 or [::1]:8080",
                 cfg->listen);
        return HUB_EINVAL;
    }
    if (cfg->token && strlen(cfg->token) > HUB_OPS_TOKEN_MAX) {
        snprintf(err, err_size, "the operator token is longer than %d characters",
                 HUB_OPS_TOKEN_MAX);
        return HUB_EINVAL;
    }
    bool public_api = cfg->public_api || !hub_ops_listen_is_loopback(cfg->listen);
    if (public_api && !(cfg->token && cfg->token[0])) {
        snprintf(err, err_size,
                 "the HTTP endpoint %.100s faces the network (http_public, or not a loopback "
                 "address), and there every /api/ route and /metrics need the operator token: "
                 "set http_token_file",
                 cfg->listen);
        return HUB_EINVAL;
    }
    hub_ops_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    self->loop = loop;
    self->public_api = public_api;
    self->src = *src;
    self->flows = flows;
    self->metrics = metrics;
    if (cfg->token)
        snprintf(self->token, sizeof self->token, "%s", cfg->token);
    if (cfg->allowed_hosts && cfg->allowed_hosts[0]) {
        size_t o = 0;
        self->allowed_hosts[o++] = ',';
        for (const char *p = cfg->allowed_hosts; *p && o + 2 < sizeof self->allowed_hosts; p++)
            if (*p != ' ' && *p != '\t')
                self->allowed_hosts[o++] = (char)tolower((unsigned char)*p);
        self->allowed_hosts[o++] = ',';
        self->allowed_hosts[o] = '\0';
    }
    const char *lang = cfg->lang ? cfg->lang : hub__site.lang;
    snprintf(self->lang, sizeof self->lang, "%s", !strcmp(lang, "en") ? "en" : "vi");
    const char *members_file = cfg->members_file ? cfg->members_file : hub__site.members_file;
    if (members_file[0]) {
        int drc = hub_memberdir_load(members_file, &self->directory, err, err_size);
        if (drc) {
            hub_ops_destroy(&self);
            return drc;
        }
        HUB_INFO(HUB__OPS_COMP, "member directory loaded", "file=%s members=%zu", members_file,
                 hub_memberdir_count(self->directory));
    }
    self->started_at_us = hub__process_start_us(hub_now_us());
    self->member_labels = hub_map_new();
    self->receiver_labels = hub_map_new();
    int rc = self->member_labels && self->receiver_labels ? 0 : HUB_ENOMEM;
    if (!rc && !self->metrics) {
        rc = hub_metrics_new(0, &self->metrics);
        self->own_metrics = rc == 0;
    }
    if (!rc)
        rc = hub__register_families(self);
    if (!rc)
        rc = hub_alarms_new(cfg->alarms, self->started_at_us, &self->alarms);
    if (rc) {
        snprintf(err, err_size, "cannot set up the operator metrics: %s", hub_strerror(rc));
        hub_ops_destroy(&self);
        return rc;
    }
    rc = hub_http_new(loop, &cfg->http, hub__on_request, self, &self->http);
    if (!rc)
        rc = hub_http_listen(self->http, host, port);
    if (rc) {
        snprintf(err, err_size,
                 "cannot listen for HTTP on %.100s: %s (is another process using the port? "
                 "change http_listen)",
                 cfg->listen, hub_strerror(rc));
        hub_ops_destroy(&self);
        return rc;
    }
    snprintf(self->address, sizeof self->address, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
             hub_http_port(self->http));
    HUB_INFO(HUB__OPS_COMP, "operator HTTP endpoint listening", "address=%s dlq=%s api=%s",
             self->address, self->token[0] ? "token" : "closed (no token)",
             public_api ? "token (public)" : "open (loopback)");
    *out = self;
    return 0;
}

int hub_ops_port(const hub_ops_t *self) { return self ? hub_http_port(self->http) : 0; }

const char *hub_ops_address(const hub_ops_t *self) { return self ? self->address : ""; }

static void hub__free(hub_ops_t *self)
{
    hub_alarms_destroy(&self->alarms);
    hub_map_destroy(&self->member_labels);
    hub_map_destroy(&self->receiver_labels);
    hub_memberdir_destroy(&self->directory);
    if (self->own_metrics)
        hub_metrics_destroy(&self->metrics);
    sodium_memzero(self->token, sizeof self->token);
    free(self);
}

static void hub__on_http_closed(void *user)
{
    hub_ops_t *self = user;
    self->http_closed = true;
    hub_ops_closed_cb cb = self->on_closed;
    void *cb_user = self->closed_user;
    /* Destroyed while closing: hub_http has freed itself; finish here. */
    if (self->destroy_requested)
        hub__free(self);
    /* cb may call hub_ops_destroy() (when not destroyed already). */
    if (cb)
        cb(cb_user);
}

int hub_ops_close(hub_ops_t *self, hub_ops_closed_cb on_closed, void *user)
{
    if (!self || !self->http)
        return HUB_EINVAL;
    if (self->close_started)
        return HUB_ECLOSED;
    self->close_started = true;
    self->on_closed = on_closed;
    self->closed_user = user;
    return hub_http_close(self->http, hub__on_http_closed, self);
}

void hub_ops_destroy(hub_ops_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_ops_t *self = *self_p;
    *self_p = NULL;
    if (self->close_started && !self->http_closed) {
        /* hub__on_http_closed() frees the rest once the handles are closed. */
        self->destroy_requested = true;
        hub_http_destroy(&self->http);
        return;
    }
    /* Closed already (freed at once), or never closed: hub_http closes and
     * frees itself later, calling nothing of ours. */
    hub_http_destroy(&self->http);
    hub__free(self);
}

/* ---- the token file ----------------------------------------------------- */

int hub_ops_read_token_file(const char *path, char *token, size_t token_size, char *err,
                            size_t err_size)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        err_size = sizeof dummy;
    }
    if (!path || !token || token_size < HUB_OPS_TOKEN_MAX + 1)
        return HUB_EINVAL;
    token[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_size, "cannot read the operator token file %s: %s", path,
                 strerror(errno));
        return errno == ENOENT ? HUB_ENOENT : errno == EACCES ? HUB_EPERM : HUB_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
        close(fd);
        snprintf(err, err_size,
                 "the operator token file %s may be read by other users; run: chmod 600 %s",
                 path, path);
        return HUB_EPERM;
    }
    char buf[HUB_OPS_TOKEN_MAX + 64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, err_size, "cannot read the operator token file %s", path);
        return HUB_EIO;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    char *start = buf;
    while (*start == ' ' || *start == '\t')
        start++;
    size_t len = strlen(start);
    while (len > 0 && strchr(" \t\r", start[len - 1]))
        start[--len] = '\0';
    bool visible = true;
    for (size_t i = 0; i < len; i++)
        visible = visible && start[i] > 0x20 && start[i] < 0x7f;
    if (len == 0 || len > HUB_OPS_TOKEN_MAX || !visible) {
        snprintf(err, err_size,
                 "the operator token in %s must be one line of 1 to %d visible ASCII "
                 "characters (e.g. from: openssl rand -hex 32)",
                 path, HUB_OPS_TOKEN_MAX);
        sodium_memzero(buf, sizeof buf);
        return HUB_EINVAL;
    }
    memcpy(token, start, len + 1);
    sodium_memzero(buf, sizeof buf);
    return 0;
}
