/* hubbench — issue 7's benchmark (and issue 3's durable figure): the real
 * hubd driven over CURVE, next to the baselines it can start itself, in one
 * run, printed as one table and written as Markdown.
 *
 *   hubbench [--runs N] [--quick] [--seconds S] [--only ID,ID] [--out FILE] [--keep]
 *   hubbench --scale N [--out FILE] [--keep]
 *   hubbench --sustain SECONDS [--out FILE] [--keep]
 *   hubbench --list
 *
 * Every figure is the median of --runs runs (default 3); each run warms up,
 * measures for --seconds (default 3) and drains what is still in flight.
 * Payloads are 1 KiB; every connection is on 127.0.0.1.
 */
#include "bench.h"
#include "hub_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#ifndef HUB_SOURCE_DIR
#define HUB_SOURCE_DIR "."
#endif

typedef enum {
    CASE_RAW,
    CASE_NATS,
    CASE_JETSTREAM,
    CASE_FSYNC,
    CASE_CIPHER,
    CASE_HUB,
    CASE_FAIR,
    CASE_RABBITMQ,
    CASE_PGQUEUE,
} case_type_t;

typedef struct {
    const char *id;
    const char *label;
    case_type_t type;
    bool flag; /* raw: CURVE; nats: TLS */
    /* Left out of --quick unless --only names it (two hubd nodes: slow to set up). */
    bool not_quick;
    int inflight;
    hub_case_t hub;
    bool baseline;
    bench_result_t runs[16];
    int n_runs;
    bench_result_t median;
} bench_case_t;

#define HUB(kind_, peers_, durable_, full_, n_)                                                    \
    .type = CASE_HUB, .inflight = n_,                                                              \
    .hub = {HUB_CASE_##kind_, HUB_PEER_##peers_, durable_, full_, n_, 0}

static bench_case_t cases[] = {
    {.id = "raw-plain-1000",
     .label = "raw libzmq hop, plain",
     .type = CASE_RAW,
     .flag = false,
     .inflight = 1000,
     .baseline = true},
    {.id = "raw-curve-1000",
     .label = "raw libzmq hop, CURVE",
     .type = CASE_RAW,
     .flag = true,
     .inflight = 1000,
     .baseline = true},
    {.id = "nats-plain-1000",
     .label = "NATS request/reply, plain",
     .type = CASE_NATS,
     .flag = false,
     .inflight = 1000,
     .baseline = true},
    {.id = "nats-tls-1000",
     .label = "NATS request/reply, TLS",
     .type = CASE_NATS,
     .flag = true,
     .inflight = 1000,
     .baseline = true},
    {.id = "jetstream-1000",
     .label = "NATS JetStream publish, file store, acks awaited per 1000",
     .type = CASE_JETSTREAM,
     .inflight = 1000,
     .baseline = true},
    {.id = "rabbitmq-quorum-1000",
     .label = "RabbitMQ quorum queue, persistent, publisher confirms, manual acks, end to end",
     .type = CASE_RABBITMQ,
     .inflight = 1000,
     .baseline = true},
    {.id = "pg-queue-1000",
     .label = "PostgreSQL SKIP LOCKED queue, 100 rows per commit, end to end",
     .type = CASE_PGQUEUE,
     .inflight = 1000,
     .baseline = true},
    {.id = "hub-transient-1000",
     .label = "hub req/reply, online-only",
     HUB(REQREPLY, RAW, false, false, 1000)},
    {.id = "hub-transient-1000-unbatched",
     .label = "hub req/reply, online-only, 1 envelope per Batch",
     .type = CASE_HUB,
     .inflight = 1000,
     .hub = {HUB_CASE_REQREPLY, HUB_PEER_RAW, false, false, 1000, 1}},
    {.id = "hub-transient-1000-sdk",
     .label = "hub req/reply, online-only, SDK responder",
     HUB(REQREPLY, SDK, false, false, 1000)},
    {.id = "hub-durable-1000",
     .label = "hub req/reply, durable (both ways stored)",
     HUB(REQREPLY, RAW, true, false, 1000)},
    {.id = "hub-durable-1000-sdk",
     .label = "hub req/reply, durable, SDK responder",
     HUB(REQREPLY, SDK, true, false, 1000)},
    {.id = "hub-events-1000",
     .label = "hub one-way events, durable, end to end",
     HUB(EVENTS, RAW, true, false, 1000)},
    {.id = "hub-events-1000-sdk",
     .label = "hub one-way events, durable, SDK both ends",
     HUB(EVENTS, SDK, true, false, 1000)},
    {.id = "hub-pg-durable-1000",
     .label = "hub req/reply, durable, store on PostgreSQL (private cluster, fsync on)",
     .type = CASE_HUB,
     .inflight = 1000,
     .hub = {HUB_CASE_REQREPLY, HUB_PEER_RAW, true, false, 1000, 0, true}},
    {.id = "hub-pg-durable-events",
     .label = "hub one-way events, durable, store on PostgreSQL, end to end",
     .type = CASE_HUB,
     .inflight = 1000,
     .hub = {HUB_CASE_EVENTS, HUB_PEER_RAW, true, false, 1000, 0, true}},
    {.id = "hub-pg-durable-1000-2n",
     .label = "hub req/reply, durable, PostgreSQL store, two nodes (client on A, responder on B)",
     .type = CASE_HUB,
     .inflight = 1000,
     .not_quick = true,
     .hub = {HUB_CASE_REQREPLY, HUB_PEER_RAW, true, false, 1000, 0, true, true}},
    {.id = "hub-pg-durable-events-2n",
     .label = "hub one-way events, durable, PostgreSQL store, two nodes (sender on A, receiver on "
              "B)",
     .type = CASE_HUB,
     .inflight = 1000,
     .not_quick = true,
     .hub = {HUB_CASE_EVENTS, HUB_PEER_RAW, true, false, 1000, 0, true, true}},
    {.id = "hub-full-1000",
     .label = "hub req/reply, full path (signed, verified, durable, audited)",
     HUB(REQREPLY, RAW, true, true, 1000)},
    {.id = "hub-full-1000-sdk",
     .label = "hub req/reply, full path, SDK responder",
     HUB(REQREPLY, SDK, true, true, 1000)},
    {.id = "hub-full-events-1000",
     .label = "hub one-way events, full path",
     HUB(EVENTS, RAW, true, true, 1000)},
    {.id = "hub-full-events-1000-sdk",
     .label = "hub one-way events, full path, SDK both ends (as deployed)",
     HUB(EVENTS, SDK, true, true, 1000)},
    {.id = "raw-plain-1",
     .label = "raw libzmq hop, plain",
     .type = CASE_RAW,
     .flag = false,
     .inflight = 1,
     .baseline = true},
    {.id = "raw-curve-1",
     .label = "raw libzmq hop, CURVE",
     .type = CASE_RAW,
     .flag = true,
     .inflight = 1,
     .baseline = true},
    {.id = "nats-plain-1",
     .label = "NATS request/reply, plain",
     .type = CASE_NATS,
     .flag = false,
     .inflight = 1,
     .baseline = true},
    {.id = "nats-tls-1",
     .label = "NATS request/reply, TLS",
     .type = CASE_NATS,
     .flag = true,
     .inflight = 1,
     .baseline = true},
    {.id = "hub-transient-1",
     .label = "hub req/reply, online-only",
     HUB(REQREPLY, RAW, false, false, 1)},
    {.id = "hub-transient-1-sdk",
     .label = "hub req/reply, online-only, SDK both ends (adp_request)",
     HUB(REQREPLY, SDK, false, false, 1)},
    {.id = "hub-durable-1", .label = "hub req/reply, durable", HUB(REQREPLY, RAW, true, false, 1)},
    {.id = "hub-fair-alone",
     .label = "hub req/reply, one in flight, default rate limits, alone",
     .type = CASE_FAIR,
     .flag = false,
     .inflight = 1},
    {.id = "hub-fair-flooded",
     .label = "hub req/reply, one in flight, while another member floods durable events",
     .type = CASE_FAIR,
     .flag = true,
     .inflight = 1},
    {.id = "fsync",
     .label = "disk: write 1 KiB + fdatasync",
     .type = CASE_FSYNC,
     .inflight = 1,
     .baseline = true},
    {.id = "cipher-curve",
     .label = "cipher: CURVE's XSalsa20-Poly1305 (libsodium), KiB sealed (128 KiB frames)",
     .type = CASE_CIPHER,
     .flag = false,
     .inflight = 1,
     .baseline = true},
    {.id = "cipher-tls",
     .label = "cipher: TLS's AES-128-GCM (OpenSSL), KiB sealed (128 KiB frames)",
     .type = CASE_CIPHER,
     .flag = true,
     .inflight = 1,
     .baseline = true},
};
#define N_CASES (sizeof cases / sizeof *cases)

/* ------------------------------------------------------------------------ */

static bench_case_t *case_by_id(const char *id)
{
    for (size_t i = 0; i < N_CASES; i++)
        if (!strcmp(cases[i].id, id))
            return &cases[i];
    return NULL;
}

static bool selected(const char *only, const char *id)
{
    if (!only || !*only)
        return true;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", only);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (!strcmp(tok, id) || (tok[strlen(tok) - 1] == '*' && !strncmp(tok, id, strlen(tok) - 1)))
            return true;
    return false;
}

void bench_fsync(bench_result_t *out)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/fsync.dat", bench_opts.workdir);
    FILE *f = fopen(path, "ab");
    if (!f) {
        bench_result_na(out, "cannot create %s: %s", path, strerror(errno));
        return;
    }
    int fd = fileno(f);
    uint8_t block[BENCH_PAYLOAD];
    memset(block, 'x', sizeof block);
    bench_window_t w;
    bench_window_init(&w);
    bench_lat_t lat = {0};
    double secs = bench_opts.measure_s < 2.0 ? bench_opts.measure_s : 2.0;
    w.t0_ns = bench_now_ns();
    uint64_t until = w.t0_ns + (uint64_t)(secs * 1e9);
    uint64_t now = w.t0_ns;
    while (now < until) {
        uint64_t t = now;
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
            bench_window_error(&w, "write/fdatasync: %s", strerror(errno));
            break;
        }
        now = bench_now_ns();
        bench_lat_add(&lat, now - t);
        atomic_fetch_add(&w.completed, 1);
    }
    w.t1_ns = now;
    fclose(f);
    unlink(path);
    bench_result_from(out, &w, &lat);
    bench_lat_free(&lat);
}

static void run_case(bench_case_t *c, const hub_features_t *features, bench_result_t *out)
{
    switch (c->type) {
    case CASE_RAW:
        bench_raw_hop(c->flag, c->inflight, out);
        break;
    case CASE_NATS:
        bench_nats(c->flag, c->inflight, out);
        break;
    case CASE_JETSTREAM:
        bench_jetstream(c->inflight, out);
        break;
    case CASE_FSYNC:
        bench_fsync(out);
        break;
    case CASE_CIPHER:
        bench_cipher(c->flag, out);
        break;
    case CASE_HUB:
        bench_hub(&c->hub, features, out);
        break;
    case CASE_FAIR:
        bench_hub_fair(c->flag, out);
        break;
    case CASE_RABBITMQ:
        bench_rabbitmq(c->inflight, out);
        break;
    case CASE_PGQUEUE:
        bench_pgqueue(c->inflight, out);
        break;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(const bench_case_t *c, size_t offset)
{
    double v[16];
    int n = 0;
    for (int i = 0; i < c->n_runs; i++)
        if (!c->runs[i].na)
            v[n++] = *(const double *)((const char *)&c->runs[i] + offset);
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double fabs_diff(double a, double b)
{
    return a > b ? a - b : b - a;
}

static void take_medians(bench_case_t *c)
{
    bench_result_t *m = &c->median;
    memset(m, 0, sizeof *m);
    int ok = 0;
    const bench_result_t *closest = NULL;
    for (int i = 0; i < c->n_runs; i++)
        if (!c->runs[i].na)
            ok++;
    if (ok == 0) {
        *m = c->n_runs ? c->runs[0] : *m;
        m->na = true;
        if (!m->note[0])
            snprintf(m->note, sizeof m->note, "not run");
        return;
    }
    m->rate = median_of(c, offsetof(bench_result_t, rate));
    m->p50_us = median_of(c, offsetof(bench_result_t, p50_us));
    m->p99_us = median_of(c, offsetof(bench_result_t, p99_us));
    m->p999_us = median_of(c, offsetof(bench_result_t, p999_us));
    m->cpu_us = median_of(c, offsetof(bench_result_t, cpu_us));
    m->envelopes_per_msg = c->runs[0].envelopes_per_msg;
    for (int i = 0; i < c->n_runs; i++) {
        m->errors += c->runs[i].errors;
        if (!c->runs[i].na &&
            (!closest || fabs_diff(c->runs[i].rate, m->rate) < fabs_diff(closest->rate, m->rate)))
            closest = &c->runs[i];
    }
    if (closest)
        snprintf(m->note, sizeof m->note, "%s", closest->note);
    for (int i = 0; i < c->n_runs; i++)
        if (c->runs[i].na)
            fprintf(stderr, "hubbench: %s: run %d failed: %s\n", c->id, i + 1, c->runs[i].note);
    if (ok < c->n_runs) {
        size_t len = strlen(m->note);
        snprintf(m->note + len, sizeof m->note - len, "%s%d of %d runs failed", len ? "; " : "",
                 c->n_runs - ok, c->n_runs);
    }
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

typedef struct {
    char *buf;
    size_t len, cap;
} text_t;

static void text_add(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0)
        return;
    if (t->len + (size_t)need + 1 > t->cap) {
        size_t ncap = (t->cap ? t->cap : 4096);
        while (ncap < t->len + (size_t)need + 1)
            ncap *= 2;
        char *grown = realloc(t->buf, ncap);
        if (!grown)
            return;
        t->buf = grown;
        t->cap = ncap;
    }
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)need;
}

static const char *fmt_rate(double v, char *buf, size_t size)
{
    if (v >= 1000)
        snprintf(buf, size, "%.0f,%03.0f", (double)((long long)v / 1000),
                 (double)((long long)v % 1000));
    else
        snprintf(buf, size, "%.0f", v);
    return buf;
}

static const char *fmt_us(double v, char *buf, size_t size)
{
    if (v >= 10000)
        snprintf(buf, size, "%.1f ms", v / 1000);
    else if (v >= 100)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.1f", v);
    return buf;
}

/* The baseline a row is compared with, per column. */
static const bench_case_t *baseline_for(const bench_case_t *c, const char *kind)
{
    char id[64];
    snprintf(id, sizeof id, "%s-%d", kind, c->inflight == 1 ? 1 : 1000);
    const bench_case_t *b = case_by_id(id);
    return b && b->n_runs && !b->median.na ? b : NULL;
}

static void ratio_cell(text_t *t, const bench_case_t *c, const char *kind)
{
    const bench_case_t *b = baseline_for(c, kind);
    if (c->type != CASE_HUB || c->median.na || !b || b->median.rate <= 0) {
        text_add(t, " |");
        return;
    }
    text_add(t, " %.2f |", c->median.rate / b->median.rate);
}

static void table(text_t *t)
{
    text_add(t, "| case | in flight | msg/s | p50 µs | p99 µs | p99.9 µs | ×raw plain | ×raw CURVE "
                "| ×NATS | ×NATS TLS | middle CPU µs/msg | µs/envelope | notes |\n");
    text_add(t,
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| --- |\n");
    for (size_t i = 0; i < N_CASES; i++) {
        bench_case_t *c = &cases[i];
        if (!c->n_runs)
            continue;
        char a[32], b[32], d[32], e[32];
        text_add(t, "| %s%s%s | %d |", c->baseline ? "" : "**", c->label, c->baseline ? "" : "**",
                 c->inflight);
        if (c->median.na) {
            text_add(t, " n/a | | | | | | | | | | %s |\n", c->median.note);
            continue;
        }
        text_add(t, " %s | %s | %s | %s |", fmt_rate(c->median.rate, a, sizeof a),
                 fmt_us(c->median.p50_us, b, sizeof b), fmt_us(c->median.p99_us, d, sizeof d),
                 fmt_us(c->median.p999_us, e, sizeof e));
        ratio_cell(t, c, "raw-plain");
        ratio_cell(t, c, "raw-curve");
        ratio_cell(t, c, "nats-plain");
        ratio_cell(t, c, "nats-tls");
        if (c->median.cpu_us > 0)
            text_add(t, " %.1f | %.1f |", c->median.cpu_us,
                     c->median.cpu_us /
                         (c->median.envelopes_per_msg > 0 ? c->median.envelopes_per_msg : 1));
        else
            text_add(t, " | |");
        text_add(t, " %s |\n", c->median.note);
    }
}

static const bench_result_t *got(const char *id)
{
    const bench_case_t *c = case_by_id(id);
    return c && c->n_runs && !c->median.na ? &c->median : NULL;
}

static void target_row(text_t *t, const char *what, const char *goal, bool have, double value,
                       const char *unit, bool pass)
{
    if (!have)
        text_add(t, "| %s | %s | n/a | — |\n", what, goal);
    else
        text_add(t, "| %s | %s | %.2f%s | %s |\n", what, goal, value, unit,
                 pass ? "pass" : "**FAIL**");
}

static void targets(text_t *t)
{
    text_add(t, "| target | goal | measured | |\n| --- | --- | ---: | --- |\n");
    const bench_result_t *raw = got("raw-curve-1000"), *tr = got("hub-transient-1000"),
                         *du = got("hub-durable-1000"), *fu = got("hub-full-1000"),
                         *fe = got("hub-full-events-1000"), *raw1 = got("raw-curve-1"),
                         *tr1 = got("hub-transient-1"), *ev = got("hub-events-1000"),
                         *fs = got("fsync"), *js = got("jetstream-1000");
    target_row(t, "CURVE req/reply through the hub, no signatures ÷ raw CURVE hop (1000 in flight)",
               "≥ 0.90", raw && tr, raw && tr ? tr->rate / raw->rate : 0, "",
               raw && tr && tr->rate / raw->rate >= 0.9);
    target_row(t, "durable req/reply through the hub ÷ raw CURVE hop (1000 in flight)", "≥ 0.80",
               raw && du, raw && du ? du->rate / raw->rate : 0, "",
               raw && du && du->rate / raw->rate >= 0.8);
    target_row(t, "full path req/reply (CURVE, signed, verified, durable, audited)",
               "≥ 10,000 msg/s", fu != NULL, fu ? fu->rate : 0, " msg/s", fu && fu->rate >= 10000);
    target_row(t, "full path one-way events", "≥ 10,000 msg/s", fe != NULL, fe ? fe->rate : 0,
               " msg/s", fe && fe->rate >= 10000);
    target_row(t, "one in flight: hub p50 − raw CURVE hop p50", "< 100 µs", raw1 && tr1,
               raw1 && tr1 ? tr1->p50_us - raw1->p50_us : 0, " µs",
               raw1 && tr1 && tr1->p50_us - raw1->p50_us < 100);
    if (ev && js)
        text_add(t,
                 "| durable one-way events, delivered end to end ÷ JetStream publish (acked per "
                 "1000; JetStream does not fsync before its ack) | context, no target | %.2f× | "
                 "%s |\n",
                 ev->rate / js->rate, ev->rate >= js->rate ? "hub ahead" : "JetStream ahead");
    const bench_result_t *fa = got("hub-fair-alone"), *ff = got("hub-fair-flooded");
    target_row(t, "fairness: honest req/reply p99 while another member floods ÷ alone", "≤ 2",
               fa && ff && fa->p99_us > 0, fa && ff && fa->p99_us > 0 ? ff->p99_us / fa->p99_us : 0,
               "×", fa && ff && fa->p99_us > 0 && ff->p99_us / fa->p99_us <= 2.0);
    target_row(t, "issue 3: durable events delivered end to end ÷ fsync rate", "≥ 20",
               ev && fs && fs->rate > 0, ev && fs && fs->rate > 0 ? ev->rate / fs->rate : 0, "×",
               ev && fs && fs->rate > 0 && ev->rate / fs->rate >= 20);
    /* Issue 21: CPU per message, and the durable brokers. */
    const bench_result_t *nt = got("nats-tls-1000"), *rq = got("rabbitmq-quorum-1000"),
                         *pq = got("pg-queue-1000"), *dep = got("hub-full-events-1000-sdk");
    bool cpu = tr && nt && tr->cpu_us > 0 && nt->cpu_us > 0;
    target_row(t,
               "hubd CPU per online-only request ÷ nats-server CPU per TLS request (1000 in "
               "flight)",
               "≤ 1.00", cpu, cpu ? tr->cpu_us / nt->cpu_us : 0, "×",
               cpu && tr->cpu_us <= nt->cpu_us);
    target_row(t, "durable one-way events, end to end ÷ RabbitMQ quorum queue", "≥ 5", ev && rq,
               ev && rq ? ev->rate / rq->rate : 0, "×", ev && rq && ev->rate / rq->rate >= 5);
    target_row(t, "durable one-way events, end to end ÷ PostgreSQL SKIP LOCKED queue", "≥ 4",
               ev && pq, ev && pq ? ev->rate / pq->rate : 0, "×",
               ev && pq && ev->rate / pq->rate >= 4);
    target_row(t,
               "deployed full path (SDK both ends, signed, durable, audited) ÷ RabbitMQ quorum "
               "queue",
               "≥ 1.5", dep && rq, dep && rq ? dep->rate / rq->rate : 0, "×",
               dep && rq && dep->rate / rq->rate >= 1.5);
    /* Issue 21, item 2: as deployed, the SDK costs nothing. */
    const bench_result_t *fs_sdk = got("hub-full-1000-sdk");
    target_row(t, "full-path events, SDK both ends ÷ raw peers (same run)", "≥ 0.9", dep && fe,
               dep && fe ? dep->rate / fe->rate : 0, "×", dep && fe && dep->rate / fe->rate >= 0.9);
    target_row(t, "full-path req/reply, SDK responder ÷ raw responder (same run)", "≥ 0.9",
               fs_sdk && fu, fs_sdk && fu ? fs_sdk->rate / fu->rate : 0, "×",
               fs_sdk && fu && fs_sdk->rate / fu->rate >= 0.9);
    target_row(t, "full-path events as deployed ÷ raw CURVE hop (1000 in flight)", "≥ 1.0",
               dep && raw, dep && raw ? dep->rate / raw->rate : 0, "×",
               dep && raw && dep->rate >= raw->rate);
    target_row(t, "online-only req/reply ÷ NATS req/reply over TLS (msg/s)", "≥ 1.0", tr && nt,
               tr && nt ? tr->rate / nt->rate : 0, "×", tr && nt && tr->rate >= nt->rate);
}

static void machine(text_t *t)
{
    char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            snprintf(model, sizeof model, "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f)
        fclose(f);
    long mem_mb = sysconf(_SC_PHYS_PAGES) / 1024 * sysconf(_SC_PAGESIZE) / 1024;
    struct utsname u;
    uname(&u);
    int maj, min, pat;
    zmq_version(&maj, &min, &pat);
    char *nats = NULL;
    char *argv[] = {"/usr/sbin/nats-server", "--version", NULL};
    if (access(argv[0], X_OK) == 0)
        bench_capture(argv, &nats, 5000);
    if (nats)
        nats[strcspn(nats, "\n")] = '\0';
    text_add(t, "%s, %ld cores, %ld MiB RAM; Linux %s; libzmq %d.%d.%d; %s\n", model,
             sysconf(_SC_NPROCESSORS_ONLN), mem_mb, u.release, maj, min, pat,
             nats ? nats : "nats-server not installed");
    free(nats);
}

/* ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out, "Usage: hubbench [--runs N] [--quick] [--seconds S] [--only ID,ID*] [--out FILE] "
                 "[--keep]\n"
                 "       hubbench --scale N [--out FILE] [--keep]\n"
                 "       hubbench --sustain SECONDS [--out FILE] [--keep]\n"
                 "       hubbench --list\n"
                 "\n"
                 "Measures the real hubd (next to this program) over CURVE with 1 KiB payloads,\n"
                 "next to the raw libzmq hop (rawhop), nats-server and the disk's fsync rate,\n"
                 "all on 127.0.0.1, and prints one table (also written as Markdown to --out,\n"
                 "default build/bench/latest.md, or build/bench/scale-N.md with --scale).\n"
                 "\n"
                 "  --runs N      runs per case; figures are medians (default 3)\n"
                 "  --quick       one short run of each case (a smoke test, < 60 s; the\n"
                 "                two-node rows only when --only names them)\n"
                 "  --seconds S   measured window per run (default 3)\n"
                 "  --only LIST   run only these case ids (see --list; 'hub-*' works)\n"
                 "  --scale N     connect N members and report memory per connection and\n"
                 "                the throughput of a pair while they are connected\n"
                 "  --sustain S   the deployed full path (SDK both ends, signed, durable,\n"
                 "                audited) at 80%% of its measured maximum for S seconds:\n"
                 "                p99, hubd RSS and store size per minute (per 10 s when\n"
                 "                S < 120); exits 1 if p99 exceeds 1.5x the first window's,\n"
                 "                RSS grows after warm-up or the store keeps growing\n"
                 "  --keep        keep the work directory (keys, configs, hubd logs)\n"
                 "\n"
                 "HUBBENCH_HUBD_CONF='key = value' adds lines to every hubd.conf it writes\n"
                 "(e.g. 'log_level = info' with --keep to see what hubd did).\n");
}

static pid_t main_pid;

static void on_signal(int sig)
{
    (void)sig;
    if (getpid() == main_pid)
        tkp_kill_children();
    _exit(130);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--hold"))
        return bench_hold_main(argc, argv);
    int runs = 3, scale = 0, sustain = 0;
    bool quick = false, keep = false;
    const char *only = NULL, *out_path = NULL;
    double seconds = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--list")) {
            for (size_t k = 0; k < N_CASES; k++)
                printf("%-24s %s, %d in flight\n", cases[k].id, cases[k].label, cases[k].inflight);
            return 0;
        } else if (!strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!strcmp(argv[i], "--keep")) {
            keep = true;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out_path = argv[++i];
        } else if (!strcmp(argv[i], "--scale") && i + 1 < argc) {
            scale = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--sustain") && i + 1 < argc) {
            sustain = atoi(argv[++i]);
        } else {
            fprintf(stderr, "hubbench: unknown or incomplete argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (runs < 1 || runs > 15 || (scale != 0 && (scale < 1 || scale > 50000)) || seconds < 0 ||
        seconds > 60 || sustain < 0 || sustain > 86400) {
        fprintf(stderr, "hubbench: --runs takes 1..15, --scale 1..50000, --seconds up to 60, "
                        "--sustain 1..86400\n");
        return 2;
    }
    if (quick) {
        runs = 1;
        bench_opts.warmup_s = 0.2;
        bench_opts.measure_s = 0.8;
        bench_opts.drain_s = 1.0;
    }
    if (seconds > 0)
        bench_opts.measure_s = seconds;
    bench_opts.verbose = keep;
    main_pid = getpid();
    hub_log_set_level(HUB_LOG_WARN); /* the SDK's "connected" lines are noise here */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    /* hubd and rawhop sit next to this program; the work directory goes next
     * to the output, on the disk the build is on (not a tmpfs). */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "hubbench: cannot find its own executable\n");
        return 1;
    }
    exe[n] = '\0';
    snprintf(bench_opts.bindir, sizeof bench_opts.bindir, "%s", dirname(exe));
    snprintf(bench_opts.srcdir, sizeof bench_opts.srcdir, "%s", HUB_SOURCE_DIR);
    /* dirname() cut exe to the bin directory; once more gives the build directory. */
    char builddir[PATH_MAX], default_out[PATH_MAX + 64];
    snprintf(builddir, sizeof builddir, "%s", dirname(exe));
    if (scale)
        snprintf(default_out, sizeof default_out, "%s/bench/scale-%d.md", builddir, scale);
    else if (sustain)
        snprintf(default_out, sizeof default_out, "%s/bench/sustain-%d.md", builddir, sustain);
    else
        snprintf(default_out, sizeof default_out, "%s/bench/latest.md", builddir);
    if (!out_path)
        out_path = default_out;
    char out_dir[PATH_MAX];
    char out_copy[PATH_MAX];
    snprintf(out_copy, sizeof out_copy, "%s", out_path);
    snprintf(out_dir, sizeof out_dir, "%s", dirname(out_copy));
    mkdir(out_dir, 0755);
    /* hubd refuses key directories that group or others may write. */
    umask(022);
    /* Absolute: hubd reads the paths in its configuration relative to the
     * configuration's directory (a relative --out broke every hub row). */
    char out_abs[PATH_MAX];
    if (realpath(out_dir, out_abs))
        snprintf(out_dir, sizeof out_dir, "%s", out_abs);
    snprintf(bench_opts.workdir, sizeof bench_opts.workdir, "%s/hubbench.XXXXXX", out_dir);
    if (!mkdtemp(bench_opts.workdir)) {
        fprintf(stderr, "hubbench: cannot make a work directory in %s: %s\n", out_dir,
                strerror(errno));
        return 1;
    }
    char command[1024] = "hubbench";
    for (int i = 1; i < argc; i++) {
        size_t len = strlen(command);
        snprintf(command + len, sizeof command - len, " %s", argv[i]);
    }

    if (scale || sustain) {
        int rc = scale ? bench_scale(scale, runs, out_path, command)
                       : bench_sustain(sustain, out_path, command);
        if (!keep)
            tkp_rmrf(bench_opts.workdir);
        else
            printf("kept %s\n", bench_opts.workdir);
        return rc;
    }

    hub_features_t features;
    bench_hub_features(&features);
    printf("hubbench: %d run(s) of %.1f s per case (+%.1f s warm-up); work dir %s\n", runs,
           bench_opts.measure_s, bench_opts.warmup_s, bench_opts.workdir);
    if (features.why_not[0])
        printf("hubbench: full-path rows are n/a: %s\n", features.why_not);
    fflush(stdout);
    uint64_t started = bench_now_ns();
    bench_cpu_t cpu_a, cpu_b;
    bench_cpu_snap(&cpu_a);
    /* Rounds: every case once per round, so that a slow minute of the
     * machine spreads over all cases instead of sinking one. */
    for (int r = 0; r < runs; r++) {
        for (size_t i = 0; i < N_CASES; i++) {
            bench_case_t *c = &cases[i];
            if (!selected(only, c->id) || (quick && c->not_quick && !(only && *only)))
                continue;
            bench_result_t *res = &c->runs[c->n_runs];
            run_case(c, &features, res);
            c->n_runs++;
            char a[32];
            if (res->na)
                printf("[%d/%d] %-24s n/a: %s\n", r + 1, runs, c->id, res->note);
            else
                printf("[%d/%d] %-24s %10s msg/s  p50 %8.1f µs  p99 %8.1f µs  p99.9 %8.1f µs  "
                       "CPU %6.1f µs/msg%s%s\n",
                       r + 1, runs, c->id, fmt_rate(res->rate, a, sizeof a), res->p50_us,
                       res->p99_us, res->p999_us, res->cpu_us, res->note[0] ? "  " : "", res->note);
            fflush(stdout);
            /* A case that cannot run now will not run in the next round. */
            if (res->na && r == 0 && runs > 1)
                c->n_runs = 1;
        }
    }
    for (size_t i = 0; i < N_CASES; i++)
        if (cases[i].n_runs)
            take_medians(&cases[i]);
    double total_s = (double)(bench_now_ns() - started) / 1e9;
    bench_cpu_snap(&cpu_b);
    double others = bench_cpu_others(&cpu_a, &cpu_b);

    text_t t = {0};
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    text_add(&t, "## Results (%s)\n\n", date);
    text_add(&t, "Command: `%s` (%.0f s)  \nMachine: ", command, total_s);
    machine(&t);
    text_add(&t, "Other programs used %.0f%% of the machine's CPU during the run%s\n", others * 100,
             others > 0.1 ? " — figures from a busy machine: compare ratios, not absolutes" : "");
    text_add(&t,
             "\nEach figure is the median of %d run(s); a run warms up for %.1f s and measures "
             "%.1f s. Payloads are 1 KiB; every connection is on 127.0.0.1; the client and the "
             "responder are threads of hubbench, the middle (hubd, rawhop, nats-server, the "
             "RabbitMQ node, the PostgreSQL cluster) is a process (tree) of its own. Latency is "
             "send → reply (or → delivery for events and queues). Ratios are msg/s over the "
             "baseline's with the same number in flight. hubd runs with log_level = warn. "
             "*Middle CPU* is the user + system time of the middle's processes "
             "(/proc/PID/stat, with their children) over the measured window, per completed "
             "message; a request/reply is two envelopes through the middle (request and reply), "
             "an event or a queued message one. It depends much less than msg/s on how busy the "
             "machine is. In the hub rows' notes, *clients* is hubbench's own CPU time (the "
             "sender and receiver threads, SDK or raw, with their libzmq threads) per completed "
             "message, on the same cores as hubd.\n\n",
             runs, bench_opts.warmup_s, bench_opts.measure_s);
    table(&t);
    text_add(&t, "\n");
    targets(&t);
    printf("\n%s", t.buf ? t.buf : "");
    FILE *f = fopen(out_path, "w");
    if (f) {
        fputs(t.buf ? t.buf : "", f);
        fclose(f);
        printf("\nwritten to %s\n", out_path);
    } else {
        fprintf(stderr, "hubbench: cannot write %s: %s\n", out_path, strerror(errno));
    }
    free(t.buf);
    if (!keep)
        tkp_rmrf(bench_opts.workdir);
    else
        printf("kept %s\n", bench_opts.workdir);
    return 0;
}
