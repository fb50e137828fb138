/* hub_store.c — the public store functions (hub_store.h) as dispatchers
 * over the backend a store was opened with (hub_store_backend.h). */
#include "hub_store_backend.h"

#include "hub_error.h"

#include <stddef.h>

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
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->batch_begin(self);
}

int hub_store_batch_commit(hub_store_t *self)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->batch_commit(self);
}

void hub_store_batch_abort(hub_store_t *self)
{
    if (self)
        store_backend__ops_of(self)->batch_abort(self);
}

int hub_store_append(hub_store_t *self, hub_store_msg_t *msgs, size_t n,
                     hub_store_outcome_t *outcomes)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->append(self, msgs, n, outcomes);
}

int hub_store_next_seq(hub_store_t *self, uint64_t *next)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->next_seq(self, next);
}

int hub_store_audit_anchor_get(hub_store_t *self, uint64_t *seq, uint8_t hash[32])
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->audit_anchor_get(self, seq, hash);
}

int hub_store_audit_anchor_put(hub_store_t *self, uint64_t seq, const uint8_t hash[32])
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->audit_anchor_put(self, seq, hash);
}

int hub_store_read_queue(hub_store_t *self, const char *receiver, uint64_t after_seq, size_t max,
                         hub_store_msg_t *out, size_t *n_out, hub_store_arena_t *arena)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->read_queue(self, receiver, after_seq, max, out, n_out,
                                                   arena);
}

int hub_store_ack(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->ack(self, receiver, seqs, n);
}

int hub_store_note_attempts(hub_store_t *self, const uint64_t *seqs, size_t n)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->note_attempts(self, seqs, n);
}

int hub_store_expired(hub_store_t *self, uint64_t now_us, uint64_t *seqs, size_t max, size_t *n_out)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->expired(self, now_us, seqs, max, n_out);
}

int hub_store_queues(hub_store_t *self, hub_store_queue_cb cb, void *user)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->queues(self, cb, user);
}

int hub_store_dead_letter(hub_store_t *self, const uint64_t *seqs, size_t n, const char *reason)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->dead_letter(self, seqs, n, reason);
}

int hub_store_dlq_list(hub_store_t *self, uint64_t after_seq, size_t max, hub_store_dead_t *out,
                       size_t *n_out, hub_store_arena_t *arena)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->dlq_list(self, after_seq, max, out, n_out, arena);
}

int hub_store_dlq_get(hub_store_t *self, uint64_t seq, hub_store_dead_t *out,
                      hub_store_arena_t *arena)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->dlq_get(self, seq, out, arena);
}

int hub_store_dlq_replay(hub_store_t *self, uint64_t seq, uint64_t new_ttl_us, uint64_t preset_seq,
                         uint64_t *new_seq)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->dlq_replay(self, seq, new_ttl_us, preset_seq, new_seq);
}

int hub_store_dlq_purge(hub_store_t *self, uint64_t seq)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->dlq_purge(self, seq);
}

int hub_store_dlq_purge_older(hub_store_t *self, uint64_t before_us, size_t *purged)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->dlq_purge_older(self, before_us, purged);
}

int hub_store_lookup(hub_store_t *self, const char *sender, const char *message_id, uint64_t *seq,
                     hub_store_state_t *state)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->lookup(self, sender, message_id, seq, state);
}

int hub_store_prune_dedup(hub_store_t *self, uint64_t now_us, size_t *pruned)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->prune_dedup(self, now_us, pruned);
}

int hub_store_usage(hub_store_t *self, uint64_t *used_bytes, uint64_t *max_bytes,
                    uint64_t *dead_count)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->usage(self, used_bytes, max_bytes, dead_count);
}

int hub_store_held(hub_store_t *self, const char *member, hub_store_held_t *as_sender,
                   hub_store_held_t *as_receiver)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->held(self, member, as_sender, as_receiver);
}

int hub_store_held_total(hub_store_t *self, hub_store_held_t *total)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->held_total(self, total);
}

int hub_store_requests_put(hub_store_t *self, const hub_store_request_t *reqs, size_t n)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->requests_put(self, reqs, n);
}

int hub_store_requests_del(hub_store_t *self, const char *const *ids, size_t n)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->requests_del(self, ids, n);
}

int hub_store_requests_load(hub_store_t *self, uint64_t now_us, hub_store_request_cb cb, void *user,
                            size_t *expired)
{
    if (!self)
        return HUB_EINVAL;
    return store_backend__ops_of(self)->requests_load(self, now_us, cb, user, expired);
}
