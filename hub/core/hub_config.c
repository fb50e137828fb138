#include "hub_config.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_ops.h"
#include "hub_store.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    hub_config_t *cfg;
    char base_dir[PATH_MAX];
} config__ctx_t;

void hub_config_defaults(hub_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen, sizeof cfg->listen, "tcp://127.0.0.1:5555");
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", HUB_DEFAULT_STATE_DIR);
    cfg->max_payload_bytes = 1u << 20;
    cfg->max_frame_bytes = 16u << 20;
    cfg->heartbeat_ms = 1000;
    cfg->default_ttl_ms = 24u * 3600u * 1000u;
    cfg->max_ttl_ms = 30u * 24u * 3600u * 1000u;
    cfg->max_store_bytes = 1ull << 30;
    cfg->max_queue_depth = 1000000;
    cfg->max_in_flight = 4096;
    cfg->redelivery_ms = 5000;
    cfg->cluster_beat_ms = 2000;
    cfg->max_attempts = 8;
    cfg->dedup_window_ms = 24u * 3600u * 1000u;
    cfg->require_signatures = true;
    cfg->public_directory = false;
    cfg->max_open_requests = 65536;
    cfg->max_waiting_bytes = 16u << 20;
    cfg->drain_timeout_ms = 30000;
    cfg->rate_msgs = 20000;
    cfg->rate_bytes = 64u << 20;
    cfg->flood_factor = 5;
    cfg->flood_ban_s = 30;
    /* Store quotas default to shares of max_store_bytes (hub_config_load),
     * so that no one member can fill the store. */
    cfg->quota_send_msgs = 0;
    cfg->quota_send_bytes = 0;
    cfg->quota_recv_msgs = 0;
    cfg->quota_recv_bytes = 0;
    cfg->store_reserve_percent = 10;
    cfg->cert_warn_days = 30;
    hub_alarm_thresholds_default(&cfg->alarms);
    cfg->audit = true;
    cfg->archive_retention_days = 30;
    cfg->audit_tsa_every_s = 60;
    cfg->audit_tsa_retry_s = 30;
    cfg->log_level = HUB_LOG_INFO;
    snprintf(cfg->lang, sizeof cfg->lang, "vi");
    /* Several nodes over one PostgreSQL store tell themselves apart by
     * node_id; the host name is a stable default for one node per host. */
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "node1");
    host[strcspn(host, ".")] = '\0';
    size_t n = 0;
    for (const char *c = host; *c && n + 1 < sizeof cfg->node_id; c++)
        if (isalnum((unsigned char)*c) || *c == '-' || *c == '_')
            cfg->node_id[n++] = *c;
    cfg->node_id[n] = '\0';
    if (!n)
        snprintf(cfg->node_id, sizeof cfg->node_id, "node1");
}

static int config__bool(const char *key, const char *value, bool *dst, char *err, size_t err_size)
{
    if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on")) {
        *dst = true;
        return 0;
    }
    if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off")) {
        *dst = false;
        return 0;
    }
    snprintf(err, err_size, "%s must be yes or no, not '%.40s'", key, value);
    return HUB_EINVAL;
}

/* A text setting copied whole into dst, refused when it does not fit. */
static int config__str(const char *key, const char *value, char *dst, size_t dst_size, char *err,
                       size_t err_size)
{
    if ((size_t)snprintf(dst, dst_size, "%s", value) >= dst_size) {
        snprintf(err, err_size, "%s is longer than %zu bytes", key, dst_size - 1);
        return HUB_EINVAL;
    }
    return 0;
}

static int config__path(const config__ctx_t *ctx, const char *key, const char *value, char *dst,
                        size_t dst_size, char *err, size_t err_size)
{
    return hub_conf_path(ctx->base_dir, key, value, dst, dst_size, err, err_size);
}

static int config__u32(const char *key, const char *value, uint64_t min, uint64_t max,
                       uint32_t *dst, char *err, size_t err_size)
{
    unsigned long long v;
    int rc = hub_conf_uint(key, value, min, max, &v, err, err_size);
    if (rc == 0)
        *dst = (uint32_t)v;
    return rc;
}

static int config__entry(const char *key, const char *value, void *user, char *err, size_t err_size)
{
    config__ctx_t *ctx = user;
    hub_config_t *cfg = ctx->cfg;
    unsigned long long v;
    int rc;
    if (!strcmp(key, "listen")) {
        if (strncmp(value, "tcp://", 6) && strncmp(value, "ipc://", 6)) {
            snprintf(err, err_size, "listen must be a ZeroMQ endpoint such as "
                                    "tcp://127.0.0.1:5555 (or tcp://127.0.0.1:* for any port)");
            return HUB_EINVAL;
        }
        return hub_conf_str(key, value, cfg->listen, sizeof cfg->listen, err, err_size);
    }
    if (!strcmp(key, "key_file"))
        return config__path(ctx, key, value, cfg->key_file, sizeof cfg->key_file, err, err_size);
    if (!strcmp(key, "key_dir"))
        return config__path(ctx, key, value, cfg->key_dir, sizeof cfg->key_dir, err, err_size);
    if (!strcmp(key, "ca_cert"))
        return config__path(ctx, key, value, cfg->ca_cert, sizeof cfg->ca_cert, err, err_size);
    if (!strcmp(key, "crl_file"))
        return config__path(ctx, key, value, cfg->crl_file, sizeof cfg->crl_file, err, err_size);
    if (!strcmp(key, "crl_state_file"))
        return config__path(ctx, key, value, cfg->crl_state_file, sizeof cfg->crl_state_file, err,
                            err_size);
    if (!strcmp(key, "cert_dir"))
        return config__path(ctx, key, value, cfg->cert_dir, sizeof cfg->cert_dir, err, err_size);
    if (!strcmp(key, "cert_warn_days")) {
        rc = config__u32(key, value, 1, 3650, &cfg->cert_warn_days, err, err_size);
        cfg->alarms.cert_warn_days = cfg->cert_warn_days;
        return rc;
    }
    if (!strcmp(key, "max_flows"))
        return config__u32(key, value, 100, 1000000, &cfg->max_flows, err, err_size);
    {
        /* Alarm thresholds: 0 switches that level off. */
        struct {
            const char *name;
            uint32_t max, *dst;
        } const alarms[] = {
            {"alarm_offline_warn_s", 86400 * 30, &cfg->alarms.offline_warn_s},
            {"alarm_tsa_warn_s", 86400 * 30, &cfg->alarms.tsa_warn_s},
            {"alarm_tsa_crit_s", 86400 * 30, &cfg->alarms.tsa_crit_s},
            {"audit_tsa_every_s", 86400, &cfg->audit_tsa_every_s},
            {"audit_tsa_retry_s", 86400, &cfg->audit_tsa_retry_s},
            {"alarm_offline_crit_s", 86400 * 30, &cfg->alarms.offline_crit_s},
            {"alarm_queue_age_warn_s", 86400 * 30, &cfg->alarms.queue_age_warn_s},
            {"alarm_queue_age_crit_s", 86400 * 30, &cfg->alarms.queue_age_crit_s},
            {"alarm_dead_letters_warn", 1000000000, &cfg->alarms.dead_letters_warn},
            {"alarm_dead_letters_crit", 1000000000, &cfg->alarms.dead_letters_crit},
            {"alarm_cert_crit_days", 3650, &cfg->alarms.cert_crit_days},
            {"alarm_store_warn_percent", 100, &cfg->alarms.store_warn_percent},
            {"alarm_store_crit_percent", 100, &cfg->alarms.store_crit_percent},
            {"alarm_refusals_warn", 1000000000, &cfg->alarms.refusals_warn},
            {"alarm_refusals_crit", 1000000000, &cfg->alarms.refusals_crit},
        };
        for (size_t i = 0; i < sizeof alarms / sizeof alarms[0]; i++)
            if (!strcmp(key, alarms[i].name))
                return config__u32(key, value, 0, alarms[i].max, alarms[i].dst, err, err_size);
    }
    if (!strcmp(key, "delegations_file"))
        return config__path(ctx, key, value, cfg->delegations_file, sizeof cfg->delegations_file,
                            err, err_size);
    if (!strcmp(key, "data_dir"))
        return config__path(ctx, key, value, cfg->data_dir, sizeof cfg->data_dir, err, err_size);
    if (!strcmp(key, "store")) {
        if (!strcmp(value, "lmdb"))
            cfg->store_backend = HUB_STORE_LMDB;
        else if (!strcmp(value, "postgresql"))
            cfg->store_backend = HUB_STORE_POSTGRESQL;
        else {
            snprintf(err, err_size, "store = %s: give lmdb (the default) or postgresql", value);
            return HUB_EINVAL;
        }
        return 0;
    }
    if (!strcmp(key, "node_id")) {
        size_t len = strlen(value);
        bool ok = len > 0 && len < sizeof cfg->node_id;
        for (size_t i = 0; ok && i < len; i++)
            ok = isalnum((unsigned char)value[i]) || value[i] == '-' || value[i] == '_';
        if (!ok) {
            snprintf(err, err_size,
                     "node_id = %s: give 1 to %zu letters, digits, '-' or '_' naming this node "
                     "(e.g. hub-a), unique among the nodes sharing the store",
                     value, sizeof cfg->node_id - 1);
            return HUB_EINVAL;
        }
        memcpy(cfg->node_id, value, len + 1);
        return 0;
    }
    if (!strcmp(key, "store_dsn"))
        return config__str(key, value, cfg->store_dsn, sizeof cfg->store_dsn, err, err_size);
    if (!strcmp(key, "cluster"))
        return config__bool(key, value, &cfg->cluster, err, err_size);
    if (!strcmp(key, "cluster_listen"))
        return config__str(key, value, cfg->cluster_listen, sizeof cfg->cluster_listen, err,
                           err_size);
    if (!strcmp(key, "cluster_beat_ms"))
        return config__u32(key, value, 100, 60000, &cfg->cluster_beat_ms, err, err_size);
    if (!strcmp(key, "store_migrate"))
        return config__bool(key, value, &cfg->store_migrate, err, err_size);
    if (!strcmp(key, "audit_dir"))
        return config__path(ctx, key, value, cfg->audit_dir, sizeof cfg->audit_dir, err, err_size);
    if (!strcmp(key, "archive_dir"))
        return config__path(ctx, key, value, cfg->archive_dir, sizeof cfg->archive_dir, err,
                            err_size);
    if (!strcmp(key, "archive_key_file"))
        return config__path(ctx, key, value, cfg->archive_key_file, sizeof cfg->archive_key_file,
                            err, err_size);
    if (!strcmp(key, "archive_retention_days"))
        return config__u32(key, value, 1, 36500, &cfg->archive_retention_days, err, err_size);
    if (!strcmp(key, "policy_file"))
        return config__path(ctx, key, value, cfg->policy_file, sizeof cfg->policy_file, err,
                            err_size);
    if (!strcmp(key, "http_token_file"))
        return config__path(ctx, key, value, cfg->http_token_file, sizeof cfg->http_token_file, err,
                            err_size);
    if (!strcmp(key, "http_allowed_hosts"))
        return hub_conf_str(key, value, cfg->http_allowed_hosts, sizeof cfg->http_allowed_hosts,
                            err, err_size);
    if (!strcmp(key, "http_public"))
        return config__bool(key, value, &cfg->http_public, err, err_size);
    if (!strcmp(key, "http_max_connections_per_client"))
        return config__u32(key, value, 1, 100000, &cfg->http_max_connections_per_client, err,
                           err_size);
    if (!strcmp(key, "http_header_timeout_ms"))
        return config__u32(key, value, 100, 600000, &cfg->http_header_timeout_ms, err, err_size);
    if (!strcmp(key, "members_file"))
        return config__path(ctx, key, value, cfg->members_file, sizeof cfg->members_file, err,
                            err_size);
    if (!strcmp(key, "lang"))
        return hub_conf_lang(key, value, cfg->lang, sizeof cfg->lang, err, err_size);
    if (!strcmp(key, "http_listen"))
        return hub_conf_str(key, value, cfg->http_listen, sizeof cfg->http_listen, err,
                            err_size);
    if (!strcmp(key, "max_payload_bytes"))
        return config__u32(key, value, 1, 64u << 20, &cfg->max_payload_bytes, err, err_size);
    if (!strcmp(key, "max_frame_bytes"))
        return config__u32(key, value, 4096, 256u << 20, &cfg->max_frame_bytes, err, err_size);
    if (!strcmp(key, "heartbeat_ms"))
        return config__u32(key, value, 50, 60000, &cfg->heartbeat_ms, err, err_size);
    if (!strcmp(key, "default_ttl_ms"))
        return config__u32(key, value, 1, UINT32_MAX, &cfg->default_ttl_ms, err, err_size);
    if (!strcmp(key, "max_ttl_ms"))
        return config__u32(key, value, 1, UINT32_MAX, &cfg->max_ttl_ms, err, err_size);
    if (!strcmp(key, "max_in_flight"))
        return config__u32(key, value, 1, 1000000, &cfg->max_in_flight, err, err_size);
    if (!strcmp(key, "redelivery_ms"))
        return config__u32(key, value, 10, 3600000, &cfg->redelivery_ms, err, err_size);
    if (!strcmp(key, "dedup_window_ms"))
        return config__u32(key, value, 1000, UINT32_MAX, &cfg->dedup_window_ms, err, err_size);
    if (!strcmp(key, "max_attempts"))
        return config__u32(key, value, 1, 1000, &cfg->max_attempts, err, err_size);
    if (!strcmp(key, "max_store_bytes")) {
        rc = hub_conf_uint(key, value, 1u << 20, 1ull << 44, &v, err, err_size);
        cfg->max_store_bytes = v;
        return rc;
    }
    if (!strcmp(key, "max_queue_depth")) {
        rc = hub_conf_uint(key, value, 1, 1ull << 40, &v, err, err_size);
        cfg->max_queue_depth = v;
        return rc;
    }
    if (!strcmp(key, "public_directory"))
        return config__bool(key, value, &cfg->public_directory, err, err_size);
    if (!strcmp(key, "max_open_requests"))
        return config__u32(key, value, 1, 10000000, &cfg->max_open_requests, err, err_size);
    if (!strcmp(key, "drain_timeout_ms"))
        return config__u32(key, value, 100, 3600000, &cfg->drain_timeout_ms, err, err_size);
    if (!strcmp(key, "flood_cutoff_seconds"))
        return config__u32(key, value, 0, 3600, &cfg->flood_factor, err, err_size);
    if (!strcmp(key, "flood_ban_seconds"))
        return config__u32(key, value, 1, 86400, &cfg->flood_ban_s, err, err_size);
    if (!strcmp(key, "store_reserve_percent"))
        return config__u32(key, value, 0, 50, &cfg->store_reserve_percent, err, err_size);
    {
        struct {
            const char *name;
            uint64_t min, max, *dst;
        } const u64s[] = {
            {"max_waiting_bytes", 64u << 10, 1ull << 40, &cfg->max_waiting_bytes},
            {"audit_max_file_bytes", 1024, 1ull << 40, &cfg->audit_max_file_bytes},
            {"audit_checkpoint_records", 1, 1ull << 32, &cfg->audit_checkpoint_records},
            {"rate_msgs", 0, 1ull << 32, &cfg->rate_msgs},
            {"rate_bytes", 0, 1ull << 40, &cfg->rate_bytes},
            {"quota_send_msgs", 0, 1ull << 40, &cfg->quota_send_msgs},
            {"quota_send_bytes", 0, 1ull << 44, &cfg->quota_send_bytes},
            {"quota_recv_msgs", 0, 1ull << 40, &cfg->quota_recv_msgs},
            {"quota_recv_bytes", 0, 1ull << 44, &cfg->quota_recv_bytes},
        };
        for (size_t i = 0; i < sizeof u64s / sizeof u64s[0]; i++)
            if (!strcmp(key, u64s[i].name)) {
                rc = hub_conf_uint(key, value, u64s[i].min, u64s[i].max, &v, err, err_size);
                *u64s[i].dst = v;
                return rc;
            }
    }
    if (!strcmp(key, "require_signatures"))
        return config__bool(key, value, &cfg->require_signatures, err, err_size);
    if (!strcmp(key, "audit"))
        return config__bool(key, value, &cfg->audit, err, err_size);
    if (!strcmp(key, "audit_accept_key_change"))
        return config__bool(key, value, &cfg->audit_accept_key_change, err, err_size);
    if (!strcmp(key, "audit_accept_gap"))
        return config__bool(key, value, &cfg->audit_accept_gap, err, err_size);
    if (!strcmp(key, "audit_tsa_url"))
        return hub_conf_str(key, value, cfg->audit_tsa_url, sizeof cfg->audit_tsa_url, err,
                            err_size);
    if (!strcmp(key, "audit_tsa_cert"))
        return config__path(ctx, key, value, cfg->audit_tsa_cert, sizeof cfg->audit_tsa_cert, err,
                            err_size);
    if (!strcmp(key, "log_level")) {
        hub_log_level_t level;
        if (hub_log_parse_level(value, &level) != 0) {
            snprintf(err, err_size, "log_level must be debug, info, warn or error");
            return HUB_EINVAL;
        }
        cfg->log_level = level;
        return 0;
    }
    snprintf(err, err_size, "unknown setting '%s' (see deploy/hubd.conf.example for the list)",
             key);
    return HUB_EINVAL;
}

int hub_config_load(const char *path, hub_config_t *cfg, char *err, size_t err_size)
{
    hub_config_defaults(cfg);
    config__ctx_t ctx = {.cfg = cfg};
    hub_conf_base_dir(path, ctx.base_dir, sizeof ctx.base_dir);
    int rc = hub_conf_parse_file(path, config__entry, &ctx, err, err_size);
    if (rc != 0)
        return rc;
    /* Unset store quotas: a quarter of the store per sender, half per
     * receiver, so that one member's traffic cannot fill it for all. */
    if (cfg->quota_send_bytes == 0)
        cfg->quota_send_bytes = cfg->max_store_bytes / 4;
    if (cfg->quota_recv_bytes == 0)
        cfg->quota_recv_bytes = cfg->max_store_bytes / 2;
    if (cfg->quota_send_msgs == 0) /* a sender may fill four receivers' queues */
        cfg->quota_send_msgs = cfg->max_queue_depth * 4;
    if (cfg->quota_recv_msgs == 0)
        cfg->quota_recv_msgs = cfg->max_queue_depth;
    if (cfg->store_backend == HUB_STORE_POSTGRESQL && !cfg->store_dsn[0]) {
        snprintf(err, err_size,
                 "%s: store = postgresql needs store_dsn (a libpq connection string, e.g. "
                 "'host=db1,db2 dbname=hub user=hub target_session_attrs=read-write')",
                 path);
        return HUB_EINVAL;
    }
    if (cfg->cluster && cfg->store_backend != HUB_STORE_POSTGRESQL) {
        snprintf(err, err_size,
                 "%s: cluster = on needs store = postgresql (the nodes share its store); "
                 "remove 'cluster' for one node on LMDB",
                 path);
        return HUB_EINVAL;
    }
    const char *missing = !cfg->key_file[0] ? "key_file" : !cfg->data_dir[0] ? "data_dir" : NULL;
    if (missing) {
        snprintf(err, err_size, "%s: '%s' is required (see deploy/hubd.conf.example)", path,
                 missing);
        return HUB_EINVAL;
    }
    bool certs = cfg->ca_cert[0] || cfg->crl_file[0] || cfg->cert_dir[0];
    if (certs && !(cfg->ca_cert[0] && cfg->crl_file[0] && cfg->cert_dir[0])) {
        snprintf(err, err_size, "%s: certificate mode needs all of ca_cert, crl_file and cert_dir",
                 path);
        return HUB_EINVAL;
    }
    if (certs && cfg->key_dir[0]) {
        snprintf(err, err_size, "%s: set either key_dir (development mode) or ca_cert, crl_file "
                                "and cert_dir (certificates), not both",
                 path);
        return HUB_EINVAL;
    }
    if (!certs && !cfg->key_dir[0]) {
        snprintf(err, err_size, "%s: set ca_cert, crl_file and cert_dir (member certificates) or, "
                                "for development, key_dir",
                 path);
        return HUB_EINVAL;
    }
    if (cfg->audit && !cfg->audit_dir[0] &&
        (size_t)snprintf(cfg->audit_dir, sizeof cfg->audit_dir, "%s/audit", cfg->data_dir) >=
            sizeof cfg->audit_dir) {
        snprintf(err, err_size, "%s: data_dir is too long to hold the audit log", path);
        return HUB_EINVAL;
    }
    if (cfg->archive_dir[0] && !cfg->archive_key_file[0]) {
        snprintf(err, err_size,
                 "%s: archive_dir is set but archive_key_file is not: the archive is encrypted "
                 "with that key (make one with 'hubctl archive keygen FILE')",
                 path);
        return HUB_EINVAL;
    }
    if (certs && !cfg->crl_state_file[0] &&
        (size_t)snprintf(cfg->crl_state_file, sizeof cfg->crl_state_file, "%s/crl.state",
                         cfg->data_dir) >= sizeof cfg->crl_state_file) {
        snprintf(err, err_size, "%s: data_dir is too long to hold crl.state", path);
        return HUB_EINVAL;
    }
    if (cfg->http_listen[0] && !cfg->http_public && !hub_ops_listen_is_loopback(cfg->http_listen)) {
        snprintf(err, err_size,
                 "%s: http_listen = %s is not a loopback address: the operator endpoint would "
                 "face the network. Use 127.0.0.1:PORT, or set http_public = yes (then every "
                 "/api/ route and /metrics need the token of http_token_file)",
                 path, cfg->http_listen);
        return HUB_EINVAL;
    }
    if (cfg->http_public && cfg->http_listen[0] && !cfg->http_token_file[0]) {
        snprintf(err, err_size,
                 "%s: http_public = yes needs http_token_file: beyond loopback every /api/ "
                 "route and /metrics need the operator token",
                 path);
        return HUB_EINVAL;
    }
    const struct {
        const char *warn, *crit;
        uint32_t w, c;
        bool falling; /* certificate days: critical below the warning */
    } pairs[] = {
        {"alarm_offline_warn_s", "alarm_offline_crit_s", cfg->alarms.offline_warn_s,
         cfg->alarms.offline_crit_s, false},
        {"alarm_queue_age_warn_s", "alarm_queue_age_crit_s", cfg->alarms.queue_age_warn_s,
         cfg->alarms.queue_age_crit_s, false},
        {"alarm_dead_letters_warn", "alarm_dead_letters_crit", cfg->alarms.dead_letters_warn,
         cfg->alarms.dead_letters_crit, false},
        {"cert_warn_days", "alarm_cert_crit_days", cfg->alarms.cert_warn_days,
         cfg->alarms.cert_crit_days, true},
        {"alarm_store_warn_percent", "alarm_store_crit_percent", cfg->alarms.store_warn_percent,
         cfg->alarms.store_crit_percent, false},
        {"alarm_refusals_warn", "alarm_refusals_crit", cfg->alarms.refusals_warn,
         cfg->alarms.refusals_crit, false},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (!pairs[i].w || !pairs[i].c)
            continue;
        if (pairs[i].falling ? pairs[i].c > pairs[i].w : pairs[i].c < pairs[i].w) {
            snprintf(err, err_size, "%s: %s (%u) must be %s %s (%u), or 0 to switch it off", path,
                     pairs[i].crit, pairs[i].c, pairs[i].falling ? "at most" : "at least",
                     pairs[i].warn, pairs[i].w);
            return HUB_EINVAL;
        }
    }
    if (cfg->max_payload_bytes + 65536u > cfg->max_frame_bytes) {
        snprintf(err, err_size,
                 "%s: max_frame_bytes (%u) must exceed max_payload_bytes (%u) by at least 65536",
                 path, cfg->max_frame_bytes, cfg->max_payload_bytes);
        return HUB_EINVAL;
    }
    return 0;
}

unsigned hub_config_key_line(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    unsigned lineno = 0, found = 0;
    size_t klen = strlen(key);
    bool line_start = true;
    while (fgets(line, sizeof line, f)) {
        /* A line longer than the buffer comes in pieces: count it once. */
        bool was_start = line_start;
        line_start = strchr(line, '\n') != NULL;
        if (!was_start)
            continue;
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, key, klen) != 0)
            continue;
        p += klen;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '=')
            found = lineno;
    }
    fclose(f);
    return found;
}
