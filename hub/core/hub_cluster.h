/* hub_cluster — several active hubd nodes over one PostgreSQL store
 * (`cluster = on`, store = postgresql).
 *
 * Every node has the hub's key (members see one hub), its own node_id,
 * listen endpoint and data_dir (its own audit log). What they share lives
 * in the store's database; the tables below are created, if missing, by
 * the first node to start (hub_cluster_schema):
 *   hub_nodes      node_id -> endpoint, heartbeat, members connected, the
 *                  block of seqs it hands out
 *   hub_locations  member -> node_id, connected_at, expires_at: where each
 *                  member is connected. A node renews its entries every
 *                  cluster_beat_ms; a dead node's entries expire after
 *                  three beats. The newer connection of a member wins.
 *   hub_anchors    node_id -> the audit anchor of that node's log
 * and two triggers on hub_msgs send NOTIFY hub_queued (payload: the
 * receiver, hex) when messages become queued for a receiver (a commit on
 * any node, a dead letter replayed); one on hub_locations sends NOTIFY
 * hub_located when a member's row names a new connection (not at its
 * renewals), so that the other nodes know at once where a member that
 * has just connected is: a node writes that row at the member's Hello
 * (cluster__member_online), not at its next beat.
 *
 * What flows and delegation rules counted is added up over the nodes
 * (hub_cluster_counts.h: tables of schema migration 2, written and read
 * once a beat), so that /api/v1/flows and /api/v1/delegations answer for
 * the whole hub on every node.
 *
 * Delivery. A node delivers queued envelopes only to receivers connected
 * to it, so no two nodes deliver one envelope at once (a member is
 * connected to one node; when it moves, the node that lost it stops
 * delivering to it at the next beat). Each node hands out seqs from a
 * block of 2^40 it reserves in hub_meta at start, so seqs never collide;
 * a queue therefore holds seqs from several blocks out of acceptance
 * order across nodes, and a notified receiver's queue is read again from
 * its start, skipping what is in flight (delivery__pump).
 *
 * The loop thread never waits for the database: the node's own connection
 * (LISTEN, heartbeats) is non-blocking and watched with uv_poll; it is
 * opened again, without blocking, when it breaks, and then every online
 * receiver's queue is read again (notifications may have been missed).
 */
#ifndef HUB_CLUSTER_H
#define HUB_CLUSTER_H

#include "hub_ops_source.h"
#include "hub_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hub_server hub_server_t;

/* Seqs a node reserves at each start. */
#define HUB_CLUSTER_SEQ_BLOCK (1ull << 40)

/* The shared tables and triggers, idempotent (hub_store_pg_cluster.c). */
extern const char HUB_CLUSTER_SCHEMA[];

/* The application name a node's store connections carry ("hubd-NODE"),
 * which the trigger puts in each notification, so that a node skips its
 * own; and the store's DSN with it (malloc'ed; NULL when out of memory). */
void hub_cluster_app_name(const char *node_id, char *out, size_t size);
char *hub_cluster_store_dsn(const char *dsn, const char *node_id);

/* Makes a PostgreSQL store keep this node's audit anchor in hub_anchors
 * (each node has its own log). HUB_EINVAL for an LMDB store. */
int hub_store_pg_cluster_attach(hub_store_t *store, const char *node_id);

/* hub_cluster.c (loop thread). _start: at hub_server_new, after the store
 * is open (blocking, once): the tables, the node's seq block
 * (self->next_seq), its row, LISTEN. _watch: once the loop's handles are
 * set up. _close: with the other handles. _destroy: frees. */
int cluster__start(hub_server_t *self, char *err, size_t err_size);
int cluster__watch(hub_server_t *self, char *err, size_t err_size);
void cluster__close(hub_server_t *self);
void cluster__destroy(hub_server_t *self);
/* Online-only forwarding: sends an admitted envelope over the link to the
 * node where `receiver` is connected (as the last beat saw it); false when
 * it is on none that has a link, or the link is full. */
bool cluster__forward(hub_server_t *self, const char *receiver, const uint8_t *bytes, size_t len);
/* True when the last beat saw `member` connected to another node that has
 * a link. */
bool cluster__located(hub_server_t *self, const char *member);
/* True when the last beat saw `member` connected to another node; its
 * services there into *services (may be NULL; valid until the next beat). */
bool cluster__elsewhere(hub_server_t *self, const char *member, const char **services);
/* The nodes hub_nodes lists, as the last beat read them (/api/v1/nodes). */
void cluster__nodes(hub_server_t *self, hub_ops_node_visit visit, void *user);
/* What flows and delegation rules counted beyond this process's live
 * counters (hub_cluster_counts.h; the callbacks of hub_ops_source_t). */
void cluster__count_nodes(hub_server_t *self, hub_ops_count_node_visit visit, void *user);
void cluster__flow_counts(hub_server_t *self, hub_flows_visit visit, void *user);
void cluster__delegation_counts(hub_server_t *self, const char *rule_key, const char *procedure,
                                uint64_t *carried, uint64_t *last_used_us);
/* A member has just connected here: its location is written at once (not
 * at the next beat), and the other nodes hear of it by NOTIFY. */
void cluster__member_online(hub_server_t *self, const char *member);
/* This node's subscriptions changed: written to the store at the next beat. */
void cluster__subs_changed(hub_server_t *self);
/* ZAP: a connection to the cluster link with the hub's own key. */
bool cluster__is_self(const hub_server_t *self, const char *domain, size_t domain_len,
                      const char *z85);
/* hub_admit.c: what a queued envelope delivered here says about requests
 * (delivery__pump, cluster only). */
void admit__cluster_delivered(hub_server_t *self, const hub_store_msg_t *msg);
/* hub_admit.c: an envelope forwarded by another node for a member here. */
void admit__forwarded(hub_server_t *self, const char *receiver, const char *origin,
                      const uint8_t *bytes, size_t len);
/* An envelope from `member` came over the link from node_id: until the
 * next beat says otherwise, that is where it is (so that a reply goes back
 * even before the beats have seen the member connect). */
void cluster__came_from(hub_server_t *self, const char *member, const char *node_id);

#endif
