/* End to end: "who looked me up?" A real hubd, the population adapter
 * (lth-population.so in hub-adapter) with its access register, and two
 * requesting agencies looking up two citizens over CURVE. The data owner's
 * `hubctl audit access` (and the plugin's JSON endpoint) lists exactly one
 * citizen's look-ups, with agency names, purposes and dossiers; the
 * register holds neither personal ID in clear; another salt finds nothing. */
#define _GNU_SOURCE /* memmem */
#include "domain.pb-c.h"
#include "hubfix.h"
#include "lth_citizen.h"
#include "lth_lookup.h"
#include "lth_verify.h"
#include "testkit.h"
#include "tkcitizen.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define POP "VN/GOV/BCA/CSDLQGDC"
#define TTHC "VN/GOV/HN-VP/TTHC"      /* permitted consumer */
#define HOTICH "VN/GOV/HN-STP/HOTICH" /* known to the hub, not permitted */
#define TOKEN "access-token-0123456789abcdef"

static hubfix_t fix;
static char reg_path[PATH_MAX], salt_path[PATH_MAX], members_path[PATH_MAX];
static lth_citizen_t a, b;

static void write_private(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, 0600), 0);
}

/* Neither the register nor its write-ahead log holds text (what: what it
 * is, for the failure). */
static void assert_not_in_register(const char *text, const char *what)
{
    const char *suffixes[] = {"", "-wal"};
    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s%s", reg_path, suffixes[i]);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        char *raw = tk_read_file(path);
        ck_assert_ptr_nonnull(raw);
        ck_assert_msg(!memmem(raw, (size_t)st.st_size, text, strlen(text)), "%s is in %s", what,
                      path);
        free(raw);
    }
}

static void setup(void)
{
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, POP, TTHC, HOTICH);
    hubfix_start(&fix);
    snprintf(reg_path, sizeof reg_path, "%s/access.sqlite", fix.dir);
    snprintf(salt_path, sizeof salt_path, "%s/access.salt", fix.dir);
    snprintf(members_path, sizeof members_path, "%s/members.tsv", fix.dir);
    char token_path[PATH_MAX];
    snprintf(token_path, sizeof token_path, "%s/access.token", fix.dir);
    write_private(token_path, TOKEN "\n", strlen(TOKEN) + 1);
    tk_write_file(members_path,
                  "member_id\tname\tunit\tcontact\n" TTHC
                  "\tVăn phòng UBND Thành phố Hà Nội\tHệ thống giải quyết TTHC\t\n" HOTICH
                  "\tSở Tư pháp Hà Nội\tHộ tịch\t\n");
    char conf[2048];
    snprintf(conf, sizeof conf,
             "plugin.db = %s/pop.db\nplugin.citizens = 500\nplugin.allowed_consumers = " TTHC
             "\nplugin.access_register = %s\nplugin.access_salt = %s\n"
             "plugin.access_listen = 127.0.0.1:0\nplugin.access_token_file = %s\n"
             "plugin.access_port_file = %s/access.port\ntick_ms = 50\n",
             fix.dir, reg_path, salt_path, token_path, fix.dir);
    hubfix_start_adapter(&fix, POP, "population", conf);
    ck_assert_int_eq(lth_citizen_generate(1, 7, &a), 0);
    ck_assert_int_eq(lth_citizen_generate(1, 8, &b), 0);
}

static void teardown(void)
{
    hubfix_cleanup(&fix);
}

static void lookup(adp_client_t *c, const char *const *keys, size_t n, const char *purpose,
                   const char *dossier)
{
    Lth__Domain__V1__CitizenLookupRequest req = LTH__DOMAIN__V1__CITIZEN_LOOKUP_REQUEST__INIT;
    req.personal_ids = (char **)keys;
    req.n_personal_ids = n;
    req.purpose = (char *)purpose;
    req.dossier_code = (char *)dossier;
    lth__domain__v1__citizen_lookup_response__free_unpacked(
        tk_citizen_lookup(c, POP, &req, 0, 10000, NULL), NULL);
}

/* The look-ups the test makes: a 4 times (twice alone by TTHC, once with
 * b, once by HOTICH, refused), b twice. */
static void make_lookups(void)
{
    adp_client_t *tthc = hubfix_connect(&fix, TTHC);
    adp_client_t *hotich = hubfix_connect(&fix, HOTICH);
    const char *only_a[] = {a.personal_id}, *only_b[] = {b.personal_id},
               *both[] = {a.personal_id, b.personal_id};
    lookup(tthc, only_a, 1, "Đăng ký thường trú", "000.00.01.H26-261203-0001");
    lookup(tthc, only_b, 1, "Cấp giấy phép kinh doanh", "000.00.01.H26-261203-0002");
    lookup(tthc, only_a, 1, "Đăng ký thường trú", "000.00.01.H26-261203-0003");
    lookup(tthc, both, 2, "Xác minh nhân thân", "");
    lookup(hotich, only_a, 1, "Trích lục khai sinh", "HT-0004");
    adp_close(&tthc);
    adp_close(&hotich);
}

static int access_cmd(char **out, const char *citizen, const char *salt, const char *extra1,
                      const char *extra2)
{
    char *argv[] = {(char *)tk_bin("hubctl"),
                    "audit",
                    "access",
                    "--citizen",
                    (char *)citizen,
                    "--salt",
                    (char *)salt,
                    "--register",
                    reg_path,
                    "--members",
                    members_path,
                    (char *)extra1,
                    (char *)extra2,
                    NULL};
    return tk_run(argv, out, 20000);
}

static size_t count_of(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

START_TEST(query_lists_exactly_one_citizens_lookups)
{
    make_lookups();
    char *out = NULL;
    int rc = access_cmd(&out, a.personal_id, salt_path, NULL, NULL);
    ck_assert_msg(rc == 0, "hubctl audit access failed (%d): %s", rc, out ? out : "");
    ck_assert_msg(strstr(out, "4 look-ups of this person"), "%s", out);
    ck_assert_uint_eq(count_of(out, "\n    purpose: "), 4);
    ck_assert_uint_eq(count_of(out, TTHC " (Văn phòng UBND Thành phố Hà Nội)"), 3);
    ck_assert_uint_eq(count_of(out, HOTICH " (Sở Tư pháp Hà Nội)"), 1);
    ck_assert_msg(
        strstr(out, "purpose: Đăng ký thường trú\n    dossier: 000.00.01.H26-261203-0001"), "%s",
        out);
    ck_assert_msg(strstr(out, "dossier: 000.00.01.H26-261203-0003"), "%s", out);
    ck_assert_msg(strstr(out, "purpose: Xác minh nhân thân\n    dossier: -"), "%s", out);
    ck_assert_msg(!strstr(out, "H26-261203-0002"), "b's look-up listed for a: %s", out);
    ck_assert_uint_eq(count_of(out, "outcome: FOUND"), 3);
    ck_assert_uint_eq(count_of(out, "outcome: NOT_PERMITTED"), 1);
    ck_assert_msg(!strstr(out, a.personal_id), "the ID was printed");
    free(out);

    rc = access_cmd(&out, b.personal_id, salt_path, "--json", NULL);
    ck_assert_int_eq(rc, 0);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "count")), 2);
    json_t *first = json_array_get(json_object_get(j, "accesses"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(first, "requester")), TTHC);
    ck_assert_str_eq(json_string_value(json_object_get(first, "requester_name")),
                     "Văn phòng UBND Thành phố Hà Nội");
    ck_assert_str_eq(json_string_value(json_object_get(first, "dossier_code")),
                     "000.00.01.H26-261203-0002");
    json_decref(j);
    free(out);

    /* A period before the look-ups holds none of them. */
    rc = access_cmd(&out, a.personal_id, salt_path, "--to", "2020-01-01");
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(strstr(out, "0 look-ups of this person"), "%s", out);
    free(out);
}
END_TEST

/* citizen.verify/v1 tells the caller match or mismatch, not the record; it
 * is a use of the person's data all the same, and is registered like a
 * look-up, with the outcome and never the declared values. */
START_TEST(verifications_are_registered_too)
{
    adp_client_t *tthc = hubfix_connect(&fix, TTHC);
    Lth__Domain__V1__DeclaredIdentity da = LTH__DOMAIN__V1__DECLARED_IDENTITY__INIT,
                                      db = LTH__DOMAIN__V1__DECLARED_IDENTITY__INIT;
    da.personal_id = a.personal_id;
    da.full_name = a.full_name;
    db.personal_id = b.personal_id;
    db.full_name = "Tên Không Đúng";
    Lth__Domain__V1__DeclaredIdentity *subjects[] = {&da, &db};
    Lth__Domain__V1__CitizenVerifyRequest req = LTH__DOMAIN__V1__CITIZEN_VERIFY_REQUEST__INIT;
    req.subjects = subjects;
    req.n_subjects = 2;
    req.purpose = "Đăng ký thành lập doanh nghiệp";
    req.dossier_code = "000.00.01.H26-261203-0009";
    size_t len = lth__domain__v1__citizen_verify_request__get_packed_size(&req);
    uint8_t *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    lth__domain__v1__citizen_verify_request__pack(&req, buf);
    adp_reply_t reply;
    int rc = adp_request(tthc, POP, LTH_SERVICE_CITIZEN_VERIFY, LTH_VERIFY_REQUEST_TYPE, buf, len,
                         0, 10000, &reply);
    free(buf);
    ck_assert_msg(rc == 0, "verify failed: %s", adp_last_error(tthc));
    adp_reply_free(&reply);
    adp_close(&tthc);
    char *out = NULL;
    ck_assert_int_eq(access_cmd(&out, a.personal_id, salt_path, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "1 look-up of this person") &&
                      strstr(out, "service: citizen.verify/v1") &&
                      strstr(out, "dossier: 000.00.01.H26-261203-0009") &&
                      strstr(out, "outcome: VERIFIED_MATCH"),
                  "%s", out);
    free(out);
    ck_assert_int_eq(access_cmd(&out, b.personal_id, salt_path, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "outcome: VERIFIED_MISMATCH") && !strstr(out, "Không Đúng"), "%s",
                  out);
    free(out);
    /* The register (and its write-ahead log) hold neither the IDs nor the
     * declared name. */
    assert_not_in_register("Không Đúng", "a declared value");
    assert_not_in_register(a.personal_id, "a's ID");
}
END_TEST

START_TEST(register_holds_no_id_and_a_wrong_salt_finds_nothing)
{
    make_lookups();
    /* The register (and its write-ahead log) never hold an ID in clear. */
    assert_not_in_register(a.personal_id, "a's ID");
    assert_not_in_register(b.personal_id, "b's ID");
    struct stat reg_st;
    ck_assert_int_eq(stat(reg_path, &reg_st), 0);
    ck_assert_uint_eq(reg_st.st_mode & 077, 0); /* it names agencies and dossiers */
    char wrong[PATH_MAX];
    snprintf(wrong, sizeof wrong, "%s/wrong.salt", fix.dir);
    uint8_t bytes[32];
    for (int i = 0; i < 32; i++)
        bytes[i] = (uint8_t)(i * 7 + 1);
    write_private(wrong, bytes, sizeof bytes);
    char *out = NULL;
    int rc = access_cmd(&out, a.personal_id, wrong, NULL, NULL);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "is not the salt") && !strstr(out, "purpose:"), "%s", out);
    free(out);
    /* A salt file others may read is refused. */
    ck_assert_int_eq(chmod(salt_path, 0644), 0);
    rc = access_cmd(&out, a.personal_id, salt_path, NULL, NULL);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "chmod 600"), "%s", out);
    free(out);
    ck_assert_int_eq(chmod(salt_path, 0600), 0);
}
END_TEST

static size_t collect(char *data, size_t size, size_t n, void *user)
{
    char **buf = user;
    size_t old = *buf ? strlen(*buf) : 0;
    char *grown = realloc(*buf, old + size * n + 1);
    ck_assert_ptr_nonnull(grown);
    memcpy(grown + old, data, size * n);
    grown[old + size * n] = '\0';
    *buf = grown;
    return size * n;
}

static long post(const char *body, const char *auth, char **out)
{
    char port_path[PATH_MAX], url[128];
    snprintf(port_path, sizeof port_path, "%s/access.port", fix.dir);
    ck_assert(tk_wait_file(port_path, 5000));
    char *port = tk_read_file(port_path);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/access", atoi(port));
    free(port);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth)
        h = curl_slist_append(h, auth);
    *out = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

START_TEST(json_endpoint_answers_behind_the_token)
{
    make_lookups();
    char body[256], *out = NULL;
    snprintf(body, sizeof body, "{\"citizen\":\"%s\",\"from\":\"2020-01-01\"}", a.personal_id);
    ck_assert_int_eq(post(body, NULL, &out), 401);
    free(out);
    ck_assert_int_eq(post(body, "Authorization: Bearer wrong-token-0123456789", &out), 401);
    free(out);
    ck_assert_int_eq(post(body, "Authorization: Bearer " TOKEN, &out), 200);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_msg(j != NULL, "%s", out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "count")), 4);
    ck_assert_msg(!strstr(out, a.personal_id), "the answer repeats the ID");
    json_decref(j);
    free(out);
    ck_assert_int_eq(post("{\"from\":\"2020-01-01\"}", "Authorization: Bearer " TOKEN, &out), 400);
    free(out);
}
END_TEST

TK_MAIN_PREPARED(tk_prepare_curl, "access",
                 TK_CASE("access", setup, teardown, 120, query_lists_exactly_one_citizens_lookups,
                         verifications_are_registered_too,
                         register_holds_no_id_and_a_wrong_salt_finds_nothing,
                         json_endpoint_answers_behind_the_token))
