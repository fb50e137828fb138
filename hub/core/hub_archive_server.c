/* hub_archive_server.c — the server's side of the message archive: opening
 * it with the hub's keys, its maintenance (expiry, rotation by age) on a
 * worker thread, and what the commit worker archives after each commit
 * (stored envelopes) and for online-only deliveries. */
#include "hub_core_internal.h"

/* The message archive (archive_dir): opened with the hub's signing key;
 * refused, with the reason, when its key file is not a 0600 file of 32
 * bytes. */
int archive_server__open(hub_server_t *self, char *err, size_t err_size)
{
    if (!self->own_key.has_sign) {
        snprintf(err, err_size,
                 "%s has no signing key, which the message archive needs; regenerate the "
                 "hub's keys with 'hubctl keygen'",
                 self->cfg.key_file);
        return HUB_EINVAL;
    }
    hub_archive_config_t acfg;
    memset(&acfg, 0, sizeof acfg);
    int rc = hub_archive_key_read(self->cfg.archive_key_file, &acfg.key, err, err_size);
    if (rc == 0) {
        memcpy(acfg.sign_secret, self->own_key.sign_secret, 64);
        memcpy(acfg.sign_public, self->own_key.sign_public, 32);
        acfg.retention_days = self->cfg.archive_retention_days;
        rc = hub_archive_open(self->cfg.archive_dir, &acfg, &self->archive, err, err_size);
    }
    if (rc == 0) {
        char id[17];
        hub_archive_key_id_hex(acfg.key.id, id);
        HUB_INFO("archive", "message archive on", "dir=%s key_id=%s retention_days=%u",
                 self->cfg.archive_dir, id, (unsigned)self->cfg.archive_retention_days);
    }
    sodium_memzero(&acfg, sizeof acfg);
    return rc;
}

/* Expiry and time-based rotation of the archive, off the loop thread. */
typedef struct {
    uv_work_t req;
    hub_server_t *server;
    int rc;
} archive_server__job_t;

static void archive_server__maintain_work(uv_work_t *req)
{
    archive_server__job_t *job = req->data;
    job->rc = hub_archive_maintain(job->server->archive, NULL);
}

static void archive_server__maintain_done(uv_work_t *req, int status)
{
    archive_server__job_t *job = req->data;
    (void)status;
    job->server->archive_busy = false;
    if (job->rc != 0)
        HUB_ERROR("archive", "archive maintenance failed; it is tried again in a minute",
                  "error=\"%s\"", hub_strerror(job->rc));
    free(job);
}

void archive_server__maintain_start(hub_server_t *self)
{
    archive_server__job_t *job = calloc(1, sizeof *job);
    if (!job)
        return;
    job->server = self;
    job->req.data = job;
    if (uv_queue_work(self->loop, &job->req, archive_server__maintain_work,
                      archive_server__maintain_done) != 0) {
        free(job);
        return;
    }
    self->archive_busy = true;
}

/* ---- the commit worker's side ------------------------------------------------ */

/* Archives e; the last error of the call stays in *rc. */
static void archive_server__put(hub_archive_t *archive, const hub_archive_entry_t *e, int *rc)
{
    int r = hub_archive_put(archive, e);
    if (r != 0)
        *rc = r;
}

/* Flushes what n puts added (none: nothing to do); rc, or the flush's error. */
static int archive_server__flush(hub_archive_t *archive, size_t n, int rc)
{
    int r = n > 0 ? hub_archive_flush(archive) : 0;
    return r != 0 ? r : rc;
}

int archive_server__commit(hub_archive_t *archive, const core__commit_t *job)
{
    if (!archive || job->append_rc != 0)
        return 0;
    int rc = 0;
    size_t n = 0;
    for (size_t i = 0; i < job->n_items; i++) {
        const core__pending_t *p = &job->items[i];
        if (p->verdict != 0 || job->outcomes[i] != HUB_STORE_OK)
            continue;
        hub_archive_entry_t e = {
            .message_id = p->msg.message_id,
            .sender = p->msg.sender,
            .receiver = p->msg.receiver,
            .service = p->msg.service,
            .hub_seq = p->msg.seq,
            .accepted_at_us = p->msg.accepted_at_us,
            .envelope = p->bytes,
            .envelope_len = p->msg.envelope_len,
        };
        archive_server__put(archive, &e, &rc);
        n++;
    }
    return archive_server__flush(archive, n, rc);
}

int archive_server__online(hub_archive_t *archive, const core__auditq_t *q, size_t n)
{
    if (!archive)
        return 0;
    int rc = 0;
    size_t put = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i].event != HUB_AUDIT_ACCEPTED || !q[i].has_evidence || !q[i].ev.archive ||
            !q[i].ev.bytes)
            continue;
        hub_archive_entry_t e = {
            .message_id = q[i].message_id,
            .sender = q[i].sender,
            .receiver = q[i].receiver,
            .service = q[i].service,
            .hub_seq = 0, /* online-only: never stored */
            .accepted_at_us = q[i].time_us,
            .envelope = q[i].ev.bytes,
            .envelope_len = q[i].ev.len,
        };
        archive_server__put(archive, &e, &rc);
        put++;
    }
    return archive_server__flush(archive, put, rc);
}
