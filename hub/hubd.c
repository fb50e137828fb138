/* hubd — the Liên Thông Hub daemon. All logic lives in hub_core; this file
 * parses the command line, loads the configuration, runs the server, and
 * talks to systemd (sd_notify: READY, RELOADING, STOPPING, WATCHDOG) when
 * it runs as a Type=notify service. */
#include "hub_check.h"
#include "hub_config.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_memberdir.h"
#include "hub_ops.h"
#include "hub_server.h"
#include "hub_store.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: hubd [--config FILE] [--ready-file FILE]\n"
            "       hubd --check-config [--config FILE]\n"
            "       hubd --help | --version\n"
            "\n"
            "Runs the Liên Thông Hub daemon: a CURVE-authenticated ZeroMQ hub that routes\n"
            "envelopes between agency members, durably (store and forward).\n"
            "\n"
            "  --config FILE      configuration (default " HUB_DEFAULT_CONFIG ";\n"
            "                     see deploy/hubd.conf.example)\n"
            "  --check-config     load and check the configuration and everything it names\n"
            "                     (keys, certificates, CRL, policy, delegations, store),\n"
            "                     print each problem as FILE:LINE, exit 0 when hubd would\n"
            "                     start, 1 otherwise; safe while hubd runs\n"
            "  --ready-file FILE  once listening, write 'endpoint=...', 'pid=...' and (with\n"
            "                     http_listen) 'http=HOST:PORT' lines to FILE\n"
            "                     (useful with listen = tcp://127.0.0.1:* for tests)\n"
            "\n"
            "Signals: SIGTERM/SIGINT shut down cleanly; SIGHUP re-reads keys or\n"
            "certificates, the CRL, the agreements, the delegations and the member\n"
            "directory (systemctl reload);\n"
            "SIGUSR1/SIGUSR2 make the log more/less verbose. Under systemd (Type=notify)\n"
            "hubd reports READY, RELOADING, STOPPING and, with WatchdogSec=, WATCHDOG.\n");
}

static int write_ready_file(const char *path, const char *endpoint, const char *http)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "endpoint=%s\npid=%ld\n", endpoint, (long)getpid());
    if (http)
        fprintf(f, "http=%s\n", http);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* systemd's side of the loop. Its handles are unreferenced: hub_server_run()
 * returns when the server's own handles close, as it does without systemd. */
typedef struct {
    uv_timer_t watchdog;       /* WATCHDOG=1 at half of WatchdogSec */
    uv_timer_t reloaded;       /* READY=1 on the loop turn after a SIGHUP */
    uv_signal_t sig_term, sig_int, sig_hup;
    bool watchdog_on;
} hubd_notify_t;

static void on_watchdog(uv_timer_t *timer)
{
    (void)timer;
    sd_notify(0, "WATCHDOG=1");
}

static void on_reloaded(uv_timer_t *timer)
{
    (void)timer;
    sd_notify(0, "READY=1\nSTATUS=Running (configuration reloaded)");
}

/* The server handles these signals itself (libuv calls every handle that
 * watches a signal); this one only tells systemd. The server's SIGHUP
 * handler reloads synchronously in this loop turn, so READY goes out on
 * the next one. */
static void on_signal(uv_signal_t *handle, int signum)
{
    hubd_notify_t *n = handle->data;
    if (signum == SIGHUP) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                   (unsigned long long)ts.tv_sec * 1000000ull +
                       (unsigned long long)ts.tv_nsec / 1000ull);
        uv_timer_start(&n->reloaded, on_reloaded, 0, 0);
    } else {
        sd_notify(0, "STOPPING=1");
    }
}

static void notify_start(uv_loop_t *loop, hubd_notify_t *n)
{
    memset(n, 0, sizeof *n);
    uv_timer_init(loop, &n->watchdog);
    uv_timer_init(loop, &n->reloaded);
    uv_signal_t *sigs[] = {&n->sig_term, &n->sig_int, &n->sig_hup};
    int signums[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < 3; i++) {
        uv_signal_init(loop, sigs[i]);
        sigs[i]->data = n;
        uv_signal_start(sigs[i], on_signal, signums[i]);
        uv_unref((uv_handle_t *)sigs[i]);
    }
    uv_unref((uv_handle_t *)&n->watchdog);
    uv_unref((uv_handle_t *)&n->reloaded);
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
        uint64_t ms = usec / 2000u; /* half the watchdog interval */
        uv_timer_start(&n->watchdog, on_watchdog, ms, ms);
        n->watchdog_on = true;
        HUB_INFO("hubd", "systemd watchdog on", "interval_ms=%llu", (unsigned long long)ms);
    }
}

static void notify_stop(uv_loop_t *loop, hubd_notify_t *n)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&n->watchdog, (uv_handle_t *)&n->reloaded,
                         (uv_handle_t *)&n->sig_term, (uv_handle_t *)&n->sig_int,
                         (uv_handle_t *)&n->sig_hup};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *ready_file = NULL;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("hubd %s (protocol 1, store format %u)\n", HUB_VERSION, HUB_STORE_FORMAT);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strcmp(argv[i], "--check-config") || !strcmp(argv[i], "-t")) {
            check = true;
        } else if (!strcmp(argv[i], "--ready-file") && i + 1 < argc) {
            ready_file = argv[++i];
        } else {
            fprintf(stderr, "hubd: unknown or incomplete argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!config_path)
        config_path = HUB_DEFAULT_CONFIG;
    if (check) {
        int errors = hub_check_config(config_path, stdout);
        if (errors == 0)
            printf("hubd: configuration %s is ok: hubd would start with it\n", config_path);
        else
            printf("hubd: configuration %s test failed: %d error%s\n", config_path, errors,
                   errors == 1 ? "" : "s");
        return errors == 0 ? 0 : 1;
    }
    hub_config_t cfg;
    char err[HUB_ERRMSG_MAX];
    if (hub_config_load(config_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "hubd: bad configuration: %s\n", err);
        fprintf(stderr, "hubd: 'hubd --check-config --config %s' lists every problem\n",
                config_path);
        sd_notifyf(0, "STATUS=Bad configuration: %s", err);
        return 1;
    }
    hub_log_set_level((hub_log_level_t)cfg.log_level);
    /* A bad member directory is a configuration error: report it before any
     * socket is open (hub_ops loads the file again when it starts). */
    if (cfg.members_file[0] && cfg.http_listen[0]) {
        hub_memberdir_t *directory = NULL;
        if (hub_memberdir_load(cfg.members_file, &directory, err, sizeof err) != 0) {
            fprintf(stderr, "hubd: bad configuration: %s\n", err);
            return 1;
        }
        hub_memberdir_destroy(&directory);
    }
    /* The operator endpoint's language and member directory; hub_server
     * builds the endpoint's configuration without them. */
    hub_ops_site_defaults(cfg.lang, cfg.members_file);

    uv_loop_t loop;
    uv_loop_init(&loop);
    hub_server_t *server = NULL;
    int rc = hub_server_new(&loop, &cfg, &server, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "hubd: cannot start: %s\n", err);
        sd_notifyf(0, "STATUS=Cannot start: %s", err);
        uv_loop_close(&loop);
        return 1;
    }
    if (ready_file && write_ready_file(ready_file, hub_server_endpoint(server),
                                       hub_server_http_address(server)) != 0) {
        fprintf(stderr, "hubd: cannot write ready file %s\n", ready_file);
        hub_server_destroy(&server);
        uv_loop_close(&loop);
        return 1;
    }
    hubd_notify_t notify;
    notify_start(&loop, &notify);
    sd_notifyf(0, "READY=1\nSTATUS=Listening on %s\nMAINPID=%ld", hub_server_endpoint(server),
               (long)getpid());
    rc = hub_server_run(server);
    sd_notify(0, "STOPPING=1");
    notify_stop(&loop, &notify);
    hub_server_destroy(&server);
    int close_rc = uv_loop_close(&loop);
    if (close_rc != 0)
        HUB_WARN("hubd", "loop closed with handles still open", "error=%s", uv_strerror(close_rc));
    HUB_INFO("hubd", "stopped", NULL);
    return rc == 0 ? 0 : 1;
}
