#include "hub_alarms.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_map.h"
#include "hub_vec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUB__ALARMS_COMP "alarms"
#define HUB__HIST 64 /* one-second samples kept: a minute and a little */
#define HUB__MINUTE_S 60u

static const char *const alarms__code_names[HUB_ALARM_CODES] = {
    "receiver_offline",     "queue_stale",        "dead_letters_growing",
    "certificate_expiring", "store_filling",      "member_refused",
    "audit_log_cut",        "audit_log_tampered", "audit_tsa_unreachable"};

void hub_alarm_thresholds_default(hub_alarm_thresholds_t *t)
{
    *t = (hub_alarm_thresholds_t){
        .offline_warn_s = 60,
        .offline_crit_s = 900,
        .queue_age_warn_s = 300,
        .queue_age_crit_s = 3600,
        .dead_letters_warn = 1,
        .dead_letters_crit = 100,
        .cert_warn_days = 30,
        .cert_crit_days = 7,
        .store_warn_percent = 80,
        .store_crit_percent = 95,
        .refusals_warn = 20,
        .refusals_crit = 200,
        .tsa_warn_s = 60,
        .tsa_crit_s = 3600,
    };
}

const char *hub_alarm_code_name(hub_alarm_code_t code)
{
    return (unsigned)code < HUB_ALARM_CODES ? alarms__code_names[code] : "unknown";
}

const char *hub_alarm_level_name(hub_alarm_level_t level)
{
    return level == HUB_ALARM_CRITICAL ? "critical" : "warning";
}

void hub_alarm_describe(const hub_alarm_t *a, char *buf, size_t size)
{
    switch (a->code) {
    case HUB_ALARM_RECEIVER_OFFLINE:
        snprintf(buf, size,
                 "%s has been offline for %" PRIu64 " s with messages waiting (limit %" PRIu64
                 " s)",
                 a->subject, a->value, a->limit);
        break;
    case HUB_ALARM_QUEUE_STALE:
        snprintf(buf, size,
                 "the oldest message queued for %s is %" PRIu64 " s old (limit %" PRIu64 " s)",
                 a->subject, a->value, a->limit);
        break;
    case HUB_ALARM_DEAD_LETTERS_GROWING:
        snprintf(buf, size,
                 "%" PRIu64 " messages were dead-lettered in the last minute (limit %" PRIu64 ")",
                 a->value, a->limit);
        break;
    case HUB_ALARM_CERTIFICATE_EXPIRING:
        snprintf(buf, size,
                 "the certificate of %s expires in %" PRIu64 " days (warning from %" PRIu64
                 " days); issue a new one with 'hubctl cert issue'",
                 a->subject, a->value / 86400u, a->limit / 86400u);
        break;
    case HUB_ALARM_STORE_FILLING:
        snprintf(buf, size,
                 "the store is %" PRIu64 "%% full (limit %" PRIu64
                 "%%); drain queues, purge dead letters or raise max_store_bytes",
                 a->value, a->limit);
        break;
    case HUB_ALARM_MEMBER_REFUSED:
        snprintf(buf, size,
                 "%" PRIu64 " envelopes from %s were refused in the last minute (limit %" PRIu64
                 ")",
                 a->value, a->subject, a->limit);
        break;
    case HUB_ALARM_AUDIT_LOG_CUT:
        snprintf(buf, size,
                 "the audit log was found cut back at start (%" PRIu64 " records behind the "
                 "store's anchor) and the hub goes on by operator override (audit_accept_gap); "
                 "restore the missing audit files or record the incident, then remove the "
                 "override",
                 a->value);
        break;
    case HUB_ALARM_AUDIT_LOG_TAMPERED:
        snprintf(buf, size,
                 "the check of the whole audit log at start failed at seq %" PRIu64
                 " (the hub's log names the file, line and what was found); run "
                 "'hubctl audit verify'",
                 a->value);
        break;
    case HUB_ALARM_AUDIT_TSA_UNREACHABLE:
        snprintf(buf, size,
                 "the audit time-stamping authority has failed for %" PRIu64 " s (limit %" PRIu64
                 " s); checkpoints wait for their time-stamps, messages flow",
                 a->value, a->limit);
        break;
    default: snprintf(buf, size, "unknown alarm");
    }
}

/* ---- evaluation --------------------------------------------------------- */

typedef struct {
    hub_alarm_t *out;
    size_t cap, n, held;
} alarms__list_t;

static void alarms__push(alarms__list_t *l, hub_alarm_code_t code, const char *subject,
                         hub_alarm_level_t level, uint64_t value, uint64_t limit)
{
    l->held++;
    if (l->n >= l->cap)
        return;
    hub_alarm_t *a = &l->out[l->n++];
    memset(a, 0, sizeof *a);
    a->code = code;
    a->level = level;
    a->value = value;
    a->limit = limit;
    snprintf(a->subject, sizeof a->subject, "%s", subject ? subject : "");
}

/* Higher is worse: critical at crit, warning at warn (0 = off). */
static void alarms__rising(alarms__list_t *l, hub_alarm_code_t code, const char *subject,
                           uint64_t value, uint64_t warn, uint64_t crit)
{
    if (crit && value >= crit)
        alarms__push(l, code, subject, HUB_ALARM_CRITICAL, value, crit);
    else if (warn && value >= warn)
        alarms__push(l, code, subject, HUB_ALARM_WARNING, value, warn);
}

static int alarms__cmp_alarm(const void *a, const void *b)
{
    const hub_alarm_t *x = a, *y = b;
    if (x->code != y->code)
        return x->code < y->code ? -1 : 1;
    return strcmp(x->subject, y->subject);
}

size_t hub_alarms_evaluate(const hub_alarm_figures_t *fig, const hub_alarm_thresholds_t *t,
                           hub_alarm_t *out, size_t cap, size_t *n_out)
{
    alarms__list_t l = {out, out ? cap : 0, 0, 0};
    if (!fig || !t) {
        if (n_out)
            *n_out = 0;
        return 0;
    }
    uint64_t now = fig->now_us;
    for (size_t i = 0; i < fig->n_members; i++) {
        const hub_alarm_member_t *m = &fig->members[i];
        if (!m->member_id || !m->member_id[0])
            continue;
        if (!m->online && m->queued > 0) {
            uint64_t since = m->offline_since_us ? m->offline_since_us : fig->hub_started_us;
            uint64_t off_s = now > since ? (now - since) / 1000000u : 0;
            alarms__rising(&l, HUB_ALARM_RECEIVER_OFFLINE, m->member_id, off_s, t->offline_warn_s,
                           t->offline_crit_s);
        }
        if (m->queued > 0 && m->oldest_queued_us) {
            uint64_t age_s = now > m->oldest_queued_us ? (now - m->oldest_queued_us) / 1000000u : 0;
            alarms__rising(&l, HUB_ALARM_QUEUE_STALE, m->member_id, age_s, t->queue_age_warn_s,
                           t->queue_age_crit_s);
        }
        if (m->cert_not_after_us) {
            uint64_t left_s =
                m->cert_not_after_us > now ? (m->cert_not_after_us - now) / 1000000u : 0;
            uint64_t crit = (uint64_t)t->cert_crit_days * 86400u;
            uint64_t warn = (uint64_t)t->cert_warn_days * 86400u;
            if (t->cert_crit_days && left_s < crit)
                alarms__push(&l, HUB_ALARM_CERTIFICATE_EXPIRING, m->member_id, HUB_ALARM_CRITICAL,
                             left_s, crit);
            else if (t->cert_warn_days && left_s < warn)
                alarms__push(&l, HUB_ALARM_CERTIFICATE_EXPIRING, m->member_id, HUB_ALARM_WARNING,
                             left_s, warn);
        }
        alarms__rising(&l, HUB_ALARM_MEMBER_REFUSED, m->member_id, m->refusals_minute,
                       t->refusals_warn, t->refusals_crit);
    }
    alarms__rising(&l, HUB_ALARM_DEAD_LETTERS_GROWING, "", fig->dead_letters_minute,
                   t->dead_letters_warn, t->dead_letters_crit);
    if (fig->store_max > 0) {
        uint64_t pct = fig->store_used >= fig->store_max
                           ? 100
                           : (uint64_t)((double)fig->store_used * 100.0 / (double)fig->store_max);
        alarms__rising(&l, HUB_ALARM_STORE_FILLING, "", pct, t->store_warn_percent,
                       t->store_crit_percent);
    }
    if (fig->audit_gap)
        alarms__push(&l, HUB_ALARM_AUDIT_LOG_CUT, "", HUB_ALARM_CRITICAL, fig->audit_gap, 0);
    if (fig->audit_tampered_seq)
        alarms__push(&l, HUB_ALARM_AUDIT_LOG_TAMPERED, "", HUB_ALARM_CRITICAL,
                     fig->audit_tampered_seq, 0);
    if (fig->tsa_failing_s)
        alarms__rising(&l, HUB_ALARM_AUDIT_TSA_UNREACHABLE, "", fig->tsa_failing_s, t->tsa_warn_s,
                       t->tsa_crit_s);
    if (l.n > 1)
        qsort(out, l.n, sizeof *out, alarms__cmp_alarm);
    if (n_out)
        *n_out = l.n;
    return l.held;
}

/* ---- state between evaluations ------------------------------------------ */

/* Lifetime counts sampled once a second, to read "in the last minute". */
typedef struct {
    uint64_t sec[HUB__HIST];
    uint64_t val[HUB__HIST];
} alarms__hist_t;

static void alarms__hist_put(alarms__hist_t *h, uint64_t sec, uint64_t val)
{
    h->sec[sec % HUB__HIST] = sec;
    h->val[sec % HUB__HIST] = val;
}

/* How much the count grew since the oldest sample within the last minute. */
static uint64_t alarms__hist_minute(const alarms__hist_t *h, uint64_t sec, uint64_t now_val)
{
    uint64_t best_sec = UINT64_MAX, base = now_val;
    for (size_t i = 0; i < HUB__HIST; i++) {
        if (h->sec[i] == 0 || h->sec[i] + HUB__MINUTE_S < sec || h->sec[i] > sec)
            continue;
        if (h->sec[i] < best_sec) {
            best_sec = h->sec[i];
            base = h->val[i];
        }
    }
    return now_val > base ? now_val - base : 0;
}

struct hub_alarms {
    hub_alarm_thresholds_t t;
    uint64_t started_us;
    alarms__hist_t dead;
    hub_map_t *refusals; /* member id -> alarms__hist_t */
    hub_alarm_t *active, *next, *ended;
    size_t n_active, n_ended, ended_cap;
    hub_alarm_member_t *members;
    size_t members_cap;
    uint64_t dropped_logged; /* alarms beyond HUB_ALARMS_MAX, last logged count */
    uint64_t audit_gap, tsa_failing_s, audit_tampered_seq;
};

void hub_alarms_set_audit(hub_alarms_t *self, uint64_t audit_gap, uint64_t tsa_failing_s,
                          uint64_t audit_tampered_seq)
{
    if (!self)
        return;
    self->audit_gap = audit_gap;
    self->tsa_failing_s = tsa_failing_s;
    self->audit_tampered_seq = audit_tampered_seq;
}

int hub_alarms_new(const hub_alarm_thresholds_t *t, uint64_t hub_started_us, hub_alarms_t **out)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    hub_alarms_t *self = calloc(1, sizeof *self);
    if (!self)
        return HUB_ENOMEM;
    if (t)
        self->t = *t;
    else
        hub_alarm_thresholds_default(&self->t);
    self->started_us = hub_started_us;
    self->refusals = hub_map_new();
    self->active = calloc(HUB_ALARMS_MAX, sizeof *self->active);
    self->next = calloc(HUB_ALARMS_MAX, sizeof *self->next);
    if (!self->refusals || !self->active || !self->next) {
        hub_alarms_destroy(&self);
        return HUB_ENOMEM;
    }
    *out = self;
    return 0;
}

void hub_alarms_destroy(hub_alarms_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_alarms_t *self = *self_p;
    *self_p = NULL;
    hub_map_destroy_all(&self->refusals, free);
    free(self->active);
    free(self->next);
    free(self->ended);
    free(self->members);
    free(self);
}

static const hub_alarm_t *alarms__find(const hub_alarm_t *list, size_t n, const hub_alarm_t *key)
{
    return n ? bsearch(key, list, n, sizeof *list, alarms__cmp_alarm) : NULL;
}

static void alarms__log(const char *what, const hub_alarm_t *a, bool warn)
{
    char reason[600];
    hub_alarm_describe(a, reason, sizeof reason);
    hub_log(warn ? HUB_LOG_WARN : HUB_LOG_INFO, HUB__ALARMS_COMP, what,
            "code=%s level=%s subject=%s value=%" PRIu64 " limit=%" PRIu64 " reason=\"%s\"",
            hub_alarm_code_name(a->code), hub_alarm_level_name(a->level),
            a->subject[0] ? a->subject : "hub", a->value, a->limit, reason);
}

static void alarms__ended_push(hub_alarms_t *self, const hub_alarm_t *a)
{
    if (HUB_VEC_RESERVE(self->ended, self->n_ended, self->ended_cap, 16) != 0)
        return; /* only a metric series stays at 1 until it is raised again */
    self->ended[self->n_ended++] = *a;
}

int hub_alarms_update(hub_alarms_t *self, uint64_t now_us, const hub_alarm_sample_t *members,
                      size_t n_members, uint64_t dead_letters_total, uint64_t store_used,
                      uint64_t store_max)
{
    if (!self || (n_members && !members))
        return HUB_EINVAL;
    if (n_members > self->members_cap) {
        hub_alarm_member_t *grown = realloc(self->members, n_members * sizeof *grown);
        if (!grown)
            return HUB_ENOMEM;
        self->members = grown;
        self->members_cap = n_members;
    }
    uint64_t sec = now_us / 1000000u;
    for (size_t i = 0; i < n_members; i++) {
        const hub_alarm_sample_t *s = &members[i];
        alarms__hist_t *h = hub_map_get(self->refusals, s->member_id);
        if (!h && (h = calloc(1, sizeof *h)) != NULL &&
            hub_map_put(self->refusals, s->member_id, h)) {
            free(h);
            h = NULL;
        }
        uint64_t minute = 0;
        if (h) {
            minute = alarms__hist_minute(h, sec, s->refusals_total);
            alarms__hist_put(h, sec, s->refusals_total);
        }
        self->members[i] = (hub_alarm_member_t){
            s->member_id,         s->online, s->last_seen_us, s->queued, s->oldest_queued_us,
            s->cert_not_after_us, minute};
    }
    uint64_t dead_minute = alarms__hist_minute(&self->dead, sec, dead_letters_total);
    alarms__hist_put(&self->dead, sec, dead_letters_total);
    hub_alarm_figures_t fig = {now_us,      self->started_us, self->members, n_members,
                               dead_minute, store_used,       store_max, self->audit_gap,
                               self->tsa_failing_s, self->audit_tampered_seq};
    size_t n_next = 0;
    size_t held = hub_alarms_evaluate(&fig, &self->t, self->next, HUB_ALARMS_MAX, &n_next);
    if (held > n_next && held != self->dropped_logged) {
        HUB_WARN(HUB__ALARMS_COMP, "more alarms than can be listed; the rest are left out",
                 "alarms=%zu listed=%zu", held, n_next);
        self->dropped_logged = held;
    }
    /* Transitions: started, level changed, ended. */
    for (size_t i = 0; i < n_next; i++) {
        const hub_alarm_t *was = alarms__find(self->active, self->n_active, &self->next[i]);
        if (!was) {
            alarms__log("alarm started", &self->next[i], true);
        } else if (was->level != self->next[i].level) {
            alarms__log("alarm level changed", &self->next[i], true);
            alarms__ended_push(self, was);
        }
    }
    for (size_t i = 0; i < self->n_active; i++) {
        if (!alarms__find(self->next, n_next, &self->active[i])) {
            alarms__log("alarm ended", &self->active[i], false);
            alarms__ended_push(self, &self->active[i]);
        }
    }
    hub_alarm_t *swap = self->active;
    self->active = self->next;
    self->next = swap;
    self->n_active = n_next;
    return 0;
}

const hub_alarm_t *hub_alarms_active(const hub_alarms_t *self, size_t *n)
{
    *n = self ? self->n_active : 0;
    return self ? self->active : NULL;
}

int hub_alarms_worst(const hub_alarms_t *self)
{
    int worst = 0;
    for (size_t i = 0; self && i < self->n_active; i++)
        if ((int)self->active[i].level > worst)
            worst = (int)self->active[i].level;
    return worst;
}

void hub_alarms_take_ended(hub_alarms_t *self, hub_alarms_ended_visit visit, void *user)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->n_ended; i++)
        visit(&self->ended[i], user);
    self->n_ended = 0;
}
