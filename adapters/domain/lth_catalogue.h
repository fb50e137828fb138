/* lth_catalogue — the city's procedure catalogue as data: the file that
 * mirrors the Chairman's announcing decisions (Quyết định công bố TTHC), and
 * what changed between two versions of it.
 *
 * File (deploy/catalogue-hn.tsv): UTF-8, tab-separated, '#' comment lines
 * and blank lines ignored, a header line naming these columns in this order:
 *
 *   decision decision_date effective_date status code name name_en level
 *   authority limit fee_vnd documents online check assurance purpose_code
 *
 * decision "1520/QĐ-UBND"; dates YYYY-MM-DD (effective on or after the
 * decision); status "in-force" or "repealed" (a repealed procedure stays in
 * the file with the decision that repealed it); code 1-31 of A-Z a-z 0-9 .
 * - _, once per file; level province|district|commune; authority a member id;
 * limit as lth_limit_parse() reads it ("3 working days"); fee_vnd a whole
 * number of đồng; documents titles separated by ';'; online
 * none|partial|full; check lookup|verify; assurance 0, 1 or 2;
 * purpose_code as the population database's agreement names it. name_en
 * and documents may be "-" (none).
 *
 * Errors name the file, line and column ("catalogue-hn.tsv:7: field limit:
 * '3 wrking days' is not a time limit ..."); nothing is returned then, so a
 * caller keeps the catalogue it had.
 *
 * A catalogue can also be built in memory (lth_catalogue_new(), then
 * lth_catalogue_add() per procedure): how a subscriber rebuilds the
 * catalogue it was published (adapters/plugins/dossier/catalogue_copy.h).
 *
 * Ownership: the catalogue owns every string its procedures point to
 * (lth_catalogue_add() copies them). Pointers into a catalogue stay valid
 * until it is destroyed, but lth_catalogue_add() may move the procedures:
 * build a catalogue whole before handing out pointers into it.
 */
#ifndef LTH_CATALOGUE_H
#define LTH_CATALOGUE_H

#include "lth_procedure.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct lth_catalogue lth_catalogue_t;

int lth_catalogue_load(const char *path, lth_catalogue_t **out, char *err, size_t err_size);
void lth_catalogue_destroy(lth_catalogue_t **self_p);
/* Procedures in force, in file order. */
size_t lth_catalogue_count(const lth_catalogue_t *self);
const lth_procedure_t *lth_catalogue_at(const lth_catalogue_t *self, size_t i);
const lth_procedure_t *lth_catalogue_find(const lth_catalogue_t *self, const char *code);
/* A procedure the file lists as repealed, or NULL. */
const lth_procedure_t *lth_catalogue_find_repealed(const lth_catalogue_t *self, const char *code);
/* Repealed procedures, in file (or adding) order. */
size_t lth_catalogue_count_repealed(const lth_catalogue_t *self);
const lth_procedure_t *lth_catalogue_repealed_at(const lth_catalogue_t *self, size_t i);
/* Every procedure listed, those in force first, then the repealed ones
 * (*repealed says which); NULL past the end. */
const lth_procedure_t *lth_catalogue_listed_at(const lth_catalogue_t *self, size_t i,
                                               bool *repealed);

/* An empty catalogue, or NULL when out of memory. */
lth_catalogue_t *lth_catalogue_new(void);
/* Adds a copy of p, in force or repealed. HUB_EINVAL without a valid code
 * or a name, HUB_EEXIST for a code held already, HUB_ENOMEM. */
int lth_catalogue_add(lth_catalogue_t *self, const lth_procedure_t *p, bool repealed);

/* Whether two procedures say the same (every field compared). */
bool lth_procedure_same(const lth_procedure_t *a, const lth_procedure_t *b);

#endif
