/* recorder — appends one line per handled message to a file, so that tests
 * (and operators trying the hub) can see exactly what a member received,
 * in which order, and how many times. Config:
 *   plugin.file = PATH               where lines go (required)
 *   plugin.services = record/v1,...  services to offer (default record/v1)
 *   plugin.subscribe = TOPIC[,...]   durable subscriptions, PUBLISHER-ID/SERVICE/VERSION;
 *                                    publications are recorded like events
 *   plugin.slow_payload = TEXT       a message with exactly this payload makes
 *                                    the handler write "BEGIN <id>" to
 *                                    PATH.begin, then take plugin.slow_ms
 *                                    (default 3000) before recording it: a
 *                                    window to kill the adapter mid-handling
 *   plugin.slow_after_record = yes   take that time after recording instead:
 *                                    a kill then stops the handler after
 *                                    its effect, before the settle
 * Line format: "<sender>\t<message_id>\t<payload as text>\n", written with
 * one write() at the end of the handler. Requests are answered "ok".
 * Every call of the handler is recorded, so that a test sees each time a
 * handler really ran: a message delivered "in doubt" (the adapter stopped
 * inside the handler, perhaps after its effect) gets a line ending
 * "\tin_doubt" (before the "\n"); a test counts the extra calls and checks
 * that each was in doubt, which a real receiver would resolve with
 * its own idempotency check.
 */
#include "adp_plugin_util.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    char path[4096];
    char begin_path[4096];
    char slow_payload[256];
    long slow_ms;
    int slow_after_record;
} recorder_t;

/* For plugin.slow_payload: says the handler runs, then takes its time. */
static void recorder_stall(recorder_t *r, const adp_message_t *msg)
{
    FILE *f = fopen(r->begin_path, "a");
    if (f) {
        fprintf(f, "BEGIN %s\n", msg->message_id);
        fclose(f);
    }
    struct timespec ts = {r->slow_ms / 1000, (r->slow_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int recorder_handle(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                           void *user)
{
    (void)client;
    recorder_t *r = user;
    bool slow = r->slow_payload[0] && msg->payload_len == strlen(r->slow_payload) &&
                !memcmp(msg->payload, r->slow_payload, msg->payload_len);
    if (slow && !r->slow_after_record)
        recorder_stall(r, msg);
    const char *mark = msg->in_doubt ? "\tin_doubt" : "";
    size_t len =
        strlen(msg->sender) + strlen(msg->message_id) + msg->payload_len + strlen(mark) + 3;
    char *line = malloc(len + 1);
    if (!line)
        return -2;
    int n = snprintf(line, len + 1, "%s\t%s\t%.*s%s\n", msg->sender, msg->message_id,
                     (int)msg->payload_len, (const char *)msg->payload, mark);
    ssize_t written = write(r->fd, line, (size_t)n);
    free(line);
    if (written != n)
        return -3;
    if (slow && r->slow_after_record)
        recorder_stall(r, msg);
    if (msg->kind == ADP_REQUEST)
        return adp_plugin_reply_copy(reply, "ok", 2, "text/plain");
    return 0;
}

static void recorder_destroy(void *state)
{
    recorder_t *r = state;
    if (r) {
        if (r->fd >= 0)
            close(r->fd);
        free(r);
    }
}

static int recorder_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    recorder_t *r = state;
    r->fd = -1;
    const char *file =
        adp_plugin_conf_required(host, "file", "where to record messages", err, err_size);
    if (!file)
        return HUB_EINVAL;
    uint64_t slow_ms = 0;
    int rc = adp_plugin_conf_u64(host, "slow_ms", 0, 600000, 3000, &slow_ms, err, err_size);
    if (rc != 0)
        return rc;
    r->slow_ms = (long)slow_ms;
    r->fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r->fd < 0)
        return adp_plugin_fail(err, err_size, "cannot open plugin.file %s", file);
    snprintf(r->path, sizeof r->path, "%s", file);
    snprintf(r->begin_path, sizeof r->begin_path, "%s.begin", file);
    const char *slow = host->config(host, "slow_payload");
    if (slow)
        snprintf(r->slow_payload, sizeof r->slow_payload, "%s", slow);
    const char *after = host->config(host, "slow_after_record");
    r->slow_after_record = after && !strcmp(after, "yes");
    rc = adp_plugin_offer_list(host, "services", "record/v1", recorder_handle, r, err, err_size);
    if (rc == 0)
        rc = adp_plugin_subscribe_list(host, "subscribe", recorder_handle, r, err, err_size);
    return rc;
}

ADP_PLUGIN_DEFINE_STATE("recorder", "records every handled message to a file", recorder_t,
                        recorder_start, NULL, recorder_destroy);
