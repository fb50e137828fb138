/* End to end: data-sharing agreements (deny by default), delegation
 * (ủy quyền), the hub's metaservices, and member certificates. */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TTHC "VN/GOV/HN-VP/TTHC"
#define POP "VN/GOV/BCA/CSDLQGDC"
#define PORTAL "VN/GOV/VPCP/DVCQG"
#define STP "VN/GOV/HN-STP/HOTICH"
#define QHK "VN/GOV/HN-QHK/HOTICH"

static hubfix_t fix;
static char record_path[PATH_MAX];

static void setup(void)
{
    hubfix_init(&fix, "policy_file = policy.conf\ndelegations_file = delegations.conf");
    const char *members[] = {TTHC, POP, PORTAL, STP, QHK};
    for (int i = 0; i < 5; i++)
        hubfix_add_member(&fix, members[i], true);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/policy.conf", fix.dir);
    tk_write_file(path, "# data-sharing agreements\n"
                        "allow " TTHC " -> " POP "/echo/v1 purpose \"identity check\"\n"
                        "allow " TTHC " -> " PORTAL "/echo/v1 until 2020-01-01\n"
                        "allow " TTHC " -> " STP "/birth.register/v1 purpose \"civil status\"\n");
    snprintf(path, sizeof path, "%s/delegations.conf", fix.dir);
    tk_write_file(path, "delegate " STP "/birth.register/v1 -> " QHK "\n");
    snprintf(record_path, sizeof record_path, "%s/qhk.txt", fix.dir);
    hubfix_start(&fix);
    hubfix_start_adapter(&fix, POP, "echo", NULL);
    hubfix_start_adapter(&fix, PORTAL, "echo", NULL);
    char conf[1024];
    snprintf(conf, sizeof conf, "plugin.file = %s\nplugin.services = birth.register/v1\n",
             record_path);
    hubfix_start_adapter(&fix, QHK, "recorder", conf);
}

static void teardown(void) { hubfix_cleanup(&fix); }

START_TEST(calls_need_a_valid_agreement)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    adp_reply_t reply;
    ck_assert_int_eq(adp_request(c, POP, "echo/v1", "text/plain", "ok", 2, 0, 5000, &reply), 0);
    adp_reply_free(&reply);
    /* No agreement at all. */
    int rc = adp_request(c, POP, "secret.dump/v1", "text/plain", "x", 1, 0, 5000, &reply);
    ck_assert_int_eq(rc, HUB_ENACK);
    ck_assert_int_eq(adp_last_nack_code(c), LTH__V1__NACK_CODE__NACK_FORBIDDEN);
    ck_assert_msg(strstr(adp_last_error(c), "no agreement lets " TTHC), "%s", adp_last_error(c));
    /* An agreement outside its validity period. */
    rc = adp_request(c, PORTAL, "echo/v1", "text/plain", "x", 1, 0, 5000, &reply);
    ck_assert_int_eq(rc, HUB_ENACK);
    ck_assert_int_eq(adp_last_nack_code(c), LTH__V1__NACK_CODE__NACK_FORBIDDEN);
    ck_assert_msg(strstr(adp_last_error(c), "policy.conf:3"), "%s", adp_last_error(c));
    /* Nothing in the reverse direction either. */
    adp_client_t *pop = hubfix_connect(&fix, PORTAL);
    rc = adp_send_event(pop, TTHC, "echo/v1", "text/plain", "x", 1, 0, 5000, NULL);
    ck_assert_int_eq(rc, HUB_ENACK);
    ck_assert_int_eq(adp_last_nack_code(pop), LTH__V1__NACK_CODE__NACK_FORBIDDEN);
    adp_close(&pop);
    /* The refusals are in the hub's log with the reason. */
    ck_assert(tk_wait_file_contains(fix.hubd_log, "code=FORBIDDEN", 2000));
    /* hubctl policy check says the same. */
    char policy[PATH_MAX];
    snprintf(policy, sizeof policy, "%s/policy.conf", fix.dir);
    char *allowed[] = {(char *)tk_bin("hubctl"), "policy", "check", TTHC, POP "/echo/v1",
                       "--policy", policy, NULL};
    TK_RUN_SAYS(allowed, 5000, 0, "allowed", "identity check");
    char *denied[] = {(char *)tk_bin("hubctl"), "policy", "check", TTHC, PORTAL "/echo/v1",
                      "--policy", policy, NULL};
    TK_RUN_SAYS(denied, 5000, 4, "denied");
    adp_close(&c);
}
END_TEST

START_TEST(delegated_service_reaches_the_delegate)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    char id[37];
    ck_assert_int_eq(adp_post_event(c, STP, "birth.register/v1", "text/plain", "Nguyen Thi Lan",
                                    14, 0, id),
                     0);
    for (int w = 0; w < 50 && adp_outbox_size(c) > 0; w++)
        adp_run(c, 50);
    ck_assert_int_eq(adp_outbox_size(c), 0);
    ck_assert_msg(tk_wait_file_contains(record_path, id, 5000), "not delivered to the delegate");
    adp_close(&c);
    /* The audit trail shows both the authority addressed and the delegate. */
    hubfix_stop(&fix);
    char *out = hubfix_audit_show(&fix, id);
    ck_assert_msg(strstr(out, "ACCEPTED") && strstr(out, "-> " QHK) &&
                      strstr(out, "delegated by " STP),
                  "%s", out);
    free(out);
}
END_TEST

START_TEST(metaservices_answer_members_services_and_agreements)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    adp_reply_t reply;
    ck_assert_int_eq(adp_request(c, HUBFIX_HUB_ID, "lth.allowed/v1", "text/plain", "", 0,
                                 ADP_ONLINE_ONLY, 5000, &reply),
                     0);
    char *text = strndup((const char *)reply.payload, reply.payload_len);
    ck_assert_msg(strstr(text, "\"provider\":\"" POP "\"") && strstr(text, "identity check"),
                  "%s", text);
    ck_assert_ptr_null(strstr(text, PORTAL)); /* expired: not listed */
    ck_assert_str_eq(reply.sender, HUBFIX_HUB_ID);
    free(text);
    adp_reply_free(&reply);
    ck_assert_int_eq(adp_request(c, HUBFIX_HUB_ID, "lth.members/v1", "text/plain", "", 0,
                                 ADP_ONLINE_ONLY, 5000, &reply),
                     0);
    text = strndup((const char *)reply.payload, reply.payload_len);
    /* The directory shows the caller only members it has an agreement in
     * force with (either way): POP yes; QHK (no agreement) and PORTAL (its
     * agreement expired) no, though both are registered and QHK is online. */
    ck_assert_msg(strstr(text, "\"id\":\"" POP "\",\"online\":true"), "%s", text);
    ck_assert_msg(!strstr(text, QHK) && !strstr(text, PORTAL), "%s", text);
    free(text);
    adp_reply_free(&reply);
    ck_assert_int_eq(adp_request(c, HUBFIX_HUB_ID, "lth.services/v1", "text/plain", POP,
                                 strlen(POP), ADP_ONLINE_ONLY, 5000, &reply),
                     0);
    text = strndup((const char *)reply.payload, reply.payload_len);
    ck_assert_msg(strstr(text, "\"services\":[\"echo/v1\"]"), "%s", text);
    free(text);
    adp_reply_free(&reply);
    int rc = adp_request(c, HUBFIX_HUB_ID, "no.such/v1", "text/plain", "", 0, ADP_ONLINE_ONLY,
                         5000, &reply);
    ck_assert_int_eq(rc, HUB_ENACK);
    ck_assert_msg(strstr(adp_last_error(c), "lth.members/v1"), "%s", adp_last_error(c));
    adp_close(&c);
}
END_TEST

/* ---- certificates ---- */

static char ca_dir[PATH_MAX];

static void setup_certs(void)
{
    /* The CA must exist before hubd starts; hubfix_init makes the dir. */
    hubfix_init(&fix, "ca_cert = ca/ca/ca.crt\ncrl_file = ca/ca/crl.pem\ncert_dir = ca/certs");
    hubfix_ca_init(&fix, ca_dir);
    const char *members[] = {TTHC, POP, PORTAL, STP, QHK};
    for (int i = 0; i < 5; i++)
        hubfix_add_member(&fix, members[i], false);
    hubfix_cert_issue(&fix, ca_dir, TTHC, NULL, NULL);
    hubfix_cert_issue(&fix, ca_dir, POP, NULL, NULL);
    hubfix_cert_issue(&fix, ca_dir, STP, NULL, NULL);
    /* PORTAL's certificate expired yesterday; QHK has none. */
    hubfix_cert_issue(&fix, ca_dir, PORTAL, "2019-01-01", "2020-01-02");
    hubfix_start(&fix);
}

START_TEST(only_valid_certificates_are_admitted)
{
    char hub_pub[PATH_MAX], secret[PATH_MAX], err[512];
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    adp_client_t *ok = hubfix_connect(&fix, TTHC);
    /* Expired and missing certificates: the key is refused at connect. */
    const char *refused[] = {PORTAL, QHK};
    for (int i = 0; i < 2; i++) {
        hubfix_secret_path(&fix, refused[i], secret);
        adp_config_t cfg = {fix.endpoint, hub_pub, secret, 2000, "test", NULL};
        adp_client_t *c = NULL;
        ck_assert_int_eq(adp_connect(&cfg, &c, err, sizeof err), HUB_EREFUSED);
        ck_assert_msg(strstr(err, "did not accept"), "%s", err);
    }
    ck_assert(tk_wait_file_contains(fix.hubd_log, "status=expired", 2000));
    /* STP gets two messages queued, then is revoked while connected. */
    adp_client_t *stp = hubfix_connect(&fix, STP);
    adp_close(&stp);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(adp_send_event(ok, STP, "inbox/v1", "text/plain", "q", 1, 0, 5000, NULL),
                         0);
    stp = hubfix_connect(&fix, STP);
    hubfix_cert_revoke(&fix, ca_dir, STP);
    int rc = adp_send_event(stp, POP, "echo/v1", "text/plain", "x", 1, 0, 1000, NULL);
    ck_assert_int_ne(rc, 0);
    ck_assert_int_eq(adp_last_nack_code(stp), LTH__V1__NACK_CODE__NACK_FORBIDDEN);
    adp_close(&stp);
    /* A new certificate: the queue kept its messages. */
    hubfix_cert_issue(&fix, ca_dir, STP, NULL, NULL);
    kill(fix.hubd, SIGHUP);
    tk_sleep_ms(500);
    hubfix_secret_path(&fix, STP, secret);
    adp_config_t cfg = {fix.endpoint, hub_pub, secret, 5000, "test", NULL};
    ck_assert_int_eq(adp_new(&cfg, &stp, err, sizeof err), 0);
    int got = 0;
    ck_assert_int_eq(adp_offer(stp, "inbox/v1", hubfix_count_handler, &got), 0);
    ck_assert_msg(adp_start(stp, err, sizeof err) == 0, "%s", err);
    for (int w = 0; w < 50 && got < 2; w++)
        adp_run(stp, 100);
    ck_assert_int_eq(got, 2);
    adp_close(&stp);
    adp_close(&ok);
}
END_TEST

/* SIGHUP, and wait until hubd logged one more line holding `needle`; returns
 * that log's text (malloc'ed). */
static char *sighup_and_wait(const char *needle)
{
    int before = tk_count_of(fix.hubd_log, needle);
    ck_assert_int_eq(kill(fix.hubd, SIGHUP), 0);
    for (int w = 0; w < 150 && tk_count_of(fix.hubd_log, needle) == before; w++)
        tk_sleep_ms(20);
    ck_assert_msg(tk_count_of(fix.hubd_log, needle) == before + 1, "no '%s' after SIGHUP; see %s",
                  needle, fix.hubd_log);
    return tk_read_file(fix.hubd_log);
}

static void write_conf(const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", fix.dir, name);
    tk_write_file(path, text);
}

static void assert_echo(adp_client_t *c, const char *provider, int want_nack)
{
    adp_reply_t reply;
    int rc = adp_request(c, provider, "echo/v1", "text/plain", "x", 1, 0, 5000, &reply);
    if (!want_nack) {
        ck_assert_msg(rc == 0, "echo/v1 of %s: %s", provider, adp_last_error(c));
        adp_reply_free(&reply);
        return;
    }
    ck_assert_msg(rc == HUB_ENACK, "echo/v1 of %s answered (rc %d)", provider, rc);
    ck_assert_int_eq(adp_last_nack_code(c), want_nack);
}

/* Posts a birth.register/v1 event to `authority` and waits for its ACK. */
static void post_birth(adp_client_t *c, const char *authority, char id[37])
{
    ck_assert_int_eq(adp_post_event(c, authority, "birth.register/v1", "text/plain", "khai sinh",
                                    9, 0, id),
                     0);
    for (int w = 0; w < 100 && adp_outbox_size(c) > 0; w++)
        adp_run(c, 50);
    ck_assert_msg(adp_outbox_size(c) == 0, "not ACKed: %s", adp_last_error(c));
}

START_TEST(sighup_reloads_agreements_and_delegations_and_keeps_them_on_a_bad_file)
{
    const char *keeping = "msg=\"key directory reload failed; keeping the previous keys\"";
    const char *reloaded = "msg=\"key directory reloaded\"";
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    assert_echo(c, POP, 0);
    assert_echo(c, PORTAL, LTH__V1__NACK_CODE__NACK_FORBIDDEN); /* expired */

    /* A broken policy file: refused whole, naming its line; the running
     * agreements stay. */
    write_conf("policy.conf", "allow " TTHC " -> " PORTAL "/echo/v1\n"
                              "allow " TTHC " to everything\n");
    char *log = sighup_and_wait(keeping);
    ck_assert_msg(strstr(log, "policy.conf:2"), "the error does not name policy.conf:2; see %s",
                  fix.hubd_log);
    free(log);
    assert_echo(c, POP, 0);
    assert_echo(c, PORTAL, LTH__V1__NACK_CODE__NACK_FORBIDDEN);
    char id[37];
    post_birth(c, STP, id);
    ck_assert_msg(tk_wait_file_contains(record_path, id, 5000), "delegation lost");

    /* A broken delegations file (with a good policy): the same. */
    write_conf("policy.conf", "allow " TTHC " -> " POP "/echo/v1\n"
                              "allow " TTHC " -> " STP "/birth.register/v1\n");
    write_conf("delegations.conf", "delegate " STP "/birth.register/v1 -> " QHK "\n"
                                   "delegate nowhere\n");
    log = sighup_and_wait(keeping);
    ck_assert_msg(strstr(log, "delegations.conf:2"),
                  "the error does not name delegations.conf:2; see %s", fix.hubd_log);
    free(log);
    assert_echo(c, POP, 0);
    post_birth(c, STP, id);
    ck_assert_msg(tk_wait_file_contains(record_path, id, 5000), "delegation lost");

    /* Fixed files: a new agreement (PORTAL's echo/v1, without an end date)
     * and a new delegation (POP's birth.register/v1 to QHK) take effect; the
     * removed agreement (POP's echo/v1) and the removed delegation (STP's
     * birth.register/v1, which now goes to STP itself) are gone. */
    write_conf("policy.conf", "allow " TTHC " -> " PORTAL "/echo/v1\n"
                              "allow " TTHC " -> " STP "/birth.register/v1\n"
                              "allow " TTHC " -> " POP "/birth.register/v1\n");
    write_conf("delegations.conf", "delegate " POP "/birth.register/v1 -> " QHK "\n");
    log = sighup_and_wait(reloaded);
    free(log);
    assert_echo(c, PORTAL, 0);
    assert_echo(c, POP, LTH__V1__NACK_CODE__NACK_FORBIDDEN);
    ck_assert_msg(strstr(adp_last_error(c), "no agreement lets " TTHC), "%s", adp_last_error(c));
    post_birth(c, POP, id);
    ck_assert_msg(tk_wait_file_contains(record_path, id, 5000),
                  "the new delegation did not route to " QHK);
    char to_stp[37];
    post_birth(c, STP, to_stp);
    rawcli_t stp;
    rawcli_connect(&stp, &fix, STP);
    hub_frame_t *f = rawcli_recv_case(&stp, LTH__V1__FRAME__BODY_DELIVERIES, 5000);
    ck_assert_msg(f != NULL, "nothing delivered to " STP " after its delegation was removed");
    hub_envelope_t *env = rawcli_delivered_envelope(f);
    ck_assert_str_eq(env->message_id, to_stp);
    hub_envelope_free(&env);
    hub_frame_free(&f);
    rawcli_close(&stp);
    char *text = tk_read_file(record_path);
    ck_assert_msg(!strstr(text, to_stp), "still routed to the old delegate");
    free(text);
    adp_close(&c);
}
END_TEST

TK_MAIN("e2e_agreements",
        TK_CASE("agreements", setup, teardown, 120, calls_need_a_valid_agreement,
                delegated_service_reaches_the_delegate,
                metaservices_answer_members_services_and_agreements,
                sighup_reloads_agreements_and_delegations_and_keeps_them_on_a_bad_file),
        TK_CASE("certificates", setup_certs, teardown, 120, only_valid_certificates_are_admitted))
