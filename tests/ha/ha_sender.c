/* ha_sender — the sender of tests/ha/run.sh: posts COUNT durable events
 * "ha I" (I = 0 .. COUNT-1) to RECEIVER's record/v1, RATE a second, through
 * the SDK (outbox in STATE_DIR, failing over between the hub endpoints
 * given), and appends I to ACKED (one line, flushed) each time the hub ACKs
 * one. Runs until every event is ACKed, or TIMEOUT seconds; exit 0 when
 * all were. Prints nothing but its outcome and problems.
 *
 *   ha_sender ENDPOINTS HUB.pub MEMBER.secret STATE_DIR RECEIVER COUNT RATE ACKED TIMEOUT
 */
#include "adp.h"
#include "hub_clock.h"
#include "hub_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    FILE *acked;
    size_t n_acked;
} ha_state_t;

static void on_outcome(adp_client_t *c, const adp_outcome_t *o, void *user)
{
    (void)c;
    ha_state_t *st = user;
    if (!o->acked) {
        fprintf(stderr, "ha_sender: refused %s: %s\n", o->message_id, o->reason);
        return;
    }
    fprintf(st->acked, "%s\n", o->message_id);
    fflush(st->acked);
    st->n_acked++;
}

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: ha_sender ENDPOINTS HUB.pub MEMBER.secret STATE_DIR RECEIVER "
                        "COUNT RATE ACKED TIMEOUT\n");
        return 2;
    }
    int count = atoi(argv[6]), rate = atoi(argv[7]), timeout_s = atoi(argv[9]);
    ha_state_t st = {fopen(argv[8], "a"), 0};
    if (!st.acked || count <= 0 || rate <= 0) {
        fprintf(stderr, "ha_sender: bad arguments or cannot open %s\n", argv[8]);
        return 2;
    }
    adp_config_t cfg = {argv[1], argv[2], argv[3], 30000, "ha_sender", argv[4]};
    adp_client_t *c = NULL;
    char err[512];
    int rc = adp_connect(&cfg, &c, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "ha_sender: %s\n", err);
        return 1;
    }
    adp_set_outcome_handler(c, on_outcome, &st);
    uint64_t start = hub_monotonic_us();
    uint64_t deadline = start + (uint64_t)timeout_s * 1000000u;
    int posted = 0;
    /* The message id carries the number: the run compares ACKed ids with
     * what the receiver recorded. */
    while (hub_monotonic_us() < deadline) {
        uint64_t due = (uint64_t)((hub_monotonic_us() - start) * (uint64_t)rate / 1000000u);
        while (posted < count && (uint64_t)posted < due) {
            char payload[32], id[37];
            int len = snprintf(payload, sizeof payload, "ha %d", posted);
            snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", posted);
            rc = adp_post_event_as(c, id, 0, argv[5], "record/v1", "text/plain", payload,
                                   (size_t)len, 0);
            if (rc != 0) {
                fprintf(stderr, "ha_sender: posting %d: %s\n", posted, adp_last_error(c));
                break;
            }
            posted++;
        }
        adp_run(c, 20);
        if (posted == count && adp_outbox_size(c) == 0)
            break;
    }
    size_t left = adp_outbox_size(c);
    printf("ha_sender: posted %d, acked %zu, unacked %zu, resent after UNAVAILABLE %zu, "
           "failovers %llu\n",
           posted, st.n_acked, left, adp_resent_count(c), (unsigned long long)adp_failovers(c));
    adp_close(&c);
    fclose(st.acked);
    return posted == count && left == 0 ? 0 : 1;
}
