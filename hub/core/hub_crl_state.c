/* hub_crl_state.c — the CRL rollback guard: the hub remembers the highest
 * CRL number it has accepted, in a small state file, and refuses an older
 * CRL (or a different one with the same number), so that an attacker cannot
 * un-revoke a certificate by putting back yesterday's crl.pem. */
#include "hub_cert_internal.h"
#include "hub_conf.h"
#include "hub_error.h"

#include <dirent.h>
#include <errno.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- the CRL rollback guard ---------------------------------------------- */

/* Compares two hex numbers without leading zeros' help: -1, 0, 1. */
static int crl_state__hex_cmp(const char *a, const char *b)
{
    while (*a == '0' && a[1])
        a++;
    while (*b == '0' && b[1])
        b++;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    int c = strcasecmp(a, b);
    return c < 0 ? -1 : c > 0;
}

static bool crl_state__hex_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

typedef struct {
    hub_crl_id_t id;
    bool has_time, has_digest;
} crl_state__state_t;

static int crl_state__entry(const char *key, const char *value, void *user, char *err,
                            size_t err_size)
{
    crl_state__state_t *st = user;
    if (!strcmp(key, "crl_number")) {
        if (strcmp(value, "none") && !crl_state__hex_ok(value, HUB_CERT_SERIAL_MAX - 1)) {
            snprintf(err, err_size, "crl_number must be hex digits or 'none'");
            return HUB_EPARSE;
        }
        snprintf(st->id.number, sizeof st->id.number, "%s", strcmp(value, "none") ? value : "");
        return 0;
    }
    if (!strcmp(key, "this_update_us")) {
        unsigned long long v;
        int rc = hub_conf_uint(key, value, 0, UINT64_MAX, &v, err, err_size);
        st->id.this_update_us = v;
        st->has_time = rc == 0;
        return rc;
    }
    if (!strcmp(key, "sha256")) {
        if (strlen(value) != 64 || !crl_state__hex_ok(value, 64)) {
            snprintf(err, err_size, "sha256 must be 64 hex digits");
            return HUB_EPARSE;
        }
        for (size_t i = 0; i < 32; i++) {
            unsigned byte;
            sscanf(value + 2 * i, "%2x", &byte);
            st->id.sha256[i] = (uint8_t)byte;
        }
        st->has_digest = true;
        return 0;
    }
    if (!strcmp(key, "crl_file") || !strcmp(key, "accepted_at"))
        return 0; /* for people reading the file */
    snprintf(err, err_size, "unknown setting '%s'", key);
    return HUB_EPARSE;
}

static int crl_state__save(const char *state_path, const char *crl_path, const hub_crl_id_t *crl,
                           uint64_t now_us, char *err, size_t err_size)
{
    /* The state directory (the store's) may not exist yet at first start. */
    char dir[PATH_MAX];
    const char *slash = strrchr(state_path, '/');
    if (slash && slash != state_path) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - state_path), state_path);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            hub_errf(err, err_size, "cannot make %s for the CRL state: %s", dir, strerror(errno));
            return HUB_EIO;
        }
    }
    char hex[65], when[32], text[1024 + PATH_MAX];
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", crl->sha256[i]);
    cert__fmt_time(now_us, when);
    int n = snprintf(text, sizeof text,
                     "# The newest CRL this hub has accepted. hubd refuses an older one (a\n"
                     "# lower number), or another with the same number, so that putting back an\n"
                     "# old CRL cannot un-revoke a member. Written by hubd; do not edit.\n"
                     "crl_number = %s\n"
                     "this_update_us = %llu\n"
                     "sha256 = %s\n"
                     "crl_file = %s\n"
                     "accepted_at = %s\n",
                     crl->number[0] ? crl->number : "none",
                     (unsigned long long)crl->this_update_us, hex, crl_path ? crl_path : "",
                     when);
    if (n < 0 || (size_t)n >= sizeof text) {
        hub_errf(err, err_size, "CRL path too long");
        return HUB_EINVAL;
    }
    return cert__write_file(state_path, text, (size_t)n, 0600, false, err, err_size);
}

int hub_crl_state_advance(const char *state_path, const char *crl_path, const hub_crl_id_t *crl,
                          uint64_t now_us, char *err, size_t err_size)
{
    if (!crl)
        return HUB_EINVAL;
    if (!state_path || !*state_path)
        return 0;
    crl_state__state_t known;
    memset(&known, 0, sizeof known);
    char why[HUB_ERRMSG_MAX];
    int rc = hub_conf_parse_file(state_path, crl_state__entry, &known, why, sizeof why);
    if (rc == HUB_ENOENT)
        return crl_state__save(state_path, crl_path, crl, now_us, err, err_size);
    if (rc == 0 && !(known.has_time && known.has_digest)) {
        snprintf(why, sizeof why, "this_update_us or sha256 is missing");
        rc = HUB_EPARSE;
    }
    if (rc != 0) {
        hub_errf(err, err_size,
                 "the CRL state file %s cannot be read (%s); it remembers the newest CRL "
                 "accepted, so that an older one cannot un-revoke members. Restore it, or "
                 "delete it to accept %s as the newest",
                 state_path, why, crl_path);
        return rc == HUB_EPARSE ? HUB_EPARSE : HUB_EIO;
    }
    if (!memcmp(known.id.sha256, crl->sha256, sizeof crl->sha256))
        return 0; /* the same CRL again */
    char was[32], now[32];
    cert__fmt_time(known.id.this_update_us, was);
    cert__fmt_time(crl->this_update_us, now);
    const char *new_no = crl->number[0] ? crl->number : "none";
    const char *old_no = known.id.number[0] ? known.id.number : "none";
    /* Numbered CRLs are ordered by number; without numbers, by issue time. */
    int order = crl->number[0] && known.id.number[0]
                    ? crl_state__hex_cmp(crl->number, known.id.number)
                    : (crl->this_update_us > known.id.this_update_us) -
                          (crl->this_update_us < known.id.this_update_us);
    if (order > 0)
        return crl_state__save(state_path, crl_path, crl, now_us, err, err_size);
    if (order < 0) {
        hub_errf(err, err_size,
                 "CRL %s (number %s, issued %s) is older than the CRL this hub accepted "
                 "before (number %s, issued %s, remembered in %s): an older CRL would "
                 "un-revoke members. Install the CA's current crl.pem, or make a new one "
                 "with 'hubctl ca crl DIR'",
                 crl_path, new_no, now, old_no, was, state_path);
        return HUB_EINVAL;
    }
    hub_errf(err, err_size,
             "CRL %s (number %s, issued %s) has the number of the CRL this hub accepted "
             "before (issued %s, remembered in %s) but other contents: a CA never signs two "
             "CRLs with one number. Install the CA's current crl.pem, or make a new one with "
             "'hubctl ca crl DIR'",
             crl_path, new_no, now, was, state_path);
    return HUB_EINVAL;
}

