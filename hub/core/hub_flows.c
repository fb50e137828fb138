#include "hub_flows.h"
#include "hub_error.h"
#include "hub_map.h"
#include "hub_vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Latency buckets: bound[i] = 10 µs * 2^(i/2) for i < HUB__NB - 1; the last
 * bucket is everything above (about 84 s). */
#define HUB__NB 48
#define HUB__NAME_MAX 255
#define HUB__RECENT 64 /* flows remembered for a lookup without building a key */
#define HUB__ID_MAX 36

typedef struct {
    int64_t epoch;   /* the second or minute this slot holds; -1 when unused */
    uint64_t min_us, max_us;
    uint32_t n;
    uint32_t bins[HUB__NB];
} flows__lslot_t;

/* One kind of latency of one flow: per second for a minute, per minute for
 * an hour. */
typedef struct {
    flows__lslot_t sec[60];
    flows__lslot_t min[60];
} flows__lwin_t;

typedef struct {
    int64_t epoch;
    uint32_t accepted, errors;
} flows__cslot_t;

typedef struct {
    char outcome[HUB_FLOWS_OUTCOME_MAX + 1];
    uint64_t count;
} flows__refusal_t;

typedef struct {
    /* Lifetime totals as the visitors see them: names, counts, times and
     * t.n_refusals; t.refusals and the windows are filled per visit. */
    hub_flows_info_t t;
    char *names; /* t's three names, one allocation */
    flows__refusal_t refusals[HUB_FLOWS_REFUSAL_KINDS];
    flows__cslot_t csec[60], cmin[60];
    flows__lwin_t *e2e, *hub; /* allocated on the first latency */
    bool changed;             /* counted since hub_flows_changed last visited it */
    /* Prometheus series, looked up once (NULL when the family is full). */
    bool series_done;
    hub_metric_series_t *m_accepted, *m_bytes, *m_delivered, *m_settled, *m_dead, *m_e2e,
        *m_hub;
} flows__flow_t;

typedef struct {
    char message_id[HUB__ID_MAX + 1];
    char sender[HUB__NAME_MAX + 1];
    char receiver[HUB__NAME_MAX + 1];
    char service[HUB__NAME_MAX + 1];
    char outcome[HUB_FLOWS_OUTCOME_MAX + 1];
    uint64_t bytes, at_us, latency_us;
} flows__exchange_t;

struct hub_flows {
    size_t max_flows;
    hub_map_t *by_key; /* "sender\nreceiver\nservice" -> flows__flow_t */
    flows__flow_t **flows;
    size_t n_flows, cap_flows;
    flows__flow_t *overflow;
    flows__flow_t *recent[HUB__RECENT]; /* direct-mapped by flows__triple_hash; flows live on */
    double bounds_us[HUB__NB - 1];
    flows__exchange_t *exchanges; /* ring of HUB_FLOWS_EXCHANGES */
    size_t x_next, x_count;
    hub_flows_tick_t ticks[HUB_FLOWS_THROUGHPUT_S]; /* indexed by second % size */
    hub_metrics_t *metrics;
    hub_metric_family_t *f_messages, *f_bytes, *f_delivered, *f_settled, *f_dead, *f_e2e,
        *f_hub, *f_tracked, *f_overflow;
};

static const double flows__prom_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                             0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                             5,      10,      30,     60,    300,    3600};

/* ---- names ------------------------------------------------------------- */

/* Copies at most max bytes of src, cut at a UTF-8 boundary. */
static void flows__copy_name(char *dst, const char *src, size_t max)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    size_t n = strnlen(src, max + 1);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void flows__outcome_name(char *dst, const char *src)
{
    size_t n = 0;
    for (const char *p = src ? src : ""; *p && n < HUB_FLOWS_OUTCOME_MAX; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            c = '_';
        dst[n++] = c;
    }
    dst[n] = '\0';
    if (n == 0)
        strcpy(dst, "unknown");
}

/* ---- life cycle -------------------------------------------------------- */

static int flows__register(hub_flows_t *self)
{
    static const char *const labels[] = {"sender", "receiver", "service", "outcome"};
    const double *bk = flows__prom_buckets;
    size_t nb = sizeof flows__prom_buckets / sizeof flows__prom_buckets[0];
    const hub_metric_def_t defs[] = {
        {HUB_METRIC_COUNTER, "lth_messages_total",
         "Messages by sender, receiver, service and outcome (accepted, "
         "or the refusal's NACK code).",
         labels, 4, &self->f_messages, NULL, 0},
        {HUB_METRIC_COUNTER, "lth_message_bytes_total", "Payload bytes of accepted messages.",
         labels, 3, &self->f_bytes, NULL, 0},
        {HUB_METRIC_COUNTER, "lth_messages_delivered_total",
         "Messages handed to their receiver (first attempts).", labels, 3, &self->f_delivered, NULL,
         0},
        {HUB_METRIC_COUNTER, "lth_messages_settled_total",
         "Messages their receiver has finished handling.", labels, 3, &self->f_settled, NULL, 0},
        {HUB_METRIC_COUNTER, "lth_messages_dead_lettered_total",
         "Messages moved to the dead-letter queue.", labels, 3, &self->f_dead, NULL, 0},
        {HUB_METRIC_HISTOGRAM, "lth_end_to_end_latency_seconds",
         "Time from the hub's acceptance of a message to its "
         "receiver's settle.",
         labels, 3, &self->f_e2e, bk, nb},
        {HUB_METRIC_HISTOGRAM, "lth_hub_latency_seconds",
         "Time from the hub's receipt of a message to its hand-off "
         "to the receiver.",
         labels, 3, &self->f_hub, bk, nb},
        {HUB_METRIC_GAUGE, "lth_flows_tracked",
         "Sender-receiver-service flows the hub keeps figures for.", NULL, 0, &self->f_tracked,
         NULL, 0},
        {HUB_METRIC_COUNTER, "lth_flows_overflow_total",
         "Messages counted in the _overflow flow because max_flows "
         "flows were already tracked.",
         NULL, 0, &self->f_overflow, NULL, 0},
    };
    return hub_metrics_register(self->metrics, defs, sizeof defs / sizeof defs[0]);
}

int hub_flows_new(hub_metrics_t *metrics, size_t max_flows, hub_flows_t **out)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    hub_flows_t *self = calloc(1, sizeof *self);
    if (!self)
        return HUB_ENOMEM;
    self->max_flows = max_flows ? max_flows : HUB_FLOWS_DEFAULT_MAX;
    self->metrics = metrics;
    self->by_key = hub_map_new();
    self->exchanges = calloc(HUB_FLOWS_EXCHANGES, sizeof *self->exchanges);
    if (!self->by_key || !self->exchanges) {
        hub_flows_destroy(&self);
        return HUB_ENOMEM;
    }
    for (int i = 0; i < HUB__NB - 1; i++)
        self->bounds_us[i] = 10.0 * pow(2.0, i / 2.0);
    if (metrics) {
        int rc = flows__register(self);
        if (rc) {
            hub_flows_destroy(&self);
            return rc;
        }
    }
    *out = self;
    return 0;
}

static void flows__flow_free(flows__flow_t *f)
{
    if (!f)
        return;
    free(f->names);
    free(f->e2e);
    free(f->hub);
    free(f);
}

void hub_flows_destroy(hub_flows_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_flows_t *self = *self_p;
    for (size_t i = 0; i < self->n_flows; i++)
        flows__flow_free(self->flows[i]);
    free(self->flows);
    hub_map_destroy(&self->by_key);
    free(self->exchanges);
    free(self);
    *self_p = NULL;
}

/* ---- finding flows ----------------------------------------------------- */

static void flows__cslots_reset(flows__cslot_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s[i].epoch = -1;
}

/* Points info's names at copies of the three, made in one allocation
 * (*names, the caller's to free). 0 or HUB_ENOMEM. */
static int flows__names_copy(hub_flows_info_t *info, char **names, const char *sender,
                             const char *receiver, const char *service)
{
    size_t ls = strlen(sender) + 1, lr = strlen(receiver) + 1, lv = strlen(service) + 1;
    char *p = malloc(ls + lr + lv);
    if (!p)
        return HUB_ENOMEM;
    info->sender = memcpy(p, sender, ls);
    info->receiver = memcpy(p + ls, receiver, lr);
    info->service = memcpy(p + ls + lr, service, lv);
    *names = p;
    return 0;
}

static flows__flow_t *flows__flow_make(const char *sender, const char *receiver,
                                       const char *service)
{
    flows__flow_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (flows__names_copy(&f->t, &f->names, sender, receiver, service) != 0) {
        free(f);
        return NULL;
    }
    flows__cslots_reset(f->csec, 60);
    flows__cslots_reset(f->cmin, 60);
    return f;
}

static int flows__flow_add(hub_flows_t *self, const char *key, flows__flow_t *f)
{
    if (HUB_VEC_RESERVE(self->flows, self->n_flows, self->cap_flows, 64) != 0)
        return HUB_ENOMEM;
    if (key && hub_map_put(self->by_key, key, f) != 0)
        return HUB_ENOMEM;
    self->flows[self->n_flows++] = f;
    if (self->f_tracked)
        hub_metric_set(self->f_tracked, NULL, (double)self->n_flows);
    return 0;
}

static void flows__flow_series(hub_flows_t *self, flows__flow_t *f)
{
    if (f->series_done || !self->metrics)
        return;
    f->series_done = true;
    const char *const l3[] = {f->t.sender, f->t.receiver, f->t.service};
    const char *const l4[] = {f->t.sender, f->t.receiver, f->t.service, "accepted"};
    hub_metric_series(self->f_messages, l4, &f->m_accepted);
    hub_metric_series(self->f_bytes, l3, &f->m_bytes);
    hub_metric_series(self->f_delivered, l3, &f->m_delivered);
    hub_metric_series(self->f_settled, l3, &f->m_settled);
    hub_metric_series(self->f_dead, l3, &f->m_dead);
    hub_metric_series(self->f_e2e, l3, &f->m_e2e);
    hub_metric_series(self->f_hub, l3, &f->m_hub);
}

/* The flow for the triple from the map of all flows (flows__flow_get). */
static flows__flow_t *flows__flow_lookup(hub_flows_t *self, const char *sender,
                                         const char *receiver, const char *service)
{
    char s[HUB__NAME_MAX + 1], r[HUB__NAME_MAX + 1], v[HUB__NAME_MAX + 1];
    flows__copy_name(s, sender, HUB__NAME_MAX);
    flows__copy_name(r, receiver, HUB__NAME_MAX);
    flows__copy_name(v, service, HUB__NAME_MAX);
    char key[3 * (HUB__NAME_MAX + 1)];
    snprintf(key, sizeof key, "%s\n%s\n%s", s, r, v);
    flows__flow_t *f = hub_map_get(self->by_key, key);
    if (f)
        return f;
    if (self->n_flows >= self->max_flows) {
        if (self->f_overflow)
            hub_metric_inc(self->f_overflow, NULL, 1);
        if (!self->overflow) {
            f = flows__flow_make(HUB_FLOWS_OVERFLOW, HUB_FLOWS_OVERFLOW, HUB_FLOWS_OVERFLOW);
            if (!f || flows__flow_add(self, NULL, f) != 0) {
                flows__flow_free(f);
                return NULL;
            }
            self->overflow = f;
        }
        f = self->overflow;
    } else {
        f = flows__flow_make(s, r, v);
        if (!f || flows__flow_add(self, key, f) != 0) {
            flows__flow_free(f);
            return NULL;
        }
    }
    flows__flow_series(self, f);
    return f;
}

static unsigned flows__triple_hash(const char *a, const char *b, const char *c)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        for (const unsigned char *p = (const unsigned char *)parts[i]; p && *p; p++)
            h = (h ^ *p) * 16777619u;
        h = (h ^ '\n') * 16777619u;
    }
    return h % HUB__RECENT;
}

/* The flow for the triple, created on first use; the overflow flow when
 * max_flows are tracked; NULL only when memory is short. Every envelope
 * passes here two or three times, so the flows used lately are found by a
 * hash of the names and three string compares before any key is built. */
static flows__flow_t *flows__flow_get(hub_flows_t *self, const char *sender, const char *receiver,
                                      const char *service)
{
    unsigned slot = flows__triple_hash(sender, receiver, service);
    flows__flow_t *hit = self->recent[slot];
    if (hit && sender && receiver && service && !strcmp(hit->t.sender, sender) &&
        !strcmp(hit->t.receiver, receiver) && !strcmp(hit->t.service, service))
        return hit;
    flows__flow_t *f = flows__flow_lookup(self, sender, receiver, service);
    if (f && f != self->overflow)
        self->recent[slot] = f;
    return f;
}

/* ---- recording --------------------------------------------------------- */

static flows__cslot_t *flows__cslot(flows__cslot_t *ring, int64_t epoch)
{
    flows__cslot_t *s = &ring[epoch % 60];
    if (s->epoch != epoch) {
        s->epoch = epoch;
        s->accepted = s->errors = 0;
    }
    return s;
}

/* n accepted messages, or n errors, in this second's and minute's slots. */
static void flows__count(flows__flow_t *f, uint64_t now_us, bool accepted, uint32_t n)
{
    int64_t sec = (int64_t)(now_us / 1000000u);
    flows__cslot_t *a = flows__cslot(f->csec, sec), *b = flows__cslot(f->cmin, sec / 60);
    if (accepted) {
        a->accepted += n;
        b->accepted += n;
    } else {
        a->errors += n;
        b->errors += n;
    }
}

static void flows__touch(flows__flow_t *f, uint64_t now_us)
{
    if (!f->t.first_at_us)
        f->t.first_at_us = now_us;
    f->t.last_at_us = now_us;
    f->changed = true;
}

static hub_flows_tick_t *flows__tick(hub_flows_t *self, uint64_t now_us)
{
    uint64_t sec = now_us / 1000000u;
    hub_flows_tick_t *t = &self->ticks[sec % HUB_FLOWS_THROUGHPUT_S];
    if (t->second != sec) {
        memset(t, 0, sizeof *t);
        t->second = sec;
    }
    return t;
}

static size_t flows__bin(const hub_flows_t *self, uint64_t us)
{
    size_t lo = 0, hi = HUB__NB - 1; /* the first bound >= us, or the overflow bucket */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((double)us <= self->bounds_us[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void flows__lslot_add(flows__lslot_t *s, int64_t epoch, size_t bin, uint64_t us,
                             uint32_t n)
{
    if (s->epoch != epoch) {
        memset(s, 0, sizeof *s);
        s->epoch = epoch;
    }
    s->bins[bin] += n;
    if (s->n == 0 || us < s->min_us)
        s->min_us = us;
    s->n += n;
    if (us > s->max_us)
        s->max_us = us;
}

static flows__lwin_t *flows__lwin_new(void)
{
    flows__lwin_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    for (int i = 0; i < 60; i++)
        w->sec[i].epoch = w->min[i].epoch = -1;
    return w;
}

/* n observations of us into the window's second and minute. */
static void flows__observe(hub_flows_t *self, flows__lwin_t **wp, uint64_t us, uint64_t now_us,
                           uint32_t n)
{
    if (!*wp && !(*wp = flows__lwin_new()))
        return;
    int64_t sec = (int64_t)(now_us / 1000000u);
    size_t bin = flows__bin(self, us);
    flows__lslot_add(&(*wp)->sec[sec % 60], sec, bin, us, n);
    flows__lslot_add(&(*wp)->min[(sec / 60) % 60], sec / 60, bin, us, n);
}

/* One flow's counters and series for n accepted messages of payload_bytes
 * in all. */
static void flows__flow_accepted(flows__flow_t *f, uint32_t n, uint64_t payload_bytes,
                                 uint64_t now_us)
{
    f->t.accepted += n;
    f->t.bytes += payload_bytes;
    flows__touch(f, now_us);
    flows__count(f, now_us, true, n);
    if (f->m_accepted)
        hub_series_inc(f->m_accepted, (double)n);
    if (f->m_bytes)
        hub_series_inc(f->m_bytes, (double)payload_bytes);
}

/* One flow's counters and series for n steps that take a time each: a
 * delivery (us in the hub, into the hub window and histogram) or a settle
 * (us end to end, into those). */
static void flows__flow_timed(hub_flows_t *self, flows__flow_t *f, uint64_t *count,
                              flows__lwin_t **window, hub_metric_series_t *m_count,
                              hub_metric_series_t *m_latency, uint64_t us, uint64_t now_us,
                              uint32_t n)
{
    *count += n;
    flows__touch(f, now_us);
    flows__observe(self, window, us, now_us, n);
    if (m_count)
        hub_series_inc(m_count, (double)n);
    if (m_latency)
        hub_series_observe_n(m_latency, (double)us / 1e6, n);
}

static void flows__flow_delivered(hub_flows_t *self, flows__flow_t *f, uint64_t hub_internal_us,
                                  uint64_t now_us, uint32_t n)
{
    flows__flow_timed(self, f, &f->t.delivered, &f->hub, f->m_delivered, f->m_hub, hub_internal_us,
                      now_us, n);
}

/* One flow's counters and series for a refusal with outcome (a NACK name). */
static void flows__flow_refused(hub_flows_t *self, flows__flow_t *f, const char *outcome,
                                uint64_t now_us)
{
    char name[HUB_FLOWS_OUTCOME_MAX + 1];
    flows__outcome_name(name, outcome);
    f->t.refused++;
    flows__touch(f, now_us);
    flows__count(f, now_us, false, 1);
    size_t i = 0;
    while (i < f->t.n_refusals && strcmp(f->refusals[i].outcome, name) != 0)
        i++;
    if (i == f->t.n_refusals) {
        if (f->t.n_refusals >= HUB_FLOWS_REFUSAL_KINDS - 1) {
            i = HUB_FLOWS_REFUSAL_KINDS - 1; /* the last kind collects the rest */
            if (f->t.n_refusals < HUB_FLOWS_REFUSAL_KINDS) {
                strcpy(f->refusals[i].outcome, "other");
                f->t.n_refusals = HUB_FLOWS_REFUSAL_KINDS;
            }
        } else {
            memcpy(f->refusals[i].outcome, name, sizeof name);
            f->t.n_refusals++;
        }
    }
    f->refusals[i].count++;
    if (self->f_messages) {
        const char *const labels[] = {f->t.sender, f->t.receiver, f->t.service, name};
        hub_metric_inc(self->f_messages, labels, 1);
    }
}

/* The steps of a message's life, as bits for flows__step. */
enum {
    FLOWS__ACCEPTED = 1,
    FLOWS__REFUSED = 2,
    FLOWS__DELIVERED = 4,
    FLOWS__SETTLED = 8,
    FLOWS__DEAD_LETTERED = 16,
};

/* Where every recording starts: counts n of each step (FLOWS__ bits) in
 * this second's hub-wide throughput and returns the flow of the triple, NULL
 * without a flows object or when memory is short. Inline, so that the
 * constant bits of each caller fold away. */
static inline flows__flow_t *flows__step(hub_flows_t *self, unsigned steps, uint64_t n,
                                         const char *sender, const char *receiver,
                                         const char *service, uint64_t now_us)
{
    if (!self)
        return NULL;
    hub_flows_tick_t *t = flows__tick(self, now_us);
    if (steps & FLOWS__ACCEPTED)
        t->accepted += n;
    if (steps & FLOWS__REFUSED)
        t->refused += n;
    if (steps & FLOWS__DELIVERED)
        t->delivered += n;
    if (steps & FLOWS__SETTLED)
        t->settled += n;
    if (steps & FLOWS__DEAD_LETTERED)
        t->dead_lettered += n;
    return flows__flow_get(self, sender, receiver, service);
}

void hub_flows_accepted(hub_flows_t *self, const char *sender, const char *receiver,
                        const char *service, uint64_t payload_bytes, uint64_t now_us)
{
    hub_flows_accepted_n(self, sender, receiver, service, 1, payload_bytes, now_us);
}

void hub_flows_accepted_n(hub_flows_t *self, const char *sender, const char *receiver,
                          const char *service, uint64_t n, uint64_t payload_bytes, uint64_t now_us)
{
    flows__flow_t *f =
        n ? flows__step(self, FLOWS__ACCEPTED, n, sender, receiver, service, now_us) : NULL;
    if (f)
        flows__flow_accepted(f, (uint32_t)n, payload_bytes, now_us);
}

void hub_flows_refused(hub_flows_t *self, const char *sender, const char *receiver,
                       const char *service, const char *outcome, uint64_t now_us)
{
    flows__flow_t *f = flows__step(self, FLOWS__REFUSED, 1, sender, receiver, service, now_us);
    if (f)
        flows__flow_refused(self, f, outcome, now_us);
}

void hub_flows_delivered(hub_flows_t *self, const char *sender, const char *receiver,
                         const char *service, uint64_t hub_internal_us, uint64_t now_us)
{
    flows__flow_t *f = flows__step(self, FLOWS__DELIVERED, 1, sender, receiver, service, now_us);
    if (f)
        flows__flow_delivered(self, f, hub_internal_us, now_us, 1);
}

void hub_flows_passed(hub_flows_t *self, const char *sender, const char *receiver,
                      const char *service, uint64_t payload_bytes, uint64_t now_us)
{
    hub_flows_passed_n(self, sender, receiver, service, 1, payload_bytes, now_us);
}

void hub_flows_passed_n(hub_flows_t *self, const char *sender, const char *receiver,
                        const char *service, uint64_t n, uint64_t payload_bytes, uint64_t now_us)
{
    flows__flow_t *f = n ? flows__step(self, FLOWS__ACCEPTED | FLOWS__DELIVERED, n, sender,
                                       receiver, service, now_us)
                         : NULL;
    if (!f)
        return;
    flows__flow_accepted(f, (uint32_t)n, payload_bytes, now_us);
    flows__flow_delivered(self, f, 0, now_us, (uint32_t)n); /* 0 µs in the hub */
}

void hub_flows_settled(hub_flows_t *self, const char *sender, const char *receiver,
                       const char *service, uint64_t end_to_end_us, uint64_t now_us)
{
    flows__flow_t *f = flows__step(self, FLOWS__SETTLED, 1, sender, receiver, service, now_us);
    if (f)
        flows__flow_timed(self, f, &f->t.settled, &f->e2e, f->m_settled, f->m_e2e, end_to_end_us,
                          now_us, 1);
}

void hub_flows_dead_lettered(hub_flows_t *self, const char *sender, const char *receiver,
                             const char *service, uint64_t now_us)
{
    flows__flow_t *f =
        flows__step(self, FLOWS__DEAD_LETTERED, 1, sender, receiver, service, now_us);
    if (!f)
        return;
    f->t.dead_lettered++;
    flows__touch(f, now_us);
    flows__count(f, now_us, false, 1);
    if (f->m_dead)
        hub_series_inc(f->m_dead, 1);
}

void hub_flows_exchange(hub_flows_t *self, const hub_flows_exchange_t *x)
{
    if (!self || !x)
        return;
    flows__exchange_t *e = &self->exchanges[self->x_next];
    flows__copy_name(e->message_id, x->message_id, HUB__ID_MAX);
    flows__copy_name(e->sender, x->sender, HUB__NAME_MAX);
    flows__copy_name(e->receiver, x->receiver, HUB__NAME_MAX);
    flows__copy_name(e->service, x->service, HUB__NAME_MAX);
    flows__outcome_name(e->outcome, x->outcome);
    e->bytes = x->bytes;
    e->at_us = x->at_us;
    e->latency_us = x->latency_us;
    self->x_next = (self->x_next + 1) % HUB_FLOWS_EXCHANGES;
    if (self->x_count < HUB_FLOWS_EXCHANGES)
        self->x_count++;
}

/* ---- reading ----------------------------------------------------------- */

typedef struct {
    uint64_t bins[HUB__NB];
    uint64_t n, min_us, max_us;
} flows__merged_t;

static void flows__merge(flows__merged_t *m, const flows__lslot_t *slots, int64_t first,
                         int64_t last)
{
    for (int i = 0; i < 60; i++) {
        const flows__lslot_t *s = &slots[i];
        if (s->epoch < first || s->epoch > last || s->n == 0)
            continue;
        for (int b = 0; b < HUB__NB; b++)
            m->bins[b] += s->bins[b];
        if (m->n == 0 || s->min_us < m->min_us)
            m->min_us = s->min_us;
        m->n += s->n;
        if (s->max_us > m->max_us)
            m->max_us = s->max_us;
    }
}

static uint64_t flows__percentile(const hub_flows_t *self, const flows__merged_t *m, double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)m->n);
    if (rank < 1)
        rank = 1;
    uint64_t cum = 0;
    for (int b = 0; b < HUB__NB; b++) {
        if (m->bins[b] == 0 || cum + m->bins[b] < rank) {
            cum += m->bins[b];
            continue;
        }
        double lower = b == 0 ? 0.0 : self->bounds_us[b - 1];
        double upper = b < HUB__NB - 1 ? self->bounds_us[b] : (double)m->max_us;
        /* The window's extremes narrow the bucket: samples that all fall in
         * one bucket are reported between their own min and max. */
        if (upper > (double)m->max_us)
            upper = (double)m->max_us;
        if (lower < (double)m->min_us)
            lower = (double)m->min_us;
        if (lower > upper)
            lower = upper;
        double frac = (double)(rank - cum) / (double)m->bins[b];
        return (uint64_t)llround(lower + (upper - lower) * frac);
    }
    return m->max_us;
}

static void flows__latency(const hub_flows_t *self, const flows__lwin_t *w, bool hour,
                           int64_t now_s, hub_flows_latency_t *out)
{
    memset(out, 0, sizeof *out);
    if (!w)
        return;
    flows__merged_t m;
    memset(&m, 0, sizeof m);
    if (hour)
        flows__merge(&m, w->min, now_s / 60 - 59, now_s / 60);
    else
        flows__merge(&m, w->sec, now_s - 59, now_s);
    if (m.n == 0)
        return;
    out->count = m.n;
    out->max_us = m.max_us;
    out->p50_us = flows__percentile(self, &m, 0.50);
    out->p90_us = flows__percentile(self, &m, 0.90);
    out->p99_us = flows__percentile(self, &m, 0.99);
}

static void flows__counts(const flows__cslot_t *ring, int64_t first, int64_t last,
                          hub_flows_window_t *out)
{
    for (int i = 0; i < 60; i++) {
        if (ring[i].epoch < first || ring[i].epoch > last)
            continue;
        out->accepted += ring[i].accepted;
        out->errors += ring[i].errors;
    }
}

static int flows__cmp_flow(const void *a, const void *b)
{
    const flows__flow_t *fa = *(const flows__flow_t *const *)a;
    const flows__flow_t *fb = *(const flows__flow_t *const *)b;
    int c = strcmp(fa->t.sender, fb->t.sender);
    if (!c)
        c = strcmp(fa->t.receiver, fb->t.receiver);
    if (!c)
        c = strcmp(fa->t.service, fb->t.service);
    return c;
}

/* A flow's cumulative totals as the visitors see them; refusals is the
 * caller's array the info points into. The windows are left zero. */
static hub_flows_info_t flows__totals(const flows__flow_t *f,
                                      hub_flows_refusal_t refusals[HUB_FLOWS_REFUSAL_KINDS])
{
    hub_flows_info_t info = f->t;
    for (size_t k = 0; k < info.n_refusals; k++) {
        refusals[k].outcome = f->refusals[k].outcome;
        refusals[k].count = f->refusals[k].count;
    }
    info.refusals = refusals;
    return info;
}

size_t hub_flows_foreach(hub_flows_t *self, uint64_t now_us, hub_flows_visit visit, void *user)
{
    if (!self || !visit || self->n_flows == 0)
        return 0;
    flows__flow_t **sorted = malloc(self->n_flows * sizeof *sorted);
    if (!sorted)
        return 0;
    memcpy(sorted, self->flows, self->n_flows * sizeof *sorted);
    qsort(sorted, self->n_flows, sizeof *sorted, flows__cmp_flow);
    int64_t now_s = (int64_t)(now_us / 1000000u);
    size_t n = self->n_flows;
    for (size_t i = 0; i < n; i++) {
        const flows__flow_t *f = sorted[i];
        hub_flows_refusal_t refusals[HUB_FLOWS_REFUSAL_KINDS];
        hub_flows_info_t info = flows__totals(f, refusals);
        flows__counts(f->csec, now_s - 59, now_s, &info.minute);
        flows__counts(f->cmin, now_s / 60 - 59, now_s / 60, &info.hour);
        flows__latency(self, f->e2e, false, now_s, &info.minute.end_to_end);
        flows__latency(self, f->hub, false, now_s, &info.minute.hub);
        flows__latency(self, f->e2e, true, now_s, &info.hour.end_to_end);
        flows__latency(self, f->hub, true, now_s, &info.hour.hub);
        visit(&info, user);
    }
    free(sorted);
    return n;
}

size_t hub_flows_changed(hub_flows_t *self, bool all, hub_flows_visit visit, void *user)
{
    if (!self || !visit)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < self->n_flows; i++) {
        flows__flow_t *f = self->flows[i];
        if (!f->changed && !all)
            continue;
        f->changed = false;
        hub_flows_refusal_t refusals[HUB_FLOWS_REFUSAL_KINDS];
        hub_flows_info_t info = flows__totals(f, refusals);
        visit(&info, user);
        n++;
    }
    return n;
}

size_t hub_flows_count(const hub_flows_t *self) { return self ? self->n_flows : 0; }

size_t hub_flows_exchanges(const hub_flows_t *self, size_t limit, const char *member,
                           hub_flows_exchange_visit visit, void *user)
{
    if (!self || !visit)
        return 0;
    bool filter = member && *member;
    size_t visited = 0;
    for (size_t k = 0; k < self->x_count && visited < limit; k++) {
        size_t idx = (self->x_next + HUB_FLOWS_EXCHANGES - 1 - k) % HUB_FLOWS_EXCHANGES;
        const flows__exchange_t *e = &self->exchanges[idx];
        if (filter && strcmp(e->sender, member) != 0 && strcmp(e->receiver, member) != 0)
            continue;
        hub_flows_exchange_t x = {e->message_id, e->sender,   e->receiver,  e->service,
                                  e->outcome,    e->bytes,    e->at_us,     e->latency_us};
        visit(&x, user);
        visited++;
    }
    return visited;
}

void hub_flows_throughput(const hub_flows_t *self, uint64_t now_us,
                          hub_flows_tick_t out[HUB_FLOWS_THROUGHPUT_S])
{
    uint64_t now_s = now_us / 1000000u;
    for (size_t i = 0; i < HUB_FLOWS_THROUGHPUT_S; i++) {
        uint64_t sec = now_s + 1 + i - HUB_FLOWS_THROUGHPUT_S;
        const hub_flows_tick_t *t = self ? &self->ticks[sec % HUB_FLOWS_THROUGHPUT_S] : NULL;
        if (t && t->second == sec) {
            out[i] = *t;
        } else {
            memset(&out[i], 0, sizeof out[i]);
            out[i].second = sec;
        }
    }
}

/* ---- flows counted elsewhere ------------------------------------------- */

hub_flows_sum_t *hub_flows_sum_new(hub_map_t *map, const char *key, const char *sender,
                                   const char *receiver, const char *service)
{
    hub_flows_sum_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (flows__names_copy(&f->info, &f->names, sender, receiver, service) != 0 ||
        hub_map_put(map, key, f) != 0) {
        hub_flows_sum_free(f);
        return NULL;
    }
    f->info.refusals = f->refusals;
    return f;
}

void hub_flows_sum_refusal(hub_flows_sum_t *f, const char *outcome, uint64_t n)
{
    size_t i = 0;
    while (i < f->info.n_refusals && strcmp(f->outcomes[i], outcome) != 0)
        i++;
    if (i == HUB_FLOWS_SUM_REFUSALS) {
        i = HUB_FLOWS_SUM_REFUSALS - 1; /* the last kind collects the rest */
        snprintf(f->outcomes[i], sizeof f->outcomes[i], "other");
    } else if (i == f->info.n_refusals) {
        snprintf(f->outcomes[i], sizeof f->outcomes[i], "%s", outcome);
        f->refusals[i].count = 0;
        f->info.n_refusals++;
    }
    f->refusals[i].outcome = f->outcomes[i];
    f->refusals[i].count += n;
}

void hub_flows_sums_add(const hub_flows_info_t *in, void *user)
{
    hub_flows_sums_t *sums = user;
    size_t ls = strlen(in->sender) + 1, lr = strlen(in->receiver) + 1, lv = strlen(in->service) + 1;
    char *key = malloc(ls + lr + lv);
    if (!key) {
        sums->oom = true;
        return;
    }
    snprintf(key, ls + lr + lv, "%s\x1f%s\x1f%s", in->sender, in->receiver, in->service);
    hub_flows_sum_t *f = hub_map_get(sums->by_key, key);
    if (!f && (f = hub_flows_sum_new(sums->by_key, key, in->sender, in->receiver, in->service))) {
        f->info.minute = in->minute;
        f->info.hour = in->hour;
    }
    free(key);
    if (!f) {
        sums->oom = true;
        return;
    }
    f->info.accepted += in->accepted;
    f->info.refused += in->refused;
    f->info.delivered += in->delivered;
    f->info.settled += in->settled;
    f->info.dead_lettered += in->dead_lettered;
    f->info.bytes += in->bytes;
    if (in->first_at_us && (!f->info.first_at_us || in->first_at_us < f->info.first_at_us))
        f->info.first_at_us = in->first_at_us;
    if (in->last_at_us > f->info.last_at_us)
        f->info.last_at_us = in->last_at_us;
    for (size_t i = 0; i < in->n_refusals; i++)
        hub_flows_sum_refusal(f, in->refusals[i].outcome, in->refusals[i].count);
}

void hub_flows_sum_free(void *sum)
{
    hub_flows_sum_t *f = sum;
    if (!f)
        return;
    free(f->names);
    free(f);
}
