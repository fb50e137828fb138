/* hub_delegation — ủy quyền: an authority that has delegated a procedure's
 * service to another member, for the whole service or for named procedures
 * only (Decision 4610/QĐ-UBND delegates procedure by procedure). Envelopes
 * addressed to the authority for that service are routed to the delegate;
 * the envelope itself (and its signature) is unchanged, so the delegate sees
 * whom it was addressed to, and the audit log records both.
 *
 * File format (deploy/delegations.conf.example), one rule a line, '#'
 * comments:
 *
 *   delegate AUTHORITY-ID/SERVICE/VERSION -> DELEGATE-ID [procedure CODE[,CODE…]]
 *            [from DATE] [until DATE]
 *
 * DATE is YYYY-MM-DD (UTC; "until" is exclusive of the next day) as in the
 * policy file. A rule that names procedures applies only to envelopes whose
 * content type carries one of them as the signed parameter
 * `lth-procedure=CODE` (hub_delegation_procedure_of); it wins over a rule
 * for the whole service. For one service of one authority, at any moment,
 * at most one whole-service rule and at most one rule per procedure apply;
 * delegating to oneself or chaining (a delegate that delegates the service
 * again) is refused at load, naming the line.
 *
 * The rules are immutable once loaded; hubd replaces the table on SIGHUP
 * (hub_delegations_carry_counts keeps what unchanged rules carried). The
 * use counters change on the loop thread only (hub_delegations_note_use).
 */
#ifndef HUB_DELEGATION_H
#define HUB_DELEGATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_PROCEDURE_CODE_MAX 32        /* bytes of a procedure code, with the NUL */
#define HUB_DELEGATION_PROCEDURES_MAX 32 /* codes one rule may name */

typedef struct hub_delegations hub_delegations_t;
typedef struct hub_delegation_rule hub_delegation_rule_t;

/* One rule as listed (hub_delegations_info): pointers into the table, valid
 * until it is destroyed. */
typedef struct {
    const char *authority; /* "VN/GOV/HN-STP/HOTICH" */
    const char *service;   /* "dossier.submit/v1" */
    const char *delegate;
    size_t n_procedures; /* 0 = the whole service */
    const char *const *procedures;
    const uint64_t *procedure_carried; /* per procedure, parallel to procedures */
    uint64_t from_us, until_us;        /* until_us UINT64_MAX = open-ended */
    unsigned line;
    uint64_t carried;      /* envelopes routed to the delegate under this rule */
    uint64_t last_used_us; /* wall clock of the last one; 0 = never */
} hub_delegation_info_t;

int hub_delegations_load(const char *path, hub_delegations_t **out, char *err, size_t err_size);
void hub_delegations_destroy(hub_delegations_t **self_p);
/* The rule in force at now_us for (authority, service) and, when procedure is
 * not NULL or "", that procedure: a rule naming it first, else one for the
 * whole service. NULL when none. */
const hub_delegation_rule_t *hub_delegations_match(const hub_delegations_t *self,
                                                   const char *authority, const char *service,
                                                   const char *procedure, uint64_t now_us);
/* The delegate for (authority, service) at now_us for envelopes that name no
 * procedure, or NULL. *line is the rule's line when not NULL. */
const char *hub_delegations_find(const hub_delegations_t *self, const char *authority,
                                 const char *service, uint64_t now_us, unsigned *line);
const char *hub_delegation_rule_delegate(const hub_delegation_rule_t *rule);
unsigned hub_delegation_rule_line(const hub_delegation_rule_t *rule);
/* Whether rule names procedure. */
bool hub_delegation_rule_names(const hub_delegation_rule_t *rule, const char *procedure);
/* Counts one envelope routed under rule (for procedure, may be NULL). */
void hub_delegations_note_use(hub_delegations_t *self, const hub_delegation_rule_t *rule,
                              const char *procedure, uint64_t now_us);
/* The same for an envelope committed later (the rule may have been reloaded
 * since): counts it under the rule now in force for (authority, service,
 * procedure) if that rule still names delegate. */
void hub_delegations_note(hub_delegations_t *self, const char *authority, const char *service,
                          const char *procedure, const char *delegate, uint64_t now_us);
size_t hub_delegations_count(const hub_delegations_t *self);
/* The i-th rule, in file order; HUB_ENOTFOUND past the end. */
int hub_delegations_info(const hub_delegations_t *self, size_t i, hub_delegation_info_t *out);
/* A rule's identity across nodes and reloads (authority, service, delegate,
 * dates, procedures: what "written the same" means), into out; several
 * nodes key what each rule carried by it (hub_cluster.h). HUB_EINVAL when
 * it does not fit (HUB_DELEGATION_KEY_MAX is always enough). */
#define HUB_DELEGATION_KEY_MAX 2048
int hub_delegation_info_key(const hub_delegation_info_t *r, char *out, size_t size);
/* After a reload: each rule of next written exactly as one of prev (same
 * authority, service, delegate, procedures and dates) keeps its counts. */
void hub_delegations_carry_counts(hub_delegations_t *next, const hub_delegations_t *prev);

/* The procedure an envelope's content type names in its lth-procedure
 * parameter (quoted or not, name in any case), copied to out
 * (HUB_PROCEDURE_CODE_MAX). Returns 1 when there is one, 0 when there is
 * none, HUB_EPARSE when the parameter is given twice or its value is not a
 * code (1-31 of A-Z a-z 0-9 . - _), with a sentence in why. Parameters
 * inside quoted strings do not count. */
int hub_delegation_procedure_of(const char *content_type, char *out, const char **why);

#endif
