/* lth_dossier — dossiers (hồ sơ) and their status changes for the dossier
 * adapters (procedure system, sector systems, portal, reporting):
 *
 * - a deterministic generator of SYNTHETIC dossiers: dossier number `index`
 *   of a seed is always the same procedure and applicant, so that a restarted
 *   procedure system continues where it stopped and a test can tell which
 *   dossiers should be returned for an invalid or unknown applicant;
 * - status names, the ordering rule for status changes (apply a change only
 *   if its per-dossier sequence is greater than the last applied), and
 * - DossierStatusChange and Dossier encoding and checked decoding into plain
 *   structs (proto/domain.proto).
 *
 * The applicant's personal ID number is personal data: never log it. Nothing
 * here logs; problem sentences never contain it.
 */
#ifndef LTH_DOSSIER_H
#define LTH_DOSSIER_H

#include "lth_date.h"
#include "lth_domain.h"
#include "lth_pid.h"
#include "lth_procedure.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LTH_DOSSIER_TYPE LTH_DOMAIN_CONTENT_TYPE("Dossier")
#define LTH_STATUS_CHANGE_TYPE LTH_DOMAIN_CONTENT_TYPE("DossierStatusChange")

#define LTH_DOSSIER_CODE_MAX 64 /* bytes of a dossier code, with the NUL */
#define LTH_MEMBER_MAX 256      /* bytes of a member id, with the NUL */
#define LTH_NOTE_MAX 512        /* bytes of a status note, with the NUL */
#define LTH_APPLICANT_MAX 33    /* bytes of an applicant id as received, with the NUL */

/* The values match lth.domain.v1.DossierStatus. */
typedef enum {
    LTH_STATUS_UNSPECIFIED = 0,
    LTH_STATUS_RECEIVED = 1,
    LTH_STATUS_PROCESSING = 2,
    LTH_STATUS_SUPPLEMENT_REQUESTED = 3,
    LTH_STATUS_DONE = 4,
    LTH_STATUS_RETURNED = 5,
    LTH_STATUS_OVERDUE = 6,
    LTH_STATUS_NOT_ACCEPTED = 7,
    LTH_STATUS_FINANCIAL_OBLIGATION_REQUESTED = 8,
    LTH_STATUS_SUSPENDED = 9,
    LTH_STATUS_WITHDRAWN = 10,
    LTH_STATUS_RESULT_HANDED_OVER = 11
} lth_status_t;
#define LTH_STATUS_LAST LTH_STATUS_RESULT_HANDED_OVER

/* "RECEIVED", "PROCESSING", …; "UNSPECIFIED" for anything else. */
const char *lth_status_name(int status);
/* The status for its name ("DONE"); 0 for anything else. */
int lth_status_parse(const char *name);
/* The decisions that end processing: DONE, RETURNED, NOT_ACCEPTED,
 * WITHDRAWN. Only RESULT_HANDED_OVER may follow (after DONE). */
bool lth_status_final(int status);

/* The national portal's transition table (proto/DOMAIN.md, "Status
 * vocabulary"): whether a dossier whose latest status is `from` (0 = none
 * yet) may move to `to`. */
bool lth_status_transition_allowed(int from, int to);
/* Whether `to` can be reached from `from` through allowed transitions (one
 * or more): what a change that follows a gap in its sender's sequence is
 * checked for, the missing changes being still on their way. */
bool lth_status_reachable(int from, int to);
/* The same, with a sentence naming both states and what may follow `from`
 * when it may not ("DONE cannot follow RECEIVED: after RECEIVED come
 * PROCESSING, …"). 0 or HUB_EINVAL. */
int lth_status_transition_check(int from, int to, char *why, size_t why_size);

/* The values match lth.domain.v1.Channel. */
typedef enum {
    LTH_CHANNEL_UNSPECIFIED = 0,
    LTH_CHANNEL_ONLINE = 1,
    LTH_CHANNEL_COUNTER = 2
} lth_channel_t;

/* The ordering rule for at-least-once, possibly reordered status changes. */
typedef enum {
    LTH_SEQ_APPLY = 0,     /* newer than the last applied: apply it */
    LTH_SEQ_DUPLICATE = 1, /* the one last applied, again: ignore */
    LTH_SEQ_OLDER = 2      /* older than the last applied: ignore */
} lth_seq_verdict_t;
/* last_applied = 0 when none was applied. */
lth_seq_verdict_t lth_seq_verdict(uint64_t last_applied, uint64_t incoming);

/* ---- identity ---- */

/* The values match lth.domain.v1.AuthMethod. */
typedef enum {
    LTH_AUTH_UNSPECIFIED = 0,
    LTH_AUTH_VNEID = 1,
    LTH_AUTH_CHIP_CARD = 2,
    LTH_AUTH_PORTAL_ACCOUNT = 3
} lth_auth_method_t;

/* lth.domain.v1.IdentityAssurance. */
typedef struct {
    unsigned level; /* 0, 1, 2 (Decree 59/2022) */
    lth_auth_method_t method;
    uint64_t at_us;
} lth_assurance_t;

/* What an applicant declared on the form (DeclaredIdentity). Personal data. */
typedef struct {
    char full_name[64];
    lth_date_t date_of_birth;
    int sex; /* lth_sex_t, 0 = not declared */
    char residence[160];
} lth_declared_t;

/* The sentence a dossier below its procedure's required assurance is
 * returned with (Vietnamese, then English), into out; 0 or HUB_EINVAL when
 * the level is enough. */
int lth_assurance_refusal(const lth_procedure_t *procedure, const lth_assurance_t *assurance,
                          char *out, size_t out_size);

/* ---- the generator ---- */

/* Who applies, as the generator meant it (the population database decides). */
typedef enum {
    LTH_APPLICANT_CITIZEN = 0,    /* a citizen of the population data set: FOUND */
    LTH_APPLICANT_INVALID_ID = 1, /* not a personal ID number: INVALID_KEY */
    LTH_APPLICANT_UNKNOWN = 2     /* a valid number with no record: NOT_FOUND */
} lth_applicant_kind_t;

typedef struct {
    uint64_t seed;
    uint64_t population_seed;       /* the population database's plugin.seed */
    size_t population_citizens;     /* and plugin.citizens (1 .. LTH_CITIZEN_MAX-1000) */
    unsigned invalid_percent;       /* share of invalid ID numbers, 0..100 */
    unsigned unknown_percent;       /* share of unknown citizens; the two add up to <= 100 */
    unsigned low_assurance_percent; /* share authenticated at level 1 (the rest: level 2) */
    unsigned mismatch_percent;      /* share of citizens whose declared date of birth is wrong */
    const lth_procedure_t *const *procedures; /* to choose from; NULL = the whole catalogue */
    size_t n_procedures;
} lth_dossier_gen_t;

typedef struct {
    uint64_t index;                  /* 1, 2, … */
    char code[LTH_DOSSIER_CODE_MAX]; /* "SYN-H26-000001" */
    const lth_procedure_t *procedure;
    lth_applicant_kind_t applicant_kind;
    char applicant_id[LTH_APPLICANT_MAX]; /* personal data */
    lth_declared_t declared;              /* what the applicant declared: personal data */
    bool declared_wrong;                  /* a citizen who declared a wrong date of birth */
    lth_assurance_t assurance;            /* how the applicant was authenticated */
} lth_gen_dossier_t;

/* Dossier number `index` (1 .. 999999999) of the generator. Procedures go
 * round in the order given; applicant kinds, low assurance and wrong
 * declarations are spread evenly over every hundred dossiers. The declared
 * identity is the record's (for a wrong declaration, the date of birth a day
 * off). Returns 0 or HUB_EINVAL for bad parameters. */
int lth_dossier_generate(const lth_dossier_gen_t *gen, uint64_t index, lth_gen_dossier_t *out);
/* The dossier code of an index, "SYN-H26-%06u"; HUB_EINVAL past 999999999. */
int lth_dossier_code(uint64_t index, char out[LTH_DOSSIER_CODE_MAX]);
/* A dossier code in the national structure: the receiving agency's code
 * (its electronic identifier, Decision 20/2020/QĐ-TTg, e.g. "000.00.01.H26"),
 * the local date of receipt as yymmdd (Asia/Ho_Chi_Minh) and a number:
 * "000.00.01.H26-260703-000042". HUB_EINVAL for an agency code that is
 * empty, longer than 32 bytes or not of A-Z 0-9 '.', or a number past
 * 999999999. */
int lth_dossier_code_national(const char *agency_code, uint64_t at_us, uint64_t number,
                              char out[LTH_DOSSIER_CODE_MAX]);

/* ---- messages ---- */

/* lth.domain.v1.DossierStatusChange as a plain value. */
typedef struct {
    char dossier_code[LTH_DOSSIER_CODE_MAX];
    int status; /* lth_status_t */
    char actor[LTH_MEMBER_MAX];
    uint64_t at_us;
    uint64_t sequence;
    char note[LTH_NOTE_MAX];
    char procedure_code[LTH_PROCEDURE_CODE_MAX];
    char authority[LTH_MEMBER_MAX];
    uint64_t submitted_at_us;
    uint64_t due_at_us;
    int channel;          /* lth_channel_t */
    unsigned step, steps; /* liên thông: 1-based step of steps; 0 = single */
    char step_authority[LTH_MEMBER_MAX];
    uint64_t step_due_at_us;
    char delegated_by[LTH_MEMBER_MAX]; /* ủy quyền: the authority addressed; "" = none */
} lth_status_change_t;

/* Encodes into *out (malloc'ed; the caller frees). HUB_EINVAL, HUB_ENOMEM. */
int lth_status_change_encode(const lth_status_change_t *change, uint8_t **out, size_t *out_len);
/* Checks the content type (LTH_STATUS_CHANGE_TYPE) and decodes. Refuses
 * (HUB_EPARSE, *problem says why) an undecodable payload, an empty or
 * over-long dossier code, a status outside RECEIVED..OVERDUE, a sequence of 0
 * and over-long texts. */
int lth_status_change_decode(const char *content_type, const uint8_t *payload, size_t len,
                             lth_status_change_t *out, const char **problem);

/* lth.domain.v1.Dossier as a plain value (documents are not kept). */
typedef struct {
    char dossier_code[LTH_DOSSIER_CODE_MAX];
    char procedure_code[LTH_PROCEDURE_CODE_MAX];
    char applicant_id[LTH_APPLICANT_MAX]; /* personal data */
    uint64_t submitted_at_us;
    uint64_t due_at_us;
    char received_by[LTH_MEMBER_MAX];
    char authority[LTH_MEMBER_MAX];
    size_t documents;          /* how many DocumentRefs it carried */
    lth_assurance_t assurance; /* level 0 when the message had none */
} lth_dossier_t;

/* Encodes a Dossier with one synthetic document reference (a form, by URI and
 * SHA-256 of a synthetic text). */
int lth_dossier_encode(const lth_dossier_t *dossier, uint8_t **out, size_t *out_len);
/* Checks the content type (LTH_DOSSIER_TYPE) and decodes; HUB_EPARSE with
 * *problem for an undecodable payload, an empty or over-long code, a
 * document digest that is not 32 bytes, over-long texts. */
int lth_dossier_decode(const char *content_type, const uint8_t *payload, size_t len,
                       lth_dossier_t *out, const char **problem);

#endif
