/* Unit tests for the audit chain's anchors and key rotations (hub_audit,
 * hub_store's anchor, hub_tsa_verify's refusals): what hubd and
 * `hubctl audit verify` rely on, on logs written in temporary directories.
 * The end-to-end side, with a real hubd and a TSA, is tests/e2e/test_auditchain.c. */
#include "hub_audit.h"
#include "hub_error.h"
#include "hub_store.h"
#include "hub_tsa.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void keypair(uint8_t seed_byte, uint8_t pub[32], uint8_t sec[64])
{
    uint8_t seed[32];
    memset(seed, seed_byte, sizeof seed);
    ck_assert_int_eq(crypto_sign_seed_keypair(pub, sec, seed), 0);
}

static hub_audit_t *open_log(const char *dir, uint8_t seed_byte, const hub_audit_head_t *anchor,
                             bool accept_gap, int expect_rc, char *err)
{
    hub_audit_config_t cfg = {
        .checkpoint_every_records = 4, .max_file_bytes = 2048, .accept_gap = accept_gap};
    keypair(seed_byte, cfg.sign_public, cfg.sign_secret);
    if (anchor) {
        cfg.anchor_seq = anchor->seq;
        memcpy(cfg.anchor_hash, anchor->hash, 32);
    }
    hub_audit_t *log = NULL;
    char buf[HUB_ERRMSG_MAX] = "";
    int rc = hub_audit_open(dir, &cfg, &log, err ? err : buf, HUB_ERRMSG_MAX);
    ck_assert_msg(rc == expect_rc, "open: %d (%s)", rc, err ? err : buf);
    return log;
}

static void append(hub_audit_t *log, int n)
{
    for (int i = 0; i < n; i++) {
        hub_audit_record_t rec = {.event = HUB_AUDIT_MEMBER_CONNECTED,
                                  .sender = "VN/GOV/HN-STP/HOTICH",
                                  .reason = "citizen.lookup/v1"};
        ck_assert_int_eq(hub_audit_append(log, &rec), 0);
    }
}

static int verify(const char *dir, uint8_t seed_byte, const hub_audit_head_t *anchor,
                  hub_audit_verify_report_t *r)
{
    uint8_t pub[32], sec[64];
    keypair(seed_byte, pub, sec);
    hub_audit_verify_opts_t opts = {.hub_sign_public = pub};
    if (anchor) {
        opts.anchor_seq = anchor->seq;
        memcpy(opts.anchor_hash, anchor->hash, 32);
    }
    return hub_audit_verify_dir_opts(dir, &opts, r);
}

START_TEST(anchor_refuses_a_cut_log)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    tk_tmpdir(dir);
    hub_audit_t *log = open_log(dir, 1, NULL, false, 0, NULL);
    append(log, 30);
    ck_assert_int_eq(hub_audit_seal(log), 0);
    hub_audit_head_t head;
    hub_audit_durable_head(log, &head);
    ck_assert_uint_eq(head.seq, hub_audit_seq(log));
    ck_assert_int_eq(hub_audit_close(&log), 0);

    hub_audit_verify_report_t r;
    ck_assert_int_eq(verify(dir, 1, &head, &r), 0);
    hub_audit_head_t wrong = head;
    wrong.hash[5] ^= 1;
    ck_assert_int_eq(verify(dir, 1, &wrong, &r), HUB_EPARSE);
    ck_assert_msg(strstr(r.message, "anchor mismatch"), "%s", r.message);

    /* The last file goes: open refuses, naming the gap; verify too. */
    snprintf(path, sizeof path, "%s/audit-000002.log", dir);
    ck_assert_int_eq(access(path, F_OK), 0);
    char last[PATH_MAX + 32];
    for (int n = 2; n < 100; n++) {
        snprintf(path, sizeof path, "%s/audit-%06d.log", dir, n);
        if (access(path, F_OK) == 0)
            snprintf(last, sizeof last, "%s", path);
    }
    ck_assert_int_eq(unlink(last), 0);
    char err[HUB_ERRMSG_MAX];
    open_log(dir, 1, &head, false, HUB_EPARSE, err);
    ck_assert_msg(strstr(err, "audit log cut back") && strstr(err, "are missing"), "%s", err);
    ck_assert_int_eq(verify(dir, 1, &head, &r), HUB_EPARSE);
    ck_assert_msg(strstr(r.message, "log cut back"), "%s", r.message);

    /* Accepted by the operator: a RECOVERED record names the gap. */
    log = open_log(dir, 1, &head, true, 0, NULL);
    ck_assert_uint_gt(hub_audit_gap(log), 0);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    ck_assert_int_eq(verify(dir, 1, NULL, &r), 0);
    ck_assert_uint_ge(r.recoveries, 1);
    tk_rmrf(dir);
}
END_TEST

START_TEST(rotation_is_followed_and_required)
{
    char dir[PATH_MAX];
    tk_tmpdir(dir);
    hub_audit_t *log = open_log(dir, 1, NULL, false, 0, NULL);
    append(log, 9);
    uint8_t pub2[32], sec2[64];
    keypair(2, pub2, sec2);
    ck_assert_int_eq(hub_audit_rotate_key(log, sec2, pub2), 0);
    /* The same key again is no rotation. */
    ck_assert_int_eq(hub_audit_rotate_key(log, sec2, pub2), HUB_EINVAL);
    append(log, 9);
    ck_assert_int_eq(hub_audit_close(&log), 0);

    hub_audit_verify_report_t r;
    ck_assert_int_eq(verify(dir, 1, NULL, &r), 0);
    ck_assert_uint_eq(r.key_rotations, 1);
    ck_assert_mem_eq(r.final_key, pub2, 32);
    /* From the new key alone: the first checkpoint is named. */
    ck_assert_int_eq(verify(dir, 2, NULL, &r), HUB_ECRYPTO);
    ck_assert_msg(strstr(r.message, "key change without a rotation record"), "%s", r.message);
    /* hubd's own check (the key at the end, earlier keys unknown) passes. */
    hub_audit_verify_opts_t opts = {.hub_sign_public = pub2, .early_keys_unknown = true};
    ck_assert_int_eq(hub_audit_verify_dir_opts(dir, &opts, &r), 0);
    ck_assert_uint_eq(r.key_rotations, 1);

    /* The log now belongs to key 2: key 1 and key 3 are refused at open. */
    char err[HUB_ERRMSG_MAX];
    open_log(dir, 1, NULL, false, HUB_ECRYPTO, err);
    ck_assert_msg(strstr(err, "key change without a rotation record"), "%s", err);
    open_log(dir, 3, NULL, false, HUB_ECRYPTO, err);
    log = open_log(dir, 2, NULL, false, 0, NULL);
    ck_assert_int_eq(hub_audit_close(&log), 0);
    /* hubd's check with a key that never took over names the point. */
    uint8_t pub3[32], sec3[64];
    keypair(3, pub3, sec3);
    opts.hub_sign_public = pub3;
    ck_assert_int_eq(hub_audit_verify_dir_opts(dir, &opts, &r), HUB_ECRYPTO);
    tk_rmrf(dir);
}
END_TEST

START_TEST(store_keeps_the_anchor)
{
    char dir[PATH_MAX];
    tk_tmpdir(dir);
    hub_store_limits_t limits = {0};
    hub_store_t *store = NULL;
    char err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(hub_store_open(dir, &limits, &store, err, sizeof err), 0);
    uint64_t seq = 99;
    uint8_t hash[32], want[32];
    ck_assert_int_eq(hub_store_audit_anchor_get(store, &seq, hash), 0);
    ck_assert_uint_eq(seq, 0);
    memset(want, 0x5a, sizeof want);
    ck_assert_int_eq(hub_store_audit_anchor_put(store, 4711, want), 0);
    hub_store_close(&store);
    ck_assert_int_eq(hub_store_open(dir, &limits, &store, err, sizeof err), 0);
    ck_assert_int_eq(hub_store_audit_anchor_get(store, &seq, hash), 0);
    ck_assert_uint_eq(seq, 4711);
    ck_assert_mem_eq(hash, want, 32);
    hub_store_close(&store);
    tk_rmrf(dir);
}
END_TEST

START_TEST(tsa_verify_refuses_what_is_not_a_token)
{
    uint8_t hash[32] = {0};
    char err[256];
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    ck_assert_int_eq(hub_tsa_verify(junk, sizeof junk, hash, NULL, NULL, err, sizeof err),
                     HUB_EPARSE);
    ck_assert_msg(strstr(err, "not an RFC 3161"), "%s", err);
    ck_assert_int_eq(hub_tsa_verify(NULL, 0, hash, NULL, NULL, err, sizeof err), HUB_EINVAL);
}
END_TEST

TK_MAIN("auditchain",
        TK_CASE("core", NULL, NULL, 0, anchor_refuses_a_cut_log, rotation_is_followed_and_required,
                store_keeps_the_anchor, tsa_verify_refuses_what_is_not_a_token))
