/* hubctl_config — hubctl's one settings file (--config FILE or
 * $LTH_HUBCTL_CONFIG), read once for every command:
 *   hub_endpoint, hub_key_file, member_key_file   how to reach the hub as a
 *                                                 member (hub_conf_member_t)
 *   http_url                                      the operator HTTP API
 *   http_token_file                               the operator token
 *   lang = vi | en                                the tables' language
 * Paths are relative to the file's folder. An unknown key or a bad value is
 * an error naming the file, the line and the key.
 */
#ifndef HUBCTL_CONFIG_H
#define HUBCTL_CONFIG_H

#include "hub_conf.h"

#include <limits.h>
#include <stddef.h>

typedef struct {
    hub_conf_member_t member;       /* hub_endpoint, hub_key_file, member_key_file */
    char http_url[512];             /* "" when not set */
    char http_token_file[PATH_MAX]; /* "" when not set */
    char lang[8];                   /* "vi", "en" or "" (hubctl_i18n.h) */
} hubctl_config_t;

/* Empties cfg and reads the file at path into it. Returns 0, or a HUB_E*
 * code with a sentence in err (the file cannot be read, a line is
 * malformed, a key is unknown or its value wrong). */
int hubctl_config_load(const char *path, hubctl_config_t *cfg, char *err, size_t err_size);

#endif
