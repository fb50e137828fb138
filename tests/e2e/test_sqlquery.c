/* End to end: the generic SQL look-up adapter (lth-sqlquery.so in
 * hub-adapter) behind a real hubd, for the business registry
 * (VN/GOV/HN-SKHDT/DKKD): services answered by configured SELECTs with named
 * parameters, asked by an SDK client and, through the HTTP bridge, by curl;
 * refusals for bad parameters; queries that are not one SELECT refused at
 * start; no parameter value in the log. */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"
#include "tksql.h"

#include <check.h>
#include <stdbool.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DKKD "VN/GOV/HN-SKHDT/DKKD"   /* the registry, answered by sqlquery */
#define HOTICH "VN/GOV/HN-STP/HOTICH" /* an SDK client */
#define TTHC "VN/GOV/HN-VP/TTHC"      /* an HTTP bridge, for curl */
#define SECRET_CODE "0101999888"      /* a value asked for, which the log must not hold */

static hubfix_t fix;
static pid_t adapter;
static char db_path[PATH_MAX], adapter_log[PATH_MAX];

static void make_db(void)
{
    tk_sql_create(
        db_path,
        "CREATE TABLE businesses (code TEXT PRIMARY KEY, name TEXT, ward TEXT, capital INTEGER);"
        "INSERT INTO businesses VALUES ('0101234567', 'Công ty TNHH Sen Vàng', 'Láng Hạ', "
        "  500000000);"
        "INSERT INTO businesses VALUES ('0102345678', 'Công ty CP Hồ Tây', 'Láng Hạ', NULL);"
        "INSERT INTO businesses VALUES ('0103456789', 'HTX Bát Tràng', 'Láng Hạ', 1000);"
        "INSERT INTO businesses VALUES ('" SECRET_CODE "', 'Công ty Bí Mật', 'Bến Nghé', 1);");
}

static const char *queries(void)
{
    static char conf[2048];
    snprintf(conf, sizeof conf,
             "log_level = debug\nplugin.db = %s\nplugin.queries = by_code, by_ward\n"
             "plugin.query.by_code = business.get/v1 | SELECT code, name, capital FROM "
             "businesses WHERE code = :code\n"
             "plugin.query.by_ward = business.by_ward/v1 | SELECT code, name FROM businesses "
             "WHERE ward = :ward ORDER BY code\n"
             "plugin.max_rows = 2\n",
             db_path);
    return conf;
}

static void setup(void)
{
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, DKKD, HOTICH, TTHC);
    hubfix_start(&fix);
    snprintf(db_path, sizeof db_path, "%s/dkkd.db", fix.dir);
    make_db();
    adapter = hubfix_start_adapter(&fix, DKKD, "sqlquery", queries());
    snprintf(adapter_log, sizeof adapter_log, "%s/adapter-VN.GOV.HN-SKHDT.DKKD.log", fix.dir);
}

static void teardown(void) { hubfix_cleanup(&fix); }

/* Asks service with a JSON body; returns the reply as JSON and its type. */
static json_t *ask(adp_client_t *c, const char *service, const char *ctype, const char *body,
                   char *reply_type)
{
    adp_reply_t reply;
    int rc = adp_request(c, DKKD, service, ctype, body, strlen(body), 0, 10000, &reply);
    ck_assert_msg(rc == 0, "request failed: %s", adp_last_error(c));
    snprintf(reply_type, 128, "%s", reply.content_type);
    json_t *j = json_loadb((const char *)reply.payload, reply.payload_len, 0, NULL);
    ck_assert_msg(j != NULL, "not JSON: %.*s", (int)reply.payload_len, reply.payload);
    adp_reply_free(&reply);
    return j;
}

static void assert_problem(json_t *j, const char *type, int status, const char *part)
{
    ck_assert_str_eq(type, "application/problem+json");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), status);
    const char *error = json_string_value(json_object_get(j, "error"));
    ck_assert_msg(error && strstr(error, part), "error does not say '%s': %s", part,
                  error ? error : "(none)");
    json_decref(j);
}

START_TEST(answers_from_queries)
{
    adp_client_t *c = hubfix_connect(&fix, HOTICH);
    char type[128];
    json_t *j = ask(c, "business.get/v1", "application/json", "{\"code\":\"0101234567\"}", type);
    ck_assert_str_eq(type, "application/json");
    char *text = json_dumps(j, JSON_COMPACT);
    ck_assert_str_eq(text, "{\"rows\":[{\"code\":\"0101234567\",\"name\":\"Công ty TNHH Sen "
                           "Vàng\",\"capital\":500000000}],\"truncated\":false}");
    free(text);
    json_decref(j);

    j = ask(c, "business.get/v1", "application/json", "{\"code\":\"" SECRET_CODE "\"}", type);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "rows")), 1);
    json_decref(j);
    /* Not found; a value that would be an injection if spliced. */
    j = ask(c, "business.get/v1", "application/json", "{\"code\":\"x' OR '1'='1\"}", type);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "rows")), 0);
    ck_assert(json_is_false(json_object_get(j, "truncated")));
    json_decref(j);
    /* Three in the ward, plugin.max_rows = 2. */
    j = ask(c, "business.by_ward/v1", "application/json", "{\"ward\":\"Láng Hạ\"}", type);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "rows")), 2);
    ck_assert(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);

    /* Refusals, each a problem document that says what to fix. */
    assert_problem(ask(c, "business.get/v1", "application/json", "{\"cod\":\"1\"}", type), type,
                   422, "unknown parameter 'cod': this query takes code");
    assert_problem(ask(c, "business.get/v1", "application/json", "{}", type), type, 422,
                   "missing parameter 'code'");
    assert_problem(ask(c, "business.get/v1", "application/json", "{\"code\": [1]}", type), type,
                   422, "must be a string, number, boolean or null");
    assert_problem(ask(c, "business.get/v1", "application/json", "{\"code\": ", type), type, 400,
                   "malformed JSON at line 1");
    assert_problem(ask(c, "business.get/v1", "text/plain", "code=1", type), type, 415,
                   "JSON object");
    adp_close(&c);

    char *log = tk_stop_clean(adapter, "the adapter", adapter_log);
    ck_assert_msg(strstr(log, "query by_code (business.get/v1) from " HOTICH ": 1 rows"), "%s",
                  log);
    ck_assert_msg(strstr(log, "2 rows (truncated)"), "%s", log);
    ck_assert_msg(!strstr(log, SECRET_CODE) && !strstr(log, "Sen Vàng"),
                  "a parameter value or a row was logged");
    free(log);
}
END_TEST

START_TEST(through_the_http_bridge)
{
    char conf[512], port_path[PATH_MAX];
    snprintf(port_path, sizeof port_path, "%s/bridge.port", fix.dir);
    snprintf(conf, sizeof conf, "tick_ms = 10\nplugin.listen = 127.0.0.1:0\nplugin.port_file = %s\n",
             port_path);
    hubfix_start_adapter(&fix, TTHC, "httpbridge", conf);
    char *port = tk_read_file(port_path);
    ck_assert_ptr_nonnull(port);
    char url[256], out_path[PATH_MAX];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/call/" DKKD "/business.get/v1", atoi(port));
    free(port);
    snprintf(out_path, sizeof out_path, "%s/out.json", fix.dir);
    static const char *const bodies[] = {"{\"code\":\"0103456789\"}", "{\"code\":1,\"x\":2}"};
    static const int statuses[] = {200, 422};
    for (int i = 0; i < 2; i++) {
        char *argv[] = {"/usr/bin/curl", "-sS", "--noproxy", "*", "-o", out_path, "-w",
                        "%{http_code}", "-H", "Content-Type: application/json", "--data-binary",
                        (char *)bodies[i], url, NULL};
        char *out = NULL;
        ck_assert_int_eq(tk_run(argv, &out, 20000), 0);
        ck_assert_int_eq(atoi(out), statuses[i]);
        free(out);
        char *body = tk_read_file(out_path);
        ck_assert_ptr_nonnull(body);
        ck_assert_msg(strstr(body, i == 0 ? "HTX Bát Tràng" : "unknown parameter 'x'"), "%s",
                      body);
        free(body);
    }
}
END_TEST

/* hub-adapter with the plugin and these lines (after plugin.db when
 * with_db) must refuse to start, saying why. */
static void assert_bad_config(bool with_db, const char *lines, const char *why)
{
    char db_line[PATH_MAX + 16] = "", text[4096];
    if (with_db)
        snprintf(db_line, sizeof db_line, "plugin.db = %s", db_path);
    snprintf(text, sizeof text, "%s\nplugin.queries = q\n%s", db_line, lines);
    char *out = hubfix_adapter_refused(&fix, DKKD, "sqlquery", text);
    ck_assert_msg(strstr(out, why), "expected '%s' in: %s", why, out);
    ck_assert_msg(!strstr(out, "Sanitizer"), "%s", out);
    free(out);
}

START_TEST(only_selects_start)
{
    assert_bad_config(true,
                      "plugin.query.q = x.delete/v1 | DELETE FROM businesses WHERE code = :code",
                      "plugin.query.q: the query does not prepare: not authorized");
    assert_bad_config(true, "plugin.query.q = x.get/v1 | SELECT 1; DROP TABLE businesses",
                      "plugin.query.q: the query must be a single statement");
    assert_bad_config(true,
                      "plugin.query.q = x.get/v1 | SELECT name FROM businesses WHERE code = ?",
                      "positional");
    assert_bad_config(true, "plugin.query.q = SELECT name FROM businesses",
                      "must be 'SERVICE/VERSION |");
    assert_bad_config(true, "plugin.query.q = not a service | SELECT 1 AS one",
                      "is not SERVICE/VERSION");
    assert_bad_config(true, "plugin.query.q = x.get/v1 | SELECT 1 AS one\nplugin.max_rows = 0",
                      "plugin.max_rows must be a whole number");
    char lines[PATH_MAX + 64];
    snprintf(lines, sizeof lines, "plugin.db = %s/absent.db\nplugin.query.q = x.get/v1 | SELECT 1",
             fix.dir);
    assert_bad_config(false, lines, "absent.db does not exist");
    assert_bad_config(false, "plugin.query.q = x.get/v1 | SELECT 1", "plugin.db is required");
}
END_TEST

TK_MAIN("e2e_sqlquery", TK_CASE("sqlquery", setup, teardown, 120, answers_from_queries,
                                through_the_http_bridge, only_selects_start))
