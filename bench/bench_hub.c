/* The hub's cases: the real hubd, driven over CURVE by raw protocol peers
 * (proto/README.md) or by the adapter SDK (adapters/sdk/adp.h). */
#include "bench_hub.h"

#include "adp.h"
#include "hub_sign.h"

#include <ctype.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* Envelopes per Batch frame a raw client sends: at most what the SDK sends
 * (ADP__MAX_BATCH in adp.c), so that the raw rows batch as deployed
 * clients do. A window of 1000 then leaves in two frames or more, which
 * the hub admits and delivers while the next is still on its way. */
#define HUB__MAX_BATCH 512

/* ------------------------------------------------------------------------ */
/* Keys, configuration, hubd                                                 */

static void hub__slug(const char *member_id, char *out)
{
    if (hub_member_id_to_slug(member_id, out, 256) != 0)
        snprintf(out, 256, "invalid");
}

void bench_hubenv_secret_path(const bench_hubenv_t *env, const char *member_id, char *out)
{
    char s[256];
    hub__slug(member_id, s);
    snprintf(out, PATH_MAX, "%s/secrets/%s.secret", env->dir, s);
}

void bench_hubenv_public_path(const bench_hubenv_t *env, const char *member_id, char *out)
{
    char s[256];
    hub__slug(member_id, s);
    snprintf(out, PATH_MAX, "%s/secrets/%s.pub", env->dir, s);
}

static int hub__member_keys(bench_hubenv_t *env, const char *member_id, bool known, char *err,
                            size_t err_size)
{
    hub_keypair_t kp;
    char secrets[PATH_MAX + 16], pub[PATH_MAX];
    snprintf(secrets, sizeof secrets, "%s/secrets", env->dir);
    if (hub_keypair_generate(member_id, &kp) != 0) {
        snprintf(err, err_size, "cannot generate keys for %s", member_id);
        return -1;
    }
    int rc = hub_keypair_write(&kp, secrets, pub, NULL, err, err_size);
    hub_keypair_wipe(&kp);
    if (rc != 0)
        return -1;
    if (known) {
        char s[256], dst[PATH_MAX + 300];
        hub__slug(member_id, s);
        snprintf(dst, sizeof dst, "%s/keys/%s.pub", env->dir, s);
        if (link(pub, dst) != 0) {
            char *text = tkp_read_file(pub);
            if (!text || tkp_write_file(dst, text, 0644) != 0) {
                free(text);
                snprintf(err, err_size, "cannot copy %s to %s", pub, dst);
                return -1;
            }
            free(text);
        }
    }
    return 0;
}

int bench_hubenv_init(bench_hubenv_t *env, const char *dir, int extra, char *err, size_t err_size)
{
    memset(env, 0, sizeof *env);
    snprintf(env->dir, sizeof env->dir, "%s", dir);
    char path[PATH_MAX + 16];
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/secrets", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/keys", dir);
    mkdir(path, 0755);
    if (hub__member_keys(env, BENCH_HUB_ID, false, err, err_size) != 0 ||
        hub__member_keys(env, BENCH_CLIENT_ID, true, err, err_size) != 0 ||
        hub__member_keys(env, BENCH_SERVER_ID, true, err, err_size) != 0)
        return -1;
    for (int i = 1; i <= extra; i++) {
        char id[64];
        snprintf(id, sizeof id, "VN/GOV/SCALE/M%05d", i);
        if (hub__member_keys(env, id, true, err, err_size) != 0)
            return -1;
    }
    bench_hubenv_secret_path(env, BENCH_HUB_ID, env->hub_secret);
    bench_hubenv_public_path(env, BENCH_HUB_ID, env->hub_pub);
    return 0;
}

int bench_hubenv_start(bench_hubenv_t *env, const char *data_name, const char *extra_conf,
                       char *err, size_t err_size)
{
    char data[PATH_MAX + 300], ready[PATH_MAX + 16], conf[8192];
    snprintf(data, sizeof data, "%s/%s", env->dir, data_name);
    tkp_rmrf(data);
    snprintf(env->conf, sizeof env->conf, "%s/hubd-%s.conf", env->dir, data_name);
    snprintf(env->log, sizeof env->log, "%s/hubd-%s.log", env->dir, data_name);
    snprintf(ready, sizeof ready, "%s/hubd.ready", env->dir);
    unlink(ready);
    unlink(env->log);
    snprintf(conf, sizeof conf,
             "listen = tcp://127.0.0.1:*\n"
             "key_file = %s\n"
             "key_dir = %s/keys\n"
             "data_dir = %s\n"
             "log_level = warn\n"
             /* Peak rows measure the hub without per-member rate limits;
              * the fairness row sets its own. */
             "rate_msgs = 0\n"
             "rate_bytes = 0\n"
             "%s\n%s\n",
             env->hub_secret, env->dir, data, extra_conf ? extra_conf : "",
             getenv("HUBBENCH_HUBD_CONF") ? getenv("HUBBENCH_HUBD_CONF") : "");
    if (tkp_write_file(env->conf, conf, 0600) != 0) {
        snprintf(err, err_size, "cannot write %s", env->conf);
        return -1;
    }
    char hubd[PATH_MAX + 16];
    snprintf(hubd, sizeof hubd, "%s/hubd", bench_opts.bindir);
    char *argv[] = {hubd, "--config", env->conf, "--ready-file", ready, NULL};
    env->hubd = tkp_spawn(argv, env->log);
    if (env->hubd < 0 || !tkp_wait_file(ready, 60000)) {
        char *log = tkp_read_file(env->log);
        snprintf(err, err_size, "hubd did not start: %.300s", log ? log : "(no log)");
        free(log);
        bench_hubenv_stop(env);
        return -1;
    }
    char *text = tkp_read_file(ready);
    char *ep = text ? strstr(text, "endpoint=") : NULL;
    if (ep)
        snprintf(env->endpoint, sizeof env->endpoint, "%.*s", (int)strcspn(ep + 9, "\n"), ep + 9);
    free(text);
    return ep ? 0 : -1;
}

void bench_hubenv_stop(bench_hubenv_t *env)
{
    if (env->hubd > 0)
        tkp_stop(env->hubd);
    env->hubd = 0;
}

/* ------------------------------------------------------------------------ */
/* Raw protocol peers                                                        */

static void hub__free_frame(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Sends the frame's encoding without copying it (as the SDK does): ZeroMQ
 * frees it once written. */
static int hub__send(bench_peer_t *p, hub_frame_t *frame)
{
    uint8_t *buf;
    size_t len;
    if (hub_frame_encode(frame, &buf, &len) != 0)
        return -1;
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, buf, len, hub__free_frame, NULL) != 0) {
        free(buf);
        return -1;
    }
    int rc = zmq_msg_send(&msg, p->sock, 0) < 0 ? -1 : 0;
    if (rc != 0)
        zmq_msg_close(&msg);
    p->last_tx_ns = bench_now_ns();
    p->frames_out++;
    return rc;
}

/* The next frame, read in place as the SDK reads it (hub_frame_view): it
 * and everything in it are the peer's until its next hub__recv(), never
 * hub_frame_free()d. */
static hub_frame_t *hub__recv(bench_peer_t *p, int flags)
{
    if (p->in_open)
        zmq_msg_close(&p->in);
    p->in_open = false;
    hub_arena_reset(&p->arena);
    zmq_msg_init(&p->in);
    if (zmq_msg_recv(&p->in, p->sock, flags) < 0) {
        zmq_msg_close(&p->in);
        return NULL;
    }
    p->in_open = true;
    hub_frame_t *frame = NULL;
    if (hub_frame_view(&p->arena, zmq_msg_data(&p->in), zmq_msg_size(&p->in), &frame) != 0)
        return NULL;
    return frame;
}

static void hub__heartbeat(bench_peer_t *p)
{
    uint64_t now = bench_now_ns();
    if (now - p->last_tx_ns < (uint64_t)p->heartbeat_ms * 500000u)
        return;
    Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
    hb.sent_at_us = now / 1000u;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &hb;
    hub__send(p, &frame);
    p->frames_out--; /* not traffic */
}

int bench_peer_open(bench_peer_t *p, const bench_hubenv_t *env, const char *member_id,
                    const char *service, char *err, size_t err_size)
{
    memset(p, 0, sizeof *p);
    hub_arena_init(&p->arena);
    char secret[PATH_MAX];
    hub_keypair_t hub;
    bench_hubenv_secret_path(env, member_id, secret);
    if (hub_keyfile_read(secret, &p->key, err, err_size) != 0 ||
        hub_keyfile_read(env->hub_pub, &hub, err, err_size) != 0)
        return -1;
    p->ctx = zmq_ctx_new();
    p->sock = zmq_socket(p->ctx, ZMQ_DEALER);
    int zero = 0, hwm = 100000;
    zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(p->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->sock, ZMQ_CURVE_SERVERKEY, hub.curve_public, 40);
    zmq_setsockopt(p->sock, ZMQ_CURVE_PUBLICKEY, p->key.curve_public, 40);
    zmq_setsockopt(p->sock, ZMQ_CURVE_SECRETKEY, p->key.curve_secret, 40);
    if (zmq_connect(p->sock, env->endpoint) != 0) {
        snprintf(err, err_size, "connect %s: %s", env->endpoint, zmq_strerror(zmq_errno()));
        return -1;
    }
    randombytes_buf(&p->id_prefix, sizeof p->id_prefix);
    Lth__V1__Hello hello = LTH__V1__HELLO__INIT;
    hello.protocol_version = HUB_PROTOCOL_VERSION;
    hello.member_id = p->key.member_id;
    hello.software = "hubbench";
    hello.receipts_in_deliveries = true; /* as the SDK does */
    char *services[1] = {(char *)service};
    hello.services = services;
    hello.n_services = service ? 1 : 0;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_HELLO;
    frame.hello = &hello;
    hub__send(p, &frame);
    p->frames_out = 0;
    zmq_pollitem_t item = {p->sock, 0, ZMQ_POLLIN, 0};
    uint64_t deadline = bench_now_ns() + 10000000000ull;
    while (bench_now_ns() < deadline) {
        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        hub_frame_t *in = hub__recv(p, ZMQ_DONTWAIT);
        if (!in)
            continue;
        bool welcome = in->body_case == LTH__V1__FRAME__BODY_WELCOME;
        if (welcome)
            p->heartbeat_ms = in->welcome->heartbeat_ms ? in->welcome->heartbeat_ms : 1000;
        if (in->body_case == LTH__V1__FRAME__BODY_ERROR)
            snprintf(err, err_size, "hub refused Hello: %s", in->error->reason);
        if (welcome)
            return 0;
    }
    snprintf(err, err_size, "no Welcome from the hub for %s within 10 s", member_id);
    return -1;
}

void bench_peer_close(bench_peer_t *p)
{
    if (p->sock)
        zmq_close(p->sock);
    if (p->ctx)
        zmq_ctx_term(p->ctx);
    hub_keypair_wipe(&p->key);
    p->sock = p->ctx = NULL;
    free(p->digests);
    p->digests = NULL;
    free(p->proofs);
    p->proofs = NULL;
    if (p->in_open)
        zmq_msg_close(&p->in);
    p->in_open = false;
    hub_arena_destroy(&p->arena);
    p->n_digests = p->cap_digests = 0;
}

/* The peer's next message id, "PPPPPPPP-0000-4000-8000-NNNNNNNNNNNN" (the
 * peer's random prefix and a 48-bit counter), written by hand: snprintf was
 * a sixth of the raw client's and responder's own CPU per request/reply. */
static void hub__next_id(bench_peer_t *p, char id[HUB_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t n = ++p->id_next & 0xffffffffffffull;
    memcpy(id, "00000000-0000-4000-8000-000000000000", HUB_UUID_LEN + 1);
    for (int i = 0; i < 8; i++)
        id[i] = hex[(p->id_prefix >> (28 - 4 * i)) & 0xf];
    for (int i = 0; i < 12; i++)
        id[24 + i] = hex[(n >> (44 - 4 * i)) & 0xf];
}

/* The peer's next envelope to receiver; id is its message id's storage. */
static Lth__V1__Envelope hub__envelope_fill(bench_peer_t *p, char id[HUB_UUID_LEN + 1],
                                            const char *receiver, const char *service,
                                            Lth__V1__Kind kind, Lth__V1__Delivery delivery,
                                            const char *correlation_id, const uint8_t *payload,
                                            size_t len)
{
    hub__next_id(p, id);
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    env.message_id = id;
    env.correlation_id = (char *)(correlation_id ? correlation_id : "");
    env.sender = p->key.member_id;
    env.receiver = (char *)receiver;
    env.service = (char *)service;
    env.created_at_us = hub_now_us();
    env.content_type = "application/octet-stream";
    env.payload.data = (uint8_t *)payload;
    env.payload.len = len;
    env.kind = kind;
    env.delivery = delivery;
    return env;
}

/* Encodes one envelope; returns malloc'ed bytes. */
static uint8_t *hub__envelope(bench_peer_t *p, const char *receiver, const char *service,
                              Lth__V1__Kind kind, Lth__V1__Delivery delivery,
                              const char *correlation_id, const uint8_t *payload, size_t len,
                              size_t *out_len)
{
    char id[HUB_UUID_LEN + 1];
    Lth__V1__Envelope env = hub__envelope_fill(p, id, receiver, service, kind, delivery,
                                               correlation_id, payload, len);
    if (p->sign) {
        /* Signed with the rest of its Batch, in hub__send_batch. */
        if (p->n_digests == p->cap_digests) {
            size_t cap = p->cap_digests ? 2 * p->cap_digests : 1024;
            void *grown = realloc(p->digests, cap * sizeof *p->digests);
            if (!grown)
                return NULL;
            p->digests = grown;
            p->cap_digests = cap;
        }
        hub_envelope_digest(&env, p->digests[p->n_digests++]);
    }
    *out_len = lth__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(*out_len);
    if (buf)
        lth__v1__envelope__pack(&env, buf);
    return buf;
}

/* A Batch frame written in place, for peers that do not sign: each envelope
 * is packed once, straight into the frame, where hub__envelope and
 * hub__send_batch give each its own buffer and copy it again into the
 * frame. The bytes are protobuf-c's (fields in number order). The first
 * HUB__BATCH_HEAD bytes are kept for the frame's head, written last, when
 * the body's length is known. */
#define HUB__BATCH_HEAD 16

typedef struct {
    uint8_t *buf; /* malloc'ed; handed to ZeroMQ by hub__batch_send */
    size_t len, cap, n;
} hub__batch_t;

static uint8_t *hub__varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static int hub__batch_add(hub__batch_t *b, const Lth__V1__Envelope *env)
{
    size_t el = lth__v1__envelope__get_packed_size(env);
    if (!b->buf)
        b->len = HUB__BATCH_HEAD;
    size_t need = b->len + 1 + 10 + el;
    if (need > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64 * 1024;
        while (cap < need)
            cap *= 2;
        uint8_t *grown = realloc(b->buf, cap);
        if (!grown)
            return -1;
        b->buf = grown;
        b->cap = cap;
    }
    uint8_t *q = b->buf + b->len;
    *q++ = (1u << 3) | 2u; /* Batch.envelopes */
    q = hub__varint_put(q, el);
    q += lth__v1__envelope__pack(env, q);
    b->len = (size_t)(q - b->buf);
    b->n++;
    return 0;
}

static void hub__free_base(void *data, void *hint)
{
    (void)data;
    free(hint);
}

/* Sends the Batch (the buffer is ZeroMQ's from here) and empties b. */
static int hub__batch_send(bench_peer_t *p, hub__batch_t *b)
{
    if (b->n == 0) {
        free(b->buf);
        *b = (hub__batch_t){0};
        return 0;
    }
    uint8_t head[HUB__BATCH_HEAD];
    uint8_t *h = head;
    *h++ = (1u << 3) | 0u; /* Frame.protocol_version */
    *h++ = HUB_PROTOCOL_VERSION;
    *h++ = (4u << 3) | 2u; /* Frame.batch */
    h = hub__varint_put(h, b->len - HUB__BATCH_HEAD);
    size_t hl = (size_t)(h - head);
    uint8_t *start = b->buf + HUB__BATCH_HEAD - hl;
    memcpy(start, head, hl);
    size_t n = b->n;
    zmq_msg_t msg;
    int rc = -1;
    if (zmq_msg_init_data(&msg, start, hl + b->len - HUB__BATCH_HEAD, hub__free_base, b->buf) !=
        0) {
        free(b->buf);
    } else {
        rc = zmq_msg_send(&msg, p->sock, 0) < 0 ? -1 : 0;
        if (rc != 0)
            zmq_msg_close(&msg);
    }
    *b = (hub__batch_t){0};
    p->last_tx_ns = bench_now_ns();
    p->frames_out++;
    p->envelopes_out += n;
    return rc;
}

/* Appends the signature fields to items[from, to), signed together. */
static void hub__sign_items(bench_peer_t *p, ProtobufCBinaryData *items, size_t from, size_t to)
{
    hub_batch_proof_t *proofs = p->proofs;
    uint8_t sig[HUB_SIGNATURE_LEN];
    size_t k = to - from;
    if (k == 1)
        crypto_sign_detached(sig, NULL, p->digests[from], HUB_DIGEST_LEN, p->key.sign_secret);
    else
        hub_batch_sign((const uint8_t(*)[HUB_DIGEST_LEN])(p->digests + from), k,
                       p->key.sign_secret, sig, proofs);
    for (size_t i = from; i < to; i++)
        hub_envelope_append_signature(&items[i].data, &items[i].len, sig,
                                      k == 1 ? NULL : &proofs[i - from]);
}

/* Sends the envelopes as one Batch and frees them. */
static int hub__send_batch(bench_peer_t *p, ProtobufCBinaryData *items, size_t n)
{
    if (n == 0)
        return 0;
    if (p->sign && p->n_digests == n &&
        (p->proofs || (p->proofs = malloc(HUB_BENCH_SIGN_BATCH * sizeof *p->proofs)))) {
        for (size_t from = 0; from < n; from += HUB_BENCH_SIGN_BATCH)
            hub__sign_items(p, items, from,
                            from + HUB_BENCH_SIGN_BATCH < n ? from + HUB_BENCH_SIGN_BATCH : n);
    }
    p->n_digests = 0;
    Lth__V1__Batch batch = LTH__V1__BATCH__INIT;
    batch.envelopes = items;
    batch.n_envelopes = n;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_BATCH;
    frame.batch = &batch;
    int rc = hub__send(p, &frame);
    p->envelopes_out += n;
    for (size_t i = 0; i < n; i++)
        free(items[i].data);
    return rc;
}

static void hub__send_settle(bench_peer_t *p, uint64_t *seqs, size_t *n)
{
    if (*n == 0)
        return;
    Lth__V1__Settle settle = LTH__V1__SETTLE__INIT;
    settle.hub_seqs = seqs;
    settle.n_hub_seqs = *n;
    hub_frame_t frame = LTH__V1__FRAME__INIT;
    frame.body_case = LTH__V1__FRAME__BODY_SETTLE;
    frame.settle = &settle;
    hub__send(p, &frame);
    p->frames_out--; /* bookkeeping, not traffic */
    *n = 0;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                   */

typedef struct {
    hub_case_t c;
    bench_window_t win;
    bench_lat_t lat; /* recorded by exactly one thread */
    bench_peer_t client, server;
    adp_client_t *sdk_client, *sdk_server;
    Lth__V1__Delivery delivery;
    atomic_ullong hub_acks;
    /* Durable cases: send -> ACK (accepted: durable in the store), by the
     * raw client, keyed by the counter in its message ids. */
    uint64_t *ack_sent; /* HUB__ACK_RING entries */
    bench_lat_t ack_lat;
} hub__run_t;

#define HUB__ACK_RING 65536u /* > any window */

static void hub__note_sent(hub__run_t *r, uint64_t id_counter)
{
    if (r->ack_sent)
        r->ack_sent[id_counter % HUB__ACK_RING] = bench_now_ns();
}

/* The send time of a payload: carried in it. */
static uint64_t hub__sent(hub__run_t *r, const uint8_t *payload, size_t len)
{
    (void)r;
    return bench_payload_sent_ns(payload, len);
}

static void hub__complete(hub__run_t *r, uint64_t sent_ns)
{
    atomic_fetch_sub(&r->win.outstanding, 1);
    if (atomic_load(&r->win.phase) == BENCH_MEASURE) {
        bench_lat_add(&r->lat, bench_now_ns() - sent_ns);
        atomic_fetch_add(&r->win.completed, 1);
    }
}

static void hub__receipts(hub__run_t *r, const Lth__V1__Receipts *rec)
{
    atomic_fetch_add(&r->hub_acks, rec->n_acks);
    if (r->ack_sent && atomic_load(&r->win.phase) == BENCH_MEASURE) {
        uint64_t now = bench_now_ns();
        for (size_t i = 0; i < rec->n_acks; i++) {
            const char *id = rec->acks[i]->message_id;
            if (strlen(id) != HUB_UUID_LEN)
                continue;
            uint64_t sent = r->ack_sent[strtoull(id + 24, NULL, 16) % HUB__ACK_RING];
            if (sent && sent < now)
                bench_lat_add(&r->ack_lat, now - sent);
        }
    }
    for (size_t i = 0; i < rec->n_nacks; i++) {
        bench_window_error(&r->win, "NACK %s: %s", hub_nack_code_name(rec->nacks[i]->code),
                           rec->nacks[i]->reason);
        atomic_fetch_sub(&r->win.outstanding, 1);
    }
}

/* Decodes a delivered envelope, verifying its signature when asked. */
static hub_envelope_t *hub__delivered(hub__run_t *r, bench_peer_t *p,
                                      const Lth__V1__DeliveredEnvelope *item)
{
    hub_envelope_t *env = NULL;
    if (hub_envelope_read_in(&p->arena, item->envelope.data, item->envelope.len, &env, NULL) != 0) {
        bench_window_error(&r->win, "undecodable delivery");
        return NULL;
    }
    /* Verify with the key the hub sends along (as the SDK does), else the
     * one read from the sender's .pub file. */
    const uint8_t *key =
        item->sender_sign_key.len == 32 ? item->sender_sign_key.data : p->peer_sign_public;
    if (p->verify && hub_envelope_verify_cached(env, key, &p->sigcache) != 0) {
        bench_window_error(&r->win, "delivered envelope's signature does not verify");
        return NULL;
    }
    return env;
}

/* Sends new messages (requests or events) up to the window, in Batch frames
 * of at most c.max_batch envelopes. */
static void hub__refill(hub__run_t *r, bench_peer_t *p, uint8_t *payload, uint64_t *seq)
{
    if (atomic_load(&r->win.phase) >= BENCH_DRAIN)
        return;
    long long want = r->c.inflight - atomic_load(&r->win.outstanding);
    long long cap =
        r->c.max_batch > 0 && r->c.max_batch < HUB__MAX_BATCH ? r->c.max_batch : HUB__MAX_BATCH;
    bool events = r->c.kind == HUB_CASE_EVENTS;
    while (want > 0 && !p->sign) {
        long long n = want < cap ? want : cap;
        hub__batch_t b = {0};
        for (long long i = 0; i < n; i++) {
            bench_payload_fill(payload, BENCH_PAYLOAD, ++*seq);
            char id[HUB_UUID_LEN + 1];
            Lth__V1__Envelope env = hub__envelope_fill(
                p, id, BENCH_SERVER_ID, events ? BENCH_EVENT_SERVICE : BENCH_ECHO_SERVICE,
                events ? LTH__V1__KIND__KIND_EVENT : LTH__V1__KIND__KIND_REQUEST, r->delivery,
                NULL, payload, BENCH_PAYLOAD);
            if (hub__batch_add(&b, &env) != 0)
                break;
            hub__note_sent(r, p->id_next);
        }
        atomic_fetch_add(&r->win.outstanding, (long long)b.n);
        want -= (long long)b.n;
        if (b.n == 0 || hub__batch_send(p, &b) != 0)
            return;
    }
    while (want > 0) {
        long long n = want < cap ? want : cap;
        ProtobufCBinaryData items[HUB__MAX_BATCH];
        for (long long i = 0; i < n; i++) {
            bench_payload_fill(payload, BENCH_PAYLOAD, ++*seq);
            items[i].data =
                hub__envelope(p, BENCH_SERVER_ID, events ? BENCH_EVENT_SERVICE : BENCH_ECHO_SERVICE,
                              events ? LTH__V1__KIND__KIND_EVENT : LTH__V1__KIND__KIND_REQUEST,
                              r->delivery, NULL, payload, BENCH_PAYLOAD, &items[i].len);
            hub__note_sent(r, p->id_next);
        }
        atomic_fetch_add(&r->win.outstanding, n);
        hub__send_batch(p, items, (size_t)n);
        want -= n;
    }
}

/* The client: keeps c.inflight requests (or events) outstanding. Replies
 * complete requests here; events are completed by the receiver thread. */
static void *hub__raw_client(void *arg)
{
    hub__run_t *r = arg;
    bench_peer_t *p = &r->client;
    uint8_t payload[BENCH_PAYLOAD];
    memset(payload, 'x', sizeof payload);
    uint64_t seq = 0, settle[4096];
    size_t n_settle = 0;
    bool events = r->c.kind == HUB_CASE_EVENTS;
    zmq_pollitem_t item = {p->sock, 0, ZMQ_POLLIN, 0};
    while (atomic_load(&r->win.phase) != BENCH_STOP) {
        hub__refill(r, p, payload, &seq);
        /* Events: the window opens on deliveries to the other thread, so look
         * again soon even without input. */
        if (zmq_poll(&item, 1, events ? 1 : 100) > 0) {
            hub_frame_t *f;
            for (int n = 0; n < 1024 && (f = hub__recv(p, ZMQ_DONTWAIT)) != NULL; n++) {
                if (f->body_case == LTH__V1__FRAME__BODY_RECEIPTS) {
                    hub__receipts(r, f->receipts);
                } else if (f->body_case == LTH__V1__FRAME__BODY_DELIVERIES) {
                    if (f->deliveries->receipts)
                        hub__receipts(r, f->deliveries->receipts);
                    for (size_t i = 0; i < f->deliveries->n_items; i++) {
                        Lth__V1__DeliveredEnvelope *d = f->deliveries->items[i];
                        hub_envelope_t *env = hub__delivered(r, p, d);
                        if (env && env->kind == LTH__V1__KIND__KIND_REPLY)
                            hub__complete(r, hub__sent(r, env->payload.data, env->payload.len));
                        if (d->hub_seq && n_settle < 4096)
                            settle[n_settle++] = d->hub_seq;
                    }
                } else if (f->body_case == LTH__V1__FRAME__BODY_ERROR) {
                    bench_window_error(&r->win, "frame refused: %s", f->error->reason);
                }
                if (n_settle > 3000)
                    hub__send_settle(p, settle, &n_settle);
                hub__refill(r, p, payload, &seq);
            }
            hub__send_settle(p, settle, &n_settle);
        }
        hub__heartbeat(p);
    }
    return NULL;
}

/* The responder: answers requests with an echo (same delivery mode), takes
 * events, settles what the hub stored. */
static void *hub__raw_server(void *arg)
{
    hub__run_t *r = arg;
    bench_peer_t *p = &r->server;
    uint64_t settle[4096];
    size_t n_settle = 0;
    ProtobufCBinaryData *replies = calloc(8192, sizeof *replies);
    zmq_pollitem_t item = {p->sock, 0, ZMQ_POLLIN, 0};
    while (replies && atomic_load(&r->win.phase) != BENCH_STOP) {
        if (zmq_poll(&item, 1, 100) > 0) {
            hub_frame_t *f;
            for (int n = 0; n < 1024 && (f = hub__recv(p, ZMQ_DONTWAIT)) != NULL; n++) {
                size_t n_replies = 0;
                hub__batch_t out = {0};
                if (f->body_case == LTH__V1__FRAME__BODY_DELIVERIES) {
                    const Lth__V1__Receipts *held = f->deliveries->receipts;
                    for (size_t i = 0; held && i < held->n_nacks; i++)
                        bench_window_error(&r->win, "reply NACKed: %s", held->nacks[i]->reason);
                    for (size_t i = 0; i < f->deliveries->n_items; i++) {
                        Lth__V1__DeliveredEnvelope *d = f->deliveries->items[i];
                        hub_envelope_t *env = hub__delivered(r, p, d);
                        if (env && env->kind == LTH__V1__KIND__KIND_REQUEST && !p->sign) {
                            char id[HUB_UUID_LEN + 1];
                            Lth__V1__Envelope reply = hub__envelope_fill(
                                p, id, env->sender, env->service, LTH__V1__KIND__KIND_REPLY,
                                env->delivery, env->message_id, env->payload.data,
                                env->payload.len);
                            if (hub__batch_add(&out, &reply) != 0)
                                bench_window_error(&r->win, "out of memory for a reply");
                        } else if (env && env->kind == LTH__V1__KIND__KIND_REQUEST &&
                                   n_replies < 8192) {
                            replies[n_replies].data = hub__envelope(
                                p, env->sender, env->service, LTH__V1__KIND__KIND_REPLY,
                                env->delivery, env->message_id, env->payload.data, env->payload.len,
                                &replies[n_replies].len);
                            n_replies++;
                        } else if (env && env->kind == LTH__V1__KIND__KIND_EVENT) {
                            hub__complete(r, hub__sent(r, env->payload.data, env->payload.len));
                        }
                        if (d->hub_seq && n_settle < 4096)
                            settle[n_settle++] = d->hub_seq;
                    }
                } else if (f->body_case == LTH__V1__FRAME__BODY_RECEIPTS) {
                    for (size_t i = 0; i < f->receipts->n_nacks; i++)
                        bench_window_error(&r->win, "reply NACKed: %s",
                                           f->receipts->nacks[i]->reason);
                } else if (f->body_case == LTH__V1__FRAME__BODY_ERROR) {
                    bench_window_error(&r->win, "frame refused: %s", f->error->reason);
                }
                hub__batch_send(p, &out);
                hub__send_batch(p, replies, n_replies);
                hub__send_settle(p, settle, &n_settle);
            }
        }
        hub__heartbeat(p);
    }
    free(replies);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* SDK peers                                                                 */

static int hub__sdk_echo(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                         void *user)
{
    (void)client;
    (void)user;
    reply->payload = malloc(msg->payload_len ? msg->payload_len : 1);
    if (!reply->payload)
        return -1;
    memcpy(reply->payload, msg->payload, msg->payload_len);
    reply->payload_len = msg->payload_len;
    snprintf(reply->content_type, sizeof reply->content_type, "%s", msg->content_type);
    return 0;
}

static int hub__sdk_event(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                          void *user)
{
    (void)client;
    (void)reply;
    hub__complete(user, bench_payload_sent_ns(msg->payload, msg->payload_len));
    return 0;
}

static adp_client_t *hub__sdk_connect(hub__run_t *r, const bench_hubenv_t *env,
                                      const char *member_id, char *err, size_t err_size)
{
    (void)r;
    char secret[PATH_MAX];
    bench_hubenv_secret_path(env, member_id, secret);
    adp_config_t cfg = {env->endpoint, env->hub_pub, secret, 10000, "hubbench", NULL};
    adp_client_t *c = NULL;
    if (adp_connect(&cfg, &c, err, err_size) != 0)
        return NULL;
    return c;
}

static void *hub__sdk_server(void *arg)
{
    hub__run_t *r = arg;
    while (atomic_load(&r->win.phase) != BENCH_STOP)
        adp_run(r->sdk_server, 50);
    return NULL;
}

/* adp_request() is synchronous: one request in flight. */
static void *hub__sdk_requester(void *arg)
{
    hub__run_t *r = arg;
    uint8_t payload[BENCH_PAYLOAD];
    memset(payload, 'x', sizeof payload);
    uint64_t seq = 0;
    int flags = r->c.durable ? 0 : ADP_ONLINE_ONLY;
    while (atomic_load(&r->win.phase) < BENCH_DRAIN) {
        bench_payload_fill(payload, sizeof payload, ++seq);
        atomic_fetch_add(&r->win.outstanding, 1);
        adp_reply_t reply;
        int rc =
            adp_request(r->sdk_client, BENCH_SERVER_ID, BENCH_ECHO_SERVICE,
                        "application/octet-stream", payload, sizeof payload, flags, 5000, &reply);
        if (rc == 0) {
            hub__complete(r, bench_payload_sent_ns(reply.payload, reply.payload_len));
            adp_reply_free(&reply);
        } else {
            atomic_fetch_sub(&r->win.outstanding, 1);
            bench_window_error(&r->win, "adp_request: %s", adp_last_error(r->sdk_client));
        }
    }
    while (atomic_load(&r->win.phase) != BENCH_STOP)
        adp_run(r->sdk_client, 20);
    return NULL;
}

/* adp_post_event() + adp_run(): c.inflight events outstanding end to end. */
static void *hub__sdk_sender(void *arg)
{
    hub__run_t *r = arg;
    uint8_t payload[BENCH_PAYLOAD];
    memset(payload, 'x', sizeof payload);
    uint64_t seq = 0;
    int flags = r->c.durable ? 0 : ADP_ONLINE_ONLY;
    while (atomic_load(&r->win.phase) != BENCH_STOP) {
        while (atomic_load(&r->win.phase) < BENCH_DRAIN &&
               atomic_load(&r->win.outstanding) < r->c.inflight) {
            bench_payload_fill(payload, sizeof payload, ++seq);
            if (adp_post_event(r->sdk_client, BENCH_SERVER_ID, BENCH_EVENT_SERVICE,
                               "application/octet-stream", payload, sizeof payload, flags,
                               NULL) != 0) {
                bench_window_error(&r->win, "adp_post_event: %s", adp_last_error(r->sdk_client));
                break;
            }
            atomic_fetch_add(&r->win.outstanding, 1);
        }
        adp_run(r->sdk_client, 1);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */

static bool hub__drained(void *user)
{
    hub__run_t *r = user;
    return atomic_load(&r->win.outstanding) <= 0;
}

void bench_hub_drive(const bench_hubenv_t *env, const hub_case_t *c, bench_result_t *out)
{
    hub__run_t *r = calloc(1, sizeof *r);
    if (!r) {
        bench_result_na(out, "out of memory");
        return;
    }
    r->c = *c;
    bench_window_init(&r->win);
    r->win.cpu_pid = env->hubd;
    r->win.cpu_pid_b = env->hubd_b;
    r->win.cpu_main = true;
    if (env->pg) {
        r->win.cpu2_pid = env->pg->pid;
        r->win.edge = bench_pg_probe_edge;
        r->win.edge_ctx = env->pg;
        bench_pg_probe_open(env->pg);
    }
    r->win.envelopes_per_msg = c->kind == HUB_CASE_REQREPLY ? 2 : 1;
    r->delivery =
        c->durable ? LTH__V1__DELIVERY__DELIVERY_QUEUED : LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY;
    bool events = c->kind == HUB_CASE_EVENTS;
    bool sdk = c->peers == HUB_PEER_SDK;
    /* SDK request/reply: SDK responder; the requester is adp_request() for
     * one in flight, else our pipelined raw client. */
    bool sdk_requester = sdk && !events && c->inflight == 1;
    bool raw_client = !sdk || (!events && !sdk_requester);
    char err[512] = "";
    int rc = 0;
    const char *service = events ? BENCH_EVENT_SERVICE : BENCH_ECHO_SERVICE;
    /* The receiver's hub: node B on two-node rows (same keys, other endpoint). */
    bench_hubenv_t node_b;
    const bench_hubenv_t *senv = env;
    if (env->hubd_b > 0) {
        node_b = *env;
        snprintf(node_b.endpoint, sizeof node_b.endpoint, "%s", env->endpoint_b);
        node_b.hubd = env->hubd_b;
        senv = &node_b;
    }
    if (sdk) {
        r->sdk_server = hub__sdk_connect(r, senv, BENCH_SERVER_ID, err, sizeof err);
        rc = r->sdk_server
                 ? adp_offer(r->sdk_server, service, events ? hub__sdk_event : hub__sdk_echo, r)
                 : -1;
        if (rc == 0)
            adp_run(r->sdk_server, 50); /* let the new Hello reach the hub */
    } else {
        rc = bench_peer_open(&r->server, senv, BENCH_SERVER_ID, service, err, sizeof err);
    }
    if (rc == 0 && raw_client)
        rc = bench_peer_open(&r->client, env, BENCH_CLIENT_ID, NULL, err, sizeof err);
    else if (rc == 0 &&
             !(r->sdk_client = hub__sdk_connect(r, env, BENCH_CLIENT_ID, err, sizeof err)))
        rc = -1;
    if (rc == 0 && c->full_path) {
        /* Signed by the sender, verified by the receiver (and by the hub). */
        hub_keypair_t kp;
        char pub[PATH_MAX];
        r->client.sign = r->server.sign = true;
        r->client.verify = r->server.verify = true;
        bench_hubenv_public_path(env, BENCH_SERVER_ID, pub);
        if (hub_keyfile_read(pub, &kp, err, sizeof err) == 0)
            memcpy(r->client.peer_sign_public, kp.sign_public, 32);
        bench_hubenv_public_path(env, BENCH_CLIENT_ID, pub);
        if (hub_keyfile_read(pub, &kp, err, sizeof err) == 0)
            memcpy(r->server.peer_sign_public, kp.sign_public, 32);
    }
    if (rc == 0 && c->durable && raw_client)
        r->ack_sent = calloc(HUB__ACK_RING, sizeof *r->ack_sent);
    if (rc != 0) {
        bench_result_na(out, "cannot connect: %s", err);
        goto done;
    }

    pthread_t server, client;
    pthread_create(&server, NULL, sdk ? hub__sdk_server : hub__raw_server, r);
    void *(*client_fn)(void *) = raw_client      ? hub__raw_client
                                 : sdk_requester ? hub__sdk_requester
                                                 : hub__sdk_sender;
    pthread_create(&client, NULL, client_fn, r);
    bench_window_run(&r->win, hub__drained, r);
    pthread_join(client, NULL);
    pthread_join(server, NULL);
    bench_result_from(out, &r->win, &r->lat);
    if (r->ack_lat.n > 0) {
        size_t len = strlen(out->note);
        snprintf(out->note + len, sizeof out->note - len,
                 "%saccepted (send→ACK) p50 %.0f µs, p99 %.0f µs", len ? "; " : "",
                 bench_lat_pct(&r->ack_lat, 50), bench_lat_pct(&r->ack_lat, 99));
    }
    if (out->main_share > 0) {
        size_t len = strlen(out->note);
        /* The µs too, to two places: an A/B of hubd's own code reads
         * these (the table's CPU column has one). */
        snprintf(out->note + len, sizeof out->note - len,
                 "%sloop thread %.0f%% of hubd CPU (%.2f of %.2f µs/msg)", len ? "; " : "",
                 out->main_share * 100, out->main_share * out->cpu_us, out->cpu_us);
    }
    if (out->clients_cpu_us > 0) {
        /* The senders' and receivers' own cost (SDK or raw): on a 2-core
         * machine it competes with hubd for the same cores. */
        size_t len = strlen(out->note);
        snprintf(out->note + len, sizeof out->note - len, "%sclients %.1f µs CPU/msg",
                 len ? "; " : "", out->clients_cpu_us);
    }
    if (raw_client && r->client.frames_out > 0) {
        char batch[64];
        snprintf(batch, sizeof batch, "%s%.0f msgs/Batch", out->note[0] ? "; " : "",
                 (double)r->client.envelopes_out / (double)r->client.frames_out);
        size_t len = strlen(out->note);
        snprintf(out->note + len, sizeof out->note - len, "%s", batch);
    }
    if (env->pg && !out->na)
        bench_pg_probe_note(env->pg, out, bench_window_seconds(&r->win), out->note,
                            sizeof out->note);
done:
    free(r->ack_sent);
    bench_lat_free(&r->ack_lat);
    adp_close(&r->sdk_client);
    adp_close(&r->sdk_server);
    bench_peer_close(&r->client);
    bench_peer_close(&r->server);
    bench_lat_free(&r->lat);
    free(r);
}

/* ------------------------------------------------------------------------ */
/* Feature detection and the per-case hubd                                   */

/* Finds `key = value` or `# key = value` in text; copies the first word of
 * the value. */
static bool hub__find_key(const char *text, const char *key, char *value, size_t size)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *s = line;
        while (*s == '#' || *s == ' ' || *s == '\t')
            s++;
        if (strncmp(s, key, klen) != 0)
            continue;
        s += klen;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != '=')
            continue;
        s++;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = 0;
        while (s[n] && !isspace((unsigned char)s[n]) && n + 1 < size)
            n++;
        snprintf(value, size, "%.*s", (int)n, s);
        return true;
    }
    return false;
}

void bench_hub_features(hub_features_t *f)
{
    memset(f, 0, sizeof *f);
    char example[PATH_MAX + 64];
    snprintf(example, sizeof example, "%s/deploy/hubd.conf.example", bench_opts.srcdir);
    char *conf = tkp_read_file(example);
    char hubd[PATH_MAX + 16];
    snprintf(hubd, sizeof hubd, "%s/hubd", bench_opts.bindir);
    char *argv[] = {hubd, "--help", NULL};
    char *help = NULL;
    bench_capture(argv, &help, 5000);
    size_t len = (conf ? strlen(conf) : 0) + (help ? strlen(help) : 0) + 2;
    char *text = calloc(1, len);
    if (text)
        snprintf(text, len, "%s\n%s", conf ? conf : "", help ? help : "");
    free(conf);
    free(help);
    if (!text)
        return;
    char value[64];
    static const char *sig_keys[] = {"require_signatures", "verify_signatures", "signatures"};
    for (size_t i = 0; i < sizeof sig_keys / sizeof *sig_keys && !f->signatures; i++) {
        if (hub__find_key(text, sig_keys[i], value, sizeof value)) {
            f->signatures = true;
            snprintf(f->sig_on_conf, sizeof f->sig_on_conf, "%s = yes\n", sig_keys[i]);
            snprintf(f->sig_off_conf, sizeof f->sig_off_conf, "%s = no\n", sig_keys[i]);
        }
    }
    static const char *audit_keys[] = {"audit", "audit_enabled", "audit_log"};
    for (size_t i = 0; i < sizeof audit_keys / sizeof *audit_keys && !f->audit; i++) {
        if (hub__find_key(text, audit_keys[i], value, sizeof value)) {
            f->audit = true;
            snprintf(f->audit_on_conf, sizeof f->audit_on_conf, "%s = yes\n", audit_keys[i]);
            snprintf(f->audit_off_conf, sizeof f->audit_off_conf, "%s = no\n", audit_keys[i]);
        }
    }
    if (!f->audit && hub__find_key(text, "audit_dir", value, sizeof value)) {
        /* Always on, in the directory it names. */
        f->audit = true;
    }
    if (!f->signatures || !f->audit)
        snprintf(f->why_not, sizeof f->why_not, "this hubd has no %s%s%s",
                 f->signatures ? "" : "signature verification",
                 !f->signatures && !f->audit ? " and no " : "", f->audit ? "" : "audit log");
    free(text);
}

void bench_hub(const hub_case_t *c, const hub_features_t *features, bench_result_t *out)
{
    static bench_hubenv_t env;
    static bool env_ready;
    static int run_no;
    char err[512];
    if (c->full_path && (!features->signatures || !features->audit)) {
        bench_result_na(out, "n/a (not in this hubd yet: %s)", features->why_not);
        return;
    }
    if (!env_ready) {
        char dir[PATH_MAX + 16];
        snprintf(dir, sizeof dir, "%s/hub", bench_opts.workdir);
        if (bench_hubenv_init(&env, dir, 0, err, sizeof err) != 0) {
            bench_result_na(out, "cannot make keys: %s", err);
            return;
        }
        env_ready = true;
    }
    char conf[1024] = "", data[64];
    if (c->full_path)
        snprintf(conf, sizeof conf, "%s%s", features->sig_on_conf, features->audit_on_conf);
    else
        snprintf(conf, sizeof conf, "%s%s", features->sig_off_conf, features->audit_off_conf);
    snprintf(data, sizeof data, "data-%d", ++run_no);
    bench_pg_t pg = {.pid = 0};
    if (c->pg_store) {
        if (bench_pg_start(&pg, err, sizeof err) != 0) {
            bench_result_na(out, "%s", err);
            return;
        }
        size_t len = strlen(conf);
        snprintf(conf + len, sizeof conf - len,
                 "store = postgresql\nstore_migrate = yes\nstore_dsn = host=127.0.0.1 "
                 "port=%d user=bench dbname=postgres\n",
                 pg.port);
    }
    /* Two nodes: the same hub (key, keys, store), each its own node_id,
     * listen, cluster_listen and data_dir; node B is started second. */
    bool two = c->pg_store && c->two_nodes;
    char conf_b[1200] = "", data_b[80] = "";
    bench_hubenv_t env_b;
    if (two) {
        snprintf(conf_b, sizeof conf_b,
                 "%scluster = on\nnode_id = bench-b\ncluster_listen = tcp://127.0.0.1:*\n", conf);
        size_t len = strlen(conf);
        snprintf(conf + len, sizeof conf - len,
                 "cluster = on\nnode_id = bench-a\ncluster_listen = tcp://127.0.0.1:*\n");
        snprintf(data_b, sizeof data_b, "%s-b", data);
    }
    if (bench_hubenv_start(&env, data, conf, err, sizeof err) != 0) {
        bench_result_na(out, "%s", err);
        bench_pg_stop(&pg);
        return;
    }
    env.hubd_b = 0;
    env.endpoint_b[0] = '\0';
    if (two) {
        env_b = env;
        if (bench_hubenv_start(&env_b, data_b, conf_b, err, sizeof err) != 0) {
            bench_result_na(out, "node B: %s", err);
            bench_hubenv_stop(&env);
            bench_pg_stop(&pg);
            return;
        }
        env.hubd_b = env_b.hubd;
        snprintf(env.endpoint_b, sizeof env.endpoint_b, "%s", env_b.endpoint);
    }
    env.pg = c->pg_store ? &pg : NULL;
    bench_hub_drive(&env, c, out);
    env.pg = NULL;
    bool a_alive = bench_alive(env.hubd), b_alive = !two || bench_alive(env_b.hubd);
    if (!a_alive || !b_alive) {
        out->na = true;
        snprintf(out->note, sizeof out->note, "hubd died during the run; see %s",
                 a_alive ? env_b.log : env.log);
        if (!a_alive)
            env.hubd = 0;
        if (!b_alive)
            env_b.hubd = 0;
    }
    if (two)
        bench_hubenv_stop(&env_b);
    env.hubd_b = 0;
    env.endpoint_b[0] = '\0';
    bench_hubenv_stop(&env);
    bench_pg_stop(&pg);
    if (!bench_opts.verbose) {
        char path[PATH_MAX + 80];
        snprintf(path, sizeof path, "%s/%s", env.dir, data);
        tkp_rmrf(path);
        if (two) {
            snprintf(path, sizeof path, "%s/%s", env.dir, data_b);
            tkp_rmrf(path);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Fairness: one member floods while another does request/reply              */

#define HUB__FLOOD_ID "VN/GOV/SCALE/M00001"
#define HUB__SINK_ID "VN/GOV/SCALE/M00002"
#define HUB__FLOOD_WINDOW 4096 /* events the flooder keeps unanswered */

typedef struct {
    const bench_hubenv_t *env;
    atomic_int stop;
    uint64_t sent, acked, refused, delivered; /* read after the join */
    char first_refusal[160];
    char err[256];
} hub__flood_t;

/* The flooder sends durable 1 KiB events to the sink as fast as the hub
 * answers, in Batches of 256; the sink settles what it gets. One thread
 * drives both, so that the flood costs the honest pair one core at most. */
static void *hub__flood(void *arg)
{
    hub__flood_t *f = arg;
    bench_peer_t flood, sink;
    if (bench_peer_open(&flood, f->env, HUB__FLOOD_ID, NULL, f->err, sizeof f->err) != 0)
        return NULL;
    if (bench_peer_open(&sink, f->env, HUB__SINK_ID, BENCH_EVENT_SERVICE, f->err,
                        sizeof f->err) != 0) {
        bench_peer_close(&flood);
        return NULL;
    }
    uint8_t payload[BENCH_PAYLOAD];
    uint64_t seq = 0, settle[1024];
    size_t n_settle = 0;
    /* 256 envelopes encoded once; each send gives them fresh ids in place
     * (the id is the first field), so that the flooder spends its CPU on
     * sending, as an attacker on another machine would. */
    ProtobufCBinaryData proto[256];
    for (size_t i = 0; i < 256; i++) {
        bench_payload_fill(payload, sizeof payload, ++seq);
        proto[i].data = hub__envelope(&flood, HUB__SINK_ID, BENCH_EVENT_SERVICE,
                                      LTH__V1__KIND__KIND_EVENT,
                                      LTH__V1__DELIVERY__DELIVERY_QUEUED, NULL, payload,
                                      sizeof payload, &proto[i].len);
    }
    while (!atomic_load(&f->stop)) {
        while (f->sent - f->acked - f->refused < HUB__FLOOD_WINDOW - 256) {
            for (size_t i = 0; i < 256; i++) {
                char id[HUB_UUID_LEN + 1];
                hub__next_id(&flood, id);
                memcpy(proto[i].data + 2, id, HUB_UUID_LEN); /* tag 0x0a, length 36 */
            }
            Lth__V1__Batch batch = LTH__V1__BATCH__INIT;
            batch.envelopes = proto;
            batch.n_envelopes = 256;
            hub_frame_t frame = LTH__V1__FRAME__INIT;
            frame.body_case = LTH__V1__FRAME__BODY_BATCH;
            frame.batch = &batch;
            hub__send(&flood, &frame);
            f->sent += 256;
        }
        zmq_pollitem_t items[2] = {{flood.sock, 0, ZMQ_POLLIN, 0}, {sink.sock, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, 10) <= 0)
            continue;
        hub_frame_t *in;
        while ((in = hub__recv(&flood, ZMQ_DONTWAIT))) {
            const Lth__V1__Receipts *rec = in->body_case == LTH__V1__FRAME__BODY_RECEIPTS
                                               ? in->receipts
                                           : in->body_case == LTH__V1__FRAME__BODY_DELIVERIES
                                               ? in->deliveries->receipts
                                               : NULL;
            if (rec) {
                f->acked += rec->n_acks;
                f->refused += rec->n_nacks;
                if (rec->n_nacks && !f->first_refusal[0])
                    snprintf(f->first_refusal, sizeof f->first_refusal, "%s: %s",
                             hub_nack_code_name(rec->nacks[0]->code), rec->nacks[0]->reason);
            }
        }
        while ((in = hub__recv(&sink, ZMQ_DONTWAIT))) {
            if (in->body_case == LTH__V1__FRAME__BODY_DELIVERIES) {
                for (size_t i = 0; i < in->deliveries->n_items; i++) {
                    f->delivered++;
                    settle[n_settle++] = in->deliveries->items[i]->hub_seq;
                    if (n_settle == 1024)
                        hub__send_settle(&sink, settle, &n_settle);
                }
            }
        }
        hub__send_settle(&sink, settle, &n_settle);
        hub__heartbeat(&flood);
        hub__heartbeat(&sink);
    }
    for (size_t i = 0; i < 256; i++)
        free(proto[i].data);
    bench_peer_close(&flood);
    bench_peer_close(&sink);
    return NULL;
}

void bench_hub_fair(bool flood, bench_result_t *out)
{
    static bench_hubenv_t env;
    static bool env_ready;
    static int run_no;
    char err[512];
    if (!env_ready) {
        char dir[PATH_MAX + 16];
        snprintf(dir, sizeof dir, "%s/fair", bench_opts.workdir);
        if (bench_hubenv_init(&env, dir, 2, err, sizeof err) != 0) {
            bench_result_na(out, "cannot make keys: %s", err);
            return;
        }
        env_ready = true;
    }
    /* The hub as shipped: signatures and audit off as in the other
     * request/reply rows, but with hubd's default rate limits (hubbench
     * turns them off for its peak rows). */
    char data[64];
    snprintf(data, sizeof data, "data-%d", ++run_no);
    if (bench_hubenv_start(&env, data, "require_signatures = no\naudit = no\nrate_msgs = 20000\n"
                           "rate_bytes = 67108864\n",
                           err, sizeof err) != 0) {
        bench_result_na(out, "%s", err);
        return;
    }
    hub__flood_t f = {.env = &env};
    pthread_t flooder;
    bool started = flood && pthread_create(&flooder, NULL, hub__flood, &f) == 0;
    if (started)
        tkp_sleep_ms(500); /* the flood is on before the measured window */
    hub_case_t c = {HUB_CASE_REQREPLY, HUB_PEER_RAW, false, false, 1, 0};
    uint64_t t0 = bench_now_ns();
    bench_hub_drive(&env, &c, out);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    if (started) {
        atomic_store(&f.stop, 1);
        pthread_join(flooder, NULL);
        out->cpu_us = 0; /* hubd's CPU went mostly to the flood: not per honest request */
        if (f.err[0])
            bench_result_na(out, "flooder: %s", f.err);
        else {
            /* hubd cuts a member off that keeps flooding (hub_flood.c). */
            char *log = tkp_read_file(env.log);
            bool cut = log && strstr(log, "member flooding: disconnected");
            free(log);
            snprintf(out->note, sizeof out->note,
                     "flood: %.0f events/s sent, %.0f/s accepted, %.0f/s refused (%.60s)%s",
                     (double)f.sent / secs, (double)f.acked / secs, (double)f.refused / secs,
                     f.first_refusal[0] ? f.first_refusal : "none",
                     cut ? "; the flooder was cut off by hubd" : "");
        }
    }
    if (!bench_alive(env.hubd)) {
        out->na = true;
        snprintf(out->note, sizeof out->note, "hubd died during the run; see %s", env.log);
        env.hubd = 0;
    }
    bench_hubenv_stop(&env);
    if (!bench_opts.verbose) {
        char path[PATH_MAX + 80];
        snprintf(path, sizeof path, "%s/%s", env.dir, data);
        tkp_rmrf(path);
    }
}
