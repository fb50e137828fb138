/* lth_access — the population database's access register: who looked whom
 * up, when, for what purpose (the data subject's right to know how their
 * data was processed).
 *
 * One row per personal ID a look-up named: the requesting member (as the
 * hub authenticated it), service, purpose, dossier code, time, outcome
 * (FOUND, NOT_FOUND, NOT_PERMITTED, INVALID_KEY, REFUSED, UNAVAILABLE) and
 * the message id (which ties the row to the hub's audit log). The personal
 * ID itself is never stored: a row is keyed by HMAC-SHA-256(salt, ID), the
 * salt being 32 random bytes in a file of its own (mode 0600) that only the
 * data owner and the writing adapter hold. Without the salt the register
 * answers nothing about anyone, and hashing guesses is useless.
 *
 * Storage: a SQLite file (WAL, synchronous=FULL: a row is on disk before
 * the look-up is answered), mode 0600, tables
 *   access(id, citizen BLOB(32), at_us, requester, service, purpose,
 *          dossier_code, outcome, message_id)  indexed by (citizen, at_us)
 *   meta(key, value): 'salt_check' = HMAC-SHA-256(salt, "LTH-ACCESS-SALT-CHECK"),
 *          so that a reader can say "wrong salt" instead of "nobody".
 *
 * A handle is used from one thread at a time. Errors: 0 or a negative HUB_E*
 * code with a sentence in err that never holds a personal ID.
 */
#ifndef LTH_ACCESS_H
#define LTH_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LTH_ACCESS_SALT_LEN 32
#define LTH_ACCESS_TEXT_MAX 512 /* bytes kept of purpose and dossier code */

typedef struct lth_access lth_access_t;

/* Reads a salt file (exactly 32 bytes, mode 0600: HUB_EPERM / HUB_EINVAL
 * otherwise). With create set, a missing file is made with fresh random
 * bytes (mode 0600, never overwriting one that appeared meanwhile). */
int lth_access_salt_load(const char *path, bool create, uint8_t salt[LTH_ACCESS_SALT_LEN],
                         char *err, size_t err_size);

/* Opens (creating) the register at db_path for writing. HUB_EPERM when it
 * was written with another salt (err says so). */
int lth_access_open(const char *db_path, const uint8_t salt[LTH_ACCESS_SALT_LEN],
                    lth_access_t **out, char *err, size_t err_size);
void lth_access_close(lth_access_t **self_p);

/* What one look-up had in common for all its keys. */
typedef struct {
    const char *requester;    /* member id */
    const char *service;      /* "citizen.lookup/v1" */
    const char *purpose;
    const char *dossier_code; /* "" when none */
    const char *message_id;
    uint64_t at_us;           /* wall clock */
} lth_access_event_t;

/* Writes one row per key (outcomes[i] for personal_ids[i]) in one durable
 * transaction. HUB_ESTORE when it could not be written. */
int lth_access_note(lth_access_t *self, const lth_access_event_t *ev,
                    const char *const *personal_ids, const char *const *outcomes, size_t n);

/* Notes a citizen.lookup/v1 exchange from its request and response bytes
 * (lth.domain.v1 CitizenLookupRequest / Response): one row per key asked.
 * A request that does not decode names no one: nothing is written. */
int lth_access_note_lookup(lth_access_t *self, const char *requester, const char *service,
                           const char *message_id, uint64_t at_us, const uint8_t *request,
                           size_t request_len, const uint8_t *response, size_t response_len);

/* The same for a citizen.verify/v1 exchange (CitizenVerifyRequest /
 * Response): one row per subject, outcome VERIFIED_MATCH, VERIFIED_MISMATCH
 * or the look-up status (NOT_FOUND, ...). Never a declared value. */
int lth_access_note_verify(lth_access_t *self, const char *requester, const char *service,
                           const char *message_id, uint64_t at_us, const uint8_t *request,
                           size_t request_len, const uint8_t *response, size_t response_len);

typedef struct {
    uint64_t at_us;
    const char *requester, *service, *purpose, *dossier_code, *outcome, *message_id;
} lth_access_row_t;

/* Called per row in time order; return non-zero to stop. */
typedef int (*lth_access_row_cb)(const lth_access_row_t *row, void *user);

/* The rows of personal_id with from_us <= at_us <= to_us, through this
 * handle. */
int lth_access_query(lth_access_t *self, const char *personal_id, uint64_t from_us,
                     uint64_t to_us, lth_access_row_cb cb, void *user);
/* The same from a register file opened read-only with the given salt.
 * *salt_matches (may be NULL) says whether the salt is the register's:
 * with another salt nothing is found. HUB_ENOENT when db_path does not
 * exist, HUB_ESTORE when it is not a register. */
int lth_access_query_file(const char *db_path, const uint8_t salt[LTH_ACCESS_SALT_LEN],
                          const char *personal_id, uint64_t from_us, uint64_t to_us,
                          lth_access_row_cb cb, void *user, bool *salt_matches, char *err,
                          size_t err_size);

/* "2026-12-03" (the day's first microsecond, or with end_of_day its last)
 * or "2026-12-03T08:30:00Z" into microseconds since the epoch (UTC).
 * HUB_EINVAL for anything else. */
int lth_access_parse_time(const char *text, bool end_of_day, uint64_t *out_us);
/* The time as "2026-12-03T08:30:00.123Z" (out: 32 bytes). */
void lth_access_format_time(uint64_t us, char out[32]);

#endif
