#include "hub_delegation.h"
#include "hub_ctype.h"
#include "hub_error.h"
#include "hub_fsguard.h"
#include "hub_id.h"
#include "hub_map.h"
#include "hub_policy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct hub_delegation_rule {
    char key[HUB_MEMBER_ID_MAX + HUB_SERVICE_MAX + 2]; /* "AUTHORITY/SERVICE/VERSION" */
    char authority[HUB_MEMBER_ID_MAX + 1];
    const char *service; /* into key */
    char delegate[HUB_MEMBER_ID_MAX + 1];
    size_t n_procedures;
    char procedures[HUB_DELEGATION_PROCEDURES_MAX][HUB_PROCEDURE_CODE_MAX];
    const char *procedure_ptrs[HUB_DELEGATION_PROCEDURES_MAX];
    uint64_t procedure_carried[HUB_DELEGATION_PROCEDURES_MAX];
    uint64_t from_us, until_us;
    unsigned line;
    uint64_t carried, last_used_us;
    struct hub_delegation_rule *next; /* other rules of the same authority/service */
};

struct hub_delegations {
    hub_map_t *rules;                /* "AUTHORITY/SERVICE/VERSION" -> rule list */
    hub_delegation_rule_t **ordered; /* file order, for listing */
    size_t count;
};

static void delegation__free_rules(hub_delegations_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        free(self->ordered[i]);
    free(self->ordered);
    self->ordered = NULL;
    self->count = 0;
    hub_map_destroy(&self->rules);
}

static bool delegation__code_valid(const char *code)
{
    size_t n = strlen(code);
    if (n == 0 || n >= HUB_PROCEDURE_CODE_MAX)
        return false;
    for (const char *c = code; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_')
            return false;
    return true;
}

static bool delegation__names(const hub_delegation_rule_t *r, const char *procedure, size_t *at)
{
    for (size_t i = 0; procedure && i < r->n_procedures; i++) {
        if (!strcmp(r->procedures[i], procedure)) {
            if (at)
                *at = i;
            return true;
        }
    }
    return false;
}

/* Whether two rules of one authority/service could both apply to one envelope. */
static const char *delegation__overlap(const hub_delegation_rule_t *a,
                                       const hub_delegation_rule_t *b)
{
    if (!(a->from_us < b->until_us && b->from_us < a->until_us))
        return NULL;
    if (a->n_procedures == 0 && b->n_procedures == 0)
        return "the whole service";
    for (size_t i = 0; i < a->n_procedures; i++)
        if (delegation__names(b, a->procedures[i], NULL))
            return a->procedures[i];
    return NULL;
}

/* "CODE,CODE" into r->procedures; false with a sentence in err. */
static bool delegation__parse_procedures(hub_delegation_rule_t *r, const char *list,
                                         const char *path, unsigned lineno, char *err,
                                         size_t err_size)
{
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", list);
    char *save = NULL;
    for (char *code = strtok_r(copy, ",", &save); code; code = strtok_r(NULL, ",", &save)) {
        if (!delegation__code_valid(code)) {
            snprintf(err, err_size,
                     "%s:%u: '%s' is not a procedure code (1-31 of A-Z a-z 0-9 . - _); write "
                     "'procedure CODE[,CODE...]'",
                     path, lineno, code);
            return false;
        }
        if (delegation__names(r, code, NULL))
            continue;
        if (r->n_procedures == HUB_DELEGATION_PROCEDURES_MAX) {
            snprintf(err, err_size, "%s:%u: at most %d procedures per rule; split the rule", path,
                     lineno, HUB_DELEGATION_PROCEDURES_MAX);
            return false;
        }
        snprintf(r->procedures[r->n_procedures], HUB_PROCEDURE_CODE_MAX, "%s", code);
        r->procedure_ptrs[r->n_procedures] = r->procedures[r->n_procedures];
        r->n_procedures++;
    }
    if (r->n_procedures == 0) {
        snprintf(err, err_size, "%s:%u: 'procedure' needs at least one code", path, lineno);
        return false;
    }
    return true;
}

static int delegation__parse_line(hub_delegations_t *self, char *line, const char *path,
                                  unsigned lineno, char *err, size_t err_size)
{
    char *words[10];
    int n = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " \t", &save); w && n < 10; w = strtok_r(NULL, " \t", &save))
        words[n++] = w;
    if (n == 0 || words[0][0] == '#')
        return 0;
    hub_delegation_rule_t *r = calloc(1, sizeof *r);
    if (!r)
        return HUB_ENOMEM;
    const char *service = NULL;
    if (n < 4 || strcmp(words[0], "delegate") || strcmp(words[2], "->") ||
        strlen(words[1]) >= sizeof r->key ||
        !hub_member_service_split(words[1], r->authority, &service) ||
        !hub_member_id_valid(words[3])) {
        snprintf(err, err_size,
                 "%s:%u: expected 'delegate AUTHORITY-ID/SERVICE/VERSION -> DELEGATE-ID "
                 "[procedure CODE[,CODE...]] [from DATE] [until DATE]'",
                 path, lineno);
        free(r);
        return HUB_EPARSE;
    }
    snprintf(r->key, sizeof r->key, "%s", words[1]);
    r->service = r->key + (service - words[1]);
    snprintf(r->delegate, sizeof r->delegate, "%s", words[3]);
    r->until_us = UINT64_MAX;
    r->line = lineno;
    int rc = 0;
    for (int i = 4; rc == 0 && i < n; i += 2) {
        bool from = !strcmp(words[i], "from"), until = !strcmp(words[i], "until");
        bool procs = !strcmp(words[i], "procedure") || !strcmp(words[i], "procedures");
        if (i + 1 >= n || (!from && !until && !procs)) {
            snprintf(err, err_size,
                     "%s:%u: expected 'procedure CODE[,CODE...]', 'from YYYY-MM-DD' or "
                     "'until YYYY-MM-DD' after the delegate",
                     path, lineno);
            rc = HUB_EPARSE;
        } else if (procs) {
            if (!delegation__parse_procedures(r, words[i + 1], path, lineno, err, err_size))
                rc = HUB_EPARSE;
        } else if (hub_policy_parse_date(words[i + 1], 0, until,
                                         from ? &r->from_us : &r->until_us) != 0) {
            snprintf(err, err_size, "%s:%u: expected 'from YYYY-MM-DD' or 'until YYYY-MM-DD'", path,
                     lineno);
            rc = HUB_EPARSE;
        }
    }
    if (rc == 0 && !strcmp(r->authority, r->delegate)) {
        snprintf(err, err_size, "%s:%u: %s cannot delegate to itself", path, lineno, r->authority);
        rc = HUB_EPARSE;
    }
    hub_delegation_rule_t *head = rc == 0 ? hub_map_get(self->rules, r->key) : NULL;
    for (hub_delegation_rule_t *o = head; o && rc == 0; o = o->next) {
        const char *what = delegation__overlap(r, o);
        if (what) {
            snprintf(err, err_size,
                     "%s:%u: %s is already delegated for %s in that period at line %u; one "
                     "delegate at a time",
                     path, lineno, r->key, what, o->line);
            rc = HUB_EPARSE;
        }
    }
    hub_delegation_rule_t **grown = NULL;
    if (rc == 0) {
        grown = realloc(self->ordered, (self->count + 1) * sizeof *grown);
        if (!grown)
            rc = HUB_ENOMEM;
        else
            self->ordered = grown;
    }
    if (rc == 0) {
        r->next = head;
        if (hub_map_put(self->rules, r->key, r) != 0)
            rc = HUB_ENOMEM;
    }
    if (rc != 0) {
        free(r);
        return rc;
    }
    self->ordered[self->count++] = r;
    return 0;
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
    char line[4096];
    unsigned lineno = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        rc = delegation__parse_line(self, line, path, lineno, err, err_size);
    }
    fclose(f);
    /* No chains: a delegate must not itself have delegated the service. */
    for (size_t i = 0; rc == 0 && i < self->count; i++) {
        const hub_delegation_rule_t *d = self->ordered[i];
        char chained[HUB_MEMBER_ID_MAX + HUB_SERVICE_MAX + 2];
        snprintf(chained, sizeof chained, "%s/%s", d->delegate, d->service);
        const hub_delegation_rule_t *c = hub_map_get(self->rules, chained);
        if (c) {
            snprintf(err, err_size,
                     "%s:%u: %s delegates %s again (line %u); delegate directly to the final "
                     "member",
                     path, c->line, d->delegate, d->service, d->line);
            rc = HUB_EPARSE;
        }
    }
    if (rc != 0) {
        if (self)
            delegation__free_rules(self);
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
    delegation__free_rules(*self_p);
    free(*self_p);
    *self_p = NULL;
}

const hub_delegation_rule_t *hub_delegations_match(const hub_delegations_t *self,
                                                   const char *authority, const char *service,
                                                   const char *procedure, uint64_t now_us)
{
    if (!self || !authority || !service)
        return NULL;
    char key[HUB_MEMBER_ID_MAX + HUB_SERVICE_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", authority, service);
    const hub_delegation_rule_t *whole = NULL;
    for (const hub_delegation_rule_t *d = hub_map_get(self->rules, key); d; d = d->next) {
        if (now_us < d->from_us || now_us >= d->until_us)
            continue;
        if (d->n_procedures == 0)
            whole = d;
        else if (procedure && *procedure && delegation__names(d, procedure, NULL))
            return d;
    }
    return whole;
}

const char *hub_delegations_find(const hub_delegations_t *self, const char *authority,
                                 const char *service, uint64_t now_us, unsigned *line)
{
    const hub_delegation_rule_t *d = hub_delegations_match(self, authority, service, NULL, now_us);
    if (d && line)
        *line = d->line;
    return d ? d->delegate : NULL;
}

const char *hub_delegation_rule_delegate(const hub_delegation_rule_t *rule)
{
    return rule ? rule->delegate : NULL;
}

unsigned hub_delegation_rule_line(const hub_delegation_rule_t *rule)
{
    return rule ? rule->line : 0;
}

void hub_delegations_note_use(hub_delegations_t *self, const hub_delegation_rule_t *rule,
                              const char *procedure, uint64_t now_us)
{
    if (!self || !rule)
        return;
    /* The rule belongs to self: the table is not shared, only read-only to
     * the matchers. */
    hub_delegation_rule_t *r = (hub_delegation_rule_t *)rule;
    r->carried++;
    r->last_used_us = now_us;
    size_t at;
    if (delegation__names(r, procedure, &at))
        r->procedure_carried[at]++;
}

bool hub_delegation_rule_names(const hub_delegation_rule_t *rule, const char *procedure)
{
    return rule && delegation__names(rule, procedure, NULL);
}

void hub_delegations_note(hub_delegations_t *self, const char *authority, const char *service,
                          const char *procedure, const char *delegate, uint64_t now_us)
{
    const hub_delegation_rule_t *r =
        hub_delegations_match(self, authority, service, procedure, now_us);
    if (r && delegate && !strcmp(r->delegate, delegate))
        hub_delegations_note_use(self, r, procedure, now_us);
}

size_t hub_delegations_count(const hub_delegations_t *self)
{
    return self ? self->count : 0;
}

int hub_delegations_info(const hub_delegations_t *self, size_t i, hub_delegation_info_t *out)
{
    if (!self || !out || i >= self->count)
        return HUB_ENOTFOUND;
    const hub_delegation_rule_t *r = self->ordered[i];
    out->authority = r->authority;
    out->service = r->service;
    out->delegate = r->delegate;
    out->n_procedures = r->n_procedures;
    out->procedures = r->procedure_ptrs;
    out->procedure_carried = r->procedure_carried;
    out->from_us = r->from_us;
    out->until_us = r->until_us;
    out->line = r->line;
    out->carried = r->carried;
    out->last_used_us = r->last_used_us;
    return 0;
}

int hub_delegation_info_key(const hub_delegation_info_t *r, char *out, size_t size)
{
    if (!r || !out || !size)
        return HUB_EINVAL;
    int n = snprintf(out, size, "%s/%s -> %s %llu %llu", r->authority, r->service, r->delegate,
                     (unsigned long long)r->from_us, (unsigned long long)r->until_us);
    for (size_t i = 0; n >= 0 && (size_t)n < size && i < r->n_procedures; i++)
        n += snprintf(out + n, size - (size_t)n, "%c%s", i ? ',' : ' ', r->procedures[i]);
    return n >= 0 && (size_t)n < size ? 0 : HUB_EINVAL;
}

static bool delegation__same_rule(const hub_delegation_rule_t *a, const hub_delegation_rule_t *b)
{
    if (strcmp(a->key, b->key) || strcmp(a->delegate, b->delegate) || a->from_us != b->from_us ||
        a->until_us != b->until_us || a->n_procedures != b->n_procedures)
        return false;
    for (size_t i = 0; i < a->n_procedures; i++)
        if (strcmp(a->procedures[i], b->procedures[i]))
            return false;
    return true;
}

void hub_delegations_carry_counts(hub_delegations_t *next, const hub_delegations_t *prev)
{
    if (!next || !prev)
        return;
    for (size_t i = 0; i < next->count; i++) {
        hub_delegation_rule_t *n = next->ordered[i];
        for (const hub_delegation_rule_t *p = hub_map_get(prev->rules, n->key); p; p = p->next) {
            if (delegation__same_rule(n, p)) {
                n->carried = p->carried;
                n->last_used_us = p->last_used_us;
                memcpy(n->procedure_carried, p->procedure_carried, sizeof n->procedure_carried);
                break;
            }
        }
    }
}

int hub_delegation_procedure_of(const char *content_type, char *out, const char **why)
{
    int found = 0;
    out[0] = '\0';
    const char *cursor = content_type;
    hub_ct_part_t part;
    if (!hub_ct_next(&cursor, &part))
        return 0;
    /* After the media type, every parameter: quoted strings may hold ';'
     * and look-alike parameters, and hub_ct_next skips them whole. */
    while (hub_ct_next(&cursor, &part)) {
        if (!hub_ct_named(&part, "lth-procedure"))
            continue;
        if (found) {
            *why = "the content type gives the lth-procedure parameter twice; give it once";
            return HUB_EPARSE;
        }
        char value[HUB_PROCEDURE_CODE_MAX + 1];
        bool too_long = false;
        size_t vlen = hub_ct_value(&part, value, sizeof value, &too_long);
        if (too_long || !delegation__code_valid(value)) {
            *why = "the content type's lth-procedure parameter is not a procedure code (1-31 "
                   "of A-Z a-z 0-9 . - _)";
            return HUB_EPARSE;
        }
        memcpy(out, value, vlen + 1); /* delegation__code_valid: vlen < HUB_PROCEDURE_CODE_MAX */
        found = 1;
    }
    return found;
}
