/* hubctl archive — make an archive key, show an archived message, check the
 * archive's files. */
#include "hubctl_archive.h"
#include "hubctl_opts.h"
#include "hub_archive.h"
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_wire.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

void hubctl_archive_usage(FILE *out)
{
    fprintf(out,
            "  archive keygen FILE        write a new message-archive key (32 random bytes,\n"
            "                             mode 0600) for hubd's archive_key_file\n"
            "  archive show DIR --message ID --key FILE [--hub-key HUB.pub]\n"
            "                             decrypt and print one archived message: metadata and\n"
            "                             payload (checks the files it reads on the way)\n"
            "  archive verify DIR [--key FILE] [--hub-key HUB.pub]\n"
            "                             check every archive file's seal and chain; with --key\n"
            "                             also decrypt and authenticate every record\n");
}

static void print_time(const char *label, uint64_t us)
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    printf("%-15s %04d-%02d-%02dT%02d:%02d:%02d.%06uZ\n", label, tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (unsigned)(us % 1000000u));
}

/* Printable UTF-8 text (tabs and newlines allowed)? */
static bool is_text(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t') || p[i] == 0x7f)
            return false;
    return true;
}

static const char *kind_name(int kind)
{
    static const char *const names[] = {"REQUEST", "REPLY", "EVENT"};
    return kind >= 0 && kind < 3 ? names[kind] : "?";
}

static int on_found(const hub_archive_entry_t *e, const char *file, void *user)
{
    int *count = user;
    if ((*count)++)
        printf("\n");
    printf("message_id      %s\n", e->message_id);
    printf("hub_seq         %llu\n", (unsigned long long)e->hub_seq);
    printf("sender          %s\n", e->sender);
    printf("receiver        %s\n", e->receiver);
    printf("service         %s\n", e->service);
    print_time("accepted_at", e->accepted_at_us);
    print_time("archived_at", e->archived_at_us);
    printf("archive_file    %s\n", file);
    hub_envelope_t *env = NULL;
    if (hub_envelope_decode(e->envelope, e->envelope_len, &env) != 0) {
        printf("envelope        %zu bytes that do not decode as an lth.v1.Envelope\n",
               e->envelope_len);
        return 0;
    }
    printf("correlation_id  %s\n", env->correlation_id ? env->correlation_id : "");
    print_time("created_at", env->created_at_us);
    printf("ttl_ms          %u\n", (unsigned)env->ttl_ms);
    printf("kind            %s\n", kind_name((int)env->kind));
    printf("content_type    %s\n", env->content_type ? env->content_type : "");
    printf("signature       %s\n", env->signature.len ? "present (Ed25519)" : "none");
    printf("payload_bytes   %zu\n", env->payload.len);
    if (is_text(env->payload.data, env->payload.len)) {
        printf("payload (text)\n%.*s\n", (int)env->payload.len, (const char *)env->payload.data);
    } else {
        size_t b64_len = sodium_base64_encoded_len(env->payload.len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(b64_len);
        if (b64) {
            sodium_bin2base64(b64, b64_len, env->payload.data, env->payload.len,
                              sodium_base64_VARIANT_ORIGINAL);
            printf("payload (base64)\n%s\n", b64);
            free(b64);
        }
    }
    hub_envelope_free(&env);
    return 0;
}

static int read_hub_key(const char *path, uint8_t out[32])
{
    hub_keypair_t kp;
    char err[HUB_ERRMSG_MAX];
    if (hub_keyfile_read(path, &kp, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl archive: %s\n", err);
        return EXIT_FAIL;
    }
    if (!kp.has_sign) {
        fprintf(stderr, "hubctl archive: %s has no sign-public-key\n", path);
        hub_keypair_wipe(&kp);
        return EXIT_FAIL;
    }
    memcpy(out, kp.sign_public, 32);
    hub_keypair_wipe(&kp);
    return EXIT_OK;
}

static void print_problem(const char *what, const hub_archive_report_t *r)
{
    if (r->file[0] && r->record)
        fprintf(stderr, "%s: %s record %llu: %s\n", what, r->file,
                (unsigned long long)r->record, r->message);
    else
        fprintf(stderr, "%s: %s\n", what, r->message);
}

int hubctl_archive_main(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : NULL;
    if (sub && !strcmp(sub, "keygen")) {
        if (argc != 2) {
            fprintf(stderr, "hubctl archive keygen: usage: hubctl archive keygen FILE\n");
            return EXIT_USAGE;
        }
        hub_archive_key_t key;
        char err[HUB_ERRMSG_MAX];
        if (hub_archive_key_generate(argv[1], &key, err, sizeof err) != 0) {
            fprintf(stderr, "hubctl archive keygen: %s\n", err);
            return EXIT_FAIL;
        }
        char id[17];
        hub_archive_key_id_hex(key.id, id);
        sodium_memzero(&key, sizeof key);
        printf("wrote %s (mode 0600), key id %s: set archive_key_file = %s in hubd.conf, and "
               "keep a copy where an auditor can reach it: without it the archive cannot be "
               "read\n",
               argv[1], id, argv[1]);
        return EXIT_OK;
    }
    const char *dir = NULL, *key_path = NULL, *hub_key = NULL, *message = NULL;
    const ctl_opt_t opts[] = {
        {"--key", &key_path}, {"--hub-key", &hub_key}, {"--message", &message}, {NULL, NULL}};
    for (int i = 1; i < argc; i++) {
        if (ctl_opt_take(opts, argc, argv, &i))
            continue;
        if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else {
            fprintf(stderr, "hubctl archive: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    bool show = sub && !strcmp(sub, "show"), verify = sub && !strcmp(sub, "verify");
    if ((!show && !verify) || !dir || (show && (!message || !key_path))) {
        fprintf(stderr, "hubctl archive: usage:\n");
        hubctl_archive_usage(stderr);
        return EXIT_USAGE;
    }
    uint8_t sign_public[32];
    if (hub_key && read_hub_key(hub_key, sign_public) != EXIT_OK)
        return EXIT_FAIL;
    hub_archive_key_t key;
    char err[HUB_ERRMSG_MAX];
    if (key_path && hub_archive_key_read(key_path, &key, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl archive %s: %s\n", sub, err);
        return EXIT_FAIL;
    }
    hub_archive_report_t report;
    int count = 0;
    int rc = hub_archive_read_dir(dir, hub_key ? sign_public : NULL, key_path ? &key : NULL,
                                  show ? message : NULL, show ? on_found : NULL, &count, &report);
    sodium_memzero(&key, sizeof key);
    if (show) {
        if (rc != 0 && rc != HUB_EAGAIN) {
            print_problem(count ? "hubctl archive show: the archive is NOT intact"
                                : "hubctl archive show",
                          &report);
            return EXIT_FAIL;
        }
        if (count == 0) {
            fprintf(stderr,
                    "hubctl archive show: message %s is not in the archive %s (%llu records in "
                    "%llu files read%s)\n",
                    message, dir, (unsigned long long)report.records,
                    (unsigned long long)report.files,
                    report.other_key_files ? "; some files need another key" : "");
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
    if (rc == 0 || rc == HUB_EAGAIN) {
        printf("archive intact: %llu files (%llu sealed%s), %llu records",
               (unsigned long long)report.files, (unsigned long long)report.sealed_files,
               hub_key ? ", seals signed by the hub key" : "; give --hub-key to check signatures",
               (unsigned long long)report.records);
        if (key_path)
            printf(", %llu decrypted and authenticated", (unsigned long long)report.decrypted);
        if (report.other_key_files)
            printf(", %llu files written with another key", (unsigned long long)report.other_key_files);
        printf("\n");
        if (rc == HUB_EAGAIN)
            printf("%s\n", report.message);
        return EXIT_OK;
    }
    print_problem("archive NOT intact", &report);
    return EXIT_FAIL;
}
