/* hub_ops_audit — the audit log's part of the operator surface: the route
 * GET /api/v1/audit/head (the last durable checkpoint, so that an outside
 * witness can keep it and later run `hubctl audit verify --anchor SEQ:HASH`),
 * its metrics, and its figures for the alarms (audit_log_cut,
 * audit_tsa_unreachable). Reads the hub through hub_ops_source_t.audit, on
 * the loop thread, like the rest of hub_ops.
 */
#ifndef HUB_OPS_AUDIT_H
#define HUB_OPS_AUDIT_H

#include "hub_http.h"
#include "hub_metrics.h"
#include "hub_ops_source.h"

typedef struct {
    hub_metric_family_t *checkpoint_seq, *gap, *tsa_tokens, *tsa_failures, *tsa_failing_s,
        *tsa_pending;
} hub_ops_audit_metrics_t;

int hub_ops_audit_metrics_new(hub_metrics_t *m, hub_ops_audit_metrics_t *out);
void hub_ops_audit_metrics_set(const hub_ops_source_t *src, const hub_ops_audit_metrics_t *f);
/* Figures for hub_alarms_set_audit(). */
void hub_ops_audit_alarm_figures(const hub_ops_source_t *src, uint64_t *gap,
                                 uint64_t *tsa_failing_s, uint64_t *tampered_seq);
/* Answers GET /api/v1/audit/head; returns the HTTP status sent. */
int hub_ops_audit_route(const hub_ops_source_t *src, const hub_http_request_t *req,
                        hub_http_response_t *resp);

#endif
