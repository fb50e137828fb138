/* lth_sqlq — one configured, parameterised, read-only SQLite query: the
 * statement runner of the sqlquery plugin.
 *
 * A query is prepared once, when it is configured, and run many times with
 * values bound by parameter name; no SQL is ever built from request data.
 * What is accepted at preparation (else HUB_EINVAL with a sentence):
 *   - exactly one statement, and a SELECT: the connection's authorizer
 *     (lth_sqlq_db_open) allows only reading actions, so INSERT, PRAGMA,
 *     ATTACH and the like fail to prepare; sqlite3_stmt_readonly() must hold,
 *     the statement must return columns and must not be an EXPLAIN;
 *   - named parameters only (:name, @name or $name; the request uses "name"),
 *     no name under two prefixes, no positional '?';
 *   - distinct column names (use AS), since a row becomes a JSON object.
 *
 * Running: the parameters are a JSON object whose keys are exactly the
 * query's parameter names (unknown or missing ones are refused with a
 * sentence naming them); strings, integers, numbers, booleans (1/0) and null
 * bind as such. The result is {"rows": [{column: value, ...}, ...],
 * "truncated": bool}: at most max_rows rows and about max_bytes of JSON;
 * truncated says there were more. Values: INTEGER and REAL as numbers, TEXT
 * as strings (invalid UTF-8 replaced by U+FFFD), BLOB as base64, NULL as null.
 * A run longer than timeout_ms is interrupted.
 *
 * Errors: HUB_EINVAL (the parameters), HUB_ETIMEDOUT, HUB_EIO (SQLite failed;
 * err has its message), HUB_ENOMEM.
 * Ownership: a query borrows its connection, which must outlive it; results
 * are the caller's (json_decref). Not thread-safe: one thread per connection.
 */
#ifndef LTH_SQLQ_H
#define LTH_SQLQ_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lth_sqlq lth_sqlq_t;

typedef struct {
    size_t max_rows;     /* 0 = 1000 */
    size_t max_bytes;    /* 0 = 1,000,000: about the JSON text of the rows */
    uint32_t timeout_ms; /* 0 = 2000 */
} lth_sqlq_limits_t;

/* Opens an existing database read-only, with the authorizer above.
 * HUB_ENOENT when the file does not exist, HUB_EIO otherwise. */
int lth_sqlq_db_open(const char *path, sqlite3 **out, char *err, size_t err_size);
void lth_sqlq_db_close(sqlite3 **db_p);

int lth_sqlq_new(sqlite3 *db, const char *sql, lth_sqlq_t **out, char *err, size_t err_size);
size_t lth_sqlq_param_count(const lth_sqlq_t *q);
const char *lth_sqlq_param_name(const lth_sqlq_t *q, size_t i); /* without its prefix */
/* params may be NULL (= {}). */
int lth_sqlq_run(lth_sqlq_t *q, const json_t *params, const lth_sqlq_limits_t *limits,
                 json_t **out, char *err, size_t err_size);
void lth_sqlq_destroy(lth_sqlq_t **q_p);

#endif
