#include "hub_conf.h"
#include "hub_error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUB__CONF_MAX_BYTES (4u << 20)

static char *hub__trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int hub__key_ok(const char *key)
{
    if (!*key)
        return 0;
    for (const char *p = key; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' ||
              *p == '-'))
            return 0;
    }
    return 1;
}

int hub_conf_parse_text(const char *name, const char *text, hub_conf_entry_cb on_entry,
                        void *user, char *err, size_t err_size)
{
    char *copy = strdup(text);
    if (!copy) {
        snprintf(err, err_size, "%s: out of memory", name);
        return HUB_ENOMEM;
    }
    int rc = 0, lineno = 0;
    /* strtok_r would merge empty lines and break line numbers: split by hand. */
    char *line = copy;
    while (line) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        char *t = hub__trim(line);
        if (*t == '\0' || *t == '#') {
            line = next;
            continue;
        }
        char *eq = strchr(t, '=');
        if (!eq) {
            snprintf(err, err_size, "%s:%d: expected 'key = value', found '%.60s'", name, lineno,
                     t);
            rc = HUB_EPARSE;
            break;
        }
        *eq = '\0';
        char *key = hub__trim(t);
        char *value = hub__trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        if (!hub__key_ok(key)) {
            snprintf(err, err_size, "%s:%d: '%.60s' is not a valid key (use a-z, 0-9, _ . -)",
                     name, lineno, key);
            rc = HUB_EPARSE;
            break;
        }
        char cb_err[HUB_ERRMSG_MAX] = "";
        rc = on_entry(key, value, user, cb_err, sizeof cb_err);
        if (rc != 0) {
            snprintf(err, err_size, "%s:%d: %s", name, lineno,
                     cb_err[0] ? cb_err : hub_strerror(rc));
            break;
        }
        line = next;
    }
    free(copy);
    return rc;
}

int hub_conf_parse_file(const char *path, hub_conf_entry_cb on_entry, void *user, char *err,
                        size_t err_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(e));
        return e == ENOENT ? HUB_ENOENT : (e == EACCES ? HUB_EPERM : HUB_EIO);
    }
    char *buf = malloc(HUB__CONF_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, err_size, "%s: out of memory", path);
        return HUB_ENOMEM;
    }
    size_t n = fread(buf, 1, HUB__CONF_MAX_BYTES + 1, f);
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        free(buf);
        snprintf(err, err_size, "cannot read %s", path);
        return HUB_EIO;
    }
    if (n > HUB__CONF_MAX_BYTES) {
        free(buf);
        snprintf(err, err_size, "%s is larger than 4 MiB; is it the right file?", path);
        return HUB_EPARSE;
    }
    if (memchr(buf, '\0', n)) {
        free(buf);
        snprintf(err, err_size, "%s holds a NUL byte; it is not a text file", path);
        return HUB_EPARSE;
    }
    buf[n] = '\0';
    int rc = hub_conf_parse_text(path, buf, on_entry, user, err, err_size);
    free(buf);
    return rc;
}

int hub_conf_uint(const char *key, const char *value, unsigned long long min,
                  unsigned long long max, unsigned long long *out, char *err, size_t err_size)
{
    char *end = NULL;
    errno = 0;
    if (*value == '-' || *value == '\0')
        goto bad;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    snprintf(err, err_size, "%s must be a whole number from %llu to %llu, not '%.40s'", key, min,
             max, value);
    return HUB_EINVAL;
}

int hub_conf_str(const char *key, const char *value, char *dst, size_t dst_size, char *err,
                 size_t err_size)
{
    if (strlen(value) >= dst_size) {
        snprintf(err, err_size, "%s is longer than %zu bytes", key, dst_size - 1);
        return HUB_EINVAL;
    }
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

int hub_conf_lang(const char *key, const char *value, char *dst, size_t dst_size, char *err,
                  size_t err_size)
{
    if (strcmp(value, "vi") != 0 && strcmp(value, "en") != 0) {
        snprintf(err, err_size, "%s must be vi (Vietnamese) or en (English), not '%.40s'", key,
                 value);
        return HUB_EINVAL;
    }
    return hub_conf_str(key, value, dst, dst_size, err, err_size);
}

void hub_conf_base_dir(const char *path, char *dst, size_t dst_size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dst, dst_size, ".");
    else if (slash == path)
        snprintf(dst, dst_size, "/");
    else
        snprintf(dst, dst_size, "%.*s", (int)(slash - path), path);
}

int hub_conf_path(const char *base_dir, const char *key, const char *value, char *dst,
                  size_t dst_size, char *err, size_t err_size)
{
    if (value[0] == '/' || value[0] == '\0')
        return hub_conf_str(key, value, dst, dst_size, err, err_size);
    if ((size_t)snprintf(dst, dst_size, "%s/%s", base_dir, value) >= dst_size) {
        snprintf(err, err_size, "%s: path too long", key);
        return HUB_EINVAL;
    }
    return 0;
}

void hub_conf_member_init(hub_conf_member_t *m, const char *path)
{
    memset(m, 0, sizeof *m);
    hub_conf_base_dir(path, m->base_dir, sizeof m->base_dir);
}

/* Whether text[0..len) is tcp://HOST:PORT (port 1-65535) or ipc://PATH. */
static bool hub__endpoint_ok(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (text[i] == ' ' || text[i] == '\t' || (unsigned char)text[i] < 0x20)
            return false;
    if (len > 6 && !strncmp(text, "ipc://", 6))
        return true;
    if (len < 6 || strncmp(text, "tcp://", 6) != 0)
        return false;
    const char *host = text + 6, *end = text + len, *colon = NULL;
    for (const char *p = host; p < end; p++)
        if (*p == ':')
            colon = p;
    if (!colon || colon == host || colon + 1 == end || end - (colon + 1) > 5)
        return false;
    unsigned long port = 0;
    for (const char *p = colon + 1; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    return port >= 1 && port <= 65535;
}

int hub_endpoint_list_parse(const char *key, const char *value, char out[][HUB_ENDPOINT_MAX],
                            size_t max, size_t *n_out, char *err, size_t err_size)
{
    *n_out = 0;
    const char *p = value;
    for (size_t item = 1;; item++) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        size_t len = (size_t)(p - start);
        while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
            len--;
        if (len == 0) {
            snprintf(err, err_size,
                     "%s: item %zu of '%.200s' is empty; give one or more endpoints separated "
                     "by commas, e.g. tcp://10.0.0.1:5555, tcp://10.0.0.2:5555",
                     key, item, value);
            return HUB_EINVAL;
        }
        if (len >= HUB_ENDPOINT_MAX || !hub__endpoint_ok(start, len)) {
            snprintf(err, err_size,
                     "%s: '%.*s' (item %zu) is not a hub endpoint; write tcp://HOST:PORT (port 1 "
                     "to 65535), e.g. tcp://10.0.0.2:5555, or ipc://PATH, and separate several "
                     "with commas",
                     key, (int)(len > 200 ? 200 : len), start, item);
            return HUB_EINVAL;
        }
        if (*n_out == max) {
            snprintf(err, err_size, "%s: more than %zu endpoints; list at most %zu", key, max, max);
            return HUB_EINVAL;
        }
        memcpy(out[*n_out], start, len);
        out[(*n_out)++][len] = '\0';
        if (!*p)
            return 0;
        p++; /* the comma */
    }
}

int hub_conf_member_entry(hub_conf_member_t *m, const char *key, const char *value, char *err,
                          size_t err_size)
{
    if (!strcmp(key, "hub_endpoint") || !strcmp(key, "hub_endpoints")) {
        if (m->endpoint_key[0] && strcmp(m->endpoint_key, key) != 0) {
            snprintf(err, err_size,
                     "both hub_endpoint and hub_endpoints are set: keep one (hub_endpoints "
                     "lists the hub's nodes, hub_endpoint is one of them)");
            return HUB_EINVAL;
        }
        char list[HUB_ENDPOINTS_MAX][HUB_ENDPOINT_MAX];
        size_t n = 0;
        int rc = hub_endpoint_list_parse(key, value, list, HUB_ENDPOINTS_MAX, &n, err, err_size);
        if (rc == 0 && n > 1 && !strcmp(key, "hub_endpoint")) {
            snprintf(err, err_size,
                     "hub_endpoint names one endpoint; list several hub nodes with hub_endpoints "
                     "= %.200s",
                     value);
            rc = HUB_EINVAL;
        }
        if (rc != 0)
            return rc;
        size_t used = 0;
        for (size_t i = 0; i < n; i++)
            used += (size_t)snprintf(m->hub_endpoint + used, sizeof m->hub_endpoint - used, "%s%s",
                                     i ? "," : "", list[i]);
        snprintf(m->endpoint_key, sizeof m->endpoint_key, "%s", key);
        return 0;
    }
    if (!strcmp(key, "hub_key_file"))
        return hub_conf_path(m->base_dir, key, value, m->hub_key_file, sizeof m->hub_key_file, err,
                             err_size);
    if (!strcmp(key, "member_key_file"))
        return hub_conf_path(m->base_dir, key, value, m->member_key_file, sizeof m->member_key_file,
                             err, err_size);
    return HUB_ENOTFOUND;
}
