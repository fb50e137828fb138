#include "hubctl_config.h"

#include "hub_error.h"

#include <stdio.h>
#include <string.h>

static int hubctl__config_entry(const char *key, const char *value, void *user, char *err,
                                size_t err_size)
{
    hubctl_config_t *cfg = user;
    int rc = hub_conf_member_entry(&cfg->member, key, value, err, err_size);
    if (rc != HUB_ENOTFOUND)
        return rc;
    if (!strcmp(key, "http_url"))
        return hub_conf_str(key, value, cfg->http_url, sizeof cfg->http_url, err, err_size);
    if (!strcmp(key, "http_token_file"))
        return hub_conf_path(cfg->member.base_dir, key, value, cfg->http_token_file,
                             sizeof cfg->http_token_file, err, err_size);
    if (!strcmp(key, "lang"))
        return hub_conf_lang(key, value, cfg->lang, sizeof cfg->lang, err, err_size);
    snprintf(err, err_size,
             "unknown setting '%s' (expected hub_endpoint or hub_endpoints, hub_key_file, "
             "member_key_file, "
             "http_url, http_token_file, lang)",
             key);
    return HUB_EINVAL;
}

int hubctl_config_load(const char *path, hubctl_config_t *cfg, char *err, size_t err_size)
{
    memset(cfg, 0, sizeof *cfg);
    hub_conf_member_init(&cfg->member, path);
    return hub_conf_parse_file(path, hubctl__config_entry, cfg, err, err_size);
}
