#include "hub_fsguard.h"
#include "hub_error.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One path whose stat is known: its mode and owner. */
static int hub__fsguard_one(const char *path, const char *what, const struct stat *st,
                            char *err, size_t err_size)
{
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, err_size,
                 "%s %s is writable by group or others (mode %04o), so any user of this "
                 "machine could change whom the hub admits or allows; run 'chmod go-w %s'",
                 what, path, (unsigned)(st->st_mode & 07777), path);
        return HUB_EPERM;
    }
    uid_t me = geteuid();
    if (st->st_uid != 0 && st->st_uid != me) {
        snprintf(err, err_size,
                 "%s %s belongs to uid %u, neither root nor the user this process runs as "
                 "(uid %u), who could change it; run 'chown %u %s'",
                 what, path, (unsigned)st->st_uid, (unsigned)me, (unsigned)me, path);
        return HUB_EPERM;
    }
    return 0;
}

int hub_fsguard_check(const char *path, const char *what, char *err, size_t err_size)
{
    char dummy[8];
    if (!err || !err_size) {
        err = dummy;
        err_size = sizeof dummy;
    }
    if (!path || !*path)
        return 0;
    if (!what)
        what = "file";
    struct stat st;
    if (stat(path, &st) != 0)
        return 0; /* missing or unreadable: the loader says so in its own words */
    int rc = hub__fsguard_one(path, what, &st, err, err_size);
    if (rc != 0 || !S_ISDIR(st.st_mode))
        return rc;
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, err_size, "cannot list %s %s: %s", what, path, strerror(errno));
        return HUB_EIO;
    }
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
            continue;
        char child[PATH_MAX];
        if ((size_t)snprintf(child, sizeof child, "%s/%s", path, de->d_name) >= sizeof child)
            continue;
        struct stat cst;
        if (stat(child, &cst) != 0 || !S_ISREG(cst.st_mode))
            continue;
        rc = hub__fsguard_one(child, "file", &cst, err, err_size);
        if (rc != 0) {
            /* Say which directory it is in, for the operator. */
            size_t used = strlen(err);
            if (used + 1 < err_size)
                snprintf(err + used, err_size - used, " (in the %s)", what);
        }
    }
    closedir(d);
    return rc;
}
