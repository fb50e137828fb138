/* End to end: the NDXP gateway (issue 20, item 4).
 *
 * The gateway (lth-ndxp.so in hub-adapter) runs as the population database's
 * member VN/GOV/BCA/CSDLQGDC behind a real hubd; a client member (the
 * one-stop shop, SDK over CURVE) calls citizen.lookup/v1 and
 * citizen.verify/v1 as usual; the gateway answers them through a mock
 * national data-sharing platform (tests/tools/mock_ndxp.py on 127.0.0.1):
 * HTTPS with the test's own CA, a client certificate required, OAuth2
 * client credentials with short-lived tokens, faults injected on demand.
 * Checked:
 * - a look-up returns only the fields the purpose may receive (and the
 *   platform is asked for no more); verify gives match / mismatch per field,
 *   not found and invalid keys as the population plugin does;
 * - a token about to expire is replaced before the call; a 401 gets a new
 *   token and the call succeeds; a 429 is retried after its Retry-After;
 *   503 that persists, and 429 that persists, give the caller a clear
 *   UNAVAILABLE answer (RECEIVER_OFFLINE, RATE_LIMITED) within the
 *   request's TTL, after retries;
 * - a wrong CA, a client certificate the platform does not trust and a
 *   wrong secret give FORBIDDEN answers that say what to check; missing TLS
 *   settings stop the gateway at start;
 * - the procedure system's identity checks (look-ups and verifications, the
 *   applicants found, unknown or mismatched) go through the gateway with
 *   nothing changed on its side;
 * - the gateway's log holds no personal ID number, name, token or secret.
 * Certificates and keys are made at test time (openssl). */
#include "domain.pb-c.h"
#include "hub_error.h"
#include "hubfix.h"
#include "lth_citizen.h"
#include "lth_lookup.h"
#include "lth_verify.h"
#include "testkit.h"
#include "tkcitizen.h"
#include "tksql.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POP "VN/GOV/BCA/CSDLQGDC"
#define TTHC "VN/GOV/HN-VP/TTHC"
#define DKKD "VN/GOV/HN-SKHDT/DKKD" /* enterprise registration's authority */
#define QHK "VN/GOV/HN-QHK/MOTCUA"  /* residence registration's authority */
#define CLIENT_ID "hn-lgsp-ndxp"
#define CLIENT_SECRET "ndxp-client-secret-5e4d3c2b1a"
#define SEED 1
#define CITIZENS 12
#define UNKNOWN_PID "001099012345" /* valid, not among the mock's citizens */
/* The gateway answers by the request's TTL; the reply's way back through the
 * hub may add this much on a loaded machine (hubd under valgrind). */
#define SLACK_MS 700

typedef Lth__Domain__V1__CitizenLookupResponse lresp_t;
typedef Lth__Domain__V1__CitizenVerifyResponse vresp_t;

static hubfix_t fix;
static pid_t mock, gateway;
static int mock_port, control_port;
static char gateway_log[PATH_MAX];

static const char disclosure[] =
    "disclose full_name,date_of_birth,sex,residence,household to " TTHC
    " for residence-registration\n"
    "confirm full_name,date_of_birth to " TTHC " for land-registration\n"
    "confirm full_name,date_of_birth,sex,residence to " TTHC " for enterprise-registration\n";

static void path_of(char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", fix.dir, name);
}

static lth_citizen_t citizen(size_t index)
{
    lth_citizen_t c;
    ck_assert_int_eq(lth_citizen_generate(SEED, index, &c), 0);
    return c;
}

/* Two CAs (the platform's, and another), the platform's certificate for
 * 127.0.0.1, the gateway's client certificate, and a client certificate
 * from the other CA. */
static void make_certificates(void)
{
    char script[4096];
    snprintf(script, sizeof script,
             "set -e; cd '%s'; umask 077\n"
             "k='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
             "openssl req -x509 $k -keyout ca.key -out ca.pem -days 2 -subj /CN=ndxp-ca 2>&1\n"
             "openssl req -x509 $k -keyout other.key -out other.pem -days 2 -subj /CN=other 2>&1\n"
             "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
             "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
             "cp client.ext stranger.ext\n"
             "for who in server client stranger; do\n"
             "  ca=ca; [ $who = stranger ] && ca=other\n"
             "  openssl req $k -keyout $who.key -out $who.csr -subj /CN=$who 2>&1\n"
             "  openssl x509 -req -in $who.csr -CA $ca.pem -CAkey $ca.key -CAcreateserial "
             "-out $who.pem -days 2 -extfile $who.ext 2>&1\n"
             "done\n",
             fix.dir);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    char *out = NULL;
    int rc = tk_run(argv, &out, 30000);
    ck_assert_msg(rc == 0, "openssl failed: %s", out ? out : "");
    free(out);
}

static void put_date(json_t *obj, const char *key, lth_date_t d)
{
    if (!d.year)
        return;
    char text[LTH_DATE_TEXT_LEN + 1];
    lth_date_format(d, text);
    json_object_set_new(obj, key, json_string(text));
}

static void put_text(json_t *obj, const char *key, const char *text)
{
    if (text[0])
        json_object_set_new(obj, key, json_string(text));
}

/* The mock's citizens: the population generator's first CITIZENS records, in
 * the platform's record form (ndxp_upstream.h). */
static void write_citizens(void)
{
    static const char *const rel[] = {"",        "head",       "spouse", "child",      "parent",
                                      "sibling", "grandchild", "other",  "grandparent"};
    json_t *list = json_array();
    for (size_t i = 0; i < CITIZENS; i++) {
        lth_citizen_t c = citizen(i);
        json_t *o = json_object();
        put_text(o, "personal_id", c.personal_id);
        put_text(o, "full_name", c.full_name);
        put_date(o, "date_of_birth", c.date_of_birth);
        json_object_set_new(o, "sex", json_string(c.sex == LTH_SEX_FEMALE ? "female" : "male"));
        put_text(o, "birth_province_code", c.birth_province_code);
        put_text(o, "residence", c.residence);
        put_text(o, "previous_residence", c.previous_residence);
        put_text(o, "temporary_residence", c.temporary_residence);
        put_date(o, "temporary_until", c.temporary_until);
        put_date(o, "created_on", c.created_on);
        put_date(o, "changed_on", c.changed_on);
        json_t *h = json_object();
        put_text(h, "head_personal_id", c.head_personal_id);
        put_text(h, "head_full_name", c.head_full_name);
        json_object_set_new(h, "relationship", json_string(rel[c.relationship]));
        json_object_set_new(o, "household", h);
        json_t *f = json_object();
        put_text(f, "father", c.father_name);
        put_text(f, "mother", c.mother_name);
        put_text(f, "spouse", c.spouse_name);
        json_object_set_new(o, "family", f);
        json_array_append_new(list, o);
    }
    json_t *doc = json_pack("{s:o}", "citizens", list);
    char path[PATH_MAX];
    path_of(path, "citizens.json");
    ck_assert_int_eq(json_dump_file(doc, path, 0), 0);
    json_decref(doc);
}

static void setup(void)
{
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, POP, TTHC, DKKD, QHK);
    hubfix_start(&fix);
    make_certificates();
    write_citizens();
    char path[PATH_MAX];
    path_of(path, "client.secret");
    tk_write_file(path, CLIENT_SECRET "\n");
    ck_assert_int_eq(chmod(path, 0600), 0);
    path_of(path, "wrong.secret");
    tk_write_file(path, "not-the-secret\n");
    ck_assert_int_eq(chmod(path, 0600), 0);
    path_of(path, "disclosure.conf");
    tk_write_file(path, disclosure);
    snprintf(gateway_log, sizeof gateway_log, "%s/adapter-VN.GOV.BCA.CSDLQGDC.log", fix.dir);
    mock = gateway = 0;
}

static void teardown(void)
{
    hubfix_cleanup(&fix);
}

static void start_mock(int token_ttl_s)
{
    char data[PATH_MAX], ttl[16], port_path[PATH_MAX];
    path_of(data, "citizens.json");
    snprintf(ttl, sizeof ttl, "%d", token_ttl_s);
    const char *extra[] = {
        "--data",      data,          "--client-id", CLIENT_ID, "--client-secret",
        CLIENT_SECRET, "--token-ttl", ttl,           NULL};
    mock = hubfix_start_tls_mock(&fix, "mock_ndxp.py", extra, &mock_port);
    path_of(port_path, "control_port");
    char *text = tk_read_file(port_path);
    control_port = text ? atoi(text) : 0;
    free(text);
    ck_assert_int_gt(control_port, 0);
}

static const char *secret_name = "client.secret";

/* The gateway's settings (the client secret from secret_name), with `tls`
 * and `extra` lines after. */
static void gateway_conf(char *out, size_t size, const char *tls, const char *extra)
{
    snprintf(out, size,
             "log_level = debug\n"
             "plugin.base_url = https://127.0.0.1:%d/api/csdldc/v1\n"
             "plugin.oauth2_token_url = https://127.0.0.1:%d/oauth2/token\n"
             "plugin.oauth2_client_id = " CLIENT_ID "\n"
             "plugin.oauth2_client_secret_file = %s/%s\n"
             "plugin.disclosure_file = %s/disclosure.conf\n"
             "plugin.timeout_ms = 1500\nplugin.retries = 6\nplugin.backoff_ms = 100\n"
             "plugin.backoff_max_ms = 400\nplugin.max_call_ms = 6000\n%s%s",
             mock_port, mock_port, fix.dir, secret_name, fix.dir, tls, extra ? extra : "");
}

static void standard_tls(char *out, size_t size)
{
    snprintf(out, size,
             "plugin.http_client_cert = %s/client.pem\nplugin.http_client_key = %s/client.key\n"
             "plugin.http_ca_file = %s/ca.pem\n",
             fix.dir, fix.dir, fix.dir);
}

static void start_gateway(const char *tls, const char *extra)
{
    if (gateway)
        ck_assert_int_eq(tk_stop(gateway), 0);
    char conf[4096], std[1024];
    if (!tls) {
        standard_tls(std, sizeof std);
        tls = std;
    }
    gateway_conf(conf, sizeof conf, tls, extra);
    gateway = hubfix_start_adapter(&fix, POP, "ndxp", conf);
}

/* ---- the mock's control port ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
    char **buf = user;
    size_t old = *buf ? strlen(*buf) : 0, n = size * nmemb;
    char *grown = realloc(*buf, old + n + 1);
    ck_assert_ptr_nonnull(grown);
    memcpy(grown + old, ptr, n);
    grown[old + n] = '\0';
    *buf = grown;
    return n;
}

static json_t *control(const char *path, const char *post)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", control_port, path);
    CURL *e = curl_easy_init();
    char *body = NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    if (post)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    ck_assert_msg(rc == CURLE_OK, "the mock's control port: %s", curl_easy_strerror(rc));
    json_t *doc = json_loads(body ? body : "", 0, NULL);
    free(body);
    ck_assert_ptr_nonnull(doc);
    return doc;
}

static long counter(const char *name)
{
    json_t *doc = control("/counters", NULL);
    long v = (long)json_integer_value(json_object_get(doc, name));
    json_decref(doc);
    return v;
}

static void fault(int status, int count, int retry_after)
{
    char body[128];
    if (retry_after >= 0)
        snprintf(body, sizeof body, "{\"status\":%d,\"count\":%d,\"retry_after\":%d}", status,
                 count, retry_after);
    else
        snprintf(body, sizeof body, "{\"status\":%d,\"count\":%d}", status, count);
    json_decref(control("/fault", body));
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- calls ---- */

static lresp_t *lookup(adp_client_t *c, const char *const *keys, size_t n, const char *purpose_code)
{
    Lth__Domain__V1__CitizenLookupRequest req = LTH__DOMAIN__V1__CITIZEN_LOOKUP_REQUEST__INIT;
    req.personal_ids = (char **)keys;
    req.n_personal_ids = n;
    req.purpose = "Đăng ký thường trú (test)";
    req.purpose_code = (char *)purpose_code;
    return tk_citizen_lookup(c, POP, &req, ADP_ONLINE_ONLY, 20000, NULL);
}

/* A look-up of citizen 0 for residence-registration that must succeed. */
static void lookup_ok(adp_client_t *c)
{
    lth_citizen_t want = citizen(0);
    const char *keys[] = {want.personal_id};
    lresp_t *r = lookup(c, keys, 1, "residence-registration");
    ck_assert_msg(r->status == LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK,
                  "status %d: %s", r->status, r->reason);
    ck_assert_uint_eq(r->n_results, 1);
    ck_assert_int_eq(r->results[0]->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_str_eq(r->results[0]->citizen->full_name, want.full_name);
    lth__domain__v1__citizen_lookup_response__free_unpacked(r, NULL);
}

/* A look-up that must fail as a whole; returns its reason (malloc'ed). */
static char *lookup_unavailable(adp_client_t *c)
{
    lth_citizen_t want = citizen(1);
    const char *keys[] = {want.personal_id};
    lresp_t *r = lookup(c, keys, 1, "residence-registration");
    ck_assert_int_eq(r->status, LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_UNAVAILABLE);
    ck_assert_uint_eq(r->n_results, 0);
    char *reason = strdup(r->reason);
    lth__domain__v1__citizen_lookup_response__free_unpacked(r, NULL);
    return reason;
}

typedef tk_declared_t declared_t;

static vresp_t *verify(adp_client_t *c, const declared_t *subjects, size_t n,
                       const char *purpose_code)
{
    return tk_citizen_verify(c, POP, subjects, n, "Đăng ký doanh nghiệp (test)", purpose_code,
                             ADP_ONLINE_ONLY, 20000, NULL);
}

/* The gateway's log (stopped first, so that it is complete) holds no
 * personal ID number, name, token or secret of the test. */
static void assert_log_is_clean(void)
{
    char *log = tk_stop_clean(gateway, "the gateway", gateway_log);
    gateway = 0;
    ck_assert_msg(!strstr(log, CLIENT_SECRET) && !strstr(log, "not-the-secret") &&
                      !strstr(log, "ndxptok_"),
                  "a secret or a token was logged: %s", log);
    ck_assert_msg(!strstr(log, UNKNOWN_PID), "a personal ID number was logged: %s", log);
    for (size_t i = 0; i < CITIZENS; i++) {
        lth_citizen_t c = citizen(i);
        ck_assert_msg(!strstr(log, c.personal_id) && !strstr(log, c.full_name) &&
                          !strstr(log, c.residence),
                      "citizen %zu's data was logged: %s", i, log);
    }
    free(log);
}

START_TEST(lookup_and_verify_go_through_the_platform)
{
    start_mock(3600);
    start_gateway(NULL, NULL);
    ck_assert(tk_wait_file_contains(
        gateway_log, "OAuth2 client credentials + client certificate + own CA file", 3000));
    adp_client_t *c = hubfix_connect(&fix, TTHC);

    /* Look-up for residence registration: the purpose's fields only. */
    lth_citizen_t a = citizen(0), b = citizen(1);
    const char *keys[] = {a.personal_id, UNKNOWN_PID, "12345", b.personal_id};
    lresp_t *r = lookup(c, keys, 4, "residence-registration");
    ck_assert_msg(r->status == LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK, "%s",
                  r->reason);
    ck_assert_uint_eq(r->n_results, 4);
    const Lth__Domain__V1__CitizenLookupResult *ra = r->results[0];
    ck_assert_int_eq(ra->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_str_eq(ra->citizen->personal_id, a.personal_id);
    ck_assert_str_eq(ra->citizen->full_name, a.full_name);
    ck_assert_uint_eq(ra->citizen->date_of_birth->year, (unsigned)a.date_of_birth.year);
    ck_assert_int_eq(ra->citizen->sex, (int)a.sex);
    ck_assert_str_eq(ra->citizen->residence->permanent_address, a.residence);
    ck_assert_str_eq(ra->citizen->household->head_full_name, a.head_full_name);
    ck_assert_int_eq(ra->citizen->household->relationship_to_head, (int)a.relationship);
    ck_assert_ptr_null(ra->citizen->family);
    ck_assert_str_eq(ra->citizen->birth_province_code, "");
    bool family_withheld = false;
    for (size_t i = 0; i < ra->n_withheld_fields; i++)
        family_withheld |= !strcmp(ra->withheld_fields[i], "family");
    ck_assert(family_withheld);
    ck_assert_int_eq(r->results[1]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND);
    ck_assert_int_eq(r->results[2]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY);
    ck_assert_int_eq(r->results[3]->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_str_eq(r->results[3]->citizen->full_name, b.full_name);
    lth__domain__v1__citizen_lookup_response__free_unpacked(r, NULL);
    /* The platform was asked for those fields only, and for three keys: the
     * invalid one never left the gateway. */
    json_t *counters = control("/counters", NULL);
    json_t *fields = json_object_get(counters, "last_fields");
    ck_assert_uint_eq(json_array_size(fields), 5);
    for (size_t i = 0; i < json_array_size(fields); i++)
        ck_assert_str_ne(json_string_value(json_array_get(fields, i)), "family");
    ck_assert_str_eq(json_string_value(json_object_get(counters, "last_purpose_code")),
                     "residence-registration");
    ck_assert_int_eq(json_integer_value(json_object_get(counters, "lookup")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(counters, "token")), 1);
    json_decref(counters);

    /* A purpose without an agreement gets nothing, and nothing is asked. */
    r = lookup(c, keys, 1, "judicial-record");
    ck_assert_int_eq(r->results[0]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_PERMITTED);
    lth__domain__v1__citizen_lookup_response__free_unpacked(r, NULL);
    ck_assert_int_eq(counter("lookup"), 3);

    /* Verify: match and mismatch per field; residence may not be compared
     * for land registration (WITHHELD); an unknown number is NOT_FOUND. */
    lth_date_t wrong = b.date_of_birth;
    wrong.year -= 1;
    declared_t subjects[] = {
        {a.personal_id, a.full_name, &a.date_of_birth, 0, a.residence},
        {b.personal_id, b.full_name, &wrong, 0, NULL},
        {UNKNOWN_PID, "Nguyễn Văn An", NULL, 0, NULL},
    };
    vresp_t *v = verify(c, subjects, 3, "land-registration");
    ck_assert_msg(v->status == LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_OK, "%s",
                  v->reason);
    ck_assert_uint_eq(v->n_results, 3);
    ck_assert_int_eq(v->results[0]->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_int_eq(v->results[0]->full_name, LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_MATCH);
    ck_assert_int_eq(v->results[0]->date_of_birth, LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_MATCH);
    ck_assert_int_eq(v->results[0]->residence, LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_WITHHELD);
    ck_assert(!v->results[0]->all_match);
    ck_assert_int_eq(v->results[1]->full_name, LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_MATCH);
    ck_assert_int_eq(v->results[1]->date_of_birth,
                     LTH__DOMAIN__V1__FIELD_CHECK__FIELD_CHECK_MISMATCH);
    ck_assert(!v->results[1]->all_match);
    ck_assert_int_eq(v->results[2]->status,
                     LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND);
    lth__domain__v1__citizen_verify_response__free_unpacked(v, NULL);
    /* Only what the purpose may compare, all right: all match. */
    declared_t right[] = {{b.personal_id, b.full_name, &b.date_of_birth, 0, NULL}};
    v = verify(c, right, 1, "land-registration");
    ck_assert(v->results[0]->all_match);
    lth__domain__v1__citizen_verify_response__free_unpacked(v, NULL);
    ck_assert_int_eq(counter("verify"), 4);
    adp_close(&c);
    assert_log_is_clean();
}
END_TEST

/* A look-up that the gateway cannot answer: the reason starts with
 * `prefix` and holds `says`, and it comes within ttl_ms (and SLACK_MS). */
static void assert_unavailable(adp_client_t *c, const char *prefix, const char *says,
                               uint64_t ttl_ms)
{
    uint64_t t0 = now_ms();
    char *reason = lookup_unavailable(c);
    uint64_t took = now_ms() - t0;
    ck_assert_msg(!strncmp(reason, prefix, strlen(prefix)) && strstr(reason, says), "%s", reason);
    free(reason);
    ck_assert_msg(took < ttl_ms + SLACK_MS, "the answer came after %llu ms, past %llu ms",
                  (unsigned long long)took, (unsigned long long)ttl_ms);
}

START_TEST(tokens_are_refreshed_and_faults_retried_within_the_ttl)
{
    start_mock(2); /* tokens live 2 s */
    start_gateway(NULL, NULL);
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    lookup_ok(c);
    ck_assert_int_eq(counter("token"), 1);

    /* Past the token's lifetime: a new one before the call; the platform
     * never sees an expired token. */
    tk_sleep_ms(2100);
    lookup_ok(c);
    ck_assert_int_eq(counter("token"), 2);
    ck_assert_int_eq(counter("expired_token"), 0);
    ck_assert_int_eq(counter("status_401"), 0);

    /* 401 once (the platform revoked the token): a new token, the call again. */
    long calls = counter("lookup");
    fault(401, 1, -1);
    lookup_ok(c);
    ck_assert_int_eq(counter("status_401"), 1);
    ck_assert_int_eq(counter("token"), 3);
    ck_assert_int_eq(counter("lookup"), calls + 2);

    /* 429 with Retry-After: 1: retried after a second, then 200. */
    calls = counter("lookup");
    fault(429, 1, 1);
    uint64_t t0 = now_ms();
    lookup_ok(c);
    uint64_t took = now_ms() - t0;
    ck_assert_msg(took >= 950, "the 429 was retried after %llu ms, before its Retry-After",
                  (unsigned long long)took);
    ck_assert_int_eq(counter("status_429"), 1);
    ck_assert_int_eq(counter("lookup"), calls + 2);

    /* 503 that persists: retries with backoff, then a clear answer within
     * the request's TTL (3 s). */
    adp_set_ttl(c, 3000);
    calls = counter("lookup");
    fault(503, 1000, -1);
    assert_unavailable(c, "RECEIVER_OFFLINE: ", "HTTP 503", 3000);
    ck_assert_int_ge(counter("lookup"), calls + 3);
    /* A TTL shorter than the retries take: they stop in time, and the
     * answer says so. */
    adp_set_ttl(c, 1000);
    assert_unavailable(c, "RECEIVER_OFFLINE: ", "time ran out", 1000);
    json_decref(control("/reset", "{}"));
    adp_set_ttl(c, 3000);

    /* 429 that persists, Retry-After beyond the TTL: RATE_LIMITED at once. */
    fault(429, 1000, 10);
    assert_unavailable(c, "RATE_LIMITED: ", "try again in 10 s", 3000);
    json_decref(control("/reset", "{}"));

    /* And the platform back: answers again. */
    adp_set_ttl(c, 0);
    lookup_ok(c);
    adp_close(&c);
    assert_log_is_clean();
}
END_TEST

/* hub-adapter refuses to start the gateway with `conf` and says `why`. */
static void assert_refused(const char *conf, const char *why)
{
    char *out = hubfix_adapter_refused(&fix, POP, "ndxp", conf);
    ck_assert_msg(strstr(out, why), "wanted '%s' in: %s\nconfig:\n%s", why, out, conf);
    ck_assert(!strstr(out, CLIENT_SECRET));
    free(out);
}

START_TEST(tls_and_credentials_problems_are_clear)
{
    start_mock(3600);
    char conf[4096], tls[1024];
    /* No client certificate, no CA: refused at start. */
    gateway_conf(conf, sizeof conf, "", NULL);
    assert_refused(conf, "the national platform requires mutual TLS");
    snprintf(tls, sizeof tls, "plugin.http_ca_file = %s/ca.pem\n", fix.dir);
    gateway_conf(conf, sizeof conf, tls, NULL);
    assert_refused(conf, "plugin.http_client_cert");
    standard_tls(tls, sizeof tls);
    gateway_conf(conf, sizeof conf, tls, NULL);
    char *https = strstr(conf, "https://"); /* the base URL's */
    memmove(https + 4, https + 5, strlen(https + 5) + 1);
    assert_refused(conf, "plugin.base_url is required");
    gateway_conf(conf, sizeof conf, tls, "plugin.http_auth = bearer\n");
    assert_refused(conf, "OAuth2 client credentials only");

    adp_client_t *c = hubfix_connect(&fix, TTHC);
    /* The wrong CA: the platform's certificate is not trusted. */
    snprintf(tls, sizeof tls,
             "plugin.http_client_cert = %s/client.pem\nplugin.http_client_key = %s/client.key\n"
             "plugin.http_ca_file = %s/other.pem\n",
             fix.dir, fix.dir, fix.dir);
    start_gateway(tls, NULL);
    char *reason = lookup_unavailable(c);
    ck_assert_msg(!strncmp(reason, "FORBIDDEN: TLS with", 19) && strstr(reason, "http_ca_file"),
                  "%s", reason);
    free(reason);
    /* A client certificate the platform does not trust. */
    snprintf(tls, sizeof tls,
             "plugin.http_client_cert = %s/stranger.pem\n"
             "plugin.http_client_key = %s/stranger.key\nplugin.http_ca_file = %s/ca.pem\n",
             fix.dir, fix.dir, fix.dir);
    start_gateway(tls, NULL);
    reason = lookup_unavailable(c);
    ck_assert_msg(!strncmp(reason, "FORBIDDEN: TLS with", 19) && strstr(reason, "http_client_cert"),
                  "%s", reason);
    free(reason);
    ck_assert_int_eq(counter("token"), 0);
    /* A wrong secret: the token endpoint refuses it. */
    secret_name = "wrong.secret";
    start_gateway(NULL, NULL);
    secret_name = "client.secret";
    reason = lookup_unavailable(c);
    ck_assert_msg(!strncmp(reason, "FORBIDDEN: ", 11) && strstr(reason, "HTTP 401") &&
                      strstr(reason, "oauth2_client_secret_file"),
                  "%s", reason);
    ck_assert(!strstr(reason, "not-the-secret"));
    free(reason);
    ck_assert_int_eq(counter("token"), 0);
    ck_assert_int_eq(counter("lookup"), 0);
    adp_close(&c);
    assert_log_is_clean();
}
END_TEST

START_TEST(the_procedure_systems_checks_go_through_the_gateway)
{
    start_mock(3600);
    start_gateway(NULL, NULL);
    /* The one-stop shop as usual: its identity checks ask VN/GOV/BCA/CSDLQGDC,
     * which is the gateway. Applicants come from the same generator as the
     * mock's citizens; some are unknown, some declare a wrong birth date. */
    char db[PATH_MAX], status[PATH_MAX], conf[4 * PATH_MAX + 512];
    path_of(db, "procedure.db");
    path_of(status, "catalogue.status");
    snprintf(conf, sizeof conf,
             "tick_ms = 100\nplugin.db = %s\nplugin.dossiers = 12\nplugin.rate_per_tick = 12\n"
             "plugin.population_citizens = %d\nplugin.invalid_percent = 0\n"
             "plugin.unknown_percent = 25\nplugin.mismatch_percent = 40\n"
             "plugin.procedures = SYN-1.000004,SYN-1.000005\n"
             "plugin.portal = none\nplugin.report = none\n"
             "plugin.catalogue_file = %s/deploy/catalogue-hn.tsv\nplugin.catalogue_status = %s\n",
             db, CITIZENS, getenv("HUB_SOURCE_DIR"), status);
    pid_t procedure = hubfix_start_adapter(&fix, TTHC, "procedure", conf);
    long long pending = -1;
    for (int i = 0; i < 300 && pending != 0; i++) {
        tk_sleep_ms(100);
        pending = tk_sql_int(db, "SELECT count(*) - count(identity) FROM dossier");
        if (tk_sql_int(db, "SELECT count(*) FROM dossier") < 12)
            pending = -1;
    }
    ck_assert_msg(pending == 0, "identity checks still pending");
    ck_assert_int_eq(tk_stop(procedure), 0);
    long long found = tk_sql_int(db, "SELECT count(*) FROM dossier WHERE identity = 'FOUND'");
    long long not_found =
        tk_sql_int(db, "SELECT count(*) FROM dossier WHERE identity = 'NOT_FOUND'");
    long long mismatch = tk_sql_int(db, "SELECT count(*) FROM dossier WHERE identity = 'MISMATCH'");
    ck_assert_msg(found > 0 && not_found > 0 && mismatch > 0 && found + not_found + mismatch == 12,
                  "found=%lld not_found=%lld mismatch=%lld", found, not_found, mismatch);
    ck_assert_int_gt(counter("lookup"), 0);
    ck_assert_int_gt(counter("verify"), 0);
    assert_log_is_clean();
}
END_TEST

TK_MAIN("e2e_ndxp", TK_CASE("ndxp", setup, teardown, 180, lookup_and_verify_go_through_the_platform,
                            tokens_are_refreshed_and_faults_retried_within_the_ttl,
                            tls_and_credentials_problems_are_clear,
                            the_procedure_systems_checks_go_through_the_gateway))
