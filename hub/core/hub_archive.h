/* hub_archive — the message archive: every envelope the hub accepts into its
 * store, kept whole (metadata and payload) for a retention period, encrypted
 * at rest, so that an authorised auditor holding the archive key can show
 * what was actually exchanged (X-Road's message log archive). The audit log
 * (hub_audit.h) proves who sent what to whom without the data; the archive
 * holds the data, for those who may read it.
 *
 * Keys. The archive key is a file of exactly 32 random bytes, mode 0600
 * (`hubctl archive keygen FILE`); a file that group or others may read, or
 * of another size, is refused with a sentence saying so. Its key id is the
 * first 8 bytes of SHA-256(key), written in every archive file's header, so
 * that a reader can tell "wrong key" from "damaged file". Each file has a
 * key of its own, HMAC-SHA-256(key, "LTH-ARCHIVE-FILE-V1" || salt) with a
 * 32-byte random salt from its header, and each record is sealed with
 * AES-256-GCM (OpenSSL EVP) under that key, its 96-bit nonce being the
 * record's index in the file (zero-extended): nonces never repeat under one
 * file key, whatever the number of files or hubs sharing the archive key.
 *
 * Files. DIR/archive-000001.lar, archive-000002.lar, … (the number gives the
 * order), all integers big-endian:
 *   header  "LTHARC01" | key_id[8] | u64 number | u64 created_us | salt[32]
 *           | prev_seal[32]                                        (96 bytes)
 *   record  'R' | u32 len | u64 index | ciphertext | tag[16]     (len = 8 +
 *           ciphertext + 16; AAD = the 13 bytes before the ciphertext)
 *   seal    'S' | u64 records | u64 first_us | u64 last_us | u64 sealed_us
 *           | u8 flags | 7 zero bytes | file_sha256[32] | signature[64]
 * The plaintext of a record: u64 hub_seq | u64 accepted_us | u64 archived_us
 * | u16 len + message_id | u16 len + sender | u16 len + receiver | u16 len +
 * service | u32 len + the envelope as the sender encoded it (its signature
 * included, so that the sender's signature can be checked again).
 * file_sha256 covers every byte before the seal; signature is the hub's
 * Ed25519 signature (libsodium, as the audit log's checkpoints) over
 * "LTH-ARCHIVE-SEAL-V1" 0x00 || the seal's first 73 bytes. prev_seal is the
 * SHA-256 of the previous file's whole seal (zeros for the first file), so
 * the files form a chain: a modified byte breaks a record's tag and the
 * file's hash, a changed seal its signature, a removed or swapped file the
 * chain. Flags: 1 = sealed when the hub restarted after a crash (records
 * torn by the crash were cut off: they were never acknowledged).
 *
 * Rotation and retention. A file is sealed and the next one started when it
 * reaches max_file_bytes or is max_file_age_us old (checked by
 * hub_archive_put() and hub_archive_maintain()). hub_archive_maintain()
 * deletes sealed files whose seal is older than retention_days, oldest first
 * (so that what remains is still one chain); hubd calls it from a timer.
 *
 * Durability: hub_archive_put() encrypts into memory; hub_archive_flush()
 * writes and fdatasync()s. hubd calls both on the commit worker, before the
 * ACK, as for the audit log.
 *
 * Threads: put, flush, maintain and close take an internal mutex: the commit
 * worker and the maintenance job may call them from different threads.
 * The reading functions (find, verify) use no shared state.
 *
 * Errors: 0 or a negative HUB_E* code; functions that take err fill it with
 * a sentence naming the file and what to do.
 */
#ifndef HUB_ARCHIVE_H
#define HUB_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_ARCHIVE_KEY_LEN 32
#define HUB_ARCHIVE_KEY_ID_LEN 8
#define HUB_ARCHIVE_FILE_NAME_MAX 32 /* "archive-000001.lar" and a NUL */
#define HUB_ARCHIVE_SEALED_AFTER_CRASH 1u

typedef struct {
    uint8_t key[HUB_ARCHIVE_KEY_LEN];
    uint8_t id[HUB_ARCHIVE_KEY_ID_LEN];
} hub_archive_key_t;

/* Reads an archive key file: HUB_EPERM when group or others may read or
 * write it, HUB_EINVAL when it does not hold exactly 32 bytes, HUB_ENOENT,
 * HUB_EIO. err names the file and the fix. */
int hub_archive_key_read(const char *path, hub_archive_key_t *out, char *err, size_t err_size);
/* Writes a new random key to path (mode 0600); never overwrites
 * (HUB_EEXIST). */
int hub_archive_key_generate(const char *path, hub_archive_key_t *out, char *err, size_t err_size);
/* The key id as 16 lower-case hex digits and a NUL. */
void hub_archive_key_id_hex(const uint8_t id[HUB_ARCHIVE_KEY_ID_LEN], char out[17]);

typedef struct {
    hub_archive_key_t key;
    uint8_t sign_secret[64];    /* the hub's Ed25519 key (libsodium layout) */
    uint8_t sign_public[32];
    uint32_t retention_days;    /* sealed files older than this are deleted; >= 1 */
    uint64_t max_file_bytes;    /* 0 = 64 MiB */
    uint64_t max_file_age_us;   /* 0 = 24 h */
    uint64_t (*clock_us)(void); /* wall clock; NULL = hub_now_us (tests set their own) */
} hub_archive_config_t;

/* One archived message. For put, strings are read during the call only. */
typedef struct {
    const char *message_id;
    const char *sender;         /* as the hub authenticated it */
    const char *receiver;
    const char *service;
    uint64_t hub_seq;
    uint64_t accepted_at_us;
    uint64_t archived_at_us;    /* set by put */
    const uint8_t *envelope;    /* the encoded envelope, as received */
    size_t envelope_len;
} hub_archive_entry_t;

typedef struct hub_archive hub_archive_t;

/* Opens the archive in dir (created 0750 when missing), holding an
 * exclusive flock on it (HUB_EAGAIN if another process has it). A last file
 * left unsealed by a crash is cut back to its last whole record and sealed
 * (flag HUB_ARCHIVE_SEALED_AFTER_CRASH); new records go to a new file.
 * HUB_EPARSE when the last file is not an archive file (err names it). */
int hub_archive_open(const char *dir, const hub_archive_config_t *config, hub_archive_t **out,
                     char *err, size_t err_size);
/* Encrypts one entry into the current file's buffer (rotating first when
 * due). HUB_EINVAL, HUB_EIO (an earlier write failed), HUB_ECRYPTO. */
int hub_archive_put(hub_archive_t *self, const hub_archive_entry_t *entry);
/* Writes what put buffered and fdatasync()s it. */
int hub_archive_flush(hub_archive_t *self);
/* Seals the current file when it is older than max_file_age_us, then
 * deletes expired sealed files; *deleted (may be NULL) counts them. */
int hub_archive_maintain(hub_archive_t *self, size_t *deleted);
/* Seals the current file, flushes, wipes the keys and frees. Accepts NULL;
 * sets *self_p to NULL. */
int hub_archive_close(hub_archive_t **self_p);

/* ---- reading (hubctl) ---------------------------------------------------- */

typedef struct {
    uint64_t files;             /* archive files read */
    uint64_t sealed_files;      /* whose hash (and signature, with a hub key) checked */
    uint64_t records;           /* records read */
    uint64_t decrypted;         /* records decrypted and authenticated with the key */
    uint64_t other_key_files;   /* files written with another key (not decrypted) */
    uint64_t unsealed_records;  /* records of a last file not sealed yet (hub running) */
    char file[HUB_ARCHIVE_FILE_NAME_MAX]; /* where the first problem is, or "" */
    uint64_t record;            /* 1-based record in file, 0 = the file as a whole */
    char message[512];          /* a sentence: what was found, what to do */
} hub_archive_report_t;

/* Called for each matching record; strings and envelope live until the
 * callback returns. file is the file name. Return non-zero to stop. */
typedef int (*hub_archive_found_cb)(const hub_archive_entry_t *entry, const char *file,
                                    void *user);

/* Checks every file of dir in order: header, records, seal, file hash,
 * chain of seals, contiguous numbers; the seals' signatures when
 * sign_public is not NULL; and with key (may be NULL) decrypts and
 * authenticates every record of the files written with that key. With
 * message_id (may be NULL) calls found for each record of that message.
 * Returns 0 (intact and sealed), HUB_EAGAIN (intact; the last file is not
 * sealed yet), HUB_EPARSE (modified, cut, missing or reordered files),
 * HUB_ECRYPTO (a record that does not authenticate, a bad seal signature,
 * or a key that wrote none of the files), HUB_ENOENT (no archive files),
 * HUB_EIO, HUB_ENOMEM. The report is filled in every case. */
int hub_archive_read_dir(const char *dir, const uint8_t *sign_public, const hub_archive_key_t *key,
                         const char *message_id, hub_archive_found_cb found, void *user,
                         hub_archive_report_t *report);

#endif
