#include "lth_popdb.h"

#include "hub_error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LTH__POPDB_FORMAT "lth-population-2" /* 2: households, temporary residence, parents */

struct lth_popdb {
    sqlite3 *db;
    sqlite3_stmt *get; /* SELECT … WHERE personal_id = ?1 */
    lth_popdb_info_t info;
};

static const char lth__schema[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE citizen ("
    " personal_id TEXT PRIMARY KEY,"
    " full_name TEXT NOT NULL,"
    " date_of_birth TEXT NOT NULL,"
    " sex INTEGER NOT NULL CHECK (sex IN (1, 2)),"
    " birth_province_code TEXT NOT NULL,"
    " residence TEXT NOT NULL,"
    " previous_residence TEXT,"
    " created_at TEXT NOT NULL,"
    " changed_at TEXT NOT NULL,"
    " temporary_residence TEXT,"
    " temporary_until TEXT,"
    " head_personal_id TEXT NOT NULL,"
    " head_full_name TEXT NOT NULL,"
    " relationship INTEGER NOT NULL CHECK (relationship BETWEEN 1 AND 8),"
    " father_name TEXT,"
    " mother_name TEXT,"
    " spouse_name TEXT"
    ") WITHOUT ROWID;";

static const char lth__insert_sql[] =
    "INSERT INTO citizen (personal_id, full_name, date_of_birth, sex, birth_province_code,"
    " residence, previous_residence, created_at, changed_at, temporary_residence,"
    " temporary_until, head_personal_id, head_full_name, relationship, father_name,"
    " mother_name, spouse_name)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

static const char lth__get_sql[] =
    "SELECT personal_id, full_name, date_of_birth, sex, birth_province_code, residence,"
    " previous_residence, created_at, changed_at, temporary_residence, temporary_until,"
    " head_personal_id, head_full_name, relationship, father_name, mother_name, spouse_name"
    " FROM citizen WHERE personal_id = ?1";

static int lth__sql_fail(sqlite3 *db, const char *doing, const char *path, char *err,
                         size_t err_size)
{
    snprintf(err, err_size, "%s %s: %s", doing, path, db ? sqlite3_errmsg(db) : "out of memory");
    return HUB_ESTORE;
}

static int lth__bind_date(sqlite3_stmt *st, int col, lth_date_t d)
{
    char text[LTH_DATE_TEXT_LEN + 1];
    lth_date_format(d, text);
    return sqlite3_bind_text(st, col, text, -1, SQLITE_TRANSIENT);
}

/* Text, or NULL for "". */
static int lth__bind_opt(sqlite3_stmt *st, int col, const char *text)
{
    return text[0] ? sqlite3_bind_text(st, col, text, -1, SQLITE_STATIC)
                   : sqlite3_bind_null(st, col);
}

static int lth__insert_citizen(sqlite3_stmt *st, const lth_citizen_t *c)
{
    sqlite3_reset(st);
    int rc = sqlite3_bind_text(st, 1, c->personal_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, c->full_name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = lth__bind_date(st, 3, c->date_of_birth);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 4, (int)c->sex);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 5, c->birth_province_code, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 6, c->residence, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = c->previous_residence[0]
                 ? sqlite3_bind_text(st, 7, c->previous_residence, -1, SQLITE_STATIC)
                 : sqlite3_bind_null(st, 7);
    if (rc == SQLITE_OK)
        rc = lth__bind_date(st, 8, c->created_on);
    if (rc == SQLITE_OK)
        rc = lth__bind_date(st, 9, c->changed_on);
    if (rc == SQLITE_OK)
        rc = lth__bind_opt(st, 10, c->temporary_residence);
    if (rc == SQLITE_OK)
        rc = c->temporary_until.year ? lth__bind_date(st, 11, c->temporary_until)
                                     : sqlite3_bind_null(st, 11);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 12, c->head_personal_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 13, c->head_full_name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 14, (int)c->relationship);
    if (rc == SQLITE_OK)
        rc = lth__bind_opt(st, 15, c->father_name);
    if (rc == SQLITE_OK)
        rc = lth__bind_opt(st, 16, c->mother_name);
    if (rc == SQLITE_OK)
        rc = lth__bind_opt(st, 17, c->spouse_name);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    return rc;
}

static int lth__put_meta(sqlite3 *db, const char *key, const char *value)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "INSERT INTO meta (key, value) VALUES (?1, ?2)", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    sqlite3_finalize(st);
    return rc;
}

/* Fills the open, empty database `db`; one transaction. */
static int lth__fill(sqlite3 *db, uint64_t seed, size_t citizens)
{
    /* The file is renamed into place only when complete, so a crash loses
     * nothing worth a journal or a sync per page. */
    if (sqlite3_exec(db, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; BEGIN;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(db, lth__schema, NULL, NULL, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_stmt *insert = NULL;
    int rc = sqlite3_prepare_v2(db, lth__insert_sql, -1, &insert, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < citizens; i++) {
        lth_citizen_t c;
        rc =
            lth_citizen_generate(seed, i, &c) == 0 ? lth__insert_citizen(insert, &c) : SQLITE_ERROR;
    }
    sqlite3_finalize(insert);
    char seed_text[24], count_text[24];
    snprintf(seed_text, sizeof seed_text, "%" PRIu64, seed);
    snprintf(count_text, sizeof count_text, "%zu", citizens);
    if (rc == SQLITE_OK)
        rc = lth__put_meta(db, "format", LTH__POPDB_FORMAT);
    if (rc == SQLITE_OK)
        rc = lth__put_meta(db, "seed", seed_text);
    if (rc == SQLITE_OK)
        rc = lth__put_meta(db, "citizens", count_text);
    if (rc == SQLITE_OK)
        rc = lth__put_meta(db, "synthetic",
                           "yes: generated records; no record describes a real person");
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

static int lth__fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int lth_popdb_build(const char *path, uint64_t seed, size_t citizens, char *err, size_t err_size)
{
    if (!path || !*path || citizens == 0 || citizens > LTH_CITIZEN_MAX) {
        snprintf(err, err_size, "a database path and 1 to %u citizens are needed", LTH_CITIZEN_MAX);
        return HUB_EINVAL;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        snprintf(err, err_size, "%s already exists; remove it to build it again", path);
        return HUB_EEXIST;
    }
    /* A name of our own, so that two builders racing for one path never
     * write the same file; link() below lets exactly one of them win. */
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.building.%ld", path, (long)getpid()) >= sizeof tmp) {
        snprintf(err, err_size, "database path too long");
        return HUB_EINVAL;
    }
    unlink(tmp);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = lth__fill(db, seed, citizens);
    if (rc != SQLITE_OK) {
        lth__sql_fail(db, "cannot build", tmp, err, err_size);
        sqlite3_close(db);
        unlink(tmp);
        return HUB_ESTORE;
    }
    sqlite3_close(db);
    int result = 0;
    if (lth__fsync_path(tmp, O_RDONLY) != 0) {
        snprintf(err, err_size, "cannot sync %s: %s", tmp, strerror(errno));
        result = HUB_EIO;
    } else if (link(tmp, path) != 0) {
        if (errno == EEXIST) {
            snprintf(err, err_size, "%s already exists (built meanwhile by another process)", path);
            result = HUB_EEXIST;
        } else if (rename(tmp, path) != 0) { /* a file system without hard links */
            snprintf(err, err_size, "cannot create %s: %s", path, strerror(errno));
            result = HUB_EIO;
        }
    }
    unlink(tmp);
    if (result == 0) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            dir[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        lth__fsync_path(dir, O_RDONLY | O_DIRECTORY); /* best effort: the data is rebuildable */
    }
    return result;
}

static int lth__get_meta(sqlite3 *db, const char *key, char *out, size_t size)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = SQLITE_OK;
    } else {
        rc = SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    return rc;
}

int lth_popdb_open(const char *path, lth_popdb_t **out, char *err, size_t err_size)
{
    if (!path || !out) {
        snprintf(err, err_size, "a database path is needed");
        return HUB_EINVAL;
    }
    *out = NULL;
    if (access(path, R_OK) != 0) {
        int e = errno;
        snprintf(err, err_size, "cannot read %s: %s", path, strerror(e));
        return e == ENOENT ? HUB_ENOENT : HUB_EPERM;
    }
    lth_popdb_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    char format[64] = "", seed[32] = "", count[32] = "";
    int rc = sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        lth__sql_fail(p->db, "cannot open", path, err, err_size);
        lth_popdb_close(&p);
        return HUB_ESTORE;
    }
    if (lth__get_meta(p->db, "format", format, sizeof format) != SQLITE_OK ||
        strcmp(format, LTH__POPDB_FORMAT) != 0 ||
        lth__get_meta(p->db, "seed", seed, sizeof seed) != SQLITE_OK ||
        lth__get_meta(p->db, "citizens", count, sizeof count) != SQLITE_OK ||
        sqlite3_prepare_v2(p->db, lth__get_sql, -1, &p->get, NULL) != SQLITE_OK) {
        if (!strncmp(format, "lth-population-", 15))
            snprintf(err, err_size,
                     "%s has format %s, this version reads %s: remove it and the adapter builds "
                     "it again on start (the data is synthetic), or build it with lth-popgen",
                     path, format, LTH__POPDB_FORMAT);
        else
            snprintf(err, err_size,
                     "%s is not a population database (format %s); build one with lth-popgen", path,
                     LTH__POPDB_FORMAT);
        lth_popdb_close(&p);
        return HUB_ESTORE;
    }
    p->info.seed = strtoull(seed, NULL, 10);
    p->info.citizens = (size_t)strtoull(count, NULL, 10);
    *out = p;
    return 0;
}

void lth_popdb_close(lth_popdb_t **db_p)
{
    if (!db_p || !*db_p)
        return;
    lth_popdb_t *p = *db_p;
    sqlite3_finalize(p->get);
    sqlite3_close(p->db);
    free(p);
    *db_p = NULL;
}

lth_popdb_info_t lth_popdb_info(const lth_popdb_t *db)
{
    lth_popdb_info_t none = {0, 0};
    return db ? db->info : none;
}

static int lth__column_copy(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    if (!text) {
        dst[0] = '\0';
        return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : -1;
    }
    int len = sqlite3_column_bytes(st, col);
    if (len < 0 || (size_t)len >= size)
        return -1;
    memcpy(dst, text, (size_t)len + 1);
    return 0;
}

static int lth__column_date(sqlite3_stmt *st, int col, lth_date_t *out)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    return text ? lth_date_parse((const char *)text, out) : -1;
}

int lth_popdb_get(lth_popdb_t *db, const char *personal_id, lth_citizen_t *out)
{
    if (!db || !personal_id || !out)
        return HUB_EINVAL;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = db->get;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (sqlite3_bind_text(st, 1, personal_id, -1, SQLITE_STATIC) != SQLITE_OK)
        return HUB_ESTORE;
    int step = sqlite3_step(st);
    int result = 0;
    if (step == SQLITE_DONE) {
        result = HUB_ENOTFOUND;
    } else if (step != SQLITE_ROW) {
        result = HUB_ESTORE;
    } else {
        int sex = sqlite3_column_int(st, 3);
        if (lth__column_copy(st, 0, out->personal_id, sizeof out->personal_id) != 0 ||
            lth__column_copy(st, 1, out->full_name, sizeof out->full_name) != 0 ||
            lth__column_date(st, 2, &out->date_of_birth) != 0 || (sex != 1 && sex != 2) ||
            lth__column_copy(st, 4, out->birth_province_code, sizeof out->birth_province_code) !=
                0 ||
            lth__column_copy(st, 5, out->residence, sizeof out->residence) != 0 ||
            lth__column_copy(st, 6, out->previous_residence, sizeof out->previous_residence) != 0 ||
            lth__column_date(st, 7, &out->created_on) != 0 ||
            lth__column_date(st, 8, &out->changed_on) != 0 ||
            lth__column_copy(st, 9, out->temporary_residence, sizeof out->temporary_residence) !=
                0 ||
            (sqlite3_column_type(st, 10) != SQLITE_NULL &&
             lth__column_date(st, 10, &out->temporary_until) != 0) ||
            lth__column_copy(st, 11, out->head_personal_id, sizeof out->head_personal_id) != 0 ||
            lth__column_copy(st, 12, out->head_full_name, sizeof out->head_full_name) != 0 ||
            lth__column_copy(st, 14, out->father_name, sizeof out->father_name) != 0 ||
            lth__column_copy(st, 15, out->mother_name, sizeof out->mother_name) != 0 ||
            lth__column_copy(st, 16, out->spouse_name, sizeof out->spouse_name) != 0)
            result = HUB_ESTORE;
        int rel = sqlite3_column_int(st, 13);
        if (rel < LTH_REL_HEAD || rel > LTH_REL_GRANDPARENT)
            result = HUB_ESTORE;
        out->relationship = (lth_relationship_t)rel;
        out->sex = sex == 2 ? LTH_SEX_FEMALE : LTH_SEX_MALE;
    }
    /* Unbind now: the statement must not keep pointing at the caller's key. */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (result != 0)
        memset(out, 0, sizeof *out);
    return result;
}
