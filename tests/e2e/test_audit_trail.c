/* End to end: every exchange the hub routes leaves an audit record, and no
 * record gives a payload away. A real hubd with a policy, the population
 * adapter (lth-population.so in hub-adapter) as responder, SDK and raw
 * CURVE clients as requesters: online-only look-ups, a forbidden call and a
 * metaservice call are each recorded with sender, receiver, service,
 * purpose, dossier code, outcome and a keyed MAC of the envelope digest;
 * `hubctl audit verify` passes and `hubctl audit show --service` counts the
 * look-ups. Then a look-up record is attacked by hashing guessed personal
 * IDs, as one could with the old payload_sha256. Last, hubd is killed
 * (SIGKILL) right after a run of look-ups: each one delivered is in the log
 * it leaves behind, and the log verifies after a restart. */
#include "domain.pb-c.h"
#include "hub_audit.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_keys.h"
#include "hub_sha256.h"
#include "hub_sign.h"
#include "hubfix.h"
#include "lth_citizen.h"
#include "lth_lookup.h"
#include "testkit.h"
#include "tkwire.h"
#include "tkaudit.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POP "VN/GOV/BCA/CSDLQGDC"
#define TTHC "VN/GOV/HN-VP/TTHC"      /* has an agreement */
#define HOTICH "VN/GOV/HN-STP/HOTICH" /* has none: FORBIDDEN */
#define ARCHIVE "VN/GOV/HN-STP/LUUTRU" /* HOTICH's durable notices go there */
#define AGREEMENT_PURPOSE "one-stop shop: verify applicants' identity"
#define LOOKUP_PURPOSE "Đăng ký thường trú: kiểm tra thông tin công dân"
#define SEED 1 /* the plugin's default plugin.seed */
#define CITIZENS 200
#define N_LOOKUPS 5

static hubfix_t fix;
static char audit_dir[PATH_MAX];

static void setup(void)
{
    hubfix_init(&fix, "policy_file = policy.conf");
    HUBFIX_ADD_MEMBERS(&fix, POP, TTHC, HOTICH, ARCHIVE);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/policy.conf", fix.dir);
    tk_write_file(path, "allow " TTHC " -> " POP "/citizen.lookup/v1 purpose \"" AGREEMENT_PURPOSE
                        "\"\nallow " HOTICH " -> " ARCHIVE "/notice/v1 purpose \"archive\"\n");
    snprintf(audit_dir, sizeof audit_dir, "%s/data/audit", fix.dir);
    hubfix_start(&fix);
    char conf[1024];
    snprintf(conf, sizeof conf,
             "plugin.db = %s/pop.db\nplugin.citizens = %d\nplugin.allowed_consumers = " TTHC "\n",
             fix.dir, CITIZENS);
    hubfix_start_adapter(&fix, POP, "population", conf);
}

static void teardown(void) { hubfix_cleanup(&fix); }

static void personal_id(size_t index, char out[LTH_PID_LEN + 1])
{
    lth_citizen_t c;
    ck_assert_int_eq(lth_citizen_generate(SEED, index, &c), 0);
    snprintf(out, LTH_PID_LEN + 1, "%s", c.personal_id);
}

/* A look-up payload as the procedure system builds it (malloc'ed). */
static uint8_t *lookup_payload(const char *pid, const char *dossier, size_t *len)
{
    Lth__Domain__V1__CitizenLookupRequest req = LTH__DOMAIN__V1__CITIZEN_LOOKUP_REQUEST__INIT;
    char *keys[1] = {(char *)pid};
    req.personal_ids = keys;
    req.n_personal_ids = 1;
    req.mode = LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CURRENT;
    req.purpose = LOOKUP_PURPOSE;
    req.dossier_code = (char *)dossier;
    *len = lth__domain__v1__citizen_lookup_request__get_packed_size(&req);
    uint8_t *buf = malloc(*len);
    ck_assert_ptr_nonnull(buf);
    lth__domain__v1__citizen_lookup_request__pack(&req, buf);
    return buf;
}

/* One online-only look-up through the SDK: 0 or the SDK's error. */
static int sdk_lookup(adp_client_t *c, const char *pid, const char *dossier)
{
    size_t len;
    uint8_t *buf = lookup_payload(pid, dossier, &len);
    adp_reply_t reply;
    int rc = adp_request(c, POP, LTH_SERVICE_CITIZEN_LOOKUP, LTH_LOOKUP_REQUEST_TYPE, buf, len,
                         ADP_ONLINE_ONLY, 10000, &reply);
    free(buf);
    if (rc == 0) {
        ck_assert_str_eq(reply.sender, POP);
        ck_assert_str_eq(reply.content_type, LTH_LOOKUP_RESPONSE_TYPE);
        adp_reply_free(&reply);
    }
    return rc;
}

/* `hubctl audit verify` on the sealed log: exit 0, "intact". */
static void assert_verify_passes(void)
{
    char hub_pub[PATH_MAX];
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    char *argv[] = {(char *)tk_bin("hubctl"), "audit", "verify", audit_dir, "--hub-key", hub_pub,
                    NULL};
    TK_RUN_SAYS(argv, 30000, 0, "audit log intact:");
}

START_TEST(every_exchange_is_audited)
{
    adp_client_t *tthc = hubfix_connect(&fix, TTHC);
    char pids[N_LOOKUPS][LTH_PID_LEN + 1];
    for (int i = 0; i < N_LOOKUPS; i++) {
        char dossier[32];
        snprintf(dossier, sizeof dossier, "000.00.01.H26-2606%02d-0001", i);
        personal_id((size_t)i * 7, pids[i]);
        int rc = sdk_lookup(tthc, pids[i], dossier);
        ck_assert_msg(rc == 0, "look-up %d failed: %s", i, adp_last_error(tthc));
    }
    /* A member without an agreement: refused, and recorded. */
    adp_client_t *hotich = hubfix_connect(&fix, HOTICH);
    ck_assert_int_eq(sdk_lookup(hotich, pids[0], "000.00.01.H26-260699-0001"), HUB_ENACK);
    ck_assert_msg(strstr(adp_last_error(hotich), "FORBIDDEN"), "error: %s",
                  adp_last_error(hotich));
    adp_close(&hotich);
    /* A metaservice call: answered by the hub itself. */
    adp_reply_t reply;
    int rc = adp_request(tthc, HUBFIX_HUB_ID, "lth.members/v1", "text/plain", "", 0,
                         ADP_ONLINE_ONLY, 10000, &reply);
    ck_assert_msg(rc == 0, "lth.members/v1 failed: %s", adp_last_error(tthc));
    ck_assert_msg(strstr((const char *)reply.payload, POP) != NULL, "members: %.*s",
                  (int)reply.payload_len, (const char *)reply.payload);
    adp_reply_free(&reply);
    adp_close(&tthc);
    hubfix_stop(&fix); /* seals the log */

    static tk_audit_recs_t all; /* large: off the stack */
    tk_audit_find_service(audit_dir, LTH_SERVICE_CITIZEN_LOOKUP, &all);
    size_t requests = 0, replies = 0, refused = 0;
    for (size_t i = 0; i < all.n; i++) {
        const tk_audit_rec_t *r = &all.recs[i];
        ck_assert_msg(r->has_digest, "record %zu has no envelope MAC", i);
        ck_assert_uint_eq(r->signature_len, 0); /* an oracle for guesses: not recorded */
        if (r->event == HUB_AUDIT_ACCEPTED && !strcmp(r->outcome, "request online-only")) {
            ck_assert_str_eq(r->sender, TTHC);
            ck_assert_str_eq(r->receiver, POP);
            ck_assert_str_eq(r->purpose, AGREEMENT_PURPOSE);
            char want[32];
            snprintf(want, sizeof want, "000.00.01.H26-2606%02zu-0001", requests);
            ck_assert_str_eq(r->dossier, want);
            requests++;
        } else if (r->event == HUB_AUDIT_ACCEPTED && !strncmp(r->outcome, "reply", 5)) {
            ck_assert_str_eq(r->sender, POP);
            ck_assert_str_eq(r->receiver, TTHC);
            ck_assert_str_eq(r->purpose, AGREEMENT_PURPOSE); /* its request's */
            replies++;
        } else if (r->event == HUB_AUDIT_NACKED) {
            ck_assert_str_eq(r->outcome, "FORBIDDEN");
            ck_assert_str_eq(r->sender, HOTICH);
            ck_assert_str_eq(r->receiver, POP);
            ck_assert_str_eq(r->dossier, "000.00.01.H26-260699-0001");
            refused++;
        } else {
            ck_abort_msg("unexpected record %zu: event %s outcome \"%s\"", i,
                         hub_audit_event_name(r->event), r->outcome);
        }
    }
    ck_assert_uint_eq(requests, N_LOOKUPS);
    ck_assert_uint_eq(replies, N_LOOKUPS);
    ck_assert_uint_eq(refused, 1);

    tk_audit_find_service(audit_dir, "lth.members/v1", &all);
    ck_assert_uint_eq(all.n, 1);
    ck_assert_int_eq(all.recs[0].event, HUB_AUDIT_ACCEPTED);
    ck_assert_str_eq(all.recs[0].outcome, "answered by the hub");
    ck_assert_str_eq(all.recs[0].sender, TTHC);
    ck_assert_str_eq(all.recs[0].receiver, HUBFIX_HUB_ID);
    ck_assert(all.recs[0].has_digest); /* from the decoded envelope, on the loop */

    assert_verify_passes();
    char *out = NULL;
    char *show[] = {(char *)tk_bin("hubctl"), "audit", "show", audit_dir, "--service",
                    LTH_SERVICE_CITIZEN_LOOKUP, NULL};
    ck_assert_int_eq(tk_run(show, &out, 30000), 0);
    ck_assert_msg(strstr(out, "11 records: 5 requests accepted, 5 other envelopes accepted"),
                  "show said: %s", out);
    ck_assert_msg(strstr(out, ", 1 refused,"), "show said: %s", out);
    free(out);

    /* No personal ID is in the log, in any file. */
    for (int k = 1; k < 10; k++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/audit-%06d.log", audit_dir, k);
        char *text = tk_read_file(path);
        if (!text)
            break;
        for (int i = 0; i < N_LOOKUPS; i++)
            ck_assert_msg(!strstr(text, pids[i]), "personal ID %d in %s", i, path);
        free(text);
    }
}
END_TEST

/* The attack of issue 14: take a look-up's record and hash guessed
 * payloads built like the look-up's (the purpose text is fixed, the dossier
 * code is in the record), for every personal ID sharing the real one's
 * first seven digits. Against the old record (SHA-256 of the payload) this
 * finds the ID; against the record now (a MAC keyed from the hub's secret)
 * neither the payload's hash nor even the exact envelope's digest matches,
 * while the hub's operator can still match the envelope a party presents. */
START_TEST(lookup_record_gives_no_payload_away)
{
    char pid[LTH_PID_LEN + 1];
    personal_id(11, pid);
    const char *dossier = "000.00.01.H26-260630-0042";
    size_t payload_len;
    uint8_t *payload = lookup_payload(pid, dossier, &payload_len);

    /* The look-up as the procedure system sends it, built here so that the
     * test knows every field of the envelope. */
    char id[HUB_UUID_LEN + 1];
    Lth__V1__Envelope env = tkw_envelope(id, TTHC, POP, LTH_SERVICE_CITIZEN_LOOKUP);
    env.ttl_ms = 10000;
    env.content_type = LTH_LOOKUP_REQUEST_TYPE;
    env.payload.data = payload;
    env.payload.len = payload_len;
    env.kind = LTH__V1__KIND__KIND_REQUEST;
    env.delivery = LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY;
    char secret[PATH_MAX], err[256];
    hub_keypair_t kp;
    hubfix_secret_path(&fix, TTHC, secret);
    ck_assert_int_eq(hub_keyfile_read(secret, &kp, err, sizeof err), 0);
    uint8_t sig[HUB_SIGNATURE_LEN];
    ck_assert_int_eq(hub_envelope_sign(&env, kp.sign_secret, sig), 0);
    hub_keypair_wipe(&kp);
    uint8_t real_digest[HUB_DIGEST_LEN];
    ck_assert_int_eq(hub_envelope_digest(&env, real_digest), 0);
    size_t len = lth__v1__envelope__get_packed_size(&env);
    uint8_t *bytes = malloc(len);
    ck_assert_ptr_nonnull(bytes);
    lth__v1__envelope__pack(&env, bytes);

    rawcli_t raw;
    rawcli_connect(&raw, &fix, TTHC);
    rawcli_send_batch1(&raw, bytes, len);
    hub_frame_t *rc = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_RECEIPTS, 10000);
    ck_assert_ptr_nonnull(rc);
    ck_assert_uint_eq(rc->receipts->n_acks, 1);
    hub_frame_free(&rc);
    rawcli_close(&raw);
    free(bytes);
    hubfix_stop(&fix);

    static tk_audit_recs_t found;
    found.n = 0;
    ck_assert_int_eq(hub_audit_find_message(audit_dir, id, tk_audit_collect, &found), 0);
    ck_assert_uint_eq(found.n, 1);
    const tk_audit_rec_t *r = &found.recs[0];
    ck_assert_int_eq(r->event, HUB_AUDIT_ACCEPTED);
    ck_assert_str_eq(r->dossier, dossier); /* what the attacker reads from the record */
    ck_assert(r->has_digest);

    /* What the old scheme recorded for this look-up. */
    uint8_t old_record[32];
    hub_sha256(payload, payload_len, old_record);
    /* The guesses: every ID with the real one's province, century, sex,
     * birth year and first digit of its serial (100,000 of them). */
    size_t found_old = 0, hits_new = 0;
    char found_pid[LTH_PID_LEN + 1] = "";
    for (unsigned serial = 0; serial < 100000; serial++) {
        char guess[LTH_PID_LEN + 1];
        snprintf(guess, sizeof guess, "%.7s%05u", pid, serial);
        size_t glen;
        uint8_t *g = lookup_payload(guess, r->dossier, &glen);
        uint8_t h[32];
        hub_sha256(g, glen, h);
        if (!memcmp(h, old_record, 32)) {
            found_old++;
            snprintf(found_pid, sizeof found_pid, "%s", guess);
        }
        hits_new += !memcmp(h, r->digest, 32);
        /* Even knowing every other field of the envelope exactly. */
        env.payload.data = g;
        env.payload.len = glen;
        uint8_t d[HUB_DIGEST_LEN];
        ck_assert_int_eq(hub_envelope_digest(&env, d), 0);
        hits_new += !memcmp(d, r->digest, 32);
        free(g);
    }
    env.payload.data = payload;
    env.payload.len = payload_len;
    ck_assert_uint_eq(found_old, 1); /* the old record gave the ID away */
    ck_assert_str_eq(found_pid, pid);
    ck_assert_uint_eq(hits_new, 0); /* the record now gives nothing */

    /* The hub's operator, who holds its secret key, can match the envelope. */
    char hub_secret[PATH_MAX];
    snprintf(hub_secret, sizeof hub_secret, "%s/secrets/VN.GOV.HN-LGSP.HUB.secret", fix.dir);
    ck_assert_int_eq(hub_keyfile_read(hub_secret, &kp, err, sizeof err), 0);
    uint8_t mac[32];
    hub_audit_envelope_mac(kp.sign_secret, real_digest, mac);
    hub_keypair_wipe(&kp);
    ck_assert_int_eq(memcmp(mac, r->digest, 32), 0);
    free(payload);
    assert_verify_passes();
}
END_TEST

/* Online-only look-ups, then SIGKILL the instant the last reply is in:
 * hubd gets no chance to write anything more. The log it leaves holds an
 * ACCEPTED record for every request and every reply that was delivered
 * (each request's dossier code once) and is intact up to its last
 * checkpoint, but for a last line the kill may have cut; restarted, hubd recovers it; three rounds of that, and after
 * a clean stop `hubctl audit verify` passes. A stream of durable notices
 * keeps group commits (and their fdatasync) running meanwhile, as in
 * production: the look-ups' records are written while the worker flushes.
 * Without the end-of-turn write of online-only records, those of the last
 * look-ups were still in hubd's memory, waiting for the next group commit
 * (a round then missed one or two: nearly always, so three rounds fail). */
static void kill_after_lookups(int round, int n)
{
    hubfix_sender_t load = {.batch = 20, .pause_ms = 2, .max_outbox = 400, .drain_ms = 0};
    hubfix_sender_start(&load, &fix, HOTICH, ARCHIVE, "notice/v1", "n");
    for (int waited = 0; load.posted < 200 && !load.error[0] && waited < 10000; waited += 10)
        tk_sleep_ms(10);
    ck_assert_msg(load.posted >= 200, "the notice stream did not start: %s", load.error);
    adp_client_t *tthc = hubfix_connect(&fix, TTHC);
    for (int i = 0; i < n; i++) {
        char dossier[32], pid[LTH_PID_LEN + 1];
        snprintf(dossier, sizeof dossier, "000.00.02.H26-26%02d%02d-0001", round, i);
        personal_id((size_t)i, pid);
        int rc = sdk_lookup(tthc, pid, dossier);
        /* After a restart the adapter takes a moment to reconnect. */
        for (int waited = 0; i == 0 && rc == HUB_ENACK && waited < 20000; waited += 100) {
            ck_assert_msg(strstr(adp_last_error(tthc), "RECEIVER_OFFLINE"), "%s",
                          adp_last_error(tthc));
            tk_sleep_ms(100);
            rc = sdk_lookup(tthc, pid, dossier);
        }
        ck_assert_msg(rc == 0, "look-up %d failed: %s", i, adp_last_error(tthc));
    }
    tk_kill9(fix.hubd); /* the last reply has just arrived */
    fix.hubd = 0;
    load.stop = true;
    hubfix_sender_join(&load); /* its last notices are not ACKed: no matter */
    adp_close(&tthc);
}

START_TEST(online_lookups_delivered_before_a_kill_are_in_the_log)
{
    enum { ROUNDS = 3, N = 30 };
    uint8_t hub_sign_public[32];
    hub_keypair_t kp;
    char hub_secret[PATH_MAX], err[256];
    snprintf(hub_secret, sizeof hub_secret, "%s/secrets/VN.GOV.HN-LGSP.HUB.secret", fix.dir);
    ck_assert_int_eq(hub_keyfile_read(hub_secret, &kp, err, sizeof err), 0);
    memcpy(hub_sign_public, kp.sign_public, 32);
    hub_keypair_wipe(&kp);
    static tk_audit_recs_t all; /* large: off the stack */
    for (int round = 0; round < ROUNDS; round++) {
        kill_after_lookups(round, N);
        /* What the killed process left in the files. */
        tk_audit_find_service(audit_dir, LTH_SERVICE_CITIZEN_LOOKUP, &all);
        int seen[ROUNDS][N] = {{0}};
        size_t requests = 0, replies = 0;
        for (size_t i = 0; i < all.n; i++) {
            const tk_audit_rec_t *r = &all.recs[i];
            if (r->event != HUB_AUDIT_ACCEPTED)
                continue;
            if (!strcmp(r->outcome, "request online-only")) {
                int g = -1, k = -1;
                ck_assert_int_eq(sscanf(r->dossier, "000.00.02.H26-26%2d%2d-0001", &g, &k), 2);
                ck_assert_msg(g >= 0 && g <= round && k >= 0 && k < N && !seen[g][k]++,
                              "dossier %s twice", r->dossier);
                requests++;
            } else if (!strcmp(r->outcome, "reply online-only")) {
                replies++;
            }
        }
        size_t want = (size_t)(round + 1) * N;
        ck_assert_msg(requests == want && replies == want,
                      "after kill %d the log holds %zu of %zu delivered requests and %zu of %zu "
                      "delivered replies",
                      round + 1, requests, want, replies, want);
        /* Intact; records after the last checkpoint; or a last line cut
         * by the kill in the middle of a write(2), which open recovers. */
        hub_audit_verify_report_t report;
        int vrc = hub_audit_verify_dir(audit_dir, hub_sign_public, &report);
        ck_assert_msg(vrc == 0 || vrc == HUB_EAGAIN ||
                          (vrc == HUB_EPARSE && !strncmp(report.message, "truncated file", 14)),
                      "after kill %d: %s (%s:%llu)", round + 1, report.message, report.file,
                      (unsigned long long)report.line);
        hubfix_start(&fix); /* recovers the log */
    }
    hubfix_stop(&fix); /* seals it */
    assert_verify_passes();
}
END_TEST

TK_MAIN("audit_trail", TK_CASE("e2e", setup, teardown, 240, every_exchange_is_audited,
                               lookup_record_gives_no_payload_away,
                               online_lookups_delivered_before_a_kill_are_in_the_log))
