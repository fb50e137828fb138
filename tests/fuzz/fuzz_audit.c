/* fuzz_audit — an audit log file as an auditor (hubctl audit verify) and the
 * hub at start-up read it.
 *
 * The input becomes audit-000001.log in a directory of its own, which goes
 * through hub_audit_verify_dir() with a fixed (fake) hub public key and
 * hub_audit_find_message(). Then a copy goes through hub_audit_open() with
 * the matching key pair and hub_audit_close(): the hub resuming a log.
 *
 * Properties: verification returns one of its documented codes and fills a
 * NUL-terminated report; 0 means sealed, with records and nothing unsealed.
 * A log that verifies as intact (sealed, or unsealed with records) opens,
 * and after the hub has opened and closed it, verifies as intact and sealed.
 */
#include "fuzz_util.h"
#include "hub_audit.h"
#include "hub_error.h"
#include "hub_log.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* The message id of the seed logs' records (tests/fuzz/make_seeds.c). */
#define FUZZ_AUDIT_MESSAGE_ID "7d0e8a52-1c4b-4f0e-9a3d-000000000001"

static const char *fuzz__verify_dir;
static const char *fuzz__open_dir;
static char fuzz__verify_file[PATH_MAX];
static char fuzz__open_file[PATH_MAX];
static hub_audit_config_t fuzz__config;

static void fuzz__setup(void)
{
    hub_log_set_level(HUB_LOG_ERROR); /* opening a damaged log warns */
    fuzz__verify_dir = fuzz_subdir("verify");
    fuzz__open_dir = fuzz_subdir("open");
    snprintf(fuzz__verify_file, sizeof fuzz__verify_file, "%s/audit-000001.log",
             fuzz__verify_dir);
    snprintf(fuzz__open_file, sizeof fuzz__open_file, "%s/audit-000001.log", fuzz__open_dir);
    memset(&fuzz__config, 0, sizeof fuzz__config);
    fuzz_sign_keys(fuzz__config.sign_public, fuzz__config.sign_secret);
    fuzz__config.checkpoint_every_records = UINT64_MAX;
    fuzz__config.checkpoint_every_us = UINT64_MAX;
}

static int fuzz__found(const hub_audit_record_t *rec, const char *file, uint64_t line,
                       void *user)
{
    (void)user;
    FUZZ_CHECK(rec->event != HUB_AUDIT_CHECKPOINT);
    FUZZ_CHECK(strcmp(rec->message_id, FUZZ_AUDIT_MESSAGE_ID) == 0);
    FUZZ_CHECK(strcmp(file, "audit-000001.log") == 0 && line >= 1);
    return 0;
}

static int fuzz__verify(const char *dir, hub_audit_verify_report_t *report)
{
    int rc = hub_audit_verify_dir(dir, fuzz__config.sign_public, report);
    FUZZ_CHECK(rc == 0 || rc == HUB_EAGAIN || rc == HUB_EPARSE || rc == HUB_ECRYPTO ||
               rc == HUB_ENOENT || rc == HUB_EIO || rc == HUB_ENOMEM);
    FUZZ_CHECK(memchr(report->message, '\0', sizeof report->message) != NULL);
    FUZZ_CHECK(memchr(report->file, '\0', sizeof report->file) != NULL);
    FUZZ_CHECK(report->message[0] != '\0');
    if (rc == 0)
        FUZZ_CHECK(report->records > 0 && report->checkpoints > 0 &&
                   report->unsealed_records == 0);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz__verify_dir)
        fuzz__setup();

    fuzz_write_file(fuzz__verify_file, data, size, 0640);
    hub_audit_verify_report_t report;
    int verdict = fuzz__verify(fuzz__verify_dir, &report);
    int rc = hub_audit_find_message(fuzz__verify_dir, FUZZ_AUDIT_MESSAGE_ID, fuzz__found, NULL);
    FUZZ_CHECK(rc == 0 || rc == HUB_ENOTFOUND);

    /* The hub resumes the log: opening checks the last file and notes an
     * unclean stop; closing seals it. */
    fuzz_empty_dir(fuzz__open_dir);
    fuzz_write_file(fuzz__open_file, data, size, 0640);
    char err[HUB_ERRMSG_MAX];
    hub_audit_t *log = NULL;
    rc = hub_audit_open(fuzz__open_dir, &fuzz__config, &log, err, sizeof err);
    FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
    bool intact = verdict == 0 || (verdict == HUB_EAGAIN && report.records > 0);
    if (rc != 0) {
        FUZZ_CHECK(log == NULL && err[0] != '\0');
        FUZZ_CHECK(!intact);
        return 0;
    }
    rc = hub_audit_close(&log);
    FUZZ_CHECK(rc == 0 && log == NULL);
    if (intact) {
        hub_audit_verify_report_t after;
        FUZZ_CHECK(fuzz__verify(fuzz__open_dir, &after) == 0);
        FUZZ_CHECK(after.last_seq >= report.last_seq);
    }
    return 0;
}
