/* hub_archive.c — the message archive's writer: appends each accepted
 * envelope, encrypted, to the current file, seals and rotates files, expires
 * old ones, and on opening recovers a file a crash left unsealed. One
 * hub_archive_t, its calls serialised by its own lock. */
#include "hub_archive_internal.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_numfiles.h"
#include "hub_sha256.h"
#include "hub_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUB__DEFAULT_MAX_BYTES (64ull * 1024 * 1024)
#define HUB__DEFAULT_MAX_AGE_US (24ull * 3600 * 1000000)
#define HUB__DAY_US (86400ull * 1000000)
#define HUB__WRITE_AT (1u << 20) /* buffered bytes that put writes out at once */

/* ---- the writer ------------------------------------------------------------------ */

struct hub_archive {
    pthread_mutex_t lock;
    char *dir;
    int dir_fd;                  /* holds the flock; fsync after creating files */
    int fd;                      /* the current file, or -1 */
    bool dir_dirty;
    bool broken;                 /* a write failed: refuse to go on after a torn record */
    hub_archive_config_t cfg;    /* with defaults; holds the keys */
    unsigned long file_number;   /* of the current file, or of the next one */
    uint8_t prev_seal[32];       /* SHA-256 of the last seal written */
    /* The current file. */
    uint8_t file_key[32];
    uint64_t created_us, first_us, last_us;
    uint64_t records;
    uint64_t file_bytes;         /* buffered bytes included */
    hub_sha256_t hash;           /* of every byte of it so far */
    EVP_CIPHER_CTX *ctx;
    uint8_t *buf;                /* bytes not yet written */
    size_t buf_len, buf_cap;
    uint8_t *plain;              /* scratch for one record's plaintext */
    size_t plain_cap;
};

static uint64_t archive__now(const hub_archive_t *self)
{
    return self->cfg.clock_us ? self->cfg.clock_us() : hub_now_us();
}

static void archive__fail(hub_archive_t *self, const char *what, int e)
{
    self->broken = true;
    HUB_ERROR("archive", "message archive write failed; archiving stops until the hub restarts",
              "dir=\"%s\" file=archive-%06lu.lar op=%s errno=\"%s\"", self->dir,
              self->file_number, what, strerror(e));
}

static int archive__write_out(hub_archive_t *self)
{
    int e = hub_write_all(self->fd, self->buf, self->buf_len);
    if (e != 0) {
        archive__fail(self, "write", e);
        return HUB_EIO;
    }
    self->buf_len = 0;
    return 0;
}

static int archive__sync(hub_archive_t *self)
{
    if (self->fd < 0)
        return 0;
    int rc = archive__write_out(self);
    if (rc == 0 && fdatasync(self->fd) != 0) {
        archive__fail(self, "fdatasync", errno);
        rc = HUB_EIO;
    }
    if (rc == 0 && self->dir_dirty) {
        if (fsync(self->dir_fd) != 0) {
            archive__fail(self, "fsync of the directory", errno);
            rc = HUB_EIO;
        }
        self->dir_dirty = false;
    }
    return rc;
}

/* Appends bytes to the buffer and the file's running hash. */
static int archive__append(hub_archive_t *self, const uint8_t *p, size_t n)
{
    if (archive_format__reserve(&self->buf, &self->buf_cap, self->buf_len + n) != 0)
        return HUB_ENOMEM;
    memcpy(self->buf + self->buf_len, p, n);
    self->buf_len += n;
    self->file_bytes += n;
    hub_sha256_update(&self->hash, p, n);
    return 0;
}

static int archive__open_file(hub_archive_t *self, uint64_t now)
{
    char name[HUB_ARCHIVE_FILE_NAME_MAX];
    archive_format__file_name(self->file_number, name);
    int fd = openat(self->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        archive__fail(self, "open", errno);
        return HUB_EIO;
    }
    if (!self->ctx && !(self->ctx = EVP_CIPHER_CTX_new())) {
        close(fd);
        unlinkat(self->dir_fd, name, 0);
        return HUB_ENOMEM;
    }
    uint8_t header[HUB__ARCHIVE_HEADER_LEN];
    memcpy(header, HUB__ARCHIVE_MAGIC, 8);
    memcpy(header + 8, self->cfg.key.id, 8);
    hub_put_be64(header + 16, self->file_number);
    hub_put_be64(header + 24, now);
    randombytes_buf(header + 32, 32);
    memcpy(header + 64, self->prev_seal, 32);
    archive_format__file_key(self->cfg.key.key, header + 32, self->file_key);
    if (EVP_EncryptInit_ex(self->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(self->ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_EncryptInit_ex(self->ctx, NULL, NULL, self->file_key, NULL) != 1) {
        close(fd);
        unlinkat(self->dir_fd, name, 0);
        return HUB_ECRYPTO;
    }
    self->fd = fd;
    self->dir_dirty = true;
    self->created_us = now;
    self->first_us = self->last_us = 0;
    self->records = 0;
    self->file_bytes = 0;
    self->buf_len = 0;
    hub_sha256_init(&self->hash);
    return archive__append(self, header, sizeof header);
}

/* Writes the seal of the current file, syncs and closes it. */
static int archive__seal(hub_archive_t *self, uint64_t now, uint8_t flags)
{
    archive__seal_t s = {.records = self->records,
                         .first_us = self->first_us,
                         .last_us = self->last_us,
                         .sealed_us = now,
                         .flags = flags};
    hub_sha256_final(&self->hash, s.file_sha256);
    uint8_t bytes[HUB__ARCHIVE_SEAL_LEN];
    archive_format__seal_encode(&s, bytes);
    uint8_t msg[sizeof HUB__ARCHIVE_SEAL_DOMAIN + HUB__ARCHIVE_SEAL_SIGNED];
    archive_format__seal_message(bytes, msg);
    if (crypto_sign_detached(bytes + HUB__ARCHIVE_SEAL_SIGNED, NULL, msg, sizeof msg,
                             self->cfg.sign_secret) != 0)
        return HUB_ECRYPTO;
    if (archive_format__reserve(&self->buf, &self->buf_cap, self->buf_len + sizeof bytes) != 0)
        return HUB_ENOMEM;
    memcpy(self->buf + self->buf_len, bytes, sizeof bytes);
    self->buf_len += sizeof bytes;
    int rc = archive__sync(self);
    if (rc != 0)
        return rc;
    close(self->fd);
    self->fd = -1;
    hub_sha256(bytes, sizeof bytes, self->prev_seal);
    sodium_memzero(self->file_key, sizeof self->file_key);
    HUB_INFO("archive", "archive file sealed", "file=archive-%06lu.lar records=%" PRIu64,
             self->file_number, self->records);
    self->file_number++;
    return 0;
}

static bool archive__rotation_due(const hub_archive_t *self, uint64_t now)
{
    return self->fd >= 0 && (self->file_bytes >= self->cfg.max_file_bytes ||
                             (now > self->created_us &&
                              now - self->created_us >= self->cfg.max_file_age_us));
}

int hub_archive_put(hub_archive_t *self, const hub_archive_entry_t *entry)
{
    if (!self || !entry || (entry->envelope_len && !entry->envelope) ||
        entry->envelope_len > HUB__ARCHIVE_RECORD_MAX / 2)
        return HUB_EINVAL;
    pthread_mutex_lock(&self->lock);
    int rc = self->broken ? HUB_EIO : 0;
    uint64_t now = archive__now(self);
    if (rc == 0 && archive__rotation_due(self, now))
        rc = archive__seal(self, now, 0);
    if (rc == 0 && self->fd < 0)
        rc = archive__open_file(self, now);
    hub_archive_entry_t e = *entry;
    e.archived_at_us = now;
    size_t plain_len = archive_format__plain_len(&e);
    if (rc == 0)
        rc = archive_format__reserve(&self->plain, &self->plain_cap, plain_len);
    size_t rec_len = HUB__ARCHIVE_REC_PREFIX + plain_len + HUB__ARCHIVE_TAG_LEN;
    if (rc == 0)
        rc = archive_format__reserve(&self->buf, &self->buf_cap, self->buf_len + rec_len);
    if (rc == 0) {
        archive_format__plain_encode(&e, self->plain);
        uint8_t *p = self->buf + self->buf_len;
        p[0] = 'R';
        hub_put_be32(p + 1, (uint32_t)(8 + plain_len + HUB__ARCHIVE_TAG_LEN));
        hub_put_be64(p + 5, self->records);
        rc = archive_format__encrypt(self->ctx, self->records, p, HUB__ARCHIVE_REC_PREFIX,
                                     self->plain, plain_len, p + HUB__ARCHIVE_REC_PREFIX);
        sodium_memzero(self->plain, plain_len);
        if (rc == 0) {
            hub_sha256_update(&self->hash, p, rec_len);
            self->buf_len += rec_len;
            self->file_bytes += rec_len;
            if (!self->records)
                self->first_us = now;
            self->last_us = now;
            self->records++;
            /* Large commits go to the file as they come (the flush still
             * syncs them), so that the buffer stays small. */
            if (self->buf_len >= HUB__WRITE_AT)
                rc = archive__write_out(self);
        }
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int hub_archive_flush(hub_archive_t *self)
{
    if (!self)
        return HUB_EINVAL;
    pthread_mutex_lock(&self->lock);
    int rc = self->broken ? HUB_EIO : archive__sync(self);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* The seal of a file, read from its last bytes. */
static int archive__read_seal(int dir_fd, const char *name, archive__seal_t *out)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = hub_errno_code(errno);
        return rc ? rc : HUB_EIO; /* never 0: *out is not filled in */
    }
    struct stat st;
    uint8_t bytes[HUB__ARCHIVE_SEAL_LEN];
    int rc = HUB_EPARSE;
    if (fstat(fd, &st) == 0 && st.st_size >= HUB__ARCHIVE_HEADER_LEN + HUB__ARCHIVE_SEAL_LEN &&
        pread(fd, bytes, sizeof bytes, st.st_size - HUB__ARCHIVE_SEAL_LEN) ==
            (ssize_t)sizeof bytes &&
        bytes[0] == 'S') {
        archive_format__seal_decode(bytes, out);
        rc = 0;
    }
    close(fd);
    return rc;
}

int hub_archive_maintain(hub_archive_t *self, size_t *deleted)
{
    if (deleted)
        *deleted = 0;
    if (!self)
        return HUB_EINVAL;
    pthread_mutex_lock(&self->lock);
    uint64_t now = archive__now(self);
    int rc = 0;
    if (!self->broken && archive__rotation_due(self, now))
        rc = archive__seal(self, now, 0);
    hub_numfiles_t files;
    int lrc = archive_format__list_files(self->dir, &files);
    if (lrc != 0 && rc == 0)
        rc = lrc;
    uint64_t keep_us = (uint64_t)self->cfg.retention_days * HUB__DAY_US;
    size_t n_deleted = 0;
    for (size_t i = 0; lrc == 0 && i < files.count; i++) {
        if (self->fd >= 0 && files.numbers[i] >= self->file_number)
            break; /* the file being written */
        char name[HUB_ARCHIVE_FILE_NAME_MAX];
        archive_format__file_name(files.numbers[i], name);
        archive__seal_t seal;
        if (archive__read_seal(self->dir_fd, name, &seal) != 0)
            break; /* not sealed: never deleted unread (`hubctl archive verify`) */
        if (seal.sealed_us > now || now - seal.sealed_us < keep_us)
            break; /* oldest first: the rest are newer */
        if (unlinkat(self->dir_fd, name, 0) != 0) {
            HUB_WARN("archive", "cannot delete an expired archive file", "file=%s errno=\"%s\"",
                     name, strerror(errno));
            break;
        }
        n_deleted++;
        HUB_INFO("archive", "expired archive file deleted", "file=%s records=%" PRIu64
                 " retention_days=%" PRIu32, name, seal.records, self->cfg.retention_days);
    }
    if (n_deleted > 0 && fsync(self->dir_fd) != 0 && rc == 0)
        rc = HUB_EIO;
    free(files.numbers);
    pthread_mutex_unlock(&self->lock);
    if (deleted)
        *deleted = n_deleted;
    return rc;
}

/* Seals a last file a crash left open: cut back to its last whole record,
 * then the seal (flag HUB_ARCHIVE_SEALED_AFTER_CRASH). */
static int archive__recover(hub_archive_t *self, const char *name, const uint8_t *buf,
                            const archive__scan_t *scan, char *err, size_t err_size)
{
    int fd = openat(self->dir_fd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || (scan->torn && ftruncate(fd, (off_t)scan->complete_len) != 0)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, err_size, "cannot seal the archive file %s/%s left open by a crash: %s",
                 self->dir, name, strerror(e));
        return HUB_EIO;
    }
    if (lseek(fd, 0, SEEK_END) < 0) {
        close(fd);
        return HUB_EIO;
    }
    self->fd = fd;
    self->records = scan->records;
    self->created_us = scan->h.created_us;
    self->first_us = self->last_us = 0;
    self->buf_len = 0;
    hub_sha256_init(&self->hash);
    hub_sha256_update(&self->hash, buf, scan->complete_len);
    uint64_t now = archive__now(self);
    int rc = archive__seal(self, now, HUB_ARCHIVE_SEALED_AFTER_CRASH);
    if (rc != 0) {
        snprintf(err, err_size, "cannot seal the archive file %s/%s left open by a crash: %s",
                 self->dir, name, hub_strerror(rc));
        return rc;
    }
    HUB_WARN("archive", "an archive file left open by a crash was sealed",
             "file=%s records=%" PRIu64 " torn_bytes=%zu", name, scan->records, scan->torn);
    return 0;
}

/* Finds where the chain stands: the last file's seal, or seals it. */
static int archive__resume(hub_archive_t *self, char *err, size_t err_size)
{
    hub_numfiles_t files;
    int rc = archive_format__list_files(self->dir, &files);
    if (rc != 0) {
        snprintf(err, err_size, "cannot list the archive directory %s: %s", self->dir,
                 hub_strerror(rc));
        return rc;
    }
    self->file_number = 1;
    if (files.count == 0) {
        free(files.numbers);
        return 0;
    }
    unsigned long last = files.numbers[files.count - 1];
    free(files.numbers);
    char name[HUB_ARCHIVE_FILE_NAME_MAX];
    archive_format__file_name(last, name);
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = archive_format__read_all(self->dir_fd, name, &buf, &len);
    if (rc != 0) {
        snprintf(err, err_size, "cannot read the archive file %s/%s: %s", self->dir, name,
                 hub_strerror(rc));
        return rc;
    }
    self->file_number = last;
    if (len < HUB__ARCHIVE_HEADER_LEN) {
        /* A crash between creating the file and writing its header: nothing
         * in it was ever acknowledged. */
        free(buf);
        if (unlinkat(self->dir_fd, name, 0) != 0) {
            snprintf(err, err_size, "cannot remove the empty archive file %s/%s: %s", self->dir,
                     name, strerror(errno));
            return HUB_EIO;
        }
        HUB_WARN("archive", "removed an archive file a crash left without a header", "file=%s",
                 name);
        if (last == 1)
            return 0;
        return archive__resume(self, err, err_size);
    }
    archive__scan_t scan;
    rc = archive_format__scan(buf, len, &scan, NULL, NULL);
    if (rc == 0 && scan.h.number != last) {
        snprintf(scan.problem, sizeof scan.problem, "says it is file %" PRIu64, scan.h.number);
        rc = HUB_EPARSE;
    }
    if (rc != 0) {
        snprintf(err, err_size,
                 "the archive file %s/%s is damaged (%s): run 'hubctl archive verify %s', and "
                 "move the directory aside to start a new archive",
                 self->dir, name, scan.problem, self->dir);
        free(buf);
        return rc;
    }
    if (scan.sealed) {
        memcpy(self->prev_seal, scan.seal_sha256, 32);
        self->file_number = last + 1;
    } else {
        rc = archive__recover(self, name, buf, &scan, err, err_size);
    }
    free(buf);
    return rc;
}

int hub_archive_open(const char *dir, const hub_archive_config_t *config, hub_archive_t **out,
                     char *err, size_t err_size)
{
    *out = NULL;
    if (!dir || !*dir || !config || config->retention_days == 0) {
        snprintf(err, err_size, "the archive needs a directory and a retention of 1 day or more");
        return HUB_EINVAL;
    }
    uint8_t derived[32];
    if (crypto_sign_ed25519_sk_to_pk(derived, config->sign_secret) != 0 ||
        sodium_memcmp(derived, config->sign_public, 32) != 0) {
        snprintf(err, err_size, "the archive's signing key pair does not match");
        return HUB_EINVAL;
    }
    hub_archive_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        free(self);
        return HUB_ENOMEM;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->fd = -1;
    self->cfg = *config;
    if (!self->cfg.max_file_bytes)
        self->cfg.max_file_bytes = HUB__DEFAULT_MAX_BYTES;
    if (!self->cfg.max_file_age_us)
        self->cfg.max_file_age_us = HUB__DEFAULT_MAX_AGE_US;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create the archive directory %s: %s", dir,
                 strerror(errno));
        int rc = hub_errno_code(errno);
        self->dir_fd = -1;
        hub_archive_close(&self);
        return rc;
    }
    self->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        int e = errno;
        snprintf(err, err_size, "cannot open the archive directory %s: %s", dir, strerror(e));
        hub_archive_close(&self);
        return hub_errno_code(e);
    }
    if (flock(self->dir_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, err_size, "the archive directory %s is in use by another process", dir);
        hub_archive_close(&self);
        return HUB_EAGAIN;
    }
    int rc = archive__resume(self, err, err_size);
    if (rc != 0) {
        hub_archive_close(&self);
        return rc;
    }
    *out = self;
    return 0;
}

int hub_archive_close(hub_archive_t **self_p)
{
    if (!self_p || !*self_p)
        return 0;
    hub_archive_t *self = *self_p;
    int rc = 0;
    if (self->fd >= 0) {
        if (!self->broken)
            rc = archive__seal(self, archive__now(self), 0);
        if (self->fd >= 0)
            close(self->fd);
    }
    if (self->dir_fd >= 0)
        close(self->dir_fd);
    EVP_CIPHER_CTX_free(self->ctx);
    pthread_mutex_destroy(&self->lock);
    sodium_memzero(&self->cfg, sizeof self->cfg);
    sodium_memzero(self->file_key, sizeof self->file_key);
    free(self->buf);
    free(self->plain);
    free(self->dir);
    free(self);
    *self_p = NULL;
    return rc;
}

