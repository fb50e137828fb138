#include "pop_access.h"

#include "adp_plugin_util.h"
#include "hub_error.h"
#include "hub_clock.h"
#include "lth_access.h"
#include "lth_httpc.h"
#include "lth_httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct pop_access {
    const adp_plugin_host_t *host;
    lth_access_t *reg;
    lth_httpd_t *httpd;
    char token[256];
};

static int pop__token(pop_access_t *self, const char *path, char *err, size_t err_size)
{
    return lth_httpc_read_token("access_token_file", path, self->token, sizeof self->token, err,
                                err_size);
}

static int pop__add_row(const lth_access_row_t *row, void *user)
{
    char when[32];
    lth_access_format_time(row->at_us, when);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "time", when, "requester",
                          row->requester, "service", row->service, "purpose", row->purpose,
                          "dossier_code", row->dossier_code, "outcome", row->outcome,
                          "message_id", row->message_id);
    return o && json_array_append_new(user, o) == 0 ? 0 : 1;
}

/* POST /api/v1/access {"citizen": ID, "from": T, "to": T}: the look-ups of
 * one person. The answer never repeats the ID. */
static void pop__on_http(const lth_httpd_request_t *req, lth_httpd_response_t *resp, void *user)
{
    pop_access_t *self = user;
    if (strcmp(req->path, "/api/v1/access") != 0) {
        lth_httpd_error(resp, 404, "unknown path: use POST /api/v1/access", NULL);
        return;
    }
    if (!lth_httpd_bearer_ok(req->authorization, self->token)) {
        lth_httpd_error(resp, 401,
                        "this endpoint needs 'Authorization: Bearer TOKEN' with the token of "
                        "plugin.access_token_file",
                        NULL);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        lth_httpd_error(resp, 405,
                        "use POST with a JSON body {\"citizen\": ID, \"from\": DATE, \"to\": "
                        "DATE} (the ID stays out of URLs and their logs)",
                        NULL);
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, 0, &jerr);
    const char *citizen = NULL, *from = NULL, *to = NULL;
    if (!body || json_unpack(body, "{s:s, s?s, s?s}", "citizen", &citizen, "from", &from, "to",
                             &to) != 0) {
        json_decref(body);
        lth_httpd_error(resp, 400,
                        "the body must be a JSON object with \"citizen\" (a personal ID number) "
                        "and optional \"from\" and \"to\" (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)",
                        NULL);
        return;
    }
    uint64_t from_us = 0, to_us = UINT64_MAX >> 1;
    if ((from && lth_access_parse_time(from, false, &from_us) != 0) ||
        (to && lth_access_parse_time(to, true, &to_us) != 0)) {
        json_decref(body);
        lth_httpd_error(resp, 400, "from and to must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)",
                        NULL);
        return;
    }
    json_t *rows = json_array();
    int rc = rows ? lth_access_query(self->reg, citizen, from_us, to_us, pop__add_row, rows)
                  : HUB_ENOMEM;
    json_decref(body);
    if (rc != 0) {
        json_decref(rows);
        lth_httpd_error(resp, 500, "the access register could not be read", NULL);
        return;
    }
    json_t *out = json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(rows),
                            "accesses", rows);
    resp->body = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    if (!resp->body) {
        lth_httpd_error(resp, 500, "out of memory", NULL);
        return;
    }
    resp->body_len = strlen(resp->body);
    resp->status = 200;
}

static int pop__write_port(const char *path, int port, char *err, size_t err_size)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, err_size, "plugin.access_port_file: cannot write %s: %s", path,
                 strerror(errno));
        return HUB_EIO;
    }
    return 0;
}

int pop_access_init(const adp_plugin_host_t *host, const char *db_path, pop_access_t **out,
                    char *err, size_t err_size)
{
    *out = NULL;
    const char *reg_path = host->config(host, "access_register");
    if (reg_path && !strcmp(reg_path, "off")) {
        adp_plugin_log(host, ADP_LOG_WARN,
                       "plugin.access_register = off: look-ups are not recorded for the "
                       "people they concern (development only)");
        return 0;
    }
    char reg_default[PATH_MAX], salt_default[PATH_MAX];
    snprintf(reg_default, sizeof reg_default, "%s.access", db_path);
    snprintf(salt_default, sizeof salt_default, "%s.access-salt", db_path);
    const char *salt_path = host->config(host, "access_salt");
    if (!reg_path || !*reg_path)
        reg_path = reg_default;
    if (!salt_path || !*salt_path)
        salt_path = salt_default;
    pop_access_t *self = calloc(1, sizeof *self);
    if (!self)
        return HUB_ENOMEM;
    self->host = host;
    uint8_t salt[LTH_ACCESS_SALT_LEN];
    int rc = lth_access_salt_load(salt_path, true, salt, err, err_size);
    if (rc == 0)
        rc = lth_access_open(reg_path, salt, &self->reg, err, err_size);
    sodium_memzero(salt, sizeof salt);
    const char *listen = host->config(host, "access_listen");
    if (rc == 0 && listen && *listen) {
        const char *token_file = host->config(host, "access_token_file");
        if (!token_file || !*token_file) {
            snprintf(err, err_size, "plugin.access_listen needs plugin.access_token_file: the "
                                    "register answers only callers holding that token");
            rc = HUB_EINVAL;
        }
        if (rc == 0)
            rc = pop__token(self, token_file, err, err_size);
        if (rc == 0)
            rc = lth_httpd_new(listen, NULL, pop__on_http, self, &self->httpd, err, err_size);
        const char *port_file = host->config(host, "access_port_file");
        if (rc == 0 && port_file && *port_file)
            rc = pop__write_port(port_file, lth_httpd_port(self->httpd), err, err_size);
    }
    if (rc != 0) {
        pop_access_destroy(&self);
        return rc;
    }
    adp_plugin_log(host, ADP_LOG_INFO, "access register %s%s", reg_path,
                   self->httpd ? "; its JSON endpoint is POST /api/v1/access" : "");
    *out = self;
    return 0;
}

int pop_access_note(pop_access_t *self, const adp_message_t *msg, const uint8_t *response,
                    size_t response_len)
{
    if (!self)
        return 0;
    return lth_access_note_lookup(self->reg, msg->sender, msg->service, msg->message_id,
                                  hub_now_us(), msg->payload, msg->payload_len, response,
                                  response_len);
}

int pop_access_note_verify(pop_access_t *self, const adp_message_t *msg,
                           const uint8_t *response, size_t response_len)
{
    if (!self)
        return 0;
    return lth_access_note_verify(self->reg, msg->sender, msg->service, msg->message_id,
                                  hub_now_us(), msg->payload, msg->payload_len, response,
                                  response_len);
}

void pop_access_tick(pop_access_t *self)
{
    /* Accepting, reading and answering may each need a turn: a few turns
     * that never wait, so that look-ups are not held up. */
    for (int i = 0; self && self->httpd && i < 3; i++)
        lth_httpd_serve(self->httpd, 0);
}

void pop_access_destroy(pop_access_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pop_access_t *self = *self_p;
    lth_httpd_destroy(&self->httpd);
    lth_access_close(&self->reg);
    sodium_memzero(self->token, sizeof self->token);
    free(self);
    *self_p = NULL;
}
