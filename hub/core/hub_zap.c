/* hub_zap.c — ZAP: who may connect. Admits a CURVE key the key directory
 * or a valid certificate vouches for, and names its member in User-Id. */
#include "hub_core_internal.h"
#include "hub_cluster.h"

/* ------------------------------------------------------------------------ */
/* ZAP: who may connect                                                      */

static void zap__reply(void *zap, const zmq_msg_t *request_id, const char *code, const char *text,
                       const char *user_id)
{
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, zmq_msg_data((zmq_msg_t *)request_id), zmq_msg_size((zmq_msg_t *)request_id),
             ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, code, strlen(code), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, user_id, strlen(user_id), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap, "", 0, ZMQ_DONTWAIT);
}

void zap__on_zap_readable(hub_zsock_t *zs, void *socket, void *user)
{
    (void)zs;
    hub_server_t *self = user;
    for (int n = 0; n < HUB__DRAIN_BUDGET; n++) {
        /* version, request id, domain, address, identity, mechanism, key */
        zmq_msg_t parts[7];
        int count = hub_zsock_recv_parts(socket, parts, 7);
        if (count == 0)
            break;
        if (count == 7) {
            char address[64] = "";
            snprintf(address, sizeof address, "%.*s", (int)zmq_msg_size(&parts[3]),
                     (const char *)zmq_msg_data(&parts[3]));
            bool curve =
                zmq_msg_size(&parts[5]) == 5 && !memcmp(zmq_msg_data(&parts[5]), "CURVE", 5);
            char z85[HUB_Z85_KEY_LEN + 1] = "";
            if (curve && zmq_msg_size(&parts[6]) == 32)
                zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32);
            /* The node-to-node link (hub_cluster.c) admits the hub's own
             * key, and nothing else; members never reach it. */
            if (self->cluster && zmq_msg_size(&parts[2]) == 7 &&
                !memcmp(zmq_msg_data(&parts[2]), "cluster", 7)) {
                bool ok = curve && cluster__is_self(self, zmq_msg_data(&parts[2]), 7, z85);
                zap__reply(socket, &parts[1], ok ? "200" : "400",
                           ok ? "OK" : "only the hub's own key joins the cluster link",
                           ok ? "cluster" : "");
                if (!ok)
                    HUB_WARN("zap", "cluster link refused: not the hub's key", "address=%s",
                             address);
                hub_zsock_kick(self->zap_watch);
                for (int i = 0; i < count; i++)
                    zmq_msg_close(&parts[i]);
                continue;
            }
            if (zmq_msg_size(&parts[2]) == 7 && !memcmp(zmq_msg_data(&parts[2]), "cluster", 7))
                z85[0] = '\0'; /* no cluster: nothing may use that domain */
            const hub_keypair_t *kp = z85[0] ? hub_keydir_find_key(self->keys, z85) : NULL;
            core__member_t *banned = kp ? hub_map_get(self->members, kp->member_id) : NULL;
            if (banned && !flood__banned(self, banned, hub_monotonic_us()))
                banned = NULL;
            if (banned) {
                zap__reply(socket, &parts[1], "400", "cut off for flooding; try later", "");
                self->stats.keys_refused++;
            } else if (kp) {
                zap__reply(socket, &parts[1], "200", "OK", z85);
                HUB_DEBUG("zap", "key admitted", "member=%s address=%s", kp->member_id, address);
            } else {
                zap__reply(socket, &parts[1], "400", "unknown key", "");
                self->stats.keys_refused++;
                self->refused_since_log++;
                /* Unknown keys are counted always but logged at most once a
                 * second, so that a flood cannot flood the log. */
                uint64_t now = hub_monotonic_us();
                if (now - self->last_refusal_log_us >= 1000000u) {
                    HUB_WARN("zap", "connection refused: CURVE key not in the key directory",
                             "address=%s key=%s refused_since_last_log=%llu", address,
                             z85[0] ? z85 : "-", (unsigned long long)self->refused_since_log);
                    self->refused_since_log = 0;
                    self->last_refusal_log_us = now;
                }
            }
            hub_zsock_kick(self->zap_watch);
        }
        for (int i = 0; i < count; i++)
            zmq_msg_close(&parts[i]);
    }
}
