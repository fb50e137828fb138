/* hubctl audit — offline checks of the hub's audit log. */
#include "hubctl_audit.h"
#include "hubctl_opts.h"
#include "hub_audit.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_keys.h"

#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void print_time(uint64_t us)
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    printf("%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(us / 1000u % 1000u));
}

/* What `audit show` counted, for its last line. */
typedef struct {
    int records;
    int accepted_requests; /* ACCEPTED requests: the calls made */
    int accepted_other;    /* replies, events, publications */
    int refused;
    int other;             /* deliveries, settles, dead letters, … */
    const char *dir;       /* the log being read */
    const char *dir_label; /* several logs: what names a record's node when the log does not
                              ("(unnamed: DIR)"); NULL with one log */
} show_count_t;

static int on_found(const hub_audit_record_t *rec, const char *file, uint64_t line, void *user)
{
    show_count_t *count = user;
    count->records++;
    if (rec->event == HUB_AUDIT_ACCEPTED && rec->outcome && !strncmp(rec->outcome, "request", 7))
        count->accepted_requests++;
    else if (rec->event == HUB_AUDIT_ACCEPTED)
        count->accepted_other++;
    else if (rec->event == HUB_AUDIT_NACKED)
        count->refused++;
    else
        count->other++;
    print_time(rec->time_us);
    printf("  %-16s audit_seq=%llu hub_seq=%llu %s -> %s %s", hub_audit_event_name(rec->event),
           (unsigned long long)rec->seq, (unsigned long long)rec->hub_seq,
           rec->sender && *rec->sender ? rec->sender : "-",
           rec->receiver && *rec->receiver ? rec->receiver : "-",
           rec->service && *rec->service ? rec->service : "-");
    if (rec->outcome && *rec->outcome)
        printf("  outcome=\"%s\"", rec->outcome);
    if (rec->dossier && *rec->dossier)
        printf("  dossier=%s", rec->dossier);
    if (rec->purpose && *rec->purpose)
        printf("  purpose=\"%s\"", rec->purpose);
    if (rec->reason && *rec->reason)
        printf("  (%s)", rec->reason);
    if (rec->node_id && *rec->node_id)
        printf("  node=%s", rec->node_id);
    else if (count->dir_label)
        printf("  node=%s", count->dir_label);
    printf("  [%s%s%s:%llu]\n", count->dir_label ? count->dir : "", count->dir_label ? "/" : "",
           file, (unsigned long long)line);
    return 0;
}

/* "SEQ:HASH" (64 hex digits), as /api/v1/audit/head and the hub's
 * checkpoint log lines give it. */
static int parse_anchor(const char *text, uint64_t *seq, uint8_t hash[32])
{
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    size_t bin_len = 0;
    if (!end || end == text || *end != ':' || v == 0 || strlen(end + 1) != 64 ||
        sodium_hex2bin(hash, 32, end + 1, 64, NULL, &bin_len, NULL) != 0 || bin_len != 32)
        return -1;
    *seq = v;
    return 0;
}

static int rotate_key(const char *dir, const char *old_path, const char *new_path)
{
    hub_keypair_t old_kp, new_kp;
    char err[HUB_ERRMSG_MAX];
    if (hub_keyfile_read(old_path, &old_kp, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl audit rotate-key: %s\n", err);
        return 1;
    }
    if (hub_keyfile_read(new_path, &new_kp, err, sizeof err) != 0) {
        hub_keypair_wipe(&old_kp);
        fprintf(stderr, "hubctl audit rotate-key: %s\n", err);
        return 1;
    }
    int ret = 1;
    hub_audit_t *audit = NULL;
    if (!old_kp.has_sign || !old_kp.has_secret || !new_kp.has_sign || !new_kp.has_secret) {
        fprintf(stderr,
                "hubctl audit rotate-key: --old-key and --new-key must both be the hub's "
                ".secret key files (with sign-secret-key): the old key signs the hand-over, "
                "the new one proves it agrees\n");
        goto out;
    }
    hub_audit_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    memcpy(cfg.sign_secret, old_kp.sign_secret, 64);
    memcpy(cfg.sign_public, old_kp.sign_public, 32);
    int rc = hub_audit_open(dir, &cfg, &audit, err, sizeof err);
    sodium_memzero(&cfg, sizeof cfg);
    if (rc != 0) {
        fprintf(stderr,
                "hubctl audit rotate-key: %s\n(stop hubd first: the log has one writer; the "
                "old key must be the one that signed the log's last checkpoint)\n",
                err);
        goto out;
    }
    rc = hub_audit_rotate_key(audit, new_kp.sign_secret, new_kp.sign_public);
    if (rc != 0) {
        fprintf(stderr, "hubctl audit rotate-key: cannot write the rotation record: %s%s\n",
                hub_strerror(rc),
                rc == HUB_EINVAL ? " (the new key is the old one, or its halves do not match)"
                                 : "");
        goto out;
    }
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, new_kp.sign_public, 32);
    printf("audit log %s handed over to the new hub key %s at seq %" PRIu64
           " (KEY_ROTATED record, sealed by the old key); start hubd with the new key_file\n",
           dir, hex, hub_audit_seq(audit));
    ret = 0;
out:
    if (audit && hub_audit_close(&audit) != 0 && ret == 0) {
        fprintf(stderr, "hubctl audit rotate-key: could not close the log cleanly\n");
        ret = 1;
    }
    hub_keypair_wipe(&old_kp);
    hub_keypair_wipe(&new_kp);
    return ret;
}

/* Reads --hub-key's file: its sign-public-key into key. */
static int read_sign_public(const char *path, uint8_t key[32])
{
    hub_keypair_t kp;
    char err[HUB_ERRMSG_MAX];
    if (hub_keyfile_read(path, &kp, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl audit verify: %s\n", err);
        return -1;
    }
    if (!kp.has_sign) {
        hub_keypair_wipe(&kp);
        fprintf(stderr, "hubctl audit verify: %s has no sign-public-key\n", path);
        return -1;
    }
    memcpy(key, kp.sign_public, 32);
    hub_keypair_wipe(&kp);
    return 0;
}

/* Verifies one node's log and prints what it found, each line after
 * prefix ("" for a single log; "node ID (DIR): " for several). Returns 0
 * when intact (sealed or not), 1 otherwise; node gets the node's id (or
 * "" when the log names none). */
static int verify_one(const char *dir, const uint8_t key[32], hub_audit_verify_opts_t opts,
                      const char *anchor, const char *tsa_cert, bool several, char *node,
                      size_t node_size)
{
    hub_audit_verify_report_t report;
    opts.hub_sign_public = key;
    int rc = hub_audit_verify_dir_opts(dir, &opts, &report);
    /* Which node wrote the log: from the verified records, or, when the
     * verification stopped before any named it, from an unverified read. */
    snprintf(node, node_size, "%s", report.node_id);
    if (!node[0])
        hub_audit_node_of(dir, node, node_size);
    char prefix[HUB_AUDIT_WORD_MAX + PATH_MAX + 16] = "";
    if (several)
        snprintf(prefix, sizeof prefix, "node %s (%s): ", node[0] ? node : "(not named)", dir);
    if (rc == 0 || rc == HUB_EAGAIN) {
        if (rc == 0)
            printf("%saudit log intact: %llu records, %llu checkpoints in %llu files; last "
                   "seq %llu\n",
                   prefix, (unsigned long long)report.records,
                   (unsigned long long)report.checkpoints, (unsigned long long)report.files,
                   (unsigned long long)report.last_seq);
        else
            printf("%saudit log intact up to the last checkpoint; %llu newer records are not "
                   "sealed yet (normal while hubd runs): %s\n",
                   prefix, (unsigned long long)report.unsealed_records, report.message);
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, report.final_key, 32);
        printf("%skey rotations followed: %llu; key in force at the end: %s\n", prefix,
               (unsigned long long)report.key_rotations, hex);
        if (report.node_records)
            printf("%srecords written by node %s%s\n", prefix, report.node_id,
                   report.node_changed ? " (earlier records by other node ids: see the "
                                         "NODE_OPENED records)"
                                       : "");
        else
            printf("%sthe log names no node (written before node ids, or by one hubd alone)\n",
                   prefix);
        if (anchor)
            printf("%sanchor %s: found in the log\n", prefix, anchor);
        if (report.timestamps)
            printf("%stime-stamp tokens %s: %llu (checkpoints %llu to %llu)\n", prefix,
                   tsa_cert ? "verified with the TSA certificate"
                            : "present and unaltered (give --tsa-cert to check their "
                              "signatures)",
                   (unsigned long long)report.timestamps,
                   (unsigned long long)report.first_timestamped,
                   (unsigned long long)report.last_timestamped);
        else if (tsa_cert) {
            fprintf(stderr,
                    "%saudit log NOT time-stamped: --tsa-cert was given but the log "
                    "names no time-stamp token (no TIMESTAMPED record)\n",
                    prefix);
            return 1;
        }
        return 0;
    }
    if (rc == HUB_ENOENT && anchor) {
        fprintf(stderr,
                "%saudit log NOT intact: log cut back: %s, yet the anchor %s names a "
                "checkpoint: every file was removed\n",
                prefix, report.message, anchor);
        return 1;
    }
    fprintf(stderr, "%saudit log NOT intact: %s:%llu (seq %llu): %s\n", prefix, report.file,
            (unsigned long long)report.line, (unsigned long long)report.seq, report.message);
    return 1;
}

#define AUDIT_MAX_LOGS 64 /* node logs in one command */

static int verify_logs(const char **dirs, size_t n_dirs, const char **keys, size_t n_keys,
                       const char *anchor, const char *tsa_cert)
{
    if (n_dirs == 0 || (n_keys != 1 && n_keys != n_dirs)) {
        fprintf(stderr,
                "hubctl audit verify: usage: hubctl audit verify DIR... --hub-key HUB.pub... "
                "[--anchor SEQ:HASH] [--tsa-cert TSA.pem]\n"
                "  one DIR per node's audit log; --hub-key once when the nodes share the hub's "
                "key, or once per DIR, in the same order (%zu DIR, %zu --hub-key given)\n",
                n_dirs, n_keys);
        return 2;
    }
    hub_audit_verify_opts_t opts = {0};
    if (anchor && n_dirs > 1) {
        fprintf(stderr, "hubctl audit verify: --anchor names a head of one log: give it with one "
                        "DIR (verify each node's log with its own anchor)\n");
        return 2;
    }
    if (anchor && parse_anchor(anchor, &opts.anchor_seq, opts.anchor_hash) != 0) {
        fprintf(stderr,
                "hubctl audit verify: --anchor must be SEQ:HASH (a seq and 64 hex digits), "
                "as /api/v1/audit/head gives it; got '%s'\n",
                anchor);
        return 2;
    }
    opts.tsa_cert = tsa_cert;
    uint8_t key[32];
    size_t bad = 0;
    char failed[512] = "";
    for (size_t i = 0; i < n_dirs; i++) {
        if ((i == 0 || n_keys > 1) && read_sign_public(keys[n_keys > 1 ? i : 0], key) != 0)
            return 1;
        char node[HUB_AUDIT_WORD_MAX];
        if (verify_one(dirs[i], key, opts, anchor, tsa_cert, n_dirs > 1, node, sizeof node) != 0) {
            size_t used = strlen(failed);
            snprintf(failed + used, sizeof failed - used, "%s%s", bad ? ", " : "",
                     node[0] ? node : dirs[i]);
            bad++;
        }
    }
    sodium_memzero(key, sizeof key);
    if (n_dirs > 1) {
        if (bad)
            fprintf(stderr, "%zu node logs: %zu intact, %zu NOT intact (%s)\n", n_dirs,
                    n_dirs - bad, bad, failed);
        else
            printf("%zu node logs: all intact\n", n_dirs);
    }
    return bad ? 1 : 0;
}

int hubctl_audit(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : NULL;
    const char *dir = NULL, *message = NULL, *anchor = NULL, *tsa_cert = NULL;
    const char *old_key = NULL, *new_key = NULL, *service = NULL;
    const char *dirs[AUDIT_MAX_LOGS], *keys[AUDIT_MAX_LOGS];
    size_t n_dirs = 0, n_keys = 0;
    const ctl_opt_t opts[] = {{"--anchor", &anchor},
                              {"--tsa-cert", &tsa_cert},
                              {"--old-key", &old_key},
                              {"--new-key", &new_key},
                              {"--message", &message},
                              {"--service", &service},
                              {NULL, NULL}};
    for (int i = 1; i < argc; i++) {
        if (ctl_opt_take(opts, argc, argv, &i))
            continue;
        if (!strcmp(argv[i], "--hub-key") && i + 1 < argc && n_keys < AUDIT_MAX_LOGS)
            keys[n_keys++] = argv[++i];
        else if ((!strcmp(argv[i], "--dir") && i + 1 < argc) ||
                 (argv[i][0] != '-' && n_dirs < AUDIT_MAX_LOGS)) {
            if (argv[i][0] == '-')
                i++;
            dirs[n_dirs++] = argv[i];
            if (!dir)
                dir = argv[i];
        } else {
            fprintf(stderr, "hubctl audit: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (sub && !strcmp(sub, "rotate-key")) {
        if (!dir || n_dirs != 1 || !old_key || !new_key) {
            fprintf(stderr, "hubctl audit rotate-key: usage: hubctl audit rotate-key DIR "
                            "--old-key OLD.secret --new-key NEW.secret\n");
            return 2;
        }
        return rotate_key(dir, old_key, new_key);
    }
    if (sub && !strcmp(sub, "verify"))
        return verify_logs(dirs, n_dirs, keys, n_keys, anchor, tsa_cert);
    if (sub && !strcmp(sub, "show")) {
        if (!dir || (!message && !service)) {
            fprintf(stderr, "hubctl audit show: usage: hubctl audit show DIR... --message ID | "
                            "--service SERVICE/VERSION\n");
            return 2;
        }
        show_count_t count = {0};
        hub_audit_filter_t filter = {.message_id = message, .service = service};
        /* Several nodes' logs: each record says which node wrote it. */
        int rc = 0;
        for (size_t i = 0; i < n_dirs; i++) {
            char label[PATH_MAX + 16];
            snprintf(label, sizeof label, "(unnamed: %s)", dirs[i]);
            count.dir = dirs[i];
            count.dir_label = n_dirs > 1 ? label : NULL;
            int one = hub_audit_find(dirs[i], &filter, on_found, &count);
            if (one != 0 && one != HUB_ENOTFOUND && n_dirs > 1)
                fprintf(stderr, "hubctl audit show: cannot read %s: %s\n", dirs[i],
                        hub_strerror(one));
            if (i == 0 || rc == HUB_ENOTFOUND)
                rc = one;
        }
        if (rc != 0 && count.records == 0) {
            fprintf(stderr, "hubctl audit show: no record of %s %s in %s%s (%s)\n",
                    message ? "message" : "service", message ? message : service, dir,
                    n_dirs > 1 ? " nor the other logs" : "", hub_strerror(rc));
            return 1;
        }
        printf("%d records: %d requests accepted, %d other envelopes accepted (replies, events, "
               "publications), %d refused, %d other (deliveries, settles, dead letters)\n",
               count.records, count.accepted_requests, count.accepted_other, count.refused,
               count.other);
        return 0;
    }
    fprintf(
        stderr,
        "hubctl audit: usage: hubctl audit verify DIR... --hub-key HUB.pub... "
        "[--anchor SEQ:HASH] [--tsa-cert TSA.pem]\n"
        "                     hubctl audit show DIR... --message ID | --service SERVICE/VERSION\n"
        "                     hubctl audit rotate-key DIR --old-key OLD.secret "
        "--new-key NEW.secret\n");
    return 2;
}
