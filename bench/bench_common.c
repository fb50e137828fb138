#include "bench.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

bench_opts_t bench_opts = {.warmup_s = 0.5, .measure_s = 3.0, .drain_s = 2.0};

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */

void bench_lat_add(bench_lat_t *lat, uint64_t ns)
{
    if (lat->n == lat->cap) {
        size_t ncap = lat->cap ? lat->cap * 2 : 65536;
        uint32_t *grown = realloc(lat->ns, ncap * sizeof *grown);
        if (!grown)
            return; /* a lost sample, not a lost run */
        lat->ns = grown;
        lat->cap = ncap;
    }
    lat->ns[lat->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static int bench__cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

double bench_lat_pct(bench_lat_t *lat, double p)
{
    if (lat->n == 0)
        return 0;
    /* Sorting a sorted array again is cheap next to a run; no cache to go stale. */
    qsort(lat->ns, lat->n, sizeof *lat->ns, bench__cmp_u32);
    /* Nearest rank. */
    size_t rank = (size_t)((p / 100.0) * (double)lat->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > lat->n)
        rank = lat->n;
    return lat->ns[rank - 1] / 1000.0;
}

void bench_lat_free(bench_lat_t *lat)
{
    free(lat->ns);
    memset(lat, 0, sizeof *lat);
}

/* ------------------------------------------------------------------------ */

void bench_window_init(bench_window_t *w)
{
    memset(w, 0, sizeof *w);
    atomic_init(&w->phase, BENCH_WARMUP);
    atomic_init(&w->completed, 0);
    atomic_init(&w->errors, 0);
    atomic_init(&w->outstanding, 0);
    atomic_init(&w->error_set, 0);
    w->envelopes_per_msg = 1;
}

/* CPU time of this process, all its threads, ns. */
static uint64_t bench__self_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The clock ticks of the measured process (cpu_pid, plus cpu_pid_b when
 * set) and, with cpu_main, of their main threads; nothing without cpu_pid. */
static void bench__sample(const bench_window_t *w, unsigned long long *cpu,
                          unsigned long long *main_ticks)
{
    if (w->cpu_pid <= 0)
        return;
    *cpu = bench_tree_ticks(w->cpu_pid);
    if (w->cpu_main)
        *main_ticks = bench_thread_ticks(w->cpu_pid, w->cpu_pid);
    if (w->cpu_pid_b > 0) {
        *cpu += bench_tree_ticks(w->cpu_pid_b);
        if (w->cpu_main)
            *main_ticks += bench_thread_ticks(w->cpu_pid_b, w->cpu_pid_b);
    }
}

void bench_window_run(bench_window_t *w, bool (*all_done)(void *), void *user)
{
    tkp_sleep_ms((int)(bench_opts.warmup_s * 1000));
    if (w->edge)
        w->edge(w->edge_ctx, 0);
    if (w->cpu2_pid > 0)
        w->cpu2_0 = bench_tree_ticks(w->cpu2_pid);
    bench__sample(w, &w->cpu0, &w->main0);
    w->self0_ns = bench__self_ns();
    w->t0_ns = bench_now_ns();
    atomic_store(&w->phase, BENCH_MEASURE);
    tkp_sleep_ms((int)(bench_opts.measure_s * 1000));
    atomic_store(&w->phase, BENCH_DRAIN);
    w->t1_ns = bench_now_ns();
    w->self1_ns = bench__self_ns();
    bench__sample(w, &w->cpu1, &w->main1);
    if (w->cpu2_pid > 0)
        w->cpu2_1 = bench_tree_ticks(w->cpu2_pid);
    if (w->edge)
        w->edge(w->edge_ctx, 1);
    uint64_t until = w->t1_ns + (uint64_t)(bench_opts.drain_s * 1e9);
    while (bench_now_ns() < until) {
        if (all_done && all_done(user))
            break;
        tkp_sleep_ms(5);
    }
    atomic_store(&w->phase, BENCH_STOP);
}

void bench_case_end(pid_t pid, bench_lat_t *lat, const char *dir)
{
    tkp_stop(pid);
    bench_lat_free(lat);
    if (!bench_opts.verbose)
        tkp_rmrf(dir);
}

bool bench_window_complete(bench_window_t *w, bench_lat_t *lat, uint64_t sent_ns)
{
    atomic_fetch_sub(&w->outstanding, 1);
    int phase = atomic_load(&w->phase);
    if (phase == BENCH_MEASURE) {
        bench_lat_add(lat, bench_now_ns() - sent_ns);
        atomic_fetch_add(&w->completed, 1);
    }
    return phase < BENCH_DRAIN;
}

void bench_window_error(bench_window_t *w, const char *fmt, ...)
{
    atomic_fetch_add(&w->errors, 1);
    int expected = 0;
    if (atomic_compare_exchange_strong(&w->error_set, &expected, 1)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->first_error, sizeof w->first_error, fmt, ap);
        va_end(ap);
    }
}

double bench_window_seconds(const bench_window_t *w)
{
    return w->t1_ns > w->t0_ns ? (double)(w->t1_ns - w->t0_ns) / 1e9 : 0;
}

void bench_payload_fill(uint8_t *payload, size_t len, uint64_t seq)
{
    if (len < BENCH_HDR)
        return;
    uint64_t now = bench_now_ns();
    memcpy(payload, &now, 8);
    memcpy(payload + 8, &seq, 8);
}

uint64_t bench_payload_sent_ns(const uint8_t *payload, size_t len)
{
    uint64_t t = 0;
    if (payload && len >= BENCH_HDR)
        memcpy(&t, payload, 8);
    return t;
}

/* ------------------------------------------------------------------------ */

void bench_result_from(bench_result_t *r, const bench_window_t *w, bench_lat_t *lat)
{
    memset(r, 0, sizeof *r);
    double secs = bench_window_seconds(w);
    r->completed = atomic_load(&w->completed);
    r->errors = atomic_load(&w->errors);
    r->rate = secs > 0 ? (double)r->completed / secs : 0;
    r->p50_us = bench_lat_pct(lat, 50);
    r->p99_us = bench_lat_pct(lat, 99);
    r->p999_us = bench_lat_pct(lat, 99.9);
    r->envelopes_per_msg = w->envelopes_per_msg > 0 ? w->envelopes_per_msg : 1;
    if (w->cpu_pid > 0 && w->cpu1 >= w->cpu0 && w->cpu0 > 0 && r->completed > 0)
        r->cpu_us = (double)(w->cpu1 - w->cpu0) * bench_tick_us() / (double)r->completed;
    if (w->cpu2_pid > 0 && w->cpu2_1 >= w->cpu2_0 && w->cpu2_0 > 0 && r->completed > 0)
        r->cpu2_us = (double)(w->cpu2_1 - w->cpu2_0) * bench_tick_us() / (double)r->completed;
    if (w->self1_ns > w->self0_ns && w->self0_ns > 0 && r->completed > 0)
        r->clients_cpu_us = (double)(w->self1_ns - w->self0_ns) / 1000.0 / (double)r->completed;
    if (w->cpu_main && w->main1 >= w->main0 && w->main0 > 0 && w->cpu1 > w->cpu0)
        r->main_share = (double)(w->main1 - w->main0) / (double)(w->cpu1 - w->cpu0);
    if (r->errors)
        snprintf(r->note, sizeof r->note, "%llu errors, first: %s", (unsigned long long)r->errors,
                 w->first_error);
}

void bench_result_na(bench_result_t *r, const char *fmt, ...)
{
    memset(r, 0, sizeof *r);
    r->na = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof r->note, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */

bool bench_alive(pid_t pid)
{
    return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

int bench_capture(char *const argv[], char **output, int timeout_ms)
{
    return tkp_run(argv, output, timeout_ms, bench_opts.workdir);
}

double bench_tick_us(void)
{
    long hz = sysconf(_SC_CLK_TCK);
    return 1e6 / (double)(hz > 0 ? hz : 100);
}

/* utime + stime + cutime + cstime and the parent of one process. */
static bool bench__stat(pid_t pid, pid_t *ppid, unsigned long long *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    /* Fields after the command name, which ends with the last ')'. */
    char *p = ok ? strrchr(buf, ')') : NULL;
    int parent;
    unsigned long long ut, st, cut, cst;
    if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                     &parent, &ut, &st, &cut, &cst) != 5)
        return false;
    *ppid = parent;
    *ticks = ut + st + cut + cst;
    return true;
}

unsigned long long bench_thread_ticks(pid_t pid, pid_t tid)
{
    char path[96], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/stat", (long)pid, (long)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    char *p = ok ? strrchr(buf, ')') : NULL;
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return ut + st;
}

unsigned long long bench_tree_ticks(pid_t pid)
{
    unsigned long long total = 0, ticks;
    pid_t ppid;
    if (!bench__stat(pid, &ppid, &ticks))
        return 0;
    total = ticks;
    /* Descendants: repeated passes over /proc until no new one appears
     * (servers are shallow trees: a pass or two). */
    pid_t tree[512];
    size_t n = 1;
    tree[0] = pid;
    for (bool grew = true; grew;) {
        grew = false;
        DIR *d = opendir("/proc");
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            char *end;
            long child = strtol(de->d_name, &end, 10);
            if (*end || child <= 0 || !bench__stat((pid_t)child, &ppid, &ticks))
                continue;
            bool parent_in = false, known = false;
            for (size_t i = 0; i < n; i++) {
                parent_in = parent_in || tree[i] == ppid;
                known = known || tree[i] == (pid_t)child;
            }
            if (parent_in && !known && n < sizeof tree / sizeof *tree) {
                tree[n++] = (pid_t)child;
                total += ticks;
                grew = true;
            }
        }
        if (d)
            closedir(d);
    }
    return total;
}

uint64_t bench_rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "VmRSS: %llu kB", &v) == 1) {
            kib = v;
            break;
        }
    }
    fclose(f);
    return kib;
}

long bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

int bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ------------------------------------------------------------------------ */

/* CPU time of the whole machine and of this process tree (this process, its
 * threads, and children it has waited for), in clock ticks: what other
 * programs took during the run says how far to trust the figures. */
void bench_cpu_snap(bench_cpu_t *s)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[10] = {0};
    if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                    &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) >= 8) {
        for (int i = 0; i < 8; i++)
            s->total += v[i];
        s->busy = s->total - v[3] - v[4]; /* less idle and iowait */
    }
    if (f)
        fclose(f);
    f = fopen("/proc/self/stat", "r");
    char buf[1024];
    if (f && fgets(buf, sizeof buf, f)) {
        /* Fields after the command name, which ends with the last ')'. */
        char *p = strrchr(buf, ')');
        unsigned long long ut, st, cut, cst;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                        &ut, &st, &cut, &cst) == 4)
            s->ours = ut + st + cut + cst;
    }
    if (f)
        fclose(f);
}

/* Share of the machine's CPU that other programs used between a and b. */
double bench_cpu_others(const bench_cpu_t *a, const bench_cpu_t *b)
{
    double total = (double)(b->total - a->total);
    double others = (double)(b->busy - a->busy) - (double)(b->ours - a->ours);
    return total > 0 && others > 0 ? others / total : 0;
}
