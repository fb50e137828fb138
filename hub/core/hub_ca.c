/* hub_ca.c — the member CA behind 'hubctl ca': init (key and self-signed
 * certificate), issue, revoke and write the CRL, with its index and serial
 * files under a lock so that two hubctl runs cannot issue one serial. */
#include "hub_cert_internal.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_vec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define HUB__DEFAULT_CA_NAME "Liên Thông Hub member CA"

/* ------------------------------------------------------------------------ */
/* The CA                                                                    */

typedef struct {
    char dir[PATH_MAX];
    int lock_fd;
    X509 *cert;
    EVP_PKEY *key;
} ca__ca_t;

static void ca__close(ca__ca_t *ca)
{
    EVP_PKEY_free(ca->key); /* frees and clears the key material */
    X509_free(ca->cert);
    if (ca->lock_fd >= 0)
        close(ca->lock_fd); /* releases the flock */
    ca->key = NULL;
    ca->cert = NULL;
    ca->lock_fd = -1;
}

static int ca__lock(const char *dir, ca__ca_t *ca, char *err, size_t err_size)
{
    memset(ca, 0, sizeof *ca);
    ca->lock_fd = -1;
    snprintf(ca->dir, sizeof ca->dir, "%s", dir);
    char cadir[PATH_MAX];
    int rc = cert__path(cadir, dir, "ca", err, err_size);
    if (rc != 0)
        return rc;
    ca->lock_fd = open(cadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ca->lock_fd < 0) {
        int e = errno;
        hub_errf(err, err_size,
                 "%s is not a CA directory (no %s: %s); make one with 'hubctl "
                 "ca init %s'",
                 dir, cadir, strerror(e), dir);
        return e == ENOENT ? HUB_ENOENT : HUB_EIO;
    }
    if (flock(ca->lock_fd, LOCK_EX) != 0) {
        hub_errf(err, err_size, "cannot lock %s: %s", cadir, strerror(errno));
        ca__close(ca);
        return HUB_EIO;
    }
    return 0;
}

/* Locks dir/ca and reads the CA certificate and key. */
static int ca__open(const char *dir, ca__ca_t *ca, char *err, size_t err_size)
{
    int rc = ca__lock(dir, ca, err, err_size);
    if (rc != 0)
        return rc;
    char path[PATH_MAX], why[HUB_ERRMSG_MAX];
    if ((rc = cert__path(path, dir, "ca/ca.crt", err, err_size)) != 0 ||
        (rc = cert__read_x509(path, &ca->cert, why, sizeof why)) != 0) {
        if (rc != HUB_EINVAL)
            hub_errf(err, err_size, "CA certificate: %s", why);
        ca__close(ca);
        return rc;
    }
    char *pem = NULL;
    size_t len = 0;
    mode_t mode = 0;
    if ((rc = cert__path(path, dir, "ca/ca.key", err, err_size)) != 0 ||
        (rc = cert__read_file(path, HUB__CERT_FILE_MAX, &pem, &len, &mode, err, err_size)) != 0) {
        ca__close(ca);
        return rc;
    }
    if (mode & 077) {
        hub_errf(err, err_size,
                 "%s is the CA's private key but its mode is %03o; run 'chmod "
                 "600 %s'",
                 path, (unsigned)(mode & 0777), path);
        rc = HUB_EPERM;
    } else {
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        ca->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!ca->key)
            rc = cert__ossl_fail(err, err_size, HUB_EPARSE, "ca/ca.key is not a PEM private key");
        else if (X509_check_private_key(ca->cert, ca->key) != 1)
            rc = cert__ossl_fail(err, err_size, HUB_ECRYPTO,
                                 "ca/ca.key does not belong to ca/ca.crt");
    }
    OPENSSL_cleanse(pem, len);
    free(pem);
    if (rc != 0)
        ca__close(ca);
    return rc;
}

static int ca__add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, char *err,
                       size_t err_size)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    if (!ok)
        return cert__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot add a certificate extension");
    return 0;
}

static int ca__pem_x509(X509 *x, const char *path, bool exclusive, char *err, size_t err_size)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_X509(bio, x) != 1) {
        BIO_free(bio);
        return cert__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot encode a certificate");
    }
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    int rc = cert__write_file(path, data, (size_t)len, 0644, exclusive, err, err_size);
    BIO_free(bio);
    return rc;
}

/* One line of the index. */
typedef struct {
    char status; /* 'V' or 'R' */
    char serial[HUB_CERT_SERIAL_MAX];
    char not_before[32], not_after[32], revoked_at[32];
    char member_id[HUB_MEMBER_ID_MAX + 1];
} ca__index_entry_t;

typedef struct {
    ca__index_entry_t *entries;
    size_t count, cap;
} ca__index_t;

static int ca__index_add(ca__index_t *ix, const ca__index_entry_t *e)
{
    if (HUB_VEC_RESERVE(ix->entries, ix->count, ix->cap, 32) != 0)
        return HUB_ENOMEM;
    ix->entries[ix->count++] = *e;
    return 0;
}

static int ca__index_read(const char *dir, ca__index_t *ix, char *err, size_t err_size)
{
    memset(ix, 0, sizeof *ix);
    char path[PATH_MAX];
    int rc = cert__path(path, dir, "ca/index", err, err_size);
    char *text = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = cert__read_file(path, HUB__CERT_INDEX_FILE_MAX, &text, &len, NULL, err, err_size);
    if (rc != 0)
        return rc;
    unsigned line = 0;
    for (char *p = text, *next; rc == 0 && p && *p; p = next) {
        line++;
        next = strchr(p, '\n');
        if (next)
            *next++ = '\0';
        if (*p == '#' || *p == '\0')
            continue;
        ca__index_entry_t e;
        char extra;
        uint64_t t;
        if (sscanf(p, "%c %40s %31s %31s %31s %255s %c", &e.status, e.serial, e.not_before,
                   e.not_after, e.revoked_at, e.member_id, &extra) != 6 ||
            (e.status != 'V' && e.status != 'R') || cert__parse_time(e.not_before, &t) != 0 ||
            cert__parse_time(e.not_after, &t) != 0 ||
            (e.status == 'R' ? cert__parse_time(e.revoked_at, &t) != 0
                             : strcmp(e.revoked_at, "-") != 0)) {
            hub_errf(err, err_size,
                     "%s:%u: not an index line ('%s'); restore the file from "
                     "a backup",
                     path, line, HUB_CA_INDEX_FORMAT);
            rc = HUB_EPARSE;
        } else {
            rc = ca__index_add(ix, &e);
        }
    }
    free(text);
    if (rc != 0) {
        free(ix->entries);
        memset(ix, 0, sizeof *ix);
    }
    return rc;
}

static int ca__index_write(const char *dir, const ca__index_t *ix, char *err, size_t err_size)
{
    char path[PATH_MAX];
    int rc = cert__path(path, dir, "ca/index", err, err_size);
    if (rc != 0)
        return rc;
    size_t cap = 128 + ix->count * (sizeof(ca__index_entry_t) + 8), len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        hub_errf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    len += (size_t)snprintf(buf, cap, "# %s\n", HUB_CA_INDEX_FORMAT);
    for (size_t i = 0; i < ix->count; i++) {
        const ca__index_entry_t *e = &ix->entries[i];
        len += (size_t)snprintf(buf + len, cap - len, "%c %s %s %s %s %s\n", e->status, e->serial,
                                e->not_before, e->not_after, e->revoked_at, e->member_id);
    }
    rc = cert__write_file(path, buf, len, 0644, false, err, err_size);
    free(buf);
    return rc;
}

static int ca__crl_build(ca__ca_t *ca, const ca__index_t *ix, uint64_t now_us, unsigned crl_days,
                         char *err, size_t err_size)
{
    char path[PATH_MAX];
    int rc = cert__path(path, ca->dir, "ca/crl.pem", err, err_size);
    if (rc != 0)
        return rc;
    /* The CRL number grows by one per CRL; the previous CRL holds it. */
    long number = 1;
    char *old_text = NULL;
    size_t old_len = 0;
    if (cert__read_file(path, HUB__CERT_INDEX_FILE_MAX, &old_text, &old_len, NULL, NULL, 0) == 0) {
        BIO *bio = BIO_new_mem_buf(old_text, (int)old_len);
        X509_CRL *old = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
        ASN1_INTEGER *num = old ? X509_CRL_get_ext_d2i(old, NID_crl_number, NULL, NULL) : NULL;
        long prev = num ? ASN1_INTEGER_get(num) : 0;
        if (prev > 0 && prev < LONG_MAX)
            number = prev + 1;
        ASN1_INTEGER_free(num);
        X509_CRL_free(old);
        BIO_free(bio);
        ERR_clear_error();
    }
    free(old_text);
    /* ca/crlnumber remembers the last number signed, so that a crl.pem put
     * back from an older copy cannot make the CA sign a second CRL with a
     * number it has used (the hub refuses that as a rollback). */
    char counter_path[PATH_MAX];
    rc = cert__path(counter_path, ca->dir, "ca/crlnumber", err, err_size);
    if (rc != 0)
        return rc;
    char *counter = NULL;
    size_t counter_len = 0;
    if (cert__read_file(counter_path, 64, &counter, &counter_len, NULL, NULL, 0) == 0) {
        char *end = NULL;
        long last_signed = strtol(counter, &end, 10);
        if (end != counter && last_signed > 0 && last_signed < LONG_MAX &&
            last_signed >= number)
            number = last_signed + 1;
    }
    free(counter);

    if (!crl_days)
        crl_days = HUB_CRL_DEFAULT_DAYS;
    time_t now = (time_t)(now_us / 1000000u);
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *last = ASN1_TIME_set(NULL, now);
    ASN1_TIME *next = ASN1_TIME_set(NULL, now + (time_t)crl_days * 86400);
    ASN1_INTEGER *crl_number = ASN1_INTEGER_new();
    bool ok = crl && last && next && crl_number && X509_CRL_set_version(crl, X509_CRL_VERSION_2) &&
              X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) &&
              X509_CRL_set1_lastUpdate(crl, last) && X509_CRL_set1_nextUpdate(crl, next) &&
              ASN1_INTEGER_set(crl_number, number) &&
              X509_CRL_add1_ext_i2d(crl, NID_crl_number, crl_number, 0, 0) == 1;
    for (size_t i = 0; ok && i < ix->count; i++) {
        const ca__index_entry_t *e = &ix->entries[i];
        if (e->status != 'R')
            continue;
        uint64_t at = 0;
        cert__parse_time(e->revoked_at, &at);
        BIGNUM *bn = NULL;
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_TIME *when = ASN1_TIME_set(NULL, (time_t)(at / 1000000u));
        ASN1_INTEGER *serial = BN_hex2bn(&bn, e->serial) ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
        ok = r && when && serial && X509_REVOKED_set_serialNumber(r, serial) &&
             X509_REVOKED_set_revocationDate(r, when) && X509_CRL_add0_revoked(crl, r);
        if (!ok)
            X509_REVOKED_free(r);
        ASN1_INTEGER_free(serial);
        ASN1_TIME_free(when);
        BN_free(bn);
    }
    if (ok) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, ca->cert, NULL, NULL, crl, 0);
        X509_EXTENSION *aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier,
                                                  "keyid:always");
        ok = aki && X509_CRL_add_ext(crl, aki, -1) == 1 && X509_CRL_sort(crl) == 1 &&
             X509_CRL_sign(crl, ca->key, EVP_sha256()) > 0;
        X509_EXTENSION_free(aki);
    }
    ASN1_INTEGER_free(crl_number);
    ASN1_TIME_free(last);
    ASN1_TIME_free(next);
    BIO *bio = ok ? BIO_new(BIO_s_mem()) : NULL;
    if (!bio || PEM_write_bio_X509_CRL(bio, crl) != 1) {
        BIO_free(bio);
        X509_CRL_free(crl);
        return cert__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot make the CRL");
    }
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    rc = cert__write_file(path, data, (size_t)len, 0644, false, err, err_size);
    BIO_free(bio);
    X509_CRL_free(crl);
    if (rc == 0) {
        char text[32];
        int n = snprintf(text, sizeof text, "%ld\n", number);
        rc = cert__write_file(counter_path, text, (size_t)n, 0644, false, err, err_size);
    }
    return rc;
}

static int ca__mkdir(const char *path, mode_t mode, char *err, size_t err_size)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        hub_errf(err, err_size, "cannot create directory %s: %s", path, strerror(errno));
        return HUB_EIO;
    }
    return 0;
}

int hub_ca_init(const char *dir, const char *name, unsigned days, uint64_t now_us, char *err,
                size_t err_size)
{
    if (!dir || !*dir) {
        hub_errf(err, err_size, "no CA directory given");
        return HUB_EINVAL;
    }
    if (!name || !*name)
        name = HUB__DEFAULT_CA_NAME;
    if (strlen(name) > 64) {
        hub_errf(err, err_size, "the CA name is longer than 64 bytes");
        return HUB_EINVAL;
    }
    if (!days)
        days = HUB_CA_DEFAULT_DAYS;
    char cadir[PATH_MAX], certs[PATH_MAX], keypath[PATH_MAX], path[PATH_MAX];
    int rc = 0;
    if ((rc = cert__path(cadir, dir, "ca", err, err_size)) != 0 ||
        (rc = cert__path(certs, dir, "certs", err, err_size)) != 0 ||
        (rc = cert__path(keypath, dir, "ca/ca.key", err, err_size)) != 0 ||
        (rc = ca__mkdir(dir, 0755, err, err_size)) != 0 ||
        (rc = ca__mkdir(cadir, 0700, err, err_size)) != 0 ||
        (rc = ca__mkdir(certs, 0755, err, err_size)) != 0)
        return rc;
    ca__ca_t ca;
    if ((rc = ca__lock(dir, &ca, err, err_size)) != 0)
        return rc;
    if (access(keypath, F_OK) == 0) {
        hub_errf(err, err_size, "%s already holds a CA (%s); a CA is never overwritten", dir,
                 keypath);
        ca__close(&ca);
        return HUB_EEXIST;
    }
    /* EC P-256: every X.509 stack and hardware token can verify it. */
    ca.key = EVP_EC_gen("P-256");
    ca.cert = X509_new();
    uint8_t serial_bytes[16];
    BIGNUM *bn = NULL;
    bool ok = ca.key && ca.cert && RAND_bytes(serial_bytes, sizeof serial_bytes) == 1;
    if (ok) {
        serial_bytes[0] &= 0x7f;
        serial_bytes[0] |= 0x01;
        bn = BN_bin2bn(serial_bytes, sizeof serial_bytes, NULL);
    }
    time_t now = (time_t)(now_us / 1000000u);
    X509_NAME *subject = ok ? X509_get_subject_name(ca.cert) : NULL;
    ok = ok && bn && X509_set_version(ca.cert, X509_VERSION_3) &&
         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(ca.cert)) &&
         X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)name, -1, -1, 0) &&
         X509_set_issuer_name(ca.cert, subject) &&
         ASN1_TIME_set(X509_getm_notBefore(ca.cert), now) &&
         ASN1_TIME_set(X509_getm_notAfter(ca.cert), now + (time_t)days * 86400) &&
         X509_set_pubkey(ca.cert, ca.key);
    BN_free(bn);
    if (!ok) {
        ca__close(&ca);
        return cert__ossl_fail(err, err_size, HUB_ECRYPTO,
                               "cannot make the CA key and certificate");
    }
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca.cert, ca.cert, NULL, NULL, 0);
    if ((rc = ca__add_ext(ca.cert, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err,
                          err_size)) != 0 ||
        (rc = ca__add_ext(ca.cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", err,
                          err_size)) != 0 ||
        (rc = ca__add_ext(ca.cert, &ctx, NID_subject_key_identifier, "hash", err, err_size)) != 0 ||
        (rc = ca__add_ext(ca.cert, &ctx, NID_authority_key_identifier, "keyid:always", err,
                          err_size)) != 0) {
        ca__close(&ca);
        return rc;
    }
    if (X509_sign(ca.cert, ca.key, EVP_sha256()) <= 0) {
        ca__close(&ca);
        return cert__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot sign the CA certificate");
    }
    /* The key first, exclusively and 0600; its PEM is cleansed at once. */
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_PrivateKey(bio, ca.key, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(bio);
        ca__close(&ca);
        return cert__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot encode the CA key");
    }
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    rc = cert__write_file(keypath, pem, (size_t)pem_len, 0600, true, err, err_size);
    OPENSSL_cleanse(pem, (size_t)pem_len);
    BIO_free(bio);
    ca__index_t empty = {0};
    if (rc == 0 && (rc = cert__path(path, dir, "ca/ca.crt", err, err_size)) == 0)
        rc = ca__pem_x509(ca.cert, path, false, err, err_size);
    if (rc == 0 && (rc = cert__path(path, dir, "ca/serial", err, err_size)) == 0)
        rc = cert__write_file(path, "01\n", 3, 0644, false, err, err_size);
    if (rc == 0)
        rc = ca__index_write(dir, &empty, err, err_size);
    if (rc == 0)
        rc = ca__crl_build(&ca, &empty, now_us, 0, err, err_size);
    if (rc != 0)
        unlink(keypath); /* a half-made CA is no CA; let init run again */
    ca__close(&ca);
    return rc;
}

static int ca__serial_next(const char *dir, uint64_t *out, char *err, size_t err_size)
{
    char path[PATH_MAX];
    int rc = cert__path(path, dir, "ca/serial", err, err_size);
    char *text = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = cert__read_file(path, 64, &text, &len, NULL, err, err_size);
    if (rc != 0)
        return rc;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 16);
    bool ok = end != text && errno == 0 && v > 0 && v < UINT64_MAX && (*end == '\n' || !*end);
    free(text);
    if (!ok) {
        hub_errf(err, err_size, "%s does not hold a hex serial number", path);
        return HUB_EPARSE;
    }
    char next[32];
    int n = snprintf(next, sizeof next, "%02llX\n", v + 1);
    if ((rc = cert__write_file(path, next, (size_t)n, 0644, false, err, err_size)) != 0)
        return rc;
    *out = v;
    return 0;
}

int hub_ca_issue(const char *dir, const hub_keypair_t *member, const hub_cert_validity_t *validity,
                 uint64_t now_us, const char *out_path, hub_cert_info_t *issued, char *path_out,
                 char *err, size_t err_size)
{
    char slug[HUB_MEMBER_ID_MAX + 1];
    uint8_t curve[32];
    if (!dir || !member || hub_member_id_to_slug(member->member_id, slug, sizeof slug) != 0) {
        hub_errf(err, err_size, "the member id is not valid");
        return HUB_EINVAL;
    }
    if (!member->has_sign || strlen(member->curve_public) != HUB_Z85_KEY_LEN ||
        !zmq_z85_decode(curve, member->curve_public)) {
        hub_errf(err, err_size,
                 "%s's key file lacks a CURVE key or a signing key; regenerate "
                 "it with 'hubctl keygen'",
                 member->member_id);
        return HUB_EINVAL;
    }
    uint64_t nb = validity && validity->not_before_us ? validity->not_before_us : now_us;
    unsigned days = validity && validity->days ? validity->days : HUB_CERT_DEFAULT_DAYS;
    uint64_t na = validity && validity->not_after_us ? validity->not_after_us
                                                     : nb + (uint64_t)days * 86400000000ull;
    if (nb / 1000000u >= na / 1000000u) {
        hub_errf(err, err_size, "the certificate would end before it begins");
        return HUB_EINVAL;
    }
    ca__ca_t ca;
    int rc = ca__open(dir, &ca, err, err_size);
    if (rc != 0)
        return rc;
    uint64_t ca_end = cert__asn1_us(X509_get0_notAfter(ca.cert));
    char when[32];
    if (na > ca_end) {
        cert__fmt_time(ca_end, when);
        hub_errf(err, err_size,
                 "the certificate would outlast the CA certificate (valid until "
                 "%s); issue it for fewer days, or make a new CA",
                 when);
        ca__close(&ca);
        return HUB_EINVAL;
    }
    char path[PATH_MAX];
    if (out_path)
        snprintf(path, sizeof path, "%s", out_path);
    else if (snprintf(path, sizeof path, "%s/certs/%s.crt", dir, slug) >= (int)sizeof path) {
        hub_errf(err, err_size, "path too long: %s", dir);
        ca__close(&ca);
        return HUB_EINVAL;
    }
    ca__index_t ix;
    uint64_t serial = 0;
    if ((rc = ca__index_read(dir, &ix, err, err_size)) != 0) {
        ca__close(&ca);
        return rc;
    }
    if ((rc = ca__serial_next(dir, &serial, err, err_size)) != 0) {
        free(ix.entries);
        ca__close(&ca);
        return rc;
    }

    X509 *x = X509_new();
    EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, member->sign_public, 32);
    X509_NAME *subject = x ? X509_get_subject_name(x) : NULL;
    bool ok = x && pub && X509_set_version(x, X509_VERSION_3) &&
              ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) &&
              X509_set_issuer_name(x, X509_get_subject_name(ca.cert)) &&
              X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                         (const unsigned char *)member->member_id, -1, -1, 0) &&
              ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(nb / 1000000u)) &&
              ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(na / 1000000u)) &&
              X509_set_pubkey(x, pub);
    EVP_PKEY_free(pub);
    if (!ok)
        rc = cert__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot make the certificate");
    char san[64 + 2 * sizeof HUB__CERT_URN_MEMBER + HUB_MEMBER_ID_MAX + 64];
    int o = snprintf(san, sizeof san, "URI:" HUB__CERT_URN_MEMBER "%s,URI:" HUB__CERT_URN_CURVE,
                     member->member_id);
    for (int i = 0; i < 32; i++)
        o += snprintf(san + o, sizeof san - (size_t)o, "%02x", curve[i]);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca.cert, x, NULL, NULL, 0);
    const struct {
        int nid;
        const char *value;
    } exts[] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"},
        {NID_subject_alt_name, san},
    };
    for (size_t i = 0; rc == 0 && i < sizeof exts / sizeof exts[0]; i++)
        rc = ca__add_ext(x, &ctx, exts[i].nid, exts[i].value, err, err_size);
    if (rc == 0 && X509_sign(x, ca.key, EVP_sha256()) <= 0)
        rc = cert__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot sign the certificate");
    if (rc == 0)
        rc = ca__pem_x509(x, path, false, err, err_size);
    hub_cert_info_t info;
    memset(&info, 0, sizeof info);
    if (rc == 0) {
        cert__set_file(&info, path);
        cert__describe(x, &info);
        ca__index_entry_t e = {.status = 'V'};
        snprintf(e.serial, sizeof e.serial, "%s", info.serial);
        cert__fmt_time(info.not_before_us, e.not_before);
        cert__fmt_time(info.not_after_us, e.not_after);
        snprintf(e.revoked_at, sizeof e.revoked_at, "-");
        snprintf(e.member_id, sizeof e.member_id, "%s", member->member_id);
        rc = ca__index_add(&ix, &e);
        if (rc == HUB_ENOMEM)
            hub_errf(err, err_size, "out of memory");
        if (rc == 0)
            rc = ca__index_write(dir, &ix, err, err_size);
    }
    X509_free(x);
    free(ix.entries);
    ca__close(&ca);
    if (rc == 0) {
        if (issued)
            *issued = info;
        if (path_out)
            snprintf(path_out, PATH_MAX, "%s", path);
    }
    return rc;
}

/* Hex serials compare as numbers: "0A" and "a" are the same serial. */
static bool ca__serial_eq(const char *a, const char *b)
{
    while (*a == '0' && a[1])
        a++;
    while (*b == '0' && b[1])
        b++;
    return strcasecmp(a, b) == 0;
}

int hub_ca_revoke(const char *dir, const char *member_id, const char *serial, uint64_t now_us,
                  unsigned crl_days, size_t *revoked, char *err, size_t err_size)
{
    if (revoked)
        *revoked = 0;
    if (!dir || !member_id) {
        hub_errf(err, err_size, "no CA directory or member id");
        return HUB_EINVAL;
    }
    ca__ca_t ca;
    int rc = ca__open(dir, &ca, err, err_size);
    if (rc != 0)
        return rc;
    ca__index_t ix;
    if ((rc = ca__index_read(dir, &ix, err, err_size)) != 0) {
        ca__close(&ca);
        return rc;
    }
    size_t n = 0;
    char now_text[32];
    cert__fmt_time(now_us, now_text);
    for (size_t i = 0; i < ix.count; i++) {
        ca__index_entry_t *e = &ix.entries[i];
        if (e->status != 'V' || strcmp(e->member_id, member_id) ||
            (serial && !ca__serial_eq(e->serial, serial)))
            continue;
        e->status = 'R';
        snprintf(e->revoked_at, sizeof e->revoked_at, "%s", now_text);
        n++;
    }
    if (n == 0) {
        hub_errf(err, err_size, "%s/ca/index lists no unrevoked certificate of %s%s%s", dir,
                 member_id, serial ? " with serial " : "", serial ? serial : "");
        rc = HUB_ENOTFOUND;
    }
    /* The CRL first: if writing the index then fails, the certificate is
     * already refused, which is the safe side. */
    if (rc == 0)
        rc = ca__crl_build(&ca, &ix, now_us, crl_days, err, err_size);
    if (rc == 0)
        rc = ca__index_write(dir, &ix, err, err_size);
    free(ix.entries);
    ca__close(&ca);
    if (rc == 0 && revoked)
        *revoked = n;
    return rc;
}

int hub_ca_write_crl(const char *dir, uint64_t now_us, unsigned crl_days, char *err,
                     size_t err_size)
{
    ca__ca_t ca;
    int rc = ca__open(dir, &ca, err, err_size);
    if (rc != 0)
        return rc;
    ca__index_t ix;
    if ((rc = ca__index_read(dir, &ix, err, err_size)) == 0)
        rc = ca__crl_build(&ca, &ix, now_us, crl_days, err, err_size);
    free(ix.entries);
    ca__close(&ca);
    return rc;
}
