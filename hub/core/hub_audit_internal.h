/* hub_audit_internal.h — PRIVATE to the audit log's files in hub/core
 * (hub_audit_record.c, hub_audit.c, hub_audit_verify.c): the record codec
 * and file naming that the writer and the verifier share. The public
 * contract is hub_audit.h.
 *
 * Dependencies run one way: hub_audit.c and hub_audit_verify.c use
 * hub_audit_record.c, never each other. */
#ifndef HUB_AUDIT_INTERNAL_H
#define HUB_AUDIT_INTERNAL_H

#include "hub_audit.h"
#include "hub_numfiles.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB__AUDIT_CP_DOMAIN "LTH-AUDIT-CHECKPOINT-V1" /* followed by one 0x00 byte */
#define HUB__AUDIT_CP_MSG_LEN (sizeof HUB__AUDIT_CP_DOMAIN + 3 * 8 + 2 * 32)
#define HUB__AUDIT_ROT_DOMAIN "LTH-AUDIT-KEY-ROTATION-V1" /* followed by one 0x00 byte */
#define HUB__AUDIT_ROT_MSG_LEN (sizeof HUB__AUDIT_ROT_DOMAIN + 2 * 32)
#define HUB__AUDIT_ROT_REASON "new hub signing key "

/* What a CHECKPOINT line carries beyond a record. */
typedef struct {
    uint64_t count;
    uint8_t prev_checkpoint[32];
    uint8_t signature[64];
} audit__cp_t;

/* One parsed line. */
typedef struct {
    hub_audit_record_t rec; /* strings point into the arrays below */
    audit__cp_t cp;
    char message_id[HUB_AUDIT_ID_MAX + 1];
    char sender[HUB_AUDIT_ID_MAX + 1];
    char receiver[HUB_AUDIT_ID_MAX + 1];
    char service[HUB_AUDIT_ID_MAX + 1];
    char purpose[HUB_AUDIT_ID_MAX + 1];
    char dossier[HUB_AUDIT_WORD_MAX + 1];
    char outcome[HUB_AUDIT_WORD_MAX + 1];
    char reason[HUB_AUDIT_REASON_MAX + 1];
    uint8_t signature[HUB_AUDIT_SIGNATURE_MAX];
} audit__parsed_t;

/* The key of hub_audit_envelope_mac(), derived from the hub's signing key. */
void audit_record__mac_key(const uint8_t sign_secret[64], uint8_t key[32]);

/* The bytes a checkpoint's hub_signature covers (see hub_audit.h). */
void audit_record__cp_message(uint64_t seq, uint64_t ts, uint64_t count, const uint8_t head[32],
                              const uint8_t prev_cp[32], uint8_t out[HUB__AUDIT_CP_MSG_LEN]);

/* The bytes a KEY_ROTATED record's proof (sender_signature) covers. */
void audit_record__rot_message(const uint8_t old_pub[32], const uint8_t new_pub[32],
                               uint8_t out[HUB__AUDIT_ROT_MSG_LEN]);

/* The new key a KEY_ROTATED record's reason names; false if malformed. */
bool audit_record__rot_key(const char *reason, uint8_t out[32]);

/* Renders rec (with rec->seq, rec->time_us and rec->prev_hash as given) as
 * its line, newline included. cp is needed for a CHECKPOINT (and only
 * for one); HUB_EINVAL without it. */
int audit_record__render(const hub_audit_record_t *rec, const audit__cp_t *cp, char *out,
                         size_t cap, size_t *len_out);

/* Parses one line (len bytes, ending in '\n') and checks that it is
 * canonical: rendering the parsed record gives the same bytes. scratch holds
 * HUB_AUDIT_LINE_MAX bytes. Returns 0 or HUB_EPARSE. */
int audit_record__parse(const char *line, size_t len, audit__parsed_t *out, char *scratch);

/* The name of audit file number, and the files of dir in order
 * (hub_numfiles.h). */
void audit_record__file_name(unsigned long number, char out[HUB_AUDIT_FILE_NAME_MAX]);
int audit_record__list_files(const char *dir, hub_numfiles_t *out);

/* Reads a whole file into a malloc'ed buffer (never NULL on success). */
int audit_record__read_all(const char *dir, const char *name, char **buf_out, size_t *len_out);

/* The reason text of the RECOVERED record that acknowledges a cut line; the
 * verifier rebuilds it to check that the record names the right file. */
void audit_record__torn_reason(char *out, size_t size, const char *file, size_t torn_bytes,
                               uint64_t last_seq);

#endif
