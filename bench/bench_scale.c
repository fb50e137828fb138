/* --scale N: how the hub holds N connected members. A few child processes
 * ("holders", hubbench --hold ...) each keep up to HOLD_PER_PROCESS CURVE
 * DEALER connections that said Hello and heartbeat; meanwhile one pair of
 * members runs request/reply through the same hub. Reported: hubd's RSS
 * before and after the members connect (per connection), and the pair's
 * throughput without and with them. */
#include "bench_hub.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define HOLD_PER_PROCESS   2500
#define SCALE_HEARTBEAT_MS 10000 /* the scale hub's heartbeat_ms: members send one every 5 s */
#define HOLD_CONNECTING    25    /* handshakes in progress per holder (4 x 25 = the backlog) */

/* ------------------------------------------------------------------------ */
/* The holder process                                                        */

static int hold__send_frame(void *sock, hub_frame_t *frame)
{
    uint8_t *buf;
    size_t len;
    if (hub_frame_encode(frame, &buf, &len) != 0)
        return -1;
    int rc = zmq_send(sock, buf, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
    free(buf);
    return rc;
}

static void hold__hello(void *sock, const char *member_id)
{
    Lth__V1__Hello hello = LTH__V1__HELLO__INIT;
    hello.protocol_version = HUB_PROTOCOL_VERSION;
    hello.member_id = (char *)member_id;
    hello.software = "hubbench-hold";
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_HELLO;
    frame.hello = &hello;
    hold__send_frame(sock, &frame);
}

/* hubbench --hold ENVDIR FIRST COUNT ENDPOINT: prints "welcomed N" once every
 * member has its Welcome, then heartbeats until stdin closes (at most 15 min). */
int bench_hold_main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: hubbench --hold ENVDIR FIRST COUNT ENDPOINT\n");
        return 2;
    }
    bench_hubenv_t env;
    memset(&env, 0, sizeof env);
    snprintf(env.dir, sizeof env.dir, "%s", argv[2]);
    int first = atoi(argv[3]), count = atoi(argv[4]);
    snprintf(env.endpoint, sizeof env.endpoint, "%s", argv[5]);
    bench_hubenv_public_path(&env, BENCH_HUB_ID, env.hub_pub);
    bench_raise_nofile();

    char err[512];
    hub_keypair_t hub;
    if (hub_keyfile_read(env.hub_pub, &hub, err, sizeof err) != 0) {
        fprintf(stderr, "hold: %s\n", err);
        return 1;
    }
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, count + 16);
    void **socks = calloc((size_t)count, sizeof *socks);
    char(*ids)[64] = calloc((size_t)count, sizeof *ids);
    bool *welcomed = calloc((size_t)count, sizeof *welcomed);
    if (!socks || !ids || !welcomed)
        return 1;

    /* Members connect in a rolling window of HOLD_CONNECTING handshakes: all
     * at once would overflow hubd's listen backlog (libzmq's ZMQ_BACKLOG,
     * 100 by default), and the kernel would drop SYNs that TCP retries only
     * after 1, 3, 7 ... seconds. Polling thousands of sockets at every
     * wake-up would cost this process more CPU than the hub spends on them,
     * on the same two cores: instead, sweep every socket without blocking a
     * few times a second, and sleep on stdin (EOF means stop) in between. */
    struct pollfd in = {0, POLLIN, 0};
    int n_open = 0, n_welcomed = 0;
    bool announced = false;
    uint64_t start = bench_now_ns(), last_progress = start;
    uint64_t hb_period = (uint64_t)SCALE_HEARTBEAT_MS * 500000ull; /* half the interval */
    int hb_next = 0;
    uint64_t hb_tick = bench_now_ns();
    while (bench_now_ns() - start < 900ull * 1000000000ull) {
        while (n_open < count && n_open - n_welcomed < HOLD_CONNECTING) {
            int i = n_open;
            snprintf(ids[i], sizeof ids[i], "VN/GOV/SCALE/M%05d", first + i);
            char secret[PATH_MAX];
            hub_keypair_t kp;
            bench_hubenv_secret_path(&env, ids[i], secret);
            if (hub_keyfile_read(secret, &kp, err, sizeof err) != 0) {
                fprintf(stderr, "hold: %s\n", err);
                return 1;
            }
            void *s = zmq_socket(ctx, ZMQ_DEALER);
            if (!s) {
                fprintf(stderr, "hold: socket %d: %s\n", i, zmq_strerror(zmq_errno()));
                return 1;
            }
            int zero = 0;
            zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
            zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, hub.curve_public, 40);
            zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, kp.curve_public, 40);
            zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, kp.curve_secret, 40);
            hub_keypair_wipe(&kp);
            if (zmq_connect(s, env.endpoint) != 0) {
                fprintf(stderr, "hold: connect: %s\n", zmq_strerror(zmq_errno()));
                return 1;
            }
            hold__hello(s, ids[i]); /* queued until the handshake is done */
            socks[i] = s;
            n_open++;
        }
        int rc = poll(&in, 1, announced ? 200 : 5);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0) {
            char buf[64];
            if (read(0, buf, sizeof buf) <= 0)
                break;
        }
        for (int i = 0; i < n_open; i++) {
            for (;;) {
                zmq_msg_t msg;
                zmq_msg_init(&msg);
                if (zmq_msg_recv(&msg, socks[i], ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&msg);
                    break;
                }
                hub_frame_t *f = NULL;
                if (!welcomed[i] &&
                    hub_frame_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &f) == 0 &&
                    f->body_case == LTH__V1__FRAME__BODY_WELCOME) {
                    welcomed[i] = true;
                    n_welcomed++;
                }
                hub_frame_free(&f);
                zmq_msg_close(&msg);
            }
        }
        uint64_t now = bench_now_ns();
        if (!announced && n_welcomed == count) {
            printf("welcomed %d\n", n_welcomed);
            fflush(stdout);
            announced = true;
        }
        if (!announced && now - last_progress > 10000000000ull) {
            fprintf(stderr, "hold %d..%d: %d of %d welcomed after %.0f s\n", first,
                    first + count - 1, n_welcomed, count, (double)(now - start) / 1e9);
            last_progress = now;
        }
        /* Heartbeats from welcomed members, spread evenly over the period. */
        uint64_t due = (now - hb_tick) * (uint64_t)count / hb_period;
        if (due > 0) {
            hb_tick = now;
            for (uint64_t k = 0; k < due && k < (uint64_t)count; k++) {
                if (welcomed[hb_next]) {
                    Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
                    hb.sent_at_us = now / 1000u;
                    hub_frame_t frame = LTH__V1__FRAME__INIT;
                    frame.body_case = LTH__V1__FRAME__BODY_HEARTBEAT;
                    frame.heartbeat = &hb;
                    hold__send_frame(socks[hb_next], &frame);
                }
                hb_next = (hb_next + 1) % count;
            }
        }
    }
    for (int i = 0; i < n_open; i++)
        zmq_close(socks[i]);
    zmq_ctx_term(ctx);
    free(socks);
    free(ids);
    free(welcomed);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The parent                                                                */

typedef struct {
    pid_t pid;
    int to_child; /* closing it tells the holder to stop */
    FILE *from_child;
} hold__proc_t;

static int hold__spawn(hold__proc_t *h, const char *envdir, int first, int count,
                       const char *endpoint)
{
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        char first_s[16], count_s[16];
        snprintf(first_s, sizeof first_s, "%d", first);
        snprintf(count_s, sizeof count_s, "%d", count);
        char *argv[] = {"hubbench",       "--hold", (char *)envdir, first_s, count_s,
                        (char *)endpoint, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    h->pid = pid;
    h->to_child = in[1];
    h->from_child = fdopen(out[0], "r");
    return h->from_child ? 0 : -1;
}

static void hold__stop(hold__proc_t *h)
{
    if (h->to_child >= 0)
        close(h->to_child);
    h->to_child = -1;
    if (h->pid > 0) {
        int status;
        for (int i = 0; i < 500 && waitpid(h->pid, &status, WNOHANG) == 0; i++)
            tkp_sleep_ms(10);
        if (waitpid(h->pid, &status, WNOHANG) == 0) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, &status, 0);
        }
    }
    h->pid = 0;
    if (h->from_child)
        fclose(h->from_child);
    h->from_child = NULL;
}

/* The pair's request/reply, `runs` times (alternating transient and durable
 * so that a slow moment of the machine does not sink one of them); keeps
 * the run with the median rate of each. */
static void scale__pair(const bench_hubenv_t *env, int runs, bench_result_t *transient,
                        bench_result_t *durable)
{
    hub_case_t c = {HUB_CASE_REQREPLY, HUB_PEER_RAW, false, false, 1000, 0};
    hub_case_t cd = {HUB_CASE_REQREPLY, HUB_PEER_RAW, true, false, 1000, 0};
    bench_result_t t[15], d[15];
    if (runs > 15)
        runs = 15;
    for (int i = 0; i < runs; i++) {
        bench_hub_drive(env, &c, &t[i]);
        bench_hub_drive(env, &cd, &d[i]);
    }
    /* Median by rate: sort indexes (runs is small). */
    bench_result_t *sets[2] = {t, d}, *outs[2] = {transient, durable};
    for (int k = 0; k < 2; k++) {
        bench_result_t *r = sets[k];
        for (int i = 1; i < runs; i++)
            for (int j = i; j > 0 && r[j].rate < r[j - 1].rate; j--) {
                bench_result_t tmp = r[j];
                r[j] = r[j - 1];
                r[j - 1] = tmp;
            }
        *outs[k] = r[runs / 2];
    }
}

int bench_scale(int members, int runs, const char *out_path, const char *command)
{
    long nofile = bench_raise_nofile();
    if (nofile < members + 512) {
        fprintf(stderr,
                "hubbench: the open-file limit is %ld; hubd needs about %d for %d members "
                "(raise the hard limit: ulimit -Hn)\n",
                nofile, members + 512, members);
        return 1;
    }
    char dir[PATH_MAX + 16], err[512];
    snprintf(dir, sizeof dir, "%s/scale", bench_opts.workdir);
    bench_hubenv_t env;
    uint64_t t = bench_now_ns();
    printf("scale: generating %d member keys ...\n", members + 3);
    fflush(stdout);
    if (bench_hubenv_init(&env, dir, members, err, sizeof err) != 0) {
        fprintf(stderr, "hubbench: %s\n", err);
        return 1;
    }
    double keygen_s = (double)(bench_now_ns() - t) / 1e9;
    /* Signatures and audit off: this mode measures what connections cost. */
    hub_features_t features;
    bench_hub_features(&features);
    char conf[512];
    snprintf(conf, sizeof conf, "heartbeat_ms = %d\n%s%s", SCALE_HEARTBEAT_MS,
             features.sig_off_conf, features.audit_off_conf);
    t = bench_now_ns();
    if (bench_hubenv_start(&env, "data", conf, err, sizeof err) != 0) {
        fprintf(stderr, "hubbench: %s\n", err);
        return 1;
    }
    double start_s = (double)(bench_now_ns() - t) / 1e9;
    uint64_t rss_idle = bench_rss_kib(env.hubd);

    bench_result_t before, after, dbefore, dafter;
    memset(&after, 0, sizeof after);
    memset(&dafter, 0, sizeof dafter);
    bench_cpu_t cpu_a, cpu_b;
    bench_cpu_snap(&cpu_a);
    printf("scale: pair throughput without the members (%d run(s)) ...\n", runs);
    fflush(stdout);
    scale__pair(&env, runs, &before, &dbefore);
    uint64_t rss_before = bench_rss_kib(env.hubd);

    int procs = (members + HOLD_PER_PROCESS - 1) / HOLD_PER_PROCESS;
    hold__proc_t *holders = calloc((size_t)procs, sizeof *holders);
    printf("scale: connecting %d members from %d processes ...\n", members, procs);
    fflush(stdout);
    t = bench_now_ns();
    int connected = 0, rc = 0;
    for (int i = 0; holders && i < procs; i++) {
        int first = i * HOLD_PER_PROCESS + 1;
        int count = members - i * HOLD_PER_PROCESS;
        if (count > HOLD_PER_PROCESS)
            count = HOLD_PER_PROCESS;
        holders[i].to_child = -1;
        if (hold__spawn(&holders[i], dir, first, count, env.endpoint) != 0) {
            fprintf(stderr, "hubbench: cannot start a holder process\n");
            rc = 1;
            break;
        }
    }
    for (int i = 0; rc == 0 && holders && i < procs; i++) {
        char line[128];
        int n = 0;
        if (!fgets(line, sizeof line, holders[i].from_child) ||
            sscanf(line, "welcomed %d", &n) != 1) {
            fprintf(stderr, "hubbench: holder %d did not connect its members (hubd log: %s)\n", i,
                    env.log);
            rc = 1;
            break;
        }
        connected += n;
    }
    double connect_s = (double)(bench_now_ns() - t) / 1e9;
    tkp_sleep_ms(1000);
    uint64_t rss_after = bench_rss_kib(env.hubd);
    if (rc == 0) {
        printf("scale: pair throughput with %d members connected ...\n", connected);
        fflush(stdout);
        scale__pair(&env, runs, &after, &dafter);
    }
    uint64_t rss_load = bench_rss_kib(env.hubd);
    bool alive = bench_alive(env.hubd);
    for (int i = 0; holders && i < procs; i++)
        hold__stop(&holders[i]);
    free(holders);
    bench_hubenv_stop(&env);
    bench_cpu_snap(&cpu_b); /* after the children are reaped: their time is ours */
    if (rc != 0 || !alive) {
        if (!alive)
            fprintf(stderr, "hubbench: hubd died; see %s\n", env.log);
        return 1;
    }

    double per_conn = connected ? (double)(rss_after - rss_before) / connected : 0;
    double ratio = before.rate > 0 ? after.rate / before.rate : 0;
    double dratio = dbefore.rate > 0 ? dafter.rate / dbefore.rate : 0;
    char table[4096];
    snprintf(table, sizeof table,
             "| measure | value |\n"
             "| --- | ---: |\n"
             "| members connected (CURVE, Hello, a heartbeat every %d ms each) | %d (from %d "
             "processes) |\n"
             "| time to connect them all | %.1f s |\n"
             "| key generation (%d members) / hubd start (key dir load) | %.1f s / %.2f s |\n"
             "| hubd RSS at start | %llu KiB |\n"
             "| hubd RSS after the pair's run, before the members | %llu KiB |\n"
             "| hubd RSS with all members connected | %llu KiB |\n"
             "| **hub memory per connected member** | **%.1f KiB** (target < 64) |\n"
             "| hubd RSS after the pair's second run | %llu KiB |\n"
             "| pair req/reply, 1000 in flight, without the members | %.0f msg/s (p50 %.0f µs, p99 "
             "%.0f µs) |\n"
             "| pair req/reply, 1000 in flight, with the members | %.0f msg/s (p50 %.0f µs, p99 "
             "%.0f µs) |\n"
             "| **throughput with / without** | **%.2f** (target ≥ 0.80) |\n"
             "| pair durable req/reply, 1000 in flight, without the members | %.0f msg/s (p50 %.0f "
             "µs, p99 %.0f µs) |\n"
             "| pair durable req/reply, 1000 in flight, with the members | %.0f msg/s (p50 %.0f "
             "µs, p99 %.0f µs) |\n"
             "| **durable throughput with / without** | **%.2f** |\n",
             SCALE_HEARTBEAT_MS / 2, connected, procs, connect_s, members, keygen_s, start_s,
             (unsigned long long)rss_idle, (unsigned long long)rss_before,
             (unsigned long long)rss_after, per_conn, (unsigned long long)rss_load, before.rate,
             before.p50_us, before.p99_us, after.rate, after.p50_us, after.p99_us, ratio,
             dbefore.rate, dbefore.p50_us, dbefore.p99_us, dafter.rate, dafter.p50_us,
             dafter.p99_us, dratio);
    printf("\n%s", table);
    FILE *f = fopen(out_path, "w");
    if (f) {
        fprintf(f,
                "## Scale: %d connected members\n\nCommand: `%s`  \nThroughput figures: the "
                "run with the median rate of %d. Other programs used %.0f%% of the machine's "
                "CPU during the run.\n\n%s",
                members, command, runs, bench_cpu_others(&cpu_a, &cpu_b) * 100, table);
        fclose(f);
        printf("\nwritten to %s\n", out_path);
    }
    return 0;
}
