/* What the dossier-flow plugins (procedure, sector, portal, report) share:
 * formatted logging through the host, plugin.* settings, the clock.
 * Header-only: each plugin is its own shared object. */
#ifndef DOSSIER_PLUGIN_H
#define DOSSIER_PLUGIN_H

#include "adp_plugin.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_id.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { DP_DEBUG = 0, DP_INFO = 1, DP_WARN = 2, DP_ERROR = 3 };

static void dp_log(const adp_plugin_host_t *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), unused));
static void dp_log(const adp_plugin_host_t *host, int level, const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    host->log(host, level, line);
}

/* Logs a plugin's periodic summary line at INFO when it differs from the
 * last one logged (kept in last, of last_size bytes); "" logs nothing. */
static inline void dp_log_changed(const adp_plugin_host_t *host, char *last, size_t last_size,
                                  const char *line)
{
    if (!line[0] || !strcmp(line, last))
        return;
    dp_log(host, DP_INFO, "%s", line);
    snprintf(last, last_size, "%s", line);
}

/* plugin.KEY, which must be set and not empty; NULL with the error "plugin.KEY
 * is required: WHAT" otherwise. */
static inline const char *dp_conf_required(const adp_plugin_host_t *host, const char *key,
                                           const char *what, char *err, size_t err_size)
{
    const char *text = host->config(host, key);
    if (!text || !*text) {
        snprintf(err, err_size, "plugin.%s is required: %s", key, what);
        return NULL;
    }
    return text;
}

/* Wall-clock µs since the epoch (the time of status changes). */
static inline uint64_t dp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* plugin.KEY as a whole number in [min, max], or dflt when absent. */
static inline int dp_conf_u64(const adp_plugin_host_t *host, const char *key, uint64_t min,
                              uint64_t max, uint64_t dflt, uint64_t *out, char *err,
                              size_t err_size)
{
    const char *text = host->config(host, key);
    if (!text) {
        *out = dflt;
        return 0;
    }
    char name[128];
    snprintf(name, sizeof name, "plugin.%s", key);
    unsigned long long v = 0;
    int rc = hub_conf_uint(name, text, min, max, &v, err, err_size);
    *out = v;
    return rc;
}

/* plugin.KEY as a member id, or dflt when absent; "none" (when allowed)
 * gives "". */
static inline int dp_conf_member(const adp_plugin_host_t *host, const char *key, const char *dflt,
                                 int none_allowed, char *out, size_t out_size, char *err,
                                 size_t err_size)
{
    const char *text = host->config(host, key);
    if (!text)
        text = dflt;
    if (none_allowed && !strcmp(text, "none")) {
        out[0] = '\0';
        return 0;
    }
    const char *problem = hub_member_id_problem(text);
    if (problem || strlen(text) >= out_size) {
        snprintf(err, err_size, "plugin.%s: '%s' is not a member id: %s%s", key, text,
                 problem ? problem : "too long", none_allowed ? " (or write none)" : "");
        return HUB_EINVAL;
    }
    snprintf(out, out_size, "%s", text);
    return 0;
}

#endif
