/* hub_trust.c — who is admitted and what they may call: the key directory
 * or certificates (reloaded when one expires), the agreements and the
 * delegations. */
#include "hub_core_internal.h"

/* ------------------------------------------------------------------------ */
/* Keys, certificates, agreements, delegations                              */

typedef struct {
    hub_server_t *self;
    uint64_t now;
} trust__cert_visit_t;

static int trust__on_expiring(const hub_cert_info_t *c, void *user)
{
    trust__cert_visit_t *v = user;
    uint64_t left_h = c->not_after_us > v->now ? (c->not_after_us - v->now) / 3600000000ull : 0;
    HUB_WARN("trust", "certificate expires soon: renew it ('hubctl cert issue')",
             "member=%s file=%s hours_left=%llu", c->keys.member_id[0] ? c->keys.member_id : "(CA)",
             c->file, (unsigned long long)left_h);
    return 0;
}

/* Loads the member key table: from certificates (each checked against the
 * CA and the CRL) or, in development mode, from the key directory. */
int trust__load_keys(hub_server_t *self, hub_keydir_t **out, char *err, size_t err_size)
{
    const hub_config_t *cfg = &self->cfg;
    if (!cfg->ca_cert[0])
        return hub_keydir_load(cfg->key_dir, out, err, err_size);
    uint64_t now = hub_now_us();
    hub_certdir_t *cd = NULL;
    int rc = hub_certdir_load(cfg->ca_cert, cfg->crl_file, cfg->cert_dir, now, &cd, err, err_size);
    hub_crl_id_t crl;
    hub_certdir_crl_id(cd, &crl);
    if (rc == 0) /* an older CRL must not un-revoke anyone */
        rc = hub_crl_state_advance(cfg->crl_state_file, cfg->crl_file, &crl, now, err, err_size);
    if (rc != 0) {
        hub_certdir_destroy(&cd);
        return rc;
    }
    size_t refused[16] = {0};
    /* Each valid certificate's end, for the certificate_expiring alarm
     * (seconds, so that it fits a pointer on any platform until 2106). */
    hub_map_t *not_after = hub_map_new();
    for (size_t i = 0; i < hub_certdir_count(cd); i++) {
        const hub_cert_info_t *c = hub_certdir_at(cd, i);
        if (c->status == HUB_CERT_VALID) {
            const char *labels[] = {c->keys.member_id};
            hub_metric_set(self->cert_expiry, labels, (double)c->not_after_us / 1e6);
            if (not_after)
                hub_map_put(not_after, c->keys.member_id,
                            (void *)(uintptr_t)(c->not_after_us / 1000000u));
            continue;
        }
        if ((unsigned)c->status < 16)
            refused[c->status]++;
        HUB_WARN("trust", "certificate refused", "file=%s member=%s status=%s reason=\"%s\"",
                 c->file, c->keys.member_id, hub_cert_status_name(c->status), c->reason);
    }
    for (unsigned st = 0; st < 16; st++) {
        if (st == HUB_CERT_VALID)
            continue;
        const char *name = hub_cert_status_name((hub_cert_status_t)st);
        if (name && *name && strcmp(name, "unknown")) {
            const char *labels[] = {name};
            hub_metric_set(self->certs_refused, labels, (double)refused[st]);
        }
    }
    trust__cert_visit_t v = {self, now};
    hub_certdir_visit_expiring(cd, now, (uint64_t)cfg->cert_warn_days * 86400000000ull,
                               trust__on_expiring, &v);
    rc = hub_certdir_keydir(cd, out, err, err_size);
    if (rc == 0 && not_after) {
        hub_map_destroy(&self->cert_not_after);
        self->cert_not_after = not_after;
    } else {
        hub_map_destroy(&not_after);
    }
    /* Reload when the next certificate expires or becomes valid, so that an
     * expired member is cut off on time without a SIGHUP. */
    uint64_t next = hub_certdir_next_change_us(cd);
    uint64_t delay_ms = next > now ? (next - now) / 1000u + 1000u : 3600000u;
    if (delay_ms > 3600000u)
        delay_ms = 3600000u;
    if (self->handles_open)
        uv_timer_start(&self->cert_timer, trust__on_cert_timer, delay_ms, 0);
    else
        self->cert_timer_first_ms = delay_ms;
    hub_certdir_destroy(&cd);
    return rc;
}

void trust__on_cert_timer(uv_timer_t *timer)
{
    hub_server_t *self = timer->data;
    char err[HUB_ERRMSG_MAX];
    if (hub_server_reload_keys(self, err, sizeof err) != 0)
        HUB_ERROR("trust", "certificate reload failed; keeping the previous keys", "error=\"%s\"",
                  err);
}

int trust__load_policy(hub_server_t *self, hub_policy_t **policy, hub_delegations_t **delegations,
                       char *err, size_t err_size)
{
    *policy = NULL;
    *delegations = NULL;
    int rc = 0;
    if (self->cfg.policy_file[0])
        rc = hub_policy_load(self->cfg.policy_file, policy, err, err_size);
    if (rc == 0 && self->cfg.delegations_file[0])
        rc = hub_delegations_load(self->cfg.delegations_file, delegations, err, err_size);
    if (rc != 0)
        hub_policy_destroy(policy);
    return rc;
}

/* Agreement check for a call or an event; NULL when allowed, else why not. */
const char *trust__forbidden(hub_server_t *self, const char *consumer, const char *provider,
                             const char *service, hub_policy_decision_t *d)
{
    if (!self->policy)
        return NULL;
    hub_policy_check(self->policy, consumer, provider, service, hub_now_us(), d);
    return d->allowed ? NULL : d->reason;
}
