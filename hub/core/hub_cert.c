/* hub_cert.c — the member-certificate format: what a certificate must say
 * to name a member and its keys (hub_cert_read), and the small helpers the
 * certificate files share (errors, times, whole-file reads and atomic
 * writes, names). Trust, directories, the CRL guard and the CA build on it.
 */
#include "hub_cert_internal.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_numfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

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

/* Puts `what` and OpenSSL's last error into err (and empties its queue). */
int cert__ossl_fail(char *err, size_t err_size, int code, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char detail[256] = "";
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    if (detail[0])
        hub_errf(err, err_size, "%s (OpenSSL: %s)", what, detail);
    else
        hub_errf(err, err_size, "%s", what);
    return code;
}

void cert__fmt_time(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "?");
}

int cert__parse_time(const char *text, uint64_t *out_us)
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

uint64_t cert__asn1_us(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    time_t s = timegm(&tm);
    return s < 0 ? 0 : (uint64_t)s * 1000000u;
}

int cert__read_file(const char *path, long max, char **out, size_t *len, mode_t *mode, char *err,
                    size_t err_size)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        hub_errf(err, err_size, "cannot read %s: %s", path, strerror(e));
        return e == ENOENT ? HUB_ENOENT : e == EACCES ? HUB_EPERM : HUB_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > max) {
        hub_errf(err, err_size, "%s is not a regular file of at most %ld bytes", path, max);
        close(fd);
        return HUB_EIO;
    }
    if (mode)
        *mode = st.st_mode;
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        hub_errf(err, err_size, "out of memory");
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

static int cert__fsync_dir_of(const char *path)
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

/* Writes path: a new file only (O_EXCL) when exclusive, else a temporary
 * file renamed over path, so that a reader sees the old or the new bytes. */
int cert__write_file(const char *path, const void *data, size_t len, mode_t mode, bool exclusive,
                     char *err, size_t err_size)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        hub_errf(err, err_size, "path too long: %s", path);
        return HUB_EINVAL;
    }
    const char *target = exclusive ? path : tmp;
    if (!exclusive)
        unlink(tmp);
    int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        hub_errf(err, err_size, "cannot create %s: %s", target, strerror(e));
        return e == EEXIST ? HUB_EEXIST : HUB_EIO;
    }
    int rc = hub_write_all(fd, data, len) != 0 ? HUB_EIO : 0;
    if (rc == 0 && fchmod(fd, mode) != 0)
        rc = HUB_EIO;
    if (rc == 0 && fsync(fd) != 0)
        rc = HUB_EIO;
    if (close(fd) != 0)
        rc = HUB_EIO;
    if (rc == 0 && !exclusive && rename(tmp, path) != 0)
        rc = HUB_EIO;
    if (rc != 0) {
        hub_errf(err, err_size, "cannot write %s: %s", path, strerror(errno));
        unlink(target);
        return rc;
    }
    cert__fsync_dir_of(path);
    return 0;
}

int cert__path(char *out, const char *dir, const char *rel, char *err, size_t err_size)
{
    if (snprintf(out, PATH_MAX, "%s/%s", dir, rel) >= PATH_MAX) {
        hub_errf(err, err_size, "path too long: %s/%s", dir, rel);
        return HUB_EINVAL;
    }
    return 0;
}

void cert__serial_hex(const ASN1_INTEGER *serial, char out[HUB_CERT_SERIAL_MAX])
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
bool cert__name_cn(const X509_NAME *name, char *out, size_t out_size, bool *several)
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
static bool cert__hex32(const char *hex, size_t len, uint8_t out[32])
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
void cert__describe(X509 *x, hub_cert_info_t *info)
{
    info->status = HUB_CERT_VALID;
    info->reason[0] = '\0';
    cert__serial_hex(X509_get0_serialNumber(x), info->serial);
    cert__name_cn(X509_get_issuer_name(x), info->issuer, sizeof info->issuer, NULL);
    info->not_before_us = cert__asn1_us(X509_get0_notBefore(x));
    info->not_after_us = cert__asn1_us(X509_get0_notAfter(x));

#define HUB__BAD(status_, ...)                                                                     \
    do {                                                                                           \
        if (info->status == HUB_CERT_VALID) {                                                      \
            info->status = status_;                                                                \
            hub_errf(info->reason, sizeof info->reason, __VA_ARGS__);                              \
        }                                                                                          \
    } while (0)

    if (X509_get_version(x) != X509_VERSION_3 || X509_check_ca(x) != 0)
        HUB__BAD(HUB_CERT_MALFORMED, "it is a CA certificate or not X.509 v3, not a member "
                                     "certificate");

    bool several = false;
    char cn[HUB_MEMBER_ID_MAX + 1];
    if (!cert__name_cn(X509_get_subject_name(x), cn, sizeof cn, &several) || several)
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
        const size_t member_len = strlen(HUB__CERT_URN_MEMBER),
                     curve_len = strlen(HUB__CERT_URN_CURVE);
        if (len > member_len && !strncmp(uri, HUB__CERT_URN_MEMBER, member_len)) {
            members++;
            snprintf(member_urn, sizeof member_urn, "%.*s", (int)(len - member_len),
                     uri + member_len);
        } else if (len >= curve_len && !strncmp(uri, HUB__CERT_URN_CURVE, curve_len)) {
            curves++;
            uint8_t bin[32];
            curve_ok = cert__hex32(uri + curve_len, len - curve_len, bin) &&
                       zmq_z85_encode(info->keys.curve_public, bin, sizeof bin) != NULL;
        }
    }
    GENERAL_NAMES_free(names);
    if (crit == -2)
        HUB__BAD(HUB_CERT_MALFORMED, "it has two subjectAltName extensions");
    else if (members != 1 || curves != 1)
        HUB__BAD(HUB_CERT_MALFORMED,
                 "its subjectAltName must hold exactly one " HUB__CERT_URN_MEMBER
                 "… URI and one " HUB__CERT_URN_CURVE "… URI (it has %d and %d)",
                 members, curves);
    else if (!curve_ok)
        HUB__BAD(HUB_CERT_MALFORMED,
                 "its " HUB__CERT_URN_CURVE " URI must end in 64 lower-case hex digits");
    else if (info->keys.member_id[0] && strcmp(member_urn, info->keys.member_id) != 0)
        HUB__BAD(HUB_CERT_ID_MISMATCH,
                 "its CN names %s but its " HUB__CERT_URN_MEMBER
                 " URI names %.64s; the certificate "
                 "must name one member",
                 info->keys.member_id, member_urn);
    if (!curve_ok)
        info->keys.curve_public[0] = '\0';
#undef HUB__BAD
}

int cert__read_x509(const char *path, X509 **out, char *err, size_t err_size)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = cert__read_file(path, HUB__CERT_FILE_MAX, &text, &len, NULL, err, err_size);
    if (rc != 0)
        return rc;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    *out = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(text);
    if (!*out)
        return cert__ossl_fail(err, err_size, HUB_EPARSE, "not a PEM X.509 certificate");
    return 0;
}

void cert__set_file(hub_cert_info_t *info, const char *path)
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
    cert__set_file(out, path);
    X509 *x = NULL;
    char why[HUB_ERRMSG_MAX];
    int rc = cert__read_x509(path, &x, why, sizeof why);
    if (rc == HUB_EPARSE) {
        out->status = HUB_CERT_MALFORMED;
        hub_errf(out->reason, sizeof out->reason, "%s", why);
        return 0;
    }
    if (rc != 0) {
        hub_errf(err, err_size, "%s", why);
        return rc;
    }
    cert__describe(x, out);
    X509_free(x);
    return 0;
}

