/* tksql — reading the SQLite files of the domain plugins (procedure,
 * portal, report, sector) from a test, while the adapters write them.
 *
 * Built with the tests that link lth_domain (tests/e2e/CMakeLists.txt).
 * Failures fail the calling Check test.
 */
#ifndef TKSQL_H
#define TKSQL_H

#include <sqlite3.h>
#include <stddef.h>

/* Creates the SQLite file path (or opens it) and runs sql, a test's own
 * tables and rows, in it; asserts it runs, naming SQLite's error. */
void tk_sql_create(const char *path, const char *sql);
/* Opens path read-only with a 10 s busy timeout; asserts it opens. */
sqlite3 *tk_sql_open_ro(const char *path);
/* Prepares sql on db; asserts it prepares, naming SQLite's error and the
 * statement. The caller finalizes it. */
sqlite3_stmt *tk_sql_prepare(sqlite3 *db, const char *sql);
/* The first column of sql's first row as a number; -1 if the file or the
 * table is not there (yet). A statement that does not run is said on
 * stderr. */
long long tk_sql_int(const char *path, const char *sql);
/* The first column of sql's first row as text, into out (size bytes);
 * asserts there is such a row and it is not NULL. */
void tk_sql_text(const char *path, const char *sql, char *out, size_t size);
/* Waits (polling every 200 ms) until tk_sql_int(path, sql) == want;
 * fails the test after timeout_ms, naming what and both values. */
void tk_sql_wait_eq(const char *path, const char *sql, long long want, int timeout_ms,
                    const char *what);

#endif
