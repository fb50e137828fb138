#include "lth_disclose.h"

#include "hub_error.h"
#include "lth_domain.h"
#include "hub_id.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LTH__DISCLOSE_FILE_MAX (1u << 20) /* a disclosure file is a page of lines */
#define LTH__DISCLOSE_LINE_MAX 1024u

typedef struct {
    char *consumer;
    char purpose[LTH_PURPOSE_CODE_MAX + 1];
    lth_use_t use; /* LTH_USE_LOOKUP for `disclose`, LTH_USE_VERIFY for `confirm` */
    lth_fields_t fields;
} lth__rule_t;

struct lth_disclosure {
    lth__rule_t *rules;
    size_t n_rules;
};

static const char *const lth__field_names[LTH_FIELD_COUNT] = {
    "full_name", "date_of_birth", "sex",    "birth_province_code",
    "residence", "household",     "family", "last_changed",
};

const char *lth_field_name(unsigned i)
{
    return i < LTH_FIELD_COUNT ? lth__field_names[i] : "?";
}

int lth_fields_parse(const char *list, lth_fields_t *out, const char **bad, size_t *bad_len)
{
    if (!list || !out)
        return HUB_EINVAL;
    lth_fields_t fields = 0;
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        unsigned i = 0;
        while (i < LTH_FIELD_COUNT &&
               (strlen(lth__field_names[i]) != len || strncmp(lth__field_names[i], p, len) != 0))
            i++;
        if (i == LTH_FIELD_COUNT) {
            if (bad)
                *bad = p;
            if (bad_len)
                *bad_len = len;
            return HUB_EINVAL;
        }
        fields |= 1u << i;
        if (!p[len])
            break;
        p += len + 1;
    }
    *out = fields;
    return 0;
}

const char *lth_purpose_code_problem(const char *code)
{
    size_t len = code ? strlen(code) : 0;
    if (len == 0)
        return "a purpose code is empty";
    if (len > LTH_PURPOSE_CODE_MAX)
        return "a purpose code is at most 64 bytes";
    for (size_t i = 0; i < len; i++) {
        char c = code[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return "a purpose code has only a-z, 0-9, '.', '_' and '-'";
    }
    return NULL;
}

void lth_disclosure_destroy(lth_disclosure_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lth_disclosure_t *d = *self_p;
    for (size_t i = 0; i < d->n_rules; i++)
        free(d->rules[i].consumer);
    free(d->rules);
    free(d);
    *self_p = NULL;
}

size_t lth_disclosure_count(const lth_disclosure_t *self)
{
    return self ? self->n_rules : 0;
}

/* Parses one line (comments and blanks already dropped) into *rule: six
 * words, verb FIELDS to CONSUMER for PURPOSE. */
static int lth__parse_rule(char *line, lth__rule_t *rule, char *why, size_t why_size)
{
    char *save = NULL;
    char *w[7];
    size_t n = 0;
    for (char *t = strtok_r(line, " \t", &save); t && n < 7; t = strtok_r(NULL, " \t", &save))
        w[n++] = t;
    if (n != 6 || (strcmp(w[0], "disclose") != 0 && strcmp(w[0], "confirm") != 0) ||
        strcmp(w[2], "to") != 0 || strcmp(w[4], "for") != 0) {
        snprintf(why, why_size,
                 "write: disclose FIELD,FIELD to CONSUMER for PURPOSE (or confirm instead of "
                 "disclose, to let the consumer have the fields compared, never returned)");
        return HUB_EPARSE;
    }
    const char *bad = NULL;
    size_t bad_len = 0;
    if (lth_fields_parse(w[1], &rule->fields, &bad, &bad_len) != 0) {
        snprintf(why, why_size,
                 "'%.*s' is not a field; fields: full_name, date_of_birth, sex, "
                 "birth_province_code, residence, household, family, last_changed (separated by "
                 "commas, no spaces)",
                 (int)(bad_len > 64 ? 64 : bad_len), bad);
        return HUB_EPARSE;
    }
    const char *problem = hub_member_id_problem(w[3]);
    if (problem) {
        snprintf(why, why_size, "'%.128s' is not a member id: %s", w[3], problem);
        return HUB_EPARSE;
    }
    problem = lth_purpose_code_problem(w[5]);
    if (problem) {
        snprintf(why, why_size, "'%.80s': %s", w[5], problem);
        return HUB_EPARSE;
    }
    rule->use = w[0][0] == 'd' ? LTH_USE_LOOKUP : LTH_USE_VERIFY;
    snprintf(rule->purpose, sizeof rule->purpose, "%s", w[5]);
    rule->consumer = strdup(w[3]);
    return rule->consumer ? 0 : HUB_ENOMEM;
}

int lth_disclosure_parse(const char *name, const char *text, lth_disclosure_t **out, char *err,
                         size_t err_size)
{
    if (!text || !out)
        return HUB_EINVAL;
    *out = NULL;
    lth_disclosure_t *d = calloc(1, sizeof *d);
    if (!d)
        return HUB_ENOMEM;
    const char *p = text;
    unsigned line_no = 0;
    int rc = 0;
    while (*p && rc == 0) {
        line_no++;
        size_t len = strcspn(p, "\n");
        char line[LTH__DISCLOSE_LINE_MAX];
        if (len >= sizeof line) {
            snprintf(err, err_size, "%s:%u: the line is longer than %u bytes", name, line_no,
                     LTH__DISCLOSE_LINE_MAX - 1);
            rc = HUB_EPARSE;
            break;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (p[len] == '\n');
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *cr = strchr(line, '\r');
        if (cr)
            *cr = '\0';
        if (line[strspn(line, " \t")] == '\0')
            continue;
        lth__rule_t rule;
        memset(&rule, 0, sizeof rule);
        char why[512];
        rc = lth__parse_rule(line, &rule, why, sizeof why);
        if (rc == HUB_EPARSE) {
            snprintf(err, err_size, "%s:%u: %s", name, line_no, why);
            break;
        }
        if (rc != 0)
            break;
        for (size_t i = 0; i < d->n_rules && rc == 0; i++) {
            const lth__rule_t *o = &d->rules[i];
            if (o->use == rule.use && o->fields == rule.fields &&
                !strcmp(o->consumer, rule.consumer) && !strcmp(o->purpose, rule.purpose)) {
                snprintf(err, err_size, "%s:%u: the same rule is written twice; remove one", name,
                         line_no);
                rc = HUB_EEXIST;
            }
        }
        lth__rule_t *grown = rc == 0 ? realloc(d->rules, (d->n_rules + 1) * sizeof *grown) : NULL;
        if (rc == 0 && !grown)
            rc = HUB_ENOMEM;
        if (rc != 0) {
            free(rule.consumer);
            break;
        }
        d->rules = grown;
        d->rules[d->n_rules++] = rule;
    }
    if (rc != 0) {
        lth_disclosure_destroy(&d);
        return rc;
    }
    *out = d;
    return 0;
}

int lth_disclosure_load(const char *path, lth_disclosure_t **out, char *err, size_t err_size)
{
    if (!path || !out)
        return HUB_EINVAL;
    *out = NULL;
    char *text = NULL;
    int rc = lth_domain_read_text(path, "the disclosure file", LTH__DISCLOSE_FILE_MAX, &text, err,
                                  err_size);
    if (rc != 0)
        return rc;
    const char *name = strrchr(path, '/');
    rc = lth_disclosure_parse(name ? name + 1 : path, text, out, err, err_size);
    free(text);
    return rc;
}

int lth_disclosure_setting(const char *path, lth_disclosure_t **out, char *err, size_t err_size)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!path)
        return 0;
    char why[HUB_ERRMSG_MAX] = "";
    int rc = lth_disclosure_load(path, out, why, sizeof why);
    if (rc != 0)
        snprintf(err, err_size, "plugin.disclosure_file: %s", why[0] ? why : hub_strerror(rc));
    return rc;
}

bool lth_disclosure_fields(const lth_disclosure_t *self, const char *consumer, const char *purpose,
                           lth_use_t use, lth_fields_t *out)
{
    lth_fields_t fields = 0;
    bool any = false;
    for (size_t i = 0; self && consumer && purpose && i < self->n_rules; i++) {
        const lth__rule_t *r = &self->rules[i];
        if (strcmp(r->consumer, consumer) != 0 || strcmp(r->purpose, purpose) != 0)
            continue;
        /* A confirm line lets the verify compare; a disclose line does both. */
        if (r->use == LTH_USE_LOOKUP || use == LTH_USE_VERIFY)
            fields |= r->fields;
        any = true;
    }
    if (out)
        *out = fields;
    return any;
}
