/* lth_date — calendar dates for the domain modules (birth dates, record
 * dates, "as of" dates): validation, ordering, day arithmetic, ISO 8601 text.
 *
 * Dates are plain values in the proleptic Gregorian calendar, no time zone.
 * Nothing here allocates; every function is safe from any thread.
 */
#ifndef LTH_DATE_H
#define LTH_DATE_H

#include <stdbool.h>

typedef struct {
    int year;  /* 1..9999 */
    int month; /* 1..12 */
    int day;   /* 1..31, within the month */
} lth_date_t;

#define LTH_DATE_TEXT_LEN 10 /* "YYYY-MM-DD" */

bool lth_date_is_leap(int year);
/* 28..31 for a valid month, 0 otherwise. */
int lth_date_days_in_month(int year, int month);
bool lth_date_valid(lth_date_t d);
/* Negative, 0 or positive as a is before, on or after b. */
int lth_date_cmp(lth_date_t a, lth_date_t b);
/* Days since 1970-01-01 (negative before), and back. */
long lth_date_to_days(lth_date_t d);
lth_date_t lth_date_from_days(long days);
/* Writes "YYYY-MM-DD" and a NUL into out. */
void lth_date_format(lth_date_t d, char out[LTH_DATE_TEXT_LEN + 1]);
/* Parses exactly "YYYY-MM-DD"; returns 0 or HUB_EINVAL (also for 2023-02-30). */
int lth_date_parse(const char *text, lth_date_t *out);

#endif
