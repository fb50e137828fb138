/* bench — what the pieces of hubbench share: clocks, latency samples and
 * their percentiles, the result of one measured case, child processes,
 * files, and the knobs every case reads (duration, payload size).
 *
 * A case runs its peers in threads of this process (one ZeroMQ context or
 * client connection per thread) and its middle (hubd, the raw relay,
 * nats-server) as a child process, so that every row pays for the same
 * process boundaries. Each case is closed-loop: a client keeps `inflight`
 * messages outstanding and sends a new one as each completes; latency is
 * send -> completion, taken from a send timestamp carried in the payload.
 *
 * Ownership: bench_lat_t owns its sample array (bench_lat_free); results are
 * plain values. Errors: functions return 0 or -1 with a sentence in a
 * caller's buffer, or set result->na with the reason a case could not run.
 */
#ifndef BENCH_H
#define BENCH_H

#include "tkproc.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_PAYLOAD 1024 /* bytes: the 1 KiB */
#define BENCH_HDR     16   /* payload bytes 0..7: send time (ns, monotonic); 8..15: sequence */

/* ------------------------------------------------------------------------ */
/* Settings shared by every case                                             */

typedef struct {
    double warmup_s;        /* traffic before the measured window */
    double measure_s;       /* the measured window */
    double drain_s;         /* how long to wait for what is still in flight */
    char workdir[PATH_MAX]; /* per-run scratch directory (keys, data, logs) */
    char bindir[PATH_MAX];  /* where hubd and rawhop are (next to hubbench) */
    char srcdir[PATH_MAX];  /* the source tree (deploy/hubd.conf.example) */
    bool verbose;
} bench_opts_t;

extern bench_opts_t bench_opts;

/* ------------------------------------------------------------------------ */
/* Time                                                                      */

uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC: comparable across threads and processes */

/* ------------------------------------------------------------------------ */
/* Latency samples                                                           */

typedef struct {
    uint32_t *ns; /* one sample per completed message, nanoseconds (capped at ~4.29 s) */
    size_t n, cap;
} bench_lat_t;

void bench_lat_add(bench_lat_t *lat, uint64_t ns);
/* Sorts in place; p is 0..100. Returns microseconds (0 when empty). */
double bench_lat_pct(bench_lat_t *lat, double p);
void bench_lat_free(bench_lat_t *lat);

/* The phase of a run, shared by its threads. A client stamps its sends and
 * records completions seen while phase == MEASURE; throughput is the count
 * of those over the window's length. */
enum { BENCH_WARMUP = 0, BENCH_MEASURE = 1, BENCH_DRAIN = 2, BENCH_STOP = 3 };

typedef struct {
    atomic_int phase;
    uint64_t t0_ns, t1_ns;    /* the measured window, set by bench_window_run */
    atomic_ullong completed;  /* completions inside the window */
    atomic_ullong errors;     /* NACKs, timeouts, protocol surprises */
    atomic_llong outstanding; /* sent and not yet completed (for one-way cases) */
    char first_error[256];    /* the first error's sentence (set once) */
    atomic_int error_set;
    /* The middle (hubd, rawhop, nats-server, the RabbitMQ node, the
     * postmaster): its CPU time over the window, with its descendants'. */
    pid_t cpu_pid;                 /* 0: not measured */
    pid_t cpu_pid_b;               /* a second middle process summed with cpu_pid (0: none):
                                      the second hubd node of a two-node row */
    int envelopes_per_msg;         /* what the middle handles per completion (2 for req/reply) */
    unsigned long long cpu0, cpu1; /* clock ticks at t0 and t1 */
    bool cpu_main;                 /* also measure cpu_pid's main thread (hubd's loop) */
    unsigned long long main0, main1;
    /* A second process tree measured the same way (0: none): the
     * PostgreSQL cluster behind a hub row. */
    pid_t cpu2_pid;
    unsigned long long cpu2_0, cpu2_1;
    /* This process over the window (the clients' threads and their libzmq
     * I/O threads: the main thread sleeps), CLOCK_PROCESS_CPUTIME_ID. */
    uint64_t self0_ns, self1_ns;
    /* Called (when set) as the measured window opens (which = 0) and
     * closes (1). */
    void (*edge)(void *ctx, int which);
    void *edge_ctx;
} bench_window_t;

/* cpu_pid and envelopes_per_msg start at 0 and 1: set them before the run
 * to have the middle's CPU per message measured. */
void bench_window_init(bench_window_t *w);
/* Runs warmup, measure and drain on the calling thread's clock while the
 * case's threads do the work; `all_done` (may be NULL) ends the drain early
 * when it returns true. */
void bench_window_run(bench_window_t *w, bool (*all_done)(void *), void *user);
void bench_window_error(bench_window_t *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
double bench_window_seconds(const bench_window_t *w);
/* A message sent at sent_ns (bench_payload_sent_ns) completed: one fewer
 * outstanding, and its latency and count taken while measuring. True until
 * the drain, when a closed loop sends another in its place. */
bool bench_window_complete(bench_window_t *w, bench_lat_t *lat, uint64_t sent_ns);

/* Fills payload[0..len) with the send time and a sequence number, rest 'x'. */
void bench_payload_fill(uint8_t *payload, size_t len, uint64_t seq);
/* The send time a payload carries (0 if too short). */
uint64_t bench_payload_sent_ns(const uint8_t *payload, size_t len);

/* ------------------------------------------------------------------------ */
/* Results                                                                   */

typedef struct {
    bool na;     /* could not run: see note */
    double rate; /* completed messages per second */
    double p50_us, p99_us, p999_us;
    uint64_t completed; /* in the window */
    uint64_t errors;
    double frames_in_per_msg; /* hub cases: ZeroMQ messages the hub read per envelope (batching) */
    double cpu_us; /* the middle's CPU (user + system) per completed message, µs; 0 = n/a */
    int envelopes_per_msg; /* envelopes the middle handles per completed message (cpu_us / this
                              is per envelope) */
    double main_share;     /* hub rows: share of hubd's CPU on its main (loop) thread; 0 = n/a */
    double cpu2_us;        /* cpu2_pid's CPU per completed message, µs; 0 = n/a */
    double clients_cpu_us; /* hubbench's own CPU (the clients) per completed message, µs */
    char note[512];
} bench_result_t;

/* Fills rate and percentiles from a finished window and its samples. */
void bench_result_from(bench_result_t *r, const bench_window_t *w, bench_lat_t *lat);
/* The end of a case that ran a middle process in its own directory: stops
 * pid, frees lat, and removes dir unless --keep (bench_opts.verbose). */
void bench_case_end(pid_t pid, bench_lat_t *lat, const char *dir);
void bench_result_na(bench_result_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------ */
/* Processes and files                                                       */

/* Starting, stopping and waiting for processes, and files: tkproc.h
 * (tests/support), shared with the tests. */
bool bench_alive(pid_t pid);
/* Runs argv and captures stdout+stderr (malloc'ed); returns the exit status or -1. */
int bench_capture(char *const argv[], char **output, int timeout_ms);
/* CPU time (user + system, clock ticks) of a process and its live
 * descendants, each with the children it has reaped: a multi-process
 * server's whole cost. 0 if pid is gone. */
unsigned long long bench_tree_ticks(pid_t pid);
/* CPU time (user + system, clock ticks) of one thread of pid; 0 if gone. */
unsigned long long bench_thread_ticks(pid_t pid, pid_t tid);
/* Microseconds per clock tick of /proc/<pid>/stat. */
double bench_tick_us(void);
/* VmRSS of a process in KiB, or 0. */
uint64_t bench_rss_kib(pid_t pid);
/* Raises this process's open-file soft limit to the hard limit; returns it. */
long bench_raise_nofile(void);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int bench_free_port(void);

/* CPU time of the machine and of this process tree (itself, its threads and
 * the children it has waited for), in clock ticks. */
typedef struct {
    unsigned long long busy, total, ours;
} bench_cpu_t;

void bench_cpu_snap(bench_cpu_t *s);
/* The share (0..1) of the machine's CPU that other programs used between a
 * and b: how far to trust the figures of a run. */
double bench_cpu_others(const bench_cpu_t *a, const bench_cpu_t *b);

/* ------------------------------------------------------------------------ */
/* The cases                                                                 */

/* Raw libzmq hop: client DEALER -> relay ROUTER (rawhop process) -> server
 * DEALER and back, one ZeroMQ frame per message, CURVE on both hops or none. */
void bench_raw_hop(bool curve, int inflight, bench_result_t *out);

/* NATS request/reply through a nats-server child, plain or TLS. */
void bench_nats(bool tls, int inflight, bench_result_t *out);
/* NATS JetStream (file store) publish; acks awaited per `batch` messages. */
void bench_jetstream(int batch, bench_result_t *out);

/* The durable brokers (bench_durable.c): a private RabbitMQ node with a
 * quorum queue (persistent messages, publisher confirms, manual acks) and a
 * PostgreSQL FOR UPDATE SKIP LOCKED queue (100 rows per commit), each
 * producer -> broker -> consumer with `inflight` messages end to end. */
void bench_rabbitmq(int inflight, bench_result_t *out);
void bench_pgqueue(int inflight, bench_result_t *out);
/* A private PostgreSQL cluster in the work directory (initdb; 127.0.0.1 on
 * a free port; fsync on; user "bench", trust), as the queue row and the
 * hub's PostgreSQL-store rows use it. start: 0, or -1 with err saying why
 * (a whole "n/a (...)" note). stop removes it (kept with --keep). */
typedef struct {
    char dir[PATH_MAX];
    pid_t pid;
    int port;
    void *probe;          /* the probe's connection (PGconn) */
    long long lsn0, lsn1; /* WAL positions at the window's edges; -1: unknown */
} bench_pg_t;
int bench_pg_start(bench_pg_t *pg, char *err, size_t err_size);
void bench_pg_stop(bench_pg_t *pg);
/* What the cluster did for a hub row over its measured window: open a
 * probe connection before the run, pass bench_pg_probe_edge as the
 * window's edge (ctx: the bench_pg_t), then append "PostgreSQL: CPU µs/msg,
 * WAL bytes/msg, commits/s, msgs/commit" to a note (commits counted by
 * pg_waldump in the window's WAL). Stop closes the probe. */
void bench_pg_probe_open(bench_pg_t *pg);
void bench_pg_probe_edge(void *pg, int which);
void bench_pg_probe_note(const bench_pg_t *pg, const bench_result_t *r, double secs, char *note,
                         size_t size);

/* write(1 KiB) + fdatasync in a loop, in the work directory's disk. */
void bench_fsync(bench_result_t *out);
/* 128 KiB frames sealed in a loop by CURVE's cipher (aes false) or TLS's
 * AES-128-GCM (true); a message is one KiB (bench_cipher.c). */
void bench_cipher(bool aes, bench_result_t *out);

/* The hub's cases. */
typedef enum {
    HUB_CASE_REQREPLY, /* request/reply */
    HUB_CASE_EVENTS,   /* one-way events, delivered end to end */
} hub_case_kind_t;

typedef enum {
    HUB_PEER_RAW, /* our pipelined protocol client / responder (proto/README.md) */
    HUB_PEER_SDK, /* adapters/sdk: adp_request / adp_offer / adp_post_event */
} hub_peer_kind_t;

typedef struct {
    hub_case_kind_t kind;
    hub_peer_kind_t peers;
    bool durable;   /* DELIVERY_QUEUED (stored, ACKed after commit) vs ONLINE_ONLY */
    bool full_path; /* signed by the sender, verified by hub and receiver, audited */
    int inflight;
    int max_batch;  /* raw client: envelopes per Batch frame at most (0 = as many as fit the window)
                     */
    bool pg_store;  /* hubd's store on a private PostgreSQL (store = postgresql) */
    bool two_nodes; /* with pg_store: two hubd nodes (cluster = on) on that store, the
                       sender on node A, the receiver on node B */
} hub_case_t;

/* What this hubd offers for the full path, found at run time. */
typedef struct {
    bool signatures;          /* hubd verifies envelope signatures */
    bool audit;               /* hubd writes the audit log */
    char sig_on_conf[128];    /* config lines that turn signature verification on */
    char sig_off_conf[128];   /* ... and off ("" = cannot be turned off) */
    char audit_on_conf[128];  /* config lines for audit on */
    char audit_off_conf[128]; /* config lines for audit off ("" = cannot be turned off) */
    char why_not[256];        /* when either is missing */
} hub_features_t;

void bench_hub_features(hub_features_t *out);
void bench_hub(const hub_case_t *c, const hub_features_t *features, bench_result_t *out);

/* Fairness: request/reply, one in flight, online-only, between two honest
 * members, alone or while a third member floods durable events at a
 * fourth as fast as the hub answers (hubd's default rate limits on). */
void bench_hub_fair(bool flood, bench_result_t *out);

/* --sustain SECONDS: the deployed full path at 80% of its measured maximum;
 * prints and writes its table; returns 0 (pass), 1 (fail) or 2 (cannot run). */
int bench_sustain(int seconds, const char *out_path, const char *command);

/* --scale N: N members connected by a few processes; prints and writes its table. */
int bench_scale(int members, int runs, const char *out_path, const char *command);
/* The member-holding child process of --scale (hubbench --hold ...). */
int bench_hold_main(int argc, char **argv);

#endif
