/* hub_conf — reads the "key = value" files that configure hubd, hub-adapter
 * and hold keys.
 *
 * Format: one `key = value` per line; blank lines and lines starting with '#'
 * are ignored; whitespace around key and value is trimmed; a value may be
 * wrapped in double quotes to keep leading or trailing spaces. Keys are
 * [a-z0-9_.-]. The parser calls `on_entry` for each entry in order; the
 * callback returns 0 or a HUB_E* code and may fill `err` with a sentence,
 * which the parser prefixes with "FILE:LINE: ".
 *
 * A relative path in a file is relative to the file's folder
 * (hub_conf_base_dir, hub_conf_path). The settings with which a member-side
 * program reaches the hub (hub-adapter's file, hubctl's) are read by one
 * function, hub_conf_member_entry.
 */
#ifndef HUB_CONF_H
#define HUB_CONF_H

#include "hub_error.h"

#include <limits.h>
#include <stddef.h>

typedef int (*hub_conf_entry_cb)(const char *key, const char *value, void *user,
                                 char *err, size_t err_size);

/* Parses the file at `path`. Returns 0, HUB_ENOENT/HUB_EIO when the file
 * cannot be read, HUB_EPARSE for a malformed line, or the callback's code.
 * On error `err` says what is wrong and where. */
int hub_conf_parse_file(const char *path, hub_conf_entry_cb on_entry, void *user, char *err,
                        size_t err_size);
/* The same over a NUL-terminated buffer; `name` is used in messages. */
int hub_conf_parse_text(const char *name, const char *text, hub_conf_entry_cb on_entry,
                        void *user, char *err, size_t err_size);

/* Helpers for callbacks: parse an unsigned integer in [min, max]. */
int hub_conf_uint(const char *key, const char *value, unsigned long long min,
                  unsigned long long max, unsigned long long *out, char *err, size_t err_size);
/* Copies value into dst (size dst_size) or reports that it is too long. */
int hub_conf_str(const char *key, const char *value, char *dst, size_t dst_size, char *err,
                 size_t err_size);

/* A language setting (lang = vi | en: the tables' and pages' language)
 * into dst; HUB_EINVAL, "KEY must be vi (Vietnamese) or en (English), not
 * 'VALUE'", for any other value. */
int hub_conf_lang(const char *key, const char *value, char *dst, size_t dst_size, char *err,
                  size_t err_size);

/* The folder of the file at path, against which its relative paths are
 * resolved: "." when path has no '/', "/" for a file in the root. */
void hub_conf_base_dir(const char *path, char *dst, size_t dst_size);
/* value as a path: an absolute or empty value as written, any other
 * relative to base_dir. HUB_EINVAL ("KEY: path too long" or "KEY is longer
 * than N bytes") when it does not fit dst. */
int hub_conf_path(const char *base_dir, const char *key, const char *value, char *dst,
                  size_t dst_size, char *err, size_t err_size);

/* Hub endpoints. A member may be given several endpoints of one hub (its
 * nodes, which share the hub's key): "tcp://a:5555, tcp://b:5555", comma
 * separated, spaces allowed around each. Each must be tcp://HOST:PORT
 * (port 1 to 65535) or ipc://PATH. */
#define HUB_ENDPOINTS_MAX 16 /* endpoints in one list */
#define HUB_ENDPOINT_MAX 256 /* bytes of one endpoint, NUL included */
/* Splits and checks the list in value (the setting `key`, named in err):
 * out[0..*n_out) receive the endpoints in order. HUB_EINVAL, with err
 * naming the bad item and what to write instead, for an empty list or
 * item, a malformed endpoint or more than max endpoints. */
int hub_endpoint_list_parse(const char *key, const char *value, char out[][HUB_ENDPOINT_MAX],
                            size_t max, size_t *n_out, char *err, size_t err_size);

/* How a member-side program reaches the hub: the settings hub_endpoint (one
 * endpoint) or hub_endpoints (a list, see above; not both), hub_key_file
 * (the hub's public key) and member_key_file (this member's secret key),
 * key files relative to the configuration file. */
typedef struct {
    char base_dir[PATH_MAX];        /* the configuration file's folder */
    char hub_endpoint[HUB_ENDPOINTS_MAX * HUB_ENDPOINT_MAX]; /* checked endpoints of the hub's
                                       ROUTER, joined by "," (what adp_config_t takes) */
    char endpoint_key[16];          /* which key set hub_endpoint ("" = none yet) */
    char hub_key_file[PATH_MAX];    /* the hub's .pub */
    char member_key_file[PATH_MAX]; /* this member's .secret */
} hub_conf_member_t;

/* Empties m and sets its base_dir from the configuration file's path. */
void hub_conf_member_init(hub_conf_member_t *m, const char *path);
/* For a hub_conf_entry_cb: takes key if it is one of the settings above and
 * returns 0 or HUB_EINVAL (with err); HUB_ENOTFOUND, err untouched, for any
 * other key, which the caller then reads itself. */
int hub_conf_member_entry(hub_conf_member_t *m, const char *key, const char *value, char *err,
                          size_t err_size);

#endif
