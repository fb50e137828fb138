/* hub_cluster.c — this node among several over one PostgreSQL store
 * (hub_cluster.h): its connection for LISTEN and heartbeats, watched by
 * the loop and never waited for, the member locations it renews, and what
 * a notification of newly queued messages does. */
#include "hub_bytes.h"
#include "hub_cluster.h"
#include "hub_cluster_counts.h"
#include "hub_core_internal.h"

#include <libpq-fe.h>

#include <zmq.h>

typedef enum { HUB__CL_DOWN = 0, HUB__CL_CONNECTING, HUB__CL_READY } cluster__cl_state_t;

/* Another node, as the beat last saw it: where its link listens, and this
 * node's DEALER to it (opened at the first envelope forwarded). */
typedef struct {
    char node_id[64];
    char endpoint[256];
    void *dealer;
} cluster__cl_peer_t;

/* A member connected to another node. */
typedef struct {
    cluster__cl_peer_t *peer;
    char *services; /* as its Hello offered them there */
} cluster__cl_loc_t;

static void cluster__cl_loc_free(void *value)
{
    cluster__cl_loc_t *l = value;
    free(l->services);
    free(l);
}

struct cluster__cluster {
    hub_server_t *server;
    PGconn *conn;
    cluster__cl_state_t state;
    uv_poll_t *poll; /* heap: a new one when the socket changes */
    int poll_fd;
    int poll_events;
    uv_timer_t beat;
    bool beat_open;
    bool busy;     /* a query was sent and its results are not all read */
    bool flushing; /* the query is not all sent yet (waits for writable) */
    uint64_t started_at_us;
    uint64_t seq_base;
    uint64_t down_since_mono_us;

    /* The node-to-node link (cluster_listen): a CURVE ROUTER with the
     * hub's key, which admits the hub's key alone (ZAP domain "cluster"). */
    void *link;
    hub_zsock_t *link_watch;
    char link_endpoint[256];
    cluster__cl_peer_t **peers;
    size_t n_peers, cap_peers;
    hub_map_t *where;      /* member id -> cluster__cl_loc_t *: members on other nodes */
    hub_ops_node_t *nodes; /* hub_nodes as the last beat read it (strings owned) */
    size_t n_nodes;
    bool subs_dirty;           /* this node's subscriptions are to be written to the store */
    uint64_t subs_seen;        /* the highest hub_subscriptions.id read */
    cluster__counts_t *counts; /* flows and delegation counts of all nodes */
    hub_map_t *fresh;          /* members connected here since their location was last written */
};

cluster__counts_t *cluster__counts_of(hub_server_t *self)
{
    return self->cluster ? self->cluster->counts : NULL;
}

static void cluster__cl_free_poll(uv_handle_t *h)
{
    free(h);
}

static void cluster__cl_on_poll(uv_poll_t *h, int status, int events);
static void cluster__cl_announce(core__cluster_t *cl);

/* Watches the connection's socket for `events` (re-made when it changed). */
static void cluster__cl_broken(core__cluster_t *cl, const char *what);

/* Watches the connection's socket for `events` (re-made when it changed).
 * fresh: a new handle even for the same descriptor number. While libpq
 * connects it may close one socket and open the next (several hosts), and
 * the new one may get the old number: a handle kept across that would
 * watch a descriptor the kernel has forgotten. */
static void cluster__cl_watch(core__cluster_t *cl, int events, bool fresh)
{
    int fd = cl->conn ? PQsocket(cl->conn) : -1;
    if (cl->poll && (fresh || cl->poll_fd != fd || fd < 0)) {
        uv_close((uv_handle_t *)cl->poll, cluster__cl_free_poll);
        cl->poll = NULL;
    }
    if (fd < 0)
        return;
    if (!cl->poll) {
        cl->poll = malloc(sizeof *cl->poll);
        if (!cl->poll || uv_poll_init_socket(cl->server->loop, cl->poll, fd) != 0) {
            free(cl->poll);
            cl->poll = NULL;
            cluster__cl_broken(cl, "watch");
            return;
        }
        cl->poll->data = cl;
        cl->poll_fd = fd;
        cl->poll_events = 0;
    }
    if (cl->poll_events != events) {
        uv_poll_start(cl->poll, events, cluster__cl_on_poll);
        cl->poll_events = events;
    }
}

/* Every online receiver's queue is read again from its start: used when
 * notifications may have been missed. */
static void cluster__cl_rescan_all(hub_server_t *self)
{
    CORE__FOREACH_MEMBER (self, m) {
        if (!m->online)
            continue;
        m->rescan = true;
        m->backlog = true;
        delivery__pump(self, m);
    }
}

/* libpq's message on one log line: newlines, tabs and quotes become spaces. */
static void cluster__cl_oneline(const char *msg, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = msg; *p && n + 1 < size; p++)
        out[n++] = (*p == '\n' || *p == '\t' || *p == '"') ? ' ' : *p;
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

static void cluster__cl_broken(core__cluster_t *cl, const char *what)
{
    char why[256];
    cluster__cl_oneline(cl->conn ? PQerrorMessage(cl->conn) : "no connection", why, sizeof why);
    HUB_WARN("cluster", "connection to the shared store lost; opened again without blocking",
             "node=%s what=%s error=\"%s\"", cl->server->cfg.node_id, what, why);
    if (cl->poll) {
        uv_close((uv_handle_t *)cl->poll, cluster__cl_free_poll);
        cl->poll = NULL;
    }
    if (cl->conn)
        PQfinish(cl->conn);
    cl->conn = NULL;
    cl->state = HUB__CL_DOWN;
    cluster_counts__failed(cl->counts);
    cl->busy = false;
    cl->flushing = false;
    cl->down_since_mono_us = hub_monotonic_us();
}

/* Sends sql (one or more statements) without waiting. */
static void cluster__cl_send(core__cluster_t *cl, const char *sql)
{
    if (!PQsendQuery(cl->conn, sql)) {
        cluster__cl_broken(cl, "send");
        return;
    }
    cl->busy = true;
    int f = PQflush(cl->conn);
    if (f < 0) {
        cluster__cl_broken(cl, "flush");
        return;
    }
    cl->flushing = f == 1;
    cluster__cl_watch(cl, UV_READABLE | (cl->flushing ? UV_WRITABLE : 0), false);
}

/* A hex payload into a member id; false when it is not one. */
static bool cluster__cl_member_unhex(const char *hex, char *out, size_t size)
{
    return *hex && hub_unhex_text(hex, out, size);
}

static cluster__cl_peer_t *cluster__cl_peer(core__cluster_t *cl, const char *node_id)
{
    for (size_t i = 0; i < cl->n_peers; i++)
        if (!strcmp(cl->peers[i]->node_id, node_id))
            return cl->peers[i];
    if (core__grow((void **)&cl->peers, &cl->cap_peers, cl->n_peers + 1, sizeof *cl->peers) != 0)
        return NULL;
    cluster__cl_peer_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    core__copy_str(p->node_id, sizeof p->node_id, node_id);
    cl->peers[cl->n_peers++] = p;
    return p;
}

/* A node's link moved (it restarted): the DEALER to it is opened again. */
static void cluster__cl_peer_endpoint(cluster__cl_peer_t *p, const char *ep)
{
    if (strcmp(p->endpoint, ep) != 0) {
        if (p->dealer)
            zmq_close(p->dealer);
        p->dealer = NULL;
        core__copy_str(p->endpoint, sizeof p->endpoint, ep);
    }
}

/* Rows (member hex, node, its link endpoint): where members of other nodes
 * are, replacing what the last beat said. */
static void cluster__cl_where(core__cluster_t *cl, const PGresult *res)
{
    hub_map_t *where = hub_map_new();
    if (!where)
        return;
    for (int r = 0; r < PQntuples(res); r++) {
        char id[HUB_STORE_NAME_MAX + 1];
        if (!cluster__cl_member_unhex(PQgetvalue(res, r, 0), id, sizeof id))
            continue;
        cluster__cl_peer_t *p = cluster__cl_peer(cl, PQgetvalue(res, r, 1));
        if (!p)
            continue;
        cluster__cl_peer_endpoint(p, PQgetvalue(res, r, 2));
        cluster__cl_loc_t *l = calloc(1, sizeof *l);
        if (!l || !(l->services = strdup(PQgetvalue(res, r, 3))) ||
            hub_map_put(where, id, l) != 0) {
            if (l)
                free(l->services);
            free(l);
            continue;
        }
        l->peer = p;
    }
    hub_map_destroy_all(&cl->where, cluster__cl_loc_free);
    cl->where = where;
}

static void cluster__cl_nodes_free(core__cluster_t *cl)
{
    for (size_t i = 0; i < cl->n_nodes; i++) {
        free((char *)cl->nodes[i].id);
        free((char *)cl->nodes[i].endpoint);
    }
    free(cl->nodes);
    cl->nodes = NULL;
    cl->n_nodes = 0;
}

/* Rows (node, endpoint, heartbeat µs, members, alive) of hub_nodes. */
static void cluster__cl_nodes(core__cluster_t *cl, const PGresult *res)
{
    cluster__cl_nodes_free(cl);
    int rows = PQntuples(res);
    if (rows <= 0 || !(cl->nodes = calloc((size_t)rows, sizeof *cl->nodes)))
        return;
    for (int r = 0; r < rows; r++) {
        hub_ops_node_t *n = &cl->nodes[cl->n_nodes];
        n->id = strdup(PQgetvalue(res, r, 0));
        n->endpoint = strdup(PQgetvalue(res, r, 1));
        if (!n->id || !n->endpoint) {
            free((char *)n->id);
            free((char *)n->endpoint);
            continue;
        }
        n->heartbeat_at_us = strtoull(PQgetvalue(res, r, 2), NULL, 10);
        n->members = (uint32_t)strtoul(PQgetvalue(res, r, 3), NULL, 10);
        n->alive = PQgetvalue(res, r, 4)[0] == 't';
        n->self = !strcmp(n->id, cl->server->cfg.node_id);
        cl->n_nodes++;
        cluster__cl_peer_t *p = n->self ? NULL : cluster__cl_peer(cl, n->id);
        if (p)
            cluster__cl_peer_endpoint(p, PQgetvalue(res, r, 5));
    }
}

/* Rows (id, member hex, topic) of hub_subscriptions not seen yet: the
 * subscriptions members made on any node. */
static void cluster__cl_subs(core__cluster_t *cl, const PGresult *res)
{
    for (int r = 0; r < PQntuples(res); r++) {
        char id[HUB_STORE_NAME_MAX + 1];
        uint64_t n = strtoull(PQgetvalue(res, r, 0), NULL, 10);
        if (n > cl->subs_seen)
            cl->subs_seen = n;
        if (!cluster__cl_member_unhex(PQgetvalue(res, r, 1), id, sizeof id))
            continue;
        if (pubsub__subscribe(cl->server, id, PQgetvalue(res, r, 2)) == 1)
            HUB_INFO("cluster", "durable subscription learnt from the store", "member=%s topic=%s",
                     id, PQgetvalue(res, r, 2));
    }
}

/* The beat's last statement lists members of this node whose newer
 * connection is on another node: this node stops delivering to them. */
static void cluster__cl_result(core__cluster_t *cl, PGresult *res)
{
    hub_server_t *self = cl->server;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_FATAL_ERROR) {
        char why[256];
        cluster__cl_oneline(PQresultErrorMessage(res), why, sizeof why);
        HUB_WARN("cluster", "heartbeat statement failed; retried at the next beat",
                 "node=%s error=\"%s\"", self->cfg.node_id, why);
        cluster_counts__failed(cl->counts);
        return;
    }
    if (cluster_counts__result(cl->counts, res))
        return;
    if (st == PGRES_TUPLES_OK && PQnfields(res) == 6) {
        cluster__cl_nodes(cl, res);
        return;
    }
    if (st == PGRES_TUPLES_OK && PQnfields(res) == 4) {
        cluster__cl_where(cl, res);
        return;
    }
    if (st == PGRES_TUPLES_OK && PQnfields(res) == 3) {
        cluster__cl_subs(cl, res);
        return;
    }
    if (st != PGRES_TUPLES_OK || PQnfields(res) != 1)
        return;
    for (int r = 0; r < PQntuples(res); r++) {
        char id[HUB_STORE_NAME_MAX + 1];
        if (!cluster__cl_member_unhex(PQgetvalue(res, r, 0), id, sizeof id))
            continue;
        core__member_t *m = hub_map_get(self->members, id);
        if (m && m->online) {
            HUB_INFO("cluster", "member connected to another node since: no longer served here",
                     "member=%s node=%s", m->id, self->cfg.node_id);
            send__blocked_drop(m);
            m->online = false;
        }
    }
}

/* "MEMBER-HEX NODE CONNECTED-AT-US NODE-LINK SERVICES" on hub_located: a
 * member has just connected to another node (the trigger on
 * hub_locations): known here now, not at the next beat, so that an
 * online-only envelope for it is forwarded at once (to the link named, a
 * node started since the last beat included). A member connected here
 * before that connection is no longer served here (as the beat would
 * find). */
static void cluster__cl_located(core__cluster_t *cl, char *payload)
{
    hub_server_t *self = cl->server;
    char *node = strchr(payload, ' ');
    char *at = node ? strchr(node + 1, ' ') : NULL;
    char *link = at ? strchr(at + 1, ' ') : NULL;
    char *services = link ? strchr(link + 1, ' ') : NULL;
    char id[HUB_STORE_NAME_MAX + 1];
    if (!services)
        return;
    *node++ = '\0';
    *at++ = '\0';
    *link++ = '\0';
    *services++ = '\0';
    if (!strcmp(node, self->cfg.node_id) || !cluster__cl_member_unhex(payload, id, sizeof id))
        return;
    uint64_t connected_at_us = strtoull(at, NULL, 10);
    cluster__cl_peer_t *p = cluster__cl_peer(cl, node);
    if (!p || (!cl->where && !(cl->where = hub_map_new())))
        return;
    if (strcmp(link, "-") != 0)
        cluster__cl_peer_endpoint(p, link);
    cluster__cl_loc_t *l = hub_map_get(cl->where, id);
    char *svc = strdup(services);
    if (!svc)
        return;
    if (!l) {
        if (!(l = calloc(1, sizeof *l)) || hub_map_put(cl->where, id, l) != 0) {
            free(l);
            free(svc);
            return;
        }
    }
    free(l->services);
    l->services = svc;
    l->peer = p;
    core__member_t *m = hub_map_get(self->members, id);
    if (m && m->online && m->connected_at_us <= connected_at_us) {
        HUB_INFO("cluster", "member connected to another node since: no longer served here",
                 "member=%s node=%s", m->id, self->cfg.node_id);
        send__blocked_drop(m);
        m->online = false;
    }
}

static void cluster__cl_notifies(core__cluster_t *cl)
{
    hub_server_t *self = cl->server;
    PGnotify *n;
    char own[80];
    hub_cluster_app_name(self->cfg.node_id, own, sizeof own);
    while ((n = PQnotifies(cl->conn)) != NULL) {
        if (!strcmp(n->relname, "hub_located")) {
            cluster__cl_located(cl, n->extra);
            PQfreemem(n);
            continue;
        }
        /* "RECEIVER-HEX APPLICATION-NAME": this node's own commits need no
         * notice (hub_commit.c delivers what they stored). */
        char *sp = strchr(n->extra, ' ');
        char id[HUB_STORE_NAME_MAX + 1];
        if (sp)
            *sp = '\0';
        if ((!sp || strcmp(sp + 1, own) != 0) && cluster__cl_member_unhex(n->extra, id, sizeof id)) {
            core__member_t *m = hub_map_get(self->members, id);
            if (m && m->online) {
                m->rescan = true;
                m->backlog = true;
                delivery__pump(self, m);
            }
        }
        PQfreemem(n);
    }
}

static void cluster__cl_connect_step(core__cluster_t *cl)
{
    switch (PQconnectPoll(cl->conn)) {
    case PGRES_POLLING_READING: cluster__cl_watch(cl, UV_READABLE, true); return;
    case PGRES_POLLING_WRITING: cluster__cl_watch(cl, UV_WRITABLE, true); return;
    case PGRES_POLLING_OK: break;
    default: cluster__cl_broken(cl, "connect"); return;
    }
    if (PQsetnonblocking(cl->conn, 1) != 0) {
        cluster__cl_broken(cl, "nonblocking");
        return;
    }
    cl->state = HUB__CL_READY;
    HUB_INFO("cluster", "connection to the shared store open again", "node=%s",
             cl->server->cfg.node_id);
    cluster__cl_send(cl, "LISTEN hub_queued; LISTEN hub_located");
    if (cl->state == HUB__CL_READY)
        cluster__cl_rescan_all(cl->server);
}

static void cluster__cl_on_poll(uv_poll_t *h, int status, int events)
{
    core__cluster_t *cl = h->data;
    if (cl->poll != h || !cl->conn)
        return;
    if (cl->state == HUB__CL_CONNECTING) {
        cluster__cl_connect_step(cl);
        return;
    }
    if (status < 0) {
        cluster__cl_broken(cl, "poll");
        return;
    }
    if ((events & UV_WRITABLE) && cl->flushing) {
        int f = PQflush(cl->conn);
        if (f < 0) {
            cluster__cl_broken(cl, "flush");
            return;
        }
        cl->flushing = f == 1;
        if (!cl->flushing)
            cluster__cl_watch(cl, UV_READABLE, false);
    }
    if (!(events & UV_READABLE) || !cl->conn)
        return;
    if (!PQconsumeInput(cl->conn)) {
        cluster__cl_broken(cl, "read");
        return;
    }
    while (cl->busy && !PQisBusy(cl->conn)) {
        PGresult *res = PQgetResult(cl->conn);
        if (!res) {
            cl->busy = false;
            break;
        }
        cluster__cl_result(cl, res);
        PQclear(res);
    }
    cluster__cl_notifies(cl);
    if (cl->conn && cl->state == HUB__CL_READY && !cl->busy && cl->fresh)
        cluster__cl_announce(cl);
    if (cl->conn && PQstatus(cl->conn) == CONNECTION_BAD)
        cluster__cl_broken(cl, "status");
}

/* ---- the beat ------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} cluster__cl_sql_t;

static void cluster__cl_put(cluster__cl_sql_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void cluster__cl_put(cluster__cl_sql_t *s, const char *fmt, ...)
{
    if (s->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            s->oom = true;
            return;
        }
        if ((size_t)n < s->cap - s->len) {
            s->len += (size_t)n;
            return;
        }
        size_t cap = (s->cap + (size_t)n + 1) * 2;
        char *b = realloc(s->buf, cap);
        if (!b) {
            s->oom = true;
            return;
        }
        s->buf = b;
        s->cap = cap;
    }
}

static void cluster__cl_hex(cluster__cl_sql_t *s, const char *id)
{
    cluster__cl_put(s, "'\\x");
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        cluster__cl_put(s, "%02x", *p);
    cluster__cl_put(s, "'::bytea");
}

/* One member's row of the location upsert (the first opens the INSERT). */
static void cluster__cl_location(core__cluster_t *cl, cluster__cl_sql_t *s, const core__member_t *m,
                                 bool first)
{
    hub_server_t *self = cl->server;
    if (first)
        cluster__cl_put(s, "INSERT INTO hub_locations AS l (member, node_id, connected_at_us, "
                           "services, expires_at) VALUES ");
    cluster__cl_put(s, "%s(", first ? "" : ",");
    cluster__cl_hex(s, m->id);
    char *svc = PQescapeLiteral(cl->conn, m->services ? m->services : "",
                                m->services ? strlen(m->services) : 0);
    cluster__cl_put(s, ", '%s', %llu, %s, now() + interval '%u milliseconds')", self->cfg.node_id,
                    (unsigned long long)m->connected_at_us, svc ? svc : "''",
                    self->cfg.cluster_beat_ms * 3u);
    PQfreemem(svc);
}

/* The newer connection of a member wins; the trigger on hub_locations
 * tells the other nodes (hub_located) when the row says something new. */
#define CLUSTER__LOCATION_UPSERT                                                                   \
    " ON CONFLICT (member) DO UPDATE SET node_id = EXCLUDED.node_id, connected_at_us = "           \
    "EXCLUDED.connected_at_us, services = EXCLUDED.services, expires_at = EXCLUDED.expires_at "    \
    "WHERE l.node_id = EXCLUDED.node_id OR l.connected_at_us <= EXCLUDED.connected_at_us OR "      \
    "l.expires_at < now();"

/* The members connected here since the last write of their locations, at
 * once (one statement; the connection must be idle). */
static void cluster__cl_announce(core__cluster_t *cl)
{
    hub_server_t *self = cl->server;
    cluster__cl_sql_t s = {malloc(512), 0, 512, false};
    if (!s.buf)
        return;
    s.buf[0] = '\0';
    size_t k = 0, cursor = 0;
    const char *id;
    while (cl->fresh && hub_map_next(cl->fresh, &cursor, &id, NULL)) {
        core__member_t *m = hub_map_get(self->members, id);
        if (m && m->online)
            cluster__cl_location(cl, &s, m, k++ == 0);
    }
    hub_map_destroy(&cl->fresh);
    if (k) {
        cluster__cl_put(&s, "%s", CLUSTER__LOCATION_UPSERT);
        if (!s.oom)
            cluster__cl_send(cl, s.buf);
    }
    free(s.buf);
}

/* One round trip: the node's row, its members' locations (newer
 * connection wins), the entries it no longer has, and which of its
 * members are now connected elsewhere. */
static void cluster__cl_beat_send(core__cluster_t *cl)
{
    hub_server_t *self = cl->server;
    cluster__cl_sql_t s = {NULL, 0, 0, false};
    s.cap = 1024;
    if (!(s.buf = malloc(s.cap)))
        return;
    s.buf[0] = '\0';
    size_t online = members__online(self);
    char *ep = PQescapeLiteral(cl->conn, self->endpoint, strlen(self->endpoint));
    cluster__cl_put(
        &s,
        "INSERT INTO hub_nodes (node_id, endpoint, cluster_endpoint, started_at_us, "
        "heartbeat_at, members, seq_base) VALUES ('%s', %s, '%s', %llu, now(), %zu, %llu) "
        "ON CONFLICT (node_id) DO UPDATE SET endpoint = EXCLUDED.endpoint, "
        "cluster_endpoint = EXCLUDED.cluster_endpoint, started_at_us = "
        "EXCLUDED.started_at_us, heartbeat_at = now(), members = EXCLUDED.members, "
        "seq_base = EXCLUDED.seq_base;",
        self->cfg.node_id, ep ? ep : "''", cl->link_endpoint, (unsigned long long)cl->started_at_us,
        online, (unsigned long long)cl->seq_base);
    PQfreemem(ep);
    cluster__cl_put(&s,
                    "SELECT node_id, endpoint, (extract(epoch FROM heartbeat_at) * 1000000)::int8, "
                    "members, heartbeat_at > now() - interval '%u milliseconds', cluster_endpoint "
                    "FROM hub_nodes ORDER BY node_id;",
                    self->cfg.cluster_beat_ms * 3u);
    cluster__cl_put(&s,
                    "SELECT encode(l.member, 'hex'), n.node_id, n.cluster_endpoint, l.services "
                    "FROM hub_locations l JOIN hub_nodes n ON n.node_id = l.node_id WHERE "
                    "l.node_id <> '%s' AND l.expires_at > now();",
                    self->cfg.node_id);
    if (cl->subs_dirty) {
        /* This node's subscriptions (ON CONFLICT: the ones already there). */
        size_t k = 0, cur = 0;
        const char *topic;
        void *value;
        while (hub_map_next(self->subs, &cur, &topic, &value)) {
            const core__sublist_t *l = value;
            for (size_t i = 0; i < l->n; i++) {
                cluster__cl_put(
                    &s, "%s(", k++ ? "," : "INSERT INTO hub_subscriptions (member, topic) VALUES ");
                cluster__cl_hex(&s, l->members[i]);
                char *t = PQescapeLiteral(cl->conn, topic, strlen(topic));
                cluster__cl_put(&s, ", %s)", t ? t : "''");
                PQfreemem(t);
            }
        }
        if (k)
            cluster__cl_put(&s, " ON CONFLICT (member, topic) DO NOTHING;");
        cl->subs_dirty = false;
    }
    cluster__cl_put(
        &s,
        "SELECT id, encode(member, 'hex'), topic FROM hub_subscriptions WHERE id > %llu "
        "ORDER BY id;",
        (unsigned long long)cl->subs_seen);
    cluster__cl_sql_t arr = {NULL, 0, 0, false};
    arr.cap = 256;
    if (!(arr.buf = malloc(arr.cap))) {
        free(s.buf);
        return;
    }
    arr.buf[0] = '\0';
    cluster__cl_put(&arr, "ARRAY[");
    if (online) {
        size_t k = 0;
        CORE__FOREACH_MEMBER (self, m) {
            if (!m->online)
                continue;
            cluster__cl_location(cl, &s, m, k == 0);
            cluster__cl_put(&arr, "%s", k ? "," : "");
            cluster__cl_hex(&arr, m->id);
            k++;
        }
        cluster__cl_put(&s, "%s", CLUSTER__LOCATION_UPSERT);
    }
    /* Every member's location is in this beat. */
    hub_map_destroy(&cl->fresh);
    cluster__cl_put(&arr, "]::bytea[]");
    if (!arr.oom)
        cluster__cl_put(
            &s,
            "DELETE FROM hub_locations WHERE (node_id = '%s' AND NOT member = ANY (%s)) "
            "OR expires_at < now() - interval '1 minute';"
            "SELECT encode(member, 'hex') FROM hub_locations WHERE node_id <> '%s' AND "
            "expires_at > now() AND member = ANY (%s);",
            self->cfg.node_id, arr.buf, self->cfg.node_id, arr.buf);
    char *counts = cluster_counts__beat_sql(cl->counts, self, cl->conn);
    if (counts)
        cluster__cl_put(&s, "%s", counts);
    free(counts);
    if (!s.oom && !arr.oom)
        cluster__cl_send(cl, s.buf);
    else
        cluster_counts__failed(cl->counts);
    free(arr.buf);
    free(s.buf);
}

static void cluster__cl_on_beat(uv_timer_t *t)
{
    core__cluster_t *cl = t->data;
    if (cl->server->stopping)
        return;
    if (cl->state == HUB__CL_DOWN) {
        char *dsn = hub_cluster_store_dsn(cl->server->cfg.store_dsn, cl->server->cfg.node_id);
        cl->conn = PQconnectStart(dsn ? dsn : cl->server->cfg.store_dsn);
        free(dsn);
        if (!cl->conn || PQstatus(cl->conn) == CONNECTION_BAD) {
            if (cl->conn)
                PQfinish(cl->conn);
            cl->conn = NULL;
            return;
        }
        cl->state = HUB__CL_CONNECTING;
        cluster__cl_watch(cl, UV_WRITABLE, true);
        return;
    }
    if (cl->state == HUB__CL_READY && !cl->busy)
        cluster__cl_beat_send(cl);
}

/* ---- life ---------------------------------------------------------------- */

static int cluster__cl_exec(PGconn *c, const char *sql, int nparams, const char *const *params,
                            PGresult **out, char *err, size_t err_size)
{
    PGresult *res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, err_size, "cluster: the shared store refused a statement (%s)",
                 res ? PQresultErrorMessage(res) : PQerrorMessage(c));
        PQclear(res);
        return HUB_ESTORE;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
}

int cluster__start(hub_server_t *self, char *err, size_t err_size)
{
    core__cluster_t *cl = calloc(1, sizeof *cl);
    if (!cl) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    cl->server = self;
    cl->subs_dirty = true; /* what data_dir/subscriptions holds goes to the store */
    self->cluster = cl;
    char *dsn = hub_cluster_store_dsn(self->cfg.store_dsn, self->cfg.node_id);
    cl->conn = PQconnectdb(dsn ? dsn : self->cfg.store_dsn);
    free(dsn);
    if (PQstatus(cl->conn) != CONNECTION_OK) {
        char why[256];
        cluster__cl_oneline(PQerrorMessage(cl->conn), why, sizeof why);
        snprintf(err, err_size, "cluster: cannot connect to the shared store (%s)", why);
        return HUB_EIO;
    }
    /* The schema: several statements in one transaction (simple protocol);
     * its "already exists" notices are not news. */
    PGresult *res = PQexec(cl->conn, "SET client_min_messages = warning");
    PQclear(res);
    res = PQexec(cl->conn, "BEGIN;");
    PQclear(res);
    res = PQexec(cl->conn, HUB_CLUSTER_SCHEMA);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, err_size, "cluster: cannot create the shared tables (%s)",
                 PQresultErrorMessage(res));
        PQclear(res);
        return HUB_ESTORE;
    }
    PQclear(res);
    int rc = cluster__cl_exec(cl->conn, "COMMIT", 0, NULL, NULL, err, err_size);
    char block[32], base[32], started[32];
    snprintf(block, sizeof block, "%llu", (unsigned long long)HUB_CLUSTER_SEQ_BLOCK);
    const char *p1[] = {block};
    if (rc == 0)
        rc = cluster__cl_exec(cl->conn,
                              "UPDATE hub_meta SET next_seq = next_seq + $1::int8 WHERE id = 1 "
                              "RETURNING next_seq - $1::int8",
                              1, p1, &res, err, err_size);
    if (rc == 0) {
        if (PQntuples(res) != 1) {
            snprintf(err, err_size,
                     "cluster: the store has no hub_meta row: run hubctl store init");
            rc = HUB_ESTORE;
        } else {
            cl->seq_base = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
            self->next_seq = cl->seq_base;
        }
        PQclear(res);
    }
    cl->started_at_us = hub_now_us();
    snprintf(base, sizeof base, "%llu", (unsigned long long)cl->seq_base);
    snprintf(started, sizeof started, "%llu", (unsigned long long)cl->started_at_us);
    const char *p2[] = {self->cfg.node_id, started, base};
    if (rc == 0)
        rc = cluster__cl_exec(
            cl->conn,
            "INSERT INTO hub_nodes (node_id, started_at_us, heartbeat_at, members, "
            "seq_base) VALUES ($1, $2, now(), 0, $3) ON CONFLICT (node_id) DO "
            "UPDATE SET started_at_us = EXCLUDED.started_at_us, heartbeat_at = "
            "now(), members = 0, seq_base = EXCLUDED.seq_base",
            3, p2, NULL, err, err_size);
    /* This node starts with nobody connected. */
    if (rc == 0)
        rc = cluster__cl_exec(cl->conn, "DELETE FROM hub_locations WHERE node_id = $1", 1, p2, NULL,
                              err, err_size);
    if (rc == 0)
        rc = cluster__cl_exec(cl->conn, "LISTEN hub_queued", 0, NULL, NULL, err, err_size);
    if (rc == 0)
        rc = cluster__cl_exec(cl->conn, "LISTEN hub_located", 0, NULL, NULL, err, err_size);
    if (rc == 0)
        rc = cluster_counts__start(self, cl->conn, &cl->counts, err, err_size);
    if (rc == 0 && (rc = hub_store_pg_cluster_attach(self->store, self->cfg.node_id)) != 0)
        snprintf(err, err_size, "cluster: needs store = postgresql");
    if (rc == 0 && PQsetnonblocking(cl->conn, 1) != 0) {
        snprintf(err, err_size, "cluster: %s", PQerrorMessage(cl->conn));
        rc = HUB_EIO;
    }
    if (rc == 0) {
        cl->state = HUB__CL_READY;
        HUB_INFO("cluster", "node joined", "node=%s seq_base=%llu beat_ms=%u", self->cfg.node_id,
                 (unsigned long long)cl->seq_base, self->cfg.cluster_beat_ms);
    }
    return rc;
}

void cluster__close(hub_server_t *self)
{
    core__cluster_t *cl = self->cluster;
    if (!cl)
        return;
    if (cl->beat_open) {
        uv_close((uv_handle_t *)&cl->beat, NULL);
        cl->beat_open = false;
    }
    if (cl->poll) {
        uv_close((uv_handle_t *)cl->poll, cluster__cl_free_poll);
        cl->poll = NULL;
    }
    hub_zsock_close(&cl->link_watch);
}

void cluster__destroy(hub_server_t *self)
{
    core__cluster_t *cl = self->cluster;
    if (!cl)
        return;
    /* A node that stops says so: its members are free to be served
     * elsewhere at once (the loop is over: waiting is fine here). */
    if (cl->conn && cl->state == HUB__CL_READY) {
        PQsetnonblocking(cl->conn, 0);
        while (cl->busy) {
            PGresult *res = PQgetResult(cl->conn);
            if (!res)
                break;
            PQclear(res);
        }
        const char *p[] = {self->cfg.node_id};
        PQclear(PQexecParams(cl->conn, "DELETE FROM hub_locations WHERE node_id = $1", 1, NULL, p,
                             NULL, NULL, 0));
        PQclear(PQexecParams(cl->conn,
                             "UPDATE hub_nodes SET members = 0, heartbeat_at = now() - interval "
                             "'1 hour' WHERE node_id = $1",
                             1, NULL, p, NULL, NULL, 0));
    }
    if (cl->conn)
        PQfinish(cl->conn);
    for (size_t i = 0; i < cl->n_peers; i++) {
        if (cl->peers[i]->dealer)
            zmq_close(cl->peers[i]->dealer);
        free(cl->peers[i]);
    }
    free(cl->peers);
    hub_map_destroy_all(&cl->where, cluster__cl_loc_free);
    cluster__cl_nodes_free(cl);
    cluster_counts__destroy(&cl->counts);
    hub_map_destroy(&cl->fresh);
    if (cl->link)
        zmq_close(cl->link);
    free(cl);
    self->cluster = NULL;
}

/* ---- the node-to-node link ---------------------------------------------------
 * Frames: on this node's ROUTER, [peer identity] "f" receiver envelope: an
 * online-only envelope admitted by the sending node (agreement, signature,
 * reply rule checked there) for a member connected here. One-way: each
 * node sends on DEALERs of its own to the others' ROUTERs. */

static void cluster__cl_on_link(hub_zsock_t *zs, void *socket, void *user)
{
    (void)zs;
    hub_server_t *self = user;
    for (int n = 0; n < HUB__DRAIN_BUDGET; n++) {
        zmq_msg_t parts[5];
        int count = hub_zsock_recv_parts(socket, parts, 5);
        if (count == 0)
            break;
        if (count == 5 && zmq_msg_size(&parts[1]) == 1 &&
            *(const char *)zmq_msg_data(&parts[1]) == 'f' &&
            zmq_msg_size(&parts[2]) <= HUB_STORE_NAME_MAX) {
            char receiver[HUB_STORE_NAME_MAX + 1];
            memcpy(receiver, zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]));
            receiver[zmq_msg_size(&parts[2])] = '\0';
            char origin[64];
            size_t olen = zmq_msg_size(&parts[4]) < sizeof origin ? zmq_msg_size(&parts[4]) : 0;
            memcpy(origin, zmq_msg_data(&parts[4]), olen);
            origin[olen] = '\0';
            admit__forwarded(self, receiver, origin, zmq_msg_data(&parts[3]),
                             zmq_msg_size(&parts[3]));
        }
        for (int i = 0; i < count; i++)
            zmq_msg_close(&parts[i]);
    }
}

/* CURVE with the hub's own key pair, both ends. */
static int cluster__cl_curve(hub_server_t *self, void *sock, bool server)
{
    uint8_t secret[32], public[32];
    int one = 1, linger = 0, hwm = 10000;
    int rc = zmq_z85_decode(secret, self->own_key.curve_secret) &&
                     zmq_z85_decode(public, self->own_key.curve_public) &&
                     zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) == 0 &&
                     zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm) == 0 &&
                     zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm) == 0 &&
                     zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 32) == 0 &&
                     (server ? zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) == 0 &&
                                   zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "cluster", 7) == 0
                             : zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, public, 32) == 0 &&
                                   zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, public, 32) == 0)
                 ? 0
                 : HUB_EIO;
    sodium_memzero(secret, sizeof secret);
    return rc;
}

int cluster__watch(hub_server_t *self, char *err, size_t err_size)
{
    core__cluster_t *cl = self->cluster;
    if (!cl)
        return 0;
    if (self->cfg.cluster_listen[0]) {
        cl->link = zmq_socket(self->zctx, ZMQ_ROUTER);
        if (!cl->link || cluster__cl_curve(self, cl->link, true) != 0 ||
            zmq_bind(cl->link, self->cfg.cluster_listen) != 0) {
            snprintf(err, err_size,
                     "cluster_listen = %s: cannot listen there (%s); give an address of this "
                     "host the other nodes can reach, e.g. tcp://10.0.0.5:7101",
                     self->cfg.cluster_listen, zmq_strerror(zmq_errno()));
            return HUB_EIO;
        }
        size_t len = sizeof cl->link_endpoint;
        zmq_getsockopt(cl->link, ZMQ_LAST_ENDPOINT, cl->link_endpoint, &len);
        int rc = hub_zsock_start(self->loop, cl->link, cluster__cl_on_link, self, &cl->link_watch);
        if (rc != 0) {
            snprintf(err, err_size, "cannot watch the cluster link: %s", hub_strerror(rc));
            return rc;
        }
        HUB_INFO("cluster", "node link listening", "node=%s endpoint=%s", self->cfg.node_id,
                 cl->link_endpoint);
    }
    uv_timer_init(self->loop, &cl->beat);
    cl->beat.data = cl;
    cl->beat_open = true;
    uv_timer_start(&cl->beat, cluster__cl_on_beat, 0, self->cfg.cluster_beat_ms);
    if (cl->state == HUB__CL_READY)
        cluster__cl_watch(cl, UV_READABLE, false);
    return 0;
}

bool cluster__forward(hub_server_t *self, const char *receiver, const uint8_t *bytes, size_t len)
{
    core__cluster_t *cl = self->cluster;
    cluster__cl_loc_t *l = cl && cl->link && cl->where ? hub_map_get(cl->where, receiver) : NULL;
    cluster__cl_peer_t *p = l ? l->peer : NULL;
    if (!p || !p->endpoint[0])
        return false;
    if (!p->dealer) {
        p->dealer = zmq_socket(self->zctx, ZMQ_DEALER);
        if (!p->dealer || cluster__cl_curve(self, p->dealer, false) != 0 ||
            zmq_connect(p->dealer, p->endpoint) != 0) {
            HUB_WARN("cluster", "cannot open the link to another node", "node=%s endpoint=%s",
                     p->node_id, p->endpoint);
            if (p->dealer)
                zmq_close(p->dealer);
            p->dealer = NULL;
            return false;
        }
    }
    size_t rlen = strlen(receiver);
    size_t olen = strlen(self->cfg.node_id);
    return zmq_send(p->dealer, "f", 1, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 1 &&
           zmq_send(p->dealer, receiver, rlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)rlen &&
           zmq_send(p->dealer, bytes, len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)len &&
           zmq_send(p->dealer, self->cfg.node_id, olen, ZMQ_DONTWAIT) == (int)olen;
}

bool cluster__is_self(const hub_server_t *self, const char *domain, size_t domain_len,
                      const char *z85)
{
    (void)self;
    return domain_len == 7 && !memcmp(domain, "cluster", 7) && z85 &&
           !strcmp(z85, self->own_key.curve_public);
}

bool cluster__located(hub_server_t *self, const char *member)
{
    core__cluster_t *cl = self->cluster;
    cluster__cl_loc_t *l = cl && cl->link && cl->where ? hub_map_get(cl->where, member) : NULL;
    return l && l->peer->endpoint[0];
}

bool cluster__elsewhere(hub_server_t *self, const char *member, const char **services)
{
    core__cluster_t *cl = self->cluster;
    cluster__cl_loc_t *l = cl && cl->where ? hub_map_get(cl->where, member) : NULL;
    if (l && services)
        *services = l->services;
    return l != NULL;
}

void cluster__member_online(hub_server_t *self, const char *member)
{
    core__cluster_t *cl = self->cluster;
    if (!cl || (!cl->fresh && !(cl->fresh = hub_map_new())) ||
        hub_map_put(cl->fresh, member, cl) != 0)
        return;
    if (cl->state == HUB__CL_READY && !cl->busy)
        cluster__cl_announce(cl);
}

void cluster__subs_changed(hub_server_t *self)
{
    if (self->cluster)
        self->cluster->subs_dirty = true;
}

void cluster__nodes(hub_server_t *self, hub_ops_node_visit visit, void *user)
{
    core__cluster_t *cl = self->cluster;
    for (size_t i = 0; cl && i < cl->n_nodes; i++)
        visit(&cl->nodes[i], user);
}

void cluster__came_from(hub_server_t *self, const char *member, const char *node_id)
{
    core__cluster_t *cl = self->cluster;
    if (!cl || !node_id[0] || !strcmp(node_id, self->cfg.node_id) ||
        (cl->where && hub_map_get(cl->where, member)))
        return;
    if (!cl->where && !(cl->where = hub_map_new()))
        return;
    cluster__cl_peer_t *p = cluster__cl_peer(cl, node_id);
    cluster__cl_loc_t *l = p ? calloc(1, sizeof *l) : NULL;
    if (!l || !(l->services = strdup("")) || hub_map_put(cl->where, member, l) != 0) {
        if (l)
            free(l->services);
        free(l);
        return;
    }
    l->peer = p;
}

void hub_cluster_app_name(const char *node_id, char *out, size_t size)
{
    snprintf(out, size, "hubd-%s", node_id);
}

char *hub_cluster_store_dsn(const char *dsn, const char *node_id)
{
    char app[80];
    hub_cluster_app_name(node_id, app, sizeof app);
    bool uri = !strncmp(dsn, "postgresql://", 13) || !strncmp(dsn, "postgres://", 11);
    size_t size = strlen(dsn) + strlen(app) + 32;
    char *out = malloc(size);
    if (!out)
        return NULL;
    if (uri)
        snprintf(out, size, "%s%capplication_name=%s", dsn, strchr(dsn, '?') ? '&' : '?', app);
    else
        snprintf(out, size, "%s application_name=%s", dsn, app);
    return out;
}
