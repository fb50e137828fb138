/* hub-adapter — runs one adapter plugin as a member of the hub.
 *
 * It reads a config file (see deploy/adapters/), loads the plugin
 * named there, checks its ABI version, connects to the hub with the
 * member's key and serves until SIGTERM/SIGINT. If the hub is not reachable
 * it keeps trying; if the hub refuses the key it exits with status 3 and
 * says so, since no retry can fix that without the operator.
 */
#include "adp.h"
#include "adp_plugin.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_log.h"
#include "hub_wire.h"

#include <dlfcn.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RT_MAX_PLUGIN_KEYS 64

typedef struct {
    hub_conf_member_t member; /* hub_endpoint, hub_key_file, member_key_file */
    char plugin[PATH_MAX];
    char state_dir[PATH_MAX];
    unsigned long long tick_ms;
    char *plugin_keys[RT_MAX_PLUGIN_KEYS];
    char *plugin_values[RT_MAX_PLUGIN_KEYS];
    size_t n_plugin;
} rt_config_t;

typedef struct {
    char service[256];
    adp_handler_cb handler;
    void *user;
} rt_offer_t;

typedef struct {
    rt_config_t *cfg;
    rt_offer_t offers[64];
    size_t n_offers;
    adp_client_t *client;
    adp_plugin_host_t host;
} rt_t;

static volatile sig_atomic_t rt_stop;

static void rt_on_signal(int signum)
{
    (void)signum;
    rt_stop = 1;
}

static int rt_path(const rt_config_t *cfg, const char *key, const char *value, char *dst,
                   size_t size, char *err, size_t err_size)
{
    return hub_conf_path(cfg->member.base_dir, key, value, dst, size, err, err_size);
}

static int rt_entry(const char *key, const char *value, void *user, char *err, size_t err_size)
{
    rt_config_t *cfg = user;
    int rc = hub_conf_member_entry(&cfg->member, key, value, err, err_size);
    if (rc != HUB_ENOTFOUND)
        return rc;
    if (!strcmp(key, "plugin")) {
        /* A bare name means a plugin next to the others: lth-NAME.so in the
         * plugin directory of this build or installation. */
        if (!strchr(value, '/') && !strstr(value, ".so")) {
            const char *dir = getenv("HUB_PLUGIN_DIR");
            char self_dir[PATH_MAX] = ".";
            if (!dir) {
                ssize_t n = readlink("/proc/self/exe", self_dir, sizeof self_dir - 1);
                if (n > 0) {
                    self_dir[n] = '\0';
                    char *slash = strrchr(self_dir, '/');
                    if (slash)
                        *slash = '\0';
                }
                strncat(self_dir, "/../lib/plugins", sizeof self_dir - strlen(self_dir) - 1);
                dir = self_dir;
#ifdef HUB_PLUGIN_INSTALL_DIR
                /* Installed (the package): plugins live under the
                 * architecture's library directory, not next to bin/. */
                struct stat pst;
                if (stat(self_dir, &pst) != 0)
                    dir = HUB_PLUGIN_INSTALL_DIR;
#endif
            }
            if ((size_t)snprintf(cfg->plugin, sizeof cfg->plugin, "%s/lth-%s.so", dir, value) >=
                sizeof cfg->plugin) {
                snprintf(err, err_size, "plugin: path too long");
                return HUB_EINVAL;
            }
            return 0;
        }
        return rt_path(cfg, key, value, cfg->plugin, sizeof cfg->plugin, err, err_size);
    }
    if (!strcmp(key, "state_dir"))
        return rt_path(cfg, key, value, cfg->state_dir, sizeof cfg->state_dir, err, err_size);
    if (!strcmp(key, "tick_ms"))
        return hub_conf_uint(key, value, 10, 3600000, &cfg->tick_ms, err, err_size);
    if (!strcmp(key, "log_level")) {
        hub_log_level_t level;
        if (hub_log_parse_level(value, &level) != 0) {
            snprintf(err, err_size, "log_level must be debug, info, warn or error");
            return HUB_EINVAL;
        }
        hub_log_set_level(level);
        return 0;
    }
    if (!strncmp(key, "plugin.", 7) && key[7]) {
        if (cfg->n_plugin == RT_MAX_PLUGIN_KEYS) {
            snprintf(err, err_size, "too many plugin.* settings (at most %d)", RT_MAX_PLUGIN_KEYS);
            return HUB_EINVAL;
        }
        cfg->plugin_keys[cfg->n_plugin] = strdup(key + 7);
        cfg->plugin_values[cfg->n_plugin] = strdup(value);
        cfg->n_plugin++;
        return 0;
    }
    snprintf(err, err_size,
             "unknown setting '%s' (settings for the plugin start with 'plugin.')", key);
    return HUB_EINVAL;
}

static const char *rt_host_config(const adp_plugin_host_t *host, const char *key)
{
    const rt_t *rt = host->runtime;
    for (size_t i = 0; i < rt->cfg->n_plugin; i++)
        if (!strcmp(rt->cfg->plugin_keys[i], key))
            return rt->cfg->plugin_values[i];
    return NULL;
}

static void rt_host_log(const adp_plugin_host_t *host, int level, const char *msg)
{
    (void)host;
    hub_log((hub_log_level_t)(level < 0 ? 0 : level > 3 ? 3 : level), "plugin", msg, NULL);
}

static int rt_host_offer(const adp_plugin_host_t *host, const char *service,
                         adp_handler_cb handler, void *user)
{
    rt_t *rt = host->runtime;
    if (!service || !hub_service_valid(service) || !handler || rt->n_offers == 64)
        return HUB_EINVAL;
    rt_offer_t *o = &rt->offers[rt->n_offers++];
    snprintf(o->service, sizeof o->service, "%s", service);
    o->handler = handler;
    o->user = user;
    if (rt->client)
        return adp_offer(rt->client, service, handler, user);
    return 0;
}

static adp_client_t *rt_host_client(const adp_plugin_host_t *host)
{
    return ((const rt_t *)host->runtime)->client;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: hub-adapter --config FILE\n"
                 "       hub-adapter --help | --version\n\n"
                 "Runs one adapter plugin as a member of the Liên Thông Hub.\n"
                 "See adapters/README.md for the config file and the plugin ABI.\n");
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("hub-adapter %s (plugin ABI %u)\n", HUB_VERSION, ADP_PLUGIN_ABI_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else {
            fprintf(stderr, "hub-adapter: unknown or incomplete argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!config_path) {
        usage(stderr);
        return 2;
    }
    static rt_config_t cfg;
    cfg.tick_ms = 1000;
    hub_conf_member_init(&cfg.member, config_path);
    char err[HUB_ERRMSG_MAX];
    int status = 1;
    void *dl = NULL;
    const adp_plugin_t *plugin = NULL;
    void *state = NULL;
    static rt_t rt;
    rt.cfg = &cfg;
    if (hub_conf_parse_file(config_path, rt_entry, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "hub-adapter: bad configuration: %s\n", err);
        goto out;
    }
    const char *missing = !cfg.member.hub_endpoint[0]      ? "hub_endpoint (or hub_endpoints)"
                          : !cfg.member.hub_key_file[0]    ? "hub_key_file"
                          : !cfg.member.member_key_file[0] ? "member_key_file"
                          : !cfg.plugin[0]                 ? "plugin"
                                                           : NULL;
    if (missing) {
        fprintf(stderr, "hub-adapter: bad configuration: %s: '%s' is required\n", config_path,
                missing);
        goto out;
    }
    dl = dlopen(cfg.plugin, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "hub-adapter: cannot load plugin %s: %s\n", cfg.plugin, dlerror());
        goto out;
    }
    plugin = dlsym(dl, ADP_PLUGIN_SYMBOL);
    if (!plugin) {
        fprintf(stderr, "hub-adapter: %s is not an adapter plugin: it does not export '%s'\n",
                cfg.plugin, ADP_PLUGIN_SYMBOL);
        goto out;
    }
    if (plugin->abi_version != ADP_PLUGIN_ABI_VERSION || !plugin->init) {
        fprintf(stderr,
                "hub-adapter: plugin %s has ABI version %u but this runtime needs %u; rebuild "
                "the plugin against this SDK\n",
                cfg.plugin, plugin->abi_version, ADP_PLUGIN_ABI_VERSION);
        plugin = NULL;
        goto out;
    }
    rt.host = (adp_plugin_host_t){ADP_PLUGIN_ABI_VERSION, rt_host_config, rt_host_log,
                                  rt_host_offer, rt_host_client, &rt};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = rt_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    adp_config_t acfg = {cfg.member.hub_endpoint,    cfg.member.hub_key_file,
                         cfg.member.member_key_file, 3000,
                         "hub-adapter " HUB_VERSION, cfg.state_dir[0] ? cfg.state_dir : NULL};
    /* The client exists before the plugin starts, so that every service is
     * offered in the first Hello and no delivery finds a handler missing. */
    if (adp_new(&acfg, &rt.client, err, sizeof err) != 0) {
        fprintf(stderr, "hub-adapter: %s\n", err);
        goto out;
    }
    err[0] = '\0';
    if (plugin->init(&rt.host, &state, err, sizeof err) != 0) {
        fprintf(stderr, "hub-adapter: plugin %s failed to start: %s\n", plugin->name,
                err[0] ? err : "no reason given");
        plugin = NULL;
        goto out;
    }
    unsigned waited_ms = 0;
    for (;;) {
        int rc = adp_start(rt.client, err, sizeof err);
        if (rc == 0 || rt_stop)
            break;
        if (rc == HUB_EREFUSED) {
            fprintf(stderr, "hub-adapter: %s\n", err);
            status = 3;
            goto out;
        }
        waited_ms += 3000;
        HUB_WARN("adapter", "hub not reachable yet; still trying", "error=\"%s\" waited_ms=%u",
                 err, waited_ms);
    }
    if (rt.client)
        HUB_INFO("adapter", "serving", "member=%s plugin=%s services=%zu",
                 adp_member_id(rt.client), plugin->name, rt.n_offers);
    uint64_t next_tick = 0;
    while (!rt_stop && rt.client) {
        int rc = adp_run(rt.client, 100);
        if (rc == HUB_EREFUSED) {
            HUB_ERROR("adapter", "the hub no longer accepts this member's key", "error=\"%s\"",
                      adp_last_error(rt.client));
        }
        uint64_t now = hub_monotonic_us();
        if (plugin->tick && now >= next_tick) {
            plugin->tick(state, rt.client);
            next_tick = now + cfg.tick_ms * 1000u;
        }
    }
    status = 0;
    HUB_INFO("adapter", "stopping", NULL);
out:
    if (plugin && plugin->destroy)
        plugin->destroy(state);
    adp_close(&rt.client);
    if (dl)
        dlclose(dl);
    for (size_t i = 0; i < cfg.n_plugin; i++) {
        free(cfg.plugin_keys[i]);
        free(cfg.plugin_values[i]);
    }
    return status;
}
