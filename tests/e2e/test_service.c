/* End to end: hubd as a Debian service (issue 17). Real hubd, hubctl and
 * hub-adapter processes on 127.0.0.1:
 * - `hubd --check-config` names each problem as FILE:LINE and exits 0/1;
 * - sd_notify: READY once listening, WATCHDOG at half WatchdogSec,
 *   RELOADING then READY on SIGHUP, STOPPING on SIGTERM (a datagram socket
 *   stands in for systemd's NOTIFY_SOCKET); under journald (JOURNAL_STREAM
 *   names stderr) log lines carry <N> syslog priorities, elsewhere not;
 * - a format-1 store (09db37b's layout) is upgraded in place by hubd and
 *   delivers what it held; a newer format is refused with what to run;
 * - `hubctl backup` of a hub under load, `hubctl restore` into a fresh
 *   directory: the restored hub delivers everything that was queued when
 *   the backup was taken, once each, and its audit log verifies. */
#include "hub_error.h"
#include "hub_store.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define SENDER2 "VN/GOV/HN-SKHDT/DKKD"
#define RECEIVER "VN/GOV/VPCP/DVCQG"

static hubfix_t fix;
static char record_path[PATH_MAX];

static void setup(void)
{
    hubfix_init(&fix, "audit = yes\nredelivery_ms = 1000\n");
    HUBFIX_ADD_MEMBERS(&fix, SENDER, SENDER2, RECEIVER);
    snprintf(record_path, sizeof record_path, "%s/received.txt", fix.dir);
}

static void teardown(void) { hubfix_cleanup(&fix); }

static int run(char *const argv[], char **out)
{
    return tk_run(argv, out, 120000);
}

/* ---- check-config ------------------------------------------------------ */

START_TEST(check_config_names_each_problem)
{
    char *out = NULL;
    char *ok_argv[] = {(char *)tk_bin("hubd"), "--check-config", "--config", fix.conf_path, NULL};
    ck_assert_int_eq(run(ok_argv, &out), 0);
    ck_assert_msg(strstr(out, "is ok"), "%s", out);
    /* Development mode is worth a warning, not a failure. */
    ck_assert_msg(strstr(out, "warning: key_dir"), "%s", out);
    free(out);

    /* Three problems at once: a policy line, a missing delegations file and
     * a key file that does not exist. Each is named with its file and line. */
    char path[PATH_MAX], conf[8192];
    snprintf(path, sizeof path, "%s/policy.conf", fix.dir);
    tk_write_file(path, "# agreements\nallow VN/GOV/HN-VP/TTHC => nowhere\n");
    char *base = tk_read_file(fix.conf_path);
    snprintf(conf, sizeof conf,
             "%s\npolicy_file = policy.conf\ndelegations_file = missing.conf\n"
             "key_file = secrets/NOBODY.secret\n",
             base);
    free(base);
    tk_write_file(fix.conf_path, conf);
    /* The lines those settings are on, counted in what was written. */
    int policy_line = 0, key_line = 0, delegations_line = 0, line = 1;
    for (const char *p = conf; *p; p++) {
        if (p == conf || p[-1] == '\n') {
            if (!strncmp(p, "policy_file", 11))
                policy_line = line;
            if (!strncmp(p, "key_file = secrets/NOBODY", 25))
                key_line = line;
            if (!strncmp(p, "delegations_file", 16))
                delegations_line = line;
        }
        line += *p == '\n';
    }
    ck_assert_int_gt(policy_line, 0);
    ck_assert_int_eq(run(ok_argv, &out), 1);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/policy.conf:2: error:", fix.dir);
    ck_assert_msg(strstr(out, want), "no '%s' in:\n%s", want, out);
    snprintf(want, sizeof want, "%s:%d: error: key_file:", fix.conf_path, key_line);
    ck_assert_msg(strstr(out, want), "no '%s' in:\n%s", want, out);
    snprintf(want, sizeof want, "%s:%d: error: delegations_file:", fix.conf_path,
             delegations_line);
    ck_assert_msg(strstr(out, want), "no '%s' in:\n%s", want, out);
    ck_assert_msg(strstr(out, "test failed: 3 errors"), "%s", out);
    free(out);

    /* A syntax error in the configuration itself: its line. */
    snprintf(conf, sizeof conf, "listen = tcp://127.0.0.1:*\nkey_file secrets/x\n");
    tk_write_file(fix.conf_path, conf);
    ck_assert_int_eq(run(ok_argv, &out), 1);
    snprintf(want, sizeof want, "%s:2: error:", fix.conf_path);
    ck_assert_msg(strstr(out, want), "no '%s' in:\n%s", want, out);
    free(out);
}
END_TEST

/* ---- systemd ----------------------------------------------------------- */

typedef struct {
    int fd;
    char path[PATH_MAX];
} notify_sock_t;

static void notify_open(notify_sock_t *n)
{
    snprintf(n->path, sizeof n->path, "%s/notify.sock", fix.dir);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(n->fd, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(n->path), sizeof addr.sun_path);
    memcpy(addr.sun_path, n->path, strlen(n->path) + 1);
    ck_assert_int_eq(bind(n->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(n->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* Waits for a datagram containing `what`; the others are skipped. */
static bool notify_wait(notify_sock_t *n, const char *what, int timeout_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        char buf[1024];
        ssize_t r = recv(n->fd, buf, sizeof buf - 1, 0);
        if (r > 0) {
            buf[r] = '\0';
            if (strstr(buf, what))
                return true;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
            return false;
    }
}

START_TEST(systemd_notify_watchdog_and_priorities)
{
    notify_sock_t n;
    notify_open(&n);
    /* hubd's stderr is hubd.log (appended): JOURNAL_STREAM names it, as
     * systemd names the journal's stream. */
    tk_write_file(fix.hubd_log, "");
    struct stat st;
    ck_assert_int_eq(stat(fix.hubd_log, &st), 0);
    char stream[64];
    snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("NOTIFY_SOCKET", n.path, 1);
    setenv("WATCHDOG_USEC", "400000", 1);
    setenv("JOURNAL_STREAM", stream, 1);
    hubfix_start(&fix);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("JOURNAL_STREAM");

    ck_assert_msg(notify_wait(&n, "READY=1", 10000), "no READY=1");
    /* Half of 400 ms: at least three pings in a second. */
    int pings = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        pings += notify_wait(&n, "WATCHDOG=1", 300);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
    ck_assert_msg(pings >= 3, "only %d WATCHDOG=1 in 1 s (WatchdogSec 0.4 s)", pings);

    kill(fix.hubd, SIGHUP);
    ck_assert_msg(notify_wait(&n, "RELOADING=1", 5000), "no RELOADING=1 on SIGHUP");
    ck_assert_msg(notify_wait(&n, "READY=1", 5000), "no READY=1 after the reload");
    hubfix_stop(&fix);
    ck_assert_msg(notify_wait(&n, "STOPPING=1", 5000), "no STOPPING=1 on SIGTERM");
    close(n.fd);

    /* Every line has its priority: info <6>, warnings <4> (development
     * mode), and journalctl -p warning would select only the latter. */
    char *log = tk_read_file(fix.hubd_log);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(strstr(log, "<6>ts=") && strstr(log, "<4>ts="), "%s", log);
    char *save = NULL;
    for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        ck_assert_msg(line[0] == '<' && line[2] == '>', "line without priority: %.120s", line);
        if (strstr(line, " level=warn "))
            ck_assert_msg(line[1] == '4', "warning not at <4>: %.120s", line);
        if (strstr(line, " level=info "))
            ck_assert_msg(line[1] == '6', "info not at <6>: %.120s", line);
    }
    free(log);

    /* Not under journald: plain logfmt, as tests and scripts parse it. */
    tk_write_file(fix.hubd_log, "");
    hubfix_start(&fix);
    hubfix_stop(&fix);
    log = tk_read_file(fix.hubd_log);
    ck_assert_msg(log && !strncmp(log, "ts=", 3) && !strstr(log, "<6>"), "%s", log);
    free(log);
}
END_TEST

/* ---- store format ------------------------------------------------------ */

static pid_t start_receiver(void)
{
    char conf[2048];
    snprintf(conf, sizeof conf, "plugin.file = %s\n", record_path);
    return hubfix_start_adapter(&fix, RECEIVER, "recorder", conf);
}

/* Sets the store's format record, and with `drop_v2` removes what format 2
 * added: what a hubd of 09db37b wrote. */
static void set_store_format(uint8_t format, bool drop_v2)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/data", fix.dir);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t fb[4] = {format, 0, 0, 0};
    MDB_val k = {6, "format"}, v = {4, fb};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    if (drop_v2) {
        MDB_val idk = {8, "store_id"}, atk = {10, "created_at"};
        ck_assert_int_eq(mdb_del(txn, dbi, &idk, NULL), 0);
        ck_assert_int_eq(mdb_del(txn, dbi, &atk, NULL), 0);
    }
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

START_TEST(format_1_store_is_upgraded_by_hubd_and_newer_refused)
{
    hubfix_start(&fix);
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    for (int i = 0; i < 3; i++) {
        hubfix_send_record(a, RECEIVER, "old", i);
    }
    adp_close(&a);
    hubfix_stop(&fix);
    set_store_format(1, true);

    char dir[PATH_MAX], err[512];
    snprintf(dir, sizeof dir, "%s/data", fix.dir);
    hub_store_info_t info;
    ck_assert_int_eq(hub_store_inspect(dir, &info, err, sizeof err), 0);
    ck_assert_uint_eq(info.format, 1);
    ck_assert_uint_eq(info.messages, 3);
    /* check-config says what start-up will do. */
    char *out = NULL;
    char *check[] = {(char *)tk_bin("hubd"), "--check-config", "--config", fix.conf_path, NULL};
    ck_assert_int_eq(run(check, &out), 0);
    ck_assert_msg(strstr(out, "format 1") && strstr(out, "upgrades it in place"), "%s", out);
    free(out);

    hubfix_start(&fix);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "store upgraded in place", 5000),
                  "no upgrade logged");
    start_receiver();
    ck_assert_msg(tk_wait_lines(record_path, 3, 20000),
                  "the upgraded store did not deliver its 3 messages");
    char *rec = tk_read_file(record_path);
    ck_assert_msg(strstr(rec, "old 0") && strstr(rec, "old 1") && strstr(rec, "old 2"), "%s",
                  rec);
    free(rec);
    hubfix_stop(&fix);
    ck_assert_int_eq(hub_store_inspect(dir, &info, err, sizeof err), 0);
    ck_assert_uint_eq(info.format, HUB_STORE_FORMAT);
    ck_assert_uint_eq(strlen(info.store_id), 32);

    /* A store from a newer hubd: refused, with what to do. */
    set_store_format(HUB_STORE_FORMAT + 1, false);
    tk_write_file(fix.hubd_log, "");
    char *start[] = {(char *)tk_bin("hubd"), "--config", fix.conf_path, NULL};
    ck_assert_int_eq(run(start, &out), 1);
    ck_assert_msg(out && strstr(out, "newer hubd") && strstr(out, "hubctl restore"), "%s", out);
    free(out);
}
END_TEST

/* ---- backup and restore ------------------------------------------------ */

static long manifest_number(const char *manifest, const char *key)
{
    char want[64];
    snprintf(want, sizeof want, "\n%s = ", key);
    const char *p = strstr(manifest, want);
    ck_assert_msg(p != NULL, "no %s in MANIFEST", key);
    return strtol(p + strlen(want), NULL, 10);
}

START_TEST(backup_under_load_restore_delivers_everything_queued)
{
    hubfix_start(&fix);
    /* 2,000 messages queued for a receiver that is not running... */
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    for (int i = 0; i < 2000; i++) {
        hubfix_post_record(a, RECEIVER, "a", i);
        if (i % 200 == 199)
            adp_run(a, 0);
    }
    for (int waited = 0; adp_outbox_size(a) > 0 && waited < 600; waited++)
        adp_run(a, 100);
    ck_assert_uint_eq(adp_outbox_size(a), 0);
    adp_close(&a);

    /* ...and another sender posting while the backup is taken. */
    hubfix_sender_t load = {.batch = 50, .pause_ms = 5, .drain_ms = 60000};
    hubfix_sender_start(&load, &fix, SENDER2, RECEIVER, "record/v1", "b");
    tk_sleep_ms(300);
    char dest[PATH_MAX], *out = NULL;
    snprintf(dest, sizeof dest, "%s/backup", fix.dir);
    char *backup[] = {(char *)tk_bin("hubctl"), "backup", dest, "--hub-config", fix.conf_path,
                      NULL};
    int rc = run(backup, &out);
    int posted_during = load.posted;
    tk_sleep_ms(300);
    load.stop = true;
    hubfix_sender_join(&load);
    ck_assert_msg(rc == 0, "hubctl backup failed:\n%s", out);
    ck_assert_msg(!load.error[0], "the load failed: %s", load.error);
    ck_assert_msg(posted_during > 0, "nothing was sent during the backup");
    free(out);
    /* No secret key unless asked. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/keys/hub.secret", dest);
    ck_assert_int_ne(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/MANIFEST", dest);
    char *manifest = tk_read_file(path);
    ck_assert_ptr_nonnull(manifest);
    long queued = manifest_number(manifest, "messages");
    free(manifest);
    ck_assert_int_ge(queued, 2000);

    /* Restore refuses while a hub runs on the directories. */
    char *restore[] = {(char *)tk_bin("hubctl"), "restore", dest, "--hub-config", fix.conf_path,
                       NULL};
    ck_assert_int_eq(run(restore, &out), 1);
    ck_assert_msg(strstr(out, "running"), "%s", out);
    free(out);
    hubfix_stop(&fix);

    /* A backup changed after it was taken is refused before anything moves. */
    char conf_copy[PATH_MAX];
    snprintf(conf_copy, sizeof conf_copy, "%s/config/hubd.conf", dest);
    char *saved = tk_read_file(conf_copy);
    ck_assert_ptr_nonnull(saved);
    FILE *tamper = fopen(conf_copy, "a");
    ck_assert_ptr_nonnull(tamper);
    fputc('#', tamper);
    fclose(tamper);
    ck_assert_int_eq(run(restore, &out), 1);
    ck_assert_msg(strstr(out, "config/hubd.conf") && strstr(out, "changed"), "%s", out);
    free(out);
    tk_write_file(conf_copy, saved);
    (void)chmod(conf_copy, 0600);
    free(saved);

    /* A fresh directory: the old one moves away entirely. */
    char data[PATH_MAX], old[PATH_MAX];
    snprintf(data, sizeof data, "%s/data", fix.dir);
    snprintf(old, sizeof old, "%s/data-before", fix.dir);
    ck_assert_int_eq(rename(data, old), 0);
    ck_assert_int_eq(run(restore, &out), 0);
    ck_assert_msg(strstr(out, "audit log verified"), "%s", out);
    free(out);

    /* The restored hub delivers every message the backup held: all 2,000
     * queued before, and the load's messages up to the snapshot, each once. */
    hubfix_start(&fix);
    start_receiver();
    ck_assert_msg(tk_wait_lines(record_path, (int)queued, 60000), "only %d of %ld delivered",
                  tk_count_lines(record_path), queued);
    tk_sleep_ms(1500); /* nothing more may come */
    char *text = tk_read_file(record_path);
    int a_seen[2000] = {0}, total = 0, b_count = 0, b_max = -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *payload = strrchr(line, '\t');
        ck_assert_ptr_nonnull(payload);
        payload++;
        total++;
        if (payload[0] == 'a') {
            int i = atoi(payload + 2);
            ck_assert(i >= 0 && i < 2000);
            ck_assert_msg(++a_seen[i] == 1, "a %d delivered twice", i);
        } else {
            int i = atoi(payload + 2);
            ck_assert_msg(i == b_max + 1, "b %d after b %d: a gap or a repeat", i, b_max);
            b_max = i;
            b_count++;
        }
    }
    free(text);
    for (int i = 0; i < 2000; i++)
        ck_assert_msg(a_seen[i] == 1, "a %d lost in the restore", i);
    ck_assert_int_eq(total, (int)queued);
    ck_assert_int_le(b_count, load.posted);
    hubfix_stop(&fix);

    /* The restored audit log, continued by the restored hub, verifies. */
    char audit[PATH_MAX], hub_pub[PATH_MAX];
    snprintf(audit, sizeof audit, "%s/data/audit", fix.dir);
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    char *verify[] = {(char *)tk_bin("hubctl"), "audit", "verify", audit, "--hub-key", hub_pub,
                      NULL};
    ck_assert_msg(run(verify, &out) == 0, "audit verify:\n%s", out);
    free(out);

    /* Restoring over a store needs --force, which moves it aside intact. */
    ck_assert_int_eq(run(restore, &out), 1);
    ck_assert_msg(strstr(out, "--force"), "%s", out);
    free(out);
    char *force[] = {(char *)tk_bin("hubctl"), "restore", dest, "--hub-config", fix.conf_path,
                     "--force", NULL};
    ck_assert_int_eq(run(force, &out), 0);
    char *aside = strstr(out, "before-restore-");
    ck_assert_msg(aside != NULL, "%s", out);
    char moved[PATH_MAX];
    snprintf(moved, sizeof moved, "%s/data/%.*s/data.mdb", fix.dir,
             (int)strcspn(aside, " \n"), aside);
    ck_assert_msg(access(moved, F_OK) == 0, "%s not kept", moved);
    free(out);
}
END_TEST

TK_MAIN("e2e_service", TK_CASE("service", setup, teardown, 300, check_config_names_each_problem,
                               systemd_notify_watchdog_and_priorities,
                               format_1_store_is_upgraded_by_hubd_and_newer_refused,
                               backup_under_load_restore_delivers_everything_queued))
