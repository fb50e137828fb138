#include "tksql.h"
#include "testkit.h"

#include <check.h>
#include <stdio.h>
#include <unistd.h>

void tk_sql_create(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_msg(sqlite3_open(path, &db) == SQLITE_OK, "cannot create %s", path);
    char *err = NULL;
    ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK, "%s: %s", path,
                  err ? err : "");
    sqlite3_close(db);
}

sqlite3 *tk_sql_open_ro(const char *path)
{
    sqlite3 *db = NULL;
    ck_assert_msg(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK,
                  "cannot open %s", path);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

sqlite3_stmt *tk_sql_prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s",
                  sqlite3_errmsg(db), sql);
    return q;
}

long long tk_sql_int(const char *path, const char *sql)
{
    if (access(path, R_OK) != 0)
        return -1;
    sqlite3 *db = tk_sql_open_ro(path);
    sqlite3_stmt *q = NULL;
    long long v = -1;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    else
        fprintf(stderr, "%s: %s: %s\n", path, sql, sqlite3_errmsg(db));
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
    return v;
}

void tk_sql_text(const char *path, const char *sql, char *out, size_t size)
{
    sqlite3 *db = tk_sql_open_ro(path);
    sqlite3_stmt *q = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s: %s", path, sql,
                  sqlite3_errmsg(db));
    ck_assert_msg(sqlite3_step(q) == SQLITE_ROW, "%s: no row for %s", path, sql);
    const unsigned char *text = sqlite3_column_text(q, 0);
    ck_assert_msg(text != NULL, "%s: NULL for %s", path, sql);
    snprintf(out, size, "%s", (const char *)text);
    sqlite3_finalize(q);
    sqlite3_close_v2(db);
}

void tk_sql_wait_eq(const char *path, const char *sql, long long want, int timeout_ms,
                    const char *what)
{
    long long v = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        if ((v = tk_sql_int(path, sql)) == want)
            return;
        tk_sleep_ms(200);
    }
    ck_abort_msg("after %d s, %s: %lld, wanted %lld", timeout_ms / 1000, what, v, want);
}
