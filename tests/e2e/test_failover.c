/* End to end: a member configured with several hub endpoints (the nodes of
 * one hub, sharing its key) moves to the next node when its node dies, and
 * the application does not notice: every event it posted is ACKed, those
 * the dead node had not ACKed by the node it moved to, none is refused.
 * Also: hub-adapter's hub_endpoints setting, and its errors; and the audit
 * logs of two nodes verified together, each record and each problem
 * attributed to its node. */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define A "VN/GOV/HN-STP/HOTICH"
#define B "VN/GOV/HN-SKHDT/DKKD"
#define EVENTS 3000

static hubfix_t node1, node2;

/* Two hubd with the same hub key and member keys, each with its own LMDB
 * store and audit log, node_id n1 and n2. */
static void setup(void)
{
    hubfix_init(&node1, "node_id = n1\n");
    HUBFIX_ADD_MEMBERS(&node1, A, B);
    hubfix_init(&node2, "node_id = n2\n");
    ck_assert_int_eq(tk_shf(10000,
                            "cp -a '%s/secrets/.' '%s/secrets/' && cp -a '%s/keys/.' '%s/keys/'",
                            node1.dir, node2.dir, node1.dir, node2.dir),
                     0);
    hubfix_start(&node1);
    hubfix_start(&node2);
}

/* Both hubd stop cleanly first: each cleanup stops every process left. */
static void teardown(void)
{
    if (node1.hubd)
        hubfix_stop(&node1);
    if (node2.hubd)
        hubfix_stop(&node2);
    node1.hubd = node2.hubd = 0;
    hubfix_cleanup(&node1);
    hubfix_cleanup(&node2);
}

typedef struct {
    char endpoint1[256];
    int acked_by_1, acked_by_2, acked_elsewhere;
    int nacked;
    char nack[512];
    uint64_t first_ack_by_2_ms; /* when the second node's first ACK came */
} tally_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_outcome(adp_client_t *c, const adp_outcome_t *o, void *user)
{
    tally_t *t = user;
    if (!o->acked) {
        if (!t->nacked++)
            snprintf(t->nack, sizeof t->nack, "%s: %s", o->message_id, o->reason);
        return;
    }
    /* Receipts come over the connection in use: its node ACKed. */
    const char *ep = adp_hub_endpoint(c);
    if (!strcmp(ep, t->endpoint1))
        t->acked_by_1++;
    else if (!strcmp(ep, node2.endpoint)) {
        if (!t->acked_by_2++)
            t->first_ack_by_2_ms = now_ms();
    } else
        t->acked_elsewhere++;
}

/* Posts events until *posted reaches `until`, in chunks of 25, processing
 * traffic between chunks when `pump`. */
static void post_events(adp_client_t *c, int *posted, int until, bool pump)
{
    while (*posted < until) {
        for (int k = 0; k < 25 && *posted < until; k++, (*posted)++) {
            char payload[96], id[37];
            int len =
                snprintf(payload, sizeof payload, "{\"dossier\":\"000.00.01.H26-%06d\"}", *posted);
            ck_assert_int_eq(adp_post_event(c, B, "dossier.status/v1", "application/json", payload,
                                            (size_t)len, 0, id),
                             0);
        }
        if (pump)
            ck_assert_int_eq(adp_run(c, 1), 0);
    }
}

/* A client of A given the list first, sep, node 2 (endpoints holds it,
 * and conf points there), connected: asserts it serves from `on`. The
 * tests give the list with and without a space after the comma. */
static adp_client_t *connect_listed(hubfix_client_conf_t *conf, char endpoints[600],
                                    const char *first, const char *sep, const char *on)
{
    hubfix_client_conf(&node1, A, conf);
    snprintf(endpoints, 600, "%s%s%s", first, sep, node2.endpoint);
    conf->cfg.hub_endpoint = endpoints;
    char err[512];
    adp_client_t *c = NULL;
    ck_assert_msg(adp_connect(&conf->cfg, &c, err, sizeof err) == 0, "connect: %s", err);
    ck_assert_str_eq(adp_hub_endpoint(c), on);
    return c;
}

START_TEST(sender_moves_to_the_second_node_when_the_first_is_killed)
{
    hubfix_client_conf_t conf;
    char endpoints[600], err[512];
    adp_client_t *c = connect_listed(&conf, endpoints, node1.endpoint, ", ", node1.endpoint);
    tally_t t = {0};
    snprintf(t.endpoint1, sizeof t.endpoint1, "%s", node1.endpoint);
    adp_set_outcome_handler(c, on_outcome, &t);

    /* A third of the stream, until the first node has ACKed part of it;
     * then 200 more posted and sent without reading a receipt, so that
     * envelopes sent and not ACKed wait when the node dies; then the rest. */
    int posted = 0;
    post_events(c, &posted, EVENTS / 3, true);
    for (int waited = 0; t.acked_by_1 < 100 && waited < 20000; waited += 10)
        ck_assert_int_eq(adp_run(c, 10), 0);
    ck_assert_int_ge(t.acked_by_1, 100);
    post_events(c, &posted, EVENTS / 3 + 200, false);
    ck_assert_int_eq(adp_run(c, 0), 0); /* sends them */
    size_t pending_at_kill = adp_outbox_size(c);
    ck_assert_uint_gt(pending_at_kill, 0);
    uint64_t killed_ms = now_ms();
    tk_kill9(node1.hubd);
    node1.hubd = 0;
    post_events(c, &posted, EVENTS, true);
    for (int waited = 0; adp_outbox_size(c) > 0 && waited < 30000; waited += 50)
        ck_assert_int_eq(adp_run(c, 50), 0);

    ck_assert_msg(t.nacked == 0, "%d events refused, first: %s", t.nacked, t.nack);
    ck_assert_msg(adp_outbox_size(c) == 0, "%zu events never ACKed (on %s)", adp_outbox_size(c),
                  adp_hub_endpoint(c));
    ck_assert_int_eq(t.acked_by_1 + t.acked_by_2 + t.acked_elsewhere, EVENTS);
    ck_assert_int_eq(t.acked_elsewhere, 0);
    /* Everything the first node had not ACKed when it died, the second did. */
    ck_assert_int_ge((long)t.acked_by_2, (long)pending_at_kill);
    ck_assert_str_eq(adp_hub_endpoint(c), node2.endpoint);
    ck_assert(adp_connected(c));
    ck_assert_uint_ge(adp_failovers(c), 1);
    fprintf(stderr,
            "failover: %d events, %d ACKed by node 1, %d by node 2 (%zu pending at the "
            "kill), %llu moves, first ACK from node 2 %llu ms after the kill\n",
            EVENTS, t.acked_by_1, t.acked_by_2, pending_at_kill,
            (unsigned long long)adp_failovers(c),
            (unsigned long long)(t.first_ack_by_2_ms - killed_ms));
    adp_close(&c);

    /* The receiver, connected to the second node, gets what it stored. */
    hubfix_client_conf_t rconf;
    hubfix_client_conf(&node2, B, &rconf);
    adp_client_t *r = NULL;
    ck_assert_msg(adp_connect(&rconf.cfg, &r, err, sizeof err) == 0, "connect: %s", err);
    int got = 0;
    ck_assert_int_eq(adp_offer(r, "dossier.status/v1", hubfix_count_handler, &got), 0);
    for (int waited = 0; got < t.acked_by_2 && waited < 20000; waited += 50)
        ck_assert_int_eq(adp_run(r, 50), 0);
    ck_assert_int_ge(got, t.acked_by_2);
    adp_close(&r);
}
END_TEST

START_TEST(a_client_skips_a_dead_endpoint_and_cycles_back)
{
    /* The first endpoint has no hub (node 1 stopped): the client moves on. */
    char dead[256];
    snprintf(dead, sizeof dead, "%s", node1.endpoint);
    hubfix_stop(&node1);
    node1.hubd = 0;
    hubfix_client_conf_t conf;
    char endpoints[600], err[512];
    adp_client_t *c = connect_listed(&conf, endpoints, dead, ",", node2.endpoint);
    uint64_t seq = 0;
    ck_assert_int_eq(
        adp_send_event(c, B, "dossier.status/v1", "application/json", "{}", 2, 0, 5000, &seq), 0);
    ck_assert_uint_gt(seq, 0);
    /* Node 2 goes, node 1 comes back: the client cycles back to it, and an
     * event posted while no node served is ACKed there. */
    hubfix_start(&node1);
    hubfix_stop(&node2);
    node2.hubd = 0;
    char id[37];
    ck_assert_int_eq(adp_post_event(c, B, "dossier.status/v1", "application/json", "{}", 2, 0, id),
                     0);
    for (int waited = 0; adp_outbox_size(c) > 0 && waited < 20000; waited += 50)
        ck_assert_int_eq(adp_run(c, 50), 0);
    ck_assert_uint_eq(adp_outbox_size(c), 0);
    ck_assert_str_eq(adp_hub_endpoint(c), node1.endpoint);
    adp_close(&c);

    /* A bad list is refused at adp_new with the item named. */
    snprintf(endpoints, sizeof endpoints, "%s, tcp://127.0.0.1", node1.endpoint);
    ck_assert_int_eq(adp_new(&conf.cfg, &c, err, sizeof err), HUB_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, "'tcp://127.0.0.1' (item 2) is not a hub endpoint"), "%s", err);
}
END_TEST

/* A node that stops answering without closing its connections (SIGSTOP:
 * hung) is left once it has been silent for three heartbeats. */
START_TEST(a_silent_node_is_left)
{
    hubfix_client_conf_t conf;
    char endpoints[600];
    adp_client_t *c = connect_listed(&conf, endpoints, node1.endpoint, ",", node1.endpoint);
    ck_assert_int_eq(kill(node1.hubd, SIGSTOP), 0);
    uint64_t seq = 0;
    int rc = adp_send_event(c, B, "dossier.status/v1", "application/json", "{}", 2, 0, 10000, &seq);
    const char *where = adp_hub_endpoint(c);
    bool on_node2 = !strcmp(where, node2.endpoint);
    ck_assert_int_eq(kill(node1.hubd, SIGCONT), 0);
    ck_assert_msg(rc == 0, "send through a silent node's peer: %s", adp_last_error(c));
    ck_assert_msg(on_node2, "still on %s", where);
    ck_assert_uint_gt(seq, 0);
    adp_close(&c);
}
END_TEST

/* hub-adapter with hub_endpoints: a dead first node, then the live one. */
START_TEST(hub_adapter_takes_a_list_of_endpoints)
{
    char conf_path[PATH_MAX], log_path[PATH_MAX], secret[PATH_MAX], conf[4096];
    snprintf(conf_path, sizeof conf_path, "%s/adapter.conf", node2.dir);
    snprintf(log_path, sizeof log_path, "%s/adapter.log", node2.dir);
    hubfix_secret_path(&node2, B, secret);
    char dead[256];
    snprintf(dead, sizeof dead, "%s", node1.endpoint);
    hubfix_stop(&node1);
    node1.hubd = 0;
    snprintf(conf, sizeof conf,
             "hub_endpoints = %s , %s\nhub_key_file = %s/secrets/VN.GOV.HN-LGSP.HUB.pub\n"
             "member_key_file = %s\nplugin = %s\n",
             dead, node2.endpoint, node2.dir, secret, tk_plugin("echo"));
    tk_write_file(conf_path, conf);
    char *argv[] = {(char *)tk_bin("hub-adapter"), "--config", conf_path, NULL};
    pid_t pid = tk_spawn(argv, log_path);
    ck_assert_msg(tk_wait_file_contains(log_path, "msg=\"serving\"", 15000),
                  "hub-adapter with hub_endpoints did not start; see %s", log_path);
    adp_client_t *a = hubfix_connect(&node2, A);
    adp_reply_t reply = {0};
    ck_assert_int_eq(adp_request(a, B, "echo/v1", "text/plain", "xin chao", 8, 0, 5000, &reply), 0);
    ck_assert_uint_eq(reply.payload_len, 8);
    adp_reply_free(&reply);
    adp_close(&a);
    ck_assert_int_eq(tk_stop(pid), 0);

    /* Configuration errors: the runtime refuses to start, naming the problem. */
    static const struct {
        const char *lines;
        const char *expected;
    } bad[] = {
        {"hub_endpoints = tcp://127.0.0.1:5555, tcp://hub2\n",
         "'tcp://hub2' (item 2) is not a hub endpoint"},
        {"hub_endpoints = tcp://127.0.0.1:5555,,tcp://127.0.0.1:5556\n", "item 2 of"},
        {"hub_endpoints = tcp://127.0.0.1:70000\n", "'tcp://127.0.0.1:70000' (item 1)"},
        {"hub_endpoint = tcp://127.0.0.1:5555, tcp://127.0.0.1:5556\n",
         "list several hub nodes with hub_endpoints"},
        {"hub_endpoint = tcp://127.0.0.1:5555\nhub_endpoints = tcp://127.0.0.1:5556\n",
         "both hub_endpoint and hub_endpoints are set"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(conf, sizeof conf,
                 "%shub_key_file = %s/secrets/VN.GOV.HN-LGSP.HUB.pub\nmember_key_file = %s\n"
                 "plugin = %s\n",
                 bad[i].lines, node2.dir, secret, tk_plugin("echo"));
        tk_write_file(conf_path, conf);
        char *out = NULL;
        int rc = tk_run(argv, &out, 10000);
        ck_assert_msg(rc != 0 && out && strstr(out, "bad configuration") &&
                          strstr(out, bad[i].expected),
                      "config %zu: exit %d, output: %s", i, rc, out ? out : "(none)");
        free(out);
    }
}
END_TEST

/* `hubctl audit ARGS...` (NULL-terminated); output (stdout and stderr) in
 * *out; returns the exit code. */
static int hubctl_audit(char **out, ...)
{
    char *argv[16] = {(char *)tk_bin("hubctl"), "audit"};
    va_list ap;
    va_start(ap, out);
    size_t n = 2;
    for (char *a; n < 15 && (a = va_arg(ap, char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return tk_run(argv, out, 60000);
}

/* Each node's audit log names the node (node_id); `hubctl audit verify`
 * over both logs reports per node, and names the node whose log was
 * altered; `audit show` over both says which node wrote each record. */
START_TEST(audit_logs_of_two_nodes_name_their_node)
{
    /* One event through each node. */
    char ids[2][37];
    hubfix_t *nodes[2] = {&node1, &node2};
    for (int k = 0; k < 2; k++) {
        adp_client_t *c = hubfix_connect(nodes[k], A);
        ck_assert_int_eq(
            adp_post_event(c, B, "dossier.status/v1", "application/json", "{}", 2, 0, ids[k]), 0);
        for (int waited = 0; adp_outbox_size(c) > 0 && waited < 10000; waited += 50)
            ck_assert_int_eq(adp_run(c, 50), 0);
        ck_assert_uint_eq(adp_outbox_size(c), 0);
        adp_close(&c);
    }
    hubfix_stop(&node1);
    hubfix_stop(&node2);
    char dir1[PATH_MAX], dir2[PATH_MAX], pub[PATH_MAX];
    snprintf(dir1, sizeof dir1, "%s/data/audit", node1.dir);
    snprintf(dir2, sizeof dir2, "%s/data/audit", node2.dir);
    snprintf(pub, sizeof pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", node1.dir);

    char *out = NULL;
    int rc = hubctl_audit(&out, "verify", dir1, dir2, "--hub-key", pub, NULL);
    ck_assert_msg(rc == 0, "verify exited %d: %s", rc, out);
    ck_assert_msg(strstr(out, "node n1 (") && strstr(out, "node n2 (") &&
                      strstr(out, "records written by node n1") &&
                      strstr(out, "records written by node n2") &&
                      strstr(out, "2 node logs: all intact"),
                  "%s", out);
    free(out);
    /* One key per log, in order, works too; any other count of keys is a
     * usage error that says what to give. */
    rc = hubctl_audit(&out, "verify", dir1, dir2, "--hub-key", pub, "--hub-key", pub, NULL);
    ck_assert_msg(rc == 0, "verify exited %d: %s", rc, out);
    free(out);
    char dir3[PATH_MAX];
    snprintf(dir3, sizeof dir3, "%s/data", node1.dir);
    rc = hubctl_audit(&out, "verify", dir1, dir2, dir3, "--hub-key", pub, "--hub-key", pub, NULL);
    ck_assert_msg(rc == 2 && strstr(out, "once per DIR") && strstr(out, "3 DIR, 2 --hub-key"),
                  "exit %d: %s", rc, out);
    free(out);

    /* Which node wrote each record of a message. */
    rc = hubctl_audit(&out, "show", dir1, dir2, "--message", ids[1], NULL);
    ck_assert_msg(rc == 0 && strstr(out, "ACCEPTED") && strstr(out, "node=n2") &&
                      !strstr(out, "node=n1"),
                  "exit %d: %s", rc, out);
    free(out);
    rc = hubctl_audit(&out, "show", dir1, dir2, "--service", "dossier.status/v1", NULL);
    ck_assert_msg(rc == 0 && strstr(out, "node=n1") && strstr(out, "node=n2"), "exit %d: %s", rc,
                  out);
    free(out);

    /* Node 2's ACCEPTED record altered: the report names node 2, and node
     * 1's log still verifies. */
    ck_assert_int_eq(tk_shf(10000,
                            "cd '%s' && grep -q '\"event\":\"ACCEPTED\"' audit-000001.log && "
                            "sed -i '/\"event\":\"ACCEPTED\"/s/\"ts\":1/\"ts\":2/' "
                            "audit-000001.log",
                            dir2),
                     0);
    rc = hubctl_audit(&out, "verify", dir1, dir2, "--hub-key", pub, NULL);
    ck_assert_msg(rc == 1, "verify of an altered log exited %d: %s", rc, out);
    ck_assert_msg(strstr(out, "node n2 (") && strstr(out, "NOT intact") &&
                      strstr(out, "1 intact, 1 NOT intact (n2)") &&
                      strstr(out, "records written by node n1"),
                  "%s", out);
    fprintf(stderr, "%s", out);
    free(out);
}
END_TEST

TK_MAIN("failover",
        TK_CASE("failover", setup, teardown, 120,
                sender_moves_to_the_second_node_when_the_first_is_killed,
                a_client_skips_a_dead_endpoint_and_cycles_back, a_silent_node_is_left,
                hub_adapter_takes_a_list_of_endpoints),
        TK_CASE("audit", setup, teardown, 120, audit_logs_of_two_nodes_name_their_node))
