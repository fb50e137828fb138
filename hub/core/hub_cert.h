/* hub_cert — member certificates: the hub operator's small X.509 certificate
 * authority (OpenSSL 3), and the hub's check of the certificates that vouch
 * for the CURVE keys it admits.
 *
 * A member certificate binds a member id to the member's two public keys for
 * a validity period (the layout is in certs/README.md, for clients in any
 * language):
 *   - subject CN = the member id, e.g. "VN/GOV/BCA/CSDLQGDC";
 *   - subjectPublicKeyInfo = the member's Ed25519 signing key (the key that
 *     signs envelopes), so that X.509 tools show it natively;
 *   - subjectAltName (non-critical) holds exactly one URI
 *     "urn:lth:member:<member id>" (must equal the CN) and exactly one URI
 *     "urn:lth:curve:<64 lower-case hex>" (the 32-byte CURVE public key; the
 *     hub's key tables use its Z85 form). Other URIs are ignored;
 *   - basicConstraints critical CA:FALSE, keyUsage critical digitalSignature,
 *     subject and authority key identifiers; X.509 v3, SHA-256 signature by
 *     the CA's EC P-256 key.
 *
 * The CA directory (`hubctl ca init DIR`):
 *   DIR/ca/ca.key    the CA's EC P-256 private key, PEM, mode 0600 (refused
 *                    when group or others can read it); never printed
 *   DIR/ca/ca.crt    the CA certificate (self-signed; CA:TRUE, pathlen 0)
 *   DIR/ca/serial    the next serial number, hex
 *   DIR/ca/index     one line per issued certificate (see HUB_CA_INDEX_FORMAT)
 *   DIR/ca/crl.pem   the revocation list, re-signed on every revocation
 *   DIR/ca/crlnumber the number of the last CRL signed (decimal); the next
 *                    CRL gets one more than this or than crl.pem's, so
 *                    that numbers never repeat even if crl.pem is put back
 *   DIR/certs/<slug>.crt  issued member certificates ('/' in the id -> '.')
 * Commands that change DIR hold an exclusive flock() on DIR/ca, and replace
 * files by writing a temporary file and renaming it.
 *
 * The hub's side: hub_certdir_load() checks every *.crt file of a directory
 * against the CA certificate and the CRL at a given time. The valid ones make
 * the key table (hub_certdir_keydir(), the same hub_keydir_t the development
 * key directory gives); the others are listed with the reason, for logs and
 * metrics. A stale CRL (past its nextUpdate) is accepted and reported: this
 * CA re-signs its CRL on every revocation, so a CRL that has not been re-signed
 * has nothing new to say, and refusing every member for it would be an outage.
 *
 * Ownership: every OpenSSL object stays inside this module; callers see only
 * the plain structs below. Key material read from ca.key is cleansed
 * (OPENSSL_cleanse) before its buffers are freed.
 */
#ifndef HUB_CERT_H
#define HUB_CERT_H

#include "hub_keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One line of DIR/ca/index, fields separated by one space:
 *   STATUS SERIAL NOT-BEFORE NOT-AFTER REVOKED-AT MEMBER-ID
 * STATUS is V (issued) or R (revoked); SERIAL upper-case hex; times
 * YYYY-MM-DDTHH:MM:SSZ; REVOKED-AT is "-" while not revoked. Lines starting
 * with '#' are comments. */
#define HUB_CA_INDEX_FORMAT "STATUS SERIAL NOT-BEFORE NOT-AFTER REVOKED-AT MEMBER-ID"

#define HUB_CERT_DEFAULT_DAYS 365     /* member certificates */
#define HUB_CA_DEFAULT_DAYS 3650      /* the CA certificate */
#define HUB_CRL_DEFAULT_DAYS 30       /* nextUpdate of a CRL */
#define HUB_CERT_SERIAL_MAX 41        /* hex digits of a serial, NUL included */
#define HUB_CERT_REASON_MAX 320

typedef enum {
    HUB_CERT_VALID = 0,        /* trusted, in its validity period, not revoked */
    HUB_CERT_EXPIRED,          /* past its notAfter */
    HUB_CERT_NOT_YET_VALID,    /* before its notBefore */
    HUB_CERT_REVOKED,          /* listed in the CRL */
    HUB_CERT_BAD_SIGNATURE,    /* names this CA as issuer, but the signature does not
                                  verify: the file was altered, or a look-alike CA signed it */
    HUB_CERT_UNKNOWN_ISSUER,   /* issued by another CA */
    HUB_CERT_MALFORMED,        /* not a PEM X.509 certificate, or not a member certificate
                                  (no CN, missing or bad lth URIs, not Ed25519, a CA cert) */
    HUB_CERT_ID_MISMATCH,      /* the CN and urn:lth:member name different members */
    HUB_CERT_SUPERSEDED,       /* valid, but a newer valid certificate of the same member
                                  (later notBefore) takes precedence */
    HUB_CERT_DUPLICATE_KEY,    /* valid, but certificates of two members give the same
                                  CURVE key: both are refused */
} hub_cert_status_t;

/* What is known about one certificate. */
typedef struct {
    char file[256];            /* file name (no directories) */
    hub_keypair_t keys;        /* member_id, curve_public (Z85), sign_public, has_sign; only
                                  what could be read; never secrets */
    char serial[HUB_CERT_SERIAL_MAX]; /* upper-case hex */
    char issuer[256];          /* the issuer's CN, for messages */
    uint64_t not_before_us;    /* µs since the epoch */
    uint64_t not_after_us;
    hub_cert_status_t status;
    char reason[HUB_CERT_REASON_MAX]; /* a sentence for logs; "" when valid */
} hub_cert_info_t;

/* "valid", "expired", "not_yet_valid", "revoked", "bad_signature",
 * "unknown_issuer", "malformed", "id_mismatch", "superseded", "duplicate_key"
 * (usable as metric label values); "unknown" outside the enum. */
const char *hub_cert_status_name(hub_cert_status_t status);

/* ------------------------------------------------------------------------ */
/* The operator's CA (hubctl ca / hubctl cert). All return 0 or a HUB_E*
 * code with a sentence in err.                                              */

/* Creates the CA in dir (created if missing): a fresh P-256 key, a
 * self-signed certificate named `name` (NULL: "Liên Thông Hub member CA")
 * valid from now_us for `days` (0: HUB_CA_DEFAULT_DAYS), an empty index,
 * serial 01 and an empty CRL. HUB_EEXIST when dir already holds a CA. */
int hub_ca_init(const char *dir, const char *name, unsigned days, uint64_t now_us, char *err,
                size_t err_size);

typedef struct {
    uint64_t not_before_us;    /* 0: now */
    uint64_t not_after_us;     /* 0: not_before + days */
    unsigned days;             /* 0: HUB_CERT_DEFAULT_DAYS */
} hub_cert_validity_t;

/* Issues a certificate for member's public keys (member_id, curve_public,
 * sign_public; has_sign must be set) and writes it to out_path, or to
 * dir/certs/<slug>.crt when out_path is NULL (replacing an older certificate
 * there: renewal). Refuses a validity that would outlast the CA certificate.
 * Records it in the index. On success fills *issued (when not NULL) and, when
 * path_out is not NULL, copies the file's path there (PATH_MAX bytes). */
int hub_ca_issue(const char *dir, const hub_keypair_t *member, const hub_cert_validity_t *validity,
                 uint64_t now_us, const char *out_path, hub_cert_info_t *issued, char *path_out,
                 char *err, size_t err_size);

/* Revokes member_id's certificates that are not yet revoked — all of them,
 * or only the one with `serial` (hex) when it is not NULL — then re-signs
 * the CRL (nextUpdate now + crl_days; 0: HUB_CRL_DEFAULT_DAYS). *revoked
 * (when not NULL) gets how many were revoked. HUB_ENOTFOUND when none. */
int hub_ca_revoke(const char *dir, const char *member_id, const char *serial, uint64_t now_us,
                  unsigned crl_days, size_t *revoked, char *err, size_t err_size);

/* Re-signs dir/ca/crl.pem from the index (e.g. from a monthly timer). */
int hub_ca_write_crl(const char *dir, uint64_t now_us, unsigned crl_days, char *err,
                     size_t err_size);

/* ------------------------------------------------------------------------ */
/* Reading and checking certificates                                         */

/* Reads a member certificate without checking who signed it: out->status is
 * HUB_CERT_VALID when the file is a well-formed member certificate (NOT a
 * verdict on trust), else HUB_CERT_MALFORMED or HUB_CERT_ID_MISMATCH with a
 * reason. Returns 0, or HUB_ENOENT/HUB_EIO when the file cannot be read. */
int hub_cert_read(const char *path, hub_cert_info_t *out, char *err, size_t err_size);

/* Checks one certificate file as hub_certdir_load() does (without the
 * superseded / duplicate-key rules, which need the whole directory). Returns
 * 0 with out->status set, or the error of loading the CA or the CRL. */
int hub_cert_check_file(const char *ca_cert_path, const char *crl_path, const char *path,
                        uint64_t now_us, hub_cert_info_t *out, char *err, size_t err_size);

typedef struct hub_certdir hub_certdir_t;

/* Checks every *.crt file of certs_dir against the CA certificate and the
 * CRL at now_us (wall clock). Fails — keeping nothing — when the CA
 * certificate or the CRL cannot be used: unreadable, not a CA, expired or
 * not yet valid CA, a CRL not signed by this CA (HUB_EINVAL, HUB_ENOENT,
 * HUB_EIO, HUB_EPARSE, HUB_ECRYPTO), or certs_dir cannot be read. A bad
 * member certificate is no failure: it is listed with its status. */
int hub_certdir_load(const char *ca_cert_path, const char *crl_path, const char *certs_dir,
                     uint64_t now_us, hub_certdir_t **out, char *err, size_t err_size);
void hub_certdir_destroy(hub_certdir_t **self_p);

/* Every certificate file examined, sorted by file name. */
size_t hub_certdir_count(const hub_certdir_t *self);
const hub_cert_info_t *hub_certdir_at(const hub_certdir_t *self, size_t index);
/* How many are HUB_CERT_VALID. */
size_t hub_certdir_valid_count(const hub_certdir_t *self);
/* The CA certificate (file, issuer = its own name, validity; keys empty). */
const hub_cert_info_t *hub_certdir_ca(const hub_certdir_t *self);
/* The CRL's thisUpdate and nextUpdate (µs); next is 0 when it has none. */
void hub_certdir_crl_times(const hub_certdir_t *self, uint64_t *this_update_us,
                           uint64_t *next_update_us);
/* What identifies a CRL: its number (the crlNumber extension, upper-case
 * hex; "" when it has none), its thisUpdate, and the SHA-256 of its DER
 * encoding (so that the same CRL in another PEM wrapping is the same). */
typedef struct {
    char number[HUB_CERT_SERIAL_MAX];
    uint64_t this_update_us;
    uint8_t sha256[32];
} hub_crl_id_t;
void hub_certdir_crl_id(const hub_certdir_t *self, hub_crl_id_t *out);

/* The rollback guard: putting back an older, validly signed CRL must not
 * un-revoke a member. state_path (hubd's crl_state_file, in its state
 * directory) remembers the newest CRL accepted; hub_crl_state_advance()
 * compares crl with it and
 *   - accepts it (0) when it is the same CRL (same digest), or newer: a
 *     higher number (both numbered), else a later thisUpdate; a newer one
 *     is remembered (temporary file, fsync, rename, fsync of the directory;
 *     the directory is made, 0700, if missing);
 *   - refuses it (HUB_EINVAL) when it is older, or has the same number (the
 *     same thisUpdate, when unnumbered) but other contents, with a sentence
 *     naming crl_path, both numbers and issue times, the state file and
 *     what to do;
 *   - refuses (HUB_EPARSE, HUB_EIO) a state file it cannot read, saying
 *     that deleting it accepts the current CRL.
 * A missing state file is the first start: crl is remembered. An empty or
 * NULL state_path turns the guard off. */
int hub_crl_state_advance(const char *state_path, const char *crl_path, const hub_crl_id_t *crl,
                          uint64_t now_us, char *err, size_t err_size);

/* The earliest instant after the load time at which the set of valid
 * certificates changes by the clock alone (a valid one expires, a
 * not-yet-valid one starts, the CA expires); UINT64_MAX when never. Reload
 * then. */
uint64_t hub_certdir_next_change_us(const hub_certdir_t *self);

/* A key table of the valid certificates (caller owns it; destroy with
 * hub_keydir_destroy()). The key of a member with no valid certificate is
 * not in it: the hub refuses it. */
int hub_certdir_keydir(const hub_certdir_t *self, hub_keydir_t **out, char *err,
                       size_t err_size);

typedef int (*hub_cert_info_cb)(const hub_cert_info_t *info, void *user);
/* Calls cb for every valid certificate — and for the CA certificate, whose
 * keys.member_id is "" — whose notAfter falls within within_us of now_us
 * (already expired ones are not valid and not visited). Returns the number
 * visited; cb returns non-zero to stop. */
size_t hub_certdir_visit_expiring(const hub_certdir_t *self, uint64_t now_us, uint64_t within_us,
                                  hub_cert_info_cb cb, void *user);

#endif
