/* hub_store.c — the public store functions (hub_store.h) as dispatchers
 * over the backend a store was opened with (hub_store_backend.h). */
#include "hub_store_backend.h"

#include "hub_clock.h"
#include "hub_error.h"

#include <stddef.h>
#include <string.h>

/* The backend's op called on self with the other arguments, or HUB_EINVAL
 * without a store (STORE__CALL0: no other argument). The dispatchers below
 * check the arguments hub_store.h names (and answer the calls that have
 * nothing to do) first, once for both backends. */
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

bool store_backend__str_ok(const char *s, size_t max, bool may_be_empty)
{
    if (!s)
        return false;
    size_t len = strnlen(s, max + 1);
    return len <= max && (may_be_empty || len > 0);
}

uint64_t store_backend__hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

size_t store_backend__free_slot(const uint32_t *slots, size_t n_slots, uint64_t hash)
{
    size_t j = hash & (n_slots - 1);
    while (slots[j])
        j = (j + 1) & (n_slots - 1);
    return j;
}

static bool msg_ok(const hub_store_msg_t *m)
{
    return store_backend__str_ok(m->message_id, HUB_STORE_ID_MAX, false) &&
           store_backend__str_ok(m->sender, HUB_STORE_NAME_MAX, false) &&
           store_backend__str_ok(m->receiver, HUB_STORE_NAME_MAX, false) &&
           store_backend__str_ok(m->service, HUB_STORE_NAME_MAX, true) &&
           m->envelope_len <= UINT32_MAX && (m->envelope || !m->envelope_len);
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
    if (!self || (n && (!msgs || !outcomes)))
        return HUB_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!msg_ok(&msgs[i]))
            return HUB_EINVAL;
    if (n == 0)
        return 0;
    uint64_t now = hub_now_us();
    for (size_t i = 0; i < n; i++)
        if (msgs[i].accepted_at_us == 0)
            msgs[i].accepted_at_us = now;
    int rc = STORE__CALL(self, append, msgs, n, outcomes);
    if (rc != 0) {
        /* Nothing was stored: make sure no caller ACKs a seq from this call. */
        for (size_t i = 0; i < n; i++) {
            msgs[i].seq = 0;
            outcomes[i] = HUB_STORE_FULL;
        }
    }
    return rc;
}

int hub_store_next_seq(hub_store_t *self, uint64_t *next)
{
    if (!next)
        return HUB_EINVAL;
    return STORE__CALL(self, next_seq, next);
}

int hub_store_audit_anchor_get(hub_store_t *self, uint64_t *seq, uint8_t hash[32])
{
    if (!seq || !hash)
        return HUB_EINVAL;
    return STORE__CALL(self, audit_anchor_get, seq, hash);
}

int hub_store_audit_anchor_put(hub_store_t *self, uint64_t seq, const uint8_t hash[32])
{
    if (!hash)
        return HUB_EINVAL;
    return STORE__CALL(self, audit_anchor_put, seq, hash);
}

int hub_store_read_queue(hub_store_t *self, const char *receiver, uint64_t after_seq, size_t max,
                         hub_store_msg_t *out, size_t *n_out, hub_store_arena_t *arena)
{
    if (n_out)
        *n_out = 0;
    if (!self || !store_backend__str_ok(receiver, HUB_STORE_NAME_MAX, false) || !n_out ||
        !arena || (max && !out))
        return HUB_EINVAL;
    if (max == 0 || after_seq == UINT64_MAX)
        return 0;
    return STORE__CALL(self, read_queue, receiver, after_seq, max, out, n_out, arena);
}

int hub_store_ack(hub_store_t *self, const char *receiver, const uint64_t *seqs, size_t n)
{
    if (!self || !store_backend__str_ok(receiver, HUB_STORE_NAME_MAX, false) || (n && !seqs))
        return HUB_EINVAL;
    if (n == 0)
        return 0;
    return STORE__CALL(self, ack, receiver, seqs, n);
}

int hub_store_note_attempts(hub_store_t *self, const uint64_t *seqs, size_t n)
{
    if (!self || (n && !seqs))
        return HUB_EINVAL;
    if (n == 0)
        return 0;
    return STORE__CALL(self, note_attempts, seqs, n);
}

int hub_store_expired(hub_store_t *self, uint64_t now_us, uint64_t *seqs, size_t max, size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    if (!self || !n_out || (max && !seqs))
        return HUB_EINVAL;
    if (max == 0)
        return 0;
    return STORE__CALL(self, expired, now_us, seqs, max, n_out);
}

int hub_store_queues(hub_store_t *self, hub_store_queue_cb cb, void *user)
{
    if (!cb)
        return HUB_EINVAL;
    return STORE__CALL(self, queues, cb, user);
}

int hub_store_dead_letter_moved(hub_store_t *self, const uint64_t *seqs, size_t n,
                                const char *reason, bool *moved)
{
    if (!self || (n && !seqs) || !reason)
        return HUB_EINVAL;
    if (n == 0)
        return 0;
    if (moved)
        memset(moved, 0, n * sizeof *moved);
    return STORE__CALL(self, dead_letter, seqs, n, reason, moved);
}

int hub_store_dead_letter(hub_store_t *self, const uint64_t *seqs, size_t n, const char *reason)
{
    return hub_store_dead_letter_moved(self, seqs, n, reason, NULL);
}

int hub_store_dlq_list(hub_store_t *self, uint64_t after_seq, size_t max, hub_store_dead_t *out,
                       size_t *n_out, hub_store_arena_t *arena)
{
    if (n_out)
        *n_out = 0;
    if (!self || !n_out || (max && !out))
        return HUB_EINVAL;
    if (max == 0 || after_seq == UINT64_MAX)
        return 0;
    return STORE__CALL(self, dlq_list, after_seq, max, out, n_out, arena);
}

int hub_store_dlq_get(hub_store_t *self, uint64_t seq, hub_store_dead_t *out,
                      hub_store_arena_t *arena)
{
    if (!out)
        return HUB_EINVAL;
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
    if (purged)
        *purged = 0;
    return STORE__CALL(self, dlq_purge_older, before_us, purged);
}

int hub_store_lookup(hub_store_t *self, const char *sender, const char *message_id, uint64_t *seq,
                     hub_store_state_t *state)
{
    if (!store_backend__str_ok(sender, HUB_STORE_NAME_MAX, false) ||
        !store_backend__str_ok(message_id, HUB_STORE_ID_MAX, false))
        return HUB_EINVAL;
    return STORE__CALL(self, lookup, sender, message_id, seq, state);
}

int hub_store_prune_dedup(hub_store_t *self, uint64_t now_us, size_t *pruned)
{
    if (pruned)
        *pruned = 0;
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
    if (as_sender)
        *as_sender = (hub_store_held_t){0, 0};
    if (as_receiver)
        *as_receiver = (hub_store_held_t){0, 0};
    if (!store_backend__str_ok(member, HUB_STORE_NAME_MAX, false))
        return HUB_EINVAL;
    return STORE__CALL(self, held, member, as_sender, as_receiver);
}

int hub_store_held_total(hub_store_t *self, hub_store_held_t *total)
{
    if (!total)
        return HUB_EINVAL;
    *total = (hub_store_held_t){0, 0};
    return STORE__CALL(self, held_total, total);
}

int hub_store_requests_put(hub_store_t *self, const hub_store_request_t *reqs, size_t n)
{
    if (!self || (n && !reqs))
        return HUB_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!store_backend__str_ok(reqs[i].message_id, HUB_STORE_ID_MAX, false) ||
            !store_backend__str_ok(reqs[i].sender, HUB_STORE_NAME_MAX, false) ||
            !store_backend__str_ok(reqs[i].receiver, HUB_STORE_NAME_MAX, false))
            return HUB_EINVAL;
    if (n == 0)
        return 0;
    return STORE__CALL(self, requests_put, reqs, n);
}

int hub_store_requests_del(hub_store_t *self, const char *const *ids, size_t n)
{
    if (!self || (n && !ids))
        return HUB_EINVAL;
    if (n == 0)
        return 0;
    return STORE__CALL(self, requests_del, ids, n);
}

int hub_store_requests_load(hub_store_t *self, uint64_t now_us, hub_store_request_cb cb, void *user,
                            size_t *expired)
{
    if (expired)
        *expired = 0;
    if (!cb)
        return HUB_EINVAL;
    return STORE__CALL(self, requests_load, now_us, cb, user, expired);
}
