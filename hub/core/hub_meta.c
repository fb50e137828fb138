/* hub_meta.c — metaservices: the requests a member may address to the hub
 * itself (lth.members/v1, lth.services/v1, lth.allowed/v1), answered by the
 * hub's own signed reply; the directory shows only a caller's partners. */
#include "hub_core_internal.h"
#include "hub_cluster.h"

/* ------------------------------------------------------------------------ */
/* Metaservices: what a member may ask the hub itself                       */

#define HUB__META_MEMBERS "lth.members/v1"   /* its partners (or all): id, online, services */
#define HUB__META_SERVICES "lth.services/v1" /* payload: a member id; its services */
#define HUB__META_ALLOWED "lth.allowed/v1"   /* the agreements the caller may use now */

static int meta__allowed_rule(const hub_policy_rule_t *rule, void *user)
{
    hub_jsonw_t *w = user;
    hub_jsonw_object_begin(w);
    hub_jsonw_kv_str(w, "provider", rule->provider);
    hub_jsonw_kv_str(w, "service", rule->service);
    hub_jsonw_kv_str(w, "until", rule->until_text);
    hub_jsonw_kv_str(w, "purpose", rule->purpose);
    hub_jsonw_object_end(w);
    return 0;
}

/* Answers a REQUEST addressed to the hub. Returns 0, or a NACK code with a
 * sentence in why. */
/* Whether `caller` may see `member` in the directory: itself, a member it
 * has an agreement with (either way), or anyone when the operator made the
 * directory public (public_directory) or runs without a policy. */
static bool meta__may_see(const hub_server_t *self, const char *caller, const char *member)
{
    return self->cfg.public_directory || !self->policy || !strcmp(caller, member) ||
           hub_policy_related(self->policy, caller, member, hub_now_us());
}

int meta__metaservice(hub_server_t *self, core__member_t *caller, const hub_envelope_t *env,
                      char **json, size_t *json_len, const char **why)
{
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    if (!strcmp(env->service, HUB__META_MEMBERS)) {
        hub_jsonw_key(&w, "members");
        hub_jsonw_array_begin(&w);
        for (size_t i = 0; i < hub_keydir_count(self->keys); i++) {
            const hub_keypair_t *kp = hub_keydir_at(self->keys, i);
            if (!meta__may_see(self, caller->id, kp->member_id))
                continue;
            core__member_t *m = hub_map_get(self->members, kp->member_id);
            const char *services = m ? m->services : NULL;
            bool online = m && m->online;
            /* Several nodes: connected to another one (hub_cluster.h). */
            if (!online && self->cluster)
                online = cluster__elsewhere(self, kp->member_id, &services);
            hub_jsonw_object_begin(&w);
            hub_jsonw_kv_str(&w, "id", kp->member_id);
            hub_jsonw_kv_bool(&w, "online", online);
            hub_jsonw_key(&w, "services");
            hub_jsonw_csv(&w, services);
            hub_jsonw_object_end(&w);
        }
        hub_jsonw_array_end(&w);
    } else if (!strcmp(env->service, HUB__META_SERVICES)) {
        char member[HUB_MEMBER_ID_MAX + 1];
        snprintf(member, sizeof member, "%.*s", (int)env->payload.len,
                 (const char *)env->payload.data);
        /* A member with no agreement with the caller is answered as if it
         * did not exist: the directory tells no more than the agreements. */
        if (!hub_keydir_find_member(self->keys, member) ||
            !meta__may_see(self, caller->id, member)) {
            hub_jsonw_free(&w);
            *why = "lth.services/v1 takes as its payload the id of a member you have an "
                   "agreement with";
            return LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER;
        }
        core__member_t *m = hub_map_get(self->members, member);
        const char *services = m ? m->services : NULL;
        bool online = m && m->online;
        if (!online && self->cluster)
            online = cluster__elsewhere(self, member, &services);
        hub_jsonw_kv_str(&w, "member", member);
        hub_jsonw_kv_bool(&w, "online", online);
        hub_jsonw_key(&w, "services");
        hub_jsonw_csv(&w, services);
    } else if (!strcmp(env->service, HUB__META_ALLOWED)) {
        hub_jsonw_kv_str(&w, "member", caller->id);
        hub_jsonw_kv_bool(&w, "policy", self->policy != NULL);
        hub_jsonw_key(&w, "allowed");
        hub_jsonw_array_begin(&w);
        if (self->policy)
            hub_policy_visit_allowed(self->policy, caller->id, hub_now_us(), meta__allowed_rule,
                                     &w);
        hub_jsonw_array_end(&w);
    } else {
        hub_jsonw_free(&w);
        *why = "the hub answers " HUB__META_MEMBERS ", " HUB__META_SERVICES
               " and " HUB__META_ALLOWED "; to publish, send an EVENT";
        return LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE;
    }
    hub_jsonw_object_end(&w);
    if (hub_jsonw_finish(&w, json, json_len) != 0) {
        *why = "the hub is out of memory";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    return 0;
}

/* Sends the hub's own signed reply to a request. */
void meta__reply_from_hub(hub_server_t *self, core__member_t *to, const hub_envelope_t *req,
                          const char *json, size_t len)
{
    char id[HUB_UUID_LEN + 1];
    hub_uuid_new(id);
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    env.message_id = id;
    env.correlation_id = req->message_id;
    env.sender = self->own_key.member_id;
    env.receiver = to->id;
    env.service = req->service;
    env.created_at_us = hub_now_us();
    env.content_type = "application/json";
    env.payload.data = (uint8_t *)json;
    env.payload.len = len;
    env.kind = LTH__V1__KIND__KIND_REPLY;
    env.delivery = LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY;
    uint8_t sig[HUB_SIGNATURE_LEN];
    if (self->own_key.has_sign)
        hub_envelope_sign(&env, self->own_key.sign_secret, sig);
    size_t n = lth__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return;
    lth__v1__envelope__pack(&env, buf);
    send__enqueue_out(self, to, self->own_key.member_id, 0, 1, buf, n);
    free(buf);
}
