/* hub_jsonw — a small streaming JSON writer for the operator API.
 *
 * One job: append well-formed JSON to a growable buffer, with the commas
 * placed for the caller. Strings are escaped so that the document is always
 * valid JSON and valid UTF-8 whatever bytes they hold: quotes, backslashes
 * and control characters are escaped, "</" is written "<\/" (a document
 * served next to HTML cannot close a script element), and bytes that are not
 * well-formed UTF-8 become U+FFFD.
 *
 * Use: hub_jsonw_init(), then objects and arrays opened and closed in
 * order, with hub_jsonw_key() before each value inside an object. Nesting is
 * limited to HUB_JSONW_MAX_DEPTH. Memory failures and misuse (a value
 * without a key inside an object, unbalanced closes) are remembered: every
 * later call does nothing, and hub_jsonw_finish() reports the first error.
 *
 * Ownership: the writer owns its buffer until hub_jsonw_finish() hands it
 * to the caller (free() it); hub_jsonw_free() releases it otherwise.
 *
 * Errors: HUB_ENOMEM, HUB_EINVAL (misuse). Not thread-safe.
 *
 * Why not jansson (issue 13, item 5): every document written here is built
 * on hubd's one loop, between messages. Built as a jansson tree and dumped,
 * the same document took 2 to 5 times as long (a 1,000-member /api/v1/members
 * answer: 50 ms instead of 11 ms on the shared build machine; 10 members:
 * 0.21 ms instead of 0.06-0.10 ms), a stall the data path would feel. Jansson
 * would also change the text: counters above INT64_MAX (json_int_t is
 * signed), "\/" for every '/', not only in "</", and "-0.0" for a rounded
 * -0.0001. Jansson reads and writes JSON everywhere off that loop (hubctl,
 * the bridge, the tests).
 */
#ifndef HUB_JSONW_H
#define HUB_JSONW_H

#include "hub_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_JSONW_MAX_DEPTH 32

typedef struct {
    hub_buf_t out;                              /* the text; out.error: the first error */
    int depth;
    bool in_object[HUB_JSONW_MAX_DEPTH + 1];    /* per level: object (true) or array */
    bool has_items[HUB_JSONW_MAX_DEPTH + 1];    /* per level: a comma goes before the next */
    bool key_pending;                           /* a key was written; its value comes next */
} hub_jsonw_t;

void hub_jsonw_init(hub_jsonw_t *w);
void hub_jsonw_free(hub_jsonw_t *w);

void hub_jsonw_object_begin(hub_jsonw_t *w);
void hub_jsonw_object_end(hub_jsonw_t *w);
void hub_jsonw_array_begin(hub_jsonw_t *w);
void hub_jsonw_array_end(hub_jsonw_t *w);
void hub_jsonw_key(hub_jsonw_t *w, const char *key);

void hub_jsonw_str(hub_jsonw_t *w, const char *s); /* NULL writes null */
void hub_jsonw_strn(hub_jsonw_t *w, const char *s, size_t len);
void hub_jsonw_u64(hub_jsonw_t *w, uint64_t v);
void hub_jsonw_i64(hub_jsonw_t *w, int64_t v);
/* Finite numbers with up to `decimals` digits after the point (trailing
 * zeros dropped); NaN and infinities write null. */
void hub_jsonw_double(hub_jsonw_t *w, double v, int decimals);
void hub_jsonw_bool(hub_jsonw_t *w, bool v);
void hub_jsonw_null(hub_jsonw_t *w);
/* A comma-separated list ("a,b,,c"; NULL is empty) as an array of its
 * non-empty items. */
void hub_jsonw_csv(hub_jsonw_t *w, const char *list);
/* Writes text that is already JSON (the caller vouches for it). */
void hub_jsonw_raw(hub_jsonw_t *w, const char *json, size_t len);

/* Key-value shorthands for objects. */
void hub_jsonw_kv_str(hub_jsonw_t *w, const char *key, const char *s);
void hub_jsonw_kv_u64(hub_jsonw_t *w, const char *key, uint64_t v);
void hub_jsonw_kv_double(hub_jsonw_t *w, const char *key, double v, int decimals);
void hub_jsonw_kv_bool(hub_jsonw_t *w, const char *key, bool v);

/* Checks that every object and array was closed, hands over the
 * NUL-terminated text (*len excludes the NUL) and resets the writer.
 * On error frees everything and returns the first error. */
int hub_jsonw_finish(hub_jsonw_t *w, char **out, size_t *len);

#endif
