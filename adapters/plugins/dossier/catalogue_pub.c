#include "catalogue_pub.h"

#include "catalogue_copy.h"

#include "domain.pb-c.h"
#include "adp_plugin_util.h"
#include "hub_clock.h"
#include "hub_wire.h"
#include "lth_appdb.h"
#include "lth_catalogue.h"
#include "lth_date.h"
#include "lth_domain.h"

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CATPUB_KEEP 32 /* publications remembered for the status file */

typedef enum { CATPUB_PENDING = 0, CATPUB_ACKED, CATPUB_REJECTED } catpub_state_t;

typedef struct {
    uint64_t version, base_version; /* base 0: the whole list */
    uint64_t published_at_us, answered_at_us;
    catpub_state_t state;
    char what[400];   /* "whole catalogue, 6 procedures" / "added X; amended Y; repealed Z" */
    char reason[400]; /* the subscriber's, when rejected */
} catpub_pub_t;

struct catpub {
    const adp_plugin_host_t *host;
    sqlite3 *db; /* the procedure system's file: the catalogue in force, for lth-trail */
    char file[4096], status_file[4200], subscriber[256];
    uint64_t version;
    bool full_published;
    char last_error[600]; /* of the last reload, "" when it succeeded */
    catpub_pub_t pubs[CATPUB_KEEP];
    size_t n_pubs;
};

static volatile sig_atomic_t catpub_reload_asked;

static void catpub_on_sighup(int sig)
{
    (void)sig;
    catpub_reload_asked = 1;
}

static void catpub_utc(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    if (!us || !gmtime_r(&t, &tm))
        snprintf(out, 32, "-");
    else
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The status file: what a person checks to see what the national
 * catalogue has not taken yet. */
static void catpub_write_status(catpub_t *self)
{
    if (!self->status_file[0])
        return;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", self->status_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        adp_plugin_log(self->host, ADP_LOG_WARN, "cannot write %s", tmp);
        return;
    }
    size_t pending = 0, rejected = 0;
    for (size_t i = 0; i < self->n_pubs; i++) {
        pending += self->pubs[i].state == CATPUB_PENDING;
        rejected += self->pubs[i].state == CATPUB_REJECTED;
    }
    fprintf(f, "catalogue version %" PRIu64 ": %zu procedures in force, from %s\n", self->version,
            lth_procedure_count(), self->file);
    fprintf(f, "subscriber %s: unacknowledged %zu, rejected %zu\n", self->subscriber, pending,
            rejected);
    if (self->last_error[0])
        fprintf(f, "last reload refused, the catalogue in force stays: %s\n", self->last_error);
    for (size_t i = 0; i < self->n_pubs; i++) {
        const catpub_pub_t *p = &self->pubs[i];
        char at[32], ans[32];
        catpub_utc(p->published_at_us, at);
        catpub_utc(p->answered_at_us, ans);
        if (p->state == CATPUB_PENDING)
            fprintf(f, "version %" PRIu64 " (base %" PRIu64 ") published %s: %s: unacknowledged\n",
                    p->version, p->base_version, at, p->what);
        else if (p->state == CATPUB_ACKED)
            fprintf(f,
                    "version %" PRIu64 " (base %" PRIu64 ") published %s: %s: acknowledged by "
                    "%s at %s\n",
                    p->version, p->base_version, at, p->what, self->subscriber, ans);
        else
            fprintf(f,
                    "version %" PRIu64 " (base %" PRIu64 ") published %s: %s: rejected by %s at "
                    "%s: %s\n",
                    p->version, p->base_version, at, p->what, self->subscriber, ans, p->reason);
    }
    if (fclose(f) != 0 || rename(tmp, self->status_file) != 0)
        adp_plugin_log(self->host, ADP_LOG_WARN, "cannot replace %s", self->status_file);
}

static void catpub_remember(catpub_t *self, uint64_t version, uint64_t base, const char *what)
{
    if (self->n_pubs == CATPUB_KEEP) {
        memmove(&self->pubs[0], &self->pubs[1], (CATPUB_KEEP - 1) * sizeof self->pubs[0]);
        self->n_pubs--;
    }
    catpub_pub_t *p = &self->pubs[self->n_pubs++];
    memset(p, 0, sizeof *p);
    p->version = version;
    p->base_version = base;
    p->published_at_us = hub_now_us();
    snprintf(p->what, sizeof p->what, "%s", what);
}

/* Makes cat the catalogue in force, and writes it into the procedure
 * system's file (catalogue_copy.h) for whoever reads that (lth-trail). */
static void catpub_install(catpub_t *self, lth_catalogue_t *cat, uint64_t version)
{
    if (self->db && catcopy_store(self->db, cat, version) != 0)
        adp_plugin_log(self->host, ADP_LOG_WARN,
                       "cannot write the catalogue in force into plugin.db (%s): lth-trail "
                       "may name procedures as they were",
                       lth_appdb_error(self->db));
    lth_procedure_install(cat);
}

/* ---- the protobuf form of a procedure ---------------------------------- */

typedef struct {
    Lth__Domain__V1__Procedure proc;
    Lth__Domain__V1__ProcessingLimit limit;
    Lth__Domain__V1__AnnouncingDecision decision;
    Lth__Domain__V1__Date decided, effective;
    char *docs_text;
    char *docs[64];
} catpub_item_t;

static void catpub_date(const char *text, Lth__Domain__V1__Date *out)
{
    lth__domain__v1__date__init(out);
    lth_date_t d;
    if (text && lth_date_parse(text, &d) == 0) {
        out->year = (uint32_t)d.year;
        out->month = (uint32_t)d.month;
        out->day = (uint32_t)d.day;
    }
}

static void catpub_fill(catpub_item_t *it, const lth_procedure_t *p)
{
    lth__domain__v1__procedure__init(&it->proc);
    lth__domain__v1__processing_limit__init(&it->limit);
    lth__domain__v1__announcing_decision__init(&it->decision);
    it->limit.amount = p->limit_amount;
    it->limit.unit = (Lth__Domain__V1__LimitUnit)p->limit_unit;
    it->proc.code = (char *)p->code;
    it->proc.name = (char *)p->name;
    it->proc.name_en = (char *)(p->name_en ? p->name_en : "");
    it->proc.authority_member_id = (char *)p->authority;
    it->proc.processing_limit = &it->limit;
    it->proc.required_assurance_level = p->required_assurance;
    it->proc.needs_citizen_lookup = p->identity_check == LTH_CHECK_LOOKUP;
    if (p->decision) {
        it->decision.number = (char *)p->decision;
        catpub_date(p->decision_date, &it->decided);
        it->decision.date = &it->decided;
        it->proc.decision = &it->decision;
        catpub_date(p->effective_date, &it->effective);
        it->proc.effective_date = &it->effective;
    }
    it->proc.fee_vnd = p->fee_vnd;
    const char *lv = p->level ? p->level : "";
    it->proc.level = !strcmp(lv, "province")
                         ? LTH__DOMAIN__V1__ADMINISTRATIVE_LEVEL__ADMINISTRATIVE_LEVEL_PROVINCE
                     : !strcmp(lv, "district")
                         ? LTH__DOMAIN__V1__ADMINISTRATIVE_LEVEL__ADMINISTRATIVE_LEVEL_DISTRICT
                     : !strcmp(lv, "commune")
                         ? LTH__DOMAIN__V1__ADMINISTRATIVE_LEVEL__ADMINISTRATIVE_LEVEL_COMMUNE
                         : LTH__DOMAIN__V1__ADMINISTRATIVE_LEVEL__ADMINISTRATIVE_LEVEL_UNSPECIFIED;
    const char *on = p->online ? p->online : "";
    it->proc.online_level =
        !strcmp(on, "none")      ? LTH__DOMAIN__V1__ONLINE_LEVEL__ONLINE_LEVEL_NONE
        : !strcmp(on, "partial") ? LTH__DOMAIN__V1__ONLINE_LEVEL__ONLINE_LEVEL_PARTIAL
        : !strcmp(on, "full")    ? LTH__DOMAIN__V1__ONLINE_LEVEL__ONLINE_LEVEL_FULL
                                 : LTH__DOMAIN__V1__ONLINE_LEVEL__ONLINE_LEVEL_UNSPECIFIED;
    if (p->documents && *p->documents && (it->docs_text = strdup(p->documents))) {
        char *save = NULL;
        size_t n = 0;
        for (char *d = strtok_r(it->docs_text, ";", &save); d && n < 64;
             d = strtok_r(NULL, ";", &save)) {
            while (*d == ' ')
                d++;
            if (*d)
                it->docs[n++] = d;
        }
        it->proc.required_documents = it->docs;
        it->proc.n_required_documents = n;
    }
}

static void catpub_items_free(catpub_item_t *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        free(items[i].docs_text);
    free(items);
}

/* ---- publishing -------------------------------------------------------- */

static uint64_t catpub_next_version(catpub_t *self)
{
    uint64_t now = hub_now_us(); /* strictly increasing across restarts too */
    return now > self->version ? now : self->version + 1;
}

static int catpub_send(adp_client_t *client, const ProtobufCMessage *msg, const char *type)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = hub_pb_pack(msg, &buf, &len);
    if (rc == 0)
        rc = adp_publish(client, LTH_SERVICE_CATALOGUE_PUBLISH, type, buf, len, 0, NULL);
    free(buf);
    return rc;
}

/* The whole catalogue in force as a ProcedureCatalogue of this version,
 * packed into *buf (malloc'ed). */
static int catpub_pack_whole(adp_client_t *client, uint64_t version, uint8_t **buf, size_t *len)
{
    size_t n = lth_procedure_count();
    catpub_item_t *items = calloc(n ? n : 1, sizeof *items);
    Lth__Domain__V1__Procedure **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    int rc = items && ptrs ? 0 : HUB_ENOMEM;
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            catpub_fill(&items[i], lth_procedure_at(i));
            ptrs[i] = &items[i].proc;
        }
        Lth__Domain__V1__ProcedureCatalogue cat = LTH__DOMAIN__V1__PROCEDURE_CATALOGUE__INIT;
        cat.publisher_member_id = (char *)adp_member_id(client);
        cat.version = version;
        cat.published_at_us = hub_now_us();
        cat.procedures = ptrs;
        cat.n_procedures = n;
        rc = hub_pb_pack(&cat.base, buf, len);
    }
    catpub_items_free(items, n);
    free(ptrs);
    return rc;
}

static void catpub_publish_full(catpub_t *self, adp_client_t *client)
{
    size_t n = lth_procedure_count();
    uint64_t version = catpub_next_version(self);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = catpub_pack_whole(client, version, &buf, &len);
    if (rc == 0)
        rc = adp_publish(client, LTH_SERVICE_CATALOGUE_PUBLISH,
                         LTH_DOMAIN_CONTENT_TYPE("ProcedureCatalogue"), buf, len, 0, NULL);
    free(buf);
    if (rc == 0) {
        self->full_published = true;
        self->version = version;
        char what[64];
        snprintf(what, sizeof what, "whole catalogue, %zu procedures", n);
        catpub_remember(self, version, 0, what);
        adp_plugin_log(self->host, ADP_LOG_INFO,
                       "procedure catalogue published: %zu procedures, version %" PRIu64
                       "; awaiting acknowledgement from %s",
                       n, version, self->subscriber);
        catpub_write_status(self);
    } else {
        adp_plugin_log(self->host, ADP_LOG_WARN,
                       "publishing the procedure catalogue failed (%s); will retry",
                       rc == HUB_ENOMEM ? "out of memory" : adp_last_error(client));
    }
}

/* catalogue.get/v1: a subscriber that holds no catalogue, or missed a
 * publication, asks for the whole one in force, at the version last
 * published (0 before the first publication: ask again). */
static int catpub_on_get(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                         void *user)
{
    catpub_t *self = user;
    if (msg->kind != ADP_REQUEST)
        return 0;
    int rc = catpub_pack_whole(client, self->full_published ? self->version : 0, &reply->payload,
                               &reply->payload_len);
    if (rc != 0)
        return rc;
    snprintf(reply->content_type, sizeof reply->content_type, "%s",
             LTH_DOMAIN_CONTENT_TYPE("ProcedureCatalogue"));
    adp_plugin_log(self->host, ADP_LOG_INFO,
                   "procedure catalogue version %" PRIu64 " sent to %s on request",
                   self->full_published ? self->version : 0, msg->sender);
    return 0;
}

static void catpub_append(char *what, size_t size, const char *verb, const char *code,
                          const char **last_verb)
{
    size_t used = strlen(what);
    if (used + 40 >= size)
        return;
    if (*last_verb != verb)
        snprintf(what + used, size - used, "%s%s %s", used ? "; " : "", verb, code);
    else
        snprintf(what + used, size - used, ", %s", code);
    *last_verb = verb;
}

/* Reads the file again; publishes what changed. */
static void catpub_reload(catpub_t *self, adp_client_t *client)
{
    char err[600];
    lth_catalogue_t *next = NULL;
    if (lth_catalogue_load(self->file, &next, err, sizeof err) != 0) {
        snprintf(self->last_error, sizeof self->last_error, "%s", err);
        adp_plugin_log(self->host, ADP_LOG_ERROR,
                       "catalogue reload refused: %s; version %" PRIu64
                       " stays in force: fix the file and send SIGHUP again",
                       err, self->version);
        catpub_write_status(self);
        return;
    }
    self->last_error[0] = '\0';
    size_t n_old = lth_procedure_count(), n_new = lth_catalogue_count(next);
    size_t cap = n_old + n_new;
    catpub_item_t *items = calloc(cap ? cap : 1, sizeof *items);
    Lth__Domain__V1__ProcedureChange *changes = calloc(cap ? cap : 1, sizeof *changes);
    Lth__Domain__V1__ProcedureChange **ptrs = calloc(cap ? cap : 1, sizeof *ptrs);
    size_t n = 0;
    char what[400] = "";
    const char *last_verb = NULL;
    if (!items || !changes || !ptrs) {
        adp_plugin_log(self->host, ADP_LOG_ERROR, "catalogue reload: out of memory");
        lth_catalogue_destroy(&next);
        goto out;
    }
    for (size_t i = 0; i < n_new; i++) {
        const lth_procedure_t *p = lth_catalogue_at(next, i);
        const lth_procedure_t *was = lth_procedure_find(p->code);
        if (was && lth_procedure_same(was, p))
            continue;
        lth__domain__v1__procedure_change__init(&changes[n]);
        changes[n].kind = was ? LTH__DOMAIN__V1__CHANGE_KIND__CHANGE_KIND_AMENDED
                              : LTH__DOMAIN__V1__CHANGE_KIND__CHANGE_KIND_ADDED;
        catpub_fill(&items[n], p);
        changes[n].procedure = &items[n].proc;
        ptrs[n] = &changes[n];
        n++;
        catpub_append(what, sizeof what, was ? "amended" : "added", p->code, &last_verb);
    }
    for (size_t i = 0; i < n_old; i++) {
        const lth_procedure_t *was = lth_procedure_at(i);
        if (lth_catalogue_find(next, was->code))
            continue;
        const lth_procedure_t *rep = lth_catalogue_find_repealed(next, was->code);
        lth__domain__v1__procedure_change__init(&changes[n]);
        changes[n].kind = LTH__DOMAIN__V1__CHANGE_KIND__CHANGE_KIND_REPEALED;
        catpub_fill(&items[n], rep ? rep : was);
        changes[n].procedure = &items[n].proc;
        ptrs[n] = &changes[n];
        n++;
        catpub_append(what, sizeof what, "repealed", was->code, &last_verb);
    }
    if (n == 0) {
        adp_plugin_log(self->host, ADP_LOG_INFO,
                       "catalogue reloaded: nothing changed (version %" PRIu64 ")", self->version);
        lth_catalogue_destroy(&next);
        catpub_write_status(self);
        goto out;
    }
    Lth__Domain__V1__CatalogueDelta delta = LTH__DOMAIN__V1__CATALOGUE_DELTA__INIT;
    delta.publisher_member_id = (char *)adp_member_id(client);
    delta.base_version = self->version;
    delta.version = catpub_next_version(self);
    delta.published_at_us = hub_now_us();
    delta.changes = ptrs;
    delta.n_changes = n;
    /* Install first: the dossiers from now on follow the new decisions,
     * whatever the subscriber says of them. */
    catpub_install(self, next, delta.version);
    if (catpub_send(client, &delta.base, LTH_DOMAIN_CONTENT_TYPE("CatalogueDelta")) != 0) {
        /* Not even in the outbox: the next publication must be whole. */
        adp_plugin_log(self->host, ADP_LOG_WARN,
                       "publishing the catalogue change failed (%s); the whole catalogue will "
                       "be published instead",
                       adp_last_error(client));
        self->full_published = false;
        goto out;
    }
    self->version = delta.version;
    catpub_remember(self, delta.version, delta.base_version, what);
    adp_plugin_log(self->host, ADP_LOG_INFO,
                   "catalogue change published as version %" PRIu64 " (base %" PRIu64
                   "): %s; awaiting acknowledgement from %s",
                   delta.version, delta.base_version, what, self->subscriber);
    catpub_write_status(self);
out:
    catpub_items_free(items, n);
    free(changes);
    free(ptrs);
}

void catpub_tick(catpub_t *self, adp_client_t *client)
{
    if (!self || !adp_connected(client))
        return;
    if (!self->full_published) {
        catpub_publish_full(self, client);
        return;
    }
    if (catpub_reload_asked) {
        catpub_reload_asked = 0;
        catpub_reload(self, client);
    }
}

/* ---- acknowledgements -------------------------------------------------- */

static int catpub_on_ack(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                         void *user)
{
    (void)client;
    (void)reply;
    catpub_t *self = user;
    if (strcmp(msg->sender, self->subscriber) != 0) {
        adp_plugin_log(self->host, ADP_LOG_WARN,
                       "a catalogue acknowledgement from %s, not from the subscriber %s; ignored",
                       msg->sender, self->subscriber);
        return 0;
    }
    Lth__Domain__V1__CatalogueAck *ack =
        lth_domain_content_type_is(msg->content_type, "CatalogueAck")
            ? lth__domain__v1__catalogue_ack__unpack(NULL, msg->payload_len, msg->payload)
            : NULL;
    if (!ack) {
        adp_plugin_log(self->host, ADP_LOG_WARN,
                       "a catalogue acknowledgement from %s is not a CatalogueAck; ignored",
                       msg->sender);
        return 0;
    }
    catpub_pub_t *p = NULL;
    for (size_t i = 0; i < self->n_pubs && !p; i++)
        if (self->pubs[i].version == ack->version)
            p = &self->pubs[i];
    if (!p) {
        adp_plugin_log(self->host, ADP_LOG_INFO,
                       "%s answered version %" PRIu64 ", which this run did not publish",
                       msg->sender, ack->version);
    } else {
        p->state = ack->accepted ? CATPUB_ACKED : CATPUB_REJECTED;
        p->answered_at_us = hub_now_us();
        snprintf(p->reason, sizeof p->reason, "%s",
                 ack->reason && *ack->reason ? ack->reason : "(no reason given)");
        if (ack->accepted)
            adp_plugin_log(self->host, ADP_LOG_INFO,
                           "catalogue version %" PRIu64 " acknowledged by %s", ack->version,
                           msg->sender);
        else
            adp_plugin_log(self->host, ADP_LOG_WARN,
                           "catalogue version %" PRIu64 " REJECTED by %s: %s", ack->version,
                           msg->sender, p->reason);
        catpub_write_status(self);
    }
    lth__domain__v1__catalogue_ack__free_unpacked(ack, NULL);
    return 0;
}

/* ---- set-up ------------------------------------------------------------ */

int catpub_new(const adp_plugin_host_t *host, sqlite3 *db, catpub_t **out, char *err,
               size_t err_size)
{
    *out = NULL;
    catpub_t *self = calloc(1, sizeof *self);
    if (!self)
        return adp_plugin_fail(err, err_size, "out of memory");
    self->host = host;
    self->db = db;
    int rc = adp_plugin_conf_member(host, "catalogue_subscriber", "VN/GOV/VPCP/CSDLTTHC", 0,
                                    self->subscriber, sizeof self->subscriber, err, err_size);
    const char *file = host->config(host, "catalogue_file");
    const char *status = host->config(host, "catalogue_status");
    if (rc == 0 && (!file || !*file)) {
        /* No built-in list: the procedures are the announcing decisions'. */
        snprintf(err, err_size,
                 "plugin.catalogue_file is required: the procedure catalogue as the Chairman's "
                 "announcing decisions list it (a tab-separated file, columns as the "
                 "repository's deploy/catalogue-hn.tsv, which is an example): write 'plugin.catalogue_file = PATH' in this adapter's "
                 "configuration");
        rc = HUB_EINVAL;
    }
    if (rc == 0) {
        snprintf(self->file, sizeof self->file, "%s", file);
        lth_catalogue_t *cat = NULL;
        char why[600];
        rc = lth_catalogue_load(file, &cat, why, sizeof why);
        if (rc != 0)
            snprintf(err, err_size, "plugin.catalogue_file: %s", why);
        else
            catpub_install(self, cat, 0);
    }
    if (status && *status)
        snprintf(self->status_file, sizeof self->status_file, "%s", status);
    else
        snprintf(self->status_file, sizeof self->status_file, "%s.status", self->file);
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_CATALOGUE_ACK, catpub_on_ack, self);
    if (rc == 0)
        rc = host->offer(host, CATCOPY_SERVICE_GET, catpub_on_get, self);
    if (rc == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = catpub_on_sighup;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(SIGHUP, &sa, NULL);
    }
    if (rc != 0) {
        lth_procedure_release_all();
        free(self);
        return rc;
    }
    *out = self;
    return 0;
}

void catpub_destroy(catpub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    signal(SIGHUP, SIG_DFL);
    lth_procedure_release_all();
    free(*self_p);
    *self_p = NULL;
}
