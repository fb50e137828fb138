/* The check of the whole audit log when hubd starts: hub_audit_open()
 * reads only the last file and compares its end with the store's anchor;
 * this reads every file (chain, checkpoint signatures, key rotations, the
 * time-stamp tokens the log names) on a worker thread, up to the seq open
 * found, while the hub serves. A failure is logged with what and where, and
 * raises the critical alarm audit_log_tampered. */
#include "hub_core_internal.h"

#include <inttypes.h>
#include <sodium.h>

typedef struct {
    uv_work_t req;
    hub_server_t *server;
    hub_audit_verify_opts_t opts;
    uint8_t key[32];
    char dir[PATH_MAX];
    char tsa_cert[PATH_MAX];
    hub_audit_verify_report_t report;
    int rc;
    uint64_t started_us;
} audit_start__check_t;

static void audit_start__check_work(uv_work_t *req)
{
    audit_start__check_t *c = req->data;
    c->rc = hub_audit_verify_dir_opts(c->dir, &c->opts, &c->report);
}

static void audit_start__check_done(uv_work_t *req, int status)
{
    audit_start__check_t *c = req->data;
    hub_server_t *self = c->server;
    self->audit_start_check = NULL;
    if (status == UV_ECANCELED) {
        free(c);
        return;
    }
    uint64_t ms = (hub_monotonic_us() - c->started_us) / 1000u;
    if (c->rc == 0 || c->rc == HUB_EAGAIN || c->rc == HUB_ENOENT) {
        HUB_INFO("audit", "audit log checked at start: intact",
                 "dir=%s last_seq=%" PRIu64 " checkpoints=%" PRIu64 " key_rotations=%" PRIu64
                 " timestamps=%" PRIu64 " ms=%" PRIu64,
                 c->dir, c->report.last_seq, c->report.checkpoints, c->report.key_rotations,
                 c->report.timestamps, ms);
    } else {
        self->audit_tampered_seq = c->report.seq ? c->report.seq : 1;
        HUB_ERROR("audit",
                  "audit log check at start FAILED: the log was altered, cut or its tokens "
                  "forged; run `hubctl audit verify` and restore the log from a backup",
                  "dir=%s file=%s line=%" PRIu64 " seq=%" PRIu64 " detail=\"%s\"", c->dir,
                  c->report.file, c->report.line, c->report.seq, c->report.message);
    }
    free(c);
}

void audit_start__check(hub_server_t *self)
{
    if (!self->audit || hub_audit_seq(self->audit) == 0)
        return;
    audit_start__check_t *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->server = self;
    c->req.data = c;
    c->started_us = hub_monotonic_us();
    snprintf(c->dir, sizeof c->dir, "%s", self->cfg.audit_dir);
    memcpy(c->key, self->own_key.sign_public, 32);
    c->opts.hub_sign_public = c->key;
    c->opts.stop_after_seq = hub_audit_seq(self->audit);
    c->opts.early_keys_unknown = true;
    if (self->cfg.audit_tsa_cert[0]) {
        snprintf(c->tsa_cert, sizeof c->tsa_cert, "%s", self->cfg.audit_tsa_cert);
        c->opts.tsa_cert = c->tsa_cert;
    }
    if (uv_queue_work(self->loop, &c->req, audit_start__check_work, audit_start__check_done) != 0) {
        free(c);
        return;
    }
    self->audit_start_check = c;
}

void audit_start__check_end(hub_server_t *self)
{
    if (!self->audit_start_check)
        return;
    uv_cancel((uv_req_t *)&((audit_start__check_t *)self->audit_start_check)->req);
    while (self->audit_start_check)
        uv_run(self->loop, UV_RUN_ONCE);
}
