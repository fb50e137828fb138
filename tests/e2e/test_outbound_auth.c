/* End to end: the HTTP bridge's outbound authentication (issue 20, item 6).
 *
 * The land-registry member (VN/GOV/HN-STNMT/DATDAI) runs the bridge in front
 * of a mock outside system (tests/tools/mock_outside.py, on 127.0.0.1): HTTPS
 * with the test's own CA, a client certificate required, an OAuth2 token
 * endpoint and a service that wants a bearer token. An SDK client calls the
 * bridge's offered service through a real hubd. Checked:
 * - OAuth2 client credentials with a client certificate: one token for
 *   several calls, a new one shortly before it expires, and a new one at
 *   once when the system answers 401 for a revoked token — the caller sees
 *   200 each time;
 * - a static bearer token;
 * - a wrong client secret and a missing client certificate: a problem reply
 *   that says why;
 * - settings refused at start with what to write; no secret or token in the
 *   bridge's log. Certificates and keys are made at test time (openssl). */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LAND "VN/GOV/HN-STNMT/DATDAI"
#define HOTICH "VN/GOV/HN-STP/HOTICH"
#define CLIENT_ID "datdai-bridge"
#define CLIENT_SECRET "client-secret-9f8e7d6c5b4a"
#define BEARER "static-bearer-token-0123456789"
#define TTL_S 3

static hubfix_t fix;
static pid_t mock, bridge;
static int mock_port;
static char bridge_log[PATH_MAX], events[PATH_MAX];

static void path_of(char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", fix.dir, name);
}

static void write_secret(const char *name, const char *text)
{
    char path[PATH_MAX];
    path_of(path, name);
    tk_write_file(path, text);
    ck_assert_int_eq(chmod(path, 0600), 0);
}

/* A CA, the system's certificate for 127.0.0.1 and the bridge's client
 * certificate, by the openssl command. */
static void make_certificates(void)
{
    char script[4096];
    snprintf(script, sizeof script,
             "set -e; cd '%s'; umask 077\n"
             "k='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
             "openssl req -x509 $k -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>&1\n"
             "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
             "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
             "for who in server client; do\n"
             "  openssl req $k -keyout $who.key -out $who.csr -subj /CN=$who 2>&1\n"
             "  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out $who.pem -days 2 -extfile $who.ext 2>&1\n"
             "done\n",
             fix.dir);
    tk_sh_ok("openssl", script, 30000);
}

static void setup(void)
{
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, LAND, HOTICH);
    hubfix_start(&fix);
    make_certificates();
    write_secret("client.secret", CLIENT_SECRET "\n");
    write_secret("wrong.secret", "not-the-secret\n");
    write_secret("bearer.token", BEARER "\n");
    path_of(events, "events");
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", TTL_S);
    const char *extra[] = {"--client-id", CLIENT_ID,  "--client-secret",
                           CLIENT_SECRET, "--bearer", BEARER,
                           "--ttl",       ttl,        NULL};
    mock = hubfix_start_tls_mock(&fix, "mock_outside.py", extra, &mock_port);
    snprintf(bridge_log, sizeof bridge_log, "%s/adapter-VN.GOV.HN-STNMT.DATDAI.log", fix.dir);
    bridge = 0;
}

static void teardown(void)
{
    hubfix_cleanup(&fix);
}

/* The bridge's settings common to every case, then `auth`. */
static void bridge_conf(char *out, size_t size, const char *auth)
{
    snprintf(out, size,
             "tick_ms = 10\nlog_level = debug\nplugin.listen = off\n"
             "plugin.http_timeout_ms = 3000\nplugin.http_retries = 0\n"
             "plugin.offers = svc\n"
             "plugin.offer.svc = land.query/v1 https://127.0.0.1:%d/service\n"
             "plugin.http_ca_file = %s/ca.pem\n%s",
             mock_port, fix.dir, auth);
}

static void start_bridge(const char *auth)
{
    if (bridge)
        ck_assert_int_eq(tk_stop(bridge), 0);
    char conf[4096];
    bridge_conf(conf, sizeof conf, auth);
    bridge = hubfix_start_adapter(&fix, LAND, "httpbridge", conf);
}

/* Calls the offered service; returns the reply's payload (malloc'ed). */
static char *call(adp_client_t *c, const char **ctype_out)
{
    static char ctype[128];
    adp_reply_t reply;
    int rc = adp_request(c, LAND, "land.query/v1", "application/json", "{\"parcel\":\"HN-1\"}", 17,
                         0, 20000, &reply);
    ck_assert_msg(rc == 0, "request failed: %s", adp_last_error(c));
    char *text = strndup((const char *)reply.payload, reply.payload_len);
    snprintf(ctype, sizeof ctype, "%s", reply.content_type);
    *ctype_out = ctype;
    adp_reply_free(&reply);
    return text;
}

static void assert_ok(adp_client_t *c)
{
    const char *ctype = NULL;
    char *text = call(c, &ctype);
    ck_assert_msg(!strcmp(ctype, "application/json") && strstr(text, "\"ok\"") &&
                      strstr(text, "true") && strstr(text, "HN-1"),
                  "%s: %s", ctype, text);
    free(text);
}

/* How many lines of the mock's events file are exactly `line`. */
static int count_events(const char *line)
{
    char *text = tk_read_file(events);
    int n = 0;
    size_t len = strlen(line);
    for (const char *p = text; p && (p = strstr(p, line)) != NULL; p += len)
        if ((p == text || p[-1] == '\n') && p[len] == '\n')
            n++;
    free(text);
    return n;
}

static void assert_log_has_no_secret(void)
{
    char *log = tk_stop_clean(bridge, "the bridge", bridge_log);
    bridge = 0;
    ck_assert_msg(!strstr(log, CLIENT_SECRET) && !strstr(log, BEARER) && !strstr(log, "tok-"),
                  "a secret or a token was logged: %s", log);
    free(log);
}

START_TEST(oauth2_token_is_cached_refreshed_and_renewed)
{
    char auth[1024];
    snprintf(auth, sizeof auth,
             "plugin.http_auth = oauth2\n"
             "plugin.oauth2_token_url = https://127.0.0.1:%d/token\n"
             "plugin.oauth2_client_id = " CLIENT_ID "\n"
             "plugin.oauth2_client_secret_file = %s/client.secret\n"
             "plugin.oauth2_scope = land.read\n"
             "plugin.http_client_cert = %s/client.pem\nplugin.http_client_key = %s/client.key\n",
             mock_port, fix.dir, fix.dir, fix.dir);
    start_bridge(auth);
    ck_assert(tk_wait_file_contains(
        bridge_log, "outbound authentication: OAuth2 client credentials + client certificate",
        3000));
    adp_client_t *c = hubfix_connect(&fix, HOTICH);
    /* One token for three calls. */
    for (int i = 0; i < 3; i++)
        assert_ok(c);
    ck_assert_int_eq(count_events("token 1"), 1);
    ck_assert_int_eq(count_events("service 200"), 3);
    ck_assert_int_eq(count_events("token 2"), 0);
    /* Past the token's lifetime (less a margin): a new one before the call,
     * so the system never sees an expired token. */
    tk_sleep_ms(TTL_S * 1000);
    assert_ok(c);
    ck_assert_int_eq(count_events("token 2"), 1);
    ck_assert_int_eq(count_events("service 401"), 0);
    /* The system revokes the token: 401, a new token, the call again. */
    tk_sleep_ms(20);
    char revoke[PATH_MAX];
    path_of(revoke, "revoke");
    tk_write_file(revoke, "now\n");
    assert_ok(c);
    ck_assert_int_eq(count_events("service 401"), 1);
    ck_assert_int_eq(count_events("token 3"), 1);
    ck_assert_int_eq(count_events("service 200"), 5);
    adp_close(&c);
    assert_log_has_no_secret();
}
END_TEST

START_TEST(bearer_token_and_refusals)
{
    char auth[1024];
    snprintf(auth, sizeof auth,
             "plugin.http_auth = bearer\nplugin.http_token_file = %s/bearer.token\n"
             "plugin.http_client_cert = %s/client.pem\nplugin.http_client_key = %s/client.key\n",
             fix.dir, fix.dir, fix.dir);
    start_bridge(auth);
    adp_client_t *c = hubfix_connect(&fix, HOTICH);
    assert_ok(c);
    ck_assert_int_eq(count_events("service 200"), 1);
    ck_assert_int_eq(count_events("token 1"), 0);

    /* A wrong client secret: the token endpoint says so, and so does the
     * problem reply; the service is never called. */
    snprintf(auth, sizeof auth,
             "plugin.http_auth = oauth2\n"
             "plugin.oauth2_token_url = https://127.0.0.1:%d/token\n"
             "plugin.oauth2_client_id = " CLIENT_ID "\n"
             "plugin.oauth2_client_secret_file = %s/wrong.secret\n"
             "plugin.http_client_cert = %s/client.pem\nplugin.http_client_key = %s/client.key\n",
             mock_port, fix.dir, fix.dir, fix.dir);
    start_bridge(auth);
    const char *ctype = NULL;
    char *text = call(c, &ctype);
    ck_assert_str_eq(ctype, "application/problem+json");
    ck_assert_msg(strstr(text, "OAuth2 token endpoint answered HTTP 401 (invalid_client)") &&
                      strstr(text, "plugin.oauth2_client_secret_file"),
                  "%s", text);
    ck_assert(!strstr(text, "not-the-secret"));
    free(text);
    ck_assert_int_eq(count_events("token 401"), 1);
    ck_assert_int_eq(count_events("service 200"), 1);

    /* No client certificate: the system's TLS handshake refuses the bridge. */
    snprintf(auth, sizeof auth,
             "plugin.http_auth = bearer\nplugin.http_token_file = %s/bearer.token\n", fix.dir);
    start_bridge(auth);
    text = call(c, &ctype);
    ck_assert_str_eq(ctype, "application/problem+json");
    ck_assert_msg(strstr(text, "cannot reach the system"), "%s", text);
    free(text);
    ck_assert_int_eq(count_events("service 200"), 1);
    adp_close(&c);
    assert_log_has_no_secret();
}
END_TEST

/* The bridge refuses to start with `auth` and says `why`. */
static void assert_refused(const char *auth, const char *why)
{
    char conf[4096];
    bridge_conf(conf, sizeof conf, auth);
    char *out = hubfix_adapter_refused(&fix, LAND, "httpbridge", conf);
    ck_assert_msg(strstr(out, why), "wanted '%s' in: %s", why, out);
    free(out);
}

START_TEST(bad_settings_are_refused)
{
    char line[1024], open_secret[PATH_MAX];
    assert_refused("plugin.http_auth = basic\n", "plugin.http_auth must be none, bearer or oauth2");
    assert_refused("plugin.http_auth = bearer\n", "needs plugin.http_token_file");
    assert_refused("plugin.http_auth = oauth2\n", "needs plugin.oauth2_token_url");
    assert_refused("plugin.http_auth = oauth2\nplugin.oauth2_token_url = https://x/token\n",
                   "needs plugin.oauth2_client_id");
    snprintf(line, sizeof line, "plugin.http_client_cert = %s/client.pem\n", fix.dir);
    assert_refused(line, "plugin.http_client_cert and plugin.http_client_key go together");
    path_of(open_secret, "open.secret");
    tk_write_file(open_secret, CLIENT_SECRET "\n"); /* 0644 */
    snprintf(line, sizeof line,
             "plugin.http_auth = oauth2\nplugin.oauth2_token_url = https://x/token\n"
             "plugin.oauth2_client_id = a\nplugin.oauth2_client_secret_file = %s\n",
             open_secret);
    assert_refused(line, "can be read by other users: chmod 600 it");
    snprintf(line, sizeof line,
             "plugin.http_auth = bearer\nplugin.http_token_file = %s/none.token\n", fix.dir);
    assert_refused(line, "plugin.http_token_file: cannot read");
}
END_TEST

TK_MAIN("e2e_outbound_auth",
        TK_CASE("outbound_auth", setup, teardown, 120, oauth2_token_is_cached_refreshed_and_renewed,
                bearer_token_and_refusals, bad_settings_are_refused))
