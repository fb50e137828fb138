/* lth_popdb — the population database behind the population adapter: a
 * SQLite file of (synthetic) citizen records, built once by the generator
 * (lth_citizen.h) and then only read.
 *
 * Building writes "PATH.building" in one transaction, syncs it and renames it
 * to PATH, so that PATH is either absent or complete; an existing PATH is
 * never overwritten (HUB_EEXIST). Opening is read-only. Every query is a
 * prepared statement with bound parameters.
 *
 * Table `citizen` (one row per person): personal_id (primary key), full_name,
 * date_of_birth, sex (1 male, 2 female), birth_province_code, residence,
 * previous_residence (NULL if the record never changed), created_at and
 * changed_at (dates, "YYYY-MM-DD"), temporary_residence and temporary_until
 * (NULL if none), head_personal_id, head_full_name, relationship (1..8, as
 * lth_relationship_t), father_name, mother_name, spouse_name (NULL if not
 * recorded). Table `meta` (key, value): format ("lth-population-2"; a file
 * of an older format is refused: rebuild it), seed, citizens, synthetic.
 *
 * A handle is used from one thread at a time. Errors: 0 or a negative HUB_E*
 * code, with a sentence in err that never holds personal data.
 */
#ifndef LTH_POPDB_H
#define LTH_POPDB_H

#include "lth_citizen.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lth_popdb lth_popdb_t;

typedef struct {
    uint64_t seed;   /* the generator's seed */
    size_t citizens; /* records: citizens 0 .. citizens-1 of that seed */
} lth_popdb_info_t;

/* Builds a database of citizens 0 .. citizens-1 of `seed` at path.
 * HUB_EEXIST if path exists, HUB_EINVAL for citizens = 0 or over
 * LTH_CITIZEN_MAX, HUB_EIO/HUB_ESTORE when writing fails. */
int lth_popdb_build(const char *path, uint64_t seed, size_t citizens, char *err, size_t err_size);

/* Opens a database made by lth_popdb_build, read-only. HUB_ENOENT if it does
 * not exist, HUB_ESTORE if it is not such a database. */
int lth_popdb_open(const char *path, lth_popdb_t **out, char *err, size_t err_size);
/* Closes; accepts NULL and sets *db_p to NULL. */
void lth_popdb_close(lth_popdb_t **db_p);

lth_popdb_info_t lth_popdb_info(const lth_popdb_t *db);

/* The record of `personal_id` into *out (previous_residence "" when NULL).
 * HUB_ENOTFOUND if there is none, HUB_ESTORE if the query failed. */
int lth_popdb_get(lth_popdb_t *db, const char *personal_id, lth_citizen_t *out);

#endif
