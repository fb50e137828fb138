/* Unit tests for hub_policy: the agreement file's syntax and its errors,
 * allow and deny decisions with the sentences they give, validity periods,
 * wildcards, purposes, the "which may I call" walk, per-member limit lines,
 * a large policy, and `hubctl policy` end to end. */
#include "hub_error.h"
#include "hub_policy.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOTICH "VN/GOV/HN-STP/HOTICH"
#define DANCU "VN/GOV/BCA/CSDLQGDC"
#define PORTAL "VN/GOV/VPCP/DVCQG"
#define MOTCUA "VN/GOV/HN-VP/MOTCUA"
/* 2026-06-01T00:00:00Z and friends, µs. */
#define T_2026_01_01 1767225600000000ull
#define T_2026_06_01 1780272000000000ull
#define T_2027_01_01 1798761600000000ull
#define DAY_US 86400000000ull

static hub_policy_t *parse_ok(const char *text)
{
    hub_policy_t *p = NULL;
    char err[HUB_ERRMSG_MAX] = "";
    int rc = hub_policy_parse_text("/etc/lth/policy.conf", text, &p, err, sizeof err);
    ck_assert_msg(rc == 0, "parse failed (%d): %s", rc, err);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void check(const hub_policy_t *p, const char *consumer, const char *provider,
                  const char *service, uint64_t at, hub_policy_decision_t *d)
{
    ck_assert_int_eq(hub_policy_check(p, consumer, provider, service, at, d), 0);
}

START_TEST(test_dates)
{
    uint64_t us = 0;
    ck_assert_int_eq(hub_policy_parse_date("2026-01-01", 0, false, &us), 0);
    ck_assert_uint_eq(us, T_2026_01_01);
    ck_assert_int_eq(hub_policy_parse_date("2026-01-01", 0, true, &us), 0);
    ck_assert_uint_eq(us, T_2026_01_01 + DAY_US);
    ck_assert_int_eq(hub_policy_parse_date("2026-01-01", 7 * 3600, false, &us), 0);
    ck_assert_uint_eq(us, T_2026_01_01 - 7 * 3600 * 1000000ull);
    ck_assert_int_eq(hub_policy_parse_date("2026-06-01T00:00:00Z", 0, true, &us), 0);
    ck_assert_uint_eq(us, T_2026_06_01);
    ck_assert_int_eq(hub_policy_parse_date("2026-06-01T07:00:00+07:00", 3600, false, &us), 0);
    ck_assert_uint_eq(us, T_2026_06_01);
    ck_assert_int_eq(hub_policy_parse_date("2026-05-31T17:00:00-07:00", 0, false, &us), 0);
    ck_assert_uint_eq(us, T_2026_06_01);
    ck_assert_int_eq(hub_policy_parse_date("2028-02-29", 0, false, &us), 0);
    const char *bad[] = {"2026-02-29", "2026-13-01", "2026-00-10", "2026-1-01", "26-01-01",
                         "2026-01-01T24:00:00Z", "2026-01-01T10:00:00", "2026-01-01T10:00Z",
                         "2026-01-01 10:00:00Z", "1969-12-31", "2026-01-01T10:00:00+7", "now",
                         "", "2026-01-01T00:00:00UTC"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(hub_policy_parse_date(bad[i], 0, false, &us) == HUB_EINVAL, "%s", bad[i]);
}
END_TEST

START_TEST(test_syntax_errors)
{
    static const struct {
        const char *text;
        int code;
        const char *where; /* "policy.conf:N:" */
        const char *says;
    } cases[] = {
        {"permit A -> B\n", HUB_EPARSE, "policy.conf:1:", "unknown word 'permit'"},
        {"# ok\n\ndeny " HOTICH " -> " DANCU "/x/v1\n", HUB_EPARSE, "policy.conf:3:",
         "there is no 'deny'"},
        {"allow * -> " DANCU "/*\n", HUB_EPARSE, "policy.conf:1:",
         "'*' cannot stand for a consumer"},
        {"allow VN/GOV/*/HOTICH -> " DANCU "/*\n", HUB_EPARSE, "policy.conf:1:",
         "cannot stand for a consumer"},
        {"allow " HOTICH " -> VN/GOV/BCA/*\n", HUB_EPARSE, "policy.conf:1:",
         "cannot stand for a provider"},
        {"allow " HOTICH " -> */citizen.lookup/v1\n", HUB_EPARSE, "policy.conf:1:",
         "cannot stand for a provider"},
        {"allow " HOTICH " -> VN/*/BCA/CSDLQGDC/citizen.lookup/v1\n", HUB_EPARSE,
         "policy.conf:1:", "cannot stand for a provider"},
        {"allow " HOTICH " -> " DANCU "/citizen.*/v1\n", HUB_EPARSE, "policy.conf:1:",
         "'*' may only be a whole VERSION"},
        {"allow " HOTICH " -> " DANCU "/citizen.lookup/v*\n", HUB_EPARSE, "policy.conf:1:",
         "'*' may only be a whole VERSION"},
        {"allow " HOTICH " -> " DANCU "/*/v1\n", HUB_EPARSE, "policy.conf:1:",
         "'*' may only be a whole VERSION"},
        {"allow " HOTICH " -> " DANCU "/citizen.lookup\n", HUB_EPARSE, "policy.conf:1:",
         "names no version"},
        {"allow " HOTICH " -> " DANCU "\n", HUB_EPARSE, "policy.conf:1:", "names no service"},
        {"allow " HOTICH " -> " DANCU "/a/b/c\n", HUB_EPARSE, "policy.conf:1:",
         "too many parts"},
        {"allow " HOTICH " -> " DANCU "/a b/v1\n", HUB_EPARSE, "policy.conf:1:",
         "names no version"},
        {"allow " HOTICH " -> " DANCU "/cit$zen/v1\n", HUB_EPARSE, "policy.conf:1:",
         "may only hold letters"},
        {"allow " HOTICH " " DANCU "/x/v1\n", HUB_EPARSE, "policy.conf:1:", "expected 'allow"},
        {"allow " HOTICH "\n", HUB_EPARSE, "policy.conf:1:", "expected 'allow"},
        {"allow VN/GOV/HOTICH -> " DANCU "/x/v1\n", HUB_EPARSE, "policy.conf:1:",
         "exactly four parts"},
        {"allow " HOTICH " -> " DANCU "/x/v1 from 2026-02-30\n", HUB_EPARSE, "policy.conf:1:",
         "'from 2026-02-30' is not a date; write YYYY-MM-DD"},
        {"allow " HOTICH " -> " DANCU "/x/v1 until\n", HUB_EPARSE, "policy.conf:1:",
         "'until' needs a value"},
        {"allow " HOTICH " -> " DANCU "/x/v1 from 2027-01-01 until 2026-12-31\n", HUB_EPARSE,
         "policy.conf:1:", "is not before"},
        {"allow " HOTICH " -> " DANCU "/x/v1 from 2026-01-01 from 2026-02-01\n", HUB_EPARSE,
         "policy.conf:1:", "'from' is given twice"},
        {"allow " HOTICH " -> " DANCU "/x/v1 purpose birth\n", HUB_EPARSE, "policy.conf:1:",
         "purpose needs a quoted text"},
        {"allow " HOTICH " -> " DANCU "/x/v1 purpose \"unterminated\n", HUB_EPARSE,
         "policy.conf:1:", "no closing"},
        {"allow " HOTICH " -> " DANCU "/x/v1 purpose \"a\"b\n", HUB_EPARSE, "policy.conf:1:",
         "must be followed by a space"},
        {"allow " HOTICH " -> " DANCU "/x/v1 because \"x\"\n", HUB_EPARSE, "policy.conf:1:",
         "unexpected 'because'"},
        {"timezone 7\n", HUB_EPARSE, "policy.conf:1:", "timezone +07:00"},
        {"allow " HOTICH " -> " DANCU "/x/v1\n\nallow " HOTICH " -> " DANCU "/x/v1 # again\n",
         HUB_EEXIST, "policy.conf:3:", "repeats the agreement on line 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hub_policy_t *p = (hub_policy_t *)1;
        char err[HUB_ERRMSG_MAX] = "";
        int rc = hub_policy_parse_text("/etc/lth/policy.conf", cases[i].text, &p, err, sizeof err);
        ck_assert_msg(rc == cases[i].code, "case %zu: rc %d, err %s", i, rc, err);
        ck_assert_ptr_null(p);
        ck_assert_msg(strstr(err, cases[i].where) && strstr(err, cases[i].says),
                      "case %zu: '%s' lacks '%s' / '%s'", i, err, cases[i].where, cases[i].says);
    }
    /* The same agreement for two periods is no duplicate. */
    hub_policy_t *p = parse_ok("allow " HOTICH " -> " DANCU "/x/v1 until 2026-12-31\n"
                               "allow " HOTICH " -> " DANCU "/x/v1 from 2027-01-01\n");
    ck_assert_uint_eq(hub_policy_rule_count(p), 2);
    hub_policy_destroy(&p);
    ck_assert_ptr_null(p);
    hub_policy_destroy(&p); /* tolerates NULL */
    /* A line too long. */
    size_t n = HUB_POLICY_LINE_MAX + 10;
    char *longline = malloc(n + 1);
    memset(longline, '#', n);
    longline[n] = '\0';
    char err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(hub_policy_parse_text("x.conf", longline, &p, err, sizeof err), HUB_EPARSE);
    ck_assert_msg(strstr(err, "x.conf:1: the line is longer"), "%s", err);
    free(longline);
}
END_TEST

START_TEST(test_allow_and_deny)
{
    hub_policy_t *p = parse_ok("# Agreements\n"
                               "allow " HOTICH " -> " DANCU "/citizen.lookup/v1\n"
                               "allow " MOTCUA " -> " PORTAL "/dossier.status/v2   # trailing\n"
                               "\r\n"
                               "allow " PORTAL " -> " MOTCUA "/*\r\n");
    ck_assert_uint_eq(hub_policy_rule_count(p), 3);
    ck_assert_str_eq(hub_policy_name(p), "policy.conf");
    hub_policy_decision_t d;
    check(p, HOTICH, DANCU, "citizen.lookup/v1", T_2026_06_01, &d);
    ck_assert(d.allowed);
    ck_assert_uint_eq(d.line, 2);
    ck_assert_str_eq(d.file, "policy.conf");
    ck_assert_str_eq(d.purpose, "");
    ck_assert_str_eq(d.reason, "");

    /* Not in the reverse direction: replies need no agreement, requests do. */
    check(p, DANCU, HOTICH, "citizen.lookup/v1", T_2026_06_01, &d);
    ck_assert(!d.allowed);
    ck_assert_uint_eq(d.line, 0);
    ck_assert_str_eq(d.reason, "no agreement lets " DANCU " call " HOTICH
                               "/citizen.lookup/v1; add 'allow " DANCU " -> " HOTICH
                               "/citizen.lookup/v1' to policy.conf");
    /* Another version of an agreed service: the reason names what exists. */
    check(p, HOTICH, DANCU, "citizen.lookup/v2", T_2026_06_01, &d);
    ck_assert(!d.allowed);
    ck_assert_msg(strstr(d.reason, "cover only citizen.lookup/v1") &&
                      strstr(d.reason, "add 'allow " HOTICH " -> " DANCU "/citizen.lookup/v2'"),
                  "%s", d.reason);
    /* An unknown consumer. */
    check(p, "VN/GOV/XX/UNKNOWN", DANCU, "citizen.lookup/v1", T_2026_06_01, &d);
    ck_assert(!d.allowed);
    ck_assert_msg(strstr(d.reason, "no agreement lets VN/GOV/XX/UNKNOWN call " DANCU
                                   "/citizen.lookup/v1"), "%s", d.reason);
    /* Every service of a provider. */
    check(p, PORTAL, MOTCUA, "anything.at.all/v9", T_2026_06_01, &d);
    ck_assert(d.allowed);
    ck_assert_uint_eq(d.line, 5);
    check(p, MOTCUA, PORTAL, "dossier.status/v2", T_2026_06_01, &d);
    ck_assert(d.allowed);
    ck_assert_uint_eq(d.line, 3);
    /* NULL arguments. */
    ck_assert_int_eq(hub_policy_check(NULL, HOTICH, DANCU, "a/v1", 0, &d), HUB_EINVAL);
    ck_assert_int_eq(hub_policy_check(p, HOTICH, NULL, "a/v1", 0, &d), HUB_EINVAL);
    /* Oversized ids are simply not agreed. */
    char huge[600];
    memset(huge, 'A', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    check(p, huge, DANCU, "citizen.lookup/v1", T_2026_06_01, &d);
    ck_assert(!d.allowed);
    hub_policy_destroy(&p);

    /* An empty policy denies everything. */
    p = parse_ok("# nothing agreed yet\n");
    ck_assert_uint_eq(hub_policy_rule_count(p), 0);
    check(p, HOTICH, DANCU, "citizen.lookup/v1", T_2026_06_01, &d);
    ck_assert(!d.allowed);
    hub_policy_destroy(&p);
}
END_TEST

START_TEST(test_validity_periods)
{
    hub_policy_t *p = parse_ok(
        "allow " HOTICH " -> " DANCU "/citizen.lookup/v1 from 2026-01-01 until 2026-12-31 "
        "purpose \"civil status\"\n"
        "allow " HOTICH " -> " DANCU "/citizen.lookup/v2 from 2027-01-01T00:00:00Z\n"
        "timezone +07:00\n"
        "allow " MOTCUA " -> " PORTAL "/dossier.status/v1 from 2026-06-01 until 2026-06-01\n");
    hub_policy_decision_t d;
    /* from is inclusive. */
    check(p, HOTICH, DANCU, "citizen.lookup/v1", T_2026_01_01, &d);
    ck_assert(d.allowed);
    ck_assert_str_eq(d.purpose, "civil status");
    check(p, HOTICH, DANCU, "citizen.lookup/v1", T_2026_01_01 - 1, &d);
    ck_assert(!d.allowed);
    ck_assert_uint_eq(d.line, 1);
    ck_assert_str_eq(d.purpose, "civil status");
    ck_assert_msg(strstr(d.reason, "the agreement at policy.conf:1") &&
                      strstr(d.reason, "is valid only from 2026-01-01"),
                  "%s", d.reason);
    /* A bare until date includes its whole day. */
    check(p, HOTICH, DANCU, "citizen.lookup/v1", T_2027_01_01 - 1, &d);
    ck_assert(d.allowed);
    check(p, HOTICH, DANCU, "citizen.lookup/v1", T_2027_01_01, &d);
    ck_assert(!d.allowed);
    ck_assert_msg(strstr(d.reason, "policy.conf:1") && strstr(d.reason, "ran until 2026-12-31") &&
                      strstr(d.reason, "renew"),
                  "%s", d.reason);
    /* An exact from time. */
    check(p, HOTICH, DANCU, "citizen.lookup/v2", T_2027_01_01 - 1, &d);
    ck_assert(!d.allowed);
    ck_assert_uint_eq(d.line, 2);
    check(p, HOTICH, DANCU, "citizen.lookup/v2", T_2027_01_01, &d);
    ck_assert(d.allowed);
    /* One day in Hà Nội time: 2026-05-31T17:00Z to 2026-06-01T17:00Z. */
    uint64_t hn_start = T_2026_06_01 - 7 * 3600 * 1000000ull;
    check(p, MOTCUA, PORTAL, "dossier.status/v1", hn_start - 1, &d);
    ck_assert(!d.allowed);
    check(p, MOTCUA, PORTAL, "dossier.status/v1", hn_start, &d);
    ck_assert(d.allowed);
    check(p, MOTCUA, PORTAL, "dossier.status/v1", hn_start + DAY_US - 1, &d);
    ck_assert(d.allowed);
    check(p, MOTCUA, PORTAL, "dossier.status/v1", hn_start + DAY_US, &d);
    ck_assert(!d.allowed);
    hub_policy_destroy(&p);

    /* Renewal: an expired and a future agreement; the reason names the future one. */
    p = parse_ok("allow " HOTICH " -> " DANCU "/a/v1 until 2026-01-31\n"
                 "allow " HOTICH " -> " DANCU "/a/v1 from 2026-03-01\n");
    check(p, HOTICH, DANCU, "a/v1", T_2026_01_01 + 45 * DAY_US, &d);
    ck_assert(!d.allowed);
    ck_assert_uint_eq(d.line, 2);
    check(p, HOTICH, DANCU, "a/v1", T_2026_01_01 + 10 * DAY_US, &d);
    ck_assert_uint_eq(d.line, 1);
    ck_assert(d.allowed);
    check(p, HOTICH, DANCU, "a/v1", T_2026_06_01, &d);
    ck_assert_uint_eq(d.line, 2);
    ck_assert(d.allowed);
    hub_policy_destroy(&p);
}
END_TEST

START_TEST(test_wildcards_and_purpose)
{
    hub_policy_t *p = parse_ok(
        "allow " HOTICH " -> " DANCU "/* purpose \"everything\"\n"
        "allow " HOTICH " -> " DANCU "/citizen.lookup/* purpose \"any look-up\"\n"
        "allow " HOTICH " -> " DANCU "/citizen.lookup/v1 purpose \"say \\\"v1\\\" \\\\ ok\"\n"
        "allow " MOTCUA " -> " DANCU "/citizen.lookup/* until 2026-01-01\n"
        "allow " MOTCUA " -> " DANCU "/citizen.lookup/v1 from 2027-01-01\n");
    hub_policy_decision_t d;
    /* The most specific agreement speaks. */
    check(p, HOTICH, DANCU, "citizen.lookup/v1", T_2026_06_01, &d);
    ck_assert(d.allowed);
    ck_assert_uint_eq(d.line, 3);
    ck_assert_str_eq(d.purpose, "say \"v1\" \\ ok");
    check(p, HOTICH, DANCU, "citizen.lookup/v7", T_2026_06_01, &d);
    ck_assert(d.allowed);
    ck_assert_uint_eq(d.line, 2);
    ck_assert_str_eq(d.purpose, "any look-up");
    check(p, HOTICH, DANCU, "citizen.lookupx/v1", T_2026_06_01, &d);
    ck_assert(d.allowed);
    ck_assert_uint_eq(d.line, 1);
    check(p, HOTICH, DANCU, "citizen/v1", T_2026_06_01, &d);
    ck_assert_uint_eq(d.line, 1);
    /* SERVICE/'*' covers versions of that service only. */
    check(p, MOTCUA, DANCU, "citizen.lookup/v3", T_2026_01_01 - 1, &d);
    ck_assert(d.allowed);
    check(p, MOTCUA, DANCU, "citizen.lookups/v3", T_2026_01_01 - 1, &d);
    ck_assert(!d.allowed);
    ck_assert_msg(strstr(d.reason, "cover only citizen.lookup/*, citizen.lookup/v1"), "%s",
                  d.reason);
    /* A long purpose is refused; one at the limit is kept. */
    char text[600], purpose[HUB_POLICY_PURPOSE_MAX + 2];
    memset(purpose, 'p', sizeof purpose);
    purpose[HUB_POLICY_PURPOSE_MAX] = '\0';
    snprintf(text, sizeof text, "allow %s -> %s/x/v1 purpose \"%s\"\n", HOTICH, DANCU, purpose);
    hub_policy_t *q = parse_ok(text);
    check(q, HOTICH, DANCU, "x/v1", T_2026_06_01, &d);
    ck_assert_uint_eq(strlen(d.purpose), HUB_POLICY_PURPOSE_MAX);
    hub_policy_destroy(&q);
    purpose[HUB_POLICY_PURPOSE_MAX] = 'p';
    purpose[HUB_POLICY_PURPOSE_MAX + 1] = '\0';
    snprintf(text, sizeof text, "allow %s -> %s/x/v1 purpose \"%s\"\n", HOTICH, DANCU, purpose);
    char err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(hub_policy_parse_text("p.conf", text, &q, err, sizeof err), HUB_EPARSE);
    ck_assert_msg(strstr(err, "p.conf:1: purpose is longer"), "%s", err);
    hub_policy_destroy(&p);
}
END_TEST

typedef struct {
    char seen[8][300];
    size_t n;
    size_t stop_after;
} visit_t;

static int on_rule(const hub_policy_rule_t *r, void *user)
{
    visit_t *v = user;
    if (v->n < 8)
        snprintf(v->seen[v->n], sizeof v->seen[0], "%u %s %s", r->line, r->provider, r->service);
    v->n++;
    return v->stop_after && v->n >= v->stop_after;
}

START_TEST(test_visit_allowed)
{
    hub_policy_t *p = parse_ok("allow " HOTICH " -> " DANCU "/citizen.lookup/v1\n"
                               "allow " MOTCUA " -> " PORTAL "/*\n"
                               "allow " HOTICH " -> " PORTAL "/dossier.status/* until 2026-01-01\n"
                               "allow " HOTICH " -> " MOTCUA "/*\n");
    visit_t v = {0};
    ck_assert_uint_eq(hub_policy_visit_allowed(p, HOTICH, T_2026_06_01, on_rule, &v), 2);
    ck_assert_uint_eq(v.n, 2);
    ck_assert_str_eq(v.seen[0], "1 " DANCU " citizen.lookup/v1");
    ck_assert_str_eq(v.seen[1], "4 " MOTCUA " *");
    memset(&v, 0, sizeof v);
    ck_assert_uint_eq(hub_policy_visit_allowed(p, HOTICH, T_2026_01_01 - 1, on_rule, &v), 3);
    memset(&v, 0, sizeof v);
    v.stop_after = 1;
    ck_assert_uint_eq(hub_policy_visit_allowed(p, HOTICH, T_2026_06_01, on_rule, &v), 1);
    ck_assert_uint_eq(hub_policy_visit_allowed(p, "VN/GOV/NO/ONE", T_2026_06_01, on_rule, &v), 0);
    memset(&v, 0, sizeof v);
    ck_assert_uint_eq(hub_policy_visit_rules(p, on_rule, &v), 4);
    ck_assert_str_eq(v.seen[1], "2 " PORTAL " *");
    ck_assert_uint_eq(hub_policy_visit_rules(NULL, on_rule, &v), 0);
    hub_policy_destroy(&p);
}
END_TEST

START_TEST(test_limits)
{
    hub_policy_t *p = parse_ok(
        "allow " MOTCUA " -> " PORTAL "/dossier.status/*\n"
        "# per-member limits\n"
        "limit " MOTCUA " rate 500/s bytes 4MiB/s send 20000 256MiB receive 100000 1GiB\n"
        "limit " PORTAL " receive 7 1GiB   # only what may wait for it\n"
        "limit " HOTICH " send 3 1024 bytes 10KiB/s\n"
        "limit " DANCU " rate 1/s bytes 18446744073709551615B/s\n");
    ck_assert_uint_eq(hub_policy_rule_count(p), 1);
    ck_assert_uint_eq(hub_policy_limit_count(p), 4);

    /* Every field of a full line. */
    hub_policy_limits_t l = {.line = 99};
    ck_assert(hub_policy_limits(p, MOTCUA, &l));
    ck_assert_uint_eq(l.line, 3);
    ck_assert_uint_eq(l.rate_msgs, 500);
    ck_assert_uint_eq(l.rate_bytes, 4ull << 20);
    ck_assert_uint_eq(l.send_msgs, 20000);
    ck_assert_uint_eq(l.send_bytes, 256ull << 20);
    ck_assert_uint_eq(l.recv_msgs, 100000);
    ck_assert_uint_eq(l.recv_bytes, 1ull << 30);

    /* A partial line overwrites only what it sets: the defaults stay. */
    const hub_policy_limits_t defaults = {.rate_msgs = 100, .rate_bytes = 1000, .send_msgs = 11,
                                          .send_bytes = 12, .recv_msgs = 13, .recv_bytes = 14,
                                          .line = 77};
    l = defaults;
    ck_assert(hub_policy_limits(p, PORTAL, &l));
    ck_assert_uint_eq(l.line, 4);
    ck_assert_uint_eq(l.recv_msgs, 7);
    ck_assert_uint_eq(l.recv_bytes, 1ull << 30);
    ck_assert_uint_eq(l.rate_msgs, 100);
    ck_assert_uint_eq(l.rate_bytes, 1000);
    ck_assert_uint_eq(l.send_msgs, 11);
    ck_assert_uint_eq(l.send_bytes, 12);
    l = defaults;
    ck_assert(hub_policy_limits(p, HOTICH, &l));
    ck_assert_uint_eq(l.line, 5);
    ck_assert_uint_eq(l.send_msgs, 3);
    ck_assert_uint_eq(l.send_bytes, 1024); /* a plain number is bytes */
    ck_assert_uint_eq(l.rate_bytes, 10 * 1024);
    ck_assert_uint_eq(l.rate_msgs, 100);
    ck_assert_uint_eq(l.recv_msgs, 13);
    ck_assert_uint_eq(l.recv_bytes, 14);
    ck_assert(hub_policy_limits(p, DANCU, &l));
    ck_assert_uint_eq(l.rate_msgs, 1);
    ck_assert_uint_eq(l.rate_bytes, UINT64_MAX);

    /* No line: nothing changes but line, which says so. */
    l = defaults;
    ck_assert(!hub_policy_limits(p, "VN/GOV/HN-XD/CAPPHEP", &l));
    ck_assert_uint_eq(l.line, 0);
    ck_assert_uint_eq(l.rate_msgs, 100);
    ck_assert_uint_eq(l.recv_bytes, 14);
    ck_assert(!hub_policy_limits(p, NULL, &l));
    ck_assert(!hub_policy_limits(NULL, MOTCUA, &l));
    ck_assert(!hub_policy_limits(p, MOTCUA, NULL));
    ck_assert_uint_eq(hub_policy_limit_count(NULL), 0);

    /* Limit lines do not change decisions. */
    hub_policy_decision_t d;
    check(p, MOTCUA, PORTAL, "dossier.status/v2", T_2026_06_01, &d);
    ck_assert(d.allowed);
    check(p, PORTAL, MOTCUA, "dossier.status/v2", T_2026_06_01, &d);
    ck_assert(!d.allowed);
    hub_policy_destroy(&p);

    /* Units, one by one. */
    static const struct {
        const char *size;
        uint64_t bytes;
    } sizes[] = {{"1", 1}, {"1B", 1}, {"2KiB", 2048}, {"3MiB", 3ull << 20},
                 {"5GiB", 5ull << 30}, {"17179869183GiB", 17179869183ull << 30}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "limit %s send 1 %s\n", HOTICH, sizes[i].size);
        p = parse_ok(text);
        ck_assert(hub_policy_limits(p, HOTICH, &l));
        ck_assert_msg(l.send_bytes == sizes[i].bytes, "%s: %llu", sizes[i].size,
                      (unsigned long long)l.send_bytes);
        hub_policy_destroy(&p);
    }
}
END_TEST

START_TEST(test_limit_errors)
{
    static const struct {
        const char *text;
        int code;
        const char *where;
        const char *says;
    } cases[] = {
        {"limit\n", HUB_EPARSE, "policy.conf:1:", "expected 'limit MEMBER [rate N/s]"},
        {"limit " MOTCUA "\n", HUB_EPARSE, "policy.conf:1:",
         "sets at least one of 'rate N/s', 'bytes SIZE/s', 'send N SIZE' and 'receive N SIZE'"},
        {"limit " MOTCUA " # nothing\n", HUB_EPARSE, "policy.conf:1:", "at least one of"},
        {"limit * rate 5/s\n", HUB_EPARSE, "policy.conf:1:",
         "'*' cannot stand for a member or a part of one; write one 'limit' line per member"},
        {"limit VN/GOV/*/MOTCUA rate 5/s\n", HUB_EPARSE, "policy.conf:1:",
         "cannot stand for a member"},
        {"limit VN/GOV/MOTCUA rate 5/s\n", HUB_EPARSE, "policy.conf:1:", "exactly four parts"},
        {"limit \"" MOTCUA "\" rate 5/s\n", HUB_EPARSE, "policy.conf:1:", "expected 'limit"},
        {"limit " MOTCUA " rate 500\n", HUB_EPARSE, "policy.conf:1:",
         "'rate 500' is not valid; write messages per second, a whole number followed by /s, "
         "e.g. rate 500/s"},
        {"limit " MOTCUA " rate 1.5/s\n", HUB_EPARSE, "policy.conf:1:", "'rate 1.5/s' is not"},
        {"limit " MOTCUA " rate -5/s\n", HUB_EPARSE, "policy.conf:1:", "'rate -5/s' is not"},
        {"limit " MOTCUA " rate 5MiB/s\n", HUB_EPARSE, "policy.conf:1:", "'rate 5MiB/s' is not"},
        {"limit " MOTCUA " rate 0/s\n", HUB_EPARSE, "policy.conf:1:",
         "'rate 0/s': a limit is at least 1; to keep the hub's default, leave 'rate' out"},
        {"limit " MOTCUA " rate 18446744073709551616/s\n", HUB_EPARSE, "policy.conf:1:",
         "is not valid"},
        {"limit " MOTCUA " rate\n", HUB_EPARSE, "policy.conf:1:",
         "'rate' needs a value, e.g. rate 500/s"},
        {"limit " MOTCUA " bytes 4MB/s\n", HUB_EPARSE, "policy.conf:1:",
         "'bytes 4MB/s' is not valid; write bytes per second, a whole number followed by B, "
         "KiB, MiB or GiB"},
        {"limit " MOTCUA " bytes 4MiB\n", HUB_EPARSE, "policy.conf:1:", "then /s, e.g. bytes 4MiB/s"},
        {"limit " MOTCUA " bytes 4mib/s\n", HUB_EPARSE, "policy.conf:1:", "is not valid"},
        {"limit " MOTCUA " bytes 0KiB/s\n", HUB_EPARSE, "policy.conf:1:", "at least 1"},
        {"limit " MOTCUA " bytes 17179869184GiB/s\n", HUB_EPARSE, "policy.conf:1:",
         "is not valid"},
        {"limit " MOTCUA " send 20000\n", HUB_EPARSE, "policy.conf:1:",
         "'send' needs a message count and a size, e.g. send 20000 256MiB"},
        {"limit " MOTCUA " send 256MiB 20000\n", HUB_EPARSE, "policy.conf:1:",
         "'send 256MiB 20000' is not valid; write a message count, then a size"},
        {"limit " MOTCUA " send 20000 256 MiB\n", HUB_EPARSE, "policy.conf:1:",
         "unexpected 'MiB'"},
        {"limit " MOTCUA " send 0 1GiB\n", HUB_EPARSE, "policy.conf:1:",
         "'send 0 1GiB': a limit is at least 1"},
        {"limit " MOTCUA " receive 10 0\n", HUB_EPARSE, "policy.conf:1:",
         "leave 'receive' out"},
        {"limit " MOTCUA " receive 10 1TiB\n", HUB_EPARSE, "policy.conf:1:",
         "e.g. receive 100000 1GiB"},
        {"limit " MOTCUA " rate 5/s rate 6/s\n", HUB_EPARSE, "policy.conf:1:",
         "'rate' is given twice; keep one"},
        {"limit " MOTCUA " send 1 1B receive 1 1B send 2 2B\n", HUB_EPARSE, "policy.conf:1:",
         "'send' is given twice"},
        {"limit " MOTCUA " burst 5\n", HUB_EPARSE, "policy.conf:1:",
         "unexpected 'burst'; after the member come only 'rate N/s', 'bytes SIZE/s', "
         "'send N SIZE' and 'receive N SIZE'"},
        {"limit " MOTCUA " \"rate\" 5/s\n", HUB_EPARSE, "policy.conf:1:", "unexpected 'rate'"},
        {"limit " MOTCUA " rate 5/s\n# later\nlimit " MOTCUA " send 1 1B\n", HUB_EEXIST,
         "policy.conf:3:",
         MOTCUA " already has a limit line (line 1); a member has one: merge them"},
        {"limits " MOTCUA " rate 5/s\n", HUB_EPARSE, "policy.conf:1:",
         "unknown word 'limits'; a line is 'allow"},
        {"\"limit\" " MOTCUA " rate 5/s\n", HUB_EPARSE, "policy.conf:1:",
         "a line starts with 'allow', 'limit' or 'timezone'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hub_policy_t *p = (hub_policy_t *)1;
        char err[HUB_ERRMSG_MAX] = "";
        int rc = hub_policy_parse_text("/etc/lth/policy.conf", cases[i].text, &p, err, sizeof err);
        ck_assert_msg(rc == cases[i].code, "case %zu: rc %d, err %s", i, rc, err);
        ck_assert_ptr_null(p);
        ck_assert_msg(strstr(err, cases[i].where) && strstr(err, cases[i].says),
                      "case %zu: '%s' lacks '%s' / '%s'", i, err, cases[i].where, cases[i].says);
    }
}
END_TEST

START_TEST(test_example_file)
{
    /* The example we ship parses, and says what its comments say. */
    const char *src = getenv("HUB_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    char path[PATH_MAX], err[HUB_ERRMSG_MAX] = "";
    snprintf(path, sizeof path, "%s/deploy/policy.conf.example", src);
    hub_policy_t *p = NULL;
    ck_assert_msg(hub_policy_load(path, &p, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_ge(hub_policy_limit_count(p), 2);
    hub_policy_limits_t l = {0};
    ck_assert(hub_policy_limits(p, MOTCUA, &l));
    ck_assert_uint_eq(l.rate_msgs, 500);
    ck_assert_uint_eq(l.send_bytes, 256ull << 20);
    l = (hub_policy_limits_t){0};
    ck_assert(hub_policy_limits(p, PORTAL, &l));
    ck_assert_uint_eq(l.recv_msgs, 100000);
    ck_assert_uint_eq(l.recv_bytes, 1ull << 30);
    ck_assert_uint_eq(l.send_msgs, 0);
    hub_policy_destroy(&p);
}
END_TEST

START_TEST(test_files)
{
    char dir[PATH_MAX], path[PATH_MAX], err[HUB_ERRMSG_MAX];
    tk_tmpdir(dir);
    snprintf(path, sizeof path, "%s/agreements.conf", dir);
    hub_policy_t *p = NULL;
    ck_assert_int_eq(hub_policy_load(path, &p, err, sizeof err), HUB_ENOENT);
    ck_assert_msg(strstr(err, "agreements.conf"), "%s", err);
    tk_write_file(path, "allow " HOTICH " -> " DANCU "/citizen.lookup/v1\n"
                        "allow " HOTICH " -> " DANCU "/citizen.lookup/v1/x\n");
    ck_assert_int_eq(hub_policy_load(path, &p, err, sizeof err), HUB_EPARSE);
    /* Load errors name the full path; decisions only the file name. */
    ck_assert_msg(strstr(err, dir) && strstr(err, "agreements.conf:2:"), "%s", err);
    tk_write_file(path, "allow " HOTICH " -> " DANCU "/citizen.lookup/v1\n");
    ck_assert_int_eq(hub_policy_load(path, &p, err, sizeof err), 0);
    hub_policy_decision_t d;
    check(p, HOTICH, DANCU, "citizen.lookup/v2", T_2026_06_01, &d);
    ck_assert_msg(strstr(d.reason, "to agreements.conf") && !strstr(d.reason, dir), "%s",
                  d.reason);
    hub_policy_destroy(&p);
    FILE *f = fopen(path, "wb");
    fwrite("allow\0x\n", 1, 8, f);
    fclose(f);
    ck_assert_int_eq(hub_policy_load(path, &p, err, sizeof err), HUB_EPARSE);
    ck_assert_msg(strstr(err, "NUL"), "%s", err);
    ck_assert_int_eq(hub_policy_load(dir, &p, err, sizeof err), HUB_EIO);
    tk_rmrf(dir);
}
END_TEST

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

START_TEST(test_many_rules)
{
    /* 500 consumers x 100 providers = 50,000 agreements. */
    enum { CONSUMERS = 500, PROVIDERS = 100 };
    size_t cap = (size_t)CONSUMERS * PROVIDERS * 100, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    for (int c = 0; c < CONSUMERS; c++)
        for (int q = 0; q < PROVIDERS; q++)
            len += (size_t)snprintf(text + len, cap - len,
                                    "allow VN/GOV/C%03d/SYS -> VN/GOV/P%03d/SYS/svc%d/v1 "
                                    "until 2030-01-01\n",
                                    c, q, (c + q) % 7);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    hub_policy_t *p = parse_ok(text);
    double load_s = seconds_since(&t0);
    free(text);
    ck_assert_uint_eq(hub_policy_rule_count(p), (size_t)CONSUMERS * PROVIDERS);

    enum { CHECKS = 200000 };
    size_t allowed = 0;
    hub_policy_decision_t d;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < CHECKS; i++) {
        char consumer[32], provider[32], service[32];
        int c = i % CONSUMERS, q = (i / CONSUMERS) % PROVIDERS;
        snprintf(consumer, sizeof consumer, "VN/GOV/C%03d/SYS", c);
        snprintf(provider, sizeof provider, "VN/GOV/P%03d/SYS", q);
        /* Every other check asks for a service the pair has not agreed. */
        snprintf(service, sizeof service, "svc%d/v1", (c + q + (i & 1)) % 7);
        check(p, consumer, provider, service, T_2026_06_01, &d);
        allowed += d.allowed;
    }
    double check_s = seconds_since(&t0);
    ck_assert_uint_eq(allowed, CHECKS / 2);
    fprintf(stderr, "policy: %d rules loaded in %.3f s; %d checks in %.3f s (%.0f/s)\n",
            CONSUMERS * PROVIDERS, load_s, CHECKS, check_s, CHECKS / check_s);
    /* Generous bounds (sanitizer builds are slow); a linear scan would need
     * 50,000 comparisons per check and take minutes. */
    ck_assert_msg(load_s < 20.0, "load took %.3f s", load_s);
    ck_assert_msg(check_s < 30.0, "checks took %.3f s", check_s);
    hub_policy_destroy(&p);
}
END_TEST

static int run_hubctl(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
                      const char *a5, const char *a6, const char *a7, const char *a8)
{
    char *argv[] = {(char *)tk_bin("hubctl"), (char *)a1, (char *)a2, (char *)a3, (char *)a4,
                    (char *)a5, (char *)a6, (char *)a7, (char *)a8, NULL};
    return tk_run(argv, out, 30000);
}

START_TEST(test_hubctl_policy)
{
    char dir[PATH_MAX], path[PATH_MAX], bad[PATH_MAX], bad_limit[PATH_MAX];
    tk_tmpdir(dir);
    snprintf(path, sizeof path, "%s/policy.conf", dir);
    snprintf(bad, sizeof bad, "%s/bad.conf", dir);
    tk_write_file(path, "allow " HOTICH " -> " DANCU "/citizen.lookup/v1 until 2026-12-31 "
                        "purpose \"civil status\"\n"
                        "allow " HOTICH " -> " PORTAL "/*\n"
                        "limit " HOTICH " rate 50/s send 1000 64MiB\n");
    tk_write_file(bad, "\n\nallow * -> " DANCU "/*\n");
    snprintf(bad_limit, sizeof bad_limit, "%s/bad-limit.conf", dir);
    tk_write_file(bad_limit, "allow " HOTICH " -> " PORTAL "/*\nlimit " HOTICH " rate 50\n");
    char *out = NULL;
    ck_assert_int_eq(run_hubctl(&out, "policy", "check", HOTICH, DANCU "/citizen.lookup/v1",
                                "--policy", path, "--at", "2026-06-01"),
                     0);
    ck_assert_msg(strstr(out, "allowed (policy.conf:1, purpose: civil status)"), "%s", out);
    free(out);
    ck_assert_int_eq(run_hubctl(&out, "policy", "check", HOTICH, DANCU "/citizen.lookup/v1",
                                "--policy", path, "--at", "2027-01-01"),
                     4);
    ck_assert_msg(strstr(out, "denied: the agreement at policy.conf:1") &&
                      strstr(out, "ran until 2026-12-31"),
                  "%s", out);
    free(out);
    ck_assert_int_eq(run_hubctl(&out, "policy", "check", DANCU, HOTICH "/x/v1", "--policy", path,
                                NULL, NULL),
                     4);
    ck_assert_msg(strstr(out, "denied: no agreement lets " DANCU " call " HOTICH "/x/v1; add "
                              "'allow " DANCU " -> " HOTICH "/x/v1' to policy.conf"),
                  "%s", out);
    free(out);
    ck_assert_int_eq(run_hubctl(&out, "policy", "check", HOTICH, PORTAL "/a/v1", "--policy", path,
                                NULL, NULL),
                     0);
    ck_assert_msg(strstr(out, "allowed (policy.conf:2)"), "%s", out);
    free(out);
    ck_assert_int_eq(run_hubctl(&out, "policy", "allowed", HOTICH, "--policy", path, "--at",
                                "2026-06-01", NULL),
                     0);
    ck_assert_msg(strstr(out, DANCU "/citizen.lookup/v1") && strstr(out, PORTAL "/*"), "%s",
                  out);
    free(out);
    /* A bad file: exit 1 and FILE:LINE. */
    ck_assert_int_eq(run_hubctl(&out, "policy", "check", HOTICH, DANCU "/citizen.lookup/v1",
                                "--policy", bad, NULL, NULL),
                     1);
    ck_assert_msg(strstr(out, "bad.conf:3:") && strstr(out, "cannot stand for a consumer"), "%s",
                  out);
    free(out);
    ck_assert_int_eq(run_hubctl(&out, "policy", "check", HOTICH, PORTAL "/a/v1", "--policy",
                                bad_limit, NULL, NULL),
                     1);
    ck_assert_msg(strstr(out, "bad-limit.conf:2:") && strstr(out, "'rate 50' is not valid"),
                  "%s", out);
    free(out);
    /* Usage errors: exit 2. */
    ck_assert_int_eq(run_hubctl(&out, "policy", "check", HOTICH, DANCU, "--policy", path, NULL,
                                NULL),
                     2);
    ck_assert_msg(strstr(out, "not PROVIDER/SERVICE/VERSION"), "%s", out);
    free(out);
    ck_assert_int_eq(run_hubctl(&out, "policy", "check", HOTICH, DANCU "/a/v1", "--policy", path,
                                "--at", "yesterday"),
                     2);
    free(out);
    ck_assert_int_eq(run_hubctl(&out, "policy", "check", HOTICH, DANCU "/a/v1", NULL, NULL, NULL,
                                NULL),
                     2);
    free(out);
    tk_rmrf(dir);
}
END_TEST

TK_MAIN("policy", TK_CASE("policy", NULL, NULL, 120, test_dates, test_syntax_errors,
                          test_allow_and_deny, test_validity_periods, test_wildcards_and_purpose,
                          test_visit_allowed, test_limits, test_limit_errors, test_example_file,
                          test_files, test_many_rules, test_hubctl_policy))
