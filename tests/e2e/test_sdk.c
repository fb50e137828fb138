/* End to end: the adapter SDK's own behaviour against a real hubd — what an
 * application relies on beyond "messages arrive": it costs no CPU while the
 * hub is down and comes back when the hub does, and its state directory
 * never holds (and so never resends) a message the hub has answered. */
#include "hub_error.h"
#include "hub_keys.h"
#include "hubfix.h"
#include "testkit.h"
#include "tkwire.h"

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
#include <zmq.h>

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
    HUBFIX_ADD_MEMBERS(&fix, A, B, OPS);
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
    snprintf(path, PATH_MAX, "%s/hubctl.conf", fix.dir);
    hubfix_member_conf(&fix, OPS, NULL, path);
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

    /* Pinging the hub itself fails at once while it is down. */
    uint64_t rtt = 0;
    ck_assert_int_eq(adp_ping_hub(c, 500, &rtt), HUB_ECLOSED);

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
    /* The hub answers a ping of its own, with no member in the way. */
    ck_assert_msg(adp_ping_hub(c, 5000, &rtt) == 0, "hub ping: %s", adp_last_error(c));
    ck_assert_uint_gt(rtt, 0);
    ck_assert_uint_lt(rtt, 5000000u);
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
    char err[512];
    hubfix_client_conf_t conf;
    hubfix_client_conf(&fix, member, &conf);
    conf.cfg.state_dir = state_dir;
    adp_client_t *c = NULL;
    int rc = start ? adp_connect(&conf.cfg, &c, err, sizeof err)
                   : adp_new(&conf.cfg, &c, err, sizeof err);
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
    /* The journal was compacted on the way iff it was replaced (compaction
     * writes the pending messages to a new file and renames it over the
     * old one; otherwise the file only grows, holding every P record and an
     * A record each). Not by its size: a compacted file rewrites each
     * pending message signed, with its batch proof, which may weigh more
     * than all the records it replaces. ACKs may start while the events
     * are still being posted, so watch it all along. */
    off_t largest = 0;
    ino_t first_ino = 0;
    bool replaced = false;
    struct stat st;
    for (int i = 0; i < N; i++) {
        int len = snprintf(payload, sizeof payload, "{\"n\":%d}", i);
        ck_assert_int_eq(adp_post_event(c, B, "dossier.status/v1", "application/json", payload,
                                        (size_t)len, 0, NULL),
                         0);
        if (stat(jnl, &st) == 0) {
            if (!first_ino)
                first_ino = st.st_ino;
            replaced |= st.st_ino != first_ino || st.st_size < largest;
            if (st.st_size > largest)
                largest = st.st_size;
        }
    }
    uint64_t deadline = hub_monotonic_us() + 240000000u;
    while (adp_outbox_size(c) > 0 && hub_monotonic_us() < deadline) {
        adp_run(c, 100);
        if (stat(jnl, &st) == 0) {
            if (!first_ino)
                first_ino = st.st_ino;
            replaced |= st.st_ino != first_ino || st.st_size < largest;
            if (st.st_size > largest)
                largest = st.st_size;
        }
    }
    ck_assert_msg(adp_outbox_size(c) == 0, "%zu of %d events were not ACKed in time",
                  adp_outbox_size(c), N);
    ck_assert_msg(replaced, "outbox.jnl was not compacted (the same file only grew, to %lld bytes)",
                  (long long)largest);
    adp_close(&c);

    /* A restart restores nothing: every message was answered. */
    c = connect_with_state(A, state_dir, false);
    ck_assert_msg(adp_outbox_size(c) == 0,
                  "the restarted client restored %zu answered message(s) as pending",
                  adp_outbox_size(c));
    adp_close(&c);
}
END_TEST


typedef struct {
    adp_outcome_t o[64];
    char ids[64][37];
    char reasons[64][128];
    size_t n;
} outcomes_t;

static void record_outcome(adp_client_t *client, const adp_outcome_t *o, void *user)
{
    (void)client;
    outcomes_t *r = user;
    ck_assert_uint_lt(r->n, 64);
    r->o[r->n] = *o;
    snprintf(r->ids[r->n], 37, "%s", o->message_id);
    snprintf(r->reasons[r->n], 128, "%s", o->reason);
    r->o[r->n].message_id = r->ids[r->n];
    r->o[r->n].reason = r->reasons[r->n];
    r->n++;
}

static const adp_outcome_t *find_outcome(const outcomes_t *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->ids[i], id))
            return &r->o[i];
    return NULL;
}

static const adp_outcome_t *await_outcome(adp_client_t *c, const outcomes_t *r, const char *id,
                                          int timeout_ms)
{
    uint64_t deadline = hub_monotonic_us() + (uint64_t)timeout_ms * 1000u;
    while (!find_outcome(r, id) && hub_monotonic_us() < deadline)
        adp_run(c, 50);
    return find_outcome(r, id);
}

/* Every message's outcome reaches the application: ACKs with their hub_seq,
 * NACKs with code and reason, answers that come after the caller stopped
 * waiting, and answers for messages restored from the state directory. */
START_TEST(every_outcome_is_reported)
{
    char state_dir[PATH_MAX];
    snprintf(state_dir, sizeof state_dir, "%s/sender-state", fix.dir);
    outcomes_t *got = calloc(1, sizeof *got);
    ck_assert_ptr_nonnull(got);
    adp_client_t *c = connect_with_state(A, state_dir, true);
    adp_set_outcome_handler(c, record_outcome, got);

    /* Pipelined events: an ACK each; a NACK for an unknown receiver. */
    char ids[3][37], bad[37];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(adp_post_event(c, B, "dossier.status/v1", "application/json", "{}", 2,
                                        0, ids[i]),
                         0);
    ck_assert_int_eq(adp_post_event(c, "VN/GOV/XX/NOBODY", "dossier.status/v1",
                                    "application/json", "{}", 2, 0, bad),
                     0);
    ck_assert_uint_eq(adp_outbox_size(c), 4);
    for (int i = 0; i < 3; i++) {
        const adp_outcome_t *o = await_outcome(c, got, ids[i], 10000);
        ck_assert_msg(o != NULL, "no outcome for event %d", i);
        ck_assert(o->acked);
        ck_assert_uint_gt(o->hub_seq, 1u << 20);
        ck_assert(!o->restored);
    }
    const adp_outcome_t *o = await_outcome(c, got, bad, 10000);
    ck_assert_ptr_nonnull(o);
    ck_assert(!o->acked);
    ck_assert_str_eq(hub_nack_code_name(o->nack_code), "UNKNOWN_RECEIVER");
    ck_assert_ptr_nonnull(strstr(o->reason, "VN/GOV/XX/NOBODY"));
    ck_assert_uint_eq(adp_outbox_size(c), 0);

    /* A request the hub has answered no longer counts as unanswered, though
     * its reply is still to be collected. */
    char req[37];
    ck_assert_int_eq(adp_request_start(c, HUBFIX_HUB_ID, "lth.members/v1", "text/plain", "", 0,
                                       0, req),
                     0);
    o = await_outcome(c, got, req, 10000);
    ck_assert_ptr_nonnull(o);
    ck_assert(o->acked);
    ck_assert_uint_eq(o->hub_seq, 0);
    ck_assert_uint_eq(adp_outbox_size(c), 0);
    adp_reply_t reply;
    int rc = HUB_EAGAIN;
    for (int w = 0; w < 100 && (rc = adp_request_poll(c, req, &reply)) == HUB_EAGAIN; w++)
        adp_run(c, 50);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(strstr((const char *)reply.payload, "\"members\""));
    adp_reply_free(&reply);

    /* An answer that comes after adp_send_event() gave up. */
    hubfix_stop(&fix);
    uint64_t seq = 0;
    ck_assert_int_eq(adp_send_event(c, B, "dossier.status/v1", "application/json", "{}", 2, 0,
                                    300, &seq),
                     HUB_ETIMEDOUT);
    ck_assert_uint_eq(adp_outbox_size(c), 1);
    adp_pending_t late[4];
    ck_assert_uint_eq(adp_outbox_list(c, late, 4), 1);
    hubfix_start(&fix);
    o = await_outcome(c, got, late[0].message_id, 15000);
    ck_assert_msg(o != NULL, "the outcome of a message that timed out never came");
    ck_assert(o->acked);

    /* Application-chosen ids: bad ones refused; two events left unanswered
     * at close come back in the next client, which reports their outcomes. */
    ck_assert_int_eq(adp_post_event_as(c, "not-a-uuid", 0, B, "dossier.status/v1",
                                       "application/json", "{}", 2, 0),
                     HUB_EINVAL);
    const char *mine[2] = {"6f1c2a4e-8b3d-4f5a-9c7e-0d1e2f3a4b5c",
                           "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"};
    const uint64_t created = 1796169600000000ull;
    hubfix_stop(&fix);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(adp_post_event_as(c, mine[i], created, B, "dossier.status/v1",
                                           "application/json", "{\"hoso\":1}", 11, 0),
                         0);
    ck_assert_int_eq(adp_post_event_as(c, mine[0], created, B, "dossier.status/v1",
                                       "application/json", "{\"hoso\":1}", 11, 0),
                     HUB_EEXIST);
    adp_run(c, 100);
    ck_assert_uint_eq(adp_outbox_size(c), 2);
    adp_close(&c);

    memset(got, 0, sizeof *got);
    c = connect_with_state(A, state_dir, false);
    adp_pending_t restored[4];
    ck_assert_uint_eq(adp_outbox_list(c, restored, 4), 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(restored[i].message_id, mine[i]);
        ck_assert(restored[i].restored);
    }
    adp_set_outcome_handler(c, record_outcome, got);
    hubfix_start(&fix);
    char err[256];
    ck_assert_int_eq(adp_start(c, err, sizeof err), 0);
    uint64_t first_seq[2];
    for (int i = 0; i < 2; i++) {
        o = await_outcome(c, got, mine[i], 15000);
        ck_assert_msg(o != NULL, "no outcome for restored message %s", mine[i]);
        ck_assert(o->acked);
        ck_assert(o->restored);
        first_seq[i] = o->hub_seq;
    }
    /* Sent again as the same record (same id, time, content): de-duplicated
     * by the hub, which answers with the original hub_seq. */
    memset(got, 0, sizeof *got);
    ck_assert_int_eq(adp_post_event_as(c, mine[1], created, B, "dossier.status/v1",
                                       "application/json", "{\"hoso\":1}", 11, 0),
                     0);
    o = await_outcome(c, got, mine[1], 10000);
    ck_assert_ptr_nonnull(o);
    ck_assert(o->acked);
    ck_assert_uint_eq(o->hub_seq, first_seq[1]);
    ck_assert(!o->restored);
    adp_close(&c);
    free(got);
}
END_TEST

static void setup_fast_redelivery(void)
{
    hubfix_init(&fix, "redelivery_ms = 200\nmax_attempts = 3");
    HUBFIX_ADD_MEMBERS(&fix, A, B);
    hubfix_start(&fix);
}

typedef struct {
    int verdict_first, verdict_then; /* returned on attempt 1, and after */
    int calls;
    uint32_t attempts[16];
} verdicts_t;

static int verdict_handler(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                           void *user)
{
    (void)reply;
    verdicts_t *v = user;
    if (v->calls < 16)
        v->attempts[v->calls] = msg->attempt;
    int verdict = v->calls++ == 0 ? v->verdict_first : v->verdict_then;
    if (verdict == ADP_DEAD_LETTER)
        adp_dead_letter_reason(client, "dossier already closed in the receiving system");
    return verdict;
}

static void run_for(adp_client_t *a, adp_client_t *b, int ms)
{
    uint64_t until = hub_monotonic_us() + (uint64_t)ms * 1000u;
    while (hub_monotonic_us() < until) {
        adp_run(a, 20);
        adp_run(b, 20);
    }
}

/* A handler's return value decides: ADP_LATER leaves the message with the
 * hub, which delivers it again; ADP_DEAD_LETTER is never handled again (the
 * hub dead-letters it: at once when it knows Settle.rejects, else when the
 * retry budget of 3 attempts is spent). */
START_TEST(handler_verdicts_later_and_dead_letter)
{
    adp_client_t *a = hubfix_connect(&fix, A);
    adp_client_t *b = hubfix_connect(&fix, B);
    verdicts_t later = {ADP_LATER, ADP_SETTLE, 0, {0}};
    ck_assert_int_eq(adp_offer(b, "dossier.status/v1", verdict_handler, &later), 0);
    uint64_t seq = 0;
    ck_assert_int_eq(adp_send_event(a, B, "dossier.status/v1", "application/json", "{}", 2, 0,
                                    5000, &seq),
                     0);
    uint64_t deadline = hub_monotonic_us() + 10000000u;
    while (later.calls < 2 && hub_monotonic_us() < deadline)
        run_for(a, b, 50);
    ck_assert_msg(later.calls == 2, "ADP_LATER: handler ran %d time(s), expected a redelivery",
                  later.calls);
    ck_assert_uint_eq(later.attempts[0], 1);
    ck_assert_uint_eq(later.attempts[1], 2);
    run_for(a, b, 1500); /* settled on attempt 2: never again */
    ck_assert_int_eq(later.calls, 2);

    verdicts_t dead = {ADP_DEAD_LETTER, ADP_DEAD_LETTER, 0, {0}};
    ck_assert_int_eq(adp_offer(b, "dossier.closed/v1", verdict_handler, &dead), 0);
    ck_assert_int_eq(adp_send_event(a, B, "dossier.closed/v1", "application/json", "{}", 2, 0,
                                    5000, &seq),
                     0);
    run_for(a, b, 3000);
    ck_assert_msg(dead.calls >= 1 && dead.calls <= 3,
                  "ADP_DEAD_LETTER: handler ran %d times (1 to 3 expected)", dead.calls);
    int calls = dead.calls;
    run_for(a, b, 1500);
    ck_assert_int_eq(dead.calls, calls);
    /* The receiver is not stuck behind it. */
    ck_assert_int_eq(adp_send_event(a, B, "dossier.status/v1", "application/json", "{}", 2, 0,
                                    5000, &seq),
                     0);
    deadline = hub_monotonic_us() + 10000000u;
    while (later.calls < 3 && hub_monotonic_us() < deadline)
        run_for(a, b, 50);
    ck_assert_int_eq(later.calls, 3);
    adp_close(&a);
    adp_close(&b);
}
END_TEST

/* The wire side of the verdicts, against a stand-in hub (a CURVE ROUTER in
 * this process) that delivers three envelopes: what the SDK sends back is
 * a settle for ADP_SETTLE, nothing for ADP_LATER, and a Settle.rejects
 * entry with the handler's reason for ADP_DEAD_LETTER. */
static void setup_keys_only(void)
{
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, A, B);
}

typedef struct {
    void *ctx, *router;
    uint8_t rid[256];
    size_t rid_len;
} fakehub_t;

static void fakehub_send(fakehub_t *h, hub_frame_t *frame)
{
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(hub_frame_encode(frame, &buf, &len), 0);
    ck_assert_int_ge(zmq_send(h->router, h->rid, h->rid_len, ZMQ_SNDMORE), 0);
    ck_assert_int_ge(zmq_send(h->router, buf, len, 0), 0);
    free(buf);
}

/* The next frame from the client within timeout_ms, or NULL. */
static hub_frame_t *fakehub_recv(fakehub_t *h, int timeout_ms)
{
    zmq_pollitem_t it = {h->router, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return NULL;
    int n = zmq_recv(h->router, h->rid, sizeof h->rid, 0);
    ck_assert_int_gt(n, 0);
    h->rid_len = (size_t)n;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    ck_assert_int_ge(zmq_msg_recv(&msg, h->router, 0), 0);
    hub_frame_t *f = NULL;
    ck_assert_int_eq(hub_frame_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &f), 0);
    zmq_msg_close(&msg);
    return f;
}

/* Delivers one envelope to the client as hub_seq `seq`. */
static void fakehub_send_envelope(fakehub_t *h, uint64_t seq, const Lth__V1__Envelope *env)
{
    uint8_t bytes[1024];
    size_t len = lth__v1__envelope__pack(env, bytes);
    Lth__V1__DeliveredEnvelope item = LTH__V1__DELIVERED_ENVELOPE__INIT;
    Lth__V1__DeliveredEnvelope *items[] = {&item};
    item.hub_seq = seq;
    item.envelope.data = bytes;
    item.envelope.len = len;
    item.attempt = 1;
    Lth__V1__Deliveries d = tkw_deliveries(items, 1);
    hub_frame_t f = tkw_deliveries_frame(&d);
    fakehub_send(h, &f);
}

static void fakehub_deliver(fakehub_t *h, uint64_t seq, const char *service)
{
    char id[37];
    Lth__V1__Envelope env = tkw_envelope(id, A, B, service);
    env.content_type = "application/json";
    env.kind = LTH__V1__KIND__KIND_EVENT;
    fakehub_send_envelope(h, seq, &env);
}

/* Starts the stand-in hub and connects B to it (Hello, then a Welcome that
 * does not require signatures); `offer` (may be NULL) registers B's
 * handlers before it says Hello. */
static adp_client_t *fakehub_start(fakehub_t *hp, void (*offer)(adp_client_t *, void *),
                                   void *user)
{
    fakehub_t h = {0};
    char hub_secret[PATH_MAX], err[512];
    hubfix_secret_path(&fix, HUBFIX_HUB_ID, hub_secret);
    hub_keypair_t hk;
    ck_assert_msg(hub_keyfile_read(hub_secret, &hk, err, sizeof err) == 0, "%s", err);
    h.ctx = zmq_ctx_new();
    h.router = zmq_socket(h.ctx, ZMQ_ROUTER);
    int one = 1, linger = 0;
    uint8_t secret[32];
    ck_assert_ptr_nonnull(zmq_z85_decode(secret, hk.curve_secret));
    ck_assert_int_eq(zmq_setsockopt(h.router, ZMQ_CURVE_SERVER, &one, sizeof one), 0);
    ck_assert_int_eq(zmq_setsockopt(h.router, ZMQ_CURVE_SECRETKEY, secret, 32), 0);
    ck_assert_int_eq(zmq_setsockopt(h.router, ZMQ_LINGER, &linger, sizeof linger), 0);
    hub_keypair_wipe(&hk);
    ck_assert_int_eq(zmq_bind(h.router, "tcp://127.0.0.1:*"), 0);
    size_t eplen = sizeof fix.endpoint;
    ck_assert_int_eq(zmq_getsockopt(h.router, ZMQ_LAST_ENDPOINT, fix.endpoint, &eplen), 0);

    char hub_pub[PATH_MAX], b_secret[PATH_MAX];
    hubfix_public_path(&fix, HUBFIX_HUB_ID, hub_pub);
    hubfix_secret_path(&fix, B, b_secret);
    adp_config_t cfg = {fix.endpoint, hub_pub, b_secret, 5000, "test", NULL};
    adp_client_t *b = NULL;
    ck_assert_msg(adp_new(&cfg, &b, err, sizeof err) == 0, "%s", err);
    if (offer)
        offer(b, user);
    /* Hello, then a Welcome that does not require signatures. */
    hub_frame_t *f = NULL;
    for (int i = 0; i < 100 && !f; i++) {
        adp_run(b, 20);
        f = fakehub_recv(&h, 20);
    }
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->body_case, LTH__V1__FRAME__BODY_HELLO);
    hub_frame_free(&f);
    Lth__V1__Welcome w = LTH__V1__WELCOME__INIT;
    w.member_id = B;
    w.heartbeat_ms = 60000;
    w.hub_id = HUBFIX_HUB_ID;
    hub_frame_t wf = tkw_welcome_frame(&w);
    fakehub_send(&h, &wf);
    for (int i = 0; i < 100 && !adp_connected(b); i++)
        adp_run(b, 20);
    ck_assert(adp_connected(b));

    *hp = h;
    return b;
}

static void offer_verdicts(adp_client_t *b, void *user)
{
    verdicts_t *v = user;
    ck_assert_int_eq(adp_offer(b, "a/v1", verdict_handler, &v[0]), 0);
    ck_assert_int_eq(adp_offer(b, "b/v1", verdict_handler, &v[1]), 0);
    ck_assert_int_eq(adp_offer(b, "c/v1", verdict_handler, &v[2]), 0);
}

START_TEST(verdicts_on_the_wire)
{
    verdicts_t v[3] = {{ADP_SETTLE, ADP_SETTLE, 0, {0}},
                       {ADP_LATER, ADP_LATER, 0, {0}},
                       {ADP_DEAD_LETTER, ADP_DEAD_LETTER, 0, {0}}};
    fakehub_t h;
    adp_client_t *b = fakehub_start(&h, offer_verdicts, v);
    hub_frame_t *f = NULL;

    fakehub_deliver(&h, 101, "a/v1");
    fakehub_deliver(&h, 102, "b/v1");
    fakehub_deliver(&h, 103, "c/v1");
    bool settled_101 = false, rejected_103 = false, touched_102 = false;
    uint64_t deadline = hub_monotonic_us() + 3000000u;
    while (hub_monotonic_us() < deadline) {
        adp_run(b, 20);
        while ((f = fakehub_recv(&h, 0)) != NULL) {
            if (f->body_case == LTH__V1__FRAME__BODY_SETTLE) {
                for (size_t i = 0; i < f->settle->n_hub_seqs; i++) {
                    settled_101 |= f->settle->hub_seqs[i] == 101;
                    touched_102 |= f->settle->hub_seqs[i] == 102;
                    ck_assert_uint_ne(f->settle->hub_seqs[i], 103);
                }
                for (size_t i = 0; i < f->settle->n_rejects; i++) {
                    touched_102 |= f->settle->rejects[i]->hub_seq == 102;
                    if (f->settle->rejects[i]->hub_seq == 103) {
                        rejected_103 = true;
                        ck_assert_str_eq(f->settle->rejects[i]->reason,
                                         "dossier already closed in the receiving system");
                    }
                }
            }
            hub_frame_free(&f);
        }
    }
    ck_assert_int_eq(v[0].calls + v[1].calls + v[2].calls, 3);
    ck_assert_msg(settled_101, "ADP_SETTLE: no settle sent");
    ck_assert_msg(!touched_102, "ADP_LATER: the delivery was settled or rejected");
    ck_assert_msg(rejected_103, "ADP_DEAD_LETTER: no Settle.rejects entry sent");
    adp_close(&b);
    zmq_close(h.router);
    zmq_ctx_term(h.ctx);
}
END_TEST

/* The SDK takes a reply only from the member it sent the request to, or
 * from the delegate the hub's ACK names; a stand-in hub delivers forged
 * ones (a real hub refuses them before they get this far). */
static void fakehub_reply(fakehub_t *h, uint64_t seq, const char *sender, const char *request_id,
                          const char *payload)
{
    char id[37];
    Lth__V1__Envelope env = tkw_envelope(id, sender, B, "x/v1");
    env.correlation_id = (char *)request_id;
    env.content_type = "text/plain";
    env.payload.data = (uint8_t *)payload;
    env.payload.len = strlen(payload);
    env.kind = LTH__V1__KIND__KIND_REPLY;
    fakehub_send_envelope(h, seq, &env);
}

static void fakehub_ack(fakehub_t *h, const char *id, const char *routed_to)
{
    Lth__V1__Ack ack = LTH__V1__ACK__INIT, *acks[] = {&ack};
    ack.message_id = (char *)id;
    ack.hub_seq = 7;
    ack.routed_to = (char *)(routed_to ? routed_to : "");
    Lth__V1__Receipts rec = tkw_receipts(acks, 1);
    hub_frame_t f = tkw_receipts_frame(&rec);
    fakehub_send(h, &f);
}

/* Sends a request from B to `to` and waits until the stand-in hub has it. */
static void start_request(adp_client_t *b, fakehub_t *h, const char *to, char id[37])
{
    ck_assert_int_eq(adp_request_start(b, to, "x/v1", "text/plain", "?", 1, 0, id), 0);
    hub_frame_t *f = NULL;
    for (int i = 0; i < 100; i++) {
        adp_run(b, 10);
        f = fakehub_recv(h, 10);
        if (f && f->body_case == LTH__V1__FRAME__BODY_BATCH)
            break;
        hub_frame_free(&f);
    }
    ck_assert_ptr_nonnull(f);
    hub_frame_free(&f);
}

/* Polls for up to ms: 0 with the reply, or HUB_EAGAIN. */
static int poll_reply(adp_client_t *b, const char *id, adp_reply_t *reply, int ms)
{
    int rc = HUB_EAGAIN;
    for (int i = 0; i < ms / 10 && rc == HUB_EAGAIN; i++) {
        adp_run(b, 10);
        rc = adp_request_poll(b, id, reply);
    }
    return rc;
}

#define OTHER "VN/GOV/HN-XX/EVIL"
#define DELEGATE "VN/GOV/HN-QHK/HOTICH"

START_TEST(reply_only_from_the_member_asked_or_its_named_delegate)
{
    fakehub_t h;
    adp_client_t *b = fakehub_start(&h, NULL, NULL);
    adp_reply_t reply;
    /* 1. A forged reply before the ACK is held, dropped when the ACK names
     *    no delegate; the real one is taken. */
    char id[37];
    start_request(b, &h, A, id);
    fakehub_reply(&h, 201, OTHER, id, "forged");
    ck_assert_int_eq(poll_reply(b, id, &reply, 300), HUB_EAGAIN);
    fakehub_ack(&h, id, NULL);
    ck_assert_int_eq(poll_reply(b, id, &reply, 300), HUB_EAGAIN);
    fakehub_reply(&h, 202, A, id, "real");
    ck_assert_int_eq(poll_reply(b, id, &reply, 2000), 0);
    ck_assert_str_eq(reply.sender, A);
    ck_assert_uint_eq(reply.payload_len, 4);
    ck_assert_int_eq(memcmp(reply.payload, "real", 4), 0);
    adp_reply_free(&reply);
    /* 2. After the ACK, a forged reply is dropped at once. */
    start_request(b, &h, A, id);
    fakehub_ack(&h, id, NULL);
    fakehub_reply(&h, 203, OTHER, id, "forged");
    ck_assert_int_eq(poll_reply(b, id, &reply, 300), HUB_EAGAIN);
    fakehub_reply(&h, 204, A, id, "real");
    ck_assert_int_eq(poll_reply(b, id, &reply, 2000), 0);
    ck_assert_str_eq(reply.sender, A);
    adp_reply_free(&reply);
    /* 3. A delegated service: the ACK names the delegate, whose reply is
     *    taken, even when it came before the ACK. */
    start_request(b, &h, A, id);
    fakehub_reply(&h, 205, DELEGATE, id, "delegated");
    ck_assert_int_eq(poll_reply(b, id, &reply, 300), HUB_EAGAIN);
    fakehub_ack(&h, id, DELEGATE);
    ck_assert_int_eq(poll_reply(b, id, &reply, 2000), 0);
    ck_assert_str_eq(reply.sender, DELEGATE);
    adp_reply_free(&reply);
    adp_close(&b);
    zmq_close(h.router);
    zmq_ctx_term(h.ctx);
}
END_TEST

TK_MAIN("sdk",
        TK_CASE("sdk", setup, teardown, 300, hub_down_costs_no_cpu_and_clients_come_back,
                outbox_compacted_while_acking_keeps_no_answered_message, every_outcome_is_reported),
        TK_CASE("verdicts", setup_fast_redelivery, teardown, 120,
                handler_verdicts_later_and_dead_letter),
        TK_CASE("wire", setup_keys_only, teardown, 60, verdicts_on_the_wire,
                reply_only_from_the_member_asked_or_its_named_delegate))
