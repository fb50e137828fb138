/* hub_ops_source — what the operator surface (HTTP API, /metrics, the
 * dashboard) may read from, and ask of, the running hub.
 *
 * The server fills a hub_ops_source_t with callbacks over its own state;
 * hub_ops (the HTTP side) calls them on the loop thread only, while serving
 * a request, and copies what it needs: pointers handed to visitors are valid
 * only during the visit. No callback blocks for long except the DLQ
 * mutations, which commit one store transaction.
 */
#ifndef HUB_OPS_SOURCE_H
#define HUB_OPS_SOURCE_H

#include "hub_audit.h"
#include "hub_flows.h"
#include "hub_server.h"
#include "hub_tsa.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *member_id;
    bool known;                  /* its key is in the key directory */
    bool online;
    uint64_t connected_at_us;    /* wall clock of the last Hello; 0 if never */
    uint64_t last_seen_us;       /* wall clock of the last frame; 0 if never */
    const char *address;         /* peer address of the connection, "" if unknown */
    const char *services;        /* offered, comma-separated */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    uint64_t in_flight;          /* delivered, not yet settled */
    uint64_t refusals;           /* its envelopes refused since the hub started */
    uint64_t cert_not_after_us;  /* its certificate's end; 0 = none (development mode) */
    uint64_t store_waiting;      /* its durable envelopes waiting for the store (its share) */
} hub_ops_member_t;

typedef struct {
    const char *receiver;
    uint64_t depth;              /* queued in the store (in flight included) */
    uint64_t oldest_accepted_us; /* wall clock; 0 if empty */
    uint64_t in_flight;
} hub_ops_queue_t;

/* The audit log's head and time-stamping, for /api/v1/audit/head. */
typedef struct {
    bool on;                     /* the audit log is kept */
    uint64_t seq;                /* the last record */
    hub_audit_head_t head;       /* the last durable checkpoint */
    uint8_t sign_public[32];     /* the key that signs it */
    uint64_t gap;                /* records found missing at start, accepted */
    uint64_t tampered_seq;       /* the start check of the whole log failed there; 0 = fine */
    bool tsa_on;                 /* time-stamping configured */
    hub_tsa_state_t tsa;
} hub_ops_audit_t;

typedef void (*hub_ops_member_visit)(const hub_ops_member_t *m, void *user);

/* A hubd node sharing this hub's store (cluster = on), for /api/v1/nodes;
 * one node alone lists itself. */
typedef struct {
    const char *id;
    const char *endpoint;     /* where members connect to it */
    uint64_t heartbeat_at_us; /* its last heartbeat in the store (now for one node alone) */
    uint32_t members;         /* members connected to it */
    bool alive;               /* heartbeat within three periods */
    bool self;                /* the node answering */
} hub_ops_node_t;
typedef void (*hub_ops_node_visit)(const hub_ops_node_t *n, void *user);
typedef void (*hub_ops_queue_visit)(const hub_ops_queue_t *q, void *user);

/* Several nodes (cluster = on): a node whose counts /api/v1/flows and
 * /api/v1/delegations add up, and the moment they are of. */
typedef struct {
    const char *id;
    uint64_t as_of_us; /* when it last wrote them (now for the node answering) */
    bool self;         /* the node answering (its live counters) */
} hub_ops_count_node_t;
typedef void (*hub_ops_count_node_visit)(const hub_ops_count_node_t *n, void *user);

typedef struct {
    void *ctx;
    /* Every member known from the key directory or seen connected. */
    void (*members)(void *ctx, hub_ops_member_visit visit, void *user);
    void (*queues)(void *ctx, hub_ops_queue_visit visit, void *user);
    void (*stats)(void *ctx, hub_server_stats_t *out);
    /* Store usage; audit sequence (0 when the audit log is off). */
    void (*usage)(void *ctx, uint64_t *store_used, uint64_t *store_max, uint64_t *dead_letters,
                  uint64_t *audit_seq);
    /* Readiness: store open, socket bound, keys loaded. */
    bool (*ready)(void *ctx, const char **why_not);
    /* The store itself, for DLQ listing (read-only transactions). */
    struct hub_store *(*store)(void *ctx);
    /* DLQ mutations through the hub, so that it delivers replayed messages
     * and records them in the audit log. Return 0, HUB_ENOTFOUND, or an error. */
    int (*dlq_replay)(void *ctx, uint64_t seq);
    int (*dlq_purge)(void *ctx, uint64_t seq);
    int (*dlq_purge_older)(void *ctx, uint64_t before_us, uint64_t *purged);
    void (*audit)(void *ctx, hub_ops_audit_t *out);
    /* The nodes of the hub (may be NULL: none listed). */
    void (*nodes)(void *ctx, hub_ops_node_visit visit, void *user);
    /* The delegation rules in force, with their use counts (NULL: none). */
    const struct hub_delegations *(*delegations)(void *ctx);
    /* Several nodes; NULL for one node alone, whose live counters are the
     * whole answer. count_nodes: the nodes whose counts are added up.
     * flow_counts: flow counts beyond this process's live ones (other
     * nodes', and this node's from before it started), one visit per node
     * and flow, zero windows. delegation_counts: the same for a rule
     * (hub_delegation_info_key) and procedure ("" = the whole rule). */
    void (*count_nodes)(void *ctx, hub_ops_count_node_visit visit, void *user);
    void (*flow_counts)(void *ctx, hub_flows_visit visit, void *user);
    void (*delegation_counts)(void *ctx, const char *rule_key, const char *procedure,
                              uint64_t *carried, uint64_t *last_used_us);
} hub_ops_source_t;

#endif
