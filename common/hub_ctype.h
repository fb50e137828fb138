/* hub_ctype — the one reader of a content type's parameters
 * ("type/subtype; name=value; name="quoted value""), for everything that
 * reads or rewrites them: the delegation's lth-procedure (hub_delegation.c),
 * the origin a gateway states (hub_outcome.c) and the gateway that states
 * it (adapters/plugins/hubgate). One reader, so that no parameter can be
 * hidden from one of them and shown to another.
 *
 * A content type is cut at every ';' outside a quoted string. A '"'
 * anywhere in a part opens or closes a quoted string, and inside one a
 * backslash escapes the next byte (RFC 9110, 5.6.4). The first part is the
 * media type; each later one is a parameter, NAME or NAME=VALUE, with
 * blanks (space, tab) around the name and the value ignored. A quoted
 * string left open runs to the end, and the part says so (open): such a
 * type could read one way here and another way elsewhere.
 *
 * Nothing is allocated; the parts point into the caller's string.
 * Header-only, as hub_utf8.h: the plugins that use it (hubgate) link
 * nothing of hub_common's but what hub-adapter itself uses.
 */
#ifndef HUB_CTYPE_H
#define HUB_CTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *text; /* the part without blanks around it */
    size_t text_len;  /* 0 for an empty part ("a/b;;c=1") */
    const char *name; /* the part up to '=' (or all of it), blanks trimmed */
    size_t name_len;
    const char *value; /* after '=', blanks trimmed, quotes included; NULL without '=' */
    size_t value_len;
    bool open; /* a quoted string in this part is not closed */
} hub_ct_part_t;

/* The next part of the content type at *cursor (start with *cursor = the
 * content type; the first part is the media type). false at the end. */
static inline bool hub_ct_next(const char **cursor, hub_ct_part_t *out);

/* true when the part's name is name, ignoring case. */
static inline bool hub_ct_named(const hub_ct_part_t *part, const char *name);

/* The part's value into out (size > 0), NUL-terminated: a value that is
 * one quoted string without its quotes and escapes, any other as written.
 * Returns the bytes written; *truncated (may be NULL) says whether the
 * value was cut to size - 1 bytes. An empty string without a value. */
static inline size_t hub_ct_value(const hub_ct_part_t *part, char *out, size_t size,
                                  bool *truncated);

/* ---- implementation ---------------------------------------------------- */

static inline bool hub_ct__blank(char c)
{
    return c == ' ' || c == '\t';
}

/* [*s, *e) without blanks at either end. */
static inline void hub_ct__trim(const char **s, const char **e)
{
    while (*s < *e && hub_ct__blank(**s))
        (*s)++;
    while (*e > *s && hub_ct__blank((*e)[-1]))
        (*e)--;
}

static inline bool hub_ct_next(const char **cursor, hub_ct_part_t *out)
{
    const char *p = *cursor;
    memset(out, 0, sizeof *out);
    if (!p || !*p)
        return false;
    const char *start = p, *eq = NULL;
    bool quoted = false;
    while (*p && (quoted || *p != ';')) {
        if (*p == '"')
            quoted = !quoted;
        else if (*p == '\\' && quoted && p[1])
            p++;
        else if (*p == '=' && !quoted && !eq)
            eq = p;
        p++;
    }
    const char *end = p;
    *cursor = *p == ';' ? p + 1 : p;
    out->open = quoted;
    hub_ct__trim(&start, &end);
    out->text = start;
    out->text_len = (size_t)(end - start);
    const char *name_end = eq ? eq : end;
    out->name = start;
    hub_ct__trim(&out->name, &name_end);
    out->name_len = (size_t)(name_end - out->name);
    if (eq) {
        const char *v = eq + 1, *ve = end;
        hub_ct__trim(&v, &ve);
        out->value = v;
        out->value_len = (size_t)(ve - v);
    }
    return true;
}

static inline bool hub_ct_named(const hub_ct_part_t *part, const char *name)
{
    size_t n = strlen(name);
    return part->name_len == n && strncasecmp(part->name, name, n) == 0;
}

static inline size_t hub_ct_value(const hub_ct_part_t *part, char *out, size_t size,
                                  bool *truncated)
{
    const char *v = part->value;
    size_t len = part->value_len, n = 0;
    bool cut = false;
    /* One quoted string: its first quote opens it, and the one that closes
     * it is the value's last byte. */
    bool whole = false;
    if (v && len >= 2 && v[0] == '"' && !part->open) {
        size_t i = 1;
        while (i < len && v[i] != '"')
            i += v[i] == '\\' && i + 1 < len ? 2 : 1;
        whole = i == len - 1;
    }
    for (size_t i = whole ? 1 : 0; v && i < (whole ? len - 1 : len); i++) {
        if (whole && v[i] == '\\' && i + 1 < len - 1)
            i++;
        if (n + 1 < size)
            out[n++] = v[i];
        else
            cut = true;
    }
    out[n] = '\0';
    if (truncated)
        *truncated = cut;
    return n;
}

#endif
