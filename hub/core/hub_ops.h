/* hub_ops — the operator surface of a running hub over HTTP, on the hub's
 * own libuv loop: health, Prometheus metrics, a JSON API and a live
 * dashboard page (served from the binary; no outside assets).
 *
 * Routes (GET unless said; JSON unless said):
 *   /healthz                  alive: 200 {"status":"ok"}
 *   /readyz                   200 when the store is open, sockets bound and
 *                             keys loaded: {"status":"ready"}, or, while
 *                             alarms hold, {"status":"degraded","alarms":[...]}
 *                             (still 200: the hub serves); 503
 *                             {"status":"not ready","reason":...}
 *   /metrics                  Prometheus text format 0.0.4 (see below)
 *   /api/v1/status            hub-wide figures; "health" ("ok", "degraded") and
 *                             "alarms": each with level, code, subject (member
 *                             id or ""), name (agency), value, limit, reason
 *   /api/v1/members           every member: state (connected, offline, or removed:
 *                             seen, but its key has left the key directory),
 *                             last seen, address, messages and bytes in and out
 *   /api/v1/flows             per sender-receiver-service: counts, errors, latency
 *                             percentiles over the last minute and hour
 *   /api/v1/queues            per receiver: depth, in flight, oldest age
 *   /api/v1/exchanges         ?limit=N (1..1000, default 100) &member=ID:
 *                             recent exchanges, newest first; metadata only
 *   /api/v1/throughput        hub-wide counts per second, last 300 s
 *   /api/v1/dlq               token; ?after=SEQ&limit=N (1..1000, default 100)
 *   /api/v1/dlq/SEQ           token; ?payload=1 adds the payload, base64
 *   POST /api/v1/dlq/SEQ/replay          token
 *   POST /api/v1/dlq/SEQ/purge           token
 *   POST /api/v1/dlq/purge?older_than_s=N  token
 *   /, /dashboard.css, /dashboard.js     the dashboard
 *   /i18n.json                ?lang=vi|en: the dashboard's strings in that
 *                             language; without lang, in the configured one
 * Answers: 401 (with WWW-Authenticate: Bearer) for a missing or wrong token,
 * 403 when no token is configured (then the DLQ is closed over HTTP), 404
 * for unknown paths or dead letters, 405 (with Allow) for a wrong method,
 * 400 with {"error": "..."} naming the bad parameter. A POST body, if any,
 * must be empty or a JSON object (else 400), so a client's mistakes show.
 * The token is never accepted in the URL: only "Authorization: Bearer".
 *
 * With public_api, which an address other than loopback (127.0.0.0/8,
 * ::1, localhost) implies and which hubd allows only with
 * `http_public = yes`, every /api/ route and /metrics need the token too
 * (they name members, addresses and message ids), and hub_ops_new()
 * refuses to start without one; /healthz, /readyz and the dashboard's
 * static files stay open.
 *
 * /metrics holds, besides the families hub_flows registers: members
 * (lth_members_known, lth_members_connected, lth_member_connected{member}),
 * queues (lth_queue_depth, lth_queue_in_flight,
 * lth_queue_oldest_age_seconds, by receiver), lth_dead_letters, store size
 * (lth_store_used_bytes, lth_store_max_bytes), lth_audit_sequence, the
 * server's counters (lth_hub_*_total, refusals by NACK code), the HTTP
 * server's own figures (lth_http_*), and process figures
 * (process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_cpu_seconds_total,
 * process_start_time_seconds), and the alarms (lth_alarm{code,subject,level}:
 * 1 while the alarm holds at that level, 0 after; lth_alarms_active{level}).
 * Member and receiver labels come from the
 * source's member and queue lists, never from requests.
 *
 * Life cycle: hub_ops_new() binds (so a bad address fails at start-up);
 * hub_ops_close() stops accepting and closes every connection, calling back
 * once the handles are closed; hub_ops_destroy() frees (closing first if
 * needed; then run the loop before uv_loop_close()).
 *
 * Ownership: the configuration is copied. src, flows and metrics are
 * borrowed and must outlive the hub_ops (flows may be NULL: no flow figures;
 * metrics may be NULL: hub_ops makes its own registry).
 *
 * Errors: HUB_EINVAL (bad address or argument), HUB_EEXIST (address in
 * use), HUB_EPERM, HUB_ENOMEM, HUB_EIO; err says what to do.
 *
 * Not thread-safe: the loop thread only, like every source callback.
 */
#ifndef HUB_OPS_H
#define HUB_OPS_H

#include "hub_alarms.h"
#include "hub_flows.h"
#include "hub_http.h"
#include "hub_metrics.h"
#include "hub_ops_source.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define HUB_OPS_TOKEN_MAX 256

typedef struct hub_ops hub_ops_t;

typedef struct {
    const char *listen;       /* "127.0.0.1:8080", "[::1]:8080", "localhost:0" */
    const char *token;        /* bearer token for the DLQ; NULL or "" = DLQ closed */
    hub_http_config_t http;   /* limits; zeros are hub_http's defaults */
    /* Host names (comma-separated) besides "localhost" by which clients may
     * address the endpoint; requests naming another host get 421, so that
     * a web page cannot read the API through DNS rebinding. IP literals
     * are always accepted. NULL or "" = none. */
    const char *allowed_hosts;
    /* The endpoint faces the network (hubd's http_public = yes): every
     * /api/ route and /metrics need the token. Implied by a listen address
     * other than loopback. */
    bool public_api;
    /* Operators' language when a request does not name one: "vi" or "en";
     * NULL = the site default (below), else "vi". */
    const char *lang;
    /* Member directory (hub_memberdir.h): names beside ids in
     * /api/v1/members; a bad file fails hub_ops_new(). NULL = the site
     * default, "" = none. */
    const char *members_file;
    /* Alarm thresholds (hub_alarms.h); copied. NULL = the defaults. */
    const hub_alarm_thresholds_t *alarms;
    /* This node's name (hubd.conf node_id), on /metrics as
     * lth_node_info{node_id} 1, so that series of several nodes can be told
     * apart and added up. NULL or "" = none. */
    const char *node_id;
} hub_ops_config_t;

/* The language and member directory that hub_ops_new() takes when the
 * configuration leaves them NULL: hubd sets them from its configuration
 * file before it starts the server. Copied. */
void hub_ops_site_defaults(const char *lang, const char *members_file);

typedef void (*hub_ops_closed_cb)(void *user);

int hub_ops_new(uv_loop_t *loop, const hub_ops_config_t *cfg, const hub_ops_source_t *src,
                hub_flows_t *flows, hub_metrics_t *metrics, hub_ops_t **out, char *err,
                size_t err_size);
/* Evaluates the alarms from the source's figures and logs their
 * transitions; the hub calls it about once a second. */
void hub_ops_tick(hub_ops_t *self);

/* Re-reads the member directory's file (members_file), as on SIGHUP. On a
 * bad file (err says which line and what to write instead) the directory
 * in use is kept and the error returned; 0 when there is no file. Entries
 * found before the call are freed by it: callers look names up per use. */
int hub_ops_reload_directory(hub_ops_t *self, char *err, size_t err_size);

/* The bound port (the real one when the configuration said 0). */
int hub_ops_port(const hub_ops_t *self);
/* "127.0.0.1:PORT" as bound, e.g. for a ready file. */
const char *hub_ops_address(const hub_ops_t *self);
/* Stops serving; on_closed (may be NULL) runs once every handle is closed.
 * HUB_ECLOSED if already closing. */
int hub_ops_close(hub_ops_t *self, hub_ops_closed_cb on_closed, void *user);
void hub_ops_destroy(hub_ops_t **self_p);

/* True when listen ("HOST:PORT") is on a loopback address: 127.0.0.0/8,
 * [::1] or localhost. False for anything else, 0.0.0.0 and [::] included. */
bool hub_ops_listen_is_loopback(const char *listen);

/* Reads an operator token file: the first line, surrounding whitespace
 * trimmed; refuses a file that group or others may read (HUB_EPERM), an
 * empty token or one longer than HUB_OPS_TOKEN_MAX (HUB_EINVAL), or a
 * token with characters outside the visible ASCII range (HUB_EINVAL).
 * token must hold HUB_OPS_TOKEN_MAX + 1 bytes. */
int hub_ops_read_token_file(const char *path, char *token, size_t token_size, char *err,
                            size_t err_size);

#endif
