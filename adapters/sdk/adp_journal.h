/* adp_journal — the SDK's small on-disk journals (internal to the SDK).
 *
 * An adapter that restarts must (1) send again what it posted and the hub
 * never ACKed (the outbox), and (2) not hand its handler a message it has
 * already handled (the de-duplication window). Both are kept in append-only
 * files in the client's state directory:
 *
 *   outbox.jnl  'P' records (a posted envelope) and 'A' records (its id, once
 *               the hub answered); pending = P without A.
 *   seen.jnl    one record per handled message ("sender/message_id"): 'S'
 *               handled; 'B' a handler began (in doubt if nothing follows);
 *               'U' the handler ended leaving it unhandled (ADP_LATER,
 *               ADP_DEAD_LETTER).
 *
 * Record layout: u8 type, u32 length (little-endian), bytes, u32 FNV-1a of
 * type+length+bytes. A torn record at the tail (a crash mid-write) fails its
 * checksum and ends the replay there; the file is then rewritten without it.
 * Appends go through write() (they survive the process being killed);
 * adp__journal_sync() makes them survive the machine (fdatasync), and the
 * SDK calls it once per batch, not per message. Files are compacted when
 * most of their records are obsolete.
 */
#ifndef ADP_JOURNAL_H
#define ADP_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct adp__journal adp__journal_t;

/* Called for each intact record on open, in file order. */
typedef void (*adp__journal_replay_cb)(uint8_t type, const uint8_t *data, size_t len,
                                       void *user);

/* Opens (creating) dir/name and replays it. Returns 0 or a HUB_E* code. */
int adp__journal_open(const char *dir, const char *name, adp__journal_replay_cb replay,
                      void *user, adp__journal_t **out, char *err, size_t err_size);
int adp__journal_append(adp__journal_t *j, uint8_t type, const void *data, size_t len);
int adp__journal_sync(adp__journal_t *j);
/* Replaces the file with the records `emit` writes (through
 * adp__journal_append on the same journal), atomically. */
typedef void (*adp__journal_emit_cb)(adp__journal_t *j, void *user);
int adp__journal_compact(adp__journal_t *j, adp__journal_emit_cb emit, void *user);
/* Records appended since open or the last compaction. */
uint64_t adp__journal_records(const adp__journal_t *j);
void adp__journal_close(adp__journal_t **j_p);

#endif
