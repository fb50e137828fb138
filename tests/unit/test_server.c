/* Routing inside one process: hub_server on its own loop thread, SDK clients
 * in the test thread, real CURVE sockets on 127.0.0.1. */
#include "adp.h"
#include "hub_config.h"
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_server.h"
#include "hub_wire.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[PATH_MAX];
static uv_loop_t loop;
static hub_server_t *server;
static pthread_t loop_thread;

static void keygen(const char *id, bool known)
{
    hub_keypair_t kp;
    char err[HUB_ERRMSG_MAX], secrets[PATH_MAX + 16], keys[PATH_MAX + 16], pub[PATH_MAX];
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    ck_assert_int_eq(hub_keypair_generate(id, &kp), 0);
    ck_assert_int_eq(hub_keypair_write(&kp, secrets, pub, NULL, err, sizeof err), 0);
    if (known) {
        hub_keypair_t pubonly = kp;
        pubonly.has_secret = true; /* write() needs it; we keep only the .pub */
        char tmpdir[PATH_MAX + 32], slug[256], from[PATH_MAX + 300], to[PATH_MAX + 300];
        snprintf(tmpdir, sizeof tmpdir, "%s/tmp", dir);
        ck_assert_int_eq(hub_keypair_write(&pubonly, tmpdir, NULL, NULL, err, sizeof err), 0);
        hub_member_id_to_slug(id, slug, sizeof slug);
        snprintf(from, sizeof from, "%s/%s.pub", tmpdir, slug);
        snprintf(to, sizeof to, "%s/%s.pub", keys, slug);
        ck_assert_int_eq(rename(from, to), 0);
        snprintf(from, sizeof from, "%s/%s.secret", tmpdir, slug);
        unlink(from);
        hub_keypair_wipe(&pubonly);
    }
    hub_keypair_wipe(&kp);
}

static void *run_loop(void *arg)
{
    (void)arg;
    hub_server_run(server);
    return NULL;
}

static void setup(void)
{
    tk_tmpdir(dir);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/keys", dir);
    mkdir(path, 0755);
    keygen("VN/GOV/HN-LGSP/HUB", false);
    keygen("VN/GOV/BCA/CSDLQGDC", true);
    keygen("VN/GOV/HN-STP/HOTICH", true);
    keygen("VN/GOV/HN-LGSP/OPS", true);
    hub_config_t cfg;
    hub_config_defaults(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "tcp://127.0.0.1:*");
    snprintf(cfg.key_file, sizeof cfg.key_file, "%s/secrets/VN.GOV.HN-LGSP.HUB.secret", dir);
    snprintf(cfg.key_dir, sizeof cfg.key_dir, "%s/keys", dir);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", dir);
    cfg.heartbeat_ms = 100;
    char err[HUB_ERRMSG_MAX];
    uv_loop_init(&loop);
    ck_assert_msg(hub_server_new(&loop, &cfg, &server, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(pthread_create(&loop_thread, NULL, run_loop, NULL), 0);
}

static void teardown(void)
{
    /* hubd's own shutdown path: SIGTERM, handled on the loop thread. */
    kill(getpid(), SIGTERM);
    pthread_join(loop_thread, NULL);
    hub_server_destroy(&server);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    tk_rmrf(dir);
}

static adp_client_t *connect_as(const char *slug)
{
    char hub[PATH_MAX + 64], me[PATH_MAX + 64], err[HUB_ERRMSG_MAX];
    snprintf(hub, sizeof hub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", dir);
    snprintf(me, sizeof me, "%s/secrets/%s.secret", dir, slug);
    adp_config_t cfg = {hub_server_endpoint(server), hub, me, 5000, "unit"};
    adp_client_t *c = NULL;
    ck_assert_msg(adp_connect(&cfg, &c, err, sizeof err) == 0, "%s", err);
    return c;
}

typedef struct {
    int requests;
    int events;
    char last_sender[256];
} counter_t;

static int count_handler(adp_client_t *c, const adp_message_t *msg, adp_reply_t *reply,
                         void *user)
{
    (void)c;
    counter_t *n = user;
    snprintf(n->last_sender, sizeof n->last_sender, "%s", msg->sender);
    if (msg->kind == ADP_EVENT) {
        n->events++;
        return 0;
    }
    n->requests++;
    reply->payload = malloc(3);
    memcpy(reply->payload, "ok!", 3);
    reply->payload_len = 3;
    return 0;
}

START_TEST(routes_by_receiver_only)
{
    adp_client_t *a = connect_as("VN.GOV.BCA.CSDLQGDC");
    adp_client_t *b = connect_as("VN.GOV.HN-STP.HOTICH");
    adp_client_t *ops = connect_as("VN.GOV.HN-LGSP.OPS");
    counter_t na = {0}, nb = {0};
    adp_offer(a, "t/v1", count_handler, &na);
    adp_offer(b, "t/v1", count_handler, &nb);
    adp_run(a, 50);
    adp_run(b, 50);
    for (int i = 0; i < 5; i++) {
        uint64_t seq = 0;
        ck_assert_int_eq(adp_send_event(ops, "VN/GOV/BCA/CSDLQGDC", "t/v1", "text/plain", "e", 1,
                                        0, 3000, &seq),
                         0);
        ck_assert_uint_gt(seq, 0);
    }
    for (int i = 0; i < 20 && na.events < 5; i++)
        adp_run(a, 50);
    adp_run(b, 200);
    ck_assert_int_eq(na.events, 5);
    ck_assert_int_eq(nb.events, 0);
    ck_assert_str_eq(na.last_sender, "VN/GOV/HN-LGSP/OPS");
    hub_server_stats_t st;
    hub_server_get_stats(server, &st);
    ck_assert_uint_ge(st.envelopes_accepted, 5);
    adp_close(&a);
    adp_close(&b);
    adp_close(&ops);
}
END_TEST

/* A request is answered while the requester also serves: both directions
 * go through the hub with the requester's own pump. */
static void *serve_a(void *arg)
{
    adp_client_t *a = arg;
    for (int i = 0; i < 40; i++)
        adp_run(a, 50);
    return NULL;
}

START_TEST(reconnect_moves_the_route)
{
    adp_client_t *a1 = connect_as("VN.GOV.BCA.CSDLQGDC");
    counter_t n1 = {0}, n2 = {0};
    adp_offer(a1, "t/v1", count_handler, &n1);
    adp_run(a1, 50);
    /* A second connection with the same key takes over the member. */
    adp_client_t *a2 = connect_as("VN.GOV.BCA.CSDLQGDC");
    adp_offer(a2, "t/v1", count_handler, &n2);
    adp_run(a2, 50);
    adp_client_t *ops = connect_as("VN.GOV.HN-LGSP.OPS");
    pthread_t t;
    pthread_create(&t, NULL, serve_a, a2);
    adp_reply_t reply;
    int rc = adp_request(ops, "VN/GOV/BCA/CSDLQGDC", "t/v1", "text/plain", "q", 1,
                         ADP_ONLINE_ONLY, 3000, &reply);
    pthread_join(t, NULL);
    ck_assert_msg(rc == 0, "%s", adp_last_error(ops));
    ck_assert_uint_eq(reply.payload_len, 3);
    adp_reply_free(&reply);
    adp_run(a1, 100);
    ck_assert_int_eq(n2.requests, 1);
    ck_assert_int_eq(n1.requests, 0);
    adp_close(&a1);
    adp_close(&a2);
    adp_close(&ops);
}
END_TEST

/* Whether the hub takes an online-only event for member_id: it refuses one
 * for a member it has marked offline (RECEIVER_OFFLINE). */
static bool hub_sees_online(adp_client_t *ops, const char *member_id)
{
    int rc = adp_send_event(ops, member_id, "t/v1", "text/plain", "p", 1, ADP_ONLINE_ONLY, 2000,
                            NULL);
    if (rc == 0)
        return true;
    ck_assert_msg(rc == HUB_ENACK && adp_last_nack_code(ops) ==
                                         LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE,
                  "online-only event to %s: %s", member_id, adp_last_error(ops));
    return false;
}

START_TEST(silent_member_goes_offline)
{
    /* Raw CURVE members (tests/support/hubfix.h) in this test's directory,
     * whose layout is the fixture's: they stay connected, and send only
     * what the test sends. */
    hubfix_t fix = {0};
    snprintf(fix.dir, sizeof fix.dir, "%s", dir);
    snprintf(fix.endpoint, sizeof fix.endpoint, "%s", hub_server_endpoint(server));
    adp_client_t *ops = connect_as("VN.GOV.HN-LGSP.OPS");
    rawcli_t silent, talker;
    rawcli_open(&talker, &fix, "VN/GOV/HN-STP/HOTICH");
    rawcli_hello(&talker, "VN/GOV/HN-STP/HOTICH");
    rawcli_open(&silent, &fix, "VN/GOV/BCA/CSDLQGDC");
    rawcli_hello(&silent, "VN/GOV/BCA/CSDLQGDC");
    uint64_t t0 = hub_monotonic_us(); /* its last frame: the Hello */
    ck_assert(hub_sees_online(ops, "VN/GOV/BCA/CSDLQGDC"));
    uint64_t checked_ms = (hub_monotonic_us() - t0) / 1000u;
    ck_assert_msg(checked_ms < 300, "first check only after %llu ms",
                  (unsigned long long)checked_ms);
    /* It keeps its connection and says nothing; the talker heartbeats. */
    uint64_t offline_ms = 0;
    while (!offline_ms && hub_monotonic_us() - t0 < 3000000u) {
        rawcli_heartbeat(&talker);
        tk_sleep_ms(25);
        if (!hub_sees_online(ops, "VN/GOV/BCA/CSDLQGDC"))
            offline_ms = (hub_monotonic_us() - t0) / 1000u;
    }
    printf("server: silent member offline after %llu ms (heartbeat 100 ms)\n",
           (unsigned long long)offline_ms);
    ck_assert_msg(offline_ms > 0, "a silent member still online after 3 s");
    /* 3 heartbeats of 100 ms without a word: offline, not before. */
    ck_assert_msg(offline_ms >= 300, "offline after %llu ms", (unsigned long long)offline_ms);
    ck_assert_msg(offline_ms <= 1000, "still online after %llu ms",
                  (unsigned long long)offline_ms);
    /* Silence, not time, did it: the talker is still online. */
    ck_assert(hub_sees_online(ops, "VN/GOV/HN-STP/HOTICH"));
    rawcli_close(&silent);
    rawcli_close(&talker);
    adp_close(&ops);
}
END_TEST

/* The loop thread and signals need the test in its own process, even when
 * CK_FORK=no is set for debugging. */
static int prepare(void)
{
    return setenv("CK_FORK", "yes", 1) == 0 ? 0 : EXIT_FAILURE;
}

TK_MAIN_PREPARED(prepare, "server",
                 TK_CASE("routing", setup, teardown, 60, routes_by_receiver_only,
                         reconnect_moves_the_route, silent_member_goes_offline))
