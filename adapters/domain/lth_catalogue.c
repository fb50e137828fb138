#include "lth_catalogue.h"

#include "hub_error.h"
#include "lth_domain.h"
#include "hub_id.h"
#include "lth_date.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LTH__COLUMNS 16

static const char *const lth__columns[LTH__COLUMNS] = {
    "decision", "decision_date", "effective_date", "status",      "code",    "name",
    "name_en",  "level",         "authority",      "limit",       "fee_vnd", "documents",
    "online",   "check",         "assurance",      "purpose_code"};

struct lth_catalogue {
    char *text; /* the file, cut into the strings the procedures point to */
    lth_procedure_t *in_force, *repealed;
    size_t n_in_force, n_repealed;
    size_t cap_in_force, cap_repealed;
    char **blocks; /* lth_catalogue_add(): one block of strings per procedure */
    size_t n_blocks, cap_blocks;
};

void lth_catalogue_destroy(lth_catalogue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->text);
    for (size_t i = 0; i < (*self_p)->n_blocks; i++)
        free((*self_p)->blocks[i]);
    free((*self_p)->blocks);
    free((*self_p)->in_force);
    free((*self_p)->repealed);
    free(*self_p);
    *self_p = NULL;
}

static bool lth__code_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= LTH_PROCEDURE_CODE_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != '_')
            return false;
    return true;
}

static bool lth__one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (!strcmp(s, *words))
            return true;
    return false;
}

/* Checks one row's fields into p; a sentence naming the column in why. */
static bool lth__row(char **f, lth_procedure_t *p, bool *repealed, char *why, size_t why_size)
{
    static const char *const statuses[] = {"in-force", "repealed", NULL};
    static const char *const levels[] = {"province", "district", "commune", NULL};
    static const char *const onlines[] = {"none", "partial", "full", NULL};
    lth_date_t decided, effective;
    memset(p, 0, sizeof *p);
#define LTH__BAD(col, ...)                                                                         \
    do {                                                                                           \
        int n_ = snprintf(why, why_size, "field %s: ", col);                                       \
        if (n_ > 0 && (size_t)n_ < why_size)                                                       \
            snprintf(why + n_, why_size - (size_t)n_, __VA_ARGS__);                                \
        return false;                                                                              \
    } while (0)
    if (!*f[0] || strlen(f[0]) > 64)
        LTH__BAD("decision", "give the announcing decision's number, e.g. 1520/QĐ-UBND");
    if (lth_date_parse(f[1], &decided) != 0)
        LTH__BAD("decision_date", "'%.40s' is not a date YYYY-MM-DD", f[1]);
    if (lth_date_parse(f[2], &effective) != 0)
        LTH__BAD("effective_date", "'%.40s' is not a date YYYY-MM-DD", f[2]);
    if (lth_date_cmp(effective, decided) < 0)
        LTH__BAD("effective_date", "%s is before the decision's date %s", f[2], f[1]);
    if (!lth__one_of(f[3], statuses))
        LTH__BAD("status", "'%.40s' is neither in-force nor repealed", f[3]);
    if (!lth__code_ok(f[4]))
        LTH__BAD("code", "'%.40s' is not a procedure code (1-31 of A-Z a-z 0-9 . - _)", f[4]);
    if (!*f[5])
        LTH__BAD("name", "the procedure's official name is empty");
    if (!lth__one_of(f[7], levels))
        LTH__BAD("level", "'%.40s' is not province, district or commune", f[7]);
    if (!hub_member_id_valid(f[8]))
        LTH__BAD("authority", "'%.80s' is not a member id INSTANCE/CLASS/MEMBER/SUBSYSTEM", f[8]);
    unsigned amount = 0;
    lth_limit_unit_t unit = 0;
    if (lth_limit_parse(f[9], &amount, &unit) != 0)
        LTH__BAD("limit",
                 "'%.40s' is not a time limit (\"same working day\", \"N working days\", "
                 "\"N days\", \"N working hours\")",
                 f[9]);
    char *end = NULL;
    errno = 0;
    unsigned long long fee = strtoull(f[10], &end, 10);
    if (!isdigit((unsigned char)f[10][0]) || *end || errno)
        LTH__BAD("fee_vnd", "'%.40s' is not a whole number of đồng (0 = free)", f[10]);
    if (!lth__one_of(f[12], onlines))
        LTH__BAD("online", "'%.40s' is not none, partial or full", f[12]);
    bool verify = !strcmp(f[13], "verify");
    if (!verify && strcmp(f[13], "lookup"))
        LTH__BAD("check", "'%.40s' is neither lookup nor verify", f[13]);
    if (strlen(f[14]) != 1 || f[14][0] < '0' || f[14][0] > '2')
        LTH__BAD("assurance", "'%.40s' is not 0, 1 or 2", f[14]);
    if (!*f[15] || strlen(f[15]) > 64)
        LTH__BAD("purpose_code", "give the purpose code of the identity check (1-64 bytes)");
#undef LTH__BAD
    *repealed = !strcmp(f[3], "repealed");
    p->decision = f[0];
    p->decision_date = f[1];
    p->effective_date = f[2];
    p->code = f[4];
    p->name = f[5];
    p->name_en = strcmp(f[6], "-") ? f[6] : "";
    p->level = f[7];
    p->authority = f[8];
    p->limit_text = f[9];
    p->limit_amount = amount;
    p->limit_unit = unit;
    p->fee_vnd = fee;
    p->documents = strcmp(f[11], "-") ? f[11] : "";
    p->online = f[12];
    p->identity_check = verify ? LTH_CHECK_VERIFY : LTH_CHECK_LOOKUP;
    p->required_assurance = (unsigned)(f[14][0] - '0');
    p->purpose_code = f[15];
    return true;
}

static int lth__push(lth_procedure_t **arr, size_t *n, size_t *cap, const lth_procedure_t *p)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        lth_procedure_t *g = realloc(*arr, c * sizeof *g);
        if (!g)
            return HUB_ENOMEM;
        *arr = g;
        *cap = c;
    }
    (*arr)[(*n)++] = *p;
    return 0;
}

int lth_catalogue_load(const char *path, lth_catalogue_t **out, char *err, size_t err_size)
{
    *out = NULL;
    int rc = 0;
    lth_catalogue_t *self = calloc(1, sizeof *self);
    if (!self)
        return HUB_ENOMEM;
    rc = lth_domain_read_text(path, "the catalogue file", (size_t)16 << 20, &self->text, err,
                              err_size);
    if (rc != 0) {
        lth_catalogue_destroy(&self);
        return rc;
    }
    bool header = false;
    unsigned lineno = 0;
    char *save = NULL;
    char *line = self->text;
    while (rc == 0 && line && *line) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        line[strcspn(line, "\r")] = '\0';
        if (!*line || *line == '#') {
            line = next;
            continue;
        }
        char *f[LTH__COLUMNS + 1];
        size_t n = 0;
        for (char *p = line; n <= LTH__COLUMNS;) {
            f[n++] = p;
            char *tab = strchr(p, '\t');
            if (!tab)
                break;
            *tab = '\0';
            p = tab + 1;
        }
        (void)save;
        if (!header) {
            for (size_t i = 0; i < LTH__COLUMNS; i++) {
                if (i >= n || strcmp(f[i], lth__columns[i])) {
                    snprintf(err, err_size,
                             "%s:%u: the header's column %zu is '%s', expected '%s' (the "
                             "columns, tab-separated: decision decision_date effective_date "
                             "status code name name_en level authority limit fee_vnd documents "
                             "online check assurance purpose_code)",
                             path, lineno, i + 1, i < n ? f[i] : "(missing)", lth__columns[i]);
                    rc = HUB_EPARSE;
                    break;
                }
            }
            if (rc == 0 && n != LTH__COLUMNS) {
                snprintf(err, err_size, "%s:%u: the header has %zu columns, expected %d", path,
                         lineno, n, LTH__COLUMNS);
                rc = HUB_EPARSE;
            }
            header = true;
            line = next;
            continue;
        }
        if (n != LTH__COLUMNS) {
            snprintf(err, err_size,
                     "%s:%u: %zu fields, expected %d separated by tabs (field %s is missing or "
                     "a tab too many)",
                     path, lineno, n, LTH__COLUMNS,
                     lth__columns[n < LTH__COLUMNS ? n : LTH__COLUMNS - 1]);
            rc = HUB_EPARSE;
            break;
        }
        lth_procedure_t p;
        bool repealed = false;
        char why[400];
        if (!lth__row(f, &p, &repealed, why, sizeof why)) {
            snprintf(err, err_size, "%s:%u: %s", path, lineno, why);
            rc = HUB_EPARSE;
            break;
        }
        if (lth_catalogue_find(self, p.code) || lth_catalogue_find_repealed(self, p.code)) {
            snprintf(err, err_size,
                     "%s:%u: field code: %s is listed twice; one line per procedure (amend it in "
                     "place)",
                     path, lineno, p.code);
            rc = HUB_EPARSE;
            break;
        }
        rc = repealed ? lth__push(&self->repealed, &self->n_repealed, &self->cap_repealed, &p)
                      : lth__push(&self->in_force, &self->n_in_force, &self->cap_in_force, &p);
        line = next;
    }
    if (rc == 0 && !header) {
        snprintf(err, err_size, "%s: no header line and no procedures: is it the catalogue file?",
                 path);
        rc = HUB_EPARSE;
    }
    if (rc != 0) {
        lth_catalogue_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

size_t lth_catalogue_count(const lth_catalogue_t *self)
{
    return self ? self->n_in_force : 0;
}

const lth_procedure_t *lth_catalogue_at(const lth_catalogue_t *self, size_t i)
{
    return self && i < self->n_in_force ? &self->in_force[i] : NULL;
}

const lth_procedure_t *lth_catalogue_find(const lth_catalogue_t *self, const char *code)
{
    for (size_t i = 0; self && code && i < self->n_in_force; i++)
        if (!strcmp(self->in_force[i].code, code))
            return &self->in_force[i];
    return NULL;
}

const lth_procedure_t *lth_catalogue_find_repealed(const lth_catalogue_t *self, const char *code)
{
    for (size_t i = 0; self && code && i < self->n_repealed; i++)
        if (!strcmp(self->repealed[i].code, code))
            return &self->repealed[i];
    return NULL;
}

size_t lth_catalogue_count_repealed(const lth_catalogue_t *self)
{
    return self ? self->n_repealed : 0;
}

const lth_procedure_t *lth_catalogue_repealed_at(const lth_catalogue_t *self, size_t i)
{
    return self && i < self->n_repealed ? &self->repealed[i] : NULL;
}

const lth_procedure_t *lth_catalogue_listed_at(const lth_catalogue_t *self, size_t i,
                                               bool *repealed)
{
    size_t n = lth_catalogue_count(self);
    *repealed = i >= n;
    return i < n ? lth_catalogue_at(self, i) : lth_catalogue_repealed_at(self, i - n);
}

lth_catalogue_t *lth_catalogue_new(void)
{
    return calloc(1, sizeof(lth_catalogue_t));
}

/* The strings of p, copied into one block that *q's pointers point into. */
static int lth__copy_strings(const lth_procedure_t *p, lth_procedure_t *q, char **block)
{
    const char **fields[] = {&q->code,          &q->name,          &q->name_en,
                             &q->authority,     &q->limit_text,    &q->purpose_code,
                             &q->decision,      &q->decision_date, &q->effective_date,
                             &q->level,         &q->documents,     &q->online};
    size_t n = sizeof fields / sizeof fields[0], total = 0;
    *q = *p;
    for (size_t i = 0; i < n; i++)
        total += strlen(*fields[i] ? *fields[i] : "") + 1;
    char *b = malloc(total), *at = b;
    if (!b)
        return HUB_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = *fields[i] ? *fields[i] : "";
        size_t len = strlen(s) + 1;
        memcpy(at, s, len);
        *fields[i] = at;
        at += len;
    }
    *block = b;
    return 0;
}

int lth_catalogue_add(lth_catalogue_t *self, const lth_procedure_t *p, bool repealed)
{
    if (!self || !p || !p->code || !lth__code_ok(p->code) || !p->name || !*p->name)
        return HUB_EINVAL;
    if (lth_catalogue_find(self, p->code) || lth_catalogue_find_repealed(self, p->code))
        return HUB_EEXIST;
    if (self->n_blocks == self->cap_blocks) {
        size_t c = self->cap_blocks ? self->cap_blocks * 2 : 16;
        char **g = realloc(self->blocks, c * sizeof *g);
        if (!g)
            return HUB_ENOMEM;
        self->blocks = g;
        self->cap_blocks = c;
    }
    lth_procedure_t q;
    char *block = NULL;
    int rc = lth__copy_strings(p, &q, &block);
    if (rc == 0)
        rc = repealed
                 ? lth__push(&self->repealed, &self->n_repealed, &self->cap_repealed, &q)
                 : lth__push(&self->in_force, &self->n_in_force, &self->cap_in_force, &q);
    if (rc != 0) {
        free(block);
        return rc;
    }
    self->blocks[self->n_blocks++] = block;
    return 0;
}

static bool lth__eq(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

bool lth_procedure_same(const lth_procedure_t *a, const lth_procedure_t *b)
{
    return lth__eq(a->code, b->code) && lth__eq(a->name, b->name) &&
           lth__eq(a->name_en, b->name_en) && lth__eq(a->authority, b->authority) &&
           a->limit_amount == b->limit_amount && a->limit_unit == b->limit_unit &&
           a->identity_check == b->identity_check &&
           a->required_assurance == b->required_assurance &&
           lth__eq(a->purpose_code, b->purpose_code) && lth__eq(a->decision, b->decision) &&
           lth__eq(a->decision_date, b->decision_date) &&
           lth__eq(a->effective_date, b->effective_date) && lth__eq(a->level, b->level) &&
           a->fee_vnd == b->fee_vnd && lth__eq(a->documents, b->documents) &&
           lth__eq(a->online, b->online);
}
