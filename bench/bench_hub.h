/* bench_hub — the pieces of the hub's cases that --scale reuses: a directory
 * of keys and a hubd configuration, a running hubd, and a raw protocol peer
 * (one CURVE DEALER speaking proto/README.md directly, so that a single
 * thread can keep a thousand requests in flight).
 *
 * Ownership: bench_hubenv_t and bench_peer_t are the caller's; their
 * destroy/close functions release what open/start made.
 */
#ifndef BENCH_HUB_H
#define BENCH_HUB_H

#include "bench.h"
#include "hub_keys.h"
#include "hub_sign.h"
#include "hub_wire.h"

#include <zmq.h>

#define BENCH_HUB_ID        "VN/GOV/BENCH/HUB"
#define BENCH_CLIENT_ID     "VN/GOV/BENCH/CLIENT"
#define BENCH_SERVER_ID     "VN/GOV/BENCH/SERVER"
#define BENCH_ECHO_SERVICE  "bench.echo/v1"
#define BENCH_EVENT_SERVICE "bench.event/v1"

typedef struct {
    char dir[PATH_MAX]; /* secrets/ keys/ and the runs' data dirs */
    char hub_pub[PATH_MAX];
    char hub_secret[PATH_MAX];
    char conf[PATH_MAX];
    char log[PATH_MAX];
    char endpoint[256];
    pid_t hubd;
    /* Two-node rows: node B (cluster = on, same store and keys), which the
     * receiver connects to; the sender stays on `endpoint` (node A). */
    pid_t hubd_b;
    char endpoint_b[256];
    bench_pg_t *pg; /* the store's PostgreSQL cluster, measured with hubd; NULL: LMDB */
} bench_hubenv_t;

/* Makes dir with the hub's, the client's and the server's keys, plus
 * `extra` members named VN/GOV/SCALE/M<n> (n from 1). */
int bench_hubenv_init(bench_hubenv_t *env, const char *dir, int extra, char *err, size_t err_size);
void bench_hubenv_secret_path(const bench_hubenv_t *env, const char *member_id, char *out);
void bench_hubenv_public_path(const bench_hubenv_t *env, const char *member_id, char *out);
/* Writes hubd.conf with a fresh data directory `data_name` and extra lines,
 * starts hubd and waits for its ready file. */
int bench_hubenv_start(bench_hubenv_t *env, const char *data_name, const char *extra_conf,
                       char *err, size_t err_size);
void bench_hubenv_stop(bench_hubenv_t *env);

typedef struct {
    void *ctx, *sock;
    hub_keypair_t key;            /* own keys, secrets included (to sign) */
    uint8_t peer_sign_public[32]; /* the other member's, to verify */
    uint32_t heartbeat_ms;
    uint64_t last_tx_ns;
    uint32_t id_prefix;
    uint64_t id_next;
    bool sign, verify;
    uint64_t frames_out, envelopes_out;
    /* Digests of the envelopes made since the last Batch, in order: a Batch
     * is signed as the SDK does it, HUB_BENCH_SIGN_BATCH envelopes per
     * signature. */
    uint8_t (*digests)[HUB_DIGEST_LEN];
    size_t n_digests, cap_digests;
    hub_batch_proof_t *proofs; /* HUB_BENCH_SIGN_BATCH of them */
    hub_sigcache_t sigcache;   /* batch signatures already verified */
    /* The last frame received, read in place as the SDK reads it: the frame
     * and its envelopes live in `in` and `arena` until the next receive. */
    zmq_msg_t in;
    bool in_open;
    hub_arena_t arena;
} bench_peer_t;

#define HUB_BENCH_SIGN_BATCH 256 /* as the SDK (adp.c ADP__SIGN_BATCH) */

/* Connects as member_id (CURVE), says Hello offering `service` (may be
 * NULL) and waits for Welcome. */
int bench_peer_open(bench_peer_t *p, const bench_hubenv_t *env, const char *member_id,
                    const char *service, char *err, size_t err_size);
void bench_peer_close(bench_peer_t *p);

/* Runs one case against the hubd of env, which must be running. */
void bench_hub_drive(const bench_hubenv_t *env, const hub_case_t *c, bench_result_t *out);

#endif
