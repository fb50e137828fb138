/* sqlquery — the generic SQL look-up adapter: answers services from
 * configured, parameterised SELECTs over a SQLite file, opened read-only.
 *
 * Config (adapters/README.md has an example):
 *   plugin.db = PATH                       the database (required; opened read-only)
 *   plugin.queries = NAME[,NAME...]        the queries (required)
 *   plugin.query.NAME = SERVICE/VERSION | SELECT ... WHERE x = :param ...
 *   plugin.max_rows = N                    rows per answer (default 1000)
 *   plugin.max_reply_bytes = N             about the JSON size per answer (default 1000000)
 *   plugin.timeout_ms = N                  longest run of a query (default 2000)
 *
 * Each query is prepared once at start (lth_sqlq: one SELECT, named
 * parameters); a request is a JSON object of its parameters, the reply
 * {"rows": [...], "truncated": bool} as application/json, or a problem
 * document {"error": ..., "status": 4xx/5xx} as application/problem+json.
 * Handlers run on hub-adapter's thread: a query blocks the adapter while it
 * runs, hence the timeout. Logs: service, member ids, counts and times; never
 * parameter values or rows.
 */
#include "adp_plugin_util.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_wire.h"
#include "lth_jsonmap.h"
#include "lth_sqlq.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQLQ_MAX_QUERIES 32
#define SQLQ_NAME_MAX 32

typedef struct sqlq_plugin sqlq_plugin_t;

typedef struct {
    char name[SQLQ_NAME_MAX + 1];
    char service[HUB_SERVICE_MAX + 1];
    lth_sqlq_t *query;
    sqlq_plugin_t *plugin;
} sqlq_entry_t;

struct sqlq_plugin {
    const adp_plugin_host_t *host;
    sqlite3 *db;
    lth_sqlq_limits_t limits;
    sqlq_entry_t entries[SQLQ_MAX_QUERIES];
    size_t n_entries;
};

static int sqlq_handle(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                       void *user)
{
    (void)client;
    sqlq_entry_t *e = user;
    sqlq_plugin_t *p = e->plugin;
    if (msg->kind != ADP_REQUEST) {
        adp_plugin_log(p->host, ADP_LOG_INFO,
                       "query %s: ignored an event from %s (queries answer requests)", e->name,
                       msg->sender);
        return 0;
    }
    uint64_t t0 = hub_monotonic_us();
    if (msg->payload_len && !lth_jsonmap_is_json_type(msg->content_type)) {
        adp_plugin_log(p->host, ADP_LOG_INFO, "query %s from %s: refused content type", e->name,
                       msg->sender);
        char message[256];
        snprintf(message, sizeof message,
                 "send the parameters as a JSON object (application/json), not '%.100s'",
                 msg->content_type);
        return lth_jsonmap_reply_problem(reply, 415, message, NULL);
    }
    json_t *params = NULL;
    lth_jsonmap_error_t jerr;
    if (msg->payload_len &&
        lth_jsonmap_parse((const char *)msg->payload, msg->payload_len, &params, &jerr) != 0) {
        adp_plugin_log(p->host, ADP_LOG_INFO, "query %s from %s: malformed JSON", e->name,
                       msg->sender);
        return lth_jsonmap_reply_problem(
            reply, 400, jerr.message,
            json_pack("{s:i,s:i}", "line", jerr.line, "column", jerr.column));
    }
    json_t *result = NULL;
    char why[HUB_ERRMSG_MAX] = "";
    int rc = lth_sqlq_run(e->query, params, &p->limits, &result, why, sizeof why);
    json_decref(params);
    uint64_t ms = (hub_monotonic_us() - t0) / 1000u;
    if (rc != 0) {
        int status = rc == HUB_EINVAL ? 422 : rc == HUB_ETIMEDOUT ? 504 : 503;
        adp_plugin_log(p->host, status >= 500 ? ADP_LOG_ERROR : ADP_LOG_INFO,
                       "query %s (%s) from %s: %d in %" PRIu64 " ms: %s", e->name, e->service,
                       msg->sender, status, ms, rc == HUB_EINVAL ? "bad parameters" : why);
        return lth_jsonmap_reply_problem(reply, status, why, NULL);
    }
    size_t rows = json_array_size(json_object_get(result, "rows"));
    bool truncated = json_is_true(json_object_get(result, "truncated"));
    adp_plugin_log(p->host, truncated ? ADP_LOG_INFO : ADP_LOG_DEBUG,
                   "query %s (%s) from %s: %zu rows%s in %" PRIu64 " ms", e->name, e->service,
                   msg->sender, rows, truncated ? " (truncated)" : "", ms);
    return lth_jsonmap_reply(reply, result, "application/json");
}

/* plugin.query.NAME = SERVICE/VERSION | SELECT ... */
static int sqlq_entry(sqlq_plugin_t *p, const char *name, char *err, size_t err_size)
{
    char key[64];
    snprintf(key, sizeof key, "query.%s", name);
    const char *line = p->host->config(p->host, key);
    const char *bar = line ? strchr(line, '|') : NULL;
    if (!bar)
        return adp_plugin_fail(
            err, err_size,
            "plugin.%s must be 'SERVICE/VERSION | SELECT ...', e.g. "
            "'procedure.get/v1 | SELECT code, name FROM procedures WHERE code = :code'",
            key);
    sqlq_entry_t *e = &p->entries[p->n_entries];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->plugin = p;
    const char *s = line;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = (size_t)(bar - s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0 || len > HUB_SERVICE_MAX)
        return adp_plugin_fail(err, err_size, "plugin.%s: no SERVICE/VERSION before '|'", key);
    memcpy(e->service, s, len);
    e->service[len] = '\0';
    if (!hub_service_valid(e->service))
        return adp_plugin_fail(err, err_size, "plugin.%s: '%s' is not SERVICE/VERSION", key,
                               e->service);
    for (size_t i = 0; i < p->n_entries; i++)
        if (!strcmp(p->entries[i].service, e->service))
            return adp_plugin_fail(err, err_size, "plugin.%s: %s is already answered by query %s",
                                   key, e->service, p->entries[i].name);
    char why[HUB_ERRMSG_MAX];
    int rc = lth_sqlq_new(p->db, bar + 1, &e->query, why, sizeof why);
    if (rc != 0)
        return rc == HUB_ENOMEM ? rc : adp_plugin_fail(err, err_size, "plugin.%s: %s", key, why);
    p->n_entries++;
    if (p->host->offer(p->host, e->service, sqlq_handle, e) != 0)
        return adp_plugin_fail(err, err_size, "plugin.%s: the runtime refused to offer %s", key,
                               e->service);
    return 0;
}

static void sqlq_destroy(void *state)
{
    sqlq_plugin_t *p = state;
    if (!p)
        return;
    for (size_t i = 0; i < p->n_entries; i++)
        lth_sqlq_destroy(&p->entries[i].query);
    lth_sqlq_db_close(&p->db);
    free(p);
}

static int sqlq_settings(sqlq_plugin_t *p, char *err, size_t err_size)
{
    const adp_plugin_host_t *h = p->host;
    uint64_t v = 0;
    int rc;
    if ((rc = adp_plugin_conf_u64(h, "max_rows", 1, 100000, 1000, &v, err, err_size)) != 0)
        return rc;
    p->limits.max_rows = (size_t)v;
    if ((rc = adp_plugin_conf_u64(h, "max_reply_bytes", 1024, 64u << 20, 1000000, &v, err,
                                  err_size)) != 0)
        return rc;
    p->limits.max_bytes = (size_t)v;
    if ((rc = adp_plugin_conf_u64(h, "timeout_ms", 10, 60000, 2000, &v, err, err_size)) != 0)
        return rc;
    p->limits.timeout_ms = (uint32_t)v;
    const char *db = adp_plugin_conf_required(h, "db", "the SQLite file to query", err, err_size);
    if (!db)
        return HUB_EINVAL;
    if ((rc = lth_sqlq_db_open(db, &p->db, err, err_size)) != 0)
        return rc;
    const char *list = h->config(h, "queries");
    if (!list)
        return adp_plugin_fail(
            err, err_size, "plugin.queries is required: the names of the plugin.query.NAME lines");
    char copy[1024], *save = NULL;
    snprintf(copy, sizeof copy, "%s", list);
    for (char *name = strtok_r(copy, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
        if (strlen(name) > SQLQ_NAME_MAX ||
            strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(name))
            return adp_plugin_fail(
                err, err_size, "plugin.queries: '%s' is not a name (a-z, 0-9, _ and -, at most %d)",
                name, SQLQ_NAME_MAX);
        if (p->n_entries == SQLQ_MAX_QUERIES)
            return adp_plugin_fail(err, err_size, "plugin.queries: at most %d queries",
                                   SQLQ_MAX_QUERIES);
        if ((rc = sqlq_entry(p, name, err, err_size)) != 0)
            return rc;
    }
    if (!p->n_entries)
        return adp_plugin_fail(err, err_size, "plugin.queries names no query");
    return 0;
}

static int sqlq_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    sqlq_plugin_t *p = state;
    p->host = host;
    int rc = sqlq_settings(p, err, err_size);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < p->n_entries; i++)
        adp_plugin_log(p->host, ADP_LOG_INFO, "query %s answers %s (%zu parameter%s)",
                       p->entries[i].name, p->entries[i].service,
                       lth_sqlq_param_count(p->entries[i].query),
                       lth_sqlq_param_count(p->entries[i].query) == 1 ? "" : "s");
    return 0;
}

ADP_PLUGIN_DEFINE_STATE("sqlquery",
                        "generic SQL look-up: services answered by parameterised SELECTs over "
                        "SQLite",
                        sqlq_plugin_t, sqlq_start, NULL, sqlq_destroy);
