/* httpbridge — the generic HTTP bridge: connects an existing REST system to
 * the hub without C code (adapters/README.md has the settings and examples).
 *
 * Inbound: a local HTTP endpoint (lth_httpd) turns a JSON POST into a hub
 * request and answers with the reply as JSON:
 *     POST /call/RECEIVER-ID/SERVICE/VERSION   any service (plugin.call = off to refuse)
 *     POST /route/NAME                          plugin.route.NAME = RECEIVER SERVICE/VERSION [TYPE]
 * Outbound: plugin.offer.NAME = SERVICE/VERSION URL [TYPE] offers a service;
 * each request for it becomes an HTTP POST of JSON to URL (lth_httpc), whose
 * answer becomes the reply.
 * Domain messages (proto/domain.proto) travel as protobuf on the hub side and
 * as JSON on the HTTP side (lth_jsonmap), optionally with renamed top-level
 * fields (plugin.map.NAME.request / .response); anything else passes through
 * as JSON.
 *
 * Threads: hub-adapter calls tick() and the handlers on its one thread, and
 * the SDK client belongs to that thread. tick() serves HTTP for up to
 * BRIDGE_SLICE_MS, polling the HTTP sockets for plugin.poll_ms at a time and
 * running the SDK (adp_run(client, 0)) in between, so that neither side waits
 * long for the other; a signal (SIGTERM) ends the slice at once.
 * Inbound requests are many in flight at once (up to plugin.max_in_flight):
 * each is sent to the hub with adp_request_start(), its HTTP connection is
 * suspended (lth_httpd defers it), and tick() answers it when its reply, its
 * NACK or plugin.hub_timeout_ms comes, in whatever order they come. An
 * outbound call waits for the system (plugin.http_timeout_ms x attempts)
 * while the SDK keeps running, but inbound HTTP waits meanwhile: keep that
 * timeout bounded.
 * TLS: plugin.tls_cert and plugin.tls_key make the endpoint HTTPS;
 * plugin.tls_client_ca makes it require client certificates from that CA.
 *
 * Logs: method, path, status, member ids, services, sizes and times; never a
 * body (bodies carry personal data).
 */
#include "adp_plugin_util.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_wire.h"
#include "lth.pb-c.h"
#include "lth_httpc.h"
#include "lth_httpd.h"
#include "lth_jsonmap.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BRIDGE_MAX_ROUTES 16
#define BRIDGE_MAX_OFFERS 16
#define BRIDGE_NAME_MAX 32
#define BRIDGE_SLICE_MS 1000 /* longest stay in one tick() */
#define BRIDGE_MAX_NESTING 8 /* outbound calls in progress at once (nested deliveries) */
#define BRIDGE_DETAIL_MAX 1024        /* bytes of a system's error body passed on as text */
#define BRIDGE_PEM_MAX (256u * 1024u) /* bytes of one TLS certificate or key file */

/* openapi.json, embedded at build time (embed_openapi.cmake). */
extern const unsigned char bridge_openapi_json[];
extern const size_t bridge_openapi_json_len;

typedef struct bridge bridge_t;

/* What the JSON on the HTTP side becomes on the hub side, and back. */
typedef struct {
    char name[BRIDGE_NAME_MAX + 1];
    const ProtobufCMessageDescriptor *type; /* NULL: JSON passes through */
    lth_jsonmap_renames_t *request_map;     /* plugin.map.NAME.request, or NULL */
    lth_jsonmap_renames_t *response_map;    /* plugin.map.NAME.response, or NULL */
} bridge_mapping_t;

typedef struct {
    bridge_mapping_t map; /* type: what the request body becomes */
    char receiver[HUB_MEMBER_ID_MAX + 1];
    char service[HUB_SERVICE_MAX + 1];
} bridge_route_t;

typedef struct {
    bridge_mapping_t map; /* type: what the system's answer becomes */
    char service[HUB_SERVICE_MAX + 1];
    char url[1024];
    bridge_t *bridge;
    unsigned long calls, failures;
} bridge_offer_t;

/* An inbound request sent to the hub, waiting for its reply. */
typedef struct {
    uint64_t http_id;                  /* lth_httpd's name for it */
    uint64_t t0_ms, deadline_ms;
    bridge_mapping_t map;              /* a shallow copy: the maps belong to the route */
    char request_id[37];               /* the hub request's message id */
    char receiver[HUB_MEMBER_ID_MAX + 1];
    char service[HUB_SERVICE_MAX + 1];
    char method[16];
    char path[256];
    char peer[64];
    size_t body_len;
} bridge_pending_t;

struct bridge {
    const adp_plugin_host_t *host;
    adp_client_t *client;
    lth_httpd_t *httpd;
    char port_file[4096];
    char token[512];       /* "" = no token needed */
    bool call_route;       /* POST /call/... allowed */
    int request_flags;     /* ADP_ONLINE_ONLY or 0 */
    uint32_t hub_timeout_ms;
    int poll_ms;
    lth_httpc_options_t http;
    bridge_route_t routes[BRIDGE_MAX_ROUTES];
    size_t n_routes;
    bridge_offer_t offers[BRIDGE_MAX_OFFERS];
    size_t n_offers;
    /* Outbound calls in progress, by "sender message-id", so that a
     * redelivery seen while the first is still at the system is not sent
     * to it twice. */
    char in_flight[BRIDGE_MAX_NESTING][HUB_MEMBER_ID_MAX + 40];
    int depth;
    bridge_pending_t *pending;   /* inbound requests in flight, max_in_flight of room */
    size_t n_pending, max_in_flight;
    bool curl_ready; /* lth_httpc_global_init() done: destroy() undoes it */
};

static uint64_t bridge_now_ms(void) { return hub_monotonic_us() / 1000u; }

/* ---- inbound: HTTP -> hub -------------------------------------------------- */

/* The hub's reason without the SDK's prefix "the hub refused the message (X): ". */
static const char *bridge_nack_reason(const char *last_error)
{
    const char *p = strstr(last_error, "): ");
    return p ? p + 3 : last_error;
}

static int bridge_nack_status(int code)
{
    switch (code) {
    case LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER:
        return 404;
    case LTH__V1__NACK_CODE__NACK_FORBIDDEN:
        return 403;
    case LTH__V1__NACK_CODE__NACK_PAYLOAD_TOO_LARGE:
        return 413;
    case LTH__V1__NACK_CODE__NACK_EXPIRED:
        return 504;
    case LTH__V1__NACK_CODE__NACK_RATE_LIMITED:
    case LTH__V1__NACK_CODE__NACK_QUOTA_EXCEEDED:
        return 429;
    case LTH__V1__NACK_CODE__NACK_ID_REUSED:
        return 409;
    case LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE:
    case LTH__V1__NACK_CODE__NACK_QUEUE_FULL:
    case LTH__V1__NACK_CODE__NACK_STORE_FULL:
    case LTH__V1__NACK_CODE__NACK_INTERNAL:
    case LTH__V1__NACK_CODE__NACK_UNAVAILABLE:
    case LTH__V1__NACK_CODE__NACK_HELLO_REQUIRED:
        return 503;
    default: {
        /* Codes newer than this bridge: a refusal by policy is still a 403. */
        const char *name = hub_nack_code_name(code);
        return strstr(name, "DENIED") || strstr(name, "POLICY") || strstr(name, "PERMITTED")
                   ? 403
                   : 502;
    }
    }
}

/* Turns the hub's reply into the HTTP answer. */
static void bridge_answer(const bridge_mapping_t *map, const char *who, adp_reply_t *reply,
                          lth_httpd_response_t *resp)
{
    snprintf(resp->headers, sizeof resp->headers, "X-LTH-Replied-By: %s\r\n", reply->sender);
    const ProtobufCMessageDescriptor *d = lth_jsonmap_type_of(reply->content_type);
    if (d) {
        char *json = NULL;
        size_t len = 0;
        int rc = lth_jsonmap_decode(d, map ? map->response_map : NULL, reply->payload,
                                    reply->payload_len, &json, &len);
        if (rc != 0) {
            char message[512];
            snprintf(message, sizeof message, "the reply from %s is not a valid %s", who,
                     d->short_name);
            lth_httpd_error(resp, 502, message, NULL);
            return;
        }
        resp->status = 200;
        resp->body = json;
        resp->body_len = len;
        snprintf(resp->content_type, sizeof resp->content_type, "application/json");
        return;
    }
    /* A problem document from the provider (e.g. another bridge whose system
     * failed) keeps its HTTP status when it says one. */
    int status = 200;
    if (!strncasecmp(reply->content_type, LTH_JSONMAP_PROBLEM_TYPE,
                     strlen(LTH_JSONMAP_PROBLEM_TYPE))) {
        status = 502;
        json_t *problem = NULL;
        if (lth_jsonmap_parse((const char *)reply->payload, reply->payload_len, &problem, NULL) ==
            0) {
            json_t *s = json_object_get(problem, "status");
            if (json_is_integer(s) && json_integer_value(s) >= 400 &&
                json_integer_value(s) <= 599)
                status = (int)json_integer_value(s);
            json_decref(problem);
        }
    }
    resp->status = status;
    resp->body = (char *)reply->payload; /* handed over */
    resp->body_len = reply->payload_len;
    reply->payload = NULL;
    reply->payload_len = 0;
    snprintf(resp->content_type, sizeof resp->content_type, "%s",
             reply->content_type[0] ? reply->content_type : "application/octet-stream");
}

/* Answers a hub request that failed (rc from adp_request_start/poll). */
static void bridge_call_failed(bridge_t *b, int rc, const char *receiver,
                               lth_httpd_response_t *resp)
{
    if (rc == HUB_ENACK) {
        int code = adp_last_nack_code(b->client);
        lth_httpd_error(resp, bridge_nack_status(code), "the hub refused the request",
                        json_pack("{s:s,s:s}", "nack", hub_nack_code_name(code), "reason",
                                  bridge_nack_reason(adp_last_error(b->client))));
    } else if (rc == HUB_ETIMEDOUT) {
        char message[HUB_MEMBER_ID_MAX + 64];
        snprintf(message, sizeof message, "no reply from %s within %u ms", receiver,
                 (unsigned)b->hub_timeout_ms);
        lth_httpd_error(resp, 504, message, NULL);
    } else {
        lth_httpd_error(resp, 502, adp_last_error(b->client), NULL);
    }
}

/* Sends the request body to receiver/service per the mapping: the answer
 * comes later (resp->deferred, bridge_poll_pending), or now for a refusal. */
static void bridge_call(bridge_t *b, const bridge_mapping_t *map, const char *receiver,
                        const char *service, const lth_httpd_request_t *req,
                        lth_httpd_response_t *resp)
{
    if (req->content_type[0] && !lth_jsonmap_is_json_type(req->content_type)) {
        lth_httpd_error(resp, 415,
                        "send the body as JSON with 'Content-Type: application/json' (curl: -H "
                        "'Content-Type: application/json')",
                        NULL);
        return;
    }
    lth_jsonmap_error_t jerr;
    json_t *json = NULL;
    if (lth_jsonmap_parse(req->body, req->body_len, &json, &jerr) != 0) {
        lth_httpd_error(resp, 400, jerr.message,
                        json_pack("{s:i,s:i,s:I}", "line", jerr.line, "column", jerr.column,
                                  "position", (json_int_t)jerr.position));
        return;
    }
    uint8_t *payload = NULL;
    size_t len = 0;
    char ctype[256] = "application/json";
    int rc = 0;
    if (map->type) {
        ProtobufCMessage *msg = NULL;
        rc = lth_jsonmap_to_proto(map->type, map->request_map, json, &msg, &jerr);
        if (rc == 0) {
            rc = hub_pb_pack(msg, &payload, &len);
            protobuf_c_message_free_unpacked(msg, NULL);
            lth_jsonmap_content_type(map->type, ctype, sizeof ctype);
        }
    }
    json_decref(json);
    if (rc == HUB_EPARSE) {
        lth_httpd_error(resp, 422, jerr.message,
                        jerr.field[0] ? json_pack("{s:s}", "field", jerr.field) : NULL);
        return;
    }
    if (rc != 0) {
        lth_httpd_error(resp, 500, hub_strerror(rc), NULL);
        return;
    }
    if (!b->client || !adp_connected(b->client)) {
        free(payload);
        lth_httpd_error(resp, 503, "this adapter is not connected to the hub; try again shortly",
                        NULL);
        return;
    }
    if (b->n_pending >= b->max_in_flight) {
        free(payload);
        char message[160];
        snprintf(message, sizeof message,
                 "this bridge has %zu requests in flight (plugin.max_in_flight); try again "
                 "shortly",
                 b->n_pending);
        lth_httpd_error(resp, 503, message, NULL);
        snprintf(resp->headers, sizeof resp->headers, "Retry-After: 1\r\n");
        return;
    }
    bridge_pending_t *p = &b->pending[b->n_pending];
    memset(p, 0, sizeof *p);
    rc = adp_request_start(b->client, receiver, service, ctype,
                           map->type ? (const void *)payload : (const void *)req->body,
                           map->type ? len : req->body_len, b->request_flags, p->request_id);
    free(payload);
    if (rc != 0) {
        bridge_call_failed(b, rc, receiver, resp);
        return;
    }
    p->http_id = req->id;
    p->t0_ms = bridge_now_ms();
    p->deadline_ms = p->t0_ms + b->hub_timeout_ms;
    p->map = *map;
    snprintf(p->receiver, sizeof p->receiver, "%s", receiver);
    snprintf(p->service, sizeof p->service, "%s", service);
    snprintf(p->method, sizeof p->method, "%s", req->method);
    snprintf(p->path, sizeof p->path, "%s", req->path);
    snprintf(p->peer, sizeof p->peer, "%s", req->peer);
    p->body_len = req->body_len;
    b->n_pending++;
    resp->deferred = true;
}

static void bridge_log_request(const bridge_t *b, const char *method, const char *path,
                               const char *peer, int status, uint64_t ms, size_t in, size_t out,
                               const char *receiver, const char *service)
{
    adp_plugin_log(b->host,
                   status >= 500   ? ADP_LOG_WARN
                   : status >= 400 ? ADP_LOG_INFO
                                   : ADP_LOG_DEBUG,
                   "%s %.200s from %s -> %d in %" PRIu64 " ms, %zu bytes in, %zu out%s%s%s%s%s",
                   method, path, peer, status, ms, in, out, receiver[0] ? " (" : "", receiver,
                   receiver[0] ? " " : "", service, receiver[0] ? ")" : "");
}

/* Answers the inbound requests whose reply, NACK or deadline has come. */
static void bridge_poll_pending(bridge_t *b)
{
    uint64_t now = bridge_now_ms();
    for (size_t i = 0; i < b->n_pending;) {
        bridge_pending_t *p = &b->pending[i];
        adp_reply_t reply;
        memset(&reply, 0, sizeof reply);
        int rc = b->client ? adp_request_poll(b->client, p->request_id, &reply) : HUB_EAGAIN;
        if (rc == HUB_EAGAIN && now < p->deadline_ms) {
            i++;
            continue;
        }
        lth_httpd_response_t resp;
        memset(&resp, 0, sizeof resp);
        if (rc == 0) {
            bridge_answer(&p->map, p->receiver, &reply, &resp);
            adp_reply_free(&reply);
        } else {
            if (rc == HUB_EAGAIN) {
                adp_request_cancel(b->client, p->request_id);
                rc = HUB_ETIMEDOUT;
            }
            bridge_call_failed(b, rc, p->receiver, &resp);
        }
        int status = resp.status ? resp.status : 500;
        size_t out = resp.body_len;
        if (lth_httpd_complete(b->httpd, p->http_id, &resp) != 0)
            adp_plugin_log(b->host, ADP_LOG_INFO,
                           "%s %.200s from %s: the client left before the answer", p->method,
                           p->path, p->peer);
        bridge_log_request(b, p->method, p->path, p->peer, status, now - p->t0_ms, p->body_len,
                           out, p->receiver, p->service);
        b->pending[i] = b->pending[--b->n_pending]; /* order does not matter */
    }
}

/* "/call/VN/GOV/BCA/CSDLQGDC/citizen.lookup/v1" -> receiver and service. */
static bool bridge_split_call(const char *rest, char *receiver, char *service, char *why,
                              size_t why_size)
{
    const char *last = strrchr(rest, '/');
    const char *mid = NULL;
    for (const char *p = last ? last - 1 : NULL; p && p >= rest; p--)
        if (*p == '/') {
            mid = p;
            break;
        }
    if (!last || !mid || mid == rest || (size_t)(mid - rest) > HUB_MEMBER_ID_MAX ||
        strlen(mid + 1) > HUB_SERVICE_MAX) {
        snprintf(why, why_size,
                 "use POST /call/RECEIVER-ID/SERVICE/VERSION, e.g. "
                 "/call/VN/GOV/BCA/CSDLQGDC/citizen.lookup/v1");
        return false;
    }
    memcpy(receiver, rest, (size_t)(mid - rest));
    receiver[mid - rest] = '\0';
    snprintf(service, HUB_SERVICE_MAX + 1, "%s", mid + 1);
    const char *problem = hub_member_id_problem(receiver);
    if (problem) {
        snprintf(why, why_size, "'%.255s' is not a member id: %s", receiver, problem);
        return false;
    }
    if (!hub_service_valid(service)) {
        snprintf(why, why_size, "'%.255s' is not SERVICE/VERSION", service);
        return false;
    }
    return true;
}

static void bridge_on_http(const lth_httpd_request_t *req, lth_httpd_response_t *resp, void *user)
{
    bridge_t *b = user;
    uint64_t t0 = bridge_now_ms();
    const char *receiver = "", *service = "";
    char call_receiver[HUB_MEMBER_ID_MAX + 1], call_service[HUB_SERVICE_MAX + 1];
    const bridge_mapping_t *map = NULL;
    bridge_mapping_t call_map;
    char why[512] = "";
    if (!strcmp(req->path, "/openapi.json") && !strcmp(req->method, "GET")) {
        /* The description holds nothing of this deployment, and OpenAPI
         * tools fetch it without credentials. */
        resp->body = malloc(bridge_openapi_json_len);
        if (!resp->body) {
            lth_httpd_error(resp, 500, "out of memory", NULL);
            goto done;
        }
        memcpy(resp->body, bridge_openapi_json, bridge_openapi_json_len);
        resp->body_len = bridge_openapi_json_len;
        resp->status = 200;
        snprintf(resp->content_type, sizeof resp->content_type, "application/json");
        goto done;
    }
    if (req->client_cert[0])
        adp_plugin_log(b->host, ADP_LOG_DEBUG, "%s %.200s from %s: client certificate \"%.200s\"",
                       req->method, req->path, req->peer, req->client_cert);
    if (b->token[0] && !lth_httpd_bearer_ok(req->authorization, b->token)) {
        lth_httpd_error(resp, 401,
                        "this endpoint needs 'Authorization: Bearer TOKEN' with the token of "
                        "plugin.token_file",
                        NULL);
        snprintf(resp->headers, sizeof resp->headers, "WWW-Authenticate: Bearer\r\n");
        goto done;
    }
    if (!strncmp(req->path, "/route/", 7)) {
        for (size_t i = 0; i < b->n_routes && !map; i++)
            if (!strcmp(b->routes[i].map.name, req->path + 7)) {
                map = &b->routes[i].map;
                receiver = b->routes[i].receiver;
                service = b->routes[i].service;
            }
        if (!map)
            snprintf(why, sizeof why, "no route named '%.64s'", req->path + 7);
    } else if (!strncmp(req->path, "/call/", 6) && b->call_route) {
        if (bridge_split_call(req->path + 6, call_receiver, call_service, why, sizeof why)) {
            memset(&call_map, 0, sizeof call_map);
            snprintf(call_map.name, sizeof call_map.name, "call");
            call_map.type = lth_jsonmap_service_type(call_service, false);
            map = &call_map;
            receiver = call_receiver;
            service = call_service;
        }
    }
    if (!map) {
        char routes[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < b->n_routes && used < sizeof routes; i++)
            used += (size_t)snprintf(routes + used, sizeof routes - used, ", /route/%s",
                                     b->routes[i].map.name);
        char message[1200];
        snprintf(message, sizeof message, "%s%sthis bridge answers POST %s%s", why,
                 why[0] ? "; " : "",
                 b->call_route ? "/call/RECEIVER-ID/SERVICE/VERSION" : "",
                 b->call_route ? routes : (routes[0] ? routes + 2 : "(no routes)"));
        lth_httpd_error(resp, 404, message, NULL);
        goto done;
    }
    if (strcmp(req->method, "POST") != 0) {
        lth_httpd_error(resp, 405, "use POST with a JSON body", NULL);
        snprintf(resp->headers, sizeof resp->headers, "Allow: POST\r\n");
        goto done;
    }
    bridge_call(b, map, receiver, service, req, resp);
    if (resp->deferred)
        return; /* logged when answered */
done:
    bridge_log_request(b, req->method, req->path, req->peer, resp->status, bridge_now_ms() - t0,
                       req->body_len, resp->body_len, receiver, service);
}

/* ---- outbound: hub -> HTTP -------------------------------------------------- */

static void bridge_idle(void *user)
{
    bridge_t *b = user;
    if (b->client)
        adp_run(b->client, 0); /* heartbeats, receipts, other deliveries */
}

/* The request's payload as the JSON to POST (malloc'ed into *out). Returns
 * 0, or an HTTP status for a problem reply with `why` filled. */
static int bridge_request_json(const bridge_offer_t *o, const adp_message_t *msg, char **out,
                               size_t *out_len, char *why, size_t why_size)
{
    const ProtobufCMessageDescriptor *d = lth_jsonmap_type_of(msg->content_type);
    if (d) {
        int rc = lth_jsonmap_decode(d, o->map.request_map, msg->payload, msg->payload_len, out,
                                    out_len);
        if (rc == HUB_EPARSE)
            snprintf(why, why_size, "the request is not a valid %s", d->short_name);
        else if (rc != 0)
            snprintf(why, why_size, "%s", hub_strerror(rc));
        return rc == 0 ? 0 : rc == HUB_EPARSE ? 400 : 500;
    }
    if (!lth_jsonmap_is_json_type(msg->content_type) && msg->payload_len > 0) {
        snprintf(why, why_size,
                 "this service takes JSON (application/json) or a lth.domain.v1 message, not "
                 "'%.100s'",
                 msg->content_type);
        return 415;
    }
    *out = malloc(msg->payload_len + 1);
    if (!*out)
        return 500;
    memcpy(*out, msg->payload, msg->payload_len);
    (*out)[msg->payload_len] = '\0';
    *out_len = msg->payload_len;
    return 0;
}

/* The system answered 2xx: its body becomes the reply. */
static int bridge_success_reply(const bridge_offer_t *o, lth_httpc_result_t *res,
                                adp_reply_t *reply)
{
    if (!o->map.type) {
        adp_plugin_reply(reply, res->body, res->body_len,
                         res->content_type[0] ? res->content_type : "application/json");
        res->body = NULL;
        res->body_len = 0;
        return 0;
    }
    uint8_t *pb = NULL;
    size_t len = 0;
    lth_jsonmap_error_t jerr;
    int rc = lth_jsonmap_encode(o->map.type, o->map.response_map, res->body ? res->body : "",
                                res->body_len, &pb, &len, &jerr);
    if (rc == HUB_EPARSE) {
        char message[2048];
        snprintf(message, sizeof message, "the system at %s answered what is not a %s: %s",
                 o->url, o->map.type->short_name, jerr.message);
        adp_plugin_log(o->bridge->host, ADP_LOG_WARN, "offer %s: %s", o->map.name, message);
        return lth_jsonmap_reply_problem(
            reply, 502, message, jerr.field[0] ? json_pack("{s:s}", "field", jerr.field) : NULL);
    }
    if (rc != 0)
        return rc;
    reply->payload = pb;
    reply->payload_len = len;
    lth_jsonmap_content_type(o->map.type, reply->content_type, sizeof reply->content_type);
    return 0;
}

/* The system answered non-2xx, or not at all. */
static int bridge_failure_reply(const bridge_offer_t *o, int rc, const lth_httpc_result_t *res,
                                adp_reply_t *reply)
{
    char message[2048];
    if (res->status) {
        snprintf(message, sizeof message, "the system at %s answered HTTP %ld", o->url,
                 res->status);
        json_t *detail = NULL;
        if (res->body_len &&
            lth_jsonmap_parse(res->body, res->body_len, &detail, NULL) != 0)
            detail = lth_jsonmap_string(res->body, res->body_len < BRIDGE_DETAIL_MAX
                                                       ? res->body_len
                                                       : BRIDGE_DETAIL_MAX);
        json_t *extra = json_pack("{s:i}", "attempts", (int)res->attempts);
        if (extra && detail)
            json_object_set_new(extra, "detail", detail);
        else
            json_decref(detail);
        return lth_jsonmap_reply_problem(reply, (int)res->status, message, extra);
    }
    snprintf(message, sizeof message, "cannot reach the system at %s after %u attempt%s: %s",
             o->url, res->attempts, res->attempts == 1 ? "" : "s", res->error);
    bool timeout = strstr(res->error, "imeout") || strstr(res->error, "imed out");
    return lth_jsonmap_reply_problem(reply,
                                     rc == HUB_EFULL ? 502
                                     : timeout       ? 504
                                                     : 502,
                                     message, json_pack("{s:i}", "attempts", (int)res->attempts));
}

static int bridge_on_offer(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                           void *user)
{
    bridge_offer_t *o = user;
    bridge_t *b = o->bridge;
    b->client = client;
    char key[sizeof b->in_flight[0]];
    snprintf(key, sizeof key, "%s %s", msg->sender, msg->message_id);
    for (int i = 0; i < b->depth; i++)
        if (!strcmp(b->in_flight[i], key)) {
            adp_plugin_log(b->host, ADP_LOG_DEBUG,
                           "offer %s: a redelivery of a call in progress, dropped", o->map.name);
            return HUB_EAGAIN; /* no second reply: the first one is coming */
        }
    if (b->depth >= BRIDGE_MAX_NESTING) {
        adp_plugin_log(b->host, ADP_LOG_WARN, "offer %s: %d calls in progress; refused one from %s",
                       o->map.name, b->depth, msg->sender);
        return msg->kind == ADP_REQUEST
                   ? lth_jsonmap_reply_problem(
                         reply, 503, "the bridge has too many calls in progress; try again later",
                         NULL)
                   : 0;
    }
    char *body = NULL;
    size_t len = 0;
    char why[256] = "";
    int status = bridge_request_json(o, msg, &body, &len, why, sizeof why);
    if (status != 0) {
        free(body);
        adp_plugin_log(b->host, ADP_LOG_INFO, "offer %s from %s: refused: %s", o->map.name,
                       msg->sender, why);
        return msg->kind == ADP_REQUEST ? lth_jsonmap_reply_problem(reply, status, why, NULL) : 0;
    }
    char h_sender[HUB_MEMBER_ID_MAX + 32], h_id[80], h_service[HUB_SERVICE_MAX + 32],
        h_kind[40];
    snprintf(h_sender, sizeof h_sender, "X-LTH-Sender: %s", msg->sender);
    snprintf(h_id, sizeof h_id, "X-LTH-Message-Id: %s", msg->message_id);
    snprintf(h_service, sizeof h_service, "X-LTH-Service: %s", msg->service);
    snprintf(h_kind, sizeof h_kind, "X-LTH-Kind: %s",
             msg->kind == ADP_REQUEST ? "request" : "event");
    const char *headers[] = {"Content-Type: application/json",
                             "Accept: application/json, application/problem+json",
                             h_sender,
                             h_id,
                             h_service,
                             h_kind,
                             NULL};
    lth_httpc_options_t opt = b->http;
    opt.idle = bridge_idle;
    opt.idle_user = b;
    lth_httpc_result_t res;
    uint64_t t0 = bridge_now_ms();
    snprintf(b->in_flight[b->depth++], sizeof b->in_flight[0], "%s", key);
    int rc = lth_httpc_post(o->url, headers, body, len, &opt, &res);
    b->depth--;
    free(body);
    o->calls++;
    bool ok = rc == 0 && res.status >= 200 && res.status < 300;
    if (!ok)
        o->failures++;
    char outcome[32] = "no answer";
    if (res.status)
        snprintf(outcome, sizeof outcome, "HTTP %ld", res.status);
    adp_plugin_log(
        b->host, ok ? 0 : 2, "offer %s (%s) from %s: %s after %u attempt%s in %" PRIu64 " ms%s%s",
        o->map.name, msg->service, msg->sender, outcome, res.attempts, res.attempts == 1 ? "" : "s",
        bridge_now_ms() - t0, res.error[0] ? ": " : "", res.error);
    int out = 0;
    if (msg->kind == ADP_REQUEST) {
        if (ok)
            out = bridge_success_reply(o, &res, reply);
        else if (rc == 0 || rc == HUB_EIO || rc == HUB_EFULL)
            out = bridge_failure_reply(o, rc, &res, reply);
        else
            out = lth_jsonmap_reply_problem(reply, 500, hub_strerror(rc), NULL);
    } else if (!ok) {
        /* An event the system did not take is not dropped: it stays at the
         * hub, which delivers it again later (with a growing delay) and
         * dead-letters it when its retry budget runs out. A 4xx other than
         * 408 and 429 says the system will never take it: dead-letter it now,
         * with the status, rather than retrying for hours. */
        bool permanent = res.status >= 400 && res.status < 500 && res.status != 408 &&
                         res.status != 429;
        if (permanent) {
            char refusal[400];
            snprintf(refusal, sizeof refusal, "the system at %.300s refused the event with HTTP %ld",
                     o->url, res.status);
            adp_dead_letter_reason(client, refusal);
            out = ADP_DEAD_LETTER;
        } else {
            out = ADP_LATER;
        }
    }
    lth_httpc_result_free(&res);
    return out;
}

/* ---- configuration ------------------------------------------------------------ */

/* Splits "a, b" into names of [a-z0-9_-]. */
static int bridge_names(const char *key, const char *list, char names[][BRIDGE_NAME_MAX + 1],
                        size_t max, size_t *n, char *err, size_t err_size)
{
    *n = 0;
    if (!list)
        return 0;
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", list);
    char *save = NULL;
    for (char *s = strtok_r(copy, ", ", &save); s; s = strtok_r(NULL, ", ", &save)) {
        if (strlen(s) > BRIDGE_NAME_MAX || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
                                               strlen(s))
            return adp_plugin_fail(err, err_size,
                                   "plugin.%s: '%s' is not a name (a-z, 0-9, _ and -, at most %d)",
                                   key, s, BRIDGE_NAME_MAX);
        if (*n == max)
            return adp_plugin_fail(err, err_size, "plugin.%s: at most %zu names", key, max);
        for (size_t i = 0; i < *n; i++)
            if (!strcmp(names[i], s))
                return adp_plugin_fail(err, err_size, "plugin.%s: '%s' is listed twice", key, s);
        snprintf(names[(*n)++], BRIDGE_NAME_MAX + 1, "%s", s);
    }
    return 0;
}

/* TYPE on a route or offer line: a domain message, "json", or absent (the
 * service's domain type if it has one, else JSON). */
static int bridge_type(const char *what, const char *word, const char *service, bool reply,
                       const ProtobufCMessageDescriptor **out, char *err, size_t err_size)
{
    if (!word || !*word) {
        *out = lth_jsonmap_service_type(service, reply);
        return 0;
    }
    if (!strcmp(word, "json")) {
        *out = NULL;
        return 0;
    }
    *out = lth_jsonmap_type(word);
    if (!*out)
        return adp_plugin_fail(err, err_size,
                               "%s: '%s' is no message of proto/domain.proto (e.g. "
                               "CitizenLookupRequest), nor 'json'",
                               what, word);
    return 0;
}

/* plugin.map.NAME.request / .response, checked against the types when known. */
static int bridge_maps(const bridge_t *b, bridge_mapping_t *m,
                       const ProtobufCMessageDescriptor *request_type,
                       const ProtobufCMessageDescriptor *response_type, char *err, size_t err_size)
{
    static const char *const sides[] = {"request", "response"};
    for (int i = 0; i < 2; i++) {
        char key[96];
        snprintf(key, sizeof key, "map.%s.%s", m->name, sides[i]);
        const char *text = b->host->config(b->host, key);
        if (!text)
            continue;
        lth_jsonmap_renames_t **dst = i == 0 ? &m->request_map : &m->response_map;
        const ProtobufCMessageDescriptor *d = i == 0 ? request_type : response_type;
        char why[HUB_ERRMSG_MAX];
        int rc = lth_jsonmap_renames_new(text, dst, why, sizeof why);
        if (rc == 0)
            rc = lth_jsonmap_renames_check(*dst, d, why, sizeof why);
        if (rc == 0 && !d)
            rc = adp_plugin_fail(
                why, sizeof why,
                "the %s of this service passes through as JSON (no lth.domain.v1 "
                "type: the service is not one of proto/DOMAIN.md and the line names "
                "no TYPE for this side), and a field map applies to domain messages "
                "only",
                sides[i]);
        if (rc != 0)
            return rc == HUB_ENOMEM ? rc
                                    : adp_plugin_fail(err, err_size, "plugin.%s: %s", key, why);
    }
    return 0;
}

/* plugin.KEY as two words and an optional third (w[2], NULL when absent),
 * split in copy (copy_size bytes); false when it has not that shape. */
static bool bridge_words(const bridge_t *b, const char *key, char *copy, size_t copy_size,
                         char *w[3])
{
    const char *line = b->host->config(b->host, key);
    char *save = NULL;
    snprintf(copy, copy_size, "%s", line ? line : "");
    w[0] = strtok_r(copy, " \t", &save);
    w[1] = w[0] ? strtok_r(NULL, " \t", &save) : NULL;
    w[2] = w[1] ? strtok_r(NULL, " \t", &save) : NULL;
    return w[0] && w[1] && (!w[2] || !strtok_r(NULL, " \t", &save));
}

/* plugin.route.NAME = RECEIVER SERVICE/VERSION [TYPE] */
static int bridge_route(bridge_t *b, const char *name, char *err, size_t err_size)
{
    bridge_route_t *r = &b->routes[b->n_routes];
    snprintf(r->map.name, sizeof r->map.name, "%.32s", name);
    char key[64];
    snprintf(key, sizeof key, "route.%.32s", name);
    char copy[1024], *w[3];
    bool ok = bridge_words(b, key, copy, sizeof copy, w);
    char *receiver = w[0], *service = w[1], *type = w[2];
    if (!ok)
        return adp_plugin_fail(err, err_size,
                               "plugin.%s must be 'RECEIVER-ID SERVICE/VERSION [TYPE]', e.g. "
                               "'VN/GOV/BCA/CSDLQGDC citizen.lookup/v1'",
                               key);
    const char *problem = hub_member_id_problem(receiver);
    if (problem)
        return adp_plugin_fail(err, err_size, "plugin.%s: '%s' is not a member id: %s", key,
                               receiver, problem);
    if (!hub_service_valid(service))
        return adp_plugin_fail(err, err_size, "plugin.%s: '%s' is not SERVICE/VERSION", key,
                               service);
    snprintf(r->receiver, sizeof r->receiver, "%s", receiver);
    snprintf(r->service, sizeof r->service, "%s", service);
    b->n_routes++; /* from here on destroy() frees its maps */
    int rc = bridge_type(key, type, service, false, &r->map.type, err, err_size);
    if (rc == 0)
        rc = bridge_maps(b, &r->map, r->map.type, lth_jsonmap_service_type(service, true), err,
                         err_size);
    return rc;
}

/* plugin.offer.NAME = SERVICE/VERSION URL [TYPE] */
static int bridge_offer(bridge_t *b, const char *name, char *err, size_t err_size)
{
    bridge_offer_t *o = &b->offers[b->n_offers];
    snprintf(o->map.name, sizeof o->map.name, "%.32s", name);
    o->bridge = b;
    char key[64];
    snprintf(key, sizeof key, "offer.%.32s", name);
    char copy[1400], *w[3];
    bool ok = bridge_words(b, key, copy, sizeof copy, w);
    char *service = w[0], *url = w[1], *type = w[2];
    if (!ok)
        return adp_plugin_fail(err, err_size,
                               "plugin.%s must be 'SERVICE/VERSION URL [TYPE]', e.g. "
                               "'citizen.lookup/v1 http://127.0.0.1:9000/lookup'",
                               key);
    if (!hub_service_valid(service))
        return adp_plugin_fail(err, err_size, "plugin.%s: '%s' is not SERVICE/VERSION", key,
                               service);
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        strlen(url) >= sizeof o->url)
        return adp_plugin_fail(err, err_size,
                               "plugin.%s: '%.100s' is not an http:// or https:// URL", key, url);
    for (size_t i = 0; i < b->n_offers; i++)
        if (!strcmp(b->offers[i].service, service))
            return adp_plugin_fail(err, err_size, "plugin.%s: %s is offered twice (also by %s)",
                                   key, service, b->offers[i].map.name);
    snprintf(o->service, sizeof o->service, "%s", service);
    snprintf(o->url, sizeof o->url, "%s", url);
    b->n_offers++;
    int rc = bridge_type(key, type, service, true, &o->map.type, err, err_size);
    if (rc == 0)
        rc = bridge_maps(b, &o->map, lth_jsonmap_service_type(service, false), o->map.type, err,
                         err_size);
    if (rc == 0 && b->host->offer(b->host, service, bridge_on_offer, o) != 0)
        rc = adp_plugin_fail(err, err_size, "plugin.%s: the runtime refused to offer %s", key,
                             service);
    return rc;
}

/* Reads plugin.token_file: one line, readable by its owner only. */
static int bridge_token(bridge_t *b, const char *path, char *err, size_t err_size)
{
    return lth_httpc_read_token("token_file", path, b->token, sizeof b->token, err, err_size);
}

/* Reads a PEM file into *out (malloc'ed); a key must be readable by its
 * owner only. */
static int bridge_pem(const char *key, const char *path, bool secret, char **out, char *err,
                      size_t err_size)
{
    size_t size = 0;
    int fd = lth_httpc_open_file(key, path, secret, &size, err, err_size);
    if (fd < 0)
        return fd;
    if (size == 0 || size > BRIDGE_PEM_MAX) {
        close(fd);
        return adp_plugin_fail(err, err_size, "plugin.%s %s is empty or larger than %u bytes", key,
                               path, (unsigned)BRIDGE_PEM_MAX);
    }
    char *text = malloc(size + 1);
    ssize_t n = text ? read(fd, text, size) : -1;
    close(fd);
    if (n != (ssize_t)size) {
        free(text);
        return adp_plugin_fail(err, err_size, "plugin.%s: cannot read %s", key, path);
    }
    text[n] = '\0';
    if (!strstr(text, "-----BEGIN ")) {
        if (secret)
            sodium_memzero(text, (size_t)n);
        free(text);
        return adp_plugin_fail(err, err_size, "plugin.%s: %s is not a PEM file", key, path);
    }
    *out = text;
    return 0;
}

static void bridge_pem_free(char **pem)
{
    if (*pem) {
        sodium_memzero(*pem, strlen(*pem));
        free(*pem);
        *pem = NULL;
    }
}

/* plugin.tls_cert, plugin.tls_key, plugin.tls_client_ca into hc. */
static int bridge_tls(const bridge_t *b, lth_httpd_config_t *hc, char *err, size_t err_size)
{
    const adp_plugin_host_t *h = b->host;
    const char *cert = h->config(h, "tls_cert"), *key = h->config(h, "tls_key"),
               *ca = h->config(h, "tls_client_ca");
    if (!cert && !key && !ca)
        return 0;
    if (!cert || !key)
        return adp_plugin_fail(err, err_size,
                               "HTTPS needs both plugin.tls_cert (the bridge's certificate) and "
                               "plugin.tls_key (its private key)%s",
                               ca ? "; plugin.tls_client_ca alone is not enough" : "");
    char *c = NULL, *k = NULL, *a = NULL;
    int rc = bridge_pem("tls_cert", cert, false, &c, err, err_size);
    if (rc == 0)
        rc = bridge_pem("tls_key", key, true, &k, err, err_size);
    if (rc == 0 && ca)
        rc = bridge_pem("tls_client_ca", ca, false, &a, err, err_size);
    hc->tls_cert_pem = c;
    hc->tls_key_pem = k;
    hc->tls_client_ca_pem = a;
    return rc;
}

static void bridge_tls_free(lth_httpd_config_t *hc)
{
    char *c = (char *)hc->tls_cert_pem, *k = (char *)hc->tls_key_pem,
         *a = (char *)hc->tls_client_ca_pem;
    bridge_pem_free(&c);
    bridge_pem_free(&k);
    bridge_pem_free(&a);
    hc->tls_cert_pem = hc->tls_key_pem = hc->tls_client_ca_pem = NULL;
}

static int bridge_write_port(bridge_t *b, char *err, size_t err_size)
{
    char tmp[sizeof b->port_file + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", b->port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", lth_httpd_port(b->httpd)) < 0 || fclose(f) != 0 ||
        rename(tmp, b->port_file) != 0) {
        int e = errno;
        return adp_plugin_fail(err, err_size, "plugin.port_file: cannot write %s: %s", b->port_file,
                               strerror(e));
    }
    return 0;
}

static void bridge_destroy(void *state)
{
    bridge_t *b = state;
    if (!b)
        return;
    /* Requests still waiting for the hub are answered 503 by lth_httpd. */
    for (size_t i = 0; b->client && i < b->n_pending; i++)
        adp_request_cancel(b->client, b->pending[i].request_id);
    lth_httpd_destroy(&b->httpd);
    free(b->pending);
    if (b->port_file[0])
        unlink(b->port_file);
    for (size_t i = 0; i < b->n_routes; i++) {
        lth_jsonmap_renames_destroy(&b->routes[i].map.request_map);
        lth_jsonmap_renames_destroy(&b->routes[i].map.response_map);
    }
    for (size_t i = 0; i < b->n_offers; i++) {
        lth_jsonmap_renames_destroy(&b->offers[i].map.request_map);
        lth_jsonmap_renames_destroy(&b->offers[i].map.response_map);
    }
    sodium_memzero(b->token, sizeof b->token);
    lth_httpc_auth_destroy(&b->http.auth);
    if (b->curl_ready)
        lth_httpc_global_cleanup();
    free(b);
}

static const char *bridge_setting(void *user, const char *key)
{
    const bridge_t *b = user;
    return b->host->config(b->host, key);
}

static int bridge_settings(bridge_t *b, char *err, size_t err_size)
{
    const adp_plugin_host_t *h = b->host;
    uint64_t v = 0;
    int rc;
    if ((rc = adp_plugin_conf_u64(b->host, "hub_timeout_ms", 100, 300000, 10000, &v, err,
                                  err_size)) != 0)
        return rc;
    b->hub_timeout_ms = (uint32_t)v;
    if ((rc = adp_plugin_conf_u64(b->host, "http_timeout_ms", 100, 60000, 5000, &v, err,
                                  err_size)) != 0)
        return rc;
    b->http.timeout_ms = (uint32_t)v;
    if ((rc = adp_plugin_conf_u64(b->host, "http_retries", 0, 5, 2, &v, err, err_size)) != 0)
        return rc;
    b->http.retries = (uint32_t)v;
    if ((rc = adp_plugin_conf_u64(b->host, "http_backoff_ms", 10, 10000, 200, &v, err, err_size)) !=
        0)
        return rc;
    b->http.backoff_ms = (uint32_t)v;
    if ((rc = adp_plugin_conf_u64(b->host, "max_body_bytes", 1024, 64u << 20, 1u << 20, &v, err,
                                  err_size)) != 0)
        return rc;
    b->http.max_response_bytes = (size_t)v;
    size_t max_body = (size_t)v;
    /* Outbound authentication towards the system (lth_httpc.h). */
    if ((rc = lth_httpc_auth_from_config(bridge_setting, b, &b->http.auth, err, err_size)) != 0)
        return rc;
    if ((rc = adp_plugin_conf_u64(b->host, "poll_ms", 1, 100, 5, &v, err, err_size)) != 0)
        return rc;
    b->poll_ms = (int)v;
    if ((rc = adp_plugin_conf_u64(b->host, "max_in_flight", 1, 4096, 64, &v, err, err_size)) != 0)
        return rc;
    b->max_in_flight = (size_t)v;
    b->pending = calloc(b->max_in_flight, sizeof *b->pending);
    if (!b->pending)
        return HUB_ENOMEM;
    const char *call = h->config(h, "call");
    if (call && strcmp(call, "on") != 0 && strcmp(call, "off") != 0)
        return adp_plugin_fail(err, err_size, "plugin.call must be on or off");
    b->call_route = !call || !strcmp(call, "on");
    const char *delivery = h->config(h, "delivery");
    if (delivery && strcmp(delivery, "online") != 0 && strcmp(delivery, "queued") != 0)
        return adp_plugin_fail(err, err_size, "plugin.delivery must be online or queued");
    b->request_flags = delivery && !strcmp(delivery, "queued") ? 0 : ADP_ONLINE_ONLY;

    char routes[BRIDGE_MAX_ROUTES][BRIDGE_NAME_MAX + 1];
    char offers[BRIDGE_MAX_OFFERS][BRIDGE_NAME_MAX + 1];
    size_t n_routes = 0, n_offers = 0;
    if ((rc = bridge_names("routes", h->config(h, "routes"), routes, BRIDGE_MAX_ROUTES, &n_routes,
                           err, err_size)) != 0 ||
        (rc = bridge_names("offers", h->config(h, "offers"), offers, BRIDGE_MAX_OFFERS, &n_offers,
                           err, err_size)) != 0)
        return rc;
    for (size_t i = 0; i < n_routes; i++)
        for (size_t k = 0; k < n_offers; k++)
            if (!strcmp(routes[i], offers[k]))
                return adp_plugin_fail(
                    err, err_size,
                    "'%s' names both a route and an offer: plugin.map.%s.* would "
                    "apply to both; rename one",
                    routes[i], routes[i]);
    for (size_t i = 0; i < n_routes; i++)
        if ((rc = bridge_route(b, routes[i], err, err_size)) != 0)
            return rc;
    for (size_t i = 0; i < n_offers; i++)
        if ((rc = bridge_offer(b, offers[i], err, err_size)) != 0)
            return rc;

    const char *listen = h->config(h, "listen");
    if (!listen)
        listen = "127.0.0.1:8088";
    if (strcmp(listen, "off") != 0) {
        const char *token_file = h->config(h, "token_file");
        if (token_file && (rc = bridge_token(b, token_file, err, err_size)) != 0)
            return rc;
        /* Room for every request in flight, and some to be told 503. */
        lth_httpd_config_t hc = {.max_body_bytes = max_body,
                                 .max_connections = (uint32_t)b->max_in_flight + 16};
        rc = bridge_tls(b, &hc, err, err_size);
        if (rc == 0)
            rc = lth_httpd_new(listen, &hc, bridge_on_http, b, &b->httpd, err, err_size);
        bridge_tls_free(&hc);
        if (rc != 0)
            return rc;
        bool client_certs = false;
        lth_httpd_tls(b->httpd, &client_certs);
        if (!lth_httpd_loopback(b->httpd) && !b->token[0] && !client_certs)
            return adp_plugin_fail(
                err, err_size,
                "plugin.listen %s is not a loopback address: set "
                "plugin.token_file (or plugin.tls_client_ca) so that only callers "
                "with the token (or a client certificate) get in",
                listen);
        const char *port_file = h->config(h, "port_file");
        if (port_file) {
            snprintf(b->port_file, sizeof b->port_file, "%s", port_file);
            if ((rc = bridge_write_port(b, err, err_size)) != 0) {
                b->port_file[0] = '\0';
                return rc;
            }
        }
    } else if (!n_offers) {
        return adp_plugin_fail(err, err_size,
                               "plugin.listen = off and no plugin.offers: this bridge would do "
                               "nothing");
    }
    return 0;
}

static int bridge_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    bridge_t *b = state;
    b->host = host;
    if (lth_httpc_global_init() != 0) {
        snprintf(err, err_size, "libcurl failed to initialise");
        return HUB_EIO;
    }
    b->curl_ready = true;
    int rc = bridge_settings(b, err, err_size);
    if (rc != 0)
        return rc;
    bool client_certs = false;
    bool tls = b->httpd && lth_httpd_tls(b->httpd, &client_certs);
    if (b->httpd)
        adp_plugin_log(
            b->host, ADP_LOG_INFO,
            "listening on port %d (%s%s, %s/route/); %zu route%s, %zu offered service%s, "
            "hub timeout %u ms, %zu requests in flight at most",
            lth_httpd_port(b->httpd), tls ? "HTTPS" : "HTTP",
            client_certs ? " with client certificates" : "", b->call_route ? "/call/ and " : "",
            b->n_routes, b->n_routes == 1 ? "" : "s", b->n_offers, b->n_offers == 1 ? "" : "s",
            (unsigned)b->hub_timeout_ms, b->max_in_flight);
    for (size_t i = 0; i < b->n_offers; i++)
        adp_plugin_log(b->host, ADP_LOG_INFO,
                       "offer %s: %s -> POST %s (%s), timeout %u ms, %u retries",
                       b->offers[i].map.name, b->offers[i].service, b->offers[i].url,
                       b->offers[i].map.type ? b->offers[i].map.type->short_name : "JSON",
                       (unsigned)b->http.timeout_ms, (unsigned)b->http.retries);
    char auth[96];
    if (b->n_offers)
        adp_plugin_log(b->host, ADP_LOG_INFO, "outbound authentication: %s",
                       lth_httpc_auth_describe(b->http.auth, auth, sizeof auth));
    return 0;
}

static int bridge_tick(void *state, adp_client_t *client)
{
    bridge_t *b = state;
    b->client = client;
    if (!b->httpd)
        return 0;
    uint64_t end = bridge_now_ms() + BRIDGE_SLICE_MS;
    do {
        if (lth_httpd_serve(b->httpd, b->poll_ms) == HUB_EAGAIN)
            break; /* a signal: let the runtime look at its flags */
        adp_run(client, 0);
        bridge_poll_pending(b);
    } while (bridge_now_ms() < end);
    return 0;
}

ADP_PLUGIN_DEFINE_STATE("httpbridge",
                        "generic HTTP bridge: JSON over HTTP in and out, mapped to hub messages",
                        bridge_t, bridge_start, bridge_tick, bridge_destroy);
