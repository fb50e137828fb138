/* storebench — the cost of hub_store_append() and hub_store_ack() alone,
 * without hubd, sockets or crypto: what the per-member counters (and the
 * quota checks) add to a group commit.
 *
 *   storebench [--dir DIR] [--batch N] [--rounds N] [--senders N] [--receivers N] [--settled]
 *
 * Each round appends one call of --batch messages (1 KiB envelopes, senders
 * and receivers taken in turn) and then acknowledges them, one ack call per
 * receiver, as the hub's worker does. It runs the rounds twice: without
 * quotas ("plain", what hubd does with no quota configured) and with sender
 * and receiver quotas on every message and a 10% reserve ("quota"). Point
 * --dir at a tmpfs (e.g. /dev/shm) to leave fsync out and see the CPU cost;
 * on a disk, fsync dominates. --settled: every message is marked settled
 * (delivered and settled before its commit, as most of hubd's durable
 * events are), so that append writes only de-duplication records, with a
 * digest each; no ack pass.
 *
 * Compiled with -DSTOREBENCH_BASELINE it uses only what the store had
 * before quotas, so that it can be built against that version of
 * hub_store.c (now hub_store_*.c) for a before/after figure (the "quota" pass
 * is skipped). */
#include "hub_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall-clock and CPU seconds of one kind of call. On a shared machine the
 * CPU time is the steadier figure: waiting for a core does not count. */
typedef struct {
    double wall, cpu;
} spent_t;

static void spent_start(spent_t *t0)
{
    t0->wall = clock_s(CLOCK_MONOTONIC);
    t0->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static void spent_add(spent_t *sum, const spent_t *t0)
{
    sum->wall += clock_s(CLOCK_MONOTONIC) - t0->wall;
    sum->cpu += clock_s(CLOCK_THREAD_CPUTIME_ID) - t0->cpu;
}

static void rm_store(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
}

typedef struct {
    int batch, rounds, senders, receivers;
    bool settled;
    const char *dir;
} opts_t;

/* Runs the rounds; returns 0 and the time spent in append and ack. */
static int run(const opts_t *o, int with_quota, spent_t *append_s, spent_t *ack_s)
{
    rm_store(o->dir);
    hub_store_limits_t limits = {.max_bytes = 4ull << 30, .dedup_window_us = 600000000ull};
#ifndef STOREBENCH_BASELINE
    if (with_quota)
        limits.reserve_percent = 10;
#else
    (void)with_quota;
#endif
    hub_store_t *store = NULL;
    char err[512];
    if (hub_store_open(o->dir, &limits, &store, err, sizeof err) != 0) {
        fprintf(stderr, "storebench: %s\n", err);
        return 1;
    }
    static uint8_t envelope[1024];
    memset(envelope, 'e', sizeof envelope);
    hub_store_msg_t *m = calloc((size_t)o->batch, sizeof *m);
    hub_store_outcome_t *out = calloc((size_t)o->batch, sizeof *out);
    uint64_t *seqs = calloc((size_t)o->batch, sizeof *seqs);
    if (!m || !out || !seqs) {
        free(seqs);
        free(out);
        free(m);
        hub_store_close(&store);
        return 1;
    }
    *append_s = *ack_s = (spent_t){0, 0};
    int rc = 0;
    for (int r = 0; r < o->rounds && rc == 0; r++) {
        for (int i = 0; i < o->batch; i++) {
            memset(&m[i], 0, sizeof m[i]);
            snprintf(m[i].message_id, sizeof m[i].message_id, "%08d-%08d", r, i);
            snprintf(m[i].sender, sizeof m[i].sender, "VN/GOV/SENDER-%03d/SYS", i % o->senders);
            snprintf(m[i].receiver, sizeof m[i].receiver, "VN/GOV/RECEIVER-%03d/SYS",
                     i % o->receivers);
            snprintf(m[i].service, sizeof m[i].service, "dossier.status/v1");
            m[i].envelope = envelope;
            m[i].envelope_len = sizeof envelope;
#ifndef STOREBENCH_BASELINE
            if (o->settled) {
                m[i].settled = true;
                memset(m[i].digest, 0x5a, sizeof m[i].digest);
                memcpy(m[i].digest, &i, sizeof i);
            }
            if (with_quota)
                m[i].quota = (hub_store_quota_t){1000000, 1ull << 40, 1000000, 1ull << 40};
#endif
        }
        spent_t t0;
        spent_start(&t0);
        rc = hub_store_append(store, m, (size_t)o->batch, out);
        spent_add(append_s, &t0);
        for (int i = 0; rc == 0 && i < o->batch; i++)
            if (out[i] != HUB_STORE_OK) {
                fprintf(stderr, "storebench: message %d of round %d refused (%d)\n", i, r,
                        (int)out[i]);
                rc = 1;
            }
        spent_start(&t0);
        for (int q = 0; rc == 0 && !o->settled && q < o->receivers; q++) {
            size_t n = 0;
            for (int i = q; i < o->batch; i += o->receivers)
                seqs[n++] = m[i].seq;
            rc = hub_store_ack(store, m[q].receiver, seqs, n);
        }
        spent_add(ack_s, &t0);
    }
    free(seqs);
    free(out);
    free(m);
    hub_store_close(&store);
    rm_store(o->dir);
    return rc;
}

static int arg_int(int argc, char **argv, int *i, int *out)
{
    if (*i + 1 >= argc || (*out = atoi(argv[*i + 1])) <= 0)
        return -1;
    (*i)++;
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o = {.batch = 1000, .rounds = 200, .senders = 20, .receivers = 10, .dir = NULL};
    char tmp[] = "/tmp/storebench.XXXXXX";
    for (int i = 1; i < argc; i++) {
        int bad = 0;
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            o.dir = argv[++i];
        else if (!strcmp(argv[i], "--batch"))
            bad = arg_int(argc, argv, &i, &o.batch);
        else if (!strcmp(argv[i], "--rounds"))
            bad = arg_int(argc, argv, &i, &o.rounds);
        else if (!strcmp(argv[i], "--senders"))
            bad = arg_int(argc, argv, &i, &o.senders);
        else if (!strcmp(argv[i], "--receivers"))
            bad = arg_int(argc, argv, &i, &o.receivers);
        else if (!strcmp(argv[i], "--settled"))
            o.settled = true;
        else
            bad = -1;
        if (bad) {
            fprintf(stderr, "usage: storebench [--dir DIR] [--batch N] [--rounds N] "
                            "[--senders N] [--receivers N] [--settled]\n");
            return 2;
        }
    }
    if (!o.dir && !(o.dir = mkdtemp(tmp))) {
        perror("storebench: mkdtemp");
        return 1;
    }
    if (o.receivers > o.batch)
        o.receivers = o.batch;
    printf("storebench: %d rounds of %d x 1 KiB messages, %d senders, %d receivers, in %s\n",
           o.rounds, o.batch, o.senders, o.receivers, o.dir);
#ifdef STOREBENCH_BASELINE
    const int passes = 1;
#else
    const int passes = 2;
#endif
    for (int quota = 0; quota < passes; quota++) {
        spent_t append_s, ack_s;
        if (run(&o, quota, &append_s, &ack_s) != 0)
            return 1;
        double msgs = (double)o.rounds * o.batch;
        printf("%-6s append %8.0f msgs/s, %7.1f us CPU per call (%7.1f us wall)   "
               "ack %8.0f msgs/s, %7.1f us CPU per call\n",
               quota ? "quota" : "plain", msgs / append_s.wall, append_s.cpu / o.rounds * 1e6,
               append_s.wall / o.rounds * 1e6, msgs / ack_s.wall,
               ack_s.cpu / o.rounds / o.receivers * 1e6);
    }
    if (!strncmp(o.dir, "/tmp/storebench.", 16))
        rmdir(o.dir);
    return 0;
}
