/* hub_flows — who sends what to whom, how fast, and what went wrong:
 * per-flow accounting for the operator surface, on the loop thread.
 *
 * A flow is one (sender, receiver, service) triple. The hub reports each
 * step of a message's life: accepted (ACKed to its sender) or refused
 * (NACKed, with the NACK code's name), delivered (handed to the receiver's
 * connection, with the time the hub held it), settled (the receiver
 * finished it, with the time since acceptance), dead-lettered. For each
 * flow this module keeps lifetime counts, counts and latency percentiles
 * over the last minute and the last hour, and feeds the Prometheus
 * families below; it also keeps the last HUB_FLOWS_EXCHANGES exchanges
 * (metadata only: ids, names, sizes, outcomes, times; never payloads) and
 * the hub-wide throughput per second over the last HUB_FLOWS_THROUGHPUT_S
 * seconds, for the dashboard's chart.
 *
 * Label sets stay bounded because the CALLER passes bounded names: member
 * ids from the key directory (or "" when unknown) and service names the
 * receiver offers, or for a reply its request's service, which the replier
 * offers (else "_unlisted"); this module never invents names from input.
 * As a second fence, at most max_flows flows (hubd.conf's max_flows) are
 * tracked; traffic of
 * flows beyond that is counted in one flow named "_overflow" (all three
 * names), so totals still add up, and in lth_flows_overflow_total.
 * Refusal outcomes are reduced to [a-z0-9_] (lower-cased), at most 31
 * bytes, e.g. "receiver_offline".
 *
 * Latency windows: a fixed-bucket histogram (bucket bounds 10 µs * 2^(i/2),
 * up to about 84 s, plus an overflow bucket whose percentile is the largest
 * value seen) per second for the last 60 seconds and per minute for the
 * last 60 minutes. No samples are stored: percentiles are interpolated
 * within a bucket (bounds a factor of 1.41 apart, so within that factor,
 * usually much closer) and kept between the window's minimum and maximum.
 * A flow's windows are allocated when it first reports a latency (about
 * 50 KB for both kinds), so flows with refusals only stay small.
 *
 * Prometheus families registered in the registry given to hub_flows_new()
 * (all with labels sender, receiver, service):
 *   lth_messages_total{...,outcome}        accepted, or the refusal outcome
 *   lth_message_bytes_total                bytes of accepted envelopes (as sent, signature included)
 *   lth_messages_delivered_total           first hand-offs to the receiver
 *   lth_messages_settled_total             settled by the receiver
 *   lth_messages_dead_lettered_total       moved to the dead-letter queue
 *   lth_end_to_end_latency_seconds         histogram: acceptance -> settled
 *   lth_hub_latency_seconds                histogram: receipt -> hand-off
 * plus lth_flows_tracked (gauge) and lth_flows_overflow_total.
 *
 * Times: every now_us is the wall clock in µs since the Unix epoch
 * (hub_now_us()); durations are µs. A clock that steps backwards only makes
 * some slots look stale for a while.
 *
 * Ownership: strings passed in are copied. Pointers handed to visitors are
 * valid only during the visit.
 *
 * Errors: HUB_EINVAL, HUB_ENOMEM, HUB_EEXIST (a family name is already
 * registered). The recording functions return nothing: accounting must
 * never fail a message; out of memory there only loses the figure.
 *
 * Not thread-safe: call everything from the loop thread.
 */
#ifndef HUB_FLOWS_H
#define HUB_FLOWS_H

#include "hub_map.h"
#include "hub_metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_FLOWS_EXCHANGES 1000        /* exchanges kept, newest replacing oldest */
#define HUB_FLOWS_THROUGHPUT_S 300      /* seconds of hub-wide throughput kept */
#define HUB_FLOWS_DEFAULT_MAX 10000u    /* flows tracked by default */
#define HUB_FLOWS_OUTCOME_MAX 31        /* bytes of an outcome name */
#define HUB_FLOWS_REFUSAL_KINDS 8       /* distinct refusal outcomes counted per flow */
#define HUB_FLOWS_OVERFLOW "_overflow"

typedef struct hub_flows hub_flows_t;

/* metrics may be NULL (no Prometheus families); max_flows 0 = default. */
int hub_flows_new(hub_metrics_t *metrics, size_t max_flows, hub_flows_t **out);
void hub_flows_destroy(hub_flows_t **self_p);

/* Recording, from the routing path. receiver and service may be "" (or
 * NULL) when the message did not say or could not be decoded. */
void hub_flows_accepted(hub_flows_t *self, const char *sender, const char *receiver,
                        const char *service, uint64_t payload_bytes, uint64_t now_us);
/* outcome: the NACK code's name, e.g. hub_nack_code_name(code). */
void hub_flows_refused(hub_flows_t *self, const char *sender, const char *receiver,
                       const char *service, const char *outcome, uint64_t now_us);
/* hub_flows_accepted() n times over for one flow, payload_bytes in all:
 * one look-up of the flow (a group commit's envelopes of one flow). */
void hub_flows_accepted_n(hub_flows_t *self, const char *sender, const char *receiver,
                          const char *service, uint64_t n, uint64_t payload_bytes, uint64_t now_us);
/* hub_internal_us: from receipt of the envelope to its hand-off to the
 * receiver's connection (first attempt). */
void hub_flows_delivered(hub_flows_t *self, const char *sender, const char *receiver,
                         const char *service, uint64_t hub_internal_us, uint64_t now_us);
/* hub_flows_accepted() and hub_flows_delivered() (hub_internal_us 0) at
 * once, for a message handed on as it is accepted (online-only): one
 * look-up of the flow instead of two. */
void hub_flows_passed(hub_flows_t *self, const char *sender, const char *receiver,
                      const char *service, uint64_t payload_bytes, uint64_t now_us);
/* The same for n messages of one flow at once, payload_bytes in all. */
void hub_flows_passed_n(hub_flows_t *self, const char *sender, const char *receiver,
                        const char *service, uint64_t n, uint64_t payload_bytes, uint64_t now_us);
/* end_to_end_us: from acceptance to the receiver's settle (online-only
 * messages: to the hand-off, as they are not settled). */
void hub_flows_settled(hub_flows_t *self, const char *sender, const char *receiver,
                       const char *service, uint64_t end_to_end_us, uint64_t now_us);
void hub_flows_dead_lettered(hub_flows_t *self, const char *sender, const char *receiver,
                             const char *service, uint64_t now_us);

/* One exchange for the recent-exchanges list; strings are copied (cut to
 * 36 bytes for ids, 255 for names, at a UTF-8 boundary). */
typedef struct {
    const char *message_id;
    const char *sender;
    const char *receiver;
    const char *service;
    const char *outcome;     /* "accepted", "settled", "dead_lettered", a NACK name, ... */
    uint64_t bytes;          /* envelope bytes */
    uint64_t at_us;          /* wall clock */
    uint64_t latency_us;     /* for delivered/settled; 0 otherwise */
} hub_flows_exchange_t;

void hub_flows_exchange(hub_flows_t *self, const hub_flows_exchange_t *x);

/* Latency over a window; count 0 means no observation (percentiles 0). */
typedef struct {
    uint64_t count;
    uint64_t p50_us, p90_us, p99_us, max_us;
} hub_flows_latency_t;

typedef struct {
    uint64_t accepted, errors;   /* errors: refusals and dead letters */
    hub_flows_latency_t end_to_end, hub;
} hub_flows_window_t;

typedef struct {
    const char *outcome;
    uint64_t count;
} hub_flows_refusal_t;

typedef struct {
    const char *sender, *receiver, *service;
    uint64_t accepted, refused, delivered, settled, dead_lettered, bytes;
    uint64_t first_at_us, last_at_us;
    const hub_flows_refusal_t *refusals; /* by outcome; "other" collects the rest */
    size_t n_refusals;
    hub_flows_window_t minute, hour;
} hub_flows_info_t;

typedef void (*hub_flows_visit)(const hub_flows_info_t *flow, void *user);

/* Visits every flow, sorted by sender, receiver, service, with windows as
 * of now_us. Returns the number visited (HUB_ENOMEM as 0 visits). */
size_t hub_flows_foreach(hub_flows_t *self, uint64_t now_us, hub_flows_visit visit, void *user);
size_t hub_flows_count(const hub_flows_t *self);
/* Several nodes (hub_cluster.h): visits the lifetime counts of the flows
 * counted since the last call (every flow with all), in no order and with
 * zero windows, and marks them unchanged. Returns the number visited. */
size_t hub_flows_changed(hub_flows_t *self, bool all, hub_flows_visit visit, void *user);

typedef void (*hub_flows_exchange_visit)(const hub_flows_exchange_t *x, void *user);
/* Visits up to limit exchanges, newest first; with member non-NULL and
 * non-empty, only those it sent or received. Returns the number visited. */
size_t hub_flows_exchanges(const hub_flows_t *self, size_t limit, const char *member,
                           hub_flows_exchange_visit visit, void *user);

/* Hub-wide counts in one second. */
typedef struct {
    uint64_t second; /* Unix time, seconds */
    uint32_t accepted, refused, delivered, settled, dead_lettered;
} hub_flows_tick_t;

/* Fills out[0..HUB_FLOWS_THROUGHPUT_S) with the seconds ending at now_us,
 * oldest first (seconds without traffic are zero). */
void hub_flows_throughput(const hub_flows_t *self, uint64_t now_us,
                          hub_flows_tick_t out[HUB_FLOWS_THROUGHPUT_S]);

/* Flows counted elsewhere: code that keeps flows this module did not count
 * (other nodes' rows, sums over several nodes) holds each in a
 * hub_flows_sum_t, the values of a hub_map under keys of its own. */
#define HUB_FLOWS_SUM_REFUSALS 16 /* refusal outcomes a sum keeps; "other" collects the rest */
typedef struct {
    hub_flows_info_t info; /* names into names, refusals into refusals; the rest the caller's */
    char *names;
    hub_flows_refusal_t refusals[HUB_FLOWS_SUM_REFUSALS];
    char outcomes[HUB_FLOWS_SUM_REFUSALS][HUB_FLOWS_OUTCOME_MAX + 1];
} hub_flows_sum_t;

/* A new sum, with copies of the names and zero counts, put in map under
 * key (which the map copies; the caller has checked that it is not there).
 * NULL when memory is short. */
hub_flows_sum_t *hub_flows_sum_new(hub_map_t *map, const char *key, const char *sender,
                                   const char *receiver, const char *service);
/* Adds n to the sum's count of outcome. */
void hub_flows_sum_refusal(hub_flows_sum_t *sum, const char *outcome, uint64_t n);
/* Frees a sum: the free_value of hub_map_destroy_all(). */
void hub_flows_sum_free(void *sum);

/* Flows added up over several nodes: sums by "sender\x1freceiver\x1fservice"
 * in by_key. oom is set when memory was short (a flow is then missing). */
typedef struct {
    hub_map_t *by_key;
    bool oom;
} hub_flows_sums_t;

/* A hub_flows_visit adding the flow's lifetime counts and refusals to the
 * sum of its triple in user (a hub_flows_sums_t); the first flow of a
 * triple also gives the sum its windows. */
void hub_flows_sums_add(const hub_flows_info_t *flow, void *user);

#endif
