/* tkscript — a scripted hub for the SDK's unit tests: a CURVE ROUTER with
 * the hub's key from a hubfix fixture (whose endpoint it sets, so that
 * hubfix's clients connect to it), which the test's own thread drives to
 * answer and send what a real hub cannot be made to (never ACK, deliver
 * copies a real hub would have de-duplicated).
 *
 * Header-only (static inline), for the tests that link the Check fixture.
 */
#ifndef TKSCRIPT_H
#define TKSCRIPT_H

#include "hub_keys.h"
#include "hub_wire.h"
#include "hubfix.h"
#include "tkwire.h"

#include <check.h>
#include <limits.h>
#include <stdlib.h>
#include <zmq.h>

typedef struct {
    void *ctx, *router;
} tks_hub_t;

/* Binds the ROUTER on an ephemeral port of 127.0.0.1 with f's hub key and
 * points f->endpoint at it. */
static inline void tks_open(tks_hub_t *h, hubfix_t *f)
{
    char hub_secret[PATH_MAX], err[256];
    hubfix_secret_path(f, HUBFIX_HUB_ID, hub_secret);
    hub_keypair_t hub;
    ck_assert_msg(hub_keyfile_read(hub_secret, &hub, err, sizeof err) == 0, "%s", err);
    h->ctx = zmq_ctx_new();
    h->router = zmq_socket(h->ctx, ZMQ_ROUTER);
    uint8_t sk[32];
    ck_assert_ptr_nonnull(zmq_z85_decode(sk, hub.curve_secret));
    int on = 1, linger = 0;
    zmq_setsockopt(h->router, ZMQ_CURVE_SERVER, &on, sizeof on);
    zmq_setsockopt(h->router, ZMQ_CURVE_SECRETKEY, sk, 32);
    zmq_setsockopt(h->router, ZMQ_LINGER, &linger, sizeof linger);
    hub_keypair_wipe(&hub);
    ck_assert_int_eq(zmq_bind(h->router, "tcp://127.0.0.1:*"), 0);
    size_t elen = sizeof f->endpoint;
    zmq_getsockopt(h->router, ZMQ_LAST_ENDPOINT, f->endpoint, &elen);
}

static inline void tks_close(tks_hub_t *h)
{
    zmq_close(h->router);
    zmq_ctx_term(h->ctx);
}

/* Receives the next frame of a peer: its routing id into rid (closed and
 * initialised again) and its body into body (initialised here). */
static inline void tks_recv(tks_hub_t *h, zmq_msg_t *rid, zmq_msg_t *body)
{
    zmq_msg_init(body);
    zmq_msg_close(rid);
    zmq_msg_init(rid);
    zmq_msg_recv(rid, h->router, 0);
    zmq_msg_recv(body, h->router, 0);
}

/* Sends frame to the peer whose routing id is rid. */
static inline void tks_send(tks_hub_t *h, zmq_msg_t *rid, hub_frame_t *frame)
{
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(hub_frame_encode(frame, &buf, &len), 0);
    zmq_send(h->router, zmq_msg_data(rid), zmq_msg_size(rid), ZMQ_SNDMORE);
    zmq_send(h->router, buf, len, 0);
    free(buf);
}

/* Answers a Hello from member with a Welcome (no signatures required,
 * heartbeats a minute apart). */
static inline void tks_welcome(tks_hub_t *h, zmq_msg_t *rid, const char *member)
{
    Lth__V1__Welcome w = LTH__V1__WELCOME__INIT;
    w.member_id = (char *)member;
    w.hub_version = "scripted";
    w.max_payload_bytes = 65536;
    w.heartbeat_ms = 60000;
    w.hub_id = HUBFIX_HUB_ID;
    hub_frame_t reply = tkw_welcome_frame(&w);
    tks_send(h, rid, &reply);
}

#endif
