/* hub_audit.c — the audit log's writer: appends records to the chain,
 * buffers, rotates and syncs files, signs checkpoints, rotates the key; and
 * opening, which finds where the chain stands and checks it against the
 * store's anchor. A hub_audit_t's state is guarded by its mutex: the hub's
 * loop appends and writes while the commit worker appends and flushes, and
 * no thread holds it across a sync a flush makes (hub_audit.h). */
#include "hub_audit_internal.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_numfiles.h"
#include "hub_sha256.h"
#include "hub_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUB__WRITE_BUF (64 * 1024)
#define HUB__DEFAULT_MAX_FILE_BYTES (64ull * 1024 * 1024)
#define HUB__DEFAULT_CP_RECORDS 1000ull
#define HUB__DEFAULT_CP_US (10ull * 1000 * 1000)

/* ---- the writer ------------------------------------------------------------ */

struct hub_audit {
    pthread_mutex_t mu;        /* guards everything below but dir_fd and the key setup */
    char *dir;
    int dir_fd;                /* open for the flock() and for fsync after creating files */
    int fd;                    /* the current file, or -1 until the next write opens one */
    int retired_fd;            /* the file rotation closed, until the next flush syncs it */
    bool dir_dirty;            /* a file was created since the last flush */
    unsigned long file_number; /* of the current file, or of the next one to open */
    uint64_t file_bytes;       /* size of the current file, buffered bytes included */
    bool rotate_pending;       /* the current file is sealed and full: next write rotates */
    bool broken;               /* a write failed: refuse to append after a torn line */
    hub_audit_config_t config; /* with defaults applied; holds the secret key */
    uint64_t seq;              /* of the last record */
    uint8_t head[32];          /* hash of the last line */
    bool head_is_checkpoint;
    uint8_t last_checkpoint[32]; /* hash of the last checkpoint's line */
    uint64_t records_since_checkpoint;
    uint64_t last_checkpoint_us;
    hub_audit_head_t cp_written; /* the last checkpoint appended */
    hub_audit_head_t cp_durable; /* the last one a sync made durable */
    uint64_t gap;                /* records found missing at open (accept_gap) */
    char *gap_notice;            /* what they were, for the RECOVERED record */
    char *notice;
    char *buf;                 /* HUB__WRITE_BUF bytes not yet written */
    size_t buf_len;
    char line[HUB_AUDIT_LINE_MAX];
    uint8_t mac_key[32];       /* hub_audit_envelope_mac()'s key, derived once at open */
    /* HMAC-SHA256 with mac_key, its key blocks hashed once at open: a
     * record's MAC then costs two SHA-256 compressions (same bytes as
     * crypto_auth_hmacsha256(), on hub_sha256's SHA extensions). */
    hub_sha256_t mac_inner, mac_outer;
};

static void audit__fail(hub_audit_t *self, const char *what, int e)
{
    self->broken = true;
    HUB_ERROR("audit", "audit log write failed; appends are refused until the hub restarts",
              "dir=\"%s\" file=audit-%06lu.log op=%s errno=\"%s\"", self->dir, self->file_number,
              what, strerror(e));
}

static int audit__write_out(hub_audit_t *self)
{
    int e = hub_write_all(self->fd, self->buf, self->buf_len);
    if (e != 0) {
        audit__fail(self, "write", e);
        return HUB_EIO;
    }
    self->buf_len = 0;
    return 0;
}

/* Closes the file rotation retired, after syncing it. */
static int audit__sync_retired(hub_audit_t *self)
{
    if (self->retired_fd < 0)
        return 0;
    int rc = 0;
    if (fdatasync(self->retired_fd) != 0) {
        audit__fail(self, "fdatasync", errno);
        rc = HUB_EIO;
    }
    close(self->retired_fd);
    self->retired_fd = -1;
    return rc;
}

/* Makes everything appended so far durable: the buffer, the current file,
 * a file retired by rotation, and the directory entries of new files. */
static int audit__sync(hub_audit_t *self)
{
    int rc = self->fd >= 0 ? audit__write_out(self) : 0;
    if (rc == 0 && self->fd >= 0 && fdatasync(self->fd) != 0) {
        /* After a failed fdatasync the kernel may have dropped the dirty
         * pages: nothing written since the last good sync can be trusted. */
        audit__fail(self, "fdatasync", errno);
        rc = HUB_EIO;
    }
    if (rc == 0)
        rc = audit__sync_retired(self);
    if (rc == 0 && self->dir_dirty) {
        if (fsync(self->dir_fd) != 0) {
            audit__fail(self, "fsync of the directory", errno);
            rc = HUB_EIO;
        }
        self->dir_dirty = false;
    }
    if (rc == 0)
        self->cp_durable = self->cp_written;
    return rc;
}

/* Opens the next file, which must be new or empty; the next flush makes its
 * directory entry durable. */
static int audit__open_next_file(hub_audit_t *self)
{
    char name[HUB_AUDIT_FILE_NAME_MAX];
    audit_record__file_name(self->file_number, name);
    int fd = openat(self->dir_fd, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        audit__fail(self, "open", errno);
        return HUB_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size != 0) {
        close(fd);
        audit__fail(self, "open (the next audit file already holds data)", EEXIST);
        return HUB_EIO;
    }
    self->dir_dirty = true;
    self->fd = fd;
    self->file_bytes = 0;
    return 0;
}

/* Appends a rendered line: rotates first when due, buffers, moves the head. */
static int audit__emit(hub_audit_t *self, const char *line, size_t len, uint64_t seq)
{
    if (self->broken)
        return HUB_EIO;
    if (self->rotate_pending) {
        if (self->fd >= 0) {
            /* The next flush syncs and closes it, so that append never
             * waits for the disk; only a second rotation before that
             * flush has to sync the first one here. */
            int rc = audit__write_out(self);
            if (rc == 0)
                rc = audit__sync_retired(self);
            if (rc != 0)
                return rc;
            self->retired_fd = self->fd;
            self->fd = -1;
        }
        self->file_number++;
        self->rotate_pending = false;
    }
    if (self->fd < 0) {
        int rc = audit__open_next_file(self);
        if (rc != 0)
            return rc;
    }
    if (self->buf_len + len > HUB__WRITE_BUF) {
        int rc = audit__write_out(self);
        if (rc != 0)
            return rc;
    }
    memcpy(self->buf + self->buf_len, line, len);
    self->buf_len += len;
    self->file_bytes += len;
    hub_sha256(line, len, self->head);
    self->seq = seq;
    return 0;
}

static int audit__checkpoint(hub_audit_t *self, uint64_t now_us)
{
    hub_audit_record_t rec = {.event = HUB_AUDIT_CHECKPOINT, .seq = self->seq + 1,
                              .time_us = now_us};
    memcpy(rec.prev_hash, self->head, 32);
    audit__cp_t cp = {.count = self->seq};
    memcpy(cp.prev_checkpoint, self->last_checkpoint, 32);
    uint8_t msg[HUB__AUDIT_CP_MSG_LEN];
    audit_record__cp_message(rec.seq, rec.time_us, cp.count, rec.prev_hash, cp.prev_checkpoint,
                             msg);
    if (crypto_sign_detached(cp.signature, NULL, msg, sizeof msg, self->config.sign_secret) != 0)
        return HUB_ECRYPTO;
    size_t len = 0;
    int rc = audit_record__render(&rec, &cp, self->line, sizeof self->line, &len);
    if (rc == 0)
        rc = audit__emit(self, self->line, len, rec.seq);
    if (rc != 0)
        return rc;
    memcpy(self->last_checkpoint, self->head, 32);
    self->head_is_checkpoint = true;
    self->records_since_checkpoint = 0;
    self->last_checkpoint_us = now_us;
    self->cp_written.seq = rec.seq;
    self->cp_written.time_us = rec.time_us;
    memcpy(self->cp_written.hash, self->head, 32);
    /* The published head: `hubctl audit verify --anchor SEQ:HASH`. */
    char head_hex[65], hash_hex[65];
    sodium_bin2hex(head_hex, sizeof head_hex, rec.prev_hash, 32);
    sodium_bin2hex(hash_hex, sizeof hash_hex, self->head, 32);
    HUB_INFO("audit", "audit checkpoint",
             "seq=%" PRIu64 " hash=%s head=%s anchor=%" PRIu64 ":%s file=audit-%06lu.log",
             rec.seq, hash_hex, head_hex, rec.seq, hash_hex, self->file_number);
    return 0;
}

/* A checkpoint when one is due by count or by size; rotation after a full
 * file's checkpoint. */
static int audit__after_record(hub_audit_t *self)
{
    bool full = self->file_bytes >= self->config.max_file_bytes;
    if (full || self->records_since_checkpoint >= self->config.checkpoint_every_records) {
        int rc = audit__checkpoint(self, hub_now_us());
        if (rc != 0)
            return rc;
        full = self->file_bytes >= self->config.max_file_bytes;
    }
    if (full)
        self->rotate_pending = true;
    return 0;
}

static int audit__append_any(hub_audit_t *self, const hub_audit_record_t *rec)
{
    hub_audit_record_t r = *rec;
    r.legacy = false;   /* new lines are always written in the current format */
    if (r.has_digest) { /* never the bare digest: see hub_audit_envelope_mac() */
        hub_sha256_t st = self->mac_inner;
        uint8_t inner[HUB_SHA256_LEN];
        hub_sha256_update(&st, rec->digest, 32);
        hub_sha256_final(&st, inner);
        st = self->mac_outer;
        hub_sha256_update(&st, inner, sizeof inner);
        hub_sha256_final(&st, r.digest);
    }
    r.seq = self->seq + 1;
    if (!r.time_us)
        r.time_us = hub_now_us();
    memcpy(r.prev_hash, self->head, 32);
    size_t len = 0;
    int rc = audit_record__render(&r, NULL, self->line, sizeof self->line, &len);
    if (rc == 0)
        rc = audit__emit(self, self->line, len, r.seq);
    if (rc != 0)
        return rc;
    self->head_is_checkpoint = false;
    self->records_since_checkpoint++;
    return audit__after_record(self);
}

int hub_audit_append(hub_audit_t *self, const hub_audit_record_t *rec)
{
    if (!self || !rec || rec->event < HUB_AUDIT_ACCEPTED ||
        (rec->event > HUB_AUDIT_MEMBER_REFUSED && rec->event != HUB_AUDIT_TIMESTAMPED) ||
        rec->signature_len > HUB_AUDIT_SIGNATURE_MAX ||
        (rec->signature_len && !rec->signature))
        return HUB_EINVAL;
    pthread_mutex_lock(&self->mu);
    int rc = self->broken ? HUB_EIO : audit__append_any(self, rec);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int hub_audit_tick(hub_audit_t *self, uint64_t now_us)
{
    if (!self)
        return HUB_EINVAL;
    pthread_mutex_lock(&self->mu);
    int rc = self->broken ? HUB_EIO : 0;
    if (rc == 0 && now_us < self->last_checkpoint_us) {
        self->last_checkpoint_us = now_us; /* the wall clock went back */
    } else if (rc == 0 && self->records_since_checkpoint > 0 &&
               now_us - self->last_checkpoint_us >= self->config.checkpoint_every_us) {
        rc = audit__checkpoint(self, now_us);
        if (rc == 0 && self->file_bytes >= self->config.max_file_bytes)
            self->rotate_pending = true;
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

/* What a flush syncs outside the mutex (audit__write_taking). */
typedef struct {
    int fd;               /* a duplicate of the current file's, or -1 */
    int retired;          /* the file rotation retired, or -1 */
    bool dir;             /* a file was created: sync the directory */
    hub_audit_head_t cp;  /* the last checkpoint written: durable after the syncs */
} audit__syncs_t;

/* Writes the buffer out, under the mutex; given to_sync, also takes what a
 * flush then syncs without holding it, so that appends and writes from
 * another thread go on meanwhile (the hub's loop never waits for the disk):
 * the current file through a duplicate of its descriptor, which a rotation
 * meanwhile cannot close, the file rotation retired, and the directory. */
static int audit__write_taking(hub_audit_t *self, audit__syncs_t *to_sync)
{
    if (!self)
        return HUB_EINVAL;
    pthread_mutex_lock(&self->mu);
    int rc = self->broken ? HUB_EIO : self->fd >= 0 && self->buf_len ? audit__write_out(self) : 0;
    if (rc == 0 && to_sync) {
        *to_sync = (audit__syncs_t){-1, self->retired_fd, self->dir_dirty, self->cp_written};
        if (self->fd >= 0 && (to_sync->fd = fcntl(self->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            audit__fail(self, "dup", errno);
            rc = HUB_EIO;
        } else {
            self->retired_fd = -1;
            self->dir_dirty = false;
        }
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int hub_audit_write(hub_audit_t *self)
{
    return audit__write_taking(self, NULL);
}

/* audit__sync, holding the mutex only to write out and to take what needs a
 * sync. What was appended before the call is durable when it returns 0;
 * what another thread appends meanwhile may be too, and the next flush
 * makes sure. */
int hub_audit_flush(hub_audit_t *self)
{
    audit__syncs_t t;
    int rc = audit__write_taking(self, &t);
    if (rc != 0)
        return rc;
    const char *failed = NULL;
    int e = 0;
    if (t.fd >= 0 && fdatasync(t.fd) != 0) {
        failed = "fdatasync";
        e = errno;
    }
    if (t.retired >= 0) {
        if (!failed && fdatasync(t.retired) != 0) {
            failed = "fdatasync";
            e = errno;
        }
        close(t.retired);
    }
    if (!failed && t.dir && fsync(self->dir_fd) != 0) {
        failed = "fsync of the directory";
        e = errno;
    }
    if (t.fd >= 0)
        close(t.fd);
    pthread_mutex_lock(&self->mu);
    if (failed) {
        /* As in audit__sync: nothing since the last good sync is trusted. */
        audit__fail(self, failed, e);
        rc = HUB_EIO;
    } else if (t.cp.seq > self->cp_durable.seq) {
        self->cp_durable = t.cp;
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

uint64_t hub_audit_seq(const hub_audit_t *self)
{
    if (!self)
        return 0;
    pthread_mutex_t *mu = (pthread_mutex_t *)&self->mu; /* a read under the writers' lock */
    pthread_mutex_lock(mu);
    uint64_t seq = self->seq;
    pthread_mutex_unlock(mu);
    return seq;
}

const char *hub_audit_open_notice(const hub_audit_t *self)
{
    return self ? self->notice : NULL;
}

void hub_audit_durable_head(const hub_audit_t *self, hub_audit_head_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self)
        return;
    pthread_mutex_t *mu = (pthread_mutex_t *)&self->mu;
    pthread_mutex_lock(mu);
    *out = self->cp_durable;
    pthread_mutex_unlock(mu);
}

uint64_t hub_audit_gap(const hub_audit_t *self)
{
    return self ? self->gap : 0;
}

int hub_audit_seal(hub_audit_t *self)
{
    if (!self)
        return HUB_EINVAL;
    pthread_mutex_lock(&self->mu);
    int rc = self->broken ? HUB_EIO : 0;
    if (rc == 0 && self->seq > 0 && !self->head_is_checkpoint)
        rc = audit__checkpoint(self, hub_now_us());
    if (rc == 0)
        rc = audit__sync(self);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int hub_audit_rotate_key(hub_audit_t *self, const uint8_t new_secret[64],
                         const uint8_t new_public[32])
{
    if (!self || !new_secret || !new_public)
        return HUB_EINVAL;
    if (self->broken)
        return HUB_EIO;
    uint8_t derived[32];
    crypto_sign_ed25519_sk_to_pk(derived, new_secret);
    if (sodium_memcmp(derived, new_public, 32) != 0 ||
        sodium_memcmp(new_public, self->config.sign_public, 32) == 0)
        return HUB_EINVAL;
    uint8_t msg[HUB__AUDIT_ROT_MSG_LEN], proof[64];
    audit_record__rot_message(self->config.sign_public, new_public, msg);
    if (crypto_sign_detached(proof, NULL, msg, sizeof msg, new_secret) != 0)
        return HUB_ECRYPTO;
    char reason[sizeof HUB__AUDIT_ROT_REASON + 64];
    memcpy(reason, HUB__AUDIT_ROT_REASON, strlen(HUB__AUDIT_ROT_REASON));
    sodium_bin2hex(reason + strlen(HUB__AUDIT_ROT_REASON), 65, new_public, 32);
    hub_audit_record_t rec = {.event = HUB_AUDIT_KEY_ROTATED, .reason = reason,
                              .signature = proof, .signature_len = 64};
    /* The record, then a checkpoint by the old key that seals it. */
    pthread_mutex_lock(&self->mu);
    int rc = audit__append_any(self, &rec);
    if (rc == 0 && !self->head_is_checkpoint)
        rc = audit__checkpoint(self, hub_now_us());
    if (rc == 0)
        rc = audit__sync(self);
    if (rc == 0) {
        memcpy(self->config.sign_secret, new_secret, 64);
        memcpy(self->config.sign_public, new_public, 32);
    }
    pthread_mutex_unlock(&self->mu);
    if (rc != 0)
        return rc;
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, new_public, 32);
    HUB_INFO("audit", "audit signing key rotated", "seq=%" PRIu64 " new_key=%s", self->seq, hex);
    return 0;
}

int hub_audit_close(hub_audit_t **self_p)
{
    if (!self_p || !*self_p)
        return 0;
    hub_audit_t *self = *self_p;
    int rc = 0;
    if (self->broken)
        rc = HUB_EIO;
    else if (self->dir_fd >= 0) {
        if (self->seq > 0 && !self->head_is_checkpoint)
            rc = audit__checkpoint(self, hub_now_us());
        int flushed = audit__sync(self);
        if (rc == 0)
            rc = flushed;
    }
    if (self->fd >= 0)
        close(self->fd);
    if (self->retired_fd >= 0)
        close(self->retired_fd);
    if (self->dir_fd >= 0)
        close(self->dir_fd); /* releases the flock */
    sodium_memzero(&self->config, sizeof self->config);
    sodium_memzero(self->mac_key, sizeof self->mac_key);
    sodium_memzero(&self->mac_inner, sizeof self->mac_inner);
    sodium_memzero(&self->mac_outer, sizeof self->mac_outer);
    free(self->buf);
    free(self->notice);
    free(self->gap_notice);
    free(self->dir);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
    return rc;
}

/* ---- opening: find where the chain stands --------------------------------- */

typedef struct {
    uint64_t lines;          /* complete lines */
    size_t torn_bytes;       /* bytes after the last newline */
    uint64_t seq;            /* of the last complete line */
    uint8_t head[32];        /* its hash */
    bool head_is_checkpoint;
    bool has_checkpoint;     /* the file holds a checkpoint */
    uint64_t checkpoint_seq; /* the last one */
    uint64_t checkpoint_us;
    uint8_t checkpoint_hash[32];
    bool checkpoint_ours;       /* it verifies with the key open was given */
    bool checkpoint_rotates;    /* a KEY_ROTATED record right before it... */
    uint8_t rotated_to[32];     /* ...names this key */
    bool prev_rotates;          /* the line just read is a KEY_ROTATED record */
} audit__tail_t;

/* Reads a file's complete lines. With strict set, each must parse and link
 * to the one before it (the first line's own prev is taken on trust);
 * otherwise lines that do not parse are skipped (used only to find the last
 * checkpoint in older files). */
static int audit__scan_file(hub_audit_t *self, unsigned long number, bool strict, audit__tail_t *t,
                            audit__parsed_t *p, char *err, size_t err_size)
{
    char name[HUB_AUDIT_FILE_NAME_MAX];
    audit_record__file_name(number, name);
    char *buf = NULL;
    size_t len = 0;
    memset(t, 0, sizeof *t);
    int rc = audit_record__read_all(self->dir, name, &buf, &len);
    if (rc != 0) {
        snprintf(err, err_size, "cannot read audit file %s/%s: %s", self->dir, name,
                 hub_strerror(rc));
        return rc;
    }
    char *scratch = malloc(HUB_AUDIT_LINE_MAX);
    if (!scratch) {
        free(buf);
        return HUB_ENOMEM;
    }
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl) {
            t->torn_bytes = len - pos;
            break;
        }
        size_t n = (size_t)(nl - (buf + pos)) + 1;
        const char *line = buf + pos;
        pos += n;
        if (audit_record__parse(line, n, p, scratch) != 0) {
            if (!strict)
                continue;
            snprintf(err, err_size,
                     "audit file %s/%s line %" PRIu64 " is not a well-formed record: the log is "
                     "damaged; run `hubctl audit verify %s`, and move the directory aside to "
                     "start a new log",
                     self->dir, name, t->lines + 1, self->dir);
            rc = HUB_EPARSE;
            break;
        }
        if (strict && t->lines > 0 &&
            (p->rec.seq != t->seq + 1 || memcmp(p->rec.prev_hash, t->head, 32) != 0)) {
            snprintf(err, err_size,
                     "audit file %s/%s line %" PRIu64 " (seq %" PRIu64 ") does not follow the "
                     "line before it: the log is damaged; run `hubctl audit verify %s`, and move "
                     "the directory aside to start a new log",
                     self->dir, name, t->lines + 1, p->rec.seq, self->dir);
            rc = HUB_EPARSE;
            break;
        }
        t->lines++;
        t->seq = p->rec.seq;
        hub_sha256(line, n, t->head);
        t->head_is_checkpoint = p->rec.event == HUB_AUDIT_CHECKPOINT;
        if (t->head_is_checkpoint) {
            t->has_checkpoint = true;
            t->checkpoint_seq = p->rec.seq;
            t->checkpoint_us = p->rec.time_us;
            memcpy(t->checkpoint_hash, t->head, 32);
            uint8_t msg[HUB__AUDIT_CP_MSG_LEN];
            audit_record__cp_message(p->rec.seq, p->rec.time_us, p->cp.count, p->rec.prev_hash,
                                     p->cp.prev_checkpoint, msg);
            t->checkpoint_ours = crypto_sign_verify_detached(p->cp.signature, msg, sizeof msg,
                                                             self->config.sign_public) == 0;
            t->checkpoint_rotates = t->prev_rotates;
            if (!t->prev_rotates)
                memset(t->rotated_to, 0, 32);
        }
        t->prev_rotates = p->rec.event == HUB_AUDIT_KEY_ROTATED &&
                          audit_record__rot_key(p->rec.reason, t->rotated_to);
    }
    free(scratch);
    free(buf);
    return rc;
}

static int audit__file_size(hub_audit_t *self, unsigned long number, uint64_t *size)
{
    char name[HUB_AUDIT_FILE_NAME_MAX];
    audit_record__file_name(number, name);
    struct stat st;
    if (fstatat(self->dir_fd, name, &st, 0) != 0)
        return hub_errno_code(errno);
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Compares the log's last checkpoint (seq 0: none) with the store's
 * anchor. Behind it: refused, or with accept_gap noted in self->gap. */
static int audit__check_anchor(hub_audit_t *self, uint64_t cp_seq, const uint8_t cp_hash[32],
                               unsigned long file, char *err, size_t err_size)
{
    const hub_audit_config_t *c = &self->config;
    if (c->anchor_seq == 0 || cp_seq > c->anchor_seq ||
        (cp_seq == c->anchor_seq && memcmp(cp_hash, c->anchor_hash, 32) == 0))
        return 0;
    char anchor_hex[65], where[160];
    sodium_bin2hex(anchor_hex, sizeof anchor_hex, c->anchor_hash, 32);
    if (cp_seq == 0)
        snprintf(where, sizeof where, "holds no checkpoint at all (files deleted?)");
    else if (cp_seq == c->anchor_seq)
        snprintf(where, sizeof where,
                 "has another checkpoint at seq %" PRIu64 " (audit-%06lu.log): it was replaced",
                 cp_seq, file);
    else
        snprintf(where, sizeof where,
                 "ends at the checkpoint at seq %" PRIu64 " (audit-%06lu.log): records %" PRIu64
                 " to %" PRIu64 " are missing",
                 cp_seq, file, cp_seq + 1, c->anchor_seq);
    if (!c->accept_gap) {
        snprintf(err, err_size,
                 "audit log cut back: the store recorded the checkpoint at seq %" PRIu64
                 " (%.16s...) on an earlier run, but the audit log in %s %s. Restore the "
                 "missing audit files from a backup, or start with audit_accept_gap = yes "
                 "(the gap is recorded, alarm audit_log_cut)",
                 c->anchor_seq, anchor_hex, self->dir, where);
        return HUB_EPARSE;
    }
    self->gap = c->anchor_seq > cp_seq ? c->anchor_seq - cp_seq : 1;
    char *before = self->gap_notice; /* a key change noted already */
    self->gap_notice = malloc(1536);
    if (self->gap_notice)
        snprintf(self->gap_notice, 1536,
                 "%s%saudit log cut back, accepted by the operator (audit_accept_gap): the store "
                 "recorded the checkpoint at seq %" PRIu64 " (hash %s), but the log %s",
                 before ? before : "", before ? "; " : "", c->anchor_seq, anchor_hex, where);
    free(before);
    return 0;
}

/* Writes the RECOVERED record naming an accepted gap, and syncs. */
static int audit__note_gap(hub_audit_t *self, char *err, size_t err_size)
{
    HUB_ERROR("audit", "audit log: going on by operator override (audit_accept_gap or "
                       "audit_accept_key_change); a RECOVERED record says what was found",
              "detail=\"%s\"", self->gap_notice ? self->gap_notice : "");
    hub_audit_record_t rec = {.event = HUB_AUDIT_RECOVERED,
                              .reason = self->gap_notice ? self->gap_notice : "audit log cut back"};
    int rc = audit__append_any(self, &rec);
    if (rc == 0)
        rc = audit__sync(self);
    if (rc != 0)
        snprintf(err, err_size, "cannot write to the audit log in %s: %s", self->dir,
                 hub_strerror(rc));
    return rc;
}

/* Sets the chain state from the files on disk and writes a RECOVERED
 * record when the previous run did not close the log. */
static int audit__resume(hub_audit_t *self, char *err, size_t err_size)
{
    hub_numfiles_t files;
    int rc = audit_record__list_files(self->dir, &files);
    if (rc != 0) {
        snprintf(err, err_size, "cannot list the audit directory %s: %s", self->dir,
                 hub_strerror(rc));
        return rc;
    }
    audit__parsed_t *p = malloc(sizeof *p);
    if (!p) {
        free(files.numbers);
        return HUB_ENOMEM;
    }
    /* The last file holding any bytes decides where the log continues. */
    size_t last = files.count;
    uint64_t last_size = 0;
    for (size_t i = files.count; i-- > 0;) {
        uint64_t size = 0;
        rc = audit__file_size(self, files.numbers[i], &size);
        if (rc != 0) {
            snprintf(err, err_size, "cannot stat audit-%06lu.log in %s: %s", files.numbers[i],
                     self->dir, hub_strerror(rc));
            goto out;
        }
        if (size > 0) {
            last = i;
            last_size = size;
            break;
        }
    }
    self->last_checkpoint_us = hub_now_us();
    if (last == files.count) { /* a new log */
        self->file_number = 1;
        uint8_t none[32] = {0};
        rc = audit__check_anchor(self, 0, none, 0, err, err_size);
        if (rc == 0 && (self->gap || self->gap_notice))
            rc = audit__note_gap(self, err, err_size);
        goto out;
    }

    audit__tail_t tail;
    rc = audit__scan_file(self, files.numbers[last], true, &tail, p, err, err_size);
    if (rc != 0)
        goto out;
    size_t torn_bytes = tail.torn_bytes;
    unsigned long torn_number = files.numbers[last];
    /* The head: the last complete line, maybe in an earlier file when the
     * last one holds only a cut line. */
    size_t head_index = last;
    while (tail.lines == 0 && head_index > 0) {
        head_index--;
        rc = audit__scan_file(self, files.numbers[head_index], true, &tail, p, err, err_size);
        if (rc != 0)
            goto out;
    }
    self->seq = tail.seq;
    memcpy(self->head, tail.head, 32);
    self->head_is_checkpoint = tail.head_is_checkpoint;
    /* The last checkpoint, maybe in an earlier file still. */
    audit__tail_t older = tail;
    size_t cp_index = head_index;
    while (!older.has_checkpoint && cp_index > 0) {
        cp_index--;
        rc = audit__scan_file(self, files.numbers[cp_index], false, &older, p, err, err_size);
        if (rc != 0)
            goto out;
    }
    if (older.has_checkpoint) {
        memcpy(self->last_checkpoint, older.checkpoint_hash, 32);
        self->records_since_checkpoint = self->seq - older.checkpoint_seq;
        self->last_checkpoint_us = older.checkpoint_us;
        self->cp_written.seq = older.checkpoint_seq;
        self->cp_written.time_us = older.checkpoint_us;
        memcpy(self->cp_written.hash, older.checkpoint_hash, 32);
        self->cp_durable = self->cp_written;
    } else {
        self->records_since_checkpoint = self->seq;
    }
    /* The key: the last checkpoint is ours, or the hub's key was rotated
     * to ours by the record just before it. */
    bool key_changed = older.has_checkpoint && !older.checkpoint_ours &&
                       !(older.checkpoint_rotates &&
                         sodium_memcmp(older.rotated_to, self->config.sign_public, 32) == 0);
    if (key_changed && self->config.accept_key_change) {
        HUB_ERROR("audit",
                  "audit signing key changed without a rotation record; going on by operator "
                  "override (audit_accept_key_change): verification will name this point",
                  "dir=%s seq=%" PRIu64, self->dir, self->seq);
        free(self->gap_notice);
        self->gap_notice = malloc(768);
        if (self->gap_notice)
            snprintf(self->gap_notice, 768,
                     "the hub's signing key changed after seq %" PRIu64 " without a KEY_ROTATED "
                     "record (the previous key was not available); operator override "
                     "audit_accept_key_change",
                     self->seq);
        key_changed = false;
    }
    if (key_changed) {
        char key_hex[65];
        sodium_bin2hex(key_hex, sizeof key_hex, self->config.sign_public, 32);
        snprintf(err, err_size,
                 "key change without a rotation record: the audit log's last checkpoint (seq "
                 "%" PRIu64 " in %s/audit-%06lu.log) is not signed by this hub's signing key "
                 "(%.16s...), and no KEY_ROTATED record hands the log over to it. Stop hubd "
                 "and run `hubctl audit rotate-key %s --old-key OLD.secret --new-key NEW.secret` "
                 "with the previous key, or put the previous key_file back",
                 older.checkpoint_seq, self->dir, files.numbers[cp_index], key_hex, self->dir);
        rc = HUB_ECRYPTO;
        goto out;
    }
    rc = audit__check_anchor(
        self, older.has_checkpoint ? older.checkpoint_seq : 0, older.checkpoint_hash,
        files.numbers[older.has_checkpoint ? cp_index : head_index], err, err_size);
    if (rc != 0)
        goto out;

    char reason[HUB_AUDIT_REASON_MAX] = "";
    char torn_name[HUB_AUDIT_FILE_NAME_MAX];
    audit_record__file_name(torn_number, torn_name);
    size_t notice_size = 512;
    if (torn_bytes > 0) {
        /* Never append after a cut line: continue in a new file. */
        self->file_number = torn_number + 1;
        audit_record__torn_reason(reason, sizeof reason, torn_name, torn_bytes, self->seq);
        self->notice = malloc(notice_size);
        if (self->notice)
            snprintf(self->notice, notice_size,
                     "%s/%s ends with %zu bytes of an incomplete record (the hub crashed during "
                     "a write); they are left in place and the log continues in "
                     "audit-%06lu.log after a RECOVERED record",
                     self->dir, torn_name, torn_bytes, self->file_number);
    } else {
        self->file_number = files.numbers[last];
        if (last_size >= self->config.max_file_bytes) {
            self->file_number++;
        } else {
            self->fd = openat(self->dir_fd, torn_name, O_WRONLY | O_APPEND | O_CLOEXEC);
            if (self->fd < 0) {
                rc = hub_errno_code(errno);
                snprintf(err, err_size, "cannot open %s/%s for appending: %s", self->dir,
                         torn_name, strerror(errno));
                goto out;
            }
            self->file_bytes = last_size;
        }
        if (self->seq > 0 && !self->head_is_checkpoint) {
            snprintf(reason, sizeof reason,
                     "the previous run ended without a closing checkpoint (a crash or a kill); "
                     "the %" PRIu64 " records after the last checkpoint are sealed by the next "
                     "checkpoint",
                     self->records_since_checkpoint);
            self->notice = malloc(notice_size);
            if (self->notice)
                snprintf(self->notice, notice_size,
                         "the audit log in %s ends with %" PRIu64 " records after its last "
                         "checkpoint (the hub crashed or was killed); a RECOVERED record notes "
                         "it and the next checkpoint seals them",
                         self->dir, self->records_since_checkpoint);
        }
    }
    if (self->notice) {
        HUB_WARN("audit", "audit log recovered after an unclean stop", "detail=\"%s\"",
                 self->notice);
        hub_audit_record_t rec = {.event = HUB_AUDIT_RECOVERED, .reason = reason};
        rc = audit__append_any(self, &rec);
        if (rc == 0)
            rc = audit__sync(self);
        if (rc != 0)
            snprintf(err, err_size, "cannot write to the audit log in %s: %s", self->dir,
                     hub_strerror(rc));
    }
    if (rc == 0 && (self->gap || self->gap_notice))
        rc = audit__note_gap(self, err, err_size);
out:
    free(p);
    free(files.numbers);
    return rc;
}

int hub_audit_open(const char *dir, const hub_audit_config_t *config, hub_audit_t **out,
                   char *err, size_t err_size)
{
    char dummy[1];
    if (!err || !err_size) {
        err = dummy;
        err_size = sizeof dummy;
    }
    err[0] = '\0';
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!dir || !dir[0] || !config) {
        snprintf(err, err_size, "hub_audit_open needs a directory and a configuration");
        return HUB_EINVAL;
    }
    if (sodium_init() < 0) {
        snprintf(err, err_size, "libsodium could not be initialised");
        return HUB_ECRYPTO;
    }
    uint8_t derived[32];
    crypto_sign_ed25519_sk_to_pk(derived, config->sign_secret);
    if (sodium_memcmp(derived, config->sign_public, 32) != 0) {
        snprintf(err, err_size,
                 "the audit signing key's public half does not match its secret half: check the "
                 "hub's key file");
        return HUB_EINVAL;
    }
    hub_audit_t *self = calloc(1, sizeof *self);
    if (!self)
        return HUB_ENOMEM;
    pthread_mutex_init(&self->mu, NULL);
    self->fd = -1;
    self->retired_fd = -1;
    self->dir_fd = -1;
    self->config = *config;
    audit_record__mac_key(self->config.sign_secret, self->mac_key);
    {
        uint8_t pad[64];
        memset(pad, 0x36, sizeof pad);
        for (size_t i = 0; i < sizeof self->mac_key; i++)
            pad[i] ^= self->mac_key[i];
        hub_sha256_init(&self->mac_inner);
        hub_sha256_update(&self->mac_inner, pad, sizeof pad);
        memset(pad, 0x5c, sizeof pad);
        for (size_t i = 0; i < sizeof self->mac_key; i++)
            pad[i] ^= self->mac_key[i];
        hub_sha256_init(&self->mac_outer);
        hub_sha256_update(&self->mac_outer, pad, sizeof pad);
        sodium_memzero(pad, sizeof pad);
    }
    if (!self->config.max_file_bytes)
        self->config.max_file_bytes = HUB__DEFAULT_MAX_FILE_BYTES;
    if (!self->config.checkpoint_every_records)
        self->config.checkpoint_every_records = HUB__DEFAULT_CP_RECORDS;
    if (!self->config.checkpoint_every_us)
        self->config.checkpoint_every_us = HUB__DEFAULT_CP_US;
    self->dir = strdup(dir);
    self->buf = malloc(HUB__WRITE_BUF);
    int rc = 0;
    if (!self->dir || !self->buf) {
        rc = HUB_ENOMEM;
        goto fail;
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        rc = hub_errno_code(errno);
        snprintf(err, err_size, "cannot create the audit directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    self->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        rc = hub_errno_code(errno);
        snprintf(err, err_size, "cannot open the audit directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (flock(self->dir_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? HUB_EAGAIN : hub_errno_code(errno);
        snprintf(err, err_size,
                 "the audit log in %s is open in another process (another hubd?): only one "
                 "writer may append to it",
                 dir);
        goto fail;
    }
    rc = audit__resume(self, err, err_size);
    if (rc != 0)
        goto fail;
    if (self->config.node_id[0]) {
        /* Who writes from here on: several nodes of one hub each keep a log. */
        self->config.node_id[sizeof self->config.node_id - 1] = '\0';
        char reason[HUB_AUDIT_WORD_MAX + 32];
        snprintf(reason, sizeof reason, "node %s opened the log", self->config.node_id);
        hub_audit_record_t rec = {
            .event = HUB_AUDIT_NODE_OPENED, .outcome = self->config.node_id, .reason = reason};
        rc = audit__append_any(self, &rec);
        if (rc == 0)
            rc = hub_audit_flush(self);
        if (rc != 0) {
            snprintf(err, err_size, "cannot write to the audit log in %s: %s", dir,
                     hub_strerror(rc));
            goto fail;
        }
    }
    *out = self;
    return 0;
fail:
    /* Nothing of ours is on disk that close would need to seal. */
    self->broken = true;
    hub_audit_close(&self);
    return rc;
}

