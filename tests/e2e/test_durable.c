/* End to end: durable store and forward. Real hubd and hub-adapter
 * processes, killed with SIGKILL at random points; the recorder plugin
 * writes one line per handled message, so the test can count what each
 * handler saw. */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define SENDER2 "VN/GOV/HN-SKHDT/DKKD"
#define RECEIVER "VN/GOV/VPCP/DVCQG"

static hubfix_t fix;
static char record_path[PATH_MAX];
static char state_dir[PATH_MAX];

static void setup_with(const char *extra)
{
    hubfix_init(&fix, extra);
    hubfix_add_member(&fix, SENDER, true);
    hubfix_add_member(&fix, SENDER2, true);
    hubfix_add_member(&fix, RECEIVER, true);
    snprintf(record_path, sizeof record_path, "%s/received.txt", fix.dir);
    snprintf(state_dir, sizeof state_dir, "%s/receiver-state", fix.dir);
    hubfix_start(&fix);
}

static void setup(void) { setup_with("redelivery_ms = 1000"); }
static void teardown(void) { hubfix_cleanup(&fix); }

static pid_t start_receiver(const char *extra)
{
    char conf[2048];
    snprintf(conf, sizeof conf, "plugin.file = %s\nstate_dir = %s\n%s", record_path, state_dir,
             extra ? extra : "");
    return hubfix_start_adapter(&fix, RECEIVER, "recorder", conf);
}

/* A sender with its own state directory (outbox), like a real adapter. */
static adp_client_t *connect_sender(const char *member, const char *state)
{
    char hub_pub[PATH_MAX], secret[PATH_MAX], err[512];
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    hubfix_secret_path(&fix, member, secret);
    adp_config_t cfg = {fix.endpoint, hub_pub, secret, 5000, "test", state};
    adp_client_t *c = NULL;
    int rc = adp_connect(&cfg, &c, err, sizeof err);
    ck_assert_msg(rc == 0, "connect as %s failed: %s", member, err);
    return c;
}

/* Posts `count` events "<tag> <i>" and pumps until the hub ACKed all. */
static void post_all(adp_client_t *c, const char *tag, int count, int timeout_s)
{
    for (int i = 0; i < count; i++) {
        char payload[64];
        int len = snprintf(payload, sizeof payload, "%s %d", tag, i);
        ck_assert_int_eq(adp_post_event(c, RECEIVER, "record/v1", "text/plain", payload,
                                        (size_t)len, 0, NULL),
                         0);
        if (i % 500 == 499)
            adp_run(c, 0);
    }
    for (int waited = 0; adp_outbox_size(c) > 0 && waited < timeout_s * 10; waited++)
        adp_run(c, 100);
    ck_assert_msg(adp_outbox_size(c) == 0, "%zu messages never ACKed: %s", adp_outbox_size(c),
                  adp_last_error(c));
}

static int count_lines(const char *path)
{
    char *text = tk_read_file(path);
    int n = 0;
    for (char *p = text; p && *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

static bool wait_lines(int expected, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (count_lines(record_path) >= expected)
            return true;
        tk_sleep_ms(50);
    }
    return false;
}

/* Checks that each "<tag> i" for i < count from `sender` was handled exactly
 * once and in order. */
static void assert_once_in_order(const char *sender, const char *tag, int count)
{
    char *text = tk_read_file(record_path);
    ck_assert_ptr_nonnull(text);
    int *seen = calloc((size_t)count, sizeof *seen);
    int last = -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab1 = strchr(line, '\t');
        char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        ck_assert_msg(tab2 != NULL, "bad line: %s", line);
        *tab1 = '\0';
        if (strcmp(line, sender) != 0)
            continue;
        char want[64];
        snprintf(want, sizeof want, "%s ", tag);
        if (strncmp(tab2 + 1, want, strlen(want)) != 0)
            continue;
        int i = atoi(tab2 + 1 + strlen(want));
        ck_assert_int_lt(i, count);
        seen[i]++;
        ck_assert_msg(seen[i] == 1, "%s %d handled %d times", tag, i, seen[i]);
        ck_assert_msg(i > last, "%s %d handled after %d: out of order", tag, i, last);
        last = i;
    }
    for (int i = 0; i < count; i++)
        ck_assert_msg(seen[i] == 1, "%s %d handled %d times", tag, i, seen[i]);
    free(seen);
    free(text);
}

START_TEST(offline_receiver_gets_everything_in_order_once)
{
    /* Two senders, 5,000 each, while the receiver is not running. */
    adp_client_t *a = connect_sender(SENDER, NULL);
    adp_client_t *b = connect_sender(SENDER2, NULL);
    post_all(a, "a", 5000, 60);
    post_all(b, "b", 5000, 60);
    ck_assert_int_eq(count_lines(record_path), 0);
    start_receiver(NULL);
    ck_assert_msg(wait_lines(10000, 60000), "only %d of 10000 arrived",
                  count_lines(record_path));
    tk_sleep_ms(500); /* nothing more may come */
    ck_assert_int_eq(count_lines(record_path), 10000);
    assert_once_in_order(SENDER, "a", 5000);
    assert_once_in_order(SENDER2, "b", 5000);
    adp_close(&a);
    adp_close(&b);
}
END_TEST

START_TEST(hub_killed_three_times_loses_nothing)
{
    start_receiver(NULL);
    char sender_state[PATH_MAX];
    snprintf(sender_state, sizeof sender_state, "%s/sender-state", fix.dir);
    adp_client_t *a = connect_sender(SENDER, sender_state);
    srand((unsigned)getpid());
    const int total = 10000;
    /* Three SIGKILLs at random points of the stream. */
    int kill_at[3];
    for (int k = 0; k < 3; k++)
        kill_at[k] = 1000 + k * 3000 + rand() % 2500;
    int posted = 0, kills = 0;
    uint64_t deadline = hub_monotonic_us() + 180000000u;
    while (posted < total || adp_outbox_size(a) > 0) {
        for (int k = 0; k < 100 && posted < total; k++, posted++) {
            char payload[32];
            int len = snprintf(payload, sizeof payload, "m %d", posted);
            ck_assert_int_eq(adp_post_event(a, RECEIVER, "record/v1", "text/plain", payload,
                                            (size_t)len, 0, NULL),
                             0);
        }
        adp_run(a, 10);
        if (kills < 3 && posted >= kill_at[kills]) {
            tk_kill9(fix.hubd);
            kills++;
            adp_run(a, 100 + rand() % 300); /* the sender keeps trying meanwhile */
            hubfix_start(&fix);
        }
        ck_assert_msg(hub_monotonic_us() < deadline, "stream did not finish: %zu unACKed",
                      adp_outbox_size(a));
    }
    ck_assert_int_eq(kills, 3);
    ck_assert_msg(wait_lines(total, 60000), "only %d of %d handled", count_lines(record_path),
                  total);
    tk_sleep_ms(1500);
    ck_assert_int_eq(count_lines(record_path), total);
    assert_once_in_order(SENDER, "m", total);
    adp_close(&a);
}
END_TEST

START_TEST(receiver_killed_while_handling_gets_it_again_once)
{
    pid_t receiver = start_receiver("plugin.slow_payload = slow\nplugin.slow_ms = 3000\n");
    adp_client_t *a = connect_sender(SENDER, NULL);
    uint64_t seq = 0;
    ck_assert_int_eq(adp_send_event(a, RECEIVER, "record/v1", "text/plain", "first", 5, 0, 5000,
                                    &seq),
                     0);
    ck_assert(wait_lines(1, 10000));
    ck_assert_int_eq(adp_send_event(a, RECEIVER, "record/v1", "text/plain", "slow", 4, 0, 5000,
                                    &seq),
                     0);
    char begin[PATH_MAX];
    snprintf(begin, sizeof begin, "%s.begin", record_path);
    ck_assert_msg(tk_wait_file(begin, 10000), "handler never started");
    tk_kill9(receiver);
    ck_assert_int_eq(count_lines(record_path), 1);
    /* Back with a fast handler for everything: the killed message comes
     * again and is handled once; "first" is not handled a second time. */
    start_receiver("plugin.slow_payload = slow\nplugin.slow_ms = 10\n");
    ck_assert_msg(wait_lines(2, 15000), "the interrupted message was not redelivered");
    tk_sleep_ms(2500); /* past a redelivery period: no duplicates arrive */
    char *text = tk_read_file(record_path);
    ck_assert_int_eq(count_lines(record_path), 2);
    ck_assert_ptr_nonnull(strstr(text, "\tfirst\n"));
    ck_assert_ptr_nonnull(strstr(text, "\tslow\n"));
    free(text);
    adp_close(&a);
}
END_TEST

START_TEST(queue_full_refuses_and_loses_nothing_accepted)
{
    adp_client_t *a = connect_sender(SENDER, NULL);
    int acked = 0, full = 0;
    for (int i = 0; i < 150; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "q %d", i);
        int rc = adp_send_event(a, RECEIVER, "record/v1", "text/plain", payload, (size_t)len, 0,
                                5000, NULL);
        if (rc == 0) {
            acked++;
        } else {
            ck_assert_int_eq(rc, HUB_ENACK);
            ck_assert_int_eq(adp_last_nack_code(a), LTH__V1__NACK_CODE__NACK_QUEUE_FULL);
            ck_assert_msg(strstr(adp_last_error(a), RECEIVER), "%s", adp_last_error(a));
            full++;
        }
    }
    ck_assert_int_eq(acked, 100);
    ck_assert_int_eq(full, 50);
    /* Another receiver still accepts. */
    ck_assert_int_eq(adp_send_event(a, SENDER2, "record/v1", "text/plain", "x", 1, 0, 5000, NULL),
                     0);
    start_receiver(NULL);
    ck_assert(wait_lines(100, 20000));
    tk_sleep_ms(300);
    ck_assert_int_eq(count_lines(record_path), 100);
    assert_once_in_order(SENDER, "q", 100);
    adp_close(&a);
}
END_TEST

START_TEST(store_full_refuses_and_loses_nothing_accepted)
{
    adp_client_t *a = connect_sender(SENDER, NULL);
    char payload[1024];
    memset(payload, 'x', sizeof payload);
    int acked = 0, rc = 0;
    for (int i = 0; i < 5000 && rc == 0; i++) {
        int len = snprintf(payload, sizeof payload, "s %d ", i);
        payload[len] = 'x';
        rc = adp_send_event(a, RECEIVER, "record/v1", "text/plain", payload, sizeof payload, 0,
                            5000, NULL);
        if (rc == 0)
            acked++;
    }
    ck_assert_int_eq(rc, HUB_ENACK);
    ck_assert_int_eq(adp_last_nack_code(a), LTH__V1__NACK_CODE__NACK_STORE_FULL);
    ck_assert_int_gt(acked, 100);
    ck_assert(hubfix_hub_alive(&fix));
    start_receiver(NULL);
    ck_assert_msg(wait_lines(acked, 30000), "%d of %d delivered", count_lines(record_path),
                  acked);
    tk_sleep_ms(300);
    ck_assert_int_eq(count_lines(record_path), acked);
    /* Once drained, the store accepts again. */
    for (int waited = 0; waited < 100; waited++) {
        rc = adp_send_event(a, RECEIVER, "record/v1", "text/plain", "again", 5, 0, 5000, NULL);
        if (rc == 0)
            break;
        adp_run(a, 100);
    }
    ck_assert_msg(rc == 0, "store did not accept after draining: %s", adp_last_error(a));
    adp_close(&a);
}
END_TEST

START_TEST(corrupt_store_is_refused_at_start)
{
    hubfix_stop(&fix);
    char data[PATH_MAX];
    snprintf(data, sizeof data, "%s/data/data.mdb", fix.dir);
    char junk[65536];
    memset(junk, 0x5a, sizeof junk);
    FILE *f = fopen(data, "w");
    ck_assert_ptr_nonnull(f);
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    char *out = NULL;
    char *argv[] = {(char *)tk_bin("hubd"), "--config", fix.conf_path, NULL};
    ck_assert_int_eq(tk_run(argv, &out, 10000), 1);
    ck_assert_msg(strstr(out, "move") && strstr(out, "backup"), "%s", out);
    free(out);
}
END_TEST

static int publication_handler(adp_client_t *c, const adp_message_t *msg, adp_reply_t *reply,
                               void *user)
{
    (void)c;
    (void)reply;
    int *count = user;
    if (msg->payload_len >= 4 && !memcmp(msg->payload, "cat ", 4))
        (*count)++;
    return 0;
}

START_TEST(durable_subscriptions_get_every_publication)
{
    /* The receiver subscribes to the sender's catalogue; a second
     * subscriber (SENDER2, an SDK client) goes away while it is published. */
    char conf[1024];
    snprintf(conf, sizeof conf, "plugin.file = %s\nplugin.subscribe = %s/catalogue.published/v1\n",
             record_path, SENDER);
    hubfix_start_adapter(&fix, RECEIVER, "recorder", conf);
    char state[PATH_MAX];
    snprintf(state, sizeof state, "%s/sub2-state", fix.dir);
    adp_client_t *sub = NULL;
    char hub_pub[PATH_MAX], secret[PATH_MAX], err[512];
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    hubfix_secret_path(&fix, SENDER2, secret);
    adp_config_t cfg = {fix.endpoint, hub_pub, secret, 5000, "test", state};
    int got = 0;
    ck_assert_int_eq(adp_new(&cfg, &sub, err, sizeof err), 0);
    ck_assert_int_eq(adp_subscribe(sub, SENDER "/catalogue.published/v1", publication_handler,
                                   &got), 0);
    ck_assert_msg(adp_start(sub, err, sizeof err) == 0, "%s", err);
    adp_close(&sub); /* subscribed, now offline */

    adp_client_t *pub = connect_sender(SENDER, NULL);
    for (int i = 0; i < 50; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "cat %d", i);
        ck_assert_int_eq(adp_publish(pub, "catalogue.published/v1", "text/plain", payload,
                                     (size_t)len, 0, NULL),
                         0);
    }
    for (int w = 0; w < 100 && adp_outbox_size(pub) > 0; w++)
        adp_run(pub, 50);
    ck_assert_msg(adp_outbox_size(pub) == 0, "publications not ACKed: %s", adp_last_error(pub));
    ck_assert(wait_lines(50, 10000));
    assert_once_in_order(SENDER, "cat", 50);

    /* The subscription survives a hub restart; the offline subscriber gets
     * all 50 when it comes back. */
    hubfix_stop(&fix);
    hubfix_start(&fix);
    ck_assert_int_eq(adp_new(&cfg, &sub, err, sizeof err), 0);
    ck_assert_int_eq(adp_subscribe(sub, SENDER "/catalogue.published/v1", publication_handler,
                                   &got), 0);
    ck_assert_msg(adp_start(sub, err, sizeof err) == 0, "%s", err);
    for (int w = 0; w < 100 && got < 50; w++)
        adp_run(sub, 50);
    ck_assert_int_eq(got, 50);
    adp_run(sub, 300);
    ck_assert_int_eq(got, 50);
    adp_close(&sub);
    adp_close(&pub);
}
END_TEST

/* curl, as an operator would; returns the HTTP status, body in *out. */
static int http(const char *method, const char *path, const char *token, char **out)
{
    char url[512], auth[300], code_path[PATH_MAX];
    snprintf(url, sizeof url, "http://%s%s", fix.http, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
    snprintf(code_path, sizeof code_path, "%s/curl.body", fix.dir);
    char *argv[] = {"/usr/bin/curl", "-s", "-X", (char *)method, "-H", auth, "-o", code_path,
                    "-w", "%{http_code}", url, NULL};
    char *status = NULL;
    ck_assert_int_eq(tk_run(argv, &status, 10000), 0);
    int code = atoi(status);
    free(status);
    *out = tk_read_file(code_path);
    return code;
}

#define TOKEN "operator-token-for-tests-0123456789"

static void setup_dlq(void)
{
    hubfix_init(&fix, "http_listen = 127.0.0.1:0\nhttp_token_file = token\nmax_attempts = 2\n"
                      "redelivery_ms = 200\n");
    hubfix_add_member(&fix, SENDER, true);
    hubfix_add_member(&fix, SENDER2, true);
    hubfix_add_member(&fix, RECEIVER, true);
    snprintf(record_path, sizeof record_path, "%s/received.txt", fix.dir);
    snprintf(state_dir, sizeof state_dir, "%s/receiver-state", fix.dir);
    char token[PATH_MAX];
    snprintf(token, sizeof token, "%s/token", fix.dir);
    tk_write_file(token, TOKEN "\n");
    chmod(token, 0600);
    hubfix_start(&fix);
}

/* Waits until the DLQ lists `count` entries; returns the listing. */
static char *wait_dlq(int count)
{
    char *body = NULL;
    for (int w = 0; w < 100; w++) {
        free(body);
        ck_assert_int_eq(http("GET", "/api/v1/dlq", TOKEN, &body), 200);
        int n = 0;
        for (char *p = body; (p = strstr(p, "\"reason\"")); p++)
            n++;
        if (n >= count)
            return body;
        tk_sleep_ms(100);
    }
    ck_abort_msg("dead-letter queue never reached %d entries: %s", count, body);
    return NULL;
}

START_TEST(ttl_and_retry_exhaustion_dead_letter_and_replay_delivers)
{
    char *body = NULL;
    ck_assert_int_eq(http("GET", "/api/v1/dlq", NULL, &body), 401);
    free(body);
    /* TTL: three events for an offline receiver, 500 ms to live. */
    adp_client_t *a = connect_sender(SENDER, NULL);
    adp_set_ttl(a, 500);
    for (int i = 0; i < 3; i++) {
        char payload[16];
        int len = snprintf(payload, sizeof payload, "t %d", i);
        ck_assert_int_eq(adp_send_event(a, RECEIVER, "record/v1", "text/plain", payload,
                                        (size_t)len, 0, 5000, NULL),
                         0);
    }
    body = wait_dlq(3);
    ck_assert_msg(strstr(body, "ttl expired"), "%s", body);
    free(body);

    /* Retry budget: a receiver that takes deliveries and never settles. */
    adp_set_ttl(a, 0);
    rawcli_t stuck;
    rawcli_open(&stuck, &fix, SENDER2);
    rawcli_hello(&stuck, SENDER2);
    ck_assert_int_eq(adp_send_event(a, SENDER2, "record/v1", "text/plain", "never settled", 13,
                                    0, 5000, NULL),
                     0);
    int deliveries = 0;
    for (int w = 0; w < 30; w++) {
        hub_frame_t *f = rawcli_recv(&stuck, 100);
        if (f && f->body_case == LTH__V1__FRAME__BODY_DELIVERIES)
            deliveries += (int)f->deliveries->n_items;
        hub_frame_free(&f);
    }
    ck_assert_int_eq(deliveries, 2); /* max_attempts = 2 */
    body = wait_dlq(4);
    ck_assert_msg(strstr(body, "retry budget exhausted"), "%s", body);
    free(body);
    rawcli_close(&stuck);

    /* Replay the three expired events: they reach the receiver once it runs. */
    start_receiver(NULL);
    char *list = wait_dlq(4);
    int replayed = 0;
    for (char *p = list; (p = strstr(p, "\"seq\":")); p++) {
        long seq = strtol(p + 6, NULL, 10);
        char *entry_end = strchr(p, '}');
        char entry[1024];
        snprintf(entry, sizeof entry, "%.*s", entry_end ? (int)(entry_end - p) : 0, p);
        bool ttl = strstr(entry, "ttl expired") != NULL;
        if (!ttl)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/api/v1/dlq/%ld/replay", seq);
        /* 503 means "a commit is running: send the same request again in a
         * moment" (proto/README.md), as hubctl does for up to 5 s. */
        int status = 0;
        for (int tries = 0; tries < 50; tries++) {
            status = http("POST", path, TOKEN, &body);
            if (status != 503)
                break;
            free(body);
            body = NULL;
            usleep(100000);
        }
        ck_assert_int_eq(status, 200);
        free(body);
        replayed++;
    }
    free(list);
    ck_assert_int_eq(replayed, 3);
    ck_assert_msg(wait_lines(3, 10000), "replayed messages not delivered");
    assert_once_in_order(SENDER, "t", 3);
    /* Purge what is left (the never-settled one). */
    ck_assert_int_eq(http("POST", "/api/v1/dlq/purge?older_than_s=0", TOKEN, &body), 200);
    ck_assert_msg(strstr(body, "\"purged\":1"), "%s", body);
    free(body);
    adp_close(&a);
}
END_TEST

static void setup_small_queue(void) { setup_with("max_queue_depth = 100"); }
/* One sender fills the store: quotas and the reserve off, so that this
 * tests the store's own limit (test_hostile tests the quotas). */
static void setup_small_store(void)
{
    setup_with("max_store_bytes = 4194304\nstore_reserve_percent = 0\n"
               "quota_send_bytes = 1099511627776\nquota_recv_bytes = 1099511627776");
}

int main(void)
{
    Suite *s = suite_create("e2e_durable");
    TCase *tc = tcase_create("durable");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, offline_receiver_gets_everything_in_order_once);
    tcase_add_test(tc, hub_killed_three_times_loses_nothing);
    tcase_add_test(tc, receiver_killed_while_handling_gets_it_again_once);
    tcase_add_test(tc, corrupt_store_is_refused_at_start);
    tcase_add_test(tc, durable_subscriptions_get_every_publication);
    suite_add_tcase(s, tc);
    TCase *dlq = tcase_create("dead_letters");
    tcase_add_checked_fixture(dlq, setup_dlq, teardown);
    tcase_set_timeout(dlq, 120);
    tcase_add_test(dlq, ttl_and_retry_exhaustion_dead_letter_and_replay_delivers);
    suite_add_tcase(s, dlq);
    TCase *q = tcase_create("queue_limit");
    tcase_add_checked_fixture(q, setup_small_queue, teardown);
    tcase_set_timeout(q, 120);
    tcase_add_test(q, queue_full_refuses_and_loses_nothing_accepted);
    suite_add_tcase(s, q);
    TCase *st = tcase_create("store_limit");
    tcase_add_checked_fixture(st, setup_small_store, teardown);
    tcase_set_timeout(st, 120);
    tcase_add_test(st, store_full_refuses_and_loses_nothing_accepted);
    suite_add_tcase(s, st);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
