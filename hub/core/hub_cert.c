#include "hub_cert.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_fsguard.h"
#include "hub_id.h"
#include "hub_map.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define HUB__CERT_FILE_MAX (64 * 1024)
#define HUB__INDEX_FILE_MAX (64L << 20)
#define HUB__URN_MEMBER "urn:lth:member:"
#define HUB__URN_CURVE "urn:lth:curve:"
#define HUB__DEFAULT_CA_NAME "Liên Thông Hub member CA"

const char *hub_cert_status_name(hub_cert_status_t status)
{
    switch (status) {
    case HUB_CERT_VALID: return "valid";
    case HUB_CERT_EXPIRED: return "expired";
    case HUB_CERT_NOT_YET_VALID: return "not_yet_valid";
    case HUB_CERT_REVOKED: return "revoked";
    case HUB_CERT_BAD_SIGNATURE: return "bad_signature";
    case HUB_CERT_UNKNOWN_ISSUER: return "unknown_issuer";
    case HUB_CERT_MALFORMED: return "malformed";
    case HUB_CERT_ID_MISMATCH: return "id_mismatch";
    case HUB_CERT_SUPERSEDED: return "superseded";
    case HUB_CERT_DUPLICATE_KEY: return "duplicate_key";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static void hub__errf(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void hub__errf(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || !err_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

/* Puts `what` and OpenSSL's last error into err (and empties its queue). */
static int hub__ossl_fail(char *err, size_t err_size, int code, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char detail[256] = "";
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    if (detail[0])
        hub__errf(err, err_size, "%s (OpenSSL: %s)", what, detail);
    else
        hub__errf(err, err_size, "%s", what);
    return code;
}

static void hub__fmt_time(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "?");
}

static int hub__parse_time(const char *text, uint64_t *out_us)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = 0;
    if (strlen(text) != 20 ||
        sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        n != 20 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return HUB_EPARSE;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t < 0)
        return HUB_EPARSE;
    *out_us = (uint64_t)t * 1000000u;
    return 0;
}

static uint64_t hub__asn1_us(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    time_t s = timegm(&tm);
    return s < 0 ? 0 : (uint64_t)s * 1000000u;
}

static int hub__read_file(const char *path, long max, char **out, size_t *len, mode_t *mode,
                          char *err, size_t err_size)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        hub__errf(err, err_size, "cannot read %s: %s", path, strerror(e));
        return e == ENOENT ? HUB_ENOENT : e == EACCES ? HUB_EPERM : HUB_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > max) {
        hub__errf(err, err_size, "%s is not a regular file of at most %ld bytes", path, max);
        close(fd);
        return HUB_EIO;
    }
    if (mode)
        *mode = st.st_mode;
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        hub__errf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    buf[done] = '\0';
    *out = buf;
    *len = done;
    return 0;
}

static int hub__fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (!dir[0])
        snprintf(dir, sizeof dir, "/");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return HUB_EIO;
    int rc = fsync(fd) == 0 ? 0 : HUB_EIO;
    close(fd);
    return rc;
}

static int hub__write_all(int fd, const void *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return HUB_EIO;
        done += (size_t)n;
    }
    return 0;
}

/* Writes path: a new file only (O_EXCL) when exclusive, else a temporary
 * file renamed over path, so that a reader sees the old or the new bytes. */
static int hub__write_file(const char *path, const void *data, size_t len, mode_t mode,
                           bool exclusive, char *err, size_t err_size)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        hub__errf(err, err_size, "path too long: %s", path);
        return HUB_EINVAL;
    }
    const char *target = exclusive ? path : tmp;
    if (!exclusive)
        unlink(tmp);
    int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        hub__errf(err, err_size, "cannot create %s: %s", target, strerror(e));
        return e == EEXIST ? HUB_EEXIST : HUB_EIO;
    }
    int rc = hub__write_all(fd, data, len);
    if (rc == 0 && fchmod(fd, mode) != 0)
        rc = HUB_EIO;
    if (rc == 0 && fsync(fd) != 0)
        rc = HUB_EIO;
    if (close(fd) != 0)
        rc = HUB_EIO;
    if (rc == 0 && !exclusive && rename(tmp, path) != 0)
        rc = HUB_EIO;
    if (rc != 0) {
        hub__errf(err, err_size, "cannot write %s: %s", path, strerror(errno));
        unlink(target);
        return rc;
    }
    hub__fsync_dir_of(path);
    return 0;
}

static int hub__path(char *out, const char *dir, const char *rel, char *err, size_t err_size)
{
    if (snprintf(out, PATH_MAX, "%s/%s", dir, rel) >= PATH_MAX) {
        hub__errf(err, err_size, "path too long: %s/%s", dir, rel);
        return HUB_EINVAL;
    }
    return 0;
}

static void hub__serial_hex(const ASN1_INTEGER *serial, char out[HUB_CERT_SERIAL_MAX])
{
    out[0] = '\0';
    BIGNUM *bn = serial ? ASN1_INTEGER_to_BN(serial, NULL) : NULL;
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex)
        snprintf(out, HUB_CERT_SERIAL_MAX, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
}

/* The first CN of name as UTF-8 into out; false when there is none, or more
 * than one, or it does not fit. */
static bool hub__name_cn(const X509_NAME *name, char *out, size_t out_size, bool *several)
{
    out[0] = '\0';
    if (several)
        *several = false;
    int at = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (at < 0)
        return false;
    if (several)
        *several = X509_NAME_get_index_by_NID(name, NID_commonName, at) >= 0;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at)));
    bool ok = n >= 0 && (size_t)n < out_size && memchr(utf8, '\0', (size_t)n) == NULL;
    if (ok) {
        memcpy(out, utf8, (size_t)n);
        out[n] = '\0';
    }
    OPENSSL_free(utf8);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* The member-certificate format                                             */

/* 64 lower-case hex digits -> 32 bytes. */
static bool hub__hex32(const char *hex, size_t len, uint8_t out[32])
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        char c = hex[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] << 4) | d : d);
    }
    return true;
}

/* Reads what a member certificate says into info (file is set by the
 * caller). Leaves info->status HUB_CERT_VALID when the format is right. */
static void hub__describe(X509 *x, hub_cert_info_t *info)
{
    info->status = HUB_CERT_VALID;
    info->reason[0] = '\0';
    hub__serial_hex(X509_get0_serialNumber(x), info->serial);
    hub__name_cn(X509_get_issuer_name(x), info->issuer, sizeof info->issuer, NULL);
    info->not_before_us = hub__asn1_us(X509_get0_notBefore(x));
    info->not_after_us = hub__asn1_us(X509_get0_notAfter(x));

#define HUB__BAD(status_, ...)                                                            \
    do {                                                                                  \
        if (info->status == HUB_CERT_VALID) {                                             \
            info->status = status_;                                                       \
            hub__errf(info->reason, sizeof info->reason, __VA_ARGS__);                     \
        }                                                                                 \
    } while (0)

    if (X509_get_version(x) != X509_VERSION_3 || X509_check_ca(x) != 0)
        HUB__BAD(HUB_CERT_MALFORMED, "it is a CA certificate or not X.509 v3, not a member "
                                     "certificate");

    bool several = false;
    char cn[HUB_MEMBER_ID_MAX + 1];
    if (!hub__name_cn(X509_get_subject_name(x), cn, sizeof cn, &several) || several)
        HUB__BAD(HUB_CERT_MALFORMED, "its subject must have exactly one CN, the member id");
    else if (hub_member_id_problem(cn))
        HUB__BAD(HUB_CERT_MALFORMED, "its CN '%.64s' is not a member id: %s", cn,
                 hub_member_id_problem(cn));
    else
        memcpy(info->keys.member_id, cn, strlen(cn) + 1);

    EVP_PKEY *pk = X509_get0_pubkey(x);
    size_t pk_len = sizeof info->keys.sign_public;
    if (pk && EVP_PKEY_is_a(pk, "ED25519") &&
        EVP_PKEY_get_raw_public_key(pk, info->keys.sign_public, &pk_len) == 1 && pk_len == 32)
        info->keys.has_sign = true;
    else
        HUB__BAD(HUB_CERT_MALFORMED, "its public key is not the member's Ed25519 signing key");

    int crit = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    int members = 0, curves = 0;
    char member_urn[HUB_MEMBER_ID_MAX + 1] = "";
    bool curve_ok = false;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI)
            continue;
        const char *uri = (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
        size_t len = (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier);
        if (memchr(uri, '\0', len))
            continue;
        const size_t member_len = strlen(HUB__URN_MEMBER), curve_len = strlen(HUB__URN_CURVE);
        if (len > member_len && !strncmp(uri, HUB__URN_MEMBER, member_len)) {
            members++;
            snprintf(member_urn, sizeof member_urn, "%.*s", (int)(len - member_len),
                     uri + member_len);
        } else if (len >= curve_len && !strncmp(uri, HUB__URN_CURVE, curve_len)) {
            curves++;
            uint8_t bin[32];
            curve_ok = hub__hex32(uri + curve_len, len - curve_len, bin) &&
                       zmq_z85_encode(info->keys.curve_public, bin, sizeof bin) != NULL;
        }
    }
    GENERAL_NAMES_free(names);
    if (crit == -2)
        HUB__BAD(HUB_CERT_MALFORMED, "it has two subjectAltName extensions");
    else if (members != 1 || curves != 1)
        HUB__BAD(HUB_CERT_MALFORMED,
                 "its subjectAltName must hold exactly one " HUB__URN_MEMBER "… URI and one "
                 HUB__URN_CURVE "… URI (it has %d and %d)",
                 members, curves);
    else if (!curve_ok)
        HUB__BAD(HUB_CERT_MALFORMED,
                 "its " HUB__URN_CURVE " URI must end in 64 lower-case hex digits");
    else if (info->keys.member_id[0] && strcmp(member_urn, info->keys.member_id) != 0)
        HUB__BAD(HUB_CERT_ID_MISMATCH,
                 "its CN names %s but its " HUB__URN_MEMBER " URI names %.64s; the certificate "
                 "must name one member",
                 info->keys.member_id, member_urn);
    if (!curve_ok)
        info->keys.curve_public[0] = '\0';
#undef HUB__BAD
}

static int hub__read_x509(const char *path, X509 **out, char *err, size_t err_size)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = hub__read_file(path, HUB__CERT_FILE_MAX, &text, &len, NULL, err, err_size);
    if (rc != 0)
        return rc;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    *out = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(text);
    if (!*out)
        return hub__ossl_fail(err, err_size, HUB_EPARSE, "not a PEM X.509 certificate");
    return 0;
}

static void hub__set_file(hub_cert_info_t *info, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    /* File names longer than the field are cut; they only name the file in
     * messages. */
    size_t len = strlen(base);
    if (len >= sizeof info->file)
        len = sizeof info->file - 1;
    memcpy(info->file, base, len);
    info->file[len] = '\0';
}

int hub_cert_read(const char *path, hub_cert_info_t *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    hub__set_file(out, path);
    X509 *x = NULL;
    char why[HUB_ERRMSG_MAX];
    int rc = hub__read_x509(path, &x, why, sizeof why);
    if (rc == HUB_EPARSE) {
        out->status = HUB_CERT_MALFORMED;
        hub__errf(out->reason, sizeof out->reason, "%s", why);
        return 0;
    }
    if (rc != 0) {
        hub__errf(err, err_size, "%s", why);
        return rc;
    }
    hub__describe(x, out);
    X509_free(x);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Trust: the CA certificate, its CRL, a store                               */

typedef struct {
    X509 *ca;
    X509_CRL *crl;
    X509_STORE *store;
    hub_cert_info_t ca_info;
    uint64_t crl_this_us, crl_next_us;
    hub_crl_id_t crl_id;
} hub__trust_t;

static void hub__trust_free(hub__trust_t *t)
{
    X509_STORE_free(t->store);
    X509_CRL_free(t->crl);
    X509_free(t->ca);
    memset(t, 0, sizeof *t);
}

static int hub__trust_load(const char *ca_path, const char *crl_path, uint64_t now_us,
                           hub__trust_t *t, char *err, size_t err_size)
{
    memset(t, 0, sizeof *t);
    if (!ca_path || !crl_path) {
        hub__errf(err, err_size, "a CA certificate and a CRL are both needed");
        return HUB_EINVAL;
    }
    char why[HUB_ERRMSG_MAX];
    int rc = hub_fsguard_check(ca_path, "CA certificate", err, err_size);
    if (rc == 0)
        rc = hub_fsguard_check(crl_path, "CRL file", err, err_size);
    if (rc != 0)
        return rc;
    rc = hub__read_x509(ca_path, &t->ca, why, sizeof why);
    if (rc != 0) {
        hub__errf(err, err_size, "CA certificate %s: %s", ca_path, why);
        return rc;
    }
    hub__set_file(&t->ca_info, ca_path);
    hub__serial_hex(X509_get0_serialNumber(t->ca), t->ca_info.serial);
    hub__name_cn(X509_get_subject_name(t->ca), t->ca_info.issuer, sizeof t->ca_info.issuer, NULL);
    t->ca_info.not_before_us = hub__asn1_us(X509_get0_notBefore(t->ca));
    t->ca_info.not_after_us = hub__asn1_us(X509_get0_notAfter(t->ca));
    char when[32];
    if (X509_check_ca(t->ca) < 1) {
        hub__errf(err, err_size, "%s is not a CA certificate; point it at the ca/ca.crt that "
                                 "'hubctl ca init' made", ca_path);
        rc = HUB_EINVAL;
    } else if (X509_verify(t->ca, X509_get0_pubkey(t->ca)) != 1) {
        rc = hub__ossl_fail(err, err_size, HUB_ECRYPTO,
                            "the CA certificate's self-signature does not verify");
    } else if (now_us < t->ca_info.not_before_us) {
        hub__fmt_time(t->ca_info.not_before_us, when);
        hub__errf(err, err_size, "the CA certificate %s is valid only from %s; check the clock",
                  ca_path, when);
        rc = HUB_EINVAL;
    } else if (now_us >= t->ca_info.not_after_us) {
        hub__fmt_time(t->ca_info.not_after_us, when);
        hub__errf(err, err_size, "the CA certificate %s expired at %s; make a new CA and "
                                 "re-issue the member certificates", ca_path, when);
        rc = HUB_EINVAL;
    }
    if (rc != 0) {
        hub__trust_free(t);
        return rc;
    }

    char *text = NULL;
    size_t len = 0;
    rc = hub__read_file(crl_path, HUB__INDEX_FILE_MAX, &text, &len, NULL, why, sizeof why);
    if (rc != 0) {
        hub__errf(err, err_size, "CRL: %s (make one with 'hubctl ca crl DIR')", why);
        hub__trust_free(t);
        return rc;
    }
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    t->crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(text);
    if (!t->crl) {
        snprintf(why, sizeof why, "%s is not a PEM CRL", crl_path);
        rc = hub__ossl_fail(err, err_size, HUB_EPARSE, why);
    } else if (X509_NAME_cmp(X509_CRL_get_issuer(t->crl), X509_get_subject_name(t->ca)) != 0 ||
               X509_CRL_verify(t->crl, X509_get0_pubkey(t->ca)) != 1) {
        ERR_clear_error();
        hub__errf(err, err_size, "%s is not signed by the CA of %s; copy the crl.pem of the same "
                                 "CA directory", crl_path, ca_path);
        rc = HUB_ECRYPTO;
    } else if (!(t->store = X509_STORE_new()) || X509_STORE_add_cert(t->store, t->ca) != 1) {
        rc = hub__ossl_fail(err, err_size, HUB_ENOMEM, "cannot build the certificate store");
    }
    if (rc != 0) {
        hub__trust_free(t);
        return rc;
    }
    t->crl_this_us = hub__asn1_us(X509_CRL_get0_lastUpdate(t->crl));
    t->crl_next_us = hub__asn1_us(X509_CRL_get0_nextUpdate(t->crl));
    /* What identifies this CRL for the rollback guard: its number, its
     * issue time and a digest of its DER encoding (PEM wrapping aside). */
    t->crl_id.this_update_us = t->crl_this_us;
    ASN1_INTEGER *number = X509_CRL_get_ext_d2i(t->crl, NID_crl_number, NULL, NULL);
    if (number)
        hub__serial_hex(number, t->crl_id.number);
    ASN1_INTEGER_free(number);
    unsigned char *der = NULL;
    int der_len = i2d_X509_CRL(t->crl, &der);
    if (der_len <= 0 || !SHA256(der, (size_t)der_len, t->crl_id.sha256)) {
        OPENSSL_free(der);
        hub__trust_free(t);
        return hub__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot encode the CRL");
    }
    OPENSSL_free(der);
    return 0;
}

/* What X509_verify_cert() found, collected by the callback so that the most
 * telling problem is reported whatever order OpenSSL finds them in. */
typedef struct {
    bool unknown_issuer, bad_signature, expired, not_yet_valid;
    int other; /* the first other error code, 0 if none */
} hub__verify_t;

static int hub__verify_cb(int ok, X509_STORE_CTX *ctx)
{
    if (ok)
        return 1;
    hub__verify_t *v = X509_STORE_CTX_get_app_data(ctx);
    int e = X509_STORE_CTX_get_error(ctx);
    int depth = X509_STORE_CTX_get_error_depth(ctx);
    switch (e) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
        v->unknown_issuer = true;
        break;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
        v->bad_signature = true;
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        if (depth == 0)
            v->expired = true;
        else if (!v->other)
            v->other = e;
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        if (depth == 0)
            v->not_yet_valid = true;
        else if (!v->other)
            v->other = e;
        break;
    default:
        if (!v->other)
            v->other = e;
    }
    /* Keep going: every problem is recorded, none is accepted. */
    return 1;
}

static void hub__check_x509(const hub__trust_t *t, X509 *x, uint64_t now_us,
                            hub_cert_info_t *info)
{
    hub__describe(x, info);
    hub_cert_status_t format_status = info->status;
    char format_reason[HUB_CERT_REASON_MAX];
    memcpy(format_reason, info->reason, sizeof format_reason);

    hub__verify_t v = {0};
    X509_STORE_CTX *sc = X509_STORE_CTX_new();
    int ok = sc && X509_STORE_CTX_init(sc, t->store, x, NULL) == 1;
    if (ok) {
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(sc),
                                   (time_t)(now_us / 1000000u));
        X509_STORE_CTX_set_verify_cb(sc, hub__verify_cb);
        X509_STORE_CTX_set_app_data(sc, &v);
        ok = X509_verify_cert(sc) == 1;
    }
    X509_STORE_CTX_free(sc);
    ERR_clear_error();

    X509_REVOKED *rev = NULL;
    bool revoked = X509_CRL_get0_by_cert(t->crl, &rev, x) == 1;
    char when[32];
    info->status = HUB_CERT_VALID;
    info->reason[0] = '\0';
    if (v.unknown_issuer) {
        info->status = HUB_CERT_UNKNOWN_ISSUER;
        if (!strcmp(info->issuer, t->ca_info.issuer))
            hub__errf(info->reason, sizeof info->reason,
                     "issued by another CA that has the same name as this hub's CA ('%.100s')",
                     info->issuer);
        else
            hub__errf(info->reason, sizeof info->reason,
                     "issued by '%.100s', not by this hub's CA '%.100s'", info->issuer,
                     t->ca_info.issuer);
    } else if (v.bad_signature) {
        info->status = HUB_CERT_BAD_SIGNATURE;
        hub__errf(info->reason, sizeof info->reason,
                 "its signature does not verify with the CA's key: the file was altered, or "
                 "was not signed by this CA");
    } else if (v.other || !ok) {
        info->status = HUB_CERT_MALFORMED;
        hub__errf(info->reason, sizeof info->reason, "rejected by X.509 verification: %s",
                 v.other ? X509_verify_cert_error_string(v.other) : "internal error");
    } else if (revoked) {
        info->status = HUB_CERT_REVOKED;
        hub__fmt_time(hub__asn1_us(X509_REVOKED_get0_revocationDate(rev)), when);
        hub__errf(info->reason, sizeof info->reason,
                 "revoked at %s (serial %s); issue a new certificate if the member should "
                 "connect again", when, info->serial);
    } else if (v.expired) {
        info->status = HUB_CERT_EXPIRED;
        hub__fmt_time(info->not_after_us, when);
        hub__errf(info->reason, sizeof info->reason,
                 "expired at %s; renew it with 'hubctl cert issue'", when);
    } else if (v.not_yet_valid) {
        info->status = HUB_CERT_NOT_YET_VALID;
        hub__fmt_time(info->not_before_us, when);
        hub__errf(info->reason, sizeof info->reason, "valid only from %s", when);
    } else if (format_status != HUB_CERT_VALID) {
        info->status = format_status;
        memcpy(info->reason, format_reason, sizeof info->reason);
    }
}

static void hub__check_path(const hub__trust_t *t, const char *path, uint64_t now_us,
                            hub_cert_info_t *info, int *io_rc, char *err, size_t err_size)
{
    memset(info, 0, sizeof *info);
    hub__set_file(info, path);
    X509 *x = NULL;
    char why[HUB_ERRMSG_MAX];
    int rc = hub__read_x509(path, &x, why, sizeof why);
    if (rc == 0) {
        hub__check_x509(t, x, now_us, info);
        X509_free(x);
    } else {
        info->status = HUB_CERT_MALFORMED;
        hub__errf(info->reason, sizeof info->reason, "%s", why);
        if (io_rc && rc != HUB_EPARSE) {
            *io_rc = rc;
            hub__errf(err, err_size, "%s", why);
        }
    }
}

int hub_cert_check_file(const char *ca_cert_path, const char *crl_path, const char *path,
                        uint64_t now_us, hub_cert_info_t *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    hub__trust_t t;
    int rc = hub__trust_load(ca_cert_path, crl_path, now_us, &t, err, err_size);
    if (rc != 0)
        return rc;
    int io_rc = 0;
    hub__check_path(&t, path, now_us, out, &io_rc, err, err_size);
    hub__trust_free(&t);
    return io_rc;
}

/* ------------------------------------------------------------------------ */
/* A directory of member certificates                                        */

struct hub_certdir {
    hub_cert_info_t *certs;
    size_t count;
    size_t valid;
    hub_cert_info_t ca;
    uint64_t crl_this_us, crl_next_us;
    hub_crl_id_t crl_id;
    uint64_t next_change_us;
};

static int hub__name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is b newer than a (the later notBefore, then the higher serial)? */
static bool hub__newer(const hub_cert_info_t *b, const hub_cert_info_t *a)
{
    if (b->not_before_us != a->not_before_us)
        return b->not_before_us > a->not_before_us;
    size_t la = strlen(a->serial), lb = strlen(b->serial);
    return lb != la ? lb > la : strcmp(b->serial, a->serial) > 0;
}

/* Among valid certificates: one per member (the newest wins), and no CURVE
 * key shared between members (all that share one are refused). */
static int hub__settle(hub_certdir_t *self)
{
    hub_map_t *by_member = hub_map_new(), *by_key = hub_map_new();
    int rc = by_member && by_key ? 0 : HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < self->count; i++) {
        hub_cert_info_t *c = &self->certs[i];
        if (c->status != HUB_CERT_VALID)
            continue;
        hub_cert_info_t *prev = hub_map_get(by_member, c->keys.member_id);
        hub_cert_info_t *old = c, *winner = prev;
        if (!prev || hub__newer(c, prev)) {
            old = prev;
            winner = c;
            if (hub_map_put(by_member, c->keys.member_id, c) != 0)
                rc = HUB_ENOMEM;
        }
        if (old) {
            old->status = HUB_CERT_SUPERSEDED;
            hub__errf(old->reason, sizeof old->reason,
                      "%s (serial %s) is newer for the same member; revoke this one with "
                      "'hubctl cert revoke %s --serial %s'",
                      winner->file, winner->serial, old->keys.member_id, old->serial);
        }
    }
    for (size_t i = 0; rc == 0 && i < self->count; i++) {
        hub_cert_info_t *c = &self->certs[i];
        if (c->status != HUB_CERT_VALID && c->status != HUB_CERT_DUPLICATE_KEY)
            continue;
        hub_cert_info_t *first = hub_map_get(by_key, c->keys.curve_public);
        if (!first) {
            if (hub_map_put(by_key, c->keys.curve_public, c) != 0)
                rc = HUB_ENOMEM;
            continue;
        }
        hub_cert_info_t *pair[2] = {first, c};
        for (int k = 0; k < 2; k++) {
            if (k == 0 && first->status == HUB_CERT_DUPLICATE_KEY)
                continue; /* keeps naming the member it met first */
            pair[k]->status = HUB_CERT_DUPLICATE_KEY;
            hub__errf(pair[k]->reason, sizeof pair[k]->reason,
                      "%s's certificate %s gives the same CURVE key; each member needs its own "
                      "key: revoke the wrong one",
                      pair[1 - k]->keys.member_id, pair[1 - k]->file);
        }
    }
    hub_map_destroy(&by_member);
    hub_map_destroy(&by_key);
    return rc;
}

int hub_certdir_load(const char *ca_cert_path, const char *crl_path, const char *certs_dir,
                     uint64_t now_us, hub_certdir_t **out, char *err, size_t err_size)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!certs_dir) {
        hub__errf(err, err_size, "no certificate directory");
        return HUB_EINVAL;
    }
    int rc = hub_fsguard_check(certs_dir, "certificate directory", err, err_size);
    if (rc != 0)
        return rc;
    hub__trust_t t;
    rc = hub__trust_load(ca_cert_path, crl_path, now_us, &t, err, err_size);
    if (rc != 0)
        return rc;
    DIR *d = opendir(certs_dir);
    if (!d) {
        int e = errno;
        hub__errf(err, err_size, "cannot open certificate directory %s: %s", certs_dir,
                  strerror(e));
        hub__trust_free(&t);
        return e == ENOENT ? HUB_ENOENT : HUB_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 4 || strcmp(de->d_name + len - 4, ".crt") != 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **grown = realloc(names, ncap * sizeof *grown);
            if (!grown) {
                rc = HUB_ENOMEM;
                break;
            }
            names = grown;
            cap = ncap;
        }
        if (!(names[n] = strdup(de->d_name)))
            rc = HUB_ENOMEM;
        else
            n++;
    }
    closedir(d);
    hub_certdir_t *self = rc == 0 ? calloc(1, sizeof *self) : NULL;
    if (rc == 0 && (!self || (n && !(self->certs = calloc(n, sizeof *self->certs)))))
        rc = HUB_ENOMEM;
    if (rc == HUB_ENOMEM)
        hub__errf(err, err_size, "out of memory");
    if (rc == 0) {
        /* names is NULL when the directory holds no certificate, and qsort
         * must not be given NULL even for zero elements. */
        if (n > 1)
            qsort(names, n, sizeof *names, hub__name_cmp);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            char path[PATH_MAX];
            if ((rc = hub__path(path, certs_dir, names[i], err, err_size)) != 0)
                break;
            hub__check_path(&t, path, now_us, &self->certs[i], NULL, NULL, 0);
            self->count++;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc != 0) {
        hub_certdir_destroy(&self);
        hub__trust_free(&t);
        return rc;
    }
    if (hub__settle(self) != 0) {
        hub__errf(err, err_size, "out of memory");
        hub_certdir_destroy(&self);
        hub__trust_free(&t);
        return HUB_ENOMEM;
    }
    self->ca = t.ca_info;
    self->crl_this_us = t.crl_this_us;
    self->crl_next_us = t.crl_next_us;
    self->crl_id = t.crl_id;
    self->next_change_us = self->ca.not_after_us;
    for (size_t i = 0; i < self->count; i++) {
        const hub_cert_info_t *c = &self->certs[i];
        uint64_t at = UINT64_MAX;
        if (c->status == HUB_CERT_VALID || c->status == HUB_CERT_DUPLICATE_KEY)
            at = c->not_after_us;
        else if (c->status == HUB_CERT_NOT_YET_VALID)
            at = c->not_before_us;
        if (at > now_us && at < self->next_change_us)
            self->next_change_us = at;
        self->valid += c->status == HUB_CERT_VALID;
    }
    hub__trust_free(&t);
    *out = self;
    return 0;
}

void hub_certdir_destroy(hub_certdir_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->certs);
    free(*self_p);
    *self_p = NULL;
}

size_t hub_certdir_count(const hub_certdir_t *self) { return self ? self->count : 0; }

const hub_cert_info_t *hub_certdir_at(const hub_certdir_t *self, size_t index)
{
    return self && index < self->count ? &self->certs[index] : NULL;
}

size_t hub_certdir_valid_count(const hub_certdir_t *self) { return self ? self->valid : 0; }

const hub_cert_info_t *hub_certdir_ca(const hub_certdir_t *self)
{
    return self ? &self->ca : NULL;
}

void hub_certdir_crl_times(const hub_certdir_t *self, uint64_t *this_update_us,
                           uint64_t *next_update_us)
{
    if (this_update_us)
        *this_update_us = self ? self->crl_this_us : 0;
    if (next_update_us)
        *next_update_us = self ? self->crl_next_us : 0;
}

void hub_certdir_crl_id(const hub_certdir_t *self, hub_crl_id_t *out)
{
    if (!out)
        return;
    if (self)
        *out = self->crl_id;
    else
        memset(out, 0, sizeof *out);
}

/* ---- the CRL rollback guard ---------------------------------------------- */

/* Compares two hex numbers without leading zeros' help: -1, 0, 1. */
static int hub__hex_cmp(const char *a, const char *b)
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

static bool hub__hex_ok(const char *s, size_t max)
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
} hub__crl_state_t;

static int hub__crl_state_entry(const char *key, const char *value, void *user, char *err,
                                size_t err_size)
{
    hub__crl_state_t *st = user;
    if (!strcmp(key, "crl_number")) {
        if (strcmp(value, "none") && !hub__hex_ok(value, HUB_CERT_SERIAL_MAX - 1)) {
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
        if (strlen(value) != 64 || !hub__hex_ok(value, 64)) {
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

static int hub__crl_state_save(const char *state_path, const char *crl_path,
                               const hub_crl_id_t *crl, uint64_t now_us, char *err,
                               size_t err_size)
{
    /* The state directory (the store's) may not exist yet at first start. */
    char dir[PATH_MAX];
    const char *slash = strrchr(state_path, '/');
    if (slash && slash != state_path) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - state_path), state_path);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            hub__errf(err, err_size, "cannot make %s for the CRL state: %s", dir,
                      strerror(errno));
            return HUB_EIO;
        }
    }
    char hex[65], when[32], text[1024 + PATH_MAX];
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", crl->sha256[i]);
    hub__fmt_time(now_us, when);
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
        hub__errf(err, err_size, "CRL path too long");
        return HUB_EINVAL;
    }
    return hub__write_file(state_path, text, (size_t)n, 0600, false, err, err_size);
}

int hub_crl_state_advance(const char *state_path, const char *crl_path, const hub_crl_id_t *crl,
                          uint64_t now_us, char *err, size_t err_size)
{
    if (!crl)
        return HUB_EINVAL;
    if (!state_path || !*state_path)
        return 0;
    hub__crl_state_t known;
    memset(&known, 0, sizeof known);
    char why[HUB_ERRMSG_MAX];
    int rc = hub_conf_parse_file(state_path, hub__crl_state_entry, &known, why, sizeof why);
    if (rc == HUB_ENOENT)
        return hub__crl_state_save(state_path, crl_path, crl, now_us, err, err_size);
    if (rc == 0 && !(known.has_time && known.has_digest)) {
        snprintf(why, sizeof why, "this_update_us or sha256 is missing");
        rc = HUB_EPARSE;
    }
    if (rc != 0) {
        hub__errf(err, err_size,
                  "the CRL state file %s cannot be read (%s); it remembers the newest CRL "
                  "accepted, so that an older one cannot un-revoke members. Restore it, or "
                  "delete it to accept %s as the newest",
                  state_path, why, crl_path);
        return rc == HUB_EPARSE ? HUB_EPARSE : HUB_EIO;
    }
    if (!memcmp(known.id.sha256, crl->sha256, sizeof crl->sha256))
        return 0; /* the same CRL again */
    char was[32], now[32];
    hub__fmt_time(known.id.this_update_us, was);
    hub__fmt_time(crl->this_update_us, now);
    const char *new_no = crl->number[0] ? crl->number : "none";
    const char *old_no = known.id.number[0] ? known.id.number : "none";
    /* Numbered CRLs are ordered by number; without numbers, by issue time. */
    int order = crl->number[0] && known.id.number[0]
                    ? hub__hex_cmp(crl->number, known.id.number)
                    : (crl->this_update_us > known.id.this_update_us) -
                          (crl->this_update_us < known.id.this_update_us);
    if (order > 0)
        return hub__crl_state_save(state_path, crl_path, crl, now_us, err, err_size);
    if (order < 0) {
        hub__errf(err, err_size,
                  "CRL %s (number %s, issued %s) is older than the CRL this hub accepted "
                  "before (number %s, issued %s, remembered in %s): an older CRL would "
                  "un-revoke members. Install the CA's current crl.pem, or make a new one "
                  "with 'hubctl ca crl DIR'",
                  crl_path, new_no, now, old_no, was, state_path);
        return HUB_EINVAL;
    }
    hub__errf(err, err_size,
              "CRL %s (number %s, issued %s) has the number of the CRL this hub accepted "
              "before (issued %s, remembered in %s) but other contents: a CA never signs two "
              "CRLs with one number. Install the CA's current crl.pem, or make a new one with "
              "'hubctl ca crl DIR'",
              crl_path, new_no, now, was, state_path);
    return HUB_EINVAL;
}

uint64_t hub_certdir_next_change_us(const hub_certdir_t *self)
{
    return self ? self->next_change_us : UINT64_MAX;
}

int hub_certdir_keydir(const hub_certdir_t *self, hub_keydir_t **out, char *err,
                       size_t err_size)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!self)
        return HUB_EINVAL;
    hub_keypair_t *entries = self->valid ? calloc(self->valid, sizeof *entries) : NULL;
    if (self->valid && !entries) {
        hub__errf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    /* self->valid counts the VALID certificates, so n never reaches it
     * early; the bound keeps the writes inside entries even so. */
    size_t n = 0;
    for (size_t i = 0; i < self->count && n < self->valid; i++)
        if (self->certs[i].status == HUB_CERT_VALID)
            entries[n++] = self->certs[i].keys;
    int rc = hub_keydir_from_entries(entries, n, out, err, err_size);
    free(entries);
    return rc;
}

size_t hub_certdir_visit_expiring(const hub_certdir_t *self, uint64_t now_us, uint64_t within_us,
                                  hub_cert_info_cb cb, void *user)
{
    if (!self)
        return 0;
    uint64_t horizon = UINT64_MAX - now_us < within_us ? UINT64_MAX : now_us + within_us;
    size_t visited = 0;
    if (self->ca.not_after_us > now_us && self->ca.not_after_us <= horizon) {
        visited++;
        if (cb && cb(&self->ca, user) != 0)
            return visited;
    }
    for (size_t i = 0; i < self->count; i++) {
        const hub_cert_info_t *c = &self->certs[i];
        if (c->status != HUB_CERT_VALID || c->not_after_us <= now_us || c->not_after_us > horizon)
            continue;
        visited++;
        if (cb && cb(c, user) != 0)
            break;
    }
    return visited;
}

/* ------------------------------------------------------------------------ */
/* The CA                                                                    */

typedef struct {
    char dir[PATH_MAX];
    int lock_fd;
    X509 *cert;
    EVP_PKEY *key;
} hub__ca_t;

static void hub__ca_close(hub__ca_t *ca)
{
    EVP_PKEY_free(ca->key); /* frees and clears the key material */
    X509_free(ca->cert);
    if (ca->lock_fd >= 0)
        close(ca->lock_fd); /* releases the flock */
    ca->key = NULL;
    ca->cert = NULL;
    ca->lock_fd = -1;
}

static int hub__ca_lock(const char *dir, hub__ca_t *ca, char *err, size_t err_size)
{
    memset(ca, 0, sizeof *ca);
    ca->lock_fd = -1;
    snprintf(ca->dir, sizeof ca->dir, "%s", dir);
    char cadir[PATH_MAX];
    int rc = hub__path(cadir, dir, "ca", err, err_size);
    if (rc != 0)
        return rc;
    ca->lock_fd = open(cadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ca->lock_fd < 0) {
        int e = errno;
        hub__errf(err, err_size, "%s is not a CA directory (no %s: %s); make one with 'hubctl "
                                 "ca init %s'", dir, cadir, strerror(e), dir);
        return e == ENOENT ? HUB_ENOENT : HUB_EIO;
    }
    if (flock(ca->lock_fd, LOCK_EX) != 0) {
        hub__errf(err, err_size, "cannot lock %s: %s", cadir, strerror(errno));
        hub__ca_close(ca);
        return HUB_EIO;
    }
    return 0;
}

/* Locks dir/ca and reads the CA certificate and key. */
static int hub__ca_open(const char *dir, hub__ca_t *ca, char *err, size_t err_size)
{
    int rc = hub__ca_lock(dir, ca, err, err_size);
    if (rc != 0)
        return rc;
    char path[PATH_MAX], why[HUB_ERRMSG_MAX];
    if ((rc = hub__path(path, dir, "ca/ca.crt", err, err_size)) != 0 ||
        (rc = hub__read_x509(path, &ca->cert, why, sizeof why)) != 0) {
        if (rc != HUB_EINVAL)
            hub__errf(err, err_size, "CA certificate: %s", why);
        hub__ca_close(ca);
        return rc;
    }
    char *pem = NULL;
    size_t len = 0;
    mode_t mode = 0;
    if ((rc = hub__path(path, dir, "ca/ca.key", err, err_size)) != 0 ||
        (rc = hub__read_file(path, HUB__CERT_FILE_MAX, &pem, &len, &mode, err, err_size)) != 0) {
        hub__ca_close(ca);
        return rc;
    }
    if (mode & 077) {
        hub__errf(err, err_size, "%s is the CA's private key but its mode is %03o; run 'chmod "
                                 "600 %s'", path, (unsigned)(mode & 0777), path);
        rc = HUB_EPERM;
    } else {
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        ca->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!ca->key)
            rc = hub__ossl_fail(err, err_size, HUB_EPARSE, "ca/ca.key is not a PEM private key");
        else if (X509_check_private_key(ca->cert, ca->key) != 1)
            rc = hub__ossl_fail(err, err_size, HUB_ECRYPTO,
                                "ca/ca.key does not belong to ca/ca.crt");
    }
    OPENSSL_cleanse(pem, len);
    free(pem);
    if (rc != 0)
        hub__ca_close(ca);
    return rc;
}

static int hub__add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, char *err,
                        size_t err_size)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    if (!ok)
        return hub__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot add a certificate extension");
    return 0;
}

static int hub__pem_x509(X509 *x, const char *path, bool exclusive, char *err, size_t err_size)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_X509(bio, x) != 1) {
        BIO_free(bio);
        return hub__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot encode a certificate");
    }
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    int rc = hub__write_file(path, data, (size_t)len, 0644, exclusive, err, err_size);
    BIO_free(bio);
    return rc;
}

/* One line of the index. */
typedef struct {
    char status; /* 'V' or 'R' */
    char serial[HUB_CERT_SERIAL_MAX];
    char not_before[32], not_after[32], revoked_at[32];
    char member_id[HUB_MEMBER_ID_MAX + 1];
} hub__index_entry_t;

typedef struct {
    hub__index_entry_t *entries;
    size_t count, cap;
} hub__index_t;

static int hub__index_add(hub__index_t *ix, const hub__index_entry_t *e)
{
    if (ix->count == ix->cap) {
        size_t ncap = ix->cap ? ix->cap * 2 : 32;
        hub__index_entry_t *grown = realloc(ix->entries, ncap * sizeof *grown);
        if (!grown)
            return HUB_ENOMEM;
        ix->entries = grown;
        ix->cap = ncap;
    }
    ix->entries[ix->count++] = *e;
    return 0;
}

static int hub__index_read(const char *dir, hub__index_t *ix, char *err, size_t err_size)
{
    memset(ix, 0, sizeof *ix);
    char path[PATH_MAX];
    int rc = hub__path(path, dir, "ca/index", err, err_size);
    char *text = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = hub__read_file(path, HUB__INDEX_FILE_MAX, &text, &len, NULL, err, err_size);
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
        hub__index_entry_t e;
        char extra;
        uint64_t t;
        if (sscanf(p, "%c %40s %31s %31s %31s %255s %c", &e.status, e.serial, e.not_before,
                   e.not_after, e.revoked_at, e.member_id, &extra) != 6 ||
            (e.status != 'V' && e.status != 'R') || hub__parse_time(e.not_before, &t) != 0 ||
            hub__parse_time(e.not_after, &t) != 0 ||
            (e.status == 'R' ? hub__parse_time(e.revoked_at, &t) != 0
                             : strcmp(e.revoked_at, "-") != 0)) {
            hub__errf(err, err_size, "%s:%u: not an index line ('%s'); restore the file from "
                                     "a backup", path, line, HUB_CA_INDEX_FORMAT);
            rc = HUB_EPARSE;
        } else {
            rc = hub__index_add(ix, &e);
        }
    }
    free(text);
    if (rc != 0) {
        free(ix->entries);
        memset(ix, 0, sizeof *ix);
    }
    return rc;
}

static int hub__index_write(const char *dir, const hub__index_t *ix, char *err, size_t err_size)
{
    char path[PATH_MAX];
    int rc = hub__path(path, dir, "ca/index", err, err_size);
    if (rc != 0)
        return rc;
    size_t cap = 128 + ix->count * (sizeof(hub__index_entry_t) + 8), len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        hub__errf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    len += (size_t)snprintf(buf, cap, "# %s\n", HUB_CA_INDEX_FORMAT);
    for (size_t i = 0; i < ix->count; i++) {
        const hub__index_entry_t *e = &ix->entries[i];
        len += (size_t)snprintf(buf + len, cap - len, "%c %s %s %s %s %s\n", e->status, e->serial,
                                e->not_before, e->not_after, e->revoked_at, e->member_id);
    }
    rc = hub__write_file(path, buf, len, 0644, false, err, err_size);
    free(buf);
    return rc;
}

static int hub__crl_build(hub__ca_t *ca, const hub__index_t *ix, uint64_t now_us,
                          unsigned crl_days, char *err, size_t err_size)
{
    char path[PATH_MAX];
    int rc = hub__path(path, ca->dir, "ca/crl.pem", err, err_size);
    if (rc != 0)
        return rc;
    /* The CRL number grows by one per CRL; the previous CRL holds it. */
    long number = 1;
    char *old_text = NULL;
    size_t old_len = 0;
    if (hub__read_file(path, HUB__INDEX_FILE_MAX, &old_text, &old_len, NULL, NULL, 0) == 0) {
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
    rc = hub__path(counter_path, ca->dir, "ca/crlnumber", err, err_size);
    if (rc != 0)
        return rc;
    char *counter = NULL;
    size_t counter_len = 0;
    if (hub__read_file(counter_path, 64, &counter, &counter_len, NULL, NULL, 0) == 0) {
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
        const hub__index_entry_t *e = &ix->entries[i];
        if (e->status != 'R')
            continue;
        uint64_t at = 0;
        hub__parse_time(e->revoked_at, &at);
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
        return hub__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot make the CRL");
    }
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    rc = hub__write_file(path, data, (size_t)len, 0644, false, err, err_size);
    BIO_free(bio);
    X509_CRL_free(crl);
    if (rc == 0) {
        char text[32];
        int n = snprintf(text, sizeof text, "%ld\n", number);
        rc = hub__write_file(counter_path, text, (size_t)n, 0644, false, err, err_size);
    }
    return rc;
}

static int hub__mkdir(const char *path, mode_t mode, char *err, size_t err_size)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        hub__errf(err, err_size, "cannot create directory %s: %s", path, strerror(errno));
        return HUB_EIO;
    }
    return 0;
}

int hub_ca_init(const char *dir, const char *name, unsigned days, uint64_t now_us, char *err,
                size_t err_size)
{
    if (!dir || !*dir) {
        hub__errf(err, err_size, "no CA directory given");
        return HUB_EINVAL;
    }
    if (!name || !*name)
        name = HUB__DEFAULT_CA_NAME;
    if (strlen(name) > 64) {
        hub__errf(err, err_size, "the CA name is longer than 64 bytes");
        return HUB_EINVAL;
    }
    if (!days)
        days = HUB_CA_DEFAULT_DAYS;
    char cadir[PATH_MAX], certs[PATH_MAX], keypath[PATH_MAX], path[PATH_MAX];
    int rc = 0;
    if ((rc = hub__path(cadir, dir, "ca", err, err_size)) != 0 ||
        (rc = hub__path(certs, dir, "certs", err, err_size)) != 0 ||
        (rc = hub__path(keypath, dir, "ca/ca.key", err, err_size)) != 0 ||
        (rc = hub__mkdir(dir, 0755, err, err_size)) != 0 ||
        (rc = hub__mkdir(cadir, 0700, err, err_size)) != 0 ||
        (rc = hub__mkdir(certs, 0755, err, err_size)) != 0)
        return rc;
    hub__ca_t ca;
    if ((rc = hub__ca_lock(dir, &ca, err, err_size)) != 0)
        return rc;
    if (access(keypath, F_OK) == 0) {
        hub__errf(err, err_size, "%s already holds a CA (%s); a CA is never overwritten", dir,
                  keypath);
        hub__ca_close(&ca);
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
        hub__ca_close(&ca);
        return hub__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot make the CA key and certificate");
    }
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca.cert, ca.cert, NULL, NULL, 0);
    if ((rc = hub__add_ext(ca.cert, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0",
                           err, err_size)) != 0 ||
        (rc = hub__add_ext(ca.cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", err,
                           err_size)) != 0 ||
        (rc = hub__add_ext(ca.cert, &ctx, NID_subject_key_identifier, "hash", err, err_size)) !=
            0 ||
        (rc = hub__add_ext(ca.cert, &ctx, NID_authority_key_identifier, "keyid:always", err,
                           err_size)) != 0) {
        hub__ca_close(&ca);
        return rc;
    }
    if (X509_sign(ca.cert, ca.key, EVP_sha256()) <= 0) {
        hub__ca_close(&ca);
        return hub__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot sign the CA certificate");
    }
    /* The key first, exclusively and 0600; its PEM is cleansed at once. */
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_PrivateKey(bio, ca.key, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(bio);
        hub__ca_close(&ca);
        return hub__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot encode the CA key");
    }
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    rc = hub__write_file(keypath, pem, (size_t)pem_len, 0600, true, err, err_size);
    OPENSSL_cleanse(pem, (size_t)pem_len);
    BIO_free(bio);
    hub__index_t empty = {0};
    if (rc == 0 && (rc = hub__path(path, dir, "ca/ca.crt", err, err_size)) == 0)
        rc = hub__pem_x509(ca.cert, path, false, err, err_size);
    if (rc == 0 && (rc = hub__path(path, dir, "ca/serial", err, err_size)) == 0)
        rc = hub__write_file(path, "01\n", 3, 0644, false, err, err_size);
    if (rc == 0)
        rc = hub__index_write(dir, &empty, err, err_size);
    if (rc == 0)
        rc = hub__crl_build(&ca, &empty, now_us, 0, err, err_size);
    if (rc != 0)
        unlink(keypath); /* a half-made CA is no CA; let init run again */
    hub__ca_close(&ca);
    return rc;
}

static int hub__serial_next(const char *dir, uint64_t *out, char *err, size_t err_size)
{
    char path[PATH_MAX];
    int rc = hub__path(path, dir, "ca/serial", err, err_size);
    char *text = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = hub__read_file(path, 64, &text, &len, NULL, err, err_size);
    if (rc != 0)
        return rc;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 16);
    bool ok = end != text && errno == 0 && v > 0 && v < UINT64_MAX && (*end == '\n' || !*end);
    free(text);
    if (!ok) {
        hub__errf(err, err_size, "%s does not hold a hex serial number", path);
        return HUB_EPARSE;
    }
    char next[32];
    int n = snprintf(next, sizeof next, "%02llX\n", v + 1);
    if ((rc = hub__write_file(path, next, (size_t)n, 0644, false, err, err_size)) != 0)
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
        hub__errf(err, err_size, "the member id is not valid");
        return HUB_EINVAL;
    }
    if (!member->has_sign || strlen(member->curve_public) != HUB_Z85_KEY_LEN ||
        !zmq_z85_decode(curve, member->curve_public)) {
        hub__errf(err, err_size, "%s's key file lacks a CURVE key or a signing key; regenerate "
                                 "it with 'hubctl keygen'", member->member_id);
        return HUB_EINVAL;
    }
    uint64_t nb = validity && validity->not_before_us ? validity->not_before_us : now_us;
    unsigned days = validity && validity->days ? validity->days : HUB_CERT_DEFAULT_DAYS;
    uint64_t na = validity && validity->not_after_us ? validity->not_after_us
                                                     : nb + (uint64_t)days * 86400000000ull;
    if (nb / 1000000u >= na / 1000000u) {
        hub__errf(err, err_size, "the certificate would end before it begins");
        return HUB_EINVAL;
    }
    hub__ca_t ca;
    int rc = hub__ca_open(dir, &ca, err, err_size);
    if (rc != 0)
        return rc;
    uint64_t ca_end = hub__asn1_us(X509_get0_notAfter(ca.cert));
    char when[32];
    if (na > ca_end) {
        hub__fmt_time(ca_end, when);
        hub__errf(err, err_size, "the certificate would outlast the CA certificate (valid until "
                                 "%s); issue it for fewer days, or make a new CA", when);
        hub__ca_close(&ca);
        return HUB_EINVAL;
    }
    char path[PATH_MAX];
    if (out_path)
        snprintf(path, sizeof path, "%s", out_path);
    else if (snprintf(path, sizeof path, "%s/certs/%s.crt", dir, slug) >= (int)sizeof path) {
        hub__errf(err, err_size, "path too long: %s", dir);
        hub__ca_close(&ca);
        return HUB_EINVAL;
    }
    hub__index_t ix;
    uint64_t serial = 0;
    if ((rc = hub__index_read(dir, &ix, err, err_size)) != 0) {
        hub__ca_close(&ca);
        return rc;
    }
    if ((rc = hub__serial_next(dir, &serial, err, err_size)) != 0) {
        free(ix.entries);
        hub__ca_close(&ca);
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
        rc = hub__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot make the certificate");
    char san[64 + 2 * sizeof HUB__URN_MEMBER + HUB_MEMBER_ID_MAX + 64];
    int o = snprintf(san, sizeof san, "URI:" HUB__URN_MEMBER "%s,URI:" HUB__URN_CURVE,
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
        rc = hub__add_ext(x, &ctx, exts[i].nid, exts[i].value, err, err_size);
    if (rc == 0 && X509_sign(x, ca.key, EVP_sha256()) <= 0)
        rc = hub__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot sign the certificate");
    if (rc == 0)
        rc = hub__pem_x509(x, path, false, err, err_size);
    hub_cert_info_t info;
    memset(&info, 0, sizeof info);
    if (rc == 0) {
        hub__set_file(&info, path);
        hub__describe(x, &info);
        hub__index_entry_t e = {.status = 'V'};
        snprintf(e.serial, sizeof e.serial, "%s", info.serial);
        hub__fmt_time(info.not_before_us, e.not_before);
        hub__fmt_time(info.not_after_us, e.not_after);
        snprintf(e.revoked_at, sizeof e.revoked_at, "-");
        snprintf(e.member_id, sizeof e.member_id, "%s", member->member_id);
        rc = hub__index_add(&ix, &e);
        if (rc == HUB_ENOMEM)
            hub__errf(err, err_size, "out of memory");
        if (rc == 0)
            rc = hub__index_write(dir, &ix, err, err_size);
    }
    X509_free(x);
    free(ix.entries);
    hub__ca_close(&ca);
    if (rc == 0) {
        if (issued)
            *issued = info;
        if (path_out)
            snprintf(path_out, PATH_MAX, "%s", path);
    }
    return rc;
}

/* Hex serials compare as numbers: "0A" and "a" are the same serial. */
static bool hub__serial_eq(const char *a, const char *b)
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
        hub__errf(err, err_size, "no CA directory or member id");
        return HUB_EINVAL;
    }
    hub__ca_t ca;
    int rc = hub__ca_open(dir, &ca, err, err_size);
    if (rc != 0)
        return rc;
    hub__index_t ix;
    if ((rc = hub__index_read(dir, &ix, err, err_size)) != 0) {
        hub__ca_close(&ca);
        return rc;
    }
    size_t n = 0;
    char now_text[32];
    hub__fmt_time(now_us, now_text);
    for (size_t i = 0; i < ix.count; i++) {
        hub__index_entry_t *e = &ix.entries[i];
        if (e->status != 'V' || strcmp(e->member_id, member_id) ||
            (serial && !hub__serial_eq(e->serial, serial)))
            continue;
        e->status = 'R';
        snprintf(e->revoked_at, sizeof e->revoked_at, "%s", now_text);
        n++;
    }
    if (n == 0) {
        hub__errf(err, err_size, "%s/ca/index lists no unrevoked certificate of %s%s%s", dir,
                  member_id, serial ? " with serial " : "", serial ? serial : "");
        rc = HUB_ENOTFOUND;
    }
    /* The CRL first: if writing the index then fails, the certificate is
     * already refused, which is the safe side. */
    if (rc == 0)
        rc = hub__crl_build(&ca, &ix, now_us, crl_days, err, err_size);
    if (rc == 0)
        rc = hub__index_write(dir, &ix, err, err_size);
    free(ix.entries);
    hub__ca_close(&ca);
    if (rc == 0 && revoked)
        *revoked = n;
    return rc;
}

int hub_ca_write_crl(const char *dir, uint64_t now_us, unsigned crl_days, char *err,
                     size_t err_size)
{
    hub__ca_t ca;
    int rc = hub__ca_open(dir, &ca, err, err_size);
    if (rc != 0)
        return rc;
    hub__index_t ix;
    if ((rc = hub__index_read(dir, &ix, err, err_size)) == 0)
        rc = hub__crl_build(&ca, &ix, now_us, crl_days, err, err_size);
    free(ix.entries);
    hub__ca_close(&ca);
    return rc;
}
