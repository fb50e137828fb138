/* End to end: `hubctl probe --junit FILE` writes the file in every case, and
 * the file validates against the JUnit schema CI servers read
 * (tests/support/junit.xsd, checked with xmllint from libxml2-utils): a hub
 * that is not running, a member list that cannot be read, a wrong hub key
 * (exit 4, "refused"), and the passing case. Each failure carries its
 * reason. And every hubctl subcommand answers --help. */
#include "hubfix.h"
#include "testkit.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define A "VN/GOV/BCA/CSDLQGDC"
#define OPS "VN/GOV/HN-LGSP/OPS"
#define XMLLINT "/usr/bin/xmllint"

static hubfix_t fix;
static char ctl_conf[PATH_MAX], junit[PATH_MAX];

static void setup(void)
{
    hubfix_init(&fix, "http_listen = 127.0.0.1:0\n");
    HUBFIX_ADD_MEMBERS(&fix, A, OPS);
    snprintf(ctl_conf, sizeof ctl_conf, "%s/hubctl.conf", fix.dir);
    snprintf(junit, sizeof junit, "%s/probe.xml", fix.dir);
}

static void teardown(void) { hubfix_cleanup(&fix); }

/* A 127.0.0.1 port that nothing listens on (bound, then released). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void write_ctl_conf(const char *endpoint, const char *hub_pub, const char *http_url)
{
    char secret[PATH_MAX], text[4096];
    hubfix_secret_path(&fix, OPS, secret);
    snprintf(text, sizeof text,
             "hub_endpoint = %s\nhub_key_file = %s\nmember_key_file = %s\nhttp_url = %s\n",
             endpoint, hub_pub, secret, http_url);
    tk_write_file(ctl_conf, text);
}

static int probe(char **out, const char *a1, const char *a2)
{
    unlink(junit);
    char *argv[] = {(char *)tk_bin("hubctl"), "--config", ctl_conf, "probe", (char *)a1,
                    "--timeout", "1500", "--junit", junit, (char *)a2, NULL};
    return tk_run(argv, out, 60000);
}

/* xmllint's verdict on path against the schema: 0 valid. */
static int validate(const char *path, char **out)
{
    ck_assert_msg(access(XMLLINT, X_OK) == 0,
                  XMLLINT " is missing: install libxml2-utils (scripts/install-deps.sh)");
    char schema[PATH_MAX];
    snprintf(schema, sizeof schema, "%s/tests/support/junit.xsd", getenv("HUB_SOURCE_DIR"));
    char *argv[] = {XMLLINT, "--noout", "--schema", schema, (char *)path, NULL};
    return tk_run(argv, out, 30000);
}

/* The report exists, validates, and holds `needles` (NULL-terminated). */
static char *assert_report(const char *const needles[])
{
    char *xml = tk_read_file(junit);
    ck_assert_msg(xml, "no JUnit file %s", junit);
    char *why = NULL;
    ck_assert_msg(validate(junit, &why) == 0, "%s does not validate: %s\n%s", junit,
                  why ? why : "", xml);
    free(why);
    for (size_t i = 0; needles[i]; i++)
        ck_assert_msg(strstr(xml, needles[i]), "no '%s' in:\n%s", needles[i], xml);
    return xml;
}

START_TEST(schema_refuses_a_broken_report)
{
    /* The check can fail: a test case without a name, a failure without a type. */
    char bad[PATH_MAX];
    snprintf(bad, sizeof bad, "%s/bad.xml", fix.dir);
    tk_write_file(bad, "<?xml version=\"1.0\"?>\n<testsuites><testsuite name=\"s\" tests=\"1\" "
                       "failures=\"1\" errors=\"0\"><testcase classname=\"c\" time=\"0.1\">"
                       "<failure message=\"m\">x</failure></testcase></testsuite></testsuites>\n");
    char *out = NULL;
    ck_assert_int_ne(validate(bad, &out), 0);
    ck_assert_msg(out && strstr(out, "name"), "%s", out ? out : "");
    free(out);
}
END_TEST

START_TEST(hub_not_running)
{
    char endpoint[64], hub_pub[PATH_MAX], url[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", closed_port());
    snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
    hubfix_public_path(&fix, HUBFIX_HUB_ID, hub_pub);
    write_ctl_conf(endpoint, hub_pub, url);
    char *out = NULL;
    ck_assert_int_eq(probe(&out, A, NULL), 1);
    ck_assert_msg(strstr(out, "cannot reach the hub"), "%s", out);
    free(out);
    free(assert_report((const char *const[]){
        "tests=\"2\" failures=\"2\"", "name=\"hub tcp://127.0.0.1:", "name=\"" A "\"",
        "<failure type=\"unreachable\" message=\"hub unreachable\">", "no answer from a hub",
        "not probed: ", NULL}));
    /* --all needs the member list from the HTTP API, which is down too. */
    ck_assert_int_eq(probe(&out, "--all", NULL), 1);
    free(out);
    free(assert_report((const char *const[]){"tests=\"1\" failures=\"1\"",
                                             "type=\"unreachable\"", "/api/v1/members", NULL}));
    /* A usage error still leaves a report. */
    ck_assert_int_eq(probe(&out, A, "--all"), 2);
    free(out);
    free(assert_report((const char *const[]){"type=\"error\"", "usage: hubctl probe", NULL}));
}
END_TEST

START_TEST(wrong_hub_key_is_refused)
{
    hubfix_start(&fix);
    /* Another member's public key where the hub's should be. */
    char wrong_pub[PATH_MAX];
    hubfix_public_path(&fix, A, wrong_pub);
    write_ctl_conf(fix.endpoint, wrong_pub, "http://127.0.0.1:1");
    char *out = NULL;
    int rc = probe(&out, A, NULL);
    ck_assert_msg(rc == 4, "exit %d, not 4 (refused):\n%s", rc, out);
    free(out);
    free(assert_report((const char *const[]){"tests=\"2\" failures=\"2\"",
                                             "<failure type=\"refused\" message=\"refused\">",
                                             "hub_key_file", NULL}));
}
END_TEST

START_TEST(passing_probe_validates)
{
    hubfix_start(&fix);
    hubfix_start_adapter(&fix, A, "echo", NULL);
    char hub_pub[PATH_MAX], url[128];
    hubfix_public_path(&fix, HUBFIX_HUB_ID, hub_pub);
    snprintf(url, sizeof url, "http://%s", fix.http);
    write_ctl_conf(fix.endpoint, hub_pub, url);
    char *out = NULL;
    int rc = probe(&out, A, NULL);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    free(out);
    free(assert_report((const char *const[]){"tests=\"1\" failures=\"0\"",
                                             "<testcase classname=\"lth.probe\" name=\"" A "\"",
                                             NULL}));
}
END_TEST

/* Every subcommand answers --help with its own usage, exit 0; the list is
 * hubctl --help's. */
START_TEST(every_command_has_help)
{
    static const char *const commands[] = {"keygen", "ping",  "request", "report", "audit",
                                           "version", "status", "members", "flows",  "queues",
                                           "dlq",    "probe", "ca",      "cert",   "policy"};
    char *all = NULL;
    char *argv0[] = {(char *)tk_bin("hubctl"), "--help", NULL};
    ck_assert_int_eq(tk_run(argv0, &all, 30000), 0);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char head[64];
        snprintf(head, sizeof head, "\n  %s ", commands[i]);
        ck_assert_msg(strstr(all, head), "hubctl --help lists no '%s'", commands[i]);
        char *out = NULL;
        char *argv[] = {(char *)tk_bin("hubctl"), (char *)commands[i], "--help", NULL};
        int rc = tk_run(argv, &out, 30000);
        char want[96];
        snprintf(want, sizeof want, "Usage: hubctl [--config FILE] %s", commands[i]);
        ck_assert_msg(rc == 0 && out && !strncmp(out, want, strlen(want)) &&
                          strstr(out, "Exit status"),
                      "hubctl %s --help: exit %d:\n%s", commands[i], rc, out ? out : "");
        free(out);
    }
    free(all);
}
END_TEST

TK_MAIN("probe",
        TK_CASE("probe", setup, teardown, 120, schema_refuses_a_broken_report, hub_not_running,
                wrong_hub_key_is_refused, passing_probe_validates, every_command_has_help))
