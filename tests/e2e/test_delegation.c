/* End to end: delegation per procedure (ủy quyền, Decision 4610/QĐ-UBND).
 * A rule may name procedure codes, which an envelope carries in the signed
 * lth-procedure parameter of its content type; the hub routes by it without
 * reading the payload, only within the rule's dates, refuses a forged or
 * unsigned parameter, and lists each rule with what it carried
 * (GET /api/v1/delegations, hubctl delegations). */
#include "hub_error.h"
#include "hub_sign.h"
#include "hub_keys.h"
#include "hubfix.h"
#include "testkit.h"
#include "tkwire.h"

#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TTHC "VN/GOV/HN-VP/TTHC"
#define STP "VN/GOV/HN-STP/HOTICH" /* the authority */
#define QHK "VN/GOV/HN-QHK/HOTICH" /* delegate for birth and marriage registration */
#define XA "VN/GOV/HN-PHHB/HOTICH" /* a delegation that ended in 2020 */
#define SUBMIT "dossier.submit/v1"
#define DOSSIER_TYPE "application/x-protobuf; proto=lth.domain.v1.Dossier"

static hubfix_t fix;
static char stp_file[PATH_MAX], qhk_file[PATH_MAX], xa_file[PATH_MAX], ctl_conf[PATH_MAX];

static void start(const char *extra)
{
    char conf[512];
    snprintf(conf, sizeof conf,
             "policy_file = policy.conf\ndelegations_file = delegations.conf\n"
             "http_listen = 127.0.0.1:0\n%s",
             extra ? extra : "");
    hubfix_init(&fix, conf);
    const char *members[] = {TTHC, STP, QHK, XA};
    for (int i = 0; i < 4; i++)
        hubfix_add_member(&fix, members[i], true);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/policy.conf", fix.dir);
    tk_write_file(path, "allow " TTHC " -> " STP "/" SUBMIT " purpose \"dossiers\"\n");
    snprintf(path, sizeof path, "%s/delegations.conf", fix.dir);
    tk_write_file(path, "# per procedure, as Decision 4610/QĐ-UBND delegates\n"
                        "delegate " STP "/" SUBMIT " -> " QHK
                        " procedure SYN-1.000001,SYN-1.000002 from 2021-01-01\n"
                        "delegate " STP "/" SUBMIT " -> " XA
                        " procedure SYN-1.000003 from 2019-01-01 until 2020-12-31\n");
    hubfix_start(&fix);
    const struct {
        const char *id;
        char *file;
        const char *name;
    } rec[] = {{STP, stp_file, "stp"}, {QHK, qhk_file, "qhk"}, {XA, xa_file, "xa"}};
    for (int i = 0; i < 3; i++) {
        snprintf(rec[i].file, PATH_MAX, "%s/%s.txt", fix.dir, rec[i].name);
        char c[PATH_MAX + 64];
        snprintf(c, sizeof c, "plugin.file = %s\nplugin.services = " SUBMIT "\n", rec[i].file);
        hubfix_start_adapter(&fix, rec[i].id, "recorder", c);
    }
    snprintf(ctl_conf, sizeof ctl_conf, "%s/hubctl.conf", fix.dir);
    char text[128];
    snprintf(text, sizeof text, "http_url = http://127.0.0.1:%d\nlang = en\n",
             hubfix_http_port(&fix));
    tk_write_file(ctl_conf, text);
}

static void setup(void)
{
    start(NULL);
}
static void teardown(void)
{
    hubfix_cleanup(&fix);
}

static void post(adp_client_t *c, const char *content_type, const char *payload, char id[37])
{
    ck_assert_int_eq(adp_post_event(c, STP, SUBMIT, content_type, payload, strlen(payload), 0, id),
                     0);
}

static char *hubctl(const char *a1, const char *a2)
{
    char *out = NULL;
    char *argv[] = {(char *)tk_bin("hubctl"), "--config", ctl_conf, (char *)a1, (char *)a2, NULL};
    ck_assert_int_eq(tk_run(argv, &out, 10000), 0);
    return out;
}

START_TEST(a_rule_naming_procedures_routes_only_those_within_its_dates)
{
    adp_client_t *c = hubfix_connect(&fix, TTHC);
    char birth[37], marriage[37], quoted[37], enterprise[37], plain[37], expired[37];
    post(c, DOSSIER_TYPE "; lth-procedure=SYN-1.000001", "birth", birth);
    post(c, DOSSIER_TYPE "; LTH-Procedure=\"SYN-1.000002\"", "marriage", marriage);
    /* A look-alike inside another parameter's quoted value names nothing. */
    post(c, DOSSIER_TYPE "; note=\"a; lth-procedure=SYN-1.000001\"", "quoted", quoted);
    post(c, DOSSIER_TYPE "; lth-procedure=SYN-1.000004", "enterprise", enterprise);
    post(c, DOSSIER_TYPE, "plain", plain);
    post(c, DOSSIER_TYPE "; lth-procedure=SYN-1.000003", "expired", expired);
    for (int w = 0; w < 100 && adp_outbox_size(c) > 0; w++)
        adp_run(c, 50);
    ck_assert_int_eq(adp_outbox_size(c), 0);
    /* The delegate gets the two procedures its rule names... */
    ck_assert_msg(tk_wait_file_contains(qhk_file, birth, 5000), "birth not at " QHK);
    ck_assert_msg(tk_wait_file_contains(qhk_file, marriage, 5000), "marriage not at " QHK);
    /* ...the authority keeps every other dossier, and the one whose rule ended. */
    const char *at_stp[] = {quoted, enterprise, plain, expired};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(tk_wait_file_contains(stp_file, at_stp[i], 5000), "%s not at " STP,
                      at_stp[i]);
    ck_assert_int_eq(tk_count_lines(qhk_file), 2);
    ck_assert_int_eq(tk_count_lines(stp_file), 4);
    ck_assert_int_eq(tk_count_lines(xa_file), 0);
    adp_close(&c);

    /* The listing: each rule, whether in force, and what it carried. */
    char *out = NULL;
    char *argv[] = {(char *)tk_bin("hubctl"), "--config", ctl_conf, "delegations", "--json", NULL};
    ck_assert_int_eq(tk_run(argv, &out, 10000), 0);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    json_t *rules = json_object_get(j, "delegations");
    ck_assert_uint_eq(json_array_size(rules), 2);
    json_t *q = json_array_get(rules, 0), *x = json_array_get(rules, 1);
    ck_assert_str_eq(json_string_value(json_object_get(q, "delegate")), QHK);
    ck_assert_str_eq(json_string_value(json_object_get(q, "authority")), STP);
    ck_assert_str_eq(json_string_value(json_object_get(q, "service")), SUBMIT);
    ck_assert(json_is_true(json_object_get(q, "in_force")));
    ck_assert_int_eq(json_integer_value(json_object_get(q, "carried")), 2);
    ck_assert_int_gt(json_integer_value(json_object_get(q, "last_used_us")), 0);
    json_t *procs = json_object_get(q, "procedures");
    ck_assert_uint_eq(json_array_size(procs), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(procs, 0), "code")),
                     "SYN-1.000001");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(procs, 0), "carried")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(procs, 1), "carried")), 1);
    ck_assert(json_is_false(json_object_get(x, "in_force")));
    ck_assert_int_eq(json_integer_value(json_object_get(x, "carried")), 0);
    json_decref(j);
    free(out);
    out = hubctl("delegations", NULL);
    ck_assert_msg(strstr(out, "SYN-1.000001 (1), SYN-1.000002 (1)") && strstr(out, QHK) &&
                      strstr(out, "in force") && strstr(out, "not in force") &&
                      strstr(out, "2020-12-31"),
                  "%s", out);
    free(out);

    /* The same counts for Prometheus. */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", hubfix_http_port(&fix));
    tk_reply_t metrics = tk_http("GET", url, NULL, NULL);
    ck_assert_int_eq(metrics.status, 200);
    ck_assert_msg(strstr(metrics.body, "lth_delegation_carried_total{authority=\"" STP
                                       "\",service=\"" SUBMIT "\",delegate=\"" QHK
                                       "\",procedure=\"SYN-1.000001\"} 1"),
                  "%s", metrics.body);
    free(metrics.body);

    /* A reload that keeps a rule as written keeps its counts. */
    kill(fix.hubd, SIGHUP);
    ck_assert(tk_wait_file_contains(fix.hubd_log, "delegations=2", 5000));
    out = hubctl("delegations", NULL);
    ck_assert_msg(strstr(out, "SYN-1.000001 (1)"), "%s", out);
    free(out);

    /* Online-only too: a request answered by the delegate. */
    c = hubfix_connect(&fix, TTHC);
    adp_reply_t reply;
    ck_assert_int_eq(adp_request(c, STP, SUBMIT, DOSSIER_TYPE "; lth-procedure=SYN-1.000002",
                                 "online", 6, ADP_ONLINE_ONLY, 5000, &reply),
                     0);
    ck_assert_str_eq(reply.sender, QHK);
    adp_reply_free(&reply);
    adp_close(&c);
    char *lines = tk_read_file(qhk_file);
    char *online = strstr(lines, "\tonline");
    ck_assert_ptr_nonnull(online);
    char online_id[37];
    memcpy(online_id, online - 36, 36);
    online_id[36] = '\0';
    free(lines);

    /* The audit trail says who delegated, for which procedure. */
    hubfix_stop(&fix);
    out = hubfix_audit_show(&fix, birth);
    ck_assert_msg(strstr(out, "-> " QHK) &&
                      strstr(out, "delegated by " STP " for procedure SYN-1.000001"),
                  "%s", out);
    free(out);
    out = hubfix_audit_show(&fix, online_id);
    ck_assert_msg(strstr(out, "-> " QHK) &&
                      strstr(out, "delegated by " STP " for procedure SYN-1.000002"),
                  "%s", out);
    free(out);
}
END_TEST

/* An envelope for STP signed with one content type and sent with another
 * (forged), or sent unsigned. */
static uint8_t *envelope(const char *signed_type, const char *sent_type, bool sign, char id[37],
                         size_t *len)
{
    Lth__V1__Envelope env = tkw_envelope(id, TTHC, STP, SUBMIT);
    env.content_type = (char *)signed_type;
    env.payload.data = (uint8_t *)"forged";
    env.payload.len = 6;
    env.kind = LTH__V1__KIND__KIND_EVENT;
    uint8_t sig[64];
    if (sign) {
        char secret[PATH_MAX], err[256];
        hub_keypair_t kp;
        hubfix_secret_path(&fix, TTHC, secret);
        ck_assert_int_eq(hub_keyfile_read(secret, &kp, err, sizeof err), 0);
        ck_assert_int_eq(hub_envelope_sign(&env, kp.sign_secret, sig), 0);
        hub_keypair_wipe(&kp);
    }
    env.content_type = (char *)sent_type;
    *len = lth__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(*len);
    lth__v1__envelope__pack(&env, buf);
    return buf;
}

static void expect_nack(rawcli_t *raw, uint8_t *env, size_t len, const char *id, int code,
                        const char *words)
{
    rawcli_send_batch1(raw, env, len);
    free(env);
    hub_frame_t *f = rawcli_recv_case(raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(f->receipts->n_nacks, 1);
    ck_assert_str_eq(f->receipts->nacks[0]->message_id, id);
    ck_assert_int_eq(f->receipts->nacks[0]->code, code);
    ck_assert_msg(strstr(f->receipts->nacks[0]->reason, words), "%s",
                  f->receipts->nacks[0]->reason);
    hub_frame_free(&f);
}

START_TEST(a_forged_or_unsigned_procedure_is_refused)
{
    rawcli_t raw;
    rawcli_connect(&raw, &fix, TTHC);
    char id[37];
    size_t len;
    /* Signed for a procedure kept by the authority, sent naming a delegated one. */
    uint8_t *env = envelope(DOSSIER_TYPE "; lth-procedure=SYN-1.000004",
                            DOSSIER_TYPE "; lth-procedure=SYN-1.000001", true, id, &len);
    expect_nack(&raw, env, len, id, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "signature");
    /* Named twice: which one would a receiver read? */
    const char *twice = DOSSIER_TYPE "; lth-procedure=SYN-1.000001; lth-procedure=SYN-1.000004";
    env = envelope(twice, twice, true, id, &len);
    expect_nack(&raw, env, len, id, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE, "twice");
    const char *bad = DOSSIER_TYPE "; lth-procedure=\"SYN 1\"";
    env = envelope(bad, bad, true, id, &len);
    expect_nack(&raw, env, len, id, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                "not a procedure code");
    rawcli_close(&raw);
    tk_sleep_ms(300);
    ck_assert_int_eq(tk_count_lines(qhk_file), 0);
    char *out = hubctl("delegations", "--json");
    ck_assert_msg(strstr(out, "\"carried\":0") && !strstr(out, "\"carried\":1"), "%s", out);
    free(out);
    hubfix_cleanup(&fix);

    /* Where the hub does not require signatures, the procedure must still
     * be signed: it decides the route. */
    start("require_signatures = false\n");
    rawcli_connect(&raw, &fix, TTHC);
    const char *named = DOSSIER_TYPE "; lth-procedure=SYN-1.000001";
    env = envelope(named, named, false, id, &len);
    expect_nack(&raw, env, len, id, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "not signed");
    env = envelope(named, named, true, id, &len);
    rawcli_send_batch1(&raw, env, len);
    free(env);
    rawcli_expect_ack(&raw, id, 5000);
    ck_assert_msg(tk_wait_file_contains(qhk_file, id, 5000), "signed one not at " QHK);
    rawcli_close(&raw);
}
END_TEST

TK_MAIN_PREPARED(tk_prepare_curl, "e2e_delegation",
        TK_CASE("per_procedure", setup, teardown, 120,
                a_rule_naming_procedures_routes_only_those_within_its_dates),
        TK_CASE("forged", setup, teardown, 120, a_forged_or_unsigned_procedure_is_refused))
