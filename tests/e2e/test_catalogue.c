/* The procedure catalogue through the hub's publish/subscribe: the city's
 * procedure system publishes its list on each start; the national TTHC
 * database subscribes durably and gets every new version, including one
 * published while it was offline. */
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
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

TK_MAIN("e2e_catalogue",
        TK_CASE("catalogue", NULL, NULL, 120, subscriber_gets_each_published_catalogue))
