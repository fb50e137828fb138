/* hubctl — the operator's command-line tool for Liên Thông Hub.
 *
 * Subcommands that talk to a running hub do so as a member (the operator's
 * own key), with the connection settings in a small config file:
 *   hub_endpoint = tcp://127.0.0.1:5555
 *   hub_key_file = /etc/lth/keys/hub.pub
 *   member_key_file = /etc/lth/operator/VN.GOV.HN-LGSP.OPS.secret
 * given with --config FILE or the LTH_HUBCTL_CONFIG environment variable.
 */
#include "adp.h"
#include "hubctl_ops.h"
#include "hubctl_access.h"
#include "hubctl_archive.h"
#include "hubctl_audit.h"
#include "hubctl_backup.h"
#include "hubctl_config.h"
#include "hubctl_opts.h"
#include "hubctl_trust.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_keys.h"
#include "hub_log.h"
#include "hub_wire.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit codes, documented in `hubctl --help`. */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
    EXIT_OFFLINE = 3,
    EXIT_REFUSED = 4,
    EXIT_TIMEOUT = 5
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: hubctl [--config FILE] COMMAND [ARGS]\n"
            "\n"
            "Commands:\n"
            "  keygen MEMBER-ID DIR       write a member's CURVE and Ed25519 key pairs:\n"
            "                             DIR/<id>.pub (public) and DIR/<id>.secret (0600)\n"
            "  ping MEMBER-ID [--count N] [--timeout MS]\n"
            "                             send a ping through the hub and print the round trip\n"
            "  request RECEIVER SERVICE [--data TEXT | --data-file FILE] [--content-type T]\n"
            "          [--timeout MS] [--online-only]\n"
            "                             send a request through the hub, print the reply\n"
            "  report [--csv|--json] [--from DATE] [--to DATE] [--by submitted|decided]\n"
            "         [--procedure CODE] [--authority MEMBER-ID]\n"
            "                             reform indices per procedure and authority:\n"
            "                             received, early, on time, late, overdue,\n"
            "                             returned, average working hours, %% synced,\n"
            "                             %% online, %% e-results, %% paid online,\n"
            "                             satisfaction; of dossiers submitted (or decided)\n"
            "                             from DATE to DATE (YYYY-MM-DD, included); from\n"
            "                             the reporting member (VN/GOV/HN-VP/BAOCAO)\n"
            "  audit verify DIR --hub-key HUB.pub [--anchor SEQ:HASH] [--tsa-cert TSA.pem]\n"
            "                             check every link and signed checkpoint of the audit\n"
            "                             log (following key rotations), a head you kept, and\n"
            "                             the RFC 3161 time-stamps; names the first problem;\n"
            "                             several DIRs: one log per hub node, reported per node\n"
            "  audit rotate-key DIR --old-key OLD.secret --new-key NEW.secret\n"
            "                             hand the audit log over to a new hub key (hubd stopped)\n"
            "  audit show DIR... --message ID | --service SERVICE/VERSION\n"
            "                             the audit trail of one message, or every record of\n"
            "                             one service, with a count of each outcome and the\n"
            "                             node that wrote each record\n"
            "  backup DEST [--hub-config FILE] [--with-keys]\n"
            "  store init|info [--hub-config FILE]   create/migrate the PostgreSQL store's schema\n"
            "                             consistent copy of a running hub: store, audit log,\n"
            "                             configuration; the hub's secret key only if asked\n"
            "  restore BACKUP [--hub-config FILE] [--force]\n"
            "                             (hub stopped) put a backup back and check it\n"
            "                             (--hub-config: hubd's configuration, default\n"
            "                             /etc/lienthong/hubd.conf)\n"
            "  version                    print the version\n");
    hubctl_ops_usage(out);
    hubctl_trust_usage(out);
    hubctl_archive_usage(out);
    hubctl_access_usage(out);
    fprintf(out,
            "\n"
            "Connection settings (for ping, request) come from --config FILE or $LTH_HUBCTL_CONFIG:\n"
            "  hub_endpoint, hub_key_file (the hub's .pub), member_key_file (your .secret).\n"
            "\n"
            "Exit status: 0 success; 1 failure; 2 usage; 3 member not connected;\n"
            "4 refused (unknown member, key or agreement); 5 timed out.\n");
}

static int ctl_load_config(const char *path, hubctl_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    if (!path)
        path = getenv("LTH_HUBCTL_CONFIG");
    if (!path) {
        fprintf(stderr, "hubctl: no connection settings: pass --config FILE or set "
                        "LTH_HUBCTL_CONFIG (see hubctl --help)\n");
        return EXIT_USAGE;
    }
    char err[HUB_ERRMSG_MAX];
    if (hubctl_config_load(path, cfg, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl: bad configuration: %s\n", err);
        return EXIT_FAIL;
    }
    const hub_conf_member_t *m = &cfg->member;
    if (!m->hub_endpoint[0] || !m->hub_key_file[0] || !m->member_key_file[0]) {
        fprintf(stderr, "hubctl: %s must set hub_endpoint, hub_key_file and member_key_file\n",
                path);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int cmd_keygen(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "hubctl keygen: usage: hubctl keygen MEMBER-ID DIR\n");
        return EXIT_USAGE;
    }
    const char *problem = hub_member_id_problem(argv[0]);
    if (problem) {
        fprintf(stderr, "hubctl keygen: '%s': %s\n", argv[0], problem);
        return EXIT_USAGE;
    }
    hub_keypair_t kp;
    if (hub_keypair_generate(argv[0], &kp) != 0) {
        fprintf(stderr, "hubctl keygen: key generation failed\n");
        return EXIT_FAIL;
    }
    char pub[PATH_MAX], sec[PATH_MAX], err[HUB_ERRMSG_MAX];
    int rc = hub_keypair_write(&kp, argv[1], pub, sec, err, sizeof err);
    hub_keypair_wipe(&kp);
    if (rc != 0) {
        fprintf(stderr, "hubctl keygen: %s\n", err);
        return EXIT_FAIL;
    }
    /* Never print the secret key itself: only where it is. */
    printf("member %s\n  public keys: %s\n  secret keys: %s (mode 0600; keep it on the "
           "member's host)\n",
           argv[0], pub, sec);
    return EXIT_OK;
}

static int ctl_exit_for(int rc, int nack_code)
{
    if (rc == HUB_ETIMEDOUT)
        return EXIT_TIMEOUT;
    if (rc == HUB_EREFUSED)
        return EXIT_REFUSED;
    if (rc == HUB_ENACK)
        return nack_code == LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE ? EXIT_OFFLINE
                                                                      : EXIT_REFUSED;
    return EXIT_FAIL;
}

/* Connects to the hub as the member of the connection settings at path
 * (ctl_load_config) for command `cmd`; EXIT_OK with *client open, or the
 * exit status after saying why. */
static int ctl_connect(const char *cmd, const char *path, long timeout_ms, adp_client_t **client)
{
    hubctl_config_t cfg;
    int status = ctl_load_config(path, &cfg);
    if (status != EXIT_OK)
        return status;
    adp_config_t acfg = {cfg.member.hub_endpoint, cfg.member.hub_key_file,
                         cfg.member.member_key_file, (uint32_t)timeout_ms, "hubctl " HUB_VERSION};
    char err[HUB_ERRMSG_MAX];
    int rc = adp_connect(&acfg, client, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "hubctl %s: cannot reach the hub: %s\n", cmd, err);
        return ctl_exit_for(rc, 0);
    }
    return EXIT_OK;
}

static int cmd_ping(const char *config_path, int argc, char **argv)
{
    const char *target = NULL;
    long count = 1, timeout_ms = 3000;
    const ctl_num_opt_t nums[] = {{"--count", &count}, {"--timeout", &timeout_ms}, {NULL, NULL}};
    for (int i = 0; i < argc; i++) {
        if (ctl_num_take(nums, argc, argv, &i))
            continue;
        if (!target && argv[i][0] != '-')
            target = argv[i];
        else {
            fprintf(stderr, "hubctl ping: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!target || count < 1 || timeout_ms < 1) {
        fprintf(stderr, "hubctl ping: usage: hubctl ping MEMBER-ID [--count N] [--timeout MS]\n");
        return EXIT_USAGE;
    }
    const char *problem = hub_member_id_problem(target);
    if (problem) {
        fprintf(stderr, "hubctl ping: '%s': %s\n", target, problem);
        return EXIT_USAGE;
    }
    adp_client_t *client = NULL;
    int status = ctl_connect("ping", config_path, timeout_ms, &client);
    if (status != EXIT_OK)
        return status;
    for (long i = 0; i < count && status == EXIT_OK; i++) {
        char payload[64];
        int len = snprintf(payload, sizeof payload, "ping %ld", i + 1);
        uint64_t start = hub_monotonic_us();
        adp_reply_t reply;
        int rc = adp_request(client, target, ADP_PING_SERVICE, "text/plain", payload, (size_t)len,
                             ADP_ONLINE_ONLY, (uint32_t)timeout_ms, &reply);
        uint64_t rtt = hub_monotonic_us() - start;
        if (rc == 0) {
            bool same = reply.payload_len == (size_t)len && !memcmp(reply.payload, payload, (size_t)len);
            if (!same) {
                fprintf(stderr, "hubctl ping: %s answered with a different payload\n", target);
                status = EXIT_FAIL;
            } else {
                printf("pong from %s: seq=%ld time=%.3f ms\n", target, i + 1, rtt / 1000.0);
            }
            adp_reply_free(&reply);
        } else {
            fprintf(stderr, "hubctl ping: %s: %s\n", target,
                    rc == HUB_ETIMEDOUT && adp_last_nack_code(client) == 0
                        ? "no answer in time (the member is connected but did not reply)"
                        : adp_last_error(client));
            status = ctl_exit_for(rc, adp_last_nack_code(client));
        }
    }
    adp_close(&client);
    return status;
}

static int cmd_request(const char *config_path, int argc, char **argv)
{
    const char *receiver = NULL, *service = NULL, *data = "", *data_file = NULL;
    const char *content_type = "application/json";
    long timeout_ms = 10000;
    int flags = 0;
    const ctl_opt_t opts[] = {{"--data", &data},
                              {"--data-file", &data_file},
                              {"--content-type", &content_type},
                              {NULL, NULL}};
    const ctl_num_opt_t nums[] = {{"--timeout", &timeout_ms}, {NULL, NULL}};
    for (int i = 0; i < argc; i++) {
        if (ctl_opt_take(opts, argc, argv, &i) || ctl_num_take(nums, argc, argv, &i))
            continue;
        if (!strcmp(argv[i], "--online-only"))
            flags |= ADP_ONLINE_ONLY;
        else if (argv[i][0] != '-' && !receiver)
            receiver = argv[i];
        else if (argv[i][0] != '-' && !service)
            service = argv[i];
        else {
            fprintf(stderr, "hubctl request: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!receiver || !service || timeout_ms < 1) {
        fprintf(stderr, "hubctl request: usage: hubctl request RECEIVER SERVICE [--data TEXT]\n");
        return EXIT_USAGE;
    }
    if (!hub_member_id_valid(receiver) || !hub_service_valid(service)) {
        fprintf(stderr, "hubctl request: RECEIVER must be a member id and SERVICE "
                        "SERVICE/VERSION, e.g. citizen.lookup/v1\n");
        return EXIT_USAGE;
    }
    char *file_data = NULL;
    size_t len = strlen(data);
    if (data_file) {
        FILE *f = fopen(data_file, "rb");
        if (!f) {
            fprintf(stderr, "hubctl request: cannot read %s\n", data_file);
            return EXIT_FAIL;
        }
        file_data = malloc(64u << 20);
        len = file_data ? fread(file_data, 1, 64u << 20, f) : 0;
        fclose(f);
        data = file_data ? file_data : "";
    }
    adp_client_t *client = NULL;
    int status = ctl_connect("request", config_path, timeout_ms, &client);
    if (status != EXIT_OK) {
        free(file_data);
        return status;
    }
    adp_reply_t reply;
    int rc = adp_request(client, receiver, service, content_type, data, len, flags,
                     (uint32_t)timeout_ms, &reply);
    if (rc == 0) {
        fwrite(reply.payload, 1, reply.payload_len, stdout);
        if (reply.payload_len && reply.payload[reply.payload_len - 1] != '\n')
            fputc('\n', stdout);
        adp_reply_free(&reply);
    } else {
        fprintf(stderr, "hubctl request: %s\n", adp_last_error(client));
        status = ctl_exit_for(rc, adp_last_nack_code(client));
    }
    adp_close(&client);
    free(file_data);
    return status;
}

/* `hubctl report`: the reporting member's report.query/v1 (proto/DOMAIN.md),
 * as a table or CSV. */
static int cmd_report(const char *config_path, int argc, char **argv)
{
    const char *format = "table", *member = "VN/GOV/HN-VP/BAOCAO";
    const char *procedure = NULL, *authority = NULL, *from = NULL, *to = NULL, *by = NULL;
    const ctl_opt_t opts[] = {{"--from", &from},
                              {"--to", &to},
                              {"--by", &by},
                              {"--member", &member},
                              {"--procedure", &procedure},
                              {"--authority", &authority},
                              {NULL, NULL}};
    for (int i = 0; i < argc; i++) {
        if (ctl_opt_take(opts, argc, argv, &i))
            continue;
        if (!strcmp(argv[i], "--csv"))
            format = "csv";
        else if (!strcmp(argv[i], "--json"))
            format = "json";
        else {
            fprintf(stderr, "hubctl report: usage: hubctl report [--csv|--json] "
                            "[--from YYYY-MM-DD] [--to YYYY-MM-DD] [--by submitted|decided] "
                            "[--procedure CODE] [--authority MEMBER-ID] "
                            "[--member REPORTING-MEMBER]\n");
            return EXIT_USAGE;
        }
    }
    if ((procedure && strpbrk(procedure, "\"\\")) || (authority && !hub_member_id_valid(authority))) {
        fprintf(stderr, "hubctl report: --procedure holds a code, --authority a member id\n");
        return EXIT_USAGE;
    }
    const char *dates[] = {from, to};
    for (int i = 0; i < 2; i++) {
        const char *d = dates[i];
        bool ok = !d || (strlen(d) == 10 && d[4] == '-' && d[7] == '-');
        for (int k = 0; ok && d && k < 10; k++)
            ok = k == 4 || k == 7 || (d[k] >= '0' && d[k] <= '9');
        if (!ok) {
            fprintf(stderr,
                    "hubctl report: --%s takes a date YYYY-MM-DD (Asia/Ho_Chi_Minh), e.g. "
                    "2026-07-01\n",
                    i ? "to" : "from");
            return EXIT_USAGE;
        }
    }
    if (by && strcmp(by, "submitted") != 0 && strcmp(by, "decided") != 0) {
        fprintf(stderr, "hubctl report: --by takes submitted (the default) or decided\n");
        return EXIT_USAGE;
    }
    char data[1024];
    int n = snprintf(data, sizeof data, "{\"format\":\"%s\"", format);
    if (from)
        n += snprintf(data + n, sizeof data - (size_t)n, ",\"from\":\"%s\"", from);
    if (to)
        n += snprintf(data + n, sizeof data - (size_t)n, ",\"to\":\"%s\"", to);
    if (by)
        n += snprintf(data + n, sizeof data - (size_t)n, ",\"by\":\"%s\"", by);
    if (procedure)
        n += snprintf(data + n, sizeof data - (size_t)n, ",\"procedure_code\":\"%s\"", procedure);
    if (authority)
        n += snprintf(data + n, sizeof data - (size_t)n, ",\"authority\":\"%s\"", authority);
    snprintf(data + n, sizeof data - (size_t)n, "}");
    char *args[] = {(char *)member, "report.query/v1", "--data", data, NULL};
    return cmd_request(config_path, 4, args);
}

/* `hubctl CMD --help`: the lines of `hubctl --help` about CMD (a line that
 * starts with "  CMD" and the deeper-indented lines under it; for the HTTP
 * commands also the notes in parentheses), then the settings and exit
 * status. One text for both, so they cannot disagree. Returns false when
 * no line is about CMD. */
static bool command_usage(const char *cmd, FILE *out)
{
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    if (!mem)
        return false;
    usage(mem);
    if (fclose(mem) != 0 || !text) {
        free(text);
        return false;
    }
    size_t cmd_len = strlen(cmd);
    bool ops = hubctl_ops_is_command(cmd), shown = false, in_block = false, in_tail = false;
    fprintf(out, "Usage: hubctl [--config FILE] ");
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        bool head = line[0] == ' ' && line[1] == ' ' && line[2] != ' ';
        if (!strncmp(line, "Connection settings", 19))
            in_tail = true;
        if (in_tail) {
            fprintf(out, "%s%s\n", !strncmp(line, "Connection", 10) || !strncmp(line, "Exit", 4)
                                       ? "\n" : "", line);
            continue;
        }
        if (head)
            in_block = (!strncmp(line + 2, cmd, cmd_len) &&
                        (line[2 + cmd_len] == ' ' || line[2 + cmd_len] == '\0')) ||
                       (ops && line[2] == '(');
        if (!in_block || line[0] != ' ')
            continue;
        fprintf(out, "%s\n", shown ? line : line + 2);
        shown = true;
    }
    free(text);
    return shown;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int i = 1;
    hub_log_set_level(HUB_LOG_WARN);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--version")) {
            printf("hubctl %s\n", HUB_VERSION);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else {
            fprintf(stderr, "hubctl: unknown option '%s'\n\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[i++];
    /* Every command answers --help (or -h) the same way, wherever it is. */
    for (int k = i; k < argc; k++) {
        if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
            if (command_usage(cmd, stdout))
                return EXIT_OK;
            break; /* not a command: the unknown-command message below */
        }
    }
    if (!strcmp(cmd, "keygen"))
        return cmd_keygen(argc - i, argv + i);
    if (!strcmp(cmd, "ping"))
        return cmd_ping(config_path, argc - i, argv + i);
    if (!strcmp(cmd, "archive"))
        return hubctl_archive_main(argc - i, argv + i);
    if (!strcmp(cmd, "audit") && i < argc && !strcmp(argv[i], "access"))
        return hubctl_access_main(argc - i - 1, argv + i + 1);
    if (!strcmp(cmd, "audit"))
        return hubctl_audit(argc - i, argv + i);
    if (!strcmp(cmd, "backup"))
        return hubctl_backup_main(argc - i, argv + i);
    if (!strcmp(cmd, "store"))
        return hubctl_store_main(argc - i, argv + i);
    if (!strcmp(cmd, "restore"))
        return hubctl_restore_main(argc - i, argv + i);
    if (!strcmp(cmd, "request"))
        return cmd_request(config_path, argc - i, argv + i);
    if (!strcmp(cmd, "report"))
        return cmd_report(config_path, argc - i, argv + i);
    if (hubctl_ops_is_command(cmd))
        return hubctl_ops_main(config_path, cmd, argc - i, argv + i);
    if (hubctl_trust_is_command(cmd))
        return hubctl_trust_main(cmd, argc - i, argv + i);
    if (!strcmp(cmd, "version")) {
        printf("hubctl %s\n", HUB_VERSION);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "hubctl: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
