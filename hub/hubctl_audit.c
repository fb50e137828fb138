/* hubctl audit — offline checks of the hub's audit log. */
#include "hubctl_audit.h"
#include "hub_audit.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_keys.h"

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

int hubctl_audit(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : NULL;
    const char *dir = NULL, *hub_key = NULL, *message = NULL, *service = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--hub-key") && i + 1 < argc)
            hub_key = argv[++i];
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
    if (sub && !strcmp(sub, "verify")) {
        if (!dir || !hub_key) {
            fprintf(stderr, "hubctl audit verify: usage: hubctl audit verify DIR --hub-key HUB.pub\n");
            return 2;
        }
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
        int rc = hub_audit_verify_dir(dir, kp.sign_public, &report);
        hub_keypair_wipe(&kp);
        if (rc == 0) {
            printf("audit log intact: %llu records, %llu checkpoints in %llu files; last seq %llu\n",
                   (unsigned long long)report.records, (unsigned long long)report.checkpoints,
                   (unsigned long long)report.files, (unsigned long long)report.last_seq);
            return 0;
        }
        if (rc == HUB_EAGAIN) {
            printf("audit log intact up to the last checkpoint; %llu newer records are not "
                   "sealed yet (normal while hubd runs): %s\n",
                   (unsigned long long)report.unsealed_records, report.message);
            return 0;
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
    fprintf(stderr, "hubctl audit: usage: hubctl audit verify DIR --hub-key HUB.pub\n"
                    "                     hubctl audit show DIR --message ID | --service SERVICE/VERSION\n");
    return 2;
}
