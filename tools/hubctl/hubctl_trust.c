/* hubctl ca / cert / policy — see hubctl_trust.h. */
#include "hubctl_trust.h"
#include "hubctl_opts.h"
#include "hub_cert.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_keys.h"
#include "hub_policy.h"
#include "hub_wire.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { T_OK = 0, T_FAIL = 1, T_USAGE = 2, T_REFUSED = 4 };

void hubctl_trust_usage(FILE *out)
{
    fprintf(out,
            "  ca init DIR [--days N] [--name TEXT]\n"
            "                             make the member CA: DIR/ca/{ca.key (0600), ca.crt,\n"
            "                             serial, index, crl.pem} and DIR/certs/\n"
            "  ca crl DIR [--days N]      re-sign DIR/ca/crl.pem (nextUpdate in N days, 30)\n"
            "  cert issue MEMBER-ID --ca DIR --pub FILE.pub [--days N] [--out FILE]\n"
            "                             certify a member's keys: DIR/certs/<id>.crt\n"
            "  cert revoke MEMBER-ID --ca DIR [--serial HEX]\n"
            "                             revoke its certificates and re-sign the CRL\n"
            "  cert show FILE [--ca DIR] [--at DATE]\n"
            "                             print a certificate; with --ca, whether the hub admits\n"
            "                             its key\n"
            "  cert verify --ca DIR [--certs DIR] [--warn-days N] [--at DATE]\n"
            "                             check every certificate as hubd does (or --ca-cert FILE\n"
            "                             --crl FILE --certs DIR, the files a hub holds)\n"
            "  policy check CONSUMER PROVIDER/SERVICE/VERSION --policy FILE [--at DATE]\n"
            "                             may CONSUMER call it? exit 0 allowed, 4 denied\n"
            "  policy allowed CONSUMER --policy FILE [--at DATE]\n"
            "                             the agreements CONSUMER may use now\n");
}

bool hubctl_trust_is_command(const char *cmd)
{
    return cmd && (!strcmp(cmd, "ca") || !strcmp(cmd, "cert") || !strcmp(cmd, "policy"));
}

/* ------------------------------------------------------------------------ */
/* Arguments                                                                 */

typedef struct {
    const char *positional[2];
    int n_positional;
    const char *ca, *ca_cert, *crl, *certs, *pub, *out, *name, *serial, *policy;
    const char *at, *not_before, *not_after;
    unsigned long days, warn_days;
    bool has_days, has_warn_days;
} t_args_t;

static bool t_number(const char *text, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v = text && *text ? strtoul(text, &end, 10) : 0;
    if (!text || !*text || *end || v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

/* Parses argv into a; `what` prefixes messages ("hubctl cert issue"). */
static int t_parse(const char *what, int argc, char **argv, t_args_t *a)
{
    memset(a, 0, sizeof *a);
    const ctl_opt_t opts[] = {{"--ca", &a->ca},
                              {"--ca-cert", &a->ca_cert},
                              {"--crl", &a->crl},
                              {"--certs", &a->certs},
                              {"--pub", &a->pub},
                              {"--out", &a->out},
                              {"--name", &a->name},
                              {"--serial", &a->serial},
                              {"--policy", &a->policy},
                              {"--at", &a->at},
                              {"--not-before", &a->not_before}, /* hidden: tests and renewals */
                              {"--not-after", &a->not_after},
                              {NULL, NULL}};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = ctl_opt_find(opts, arg);
        if (slot) {
            if (!val) {
                fprintf(stderr, "%s: %s needs a value\n", what, arg);
                return T_USAGE;
            }
            *slot = val;
            i++;
        } else if (!strcmp(arg, "--days") || !strcmp(arg, "--warn-days")) {
            bool warn = arg[2] == 'w';
            if (!t_number(val, 36500, warn ? &a->warn_days : &a->days)) {
                fprintf(stderr, "%s: %s needs a number of days from 1 to 36500\n", what, arg);
                return T_USAGE;
            }
            *(warn ? &a->has_warn_days : &a->has_days) = true;
            i++;
        } else if (arg[0] != '-' && a->n_positional < 2) {
            a->positional[a->n_positional++] = arg;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s' (see hubctl --help)\n", what, arg);
            return T_USAGE;
        }
    }
    return T_OK;
}

/* --at DATE (or now), in the policy file's DATE forms. */
static int t_when(const char *what, const char *text, uint64_t *out)
{
    *out = hub_now_us();
    if (!text || !strcmp(text, "now"))
        return T_OK;
    if (hub_policy_parse_date(text, 0, false, out) != 0) {
        fprintf(stderr, "%s: '%s' is not a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ\n",
                what, text);
        return T_USAGE;
    }
    return T_OK;
}

static void t_time(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "?");
}

/* The CA certificate, CRL and certificate directory: from --ca DIR, each
 * overridable by --ca-cert, --crl, --certs. */
typedef struct {
    char ca_cert[PATH_MAX], crl[PATH_MAX], certs[PATH_MAX];
} t_trust_paths_t;

static bool t_trust_paths(const t_args_t *a, t_trust_paths_t *p)
{
    memset(p, 0, sizeof *p);
    if (a->ca) {
        snprintf(p->ca_cert, sizeof p->ca_cert, "%s/ca/ca.crt", a->ca);
        snprintf(p->crl, sizeof p->crl, "%s/ca/crl.pem", a->ca);
        snprintf(p->certs, sizeof p->certs, "%s/certs", a->ca);
    }
    if (a->ca_cert)
        snprintf(p->ca_cert, sizeof p->ca_cert, "%s", a->ca_cert);
    if (a->crl)
        snprintf(p->crl, sizeof p->crl, "%s", a->crl);
    if (a->certs)
        snprintf(p->certs, sizeof p->certs, "%s", a->certs);
    return p->ca_cert[0] && p->crl[0];
}

/* ------------------------------------------------------------------------ */
/* ca                                                                        */

static int t_ca(const char *sub, t_args_t *a)
{
    const char *dir = a->positional[0];
    char err[HUB_ERRMSG_MAX];
    if (!strcmp(sub, "init")) {
        if (!dir || a->n_positional != 1) {
            fprintf(stderr, "hubctl ca init: usage: hubctl ca init DIR [--days N] [--name TEXT]\n");
            return T_USAGE;
        }
        if (hub_ca_init(dir, a->name, (unsigned)a->days, hub_now_us(), err, sizeof err) != 0) {
            fprintf(stderr, "hubctl ca init: %s\n", err);
            return T_FAIL;
        }
        printf("CA made in %s\n"
               "  private key: %s/ca/ca.key (mode 0600; keep it off the hub, back it up offline)\n"
               "  certificate: %s/ca/ca.crt, revocation list: %s/ca/crl.pem (give both to hubd)\n"
               "  next: hubctl cert issue MEMBER-ID --ca %s --pub MEMBER.pub\n",
               dir, dir, dir, dir, dir);
        return T_OK;
    }
    if (!strcmp(sub, "crl")) {
        if (!dir || a->n_positional != 1) {
            fprintf(stderr, "hubctl ca crl: usage: hubctl ca crl DIR [--days N]\n");
            return T_USAGE;
        }
        if (hub_ca_write_crl(dir, hub_now_us(), (unsigned)a->days, err, sizeof err) != 0) {
            fprintf(stderr, "hubctl ca crl: %s\n", err);
            return T_FAIL;
        }
        printf("re-signed %s/ca/crl.pem (next update in %lu days); copy it to the hub and send "
               "hubd SIGHUP\n",
               dir, a->days ? a->days : (unsigned long)HUB_CRL_DEFAULT_DAYS);
        return T_OK;
    }
    fprintf(stderr, "hubctl ca: expected 'init' or 'crl' (see hubctl --help)\n");
    return T_USAGE;
}

/* ------------------------------------------------------------------------ */
/* cert                                                                      */

static void t_print_cert(const hub_cert_info_t *c)
{
    char from[32], until[32];
    t_time(c->not_before_us, from);
    t_time(c->not_after_us, until);
    printf("member:     %s\n", c->keys.member_id[0] ? c->keys.member_id : "?");
    printf("serial:     %s\n", c->serial[0] ? c->serial : "?");
    printf("issuer:     %s\n", c->issuer[0] ? c->issuer : "?");
    printf("valid:      %s to %s\n", from, until);
    printf("curve key:  %s\n", c->keys.curve_public[0] ? c->keys.curve_public : "?");
    if (c->keys.has_sign) {
        printf("sign key:   ");
        for (int i = 0; i < 32; i++)
            printf("%02x", c->keys.sign_public[i]);
        printf("\n");
    } else {
        printf("sign key:   ?\n");
    }
}

static int t_cert_issue(const t_args_t *a)
{
    const char *member = a->positional[0];
    if (!member || a->n_positional != 1 || !a->ca || !a->pub) {
        fprintf(stderr, "hubctl cert issue: usage: hubctl cert issue MEMBER-ID --ca DIR --pub "
                        "FILE.pub [--days N] [--out FILE]\n");
        return T_USAGE;
    }
    const char *problem = hub_member_id_problem(member);
    if (problem) {
        fprintf(stderr, "hubctl cert issue: '%s': %s\n", member, problem);
        return T_USAGE;
    }
    hub_cert_validity_t validity = {.days = (unsigned)a->days};
    if ((a->not_before && hub_policy_parse_date(a->not_before, 0, false,
                                                &validity.not_before_us) != 0) ||
        (a->not_after && hub_policy_parse_date(a->not_after, 0, false,
                                               &validity.not_after_us) != 0)) {
        fprintf(stderr, "hubctl cert issue: --not-before/--not-after take YYYY-MM-DD or "
                        "YYYY-MM-DDTHH:MM:SSZ\n");
        return T_USAGE;
    }
    char err[HUB_ERRMSG_MAX], path[PATH_MAX];
    hub_keypair_t kp;
    if (hub_keyfile_read(a->pub, &kp, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl cert issue: %s\n", err);
        return T_FAIL;
    }
    int st = T_OK;
    if (kp.has_secret) {
        fprintf(stderr, "hubctl cert issue: %s holds secret keys; certify the member's .pub "
                        "file (the secret never leaves the member)\n", a->pub);
        st = T_FAIL;
    } else if (strcmp(kp.member_id, member) != 0) {
        fprintf(stderr, "hubctl cert issue: %s holds the keys of %s, not of %s; pass that "
                        "member's .pub file\n", a->pub, kp.member_id, member);
        st = T_FAIL;
    }
    hub_cert_info_t issued;
    if (st == T_OK && hub_ca_issue(a->ca, &kp, &validity, hub_now_us(), a->out, &issued, path,
                                   err, sizeof err) != 0) {
        fprintf(stderr, "hubctl cert issue: %s\n", err);
        st = T_FAIL;
    }
    hub_keypair_wipe(&kp);
    if (st != T_OK)
        return st;
    char until[32];
    t_time(issued.not_after_us, until);
    printf("issued %s (serial %s) for %s, valid until %s\n"
           "  copy it into the hub's certificate directory and send hubd SIGHUP\n",
           path, issued.serial, member, until);
    return T_OK;
}

static int t_cert_revoke(const t_args_t *a)
{
    const char *member = a->positional[0];
    if (!member || a->n_positional != 1 || !a->ca) {
        fprintf(stderr, "hubctl cert revoke: usage: hubctl cert revoke MEMBER-ID --ca DIR "
                        "[--serial HEX]\n");
        return T_USAGE;
    }
    char err[HUB_ERRMSG_MAX];
    size_t n = 0;
    int rc = hub_ca_revoke(a->ca, member, a->serial, hub_now_us(), (unsigned)a->days, &n, err,
                           sizeof err);
    if (rc != 0) {
        fprintf(stderr, "hubctl cert revoke: %s\n", err);
        return T_FAIL;
    }
    printf("revoked %zu certificate%s of %s; %s/ca/crl.pem re-signed: copy it to the hub and "
           "send hubd SIGHUP\n",
           n, n == 1 ? "" : "s", member, a->ca);
    return T_OK;
}

static int t_cert_show(const t_args_t *a)
{
    const char *file = a->positional[0];
    if (!file || a->n_positional != 1) {
        fprintf(stderr, "hubctl cert show: usage: hubctl cert show FILE [--ca DIR] [--at DATE]\n");
        return T_USAGE;
    }
    uint64_t at;
    int st = t_when("hubctl cert show", a->at, &at);
    if (st != T_OK)
        return st;
    t_trust_paths_t p;
    bool check = t_trust_paths(a, &p);
    if (!check && (a->ca_cert || a->crl)) {
        fprintf(stderr, "hubctl cert show: give --ca DIR, or both --ca-cert and --crl\n");
        return T_USAGE;
    }
    hub_cert_info_t c;
    char err[HUB_ERRMSG_MAX];
    int rc = check ? hub_cert_check_file(p.ca_cert, p.crl, file, at, &c, err, sizeof err)
                   : hub_cert_read(file, &c, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "hubctl cert show: %s\n", err);
        return T_FAIL;
    }
    printf("file:       %s\n", file);
    t_print_cert(&c);
    if (c.status != HUB_CERT_VALID) {
        printf("status:     %s: %s\n", hub_cert_status_name(c.status), c.reason);
        return T_REFUSED;
    }
    printf("status:     %s\n", check ? "valid (the hub admits this key)"
                                     : "well-formed (not checked against a CA: pass --ca DIR)");
    return T_OK;
}

typedef struct {
    uint64_t now_us;
} t_expiring_ctx_t;

static int t_on_expiring(const hub_cert_info_t *c, void *user)
{
    const t_expiring_ctx_t *ctx = user;
    char until[32];
    t_time(c->not_after_us, until);
    unsigned long days = (unsigned long)((c->not_after_us - ctx->now_us) / 86400000000ull);
    if (c->keys.member_id[0])
        printf("warning: %s's certificate %s expires at %s (in %lu days); renew it with "
               "'hubctl cert issue'\n",
               c->keys.member_id, c->file, until, days);
    else
        printf("warning: the CA certificate %s expires at %s (in %lu days); every member "
               "certificate stops working then\n",
               c->file, until, days);
    return 0;
}

static int t_cert_verify(const t_args_t *a)
{
    t_trust_paths_t p;
    if (a->n_positional || !t_trust_paths(a, &p) || !p.certs[0]) {
        fprintf(stderr, "hubctl cert verify: usage: hubctl cert verify --ca DIR [--certs DIR] "
                        "[--warn-days N] [--at DATE]\n");
        return T_USAGE;
    }
    uint64_t at;
    int st = t_when("hubctl cert verify", a->at, &at);
    if (st != T_OK)
        return st;
    hub_certdir_t *cd = NULL;
    char err[HUB_ERRMSG_MAX];
    if (hub_certdir_load(p.ca_cert, p.crl, p.certs, at, &cd, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl cert verify: %s\n", err);
        return T_FAIL;
    }
    size_t refused = 0;
    for (size_t i = 0; i < hub_certdir_count(cd); i++) {
        const hub_cert_info_t *c = hub_certdir_at(cd, i);
        char until[32];
        t_time(c->not_after_us, until);
        if (c->status == HUB_CERT_VALID) {
            printf("valid          %-40s %s (serial %s, until %s)\n", c->keys.member_id, c->file,
                   c->serial, until);
        } else {
            refused++;
            printf("%-14s %-40s %s: %s\n", hub_cert_status_name(c->status),
                   c->keys.member_id[0] ? c->keys.member_id : "?", c->file, c->reason);
        }
    }
    uint64_t crl_next = 0;
    hub_certdir_crl_times(cd, NULL, &crl_next);
    if (crl_next && crl_next <= at) {
        char when[32];
        t_time(crl_next, when);
        printf("warning: the CRL's next update was due at %s; re-sign it with 'hubctl ca crl' "
               "(hubd still uses it)\n", when);
    }
    t_expiring_ctx_t ctx = {at};
    hub_certdir_visit_expiring(cd, at, (uint64_t)(a->has_warn_days ? a->warn_days : 30) *
                                           86400000000ull,
                               t_on_expiring, &ctx);
    printf("%zu valid, %zu refused\n", hub_certdir_valid_count(cd), refused);
    hub_certdir_destroy(&cd);
    return refused ? T_REFUSED : T_OK;
}

static int t_cert(const char *sub, t_args_t *a)
{
    if (!strcmp(sub, "issue"))
        return t_cert_issue(a);
    if (!strcmp(sub, "revoke"))
        return t_cert_revoke(a);
    if (!strcmp(sub, "show"))
        return t_cert_show(a);
    if (!strcmp(sub, "verify"))
        return t_cert_verify(a);
    fprintf(stderr, "hubctl cert: expected 'issue', 'revoke', 'show' or 'verify' (see hubctl "
                    "--help)\n");
    return T_USAGE;
}

/* ------------------------------------------------------------------------ */
/* policy                                                                    */

static int t_on_allowed(const hub_policy_rule_t *r, void *user)
{
    const char *file = user;
    printf("%s/%s", r->provider, r->service);
    if (r->until_text[0])
        printf("  until %s", r->until_text);
    if (r->purpose[0])
        printf("  purpose \"%s\"", r->purpose);
    printf("  (%s:%u)\n", file, r->line);
    return 0;
}

static int t_policy(const char *sub, t_args_t *a)
{
    bool is_check = !strcmp(sub, "check"), is_allowed = !strcmp(sub, "allowed");
    if ((!is_check && !is_allowed) || !a->policy || a->n_positional != (is_check ? 2 : 1)) {
        fprintf(stderr, "hubctl policy: usage: hubctl policy check CONSUMER "
                        "PROVIDER/SERVICE/VERSION --policy FILE [--at DATE]\n"
                        "                      hubctl policy allowed CONSUMER --policy FILE "
                        "[--at DATE]\n");
        return T_USAGE;
    }
    const char *consumer = a->positional[0];
    const char *problem = hub_member_id_problem(consumer);
    if (problem) {
        fprintf(stderr, "hubctl policy: consumer '%s': %s\n", consumer, problem);
        return T_USAGE;
    }
    char provider[HUB_MEMBER_ID_MAX + 1] = "";
    const char *service = NULL;
    if (is_check) {
        /* PROVIDER is the first four parts of the target. */
        const char *target = a->positional[1], *slash = NULL;
        int slashes = 0;
        for (const char *q = target; *q && !slash; q++)
            if (*q == '/' && ++slashes == 4)
                slash = q;
        if (slash && (size_t)(slash - target) <= HUB_MEMBER_ID_MAX)
            snprintf(provider, sizeof provider, "%.*s", (int)(slash - target), target);
        service = slash ? slash + 1 : NULL;
        if (!service || !hub_member_id_valid(provider) || !hub_service_valid(service)) {
            fprintf(stderr, "hubctl policy check: '%s' is not PROVIDER/SERVICE/VERSION, e.g. "
                            "VN/GOV/BCA/CSDLQGDC/citizen.lookup/v1\n", target);
            return T_USAGE;
        }
    }
    uint64_t at;
    int st = t_when("hubctl policy", a->at, &at);
    if (st != T_OK)
        return st;
    hub_policy_t *policy = NULL;
    char err[HUB_ERRMSG_MAX];
    if (hub_policy_load(a->policy, &policy, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl policy: %s\n", err);
        return T_FAIL;
    }
    if (is_allowed) {
        size_t n = hub_policy_visit_allowed(policy, consumer, at, t_on_allowed,
                                            (void *)hub_policy_name(policy));
        if (n == 0)
            printf("%s may call nothing: no agreement in %s names it as consumer now\n",
                   consumer, hub_policy_name(policy));
        hub_policy_destroy(&policy);
        return n ? T_OK : T_REFUSED;
    }
    hub_policy_decision_t d;
    hub_policy_check(policy, consumer, provider, service, at, &d);
    if (d.allowed) {
        printf("allowed (%s:%u%s%s)\n", d.file, d.line, d.purpose[0] ? ", purpose: " : "",
               d.purpose);
        st = T_OK;
    } else {
        printf("denied: %s\n", d.reason);
        st = T_REFUSED;
    }
    hub_policy_destroy(&policy);
    return st;
}

int hubctl_trust_main(const char *cmd, int argc, char **argv)
{
    int (*run)(const char *sub, t_args_t *a) = !strcmp(cmd, "ca")       ? t_ca
                                               : !strcmp(cmd, "cert")   ? t_cert
                                               : !strcmp(cmd, "policy") ? t_policy
                                                                        : NULL;
    if (!run)
        return T_USAGE;
    /* Messages name the command, and for cert its subcommand too. */
    const char *sub = argc > 0 ? argv[0] : "";
    char what[64];
    if (run == t_cert)
        snprintf(what, sizeof what, "hubctl cert %.20s", sub);
    else
        snprintf(what, sizeof what, "hubctl %s", cmd);
    t_args_t a;
    int st = t_parse(what, argc - 1, argv + 1, &a);
    return st != T_OK ? st : run(sub, &a);
}
