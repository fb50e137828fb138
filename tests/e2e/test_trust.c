/* End to end: signed envelopes and the audit trail, with real processes. */
#include "hub_error.h"
#include "hub_sign.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <signal.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define RECEIVER "VN/GOV/VPCP/DVCQG"
#define SECRET_PAYLOAD "Nguyen Van An 001085012345"

static hubfix_t fix;
static char record_path[PATH_MAX];

static void setup_with(const char *extra)
{
    hubfix_init(&fix, extra);
    HUBFIX_ADD_MEMBERS(&fix, SENDER, RECEIVER, "VN/GOV/HN-LGSP/OPS");
    snprintf(record_path, sizeof record_path, "%s/received.txt", fix.dir);
    hubfix_start(&fix);
    char conf[1024];
    snprintf(conf, sizeof conf, "plugin.file = %s\n", record_path);
    hubfix_start_adapter(&fix, RECEIVER, "recorder", conf);
}

static void setup(void) { setup_with("audit = yes"); }
static void setup_unchecked(void) { setup_with("require_signatures = no"); }
static void setup_redelivering(void) { setup_with("audit = yes\nredelivery_ms = 200"); }
static void teardown(void) { hubfix_cleanup(&fix); }

static Lth__V1__Nack *send_and_nack(rawcli_t *raw, int flags, hub_frame_t **holder)
{
    char id[37];
    rawcli_send_envelope(raw, &fix, SENDER, RECEIVER, "record/v1", "x", 1, flags, id);
    *holder = rawcli_recv_case(raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_ptr_nonnull(*holder);
    ck_assert_uint_eq((*holder)->receipts->n_nacks, 1);
    ck_assert_str_eq((*holder)->receipts->nacks[0]->message_id, id);
    return (*holder)->receipts->nacks[0];
}

START_TEST(bad_and_missing_signatures_are_refused)
{
    rawcli_t raw;
    rawcli_connect(&raw, &fix, SENDER);
    hub_frame_t *holder;
    Lth__V1__Nack *nack;
    int cases[] = {RAWCLI_UNSIGNED, RAWCLI_BAD_SIGNATURE,
                   RAWCLI_UNSIGNED | LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY,
                   RAWCLI_BAD_SIGNATURE | LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nack = send_and_nack(&raw, cases[i], &holder);
        ck_assert_int_eq(nack->code, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE);
        ck_assert_msg(strstr(nack->reason, (cases[i] & RAWCLI_UNSIGNED) ? "not signed"
                                                                        : "does not match"),
                      "reason: %s", nack->reason);
        hub_frame_free(&holder);
    }
    /* Properly signed: accepted and delivered. */
    char id[37];
    rawcli_send_envelope(&raw, &fix, SENDER, RECEIVER, "record/v1", "signed", 6, 0, id);
    holder = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_ptr_nonnull(holder);
    ck_assert_uint_eq(holder->receipts->n_acks, 1);
    hub_frame_free(&holder);
    ck_assert(tk_wait_file_contains(record_path, "\tsigned\n", 5000));
    ck_assert_int_eq(tk_count_lines(record_path), 1);
    rawcli_close(&raw);
}
END_TEST

START_TEST(receiver_verifies_signatures_itself)
{
    /* This hub does not check signatures: the receiving SDK must. */
    rawcli_t raw;
    rawcli_connect(&raw, &fix, SENDER);
    char id[37];
    rawcli_send_envelope(&raw, &fix, SENDER, RECEIVER, "record/v1", "forged", 6,
                         RAWCLI_BAD_SIGNATURE, id);
    rawcli_send_envelope(&raw, &fix, SENDER, RECEIVER, "record/v1", "genuine", 7, 0, id);
    ck_assert(tk_wait_file_contains(record_path, "\tgenuine\n", 5000));
    tk_sleep_ms(300);
    char *text = tk_read_file(record_path);
    ck_assert_ptr_null(strstr(text, "forged"));
    free(text);
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/adapter-VN.GOV.VPCP.DVCQG.log", fix.dir);
    ck_assert(tk_wait_file_contains(log, "delivery with a bad signature refused", 3000));
    rawcli_close(&raw);
}
END_TEST

/* A hub that does not check signatures gets unsigned envelopes from the
 * SDK (no Ed25519 work on either side), unless the sender asks to sign
 * always; then the receiver gets a signature that verifies. */
START_TEST(sdk_signs_when_the_hub_requires_or_when_asked)
{
    const char *ops = "VN/GOV/HN-LGSP/OPS";
    rawcli_t raw;
    rawcli_connect(&raw, &fix, ops);
    adp_client_t *c = hubfix_connect(&fix, SENDER);
    for (int always = 0; always < 2; always++) {
        adp_set_sign_always(c, always);
        uint64_t seq = 0;
        ck_assert_int_eq(adp_send_event(c, ops, "note/v1", "text/plain", "x", 1, 0, 5000, &seq),
                         0);
        hub_frame_t *f = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_DELIVERIES, 5000);
        ck_assert_ptr_nonnull(f);
        hub_envelope_t *env = rawcli_delivered_envelope(f);
        if (always) {
            ck_assert_uint_eq(env->signature.len, 64);
            const uint8_t *key = f->deliveries->items[0]->sender_sign_key.data;
            ck_assert_int_eq(hub_envelope_verify(env, key), 0);
        } else {
            ck_assert_uint_eq(env->signature.len, 0);
        }
        uint64_t got = f->deliveries->items[0]->hub_seq;
        rawcli_settle(&raw, &got, 1);
        hub_envelope_free(&env);
        hub_frame_free(&f);
    }
    adp_close(&c);
    rawcli_close(&raw);
}
END_TEST

static int hubctl_audit(const char *dir, char **out)
{
    char key[PATH_MAX];
    snprintf(key, sizeof key, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    char *argv[] = {(char *)tk_bin("hubctl"), "audit", "verify", (char *)dir, "--hub-key", key,
                    NULL};
    return tk_run(argv, out, 30000);
}

/* Copies the audit directory to dst. */
static void copy_dir(const char *src, const char *dst)
{
    ck_assert_int_eq(mkdir(dst, 0755), 0);
    DIR *d = opendir(src);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char from[PATH_MAX], to[PATH_MAX];
        snprintf(from, sizeof from, "%s/%s", src, de->d_name);
        snprintf(to, sizeof to, "%s/%s", dst, de->d_name);
        char *text = tk_read_file(from);
        if (text) {
            tk_write_file(to, text);
            free(text);
        }
    }
    closedir(d);
}

/* Rewrites the (single) audit file of dir through a function of its lines. */
typedef void (*tamper_fn)(char **lines, int *n);

static void tamper(const char *dir, tamper_fn fn)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/audit-000001.log", dir);
    char *text = tk_read_file(path);
    ck_assert_ptr_nonnull(text);
    char *lines[4096];
    int n = 0;
    for (char *p = text, *nl; *p && n < 4096; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        lines[n++] = p;
    }
    fn(lines, &n);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    fclose(f);
    free(text);
}

static void flip_byte(char **lines, int *n)
{
    char *p = strstr(lines[*n / 2], "\"sender\":\"VN");
    ck_assert_ptr_nonnull(p);
    p[11] = 'X';
}
static void delete_line(char **lines, int *n)
{
    for (int i = *n / 2; i < *n - 1; i++)
        lines[i] = lines[i + 1];
    (*n)--;
}
static void swap_lines(char **lines, int *n)
{
    char *t = lines[*n / 2];
    lines[*n / 2] = lines[*n / 2 + 1];
    lines[*n / 2 + 1] = t;
}
static void forge_checkpoint(char **lines, int *n)
{
    for (int i = *n - 1; i >= 0; i--) {
        char *sig = strstr(lines[i], "\"hub_signature\":\"");
        if (sig) {
            sig += strlen("\"hub_signature\":\"");
            sig[0] = sig[0] == 'a' ? 'b' : 'a';
            return;
        }
    }
    ck_abort_msg("no checkpoint");
}

START_TEST(audit_trail_verifies_and_names_tampering)
{
    char err[512];
    hubfix_client_conf_t conf;
    hubfix_client_conf(&fix, SENDER, &conf);
    adp_client_t *c = NULL;
    ck_assert_msg(adp_connect(&conf.cfg, &c, err, sizeof err) == 0, "%s", err);
    char first_id[37] = "";
    for (int i = 0; i < 40; i++) {
        char id[37];
        ck_assert_int_eq(adp_post_event(c, RECEIVER, "record/v1", "text/plain", SECRET_PAYLOAD,
                                        strlen(SECRET_PAYLOAD), 0, id),
                         0);
        if (i == 0)
            memcpy(first_id, id, sizeof id);
    }
    for (int i = 0; i < 100 && adp_outbox_size(c) > 0; i++)
        adp_run(c, 50);
    ck_assert(tk_wait_file(record_path, 5000));
    for (int i = 0; i < 100 && tk_count_lines(record_path) < 40; i++)
        tk_sleep_ms(50);
    ck_assert_int_eq(tk_count_lines(record_path), 40);
    tk_sleep_ms(500); /* settles reach the log */
    adp_close(&c);
    hubfix_stop(&fix); /* seals the log with a checkpoint */

    char audit[PATH_MAX];
    snprintf(audit, sizeof audit, "%s/data/audit", fix.dir);
    char *out = NULL;
    ck_assert_int_eq(hubctl_audit(audit, &out), 0);
    ck_assert_msg(strstr(out, "audit log intact"), "%s", out);
    free(out);
    /* Never the payload itself. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/audit-000001.log", audit);
    char *log = tk_read_file(path);
    ck_assert_ptr_nonnull(log);
    ck_assert_ptr_null(strstr(log, "Nguyen"));
    ck_assert_ptr_null(strstr(log, "001085012345"));
    free(log);

    /* The trail of one message. */
    char *show[] = {(char *)tk_bin("hubctl"), "audit", "show", audit, "--message", first_id, NULL};
    TK_RUN_SAYS(show, 10000, 0, "ACCEPTED", "DELIVERED", "SETTLED");

    struct {
        const char *name;
        tamper_fn fn;
        const char *expect;
    } cases[] = {{"flip", flip_byte, "modified"},
                 {"delete", delete_line, "removed"},
                 {"swap", swap_lines, "reordered"},
                 {"forge", forge_checkpoint, "forged"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s/audit-%s", fix.dir, cases[i].name);
        copy_dir(audit, copy);
        tamper(copy, cases[i].fn);
        ck_assert_int_eq(hubctl_audit(copy, &out), 1);
        ck_assert_msg(strstr(out, cases[i].expect) && strstr(out, "audit-000001.log:"),
                      "%s: %s", cases[i].name, out);
        free(out);
    }
    /* A file cut mid-record. */
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s/audit-cut", fix.dir);
    copy_dir(audit, copy);
    snprintf(path, sizeof path, "%s/audit-000001.log", copy);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(truncate(path, st.st_size - 25), 0);
    ck_assert_int_eq(hubctl_audit(copy, &out), 1);
    ck_assert_msg(strstr(out, "truncated"), "%s", out);
    free(out);
}
END_TEST

/* Delivery items in the frames that arrive within ms (others ignored),
 * heartbeating meanwhile. */
static int count_deliveries(rawcli_t *raw, int ms)
{
    int items = 0;
    uint64_t deadline = hub_monotonic_us() + (uint64_t)ms * 1000u;
    while (hub_monotonic_us() < deadline) {
        rawcli_heartbeat(raw);
        hub_frame_t *f = rawcli_recv(raw, 50);
        if (f && f->body_case == LTH__V1__FRAME__BODY_DELIVERIES)
            items += (int)f->deliveries->n_items;
        hub_frame_free(&f);
    }
    return items;
}

START_TEST(revoked_member_is_cut_off_and_its_queue_survives)
{
    /* SENDER, connected (a raw socket that never settles), gets 5 events;
     * with redelivery_ms = 200 the hub keeps delivering them again. */
    rawcli_t raw;
    rawcli_connect(&raw, &fix, SENDER);
    adp_client_t *other = hubfix_connect(&fix, "VN/GOV/HN-LGSP/OPS");
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(adp_send_event(other, SENDER, "inbox/v1", "text/plain", "q", 1, 0, 5000,
                                        NULL),
                         0);
    int before = count_deliveries(&raw, 1000);
    /* The first delivery and at least one redelivery of all five: so the
     * silence asserted below is the cut's doing, not the timer's. */
    ck_assert_msg(before >= 10, "only %d deliveries before the cut", before);

    /* Its key goes; from the SIGHUP on, its frames are refused... */
    hubfix_forget_member(&fix, SENDER);
    uint64_t t0 = hub_monotonic_us();
    ck_assert_int_eq(kill(fix.hubd, SIGHUP), 0);
    uint64_t cut_ms = 0;
    for (int i = 0; i < 60 && !cut_ms; i++) {
        rawcli_heartbeat(&raw);
        size_t len;
        uint8_t *env = rawcli_envelope(&fix, SENDER, RECEIVER, "record/v1", "after", 5, 0, NULL,
                                       &len);
        rawcli_send_batch1(&raw, env, len);
        free(env);
        /* A frame from a key no longer admitted gets an error frame. */
        hub_frame_t *f = rawcli_recv_case(&raw, LTH__V1__FRAME__BODY_ERROR, 50);
        if (f) {
            ck_assert_int_eq(f->error->code, LTH__V1__NACK_CODE__NACK_FORBIDDEN);
            cut_ms = (hub_monotonic_us() - t0) / 1000u;
        }
        hub_frame_free(&f);
    }
    ck_assert_msg(cut_ms > 0, "still accepted 3 s after the SIGHUP");
    printf("trust: cut off %llu ms after the SIGHUP\n", (unsigned long long)cut_ms);
    ck_assert_msg(cut_ms < 1000, "cut off after %llu ms", (unsigned long long)cut_ms);
    /* ...and nothing is delivered to it: frames arrive in order, so every
     * delivery sent before the cut came before the FORBIDDEN. Two seconds
     * hold several redelivery periods (200, 400, 800 ms). */
    int after = count_deliveries(&raw, 2000);
    ck_assert_msg(after == 0, "%d deliveries to a revoked member", after);
    rawcli_close(&raw);

    /* Its key comes back: the five queued events were kept for it. */
    char hub_pub[PATH_MAX], secret[PATH_MAX], err[512];
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    hubfix_register_member(&fix, SENDER);
    kill(fix.hubd, SIGHUP);
    tk_sleep_ms(500);
    hubfix_secret_path(&fix, SENDER, secret);
    adp_config_t cfg = {fix.endpoint, hub_pub, secret, 5000, "test", NULL};
    adp_client_t *c = NULL;
    int got = 0;
    ck_assert_int_eq(adp_new(&cfg, &c, err, sizeof err), 0);
    ck_assert_int_eq(adp_offer(c, "inbox/v1", hubfix_count_handler, &got), 0);
    ck_assert_msg(adp_start(c, err, sizeof err) == 0, "%s", err);
    hubfix_run_until_exactly(c, &got, 5, 5000, 500);
    adp_close(&c);
    adp_close(&other);
}
END_TEST

TK_MAIN("e2e_trust",
        TK_CASE("signed", setup, teardown, 120, bad_and_missing_signatures_are_refused,
                audit_trail_verifies_and_names_tampering),
        TK_CASE("revocation", setup_redelivering, teardown, 120,
                revoked_member_is_cut_off_and_its_queue_survives),
        TK_CASE("unchecked_hub", setup_unchecked, teardown, 60, receiver_verifies_signatures_itself,
                sdk_signs_when_the_hub_requires_or_when_asked))
