/* hub_metrics — a registry of counters, gauges and histograms, rendered in
 * the Prometheus text exposition format, version 0.0.4.
 *
 * A family is one metric name with a help text, a type and a fixed list of
 * label names; its series are addressed by label values (one value per
 * label name, in the same order). Finding a series is a hash lookup, O(1)
 * on average, keyed with a random SipHash key per registry so that label
 * values chosen by peers cannot force collisions. On the hottest paths,
 * look a series up once with hub_metric_series() and keep the pointer.
 *
 * Bounded by design: a family holds at most max_series_per_family series.
 * A new label combination beyond that is dropped (the call returns
 * HUB_EFULL, which callers may ignore) and counted in
 * lth_metrics_dropped_series_total{family="<name>"}, which every registry
 * has. Families are never removed; series live as long as the registry.
 *
 * Naming rules, enforced with HUB_EINVAL: metric names match
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and do not
 * start with "__"; counters end in "_total"; histograms have no "le"
 * label. A name already used (or whose histogram series names, <name>_bucket
 * / _sum / _count, would clash with another family) gives HUB_EEXIST.
 *
 * Rendering: families sorted by name, series sorted by their label values,
 * so the same state always renders the same text. A family with no series
 * yet is left out; a family without labels has its one series from the
 * start, at zero. Label values are escaped (backslash, double quote,
 * newline), help texts too (backslash, newline); histogram buckets are
 * cumulative and end with le="+Inf", followed by _sum and _count.
 *
 * Ownership: the registry copies every string it is given and owns its
 * families and series; family and series pointers stay valid until
 * hub_metrics_destroy(). hub_metrics_render() returns a malloc'ed buffer
 * the caller frees.
 *
 * Errors: HUB_EINVAL (a bad name, value or argument, or the wrong
 * operation for the family's type), HUB_EEXIST, HUB_EFULL (series cap
 * reached), HUB_ENOMEM, HUB_ECRYPTO (libsodium would not initialise).
 *
 * Not thread-safe: the hub uses one registry from its loop thread.
 */
#ifndef HUB_METRICS_H
#define HUB_METRICS_H

#include <stddef.h>

typedef struct hub_metrics hub_metrics_t;
typedef struct hub_metric_family hub_metric_family_t;
typedef struct hub_metric_series hub_metric_series_t;

#define HUB_METRICS_DEFAULT_MAX_SERIES 10000u
#define HUB_METRICS_DROPPED_NAME "lth_metrics_dropped_series_total"

/* max_series_per_family 0 means HUB_METRICS_DEFAULT_MAX_SERIES. */
int hub_metrics_new(size_t max_series_per_family, hub_metrics_t **out);
/* Frees the registry with its families and series; NULL is fine. */
void hub_metrics_destroy(hub_metrics_t **reg_p);

/* Registers a family. label_names may be NULL when n_labels is 0. */
int hub_metrics_counter(hub_metrics_t *reg, const char *name, const char *help,
                        const char *const label_names[], size_t n_labels,
                        hub_metric_family_t **out);
int hub_metrics_gauge(hub_metrics_t *reg, const char *name, const char *help,
                      const char *const label_names[], size_t n_labels,
                      hub_metric_family_t **out);
/* buckets: the upper bounds, finite and strictly increasing (n_buckets >= 1);
 * the +Inf bucket is added. E.g. {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1}. */
int hub_metrics_histogram(hub_metrics_t *reg, const char *name, const char *help,
                          const char *const label_names[], size_t n_labels, const double *buckets,
                          size_t n_buckets, hub_metric_family_t **out);

/* One family of a table for hub_metrics_register: the arguments of the
 * calls above, so that a module lists its families instead of chaining
 * calls. buckets and n_buckets are for HUB_METRIC_HISTOGRAM only. */
typedef enum { HUB_METRIC_COUNTER = 0, HUB_METRIC_GAUGE, HUB_METRIC_HISTOGRAM } hub_metric_kind_t;
typedef struct {
    hub_metric_kind_t kind;
    const char *name;
    const char *help;
    const char *const *label_names;
    size_t n_labels;
    hub_metric_family_t **out;
    const double *buckets;
    size_t n_buckets;
} hub_metric_def_t;
/* Registers defs[0..n) in order; stops at, and returns, the first error. */
int hub_metrics_register(hub_metrics_t *reg, const hub_metric_def_t *defs, size_t n);

/* The following take label_values with exactly as many strings as the
 * family has label names (NULL when it has none). */

/* Counter: adds delta >= 0. Gauge: adds delta (may be negative). */
int hub_metric_inc(hub_metric_family_t *family, const char *const label_values[], double delta);
/* Gauge: sets the value. Counter: sets it too, for mirroring a count kept
 * elsewhere (such as hub_http_stats); value must be >= 0. */
int hub_metric_set(hub_metric_family_t *family, const char *const label_values[], double value);
/* Histogram: records one observation (not NaN). */
int hub_metric_observe(hub_metric_family_t *family, const char *const label_values[],
                       double value);

/* Finds or creates the series for label_values; the pointer stays valid
 * for the registry's life. For loops that update the same series often. */
int hub_metric_series(hub_metric_family_t *family, const char *const label_values[],
                      hub_metric_series_t **out);
int hub_series_inc(hub_metric_series_t *series, double delta);
int hub_series_set(hub_metric_series_t *series, double value);
int hub_series_observe(hub_metric_series_t *series, double value);
/* n observations of the same value at once. */
int hub_series_observe_n(hub_metric_series_t *series, double value, size_t n);

/* Renders every family into a new NUL-terminated buffer (*len excludes
 * the NUL); the caller frees *buf. */
int hub_metrics_render(const hub_metrics_t *reg, char **buf, size_t *len);

/* The Content-Type to serve the rendering with. */
#define HUB_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
