#include "lth_procedure.h"
#include "lth_catalogue.h"

#include "hub_error.h"

#include <stdlib.h>
#include <string.h>

/* From /work/shared/data/procedures.tsv; the codes are synthetic. */
/* How each checks its applicant (proto/DOMAIN.md, "Which procedures verify"):
 * a look-up where the authority needs data from the record (the residence
 * that decides the competent office, the household a residence joins, the
 * parents a judicial-record certificate lists), a verification where the
 * applicant's declared identity only has to be confirmed. The required
 * assurance is the level of the national e-identity account (Decree
 * 59/2022): level 2 for everything but birth registration, which a parent
 * may file with a level 1 account. */
static const lth_procedure_t lth__procedures[] = {
    {"SYN-1.000001", "Đăng ký khai sinh", "Birth registration", "VN/GOV/HN-STP/HOTICH",
     "same working day", 8, LTH_LIMIT_WORKING_HOURS, LTH_CHECK_LOOKUP, 1, "birth-registration"},
    {"SYN-1.000002", "Đăng ký kết hôn", "Marriage registration", "VN/GOV/HN-STP/HOTICH",
     "same working day", 8, LTH_LIMIT_WORKING_HOURS, LTH_CHECK_LOOKUP, 2, "marriage-registration"},
    {"SYN-1.000003", "Cấp Phiếu lý lịch tư pháp", "Criminal record certificate",
     "VN/GOV/HN-STP/HOTICH", "10 days", 10, LTH_LIMIT_CALENDAR_DAYS, LTH_CHECK_LOOKUP, 2,
     "judicial-record"},
    {"SYN-1.000004", "Đăng ký thành lập doanh nghiệp", "Enterprise registration",
     "VN/GOV/HN-SKHDT/DKKD", "3 working days", 3, LTH_LIMIT_WORKING_DAYS, LTH_CHECK_VERIFY, 2,
     "enterprise-registration"},
    {"SYN-1.000005", "Đăng ký thường trú", "Permanent residence registration",
     "VN/GOV/HN-QHK/MOTCUA", "7 working days", 7, LTH_LIMIT_WORKING_DAYS, LTH_CHECK_LOOKUP, 2,
     "residence-registration"},
    {"SYN-1.000006", "Cấp Giấy chứng nhận quyền sử dụng đất lần đầu",
     "First land-use right certificate", "VN/GOV/HN-STNMT/DATDAI", "30 days", 30,
     LTH_LIMIT_CALENDAR_DAYS, LTH_CHECK_VERIFY, 2, "land-registration"},
};

#define LTH__N_PROCEDURES (sizeof lth__procedures / sizeof lth__procedures[0])

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

size_t lth_procedure_count(void)
{
    return lth__current ? lth_catalogue_count(lth__current) : LTH__N_PROCEDURES;
}

const lth_procedure_t *lth_procedure_at(size_t i)
{
    if (lth__current)
        return lth_catalogue_at(lth__current, i);
    return i < LTH__N_PROCEDURES ? &lth__procedures[i] : NULL;
}

const lth_procedure_t *lth_procedure_find(const char *code)
{
    if (lth__current)
        return lth_catalogue_find(lth__current, code);
    for (size_t i = 0; code && i < LTH__N_PROCEDURES; i++)
        if (!strcmp(lth__procedures[i].code, code))
            return &lth__procedures[i];
    return NULL;
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
 * file installed (lth_procedure_install), 0 for a procedure that catalogue
 * does not list. Only with none installed, the fees of the built-in
 * default: civil-status registrations are free, a judicial-record
 * certificate 200 000, enterprise registration 50 000, permanent residence
 * 20 000, a first land-use certificate 100 000 (synthetic figures in the
 * range of the fee circulars, the same as deploy/catalogue-hn.tsv ships). */
uint64_t lth_procedure_fee_vnd(const char *code)
{
    if (lth__current) {
        const lth_procedure_t *p = lth_catalogue_find(lth__current, code);
        return p ? p->fee_vnd : 0;
    }
    static const struct {
        const char *code;
        uint64_t fee;
    } fees[] = {{"SYN-1.000003", 200000},
                {"SYN-1.000004", 50000},
                {"SYN-1.000005", 20000},
                {"SYN-1.000006", 100000}};
    for (size_t i = 0; code && i < sizeof fees / sizeof fees[0]; i++)
        if (!strcmp(fees[i].code, code))
            return fees[i].fee;
    return 0;
}
