/* lth_sqlq, the sqlquery plugin's statement runner: only single SELECTs with
 * named parameters are prepared; values are bound, never spliced into SQL;
 * rows come back as JSON objects within the row, size and time limits. */
#include "hub_error.h"
#include "lth_sqlq.h"
#include "testkit.h"
#include "tksql.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[PATH_MAX], db_path[PATH_MAX];
static sqlite3 *db;

static void setup(void)
{
    tk_tmpdir(dir);
    snprintf(db_path, sizeof db_path, "%s/sector.db", dir);
    tk_sql_create(
        db_path,
        "CREATE TABLE parcels (id INTEGER PRIMARY KEY, code TEXT, owner_pid TEXT, area REAL, "
        "  ward TEXT, doc BLOB, note TEXT);"
        "INSERT INTO parcels VALUES (1, 'HN-001', '001085012345', 120.5, 'Láng Hạ', x'00ff10', "
        "  NULL);"
        "INSERT INTO parcels VALUES (2, 'HN-002', '001085012345', 80, 'Láng Hạ', NULL, "
        "  CAST(x'6f6bff' AS TEXT));"
        "INSERT INTO parcels VALUES (3, 'HN-003', '079301000123', 45.25, 'Bến Nghé', NULL, 'x');"
        "CREATE TABLE secrets (v TEXT); INSERT INTO secrets VALUES ('do not leak');");
    char err[512];
    ck_assert_int_eq(lth_sqlq_db_open(db_path, &db, err, sizeof err), 0);
}

static void teardown(void)
{
    lth_sqlq_db_close(&db);
    tk_rmrf(dir);
}

static lth_sqlq_t *prepare_ok(const char *sql)
{
    lth_sqlq_t *q = NULL;
    char err[512] = "";
    ck_assert_msg(lth_sqlq_new(db, sql, &q, err, sizeof err) == 0, "%s: %s", sql, err);
    return q;
}

static void prepare_fails(const char *sql, const char *why)
{
    lth_sqlq_t *q = NULL;
    char err[512] = "";
    ck_assert_msg(lth_sqlq_new(db, sql, &q, err, sizeof err) == HUB_EINVAL, "accepted: %s", sql);
    ck_assert_ptr_null(q);
    ck_assert_msg(strstr(err, why), "%s: '%s' does not say '%s'", sql, err, why);
}

/* Runs q with params (JSON text); returns the result, asserting success. */
static json_t *run_ok(lth_sqlq_t *q, const char *params, const lth_sqlq_limits_t *limits)
{
    json_t *p = params ? json_loads(params, 0, NULL) : NULL;
    ck_assert(!params || p);
    json_t *out = NULL;
    char err[512] = "";
    int rc = lth_sqlq_run(q, p, limits, &out, err, sizeof err);
    json_decref(p);
    ck_assert_msg(rc == 0, "%s: %s", params ? params : "(none)", err);
    return out;
}

static int run_fails(lth_sqlq_t *q, const char *params, const char *why)
{
    json_t *p = json_loads(params, 0, NULL);
    ck_assert_ptr_nonnull(p);
    json_t *out = NULL;
    char err[512] = "";
    int rc = lth_sqlq_run(q, p, NULL, &out, err, sizeof err);
    json_decref(p);
    ck_assert_msg(rc != 0, "%s was accepted", params);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(err, why), "%s: '%s' does not say '%s'", params, err, why);
    return rc;
}

static size_t rows_of(const json_t *result) { return json_array_size(json_object_get(result, "rows")); }

/* Runs q with params (no limits) and asserts it answers `rows` rows. */
static void assert_rows(lth_sqlq_t *q, const char *params, size_t rows)
{
    json_t *r = run_ok(q, params, NULL);
    ck_assert_uint_eq(rows_of(r), rows);
    json_decref(r);
}

START_TEST(only_single_selects_prepare)
{
    prepare_fails("DELETE FROM parcels WHERE id = :id", "only SELECT");
    prepare_fails("INSERT INTO parcels (code) VALUES (:code)", "only SELECT");
    prepare_fails("UPDATE parcels SET note = 'x'", "only SELECT");
    prepare_fails("DROP TABLE parcels", "only SELECT");
    prepare_fails("CREATE TABLE t (x)", "only SELECT");
    prepare_fails("PRAGMA table_info(parcels)", "only SELECT");
    prepare_fails("ATTACH DATABASE '/tmp/x.db' AS x", "only SELECT");
    prepare_fails("SELECT load_extension('x')", "only SELECT");
    prepare_fails("SELECT 1; SELECT 2", "single statement");
    prepare_fails("SELECT code FROM parcels; DELETE FROM parcels", "single statement");
    prepare_fails("EXPLAIN SELECT 1", "one SELECT");
    prepare_fails("BEGIN", "only SELECT");
    prepare_fails("", "empty");
    prepare_fails("-- only a comment", "empty");
    prepare_fails("SELEKT 1", "does not prepare");
    prepare_fails("SELECT code FROM parcels WHERE id = ?", "positional");
    prepare_fails("SELECT code FROM parcels WHERE id = ?1", "positional");
    prepare_fails("SELECT code FROM parcels WHERE id = :id OR id = @id", "two prefixes");
    prepare_fails("SELECT code, code FROM parcels", "two columns are named 'code'");
    /* Fine: comments, a final semicolon, CTEs, prefixes other than ':'. */
    lth_sqlq_t *q = prepare_ok("SELECT code FROM parcels WHERE id = @id; -- by id\n  ");
    ck_assert_uint_eq(lth_sqlq_param_count(q), 1);
    ck_assert_str_eq(lth_sqlq_param_name(q, 0), "id");
    ck_assert_ptr_null(lth_sqlq_param_name(q, 1));
    lth_sqlq_destroy(&q);
    ck_assert_ptr_null(q);
    q = prepare_ok("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $k) "
                   "SELECT i FROM n");
    assert_rows(q, "{\"k\": 5}", 5);
    lth_sqlq_destroy(&q);
    lth_sqlq_destroy(&q);
}
END_TEST

START_TEST(rows_as_json_objects)
{
    lth_sqlq_t *q = prepare_ok("SELECT id, code, area, ward, doc, note FROM parcels "
                               "WHERE owner_pid = :pid ORDER BY id");
    json_t *r = run_ok(q, "{\"pid\": \"001085012345\"}", NULL);
    char *text = json_dumps(r, JSON_COMPACT);
    ck_assert_str_eq(text, "{\"rows\":[{\"id\":1,\"code\":\"HN-001\",\"area\":120.5,"
                           "\"ward\":\"Láng Hạ\",\"doc\":\"AP8Q\",\"note\":null},"
                           "{\"id\":2,\"code\":\"HN-002\",\"area\":80.0,\"ward\":\"Láng Hạ\","
                           "\"doc\":null,\"note\":\"ok\xEF\xBF\xBD\"}],\"truncated\":false}");
    free(text);
    json_decref(r);
    /* The same statement again, other values: bindings do not linger. */
    assert_rows(q, "{\"pid\": \"079301000123\"}", 1);
    assert_rows(q, "{\"pid\": null}", 0);
    lth_sqlq_destroy(&q);

    /* Numbers and booleans bind as numbers. */
    q = prepare_ok("SELECT :a + 1 AS a, :b AS b, typeof(:c) AS c");
    r = run_ok(q, "{\"a\": 41, \"b\": true, \"c\": 2.5}", NULL);
    json_t *row = json_array_get(json_object_get(r, "rows"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "a")), 42);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "b")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(row, "c")), "real");
    json_decref(r);
    lth_sqlq_destroy(&q);
}
END_TEST

START_TEST(values_are_bound_not_spliced)
{
    lth_sqlq_t *q = prepare_ok("SELECT code FROM parcels WHERE code = :code");
    assert_rows(q, "{\"code\": \"x' OR '1'='1\"}", 0);
    assert_rows(q, "{\"code\": \"HN-001'; SELECT v FROM secrets; --\"}", 0);
    lth_sqlq_destroy(&q);
}
END_TEST

START_TEST(parameters_checked_by_name)
{
    lth_sqlq_t *q = prepare_ok("SELECT code FROM parcels WHERE owner_pid = :pid AND ward = :ward");
    ck_assert_int_eq(run_fails(q, "{\"pid\": \"001085012345\"}", "missing parameter 'ward'"),
                     HUB_EINVAL);
    run_fails(q, "{\"pid\": \"1\", \"ward\": \"x\", \"area\": 3}",
              "unknown parameter 'area': this query takes pid, ward");
    run_fails(q, "{\"pid\": [\"1\"], \"ward\": \"x\"}", "must be a string, number, boolean or null");
    run_fails(q, "[1, 2]", "JSON object of parameters");
    assert_rows(q, "{\"ward\": \"Láng Hạ\", \"pid\": \"001085012345\"}", 2);
    lth_sqlq_destroy(&q);
    /* No parameters: NULL and {} both do. */
    q = prepare_ok("SELECT count(*) AS n FROM parcels");
    json_t *r = run_ok(q, NULL, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(json_object_get(r, "rows"), 0), "n")),
                     3);
    json_decref(r);
    run_fails(q, "{\"x\": 1}", "this query takes none");
    lth_sqlq_destroy(&q);
}
END_TEST

START_TEST(limits)
{
    lth_sqlq_t *q = prepare_ok("SELECT id FROM parcels ORDER BY id");
    lth_sqlq_limits_t two = {.max_rows = 2};
    json_t *r = run_ok(q, "{}", &two);
    ck_assert_uint_eq(rows_of(r), 2);
    ck_assert(json_is_true(json_object_get(r, "truncated")));
    json_decref(r);
    lth_sqlq_limits_t three = {.max_rows = 3};
    r = run_ok(q, "{}", &three);
    ck_assert_uint_eq(rows_of(r), 3);
    ck_assert(json_is_false(json_object_get(r, "truncated")));
    json_decref(r);
    lth_sqlq_limits_t small = {.max_bytes = 20}; /* {"id":1} is 8 bytes */
    r = run_ok(q, "{}", &small);
    ck_assert_uint_eq(rows_of(r), 2);
    ck_assert(json_is_true(json_object_get(r, "truncated")));
    json_decref(r);
    lth_sqlq_destroy(&q);

    /* A query that would run for ever is interrupted. */
    q = prepare_ok("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                   "SELECT count(*) FROM n");
    lth_sqlq_limits_t quick = {.timeout_ms = 50};
    json_t *out = NULL;
    char err[512];
    ck_assert_int_eq(lth_sqlq_run(q, NULL, &quick, &out, err, sizeof err), HUB_ETIMEDOUT);
    ck_assert_msg(strstr(err, "longer than 50 ms"), "%s", err);
    lth_sqlq_destroy(&q);
    /* The connection still serves. */
    q = prepare_ok("SELECT 1 AS one");
    assert_rows(q, NULL, 1);
    lth_sqlq_destroy(&q);
}
END_TEST

START_TEST(database_files)
{
    sqlite3 *other = NULL;
    char err[512], path[PATH_MAX];
    snprintf(path, sizeof path, "%s/absent.db", dir);
    ck_assert_int_eq(lth_sqlq_db_open(path, &other, err, sizeof err), HUB_ENOENT);
    ck_assert_ptr_null(other);
    snprintf(path, sizeof path, "%s/not.db", dir);
    tk_write_file(path, "this is not a database, it is a text file of some length........\n");
    ck_assert_int_eq(lth_sqlq_db_open(path, &other, err, sizeof err), HUB_EIO);
    ck_assert_msg(strstr(err, "not a database"), "%s", err);
    /* Read-only even without the authorizer's help. */
    ck_assert_int_ne(sqlite3_exec(db, "DELETE FROM parcels", NULL, NULL, NULL), SQLITE_OK);
    struct stat st;
    ck_assert_int_eq(stat(db_path, &st), 0);
    lth_sqlq_db_close(&other);
}
END_TEST

TK_MAIN("sqlq",
        TK_CASE("sqlq", setup, teardown, 0, only_single_selects_prepare, rows_as_json_objects,
                values_are_bound_not_spliced, parameters_checked_by_name, limits, database_files))
