/* hub_delegation: parsing, lookup by time, and refusal of bad files. */
#include "hub_delegation.h"
#include "hub_error.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[PATH_MAX], path[PATH_MAX + 32];

static int load(const char *text, hub_delegations_t **d, char *err)
{
    tk_write_file(path, text);
    return hub_delegations_load(path, d, err, 512);
}

static void setup(void)
{
    tk_tmpdir(dir);
    snprintf(path, sizeof path, "%s/delegations.conf", dir);
}

static void teardown(void) { tk_rmrf(dir); }

START_TEST(routes_by_period)
{
    hub_delegations_t *d = NULL;
    char err[512];
    ck_assert_msg(load("# birth registration delegated to a district\n"
                       "delegate VN/GOV/HN-STP/HOTICH/birth.register/v1 -> VN/GOV/HN-QHK/HOTICH "
                       "until 2026-12-31\n"
                       "delegate VN/GOV/HN-STP/HOTICH/birth.register/v1 -> VN/GOV/HN-QBD/HOTICH "
                       "from 2027-01-01\n",
                       &d, err) == 0,
                  "%s", err);
    ck_assert_uint_eq(hub_delegations_count(d), 2);
    unsigned line = 0;
    /* 2026-11-28 and 2027-06-01, in µs. */
    uint64_t now = 1795824000ull * 1000000u, later = 1811980800ull * 1000000u;
    ck_assert_str_eq(hub_delegations_find(d, "VN/GOV/HN-STP/HOTICH", "birth.register/v1", now,
                                          &line),
                     "VN/GOV/HN-QHK/HOTICH");
    ck_assert_uint_eq(line, 2);
    ck_assert_str_eq(hub_delegations_find(d, "VN/GOV/HN-STP/HOTICH", "birth.register/v1", later,
                                          &line),
                     "VN/GOV/HN-QBD/HOTICH");
    ck_assert_ptr_null(
        hub_delegations_find(d, "VN/GOV/HN-STP/HOTICH", "marriage.register/v1", now, NULL));
    ck_assert_ptr_null(hub_delegations_find(d, "VN/GOV/HN-QHK/HOTICH", "birth.register/v1", now,
                                            NULL));
    hub_delegations_destroy(&d);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(refuses_bad_files_naming_the_line)
{
    hub_delegations_t *d = NULL;
    char err[512];
    ck_assert_int_eq(load("\ndelegate VN/GOV/A/B/s/v1 VN/GOV/C/D\n", &d, err), HUB_EPARSE);
    ck_assert_msg(strstr(err, "delegations.conf:2:"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/A/B\n", &d, err), HUB_EPARSE);
    ck_assert_msg(strstr(err, "itself"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/C/D\n"
                          "delegate VN/GOV/A/B/s/v1 -> VN/GOV/E/F\n",
                          &d, err),
                     HUB_EPARSE);
    ck_assert_msg(strstr(err, "one delegate at a time"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/C/D\n"
                          "delegate VN/GOV/C/D/s/v1 -> VN/GOV/E/F\n",
                          &d, err),
                     HUB_EPARSE);
    ck_assert_msg(strstr(err, "again"), "%s", err);
    ck_assert_int_eq(load("delegate VN/GOV/A/B/s/v1 -> VN/GOV/C/D until tomorrow\n", &d, err),
                     HUB_EPARSE);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(hub_delegations_load("/nonexistent/d.conf", &d, err, sizeof err), HUB_ENOENT);
}
END_TEST

TK_MAIN("delegation", TK_CASE("delegation", setup, teardown, 0, routes_by_period,
                              refuses_bad_files_naming_the_line))
