/* hub_server — hubd itself: one libuv loop that owns the CURVE ROUTER socket,
 * the ZAP handler, the key directory, the member table, the store and the
 * timers, and routes envelopes between members.
 *
 * Life cycle: hub_server_new() checks the configuration, keys and store and
 * binds the sockets (so every start-up error is reported before the loop
 * runs); hub_server_run() runs the loop until SIGTERM/SIGINT or
 * hub_server_stop(); hub_server_destroy() releases everything.
 *
 * Delivery: an envelope is ACKed to its sender only after the store has
 * committed it (group commit on a worker thread, one transaction per loop
 * turn); envelopes marked DELIVERY_ONLINE_ONLY skip the store and are refused
 * at once when their receiver is not connected. See proto/README.md.
 */
#ifndef HUB_SERVER_H
#define HUB_SERVER_H

#include "hub_config.h"

#include <stdint.h>
#include <uv.h>

typedef struct hub_server hub_server_t;

typedef struct {
    uint64_t frames_in;          /* ZeroMQ messages received */
    uint64_t envelopes_accepted; /* ACKed (stored, or forwarded if online-only) */
    uint64_t envelopes_nacked;
    uint64_t deliveries;         /* envelopes sent to receivers, redeliveries included */
    uint64_t redeliveries;
    uint64_t settled;
    uint64_t dead_lettered;
    uint64_t duplicates;         /* retries answered with the original ACK */
    uint64_t malformed_frames;
    uint64_t frames_dropped_unread; /* Batch frames from members that do not read their receipts */
    uint64_t keys_refused;       /* ZAP refusals */
    uint64_t members_cut_off;    /* connections closed for flooding (hub_flood.c) */
    uint64_t commits;            /* store transactions */
    uint64_t nacks_by_code[32];
} hub_server_stats_t;

/* Creates the server on `loop` (the caller's). On failure returns a HUB_E*
 * code and a sentence in err saying what to do. */
int hub_server_new(uv_loop_t *loop, const hub_config_t *cfg, hub_server_t **out, char *err,
                   size_t err_size);
/* The endpoint actually bound (with the real port when the config said '*'). */
const char *hub_server_endpoint(const hub_server_t *self);
/* "host:port" of the operator HTTP endpoint, or NULL when it is off. */
const char *hub_server_http_address(const hub_server_t *self);
/* Runs the loop until stopped; returns 0 after a clean shutdown. */
int hub_server_run(hub_server_t *self);
/* Asks the loop to shut down cleanly (safe from the loop thread only). */
void hub_server_stop(hub_server_t *self);
/* Re-reads the key directory; on error keeps the old one and returns it. */
int hub_server_reload_keys(hub_server_t *self, char *err, size_t err_size);
void hub_server_get_stats(const hub_server_t *self, hub_server_stats_t *out);
void hub_server_destroy(hub_server_t **self_p);

#endif
