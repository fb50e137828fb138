/* hub_cert_internal.h — PRIVATE to the certificate files in hub/core
 * (hub_cert.c, hub_cert_verify.c, hub_certdir.c, hub_crl_state.c,
 * hub_ca.c): the helpers and the trust store they share. The public
 * contract is hub_cert.h.
 *
 * Dependencies run one way: hub_cert.c (format and helpers) under
 * hub_cert_verify.c (chain validation) under hub_certdir.c; hub_crl_state.c
 * and hub_ca.c use hub_cert.c only. */
#ifndef HUB_CERT_INTERNAL_H
#define HUB_CERT_INTERNAL_H

#include "hub_cert.h"

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HUB__CERT_FILE_MAX (64 * 1024)
#define HUB__CERT_INDEX_FILE_MAX (64L << 20)
#define HUB__CERT_URN_MEMBER "urn:lth:member:"
#define HUB__CERT_URN_CURVE "urn:lth:curve:"

/* ---- helpers (hub_cert.c) ----------------------------------------------- */

/* Puts `what` and OpenSSL's last error into err (and empties its queue);
 * returns code. */
int cert__ossl_fail(char *err, size_t err_size, int code, const char *what);
/* us as "YYYY-MM-DDTHH:MM:SSZ" ("?" if it cannot be shown). */
void cert__fmt_time(uint64_t us, char out[32]);
/* The reverse of cert__fmt_time(); HUB_EPARSE when text is not one. */
int cert__parse_time(const char *text, uint64_t *out_us);
/* An ASN1_TIME in microseconds since the epoch (0 if unreadable). */
uint64_t cert__asn1_us(const ASN1_TIME *t);
/* Reads path (at most max bytes) into a malloc'ed, NUL-terminated buffer;
 * mode gets its st_mode when not NULL. */
int cert__read_file(const char *path, long max, char **out, size_t *len, mode_t *mode, char *err,
                    size_t err_size);
/* Writes path: a new file only (O_EXCL) when exclusive, else a temporary
 * file renamed over path, so that a reader sees the old or the new bytes. */
int cert__write_file(const char *path, const void *data, size_t len, mode_t mode, bool exclusive,
                     char *err, size_t err_size);
/* dir/rel into out (PATH_MAX bytes); HUB_EINVAL when too long. */
int cert__path(char *out, const char *dir, const char *rel, char *err, size_t err_size);
/* A serial number in upper-case hex. */
void cert__serial_hex(const ASN1_INTEGER *serial, char out[HUB_CERT_SERIAL_MAX]);
/* The first CN of name as UTF-8 into out; false when there is none, or more
 * than one, or it does not fit. */
bool cert__name_cn(const X509_NAME *name, char *out, size_t out_size, bool *several);

/* ---- the member-certificate format (hub_cert.c) ------------------------- */

/* Reads what a member certificate says into info (file is set by the
 * caller). Leaves info->status HUB_CERT_VALID when the format is right. */
void cert__describe(X509 *x, hub_cert_info_t *info);
/* Reads one PEM certificate from path. */
int cert__read_x509(const char *path, X509 **out, char *err, size_t err_size);
/* Sets info->file to path's base name. */
void cert__set_file(hub_cert_info_t *info, const char *path);

/* ---- trust (hub_cert_verify.c) ------------------------------------------ */

/* The CA certificate, its CRL and a store holding both. */
typedef struct {
    X509 *ca;
    X509_CRL *crl;
    X509_STORE *store;
    hub_cert_info_t ca_info;
    uint64_t crl_this_us, crl_next_us;
    hub_crl_id_t crl_id;
} cert__trust_t;

void cert_verify__trust_free(cert__trust_t *t);
/* Loads the CA certificate and CRL into t; on failure t is empty and err
 * says which file is wrong. */
int cert_verify__trust_load(const char *ca_path, const char *crl_path, uint64_t now_us,
                            cert__trust_t *t, char *err, size_t err_size);
/* Reads and checks the certificate at path into info; *io_rc gets an I/O
 * error (a certificate that is wrong is a status, not an error). */
void cert_verify__check_path(const cert__trust_t *t, const char *path, uint64_t now_us,
                             hub_cert_info_t *info, int *io_rc, char *err, size_t err_size);

#endif
