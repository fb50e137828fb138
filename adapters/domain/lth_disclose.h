/* lth_disclose — fields by purpose: which fields of a citizen's record a
 * consumer may receive, or have compared, for one purpose.
 *
 * The population database's operator (the data owner) keeps its own copy of
 * the data-sharing agreements it signed, as a disclosure file; the provider
 * enforces it on every answer, whatever the requester asks (proto/DOMAIN.md,
 * "Fields by purpose", says why the owner's side and not the hub's). One rule
 * a line:
 *
 *   # comment (also after a line's last word)
 *   disclose FIELD[,FIELD…] to CONSUMER for PURPOSE
 *   confirm  FIELD[,FIELD…] to CONSUMER for PURPOSE
 *
 * - `disclose`: citizen.lookup/v1 returns these fields (and citizen.verify/v1
 *   may compare them); `confirm`: only citizen.verify/v1 may compare them,
 *   the look-up never returns them.
 * - FIELD is one of full_name, date_of_birth, sex, birth_province_code,
 *   residence (permanent and temporary residence), household (head and
 *   relationship to the head), family (parents, spouse), last_changed.
 * - CONSUMER is a full member id; PURPOSE a purpose code: 1 to 64 of
 *   a-z 0-9 . _ - (e.g. residence-registration), what a request's
 *   purpose_code names.
 * - Several lines for one (consumer, purpose) add up; the same line twice is
 *   an error. A consumer or purpose without a line gets nothing.
 * Errors name FILE:LINE and what to write; a file with one error is refused
 * whole.
 *
 * Ownership: a loaded set is immutable until lth_disclosure_destroy(); it
 * allocates only when loading.
 */
#ifndef LTH_DISCLOSE_H
#define LTH_DISCLOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fields of a record a rule can name, as bits. */
typedef uint32_t lth_fields_t;
#define LTH_FIELD_FULL_NAME (1u << 0)
#define LTH_FIELD_DATE_OF_BIRTH (1u << 1)
#define LTH_FIELD_SEX (1u << 2)
#define LTH_FIELD_BIRTH_PROVINCE (1u << 3)
#define LTH_FIELD_RESIDENCE (1u << 4)
#define LTH_FIELD_HOUSEHOLD (1u << 5)
#define LTH_FIELD_FAMILY (1u << 6)
#define LTH_FIELD_LAST_CHANGED (1u << 7)
#define LTH_FIELDS_ALL 0xffu
#define LTH_FIELD_COUNT 8
#define LTH_PURPOSE_CODE_MAX 64 /* bytes of a purpose code, without the NUL */

/* The name of field bit i (0 .. LTH_FIELD_COUNT-1), e.g. "residence". */
const char *lth_field_name(unsigned i);
/* Parses "full_name,residence" into *out. HUB_EINVAL with *bad pointing at
 * the first unknown name in `list` (its length in *bad_len). */
int lth_fields_parse(const char *list, lth_fields_t *out, const char **bad, size_t *bad_len);
/* NULL if `code` is a valid purpose code, else what is wrong with it. */
const char *lth_purpose_code_problem(const char *code);

typedef enum { LTH_USE_LOOKUP = 0, LTH_USE_VERIFY = 1 } lth_use_t;

typedef struct lth_disclosure lth_disclosure_t;

/* Reads a disclosure file. HUB_ENOENT / HUB_EIO (cannot read), HUB_EINVAL
 * (over 1 MiB), HUB_EPARSE (not text, or a bad line: err "FILE:LINE: what
 * is wrong; what to write"), HUB_EEXIST (a repeated line), HUB_ENOMEM. */
int lth_disclosure_load(const char *path, lth_disclosure_t **out, char *err, size_t err_size);
/* A plugin's plugin.disclosure_file setting: loads `path`, or sets *out to
 * NULL when path is NULL (not set). Errors as lth_disclosure_load(), the
 * sentence in err starting "plugin.disclosure_file: ". */
int lth_disclosure_setting(const char *path, lth_disclosure_t **out, char *err, size_t err_size);
/* The same over a NUL-terminated text; `name` is used in messages. */
int lth_disclosure_parse(const char *name, const char *text, lth_disclosure_t **out, char *err,
                         size_t err_size);
void lth_disclosure_destroy(lth_disclosure_t **self_p);
size_t lth_disclosure_count(const lth_disclosure_t *self);

/* The fields `consumer` may receive (LTH_USE_LOOKUP: disclose lines) or have
 * compared (LTH_USE_VERIFY: disclose and confirm lines) for `purpose`.
 * Returns false, *out = 0, when no line names that consumer and purpose. */
bool lth_disclosure_fields(const lth_disclosure_t *self, const char *consumer, const char *purpose,
                           lth_use_t use, lth_fields_t *out);

#endif
