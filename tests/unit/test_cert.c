/* Unit tests for hub_cert: a CA made in a temporary directory issues member
 * certificates for fresh keys; the hub's loader admits the valid ones and
 * refuses, with the reason, revoked, expired, not-yet-valid, foreign,
 * tampered, malformed and inconsistent ones; the key table built from the
 * certificates answers like the key-directory loader; an empty certificate
 * directory loads as an empty table; `hubctl ca|cert` end to end. */
#include "hub_cert.h"
#include "hub_error.h"
#include "hub_keys.h"
#include "hub_wire.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DAY_US 86400000000ull
#define DANCU "VN/GOV/BCA/CSDLQGDC"
#define HOTICH "VN/GOV/HN-STP/HOTICH"
#define PORTAL "VN/GOV/VPCP/DVCQG"

typedef struct {
    char root[PATH_MAX];  /* the test's temporary directory */
    char ca[PATH_MAX];    /* root/ca: the CA directory */
    char ca_cert[PATH_MAX], crl[PATH_MAX], certs[PATH_MAX];
    uint64_t now;
} fx_t;

static void fx_init_named(fx_t *fx, const char *name)
{
    memset(fx, 0, sizeof *fx);
    tk_tmpdir(fx->root);
    snprintf(fx->ca, sizeof fx->ca, "%s/ca", fx->root);
    snprintf(fx->ca_cert, sizeof fx->ca_cert, "%s/ca/ca/ca.crt", fx->root);
    snprintf(fx->crl, sizeof fx->crl, "%s/ca/ca/crl.pem", fx->root);
    snprintf(fx->certs, sizeof fx->certs, "%s/ca/certs", fx->root);
    fx->now = hub_now_us();
    char err[HUB_ERRMSG_MAX];
    ck_assert_msg(hub_ca_init(fx->ca, name, 0, fx->now, err, sizeof err) == 0, "%s", err);
}

static void fx_init(fx_t *fx) { fx_init_named(fx, NULL); }

static void fx_issue(const fx_t *fx, const hub_keypair_t *kp, uint64_t nb, uint64_t na,
                     const char *out_name, hub_cert_info_t *info)
{
    char err[HUB_ERRMSG_MAX], out[PATH_MAX];
    if (out_name)
        snprintf(out, sizeof out, "%s/%s", fx->certs, out_name);
    hub_cert_validity_t v = {.not_before_us = nb, .not_after_us = na};
    int rc = hub_ca_issue(fx->ca, kp, &v, fx->now, out_name ? out : NULL, info, NULL, err,
                          sizeof err);
    ck_assert_msg(rc == 0, "issue for %s: %s", kp->member_id, err);
}

static hub_certdir_t *fx_load(const fx_t *fx, uint64_t at)
{
    hub_certdir_t *cd = NULL;
    char err[HUB_ERRMSG_MAX];
    int rc = hub_certdir_load(fx->ca_cert, fx->crl, fx->certs, at, &cd, err, sizeof err);
    ck_assert_msg(rc == 0, "load: %s", err);
    return cd;
}

static const hub_cert_info_t *find_file(const hub_certdir_t *cd, const char *file)
{
    for (size_t i = 0; i < hub_certdir_count(cd); i++)
        if (!strcmp(hub_certdir_at(cd, i)->file, file))
            return hub_certdir_at(cd, i);
    ck_abort_msg("no certificate file %s", file);
    return NULL;
}

static void slug_crt(const char *member, char *out, size_t size)
{
    char slug[256];
    ck_assert_int_eq(hub_member_id_to_slug(member, slug, sizeof slug), 0);
    snprintf(out, size, "%s.crt", slug);
}

static void assert_status(const hub_certdir_t *cd, const char *file, hub_cert_status_t want,
                          const char *reason_part)
{
    const hub_cert_info_t *c = find_file(cd, file);
    ck_assert_msg(c->status == want, "%s: %s (%s), expected %s", file,
                  hub_cert_status_name(c->status), c->reason, hub_cert_status_name(want));
    if (reason_part)
        ck_assert_msg(strstr(c->reason, reason_part), "%s: reason '%s' lacks '%s'", file,
                      c->reason, reason_part);
}

START_TEST(test_issue_and_load)
{
    fx_t fx;
    fx_init(&fx);
    char path[PATH_MAX], err[HUB_ERRMSG_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/ca/ca.key", fx.ca);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    /* A CA is never overwritten. */
    ck_assert_int_eq(hub_ca_init(fx.ca, NULL, 0, fx.now, err, sizeof err), HUB_EEXIST);
    ck_assert_msg(strstr(err, "never overwritten"), "%s", err);

    const char *ids[] = {DANCU, HOTICH, PORTAL};
    hub_keypair_t kps[3], stranger;
    char keys[PATH_MAX];
    snprintf(keys, sizeof keys, "%s/keys", fx.root);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(hub_keypair_generate(ids[i], &kps[i]), 0);
        hub_cert_info_t info;
        fx_issue(&fx, &kps[i], 0, 0, NULL, &info);
        ck_assert_str_eq(info.keys.member_id, ids[i]);
        ck_assert_str_eq(info.keys.curve_public, kps[i].curve_public);
        ck_assert_uint_eq(info.not_after_us / 1000000u,
                          (fx.now + HUB_CERT_DEFAULT_DAYS * DAY_US) / 1000000u);
        ck_assert_int_eq(hub_keypair_write(&kps[i], keys, NULL, NULL, err, sizeof err), 0);
    }
    ck_assert_int_eq(hub_keypair_generate("VN/GOV/XX/STRANGER", &stranger), 0);

    hub_certdir_t *cd = fx_load(&fx, fx.now + 1000000);
    ck_assert_uint_eq(hub_certdir_count(cd), 3);
    ck_assert_uint_eq(hub_certdir_valid_count(cd), 3);
    for (size_t i = 0; i < 3; i++) {
        const hub_cert_info_t *c = hub_certdir_at(cd, i);
        ck_assert_msg(c->status == HUB_CERT_VALID, "%s: %s", c->file, c->reason);
        ck_assert_str_eq(c->reason, "");
        ck_assert_str_eq(c->issuer, "Liên Thông Hub member CA");
    }
    ck_assert_str_eq(hub_certdir_ca(cd)->issuer, "Liên Thông Hub member CA");

    /* The key table from certificates answers like the key directory. */
    hub_keydir_t *from_certs = NULL, *from_files = NULL;
    ck_assert_int_eq(hub_certdir_keydir(cd, &from_certs, err, sizeof err), 0);
    ck_assert_int_eq(hub_keydir_load(keys, &from_files, err, sizeof err), 0);
    ck_assert_uint_eq(hub_keydir_count(from_certs), hub_keydir_count(from_files));
    for (int i = 0; i < 3; i++) {
        const hub_keypair_t *a = hub_keydir_find_key(from_certs, kps[i].curve_public);
        const hub_keypair_t *b = hub_keydir_find_key(from_files, kps[i].curve_public);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert_ptr_eq(hub_keydir_find_member(from_certs, ids[i]), a);
        ck_assert_str_eq(a->member_id, b->member_id);
        ck_assert_str_eq(a->curve_public, b->curve_public);
        ck_assert(a->has_sign && b->has_sign && !a->has_secret);
        ck_assert_mem_eq(a->sign_public, b->sign_public, 32);
        ck_assert_mem_eq(a->sign_public, kps[i].sign_public, 32);
    }
    /* A key no certificate vouches for is not in the table. */
    ck_assert_ptr_null(hub_keydir_find_key(from_certs, stranger.curve_public));
    ck_assert_ptr_null(hub_keydir_find_member(from_certs, "VN/GOV/XX/STRANGER"));
    hub_keydir_destroy(&from_certs);
    hub_keydir_destroy(&from_files);

    /* Reading one file, and checking it alone. */
    char crt[64], file[PATH_MAX];
    slug_crt(HOTICH, crt, sizeof crt);
    snprintf(file, sizeof file, "%s/%s", fx.certs, crt);
    hub_cert_info_t one;
    ck_assert_int_eq(hub_cert_read(file, &one, err, sizeof err), 0);
    ck_assert_int_eq(one.status, HUB_CERT_VALID);
    ck_assert_str_eq(one.keys.member_id, HOTICH);
    ck_assert_int_eq(hub_cert_check_file(fx.ca_cert, fx.crl, file, fx.now, &one, err, sizeof err),
                     0);
    ck_assert_int_eq(one.status, HUB_CERT_VALID);
    ck_assert_int_eq(hub_cert_read("/nonexistent.crt", &one, err, sizeof err), HUB_ENOENT);

    /* Revocation: the CRL refuses it, the table loses it. */
    size_t n = 0;
    ck_assert_int_eq(hub_ca_revoke(fx.ca, HOTICH, NULL, fx.now, 0, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(hub_ca_revoke(fx.ca, HOTICH, NULL, fx.now, 0, &n, err, sizeof err),
                     HUB_ENOTFOUND);
    ck_assert_msg(strstr(err, "no unrevoked certificate of " HOTICH), "%s", err);
    hub_certdir_destroy(&cd);
    cd = fx_load(&fx, fx.now + 1000000);
    assert_status(cd, crt, HUB_CERT_REVOKED, "revoked at");
    ck_assert_uint_eq(hub_certdir_valid_count(cd), 2);
    ck_assert_int_eq(hub_certdir_keydir(cd, &from_certs, err, sizeof err), 0);
    ck_assert_ptr_null(hub_keydir_find_key(from_certs, kps[1].curve_public));
    ck_assert_ptr_nonnull(hub_keydir_find_key(from_certs, kps[0].curve_public));
    hub_keydir_destroy(&from_certs);
    ck_assert_int_eq(hub_cert_check_file(fx.ca_cert, fx.crl, file, fx.now, &one, err, sizeof err),
                     0);
    ck_assert_int_eq(one.status, HUB_CERT_REVOKED);
    hub_certdir_destroy(&cd);
    ck_assert_ptr_null(cd);
    hub_certdir_destroy(&cd);

    for (int i = 0; i < 3; i++)
        hub_keypair_wipe(&kps[i]);
    hub_keypair_wipe(&stranger);
    tk_rmrf(fx.root);
}
END_TEST

typedef struct {
    char members[512];
    bool stop;
} expiring_t;

static int on_expiring(const hub_cert_info_t *c, void *user)
{
    expiring_t *ex = user;
    strcat(ex->members, c->keys.member_id);
    strcat(ex->members, ";");
    return ex->stop;
}

START_TEST(test_validity)
{
    fx_t fx;
    fx_init(&fx);
    hub_keypair_t old, future, soon, fine;
    ck_assert_int_eq(hub_keypair_generate("VN/GOV/T/OLD", &old), 0);
    ck_assert_int_eq(hub_keypair_generate("VN/GOV/T/FUTURE", &future), 0);
    ck_assert_int_eq(hub_keypair_generate("VN/GOV/T/SOON", &soon), 0);
    ck_assert_int_eq(hub_keypair_generate("VN/GOV/T/FINE", &fine), 0);
    fx_issue(&fx, &old, fx.now - 30 * DAY_US, fx.now - DAY_US, NULL, NULL);
    fx_issue(&fx, &future, fx.now + 10 * DAY_US, fx.now + 100 * DAY_US, NULL, NULL);
    fx_issue(&fx, &soon, fx.now - DAY_US, fx.now + 5 * DAY_US, NULL, NULL);
    fx_issue(&fx, &fine, 0, 0, NULL, NULL);
    hub_certdir_t *cd = fx_load(&fx, fx.now);
    assert_status(cd, "VN.GOV.T.OLD.crt", HUB_CERT_EXPIRED, "expired at");
    assert_status(cd, "VN.GOV.T.FUTURE.crt", HUB_CERT_NOT_YET_VALID, "valid only from");
    assert_status(cd, "VN.GOV.T.SOON.crt", HUB_CERT_VALID, NULL);
    assert_status(cd, "VN.GOV.T.FINE.crt", HUB_CERT_VALID, NULL);
    /* The set changes when SOON expires (before FUTURE starts): reload then. */
    ck_assert_uint_eq(hub_certdir_next_change_us(cd) / 1000000u,
                      (fx.now + 5 * DAY_US) / 1000000u);

    /* Expiry is warned about in advance: SOON within 30 days, not FINE. */
    expiring_t ex = {0};
    ck_assert_uint_eq(hub_certdir_visit_expiring(cd, fx.now, 30 * DAY_US, on_expiring, &ex), 1);
    ck_assert_str_eq(ex.members, "VN/GOV/T/SOON;");
    memset(&ex, 0, sizeof ex);
    ck_assert_uint_eq(hub_certdir_visit_expiring(cd, fx.now, 400 * DAY_US, on_expiring, &ex), 2);
    ck_assert_str_eq(ex.members, "VN/GOV/T/FINE;VN/GOV/T/SOON;");
    /* The CA is warned about too (member id ""), years ahead. */
    memset(&ex, 0, sizeof ex);
    ck_assert_uint_eq(hub_certdir_visit_expiring(cd, fx.now, 4000 * DAY_US, on_expiring, &ex), 3);
    ck_assert_str_eq(ex.members, ";VN/GOV/T/FINE;VN/GOV/T/SOON;");
    memset(&ex, 0, sizeof ex);
    ex.stop = true;
    ck_assert_uint_eq(hub_certdir_visit_expiring(cd, fx.now, 4000 * DAY_US, on_expiring, &ex), 1);
    hub_certdir_destroy(&cd);

    /* Later: FUTURE has started, SOON has expired. */
    cd = fx_load(&fx, fx.now + 20 * DAY_US);
    assert_status(cd, "VN.GOV.T.FUTURE.crt", HUB_CERT_VALID, NULL);
    assert_status(cd, "VN.GOV.T.SOON.crt", HUB_CERT_EXPIRED, NULL);
    /* The CRL is 30 days old by then: stale but used (see hub_cert.h). */
    hub_certdir_destroy(&cd);
    cd = fx_load(&fx, fx.now + 40 * DAY_US);
    uint64_t this_update, next_update;
    hub_certdir_crl_times(cd, &this_update, &next_update);
    ck_assert_uint_eq(this_update / 1000000u, fx.now / 1000000u);
    ck_assert_uint_eq(next_update / 1000000u, (fx.now + 30 * DAY_US) / 1000000u);
    ck_assert_uint_eq(hub_certdir_valid_count(cd), 2);
    hub_certdir_destroy(&cd);

    /* Past the CA's own end, nothing loads. */
    hub_certdir_t *none = NULL;
    char err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(hub_certdir_load(fx.ca_cert, fx.crl, fx.certs,
                                      fx.now + (HUB_CA_DEFAULT_DAYS + 1) * DAY_US, &none, err,
                                      sizeof err),
                     HUB_EINVAL);
    ck_assert_ptr_null(none);
    ck_assert_msg(strstr(err, "expired at") && strstr(err, "make a new CA"), "%s", err);

    /* A certificate may not outlast the CA, nor end before it starts. */
    hub_cert_validity_t v = {.days = HUB_CA_DEFAULT_DAYS + 1};
    ck_assert_int_eq(hub_ca_issue(fx.ca, &fine, &v, fx.now, NULL, NULL, NULL, err, sizeof err),
                     HUB_EINVAL);
    ck_assert_msg(strstr(err, "outlast the CA"), "%s", err);
    v = (hub_cert_validity_t){.not_before_us = fx.now, .not_after_us = fx.now};
    ck_assert_int_eq(hub_ca_issue(fx.ca, &fine, &v, fx.now, NULL, NULL, NULL, err, sizeof err),
                     HUB_EINVAL);

    hub_keypair_wipe(&old);
    hub_keypair_wipe(&future);
    hub_keypair_wipe(&soon);
    hub_keypair_wipe(&fine);
    tk_rmrf(fx.root);
}
END_TEST

static char *read_all(const char *path)
{
    char *text = tk_read_file(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    return text;
}

static void copy_file(const char *from, const char *to)
{
    char *text = read_all(from);
    tk_write_file(to, text);
    free(text);
}

/* Flips one hex digit of the urn:lth:curve: URI inside the DER of a
 * certificate, keeping it well-formed: only the signature can tell. */
static void tamper(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    ck_assert_ptr_nonnull(x);
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    ck_assert_int_gt(len, 0);
    X509_free(x);
    const char *needle = "urn:lth:curve:";
    unsigned char *at = NULL;
    for (int i = 0; i + 14 < len && !at; i++)
        if (!memcmp(der + i, needle, 14))
            at = der + i + 14;
    ck_assert_ptr_nonnull(at);
    *at = *at == '0' ? '1' : '0';
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_gt(PEM_write(f, "CERTIFICATE", "", der, len), 0);
    fclose(f);
    OPENSSL_free(der);
}

/* Writes a certificate that the CA of fx signs but that breaks the member
 * format: CN `cn` and the given subjectAltName (NULL: none). */
static void craft(const fx_t *fx, const char *path, const char *cn, const char *san,
                  const hub_keypair_t *kp)
{
    char keypath[PATH_MAX];
    snprintf(keypath, sizeof keypath, "%s/ca/ca.key", fx->ca);
    FILE *f = fopen(keypath, "r");
    EVP_PKEY *cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(fx->ca_cert, "r");
    X509 *ca = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    ck_assert(cakey && ca);
    X509 *x = X509_new();
    EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, kp->sign_public, 32);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName, MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pub);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    const char *exts[][2] = {{"basicConstraints", "critical,CA:FALSE"},
                             {"authorityKeyIdentifier", "keyid:always"},
                             {"subjectAltName", san}};
    for (int i = 0; i < 3; i++) {
        if (!exts[i][1])
            continue;
        X509_EXTENSION *e = X509V3_EXT_conf(NULL, &ctx, exts[i][0], exts[i][1]);
        ck_assert_ptr_nonnull(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    ck_assert_int_gt(X509_sign(x, cakey, EVP_sha256()), 0);
    f = fopen(path, "w");
    PEM_write_X509(f, x);
    fclose(f);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(cakey);
}

START_TEST(test_refusals)
{
    fx_t fx, other, twin;
    fx_init(&fx);
    fx_init_named(&other, "Some Other CA");
    fx_init(&twin); /* a look-alike: same name, other key */
    char err[HUB_ERRMSG_MAX], path[PATH_MAX], from[PATH_MAX];

    hub_keypair_t good, foreign, lookalike, forged, a, b, shared, renewed, bad_id, no_san;
    const char *ids[] = {"VN/GOV/R/GOOD", "VN/GOV/R/FOREIGN", "VN/GOV/R/LOOKALIKE",
                         "VN/GOV/R/FORGED", "VN/GOV/R/A", "VN/GOV/R/B", "VN/GOV/R/SHARED",
                         "VN/GOV/R/RENEWED", "VN/GOV/R/BADID", "VN/GOV/R/NOSAN"};
    hub_keypair_t *all[] = {&good, &foreign, &lookalike, &forged, &a, &b, &shared, &renewed,
                            &bad_id, &no_san};
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(hub_keypair_generate(ids[i], all[i]), 0);

    fx_issue(&fx, &good, 0, 0, NULL, NULL);
    /* Issued by another CA, then copied into this CA's certificate directory. */
    fx_issue(&other, &foreign, 0, 0, NULL, NULL);
    snprintf(from, sizeof from, "%s/VN.GOV.R.FOREIGN.crt", other.certs);
    snprintf(path, sizeof path, "%s/VN.GOV.R.FOREIGN.crt", fx.certs);
    copy_file(from, path);
    fx_issue(&twin, &lookalike, 0, 0, NULL, NULL);
    snprintf(from, sizeof from, "%s/VN.GOV.R.LOOKALIKE.crt", twin.certs);
    snprintf(path, sizeof path, "%s/VN.GOV.R.LOOKALIKE.crt", fx.certs);
    copy_file(from, path);
    /* Tampered after signing. */
    fx_issue(&fx, &forged, 0, 0, NULL, NULL);
    snprintf(path, sizeof path, "%s/VN.GOV.R.FORGED.crt", fx.certs);
    tamper(path);
    /* Two members, one CURVE key. */
    fx_issue(&fx, &a, 0, 0, NULL, NULL);
    memcpy(b.curve_public, a.curve_public, sizeof b.curve_public);
    fx_issue(&fx, &b, 0, 0, NULL, NULL);
    /* Renewal with a new key: both files present, the newer wins. */
    hub_cert_info_t first, second;
    fx_issue(&fx, &renewed, fx.now - DAY_US, 0, "renewed-1.crt", &first);
    hub_keypair_t renewed_new;
    ck_assert_int_eq(hub_keypair_generate("VN/GOV/R/RENEWED", &renewed_new), 0);
    fx_issue(&fx, &renewed_new, 0, 0, "renewed-2.crt", &second);
    /* Signed by this CA but not a member certificate. */
    char san[256];
    snprintf(san, sizeof san,
             "URI:urn:lth:member:VN/GOV/R/SOMEONE-ELSE,URI:urn:lth:curve:"
             "%064d", 7);
    snprintf(path, sizeof path, "%s/badid.crt", fx.certs);
    craft(&fx, path, "VN/GOV/R/BADID", san, &bad_id);
    snprintf(path, sizeof path, "%s/nosan.crt", fx.certs);
    craft(&fx, path, "VN/GOV/R/NOSAN", NULL, &no_san);
    snprintf(path, sizeof path, "%s/cn-not-id.crt", fx.certs);
    craft(&fx, path, "just a name", san, &no_san);
    snprintf(path, sizeof path, "%s/ca-copy.crt", fx.certs);
    copy_file(fx.ca_cert, path);
    snprintf(path, sizeof path, "%s/garbage.crt", fx.certs);
    tk_write_file(path, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n");
    snprintf(path, sizeof path, "%s/README.txt", fx.certs);
    tk_write_file(path, "ignored: not a .crt file\n");

    hub_certdir_t *cd = fx_load(&fx, fx.now + 1000000);
    assert_status(cd, "VN.GOV.R.GOOD.crt", HUB_CERT_VALID, NULL);
    assert_status(cd, "VN.GOV.R.FOREIGN.crt", HUB_CERT_UNKNOWN_ISSUER,
                  "issued by 'Some Other CA', not by this hub's CA");
    assert_status(cd, "VN.GOV.R.LOOKALIKE.crt", HUB_CERT_UNKNOWN_ISSUER, "same name");
    assert_status(cd, "VN.GOV.R.FORGED.crt", HUB_CERT_BAD_SIGNATURE, "altered");
    assert_status(cd, "VN.GOV.R.A.crt", HUB_CERT_DUPLICATE_KEY, "VN/GOV/R/B");
    assert_status(cd, "VN.GOV.R.B.crt", HUB_CERT_DUPLICATE_KEY, "VN/GOV/R/A");
    assert_status(cd, "renewed-1.crt", HUB_CERT_SUPERSEDED, "renewed-2.crt");
    assert_status(cd, "renewed-2.crt", HUB_CERT_VALID, NULL);
    assert_status(cd, "badid.crt", HUB_CERT_ID_MISMATCH, "VN/GOV/R/SOMEONE-ELSE");
    assert_status(cd, "nosan.crt", HUB_CERT_MALFORMED, "subjectAltName");
    assert_status(cd, "cn-not-id.crt", HUB_CERT_MALFORMED, "not a member id");
    assert_status(cd, "ca-copy.crt", HUB_CERT_MALFORMED, "CA certificate");
    assert_status(cd, "garbage.crt", HUB_CERT_MALFORMED, "not a PEM X.509 certificate");
    ck_assert_uint_eq(hub_certdir_count(cd), 13);
    ck_assert_uint_eq(hub_certdir_valid_count(cd), 2);
    hub_keydir_t *kd = NULL;
    ck_assert_int_eq(hub_certdir_keydir(cd, &kd, err, sizeof err), 0);
    ck_assert_uint_eq(hub_keydir_count(kd), 2);
    ck_assert_ptr_nonnull(hub_keydir_find_key(kd, good.curve_public));
    ck_assert_ptr_nonnull(hub_keydir_find_key(kd, renewed_new.curve_public));
    ck_assert_ptr_null(hub_keydir_find_key(kd, renewed.curve_public));
    ck_assert_ptr_null(hub_keydir_find_key(kd, a.curve_public));
    ck_assert_ptr_null(hub_keydir_find_key(kd, forged.curve_public));
    ck_assert_ptr_null(hub_keydir_find_key(kd, foreign.curve_public));
    hub_keydir_destroy(&kd);
    hub_certdir_destroy(&cd);

    /* Revoking by serial: only the old one goes. */
    size_t n = 0;
    ck_assert_int_eq(hub_ca_revoke(fx.ca, "VN/GOV/R/RENEWED", first.serial, fx.now, 0, &n, err,
                                   sizeof err),
                     0);
    ck_assert_uint_eq(n, 1);
    cd = fx_load(&fx, fx.now + 1000000);
    assert_status(cd, "renewed-1.crt", HUB_CERT_REVOKED, first.serial);
    assert_status(cd, "renewed-2.crt", HUB_CERT_VALID, NULL);
    hub_certdir_destroy(&cd);

    /* Loader failures: another CA's CRL, a CA key readable by others, a
     * CA certificate that is not a CA. */
    char other_crl[PATH_MAX];
    snprintf(other_crl, sizeof other_crl, "%s/ca/ca/crl.pem", other.root);
    ck_assert_int_eq(hub_certdir_load(fx.ca_cert, other_crl, fx.certs, fx.now, &cd, err,
                                      sizeof err),
                     HUB_ECRYPTO);
    ck_assert_msg(strstr(err, "is not signed by the CA"), "%s", err);
    snprintf(path, sizeof path, "%s/VN.GOV.R.GOOD.crt", fx.certs);
    ck_assert_int_eq(hub_certdir_load(path, fx.crl, fx.certs, fx.now, &cd, err, sizeof err),
                     HUB_EINVAL);
    ck_assert_msg(strstr(err, "is not a CA certificate"), "%s", err);
    ck_assert_int_eq(hub_certdir_load(fx.ca_cert, "/nonexistent/crl.pem", fx.certs, fx.now, &cd,
                                      err, sizeof err),
                     HUB_ENOENT);
    ck_assert_int_eq(hub_certdir_load(fx.ca_cert, fx.crl, "/nonexistent/certs", fx.now, &cd,
                                      err, sizeof err),
                     HUB_ENOENT);
    ck_assert_ptr_null(cd);
    char keypath[PATH_MAX];
    snprintf(keypath, sizeof keypath, "%s/ca/ca.key", fx.ca);
    ck_assert_int_eq(chmod(keypath, 0644), 0);
    ck_assert_int_eq(hub_ca_issue(fx.ca, &good, NULL, fx.now, NULL, NULL, NULL, err, sizeof err),
                     HUB_EPERM);
    ck_assert_msg(strstr(err, "chmod 600"), "%s", err);
    ck_assert_int_eq(hub_ca_revoke(fx.ca, "VN/GOV/R/GOOD", NULL, fx.now, 0, &n, err, sizeof err),
                     HUB_EPERM);
    ck_assert_int_eq(hub_ca_issue("/nonexistent/ca", &good, NULL, fx.now, NULL, NULL, NULL, err,
                                  sizeof err),
                     HUB_ENOENT);
    ck_assert_msg(strstr(err, "hubctl ca init"), "%s", err);

    for (int i = 0; i < 10; i++)
        hub_keypair_wipe(all[i]);
    hub_keypair_wipe(&renewed_new);
    tk_rmrf(fx.root);
    tk_rmrf(other.root);
    tk_rmrf(twin.root);
}
END_TEST

START_TEST(test_keydir_from_entries)
{
    hub_keypair_t e[3];
    ck_assert_int_eq(hub_keypair_generate("VN/GOV/K/ONE", &e[0]), 0);
    ck_assert_int_eq(hub_keypair_generate("VN/GOV/K/TWO", &e[1]), 0);
    hub_keydir_t *kd = NULL;
    char err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(hub_keydir_from_entries(e, 2, &kd, err, sizeof err), 0);
    ck_assert_uint_eq(hub_keydir_count(kd), 2);
    const hub_keypair_t *one = hub_keydir_find_member(kd, "VN/GOV/K/ONE");
    ck_assert_ptr_nonnull(one);
    ck_assert(!one->has_secret && one->curve_secret[0] == '\0');
    uint8_t zero[64] = {0};
    ck_assert_mem_eq(one->sign_secret, zero, 64); /* public halves only */
    hub_keydir_destroy(&kd);
    ck_assert_int_eq(hub_keydir_from_entries(NULL, 0, &kd, err, sizeof err), 0);
    ck_assert_uint_eq(hub_keydir_count(kd), 0);
    hub_keydir_destroy(&kd);
    e[2] = e[0];
    memcpy(e[2].member_id, "VN/GOV/K/THREE", 15);
    ck_assert_int_eq(hub_keydir_from_entries(e, 3, &kd, err, sizeof err), HUB_EEXIST);
    ck_assert_ptr_null(kd);
    ck_assert_msg(strstr(err, "VN/GOV/K/THREE and VN/GOV/K/ONE share a CURVE key"), "%s", err);
    for (int i = 0; i < 3; i++)
        hub_keypair_wipe(&e[i]);
}
END_TEST

/* A fresh CA's certs directory holds no certificate yet: the hub loads it
 * as an empty table (regression: the empty name list reached qsort as NULL,
 * which UBSan's nonnull-attribute check aborts on). */
START_TEST(test_empty_certs_dir)
{
    fx_t fx;
    fx_init(&fx);
    hub_certdir_t *cd = fx_load(&fx, fx.now);
    ck_assert_uint_eq(hub_certdir_count(cd), 0);
    ck_assert_uint_eq(hub_certdir_valid_count(cd), 0);
    hub_keydir_t *kd = NULL;
    char err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(hub_certdir_keydir(cd, &kd, err, sizeof err), 0);
    ck_assert_uint_eq(hub_keydir_count(kd), 0);
    hub_keydir_destroy(&kd);
    hub_certdir_destroy(&cd);
    tk_rmrf(fx.root);
}
END_TEST

static int run(char **out, char *const argv[]) { return tk_run(argv, out, 60000); }

START_TEST(test_hubctl_ca_and_cert)
{
    char root[PATH_MAX], ca[PATH_MAX], keys[PATH_MAX], pub[PATH_MAX], secret[PATH_MAX],
        crt[PATH_MAX], other_pub[PATH_MAX], old_pub[PATH_MAX];
    tk_tmpdir(root);
    snprintf(ca, sizeof ca, "%s/ca", root);
    snprintf(keys, sizeof keys, "%s/keys", root);
    snprintf(pub, sizeof pub, "%s/VN.GOV.BCA.CSDLQGDC.pub", keys);
    snprintf(secret, sizeof secret, "%s/VN.GOV.BCA.CSDLQGDC.secret", keys);
    snprintf(other_pub, sizeof other_pub, "%s/VN.GOV.HN-STP.HOTICH.pub", keys);
    snprintf(old_pub, sizeof old_pub, "%s/VN.GOV.T.OLD.pub", keys);
    snprintf(crt, sizeof crt, "%s/certs/VN.GOV.BCA.CSDLQGDC.crt", ca);
    const char *hubctl = tk_bin("hubctl");
    char *out = NULL;
    char *all_output = calloc(1, 1);
#define RUN(expect, ...)                                                                   \
    do {                                                                                   \
        char *argv_[] = {(char *)hubctl, __VA_ARGS__, NULL};                               \
        int rc_ = run(&out, argv_);                                                        \
        ck_assert_msg(rc_ == (expect), "hubctl %s %s exited %d:\n%s", argv_[1], argv_[2], rc_, \
                      out ? out : "");                                                     \
        all_output = realloc(all_output, strlen(all_output) + strlen(out ? out : "") + 1); \
        strcat(all_output, out ? out : "");                                                \
    } while (0)

    RUN(0, "keygen", DANCU, keys);
    free(out);
    RUN(0, "keygen", HOTICH, keys);
    free(out);
    RUN(0, "keygen", "VN/GOV/T/OLD", keys);
    free(out);
    RUN(0, "ca", "init", ca, "--days", "3650", "--name", "Test CA");
    ck_assert_msg(strstr(out, "ca/ca.key (mode 0600"), "%s", out);
    free(out);
    RUN(1, "ca", "init", ca);
    ck_assert_msg(strstr(out, "never overwritten"), "%s", out);
    free(out);
    RUN(0, "cert", "issue", DANCU, "--ca", ca, "--pub", pub, "--days", "90");
    ck_assert_msg(strstr(out, "serial 01") && strstr(out, crt), "%s", out);
    free(out);
    /* The .pub must be the member's own, and never a .secret. */
    RUN(1, "cert", "issue", DANCU, "--ca", ca, "--pub", other_pub);
    ck_assert_msg(strstr(out, "holds the keys of " HOTICH ", not of " DANCU), "%s", out);
    free(out);
    RUN(1, "cert", "issue", DANCU, "--ca", ca, "--pub", secret);
    ck_assert_msg(strstr(out, "holds secret keys"), "%s", out);
    free(out);
    RUN(2, "cert", "issue", "VN/GOV/BAD", "--ca", ca, "--pub", pub);
    free(out);
    RUN(2, "cert", "issue", DANCU, "--ca", ca, "--pub", pub, "--days", "0");
    free(out);
    RUN(0, "cert", "issue", HOTICH, "--ca", ca, "--pub", other_pub);
    free(out);
    RUN(0, "cert", "issue", "VN/GOV/T/OLD", "--ca", ca, "--pub", old_pub, "--not-before",
        "2020-01-01", "--not-after", "2020-12-31");
    free(out);

    RUN(0, "cert", "show", crt);
    ck_assert_msg(strstr(out, "member:     " DANCU) && strstr(out, "issuer:     Test CA") &&
                      strstr(out, "well-formed (not checked"),
                  "%s", out);
    free(out);
    RUN(0, "cert", "show", crt, "--ca", ca);
    ck_assert_msg(strstr(out, "status:     valid"), "%s", out);
    free(out);
    RUN(4, "cert", "verify", "--ca", ca, "--warn-days", "100");
    ck_assert_msg(strstr(out, "valid          " DANCU) && strstr(out, "valid          " HOTICH) &&
                      strstr(out, "expired        VN/GOV/T/OLD") &&
                      strstr(out, "warning: " DANCU "'s certificate") &&
                      !strstr(out, "warning: " HOTICH) && strstr(out, "2 valid, 1 refused"),
                  "%s", out);
    free(out);

    RUN(0, "cert", "revoke", DANCU, "--ca", ca);
    ck_assert_msg(strstr(out, "revoked 1 certificate of " DANCU), "%s", out);
    free(out);
    RUN(1, "cert", "revoke", DANCU, "--ca", ca);
    free(out);
    RUN(4, "cert", "show", crt, "--ca", ca);
    ck_assert_msg(strstr(out, "status:     revoked: revoked at"), "%s", out);
    free(out);
    /* The files a hub holds, named one by one. */
    char ca_cert[PATH_MAX], crl[PATH_MAX], certs[PATH_MAX];
    snprintf(ca_cert, sizeof ca_cert, "%s/ca/ca.crt", ca);
    snprintf(crl, sizeof crl, "%s/ca/crl.pem", ca);
    snprintf(certs, sizeof certs, "%s/certs", ca);
    RUN(4, "cert", "verify", "--ca-cert", ca_cert, "--crl", crl, "--certs", certs);
    ck_assert_msg(strstr(out, "revoked        " DANCU) && strstr(out, "1 valid, 2 refused"),
                  "%s", out);
    free(out);
    RUN(0, "ca", "crl", ca, "--days", "7");
    free(out);
    RUN(2, "cert", "frobnicate");
    free(out);
    RUN(2, "ca", "init");
    free(out);

    /* The CA's private key is 0600 and no command ever printed it. */
    char keyfile[PATH_MAX];
    snprintf(keyfile, sizeof keyfile, "%s/ca/ca.key", ca);
    struct stat st;
    ck_assert_int_eq(stat(keyfile, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    char *key = read_all(keyfile);
    char body[41];
    const char *begin = strchr(key, '\n');
    ck_assert_ptr_nonnull(begin);
    snprintf(body, sizeof body, "%s", begin + 1);
    ck_assert(!strstr(all_output, "PRIVATE KEY"));
    ck_assert_msg(!strstr(all_output, "Sanitizer") && !strstr(all_output, "runtime error"), "%s",
                  all_output);
    ck_assert(!strstr(all_output, body));
    free(key);
    free(all_output);
#undef RUN
    tk_rmrf(root);
}
END_TEST

/* The CRL rollback guard: a newer CRL is accepted and remembered, the same
 * one again passes, an older one (or one with the remembered number and
 * other contents) is refused naming both numbers; the state survives in
 * its file (what a restart reads). */
START_TEST(test_crl_rollback_guard)
{
    fx_t fx;
    fx_init(&fx);
    char err[HUB_ERRMSG_MAX], state[PATH_MAX], old_crl[PATH_MAX];
    snprintf(state, sizeof state, "%s/state/crl.state", fx.root);
    hub_keypair_t kp;
    hub_keypair_generate(DANCU, &kp);
    fx_issue(&fx, &kp, 0, 0, NULL, NULL);
    hub_certdir_t *cd = fx_load(&fx, fx.now);
    hub_crl_id_t first;
    hub_certdir_crl_id(cd, &first);
    hub_certdir_destroy(&cd);
    ck_assert_str_eq(first.number, "01");
    /* First start: remembered (the state directory is made). */
    ck_assert_msg(hub_crl_state_advance(state, fx.crl, &first, fx.now, err, sizeof err) == 0,
                  "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(state, &st), 0);
    ck_assert_int_eq(st.st_mode & 077, 0);
    /* The same CRL again (a restart, a SIGHUP): fine. */
    ck_assert_int_eq(hub_crl_state_advance(state, fx.crl, &first, fx.now, err, sizeof err), 0);
    /* Keep a copy of the old CRL, then revoke: number 02. */
    snprintf(old_crl, sizeof old_crl, "%s/old-crl.pem", fx.root);
    char *text = tk_read_file(fx.crl);
    tk_write_file(old_crl, text);
    free(text);
    ck_assert_int_eq(hub_ca_revoke(fx.ca, DANCU, NULL, fx.now + 1000000, 0, NULL, err, sizeof err),
                     0);
    cd = fx_load(&fx, fx.now + 2000000);
    hub_crl_id_t second;
    hub_certdir_crl_id(cd, &second);
    hub_certdir_destroy(&cd);
    ck_assert_str_eq(second.number, "02");
    ck_assert_int_eq(hub_crl_state_advance(state, fx.crl, &second, fx.now, err, sizeof err), 0);
    text = tk_read_file(state);
    ck_assert_ptr_nonnull(strstr(text, "crl_number = 02"));
    free(text);
    /* The old CRL put back: refused, naming the file, both numbers, the fix. */
    ck_assert_int_eq(hub_crl_state_advance(state, old_crl, &first, fx.now, err, sizeof err),
                     HUB_EINVAL);
    ck_assert_msg(strstr(err, old_crl) && strstr(err, "number 01") && strstr(err, "number 02") &&
                      strstr(err, state) && strstr(err, "hubctl ca crl"),
                  "%s", err);
    /* The same number, other contents. */
    hub_crl_id_t forged = second;
    forged.sha256[0] ^= 1;
    ck_assert_int_eq(hub_crl_state_advance(state, fx.crl, &forged, fx.now, err, sizeof err),
                     HUB_EINVAL);
    ck_assert_msg(strstr(err, "number 02") && strstr(err, "other contents"), "%s", err);
    /* Without numbers, the issue time orders them. */
    hub_crl_id_t plain = first;
    plain.number[0] = '\0';
    plain.this_update_us = second.this_update_us - 1000000;
    ck_assert_int_eq(hub_crl_state_advance(state, fx.crl, &plain, fx.now, err, sizeof err),
                     HUB_EINVAL);
    /* A number given as 0x10 beats 0F (compared as numbers, not text). */
    hub_crl_id_t big = second;
    snprintf(big.number, sizeof big.number, "10");
    big.sha256[1] ^= 1;
    ck_assert_int_eq(hub_crl_state_advance(state, fx.crl, &big, fx.now, err, sizeof err), 0);
    hub_crl_id_t f = big;
    snprintf(f.number, sizeof f.number, "0F");
    f.sha256[2] ^= 1;
    ck_assert_int_eq(hub_crl_state_advance(state, fx.crl, &f, fx.now, err, sizeof err),
                     HUB_EINVAL);
    /* A damaged state file is refused, saying how to recover. */
    tk_write_file(state, "crl_number = zz\n");
    ck_assert_int_eq(hub_crl_state_advance(state, fx.crl, &second, fx.now, err, sizeof err),
                     HUB_EPARSE);
    ck_assert_msg(strstr(err, "delete it"), "%s", err);
    /* No state path: the guard is off. */
    ck_assert_int_eq(hub_crl_state_advance("", fx.crl, &first, fx.now, err, sizeof err), 0);
    hub_keypair_wipe(&kp);
    tk_rmrf(fx.root);
}
END_TEST

TK_MAIN("cert", TK_CASE("cert", NULL, NULL, 120, test_issue_and_load, test_validity, test_refusals,
                        test_keydir_from_entries, test_empty_certs_dir, test_hubctl_ca_and_cert,
                        test_crl_rollback_guard))
