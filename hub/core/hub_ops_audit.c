#include "hub_ops_audit.h"
#include "hub_jsonw.h"
#include "hub_wire.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void ops_audit__get(const hub_ops_source_t *src, hub_ops_audit_t *a)
{
    memset(a, 0, sizeof *a);
    if (src->audit)
        src->audit(src->ctx, a);
}

int hub_ops_audit_metrics_new(hub_metrics_t *m, hub_ops_audit_metrics_t *f)
{
    const hub_metric_def_t defs[] = {
        {HUB_METRIC_GAUGE, "lth_audit_checkpoint_sequence",
         "Seq of the last durable audit checkpoint (the published head; "
         "its hash is at /api/v1/audit/head).",
         NULL, 0, &f->checkpoint_seq, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_audit_log_gap_records",
         "Audit records found missing at start and accepted by the "
         "operator (audit_accept_gap); 0 normally.",
         NULL, 0, &f->gap, NULL, 0},
        {HUB_METRIC_COUNTER, "lth_audit_tsa_tokens_total",
         "RFC 3161 time-stamp tokens obtained for audit checkpoints.", NULL, 0, &f->tsa_tokens,
         NULL, 0},
        {HUB_METRIC_COUNTER, "lth_audit_tsa_failures_total",
         "Time-stamp requests to the TSA that failed.", NULL, 0, &f->tsa_failures, NULL, 0},
        {HUB_METRIC_GAUGE, "lth_audit_tsa_failing_seconds",
         "How long the TSA has failed since its last token (0: fine).", NULL, 0, &f->tsa_failing_s,
         NULL, 0},
        {HUB_METRIC_GAUGE, "lth_audit_tsa_pending_checkpoint",
         "Seq of the newest checkpoint still waiting for a time-stamp "
         "(0: none).",
         NULL, 0, &f->tsa_pending, NULL, 0},
    };
    return hub_metrics_register(m, defs, sizeof defs / sizeof defs[0]);
}

static uint64_t ops_audit__failing_s(const hub_ops_audit_t *a)
{
    uint64_t now = hub_now_us();
    if (!a->tsa_on || !a->tsa.failing_since_us)
        return 0;
    uint64_t s = now > a->tsa.failing_since_us ? (now - a->tsa.failing_since_us) / 1000000u : 0;
    return s ? s : 1;
}

void hub_ops_audit_metrics_set(const hub_ops_source_t *src, const hub_ops_audit_metrics_t *f)
{
    hub_ops_audit_t a;
    ops_audit__get(src, &a);
    hub_metric_set(f->checkpoint_seq, NULL, (double)a.head.seq);
    hub_metric_set(f->gap, NULL, (double)a.gap);
    hub_metric_set(f->tsa_tokens, NULL, (double)a.tsa.tokens);
    hub_metric_set(f->tsa_failures, NULL, (double)a.tsa.failures);
    hub_metric_set(f->tsa_failing_s, NULL, (double)ops_audit__failing_s(&a));
    hub_metric_set(f->tsa_pending, NULL, (double)a.tsa.pending_seq);
}

void hub_ops_audit_alarm_figures(const hub_ops_source_t *src, uint64_t *gap,
                                 uint64_t *tsa_failing_s, uint64_t *tampered_seq)
{
    hub_ops_audit_t a;
    ops_audit__get(src, &a);
    *gap = a.gap;
    *tampered_seq = a.tampered_seq;
    *tsa_failing_s = ops_audit__failing_s(&a);
}

int hub_ops_audit_route(const hub_ops_source_t *src, const hub_http_request_t *req,
                        hub_http_response_t *resp)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        hub_http_response_header(resp, "Allow", "GET");
        hub_http_respond_json_error(resp, 405, "use GET");
        return 405;
    }
    hub_ops_audit_t a;
    ops_audit__get(src, &a);
    if (!a.on) {
        hub_http_respond_json_error(resp, 404, "the audit log is off (audit = no in hubd.conf)");
        return 404;
    }
    char hash[65], key[65], anchor[96];
    sodium_bin2hex(hash, sizeof hash, a.head.hash, 32);
    sodium_bin2hex(key, sizeof key, a.sign_public, 32);
    snprintf(anchor, sizeof anchor, "%" PRIu64 ":%s", a.head.seq, hash);
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "seq", a.seq);
    hub_jsonw_key(&w, "checkpoint");
    if (a.head.seq) {
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_u64(&w, "seq", a.head.seq);
        hub_jsonw_kv_u64(&w, "time_us", a.head.time_us);
        hub_jsonw_kv_str(&w, "hash", hash);
        hub_jsonw_kv_str(&w, "anchor", anchor);
        hub_jsonw_object_end(&w);
    } else {
        hub_jsonw_null(&w);
    }
    hub_jsonw_kv_str(&w, "sign_public_key", key);
    hub_jsonw_kv_u64(&w, "gap_records", a.gap);
    hub_jsonw_kv_u64(&w, "start_check_failed_seq", a.tampered_seq);
    hub_jsonw_key(&w, "timestamping");
    if (a.tsa_on) {
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_u64(&w, "tokens", a.tsa.tokens);
        hub_jsonw_kv_u64(&w, "failures", a.tsa.failures);
        hub_jsonw_kv_u64(&w, "last_stamped_seq", a.tsa.last_stamped_seq);
        hub_jsonw_kv_u64(&w, "pending_seq", a.tsa.pending_seq);
        hub_jsonw_kv_u64(&w, "failing_s", ops_audit__failing_s(&a));
        hub_jsonw_kv_str(&w, "last_error", a.tsa.last_error);
        hub_jsonw_object_end(&w);
    } else {
        hub_jsonw_null(&w);
    }
    hub_jsonw_object_end(&w);
    char *text;
    size_t len;
    if (hub_jsonw_finish(&w, &text, &len) != 0) {
        hub_http_respond_json_error(resp, 500, "could not build the answer (out of memory)");
        return 500;
    }
    hub_http_respond(resp, 200, "application/json", text, len);
    free(text);
    return 200;
}
