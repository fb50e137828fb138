/* hub_store_env.c — the store's life: opening (or creating) the LMDB
 * environment and its tables, checking and upgrading the store format,
 * closing, reading or copying a store from outside (inspect, backup), and
 * the audit log's anchor in the meta table. */
#include "hub_store_internal.h"

#include "hub_error.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_MAP_BYTES (1ull << 30)

/* ---- errors ---------------------------------------------------------------- */

/* Sentences go into err through hub_errf (hub_error.h). */

/* ---- formats ------------------------------------------------------------- */

/* Upgrades a format-1 store to format 2 inside open's transaction: counts
 * what each member holds (one scan of msgs) and records the new format. */
static int upgrade_format_1_to_2(hub_store_t *self, MDB_txn *txn)
{
    int rc = store_held__recount(self, txn);
    if (rc == 0) {
        uint8_t fb[4];
        hub_put_le32(fb, 2);
        MDB_val fk = store__str_val("format"), fv = {4, fb};
        rc = store_batch__map_rc(mdb_put(txn, self->meta, &fk, &fv, 0));
    }
    return rc;
}

/* Format 3 names the store: a random id and its creation time, written once
 * (for a new store, or an upgrade from format 1 or 2) and never again, so
 * that a backup and its restore can be matched. */
static int upgrade_to_format_3(hub_store_t *self, MDB_txn *txn, const char *dir, char *err,
                               size_t err_size)
{
    uint8_t id[16], at[8];
    if (getrandom(id, sizeof id, 0) != (ssize_t)sizeof id) {
        hub_errf(err, err_size, "store %s: no random bytes for its id: %s", dir, strerror(errno));
        return HUB_EIO;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hub_put_le64(at, (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
    MDB_val ik = store__str_val("store_id"), iv = {sizeof id, id};
    MDB_val ak = store__str_val("created_at"), av = {sizeof at, at};
    int rc = mdb_put(txn, self->meta, &ik, &iv, 0);
    if (rc == 0)
        rc = mdb_put(txn, self->meta, &ak, &av, 0);
    if (rc != 0)
        hub_errf(err, err_size, "store %s: cannot write its id: %s", dir, mdb_strerror(rc));
    return store_batch__map_rc(rc);
}

/* ---- open and close ------------------------------------------------------ */

static int mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

/* The names this module keeps in LMDB's main database. */
static const char *const db_names[] = {"meta", "msgs", "queue", "expiry", "attempts", "depth",
                                       "ids",  "age",  "dead",  "held",   "requests"};

static bool known_db(const MDB_val *k)
{
    for (size_t i = 0; i < sizeof db_names / sizeof db_names[0]; i++)
        if (k->mv_size == strlen(db_names[i]) && !memcmp(k->mv_data, db_names[i], k->mv_size))
            return true;
    return false;
}

static int last_seq(MDB_txn *txn, MDB_dbi dbi, uint64_t *out)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc != 0)
        return store_batch__map_rc(rc);
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    *out = 0;
    if (rc == 0 && k.mv_size != HUB__SEQ_KEY)
        rc = MDB_CORRUPTED;
    else if (rc == 0)
        *out = hub_get_be64(k.mv_data);
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : store_batch__map_rc(rc);
}

/* Opens (creating) the databases and checks the format; in one txn. */
static int open_dbs(hub_store_t *self, const char *dir, char *err, size_t err_size)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc != 0) {
        hub_errf(err, err_size, "store %s: cannot start a transaction: %s", dir, mdb_strerror(rc));
        return store_batch__map_rc(rc);
    }
    /* A valid LMDB file that some other program wrote has other names in
     * its main database; refuse it rather than mix our data into it. */
    MDB_dbi main_dbi;
    MDB_cursor *c = NULL;
    rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (rc == 0)
        rc = mdb_cursor_open(txn, main_dbi, &c);
    MDB_val k, v;
    bool foreign = false;
    while (rc == 0 && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0)
        foreign |= !known_db(&k);
    if (c)
        mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND || foreign) {
        mdb_txn_abort(txn);
        hub_errf(err, err_size,
                 "store %s: data.mdb is %s: move %s aside and restart to begin with an empty "
                 "store, or restore it from backup",
                 dir, foreign ? "an LMDB file but not a Liên Thông Hub store" : mdb_strerror(rc),
                 dir);
        return HUB_ESTORE;
    }
    MDB_dbi *dbis[] = {&self->meta,     &self->msgs,  &self->queue,   &self->expiry,
                       &self->attempts, &self->depth, &self->ids,     &self->age,
                       &self->dead,     &self->held,  &self->requests};
    rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof dbis / sizeof dbis[0]; i++)
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, dbis[i]);
    if (rc != 0) {
        mdb_txn_abort(txn);
        hub_errf(err, err_size,
                 "store %s: cannot open its tables (%s): move %s aside and restart to begin with "
                 "an empty store, or restore it from backup",
                 dir, mdb_strerror(rc), dir);
        return store_batch__map_rc(rc) == HUB_EFULL ? HUB_EFULL : HUB_ESTORE;
    }

    MDB_val fk = store__str_val("format");
    rc = mdb_get(txn, self->meta, &fk, &v);
    uint64_t last_msg = 0, last_dead = 0, next = 0;
    bool found = false;
    int hrc = 0;
    uint32_t format = 0;
    if (rc == 0) {
        format = v.mv_size == 4 ? hub_get_le32(v.mv_data) : 0;
        if (format < HUB__STORE_FORMAT_OLDEST || format > HUB_STORE_FORMAT) {
            mdb_txn_abort(txn);
            if (format > HUB_STORE_FORMAT)
                hub_errf(err, err_size,
                         "store %s: written in store format %u by a newer hubd; this hubd reads "
                         "formats %u to %u: install the newer hubd again, or restore the backup "
                         "taken before the upgrade with 'hubctl restore BACKUP-DIR'",
                         dir, format, HUB__STORE_FORMAT_OLDEST, HUB_STORE_FORMAT);
            else
                hub_errf(err, err_size,
                         "store %s: its format record is damaged: move %s aside and restart to "
                         "begin with an empty store, or restore it from backup",
                         dir, dir);
            return HUB_ESTORE;
        }
        rc = 0;
        if (format == 1) {
            hrc = upgrade_format_1_to_2(self, txn);
            if (hrc != 0) {
                mdb_txn_abort(txn);
                hub_errf(err, err_size,
                         "store %s: cannot upgrade it from store format 1 to %u (%s): make room "
                         "on the disk and restart, or run the previous hubd version",
                         dir, HUB_STORE_FORMAT, hub_strerror(hrc));
                return hrc == HUB_EFULL || hrc == HUB_ENOMEM ? hrc : HUB_ESTORE;
            }
        }
        if (format < HUB_STORE_FORMAT)
            self->upgraded_from = format;
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
    self->opened_format = format;
    /* A new store, or an upgrade from an older format, step by step in this
     * one transaction: format 3 added the store's id; format 4 changed
     * only the de-duplication records, whose old form still decodes (its
     * digest is unknown, hub_store_codec.h), so nothing is rewritten. Then
     * the format itself. */
    if (rc == 0 && format < 3) {
        hrc = upgrade_to_format_3(self, txn, dir, err, err_size);
        if (hrc != 0) {
            mdb_txn_abort(txn);
            return hrc == HUB_EFULL || hrc == HUB_ENOMEM || hrc == HUB_EIO ? hrc : HUB_ESTORE;
        }
    }
    if (rc == 0 && format < HUB_STORE_FORMAT) {
        uint8_t fb[4];
        hub_put_le32(fb, HUB_STORE_FORMAT);
        MDB_val fv = {sizeof fb, fb};
        rc = mdb_put(txn, self->meta, &fk, &fv, 0);
    }
    if (rc == 0) {
        MDB_val nk = store__str_val("next_seq");
        hrc = store_batch__get_u64(txn, self->meta, &nk, &next, &found);
        if (hrc == 0)
            hrc = last_seq(txn, self->msgs, &last_msg);
        if (hrc == 0)
            hrc = last_seq(txn, self->dead, &last_dead);
        /* next_seq is written with every seq handed out; if it is missing
         * while messages exist, or behind them, seqs could be reused. */
        if (hrc == 0 && (found ? next == 0 || next <= last_msg || next <= last_dead
                               : last_msg != 0 || last_dead != 0))
            hrc = HUB_ESTORE;
        if (hrc == 0 && !found)
            hrc = store_batch__put_u64(txn, self->meta, &nk, 1);
    }
    if (rc != 0 || hrc != 0) {
        mdb_txn_abort(txn);
        int code = rc != 0 ? store_batch__map_rc(rc) : hrc;
        hub_errf(err, err_size,
                 "store %s: its sequence counter is %s: move %s aside and restart to begin "
                 "with an empty store, or restore it from backup",
                 dir, rc != 0 ? mdb_strerror(rc) : "missing or behind the stored messages", dir);
        return code == HUB_EFULL || code == HUB_ENOMEM || code == HUB_EPERM ? code : HUB_ESTORE;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        hub_errf(err, err_size, "store %s: cannot write its header: %s", dir, mdb_strerror(rc));
        return store_batch__map_rc(rc);
    }
    return 0; /* hub_server logs an upgrade (hub_store_upgraded_from) */
}

/* The files hold personal data: make sure group and others cannot read them,
 * even when they were created by an older build or restored from backup. */
static void tighten_mode(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        (void)chmod(path, st.st_mode & 0700);
}

int store_env__lmdb_open(const char *dir, const hub_store_limits_t *limits, hub_store_t **out,
                         char *err, size_t err_size)
{
    if (out)
        *out = NULL;
    if (!dir || !*dir || !out || strlen(dir) > PATH_MAX - 16) {
        hub_errf(err, err_size, "store: no directory given, or its path is too long");
        return HUB_EINVAL;
    }
    int e = mkdir_p(dir);
    if (e != 0) {
        hub_errf(err, err_size, "store %s: cannot create the directory: %s%s", dir, strerror(e),
                 e == EACCES ? " (check the permissions of its parent)" : "");
        return e == EACCES || e == EPERM || e == EROFS ? HUB_EPERM : HUB_EIO;
    }
    struct stat dir_st;
    if (stat(dir, &dir_st) != 0 || !S_ISDIR(dir_st.st_mode)) {
        hub_errf(err, err_size, "store %s: exists but is not a directory: give a directory", dir);
        return HUB_EINVAL;
    }
    hub_store_t *self = calloc(1, sizeof *self);
    if (!self || pthread_mutex_init(&self->batch_lock, NULL) != 0) {
        free(self);
        hub_errf(err, err_size, "store %s: out of memory", dir);
        return HUB_ENOMEM;
    }
    self->base.ops = &store_env__lmdb_ops;
    if (limits)
        self->limits = *limits;
    if (self->limits.reserve_percent > 50) {
        hub_errf(err, err_size,
                 "store %s: reserve_percent is %u; give 0 (no reserve) to 50 percent of the store",
                 dir, self->limits.reserve_percent);
        store_env__lmdb_close(&self);
        return HUB_EINVAL;
    }
    uint64_t map = self->limits.max_bytes ? self->limits.max_bytes : DEFAULT_MAP_BYTES;
    if (map > SIZE_MAX) {
        store_env__lmdb_close(&self);
        hub_errf(err, err_size, "store %s: max_bytes is larger than this machine can map", dir);
        return HUB_EINVAL;
    }

    int rc = mdb_env_create(&self->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(self->env, 16);
    if (rc == 0)
        rc = mdb_env_set_mapsize(self->env, (size_t)map);
    if (rc != 0) {
        hub_errf(err, err_size, "store %s: cannot set up LMDB: %s", dir, mdb_strerror(rc));
        store_env__lmdb_close(&self);
        return store_batch__map_rc(rc);
    }
    /* MDB_NOTLS: read transactions are not tied to a thread, so the loop
     * thread can read while the worker thread writes. No MDB_NOSYNC: an
     * append is durable when it returns. */
    rc = mdb_env_open(self->env, dir, MDB_NOTLS, 0600);
    if (rc != 0) {
        int code = store_batch__map_rc(rc);
        if (code == HUB_EPERM)
            hub_errf(err, err_size,
                     "store %s: %s: make the directory and its files owned and writable by the "
                     "user that runs hubd (directory 0700, files 0600)",
                     dir, mdb_strerror(rc));
        else if (code == HUB_ENOMEM || code == HUB_EFULL)
            hub_errf(err, err_size, "store %s: cannot map the store: %s", dir, mdb_strerror(rc));
        else {
            code = HUB_ESTORE;
            hub_errf(err, err_size,
                     "store %s: data.mdb is corrupt, not an LMDB file, from another LMDB "
                     "version, or unreadable (%s): move %s aside and restart to begin with an "
                     "empty store, or restore it from backup",
                     dir, mdb_strerror(rc), dir);
        }
        store_env__lmdb_close(&self);
        return code;
    }
    tighten_mode(dir, "data.mdb");
    tighten_mode(dir, "lock.mdb");

    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(self->env, &info);
    mdb_env_stat(self->env, &st);
    self->page_size = st.ms_psize;
    self->map_bytes = info.me_mapsize;
    self->limit_pages = self->map_bytes / self->page_size / 10 * 9;
    self->reserve_pages =
        self->map_bytes / self->page_size * (90 - self->limits.reserve_percent) / 100;
    if (self->limits.reserve_percent == 0 || self->reserve_pages > self->limit_pages)
        self->reserve_pages = self->limit_pages;

    rc = open_dbs(self, dir, err, err_size);
    if (rc != 0) {
        store_env__lmdb_close(&self);
        return rc;
    }
    *out = self;
    return 0;
}

uint32_t store_env__lmdb_upgraded_from(const hub_store_t *self)
{
    return self ? self->upgraded_from : 0;
}

void store_env__lmdb_close(hub_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_store_t *self = *self_p;
    if (self->batch)
        mdb_txn_abort(self->batch); /* and its child, if a read is in progress */
    if (self->env)
        mdb_env_close(self->env);
    pthread_mutex_destroy(&self->batch_lock);
    free(self);
    *self_p = NULL;
}

uint32_t store_env__lmdb_opened_format(const hub_store_t *self)
{
    return self ? self->opened_format : 0;
}

static void info_fill(MDB_txn *txn, MDB_dbi meta, hub_store_info_t *out)
{
    MDB_val k = store__str_val("format"), v;
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 4)
        out->format = hub_get_le32(v.mv_data);
    k = store__str_val("store_id");
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 16) {
        static const char hex[] = "0123456789abcdef";
        const uint8_t *b = v.mv_data;
        for (size_t i = 0; i < 16; i++) {
            out->store_id[2 * i] = hex[b[i] >> 4];
            out->store_id[2 * i + 1] = hex[b[i] & 15];
        }
        out->store_id[32] = '\0';
    }
    k = store__str_val("created_at");
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 8)
        out->created_at_us = hub_get_le64(v.mv_data);
    k = store__str_val("next_seq");
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 8)
        out->next_seq = hub_get_le64(v.mv_data);
}

/* Opens dir's environment read-only, from any process, while hubd may run
 * (LMDB's readers share the lock file with the writer). */
static int env_open_rdonly(const char *dir, unsigned flags, MDB_env **env, char *err,
                           size_t err_size)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path) {
        hub_errf(err, err_size, "store %s: path too long", dir);
        return HUB_EINVAL;
    }
    if (stat(path, &st) != 0) {
        int e = errno;
        hub_errf(err, err_size, "store %s: no data.mdb (%s)", dir, strerror(e));
        return e == ENOENT ? HUB_ENOENT : e == EACCES ? HUB_EPERM : HUB_EIO;
    }
    int rc = mdb_env_create(env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(*env, 16);
    if (rc == 0)
        rc = mdb_env_open(*env, dir, MDB_RDONLY | MDB_NOTLS | flags, 0600);
    if (rc != 0) {
        int code = store_batch__map_rc(rc);
        hub_errf(err, err_size, "store %s: cannot open it read-only: %s%s", dir, mdb_strerror(rc),
                 code == HUB_EPERM ? " (run as root or as the user that runs hubd)" : "");
        if (*env)
            mdb_env_close(*env);
        *env = NULL;
        return code == HUB_EPERM ? code : HUB_ESTORE;
    }
    return 0;
}

static int inspect_env(MDB_env *env, const char *dir, hub_store_info_t *out, char *err,
                       size_t err_size)
{
    MDB_txn *txn = NULL;
    MDB_dbi meta, msgs, dead;
    memset(out, 0, sizeof *out);
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        txn = NULL;
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "msgs", 0, &msgs);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "dead", 0, &dead);
    if (rc != 0) {
        if (txn)
            mdb_txn_abort(txn);
        hub_errf(err, err_size, "store %s: not a Liên Thông Hub store (%s)", dir, mdb_strerror(rc));
        return HUB_ESTORE;
    }
    info_fill(txn, meta, out);
    MDB_stat ms, ds;
    if (mdb_stat(txn, msgs, &ms) == 0 && mdb_stat(txn, dead, &ds) == 0) {
        out->messages = ms.ms_entries - (ms.ms_entries >= ds.ms_entries ? ds.ms_entries : 0);
        out->dead = ds.ms_entries;
    }
    mdb_txn_abort(txn);
    if (out->format < HUB__STORE_FORMAT_OLDEST || out->format > HUB_STORE_FORMAT) {
        hub_errf(err, err_size,
                 "store %s: store format %u; this hubd reads formats %u to %u: install the hubd "
                 "that wrote it, or restore a backup taken with this version",
                 dir, out->format, HUB__STORE_FORMAT_OLDEST, HUB_STORE_FORMAT);
        return HUB_ESTORE;
    }
    return 0;
}

int store_env__lmdb_inspect(const char *dir, hub_store_info_t *out, char *err, size_t err_size)
{
    MDB_env *env = NULL;
    memset(out, 0, sizeof *out);
    int rc = env_open_rdonly(dir, 0, &env, err, err_size);
    if (rc != 0)
        return rc;
    rc = inspect_env(env, dir, out, err, err_size);
    mdb_env_close(env);
    return rc;
}

int store_env__lmdb_backup(const char *dir, const char *dest_dir, hub_store_info_t *out, char *err,
                           size_t err_size)
{
    MDB_env *env = NULL;
    memset(out, 0, sizeof *out);
    int rc = env_open_rdonly(dir, 0, &env, err, err_size);
    if (rc != 0)
        return rc;
    rc = inspect_env(env, dir, out, err, err_size); /* a store of a known format */
    if (rc == 0) {
        int e = mkdir_p(dest_dir);
        if (e != 0) {
            hub_errf(err, err_size, "backup %s: cannot create it: %s", dest_dir, strerror(e));
            rc = e == EACCES || e == EPERM || e == EROFS ? HUB_EPERM : HUB_EIO;
        }
    }
    if (rc == 0) {
        /* One read transaction: a consistent snapshot while hubd writes;
         * compacting drops free pages, so the copy is as small as the data. */
        int mrc = mdb_env_copy2(env, dest_dir, MDB_CP_COMPACT);
        if (mrc != 0) {
            hub_errf(err, err_size, "backup of store %s into %s failed: %s", dir, dest_dir,
                     mdb_strerror(mrc));
            rc = store_batch__map_rc(mrc) == HUB_ESTORE ? HUB_EIO : store_batch__map_rc(mrc);
        }
    }
    mdb_env_close(env);
    if (rc != 0)
        return rc;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/data.mdb", dest_dir);
    (void)chmod(path, 0600);
    /* What the copy holds, read from the copy itself (without a lock file:
     * nothing else opens it): the snapshot is later than any look at the
     * source, and the manifest must describe exactly this. */
    rc = env_open_rdonly(dest_dir, MDB_NOLOCK, &env, err, err_size);
    if (rc == 0) {
        rc = inspect_env(env, dest_dir, out, err, err_size);
        mdb_env_close(env);
    }
    return rc;
}

/* ---- the audit log's anchor (meta "audit_anchor": u64 seq || 32-byte hash) */

int store_env__lmdb_audit_anchor_get(hub_store_t *self, uint64_t *seq, uint8_t hash[32])
{
    *seq = 0;
    memset(hash, 0, 32);
    MDB_txn *txn;
    int rc = store_batch__txn_read(self, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = store__str_val("audit_anchor"), v;
    int mrc = mdb_get(txn, self->meta, &k, &v);
    if (mrc == 0 && v.mv_size == 40) {
        *seq = hub_get_le64(v.mv_data);
        memcpy(hash, (const uint8_t *)v.mv_data + 8, 32);
    } else if (mrc == 0) {
        rc = HUB_ESTORE;
    } else if (mrc != MDB_NOTFOUND) {
        rc = store_batch__map_rc(mrc);
    }
    store_batch__txn_read_end(self, txn);
    return rc;
}

int store_env__lmdb_audit_anchor_put(hub_store_t *self, uint64_t seq, const uint8_t hash[32])
{
    MDB_txn *txn = NULL;
    int rc = store_batch__txn_write(self, &txn);
    if (rc != 0)
        return rc;
    uint8_t buf[40];
    hub_put_le64(buf, seq);
    memcpy(buf + 8, hash, 32);
    MDB_val k = store__str_val("audit_anchor"), v = {sizeof buf, buf};
    rc = store_batch__map_rc(mdb_put(txn, self->meta, &k, &v, 0));
    return store_batch__txn_finish(self, txn, rc);
}

/* The LMDB backend behind hub_store.h's dispatchers (hub_store.c). */
const store_backend__ops_t store_env__lmdb_ops = {
    .name = "lmdb",
    .close = store_env__lmdb_close,
    .upgraded_from = store_env__lmdb_upgraded_from,
    .opened_format = store_env__lmdb_opened_format,
    .batch_begin = store_batch__lmdb_batch_begin,
    .batch_commit = store_batch__lmdb_batch_commit,
    .batch_abort = store_batch__lmdb_batch_abort,
    .append = store_queue__lmdb_append,
    .next_seq = store_queue__lmdb_next_seq,
    .audit_anchor_get = store_env__lmdb_audit_anchor_get,
    .audit_anchor_put = store_env__lmdb_audit_anchor_put,
    .read_queue = store_queue__lmdb_read_queue,
    .ack = store_queue__lmdb_ack,
    .note_attempts = store_queue__lmdb_note_attempts,
    .expired = store_queue__lmdb_expired,
    .queues = store_queue__lmdb_queues,
    .dead_letter = store_dlq__lmdb_dead_letter,
    .dlq_list = store_dlq__lmdb_dlq_list,
    .dlq_get = store_dlq__lmdb_dlq_get,
    .dlq_replay = store_dlq__lmdb_dlq_replay,
    .dlq_purge = store_dlq__lmdb_dlq_purge,
    .dlq_purge_older = store_dlq__lmdb_dlq_purge_older,
    .lookup = store_dedup__lmdb_lookup,
    .prune_dedup = store_dedup__lmdb_prune_dedup,
    .usage = store_held__lmdb_usage,
    .held = store_held__lmdb_held,
    .held_total = store_held__lmdb_held_total,
    .requests_put = store_dedup__lmdb_requests_put,
    .requests_del = store_dedup__lmdb_requests_del,
    .requests_load = store_dedup__lmdb_requests_load,
};
