/* End to end: the message archive (hub_archive.h) of a real hubd. A message
 * sent through the hub comes back whole from `hubctl archive show` with the
 * archive key; a wrong key, a key file with the wrong mode or size, a
 * tampered archive file and a forged seal are each refused with a sentence
 * saying so; a file left open by a crash is sealed at the next start;
 * expired files are deleted on schedule by the running hub. */
#define _GNU_SOURCE /* memmem */
#include "hub_archive.h"
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_wire.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-STP/HOTICH"
#define RECEIVER "VN/GOV/HN-VP/TTHC"
#define PAYLOAD "{\"dossier_code\":\"000.00.01.H26-261203-0042\",\"status\":\"DONE\"}"
#define MESSAGE_ID "7b0c5f7e-2f4e-4d1a-9a51-3c8f6b2d9e10"

static hubfix_t fix;
static char archive_dir[PATH_MAX], key_path[PATH_MAX], hub_pub[PATH_MAX];

static void keygen(const char *path)
{
    char *argv[] = {(char *)tk_bin("hubctl"), "archive", "keygen", (char *)path, NULL};
    TK_RUN_SAYS(argv, 10000, 0, "key id");
}

static void start_hub(uint32_t retention_days)
{
    char extra[256];
    snprintf(extra, sizeof extra,
             "archive_dir = archive\narchive_key_file = archive.key\n"
             "archive_retention_days = %u\n",
             (unsigned)retention_days);
    hubfix_init(&fix, extra);
    snprintf(archive_dir, sizeof archive_dir, "%s/archive", fix.dir);
    snprintf(key_path, sizeof key_path, "%s/archive.key", fix.dir);
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    HUBFIX_ADD_MEMBERS(&fix, SENDER, RECEIVER);
    keygen(key_path);
}

/* Sends the test message (and one more, whose ACK means both are stored). */
static void send_message(void)
{
    adp_client_t *c = hubfix_connect(&fix, SENDER);
    ck_assert_int_eq(adp_post_event_as(c, MESSAGE_ID, 0, RECEIVER, "dossier.status/v1",
                                       "application/json", PAYLOAD, strlen(PAYLOAD), 0),
                     0);
    ck_assert_int_eq(adp_send_event(c, RECEIVER, "dossier.status/v1", "text/plain", "second", 6,
                                    0, 10000, NULL),
                     0);
    adp_close(&c);
}

/* Runs hubctl with args; returns its exit code, output in *out. */
static int hubctl(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
                  const char *a5, const char *a6, const char *a7, const char *a8)
{
    char *argv[] = {(char *)tk_bin("hubctl"), (char *)a1, (char *)a2, (char *)a3, (char *)a4,
                    (char *)a5, (char *)a6, (char *)a7, (char *)a8, NULL};
    return tk_run(argv, out, 20000);
}

static int show(char **out, const char *key)
{
    return hubctl(out, "archive", "show", archive_dir, "--message", MESSAGE_ID, "--key", key,
                  NULL);
}

static int verify(char **out)
{
    return hubctl(out, "archive", "verify", archive_dir, "--key", key_path, "--hub-key", hub_pub,
                  NULL);
}

static void teardown(void) { hubfix_cleanup(&fix); }

static void first_file(char *out)
{
    snprintf(out, PATH_MAX, "%s/archive-000001.lar", archive_dir);
}

START_TEST(round_trip_shows_the_whole_message)
{
    start_hub(30);
    hubfix_start(&fix);
    send_message();
    hubfix_stop(&fix); /* seals the file */
    char *out = NULL;
    int rc = show(&out, key_path);
    ck_assert_msg(rc == 0, "show failed (%d): %s", rc, out ? out : "");
    ck_assert_msg(strstr(out, "message_id      " MESSAGE_ID), "%s", out);
    ck_assert_msg(strstr(out, "sender          " SENDER), "%s", out);
    ck_assert_msg(strstr(out, "receiver        " RECEIVER), "%s", out);
    ck_assert_msg(strstr(out, "service         dossier.status/v1"), "%s", out);
    ck_assert_msg(strstr(out, "content_type    application/json"), "%s", out);
    ck_assert_msg(strstr(out, "payload (text)\n" PAYLOAD "\n"), "%s", out);
    free(out);
    /* The payload is not in the file in clear. */
    char path[PATH_MAX];
    first_file(path);
    char *raw = tk_read_file(path);
    ck_assert_ptr_nonnull(raw);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_ptr_null(memmem(raw, (size_t)st.st_size, "H26-261203-0042", 15));
    ck_assert_ptr_null(memmem(raw, (size_t)st.st_size, SENDER, strlen(SENDER)));
    free(raw);
    rc = verify(&out);
    ck_assert_msg(rc == 0 && strstr(out, "archive intact: 1 files (1 sealed"), "verify: %s", out);
    ck_assert_msg(strstr(out, "2 decrypted and authenticated"), "%s", out);
    free(out);
}
END_TEST

/* Online-only envelopes are never stored, but they are exchanged all the
 * same (the citizen look-ups are online-only): the archive keeps them too. */
START_TEST(online_only_messages_are_archived_too)
{
    start_hub(30);
    hubfix_start(&fix);
    adp_client_t *rcv = hubfix_connect(&fix, RECEIVER);
    adp_client_t *c = hubfix_connect(&fix, SENDER);
    const char *online_id = "2d7c1a9e-5b3f-4e8a-9c0d-7f6e5d4c3b2a";
    ck_assert_int_eq(adp_post_event_as(c, online_id, 0, RECEIVER, "dossier.status/v1",
                                       "application/json", PAYLOAD, strlen(PAYLOAD),
                                       ADP_ONLINE_ONLY),
                     0);
    /* A queued one after it: its ACK comes after a commit, which archives
     * what the loop accepted before it. */
    ck_assert_int_eq(adp_send_event(c, RECEIVER, "dossier.status/v1", "text/plain", "second", 6,
                                    0, 10000, NULL),
                     0);
    adp_close(&c);
    adp_close(&rcv);
    hubfix_stop(&fix);
    char *out = NULL;
    int rc = hubctl(&out, "archive", "show", archive_dir, "--message", online_id, "--key",
                    key_path, NULL);
    ck_assert_msg(rc == 0, "show failed (%d): %s", rc, out ? out : "");
    ck_assert_msg(strstr(out, "sender          " SENDER) && strstr(out, "payload (text)\n" PAYLOAD),
                  "%s", out);
    free(out);
}
END_TEST

START_TEST(wrong_key_is_refused)
{
    start_hub(30);
    hubfix_start(&fix);
    send_message();
    hubfix_stop(&fix);
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s/other.key", fix.dir);
    keygen(other);
    char *out = NULL;
    ck_assert_int_eq(show(&out, other), 1);
    ck_assert_msg(strstr(out, "no archive file") && strstr(out, "written with this key"), "%s",
                  out);
    free(out);
    /* A key file others may read is refused, by hubctl and by hubd. */
    ck_assert_int_eq(chmod(key_path, 0644), 0);
    ck_assert_int_eq(show(&out, key_path), 1);
    ck_assert_msg(strstr(out, "mode 0644") && strstr(out, "chmod 600"), "%s", out);
    free(out);
    char *argv[] = {(char *)tk_bin("hubd"), "--config", fix.conf_path, NULL};
    ck_assert_int_ne(tk_run(argv, &out, 20000), 0);
    ck_assert_msg(strstr(out, "archive key file") && strstr(out, "mode 0644"), "hubd: %s", out);
    free(out);
    char *check[] = {(char *)tk_bin("hubd"), "--check-config", "--config", fix.conf_path, NULL};
    ck_assert_int_ne(tk_run(check, &out, 20000), 0);
    ck_assert_msg(strstr(out, "archive_key_file") && strstr(out, "mode 0644"),
                  "hubd --check-config: %s", out);
    free(out);
    /* A key of the wrong size too. */
    ck_assert_int_eq(chmod(key_path, 0600), 0);
    ck_assert_int_eq(truncate(key_path, 31), 0);
    ck_assert_int_eq(show(&out, key_path), 1);
    ck_assert_msg(strstr(out, "holds 31 bytes") && strstr(out, "exactly 32"), "%s", out);
    free(out);
}
END_TEST

static void flip_byte(const char *path, long from_end)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    off_t at = lseek(fd, -from_end, SEEK_END);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x01;
    ck_assert_int_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

START_TEST(tampering_is_detected)
{
    start_hub(30);
    hubfix_start(&fix);
    send_message();
    hubfix_stop(&fix);
    char path[PATH_MAX];
    first_file(path);
    char *out = NULL;
    /* A byte of the first record's ciphertext (the header is 96 bytes, the
     * record's prefix 13). */
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, 96 + 13 + 40), 1);
    b ^= 0x80;
    ck_assert_int_eq(pwrite(fd, &b, 1, 96 + 13 + 40), 1);
    close(fd);
    ck_assert_int_eq(show(&out, key_path), 1);
    ck_assert_msg(strstr(out, "does not authenticate") && strstr(out, "modified"), "%s", out);
    free(out);
    ck_assert_int_eq(verify(&out), 1);
    ck_assert_msg(strstr(out, "NOT intact"), "%s", out);
    free(out);
    /* Put it back: intact again. Then forge the seal's signature. */
    fd = open(path, O_RDWR);
    b ^= 0x80;
    ck_assert_int_eq(pwrite(fd, &b, 1, 96 + 13 + 40), 1);
    close(fd);
    ck_assert_int_eq(verify(&out), 0);
    free(out);
    flip_byte(path, 10);
    ck_assert_int_eq(verify(&out), 1);
    ck_assert_msg(strstr(out, "not signed by this hub key"), "%s", out);
    free(out);
}
END_TEST

START_TEST(crash_leaves_a_file_the_next_start_seals)
{
    start_hub(30);
    hubfix_start(&fix);
    send_message();
    tk_kill9(fix.hubd);
    fix.hubd = 0;
    char *out = NULL;
    ck_assert_int_eq(verify(&out), 0); /* intact, but the last file is not sealed */
    ck_assert_msg(strstr(out, "not sealed yet"), "%s", out);
    free(out);
    hubfix_start(&fix);
    hubfix_stop(&fix);
    ck_assert_int_eq(verify(&out), 0);
    ck_assert_msg(strstr(out, "(1 sealed"), "%s", out);
    free(out);
    ck_assert_int_eq(show(&out, key_path), 0);
    free(out);
}
END_TEST

static uint64_t fake_now;
static uint64_t fake_clock(void) { return fake_now; }

START_TEST(expired_files_are_deleted_on_schedule)
{
    start_hub(30);
    /* An archive written 40 and 10 days ago, with the hub's key. */
    char secret[PATH_MAX];
    snprintf(secret, sizeof secret, "%s/secrets/VN.GOV.HN-LGSP.HUB.secret", fix.dir);
    hub_keypair_t kp;
    char err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(hub_keyfile_read(secret, &kp, err, sizeof err), 0);
    hub_archive_config_t cfg = {.retention_days = 30, .clock_us = fake_clock};
    ck_assert_int_eq(hub_archive_key_read(key_path, &cfg.key, err, sizeof err), 0);
    memcpy(cfg.sign_secret, kp.sign_secret, 64);
    memcpy(cfg.sign_public, kp.sign_public, 32);
    hub_keypair_wipe(&kp);
    uint64_t day = 86400ull * 1000000;
    uint64_t ages[] = {40, 10};
    for (int i = 0; i < 2; i++) {
        fake_now = hub_now_us() - ages[i] * day;
        hub_archive_t *a = NULL;
        ck_assert_int_eq(hub_archive_open(archive_dir, &cfg, &a, err, sizeof err), 0);
        hub_archive_entry_t e = {.message_id = i ? "old-10" : "old-40", .sender = SENDER,
                                 .receiver = RECEIVER, .service = "x/v1",
                                 .envelope = (const uint8_t *)"x", .envelope_len = 1};
        ck_assert_int_eq(hub_archive_put(a, &e), 0);
        ck_assert_int_eq(hub_archive_close(&a), 0);
    }
    char f1[PATH_MAX], f2[PATH_MAX];
    first_file(f1);
    snprintf(f2, sizeof f2, "%s/archive-000002.lar", archive_dir);
    ck_assert_int_eq(access(f1, F_OK), 0);
    hubfix_start(&fix);
    /* The first maintenance runs at the hub's first housekeeping turn. */
    for (int i = 0; i < 100 && access(f1, F_OK) == 0; i++)
        tk_sleep_ms(100);
    ck_assert_msg(access(f1, F_OK) != 0, "the 40-day-old file is still there");
    ck_assert_int_eq(access(f2, F_OK), 0);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "expired archive file deleted", 5000),
                  "no log line for the deletion");
    send_message();
    hubfix_stop(&fix);
    char *out = NULL;
    int rc = verify(&out);
    ck_assert_msg(rc == 0 && strstr(out, "2 files (2 sealed"), "verify: %s", out);
    free(out);
    ck_assert_int_eq(show(&out, key_path), 0);
    free(out);
    sodium_memzero(&cfg, sizeof cfg);
}
END_TEST

TK_MAIN("archive",
        TK_CASE("archive", NULL, teardown, 120, round_trip_shows_the_whole_message,
                online_only_messages_are_archived_too, wrong_key_is_refused, tampering_is_detected,
                crash_leaves_a_file_the_next_start_seals, expired_files_are_deleted_on_schedule))
