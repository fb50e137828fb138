/* hub_cluster_counts.c — what the flows and the delegation rules counted,
 * for the whole hub (hub_cluster_counts.h). */
#include "hub_cluster_counts.h"

#include "hub_bytes.h"
#include "hub_cluster.h"
#include "hub_core_internal.h"

#include <inttypes.h>

#define CC__SEP "\x1f" /* between the parts of a key: no name holds it */
#define CC__NAME_MAX 1024

typedef struct {
    char node_id[64];
    uint64_t written_at_us;
    uint64_t rev;      /* the node's last write this node has read */
    uint64_t rev_next; /* hub_count_nodes said so; read once the rows are */
} cc__node_t;

typedef struct {
    uint64_t carried, last_used_us;
} cc__deleg_t;

struct cluster__counts {
    char self_id[64];
    cc__node_t *nodes; /* hub_count_nodes as the last beat read it */
    size_t n_nodes;
    hub_map_t *flows;  /* "NODE SENDER RECEIVER SERVICE" -> hub_flows_sum_t *: other nodes' rows,
                          and this node's own from before it started (its base) */
    hub_map_t *delegs; /* "NODE RULE PROCEDURE" -> cc__deleg_t *, the same */
    uint64_t rev;      /* this node's last write */
    bool all;          /* every flow and rule is written next time */
    bool pending;      /* a write was sent and not confirmed yet */
    uint64_t deleg_sig, deleg_sig_sent; /* what the rules carried, as last written */
};

/* ---- helpers ---------------------------------------------------------------- */

static void cc__hex(FILE *f, const char *s)
{
    fputs("'\\x", f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fprintf(f, "%02x", *p);
    fputs("'::bytea", f);
}

static uint64_t cc__u64(const PGresult *res, int r, int c)
{
    return strtoull(PQgetvalue(res, r, c), NULL, 10);
}

/* "outcome=count,..." into f's refusals. */
static void cc__refusals_parse(hub_flows_sum_t *f, const char *text)
{
    f->info.n_refusals = 0;
    for (const char *p = text; *p;) {
        const char *eq = strchr(p, '=');
        if (!eq || eq == p || (size_t)(eq - p) > HUB_FLOWS_OUTCOME_MAX)
            return;
        char outcome[HUB_FLOWS_OUTCOME_MAX + 1];
        memcpy(outcome, p, (size_t)(eq - p));
        outcome[eq - p] = '\0';
        char *end;
        hub_flows_sum_refusal(f, outcome, strtoull(eq + 1, &end, 10));
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end)
            return;
    }
}

static cc__node_t *cc__node(cluster__counts_t *cc, const char *id)
{
    for (size_t i = 0; i < cc->n_nodes; i++)
        if (!strcmp(cc->nodes[i].node_id, id))
            return &cc->nodes[i];
    return NULL;
}

/* ---- results ---------------------------------------------------------------- */

/* Rows (counts_node, written_at_us, rev) of hub_count_nodes. */
static void cc__nodes_result(cluster__counts_t *cc, const PGresult *res)
{
    int rows = PQntuples(res);
    cc__node_t *nodes = calloc((size_t)rows + 1, sizeof *nodes);
    if (!nodes)
        return;
    size_t n = 0;
    for (int r = 0; r < rows; r++) {
        cc__node_t *was = cc__node(cc, PQgetvalue(res, r, 0));
        cc__node_t *to = &nodes[n++];
        core__copy_str(to->node_id, sizeof to->node_id, PQgetvalue(res, r, 0));
        to->written_at_us = cc__u64(res, r, 1);
        to->rev = was ? was->rev : 0;
        to->rev_next = cc__u64(res, r, 2);
    }
    free(cc->nodes);
    cc->nodes = nodes;
    cc->n_nodes = n;
}

/* Rows (flow_node, rev, sender, receiver, service (hex), accepted, refused,
 * delivered, settled, dead_lettered, bytes, first_at_us, last_at_us,
 * refusals (hex)). */
static void cc__flows_result(cluster__counts_t *cc, const PGresult *res)
{
    if (!cc->flows && !(cc->flows = hub_map_new()))
        return;
    for (int r = 0; r < PQntuples(res); r++) {
        char s[CC__NAME_MAX], v[CC__NAME_MAX], x[CC__NAME_MAX], refusals[CC__NAME_MAX];
        if (!hub_unhex_text(PQgetvalue(res, r, 2), s, sizeof s) ||
            !hub_unhex_text(PQgetvalue(res, r, 3), v, sizeof v) ||
            !hub_unhex_text(PQgetvalue(res, r, 4), x, sizeof x) ||
            !hub_unhex_text(PQgetvalue(res, r, 13), refusals, sizeof refusals))
            continue;
        const char *node = PQgetvalue(res, r, 0);
        size_t klen = strlen(node) + strlen(s) + strlen(v) + strlen(x) + 4;
        char *key = malloc(klen);
        if (!key)
            continue;
        snprintf(key, klen, "%s" CC__SEP "%s" CC__SEP "%s" CC__SEP "%s", node, s, v, x);
        hub_flows_sum_t *f = hub_map_get(cc->flows, key);
        if (!f)
            f = hub_flows_sum_new(cc->flows, key, s, v, x);
        free(key);
        if (!f)
            continue;
        f->info.accepted = cc__u64(res, r, 5);
        f->info.refused = cc__u64(res, r, 6);
        f->info.delivered = cc__u64(res, r, 7);
        f->info.settled = cc__u64(res, r, 8);
        f->info.dead_lettered = cc__u64(res, r, 9);
        f->info.bytes = cc__u64(res, r, 10);
        f->info.first_at_us = cc__u64(res, r, 11);
        f->info.last_at_us = cc__u64(res, r, 12);
        cc__refusals_parse(f, refusals);
    }
}

/* Rows (deleg_node, rev, rule (hex), procedure (hex), carried,
 * last_used_us). */
static void cc__delegs_result(cluster__counts_t *cc, const PGresult *res)
{
    if (!cc->delegs && !(cc->delegs = hub_map_new()))
        return;
    for (int r = 0; r < PQntuples(res); r++) {
        char rule[HUB_DELEGATION_KEY_MAX], proc[HUB_PROCEDURE_CODE_MAX];
        char key[HUB_DELEGATION_KEY_MAX + HUB_PROCEDURE_CODE_MAX + 80];
        if (!hub_unhex_text(PQgetvalue(res, r, 2), rule, sizeof rule) ||
            !hub_unhex_text(PQgetvalue(res, r, 3), proc, sizeof proc))
            continue;
        snprintf(key, sizeof key, "%s" CC__SEP "%s" CC__SEP "%s", PQgetvalue(res, r, 0), rule,
                 proc);
        cc__deleg_t *d = hub_map_get(cc->delegs, key);
        if (!d) {
            d = calloc(1, sizeof *d);
            if (!d || hub_map_put(cc->delegs, key, d) != 0) {
                free(d);
                continue;
            }
        }
        d->carried = cc__u64(res, r, 4);
        d->last_used_us = cc__u64(res, r, 5);
    }
}

bool cluster_counts__result(cluster__counts_t *cc, const PGresult *res)
{
    if (!cc || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) < 1)
        return false;
    const char *first = PQfname(res, 0);
    if (!strcmp(first, "counts_written")) {
        cc->pending = false;
        cc->deleg_sig = cc->deleg_sig_sent;
    } else if (!strcmp(first, "counts_node") && PQnfields(res) == 3) {
        cc__nodes_result(cc, res);
    } else if (!strcmp(first, "flow_node") && PQnfields(res) == 14) {
        cc__flows_result(cc, res);
    } else if (!strcmp(first, "deleg_node") && PQnfields(res) == 6) {
        cc__delegs_result(cc, res);
        /* The last of ours: what hub_count_nodes said is read now. */
        for (size_t i = 0; i < cc->n_nodes; i++)
            cc->nodes[i].rev = cc->nodes[i].rev_next;
    } else {
        return false;
    }
    return true;
}

void cluster_counts__failed(cluster__counts_t *cc)
{
    if (!cc)
        return;
    if (cc->pending)
        cc->all = true;
    cc->pending = false;
}

/* ---- the beat ---------------------------------------------------------------- */

static const char CC__NODES_SQL[] =
    "SELECT node_id AS counts_node, written_at_us, rev FROM hub_count_nodes ORDER BY node_id;";
static const char CC__FLOW_COLS[] =
    "SELECT node_id AS flow_node, rev, encode(sender, 'hex'), encode(receiver, 'hex'), "
    "encode(service, 'hex'), accepted, refused, delivered, settled, dead_lettered, bytes, "
    "first_at_us, last_at_us, encode(refusals, 'hex') FROM hub_flow_counts";
static const char CC__DELEG_COLS[] =
    "SELECT node_id AS deleg_node, rev, encode(rule, 'hex'), encode(procedure, 'hex'), carried, "
    "last_used_us FROM hub_delegation_counts";

typedef struct {
    cluster__counts_t *cc;
    FILE *f;
    size_t n;
    uint64_t rev;
} cc__write_t;

/* One changed flow: this node's base plus its live counts. */
static void cc__write_flow(const hub_flows_info_t *live, void *user)
{
    cc__write_t *w = user;
    const cluster__counts_t *cc = w->cc;
    size_t klen = strlen(cc->self_id) + strlen(live->sender) + strlen(live->receiver) +
                  strlen(live->service) + 4;
    char *key = malloc(klen);
    if (!key)
        return;
    snprintf(key, klen, "%s" CC__SEP "%s" CC__SEP "%s" CC__SEP "%s", cc->self_id, live->sender,
             live->receiver, live->service);
    const hub_flows_sum_t *sum = cc->flows ? hub_map_get(cc->flows, key) : NULL;
    free(key);
    static const hub_flows_info_t none = {0};
    const hub_flows_info_t *base = sum ? &sum->info : &none;
    uint64_t first = live->first_at_us;
    if (base->first_at_us && (!first || base->first_at_us < first))
        first = base->first_at_us;
    fputs(w->n++ ? ",("
                 : "INSERT INTO hub_flow_counts AS c (node_id, sender, receiver, service, "
                   "accepted, refused, delivered, settled, dead_lettered, bytes, "
                   "first_at_us, last_at_us, refusals, rev) VALUES (",
          w->f);
    fprintf(w->f, "'%s', ", cc->self_id);
    cc__hex(w->f, live->sender);
    fputs(", ", w->f);
    cc__hex(w->f, live->receiver);
    fputs(", ", w->f);
    cc__hex(w->f, live->service);
    uint64_t last = live->last_at_us > base->last_at_us ? live->last_at_us : base->last_at_us;
    fprintf(w->f,
            ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
            ", %" PRIu64 ", %" PRIu64 ", ",
            base->accepted + live->accepted, base->refused + live->refused,
            base->delivered + live->delivered, base->settled + live->settled,
            base->dead_lettered + live->dead_lettered, base->bytes + live->bytes, first, last);
    /* Refusals by outcome, the base's and the live ones added up. */
    char text[CC__NAME_MAX] = "";
    size_t len = 0;
    for (size_t i = 0; i < base->n_refusals; i++) {
        uint64_t n = base->refusals[i].count;
        for (size_t k = 0; k < live->n_refusals; k++)
            if (!strcmp(live->refusals[k].outcome, base->refusals[i].outcome))
                n += live->refusals[k].count;
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%s=%llu", len ? "," : "",
                                base->refusals[i].outcome, (unsigned long long)n);
        if (len >= sizeof text)
            break;
    }
    for (size_t k = 0; k < live->n_refusals && len < sizeof text; k++) {
        bool seen = false;
        for (size_t i = 0; i < base->n_refusals; i++)
            seen |= !strcmp(live->refusals[k].outcome, base->refusals[i].outcome);
        if (!seen)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s=%llu", len ? "," : "",
                                    live->refusals[k].outcome,
                                    (unsigned long long)live->refusals[k].count);
    }
    if (len >= sizeof text)
        text[0] = '\0';
    cc__hex(w->f, text);
    fprintf(w->f, ", %llu)", (unsigned long long)w->rev);
}

/* The rules' rows: each rule with its base, whole and per procedure. */
static void cc__write_delegs(cc__write_t *w, const hub_delegations_t *d)
{
    const cluster__counts_t *cc = w->cc;
    hub_map_t *written = hub_map_new();
    if (!written)
        return;
    hub_delegation_info_t r;
    size_t n = 0;
    w->n = 0;
    for (size_t i = 0; hub_delegations_info(d, i, &r) == 0; i++) {
        char rule[HUB_DELEGATION_KEY_MAX];
        if (hub_delegation_info_key(&r, rule, sizeof rule) != 0)
            continue;
        for (size_t k = 0; k <= r.n_procedures; k++) {
            const char *proc = k == 0 ? "" : r.procedures[k - 1];
            uint64_t carried = k == 0 ? r.carried : r.procedure_carried[k - 1];
            char key[HUB_DELEGATION_KEY_MAX + HUB_PROCEDURE_CODE_MAX + 80];
            snprintf(key, sizeof key, "%s" CC__SEP "%s" CC__SEP "%s", cc->self_id, rule, proc);
            const cc__deleg_t *base = cc->delegs ? hub_map_get(cc->delegs, key) : NULL;
            if (!carried || hub_map_get(written, key) || hub_map_put(written, key, written) != 0)
                continue;
            uint64_t last = r.last_used_us;
            if (base && base->last_used_us > last)
                last = base->last_used_us;
            fputs(n++ ? ",("
                      : "INSERT INTO hub_delegation_counts AS c (node_id, rule, "
                        "procedure, carried, last_used_us, rev) VALUES (",
                  w->f);
            fprintf(w->f, "'%s', ", cc->self_id);
            cc__hex(w->f, rule);
            fputs(", ", w->f);
            cc__hex(w->f, proc);
            fprintf(w->f, ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
                    carried + (base ? base->carried : 0), last, w->rev);
        }
    }
    hub_map_destroy(&written);
    w->n = n;
    if (n)
        fputs(" ON CONFLICT (node_id, rule, procedure) DO UPDATE SET carried = EXCLUDED.carried, "
              "last_used_us = EXCLUDED.last_used_us, rev = EXCLUDED.rev RETURNING 1",
              w->f);
}

/* What the rules carried, in one figure that changes when any count does. */
static uint64_t cc__deleg_sig(const hub_delegations_t *d)
{
    uint64_t sig = (uint64_t)(uintptr_t)d;
    hub_delegation_info_t r;
    for (size_t i = 0; hub_delegations_info(d, i, &r) == 0; i++)
        sig += r.carried * 31u + r.last_used_us;
    return sig;
}

/* "rev > CASE node_id WHEN 'a' THEN 5 ... ELSE 0 END": rows the other nodes
 * wrote since this node last read them. */
static void cc__since(const cluster__counts_t *cc, FILE *f)
{
    fprintf(f, " WHERE node_id <> '%s' AND rev > ", cc->self_id);
    size_t k = 0;
    for (size_t i = 0; i < cc->n_nodes; i++) {
        if (!cc->nodes[i].rev || !strcmp(cc->nodes[i].node_id, cc->self_id))
            continue;
        fprintf(f, "%s'%s' THEN %llu", k++ ? " WHEN " : "CASE node_id WHEN ", cc->nodes[i].node_id,
                (unsigned long long)cc->nodes[i].rev);
    }
    fputs(k ? " ELSE 0 END;" : "0;", f);
}

char *cluster_counts__beat_sql(cluster__counts_t *cc, hub_server_t *self, PGconn *conn)
{
    (void)conn;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    /* This node's write: the flows and rules that changed, and its row,
     * in one statement. */
    cc__write_t w = {cc, f, 0, cc->rev + 1};
    /* The beat before this is committed whatever becomes of the counts. */
    fputs("COMMIT; WITH f AS (", f);
    hub_flows_changed(self->flows, cc->all, cc__write_flow, &w);
    if (w.n)
        fputs(" ON CONFLICT (node_id, sender, receiver, service) DO UPDATE SET accepted = "
              "EXCLUDED.accepted, refused = EXCLUDED.refused, delivered = EXCLUDED.delivered, "
              "settled = EXCLUDED.settled, dead_lettered = EXCLUDED.dead_lettered, bytes = "
              "EXCLUDED.bytes, first_at_us = EXCLUDED.first_at_us, last_at_us = "
              "EXCLUDED.last_at_us, refusals = EXCLUDED.refusals, rev = EXCLUDED.rev "
              "RETURNING 1",
              f);
    else
        fputs("SELECT 1", f);
    fputs("), d AS (", f);
    uint64_t sig = cc__deleg_sig(self->delegations);
    w.n = 0;
    if (cc->all || sig != cc->deleg_sig)
        cc__write_delegs(&w, self->delegations);
    if (!w.n)
        fputs("SELECT 1", f);
    cc->deleg_sig_sent = sig;
    fprintf(f,
            ") INSERT INTO hub_count_nodes (node_id, written_at_us, rev) VALUES ('%s', "
            "(extract(epoch FROM now()) * 1000000)::int8, %" PRIu64 ") ON CONFLICT (node_id) DO "
            "UPDATE SET written_at_us = EXCLUDED.written_at_us, rev = EXCLUDED.rev "
            "RETURNING rev AS counts_written;",
            cc->self_id, cc->rev + 1);
    cc->rev++;
    cc->all = false;
    cc->pending = true;
    /* What the others wrote since. */
    fputs(CC__NODES_SQL, f);
    fputs(CC__FLOW_COLS, f);
    cc__since(cc, f);
    fputs(CC__DELEG_COLS, f);
    cc__since(cc, f);
    if (fclose(f) != 0) {
        free(buf);
        cc->all = true;
        return NULL;
    }
    return buf;
}

/* ---- start, end ---------------------------------------------------------------- */

static int cc__load(PGconn *c, const char *sql, const char *node_id, PGresult **out, char *err,
                    size_t err_size)
{
    const char *p[] = {node_id};
    PGresult *res = PQexecParams(c, sql, node_id ? 1 : 0, NULL, node_id ? p : NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, err_size,
                 "cluster: cannot read the nodes' counts (%s); run `hubctl store init` to bring "
                 "the schema up to date",
                 res ? PQresultErrorMessage(res) : PQerrorMessage(c));
        PQclear(res);
        return HUB_ESTORE;
    }
    *out = res;
    return 0;
}

int cluster_counts__start(hub_server_t *self, PGconn *c, cluster__counts_t **out, char *err,
                          size_t err_size)
{
    *out = NULL;
    cluster__counts_t *cc = calloc(1, sizeof *cc);
    if (!cc) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    core__copy_str(cc->self_id, sizeof cc->self_id, self->cfg.node_id);
    cc->all = true;
    char nodes_sql[sizeof CC__NODES_SQL];
    memcpy(nodes_sql, CC__NODES_SQL, sizeof nodes_sql);
    nodes_sql[sizeof nodes_sql - 2] = '\0'; /* no ';' for PQexecParams */
    char flows_sql[sizeof CC__FLOW_COLS + 32], delegs_sql[sizeof CC__DELEG_COLS + 32];
    snprintf(flows_sql, sizeof flows_sql, "%s WHERE node_id = $1", CC__FLOW_COLS);
    snprintf(delegs_sql, sizeof delegs_sql, "%s WHERE node_id = $1", CC__DELEG_COLS);
    PGresult *res = NULL;
    int rc = cc__load(c, nodes_sql, NULL, &res, err, err_size);
    if (rc == 0) {
        cc__nodes_result(cc, res);
        PQclear(res);
        const cc__node_t *me = cc__node(cc, cc->self_id);
        cc->rev = me ? me->rev_next : 0;
        rc = cc__load(c, flows_sql, cc->self_id, &res, err, err_size);
    }
    if (rc == 0) {
        cc__flows_result(cc, res);
        PQclear(res);
        rc = cc__load(c, delegs_sql, cc->self_id, &res, err, err_size);
    }
    if (rc == 0) {
        cc__delegs_result(cc, res);
        PQclear(res);
    }
    if (rc != 0) {
        cluster_counts__destroy(&cc);
        return rc;
    }
    *out = cc;
    return 0;
}

void cluster_counts__destroy(cluster__counts_t **self_p)
{
    cluster__counts_t *cc = *self_p;
    if (!cc)
        return;
    hub_map_destroy_all(&cc->flows, hub_flows_sum_free);
    hub_map_destroy_all(&cc->delegs, free);
    free(cc->nodes);
    free(cc);
    *self_p = NULL;
}

/* ---- what /api/v1 adds up ----------------------------------------------------- */

void cluster__count_nodes(hub_server_t *self, hub_ops_count_node_visit visit, void *user)
{
    cluster__counts_t *cc = cluster__counts_of(self);
    if (!cc)
        return;
    hub_ops_count_node_t me = {cc->self_id, hub_now_us(), true};
    visit(&me, user);
    for (size_t i = 0; i < cc->n_nodes; i++) {
        if (!strcmp(cc->nodes[i].node_id, cc->self_id))
            continue;
        hub_ops_count_node_t n = {cc->nodes[i].node_id, cc->nodes[i].written_at_us, false};
        visit(&n, user);
    }
}

void cluster__flow_counts(hub_server_t *self, hub_flows_visit visit, void *user)
{
    cluster__counts_t *cc = cluster__counts_of(self);
    size_t cursor = 0;
    void *value;
    while (cc && cc->flows && hub_map_next(cc->flows, &cursor, NULL, &value)) {
        const hub_flows_sum_t *f = value;
        visit(&f->info, user);
    }
}

void cluster__delegation_counts(hub_server_t *self, const char *rule_key, const char *procedure,
                                uint64_t *carried, uint64_t *last_used_us)
{
    cluster__counts_t *cc = cluster__counts_of(self);
    *carried = 0;
    *last_used_us = 0;
    if (!cc || !cc->delegs)
        return;
    bool self_listed = false;
    for (size_t i = 0; i <= cc->n_nodes; i++) {
        const char *node = i < cc->n_nodes ? cc->nodes[i].node_id : cc->self_id;
        if (i == cc->n_nodes && self_listed)
            break;
        self_listed |= !strcmp(node, cc->self_id);
        char key[HUB_DELEGATION_KEY_MAX + HUB_PROCEDURE_CODE_MAX + 80];
        snprintf(key, sizeof key, "%s" CC__SEP "%s" CC__SEP "%s", node, rule_key,
                 procedure ? procedure : "");
        const cc__deleg_t *d = hub_map_get(cc->delegs, key);
        if (!d)
            continue;
        *carried += d->carried;
        if (d->last_used_us > *last_used_us)
            *last_used_us = d->last_used_us;
    }
}
