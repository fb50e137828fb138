/* Tests for hub_metrics: exact renderings, escaping, histogram buckets, the
 * series cap, naming rules, and that `promtool check metrics` accepts what
 * we render (reported as a skip, 77, where promtool is not installed). */
#include "hub_error.h"
#include "hub_metrics.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hub_metrics_t *reg;

static void setup(void) { ck_assert_int_eq(hub_metrics_new(0, &reg), 0); }
static void teardown(void) { hub_metrics_destroy(&reg); }

static char *render(hub_metrics_t *r)
{
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(hub_metrics_render(r, &text, &len), 0);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(len, strlen(text));
    return text;
}

static const double latency_buckets[] = {0.005, 0.01, 0.1, 1};

/* A registry shaped like the hub's, used by several tests. */
static void fill_small_registry(hub_metrics_t *r)
{
    hub_metric_family_t *msgs, *queued, *latency, *up;
    static const char *const msg_labels[] = {"sender", "service"};
    static const char *const queue_labels[] = {"receiver"};
    static const char *const lat_labels[] = {"service"};
    ck_assert_int_eq(hub_metrics_counter(r, "lth_messages_received_total",
                                         "Envelopes accepted, by sender and service.",
                                         msg_labels, 2, &msgs),
                     0);
    ck_assert_int_eq(hub_metrics_gauge(r, "lth_queue_depth", "Messages waiting per receiver.",
                                       queue_labels, 1, &queued),
                     0);
    ck_assert_int_eq(hub_metrics_histogram(r, "lth_delivery_seconds", "Accept-to-ACK latency.",
                                           lat_labels, 1, latency_buckets, 4, &latency),
                     0);
    ck_assert_int_eq(hub_metrics_gauge(r, "lth_up", "1 while the hub runs.", NULL, 0, &up), 0);
    const char *const a[] = {"VN/GOV/HN-STP/HOTICH", "citizen.lookup/v1"};
    const char *const b[] = {"VN/GOV/BCA/CSDLQGDC", "dossier.status/v1"};
    ck_assert_int_eq(hub_metric_inc(msgs, a, 1), 0);
    ck_assert_int_eq(hub_metric_inc(msgs, a, 2), 0);
    ck_assert_int_eq(hub_metric_inc(msgs, b, 1), 0);
    const char *const r1[] = {"VN/GOV/HN-STP/HOTICH"};
    ck_assert_int_eq(hub_metric_set(queued, r1, 7), 0);
    ck_assert_int_eq(hub_metric_inc(queued, r1, -2.5), 0);
    const char *const svc[] = {"citizen.lookup/v1"};
    ck_assert_int_eq(hub_metric_observe(latency, svc, 0.003), 0);
    ck_assert_int_eq(hub_metric_observe(latency, svc, 0.01), 0); /* on a bound: that bucket */
    ck_assert_int_eq(hub_metric_observe(latency, svc, 0.05), 0);
    ck_assert_int_eq(hub_metric_observe(latency, svc, 3), 0);    /* above all: +Inf only */
    ck_assert_int_eq(hub_metric_set(up, NULL, 1), 0);
}

START_TEST(test_render_exact)
{
    fill_small_registry(reg);
    char *text = render(reg);
    const char *want =
        "# HELP lth_delivery_seconds Accept-to-ACK latency.\n"
        "# TYPE lth_delivery_seconds histogram\n"
        "lth_delivery_seconds_bucket{service=\"citizen.lookup/v1\",le=\"0.005\"} 1\n"
        "lth_delivery_seconds_bucket{service=\"citizen.lookup/v1\",le=\"0.01\"} 2\n"
        "lth_delivery_seconds_bucket{service=\"citizen.lookup/v1\",le=\"0.1\"} 3\n"
        "lth_delivery_seconds_bucket{service=\"citizen.lookup/v1\",le=\"1\"} 3\n"
        "lth_delivery_seconds_bucket{service=\"citizen.lookup/v1\",le=\"+Inf\"} 4\n"
        "lth_delivery_seconds_sum{service=\"citizen.lookup/v1\"} 3.063\n"
        "lth_delivery_seconds_count{service=\"citizen.lookup/v1\"} 4\n"
        "# HELP lth_messages_received_total Envelopes accepted, by sender and service.\n"
        "# TYPE lth_messages_received_total counter\n"
        "lth_messages_received_total{sender=\"VN/GOV/BCA/CSDLQGDC\",service=\"dossier.status/v1\"}"
        " 1\n"
        "lth_messages_received_total{sender=\"VN/GOV/HN-STP/HOTICH\",service=\"citizen.lookup/v1\"}"
        " 3\n"
        "# HELP lth_queue_depth Messages waiting per receiver.\n"
        "# TYPE lth_queue_depth gauge\n"
        "lth_queue_depth{receiver=\"VN/GOV/HN-STP/HOTICH\"} 4.5\n"
        "# HELP lth_up 1 while the hub runs.\n"
        "# TYPE lth_up gauge\n"
        "lth_up 1\n";
    ck_assert_str_eq(text, want);
    free(text);
}
END_TEST

START_TEST(test_render_empty_and_unlabelled_zero)
{
    char *text = render(reg);
    ck_assert_str_eq(text, ""); /* the drop counter has no series yet */
    free(text);
    hub_metric_family_t *f;
    ck_assert_int_eq(hub_metrics_counter(reg, "lth_restarts_total", "Restarts.", NULL, 0, &f), 0);
    hub_metric_family_t *h;
    const double b[] = {1};
    ck_assert_int_eq(hub_metrics_histogram(reg, "lth_batch_size", "Batch.", NULL, 0, b, 1, &h), 0);
    text = render(reg);
    ck_assert_str_eq(text, "# HELP lth_batch_size Batch.\n"
                           "# TYPE lth_batch_size histogram\n"
                           "lth_batch_size_bucket{le=\"1\"} 0\n"
                           "lth_batch_size_bucket{le=\"+Inf\"} 0\n"
                           "lth_batch_size_sum 0\n"
                           "lth_batch_size_count 0\n"
                           "# HELP lth_restarts_total Restarts.\n"
                           "# TYPE lth_restarts_total counter\n"
                           "lth_restarts_total 0\n");
    free(text);
}
END_TEST

START_TEST(test_escaping)
{
    hub_metric_family_t *f;
    static const char *const labels[] = {"path"};
    ck_assert_int_eq(hub_metrics_gauge(reg, "lth_escape_test",
                                       "Help with a \\ backslash,\na newline and \"quotes\".",
                                       labels, 1, &f),
                     0);
    const char *const v[] = {"C:\\dir \"quoted\"\nline2 Nguy\xe1\xbb\x85n"};
    ck_assert_int_eq(hub_metric_set(f, v, 1), 0);
    char *text = render(reg);
    ck_assert_str_eq(text, "# HELP lth_escape_test Help with a \\\\ backslash,\\na newline and "
                           "\"quotes\".\n"
                           "# TYPE lth_escape_test gauge\n"
                           "lth_escape_test{path=\"C:\\\\dir \\\"quoted\\\"\\nline2 "
                           "Nguy\xe1\xbb\x85n\"} 1\n");
    free(text);
}
END_TEST

START_TEST(test_value_formatting)
{
    hub_metric_family_t *f;
    static const char *const labels[] = {"k"};
    ck_assert_int_eq(hub_metrics_gauge(reg, "g", "Values.", labels, 1, &f), 0);
    static const struct {
        const char *label;
        double value;
        const char *text;
    } cases[] = {
        {"a", 0.1, "0.1"},          {"b", 1e6, "1000000"},   {"c", -1.5, "-1.5"},
        {"d", 123456789, "123456789"}, {"e", INFINITY, "+Inf"}, {"f", -INFINITY, "-Inf"},
        {"g", 1.0 / 3.0, "0.3333333333333333"}, {"h", 0, "0"},
        {"i", 9007199254740993.0, "9007199254740992"}, {"j", 1e20, "1e+20"},
        {"k", 1e-9, "1e-09"}, {"l", -0.0, "0"}, {"m", 2.5e-7, "2.5e-07"},
    };
    char want[1024] = "# HELP g Values.\n# TYPE g gauge\n";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const v[] = {cases[i].label};
        ck_assert_int_eq(hub_metric_set(f, v, cases[i].value), 0);
        snprintf(want + strlen(want), sizeof want - strlen(want), "g{k=\"%s\"} %s\n",
                 cases[i].label, cases[i].text);
    }
    char *text = render(reg);
    ck_assert_str_eq(text, want);
    free(text);
}
END_TEST

START_TEST(test_histogram_cumulative)
{
    hub_metric_family_t *h;
    const double buckets[] = {0.001, 0.01, 0.1, 1, 10};
    ck_assert_int_eq(hub_metrics_histogram(reg, "lat_seconds", "L.", NULL, 0, buckets, 5, &h), 0);
    /* 1 below the first bound, 2 exactly on bounds, 3 in (0.1, 1], 1 above. */
    const double obs[] = {0.0005, 0.001, 0.1, 0.2, 0.5, 0.9, 100};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        ck_assert_int_eq(hub_metric_observe(h, NULL, obs[i]), 0);
    ck_assert_int_eq(hub_metric_observe(h, NULL, NAN), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_observe(h, NULL, -1), 0); /* negative: first bucket */
    char *text = render(reg);
    ck_assert_str_eq(text, "# HELP lat_seconds L.\n"
                           "# TYPE lat_seconds histogram\n"
                           "lat_seconds_bucket{le=\"0.001\"} 3\n"
                           "lat_seconds_bucket{le=\"0.01\"} 3\n"
                           "lat_seconds_bucket{le=\"0.1\"} 4\n"
                           "lat_seconds_bucket{le=\"1\"} 7\n"
                           "lat_seconds_bucket{le=\"10\"} 7\n"
                           "lat_seconds_bucket{le=\"+Inf\"} 8\n"
                           "lat_seconds_sum 100.7015\n"
                           "lat_seconds_count 8\n");
    free(text);
}
END_TEST

START_TEST(test_series_cap)
{
    hub_metrics_t *small;
    ck_assert_int_eq(hub_metrics_new(3, &small), 0);
    hub_metric_family_t *f, *g;
    static const char *const labels[] = {"member"};
    ck_assert_int_eq(hub_metrics_counter(small, "lth_x_total", "X.", labels, 1, &f), 0);
    ck_assert_int_eq(hub_metrics_gauge(small, "lth_y", "Y.", labels, 1, &g), 0);
    const char *members[] = {"m1", "m2", "m3", "m4", "m5"};
    for (int i = 0; i < 5; i++) {
        const char *const v[] = {members[i]};
        ck_assert_int_eq(hub_metric_inc(f, v, 1), i < 3 ? 0 : HUB_EFULL);
    }
    /* Existing series still update at the cap; a new one is dropped again. */
    const char *const m1[] = {"m1"}, *const m9[] = {"m9"};
    ck_assert_int_eq(hub_metric_inc(f, m1, 1), 0);
    hub_metric_series_t *s;
    ck_assert_int_eq(hub_metric_series(f, m9, &s), HUB_EFULL);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(hub_metric_set(g, m9, 2), 0); /* the cap is per family */
    char *text = render(small);
    ck_assert_str_eq(text, "# HELP lth_metrics_dropped_series_total Label combinations not "
                           "recorded because their family had reached its series limit.\n"
                           "# TYPE lth_metrics_dropped_series_total counter\n"
                           "lth_metrics_dropped_series_total{family=\"lth_x_total\"} 3\n"
                           "# HELP lth_x_total X.\n"
                           "# TYPE lth_x_total counter\n"
                           "lth_x_total{member=\"m1\"} 2\n"
                           "lth_x_total{member=\"m2\"} 1\n"
                           "lth_x_total{member=\"m3\"} 1\n"
                           "# HELP lth_y Y.\n"
                           "# TYPE lth_y gauge\n"
                           "lth_y{member=\"m9\"} 2\n");
    free(text);
    hub_metrics_destroy(&small);
    ck_assert_ptr_null(small);
    hub_metrics_destroy(&small);
    hub_metrics_destroy(NULL);
}
END_TEST

START_TEST(test_many_series_lookup)
{
    hub_metric_family_t *f;
    static const char *const labels[] = {"sender", "receiver"};
    ck_assert_int_eq(hub_metrics_counter(reg, "lth_pairs_total", "P.", labels, 2, &f), 0);
    enum { N = 100 };
    static hub_metric_series_t *seen[N][N];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            for (int j = 0; j < N; j++) {
                char a[16], b[16];
                snprintf(a, sizeof a, "m%d", i);
                snprintf(b, sizeof b, "m%d", j);
                const char *const v[] = {a, b};
                hub_metric_series_t *s;
                ck_assert_int_eq(hub_metric_series(f, v, &s), 0);
                if (round == 0)
                    seen[i][j] = s;
                else
                    ck_assert_ptr_eq(seen[i][j], s); /* stable across table growth */
                ck_assert_int_eq(hub_series_inc(s, 1), 0);
            }
        }
    }
    /* {"m1","m2"} and {"m2","m1"} are different series; the default cap
     * (10,000) is exactly N * N, so the next new one is dropped. */
    ck_assert_ptr_ne(seen[1][2], seen[2][1]);
    const char *const extra[] = {"new", "pair"};
    ck_assert_int_eq(hub_metric_inc(f, extra, 1), HUB_EFULL);
    char *text = render(reg);
    ck_assert_ptr_nonnull(strstr(text, "lth_pairs_total{sender=\"m99\",receiver=\"m99\"} 2\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "lth_metrics_dropped_series_total{family=\"lth_pairs_total\"} 1\n"));
    free(text);
}
END_TEST

START_TEST(test_naming_rules)
{
    hub_metric_family_t *f = (hub_metric_family_t *)1;
    static const char *const ok_labels[] = {"member"};
    static const char *const le[] = {"le"};
    static const char *const reserved[] = {"__name"};
    static const char *const twice[] = {"a", "a"};
    static const char *const bad_label[] = {"1abc"};
    const double b[] = {1, 2};
    ck_assert_int_eq(hub_metrics_counter(reg, "lth_sent", "no _total", NULL, 0, &f), HUB_EINVAL);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(hub_metrics_counter(reg, "9lives_total", "H.", NULL, 0, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_gauge(reg, "has-dash", "H.", NULL, 0, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_gauge(reg, "", "H.", NULL, 0, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_gauge(reg, "ok", NULL, NULL, 0, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_gauge(reg, "ok", "H.", NULL, 1, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_gauge(reg, "ok", "H.", reserved, 1, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_gauge(reg, "ok", "H.", twice, 2, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_gauge(reg, "ok", "H.", bad_label, 1, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_histogram(reg, "h", "H.", le, 1, b, 2, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_histogram(reg, "h", "H.", NULL, 0, b, 0, &f), HUB_EINVAL);
    const double unsorted[] = {2, 1}, same[] = {1, 1}, inf[] = {1, INFINITY}, nan[] = {NAN};
    ck_assert_int_eq(hub_metrics_histogram(reg, "h", "H.", NULL, 0, unsorted, 2, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_histogram(reg, "h", "H.", NULL, 0, same, 2, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_histogram(reg, "h", "H.", NULL, 0, inf, 2, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_histogram(reg, "h", "H.", NULL, 0, nan, 1, &f), HUB_EINVAL);
    /* The good ones, then clashes. */
    ck_assert_int_eq(hub_metrics_gauge(reg, "ns:ok", "H.", ok_labels, 1, &f), 0);
    ck_assert_int_eq(hub_metrics_counter(reg, "ns:ok", "H.", NULL, 0, &f), HUB_EINVAL);
    ck_assert_int_eq(hub_metrics_gauge(reg, "ns:ok", "H.", NULL, 0, &f), HUB_EEXIST);
    ck_assert_int_eq(hub_metrics_histogram(reg, "h", "H.", NULL, 0, b, 2, &f), 0);
    ck_assert_int_eq(hub_metrics_gauge(reg, "h_count", "H.", NULL, 0, &f), HUB_EEXIST);
    ck_assert_int_eq(hub_metrics_gauge(reg, "hx_sum", "H.", NULL, 0, &f), 0);
    ck_assert_int_eq(hub_metrics_histogram(reg, "hx", "H.", NULL, 0, b, 2, &f), HUB_EEXIST);
    ck_assert_int_eq(hub_metrics_counter(reg, HUB_METRICS_DROPPED_NAME, "H.", NULL, 0, &f),
                     HUB_EEXIST);
}
END_TEST

START_TEST(test_type_rules)
{
    hub_metric_family_t *c, *g, *h;
    static const char *const labels[] = {"k"};
    const char *const v[] = {"x"};
    const char *const null_value[] = {NULL};
    const double b[] = {1};
    ck_assert_int_eq(hub_metrics_counter(reg, "c_total", "C.", labels, 1, &c), 0);
    ck_assert_int_eq(hub_metrics_gauge(reg, "g", "G.", labels, 1, &g), 0);
    ck_assert_int_eq(hub_metrics_histogram(reg, "h", "H.", labels, 1, b, 1, &h), 0);
    ck_assert_int_eq(hub_metric_inc(c, v, -1), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_inc(c, v, NAN), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_set(c, v, -1), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_set(c, v, 41), 0);
    ck_assert_int_eq(hub_metric_inc(c, v, 1), 0);
    ck_assert_int_eq(hub_metric_observe(c, v, 1), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_observe(g, v, 1), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_inc(h, v, 1), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_set(h, v, 1), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_inc(g, v, -3), 0);
    ck_assert_int_eq(hub_metric_inc(g, NULL, 1), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_inc(g, null_value, 1), HUB_EINVAL);
    ck_assert_int_eq(hub_metric_inc(NULL, v, 1), HUB_EINVAL);
    hub_metric_series_t *s;
    ck_assert_int_eq(hub_metric_series(h, v, &s), 0);
    ck_assert_int_eq(hub_series_observe(s, 0.5), 0);
    ck_assert_int_eq(hub_series_inc(s, 1), HUB_EINVAL);
    ck_assert_int_eq(hub_series_inc(NULL, 1), HUB_EINVAL);
    char *text = render(reg);
    ck_assert_ptr_nonnull(strstr(text, "c_total{k=\"x\"} 42\n"));
    ck_assert_ptr_nonnull(strstr(text, "g{k=\"x\"} -3\n"));
    ck_assert_ptr_nonnull(strstr(text, "h_bucket{k=\"x\",le=\"1\"} 1\n"));
    free(text);
    char *out = (char *)1;
    size_t len = 1;
    ck_assert_int_eq(hub_metrics_render(NULL, &out, &len), HUB_EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(hub_metrics_new(0, NULL), HUB_EINVAL);
}
END_TEST

/* The path of promtool, or NULL. */
static const char *find_promtool(void)
{
    static const char *const candidates[] = {"/usr/bin/promtool", "/usr/local/bin/promtool"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        FILE *f = fopen(candidates[i], "r");
        if (f) {
            fclose(f);
            return candidates[i];
        }
    }
    return NULL;
}

START_TEST(test_promtool_accepts_rendering)
{
    const char *promtool = find_promtool();
    if (!promtool) {
        hub_metrics_destroy(&reg); /* the teardown does not run after a skip */
        tk_skip("test_promtool_accepts_rendering: promtool not found "
                "(apt-get install prometheus provides /usr/bin/promtool)");
    }
    fill_small_registry(reg);
    /* Add the awkward parts: escaping, a dropped-series count, odd values. */
    hub_metric_family_t *f;
    static const char *const labels[] = {"path"};
    ck_assert_int_eq(hub_metrics_gauge(reg, "lth_escape_test", "Help \\ with\na newline.", labels,
                                       1, &f),
                     0);
    const char *const v[] = {"C:\\dir \"q\"\nx Nguy\xe1\xbb\x85n"};
    ck_assert_int_eq(hub_metric_set(f, v, 1e-9), 0);
    hub_metrics_t *small;
    ck_assert_int_eq(hub_metrics_new(1, &small), 0);
    hub_metric_family_t *c;
    static const char *const m[] = {"member"};
    ck_assert_int_eq(hub_metrics_counter(small, "lth_capped_total", "Capped.", m, 1, &c), 0);
    const char *const a[] = {"a"}, *const b[] = {"b"};
    ck_assert_int_eq(hub_metric_inc(c, a, 1), 0);
    ck_assert_int_eq(hub_metric_inc(c, b, 1), HUB_EFULL);

    hub_metrics_t *regs[] = {reg, small};
    for (size_t i = 0; i < 2; i++) {
        char dir[PATH_MAX], file[PATH_MAX + 32], cmd[2 * PATH_MAX + 64];
        tk_tmpdir(dir);
        snprintf(file, sizeof file, "%s/metrics.txt", dir);
        char *text = render(regs[i]);
        tk_write_file(file, text);
        snprintf(cmd, sizeof cmd, "%s check metrics < '%s'", promtool, file);
        char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
        char *output = NULL;
        int rc = tk_run(argv, &output, 20000);
        ck_assert_msg(rc == 0, "promtool check metrics exited %d:\n%s\n--- input ---\n%s", rc,
                      output ? output : "", text);
        free(output);
        free(text);
        tk_rmrf(dir);
    }
    hub_metrics_destroy(&small);
}
END_TEST

TK_MAIN("hub_metrics",
        TK_CASE("registry", setup, teardown, 0, test_render_exact,
                test_render_empty_and_unlabelled_zero, test_escaping, test_value_formatting,
                test_histogram_cumulative, test_series_cap, test_many_series_lookup,
                test_naming_rules, test_type_rules, test_promtool_accepts_rendering))
