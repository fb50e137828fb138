#include "hub_policy.h"
#include "hub_error.h"
#include "hub_fsguard.h"
#include "hub_id.h"
#include "hub_map.h"
#include "hub_vec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* How much of the target a rule covers; a larger value is more specific. */
typedef enum {
    HUB__COVER_PROVIDER = 0, /* every service of the provider */
    HUB__COVER_SERVICE = 1,  /* every version of one service */
    HUB__COVER_VERSION = 2,  /* PROVIDER/SERVICE/VERSION */
} policy__cover_t;

typedef struct {
    hub_policy_rule_t pub;
    policy__cover_t cover;
    size_t service_name_len; /* bytes of SERVICE in pub.service (HUB__COVER_SERVICE) */
    char text[];             /* the strings pub points to */
} policy__rule_t;

/* The agreements of one (consumer, provider) pair, or of one consumer. */
typedef struct {
    policy__rule_t **rules;
    size_t count, cap;
} policy__bucket_t;

/* Which fields of a limit line were given. */
enum {
    HUB__LIMIT_RATE = 1 << 0,
    HUB__LIMIT_BYTES = 1 << 1,
    HUB__LIMIT_SEND = 1 << 2,
    HUB__LIMIT_RECEIVE = 1 << 3,
};

typedef struct {
    hub_policy_limits_t values; /* only the fields in `set` mean anything */
    unsigned set;               /* HUB__LIMIT_* */
} policy__limit_t;

struct hub_policy {
    char name[256];         /* file name without directories, for messages */
    policy__rule_t **rules; /* file order */
    size_t count, cap;
    hub_map_t *by_pair;     /* "CONSUMER PROVIDER" -> policy__bucket_t */
    hub_map_t *by_consumer; /* CONSUMER -> policy__bucket_t */
    hub_map_t *limits;      /* MEMBER -> policy__limit_t (its `limit` line) */
};

#define HUB__PAIR_KEY_MAX (2 * HUB_MEMBER_ID_MAX + 2)
#define HUB__DATE_TEXT_MAX 40
#define HUB__MAX_WORDS 16
#define HUB__SYNTAX \
    "'allow CONSUMER -> PROVIDER/SERVICE/VERSION [from DATE] [until DATE] [purpose \"TEXT\"]'"
#define HUB__DATE_FORMS "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (or +07:00 instead of Z)"
#define HUB__LIMIT_SYNTAX "'limit MEMBER [rate N/s] [bytes SIZE/s] [send N SIZE] [receive N SIZE]'"
#define HUB__LIMIT_EXAMPLE                                                                    \
    "e.g. 'limit VN/GOV/HN-VP/MOTCUA rate 500/s bytes 4MiB/s send 20000 256MiB receive 100000 " \
    "1GiB'"
#define HUB__LINE_KINDS                                                                       \
    "a line is " HUB__SYNTAX ", " HUB__LIMIT_SYNTAX " or 'timezone +07:00'"

/* ------------------------------------------------------------------------ */
/* Dates                                                                     */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t policy__days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool policy__digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* "Z", "UTC", "+HH:MM" or "-HH:MM" -> seconds east of UTC. */
static int policy__parse_offset(const char *text, int *out_s)
{
    if (!strcmp(text, "Z") || !strcmp(text, "UTC")) {
        *out_s = 0;
        return 0;
    }
    int hh, mm;
    if (strlen(text) != 6 || (text[0] != '+' && text[0] != '-') || text[3] != ':' ||
        !policy__digits(text + 1, 2, &hh) || !policy__digits(text + 4, 2, &mm) || hh > 14 ||
        mm > 59)
        return HUB_EINVAL;
    *out_s = (text[0] == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
    return 0;
}

int hub_policy_parse_date(const char *text, int tz_offset_s, bool until_end, uint64_t *out_us)
{
    if (!text || !out_us)
        return HUB_EINVAL;
    int y, mo, d, h = 0, mi = 0, s = 0;
    size_t len = strlen(text);
    if (len < 10 || !policy__digits(text, 4, &y) || text[4] != '-' ||
        !policy__digits(text + 5, 2, &mo) || text[7] != '-' || !policy__digits(text + 8, 2, &d))
        return HUB_EINVAL;
    bool bare = len == 10;
    if (!bare) {
        if (len < 20 || (text[10] != 'T' && text[10] != 't') || !policy__digits(text + 11, 2, &h) ||
            text[13] != ':' || !policy__digits(text + 14, 2, &mi) || text[16] != ':' ||
            !policy__digits(text + 17, 2, &s) || h > 23 || mi > 59 || s > 59)
            return HUB_EINVAL;
        const char *zone = text + 19;
        if (!strcmp(zone, "z"))
            zone = "Z";
        if (!strcmp(zone, "UTC") || policy__parse_offset(zone, &tz_offset_s) != 0)
            return HUB_EINVAL;
    }
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap))
        return HUB_EINVAL;
    int64_t secs =
        policy__days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s;
    if (bare && until_end)
        secs += 86400;
    secs -= tz_offset_s;
    if (secs < 0)
        return HUB_EINVAL;
    *out_us = (uint64_t)secs * 1000000u;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Building                                                                  */

static int policy__bucket_add(hub_map_t *map, const char *key, policy__rule_t *rule)
{
    policy__bucket_t *b = hub_map_get(map, key);
    if (!b) {
        if (!(b = calloc(1, sizeof *b)))
            return HUB_ENOMEM;
        if (hub_map_put(map, key, b) != 0) {
            free(b);
            return HUB_ENOMEM;
        }
    }
    if (HUB_VEC_RESERVE(b->rules, b->count, b->cap, 2) != 0)
        return HUB_ENOMEM;
    b->rules[b->count++] = rule;
    return 0;
}

static void policy__bucket_free(void *value)
{
    policy__bucket_t *b = value;
    free(b->rules);
    free(b);
}

void hub_policy_destroy(hub_policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_policy_t *self = *self_p;
    hub_map_destroy_all(&self->by_pair, policy__bucket_free);
    hub_map_destroy_all(&self->by_consumer, policy__bucket_free);
    hub_map_destroy_all(&self->limits, free);
    for (size_t i = 0; i < self->count; i++)
        free(self->rules[i]);
    free(self->rules);
    free(self);
    *self_p = NULL;
}

static void policy__pair_key(const char *consumer, const char *provider, char *out)
{
    size_t c = strlen(consumer), p = strlen(provider);
    memcpy(out, consumer, c);
    out[c] = ' ';
    memcpy(out + c + 1, provider, p + 1);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

typedef struct {
    const char *name;
    unsigned line;
    char *err;
    size_t err_size;
    int tz_offset_s;
    hub_map_t *seen; /* duplicate detection: rule signature -> policy__rule_t */
} policy__parser_t;

typedef struct {
    char *text;
    bool quoted;
} policy__word_t;

static int policy__fail(policy__parser_t *ps, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int policy__fail(policy__parser_t *ps, int code, const char *fmt, ...)
{
    int n = snprintf(ps->err, ps->err_size, "%s:%u: ", ps->name, ps->line);
    if (n >= 0 && (size_t)n < ps->err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err + n, ps->err_size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Splits a line (modified in place) into words; a "quoted" word keeps its
 * spaces, with \" and \\ unescaped. '#' outside quotes starts a comment. */
static int policy__split(policy__parser_t *ps, char *line, policy__word_t *words, size_t *n_out)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            break;
        if (n == HUB__MAX_WORDS)
            return policy__fail(ps, HUB_EPARSE, "too many words; " HUB__LINE_KINDS);
        if (*p == '"') {
            char *dst = ++p, *start = p;
            for (;;) {
                if (!*p)
                    return policy__fail(
                        ps, HUB_EPARSE,
                        "a quoted text has no closing '\"'; write purpose \"TEXT\"");
                if (*p == '"')
                    break;
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                    p++;
                else if ((unsigned char)*p < 0x20)
                    return policy__fail(ps, HUB_EPARSE, "a quoted text holds a control character");
                *dst++ = *p++;
            }
            p++;
            if (*p && *p != ' ' && *p != '\t' && *p != '#')
                return policy__fail(ps, HUB_EPARSE,
                                    "a closing '\"' must be followed by a space or the line's end");
            *dst = '\0';
            words[n++] = (policy__word_t){start, true};
        } else {
            char *start = p;
            while (*p && *p != ' ' && *p != '\t')
                p++;
            bool more = *p != '\0';
            *p = '\0';
            words[n++] = (policy__word_t){start, false};
            if (more)
                p++;
        }
    }
    *n_out = n;
    return 0;
}

static int policy__check_member(policy__parser_t *ps, const char *role, const char *id)
{
    if (strchr(id, '*'))
        return policy__fail(ps, HUB_EPARSE,
                            "'%s': '*' cannot stand for a %s or a part of one; agreements name "
                            "both parties (deny by default), so write one 'allow' line per %s",
                            id, role, role);
    const char *problem = hub_member_id_problem(id);
    if (problem)
        return policy__fail(ps, HUB_EPARSE, "%s '%s': %s", role, id, problem);
    return 0;
}

/* Splits a target (PROVIDER/SERVICE/VERSION, or '*' as the VERSION or as the
 * whole SERVICE/VERSION) into provider (HUB_MEMBER_ID_MAX + 1 bytes) and
 * service (HUB_SERVICE_MAX + 1 bytes). */
static int policy__parse_target(policy__parser_t *ps, const char *target, char *provider,
                                char *service, policy__cover_t *cover, size_t *service_name_len)
{
    /* The provider is the first four parts; the fourth '/' ends it. */
    const char *slash = NULL;
    int slashes = 0;
    for (const char *q = target; *q && !slash; q++)
        if (*q == '/' && ++slashes == 4)
            slash = q;
    const char *example = "write PROVIDER/SERVICE/VERSION, PROVIDER/SERVICE/* (every version) "
                          "or PROVIDER/* (every service of the provider)";
    if (!slash || slash[1] == '\0') {
        if (strchr(target, '*'))
            return policy__check_member(ps, "provider", target);
        return policy__fail(ps, HUB_EPARSE, "'%s' names no service; %s", target, example);
    }
    size_t plen = (size_t)(slash - target);
    if (plen > HUB_MEMBER_ID_MAX)
        return policy__fail(ps, HUB_EPARSE, "the provider in '%s' is longer than %d bytes", target,
                            HUB_MEMBER_ID_MAX);
    memcpy(provider, target, plen);
    provider[plen] = '\0';
    int rc = policy__check_member(ps, "provider", provider);
    if (rc != 0)
        return rc;
    const char *svc = slash + 1;
    if (strlen(svc) > HUB_SERVICE_MAX)
        return policy__fail(ps, HUB_EPARSE, "the service in '%s' is longer than %d bytes", target,
                            HUB_SERVICE_MAX);
    if (!strcmp(svc, "*")) {
        *cover = HUB__COVER_PROVIDER;
        *service_name_len = 0;
        memcpy(service, "*", 2);
        return 0;
    }
    const char *vslash = strchr(svc, '/');
    if (!vslash)
        return policy__fail(ps, HUB_EPARSE, "'%s' names no version; %s", target, example);
    if (strchr(vslash + 1, '/'))
        return policy__fail(ps, HUB_EPARSE, "'%s' has too many parts; %s", target, example);
    size_t name_len = (size_t)(vslash - svc);
    const char *version = vslash + 1;
    if (memchr(svc, '*', name_len) || (strchr(version, '*') && strcmp(version, "*")))
        return policy__fail(ps, HUB_EPARSE,
                            "'%s': '*' may only be a whole VERSION (SERVICE/*) or the whole "
                            "SERVICE/VERSION (PROVIDER/*)",
                            target);
    char probe[HUB_SERVICE_MAX + 1];
    snprintf(probe, sizeof probe, "%.*s/%s", (int)name_len, svc,
             strcmp(version, "*") ? version : "v");
    if (!hub_service_valid(probe))
        return policy__fail(ps, HUB_EPARSE,
                            "'%s': SERVICE and VERSION may only hold letters, digits, '.', '-' and "
                            "'_', e.g. citizen.lookup/v1",
                            target);
    *cover = strcmp(version, "*") ? HUB__COVER_VERSION : HUB__COVER_SERVICE;
    *service_name_len = name_len;
    memcpy(service, svc, strlen(svc) + 1);
    return 0;
}

static int policy__parse_allow(policy__parser_t *ps, hub_policy_t *self, policy__word_t *w,
                               size_t n)
{
    if (n < 4 || strcmp(w[2].text, "->") || w[1].quoted || w[3].quoted)
        return policy__fail(ps, HUB_EPARSE,
                            "expected " HUB__SYNTAX ", e.g. 'allow VN/GOV/HN-STP/HOTICH -> "
                            "VN/GOV/BCA/CSDLQGDC/citizen.lookup/v1'");
    int rc = policy__check_member(ps, "consumer", w[1].text);
    if (rc != 0)
        return rc;
    char provider[HUB_MEMBER_ID_MAX + 1], service[HUB_SERVICE_MAX + 1];
    policy__cover_t cover = (policy__cover_t)0;
    size_t name_len = 0;
    if ((rc = policy__parse_target(ps, w[3].text, provider, service, &cover, &name_len)) != 0)
        return rc;
    const char *from_text = NULL, *until_text = NULL, *purpose = NULL;
    uint64_t from_us = 0, until_us = HUB_POLICY_FOREVER;
    for (size_t i = 4; i < n; i += 2) {
        const char *opt = w[i].text;
        bool is_from = !strcmp(opt, "from"), is_until = !strcmp(opt, "until"),
             is_purpose = !strcmp(opt, "purpose");
        if (w[i].quoted || (!is_from && !is_until && !is_purpose))
            return policy__fail(ps, HUB_EPARSE,
                                "unexpected '%s'; after the target come only 'from DATE', "
                                "'until DATE' and 'purpose \"TEXT\"'",
                                opt);
        if ((is_from && from_text) || (is_until && until_text) || (is_purpose && purpose))
            return policy__fail(ps, HUB_EPARSE, "'%s' is given twice; keep one", opt);
        if (i + 1 >= n)
            return policy__fail(ps, HUB_EPARSE, "'%s' needs a value, e.g. %s", opt,
                                is_purpose ? "purpose \"birth registration\"" : "from 2026-01-01");
        const policy__word_t *v = &w[i + 1];
        if (is_purpose) {
            if (!v->quoted)
                return policy__fail(ps, HUB_EPARSE,
                                    "purpose needs a quoted text, e.g. purpose \"birth "
                                    "registration\"");
            if (strlen(v->text) > HUB_POLICY_PURPOSE_MAX)
                return policy__fail(ps, HUB_EPARSE, "purpose is longer than %d bytes; shorten it",
                                    HUB_POLICY_PURPOSE_MAX);
            purpose = v->text;
            continue;
        }
        uint64_t at;
        if (v->quoted || strlen(v->text) >= HUB__DATE_TEXT_MAX ||
            hub_policy_parse_date(v->text, ps->tz_offset_s, is_until, &at) != 0)
            return policy__fail(ps, HUB_EPARSE, "'%s %s' is not a date; write " HUB__DATE_FORMS,
                                opt, v->text);
        if (is_from) {
            from_text = v->text;
            from_us = at;
        } else {
            until_text = v->text;
            until_us = at;
        }
    }
    if (from_us >= until_us)
        return policy__fail(ps, HUB_EPARSE,
                            "'from %s' is not before 'until %s'; the agreement would never apply",
                            from_text, until_text);

    const char *consumer = w[1].text;
    char sig[HUB__PAIR_KEY_MAX + HUB_SERVICE_MAX + 64];
    snprintf(sig, sizeof sig, "%s %s %s %llu %llu", consumer, provider, service,
             (unsigned long long)from_us, (unsigned long long)until_us);
    const policy__rule_t *twin = hub_map_get(ps->seen, sig);
    if (twin)
        return policy__fail(ps, HUB_EEXIST,
                            "repeats the agreement on line %u (same parties, service and "
                            "period); remove one of them",
                            twin->pub.line);

    size_t lens[6] = {strlen(consumer) + 1,
                      strlen(provider) + 1,
                      strlen(service) + 1,
                      from_text ? strlen(from_text) + 1 : 1,
                      until_text ? strlen(until_text) + 1 : 1,
                      purpose ? strlen(purpose) + 1 : 1};
    size_t total = 0;
    for (int i = 0; i < 6; i++)
        total += lens[i];
    policy__rule_t *r = calloc(1, sizeof *r + total);
    if (!r)
        return HUB_ENOMEM;
    const char *src[6] = {consumer, provider, service, from_text ? from_text : "",
                          until_text ? until_text : "", purpose ? purpose : ""};
    const char *dst[6];
    char *p = r->text;
    for (int i = 0; i < 6; i++) {
        memcpy(p, src[i], lens[i]);
        dst[i] = p;
        p += lens[i];
    }
    r->pub = (hub_policy_rule_t){.line = ps->line,
                                 .consumer = dst[0],
                                 .provider = dst[1],
                                 .service = dst[2],
                                 .from_us = from_us,
                                 .until_us = until_us,
                                 .from_text = dst[3],
                                 .until_text = dst[4],
                                 .purpose = dst[5]};
    r->cover = cover;
    r->service_name_len = name_len;
    if (HUB_VEC_RESERVE(self->rules, self->count, self->cap, 16) != 0) {
        free(r);
        return HUB_ENOMEM;
    }
    self->rules[self->count++] = r;
    char pair[HUB__PAIR_KEY_MAX];
    policy__pair_key(consumer, provider, pair);
    if (policy__bucket_add(self->by_pair, pair, r) != 0 ||
        policy__bucket_add(self->by_consumer, consumer, r) != 0 ||
        hub_map_put(ps->seen, sig, r) != 0)
        return HUB_ENOMEM;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Limits                                                                    */

/* A whole number of at least 1 made of digits only; false on anything else
 * or on overflow. */
static bool policy__count(const char *text, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        unsigned d = (unsigned)(text[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* SIZE: digits, then nothing or B (bytes), KiB, MiB or GiB. */
static bool policy__size(const char *text, size_t len, uint64_t *out)
{
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {{"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}};
    size_t digits = 0;
    while (digits < len && text[digits] >= '0' && text[digits] <= '9')
        digits++;
    uint64_t v;
    if (!policy__count(text, digits, &v))
        return false;
    const char *unit = text + digits;
    size_t unit_len = len - digits;
    unsigned shift = 0;
    if (unit_len) {
        size_t i = 0;
        while (i < sizeof units / sizeof units[0] &&
               (strlen(units[i].unit) != unit_len || memcmp(units[i].unit, unit, unit_len)))
            i++;
        if (i == sizeof units / sizeof units[0])
            return false;
        shift = units[i].shift;
    }
    if (v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}

/* "N/s" (or "SIZE/s" when sized) -> per second. */
static bool policy__per_second(const char *text, bool sized, uint64_t *out)
{
    size_t len = strlen(text);
    if (len < 3 || strcmp(text + len - 2, "/s"))
        return false;
    return sized ? policy__size(text, len - 2, out) : policy__count(text, len - 2, out);
}

#define HUB__SIZE_FORMS "a whole number followed by B, KiB, MiB or GiB (1 MiB = 1048576 bytes)"

static int policy__parse_limit(policy__parser_t *ps, hub_policy_t *self, policy__word_t *w,
                               size_t n)
{
    if (n < 2 || w[1].quoted)
        return policy__fail(ps, HUB_EPARSE, "expected " HUB__LIMIT_SYNTAX ", " HUB__LIMIT_EXAMPLE);
    const char *member = w[1].text;
    if (strchr(member, '*'))
        return policy__fail(ps, HUB_EPARSE,
                            "'%s': '*' cannot stand for a member or a part of one; write one "
                            "'limit' line per member (the others keep the hub's defaults)",
                            member);
    const char *problem = hub_member_id_problem(member);
    if (problem)
        return policy__fail(ps, HUB_EPARSE, "member '%s': %s", member, problem);
    if (n == 2)
        return policy__fail(ps, HUB_EPARSE,
                            "a limit line sets at least one of 'rate N/s', 'bytes SIZE/s', "
                            "'send N SIZE' and 'receive N SIZE'; " HUB__LIMIT_EXAMPLE);
    policy__limit_t lim = {.values = {.line = ps->line}};
    for (size_t i = 2; i < n;) {
        const char *opt = w[i].text;
        unsigned flag = 0;
        size_t values = 1;
        const char *example = "";
        if (w[i].quoted) {
            /* not an option name */
        } else if (!strcmp(opt, "rate")) {
            flag = HUB__LIMIT_RATE;
            example = "rate 500/s";
        } else if (!strcmp(opt, "bytes")) {
            flag = HUB__LIMIT_BYTES;
            example = "bytes 4MiB/s";
        } else if (!strcmp(opt, "send")) {
            flag = HUB__LIMIT_SEND;
            values = 2;
            example = "send 20000 256MiB";
        } else if (!strcmp(opt, "receive")) {
            flag = HUB__LIMIT_RECEIVE;
            values = 2;
            example = "receive 100000 1GiB";
        }
        if (!flag)
            return policy__fail(ps, HUB_EPARSE,
                                "unexpected '%s'; after the member come only 'rate N/s', "
                                "'bytes SIZE/s', 'send N SIZE' and 'receive N SIZE'",
                                opt);
        if (lim.set & flag)
            return policy__fail(ps, HUB_EPARSE, "'%s' is given twice; keep one", opt);
        for (size_t j = 1; j <= values; j++)
            if (i + j >= n || w[i + j].quoted)
                return policy__fail(ps, HUB_EPARSE, "'%s' needs %s, e.g. %s", opt,
                                    values == 2 ? "a message count and a size" : "a value",
                                    example);
        const char *v1 = w[i + 1].text, *v2 = values == 2 ? w[i + 2].text : "";
        uint64_t a = 0, b = 0;
        bool ok;
        const char *what;
        switch (flag) {
        case HUB__LIMIT_RATE:
            ok = policy__per_second(v1, false, &a);
            what = "messages per second, a whole number followed by /s";
            lim.values.rate_msgs = a;
            break;
        case HUB__LIMIT_BYTES:
            ok = policy__per_second(v1, true, &a);
            what = "bytes per second, " HUB__SIZE_FORMS ", then /s";
            lim.values.rate_bytes = a;
            break;
        default:
            ok = policy__count(v1, strlen(v1), &a) && policy__size(v2, strlen(v2), &b);
            what = "a message count, then a size: " HUB__SIZE_FORMS;
            if (flag == HUB__LIMIT_SEND) {
                lim.values.send_msgs = a;
                lim.values.send_bytes = b;
            } else {
                lim.values.recv_msgs = a;
                lim.values.recv_bytes = b;
            }
            break;
        }
        if (!ok)
            return policy__fail(ps, HUB_EPARSE, "'%s %s%s%s' is not valid; write %s, e.g. %s", opt,
                                v1, values == 2 ? " " : "", v2, what, example);
        /* 0 would read as "no limit" to the store, the opposite of what
         * it says: leaving the option out is how to keep the default. */
        if (a == 0 || (values == 2 && b == 0))
            return policy__fail(ps, HUB_EPARSE,
                                "'%s %s%s%s': a limit is at least 1; to keep the hub's default, "
                                "leave '%s' out",
                                opt, v1, values == 2 ? " " : "", v2, opt);
        lim.set |= flag;
        i += 1 + values;
    }
    const policy__limit_t *twin = hub_map_get(self->limits, member);
    if (twin)
        return policy__fail(ps, HUB_EEXIST,
                            "%s already has a limit line (line %u); a member has one: merge them",
                            member, twin->values.line);
    policy__limit_t *copy = malloc(sizeof *copy);
    if (!copy)
        return HUB_ENOMEM;
    *copy = lim;
    if (hub_map_put(self->limits, member, copy) != 0) {
        free(copy);
        return HUB_ENOMEM;
    }
    return 0;
}

static int policy__parse_line(policy__parser_t *ps, hub_policy_t *self, char *line)
{
    policy__word_t words[HUB__MAX_WORDS];
    size_t n = 0;
    int rc = policy__split(ps, line, words, &n);
    if (rc != 0 || n == 0)
        return rc;
    if (words[0].quoted)
        return policy__fail(ps, HUB_EPARSE, "a line starts with 'allow', 'limit' or 'timezone'");
    if (!strcmp(words[0].text, "allow"))
        return policy__parse_allow(ps, self, words, n);
    if (!strcmp(words[0].text, "limit"))
        return policy__parse_limit(ps, self, words, n);
    if (!strcmp(words[0].text, "timezone")) {
        if (n != 2 || words[1].quoted || policy__parse_offset(words[1].text, &ps->tz_offset_s) != 0)
            return policy__fail(ps, HUB_EPARSE,
                                "write 'timezone +07:00' (or another offset, or Z for UTC)");
        return 0;
    }
    if (!strcmp(words[0].text, "deny"))
        return policy__fail(ps, HUB_EPARSE,
                            "there is no 'deny': everything not allowed is denied; remove the line "
                            "or the 'allow' it contradicts");
    return policy__fail(ps, HUB_EPARSE, "unknown word '%s'; " HUB__LINE_KINDS, words[0].text);
}

int hub_policy_parse_text(const char *name, const char *text, hub_policy_t **out, char *err,
                          size_t err_size)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!name || !text) {
        snprintf(err, err_size, "no policy text");
        return HUB_EINVAL;
    }
    hub_policy_t *self = calloc(1, sizeof *self);
    policy__parser_t ps = {.name = name, .err = err, .err_size = err_size};
    if (!self || !(self->by_pair = hub_map_new()) || !(self->by_consumer = hub_map_new()) ||
        !(self->limits = hub_map_new()) || !(ps.seen = hub_map_new())) {
        hub_policy_destroy(&self);
        hub_map_destroy(&ps.seen);
        snprintf(err, err_size, "out of memory");
        return HUB_ENOMEM;
    }
    const char *base = strrchr(name, '/');
    snprintf(self->name, sizeof self->name, "%s", base ? base + 1 : name);
    int rc = 0;
    char line[HUB_POLICY_LINE_MAX + 2];
    for (const char *p = text; rc == 0 && *p;) {
        ps.line++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > HUB_POLICY_LINE_MAX) {
            rc = policy__fail(&ps, HUB_EPARSE, "the line is longer than %d bytes; split it",
                              HUB_POLICY_LINE_MAX);
            break;
        }
        memcpy(line, p, len);
        if (len && line[len - 1] == '\r')
            len--;
        line[len] = '\0';
        rc = policy__parse_line(&ps, self, line);
        p = nl ? nl + 1 : p + len;
    }
    hub_map_destroy(&ps.seen);
    if (rc == HUB_ENOMEM)
        snprintf(err, err_size, "out of memory while reading %s", name);
    if (rc != 0) {
        hub_policy_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

int hub_policy_load(const char *path, hub_policy_t **out, char *err, size_t err_size)
{
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    int guard = hub_fsguard_check(path, "policy file", err, err_size);
    if (guard != 0)
        return guard;
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) {
        int e = path ? errno : EINVAL;
        snprintf(err, err_size, "cannot read policy file %s: %s", path ? path : "(none)",
                 strerror(e));
        return e == ENOENT ? HUB_ENOENT : HUB_EIO;
    }
    struct stat st;
    const long max_size = 64L << 20;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > max_size) {
        snprintf(err, err_size, "policy file %s is not a regular file of at most 64 MiB", path);
        fclose(f);
        return HUB_EIO;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t len = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    bool failed = !text || ferror(f);
    fclose(f);
    if (failed) {
        snprintf(err, err_size, "cannot read policy file %s", path);
        free(text);
        return text ? HUB_EIO : HUB_ENOMEM;
    }
    text[len] = '\0';
    int rc;
    if (strlen(text) != len) {
        snprintf(err, err_size, "%s holds a NUL byte; a policy file is text", path);
        rc = HUB_EPARSE;
    } else {
        rc = hub_policy_parse_text(path, text, out, err, err_size);
    }
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Decisions                                                                 */

static bool policy__covers(const policy__rule_t *r, const char *service, size_t name_len)
{
    switch (r->cover) {
    case HUB__COVER_PROVIDER:
        return true;
    case HUB__COVER_SERVICE:
        return r->service_name_len == name_len && !memcmp(r->pub.service, service, name_len);
    case HUB__COVER_VERSION:
        return !strcmp(r->pub.service, service);
    }
    return false;
}

static bool policy__valid_at(const policy__rule_t *r, uint64_t now_us)
{
    return now_us >= r->pub.from_us && now_us < r->pub.until_us;
}

int hub_policy_check(const hub_policy_t *self, const char *consumer, const char *provider,
                     const char *service, uint64_t now_us, hub_policy_decision_t *out)
{
    if (!self || !consumer || !provider || !service || !out)
        return HUB_EINVAL;
    out->allowed = false;
    out->file = self->name;
    out->line = 0;
    out->purpose = "";
    out->reason[0] = '\0';
    const policy__bucket_t *b = NULL;
    size_t clen = strlen(consumer), plen = strlen(provider);
    if (clen <= HUB_MEMBER_ID_MAX && plen <= HUB_MEMBER_ID_MAX) {
        char pair[HUB__PAIR_KEY_MAX];
        policy__pair_key(consumer, provider, pair);
        b = hub_map_get(self->by_pair, pair);
    }
    const char *slash = strchr(service, '/');
    size_t name_len = slash ? (size_t)(slash - service) : strlen(service);
    const policy__rule_t *best = NULL, *future = NULL, *past = NULL;
    for (size_t i = 0; b && i < b->count; i++) {
        const policy__rule_t *r = b->rules[i];
        if (!policy__covers(r, service, name_len))
            continue;
        if (policy__valid_at(r, now_us)) {
            if (!best || r->cover > best->cover)
                best = r;
        } else if (now_us < r->pub.from_us) {
            if (!future || r->pub.from_us < future->pub.from_us)
                future = r;
        } else if (!past || r->pub.until_us > past->pub.until_us) {
            past = r;
        }
    }
    if (best) {
        out->allowed = true;
        out->line = best->pub.line;
        out->purpose = best->pub.purpose;
        return 0;
    }
    const policy__rule_t *near = future ? future : past;
    if (near) {
        out->line = near->pub.line;
        out->purpose = near->pub.purpose;
        if (near == future)
            snprintf(out->reason, sizeof out->reason,
                     "the agreement at %s:%u that lets %s call %s/%s is valid only from %s; "
                     "call again then, or ask the hub operator to change its 'from'",
                     self->name, near->pub.line, consumer, provider, service,
                     near->pub.from_text);
        else
            snprintf(out->reason, sizeof out->reason,
                     "the agreement at %s:%u that let %s call %s/%s ran until %s; ask the hub "
                     "operator to renew it",
                     self->name, near->pub.line, consumer, provider, service,
                     near->pub.until_text);
        return 0;
    }
    int n = snprintf(out->reason, sizeof out->reason, "no agreement lets %s call %s/%s", consumer,
                     provider, service);
    if (b && b->count && n > 0 && (size_t)n < sizeof out->reason) {
        /* Name what the pair's agreements do cover: often a version mix-up. */
        n += snprintf(out->reason + n, sizeof out->reason - (size_t)n,
                      " (its agreements with %s cover only ", provider);
        for (size_t i = 0; i < b->count && i < 4 && n > 0 && (size_t)n < sizeof out->reason; i++)
            n += snprintf(out->reason + n, sizeof out->reason - (size_t)n, "%s%s",
                          i ? ", " : "", b->rules[i]->pub.service);
        if (n > 0 && (size_t)n < sizeof out->reason)
            n += snprintf(out->reason + n, sizeof out->reason - (size_t)n, "%s)",
                          b->count > 4 ? ", …" : "");
    }
    if (n > 0 && (size_t)n < sizeof out->reason)
        snprintf(out->reason + n, sizeof out->reason - (size_t)n,
                 "; add 'allow %s -> %s/%s' to %s", consumer, provider, service, self->name);
    return 0;
}

size_t hub_policy_visit_allowed(const hub_policy_t *self, const char *consumer, uint64_t now_us,
                                hub_policy_rule_cb cb, void *user)
{
    const policy__bucket_t *b = self && consumer ? hub_map_get(self->by_consumer, consumer) : NULL;
    size_t visited = 0;
    for (size_t i = 0; b && i < b->count; i++) {
        if (!policy__valid_at(b->rules[i], now_us))
            continue;
        visited++;
        if (cb && cb(&b->rules[i]->pub, user) != 0)
            break;
    }
    return visited;
}

size_t hub_policy_visit_rules(const hub_policy_t *self, hub_policy_rule_cb cb, void *user)
{
    size_t visited = 0;
    for (size_t i = 0; self && i < self->count; i++) {
        visited++;
        if (cb && cb(&self->rules[i]->pub, user) != 0)
            break;
    }
    return visited;
}

static bool policy__pair_valid(const hub_policy_t *self, const char *consumer, const char *provider,
                               uint64_t now_us)
{
    if (strlen(consumer) > HUB_MEMBER_ID_MAX || strlen(provider) > HUB_MEMBER_ID_MAX)
        return false;
    char pair[HUB__PAIR_KEY_MAX];
    policy__pair_key(consumer, provider, pair);
    const policy__bucket_t *b = hub_map_get(self->by_pair, pair);
    for (size_t i = 0; b && i < b->count; i++)
        if (policy__valid_at(b->rules[i], now_us))
            return true;
    return false;
}

bool hub_policy_related(const hub_policy_t *self, const char *a, const char *b, uint64_t now_us)
{
    if (!self || !a || !b)
        return false;
    return policy__pair_valid(self, a, b, now_us) || policy__pair_valid(self, b, a, now_us);
}

uint64_t hub_policy_last_end(const hub_policy_t *self, uint64_t now_us)
{
    uint64_t last = 0;
    for (size_t i = 0; self && i < self->count; i++) {
        uint64_t until = self->rules[i]->pub.until_us;
        if (until != HUB_POLICY_FOREVER && until <= now_us && until > last)
            last = until;
    }
    return last;
}

size_t hub_policy_rule_count(const hub_policy_t *self) { return self ? self->count : 0; }

const char *hub_policy_name(const hub_policy_t *self) { return self ? self->name : ""; }

bool hub_policy_limits(const hub_policy_t *self, const char *member, hub_policy_limits_t *out)
{
    if (!out)
        return false;
    out->line = 0;
    const policy__limit_t *lim = self && member ? hub_map_get(self->limits, member) : NULL;
    if (!lim)
        return false;
    if (lim->set & HUB__LIMIT_RATE)
        out->rate_msgs = lim->values.rate_msgs;
    if (lim->set & HUB__LIMIT_BYTES)
        out->rate_bytes = lim->values.rate_bytes;
    if (lim->set & HUB__LIMIT_SEND) {
        out->send_msgs = lim->values.send_msgs;
        out->send_bytes = lim->values.send_bytes;
    }
    if (lim->set & HUB__LIMIT_RECEIVE) {
        out->recv_msgs = lim->values.recv_msgs;
        out->recv_bytes = lim->values.recv_bytes;
    }
    out->line = lim->values.line;
    return true;
}

size_t hub_policy_limit_count(const hub_policy_t *self)
{
    return self ? hub_map_size(self->limits) : 0;
}
