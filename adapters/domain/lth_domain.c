#include "lth_domain.h"
#include "hub_error.h"

#include <errno.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>

#include <stddef.h>
#include <string.h>
#include <strings.h>

static const char *lth__skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

bool lth_domain_content_type_is(const char *content_type, const char *type)
{
    static const char media[] = "application/x-protobuf";
    if (!content_type || !type || strncasecmp(content_type, media, sizeof media - 1) != 0)
        return false;
    const char *p = lth__skip_spaces(content_type + sizeof media - 1);
    while (*p == ';') {
        p = lth__skip_spaces(p + 1);
        size_t name_len = strcspn(p, "=; \t");
        const char *name = p;
        p = lth__skip_spaces(p + name_len);
        if (*p != '=')
            return false;
        p = lth__skip_spaces(p + 1);
        size_t value_len = strcspn(p, "; \t");
        const char *value = p;
        p = lth__skip_spaces(p + value_len);
        if (name_len == 5 && strncasecmp(name, "proto", 5) == 0) {
            size_t pkg_len = strlen(LTH_DOMAIN_PACKAGE), type_len = strlen(type);
            return value_len == pkg_len + 1 + type_len &&
                   strncmp(value, LTH_DOMAIN_PACKAGE, pkg_len) == 0 && value[pkg_len] == '.' &&
                   strncmp(value + pkg_len + 1, type, type_len) == 0;
        }
    }
    return false;
}

int lth_domain_read_text(const char *path, const char *what, size_t max, char **text, char *err,
                         size_t err_size)
{
    *text = NULL;
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(err, err_size, "cannot read %s %s: %s", what, path, strerror(e));
        return e == ENOENT ? HUB_ENOENT : HUB_EIO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            size_t want = cap ? cap * 2 : 16384;
            char *grown = len <= max ? realloc(buf, want) : NULL;
            if (!grown) {
                rc = len > max ? HUB_EINVAL : HUB_ENOMEM;
                break;
            }
            buf = grown;
            cap = want;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (rc == 0 && len > max)
        rc = HUB_EINVAL;
    if (rc == 0 && ferror(f))
        rc = HUB_EIO;
    fclose(f);
    if (rc == 0) {
        buf[len] = '\0';
        if (memchr(buf, '\0', len))
            rc = HUB_EPARSE;
    }
    if (rc == HUB_EINVAL)
        snprintf(err, err_size, "%s %s is larger than %zu KiB: is it the right file?", what, path,
                 max >> 10);
    else if (rc == HUB_EIO)
        snprintf(err, err_size, "reading %s %s failed", what, path);
    else if (rc == HUB_EPARSE)
        snprintf(err, err_size, "%s %s holds a NUL byte: it is not text", what, path);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *text = buf;
    return 0;
}

int lth_domain_decode(const lth_domain_reader_t *reader, const char *content_type,
                      const uint8_t *payload, size_t len, void *out, size_t out_size,
                      const char **problem)
{
    const char *why = NULL;
    ProtobufCMessage *m = NULL;
    if (out)
        memset(out, 0, out_size);
    if (!out)
        why = "no output";
    else if (!lth_domain_content_type_is(content_type, reader->type))
        why = reader->wrong_type;
    else if (!(m = protobuf_c_message_unpack(reader->descriptor, NULL, len, payload)))
        why = reader->unparsed;
    else
        why = reader->read(m, out);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    if (problem)
        *problem = why;
    return why ? HUB_EPARSE : 0;
}

bool lth_domain_copy(char *dst, size_t size, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= size)
        return false;
    memcpy(dst, src ? src : "", len + 1);
    return true;
}
