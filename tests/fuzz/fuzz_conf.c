/* fuzz_conf — "key = value" files: hubd's configuration and key files.
 *
 * The input goes through hub_conf_parse_text() (with a callback that uses
 * the hub_conf_uint()/hub_conf_str() helpers), and, written to a file, through
 * hub_config_load() (hub_config's real entry handling, relative paths and
 * required keys), hub_keyfile_read() (member ids, Z85 and hex keys, the
 * public/secret match; the file is mode 0600, so secret halves are read
 * too) and, when it is a valid key file, hub_keydir_load() on a directory
 * holding it as a .pub file beside a fixed, valid one (duplicate detection).
 *
 * Properties: every call returns 0 or a negative HUB_E* code with a
 * NUL-terminated message; what a successful read returns is well-formed.
 */
#include "fuzz_util.h"
#include "hub_conf.h"
#include "hub_config.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_keys.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char fuzz__input_path[PATH_MAX];
static const char *fuzz__keydir;

static void fuzz__setup(void)
{
    fuzz__keydir = fuzz_subdir("keys");
    snprintf(fuzz__input_path, sizeof fuzz__input_path, "%s/input.pub", fuzz__keydir);
    /* A valid public key file with fake keys, for the key directory. */
    uint8_t sign_public[32], sign_secret[64];
    char curve_public[41], curve_secret[41], hex[65], text[512], path[PATH_MAX];
    fuzz_sign_keys(sign_public, sign_secret);
    fuzz_curve_keys(curve_public, curve_secret);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", sign_public[i]);
    int n = snprintf(text, sizeof text,
                     "member-id = VN/GOV/FUZZ/FIXED\ncurve-public-key = %s\n"
                     "sign-public-key = %s\n",
                     curve_public, hex);
    snprintf(path, sizeof path, "%s/fixed.pub", fuzz__keydir);
    fuzz_write_file(path, text, (size_t)n, 0644);
}

static int fuzz__entry(const char *key, const char *value, void *user, char *err,
                       size_t err_size)
{
    unsigned *count = user;
    (*count)++;
    FUZZ_CHECK(*key != '\0');
    unsigned long long number = 0;
    int rc_uint = hub_conf_uint(key, value, 1, 1000000, &number, err, err_size);
    FUZZ_CHECK(rc_uint == 0 ? number >= 1 && number <= 1000000 : rc_uint == HUB_EINVAL);
    char small[16];
    int rc_str = hub_conf_str(key, value, small, sizeof small, err, err_size);
    FUZZ_CHECK(rc_str == 0 ? strcmp(small, value) == 0 : rc_str == HUB_EINVAL);
    /* Let some keys fail, to exercise the parser's error path. */
    if (key[0] == 'u')
        return rc_uint;
    if (key[0] == 's')
        return rc_str;
    return 0;
}

static void fuzz__check_message(int rc, const char *err, size_t err_size)
{
    FUZZ_CHECK(rc <= 0 && rc > HUB__ELAST);
    FUZZ_CHECK(memchr(err, '\0', err_size) != NULL);
    if (rc != 0)
        FUZZ_CHECK(err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz__keydir)
        fuzz__setup();
    char err[HUB_ERRMSG_MAX];

    char *text = fuzz_cstr(data, size);
    unsigned entries = 0;
    err[0] = '\0';
    int rc = hub_conf_parse_text("fuzz.conf", text, fuzz__entry, &entries, err, sizeof err);
    fuzz__check_message(rc, err, sizeof err);
    free(text);

    fuzz_write_file(fuzz__input_path, data, size, 0600);

    hub_config_t *cfg = malloc(sizeof *cfg);
    FUZZ_CHECK(cfg != NULL);
    err[0] = '\0';
    rc = hub_config_load(fuzz__input_path, cfg, err, sizeof err);
    fuzz__check_message(rc, err, sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(cfg->key_file[0] && cfg->key_dir[0] && cfg->data_dir[0]);
        FUZZ_CHECK(cfg->max_payload_bytes + 65536u <= cfg->max_frame_bytes);
    }
    free(cfg);

    hub_keypair_t kp;
    err[0] = '\0';
    rc = hub_keyfile_read(fuzz__input_path, &kp, err, sizeof err);
    fuzz__check_message(rc, err, sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(hub_member_id_valid(kp.member_id));
        FUZZ_CHECK(strlen(kp.curve_public) == HUB_Z85_KEY_LEN);
        FUZZ_CHECK(kp.has_secret == (kp.curve_secret[0] != '\0'));
    }
    hub_keypair_wipe(&kp);

    /* The key directory only when the input is a valid key file: otherwise
     * loading fails on it just as hub_keyfile_read() did, and every file
     * read costs hub_conf_parse_file()'s 4 MiB buffer, which under ASan
     * dominates the run time. */
    if (rc != 0)
        return 0;
    hub_keydir_t *keydir = NULL;
    err[0] = '\0';
    rc = hub_keydir_load(fuzz__keydir, &keydir, err, sizeof err);
    fuzz__check_message(rc, err, sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(hub_keydir_count(keydir) == 2);
        FUZZ_CHECK(hub_keydir_find_member(keydir, "VN/GOV/FUZZ/FIXED") != NULL);
        for (size_t i = 0; i < hub_keydir_count(keydir); i++) {
            const hub_keypair_t *entry = hub_keydir_at(keydir, i);
            FUZZ_CHECK(hub_keydir_find_key(keydir, entry->curve_public) == entry);
            FUZZ_CHECK(hub_keydir_find_member(keydir, entry->member_id) == entry);
        }
    } else {
        FUZZ_CHECK(keydir == NULL);
    }
    hub_keydir_destroy(&keydir);
    return 0;
}
