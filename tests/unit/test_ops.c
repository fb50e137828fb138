/* Tests for hub_ops: the real HTTP server on a real libuv loop (main
 * thread), answering libcurl requests from a client thread, over a fake
 * hub_ops_source_t with fixed members, queues and counters, a real store
 * holding dead letters, and a real hub_flows. The client records its first
 * failure; the main thread asserts after the loop has closed cleanly. */
#define _GNU_SOURCE /* strcasestr */
#include "hub_error.h"
#include "hub_ops.h"
#include "hub_store.h"
#include "hub_wire.h"
#include "tkloop.h"

#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN "op-token-0123456789"
#define A "VN/GOV/BCA/CSDLQGDC"
#define B "VN/GOV/HN-STP/HOTICH"
#define C "VN/GOV/HN-SKHDT/DKKD"

/* ---- the fake hub ------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    bool ready;
    hub_store_t *store;
    uint64_t dead_seqs[4];
    char dir[PATH_MAX];
    _Atomic bool busy; /* replays answer HUB_EAGAIN, as hubd does while a commit runs */
} fake_t;

static fake_t fake;

static void fake_members(void *ctx, hub_ops_member_visit visit, void *user)
{
    (void)ctx;
    /* Out of order on purpose: the API sorts. */
    hub_ops_member_t c = {C, true, false, 0, 0, "", "", 0, 0, 0, 0, 0};
    hub_ops_member_t a = {A,   true, true, 1700000000000000ull, hub_now_us() - 2000000,
                          "127.0.0.1:40000", "echo/v1,citizen.lookup/v1", 10, 9, 1000, 900, 1};
    hub_ops_member_t b = {B, true, false, 1700000000000000ull, 1700000001000000ull, "", "relay/v1",
                          3, 3, 30, 30, 0};
    visit(&c, user);
    visit(&a, user);
    visit(&b, user);
}

static void fake_queues(void *ctx, hub_ops_queue_visit visit, void *user)
{
    (void)ctx;
    hub_ops_queue_t q = {B, 5, hub_now_us() - 30000000, 2};
    visit(&q, user);
}

static void fake_stats(void *ctx, hub_server_stats_t *out)
{
    (void)ctx;
    memset(out, 0, sizeof *out);
    out->frames_in = 100;
    out->envelopes_accepted = 42;
    out->envelopes_nacked = 3;
    out->nacks_by_code[LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE] = 2;
    out->nacks_by_code[LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER] = 1;
}

static void fake_usage(void *ctx, uint64_t *used, uint64_t *max, uint64_t *dead, uint64_t *audit)
{
    (void)ctx;
    hub_store_usage(fake.store, used, max, dead);
    *audit = 77;
}

static bool fake_ready(void *ctx, const char **why_not)
{
    (void)ctx;
    pthread_mutex_lock(&fake.mu);
    bool ready = fake.ready;
    pthread_mutex_unlock(&fake.mu);
    if (!ready)
        *why_not = "keys not loaded";
    return ready;
}

static struct hub_store *fake_store(void *ctx)
{
    (void)ctx;
    return fake.store;
}

static int fake_replay(void *ctx, uint64_t seq)
{
    (void)ctx;
    if (fake.busy)
        return HUB_EAGAIN;
    return hub_store_dlq_replay(fake.store, seq, 0, 0, NULL);
}

static int fake_purge(void *ctx, uint64_t seq)
{
    (void)ctx;
    return hub_store_dlq_purge(fake.store, seq);
}

static int fake_purge_older(void *ctx, uint64_t before_us, uint64_t *purged)
{
    (void)ctx;
    size_t n = 0;
    int rc = hub_store_dlq_purge_older(fake.store, before_us, &n);
    *purged = n;
    return rc;
}

static const hub_ops_source_t fake_source = {
    NULL,       fake_members, fake_queues, fake_stats,       fake_usage, fake_ready,
    fake_store, fake_replay,  fake_purge,  fake_purge_older,
};

/* Four dead letters from A to B, payloads "payload-<i>". */
static void fake_open(void)
{
    pthread_mutex_init(&fake.mu, NULL);
    fake.ready = true;
    tk_tmpdir(fake.dir);
    char err[512];
    hub_store_limits_t limits = {0, 0, 3600000000ull};
    ck_assert_msg(hub_store_open(fake.dir, &limits, &fake.store, err,
                                 sizeof err) == 0,
                  "%s", err);
    for (int i = 0; i < 4; i++) {
        char id[HUB_UUID_LEN + 1], payload[32];
        hub_uuid_new(id);
        snprintf(payload, sizeof payload, "payload-%d", i);
        Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
        env.message_id = id;
        env.sender = A;
        env.receiver = B;
        env.service = "relay/v1";
        env.content_type = "text/plain";
        env.payload.data = (uint8_t *)payload;
        env.payload.len = strlen(payload);
        env.created_at_us = hub_now_us();
        uint8_t buf[512];
        size_t len = lth__v1__envelope__pack(&env, buf);
        hub_store_msg_t msg = {0};
        snprintf(msg.message_id, sizeof msg.message_id, "%s", id);
        snprintf(msg.sender, sizeof msg.sender, "%s", A);
        snprintf(msg.receiver, sizeof msg.receiver, "%s", B);
        snprintf(msg.service, sizeof msg.service, "relay/v1");
        msg.envelope = buf;
        msg.envelope_len = len;
        hub_store_outcome_t outcome;
        ck_assert_int_eq(hub_store_append(fake.store, &msg, 1, &outcome), 0);
        ck_assert_int_eq(outcome, HUB_STORE_OK);
        ck_assert_int_eq(hub_store_dead_letter(fake.store, &msg.seq, 1, "ttl expired"), 0);
        fake.dead_seqs[i] = msg.seq;
    }
}

static void fake_close(void)
{
    hub_store_close(&fake.store);
    tk_rmrf(fake.dir);
    pthread_mutex_destroy(&fake.mu);
}

static void fake_set_ready(bool ready)
{
    pthread_mutex_lock(&fake.mu);
    fake.ready = ready;
    pthread_mutex_unlock(&fake.mu);
}

/* ---- harness ------------------------------------------------------------ */

typedef struct harness harness_t;
typedef void (*scenario_fn)(harness_t *h);

struct harness {
    uv_loop_t loop;
    hub_ops_t *ops;
    hub_flows_t *flows;
    hub_metrics_t *metrics;
    uv_async_t wake;
    bool closed_called;
    int port;
    scenario_fn scenario;
    char failure[2048];
};

static void on_wake(uv_async_t *async)
{
    harness_t *h = async->data;
    hub_ops_close(h->ops, tk_set_flag, &h->closed_called);
    uv_close((uv_handle_t *)&h->wake, NULL);
}

static void *client_main(void *arg)
{
    harness_t *h = arg;
    h->scenario(h);
    uv_async_send(&h->wake);
    return NULL;
}

/* Traffic the flows table reports, recorded on the loop thread before the
 * loop runs. */
static void record_traffic(hub_flows_t *flows)
{
    uint64_t now = hub_now_us();
    for (int i = 0; i < 7; i++) {
        hub_flows_accepted(flows, A, B, "relay/v1", 10, now);
        hub_flows_delivered(flows, A, B, "relay/v1", 150, now);
        hub_flows_settled(flows, A, B, "relay/v1", 2000, now);
        char id[HUB_UUID_LEN + 1];
        hub_uuid_new(id);
        hub_flows_exchange_t x = {id, A, B, "relay/v1", "settled", 10, now, 2000};
        hub_flows_exchange(flows, &x);
    }
    hub_flows_refused(flows, A, C, "relay/v1", "RECEIVER_OFFLINE", now);
}

static void run_scenario(const char *token, scenario_fn scenario)
{
    harness_t *h = calloc(1, sizeof *h);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(uv_loop_init(&h->loop), 0);
    ck_assert_int_eq(hub_metrics_new(0, &h->metrics), 0);
    ck_assert_int_eq(hub_flows_new(h->metrics, 0, &h->flows), 0);
    record_traffic(h->flows);
    hub_ops_config_t cfg = {"127.0.0.1:0", token, {0}, "Hub.Example, ops.example"};
    char err[512];
    ck_assert_msg(hub_ops_new(&h->loop, &cfg, &fake_source, h->flows, h->metrics, &h->ops, err,
                              sizeof err) == 0,
                  "%s", err);
    h->port = hub_ops_port(h->ops);
    ck_assert_int_gt(h->port, 0);
    char expect[64];
    snprintf(expect, sizeof expect, "127.0.0.1:%d", h->port);
    ck_assert_str_eq(hub_ops_address(h->ops), expect);
    h->scenario = scenario;
    tk_loop_with_client(&h->loop, &h->wake, on_wake, client_main, h);
    ck_assert(h->closed_called);
    hub_ops_destroy(&h->ops);
    ck_assert_ptr_null(h->ops);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&h->loop), 0);
    hub_flows_destroy(&h->flows);
    hub_metrics_destroy(&h->metrics);
    ck_assert_msg(h->failure[0] == '\0', "client: %s", h->failure);
    free(h);
}

/* ---- a libcurl client --------------------------------------------------- */

/* An answer (tk_http_ex's) with its header lines. */
typedef struct {
    long status;
    char *body;
    size_t len;
    char headers[8192];
} reply_t;

/* method "GET"/"POST"/...; token, body and host (a Host header to send
 * instead of curl's) may be NULL. */
static reply_t http_ex(harness_t *h, const char *method, const char *path, const char *token,
                       const char *body, const char *host)
{
    char url[512], host_line[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", h->port, path);
    snprintf(host_line, sizeof host_line, "Host: %s", host ? host : "");
    const char *headers[3] = {NULL};
    size_t n = 0;
    if (body)
        headers[n++] = "Content-Type: application/json";
    if (host)
        headers[n++] = host_line;
    reply_t r;
    memset(&r, 0, sizeof r);
    tk_reply_t got = tk_http_ex(method, url, token, body, headers, r.headers, sizeof r.headers);
    r.status = got.status;
    r.body = got.body;
    r.len = got.len;
    return r;
}

static reply_t http(harness_t *h, const char *method, const char *path, const char *token,
                    const char *body)
{
    return http_ex(h, method, path, token, body, NULL);
}

static void reply_free(reply_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* One request whose answer must have `status` (the body is not looked at). */
static void expect_status(harness_t *h, const char *method, const char *path, const char *token,
                          const char *body, long status)
{
    reply_t r = http(h, method, path, token, body);
    TK_CHECK(h, r.status == status, "%s %s: %ld", method, path, r.status);
    reply_free(&r);
}

/* Parses r's body as JSON (NULL if it is not). */
static json_t *json_of(const reply_t *r)
{
    json_error_t e;
    return json_loadb(r->body, r->len, 0, &e);
}

/* GETs path into *r and returns its body as JSON, NULL when it is not. */
static json_t *get_json(harness_t *h, const char *path, reply_t *r)
{
    *r = http(h, "GET", path, NULL, NULL);
    return json_of(r);
}

/* Runs promtool on text; returns its exit status and output. */
static int promtool_check(const char *text, char *out, size_t out_size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/metrics.txt", fake.dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, out_size - 1, p);
    out[n] = '\0';
    return pclose(p);
}

/* ---- scenarios ---------------------------------------------------------- */

static void scenario_health_and_metrics(harness_t *h)
{
    reply_t r = http(h, "GET", "/healthz", NULL, NULL);
    TK_CHECK(h, r.status == 200 && strstr(r.body, "\"ok\""), "%ld %s", r.status, r.body);
    reply_free(&r);
    expect_status(h, "GET", "/readyz", NULL, NULL, 200);
    fake_set_ready(false);
    r = http(h, "GET", "/readyz", NULL, NULL);
    TK_CHECK(h, r.status == 503 && strstr(r.body, "keys not loaded"), "%ld %s", r.status, r.body);
    reply_free(&r);
    fake_set_ready(true);
    r = http(h, "HEAD", "/healthz", NULL, NULL);
    TK_CHECK(h, r.status == 200 && r.len == 0, "%ld", r.status);
    reply_free(&r);

    r = http(h, "GET", "/metrics", NULL, NULL);
    TK_CHECK(h, r.status == 200, "%ld", r.status);
    TK_CHECK(h, strcasestr(r.headers, "Content-Type: text/plain; version=0.0.4"), "%s", r.headers);
    char out[8192];
    int rc = promtool_check(r.body, out, sizeof out);
    TK_CHECK(h, rc == 0, "promtool: %s", out);
    static const char *const want[] = {
        "lth_members_known 3\n",
        "lth_members_connected 1\n",
        "lth_member_connected{member=\"" A "\"} 1\n",
        "lth_member_connected{member=\"" B "\"} 0\n",
        "lth_queue_depth{receiver=\"" B "\"} 5\n",
        "lth_queue_in_flight{receiver=\"" B "\"} 2\n",
        "lth_dead_letters 4\n",
        "lth_audit_sequence 77\n",
        "lth_hub_refusals_total{code=\"RECEIVER_OFFLINE\"} 2\n",
        "lth_messages_total{sender=\"" A "\",receiver=\"" B
        "\",service=\"relay/v1\",outcome=\"accepted\"} 7\n",
        "lth_messages_total{sender=\"" A "\",receiver=\"" C
        "\",service=\"relay/v1\",outcome=\"receiver_offline\"} 1\n",
        "lth_end_to_end_latency_seconds_count{sender=\"" A "\",receiver=\"" B
        "\",service=\"relay/v1\"} 7\n",
        "lth_build_info{version=\"" HUB_VERSION "\"} 1\n",
        "# TYPE process_cpu_seconds_total counter\n",
        "# TYPE process_resident_memory_bytes gauge\n",
        "# TYPE process_open_fds gauge\n",
        "# TYPE process_start_time_seconds gauge\n",
        "# TYPE lth_store_used_bytes gauge\n",
        "lth_http_open_connections 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        TK_CHECK(h, strstr(r.body, want[i]), "missing %s", want[i]);
    /* Counted once only: per flow (lth_messages_total) and per code. */
    TK_CHECK(h,
             !strstr(r.body, "lth_hub_envelopes_accepted_total") &&
                 !strstr(r.body, "lth_hub_envelopes_refused_total"),
             "duplicated counters still exposed");
    TK_CHECK(h,
             strstr(r.body, "lth_queue_oldest_age_seconds{receiver=\"" B "\"} 29.9") ||
                 strstr(r.body, "lth_queue_oldest_age_seconds{receiver=\"" B "\"} 30"),
             "queue age");
    reply_free(&r);
    /* Responses are counted by status. */
    r = http(h, "GET", "/metrics", NULL, NULL);
    TK_CHECK(h, strstr(r.body, "lth_http_responses_total{code=\"503\"} 1\n"), "503 not counted");
    TK_CHECK(h, strstr(r.body, "lth_http_responses_total{code=\"200\"} "), "200 not counted");
    reply_free(&r);
}

static void scenario_json_api(harness_t *h)
{
    reply_t r = http(h, "GET", "/api/v1/members", NULL, NULL);
    TK_CHECK(h, r.status == 200, "%ld", r.status);
    json_t *j = json_of(&r);
    TK_CHECK(h, j, "members: not JSON: %s", r.body);
    json_t *ms = json_object_get(j, "members");
    TK_CHECK(h, json_array_size(ms) == 3, "3 members");
    TK_CHECK(h, !strcmp(json_string_value(json_object_get(json_array_get(ms, 0), "id")), A),
             "sorted");
    json_t *a = json_array_get(ms, 0);
    TK_CHECK(h, json_is_true(json_object_get(a, "online")), "A online");
    TK_CHECK(h, !strcmp(json_string_value(json_object_get(a, "state")), "connected"), "state");
    TK_CHECK(h, json_array_size(json_object_get(a, "services")) == 2, "services split");
    TK_CHECK(h, json_integer_value(json_object_get(a, "msgs_in")) == 10, "msgs_in");
    TK_CHECK(h, json_number_value(json_object_get(a, "last_seen_age_s")) >= 1.5, "last seen age");
    /* Sorted by id: A, C (HN-SKHDT), B (HN-STP). */
    TK_CHECK(h, !strcmp(json_string_value(json_object_get(json_array_get(ms, 1), "id")), C), "C");
    TK_CHECK(h,
             !strcmp(json_string_value(json_object_get(json_array_get(ms, 1), "state")), "offline"),
             "C offline");
    TK_CHECK(h, json_is_null(json_object_get(json_array_get(ms, 1), "last_seen_age_s")), "never");
    TK_CHECK(h, json_integer_value(json_object_get(j, "connected")) == 1, "connected count");
    json_decref(j);
    reply_free(&r);

    j = get_json(h, "/api/v1/flows", &r);
    TK_CHECK(h, r.status == 200 && j, "flows %ld %s", r.status, r.body);
    json_t *flows = json_object_get(j, "flows");
    TK_CHECK(h, json_array_size(flows) == 2, "2 flows");
    /* Sorted by sender, receiver, service: A->C (HN-SKHDT) before A->B (HN-STP). */
    json_t *ab = json_array_get(flows, 1);
    TK_CHECK(h, !strcmp(json_string_value(json_object_get(ab, "receiver")), B), "A->B second");
    TK_CHECK(h, json_integer_value(json_object_get(ab, "accepted")) == 7, "accepted");
    TK_CHECK(h, json_integer_value(json_object_get(ab, "settled")) == 7, "settled");
    json_t *minute = json_object_get(ab, "minute");
    TK_CHECK(h, json_integer_value(json_object_get(minute, "accepted")) == 7, "minute accepted");
    json_t *e2e = json_object_get(minute, "end_to_end_ms");
    TK_CHECK(h, json_integer_value(json_object_get(e2e, "count")) == 7, "e2e count");
    double p50 = json_number_value(json_object_get(e2e, "p50"));
    TK_CHECK(h, p50 > 1.4 && p50 <= 2.0, "p50 %f", p50);
    json_t *ac = json_array_get(flows, 0);
    TK_CHECK(h, json_integer_value(json_object_get(ac, "errors")) == 1, "errors");
    TK_CHECK(h,
             json_integer_value(
                 json_object_get(json_object_get(ac, "refusals"), "receiver_offline")) == 1,
             "refusals");
    TK_CHECK(h, json_is_null(json_object_get(json_object_get(ac, "minute"), "end_to_end_ms")),
             "no latency yet");
    json_decref(j);
    reply_free(&r);

    j = get_json(h, "/api/v1/queues", &r);
    TK_CHECK(h, r.status == 200 && j, "queues");
    json_t *q = json_array_get(json_object_get(j, "queues"), 0);
    TK_CHECK(h, json_integer_value(json_object_get(q, "depth")) == 5, "depth");
    TK_CHECK(h, json_number_value(json_object_get(q, "oldest_age_s")) >= 29.0, "age");
    json_decref(j);
    reply_free(&r);

    j = get_json(h, "/api/v1/exchanges?limit=3", &r);
    TK_CHECK(h, r.status == 200 && j, "exchanges");
    TK_CHECK(h, json_array_size(json_object_get(j, "exchanges")) == 3, "limit honoured");
    json_t *x = json_array_get(json_object_get(j, "exchanges"), 0);
    TK_CHECK(h, !json_object_get(x, "payload"), "no payloads in exchanges");
    TK_CHECK(h, json_number_value(json_object_get(x, "latency_ms")) == 2.0, "latency");
    json_decref(j);
    reply_free(&r);
    j = get_json(h, "/api/v1/exchanges?member=" "VN%2FGOV%2FNO%2FONE", &r);
    TK_CHECK(h, j && json_array_size(json_object_get(j, "exchanges")) == 0, "filter");
    json_decref(j);
    reply_free(&r);

    static const char *const bad[] = {"/api/v1/exchanges?limit=0", "/api/v1/exchanges?limit=x",
                                      "/api/v1/exchanges?limit=1001",
                                      "/api/v1/exchanges?limit=99999999999999999999999",
                                      "/api/v1/exchanges?limit=%zz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http(h, "GET", bad[i], NULL, NULL);
        TK_CHECK(h,
                 r.status == 400 && strstr(r.body, "limit must be a whole number from 1 to 1000"),
                 "%s: %ld %s", bad[i], r.status, r.body);
        reply_free(&r);
    }

    j = get_json(h, "/api/v1/status", &r);
    TK_CHECK(h, r.status == 200 && j, "status");
    TK_CHECK(h,
             json_integer_value(json_object_get(json_object_get(j, "members"), "connected")) == 1,
             "status members");
    TK_CHECK(h, json_integer_value(json_object_get(j, "dead_letters")) == 4, "dead letters");
    TK_CHECK(
        h, json_integer_value(json_object_get(json_object_get(j, "last_minute"), "accepted")) == 7,
        "last minute");
    TK_CHECK(h,
             json_integer_value(
                 json_object_get(json_object_get(j, "counters"), "envelopes_accepted")) == 42,
             "counters");
    TK_CHECK(h,
             json_integer_value(
                 json_object_get(json_object_get(j, "refusals"), "UNKNOWN_RECEIVER")) == 1,
             "refusals");
    json_decref(j);
    reply_free(&r);

    j = get_json(h, "/api/v1/throughput", &r);
    TK_CHECK(h, r.status == 200 && j, "throughput");
    json_t *points = json_object_get(j, "points");
    TK_CHECK(h, json_array_size(points) == HUB_FLOWS_THROUGHPUT_S, "300 points");
    json_t *last = json_array_get(points, HUB_FLOWS_THROUGHPUT_S - 1);
    json_t *prev = json_array_get(points, HUB_FLOWS_THROUGHPUT_S - 2);
    long long sum = json_integer_value(json_array_get(last, 1)) +
                    json_integer_value(json_array_get(prev, 1));
    TK_CHECK(h, sum == 7, "7 accepted in the last seconds, got %lld", sum);
    json_decref(j);
    reply_free(&r);

    /* Paths and methods. */
    r = http(h, "GET", "/api/v1/nothing", NULL, NULL);
    TK_CHECK(h, r.status == 404 && strstr(r.body, "\"error\""), "%ld", r.status);
    reply_free(&r);
    expect_status(h, "GET", "/etc/passwd", NULL, NULL, 404);
    r = http(h, "POST", "/api/v1/members", NULL, "{}");
    TK_CHECK(h, r.status == 405 && strcasestr(r.headers, "Allow: GET"), "%ld %s", r.status,
             r.headers);
    reply_free(&r);
    expect_status(h, "DELETE", "/metrics", NULL, NULL, 405);
}

static void scenario_dashboard(harness_t *h)
{
    reply_t r = http(h, "GET", "/", NULL, NULL);
    TK_CHECK(h, r.status == 200, "%ld", r.status);
    TK_CHECK(h, strcasestr(r.headers, "Content-Type: text/html; charset=utf-8"), "%s", r.headers);
    TK_CHECK(h, strcasestr(r.headers, "Content-Security-Policy: default-src 'none'"), "CSP");
    TK_CHECK(h, strstr(r.body, "<script src=\"/dashboard.js\""), "script tag");
    /* Nothing from elsewhere: no absolute URLs in the page or its assets. */
    TK_CHECK(h,
             !strstr(r.body, "http://") && !strstr(r.body, "https://") && !strstr(r.body, "\"//"),
             "outside asset in the page");
    reply_free(&r);
    static const char *const assets[] = {"/dashboard.js", "/dashboard.css"};
    for (size_t i = 0; i < 2; i++) {
        r = http(h, "GET", assets[i], NULL, NULL);
        TK_CHECK(h, r.status == 200 && r.len > 1000, "%s: %ld", assets[i], r.status);
        TK_CHECK(h, !strstr(r.body, "http://") && !strstr(r.body, "https://"), "%s", assets[i]);
        reply_free(&r);
    }
    expect_status(h, "GET", "/index.html", NULL, NULL, 200);
}

static void scenario_dlq(harness_t *h)
{
    reply_t r = http(h, "GET", "/api/v1/dlq", NULL, NULL);
    TK_CHECK(h, r.status == 401 && strcasestr(r.headers, "WWW-Authenticate: Bearer"), "%ld %s",
             r.status, r.headers);
    reply_free(&r);
    r = http(h, "GET", "/api/v1/dlq", "wrong-token", NULL);
    TK_CHECK(h, r.status == 401 && strstr(r.body, "wrong"), "%ld %s", r.status, r.body);
    reply_free(&r);
    /* The token in the URL is not a token. */
    r = http(h, "GET", "/api/v1/dlq?token=" TOKEN, NULL, NULL);
    TK_CHECK(h, r.status == 401, "%ld", r.status);
    reply_free(&r);

    r = http(h, "GET", "/api/v1/dlq?limit=2", TOKEN, NULL);
    json_t *j = json_of(&r);
    TK_CHECK(h, r.status == 200 && j, "%ld %s", r.status, r.body);
    json_t *items = json_object_get(j, "dead_letters");
    TK_CHECK(h, json_array_size(items) == 2, "page of 2");
    TK_CHECK(h, json_integer_value(json_object_get(j, "total")) == 4, "total");
    json_int_t next = json_integer_value(json_object_get(j, "next_after"));
    TK_CHECK(h, (uint64_t)next == fake.dead_seqs[1], "next_after");
    json_t *d0 = json_array_get(items, 0);
    TK_CHECK(h, !strcmp(json_string_value(json_object_get(d0, "reason")), "ttl expired"), "reason");
    TK_CHECK(h, !json_object_get(d0, "payload_base64"), "no payload in lists");
    json_decref(j);
    reply_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/dlq?after=%llu&limit=10", (unsigned long long)next);
    r = http(h, "GET", path, TOKEN, NULL);
    j = json_of(&r);
    TK_CHECK(h, j && json_array_size(json_object_get(j, "dead_letters")) == 2, "second page");
    TK_CHECK(h, json_is_null(json_object_get(j, "next_after")), "last page");
    json_decref(j);
    reply_free(&r);
    r = http(h, "GET", "/api/v1/dlq?after=-1", TOKEN, NULL);
    TK_CHECK(h, r.status == 400 && strstr(r.body, "after must be"), "%ld %s", r.status, r.body);
    reply_free(&r);

    /* One dead letter: metadata, then the payload only when asked. */
    snprintf(path, sizeof path, "/api/v1/dlq/%llu", (unsigned long long)fake.dead_seqs[2]);
    r = http(h, "GET", path, TOKEN, NULL);
    j = json_of(&r);
    TK_CHECK(h, r.status == 200 && j, "%ld %s", r.status, r.body);
    TK_CHECK(h, !json_object_get(j, "payload_base64"), "payload without asking");
    TK_CHECK(h, json_integer_value(json_object_get(j, "payload_bytes")) == 9, "payload size");
    TK_CHECK(h, !strcmp(json_string_value(json_object_get(j, "content_type")), "text/plain"), "ct");
    json_decref(j);
    reply_free(&r);
    snprintf(path, sizeof path, "/api/v1/dlq/%llu?payload=1",
             (unsigned long long)fake.dead_seqs[2]);
    r = http(h, "GET", path, TOKEN, NULL);
    j = json_of(&r);
    TK_CHECK(h, j, "json");
    /* base64("payload-2") */
    TK_CHECK(h, !strcmp(json_string_value(json_object_get(j, "payload_base64")), "cGF5bG9hZC0y"),
             "%s", r.body);
    json_decref(j);
    reply_free(&r);
    expect_status(h, "GET", "/api/v1/dlq/999999", TOKEN, NULL, 404);
    expect_status(h, "GET", "/api/v1/dlq/abc", TOKEN, NULL, 400);

    /* Replay and purge: POST with the token only. */
    snprintf(path, sizeof path, "/api/v1/dlq/%llu/replay", (unsigned long long)fake.dead_seqs[0]);
    r = http(h, "GET", path, TOKEN, NULL);
    TK_CHECK(h, r.status == 405 && strcasestr(r.headers, "Allow: POST"), "%ld", r.status);
    reply_free(&r);
    r = http(h, "POST", path, NULL, NULL);
    TK_CHECK(h, r.status == 401, "%ld", r.status);
    reply_free(&r);
    r = http(h, "POST", path, TOKEN, "not json");
    TK_CHECK(h, r.status == 400 && strstr(r.body, "not a JSON object"), "%ld %s", r.status, r.body);
    reply_free(&r);
    r = http(h, "POST", path, TOKEN, "{\"x\":1}");
    TK_CHECK(h, r.status == 400, "%ld %s", r.status, r.body);
    reply_free(&r);
    /* While hubd commits, a replay is refused with 503 and told to come
     * again (hubctl does, for up to 5 s); nothing is replayed. */
    fake.busy = true;
    r = http(h, "POST", path, TOKEN, "{}");
    TK_CHECK(h, r.status == 503 && strstr(r.body, "send the same request again in a moment"),
             "%ld %s", r.status, r.body);
    reply_free(&r);
    fake.busy = false;
    r = http(h, "POST", path, TOKEN, "{}");
    TK_CHECK(h, r.status == 200 && strstr(r.body, "\"replayed\""), "%ld %s", r.status, r.body);
    reply_free(&r);
    expect_status(h, "POST", path, TOKEN, NULL, 404); /* replayed twice */
    snprintf(path, sizeof path, "/api/v1/dlq/%llu/purge", (unsigned long long)fake.dead_seqs[1]);
    r = http(h, "POST", path, TOKEN, NULL);
    TK_CHECK(h, r.status == 200 && strstr(r.body, "\"purged\""), "%ld %s", r.status, r.body);
    reply_free(&r);
    expect_status(h, "POST", path, TOKEN, NULL, 404);
    snprintf(path, sizeof path, "/api/v1/dlq/%llu/explode", (unsigned long long)fake.dead_seqs[2]);
    expect_status(h, "POST", path, TOKEN, NULL, 404);
    r = http(h, "POST", "/api/v1/dlq/purge", TOKEN, NULL);
    TK_CHECK(h, r.status == 400 && strstr(r.body, "older_than_s is required"), "%ld", r.status);
    reply_free(&r);
    r = http(h, "POST", "/api/v1/dlq/purge?older_than_s=3600", TOKEN, NULL);
    TK_CHECK(h, r.status == 200 && strstr(r.body, "{\"purged\":0}"), "%ld %s", r.status, r.body);
    reply_free(&r);
    r = http(h, "POST", "/api/v1/dlq/purge?older_than_s=0", TOKEN, NULL);
    TK_CHECK(h, r.status == 200 && strstr(r.body, "{\"purged\":2}"), "%ld %s", r.status, r.body);
    reply_free(&r);
    r = http(h, "GET", "/api/v1/dlq", TOKEN, NULL);
    TK_CHECK(h, r.status == 200 && strstr(r.body, "\"total\":0"), "%s", r.body);
    reply_free(&r);
}

static void scenario_no_token(harness_t *h)
{
    reply_t r = http(h, "GET", "/api/v1/dlq", "anything", NULL);
    TK_CHECK(h, r.status == 403 && strstr(r.body, "http_token_file"), "%ld %s", r.status, r.body);
    reply_free(&r);
    expect_status(h, "POST", "/api/v1/dlq/1/replay", "", NULL, 403);
    /* Reading is open without a token. */
    r = http(h, "GET", "/api/v1/status", NULL, NULL);
    TK_CHECK(h, r.status == 200 && strstr(r.body, "\"dlq_token_configured\":false"), "%s", r.body);
    reply_free(&r);
}

/* DNS rebinding: a page on evil.example whose name now resolves to
 * 127.0.0.1 sends "Host: evil.example"; the endpoint answers only to IP
 * literals, localhost and the configured names. */
static void scenario_host_header(harness_t *h)
{
    char host[64];
    const char *ok[] = {"127.0.0.1", "localhost", "LOCALHOST", "[::1]", "hub.example",
                        "OPS.example"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        snprintf(host, sizeof host, "%s:%d", ok[i], h->port);
        reply_t r = http_ex(h, "GET", "/api/v1/members", NULL, NULL, host);
        TK_CHECK(h, r.status == 200, "Host %s: %ld %s", host, r.status, r.body);
        reply_free(&r);
    }
    const char *bad[] = {"evil.example", "hub.example.evil.example", "localhost.evil.example",
                         "127.0.0.1.nip.io", "[not-an-address]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(host, sizeof host, "%s:%d", bad[i], h->port);
        reply_t r = http_ex(h, "GET", "/api/v1/members", NULL, NULL, host);
        TK_CHECK(
            h, r.status == 421 && strstr(r.body, "http_allowed_hosts") && !strstr(r.body, "VN/GOV"),
            "Host %s: %ld %s", host, r.status, r.body);
        reply_free(&r);
    }
    /* Two Host headers (curl would merge them: sent by hand): which would
     * a proxy have used? Refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    TK_CHECK(h, fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect");
    static const char two[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
                              "Host: evil.example\r\nConnection: close\r\n\r\n";
    TK_CHECK(h, write(fd, two, sizeof two - 1) == (ssize_t)(sizeof two - 1), "write");
    char status[64] = "";
    ssize_t got = read(fd, status, sizeof status - 1);
    status[got > 0 ? got : 0] = '\0';
    TK_CHECK(h, !strncmp(status, "HTTP/1.1 400", 12), "two Host headers: %s", status);
    close(fd);
}

START_TEST(host_header_is_checked)
{
    run_scenario(TOKEN, scenario_host_header);
}
END_TEST

START_TEST(health_and_metrics)
{
    run_scenario(TOKEN, scenario_health_and_metrics);
}
END_TEST

START_TEST(json_api)
{
    run_scenario(TOKEN, scenario_json_api);
}
END_TEST

START_TEST(dashboard_is_self_contained)
{
    run_scenario(TOKEN, scenario_dashboard);
}
END_TEST

START_TEST(dead_letters_need_the_token)
{
    run_scenario(TOKEN, scenario_dlq);
}
END_TEST

START_TEST(without_a_token_the_dlq_is_closed)
{
    run_scenario(NULL, scenario_no_token);
}
END_TEST

START_TEST(bad_addresses_are_refused)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    hub_ops_t *ops = NULL;
    char err[512];
    static const char *const bad[] = {"127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:99999",
                                      "[::1:80", "host name:80", "127.0.0.1:8x",
                                      "example.invalid:80", "[fe80::zz]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hub_ops_config_t cfg = {bad[i], NULL, {0}};
        ck_assert_int_eq(hub_ops_new(&loop, &cfg, &fake_source, NULL, NULL, &ops, err,
                                     sizeof err),
                         HUB_EINVAL);
        ck_assert_ptr_null(ops);
        ck_assert_msg(strstr(err, "HOST:PORT"), "%s", err);
    }
    /* Address in use. */
    hub_ops_t *first = NULL;
    hub_ops_config_t cfg = {"localhost:0", NULL, {0}};
    ck_assert_int_eq(hub_ops_new(&loop, &cfg, &fake_source, NULL, NULL, &first, err, sizeof err),
                     0);
    char taken[64];
    snprintf(taken, sizeof taken, "127.0.0.1:%d", hub_ops_port(first));
    hub_ops_config_t dup = {taken, NULL, {0}};
    ck_assert_int_eq(hub_ops_new(&loop, &dup, &fake_source, NULL, NULL, &ops, err, sizeof err),
                     HUB_EEXIST);
    ck_assert_msg(strstr(err, "another process"), "%s", err);
    /* Destroyed without closing first, and destroyed while closing. */
    hub_ops_destroy(&first);
    ck_assert_int_eq(hub_ops_new(&loop, &cfg, &fake_source, NULL, NULL, &first, err, sizeof err),
                     0);
    ck_assert_int_eq(hub_ops_close(first, NULL, NULL), 0);
    ck_assert_int_eq(hub_ops_close(first, NULL, NULL), HUB_ECLOSED);
    hub_ops_destroy(&first);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(token_file_rules)
{
    char path[PATH_MAX], token[HUB_OPS_TOKEN_MAX + 1], err[512];
    snprintf(path, sizeof path, "%s/token", fake.dir);
    tk_write_file(path, "  s3cret-Token_1  \nsecond line\n");
    ck_assert_int_eq(hub_ops_read_token_file(path, token, sizeof token, err, sizeof err),
                     HUB_EPERM);
    ck_assert_msg(strstr(err, "chmod 600"), "%s", err);
    chmod(path, 0600);
    ck_assert_int_eq(hub_ops_read_token_file(path, token, sizeof token, err, sizeof err), 0);
    ck_assert_str_eq(token, "s3cret-Token_1");
    tk_write_file(path, "\n");
    chmod(path, 0600);
    ck_assert_int_eq(hub_ops_read_token_file(path, token, sizeof token, err, sizeof err),
                     HUB_EINVAL);
    tk_write_file(path, "has space\n");
    chmod(path, 0600);
    ck_assert_int_eq(hub_ops_read_token_file(path, token, sizeof token, err, sizeof err),
                     HUB_EINVAL);
    snprintf(path, sizeof path, "%s/missing", fake.dir);
    ck_assert_int_eq(hub_ops_read_token_file(path, token, sizeof token, err, sizeof err),
                     HUB_ENOENT);
}
END_TEST

static void setup(void) { fake_open(); }
static void teardown(void) { fake_close(); }

TK_MAIN_PREPARED(tk_prepare_curl, "ops",
                 TK_CASE("ops", setup, teardown, 60, health_and_metrics, host_header_is_checked,
                         json_api, dashboard_is_self_contained, dead_letters_need_the_token,
                         without_a_token_the_dlq_is_closed, bad_addresses_are_refused,
                         token_file_rules))
