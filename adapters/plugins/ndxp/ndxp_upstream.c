/* ndxp_upstream — the national platform's REST interface as a record
 * source; see ndxp_upstream.h. */
#include "ndxp_upstream.h"

#include "hub_conf.h"
#include "hub_error.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NDXP_URL_MAX 512
#define NDXP_USER_AGENT "lth-ndxp/" HUB_VERSION

struct ndxp_upstream {
    char lookup_url[NDXP_URL_MAX + 32];
    char verify_url[NDXP_URL_MAX + 32];
    char base_url[NDXP_URL_MAX];
    lth_httpc_options_t http; /* timeouts, retries, auth (owned) */
};

typedef struct {
    const char *(*get)(void *user, const char *key);
    void *user;
} ndxp_getter_t;

/* The bridge's setting names, with OAuth2 the only mode. */
static const char *ndxp_auth_get(void *user, const char *key)
{
    const ndxp_getter_t *g = user;
    const char *value = g->get(g->user, key);
    if (!strcmp(key, "http_auth") && !value)
        return "oauth2";
    return value;
}

static int ndxp_uint(const ndxp_getter_t *g, const char *key, unsigned long long min,
                     unsigned long long max, unsigned long long def, uint32_t *out, char *err,
                     size_t err_size)
{
    const char *text = g->get(g->user, key);
    unsigned long long v = def;
    if (text) {
        char name[64];
        snprintf(name, sizeof name, "plugin.%s", key);
        int rc = hub_conf_uint(name, text, min, max, &v, err, err_size);
        if (rc != 0)
            return rc;
    }
    *out = (uint32_t)v;
    return 0;
}

int ndxp_upstream_new(const char *(*get)(void *user, const char *key), void *user,
                      ndxp_upstream_t **out, char *err, size_t err_size)
{
    if (!get || !out)
        return HUB_EINVAL;
    *out = NULL;
    ndxp_getter_t g = {get, user};
    const char *base = get(user, "base_url");
    if (!base || strncmp(base, "https://", 8) != 0 || strlen(base) > NDXP_URL_MAX - 32) {
        snprintf(err, err_size,
                 "plugin.base_url is required: the national platform's https:// URL for the "
                 "population database's REST interface (e.g. https://ndxp.gov.vn/api/csdldc/v1)");
        return HUB_EINVAL;
    }
    const char *mode = get(user, "http_auth");
    if (mode && strcmp(mode, "oauth2") != 0) {
        snprintf(err, err_size,
                 "plugin.http_auth: the NDXP gateway authenticates with OAuth2 client "
                 "credentials only; leave it out or write oauth2");
        return HUB_EINVAL;
    }
    if (!get(user, "http_client_cert") || !get(user, "http_ca_file")) {
        snprintf(err, err_size,
                 "the national platform requires mutual TLS: set plugin.http_client_cert and "
                 "plugin.http_client_key (the gateway's certificate and key, PEM) and "
                 "plugin.http_ca_file (the CA that issued the platform's certificate)");
        return HUB_EINVAL;
    }
    ndxp_upstream_t *u = calloc(1, sizeof *u);
    if (!u)
        return HUB_ENOMEM;
    size_t len = strlen(base);
    while (len > 8 && base[len - 1] == '/')
        len--;
    snprintf(u->base_url, sizeof u->base_url, "%.*s", (int)len, base);
    snprintf(u->lookup_url, sizeof u->lookup_url, "%s/citizens/lookup", u->base_url);
    snprintf(u->verify_url, sizeof u->verify_url, "%s/citizens/verify", u->base_url);
    int rc = ndxp_uint(&g, "timeout_ms", 100, 600000, 2000, &u->http.timeout_ms, err, err_size);
    if (rc == 0)
        rc = ndxp_uint(&g, "retries", 0, 20, 4, &u->http.retries, err, err_size);
    if (rc == 0)
        rc = ndxp_uint(&g, "backoff_ms", 1, 60000, 100, &u->http.backoff_ms, err, err_size);
    if (rc == 0)
        rc = ndxp_uint(&g, "backoff_max_ms", 1, 600000, 1000, &u->http.backoff_max_ms, err,
                       err_size);
    if (rc == 0)
        rc = lth_httpc_auth_from_config(ndxp_auth_get, &g, &u->http.auth, err, err_size);
    if (rc != 0) {
        ndxp_upstream_destroy(&u);
        return rc;
    }
    u->http.jitter = true;
    u->http.retry_429 = true;
    u->http.max_response_bytes = 64 * 1024;
    u->http.user_agent = NDXP_USER_AGENT;
    *out = u;
    return 0;
}

void ndxp_upstream_destroy(ndxp_upstream_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lth_httpc_auth_destroy(&(*self_p)->http.auth);
    free(*self_p);
    *self_p = NULL;
}

const char *ndxp_upstream_describe(const ndxp_upstream_t *self, char *buf, size_t size)
{
    char auth[128];
    snprintf(buf, size, "%s with %s; %u ms an attempt, %u retries", self->base_url,
             lth_httpc_auth_describe(self->http.auth, auth, sizeof auth), self->http.timeout_ms,
             self->http.retries);
    return buf;
}

unsigned ndxp_upstream_token_fetches(const ndxp_upstream_t *self)
{
    return self ? lth_httpc_auth_token_fetches(self->http.auth) : 0;
}

/* ---- one call ---- */

/* Writes the failure sentence (first word: the NackCode name) into why. */
static int ndxp_fail(ndxp_call_t *call, int rc, const char *code, char *why, size_t why_size,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int ndxp_fail(ndxp_call_t *call, int rc, const char *code, char *why, size_t why_size,
                     const char *fmt, ...)
{
    snprintf(call->code, sizeof call->code, "%s", code);
    int n = snprintf(why, why_size, "%s: ", code);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < why_size)
        vsnprintf(why + n, why_size - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

/* The platform's error word ({"error": "..."}), or "". */
static const char *ndxp_error_word(const lth_httpc_result_t *res, char *buf, size_t size)
{
    buf[0] = '\0';
    json_t *doc = res->body ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(doc, "error"));
    if (e)
        snprintf(buf, size, "%.40s", e);
    for (char *p = buf; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            *p = '_';
    json_decref(doc);
    return buf;
}

/* Maps an answer that is not a 200 (or no answer) to the hub's codes:
 * HUB_ENOTFOUND for the platform's "citizen_not_found", else a failure. */
static int ndxp_map_failure(ndxp_call_t *call, int rc, const lth_httpc_result_t *res,
                            const char *url, uint64_t t0, char *why, size_t why_size)
{
    uint64_t ms = lth_httpc_now_ms() - t0;
    char word[48];
    const char *platform = "the national data-sharing platform";
    if (res->token_failed) {
        if (res->tls_failed)
            return ndxp_fail(call, HUB_EIO, "FORBIDDEN", why, why_size,
                             "TLS with %s's token endpoint failed: check plugin.http_ca_file "
                             "(the CA of the platform's certificate), plugin.http_client_cert "
                             "and plugin.http_client_key (%s)",
                             platform, res->error);
        if (res->token_status >= 400 && res->token_status < 500 && res->token_status != 429)
            return ndxp_fail(call, HUB_EIO, "FORBIDDEN", why, why_size,
                             "%s did not give the gateway an access token: %s", platform,
                             res->error);
        return ndxp_fail(call, HUB_EIO, "RECEIVER_OFFLINE", why, why_size,
                         "%s did not give the gateway an access token in %llu ms: %s; try again "
                         "later",
                         platform, (unsigned long long)ms, res->error);
    }
    if (rc == HUB_EFULL)
        return ndxp_fail(call, HUB_EIO, "INTERNAL", why, why_size,
                         "%s answered more than the gateway takes (%s)", platform, res->error);
    if (rc != 0 && rc != HUB_EIO)
        return ndxp_fail(call, rc, "INTERNAL", why, why_size, "the gateway failed: %s",
                         hub_strerror(rc));
    long st = res->status;
    if (st == 0 && res->tls_failed)
        return ndxp_fail(call, HUB_EIO, "FORBIDDEN", why, why_size,
                         "TLS with %s failed: check plugin.http_ca_file (the CA of the "
                         "platform's certificate), plugin.http_client_cert and "
                         "plugin.http_client_key (%s)",
                         platform, res->error);
    if (st == 0)
        return ndxp_fail(call, HUB_EIO, "RECEIVER_OFFLINE", why, why_size,
                         "no answer from %s after %u attempt%s in %llu ms%s (%s); try again later",
                         platform, res->attempts, res->attempts == 1 ? "" : "s",
                         (unsigned long long)ms,
                         res->deadline_hit ? ", the request's time ran out" : "", res->error);
    if (st == 404 && !strcmp(ndxp_error_word(res, word, sizeof word), "citizen_not_found"))
        return HUB_ENOTFOUND;
    if (st == 404)
        return ndxp_fail(call, HUB_EIO, "INTERNAL", why, why_size,
                         "%s has no endpoint at %s (HTTP 404): check plugin.base_url", platform,
                         url);
    if (st == 401 || st == 403)
        return ndxp_fail(call, HUB_EIO, "FORBIDDEN", why, why_size,
                         "%s refused the gateway (HTTP %ld%s%s)%s: ask its operator to check "
                         "the gateway's client id and agreement",
                         platform, st, ndxp_error_word(res, word, sizeof word)[0] ? ", " : "", word,
                         st == 401 ? " even with a new access token" : "");
    if (st == 429) {
        unsigned s = (res->retry_after_ms + 999) / 1000;
        return ndxp_fail(call, HUB_EIO, "RATE_LIMITED", why, why_size,
                         "%s is busy (HTTP 429 after %u attempt%s in %llu ms); try again in %u s",
                         platform, res->attempts, res->attempts == 1 ? "" : "s",
                         (unsigned long long)ms, s ? s : 1);
    }
    if (st >= 500)
        return ndxp_fail(call, HUB_EIO, "RECEIVER_OFFLINE", why, why_size,
                         "%s is unavailable (HTTP %ld after %u attempt%s in %llu ms%s); try again "
                         "later",
                         platform, st, res->attempts, res->attempts == 1 ? "" : "s",
                         (unsigned long long)ms,
                         res->deadline_hit ? ", the request's time ran out" : "");
    return ndxp_fail(call, HUB_EIO, "INTERNAL", why, why_size,
                     "%s refused the gateway's request (HTTP %ld%s%s): the gateway and the "
                     "platform disagree on the interface",
                     platform, st, ndxp_error_word(res, word, sizeof word)[0] ? ", " : "", word);
}

static void ndxp_put_query(json_t *doc, const lth_source_query_t *q)
{
    json_object_set_new(doc, "purpose", json_string(q->purpose ? q->purpose : ""));
    json_object_set_new(doc, "purpose_code", json_string(q->purpose_code ? q->purpose_code : ""));
    json_object_set_new(doc, "dossier_code", json_string(q->dossier_code ? q->dossier_code : ""));
    json_object_set_new(doc, "requester", json_string(q->consumer ? q->consumer : ""));
}

/* POSTs doc, with q's purpose and requester added, to url within the call's
 * deadline, and frees doc; on 200, *answer holds the parsed body. 0,
 * HUB_ENOTFOUND, or a failure with why filled. */
static int ndxp_post(ndxp_call_t *call, const char *url, const lth_source_query_t *q, json_t *doc,
                     json_t **answer, char *why, size_t why_size)
{
    *answer = NULL;
    ndxp_put_query(doc, q);
    uint64_t t0 = lth_httpc_now_ms();
    bool expired = call->deadline_ms && t0 + 10 >= call->deadline_ms;
    char *body = expired ? NULL : json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (expired)
        return ndxp_fail(call, HUB_ETIMEDOUT, "EXPIRED", why, why_size,
                         "the request's time to live ran out before the national platform could "
                         "be asked; send it with a longer TTL");
    if (!body)
        return ndxp_fail(call, HUB_ENOMEM, "INTERNAL", why, why_size, "out of memory");
    char h_id[80];
    snprintf(h_id, sizeof h_id, "X-Request-Id: %s", call->message_id ? call->message_id : "");
    const char *headers[] = {"Content-Type: application/json", "Accept: application/json", h_id,
                             NULL};
    lth_httpc_options_t o = call->upstream->http;
    o.deadline_ms = call->deadline_ms;
    o.idle = call->idle;
    o.idle_user = call->idle_user;
    lth_httpc_result_t res;
    int rc = lth_httpc_post(url, headers, body, strlen(body), &o, &res);
    sodium_memzero(body, strlen(body)); /* a personal ID number and declared data */
    free(body);
    call->calls++;
    call->attempts += res.attempts;
    call->last_status = res.status;
    if (rc == 0 && res.status == 200) {
        *answer = json_loadb(res.body ? res.body : "", res.body_len, 0, NULL);
        if (!*answer)
            rc = ndxp_fail(call, HUB_EPARSE, "INTERNAL", why, why_size,
                           "the national platform answered 200 without JSON");
    } else {
        rc = ndxp_map_failure(call, rc, &res, url, t0, why, why_size);
        if (rc == HUB_ENOTFOUND)
            call->not_found++;
    }
    if (res.body)
        sodium_memzero(res.body, res.body_len);
    lth_httpc_result_free(&res);
    return rc;
}

/* ---- reading a record ---- */

static bool ndxp_text(json_t *obj, const char *key, char *out, size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        out[0] = '\0';
        return true;
    }
    const char *s = json_string_value(v);
    if (!s || strlen(s) >= size)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

static bool ndxp_date(json_t *obj, const char *key, lth_date_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = (lth_date_t){0, 0, 0};
        return true;
    }
    const char *s = json_string_value(v);
    return s && lth_date_parse(s, out) == 0;
}

static const char *const ndxp_relationships[] = {
    "", "head", "spouse", "child", "parent", "sibling", "grandchild", "other", "grandparent",
};

/* The platform's record into *out (only the fields it sent); false, with
 * the offending key in *bad, when a value is not what the interface says. */
static bool ndxp_read_citizen(json_t *c, const char *personal_id, lth_citizen_t *out,
                              const char **bad)
{
    memset(out, 0, sizeof *out);
    snprintf(out->personal_id, sizeof out->personal_id, "%s", personal_id);
    const char *pid = json_string_value(json_object_get(c, "personal_id"));
    if (!json_is_object(c) || !pid || strcmp(pid, personal_id) != 0) {
        *bad = "personal_id";
        return false;
    }
    json_t *household = json_object_get(c, "household");
    json_t *family = json_object_get(c, "family");
    struct {
        json_t *obj;
        const char *key;
        char *out;
        size_t size;
    } texts[] = {
        {c, "full_name", out->full_name, sizeof out->full_name},
        {c, "birth_province_code", out->birth_province_code, sizeof out->birth_province_code},
        {c, "residence", out->residence, sizeof out->residence},
        {c, "previous_residence", out->previous_residence, sizeof out->previous_residence},
        {c, "temporary_residence", out->temporary_residence, sizeof out->temporary_residence},
        {household, "head_personal_id", out->head_personal_id, sizeof out->head_personal_id},
        {household, "head_full_name", out->head_full_name, sizeof out->head_full_name},
        {family, "father", out->father_name, sizeof out->father_name},
        {family, "mother", out->mother_name, sizeof out->mother_name},
        {family, "spouse", out->spouse_name, sizeof out->spouse_name},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!ndxp_text(texts[i].obj, texts[i].key, texts[i].out, texts[i].size)) {
            *bad = texts[i].key;
            return false;
        }
    struct {
        const char *key;
        lth_date_t *out;
    } dates[] = {{"date_of_birth", &out->date_of_birth},
                 {"created_on", &out->created_on},
                 {"changed_on", &out->changed_on},
                 {"temporary_until", &out->temporary_until}};
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++)
        if (!ndxp_date(c, dates[i].key, dates[i].out)) {
            *bad = dates[i].key;
            return false;
        }
    const char *sex = json_string_value(json_object_get(c, "sex"));
    if (sex && !strcmp(sex, "male"))
        out->sex = LTH_SEX_MALE;
    else if (sex && !strcmp(sex, "female"))
        out->sex = LTH_SEX_FEMALE;
    else if (sex) {
        *bad = "sex";
        return false;
    }
    const char *rel = json_string_value(json_object_get(household, "relationship"));
    for (int i = 1; rel && i <= LTH_REL_GRANDPARENT; i++)
        if (!strcmp(rel, ndxp_relationships[i]))
            out->relationship = (lth_relationship_t)i;
    if (rel && !out->relationship) {
        *bad = "relationship";
        return false;
    }
    return true;
}

static json_t *ndxp_field_list(lth_fields_t fields)
{
    json_t *list = json_array();
    for (unsigned i = 0; list && i < LTH_FIELD_COUNT; i++)
        if (fields & (1u << i))
            json_array_append_new(list, json_string(lth_field_name(i)));
    return list;
}

static int ndxp_get(void *ctx, const lth_source_query_t *q, const char *personal_id,
                    lth_citizen_t *out, char *why, size_t why_size)
{
    ndxp_call_t *call = ctx;
    json_t *doc = json_object();
    if (!doc)
        return HUB_ENOMEM;
    json_object_set_new(doc, "personal_id", json_string(personal_id));
    json_object_set_new(doc, "fields", ndxp_field_list(q->fields));
    json_t *answer = NULL;
    int rc = ndxp_post(call, call->upstream->lookup_url, q, doc, &answer, why, why_size);
    if (rc != 0)
        return rc;
    const char *bad = NULL;
    if (!ndxp_read_citizen(json_object_get(answer, "citizen"), personal_id, out, &bad))
        rc = ndxp_fail(call, HUB_EPARSE, "INTERNAL", why, why_size,
                       "the national platform's record has a bad '%s' field", bad);
    json_decref(answer);
    return rc;
}

static int ndxp_compare(void *ctx, const lth_source_query_t *q, const lth_source_declared_t *d,
                        lth_fields_t *same, char *why, size_t why_size)
{
    ndxp_call_t *call = ctx;
    json_t *doc = json_object();
    json_t *declared = json_object();
    if (!doc || !declared) {
        json_decref(doc);
        json_decref(declared);
        return HUB_ENOMEM;
    }
    json_object_set_new(doc, "personal_id", json_string(d->personal_id));
    if (d->full_name && d->full_name[0])
        json_object_set_new(declared, "full_name", json_string(d->full_name));
    if (d->date_of_birth.year) {
        char text[LTH_DATE_TEXT_LEN + 1];
        lth_date_format(d->date_of_birth, text);
        json_object_set_new(declared, "date_of_birth", json_string(text));
    }
    if (d->sex == LTH_SEX_MALE || d->sex == LTH_SEX_FEMALE)
        json_object_set_new(declared, "sex",
                            json_string(d->sex == LTH_SEX_MALE ? "male" : "female"));
    if (d->residence && d->residence[0])
        json_object_set_new(declared, "residence", json_string(d->residence));
    json_object_set_new(doc, "declared", declared);
    json_t *answer = NULL;
    int rc = ndxp_post(call, call->upstream->verify_url, q, doc, &answer, why, why_size);
    if (rc != 0)
        return rc;
    json_t *checks = json_object_get(answer, "checks");
    static const struct {
        const char *key;
        lth_fields_t bit;
    } fields[] = {{"full_name", LTH_FIELD_FULL_NAME},
                  {"date_of_birth", LTH_FIELD_DATE_OF_BIRTH},
                  {"sex", LTH_FIELD_SEX},
                  {"residence", LTH_FIELD_RESIDENCE}};
    lth_fields_t asked = (d->full_name && d->full_name[0] ? LTH_FIELD_FULL_NAME : 0) |
                         (d->date_of_birth.year ? LTH_FIELD_DATE_OF_BIRTH : 0) |
                         (d->sex ? LTH_FIELD_SEX : 0) |
                         (d->residence && d->residence[0] ? LTH_FIELD_RESIDENCE : 0);
    *same = 0;
    for (size_t i = 0; rc == 0 && i < sizeof fields / sizeof fields[0]; i++) {
        if (!(asked & fields[i].bit))
            continue;
        const char *v = json_string_value(json_object_get(checks, fields[i].key));
        if (v && !strcmp(v, "match"))
            *same |= fields[i].bit;
        else if (!v || strcmp(v, "mismatch") != 0)
            rc = ndxp_fail(call, HUB_EPARSE, "INTERNAL", why, why_size,
                           "the national platform's check of '%s' is neither match nor mismatch",
                           fields[i].key);
    }
    if (rc == 0 && !json_is_object(checks))
        rc = ndxp_fail(call, HUB_EPARSE, "INTERNAL", why, why_size,
                       "the national platform's verify answer has no 'checks'");
    json_decref(answer);
    return rc;
}

lth_source_t ndxp_source(ndxp_call_t *call)
{
    lth_source_t source = {ndxp_get, ndxp_compare, call};
    return source;
}
