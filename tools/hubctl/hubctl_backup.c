/* hubctl_backup — see hubctl_backup.h. */
#include "hubctl_backup.h"

#include "hub_audit.h"
#include "hub_conf.h"
#include "hub_config.h"
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_sha256.h"
#include "hub_store.h"
#include "hub_wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BK_MANIFEST_FORMAT 1
#define BK_MAX_FILES 4096

/* ---- files ------------------------------------------------------------- */

/* out = a/b; a path too long for PATH_MAX becomes "" (and every use fails). */
static void bk_join(char *out, size_t size, const char *a, const char *b)
{
    if ((size_t)snprintf(out, size, "%s/%s", a, b) >= size)
        out[0] = '\0';
}

static void bk_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int bk_mkdir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        fprintf(stderr, "hubctl: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Copies src to dst (created with `mode`, replaced through a temporary file
 * and fsync'ed). With whole_lines, copies only up to the last newline: the
 * audit file the hub is appending to may end in a half-written record.
 * sha_hex (65 bytes) and size get what was copied; NULL/0 skip them. */
static int bk_copy(const char *src, const char *dst, mode_t mode, bool whole_lines,
                   char *sha_hex, uint64_t *size)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        fprintf(stderr, "hubctl: cannot read %s: %s\n", src, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(in, &st) != 0) {
        close(in);
        return -1;
    }
    uint64_t limit = (uint64_t)st.st_size;
    if (whole_lines) {
        /* Scan back for the last newline within what exists now. */
        char buf[4096];
        uint64_t end = limit;
        limit = 0;
        while (end > 0) {
            size_t n = end > sizeof buf ? sizeof buf : (size_t)end;
            ssize_t r = pread(in, buf, n, (off_t)(end - n));
            if (r != (ssize_t)n)
                break;
            size_t k = n;
            while (k > 0 && buf[k - 1] != '\n')
                k--;
            if (k > 0) {
                limit = end - n + k;
                break;
            }
            end -= n;
        }
    }
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.part", dst);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (out < 0) {
        fprintf(stderr, "hubctl: cannot write %s: %s\n", tmp, strerror(errno));
        close(in);
        return -1;
    }
    hub_sha256_t h;
    hub_sha256_init(&h);
    static char buf[1 << 16];
    uint64_t done = 0;
    int rc = 0;
    while (done < limit) {
        size_t want = limit - done > sizeof buf ? sizeof buf : (size_t)(limit - done);
        ssize_t r = pread(in, buf, want, (off_t)done);
        if (r <= 0) {
            fprintf(stderr, "hubctl: %s shrank or failed while being copied\n", src);
            rc = -1;
            break;
        }
        if (write(out, buf, (size_t)r) != r) {
            fprintf(stderr, "hubctl: cannot write %s: %s\n", tmp, strerror(errno));
            rc = -1;
            break;
        }
        hub_sha256_update(&h, buf, (size_t)r);
        done += (uint64_t)r;
    }
    if (rc == 0 && fsync(out) != 0)
        rc = -1;
    close(in);
    if (close(out) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, dst) != 0) {
        fprintf(stderr, "hubctl: cannot rename %s: %s\n", tmp, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(tmp);
        return -1;
    }
    (void)chmod(dst, mode); /* open's mode went through the umask */
    if (sha_hex) {
        uint8_t d[HUB_SHA256_LEN];
        hub_sha256_final(&h, d);
        bk_hex(d, sizeof d, sha_hex);
    }
    if (size)
        *size = done;
    return 0;
}

static int bk_sha_file(const char *path, char *sha_hex, uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    hub_sha256_t h;
    hub_sha256_init(&h);
    static char buf[1 << 16];
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        hub_sha256_update(&h, buf, n);
        *size += n;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return -1;
    uint8_t d[HUB_SHA256_LEN];
    hub_sha256_final(&h, d);
    bk_hex(d, sizeof d, sha_hex);
    return 0;
}

static int bk_name_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    /* audit-000010.log sorts after audit-000009.log; longer numbers later. */
    size_t lx = strlen(x), ly = strlen(y);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

/* The names in dir that start with prefix and end with suffix, sorted.
 * Returns the count (names malloc'ed into names[]), or -1. */
static int bk_list(const char *dir, const char *prefix, const char *suffix, char **names,
                   int max)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int n = 0;
    struct dirent *e;
    size_t lp = strlen(prefix), ls = strlen(suffix);
    while ((e = readdir(d)) && n < max) {
        size_t l = strlen(e->d_name);
        if (l < lp + ls || strncmp(e->d_name, prefix, lp) ||
            strcmp(e->d_name + l - ls, suffix))
            continue;
        names[n] = strdup(e->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, bk_name_cmp);
    return n;
}

static void bk_free_list(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
}

/* ---- backup ------------------------------------------------------------ */

typedef struct {
    const char *dest;
    FILE *manifest;
    int files;
} bk_out_t;

/* Copies src into dest/rel and records it in the manifest. */
static int bk_put(bk_out_t *o, const char *src, const char *rel, mode_t mode, bool whole_lines)
{
    char dst[PATH_MAX], sha[65];
    uint64_t size = 0;
    bk_join(dst, sizeof dst, o->dest, rel);
    if (bk_copy(src, dst, mode, whole_lines, sha, &size) != 0)
        return -1;
    fprintf(o->manifest, "file = \"%s %s %" PRIu64 "\"\n", rel, sha, size);
    o->files++;
    return 0;
}

/* Records a file already in dest (the store copy LMDB wrote). */
static int bk_record(bk_out_t *o, const char *rel)
{
    char path[PATH_MAX], sha[65];
    uint64_t size;
    bk_join(path, sizeof path, o->dest, rel);
    if (bk_sha_file(path, sha, &size) != 0) {
        fprintf(stderr, "hubctl backup: cannot read back %s\n", path);
        return -1;
    }
    fprintf(o->manifest, "file = \"%s %s %" PRIu64 "\"\n", rel, sha, size);
    o->files++;
    return 0;
}

static const char *bk_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The public files the configuration names, under config/. */
static int bk_put_config(bk_out_t *o, const char *hub_config, const hub_config_t *cfg)
{
    char rel[PATH_MAX];
    bk_join(rel, sizeof rel, o->dest, "config");
    if (bk_mkdir(rel, 0700) != 0)
        return -1;
    if (bk_put(o, hub_config, "config/hubd.conf", 0600, false) != 0)
        return -1;
    const char *files[] = {cfg->policy_file, cfg->delegations_file, cfg->ca_cert, cfg->crl_file};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (!files[i][0])
            continue;
        snprintf(rel, sizeof rel, "config/%s", bk_base(files[i]));
        if (bk_put(o, files[i], rel, 0600, false) != 0)
            return -1;
    }
    const char *dir = cfg->ca_cert[0] ? cfg->cert_dir : cfg->key_dir;
    const char *suffix = cfg->ca_cert[0] ? ".crt" : ".pub";
    char sub[PATH_MAX];
    bk_join(sub, sizeof sub, o->dest, "config/members");
    if (dir[0] && bk_mkdir(sub, 0700) != 0)
        return -1;
    char *names[BK_MAX_FILES];
    int n = dir[0] ? bk_list(dir, "", suffix, names, BK_MAX_FILES) : 0;
    int rc = n < 0 ? -1 : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        char src[PATH_MAX];
        bk_join(src, sizeof src, dir, names[i]);
        snprintf(rel, sizeof rel, "config/members/%s", names[i]);
        rc = bk_put(o, src, rel, 0600, false);
    }
    bk_free_list(names, n > 0 ? n : 0);
    return rc;
}

static int bk_load_hub_config(const char *path, hub_config_t *cfg)
{
    char err[HUB_ERRMSG_MAX];
    if (hub_config_load(path, cfg, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl: cannot read the hub's configuration: %s\n(give it with "
                        "--hub-config FILE; default " HUB_DEFAULT_CONFIG ")\n",
                err);
        return -1;
    }
    return 0;
}

/* backup's and restore's command line: DIR [--hub-config FILE] [flag], then
 * the hub's configuration (*hub_config: its file). 0, or the exit status
 * with the problem printed (usage: what to print when the arguments are
 * wrong). */
static int bk_command(int argc, char **argv, const char *flag, const char *usage, const char **dir,
                      bool *flag_set, const char **hub_config, hub_config_t *cfg)
{
    *hub_config = HUB_DEFAULT_CONFIG;
    *dir = NULL;
    *flag_set = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--hub-config") && i + 1 < argc) {
            *hub_config = argv[++i];
        } else if (!strcmp(argv[i], flag)) {
            *flag_set = true;
        } else if (argv[i][0] != '-' && !*dir) {
            *dir = argv[i];
        } else {
            *dir = NULL;
            break;
        }
    }
    if (!*dir) {
        fputs(usage, stderr);
        return 2;
    }
    return bk_load_hub_config(*hub_config, cfg) != 0 ? 1 : 0;
}

int hubctl_backup_main(int argc, char **argv)
{
    const char *dest, *hub_config;
    bool with_keys;
    hub_config_t cfg;
    int status = bk_command(argc, argv, "--with-keys",
                            "hubctl backup: usage: hubctl backup DEST [--hub-config FILE] "
                            "[--with-keys]\n",
                            &dest, &with_keys, &hub_config, &cfg);
    if (status != 0)
        return status;
    if (cfg.store_backend == HUB_STORE_POSTGRESQL) {
        fprintf(stderr, "hubctl backup: the store is in PostgreSQL (store = postgresql): back "
                        "it up with pg_dump or pg_basebackup; hubctl backup copies LMDB stores\n");
        return 1;
    }
    /* A backup goes into a new (or empty) directory: never mix two. */
    if (mkdir(dest, 0700) != 0) {
        DIR *d = errno == EEXIST ? opendir(dest) : NULL;
        int entries = 0;
        struct dirent *e;
        while (d && (e = readdir(d)))
            entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (d)
            closedir(d);
        if (!d || entries) {
            fprintf(stderr, "hubctl backup: %s %s: give a new directory\n", dest,
                    d ? "is not empty" : "cannot be created");
            return 1;
        }
    }
    char path[PATH_MAX], tmp_manifest[PATH_MAX];
    bk_join(tmp_manifest, sizeof tmp_manifest, dest, "MANIFEST.part");
    bk_out_t o = {.dest = dest, .manifest = fopen(tmp_manifest, "w")};
    if (!o.manifest) {
        fprintf(stderr, "hubctl backup: cannot write %s: %s\n", tmp_manifest, strerror(errno));
        return 1;
    }
    uint64_t started = hub_now_us();

    /* 1. The store: one read snapshot while the hub keeps writing. */
    char err[HUB_ERRMSG_MAX];
    hub_store_info_t info;
    bk_join(path, sizeof path, dest, "store");
    int rc = hub_store_backup(cfg.data_dir, path, &info, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "hubctl backup: %s\n", err);
        goto fail;
    }
    if (bk_record(&o, "store/data.mdb") != 0)
        goto fail;
    bk_join(path, sizeof path, cfg.data_dir, "subscriptions");
    if (access(path, F_OK) == 0 && bk_put(&o, path, "store/subscriptions", 0600, false) != 0)
        goto fail;

    /* 2. The audit log, after the store: every message in the store copy
     * has its ACCEPTED record in what is copied here. */
    char *names[BK_MAX_FILES];
    int n = cfg.audit ? bk_list(cfg.audit_dir, "audit-", ".log", names, BK_MAX_FILES) : 0;
    if (n < 0) {
        fprintf(stderr, "hubctl backup: cannot list %s: %s\n", cfg.audit_dir, strerror(errno));
        goto fail;
    }
    bk_join(path, sizeof path, dest, "audit");
    rc = n > 0 ? bk_mkdir(path, 0700) : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        char src[PATH_MAX], rel[PATH_MAX];
        bk_join(src, sizeof src, cfg.audit_dir, names[i]);
        snprintf(rel, sizeof rel, "audit/%s", names[i]);
        rc = bk_put(&o, src, rel, 0600, true);
    }
    bk_free_list(names, n > 0 ? n : 0);
    if (rc != 0)
        goto fail;

    /* 3. The configuration and the public files it names; the hub's secret
     * key only when asked (a backup then must be kept like the key). */
    if (bk_put_config(&o, hub_config, &cfg) != 0)
        goto fail;
    if (with_keys) {
        bk_join(path, sizeof path, dest, "keys");
        if (bk_mkdir(path, 0700) != 0 || bk_put(&o, cfg.key_file, "keys/hub.secret", 0600,
                                                 false) != 0)
            goto fail;
    }

    fprintf(o.manifest,
            "backup_format = %d\nhubd_version = %s\ntaken_at_us = %" PRIu64 "\n"
            "store_format = %u\nstore_id = %s\nnext_seq = %" PRIu64 "\n"
            "messages = %" PRIu64 "\ndead = %" PRIu64 "\naudit_files = %d\nwith_keys = %s\n",
            BK_MANIFEST_FORMAT, HUB_VERSION, started, info.format,
            info.store_id[0] ? info.store_id : "none", info.next_seq, info.messages, info.dead,
            n, with_keys ? "yes" : "no");
    if (fflush(o.manifest) != 0 || fsync(fileno(o.manifest)) != 0 || fclose(o.manifest) != 0) {
        o.manifest = NULL;
        fprintf(stderr, "hubctl backup: cannot write the manifest\n");
        goto fail;
    }
    o.manifest = NULL;
    bk_join(path, sizeof path, dest, "MANIFEST");
    if (rename(tmp_manifest, path) != 0) {
        fprintf(stderr, "hubctl backup: cannot write %s: %s\n", path, strerror(errno));
        goto fail;
    }
    printf("backup %s: store %s (format %u, %" PRIu64 " queued, %" PRIu64
           " dead-lettered, next seq %" PRIu64 "), %d audit file%s, %s; %d files in "
           "MANIFEST\n",
           dest, info.store_id[0] ? info.store_id : "(format 1, no id)", info.format,
           info.messages, info.dead, info.next_seq, n, n == 1 ? "" : "s",
           with_keys ? "WITH the hub's secret key (keep it like the key)" : "without keys",
           o.files);
    return 0;
fail:
    if (o.manifest)
        fclose(o.manifest);
    fprintf(stderr, "hubctl backup: FAILED; %s is incomplete (no MANIFEST): remove it\n", dest);
    return 1;
}

/* ---- restore ----------------------------------------------------------- */

typedef struct {
    char rel[BK_MAX_FILES][160];
    char sha[BK_MAX_FILES][65];
    uint64_t size[BK_MAX_FILES];
    int n;
    char store_id[40];
    uint64_t next_seq;
    uint64_t messages;
    int backup_format;
} bk_manifest_t;

static int bk_manifest_entry(const char *key, const char *value, void *user, char *err,
                             size_t err_size)
{
    bk_manifest_t *m = user;
    unsigned long long v;
    if (!strcmp(key, "file")) {
        if (m->n >= BK_MAX_FILES) {
            snprintf(err, err_size, "too many files");
            return HUB_EINVAL;
        }
        char rel[160], sha[65];
        unsigned long long size;
        if (sscanf(value, "%159s %64s %llu", rel, sha, &size) != 3 || strlen(sha) != 64 ||
            rel[0] == '/' || strstr(rel, "..")) {
            snprintf(err, err_size, "bad file line '%.80s'", value);
            return HUB_EINVAL;
        }
        memcpy(m->rel[m->n], rel, sizeof rel);
        memcpy(m->sha[m->n], sha, sizeof sha);
        m->size[m->n++] = size;
        return 0;
    }
    if (!strcmp(key, "store_id"))
        return hub_conf_str(key, value, m->store_id, sizeof m->store_id, err, err_size);
    if (!strcmp(key, "next_seq") || !strcmp(key, "messages")) {
        int rc = hub_conf_uint(key, value, 0, UINT64_MAX, &v, err, err_size);
        *(key[0] == 'n' ? &m->next_seq : &m->messages) = v;
        return rc;
    }
    if (!strcmp(key, "backup_format")) {
        int rc = hub_conf_uint(key, value, 1, 1000, &v, err, err_size);
        m->backup_format = (int)v;
        return rc;
    }
    return 0; /* informative keys (taken_at_us, hubd_version, ...) */
}

/* Is a hub running on these directories? LMDB holds a shared lock on
 * lock.mdb's first byte while an environment is open; the audit log holds
 * an exclusive flock() on its directory. */
static bool bk_hub_running(const hub_config_t *cfg, long *pid)
{
    char path[PATH_MAX];
    *pid = 0;
    bk_join(path, sizeof path, cfg->data_dir, "lock.mdb");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
            *pid = (long)fl.l_pid;
        close(fd);
        if (*pid)
            return true;
    }
    if (cfg->audit) {
        fd = open(cfg->audit_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            bool busy = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
            close(fd);
            if (busy)
                return true;
        }
    }
    return false;
}

static int bk_own(const char *path, const struct stat *owner)
{
    if (geteuid() != 0)
        return 0;
    return chown(path, owner->st_uid, owner->st_gid);
}

/* Moves what a previous hub left in the target directories into
 * data_dir/before-restore-<time>/ (with --force); nothing is deleted. */
static int bk_move_aside(const hub_config_t *cfg, bool *had_any)
{
    char aside[PATH_MAX];
    char name[64];
    snprintf(name, sizeof name, "before-restore-%lld", (long long)time(NULL));
    bk_join(aside, sizeof aside, cfg->data_dir, name);
    *had_any = false;
    const char *store_files[] = {"data.mdb", "lock.mdb", "subscriptions"};
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < 3; i++) {
            char p[PATH_MAX], q[PATH_MAX];
            bk_join(p, sizeof p, cfg->data_dir, store_files[i]);
            if (access(p, F_OK) != 0)
                continue;
            *had_any = true;
            if (pass == 0)
                continue;
            bk_join(q, sizeof q, aside, store_files[i]);
            if (rename(p, q) != 0)
                return -1;
        }
        char *names[BK_MAX_FILES];
        int n = cfg->audit ? bk_list(cfg->audit_dir, "audit-", ".log", names, BK_MAX_FILES) : 0;
        if (n > 0) {
            *had_any = true;
            char adir[PATH_MAX];
            bk_join(adir, sizeof adir, aside, "audit");
            if (pass == 1 && bk_mkdir(adir, 0700) != 0)
                n = -n;
            for (int i = 0; pass == 1 && n > 0 && i < n; i++) {
                char p[PATH_MAX], q[PATH_MAX];
                bk_join(p, sizeof p, cfg->audit_dir, names[i]);
                bk_join(q, sizeof q, adir, names[i]);
                if (rename(p, q) != 0)
                    n = -n;
            }
            bk_free_list(names, n > 0 ? n : -n);
            if (n < 0)
                return -1;
        }
        if (pass == 0 && !*had_any)
            return 0;
        if (pass == 0 && bk_mkdir(aside, 0700) != 0)
            return -1;
    }
    printf("restore: the previous store and audit log are in %s\n", aside);
    return 0;
}

int hubctl_restore_main(int argc, char **argv)
{
    const char *src, *hub_config;
    bool force;
    hub_config_t cfg;
    int status = bk_command(argc, argv, "--force",
                            "hubctl restore: usage: hubctl restore BACKUP-DIR [--hub-config FILE] "
                            "[--force]\n",
                            &src, &force, &hub_config, &cfg);
    if (status != 0)
        return status;
    if (cfg.store_backend == HUB_STORE_POSTGRESQL) {
        fprintf(stderr, "hubctl restore: the hub's store is in PostgreSQL (store = postgresql): "
                        "restore it with PostgreSQL's tools (pg_restore); hubctl restore puts "
                        "back LMDB stores\n");
        return 1;
    }
    long pid;
    if (bk_hub_running(&cfg, &pid)) {
        fprintf(stderr,
                "hubctl restore: a hub is running on %s (pid %ld): stop it first (systemctl "
                "stop hubd), then run this again\n",
                cfg.data_dir, pid);
        return 1;
    }

    /* The backup must be complete and unchanged before anything is moved. */
    static bk_manifest_t m;
    memset(&m, 0, sizeof m);
    char path[PATH_MAX], err[HUB_ERRMSG_MAX];
    bk_join(path, sizeof path, src, "MANIFEST");
    if (hub_conf_parse_file(path, bk_manifest_entry, &m, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl restore: %s: not a complete backup (%s)\n", src, err);
        return 1;
    }
    if (m.backup_format != BK_MANIFEST_FORMAT) {
        fprintf(stderr, "hubctl restore: %s: backup format %d; this hubctl reads format %d\n",
                src, m.backup_format, BK_MANIFEST_FORMAT);
        return 1;
    }
    bool has_store = false;
    for (int i = 0; i < m.n; i++) {
        char p[PATH_MAX], sha[65];
        uint64_t size;
        bk_join(p, sizeof p, src, m.rel[i]);
        if (bk_sha_file(p, sha, &size) != 0 || size != m.size[i] || strcmp(sha, m.sha[i])) {
            fprintf(stderr, "hubctl restore: %s is missing or changed since the backup "
                            "(SHA-256 or size differs from MANIFEST): use another backup\n",
                    p);
            return 1;
        }
        has_store |= !strcmp(m.rel[i], "store/data.mdb");
    }
    if (!has_store) {
        fprintf(stderr, "hubctl restore: %s holds no store/data.mdb\n", src);
        return 1;
    }

    /* The target: data_dir and audit_dir, owned by data_dir's owner. */
    if (bk_mkdir(cfg.data_dir, 0750) != 0 || (cfg.audit && bk_mkdir(cfg.audit_dir, 0750) != 0))
        return 1;
    struct stat owner;
    if (stat(cfg.data_dir, &owner) != 0)
        return 1;
    bool had_any = false;
    if (force) {
        if (bk_move_aside(&cfg, &had_any) != 0) {
            fprintf(stderr, "hubctl restore: cannot move the previous store aside: %s\n",
                    strerror(errno));
            return 1;
        }
    } else {
        bk_join(path, sizeof path, cfg.data_dir, "data.mdb");
        char *names[8];
        int n = cfg.audit ? bk_list(cfg.audit_dir, "audit-", ".log", names, 8) : 0;
        bk_free_list(names, n > 0 ? n : 0);
        if (access(path, F_OK) == 0 || n > 0) {
            fprintf(stderr,
                    "hubctl restore: %s already holds a store or an audit log: restore into an "
                    "empty data_dir, or add --force to move them into "
                    "%s/before-restore-TIME/ first\n",
                    cfg.data_dir, cfg.data_dir);
            return 1;
        }
    }
    int audit_files = 0;
    for (int i = 0; i < m.n; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        const char *rel = m.rel[i];
        bk_join(from, sizeof from, src, rel);
        if (!strncmp(rel, "store/", 6))
            bk_join(to, sizeof to, cfg.data_dir, rel + 6);
        else if (!strncmp(rel, "audit/", 6) && cfg.audit) {
            bk_join(to, sizeof to, cfg.audit_dir, rel + 6);
            audit_files++;
        } else if (!strcmp(rel, "keys/hub.secret") && access(cfg.key_file, F_OK) != 0)
            snprintf(to, sizeof to, "%s", cfg.key_file); /* moving a hub: its key */
        else
            continue;
        if (bk_copy(from, to, 0600, false, NULL, NULL) != 0 || bk_own(to, &owner) != 0) {
            fprintf(stderr, "hubctl restore: FAILED while copying %s; the target is "
                            "incomplete: run the restore again with --force\n",
                    rel);
            return 1;
        }
    }
    if (cfg.audit)
        (void)bk_own(cfg.audit_dir, &owner);

    /* Check what was restored: the store the manifest names, the audit log
     * intact and signed with this hub's key. */
    hub_store_info_t info;
    if (hub_store_inspect(cfg.data_dir, &info, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl restore: the restored store does not open: %s\n", err);
        return 1;
    }
    if ((strcmp(m.store_id, "none") && strcmp(info.store_id, m.store_id)) ||
        info.next_seq < m.next_seq) {
        fprintf(stderr, "hubctl restore: the restored store is not the one in the manifest "
                        "(id %s, next seq %" PRIu64 "; expected %s, at least %" PRIu64 ")\n",
                info.store_id, info.next_seq, m.store_id, m.next_seq);
        return 1;
    }
    printf("restore: store %s: %" PRIu64 " queued, %" PRIu64 " dead-lettered, next seq %" PRIu64
           "\n",
           info.store_id[0] ? info.store_id : "(format 1)", info.messages, info.dead,
           info.next_seq);
    if (cfg.audit && audit_files > 0) {
        hub_keypair_t key;
        memset(&key, 0, sizeof key);
        snprintf(err, sizeof err, "it holds no signing key");
        if (hub_keyfile_read(cfg.key_file, &key, err, sizeof err) != 0 || !key.has_sign) {
            fprintf(stderr, "hubctl restore: cannot check the audit log without the hub's key "
                            "(%s): %s\n",
                    cfg.key_file, err);
            hub_keypair_wipe(&key);
            return 1;
        }
        hub_audit_verify_report_t report;
        int vrc = hub_audit_verify_dir(cfg.audit_dir, key.sign_public, &report);
        hub_keypair_wipe(&key);
        if (vrc != 0 && vrc != HUB_EAGAIN) {
            fprintf(stderr, "hubctl restore: the restored audit log does not verify: %s:%" PRIu64
                            ": %s\n",
                    report.file, report.line, report.message);
            return 1;
        }
        printf("restore: audit log verified: %" PRIu64 " records in %" PRIu64
               " files, last seq %" PRIu64 "%s\n",
               report.records, report.files, report.last_seq,
               vrc == HUB_EAGAIN ? " (the records after its last checkpoint are sealed when "
                                   "hubd next starts)"
                                 : "");
    }
    printf("restore: done; start the hub (systemctl start hubd). The backup's configuration "
           "is in %s/config/ if this host needs it.\n",
           src);
    (void)had_any;
    return 0;
}

/* hubctl store init|info [--hub-config FILE]: the PostgreSQL store's schema. */
int hubctl_store_main(int argc, char **argv)
{
    const char *sub = NULL, *hub_config = HUB_DEFAULT_CONFIG;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--hub-config") && i + 1 < argc)
            hub_config = argv[++i];
        else if (argv[i][0] != '-' && !sub)
            sub = argv[i];
        else
            sub = NULL, argc = -1;
    }
    if (!sub || argc < 0 || (strcmp(sub, "init") && strcmp(sub, "info"))) {
        fprintf(stderr, "hubctl store: usage: hubctl store init|info [--hub-config FILE]\n");
        return 2;
    }
    hub_config_t cfg;
    if (bk_load_hub_config(hub_config, &cfg) != 0)
        return 1;
    char err[HUB_ERRMSG_MAX];
    hub_store_info_t info;
    if (cfg.store_backend != HUB_STORE_POSTGRESQL) {
        if (!strcmp(sub, "init")) {
            fprintf(stderr,
                    "hubctl store init: the store is LMDB (%s), which hubd creates by "
                    "itself; init is for store = postgresql\n",
                    cfg.data_dir);
            return 1;
        }
        if (hub_store_inspect(cfg.data_dir, &info, err, sizeof err) != 0) {
            fprintf(stderr, "hubctl store info: %s\n", err);
            return 1;
        }
    } else if (!strcmp(sub, "init")) {
        uint32_t from = 0;
        if (hub_store_pg_init(cfg.store_dsn, &from, err, sizeof err) != 0) {
            fprintf(stderr, "hubctl store init: %s\n", err);
            return 1;
        }
        if (from == HUB_STORE_PG_SCHEMA)
            printf("store: schema version %u is current; nothing to do\n", from);
        else
            printf("store: schema version %u -> %u\n", from, HUB_STORE_PG_SCHEMA);
        return 0;
    } else if (hub_store_pg_inspect(cfg.store_dsn, &info, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl store info: %s\n", err);
        return 1;
    }
    printf("backend   %s\nformat    %u\nstore_id  %s\nnext_seq  %llu\nmessages  %llu\n"
           "dead      %llu\n",
           cfg.store_backend == HUB_STORE_POSTGRESQL ? "postgresql" : "lmdb", info.format,
           info.store_id, (unsigned long long)info.next_seq, (unsigned long long)info.messages,
           (unsigned long long)info.dead);
    return 0;
}
