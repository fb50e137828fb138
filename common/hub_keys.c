#include "hub_keys.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_fsguard.h"
#include "hub_map.h"
#include "hub_vec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int hub_keypair_generate(const char *member_id, hub_keypair_t *out)
{
    if (!out || !hub_member_id_valid(member_id))
        return HUB_EINVAL;
    if (sodium_init() < 0)
        return HUB_ECRYPTO;
    memset(out, 0, sizeof *out);
    memcpy(out->member_id, member_id, strlen(member_id) + 1);
    if (zmq_curve_keypair(out->curve_public, out->curve_secret) != 0)
        return HUB_ECRYPTO;
    if (crypto_sign_keypair(out->sign_public, out->sign_secret) != 0)
        return HUB_ECRYPTO;
    out->has_sign = true;
    out->has_secret = true;
    return 0;
}

void hub_keypair_wipe(hub_keypair_t *kp)
{
    if (kp)
        sodium_memzero(kp, sizeof *kp);
}

static int hub__write_file(const char *path, const char *text, mode_t mode, char *err,
                           size_t err_size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_size, "cannot create %s: %s%s", path, strerror(e),
                 e == EEXIST ? " (keys are never overwritten; remove the old files first)" : "");
        return e == EEXIST ? HUB_EEXIST : HUB_EIO;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, err_size, "cannot write %s: %s", path, strerror(errno));
            close(fd);
            unlink(path);
            return HUB_EIO;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, err_size, "cannot flush %s: %s", path, strerror(errno));
        unlink(path);
        return HUB_EIO;
    }
    return 0;
}

int hub_keypair_write(const hub_keypair_t *kp, const char *dir, char *pub_path,
                      char *secret_path, char *err, size_t err_size)
{
    char slug[HUB_MEMBER_ID_MAX + 1];
    if (!kp || !kp->has_secret || hub_member_id_to_slug(kp->member_id, slug, sizeof slug) != 0) {
        snprintf(err, err_size, "the key pair is incomplete or its member id is not valid");
        return HUB_EINVAL;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create directory %s: %s", dir, strerror(errno));
        return HUB_EIO;
    }
    char pub_file[PATH_MAX], sec_file[PATH_MAX];
    if (snprintf(pub_file, sizeof pub_file, "%s/%s.pub", dir, slug) >= (int)sizeof pub_file ||
        snprintf(sec_file, sizeof sec_file, "%s/%s.secret", dir, slug) >= (int)sizeof sec_file) {
        snprintf(err, err_size, "directory path too long: %s", dir);
        return HUB_EINVAL;
    }
    char sign_pub_hex[65], sign_sec_hex[129];
    sodium_bin2hex(sign_pub_hex, sizeof sign_pub_hex, kp->sign_public, sizeof kp->sign_public);
    sodium_bin2hex(sign_sec_hex, sizeof sign_sec_hex, kp->sign_secret, sizeof kp->sign_secret);

    char text[1024];
    snprintf(text, sizeof text,
             "# Liên Thông Hub member keys (public). Copy this file into the hub's key directory.\n"
             "member-id = %s\ncurve-public-key = %s\nsign-public-key = %s\n",
             kp->member_id, kp->curve_public, sign_pub_hex);
    int rc = hub__write_file(pub_file, text, 0644, err, err_size);
    if (rc == 0) {
        snprintf(text, sizeof text,
                 "# Liên Thông Hub member keys (SECRET). Keep mode 0600; never copy, log or "
                 "commit.\n"
                 "member-id = %s\ncurve-public-key = %s\ncurve-secret-key = %s\n"
                 "sign-public-key = %s\nsign-secret-key = %s\n",
                 kp->member_id, kp->curve_public, kp->curve_secret, sign_pub_hex, sign_sec_hex);
        rc = hub__write_file(sec_file, text, 0600, err, err_size);
        if (rc != 0)
            unlink(pub_file);
    }
    sodium_memzero(text, sizeof text);
    sodium_memzero(sign_sec_hex, sizeof sign_sec_hex);
    if (rc == 0) {
        if (pub_path)
            memcpy(pub_path, pub_file, strlen(pub_file) + 1);
        if (secret_path)
            memcpy(secret_path, sec_file, strlen(sec_file) + 1);
    }
    return rc;
}

static bool hub__z85_key_ok(const char *text)
{
    uint8_t bin[32];
    return strlen(text) == HUB_Z85_KEY_LEN && zmq_z85_decode(bin, text) != NULL;
}

static int hub__hex_key(const char *key, const char *value, uint8_t *out, size_t out_len,
                        char *err, size_t err_size)
{
    size_t bin_len = 0;
    if (strlen(value) != out_len * 2 ||
        sodium_hex2bin(out, out_len, value, strlen(value), NULL, &bin_len, NULL) != 0 ||
        bin_len != out_len) {
        snprintf(err, err_size, "%s must be %zu hexadecimal characters", key, out_len * 2);
        return HUB_EPARSE;
    }
    return 0;
}

static int hub__keyfile_entry(const char *key, const char *value, void *user, char *err,
                              size_t err_size)
{
    hub_keypair_t *kp = user;
    if (strcmp(key, "member-id") == 0) {
        const char *problem = hub_member_id_problem(value);
        if (problem) {
            snprintf(err, err_size, "%s", problem);
            return HUB_EPARSE;
        }
        memcpy(kp->member_id, value, strlen(value) + 1);
    } else if (strcmp(key, "curve-public-key") == 0 || strcmp(key, "curve-secret-key") == 0) {
        if (!hub__z85_key_ok(value)) {
            snprintf(err, err_size, "%s must be a 40-character Z85 CURVE key", key);
            return HUB_EPARSE;
        }
        memcpy(key[6] == 'p' ? kp->curve_public : kp->curve_secret, value, HUB_Z85_KEY_LEN + 1);
    } else if (strcmp(key, "sign-public-key") == 0) {
        kp->has_sign = true;
        return hub__hex_key(key, value, kp->sign_public, sizeof kp->sign_public, err, err_size);
    } else if (strcmp(key, "sign-secret-key") == 0) {
        return hub__hex_key(key, value, kp->sign_secret, sizeof kp->sign_secret, err, err_size);
    } else {
        snprintf(err, err_size, "unknown key '%s' in a key file", key);
        return HUB_EPARSE;
    }
    return 0;
}

int hub_keyfile_read(const char *path, hub_keypair_t *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        snprintf(err, err_size, "cannot read key file %s: %s", path, strerror(e));
        return e == ENOENT ? HUB_ENOENT : HUB_EIO;
    }
    int rc = hub_conf_parse_file(path, hub__keyfile_entry, out, err, err_size);
    if (rc != 0) {
        hub_keypair_wipe(out);
        return rc;
    }
    if (!out->member_id[0] || !out->curve_public[0]) {
        snprintf(err, err_size, "%s lacks member-id or curve-public-key; regenerate it with "
                                "'hubctl keygen'", path);
        hub_keypair_wipe(out);
        return HUB_EPARSE;
    }
    out->has_secret = out->curve_secret[0] != '\0';
    if (out->has_secret && (st.st_mode & 077) != 0) {
        snprintf(err, err_size, "%s holds secret keys but its mode is %03o; run 'chmod 600 %s'",
                 path, (unsigned)(st.st_mode & 0777), path);
        hub_keypair_wipe(out);
        return HUB_EPERM;
    }
    if (out->has_secret) {
        /* The public key must belong to the secret key, or the hub would admit
         * a key the member cannot use. */
        char derived[HUB_Z85_KEY_LEN + 1];
        if (zmq_curve_public(derived, out->curve_secret) != 0 ||
            strcmp(derived, out->curve_public) != 0) {
            snprintf(err, err_size, "%s: curve-public-key does not match curve-secret-key", path);
            hub_keypair_wipe(out);
            return HUB_EPARSE;
        }
    }
    return 0;
}

struct hub_keydir {
    hub_keypair_t *entries; /* public halves only */
    size_t count;
    hub_map_t *by_key;    /* Z85 CURVE key -> entry */
    hub_map_t *by_member; /* member id -> entry */
};

static int hub__has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n > s && strcmp(name + n - s, suffix) == 0;
}

int hub_keydir_from_entries(const hub_keypair_t *entries, size_t n, hub_keydir_t **out,
                            char *err, size_t err_size)
{
    *out = NULL;
    hub_keydir_t *self = calloc(1, sizeof *self);
    if (!self || (n && !(self->entries = calloc(n, sizeof *self->entries))) ||
        !(self->by_key = hub_map_new()) || !(self->by_member = hub_map_new())) {
        snprintf(err, err_size, "out of memory");
        hub_keydir_destroy(&self);
        return HUB_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* Public halves only: a directory never holds secrets. */
        hub_keypair_t *kp = &self->entries[i];
        memcpy(kp->member_id, entries[i].member_id, sizeof kp->member_id);
        memcpy(kp->curve_public, entries[i].curve_public, sizeof kp->curve_public);
        memcpy(kp->sign_public, entries[i].sign_public, sizeof kp->sign_public);
        kp->has_sign = entries[i].has_sign;
        self->count++;
        const hub_keypair_t *twin = hub_map_get(self->by_key, kp->curve_public);
        if (!twin)
            twin = hub_map_get(self->by_member, kp->member_id);
        if (twin) {
            snprintf(err, err_size,
                     "%s and %s share a CURVE key or a member id; each member needs one .pub "
                     "file with its own key",
                     kp->member_id, twin->member_id);
            rc = HUB_EEXIST;
        } else if (hub_map_put(self->by_key, kp->curve_public, kp) != 0 ||
                   hub_map_put(self->by_member, kp->member_id, kp) != 0) {
            snprintf(err, err_size, "out of memory");
            rc = HUB_ENOMEM;
        }
    }
    if (rc != 0) {
        hub_keydir_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

int hub_keydir_load(const char *dir, hub_keydir_t **out, char *err, size_t err_size)
{
    *out = NULL;
    int guard = hub_fsguard_check(dir, "key directory", err, err_size);
    if (guard != 0)
        return guard;
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        snprintf(err, err_size, "cannot open key directory %s: %s", dir, strerror(e));
        return e == ENOENT ? HUB_ENOENT : HUB_EIO;
    }
    hub_keypair_t *files = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!hub__has_suffix(de->d_name, ".pub"))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
            continue;
        if (HUB_VEC_RESERVE(files, count, cap, 16) != 0) {
            rc = HUB_ENOMEM;
            break;
        }
        hub_keypair_t *kp = &files[count];
        rc = hub_keyfile_read(path, kp, err, err_size);
        if (rc != 0)
            break;
        if (kp->has_secret) {
            snprintf(err, err_size, "%s holds secret keys; a key directory takes only .pub files",
                     path);
            hub_keypair_wipe(kp);
            rc = HUB_EINVAL;
            break;
        }
        count++;
    }
    closedir(d);
    if (rc == 0) {
        char why[HUB_ERRMSG_MAX];
        rc = hub_keydir_from_entries(files, count, out, why, sizeof why);
        if (rc == HUB_EEXIST)
            snprintf(err, err_size, "key directory %s: %s", dir, why);
        else if (rc != 0)
            snprintf(err, err_size, "%s", why);
    }
    free(files);
    return rc;
}

void hub_keydir_destroy(hub_keydir_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_map_destroy(&(*self_p)->by_key);
    hub_map_destroy(&(*self_p)->by_member);
    free((*self_p)->entries);
    free(*self_p);
    *self_p = NULL;
}

size_t hub_keydir_count(const hub_keydir_t *self) { return self ? self->count : 0; }

const hub_keypair_t *hub_keydir_at(const hub_keydir_t *self, size_t index)
{
    return (self && index < self->count) ? &self->entries[index] : NULL;
}

const hub_keypair_t *hub_keydir_find_key(const hub_keydir_t *self, const char *z85)
{
    return self ? hub_map_get(self->by_key, z85) : NULL;
}

const hub_keypair_t *hub_keydir_find_member(const hub_keydir_t *self, const char *member_id)
{
    return self ? hub_map_get(self->by_member, member_id) : NULL;
}
