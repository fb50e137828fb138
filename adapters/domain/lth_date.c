#include "lth_date.h"

#include "hub_error.h"

#include <string.h>

bool lth_date_is_leap(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int lth_date_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    return month == 2 && lth_date_is_leap(year) ? 29 : days[month - 1];
}

bool lth_date_valid(lth_date_t d)
{
    return d.year >= 1 && d.year <= 9999 && d.day >= 1 &&
           d.day <= lth_date_days_in_month(d.year, d.month);
}

int lth_date_cmp(lth_date_t a, lth_date_t b)
{
    if (a.year != b.year)
        return a.year < b.year ? -1 : 1;
    if (a.month != b.month)
        return a.month < b.month ? -1 : 1;
    if (a.day != b.day)
        return a.day < b.day ? -1 : 1;
    return 0;
}

/* Howard Hinnant's days_from_civil / civil_from_days: exact for every year
 * of the proleptic Gregorian calendar, with no tables and no time zones. */
long lth_date_to_days(lth_date_t d)
{
    long y = d.year - (d.month <= 2);
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long mp = (d.month + 9) % 12;
    long doy = (153 * mp + 2) / 5 + d.day - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

lth_date_t lth_date_from_days(long days)
{
    long z = days + 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    lth_date_t d;
    d.day = (int)(doy - (153 * mp + 2) / 5 + 1);
    d.month = (int)(mp < 10 ? mp + 3 : mp - 9);
    d.year = (int)(yoe + era * 400 + (d.month <= 2));
    return d;
}

void lth_date_format(lth_date_t d, char out[LTH_DATE_TEXT_LEN + 1])
{
    /* By hand rather than snprintf: out-of-range fields are clamped, and the
     * output is always exactly ten characters. */
    unsigned year = d.year < 0 ? 0u : d.year > 9999 ? 9999u : (unsigned)d.year;
    unsigned month = d.month < 0 ? 0u : d.month > 99 ? 99u : (unsigned)d.month;
    unsigned day = d.day < 0 ? 0u : d.day > 99 ? 99u : (unsigned)d.day;
    out[0] = (char)('0' + year / 1000);
    out[1] = (char)('0' + year / 100 % 10);
    out[2] = (char)('0' + year / 10 % 10);
    out[3] = (char)('0' + year % 10);
    out[4] = '-';
    out[5] = (char)('0' + month / 10);
    out[6] = (char)('0' + month % 10);
    out[7] = '-';
    out[8] = (char)('0' + day / 10);
    out[9] = (char)('0' + day % 10);
    out[10] = '\0';
}

int lth_date_parse(const char *text, lth_date_t *out)
{
    if (!text || !out || strlen(text) != LTH_DATE_TEXT_LEN || text[4] != '-' || text[7] != '-')
        return HUB_EINVAL;
    int field[3] = {0, 0, 0};
    static const int start[3] = {0, 5, 8}, len[3] = {4, 2, 2};
    for (int f = 0; f < 3; f++) {
        for (int i = start[f]; i < start[f] + len[f]; i++) {
            if (text[i] < '0' || text[i] > '9')
                return HUB_EINVAL;
            field[f] = field[f] * 10 + (text[i] - '0');
        }
    }
    lth_date_t d = {field[0], field[1], field[2]};
    if (!lth_date_valid(d))
        return HUB_EINVAL;
    *out = d;
    return 0;
}
