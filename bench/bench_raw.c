/* The raw libzmq baseline: client and server DEALER threads around a
 * rawhop relay process (see rawhop.c for the protocol). */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    bench_window_t win;
    bench_lat_t lat;
    char endpoint[256];
    bool curve;
    char server_public[41];
    int inflight;
    atomic_int server_ready; /* 1 registered, -1 failed */
} raw__case_t;

static void *raw__socket(void *ctx, const raw__case_t *rc)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, hwm = 100000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (rc->curve) {
        char pub[41], sec[41];
        zmq_curve_keypair(pub, sec);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, rc->server_public, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    zmq_connect(s, rc->endpoint);
    return s;
}

/* The next message queued on s, without waiting: false when there is none
 * (m is then closed). */
static bool raw__next(void *s, zmq_msg_t *m)
{
    zmq_msg_init(m);
    if (zmq_msg_recv(m, s, ZMQ_DONTWAIT) >= 0)
        return true;
    zmq_msg_close(m);
    return false;
}

/* A thread's life on one side of the hop: its own context and socket;
 * start() once connected (false: nothing more to do), then on_message() for
 * each message as it arrives, at most 1024 between polls, until the run
 * stops. on_message() owns the message. */
static void raw__thread(raw__case_t *rc, bool (*start)(raw__case_t *, void *, void *),
                        void (*on_message)(raw__case_t *, void *, zmq_msg_t *, void *), void *side)
{
    void *ctx = zmq_ctx_new();
    void *s = raw__socket(ctx, rc);
    zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
    if (start(rc, s, side)) {
        while (atomic_load(&rc->win.phase) != BENCH_STOP) {
            if (zmq_poll(&item, 1, 100) <= 0)
                continue;
            for (int n = 0; n < 1024; n++) {
                zmq_msg_t m;
                if (!raw__next(s, &m))
                    break;
                on_message(rc, s, &m, side);
            }
        }
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
}

/* The server registers with the relay ("S", answered once). */
static bool raw__server_register(raw__case_t *rc, void *s, void *side)
{
    (void)side;
    zmq_send(s, "S", 1, 0);
    zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 5000) <= 0) {
        atomic_store(&rc->server_ready, -1);
        return false;
    }
    char ok[4];
    zmq_recv(s, ok, sizeof ok, 0);
    atomic_store(&rc->server_ready, 1);
    return true;
}

/* Echo: the relay's prefix names the client to return it to. */
static void raw__server_echo(raw__case_t *rc, void *s, zmq_msg_t *m, void *side)
{
    (void)rc;
    (void)side;
    if (zmq_msg_send(m, s, 0) < 0)
        zmq_msg_close(m);
}

static void *raw__server(void *arg)
{
    raw__thread(arg, raw__server_register, raw__server_echo, NULL);
    return NULL;
}

/* The client's payload and the sequence that stamps it. */
typedef struct {
    uint8_t payload[BENCH_PAYLOAD];
    uint64_t seq;
} raw__sender_t;

static void raw__send_next(raw__case_t *rc, void *s, raw__sender_t *c)
{
    bench_payload_fill(c->payload, sizeof c->payload, ++c->seq);
    zmq_send(s, c->payload, sizeof c->payload, 0);
    atomic_fetch_add(&rc->win.outstanding, 1);
}

/* The client keeps `inflight` messages on their way. */
static bool raw__client_fill(raw__case_t *rc, void *s, void *side)
{
    raw__sender_t *c = side;
    memset(c->payload, 'x', sizeof c->payload);
    for (int i = 0; i < rc->inflight; i++)
        raw__send_next(rc, s, c);
    return true;
}

/* Each message back: its round trip counted while measuring, and another
 * sent in its place until the drain. */
static void raw__client_returned(raw__case_t *rc, void *s, zmq_msg_t *m, void *side)
{
    uint64_t sent = bench_payload_sent_ns(zmq_msg_data(m), zmq_msg_size(m));
    zmq_msg_close(m);
    if (bench_window_complete(&rc->win, &rc->lat, sent))
        raw__send_next(rc, s, side);
}

static void *raw__client(void *arg)
{
    raw__sender_t c = {.seq = 0};
    raw__thread(arg, raw__client_fill, raw__client_returned, &c);
    return NULL;
}

static bool raw__drained(void *user)
{
    raw__case_t *rc = user;
    return atomic_load(&rc->win.outstanding) <= 0;
}

void bench_raw_hop(bool curve, int inflight, bench_result_t *out)
{
    raw__case_t *rc = calloc(1, sizeof *rc);
    if (!rc) {
        bench_result_na(out, "out of memory");
        return;
    }
    bench_window_init(&rc->win);
    rc->curve = curve;
    rc->inflight = inflight;
    char dir[PATH_MAX], ready[PATH_MAX + 16], log[PATH_MAX + 16], secret_file[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/rawhop-%s-%d", bench_opts.workdir, curve ? "curve" : "plain",
             inflight);
    tkp_rmrf(dir);
    mkdir(dir, 0700);
    snprintf(ready, sizeof ready, "%s/ready", dir);
    snprintf(log, sizeof log, "%s/rawhop.log", dir);
    snprintf(secret_file, sizeof secret_file, "%s/relay.secret", dir);
    char relay[PATH_MAX + 16];
    snprintf(relay, sizeof relay, "%s/rawhop", bench_opts.bindir);
    char *argv[8] = {relay, "--endpoint", "tcp://127.0.0.1:*", "--ready-file", ready, NULL,
                     NULL,  NULL};
    if (curve) {
        char sec[41];
        zmq_curve_keypair(rc->server_public, sec);
        char text[64];
        snprintf(text, sizeof text, "%s\n", sec);
        tkp_write_file(secret_file, text, 0600);
        argv[5] = "--curve-secret-file";
        argv[6] = secret_file;
    }
    pid_t pid = tkp_spawn(argv, log);
    if (pid < 0 || !tkp_wait_file(ready, 5000)) {
        bench_result_na(out, "rawhop did not start; see %s", log);
        tkp_stop(pid);
        free(rc);
        return;
    }
    char *text = tkp_read_file(ready);
    char *ep = text ? strstr(text, "endpoint=") : NULL;
    if (ep)
        snprintf(rc->endpoint, sizeof rc->endpoint, "%.*s", (int)strcspn(ep + 9, "\n"), ep + 9);
    free(text);

    pthread_t server, client;
    pthread_create(&server, NULL, raw__server, rc);
    while (atomic_load(&rc->server_ready) == 0)
        tkp_sleep_ms(1);
    if (atomic_load(&rc->server_ready) < 0) {
        atomic_store(&rc->win.phase, BENCH_STOP);
        pthread_join(server, NULL);
        bench_result_na(out, "the rawhop server did not register");
        tkp_stop(pid);
        free(rc);
        return;
    }
    pthread_create(&client, NULL, raw__client, rc);
    rc->win.cpu_pid = pid;
    rc->win.envelopes_per_msg = 2; /* there and back */
    bench_window_run(&rc->win, raw__drained, rc);
    pthread_join(client, NULL);
    pthread_join(server, NULL);
    bench_result_from(out, &rc->win, &rc->lat);
    bench_case_end(pid, &rc->lat, dir);
    free(rc);
}
