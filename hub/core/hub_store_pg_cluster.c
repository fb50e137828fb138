/* hub_store_pg_cluster.c — what the PostgreSQL store does for several
 * active nodes (hub_cluster.h): the shared tables and per-node audit
 * anchors. */
#include "hub_cluster.h"
#include "hub_store_pg_internal.h"

#include "hub_error.h"

#include <stdio.h>
#include <string.h>

const char HUB_CLUSTER_SCHEMA[] =
    "SELECT pg_advisory_xact_lock(7415015);"
    "CREATE TABLE IF NOT EXISTS hub_nodes ("
    "  node_id text PRIMARY KEY,"
    "  endpoint text NOT NULL DEFAULT '',"
    "  cluster_endpoint text NOT NULL DEFAULT '',"
    "  started_at_us bigint NOT NULL DEFAULT 0,"
    "  heartbeat_at timestamptz NOT NULL DEFAULT now(),"
    "  members integer NOT NULL DEFAULT 0,"
    "  seq_base bigint NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS hub_locations ("
    "  member bytea PRIMARY KEY,"
    "  node_id text NOT NULL,"
    "  connected_at_us bigint NOT NULL,"
    "  services text NOT NULL DEFAULT '',"
    "  expires_at timestamptz NOT NULL);"
    "CREATE TABLE IF NOT EXISTS hub_subscriptions ("
    "  id bigserial PRIMARY KEY,"
    "  member bytea NOT NULL,"
    "  topic text NOT NULL,"
    "  UNIQUE (member, topic));"
    "CREATE INDEX IF NOT EXISTS hub_locations_node ON hub_locations (node_id);"
    "CREATE TABLE IF NOT EXISTS hub_anchors ("
    "  node_id text PRIMARY KEY,"
    "  anchor_seq bigint NOT NULL,"
    "  anchor_hash bytea NOT NULL);"
    "CREATE OR REPLACE FUNCTION hub_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  PERFORM pg_notify('hub_queued', encode(r, 'hex') || ' ' ||"
    "                    coalesce(current_setting('application_name', true), ''))"
    "   FROM (SELECT DISTINCT receiver AS r FROM hub_new WHERE NOT dead) s;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE OR REPLACE FUNCTION hub_notify_requeued() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  PERFORM pg_notify('hub_queued', encode(r, 'hex') || ' ' ||"
    "                    coalesce(current_setting('application_name', true), ''))"
    "   FROM (SELECT DISTINCT n.receiver AS r FROM hub_new n WHERE NOT n.dead AND NOT EXISTS"
    "         (SELECT 1 FROM hub_old o WHERE o.seq = n.seq AND NOT o.dead)) s;"
    "  RETURN NULL;"
    " END $$;"
    /* A member's location that says something new (a new connection, on
     * this node or another), not a renewal: NOTIFY hub_located "MEMBER-HEX
     * NODE CONNECTED-AT-US NODE-LINK SERVICES" (link "-" when unknown;
     * services left out when they would not fit a notification; the next
     * beat brings them). */
    "CREATE OR REPLACE FUNCTION hub_notify_located() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF TG_OP = 'INSERT' OR OLD.node_id IS DISTINCT FROM NEW.node_id OR"
    "     OLD.connected_at_us IS DISTINCT FROM NEW.connected_at_us THEN"
    "   PERFORM pg_notify('hub_located', encode(NEW.member, 'hex') || ' ' || NEW.node_id || ' ' ||"
    "                     NEW.connected_at_us || ' ' || coalesce((SELECT "
    "nullif(n.cluster_endpoint, '')"
    "                     FROM hub_nodes n WHERE n.node_id = NEW.node_id), '-') || ' ' ||"
    "                     CASE WHEN octet_length(NEW.services) < 6000 THEN NEW.services"
    "                          ELSE '' END);"
    "  END IF;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE OR REPLACE TRIGGER hub_locations_located AFTER INSERT OR UPDATE ON hub_locations"
    " FOR EACH ROW EXECUTE FUNCTION hub_notify_located();"
    "CREATE OR REPLACE TRIGGER hub_msgs_queued AFTER INSERT ON hub_msgs"
    " REFERENCING NEW TABLE AS hub_new FOR EACH STATEMENT EXECUTE FUNCTION hub_notify_inserted();"
    "CREATE OR REPLACE TRIGGER hub_msgs_requeued AFTER UPDATE ON hub_msgs"
    " REFERENCING OLD TABLE AS hub_old NEW TABLE AS hub_new"
    " FOR EACH STATEMENT EXECUTE FUNCTION hub_notify_requeued();";

static int anchor_get(hub_store_t *store, uint64_t *seq, uint8_t hash[32])
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_str(&p, self->node_id);
    return store_pg__anchor_read(
        self, "SELECT anchor_seq, anchor_hash FROM hub_anchors WHERE node_id = $1::text", &p, seq,
        hash);
}

static int anchor_put(hub_store_t *store, uint64_t seq, const uint8_t hash[32])
{
    HUB__PG_SELF;
    store_pg__params_t p = {0};
    store_pg_conn__pg_p_str(&p, self->node_id);
    store_pg_conn__pg_p_i64(&p, seq);
    store_pg_conn__pg_p_bytes(&p, hash, 32);
    return store_pg__write1(self,
                            "INSERT INTO hub_anchors (node_id, anchor_seq, anchor_hash) "
                            "VALUES ($1::text, $2::int8, $3::bytea) ON CONFLICT (node_id) DO "
                            "UPDATE SET anchor_seq = EXCLUDED.anchor_seq, "
                            "anchor_hash = EXCLUDED.anchor_hash",
                            &p, NULL);
}

static store_backend__ops_t cluster_ops;

int hub_store_pg_cluster_attach(hub_store_t *store, const char *node_id)
{
    if (!store || !node_id || !*node_id || store_backend__ops_of(store) != &store_pg__ops)
        return HUB_EINVAL;
    HUB__PG_SELF;
    snprintf(self->node_id, sizeof self->node_id, "%s", node_id);
    cluster_ops = store_pg__ops;
    cluster_ops.audit_anchor_get = anchor_get;
    cluster_ops.audit_anchor_put = anchor_put;
    self->base.ops = &cluster_ops;
    return 0;
}
