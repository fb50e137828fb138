/* hubd — the Liên Thông Hub daemon. All logic lives in hub_core; this file
 * parses the command line, loads the configuration and runs the server. */
#include "hub_config.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_memberdir.h"
#include "hub_ops.h"
#include "hub_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: hubd --config FILE [--ready-file FILE]\n"
            "       hubd --help | --version\n"
            "\n"
            "Runs the Liên Thông Hub daemon: a CURVE-authenticated ZeroMQ hub that routes\n"
            "envelopes between agency members, durably (store and forward).\n"
            "\n"
            "  --config FILE      configuration (see deploy/hubd.conf.example)\n"
            "  --ready-file FILE  once listening, write 'endpoint=...', 'pid=...' and (with\n"
            "                     http_listen) 'http=HOST:PORT' lines to FILE\n"
            "                     (useful with listen = tcp://127.0.0.1:* for tests)\n"
            "\n"
            "Signals: SIGTERM/SIGINT shut down cleanly; SIGHUP re-reads the key directory;\n"
            "SIGUSR1/SIGUSR2 make the log more/less verbose.\n");
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

int main(int argc, char **argv)
{
    const char *config_path = NULL, *ready_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("hubd %s (protocol 1)\n", HUB_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strcmp(argv[i], "--ready-file") && i + 1 < argc) {
            ready_file = argv[++i];
        } else {
            fprintf(stderr, "hubd: unknown or incomplete argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!config_path) {
        fprintf(stderr, "hubd: --config FILE is required\n\n");
        usage(stderr);
        return 2;
    }
    hub_config_t cfg;
    char err[HUB_ERRMSG_MAX];
    if (hub_config_load(config_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "hubd: bad configuration: %s\n", err);
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
    rc = hub_server_run(server);
    hub_server_destroy(&server);
    int close_rc = uv_loop_close(&loop);
    if (close_rc != 0)
        HUB_WARN("hubd", "loop closed with handles still open", "error=%s", uv_strerror(close_rc));
    HUB_INFO("hubd", "stopped", NULL);
    return rc == 0 ? 0 : 1;
}
