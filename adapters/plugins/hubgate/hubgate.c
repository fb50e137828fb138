/* hubgate — a gateway member that belongs to two Liên Thông hubs, so that a
 * member of one calls a service of the other (a province's hub and a
 * ministry's, docs/HUB2HUB.md).
 *
 * hub-adapter's own connection is side A (hub_endpoint, hub_key_file,
 * member_key_file of the adapter's config); the plugin opens side B itself
 * with another member key. Each route offers a service on one side and
 * forwards its requests to a provider on the other:
 *
 *   plugin.a.hub_id = VN/GOV/HN-LGSP/HUB           hub A's id, as origins name it (required)
 *   plugin.b.hub_endpoint = tcp://10.0.0.2:5555     hub B
 *   plugin.b.hub_key_file = keys/bca-hub.pub        hub B's .pub (its id is read from it)
 *   plugin.b.member_key_file = keys/gw-on-b.secret  this gateway's key on hub B (0600)
 *   plugin.b.hub_id = VN/GOV/BCA/HUB                optional: overrides the id in the key file
 *   plugin.routes = lookup[,NAME...]
 *   plugin.route.lookup = A citizen.lookup/v1 -> B VN/GOV/BCA/CSDLQGDC/citizen.lookup/v1
 *   plugin.timeout_ms = 10000                       how long a forward may take
 *   plugin.max_in_flight = 256                      forwards waiting at once
 *   plugin.poll_ms = 2                              turns between the two connections
 *
 * Each hub checks its own agreement: hub A that the caller may call the
 * gateway's service (as for any request), hub B that the gateway may call
 * the provider's. The forward is online-only and carries its origin in its
 * content type, which the gateway signs with the envelope: the caller's
 * content type with lth-origin="MEMBER", lth-origin-hub="HUB" and
 * lth-origin-id=MESSAGE-ID appended (origin parameters the caller put
 * there are removed first, so that no member can claim another's origin).
 * hubd writes an origin it finds there into the ACCEPTED record of the
 * forward. The payload goes as it is: the purpose, purpose code and
 * dossier code a domain request carries travel inside it.
 *
 * Replies come back with the provider's content type. A failure on the far
 * side is answered to the caller as application/problem+json
 * {"error", "status", "code", "hub", "gateway"}: FORBIDDEN 403, an unknown
 * provider 404, an offline provider or hub 503, no answer 504, others 502.
 *
 * At most once upstream: the gateway never sends a forward again. A forward
 * whose hub connection drops, or that gets no answer in time, is withdrawn
 * from the SDK's outbox (adp_request_withdraw) and its caller told so. A
 * request the gateway was handling when it stopped comes back marked in
 * doubt (with hub-adapter's state_dir set) and is answered 409, not
 * forwarded again.
 *
 * Threads: all on hub-adapter's thread. tick() alternates between the two
 * connections for up to HUBGATE_SLICE_MS at a time; set tick_ms = 10 (a
 * longer gap between ticks is logged once).
 * Logs: member ids, services, codes and counts; never payloads.
 */
#include "adp_plugin_util.h"
#include "hub_ctype.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_keys.h"
#include "hub_wire.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HUBGATE_MAX_ROUTES 64
#define HUBGATE_SLICE_MS 500
#define HUBGATE_PROBLEM_TYPE "application/problem+json"
#define HUBGATE_CT_MAX 255 /* the hub's limit for a content type */

enum { SIDE_A = 0, SIDE_B = 1 };

typedef struct hubgate hubgate_t;

/* One connection: A is hub-adapter's, B the plugin's own. */
typedef struct {
    char name;                          /* 'A' or 'B' */
    char hub_id[HUB_MEMBER_ID_MAX + 1]; /* as origins and errors name the hub */
    adp_client_t *client;
    bool connected; /* as last seen */
    bool refused;   /* the hub refused our key (logged once) */
} hubgate_side_t;

/* A service offered on side `from`, forwarded to `provider`'s `target` on the other. */
typedef struct {
    char name[64];
    int from;
    char service[HUB_SERVICE_MAX + 1];
    char provider[HUB_MEMBER_ID_MAX + 1];
    char target[HUB_SERVICE_MAX + 1];
    hubgate_t *gate;
} hubgate_route_t;

/* A forward waiting for its reply. */
typedef struct {
    char forward_id[HUB_UUID_LEN + 1]; /* the forward's message id on the far side */
    const hubgate_route_t *route;
    char requester[HUB_MEMBER_ID_MAX + 1];
    char request_id[HUB_UUID_LEN + 1];
    bool online; /* the request was online-only */
    uint64_t deadline_us;
} hubgate_pending_t;

struct hubgate {
    const adp_plugin_host_t *host;
    hubgate_side_t side[2];
    hubgate_route_t routes[HUBGATE_MAX_ROUTES];
    size_t n_routes;
    hubgate_pending_t *pending;
    size_t n_pending, max_pending;
    uint64_t timeout_ms, poll_ms;
    unsigned long long forwarded, answered, failed;
    uint64_t last_tick_end_us; /* when tick() last returned */
    bool slow_ticks_logged;
};

static uint64_t hubgate_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------------ */
/* Problem replies                                                           */

/* A problem document {"error","status","code","hub","gateway"} as bytes. */
static int hubgate_problem(const hubgate_t *g, int side, int status, const char *code,
                           const char *message, uint8_t **out, size_t *out_len)
{
    const hubgate_side_t *s = &g->side[side];
    json_t *doc =
        json_pack("{s:s, s:i, s:s, s:s, s:s}", "error", message, "status", status, "code", code,
                  "hub", s->hub_id, "gateway", s->client ? adp_member_id(s->client) : "");
    if (!doc) /* message not UTF-8 (a reason cut mid-character): say less */
        doc = json_pack("{s:s, s:i, s:s, s:s, s:s}", "error",
                        "the request could not be completed on the other hub (see code)", "status",
                        status, "code", code, "hub", s->hub_id, "gateway",
                        s->client ? adp_member_id(s->client) : "");
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return HUB_ENOMEM;
    *out = (uint8_t *)text;
    *out_len = strlen(text);
    return 0;
}

/* Fills a handler's reply with a problem about side `side`. */
static int hubgate_problem_reply(const hubgate_t *g, int side, int status, const char *code,
                                 const char *message, adp_reply_t *reply)
{
    uint8_t *body = NULL;
    size_t len = 0;
    if (hubgate_problem(g, side, status, code, message, &body, &len) != 0)
        return HUB_ENOMEM;
    adp_plugin_reply(reply, body, len, HUBGATE_PROBLEM_TYPE);
    return 0;
}

/* The HTTP-like status and the code word for a NACK of the far hub. */
static int hubgate_nack_status(int code)
{
    switch (code) {
    case LTH__V1__NACK_CODE__NACK_FORBIDDEN: return 403;
    case LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER: return 404;
    case LTH__V1__NACK_CODE__NACK_PAYLOAD_TOO_LARGE: return 413;
    case LTH__V1__NACK_CODE__NACK_RATE_LIMITED: return 429;
    case LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE:
    case LTH__V1__NACK_CODE__NACK_QUEUE_FULL:
    case LTH__V1__NACK_CODE__NACK_STORE_FULL:
    case LTH__V1__NACK_CODE__NACK_QUOTA_EXCEEDED: return 503;
    default: return 502;
    }
}

/* ------------------------------------------------------------------------ */
/* The origin in the content type                                            */

/* Copies content_type to out without its lth-origin* parameters (quoted
 * values respected). false when a quoted string is left open: such a type
 * could hide parameters from one reader and show them to another. */
static bool hubgate_strip_origin(const char *ct, char *out, size_t size)
{
    size_t n = 0;
    bool first = true, well_formed = true;
    const char *cursor = ct;
    hub_ct_part_t part;
    while (hub_ct_next(&cursor, &part)) {
        well_formed = well_formed && !part.open;
        if (!part.text_len)
            continue;
        if (!first && part.name_len >= 10 && strncasecmp(part.name, "lth-origin", 10) == 0)
            continue;
        const char *sep = first ? "" : "; ";
        if (n + strlen(sep) + part.text_len + 1 > size)
            break;
        n += (size_t)snprintf(out + n, size - n, "%s%.*s", sep, (int)part.text_len, part.text);
        first = false;
    }
    if (size)
        out[n < size ? n : size - 1] = '\0';
    return well_formed;
}

/* The forward's content type: the caller's, stripped, with the origin at
 * the end (hubd reads the last occurrence of each parameter). HUB_EPARSE
 * for a type with an open quoted string; HUB_EFULL when it does not fit
 * the hub's 255 bytes. */
static int hubgate_origin_type(const char *ct, const char *sender, const char *hub_id,
                               const char *request_id, char out[HUBGATE_CT_MAX + 1])
{
    char base[HUBGATE_CT_MAX + 1];
    if (!hubgate_strip_origin(ct && *ct ? ct : "application/octet-stream", base, sizeof base))
        return HUB_EPARSE;
    int n = snprintf(out, HUBGATE_CT_MAX + 1,
                     "%s; lth-origin=\"%s\"; lth-origin-hub=\"%s\"; lth-origin-id=%s", base, sender,
                     hub_id, request_id);
    return n < 0 || n > HUBGATE_CT_MAX ? HUB_EFULL : 0;
}

/* ------------------------------------------------------------------------ */
/* Forwarding                                                                */

static void hubgate_answer(hubgate_t *g, const hubgate_pending_t *p, const char *content_type,
                           const void *payload, size_t len)
{
    adp_client_t *c = g->side[p->route->from].client;
    int rc = adp_post_reply(c, p->requester, p->route->service, p->request_id, content_type,
                            payload, len, p->online ? ADP_ONLINE_ONLY : 0);
    if (rc != 0)
        adp_plugin_log(g->host, ADP_LOG_WARN, "hubgate: cannot answer %s on hub %c (%s): %s", p->requester,
                    g->side[p->route->from].name, hub_strerror(rc), adp_last_error(c));
}

/* Answers p's caller with a problem about the far side, and counts it. */
static void hubgate_answer_problem(hubgate_t *g, const hubgate_pending_t *p, int status,
                                   const char *code, const char *message)
{
    int far = 1 - p->route->from;
    uint8_t *body = NULL;
    size_t len = 0;
    g->failed++;
    adp_plugin_log(g->host, ADP_LOG_WARN, "hubgate: forward %s to %s on hub %c failed: %s (status %d) for %s",
                p->route->target, p->route->provider, g->side[far].name, code, status,
                p->requester);
    if (hubgate_problem(g, far, status, code, message, &body, &len) == 0)
        hubgate_answer(g, p, HUBGATE_PROBLEM_TYPE, body, len);
    free(body);
}

static void hubgate_drop_pending(hubgate_t *g, size_t i)
{
    g->pending[i] = g->pending[--g->n_pending];
}

/* Looks at every forward: replies, refusals, timeouts, lost connections. */
static void hubgate_collect(hubgate_t *g)
{
    uint64_t now = hubgate_now_us();
    for (size_t i = 0; i < g->n_pending;) {
        hubgate_pending_t *p = &g->pending[i];
        int far = 1 - p->route->from;
        hubgate_side_t *fs = &g->side[far];
        adp_reply_t reply;
        memset(&reply, 0, sizeof reply);
        int rc = adp_request_poll(fs->client, p->forward_id, &reply);
        char msg[1400];
        if (rc == 0) {
            /* A provider that echoes the request's content type would hand
             * the origin back: the caller gets its own type. */
            char ct[sizeof reply.content_type];
            hubgate_strip_origin(reply.content_type, ct, sizeof ct);
            g->answered++;
            hubgate_answer(g, p, ct, reply.payload, reply.payload_len);
            adp_reply_free(&reply);
        } else if (rc == HUB_ENACK) {
            int code = adp_last_nack_code(fs->client);
            snprintf(msg, sizeof msg,
                     "hub %s refused the request forwarded to %s/%s by gateway %s: %s", fs->hub_id,
                     p->route->provider, p->route->target, adp_member_id(fs->client),
                     adp_last_error(fs->client));
            hubgate_answer_problem(g, p, hubgate_nack_status(code), hub_nack_code_name(code), msg);
        } else if (rc == HUB_EAGAIN && !fs->connected) {
            adp_request_withdraw(fs->client, p->forward_id);
            snprintf(msg, sizeof msg,
                     "the gateway's connection to hub %s was lost while the request to %s/%s "
                     "was in flight; it may or may not have reached the provider and is not "
                     "sent again: ask again later",
                     fs->hub_id, p->route->provider, p->route->target);
            hubgate_answer_problem(g, p, 503, "HUB_UNREACHABLE", msg);
        } else if (rc == HUB_EAGAIN && now >= p->deadline_us) {
            adp_request_withdraw(fs->client, p->forward_id);
            snprintf(msg, sizeof msg,
                     "no answer through hub %s from %s/%s within %" PRIu64
                     " ms; the request is not sent again",
                     fs->hub_id, p->route->provider, p->route->target, g->timeout_ms);
            hubgate_answer_problem(g, p, 504, "TIMEOUT", msg);
        } else if (rc == HUB_EAGAIN) {
            i++;
            continue;
        } else {
            snprintf(msg, sizeof msg, "the gateway lost track of the forwarded request (%s)",
                     hub_strerror(rc));
            hubgate_answer_problem(g, p, 502, "INTERNAL", msg);
        }
        hubgate_drop_pending(g, i);
    }
}

/* A request for a route's service: forwarded, answered later. */
static int hubgate_handle(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                          void *user)
{
    (void)client;
    hubgate_route_t *r = user;
    hubgate_t *g = r->gate;
    int far = 1 - r->from;
    hubgate_side_t *fs = &g->side[far];
    char text[1400];
    if (msg->kind != ADP_REQUEST) {
        adp_dead_letter_reason(client, "hubgate forwards requests only, not events");
        return ADP_DEAD_LETTER;
    }
    if (msg->in_doubt) {
        snprintf(text, sizeof text,
                 "the gateway stopped while it handled this request; it may have been "
                 "forwarded to hub %s already and is not forwarded twice: send a new request",
                 fs->hub_id);
        return hubgate_problem_reply(g, far, 409, "IN_DOUBT", text, reply);
    }
    if (!fs->client || !adp_connected(fs->client)) {
        snprintf(text, sizeof text,
                 "the gateway is not connected to hub %s now (%s); nothing was forwarded: ask "
                 "again later",
                 fs->hub_id, fs->refused ? "that hub refuses the gateway's key" : "reconnecting");
        g->failed++;
        return hubgate_problem_reply(g, far, 503, "HUB_UNREACHABLE", text, reply);
    }
    if (g->n_pending == g->max_pending) {
        snprintf(text, sizeof text,
                 "the gateway already has %zu requests waiting for hub %s; ask again shortly",
                 g->n_pending, fs->hub_id);
        g->failed++;
        return hubgate_problem_reply(g, far, 503, "BUSY", text, reply);
    }
    char ct[HUBGATE_CT_MAX + 1];
    int ct_rc = hubgate_origin_type(msg->content_type, msg->sender, g->side[r->from].hub_id,
                                    msg->message_id, ct);
    if (ct_rc == HUB_EPARSE)
        return hubgate_problem_reply(g, far, 400, "BAD_CONTENT_TYPE",
                                     "the content type has a quoted string that is not closed; "
                                     "send a well-formed media type",
                                     reply);
    if (ct_rc != 0) {
        snprintf(text, sizeof text,
                 "the content type with the origin parameters exceeds %d bytes; send a "
                 "shorter content type",
                 HUBGATE_CT_MAX);
        return hubgate_problem_reply(g, far, 400, "CONTENT_TYPE_TOO_LONG", text, reply);
    }
    hubgate_pending_t *p = &g->pending[g->n_pending];
    memset(p, 0, sizeof *p);
    int rc = adp_request_start(fs->client, r->provider, r->target, ct, msg->payload,
                               msg->payload_len, ADP_ONLINE_ONLY, p->forward_id);
    if (rc != 0) {
        snprintf(text, sizeof text, "the gateway could not forward the request to hub %s: %s",
                 fs->hub_id, adp_last_error(fs->client));
        g->failed++;
        return hubgate_problem_reply(g, far, rc == HUB_EINVAL ? 413 : 502, "NOT_FORWARDED", text,
                                     reply);
    }
    p->route = r;
    snprintf(p->requester, sizeof p->requester, "%s", msg->sender);
    snprintf(p->request_id, sizeof p->request_id, "%s", msg->message_id);
    p->online = msg->hub_seq == 0;
    p->deadline_us = hubgate_now_us() + g->timeout_ms * 1000u;
    g->n_pending++;
    g->forwarded++;
    adp_plugin_log(g->host, ADP_LOG_DEBUG, "hubgate: forwarded %s from %s on hub %c to %s/%s on hub %c", r->service,
                msg->sender, g->side[r->from].name, r->provider, r->target, fs->name);
    return -1; /* answered by hubgate_collect() */
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

/* Notes a side's connection changes; a lost one fails its forwards. */
static void hubgate_watch(hubgate_t *g, int side, int run_rc)
{
    hubgate_side_t *s = &g->side[side];
    bool now = adp_connected(s->client);
    if (run_rc == HUB_EREFUSED && !s->refused) {
        s->refused = true;
        adp_plugin_log(g->host, ADP_LOG_ERROR, "hubgate: hub %s (side %c) refuses this gateway's key: %s", s->hub_id,
                    s->name, adp_last_error(s->client));
    }
    if (now == s->connected)
        return;
    s->connected = now;
    if (now) {
        s->refused = false;
        adp_plugin_log(g->host, ADP_LOG_INFO, "hubgate: connected to hub %s (side %c) as %s", s->hub_id, s->name,
                    adp_member_id(s->client));
    } else {
        adp_plugin_log(g->host, ADP_LOG_WARN, "hubgate: connection to hub %s (side %c) lost; reconnecting", s->hub_id,
                    s->name);
        hubgate_collect(g);
    }
}

static int hubgate_tick(void *state, adp_client_t *client)
{
    hubgate_t *g = state;
    g->side[SIDE_A].client = client;
    uint64_t start = hubgate_now_us();
    /* Between ticks hub-adapter runs side A alone (100 ms) and side B not
     * at all: a long tick_ms leaves replies from B waiting. */
    if (g->last_tick_end_us && start - g->last_tick_end_us > 300000u && !g->slow_ticks_logged) {
        g->slow_ticks_logged = true;
        adp_plugin_log(g->host, ADP_LOG_WARN,
                    "hubgate: %llu ms between ticks: replies from the other hub wait that long; "
                    "set tick_ms = 10 in the adapter's config",
                    (unsigned long long)((start - g->last_tick_end_us) / 1000u));
    }
    uint64_t until = start + HUBGATE_SLICE_MS * 1000u;
    do {
        hubgate_watch(g, SIDE_B, adp_run(g->side[SIDE_B].client, (int)g->poll_ms));
        hubgate_collect(g);
        hubgate_watch(g, SIDE_A, adp_run(client, (int)g->poll_ms));
        hubgate_collect(g);
    } while (hubgate_now_us() < until);
    g->last_tick_end_us = hubgate_now_us();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

static int hubgate_side_of(const char *word)
{
    if (!strcmp(word, "A") || !strcmp(word, "a"))
        return SIDE_A;
    if (!strcmp(word, "B") || !strcmp(word, "b"))
        return SIDE_B;
    return -1;
}

/* "A SERVICE/VERSION -> B PROVIDER-ID/SERVICE/VERSION" */
static int hubgate_parse_route(hubgate_t *g, const char *name, const char *value, char *err,
                               size_t err_size)
{
    static const char form[] =
        "'A SERVICE/VERSION -> B PROVIDER-ID/SERVICE/VERSION' (or B ... -> A ...)";
    if (g->n_routes == HUBGATE_MAX_ROUTES)
        return adp_plugin_fail(err, err_size, "too many routes (at most %d)", HUBGATE_MAX_ROUTES);
    if (strlen(name) >= sizeof g->routes[0].name)
        return adp_plugin_fail(err, err_size, "plugin.routes: the name '%.80s' is too long", name);
    char copy[1024];
    if (!value || strlen(value) >= sizeof copy)
        return adp_plugin_fail(err, err_size, "plugin.route.%s is missing: write %s", name, form);
    snprintf(copy, sizeof copy, "%s", value);
    char *save = NULL, *tok[6];
    int n = 0;
    for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        if (n < 6)
            tok[n++] = t;
        else
            n = 6;
    if (n != 5 || strcmp(tok[2], "->") != 0)
        return adp_plugin_fail(err, err_size, "plugin.route.%s = '%.200s': write %s", name, value,
                            form);
    int from = hubgate_side_of(tok[0]), to = hubgate_side_of(tok[3]);
    if (from < 0 || to < 0 || from == to)
        return adp_plugin_fail(err, err_size,
                            "plugin.route.%s: the sides must be A and B, one each (got '%s' and "
                            "'%s')",
                            name, tok[0], tok[3]);
    hubgate_route_t *r = &g->routes[g->n_routes];
    memset(r, 0, sizeof *r);
    if (!hub_service_valid(tok[1]))
        return adp_plugin_fail(err, err_size,
                            "plugin.route.%s: '%.200s' is not SERVICE/VERSION, e.g. "
                            "citizen.lookup/v1",
                            name, tok[1]);
    const char *target = NULL;
    if (!hub_member_service_split(tok[4], r->provider, &target) || !hub_service_valid(target))
        return adp_plugin_fail(err, err_size,
                            "plugin.route.%s: '%.200s' is not PROVIDER-ID/SERVICE/VERSION, e.g. "
                            "VN/GOV/BCA/CSDLQGDC/citizen.lookup/v1",
                            name, tok[4]);
    for (size_t i = 0; i < g->n_routes; i++)
        if (g->routes[i].from == from && !strcmp(g->routes[i].service, tok[1]))
            return adp_plugin_fail(err, err_size,
                                "plugin.route.%s: %s is offered on hub %c by route %s already",
                                name, tok[1], g->side[from].name, g->routes[i].name);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->service, sizeof r->service, "%s", tok[1]);
    snprintf(r->target, sizeof r->target, "%s", target);
    r->from = from;
    r->gate = g;
    g->n_routes++;
    return 0;
}

static void hubgate_destroy(void *state)
{
    hubgate_t *g = state;
    if (!g)
        return;
    /* Callers still waiting hear why, if their hub can still be told. */
    for (size_t i = 0; g->pending && i < g->n_pending; i++) {
        const hubgate_pending_t *p = &g->pending[i];
        if (!p->route)
            continue;
        int far = 1 - p->route->from;
        adp_request_withdraw(g->side[far].client, p->forward_id);
        if (g->side[p->route->from].client && adp_connected(g->side[p->route->from].client))
            hubgate_answer_problem(g, p, 503, "GATEWAY_STOPPING",
                                   "the gateway is stopping; the forwarded request may or may "
                                   "not have reached the provider and is not sent again");
    }
    if (g->side[SIDE_B].client)
        adp_plugin_log(g->host, ADP_LOG_INFO, "hubgate: stopping: %llu forwarded, %llu answered, %llu failed",
                    g->forwarded, g->answered, g->failed);
    adp_close(&g->side[SIDE_B].client);
    free(g->pending);
    free(g);
}

static int hubgate_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    hubgate_t *g = state;
    g->host = host;
    g->side[SIDE_A].name = 'A';
    g->side[SIDE_B].name = 'B';
    int rc = 0;
    const char *a_id = host->config(host, "a.hub_id");
    const char *b_ep = host->config(host, "b.hub_endpoint");
    const char *b_key = host->config(host, "b.hub_key_file");
    const char *b_member = host->config(host, "b.member_key_file");
    const char *missing = !a_id       ? "plugin.a.hub_id"
                          : !b_ep     ? "plugin.b.hub_endpoint"
                          : !b_key    ? "plugin.b.hub_key_file"
                          : !b_member ? "plugin.b.member_key_file"
                                      : NULL;
    if (missing)
        return adp_plugin_fail(err, err_size, "%s is required (adapters/README.md, hubgate)",
                               missing);
    if (!hub_member_id_valid(a_id))
        return adp_plugin_fail(err, err_size, "plugin.a.hub_id: '%.200s' is not a member id", a_id);
    snprintf(g->side[SIDE_A].hub_id, sizeof g->side[SIDE_A].hub_id, "%s", a_id);
    const char *b_id = host->config(host, "b.hub_id");
    if (b_id) {
        if (!hub_member_id_valid(b_id))
            return adp_plugin_fail(err, err_size, "plugin.b.hub_id: '%.200s' is not a member id",
                                   b_id);
        snprintf(g->side[SIDE_B].hub_id, sizeof g->side[SIDE_B].hub_id, "%s", b_id);
    } else {
        hub_keypair_t hub_key;
        char why[HUB_ERRMSG_MAX];
        if (hub_keyfile_read(b_key, &hub_key, why, sizeof why) != 0)
            return adp_plugin_fail(err, err_size, "plugin.b.hub_key_file: %s", why);
        snprintf(g->side[SIDE_B].hub_id, sizeof g->side[SIDE_B].hub_id, "%s", hub_key.member_id);
        hub_keypair_wipe(&hub_key);
    }
    uint64_t max_pending = 0;
    if ((rc = adp_plugin_conf_u64(host, "timeout_ms", 100, 120000, 10000, &g->timeout_ms, err,
                                  err_size)) != 0 ||
        (rc = adp_plugin_conf_u64(host, "max_in_flight", 1, 65536, 256, &max_pending, err,
                                  err_size)) != 0 ||
        (rc = adp_plugin_conf_u64(host, "poll_ms", 1, 50, 2, &g->poll_ms, err, err_size)) != 0)
        return rc;
    g->max_pending = (size_t)max_pending;
    g->pending = calloc(g->max_pending, sizeof *g->pending);
    if (!g->pending)
        return adp_plugin_fail(err, err_size, "out of memory");
    const char *routes = host->config(host, "routes");
    if (!routes)
        return adp_plugin_fail(err, err_size,
                               "plugin.routes is required: the names of the routes, each with a "
                               "plugin.route.NAME line");
    char list[1024];
    snprintf(list, sizeof list, "%s", routes);
    char *save = NULL;
    for (char *name = strtok_r(list, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
        char key[128];
        snprintf(key, sizeof key, "route.%s", name);
        if ((rc = hubgate_parse_route(g, name, host->config(host, key), err, err_size)) != 0)
            return rc;
    }
    /* Side B: this plugin's own member on the other hub; it connects in
     * the background and is served from tick(). No state directory: a
     * forward is never sent again after a restart (at most once). */
    adp_config_t bcfg = {b_ep, b_key, b_member, 3000, "hub-adapter hubgate", NULL};
    if ((rc = adp_new(&bcfg, &g->side[SIDE_B].client, err, err_size)) != 0)
        return rc;
    g->side[SIDE_A].client = host->client(host);
    for (size_t i = 0; i < g->n_routes; i++) {
        hubgate_route_t *r = &g->routes[i];
        rc = r->from == SIDE_A ? host->offer(host, r->service, hubgate_handle, r)
                               : adp_offer(g->side[SIDE_B].client, r->service, hubgate_handle, r);
        if (rc != 0)
            return adp_plugin_fail(err, err_size, "route %s: cannot offer %s on hub %c (%s)",
                                   r->name, r->service, g->side[r->from].name, hub_strerror(rc));
    }
    adp_plugin_log(g->host, ADP_LOG_INFO, "hubgate: %zu routes between hub %s (A) and hub %s (B)",
                   g->n_routes, g->side[SIDE_A].hub_id, g->side[SIDE_B].hub_id);
    return 0;
}

ADP_PLUGIN_DEFINE_STATE("hubgate", "a member of two hubs: forwards requests between them",
                        hubgate_t, hubgate_start, hubgate_tick, hubgate_destroy);
