/* hub_keys — member key pairs on disk, and the hub's key directory.
 *
 * A member owns two key pairs: a CURVE pair for the ZeroMQ transport and an
 * Ed25519 pair for envelope signatures. `hubctl keygen MEMBER-ID DIR` writes
 * them as two text files named after the member id with '/' turned into '.':
 *
 *   DIR/VN.GOV.HN-STP.HOTICH.pub     public halves; copy into the hub's key dir
 *   DIR/VN.GOV.HN-STP.HOTICH.secret  both halves; mode 0600; never leaves the member
 *
 * Both are hub_conf files with the keys member-id, curve-public-key and
 * sign-public-key (and curve-secret-key, sign-secret-key in the .secret file):
 * CURVE keys in Z85 (40 characters), Ed25519 keys in lower-case hex.
 *
 * A key directory is a directory of .pub files; it maps each CURVE public key
 * to exactly one member id. Reading a .secret file whose mode lets group or
 * others read it fails with HUB_EPERM. hub_keypair_wipe() zeroes secrets;
 * every function that loads secrets into a stack copy wipes it.
 */
#ifndef HUB_KEYS_H
#define HUB_KEYS_H

#include "hub_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_Z85_KEY_LEN 40

typedef struct {
    char member_id[HUB_MEMBER_ID_MAX + 1];
    char curve_public[HUB_Z85_KEY_LEN + 1]; /* Z85, NUL-terminated */
    char curve_secret[HUB_Z85_KEY_LEN + 1]; /* empty unless has_secret */
    uint8_t sign_public[32];                /* Ed25519 */
    uint8_t sign_secret[64];                /* Ed25519 (libsodium layout); zero unless has_secret */
    bool has_sign;                          /* sign_public is set */
    bool has_secret;                        /* the secret halves are set */
} hub_keypair_t;

/* Makes fresh CURVE and Ed25519 key pairs for member_id. */
int hub_keypair_generate(const char *member_id, hub_keypair_t *out);
/* Writes DIR/<slug>.pub and DIR/<slug>.secret (0600); refuses to overwrite
 * an existing file (HUB_EEXIST). On success the paths are copied to
 * pub_path/secret_path when those are not NULL (each PATH_MAX bytes). */
int hub_keypair_write(const hub_keypair_t *kp, const char *dir, char *pub_path,
                      char *secret_path, char *err, size_t err_size);
/* Reads a .pub or .secret file. A file holding secrets must not be readable
 * by group or others (HUB_EPERM otherwise). */
int hub_keyfile_read(const char *path, hub_keypair_t *out, char *err, size_t err_size);
void hub_keypair_wipe(hub_keypair_t *kp);

typedef struct hub_keydir hub_keydir_t;

/* Loads every *.pub file of `dir`. Fails, naming the file, on a malformed
 * file, or when two files give the same key or the same member id. */
int hub_keydir_load(const char *dir, hub_keydir_t **out, char *err, size_t err_size);
/* Builds a directory from n key pairs held elsewhere (e.g. the valid member
 * certificates of hub_cert.h). Copies the public halves only; the caller
 * keeps `entries`. Fails with HUB_EEXIST, naming both members, when two
 * entries give the same key or the same member id; HUB_ENOMEM. */
int hub_keydir_from_entries(const hub_keypair_t *entries, size_t n, hub_keydir_t **out,
                            char *err, size_t err_size);
void hub_keydir_destroy(hub_keydir_t **self_p);
size_t hub_keydir_count(const hub_keydir_t *self);
const hub_keypair_t *hub_keydir_at(const hub_keydir_t *self, size_t index);
/* The entry whose CURVE public key (Z85) is `z85`, or NULL. */
const hub_keypair_t *hub_keydir_find_key(const hub_keydir_t *self, const char *z85);
/* The entry for member_id, or NULL. */
const hub_keypair_t *hub_keydir_find_member(const hub_keydir_t *self, const char *member_id);

#endif
