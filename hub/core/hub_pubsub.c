/* hub_pubsub.c — publications: durable subscriptions (from Hello, kept in
 * data_dir/subscriptions) and one copy of each published event per
 * subscriber whose agreement is in force. */
#include "hub_core_internal.h"
#include "hub_cluster.h"

/* ------------------------------------------------------------------------ */
/* Publish / subscribe                                                       */

static bool pubsub__subscribed(const core__sublist_t *l, const char *member)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (!strcmp(l->members[i], member))
            return true;
    return false;
}

/* Adds a subscription; returns 1 when it is new, 0 when known, <0 on error. */
int pubsub__subscribe(hub_server_t *self, const char *subscriber, const char *topic)
{
    core__sublist_t *l = hub_map_get(self->subs, topic);
    if (l && pubsub__subscribed(l, subscriber))
        return 0;
    core__member_t *m = members__member(self, subscriber);
    if (!m)
        return HUB_ENOMEM;
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l || hub_map_put(self->subs, topic, l) != 0) {
            free(l);
            return HUB_ENOMEM;
        }
    }
    if (HUB__PUSH(l->members, l->n, l->cap, (const char *)m->id) != 0)
        return HUB_ENOMEM;
    return 1;
}

/* Writes every subscription to data_dir/subscriptions: tmp file, fsync,
 * rename, so a crash leaves the old list or the new one. Rare (a Hello with
 * a new subscription), so it runs on the loop thread. */
int pubsub__save_subscriptions(hub_server_t *self)
{
    cluster__subs_changed(self); /* several nodes: the store has them too */
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", self->subs_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return HUB_EIO;
    fprintf(f, "# Durable subscriptions: SUBSCRIBER-ID PUBLISHER-ID/SERVICE/VERSION\n"
               "# Written by hubd; members subscribe in their Hello.\n");
    size_t cursor = 0;
    const char *topic;
    void *value;
    while (hub_map_next(self->subs, &cursor, &topic, &value)) {
        const core__sublist_t *l = value;
        for (size_t i = 0; i < l->n; i++)
            fprintf(f, "%s %s\n", l->members[i], topic);
    }
    int rc = (fflush(f) == 0 && fsync(fileno(f)) == 0) ? 0 : HUB_EIO;
    if (fclose(f) != 0)
        rc = HUB_EIO;
    if (rc == 0 && rename(tmp, self->subs_path) != 0)
        rc = HUB_EIO;
    return rc;
}

int pubsub__load_subscriptions(hub_server_t *self, char *err, size_t err_size)
{
    FILE *f = fopen(self->subs_path, "r");
    if (!f)
        return 0; /* none yet */
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *space = strchr(line, ' ');
        if (!space) {
            snprintf(err, err_size, "%s:%d: expected 'SUBSCRIBER TOPIC'", self->subs_path, lineno);
            rc = HUB_EPARSE;
            break;
        }
        *space = '\0';
        if (!hub_member_id_valid(line)) {
            snprintf(err, err_size, "%s:%d: '%s' is not a member id", self->subs_path, lineno,
                     line);
            rc = HUB_EPARSE;
            break;
        }
        if (pubsub__subscribe(self, line, space + 1) < 0)
            rc = HUB_ENOMEM;
    }
    fclose(f);
    return rc;
}

/* The id under which a published event is stored for one subscriber: a
 * UUID derived from the event's id and the subscriber, so that a re-sent
 * publication de-duplicates copy by copy. */
static void pubsub__derive_id(const char *message_id, const char *subscriber,
                              char out[HUB_UUID_LEN + 1])
{
    crypto_hash_sha256_state st;
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)message_id, strlen(message_id) + 1);
    crypto_hash_sha256_update(&st, (const uint8_t *)subscriber, strlen(subscriber));
    crypto_hash_sha256_final(&st, h);
    h[6] = (uint8_t)((h[6] & 0x0f) | 0x80); /* version 8: custom */
    h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
    snprintf(out, HUB_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1],
             h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
             h[15]);
}

/* An envelope the hub itself takes (a metaservice request, a publication
 * it keeps for nobody): ACKed, and recorded as accepted by the hub with why. */
static void pubsub__accepted_by_hub(hub_server_t *self, const hub_envelope_t *env,
                                    const uint8_t *bytes, size_t len, core__receipts_t *receipts,
                                    const char *why)
{
    send__receipt_ack(receipts, env->message_id, 0);
    core__evidence_t ev;
    if (self->audit)
        outcome__evidence_later(self, env, bytes, len, NULL, NULL, &ev);
    outcome__accepted(self, env, self->own_key.member_id, len, self->audit ? &ev : NULL, why,
                      false);
}

/* An EVENT addressed to the hub itself is a publication: one copy per
 * subscriber of PUBLISHER/SERVICE, each durable in its own queue. */
void pubsub__publish(hub_server_t *self, core__member_t *sender, const hub_envelope_t *env,
                     const uint8_t *bytes, size_t len, core__receipts_t *receipts, const char *mid)
{
    const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
    if (env->kind != LTH__V1__KIND__KIND_EVENT) {
        if (env->kind == LTH__V1__KIND__KIND_REQUEST && self->cfg.require_signatures) {
            int vrc = skp && skp->has_sign
                          ? hub_envelope_verify_cached(env, skp->sign_public, &self->sigcache)
                          : HUB_EINVAL;
            if (vrc != 0) {
                send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                   "%s", admit__signature_problem(vrc, skp && skp->has_sign));
                return;
            }
        }
        char *json = NULL;
        size_t json_len = 0;
        const char *why = NULL;
        int code = env->kind == LTH__V1__KIND__KIND_REQUEST
                       ? meta__metaservice(self, sender, env, &json, &json_len, &why)
                       : LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE;
        if (code != 0) {
            send__receipt_nack(self, receipts, mid, code, "%s",
                               why ? why
                                   : "the hub takes requests (metaservices) and events "
                                     "(publications), not replies");
            return;
        }
        pubsub__accepted_by_hub(self, env, bytes, len, receipts, "answered by the hub");
        meta__reply_from_hub(self, sender, env, json, json_len);
        free(json);
        return;
    }
    if (self->cfg.require_signatures && (!skp || !skp->has_sign || env->signature.len == 0)) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "%s",
                           admit__signature_problem(HUB_EINVAL, skp && skp->has_sign));
        return;
    }
    char topic[HUB_MEMBER_ID_MAX + HUB_SERVICE_MAX + 2];
    snprintf(topic, sizeof topic, "%s/%s", env->sender, env->service);
    core__sublist_t *l = hub_map_get(self->subs, topic);
    sender->msgs_in++;
    sender->bytes_in += len;
    if (!l || l->n == 0 || env->delivery == LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY) {
        if (l && self->cfg.require_signatures &&
            hub_envelope_verify_cached(env, skp->sign_public, &self->sigcache) != 0) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "%s",
                               admit__signature_problem(HUB_ECRYPTO, true));
            return;
        }
        /* Nobody subscribes (or online-only): hand it to connected
         * subscribers now; with none, there is nobody to keep it for. */
        for (size_t i = 0; l && i < l->n; i++) {
            core__member_t *m = hub_map_get(self->members, l->members[i]);
            hub_policy_decision_t d;
            /* Every publish path checks each subscriber's agreement. */
            if (m && m->online && send__waiting(m) + len <= self->cfg.max_waiting_bytes &&
                !trust__forbidden(self, m->id, env->sender, env->service, &d))
                send__enqueue_out(self, m, env->sender, 0, 1, bytes, len);
            /* Several nodes: a subscriber connected to another one. */
            else if (m && !m->online && self->cluster && cluster__located(self, m->id) &&
                     !trust__forbidden(self, m->id, env->sender, env->service, &d))
                cluster__forward(self, m->id, bytes, len);
        }
        pubsub__accepted_by_hub(self, env, bytes, len, receipts,
                                l && l->n ? "publication online-only"
                                          : "publication, no subscriber");
        return;
    }
    uint64_t ttl_ms = env->ttl_ms ? env->ttl_ms : self->cfg.default_ttl_ms;
    if (ttl_ms > self->cfg.max_ttl_ms)
        ttl_ms = self->cfg.max_ttl_ms;
    /* The publisher pays for every subscriber's copy (HUB__MAX_PENDING). */
    core__room_t room = core__store_room(self, sender, l->n);
    if (room != CORE__ROOM) {
        admit__queue_full(self, receipts, mid, sender, room, true);
        return;
    }
    uint64_t now = hub_now_us();
    bool first = true;
    for (size_t i = 0; i < l->n; i++) {
        /* An agreement that has ended ends the subscription's deliveries. */
        hub_policy_decision_t d;
        if (trust__forbidden(self, l->members[i], env->sender, env->service, &d))
            continue;
        core__pending_t p;
        memset(&p, 0, sizeof p);
        p.bytes = malloc(len ? len : 1);
        if (!p.bytes)
            break;
        memcpy(p.bytes, bytes, len);
        pubsub__derive_id(env->message_id, l->members[i], p.msg.message_id);
        core__copy_str(p.msg.sender, sizeof p.msg.sender, env->sender);
        core__copy_str(p.msg.receiver, sizeof p.msg.receiver, l->members[i]);
        core__copy_str(p.msg.service, sizeof p.msg.service, env->service);
        p.msg.accepted_at_us = now;
        p.msg.expires_at_us = now + ttl_ms * 1000u;
        p.msg.envelope = p.bytes;
        p.msg.envelope_len = len;
        core__member_t *subm = members__member(self, l->members[i]);
        if (subm)
            delivery__quota_for(self, sender, subm, &p.msg.quota);
        snprintf(p.group_id, sizeof p.group_id, "%s", env->message_id);
        p.group_first = first;
        if (first && self->cfg.require_signatures) {
            memcpy(p.sign_key, skp->sign_public, 32);
            p.verify = true;
        }
        p.msg.preset_seq = self->next_seq++;
        p.payer = sender;
        if (delivery__pending_push(self, &p) != 0) {
            free(p.bytes);
            break;
        }
        first = false;
    }
    if (first) {
        /* No subscriber may receive it now. */
        pubsub__accepted_by_hub(self, env, bytes, len, receipts,
                                "publication, no subscriber allowed");
    }
}
