#include "tkaudit.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#define TK_AUDIT_COPY(field) snprintf(c->field, sizeof c->field, "%s", r->field ? r->field : "")

int tk_audit_collect(const hub_audit_record_t *r, const char *file, uint64_t line, void *user)
{
    (void)file;
    (void)line;
    tk_audit_recs_t *all = user;
    ck_assert_uint_lt(all->n, sizeof all->recs / sizeof all->recs[0]);
    tk_audit_rec_t *c = &all->recs[all->n++];
    c->event = r->event;
    TK_AUDIT_COPY(message_id);
    TK_AUDIT_COPY(sender);
    TK_AUDIT_COPY(receiver);
    TK_AUDIT_COPY(service);
    TK_AUDIT_COPY(purpose);
    TK_AUDIT_COPY(dossier);
    TK_AUDIT_COPY(outcome);
    TK_AUDIT_COPY(reason);
    c->has_digest = r->has_digest;
    memcpy(c->digest, r->digest, sizeof c->digest);
    c->signature_len = r->signature_len;
    return 0;
}

void tk_audit_find_service(const char *dir, const char *service, tk_audit_recs_t *out)
{
    out->n = 0;
    hub_audit_filter_t f = {.service = service};
    ck_assert_int_eq(hub_audit_find(dir, &f, tk_audit_collect, out), 0);
}
