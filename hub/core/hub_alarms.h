/* hub_alarms — the hub's health in levels: which alarms hold now, from a
 * snapshot of figures and the thresholds (hubd.conf's alarm_* keys).
 *
 * Two parts:
 *   hub_alarms_evaluate()  a pure function: figures + thresholds -> the
 *                          list of alarms (level, code, subject, value,
 *                          limit), sorted by code then subject. No clock,
 *                          no state, no I/O.
 *   hub_alarms_t           what the hub keeps between evaluations: the
 *                          history that turns lifetime counts into "in the
 *                          last minute" figures (dead letters, refusals per
 *                          member), the alarms active now, and the log lines
 *                          of transitions: "alarm started" once when an
 *                          alarm starts, "alarm level changed" when it goes
 *                          from warning to critical or back, "alarm ended"
 *                          once when it ends.
 *
 * Alarms (code, subject, value / limit):
 *   receiver_offline      member  offline this many s with messages waiting
 *   queue_stale           member  its oldest queued message is this many s old
 *   dead_letters_growing  ""      dead letters added in the last minute
 *   certificate_expiring  member  seconds until its certificate expires
 *                                 (lower is worse: critical below the
 *                                 critical limit)
 *   store_filling         ""      percent of the store in use
 *   member_refused        member  its envelopes refused in the last minute
 *   audit_log_cut         ""      audit records found missing at start and
 *                                 accepted by the operator (audit_accept_gap);
 *                                 always critical, for the process's life
 *   audit_log_tampered    ""      the check of the whole audit log at start
 *                                 failed (value: the seq concerned); critical
 *   audit_tsa_unreachable ""      seconds the audit time-stamping authority
 *                                 has failed since its last token
 *
 * Subjects are member ids the caller passes in (from the key directory and
 * the store's queues), never text chosen by a member, so the metric labels
 * they become stay bounded.
 *
 * Ownership: strings in figures are borrowed for the call; alarms handed
 * out by hub_alarms_update()/hub_alarms_active() hold copies that stay
 * valid until the next update or hub_alarms_destroy().
 *
 * Errors: HUB_EINVAL, HUB_ENOMEM. Not thread-safe: the loop thread only.
 */
#ifndef HUB_ALARMS_H
#define HUB_ALARMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_ALARMS_MAX 1024 /* alarms reported at once; the rest are dropped (and counted) */
#define HUB_ALARM_SUBJECT_MAX 255

typedef enum {
    HUB_ALARM_WARNING = 1,
    HUB_ALARM_CRITICAL = 2,
} hub_alarm_level_t;

typedef enum {
    HUB_ALARM_RECEIVER_OFFLINE = 0,
    HUB_ALARM_QUEUE_STALE,
    HUB_ALARM_DEAD_LETTERS_GROWING,
    HUB_ALARM_CERTIFICATE_EXPIRING,
    HUB_ALARM_STORE_FILLING,
    HUB_ALARM_MEMBER_REFUSED,
    HUB_ALARM_AUDIT_LOG_CUT,
    HUB_ALARM_AUDIT_LOG_TAMPERED,
    HUB_ALARM_AUDIT_TSA_UNREACHABLE,
    HUB_ALARM_CODES
} hub_alarm_code_t;

/* Each pair: warning at or above warn, critical at or above crit (for
 * certificate_expiring: at or below). 0 switches that level off. */
typedef struct {
    uint32_t offline_warn_s, offline_crit_s;         /* receiver_offline */
    uint32_t queue_age_warn_s, queue_age_crit_s;     /* queue_stale */
    uint32_t dead_letters_warn, dead_letters_crit;   /* dead_letters_growing, per minute */
    uint32_t cert_warn_days, cert_crit_days;         /* certificate_expiring */
    uint32_t store_warn_percent, store_crit_percent; /* store_filling */
    uint32_t refusals_warn, refusals_crit;           /* member_refused, per minute */
    uint32_t tsa_warn_s, tsa_crit_s;                 /* audit_tsa_unreachable, seconds */
} hub_alarm_thresholds_t;

void hub_alarm_thresholds_default(hub_alarm_thresholds_t *t);

typedef struct {
    const char *member_id;
    bool online;
    uint64_t offline_since_us;  /* wall clock; 0 = never seen (then: since the hub started) */
    uint64_t queued;            /* messages waiting for it in the store */
    uint64_t oldest_queued_us;  /* wall clock of the oldest; 0 = none */
    uint64_t cert_not_after_us; /* 0 = no certificate (development mode) */
    uint64_t refusals_minute;   /* its envelopes refused in the last minute */
} hub_alarm_member_t;

typedef struct {
    uint64_t now_us;         /* wall clock */
    uint64_t hub_started_us; /* wall clock */
    const hub_alarm_member_t *members;
    size_t n_members;
    uint64_t dead_letters_minute;   /* added in the last minute */
    uint64_t store_used, store_max; /* bytes */
    uint64_t audit_gap;             /* records missing from the audit log, accepted */
    uint64_t tsa_failing_s;         /* the TSA has failed this long; 0 = fine or off */
    uint64_t audit_tampered_seq;    /* the start check failed there; 0 = fine */
} hub_alarm_figures_t;

typedef struct {
    hub_alarm_level_t level;
    hub_alarm_code_t code;
    char subject[HUB_ALARM_SUBJECT_MAX + 1]; /* member id, or "" for the hub */
    uint64_t value;                          /* see the table above */
    uint64_t limit;                          /* the threshold passed */
} hub_alarm_t;

/* "receiver_offline", ...; "warning" / "critical". */
const char *hub_alarm_code_name(hub_alarm_code_t code);
const char *hub_alarm_level_name(hub_alarm_level_t level);
/* The reason in words (English, for logs and the JSON's "reason"); the
 * dashboard and hubctl write their own from code, subject, value and limit
 * with their language catalogues. */
void hub_alarm_describe(const hub_alarm_t *a, char *buf, size_t size);

/* Writes at most cap alarms to out, *n_out of them; returns how many held
 * (more than cap when some did not fit). */
size_t hub_alarms_evaluate(const hub_alarm_figures_t *fig, const hub_alarm_thresholds_t *t,
                           hub_alarm_t *out, size_t cap, size_t *n_out);

typedef struct hub_alarms hub_alarms_t;

/* Per-member figures as lifetime counts; hub_alarms turns them into
 * per-minute figures. */
typedef struct {
    const char *member_id;
    bool online;
    uint64_t last_seen_us;
    uint64_t queued, oldest_queued_us, cert_not_after_us;
    uint64_t refusals_total; /* lifetime count of its refused envelopes */
} hub_alarm_sample_t;

int hub_alarms_new(const hub_alarm_thresholds_t *t, uint64_t hub_started_us, hub_alarms_t **out);
void hub_alarms_destroy(hub_alarms_t **self_p);

/* Takes a sample (about once a second), evaluates, logs the transitions.
 * dead_letters_total: the dead-lettered count since start (lifetime). */
int hub_alarms_update(hub_alarms_t *self, uint64_t now_us, const hub_alarm_sample_t *members,
                      size_t n_members, uint64_t dead_letters_total, uint64_t store_used,
                      uint64_t store_max);

/* The audit log's figures for the next updates (see audit_log_cut and
 * audit_tsa_unreachable). */
void hub_alarms_set_audit(hub_alarms_t *self, uint64_t audit_gap, uint64_t tsa_failing_s,
                          uint64_t audit_tampered_seq);

/* The alarms active after the last update, sorted by code then subject. */
const hub_alarm_t *hub_alarms_active(const hub_alarms_t *self, size_t *n);
/* The worst level active, or 0 when none. */
int hub_alarms_worst(const hub_alarms_t *self);
/* Alarms that have ended since the hub started (for metrics: their series
 * go back to 0). Visits code, subject, level of each ended one once. */
typedef void (*hub_alarms_ended_visit)(const hub_alarm_t *a, void *user);
void hub_alarms_take_ended(hub_alarms_t *self, hub_alarms_ended_visit visit, void *user);

#endif
