/* lth_citizen — a deterministic generator of synthetic citizens.
 *
 * THE DATA IS SYNTHETIC. No record describes a real person: names are drawn
 * from common Vietnamese surnames, middle and given names
 * (/work/shared/data/names.tsv, surnames weighted by their share of the
 * population), the other fields from simple distributions. Any resemblance of
 * a generated ID number and name to a real person's is chance.
 *
 * lth_citizen_generate(seed, index) always gives the same citizen for the same
 * seed and index, on every platform (integer arithmetic only), so that a test
 * or a tool can rebuild the record a population database holds. Within one
 * seed, indices 0 .. LTH_CITIZEN_MAX-1 have distinct personal ID numbers: the
 * 6-digit sequence is a permutation of the index. Every generated record is
 * consistent: its ID passes lth_pid_check(), and the ID's sex, year of birth
 * and province are the record's.
 *
 * The data set describes the population as on LTH_CITIZEN_REFERENCE_DATE:
 * every record was created (the database started in mid 2021; people born
 * later got a record at birth registration) and last changed on or before it.
 * A change is a move of residence: previous_residence holds the address
 * before it.
 *
 * Households (what the household book recorded; Decree 104/2022 replaced
 * the book with the population database): every citizen belongs to one
 * household at their permanent residence. Its head is an adult of the same
 * data set with a lower or equal index (at most LTH_CITIZEN_HOUSEHOLD_SPAN
 * below), whose own record names itself as head; members share the head's
 * residence, its previous residence and the date of the household's move.
 * The relationship to the head follows from the ages and sexes. About one in
 * seven also has a temporary residence in Hà Nội, until a date after the
 * reference date. Father's and mother's names are recorded (a child of the
 * head has the head as father or mother), a spouse's name for the head's
 * spouse.
 *
 * Nothing here allocates; every function is safe from any thread.
 */
#ifndef LTH_CITIZEN_H
#define LTH_CITIZEN_H

#include "lth_date.h"
#include "lth_pid.h"

#include <stddef.h>
#include <stdint.h>

#define LTH_CITIZEN_MAX 1000000u /* indices per seed with unique ID numbers */
#define LTH_CITIZEN_REFERENCE_DATE ((lth_date_t){2025, 6, 30})
#define LTH_CITIZEN_NAME_MAX 64 /* bytes of a full name, with the NUL (UTF-8) */
#define LTH_CITIZEN_ADDRESS_MAX 160
#define LTH_CITIZEN_HOUSEHOLD_SPAN 5 /* how far below its members a head's index is */

/* The values match lth.domain.v1.HouseholdRelationship. */
typedef enum {
    LTH_REL_HEAD = 1,
    LTH_REL_SPOUSE = 2,
    LTH_REL_CHILD = 3,
    LTH_REL_PARENT = 4,
    LTH_REL_SIBLING = 5,
    LTH_REL_GRANDCHILD = 6,
    LTH_REL_OTHER = 7,
    LTH_REL_GRANDPARENT = 8
} lth_relationship_t;

typedef struct {
    char personal_id[LTH_PID_LEN + 1];
    char full_name[LTH_CITIZEN_NAME_MAX]; /* "Nguyễn Thị Lan" */
    lth_date_t date_of_birth;
    lth_sex_t sex;
    char birth_province_code[4];                       /* = personal_id[0..2] */
    char residence[LTH_CITIZEN_ADDRESS_MAX];           /* current place of residence */
    char previous_residence[LTH_CITIZEN_ADDRESS_MAX];  /* before the last change; "" if none */
    lth_date_t created_on;                             /* the record's creation */
    lth_date_t changed_on;                             /* its last change; = created_on if none */
    char temporary_residence[LTH_CITIZEN_ADDRESS_MAX]; /* "" if none */
    lth_date_t temporary_until;                        /* {0,0,0} if none */
    char head_personal_id[LTH_PID_LEN + 1];            /* the household head's (own if head) */
    char head_full_name[LTH_CITIZEN_NAME_MAX];
    lth_relationship_t relationship;        /* to the head */
    char father_name[LTH_CITIZEN_NAME_MAX]; /* "" if not recorded */
    char mother_name[LTH_CITIZEN_NAME_MAX];
    char spouse_name[LTH_CITIZEN_NAME_MAX];
} lth_citizen_t;

/* Fills *out with citizen number `index` of the data set `seed`. Returns 0,
 * or HUB_EINVAL for index >= LTH_CITIZEN_MAX or a NULL out. */
int lth_citizen_generate(uint64_t seed, size_t index, lth_citizen_t *out);

/* The record as it was on `date`: HUB_ENOTFOUND before created_on; before
 * changed_on the previous residence, with changed_on = created_on; else the
 * record as it is. `out` may be `record`. (Temporary residence and household
 * are as they are now: the data set keeps no history of them.) */
int lth_citizen_as_of(const lth_citizen_t *record, lth_date_t date, lth_citizen_t *out);

#endif
