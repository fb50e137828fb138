/* lth_pid — personal ID numbers (số định danh cá nhân): checking and composing.
 *
 * A personal ID number is 12 ASCII digits:
 *   digits 1-3  the province code of the birth registration (lth_province.h);
 *   digit  4    sex and century of birth: 0 male / 1 female born 1900-1999,
 *               2 / 3 born 2000-2099, 4 / 5 born 2100-2199 (6-9 are not used);
 *   digits 5-6  the last two digits of the year of birth;
 *   digits 7-12 a sequence number.
 * lth_pid_check() checks the format only: whether such a person exists is the
 * population database's business. The number is personal data: callers must
 * not log it, and `problem` sentences never contain it.
 *
 * Nothing here allocates; every function is safe from any thread.
 */
#ifndef LTH_PID_H
#define LTH_PID_H

#include <stdint.h>

#define LTH_PID_LEN 12
#define LTH_PID_ECHO_MAX 32 /* bytes of a key lth_pid_echo() puts back */

/* The values match lth.domain.v1.Sex. */
typedef enum { LTH_SEX_MALE = 1, LTH_SEX_FEMALE = 2 } lth_sex_t;

typedef struct {
    lth_sex_t sex;
    int century;               /* first year of the century of birth: 1900, 2000 or 2100 */
    int birth_year;            /* e.g. 1985 */
    char province_code[4];     /* e.g. "001" */
    const char *province_name; /* static UTF-8, e.g. "Hà Nội" */
    uint32_t sequence;         /* digits 7-12, 0..999999 */
} lth_pid_info_t;

/* Checks `pid` (NUL-terminated). Returns 0 and fills *out (may be NULL), or
 * HUB_EINVAL and points *problem (may be NULL) at a static sentence saying
 * what is wrong, e.g. "the 4th digit (sex and century) must be 0 to 5". */
int lth_pid_check(const char *pid, lth_pid_info_t *out, const char **problem);

/* Writes the personal ID number for these parts into out (13 bytes with the
 * NUL). HUB_EINVAL for an unknown province, a year outside 1900-2199, a
 * sequence over 999999 or a sex other than the two above. */
int lth_pid_compose(const char *province_code, lth_sex_t sex, int birth_year, uint32_t sequence,
                    char out[LTH_PID_LEN + 1]);

/* Copies key as received (NULL reads as "") into out, safe to put back in
 * an answer that says the key is not valid: printable ASCII ('?' for any
 * other byte), at most LTH_PID_ECHO_MAX bytes. */
void lth_pid_echo(const char *key, char out[LTH_PID_ECHO_MAX + 1]);

#endif
