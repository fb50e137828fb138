/* The working calendar (lth_workcal): procedure time limits counted in
 * working days and hours in Asia/Ho_Chi_Minh, over weekends, public
 * holidays, compensatory days off and Saturdays worked in exchange, with
 * the calendar shipped in deploy/calendar-vn.tsv. */
#include "hub_error.h"
#include "lth_workcal.h"
#include "testkit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lth_workcal_t *cal;

static void setup(void)
{
    char path[4096], err[256];
    const char *src = getenv("HUB_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/deploy/calendar-vn.tsv", src ? src : ".");
    ck_assert_msg(lth_workcal_load(path, &cal, err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
    lth_workcal_destroy(&cal);
}

/* Local time in Hà Nội (UTC+7) as µs since the epoch. */
static int64_t vn(int y, int mo, int d, int h, int mi)
{
    lth_date_t date = {y, mo, d};
    return ((int64_t)lth_date_to_days(date) * 86400 + h * 3600 + mi * 60 - 7 * 3600) * 1000000;
}

static void expect_due(int64_t from, unsigned amount, lth_limit_unit_t unit, int64_t want)
{
    int64_t due = 0;
    ck_assert_int_eq(lth_workcal_due(cal, from, amount, unit, &due), 0);
    ck_assert_msg(due == want, "due %lld, want %lld (%+lld min)", (long long)due, (long long)want,
                  (long long)(due - want) / 60000000);
}

START_TEST(three_working_days_from_a_friday_afternoon)
{
    /* Friday 6 March 2026, 15:00: two hours left that day, then Monday and
     * Tuesday, and six hours of Wednesday. */
    expect_due(vn(2026, 3, 6, 15, 0), 3, LTH_LIMIT_WORKING_DAYS, vn(2026, 3, 11, 15, 0));
    /* Received on Saturday: counting starts on Monday morning. */
    expect_due(vn(2026, 3, 7, 10, 0), 3, LTH_LIMIT_WORKING_DAYS, vn(2026, 3, 11, 17, 0));
    /* Received during the lunch break: counted from 13:00 (4 h that
     * afternoon, 4 h the next morning). */
    expect_due(vn(2026, 3, 9, 12, 30), 1, LTH_LIMIT_WORKING_DAYS, vn(2026, 3, 10, 12, 0));
}
END_TEST

START_TEST(a_limit_across_the_30_april_and_1_may_holidays)
{
    /* Wednesday 29 April 2026, 10:00, two working days (16 h): 6 h on
     * Wednesday; Thursday 30/4 and Friday 1/5 are holidays, then the
     * weekend; 8 h on Monday 4 May; 2 h on Tuesday: 10:00. */
    expect_due(vn(2026, 4, 29, 10, 0), 2, LTH_LIMIT_WORKING_DAYS, vn(2026, 5, 5, 10, 0));
    lth_date_t d30 = {2026, 4, 30}, d27 = {2026, 4, 27}, d4 = {2026, 5, 4};
    ck_assert(!lth_workcal_is_working_day(cal, d30));
    ck_assert_str_eq(lth_workcal_day_name(cal, d30), "Ngày Chiến thắng");
    /* The Hùng Kings' day fell on Sunday 26/4: Monday 27/4 is off instead. */
    ck_assert(!lth_workcal_is_working_day(cal, d27));
    ck_assert(lth_workcal_is_working_day(cal, d4));
    /* Calendar days run through holidays. */
    expect_due(vn(2026, 4, 29, 10, 0), 10, LTH_LIMIT_CALENDAR_DAYS, vn(2026, 5, 9, 10, 0));
}
END_TEST

START_TEST(same_working_day_submitted_after_office_hours)
{
    int64_t due = 0;
    /* Tuesday 10 March 2026 at 17:30: due at Wednesday's close. */
    ck_assert_int_eq(lth_workcal_due_same_day(cal, vn(2026, 3, 10, 17, 30), &due), 0);
    ck_assert_int_eq(due, vn(2026, 3, 11, 17, 0));
    /* At 09:00 the same day: that day's close. */
    ck_assert_int_eq(lth_workcal_due_same_day(cal, vn(2026, 3, 10, 9, 0), &due), 0);
    ck_assert_int_eq(due, vn(2026, 3, 10, 17, 0));
    /* Friday 17:05 before Tết 2026 (16–20/2 off): Monday 23 February. */
    ck_assert_int_eq(lth_workcal_due_same_day(cal, vn(2026, 2, 13, 17, 5), &due), 0);
    ck_assert_int_eq(due, vn(2026, 2, 23, 17, 0));
}
END_TEST

START_TEST(tet_and_the_saturday_worked_in_exchange)
{
    /* One working day from Friday 13/2/2026 at 16:00: 1 h that day, 7 h on
     * Monday 23/2 after the Tết week. */
    expect_due(vn(2026, 2, 13, 16, 0), 1, LTH_LIMIT_WORKING_DAYS, vn(2026, 2, 23, 16, 0));
    /* Friday 2/1/2026 is off, Saturday 10/1 is worked in exchange. */
    lth_date_t f2 = {2026, 1, 2}, s10 = {2026, 1, 10}, s17 = {2026, 1, 17};
    ck_assert(!lth_workcal_is_working_day(cal, f2));
    ck_assert(lth_workcal_is_working_day(cal, s10));
    ck_assert(!lth_workcal_is_working_day(cal, s17));
    /* 8 working hours from Friday 9/1 17:00: all of Saturday 10/1. */
    expect_due(vn(2026, 1, 9, 17, 0), 8, LTH_LIMIT_WORKING_HOURS, vn(2026, 1, 10, 17, 0));
    ck_assert(lth_workcal_covers(cal, 2026));
    ck_assert(!lth_workcal_covers(cal, 2030));
}
END_TEST

START_TEST(working_time_between_two_moments)
{
    /* Friday 15:00 to Wednesday 15:00 around a weekend: 2 + 8 + 8 + 6 h. */
    ck_assert_uint_eq(lth_workcal_working_us(cal, vn(2026, 3, 6, 15, 0), vn(2026, 3, 11, 15, 0)),
                      24ull * 3600 * 1000000);
    /* The lunch break and the night do not count. */
    ck_assert_uint_eq(lth_workcal_working_us(cal, vn(2026, 3, 9, 11, 0), vn(2026, 3, 9, 14, 0)),
                      2ull * 3600 * 1000000);
    ck_assert_uint_eq(lth_workcal_working_us(cal, vn(2026, 3, 9, 18, 0), vn(2026, 3, 10, 7, 0)), 0);
    ck_assert_uint_eq(lth_workcal_working_us(cal, vn(2026, 3, 10, 0, 0), vn(2026, 3, 9, 0, 0)), 0);
}
END_TEST

START_TEST(a_bad_calendar_is_refused_naming_the_line)
{
    lth_workcal_t *c = NULL;
    char err[256];
    ck_assert_int_eq(lth_workcal_parse("hours 08:00-12:00\nholiday 2026-02-30 x\n", "cal.tsv", &c,
                                       err, sizeof err),
                     HUB_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, "cal.tsv:2") && strstr(err, "YYYY-MM-DD"), "%s", err);
    ck_assert_int_eq(
        lth_workcal_parse("hours 13:00-17:00 08:00-12:00\n", "cal.tsv", &c, err, sizeof err),
        HUB_EINVAL);
    ck_assert_msg(strstr(err, "cal.tsv:1") && strstr(err, "in order"), "%s", err);
    ck_assert_int_eq(lth_workcal_parse("weekend sat\n", "cal.tsv", &c, err, sizeof err),
                     HUB_EINVAL);
    ck_assert_msg(strstr(err, "no 'hours' line"), "%s", err);
    ck_assert_int_eq(lth_workcal_parse("hours 08:00-17:00\nholiday 2026-01-01 a\noff 2026-01-01 "
                                       "b\n",
                                       "cal.tsv", &c, err, sizeof err),
                     HUB_EINVAL);
    ck_assert_msg(strstr(err, "2026-01-01 is listed twice"), "%s", err);
    ck_assert_int_eq(lth_workcal_parse("hours 08:00-17:00\nholidays 2026-01-01\n", "cal.tsv", &c,
                                       err, sizeof err),
                     HUB_EINVAL);
    ck_assert_msg(strstr(err, "unknown line"), "%s", err);
    ck_assert_int_eq(lth_workcal_load("/nonexistent/cal.tsv", &c, err, sizeof err), HUB_EIO);
    ck_assert_msg(strstr(err, "/nonexistent/cal.tsv"), "%s", err);
    /* An unknown unit. */
    int64_t due;
    ck_assert_int_eq(lth_workcal_due(cal, 0, 1, 0, &due), HUB_EINVAL);
}
END_TEST

TK_MAIN("workcal",
        TK_CASE("workcal", setup, teardown, 0, three_working_days_from_a_friday_afternoon,
                a_limit_across_the_30_april_and_1_may_holidays,
                same_working_day_submitted_after_office_hours,
                tet_and_the_saturday_worked_in_exchange, working_time_between_two_moments,
                a_bad_calendar_is_refused_naming_the_line))
