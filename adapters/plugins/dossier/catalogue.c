/* catalogue — the national database of administrative procedures (CSDL quốc
 * gia về TTHC, member VN/GOV/VPCP/CSDLTTHC) as a subscriber: it subscribes
 * durably to the city's published procedure list and keeps the newest
 * version, as a text file an operator can read, and answers each
 * publication on catalogue.ack/v1 (proto/DOMAIN.md, "The catalogue as data").
 *
 *   plugin.publisher = VN/GOV/HN-VP/TTHC   whose catalogue.published/v1 to follow
 *   plugin.file = PATH                     written atomically on each change:
 *                                          "version V from PUBLISHER: N procedures",
 *                                          then "CODE<TAB>AUTHORITY<TAB>NAME<TAB>
 *                                          DECISION<TAB>EFFECTIVE" lines
 *
 * A whole catalogue (ProcedureCatalogue) newer than the one held replaces
 * it; an older or repeated one is ignored (publications may arrive late or,
 * after a crash, twice). A change (CatalogueDelta) is applied only on top of
 * the version it names as its base, and only if every change makes sense
 * (an added code not held yet, an amended or repealed one held, a name, an
 * authority, a time limit, an announcing decision); otherwise it is
 * rejected whole, with the reason, and nothing changes. Each whole
 * catalogue taken and each change is answered with a CatalogueAck (the
 * subscriber needs an agreement for PUBLISHER/catalogue.ack/v1).
 */
#include "domain.pb-c.h"
#include "adp_plugin_util.h"
#include "hub_clock.h"
#include "hub_wire.h"
#include "lth_domain.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAT_MAX 4096

typedef struct {
    char code[32];
    char authority[256];
    char name[512];
    char decision[96];
    char effective[16];
} cat_entry_t;

typedef struct {
    const adp_plugin_host_t *host;
    char file[4096];
    char publisher[256];
    uint64_t version;
    cat_entry_t *entries;
    size_t n;
    unsigned long received, ignored, rejected;
} cat_t;

static void cat_copy(char *out, size_t size, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < size; s++)
        out[n++] = *s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s;
    out[n] = '\0';
}

static void cat_entry_from(cat_entry_t *e, const Lth__Domain__V1__Procedure *p)
{
    memset(e, 0, sizeof *e);
    cat_copy(e->code, sizeof e->code, p->code);
    cat_copy(e->authority, sizeof e->authority, p->authority_member_id);
    cat_copy(e->name, sizeof e->name, p->name);
    cat_copy(e->decision, sizeof e->decision, p->decision ? p->decision->number : "");
    if (p->effective_date && p->effective_date->year)
        snprintf(e->effective, sizeof e->effective, "%04u-%02u-%02u",
                 (unsigned)p->effective_date->year % 10000,
                 (unsigned)p->effective_date->month % 100, (unsigned)p->effective_date->day % 100);
}

static cat_entry_t *cat_find(cat_entry_t *entries, size_t n, const char *code)
{
    for (size_t i = 0; code && i < n; i++)
        if (!strcmp(entries[i].code, code))
            return &entries[i];
    return NULL;
}

static int cat_save(cat_t *st, const cat_entry_t *entries, size_t n, uint64_t version,
                    const char *publisher)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", st->file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return HUB_EIO;
    fprintf(f, "version %" PRIu64 " from %s: %zu procedures\n", version, publisher, n);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\t%s\t%s\t%s\t%s\n", entries[i].code, entries[i].authority, entries[i].name,
                entries[i].decision[0] ? entries[i].decision : "-",
                entries[i].effective[0] ? entries[i].effective : "-");
    if (fclose(f) != 0 || rename(tmp, st->file) != 0)
        return HUB_EIO;
    return 0;
}

/* What the file holds, to continue from it after a restart. */
static void cat_read(cat_t *st)
{
    FILE *f = fopen(st->file, "r");
    if (!f)
        return;
    char line[2048];
    unsigned long long v = 0;
    if (fgets(line, sizeof line, f) && sscanf(line, "version %llu", &v) == 1)
        st->version = v;
    while (st->n < CAT_MAX && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *fields[5] = {0};
        char *save = NULL;
        int k = 0;
        for (char *t = strtok_r(line, "\t", &save); t && k < 5; t = strtok_r(NULL, "\t", &save))
            fields[k++] = t;
        if (k < 3)
            continue;
        cat_entry_t *e = &st->entries[st->n++];
        memset(e, 0, sizeof *e);
        cat_copy(e->code, sizeof e->code, fields[0]);
        cat_copy(e->authority, sizeof e->authority, fields[1]);
        cat_copy(e->name, sizeof e->name, fields[2]);
        if (k > 3 && strcmp(fields[3], "-"))
            cat_copy(e->decision, sizeof e->decision, fields[3]);
        if (k > 4 && strcmp(fields[4], "-"))
            cat_copy(e->effective, sizeof e->effective, fields[4]);
    }
    fclose(f);
}

static void cat_answer(cat_t *st, adp_client_t *client, const char *publisher, uint64_t version,
                       bool accepted, const char *reason)
{
    Lth__Domain__V1__CatalogueAck ack = LTH__DOMAIN__V1__CATALOGUE_ACK__INIT;
    ack.subscriber_member_id = (char *)adp_member_id(client);
    ack.version = version;
    ack.accepted = accepted;
    ack.reason = (char *)(reason ? reason : "");
    ack.held_version = st->version;
    ack.at_us = hub_now_us();
    uint8_t *buf = NULL;
    size_t len = 0;
    if (hub_pb_pack(&ack.base, &buf, &len) != 0 ||
        adp_post_event(client, publisher, LTH_SERVICE_CATALOGUE_ACK,
                       LTH_DOMAIN_CONTENT_TYPE("CatalogueAck"), buf, len, 0, NULL) != 0)
        adp_plugin_log(st->host, ADP_LOG_WARN,
                       "cannot answer catalogue version %" PRIu64 " to %s (%s)", version, publisher,
                       adp_last_error(client));
    free(buf);
}

/* Why a procedure of a change is not acceptable, or NULL. */
static const char *cat_problem(const Lth__Domain__V1__Procedure *p, bool repeal)
{
    if (!p || !p->code || !*p->code || strlen(p->code) >= sizeof((cat_entry_t *)0)->code)
        return "a change without a procedure code";
    if (!p->decision || !p->decision->number || !*p->decision->number)
        return "no announcing decision (number)";
    if (repeal)
        return NULL;
    if (!p->name || !*p->name)
        return "no name";
    if (!p->authority_member_id || hub_member_id_problem(p->authority_member_id))
        return "the authority is not a member id";
    if (!p->processing_limit || !p->processing_limit->amount || !p->processing_limit->unit)
        return "no time limit";
    return NULL;
}

static void cat_reject(cat_t *st, adp_client_t *client, const adp_message_t *msg, uint64_t version,
                       const char *reason)
{
    st->rejected++;
    adp_plugin_log(st->host, ADP_LOG_WARN,
                   "catalogue change version %" PRIu64 " from %s rejected: %s", version,
                   msg->sender, reason);
    cat_answer(st, client, msg->sender, version, false, reason);
}

static void cat_apply_delta(cat_t *st, adp_client_t *client, const adp_message_t *msg,
                            const Lth__Domain__V1__CatalogueDelta *d)
{
    char reason[600] = "";
    if (d->version <= st->version) {
        /* Delivered again: the answer already went (or was lost): answer
         * the same once more, harmless. */
        st->ignored++;
        if (d->version == st->version)
            cat_answer(st, client, msg->sender, d->version, true, "");
        return;
    }
    if (d->base_version != st->version) {
        snprintf(reason, sizeof reason,
                 "the change applies to version %" PRIu64 " but version %" PRIu64
                 " is held here: a publication was missed; publish the whole catalogue again "
                 "(restart the procedure system's adapter)",
                 d->base_version, st->version);
        cat_reject(st, client, msg, d->version, reason);
        return;
    }
    cat_entry_t *next = malloc(CAT_MAX * sizeof *next);
    if (!next) {
        cat_reject(st, client, msg, d->version, "out of memory here; publish again later");
        return;
    }
    size_t n = st->n;
    memcpy(next, st->entries, n * sizeof *next);
    for (size_t i = 0; !reason[0] && i < d->n_changes; i++) {
        const Lth__Domain__V1__ProcedureChange *c = d->changes[i];
        const Lth__Domain__V1__Procedure *p = c->procedure;
        if (!p) {
            snprintf(reason, sizeof reason, "change %zu has no procedure", i + 1);
            break;
        }
        bool repeal = c->kind == LTH__DOMAIN__V1__CHANGE_KIND__CHANGE_KIND_REPEALED;
        const char *problem = cat_problem(p, repeal);
        const char *code = p->code ? p->code : "?";
        cat_entry_t *held = problem ? NULL : cat_find(next, n, code);
        if (problem) {
            snprintf(reason, sizeof reason, "change %zu (%.40s): %s", i + 1, code, problem);
        } else if (c->kind == LTH__DOMAIN__V1__CHANGE_KIND__CHANGE_KIND_ADDED) {
            if (held)
                snprintf(reason, sizeof reason,
                         "%.40s is added but already in the catalogue: announce it as amended",
                         code);
            else if (n == CAT_MAX)
                snprintf(reason, sizeof reason, "more than %d procedures", CAT_MAX);
            else
                cat_entry_from(&next[n++], p);
        } else if (c->kind == LTH__DOMAIN__V1__CHANGE_KIND__CHANGE_KIND_AMENDED) {
            if (!held)
                snprintf(reason, sizeof reason,
                         "%.40s is amended but not in the catalogue: announce it as added", code);
            else
                cat_entry_from(held, p);
        } else if (repeal) {
            if (!held) {
                snprintf(reason, sizeof reason, "%.40s is repealed but not in the catalogue", code);
            } else {
                size_t at = (size_t)(held - next);
                memmove(&next[at], &next[at + 1], (n - at - 1) * sizeof *next);
                n--;
            }
        } else {
            snprintf(reason, sizeof reason, "change %zu (%.40s): unknown kind %d", i + 1, code,
                     (int)c->kind);
        }
    }
    if (!reason[0] && cat_save(st, next, n, d->version, msg->sender) != 0)
        snprintf(reason, sizeof reason, "cannot write the catalogue here; publish again later");
    if (reason[0]) {
        cat_reject(st, client, msg, d->version, reason);
    } else {
        memcpy(st->entries, next, n * sizeof *next);
        st->n = n;
        st->version = d->version;
        adp_plugin_log(st->host, ADP_LOG_INFO,
                       "catalogue change version %" PRIu64 " applied: %zu changes, %zu procedures",
                       d->version, d->n_changes, n);
        cat_answer(st, client, msg->sender, d->version, true, "");
    }
    free(next);
}

static void cat_apply_whole(cat_t *st, adp_client_t *client, const adp_message_t *msg,
                            const Lth__Domain__V1__ProcedureCatalogue *cat)
{
    if (cat->version <= st->version) {
        st->ignored++;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < cat->n_procedures && n < CAT_MAX; i++)
        cat_entry_from(&st->entries[n++], cat->procedures[i]);
    st->n = n;
    if (cat_save(st, st->entries, n, cat->version, msg->sender) != 0) {
        adp_plugin_log(st->host, ADP_LOG_WARN, "cannot write %s", st->file);
        return;
    }
    st->version = cat->version;
    adp_plugin_log(st->host, ADP_LOG_INFO, "catalogue version %" PRIu64 " received: %zu procedures",
                   cat->version, n);
    cat_answer(st, client, msg->sender, cat->version, true, "");
}

static int cat_handle(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                      void *user)
{
    (void)reply;
    cat_t *st = user;
    st->received++;
    if (lth_domain_content_type_is(msg->content_type, "CatalogueDelta")) {
        Lth__Domain__V1__CatalogueDelta *d =
            lth__domain__v1__catalogue_delta__unpack(NULL, msg->payload_len, msg->payload);
        if (d) {
            cat_apply_delta(st, client, msg, d);
            lth__domain__v1__catalogue_delta__free_unpacked(d, NULL);
            return 0;
        }
    } else {
        Lth__Domain__V1__ProcedureCatalogue *cat =
            lth__domain__v1__procedure_catalogue__unpack(NULL, msg->payload_len, msg->payload);
        if (cat) {
            cat_apply_whole(st, client, msg, cat);
            lth__domain__v1__procedure_catalogue__free_unpacked(cat, NULL);
            return 0;
        }
    }
    adp_plugin_log(st->host, ADP_LOG_WARN,
                   "a publication from %s is neither a ProcedureCatalogue nor a CatalogueDelta; "
                   "ignored",
                   msg->sender);
    return 0;
}

static void cat_destroy(void *state)
{
    cat_t *st = state;
    if (!st)
        return;
    free(st->entries);
    free(st);
}

static int cat_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    cat_t *st = state;
    const char *file = host->config(host, "file");
    if (!file)
        return adp_plugin_fail(err, err_size,
                               "plugin.file is required (where to keep the catalogue)");
    if (!(st->entries = calloc(CAT_MAX, sizeof *st->entries)))
        return HUB_ENOMEM;
    st->host = host;
    snprintf(st->file, sizeof st->file, "%s", file);
    int rc = adp_plugin_conf_member(host, "publisher", "VN/GOV/HN-VP/TTHC", 0, st->publisher,
                                    sizeof st->publisher, err, err_size);
    if (rc != 0)
        return rc;
    cat_read(st); /* continue from the version already on disk */
    char topic[600];
    snprintf(topic, sizeof topic, "%s/" LTH_SERVICE_CATALOGUE_PUBLISH, st->publisher);
    if (adp_subscribe(host->client(host), topic, cat_handle, st) != 0)
        return adp_plugin_fail(err, err_size, "cannot subscribe to %s", topic);
    return 0;
}

ADP_PLUGIN_DEFINE_STATE("catalogue",
                        "keeps the newest procedure catalogue a publisher published, answers each "
                        "publication",
                        cat_t, cat_start, NULL, cat_destroy);
