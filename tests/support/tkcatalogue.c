#include "tkcatalogue.h"

#include "lth_catalogue.h"

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
