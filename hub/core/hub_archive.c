#include "hub_archive.h"
#include "hub_core_internal.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_numfiles.h"
#include "hub_sha256.h"
#include "hub_wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUB__MAGIC "LTHARC01"
#define HUB__HEADER_LEN 96
#define HUB__REC_PREFIX 13 /* 'R' u32 len u64 index */
#define HUB__TAG_LEN 16
#define HUB__SEAL_LEN 137
#define HUB__SEAL_SIGNED 73 /* the seal's bytes before its signature */
#define HUB__SEAL_DOMAIN "LTH-ARCHIVE-SEAL-V1"  /* followed by one 0x00 byte */
#define HUB__FILE_DOMAIN "LTH-ARCHIVE-FILE-V1"
#define HUB__DEFAULT_MAX_BYTES (64ull * 1024 * 1024)
#define HUB__DEFAULT_MAX_AGE_US (24ull * 3600 * 1000000)
#define HUB__RECORD_MAX (256u * 1024 * 1024) /* a record's len field */
#define HUB__DAY_US (86400ull * 1000000)
#define HUB__WRITE_AT (1u << 20) /* buffered bytes that put writes out at once */

/* ---- small helpers ---------------------------------------------------- */

static void hub__put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void hub__put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void hub__put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t hub__be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t hub__be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void hub__file_name(unsigned long number, char out[HUB_ARCHIVE_FILE_NAME_MAX])
{
    hub_numfiles_name("archive-", number, ".lar", out, HUB_ARCHIVE_FILE_NAME_MAX);
}

/* The files of dir, in order (hub_numfiles.h). */
static int hub__list_files(const char *dir, hub_numfiles_t *out)
{
    return hub_numfiles_list(dir, "archive-", ".lar", out);
}

void hub_archive_key_id_hex(const uint8_t id[HUB_ARCHIVE_KEY_ID_LEN], char out[17])
{
    sodium_bin2hex(out, 17, id, HUB_ARCHIVE_KEY_ID_LEN);
}

static void hub__key_id(hub_archive_key_t *k)
{
    uint8_t digest[32];
    hub_sha256(k->key, sizeof k->key, digest);
    memcpy(k->id, digest, sizeof k->id);
}

/* The per-file key: HMAC-SHA-256(key, domain || salt). */
static void hub__file_key(const uint8_t key[32], const uint8_t salt[32], uint8_t out[32])
{
    uint8_t msg[sizeof HUB__FILE_DOMAIN - 1 + 32];
    memcpy(msg, HUB__FILE_DOMAIN, sizeof HUB__FILE_DOMAIN - 1);
    memcpy(msg + sizeof HUB__FILE_DOMAIN - 1, salt, 32);
    crypto_auth_hmacsha256(out, msg, sizeof msg, key);
}

/* ---- keys ---------------------------------------------------------------- */

int hub_archive_key_read(const char *path, hub_archive_key_t *out, char *err, size_t err_size)
{
    if (!path || !out)
        return HUB_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_size, "cannot read the archive key file %s: %s%s", path, strerror(e),
                 e == ENOENT ? " (make one with 'hubctl archive keygen FILE')" : "");
        return hub_errno_code(e);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, err_size, "the archive key file %s is not a regular file", path);
        return HUB_EINVAL;
    }
    if (st.st_mode & 077) {
        close(fd);
        snprintf(err, err_size,
                 "the archive key file %s has mode %04o: group or others could read the key "
                 "to every archived message; it must be 0600 (run: chmod 600 %s)",
                 path, (unsigned)(st.st_mode & 07777), path);
        return HUB_EPERM;
    }
    if (st.st_size != HUB_ARCHIVE_KEY_LEN) {
        close(fd);
        snprintf(err, err_size,
                 "the archive key file %s holds %lld bytes; an archive key is exactly %d random "
                 "bytes (make one with 'hubctl archive keygen FILE')",
                 path, (long long)st.st_size, HUB_ARCHIVE_KEY_LEN);
        return HUB_EINVAL;
    }
    size_t got = 0;
    while (got < HUB_ARCHIVE_KEY_LEN) {
        ssize_t n = read(fd, out->key + got, HUB_ARCHIVE_KEY_LEN - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != HUB_ARCHIVE_KEY_LEN) {
        sodium_memzero(out, sizeof *out);
        snprintf(err, err_size, "cannot read the archive key file %s", path);
        return HUB_EIO;
    }
    hub__key_id(out);
    return 0;
}

int hub_archive_key_generate(const char *path, hub_archive_key_t *out, char *err, size_t err_size)
{
    if (!path || !out)
        return HUB_EINVAL;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_size, "cannot create the archive key file %s: %s%s", path, strerror(e),
                 e == EEXIST ? " (an existing key is never overwritten)" : "");
        return hub_errno_code(e);
    }
    randombytes_buf(out->key, sizeof out->key);
    hub__key_id(out);
    ssize_t n = write(fd, out->key, sizeof out->key);
    int rc = n == (ssize_t)sizeof out->key && fsync(fd) == 0 ? 0 : HUB_EIO;
    if (close(fd) != 0)
        rc = HUB_EIO;
    if (rc != 0) {
        unlink(path);
        sodium_memzero(out, sizeof *out);
        snprintf(err, err_size, "cannot write the archive key file %s", path);
    }
    return rc;
}

/* ---- AES-256-GCM ---------------------------------------------------------- */

static void hub__nonce(uint64_t index, uint8_t nonce[12])
{
    memset(nonce, 0, 4);
    hub__put_be64(nonce + 4, index);
}

/* Seals plain into out with the key set by hub__open_file(). */
static int hub__encrypt(EVP_CIPHER_CTX *ctx, uint64_t index, const uint8_t *aad, size_t aad_len,
                        const uint8_t *plain, size_t len, uint8_t *out)
{
    uint8_t nonce[12];
    hub__nonce(index, nonce);
    int n = 0, fin = 0;
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_EncryptUpdate(ctx, out, &n, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, HUB__TAG_LEN, out + len) != 1)
        return HUB_ECRYPTO;
    return 0;
}

/* Opens ct (len bytes of ciphertext, then the tag) into plain; HUB_ECRYPTO
 * when it does not authenticate. */
static int hub__decrypt(EVP_CIPHER_CTX *ctx, const uint8_t key[32], uint64_t index,
                        const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t len,
                        uint8_t *plain)
{
    uint8_t nonce[12];
    hub__nonce(index, nonce);
    int n = 0, fin = 0;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_DecryptUpdate(ctx, plain, &n, ct, (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, HUB__TAG_LEN, (void *)(ct + len)) != 1 ||
        EVP_DecryptFinal_ex(ctx, plain + n, &fin) != 1)
        return HUB_ECRYPTO;
    return 0;
}

/* ---- the plaintext of a record -------------------------------------------- */

static size_t hub__slen(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > UINT16_MAX ? UINT16_MAX : n;
}

static size_t hub__plain_len(const hub_archive_entry_t *e)
{
    return 24 + 2 + hub__slen(e->message_id) + 2 + hub__slen(e->sender) + 2 +
           hub__slen(e->receiver) + 2 + hub__slen(e->service) + 4 + e->envelope_len;
}

static uint8_t *hub__put_str(uint8_t *p, const char *s)
{
    size_t n = hub__slen(s);
    hub__put_be16(p, (uint16_t)n);
    if (n)
        memcpy(p + 2, s, n);
    return p + 2 + n;
}

static void hub__plain_encode(const hub_archive_entry_t *e, uint8_t *p)
{
    hub__put_be64(p, e->hub_seq);
    hub__put_be64(p + 8, e->accepted_at_us);
    hub__put_be64(p + 16, e->archived_at_us);
    p = hub__put_str(p + 24, e->message_id);
    p = hub__put_str(p, e->sender);
    p = hub__put_str(p, e->receiver);
    p = hub__put_str(p, e->service);
    hub__put_be32(p, (uint32_t)e->envelope_len);
    if (e->envelope_len)
        memcpy(p + 4, e->envelope, e->envelope_len);
}

/* Strings of a decoded entry: NUL-terminated copies. */
typedef struct {
    hub_archive_entry_t e;
    char strs[4][UINT16_MAX + 1];
} hub__decoded_t;

static bool hub__get_str(const uint8_t **p, const uint8_t *end, char *out)
{
    if (end - *p < 2)
        return false;
    size_t n = (size_t)(*p)[0] << 8 | (*p)[1];
    if ((size_t)(end - *p - 2) < n)
        return false;
    memcpy(out, *p + 2, n);
    out[n] = '\0';
    *p += 2 + n;
    return true;
}

static bool hub__plain_decode(const uint8_t *p, size_t len, hub__decoded_t *d)
{
    const uint8_t *end = p + len;
    if (len < 24)
        return false;
    d->e.hub_seq = hub__be64(p);
    d->e.accepted_at_us = hub__be64(p + 8);
    d->e.archived_at_us = hub__be64(p + 16);
    p += 24;
    for (int i = 0; i < 4; i++)
        if (!hub__get_str(&p, end, d->strs[i]))
            return false;
    if (end - p < 4 || (size_t)(end - p - 4) != hub__be32(p))
        return false;
    d->e.message_id = d->strs[0];
    d->e.sender = d->strs[1];
    d->e.receiver = d->strs[2];
    d->e.service = d->strs[3];
    d->e.envelope = p + 4;
    d->e.envelope_len = hub__be32(p);
    return true;
}

/* ---- reading a file ---------------------------------------------------------- */

typedef struct {
    uint8_t key_id[8];
    uint64_t number;
    uint64_t created_us;
    uint8_t salt[32];
    uint8_t prev_seal[32];
} hub__header_t;

typedef struct {
    uint64_t records;
    uint64_t first_us, last_us, sealed_us;
    uint8_t flags;
    uint8_t file_sha256[32];
    uint8_t signature[64];
} hub__seal_t;

typedef struct {
    hub__header_t h;
    uint64_t records;       /* whole records */
    size_t complete_len;    /* bytes of the header and the whole records */
    size_t torn;            /* bytes after them, in a file with no seal */
    bool sealed;
    hub__seal_t seal;
    uint8_t body_sha256[32]; /* of the first complete_len bytes */
    uint8_t seal_sha256[32]; /* of the seal's bytes */
    char problem[200];
} hub__scan_t;

/* Called for each whole record: its 13-byte prefix p, the ciphertext and tag
 * after it (ct_len bytes of ciphertext), its index. */
typedef int (*hub__rec_cb)(const uint8_t *p, size_t ct_len, uint64_t index, void *user);

static void hub__seal_decode(const uint8_t *p, hub__seal_t *s)
{
    s->records = hub__be64(p + 1);
    s->first_us = hub__be64(p + 9);
    s->last_us = hub__be64(p + 17);
    s->sealed_us = hub__be64(p + 25);
    s->flags = p[33];
    memcpy(s->file_sha256, p + 41, 32);
    memcpy(s->signature, p + 73, 64);
}

static void hub__seal_encode(const hub__seal_t *s, uint8_t *p)
{
    memset(p, 0, HUB__SEAL_LEN);
    p[0] = 'S';
    hub__put_be64(p + 1, s->records);
    hub__put_be64(p + 9, s->first_us);
    hub__put_be64(p + 17, s->last_us);
    hub__put_be64(p + 25, s->sealed_us);
    p[33] = s->flags;
    memcpy(p + 41, s->file_sha256, 32);
    memcpy(p + 73, s->signature, 64);
}

static void hub__seal_message(const uint8_t *seal_bytes,
                              uint8_t out[sizeof HUB__SEAL_DOMAIN + HUB__SEAL_SIGNED])
{
    memcpy(out, HUB__SEAL_DOMAIN, sizeof HUB__SEAL_DOMAIN); /* with its NUL */
    memcpy(out + sizeof HUB__SEAL_DOMAIN, seal_bytes, HUB__SEAL_SIGNED);
}

/* Walks a file's bytes. HUB_EPARSE (with out->problem) when they are not an
 * archive file; a file without a seal that ends in part of a record is not
 * an error here (out->torn). A callback's non-zero return stops the walk
 * and is returned. */
static int hub__scan(const uint8_t *buf, size_t len, hub__scan_t *out, hub__rec_cb cb, void *user)
{
    memset(out, 0, sizeof *out);
    if (len < HUB__HEADER_LEN || memcmp(buf, HUB__MAGIC, 8) != 0) {
        snprintf(out->problem, sizeof out->problem,
                 len < HUB__HEADER_LEN ? "shorter than an archive file's header"
                                       : "does not start with an archive file's header");
        return HUB_EPARSE;
    }
    memcpy(out->h.key_id, buf + 8, 8);
    out->h.number = hub__be64(buf + 16);
    out->h.created_us = hub__be64(buf + 24);
    memcpy(out->h.salt, buf + 32, 32);
    memcpy(out->h.prev_seal, buf + 64, 32);
    size_t pos = HUB__HEADER_LEN;
    while (pos < len) {
        if (buf[pos] == 'S') {
            if (len - pos < HUB__SEAL_LEN)
                break; /* torn seal */
            if (len - pos > HUB__SEAL_LEN) {
                snprintf(out->problem, sizeof out->problem,
                         "holds %zu bytes after its seal", len - pos - HUB__SEAL_LEN);
                return HUB_EPARSE;
            }
            out->sealed = true;
            hub__seal_decode(buf + pos, &out->seal);
            hub_sha256(buf + pos, HUB__SEAL_LEN, out->seal_sha256);
            break;
        }
        if (buf[pos] != 'R') {
            snprintf(out->problem, sizeof out->problem,
                     "record %" PRIu64 " does not start with a record's mark",
                     out->records + 1);
            return HUB_EPARSE;
        }
        if (len - pos < HUB__REC_PREFIX)
            break;
        uint32_t rlen = hub__be32(buf + pos + 1);
        uint64_t index = hub__be64(buf + pos + 5);
        if (rlen < 8 + HUB__TAG_LEN || rlen > HUB__RECORD_MAX) {
            snprintf(out->problem, sizeof out->problem,
                     "record %" PRIu64 " has an impossible length (%" PRIu32 ")",
                     out->records + 1, rlen);
            return HUB_EPARSE;
        }
        if (len - pos - 5 < rlen)
            break;
        if (index != out->records) {
            snprintf(out->problem, sizeof out->problem,
                     "record %" PRIu64 " carries index %" PRIu64 ": records were removed, "
                     "inserted or reordered",
                     out->records + 1, index);
            return HUB_EPARSE;
        }
        if (cb) {
            int rc = cb(buf + pos, rlen - 8 - HUB__TAG_LEN, index, user);
            if (rc != 0)
                return rc;
        }
        out->records++;
        pos += 5 + rlen;
        out->complete_len = pos;
    }
    if (out->complete_len == 0)
        out->complete_len = HUB__HEADER_LEN;
    if (!out->sealed)
        out->torn = len - out->complete_len;
    else if (out->complete_len != len - HUB__SEAL_LEN) {
        snprintf(out->problem, sizeof out->problem, "has a seal in the middle of a record");
        return HUB_EPARSE;
    }
    hub_sha256(buf, out->complete_len, out->body_sha256);
    return 0;
}

static int hub__read_all(int dir_fd, const char *name, uint8_t **buf_out, size_t *len_out)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hub_errno_code(errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return hub_errno_code(e);
    }
    size_t len = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        close(fd);
        return HUB_ENOMEM;
    }
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    *buf_out = buf;
    *len_out = got;
    return 0;
}

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

static uint64_t hub__now(const hub_archive_t *self)
{
    return self->cfg.clock_us ? self->cfg.clock_us() : hub_now_us();
}

static void hub__fail(hub_archive_t *self, const char *what, int e)
{
    self->broken = true;
    HUB_ERROR("archive", "message archive write failed; archiving stops until the hub restarts",
              "dir=\"%s\" file=archive-%06lu.lar op=%s errno=\"%s\"", self->dir,
              self->file_number, what, strerror(e));
}

static int hub__reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64 * 1024;
    while (ncap < need)
        ncap *= 2;
    uint8_t *grown = realloc(*buf, ncap);
    if (!grown)
        return HUB_ENOMEM;
    *buf = grown;
    *cap = ncap;
    return 0;
}

static int hub__write_out(hub_archive_t *self)
{
    int e = hub_write_all(self->fd, self->buf, self->buf_len);
    if (e != 0) {
        hub__fail(self, "write", e);
        return HUB_EIO;
    }
    self->buf_len = 0;
    return 0;
}

static int hub__sync(hub_archive_t *self)
{
    if (self->fd < 0)
        return 0;
    int rc = hub__write_out(self);
    if (rc == 0 && fdatasync(self->fd) != 0) {
        hub__fail(self, "fdatasync", errno);
        rc = HUB_EIO;
    }
    if (rc == 0 && self->dir_dirty) {
        if (fsync(self->dir_fd) != 0) {
            hub__fail(self, "fsync of the directory", errno);
            rc = HUB_EIO;
        }
        self->dir_dirty = false;
    }
    return rc;
}

/* Appends bytes to the buffer and the file's running hash. */
static int hub__append(hub_archive_t *self, const uint8_t *p, size_t n)
{
    if (hub__reserve(&self->buf, &self->buf_cap, self->buf_len + n) != 0)
        return HUB_ENOMEM;
    memcpy(self->buf + self->buf_len, p, n);
    self->buf_len += n;
    self->file_bytes += n;
    hub_sha256_update(&self->hash, p, n);
    return 0;
}

static int hub__open_file(hub_archive_t *self, uint64_t now)
{
    char name[HUB_ARCHIVE_FILE_NAME_MAX];
    hub__file_name(self->file_number, name);
    int fd = openat(self->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        hub__fail(self, "open", errno);
        return HUB_EIO;
    }
    if (!self->ctx && !(self->ctx = EVP_CIPHER_CTX_new())) {
        close(fd);
        unlinkat(self->dir_fd, name, 0);
        return HUB_ENOMEM;
    }
    uint8_t header[HUB__HEADER_LEN];
    memcpy(header, HUB__MAGIC, 8);
    memcpy(header + 8, self->cfg.key.id, 8);
    hub__put_be64(header + 16, self->file_number);
    hub__put_be64(header + 24, now);
    randombytes_buf(header + 32, 32);
    memcpy(header + 64, self->prev_seal, 32);
    hub__file_key(self->cfg.key.key, header + 32, self->file_key);
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
    return hub__append(self, header, sizeof header);
}

/* Writes the seal of the current file, syncs and closes it. */
static int hub__seal(hub_archive_t *self, uint64_t now, uint8_t flags)
{
    hub__seal_t s = {.records = self->records, .first_us = self->first_us,
                     .last_us = self->last_us, .sealed_us = now, .flags = flags};
    hub_sha256_final(&self->hash, s.file_sha256);
    uint8_t bytes[HUB__SEAL_LEN];
    hub__seal_encode(&s, bytes);
    uint8_t msg[sizeof HUB__SEAL_DOMAIN + HUB__SEAL_SIGNED];
    hub__seal_message(bytes, msg);
    if (crypto_sign_detached(bytes + HUB__SEAL_SIGNED, NULL, msg, sizeof msg,
                             self->cfg.sign_secret) != 0)
        return HUB_ECRYPTO;
    if (hub__reserve(&self->buf, &self->buf_cap, self->buf_len + sizeof bytes) != 0)
        return HUB_ENOMEM;
    memcpy(self->buf + self->buf_len, bytes, sizeof bytes);
    self->buf_len += sizeof bytes;
    int rc = hub__sync(self);
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

static bool hub__rotation_due(const hub_archive_t *self, uint64_t now)
{
    return self->fd >= 0 && (self->file_bytes >= self->cfg.max_file_bytes ||
                             (now > self->created_us &&
                              now - self->created_us >= self->cfg.max_file_age_us));
}

int hub_archive_put(hub_archive_t *self, const hub_archive_entry_t *entry)
{
    if (!self || !entry || (entry->envelope_len && !entry->envelope) ||
        entry->envelope_len > HUB__RECORD_MAX / 2)
        return HUB_EINVAL;
    pthread_mutex_lock(&self->lock);
    int rc = self->broken ? HUB_EIO : 0;
    uint64_t now = hub__now(self);
    if (rc == 0 && hub__rotation_due(self, now))
        rc = hub__seal(self, now, 0);
    if (rc == 0 && self->fd < 0)
        rc = hub__open_file(self, now);
    hub_archive_entry_t e = *entry;
    e.archived_at_us = now;
    size_t plain_len = hub__plain_len(&e);
    if (rc == 0)
        rc = hub__reserve(&self->plain, &self->plain_cap, plain_len);
    size_t rec_len = HUB__REC_PREFIX + plain_len + HUB__TAG_LEN;
    if (rc == 0)
        rc = hub__reserve(&self->buf, &self->buf_cap, self->buf_len + rec_len);
    if (rc == 0) {
        hub__plain_encode(&e, self->plain);
        uint8_t *p = self->buf + self->buf_len;
        p[0] = 'R';
        hub__put_be32(p + 1, (uint32_t)(8 + plain_len + HUB__TAG_LEN));
        hub__put_be64(p + 5, self->records);
        rc = hub__encrypt(self->ctx, self->records, p, HUB__REC_PREFIX, self->plain, plain_len,
                          p + HUB__REC_PREFIX);
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
                rc = hub__write_out(self);
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
    int rc = self->broken ? HUB_EIO : hub__sync(self);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* The seal of a file, read from its last bytes. */
static int hub__read_seal(int dir_fd, const char *name, hub__seal_t *out)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = hub_errno_code(errno);
        return rc ? rc : HUB_EIO; /* never 0: *out is not filled in */
    }
    struct stat st;
    uint8_t bytes[HUB__SEAL_LEN];
    int rc = HUB_EPARSE;
    if (fstat(fd, &st) == 0 && st.st_size >= HUB__HEADER_LEN + HUB__SEAL_LEN &&
        pread(fd, bytes, sizeof bytes, st.st_size - HUB__SEAL_LEN) == (ssize_t)sizeof bytes &&
        bytes[0] == 'S') {
        hub__seal_decode(bytes, out);
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
    uint64_t now = hub__now(self);
    int rc = 0;
    if (!self->broken && hub__rotation_due(self, now))
        rc = hub__seal(self, now, 0);
    hub_numfiles_t files;
    int lrc = hub__list_files(self->dir, &files);
    if (lrc != 0 && rc == 0)
        rc = lrc;
    uint64_t keep_us = (uint64_t)self->cfg.retention_days * HUB__DAY_US;
    size_t n_deleted = 0;
    for (size_t i = 0; lrc == 0 && i < files.count; i++) {
        if (self->fd >= 0 && files.numbers[i] >= self->file_number)
            break; /* the file being written */
        char name[HUB_ARCHIVE_FILE_NAME_MAX];
        hub__file_name(files.numbers[i], name);
        hub__seal_t seal;
        if (hub__read_seal(self->dir_fd, name, &seal) != 0)
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
static int hub__recover(hub_archive_t *self, const char *name, const uint8_t *buf,
                        const hub__scan_t *scan, char *err, size_t err_size)
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
    uint64_t now = hub__now(self);
    int rc = hub__seal(self, now, HUB_ARCHIVE_SEALED_AFTER_CRASH);
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
static int hub__resume(hub_archive_t *self, char *err, size_t err_size)
{
    hub_numfiles_t files;
    int rc = hub__list_files(self->dir, &files);
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
    hub__file_name(last, name);
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = hub__read_all(self->dir_fd, name, &buf, &len);
    if (rc != 0) {
        snprintf(err, err_size, "cannot read the archive file %s/%s: %s", self->dir, name,
                 hub_strerror(rc));
        return rc;
    }
    self->file_number = last;
    if (len < HUB__HEADER_LEN) {
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
        return hub__resume(self, err, err_size);
    }
    hub__scan_t scan;
    rc = hub__scan(buf, len, &scan, NULL, NULL);
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
        rc = hub__recover(self, name, buf, &scan, err, err_size);
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
    int rc = hub__resume(self, err, err_size);
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
            rc = hub__seal(self, hub__now(self), 0);
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

/* ---- reading a directory ---------------------------------------------------- */

typedef struct {
    EVP_CIPHER_CTX *ctx;
    const hub_archive_key_t *key;
    uint8_t file_key[32];
    const char *message_id;
    hub_archive_found_cb found;
    void *user;
    const char *file;
    hub_archive_report_t *report;
    hub__decoded_t *decoded;
    uint8_t *plain;
    size_t plain_cap;
    bool stopped;
} hub__reader_t;

static int hub__on_record(const uint8_t *p, size_t ct_len, uint64_t index, void *user)
{
    hub__reader_t *r = user;
    r->report->records++;
    if (!r->key)
        return 0;
    if (hub__reserve(&r->plain, &r->plain_cap, ct_len + 1) != 0)
        return HUB_ENOMEM;
    if (hub__decrypt(r->ctx, r->file_key, index, p, HUB__REC_PREFIX, p + HUB__REC_PREFIX, ct_len,
                     r->plain) != 0) {
        r->report->record = index + 1;
        snprintf(r->report->message, sizeof r->report->message,
                 "record %" PRIu64 " of %s does not authenticate: its bytes were modified "
                 "(AES-256-GCM tag mismatch)",
                 index + 1, r->file);
        return HUB_ECRYPTO;
    }
    r->report->decrypted++;
    if (!hub__plain_decode(r->plain, ct_len, r->decoded)) {
        r->report->record = index + 1;
        snprintf(r->report->message, sizeof r->report->message,
                 "record %" PRIu64 " of %s decrypts but is not an archive record", index + 1,
                 r->file);
        return HUB_EPARSE;
    }
    if (r->found && r->message_id && !strcmp(r->decoded->e.message_id, r->message_id) &&
        !r->stopped && r->found(&r->decoded->e, r->file, r->user) != 0)
        r->stopped = true;
    sodium_memzero(r->plain, ct_len);
    return 0;
}

static int hub__report(hub_archive_report_t *report, int rc, const char *file, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static int hub__report(hub_archive_report_t *report, int rc, const char *file, const char *fmt,
                       ...)
{
    if (file)
        snprintf(report->file, sizeof report->file, "%s", file);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report->message, sizeof report->message, fmt, ap);
    va_end(ap);
    return rc;
}

int hub_archive_read_dir(const char *dir, const uint8_t *sign_public, const hub_archive_key_t *key,
                         const char *message_id, hub_archive_found_cb found, void *user,
                         hub_archive_report_t *report)
{
    memset(report, 0, sizeof *report);
    if (!dir)
        return HUB_EINVAL;
    hub_numfiles_t files;
    int rc = hub__list_files(dir, &files);
    if (rc != 0)
        return hub__report(report, rc, NULL, "cannot list %s: %s", dir, hub_strerror(rc));
    if (files.count == 0) {
        free(files.numbers);
        return hub__report(report, HUB_ENOENT, NULL, "%s holds no archive files", dir);
    }
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    hub__reader_t r = {.key = key, .message_id = message_id, .found = found, .user = user,
                       .report = report};
    r.ctx = EVP_CIPHER_CTX_new();
    r.decoded = malloc(sizeof *r.decoded);
    if (dir_fd < 0 || !r.ctx || !r.decoded) {
        rc = dir_fd < 0 ? hub_errno_code(errno) : HUB_ENOMEM;
        hub__report(report, rc, NULL, "cannot open %s: %s", dir, hub_strerror(rc));
        goto done;
    }
    uint8_t prev_seal[32];
    char other_ids[64] = "";
    for (size_t i = 0; i < files.count && rc == 0 && !r.stopped; i++) {
        char name[HUB_ARCHIVE_FILE_NAME_MAX];
        hub__file_name(files.numbers[i], name);
        r.file = name;
        bool last = i + 1 == files.count;
        if (i > 0 && files.numbers[i] != files.numbers[i - 1] + 1) {
            char missing[HUB_ARCHIVE_FILE_NAME_MAX];
            hub__file_name(files.numbers[i - 1] + 1, missing);
            rc = hub__report(report, HUB_EPARSE, missing,
                             "%s is missing: the archive files around it are not contiguous",
                             missing);
            break;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        rc = hub__read_all(dir_fd, name, &buf, &len);
        if (rc != 0) {
            hub__report(report, rc, name, "cannot read %s: %s", name, hub_strerror(rc));
            break;
        }
        report->files++;
        /* The header first: it says which key the records need. */
        hub__scan_t scan;
        rc = hub__scan(buf, len, &scan, NULL, NULL);
        bool our_key = rc == 0 && key && !memcmp(scan.h.key_id, key->id, 8);
        if (rc == 0 && key && !our_key) {
            report->other_key_files++;
            char hex[17];
            hub_archive_key_id_hex(scan.h.key_id, hex);
            if (!strstr(other_ids, hex) && strlen(other_ids) + 18 < sizeof other_ids)
                snprintf(other_ids + strlen(other_ids), sizeof other_ids - strlen(other_ids),
                         "%s%s", other_ids[0] ? "," : "", hex);
        }
        if (rc == 0 && our_key) {
            hub__file_key(key->key, scan.h.salt, r.file_key);
            rc = hub__scan(buf, len, &scan, hub__on_record, &r);
            sodium_memzero(r.file_key, sizeof r.file_key);
            if (rc != 0) {
                snprintf(report->file, sizeof report->file, "%s", name);
                if (!report->message[0])
                    hub__report(report, rc, name, "%s: %s", name, scan.problem);
                free(buf);
                break;
            }
        } else if (rc == 0) {
            report->records += scan.records;
        }
        free(buf);
        if (rc != 0) {
            hub__report(report, rc, name, "%s is not a well-formed archive file: it %s", name,
                        scan.problem);
            break;
        }
        if (scan.h.number != files.numbers[i]) {
            rc = hub__report(report, HUB_EPARSE, name,
                             "%s says it is file %" PRIu64 ": files were renamed or swapped",
                             name, scan.h.number);
            break;
        }
        if (i > 0 && memcmp(scan.h.prev_seal, prev_seal, 32) != 0) {
            rc = hub__report(report, HUB_EPARSE, name,
                             "%s does not follow the seal of the file before it: files were "
                             "replaced, swapped or removed",
                             name);
            break;
        }
        if (!scan.sealed) {
            if (!last) {
                rc = hub__report(report, HUB_EPARSE, name,
                                 "%s has no seal but is not the last file: it was cut", name);
                break;
            }
            report->unsealed_records = scan.records;
            rc = hub__report(report, HUB_EAGAIN, name,
                             "%s is not sealed yet (%" PRIu64 " records): normal while hubd "
                             "writes it",
                             name, scan.records);
            break;
        }
        if (memcmp(scan.seal.file_sha256, scan.body_sha256, 32) != 0 ||
            scan.seal.records != scan.records) {
            rc = hub__report(report, HUB_EPARSE, name,
                             "%s does not match its seal: its bytes were modified after it was "
                             "sealed",
                             name);
            break;
        }
        if (sign_public) {
            uint8_t seal_bytes[HUB__SEAL_LEN], msg[sizeof HUB__SEAL_DOMAIN + HUB__SEAL_SIGNED];
            hub__seal_encode(&scan.seal, seal_bytes);
            hub__seal_message(seal_bytes, msg);
            if (crypto_sign_verify_detached(scan.seal.signature, msg, sizeof msg, sign_public) !=
                0) {
                rc = hub__report(report, HUB_ECRYPTO, name,
                                 "the seal of %s is not signed by this hub key: forged, or "
                                 "signed with another key",
                                 name);
                break;
            }
        }
        report->sealed_files++;
        memcpy(prev_seal, scan.seal_sha256, 32);
    }
    if ((rc == 0 || rc == HUB_EAGAIN) && key && report->other_key_files == report->files) {
        char hex[17];
        hub_archive_key_id_hex(key->id, hex);
        rc = hub__report(report, HUB_ECRYPTO, "",
                         "no archive file in %s was written with this key (key id %s); the "
                         "files need key id %s: use the key file hubd's archive_key_file named",
                         dir, hex, other_ids);
    }
done:
    if (dir_fd >= 0)
        close(dir_fd);
    EVP_CIPHER_CTX_free(r.ctx);
    free(r.decoded);
    if (r.plain)
        sodium_memzero(r.plain, r.plain_cap);
    free(r.plain);
    free(files.numbers);
    return rc;
}

/* ---- the commit worker's side ------------------------------------------------ */

int hub__archive_commit(hub_archive_t *archive, const hub__commit_t *job)
{
    if (!archive || job->append_rc != 0)
        return 0;
    int rc = 0;
    size_t n = 0;
    for (size_t i = 0; i < job->n_items; i++) {
        const hub__pending_t *p = &job->items[i];
        if (p->verdict != 0 || job->outcomes[i] != HUB_STORE_OK)
            continue;
        hub_archive_entry_t e = {
            .message_id = p->msg.message_id,
            .sender = p->msg.sender,
            .receiver = p->msg.receiver,
            .service = p->msg.service,
            .hub_seq = p->msg.seq,
            .accepted_at_us = p->msg.accepted_at_us,
            .envelope = p->bytes,
            .envelope_len = p->msg.envelope_len,
        };
        int r = hub_archive_put(archive, &e);
        if (r != 0)
            rc = r;
        n++;
    }
    if (n > 0) {
        int r = hub_archive_flush(archive);
        if (r != 0)
            rc = r;
    }
    return rc;
}

int hub__archive_online(hub_archive_t *archive, const hub__auditq_t *q, size_t n)
{
    if (!archive)
        return 0;
    int rc = 0;
    size_t put = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i].event != HUB_AUDIT_ACCEPTED || !q[i].has_evidence || !q[i].ev.archive ||
            !q[i].ev.bytes)
            continue;
        hub_archive_entry_t e = {
            .message_id = q[i].message_id,
            .sender = q[i].sender,
            .receiver = q[i].receiver,
            .service = q[i].service,
            .hub_seq = 0, /* online-only: never stored */
            .accepted_at_us = q[i].time_us,
            .envelope = q[i].ev.bytes,
            .envelope_len = q[i].ev.len,
        };
        int r = hub_archive_put(archive, &e);
        if (r != 0)
            rc = r;
        put++;
    }
    if (put > 0) {
        int r = hub_archive_flush(archive);
        if (r != 0)
            rc = r;
    }
    return rc;
}
