#include "catalogue_copy.h"

#include "domain.pb-c.h"
#include "adp_plugin_util.h"
#include "hub_clock.h"
#include "lth_appdb.h"
#include "lth_domain.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CATCOPY_VERSION_KEY "catalogue_version"

const char catcopy_schema[] =
    "CREATE TABLE IF NOT EXISTS catalogue("
    " code TEXT PRIMARY KEY, ord INTEGER NOT NULL, repealed INTEGER NOT NULL,"
    " name TEXT NOT NULL, name_en TEXT NOT NULL, authority TEXT NOT NULL,"
    " limit_text TEXT NOT NULL, limit_amount INTEGER NOT NULL, limit_unit INTEGER NOT NULL,"
    " fee_vnd INTEGER NOT NULL, decision TEXT NOT NULL, decision_date TEXT NOT NULL,"
    " effective_date TEXT NOT NULL, level TEXT NOT NULL, documents TEXT NOT NULL,"
    " online TEXT NOT NULL, identity_check INTEGER NOT NULL, assurance INTEGER NOT NULL,"
    " purpose_code TEXT NOT NULL);";

struct catcopy {
    const adp_plugin_host_t *host;
    sqlite3 *db;
    const char *what;
    char publisher[256];
    uint64_t version;
    bool need_whole;       /* holds none, or a publication was missed */
    uint64_t next_ask_us;  /* when to ask (catalogue.get/v1) again */
    uint64_t ask_every_us; /* doubles while asking fails, up to a minute */
    bool ask_failing;      /* a failed request was logged: log the next success */
};

/* ---- the table ---------------------------------------------------------- */

static const char *catcopy_s(const char *s)
{
    return s ? s : "";
}

static int catcopy_insert(sqlite3_stmt *q, const lth_procedure_t *p, int ord, bool repealed)
{
    const char *texts[] = {p->code,       p->name,      p->name_en,       p->authority,
                           p->limit_text, p->decision,  p->decision_date, p->effective_date,
                           p->level,      p->documents, p->online,        p->purpose_code};
    static const int cols[] = {1, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16, 19};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        sqlite3_bind_text(q, cols[i], catcopy_s(texts[i]), -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, ord);
    sqlite3_bind_int(q, 3, repealed);
    sqlite3_bind_int64(q, 8, p->limit_amount);
    sqlite3_bind_int(q, 9, (int)p->limit_unit);
    sqlite3_bind_int64(q, 10, (sqlite3_int64)p->fee_vnd);
    sqlite3_bind_int(q, 17, (int)p->identity_check);
    sqlite3_bind_int64(q, 18, p->required_assurance);
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : HUB_ESTORE;
    sqlite3_reset(q);
    return rc;
}

int catcopy_store(sqlite3 *db, const lth_catalogue_t *cat, uint64_t version)
{
    int rc = lth_appdb_exec(db, catcopy_schema);
    if (rc == 0)
        rc = lth_appdb_begin(db);
    if (rc != 0)
        return HUB_ESTORE;
    sqlite3_stmt *q = NULL;
    rc = lth_appdb_exec(db, "DELETE FROM catalogue");
    if (rc == 0 && sqlite3_prepare_v2(db,
                                      "INSERT INTO catalogue VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                                      " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                                      -1, &q, NULL) != SQLITE_OK)
        rc = HUB_ESTORE;
    const lth_procedure_t *p;
    bool repealed;
    for (size_t i = 0; rc == 0 && (p = lth_catalogue_listed_at(cat, i, &repealed)); i++)
        rc = catcopy_insert(q, p, (int)i, repealed);
    sqlite3_finalize(q);
    if (rc == 0)
        rc = lth_appdb_meta_set(db, CATCOPY_VERSION_KEY, version);
    if (rc == 0)
        rc = lth_appdb_commit(db);
    if (rc != 0) {
        lth_appdb_rollback(db);
        return HUB_ESTORE;
    }
    return 0;
}

int catcopy_load(sqlite3 *db, lth_catalogue_t **out, uint64_t *version)
{
    *out = NULL;
    *version = 0;
    if (lth_appdb_exec(db, catcopy_schema) != 0)
        return HUB_ESTORE;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT code, repealed, name, name_en, authority, limit_text,"
                           " limit_amount, limit_unit, fee_vnd, decision, decision_date,"
                           " effective_date, level, documents, online, identity_check, assurance,"
                           " purpose_code FROM catalogue ORDER BY ord",
                           -1, &q, NULL) != SQLITE_OK)
        return HUB_ESTORE;
    lth_catalogue_t *cat = lth_catalogue_new();
    int rc = cat ? 0 : HUB_ENOMEM, s = SQLITE_DONE;
    while (rc == 0 && (s = sqlite3_step(q)) == SQLITE_ROW) {
#define CATCOPY_TEXT(col) ((const char *)sqlite3_column_text(q, col))
        lth_procedure_t p = {.code = CATCOPY_TEXT(0),
                             .name = CATCOPY_TEXT(2),
                             .name_en = CATCOPY_TEXT(3),
                             .authority = CATCOPY_TEXT(4),
                             .limit_text = CATCOPY_TEXT(5),
                             .limit_amount = (unsigned)sqlite3_column_int64(q, 6),
                             .limit_unit = (lth_limit_unit_t)sqlite3_column_int(q, 7),
                             .fee_vnd = (uint64_t)sqlite3_column_int64(q, 8),
                             .decision = CATCOPY_TEXT(9),
                             .decision_date = CATCOPY_TEXT(10),
                             .effective_date = CATCOPY_TEXT(11),
                             .level = CATCOPY_TEXT(12),
                             .documents = CATCOPY_TEXT(13),
                             .online = CATCOPY_TEXT(14),
                             .identity_check = (lth_identity_check_t)sqlite3_column_int(q, 15),
                             .required_assurance = (unsigned)sqlite3_column_int(q, 16),
                             .purpose_code = CATCOPY_TEXT(17)};
#undef CATCOPY_TEXT
        /* A row that is not a procedure (written by hand?) is skipped. */
        int added = lth_catalogue_add(cat, &p, sqlite3_column_int(q, 1) != 0);
        rc = added == HUB_ENOMEM ? added : 0;
    }
    sqlite3_finalize(q);
    if (rc == 0 && s != SQLITE_DONE)
        rc = HUB_ESTORE;
    if (rc == 0)
        rc = lth_appdb_meta_get(db, CATCOPY_VERSION_KEY, 0, version);
    if (rc != 0 || (lth_catalogue_count(cat) == 0 && lth_catalogue_count_repealed(cat) == 0)) {
        lth_catalogue_destroy(&cat);
        return rc;
    }
    *out = cat;
    return 0;
}

/* ---- a published procedure, as lth_procedure_t ------------------------- */

typedef struct {
    lth_procedure_t p;
    char limit[48], decided[16], effective[16], documents[4096];
} catcopy_conv_t;

static void catcopy_date(const Lth__Domain__V1__Date *d, char out[16])
{
    out[0] = '\0';
    if (d && d->year)
        snprintf(out, 16, "%04u-%02u-%02u", d->year % 10000, d->month % 100, d->day % 100);
}

/* The strings point into pb and into c. */
static void catcopy_convert(const Lth__Domain__V1__Procedure *pb, catcopy_conv_t *c)
{
    memset(c, 0, sizeof *c);
    lth_procedure_t *p = &c->p;
    p->code = pb->code;
    p->name = pb->name;
    p->name_en = pb->name_en;
    p->authority = pb->authority_member_id;
    if (pb->processing_limit) {
        p->limit_amount = pb->processing_limit->amount;
        p->limit_unit = (lth_limit_unit_t)pb->processing_limit->unit;
    }
    static const char *const units[] = {"", "working hour", "working day", "day"};
    if (p->limit_unit == LTH_LIMIT_WORKING_HOURS && p->limit_amount == 8)
        snprintf(c->limit, sizeof c->limit, "same working day");
    else if (p->limit_unit >= LTH_LIMIT_WORKING_HOURS && p->limit_unit <= LTH_LIMIT_CALENDAR_DAYS)
        snprintf(c->limit, sizeof c->limit, "%u %s%s", p->limit_amount, units[p->limit_unit],
                 p->limit_amount == 1 ? "" : "s");
    p->limit_text = c->limit;
    p->identity_check = pb->needs_citizen_lookup ? LTH_CHECK_LOOKUP : LTH_CHECK_VERIFY;
    p->required_assurance = pb->required_assurance_level;
    p->purpose_code = ""; /* the procedure system's own agreement: not published */
    p->decision = pb->decision ? pb->decision->number : "";
    catcopy_date(pb->decision ? pb->decision->date : NULL, c->decided);
    p->decision_date = c->decided;
    catcopy_date(pb->effective_date, c->effective);
    p->effective_date = c->effective;
    p->level = pb->level == LTH__DOMAIN__V1__ADMINISTRATIVE_LEVEL__ADMINISTRATIVE_LEVEL_PROVINCE
                   ? "province"
               : pb->level == LTH__DOMAIN__V1__ADMINISTRATIVE_LEVEL__ADMINISTRATIVE_LEVEL_DISTRICT
                   ? "district"
               : pb->level == LTH__DOMAIN__V1__ADMINISTRATIVE_LEVEL__ADMINISTRATIVE_LEVEL_COMMUNE
                   ? "commune"
                   : "";
    p->online = pb->online_level == LTH__DOMAIN__V1__ONLINE_LEVEL__ONLINE_LEVEL_NONE ? "none"
                : pb->online_level == LTH__DOMAIN__V1__ONLINE_LEVEL__ONLINE_LEVEL_PARTIAL
                    ? "partial"
                : pb->online_level == LTH__DOMAIN__V1__ONLINE_LEVEL__ONLINE_LEVEL_FULL ? "full"
                                                                                       : "";
    p->fee_vnd = pb->fee_vnd;
    size_t used = 0;
    for (size_t i = 0; i < pb->n_required_documents; i++) {
        int n = snprintf(c->documents + used, sizeof c->documents - used, "%s%s", used ? "; " : "",
                         pb->required_documents[i]);
        if (n < 0 || (size_t)n >= sizeof c->documents - used)
            break;
        used += (size_t)n;
    }
    p->documents = c->documents;
}

/* ---- applying a publication --------------------------------------------- */

/* Whether the delta changes code. */
static bool catcopy_changed(const Lth__Domain__V1__CatalogueDelta *d, const char *code)
{
    for (size_t i = 0; i < d->n_changes; i++)
        if (d->changes[i]->procedure && d->changes[i]->procedure->code &&
            !strcmp(d->changes[i]->procedure->code, code))
            return true;
    return false;
}

/* Adds the published procedure; one without a code or a name is skipped
 * (counted in *skipped): the rest of the publication still applies. */
static int catcopy_add_pb(lth_catalogue_t *cat, const Lth__Domain__V1__Procedure *pb, bool repealed,
                          size_t *skipped)
{
    catcopy_conv_t *c = malloc(sizeof *c);
    if (!c)
        return HUB_ENOMEM;
    catcopy_convert(pb, c);
    int rc = lth_catalogue_add(cat, &c->p, repealed);
    free(c);
    if (rc == HUB_ENOMEM)
        return rc;
    *skipped += rc != 0;
    return 0;
}

static lth_catalogue_t *catcopy_from_whole(const lth_catalogue_t *held,
                                           const Lth__Domain__V1__ProcedureCatalogue *whole,
                                           size_t *skipped)
{
    lth_catalogue_t *next = lth_catalogue_new();
    int rc = next ? 0 : HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < whole->n_procedures; i++)
        rc = catcopy_add_pb(next, whole->procedures[i], false, skipped);
    /* What the list no longer has stays known, as repealed. */
    const lth_procedure_t *p;
    bool repealed;
    for (size_t i = 0; rc == 0 && (p = lth_catalogue_listed_at(held, i, &repealed)); i++)
        if (!lth_catalogue_find(next, p->code))
            rc = lth_catalogue_add(next, p, true);
    if (rc != 0)
        lth_catalogue_destroy(&next);
    return next;
}

static lth_catalogue_t *catcopy_from_delta(const lth_catalogue_t *held,
                                           const Lth__Domain__V1__CatalogueDelta *d,
                                           size_t *skipped)
{
    lth_catalogue_t *next = lth_catalogue_new();
    int rc = next ? 0 : HUB_ENOMEM;
    const lth_procedure_t *p;
    bool repealed;
    for (size_t i = 0; rc == 0 && (p = lth_catalogue_listed_at(held, i, &repealed)); i++)
        if (!catcopy_changed(d, p->code))
            rc = lth_catalogue_add(next, p, repealed);
    for (size_t i = 0; rc == 0 && i < d->n_changes; i++) {
        const Lth__Domain__V1__ProcedureChange *c = d->changes[i];
        if (!c->procedure) {
            (*skipped)++;
            continue;
        }
        rc = catcopy_add_pb(next, c->procedure,
                            c->kind == LTH__DOMAIN__V1__CHANGE_KIND__CHANGE_KIND_REPEALED, skipped);
    }
    if (rc != 0)
        lth_catalogue_destroy(&next);
    return next;
}

/* The catalogue installed now, rebuilt from the table (what a delta applies
 * to: lth_procedure_*() give only the procedures in force). */
static lth_catalogue_t *catcopy_held(catcopy_t *self)
{
    lth_catalogue_t *held = NULL;
    uint64_t version = 0;
    if (catcopy_load(self->db, &held, &version) != 0)
        return NULL;
    return held ? held : lth_catalogue_new();
}

static void catcopy_take(catcopy_t *self, lth_catalogue_t *next, uint64_t version,
                         const char *sender, const char *kind, size_t skipped)
{
    if (catcopy_store(self->db, next, version) != 0) {
        adp_plugin_log(self->host, ADP_LOG_ERROR,
                       "%s cannot store catalogue version %" PRIu64 " from %s: %s; it keeps "
                       "version %" PRIu64,
                       self->what, version, sender, lth_appdb_error(self->db), self->version);
        lth_catalogue_destroy(&next);
        return;
    }
    size_t n = lth_catalogue_count(next);
    lth_procedure_install(next);
    self->version = version;
    adp_plugin_log(self->host, ADP_LOG_INFO,
                   "%s: catalogue version %" PRIu64 " from %s applied (%s): %zu procedures in "
                   "force",
                   self->what, version, sender, kind, n);
    if (skipped)
        adp_plugin_log(self->host, ADP_LOG_WARN,
                       "%s: %zu procedures of catalogue version %" PRIu64
                       " from %s had no code or no name and were left out",
                       self->what, skipped, version, sender);
}

static int catcopy_on_publication(adp_client_t *client, const adp_message_t *msg,
                                  adp_reply_t *reply, void *user)
{
    (void)client;
    (void)reply;
    catcopy_t *self = user;
    size_t skipped = 0;
    if (lth_domain_content_type_is(msg->content_type, "CatalogueDelta")) {
        Lth__Domain__V1__CatalogueDelta *d =
            lth__domain__v1__catalogue_delta__unpack(NULL, msg->payload_len, msg->payload);
        if (!d) {
            adp_plugin_log(self->host, ADP_LOG_WARN,
                           "%s: a CatalogueDelta from %s could not be decoded; ignored", self->what,
                           msg->sender);
            return 0;
        }
        if (d->version > self->version) {
            if (d->base_version != self->version)
                self->need_whole = true;
            if (d->base_version != self->version)
                adp_plugin_log(self->host, ADP_LOG_WARN,
                               "%s: catalogue change version %" PRIu64 " applies to version "
                               "%" PRIu64 " but version %" PRIu64
                               " is held here: a publication was missed; the changes apply, "
                               "procedures changed meanwhile stay as held until %s publishes "
                               "the whole catalogue (it does on each start)",
                               self->what, d->version, d->base_version, self->version, msg->sender);
            lth_catalogue_t *held = catcopy_held(self);
            lth_catalogue_t *next = held ? catcopy_from_delta(held, d, &skipped) : NULL;
            lth_catalogue_destroy(&held);
            if (next)
                catcopy_take(self, next, d->version, msg->sender, "a change", skipped);
        }
        lth__domain__v1__catalogue_delta__free_unpacked(d, NULL);
        return 0;
    }
    Lth__Domain__V1__ProcedureCatalogue *whole =
        lth_domain_content_type_is(msg->content_type, "ProcedureCatalogue")
            ? lth__domain__v1__procedure_catalogue__unpack(NULL, msg->payload_len, msg->payload)
            : NULL;
    if (!whole) {
        adp_plugin_log(self->host, ADP_LOG_WARN,
                       "%s: a publication from %s is neither a ProcedureCatalogue nor a "
                       "CatalogueDelta; ignored",
                       self->what, msg->sender);
        return 0;
    }
    if (whole->version > self->version) {
        self->need_whole = false;
        lth_catalogue_t *held = catcopy_held(self);
        lth_catalogue_t *next = held ? catcopy_from_whole(held, whole, &skipped) : NULL;
        lth_catalogue_destroy(&held);
        if (next)
            catcopy_take(self, next, whole->version, msg->sender, "the whole list", skipped);
    }
    lth__domain__v1__procedure_catalogue__free_unpacked(whole, NULL);
    return 0;
}

void catcopy_tick(catcopy_t *self, adp_client_t *client)
{
    uint64_t now = hub_now_us();
    if (!self || !self->need_whole || now < self->next_ask_us || !adp_connected(client))
        return;
    if (self->ask_every_us < CATCOPY_ASK_EVERY_US)
        self->ask_every_us = CATCOPY_ASK_EVERY_US;
    self->next_ask_us = now + self->ask_every_us;
    adp_reply_t reply;
    memset(&reply, 0, sizeof reply);
    int rc = adp_request(client, self->publisher, CATCOPY_SERVICE_GET, "application/octet-stream",
                         "", 0, ADP_ONLINE_ONLY, 3000, &reply);
    if (rc != 0) {
        if (!self->ask_failing)
            adp_plugin_log(self->host, ADP_LOG_WARN,
                           "%s: asking %s for the whole procedure catalogue (%s) failed: %s; "
                           "asking again, less often each time (the member needs the agreement "
                           "'allow %s -> %s/%s')",
                           self->what, self->publisher, CATCOPY_SERVICE_GET,
                           rc == HUB_ENACK || rc == HUB_ETIMEDOUT ? adp_last_error(client)
                                                                  : hub_strerror(rc),
                           adp_member_id(client), self->publisher, CATCOPY_SERVICE_GET);
        self->ask_failing = true;
        if (self->ask_every_us < 60000000u)
            self->ask_every_us *= 2;
        return;
    }
    self->ask_failing = false;
    self->ask_every_us = CATCOPY_ASK_EVERY_US;
    adp_message_t msg;
    memset(&msg, 0, sizeof msg);
    msg.sender = self->publisher;
    msg.content_type = reply.content_type;
    msg.payload = reply.payload;
    msg.payload_len = reply.payload_len;
    catcopy_on_publication(client, &msg, NULL, self);
    adp_reply_free(&reply);
}

/* ---- set-up ------------------------------------------------------------- */

int catcopy_new(const adp_plugin_host_t *host, sqlite3 *db, const char *what, catcopy_t **out,
                char *err, size_t err_size)
{
    *out = NULL;
    catcopy_t *self = calloc(1, sizeof *self);
    if (!self)
        return adp_plugin_fail(err, err_size, "out of memory");
    self->host = host;
    self->db = db;
    self->what = what;
    int rc = adp_plugin_conf_member(host, "publisher", "VN/GOV/HN-VP/TTHC", 0, self->publisher,
                                    sizeof self->publisher, err, err_size);
    lth_catalogue_t *held = NULL;
    if (rc == 0 && (rc = catcopy_load(db, &held, &self->version)) != 0)
        snprintf(err, err_size, "cannot read the catalogue copy from plugin.db: %s",
                 lth_appdb_error(db));
    char topic[600];
    snprintf(topic, sizeof topic, "%s/" LTH_SERVICE_CATALOGUE_PUBLISH, self->publisher);
    if (rc == 0 && adp_subscribe(host->client(host), topic, catcopy_on_publication, self) != 0) {
        snprintf(err, err_size, "cannot subscribe to %s", topic);
        rc = HUB_EINVAL;
    }
    if (rc != 0) {
        lth_catalogue_destroy(&held);
        free(self);
        return rc;
    }
    if (held) {
        adp_plugin_log(host, ADP_LOG_INFO,
                       "%s: procedure catalogue version %" PRIu64 " from %s: %zu in force", what,
                       self->version, self->publisher, lth_catalogue_count(held));
        lth_procedure_install(held);
    } else {
        self->need_whole = true;
        adp_plugin_log(host, ADP_LOG_WARN,
                       "%s holds no procedure catalogue yet: procedures are named, and fees "
                       "known, once it has %s's (it asks for it on %s/%s and follows %s; this "
                       "member needs both agreements)",
                       what, self->publisher, self->publisher, CATCOPY_SERVICE_GET, topic);
    }
    *out = self;
    return 0;
}

void catcopy_destroy(catcopy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lth_procedure_release_all();
    free(*self_p);
    *self_p = NULL;
}
