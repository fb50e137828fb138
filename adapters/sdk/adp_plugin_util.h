/* adp_plugin_util — what every adapter plugin would otherwise write again:
 * formatted logging through the host, an error sentence into err, a reply
 * handed over, the
 * plugin.* settings (required, whole numbers, member ids, lists of
 * services), and the plugin's definition itself (ADP_PLUGIN_DEFINE, or
 * ADP_PLUGIN_DEFINE_STATE with the init() every plugin would write).
 *
 * Header-only, every function static: each plugin is its own shared object
 * and links nothing of ours (adp_plugin.h); the hub_common functions called
 * here (hub_conf_uint, hub_member_id_problem) come from hub-adapter, which
 * exports them. For the plugins in this tree: it is not installed with the
 * SDK, whose headers do not include hub_conf.h or hub_id.h.
 *
 * Errors: the functions that can fail return 0 or a negative HUB_E* code
 * and write a sentence naming the setting into err (err_size bytes).
 * Strings returned come from the host and stay valid until destroy().
 */
#ifndef ADP_PLUGIN_UTIL_H
#define ADP_PLUGIN_UTIL_H

#include "adp_plugin.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_id.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The host's log levels (adp_plugin_host_t.log). */
enum { ADP_LOG_DEBUG = 0, ADP_LOG_INFO = 1, ADP_LOG_WARN = 2, ADP_LOG_ERROR = 3 };

/* The plugin's one exported symbol (adp_plugin.h); tick may be NULL. */
#define ADP_PLUGIN_DEFINE(name_, description_, init_, tick_, destroy_)                             \
    const adp_plugin_t lth_adapter_plugin = {                                                      \
        .abi_version = ADP_PLUGIN_ABI_VERSION,                                                     \
        .name = (name_),                                                                           \
        .description = (description_),                                                             \
        .init = (init_),                                                                           \
        .tick = (tick_),                                                                           \
        .destroy = (destroy_),                                                                     \
    }

/* The init() that ADP_PLUGIN_DEFINE_STATE gives a plugin: a zeroed state of
 * state_size bytes, filled by start (which reads the settings and offers
 * the services) and handed to the host. When start fails, err says why
 * (hub_strerror(rc) if start wrote nothing), destroy frees the half-built
 * state (so it must accept one) and the code is returned. */
static inline int adp_plugin_init_state(const adp_plugin_host_t *host, size_t state_size,
                                        int (*start)(void *state, const adp_plugin_host_t *host,
                                                     char *err, size_t err_size),
                                        void (*destroy)(void *state), void **state, char *err,
                                        size_t err_size)
{
    void *self = calloc(1, state_size);
    if (!self) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    int rc = start(self, host, err, err_size);
    if (rc != 0) {
        if (!err[0])
            snprintf(err, err_size, "%s", hub_strerror(rc));
        destroy(self);
        return rc;
    }
    *state = self;
    return 0;
}

/* The plugin's definition with that init(): start_(void *state, host, err,
 * err_size) fills a zeroed type_; tick_ may be NULL; destroy_ frees. */
#define ADP_PLUGIN_DEFINE_STATE(name_, description_, type_, start_, tick_, destroy_)               \
    static int adp__plugin_init(const adp_plugin_host_t *host, void **state, char *err,            \
                                size_t err_size)                                                   \
    {                                                                                              \
        return adp_plugin_init_state(host, sizeof(type_), start_, destroy_, state, err, err_size); \
    }                                                                                              \
    ADP_PLUGIN_DEFINE(name_, description_, adp__plugin_init, tick_, destroy_)

/* Logs one line, formatted, through the host (at most 1023 bytes; never
 * payloads or personal data). */
static void adp_plugin_log(const adp_plugin_host_t *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), unused));
static void adp_plugin_log(const adp_plugin_host_t *host, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    host->log(host, level, line);
}

/* Writes the sentence into err and returns HUB_EINVAL: a setting is wrong. */
static int adp_plugin_fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), unused));
static int adp_plugin_fail(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return HUB_EINVAL;
}

/* Logs a plugin's periodic summary line at INFO when it differs from the
 * last one logged (kept in last, of last_size bytes); "" logs nothing. */
static inline void adp_plugin_log_changed(const adp_plugin_host_t *host, char *last,
                                          size_t last_size, const char *line)
{
    if (!line[0] || !strcmp(line, last))
        return;
    adp_plugin_log(host, ADP_LOG_INFO, "%s", line);
    snprintf(last, last_size, "%s", line);
}

/* Hands body (len bytes from malloc; the SDK frees it after sending) to
 * reply as content_type: how a handler answers. */
static inline void adp_plugin_reply(adp_reply_t *reply, void *body, size_t len,
                                    const char *content_type)
{
    reply->payload = body;
    reply->payload_len = len;
    snprintf(reply->content_type, sizeof reply->content_type, "%s", content_type);
}

/* The same with a copy of len bytes of data: 0, or HUB_ENOMEM with reply
 * untouched. */
static inline int adp_plugin_reply_copy(adp_reply_t *reply, const void *data, size_t len,
                                        const char *content_type)
{
    void *body = malloc(len ? len : 1);
    if (!body)
        return HUB_ENOMEM;
    if (len)
        memcpy(body, data, len);
    adp_plugin_reply(reply, body, len, content_type);
    return 0;
}

/* plugin.KEY, which must be set and not empty; NULL with the error "plugin.KEY
 * is required: WHAT" otherwise. */
static inline const char *adp_plugin_conf_required(const adp_plugin_host_t *host, const char *key,
                                                   const char *what, char *err, size_t err_size)
{
    const char *text = host->config(host, key);
    if (!text || !*text) {
        snprintf(err, err_size, "plugin.%s is required: %s", key, what);
        return NULL;
    }
    return text;
}

/* plugin.KEY as a whole number in [min, max], or dflt when absent. */
static inline int adp_plugin_conf_u64(const adp_plugin_host_t *host, const char *key, uint64_t min,
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
static inline int adp_plugin_conf_member(const adp_plugin_host_t *host, const char *key,
                                         const char *dflt, int none_allowed, char *out,
                                         size_t out_size, char *err, size_t err_size)
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

/* Offers handler (with user) for each SERVICE/VERSION in plugin.KEY, a list
 * separated by commas or spaces, or in dflt when plugin.KEY is absent. On a
 * name the hub would refuse: HUB_EINVAL and "plugin.KEY: 'NAME' is not
 * SERVICE/VERSION" (the services before it stay offered). */
static inline int adp_plugin_offer_list(const adp_plugin_host_t *host, const char *key,
                                        const char *dflt, adp_handler_cb handler, void *user,
                                        char *err, size_t err_size)
{
    const char *services = host->config(host, key);
    char list[1024];
    snprintf(list, sizeof list, "%s", services ? services : dflt);
    char *save = NULL;
    for (char *s = strtok_r(list, ", ", &save); s; s = strtok_r(NULL, ", ", &save))
        if (host->offer(host, s, handler, user) != 0)
            return adp_plugin_fail(err, err_size, "plugin.%s: '%s' is not SERVICE/VERSION", key, s);
    return 0;
}

/* Subscribes handler (with user) durably to each PUBLISHER-ID/SERVICE/VERSION
 * in plugin.KEY (commas or spaces); nothing when plugin.KEY is absent. On a
 * bad topic: HUB_EINVAL and "plugin.KEY: 'TOPIC' is not
 * PUBLISHER-ID/SERVICE/VERSION". */
static inline int adp_plugin_subscribe_list(const adp_plugin_host_t *host, const char *key,
                                            adp_handler_cb handler, void *user, char *err,
                                            size_t err_size)
{
    const char *topics = host->config(host, key);
    if (!topics)
        return 0;
    char list[1024];
    snprintf(list, sizeof list, "%s", topics);
    char *save = NULL;
    for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        if (adp_subscribe(host->client(host), t, handler, user) != 0)
            return adp_plugin_fail(err, err_size,
                                   "plugin.%s: '%s' is not PUBLISHER-ID/SERVICE/VERSION", key, t);
    return 0;
}

#endif
