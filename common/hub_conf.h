/* hub_conf — reads the "key = value" files that configure hubd, hub-adapter
 * and hold keys.
 *
 * Format: one `key = value` per line; blank lines and lines starting with '#'
 * are ignored; whitespace around key and value is trimmed; a value may be
 * wrapped in double quotes to keep leading or trailing spaces. Keys are
 * [a-z0-9_.-]. The parser calls `on_entry` for each entry in order; the
 * callback returns 0 or a HUB_E* code and may fill `err` with a sentence,
 * which the parser prefixes with "FILE:LINE: ".
 */
#ifndef HUB_CONF_H
#define HUB_CONF_H

#include "hub_error.h"

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

#endif
