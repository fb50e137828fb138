#include "hub_metrics.h"
#include "hub_buf.h"
#include "hub_error.h"
#include "hub_vec.h"

#include <math.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef hub_metric_kind_t metrics__metric_type_t;

struct hub_metric_series {
    hub_metric_family_t *family;
    uint64_t hash;
    char **values;           /* n_labels strings, in one allocation with the array */
    double value;            /* counter, gauge */
    double sum;              /* histogram */
    uint64_t count;          /* histogram: observations */
    uint64_t *bucket_counts; /* histogram: per bucket, not cumulative; n_bounds + 1 */
};

struct hub_metric_family {
    hub_metrics_t *reg;
    metrics__metric_type_t type;
    char *name;
    char *help;
    char **label_names;
    size_t n_labels;
    double *bounds;          /* histogram upper bounds, without +Inf */
    size_t n_bounds;
    hub_metric_series_t **series;
    size_t n_series, cap_series;
    uint32_t *slots;         /* open addressing: series index + 1, 0 = empty */
    size_t n_slots;          /* a power of two */
};

struct hub_metrics {
    size_t max_series;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    hub_metric_family_t **families;
    size_t n_families, cap_families;
    hub_metric_family_t *dropped; /* lth_metrics_dropped_series_total{family} */
};

/* ---- names ------------------------------------------------------------ */

static bool metrics__name_ok(const char *s, bool colon_ok)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                     (colon_ok && c == ':');
        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static bool metrics__ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Does `a` (a family of type ta) clash with a family named b of type tb? */
static bool metrics__names_clash(const char *a, metrics__metric_type_t ta, const char *b,
                                 metrics__metric_type_t tb)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    if (strcmp(a, b) == 0)
        return true;
    for (int pass = 0; pass < 2; pass++) {
        const char *hist = pass ? b : a, *other = pass ? a : b;
        if ((pass ? tb : ta) != HUB_METRIC_HISTOGRAM)
            continue;
        size_t n = strlen(hist);
        for (size_t i = 0; i < 3; i++) {
            if (strncmp(other, hist, n) == 0 && strcmp(other + n, suffixes[i]) == 0)
                return true;
        }
    }
    return false;
}

/* ---- families --------------------------------------------------------- */

static void metrics__series_free(hub_metric_series_t *s)
{
    if (!s)
        return;
    free(s->values);
    free(s->bucket_counts);
    free(s);
}

static void metrics__family_free(hub_metric_family_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_series; i++)
        metrics__series_free(f->series[i]);
    free(f->series);
    free(f->slots);
    free(f->label_names);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

/* Copies n strings into one allocation: the pointer array, then the bytes. */
static char **metrics__strv_dup(const char *const *v, size_t n)
{
    size_t bytes = n * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(v[i]) + 1;
    char **out = malloc(bytes ? bytes : 1);
    if (!out)
        return NULL;
    char *p = (char *)(out + n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]) + 1;
        memcpy(p, v[i], len);
        out[i] = p;
        p += len;
    }
    return out;
}

static int metrics__family_get_series(hub_metric_family_t *f, const char *const values[],
                                      hub_metric_series_t **out);

static int metrics__register(hub_metrics_t *reg, metrics__metric_type_t type, const char *name,
                             const char *help, const char *const label_names[], size_t n_labels,
                             const double *buckets, size_t n_buckets, hub_metric_family_t **out)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!reg || !metrics__name_ok(name, true) || !help || (n_labels && !label_names))
        return HUB_EINVAL;
    if (type == HUB_METRIC_COUNTER && !metrics__ends_with(name, "_total"))
        return HUB_EINVAL;
    for (size_t i = 0; i < n_labels; i++) {
        if (!metrics__name_ok(label_names[i], false) || strncmp(label_names[i], "__", 2) == 0 ||
            (type == HUB_METRIC_HISTOGRAM && strcmp(label_names[i], "le") == 0))
            return HUB_EINVAL;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(label_names[i], label_names[j]) == 0)
                return HUB_EINVAL;
        }
    }
    if (type == HUB_METRIC_HISTOGRAM) {
        if (!buckets || n_buckets == 0)
            return HUB_EINVAL;
        for (size_t i = 0; i < n_buckets; i++) {
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
                return HUB_EINVAL;
        }
    }
    for (size_t i = 0; i < reg->n_families; i++) {
        if (metrics__names_clash(name, type, reg->families[i]->name, reg->families[i]->type))
            return HUB_EEXIST;
    }
    if (HUB_VEC_RESERVE(reg->families, reg->n_families, reg->cap_families, 16) != 0)
        return HUB_ENOMEM;
    hub_metric_family_t *f = calloc(1, sizeof *f);
    if (!f)
        return HUB_ENOMEM;
    f->reg = reg;
    f->type = type;
    f->n_labels = n_labels;
    f->name = strdup(name);
    f->help = strdup(help);
    f->label_names = metrics__strv_dup(label_names, n_labels);
    if (type == HUB_METRIC_HISTOGRAM) {
        f->n_bounds = n_buckets;
        f->bounds = malloc(n_buckets * sizeof *f->bounds);
        if (f->bounds)
            memcpy(f->bounds, buckets, n_buckets * sizeof *f->bounds);
    }
    if (!f->name || !f->help || !f->label_names || (type == HUB_METRIC_HISTOGRAM && !f->bounds)) {
        metrics__family_free(f);
        return HUB_ENOMEM;
    }
    /* A family without labels has its one series from the start. */
    hub_metric_series_t *only;
    if (n_labels == 0 && metrics__family_get_series(f, NULL, &only) != 0) {
        metrics__family_free(f);
        return HUB_ENOMEM;
    }
    reg->families[reg->n_families++] = f;
    *out = f;
    return 0;
}

int hub_metrics_new(size_t max_series_per_family, hub_metrics_t **out)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (sodium_init() < 0)
        return HUB_ECRYPTO;
    hub_metrics_t *reg = calloc(1, sizeof *reg);
    if (!reg)
        return HUB_ENOMEM;
    reg->max_series = max_series_per_family ? max_series_per_family
                                            : HUB_METRICS_DEFAULT_MAX_SERIES;
    crypto_shorthash_keygen(reg->hash_key);
    static const char *const labels[] = {"family"};
    int rc = metrics__register(reg, HUB_METRIC_COUNTER, HUB_METRICS_DROPPED_NAME,
                               "Label combinations not recorded because their family had reached "
                               "its series limit.",
                               labels, 1, NULL, 0, &reg->dropped);
    if (rc) {
        hub_metrics_destroy(&reg);
        return rc;
    }
    *out = reg;
    return 0;
}

void hub_metrics_destroy(hub_metrics_t **reg_p)
{
    if (!reg_p || !*reg_p)
        return;
    hub_metrics_t *reg = *reg_p;
    for (size_t i = 0; i < reg->n_families; i++)
        metrics__family_free(reg->families[i]);
    free(reg->families);
    sodium_memzero(reg->hash_key, sizeof reg->hash_key);
    free(reg);
    *reg_p = NULL;
}

int hub_metrics_counter(hub_metrics_t *reg, const char *name, const char *help,
                        const char *const label_names[], size_t n_labels,
                        hub_metric_family_t **out)
{
    return metrics__register(reg, HUB_METRIC_COUNTER, name, help, label_names, n_labels, NULL, 0,
                             out);
}

int hub_metrics_gauge(hub_metrics_t *reg, const char *name, const char *help,
                      const char *const label_names[], size_t n_labels,
                      hub_metric_family_t **out)
{
    return metrics__register(reg, HUB_METRIC_GAUGE, name, help, label_names, n_labels, NULL, 0,
                             out);
}

int hub_metrics_histogram(hub_metrics_t *reg, const char *name, const char *help,
                          const char *const label_names[], size_t n_labels,
                          const double *buckets, size_t n_buckets, hub_metric_family_t **out)
{
    return metrics__register(reg, HUB_METRIC_HISTOGRAM, name, help, label_names, n_labels, buckets,
                             n_buckets, out);
}

int hub_metrics_register(hub_metrics_t *reg, const hub_metric_def_t *defs, size_t n)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const hub_metric_def_t *d = &defs[i];
        rc = metrics__register(reg, d->kind, d->name, d->help, d->label_names, d->n_labels,
                               d->kind == HUB_METRIC_HISTOGRAM ? d->buckets : NULL,
                               d->kind == HUB_METRIC_HISTOGRAM ? d->n_buckets : 0, d->out);
    }
    return rc;
}

/* ---- series lookup ---------------------------------------------------- */

static uint64_t metrics__hash_values(const hub_metrics_t *reg, const char *const values[], size_t n)
{
    uint64_t acc = 0x9e3779b97f4a7c15ull ^ n;
    for (size_t i = 0; i < n; i++) {
        unsigned char h[crypto_shorthash_BYTES];
        crypto_shorthash(h, (const unsigned char *)values[i], strlen(values[i]), reg->hash_key);
        uint64_t v;
        memcpy(&v, h, sizeof v);
        /* Position matters: {"a","b"} and {"b","a"} are different series. */
        acc = (acc ^ v) * 0x100000001b3ull + i;
    }
    return acc;
}

static bool metrics__values_equal(const hub_metric_series_t *s, const char *const values[],
                                  size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s->values[i], values[i]) != 0)
            return false;
    }
    return true;
}

static int metrics__slots_grow(hub_metric_family_t *f)
{
    size_t n_slots = f->n_slots ? f->n_slots * 2 : 16;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return HUB_ENOMEM;
    for (size_t i = 0; i < f->n_series; i++) {
        size_t j = (size_t)f->series[i]->hash & (n_slots - 1);
        while (slots[j])
            j = (j + 1) & (n_slots - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    free(f->slots);
    f->slots = slots;
    f->n_slots = n_slots;
    return 0;
}

static void metrics__count_dropped(hub_metric_family_t *f)
{
    hub_metrics_t *reg = f->reg;
    if (f == reg->dropped)
        return; /* the drop counter's own label set is bounded by the families */
    const char *const values[] = {f->name};
    if (reg->dropped->n_labels != sizeof values / sizeof values[0])
        return; /* made with the one label "family"; checked so values[] stays in bounds */
    hub_metric_series_t *s;
    if (metrics__family_get_series(reg->dropped, values, &s) == 0)
        s->value += 1;
}

static int metrics__family_get_series(hub_metric_family_t *f, const char *const values[],
                                      hub_metric_series_t **out)
{
    *out = NULL;
    if (f->n_labels && !values)
        return HUB_EINVAL;
    for (size_t i = 0; i < f->n_labels; i++) {
        if (!values[i])
            return HUB_EINVAL;
    }
    uint64_t hash = metrics__hash_values(f->reg, values, f->n_labels);
    size_t j = 0;
    if (f->n_slots) {
        for (j = (size_t)hash & (f->n_slots - 1); f->slots[j]; j = (j + 1) & (f->n_slots - 1)) {
            hub_metric_series_t *s = f->series[f->slots[j] - 1];
            if (s->hash == hash && metrics__values_equal(s, values, f->n_labels)) {
                *out = s;
                return 0;
            }
        }
    }
    if (f->n_series >= f->reg->max_series || f->n_series >= UINT32_MAX - 1) {
        metrics__count_dropped(f);
        return HUB_EFULL;
    }
    /* Keep the table at most half full so that probes stay short. */
    if ((f->n_series + 1) * 2 > f->n_slots) {
        if (metrics__slots_grow(f) != 0)
            return HUB_ENOMEM;
        for (j = (size_t)hash & (f->n_slots - 1); f->slots[j]; j = (j + 1) & (f->n_slots - 1)) {
        }
    }
    if (HUB_VEC_RESERVE(f->series, f->n_series, f->cap_series, 8) != 0)
        return HUB_ENOMEM;
    hub_metric_series_t *s = calloc(1, sizeof *s);
    if (!s)
        return HUB_ENOMEM;
    s->family = f;
    s->hash = hash;
    s->values = metrics__strv_dup(values, f->n_labels);
    if (f->type == HUB_METRIC_HISTOGRAM)
        s->bucket_counts = calloc(f->n_bounds + 1, sizeof *s->bucket_counts);
    if (!s->values || (f->type == HUB_METRIC_HISTOGRAM && !s->bucket_counts)) {
        metrics__series_free(s);
        return HUB_ENOMEM;
    }
    f->series[f->n_series++] = s;
    f->slots[j] = (uint32_t)f->n_series;
    *out = s;
    return 0;
}

int hub_metric_series(hub_metric_family_t *family, const char *const label_values[],
                      hub_metric_series_t **out)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!family)
        return HUB_EINVAL;
    return metrics__family_get_series(family, label_values, out);
}

/* ---- updates ---------------------------------------------------------- */

int hub_series_inc(hub_metric_series_t *s, double delta)
{
    if (!s || isnan(delta) || s->family->type == HUB_METRIC_HISTOGRAM ||
        (s->family->type == HUB_METRIC_COUNTER && delta < 0))
        return HUB_EINVAL;
    s->value += delta;
    return 0;
}

int hub_series_set(hub_metric_series_t *s, double value)
{
    if (!s || isnan(value) || s->family->type == HUB_METRIC_HISTOGRAM ||
        (s->family->type == HUB_METRIC_COUNTER && value < 0))
        return HUB_EINVAL;
    s->value = value;
    return 0;
}

int hub_series_observe(hub_metric_series_t *s, double value)
{
    return hub_series_observe_n(s, value, 1);
}

int hub_series_observe_n(hub_metric_series_t *s, double value, size_t n)
{
    if (!s || isnan(value) || s->family->type != HUB_METRIC_HISTOGRAM)
        return HUB_EINVAL;
    if (n == 0)
        return 0;
    const hub_metric_family_t *f = s->family;
    /* The first bound >= value (Prometheus buckets are "less or equal"). */
    size_t lo = 0, hi = f->n_bounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (value <= f->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    s->bucket_counts[lo] += n;
    s->count += n;
    s->sum += value * (double)n;
    return 0;
}

/* The series for label_values of a counter or gauge family that v (an
 * increment or a value) may apply to; HUB_EINVAL otherwise. */
static int metrics__scalar_series(hub_metric_family_t *family, const char *const label_values[],
                                  double v, hub_metric_series_t **s)
{
    if (!family || isnan(v) || family->type == HUB_METRIC_HISTOGRAM ||
        (family->type == HUB_METRIC_COUNTER && v < 0))
        return HUB_EINVAL;
    return metrics__family_get_series(family, label_values, s);
}

int hub_metric_inc(hub_metric_family_t *family, const char *const label_values[], double delta)
{
    hub_metric_series_t *s;
    int rc = metrics__scalar_series(family, label_values, delta, &s);
    return rc ? rc : hub_series_inc(s, delta);
}

int hub_metric_set(hub_metric_family_t *family, const char *const label_values[], double value)
{
    hub_metric_series_t *s;
    int rc = metrics__scalar_series(family, label_values, value, &s);
    return rc ? rc : hub_series_set(s, value);
}

int hub_metric_observe(hub_metric_family_t *family, const char *const label_values[],
                       double value)
{
    hub_metric_series_t *s;
    if (!family || isnan(value) || family->type != HUB_METRIC_HISTOGRAM)
        return HUB_EINVAL;
    int rc = metrics__family_get_series(family, label_values, &s);
    return rc ? rc : hub_series_observe(s, value);
}

/* ---- rendering -------------------------------------------------------- */

/* The exposition being written (hub_buf.h: the first failure sticks). */
typedef hub_buf_t metrics__out_t;

static void metrics__out_put(metrics__out_t *o, const char *p, size_t n)
{
    hub_buf_put(o, p, n);
}

static void metrics__out_str(metrics__out_t *o, const char *s)
{
    metrics__out_put(o, s, strlen(s));
}

/* Writes s with backslash and newline escaped, and double quotes too when
 * quotes is set (label values; help texts leave them). */
static void metrics__out_escaped(metrics__out_t *o, const char *s, bool quotes)
{
    const char *run = s;
    for (const char *p = s; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '\n' ? "\\n"
                          : (*p == '"' && quotes) ? "\\\""
                                                  : NULL;
        if (!esc)
            continue;
        metrics__out_put(o, run, (size_t)(p - run));
        metrics__out_str(o, esc);
        run = p + 1;
    }
    metrics__out_str(o, run);
}

/* The shortest decimal text that reads back as v; +Inf, -Inf, NaN. */
static void metrics__format_double(double v, char out[32])
{
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Whole numbers (most counters) read better without an exponent. */
    if (v == 0) {
        strcpy(out, "0"); /* not "-0" */
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, 32, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static void metrics__out_double(metrics__out_t *o, double v)
{
    char text[32];
    metrics__format_double(v, text);
    metrics__out_str(o, text);
}

static void metrics__out_u64(metrics__out_t *o, uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)v);
    metrics__out_str(o, text);
}

/* name{l1="v1",l2="v2"[,le="bound"]} — braces only when there are labels. */
static void metrics__out_sample_name(metrics__out_t *o, const hub_metric_family_t *f,
                                     const hub_metric_series_t *s, const char *suffix,
                                     const char *le)
{
    metrics__out_str(o, f->name);
    metrics__out_str(o, suffix);
    if (f->n_labels == 0 && !le)
        return;
    metrics__out_put(o, "{", 1);
    for (size_t i = 0; i < f->n_labels; i++) {
        if (i)
            metrics__out_put(o, ",", 1);
        metrics__out_str(o, f->label_names[i]);
        metrics__out_put(o, "=\"", 2);
        metrics__out_escaped(o, s->values[i], true);
        metrics__out_put(o, "\"", 1);
    }
    if (le) {
        if (f->n_labels)
            metrics__out_put(o, ",", 1);
        metrics__out_str(o, "le=\"");
        metrics__out_str(o, le);
        metrics__out_put(o, "\"", 1);
    }
    metrics__out_put(o, "}", 1);
}

static int metrics__cmp_family(const void *a, const void *b)
{
    const hub_metric_family_t *fa = *(const hub_metric_family_t *const *)a;
    const hub_metric_family_t *fb = *(const hub_metric_family_t *const *)b;
    return strcmp(fa->name, fb->name);
}

static int metrics__cmp_series(const void *a, const void *b)
{
    const hub_metric_series_t *sa = *(const hub_metric_series_t *const *)a;
    const hub_metric_series_t *sb = *(const hub_metric_series_t *const *)b;
    for (size_t i = 0; i < sa->family->n_labels; i++) {
        int c = strcmp(sa->values[i], sb->values[i]);
        if (c)
            return c;
    }
    return 0;
}

static void metrics__render_family(metrics__out_t *o, const hub_metric_family_t *f,
                                   hub_metric_series_t **sorted)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    metrics__out_str(o, "# HELP ");
    metrics__out_str(o, f->name);
    metrics__out_put(o, " ", 1);
    metrics__out_escaped(o, f->help, false);
    metrics__out_str(o, "\n# TYPE ");
    metrics__out_str(o, f->name);
    metrics__out_put(o, " ", 1);
    metrics__out_str(o, type_names[f->type]);
    metrics__out_put(o, "\n", 1);
    memcpy(sorted, f->series, f->n_series * sizeof *sorted);
    qsort(sorted, f->n_series, sizeof *sorted, metrics__cmp_series);
    for (size_t i = 0; i < f->n_series; i++) {
        const hub_metric_series_t *s = sorted[i];
        if (f->type != HUB_METRIC_HISTOGRAM) {
            metrics__out_sample_name(o, f, s, "", NULL);
            metrics__out_put(o, " ", 1);
            metrics__out_double(o, s->value);
            metrics__out_put(o, "\n", 1);
            continue;
        }
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= f->n_bounds; b++) {
            char le[32];
            if (b < f->n_bounds)
                metrics__format_double(f->bounds[b], le);
            else
                strcpy(le, "+Inf");
            cumulative += s->bucket_counts[b];
            metrics__out_sample_name(o, f, s, "_bucket", le);
            metrics__out_put(o, " ", 1);
            metrics__out_u64(o, cumulative);
            metrics__out_put(o, "\n", 1);
        }
        metrics__out_sample_name(o, f, s, "_sum", NULL);
        metrics__out_put(o, " ", 1);
        metrics__out_double(o, s->sum);
        metrics__out_put(o, "\n", 1);
        metrics__out_sample_name(o, f, s, "_count", NULL);
        metrics__out_put(o, " ", 1);
        metrics__out_u64(o, s->count);
        metrics__out_put(o, "\n", 1);
    }
}

int hub_metrics_render(const hub_metrics_t *reg, char **buf, size_t *len)
{
    if (!buf || !len)
        return HUB_EINVAL;
    *buf = NULL;
    *len = 0;
    if (!reg)
        return HUB_EINVAL;
    size_t max_series = 1;
    for (size_t i = 0; i < reg->n_families; i++) {
        if (reg->families[i]->n_series > max_series)
            max_series = reg->families[i]->n_series;
    }
    hub_metric_family_t **families = malloc((reg->n_families + 1) * sizeof *families);
    hub_metric_series_t **sorted = malloc(max_series * sizeof *sorted);
    metrics__out_t o = {0};
    if (!families || !sorted) {
        o.error = HUB_ENOMEM;
    } else {
        memcpy(families, reg->families, reg->n_families * sizeof *families);
        qsort(families, reg->n_families, sizeof *families, metrics__cmp_family);
        for (size_t i = 0; i < reg->n_families && !o.error; i++) {
            if (families[i]->n_series > 0)
                metrics__render_family(&o, families[i], sorted);
        }
        metrics__out_put(&o, "", 0); /* an empty registry still gives a string */
    }
    free(families);
    free(sorted);
    if (o.error) {
        hub_buf_free(&o);
        return HUB_ENOMEM;
    }
    *buf = o.data;
    *len = o.len;
    return 0;
}
