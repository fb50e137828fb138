#include "hubctl_ops.h"
#include "hubctl_config.h"
#include "hubctl_i18n.h"
#include "hubctl_opts.h"
#include "adp.h"
#include "hub_buf.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_ops.h"
#include "hub_wire.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2, CTL_REFUSED = 4, CTL_BUSY = 75 };

#define CTL_DEFAULT_URL "http://127.0.0.1:8080"
#define CTL_TOKEN_MAX 256

typedef struct {
    hubctl_config_t conf; /* the settings file; --url and --token-file override it */
    bool json;
} ctl_ops_config_t;

/* ---- settings ----------------------------------------------------------- */

static int ctl_load(const char *path, ctl_ops_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    if (!path)
        path = getenv("LTH_HUBCTL_CONFIG");
    if (path && *path) {
        char err[HUB_ERRMSG_MAX];
        if (hubctl_config_load(path, &cfg->conf, err, sizeof err) != 0) {
            fprintf(stderr, "hubctl: bad configuration: %s\n", err);
            return CTL_FAIL;
        }
    }
    if (!cfg->conf.http_url[0])
        snprintf(cfg->conf.http_url, sizeof cfg->conf.http_url, "%s", CTL_DEFAULT_URL);
    return CTL_OK;
}

/* Takes the options every HTTP command shares out of argv (--json, --url,
 * --token-file); returns the remaining count, or -1 after a usage error. */
static int ctl_common_options(ctl_ops_config_t *cfg, const char *cmd, int argc, char **argv)
{
    int out = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            cfg->json = true;
        } else if (!strcmp(argv[i], "--url") || !strcmp(argv[i], "--token-file")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hubctl %s: %s needs a value\n", cmd, argv[i]);
                return -1;
            }
            bool url = !strcmp(argv[i], "--url");
            snprintf(url ? cfg->conf.http_url : cfg->conf.http_token_file,
                     url ? sizeof cfg->conf.http_url : sizeof cfg->conf.http_token_file, "%s",
                     argv[i + 1]);
            i++;
        } else {
            argv[out++] = argv[i];
        }
    }
    return out;
}

/* The token from http_token_file, read and checked as hubd reads it
 * (hub_ops_read_token_file: a file other users may read is refused). */
static int ctl_token(const ctl_ops_config_t *cfg, char *token, size_t size)
{
    token[0] = '\0';
    if (!cfg->conf.http_token_file[0]) {
        fprintf(stderr, "hubctl: this command needs the operator token: set http_token_file in "
                        "your hubctl config, or pass --token-file FILE\n");
        return CTL_USAGE;
    }
    char err[HUB_ERRMSG_MAX];
    if (hub_ops_read_token_file(cfg->conf.http_token_file, token, size, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl: %s\n", err);
        return CTL_FAIL;
    }
    return CTL_OK;
}

/* ---- HTTP --------------------------------------------------------------- */

typedef struct {
    long status;
    hub_buf_t body;
} ctl_reply_t;

static size_t ctl_on_body(char *p, size_t size, size_t n, void *user)
{
    ctl_reply_t *r = user;
    size_t add = size * n;
    if (r->body.len + add > 64u << 20)
        return 0; /* no operator answer is this big */
    return hub_buf_put(&r->body, p, add) == 0 ? add : 0;
}

static void ctl_reply_free(ctl_reply_t *r)
{
    hub_buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

/* Performs one request; on success (2xx) returns CTL_OK with the body in
 * r; otherwise prints why (the hub's "error" text when it sent one) and
 * returns the exit status. */
static int ctl_http(const ctl_ops_config_t *cfg, const char *method, const char *path,
                    const char *token, ctl_reply_t *r)
{
    memset(r, 0, sizeof *r);
    char url[1024];
    size_t base_len = strlen(cfg->conf.http_url);
    while (base_len > 0 && cfg->conf.http_url[base_len - 1] == '/')
        base_len--;
    snprintf(url, sizeof url, "%.*s%s", (int)base_len, cfg->conf.http_url, path);
    CURL *curl = curl_easy_init();
    if (!curl) {
        fprintf(stderr, "hubctl: cannot start an HTTP client\n");
        return CTL_FAIL;
    }
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    char auth[CTL_TOKEN_MAX + 32];
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, ctl_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    memset(auth, 0, sizeof auth);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) {
        fprintf(stderr,
                "hubctl: cannot reach the hub's HTTP endpoint at %s: %s\n"
                "  (is hubd running with http_listen set in hubd.conf, and is http_url right "
                "in your hubctl config?)\n",
                cfg->conf.http_url, curl_err[0] ? curl_err : curl_easy_strerror(rc));
        ctl_reply_free(r);
        return CTL_FAIL;
    }
    if (r->status >= 200 && r->status < 300) {
        if (!r->body.data && hub_buf_put(&r->body, "", 0) != 0)
            return CTL_FAIL;
        return CTL_OK;
    }
    const char *msg = NULL;
    json_error_t jerr;
    json_t *j = r->body.data ? json_loadb(r->body.data, r->body.len, 0, &jerr) : NULL;
    if (j)
        msg = json_string_value(json_object_get(j, "error"));
    if (r->status == 503 && msg && strstr(msg, "send the same request again in a moment")) {
        /* hubd is between two steps it must not interleave (a DLQ replay
         * waits for the running store commit): the caller asks again. */
        json_decref(j);
        ctl_reply_free(r);
        return CTL_BUSY;
    }
    fprintf(stderr, "hubctl: the hub answered %ld: %s\n", r->status,
            msg ? msg : "(no explanation)");
    if (r->status == 401)
        fprintf(stderr, "  (check the token in %s against the hub's http_token_file)\n",
                cfg->conf.http_token_file[0] ? cfg->conf.http_token_file : "http_token_file");
    json_decref(j);
    int status = r->status == 401 || r->status == 403 ? CTL_REFUSED : CTL_FAIL;
    ctl_reply_free(r);
    return status;
}

/* GET path and parse; prints the JSON instead when cfg->json. *out is
 * NULL after printing. */
static int ctl_get_json(const ctl_ops_config_t *cfg, const char *path, const char *token,
                        json_t **out)
{
    *out = NULL;
    ctl_reply_t r;
    int status = ctl_http(cfg, "GET", path, token, &r);
    if (status != CTL_OK)
        return status;
    if (cfg->json) {
        fwrite(r.body.data, 1, r.body.len, stdout);
        if (r.body.len && r.body.data[r.body.len - 1] != '\n')
            fputc('\n', stdout);
        ctl_reply_free(&r);
        return CTL_OK;
    }
    json_error_t jerr;
    *out = json_loadb(r.body.data, r.body.len, 0, &jerr);
    ctl_reply_free(&r);
    if (!*out) {
        fprintf(stderr, "hubctl: the hub's answer to %s is not JSON (%s)\n", path, jerr.text);
        return CTL_FAIL;
    }
    return CTL_OK;
}

/* ---- tables ------------------------------------------------------------- */

#define CTL_COLS_MAX 12

typedef struct {
    size_t n_cols;
    const char *heads[CTL_COLS_MAX];
    bool right[CTL_COLS_MAX];
    char **cells; /* n_rows * n_cols, malloc'ed strings */
    size_t n_rows, cap_rows;
} ctl_table_t;

static void ctl_table_init(ctl_table_t *t, const char *spec)
{
    /* spec: "NAME,>COUNT,..." ('>' = right-aligned) */
    memset(t, 0, sizeof *t);
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && t->n_cols < CTL_COLS_MAX;
         tok = strtok_r(NULL, ",", &save)) {
        t->right[t->n_cols] = tok[0] == '>';
        t->heads[t->n_cols++] = tok[0] == '>' ? tok + 1 : tok;
    }
}

static void ctl_table_row(ctl_table_t *t, ...)
{
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 32;
        char **cells = realloc(t->cells, cap * t->n_cols * sizeof *cells);
        if (!cells)
            return;
        t->cells = cells;
        t->cap_rows = cap;
    }
    va_list ap;
    va_start(ap, t);
    for (size_t c = 0; c < t->n_cols; c++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->n_rows * t->n_cols + c] = strdup(s ? s : "");
    }
    va_end(ap);
    t->n_rows++;
}

/* Display width: code points, not bytes (names may be Vietnamese). */
static size_t ctl_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        w += (*p & 0xc0) != 0x80;
    return w;
}

static void ctl_table_print(ctl_table_t *t, FILE *out)
{
    size_t width[CTL_COLS_MAX];
    for (size_t c = 0; c < t->n_cols; c++) {
        width[c] = ctl_width(t->heads[c]);
        for (size_t r = 0; r < t->n_rows; r++) {
            size_t w = ctl_width(t->cells[r * t->n_cols + c] ? t->cells[r * t->n_cols + c] : "");
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t r = 0; r <= t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *s = r == 0 ? t->heads[c] : t->cells[(r - 1) * t->n_cols + c];
            if (!s)
                s = "";
            size_t pad = width[c] - ctl_width(s);
            bool last = c + 1 == t->n_cols;
            if (t->right[c])
                fprintf(out, "%*s%s", (int)pad, "", s);
            else
                fprintf(out, "%s%*s", s, last ? 0 : (int)pad, "");
            if (!last)
                fputs("  ", out);
        }
        fputc('\n', out);
    }
}

static void ctl_table_free(ctl_table_t *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

/* ---- formatting --------------------------------------------------------- */

typedef struct {
    char s[64];
} ctl_str_t;

static ctl_str_t ctl_int(json_t *v)
{
    ctl_str_t out;
    if (!json_is_number(v)) {
        snprintf(out.s, sizeof out.s, "-");
        return out;
    }
    ctl_fmt_int((unsigned long long)json_number_value(v), out.s, sizeof out.s);
    return out;
}

static ctl_str_t ctl_ms(json_t *latency, const char *key)
{
    ctl_str_t out;
    json_t *v = json_object_get(latency, key);
    if (!json_is_number(v))
        snprintf(out.s, sizeof out.s, "-");
    else
        ctl_fmt_fixed(json_number_value(v), json_number_value(v) < 10 ? 2 : 1, out.s,
                      sizeof out.s);
    return out;
}

static ctl_str_t ctl_age(json_t *seconds_v)
{
    ctl_str_t out;
    if (!json_is_number(seconds_v)) {
        snprintf(out.s, sizeof out.s, "%s", ctl_tr(CTL_M_NEVER));
        return out;
    }
    double s = json_number_value(seconds_v);
    char n[32];
    ctl_msg_t unit = s < 60 ? CTL_M_AGE_S : s < 3600 ? CTL_M_AGE_MIN
                   : s < 86400 ? CTL_M_AGE_H : CTL_M_AGE_D;
    double v = s < 60 ? s : s < 3600 ? s / 60 : s < 86400 ? s / 3600 : s / 86400;
    ctl_fmt_fixed(v, s < 3600 ? 0 : 1, n, sizeof n);
    snprintf(out.s, sizeof out.s, ctl_tr(unit), n);
    return out;
}

static ctl_str_t ctl_time(json_t *us_v)
{
    ctl_str_t out;
    uint64_t us = (uint64_t)json_number_value(us_v);
    if (!us) {
        snprintf(out.s, sizeof out.s, "-");
        return out;
    }
    ctl_fmt_time(us, out.s, sizeof out.s);
    return out;
}

static const char *ctl_s(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : "-";
}

/* ---- status, members, flows, queues ------------------------------------- */

/* One line per alarm of /api/v1/status: level, subject (with the agency's
 * name), and the reason in the operator's language. */
static void ctl_print_alarms(json_t *alarms)
{
    size_t i;
    json_t *a;
    json_array_foreach(alarms, i, a)
    {
        const char *code = ctl_s(a, "code"), *subject = ctl_s(a, "subject");
        json_t *name = json_object_get(a, "name");
        double value = json_number_value(json_object_get(a, "value"));
        double limit = json_number_value(json_object_get(a, "limit"));
        ctl_msg_t msg = CTL_M_ALARM_RECEIVER_OFFLINE;
        if (!strcmp(code, "queue_stale"))
            msg = CTL_M_ALARM_QUEUE_STALE;
        else if (!strcmp(code, "dead_letters_growing"))
            msg = CTL_M_ALARM_DEAD_LETTERS;
        else if (!strcmp(code, "certificate_expiring")) {
            msg = CTL_M_ALARM_CERTIFICATE;
            value /= 86400;
            limit /= 86400;
        } else if (!strcmp(code, "store_filling"))
            msg = CTL_M_ALARM_STORE;
        else if (!strcmp(code, "member_refused"))
            msg = CTL_M_ALARM_REFUSED;
        else if (strcmp(code, "receiver_offline") != 0)
            msg = CTL_M__COUNT; /* newer hub: its own English reason */
        json_t *jv = json_integer((json_int_t)value), *jl = json_integer((json_int_t)limit);
        char reason[512], who[600];
        if (msg == CTL_M__COUNT)
            snprintf(reason, sizeof reason, "%s", ctl_s(a, "reason"));
        else
            snprintf(reason, sizeof reason, ctl_tr(msg), ctl_int(jv).s, ctl_int(jl).s);
        json_decref(jv);
        json_decref(jl);
        if (!subject[0])
            snprintf(who, sizeof who, "hub");
        else if (json_is_string(name))
            snprintf(who, sizeof who, "%s (%s)", subject, json_string_value(name));
        else
            snprintf(who, sizeof who, "%s", subject);
        printf(ctl_tr(CTL_M_STATUS_ALARM),
               ctl_tr(!strcmp(ctl_s(a, "level"), "critical") ? CTL_M_LEVEL_CRITICAL
                                                             : CTL_M_LEVEL_WARNING),
               who, reason);
    }
}

/* CTL_OK for a command that takes no argument and is given none. */
static int ctl_no_argument(const char *command, int argc, char **argv)
{
    if (argc == 0)
        return CTL_OK;
    fprintf(stderr, "hubctl %s: unexpected argument '%s'\n", command, argv[0]);
    return CTL_USAGE;
}

/* A command that takes no argument: its answer from GET path (*j NULL with
 * CTL_OK when there is nothing to show). */
static int ctl_get_bare(ctl_ops_config_t *cfg, const char *command, int argc, char **argv,
                        const char *path, json_t **j)
{
    *j = NULL;
    int status = ctl_no_argument(command, argc, argv);
    return status != CTL_OK ? status : ctl_get_json(cfg, path, NULL, j);
}

/* Prints a listing's table, or `none` when it has no row, and frees it and
 * the answer it came from. */
static int ctl_table_finish(ctl_table_t *t, const char *none, json_t *j)
{
    if (t->n_rows == 0)
        fputs(none, stdout);
    else
        ctl_table_print(t, stdout);
    ctl_table_free(t);
    json_decref(j);
    return CTL_OK;
}

/* Writes one item of a listing's array as a table row (or none: a filter);
 * ctx is the caller's. */
typedef void ctl_row_fn(ctl_table_t *t, json_t *item, const void *ctx);

/* GET path (ctl_get_json) and a table with heads, row() called on each
 * item of the answer's array `key`. CTL_OK with *j NULL: printed as JSON,
 * nothing more to do; with *j set, the caller prints *t and frees both. */
static int ctl_get_rows(const ctl_ops_config_t *cfg, const char *path, const char *token,
                        const char *key, ctl_msg_t heads, ctl_row_fn *row, const void *ctx,
                        ctl_table_t *t, json_t **j)
{
    int status = ctl_get_json(cfg, path, token, j);
    if (status != CTL_OK || !*j)
        return status;
    ctl_table_init(t, ctl_tr(heads));
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(*j, key), i, item)
    {
        row(t, item, ctx);
    }
    return CTL_OK;
}

/* A command that takes no argument and lists the array named like it in
 * the answer to GET path: a table, or `none` when it is empty. */
static int ctl_list_bare(ctl_ops_config_t *cfg, const char *command, int argc, char **argv,
                         const char *path, ctl_msg_t heads, ctl_row_fn *row, ctl_msg_t none)
{
    json_t *j = NULL;
    ctl_table_t t;
    int status = ctl_no_argument(command, argc, argv);
    if (status == CTL_OK)
        status = ctl_get_rows(cfg, path, NULL, command, heads, row, NULL, &t, &j);
    return status != CTL_OK || !j ? status : ctl_table_finish(&t, ctl_tr(none), j);
}

static int cmd_status(ctl_ops_config_t *cfg, int argc, char **argv)
{
    json_t *j;
    int status = ctl_get_bare(cfg, "status", argc, argv, "/api/v1/status", &j);
    if (status != CTL_OK || !j)
        return status;
    json_t *members = json_object_get(j, "members"), *queues = json_object_get(j, "queues");
    json_t *minute = json_object_get(j, "last_minute"), *store = json_object_get(j, "store");
    bool ready = json_is_true(json_object_get(j, "ready"));
    json_t *alarms = json_object_get(j, "alarms");
    bool degraded = json_array_size(alarms) > 0;
    printf(ctl_tr(CTL_M_STATUS_HUB),
           ctl_tr(!ready ? CTL_M_NOT_READY : degraded ? CTL_M_DEGRADED : CTL_M_READY),
           ctl_s(j, "version"), ctl_age(json_object_get(j, "uptime_s")).s);
    if (!ready)
        printf("              %s\n", ctl_s(j, "not_ready_reason"));
    ctl_print_alarms(alarms);
    printf(ctl_tr(CTL_M_STATUS_MEMBERS),
           ctl_int(json_object_get(members, "connected")).s,
           ctl_int(json_object_get(members, "known")).s);
    printf(ctl_tr(CTL_M_STATUS_MINUTE),
           ctl_int(json_object_get(minute, "accepted")).s,
           ctl_int(json_object_get(minute, "refused")).s,
           ctl_int(json_object_get(minute, "delivered")).s,
           ctl_int(json_object_get(minute, "settled")).s);
    printf(ctl_tr(CTL_M_STATUS_QUEUED),
           ctl_int(json_object_get(queues, "depth")).s,
           ctl_int(json_object_get(queues, "receivers")).s,
           ctl_int(json_object_get(queues, "in_flight")).s);
    if (json_number_value(json_object_get(queues, "depth")) > 0)
        printf(ctl_tr(CTL_M_STATUS_OLDEST), ctl_age(json_object_get(queues, "oldest_age_s")).s);
    printf(ctl_tr(CTL_M_STATUS_DEAD), ctl_int(json_object_get(j, "dead_letters")).s);
    char used[32], max[32];
    ctl_fmt_fixed(json_number_value(json_object_get(store, "used_bytes")) / 1048576.0, 1, used,
                  sizeof used);
    ctl_fmt_fixed(json_number_value(json_object_get(store, "max_bytes")) / 1048576.0, 1, max,
                  sizeof max);
    printf(ctl_tr(CTL_M_STATUS_STORE), used, max);
    printf(ctl_tr(CTL_M_STATUS_AUDIT), ctl_int(json_object_get(j, "audit_seq")).s);
    json_decref(j);
    return CTL_OK;
}

/* A member's row; ctx: the state to show only ("connected", "offline"), or NULL. */
static void ctl_member_row(ctl_table_t *t, json_t *m, const void *ctx)
{
    const char *only = ctx;
    const char *state = ctl_s(m, "state");
    if (only && strcmp(state, only) != 0)
        return;
    char services[1024] = "";
    size_t k;
    json_t *s;
    json_array_foreach(json_object_get(m, "services"), k, s)
    {
        size_t used = strlen(services);
        snprintf(services + used, sizeof services - used, "%s%s", k ? "," : "",
                 json_string_value(s));
    }
    /* The agency's name and unit from the hub's member directory. */
    char agency[1100] = "-";
    if (json_is_string(json_object_get(m, "name")))
        snprintf(agency, sizeof agency, "%s — %s", ctl_s(m, "name"), ctl_s(m, "unit"));
    ctl_msg_t shown = !strcmp(state, "connected") ? CTL_M_STATE_CONNECTED
                      : !strcmp(state, "offline") ? CTL_M_STATE_OFFLINE
                                                  : CTL_M_STATE_REMOVED;
    ctl_table_row(t, ctl_s(m, "id"), agency, ctl_tr(shown),
                  ctl_age(json_object_get(m, "last_seen_age_s")).s, ctl_s(m, "address"),
                  ctl_int(json_object_get(m, "msgs_in")).s,
                  ctl_int(json_object_get(m, "msgs_out")).s,
                  ctl_int(json_object_get(m, "in_flight")).s, services[0] ? services : "-");
}

static int cmd_members(ctl_ops_config_t *cfg, int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--state") && i + 1 < argc &&
            (!strcmp(argv[i + 1], "connected") || !strcmp(argv[i + 1], "offline"))) {
            only = argv[++i];
        } else {
            fprintf(stderr, "hubctl members: unexpected argument '%s' "
                            "(options: --state connected|offline, --json)\n",
                    argv[i]);
            return CTL_USAGE;
        }
    }
    json_t *j;
    ctl_table_t t;
    int status = ctl_get_rows(cfg, "/api/v1/members", NULL, "members", CTL_M_MEMBERS_HEADS,
                              ctl_member_row, only, &t, &j);
    if (status != CTL_OK || !j)
        return status;
    ctl_table_print(&t, stdout);
    char total[32];
    ctl_fmt_int(json_array_size(json_object_get(j, "members")), total, sizeof total);
    printf(ctl_tr(CTL_M_MEMBERS_FOOT), ctl_int(json_object_get(j, "connected")).s, total);
    ctl_table_free(&t);
    json_decref(j);
    return CTL_OK;
}

static void ctl_flow_row(ctl_table_t *t, json_t *f, const void *ctx)
{
    (void)ctx;
    json_t *minute = json_object_get(f, "minute");
    json_t *e2e = json_object_get(minute, "end_to_end_ms");
    json_t *hub = json_object_get(minute, "hub_ms");
    char refusals[512] = "";
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(f, "refusals"), key, v)
    {
        size_t used = strlen(refusals);
        snprintf(refusals + used, sizeof refusals - used, "%s%s=%lld", used ? "," : "", key,
                 (long long)json_integer_value(v));
    }
    ctl_table_row(t, ctl_s(f, "sender"), ctl_s(f, "receiver"), ctl_s(f, "service"),
                  ctl_int(json_object_get(f, "accepted")).s,
                  ctl_int(json_object_get(f, "errors")).s,
                  ctl_int(json_object_get(minute, "accepted")).s, ctl_ms(e2e, "p50").s,
                  ctl_ms(e2e, "p99").s, ctl_ms(hub, "p50").s, refusals[0] ? refusals : "-");
}

static int ctl_print_flows(ctl_ops_config_t *cfg)
{
    /* Its options are cmd_flows's: no argument left here. */
    return ctl_list_bare(cfg, "flows", 0, NULL, "/api/v1/flows", CTL_M_FLOWS_HEADS, ctl_flow_row,
                         CTL_M_FLOWS_NONE);
}

static volatile sig_atomic_t ctl_interrupted;
static void ctl_on_sigint(int sig)
{
    (void)sig;
    ctl_interrupted = 1;
}

static int cmd_flows(ctl_ops_config_t *cfg, int argc, char **argv)
{
    bool watch = false;
    long interval_s = 2, count = 0;
    const ctl_num_opt_t nums[] = {{"--interval", &interval_s}, {"--count", &count}, {NULL, NULL}};
    for (int i = 0; i < argc; i++) {
        if (ctl_num_take(nums, argc, argv, &i))
            continue;
        if (!strcmp(argv[i], "--watch"))
            watch = true;
        else {
            fprintf(stderr, "hubctl flows: unexpected argument '%s' "
                            "(options: --watch [--interval S] [--count N], --json)\n",
                    argv[i]);
            return CTL_USAGE;
        }
    }
    if (interval_s < 1 || count < 0) {
        fprintf(stderr, "hubctl flows: --interval and --count must be positive\n");
        return CTL_USAGE;
    }
    if (!watch)
        return ctl_print_flows(cfg);
    signal(SIGINT, ctl_on_sigint);
    bool tty = isatty(STDOUT_FILENO);
    for (long n = 0; !ctl_interrupted && (count == 0 || n < count); n++) {
        if (n > 0)
            sleep((unsigned)interval_s);
        if (ctl_interrupted)
            break;
        if (tty)
            fputs("\033[H\033[2J", stdout);
        time_t now = time(NULL);
        char when[32];
        strftime(when, sizeof when, "%H:%M:%S", localtime(&now));
        if (!cfg->json)
            printf(ctl_tr(CTL_M_FLOWS_AT), when, interval_s);
        int status = ctl_print_flows(cfg);
        fflush(stdout);
        if (status != CTL_OK)
            return status;
    }
    return CTL_OK;
}

static void ctl_queue_row(ctl_table_t *t, json_t *q, const void *ctx)
{
    (void)ctx;
    ctl_table_row(t, ctl_s(q, "receiver"), ctl_int(json_object_get(q, "depth")).s,
                  ctl_int(json_object_get(q, "in_flight")).s,
                  ctl_age(json_object_get(q, "oldest_age_s")).s);
}

static int cmd_queues(ctl_ops_config_t *cfg, int argc, char **argv)
{
    return ctl_list_bare(cfg, "queues", argc, argv, "/api/v1/queues", CTL_M_QUEUES_HEADS,
                         ctl_queue_row, CTL_M_QUEUES_NONE);
}

/* ---- delegations (ủy quyền) ---------------------------------------------- */

/* A rule's date bound as YYYY-MM-DD (UTC, as the delegations file writes
 * it; "until" shows its last day), or "-" when open. */
static ctl_str_t ctl_day(json_t *us_v, bool until)
{
    ctl_str_t out;
    snprintf(out.s, sizeof out.s, "-");
    if (!json_is_number(us_v))
        return out;
    uint64_t us = (uint64_t)json_number_value(us_v);
    if (!us)
        return out;
    if (until && us >= 1000000u)
        us -= 1000000u; /* exclusive end: the day before midnight */
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(out.s, sizeof out.s, "%Y-%m-%d", &tm);
    return out;
}

static void ctl_delegation_row(ctl_table_t *t, json_t *d, const void *ctx)
{
    (void)ctx;
    char procs[1024] = "";
    size_t k, used = 0;
    json_t *p;
    json_array_foreach(json_object_get(d, "procedures"), k, p)
    {
        int n = snprintf(procs + used, sizeof procs - used, "%s%s (%s)", k ? ", " : "",
                         ctl_s(p, "code"), ctl_int(json_object_get(p, "carried")).s);
        if (n < 0 || (size_t)n >= sizeof procs - used)
            break;
        used += (size_t)n;
    }
    char service[512];
    snprintf(service, sizeof service, "%s/%s", ctl_s(d, "authority"), ctl_s(d, "service"));
    ctl_table_row(t, service, procs[0] ? procs : ctl_tr(CTL_M_DELEG_WHOLE), ctl_s(d, "delegate"),
                  ctl_day(json_object_get(d, "from_us"), false).s,
                  ctl_day(json_object_get(d, "until_us"), true).s,
                  json_is_true(json_object_get(d, "in_force")) ? ctl_tr(CTL_M_DELEG_IN_FORCE)
                                                               : ctl_tr(CTL_M_DELEG_NOT_IN_FORCE),
                  ctl_int(json_object_get(d, "carried")).s,
                  ctl_time(json_object_get(d, "last_used_us")).s);
}

static int cmd_delegations(ctl_ops_config_t *cfg, int argc, char **argv)
{
    return ctl_list_bare(cfg, "delegations", argc, argv, "/api/v1/delegations", CTL_M_DELEG_HEADS,
                         ctl_delegation_row, CTL_M_DELEG_NONE);
}

/* ---- the dead-letter queue ---------------------------------------------- */

static bool ctl_parse_seq(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return false;
    *out = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0' && *out > 0;
}

/* "90", "45s", "30m", "12h", "7d" -> seconds. */
static bool ctl_parse_duration(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mult = 1;
    if (!strcmp(end, "") || !strcmp(end, "s"))
        mult = 1;
    else if (!strcmp(end, "m"))
        mult = 60;
    else if (!strcmp(end, "h"))
        mult = 3600;
    else if (!strcmp(end, "d"))
        mult = 86400;
    else
        return false;
    if (errno || end == s || v > ULLONG_MAX / mult)
        return false;
    *out = v * mult;
    return true;
}

static void ctl_dead_row(ctl_table_t *t, json_t *d, const void *ctx)
{
    (void)ctx;
    char seq[32];
    snprintf(seq, sizeof seq, "%lld", (long long)json_integer_value(json_object_get(d, "seq")));
    ctl_table_row(t, seq, ctl_s(d, "sender"), ctl_s(d, "receiver"), ctl_s(d, "service"),
                  ctl_int(json_object_get(d, "attempts")).s,
                  ctl_time(json_object_get(d, "dead_at_us")).s, ctl_s(d, "reason"));
}

static int ctl_dlq_list(ctl_ops_config_t *cfg, const char *token, int argc, char **argv)
{
    unsigned long long after = 0, limit = 100;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--after") && i + 1 < argc && ctl_parse_seq(argv[i + 1], &after))
            i++;
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc && ctl_parse_seq(argv[i + 1], &limit))
            i++;
        else {
            fprintf(stderr,
                    "hubctl dlq list: bad argument '%s' (options: --after SEQ, --limit "
                    "N up to 1000, --json)\n",
                    argv[i]);
            return CTL_USAGE;
        }
    }
    char path[128];
    snprintf(path, sizeof path, "/api/v1/dlq?after=%llu&limit=%llu", after, limit);
    json_t *j;
    ctl_table_t t;
    int status =
        ctl_get_rows(cfg, path, token, "dead_letters", CTL_M_DLQ_HEADS, ctl_dead_row, NULL, &t, &j);
    if (status != CTL_OK || !j)
        return status;
    if (t.n_rows == 0)
        fputs(ctl_tr(after ? CTL_M_DLQ_NONE_AFTER : CTL_M_DLQ_NONE), stdout);
    else
        ctl_table_print(&t, stdout);
    json_t *next = json_object_get(j, "next_after");
    printf(ctl_tr(CTL_M_DLQ_TOTAL), ctl_int(json_object_get(j, "total")).s);
    if (json_is_integer(next))
        printf(ctl_tr(CTL_M_DLQ_MORE), (long long)json_integer_value(next));
    putchar('\n');
    ctl_table_free(&t);
    json_decref(j);
    return CTL_OK;
}

static bool ctl_printable(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t') || p[i] == 0x7f)
            return false;
    }
    return true;
}

static int ctl_dlq_show(ctl_ops_config_t *cfg, const char *token, int argc, char **argv)
{
    unsigned long long seq = 0;
    bool payload = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--payload"))
            payload = true;
        else if (!seq && ctl_parse_seq(argv[i], &seq))
            continue;
        else {
            fprintf(stderr, "hubctl dlq show: usage: hubctl dlq show SEQ [--payload]\n");
            return CTL_USAGE;
        }
    }
    if (!seq) {
        fprintf(stderr, "hubctl dlq show: usage: hubctl dlq show SEQ [--payload]\n");
        return CTL_USAGE;
    }
    char path[128];
    snprintf(path, sizeof path, "/api/v1/dlq/%llu%s", seq, payload ? "?payload=1" : "");
    json_t *j;
    int status = ctl_get_json(cfg, path, token, &j);
    if (status != CTL_OK || !j)
        return status;
    static const char *const keys[] = {"message_id", "sender", "receiver", "service",
                                       "correlation_id", "content_type", "kind", "reason"};
    printf("%-15s %llu\n", "seq", seq);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        printf("%-15s %s\n", keys[i], ctl_s(j, keys[i]));
    printf("%-15s %s\n", "attempts", ctl_int(json_object_get(j, "attempts")).s);
    printf("%-15s %s\n", "accepted_at", ctl_time(json_object_get(j, "accepted_at_us")).s);
    printf("%-15s %s\n", "dead_at", ctl_time(json_object_get(j, "dead_at_us")).s);
    printf("%-15s %s\n", "payload_bytes", ctl_int(json_object_get(j, "payload_bytes")).s);
    const char *b64 = json_string_value(json_object_get(j, "payload_base64"));
    if (b64) {
        size_t cap = strlen(b64) + 1, len = 0;
        unsigned char *bin = malloc(cap);
        if (bin && sodium_base642bin(bin, cap, b64, strlen(b64), NULL, &len, NULL,
                                     sodium_base64_VARIANT_ORIGINAL) == 0 &&
            ctl_printable(bin, len)) {
            printf("payload:\n%.*s\n", (int)len, (const char *)bin);
        } else {
            printf("payload (base64):\n%s\n", b64);
        }
        free(bin);
    }
    json_decref(j);
    return CTL_OK;
}

static int ctl_post(ctl_ops_config_t *cfg, const char *path, const char *token, json_t **out)
{
    *out = NULL;
    ctl_reply_t r;
    int status = ctl_http(cfg, "POST", path, token, &r);
    for (int tries = 1; status == CTL_BUSY && tries < 200; tries++) {
        struct timespec pause = {0, 25 * 1000 * 1000};
        nanosleep(&pause, NULL);
        status = ctl_http(cfg, "POST", path, token, &r);
    }
    if (status == CTL_BUSY) {
        fprintf(stderr, "hubctl: the hub stayed busy writing messages for 5 s; try again\n");
        return CTL_FAIL;
    }
    if (status != CTL_OK)
        return status;
    json_error_t jerr;
    *out = json_loadb(r.body.data, r.body.len, 0, &jerr);
    if (cfg->json) {
        fwrite(r.body.data, 1, r.body.len, stdout);
        fputc('\n', stdout);
    }
    ctl_reply_free(&r);
    return CTL_OK;
}

/* POSTs action (replay, purge) for dead letter seq; when it worked, says
 * "<done> dead letter SEQ<more>" (done NULL, or --json: nothing). */
static int ctl_dlq_act(ctl_ops_config_t *cfg, const char *token, unsigned long long seq,
                       const char *action, const char *done, const char *more)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/dlq/%llu/%s", seq, action);
    json_t *res;
    int status = ctl_post(cfg, path, token, &res);
    if (status == CTL_OK && done && !cfg->json)
        printf("%s dead letter %llu%s\n", done, seq, more);
    json_decref(res);
    return status;
}

static int ctl_dlq_replay(ctl_ops_config_t *cfg, const char *token, int argc, char **argv)
{
    unsigned long long seq;
    if (argc == 1 && !strcmp(argv[0], "--all")) {
        /* Page through the list; replayed messages leave it, so always
         * start again from the front, skipping what fails. */
        unsigned long long after = 0, replayed = 0, failed = 0;
        for (;;) {
            char path[128];
            snprintf(path, sizeof path, "/api/v1/dlq?after=%llu&limit=1000", after);
            ctl_ops_config_t quiet = *cfg;
            quiet.json = false;
            json_t *j;
            int status = ctl_get_json(&quiet, path, token, &j);
            if (status != CTL_OK)
                return status;
            json_t *items = json_object_get(j, "dead_letters");
            if (json_array_size(items) == 0) {
                json_decref(j);
                break;
            }
            size_t i;
            json_t *d;
            json_array_foreach(items, i, d)
            {
                unsigned long long s =
                    (unsigned long long)json_integer_value(json_object_get(d, "seq"));
                after = s;
                if (ctl_dlq_act(&quiet, token, s, "replay", NULL, NULL) == CTL_OK)
                    replayed++;
                else
                    failed++;
            }
            json_decref(j);
        }
        printf("replayed %llu dead letters%s\n", replayed, failed ? "" : "");
        if (failed)
            fprintf(stderr, "hubctl dlq replay: %llu could not be replayed (see above)\n", failed);
        return failed ? CTL_FAIL : CTL_OK;
    }
    if (argc != 1 || !ctl_parse_seq(argv[0], &seq)) {
        fprintf(stderr, "hubctl dlq replay: usage: hubctl dlq replay SEQ | --all\n");
        return CTL_USAGE;
    }
    return ctl_dlq_act(cfg, token, seq, "replay", "replayed",
                       ": it is queued for its receiver again");
}

static int ctl_dlq_purge(ctl_ops_config_t *cfg, const char *token, int argc, char **argv)
{
    unsigned long long seq, seconds;
    char path[128];
    if (argc == 2 && !strcmp(argv[0], "--older-than")) {
        if (!ctl_parse_duration(argv[1], &seconds)) {
            fprintf(stderr, "hubctl dlq purge: --older-than takes a duration such as 90s, 30m, "
                            "12h or 7d\n");
            return CTL_USAGE;
        }
        snprintf(path, sizeof path, "/api/v1/dlq/purge?older_than_s=%llu", seconds);
        json_t *res;
        int status = ctl_post(cfg, path, token, &res);
        if (status == CTL_OK && !cfg->json)
            printf("purged %lld dead letters older than %s\n",
                   (long long)json_integer_value(json_object_get(res, "purged")), argv[1]);
        json_decref(res);
        return status;
    }
    if (argc != 1 || !ctl_parse_seq(argv[0], &seq)) {
        fprintf(stderr,
                "hubctl dlq purge: usage: hubctl dlq purge SEQ | --older-than DURATION\n");
        return CTL_USAGE;
    }
    return ctl_dlq_act(cfg, token, seq, "purge", "purged", "");
}

static int cmd_dlq(ctl_ops_config_t *cfg, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "hubctl dlq: usage: hubctl dlq list|show|replay|purge ...\n");
        return CTL_USAGE;
    }
    char token[CTL_TOKEN_MAX + 1];
    int status = ctl_token(cfg, token, sizeof token);
    if (status != CTL_OK)
        return status;
    const char *sub = argv[0];
    if (!strcmp(sub, "list"))
        status = ctl_dlq_list(cfg, token, argc - 1, argv + 1);
    else if (!strcmp(sub, "show"))
        status = ctl_dlq_show(cfg, token, argc - 1, argv + 1);
    else if (!strcmp(sub, "replay"))
        status = ctl_dlq_replay(cfg, token, argc - 1, argv + 1);
    else if (!strcmp(sub, "purge"))
        status = ctl_dlq_purge(cfg, token, argc - 1, argv + 1);
    else {
        fprintf(stderr, "hubctl dlq: unknown subcommand '%s' (list, show, replay, purge)\n", sub);
        status = CTL_USAGE;
    }
    memset(token, 0, sizeof token);
    return status;
}

/* ---- probe -------------------------------------------------------------- */

typedef enum {
    PROBE_OK = 0,
    PROBE_NOT_CONNECTED,
    PROBE_REFUSED,
    PROBE_TIMED_OUT,
    PROBE_ERROR,
    PROBE_UNREACHABLE
} probe_outcome_t;

static const char *const probe_names[] = {"ok",    "not connected", "refused",
                                          "timed out", "error",     "hub unreachable"};
static const char *const probe_types[] = {"ok",        "not_connected", "refused",
                                          "timed_out", "error",         "unreachable"};

typedef struct {
    char member[256];
    probe_outcome_t outcome;
    double ms;
    char detail[512];
} probe_result_t;

/* One ping in flight. */
typedef struct {
    probe_result_t *r;
    char id[37];
    char payload[64];
    int len;
    uint64_t start, deadline;
} probe_flight_t;

static void probe_fail(adp_client_t *client, probe_result_t *r, int rc)
{
    int nack = adp_last_nack_code(client);
    if (rc == HUB_ENACK && nack == LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE)
        r->outcome = PROBE_NOT_CONNECTED;
    else if (rc == HUB_ENACK || rc == HUB_EREFUSED)
        r->outcome = PROBE_REFUSED;
    else if (rc == HUB_ETIMEDOUT)
        r->outcome = PROBE_TIMED_OUT;
    else
        r->outcome = PROBE_ERROR;
    snprintf(r->detail, sizeof r->detail, "%s",
             rc == HUB_ETIMEDOUT ? "no answer in time (connected, but its adapter did not reply)"
                                 : adp_last_error(client));
}

/* Pings every member in results[0..n), keeping up to `parallel` pings in
 * flight on the one connection (the SDK tracks each by its message id). */
static void probe_all(adp_client_t *client, probe_result_t *results, size_t n, long parallel,
                      uint32_t timeout_ms)
{
    probe_flight_t *flights = calloc((size_t)parallel, sizeof *flights);
    size_t next = 0, active = 0;
    while (flights && (next < n || active > 0)) {
        for (long f = 0; f < parallel && next < n; f++) {
            if (flights[f].r)
                continue;
            probe_flight_t *fl = &flights[f];
            fl->r = &results[next++];
            fl->len = snprintf(fl->payload, sizeof fl->payload, "probe %llu",
                               (unsigned long long)hub_now_us());
            fl->start = hub_monotonic_us();
            fl->deadline = fl->start + (uint64_t)timeout_ms * 1000u;
            int rc = adp_request_start(client, fl->r->member, ADP_PING_SERVICE, "text/plain",
                                       fl->payload, (size_t)fl->len, ADP_ONLINE_ONLY, fl->id);
            if (rc != 0) {
                probe_fail(client, fl->r, rc);
                fl->r = NULL;
                continue;
            }
            active++;
        }
        adp_run(client, 5);
        for (long f = 0; f < parallel; f++) {
            probe_flight_t *fl = &flights[f];
            if (!fl->r)
                continue;
            adp_reply_t reply;
            int rc = adp_request_poll(client, fl->id, &reply);
            uint64_t now = hub_monotonic_us();
            if (rc == HUB_EAGAIN && now < fl->deadline)
                continue;
            fl->r->ms = (double)(now - fl->start) / 1000.0;
            if (rc == 0) {
                bool same = reply.payload_len == (size_t)fl->len &&
                            !memcmp(reply.payload, fl->payload, (size_t)fl->len);
                fl->r->outcome = same ? PROBE_OK : PROBE_ERROR;
                snprintf(fl->r->detail, sizeof fl->r->detail, "%s",
                         same ? "pong" : "answered with a different payload");
                adp_reply_free(&reply);
            } else {
                if (rc == HUB_EAGAIN) {
                    adp_request_cancel(client, fl->id);
                    rc = HUB_ETIMEDOUT;
                }
                probe_fail(client, fl->r, rc);
            }
            fl->r = NULL;
            active--;
        }
    }
    free(flights);
}

static void xml_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            /* XML 1.0 allows no control characters but tab, CR and LF. */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
                fputc('?', f);
            else
                fputc(*s, f);
        }
    }
}

static int probe_write_junit(const char *path, const probe_result_t *results, size_t n,
                             size_t failures, double total_s, const char *endpoint)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"hubctl probe\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
               "time=\"%.3f\">\n",
            n, failures, total_s);
    fprintf(f, "  <testsuite name=\"lth.probe\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
               "skipped=\"0\" time=\"%.3f\" timestamp=\"%s\" hostname=\"",
            n, failures, total_s, stamp);
    xml_escaped(f, endpoint);
    fprintf(f, "\">\n");
    for (size_t i = 0; i < n; i++) {
        const probe_result_t *r = &results[i];
        fprintf(f, "    <testcase classname=\"lth.probe\" name=\"");
        xml_escaped(f, r->member);
        fprintf(f, "\" time=\"%.3f\"", r->ms / 1000.0);
        if (r->outcome == PROBE_OK) {
            fprintf(f, "/>\n");
            continue;
        }
        fprintf(f, ">\n      <failure type=\"%s\" message=\"", probe_types[r->outcome]);
        xml_escaped(f, probe_names[r->outcome]);
        fprintf(f, "\">");
        xml_escaped(f, r->member);
        fprintf(f, ": ");
        xml_escaped(f, probe_names[r->outcome]);
        fprintf(f, ": ");
        xml_escaped(f, r->detail);
        fprintf(f, "</failure>\n    </testcase>\n");
    }
    fprintf(f, "  </testsuite>\n</testsuites>\n");
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

static int probe_targets_from_api(ctl_ops_config_t *cfg, char ***targets, size_t *n)
{
    ctl_ops_config_t quiet = *cfg;
    quiet.json = false;
    json_t *j;
    int status = ctl_get_json(&quiet, "/api/v1/members", NULL, &j);
    if (status != CTL_OK)
        return status;
    json_t *members = json_object_get(j, "members");
    *targets = calloc(json_array_size(members) + 1, sizeof **targets);
    *n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        if (!json_is_true(json_object_get(m, "known")))
            continue; /* only members registered in the key directory */
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id && *targets)
            (*targets)[(*n)++] = strdup(id);
    }
    json_decref(j);
    return *targets ? CTL_OK : CTL_FAIL;
}

/* The probe could not start (configuration, member list, connection):
 * one failed case for the hub, and one per member asked for, so that a CI
 * job reads a failure with its reason instead of finding no file. */
static void probe_junit_failed_start(const char *junit, const ctl_ops_config_t *cfg,
                                     char **targets, size_t n_targets, probe_outcome_t outcome,
                                     const char *reason)
{
    if (!junit)
        return;
    probe_result_t *results = calloc(n_targets + 1, sizeof *results);
    if (!results) {
        fprintf(stderr, "hubctl probe: out of memory writing %s\n", junit);
        return;
    }
    snprintf(results[0].member, sizeof results[0].member, "hub %.200s",
             cfg->conf.member.hub_endpoint[0] ? cfg->conf.member.hub_endpoint
                                              : "(no hub_endpoint)");
    for (size_t k = 0; k <= n_targets; k++) {
        if (k > 0)
            snprintf(results[k].member, sizeof results[k].member, "%s", targets[k - 1]);
        results[k].outcome = outcome;
        snprintf(results[k].detail, sizeof results[k].detail, "%s%s", k ? "not probed: " : "",
                 reason);
    }
    if (probe_write_junit(junit, results, n_targets + 1, n_targets + 1, 0,
                          cfg->conf.member.hub_endpoint) != 0)
        fprintf(stderr, "hubctl probe: cannot write %s: %s\n", junit, strerror(errno));
    free(results);
}

static void probe_free_targets(char **targets, size_t n_targets)
{
    for (size_t k = 0; targets && k < n_targets; k++)
        free(targets[k]);
    free(targets);
}

static int cmd_probe(ctl_ops_config_t *cfg, int argc, char **argv)
{
    bool all = false;
    long parallel = 8, timeout_ms = 3000;
    const char *junit = NULL;
    char **targets = calloc((size_t)argc + 1, sizeof *targets);
    size_t n_targets = 0;
    if (!targets)
        return CTL_FAIL;
    const ctl_num_opt_t nums[] = {
        {"--parallel", &parallel}, {"--timeout", &timeout_ms}, {NULL, NULL}};
    const ctl_opt_t opts[] = {{"--junit", &junit}, {NULL, NULL}};
    for (int i = 0; i < argc; i++) {
        if (ctl_num_take(nums, argc, argv, &i) || ctl_opt_take(opts, argc, argv, &i))
            continue;
        if (!strcmp(argv[i], "--all"))
            all = true;
        else if (argv[i][0] != '-' && hub_member_id_valid(argv[i]))
            targets[n_targets++] = strdup(argv[i]);
        else {
            fprintf(stderr, "hubctl probe: bad argument '%s'\n", argv[i]);
            probe_free_targets(targets, n_targets);
            return CTL_USAGE;
        }
    }
    const char *problem = NULL;
    if ((all == (n_targets > 0)) || parallel < 1 || parallel > 64 || timeout_ms < 1)
        problem = "usage: hubctl probe --all | MEMBER-ID... [--parallel N (1-64)] [--timeout MS] "
                  "[--junit FILE]";
    else if (!cfg->conf.member.hub_endpoint[0] || !cfg->conf.member.hub_key_file[0] ||
             !cfg->conf.member.member_key_file[0])
        problem = "the config must set hub_endpoint, hub_key_file and member_key_file (probe pings "
                  "through the hub as a member)";
    if (problem) {
        fprintf(stderr, "hubctl probe: %s\n", problem);
        probe_junit_failed_start(junit, cfg, targets, n_targets, PROBE_ERROR, problem);
        probe_free_targets(targets, n_targets);
        return CTL_USAGE;
    }
    int status = CTL_OK;
    if (all) {
        free(targets);
        targets = NULL;
        status = probe_targets_from_api(cfg, &targets, &n_targets);
        if (status != CTL_OK) {
            char why[700];
            snprintf(why, sizeof why,
                     "cannot read the member list from %s/api/v1/members (needed by --all); "
                     "check http_url and that hubd serves HTTP (http_listen)",
                     cfg->conf.http_url);
            probe_junit_failed_start(junit, cfg, NULL, 0, PROBE_UNREACHABLE, why);
            probe_free_targets(targets, n_targets);
            return status;
        }
    }
    adp_config_t acfg = {cfg->conf.member.hub_endpoint,
                         cfg->conf.member.hub_key_file,
                         cfg->conf.member.member_key_file,
                         (uint32_t)timeout_ms,
                         "hubctl " HUB_VERSION,
                         NULL};
    adp_client_t *client = NULL;
    char err[HUB_ERRMSG_MAX];
    int rc = adp_connect(&acfg, &client, err, sizeof err);
    if (rc != 0) {
        /* A hub that answers the handshake with another key than
         * hub_key_file is a refusal (exit 4), like one that refuses our
         * member key; no answer at all is a failure (exit 1). */
        bool refused = rc == HUB_EREFUSED || strstr(err, "CURVE handshake") != NULL;
        fprintf(stderr, "hubctl probe: cannot reach the hub: %s\n", err);
        probe_junit_failed_start(junit, cfg, targets, n_targets,
                                 refused ? PROBE_REFUSED : PROBE_UNREACHABLE, err);
        probe_free_targets(targets, n_targets);
        return refused ? CTL_REFUSED : CTL_FAIL;
    }
    /* hubctl's own member is not probed: it would only ping itself. */
    const char *self = adp_member_id(client);
    probe_result_t *results = calloc(n_targets ? n_targets : 1, sizeof *results);
    size_t n = 0;
    uint64_t start = hub_monotonic_us();
    /* Up to --parallel pings in flight at once (default 8): a member that
     * is connected but silent costs its timeout without holding up the
     * others. */
    for (size_t k = 0; k < n_targets && results; k++) {
        if (all && !strcmp(targets[k], self))
            continue;
        snprintf(results[n++].member, sizeof results[0].member, "%s", targets[k]);
    }
    if (results)
        probe_all(client, results, n, parallel, (uint32_t)timeout_ms);
    double total_s = (double)(hub_monotonic_us() - start) / 1e6;
    adp_close(&client);
    size_t failures = 0;
    ctl_table_t t;
    ctl_table_init(&t, "MEMBER,RESULT,>TIME MS,DETAIL");
    for (size_t k = 0; k < n; k++) {
        char ms[32];
        snprintf(ms, sizeof ms, "%.2f", results[k].ms);
        ctl_table_row(&t, results[k].member, probe_names[results[k].outcome], ms,
                      results[k].detail);
        failures += results[k].outcome != PROBE_OK;
    }
    if (cfg->json) {
        json_t *arr = json_array();
        for (size_t k = 0; k < n; k++)
            json_array_append_new(arr, json_pack("{s:s,s:s,s:f,s:s}", "member", results[k].member,
                                                 "result", probe_types[results[k].outcome], "ms",
                                                 results[k].ms, "detail", results[k].detail));
        json_t *doc = json_pack("{s:o,s:i,s:i}", "results", arr, "probed", (json_int_t)n,
                                "failed", (json_int_t)failures);
        char *text = json_dumps(doc, JSON_INDENT(0) | JSON_COMPACT);
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(doc);
    } else {
        ctl_table_print(&t, stdout);
        printf("%zu probed, %zu ok, %zu failed in %.2f s\n", n, n - failures, failures, total_s);
    }
    ctl_table_free(&t);
    if (junit && probe_write_junit(junit, results, n, failures, total_s,
                                   cfg->conf.member.hub_endpoint) != 0) {
        fprintf(stderr, "hubctl probe: cannot write %s: %s\n", junit, strerror(errno));
        status = CTL_FAIL;
    }
    for (size_t k = 0; k < n; k++) {
        if (results[k].outcome != PROBE_OK)
            fprintf(stderr, "hubctl probe: %s failed: %s (%s)\n", results[k].member,
                    probe_names[results[k].outcome], results[k].detail);
    }
    if (failures)
        status = CTL_FAIL;
    for (size_t k = 0; k < n_targets; k++)
        free(targets[k]);
    free(targets);
    free(results);
    return status;
}

/* ---- dispatch ----------------------------------------------------------- */

static const char *const ctl_commands[] = {"status", "members", "flows", "queues", "delegations",
                                             "dlq", "probe"};

bool hubctl_ops_is_command(const char *cmd)
{
    for (size_t i = 0; i < sizeof ctl_commands / sizeof ctl_commands[0]; i++) {
        if (cmd && !strcmp(cmd, ctl_commands[i]))
            return true;
    }
    return false;
}

void hubctl_ops_usage(FILE *out)
{
    fprintf(out,
            "  status                     the hub at a glance (readiness, members, traffic)\n"
            "  members [--state connected|offline]\n"
            "                             every member: state, last seen, address, counts\n"
            "  flows [--watch [--interval S] [--count N]]\n"
            "                             traffic per sender, receiver and service\n"
            "  queues                     messages waiting per receiver\n"
            "  delegations                the delegation rules (ủy quyền), whole service or\n"
            "                             per procedure, and what each carried, last use\n"
            "  dlq list [--after SEQ] [--limit N] | show SEQ [--payload] |\n"
            "      replay SEQ|--all | purge SEQ|--older-than DURATION (90s, 30m, 12h, 7d)\n"
            "                             the dead-letter queue (needs the operator token)\n"
            "  probe --all | MEMBER-ID... [--timeout MS] [--parallel N] [--junit FILE]\n"
            "                             ping members through the hub; exit 1 if any fails or\n"
            "                             the hub cannot be reached, 4 if the hub refuses (a\n"
            "                             wrong hub_key_file or member key); --junit FILE is\n"
            "                             written in every case, each failure with its reason\n"
            "  (status .. dlq read the HTTP API: http_url (default " CTL_DEFAULT_URL "),\n"
            "   http_token_file; --url URL, --token-file FILE, --json for scripts)\n"
            "  (their tables are in Vietnamese; LANG=en* or lang = en in the config file\n"
            "   for English; members shows agency names from the hub's members_file)\n");
}

/* The commands of this file, by name. */
static const struct {
    const char *name;
    int (*run)(ctl_ops_config_t *cfg, int argc, char **argv);
} ctl_ops_cmds[] = {
    {"status", cmd_status}, {"members", cmd_members},         {"flows", cmd_flows},
    {"queues", cmd_queues}, {"delegations", cmd_delegations}, {"dlq", cmd_dlq},
    {"probe", cmd_probe},
};

int hubctl_ops_main(const char *config_path, const char *cmd, int argc, char **argv)
{
    ctl_ops_config_t cfg;
    int status = ctl_load(config_path, &cfg);
    if (status != CTL_OK)
        return status;
    ctl_lang_init(cfg.conf.lang);
    /* The options are removed from argv in place: work on a copy. */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args)
        return CTL_FAIL;
    memcpy(args, argv, (size_t)argc * sizeof *args);
    int n = ctl_common_options(&cfg, cmd, argc, args);
    if (n < 0) {
        free(args);
        return CTL_USAGE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    status = CTL_USAGE;
    for (size_t i = 0; i < sizeof ctl_ops_cmds / sizeof ctl_ops_cmds[0]; i++)
        if (!strcmp(cmd, ctl_ops_cmds[i].name))
            status = ctl_ops_cmds[i].run(&cfg, n, args);
    curl_global_cleanup();
    free(args);
    return status;
}
