/* echo — answers every request with the payload it got (and logs events).
 * Used by tests, demos and connectivity checks. Config:
 *   plugin.services = echo/v1[,other/v1]   services to offer (default echo/v1)
 */
#include "adp_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const adp_plugin_host_t *host;
    unsigned long handled;
} echo_state_t;

static int echo_handle(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                       void *user)
{
    (void)client;
    echo_state_t *st = user;
    st->handled++;
    if (msg->kind != ADP_REQUEST)
        return 0;
    reply->payload = malloc(msg->payload_len ? msg->payload_len : 1);
    if (!reply->payload)
        return -2;
    memcpy(reply->payload, msg->payload, msg->payload_len);
    reply->payload_len = msg->payload_len;
    snprintf(reply->content_type, sizeof reply->content_type, "%s", msg->content_type);
    return 0;
}

static int echo_init(const adp_plugin_host_t *host, void **state, char *err, size_t err_size)
{
    echo_state_t *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, err_size, "out of memory");
        return -2;
    }
    st->host = host;
    const char *services = host->config(host, "services");
    char list[1024];
    snprintf(list, sizeof list, "%s", services ? services : "echo/v1");
    char *save = NULL;
    for (char *s = strtok_r(list, ", ", &save); s; s = strtok_r(NULL, ", ", &save)) {
        if (host->offer(host, s, echo_handle, st) != 0) {
            snprintf(err, err_size, "plugin.services: '%s' is not SERVICE/VERSION", s);
            free(st);
            return -1;
        }
    }
    *state = st;
    return 0;
}

static void echo_destroy(void *state) { free(state); }

const adp_plugin_t lth_adapter_plugin = {
    .abi_version = ADP_PLUGIN_ABI_VERSION,
    .name = "echo",
    .description = "answers every request with its own payload",
    .init = echo_init,
    .tick = NULL,
    .destroy = echo_destroy,
};
