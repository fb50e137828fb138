/* hub_check — see hub_check.h. */
#include "hub_check.h"
#include "hub_archive.h"

#include "hub_cert.h"
#include "hub_config.h"
#include "hub_delegation.h"
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_memberdir.h"
#include "hub_ops.h"
#include "hub_policy.h"
#include "hub_store.h"
#include "hub_wire.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *config_path;
    FILE *out;
    int errors;
    int warnings;
} check__check_t;

static void check__finding(check__check_t *c, bool error, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* One finding against the configuration line that sets `key` (or the file
 * alone when the key is not set there, i.e. its default is in use). */
static void check__finding(check__check_t *c, bool error, const char *key, const char *fmt, ...)
{
    unsigned line = key ? hub_config_key_line(c->config_path, key) : 0;
    if (line)
        fprintf(c->out, "%s:%u: %s: ", c->config_path, line, error ? "error" : "warning");
    else
        fprintf(c->out, "%s: %s: ", c->config_path, error ? "error" : "warning");
    if (key && !line)
        fprintf(c->out, "%s (not set): ", key);
    else if (key)
        fprintf(c->out, "%s: ", key);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
    if (error)
        c->errors++;
    else
        c->warnings++;
}

/* A loader's message that already starts with its own "FILE:LINE:" (policy,
 * delegations, key files) is printed as it is: it names the line to fix. */
static bool check__print_located(FILE *out, const char *path, const char *msg, bool need_line)
{
    size_t n = strlen(path);
    if (strncmp(msg, path, n) != 0 || msg[n] != ':')
        return false;
    const char *rest = msg + n + 1;
    if (need_line && !(*rest >= '0' && *rest <= '9'))
        return false;
    if (*rest >= '0' && *rest <= '9') {
        const char *colon = strchr(rest, ':');
        if (!colon)
            return false;
        fprintf(out, "%.*s: error:%s\n", (int)(colon - msg), msg, colon + 1);
    } else {
        fprintf(out, "%s: error:%s\n", path, rest);
    }
    return true;
}

static void check__loader_error(check__check_t *c, const char *key, const char *path,
                                const char *msg)
{
    if (check__print_located(c->out, path, msg, true))
        c->errors++;
    else
        check__finding(c, true, key, "%s", msg);
}

static void check__keys(check__check_t *c, const hub_config_t *cfg, hub_keypair_t *own)
{
    char err[HUB_ERRMSG_MAX];
    memset(own, 0, sizeof *own);
    int rc = hub_keyfile_read(cfg->key_file, own, err, sizeof err);
    if (rc != 0) {
        check__loader_error(c, "key_file", cfg->key_file, err);
        return;
    }
    if (!own->has_secret)
        check__finding(c, true, "key_file",
                       "%s holds no secret key: name the hub's .secret file (make one with "
                       "'hubctl keygen HUB-MEMBER-ID DIR')",
                       cfg->key_file);
    else if (!own->has_sign && (cfg->require_signatures || cfg->audit))
        check__finding(c, true, "key_file",
                       "%s has no signing key, which signatures and the audit log need: "
                       "regenerate the hub's keys with 'hubctl keygen'",
                       cfg->key_file);
}

static void check__members(check__check_t *c, const hub_config_t *cfg)
{
    char err[HUB_ERRMSG_MAX];
    if (!cfg->ca_cert[0]) {
        hub_keydir_t *keys = NULL;
        if (hub_keydir_load(cfg->key_dir, &keys, err, sizeof err) != 0)
            check__finding(c, true, "key_dir", "%s", err);
        else
            check__finding(c, false, "key_dir",
                           "development mode: members are admitted by the key directory alone; "
                           "set ca_cert, crl_file and cert_dir to require certificates");
        hub_keydir_destroy(&keys);
        return;
    }
    uint64_t now = hub_now_us();
    hub_certdir_t *cd = NULL;
    if (hub_certdir_load(cfg->ca_cert, cfg->crl_file, cfg->cert_dir, now, &cd, err,
                         sizeof err) != 0) {
        check__finding(c, true, "ca_cert", "%s", err);
        return;
    }
    for (size_t i = 0; i < hub_certdir_count(cd); i++) {
        const hub_cert_info_t *ci = hub_certdir_at(cd, i);
        if (ci->status != HUB_CERT_VALID)
            check__finding(c, false, "cert_dir",
                           "%s/%s (member %s) is refused (%s): %s; issue a new one with 'hubctl "
                           "cert issue' or remove the file",
                           cfg->cert_dir, ci->file,
                           ci->keys.member_id[0] ? ci->keys.member_id : "?",
                           hub_cert_status_name(ci->status), ci->reason);
        else if (ci->not_after_us < now + (uint64_t)cfg->cert_warn_days * 86400000000ull)
            check__finding(c, false, "cert_dir",
                           "%s/%s (member %s) expires in less than %u days: renew it with "
                           "'hubctl cert issue'",
                           cfg->cert_dir, ci->file, ci->keys.member_id, cfg->cert_warn_days);
    }
    const hub_cert_info_t *ca = hub_certdir_ca(cd);
    if (ca && ca->not_after_us < now + (uint64_t)cfg->cert_warn_days * 86400000000ull)
        check__finding(c, false, "ca_cert",
                       "the CA certificate expires in less than %u days: plan a new CA and "
                       "re-issue the members' certificates",
                       cfg->cert_warn_days);
    uint64_t this_update = 0, next_update = 0;
    hub_certdir_crl_times(cd, &this_update, &next_update);
    if (next_update && next_update < now)
        check__finding(c, false, "crl_file",
                       "the CRL's nextUpdate has passed: re-sign it with 'hubctl ca crl' (or "
                       "revoke again) and send SIGHUP");
    if (hub_certdir_valid_count(cd) == 0)
        check__finding(c, false, "cert_dir", "no valid member certificate: no member can connect");
    hub_certdir_destroy(&cd);
}

static void check__rules(check__check_t *c, const hub_config_t *cfg)
{
    char err[HUB_ERRMSG_MAX];
    if (cfg->policy_file[0]) {
        hub_policy_t *policy = NULL;
        if (hub_policy_load(cfg->policy_file, &policy, err, sizeof err) != 0)
            check__loader_error(c, "policy_file", cfg->policy_file, err);
        hub_policy_destroy(&policy);
    } else {
        check__finding(c, false, "policy_file",
                       "every member may call every service (development mode); set "
                       "policy_file to deny by default");
    }
    if (cfg->delegations_file[0]) {
        hub_delegations_t *d = NULL;
        if (hub_delegations_load(cfg->delegations_file, &d, err, sizeof err) != 0)
            check__loader_error(c, "delegations_file", cfg->delegations_file, err);
        hub_delegations_destroy(&d);
    }
    if (cfg->members_file[0] && cfg->http_listen[0]) {
        hub_memberdir_t *directory = NULL;
        if (hub_memberdir_load(cfg->members_file, &directory, err, sizeof err) != 0)
            check__loader_error(c, "members_file", cfg->members_file, err);
        hub_memberdir_destroy(&directory);
    }
    if (cfg->http_token_file[0]) {
        char token[HUB_OPS_TOKEN_MAX + 1];
        if (hub_ops_read_token_file(cfg->http_token_file, token, sizeof token, err,
                                    sizeof err) != 0)
            check__finding(c, true, "http_token_file", "%s", err);
        memset(token, 0, sizeof token);
    }
    if (cfg->archive_dir[0]) {
        hub_archive_key_t key;
        if (hub_archive_key_read(cfg->archive_key_file, &key, err, sizeof err) != 0)
            check__finding(c, true, "archive_key_file", "%s", err);
        sodium_memzero(&key, sizeof key);
    }
}

/* A directory hubd will create if missing: it, or its nearest existing
 * parent, must be a writable directory. */
static void check__dir(check__check_t *c, const char *key, const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (;;) {
        struct stat st;
        if (stat(path, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                check__finding(c, true, key, "%s is not a directory", path);
            else if (access(path, W_OK | X_OK) != 0)
                check__finding(c, true, key,
                               "%s is not writable by this user (uid %ld): make it owned by the "
                               "user that runs hubd (the package uses 'lienthong')",
                               path, (long)geteuid());
            return;
        }
        if (errno != ENOENT) {
            check__finding(c, true, key, "%s: %s", path, strerror(errno));
            return;
        }
        char *slash = strrchr(path, '/');
        if (!slash || slash == path)
            return;
        *slash = '\0';
    }
}

/* store = postgresql: the server must be reachable and writable and hold
 * a schema hubd can use (store_migrate applies missing migrations at
 * start); data_dir still holds the audit log and state files. */
static void check__store_pg(check__check_t *c, const hub_config_t *cfg)
{
    char err[HUB_ERRMSG_MAX];
    hub_store_info_t info;
    int rc = hub_store_pg_inspect(cfg->store_dsn, &info, err, sizeof err);
    if (rc != 0 && !(rc == HUB_ENOENT && cfg->store_migrate))
        check__finding(c, true, "store_dsn", "%s", err);
    else if (rc == 0 && info.format > HUB_STORE_PG_SCHEMA)
        check__finding(c, true, "store_dsn",
                       "the database's hub schema is version %u, newer than this hubd knows (%u): "
                       "run a hubd at least as new as the one that wrote it",
                       info.format, HUB_STORE_PG_SCHEMA);
    else if (rc == 0 && info.format < HUB_STORE_PG_SCHEMA && !cfg->store_migrate)
        check__finding(c, true, "store_dsn",
                       "the database's hub schema is version %u: run 'hubctl store init' to "
                       "migrate it to %u",
                       info.format, HUB_STORE_PG_SCHEMA);
    check__dir(c, "data_dir", cfg->data_dir);
}

static void check__store(check__check_t *c, const hub_config_t *cfg)
{
    char err[HUB_ERRMSG_MAX];
    hub_store_info_t info;
    int rc = cfg->store_backend == HUB_STORE_POSTGRESQL
                 ? 0
                 : hub_store_inspect(cfg->data_dir, &info, err, sizeof err);
    if (cfg->store_backend == HUB_STORE_POSTGRESQL) {
        check__store_pg(c, cfg);
    } else if (rc == HUB_ENOENT) {
        check__dir(c, "data_dir", cfg->data_dir); /* a new store, made at start */
    } else if (rc != 0) {
        check__finding(c, true, "data_dir", "%s", err);
    } else {
        check__dir(c, "data_dir", cfg->data_dir);
        if (info.format < HUB_STORE_FORMAT)
            check__finding(c, false, "data_dir",
                           "store %s is in format %u: hubd upgrades it in place to format %u at "
                           "start; back it up first with 'hubctl backup DIR'",
                           cfg->data_dir, info.format, HUB_STORE_FORMAT);
    }
    if (cfg->audit)
        check__dir(c, "audit_dir", cfg->audit_dir);
    if (cfg->archive_dir[0])
        check__dir(c, "archive_dir", cfg->archive_dir);
    if (cfg->audit && cfg->audit_tsa_url[0] && strncmp(cfg->audit_tsa_url, "http://", 7) != 0 &&
        strncmp(cfg->audit_tsa_url, "https://", 8) != 0)
        check__finding(c, true, "audit_tsa_url",
                       "audit_tsa_url must be an http:// or https:// URL of the time-stamping "
                       "authority, not '%s'",
                       cfg->audit_tsa_url);
    if (cfg->audit_tsa_cert[0] && access(cfg->audit_tsa_cert, R_OK) != 0)
        check__finding(c, true, "audit_tsa_cert", "cannot read the TSA certificate %s: %s",
                       cfg->audit_tsa_cert, strerror(errno));
}

int hub_check_config(const char *config_path, FILE *out)
{
    check__check_t c = {.config_path = config_path, .out = out};
    hub_config_t cfg;
    char err[HUB_ERRMSG_MAX];
    if (hub_config_load(config_path, &cfg, err, sizeof err) != 0) {
        /* The parser's message names FILE:LINE already, or the file; the
         * other checks need a configuration, so this is the only finding. */
        if (!check__print_located(out, config_path, err, false))
            fprintf(out, "%s: error: %s\n", config_path, err);
        return 1;
    }
    hub_keypair_t own;
    check__keys(&c, &cfg, &own);
    hub_keypair_wipe(&own);
    check__members(&c, &cfg);
    check__rules(&c, &cfg);
    check__store(&c, &cfg);
    return c.errors;
}
