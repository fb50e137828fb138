/* lth_catalogue: the catalogue file (the Chairman's announcing decisions),
 * its errors naming line and field, and installing it for lookups. */
#include "lth_catalogue.h"
#include "lth_procedure.h"
#include "hub_error.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[PATH_MAX], path[PATH_MAX + 32];

#define HEAD                                                                                       \
    "decision\tdecision_date\teffective_date\tstatus\tcode\tname\tname_en\tlevel\tauthority\t"     \
    "limit\tfee_vnd\tdocuments\tonline\tcheck\tassurance\tpurpose_code\n"
#define ROW(status, code, limit)                                                                   \
    "1/QĐ-UBND\t2025-01-02\t2025-01-10\t" status "\t" code                                         \
    "\tTên\t-\tprovince\tVN/GOV/A/B\t" limit "\t0\tTờ khai; Giấy tờ\tfull\tlookup\t2\tp\n"

static void setup(void)
{
    tk_tmpdir(dir);
    snprintf(path, sizeof path, "%s/catalogue.tsv", dir);
}

static void teardown(void)
{
    tk_rmrf(dir);
}

static int load(const char *text, lth_catalogue_t **c, char *err)
{
    tk_write_file(path, text);
    return lth_catalogue_load(path, c, err, 600);
}

START_TEST(the_shipped_catalogue_loads)
{
    char shipped[PATH_MAX], err[600];
    snprintf(shipped, sizeof shipped, "%s/deploy/catalogue-hn.tsv", getenv("HUB_SOURCE_DIR"));
    lth_catalogue_t *c = NULL;
    ck_assert_msg(lth_catalogue_load(shipped, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(lth_catalogue_count(c), 6);
    const lth_procedure_t *p = lth_catalogue_find(c, "SYN-1.000004");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->authority, "VN/GOV/HN-SKHDT/DKKD");
    ck_assert_uint_eq(p->limit_amount, 3);
    ck_assert_int_eq(p->limit_unit, LTH_LIMIT_WORKING_DAYS);
    ck_assert_int_eq(p->identity_check, LTH_CHECK_VERIFY);
    ck_assert_str_eq(p->decision, "2214/QĐ-UBND");
    ck_assert_uint_eq(p->fee_vnd, 50000);
    /* Nothing answers before a catalogue is installed: no built-in list. */
    ck_assert(!lth_procedure_installed());
    ck_assert_uint_eq(lth_procedure_count(), 0);
    ck_assert_ptr_null(lth_procedure_find("SYN-1.000004"));
    ck_assert_uint_eq(lth_procedure_fee_vnd("SYN-1.000004"), 0);
    ck_assert_ptr_null(lth_procedure_name("SYN-1.000004"));
    lth_catalogue_destroy(&c);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(install_changes_the_lookups)
{
    char err[600];
    lth_catalogue_t *c = NULL;
    ck_assert_msg(load("# comment\n" HEAD ROW("in-force", "X-1", "2 working days")
                           ROW("repealed", "X-2", "1 day"),
                       &c, err) == 0,
                  "%s", err);
    ck_assert_uint_eq(lth_catalogue_count(c), 1);
    ck_assert_ptr_null(lth_catalogue_find(c, "X-2"));
    ck_assert_ptr_nonnull(lth_catalogue_find_repealed(c, "X-2"));
    lth_procedure_install(c);
    ck_assert_uint_eq(lth_procedure_count(), 1);
    const lth_procedure_t *x1 = lth_procedure_find("X-1");
    ck_assert_ptr_nonnull(x1);
    ck_assert_ptr_null(lth_procedure_find("SYN-1.000001"));
    /* A repealed procedure keeps its name (a report of old dossiers). */
    ck_assert_ptr_null(lth_procedure_find("X-2"));
    ck_assert_ptr_nonnull(lth_procedure_find_repealed("X-2"));
    ck_assert_str_eq(lth_procedure_name("X-2"), "Tên");
    ck_assert_ptr_null(lth_procedure_name("X-3"));
    bool repealed = false;
    ck_assert_str_eq(lth_procedure_listed_at(1, &repealed)->code, "X-2");
    ck_assert(repealed);
    ck_assert_ptr_null(lth_procedure_listed_at(2, &repealed));
    lth_catalogue_t *d = NULL;
    ck_assert(load(HEAD ROW("in-force", "X-1", "3 working days"), &d, err) == 0);
    ck_assert(!lth_procedure_same(x1, lth_catalogue_at(d, 0)));
    lth_procedure_install(d);
    /* The older one's pointers stay valid. */
    ck_assert_uint_eq(x1->limit_amount, 2);
    ck_assert_uint_eq(lth_procedure_find("X-1")->limit_amount, 3);
    lth_procedure_release_all();
    /* None again, and no built-in list behind it. */
    ck_assert(!lth_procedure_installed());
    ck_assert_ptr_null(lth_procedure_find("X-1"));
    ck_assert_ptr_null(lth_procedure_find("SYN-1.000001"));
}
END_TEST

/* How a subscriber rebuilds the catalogue it was published. */
START_TEST(a_catalogue_built_in_memory_owns_its_strings)
{
    char name[32] = "Thủ tục A", code[32] = "Y-1";
    lth_procedure_t p = {.code = code,
                         .name = name,
                         .authority = "VN/GOV/A/B",
                         .limit_text = "2 working days",
                         .limit_amount = 2,
                         .limit_unit = LTH_LIMIT_WORKING_DAYS,
                         .fee_vnd = 8000};
    lth_catalogue_t *c = lth_catalogue_new();
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(lth_catalogue_add(c, &p, false), 0);
    ck_assert_int_eq(lth_catalogue_add(c, &p, true), HUB_EEXIST);
    snprintf(code, sizeof code, "Y-2");
    ck_assert_int_eq(lth_catalogue_add(c, &p, true), 0);
    snprintf(name, sizeof name, "changed");
    snprintf(code, sizeof code, "bad code");
    ck_assert_int_eq(lth_catalogue_add(c, &p, false), HUB_EINVAL);
    p.code = "Y-3";
    p.name = "";
    ck_assert_int_eq(lth_catalogue_add(c, &p, false), HUB_EINVAL);
    for (int i = 0; i < 40; i++) { /* the arrays grow: pointers into blocks stay right */
        char more[16];
        snprintf(more, sizeof more, "Z-%d", i);
        p.code = more;
        p.name = "Z";
        ck_assert_int_eq(lth_catalogue_add(c, &p, false), 0);
    }
    ck_assert_uint_eq(lth_catalogue_count(c), 41);
    ck_assert_uint_eq(lth_catalogue_count_repealed(c), 1);
    const lth_procedure_t *y1 = lth_catalogue_find(c, "Y-1");
    ck_assert_str_eq(y1->name, "Thủ tục A");
    ck_assert_str_eq(y1->limit_text, "2 working days");
    ck_assert_str_eq(y1->decision, ""); /* NULL fields come back as "" */
    ck_assert_uint_eq(y1->fee_vnd, 8000);
    ck_assert_str_eq(lth_catalogue_repealed_at(c, 0)->code, "Y-2");
    ck_assert_str_eq(lth_catalogue_find(c, "Z-39")->code, "Z-39");
    bool repealed = true;
    ck_assert_str_eq(lth_catalogue_listed_at(c, 0, &repealed)->code, "Y-1");
    ck_assert(!repealed);
    ck_assert_str_eq(lth_catalogue_listed_at(c, 41, &repealed)->code, "Y-2");
    ck_assert(repealed);
    ck_assert_ptr_null(lth_catalogue_listed_at(c, 42, &repealed));
    lth_catalogue_destroy(&c);
    ck_assert_ptr_null(c);
}
END_TEST

/* A row of 16 fields with the dates, authority and fee given. */
#define ROW_WITH(decision_date, effective_date, authority, fee)                                    \
    "1/QĐ-UBND\t" decision_date "\t" effective_date "\tin-force\tX\tT\t-\tprovince\t" authority    \
    "\t1 day\t" fee "\t-\tfull\tlookup\t2\tp\n"

START_TEST(errors_name_line_and_field)
{
    /* Each text is refused with HUB_EPARSE and an error holding each of
     * its needles (the line, the field, what is wrong). */
    static const struct {
        const char *text;
        const char *needles[3];
    } refused[] = {
        {HEAD ROW("in-force", "X-1", "3 wrking days"),
         {"catalogue.tsv:2: field limit: '3 wrking days'"}},
        {"code\tname\n", {":1:", "expected 'decision'"}},
        {HEAD "1/QĐ-UBND\t2025-01-02\n", {":2: 2 fields, expected 16", "effective_date"}},
        {HEAD ROW("in-force", "X-1", "1 day") ROW("repealed", "X-1", "1 day"),
         {":3: field code: X-1 is listed twice"}},
        {HEAD ROW_WITH("2025-01-10", "2025-01-02", "VN/GOV/A/B", "0"),
         {"field effective_date: 2025-01-02 is before"}},
        {HEAD ROW_WITH("2025-01-02", "2025-01-10", "nobody", "0"), {"field authority"}},
        {HEAD ROW_WITH("2025-01-02", "2025-01-10", "VN/GOV/A/B", "-5"), {"field fee_vnd"}},
        {"", {NULL}},
    };
    char err[600] = "";
    lth_catalogue_t *c = NULL;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        ck_assert_msg(load(refused[i].text, &c, err) == HUB_EPARSE, "row %zu: %s", i, err);
        tk_assert_holds(err, refused[i].needles);
    }
    ck_assert_int_eq(lth_catalogue_load("/nonexistent/c.tsv", &c, err, sizeof err), HUB_ENOENT);
    ck_assert_ptr_null(c);
}
END_TEST

TK_MAIN("catalogue",
        TK_CASE("catalogue", setup, teardown, 0, the_shipped_catalogue_loads,
                install_changes_the_lookups, a_catalogue_built_in_memory_owns_its_strings,
                errors_name_line_and_field))
