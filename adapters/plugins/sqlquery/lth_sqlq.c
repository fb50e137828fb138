/* lth_sqlq — a prepared, parameterised, read-only SQLite query; see lth_sqlq.h. */
#include "lth_sqlq.h"

#include "hub_error.h"
#include "lth_jsonmap.h"

#include <math.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SQLQ_MAX_PARAMS 64

struct lth_sqlq {
    sqlite3 *db;
    sqlite3_stmt *stmt;
    size_t n_params;
    char *params[SQLQ_MAX_PARAMS]; /* names without prefix; index i binds at i + 1 */
};

static uint64_t sqlq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Only what a SELECT needs: reading tables and calling functions. */
static int sqlq_authorize(void *user, int action, const char *a, const char *b, const char *c,
                          const char *d)
{
    (void)user, (void)a, (void)c, (void)d;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_FUNCTION:
        return b && !strcmp(b, "load_extension") ? SQLITE_DENY : SQLITE_OK; /* b: its name */
    default:
        return SQLITE_DENY;
    }
}

int lth_sqlq_db_open(const char *path, sqlite3 **out, char *err, size_t err_size)
{
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        snprintf(err, err_size, "the database %s does not exist", path ? path : "(none)");
        return HUB_ENOENT;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA query_only = ON; PRAGMA trusted_schema = OFF;", NULL, NULL,
                          NULL);
    if (rc == SQLITE_OK) /* reads the schema now: a file that is no database fails here */
        rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "cannot open the database %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return HUB_EIO;
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_set_authorizer(db, sqlq_authorize, NULL);
    *out = db;
    return 0;
}

void lth_sqlq_db_close(sqlite3 **db_p)
{
    if (db_p && *db_p) {
        sqlite3_close(*db_p);
        *db_p = NULL;
    }
}

void lth_sqlq_destroy(lth_sqlq_t **q_p)
{
    if (!q_p || !*q_p)
        return;
    lth_sqlq_t *q = *q_p;
    sqlite3_finalize(q->stmt);
    for (size_t i = 0; i < q->n_params; i++)
        free(q->params[i]);
    free(q);
    *q_p = NULL;
}

/* true when nothing but blanks and comments follows the first statement. */
static bool sqlq_tail_empty(sqlite3 *db, const char *tail)
{
    while (tail && *tail) {
        sqlite3_stmt *next = NULL;
        const char *rest = NULL;
        if (sqlite3_prepare_v2(db, tail, -1, &next, &rest) != SQLITE_OK) {
            sqlite3_finalize(next);
            return false;
        }
        if (next) {
            sqlite3_finalize(next);
            return false;
        }
        if (rest == tail)
            break;
        tail = rest;
    }
    return true;
}

static int sqlq_check(lth_sqlq_t *q, char *err, size_t err_size)
{
    sqlite3_stmt *s = q->stmt;
    if (!sqlite3_stmt_readonly(s) || sqlite3_column_count(s) == 0 || sqlite3_stmt_isexplain(s)) {
        snprintf(err, err_size, "the query must be one SELECT (read-only, returning columns)");
        return HUB_EINVAL;
    }
    int n = sqlite3_bind_parameter_count(s);
    if (n > SQLQ_MAX_PARAMS) {
        snprintf(err, err_size, "the query has more than %d parameters", SQLQ_MAX_PARAMS);
        return HUB_EINVAL;
    }
    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(s, i);
        if (!name || !strchr(":@$", name[0]) || !name[1]) {
            snprintf(err, err_size,
                     "parameter %d is positional ('%s'): name every parameter, e.g. :code", i,
                     name ? name : "?");
            return HUB_EINVAL;
        }
        for (size_t k = 0; k < q->n_params; k++)
            if (!strcmp(q->params[k], name + 1)) {
                snprintf(err, err_size, "parameter '%s' appears with two prefixes (%s)", name + 1,
                         name);
                return HUB_EINVAL;
            }
        if (!(q->params[q->n_params] = strdup(name + 1)))
            return HUB_ENOMEM;
        q->n_params++;
    }
    int cols = sqlite3_column_count(s);
    for (int i = 0; i < cols; i++)
        for (int k = 0; k < i; k++)
            if (!strcmp(sqlite3_column_name(s, i), sqlite3_column_name(s, k))) {
                snprintf(err, err_size,
                         "two columns are named '%s': give them distinct names with AS",
                         sqlite3_column_name(s, i));
                return HUB_EINVAL;
            }
    return 0;
}

int lth_sqlq_new(sqlite3 *db, const char *sql, lth_sqlq_t **out, char *err, size_t err_size)
{
    if (!db || !sql || !out)
        return HUB_EINVAL;
    lth_sqlq_t *q = calloc(1, sizeof *q);
    if (!q)
        return HUB_ENOMEM;
    q->db = db;
    const char *tail = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &q->stmt, &tail) != SQLITE_OK) {
        const char *msg = sqlite3_errmsg(db);
        snprintf(err, err_size, "the query does not prepare: %s%s", msg,
                 strstr(msg, "not authorized") ? " (only SELECT statements may run here)" : "");
        rc = HUB_EINVAL;
    } else if (!q->stmt) {
        snprintf(err, err_size, "the query is empty");
        rc = HUB_EINVAL;
    } else if (!sqlq_tail_empty(db, tail)) {
        snprintf(err, err_size, "the query must be a single statement: text follows the first");
        rc = HUB_EINVAL;
    } else {
        rc = sqlq_check(q, err, err_size);
    }
    if (rc != 0) {
        lth_sqlq_destroy(&q);
        return rc;
    }
    *out = q;
    return 0;
}

size_t lth_sqlq_param_count(const lth_sqlq_t *q) { return q ? q->n_params : 0; }

const char *lth_sqlq_param_name(const lth_sqlq_t *q, size_t i)
{
    return q && i < q->n_params ? q->params[i] : NULL;
}

static void sqlq_param_list(const lth_sqlq_t *q, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < q->n_params && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", q->params[i]);
    if (!q->n_params)
        snprintf(out, size, "none");
}

static int sqlq_bind(lth_sqlq_t *q, const json_t *params, char *err, size_t err_size)
{
    char names[512];
    if (params && !json_is_object(params)) {
        snprintf(err, err_size, "the request must be a JSON object of parameters");
        return HUB_EINVAL;
    }
    bool given[SQLQ_MAX_PARAMS] = {false};
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)params, key, value)
    {
        size_t i = 0;
        while (i < q->n_params && strcmp(q->params[i], key) != 0)
            i++;
        if (i == q->n_params) {
            sqlq_param_list(q, names, sizeof names);
            snprintf(err, err_size, "unknown parameter '%.64s': this query takes %s", key, names);
            return HUB_EINVAL;
        }
        int idx = (int)i + 1, rc;
        switch (json_typeof(value)) {
        case JSON_STRING:
            rc = sqlite3_bind_text(q->stmt, idx, json_string_value(value),
                                   (int)json_string_length(value), SQLITE_TRANSIENT);
            break;
        case JSON_INTEGER:
            rc = sqlite3_bind_int64(q->stmt, idx, json_integer_value(value));
            break;
        case JSON_REAL:
            rc = sqlite3_bind_double(q->stmt, idx, json_real_value(value));
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            rc = sqlite3_bind_int(q->stmt, idx, json_is_true(value));
            break;
        case JSON_NULL:
            rc = sqlite3_bind_null(q->stmt, idx);
            break;
        default:
            snprintf(err, err_size,
                     "parameter '%.64s' must be a string, number, boolean or null, not an %s",
                     key, json_is_array(value) ? "array" : "object");
            return HUB_EINVAL;
        }
        if (rc != SQLITE_OK) {
            snprintf(err, err_size, "cannot bind parameter '%.64s': %s", key,
                     sqlite3_errstr(rc));
            return rc == SQLITE_NOMEM ? HUB_ENOMEM : HUB_EINVAL;
        }
        given[i] = true;
    }
    for (size_t i = 0; i < q->n_params; i++)
        if (!given[i]) {
            sqlq_param_list(q, names, sizeof names);
            snprintf(err, err_size, "missing parameter '%s': this query takes %s", q->params[i],
                     names);
            return HUB_EINVAL;
        }
    return 0;
}

static json_t *sqlq_value(sqlite3_stmt *s, int col)
{
    switch (sqlite3_column_type(s, col)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(s, col));
    case SQLITE_FLOAT: {
        double x = sqlite3_column_double(s, col);
        return isfinite(x) ? json_real(x) : json_null();
    }
    case SQLITE_TEXT: {
        const char *text = (const char *)sqlite3_column_text(s, col);
        return lth_jsonmap_string(text ? text : "", (size_t)sqlite3_column_bytes(s, col));
    }
    case SQLITE_BLOB: {
        const void *blob = sqlite3_column_blob(s, col);
        size_t len = (size_t)sqlite3_column_bytes(s, col);
        size_t size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(size);
        if (!b64)
            return NULL;
        sodium_bin2base64(b64, size, blob ? blob : (const void *)"", len,
                          sodium_base64_VARIANT_ORIGINAL);
        json_t *j = json_string(b64);
        free(b64);
        return j;
    }
    default:
        return json_null();
    }
}

static int sqlq_progress(void *user)
{
    return sqlq_now_ms() > *(const uint64_t *)user; /* nonzero interrupts */
}

int lth_sqlq_run(lth_sqlq_t *q, const json_t *params, const lth_sqlq_limits_t *limits,
                 json_t **out, char *err, size_t err_size)
{
    if (!q || !out)
        return HUB_EINVAL;
    size_t max_rows = limits && limits->max_rows ? limits->max_rows : 1000;
    size_t max_bytes = limits && limits->max_bytes ? limits->max_bytes : 1000000;
    uint32_t timeout_ms = limits && limits->timeout_ms ? limits->timeout_ms : 2000;
    sqlite3_reset(q->stmt);
    sqlite3_clear_bindings(q->stmt);
    int rc = sqlq_bind(q, params, err, err_size);
    if (rc != 0)
        return rc;
    json_t *rows = json_array();
    if (!rows)
        return HUB_ENOMEM;
    uint64_t deadline = sqlq_now_ms() + timeout_ms;
    sqlite3_progress_handler(q->db, 1000, sqlq_progress, &deadline);
    bool truncated = false;
    size_t bytes = 2;
    int step;
    while ((step = sqlite3_step(q->stmt)) == SQLITE_ROW) {
        if (json_array_size(rows) == max_rows) {
            truncated = true;
            break;
        }
        json_t *row = json_object();
        int cols = sqlite3_column_count(q->stmt);
        for (int i = 0; row && i < cols; i++) {
            json_t *v = sqlq_value(q->stmt, i);
            if (!v || json_object_set_new(row, sqlite3_column_name(q->stmt, i), v) != 0) {
                json_decref(row);
                row = NULL;
            }
        }
        char *text = row ? json_dumps(row, JSON_COMPACT) : NULL;
        if (!text) {
            json_decref(row);
            rc = HUB_ENOMEM;
            break;
        }
        bytes += strlen(text) + 1;
        free(text);
        if (bytes > max_bytes) {
            json_decref(row);
            truncated = true;
            break;
        }
        json_array_append_new(rows, row);
    }
    sqlite3_progress_handler(q->db, 0, NULL, NULL);
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE) {
        if (step == SQLITE_INTERRUPT) {
            snprintf(err, err_size, "the query took longer than %u ms", (unsigned)timeout_ms);
            rc = HUB_ETIMEDOUT;
        } else {
            snprintf(err, err_size, "the database failed: %s", sqlite3_errmsg(q->db));
            rc = step == SQLITE_NOMEM ? HUB_ENOMEM : HUB_EIO;
        }
    }
    sqlite3_reset(q->stmt); /* ends the read transaction */
    sqlite3_clear_bindings(q->stmt);
    if (rc != 0) {
        json_decref(rows);
        return rc;
    }
    json_t *result = json_pack("{s:o,s:b}", "rows", rows, "truncated", truncated);
    if (!result)
        return HUB_ENOMEM;
    *out = result;
    return 0;
}
