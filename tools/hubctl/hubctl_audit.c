/* hubctl audit — offline checks of the hub's audit log. */
#include "hubctl_audit.h"
#include "hub_audit.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_keys.h"

#include <inttypes.h>
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
    printf("  [%s:%llu]\n", file, (unsigned long long)line);
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

int hubctl_audit(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : NULL;
    const char *dir = NULL, *hub_key = NULL, *message = NULL, *anchor = NULL, *tsa_cert = NULL;
    const char *old_key = NULL, *new_key = NULL, *service = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--hub-key") && i + 1 < argc)
            hub_key = argv[++i];
        else if (!strcmp(argv[i], "--anchor") && i + 1 < argc)
            anchor = argv[++i];
        else if (!strcmp(argv[i], "--tsa-cert") && i + 1 < argc)
            tsa_cert = argv[++i];
        else if (!strcmp(argv[i], "--old-key") && i + 1 < argc)
            old_key = argv[++i];
        else if (!strcmp(argv[i], "--new-key") && i + 1 < argc)
            new_key = argv[++i];
        else if (!strcmp(argv[i], "--message") && i + 1 < argc)
            message = argv[++i];
        else if (!strcmp(argv[i], "--service") && i + 1 < argc)
            service = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else {
            fprintf(stderr, "hubctl audit: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (sub && !strcmp(sub, "rotate-key")) {
        if (!dir || !old_key || !new_key) {
            fprintf(stderr, "hubctl audit rotate-key: usage: hubctl audit rotate-key DIR "
                            "--old-key OLD.secret --new-key NEW.secret\n");
            return 2;
        }
        return rotate_key(dir, old_key, new_key);
    }
    if (sub && !strcmp(sub, "verify")) {
        if (!dir || !hub_key) {
            fprintf(stderr, "hubctl audit verify: usage: hubctl audit verify DIR --hub-key HUB.pub "
                            "[--anchor SEQ:HASH] [--tsa-cert TSA.pem]\n");
            return 2;
        }
        hub_audit_verify_opts_t opts = {0};
        if (anchor && parse_anchor(anchor, &opts.anchor_seq, opts.anchor_hash) != 0) {
            fprintf(stderr,
                    "hubctl audit verify: --anchor must be SEQ:HASH (a seq and 64 hex digits), "
                    "as /api/v1/audit/head gives it; got '%s'\n",
                    anchor);
            return 2;
        }
        opts.tsa_cert = tsa_cert;
        hub_keypair_t kp;
        char err[HUB_ERRMSG_MAX];
        if (hub_keyfile_read(hub_key, &kp, err, sizeof err) != 0) {
            fprintf(stderr, "hubctl audit verify: %s\n", err);
            return 1;
        }
        if (!kp.has_sign) {
            fprintf(stderr, "hubctl audit verify: %s has no sign-public-key\n", hub_key);
            return 1;
        }
        hub_audit_verify_report_t report;
        opts.hub_sign_public = kp.sign_public;
        int rc = hub_audit_verify_dir_opts(dir, &opts, &report);
        hub_keypair_wipe(&kp);
        if (rc == 0 || rc == HUB_EAGAIN) {
            if (rc == 0)
                printf("audit log intact: %llu records, %llu checkpoints in %llu files; last "
                       "seq %llu\n",
                       (unsigned long long)report.records, (unsigned long long)report.checkpoints,
                       (unsigned long long)report.files, (unsigned long long)report.last_seq);
            else
                printf("audit log intact up to the last checkpoint; %llu newer records are not "
                       "sealed yet (normal while hubd runs): %s\n",
                       (unsigned long long)report.unsealed_records, report.message);
            char hex[65];
            sodium_bin2hex(hex, sizeof hex, report.final_key, 32);
            printf("key rotations followed: %llu; key in force at the end: %s\n",
                   (unsigned long long)report.key_rotations, hex);
            if (anchor)
                printf("anchor %s: found in the log\n", anchor);
            if (report.timestamps)
                printf("time-stamp tokens %s: %llu (checkpoints %llu to %llu)\n",
                       tsa_cert ? "verified with the TSA certificate" : "present and unaltered "
                                                                        "(give --tsa-cert to "
                                                                        "check their signatures)",
                       (unsigned long long)report.timestamps,
                       (unsigned long long)report.first_timestamped,
                       (unsigned long long)report.last_timestamped);
            else if (tsa_cert) {
                fprintf(stderr, "audit log NOT time-stamped: --tsa-cert was given but the log "
                                "names no time-stamp token (no TIMESTAMPED record)\n");
                return 1;
            }
            return 0;
        }
        if (rc == HUB_ENOENT && anchor) {
            fprintf(stderr, "audit log NOT intact: log cut back: %s, yet the anchor %s names a "
                            "checkpoint: every file was removed\n",
                    report.message, anchor);
            return 1;
        }
        fprintf(stderr, "audit log NOT intact: %s:%llu (seq %llu): %s\n", report.file,
                (unsigned long long)report.line, (unsigned long long)report.seq, report.message);
        return 1;
    }
    if (sub && !strcmp(sub, "show")) {
        if (!dir || (!message && !service)) {
            fprintf(stderr, "hubctl audit show: usage: hubctl audit show DIR --message ID | "
                            "--service SERVICE/VERSION\n");
            return 2;
        }
        show_count_t count = {0};
        hub_audit_filter_t filter = {.message_id = message, .service = service};
        int rc = hub_audit_find(dir, &filter, on_found, &count);
        if (rc != 0 && count.records == 0) {
            fprintf(stderr, "hubctl audit show: no record of %s %s in %s (%s)\n",
                    message ? "message" : "service", message ? message : service, dir,
                    hub_strerror(rc));
            return 1;
        }
        printf("%d records: %d requests accepted, %d other envelopes accepted (replies, events, "
               "publications), %d refused, %d other (deliveries, settles, dead letters)\n",
               count.records, count.accepted_requests, count.accepted_other, count.refused,
               count.other);
        return 0;
    }
    fprintf(stderr, "hubctl audit: usage: hubctl audit verify DIR --hub-key HUB.pub "
                    "[--anchor SEQ:HASH] [--tsa-cert TSA.pem]\n"
                    "                     hubctl audit show DIR --message ID | --service SERVICE/VERSION\n"
                    "                     hubctl audit rotate-key DIR --old-key OLD.secret "
                    "--new-key NEW.secret\n");
    return 2;
}
