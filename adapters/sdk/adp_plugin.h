/* adp_plugin — the ABI between hub-adapter and adapter plugins.
 *
 * A plugin is a shared object that exports one symbol,
 *
 *     const adp_plugin_t lth_adapter_plugin;
 *
 * whose abi_version must equal ADP_PLUGIN_ABI_VERSION; hub-adapter refuses
 * any other version with a clear error. The runtime connects to the hub
 * with the member key from its configuration, calls init() with a host
 * table, offers the services init() declared, and then calls tick() about
 * every tick_ms while it runs the client. Plugins call the SDK (adp.h) for
 * messaging: hub-adapter exports those symbols, so a plugin links against
 * nothing of ours. Everything else comes through the host table; an ABI
 * change is a version bump, not a silent crash.
 *
 * Ownership: strings the host returns stay valid until destroy(). The
 * plugin owns its state and frees it in destroy().
 */
#ifndef ADP_PLUGIN_H
#define ADP_PLUGIN_H

#include "adp.h"

#define ADP_PLUGIN_ABI_VERSION 1u

typedef struct adp_plugin_host {
    uint32_t abi_version;
    /* The value of "plugin.KEY" from the adapter's config file, or NULL. */
    const char *(*config)(const struct adp_plugin_host *host, const char *key);
    /* Logs one line (never pass payloads or personal data). level: 0 debug .. 3 error. */
    void (*log)(const struct adp_plugin_host *host, int level, const char *msg);
    /* Offers a service with a handler (call from init()). */
    int (*offer)(const struct adp_plugin_host *host, const char *service, adp_handler_cb handler,
                 void *user);
    /* The SDK client, valid after init() returns (for tick() and handlers). */
    adp_client_t *(*client)(const struct adp_plugin_host *host);
    void *runtime; /* the runtime's own data */
} adp_plugin_host_t;

typedef struct {
    uint32_t abi_version; /* ADP_PLUGIN_ABI_VERSION */
    const char *name;
    const char *description;
    /* Reads configuration, offers services; returns 0 or a negative HUB_E*
     * code, with a sentence in err. */
    int (*init)(const adp_plugin_host_t *host, void **state, char *err, size_t err_size);
    /* Optional: periodic work (sending events, polling a system). */
    int (*tick)(void *state, adp_client_t *client);
    void (*destroy)(void *state);
} adp_plugin_t;

#define ADP_PLUGIN_SYMBOL "lth_adapter_plugin"

#endif
