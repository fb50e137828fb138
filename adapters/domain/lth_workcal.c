#include "lth_workcal.h"

#include "hub_error.h"
#include "lth_domain.h"
#include "hub_vec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LTH__DAY_US 86400000000ll
#define LTH__MIN_US 60000000ll
#define LTH__MAX_PERIODS 4
#define LTH__MAX_YEARS 16
#define LTH__LIMIT_DAYS 3660 /* ten years: a limit that does not end by then is refused */

typedef enum { LTH__HOLIDAY = 1, LTH__OFF, LTH__WORKDAY } lth__kind_t;

typedef struct {
    long day; /* days since 1970-01-01 */
    lth__kind_t kind;
    char *name;
} lth__day_t;

struct lth_workcal {
    int64_t period_start[LTH__MAX_PERIODS], period_end[LTH__MAX_PERIODS]; /* µs from midnight */
    size_t n_periods;
    unsigned weekend; /* bit 0 = Monday … bit 6 = Sunday */
    int years[LTH__MAX_YEARS];
    size_t n_years;
    lth__day_t *days; /* sorted by day */
    size_t n_days, cap_days;
};

/* ---- small helpers ----------------------------------------------------- */

static long lth__floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return (long)q;
}

/* 0 = Monday … 6 = Sunday; 1970-01-01 was a Thursday. */
static int lth__weekday(long day)
{
    return (int)(((day + 3) % 7 + 7) % 7);
}

static int lth__day_cmp(const void *a, const void *b)
{
    long x = ((const lth__day_t *)a)->day, y = ((const lth__day_t *)b)->day;
    return x < y ? -1 : x > y;
}

static const lth__day_t *lth__find(const lth_workcal_t *self, long day)
{
    lth__day_t key = {.day = day};
    return self->n_days ? bsearch(&key, self->days, self->n_days, sizeof key, lth__day_cmp) : NULL;
}

static bool lth__working(const lth_workcal_t *self, long day)
{
    const lth__day_t *d = lth__find(self, day);
    if (d)
        return d->kind == LTH__WORKDAY;
    return !(self->weekend & (1u << lth__weekday(day)));
}

static int lth__fail(char *err, size_t err_size, const char *name, int line, const char *what)
{
    snprintf(err, err_size, "%s:%d: %s", name, line, what);
    return HUB_EINVAL;
}

/* "08:00-12:00" into µs from midnight. */
static bool lth__parse_period(const char *w, int64_t *start, int64_t *end)
{
    int h1, m1, h2, m2;
    char tail;
    if (sscanf(w, "%2d:%2d-%2d:%2d%c", &h1, &m1, &h2, &m2, &tail) != 4)
        return false;
    if (h1 < 0 || h1 > 24 || m1 < 0 || m1 > 59 || h2 < 0 || h2 > 24 || m2 < 0 || m2 > 59)
        return false;
    *start = (h1 * 60 + m1) * LTH__MIN_US;
    *end = (h2 * 60 + m2) * LTH__MIN_US;
    return *start < *end && *end <= LTH__DAY_US;
}

static int lth__weekday_of(const char *w)
{
    static const char *const names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(w, names[i]))
            return i;
    return -1;
}

/* ---- loading ----------------------------------------------------------- */

static int lth__line(lth_workcal_t *self, char *line, const char *name, int no, char *err,
                     size_t err_size)
{
    char *save = NULL;
    char *key = strtok_r(line, " \t", &save);
    if (!key)
        return 0;
    if (!strcmp(key, "hours")) {
        self->n_periods = 0;
        for (char *w; (w = strtok_r(NULL, " \t", &save));) {
            if (self->n_periods == LTH__MAX_PERIODS)
                return lth__fail(err, err_size, name, no, "at most 4 office periods a day");
            size_t i = self->n_periods;
            if (!lth__parse_period(w, &self->period_start[i], &self->period_end[i]) ||
                (i > 0 && self->period_start[i] < self->period_end[i - 1]))
                return lth__fail(err, err_size, name, no,
                                 "office hours are periods like 08:00-12:00, in order and not "
                                 "overlapping");
            self->n_periods++;
        }
        if (!self->n_periods)
            return lth__fail(err, err_size, name, no, "'hours' needs at least one period");
        return 0;
    }
    if (!strcmp(key, "weekend")) {
        self->weekend = 0;
        for (char *w; (w = strtok_r(NULL, " \t", &save));) {
            int d = lth__weekday_of(w);
            if (d < 0)
                return lth__fail(err, err_size, name, no,
                                 "weekend days are mon, tue, wed, thu, fri, sat or sun");
            self->weekend |= 1u << d;
        }
        return 0;
    }
    if (!strcmp(key, "years")) {
        for (char *w; (w = strtok_r(NULL, " \t", &save));) {
            char *end;
            long y = strtol(w, &end, 10);
            if (*end || y < 1970 || y > 9999 || self->n_years == LTH__MAX_YEARS)
                return lth__fail(err, err_size, name, no,
                                 "'years' lists at most 16 years like 2026");
            self->years[self->n_years++] = (int)y;
        }
        return 0;
    }
    lth__kind_t kind = !strcmp(key, "holiday")   ? LTH__HOLIDAY
                       : !strcmp(key, "off")     ? LTH__OFF
                       : !strcmp(key, "workday") ? LTH__WORKDAY
                                                 : 0;
    if (!kind)
        return lth__fail(err, err_size, name, no,
                         "unknown line; the keys are hours, weekend, years, holiday, off and "
                         "workday");
    char *date = strtok_r(NULL, " \t", &save);
    lth_date_t d;
    if (!date || lth_date_parse(date, &d) != 0)
        return lth__fail(err, err_size, name, no, "a date is written YYYY-MM-DD");
    const char *rest = save ? save : "";
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (HUB_VEC_RESERVE(self->days, self->n_days, self->cap_days, 32) != 0)
        return HUB_ENOMEM;
    char *copy = strdup(rest);
    if (!copy)
        return HUB_ENOMEM;
    self->days[self->n_days++] = (lth__day_t){lth_date_to_days(d), kind, copy};
    return 0;
}

int lth_workcal_parse(const char *text, const char *name, lth_workcal_t **out, char *err,
                      size_t err_size)
{
    *out = NULL;
    lth_workcal_t *self = calloc(1, sizeof *self);
    char *copy = strdup(text ? text : "");
    if (!self || !copy) {
        free(self);
        free(copy);
        return HUB_ENOMEM;
    }
    /* Defaults: the state administration's office week. */
    self->weekend = (1u << 5) | (1u << 6);
    int rc = 0, no = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line && !rc;
         line = strtok_r(NULL, "\n", &save)) {
        no++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        size_t len = strlen(line);
        while (len && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        rc = lth__line(self, line, name, no, err, err_size);
    }
    free(copy);
    if (!rc && !self->n_periods)
        rc = lth__fail(err, err_size, name, no,
                       "no 'hours' line: write e.g. 'hours 08:00-12:00 "
                       "13:00-17:00'");
    if (!rc) {
        if (self->n_days > 1)
            qsort(self->days, self->n_days, sizeof *self->days, lth__day_cmp);
        for (size_t i = 1; i < self->n_days; i++)
            if (self->days[i].day == self->days[i - 1].day) {
                char date[LTH_DATE_TEXT_LEN + 1];
                lth_date_format(lth_date_from_days(self->days[i].day), date);
                snprintf(err, err_size, "%s: %s is listed twice; keep one line for it", name, date);
                rc = HUB_EINVAL;
                break;
            }
    }
    if (rc) {
        lth_workcal_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

int lth_workcal_load(const char *path, lth_workcal_t **out, char *err, size_t err_size)
{
    *out = NULL;
    char *text = NULL;
    int rc =
        lth_domain_read_text(path, "the working calendar", (size_t)16 << 20, &text, err, err_size);
    if (rc != 0)
        return rc == HUB_ENOENT || rc == HUB_EPARSE ? HUB_EIO : rc; /* as lth_workcal.h says */
    rc = lth_workcal_parse(text, path, out, err, err_size);
    free(text);
    return rc;
}

void lth_workcal_destroy(lth_workcal_t **self_p)
{
    lth_workcal_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n_days; i++)
        free(self->days[i].name);
    free(self->days);
    free(self);
    *self_p = NULL;
}

/* ---- questions --------------------------------------------------------- */

bool lth_workcal_is_working_day(const lth_workcal_t *self, lth_date_t d)
{
    return lth__working(self, lth_date_to_days(d));
}

const char *lth_workcal_day_name(const lth_workcal_t *self, lth_date_t d)
{
    const lth__day_t *day = lth__find(self, lth_date_to_days(d));
    return day && day->kind != LTH__WORKDAY ? day->name : NULL;
}

bool lth_workcal_covers(const lth_workcal_t *self, int year)
{
    for (size_t i = 0; i < self->n_years; i++)
        if (self->years[i] == year)
            return true;
    return false;
}

static int64_t lth__day_office_us(const lth_workcal_t *self)
{
    int64_t total = 0;
    for (size_t i = 0; i < self->n_periods; i++)
        total += self->period_end[i] - self->period_start[i];
    return total;
}

int lth_workcal_due(const lth_workcal_t *self, int64_t from_us, unsigned amount,
                    lth_limit_unit_t unit, int64_t *due_us)
{
    if (unit == LTH_LIMIT_CALENDAR_DAYS) {
        if (amount > LTH__LIMIT_DAYS)
            return HUB_EINVAL;
        *due_us = from_us + (int64_t)amount * LTH__DAY_US;
        return 0;
    }
    int64_t left;
    if (unit == LTH_LIMIT_WORKING_HOURS)
        left = (int64_t)amount * 60 * LTH__MIN_US;
    else if (unit == LTH_LIMIT_WORKING_DAYS)
        left = (int64_t)amount * lth__day_office_us(self);
    else
        return HUB_EINVAL;
    int64_t local = from_us + (int64_t)LTH_WORKCAL_UTC_OFFSET_S * 1000000;
    long day = lth__floor_div(local, LTH__DAY_US);
    int64_t t = local - (int64_t)day * LTH__DAY_US;
    for (long n = 0; n < LTH__LIMIT_DAYS; n++, day++, t = 0) {
        if (!lth__working(self, day))
            continue;
        for (size_t i = 0; i < self->n_periods; i++) {
            if (t >= self->period_end[i])
                continue;
            int64_t start = t > self->period_start[i] ? t : self->period_start[i];
            int64_t avail = self->period_end[i] - start;
            if (left <= avail) {
                *due_us = (int64_t)day * LTH__DAY_US + start + left -
                          (int64_t)LTH_WORKCAL_UTC_OFFSET_S * 1000000;
                return 0;
            }
            left -= avail;
        }
    }
    return HUB_EINVAL;
}

int lth_workcal_due_same_day(const lth_workcal_t *self, int64_t from_us, int64_t *due_us)
{
    int64_t local = from_us + (int64_t)LTH_WORKCAL_UTC_OFFSET_S * 1000000;
    long day = lth__floor_div(local, LTH__DAY_US);
    int64_t t = local - (int64_t)day * LTH__DAY_US;
    int64_t close = self->period_end[self->n_periods - 1];
    long start = day;
    if (!lth__working(self, day) || t >= close) {
        do {
            if (++day - start > LTH__LIMIT_DAYS)
                return HUB_EINVAL;
        } while (!lth__working(self, day));
    }
    *due_us = (int64_t)day * LTH__DAY_US + close - (int64_t)LTH_WORKCAL_UTC_OFFSET_S * 1000000;
    return 0;
}

uint64_t lth_workcal_working_us(const lth_workcal_t *self, int64_t from_us, int64_t to_us)
{
    if (to_us <= from_us)
        return 0;
    int64_t off = (int64_t)LTH_WORKCAL_UTC_OFFSET_S * 1000000;
    int64_t a = from_us + off, b = to_us + off;
    long first = lth__floor_div(a, LTH__DAY_US), last = lth__floor_div(b, LTH__DAY_US);
    uint64_t total = 0;
    for (long day = first; day <= last; day++) {
        if (!lth__working(self, day))
            continue;
        int64_t base = (int64_t)day * LTH__DAY_US;
        for (size_t i = 0; i < self->n_periods; i++) {
            int64_t s = base + self->period_start[i], e = base + self->period_end[i];
            if (s < a)
                s = a;
            if (e > b)
                e = b;
            if (e > s)
                total += (uint64_t)(e - s);
        }
    }
    return total;
}
