/* End to end: durable store and forward. Real hubd and hub-adapter
 * processes, killed with SIGKILL at random points; the recorder plugin
 * writes one line per handled message, so the test can count what each
 * handler saw. */
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_sign.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define SENDER2 "VN/GOV/HN-SKHDT/DKKD"
#define RECEIVER "VN/GOV/VPCP/DVCQG"

static hubfix_t fix;
static char record_path[PATH_MAX];
static char state_dir[PATH_MAX];

static void setup_with(const char *extra)
{
    hubfix_init(&fix, extra);
    HUBFIX_ADD_MEMBERS(&fix, SENDER, SENDER2, RECEIVER);
    snprintf(record_path, sizeof record_path, "%s/received.txt", fix.dir);
    snprintf(state_dir, sizeof state_dir, "%s/receiver-state", fix.dir);
    hubfix_start(&fix);
}

static void setup(void) { setup_with("redelivery_ms = 1000"); }
/* Without signatures or audit the store's digest comes from the admission's
 * own decode (hub_admit.c), not from the commit worker's: the same rule. */
static void setup_unsigned(void)
{
    setup_with("redelivery_ms = 1000\nrequire_signatures = no\naudit = no");
}
static void teardown(void) { hubfix_cleanup(&fix); }

static pid_t start_receiver(const char *extra)
{
    char conf[2048];
    snprintf(conf, sizeof conf, "plugin.file = %s\nstate_dir = %s\n%s", record_path, state_dir,
             extra ? extra : "");
    return hubfix_start_adapter(&fix, RECEIVER, "recorder", conf);
}

/* Posts `count` events "<tag> <i>" and pumps until the hub ACKed all. */
static void post_all(adp_client_t *c, const char *tag, int count, int timeout_s)
{
    for (int i = 0; i < count; i++) {
        hubfix_post_record(c, RECEIVER, tag, i);
        if (i % 500 == 499)
            adp_run(c, 0);
    }
    for (int waited = 0; adp_outbox_size(c) > 0 && waited < timeout_s * 10; waited++)
        adp_run(c, 100);
    ck_assert_msg(adp_outbox_size(c) == 0, "%zu messages never ACKed: %s", adp_outbox_size(c),
                  adp_last_error(c));
}

/* Checks that each "<tag> i" for i < count from `sender` was handled exactly
 * once and in order. */
static void assert_once_in_order(const char *sender, const char *tag, int count)
{
    char *text = tk_read_file(record_path);
    ck_assert_ptr_nonnull(text);
    int *seen = calloc((size_t)count, sizeof *seen);
    int last = -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab1 = strchr(line, '\t');
        char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        ck_assert_msg(tab2 != NULL, "bad line: %s", line);
        *tab1 = '\0';
        if (strcmp(line, sender) != 0)
            continue;
        char want[64];
        snprintf(want, sizeof want, "%s ", tag);
        if (strncmp(tab2 + 1, want, strlen(want)) != 0)
            continue;
        int i = atoi(tab2 + 1 + strlen(want));
        ck_assert_int_lt(i, count);
        seen[i]++;
        ck_assert_msg(seen[i] == 1, "%s %d handled %d times", tag, i, seen[i]);
        ck_assert_msg(i > last, "%s %d handled after %d: out of order", tag, i, last);
        last = i;
    }
    for (int i = 0; i < count; i++)
        ck_assert_msg(seen[i] == 1, "%s %d handled %d times", tag, i, seen[i]);
    free(seen);
    free(text);
}

/* An event from SENDER to RECEIVER under a chosen id and creation time,
 * signed with SENDER's key; malloc'ed bytes. */
static uint8_t *event_as(const char *id, uint64_t created_at_us, const char *payload,
                         size_t *out_len)
{
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    env.message_id = (char *)id;
    env.sender = SENDER;
    env.receiver = RECEIVER;
    env.service = "record/v1";
    env.created_at_us = created_at_us;
    env.content_type = "text/plain";
    env.payload.data = (uint8_t *)payload;
    env.payload.len = strlen(payload);
    env.kind = LTH__V1__KIND__KIND_EVENT;
    uint8_t sig[HUB_SIGNATURE_LEN];
    char secret[PATH_MAX], err[256];
    hub_keypair_t kp;
    hubfix_secret_path(&fix, SENDER, secret);
    ck_assert_msg(hub_keyfile_read(secret, &kp, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(hub_envelope_sign(&env, kp.sign_secret, sig), 0);
    hub_keypair_wipe(&kp);
    *out_len = lth__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(*out_len);
    ck_assert_ptr_nonnull(buf);
    lth__v1__envelope__pack(&env, buf);
    return buf;
}

/* Sends one envelope and returns its receipt: the ACK's hub_seq, or 0 with
 * *nack_code and the reason (NULL when not wanted) of a NACK. */
static uint64_t send_one(rawcli_t *raw, const uint8_t *env, size_t len, int *nack_code,
                         char *reason, size_t reason_size)
{
    rawcli_send_batch1(raw, env, len);
    hub_frame_t *f = rawcli_recv_case(raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_msg(f != NULL, "no receipt");
    ck_assert_uint_eq(f->receipts->n_acks + f->receipts->n_nacks, 1);
    uint64_t seq = 0;
    *nack_code = 0;
    if (f->receipts->n_acks) {
        seq = f->receipts->acks[0]->hub_seq;
        ck_assert_uint_gt(seq, 0);
    } else {
        *nack_code = f->receipts->nacks[0]->code;
        if (reason)
            snprintf(reason, reason_size, "%s", f->receipts->nacks[0]->reason);
    }
    hub_frame_free(&f);
    return seq;
}

typedef struct {
    bool seen, acked;
    uint64_t hub_seq;
    int nack_code;
} sdk_outcome_t;

static void keep_outcome(adp_client_t *client, const adp_outcome_t *o, void *user)
{
    (void)client;
    sdk_outcome_t *got = user;
    got->seen = true;
    got->acked = o->acked;
    got->hub_seq = o->hub_seq;
    got->nack_code = o->nack_code;
}

/* Re-sending an accepted id: the same envelope gets the original ACK and
 * hub_seq (idempotent); other content under that id is refused with
 * ID_REUSED naming the id, also after a restart, and never reaches the
 * receiver, which gets the first content once. */
START_TEST(resent_id_is_acked_again_and_reused_id_refused)
{
    const char *id = "5f0c2b1e-7a44-4c1d-9e2b-3d6a8f1c0a51";
    uint64_t created = hub_now_us();
    size_t first_len, other_len, fresh_len;
    uint8_t *first = event_as(id, created, "first content", &first_len);
    uint8_t *other = event_as(id, created, "other content", &other_len);

    rawcli_t raw;
    rawcli_connect(&raw, &fix, SENDER);
    int code;
    char reason[512];
    uint64_t seq = send_one(&raw, first, first_len, &code, NULL, 0);
    ck_assert_int_eq(code, 0);
    ck_assert_uint_eq(send_one(&raw, first, first_len, &code, NULL, 0), seq);
    ck_assert_uint_eq(send_one(&raw, other, other_len, &code, reason, sizeof reason), 0);
    ck_assert_int_eq(code, LTH__V1__NACK_CODE__NACK_ID_REUSED);
    ck_assert_msg(strstr(reason, id) != NULL, "the reason does not name the id: %s", reason);
    /* A new envelope (created now) under the old id: refused too. */
    tk_sleep_ms(10);
    uint8_t *fresh = event_as(id, hub_now_us(), "third content", &fresh_len);
    ck_assert_uint_eq(send_one(&raw, fresh, fresh_len, &code, NULL, 0), 0);
    ck_assert_int_eq(code, LTH__V1__NACK_CODE__NACK_ID_REUSED);
    rawcli_close(&raw);

    /* The digest is in the store: the same answers after a restart. */
    hubfix_stop(&fix);
    hubfix_start(&fix);
    rawcli_connect(&raw, &fix, SENDER);
    ck_assert_uint_eq(send_one(&raw, first, first_len, &code, NULL, 0), seq);
    ck_assert_uint_eq(send_one(&raw, other, other_len, &code, reason, sizeof reason), 0);
    ck_assert_int_eq(code, LTH__V1__NACK_CODE__NACK_ID_REUSED);
    ck_assert_msg(strstr(reason, id) != NULL, "the reason does not name the id: %s", reason);
    rawcli_close(&raw);
    free(first);
    free(other);
    free(fresh);

    /* Through the SDK (batch-signed, a new signature): the same record is
     * the original ACK, other content the ID_REUSED outcome. */
    adp_client_t *c = hubfix_connect(&fix, SENDER);
    sdk_outcome_t got = {0};
    adp_set_outcome_handler(c, keep_outcome, &got);
    ck_assert_int_eq(adp_post_event_as(c, id, created, RECEIVER, "record/v1", "text/plain",
                                       "first content", 13, 0),
                     0);
    for (int i = 0; i < 100 && !got.seen; i++)
        adp_run(c, 100);
    ck_assert(got.seen && got.acked);
    ck_assert_uint_eq(got.hub_seq, seq);
    memset(&got, 0, sizeof got);
    ck_assert_int_eq(adp_post_event_as(c, id, created, RECEIVER, "record/v1", "text/plain",
                                       "sdk content", 11, 0),
                     0);
    for (int i = 0; i < 100 && !got.seen; i++)
        adp_run(c, 100);
    ck_assert(got.seen && !got.acked);
    ck_assert_int_eq(got.nack_code, LTH__V1__NACK_CODE__NACK_ID_REUSED);
    adp_close(&c);

    /* The receiver gets the first content, once. */
    ck_assert_int_gt(start_receiver(NULL), 0);
    ck_assert(tk_wait_lines(record_path, 1, 10000));
    tk_sleep_ms(1500); /* nothing else comes */
    ck_assert_int_eq(tk_count_lines(record_path), 1);
    char *text = tk_read_file(record_path);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "first content") != NULL, "received: %s", text);
    free(text);
}
END_TEST

START_TEST(offline_receiver_gets_everything_in_order_once)
{
    /* Two senders, 5,000 each, while the receiver is not running. */
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    adp_client_t *b = hubfix_connect(&fix, SENDER2);
    post_all(a, "a", 5000, 60);
    post_all(b, "b", 5000, 60);
    ck_assert_int_eq(tk_count_lines(record_path), 0);
    start_receiver(NULL);
    ck_assert_msg(tk_wait_lines(record_path, 10000, 60000), "only %d of 10000 arrived",
                  tk_count_lines(record_path));
    /* Nothing more may come: wait past a redelivery period (1,000 ms), in
     * which an unsettled message would be delivered again. */
    tk_sleep_ms(1500);
    ck_assert_int_eq(tk_count_lines(record_path), 10000);
    assert_once_in_order(SENDER, "a", 5000);
    assert_once_in_order(SENDER2, "b", 5000);
    adp_close(&a);
    adp_close(&b);
}
END_TEST

START_TEST(hub_killed_three_times_loses_nothing)
{
    start_receiver(NULL);
    char sender_state[PATH_MAX];
    snprintf(sender_state, sizeof sender_state, "%s/sender-state", fix.dir);
    adp_client_t *a = hubfix_connect_state(&fix, SENDER, sender_state);
    srand((unsigned)getpid());
    const int total = 10000;
    /* Three SIGKILLs at random points of the stream. */
    int kill_at[3];
    for (int k = 0; k < 3; k++)
        kill_at[k] = 1000 + k * 3000 + rand() % 2500;
    int posted = 0, kills = 0;
    uint64_t deadline = hub_monotonic_us() + 180000000u;
    while (posted < total || adp_outbox_size(a) > 0) {
        for (int k = 0; k < 100 && posted < total; k++, posted++) {
            hubfix_post_record(a, RECEIVER, "m", posted);
        }
        adp_run(a, 10);
        if (kills < 3 && posted >= kill_at[kills]) {
            tk_kill9(fix.hubd);
            kills++;
            adp_run(a, 100 + rand() % 300); /* the sender keeps trying meanwhile */
            hubfix_start(&fix);
        }
        ck_assert_msg(hub_monotonic_us() < deadline, "stream did not finish: %zu unACKed",
                      adp_outbox_size(a));
    }
    ck_assert_int_eq(kills, 3);
    ck_assert_msg(tk_wait_lines(record_path, total, 60000), "only %d of %d handled",
                  tk_count_lines(record_path), total);
    tk_sleep_ms(1500);
    ck_assert_int_eq(tk_count_lines(record_path), total);
    assert_once_in_order(SENDER, "m", total);
    adp_close(&a);
}
END_TEST

START_TEST(receiver_killed_while_handling_gets_it_again_once)
{
    pid_t receiver = start_receiver("plugin.slow_payload = slow\nplugin.slow_ms = 3000\n");
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    uint64_t seq = 0;
    ck_assert_int_eq(adp_send_event(a, RECEIVER, "record/v1", "text/plain", "first", 5, 0, 5000,
                                    &seq),
                     0);
    ck_assert(tk_wait_lines(record_path, 1, 10000));
    ck_assert_int_eq(adp_send_event(a, RECEIVER, "record/v1", "text/plain", "slow", 4, 0, 5000,
                                    &seq),
                     0);
    char begin[PATH_MAX];
    snprintf(begin, sizeof begin, "%s.begin", record_path);
    ck_assert_msg(tk_wait_file(begin, 10000), "handler never started");
    tk_kill9(receiver);
    ck_assert_int_eq(tk_count_lines(record_path), 1);
    /* Back with a fast handler for everything: the killed message comes
     * again and is handled once; "first" is not handled a second time. */
    start_receiver("plugin.slow_payload = slow\nplugin.slow_ms = 10\n");
    ck_assert_msg(tk_wait_lines(record_path, 2, 15000),
                  "the interrupted message was not redelivered");
    tk_sleep_ms(2500); /* past a redelivery period: no duplicates arrive */
    char *text = tk_read_file(record_path);
    ck_assert_int_eq(tk_count_lines(record_path), 2);
    ck_assert_ptr_nonnull(strstr(text, "\tfirst\n"));
    /* The recorder records every call: the second one, marked in doubt (the
     * adapter had begun it before it was killed). */
    ck_assert_msg(strstr(text, "\tslow\tin_doubt\n"), "%s", text);
    free(text);
    adp_close(&a);
}
END_TEST

/* Lines of the record file whose payload is exactly `payload` (with or
 * without the in-doubt mark); *in_doubt counts those with it. */
static int calls_for(const char *payload, int *in_doubt)
{
    char *text = tk_read_file(record_path);
    char plain[128], marked[128];
    snprintf(plain, sizeof plain, "\t%s\n", payload);
    snprintf(marked, sizeof marked, "\t%s\tin_doubt\n", payload);
    int n = 0;
    *in_doubt = 0;
    for (char *p = text; p && (p = strstr(p, plain)); p++)
        n++;
    for (char *p = text; p && (p = strstr(p, marked)); p++)
        (*in_doubt)++;
    free(text);
    return n + *in_doubt;
}

START_TEST(receiver_killed_after_its_effect_is_called_again_in_doubt)
{
    /* The handler records "slow" first, then takes 3 s: killed then, its
     * effect is done and its settle is not. */
    pid_t receiver = start_receiver("plugin.slow_payload = slow\nplugin.slow_ms = 3000\n"
                                    "plugin.slow_after_record = yes\n");
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    ck_assert_int_eq(adp_send_event(a, RECEIVER, "record/v1", "text/plain", "first", 5, 0, 5000,
                                    NULL),
                     0);
    ck_assert_int_eq(adp_send_event(a, RECEIVER, "record/v1", "text/plain", "slow", 4, 0, 5000,
                                    NULL),
                     0);
    char begin[PATH_MAX];
    snprintf(begin, sizeof begin, "%s.begin", record_path);
    ck_assert_msg(tk_wait_file(begin, 10000), "handler never started");
    tk_kill9(receiver);
    int in_doubt = 0;
    ck_assert_int_eq(calls_for("slow", &in_doubt), 1);
    start_receiver("plugin.slow_payload = slow\nplugin.slow_ms = 10\n");
    ck_assert_msg(tk_wait_lines(record_path, 3, 15000),
                  "the interrupted message was not redelivered");
    tk_sleep_ms(2500); /* past a redelivery period: nothing more */
    /* Exactly one extra call, and the SDK said it was in doubt; "first",
     * settled before the kill, is not called again. */
    ck_assert_int_eq(calls_for("slow", &in_doubt), 2);
    ck_assert_int_eq(in_doubt, 1);
    ck_assert_int_eq(calls_for("first", &in_doubt), 1);
    ck_assert_int_eq(in_doubt, 0);
    ck_assert_int_eq(tk_count_lines(record_path), 3);
    adp_close(&a);
}
END_TEST

START_TEST(queue_full_refuses_and_loses_nothing_accepted)
{
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    int acked = 0, full = 0;
    for (int i = 0; i < 150; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "q %d", i);
        int rc = adp_send_event(a, RECEIVER, "record/v1", "text/plain", payload, (size_t)len, 0,
                                5000, NULL);
        if (rc == 0) {
            acked++;
        } else {
            ck_assert_int_eq(rc, HUB_ENACK);
            ck_assert_int_eq(adp_last_nack_code(a), LTH__V1__NACK_CODE__NACK_QUEUE_FULL);
            ck_assert_msg(strstr(adp_last_error(a), RECEIVER), "%s", adp_last_error(a));
            full++;
        }
    }
    ck_assert_int_eq(acked, 100);
    ck_assert_int_eq(full, 50);
    /* Another receiver still accepts. */
    ck_assert_int_eq(adp_send_event(a, SENDER2, "record/v1", "text/plain", "x", 1, 0, 5000, NULL),
                     0);
    start_receiver(NULL);
    ck_assert(tk_wait_lines(record_path, 100, 20000));
    tk_sleep_ms(1500); /* past a redelivery period (1,000 ms): no duplicates */
    ck_assert_int_eq(tk_count_lines(record_path), 100);
    assert_once_in_order(SENDER, "q", 100);
    adp_close(&a);
}
END_TEST

START_TEST(store_full_refuses_and_loses_nothing_accepted)
{
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    char payload[1024];
    memset(payload, 'x', sizeof payload);
    int acked = 0, rc = 0;
    for (int i = 0; i < 5000 && rc == 0; i++) {
        int len = snprintf(payload, sizeof payload, "s %d ", i);
        payload[len] = 'x';
        rc = adp_send_event(a, RECEIVER, "record/v1", "text/plain", payload, sizeof payload, 0,
                            5000, NULL);
        if (rc == 0)
            acked++;
    }
    ck_assert_int_eq(rc, HUB_ENACK);
    ck_assert_int_eq(adp_last_nack_code(a), LTH__V1__NACK_CODE__NACK_STORE_FULL);
    ck_assert_int_gt(acked, 100);
    ck_assert(hubfix_hub_alive(&fix));
    start_receiver(NULL);
    ck_assert_msg(tk_wait_lines(record_path, acked, 30000), "%d of %d delivered",
                  tk_count_lines(record_path), acked);
    tk_sleep_ms(1500); /* past a redelivery period (1,000 ms): no duplicates */
    ck_assert_int_eq(tk_count_lines(record_path), acked);
    /* The very messages that were ACKed (s 0 .. acked-1), each once. */
    assert_once_in_order(SENDER, "s", acked);
    /* Once drained, the store accepts again. */
    for (int waited = 0; waited < 100; waited++) {
        rc = adp_send_event(a, RECEIVER, "record/v1", "text/plain", "again", 5, 0, 5000, NULL);
        if (rc == 0)
            break;
        adp_run(a, 100);
    }
    ck_assert_msg(rc == 0, "store did not accept after draining: %s", adp_last_error(a));
    adp_close(&a);
}
END_TEST

START_TEST(corrupt_store_is_refused_at_start)
{
    hubfix_stop(&fix);
    char data[PATH_MAX];
    snprintf(data, sizeof data, "%s/data/data.mdb", fix.dir);
    char junk[65536];
    memset(junk, 0x5a, sizeof junk);
    FILE *f = fopen(data, "w");
    ck_assert_ptr_nonnull(f);
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    char *argv[] = {(char *)tk_bin("hubd"), "--config", fix.conf_path, NULL};
    TK_RUN_SAYS(argv, 10000, 1, "move", "backup");
}
END_TEST

/* store = postgresql with a DSN that leads nowhere: hubd does not start,
 * and says which setting is wrong and what to check. */
START_TEST(bad_store_dsn_is_refused_at_start)
{
    hubfix_stop(&fix);
    char conf[PATH_MAX + 16], *text;
    snprintf(conf, sizeof conf, "%s", fix.conf_path);
    text = tk_read_file(conf);
    ck_assert_ptr_nonnull(text);
    char *line = strstr(text, "store_dsn = ");
    ck_assert_ptr_nonnull(line);
    *line = '\0';
    char bad[8192];
    snprintf(bad, sizeof bad,
             "%sstore_dsn = host=127.0.0.1 port=1 dbname=hub "
             "connect_timeout=2\n",
             text);
    tk_write_file(conf, bad);
    free(text);
    char *out = NULL;
    char *argv[] = {(char *)tk_bin("hubd"), "--config", fix.conf_path, NULL};
    TK_RUN_SAYS(argv, 20000, 1, "store_dsn", "cannot reach PostgreSQL");
    /* hubd --check-config says the same before a start. */
    out = NULL;
    char *check[] = {(char *)tk_bin("hubd"), "--check-config", "--config", fix.conf_path, NULL};
    ck_assert_int_ne(tk_run(check, &out, 20000), 0);
    ck_assert_msg(strstr(out, "store_dsn") && strstr(out, "cannot reach PostgreSQL"), "%s", out);
    free(out);
}
END_TEST

/* Drops every connection to the test database but `keep`'s (NULL: a
 * connection of its own): hubd's writer and reader connections go, as when
 * the server restarts or fails over. */
static void cut_database_connections(PGconn *keep)
{
    PGconn *c = keep ? keep : PQconnectdb(getenv("HUB_TEST_PG_DSN"));
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *res = PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                              "pid <> pg_backend_pid() AND datname = current_database()");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    if (!keep)
        PQfinish(c);
}

static void pg_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

/* store = postgresql, and the database drops hubd's connections while
 * events flow: once while they sit idle, and twice in the middle of a
 * commit (held there by a row lock this test takes on hub_meta, which every
 * append locks). hubd keeps running; the commit that was cut is answered
 * UNAVAILABLE (retryable: never ACKed), the SDK sends the same envelopes
 * again by itself, hubd connects again by itself (logging each outage
 * once), and every event the application posted, without resending any
 * itself, is delivered exactly once. */
START_TEST(database_connections_cut_twice_loses_nothing_acked)
{
    start_receiver(NULL);
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    enum { TOTAL = 440 }; /* 4 rounds of 100, and 20 held in each of 2 commits */
    int posted = 0;
    for (int round = 0; round < 4; round++) {
        for (int k = 0; k < 100; k++, posted++) {
            hubfix_post_record(a, RECEIVER, "cut", posted);
            if (k % 10 == 9)
                adp_run(a, 5);
        }
        for (int w = 0; adp_outbox_size(a) > 0 && w < 100; w++)
            adp_run(a, 100);
        ck_assert_msg(adp_outbox_size(a) == 0, "round %d: %zu not ACKed: %s", round,
                      adp_outbox_size(a), adp_last_error(a));
        if (round == 0) {
            /* Cut while idle: the next commit connects again first. */
            cut_database_connections(NULL);
            continue;
        }
        if (round == 3)
            break;
        /* Cut in the middle of a commit that appends: once this round's
         * settles are committed, lock hub_ids against writes (the append
         * inserts there), post, wait until hubd's append waits for the
         * lock, and cut. */
        for (int w = 0; w < 300 && tk_count_lines(record_path) < posted; w++)
            adp_run(a, 100); /* the sender keeps answering heartbeats meanwhile */
        ck_assert_msg(tk_count_lines(record_path) >= posted, "only %d of %d handled",
                      tk_count_lines(record_path), posted);
        adp_run(a, 500);
        PGconn *lock = PQconnectdb(getenv("HUB_TEST_PG_DSN"));
        ck_assert_msg(PQstatus(lock) == CONNECTION_OK, "%s", PQerrorMessage(lock));
        pg_ok(lock, "BEGIN");
        pg_ok(lock, "LOCK TABLE hub_ids IN SHARE MODE");
        size_t resent = adp_resent_count(a);
        for (int k = 0; k < 20; k++, posted++) {
            hubfix_post_record(a, RECEIVER, "cut", posted);
        }
        bool waiting = false;
        for (int w = 0; w < 200 && !waiting; w++) {
            adp_run(a, 50); /* sent; their commit waits for the lock */
            /* (pg_stat_activity is read once per transaction unless told) */
            pg_ok(lock, "SELECT pg_stat_clear_snapshot()");
            PGresult *res = PQexec(lock, "SELECT count(*) FROM pg_stat_activity WHERE "
                                         "wait_event_type = 'Lock' AND query LIKE "
                                         "'WITH m AS (INSERT INTO hub_msgs%'");
            waiting = PQresultStatus(res) == PGRES_TUPLES_OK && atoi(PQgetvalue(res, 0, 0)) > 0;
            PQclear(res);
        }
        if (!waiting) { /* what hubd's connections do instead */
            PGresult *res = PQexec(lock, "SELECT string_agg(coalesce(wait_event_type, '-') || "
                                         "' ' || state || ': ' || query, ' | ') FROM "
                                         "pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                                         "datname = current_database()");
            fprintf(stderr, "sessions: %s; outbox %zu, connected %d: %s\n", PQgetvalue(res, 0, 0),
                    adp_outbox_size(a), adp_connected(a), adp_last_error(a));
            PQclear(res);
        }
        ck_assert_msg(waiting, "cut %d: hubd's append never waited for the lock", round);
        cut_database_connections(lock);
        pg_ok(lock, "COMMIT");
        PQfinish(lock);
        for (int w = 0; adp_outbox_size(a) > 0 && w < 150; w++)
            adp_run(a, 100);
        ck_assert_msg(adp_outbox_size(a) == 0, "after cut %d: %zu never ACKed: %s", round,
                      adp_outbox_size(a), adp_last_error(a));
        ck_assert_msg(adp_resent_count(a) > resent,
                      "cut %d: the SDK sent nothing again (last NACK %d: %s)", round,
                      adp_last_nack_code(a), adp_last_error(a));
        ck_assert_int_eq(adp_last_nack_code(a), LTH__V1__NACK_CODE__NACK_UNAVAILABLE);
        ck_assert_msg(strstr(adp_last_error(a), "did not complete the commit") &&
                          strstr(adp_last_error(a), "send the same envelope again"),
                      "%s", adp_last_error(a));
    }
    ck_assert_int_eq(posted, TOTAL);
    ck_assert(hubfix_hub_alive(&fix));
    ck_assert_msg(tk_wait_lines(record_path, posted, 60000), "only %d of %d handled",
                  tk_count_lines(record_path), posted);
    tk_sleep_ms(1500);
    int seen[TOTAL] = {0};
    char *text = tk_read_file(record_path);
    ck_assert_ptr_nonnull(text);
    for (char *p = strstr(text, "cut "); p; p = strstr(p + 4, "cut ")) {
        int i = atoi(p + 4);
        ck_assert(i >= 0 && i < posted);
        seen[i]++;
    }
    free(text);
    for (int i = 0; i < posted; i++)
        ck_assert_msg(seen[i] == 1, "event %d handled %d times", i, seen[i]);
    /* Each outage is logged once per connection, not once per attempt. */
    int lost = tk_count_of(fix.hubd_log, "PostgreSQL connection lost");
    ck_assert_msg(lost >= 2 && lost <= 6, "%d 'connection lost' lines for 3 cuts", lost);
    adp_close(&a);
}
END_TEST

static int publication_handler(adp_client_t *c, const adp_message_t *msg, adp_reply_t *reply,
                               void *user)
{
    (void)c;
    (void)reply;
    int *count = user;
    if (msg->payload_len >= 4 && !memcmp(msg->payload, "cat ", 4))
        (*count)++;
    return 0;
}

START_TEST(durable_subscriptions_get_every_publication)
{
    /* The receiver subscribes to the sender's catalogue; a second
     * subscriber (SENDER2, an SDK client) goes away while it is published. */
    char conf[1024];
    snprintf(conf, sizeof conf, "plugin.file = %s\nplugin.subscribe = %s/catalogue.published/v1\n",
             record_path, SENDER);
    hubfix_start_adapter(&fix, RECEIVER, "recorder", conf);
    char state[PATH_MAX];
    snprintf(state, sizeof state, "%s/sub2-state", fix.dir);
    adp_client_t *sub = NULL;
    char err[512];
    hubfix_client_conf_t client;
    hubfix_client_conf(&fix, SENDER2, &client);
    client.cfg.state_dir = state;
    int got = 0;
    ck_assert_int_eq(adp_new(&client.cfg, &sub, err, sizeof err), 0);
    ck_assert_int_eq(adp_subscribe(sub, SENDER "/catalogue.published/v1", publication_handler,
                                   &got), 0);
    ck_assert_msg(adp_start(sub, err, sizeof err) == 0, "%s", err);
    adp_close(&sub); /* subscribed, now offline */

    adp_client_t *pub = hubfix_connect(&fix, SENDER);
    for (int i = 0; i < 50; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "cat %d", i);
        ck_assert_int_eq(adp_publish(pub, "catalogue.published/v1", "text/plain", payload,
                                     (size_t)len, 0, NULL),
                         0);
    }
    for (int w = 0; w < 100 && adp_outbox_size(pub) > 0; w++)
        adp_run(pub, 50);
    ck_assert_msg(adp_outbox_size(pub) == 0, "publications not ACKed: %s", adp_last_error(pub));
    ck_assert(tk_wait_lines(record_path, 50, 10000));
    assert_once_in_order(SENDER, "cat", 50);

    /* The subscription survives a hub restart; the offline subscriber gets
     * all 50 when it comes back. */
    hubfix_stop(&fix);
    hubfix_start(&fix);
    ck_assert_int_eq(adp_new(&client.cfg, &sub, err, sizeof err), 0);
    ck_assert_int_eq(adp_subscribe(sub, SENDER "/catalogue.published/v1", publication_handler,
                                   &got), 0);
    ck_assert_msg(adp_start(sub, err, sizeof err) == 0, "%s", err);
    hubfix_run_until_exactly(sub, &got, 50, 5000, 300);
    adp_close(&sub);
    adp_close(&pub);
}
END_TEST

/* What a subscriber's handler saw: calls per payload. */
typedef struct {
    int pub1, pub2, direct;
} sub_calls_t;

static int count_by_payload(adp_client_t *c, const adp_message_t *msg, adp_reply_t *reply,
                            void *user)
{
    (void)c;
    (void)reply;
    sub_calls_t *n = user;
    if (msg->payload_len == 4 && !memcmp(msg->payload, "pub1", 4))
        n->pub1++;
    else if (msg->payload_len == 4 && !memcmp(msg->payload, "pub2", 4))
        n->pub2++;
    else if (msg->payload_len == 6 && !memcmp(msg->payload, "direct", 6))
        n->direct++;
    return 0;
}

#define TOPIC SENDER "/news/v1"

/* A subscriber (SDK, with its own state) online for `ms`, counting. */
static void subscriber_run(const char *member, sub_calls_t *n, int ms)
{
    char hub_pub[PATH_MAX], secret[PATH_MAX], err[512], state[PATH_MAX];
    snprintf(hub_pub, sizeof hub_pub, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    hubfix_secret_path(&fix, member, secret);
    snprintf(state, sizeof state, "%s/state-%c", fix.dir, strcmp(member, SENDER2) ? 'r' : '2');
    adp_config_t cfg = {fix.endpoint, hub_pub, secret, 5000, "test", state};
    adp_client_t *c = NULL;
    ck_assert_int_eq(adp_new(&cfg, &c, err, sizeof err), 0);
    ck_assert_int_eq(adp_subscribe(c, TOPIC, count_by_payload, n), 0);
    ck_assert_int_eq(adp_offer(c, "record/v1", count_by_payload, n), 0);
    ck_assert_msg(adp_start(c, err, sizeof err) == 0, "%s", err);
    for (int waited = 0; waited < ms; waited += 50)
        adp_run(c, 50);
    adp_close(&c);
}

/* Publishes (raw) the given encoded event and returns its one receipt
 * frame; asserts that no second receipt for it follows within 300 ms. */
static hub_frame_t *publish_raw(rawcli_t *raw, const uint8_t *env, size_t len)
{
    rawcli_send_batch1(raw, env, len);
    hub_frame_t *f = rawcli_recv_case(raw, LTH__V1__FRAME__BODY_RECEIPTS, 5000);
    ck_assert_msg(f != NULL, "no receipt for a publication");
    ck_assert_uint_eq(f->receipts->n_acks + f->receipts->n_nacks, 1);
    hub_frame_t *more = rawcli_recv_case(raw, LTH__V1__FRAME__BODY_RECEIPTS, 300);
    ck_assert_msg(more == NULL, "a second receipt for one publication");
    return f;
}

START_TEST(publish_rules_and_subscriptions_across_a_restart)
{
    /* No subscribers yet: ACK with hub_seq 0. */
    rawcli_t pub;
    rawcli_connect(&pub, &fix, SENDER);
    size_t len;
    uint8_t *env = rawcli_envelope(&fix, SENDER, HUBFIX_HUB_ID, "news/v1", "pub0", 4, 0, NULL,
                                   &len);
    hub_frame_t *f = publish_raw(&pub, env, len);
    free(env);
    ck_assert_uint_eq(f->receipts->n_acks, 1);
    ck_assert_uint_eq(f->receipts->acks[0]->hub_seq, 0);
    hub_frame_free(&f);
    rawcli_close(&pub);

    /* Two durable subscribers, then both offline; the hub restarts. */
    sub_calls_t n2 = {0}, nr = {0};
    subscriber_run(SENDER2, &n2, 200);
    subscriber_run(RECEIVER, &nr, 200);
    hubfix_stop(&fix);
    hubfix_start(&fix);

    /* Published after the restart, both offline: one receipt, an ACK with
     * a seq; both copies kept (the subscriptions survived the restart). */
    rawcli_connect(&pub, &fix, SENDER);
    env = rawcli_envelope(&fix, SENDER, HUBFIX_HUB_ID, "news/v1", "pub1", 4, 0, NULL, &len);
    f = publish_raw(&pub, env, len);
    free(env);
    ck_assert_uint_eq(f->receipts->n_acks, 1);
    ck_assert_uint_gt(f->receipts->acks[0]->hub_seq, 0);
    hub_frame_free(&f);

    /* SENDER2's queue (max_queue_depth = 3 here) filled by direct events:
     * the next publication is refused as a whole with its QUEUE_FULL, while
     * RECEIVER's copy is stored. */
    adp_client_t *direct = hubfix_connect(&fix, RECEIVER); /* not SENDER: raw holds it */
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(adp_send_event(direct, SENDER2, "record/v1", "text/plain", "direct", 6,
                                        0, 5000, NULL),
                         0);
    adp_close(&direct);
    env = rawcli_envelope(&fix, SENDER, HUBFIX_HUB_ID, "news/v1", "pub2", 4, 0, NULL, &len);
    f = publish_raw(&pub, env, len);
    ck_assert_uint_eq(f->receipts->n_nacks, 1);
    ck_assert_int_eq(f->receipts->nacks[0]->code, LTH__V1__NACK_CODE__NACK_QUEUE_FULL);
    hub_frame_free(&f);
    /* SENDER2 drains its queue; the same publication sent again is ACKed
     * and stores only the missing copy: each subscriber gets pub2 once. */
    subscriber_run(SENDER2, &n2, 1000);
    ck_assert_int_eq(n2.direct, 2);
    ck_assert_int_eq(n2.pub1, 1);
    ck_assert_int_eq(n2.pub2, 0);
    rawcli_hello(&pub, SENDER); /* it was silent meanwhile, so marked offline */
    f = publish_raw(&pub, env, len);
    free(env);
    ck_assert_uint_eq(f->receipts->n_acks, 1);
    hub_frame_free(&f);
    rawcli_close(&pub);
    subscriber_run(SENDER2, &n2, 1500);
    subscriber_run(RECEIVER, &nr, 1500);
    ck_assert_int_eq(n2.pub1, 1);
    ck_assert_int_eq(n2.pub2, 1);
    ck_assert_int_eq(nr.pub1, 1);
    ck_assert_int_eq(nr.pub2, 1);
    ck_assert_int_eq(nr.direct, 0);
}
END_TEST

START_TEST(store_that_cannot_commit_refuses_with_internal)
{
    /* hubd again, with tests/faults/failsync.c preloaded: while the file
     * fail-sync exists, fdatasync() fails with EIO, as on a bad disk. */
    const char *lib = hubfix_failsync_lib(&fix);
    hubfix_stop(&fix);
    char trigger[PATH_MAX];
    snprintf(trigger, sizeof trigger, "%s/fail-sync", fix.dir);
    setenv("LTH_FAIL_SYNC_FILE", trigger, 1);
    hubfix_start_preloaded(&fix, lib);
    start_receiver(NULL);
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    ck_assert_int_eq(adp_send_event(a, RECEIVER, "record/v1", "text/plain", "before", 6, 0, 5000,
                                    NULL),
                     0);
    /* The disk fails: the commit fails, the envelope is refused as
     * INTERNAL with a reason, and nothing is stored or delivered. */
    tk_write_file(trigger, "");
    int rc = adp_send_event(a, RECEIVER, "record/v1", "text/plain", "during", 6, 0, 5000, NULL);
    ck_assert_msg(rc == HUB_ENACK, "accepted while the store could not commit (rc %d)", rc);
    ck_assert_int_eq(adp_last_nack_code(a), LTH__V1__NACK_CODE__NACK_INTERNAL);
    ck_assert_msg(strstr(adp_last_error(a), "could not commit"), "%s", adp_last_error(a));
    ck_assert(hubfix_hub_alive(&fix));
    /* The disk recovers: the hub serves on without a restart. */
    unlink(trigger);
    rc = -1;
    for (int w = 0; w < 50 && rc != 0; w++) {
        rc = adp_send_event(a, RECEIVER, "record/v1", "text/plain", "after", 5, 0, 5000, NULL);
        if (rc != 0)
            adp_run(a, 100);
    }
    ck_assert_msg(rc == 0, "not accepted after the disk recovered: %s", adp_last_error(a));
    ck_assert_msg(tk_wait_lines(record_path, 2, 10000), "only %d delivered",
                  tk_count_lines(record_path));
    tk_sleep_ms(1500); /* past a redelivery period: the refused one never comes */
    char *text = tk_read_file(record_path);
    ck_assert_int_eq(tk_count_lines(record_path), 2);
    ck_assert_ptr_nonnull(strstr(text, "\tbefore\n"));
    ck_assert_ptr_nonnull(strstr(text, "\tafter\n"));
    ck_assert_ptr_null(strstr(text, "\tduring"));
    free(text);
    adp_close(&a);
}
END_TEST

/* curl, as an operator would; returns the HTTP status, body in *out. */
static int http(const char *method, const char *path, const char *token, char **out)
{
    char url[512], auth[300], code_path[PATH_MAX];
    snprintf(url, sizeof url, "http://%s%s", fix.http, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
    snprintf(code_path, sizeof code_path, "%s/curl.body", fix.dir);
    char *argv[] = {"/usr/bin/curl", "-s", "-X", (char *)method, "-H", auth, "-o", code_path,
                    "-w", "%{http_code}", url, NULL};
    char *status = NULL;
    ck_assert_int_eq(tk_run(argv, &status, 10000), 0);
    int code = atoi(status);
    free(status);
    *out = tk_read_file(code_path);
    return code;
}

#define TOKEN "operator-token-for-tests-0123456789"

static void setup_dlq(void)
{
    hubfix_init(&fix, "http_listen = 127.0.0.1:0\nhttp_token_file = token\nmax_attempts = 2\n"
                      "redelivery_ms = 200\n");
    HUBFIX_ADD_MEMBERS(&fix, SENDER, SENDER2, RECEIVER);
    snprintf(record_path, sizeof record_path, "%s/received.txt", fix.dir);
    snprintf(state_dir, sizeof state_dir, "%s/receiver-state", fix.dir);
    char token[PATH_MAX];
    snprintf(token, sizeof token, "%s/token", fix.dir);
    tk_write_file(token, TOKEN "\n");
    chmod(token, 0600);
    hubfix_start(&fix);
}

/* Waits until the DLQ lists `count` entries; returns the listing. */
static char *wait_dlq(int count)
{
    char *body = NULL;
    for (int w = 0; w < 100; w++) {
        free(body);
        ck_assert_int_eq(http("GET", "/api/v1/dlq", TOKEN, &body), 200);
        int n = 0;
        for (char *p = body; (p = strstr(p, "\"reason\"")); p++)
            n++;
        if (n >= count)
            return body;
        tk_sleep_ms(100);
    }
    ck_abort_msg("dead-letter queue never reached %d entries: %s", count, body);
    return NULL;
}

START_TEST(ttl_and_retry_exhaustion_dead_letter_and_replay_delivers)
{
    char *body = NULL;
    ck_assert_int_eq(http("GET", "/api/v1/dlq", NULL, &body), 401);
    free(body);
    /* TTL: three events for an offline receiver, 500 ms to live. */
    adp_client_t *a = hubfix_connect(&fix, SENDER);
    adp_set_ttl(a, 500);
    for (int i = 0; i < 3; i++) {
        hubfix_send_record(a, RECEIVER, "t", i);
    }
    body = wait_dlq(3);
    ck_assert_msg(strstr(body, "ttl expired"), "%s", body);
    free(body);

    /* Retry budget: a receiver that takes deliveries and never settles. */
    adp_set_ttl(a, 0);
    rawcli_t stuck;
    rawcli_connect(&stuck, &fix, SENDER2);
    ck_assert_int_eq(adp_send_event(a, SENDER2, "record/v1", "text/plain", "never settled", 13,
                                    0, 5000, NULL),
                     0);
    int deliveries = 0;
    for (int w = 0; w < 30; w++) {
        hub_frame_t *f = rawcli_recv(&stuck, 100);
        if (f && f->body_case == LTH__V1__FRAME__BODY_DELIVERIES)
            deliveries += (int)f->deliveries->n_items;
        hub_frame_free(&f);
    }
    ck_assert_int_eq(deliveries, 2); /* max_attempts = 2 */
    body = wait_dlq(4);
    ck_assert_msg(strstr(body, "retry budget exhausted"), "%s", body);
    free(body);
    rawcli_close(&stuck);

    /* Replay the three expired events: they reach the receiver once it runs. */
    start_receiver(NULL);
    char *list = wait_dlq(4);
    int replayed = 0;
    for (char *p = list; (p = strstr(p, "\"seq\":")); p++) {
        long seq = strtol(p + 6, NULL, 10);
        char *entry_end = strchr(p, '}');
        char entry[1024];
        snprintf(entry, sizeof entry, "%.*s", entry_end ? (int)(entry_end - p) : 0, p);
        bool ttl = strstr(entry, "ttl expired") != NULL;
        if (!ttl)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/api/v1/dlq/%ld/replay", seq);
        /* 503 means "a commit is running: send the same request again in a
         * moment" (proto/README.md), as hubctl does for up to 5 s. */
        int status = 0;
        for (int tries = 0; tries < 50; tries++) {
            status = http("POST", path, TOKEN, &body);
            if (status != 503)
                break;
            free(body);
            body = NULL;
            usleep(100000);
        }
        ck_assert_int_eq(status, 200);
        free(body);
        replayed++;
    }
    free(list);
    ck_assert_int_eq(replayed, 3);
    ck_assert_msg(tk_wait_lines(record_path, 3, 10000), "replayed messages not delivered");
    assert_once_in_order(SENDER, "t", 3);
    /* Purge what is left (the never-settled one). */
    ck_assert_int_eq(http("POST", "/api/v1/dlq/purge?older_than_s=0", TOKEN, &body), 200);
    ck_assert_msg(strstr(body, "\"purged\":1"), "%s", body);
    free(body);
    adp_close(&a);
}
END_TEST

/* redelivery_ms as in setup(), so that the waits for duplicates above hold
 * a redelivery period. */
static void setup_small_queue(void) { setup_with("max_queue_depth = 100\nredelivery_ms = 1000"); }
static void setup_small_queues(void) { setup_with("max_queue_depth = 3\nredelivery_ms = 1000"); }
/* One sender fills the store: quotas and the reserve off, so that this
 * tests the store's own limit (test_hostile tests the quotas). */
static void setup_small_store(void)
{
    setup_with("max_store_bytes = 4194304\nredelivery_ms = 1000\nstore_reserve_percent = 0\n"
               "quota_send_bytes = 1099511627776\nquota_recv_bytes = 1099511627776");
}

/* Not TK_MAIN: the PostgreSQL run picks some tests at run time. */
int main(void)
{
    /* The PostgreSQL run (with_postgres.sh): the same tests on that store,
     * but for the LMDB file's own faults. */
    const char *pg_dsn = getenv("HUB_TEST_PG_DSN");
    bool pg = pg_dsn && *pg_dsn;
    const tk_case_t cases[] = {
        TK_CASE("durable", setup, teardown, 300, offline_receiver_gets_everything_in_order_once,
                hub_killed_three_times_loses_nothing,
                receiver_killed_while_handling_gets_it_again_once,
                receiver_killed_after_its_effect_is_called_again_in_doubt,
                pg ? bad_store_dsn_is_refused_at_start : corrupt_store_is_refused_at_start,
                pg ? database_connections_cut_twice_loses_nothing_acked
                   : store_that_cannot_commit_refuses_with_internal,
                durable_subscriptions_get_every_publication,
                resent_id_is_acked_again_and_reused_id_refused),
        TK_CASE("unsigned", setup_unsigned, teardown, 120,
                resent_id_is_acked_again_and_reused_id_refused),
        TK_CASE("dead_letters", setup_dlq, teardown, 120,
                ttl_and_retry_exhaustion_dead_letter_and_replay_delivers),
        TK_CASE("queue_limit", setup_small_queue, teardown, 120,
                queue_full_refuses_and_loses_nothing_accepted),
        TK_CASE("publish", setup_small_queues, teardown, 120,
                publish_rules_and_subscriptions_across_a_restart),
        TK_CASE("store_limit", setup_small_store, teardown, 120,
                store_full_refuses_and_loses_nothing_accepted),
    };
    /* Not TK_MAIN: the PostgreSQL run picks two of the tests at run time. */
    return tk_run_suite(tk_suite("e2e_durable", cases, sizeof cases / sizeof cases[0]));
}
