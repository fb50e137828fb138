/* hub_store.c — the public store functions (hub_store.h) as dispatchers
 * over the backend a store was opened with (hub_store_backend.h). */
#include "hub_store_backend.h"

#include "hub_error.h"

#include <stddef.h>

/* The backend's op called on self with the other arguments, or HUB_EINVAL
 * without a store (STORE__CALL0: no other argument). */
#define STORE__CALL(self, op, ...)                                                                 \
    ((self) ? store_backend__ops_of(self)->op((self), __VA_ARGS__) : HUB_EINVAL)
#define STORE__CALL0(self, op) ((self) ? store_backend__ops_of(self)->op(self) : HUB_EINVAL)

int hub_store_open(const char *dir, const hub_store_limits_t *limits, hub_store_t **out, char *err,
                   size_t err_size)
{
    return store_env__lmdb_open(dir, limits, out, err, err_size);
}

int hub_store_inspect(const char *dir, hub_store_info_t *out, char *err, size_t err_size)
{
    return store_env__lmdb_inspect(dir, out, err, err_size);
}

int hub_store_backup(const char *dir, const char *dest_dir, hub_store_info_t *out, char *err,
                     size_t err_size)
{
    return store_env__lmdb_backup(dir, dest_dir, out, err, err_size);
}

const char *hub_store_backend_name(const hub_store_t *self)
{
    return self ? store_backend__ops_of(self)->name : "";
}

void hub_store_close(hub_store_t **self_p)
{
    if (self_p && *self_p)
        store_backend__ops_of(*self_p)->close(self_p);
}

uint32_t hub_store_upgraded_from(const hub_store_t *self)
{
    return self ? store_backend__ops_of(self)->upgraded_from(self) : 0;
}

uint32_t hub_store_opened_format(const hub_store_t *self)
{
    return self ? store_backend__ops_of(self)->opened_format(self) : 0;
}

int hub_store_batch_begin(hub_store_t *self)
{
    return STORE__CALL0(self, batch_begin);
}

int hub_store_batch_commit(hub_store_t *self)
{
    return STORE__CALL0(self, batch_commit);
}

void hub_store_batch_abort(hub_store_t *self)
{
    if (self)
        store_backend__ops_of(self)->batch_abort(self);
}

int hub_store_append(hub_store_t *self, hub_store_msg_t *msgs, size_t n,
                     hub_store_outcome_t *outcomes)
{
    return STORE__CALL(self, append, msgs, n, outcomes);
}

int hub_store_next_seq(hub_store_t *self, uint64_t *next)
{
    return STORE__CALL(self, next_seq, next);
}

int hub_store_audit_anchor_get(hub_store_t *self, uint64_t *seq, uint8_t hash[32])
{
    return STORE__CALL(self, audit_anchor_get, seq, hash);
}

int hub_store_audit_anchor_put(hub_store_t *self, uint64_t seq, const uint8_t hash[32])
{
    return STORE__CALL(self, audit_anchor_put, seq, hash);
}

int hub_store_read_queue(hub_store_t *self, const char *receiver, uint64_t after_seq, size_t max,
                         hub_store_msg_t *out, size_t *n_out, hub_store_arena_t *arena)
{
    return STORE__CALL(self, read_queue, receiver, after_seq, max, out, n_out, arena);
}

int hub_store_ack(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n)
{
    return STORE__CALL(self, ack, receiver, seqs, n);
}

int hub_store_note_attempts(hub_store_t *self, const uint64_t *seqs, size_t n)
{
    return STORE__CALL(self, note_attempts, seqs, n);
}

int hub_store_expired(hub_store_t *self, uint64_t now_us, uint64_t *seqs, size_t max, size_t *n_out)
{
    return STORE__CALL(self, expired, now_us, seqs, max, n_out);
}

int hub_store_queues(hub_store_t *self, hub_store_queue_cb cb, void *user)
{
    return STORE__CALL(self, queues, cb, user);
}

int hub_store_dead_letter(hub_store_t *self, const uint64_t *seqs, size_t n, const char *reason)
{
    return STORE__CALL(self, dead_letter, seqs, n, reason);
}

int hub_store_dlq_list(hub_store_t *self, uint64_t after_seq, size_t max, hub_store_dead_t *out,
                       size_t *n_out, hub_store_arena_t *arena)
{
    return STORE__CALL(self, dlq_list, after_seq, max, out, n_out, arena);
}

int hub_store_dlq_get(hub_store_t *self, uint64_t seq, hub_store_dead_t *out,
                      hub_store_arena_t *arena)
{
    return STORE__CALL(self, dlq_get, seq, out, arena);
}

int hub_store_dlq_replay(hub_store_t *self, uint64_t seq, uint64_t new_ttl_us, uint64_t preset_seq,
                         uint64_t *new_seq)
{
    return STORE__CALL(self, dlq_replay, seq, new_ttl_us, preset_seq, new_seq);
}

int hub_store_dlq_purge(hub_store_t *self, uint64_t seq)
{
    return STORE__CALL(self, dlq_purge, seq);
}

int hub_store_dlq_purge_older(hub_store_t *self, uint64_t before_us, size_t *purged)
{
    return STORE__CALL(self, dlq_purge_older, before_us, purged);
}

int hub_store_lookup(hub_store_t *self, const char *sender, const char *message_id, uint64_t *seq,
                     hub_store_state_t *state)
{
    return STORE__CALL(self, lookup, sender, message_id, seq, state);
}

int hub_store_prune_dedup(hub_store_t *self, uint64_t now_us, size_t *pruned)
{
    return STORE__CALL(self, prune_dedup, now_us, pruned);
}

int hub_store_usage(hub_store_t *self, uint64_t *used_bytes, uint64_t *max_bytes,
                    uint64_t *dead_count)
{
    return STORE__CALL(self, usage, used_bytes, max_bytes, dead_count);
}

int hub_store_held(hub_store_t *self, const char *member, hub_store_held_t *as_sender,
                   hub_store_held_t *as_receiver)
{
    return STORE__CALL(self, held, member, as_sender, as_receiver);
}

int hub_store_held_total(hub_store_t *self, hub_store_held_t *total)
{
    return STORE__CALL(self, held_total, total);
}

int hub_store_requests_put(hub_store_t *self, const hub_store_request_t *reqs, size_t n)
{
    return STORE__CALL(self, requests_put, reqs, n);
}

int hub_store_requests_del(hub_store_t *self, const char *const *ids, size_t n)
{
    return STORE__CALL(self, requests_del, ids, n);
}

int hub_store_requests_load(hub_store_t *self, uint64_t now_us, hub_store_request_cb cb, void *user,
                            size_t *expired)
{
    return STORE__CALL(self, requests_load, now_us, cb, user, expired);
}
