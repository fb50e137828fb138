/* hub_policy — the data-sharing agreements: which consumer member may call
 * which service of which provider member. Deny by default.
 *
 * The policy file (see deploy/policy.conf.example) is line-oriented:
 *
 *   # comment (also after a line's last word)
 *   allow CONSUMER -> PROVIDER/SERVICE/VERSION [from DATE] [until DATE] [purpose "TEXT"]
 *   limit MEMBER [rate N/s] [bytes SIZE/s] [send N SIZE] [receive N SIZE]
 *   timezone +07:00
 *
 * - CONSUMER and PROVIDER are full member ids (INSTANCE/CLASS/MEMBER/
 *   SUBSYSTEM). '*' never stands for a consumer or a provider, nor for a part
 *   of one: every agreement names both parties, so that "deny by default"
 *   keeps its meaning.
 * - The target is one of (the space before '*' only keeps this comment open;
 *   the file has none):
 *     PROVIDER/SERVICE/VERSION   one version of one service,
 *     PROVIDER/SERVICE/ *        every version of that service,
 *     PROVIDER/ *                every service of that provider.
 *   '*' is valid only as a whole VERSION or as the whole SERVICE/VERSION.
 * - DATE is YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS followed by Z or +HH:MM/-HH:MM.
 *   `from` is inclusive: a bare date starts at 00:00 of that day. `until` is
 *   inclusive of a bare date's whole day (until 2026-12-31 still allows calls
 *   at 23:59:59 that day) and exclusive of an exact time. Bare dates are UTC
 *   unless a `timezone ±HH:MM` line (or `timezone Z`) above them says
 *   otherwise; it applies to the lines that follow it.
 * - purpose is a double-quoted text of at most HUB_POLICY_PURPOSE_MAX bytes
 *   (\" and \\ escape a quote and a backslash), recorded for auditors and
 *   shown in decisions. The options come in any order, each at most once.
 * - Several agreements may cover one call (e.g. an old and a renewed one
 *   with consecutive periods); identical lines are an error.
 * - `limit` sets one member's own limits, in place of the hub's defaults
 *   (hubd.conf) for the options it gives; the others keep the defaults:
 *     rate N/s          messages per second it may send,
 *     bytes SIZE/s      envelope bytes per second it may send,
 *     send N SIZE       what it may hold in the store as a sender: N
 *                       messages and SIZE bytes of envelopes,
 *     receive N SIZE    what it may hold in the store as a receiver.
 *   N is a whole number of at least 1; SIZE is one too, followed by B,
 *   KiB, MiB or GiB (powers of 1024; a plain number is bytes). E.g.
 *     limit VN/GOV/HN-VP/MOTCUA rate 500/s bytes 4MiB/s send 20000 256MiB
 *   The options come in any order, each at most once, at least one of them;
 *   a member has at most one limit line (another is HUB_EEXIST). 0 is not a
 *   limit: to keep the hub's default, leave the option out.
 * Lines are at most HUB_POLICY_LINE_MAX bytes. Errors name FILE:LINE and
 * what to write instead; a file with one error is refused whole.
 *
 * Which messages are checked: the caller (hubd) checks REQUEST and EVENT
 * envelopes, with consumer = the authenticated sender, provider = the
 * receiver, service = the envelope's "SERVICE/VERSION". Replies, ACKs and
 * NACKs are not checked: a reply travels back on the agreement that let its
 * request through, so no agreement in the reverse direction is needed.
 *
 * Ownership and threads: a loaded policy is immutable; any number of threads
 * may check it at once. Strings in decisions and rules point into the policy
 * and live until hub_policy_destroy(). To reload (SIGHUP), load the new file,
 * and only if that succeeds swap it in and destroy the old one; connections
 * are not affected.
 *
 * Cost: a check is one hash lookup by (consumer, provider) and a walk over
 * that pair's agreements (usually one or two); a limits lookup is one hash
 * lookup by member. Neither allocates.
 */
#ifndef HUB_POLICY_H
#define HUB_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_POLICY_PURPOSE_MAX 256   /* bytes of a purpose text */
#define HUB_POLICY_LINE_MAX 4096     /* bytes of a line */
#define HUB_POLICY_REASON_MAX 1024   /* bytes of a decision's reason, NUL included */
#define HUB_POLICY_FOREVER UINT64_MAX

typedef struct hub_policy hub_policy_t;

/* One agreement as written in the file. */
typedef struct {
    unsigned line;         /* 1-based line in the file */
    const char *consumer;  /* member id */
    const char *provider;  /* member id */
    const char *service;   /* "SERVICE/VERSION"; "SERVICE/" and '*' (every version); or "*" */
    uint64_t from_us;      /* first allowed instant, µs since the epoch; 0 = always was */
    uint64_t until_us;     /* first instant no longer allowed; HUB_POLICY_FOREVER = no end */
    const char *from_text; /* the DATE as written, or "" */
    const char *until_text;
    const char *purpose;   /* "" when none */
} hub_policy_rule_t;

typedef struct {
    bool allowed;
    const char *file;      /* the policy file's name (no directories), for messages */
    unsigned line;         /* the agreement that allowed the call, or the one that covers
                              it but is not valid at that time; 0 when there is none */
    const char *purpose;   /* that agreement's purpose; "" when none */
    char reason[HUB_POLICY_REASON_MAX]; /* why not, as a sentence; "" when allowed */
} hub_policy_decision_t;

/* Reads and parses a policy file. Returns 0, HUB_ENOENT/HUB_EIO (cannot
 * read), HUB_EPARSE (err: "FILE:LINE: what is wrong; what to write"),
 * HUB_EEXIST (a repeated agreement, a second limit line for one member),
 * HUB_ENOMEM. *out is NULL on error. */
int hub_policy_load(const char *path, hub_policy_t **out, char *err, size_t err_size);
/* The same over a NUL-terminated buffer; `name` is used in messages. */
int hub_policy_parse_text(const char *name, const char *text, hub_policy_t **out, char *err,
                          size_t err_size);
/* Accepts NULL and *self_p == NULL; sets *self_p to NULL. */
void hub_policy_destroy(hub_policy_t **self_p);

/* One member's limits (a `limit` line). */
typedef struct {
    uint64_t rate_msgs;                 /* messages per second it may send */
    uint64_t rate_bytes;                /* bytes per second it may send */
    uint64_t send_msgs, send_bytes;     /* what it may hold in the store as a sender */
    uint64_t recv_msgs, recv_bytes;     /* as a receiver */
    unsigned line;                      /* the limit line, 0 when none */
} hub_policy_limits_t;

/* Overwrites in *out only the fields the member's `limit` line sets (so the
 * caller preloads the hub's defaults) and sets out->line. Returns true when
 * the member has a limit line. Never allocates. */
bool hub_policy_limits(const hub_policy_t *self, const char *member, hub_policy_limits_t *out);
/* The number of limit lines. */
size_t hub_policy_limit_count(const hub_policy_t *self);

/* Decides whether `consumer` may call `service` ("SERVICE/VERSION") of
 * `provider` at now_us (wall clock, µs since the epoch). Among the
 * agreements valid then, the most specific wins (an exact version before
 * every version of the service, before every service of the provider), then
 * the first in the file. When denied,
 * out->reason names the missing agreement and the line to add, or the
 * agreement that exists and why it does not apply at that time. Returns 0
 * (out filled), or HUB_EINVAL for NULL arguments. */
int hub_policy_check(const hub_policy_t *self, const char *consumer, const char *provider,
                     const char *service, uint64_t now_us, hub_policy_decision_t *out);

/* Called once per rule; return non-zero to stop the walk. */
typedef int (*hub_policy_rule_cb)(const hub_policy_rule_t *rule, void *user);
/* Every agreement of `consumer` valid at now_us, in file order (the "which
 * services may I call" metaservice). Overlapping agreements are all visited.
 * Returns the number of rules visited. */
size_t hub_policy_visit_allowed(const hub_policy_t *self, const char *consumer, uint64_t now_us,
                                hub_policy_rule_cb cb, void *user);
/* Every agreement, in file order (e.g. to warn about members the key
 * directory does not know). Returns the number of rules visited. */
size_t hub_policy_visit_rules(const hub_policy_t *self, hub_policy_rule_cb cb, void *user);
/* True when an agreement between consumer `a` and provider `b`, in either
 * direction, is valid at now_us (the directory metaservice shows a member
 * only the members it has such an agreement with). */
bool hub_policy_related(const hub_policy_t *self, const char *a, const char *b, uint64_t now_us);
/* The latest instant at or before now_us at which an agreement stopped
 * being valid (its `until`), or 0 when none has ended: a message accepted
 * after that instant, under this policy, is still allowed at now_us. */
uint64_t hub_policy_last_end(const hub_policy_t *self, uint64_t now_us);
/* The number of agreements. */
size_t hub_policy_rule_count(const hub_policy_t *self);
/* The file name used in messages. */
const char *hub_policy_name(const hub_policy_t *self);

/* Parses a DATE as the policy file does (UTC for bare dates); until_end
 * moves a bare date to the start of the next day. Returns 0 or HUB_EINVAL.
 * Also used by `hubctl policy check --at`. */
int hub_policy_parse_date(const char *text, int tz_offset_s, bool until_end, uint64_t *out_us);

#endif
