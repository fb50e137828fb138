/* lth_procedure — the city's procedure catalogue as the dossier adapters
 * know it, and processing limits.
 *
 * The catalogue is data, and there is no built-in one: the procedure system
 * reads the file that mirrors the Chairman's announcing decisions
 * (lth_catalogue_load(), deploy/catalogue-hn.tsv); the portal and reporting
 * rebuild the catalogue it publishes (catalogue.published/v1) from each
 * publication; lth_procedure_install() makes a catalogue the one
 * lth_procedure_*() answer from in this process. Until one is installed
 * they find nothing (count 0, NULL, fee 0): a caller that needs a catalogue
 * says so (lth_procedure_installed()). The shipped codes are SYNTHETIC
 * ("SYN-1.00000N"), not codes of the national TTHC database.
 *
 * A processing limit is counted from receipt. lth_limit_duration_us() turns
 * it into a length of time given the length of one day, so that demos and
 * tests can run a "day" in a fraction of a second. Simplification: a working
 * day counts as a calendar day (no weekends or public holidays), a working
 * hour as 1/8 of a day.
 *
 * Lookups do not allocate. An installed catalogue is never freed before the
 * process ends, so the pointers lth_procedure_*() return stay valid across
 * reloads; install from one thread (the adapter's), as the lookups are.
 */
#ifndef LTH_PROCEDURE_H
#define LTH_PROCEDURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The values match lth.domain.v1.LimitUnit. */
typedef enum {
    LTH_LIMIT_WORKING_HOURS = 1,
    LTH_LIMIT_WORKING_DAYS = 2,
    LTH_LIMIT_CALENDAR_DAYS = 3
} lth_limit_unit_t;

/* How the procedure system checks a dossier's applicant against the
 * National Population Database. */
typedef enum {
    LTH_CHECK_LOOKUP = 0, /* citizen.lookup/v1: the authority needs data from the record */
    LTH_CHECK_VERIFY = 1  /* citizen.verify/v1: only the declared identity is confirmed */
} lth_identity_check_t;

#define LTH_PROCEDURE_CODE_MAX 32 /* bytes of a procedure code, with the NUL */
#define LTH_DAY_US 86400000000ull /* a real day */

typedef struct {
    const char *code; /* "SYN-1.000004" (synthetic) */
    const char *name; /* official Vietnamese name (UTF-8) */
    const char *name_en;
    const char *authority;  /* member id of the authority that resolves it */
    const char *limit_text; /* as the law words it: "3 working days" */
    unsigned limit_amount;  /* 3 */
    lth_limit_unit_t limit_unit;
    lth_identity_check_t identity_check;
    unsigned required_assurance; /* lowest e-identification level of the applicant (Decree
                                    59/2022): 0 none, 1, 2 */
    const char *purpose_code;    /* as the population database's agreement names it */
    /* From the announcing decision (lth_catalogue.h); NULL or "" when not given. */
    const char *decision;       /* "1520/QĐ-UBND" */
    const char *decision_date;  /* "YYYY-MM-DD" */
    const char *effective_date; /* "YYYY-MM-DD" */
    const char *level;          /* "province", "district", "commune" */
    uint64_t fee_vnd;           /* 0 = free */
    const char *documents;      /* titles separated by "; " */
    const char *online;         /* "none", "partial", "full" */
} lth_procedure_t;

struct lth_catalogue;
/* Makes catalogue the one this process answers from (ownership passes; the
 * previous one stays allocated: see above). NULL: none (nothing is found). */
void lth_procedure_install(struct lth_catalogue *catalogue);
/* Frees every catalogue installed and leaves none: only when no pointer
 * from lth_procedure_*() is used any more (the plugin's end). */
void lth_procedure_release_all(void);
/* Whether a catalogue is installed. */
bool lth_procedure_installed(void);

/* Procedures in force. */
size_t lth_procedure_count(void);
/* The i-th procedure in force, or NULL past the end. */
const lth_procedure_t *lth_procedure_at(size_t i);
/* The procedure in force with this code, or NULL. */
const lth_procedure_t *lth_procedure_find(const char *code);
/* Every procedure of the catalogue, in force first, then repealed
 * (*repealed says which); NULL past the end. */
const lth_procedure_t *lth_procedure_listed_at(size_t i, bool *repealed);
/* The repealed procedure with this code, or NULL. */
const lth_procedure_t *lth_procedure_find_repealed(const char *code);
/* The official name of the procedure with this code, in force or repealed
 * (a report still names the dossiers of a repealed one), or NULL. */
const char *lth_procedure_name(const char *code);

/* The fee (VND) of the procedure in force with this code; 0 = free, unknown
 * or no catalogue installed. */
uint64_t lth_procedure_fee_vnd(const char *code);

/* Parses a limit as procedures.tsv words it: "same working day" (8 working
 * hours), "N working days", "N days" (calendar days), "N working hours".
 * Returns 0 or HUB_EINVAL. */
int lth_limit_parse(const char *text, unsigned *amount, lth_limit_unit_t *unit);
/* The limit's length in µs when a day lasts day_us µs (LTH_DAY_US for real
 * time); 0 for an unknown unit. Saturates instead of overflowing. */
uint64_t lth_limit_duration_us(unsigned amount, lth_limit_unit_t unit, uint64_t day_us);

#endif
