/* hub_store_backend — how the store's backends plug in behind hub_store.h.
 *
 * PRIVATE to hub/core/hub_store*.c. hub_store.c defines the public
 * functions of hub_store.h as thin dispatchers: each checks `self` and the
 * arguments hub_store.h names (NULLs, names and ids, the messages of an
 * append, the entries of requests_put), sets the counts it returns to zero
 * first, answers the calls with nothing to do (n or max 0), then calls the
 * backend's function through the table of operations that every store
 * object begins with (store_backend__base_t, the first member of the
 * backend's struct). hub_store_append also stamps accepted_at_us 0 with
 * now and, when the backend fails, zeroes every seq and sets every outcome
 * HUB_STORE_FULL. One indirect call per store call; a backend's function
 * gets valid arguments and keeps the other checks (threads, batches, its
 * own limits) itself.
 *
 * Backends: LMDB (hub_store_env.c and the files it names; functions named
 * after their file, e.g. store_env__lmdb_open) and PostgreSQL
 * (hub_store_pg*.c, e.g. store_pg_conn__pg_open).
 */
#ifndef HUB_STORE_BACKEND_H
#define HUB_STORE_BACKEND_H

#include "hub_store.h"

typedef struct store_backend__ops {
    const char *name; /* "lmdb", "postgresql" */
    void (*close)(hub_store_t **self_p);
    uint32_t (*upgraded_from)(const hub_store_t *self);
    uint32_t (*opened_format)(const hub_store_t *self);
    int (*batch_begin)(hub_store_t *self);
    int (*batch_commit)(hub_store_t *self);
    void (*batch_abort)(hub_store_t *self);
    int (*append)(hub_store_t *self, hub_store_msg_t *msgs, size_t n,
                  hub_store_outcome_t *outcomes);
    int (*next_seq)(hub_store_t *self, uint64_t *next);
    int (*audit_anchor_get)(hub_store_t *self, uint64_t *seq, uint8_t hash[32]);
    int (*audit_anchor_put)(hub_store_t *self, uint64_t seq, const uint8_t hash[32]);
    int (*read_queue)(hub_store_t *self, const char *receiver, uint64_t after_seq, size_t max,
                      hub_store_msg_t *out, size_t *n_out, hub_store_arena_t *arena);
    int (*ack)(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n);
    int (*note_attempts)(hub_store_t *self, const uint64_t *seqs, size_t n);
    int (*expired)(hub_store_t *self, uint64_t now_us, uint64_t *seqs, size_t max, size_t *n_out);
    int (*queues)(hub_store_t *self, hub_store_queue_cb cb, void *user);
    int (*dead_letter)(hub_store_t *self, const uint64_t *seqs, size_t n, const char *reason,
                       bool *moved);
    int (*dlq_list)(hub_store_t *self, uint64_t after_seq, size_t max, hub_store_dead_t *out,
                    size_t *n_out, hub_store_arena_t *arena);
    int (*dlq_get)(hub_store_t *self, uint64_t seq, hub_store_dead_t *out,
                   hub_store_arena_t *arena);
    int (*dlq_replay)(hub_store_t *self, uint64_t seq, uint64_t new_ttl_us, uint64_t preset_seq,
                      uint64_t *new_seq);
    int (*dlq_purge)(hub_store_t *self, uint64_t seq);
    int (*dlq_purge_older)(hub_store_t *self, uint64_t before_us, size_t *purged);
    int (*lookup)(hub_store_t *self, const char *sender, const char *message_id, uint64_t *seq,
                  hub_store_state_t *state);
    int (*prune_dedup)(hub_store_t *self, uint64_t now_us, size_t *pruned);
    int (*usage)(hub_store_t *self, uint64_t *used_bytes, uint64_t *max_bytes,
                 uint64_t *dead_count);
    int (*held)(hub_store_t *self, const char *member, hub_store_held_t *as_sender,
                hub_store_held_t *as_receiver);
    int (*held_total)(hub_store_t *self, hub_store_held_t *total);
    int (*requests_put)(hub_store_t *self, const hub_store_request_t *reqs, size_t n);
    int (*requests_del)(hub_store_t *self, const char *const *ids, size_t n);
    int (*requests_load)(hub_store_t *self, uint64_t now_us, hub_store_request_cb cb, void *user,
                         size_t *expired);
} store_backend__ops_t;

/* The first member of every backend's store struct. */
typedef struct {
    const store_backend__ops_t *ops;
} store_backend__base_t;

static inline const store_backend__ops_t *store_backend__ops_of(const hub_store_t *self)
{
    return ((const store_backend__base_t *)(const void *)self)->ops;
}

/* A NUL-terminated string of 1..max bytes (0..max when may_be_empty). */
bool store_backend__str_ok(const char *s, size_t max, bool may_be_empty);

/* The per-call tables of both backends (hub_store_held.c's changes to what
 * members hold, hub_store_pg.c's ids and held rows) index their entries by
 * open addressing: slots[j] is 0 (free) or 1 + an entry's index, n_slots a
 * power of two above the entry count. store_backend__hash is FNV-1a over
 * the key's bytes; store_backend__free_slot the first free slot from the
 * hash's own. */
uint64_t store_backend__hash(const void *key, size_t len);
size_t store_backend__free_slot(const uint32_t *slots, size_t n_slots, uint64_t hash);

/* Memory from a store arena (hub_store_queue.c); never NULL for n = 0
 * unless out of memory. */
void *store_queue__arena_alloc(hub_store_arena_t *a, size_t n);

/* ---- LMDB (hub_store_env.c, ...) ---- */
extern const store_backend__ops_t store_env__lmdb_ops;
int store_env__lmdb_open(const char *dir, const hub_store_limits_t *limits, hub_store_t **out,
                         char *err, size_t err_size);
int store_env__lmdb_inspect(const char *dir, hub_store_info_t *out, char *err, size_t err_size);
int store_env__lmdb_backup(const char *dir, const char *dest_dir, hub_store_info_t *out, char *err,
                           size_t err_size);
void store_env__lmdb_close(hub_store_t **self_p);
uint32_t store_env__lmdb_upgraded_from(const hub_store_t *self);
uint32_t store_env__lmdb_opened_format(const hub_store_t *self);
int store_batch__lmdb_batch_begin(hub_store_t *self);
int store_batch__lmdb_batch_commit(hub_store_t *self);
void store_batch__lmdb_batch_abort(hub_store_t *self);
int store_queue__lmdb_append(hub_store_t *self, hub_store_msg_t *msgs, size_t n,
                             hub_store_outcome_t *outcomes);
int store_queue__lmdb_next_seq(hub_store_t *self, uint64_t *next);
int store_env__lmdb_audit_anchor_get(hub_store_t *self, uint64_t *seq, uint8_t hash[32]);
int store_env__lmdb_audit_anchor_put(hub_store_t *self, uint64_t seq, const uint8_t hash[32]);
int store_queue__lmdb_read_queue(hub_store_t *self, const char *receiver, uint64_t after_seq,
                                 size_t max, hub_store_msg_t *out, size_t *n_out,
                                 hub_store_arena_t *arena);
int store_queue__lmdb_ack(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n);
int store_queue__lmdb_note_attempts(hub_store_t *self, const uint64_t *seqs, size_t n);
int store_queue__lmdb_expired(hub_store_t *self, uint64_t now_us, uint64_t *seqs, size_t max,
                              size_t *n_out);
int store_queue__lmdb_queues(hub_store_t *self, hub_store_queue_cb cb, void *user);
int store_dlq__lmdb_dead_letter(hub_store_t *self, const uint64_t *seqs, size_t n,
                                const char *reason, bool *moved);
int store_dlq__lmdb_dlq_list(hub_store_t *self, uint64_t after_seq, size_t max,
                             hub_store_dead_t *out, size_t *n_out, hub_store_arena_t *arena);
int store_dlq__lmdb_dlq_get(hub_store_t *self, uint64_t seq, hub_store_dead_t *out,
                            hub_store_arena_t *arena);
int store_dlq__lmdb_dlq_replay(hub_store_t *self, uint64_t seq, uint64_t new_ttl_us,
                               uint64_t preset_seq, uint64_t *new_seq);
int store_dlq__lmdb_dlq_purge(hub_store_t *self, uint64_t seq);
int store_dlq__lmdb_dlq_purge_older(hub_store_t *self, uint64_t before_us, size_t *purged);
int store_dedup__lmdb_lookup(hub_store_t *self, const char *sender, const char *message_id,
                             uint64_t *seq, hub_store_state_t *state);
int store_dedup__lmdb_prune_dedup(hub_store_t *self, uint64_t now_us, size_t *pruned);
int store_held__lmdb_usage(hub_store_t *self, uint64_t *used_bytes, uint64_t *max_bytes,
                           uint64_t *dead_count);
int store_held__lmdb_held(hub_store_t *self, const char *member, hub_store_held_t *as_sender,
                          hub_store_held_t *as_receiver);
int store_held__lmdb_held_total(hub_store_t *self, hub_store_held_t *total);
int store_dedup__lmdb_requests_put(hub_store_t *self, const hub_store_request_t *reqs, size_t n);
int store_dedup__lmdb_requests_del(hub_store_t *self, const char *const *ids, size_t n);
int store_dedup__lmdb_requests_load(hub_store_t *self, uint64_t now_us, hub_store_request_cb cb,
                                    void *user, size_t *expired);

#endif
