/* hub_cluster_counts — what the flows and the delegation rules counted, for
 * the whole hub when several nodes share one store (hub_cluster.h).
 * PRIVATE to hub_cluster*.c.
 *
 * Each node keeps its counters in memory (hub_flows, hub_delegations) and
 * writes them, cumulative, to hub_flow_counts and hub_delegation_counts
 * (schema migration 2), keyed by its node_id, in the statement its beat
 * sends: one statement a beat, only the rows that changed, never one per
 * message. The same beat reads what the other nodes wrote since it last
 * looked (each node's writes carry a revision: hub_count_nodes.rev). A
 * node that restarts reads its own rows first and adds its new counts to
 * them, so a count never goes back; a dead node's rows stay counted.
 * /api/v1/flows and /api/v1/delegations add up this node's live counters
 * and every row kept here (cluster__flow_counts, ...).
 *
 * Loop thread only; the connection is hub_cluster.c's (non-blocking once
 * the node has started).
 */
#ifndef HUB_CLUSTER_COUNTS_H
#define HUB_CLUSTER_COUNTS_H

#include <libpq-fe.h>

#include <stdbool.h>
#include <stddef.h>

typedef struct hub_server hub_server_t;
typedef struct cluster__counts cluster__counts_t;

/* The node's counts (hub_cluster.c); NULL without a cluster. */
cluster__counts_t *cluster__counts_of(hub_server_t *self);
/* At start, blocking on c: this node's earlier rows (its base) and the
 * nodes' revisions. */
int cluster_counts__start(hub_server_t *self, PGconn *c, cluster__counts_t **out, char *err,
                          size_t err_size);
void cluster_counts__destroy(cluster__counts_t **self_p);
/* The beat's statements (malloc'ed; NULL when out of memory): this node's
 * write, then the reads of what the others wrote. */
char *cluster_counts__beat_sql(cluster__counts_t *cc, hub_server_t *self, PGconn *conn);
/* A result of the beat: true when it was one of ours (consumed). */
bool cluster_counts__result(cluster__counts_t *cc, const PGresult *res);
/* The beat failed or the connection broke: what was not confirmed is
 * written and read again next time. */
void cluster_counts__failed(cluster__counts_t *cc);

#endif
