/* End to end: alarms on a real hubd (HTTP on an ephemeral 127.0.0.1 port).
 * A receiver offline with a message waiting raises receiver_offline
 * (warning, then critical), shown in /readyz ("degraded" with the list),
 * /api/v1/status, /metrics (lth_alarm) and hubctl status, logged once when
 * it starts and once when it ends (the receiver comes back). Messages past
 * their TTL are logged one by one as dead-lettered and raise
 * dead_letters_growing. Every query of deploy/grafana/lienthong.json names
 * a metric this hubd exposes. */
#define _GNU_SOURCE
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define A "VN/GOV/HN-UBND/TTHC"
#define B "VN/GOV/BCA/CSDLQGDC"
#define B_NAME "Bộ Công an"

static hubfix_t fix;
static int http_port;

static void start_hub(const char *extra)
{
    char conf[1024], path[PATH_MAX];
    snprintf(conf, sizeof conf, "http_listen = 127.0.0.1:0\nmembers_file = members.tsv\n%s", extra);
    hubfix_init(&fix, conf);
    snprintf(path, sizeof path, "%s/members.tsv", fix.dir);
    tk_write_file(path, "member_id\tname\tunit\tcontact\n" B "\t" B_NAME
                        "\tCơ sở dữ liệu quốc gia về dân cư\tketnoi.dancu@bca.example.vn\n");
    HUBFIX_ADD_MEMBERS(&fix, A, B);
    hubfix_start(&fix);
    http_port = hubfix_http_port(&fix);
}

static void teardown(void)
{
    hubfix_cleanup(&fix);
}

typedef tk_reply_t reply_t;

static reply_t get(const char *path)
{
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", http_port, path);
    return tk_http("GET", url, NULL, NULL);
}

static json_t *get_json(const char *path)
{
    char what[512];
    snprintf(what, sizeof what, "GET %s", path);
    return tk_reply_json(get(path), what);
}

/* The alarm with this code and subject in j's "alarms", or NULL. */
static json_t *alarm_in(json_t *j, const char *code, const char *subject)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(j, "alarms"), i, a)
    {
        if (!strcmp(json_string_value(json_object_get(a, "code")), code) &&
            !strcmp(json_string_value(json_object_get(a, "subject")), subject))
            return a;
    }
    return NULL;
}

/* Polls /readyz until the alarm is at level (NULL: gone); returns /readyz. */
static json_t *readyz_until(const char *code, const char *subject, const char *level,
                            int timeout_ms)
{
    for (int waited = 0;; waited += 100) {
        json_t *j = get_json("/readyz");
        json_t *a = alarm_in(j, code, subject);
        bool done =
            level ? a && !strcmp(json_string_value(json_object_get(a, "level")), level) : a == NULL;
        if (done || waited >= timeout_ms)
            return j;
        json_decref(j);
        tk_sleep_ms(100);
    }
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* Sends one queued envelope (its id in id); true when ACKed, false when
 * NACKed. */
static bool send_one_id(const char *sender, const char *receiver, char id[37])
{
    rawcli_t raw;
    rawcli_connect(&raw, &fix, sender);
    rawcli_send_envelope(&raw, &fix, sender, receiver, "echo/v1", "hi", 2, 0, id);
    hub_frame_t *f = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_msg(f, "no receipt for the message to %s", receiver);
    bool acked = f->receipts->n_acks == 1;
    hub_frame_free(&f);
    rawcli_close(&raw);
    return acked;
}

static bool send_one(const char *sender, const char *receiver)
{
    char id[37];
    return send_one_id(sender, receiver, id);
}

static void send_durable(const char *sender, const char *receiver)
{
    ck_assert_msg(send_one(sender, receiver), "the message to %s was not ACKed", receiver);
}

START_TEST(receiver_offline_with_messages_waiting_is_an_alarm_until_it_returns)
{
    start_hub("alarm_offline_warn_s = 1\nalarm_offline_crit_s = 4\n");
    json_t *j = get_json("/readyz");
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ready");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "alarms")), 0);
    json_decref(j);

    send_durable(A, B); /* B never connected: its message waits */
    j = readyz_until("receiver_offline", B, "warning", 5000);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "degraded");
    json_t *a = alarm_in(j, "receiver_offline", B);
    ck_assert_msg(a, "no receiver_offline alarm for " B " in /readyz");
    ck_assert_str_eq(json_string_value(json_object_get(a, "level")), "warning");
    ck_assert_str_eq(json_string_value(json_object_get(a, "name")), B_NAME);
    ck_assert_msg(strstr(json_string_value(json_object_get(a, "reason")), "offline"), "reason");
    json_decref(j);

    j = readyz_until("receiver_offline", B, "critical", 8000);
    a = alarm_in(j, "receiver_offline", B);
    ck_assert_msg(a && !strcmp(json_string_value(json_object_get(a, "level")), "critical"),
                  "receiver_offline did not become critical");
    json_decref(j);
    j = get_json("/api/v1/status");
    ck_assert_str_eq(json_string_value(json_object_get(j, "health")), "degraded");
    ck_assert_str_eq(json_string_value(json_object_get(j, "alarm_level")), "critical");
    ck_assert_ptr_nonnull(alarm_in(j, "receiver_offline", B));
    json_decref(j);
    reply_t m = get("/metrics");
    ck_assert_double_eq(
        sample(m.body, "lth_alarm{code=\"receiver_offline\",subject=\"" B "\",level=\"critical\"}"),
        1);
    ck_assert_double_eq(
        sample(m.body, "lth_alarm{code=\"receiver_offline\",subject=\"" B "\",level=\"warning\"}"),
        0);
    ck_assert_double_eq(sample(m.body, "lth_alarms_active{level=\"critical\"}"), 1);
    free(m.body);

    /* hubctl status says "degraded" and lists it, in Vietnamese by default. */
    char conf[PATH_MAX], text[512];
    snprintf(conf, sizeof conf, "%s/hubctl.conf", fix.dir);
    snprintf(text, sizeof text, "http_url = http://127.0.0.1:%d\n", http_port);
    tk_write_file(conf, text);
    char *out = NULL;
    char *const argv[] = {(char *)tk_bin("hubctl"), "--config", conf, "status", NULL};
    setenv("LC_ALL", "vi_VN.UTF-8", 1);
    int rc = tk_run(argv, &out, 10000);
    ck_assert_msg(rc == 0, "hubctl status exited %d: %s", rc, out);
    ck_assert_msg(strstr(out, "SUY GIẢM") && strstr(out, B) && strstr(out, B_NAME) &&
                      strstr(out, "nghiêm trọng"),
                  "hubctl status does not list the alarm in Vietnamese:\n%s", out);
    free(out);
    /* And in English when the locale says so. */
    setenv("LC_ALL", "en_US.UTF-8", 1);
    rc = tk_run(argv, &out, 10000);
    ck_assert_msg(rc == 0 && strstr(out, "DEGRADED") && strstr(out, "[critical] " B " (" B_NAME
                                                                     "): offline for"),
                  "hubctl status in English:\n%s", out);
    free(out);
    unsetenv("LC_ALL");

    /* B comes back and takes its message: the alarm ends. */
    hubfix_start_adapter(&fix, B, "echo", NULL);
    j = readyz_until("receiver_offline", B, NULL, 8000);
    ck_assert_ptr_null(alarm_in(j, "receiver_offline", B));
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ready");
    json_decref(j);
    ck_assert(tk_wait_file_contains(fix.hubd_log, "msg=\"alarm ended\"", 3000));
    char *log = tk_read_file(fix.hubd_log);
    ck_assert_msg(count(log, "msg=\"alarm started\" code=receiver_offline level=warning "
                             "subject=" B) == 1,
                  "start not logged once:\n%s", log);
    ck_assert_msg(count(log, "msg=\"alarm level changed\" code=receiver_offline "
                             "level=critical subject=" B) == 1,
                  "level change not logged once:\n%s", log);
    ck_assert_msg(count(log, "msg=\"alarm ended\" code=receiver_offline") == 1,
                  "end not logged once:\n%s", log);
    free(log);
}
END_TEST

START_TEST(dead_letters_are_logged_and_raise_an_alarm)
{
    start_hub("default_ttl_ms = 500\n");
    send_durable(A, B);
    send_durable(A, B);
    json_t *j = readyz_until("dead_letters_growing", "", "warning", 8000);
    json_t *a = alarm_in(j, "dead_letters_growing", "");
    ck_assert_msg(a, "no dead_letters_growing alarm");
    ck_assert_int_eq(json_integer_value(json_object_get(a, "value")), 2);
    json_decref(j);
    /* /readyz computes alarms when asked; the log line comes from the
     * once-a-second tick, which a busy machine may run a moment later. */
    ck_assert(tk_wait_file_contains(fix.hubd_log, "msg=\"alarm started\" code=dead_letters_growing",
                                    5000));
    char *log = tk_read_file(fix.hubd_log);
    ck_assert_msg(count(log, "msg=\"message dead-lettered\"") == 2, "%s", log);
    ck_assert_msg(strstr(log, "sender=" A " receiver=" B " service=echo/v1") &&
                      strstr(log, "reason=\"ttl expired\"") && strstr(log, "seq="),
                  "dead letter line lacks seq, sender, receiver or reason:\n%s", log);
    ck_assert_msg(count(log, "msg=\"alarm started\" code=dead_letters_growing") == 1, "%s", log);
    free(log);
}
END_TEST

/* A reply is counted under the service of its request, not "_unlisted". */
START_TEST(reply_is_labelled_with_its_requests_service)
{
    start_hub("");
    hubfix_start_adapter(&fix, B, "echo", NULL);
    char conf[PATH_MAX], secret[PATH_MAX], text[2048];
    hubfix_secret_path(&fix, A, secret);
    snprintf(conf, sizeof conf, "%s/hubctl.conf", fix.dir);
    snprintf(text, sizeof text,
             "hub_endpoint = %s\nhub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub\n"
             "member_key_file = %s\n",
             fix.endpoint, secret);
    tk_write_file(conf, text);
    char *out = NULL;
    char *const argv[] = {(char *)tk_bin("hubctl"),
                          "--config",
                          conf,
                          "request",
                          B,
                          "echo/v1",
                          "--data",
                          "{\"n\":1}",
                          NULL};
    int rc = tk_run(argv, &out, 15000);
    ck_assert_msg(rc == 0, "hubctl request exited %d: %s", rc, out);
    free(out);
    json_t *j = get_json("/api/v1/flows");
    size_t i;
    json_t *f;
    bool request = false, reply = false;
    json_array_foreach(json_object_get(j, "flows"), i, f)
    {
        const char *s = json_string_value(json_object_get(f, "sender"));
        const char *r = json_string_value(json_object_get(f, "receiver"));
        const char *svc = json_string_value(json_object_get(f, "service"));
        request |= !strcmp(s, A) && !strcmp(r, B) && !strcmp(svc, "echo/v1");
        reply |= !strcmp(s, B) && !strcmp(r, A) && !strcmp(svc, "echo/v1");
        ck_assert_msg(strcmp(svc, "_unlisted") != 0, "a flow %s -> %s labelled _unlisted", s, r);
    }
    ck_assert_msg(request && reply, "request %d, reply %d labelled echo/v1", request, reply);
    json_decref(j);
}
END_TEST

/* Certificates: one expiring within alarm_cert_crit_days (critical), one
 * within cert_warn_days (warning), one far off (none). */
static void issue(const char *ca, const char *member, int days_left)
{
    char until[32];
    time_t t = time(NULL) + (time_t)days_left * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(until, sizeof until, "%Y-%m-%d", &tm);
    hubfix_cert_issue(&fix, ca, member, NULL, until);
}

START_TEST(expiring_certificates_are_alarms)
{
    hubfix_init(&fix, "ca_cert = ca/ca/ca.crt\ncrl_file = ca/ca/crl.pem\ncert_dir = ca/certs\n"
                      "http_listen = 127.0.0.1:0\ncert_warn_days = 30\nalarm_cert_crit_days = 7\n");
    char ca[PATH_MAX];
    hubfix_ca_init(&fix, ca);
    const char *far = "VN/GOV/HN-STP/HOTICH";
    hubfix_add_member(&fix, A, false);
    hubfix_add_member(&fix, B, false);
    hubfix_add_member(&fix, far, false);
    issue(ca, A, 5);
    issue(ca, B, 20);
    issue(ca, far, 200);
    hubfix_start(&fix);
    http_port = hubfix_http_port(&fix);
    json_t *j = readyz_until("certificate_expiring", B, "warning", 5000);
    json_t *a = alarm_in(j, "certificate_expiring", A), *b = alarm_in(j, "certificate_expiring", B);
    ck_assert_msg(a && !strcmp(json_string_value(json_object_get(a, "level")), "critical"),
                  "no critical certificate alarm for " A);
    ck_assert_msg(b && !strcmp(json_string_value(json_object_get(b, "level")), "warning"),
                  "no warning certificate alarm for " B);
    ck_assert_msg(!alarm_in(j, "certificate_expiring", far), "an alarm for a certificate of 200 days");
    /* value: seconds left; A's certificate ends within 5 days. */
    ck_assert_int_le(json_integer_value(json_object_get(a, "value")), 5 * 86400);
    ck_assert_int_gt(json_integer_value(json_object_get(a, "value")), 3 * 86400);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "degraded");
    json_decref(j);
}
END_TEST

/* Every metric a Grafana panel queries exists on a real hubd. */
static void collect_exprs(json_t *node, json_t *out)
{
    if (json_is_object(node)) {
        const char *k;
        json_t *v;
        json_object_foreach(node, k, v)
        {
            if (!strcmp(k, "expr") && json_is_string(v))
                json_array_append(out, v);
            else
                collect_exprs(v, out);
        }
    } else if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v) collect_exprs(v, out);
    }
}

START_TEST(grafana_dashboard_queries_only_metrics_the_hub_exposes)
{
    /* A hub with an alarm, a dead letter, a refusal and a settled
     * round trip, so that every family has series. */
    start_hub("alarm_offline_warn_s = 1\ndefault_ttl_ms = 3000\n");
    send_durable(A, B);
    json_decref(readyz_until("receiver_offline", B, "warning", 5000));
    free(get("/metrics").body); /* the queue gauges remember B from now on */
    json_decref(readyz_until("dead_letters_growing", "", "warning", 8000));
    ck_assert(!send_one(A, "VN/GOV/HN-XX/NOBODY"));
    hubfix_start_adapter(&fix, B, "echo", NULL);
    send_durable(A, B);
    json_decref(readyz_until("receiver_offline", B, NULL, 8000));
    tk_sleep_ms(500); /* the settle */
    const char *src = getenv("HUB_SOURCE_DIR");
    ck_assert_msg(src, "HUB_SOURCE_DIR is not set (run through ctest)");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/deploy/grafana/lienthong.json", src);
    json_error_t e;
    json_t *dash = json_load_file(path, 0, &e);
    ck_assert_msg(dash, "%s is not valid JSON: line %d: %s", path, e.line, e.text);
    ck_assert_msg(json_is_array(json_object_get(dash, "panels")) &&
                      json_array_size(json_object_get(dash, "panels")) > 0,
                  "no panels in %s", path);
    json_t *exprs = json_array();
    collect_exprs(dash, exprs);
    ck_assert_uint_gt(json_array_size(exprs), 5);

    reply_t m = get("/metrics");
    ck_assert_int_eq(m.status, 200);
    size_t i;
    json_t *v;
    json_array_foreach(exprs, i, v)
    {
        const char *expr = json_string_value(v);
        /* Every identifier starting lth_ or process_ is a metric name. */
        for (const char *p = expr; *p; p++) {
            if ((strncmp(p, "lth_", 4) && strncmp(p, "process_", 8)) ||
                (p > expr && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z'))))
                continue;
            size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_:");
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)n, p);
            /* Histograms: _bucket/_sum/_count are in the text as such. */
            char needle[160];
            snprintf(needle, sizeof needle, "\n%s", name);
            bool found = strstr(m.body, needle) != NULL;
            /* Only in certificate mode (this hub runs on a key directory):
             * then it must be registered by hubd's source. */
            if (!found && !strcmp(name, "lth_certificate_expiry_timestamp_seconds")) {
                char src_path[PATH_MAX];
                snprintf(src_path, sizeof src_path, "%s/hub/core/hub_server.c", src);
                char *code = tk_read_file(src_path);
                found = code && strstr(code, "\"lth_certificate_expiry_timestamp_seconds\"");
                free(code);
            }
            ck_assert_msg(found, "Grafana query '%s' names %s, which hubd's /metrics lacks", expr,
                          name);
            p += n - 1;
        }
    }
    free(m.body);
    json_decref(exprs);
    json_decref(dash);
}
END_TEST

/* A disk slower than the 100 ms tick that looks for expired messages (each
 * fsync 400 ms, tests/faults/failsync.c): until the commit that moves an
 * expired message to the dead-letter queue is done, the store still has it
 * queued. Each must still be dead-lettered once: one log line, one count
 * for the alarm, one audit record. */
START_TEST(expired_message_is_dead_lettered_once_while_commits_are_slow)
{
    hubfix_init(&fix, "http_listen = 127.0.0.1:0\ndefault_ttl_ms = 1000\n");
    HUBFIX_ADD_MEMBERS(&fix, A, B);
    const char *lib = hubfix_failsync_lib(&fix);
    char slow[PATH_MAX];
    snprintf(slow, sizeof slow, "%s/slow-sync", fix.dir);
    setenv("LTH_SLOW_SYNC_FILE", slow, 1);
    hubfix_start_preloaded(&fix, lib);
    unsetenv("LTH_SLOW_SYNC_FILE");
    http_port = hubfix_http_port(&fix);
    char ids[2][37]; /* B never connects: both expire */
    for (int i = 0; i < 2; i++)
        ck_assert_msg(send_one_id(A, B, ids[i]), "the message to %s was not ACKed", B);
    tk_write_file(slow, "400");
    ck_assert(tk_wait_file_contains(fix.hubd_log, "msg=\"alarm started\" code=dead_letters_growing",
                                    15000));
    tk_sleep_ms(2000); /* ticks and slow commits after the first */
    char *log = tk_read_file(fix.hubd_log);
    ck_assert_msg(count(log, "msg=\"message dead-lettered\"") == 2, "%s", log);
    free(log);
    json_t *j = get_json("/readyz");
    json_t *a = alarm_in(j, "dead_letters_growing", "");
    ck_assert_msg(a, "no dead_letters_growing alarm");
    ck_assert_int_eq(json_integer_value(json_object_get(a, "value")), 2);
    json_decref(j);
    unlink(slow);
    hubfix_stop(&fix);
    for (int i = 0; i < 2; i++) {
        char *shown = hubfix_audit_show(&fix, ids[i]);
        ck_assert_msg(count(shown, "DEAD_LETTERED") == 1, "%s", shown);
        free(shown);
    }
}
END_TEST

TK_MAIN("alarms",
        TK_CASE("e2e", NULL, teardown, 120,
                receiver_offline_with_messages_waiting_is_an_alarm_until_it_returns,
                dead_letters_are_logged_and_raise_an_alarm,
                grafana_dashboard_queries_only_metrics_the_hub_exposes,
                reply_is_labelled_with_its_requests_service, expiring_certificates_are_alarms,
                expired_message_is_dead_lettered_once_while_commits_are_slow))
