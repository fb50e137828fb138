/* Connection abuse: half-open TCP connections that never finish the CURVE
 * handshake, handshakes with unknown keys, and a flood of pings from an
 * authenticated member — while a legitimate member's round trips stay fast
 * and hubd's memory stays bounded; refusals are counted, not flooded into
 * the log. */
#include "hub_error.h"
#include "hub_keys.h"
#include "hubfix.h"
#include "testkit.h"
#include "tkwire.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#define LEGIT "VN/GOV/HN-LGSP/OPS"
#define ECHO "VN/GOV/BCA/CSDLQGDC"
#define FLOODER "VN/GOV/HN-VP/TTHC"

static hubfix_t fix;

/* Measured on 2 shared cores: p99 2-18 ms quiet, 13-50 ms under abuse; RSS
 * growth 3.6 MiB (more under AddressSanitizer, whose allocator keeps freed
 * memory in quarantine). */
#define ABUSE_P99_FACTOR 30
#if defined(__SANITIZE_ADDRESS__)
#define ABUSE_RSS_GROWTH_KB (64 * 1024)
#else
#define ABUSE_RSS_GROWTH_KB (16 * 1024)
#endif

static long rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = tk_read_file(path);
    char *p = text ? strstr(text, "VmRSS:") : NULL;
    long kb = p ? strtol(p + 6, NULL, 10) : -1;
    free(text);
    return kb;
}

static int port_of(const char *endpoint)
{
    const char *colon = strrchr(endpoint, ':');
    return colon ? atoi(colon + 1) : -1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* p99 of n round trips of the legitimate member, in microseconds. */
static uint64_t legit_p99(adp_client_t *c, int n)
{
    uint64_t *rtt = calloc((size_t)n, sizeof *rtt);
    for (int i = 0; i < n; i++) {
        adp_reply_t reply;
        uint64_t t0 = hub_monotonic_us();
        int rc = adp_request(c, ECHO, "echo/v1", "text/plain", "x", 1, ADP_ONLINE_ONLY, 5000,
                             &reply);
        ck_assert_msg(rc == 0, "legitimate request failed: %s", adp_last_error(c));
        rtt[i] = hub_monotonic_us() - t0;
        adp_reply_free(&reply);
    }
    qsort(rtt, (size_t)n, sizeof *rtt, cmp_u64);
    uint64_t p99 = rtt[n * 99 / 100];
    free(rtt);
    return p99;
}

#define FLOOD_FRAMES 20000

typedef struct {
    rawcli_t *raw;
    int sent, answers, other;
} flood_t;

static void flood_read(flood_t *fl, int timeout_ms)
{
    hub_frame_t *f;
    while ((f = rawcli_recv(fl->raw, timeout_ms)) != NULL) {
        if (f->body_case == LTH__V1__FRAME__BODY_HEARTBEAT && f->heartbeat->echo)
            fl->answers++;
        else
            fl->other++;
        hub_frame_free(&f);
        timeout_ms = 0;
    }
}

/* The flooder's thread: FLOOD_FRAMES heartbeats as fast as the socket takes
 * them (reading the hub's echoes whenever it is full), then the remaining
 * echoes. Its socket is used by this thread only until it ends. */
static void *flood_run(void *arg)
{
    flood_t *fl = arg;
    Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
    hub_frame_t frame = tkw_heartbeat_frame(&hb);
    uint8_t *hbuf;
    size_t hlen;
    if (hub_frame_encode(&frame, &hbuf, &hlen) != 0)
        return NULL;
    uint64_t deadline = hub_monotonic_us() + 60000000u;
    while (fl->sent < FLOOD_FRAMES && hub_monotonic_us() < deadline) {
        if (zmq_send(fl->raw->sock, hbuf, hlen, ZMQ_DONTWAIT) == (int)hlen)
            fl->sent++;
        else
            flood_read(fl, 1); /* at the high-water mark: take answers */
        /* Take what has come every 256 frames: the hub keeps only a few
         * frames for a connection that does not read (max_waiting_bytes,
         * and it cuts off one that takes nothing for drain_timeout_ms). */
        if (fl->sent % 256 == 0)
            flood_read(fl, 0);
    }
    /* Then it waits for the echoes as a live member does: heartbeating
     * (a member silent for three heartbeat periods is cut off, and what
     * waits for it is dropped). Those heartbeats are echoed too. */
    for (int w = 0; w < 100 && fl->answers < fl->sent; w++) {
        if (zmq_send(fl->raw->sock, hbuf, hlen, ZMQ_DONTWAIT) == (int)hlen)
            fl->sent++;
        flood_read(fl, 100);
    }
    free(hbuf);
    return NULL;
}

START_TEST(abuse_does_not_hurt_legitimate_members)
{
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, LEGIT, ECHO, FLOODER);
    hubfix_start(&fix);
    hubfix_start_adapter(&fix, ECHO, "echo", NULL);
    adp_client_t *legit = hubfix_connect(&fix, LEGIT);
    uint64_t p99_before = legit_p99(legit, 200);
    long rss_before = rss_kb(fix.hubd);

    /* 300 TCP connections that send a few bytes and then nothing. */
    int half_open[300];
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of(fix.endpoint))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    for (int i = 0; i < 300; i++) {
        half_open[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(half_open[i], 0);
        ck_assert_int_eq(connect(half_open[i], (struct sockaddr *)&addr, sizeof addr), 0);
        ssize_t w = write(half_open[i], "\xff\0\0\0\0\0\0\0\x01\x7f", 10);
        (void)w;
    }
    /* 100 handshakes with keys the hub does not know. */
    void *ctx = zmq_ctx_new();
    void *strangers[100];
    char hub_pub_path[PATH_MAX], err[256];
    snprintf(hub_pub_path, sizeof hub_pub_path, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    hub_keypair_t hub;
    ck_assert_int_eq(hub_keyfile_read(hub_pub_path, &hub, err, sizeof err), 0);
    uint8_t server_key[32];
    zmq_z85_decode(server_key, hub.curve_public);
    for (int i = 0; i < 100; i++) {
        char pub[41], sec[41];
        zmq_curve_keypair(pub, sec);
        uint8_t pk[32], sk[32];
        zmq_z85_decode(pk, pub);
        zmq_z85_decode(sk, sec);
        strangers[i] = zmq_socket(ctx, ZMQ_DEALER);
        int linger = 0;
        zmq_setsockopt(strangers[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(strangers[i], ZMQ_CURVE_SERVERKEY, server_key, 32);
        zmq_setsockopt(strangers[i], ZMQ_CURVE_PUBLICKEY, pk, 32);
        zmq_setsockopt(strangers[i], ZMQ_CURVE_SECRETKEY, sk, 32);
        zmq_connect(strangers[i], fix.endpoint);
    }
    /* A flood of heartbeats from an authenticated member, in a thread,
     * while the legitimate member's round trips are measured. */
    rawcli_t flood;
    rawcli_connect(&flood, &fix, FLOODER);
    flood_t fl = {&flood, 0, 0, 0};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, flood_run, &fl), 0);
    uint64_t p99_during = legit_p99(legit, 200);
    pthread_join(thread, NULL);
    tk_sleep_ms(1500);
    long rss_during = rss_kb(fix.hubd);
    printf("abuse: legitimate p99 %llu us before, %llu us during; hubd RSS %ld -> %ld KiB; "
           "flood %d sent, %d echoed, %d other answers\n",
           (unsigned long long)p99_before, (unsigned long long)p99_during, rss_before,
           rss_during, fl.sent, fl.answers, fl.other);
    ck_assert(hubfix_hub_alive(&fix));
    /* Bounds relative to this run's own quiet measurement: the round trip
     * may slow while the hub answers 20,000 frames, within ABUSE_P99_FACTOR
     * of quiet plus 30 ms of scheduling noise on a shared machine, and never
     * past the old fixed bound of 250 ms. */
    uint64_t p99_bound = p99_before * ABUSE_P99_FACTOR + 30000;
    if (p99_bound > 250000)
        p99_bound = 250000;
    ck_assert_msg(p99_during < p99_bound, "legitimate p99 %llu us under abuse, %llu us quiet "
                  "(bound %llu us)",
                  (unsigned long long)p99_during, (unsigned long long)p99_before,
                  (unsigned long long)p99_bound);
    ck_assert_msg(rss_during < rss_before + ABUSE_RSS_GROWTH_KB, "hubd grew from %ld to %ld KiB",
                  rss_before, rss_during);
    /* Every heartbeat went out and the hub echoed each, and nothing else. */
    /* The hub answers every heartbeat it takes, but keeps only a few frames
     * for a connection that does not read (max_waiting_bytes; ZeroMQ's own
     * queue is 16 frames): a flooder that reads its echoes late loses them
     * once it is cut off (silent for three heartbeat periods while its own
     * queue is stuck, or not draining for drain_timeout_ms). So: every
     * heartbeat went out, the answers are echoes and nothing else, and
     * either all came back or the hub cut the flooder off, saying so. */
    ck_assert_int_ge(fl.sent, FLOOD_FRAMES);
    ck_assert_int_eq(fl.other, 0);
    ck_assert_int_gt(fl.answers, 0);
    if (fl.answers != fl.sent)
        ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "member=" FLOODER, 100) &&
                          (tk_wait_file_contains(fix.hubd_log, "member silent, marked offline", 10) ||
                           tk_wait_file_contains(fix.hubd_log, "member not reading: cut off", 10)),
                      "%d of %d heartbeats answered and the flooder was not cut off", fl.answers,
                      fl.sent);
    /* Refusals are counted in one line per second, not one per key. */
    char *log = tk_read_file(fix.hubd_log);
    int lines = 0;
    for (char *p = log; p && (p = strstr(p, "CURVE key not in the key directory")); p++)
        lines++;
    free(log);
    ck_assert_msg(lines >= 1 && lines <= 10, "%d refusal log lines for 100 unknown keys", lines);

    for (int i = 0; i < 100; i++)
        zmq_close(strangers[i]);
    zmq_ctx_term(ctx);
    for (int i = 0; i < 300; i++)
        close(half_open[i]);
    rawcli_close(&flood);
    adp_close(&legit);
    hubfix_cleanup(&fix);
}
END_TEST

TK_MAIN("e2e_abuse", TK_CASE("abuse", NULL, NULL, 120, abuse_does_not_hurt_legitimate_members))
