/* hub_archive_read.c — reading the message archive back: every file's
 * chain of seals and signatures checked, every record decrypted and handed
 * to the caller, and a report naming the first file and fault found.
 * Read-only: never writes to the archive. */
#include "hub_archive_internal.h"
#include "hub_error.h"
#include "hub_numfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    archive__decoded_t *decoded;
    uint8_t *plain;
    size_t plain_cap;
    bool stopped;
} archive_read__reader_t;

static int archive_read__on_record(const uint8_t *p, size_t ct_len, uint64_t index, void *user)
{
    archive_read__reader_t *r = user;
    r->report->records++;
    if (!r->key)
        return 0;
    if (archive_format__reserve(&r->plain, &r->plain_cap, ct_len + 1) != 0)
        return HUB_ENOMEM;
    if (archive_format__decrypt(r->ctx, r->file_key, index, p, HUB__ARCHIVE_REC_PREFIX,
                                p + HUB__ARCHIVE_REC_PREFIX, ct_len, r->plain) != 0) {
        r->report->record = index + 1;
        snprintf(r->report->message, sizeof r->report->message,
                 "record %" PRIu64 " of %s does not authenticate: its bytes were modified "
                 "(AES-256-GCM tag mismatch)",
                 index + 1, r->file);
        return HUB_ECRYPTO;
    }
    r->report->decrypted++;
    if (!archive_format__plain_decode(r->plain, ct_len, r->decoded)) {
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

static int archive_read__report(hub_archive_report_t *report, int rc, const char *file,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int archive_read__report(hub_archive_report_t *report, int rc, const char *file,
                                const char *fmt, ...)
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
    int rc = archive_format__list_files(dir, &files);
    if (rc != 0)
        return archive_read__report(report, rc, NULL, "cannot list %s: %s", dir, hub_strerror(rc));
    if (files.count == 0) {
        free(files.numbers);
        return archive_read__report(report, HUB_ENOENT, NULL, "%s holds no archive files", dir);
    }
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    archive_read__reader_t r = {
        .key = key, .message_id = message_id, .found = found, .user = user, .report = report};
    r.ctx = EVP_CIPHER_CTX_new();
    r.decoded = malloc(sizeof *r.decoded);
    if (dir_fd < 0 || !r.ctx || !r.decoded) {
        rc = dir_fd < 0 ? hub_errno_code(errno) : HUB_ENOMEM;
        archive_read__report(report, rc, NULL, "cannot open %s: %s", dir, hub_strerror(rc));
        goto done;
    }
    uint8_t prev_seal[32];
    char other_ids[64] = "";
    for (size_t i = 0; i < files.count && rc == 0 && !r.stopped; i++) {
        char name[HUB_ARCHIVE_FILE_NAME_MAX];
        archive_format__file_name(files.numbers[i], name);
        r.file = name;
        bool last = i + 1 == files.count;
        if (i > 0 && files.numbers[i] != files.numbers[i - 1] + 1) {
            char missing[HUB_ARCHIVE_FILE_NAME_MAX];
            archive_format__file_name(files.numbers[i - 1] + 1, missing);
            rc = archive_read__report(
                report, HUB_EPARSE, missing,
                "%s is missing: the archive files around it are not contiguous", missing);
            break;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        rc = archive_format__read_all(dir_fd, name, &buf, &len);
        if (rc != 0) {
            archive_read__report(report, rc, name, "cannot read %s: %s", name, hub_strerror(rc));
            break;
        }
        report->files++;
        /* The header first: it says which key the records need. */
        archive__scan_t scan;
        rc = archive_format__scan(buf, len, &scan, NULL, NULL);
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
            archive_format__file_key(key->key, scan.h.salt, r.file_key);
            rc = archive_format__scan(buf, len, &scan, archive_read__on_record, &r);
            sodium_memzero(r.file_key, sizeof r.file_key);
            if (rc != 0) {
                snprintf(report->file, sizeof report->file, "%s", name);
                if (!report->message[0])
                    archive_read__report(report, rc, name, "%s: %s", name, scan.problem);
                free(buf);
                break;
            }
        } else if (rc == 0) {
            report->records += scan.records;
        }
        free(buf);
        if (rc != 0) {
            archive_read__report(report, rc, name, "%s is not a well-formed archive file: it %s",
                                 name, scan.problem);
            break;
        }
        if (scan.h.number != files.numbers[i]) {
            rc = archive_read__report(report, HUB_EPARSE, name,
                                      "%s says it is file %" PRIu64
                                      ": files were renamed or swapped",
                                      name, scan.h.number);
            break;
        }
        if (i > 0 && memcmp(scan.h.prev_seal, prev_seal, 32) != 0) {
            rc = archive_read__report(
                report, HUB_EPARSE, name,
                "%s does not follow the seal of the file before it: files were "
                "replaced, swapped or removed",
                name);
            break;
        }
        if (!scan.sealed) {
            if (!last) {
                rc = archive_read__report(report, HUB_EPARSE, name,
                                          "%s has no seal but is not the last file: it was cut",
                                          name);
                break;
            }
            report->unsealed_records = scan.records;
            rc = archive_read__report(report, HUB_EAGAIN, name,
                                      "%s is not sealed yet (%" PRIu64
                                      " records): normal while hubd "
                                      "writes it",
                                      name, scan.records);
            break;
        }
        if (memcmp(scan.seal.file_sha256, scan.body_sha256, 32) != 0 ||
            scan.seal.records != scan.records) {
            rc = archive_read__report(
                report, HUB_EPARSE, name,
                "%s does not match its seal: its bytes were modified after it was "
                "sealed",
                name);
            break;
        }
        if (sign_public) {
            uint8_t seal_bytes[HUB__ARCHIVE_SEAL_LEN],
                msg[sizeof HUB__ARCHIVE_SEAL_DOMAIN + HUB__ARCHIVE_SEAL_SIGNED];
            archive_format__seal_encode(&scan.seal, seal_bytes);
            archive_format__seal_message(seal_bytes, msg);
            if (crypto_sign_verify_detached(scan.seal.signature, msg, sizeof msg, sign_public) !=
                0) {
                rc =
                    archive_read__report(report, HUB_ECRYPTO, name,
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
        rc = archive_read__report(
            report, HUB_ECRYPTO, "",
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

