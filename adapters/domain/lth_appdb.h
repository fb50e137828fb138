/* lth_appdb — an adapter's own state in a SQLite file, and an outgoing queue
 * that makes "change my state and tell others" safe against crashes.
 *
 * lth_appdb_open() opens (creating) the file in WAL mode with
 * synchronous=FULL (a commit survives the machine), a busy timeout (other
 * processes may read it: tools, tests), and runs the caller's schema (CREATE
 * ... IF NOT EXISTS statements) plus two tables of its own:
 *
 *   meta(key TEXT PRIMARY KEY, value)            small named values
 *   outq(id INTEGER PRIMARY KEY, receiver, service, content_type, payload)
 *
 * The outgoing queue: a handler or tick adds the events it wants to send in
 * the same transaction as the state change that causes them
 * (lth_outq_add), commits, then calls lth_outq_flush(), which hands each
 * queued event to the SDK (adp_post_event: from then on the SDK's outbox,
 * kept in its state_dir, owns it) and deletes it from the queue. A crash
 * between the two sends an event twice, never zero times: receivers apply
 * changes by sequence (lth_seq_verdict), so a second copy changes nothing.
 *
 * A handle is used from one thread. Errors: 0 or a negative HUB_E* code;
 * lth_appdb_error() has SQLite's sentence.
 */
#ifndef LTH_APPDB_H
#define LTH_APPDB_H

#include "adp.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

int lth_appdb_open(const char *path, const char *schema_sql, sqlite3 **out, char *err,
                   size_t err_size);
/* Accepts NULL; sets *db_p to NULL. */
void lth_appdb_close(sqlite3 **db_p);
/* Opens an existing file read-only (tools and tests), with a busy timeout. */
int lth_appdb_open_readonly(const char *path, sqlite3 **out, char *err, size_t err_size);

/* Runs SQL without results; HUB_ESTORE on failure. */
int lth_appdb_exec(sqlite3 *db, const char *sql);
int lth_appdb_begin(sqlite3 *db); /* BEGIN IMMEDIATE */
int lth_appdb_commit(sqlite3 *db);
void lth_appdb_rollback(sqlite3 *db);
const char *lth_appdb_error(sqlite3 *db);

/* Runs one statement that returns no rows (INSERT, UPDATE, DELETE), its
 * `?` parameters bound in order from the arguments, one letter of `types`
 * each: 't' text (const char *; NULL binds NULL), 'i' int, 'I' uint64_t
 * (stored as SQLite's signed 64 bits), 'b' blob (const void *, size_t).
 * Arguments past the statement's last parameter are passed over (one list
 * can serve statements that use some of ?1..?N). The values are only read
 * during the call. 0 or HUB_ESTORE (also for a letter it does not know). */
int lth_appdb_run(sqlite3 *db, const char *sql, const char *types, ...);

/* meta values; *out = dflt when the key is absent. */
int lth_appdb_meta_get(sqlite3 *db, const char *key, uint64_t dflt, uint64_t *out);
int lth_appdb_meta_set(sqlite3 *db, const char *key, uint64_t value);

/* Queues one event (call inside the transaction that causes it). */
int lth_outq_add(sqlite3 *db, const char *receiver, const char *service, const char *content_type,
                 const void *payload, size_t len);
/* Posts queued events in order, up to `max` (0 = all), deleting those
 * posted; stops at the first the SDK refuses (it stays queued). *posted may
 * be NULL. */
int lth_outq_flush(sqlite3 *db, adp_client_t *client, size_t max, size_t *posted);
/* Events queued, or a negative HUB_E* code. */
long lth_outq_size(sqlite3 *db);

#endif
