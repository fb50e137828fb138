/* lth_workcal — working time as a Vietnamese authority counts it: office
 * hours, weekends, public holidays with their compensatory days off, and
 * the Saturdays worked in exchange, in Asia/Ho_Chi_Minh, read from a
 * calendar file (deploy/calendar-vn.tsv is the one shipped).
 *
 * Procedure time limits (lth_procedure.h) are counted with it:
 *   - "N working hours": N hours of office time from receipt;
 *   - "N working days": N × (office hours in a day) of office time, so a
 *     dossier received on Friday at 15:00 with 3 working days is due on
 *     Wednesday at 15:00 (the hours left on Friday count);
 *   - "same working day": the close of the working day on which counting
 *     starts — the day of receipt if it came in office hours, otherwise the
 *     next working day;
 *   - "N days": calendar time (N × 24 h), holidays included.
 * Time before the first office period of a working day, after the last,
 * between periods and on days off does not count.
 *
 * Asia/Ho_Chi_Minh is UTC+7 with no daylight saving time (none since 1975),
 * so local time is a fixed offset; no tz database is read.
 *
 * The file (UTF-8, tab- or space-separated, '#' comments):
 *   hours    08:00-12:00 13:00-17:00   office periods of a working day
 *   weekend  sat sun                   weekly days off
 *   years    2026 2027                 the years the file is complete for
 *   holiday  2026-04-30 Ngày Chiến thắng      a public holiday
 *   off      2026-01-02 nghỉ bù ...          any other day off (compensatory)
 *   workday  2026-01-10 làm bù cho 02/01     a weekend day worked in exchange
 * The text after a date is its name, shown in reports.
 *
 * Thread safety: a loaded calendar is read-only; every function may be
 * called from any thread.
 */
#ifndef LTH_WORKCAL_H
#define LTH_WORKCAL_H

#include "lth_date.h"
#include "lth_procedure.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LTH_WORKCAL_UTC_OFFSET_S (7 * 3600) /* Asia/Ho_Chi_Minh */

typedef struct lth_workcal lth_workcal_t;

/* Reads a calendar file. On failure returns HUB_EIO (unreadable, or not
 * text) or HUB_EINVAL (over 16 MiB, or a line that is not understood) with a
 * sentence in err naming the file and line and what to write instead. */
int lth_workcal_load(const char *path, lth_workcal_t **out, char *err, size_t err_size);
/* The same from text in memory (tests; name is used in error messages). */
int lth_workcal_parse(const char *text, const char *name, lth_workcal_t **out, char *err,
                      size_t err_size);
void lth_workcal_destroy(lth_workcal_t **self_p);

/* Whether d (a local date) is a working day. */
bool lth_workcal_is_working_day(const lth_workcal_t *self, lth_date_t d);
/* The name of d's holiday or day off ("Tết Nguyên đán"), or NULL. */
const char *lth_workcal_day_name(const lth_workcal_t *self, lth_date_t d);
/* Whether the file says it is complete for this year. */
bool lth_workcal_covers(const lth_workcal_t *self, int year);

/* The moment (µs since the Unix epoch, UTC) a limit counted from from_us
 * ends. Returns 0 and sets *due_us, or HUB_EINVAL for an unknown unit or a
 * limit that does not end within ten years. */
int lth_workcal_due(const lth_workcal_t *self, int64_t from_us, unsigned amount,
                    lth_limit_unit_t unit, int64_t *due_us);
/* "Same working day": the close of office on the day of from_us if it came
 * in before the day's last period ended on a working day, otherwise the
 * close of the next working day. Returns 0 or HUB_EINVAL. */
int lth_workcal_due_same_day(const lth_workcal_t *self, int64_t from_us, int64_t *due_us);
/* Office time (µs) between two moments; 0 when to_us <= from_us. For the
 * "average processing time in working hours" of the reform-index report. */
uint64_t lth_workcal_working_us(const lth_workcal_t *self, int64_t from_us, int64_t to_us);

#endif
