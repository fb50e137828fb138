/* hub_memberdir: the member directory file (deploy/members.tsv): names
 * found by id, comments and header skipped, and every bad line refused
 * with the file, the line and what to write. */
#include "hub_error.h"
#include "hub_memberdir.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load(const char *text, hub_memberdir_t **d, char *err)
{
    return hub_memberdir_load(tk_scratch_write("members.tsv", text), d, err, 512);
}

START_TEST(finds_names_by_id)
{
    hub_memberdir_t *d = NULL;
    char err[512];
    int rc = load("\xef\xbb\xbf# a comment\n"
                  "member_id\tname\tunit\tcontact\n"
                  "\n"
                  "VN/GOV/BCA/CSDLQGDC\tBộ Công an\tCơ sở dữ liệu quốc gia về dân cư\t"
                  "ketnoi@bca.example.vn\r\n"
                  "VN/GOV/HN-QHK/MOTCUA\tUBND quận Hoàn Kiếm\tBộ phận một cửa\n",
                  &d, err);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_uint_eq(hub_memberdir_count(d), 2);
    const hub_memberdir_entry_t *e = hub_memberdir_find(d, "VN/GOV/BCA/CSDLQGDC");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->name, "Bộ Công an");
    ck_assert_str_eq(e->unit, "Cơ sở dữ liệu quốc gia về dân cư");
    ck_assert_str_eq(e->contact, "ketnoi@bca.example.vn");
    e = hub_memberdir_find(d, "VN/GOV/HN-QHK/MOTCUA");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->contact, "");
    ck_assert_ptr_null(hub_memberdir_find(d, "VN/GOV/HN-STP/HOTICH"));
    ck_assert_ptr_null(hub_memberdir_find(NULL, "VN/GOV/HN-STP/HOTICH"));
    hub_memberdir_destroy(&d);
    ck_assert_ptr_null(d);
    hub_memberdir_destroy(&d);
}
END_TEST

START_TEST(the_shipped_directory_loads)
{
    char shipped[PATH_MAX];
    snprintf(shipped, sizeof shipped, "%s/deploy/members.tsv", getenv("HUB_SOURCE_DIR"));
    hub_memberdir_t *d = NULL;
    char err[512];
    ck_assert_msg(hub_memberdir_load(shipped, &d, err, sizeof err) == 0, "%s", err);
    const hub_memberdir_entry_t *e = hub_memberdir_find(d, "VN/GOV/HN-LGSP/OPS");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->name, "Sở Thông tin và Truyền thông Hà Nội");
    hub_memberdir_destroy(&d);
}
END_TEST

START_TEST(refuses_bad_lines)
{
    static const struct {
        const char *text;
        const char *says;
    } cases[] = {
        {"VN/GOV/BCA/CSDLQGDC\tBộ Công an\n", ":1: 2 field(s)"},
        {"# x\nVN/GOV/BCA/CSDLQGDC\tBộ Công an\tdân cư\tc\textra\n", ":2: 5 field(s)"},
        {"not an id\tBộ Công an\tdân cư\n", "is not a member id"},
        {"VN/GOV/BCA/CSDLQGDC\t\tdân cư\n", "empty agency name"},
        {"VN/GOV/BCA/CSDLQGDC\tBộ Công an\t\n", "empty unit"},
        {"VN/GOV/BCA/CSDLQGDC\tB\xe1\xbb\tdân cư\n", "not UTF-8"},
        {"VN/GOV/BCA/CSDLQGDC\tBộ\x1b[31m\tdân cư\n", "not UTF-8"},
        {"VN/GOV/BCA/CSDLQGDC\ta\tb\nVN/GOV/BCA/CSDLQGDC\tc\td\n", ":2: VN/GOV/BCA/CSDLQGDC is listed twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hub_memberdir_t *d = NULL;
        char err[512] = "";
        int rc = load(cases[i].text, &d, err);
        ck_assert_msg(rc == HUB_EINVAL, "case %zu: rc %d", i, rc);
        ck_assert_ptr_null(d);
        ck_assert_msg(strstr(err, cases[i].says) && strstr(err, "members.tsv:"),
                      "case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].says);
    }
    /* A line longer than the buffer is refused, not split in two. */
    size_t n = 8000;
    char *long_line = malloc(n + 64);
    ck_assert_ptr_nonnull(long_line);
    int o = snprintf(long_line, n + 64, "VN/GOV/BCA/CSDLQGDC\t");
    memset(long_line + o, 'a', n);
    strcpy(long_line + o + n, "\tunit\n");
    hub_memberdir_t *d = NULL;
    char err[512] = "";
    ck_assert_int_eq(load(long_line, &d, err), HUB_EINVAL);
    ck_assert_msg(strstr(err, "line too long"), "%s", err);
    free(long_line);
    /* A file that is not there. */
    ck_assert_int_eq(hub_memberdir_load("/nonexistent/members.tsv", &d, err, sizeof err), HUB_EIO);
    ck_assert_msg(strstr(err, "members_file"), "%s", err);
}
END_TEST

TK_MAIN("memberdir", TK_CASE("memberdir", tk_scratch_setup, tk_scratch_teardown, 0,
                             finds_names_by_id, the_shipped_directory_loads, refuses_bad_lines))
