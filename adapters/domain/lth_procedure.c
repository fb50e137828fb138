#include "lth_procedure.h"
#include "lth_catalogue.h"

#include "hub_error.h"

#include <stdlib.h>
#include <string.h>

/* Every catalogue installed, newest first: kept until the process ends
 * (reachable, so not a leak), as callers hold pointers into them. */
typedef struct lth__generation {
    struct lth_catalogue *catalogue;
    struct lth__generation *older;
} lth__generation_t;
static lth__generation_t *lth__installed;
static struct lth_catalogue *lth__current;

void lth_procedure_install(struct lth_catalogue *catalogue)
{
    if (catalogue) {
        lth__generation_t *g = calloc(1, sizeof *g);
        if (!g)
            return; /* out of memory: the previous one stays in force */
        g->catalogue = catalogue;
        g->older = lth__installed;
        lth__installed = g;
    }
    lth__current = catalogue;
}

void lth_procedure_release_all(void)
{
    while (lth__installed) {
        lth__generation_t *g = lth__installed;
        lth__installed = g->older;
        lth_catalogue_destroy(&g->catalogue);
        free(g);
    }
    lth__current = NULL;
}

bool lth_procedure_installed(void)
{
    return lth__current != NULL;
}

size_t lth_procedure_count(void)
{
    return lth_catalogue_count(lth__current);
}

const lth_procedure_t *lth_procedure_at(size_t i)
{
    return lth_catalogue_at(lth__current, i);
}

const lth_procedure_t *lth_procedure_find(const char *code)
{
    return lth_catalogue_find(lth__current, code);
}

const lth_procedure_t *lth_procedure_listed_at(size_t i, bool *repealed)
{
    return lth_catalogue_listed_at(lth__current, i, repealed);
}

const lth_procedure_t *lth_procedure_find_repealed(const char *code)
{
    return lth_catalogue_find_repealed(lth__current, code);
}

const char *lth_procedure_name(const char *code)
{
    const lth_procedure_t *p = lth_procedure_find(code);
    if (!p)
        p = lth_procedure_find_repealed(code);
    return p ? p->name : NULL;
}

int lth_limit_parse(const char *text, unsigned *amount, lth_limit_unit_t *unit)
{
    if (!text || !amount || !unit)
        return HUB_EINVAL;
    if (!strcmp(text, "same working day")) {
        *amount = 8;
        *unit = LTH_LIMIT_WORKING_HOURS;
        return 0;
    }
    if (*text < '1' || *text > '9')
        return HUB_EINVAL;
    char *end = NULL;
    unsigned long n = strtoul(text, &end, 10);
    if (n == 0 || n > 3650 || *end != ' ')
        return HUB_EINVAL;
    const char *rest = end + 1;
    static const struct {
        const char *one, *many;
        lth_limit_unit_t unit;
    } words[] = {{"working day", "working days", LTH_LIMIT_WORKING_DAYS},
                 {"day", "days", LTH_LIMIT_CALENDAR_DAYS},
                 {"working hour", "working hours", LTH_LIMIT_WORKING_HOURS}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (!strcmp(rest, n == 1 ? words[i].one : words[i].many)) {
            *amount = (unsigned)n;
            *unit = words[i].unit;
            return 0;
        }
    }
    return HUB_EINVAL;
}

uint64_t lth_limit_duration_us(unsigned amount, lth_limit_unit_t unit, uint64_t day_us)
{
    uint64_t per;
    switch (unit) {
    case LTH_LIMIT_WORKING_HOURS:
        per = day_us / 8;
        break;
    case LTH_LIMIT_WORKING_DAYS:
    case LTH_LIMIT_CALENDAR_DAYS:
        per = day_us;
        break;
    default:
        return 0;
    }
    if (amount && per > UINT64_MAX / amount)
        return UINT64_MAX;
    return per * amount;
}

/* The fee (lệ phí, VND) of the catalogue in force: the fee column of the
 * file the procedure system installed, or of the copy a subscriber holds
 * (lth_procedure_install); 0 for a procedure that catalogue does not list,
 * and with none installed. */
uint64_t lth_procedure_fee_vnd(const char *code)
{
    const lth_procedure_t *p = lth_catalogue_find(lth__current, code);
    return p ? p->fee_vnd : 0;
}
