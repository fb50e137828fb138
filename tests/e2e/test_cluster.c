/* End to end: two active hubd nodes of one hub over one PostgreSQL store
 * (cluster = on). Real hubd and hub-adapter processes on 127.0.0.1, real
 * CURVE, a private PostgreSQL server (tests/support/with_postgres.sh; run
 * without one, the test starts itself again under it). The recorder
 * plugin writes one line per handled message, so the test counts what the
 * receiver's handler saw, whichever node delivered it. */
#include "hubfix.h"
#include "testkit.h"

#include "hub_keys.h"

#include <check.h>
#include <zmq.h>
#include <jansson.h>
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define RECEIVER "VN/GOV/VPCP/DVCQG"
#define ECHO "VN/GOV/BCA/CSDLQG"
#define SUB "VN/GOV/HN-SKHDT/DKKD"

static hubfix_t a, b;
static char record_path[PATH_MAX];
static char state_dir[PATH_MAX];

static const char *node_conf(const char *node, char *buf, size_t size)
{
    snprintf(buf, size,
             "cluster = on\ncluster_beat_ms = 300\nnode_id = %s\nredelivery_ms = 1000\n"
             "http_listen = 127.0.0.1:0\ncluster_listen = tcp://127.0.0.1:*\n",
             node);
    return buf;
}

static void setup(void)
{
    char conf[512];
    hubfix_init(&a, node_conf("node-a", conf, sizeof conf));
    hubfix_add_member(&a, SENDER, true);
    hubfix_add_member(&a, RECEIVER, true);
    hubfix_add_member(&a, ECHO, true);
    hubfix_add_member(&a, SUB, true);
    hubfix_init_node(&b, &a, "b", node_conf("node-b", conf, sizeof conf));
    /* Ủy quyền: ECHO's deleg/v1 goes to RECEIVER, on both nodes. */
    char path[PATH_MAX], line[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/delegations.conf", a.dir);
    tk_write_file(path, "delegate " ECHO "/deleg/v1 -> " RECEIVER "\n");
    snprintf(line, sizeof line, "delegations_file = %s\n", path);
    hubfix_append_conf(&a, line);
    hubfix_append_conf(&b, line);
    snprintf(record_path, sizeof record_path, "%s/received.txt", a.dir);
    snprintf(state_dir, sizeof state_dir, "%s/receiver-state", a.dir);
    hubfix_start(&a);
    hubfix_start(&b);
}

static void teardown(void)
{
    if (b.hubd > 0)
        hubfix_stop(&b);
    hubfix_cleanup(&a);
}

/* The recorder as RECEIVER, connected to node f. */
static pid_t start_receiver(hubfix_t *f)
{
    char conf[2048];
    snprintf(conf, sizeof conf, "plugin.file = %s\nstate_dir = %s\n", record_path, state_dir);
    return hubfix_start_adapter(f, RECEIVER, "recorder", conf);
}

static void post(adp_client_t *c, const char *tag, int count)
{
    for (int i = 0; i < count; i++) {
        char payload[64];
        int len = snprintf(payload, sizeof payload, "%s %d", tag, i);
        ck_assert_int_eq(
            adp_post_event(c, RECEIVER, "record/v1", "text/plain", payload, (size_t)len, 0, NULL),
            0);
        if (i % 100 == 99)
            adp_run(c, 0);
    }
}

static void wait_acked(adp_client_t *c, int timeout_s)
{
    for (int waited = 0; adp_outbox_size(c) > 0 && waited < timeout_s * 10; waited++)
        adp_run(c, 100);
    ck_assert_msg(adp_outbox_size(c) == 0, "%zu messages never ACKed: %s", adp_outbox_size(c),
                  adp_last_error(c));
}

/* Each "<tag> i", i < count, from SENDER was handled exactly once. */
static void assert_once(const char *tag, int count)
{
    char *text = tk_read_file(record_path);
    ck_assert_ptr_nonnull(text);
    int *seen = calloc((size_t)count, sizeof *seen);
    char want[64];
    snprintf(want, sizeof want, "%s ", tag);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab1 = strchr(line, '\t');
        char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        ck_assert_msg(tab2 != NULL, "bad line: %s", line);
        *tab1 = '\0';
        if (strcmp(line, SENDER) != 0 || strncmp(tab2 + 1, want, strlen(want)) != 0)
            continue;
        int i = atoi(tab2 + 1 + strlen(want));
        ck_assert_int_lt(i, count);
        seen[i]++;
        ck_assert_msg(seen[i] == 1, "%s %d handled %d times", tag, i, seen[i]);
    }
    for (int i = 0; i < count; i++)
        ck_assert_msg(seen[i] == 1, "%s %d handled %d times", tag, i, seen[i]);
    free(seen);
    free(text);
}

/* One integer from the shared database. */
static long long pg_count(const char *sql)
{
    PGconn *c = PQconnectdb(getenv("HUB_TEST_PG_DSN"));
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "PostgreSQL: %s", PQerrorMessage(c));
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long long v = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(c);
    return v;
}

/* Clients kept talking to their hub while the test waits (the hub marks a
 * member silent for three heartbeats offline). */
static adp_client_t *talking[2];

static void idle(int ms)
{
    for (int waited = 0; waited < ms; waited += 50) {
        bool ran = false;
        for (int i = 0; i < 2; i++)
            if (talking[i]) {
                adp_run(talking[i], 25);
                ran = true;
            }
        if (!ran)
            tk_sleep_ms(50);
    }
}

static bool wait_pg_count(const char *sql, long long want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        if (pg_count(sql) == want)
            return true;
        idle(100);
    }
    return false;
}

/* GET path of node f as JSON (the caller decrefs). */
static json_t *api(hubfix_t *f, const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "http://%s%s", f->http, path);
    return tk_reply_json(tk_http("GET", url, NULL, NULL), url);
}

/* /api/v1/flows of node f: `field` added up over the flows from sender to
 * receiver (whatever service each node named them by). */
static long long flows_sum(hubfix_t *f, const char *sender, const char *receiver, const char *field)
{
    json_t *j = api(f, "/api/v1/flows");
    long long sum = 0;
    size_t i;
    json_t *flow;
    json_array_foreach(json_object_get(j, "flows"), i, flow)
    {
        if (!strcmp(json_string_value(json_object_get(flow, "sender")), sender) &&
            !strcmp(json_string_value(json_object_get(flow, "receiver")), receiver))
            sum += json_integer_value(json_object_get(flow, field));
    }
    json_decref(j);
    return sum;
}

/* Until node f's flows say `want` for field (its beat and the other
 * node's bring the counts; a few beats at most). */
static bool wait_flows(hubfix_t *f, const char *sender, const char *receiver, const char *field,
                       long long want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        if (flows_sum(f, sender, receiver, field) == want)
            return true;
        idle(100);
    }
    return false;
}

/* The nodes a cluster-wide answer of node f says it added up: asserts
 * node-a and node-b are among them, f itself as "self", and returns the
 * age in seconds of `node`'s counts. */
static double counted_nodes(hubfix_t *f, const char *path, const char *self, const char *node)
{
    json_t *j = api(f, path);
    ck_assert_int_gt(json_integer_value(json_object_get(j, "as_of_us")), 0);
    json_t *nodes = json_object_get(j, "nodes");
    ck_assert_int_eq(json_array_size(nodes), 2);
    double age = -1;
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        const char *id = json_string_value(json_object_get(n, "id"));
        ck_assert(!strcmp(id, "node-a") || !strcmp(id, "node-b"));
        ck_assert(json_is_true(json_object_get(n, "self")) == !strcmp(id, self));
        ck_assert_int_gt(json_integer_value(json_object_get(n, "as_of_us")), 0);
        if (!strcmp(id, node))
            age = json_number_value(json_object_get(n, "age_s"));
    }
    json_decref(j);
    ck_assert_msg(age >= 0, "%s: %s not listed", path, node);
    return age;
}

/* /api/v1/delegations of node f: what the rule to `delegate` carried. */
static long long carried(hubfix_t *f, const char *delegate)
{
    json_t *j = api(f, "/api/v1/delegations");
    long long n = -1;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "delegations"), i, r)
    {
        if (!strcmp(json_string_value(json_object_get(r, "delegate")), delegate))
            n = json_integer_value(json_object_get(r, "carried"));
    }
    json_decref(j);
    return n;
}

#define LOCATED_ON(node)                                                                           \
    "SELECT count(*) FROM hub_locations WHERE node_id = '" node "' AND expires_at > now() AND "    \
    "member = convert_to('" RECEIVER "', 'UTF8')"

/* (a) durable events from a sender on node A to a receiver on node B, all
 * handled once, with some sent while the receiver was away; (e) node B
 * killed with SIGKILL while deliveries flow: its location entries expire
 * and the receiver, moved to A, gets everything queued, once. */
START_TEST(durable_across_nodes_and_node_killed)
{
    pid_t rcv = start_receiver(&b);
    ck_assert_msg(wait_pg_count(LOCATED_ON("node-b"), 1, 5000),
                  "the receiver's location on node-b was not recorded");
    adp_client_t *s = hubfix_connect(&a, SENDER);
    talking[0] = s;
    post(s, "online", 200);
    wait_acked(s, 60);
    ck_assert_msg(tk_wait_lines(record_path, 200, 30000), "receiver on B got %d of 200",
                  tk_count_lines(record_path));
    /* /api/v1/flows is the hub's, whichever node is asked: A accepted the
     * 200, B delivered and settled them. */
    for (int n = 0; n < 2; n++) {
        hubfix_t *f = n ? &b : &a;
        ck_assert_msg(wait_flows(f, SENDER, RECEIVER, "accepted", 200, 10000),
                      "node %c: flows say %lld accepted, not 200", 'A' + n,
                      flows_sum(f, SENDER, RECEIVER, "accepted"));
        ck_assert_msg(wait_flows(f, SENDER, RECEIVER, "settled", 200, 10000),
                      "node %c: flows say %lld settled, not 200", 'A' + n,
                      flows_sum(f, SENDER, RECEIVER, "settled"));
        counted_nodes(f, "/api/v1/flows", n ? "node-b" : "node-a", "node-a");
    }

    /* Sent while the receiver is away: queued in the shared store. */
    ck_assert_int_eq(tk_stop(rcv), 0);
    post(s, "offline", 100);
    wait_acked(s, 60);
    idle(300);
    ck_assert_int_eq(tk_count_lines(record_path), 200);
    rcv = start_receiver(&b);
    ck_assert_msg(tk_wait_lines(record_path, 300, 30000), "receiver back on B got %d of 300",
                  tk_count_lines(record_path));
    assert_once("online", 200);
    assert_once("offline", 100);

    /* Every database session of both nodes is cut: each opens its
     * connections again by itself, without blocking its loop, and B hears
     * of new messages again. */
    ck_assert_int_ge(pg_count("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                              "pg_stat_activity WHERE datname = current_database() AND "
                              "application_name LIKE 'hubd-node-%') t"),
                     4);
    post(s, "reconnected", 100);
    wait_acked(s, 60);
    ck_assert_msg(tk_wait_lines(record_path, 400, 30000),
                  "after the cut, receiver on B got %d of 400", tk_count_lines(record_path));
    assert_once("reconnected", 100);
    ck_assert_msg(
        tk_wait_file_contains(b.hubd_log, "connection to the shared store open again", 5000),
        "node B's cluster connection was not opened again");

    /* Node B dies while it delivers. */
    post(s, "killed", 300);
    for (int i = 0; i < 300 && tk_count_lines(record_path) < 430; i++)
        adp_run(s, 10);
    tk_kill9(b.hubd);
    b.hubd = 0;
    wait_acked(s, 60);
    ck_assert_msg(wait_pg_count(LOCATED_ON("node-b"), 0, 5000),
                  "node-b's location entries did not expire");
    tk_stop(rcv);
    rcv = start_receiver(&a);
    ck_assert_msg(wait_pg_count(LOCATED_ON("node-a"), 1, 5000),
                  "the receiver's location on node-a was not recorded");
    ck_assert_msg(tk_wait_lines(record_path, 700, 30000), "receiver moved to A got %d of 700",
                  tk_count_lines(record_path));
    idle(1500); /* anything handled twice would show now */
    ck_assert_int_eq(tk_count_lines(record_path), 700);
    assert_once("online", 200);
    assert_once("offline", 100);
    assert_once("reconnected", 100);
    assert_once("killed", 300);
    talking[0] = NULL;
    adp_close(&s);
}
END_TEST

#define LOCATED(member, node)                                                                      \
    "SELECT count(*) FROM hub_locations WHERE node_id = '" node "' AND expires_at > now() AND "    \
    "member = convert_to('" member "', 'UTF8')"

/* lth.members/v1 asked through client c: whether `member` is listed
 * online. */
static bool directory_online(adp_client_t *c, const char *member)
{
    adp_reply_t reply;
    ck_assert_int_eq(adp_request(c, HUBFIX_HUB_ID, "lth.members/v1", "text/plain", "", 0,
                                 ADP_ONLINE_ONLY, 5000, &reply),
                     0);
    char *text = strndup((const char *)reply.payload, reply.payload_len);
    char want[256];
    snprintf(want, sizeof want, "\"id\":\"%s\",\"online\":true", member);
    bool online = strstr(text, want) != NULL;
    free(text);
    adp_reply_free(&reply);
    return online;
}

/* /api/v1/nodes of node f: asserts both nodes are listed alive, with the
 * members each has connected at least. */
static void assert_nodes(hubfix_t *f, int min_a, int min_b)
{
    char url[128];
    snprintf(url, sizeof url, "http://%s/api/v1/nodes", f->http);
    json_t *j = tk_reply_json(tk_http("GET", url, NULL, NULL), url);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "count")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "alive")), 2);
    json_t *nodes = json_object_get(j, "nodes");
    const char *ids[2] = {"node-a", "node-b"};
    int mins[2] = {min_a, min_b};
    for (size_t i = 0; i < 2; i++) {
        json_t *n = json_array_get(nodes, i);
        ck_assert_str_eq(json_string_value(json_object_get(n, "id")), ids[i]);
        ck_assert(json_is_true(json_object_get(n, "alive")));
        ck_assert_int_ge(json_integer_value(json_object_get(n, "members")), mins[i]);
        ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(n, "endpoint")), "tcp://"));
    }
    json_decref(j);
}

/* (b) online-only and queued request/reply from a member on A to one on
 * B; (c) a publication on A reaches a subscriber on B; (d) lth.members/v1
 * and /api/v1/nodes give the same answers on both nodes. */
START_TEST(requests_publications_and_directory_across_nodes)
{
    hubfix_start_adapter(&b, ECHO, "echo", NULL);
    ck_assert(wait_pg_count(LOCATED(ECHO, "node-b"), 1, 5000));
    adp_client_t *c = hubfix_connect(&a, SENDER);
    talking[0] = c;
    adp_reply_t reply;
    int rc = -1;
    /* Until node A's beat has seen where ECHO is (a beat or two). */
    for (int i = 0; i < 50 && rc != 0; i++) {
        rc = adp_request(c, ECHO, "echo/v1", "text/plain", "across?", 7, ADP_ONLINE_ONLY, 3000,
                         &reply);
        if (rc != 0)
            idle(100);
    }
    ck_assert_msg(rc == 0, "online-only request across nodes: %s", adp_last_error(c));
    ck_assert_uint_eq(reply.payload_len, 7);
    ck_assert_int_eq(memcmp(reply.payload, "across?", 7), 0);
    ck_assert_str_eq(reply.sender, ECHO);
    adp_reply_free(&reply);
    for (int i = 0; i < 5; i++) {
        rc = adp_request(c, ECHO, "echo/v1", "text/plain", "again", 5, ADP_ONLINE_ONLY, 3000,
                         &reply);
        ck_assert_msg(rc == 0, "online-only request %d: %s", i, adp_last_error(c));
        adp_reply_free(&reply);
    }
    rc = adp_request(c, ECHO, "echo/v1", "text/plain", "queued", 6, 0, 10000, &reply);
    ck_assert_msg(rc == 0, "queued request across nodes: %s", adp_last_error(c));
    ck_assert_int_eq(memcmp(reply.payload, "queued", 6), 0);
    adp_reply_free(&reply);

    /* (c) */
    hubfix_client_conf_t conf;
    hubfix_client_conf(&b, SUB, &conf);
    adp_client_t *sub = NULL;
    char err[512];
    int got = 0;
    ck_assert_int_eq(adp_new(&conf.cfg, &sub, err, sizeof err), 0);
    ck_assert_int_eq(adp_subscribe(sub, SENDER "/notice/v1", hubfix_count_handler, &got), 0);
    ck_assert_msg(adp_start(sub, err, sizeof err) == 0, "%s", err);
    talking[1] = sub;
    ck_assert(wait_pg_count("SELECT count(*) FROM hub_subscriptions", 1, 5000));
    for (int w = 0; w < 100 && !tk_count_of(a.hubd_log, "durable subscription learnt"); w++)
        idle(50); /* node A's next beat reads it */
    ck_assert_int_eq(tk_count_of(a.hubd_log, "durable subscription learnt"), 1);
    ck_assert_int_eq(adp_publish(c, "notice/v1", "text/plain", "to all", 6, 0, NULL), 0);
    for (int w = 0; w < 100 && adp_outbox_size(c) > 0; w++)
        adp_run(c, 50);
    ck_assert_msg(adp_outbox_size(c) == 0, "publication not ACKed: %s", adp_last_error(c));
    for (int w = 0; w < 100 && got < 1; w++)
        adp_run(sub, 50);
    ck_assert_int_eq(got, 1);
    /* Online-only: over the node link, to the subscriber connected to B. */
    ck_assert_int_eq(
        adp_publish(c, "notice/v1", "text/plain", "now only", 8, ADP_ONLINE_ONLY, NULL), 0);
    for (int w = 0; w < 100 && (adp_outbox_size(c) > 0 || got < 2); w++) {
        adp_run(c, 25);
        adp_run(sub, 25);
    }
    ck_assert_int_eq(got, 2);

    /* (d) Asked on A and on B. */
    ck_assert(wait_pg_count(LOCATED(SUB, "node-b"), 1, 5000));
    idle(700);
    const char *members[] = {SENDER, ECHO, SUB};
    for (size_t i = 0; i < 3; i++) {
        /* A beat or two on a busy machine. */
        for (int w = 0;
             w < 20 && !(directory_online(c, members[i]) && directory_online(sub, members[i])); w++)
            idle(250);
        ck_assert_msg(directory_online(c, members[i]), "node A: %s not online", members[i]);
        ck_assert_msg(directory_online(sub, members[i]), "node B: %s not online", members[i]);
    }
    ck_assert_msg(!directory_online(c, RECEIVER), "node A: %s online", RECEIVER);
    ck_assert_msg(!directory_online(sub, RECEIVER), "node B: %s online", RECEIVER);
    assert_nodes(&a, 1, 2);
    assert_nodes(&b, 1, 2);
    /* /metrics is each node's own, and says which node it is. */
    for (int n = 0; n < 2; n++) {
        char url[128], want[64];
        snprintf(url, sizeof url, "http://%s/metrics", n ? b.http : a.http);
        snprintf(want, sizeof want, "lth_node_info{node_id=\"node-%c\"} 1\n", 'a' + n);
        tk_reply_t m = tk_http("GET", url, NULL, NULL);
        ck_assert_int_eq(m.status, 200);
        ck_assert_msg(m.body && strstr(m.body, want), "%s has no %s", url, want);
        free(m.body);
    }

    /* (f) Delegation: 7 events to ECHO's deleg/v1 through node A go to
     * RECEIVER (offline: queued); node B's /api/v1/delegations counts
     * them, and its flows A's requests, even after node A is killed. */
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(
            adp_post_event(c, ECHO, "deleg/v1", "text/plain", "for the delegate", 16, 0, NULL), 0);
    for (int w = 0; w < 100 && adp_outbox_size(c) > 0; w++)
        adp_run(c, 50);
    ck_assert_msg(adp_outbox_size(c) == 0, "delegated events not ACKed: %s", adp_last_error(c));
    ck_assert_int_eq(carried(&a, RECEIVER), 7);
    for (int w = 0; w < 50 && carried(&b, RECEIVER) != 7; w++)
        idle(100);
    ck_assert_int_eq(carried(&b, RECEIVER), 7);
    counted_nodes(&b, "/api/v1/delegations", "node-b", "node-a");
    /* 7 requests to ECHO and 7 events for ECHO (delegated to RECEIVER) */
    long long to_echo = 0;
    for (int w = 0; w < 100 && to_echo != 14; w++) {
        to_echo =
            flows_sum(&b, SENDER, ECHO, "accepted") + flows_sum(&b, SENDER, RECEIVER, "accepted");
        if (to_echo != 14)
            idle(100);
    }
    ck_assert_msg(to_echo == 14, "node B: flows say %lld accepted from A, not 14", to_echo);
    talking[0] = NULL;
    adp_close(&c);
    tk_kill9(a.hubd);
    a.hubd = 0;
    tk_sleep_ms(1500); /* node A's heartbeat and locations expire; its counts stay */
    ck_assert_int_eq(carried(&b, RECEIVER), 7);
    ck_assert_int_eq(
        flows_sum(&b, SENDER, ECHO, "accepted") + flows_sum(&b, SENDER, RECEIVER, "accepted"), 14);
    ck_assert_msg(counted_nodes(&b, "/api/v1/flows", "node-b", "node-a") >= 1.0,
                  "node A's counts are not shown as old");
    talking[1] = NULL;
    adp_close(&sub);
}
END_TEST

/* (g) A member that has just connected to one node is reached online-only
 * through another at once: the node announces the new location (NOTIFY),
 * not at its next beat. Then it moves to the other node, and the same
 * holds the other way. */
START_TEST(new_location_known_at_once)
{
    /* Beats far apart: what the nodes learn within a second, they learn
     * from the announcement, not from a beat. */
    hubfix_restart_with(&a, "cluster_beat_ms = 8000\n");
    hubfix_restart_with(&b, "cluster_beat_ms = 8000\n");
    adp_client_t *from_a = hubfix_connect(&a, SENDER);
    adp_client_t *from_b = hubfix_connect(&b, SENDER);
    hubfix_t *nodes[2] = {&b, &a};
    const char *located[2] = {LOCATED(RECEIVER, "node-b"), LOCATED(RECEIVER, "node-a")};
    for (int round = 0; round < 2; round++) {
        hubfix_client_conf_t conf;
        hubfix_client_conf(nodes[round], RECEIVER, &conf);
        adp_client_t *rcv = NULL;
        char err[512];
        int got = 0;
        ck_assert_int_eq(adp_new(&conf.cfg, &rcv, err, sizeof err), 0);
        ck_assert_int_eq(adp_offer(rcv, "record/v1", hubfix_count_handler, &got), 0);
        ck_assert_msg(adp_start(rcv, err, sizeof err) == 0, "%s", err);
        /* As soon as the store has the location (written at the Hello,
         * not at a beat), the other node knows it too. */
        for (int w = 0; w < 200 && pg_count(located[round]) != 1; w++)
            tk_sleep_ms(5);
        ck_assert_int_eq(pg_count(located[round]), 1);
        adp_client_t *s = round == 0 ? from_a : from_b;
        int rc = adp_send_event(s, RECEIVER, "record/v1", "text/plain", "right now", 9,
                                ADP_ONLINE_ONLY, 5000, NULL);
        ck_assert_msg(rc == 0, "round %d: online-only to a member just connected to node %c: %s",
                      round, round == 0 ? 'B' : 'A', adp_last_error(s));
        for (int w = 0; w < 100 && got < 1; w++)
            adp_run(rcv, 50);
        ck_assert_int_eq(got, 1);
        adp_close(&rcv);
    }
    adp_close(&from_b);
    adp_close(&from_a);
}
END_TEST

/* A configuration that cannot work is refused with what to change; a node
 * link that another key tries to join is refused, and the hub serves on. */
START_TEST(bad_cluster_config_is_refused)
{
    hubfix_stop(&b);
    char *text = tk_read_file(b.conf_path);
    ck_assert_ptr_nonnull(text);
    /* Each line added to node B's configuration stops hubd (checking the
     * configuration, or starting) with what it says. */
    static const struct {
        const char *line;
        bool check_only;
        const char *says;
    } refused[] = {
        {"store = lmdb\n", true, "cluster = on needs store = postgresql"},
        /* A node name that cannot key its rows and audit records. */
        {"node_id = node b!\n", true, "node_id = node b!: give 1 to 63 letters, digits"},
        {"cluster_listen = tcp://192.0.2.1:1\n", false,
         "cluster_listen = tcp://192.0.2.1:1: cannot listen there"},
    };
    char *check[] = {(char *)tk_bin("hubd"), "--check-config", "--config", b.conf_path, NULL};
    char *run[] = {(char *)tk_bin("hubd"), "--config", b.conf_path, NULL};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char bad[8192];
        snprintf(bad, sizeof bad, "%s%s", text, refused[i].line);
        tk_write_file(b.conf_path, bad);
        char *out = NULL;
        ck_assert_int_ne(tk_run(refused[i].check_only ? check : run, &out, 20000), 0);
        ck_assert_msg(out && strstr(out, refused[i].says), "%s", out ? out : "");
        free(out);
    }
    free(text);

    /* A member's key (or any other than the hub's) cannot join node A's
     * link, even knowing the hub's public key. */
    PGconn *c = PQconnectdb(getenv("HUB_TEST_PG_DSN"));
    PGresult *res = PQexec(c, "SELECT cluster_endpoint FROM hub_nodes WHERE node_id = 'node-a'");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(res), 1);
    char link[256];
    snprintf(link, sizeof link, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(c);
    char hub_pub[PATH_MAX], err[256];
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", a.dir);
    hub_keypair_t hub, intruder;
    ck_assert_int_eq(hub_keyfile_read(hub_pub, &hub, err, sizeof err), 0);
    ck_assert_int_eq(hub_keypair_generate(SENDER, &intruder), 0);
    void *ctx = zmq_ctx_new();
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, hub.curve_public, 40);
    zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, intruder.curve_public, 40);
    zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, intruder.curve_secret, 40);
    ck_assert_int_eq(zmq_connect(d, link), 0);
    zmq_send(d, "f", 1, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(d, RECEIVER, strlen(RECEIVER), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(d, "x", 1, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(d, "node-x", 6, ZMQ_DONTWAIT);
    ck_assert_msg(tk_wait_file_contains(a.hubd_log, "cluster link refused", 5000),
                  "node A did not refuse a foreign key on its link");
    zmq_close(d);
    zmq_ctx_term(ctx);
    hub_keypair_wipe(&intruder);
    hubfix_start_adapter(&a, ECHO, "echo", NULL);
    hubfix_assert_serves(&a, SENDER, ECHO);
}
END_TEST

int main(void)
{
    /* Beside a private PostgreSQL server, started for this run. */
    const char *dsn = getenv("HUB_TEST_PG_DSN");
    if (!dsn || !*dsn) {
        const char *src = getenv("HUB_SOURCE_DIR");
        char script[PATH_MAX];
        snprintf(script, sizeof script, "%s/tests/support/with_postgres.sh", src ? src : ".");
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return 2;
        self[n] = '\0';
        char *args[] = {script, self, NULL};
        execv(script, args);
        fprintf(stderr, "test_cluster: cannot run %s: %s\n", script, strerror(errno));
        return 2;
    }
    tk_prepare_curl();
    Suite *suite = suite_create("e2e_cluster");
    TCase *tc = tcase_create("cluster");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, durable_across_nodes_and_node_killed);
    tcase_add_test(tc, requests_publications_and_directory_across_nodes);
    tcase_add_test(tc, new_location_known_at_once);
    tcase_add_test(tc, bad_cluster_config_is_refused);
    suite_add_tcase(suite, tc);
    return tk_run_suite(suite);
}
