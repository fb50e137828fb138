/* lth_province — the province codes that begin a personal ID number.
 *
 * A fixed table of the 63 provinces and centrally governed cities with their
 * 3-digit codes (Hà Nội = 001), embedded from /work/shared/data/provinces.tsv
 * (the project's reference data; see lth_province.c). The table and the
 * strings it returns are static and read-only: never free them.
 */
#ifndef LTH_PROVINCE_H
#define LTH_PROVINCE_H

#include <stdbool.h>
#include <stddef.h>

#define LTH_PROVINCE_HANOI "001"

typedef struct {
    const char *code; /* three ASCII digits, e.g. "001" */
    const char *name; /* UTF-8, e.g. "Hà Nội" */
    bool city;        /* a centrally governed city (thành phố trực thuộc trung ương) */
} lth_province_t;

/* The province whose code is the first three characters of `digits` (which
 * need not be NUL-terminated after them), or NULL. */
const lth_province_t *lth_province_find(const char *digits);
/* Number of provinces, and the i-th one in code order (NULL past the end). */
size_t lth_province_count(void);
const lth_province_t *lth_province_at(size_t i);

#endif
