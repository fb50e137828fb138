/* The SDK's flow control: at most 16,384 envelopes sent and not yet
 * answered by the hub; the rest wait in the outbox. (4,096 until the
 * sustained run found that a window that small stops a 30,000/s sender
 * whenever one of the hub's group commits takes longer than ~70 ms, a
 * single slow fdatasync of this machine's disk: BENCHMARKS.md, "Where the
 * sustained run's stalls come from".)
 * The SDK under test is real; its peer is a scripted hub in a thread of
 * this test (a CURVE ROUTER with the hub's key) that answers Hello with
 * Welcome, counts the envelopes it gets and ACKs only when told to, which
 * a real hub cannot be made to do. */
#include "adp.h"
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_wire.h"
#include "hubfix.h"
#include "testkit.h"
#include "tkscript.h"
#include "tkwire.h"

#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MEMBER "VN/GOV/HN-VP/TTHC"
#define WINDOW 16384
#define POSTED 20000

typedef struct {
    tks_hub_t hub;
    pthread_mutex_t lock;
    char (*ids)[37];     /* message ids in the order they arrived (distinct) */
    int received;        /* envelope items received, resends included */
    int distinct;
    int ack_upto;        /* ACK ids[0 .. ack_upto-1]; set by the test */
    int acked;           /* how many of them were ACKed */
    volatile bool stop;
} fake_hub_t;

static hubfix_t fix;

static void *fake_hub_run(void *arg)
{
    fake_hub_t *h = arg;
    zmq_msg_t rid;
    zmq_msg_init(&rid);
    bool have_rid = false;
    while (!h->stop) {
        zmq_pollitem_t item = {h->hub.router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 10) > 0) {
            zmq_msg_t body;
            tks_recv(&h->hub, &rid, &body);
            have_rid = true;
            hub_frame_t *frame = NULL;
            if (hub_frame_decode(zmq_msg_data(&body), zmq_msg_size(&body), &frame) == 0) {
                if (frame->body_case == LTH__V1__FRAME__BODY_HELLO) {
                    tks_welcome(&h->hub, &rid, MEMBER);
                } else if (frame->body_case == LTH__V1__FRAME__BODY_BATCH) {
                    pthread_mutex_lock(&h->lock);
                    for (size_t i = 0; i < frame->batch->n_envelopes; i++) {
                        hub_envelope_t *env = NULL;
                        h->received++;
                        if (hub_envelope_decode(frame->batch->envelopes[i].data,
                                                frame->batch->envelopes[i].len, &env) != 0)
                            continue;
                        /* The SDK's ids grow in posting order: a new one
                         * is past the last (a linear search only for one
                         * that is not, with 16,384 of them). */
                        bool seen = false;
                        if (h->distinct > 0 &&
                            strcmp(env->message_id, h->ids[h->distinct - 1]) <= 0)
                            for (int k = h->distinct - 1; k >= 0 && !seen; k--)
                                seen = !strcmp(h->ids[k], env->message_id);
                        if (!seen && h->distinct < POSTED)
                            snprintf(h->ids[h->distinct++], 37, "%s", env->message_id);
                        hub_envelope_free(&env);
                    }
                    pthread_mutex_unlock(&h->lock);
                }
            }
            hub_frame_free(&frame);
            zmq_msg_close(&body);
        }
        pthread_mutex_lock(&h->lock);
        int upto = h->ack_upto < h->distinct ? h->ack_upto : h->distinct;
        if (have_rid && upto > h->acked) {
            int n = upto - h->acked;
            Lth__V1__Ack *acks = calloc((size_t)n, sizeof *acks);
            Lth__V1__Ack **ptrs = calloc((size_t)n, sizeof *ptrs);
            for (int i = 0; i < n; i++) {
                lth__v1__ack__init(&acks[i]);
                acks[i].message_id = h->ids[h->acked + i];
                acks[i].hub_seq = (uint64_t)h->acked + (uint64_t)i + 1;
                ptrs[i] = &acks[i];
            }
            Lth__V1__Receipts r = tkw_receipts(ptrs, (size_t)n);
            hub_frame_t reply = tkw_receipts_frame(&r);
            tks_send(&h->hub, &rid, &reply);
            h->acked = upto;
            free(ptrs);
            free(acks);
        }
        pthread_mutex_unlock(&h->lock);
    }
    zmq_msg_close(&rid);
    return NULL;
}

static void counts(fake_hub_t *h, int *received, int *distinct)
{
    pthread_mutex_lock(&h->lock);
    *received = h->received;
    *distinct = h->distinct;
    pthread_mutex_unlock(&h->lock);
}

START_TEST(sdk_keeps_at_most_16384_unanswered)
{
    hubfix_init(&fix, NULL);
    hubfix_add_member(&fix, MEMBER, true);
    fake_hub_t h = {0};
    pthread_mutex_init(&h.lock, NULL);
    h.ids = calloc(POSTED, sizeof *h.ids);
    tks_open(&h.hub, &fix);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, fake_hub_run, &h), 0);

    adp_client_t *c = hubfix_connect(&fix, MEMBER);
    for (int i = 0; i < POSTED; i++) {
        char payload[16];
        int len = snprintf(payload, sizeof payload, "w %d", i);
        ck_assert_int_eq(adp_post_event(c, "VN/GOV/BCA/CSDLQGDC", "x/v1", "text/plain", payload,
                                        (size_t)len, 0, NULL),
                         0);
    }
    int received = 0, distinct = 0;
    /* Pumped without an answer until the window is out (at most 20 s on a
     * busy machine), then 1 s more, in which nothing else may go. */
    for (int w = 0; w < 800 && distinct < WINDOW; w++) {
        adp_run(c, 25);
        counts(&h, &received, &distinct);
    }
    for (int w = 0; w < 40; w++)
        adp_run(c, 25);
    counts(&h, &received, &distinct);
    printf("sdk window: %d sent of %d posted with no answer (%d items in all)\n", distinct,
           POSTED, received);
    ck_assert_int_eq(distinct, WINDOW);
    ck_assert_uint_eq(adp_outbox_size(c), POSTED);
    /* The SDK's own ids are time-ordered UUIDs (version 7): valid, of this
     * millisecond's time, and growing in posting order, so that the hub's
     * index of accepted ids takes them at its end. */
    uint64_t now_ms = hub_now_us() / 1000u;
    pthread_mutex_lock(&h.lock);
    for (int i = 0; i < distinct; i++) {
        ck_assert_msg(hub_uuid_valid(h.ids[i]), "id %s", h.ids[i]);
        ck_assert_msg(h.ids[i][14] == '7', "id %s is not version 7", h.ids[i]);
        ck_assert_msg(i == 0 || strcmp(h.ids[i - 1], h.ids[i]) < 0, "ids out of order: %s, %s",
                      h.ids[i - 1], h.ids[i]);
    }
    char ts[13];
    snprintf(ts, sizeof ts, "%.8s%.4s", h.ids[0], h.ids[0] + 9);
    uint64_t id_ms = strtoull(ts, NULL, 16);
    pthread_mutex_unlock(&h.lock);
    ck_assert_msg(id_ms <= now_ms && now_ms - id_ms < 60000, "id time %llu, now %llu",
                  (unsigned long long)id_ms, (unsigned long long)now_ms);
    /* 1,000 answered: exactly 1,000 more go out. */
    pthread_mutex_lock(&h.lock);
    h.ack_upto = 1000;
    pthread_mutex_unlock(&h.lock);
    for (int w = 0; w < 800 && distinct < WINDOW + 1000; w++) {
        adp_run(c, 25);
        counts(&h, &received, &distinct);
    }
    for (int w = 0; w < 40; w++)
        adp_run(c, 25);
    counts(&h, &received, &distinct);
    ck_assert_int_eq(distinct, WINDOW + 1000);
    ck_assert_uint_eq(adp_outbox_size(c), POSTED - 1000);
    adp_close(&c);
    h.stop = true;
    pthread_join(thread, NULL);
    tks_close(&h.hub);
    pthread_mutex_destroy(&h.lock);
    free(h.ids);
    hubfix_cleanup(&fix);
}
END_TEST

TK_MAIN("sdk_window", TK_CASE("window", NULL, NULL, 60, sdk_keeps_at_most_16384_unanswered))
