/* End to end: two active hubd nodes of one hub over one PostgreSQL store
 * (cluster = on). Real hubd and hub-adapter processes on 127.0.0.1, real
 * CURVE, a private PostgreSQL server (tests/support/with_postgres.sh; run
 * without one, the test starts itself again under it). The recorder
 * plugin writes one line per handled message, so the test counts what the
 * receiver's handler saw, whichever node delivered it. */
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define RECEIVER "VN/GOV/VPCP/DVCQG"

static hubfix_t a, b;
static char record_path[PATH_MAX];
static char state_dir[PATH_MAX];

static const char *node_conf(const char *node, char *buf, size_t size)
{
    snprintf(buf, size,
             "cluster = on\ncluster_beat_ms = 300\nnode_id = %s\nredelivery_ms = 1000\n"
             "http_listen = 127.0.0.1:0\n",
             node);
    return buf;
}

static void setup(void)
{
    char conf[512];
    hubfix_init(&a, node_conf("node-a", conf, sizeof conf));
    hubfix_add_member(&a, SENDER, true);
    hubfix_add_member(&a, RECEIVER, true);
    hubfix_init_node(&b, &a, "b", node_conf("node-b", conf, sizeof conf));
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
        ck_assert_int_eq(adp_post_event(c, RECEIVER, "record/v1", "text/plain", payload,
                                        (size_t)len, 0, NULL),
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

static bool wait_pg_count(const char *sql, long long want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        if (pg_count(sql) == want)
            return true;
        tk_sleep_ms(100);
    }
    return false;
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
    post(s, "online", 200);
    wait_acked(s, 60);
    ck_assert_msg(tk_wait_lines(record_path, 200, 30000), "receiver on B got %d of 200",
                  tk_count_lines(record_path));

    /* Sent while the receiver is away: queued in the shared store. */
    ck_assert_int_eq(tk_stop(rcv), 0);
    post(s, "offline", 100);
    wait_acked(s, 60);
    tk_sleep_ms(300);
    ck_assert_int_eq(tk_count_lines(record_path), 200);
    rcv = start_receiver(&b);
    ck_assert_msg(tk_wait_lines(record_path, 300, 30000), "receiver back on B got %d of 300",
                  tk_count_lines(record_path));
    assert_once("online", 200);
    assert_once("offline", 100);

    /* Node B dies while it delivers. */
    post(s, "killed", 300);
    for (int i = 0; i < 300 && tk_count_lines(record_path) < 330; i++)
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
    ck_assert_msg(tk_wait_lines(record_path, 600, 30000), "receiver moved to A got %d of 600",
                  tk_count_lines(record_path));
    tk_sleep_ms(1500); /* anything handled twice would show now */
    ck_assert_int_eq(tk_count_lines(record_path), 600);
    assert_once("online", 200);
    assert_once("offline", 100);
    assert_once("killed", 300);
    adp_close(&s);
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
    Suite *suite = suite_create("e2e_cluster");
    TCase *tc = tcase_create("cluster");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, durable_across_nodes_and_node_killed);
    suite_add_tcase(suite, tc);
    return tk_run_suite(suite);
}
