/* hub_archive_format.c — the message archive's file format, shared by the
 * writer (hub_archive.c) and the reader (hub_archive_read.c): file names,
 * the archive key and each file's key, AES-256-GCM records, the plaintext
 * of an entry, seals, and the walk over one file's bytes that checks them.
 * Pure functions but for the key files and archive_format__read_all(). */
#include "hub_archive_internal.h"
#include "hub_error.h"
#include "hub_numfiles.h"
#include "hub_sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void archive_format__file_name(unsigned long number, char out[HUB_ARCHIVE_FILE_NAME_MAX])
{
    hub_numfiles_name("archive-", number, ".lar", out, HUB_ARCHIVE_FILE_NAME_MAX);
}

/* The files of dir, in order (hub_numfiles.h). */
int archive_format__list_files(const char *dir, hub_numfiles_t *out)
{
    return hub_numfiles_list(dir, "archive-", ".lar", out);
}

void hub_archive_key_id_hex(const uint8_t id[HUB_ARCHIVE_KEY_ID_LEN], char out[17])
{
    sodium_bin2hex(out, 17, id, HUB_ARCHIVE_KEY_ID_LEN);
}

static void archive_format__key_id(hub_archive_key_t *k)
{
    uint8_t digest[32];
    hub_sha256(k->key, sizeof k->key, digest);
    memcpy(k->id, digest, sizeof k->id);
}

/* The per-file key: HMAC-SHA-256(key, domain || salt). */
void archive_format__file_key(const uint8_t key[32], const uint8_t salt[32], uint8_t out[32])
{
    uint8_t msg[sizeof HUB__ARCHIVE_FILE_DOMAIN - 1 + 32];
    memcpy(msg, HUB__ARCHIVE_FILE_DOMAIN, sizeof HUB__ARCHIVE_FILE_DOMAIN - 1);
    memcpy(msg + sizeof HUB__ARCHIVE_FILE_DOMAIN - 1, salt, 32);
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
    archive_format__key_id(out);
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
    archive_format__key_id(out);
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

static void archive_format__nonce(uint64_t index, uint8_t nonce[12])
{
    memset(nonce, 0, 4);
    hub_put_be64(nonce + 4, index);
}

/* Seals plain into out with the key set by archive__open_file(). */
int archive_format__encrypt(EVP_CIPHER_CTX *ctx, uint64_t index, const uint8_t *aad, size_t aad_len,
                            const uint8_t *plain, size_t len, uint8_t *out)
{
    uint8_t nonce[12];
    archive_format__nonce(index, nonce);
    int n = 0, fin = 0;
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_EncryptUpdate(ctx, out, &n, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, HUB__ARCHIVE_TAG_LEN, out + len) != 1)
        return HUB_ECRYPTO;
    return 0;
}

/* Opens ct (len bytes of ciphertext, then the tag) into plain; HUB_ECRYPTO
 * when it does not authenticate. */
int archive_format__decrypt(EVP_CIPHER_CTX *ctx, const uint8_t key[32], uint64_t index,
                            const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t len,
                            uint8_t *plain)
{
    uint8_t nonce[12];
    archive_format__nonce(index, nonce);
    int n = 0, fin = 0;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_DecryptUpdate(ctx, plain, &n, ct, (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, HUB__ARCHIVE_TAG_LEN, (void *)(ct + len)) !=
            1 ||
        EVP_DecryptFinal_ex(ctx, plain + n, &fin) != 1)
        return HUB_ECRYPTO;
    return 0;
}

/* ---- the plaintext of a record -------------------------------------------- */

static size_t archive_format__slen(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > UINT16_MAX ? UINT16_MAX : n;
}

size_t archive_format__plain_len(const hub_archive_entry_t *e)
{
    return 24 + 2 + archive_format__slen(e->message_id) + 2 + archive_format__slen(e->sender) + 2 +
           archive_format__slen(e->receiver) + 2 + archive_format__slen(e->service) + 4 +
           e->envelope_len;
}

static uint8_t *archive_format__put_str(uint8_t *p, const char *s)
{
    size_t n = archive_format__slen(s);
    hub_put_be16(p, (uint16_t)n);
    if (n)
        memcpy(p + 2, s, n);
    return p + 2 + n;
}

void archive_format__plain_encode(const hub_archive_entry_t *e, uint8_t *p)
{
    hub_put_be64(p, e->hub_seq);
    hub_put_be64(p + 8, e->accepted_at_us);
    hub_put_be64(p + 16, e->archived_at_us);
    p = archive_format__put_str(p + 24, e->message_id);
    p = archive_format__put_str(p, e->sender);
    p = archive_format__put_str(p, e->receiver);
    p = archive_format__put_str(p, e->service);
    hub_put_be32(p, (uint32_t)e->envelope_len);
    if (e->envelope_len)
        memcpy(p + 4, e->envelope, e->envelope_len);
}

static bool archive_format__get_str(const uint8_t **p, const uint8_t *end, char *out)
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

bool archive_format__plain_decode(const uint8_t *p, size_t len, archive__decoded_t *d)
{
    const uint8_t *end = p + len;
    if (len < 24)
        return false;
    d->e.hub_seq = hub_get_be64(p);
    d->e.accepted_at_us = hub_get_be64(p + 8);
    d->e.archived_at_us = hub_get_be64(p + 16);
    p += 24;
    for (int i = 0; i < 4; i++)
        if (!archive_format__get_str(&p, end, d->strs[i]))
            return false;
    if (end - p < 4 || (size_t)(end - p - 4) != hub_get_be32(p))
        return false;
    d->e.message_id = d->strs[0];
    d->e.sender = d->strs[1];
    d->e.receiver = d->strs[2];
    d->e.service = d->strs[3];
    d->e.envelope = p + 4;
    d->e.envelope_len = hub_get_be32(p);
    return true;
}

void archive_format__seal_decode(const uint8_t *p, archive__seal_t *s)
{
    s->records = hub_get_be64(p + 1);
    s->first_us = hub_get_be64(p + 9);
    s->last_us = hub_get_be64(p + 17);
    s->sealed_us = hub_get_be64(p + 25);
    s->flags = p[33];
    memcpy(s->file_sha256, p + 41, 32);
    memcpy(s->signature, p + 73, 64);
}

void archive_format__seal_encode(const archive__seal_t *s, uint8_t *p)
{
    memset(p, 0, HUB__ARCHIVE_SEAL_LEN);
    p[0] = 'S';
    hub_put_be64(p + 1, s->records);
    hub_put_be64(p + 9, s->first_us);
    hub_put_be64(p + 17, s->last_us);
    hub_put_be64(p + 25, s->sealed_us);
    p[33] = s->flags;
    memcpy(p + 41, s->file_sha256, 32);
    memcpy(p + 73, s->signature, 64);
}

void archive_format__seal_message(
    const uint8_t *seal_bytes,
    uint8_t out[sizeof HUB__ARCHIVE_SEAL_DOMAIN + HUB__ARCHIVE_SEAL_SIGNED])
{
    memcpy(out, HUB__ARCHIVE_SEAL_DOMAIN, sizeof HUB__ARCHIVE_SEAL_DOMAIN); /* with its NUL */
    memcpy(out + sizeof HUB__ARCHIVE_SEAL_DOMAIN, seal_bytes, HUB__ARCHIVE_SEAL_SIGNED);
}

/* Walks a file's bytes. HUB_EPARSE (with out->problem) when they are not an
 * archive file; a file without a seal that ends in part of a record is not
 * an error here (out->torn). A callback's non-zero return stops the walk
 * and is returned. */
int archive_format__scan(const uint8_t *buf, size_t len, archive__scan_t *out, archive__rec_cb cb,
                         void *user)
{
    memset(out, 0, sizeof *out);
    if (len < HUB__ARCHIVE_HEADER_LEN || memcmp(buf, HUB__ARCHIVE_MAGIC, 8) != 0) {
        snprintf(out->problem, sizeof out->problem,
                 len < HUB__ARCHIVE_HEADER_LEN ? "shorter than an archive file's header"
                                               : "does not start with an archive file's header");
        return HUB_EPARSE;
    }
    memcpy(out->h.key_id, buf + 8, 8);
    out->h.number = hub_get_be64(buf + 16);
    out->h.created_us = hub_get_be64(buf + 24);
    memcpy(out->h.salt, buf + 32, 32);
    memcpy(out->h.prev_seal, buf + 64, 32);
    size_t pos = HUB__ARCHIVE_HEADER_LEN;
    while (pos < len) {
        if (buf[pos] == 'S') {
            if (len - pos < HUB__ARCHIVE_SEAL_LEN)
                break; /* torn seal */
            if (len - pos > HUB__ARCHIVE_SEAL_LEN) {
                snprintf(out->problem, sizeof out->problem, "holds %zu bytes after its seal",
                         len - pos - HUB__ARCHIVE_SEAL_LEN);
                return HUB_EPARSE;
            }
            out->sealed = true;
            archive_format__seal_decode(buf + pos, &out->seal);
            hub_sha256(buf + pos, HUB__ARCHIVE_SEAL_LEN, out->seal_sha256);
            break;
        }
        if (buf[pos] != 'R') {
            snprintf(out->problem, sizeof out->problem,
                     "record %" PRIu64 " does not start with a record's mark",
                     out->records + 1);
            return HUB_EPARSE;
        }
        if (len - pos < HUB__ARCHIVE_REC_PREFIX)
            break;
        uint32_t rlen = hub_get_be32(buf + pos + 1);
        uint64_t index = hub_get_be64(buf + pos + 5);
        if (rlen < 8 + HUB__ARCHIVE_TAG_LEN || rlen > HUB__ARCHIVE_RECORD_MAX) {
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
            int rc = cb(buf + pos, rlen - 8 - HUB__ARCHIVE_TAG_LEN, index, user);
            if (rc != 0)
                return rc;
        }
        out->records++;
        pos += 5 + rlen;
        out->complete_len = pos;
    }
    if (out->complete_len == 0)
        out->complete_len = HUB__ARCHIVE_HEADER_LEN;
    if (!out->sealed)
        out->torn = len - out->complete_len;
    else if (out->complete_len != len - HUB__ARCHIVE_SEAL_LEN) {
        snprintf(out->problem, sizeof out->problem, "has a seal in the middle of a record");
        return HUB_EPARSE;
    }
    hub_sha256(buf, out->complete_len, out->body_sha256);
    return 0;
}

int archive_format__read_all(int dir_fd, const char *name, uint8_t **buf_out, size_t *len_out)
{
    char *buf = NULL;
    int rc = hub_read_all_at(dir_fd, name, &buf, len_out);
    if (rc == 0)
        *buf_out = (uint8_t *)buf;
    return rc;
}

int archive_format__reserve(uint8_t **buf, size_t *cap, size_t need)
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
