/* End to end: the operator surface of a real hubd (HTTP on an ephemeral
 * 127.0.0.1 port) after real traffic from SDK clients and hub-adapter
 * processes: /metrics checked by promtool and against the traffic sent, the
 * JSON API, hubctl's tables, hubctl probe --all --junit with a member down,
 * and abusive HTTP clients while messages keep flowing. */
#define _GNU_SOURCE /* strcasestr, memmem */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define A "VN/GOV/BCA/CSDLQGDC"
#define B "VN/GOV/HN-STP/HOTICH"
#define OPS "VN/GOV/HN-LGSP/OPS"
#define GHOST "VN/GOV/HN-SKHDT/DKKD" /* known to the hub, never connected */
#define TOKEN "e2e-operator-token-42"

static hubfix_t fix;
static int http_port;
static char ctl_conf[PATH_MAX];

/* ---- fixture ------------------------------------------------------------ */

static void setup(void)
{
    hubfix_init(&fix, "http_listen = 127.0.0.1:0\nhttp_token_file = token\n"
                      "default_ttl_ms = 60000\nmembers_file = members.tsv\n");
    char path[PATH_MAX];
    /* The member directory names A only: the others show their ids alone. */
    snprintf(path, sizeof path, "%s/members.tsv", fix.dir);
    tk_write_file(path, "member_id\tname\tunit\tcontact\n" A "\tBộ Công an\t"
                        "Cơ sở dữ liệu quốc gia về dân cư\tketnoi.dancu@bca.example.vn\n");
    snprintf(path, sizeof path, "%s/token", fix.dir);
    tk_write_file(path, TOKEN "\n");
    chmod(path, 0600);
    HUBFIX_ADD_MEMBERS(&fix, A, B, OPS, GHOST);
    hubfix_start(&fix);
    http_port = hubfix_http_port(&fix);
    hubfix_start_adapter(&fix, A, "echo", NULL);
    hubfix_start_adapter(&fix, B, "echo", NULL);
    /* hubctl's settings: the HTTP API and, for probe, OPS's keys. */
    char secret[PATH_MAX], text[4096];
    hubfix_secret_path(&fix, OPS, secret);
    snprintf(ctl_conf, sizeof ctl_conf, "%s/hubctl.conf", fix.dir);
    snprintf(text, sizeof text,
             "hub_endpoint = %s\nhub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub\n"
             "member_key_file = %s\nhttp_url = http://127.0.0.1:%d\nhttp_token_file = token\n",
             fix.endpoint, secret, http_port);
    tk_write_file(ctl_conf, text);
}

static void teardown(void) { hubfix_cleanup(&fix); }

/* ---- HTTP --------------------------------------------------------------- */

typedef tk_reply_t reply_t;

static reply_t http(const char *method, const char *path, const char *token, const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", http_port, path);
    return tk_http(method, url, token, body);
}

static json_t *get_json(const char *path, const char *token)
{
    char what[512];
    snprintf(what, sizeof what, "GET %s", path);
    return tk_reply_json(http("GET", path, token, NULL), what);
}

/* The value of one sample ("name{labels}") in a scrape, or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p += n) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

/* Scrapes until series == want (or the deadline); returns the last text. */
static char *scrape_until(const char *series, double want, int timeout_ms)
{
    char *text = NULL;
    for (int waited = 0;; waited += 100) {
        free(text);
        reply_t r = http("GET", "/metrics", NULL, NULL);
        ck_assert_int_eq(r.status, 200);
        text = r.body;
        if (sample(text, series) == want || waited >= timeout_ms)
            return text;
        tk_sleep_ms(100);
    }
}

static void promtool_ok(const char *text)
{
    char path[PATH_MAX], cmd[PATH_MAX + 64], out[8192];
    snprintf(path, sizeof path, "%s/metrics.txt", fix.dir);
    tk_write_file(path, text);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    ck_assert_msg(rc == 0, "promtool check metrics failed (%d): %s", rc, out);
}

/* ---- traffic ------------------------------------------------------------ */

#define N_QUEUED 5
#define N_ONLINE 3

/* OPS sends N_QUEUED queued and N_ONLINE online-only echo requests to A,
 * two online-only requests to GHOST (offline) and one to an unknown
 * receiver; A replies to each echo. */
static void send_traffic(void)
{
    adp_client_t *c = hubfix_connect(&fix, OPS);
    adp_reply_t reply;
    for (int i = 0; i < N_QUEUED + N_ONLINE; i++) {
        int flags = i < N_QUEUED ? 0 : ADP_ONLINE_ONLY;
        int rc = adp_request(c, A, "echo/v1", "text/plain", "hello", 5, flags, 5000, &reply);
        ck_assert_msg(rc == 0, "echo %d: %s", i, adp_last_error(c));
        adp_reply_free(&reply);
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(adp_request(c, GHOST, "echo/v1", "text/plain", "x", 1, ADP_ONLINE_ONLY,
                                     5000, &reply),
                         HUB_ENACK);
    }
    ck_assert_int_eq(
        adp_request(c, "VN/GOV/NO/SUCH", "echo/v1", "text/plain", "x", 1, 0, 5000, &reply),
        HUB_ENACK);
    /* Let the settles of the replies go out before closing. */
    adp_run(c, 300);
    adp_close(&c);
}

#define SERIES(name, sender, receiver, service, rest)                                         \
    name "{sender=\"" sender "\",receiver=\"" receiver "\",service=\"" service "\"" rest "}"

START_TEST(metrics_match_the_traffic)
{
    send_traffic();
    const char *settled = SERIES("lth_messages_settled_total", OPS, A, "echo/v1", "");
    char *text = scrape_until(settled, N_QUEUED, 10000);
    free(text);
    /* OPS has left: the hub notices after three silent heartbeat periods. */
    text = scrape_until("lth_members_connected", 2, 10000);
    promtool_ok(text);
    char saved[PATH_MAX];
    snprintf(saved, sizeof saved, "%s/metrics.txt", fix.dir);
    struct {
        const char *series;
        double want;
    } checks[] = {
        {SERIES("lth_messages_total", OPS, A, "echo/v1", ",outcome=\"accepted\""),
         N_QUEUED + N_ONLINE},
        {SERIES("lth_messages_delivered_total", OPS, A, "echo/v1", ""), N_QUEUED + N_ONLINE},
        {settled, N_QUEUED},
        {SERIES("lth_end_to_end_latency_seconds_count", OPS, A, "echo/v1", ""), N_QUEUED},
        /* Replies: labelled by their request's service (A offers echo/v1). */
        {SERIES("lth_messages_total", A, OPS, "echo/v1", ",outcome=\"accepted\""),
         N_QUEUED + N_ONLINE},
        {SERIES("lth_messages_total", OPS, GHOST, "_unlisted", ",outcome=\"receiver_offline\""), 2},
        {SERIES("lth_messages_total", OPS, "", "", ",outcome=\"unknown_receiver\""), 1},
        {"lth_hub_refusals_total{code=\"RECEIVER_OFFLINE\"}", 2},
        {"lth_hub_refusals_total{code=\"UNKNOWN_RECEIVER\"}", 1},
        {"lth_members_known", 4},
        {"lth_members_connected", 2}, /* A and B; OPS has left */
        {"lth_member_connected{member=\"" A "\"}", 1},
        {"lth_member_connected{member=\"" GHOST "\"}", 0},
        {"lth_dead_letters", 0},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        double got = sample(text, checks[i].series);
        ck_assert_msg(got == checks[i].want, "%s = %g, want %g (scrape in %s)",
                      checks[i].series, got, checks[i].want, saved);
    }
    /* Accepted and refused envelopes are counted per flow and per code,
     * not a second time. */
    ck_assert_msg(!strstr(text, "lth_hub_envelopes_accepted_total") &&
                      !strstr(text, "lth_hub_envelopes_refused_total"),
                  "duplicated counters still exposed (scrape in %s)", saved);
    /* No other flows carry a sender other than the members. */
    ck_assert_msg(!strstr(text, "sender=\"VN/GOV/NO/SUCH\"") &&
                      !strstr(text, "receiver=\"VN/GOV/NO/SUCH\""),
                  "an unknown id became a label");
    ck_assert(sample(text, "process_resident_memory_bytes") > 1e6);
    ck_assert(sample(text, "process_open_fds") > 3);
    ck_assert(sample(text, "lth_store_max_bytes") > 0);
    /* The queued messages went through group commits, each timed. */
    double commits = sample(text, "lth_hub_commit_seconds_count");
    ck_assert_msg(commits >= 1 && sample(text, "lth_hub_commit_seconds_bucket{le=\"+Inf\"}") ==
                                      commits,
                  "lth_hub_commit_seconds_count = %g (scrape in %s)", commits, saved);
    ck_assert(sample(text, "lth_hub_commit_seconds_sum") > 0);
    free(text);
}
END_TEST

START_TEST(json_api_after_traffic)
{
    send_traffic();
    char *text = scrape_until(SERIES("lth_messages_settled_total", OPS, A, "echo/v1", ""),
                              N_QUEUED, 10000);
    free(text);
    json_t *j = get_json("/api/v1/members", NULL);
    json_t *members = json_object_get(j, "members");
    ck_assert_uint_eq(json_array_size(members), 4);
    size_t i;
    json_t *m;
    bool saw_a = false, saw_ghost = false;
    json_array_foreach(members, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (!strcmp(id, A)) {
            saw_a = true;
            ck_assert(json_is_true(json_object_get(m, "online")));
            ck_assert_str_eq(json_string_value(json_object_get(m, "state")), "connected");
            ck_assert_int_ge(json_integer_value(json_object_get(m, "msgs_in")), N_QUEUED);
            ck_assert(strstr(json_string_value(json_object_get(m, "address")), "127.0.0.1"));
            ck_assert(json_number_value(json_object_get(m, "last_seen_age_s")) < 10);
            json_t *svc = json_object_get(m, "services");
            bool echo = false;
            for (size_t k = 0; k < json_array_size(svc); k++)
                echo = echo || !strcmp(json_string_value(json_array_get(svc, k)), "echo/v1");
            ck_assert(echo);
        } else if (!strcmp(id, GHOST)) {
            saw_ghost = true;
            ck_assert_str_eq(json_string_value(json_object_get(m, "state")), "offline");
        }
    }
    ck_assert(saw_a && saw_ghost);
    json_decref(j);

    j = get_json("/api/v1/flows", NULL);
    bool found = false;
    json_t *f;
    json_array_foreach(json_object_get(j, "flows"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "sender")), OPS) ||
            strcmp(json_string_value(json_object_get(f, "receiver")), A))
            continue;
        found = true;
        ck_assert_str_eq(json_string_value(json_object_get(f, "service")), "echo/v1");
        ck_assert_int_eq(json_integer_value(json_object_get(f, "accepted")), N_QUEUED + N_ONLINE);
        ck_assert_int_eq(json_integer_value(json_object_get(f, "settled")), N_QUEUED);
        json_t *minute = json_object_get(f, "minute");
        ck_assert_int_eq(json_integer_value(json_object_get(minute, "accepted")),
                         N_QUEUED + N_ONLINE);
        json_t *e2e = json_object_get(minute, "end_to_end_ms");
        ck_assert_int_eq(json_integer_value(json_object_get(e2e, "count")), N_QUEUED);
        ck_assert(json_number_value(json_object_get(e2e, "p50")) > 0);
        ck_assert(json_number_value(json_object_get(e2e, "p99")) >=
                  json_number_value(json_object_get(e2e, "p50")));
    }
    ck_assert_msg(found, "no OPS -> A flow");
    json_decref(j);

    j = get_json("/api/v1/exchanges?limit=50", NULL);
    json_t *xs = json_object_get(j, "exchanges");
    ck_assert_uint_gt(json_array_size(xs), 5);
    json_t *x;
    json_array_foreach(xs, i, x)
    {
        ck_assert(!json_object_get(x, "payload"));
        ck_assert_uint_gt(strlen(json_string_value(json_object_get(x, "outcome"))), 0);
    }
    json_decref(j);
    reply_t r = http("GET", "/api/v1/exchanges?limit=-4", NULL, NULL);
    ck_assert_int_eq(r.status, 400);
    ck_assert(strstr(r.body, "limit"));
    free(r.body);

    j = get_json("/api/v1/status", NULL);
    ck_assert(json_is_true(json_object_get(j, "ready")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "last_minute"),
                                                        "refused")),
                     3);
    json_decref(j);
    r = http("GET", "/readyz", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
}
END_TEST

/* ---- hubctl ------------------------------------------------------------- */

static int hubctl(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
                  const char *a5, const char *a6)
{
    char *argv[] = {(char *)tk_bin("hubctl"), "--config", ctl_conf, (char *)a1, (char *)a2,
                    (char *)a3, (char *)a4, (char *)a5, (char *)a6, NULL};
    return tk_run(argv, out, 60000);
}

/* Display columns from `from` to `to`: code points, as a terminal shows
 * Vietnamese text. */
static long columns(const char *from, const char *to)
{
    long n = 0;
    for (const char *p = from; p < to; p++)
        n += ((unsigned char)*p & 0xc0) != 0x80;
    return n;
}

/* Finds header_word in out's header line and cell in the row starting with
 * row_start (after the row's start when skip_start); asserts both exist. */
static void locate(const char *out, const char *header_word, const char *row_start,
                   const char *cell, bool skip_start, const char **line, const char **head,
                   const char **row, const char **at)
{
    *head = strstr(out, header_word);
    ck_assert_msg(*head, "no %s column in:\n%s", header_word, out);
    *line = *head;
    while (*line > out && (*line)[-1] != '\n')
        (*line)--;
    *row = strstr(out, row_start);
    ck_assert_msg(*row, "no row %s in:\n%s", row_start, out);
    *at = strstr(*row + (skip_start ? strlen(row_start) : 0), cell);
    ck_assert_ptr_nonnull(*at);
}

/* The column of `word` in the header line equals its column in `row`:
 * the table is aligned. */
static void assert_aligned(const char *out, const char *header_word, const char *row_start,
                           const char *cell)
{
    const char *line, *head, *row, *c;
    locate(out, header_word, row_start, cell, false, &line, &head, &row, &c);
    ck_assert_msg(columns(row, c) == columns(line, head), "column %s not aligned:\n%s",
                  header_word, out);
}

/* The same for a right-aligned column: the ends line up. */
static void assert_right_aligned(const char *out, const char *header_word, const char *row_start,
                                 const char *cell)
{
    const char *line, *head, *row, *c;
    locate(out, header_word, row_start, cell, true, &line, &head, &row, &c);
    ck_assert_msg(columns(row, c + strlen(cell)) == columns(line, head + strlen(header_word)),
                  "column %s not aligned:\n%s", header_word, out);
}

/* `hubctl members` in the current language: the state column (header
 * state_word) says `connected` for A and `offline` for GHOST, and the agency
 * column (agency_word) names A's agency; all aligned under their headers. */
static void assert_members_table(const char *state_word, const char *connected, const char *offline,
                                 const char *agency_word)
{
    char *out = NULL;
    ck_assert_int_eq(hubctl(&out, "members", NULL, NULL, NULL, NULL, NULL), 0);
    assert_aligned(out, state_word, A, connected);
    assert_aligned(out, state_word, GHOST, offline);
    assert_aligned(out, agency_word, A, "Bộ Công an — Cơ sở dữ liệu quốc gia về dân cư");
    free(out);
}

START_TEST(hubctl_tables_and_dead_letters)
{
    send_traffic();
    char *text = scrape_until(SERIES("lth_messages_settled_total", OPS, A, "echo/v1", ""),
                              N_QUEUED, 10000);
    free(text);
    char *out = NULL;
    /* Vietnamese unless the locale says English (C.UTF-8 does not). */
    unsetenv("LC_ALL");
    unsetenv("LC_MESSAGES");
    setenv("LANG", "C.UTF-8", 1);
    ck_assert_int_eq(hubctl(&out, "status", NULL, NULL, NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "hub              sẵn sàng") &&
                      strstr(out, " đang kết nối / 4 đã biết"),
                  "%s", out);
    free(out);
    assert_members_table("TRẠNG THÁI", "đang kết nối", "mất kết nối", "CƠ QUAN");
    ck_assert_int_eq(hubctl(&out, "flows", NULL, NULL, NULL, NULL, NULL), 0);
    assert_right_aligned(out, "ĐÃ NHẬN", OPS "   " A, "8");
    free(out);
    /* English with LANG=en*. */
    setenv("LANG", "en_US.UTF-8", 1);
    ck_assert_int_eq(hubctl(&out, "status", NULL, NULL, NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "hub           ready") && strstr(out, " connected of 4 known"),
                  "%s", out);
    free(out);
    assert_members_table("STATE", "connected", "offline", "AGENCY");
    ck_assert_int_eq(hubctl(&out, "members", "--state", "offline", NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, GHOST) && !strstr(out, "\n" A " "), "%s", out);
    free(out);
    ck_assert_int_eq(hubctl(&out, "flows", NULL, NULL, NULL, NULL, NULL), 0);
    assert_aligned(out, "SERVICE", OPS "   " A, "echo/v1");
    assert_right_aligned(out, "ACCEPTED", OPS "   " A, "8");
    free(out);
    ck_assert_int_eq(hubctl(&out, "flows", "--watch", "--count", "2", "--interval", "1"), 0);
    ck_assert_msg(strstr(out, "flows at ") && strstr(strstr(out, "flows at ") + 1, "flows at "),
                  "%s", out);
    free(out);
    ck_assert_int_eq(hubctl(&out, "queues", NULL, NULL, NULL, NULL, NULL), 0);
    free(out);
    ck_assert_int_eq(hubctl(&out, "members", "--json", NULL, NULL, NULL, NULL), 0);
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    ck_assert_msg(j && json_array_size(json_object_get(j, "members")) == 4, "%s", out);
    size_t mi;
    json_t *m;
    int named = 0;
    json_array_foreach(json_object_get(j, "members"), mi, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (!strcmp(json_string_value(json_object_get(m, "id")), A))
            named = name && !strcmp(name, "Bộ Công an");
        else
            ck_assert_msg(json_is_null(json_object_get(m, "name")), "%s", out);
    }
    ck_assert_msg(named, "no agency name for " A " in %s", out);
    json_decref(j);
    free(out);

    /* A dead letter: an event for GHOST with a 300 ms TTL. */
    adp_client_t *c = hubfix_connect(&fix, OPS);
    adp_set_ttl(c, 300);
    uint64_t seq = 0;
    const char *note = "hồ sơ 42";
    ck_assert_int_eq(
        adp_send_event(c, GHOST, "notice/v1", "text/plain", note, strlen(note), 0, 5000, &seq), 0);
    adp_close(&c);
    text = scrape_until("lth_dead_letters", 1, 10000);
    ck_assert_msg(sample(text, "lth_dead_letters") == 1, "no dead letter:\n%s", text);
    free(text);
    ck_assert_int_eq(hubctl(&out, "dlq", "list", NULL, NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "ttl expired") && strstr(out, GHOST), "%s", out);
    free(out);
    /* The dead letter's seq: from the API. */
    j = get_json("/api/v1/dlq", TOKEN);
    json_t *first = json_array_get(json_object_get(j, "dead_letters"), 0);
    json_int_t dseq = json_integer_value(json_object_get(first, "seq"));
    json_decref(j);
    char seq_text[32];
    snprintf(seq_text, sizeof seq_text, "%lld", (long long)dseq);
    ck_assert_int_eq(hubctl(&out, "dlq", "show", seq_text, "--payload", NULL, NULL), 0);
    ck_assert_msg(strstr(out, "hồ sơ 42") && strstr(out, "notice/v1"), "%s", out);
    free(out);
    /* Wrong token: refused, exit 4. */
    char bad[PATH_MAX];
    snprintf(bad, sizeof bad, "%s/bad.token", fix.dir);
    tk_write_file(bad, "not-the-token\n");
    chmod(bad, 0600);
    ck_assert_int_eq(hubctl(&out, "dlq", "list", "--token-file", bad, NULL, NULL), 4);
    ck_assert_msg(strstr(out, "401"), "%s", out);
    free(out);
    ck_assert_int_eq(hubctl(&out, "dlq", "replay", seq_text, NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "replayed dead letter"), "%s", out);
    free(out);
    ck_assert_int_eq(hubctl(&out, "dlq", "show", seq_text, NULL, NULL, NULL), 1);
    ck_assert_msg(strstr(out, "404"), "%s", out);
    free(out);
    /* Another one, then purge everything. */
    c = hubfix_connect(&fix, OPS);
    adp_set_ttl(c, 300);
    ck_assert_int_eq(adp_send_event(c, GHOST, "notice/v1", "text/plain", "x", 1, 0, 5000, &seq),
                     0);
    adp_close(&c);
    text = scrape_until("lth_dead_letters", 1, 10000);
    free(text);
    ck_assert_int_eq(hubctl(&out, "dlq", "purge", "--older-than", "0s", NULL, NULL), 0);
    ck_assert_msg(strstr(out, "purged 1 dead letters"), "%s", out);
    free(out);
    ck_assert_int_eq(hubctl(&out, "dlq", "purge", "--older-than", "soon", NULL, NULL), 2);
    free(out);
}
END_TEST

/* A member that is connected (Hello, heartbeats) but never answers: its
 * socket lives in this thread only. */
typedef struct {
    volatile bool stop;
    volatile bool ready;
} silent_t;

static void *silent_member(void *arg)
{
    silent_t *s = arg;
    rawcli_t raw;
    rawcli_connect(&raw, &fix, GHOST);
    s->ready = true;
    while (!s->stop) {
        rawcli_heartbeat(&raw);
        hub_frame_t *in;
        while ((in = rawcli_recv(&raw, 100)) != NULL)
            hub_frame_free(&in); /* deliveries (pings) are dropped unanswered */
    }
    rawcli_close(&raw);
    return NULL;
}

START_TEST(probe_all_with_one_member_down)
{
    char junit[PATH_MAX], *out = NULL;
    snprintf(junit, sizeof junit, "%s/probe.xml", fix.dir);
    /* A and B answer; GHOST is registered but not connected. */
    ck_assert_int_eq(hubctl(&out, "probe", "--all", "--timeout", "3000", "--junit", junit), 1);
    ck_assert_msg(strstr(out, "hubctl probe: " GHOST " failed: not connected"), "%s", out);
    assert_aligned(out, "RESULT", A, "ok");
    ck_assert_msg(strstr(out, "3 probed, 2 ok, 1 failed"), "%s", out);
    ck_assert_msg(!strstr(out, OPS " "), "probed itself:\n%s", out);
    free(out);
    char *xml = tk_read_file(junit);
    ck_assert_ptr_nonnull(xml);
    ck_assert_msg(strstr(xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>") &&
                      strstr(xml, "<testsuite name=\"lth.probe\" tests=\"3\" failures=\"1\""),
                  "%s", xml);
    ck_assert_msg(strstr(xml, "<testcase classname=\"lth.probe\" name=\"" A "\" time=\""), "%s",
                  xml);
    const char *ghost = strstr(xml, "name=\"" GHOST "\"");
    ck_assert_ptr_nonnull(ghost);
    ck_assert_msg(strstr(ghost, "<failure type=\"not_connected\" message=\"not connected\">"),
                  "%s", xml);
    ck_assert(strstr(ghost, "RECEIVER_OFFLINE"));
    free(xml);
    /* A list of members that are all up: exit 0. */
    ck_assert_int_eq(hubctl(&out, "probe", A, B, NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "2 probed, 2 ok, 0 failed"), "%s", out);
    free(out);
    ck_assert_int_eq(hubctl(&out, "probe", "--all", "--json", NULL, NULL, NULL), 1);
    json_error_t e;
    const char *line = strstr(out, "{\"results\"");
    ck_assert_msg(line, "%s", out);
    json_t *j = json_loadb(line, strcspn(line, "\n"), 0, &e);
    ck_assert_msg(j && json_integer_value(json_object_get(j, "failed")) == 1, "%s", out);
    json_decref(j);
    free(out);
    /* Connected but silent: timed out. */
    silent_t silent = {false, false};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, silent_member, &silent), 0);
    while (!silent.ready)
        tk_sleep_ms(10);
    int rc = hubctl(&out, "probe", GHOST, A, "--timeout", "800", NULL);
    silent.stop = true;
    pthread_join(thread, NULL);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "hubctl probe: " GHOST " failed: timed out") &&
                      strstr(out, "2 probed, 1 ok, 1 failed"),
                  "%s", out);
    free(out);
}
END_TEST

/* ---- abuse -------------------------------------------------------------- */

static int tcp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends text on a fresh connection and returns the status of the answer
 * (0 when the server only closed). */
static int raw_exchange(const void *data, size_t len)
{
    int fd = tcp_connect();
    if (fd < 0)
        return -1;
    (void)!send(fd, data, len, MSG_NOSIGNAL);
    char buf[512] = "";
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int status = 0;
    sscanf(buf, "HTTP/1.1 %d", &status);
    return status;
}

typedef struct {
    int garbage_status, huge_status, bad_json_status, trickle_status;
    int held, bad_method_status;
} abuse_result_t;

static void *abuse_main(void *arg)
{
    abuse_result_t *res = arg;
    /* Many connections held open at once (more than the server allows). */
    static int fds[300];
    res->held = 0;
    for (int i = 0; i < 300; i++) {
        fds[i] = tcp_connect();
        res->held += fds[i] >= 0;
    }
    /* Garbage, huge headers, a bad JSON body, a bad method. */
    char garbage[2048];
    srand(7);
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)(rand() % 256);
    for (int i = 0; i < 300; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    /* The server learns of the 300 closes asynchronously: while it still
     * counts them, a new connection is told 503 (busy); then garbage gets
     * its 400. */
    res->garbage_status = 503;
    for (int w = 0; w < 40 && res->garbage_status == 503; w++) {
        res->garbage_status = raw_exchange(garbage, sizeof garbage);
        if (res->garbage_status == 503)
            usleep(50000);
    }
    size_t huge_len = 200 * 1024;
    char *huge = malloc(huge_len + 64);
    int n = snprintf(huge, 64, "GET /metrics HTTP/1.1\r\nX-Big: ");
    memset(huge + n, 'a', huge_len);
    memcpy(huge + n + huge_len, "\r\n\r\n", 4);
    res->huge_status = raw_exchange(huge, (size_t)n + huge_len + 4);
    free(huge);
    static const char bad_json[] = "POST /api/v1/dlq/1/replay HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   "Authorization: Bearer " TOKEN "\r\n"
                                   "Content-Type: application/json\r\nContent-Length: 8\r\n\r\n"
                                   "{\"a\":[1,";
    res->bad_json_status = raw_exchange(bad_json, sizeof bad_json - 1);
    static const char bad_method[] = "BREW /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    res->bad_method_status = raw_exchange(bad_method, sizeof bad_method - 1);
    /* Slowloris: a request trickled one byte every 25 ms for 2.5 s, then
     * finished; it is still served (the limit is 5 s for the header
     * section, http_header_timeout_ms; e2e_test_hostile_edge shows a slower
     * one refused). */
    int fd = tcp_connect();
    static const char slow[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
                               "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (size_t i = 0; fd >= 0 && i < sizeof slow - 1; i++) {
        (void)!send(fd, slow + i, 1, MSG_NOSIGNAL);
        tk_sleep_ms(25);
    }
    if (fd >= 0) {
        (void)!send(fd, "\r\n\r\n", 4, MSG_NOSIGNAL);
        char buf[256] = "";
        ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
        if (got > 0)
            sscanf(buf, "HTTP/1.1 %d", &res->trickle_status);
        close(fd);
    }
    return NULL;
}

START_TEST(abusive_http_clients_do_not_stop_messages)
{
    abuse_result_t res = {0};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, abuse_main, &res), 0);
    /* Messages keep flowing while the abuse goes on: every request is
     * answered, each within a second. */
    adp_client_t *c = hubfix_connect(&fix, OPS);
    for (int i = 0; i < 40; i++) {
        adp_reply_t reply;
        uint64_t start = hub_monotonic_us();
        int rc = adp_request(c, A, "echo/v1", "text/plain", "ping", 4, 0, 5000, &reply);
        ck_assert_msg(rc == 0, "request %d during abuse: %s", i, adp_last_error(c));
        ck_assert_msg(hub_monotonic_us() - start < 1000000, "request %d took %llu us", i,
                      (unsigned long long)(hub_monotonic_us() - start));
        adp_reply_free(&reply);
        tk_sleep_ms(50);
    }
    pthread_join(thread, NULL);
    adp_close(&c);
    ck_assert_int_gt(res.held, 200);
    ck_assert_int_eq(res.garbage_status, 400);
    ck_assert_int_eq(res.huge_status, 431);
    ck_assert_int_eq(res.bad_json_status, 400);
    ck_assert_int_eq(res.trickle_status, 200);
    ck_assert_msg(res.bad_method_status == 405 || res.bad_method_status == 400, "%d",
                  res.bad_method_status);
    ck_assert_msg(hubfix_hub_alive(&fix), "hubd died; see %s", fix.hubd_log);
    char *text = scrape_until("lth_http_open_connections", 1, 5000);
    promtool_ok(text);
    ck_assert(sample(text, "lth_http_bad_requests_total") >= 2);
    ck_assert(sample(text, "lth_http_rejected_connections_total") >= 1);
    ck_assert(sample(text, SERIES("lth_messages_settled_total", OPS, A, "echo/v1", "")) == 40);
    free(text);
    reply_t r = http("GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
}
END_TEST

/* ---- DLQ replay while a commit runs -------------------------------------- */

#define N_DEAD 20

typedef struct {
    uint64_t last_seq;
    long items, out_of_order, stream, dead;
} ghost_view_t;

/* Reads GHOST's deliveries for up to ms, settles each, checks that hub_seq
 * only grows, and counts payloads; heartbeats keep it online. */
static void ghost_receive(rawcli_t *ghost, ghost_view_t *v, int ms)
{
    uint64_t until = hub_monotonic_us() + (uint64_t)ms * 1000u;
    do {
        rawcli_heartbeat(ghost);
        hub_frame_t *f = rawcli_recv_case(ghost, LTH__V1__FRAME__BODY_DELIVERIES, 5);
        if (!f)
            continue;
        uint64_t *seqs = calloc(f->deliveries->n_items, sizeof *seqs);
        for (size_t i = 0; i < f->deliveries->n_items; i++) {
            Lth__V1__DeliveredEnvelope *item = f->deliveries->items[i];
            seqs[i] = item->hub_seq;
            if (item->hub_seq <= v->last_seq)
                v->out_of_order++;
            v->last_seq = item->hub_seq;
            v->items++;
            hub_envelope_t *env = NULL;
            ck_assert_int_eq(hub_envelope_decode(item->envelope.data, item->envelope.len, &env),
                             0);
            if (env->payload.len > 7 && !memcmp(env->payload.data, "stream ", 7))
                v->stream++;
            else if (env->payload.len > 5 && !memcmp(env->payload.data, "dead ", 5))
                v->dead++;
            hub_envelope_free(&env);
        }
        rawcli_settle(ghost, seqs, f->deliveries->n_items);
        free(seqs);
        hub_frame_free(&f);
    } while (hub_monotonic_us() < until);
}

START_TEST(dlq_replay_while_a_sender_streams_keeps_order)
{
    /* N_DEAD dead letters for GHOST (offline), by TTL. */
    adp_client_t *c = hubfix_connect(&fix, OPS);
    adp_set_ttl(c, 300);
    for (int i = 0; i < N_DEAD; i++) {
        char payload[16];
        int len = snprintf(payload, sizeof payload, "dead %d", i);
        ck_assert_int_eq(adp_send_event(c, GHOST, "notice/v1", "text/plain", payload,
                                        (size_t)len, 0, 5000, NULL),
                         0);
    }
    adp_close(&c);
    char *text = scrape_until("lth_dead_letters", N_DEAD, 10000);
    ck_assert_msg(sample(text, "lth_dead_letters") == N_DEAD, "dead letters:\n%s", text);
    free(text);
    json_t *j = get_json("/api/v1/dlq", TOKEN);
    json_t *list = json_object_get(j, "dead_letters");
    ck_assert_int_eq(json_array_size(list), N_DEAD);
    char seqs[N_DEAD][32];
    for (size_t i = 0; i < N_DEAD; i++)
        snprintf(seqs[i], sizeof seqs[i], "%lld",
                 (long long)json_integer_value(json_object_get(json_array_get(list, i), "seq")));
    json_decref(j);

    /* GHOST comes online; OPS streams to it; the operator replays the dead
     * letters one by one with hubctl meanwhile, so that replays meet store
     * commits of the same receiver's queue. */
    rawcli_t ghost;
    rawcli_connect(&ghost, &fix, GHOST);
    ghost_view_t view = {0};
    /* OPS streams events "stream <i>" to GHOST, about 2,000 a second:
     * steady traffic with commits all the time, not a flood (a flood with
     * no pause between commits starves the replay: see RELIABILITY.md). */
    hubfix_sender_t st = {.batch = 20, .pause_ms = 10, .max_outbox = 2000, .drain_ms = 30000};
    hubfix_sender_start(&st, &fix, OPS, GHOST, "notice/v1", "stream");
    ghost_receive(&ghost, &view, 300);
    for (int i = 0; i < N_DEAD; i++) {
        char log[PATH_MAX];
        snprintf(log, sizeof log, "%s/replay-%d.log", fix.dir, i);
        char *argv[] = {(char *)tk_bin("hubctl"), "--config", ctl_conf, "dlq", "replay", seqs[i],
                        NULL};
        pid_t pid = tk_spawn(argv, log);
        int status = -1;
        for (int w = 0; w < 2000 && !tk_reaped(pid, &status); w++)
            ghost_receive(&ghost, &view, 5);
        char *out = tk_read_file(log);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "hubctl dlq replay %s: status %d: %s", seqs[i], status, out ? out : "");
        free(out);
    }
    st.stop = true;
    for (int w = 0; w < 100 && !st.error[0] && view.items < st.posted + N_DEAD; w++)
        ghost_receive(&ghost, &view, 50);
    hubfix_sender_join(&st);
    ck_assert_msg(!st.error[0], "sender: %s", st.error);
    for (int w = 0; w < 200 && view.items < st.posted + N_DEAD; w++)
        ghost_receive(&ghost, &view, 50);
    ghost_receive(&ghost, &view, 300);
    text = scrape_until("lth_dead_letters", 0, 5000);
    double busy = sample(text, "lth_http_responses_total{code=\"503\"}");
    free(text);
    printf("ops: %d replays during a stream of %ld: %ld delivered, %ld out of order, "
           "%g answered 503 (busy) and asked again\n",
           N_DEAD, st.posted, view.items, view.out_of_order, busy < 0 ? 0 : busy);
    ck_assert_int_eq(view.out_of_order, 0);
    /* The busy path was taken (else this test would not test it). */
    ck_assert_msg(busy > 0, "no replay met a running commit");
    ck_assert_int_eq(view.dead, N_DEAD);
    ck_assert_int_eq(view.stream, st.posted);
    ck_assert_int_eq(view.items, st.posted + N_DEAD);
    rawcli_close(&ghost);
}
END_TEST

/* The name /api/v1/members gives member id, or NULL when it has none;
 * fails when the member is not listed. */
static char *member_name(const char *id)
{
    json_t *j = get_json("/api/v1/members", NULL);
    size_t i;
    json_t *m;
    char *name = NULL;
    bool listed = false;
    json_array_foreach(json_object_get(j, "members"), i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "id")), id) != 0)
            continue;
        listed = true;
        const char *s = json_string_value(json_object_get(m, "name"));
        name = s ? strdup(s) : NULL;
    }
    json_decref(j);
    ck_assert_msg(listed, "%s is not in /api/v1/members", id);
    return name;
}

/* An operator edits members.tsv and reloads: the names change without a
 * restart; a bad file keeps the names in use and says what is wrong. */
START_TEST(member_directory_is_read_again_on_sighup)
{
    char *name = member_name(B);
    ck_assert_msg(!name, "%s has a name before it is listed: %s", B, name);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/members.tsv", fix.dir);
    tk_write_file(path, "member_id\tname\tunit\tcontact\n" A "\tBộ Công an\t"
                        "Cơ sở dữ liệu quốc gia về dân cư\t\n" B "\tSở Tư pháp Hà Nội\t"
                        "Hệ thống hộ tịch\thotich@stp.example.vn\n");
    ck_assert_int_eq(kill(fix.hubd, SIGHUP), 0);
    ck_assert(tk_wait_file_contains(fix.hubd_log, "member directory reloaded", 10000));
    name = member_name(B);
    ck_assert_msg(name && !strcmp(name, "Sở Tư pháp Hà Nội"), "%s", name ? name : "(null)");
    free(name);

    /* A line with two fields: refused, the names stay. */
    tk_write_file(path, "member_id\tname\tunit\tcontact\n" A "\tBộ Công an\n");
    ck_assert_int_eq(kill(fix.hubd, SIGHUP), 0);
    ck_assert(tk_wait_file_contains(fix.hubd_log, "member directory reload failed", 10000));
    ck_assert(tk_wait_file_contains(fix.hubd_log, "members.tsv:2", 1000));
    name = member_name(B);
    ck_assert_msg(name && !strcmp(name, "Sở Tư pháp Hà Nội"), "%s", name ? name : "(null)");
    free(name);
    name = member_name(A);
    ck_assert_msg(name && !strcmp(name, "Bộ Công an"), "%s", name ? name : "(null)");
    free(name);
}
END_TEST

/* hubctl reads the operator token as hubd does: a token file other users
 * may read is refused with the fix, and nothing is sent. */
START_TEST(hubctl_refuses_a_token_file_others_may_read)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/token", fix.dir);
    ck_assert_int_eq(chmod(path, 0644), 0);
    char *out = NULL;
    int rc = hubctl(&out, "dlq", "list", NULL, NULL, NULL, NULL);
    ck_assert_msg(rc != 0 && out && strstr(out, "may be read by other users") &&
                      strstr(out, "chmod 600"),
                  "rc %d: %s", rc, out ? out : "");
    free(out);
    ck_assert_int_eq(chmod(path, 0600), 0);
    rc = hubctl(&out, "dlq", "list", NULL, NULL, NULL, NULL);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, out ? out : "");
    free(out);
}
END_TEST

TK_MAIN_PREPARED(tk_prepare_curl, "e2e_ops",
                 TK_CASE("ops", setup, teardown, 180, metrics_match_the_traffic,
                         json_api_after_traffic, hubctl_tables_and_dead_letters,
                         probe_all_with_one_member_down, abusive_http_clients_do_not_stop_messages,
                         dlq_replay_while_a_sender_streams_keeps_order,
                         member_directory_is_read_again_on_sighup,
                         hubctl_refuses_a_token_file_others_may_read))
