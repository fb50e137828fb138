#include "hub_memberdir.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hub_memberdir {
    hub_map_t *by_id; /* member id -> memberdir__item_t */
};

/* One allocation per member: the entry, then its three strings. */
typedef struct {
    hub_memberdir_entry_t entry;
    char text[];
} memberdir__item_t;

static void memberdir__free_items(hub_memberdir_t *self)
{
    size_t cursor = 0;
    const char *key;
    void *value;
    while (hub_map_next(self->by_id, &cursor, &key, &value))
        free(value);
}

void hub_memberdir_destroy(hub_memberdir_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_memberdir_t *self = *self_p;
    if (self->by_id) {
        memberdir__free_items(self);
        hub_map_destroy(&self->by_id);
    }
    free(self);
    *self_p = NULL;
}

/* Is s valid UTF-8 without control characters? Names are shown on the
 * dashboard and in terminals: a stray byte or escape would garble them. */
static bool memberdir__text_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
        size_t n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2
                                   : (*p & 0xf8) == 0xf0 ? 3 : 4;
        if (n == 4 || (n == 1 && *p < 0xc2))
            return false;
        p++;
        for (size_t i = 0; i < n; i++, p++)
            if ((*p & 0xc0) != 0x80)
                return false;
    }
    return true;
}

static int memberdir__line(hub_memberdir_t *self, char *line, char *err, size_t err_size)
{
    char *fields[5] = {0};
    size_t n = 0;
    for (char *p = line; n < 5;) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    if (n < 3 || n > 4) {
        snprintf(err, err_size,
                 "%zu field(s); write member id, agency name, unit and contact separated by "
                 "tabs (the contact may be empty)",
                 n);
        return HUB_EINVAL;
    }
    const char *id = fields[0], *name = fields[1], *unit = fields[2];
    const char *contact = n == 4 ? fields[3] : "";
    if (!hub_member_id_valid(id)) {
        snprintf(err, err_size, "'%.100s' is not a member id: %s", id,
                 hub_member_id_problem(id));
        return HUB_EINVAL;
    }
    if (!name[0] || !unit[0]) {
        snprintf(err, err_size, "%s has an empty %s; every member needs its agency name and unit",
                 id, name[0] ? "unit" : "agency name");
        return HUB_EINVAL;
    }
    const char *texts[3] = {name, unit, contact};
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(texts[i]);
        if (len > HUB_MEMBERDIR_FIELD_MAX || !memberdir__text_ok(texts[i])) {
            snprintf(err, err_size,
                     "%s: a field is longer than %u bytes or not UTF-8 text; save the file as "
                     "UTF-8 and shorten it",
                     id, HUB_MEMBERDIR_FIELD_MAX);
            return HUB_EINVAL;
        }
        total += len + 1;
    }
    if (hub_map_get(self->by_id, id)) {
        snprintf(err, err_size, "%s is listed twice; keep one line per member", id);
        return HUB_EINVAL;
    }
    if (hub_map_size(self->by_id) >= HUB_MEMBERDIR_MAX) {
        snprintf(err, err_size, "more than %u members; split the hub or raise HUB_MEMBERDIR_MAX",
                 HUB_MEMBERDIR_MAX);
        return HUB_EINVAL;
    }
    memberdir__item_t *item = malloc(sizeof *item + total);
    if (!item) {
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    char *o = item->text;
    const char **dst[3] = {&item->entry.name, &item->entry.unit, &item->entry.contact};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(texts[i]) + 1;
        memcpy(o, texts[i], len);
        *dst[i] = o;
        o += len;
    }
    if (hub_map_put(self->by_id, id, item) != 0) {
        free(item);
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    return 0;
}

int hub_memberdir_load(const char *path, hub_memberdir_t **out, char *err, size_t err_size)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        err_size = sizeof dummy;
    }
    err[0] = '\0';
    if (!out || !path)
        return HUB_EINVAL;
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_size, "cannot open the member directory %.200s: %s (check members_file)",
                 path, strerror(errno));
        return HUB_EIO;
    }
    hub_memberdir_t *self = calloc(1, sizeof *self);
    int rc = self && (self->by_id = hub_map_new()) ? 0 : HUB_ENOMEM;
    if (rc)
        snprintf(err, err_size, "out of memory");
    char line[4 * HUB_MEMBERDIR_FIELD_MAX + 256];
    unsigned lineno = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            snprintf(err, err_size, "%.200s:%u: line too long (over %zu bytes)", path, lineno,
                     sizeof line - 2);
            rc = HUB_EINVAL;
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (lineno == 1 && !strncmp(line, "\xef\xbb\xbf", 3)) /* a BOM from a spreadsheet */
            memmove(line, line + 3, len - 2);
        if (!line[0] || line[0] == '#' || !strncmp(line, "member_id\t", 10))
            continue;
        char why[400];
        rc = memberdir__line(self, line, why, sizeof why);
        if (rc)
            snprintf(err, err_size, "%.200s:%u: %s", path, lineno, why);
    }
    if (!rc && ferror(f)) {
        snprintf(err, err_size, "cannot read the member directory %.200s", path);
        rc = HUB_EIO;
    }
    fclose(f);
    if (rc) {
        hub_memberdir_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

const hub_memberdir_entry_t *hub_memberdir_find(const hub_memberdir_t *self,
                                                const char *member_id)
{
    if (!self || !member_id)
        return NULL;
    const memberdir__item_t *item = hub_map_get(self->by_id, member_id);
    return item ? &item->entry : NULL;
}

size_t hub_memberdir_count(const hub_memberdir_t *self)
{
    return self ? hub_map_size(self->by_id) : 0;
}
