/* Unit tests for hub_audit: writing a chained, checkpointed, rotated log,
 * verifying it, and catching each kind of tampering the verifier promises to
 * name. Every test writes its own log in its own temporary directory. */
#include "hub_audit.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_sha256.h"
#include "testkit.h"

#include <check.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TA_PAYLOAD_MARK "CCCD-001099012345-PAYLOAD-MUST-NOT-APPEAR"
#define TA_T0 1735689600000000ull

static void ta__config(hub_audit_config_t *cfg, uint64_t max_bytes, uint64_t every_records,
                       uint64_t every_us)
{
    memset(cfg, 0, sizeof *cfg);
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(0xa0 + i);
    ck_assert_int_eq(crypto_sign_seed_keypair(cfg->sign_public, cfg->sign_secret, seed), 0);
    cfg->max_file_bytes = max_bytes;
    cfg->checkpoint_every_records = every_records;
    cfg->checkpoint_every_us = every_us;
}

static void ta__message_id(int n, char out[37])
{
    snprintf(out, 37, "00000000-0000-4000-8000-%012d", n);
}

static hub_audit_event_t ta__event_of(int i)
{
    static const hub_audit_event_t cycle[] = {HUB_AUDIT_ACCEPTED, HUB_AUDIT_DELIVERED,
                                              HUB_AUDIT_SETTLED};
    return cycle[i % 3];
}

/* Appends records first..first+count-1: record i belongs to message i / 3
 * (ACCEPTED, DELIVERED, SETTLED), with a payload hash and a sender signature,
 * and ticks a fake clock. */
static void ta__append(hub_audit_t *log, int first, int count)
{
    for (int i = first; i < first + count; i++) {
        char id[37], payload[128], reason[64];
        ta__message_id(i / 3, id);
        snprintf(payload, sizeof payload, "{\"cccd\":\"%s-%d\"}", TA_PAYLOAD_MARK, i / 3);
        snprintf(reason, sizeof reason, "attempt %d", 1 + i % 2);
        uint8_t sig[64];
        for (int k = 0; k < 64; k++)
            sig[k] = (uint8_t)(i + k);
        hub_audit_record_t rec = {
            .event = ta__event_of(i),
            .time_us = TA_T0 + (uint64_t)i * 1000,
            .message_id = id,
            .hub_seq = 1000 + (uint64_t)(i / 3),
            .sender = "VN/GOV/HN-STP/HOTICH",
            .receiver = "VN/GOV/BCA/CSDLQGDC",
            .service = "citizen.lookup/v1",
            .purpose = "civil-status registration: verify applicants' identity",
            .dossier = "000.00.01.H26-250630-0001",
            .outcome = "request queued",
            .has_digest = true,
            .signature = sig,
            .signature_len = sizeof sig,
            .reason = i % 3 == 1 ? reason : "",
        };
        hub_sha256(payload, strlen(payload), rec.digest); /* any 32 bytes */
        ck_assert_int_eq(hub_audit_append(log, &rec), 0);
        ck_assert_int_eq(hub_audit_tick(log, TA_T0 + (uint64_t)i * 1000), 0);
        if (i % 100 == 99)
            ck_assert_int_eq(hub_audit_flush(log), 0);
    }
}

/* Opens the log in dir with cfg; asserts it opens. */
static hub_audit_t *ta__open(const char *dir, const hub_audit_config_t *cfg)
{
    char err[HUB_ERRMSG_MAX];
    hub_audit_t *log = NULL;
    ck_assert_msg(hub_audit_open(dir, cfg, &log, err, sizeof err) == 0, "%s", err);
    return log;
}

/* Makes a fresh directory (into dir) and opens a log in it with
 * ta__config's configuration (into cfg). */
static hub_audit_t *ta__open_new(char dir[PATH_MAX], hub_audit_config_t *cfg, uint64_t max_bytes,
                                 uint64_t every_records, uint64_t every_us)
{
    tk_tmpdir(dir);
    ta__config(cfg, max_bytes, every_records, every_us);
    return ta__open(dir, cfg);
}

/* The standard log: 1000 records, checkpoints every 64 records or 150 ms of
 * fake time, 8 KiB files (about 20 records each). */
static void ta__write_log(const char *dir, hub_audit_config_t *cfg)
{
    ta__config(cfg, 8192, 64, 150000);
    hub_audit_t *log = ta__open(dir, cfg);
    ck_assert_ptr_null(hub_audit_open_notice(log));
    ta__append(log, 0, 1000);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    ck_assert_ptr_null(log);
}

static void ta__path(const char *dir, int number, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/audit-%06d.log", dir, number);
}

static int ta__file_count(const char *dir)
{
    int n = 0;
    char path[PATH_MAX];
    for (;;) {
        ta__path(dir, n + 1, path);
        if (access(path, F_OK) != 0)
            return n;
        n++;
    }
}

typedef struct {
    char *text;
    char *line[4096];
    size_t count;
} ta__lines_t;

/* Splits a file into lines that keep their "\n" (the last may lack it). */
static void ta__read_lines(const char *path, ta__lines_t *out)
{
    out->text = tk_read_file(path);
    ck_assert_msg(out->text != NULL, "cannot read %s", path);
    out->count = 0;
    size_t len = strlen(out->text);
    char *copy = malloc(len * 2 + 4096);
    ck_assert_ptr_nonnull(copy);
    char *w = copy;
    for (char *p = out->text; *p;) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
        ck_assert(out->count < 4096);
        out->line[out->count++] = w;
        memcpy(w, p, n);
        w[n] = '\0';
        w += n + 1;
        p += n;
    }
    free(out->text);
    out->text = copy;
}

/* Writes the standard log into dir and reads its file `number` (0: the
 * last) into lines, its path into path; returns the number of that file. */
static int ta__write_and_read(const char *dir, hub_audit_config_t *cfg, int number,
                              char path[PATH_MAX], ta__lines_t *lines)
{
    ta__write_log(dir, cfg);
    if (number == 0)
        number = ta__file_count(dir);
    ta__path(dir, number, path);
    ta__read_lines(path, lines);
    return number;
}

static void ta__write_lines(const char *path, const ta__lines_t *lines)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < lines->count; i++)
        if (lines->line[i])
            fputs(lines->line[i], f);
    ck_assert_int_eq(fclose(f), 0);
}

/* A test's own standard log, one of its files read into lines to be
 * damaged and written back (ta__log_rewrite). */
typedef struct {
    char dir[PATH_MAX];
    char path[PATH_MAX]; /* the file read */
    int number;          /* its number */
    hub_audit_config_t cfg;
    ta__lines_t lines;
} ta__log_t;

/* Writes the standard log into a fresh directory and reads its file
 * `number` (0: the last); ta__log_free removes it all. */
static ta__log_t *ta__log_read(int number)
{
    ta__log_t *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    tk_tmpdir(t->dir);
    t->number = ta__write_and_read(t->dir, &t->cfg, number, t->path, &t->lines);
    return t;
}

/* Writes the lines back into their file, and frees them. */
static void ta__log_rewrite(ta__log_t *t)
{
    ta__write_lines(t->path, &t->lines);
    free(t->lines.text);
}

/* Removes the log's directory and frees *t_p (the lines are the caller's
 * to free); sets *t_p to NULL. */
static void ta__log_free(ta__log_t **t_p)
{
    tk_rmrf((*t_p)->dir);
    free(*t_p);
    *t_p = NULL;
}

static uint64_t ta__seq_of(const char *line)
{
    unsigned long long seq = 0;
    ck_assert_int_eq(sscanf(line, "{\"seq\":%llu", &seq), 1);
    return seq;
}

static bool ta__is_checkpoint(const char *line)
{
    return strstr(line, "\"event\":\"CHECKPOINT\"") != NULL;
}

/* Line index (0-based) of the first non-checkpoint record at or after
 * `from` whose next line is not a checkpoint either. */
static size_t ta__plain_line(const ta__lines_t *lines, size_t from)
{
    for (size_t i = from; i + 2 < lines->count; i++)
        if (!ta__is_checkpoint(lines->line[i]) && !ta__is_checkpoint(lines->line[i + 1]) &&
            !ta__is_checkpoint(lines->line[i + 2]))
            return i;
    ck_abort_msg("no plain record found");
    return 0;
}

static void ta__expect_failure(const char *dir, const uint8_t pk[32], int code, int file,
                               uint64_t line, uint64_t seq, const char *words)
{
    hub_audit_verify_report_t report;
    int rc = hub_audit_verify_dir(dir, pk, &report);
    ck_assert_msg(rc == code, "verify returned %d (%s), wanted %d: %s", rc, hub_strerror(rc),
                  code, report.message);
    char name[32];
    snprintf(name, sizeof name, "audit-%06d.log", file);
    ck_assert_msg(strcmp(report.file, name) == 0, "report names %s, wanted %s: %s", report.file,
                  name, report.message);
    ck_assert_msg(report.line == line, "report names line %" PRIu64 ", wanted %" PRIu64 ": %s",
                  report.line, line, report.message);
    if (seq)
        ck_assert_msg(report.seq == seq, "report names seq %" PRIu64 ", wanted %" PRIu64 ": %s",
                      report.seq, seq, report.message);
    ck_assert_msg(strstr(report.message, words) != NULL, "message lacks \"%s\": %s", words,
                  report.message);
}

START_TEST(test_write_and_verify)
{
    char dir[PATH_MAX];
    tk_tmpdir(dir);
    hub_audit_config_t cfg;
    ta__write_log(dir, &cfg);
    int files = ta__file_count(dir);
    ck_assert_int_ge(files, 4);

    hub_audit_verify_report_t report;
    int rc = hub_audit_verify_dir(dir, cfg.sign_public, &report);
    ck_assert_msg(rc == 0, "%s", report.message);
    ck_assert_uint_eq(report.files, (uint64_t)files);
    ck_assert_uint_eq(report.records - report.checkpoints, 1000);
    ck_assert_uint_eq(report.last_seq, report.records);
    ck_assert_uint_ge(report.checkpoints, 1000 / 64);
    ck_assert_uint_eq(report.recoveries, 0);
    ck_assert_uint_eq(report.unsealed_records, 0);
    ck_assert(strstr(report.message, "intact") != NULL);

    /* Every file ends with a checkpoint; no payload byte is anywhere. */
    uint64_t seq = 0;
    for (int f = 1; f <= files; f++) {
        char path[PATH_MAX];
        ta__path(dir, f, path);
        ta__lines_t lines;
        ta__read_lines(path, &lines);
        ck_assert_uint_gt(lines.count, 0);
        ck_assert_msg(ta__is_checkpoint(lines.line[lines.count - 1]),
                      "file %d does not end with a checkpoint", f);
        for (size_t i = 0; i < lines.count; i++)
            ck_assert_uint_eq(ta__seq_of(lines.line[i]), ++seq);
        ck_assert_ptr_null(strstr(lines.text, TA_PAYLOAD_MARK));
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_lt((uint64_t)st.st_size, 8192 + 2048);
        free(lines.text);
    }
    /* The first record starts the chain from 64 zeros. */
    char path[PATH_MAX];
    ta__path(dir, 1, path);
    char *text = tk_read_file(path);
    ck_assert_ptr_nonnull(strstr(text, "\"prev\":\"0000000000000000000000000000000000000000000000"
                                       "000000000000000000\"}\n"));
    const char *start = "{\"seq\":1,\"ts\":1735689600000000,\"event\":\"ACCEPTED\","
                        "\"message_id\":\"00000000-0000-4000-8000-000000000000\",";
    ck_assert(strncmp(text, start, strlen(start)) == 0);
    free(text);
    tk_rmrf(dir);
}
END_TEST

/* One byte changed in a middle record, in three different places: the
 * verifier names that record every time. */
START_TEST(test_modified_record)
{
    static const char *const where[] = {"\"sender\":\"VN/GOV/HN-", "\"prev\":\"", "{\"seq\":"};
    for (int k = 0; k < 3; k++) {
        ta__log_t *t = ta__log_read(3);
        size_t i = ta__plain_line(&t->lines, 4);
        uint64_t seq = ta__seq_of(t->lines.line[i]);
        char *at = strstr(t->lines.line[i], where[k]);
        ck_assert_ptr_nonnull(at);
        at += strlen(where[k]);
        /* 'H' -> 'I'; a hex digit -> another hex digit; a seq digit +1. */
        *at = (char)(*at == '9' ? '8' : *at == 'f' ? 'e' : *at + 1);
        ta__log_rewrite(t);
        ta__expect_failure(t->dir, t->cfg.sign_public, HUB_EPARSE, 3, i + 1, seq, "modified");
        ta__log_free(&t);
    }
}
END_TEST

START_TEST(test_removed_record)
{
    ta__log_t *t = ta__log_read(3);
    size_t i = ta__plain_line(&t->lines, 4);
    uint64_t seq = ta__seq_of(t->lines.line[i]);
    t->lines.line[i] = NULL;
    ta__log_rewrite(t);
    ta__expect_failure(t->dir, t->cfg.sign_public, HUB_EPARSE, 3, i + 1, seq, "removed record");
    hub_audit_verify_report_t report;
    hub_audit_verify_dir(t->dir, t->cfg.sign_public, &report);
    ck_assert(strstr(report.message, "seq gap") != NULL);
    ta__log_free(&t);
}
END_TEST

START_TEST(test_reordered_records)
{
    ta__log_t *t = ta__log_read(2);
    size_t i = ta__plain_line(&t->lines, 3);
    uint64_t second = ta__seq_of(t->lines.line[i + 1]);
    char *tmp = t->lines.line[i];
    t->lines.line[i] = t->lines.line[i + 1];
    t->lines.line[i + 1] = tmp;
    ta__log_rewrite(t);
    ta__expect_failure(t->dir, t->cfg.sign_public, HUB_EPARSE, 2, i + 1, second, "reordered");
    ta__log_free(&t);
}
END_TEST

static void ta__hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

START_TEST(test_inserted_record)
{
    /* A well-formed forgery: next seq, linked to the record before it. */
    ta__log_t *t = ta__log_read(2);
    size_t i = ta__plain_line(&t->lines, 3);
    char forged[4096];
    snprintf(forged, sizeof forged, "%s", t->lines.line[i + 1]);
    char *recv = strstr(forged, "CSDLQGDC");
    ck_assert_ptr_nonnull(recv);
    memcpy(recv, "CSDLQGDX", 8);
    uint8_t h[32];
    crypto_hash_sha256(h, (const uint8_t *)t->lines.line[i], strlen(t->lines.line[i]));
    char *prev = strstr(forged, "\"prev\":\"");
    ck_assert_ptr_nonnull(prev);
    char hex[65];
    ta__hex(h, 32, hex);
    memcpy(prev + 8, hex, 64);
    ta__lines_t out = {.text = NULL, .count = 0};
    for (size_t k = 0; k < t->lines.count; k++) {
        out.line[out.count++] = t->lines.line[k];
        if (k == i)
            out.line[out.count++] = forged;
    }
    ta__write_lines(t->path, &out);
    ta__expect_failure(t->dir, t->cfg.sign_public, HUB_EPARSE, 2, i + 2, ta__seq_of(forged),
                       "inserted record");

    /* A line repeated. */
    out.count = 0;
    for (size_t k = 0; k < t->lines.count; k++) {
        out.line[out.count++] = t->lines.line[k];
        if (k == i)
            out.line[out.count++] = t->lines.line[k];
    }
    ta__write_lines(t->path, &out);
    ta__expect_failure(t->dir, t->cfg.sign_public, HUB_EPARSE, 2, i + 2,
                       ta__seq_of(t->lines.line[i]), "inserted record");
    free(t->lines.text);
    ta__log_free(&t);
}
END_TEST

START_TEST(test_truncated_file)
{
    /* The last file cut in the middle of its last record. */
    ta__log_t *t = ta__log_read(0);
    int files = t->number;
    size_t n = t->lines.count;
    free(t->lines.text);
    struct stat st;
    ck_assert_int_eq(stat(t->path, &st), 0);
    ck_assert_int_eq(truncate(t->path, st.st_size - 40), 0);
    ta__expect_failure(t->dir, t->cfg.sign_public, HUB_EPARSE, files, n, 0, "truncated file");

    /* A middle file cut likewise. */
    ta__log_free(&t);
    t = ta__log_read(2);
    n = t->lines.count;
    free(t->lines.text);
    ck_assert_int_eq(stat(t->path, &st), 0);
    ck_assert_int_eq(truncate(t->path, st.st_size - 100), 0);
    ta__expect_failure(t->dir, t->cfg.sign_public, HUB_EPARSE, 2, n, 0, "truncated file");

    /* A whole middle file removed. */
    ck_assert_int_eq(unlink(t->path), 0);
    ta__expect_failure(t->dir, t->cfg.sign_public, HUB_EPARSE, 2, 0, 0, "removed file");
    ta__log_free(&t);
}
END_TEST

START_TEST(test_forged_checkpoint)
{
    for (int k = 0; k < 3; k++) {
        ta__log_t *t = ta__log_read(3);
        size_t i = t->lines.count - 1;
        ck_assert(ta__is_checkpoint(t->lines.line[i]));
        uint64_t seq = ta__seq_of(t->lines.line[i]);
        static const char *const field[] = {"\"prev\":\"", "\"hub_signature\":\"",
                                            "\"count\":"};
        char *at = strstr(t->lines.line[i], field[k]);
        ck_assert_ptr_nonnull(at);
        at += strlen(field[k]) + 1;
        *at = (char)(*at == '9' ? '8' : *at == 'f' ? 'e' : *at + 1);
        ta__log_rewrite(t);
        ta__expect_failure(t->dir, t->cfg.sign_public, HUB_ECRYPTO, 3, i + 1, seq,
                           "forged checkpoint");
        ta__log_free(&t);
    }

    /* An intact log checked with another key: its first checkpoint fails. */
    char dir[PATH_MAX];
    tk_tmpdir(dir);
    hub_audit_config_t cfg;
    ta__write_log(dir, &cfg);
    uint8_t other_pk[32], other_sk[64];
    crypto_sign_keypair(other_pk, other_sk);
    hub_audit_verify_report_t report;
    ck_assert_int_eq(hub_audit_verify_dir(dir, other_pk, &report), HUB_ECRYPTO);
    ck_assert_uint_eq(report.checkpoints, 0);
    ck_assert_ptr_nonnull(strstr(report.message, "another key"));
    tk_rmrf(dir);
}
END_TEST

START_TEST(test_reopen_continues_chain)
{
    char dir[PATH_MAX], err[HUB_ERRMSG_MAX];
    hub_audit_config_t cfg;
    hub_audit_t *log = ta__open_new(dir, &cfg, 8192, 64, 150000);
    ta__append(log, 0, 500);
    uint64_t seq = hub_audit_seq(log);
    ck_assert_uint_ge(seq, 500);

    /* One writer at a time. */
    hub_audit_t *second = NULL;
    ck_assert_int_eq(hub_audit_open(dir, &cfg, &second, err, sizeof err), HUB_EAGAIN);
    ck_assert_ptr_null(second);
    ck_assert_ptr_nonnull(strstr(err, "another process"));

    ck_assert_int_eq(hub_audit_close(&log), 0);
    ck_assert_int_eq(hub_audit_close(&log), 0); /* NULL is fine */
    hub_audit_verify_report_t report;
    ck_assert_int_eq(hub_audit_verify_dir(dir, cfg.sign_public, &report), 0);
    uint64_t closed_seq = report.last_seq;

    log = ta__open(dir, &cfg);
    ck_assert_ptr_null(hub_audit_open_notice(log));
    ck_assert_uint_eq(hub_audit_seq(log), closed_seq);
    ta__append(log, 500, 500);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    int rc = hub_audit_verify_dir(dir, cfg.sign_public, &report);
    ck_assert_msg(rc == 0, "%s", report.message);
    ck_assert_uint_eq(report.records - report.checkpoints, 1000);
    ck_assert_uint_eq(report.recoveries, 0);

    /* A small max_file_bytes that the reopened file is under: it is
     * continued rather than a new one started. */
    int files = ta__file_count(dir);
    hub_audit_config_t big = cfg;
    big.max_file_bytes = 1 << 20;
    ck_assert_int_eq(hub_audit_open(dir, &big, &log, err, sizeof err), 0);
    ta__append(log, 1000, 3);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    ck_assert_int_eq(ta__file_count(dir), files);
    ck_assert_int_eq(hub_audit_verify_dir(dir, cfg.sign_public, &report), 0);
    tk_rmrf(dir);
}
END_TEST

START_TEST(test_crash_recovery)
{
    /* Complete lines after the last checkpoint (a kill between writes). */
    ta__log_t *t = ta__log_read(0);
    int files = t->number;
    ck_assert(ta__is_checkpoint(t->lines.line[t->lines.count - 1]));
    ck_assert(!ta__is_checkpoint(t->lines.line[t->lines.count - 2]));
    t->lines.line[t->lines.count - 1] = NULL;
    ta__log_rewrite(t);
    hub_audit_verify_report_t report;
    ck_assert_int_eq(hub_audit_verify_dir(t->dir, t->cfg.sign_public, &report), HUB_EAGAIN);
    ck_assert_uint_gt(report.unsealed_records, 0);
    ck_assert_ptr_nonnull(strstr(report.message, "unsealed"));

    hub_audit_t *log = ta__open(t->dir, &t->cfg);
    ck_assert_ptr_nonnull(hub_audit_open_notice(log));
    ck_assert_ptr_nonnull(strstr(hub_audit_open_notice(log), "after its last checkpoint"));
    ta__append(log, 1000, 10);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    int rc = hub_audit_verify_dir(t->dir, t->cfg.sign_public, &report);
    ck_assert_msg(rc == 0, "%s", report.message);
    ck_assert_uint_eq(report.recoveries, 1);
    ta__log_free(&t);

    /* A line cut by a crash during a write. */
    t = ta__log_read(0);
    files = t->number;
    size_t torn = strlen(t->lines.line[t->lines.count - 1]) - 30;
    free(t->lines.text);
    struct stat st;
    ck_assert_int_eq(stat(t->path, &st), 0);
    ck_assert_int_eq(truncate(t->path, st.st_size - 30), 0);
    log = ta__open(t->dir, &t->cfg);
    const char *notice = hub_audit_open_notice(log);
    ck_assert_ptr_nonnull(notice);
    ck_assert_ptr_nonnull(strstr(notice, "incomplete record"));
    ta__append(log, 1000, 100);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    ck_assert_int_gt(ta__file_count(t->dir), files);
    rc = hub_audit_verify_dir(t->dir, t->cfg.sign_public, &report);
    ck_assert_msg(rc == 0, "%s", report.message);
    ck_assert_uint_eq(report.recoveries, 1);
    /* The new file opens with the RECOVERED record naming the cut file. */
    char next[PATH_MAX];
    ta__path(t->dir, files + 1, next);
    ta__read_lines(next, &t->lines);
    ck_assert_ptr_nonnull(strstr(t->lines.line[0], "\"event\":\"RECOVERED\""));
    char name[64];
    snprintf(name, sizeof name, "audit-%06d.log ends with %zu bytes", files, torn);
    ck_assert_ptr_nonnull(strstr(t->lines.line[0], name));
    free(t->lines.text);
    /* Removing the RECOVERED record exposes the cut. */
    ta__read_lines(next, &t->lines);
    t->lines.line[0] = NULL;
    ta__write_lines(next, &t->lines);
    free(t->lines.text);
    ta__read_lines(t->path, &t->lines);
    size_t cut_line = t->lines.count;
    free(t->lines.text);
    ta__expect_failure(t->dir, t->cfg.sign_public, HUB_EPARSE, files, cut_line, 0,
                       "truncated file");
    ta__log_free(&t);
}
END_TEST

START_TEST(test_open_refuses_damaged_tail)
{
    ta__log_t *t = ta__log_read(0);
    ck_assert_uint_ge(t->lines.count, 3);
    t->lines.line[1][2] = 'X'; /* {"Xeq":… */
    ta__log_rewrite(t);
    char err[HUB_ERRMSG_MAX];
    hub_audit_t *log = NULL;
    ck_assert_int_eq(hub_audit_open(t->dir, &t->cfg, &log, err, sizeof err), HUB_EPARSE);
    ck_assert_ptr_null(log);
    ck_assert_ptr_nonnull(strstr(err, "line 2"));
    ck_assert_ptr_nonnull(strstr(err, "hubctl audit verify"));
    ta__log_free(&t);
}
END_TEST

typedef struct {
    int calls;
    int stop_after;
    hub_audit_event_t events[8];
    uint64_t hub_seq[8];
    bool payload_ok;
    bool text_ok;
    const uint8_t *secret; /* the hub's key, for the envelope MAC */
} ta__found_t;

static int ta__on_found(const hub_audit_record_t *rec, const char *file, uint64_t line,
                        void *user)
{
    ta__found_t *f = user;
    ck_assert(strncmp(file, "audit-", 6) == 0);
    ck_assert_uint_gt(line, 0);
    if (f->calls < 8) {
        f->events[f->calls] = rec->event;
        f->hub_seq[f->calls] = rec->hub_seq;
    }
    char payload[128];
    snprintf(payload, sizeof payload, "{\"cccd\":\"%s-%d\"}", TA_PAYLOAD_MARK, 42);
    uint8_t h[32];
    hub_sha256(payload, strlen(payload), h);
    uint8_t mac[32];
    hub_audit_envelope_mac(f->secret, h, mac); /* the log keeps the MAC, not the digest */
    f->payload_ok = rec->has_digest && !rec->legacy && memcmp(mac, rec->digest, 32) == 0 &&
                    memcmp(h, rec->digest, 32) != 0;
    f->text_ok = !strcmp(rec->sender, "VN/GOV/HN-STP/HOTICH") &&
                 !strcmp(rec->dossier, "000.00.01.H26-250630-0001") &&
                 !strcmp(rec->outcome, "request queued") &&
                 !strncmp(rec->purpose, "civil-status registration", 25) &&
                 !strcmp(rec->receiver, "VN/GOV/BCA/CSDLQGDC") &&
                 !strcmp(rec->service, "citizen.lookup/v1") && rec->signature_len == 64 &&
                 rec->seq > 0;
    f->calls++;
    return f->stop_after && f->calls >= f->stop_after;
}

static int ta__count(const hub_audit_record_t *rec, const char *file, uint64_t line, void *user)
{
    (void)file;
    (void)line;
    int *n = user;
    ck_assert_str_eq(rec->service, "citizen.lookup/v1");
    (*n)++;
    return 0;
}

/* A log written before purpose, dossier, outcome and envelope_mac existed
 * still parses and verifies as it was written; --service finds records. */
START_TEST(test_legacy_lines_and_service_filter)
{
    char dir[PATH_MAX], path[PATH_MAX];
    tk_tmpdir(dir);
    snprintf(path, sizeof path, "%s/audit-000001.log", dir);
    tk_write_file(path, "{\"seq\":1,\"ts\":1796261045449178,\"event\":\"ACCEPTED\","
                        "\"message_id\":\"m-1\",\"hub_seq\":7,\"sender\":\"VN/GOV/A/B\","
                        "\"receiver\":\"VN/GOV/C/D\",\"service\":\"citizen.lookup/v1\","
                        "\"payload_sha256\":\"" "0123456789abcdef0123456789abcdef"
                        "0123456789abcdef0123456789abcdef\",\"sender_signature\":\"\","
                        "\"reason\":\"\",\"prev\":\""
                        "0000000000000000000000000000000000000000000000000000000000000000\"}\n");
    hub_audit_config_t cfg;
    ta__config(&cfg, 0, 0, 0);
    hub_audit_verify_report_t report;
    ck_assert_int_eq(hub_audit_verify_dir(dir, cfg.sign_public, &report), HUB_EAGAIN);
    ck_assert_uint_eq(report.records, 1);
    ck_assert_uint_eq(report.unsealed_records, 1);
    /* The hub continues it in the current format, and the chain holds. */
    hub_audit_t *log = NULL;
    char err[256];
    ck_assert_int_eq(hub_audit_open(dir, &cfg, &log, err, sizeof err), 0);
    hub_audit_record_t rec = {.event = HUB_AUDIT_ACCEPTED, .message_id = "m-2",
                              .sender = "VN/GOV/A/B", .receiver = "VN/GOV/C/D",
                              .service = "citizen.lookup/v1", .outcome = "request online-only",
                              .has_digest = true};
    ck_assert_int_eq(hub_audit_append(log, &rec), 0);
    rec.service = "other/v1";
    ck_assert_int_eq(hub_audit_append(log, &rec), 0);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    ck_assert_int_eq(hub_audit_verify_dir(dir, cfg.sign_public, &report), 0);
    int n = 0;
    hub_audit_filter_t filter = {.service = "citizen.lookup/v1"};
    ck_assert_int_eq(hub_audit_find(dir, &filter, ta__count, &n), 0);
    ck_assert_int_eq(n, 2);
    hub_audit_filter_t none = {.service = "nothing/v1"};
    ck_assert_int_eq(hub_audit_find(dir, &none, ta__count, &n), HUB_ENOTFOUND);
    hub_audit_filter_t empty = {0};
    ck_assert_int_eq(hub_audit_find(dir, &empty, ta__count, &n), HUB_EINVAL);
    tk_rmrf(dir);
}
END_TEST

START_TEST(test_find_message)
{
    char dir[PATH_MAX];
    tk_tmpdir(dir);
    hub_audit_config_t cfg;
    ta__write_log(dir, &cfg);
    char id[37];
    ta__message_id(42, id);
    ta__found_t f = {.secret = cfg.sign_secret};
    ck_assert_int_eq(hub_audit_find_message(dir, id, ta__on_found, &f), 0);
    ck_assert_int_eq(f.calls, 3);
    ck_assert_int_eq(f.events[0], HUB_AUDIT_ACCEPTED);
    ck_assert_int_eq(f.events[1], HUB_AUDIT_DELIVERED);
    ck_assert_int_eq(f.events[2], HUB_AUDIT_SETTLED);
    ck_assert_uint_eq(f.hub_seq[0], 1042);
    ck_assert(f.payload_ok);
    ck_assert(f.text_ok);

    ta__found_t first = {.stop_after = 1, .secret = cfg.sign_secret};
    ck_assert_int_eq(hub_audit_find_message(dir, id, ta__on_found, &first), 0);
    ck_assert_int_eq(first.calls, 1);

    ta__found_t none = {0};
    ta__message_id(999999, id);
    ck_assert_int_eq(hub_audit_find_message(dir, id, ta__on_found, &none), HUB_ENOTFOUND);
    ck_assert_int_eq(none.calls, 0);
    ck_assert_int_eq(hub_audit_find_message(dir, "", ta__on_found, &none), HUB_EINVAL);
    tk_rmrf(dir);
}
END_TEST

/* What a find saw: how many records, and the sender, reason and node of
 * the first 16. */
typedef struct {
    int calls;
    struct {
        char sender[HUB_AUDIT_ID_MAX + 1];
        char reason[HUB_AUDIT_REASON_MAX + 1];
        char node[HUB_AUDIT_WORD_MAX];
    } rec[16];
} ta__seen_t;

static int ta__on_seen(const hub_audit_record_t *rec, const char *file, uint64_t line, void *user)
{
    (void)file;
    (void)line;
    ta__seen_t *seen = user;
    if (seen->calls < 16) {
        snprintf(seen->rec[seen->calls].sender, sizeof seen->rec[0].sender, "%s", rec->sender);
        snprintf(seen->rec[seen->calls].reason, sizeof seen->rec[0].reason, "%s", rec->reason);
        snprintf(seen->rec[seen->calls].node, sizeof seen->rec[0].node, "%s",
                 rec->node_id ? rec->node_id : "?");
    }
    seen->calls++;
    return 0;
}

START_TEST(test_text_is_escaped_and_capped)
{
    char dir[PATH_MAX];
    hub_audit_config_t cfg;
    hub_audit_t *log = ta__open_new(dir, &cfg, 0, 0, 0);
    const char *reason = "NACK_FORBIDDEN: không có thỏa thuận \"chia sẻ\"\n\tdữ liệu \\ \x01\xff!";
    hub_audit_record_t rec = {.event = HUB_AUDIT_NACKED,
                              .message_id = "odd-id",
                              .sender = "VN/GOV/\"HN\"",
                              .reason = reason};
    ck_assert_int_eq(hub_audit_append(log, &rec), 0);
    char long_reason[5000];
    memset(long_reason, 'x', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';
    memcpy(long_reason + 1018, "đđđđ", 8); /* a cut must not split a character */
    hub_audit_record_t rec2 = {.event = HUB_AUDIT_MEMBER_REFUSED, .message_id = "long-id",
                               .reason = long_reason};
    ck_assert_int_eq(hub_audit_append(log, &rec2), 0);

    /* Records this module writes itself are refused; so are oversized signatures. */
    hub_audit_record_t bad = {.event = HUB_AUDIT_CHECKPOINT};
    ck_assert_int_eq(hub_audit_append(log, &bad), HUB_EINVAL);
    bad.event = HUB_AUDIT_RECOVERED;
    ck_assert_int_eq(hub_audit_append(log, &bad), HUB_EINVAL);
    uint8_t sig[65] = {0};
    hub_audit_record_t big = {.event = HUB_AUDIT_ACCEPTED, .signature = sig, .signature_len = 65};
    ck_assert_int_eq(hub_audit_append(log, &big), HUB_EINVAL);
    ck_assert_int_eq(hub_audit_close(&log), 0);

    hub_audit_verify_report_t report;
    int rc = hub_audit_verify_dir(dir, cfg.sign_public, &report);
    ck_assert_msg(rc == 0, "%s", report.message);
    ck_assert_uint_eq(report.records, 3);

    char path[PATH_MAX];
    ta__path(dir, 1, path);
    ta__lines_t lines;
    ta__read_lines(path, &lines);
    ck_assert_uint_eq(lines.count, 3); /* the newline in reason stayed escaped */
    ck_assert_ptr_nonnull(strstr(lines.line[0], "\\\"chia sẻ\\\"\\u000a\\u0009dữ liệu \\\\ "
                                                "\\u0001\xef\xbf\xbd!"));
    free(lines.text);

    ta__seen_t t = {0};
    ck_assert_int_eq(hub_audit_find_message(dir, "odd-id", ta__on_seen, &t), 0);
    ck_assert_int_eq(t.calls, 1);
    ck_assert_str_eq(t.rec[0].sender, "VN/GOV/\"HN\"");
    ck_assert_ptr_nonnull(strstr(t.rec[0].reason, "\"chia sẻ\"\n\tdữ liệu \\ \x01\xef\xbf\xbd!"));
    ck_assert_int_eq(hub_audit_find_message(dir, "long-id", ta__on_seen, &t), 0);
    size_t n = strlen(t.rec[1].reason);
    ck_assert_uint_eq(n, 1023); /* 1018 x, one đ, "..." */
    ck_assert_str_eq(t.rec[1].reason + 1018, "\xc4\x91...");
    tk_rmrf(dir);
}
END_TEST

START_TEST(test_tick_and_config)
{
    char dir[PATH_MAX], err[HUB_ERRMSG_MAX];
    hub_audit_config_t cfg;
    hub_audit_t *log = ta__open_new(dir, &cfg, 0, UINT64_MAX, 1000);
    hub_audit_record_t rec = {.event = HUB_AUDIT_MEMBER_CONNECTED, .sender = "VN/GOV/A/B"};
    ck_assert_int_eq(hub_audit_tick(log, TA_T0), 0);
    ck_assert_uint_eq(hub_audit_seq(log), 0); /* nothing to seal */
    ck_assert_int_eq(hub_audit_append(log, &rec), 0);
    ck_assert_int_eq(hub_audit_append(log, &rec), 0);
    ck_assert_int_eq(hub_audit_tick(log, TA_T0 + 100), 0);
    ck_assert_uint_eq(hub_audit_seq(log), 2);
    ck_assert_int_eq(hub_audit_tick(log, TA_T0 + 1100), 0);
    ck_assert_uint_eq(hub_audit_seq(log), 3); /* a checkpoint */
    ck_assert_int_eq(hub_audit_tick(log, TA_T0 + 5000), 0);
    ck_assert_uint_eq(hub_audit_seq(log), 3); /* none without new records */
    ck_assert_int_eq(hub_audit_flush(log), 0);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    hub_audit_verify_report_t report;
    ck_assert_int_eq(hub_audit_verify_dir(dir, cfg.sign_public, &report), 0);
    ck_assert_uint_eq(report.records, 3); /* no extra checkpoint at close */
    ck_assert_uint_eq(report.checkpoints, 1);

    /* A public key that is not the secret's half. */
    hub_audit_config_t wrong = cfg;
    wrong.sign_public[0] ^= 1;
    ck_assert_int_eq(hub_audit_open(dir, &wrong, &log, err, sizeof err), HUB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "does not match"));
    ck_assert_int_eq(hub_audit_open(NULL, &cfg, &log, err, sizeof err), HUB_EINVAL);
    tk_rmrf(dir);

    /* An empty directory has nothing to verify. */
    tk_tmpdir(dir);
    ck_assert_int_eq(hub_audit_verify_dir(dir, cfg.sign_public, &report), HUB_ENOENT);
    tk_rmrf(dir);
}
END_TEST

static int prepare(void)
{
    if (sodium_init() < 0)
        return EXIT_FAILURE;
    hub_log_set_level(HUB_LOG_ERROR); /* checkpoints log at INFO, recoveries at WARN */
    return 0;
}

/* Opens the log in dir as node node_id, appends records first..first+2,
 * closes it and verifies the directory into *report: it must pass. */
static void ta__append_as(const char *dir, hub_audit_config_t *cfg, const char *node_id, int first,
                          hub_audit_verify_report_t *report)
{
    snprintf(cfg->node_id, sizeof cfg->node_id, "%s", node_id);
    hub_audit_t *log = ta__open(dir, cfg);
    ta__append(log, first, 3);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    ck_assert_int_eq(hub_audit_verify_dir(dir, cfg->sign_public, report), 0);
}

/* A log opened with a node id names the node (NODE_OPENED, sealed like any
 * record); records after it are attributed to it by find, and by verify;
 * a log reopened under another id says so; a log without one names none. */
START_TEST(test_node_attribution)
{
    char dir[PATH_MAX];
    hub_audit_config_t cfg;
    /* No node id: no NODE_OPENED, as before. */
    hub_audit_t *log = ta__open_new(dir, &cfg, 0, 1000, UINT64_MAX);
    ck_assert_uint_eq(hub_audit_seq(log), 0);
    ta__append(log, 0, 3);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    hub_audit_verify_report_t report;
    ck_assert_int_eq(hub_audit_verify_dir(dir, cfg.sign_public, &report), 0);
    ck_assert_str_eq(report.node_id, "");
    ck_assert_uint_eq(report.node_records, 0);
    char node[HUB_AUDIT_WORD_MAX];
    ck_assert_int_eq(hub_audit_node_of(dir, node, sizeof node), HUB_ENOTFOUND);

    ta__append_as(dir, &cfg, "hn-lgsp-1", 3, &report);
    ck_assert_str_eq(report.node_id, "hn-lgsp-1");
    ck_assert_uint_eq(report.node_records, 1);
    ck_assert(!report.node_changed);

    ta__append_as(dir, &cfg, "hn-lgsp-2", 6, &report);
    ck_assert_str_eq(report.node_id, "hn-lgsp-2");
    ck_assert_uint_eq(report.node_records, 2);
    ck_assert(report.node_changed);
    ck_assert_int_eq(hub_audit_node_of(dir, node, sizeof node), 0);
    ck_assert_str_eq(node, "hn-lgsp-2");

    /* Messages 0, 1 and 2 (records 0-2, 3-5, 6-8): no node, node 1, node 2. */
    ta__seen_t n = {0};
    hub_audit_filter_t all = {.service = "citizen.lookup/v1"};
    ck_assert_int_eq(hub_audit_find(dir, &all, ta__on_seen, &n), 0);
    ck_assert_int_eq(n.calls, 9);
    ck_assert_str_eq(n.rec[0].node, "");
    ck_assert_str_eq(n.rec[3].node, "hn-lgsp-1");
    ck_assert_str_eq(n.rec[8].node, "hn-lgsp-2");

    /* The attribution is chained: rewriting the node id breaks the log. */
    ck_assert_int_eq(tk_shf(10000,
                            "sed -i 's/\"outcome\":\"hn-lgsp-1\"/\"outcome\":\"hn-lgsp-9\"/' "
                            "'%s/audit-000001.log'",
                            dir),
                     0);
    ck_assert_int_eq(hub_audit_verify_dir(dir, cfg.sign_public, &report), HUB_EPARSE);
    ck_assert_msg(strstr(report.message, "modified record"), "%s", report.message);
    tk_rmrf(dir);
}
END_TEST

/* One thread appends and writes (the hub's loop: online-only exchanges),
 * another appends and flushes (the commit worker), at once, over small
 * files that rotate often: every record of both is in the chain, which
 * verifies; what was written (not synced, not closed) is in the files. */
typedef struct {
    hub_audit_t *log;
    const char *service;
    int n;
    bool flush; /* else hub_audit_write */
} ta__writer_t;

static void *ta__writer(void *arg)
{
    ta__writer_t *w = arg;
    for (int i = 0; i < w->n; i++) {
        char id[37];
        ta__message_id(i, id);
        hub_audit_record_t rec = {.event = HUB_AUDIT_ACCEPTED, .message_id = id,
                                  .sender = "VN/GOV/HN-VP/TTHC", .receiver = "VN/GOV/BCA/CSDLQGDC",
                                  .service = w->service, .outcome = "request online-only",
                                  .has_digest = true};
        memset(rec.digest, i, sizeof rec.digest);
        if (hub_audit_append(w->log, &rec) != 0)
            return "append failed";
        if (i % 7 == 6 && (w->flush ? hub_audit_flush(w->log) : hub_audit_write(w->log)) != 0)
            return w->flush ? "flush failed" : "write failed";
    }
    return NULL;
}

static int ta__count_any(const hub_audit_record_t *rec, const char *file, uint64_t line, void *user)
{
    (void)rec;
    (void)file;
    (void)line;
    (*(int *)user)++;
    return 0;
}

START_TEST(test_two_threads_append)
{
    char dir[PATH_MAX];
    hub_audit_config_t cfg;
    hub_audit_t *log = ta__open_new(dir, &cfg, 16384, 50, UINT64_MAX);
    enum { N = 3000 };
    ta__writer_t loop = {log, "loop/v1", N, false}, worker = {log, "worker/v1", N, true};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, ta__writer, &loop), 0);
    const char *worker_failed = ta__writer(&worker);
    void *loop_failed = NULL;
    ck_assert_int_eq(pthread_join(t, &loop_failed), 0);
    ck_assert_msg(!worker_failed && !loop_failed, "%s", worker_failed ? worker_failed
                                                                      : (const char *)loop_failed);
    ck_assert_int_eq(hub_audit_write(log), 0);
    int found[2] = {0, 0};
    hub_audit_filter_t f0 = {.service = "loop/v1"}, f1 = {.service = "worker/v1"};
    ck_assert_int_eq(hub_audit_find(dir, &f0, ta__count_any, &found[0]), 0);
    ck_assert_int_eq(hub_audit_find(dir, &f1, ta__count_any, &found[1]), 0);
    ck_assert_int_eq(found[0], N);
    ck_assert_int_eq(found[1], N);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    hub_audit_verify_report_t report;
    int rc = hub_audit_verify_dir(dir, cfg.sign_public, &report);
    ck_assert_msg(rc == 0, "%s", report.message);
    ck_assert_uint_eq(report.records - report.checkpoints, 2 * N);
    ck_assert_int_gt(ta__file_count(dir), 10);
    tk_rmrf(dir);
}
END_TEST

TK_MAIN_PREPARED(prepare, "audit",
                 TK_CASE("log", NULL, NULL, 120, test_write_and_verify, test_modified_record,
                         test_removed_record, test_reordered_records, test_inserted_record,
                         test_truncated_file, test_forged_checkpoint, test_reopen_continues_chain,
                         test_crash_recovery, test_open_refuses_damaged_tail, test_find_message,
                         test_legacy_lines_and_service_filter, test_text_is_escaped_and_capped,
                         test_tick_and_config, test_node_attribution, test_two_threads_append))
