/* The SDK's de-duplication window: a delivery whose sender and message id
 * were handled among the last 65,536 is settled without reaching the
 * handler again; one older than that is handled again. Keys of short
 * senders are kept in the window's own slab, those of long senders
 * ("SENDER/MESSAGE_ID" of 64 bytes or more) in an allocation of their own:
 * both kinds are checked, before and after they leave the window, and a
 * duplicate in the same frame as the first copy.
 * The SDK under test is real; its peer is a scripted hub in a thread of
 * this test (a CURVE ROUTER with the hub's key) that answers Hello with
 * Welcome and then sends the deliveries below, which a real hub, keeping
 * its own de-duplication window, would not send. */
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
#define SHORT_SENDER "VN/GOV/BCA/CSDLQGDC"
/* 44 bytes: its keys (81 bytes) do not fit the window's slab. */
#define LONG_SENDER "VN/GOV/BO-TAI-CHINH/TONG-CUC-THUE-HA-NOI/CUC"
#define WINDOW 65536
#define OTHERS WINDOW  /* distinct messages between the two rounds */
#define PER_FRAME 512

typedef struct {
    const char *sender;
    char id[HUB_UUID_LEN + 1];
} ts__msg_t;

typedef struct {
    tks_hub_t hub;
    ts__msg_t *script; /* delivered in this order, hub_seq 1, 2, ... */
    size_t n_script;
    volatile bool stop;
} ts__hub_t;

typedef struct {
    const char *a_id, *l_id;
    int a_calls, l_calls, calls;
} ts__count_t;

static hubfix_t fix;

/* Sends script[from, from + n) in one Deliveries frame. */
static void ts__deliver(ts__hub_t *h, zmq_msg_t *rid, size_t from, size_t n)
{
    Lth__V1__Envelope *envs = calloc(n, sizeof *envs);
    uint8_t **bytes = calloc(n, sizeof *bytes);
    Lth__V1__DeliveredEnvelope *items = calloc(n, sizeof *items);
    Lth__V1__DeliveredEnvelope **ptrs = calloc(n, sizeof *ptrs);
    ck_assert(envs && bytes && items && ptrs);
    for (size_t i = 0; i < n; i++) {
        const ts__msg_t *m = &h->script[from + i];
        lth__v1__envelope__init(&envs[i]);
        envs[i].message_id = (char *)m->id;
        envs[i].sender = (char *)m->sender;
        envs[i].receiver = MEMBER;
        envs[i].service = "x/v1";
        envs[i].content_type = "text/plain";
        envs[i].payload.data = (uint8_t *)"e";
        envs[i].payload.len = 1;
        envs[i].kind = LTH__V1__KIND__KIND_EVENT;
        envs[i].created_at_us = hub_now_us();
        size_t len = lth__v1__envelope__get_packed_size(&envs[i]);
        bytes[i] = malloc(len);
        ck_assert_ptr_nonnull(bytes[i]);
        lth__v1__envelope__pack(&envs[i], bytes[i]);
        lth__v1__delivered_envelope__init(&items[i]);
        items[i].hub_seq = from + i + 1;
        items[i].attempt = 1;
        items[i].envelope.data = bytes[i];
        items[i].envelope.len = len;
        ptrs[i] = &items[i];
    }
    Lth__V1__Deliveries d = LTH__V1__DELIVERIES__INIT;
    d.items = ptrs;
    d.n_items = n;
    hub_frame_t frame = tkw_deliveries_frame(&d);
    tks_send(&h->hub, rid, &frame);
    for (size_t i = 0; i < n; i++)
        free(bytes[i]);
    free(bytes);
    free(envs);
    free(items);
    free(ptrs);
}

static void *ts__hub_run(void *arg)
{
    ts__hub_t *h = arg;
    zmq_msg_t rid;
    zmq_msg_init(&rid);
    while (!h->stop) {
        zmq_pollitem_t item = {h->hub.router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 10) <= 0)
            continue;
        zmq_msg_t body;
        tks_recv(&h->hub, &rid, &body);
        hub_frame_t *frame = NULL;
        if (hub_frame_decode(zmq_msg_data(&body), zmq_msg_size(&body), &frame) == 0 &&
            frame->body_case == LTH__V1__FRAME__BODY_HELLO) {
            tks_welcome(&h->hub, &rid, MEMBER);
            for (size_t from = 0; from < h->n_script; from += PER_FRAME)
                ts__deliver(h, &rid, from,
                            h->n_script - from < PER_FRAME ? h->n_script - from : PER_FRAME);
        }
        hub_frame_free(&frame); /* settles and heartbeats: not needed here */
        zmq_msg_close(&body);
    }
    zmq_msg_close(&rid);
    return NULL;
}

static int ts__handler(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                       void *user)
{
    (void)client;
    (void)reply;
    ts__count_t *n = user;
    n->calls++;
    if (!strcmp(msg->message_id, n->a_id) && !strcmp(msg->sender, SHORT_SENDER))
        n->a_calls++;
    if (!strcmp(msg->message_id, n->l_id) && !strcmp(msg->sender, LONG_SENDER))
        n->l_calls++;
    return 0;
}

START_TEST(sdk_window_drops_duplicates_of_short_and_long_senders)
{
    hubfix_init(&fix, NULL);
    hubfix_add_member(&fix, MEMBER, true);

    /* A and L, each twice in a row (the second copy dropped), a third copy
     * of each among the others (dropped), OTHERS distinct messages that push
     * both out of the window, then A and L again (handled again). */
    ts__hub_t h = {0};
    h.script = calloc(OTHERS + 16, sizeof *h.script);
    ck_assert_ptr_nonnull(h.script);
    ts__msg_t a = {SHORT_SENDER, ""}, l = {LONG_SENDER, ""};
    hub_uuid_new(a.id);
    hub_uuid_new(l.id);
    size_t n = 0;
    h.script[n++] = a;
    h.script[n++] = a;
    h.script[n++] = l;
    h.script[n++] = l;
    size_t expected = 2;
    for (size_t i = 0; i < OTHERS; i++) {
        if (i == 1000) {
            h.script[n++] = a;
            h.script[n++] = l;
        }
        h.script[n].sender = SHORT_SENDER;
        hub_uuid_new(h.script[n++].id);
        expected++;
    }
    h.script[n++] = a;
    h.script[n++] = l;
    expected += 2;
    h.n_script = n;

    tks_open(&h.hub, &fix);

    ts__count_t count = {a.id, l.id, 0, 0, 0};
    hubfix_client_conf_t conf;
    hubfix_client_conf(&fix, MEMBER, &conf);
    char err[256];
    adp_client_t *c = NULL;
    ck_assert_msg(adp_new(&conf.cfg, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(adp_offer(c, "x/v1", ts__handler, &count), 0);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, ts__hub_run, &h), 0);
    ck_assert_msg(adp_start(c, err, sizeof err) == 0, "%s", err);
    /* All of it (at most 30 s on a busy machine), then 200 ms more in
     * which nothing else may reach the handler. */
    for (int w = 0; w < 1200 && (size_t)count.calls < expected; w++)
        adp_run(c, 25);
    adp_run(c, 200);
    printf("sdk seen window: %d handler calls for %zu deliveries (A %d, L %d)\n", count.calls,
           n, count.a_calls, count.l_calls);
    ck_assert_int_eq(count.a_calls, 2);
    ck_assert_int_eq(count.l_calls, 2);
    ck_assert_uint_eq((size_t)count.calls, expected);

    adp_close(&c);
    h.stop = true;
    pthread_join(thread, NULL);
    tks_close(&h.hub);
    free(h.script);
    hubfix_cleanup(&fix);
}
END_TEST

TK_MAIN("sdk_seen",
        TK_CASE("window", NULL, NULL, 90, sdk_window_drops_duplicates_of_short_and_long_senders))
