/* hubbench --sustain SECONDS (issue 21, item 5): the deployed full path
 * (SDK at both ends; signed by the sender, verified by hub and receiver;
 * durable; audited) held at 80% of the maximum it has just measured (in
 * steady state: see step 3 of bench_sustain), for
 * SECONDS after a warm-up, reported per window (a minute, or 10 s when
 * SECONDS < 120): delivered rate, latency p50/p99/max (post -> delivery),
 * how many deliveries took over 50 ms (the column "> 50 ms": p99 hides
 * whether one stall or many made it), hubd's RSS, the store's size on disk
 * (data_dir less the audit log, which grows by design and is shown apart)
 * and hubd's CPU per message.
 *
 * It fails (exit 1) when
 *   - (runs of 120 s or more, judged per minute) the p99 of any window
 *     exceeds 1.5x the first window's (windows where
 *     other programs took more than half the machine's CPU are shown but
 *     not judged, and the first judged window is the reference),
 *   - hubd's mean RSS over the second half exceeds the first half's peak
 *     by more than SUSTAIN__RSS_TOL_PCT % + SUSTAIN__RSS_TOL_MIB MiB,
 *   - the store keeps growing: its last-window size exceeds the largest of
 *     the first half of the run by more than SUSTAIN__STORE_TOL_PCT % +
 *     SUSTAIN__STORE_TOL_MIB MiB,
 * and reports, without judging, the share of the offered load carried per
 * window and the disk it takes per message (store and audit log).
 *
 * The store remembers accepted ids for dedup_window_ms (24 h by default), so
 * over a shorter run it can only grow: the run sets the window to a sixth of
 * its length (at least 10 s) and says so.
 *
 * For looking into stalls: HUBBENCH_SUSTAIN_STALLS (set) prints each stall
 * with its wall-clock time (to line it up with hubd's log or a trace), and
 * HUBBENCH_SUSTAIN_RATE=N holds N events/s instead of 80% of the maximum
 * (A/B runs of two builds at the same rate). */
#include "bench_hub.h"

#include "adp.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SUSTAIN__LOAD 0.80     /* of the measured maximum */
#define SUSTAIN__INFLIGHT 1000 /* outstanding end to end at most, as the rows */
#define SUSTAIN__WARMUP_S 5
#define SUSTAIN__MAX_S 5 /* the steady-state maximum's measured window */
#define SUSTAIN__P99_TOL 1.5
#define SUSTAIN__RSS_TOL_PCT 10.0
#define SUSTAIN__RSS_TOL_MIB 16.0
#define SUSTAIN__STORE_TOL_PCT 10.0
#define SUSTAIN__STORE_TOL_MIB 8.0
#define SUSTAIN__MAX_WINDOWS 1024
#define SUSTAIN__BUSY 0.50 /* others' CPU share past which a window's p99 is not judged */
/* A delivery slower than this is counted as "stalled" in its window (the
 * column "> 50 ms"): p99 hides how many there were. */
#define SUSTAIN__STALL_NS 50000000ull

typedef struct {
    adp_client_t *sender, *receiver;
    _Atomic double rate; /* target, events per second; 0 = as fast as the cap allows */
    atomic_int stop;
    atomic_llong outstanding;
    atomic_ullong posted, delivered, errors, lagged_ms;
    pthread_mutex_t lock; /* guards lat and recording */
    bench_lat_t lat;      /* the current window's samples */
    bool recording;
    unsigned long long stalled; /* deliveries over SUSTAIN__STALL_NS in the current window */
    /* HUBBENCH_SUSTAIN_STALLS set: each stall (the first delivery over
     * SUSTAIN__STALL_NS after at least a second without one) is printed
     * with its wall-clock time, to line it up with hubd's log or a trace. */
    bool print_stalls;
    uint64_t last_stall_ns;
    char first_error[200];
} sustain__run_t;

typedef struct {
    double secs, rate, p50_us, p99_us, max_us;
    uint64_t rss_kib, anon_kib;
    double store_mib, audit_mib, cpu_us, others;
    unsigned long long errors, stalled;
} sustain__window_t;

/* Appends to buf, stopping at its end (a cut verdict, never an overrun). */
static void sustain__add(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sustain__add(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    if (*len + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < size ? *len + (size_t)n : size - 1;
}

static void sustain__error(sustain__run_t *s, const char *what)
{
    if (atomic_fetch_add(&s->errors, 1) == 0)
        snprintf(s->first_error, sizeof s->first_error, "%s", what);
}

static int sustain__on_event(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                             void *user)
{
    (void)client;
    (void)reply;
    sustain__run_t *s = user;
    uint64_t sent = bench_payload_sent_ns(msg->payload, msg->payload_len);
    uint64_t now = bench_now_ns();
    atomic_fetch_sub(&s->outstanding, 1);
    atomic_fetch_add(&s->delivered, 1);
    pthread_mutex_lock(&s->lock);
    if (s->recording && sent && sent < now) {
        bench_lat_add(&s->lat, now - sent);
        if (now - sent > SUSTAIN__STALL_NS) {
            s->stalled++;
            if (s->print_stalls && now - s->last_stall_ns > 1000000000ull) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                struct tm tm;
                gmtime_r(&ts.tv_sec, &tm);
                fprintf(stderr,
                        "stall: %02d:%02d:%02d.%03ld UTC, a delivery %.1f ms after its post\n",
                        tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                        (double)(now - sent) / 1e6);
            }
            s->last_stall_ns = now;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void *sustain__receiver(void *arg)
{
    sustain__run_t *s = arg;
    while (!atomic_load(&s->stop))
        adp_run(s->receiver, 50);
    return NULL;
}

/* Posts at the target rate (open loop, paced by the clock), never more than
 * SUSTAIN__INFLIGHT outstanding; time spent held back by that cap is
 * counted as lag, and a backlog of more than 100 ms is not made up later
 * (no burst after a stall). Rate 0: closed loop at the cap (the maximum). */
static void *sustain__sender(void *arg)
{
    sustain__run_t *s = arg;
    uint8_t payload[BENCH_PAYLOAD];
    memset(payload, 'x', sizeof payload);
    uint64_t seq = 0, t0 = bench_now_ns(), posted = 0;
    double rate = -1;
    while (!atomic_load(&s->stop)) {
        uint64_t now = bench_now_ns();
        if (atomic_load(&s->rate) != rate) {
            rate = atomic_load(&s->rate);
            t0 = now;
            posted = 0;
        }
        double due = rate > 0 ? (double)(now - t0) * rate / 1e9 : (double)UINT64_MAX;
        if (rate > 0 && due - (double)posted > rate * 0.1) {
            atomic_fetch_add(&s->lagged_ms, 1);
            posted = (uint64_t)(due - rate * 0.1);
        }
        while ((double)posted < due && atomic_load(&s->outstanding) < SUSTAIN__INFLIGHT) {
            bench_payload_fill(payload, sizeof payload, ++seq);
            if (adp_post_event(s->sender, BENCH_SERVER_ID, BENCH_EVENT_SERVICE,
                               "application/octet-stream", payload, sizeof payload, 0, NULL) != 0) {
                sustain__error(s, adp_last_error(s->sender));
                break;
            }
            atomic_fetch_add(&s->outstanding, 1);
            atomic_fetch_add(&s->posted, 1);
            posted++;
        }
        adp_run(s->sender, 1);
    }
    return NULL;
}

/* Bytes on disk under dir; the audit/ directory's go to *audit. */
static void sustain__du(const char *dir, bool in_audit, double *store, double *audit)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            sustain__du(path, in_audit || !strcmp(de->d_name, "audit"), store, audit);
        else
            *(in_audit ? audit : store) += (double)st.st_blocks * 512.0;
    }
    if (d)
        closedir(d);
}

static uint64_t sustain__anon_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %llu kB", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static double sustain__max_of(const sustain__window_t *w, int from, int to, size_t offset)
{
    double m = 0;
    for (int i = from; i < to; i++) {
        double v = *(const double *)((const char *)&w[i] + offset);
        m = v > m ? v : m;
    }
    return m;
}

int bench_sustain(int seconds, const char *out_path, const char *command)
{
    hub_features_t features;
    bench_hub_features(&features);
    if (!features.signatures || !features.audit) {
        fprintf(stderr, "hubbench --sustain: the full path cannot run: %s\n", features.why_not);
        return 2;
    }
    int window_s = seconds < 120 ? 10 : 60;
    int n_windows = (seconds + window_s - 1) / window_s;
    if (n_windows > SUSTAIN__MAX_WINDOWS)
        n_windows = SUSTAIN__MAX_WINDOWS;

    /* 1. The maximum of the deployed full path, as its hubbench row. */
    hub_case_t max_case = {HUB_CASE_EVENTS, HUB_PEER_SDK, true, true, SUSTAIN__INFLIGHT, 0};
    bench_result_t max;
    printf("hubbench --sustain %d: measuring the deployed full path's maximum (%.1f s)...\n",
           seconds, bench_opts.measure_s);
    fflush(stdout);
    bench_hub(&max_case, &features, &max);
    if (max.na || max.rate <= 0) {
        fprintf(stderr, "hubbench --sustain: could not measure the maximum: %s\n", max.note);
        return 2;
    }
    printf("fresh-store maximum (as the row, %.1f s): %.0f events/s (p99 %.0f µs, hubd %.1f µs "
           "CPU/msg)\n",
           bench_opts.measure_s, max.rate, max.p99_us, max.cpu_us);

    /* 2. A fresh hubd with the full path on, and the two SDK members. */
    bench_hubenv_t env;
    char err[512], dir[PATH_MAX + 16], conf[512], data[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/sustain", bench_opts.workdir);
    /* The store remembers every accepted id for dedup_window_ms (24 h by
     * default): over a run shorter than that it can only grow. A window of a
     * sixth of the run (at least 10 s) lets it reach its steady state by
     * mid-run, which is what "bounded" can be judged on; the growth per
     * message before the first prune projects the default's size. */
    unsigned dedup_ms = (unsigned)seconds * 1000u / 6u;
    dedup_ms = dedup_ms < 10000u ? 10000u : dedup_ms > 60000u ? 60000u : dedup_ms;
    /* The store holds the window's ids as well as the queue: at the full
     * path's rate here (80,000 events/s and more) a 60 s window is about 5
     * million ids, near max_store_bytes' default of 1 GiB, and a run that
     * reached it was refused with STORE_FULL before any id aged out. The
     * run is about time, not about that limit: 8 GiB. */
    snprintf(conf, sizeof conf, "%s%sdedup_window_ms = %u\nmax_store_bytes = %llu\n",
             features.sig_on_conf, features.audit_on_conf, dedup_ms, 8ull << 30);
    if (bench_hubenv_init(&env, dir, 0, err, sizeof err) != 0 ||
        bench_hubenv_start(&env, "data", conf, err, sizeof err) != 0) {
        fprintf(stderr, "hubbench --sustain: %s\n", err);
        return 2;
    }
    printf("hubd with the full path on and dedup_window_ms = %u (see bench_sustain.c)\n", dedup_ms);
    fflush(stdout);
    snprintf(data, sizeof data, "%s/data", dir);
    sustain__run_t *s = calloc(1, sizeof *s);
    sustain__window_t *w = calloc((size_t)n_windows, sizeof *w);
    int rc = 2;
    if (!s || !w) {
        free(s);
        free(w);
        bench_hubenv_stop(&env);
        return 2;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->print_stalls = getenv("HUBBENCH_SUSTAIN_STALLS") != NULL;
    atomic_init(&s->rate, 0.0);
    double target = 0;
    char secret[PATH_MAX];
    bench_hubenv_secret_path(&env, BENCH_SERVER_ID, secret);
    adp_config_t rcfg = {env.endpoint, env.hub_pub, secret, 10000, "hubbench-sustain", NULL};
    if (adp_connect(&rcfg, &s->receiver, err, sizeof err) != 0 ||
        adp_offer(s->receiver, BENCH_EVENT_SERVICE, sustain__on_event, s) != 0) {
        fprintf(stderr, "hubbench --sustain: receiver: %s\n", err);
        goto out;
    }
    adp_run(s->receiver, 50);
    char csecret[PATH_MAX];
    bench_hubenv_secret_path(&env, BENCH_CLIENT_ID, csecret);
    adp_config_t scfg = {env.endpoint, env.hub_pub, csecret, 10000, "hubbench-sustain", NULL};
    if (adp_connect(&scfg, &s->sender, err, sizeof err) != 0) {
        fprintf(stderr, "hubbench --sustain: sender: %s\n", err);
        goto out;
    }
    pthread_t receiver, sender;
    pthread_create(&receiver, NULL, sustain__receiver, s);
    pthread_create(&sender, NULL, sustain__sender, s);

    /* 3. The steady-state maximum: the fresh-store figure overstates what
     * the hub sustains, because once ids age out of the de-duplication
     * window every commit also prunes them (a cost a deployment reaches
     * after dedup_window_ms, 24 h by default). So the same hubd first runs
     * as fast as the in-flight cap allows for two windows + the 10 s prune
     * cadence + 2 s, and its rate over the next SUSTAIN__MAX_S seconds is
     * the maximum held at 80%. Two windows, not one: just after the first,
     * the ids pruned were accepted at the fresh store's faster rate, and
     * the maximum measured then is too low. */
    int fill_ms = 2 * (int)dedup_ms + 12000;
    printf("running at the cap for %d s (ids age out and are pruned), then measuring the "
           "steady-state maximum for %d s...\n",
           fill_ms / 1000, SUSTAIN__MAX_S);
    fflush(stdout);
    /* Store bytes per message while no id has aged out yet: what the
     * de-duplication window costs per message (projected to 24 h below). */
    double fill_store0 = 0, fill_audit0 = 0, fill_store1 = 0, fill_audit1 = 0;
    sustain__du(data, false, &fill_store0, &fill_audit0);
    unsigned long long fill_d0 = atomic_load(&s->delivered);
    tkp_sleep_ms((int)dedup_ms * 8 / 10);
    sustain__du(data, false, &fill_store1, &fill_audit1);
    unsigned long long fill_d1 = atomic_load(&s->delivered);
    double store_per_msg =
        fill_d1 > fill_d0 ? (fill_store1 - fill_store0) / (double)(fill_d1 - fill_d0) : 0;
    tkp_sleep_ms(fill_ms - (int)dedup_ms * 8 / 10);
    unsigned long long max_d0 = atomic_load(&s->delivered);
    unsigned long long mc0 = bench_tree_ticks(env.hubd);
    uint64_t mt0 = bench_now_ns();
    tkp_sleep_ms(SUSTAIN__MAX_S * 1000);
    double steady =
        (double)(atomic_load(&s->delivered) - max_d0) / ((double)(bench_now_ns() - mt0) / 1e9);
    double steady_cpu = atomic_load(&s->delivered) > max_d0
                            ? (double)(bench_tree_ticks(env.hubd) - mc0) * bench_tick_us() /
                                  (double)(atomic_load(&s->delivered) - max_d0)
                            : 0;
    if (steady < 1) {
        fprintf(stderr,
                "hubbench --sustain: nothing was delivered while the steady-state maximum was "
                "measured; the refusals above and %s/hubd-data.log say why\n",
                dir);
        atomic_store(&s->stop, 1);
        pthread_join(sender, NULL);
        pthread_join(receiver, NULL);
        goto out;
    }
    target = steady * SUSTAIN__LOAD;
    /* HUBBENCH_SUSTAIN_RATE=N holds N events/s instead: A/B runs of two
     * builds at the same rate (the measured maximum moves with the build
     * and with the machine's other load). */
    const char *fixed = getenv("HUBBENCH_SUSTAIN_RATE");
    if (fixed && atof(fixed) > 0)
        target = atof(fixed);
    atomic_store(&s->rate, target > 1 ? target : 1);
    printf("steady-state maximum %.0f events/s (hubd %.1f µs CPU/msg, %.0f%% of the fresh-store "
           "figure); holding %.0f events/s (%.0f%%) for %d s in %d s windows after %d s of "
           "warm-up\n",
           steady, steady_cpu, 100 * steady / max.rate, target, 100 * target / steady,
           n_windows * window_s, window_s, SUSTAIN__WARMUP_S);
    fflush(stdout);

    /* 4. Warm-up at the held rate, then the windows. */
    tkp_sleep_ms(SUSTAIN__WARMUP_S * 1000);
    printf("\n| window | s | delivered/s | p50 µs | p99 µs | max µs | > 50 ms | hubd RSS MiB | "
           "anon MiB | store MiB | audit MiB | hubd CPU µs/msg | others' CPU |\n"
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
           "---: |\n");
    fflush(stdout);
    pthread_mutex_lock(&s->lock);
    s->recording = true;
    pthread_mutex_unlock(&s->lock);
    double store_start = 0, audit_start = 0;
    sustain__du(data, false, &store_start, &audit_start);
    unsigned long long delivered_start = atomic_load(&s->delivered);
    int done = 0;
    for (; done < n_windows && bench_alive(env.hubd); done++) {
        sustain__window_t *x = &w[done];
        uint64_t t0 = bench_now_ns();
        unsigned long long d0 = atomic_load(&s->delivered), e0 = atomic_load(&s->errors);
        unsigned long long c0 = bench_tree_ticks(env.hubd);
        bench_cpu_t m0, m1;
        bench_cpu_snap(&m0);
        tkp_sleep_ms(window_s * 1000);
        bench_lat_t lat;
        pthread_mutex_lock(&s->lock);
        lat = s->lat;
        memset(&s->lat, 0, sizeof s->lat);
        x->stalled = s->stalled;
        s->stalled = 0;
        pthread_mutex_unlock(&s->lock);
        unsigned long long d1 = atomic_load(&s->delivered);
        unsigned long long c1 = bench_tree_ticks(env.hubd);
        bench_cpu_snap(&m1);
        x->secs = (double)(bench_now_ns() - t0) / 1e9;
        x->rate = (double)(d1 - d0) / x->secs;
        x->p50_us = bench_lat_pct(&lat, 50);
        x->p99_us = bench_lat_pct(&lat, 99);
        x->max_us = bench_lat_pct(&lat, 100);
        bench_lat_free(&lat);
        x->rss_kib = bench_rss_kib(env.hubd);
        x->anon_kib = sustain__anon_kib(env.hubd);
        x->store_mib = x->audit_mib = 0;
        sustain__du(data, false, &x->store_mib, &x->audit_mib);
        x->store_mib /= 1048576.0;
        x->audit_mib /= 1048576.0;
        x->cpu_us =
            d1 > d0 && c1 >= c0 ? (double)(c1 - c0) * bench_tick_us() / (double)(d1 - d0) : 0;
        /* bench_cpu_others counts hubd (a child not yet waited for) as
         * another program: take it out. */
        double total = (double)(m1.total - m0.total);
        double others = (double)(m1.busy - m0.busy) - (double)(m1.ours - m0.ours) -
                        (c1 >= c0 ? (double)(c1 - c0) : 0);
        x->others = total > 0 && others > 0 ? others / total : 0;
        x->errors = atomic_load(&s->errors) - e0;
        printf(
            "| %d | %.0f | %.0f | %.0f | %.0f | %.0f | %llu | %.1f | %.1f | %.1f | %.1f | %.1f | "
            "%.0f%% |\n",
            done + 1, (double)(done + 1) * window_s, x->rate, x->p50_us, x->p99_us, x->max_us,
            x->stalled, (double)x->rss_kib / 1024.0, (double)x->anon_kib / 1024.0, x->store_mib,
            x->audit_mib, x->cpu_us, x->others * 100);
        fflush(stdout);
    }
    atomic_store(&s->stop, 1);
    pthread_join(sender, NULL);
    pthread_join(receiver, NULL);
    bool hubd_alive = bench_alive(env.hubd);

    /* 5. The verdict. */
    char verdict[4096] = "";
    size_t vl = 0;
    bool pass = hubd_alive && done == n_windows;
    if (!hubd_alive)
        sustain__add(verdict, sizeof verdict, &vl,
                     "- **FAIL**: hubd died during the run (see %s)\n", env.log);
    if (done > 0) {
        /* p99 against the first window, over the windows the machine's other
         * programs left it most of (on a shared machine a busy minute says
         * more about the neighbours than about the hub): a window where they
         * took more than SUSTAIN__BUSY of the CPU is shown, not judged, and
         * the first quiet-enough window is the reference. */
        int ref = -1, judged = 0, worst_i = -1;
        double worst = 0;
        for (int i = 0; i < done; i++) {
            if (w[i].others > SUSTAIN__BUSY)
                continue;
            if (ref < 0)
                ref = i;
            judged++;
            if (w[i].p99_us > worst) {
                worst = w[i].p99_us;
                worst_i = i;
            }
        }
        bool ok = ref < 0 || (w[ref].p99_us > 0 && worst <= SUSTAIN__P99_TOL * w[ref].p99_us);
        /* The rule is p99 per minute. Shorter runs (the suite's
         * 60 s) show 10 s windows for information: one stall of a few
         * hundred ms, the neighbours' or the hub's, is over 1% of a 10 s
         * window's messages and moves its p99 by itself. */
        bool judge_p99 = window_s >= 60;
        pass = pass && (ok || !judge_p99);
        if (!judge_p99)
            sustain__add(verdict, sizeof verdict, &vl,
                         "- p99 (information: judged per minute, in runs of 120 s or more): "
                         "worst 10 s window %.0f µs = %.2f× window %d's %.0f µs\n",
                         worst, ref >= 0 && w[ref].p99_us > 0 ? worst / w[ref].p99_us : 0, ref + 1,
                         ref >= 0 ? w[ref].p99_us : 0);
        else if (ref < 0)
            sustain__add(verdict, sizeof verdict, &vl,
                         "- p99 per window: not judged: other programs took more than "
                         "%.0f%% of the CPU in every window\n",
                         SUSTAIN__BUSY * 100);
        else
            sustain__add(
                verdict, sizeof verdict, &vl,
                "- p99 per window within %.1f× window %d's (%.0f µs), over the %d of %d windows "
                "where other programs took ≤ %.0f%% of the CPU: worst %.0f µs in window %d "
                "(%.2f×): %s\n",
                SUSTAIN__P99_TOL, ref + 1, w[ref].p99_us, judged, done, SUSTAIN__BUSY * 100, worst,
                worst_i + 1, w[ref].p99_us > 0 ? worst / w[ref].p99_us : 0,
                ok ? "pass" : "**FAIL**");
        /* Warm-up for memory ends when the store has reached its steady
         * state (ids age out of the de-duplication window): the first half
         * of the run. RSS includes the store's mapped pages, and it swings
         * with the allocator (widely under ASan, whose quarantine holds
         * freed blocks): the second half's mean is held against the first
         * half's peak, so that growth fails and swings do not. */
        int half = done / 2 > 0 ? done / 2 : 1;
        double rss0 = 0, rss_mean = 0;
        for (int i = 0; i < half; i++)
            rss0 = (double)w[i].rss_kib / 1024.0 > rss0 ? (double)w[i].rss_kib / 1024.0 : rss0;
        for (int i = half; i < done; i++)
            rss_mean += (double)w[i].rss_kib / 1024.0 / (double)(done - half);
        if (done <= half)
            rss_mean = rss0;
        double rss_limit = rss0 * (1 + SUSTAIN__RSS_TOL_PCT / 100) + SUSTAIN__RSS_TOL_MIB;
        ok = rss_mean <= rss_limit;
        pass = pass && ok;
        sustain__add(verdict, sizeof verdict, &vl,
                     "- hubd RSS flat after warm-up: mean of the second half %.1f MiB ≤ peak of "
                     "the first half %.1f MiB +%.0f%% + %.0f MiB = %.1f MiB: %s\n",
                     rss_mean, rss0, SUSTAIN__RSS_TOL_PCT, SUSTAIN__RSS_TOL_MIB, rss_limit,
                     ok ? "pass" : "**FAIL**");
        double early = sustain__max_of(w, 0, half, offsetof(sustain__window_t, store_mib));
        double last = w[done - 1].store_mib;
        double store_limit = early * (1 + SUSTAIN__STORE_TOL_PCT / 100) + SUSTAIN__STORE_TOL_MIB;
        ok = last <= store_limit;
        pass = pass && ok;
        sustain__add(verdict, sizeof verdict, &vl,
                     "- store bounded: last window %.1f MiB ≤ largest of the first half "
                     "(%.1f MiB) +%.0f%% + %.0f MiB = %.1f MiB: %s (audit log: %.1f MiB, "
                     "grows by design)\n",
                     last, early, SUSTAIN__STORE_TOL_PCT, SUSTAIN__STORE_TOL_MIB, store_limit,
                     ok ? "pass" : "**FAIL**", w[done - 1].audit_mib);
        double slowest = 0;
        int slow_i = -1;
        for (int i = 1; i < done; i++)
            if (slow_i < 0 || w[i].rate < slowest) {
                slowest = w[i].rate;
                slow_i = i;
            }
        /* Not a verdict: on a shared machine it mostly measures the others
         * (see the last column); a hub that slows down by itself fails the
         * p99 check, as the in-flight cap turns lost rate into latency. */
        sustain__add(verdict, sizeof verdict, &vl,
                     "- load carried (information): slowest window after the first "
                     "delivered %.0f/s = %.0f%% of the %.0f/s offered\n",
                     slow_i < 0 ? w[0].rate : slowest,
                     100 * (slow_i < 0 ? w[0].rate : slowest) / target, target);
        double audit_total = (w[done - 1].audit_mib * 1048576.0 - audit_start) /
                             (double)(atomic_load(&s->delivered) - delivered_start + 1);
        sustain__add(verdict, sizeof verdict, &vl,
                     "- disk per message (information): store ≈ %.0f bytes while its id is "
                     "remembered (the default 24 h de-duplication window keeps them: ≈ %.0f GiB a "
                     "day at %.0f msg/s); audit log %.0f bytes\n",
                     store_per_msg, store_per_msg * target * 86400 / 1073741824.0, target,
                     audit_total);
    }
    unsigned long long errors = atomic_load(&s->errors), lag = atomic_load(&s->lagged_ms);
    if (errors) {
        pass = false;
        sustain__add(verdict, sizeof verdict, &vl, "- **FAIL**: %llu errors, first: %s\n", errors,
                     s->first_error);
    }
    sustain__add(verdict, sizeof verdict, &vl,
                 "- posted %llu, delivered %llu; the sender was held back by the %d "
                 "in-flight cap %llu time(s)\n",
                 (unsigned long long)atomic_load(&s->posted),
                 (unsigned long long)atomic_load(&s->delivered), SUSTAIN__INFLIGHT, lag);
    printf("\n%s\nsustain: %s\n", verdict, pass ? "PASS" : "FAIL");

    FILE *f = fopen(out_path, "w");
    if (f) {
        time_t now = time(NULL);
        char date[64];
        strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
        fprintf(f,
                "## Sustained full path (%s)\n\nCommand: `%s`  \nMaximum %.0f events/s on a "
                "fresh store (as the row), %.0f events/s in steady state (ids ageing out of "
                "dedup_window_ms = %u), held at %.0f/s (%.0f%% of the latter), %d s windows after "
                "%d s of warm-up.\n\n"
                "| window | s | delivered/s | p50 µs | p99 µs | max µs | > 50 ms | hubd RSS MiB | "
                "anon MiB | store MiB | audit MiB | hubd CPU µs/msg | others' CPU |\n"
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
                "---: | ---: |\n",
                date, command, max.rate, steady, dedup_ms, target, SUSTAIN__LOAD * 100, window_s,
                SUSTAIN__WARMUP_S);
        for (int i = 0; i < done; i++)
            fprintf(f,
                    "| %d | %.0f | %.0f | %.0f | %.0f | %.0f | %llu | %.1f | %.1f | %.1f | %.1f | "
                    "%.1f | %.0f%% |\n",
                    i + 1, (double)(i + 1) * window_s, w[i].rate, w[i].p50_us, w[i].p99_us,
                    w[i].max_us, w[i].stalled, (double)w[i].rss_kib / 1024.0,
                    (double)w[i].anon_kib / 1024.0, w[i].store_mib, w[i].audit_mib, w[i].cpu_us,
                    w[i].others * 100);
        fprintf(f, "\n%s\nVerdict: %s\n", verdict, pass ? "pass" : "**FAIL**");
        fclose(f);
        printf("written to %s\n", out_path);
    }
    rc = pass ? 0 : 1;
out:
    adp_close(&s->sender);
    adp_close(&s->receiver);
    bench_lat_free(&s->lat);
    pthread_mutex_destroy(&s->lock);
    free(s);
    free(w);
    bench_hubenv_stop(&env);
    return rc;
}
