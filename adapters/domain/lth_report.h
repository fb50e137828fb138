/* lth_report — on-time, late and overdue counts of dossiers per procedure and
 * authority, for the city's administrative-reform indices, and their
 * renderings (text table, CSV, JSON).
 *
 * One dossier's outcome, from its latest status (proto/DOMAIN.md):
 *   DONE at or before due_at           on time
 *   DONE after due_at                  late
 *   RETURNED, WITHDRAWN                returned (sent back after acceptance, or withdrawn)
 *   NOT_ACCEPTED                       not accepted (refused at reception: identity not
 *                                      verified, assurance too low)
 *   anything else, past due_at now     overdue
 *   anything else                      in progress
 * A due_at of 0 means no legal limit: never late, never overdue.
 *
 * Pure computation: the caller feeds dossiers (from wherever it keeps them)
 * and a "now"; nothing here reads a clock or a file.
 */
#ifndef LTH_REPORT_H
#define LTH_REPORT_H

#include "lth_dossier.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LTH_OUTCOME_IN_PROGRESS = 0,
    LTH_OUTCOME_ON_TIME = 1,
    LTH_OUTCOME_LATE = 2,
    LTH_OUTCOME_OVERDUE = 3,
    LTH_OUTCOME_RETURNED = 4,
    LTH_OUTCOME_NOT_ACCEPTED = 5
} lth_outcome_t;

/* done_at_us: when the DONE change happened (used only for DONE). */
lth_outcome_t lth_report_classify(int status, uint64_t due_at_us, uint64_t done_at_us,
                                  uint64_t now_us);
/* "in progress", "on time", "late", "overdue", "returned", "not accepted". */
const char *lth_outcome_name(lth_outcome_t outcome);

typedef struct {
    char procedure_code[LTH_PROCEDURE_CODE_MAX];
    char authority[LTH_MEMBER_MAX];
    unsigned long dossiers; /* = the six below added up */
    unsigned long on_time, late, overdue, in_progress, returned;
    unsigned long not_accepted; /* refused at reception (the last column rendered) */
    /* The reform-index figures (issue 19; proto/DOMAIN.md, report.query/v1). */
    unsigned long early;             /* of on_time: decided on a day before the due day */
    unsigned long decided;           /* with a decision time, for the average below */
    uint64_t working_us;             /* office time from submission to decision, summed */
    unsigned long synced;            /* the portal confirmed the dossier's latest change */
    unsigned long online;            /* submitted through the portal */
    unsigned long with_result;       /* of the DONE ones: with a signed electronic result */
    unsigned long paid, paid_online; /* with a PAID payment; of them, paid online */
    unsigned long rated;             /* with a satisfaction rating */
    double rating_sum;               /* the sum of each rated dossier's mean score */
} lth_report_row_t;

/* One dossier as the reform-index report counts it. */
typedef struct {
    const char *procedure_code, *authority;
    int status;
    uint64_t due_at_us, done_at_us;
    uint64_t decided_at_us; /* 0 = not decided */
    uint64_t working_us;    /* office time from submission to decision (0 = not decided) */
    bool synced, online, has_result, paid, paid_online;
    double rating; /* the dossier's mean score, 0 = not rated */
} lth_report_dossier_t;

typedef struct {
    uint64_t as_of_us;
    lth_report_row_t *rows; /* sorted by procedure code, then authority */
    size_t n_rows, cap_rows;
    lth_report_row_t total; /* codes empty */
} lth_report_t;

void lth_report_init(lth_report_t *r, uint64_t now_us);
/* Counts one dossier (by its latest status). HUB_ENOMEM, HUB_EINVAL. */
int lth_report_add(lth_report_t *r, const char *procedure_code, const char *authority, int status,
                   uint64_t due_at_us, uint64_t done_at_us);
/* The same with the reform-index figures. */
int lth_report_add_dossier(lth_report_t *r, const lth_report_dossier_t *d);
void lth_report_free(lth_report_t *r);

typedef enum { LTH_REPORT_JSON = 0, LTH_REPORT_TABLE = 1, LTH_REPORT_CSV = 2 } lth_report_format_t;

/* "json", "table", "csv" (exactly); HUB_EINVAL otherwise. */
int lth_report_format_parse(const char *text, lth_report_format_t *out);
/* "application/json", "text/plain; charset=utf-8", "text/csv; charset=utf-8". */
const char *lth_report_content_type(lth_report_format_t format);
/* Renders into *out (malloc'ed, NUL-terminated; *out_len without the NUL).
 * The table and the JSON name each procedure (lth_procedure_name) and carry
 * the totals; the CSV is one header line and one line per row, RFC 4180. */
int lth_report_render(const lth_report_t *r, lth_report_format_t format, char **out,
                      size_t *out_len);

#endif
