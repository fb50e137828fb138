/* hub_archive: files rotate by size and by age and form one chain; a
 * removed, swapped or cut file is named; a record torn by a crash is cut
 * off and the file sealed at the next open; maintenance deletes only sealed
 * files past the retention, oldest first; the key file's mode and size are
 * checked. */
#include "hub_archive.h"
#include "hub_error.h"
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

static char dir[PATH_MAX], adir[PATH_MAX];
static hub_archive_config_t cfg;
static uint64_t now_us;
static uint64_t clock_fn(void) { return now_us; }

#define DAY (86400ull * 1000000)

static void setup(void)
{
    ck_assert_int_eq(sodium_init() >= 0, 1);
    tk_tmpdir(dir);
    snprintf(adir, sizeof adir, "%s/archive", dir);
    memset(&cfg, 0, sizeof cfg);
    char key[PATH_MAX], err[HUB_ERRMSG_MAX];
    snprintf(key, sizeof key, "%s/archive.key", dir);
    ck_assert_int_eq(hub_archive_key_generate(key, &cfg.key, err, sizeof err), 0);
    crypto_sign_keypair(cfg.sign_public, cfg.sign_secret);
    cfg.retention_days = 30;
    cfg.clock_us = clock_fn;
    now_us = 1700000000ull * 1000000;
}

static void teardown(void) { tk_rmrf(dir); }

static void put_n(hub_archive_t *a, int n, const char *prefix)
{
    uint8_t env[2000];
    memset(env, 'e', sizeof env);
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        hub_archive_entry_t e = {.message_id = id, .sender = "A", .receiver = "B",
                                 .service = "s/v1", .hub_seq = (uint64_t)i + 1,
                                 .envelope = env, .envelope_len = sizeof env};
        ck_assert_int_eq(hub_archive_put(a, &e), 0);
    }
    ck_assert_int_eq(hub_archive_flush(a), 0);
}

static hub_archive_t *open_archive(void)
{
    hub_archive_t *a = NULL;
    char err[HUB_ERRMSG_MAX];
    int rc = hub_archive_open(adir, &cfg, &a, err, sizeof err);
    ck_assert_msg(rc == 0, "open: %s", err);
    return a;
}

static int verify(hub_archive_report_t *r)
{
    return hub_archive_read_dir(adir, cfg.sign_public, &cfg.key, NULL, NULL, NULL, r);
}

static void path_of(unsigned n, char *out)
{
    snprintf(out, PATH_MAX, "%s/archive-%06u.lar", adir, n);
}

static int count_found(const hub_archive_entry_t *e, const char *file, void *user)
{
    (void)file;
    ck_assert_uint_eq(e->envelope_len, 2000);
    (*(int *)user)++;
    return 0;
}

START_TEST(rotates_by_size_and_age_into_one_chain)
{
    cfg.max_file_bytes = 10000; /* about four records a file */
    hub_archive_t *a = open_archive();
    put_n(a, 12, "m");
    now_us += 25 * 3600 * 1000000ull; /* a day later: the next put starts a new file */
    put_n(a, 1, "late");
    ck_assert_int_eq(hub_archive_close(&a), 0);
    hub_archive_report_t r;
    ck_assert_int_eq(verify(&r), 0);
    ck_assert_uint_ge(r.files, 4);
    ck_assert_uint_eq(r.files, r.sealed_files);
    ck_assert_uint_eq(r.records, 13);
    ck_assert_uint_eq(r.decrypted, 13);
    int found = 0;
    ck_assert_int_eq(hub_archive_read_dir(adir, cfg.sign_public, &cfg.key, "m-7", count_found,
                                          &found, &r),
                     0);
    ck_assert_int_eq(found, 1);
}
END_TEST

START_TEST(removed_swapped_and_replaced_files_are_named)
{
    cfg.max_file_bytes = 10000;
    hub_archive_t *a = open_archive();
    put_n(a, 12, "m");
    ck_assert_int_eq(hub_archive_close(&a), 0);
    char p2[PATH_MAX], p3[PATH_MAX], tmp[PATH_MAX];
    path_of(2, p2);
    path_of(3, p3);
    snprintf(tmp, sizeof tmp, "%s/x", dir);
    hub_archive_report_t r;
    /* Swapped. */
    ck_assert_int_eq(rename(p2, tmp), 0);
    ck_assert_int_eq(rename(p3, p2), 0);
    ck_assert_int_eq(rename(tmp, p3), 0);
    ck_assert_int_eq(verify(&r), HUB_EPARSE);
    ck_assert_msg(strstr(r.message, "renamed or swapped"), "%s", r.message);
    ck_assert_int_eq(rename(p2, tmp), 0);
    ck_assert_int_eq(rename(p3, p2), 0);
    ck_assert_int_eq(rename(tmp, p3), 0);
    ck_assert_int_eq(verify(&r), 0);
    /* Removed from the middle. */
    ck_assert_int_eq(rename(p2, tmp), 0);
    ck_assert_int_eq(verify(&r), HUB_EPARSE);
    ck_assert_msg(strstr(r.message, "archive-000002.lar is missing"), "%s", r.message);
    /* Replaced by a file of another archive with the same number. */
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s/other", dir);
    char save[PATH_MAX];
    snprintf(save, sizeof save, "%s", adir);
    snprintf(adir, sizeof adir, "%s", other);
    a = open_archive();
    put_n(a, 12, "o");
    ck_assert_int_eq(hub_archive_close(&a), 0);
    char o2[PATH_MAX];
    path_of(2, o2);
    snprintf(adir, sizeof adir, "%s", save);
    ck_assert_int_eq(rename(o2, p2), 0);
    ck_assert_int_eq(verify(&r), HUB_EPARSE);
    ck_assert_msg(strstr(r.message, "does not follow the seal"), "%s", r.message);
    /* A sealed file cut short is no longer the file its seal names. */
    ck_assert_int_eq(rename(tmp, p2), 0);
    ck_assert_int_eq(truncate(p2, 200), 0);
    ck_assert_int_ne(verify(&r), 0);
    ck_assert_str_eq(r.file, "archive-000002.lar");
}
END_TEST

START_TEST(a_torn_record_is_cut_and_the_file_sealed_at_open)
{
    hub_archive_t *a = open_archive();
    put_n(a, 3, "m");
    char p1[PATH_MAX];
    path_of(1, p1);
    struct stat st;
    ck_assert_int_eq(stat(p1, &st), 0); /* three whole records, no seal yet */
    hub_archive_report_t r;
    ck_assert_int_eq(verify(&r), HUB_EAGAIN);
    ck_assert_uint_eq(r.unsealed_records, 3);
    ck_assert_int_eq(hub_archive_close(&a), 0);
    /* What a crash leaves: no seal, and part of a fourth record. */
    ck_assert_int_eq(truncate(p1, st.st_size), 0);
    int fd = open(p1, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "R\0\0\x10", 4), 4);
    close(fd);
    a = open_archive();
    ck_assert_int_eq(hub_archive_close(&a), 0);
    ck_assert_int_eq(verify(&r), 0);
    ck_assert_uint_eq(r.records, 3);
    ck_assert_uint_eq(r.decrypted, 3);
    ck_assert_uint_eq(r.sealed_files, 1);
}
END_TEST

START_TEST(maintenance_deletes_expired_sealed_files_oldest_first)
{
    hub_archive_t *a = open_archive();
    put_n(a, 1, "d0");
    ck_assert_int_eq(hub_archive_close(&a), 0); /* sealed at day 0 */
    now_us += 20 * DAY;
    a = open_archive();
    put_n(a, 1, "d20");
    ck_assert_int_eq(hub_archive_close(&a), 0); /* sealed at day 20 */
    now_us += 15 * DAY;                         /* day 35 */
    a = open_archive();
    put_n(a, 1, "d35"); /* the file being written */
    size_t deleted = 0;
    ck_assert_int_eq(hub_archive_maintain(a, &deleted), 0);
    ck_assert_uint_eq(deleted, 1);
    char p[PATH_MAX];
    path_of(1, p);
    ck_assert_int_ne(access(p, F_OK), 0);
    path_of(2, p);
    ck_assert_int_eq(access(p, F_OK), 0);
    now_us += 30 * DAY; /* day 65: file 2 expires; file 3, open a day, is sealed first */
    ck_assert_int_eq(hub_archive_maintain(a, &deleted), 0);
    ck_assert_uint_eq(deleted, 1);
    path_of(3, p);
    ck_assert_int_eq(access(p, F_OK), 0);
    ck_assert_int_eq(hub_archive_close(&a), 0);
    hub_archive_report_t r;
    ck_assert_int_eq(verify(&r), 0);
    ck_assert_uint_eq(r.files, 1);
}
END_TEST

START_TEST(key_files_are_checked)
{
    char path[PATH_MAX], err[HUB_ERRMSG_MAX];
    hub_archive_key_t key;
    snprintf(path, sizeof path, "%s/archive.key", dir);
    ck_assert_int_eq(hub_archive_key_generate(path, &key, err, sizeof err), HUB_EEXIST);
    ck_assert_int_eq(hub_archive_key_read(path, &key, err, sizeof err), 0);
    ck_assert_mem_eq(key.id, cfg.key.id, 8);
    ck_assert_int_eq(chmod(path, 0640), 0);
    ck_assert_int_eq(hub_archive_key_read(path, &key, err, sizeof err), HUB_EPERM);
    ck_assert_msg(strstr(err, "mode 0640") && strstr(err, "chmod 600"), "%s", err);
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(truncate(path, 33), 0);
    ck_assert_int_eq(hub_archive_key_read(path, &key, err, sizeof err), HUB_EINVAL);
    ck_assert_msg(strstr(err, "holds 33 bytes"), "%s", err);
    snprintf(path, sizeof path, "%s/none.key", dir);
    ck_assert_int_eq(hub_archive_key_read(path, &key, err, sizeof err), HUB_ENOENT);
    ck_assert_msg(strstr(err, "hubctl archive keygen"), "%s", err);
}
END_TEST

TK_MAIN("archive",
        TK_CASE("archive", setup, teardown, 0, rotates_by_size_and_age_into_one_chain,
                removed_swapped_and_replaced_files_are_named,
                a_torn_record_is_cut_and_the_file_sealed_at_open,
                maintenance_deletes_expired_sealed_files_oldest_first, key_files_are_checked))
