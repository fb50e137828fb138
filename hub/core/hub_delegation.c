#include "hub_delegation.h"
#include "hub_error.h"
#include "hub_fsguard.h"
#include "hub_id.h"
#include "hub_map.h"
#include "hub_policy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hub__deleg {
    char delegate[HUB_MEMBER_ID_MAX + 1];
    uint64_t from_us, until_us;
    unsigned line;
    struct hub__deleg *next; /* other periods of the same authority/service */
} hub__deleg_t;

struct hub_delegations {
    hub_map_t *rules; /* "AUTHORITY/SERVICE/VERSION" -> hub__deleg_t list */
    size_t count;
};

static void hub__free_rules(hub_delegations_t *self)
{
    size_t cursor = 0;
    void *value;
    while (self->rules && hub_map_next(self->rules, &cursor, NULL, &value)) {
        for (hub__deleg_t *d = value, *next; d; d = next) {
            next = d->next;
            free(d);
        }
    }
    hub_map_destroy(&self->rules);
}

int hub_delegations_load(const char *path, hub_delegations_t **out, char *err, size_t err_size)
{
    *out = NULL;
    int guard = hub_fsguard_check(path, "delegations file", err, err_size);
    if (guard != 0)
        return guard;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_size, "cannot read delegations file %s: %s", path, strerror(errno));
        return errno == ENOENT ? HUB_ENOENT : HUB_EIO;
    }
    hub_delegations_t *self = calloc(1, sizeof *self);
    int rc = self && (self->rules = hub_map_new()) ? 0 : HUB_ENOMEM;
    char line[2048];
    unsigned lineno = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *words[8];
        int n = 0;
        char *save = NULL;
        for (char *w = strtok_r(line, " \t", &save); w && n < 8; w = strtok_r(NULL, " \t", &save))
            words[n++] = w;
        if (n == 0 || words[0][0] == '#')
            continue;
        char authority[HUB_MEMBER_ID_MAX + 1];
        const char *service = NULL;
        if (n < 4 || strcmp(words[0], "delegate") || strcmp(words[2], "->") ||
            !hub_member_service_split(words[1], authority, &service) || !hub_member_id_valid(words[3])) {
            snprintf(err, err_size,
                     "%s:%u: expected 'delegate AUTHORITY-ID/SERVICE/VERSION -> DELEGATE-ID "
                     "[from DATE] [until DATE]'",
                     path, lineno);
            rc = HUB_EPARSE;
            break;
        }
        hub__deleg_t *d = calloc(1, sizeof *d);
        if (!d) {
            rc = HUB_ENOMEM;
            break;
        }
        snprintf(d->delegate, sizeof d->delegate, "%s", words[3]);
        d->until_us = UINT64_MAX;
        d->line = lineno;
        for (int i = 4; rc == 0 && i < n; i += 2) {
            bool from = !strcmp(words[i], "from"), until = !strcmp(words[i], "until");
            if ((!from && !until) || i + 1 >= n ||
                hub_policy_parse_date(words[i + 1], 0, until, from ? &d->from_us : &d->until_us) !=
                    0) {
                snprintf(err, err_size, "%s:%u: expected 'from YYYY-MM-DD' or 'until YYYY-MM-DD'",
                         path, lineno);
                rc = HUB_EPARSE;
            }
        }
        if (rc == 0 && !strcmp(authority, d->delegate)) {
            snprintf(err, err_size, "%s:%u: %s cannot delegate to itself", path, lineno,
                     authority);
            rc = HUB_EPARSE;
        }
        if (rc != 0) {
            free(d);
            break;
        }
        hub__deleg_t *head = hub_map_get(self->rules, words[1]);
        for (hub__deleg_t *o = head; o; o = o->next) {
            if (d->from_us < o->until_us && o->from_us < d->until_us) {
                snprintf(err, err_size,
                         "%s:%u: %s is already delegated for that period at line %u; a service "
                         "has one delegate at a time",
                         path, lineno, words[1], o->line);
                rc = HUB_EPARSE;
            }
        }
        if (rc != 0) {
            free(d);
            break;
        }
        d->next = head;
        if (hub_map_put(self->rules, words[1], d) != 0) {
            free(d);
            rc = HUB_ENOMEM;
            break;
        }
        self->count++;
    }
    fclose(f);
    /* No chains: a delegate must not itself have delegated the service. */
    size_t cursor = 0;
    const char *key;
    void *value;
    while (rc == 0 && hub_map_next(self->rules, &cursor, &key, &value)) {
        char authority[HUB_MEMBER_ID_MAX + 1];
        const char *service = NULL;
        /* Every key was split once already, before it was stored. */
        if (!hub_member_service_split(key, authority, &service))
            continue;
        for (hub__deleg_t *d = value; d && rc == 0; d = d->next) {
            char chained[HUB_MEMBER_ID_MAX + HUB_SERVICE_MAX + 2];
            snprintf(chained, sizeof chained, "%s/%s", d->delegate, service);
            hub__deleg_t *c = hub_map_get(self->rules, chained);
            if (c) {
                snprintf(err, err_size,
                         "%s:%u: %s delegates %s again (line %u); delegate directly to the "
                         "final member",
                         path, c->line, d->delegate, service, d->line);
                rc = HUB_EPARSE;
            }
        }
    }
    if (rc != 0) {
        if (self)
            hub__free_rules(self);
        free(self);
        return rc;
    }
    *out = self;
    return 0;
}

void hub_delegations_destroy(hub_delegations_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub__free_rules(*self_p);
    free(*self_p);
    *self_p = NULL;
}

const char *hub_delegations_find(const hub_delegations_t *self, const char *authority,
                                 const char *service, uint64_t now_us, unsigned *line)
{
    if (!self)
        return NULL;
    char key[HUB_MEMBER_ID_MAX + HUB_SERVICE_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", authority, service);
    for (hub__deleg_t *d = hub_map_get(self->rules, key); d; d = d->next) {
        if (now_us >= d->from_us && now_us < d->until_us) {
            if (line)
                *line = d->line;
            return d->delegate;
        }
    }
    return NULL;
}

size_t hub_delegations_count(const hub_delegations_t *self) { return self ? self->count : 0; }
