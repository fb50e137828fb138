#include "lth_appdb.h"

#include "hub_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LTH__BUSY_MS 10000

static const char lth__own_schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS outq(id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL,"
    " service TEXT NOT NULL, content_type TEXT NOT NULL, payload BLOB NOT NULL);";

const char *lth_appdb_error(sqlite3 *db) { return db ? sqlite3_errmsg(db) : "no database"; }

int lth_appdb_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : HUB_ESTORE;
}

int lth_appdb_begin(sqlite3 *db) { return lth_appdb_exec(db, "BEGIN IMMEDIATE"); }
int lth_appdb_commit(sqlite3 *db) { return lth_appdb_exec(db, "COMMIT"); }

void lth_appdb_rollback(sqlite3 *db)
{
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

void lth_appdb_close(sqlite3 **db_p)
{
    if (db_p && *db_p) {
        sqlite3_close_v2(*db_p);
        *db_p = NULL;
    }
}

int lth_appdb_open(const char *path, const char *schema_sql, sqlite3 **out, char *err,
                   size_t err_size)
{
    sqlite3 *db = NULL;
    if (!path || !*path || !out) {
        snprintf(err, err_size, "no database path");
        return HUB_EINVAL;
    }
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "cannot open or create %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return HUB_EIO;
    }
    sqlite3_busy_timeout(db, LTH__BUSY_MS);
    char *msg = NULL;
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &msg) !=
            SQLITE_OK ||
        sqlite3_exec(db, lth__own_schema, NULL, NULL, &msg) != SQLITE_OK ||
        (schema_sql && sqlite3_exec(db, schema_sql, NULL, NULL, &msg) != SQLITE_OK)) {
        snprintf(err, err_size, "%s is not usable as this adapter's database: %s", path,
                 msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        sqlite3_close_v2(db);
        return HUB_ESTORE;
    }
    *out = db;
    return 0;
}

int lth_appdb_open_readonly(const char *path, sqlite3 **out, char *err, size_t err_size)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "cannot open %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return rc == SQLITE_CANTOPEN ? HUB_ENOENT : HUB_EIO;
    }
    sqlite3_busy_timeout(db, LTH__BUSY_MS);
    *out = db;
    return 0;
}

int lth_appdb_meta_get(sqlite3 *db, const char *key, uint64_t dflt, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : dflt;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : HUB_ESTORE;
}

int lth_appdb_run(sqlite3 *db, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    va_list ap;
    va_start(ap, types);
    int rc = SQLITE_OK, n = sqlite3_bind_parameter_count(st);
    for (int i = 1; rc == SQLITE_OK && types[i - 1]; i++) {
        switch (types[i - 1]) {
        case 't': rc = sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_STATIC); break;
        case 'i': rc = sqlite3_bind_int(st, i, va_arg(ap, int)); break;
        case 'I': rc = sqlite3_bind_int64(st, i, (sqlite3_int64)va_arg(ap, uint64_t)); break;
        case 'b': {
            const void *blob = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            rc = sqlite3_bind_blob(st, i, len ? blob : "", (int)len, SQLITE_STATIC);
            break;
        }
        default: rc = SQLITE_MISUSE; break;
        }
        if (rc == SQLITE_RANGE && i > n)
            rc = SQLITE_OK; /* an argument the statement does not use */
    }
    va_end(ap);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : HUB_ESTORE;
}

int lth_appdb_meta_set(sqlite3 *db, const char *key, uint64_t value)
{
    return lth_appdb_run(db,
                         "INSERT INTO meta(key, value) VALUES(?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         "tI", key, value);
}

int lth_outq_add(sqlite3 *db, const char *receiver, const char *service, const char *content_type,
                 const void *payload, size_t len)
{
    return lth_appdb_run(db,
                         "INSERT INTO outq(receiver, service, content_type, payload) "
                         "VALUES(?, ?, ?, ?)",
                         "tttb", receiver, service, content_type, payload, len);
}

long lth_outq_size(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM outq", -1, &st, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    long n = sqlite3_step(st) == SQLITE_ROW ? (long)sqlite3_column_int64(st, 0) : HUB_ESTORE;
    sqlite3_finalize(st);
    return n;
}
