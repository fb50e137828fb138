#include "tkcatalogue.h"

#include "lth_catalogue.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

void tk_catalogue_use_shipped(const char *dir, char *conf, size_t size)
{
    const char *src = getenv("HUB_SOURCE_DIR");
    ck_assert_msg(src != NULL, "HUB_SOURCE_DIR is not set");
    char path[PATH_MAX], err[600];
    snprintf(path, sizeof path, "%s/deploy/catalogue-hn.tsv", src);
    snprintf(conf, size,
             "plugin.catalogue_file = %s\nplugin.catalogue_status = %s/catalogue.status\n", path,
             dir);
    lth_catalogue_t *c = NULL;
    ck_assert_msg(lth_catalogue_load(path, &c, err, sizeof err) == 0, "%s", err);
    lth_procedure_install(c);
}

char *tk_demo_policy(void)
{
    const char *src = getenv("HUB_SOURCE_DIR");
    ck_assert_msg(src != NULL, "HUB_SOURCE_DIR is not set");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/deploy/policy-demo.conf", src);
    char *demo = tk_read_file(path);
    ck_assert_msg(demo != NULL, "cannot read %s", path);
    return demo;
}

void tk_demo_policy_write(const char *dir)
{
    char path[PATH_MAX];
    char *demo = tk_demo_policy();
    snprintf(path, sizeof path, "%s/policy.conf", dir);
    tk_write_file(path, demo);
    free(demo);
}

void tk_dossier_db_paths(const char *dir, char *proc, char *portal, char *report)
{
    snprintf(proc, PATH_MAX, "%s/procedure.db", dir);
    snprintf(portal, PATH_MAX, "%s/portal.db", dir);
    snprintf(report, PATH_MAX, "%s/report.db", dir);
}
