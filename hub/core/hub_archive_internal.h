/* hub_archive_internal.h — PRIVATE to the message archive's files in
 * hub/core (hub_archive_format.c, hub_archive.c, hub_archive_read.c): the
 * file format they share. The public contract is hub_archive.h.
 *
 * Dependencies run one way: hub_archive.c (the writer) and
 * hub_archive_read.c (the reader) use hub_archive_format.c, never each
 * other. */
#ifndef HUB_ARCHIVE_INTERNAL_H
#define HUB_ARCHIVE_INTERNAL_H

#include "hub_archive.h"
#include "hub_bytes.h"
#include "hub_numfiles.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB__ARCHIVE_MAGIC "LTHARC01"
#define HUB__ARCHIVE_HEADER_LEN 96
#define HUB__ARCHIVE_REC_PREFIX 13 /* 'R' u32 len u64 index */
#define HUB__ARCHIVE_TAG_LEN 16
#define HUB__ARCHIVE_SEAL_LEN 137
#define HUB__ARCHIVE_SEAL_SIGNED 73 /* the seal's bytes before its signature */
#define HUB__ARCHIVE_SEAL_DOMAIN "LTH-ARCHIVE-SEAL-V1" /* followed by one 0x00 byte */
#define HUB__ARCHIVE_FILE_DOMAIN "LTH-ARCHIVE-FILE-V1"
#define HUB__ARCHIVE_RECORD_MAX (256u * 1024 * 1024) /* a record's len field */

/* Strings of a decoded entry: NUL-terminated copies. */
typedef struct {
    hub_archive_entry_t e;
    char strs[4][UINT16_MAX + 1];
} archive__decoded_t;

typedef struct {
    uint8_t key_id[8];
    uint64_t number;
    uint64_t created_us;
    uint8_t salt[32];
    uint8_t prev_seal[32];
} archive__header_t;

typedef struct {
    uint64_t records;
    uint64_t first_us, last_us, sealed_us;
    uint8_t flags;
    uint8_t file_sha256[32];
    uint8_t signature[64];
} archive__seal_t;

typedef struct {
    archive__header_t h;
    uint64_t records;       /* whole records */
    size_t complete_len;    /* bytes of the header and the whole records */
    size_t torn;            /* bytes after them, in a file with no seal */
    bool sealed;
    archive__seal_t seal;
    uint8_t body_sha256[32]; /* of the first complete_len bytes */
    uint8_t seal_sha256[32]; /* of the seal's bytes */
    char problem[200];
} archive__scan_t;

/* Called for each whole record: its 13-byte prefix p, the ciphertext and tag
 * after it (ct_len bytes of ciphertext), its index. */
typedef int (*archive__rec_cb)(const uint8_t *p, size_t ct_len, uint64_t index, void *user);

/* File names, and the files of dir in order (hub_numfiles.h). */
void archive_format__file_name(unsigned long number, char out[HUB_ARCHIVE_FILE_NAME_MAX]);
int archive_format__list_files(const char *dir, hub_numfiles_t *out);

/* The per-file key: HMAC-SHA-256(key, domain || salt). */
void archive_format__file_key(const uint8_t key[32], const uint8_t salt[32], uint8_t out[32]);

/* Seals plain into out with the key set in ctx by the writer. */
int archive_format__encrypt(EVP_CIPHER_CTX *ctx, uint64_t index, const uint8_t *aad, size_t aad_len,
                            const uint8_t *plain, size_t len, uint8_t *out);
/* Opens ct (len bytes of ciphertext, then the tag) into plain; HUB_ECRYPTO
 * when it does not authenticate. */
int archive_format__decrypt(EVP_CIPHER_CTX *ctx, const uint8_t key[32], uint64_t index,
                            const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t len,
                            uint8_t *plain);

/* The plaintext of an entry: its length, its encoding into p, and its
 * decoding (false when p is not one). */
size_t archive_format__plain_len(const hub_archive_entry_t *e);
void archive_format__plain_encode(const hub_archive_entry_t *e, uint8_t *p);
bool archive_format__plain_decode(const uint8_t *p, size_t len, archive__decoded_t *d);

/* A seal's HUB__ARCHIVE_SEAL_LEN bytes, and the bytes its signature covers. */
void archive_format__seal_decode(const uint8_t *p, archive__seal_t *s);
void archive_format__seal_encode(const archive__seal_t *s, uint8_t *p);
void archive_format__seal_message(
    const uint8_t *seal_bytes,
    uint8_t out[sizeof HUB__ARCHIVE_SEAL_DOMAIN + HUB__ARCHIVE_SEAL_SIGNED]);

/* Walks a file's bytes. HUB_EPARSE (with out->problem) when they are not an
 * archive file; a file without a seal that ends in part of a record is not
 * an error here (out->torn). A callback's non-zero return stops the walk
 * and is returned. */
int archive_format__scan(const uint8_t *buf, size_t len, archive__scan_t *out, archive__rec_cb cb,
                         void *user);

/* Reads the file name of dir_fd into a malloc'ed buffer. */
int archive_format__read_all(int dir_fd, const char *name, uint8_t **buf_out, size_t *len_out);

/* Grows *buf (of *cap bytes) to hold need bytes. */
int archive_format__reserve(uint8_t **buf, size_t *cap, size_t need);

#endif
