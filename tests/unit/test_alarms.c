/* Tests for hub_alarms: the pure evaluation (each alarm at its warning and
 * critical thresholds, nothing below them, the order) and the state between
 * evaluations (per-minute figures from lifetime counts; each alarm logged
 * once when it starts, when its level changes and once when it ends). */
#define _GNU_SOURCE
#include "hub_alarms.h"
#include "hub_config.h"
#include "hub_error.h"
#include "testkit.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POP "VN/GOV/BCA/CSDLQGDC"
#define TTHC "VN/GOV/HN-UBND/TTHC"
#define T0 1800000000000000ull /* wall clock, µs */
#define SEC 1000000ull

static hub_alarm_thresholds_t thresholds(void)
{
    hub_alarm_thresholds_t t;
    hub_alarm_thresholds_default(&t);
    return t;
}

static const hub_alarm_t *find(const hub_alarm_t *a, size_t n, hub_alarm_code_t code,
                               const char *subject)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].code == code && !strcmp(a[i].subject, subject))
            return &a[i];
    return NULL;
}

START_TEST(healthy_hub_has_no_alarm)
{
    hub_alarm_thresholds_t t = thresholds();
    hub_alarm_member_t m[] = {{POP, true, 0, 3, T0 - 5 * SEC, T0 + 90 * 86400 * SEC, 2},
                              {TTHC, false, T0 - 3600 * SEC, 0, 0, 0, 0}};
    hub_alarm_figures_t fig = {T0, T0 - 7200 * SEC, m, 2, 0, 10, 100};
    hub_alarm_t out[16];
    size_t n = 99;
    ck_assert_uint_eq(hub_alarms_evaluate(&fig, &t, out, 16, &n), 0);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(each_alarm_at_warning_and_critical)
{
    hub_alarm_thresholds_t t = thresholds();
    /* POP: offline 61 s with 4 waiting, oldest 301 s, certificate 29 days,
     * 20 refusals a minute: all warnings. TTHC: offline 901 s, oldest
     * 3600 s, certificate 6 days, 200 refusals: all critical. */
    hub_alarm_member_t m[] = {
        {POP, false, T0 - 61 * SEC, 4, T0 - 301 * SEC, T0 + 29 * 86400 * SEC, 20},
        {TTHC, false, T0 - 901 * SEC, 1, T0 - 3600 * SEC, T0 + 6 * 86400 * SEC, 200}};
    hub_alarm_figures_t fig = {T0, T0 - 7200 * SEC, m, 2, 1, 80, 100};
    hub_alarm_t out[32];
    size_t n = 0;
    ck_assert_uint_eq(hub_alarms_evaluate(&fig, &t, out, 32, &n), 10);
    ck_assert_uint_eq(n, 10);
    const hub_alarm_code_t member_codes[] = {HUB_ALARM_RECEIVER_OFFLINE, HUB_ALARM_QUEUE_STALE,
                                             HUB_ALARM_CERTIFICATE_EXPIRING,
                                             HUB_ALARM_MEMBER_REFUSED};
    for (size_t i = 0; i < 4; i++) {
        const hub_alarm_t *w = find(out, n, member_codes[i], POP);
        const hub_alarm_t *c = find(out, n, member_codes[i], TTHC);
        ck_assert_msg(w && w->level == HUB_ALARM_WARNING, "%s warning for POP",
                      hub_alarm_code_name(member_codes[i]));
        ck_assert_msg(c && c->level == HUB_ALARM_CRITICAL, "%s critical for TTHC",
                      hub_alarm_code_name(member_codes[i]));
    }
    const hub_alarm_t *a = find(out, n, HUB_ALARM_RECEIVER_OFFLINE, POP);
    ck_assert_uint_eq(a->value, 61);
    ck_assert_uint_eq(a->limit, 60);
    a = find(out, n, HUB_ALARM_DEAD_LETTERS_GROWING, "");
    ck_assert(a && a->level == HUB_ALARM_WARNING && a->value == 1);
    a = find(out, n, HUB_ALARM_STORE_FILLING, "");
    ck_assert(a && a->level == HUB_ALARM_WARNING && a->value == 80);
    /* Sorted by code, then subject. */
    for (size_t i = 1; i < n; i++)
        ck_assert(
            out[i - 1].code < out[i].code ||
            (out[i - 1].code == out[i].code && strcmp(out[i - 1].subject, out[i].subject) < 0));
    /* The reason in words names the member and the figures. */
    char why[512];
    hub_alarm_describe(find(out, n, HUB_ALARM_RECEIVER_OFFLINE, TTHC), why, sizeof why);
    ck_assert_msg(strstr(why, TTHC) && strstr(why, "901 s") && strstr(why, "offline"), "%s", why);
    /* Store critical, dead letters critical. */
    fig.store_used = 96;
    fig.dead_letters_minute = 100;
    hub_alarms_evaluate(&fig, &t, out, 32, &n);
    ck_assert_int_eq(find(out, n, HUB_ALARM_STORE_FILLING, "")->level, HUB_ALARM_CRITICAL);
    ck_assert_int_eq(find(out, n, HUB_ALARM_DEAD_LETTERS_GROWING, "")->level, HUB_ALARM_CRITICAL);
    /* One below each warning: nothing. */
    hub_alarm_member_t below[] = {
        {POP, false, T0 - 59 * SEC, 4, T0 - 299 * SEC, T0 + 31 * 86400 * SEC, 19}};
    hub_alarm_figures_t quiet = {T0, T0 - 7200 * SEC, below, 1, 0, 79, 100};
    ck_assert_uint_eq(hub_alarms_evaluate(&quiet, &t, out, 32, &n), 0);
    /* An offline member with an empty queue is not an alarm. */
    below[0].queued = 0;
    below[0].offline_since_us = T0 - 10000 * SEC;
    ck_assert_uint_eq(hub_alarms_evaluate(&quiet, &t, out, 32, &n), 0);
    /* 0 switches a level off; a full list is cut, and says so. */
    t.store_crit_percent = 0;
    fig.store_used = 100;
    hub_alarms_evaluate(&fig, &t, out, 32, &n);
    ck_assert_int_eq(find(out, n, HUB_ALARM_STORE_FILLING, "")->level, HUB_ALARM_WARNING);
    ck_assert_uint_eq(hub_alarms_evaluate(&fig, &t, out, 3, &n), 10);
    ck_assert_uint_eq(n, 3);
}
END_TEST

static void count_ended(const hub_alarm_t *a, void *user)
{
    (void)a;
    (*(size_t *)user)++;
}

/* Captures what the module logs (stderr) while running fn. */
static char *read_all(int fd)
{
    static char buf[65536];
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

START_TEST(transitions_are_logged_once_and_minutes_come_from_counts)
{
    char path[] = "/tmp/test_alarms_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);

    hub_alarm_thresholds_t t = thresholds();
    hub_alarms_t *al = NULL;
    ck_assert_int_eq(hub_alarms_new(&t, T0, &al), 0);
    hub_alarm_sample_t m = {POP, true, T0, 0, 0, 0, 1000};
    /* 10 s of a steady lifetime count: no refusal alarm (old refusals do not count). */
    for (uint64_t s = 0; s < 10; s++)
        ck_assert_int_eq(hub_alarms_update(al, T0 + s * SEC, &m, 1, 50, 10, 100), 0);
    size_t n;
    hub_alarms_active(al, &n);
    ck_assert_uint_eq(n, 0);
    /* 25 refusals within the minute: warning, logged once while it holds. */
    m.refusals_total += 25;
    for (uint64_t s = 10; s < 20; s++)
        hub_alarms_update(al, T0 + s * SEC, &m, 1, 50, 10, 100);
    const hub_alarm_t *a = hub_alarms_active(al, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(a[0].code, HUB_ALARM_MEMBER_REFUSED);
    ck_assert_int_eq(a[0].level, HUB_ALARM_WARNING);
    ck_assert_uint_eq(a[0].value, 25);
    ck_assert_int_eq(hub_alarms_worst(al), HUB_ALARM_WARNING);
    /* 200 more: critical (a level change, logged). */
    m.refusals_total += 200;
    hub_alarms_update(al, T0 + 20 * SEC, &m, 1, 50, 10, 100);
    a = hub_alarms_active(al, &n);
    ck_assert_int_eq(a[0].level, HUB_ALARM_CRITICAL);
    ck_assert_int_eq(hub_alarms_worst(al), HUB_ALARM_CRITICAL);
    /* The warning series is reported as ended (its metric goes to 0). */
    size_t ended = 0;
    hub_alarms_take_ended(al, count_ended, &ended);
    ck_assert_uint_eq(ended, 1);
    /* A minute later without new refusals it ends, logged once. */
    for (uint64_t s = 21; s < 100; s++)
        hub_alarms_update(al, T0 + s * SEC, &m, 1, 50, 10, 100);
    hub_alarms_active(al, &n);
    ck_assert_uint_eq(n, 0);
    /* Dead letters: the lifetime count grows by 3 -> warning; ends a minute later. */
    hub_alarms_update(al, T0 + 100 * SEC, &m, 1, 53, 10, 100);
    a = hub_alarms_active(al, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(a[0].code, HUB_ALARM_DEAD_LETTERS_GROWING);
    ck_assert_uint_eq(a[0].value, 3);
    for (uint64_t s = 101; s < 170; s++)
        hub_alarms_update(al, T0 + s * SEC, &m, 1, 53, 10, 100);
    hub_alarms_active(al, &n);
    ck_assert_uint_eq(n, 0);
    hub_alarms_destroy(&al);
    ck_assert_ptr_null(al);
    hub_alarms_destroy(&al); /* NULL is fine */

    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    const char *log = read_all(fd);
    close(fd);
    ck_assert_msg(count(log, "msg=\"alarm started\"") == 2, "%s", log);
    ck_assert_msg(count(log, "msg=\"alarm level changed\"") == 1, "%s", log);
    ck_assert_msg(count(log, "msg=\"alarm ended\"") == 2, "%s", log);
    ck_assert_msg(strstr(log, "code=member_refused level=warning subject=" POP), "%s", log);
    ck_assert_msg(strstr(log, "code=member_refused level=critical"), "%s", log);
    ck_assert_msg(strstr(log, "code=dead_letters_growing level=warning subject=hub"), "%s", log);
}
END_TEST

START_TEST(ended_alarms_are_handed_out_once)
{
    hub_alarms_t *al = NULL;
    ck_assert_int_eq(hub_alarms_new(NULL, T0, &al), 0);
    hub_alarm_sample_t m = {POP, false, T0, 5, T0 + 900 * SEC, 0, 0}; /* oldest: not stale */
    /* Offline 120 s with 5 waiting: warning; then 1000 s: critical; then back. */
    hub_alarms_update(al, T0 + 120 * SEC, &m, 1, 0, 0, 100);
    size_t n, ended = 0;
    const hub_alarm_t *a = hub_alarms_active(al, &n);
    ck_assert(n == 1 && a[0].code == HUB_ALARM_RECEIVER_OFFLINE && a[0].level == HUB_ALARM_WARNING);
    hub_alarms_update(al, T0 + 1000 * SEC, &m, 1, 0, 0, 100);
    hub_alarms_take_ended(al, count_ended, &ended);
    ck_assert_uint_eq(ended, 1); /* the warning, replaced by the critical */
    m.online = true;
    m.queued = 0;
    hub_alarms_update(al, T0 + 1001 * SEC, &m, 1, 0, 0, 100);
    ended = 0;
    hub_alarms_take_ended(al, count_ended, &ended);
    ck_assert_uint_eq(ended, 1);
    ended = 0;
    hub_alarms_take_ended(al, count_ended, &ended);
    ck_assert_uint_eq(ended, 0);
    ck_assert_int_eq(hub_alarms_update(NULL, T0, NULL, 0, 0, 0, 0), HUB_EINVAL);
    hub_alarms_destroy(&al);
}
END_TEST

static int load_conf(const char *text, hub_config_t *cfg, char *err, size_t err_size)
{
    char path[] = "/tmp/test_alarms_conf_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = hub_config_load(path, cfg, err, err_size);
    unlink(path);
    return rc;
}

START_TEST(thresholds_and_max_flows_come_from_hubd_conf)
{
    hub_config_t cfg;
    char err[512] = "";
    const char *base = "key_file = hub.secret\nkey_dir = keys\ndata_dir = data\n";
    char text[1024];
    snprintf(text, sizeof text,
             "%salarm_offline_warn_s = 5\nalarm_offline_crit_s = 50\nalarm_store_warn_percent = "
             "70\ncert_warn_days = 20\nalarm_cert_crit_days = 3\nalarm_refusals_crit = 0\n"
             "max_flows = 500\n",
             base);
    ck_assert_msg(load_conf(text, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(cfg.alarms.offline_warn_s, 5);
    ck_assert_uint_eq(cfg.alarms.offline_crit_s, 50);
    ck_assert_uint_eq(cfg.alarms.store_warn_percent, 70);
    ck_assert_uint_eq(cfg.alarms.store_crit_percent, 95); /* default kept */
    ck_assert_uint_eq(cfg.alarms.cert_warn_days, 20);
    ck_assert_uint_eq(cfg.alarms.cert_crit_days, 3);
    ck_assert_uint_eq(cfg.alarms.refusals_crit, 0);
    ck_assert_uint_eq(cfg.max_flows, 500);
    /* A critical threshold below its warning is refused, naming both. */
    snprintf(text, sizeof text, "%salarm_queue_age_warn_s = 600\nalarm_queue_age_crit_s = 60\n",
             base);
    ck_assert_int_eq(load_conf(text, &cfg, err, sizeof err), HUB_EINVAL);
    ck_assert_msg(strstr(err, "alarm_queue_age_crit_s (60)") &&
                      strstr(err, "alarm_queue_age_warn_s (600)"),
                  "%s", err);
    snprintf(text, sizeof text, "%salarm_store_warn_percent = 101\n", base);
    ck_assert_int_eq(load_conf(text, &cfg, err, sizeof err), HUB_EINVAL);
    ck_assert_msg(strstr(err, "alarm_store_warn_percent"), "%s", err);
}
END_TEST

TK_MAIN("alarms",
        TK_CASE("core", NULL, NULL, 0, healthy_hub_has_no_alarm, each_alarm_at_warning_and_critical,
                transitions_are_logged_once_and_minutes_come_from_counts,
                ended_alarms_are_handed_out_once, thresholds_and_max_flows_come_from_hubd_conf))
