#include "lth_domain.h"

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
