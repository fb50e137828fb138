/* hub_cert_verify.c — X.509 chain validation: the CA certificate and its
 * CRL loaded into a store (a CRL that does not verify, or is out of date,
 * fails the load), and one certificate checked against it, with the status
 * and the sentence a member or operator is told. */
#include "hub_cert_internal.h"
#include "hub_error.h"
#include "hub_fsguard.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cert_verify__trust_free(cert__trust_t *t)
{
    X509_STORE_free(t->store);
    X509_CRL_free(t->crl);
    X509_free(t->ca);
    memset(t, 0, sizeof *t);
}

int cert_verify__trust_load(const char *ca_path, const char *crl_path, uint64_t now_us,
                            cert__trust_t *t, char *err, size_t err_size)
{
    memset(t, 0, sizeof *t);
    if (!ca_path || !crl_path) {
        hub_errf(err, err_size, "a CA certificate and a CRL are both needed");
        return HUB_EINVAL;
    }
    char why[HUB_ERRMSG_MAX];
    int rc = hub_fsguard_check(ca_path, "CA certificate", err, err_size);
    if (rc == 0)
        rc = hub_fsguard_check(crl_path, "CRL file", err, err_size);
    if (rc != 0)
        return rc;
    rc = cert__read_x509(ca_path, &t->ca, why, sizeof why);
    if (rc != 0) {
        hub_errf(err, err_size, "CA certificate %s: %s", ca_path, why);
        return rc;
    }
    cert__set_file(&t->ca_info, ca_path);
    cert__serial_hex(X509_get0_serialNumber(t->ca), t->ca_info.serial);
    cert__name_cn(X509_get_subject_name(t->ca), t->ca_info.issuer, sizeof t->ca_info.issuer, NULL);
    t->ca_info.not_before_us = cert__asn1_us(X509_get0_notBefore(t->ca));
    t->ca_info.not_after_us = cert__asn1_us(X509_get0_notAfter(t->ca));
    char when[32];
    if (X509_check_ca(t->ca) < 1) {
        hub_errf(err, err_size,
                 "%s is not a CA certificate; point it at the ca/ca.crt that "
                 "'hubctl ca init' made",
                 ca_path);
        rc = HUB_EINVAL;
    } else if (X509_verify(t->ca, X509_get0_pubkey(t->ca)) != 1) {
        rc = cert__ossl_fail(err, err_size, HUB_ECRYPTO,
                             "the CA certificate's self-signature does not verify");
    } else if (now_us < t->ca_info.not_before_us) {
        cert__fmt_time(t->ca_info.not_before_us, when);
        hub_errf(err, err_size, "the CA certificate %s is valid only from %s; check the clock",
                 ca_path, when);
        rc = HUB_EINVAL;
    } else if (now_us >= t->ca_info.not_after_us) {
        cert__fmt_time(t->ca_info.not_after_us, when);
        hub_errf(err, err_size,
                 "the CA certificate %s expired at %s; make a new CA and "
                 "re-issue the member certificates",
                 ca_path, when);
        rc = HUB_EINVAL;
    }
    if (rc != 0) {
        cert_verify__trust_free(t);
        return rc;
    }

    char *text = NULL;
    size_t len = 0;
    rc = cert__read_file(crl_path, HUB__CERT_INDEX_FILE_MAX, &text, &len, NULL, why, sizeof why);
    if (rc != 0) {
        hub_errf(err, err_size, "CRL: %s (make one with 'hubctl ca crl DIR')", why);
        cert_verify__trust_free(t);
        return rc;
    }
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    t->crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(text);
    if (!t->crl) {
        snprintf(why, sizeof why, "%s is not a PEM CRL", crl_path);
        rc = cert__ossl_fail(err, err_size, HUB_EPARSE, why);
    } else if (X509_NAME_cmp(X509_CRL_get_issuer(t->crl), X509_get_subject_name(t->ca)) != 0 ||
               X509_CRL_verify(t->crl, X509_get0_pubkey(t->ca)) != 1) {
        ERR_clear_error();
        hub_errf(err, err_size,
                 "%s is not signed by the CA of %s; copy the crl.pem of the same "
                 "CA directory",
                 crl_path, ca_path);
        rc = HUB_ECRYPTO;
    } else if (!(t->store = X509_STORE_new()) || X509_STORE_add_cert(t->store, t->ca) != 1) {
        rc = cert__ossl_fail(err, err_size, HUB_ENOMEM, "cannot build the certificate store");
    }
    if (rc != 0) {
        cert_verify__trust_free(t);
        return rc;
    }
    t->crl_this_us = cert__asn1_us(X509_CRL_get0_lastUpdate(t->crl));
    t->crl_next_us = cert__asn1_us(X509_CRL_get0_nextUpdate(t->crl));
    /* What identifies this CRL for the rollback guard: its number, its
     * issue time and a digest of its DER encoding (PEM wrapping aside). */
    t->crl_id.this_update_us = t->crl_this_us;
    ASN1_INTEGER *number = X509_CRL_get_ext_d2i(t->crl, NID_crl_number, NULL, NULL);
    if (number)
        cert__serial_hex(number, t->crl_id.number);
    ASN1_INTEGER_free(number);
    unsigned char *der = NULL;
    int der_len = i2d_X509_CRL(t->crl, &der);
    if (der_len <= 0 || !SHA256(der, (size_t)der_len, t->crl_id.sha256)) {
        OPENSSL_free(der);
        cert_verify__trust_free(t);
        return cert__ossl_fail(err, err_size, HUB_ECRYPTO, "cannot encode the CRL");
    }
    OPENSSL_free(der);
    return 0;
}

/* What X509_verify_cert() found, collected by the callback so that the most
 * telling problem is reported whatever order OpenSSL finds them in. */
typedef struct {
    bool unknown_issuer, bad_signature, expired, not_yet_valid;
    int other; /* the first other error code, 0 if none */
} cert_verify__verify_t;

static int cert_verify__cb(int ok, X509_STORE_CTX *ctx)
{
    if (ok)
        return 1;
    cert_verify__verify_t *v = X509_STORE_CTX_get_app_data(ctx);
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
    case X509_V_ERR_CERT_NOT_YET_VALID:
        /* Named for the certificate checked (depth 0); a CA's validity
         * period counts with the other errors. */
        if (depth == 0 && e == X509_V_ERR_CERT_HAS_EXPIRED)
            v->expired = true;
        else if (depth == 0)
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

static void cert_verify__check_x509(const cert__trust_t *t, X509 *x, uint64_t now_us,
                                    hub_cert_info_t *info)
{
    cert__describe(x, info);
    hub_cert_status_t format_status = info->status;
    char format_reason[HUB_CERT_REASON_MAX];
    memcpy(format_reason, info->reason, sizeof format_reason);

    cert_verify__verify_t v = {0};
    X509_STORE_CTX *sc = X509_STORE_CTX_new();
    int ok = sc && X509_STORE_CTX_init(sc, t->store, x, NULL) == 1;
    if (ok) {
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(sc),
                                   (time_t)(now_us / 1000000u));
        X509_STORE_CTX_set_verify_cb(sc, cert_verify__cb);
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
            hub_errf(info->reason, sizeof info->reason,
                     "issued by another CA that has the same name as this hub's CA ('%.100s')",
                     info->issuer);
        else
            hub_errf(info->reason, sizeof info->reason,
                     "issued by '%.100s', not by this hub's CA '%.100s'", info->issuer,
                     t->ca_info.issuer);
    } else if (v.bad_signature) {
        info->status = HUB_CERT_BAD_SIGNATURE;
        hub_errf(info->reason, sizeof info->reason,
                 "its signature does not verify with the CA's key: the file was altered, or "
                 "was not signed by this CA");
    } else if (v.other || !ok) {
        info->status = HUB_CERT_MALFORMED;
        hub_errf(info->reason, sizeof info->reason, "rejected by X.509 verification: %s",
                 v.other ? X509_verify_cert_error_string(v.other) : "internal error");
    } else if (revoked) {
        info->status = HUB_CERT_REVOKED;
        cert__fmt_time(cert__asn1_us(X509_REVOKED_get0_revocationDate(rev)), when);
        hub_errf(info->reason, sizeof info->reason,
                 "revoked at %s (serial %s); issue a new certificate if the member should "
                 "connect again",
                 when, info->serial);
    } else if (v.expired) {
        info->status = HUB_CERT_EXPIRED;
        cert__fmt_time(info->not_after_us, when);
        hub_errf(info->reason, sizeof info->reason,
                 "expired at %s; renew it with 'hubctl cert issue'", when);
    } else if (v.not_yet_valid) {
        info->status = HUB_CERT_NOT_YET_VALID;
        cert__fmt_time(info->not_before_us, when);
        hub_errf(info->reason, sizeof info->reason, "valid only from %s", when);
    } else if (format_status != HUB_CERT_VALID) {
        info->status = format_status;
        memcpy(info->reason, format_reason, sizeof info->reason);
    }
}

void cert_verify__check_path(const cert__trust_t *t, const char *path, uint64_t now_us,
                             hub_cert_info_t *info, int *io_rc, char *err, size_t err_size)
{
    memset(info, 0, sizeof *info);
    cert__set_file(info, path);
    X509 *x = NULL;
    char why[HUB_ERRMSG_MAX];
    int rc = cert__read_x509(path, &x, why, sizeof why);
    if (rc == 0) {
        cert_verify__check_x509(t, x, now_us, info);
        X509_free(x);
    } else {
        info->status = HUB_CERT_MALFORMED;
        hub_errf(info->reason, sizeof info->reason, "%s", why);
        if (io_rc && rc != HUB_EPARSE) {
            *io_rc = rc;
            hub_errf(err, err_size, "%s", why);
        }
    }
}

int hub_cert_check_file(const char *ca_cert_path, const char *crl_path, const char *path,
                        uint64_t now_us, hub_cert_info_t *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    cert__trust_t t;
    int rc = cert_verify__trust_load(ca_cert_path, crl_path, now_us, &t, err, err_size);
    if (rc != 0)
        return rc;
    int io_rc = 0;
    cert_verify__check_path(&t, path, now_us, out, &io_rc, err, err_size);
    cert_verify__trust_free(&t);
    return io_rc;
}

