/* echo — answers every request with the payload it got (and counts events).
 * Used by tests, demos and connectivity checks. Config:
 *   plugin.services = echo/v1[,other/v1]   services to offer (default echo/v1)
 *   plugin.relay_to = MEMBER-ID            also offer relay/v1: ask MEMBER-ID's
 *                                          echo/v1 and answer with its reply
 *                                          (an adapter-to-adapter request)
 */
#include "adp_plugin_util.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const adp_plugin_host_t *host;
    unsigned long handled;
    char relay_to[256];
} echo_state_t;

static int echo_relay(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                      void *user)
{
    echo_state_t *st = user;
    if (msg->kind != ADP_REQUEST)
        return 0;
    adp_reply_t inner;
    int rc = adp_request(client, st->relay_to, "echo/v1", msg->content_type, msg->payload,
                         msg->payload_len, 0, 5000, &inner);
    if (rc != 0) {
        adp_plugin_log(st->host, ADP_LOG_WARN, "%s", adp_last_error(client));
        return rc;
    }
    *reply = inner;
    return 0;
}

static int echo_handle(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                       void *user)
{
    (void)client;
    echo_state_t *st = user;
    st->handled++;
    if (msg->kind != ADP_REQUEST)
        return 0;
    return adp_plugin_reply_copy(reply, msg->payload, msg->payload_len, msg->content_type);
}

static int echo_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    echo_state_t *st = state;
    st->host = host;
    int rc = adp_plugin_offer_list(host, "services", "echo/v1", echo_handle, st, err, err_size);
    if (rc != 0)
        return rc;
    const char *relay_to = host->config(host, "relay_to");
    if (relay_to) {
        snprintf(st->relay_to, sizeof st->relay_to, "%s", relay_to);
        host->offer(host, "relay/v1", echo_relay, st);
    }
    return 0;
}

ADP_PLUGIN_DEFINE_STATE("echo", "answers every request with its own payload", echo_state_t,
                        echo_start, NULL, free);
