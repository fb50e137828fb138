/* hub_certdir.c — a directory of member certificates: every file checked
 * against the CA and CRL, one valid certificate kept per member (the newest),
 * and what the hub needs from it (the key directory, the next time a
 * certificate starts or ends, those about to expire). */
#include "hub_cert_internal.h"
#include "hub_error.h"
#include "hub_fsguard.h"
#include "hub_map.h"
#include "hub_vec.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* A directory of member certificates                                        */

struct hub_certdir {
    hub_cert_info_t *certs;
    size_t count;
    size_t valid;
    hub_cert_info_t ca;
    uint64_t crl_this_us, crl_next_us;
    hub_crl_id_t crl_id;
    uint64_t next_change_us;
};

static int certdir__name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is b newer than a (the later notBefore, then the higher serial)? */
static bool certdir__newer(const hub_cert_info_t *b, const hub_cert_info_t *a)
{
    if (b->not_before_us != a->not_before_us)
        return b->not_before_us > a->not_before_us;
    size_t la = strlen(a->serial), lb = strlen(b->serial);
    return lb != la ? lb > la : strcmp(b->serial, a->serial) > 0;
}

/* Among valid certificates: one per member (the newest wins), and no CURVE
 * key shared between members (all that share one are refused). */
static int certdir__settle(hub_certdir_t *self)
{
    hub_map_t *by_member = hub_map_new(), *by_key = hub_map_new();
    int rc = by_member && by_key ? 0 : HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < self->count; i++) {
        hub_cert_info_t *c = &self->certs[i];
        if (c->status != HUB_CERT_VALID)
            continue;
        hub_cert_info_t *prev = hub_map_get(by_member, c->keys.member_id);
        hub_cert_info_t *old = c, *winner = prev;
        if (!prev || certdir__newer(c, prev)) {
            old = prev;
            winner = c;
            if (hub_map_put(by_member, c->keys.member_id, c) != 0)
                rc = HUB_ENOMEM;
        }
        if (old) {
            old->status = HUB_CERT_SUPERSEDED;
            hub_errf(old->reason, sizeof old->reason,
                     "%s (serial %s) is newer for the same member; revoke this one with "
                     "'hubctl cert revoke %s --serial %s'",
                     winner->file, winner->serial, old->keys.member_id, old->serial);
        }
    }
    for (size_t i = 0; rc == 0 && i < self->count; i++) {
        hub_cert_info_t *c = &self->certs[i];
        if (c->status != HUB_CERT_VALID && c->status != HUB_CERT_DUPLICATE_KEY)
            continue;
        hub_cert_info_t *first = hub_map_get(by_key, c->keys.curve_public);
        if (!first) {
            if (hub_map_put(by_key, c->keys.curve_public, c) != 0)
                rc = HUB_ENOMEM;
            continue;
        }
        hub_cert_info_t *pair[2] = {first, c};
        for (int k = 0; k < 2; k++) {
            if (k == 0 && first->status == HUB_CERT_DUPLICATE_KEY)
                continue; /* keeps naming the member it met first */
            pair[k]->status = HUB_CERT_DUPLICATE_KEY;
            hub_errf(pair[k]->reason, sizeof pair[k]->reason,
                     "%s's certificate %s gives the same CURVE key; each member needs its own "
                     "key: revoke the wrong one",
                     pair[1 - k]->keys.member_id, pair[1 - k]->file);
        }
    }
    hub_map_destroy(&by_member);
    hub_map_destroy(&by_key);
    return rc;
}

int hub_certdir_load(const char *ca_cert_path, const char *crl_path, const char *certs_dir,
                     uint64_t now_us, hub_certdir_t **out, char *err, size_t err_size)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!certs_dir) {
        hub_errf(err, err_size, "no certificate directory");
        return HUB_EINVAL;
    }
    int rc = hub_fsguard_check(certs_dir, "certificate directory", err, err_size);
    if (rc != 0)
        return rc;
    cert__trust_t t;
    rc = cert_verify__trust_load(ca_cert_path, crl_path, now_us, &t, err, err_size);
    if (rc != 0)
        return rc;
    DIR *d = opendir(certs_dir);
    if (!d) {
        int e = errno;
        hub_errf(err, err_size, "cannot open certificate directory %s: %s", certs_dir, strerror(e));
        cert_verify__trust_free(&t);
        return e == ENOENT ? HUB_ENOENT : HUB_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 4 || strcmp(de->d_name + len - 4, ".crt") != 0)
            continue;
        if ((rc = HUB_VEC_RESERVE(names, n, cap, 32)) != 0)
            break;
        if (!(names[n] = strdup(de->d_name)))
            rc = HUB_ENOMEM;
        else
            n++;
    }
    closedir(d);
    hub_certdir_t *self = rc == 0 ? calloc(1, sizeof *self) : NULL;
    if (rc == 0 && (!self || (n && !(self->certs = calloc(n, sizeof *self->certs)))))
        rc = HUB_ENOMEM;
    if (rc == HUB_ENOMEM)
        hub_errf(err, err_size, "out of memory");
    if (rc == 0) {
        /* names is NULL when the directory holds no certificate, and qsort
         * must not be given NULL even for zero elements. */
        if (n > 1)
            qsort(names, n, sizeof *names, certdir__name_cmp);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            char path[PATH_MAX];
            if ((rc = cert__path(path, certs_dir, names[i], err, err_size)) != 0)
                break;
            cert_verify__check_path(&t, path, now_us, &self->certs[i], NULL, NULL, 0);
            self->count++;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc != 0) {
        hub_certdir_destroy(&self);
        cert_verify__trust_free(&t);
        return rc;
    }
    if (certdir__settle(self) != 0) {
        hub_errf(err, err_size, "out of memory");
        hub_certdir_destroy(&self);
        cert_verify__trust_free(&t);
        return HUB_ENOMEM;
    }
    self->ca = t.ca_info;
    self->crl_this_us = t.crl_this_us;
    self->crl_next_us = t.crl_next_us;
    self->crl_id = t.crl_id;
    self->next_change_us = self->ca.not_after_us;
    for (size_t i = 0; i < self->count; i++) {
        const hub_cert_info_t *c = &self->certs[i];
        uint64_t at = UINT64_MAX;
        if (c->status == HUB_CERT_VALID || c->status == HUB_CERT_DUPLICATE_KEY)
            at = c->not_after_us;
        else if (c->status == HUB_CERT_NOT_YET_VALID)
            at = c->not_before_us;
        if (at > now_us && at < self->next_change_us)
            self->next_change_us = at;
        self->valid += c->status == HUB_CERT_VALID;
    }
    cert_verify__trust_free(&t);
    *out = self;
    return 0;
}

void hub_certdir_destroy(hub_certdir_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->certs);
    free(*self_p);
    *self_p = NULL;
}

size_t hub_certdir_count(const hub_certdir_t *self) { return self ? self->count : 0; }

const hub_cert_info_t *hub_certdir_at(const hub_certdir_t *self, size_t index)
{
    return self && index < self->count ? &self->certs[index] : NULL;
}

size_t hub_certdir_valid_count(const hub_certdir_t *self) { return self ? self->valid : 0; }

const hub_cert_info_t *hub_certdir_ca(const hub_certdir_t *self)
{
    return self ? &self->ca : NULL;
}

void hub_certdir_crl_times(const hub_certdir_t *self, uint64_t *this_update_us,
                           uint64_t *next_update_us)
{
    if (this_update_us)
        *this_update_us = self ? self->crl_this_us : 0;
    if (next_update_us)
        *next_update_us = self ? self->crl_next_us : 0;
}

void hub_certdir_crl_id(const hub_certdir_t *self, hub_crl_id_t *out)
{
    if (!out)
        return;
    if (self)
        *out = self->crl_id;
    else
        memset(out, 0, sizeof *out);
}

uint64_t hub_certdir_next_change_us(const hub_certdir_t *self)
{
    return self ? self->next_change_us : UINT64_MAX;
}

int hub_certdir_keydir(const hub_certdir_t *self, hub_keydir_t **out, char *err,
                       size_t err_size)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!self)
        return HUB_EINVAL;
    hub_keypair_t *entries = self->valid ? calloc(self->valid, sizeof *entries) : NULL;
    if (self->valid && !entries) {
        hub_errf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    /* self->valid counts the VALID certificates, so n never reaches it
     * early; the bound keeps the writes inside entries even so. */
    size_t n = 0;
    for (size_t i = 0; i < self->count && n < self->valid; i++)
        if (self->certs[i].status == HUB_CERT_VALID)
            entries[n++] = self->certs[i].keys;
    int rc = hub_keydir_from_entries(entries, n, out, err, err_size);
    free(entries);
    return rc;
}

size_t hub_certdir_visit_expiring(const hub_certdir_t *self, uint64_t now_us, uint64_t within_us,
                                  hub_cert_info_cb cb, void *user)
{
    if (!self)
        return 0;
    uint64_t horizon = UINT64_MAX - now_us < within_us ? UINT64_MAX : now_us + within_us;
    size_t visited = 0;
    if (self->ca.not_after_us > now_us && self->ca.not_after_us <= horizon) {
        visited++;
        if (cb && cb(&self->ca, user) != 0)
            return visited;
    }
    for (size_t i = 0; i < self->count; i++) {
        const hub_cert_info_t *c = &self->certs[i];
        if (c->status != HUB_CERT_VALID || c->not_after_us <= now_us || c->not_after_us > horizon)
            continue;
        visited++;
        if (cb && cb(c, user) != 0)
            break;
    }
    return visited;
}

