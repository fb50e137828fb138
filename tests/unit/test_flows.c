/* Tests for hub_flows (flow accounting, windows, percentiles, exchanges,
 * throughput, the Prometheus families it feeds) and hub_jsonw (the JSON
 * writer the operator API uses). */
#define _GNU_SOURCE /* strcasestr */
#include "hub_error.h"
#include "hub_flows.h"
#include "hub_jsonw.h"
#include "testkit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A "VN/GOV/BCA/CSDLQGDC"
#define B "VN/GOV/HN-STP/HOTICH"
#define T0 1700000000000000ull /* a wall-clock time, µs */
#define SEC 1000000ull

typedef struct {
    hub_flows_info_t info[16];
    hub_flows_refusal_t refusals[16][HUB_FLOWS_REFUSAL_KINDS];
    char names[16][3][256];
    size_t n;
} flows_seen_t;

static void collect(const hub_flows_info_t *f, void *user)
{
    flows_seen_t *s = user;
    if (s->n >= 16)
        return;
    s->info[s->n] = *f;
    /* Pointers are valid only during the visit: keep copies. */
    snprintf(s->names[s->n][0], 256, "%s", f->sender);
    snprintf(s->names[s->n][1], 256, "%s", f->receiver);
    snprintf(s->names[s->n][2], 256, "%s", f->service);
    for (size_t i = 0; i < f->n_refusals; i++)
        s->refusals[s->n][i] = f->refusals[i];
    s->n++;
}

static char *render(hub_metrics_t *m)
{
    char *text;
    size_t len;
    ck_assert_int_eq(hub_metrics_render(m, &text, &len), 0);
    return text;
}

/* A flow table with the default limits; asserts it is made. */
static hub_flows_t *new_flows(void)
{
    hub_flows_t *f;
    ck_assert_int_eq(hub_flows_new(NULL, 0, &f), 0);
    return f;
}

START_TEST(counts_per_flow_and_metrics_match)
{
    hub_metrics_t *m;
    ck_assert_int_eq(hub_metrics_new(0, &m), 0);
    hub_flows_t *f;
    ck_assert_int_eq(hub_flows_new(m, 0, &f), 0);
    for (int i = 0; i < 5; i++) {
        uint64_t now = T0 + (uint64_t)i * 1000;
        hub_flows_accepted(f, A, B, "echo/v1", 100, now);
        hub_flows_delivered(f, A, B, "echo/v1", 200, now + 10);
        hub_flows_settled(f, A, B, "echo/v1", 3000, now + 20);
    }
    hub_flows_refused(f, A, B, "echo/v1", "RECEIVER_OFFLINE", T0 + 5000);
    hub_flows_refused(f, A, "", "", "MALFORMED_ENVELOPE", T0 + 6000);
    hub_flows_dead_lettered(f, A, B, "echo/v1", T0 + 7000);
    ck_assert_uint_eq(hub_flows_count(f), 2);

    flows_seen_t seen = {0};
    ck_assert_uint_eq(hub_flows_foreach(f, T0 + SEC, collect, &seen), 2);
    /* Sorted: (A, "", "") before (A, B, echo/v1). */
    ck_assert_str_eq(seen.names[0][1], "");
    ck_assert_uint_eq(seen.info[0].refused, 1);
    ck_assert_str_eq(seen.refusals[0][0].outcome, "malformed_envelope");
    const hub_flows_info_t *ab = &seen.info[1];
    ck_assert_str_eq(seen.names[1][1], B);
    ck_assert_uint_eq(ab->accepted, 5);
    ck_assert_uint_eq(ab->bytes, 500);
    ck_assert_uint_eq(ab->delivered, 5);
    ck_assert_uint_eq(ab->settled, 5);
    ck_assert_uint_eq(ab->refused, 1);
    ck_assert_uint_eq(ab->dead_lettered, 1);
    ck_assert_uint_eq(ab->n_refusals, 1);
    ck_assert_str_eq(seen.refusals[1][0].outcome, "receiver_offline");
    ck_assert_uint_eq(ab->minute.accepted, 5);
    ck_assert_uint_eq(ab->minute.errors, 2);
    ck_assert_uint_eq(ab->hour.accepted, 5);
    ck_assert_uint_eq(ab->minute.end_to_end.count, 5);
    ck_assert_uint_eq(ab->minute.end_to_end.max_us, 3000);
    /* Every value is 3000 µs: percentiles within a bucket, capped at max. */
    ck_assert_uint_le(ab->minute.end_to_end.p50_us, 3000);
    ck_assert_uint_ge(ab->minute.end_to_end.p50_us, 2000);
    ck_assert_uint_eq(ab->minute.end_to_end.p99_us, 3000);
    ck_assert_uint_eq(ab->minute.hub.count, 5);
    ck_assert_uint_le(ab->minute.hub.p50_us, 200);

    char *text = render(m);
    ck_assert_msg(strstr(text, "lth_messages_total{sender=\"" A "\",receiver=\"" B
                               "\",service=\"echo/v1\",outcome=\"accepted\"} 5\n"),
                  "%s", text);
    TK_ASSERT_HOLDS(
        text,
        "lth_messages_total{sender=\"" A "\",receiver=\"" B
        "\",service=\"echo/v1\",outcome=\"receiver_offline\"} 1\n",
        "lth_messages_total{sender=\"" A
        "\",receiver=\"\",service=\"\",outcome=\"malformed_envelope\"} 1\n",
        "lth_messages_settled_total{sender=\"" A "\",receiver=\"" B "\",service=\"echo/v1\"} 5\n",
        "lth_messages_dead_lettered_total{sender=\"" A "\",receiver=\"" B
        "\",service=\"echo/v1\"} 1\n",
        "lth_message_bytes_total{sender=\"" A "\",receiver=\"" B "\",service=\"echo/v1\"} 500\n",
        "lth_end_to_end_latency_seconds_bucket{sender=\"" A "\",receiver=\"" B
        "\",service=\"echo/v1\",le=\"0.0025\"} 0\n",
        "lth_end_to_end_latency_seconds_bucket{sender=\"" A "\",receiver=\"" B
        "\",service=\"echo/v1\",le=\"0.005\"} 5\n",
        "lth_hub_latency_seconds_count{sender=\"" A "\",receiver=\"" B
        "\",service=\"echo/v1\"} 5\n",
        "lth_flows_tracked 2\n");
    free(text);
    hub_flows_destroy(&f);
    ck_assert_ptr_null(f);
    hub_flows_destroy(&f); /* NULL is fine */
    hub_metrics_destroy(&m);
}
END_TEST

START_TEST(windows_forget_old_traffic)
{
    hub_flows_t *f = new_flows();
    /* 100 settles at 1 ms, then 100 at 100 ms two minutes later. */
    for (int i = 0; i < 100; i++) {
        hub_flows_accepted(f, A, B, "s/v1", 1, T0);
        hub_flows_settled(f, A, B, "s/v1", 1000, T0);
    }
    uint64_t later = T0 + 120 * SEC;
    for (int i = 0; i < 100; i++) {
        hub_flows_accepted(f, A, B, "s/v1", 1, later);
        hub_flows_settled(f, A, B, "s/v1", 100000, later);
    }
    flows_seen_t seen = {0};
    hub_flows_foreach(f, later + SEC, collect, &seen);
    ck_assert_uint_eq(seen.n, 1);
    const hub_flows_info_t *x = &seen.info[0];
    ck_assert_uint_eq(x->accepted, 200);
    ck_assert_uint_eq(x->minute.accepted, 100);
    ck_assert_uint_eq(x->minute.end_to_end.count, 100);
    ck_assert_uint_ge(x->minute.end_to_end.p50_us, 70000);
    ck_assert_uint_le(x->minute.end_to_end.p50_us, 100000);
    ck_assert_uint_eq(x->hour.accepted, 200);
    ck_assert_uint_eq(x->hour.end_to_end.count, 200);
    /* Half at 1 ms, half at 100 ms: the hour's p50 is in the low half,
     * its p99 in the high one. */
    ck_assert_uint_le(x->hour.end_to_end.p50_us, 1415); /* within one bucket (x1.41) */
    ck_assert_uint_ge(x->hour.end_to_end.p99_us, 70000);
    /* Two hours on, nothing is left in the windows; totals stay. */
    memset(&seen, 0, sizeof seen);
    hub_flows_foreach(f, later + 7200 * SEC, collect, &seen);
    ck_assert_uint_eq(seen.info[0].hour.accepted, 0);
    ck_assert_uint_eq(seen.info[0].hour.end_to_end.count, 0);
    ck_assert_uint_eq(seen.info[0].accepted, 200);
    hub_flows_destroy(&f);
}
END_TEST

START_TEST(percentiles_follow_a_spread)
{
    hub_flows_t *f = new_flows();
    /* 1..1000 ms, uniformly: p50 ~ 500 ms, p90 ~ 900, p99 ~ 990, within 20%. */
    for (int i = 1; i <= 1000; i++)
        hub_flows_settled(f, A, B, "s/v1", (uint64_t)i * 1000, T0 + (uint64_t)i * 1000);
    flows_seen_t seen = {0};
    hub_flows_foreach(f, T0 + SEC, collect, &seen);
    const hub_flows_latency_t *l = &seen.info[0].minute.end_to_end;
    ck_assert_uint_eq(l->count, 1000);
    ck_assert_uint_eq(l->max_us, 1000000);
    ck_assert_msg(l->p50_us > 400000 && l->p50_us < 600000, "p50 %llu",
                  (unsigned long long)l->p50_us);
    ck_assert_msg(l->p90_us > 720000 && l->p90_us < 1000001, "p90 %llu",
                  (unsigned long long)l->p90_us);
    ck_assert_msg(l->p99_us > 800000 && l->p99_us <= 1000000, "p99 %llu",
                  (unsigned long long)l->p99_us);
    /* Beyond the last bucket (~84 s): the overflow bucket uses the max. */
    hub_flows_settled(f, A, B, "o/v1", 3600ull * SEC, T0);
    memset(&seen, 0, sizeof seen);
    hub_flows_foreach(f, T0 + SEC, collect, &seen);
    ck_assert_str_eq(seen.names[0][2], "o/v1");
    ck_assert_uint_eq(seen.info[0].minute.end_to_end.p99_us, 3600ull * SEC);
    hub_flows_destroy(&f);
}
END_TEST

START_TEST(flows_beyond_the_cap_go_to_overflow)
{
    hub_metrics_t *m;
    ck_assert_int_eq(hub_metrics_new(0, &m), 0);
    hub_flows_t *f;
    ck_assert_int_eq(hub_flows_new(m, 3, &f), 0);
    char svc[32];
    for (int i = 0; i < 10; i++) {
        snprintf(svc, sizeof svc, "svc%d/v1", i);
        hub_flows_accepted(f, A, B, svc, 1, T0);
    }
    ck_assert_uint_eq(hub_flows_count(f), 4); /* 3 + _overflow */
    flows_seen_t seen = {0};
    hub_flows_foreach(f, T0, collect, &seen);
    uint64_t total = 0;
    bool overflow = false;
    for (size_t i = 0; i < seen.n; i++) {
        total += seen.info[i].accepted;
        if (!strcmp(seen.names[i][0], HUB_FLOWS_OVERFLOW)) {
            overflow = true;
            ck_assert_uint_eq(seen.info[i].accepted, 7);
        }
    }
    ck_assert(overflow);
    ck_assert_uint_eq(total, 10);
    char *text = render(m);
    ck_assert(strstr(text, "lth_flows_overflow_total 7\n"));
    free(text);
    hub_flows_destroy(&f);
    hub_metrics_destroy(&m);
}
END_TEST

START_TEST(refusal_kinds_are_bounded_and_sanitised)
{
    hub_flows_t *f = new_flows();
    char code[32];
    for (int i = 0; i < 20; i++) {
        snprintf(code, sizeof code, "CODE-%d", i);
        hub_flows_refused(f, A, B, "s/v1", code, T0);
    }
    hub_flows_refused(f, A, B, "s/v1", NULL, T0);
    flows_seen_t seen = {0};
    hub_flows_foreach(f, T0, collect, &seen);
    ck_assert_uint_eq(seen.info[0].n_refusals, HUB_FLOWS_REFUSAL_KINDS);
    ck_assert_str_eq(seen.refusals[0][0].outcome, "code_0");
    ck_assert_str_eq(seen.refusals[0][HUB_FLOWS_REFUSAL_KINDS - 1].outcome, "other");
    uint64_t sum = 0;
    for (size_t i = 0; i < seen.info[0].n_refusals; i++)
        sum += seen.refusals[0][i].count;
    ck_assert_uint_eq(sum, 21);
    ck_assert_uint_eq(seen.info[0].refused, 21);
    hub_flows_destroy(&f);
}
END_TEST

typedef struct {
    char ids[HUB_FLOWS_EXCHANGES][40];
    char outcomes[HUB_FLOWS_EXCHANGES][32];
    size_t n;
} xseen_t;

static void collect_x(const hub_flows_exchange_t *x, void *user)
{
    xseen_t *s = user;
    snprintf(s->ids[s->n], 40, "%s", x->message_id);
    snprintf(s->outcomes[s->n], 32, "%s", x->outcome);
    s->n++;
}

START_TEST(exchanges_ring_keeps_the_newest)
{
    hub_flows_t *f = new_flows();
    for (int i = 0; i < 1500; i++) {
        char id[40];
        snprintf(id, sizeof id, "id-%04d", i);
        hub_flows_exchange_t x = {id, i % 2 ? A : B, i % 2 ? B : A, "s/v1", "accepted", 10,
                                  T0 + (uint64_t)i, 0};
        hub_flows_exchange(f, &x);
    }
    static xseen_t seen;
    memset(&seen, 0, sizeof seen);
    ck_assert_uint_eq(hub_flows_exchanges(f, 5000, NULL, collect_x, &seen), 1000);
    ck_assert_str_eq(seen.ids[0], "id-1499");
    ck_assert_str_eq(seen.ids[999], "id-0500");
    memset(&seen, 0, sizeof seen);
    ck_assert_uint_eq(hub_flows_exchanges(f, 3, A, collect_x, &seen), 3);
    memset(&seen, 0, sizeof seen);
    ck_assert_uint_eq(hub_flows_exchanges(f, 10, "VN/GOV/NO/ONE", collect_x, &seen), 0);
    /* A long id is cut; an odd outcome is sanitised. */
    hub_flows_exchange_t x = {"0123456789012345678901234567890123456789", A, B, "s/v1",
                              "Receiver Offline", 0, T0, 0};
    hub_flows_exchange(f, &x);
    memset(&seen, 0, sizeof seen);
    hub_flows_exchanges(f, 1, NULL, collect_x, &seen);
    ck_assert_uint_eq(strlen(seen.ids[0]), 36);
    ck_assert_str_eq(seen.outcomes[0], "receiver_offline");
    hub_flows_destroy(&f);
}
END_TEST

/* A group commit counts n envelopes of one flow at once: the same counts,
 * windows, throughput and metrics as n single acceptances. */
START_TEST(accepted_n_counts_like_n_acceptances)
{
    hub_metrics_t *m[2];
    hub_flows_t *f[2];
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(hub_metrics_new(0, &m[k]), 0);
        ck_assert_int_eq(hub_flows_new(m[k], 0, &f[k]), 0);
    }
    for (int i = 0; i < 7; i++)
        hub_flows_accepted(f[0], A, B, "s/v1", 100 + (uint64_t)i, T0);
    hub_flows_accepted_n(f[1], A, B, "s/v1", 7, 7 * 100 + 21, T0);
    hub_flows_accepted_n(f[1], A, B, "s/v1", 0, 0, T0); /* nothing */
    static flows_seen_t seen[2];
    memset(seen, 0, sizeof seen);
    static hub_flows_tick_t ticks[2][HUB_FLOWS_THROUGHPUT_S];
    char *text[2];
    for (int k = 0; k < 2; k++) {
        ck_assert_uint_eq(hub_flows_foreach(f[k], T0 + SEC, collect, &seen[k]), 1);
        hub_flows_throughput(f[k], T0, ticks[k]);
        text[k] = render(m[k]);
    }
    ck_assert_uint_eq(seen[1].info[0].accepted, 7);
    ck_assert_uint_eq(seen[1].info[0].bytes, 721);
    ck_assert_uint_eq(seen[1].info[0].minute.accepted, seen[0].info[0].minute.accepted);
    ck_assert_uint_eq(seen[1].info[0].hour.accepted, seen[0].info[0].hour.accepted);
    ck_assert_uint_eq(seen[1].info[0].bytes, seen[0].info[0].bytes);
    ck_assert_uint_eq(ticks[1][HUB_FLOWS_THROUGHPUT_S - 1].accepted, 7);
    ck_assert_str_eq(text[1], text[0]);
    for (int k = 0; k < 2; k++) {
        free(text[k]);
        hub_flows_destroy(&f[k]);
        hub_metrics_destroy(&m[k]);
    }
}
END_TEST

START_TEST(throughput_per_second)
{
    hub_flows_t *f = new_flows();
    for (int s = 0; s < 10; s++) {
        for (int i = 0; i <= s; i++)
            hub_flows_accepted(f, A, B, "s/v1", 1, T0 + (uint64_t)s * SEC);
    }
    hub_flows_refused(f, A, B, "s/v1", "QUEUE_FULL", T0 + 9 * SEC);
    static hub_flows_tick_t ticks[HUB_FLOWS_THROUGHPUT_S];
    hub_flows_throughput(f, T0 + 9 * SEC, ticks);
    ck_assert_uint_eq(ticks[HUB_FLOWS_THROUGHPUT_S - 1].second, T0 / SEC + 9);
    ck_assert_uint_eq(ticks[HUB_FLOWS_THROUGHPUT_S - 1].accepted, 10);
    ck_assert_uint_eq(ticks[HUB_FLOWS_THROUGHPUT_S - 1].refused, 1);
    ck_assert_uint_eq(ticks[HUB_FLOWS_THROUGHPUT_S - 10].accepted, 1);
    ck_assert_uint_eq(ticks[HUB_FLOWS_THROUGHPUT_S - 11].accepted, 0);
    /* Six minutes later every slot is stale. */
    hub_flows_throughput(f, T0 + 400 * SEC, ticks);
    for (size_t i = 0; i < HUB_FLOWS_THROUGHPUT_S; i++)
        ck_assert_uint_eq(ticks[i].accepted, 0);
    hub_flows_destroy(&f);
}
END_TEST

/* Several nodes write the flows counted since their last beat. */
static void sum_accepted(const hub_flows_info_t *info, void *user)
{
    *(uint64_t *)user += info->accepted * 1000 + 1; /* counts, and one per flow visited */
}

START_TEST(changed_flows_are_visited_once)
{
    hub_flows_t *f;
    ck_assert_int_eq(hub_flows_new(NULL, 0, &f), 0);
    hub_flows_accepted(f, A, B, "s/v1", 1, T0);
    hub_flows_accepted(f, A, B, "s/v1", 1, T0);
    hub_flows_refused(f, A, B, "t/v1", "QUEUE_FULL", T0);
    uint64_t got = 0;
    ck_assert_uint_eq(hub_flows_changed(f, false, sum_accepted, &got), 2);
    ck_assert_uint_eq(got, 2002);
    got = 0;
    ck_assert_uint_eq(hub_flows_changed(f, false, sum_accepted, &got), 0);
    ck_assert_uint_eq(got, 0);
    hub_flows_settled(f, A, B, "s/v1", 10, T0 + SEC);
    ck_assert_uint_eq(hub_flows_changed(f, false, sum_accepted, &got), 1);
    ck_assert_uint_eq(got, 2001); /* lifetime counts, not what changed */
    got = 0;
    ck_assert_uint_eq(hub_flows_changed(f, true, sum_accepted, &got), 2);
    hub_flows_destroy(&f);
}
END_TEST

/* ---- hub_jsonw ---------------------------------------------------------- */

START_TEST(jsonw_writes_valid_json)
{
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_str(&w, "s", "a\"b\\c\n\x01</script>");
    hub_jsonw_kv_str(&w, "vi", "Nguy\xe1\xbb\x85n");
    hub_jsonw_kv_str(&w, "bad", "x\xff\xc3(y\xed\xa0\x80");
    hub_jsonw_kv_u64(&w, "u", UINT64_MAX);
    hub_jsonw_key(&w, "i");
    hub_jsonw_i64(&w, -5);
    hub_jsonw_kv_double(&w, "d", 1.5, 3);
    hub_jsonw_kv_double(&w, "z", -0.0001, 3);
    hub_jsonw_kv_double(&w, "nan", 0.0 / 0.0, 3);
    hub_jsonw_kv_bool(&w, "t", true);
    hub_jsonw_key(&w, "a");
    hub_jsonw_array_begin(&w);
    hub_jsonw_u64(&w, 1);
    hub_jsonw_str(&w, NULL);
    hub_jsonw_object_begin(&w);
    hub_jsonw_object_end(&w);
    hub_jsonw_array_end(&w);
    hub_jsonw_object_end(&w);
    char *out;
    size_t len;
    ck_assert_int_eq(hub_jsonw_finish(&w, &out, &len), 0);
    ck_assert_str_eq(out, "{\"s\":\"a\\\"b\\\\c\\n\\u0001<\\/script>\","
                          "\"vi\":\"Nguy\xe1\xbb\x85n\","
                          "\"bad\":\"x\\ufffd\\ufffd(y\\ufffd\\ufffd\\ufffd\","
                          "\"u\":18446744073709551615,\"i\":-5,\"d\":1.5,\"z\":0,\"nan\":null,"
                          "\"t\":true,\"a\":[1,null,{}]}");
    ck_assert_uint_eq(len, strlen(out));
    free(out);
}
END_TEST

START_TEST(jsonw_refuses_misuse)
{
    hub_jsonw_t w;
    char *out;
    size_t len;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_u64(&w, 1); /* a value without a key */
    ck_assert_int_eq(hub_jsonw_finish(&w, &out, &len), HUB_EINVAL);
    ck_assert_ptr_null(out);

    hub_jsonw_init(&w);
    hub_jsonw_array_begin(&w);
    ck_assert_int_eq(hub_jsonw_finish(&w, &out, &len), HUB_EINVAL); /* unclosed */

    hub_jsonw_init(&w);
    hub_jsonw_array_begin(&w);
    hub_jsonw_object_end(&w); /* wrong close */
    ck_assert_int_eq(hub_jsonw_finish(&w, &out, &len), HUB_EINVAL);

    hub_jsonw_init(&w);
    for (int i = 0; i < HUB_JSONW_MAX_DEPTH + 2; i++)
        hub_jsonw_array_begin(&w);
    ck_assert_int_eq(hub_jsonw_finish(&w, &out, &len), HUB_EINVAL);

    hub_jsonw_init(&w);
    ck_assert_int_eq(hub_jsonw_finish(&w, &out, &len), HUB_EINVAL); /* nothing written */
}
END_TEST

START_TEST(jsonw_csv_lists_the_items)
{
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_array_begin(&w);
    hub_jsonw_csv(&w, ",citizen.lookup/v1,,echo/v1,");
    hub_jsonw_csv(&w, "");
    hub_jsonw_csv(&w, NULL);
    hub_jsonw_array_end(&w);
    char *out;
    size_t len;
    ck_assert_int_eq(hub_jsonw_finish(&w, &out, &len), 0);
    ck_assert_str_eq(out, "[[\"citizen.lookup/v1\",\"echo/v1\"],[],[]]");
    free(out);
}
END_TEST

TK_MAIN("flows",
        TK_CASE("flows", NULL, NULL, 0, counts_per_flow_and_metrics_match,
                windows_forget_old_traffic, percentiles_follow_a_spread,
                flows_beyond_the_cap_go_to_overflow, refusal_kinds_are_bounded_and_sanitised,
                exchanges_ring_keeps_the_newest, throughput_per_second,
                accepted_n_counts_like_n_acceptances, changed_flows_are_visited_once,
                jsonw_writes_valid_json, jsonw_refuses_misuse, jsonw_csv_lists_the_items))
