/* ndxp — the NDXP gateway: the city hub's member for national services.
 * It offers citizen.lookup/v1 and citizen.verify/v1 on the hub, with the
 * population plugin's messages and rules (lth_lookup.h, lth_verify.h,
 * fields by purpose from lth_disclose.h), and answers them by asking the
 * national data-sharing platform's REST interface (ndxp_upstream.h): OAuth2
 * client credentials, mutual TLS, retries with backoff and jitter within the
 * request's TTL. Run it under the member id callers address for the
 * population database (VN/GOV/BCA/CSDLQGDC) instead of the population
 * plugin, and look-ups go through the national platform.
 *
 * Config (hub-adapter's plugin.* settings; deploy/adapters/ndxp.conf):
 *   plugin.base_url = https://…        the platform's population interface (required)
 *   plugin.oauth2_token_url, plugin.oauth2_client_id,
 *   plugin.oauth2_client_secret_file, plugin.oauth2_scope
 *   plugin.http_client_cert, plugin.http_client_key, plugin.http_ca_file (required)
 *   plugin.timeout_ms, plugin.retries, plugin.backoff_ms, plugin.backoff_max_ms
 *   plugin.max_call_ms = N             longest answer time when the request's
 *                                      TTL allows more (default 4000)
 *   plugin.disclosure_file = PATH      fields by purpose, as for the population plugin
 *
 * Failures of the platform are answered, not dropped: RESPONSE_STATUS_UNAVAILABLE
 * with a reason whose first word is an lth.v1.NackCode name (proto/DOMAIN.md,
 * "The NDXP gateway", has the mapping from HTTP). Logs hold member ids,
 * counts, HTTP statuses, attempts and times: never a personal ID number, a
 * name, a token or the client secret.
 */
#include "adp_plugin_util.h"
#include "hub_error.h"
#include "hub_id.h"
#include "lth_httpc.h"
#include "lth_lookup.h"
#include "lth_verify.h"
#include "ndxp_upstream.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define NDXP_MAX_NESTING 8       /* calls in progress at once (nested deliveries) */
#define NDXP_REPLY_MARGIN_MS 100 /* answer this long before the request's TTL ends */
#define NDXP_DEFAULT_MAX_CALL_MS 4000

typedef struct {
    const adp_plugin_host_t *host;
    adp_client_t *client;
    ndxp_upstream_t *upstream;
    lth_disclosure_t *disclosure;
    bool curl_ready; /* lth_httpc_global_init() done: destroy() undoes it */
    uint32_t max_call_ms;
    int depth;
    char in_flight[NDXP_MAX_NESTING][HUB_MEMBER_ID_MAX + 40];
    unsigned long long requests, failed;
} ndxp_t;

static const char *ndxp_config(void *user, const char *key)
{
    const adp_plugin_host_t *host = user;
    return host->config(host, key);
}

static void ndxp_idle(void *user)
{
    ndxp_t *g = user;
    if (g->client)
        adp_run(g->client, 0); /* heartbeats, receipts, other deliveries */
}

/* The time to answer by: the request's TTL (less a margin), at most
 * max_call_ms from now. */
static uint64_t ndxp_deadline(const ndxp_t *g, const adp_message_t *msg)
{
    uint64_t now = lth_httpc_now_ms();
    uint64_t budget = g->max_call_ms;
    if (msg->ttl_ms) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        uint64_t wall_ms = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
        uint64_t ends_ms = msg->created_at_us / 1000u + msg->ttl_ms;
        uint64_t left =
            ends_ms > wall_ms + NDXP_REPLY_MARGIN_MS ? ends_ms - wall_ms - NDXP_REPLY_MARGIN_MS : 1;
        if (left < budget)
            budget = left;
    }
    return now + budget;
}

typedef int (*ndxp_answer_fn)(const lth_source_t *src, const lth_lookup_policy_t *policy,
                              const char *content_type, const uint8_t *payload, size_t payload_len,
                              uint8_t **out, size_t *out_len, void *counts);

static int ndxp_lookup_answer(const lth_source_t *src, const lth_lookup_policy_t *policy,
                              const char *content_type, const uint8_t *payload, size_t payload_len,
                              uint8_t **out, size_t *out_len, void *counts)
{
    return lth_lookup_answer_from(src, policy, content_type, payload, payload_len, out, out_len,
                                  counts);
}

static int ndxp_verify_answer(const lth_source_t *src, const lth_lookup_policy_t *policy,
                              const char *content_type, const uint8_t *payload, size_t payload_len,
                              uint8_t **out, size_t *out_len, void *counts)
{
    return lth_verify_answer_from(src, policy, content_type, payload, payload_len, out, out_len,
                                  counts);
}

/* One request of either service, answered through the platform. */
static int ndxp_handle(ndxp_t *g, adp_client_t *client, const adp_message_t *msg,
                       adp_reply_t *reply, const char *service, ndxp_answer_fn answer, void *counts,
                       const char *response_type, size_t *subjects, int *status)
{
    g->client = client;
    if (msg->kind != ADP_REQUEST) {
        adp_plugin_log(g->host, ADP_LOG_INFO, "%s: ignored a message that is not a request (from %s)", service,
                 msg->sender);
        return 0;
    }
    char key[sizeof g->in_flight[0]];
    snprintf(key, sizeof key, "%s %s", msg->sender, msg->message_id);
    for (int i = 0; i < g->depth; i++)
        if (!strcmp(g->in_flight[i], key)) {
            adp_plugin_log(g->host, ADP_LOG_DEBUG, "%s: a redelivery of a call in progress, dropped", service);
            return HUB_EAGAIN; /* no second reply: the first one is coming */
        }
    if (g->depth >= NDXP_MAX_NESTING) {
        adp_plugin_log(g->host, ADP_LOG_WARN, "%s: %d calls in progress; one from %s waits for the hub's redelivery",
                 service, g->depth, msg->sender);
        return ADP_LATER;
    }
    ndxp_call_t call = {
        .upstream = g->upstream,
        .deadline_ms = ndxp_deadline(g, msg),
        .message_id = msg->message_id,
        .idle = ndxp_idle,
        .idle_user = g,
    };
    lth_source_t source = ndxp_source(&call);
    lth_lookup_policy_t policy = {true, msg->sender, g->disclosure};
    uint8_t *out = NULL;
    size_t out_len = 0;
    uint64_t t0 = lth_httpc_now_ms();
    snprintf(g->in_flight[g->depth++], sizeof g->in_flight[0], "%s", key);
    int rc = answer(&source, &policy, msg->content_type, msg->payload, msg->payload_len, &out,
                    &out_len, counts);
    g->depth--;
    if (rc != 0) {
        adp_plugin_log(g->host, ADP_LOG_ERROR, "%s: cannot answer a request from %s: %s", service, msg->sender,
                 hub_strerror(rc));
        return rc;
    }
    adp_plugin_reply(reply, out, out_len, response_type);
    g->requests++;
    if (call.code[0])
        g->failed++;
    static const char *const status_name[] = {"ok", "invalid", "unavailable"};
    const char *st = *status >= 0 && *status <= 2 ? status_name[*status] : "?";
    /* Counts, statuses and member ids only: never a key, a name or a value. */
    adp_plugin_log(g->host, call.code[0] ? ADP_LOG_WARN : ADP_LOG_DEBUG,
             "%s from %s: status=%s%s%s subjects=%zu upstream_calls=%u attempts=%u "
             "not_found=%u last_http=%ld in %" PRIu64 " ms",
             service, msg->sender, st, call.code[0] ? " code=" : "", call.code, *subjects,
             call.calls, call.attempts, call.not_found, call.last_status, lth_httpc_now_ms() - t0);
    return 0;
}

static int ndxp_lookup(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                       void *user)
{
    lth_lookup_counts_t n;
    memset(&n, 0, sizeof n);
    return ndxp_handle(user, client, msg, reply, "citizen.lookup", ndxp_lookup_answer, &n,
                       LTH_LOOKUP_RESPONSE_TYPE, &n.keys, &n.status);
}

static int ndxp_verify(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                       void *user)
{
    lth_verify_counts_t n;
    memset(&n, 0, sizeof n);
    return ndxp_handle(user, client, msg, reply, "citizen.verify", ndxp_verify_answer, &n,
                       LTH_VERIFY_RESPONSE_TYPE, &n.subjects, &n.status);
}

static void ndxp_destroy(void *state)
{
    ndxp_t *g = state;
    if (!g)
        return;
    ndxp_upstream_destroy(&g->upstream);
    lth_disclosure_destroy(&g->disclosure);
    if (g->curl_ready)
        lth_httpc_global_cleanup();
    free(g);
}

static int ndxp_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    ndxp_t *g = state;
    g->host = host;
    int rc = lth_httpc_global_init();
    if (rc != 0) {
        snprintf(err, err_size, "libcurl could not be initialised");
        return rc;
    }
    g->curl_ready = true;
    uint64_t max_call_ms = 0;
    rc = adp_plugin_conf_u64(host, "max_call_ms", 100, 600000, NDXP_DEFAULT_MAX_CALL_MS,
                             &max_call_ms, err, err_size);
    g->max_call_ms = (uint32_t)max_call_ms;
    if (rc == 0)
        rc = ndxp_upstream_new(ndxp_config, (void *)host, &g->upstream, err, err_size);
    if (rc == 0)
        rc = lth_disclosure_setting(host->config(host, "disclosure_file"), &g->disclosure, err, err_size);
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_CITIZEN_LOOKUP, ndxp_lookup, g);
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_CITIZEN_VERIFY, ndxp_verify, g);
    if (rc != 0)
        return rc;
    char desc[1024];
    adp_plugin_log(g->host, ADP_LOG_INFO, "NDXP gateway: citizen.lookup/v1 and citizen.verify/v1 through %s",
             ndxp_upstream_describe(g->upstream, desc, sizeof desc));
    if (g->disclosure)
        adp_plugin_log(g->host, ADP_LOG_INFO, "fields by purpose: %zu rules from plugin.disclosure_file",
                 lth_disclosure_count(g->disclosure));
    else
        adp_plugin_log(
            g->host, ADP_LOG_WARN,
            "no plugin.disclosure_file: every caller receives what the national platform "
            "returns, whatever its purpose; set one to return only the fields each "
            "purpose may have");
    return 0;
}

ADP_PLUGIN_DEFINE_STATE("ndxp",
                        "NDXP gateway: citizen.lookup/v1 and citizen.verify/v1 through the "
                        "national data-sharing platform",
                        ndxp_t, ndxp_start, NULL, ndxp_destroy);
