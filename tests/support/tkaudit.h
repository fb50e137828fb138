/* tkaudit — copies of the audit records a test finds in a hub's log
 * (hub_audit_find, hub_audit_find_message), for checks after the scan.
 *
 * Built with the tests that link lth_domain (tests/e2e/CMakeLists.txt).
 * Failures fail the calling Check test.
 */
#ifndef TKAUDIT_H
#define TKAUDIT_H

#include "hub_audit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One record; absent strings are "". */
typedef struct {
    hub_audit_event_t event;
    char message_id[HUB_AUDIT_ID_MAX + 1];
    char sender[HUB_AUDIT_ID_MAX + 1];
    char receiver[HUB_AUDIT_ID_MAX + 1];
    char service[HUB_AUDIT_ID_MAX + 1];
    char purpose[HUB_AUDIT_ID_MAX + 1];
    char dossier[HUB_AUDIT_WORD_MAX + 1];
    char outcome[HUB_AUDIT_WORD_MAX + 1];
    char reason[HUB_AUDIT_REASON_MAX + 1];
    bool has_digest;
    uint8_t digest[32];
    size_t signature_len;
} tk_audit_rec_t;

/* Up to 256 records (about 700 KiB: make it static, not a local). */
typedef struct {
    tk_audit_rec_t recs[256];
    size_t n;
} tk_audit_recs_t;

/* A hub_audit_find callback appending a copy to *(tk_audit_recs_t *)user;
 * asserts there is room. */
int tk_audit_collect(const hub_audit_record_t *r, const char *file, uint64_t line, void *user);
/* Empties *out and collects the records of `service` in the audit
 * directory dir; asserts the scan succeeds. */
void tk_audit_find_service(const char *dir, const char *service, tk_audit_recs_t *out);

#endif
