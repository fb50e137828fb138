/* The procedure catalogue through the hub's publish/subscribe: the city's
 * procedure system publishes its list on each start; the national TTHC
 * database subscribes durably and gets every new version, including one
 * published while it was offline. The catalogue as data: the procedure
 * system reads it from a file (deploy/catalogue-hn.tsv), publishes what a
 * reload changed, and shows which changes the national catalogue has
 * acknowledged, rejected (with its reason) or not answered yet. */
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TTHC "VN/GOV/HN-VP/TTHC"
#define CSDLTTHC "VN/GOV/VPCP/CSDLTTHC"

static hubfix_t fix;

static char *version_line(const char *path)
{
    char *text = tk_read_file(path);
    if (text)
        text[strcspn(text, "\n")] = '\0';
    return text;
}

START_TEST(subscriber_gets_each_published_catalogue)
{
    hubfix_init(&fix, "policy_file = policy.conf");
    hubfix_add_member(&fix, TTHC, true);
    hubfix_add_member(&fix, CSDLTTHC, true);
    char path[PATH_MAX], cat_file[PATH_MAX], cat_conf[PATH_MAX + 64], proc_conf[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/policy.conf", fix.dir);
    /* The subscription needs an agreement, like a call would. */
    tk_write_file(path, "allow " CSDLTTHC " -> " TTHC "/catalogue.published/v1 purpose "
                        "\"national TTHC catalogue\"\n");
    hubfix_start(&fix);
    snprintf(cat_file, sizeof cat_file, "%s/catalogue.txt", fix.dir);
    snprintf(cat_conf, sizeof cat_conf, "plugin.file = %s\nplugin.publisher = " TTHC "\n",
             cat_file);
    pid_t sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    snprintf(proc_conf, sizeof proc_conf, "plugin.db = %s/proc.db\nplugin.dossiers = 0\n",
             fix.dir);
    pid_t pub = hubfix_start_adapter(&fix, TTHC, "procedure", proc_conf);
    ck_assert_msg(tk_wait_file_contains(cat_file, "Đăng ký khai sinh", 10000),
                  "catalogue not received");
    char *text = tk_read_file(cat_file);
    ck_assert_ptr_nonnull(strstr(text, "from " TTHC));
    ck_assert_ptr_nonnull(strstr(text, "SYN-1.000001\t"));
    free(text);
    char *v1 = version_line(cat_file);

    /* The subscriber goes away; a new version is published meanwhile. */
    tk_stop(sub);
    tk_stop(pub);
    pub = hubfix_start_adapter(&fix, TTHC, "procedure", proc_conf);
    tk_sleep_ms(1500);
    char *still = version_line(cat_file);
    ck_assert_str_eq(still, v1);
    sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    char *v2 = NULL;
    for (int w = 0; w < 100; w++) {
        free(v2);
        v2 = version_line(cat_file);
        if (strcmp(v2, v1) != 0)
            break;
        tk_sleep_ms(100);
    }
    ck_assert_str_ne(v2, v1);
    free(v1);
    free(v2);
    free(still);
    hubfix_cleanup(&fix);
}
END_TEST


/* ---- the catalogue as data (issue 19 item 4) ----------------------------- */

static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "'%s' not in the catalogue", from);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

static bool wait_contains(const char *path, const char *needle, int ms)
{
    return tk_wait_file_contains(path, needle, ms);
}

#define ROW7                                                                                       \
    "4001/QĐ-UBND\t2026-10-01\t2026-10-15\tin-force\tSYN-1.000007\tCấp bản sao trích lục hộ "     \
    "tịch\tCopy of a civil-status extract\tcommune\t" STP_ID "\tsame working day\t8000\tTờ khai "  \
    "cấp bản sao trích lục hộ tịch\tfull\tlookup\t1\tcivil-status-extract\n"
#define STP_ID "VN/GOV/HN-STP/HOTICH"

START_TEST(catalogue_changes_are_published_acknowledged_or_rejected)
{
    hubfix_init(&fix, "policy_file = policy.conf");
    hubfix_add_member(&fix, TTHC, true);
    hubfix_add_member(&fix, CSDLTTHC, true);
    char path[PATH_MAX], tsv[PATH_MAX], status[PATH_MAX], cat_file[PATH_MAX];
    char cat_conf[PATH_MAX + 64], proc_conf[3 * PATH_MAX];
    snprintf(path, sizeof path, "%s/policy.conf", fix.dir);
    tk_write_file(path, "allow " CSDLTTHC " -> " TTHC "/catalogue.published/v1\n"
                        "allow " CSDLTTHC " -> " TTHC "/catalogue.ack/v1\n");
    hubfix_start(&fix);
    /* The catalogue the repository ships. */
    char shipped[PATH_MAX];
    snprintf(shipped, sizeof shipped, "%s/deploy/catalogue-hn.tsv", getenv("HUB_SOURCE_DIR"));
    char *v1 = tk_read_file(shipped);
    ck_assert_ptr_nonnull(v1);
    snprintf(tsv, sizeof tsv, "%s/catalogue-hn.tsv", fix.dir);
    snprintf(status, sizeof status, "%s/catalogue.status", fix.dir);
    tk_write_file(tsv, v1);
    snprintf(cat_file, sizeof cat_file, "%s/catalogue.txt", fix.dir);
    snprintf(cat_conf, sizeof cat_conf, "plugin.file = %s\n", cat_file);
    pid_t sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    snprintf(proc_conf, sizeof proc_conf,
             "plugin.db = %s/proc.db\nplugin.dossiers = 0\nplugin.catalogue_file = %s\n"
             "plugin.catalogue_status = %s\n",
             fix.dir, tsv, status);
    pid_t pub = hubfix_start_adapter(&fix, TTHC, "procedure", proc_conf);
    char pub_log[PATH_MAX];
    snprintf(pub_log, sizeof pub_log, "%s/adapter-VN.GOV.HN-VP.TTHC.log", fix.dir);
    ck_assert_msg(wait_contains(cat_file, "1520/QĐ-UBND", 10000), "catalogue not received");
    ck_assert(wait_contains(status, "whole catalogue, 6 procedures: acknowledged by " CSDLTTHC,
                            10000));
    ck_assert(wait_contains(status, "unacknowledged 0, rejected 0", 1000));

    /* An addition and an amendment while the national catalogue is away:
     * published, shown as unacknowledged. */
    tk_stop(sub);
    char *amended = replace(v1, "3 working days", "5 working days");
    char *v2 = malloc(strlen(amended) + sizeof ROW7);
    sprintf(v2, "%s%s", amended, ROW7);
    free(amended);
    tk_write_file(tsv, v2);
    kill(pub, SIGHUP);
    ck_assert_msg(wait_contains(status, "amended SYN-1.000004; added SYN-1.000007: unacknowledged",
                                10000),
                  "no unacknowledged delta in %s", status);
    ck_assert(wait_contains(status, "unacknowledged 1,", 1000));
    ck_assert(wait_contains(status, "7 procedures in force", 1000));
    ck_assert(wait_contains(pub_log, "awaiting acknowledgement from " CSDLTTHC, 1000));
    /* It comes back, gets the change, acknowledges it. */
    sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    ck_assert_msg(wait_contains(cat_file, "SYN-1.000007\t" STP_ID "\tCấp bản sao", 10000),
                  "the addition did not arrive");
    ck_assert(wait_contains(status, "added SYN-1.000007: acknowledged by " CSDLTTHC, 10000));
    ck_assert(wait_contains(status, "unacknowledged 0, rejected 0", 2000));

    /* A broken file: the error names line and field; nothing is published
     * and the catalogue in force stays. */
    char *broken = replace(v2, "5 working days", "5 wrking days");
    tk_write_file(tsv, broken);
    free(broken);
    kill(pub, SIGHUP);
    ck_assert_msg(wait_contains(pub_log, "catalogue-hn.tsv:15: field limit: '5 wrking days'", 10000),
                  "the error does not name line 15 and the field; see %s", pub_log);
    ck_assert(wait_contains(status, "last reload refused, the catalogue in force stays", 2000));
    ck_assert(wait_contains(status, "7 procedures in force", 1000));
    ck_assert(wait_contains(pub_log, "stays in force", 1000));
    char *held = tk_read_file(cat_file);
    ck_assert_int_eq(tk_count_of(status, "published"), 2);

    /* The national catalogue lost a version (its file restored from an old
     * copy): the next change cannot apply, and it says why. */
    tk_stop(sub);
    const char *from = strstr(held, " from ");
    ck_assert_ptr_nonnull(from);
    char *old = malloc(strlen(from) + 16);
    sprintf(old, "version 1%s", from);
    tk_write_file(cat_file, old);
    free(old);
    free(held);
    sub = hubfix_start_adapter(&fix, CSDLTTHC, "catalogue", cat_conf);
    char *v3 = replace(v2, "in-force\tSYN-1.000006", "repealed\tSYN-1.000006");
    char *v3b = replace(v3, "3187/QĐ-UBND\t2025-07-08\t2025-07-15\trepealed",
                        "4002/QĐ-UBND\t2026-11-02\t2026-11-02\trepealed");
    tk_write_file(tsv, v3b);
    kill(pub, SIGHUP);
    ck_assert_msg(wait_contains(status, "repealed SYN-1.000006: rejected by " CSDLTTHC, 10000),
                  "no rejection in %s", status);
    ck_assert(wait_contains(status, "a publication was missed", 1000));
    ck_assert(wait_contains(status, "unacknowledged 0, rejected 1", 1000));
    ck_assert(wait_contains(pub_log, "REJECTED by " CSDLTTHC, 1000));
    ck_assert_int_eq(tk_count_of(status, "last reload refused"), 0);
    char *text = tk_read_file(cat_file);
    ck_assert_msg(strstr(text, "SYN-1.000006\t"), "a rejected change was applied: %s", text);
    free(text);
    free(v3);
    free(v3b);
    free(v2);
    free(v1);
    hubfix_cleanup(&fix);
}
END_TEST

TK_MAIN("e2e_catalogue",
        TK_CASE("catalogue", NULL, NULL, 120, subscriber_gets_each_published_catalogue),
        TK_CASE("as_data", NULL, NULL, 180, catalogue_changes_are_published_acknowledged_or_rejected))
