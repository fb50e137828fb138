/* hub_ops — the operator endpoint: life cycle, the route table, the Host
 * rule and the helpers the routes share (hub_ops.h; hub_ops_internal.h). */
#include "hub_ops_internal.h"
#include "hub_dashboard.h"
#include "hub_memberdir.h"
#include "hub_error.h"
#include "hub_jsonw.h"
#include "hub_log.h"
#include "hub_map.h"
#include "hub_store.h"
#include "hub_vec.h"
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

/* ---- small helpers ----------------------------------------------------- */

/* The status of the response being built, for lth_http_responses_total
 * (hub_http keeps it to itself). One request at a time per thread. */
static _Thread_local int ops__status;

void hub_ops__respond(hub_http_response_t *resp, int status, const char *content_type,
                         const void *body, size_t len)
{
    if (hub_http_respond(resp, status, content_type, body, len) == 0)
        ops__status = status;
}

static void ops__respond_error(hub_http_response_t *resp, int status, const char *msg)
{
    if (hub_http_respond_json_error(resp, status, msg) == 0)
        ops__status = status;
}

void hub_ops__respond_json(hub_http_response_t *resp, int status, hub_jsonw_t *w)
{
    char *text;
    size_t len;
    if (hub_jsonw_finish(w, &text, &len) != 0) {
        ops__respond_error(resp, 500, "could not build the answer (out of memory)");
        return;
    }
    hub_ops__respond(resp, status, "application/json", text, len);
    free(text);
}

void hub_ops__error(hub_http_response_t *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void hub_ops__error(hub_http_response_t *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ops__respond_error(resp, status, msg);
}

/* A query parameter that must be a whole number in [min, max]. Returns 0
 * (found, *out set), 1 (absent, *out = dflt) or -1 (400 sent). */
int hub_ops__param_u64(const hub_http_request_t *req, hub_http_response_t *resp,
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
        hub_ops__error(resp, 400, "%s must be a whole number from %" PRIu64 " to %" PRIu64, name, min,
                   max);
        return -1;
    }
    *out = v;
    return 0;
}

bool hub_ops__parse_seq(const char *s, size_t len, uint64_t *out)
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

bool hub_ops__is_get(const hub_http_request_t *req)
{
    return !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
}

void hub_ops__method_not_allowed(hub_http_response_t *resp, const char *allow)
{
    hub_ops__error(resp, 405, "this path accepts %s only", allow);
    hub_http_response_header(resp, "Allow", allow);
}

/* True when the request may touch the DLQ; otherwise answers 401/403. */
bool hub_ops__authorised(hub_ops_t *self, const hub_http_request_t *req,
                            hub_http_response_t *resp)
{
    if (!self->token[0]) {
        hub_ops__error(resp, 403,
                   "the dead-letter queue is closed over HTTP: no operator token is configured "
                   "(set http_token_file in hubd.conf)");
        return false;
    }
    if (!hub_http_token_ok(req, self->token)) {
        hub_ops__error(resp, 401,
                   req->bearer_token ? "the operator token is wrong"
                                     : "this call needs the operator token: send "
                                       "'Authorization: Bearer <token>'");
        hub_http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"lth-hub\"");
        return false;
    }
    return true;
}

double hub_ops__age_s(uint64_t now_us, uint64_t then_us)
{
    return then_us && now_us > then_us ? (double)(now_us - then_us) / 1e6 : 0.0;
}

void hub_ops__flow_names_json(hub_jsonw_t *w, const char *sender, const char *receiver,
                              const char *service)
{
    hub_jsonw_kv_str(w, "sender", sender);
    hub_jsonw_kv_str(w, "receiver", receiver);
    hub_jsonw_kv_str(w, "service", service);
}

/* ---- source snapshots -------------------------------------------------- */

static char *ops__dup(const char *s)
{
    return strdup(s ? s : "");
}

static void ops__collect_member(const hub_ops_member_t *m, void *user)
{
    hub_ops__members_t *ms = user;
    if (ms->failed)
        return;
    if (HUB_VEC_RESERVE(ms->items, ms->n, ms->cap, 64) != 0) {
        ms->failed = true;
        return;
    }
    hub_ops__member_copy_t *c = &ms->items[ms->n];
    c->id = ops__dup(m->member_id);
    c->address = ops__dup(m->address);
    c->services = ops__dup(m->services);
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
    c->store_waiting = m->store_waiting;
    ms->n++;
}

int hub_ops__cmp_member(const void *a, const void *b)
{
    return strcmp(((const hub_ops__member_copy_t *)a)->id, ((const hub_ops__member_copy_t *)b)->id);
}

void hub_ops__members_free(hub_ops__members_t *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        free(ms->items[i].id);
        free(ms->items[i].address);
        free(ms->items[i].services);
    }
    free(ms->items);
    memset(ms, 0, sizeof *ms);
}

int hub_ops__members_snapshot(hub_ops_t *self, hub_ops__members_t *ms)
{
    memset(ms, 0, sizeof *ms);
    if (self->src.members)
        self->src.members(self->src.ctx, ops__collect_member, ms);
    if (ms->failed) {
        hub_ops__members_free(ms);
        return HUB_ENOMEM;
    }
    if (ms->n > 1)
        qsort(ms->items, ms->n, sizeof *ms->items, hub_ops__cmp_member);
    return 0;
}

static void ops__collect_queue(const hub_ops_queue_t *q, void *user)
{
    hub_ops__queues_t *qs = user;
    if (qs->failed)
        return;
    if (HUB_VEC_RESERVE(qs->items, qs->n, qs->cap, 64) != 0) {
        qs->failed = true;
        return;
    }
    hub_ops__queue_copy_t *c = &qs->items[qs->n];
    if (!(c->receiver = ops__dup(q->receiver))) {
        qs->failed = true;
        return;
    }
    c->depth = q->depth;
    c->oldest_accepted_us = q->oldest_accepted_us;
    c->in_flight = q->in_flight;
    qs->n++;
}

int hub_ops__cmp_queue(const void *a, const void *b)
{
    return strcmp(((const hub_ops__queue_copy_t *)a)->receiver,
                  ((const hub_ops__queue_copy_t *)b)->receiver);
}

void hub_ops__queues_free(hub_ops__queues_t *qs)
{
    for (size_t i = 0; i < qs->n; i++)
        free(qs->items[i].receiver);
    free(qs->items);
    memset(qs, 0, sizeof *qs);
}

int hub_ops__queues_snapshot(hub_ops_t *self, hub_ops__queues_t *qs)
{
    memset(qs, 0, sizeof *qs);
    if (self->src.queues)
        self->src.queues(self->src.ctx, ops__collect_queue, qs);
    if (qs->failed) {
        hub_ops__queues_free(qs);
        return HUB_ENOMEM;
    }
    if (qs->n > 1)
        qsort(qs->items, qs->n, sizeof *qs->items, hub_ops__cmp_queue);
    return 0;
}


void hub_ops__figures(hub_ops_t *self, hub_ops__figures_t *f)
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

/* ---- routing ------------------------------------------------------------ */

/* The routes: one line each. An exact path, or a prefix (then the path
 * continues with '/' or ends there); methods "GET" (GET and HEAD; others
 * get 405) or NULL (the route checks the method itself). Beyond loopback,
 * /api/ and /metrics need the token (ops__route). */
typedef void (*ops__route_fn)(hub_ops_t *self, const hub_http_request_t *req,
                              hub_http_response_t *resp);

/* The audit log's published head (hub_ops_audit.c). */
static void ops__route_audit_head(hub_ops_t *self, const hub_http_request_t *req,
                                  hub_http_response_t *resp)
{
    ops__status = hub_ops_audit_route(&self->src, req, resp);
}

static const struct {
    const char *path;
    bool prefix;
    const char *methods;
    ops__route_fn fn;
} ops__routes[] = {
    {"/healthz", false, "GET", hub_ops__route_healthz},
    {"/readyz", false, "GET", hub_ops__route_readyz},
    {"/metrics", false, "GET", hub_ops__route_metrics},
    {"/i18n.json", false, NULL, hub_ops__route_i18n},
    {"/api/v1/status", false, "GET", hub_ops__route_status},
    {"/api/v1/members", false, "GET", hub_ops__route_members},
    {"/api/v1/nodes", false, "GET", hub_ops__route_nodes},
    {"/api/v1/flows", false, "GET", hub_ops__route_flows},
    {"/api/v1/queues", false, "GET", hub_ops__route_queues},
    {"/api/v1/exchanges", false, "GET", hub_ops__route_exchanges},
    {"/api/v1/throughput", false, "GET", hub_ops__route_throughput},
    {"/api/v1/delegations", false, "GET", hub_ops__route_delegations},
    {"/api/v1/audit/head", false, NULL, ops__route_audit_head},
    {HUB_OPS__DLQ_PATH, true, NULL, hub_ops__route_dlq},
};

static bool ops__route_matches(const char *path, const char *route, bool prefix)
{
    if (!prefix)
        return !strcmp(path, route);
    size_t n = strlen(route);
    return !strncmp(path, route, n) && (path[n] == '\0' || path[n] == '/');
}

static void ops__route(hub_ops_t *self, const hub_http_request_t *req, hub_http_response_t *resp)
{
    const char *path = req->path;
    /* Beyond loopback, what names members, addresses and message ids is
     * for the operator only; health and the dashboard's own files stay
     * open (they hold no data; the dashboard's calls need the token). */
    if (self->public_api && (!strncmp(path, "/api/", 5) || !strcmp(path, "/metrics")) &&
        !hub_ops__authorised(self, req, resp))
        return;
    for (size_t i = 0; i < sizeof ops__routes / sizeof ops__routes[0]; i++) {
        if (!ops__route_matches(path, ops__routes[i].path, ops__routes[i].prefix))
            continue;
        if (ops__routes[i].methods && !hub_ops__is_get(req))
            hub_ops__method_not_allowed(resp, ops__routes[i].methods);
        else
            ops__routes[i].fn(self, req, resp);
        return;
    }
    /* The dashboard's files, outside the API. */
    if (strncmp(path, "/api/v1/", 8) != 0 && hub_ops__route_asset(req, resp))
        return;
    hub_ops__error(resp, 404,
                   "no such path; see /api/v1/status, /api/v1/members, /api/v1/flows, "
                   "/api/v1/queues, /api/v1/exchanges, /api/v1/dlq, /metrics, /healthz, /readyz");
}

/* Is the Host a client used one we answer to? An IP literal or localhost,
 * or a configured name; a request without Host (HTTP/1.0 tools) is not
 * from a browser and passes. A web page that had its own domain name
 * resolve to 127.0.0.1 (DNS rebinding) sends that name, and is refused. */
static bool ops__host_ok(const hub_ops_t *self, const char *host)
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

static void ops__on_request(const hub_http_request_t *req, hub_http_response_t *resp, void *user)
{
    hub_ops_t *self = user;
    ops__status = 500; /* what hub_http answers when nothing was set */
    if (!ops__host_ok(self, req->host)) {
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(req->host, ":"), req->host);
        hub_ops__error(resp, 421,
                   "this endpoint answers to its IP address or localhost, not to '%s'; to reach "
                   "it by that name, add it to http_allowed_hosts in hubd.conf",
                   name);
    } else {
        ops__route(self, req, resp);
    }
    char code[8];
    snprintf(code, sizeof code, "%d", ops__status);
    const char *const l[] = {code};
    hub_metric_inc(self->f_responses, l, 1);
}

/* ---- life cycle --------------------------------------------------------- */

static int ops__parse_listen(const char *listen, char *host, size_t host_size, int *port);

bool hub_ops_listen_is_loopback(const char *listen)
{
    char host[256];
    int port;
    if (!listen || ops__parse_listen(listen, host, sizeof host, &port) != 0)
        return false;
    unsigned char addr[16];
    if (strchr(host, ':')) {
        static const unsigned char one[16] = {[15] = 1};
        return uv_inet_pton(AF_INET6, host, addr) == 0 && !memcmp(addr, one, 16);
    }
    return uv_inet_pton(AF_INET, host, addr) == 0 && addr[0] == 127;
}

static int ops__parse_listen(const char *listen, char *host, size_t host_size, int *port)
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
} ops__site = {"vi", ""};

void hub_ops_site_defaults(const char *lang, const char *members_file)
{
    snprintf(ops__site.lang, sizeof ops__site.lang, "%s", lang && lang[0] ? lang : "vi");
    snprintf(ops__site.members_file, sizeof ops__site.members_file, "%s",
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
    if (ops__parse_listen(cfg->listen, host, sizeof host, &port) != 0) {
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
    snprintf(self->node_id, sizeof self->node_id, "%s", cfg->node_id ? cfg->node_id : "");
    const char *lang = cfg->lang ? cfg->lang : ops__site.lang;
    snprintf(self->lang, sizeof self->lang, "%s", !strcmp(lang, "en") ? "en" : "vi");
    const char *members_file = cfg->members_file ? cfg->members_file : ops__site.members_file;
    if (members_file[0]) {
        int drc = hub_memberdir_load(members_file, &self->directory, err, err_size);
        if (drc) {
            hub_ops_destroy(&self);
            return drc;
        }
        HUB_INFO(HUB__OPS_COMP, "member directory loaded", "file=%s members=%zu", members_file,
                 hub_memberdir_count(self->directory));
        snprintf(self->directory_path, sizeof self->directory_path, "%s", members_file);
    }
    self->started_at_us = hub_ops__process_start_us(hub_now_us());
    self->member_labels = hub_map_new();
    self->receiver_labels = hub_map_new();
    int rc = self->member_labels && self->receiver_labels ? 0 : HUB_ENOMEM;
    if (!rc && !self->metrics) {
        rc = hub_metrics_new(0, &self->metrics);
        self->own_metrics = rc == 0;
    }
    if (!rc)
        rc = hub_ops__register_families(self);
    if (!rc)
        rc = hub_alarms_new(cfg->alarms, self->started_at_us, &self->alarms);
    if (rc) {
        snprintf(err, err_size, "cannot set up the operator metrics: %s", hub_strerror(rc));
        hub_ops_destroy(&self);
        return rc;
    }
    rc = hub_http_new(loop, &cfg->http, ops__on_request, self, &self->http);
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

int hub_ops_reload_directory(hub_ops_t *self, char *err, size_t err_size)
{
    if (!self || !self->directory_path[0])
        return 0;
    hub_memberdir_t *fresh = NULL;
    int rc = hub_memberdir_load(self->directory_path, &fresh, err, err_size);
    if (rc)
        return rc;
    hub_memberdir_destroy(&self->directory);
    self->directory = fresh;
    HUB_INFO(HUB__OPS_COMP, "member directory reloaded", "file=%s members=%zu",
             self->directory_path, hub_memberdir_count(fresh));
    return 0;
}

int hub_ops_port(const hub_ops_t *self) { return self ? hub_http_port(self->http) : 0; }

const char *hub_ops_address(const hub_ops_t *self) { return self ? self->address : ""; }

static void ops__free(hub_ops_t *self)
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

static void ops__on_http_closed(void *user)
{
    hub_ops_t *self = user;
    self->http_closed = true;
    hub_ops_closed_cb cb = self->on_closed;
    void *cb_user = self->closed_user;
    /* Destroyed while closing: hub_http has freed itself; finish here. */
    if (self->destroy_requested)
        ops__free(self);
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
    return hub_http_close(self->http, ops__on_http_closed, self);
}

void hub_ops_destroy(hub_ops_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_ops_t *self = *self_p;
    *self_p = NULL;
    if (self->close_started && !self->http_closed) {
        /* ops__on_http_closed() frees the rest once the handles are closed. */
        self->destroy_requested = true;
        hub_http_destroy(&self->http);
        return;
    }
    /* Closed already (freed at once), or never closed: hub_http closes and
     * frees itself later, calling nothing of ours. */
    hub_http_destroy(&self->http);
    ops__free(self);
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
