/* Unit tests for the domain library's pure parts: dates, provinces, personal
 * ID numbers, the synthetic citizen generator (determinism, consistency,
 * uniqueness, realism) and content types. */
#include "hub_error.h"
#include "lth_citizen.h"
#include "lth_date.h"
#include "lth_domain.h"
#include "lth_pid.h"
#include "lth_province.h"
#include "testkit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Check's ck_assert_* report every passing check to the parent process;
 * loops over many thousand items check with this instead, which says
 * nothing until something fails. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* ---- dates ---- */

START_TEST(dates)
{
    ck_assert(lth_date_valid((lth_date_t){2024, 2, 29}));
    ck_assert(!lth_date_valid((lth_date_t){2023, 2, 29}));
    ck_assert(!lth_date_valid((lth_date_t){1900, 2, 29}));
    ck_assert(lth_date_valid((lth_date_t){2000, 2, 29}));
    ck_assert(!lth_date_valid((lth_date_t){2024, 13, 1}));
    ck_assert(!lth_date_valid((lth_date_t){2024, 4, 31}));
    ck_assert(!lth_date_valid((lth_date_t){0, 1, 1}));
    ck_assert_int_eq(lth_date_to_days((lth_date_t){1970, 1, 1}), 0);
    ck_assert_int_eq(lth_date_to_days((lth_date_t){2000, 3, 1}), 11017);
    ck_assert_int_eq(lth_date_to_days((lth_date_t){1969, 12, 31}), -1);
    /* Every day from 1890 to 2210 goes to a day number and back. */
    long first = lth_date_to_days((lth_date_t){1890, 1, 1});
    long last = lth_date_to_days((lth_date_t){2210, 12, 31});
    lth_date_t prev = lth_date_from_days(first - 1);
    for (long n = first; n <= last; n++) {
        lth_date_t d = lth_date_from_days(n);
        REQUIRE(lth_date_valid(d) && lth_date_to_days(d) == n && lth_date_cmp(prev, d) < 0,
                "day %ld", n);
        prev = d;
    }
    char text[LTH_DATE_TEXT_LEN + 1];
    lth_date_format((lth_date_t){985, 3, 7}, text);
    ck_assert_str_eq(text, "0985-03-07");
    lth_date_t d;
    ck_assert_int_eq(lth_date_parse("2024-02-29", &d), 0);
    ck_assert_int_eq(lth_date_cmp(d, (lth_date_t){2024, 2, 29}), 0);
    ck_assert_int_eq(lth_date_parse("2023-02-29", &d), HUB_EINVAL);
    ck_assert_int_eq(lth_date_parse("2023-2-28", &d), HUB_EINVAL);
    ck_assert_int_eq(lth_date_parse("2023-02-28x", &d), HUB_EINVAL);
    ck_assert_int_eq(lth_date_parse("2023/02/28", &d), HUB_EINVAL);
    ck_assert_int_eq(lth_date_parse("", &d), HUB_EINVAL);
}
END_TEST

/* ---- provinces ---- */

START_TEST(provinces)
{
    ck_assert_uint_eq(lth_province_count(), 63);
    ck_assert_str_eq(lth_province_find("001")->name, "Hà Nội");
    ck_assert_str_eq(lth_province_find("079")->name, "Hồ Chí Minh");
    ck_assert_str_eq(lth_province_find("096")->name, "Cà Mau");
    ck_assert_str_eq(lth_province_find("001085012345")->code, "001");
    ck_assert(lth_province_find("001")->city);
    ck_assert(!lth_province_find("040")->city);
    ck_assert_ptr_null(lth_province_find("003"));
    ck_assert_ptr_null(lth_province_find("000"));
    ck_assert_ptr_null(lth_province_find("097"));
    ck_assert_ptr_null(lth_province_find("01"));
    ck_assert_ptr_null(lth_province_find(NULL));
    for (size_t i = 1; i < lth_province_count(); i++)
        ck_assert_int_lt(strcmp(lth_province_at(i - 1)->code, lth_province_at(i)->code), 0);
    ck_assert_ptr_null(lth_province_at(63));
}
END_TEST

/* ---- personal ID numbers ---- */

static void assert_invalid(const char *pid, const char *expected_problem)
{
    lth_pid_info_t info;
    const char *problem = NULL;
    ck_assert_int_eq(lth_pid_check(pid, &info, &problem), HUB_EINVAL);
    ck_assert_ptr_nonnull(problem);
    ck_assert_msg(strstr(problem, expected_problem), "'%s': problem '%s'", pid, problem);
    /* The sentence says what is wrong without repeating the number. */
    if (pid && *pid)
        ck_assert_ptr_null(strstr(problem, pid));
}

START_TEST(pid_valid)
{
    lth_pid_info_t info;
    const char *problem = "unset";
    ck_assert_int_eq(lth_pid_check("001085012345", &info, &problem), 0);
    ck_assert_ptr_null(problem);
    ck_assert_int_eq(info.sex, LTH_SEX_MALE);
    ck_assert_int_eq(info.century, 1900);
    ck_assert_int_eq(info.birth_year, 1985);
    ck_assert_str_eq(info.province_code, "001");
    ck_assert_str_eq(info.province_name, "Hà Nội");
    ck_assert_uint_eq(info.sequence, 12345);

    ck_assert_int_eq(lth_pid_check("079199000001", &info, NULL), 0);
    ck_assert_int_eq(info.sex, LTH_SEX_FEMALE);
    ck_assert_int_eq(info.birth_year, 1999);
    ck_assert_str_eq(info.province_name, "Hồ Chí Minh");

    ck_assert_int_eq(lth_pid_check("040203999999", &info, NULL), 0);
    ck_assert_int_eq(info.sex, LTH_SEX_MALE);
    ck_assert_int_eq(info.century, 2000);
    ck_assert_int_eq(info.birth_year, 2003);
    ck_assert_uint_eq(info.sequence, 999999);

    ck_assert_int_eq(lth_pid_check("096324000000", &info, NULL), 0);
    ck_assert_int_eq(info.sex, LTH_SEX_FEMALE);
    ck_assert_int_eq(info.birth_year, 2024);

    ck_assert_int_eq(lth_pid_check("001400123456", &info, NULL), 0);
    ck_assert_int_eq(info.sex, LTH_SEX_MALE);
    ck_assert_int_eq(info.century, 2100);
    ck_assert_int_eq(info.birth_year, 2100);
    ck_assert_int_eq(lth_pid_check("001599123456", &info, NULL), 0);
    ck_assert_int_eq(info.sex, LTH_SEX_FEMALE);
    ck_assert_int_eq(info.birth_year, 2199);
    /* out and problem may be NULL. */
    ck_assert_int_eq(lth_pid_check("001085012345", NULL, NULL), 0);
}
END_TEST

START_TEST(pid_invalid)
{
    assert_invalid("00108501234", "exactly 12 digits");
    assert_invalid("0010850123456", "exactly 12 digits");
    assert_invalid("", "exactly 12 digits");
    assert_invalid("00108501234567890", "exactly 12 digits");
    assert_invalid("00108501234a", "digits only");
    assert_invalid(" 01085012345", "digits only");
    assert_invalid("001-85012345", "digits only");
    assert_invalid("00108501234\xc3\xa9", "digits only");
    assert_invalid("003085012345", "province code");
    assert_invalid("000085012345", "province code");
    assert_invalid("097085012345", "province code");
    assert_invalid("999085012345", "province code");
    for (char c = '6'; c <= '9'; c++) {
        char pid[] = "001085012345";
        pid[3] = c;
        assert_invalid(pid, "4th digit");
    }
    assert_invalid(NULL, "no personal ID number");
}
END_TEST

START_TEST(pid_compose)
{
    char pid[LTH_PID_LEN + 1];
    ck_assert_int_eq(lth_pid_compose("001", LTH_SEX_FEMALE, 1985, 12345, pid), 0);
    ck_assert_str_eq(pid, "001185012345");
    ck_assert_int_eq(lth_pid_compose("079", LTH_SEX_MALE, 2007, 0, pid), 0);
    ck_assert_str_eq(pid, "079207000000");
    ck_assert_int_eq(lth_pid_compose("096", LTH_SEX_FEMALE, 2199, 999999, pid), 0);
    ck_assert_str_eq(pid, "096599999999");
    ck_assert_int_eq(lth_pid_compose("003", LTH_SEX_MALE, 1985, 1, pid), HUB_EINVAL);
    ck_assert_int_eq(lth_pid_compose("001", LTH_SEX_MALE, 1899, 1, pid), HUB_EINVAL);
    ck_assert_int_eq(lth_pid_compose("001", LTH_SEX_MALE, 2200, 1, pid), HUB_EINVAL);
    ck_assert_int_eq(lth_pid_compose("001", LTH_SEX_MALE, 1985, 1000000, pid), HUB_EINVAL);
    ck_assert_int_eq(lth_pid_compose("001", (lth_sex_t)0, 1985, 1, pid), HUB_EINVAL);
    ck_assert_int_eq(lth_pid_compose("0011", LTH_SEX_MALE, 1985, 1, pid), HUB_EINVAL);
}
END_TEST

/* ---- the generator ---- */

START_TEST(generator_is_deterministic)
{
    lth_citizen_t a, b, c;
    for (size_t index = 0; index < 2000; index += 37) {
        REQUIRE(lth_citizen_generate(7, index, &a) == 0 && lth_citizen_generate(7, index, &b) == 0,
                "index %zu", index);
        REQUIRE(memcmp(&a, &b, sizeof a) == 0, "index %zu differs", index);
    }
    /* Pinned: a change to the generator changes every data set built with
     * it, which must be a deliberate decision (and a format bump). */
    ck_assert_int_eq(lth_citizen_generate(1, 0, &a), 0);
    ck_assert_str_eq(a.personal_id, "010084578789");
    ck_assert_int_eq(a.sex, LTH_SEX_MALE);
    ck_assert_int_eq(a.date_of_birth.year, 1984);
    /* Another seed or index gives another citizen. */
    ck_assert_int_eq(lth_citizen_generate(1, 0, &a), 0);
    ck_assert_int_eq(lth_citizen_generate(2, 0, &b), 0);
    ck_assert_int_eq(lth_citizen_generate(1, 1, &c), 0);
    ck_assert_str_ne(a.personal_id, b.personal_id);
    ck_assert_str_ne(a.personal_id, c.personal_id);
    /* Indices past the unique range are refused. */
    ck_assert_int_eq(lth_citizen_generate(1, LTH_CITIZEN_MAX - 1, &a), 0);
    ck_assert_int_eq(lth_citizen_generate(1, LTH_CITIZEN_MAX, &a), HUB_EINVAL);
    ck_assert_int_eq(lth_citizen_generate(1, 0, NULL), HUB_EINVAL);
}
END_TEST

static bool in_list(const char *word, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(word, list[i]))
            return true;
    return false;
}

START_TEST(generated_citizens_are_consistent)
{
    static const char *const male_middle[] = {"Văn", "Đức", "Minh", "Quang", "Hữu", "Xuân"};
    static const char *const female_middle[] = {"Thị", "Ngọc", "Thu", "Thanh", "Phương", "Minh"};
    static const char *const male_given[] = {"Anh",  "Hùng", "Dũng", "Tuấn", "Nam",   "Huy",
                                             "Long", "Hải",  "Sơn",  "Khoa", "Thắng", "Phúc"};
    static const char *const female_given[] = {"Hương", "Lan",  "Linh", "Trang", "Mai",  "Hà",
                                               "Hoa",   "Thảo", "Yến",  "Thủy",  "Ngân", "Vy"};
    const lth_date_t ref = LTH_CITIZEN_REFERENCE_DATE;
    size_t males = 0, changed = 0, hanoi_born = 0, born_2000s = 0;
    const size_t n = 20000;
    for (uint64_t seed = 1; seed <= 2; seed++) {
        for (size_t i = 0; i < n; i++) {
            lth_citizen_t c;
            REQUIRE(lth_citizen_generate(seed, i, &c) == 0, "index %zu", i);
            lth_pid_info_t info;
            const char *problem = NULL;
            REQUIRE(lth_pid_check(c.personal_id, &info, &problem) == 0, "seed %llu index %zu: %s",
                    (unsigned long long)seed, i, problem);
            REQUIRE(info.sex == c.sex, "index %zu: sex", i);
            REQUIRE(info.birth_year == c.date_of_birth.year, "index %zu: year of birth", i);
            REQUIRE(!strcmp(info.province_code, c.birth_province_code), "index %zu: province", i);
            REQUIRE(lth_date_valid(c.date_of_birth) && lth_date_cmp(c.date_of_birth, ref) <= 0 &&
                        c.date_of_birth.year >= 1930,
                    "index %zu: date of birth", i);
            /* created after birth, changed after creation, all by the reference date */
            REQUIRE(lth_date_cmp(c.date_of_birth, c.created_on) <= 0 &&
                        lth_date_cmp(c.created_on, c.changed_on) <= 0 &&
                        lth_date_cmp(c.changed_on, ref) <= 0,
                    "index %zu: record dates", i);
            REQUIRE((c.previous_residence[0] != '\0') ==
                        (lth_date_cmp(c.created_on, c.changed_on) < 0),
                    "index %zu: a change is a previous residence", i);
            REQUIRE(c.residence[0], "index %zu: residence", i);
            /* surname middle given, sex-appropriate */
            char name[LTH_CITIZEN_NAME_MAX];
            snprintf(name, sizeof name, "%s", c.full_name);
            char *save = NULL;
            char *surname = strtok_r(name, " ", &save);
            char *middle = strtok_r(NULL, " ", &save);
            char *given = strtok_r(NULL, " ", &save);
            REQUIRE(surname && given && !strtok_r(NULL, " ", &save), "index %zu: three names", i);
            bool male = c.sex == LTH_SEX_MALE;
            REQUIRE(in_list(middle, male ? male_middle : female_middle, 6) &&
                        in_list(given, male ? male_given : female_given, 12),
                    "index %zu: names for the sex", i);
            males += male;
            changed += c.previous_residence[0] != '\0';
            hanoi_born += !strcmp(c.birth_province_code, "001");
            born_2000s += c.date_of_birth.year >= 2000;
        }
    }
    /* Rough shapes: half male, about 3 in 10 records changed, about half
     * born in Hà Nội, a fair share born since 2000. */
    ck_assert_uint_gt(males, 2 * n * 45 / 100);
    ck_assert_uint_lt(males, 2 * n * 55 / 100);
    ck_assert_uint_gt(changed, 2 * n * 25 / 100);
    ck_assert_uint_lt(changed, 2 * n * 35 / 100);
    ck_assert_uint_gt(hanoi_born, 2 * n * 45 / 100);
    ck_assert_uint_lt(hanoi_born, 2 * n * 57 / 100);
    ck_assert_uint_gt(born_2000s, 2 * n * 15 / 100);
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(generated_ids_are_unique)
{
    const size_t n = 100000;
    uint64_t *ids = malloc(n * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < n; i++) {
        lth_citizen_t c;
        REQUIRE(lth_citizen_generate(42, i, &c) == 0, "index %zu", i);
        ids[i] = strtoull(c.personal_id, NULL, 10);
    }
    qsort(ids, n, sizeof *ids, cmp_u64);
    for (size_t i = 1; i < n; i++)
        REQUIRE(ids[i - 1] != ids[i], "duplicate ID at sorted position %zu", i);
    free(ids);
}
END_TEST

START_TEST(surnames_follow_their_shares)
{
    const size_t n = 20000;
    size_t nguyen = 0, tran = 0, ly = 0;
    for (size_t i = 0; i < n; i++) {
        lth_citizen_t c;
        REQUIRE(lth_citizen_generate(3, i, &c) == 0, "index %zu", i);
        nguyen += !strncmp(c.full_name, "Nguyễn ", strlen("Nguyễn "));
        tran += !strncmp(c.full_name, "Trần ", strlen("Trần "));
        ly += !strncmp(c.full_name, "Lý ", strlen("Lý "));
    }
    /* names.tsv: Nguyễn 38%, Trần 11%, Lý 0.5% (of 97.6% listed). */
    ck_assert_msg(nguyen > n * 30 / 100 && nguyen < n * 46 / 100, "Nguyễn: %zu of %zu", nguyen, n);
    ck_assert_msg(tran > n * 8 / 100 && tran < n * 14 / 100, "Trần: %zu of %zu", tran, n);
    ck_assert_msg(ly > 0 && ly < n * 2 / 100, "Lý: %zu of %zu", ly, n);
}
END_TEST

START_TEST(records_as_of_a_date)
{
    /* Find a citizen whose record changed, and one whose did not. */
    lth_citizen_t moved, stayed, view;
    size_t i = 0;
    do
        ck_assert_int_eq(lth_citizen_generate(1, i++, &moved), 0);
    while (!moved.previous_residence[0]);
    i = 0;
    do
        ck_assert_int_eq(lth_citizen_generate(1, i++, &stayed), 0);
    while (stayed.previous_residence[0]);

    lth_date_t before = lth_date_from_days(lth_date_to_days(moved.created_on) - 1);
    ck_assert_int_eq(lth_citizen_as_of(&moved, before, &view), HUB_ENOTFOUND);
    ck_assert_int_eq(lth_citizen_as_of(&moved, moved.created_on, &view), 0);
    ck_assert_str_eq(view.residence, moved.previous_residence);
    ck_assert_str_eq(view.previous_residence, "");
    ck_assert_int_eq(lth_date_cmp(view.changed_on, moved.created_on), 0);
    ck_assert_int_eq(lth_citizen_as_of(&moved, moved.changed_on, &view), 0);
    ck_assert_int_eq(memcmp(&view, &moved, sizeof view), 0);
    ck_assert_int_eq(lth_citizen_as_of(&stayed, LTH_CITIZEN_REFERENCE_DATE, &view), 0);
    ck_assert_int_eq(memcmp(&view, &stayed, sizeof view), 0);
    /* In place. */
    view = moved;
    ck_assert_int_eq(lth_citizen_as_of(&view, moved.created_on, &view), 0);
    ck_assert_str_eq(view.residence, moved.previous_residence);
}
END_TEST

/* ---- content types ---- */

START_TEST(content_types)
{
    ck_assert_str_eq(LTH_DOMAIN_CONTENT_TYPE("Dossier"),
                     "application/x-protobuf; proto=lth.domain.v1.Dossier");
    ck_assert(lth_domain_content_type_is(LTH_DOMAIN_CONTENT_TYPE("Dossier"), "Dossier"));
    ck_assert(lth_domain_content_type_is("Application/X-Protobuf;proto=lth.domain.v1.Dossier",
                                         "Dossier"));
    ck_assert(lth_domain_content_type_is(
        "application/x-protobuf ; charset=binary; proto = lth.domain.v1.Dossier ", "Dossier"));
    ck_assert(!lth_domain_content_type_is("application/x-protobuf", "Dossier"));
    ck_assert(
        !lth_domain_content_type_is(LTH_DOMAIN_CONTENT_TYPE("DossierStatusChange"), "Dossier"));
    ck_assert(!lth_domain_content_type_is("application/x-protobuf; proto=lth.domain.v1.Dossie",
                                          "Dossier"));
    ck_assert(!lth_domain_content_type_is("application/x-protobufx; proto=lth.domain.v1.Dossier",
                                          "Dossier"));
    ck_assert(!lth_domain_content_type_is("application/json", "Dossier"));
    ck_assert(!lth_domain_content_type_is(NULL, "Dossier"));
}
END_TEST

TK_MAIN("domain", TK_CASE("domain", NULL, NULL, 120, dates, provinces, pid_valid, pid_invalid,
                          pid_compose, generator_is_deterministic,
                          generated_citizens_are_consistent, generated_ids_are_unique,
                          surnames_follow_their_shares, records_as_of_a_date, content_types))
