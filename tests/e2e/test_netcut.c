/* Network cut: the receiving adapter runs in a network namespace of its own,
 * joined to the hub by a veth pair; the link goes down for a few seconds
 * while messages are sent, then comes back. Nothing accepted is lost or
 * handled twice. Needs root (ip netns), and reports a skip (77) without it;
 * the addresses exist only inside the namespaces this test creates, and it
 * removes them. */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define RECEIVER "VN/GOV/VPCP/DVCQG"

static hubfix_t fix;
static char ns[32], host_if[16], ns_if[16];

static void net_down(void)
{
    if (ns[0]) {
        tk_shf(10000, "ip netns del %s 2>/dev/null", ns);
        tk_shf(10000, "ip link del %s 2>/dev/null", host_if);
    }
}

static int count_unique(const char *path, int n, int *dups)
{
    char *text = tk_read_file(path);
    int *seen = calloc((size_t)n, sizeof *seen), got = 0;
    *dups = 0;
    for (char *p = text; p && (p = strstr(p, "\tcut ")); p++) {
        int i = atoi(p + 5);
        if (i < 0 || i >= n)
            continue;
        if (seen[i]++)
            (*dups)++;
        else
            got++;
    }
    free(seen);
    free(text);
    return got;
}

/* Interfaces and namespaces left by an earlier run that died: their names
 * carry the pid of the run, which no longer exists. */
static void remove_stale(void)
{
    tk_shf(10000,
           "for i in $(ip -o link | sed -n 's/^[0-9]*: lthh\\([0-9]*\\)[@:].*/\\1/p'); do "
           "[ -d /proc/$i ] || { ip link del lthh$i; ip netns del lthcut$i; }; done 2>/dev/null; "
           "for n in $(ip netns list | sed -n 's/^lthcut\\([0-9]*\\).*/\\1/p'); do "
           "[ -d /proc/$n ] || ip netns del lthcut$n; done 2>/dev/null; true");
}

START_TEST(link_down_and_up_loses_nothing)
{
    remove_stale();
    int pid = (int)getpid();
    snprintf(ns, sizeof ns, "lthcut%d", pid);
    snprintf(host_if, sizeof host_if, "lthh%d", pid);
    snprintf(ns_if, sizeof ns_if, "ltha%d", pid);
    /* A /30 of its own per run, so that runs (and leftovers) do not clash. */
    char host_ip[32], ns_ip[32];
    snprintf(host_ip, sizeof host_ip, "10.231.%d.%d", (pid >> 6) & 255, (pid & 63) * 4 + 1);
    snprintf(ns_ip, sizeof ns_ip, "10.231.%d.%d", (pid >> 6) & 255, (pid & 63) * 4 + 2);
    /* Namespaces need root and a kernel and mount setup that allow them
     * (a chroot without its own mount namespace does not): when the set-up
     * itself fails, the test says so and is skipped. */
    if (tk_shf(10000, "ip netns add %s", ns) != 0) {
        ns[0] = '\0';
        tk_skip("netcut: cannot create a network namespace (needs root and 'ip netns')");
    }
    /* Removed however this process ends (a failed assertion exits it). */
    atexit(net_down);
    if (tk_shf(10000, "ip link add %s type veth peer name %s", host_if, ns_if) != 0 ||
        tk_shf(10000, "ip link set %s netns %s", ns_if, ns) != 0 ||
        tk_shf(10000, "ip addr add %s/30 dev %s && ip link set %s up", host_ip, host_if, host_if) !=
            0 ||
        tk_shf(10000,
               "ip netns exec %s sh -c 'ip addr add %s/30 dev %s && ip link set %s up && "
               "ip link set lo up'",
               ns, ns_ip, ns_if, ns_if) != 0) {
        net_down();
        ns[0] = '\0';
        tk_skip("netcut: the veth pair or the namespace could not be set up here");
    }

    char extra[128];
    snprintf(extra, sizeof extra, "listen = tcp://%s:*\nredelivery_ms = 1000", host_ip);
    hubfix_init(&fix, extra);
    HUBFIX_ADD_MEMBERS(&fix, SENDER, RECEIVER);
    hubfix_start(&fix);
    /* The receiver, inside the namespace. */
    char conf[PATH_MAX], log[PATH_MAX], record[PATH_MAX], text[4096];
    snprintf(conf, sizeof conf, "%s/receiver.conf", fix.dir);
    snprintf(log, sizeof log, "%s/receiver.log", fix.dir);
    snprintf(record, sizeof record, "%s/received.txt", fix.dir);
    snprintf(text, sizeof text, "state_dir = %s/receiver-state\nplugin.file = %s\n", fix.dir,
             record);
    hubfix_adapter_conf(&fix, RECEIVER, "recorder", text, conf);
    char *argv[] = {"/usr/sbin/ip", "netns", "exec", ns, (char *)tk_bin("hub-adapter"),
                    "--config", conf, NULL};
    tk_spawn(argv, log);
    ck_assert_msg(tk_wait_file_contains(log, "msg=\"serving\"", 10000), "receiver did not start");

    adp_client_t *s = hubfix_connect(&fix, SENDER);
    const int total = 500;
    for (int i = 0; i < total; i++) {
        if (i == 200) {
            /* Cut the wire, keep sending for a while, then mend it. */
            for (int w = 0; w < 50 && adp_outbox_size(s) > 0; w++)
                adp_run(s, 20);
            ck_assert_int_eq(tk_shf(10000, "ip link set %s down", host_if), 0);
        }
        hubfix_post_record(s, RECEIVER, "cut", i);
        adp_run(s, 0);
    }
    for (int w = 0; w < 100 && adp_outbox_size(s) > 0; w++)
        adp_run(s, 20);
    ck_assert_int_eq(adp_outbox_size(s), 0); /* the hub took them all meanwhile */
    adp_run(s, 3000);
    int dups = 0;
    int during = count_unique(record, total, &dups);
    ck_assert_int_eq(tk_shf(10000, "ip link set %s up", host_if), 0);
    int got = 0;
    for (int w = 0; w < 300; w++) {
        got = count_unique(record, total, &dups);
        if (got == total)
            break;
        adp_run(s, 100);
    }
    printf("netcut: %d delivered before the cut ended, %d after, %d duplicates\n", during, got,
           dups);
    ck_assert_int_eq(got, total);
    ck_assert_int_eq(dups, 0);
    ck_assert_int_lt(during, total); /* the cut really held messages back */
    adp_close(&s);
    hubfix_cleanup(&fix);
    net_down();
}
END_TEST

static void teardown(void)
{
    net_down();
}

TK_MAIN("e2e_netcut", TK_CASE("netcut", NULL, teardown, 180, link_down_and_up_loses_nothing))
