/* End to end: the adapter SDK's own behaviour against a real hubd — what an
 * application relies on beyond "messages arrive": it costs no CPU while the
 * hub is down and comes back when the hub does, and its state directory
 * never holds (and so never resends) a message the hub has answered. */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#define A "VN/GOV/BCA/CSDLQGDC"
#define B "VN/GOV/HN-STP/HOTICH"
#define OPS "VN/GOV/HN-LGSP/OPS"

/* The idle budget: under 1% of one CPU. */
#define IDLE_WINDOW_MS 5000
#define IDLE_BUDGET_US (IDLE_WINDOW_MS * 1000 / 100)

static hubfix_t fix;

static void setup(void)
{
    hubfix_init(&fix, NULL);
    hubfix_add_member(&fix, A, true);
    hubfix_add_member(&fix, B, true);
    hubfix_add_member(&fix, OPS, true);
    hubfix_start(&fix);
}

static void teardown(void) { hubfix_cleanup(&fix); }

static uint64_t self_cpu_us(void)
{
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

/* utime + stime of another process, from /proc/PID/stat, in µs. */
static uint64_t proc_cpu_us(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *text = tk_read_file(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    /* Fields after the command name, which is in parentheses. */
    const char *p = strrchr(text, ')');
    ck_assert_ptr_nonnull(p);
    unsigned long utime = 0, stime = 0;
    int n = sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                   &stime);
    free(text);
    ck_assert_int_eq(n, 2);
    long hz = sysconf(_SC_CLK_TCK);
    return (uint64_t)(utime + stime) * 1000000u / (uint64_t)hz;
}

static void write_hubctl_conf(char *path)
{
    char secret[PATH_MAX], conf[3 * PATH_MAX];
    hubfix_secret_path(&fix, OPS, secret);
    snprintf(path, PATH_MAX, "%s/hubctl.conf", fix.dir);
    snprintf(conf, sizeof conf,
             "hub_endpoint = %s\nhub_key_file = %s/secrets/VN.GOV.HN-LGSP.HUB.pub\n"
             "member_key_file = %s\n",
             fix.endpoint, fix.dir, secret);
    tk_write_file(path, conf);
}

/* Runs argv and returns the CPU time it used (µs); *status gets its exit code
 * and *wall_us its run time. */
static uint64_t run_measured(char *const argv[], int *status, uint64_t *wall_us)
{
    uint64_t start = hub_monotonic_us();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    ck_assert_int_eq(wait4(pid, &st, 0, &ru), pid);
    *wall_us = hub_monotonic_us() - start;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

START_TEST(hub_down_costs_no_cpu_and_clients_come_back)
{
    pid_t adapter = hubfix_start_adapter(&fix, B, "echo", NULL);
    adp_client_t *c = hubfix_connect(&fix, A);
    hubfix_stop(&fix);

    /* A client of the SDK in this process, and hub-adapter, while nothing
     * listens on the hub's port. */
    adp_run(c, 300); /* let both notice the disconnect */
    uint64_t self0 = self_cpu_us(), adapter0 = proc_cpu_us(adapter);
    uint64_t wall0 = hub_monotonic_us();
    ck_assert_int_eq(adp_run(c, IDLE_WINDOW_MS), 0);
    uint64_t wall = hub_monotonic_us() - wall0;
    uint64_t self_used = self_cpu_us() - self0, adapter_used = proc_cpu_us(adapter) - adapter0;
    ck_assert_msg(!adp_connected(c), "the client believes it is connected to a stopped hub");
    ck_assert_msg(self_used <= IDLE_BUDGET_US,
                  "the SDK used %llu µs of CPU in %llu ms with the hub down (budget %d µs)",
                  (unsigned long long)self_used, (unsigned long long)(wall / 1000),
                  IDLE_BUDGET_US);
    ck_assert_msg(adapter_used <= IDLE_BUDGET_US,
                  "hub-adapter used %llu µs of CPU in %llu ms with the hub down (budget %d µs)",
                  (unsigned long long)adapter_used, (unsigned long long)(wall / 1000),
                  IDLE_BUDGET_US);

    /* hubctl ping waits its whole timeout for a hub that is not there,
     * asleep. */
    char conf[PATH_MAX];
    write_hubctl_conf(conf);
    char *argv[] = {(char *)tk_bin("hubctl"), "--config", conf, "ping", B, "--timeout", "3000",
                    NULL};
    int status;
    uint64_t ping_wall;
    uint64_t ping_cpu = run_measured(argv, &status, &ping_wall);
    ck_assert_int_eq(status, 5); /* timed out */
    ck_assert_uint_ge(ping_wall, 2900000u);
    /* Starting up (keys, libzmq, libsodium) costs a little; waiting must not. */
    ck_assert_msg(ping_cpu <= 30000u + ping_wall / 100,
                  "hubctl ping used %llu µs of CPU in %llu ms with the hub down",
                  (unsigned long long)ping_cpu, (unsigned long long)(ping_wall / 1000));

    /* The hub comes back on the same port: both clients reconnect on their
     * own (the backoff is capped at 3 s) and serve. */
    hubfix_start(&fix);
    uint64_t deadline = hub_monotonic_us() + 15000000u;
    while (!adp_connected(c) && hub_monotonic_us() < deadline)
        adp_run(c, 100);
    ck_assert_msg(adp_connected(c), "the SDK did not reconnect within 15 s of the hub's return");
    int rc = HUB_ETIMEDOUT;
    while (hub_monotonic_us() < deadline) {
        adp_reply_t reply;
        rc = adp_request(c, B, ADP_PING_SERVICE, "text/plain", "back?", 5, ADP_ONLINE_ONLY,
                         1000, &reply);
        if (rc == 0) {
            ck_assert_uint_eq(reply.payload_len, 5);
            ck_assert_int_eq(memcmp(reply.payload, "back?", 5), 0);
            adp_reply_free(&reply);
            break;
        }
        adp_run(c, 200);
    }
    ck_assert_msg(rc == 0, "hub-adapter did not serve again within 15 s: %s",
                  adp_last_error(c));
    adp_close(&c);
}
END_TEST

static adp_client_t *connect_with_state(const char *member, const char *state_dir, bool start)
{
    char hub_pub[PATH_MAX], secret[PATH_MAX], err[512];
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    hubfix_secret_path(&fix, member, secret);
    adp_config_t cfg = {fix.endpoint, hub_pub, secret, 5000, "test", state_dir};
    adp_client_t *c = NULL;
    int rc = start ? adp_connect(&cfg, &c, err, sizeof err) : adp_new(&cfg, &c, err, sizeof err);
    ck_assert_msg(rc == 0, "client for %s: %s", member, err);
    return c;
}

/* The outbox journal is compacted while the hub's ACKs are being applied
 * (past 10000 records more than twice the outbox). Compaction rewrites
 * every message still pending; the one whose ACK triggered it must not be
 * among them, or a restarted client sends it again. */
START_TEST(outbox_compacted_while_acking_keeps_no_answered_message)
{
    char state_dir[PATH_MAX], jnl[PATH_MAX + 16];
    snprintf(state_dir, sizeof state_dir, "%s/sender-state", fix.dir);
    snprintf(jnl, sizeof jnl, "%s/outbox.jnl", state_dir);
    adp_client_t *c = connect_with_state(A, state_dir, true);
    /* B is known but offline: every event is queued and ACKed after its
     * commit. */
    enum { N = 10500 };
    char payload[64];
    for (int i = 0; i < N; i++) {
        int len = snprintf(payload, sizeof payload, "{\"n\":%d}", i);
        ck_assert_int_eq(adp_post_event(c, B, "dossier.status/v1", "application/json", payload,
                                        (size_t)len, 0, NULL),
                         0);
    }
    struct stat before;
    ck_assert_int_eq(stat(jnl, &before), 0);
    uint64_t deadline = hub_monotonic_us() + 240000000u;
    while (adp_outbox_size(c) > 0 && hub_monotonic_us() < deadline)
        adp_run(c, 100);
    ck_assert_msg(adp_outbox_size(c) == 0, "%zu of %d events were not ACKed in time",
                  adp_outbox_size(c), N);
    /* The journal was compacted on the way: only a compaction makes it
     * shrink (otherwise it holds every P record and an A record each). */
    struct stat after;
    ck_assert_int_eq(stat(jnl, &after), 0);
    ck_assert_msg(after.st_size < before.st_size,
                  "outbox.jnl was not compacted (%lld bytes after, %lld with the posts alone)",
                  (long long)after.st_size, (long long)before.st_size);
    adp_close(&c);

    /* A restart restores nothing: every message was answered. */
    c = connect_with_state(A, state_dir, false);
    ck_assert_msg(adp_outbox_size(c) == 0,
                  "the restarted client restored %zu answered message(s) as pending",
                  adp_outbox_size(c));
    adp_close(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sdk");
    TCase *tc = tcase_create("sdk");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, hub_down_costs_no_cpu_and_clients_come_back);
    tcase_add_test(tc, outbox_compacted_while_acking_keeps_no_answered_message);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
