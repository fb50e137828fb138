#define _GNU_SOURCE /* timegm */
#include "lth_access.h"

#include "domain.pb-c.h"
#include "hub_error.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LTH__SALT_CHECK "LTH-ACCESS-SALT-CHECK"
#define LTH__MAX_KEYS 1000 /* rows one look-up may add (lth_lookup's limit) */

struct lth_access {
    sqlite3 *db;
    sqlite3_stmt *insert;
    uint8_t salt[LTH_ACCESS_SALT_LEN];
};

static void lth__citizen_key(const uint8_t salt[LTH_ACCESS_SALT_LEN], const char *personal_id,
                             uint8_t out[32])
{
    crypto_auth_hmacsha256(out, (const unsigned char *)personal_id, strlen(personal_id), salt);
}

/* ---- the salt file -------------------------------------------------------- */

int lth_access_salt_load(const char *path, bool create, uint8_t salt[LTH_ACCESS_SALT_LEN],
                         char *err, size_t err_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        uint8_t fresh[LTH_ACCESS_SALT_LEN];
        randombytes_buf(fresh, sizeof fresh);
        int wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (wfd >= 0) {
            bool ok = write(wfd, fresh, sizeof fresh) == (ssize_t)sizeof fresh && fsync(wfd) == 0;
            ok = close(wfd) == 0 && ok;
            sodium_memzero(fresh, sizeof fresh);
            if (!ok) {
                unlink(path);
                snprintf(err, err_size, "cannot write the access register's salt file %s", path);
                return HUB_EIO;
            }
        } else if (errno != EEXIST) {
            snprintf(err, err_size, "cannot create the access register's salt file %s: %s", path,
                     strerror(errno));
            return errno == EACCES ? HUB_EPERM : HUB_EIO;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_size, "cannot read the access register's salt file %s: %s", path,
                 strerror(e));
        return e == ENOENT ? HUB_ENOENT : e == EACCES ? HUB_EPERM : HUB_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
        close(fd);
        snprintf(err, err_size,
                 "the access register's salt file %s may be read by other users; with it anyone "
                 "could tell whom the register names: run chmod 600 %s",
                 path, path);
        return HUB_EPERM;
    }
    ssize_t n = st.st_size == LTH_ACCESS_SALT_LEN ? read(fd, salt, LTH_ACCESS_SALT_LEN) : -1;
    close(fd);
    if (n != LTH_ACCESS_SALT_LEN) {
        snprintf(err, err_size,
                 "the access register's salt file %s must hold exactly %d bytes (it holds %lld)",
                 path, LTH_ACCESS_SALT_LEN, (long long)st.st_size);
        return HUB_EINVAL;
    }
    return 0;
}

/* ---- the register ------------------------------------------------------------ */

static const char *const lth__schema =
    "CREATE TABLE IF NOT EXISTS access ("
    " id INTEGER PRIMARY KEY,"
    " citizen BLOB NOT NULL,"
    " at_us INTEGER NOT NULL,"
    " requester TEXT NOT NULL,"
    " service TEXT NOT NULL,"
    " purpose TEXT NOT NULL,"
    " dossier_code TEXT NOT NULL,"
    " outcome TEXT NOT NULL,"
    " message_id TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS access_by_citizen ON access(citizen, at_us);"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);";

static int lth__fail(sqlite3 *db, const char *what, const char *path, char *err, size_t err_size)
{
    snprintf(err, err_size, "access register %s: %s: %s", path, what,
             db ? sqlite3_errmsg(db) : "out of memory");
    return HUB_ESTORE;
}

/* Compares the register's salt check with this salt's; stores it when the
 * register has none yet (and write is set). */
static int lth__salt_check(sqlite3 *db, const uint8_t salt[LTH_ACCESS_SALT_LEN], bool write,
                           bool *matches)
{
    uint8_t check[32];
    crypto_auth_hmacsha256(check, (const unsigned char *)LTH__SALT_CHECK,
                           sizeof LTH__SALT_CHECK - 1, salt);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'salt_check'", -1, &st,
                           NULL) != SQLITE_OK)
        return HUB_ESTORE;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const void *v = sqlite3_column_blob(st, 0);
        *matches = sqlite3_column_bytes(st, 0) == 32 && v && sodium_memcmp(v, check, 32) == 0;
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return HUB_ESTORE;
    *matches = true; /* an empty register: any salt is its salt from now on */
    if (!write)
        return 0;
    if (sqlite3_prepare_v2(db, "INSERT INTO meta(key, value) VALUES ('salt_check', ?)", -1, &st,
                           NULL) != SQLITE_OK)
        return HUB_ESTORE;
    sqlite3_bind_blob(st, 1, check, 32, SQLITE_STATIC);
    step = sqlite3_step(st);
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : HUB_ESTORE;
}

int lth_access_open(const char *db_path, const uint8_t salt[LTH_ACCESS_SALT_LEN],
                    lth_access_t **out, char *err, size_t err_size)
{
    *out = NULL;
    lth_access_t *self = calloc(1, sizeof *self);
    if (!self)
        return HUB_ENOMEM;
    memcpy(self->salt, salt, LTH_ACCESS_SALT_LEN);
    int rc = 0;
    if (sqlite3_open_v2(db_path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = lth__fail(self->db, "cannot open", db_path, err, err_size);
    } else {
        chmod(db_path, 0600); /* it names agencies, purposes and dossiers */
        sqlite3_busy_timeout(self->db, 5000);
        if (sqlite3_exec(self->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL,
                         NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(self->db, lth__schema, NULL, NULL, NULL) != SQLITE_OK)
            rc = lth__fail(self->db, "cannot set up its tables", db_path, err, err_size);
    }
    bool matches = false;
    if (rc == 0 && lth__salt_check(self->db, salt, true, &matches) != 0)
        rc = lth__fail(self->db, "cannot read its salt check", db_path, err, err_size);
    if (rc == 0 && !matches) {
        snprintf(err, err_size,
                 "access register %s was written with another salt: name its own salt file "
                 "(plugin.access_salt), or move the register aside to start a new one",
                 db_path);
        rc = HUB_EPERM;
    }
    if (rc == 0 &&
        sqlite3_prepare_v2(self->db,
                           "INSERT INTO access(citizen, at_us, requester, service, purpose, "
                           "dossier_code, outcome, message_id) VALUES (?,?,?,?,?,?,?,?)",
                           -1, &self->insert, NULL) != SQLITE_OK)
        rc = lth__fail(self->db, "cannot prepare its statements", db_path, err, err_size);
    if (rc != 0) {
        lth_access_close(&self);
        return rc;
    }
    *out = self;
    return 0;
}

void lth_access_close(lth_access_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lth_access_t *self = *self_p;
    sqlite3_finalize(self->insert);
    sqlite3_close(self->db);
    sodium_memzero(self->salt, sizeof self->salt);
    free(self);
    *self_p = NULL;
}

static void lth__bind_text(sqlite3_stmt *st, int col, const char *s)
{
    s = s ? s : "";
    size_t n = strnlen(s, LTH_ACCESS_TEXT_MAX);
    sqlite3_bind_text(st, col, s, (int)n, SQLITE_TRANSIENT);
}

int lth_access_note(lth_access_t *self, const lth_access_event_t *ev,
                    const char *const *personal_ids, const char *const *outcomes, size_t n)
{
    if (!self || !ev || (n && (!personal_ids || !outcomes)))
        return HUB_EINVAL;
    if (n == 0)
        return 0;
    if (sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t key[32];
        lth__citizen_key(self->salt, personal_ids[i] ? personal_ids[i] : "", key);
        sqlite3_stmt *st = self->insert;
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, key, sizeof key, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)ev->at_us);
        lth__bind_text(st, 3, ev->requester);
        lth__bind_text(st, 4, ev->service);
        lth__bind_text(st, 5, ev->purpose);
        lth__bind_text(st, 6, ev->dossier_code);
        lth__bind_text(st, 7, outcomes[i]);
        lth__bind_text(st, 8, ev->message_id);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = HUB_ESTORE;
    }
    sqlite3_reset(self->insert);
    if (sqlite3_exec(self->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK &&
        rc == 0) {
        rc = HUB_ESTORE;
        sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

static const char *lth__status_name(int status)
{
    switch (status) {
    case LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND: return "FOUND";
    case LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND: return "NOT_FOUND";
    case LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_PERMITTED: return "NOT_PERMITTED";
    case LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_INVALID_KEY: return "INVALID_KEY";
    default: return "UNKNOWN";
    }
}

/* Every key's outcome when the answer as a whole says it (none came, or it
 * refused the request, or the database was unavailable); NULL when each
 * key has its own result. */
static const char *lth__whole_outcome(bool answered, int status)
{
    if (!answered)
        return "UNKNOWN";
    if (status == LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_INVALID)
        return "REFUSED";
    if (status == LTH__DOMAIN__V1__RESPONSE_STATUS__RESPONSE_STATUS_UNAVAILABLE)
        return "UNAVAILABLE";
    return NULL;
}

/* A citizen.lookup answer's outcome for key: results come in the order of
 * the keys, those left out (unchanged since the date) skipped, so it is the
 * first unused result for this key. */
static const char *lth__lookup_outcome(const Lth__Domain__V1__CitizenLookupResponse *resp,
                                       const char *key, bool *used)
{
    for (size_t k = 0; k < resp->n_results; k++) {
        const Lth__Domain__V1__CitizenLookupResult *r = resp->results[k];
        if (!used[k] && r && r->personal_id && !strcmp(r->personal_id, key)) {
            used[k] = true;
            return lth__status_name((int)r->status);
        }
    }
    return "UNCHANGED";
}

/* A citizen.verify answer's outcome for subject i: results come one per
 * subject, in the order asked. */
static const char *lth__verify_outcome(const Lth__Domain__V1__CitizenVerifyResponse *resp, size_t i)
{
    if (i >= resp->n_results || !resp->results[i])
        return "UNKNOWN";
    if (resp->results[i]->status == LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND)
        return resp->results[i]->all_match ? "VERIFIED_MATCH" : "VERIFIED_MISMATCH";
    return lth__status_name((int)resp->results[i]->status);
}

/* Both services: the request (citizen.verify/v1 when verify, else
 * citizen.lookup/v1) and its answer (NULL: none came) read into one
 * outcome per key, noted as one event. */
static int lth__note_answer(lth_access_t *self, bool verify, const char *requester,
                            const char *service, const char *message_id, uint64_t at_us,
                            const uint8_t *request, size_t request_len, const uint8_t *response,
                            size_t response_len)
{
    if (!self)
        return HUB_EINVAL;
    const ProtobufCMessageDescriptor *asks =
        verify ? &lth__domain__v1__citizen_verify_request__descriptor
               : &lth__domain__v1__citizen_lookup_request__descriptor;
    const ProtobufCMessageDescriptor *answers =
        verify ? &lth__domain__v1__citizen_verify_response__descriptor
               : &lth__domain__v1__citizen_lookup_response__descriptor;
    ProtobufCMessage *rq = protobuf_c_message_unpack(asks, NULL, request_len, request);
    if (!rq)
        return 0; /* names no one */
    ProtobufCMessage *rs =
        response ? protobuf_c_message_unpack(answers, NULL, response_len, response) : NULL;
    /* Of each pair, the one that verify names is the message. */
    const Lth__Domain__V1__CitizenLookupRequest *lq = (const void *)rq;
    const Lth__Domain__V1__CitizenVerifyRequest *vq = (const void *)rq;
    const Lth__Domain__V1__CitizenLookupResponse *lr = (const void *)rs;
    const Lth__Domain__V1__CitizenVerifyResponse *vr = (const void *)rs;
    size_t asked = verify ? vq->n_subjects : lq->n_personal_ids;
    size_t n = asked < LTH__MAX_KEYS ? asked : LTH__MAX_KEYS;
    size_t n_results = rs ? (verify ? vr->n_results : lr->n_results) : 0;
    int status = rs ? (int)(verify ? vr->status : lr->status) : 0;
    const char **ids = n ? calloc(n, sizeof *ids) : NULL;
    const char **outcomes = n ? calloc(n, sizeof *outcomes) : NULL;
    bool *used = !verify && n_results ? calloc(n_results, sizeof *used) : NULL;
    int rc = (n && (!ids || !outcomes)) || (!verify && n_results && !used) ? HUB_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (verify)
            ids[i] =
                vq->subjects[i] && vq->subjects[i]->personal_id ? vq->subjects[i]->personal_id : "";
        else
            ids[i] = lq->personal_ids[i] ? lq->personal_ids[i] : "";
        outcomes[i] = lth__whole_outcome(rs != NULL, status);
        if (!outcomes[i])
            outcomes[i] =
                verify ? lth__verify_outcome(vr, i) : lth__lookup_outcome(lr, ids[i], used);
    }
    if (rc == 0) {
        lth_access_event_t ev = {requester,
                                 service,
                                 verify ? vq->purpose : lq->purpose,
                                 verify ? vq->dossier_code : lq->dossier_code,
                                 message_id,
                                 at_us};
        rc = lth_access_note(self, &ev, ids, outcomes, n);
    }
    free(used);
    free(ids);
    free(outcomes);
    if (rs)
        protobuf_c_message_free_unpacked(rs, NULL);
    protobuf_c_message_free_unpacked(rq, NULL);
    return rc;
}

int lth_access_note_lookup(lth_access_t *self, const char *requester, const char *service,
                           const char *message_id, uint64_t at_us, const uint8_t *request,
                           size_t request_len, const uint8_t *response, size_t response_len)
{
    return lth__note_answer(self, false, requester, service, message_id, at_us, request,
                            request_len, response, response_len);
}

int lth_access_note_verify(lth_access_t *self, const char *requester, const char *service,
                           const char *message_id, uint64_t at_us, const uint8_t *request,
                           size_t request_len, const uint8_t *response, size_t response_len)
{
    return lth__note_answer(self, true, requester, service, message_id, at_us, request, request_len,
                            response, response_len);
}

/* ---- queries ------------------------------------------------------------------ */

static const char *lth__col(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? s : "";
}

static int lth__query(sqlite3 *db, const uint8_t salt[LTH_ACCESS_SALT_LEN],
                      const char *personal_id, uint64_t from_us, uint64_t to_us,
                      lth_access_row_cb cb, void *user)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT at_us, requester, service, purpose, dossier_code, outcome, "
                           "message_id FROM access WHERE citizen = ? AND at_us >= ? AND at_us "
                           "<= ? ORDER BY at_us, id",
                           -1, &st, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    uint8_t key[32];
    lth__citizen_key(salt, personal_id, key);
    sqlite3_bind_blob(st, 1, key, sizeof key, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(from_us > INT64_MAX ? INT64_MAX : from_us));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)(to_us > INT64_MAX ? INT64_MAX : to_us));
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        lth_access_row_t row = {(uint64_t)sqlite3_column_int64(st, 0), lth__col(st, 1),
                                lth__col(st, 2), lth__col(st, 3), lth__col(st, 4),
                                lth__col(st, 5), lth__col(st, 6)};
        if (cb(&row, user) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = HUB_ESTORE;
    sqlite3_finalize(st);
    return rc;
}

int lth_access_query(lth_access_t *self, const char *personal_id, uint64_t from_us,
                     uint64_t to_us, lth_access_row_cb cb, void *user)
{
    if (!self || !personal_id || !cb)
        return HUB_EINVAL;
    return lth__query(self->db, self->salt, personal_id, from_us, to_us, cb, user);
}

int lth_access_query_file(const char *db_path, const uint8_t salt[LTH_ACCESS_SALT_LEN],
                          const char *personal_id, uint64_t from_us, uint64_t to_us,
                          lth_access_row_cb cb, void *user, bool *salt_matches, char *err,
                          size_t err_size)
{
    if (!db_path || !personal_id || !cb)
        return HUB_EINVAL;
    if (access(db_path, F_OK) != 0) {
        snprintf(err, err_size, "access register %s: %s", db_path, strerror(errno));
        return HUB_ENOENT;
    }
    sqlite3 *db = NULL;
    int rc = 0;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = lth__fail(db, "cannot open", db_path, err, err_size);
    } else {
        sqlite3_busy_timeout(db, 5000);
        bool matches = false;
        if (lth__salt_check(db, salt, false, &matches) != 0) {
            rc = lth__fail(db, "is not an access register", db_path, err, err_size);
        } else {
            if (salt_matches)
                *salt_matches = matches;
            rc = lth__query(db, salt, personal_id, from_us, to_us, cb, user);
            if (rc != 0)
                lth__fail(db, "cannot read it", db_path, err, err_size);
        }
    }
    sqlite3_close(db);
    return rc;
}

/* ---- time ------------------------------------------------------------------------ */

int lth_access_parse_time(const char *text, bool end_of_day, uint64_t *out_us)
{
    if (!text || !out_us)
        return HUB_EINVAL;
    int y, mo, d, h = 0, mi = 0, s = 0, used = 0;
    size_t len = strlen(text);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (len == 10 && sscanf(text, "%4d-%2d-%2d%n", &y, &mo, &d, &used) == 3 && used == 10) {
        if (end_of_day) {
            h = 23;
            mi = 59;
            s = 59;
        }
    } else if (len == 20 && sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &s,
                                   &used) == 6 &&
               used == 20) {
        end_of_day = false;
    } else {
        return HUB_EINVAL;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return HUB_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    if (t < 0 || tm.tm_mday != d)
        return HUB_EINVAL;
    *out_us = (uint64_t)t * 1000000u + (end_of_day ? 999999u : 0u);
    return 0;
}

void lth_access_format_time(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03uZ", date, (unsigned)(us / 1000u % 1000u));
}
