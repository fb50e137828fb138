/* lth_jsonmap — JSON to and from lth.domain.v1 messages; see lth_jsonmap.h.
 *
 * Both directions walk protobuf-c's descriptors, so every message of
 * domain.proto is covered without code per type. Messages built from JSON
 * are allocated with malloc exactly as protobuf-c's unpacker would, so that
 * protobuf_c_message_free_unpacked(msg, NULL) frees them.
 */
#include "lth_jsonmap.h"

#include "domain.pb-c.h"
#include "hub_error.h"
#include "hub_utf8.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JM_MAX_DEPTH 32           /* domain.proto nests 4 deep; this only guards */
#define JM_SAFE_INT (1LL << 53)   /* largest integer every JSON reader keeps exactly */

/* Every message of domain.proto (protobuf-c has no list of them): a message
 * added there is added here too. */
static const ProtobufCMessageDescriptor *const jm_types[] = {
    &lth__domain__v1__date__descriptor,
    &lth__domain__v1__processing_limit__descriptor,
    &lth__domain__v1__procedure__descriptor,
    &lth__domain__v1__procedure_catalogue__descriptor,
    &lth__domain__v1__document_ref__descriptor,
    &lth__domain__v1__dossier__descriptor,
    &lth__domain__v1__dossier_status_change__descriptor,
    &lth__domain__v1__citizen_lookup_request__descriptor,
    &lth__domain__v1__citizen__descriptor,
    &lth__domain__v1__citizen_lookup_result__descriptor,
    &lth__domain__v1__citizen_lookup_response__descriptor,
    &lth__domain__v1__identity_assurance__descriptor,
    &lth__domain__v1__residence__descriptor,
    &lth__domain__v1__household__descriptor,
    &lth__domain__v1__family_relations__descriptor,
    &lth__domain__v1__declared_identity__descriptor,
    &lth__domain__v1__citizen_verify_request__descriptor,
    &lth__domain__v1__citizen_verify_result__descriptor,
    &lth__domain__v1__citizen_verify_response__descriptor,
};

/* proto/DOMAIN.md's services; events have no reply type. */
static const struct {
    const char *service;
    const ProtobufCMessageDescriptor *request, *reply;
} jm_services[] = {
    {"citizen.lookup/v1", &lth__domain__v1__citizen_lookup_request__descriptor,
     &lth__domain__v1__citizen_lookup_response__descriptor},
    {"citizen.verify/v1", &lth__domain__v1__citizen_verify_request__descriptor,
     &lth__domain__v1__citizen_verify_response__descriptor},
    {"dossier.submit/v1", &lth__domain__v1__dossier__descriptor, NULL},
    {"dossier.status/v1", &lth__domain__v1__dossier_status_change__descriptor, NULL},
    {"catalogue.published/v1", &lth__domain__v1__procedure_catalogue__descriptor, NULL},
};

struct lth_jsonmap_renames {
    size_t n;
    char **json_keys;
    char **fields;
};

/* ---- types and content types ------------------------------------------ */

const ProtobufCMessageDescriptor *lth_jsonmap_type(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof jm_types / sizeof jm_types[0]; i++)
        if (!strcmp(jm_types[i]->short_name, name) || !strcmp(jm_types[i]->name, name))
            return jm_types[i];
    return NULL;
}

const ProtobufCMessageDescriptor *lth_jsonmap_type_of(const char *content_type)
{
    if (!content_type)
        return NULL;
    const char *p = content_type;
    while (*p == ' ')
        p++;
    static const char media[] = "application/x-protobuf";
    if (strncasecmp(p, media, sizeof media - 1) != 0)
        return NULL;
    p += sizeof media - 1;
    /* Parameters: ; name=value, with optional spaces and quotes. */
    while (*p) {
        while (*p == ' ')
            p++;
        if (*p != ';')
            return NULL;
        p++;
        while (*p == ' ')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';' && *p != ' ')
            p++;
        size_t name_len = (size_t)(p - name);
        while (*p == ' ')
            p++;
        if (*p != '=')
            return NULL;
        p++;
        while (*p == ' ')
            p++;
        bool quoted = *p == '"';
        if (quoted)
            p++;
        const char *value = p;
        while (*p && (quoted ? *p != '"' : (*p != ';' && *p != ' ')))
            p++;
        size_t value_len = (size_t)(p - value);
        if (quoted && *p == '"')
            p++;
        if (name_len == 5 && !strncasecmp(name, "proto", 5)) {
            char type[256];
            if (value_len >= sizeof type)
                return NULL;
            memcpy(type, value, value_len);
            type[value_len] = '\0';
            const ProtobufCMessageDescriptor *d = lth_jsonmap_type(type);
            return d && !strcmp(d->name, type) ? d : NULL; /* the full name only */
        }
    }
    return NULL;
}

void lth_jsonmap_content_type(const ProtobufCMessageDescriptor *d, char *out, size_t size)
{
    snprintf(out, size, "application/x-protobuf; proto=%s", d ? d->name : "");
}

const ProtobufCMessageDescriptor *lth_jsonmap_service_type(const char *service, bool reply)
{
    for (size_t i = 0; service && i < sizeof jm_services / sizeof jm_services[0]; i++)
        if (!strcmp(jm_services[i].service, service))
            return reply ? jm_services[i].reply : jm_services[i].request;
    return NULL;
}

bool lth_jsonmap_is_json_type(const char *content_type)
{
    if (!content_type)
        return false;
    const char *p = content_type;
    while (*p == ' ')
        p++;
    size_t len = strcspn(p, "; ");
    static const char app[] = "application/";
    if (len < sizeof app - 1 || strncasecmp(p, app, sizeof app - 1) != 0)
        return false;
    if (len == 16 && !strncasecmp(p, "application/json", 16))
        return true;
    return len > sizeof app + 4 && !strncasecmp(p + len - 5, "+json", 5);
}

/* ---- errors ------------------------------------------------------------- */

static int jm_fail(lth_jsonmap_error_t *err, lth_jsonmap_status_t status, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int jm_fail(lth_jsonmap_error_t *err, lth_jsonmap_status_t status, const char *path,
                   const char *fmt, ...)
{
    if (err) {
        err->status = status;
        snprintf(err->field, sizeof err->field, "%s", path);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return HUB_EPARSE;
}

int lth_jsonmap_parse(const char *text, size_t len, json_t **out, lth_jsonmap_error_t *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    json_error_t je;
    json_t *j = json_loadb(text ? text : "", text ? len : 0,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j) {
        if (err) {
            err->status = LTH_JSONMAP_SYNTAX;
            err->line = je.line;
            err->column = je.column;
            err->position = (size_t)(je.position > 0 ? je.position : 0);
            snprintf(err->message, sizeof err->message,
                     "malformed JSON at line %d, column %d (byte %zu): %s", je.line, je.column,
                     err->position, je.text);
        }
        return HUB_EPARSE;
    }
    *out = j;
    return 0;
}

/* ---- renames -------------------------------------------------------------- */

void lth_jsonmap_renames_destroy(lth_jsonmap_renames_t **r_p)
{
    if (!r_p || !*r_p)
        return;
    lth_jsonmap_renames_t *r = *r_p;
    for (size_t i = 0; i < r->n; i++) {
        free(r->json_keys[i]);
        free(r->fields[i]);
    }
    free(r->json_keys);
    free(r->fields);
    free(r);
    *r_p = NULL;
}

int lth_jsonmap_renames_new(const char *json_text, lth_jsonmap_renames_t **out, char *err,
                            size_t err_size)
{
    lth_jsonmap_error_t perr;
    json_t *j = NULL;
    if (lth_jsonmap_parse(json_text, json_text ? strlen(json_text) : 0, &j, &perr) != 0) {
        snprintf(err, err_size, "%s", perr.message);
        return HUB_EINVAL;
    }
    if (!json_is_object(j) || json_object_size(j) == 0) {
        json_decref(j);
        snprintf(err, err_size,
                 "a field map is a JSON object {\"json key\": \"proto field\", ...} with at "
                 "least one entry");
        return HUB_EINVAL;
    }
    lth_jsonmap_renames_t *r = calloc(1, sizeof *r);
    size_t n = json_object_size(j);
    if (r) {
        r->json_keys = calloc(n, sizeof *r->json_keys);
        r->fields = calloc(n, sizeof *r->fields);
    }
    if (!r || !r->json_keys || !r->fields) {
        json_decref(j);
        lth_jsonmap_renames_destroy(&r);
        return HUB_ENOMEM;
    }
    int rc = 0;
    const char *key;
    json_t *value;
    json_object_foreach(j, key, value)
    {
        if (!json_is_string(value) || !json_string_length(value) || !*key) {
            snprintf(err, err_size, "field map: \"%s\" must map to a proto field name (a string)",
                     key);
            rc = HUB_EINVAL;
            break;
        }
        for (size_t i = 0; i < r->n; i++)
            if (!strcmp(r->fields[i], json_string_value(value))) {
                snprintf(err, err_size, "field map: \"%s\" and \"%s\" both map to '%s'",
                         r->json_keys[i], key, r->fields[i]);
                rc = HUB_EINVAL;
            }
        if (rc != 0)
            break;
        r->json_keys[r->n] = strdup(key);
        r->fields[r->n] = strdup(json_string_value(value));
        r->n++;
        if (!r->json_keys[r->n - 1] || !r->fields[r->n - 1]) {
            rc = HUB_ENOMEM;
            break;
        }
    }
    json_decref(j);
    if (rc != 0) {
        lth_jsonmap_renames_destroy(&r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Writes "a, b, c" (the message's field names) into out. */
static void jm_field_list(const ProtobufCMessageDescriptor *d, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < d->n_fields && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "",
                                 d->fields[i].name);
}

static void jm_key_list(const lth_jsonmap_renames_t *r, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", r->json_keys[i]);
}

int lth_jsonmap_renames_check(const lth_jsonmap_renames_t *r, const ProtobufCMessageDescriptor *d,
                              char *err, size_t err_size)
{
    if (!r || !d)
        return 0;
    for (size_t i = 0; i < r->n; i++)
        if (!protobuf_c_message_descriptor_get_field_by_name(d, r->fields[i])) {
            char fields[256];
            jm_field_list(d, fields, sizeof fields);
            snprintf(err, err_size, "field map: %s has no field '%s' (its fields: %s)",
                     d->short_name, r->fields[i], fields);
            return HUB_EINVAL;
        }
    return 0;
}

/* ---- JSON -> protobuf ----------------------------------------------------- */

/* Appends ".name" or "[i]" to a path and restores it afterwards. */
typedef struct {
    char text[256];
    size_t len;
} jm_path_t;

static size_t jm_path_grow(jm_path_t *p, size_t saved, int n)
{
    if (n > 0)
        p->len = p->len + (size_t)n < sizeof p->text ? p->len + (size_t)n : sizeof p->text - 1;
    return saved;
}

static size_t jm_path_push(jm_path_t *p, const char *name)
{
    return jm_path_grow(p, p->len,
                        snprintf(p->text + p->len, sizeof p->text - p->len, "%s%s",
                                 p->len ? "." : "", name));
}

static size_t jm_path_push_index(jm_path_t *p, size_t index)
{
    return jm_path_grow(p, p->len,
                        snprintf(p->text + p->len, sizeof p->text - p->len, "[%zu]", index));
}

static void jm_path_pop(jm_path_t *p, size_t saved)
{
    p->len = saved;
    p->text[saved] = '\0';
}

static size_t jm_elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

static const char *jm_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* A whole number from a JSON integer or a decimal string. */
static bool jm_signed(const json_t *v, long long min, long long max, long long *out)
{
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        x = strtoll(s, &end, 10);
        if (!*s || isspace((unsigned char)*s) || *end || errno)
            return false;
    } else {
        return false;
    }
    if (x < min || x > max)
        return false;
    *out = x;
    return true;
}

static bool jm_unsigned(const json_t *v, unsigned long long max, unsigned long long *out)
{
    unsigned long long x;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return false;
        x = (unsigned long long)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        if (!isdigit((unsigned char)*s))
            return false;
        x = strtoull(s, &end, 10);
        if (*end || errno)
            return false;
    } else {
        return false;
    }
    if (x > max)
        return false;
    *out = x;
    return true;
}

static void jm_enum_names(const ProtobufCEnumDescriptor *e, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < e->n_values && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "",
                                 e->values[i].name);
}

/* The length of the prefix every value name of e shares up to an '_'
 * ("LOOKUP_MODE_" for LookupMode), so that "AS_OF" finds LOOKUP_MODE_AS_OF. */
static size_t jm_enum_prefix(const ProtobufCEnumDescriptor *e)
{
    if (e->n_values < 2)
        return 0;
    const char *first = e->values[0].name;
    size_t common = strlen(first);
    for (unsigned i = 1; i < e->n_values; i++) {
        size_t k = 0;
        while (k < common && first[k] == e->values[i].name[k])
            k++;
        common = k;
    }
    while (common > 0 && first[common - 1] != '_')
        common--;
    return common;
}

static bool jm_enum_value(const ProtobufCEnumDescriptor *e, const json_t *v, int *out)
{
    if (json_is_integer(v)) {
        long long x = json_integer_value(v);
        if (x < INT_MIN || x > INT_MAX || !protobuf_c_enum_descriptor_get_value(e, (int)x))
            return false;
        *out = (int)x;
        return true;
    }
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t prefix = jm_enum_prefix(e);
    for (unsigned i = 0; i < e->n_values; i++) {
        const char *name = e->values[i].name;
        if (!strcasecmp(name, s) || (prefix && !strcasecmp(name + prefix, s))) {
            *out = e->values[i].value;
            return true;
        }
    }
    return false;
}

static bool jm_is_date(const ProtobufCMessageDescriptor *d)
{
    return d == &lth__domain__v1__date__descriptor;
}

/* "YYYY-MM-DD" with a real calendar day. */
static bool jm_parse_date(const char *s, Lth__Domain__V1__Date *out)
{
    unsigned y, m, d;
    char tail;
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
        sscanf(s, "%4u-%2u-%2u%c", &y, &m, &d, &tail) != 3)
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return false;
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return false;
    unsigned last = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    if (d > last)
        return false;
    out->year = y;
    out->month = m;
    out->day = d;
    return true;
}

/* proto3's JSON mapping: parsers accept a field's lowerCamelCase JSON name
 * ("personalIds") as well as its proto name ("personal_ids"), and generated
 * clients (Java's JsonFormat, .NET's JsonFormatter) print the former. */
static const ProtobufCFieldDescriptor *jm_field_by_json_name(const ProtobufCMessageDescriptor *d,
                                                            const char *key)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *p = d->fields[i].name, *k = key;
        bool upper = false;
        for (; *p && *k; p++) {
            if (*p == '_') {
                upper = true;
                continue;
            }
            char want = upper ? (char)toupper((unsigned char)*p) : *p;
            upper = false;
            if (*k++ != want)
                break;
        }
        if (!*p && !*k)
            return &d->fields[i];
    }
    return NULL;
}

static int jm_message_from(const ProtobufCMessageDescriptor *d, const lth_jsonmap_renames_t *r,
                           const json_t *obj, ProtobufCMessage **out, jm_path_t *path,
                           int depth, lth_jsonmap_error_t *err);

/* Converts one JSON value into the storage of one element of field f. */
static int jm_value_from(const ProtobufCFieldDescriptor *f, const json_t *v, void *slot,
                         jm_path_t *path, int depth, lth_jsonmap_error_t *err)
{
    const char *at = path->text;
    long long s;
    unsigned long long u;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (!jm_signed(v, INT32_MIN, INT32_MAX, &s))
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at,
                           "field '%s' must be a whole number from %d to %d, not %s", at,
                           INT32_MIN, INT32_MAX, jm_json_kind(v));
        *(int32_t *)slot = (int32_t)s;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (!jm_unsigned(v, UINT32_MAX, &u))
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at,
                           "field '%s' must be a whole number from 0 to %u, not %s", at,
                           UINT32_MAX, jm_json_kind(v));
        *(uint32_t *)slot = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (!jm_signed(v, INT64_MIN, INT64_MAX, &s))
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at,
                           "field '%s' must be a whole number (or a decimal string), not %s",
                           at, jm_json_kind(v));
        *(int64_t *)slot = (int64_t)s;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (!jm_unsigned(v, UINT64_MAX, &u))
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at,
                           "field '%s' must be a whole number from 0 (or a decimal string), "
                           "not %s",
                           at, jm_json_kind(v));
        *(uint64_t *)slot = (uint64_t)u;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        if (!json_is_number(v))
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at, "field '%s' must be a number, not %s",
                           at, jm_json_kind(v));
        double x = json_number_value(v);
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)slot = (float)x;
        else
            *(double *)slot = x;
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at,
                           "field '%s' must be true or false, not %s", at, jm_json_kind(v));
        *(protobuf_c_boolean *)slot = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        int x;
        if (!jm_enum_value(e, v, &x)) {
            char names[256];
            jm_enum_names(e, names, sizeof names);
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at, "field '%s' must be one of %s", at,
                           names);
        }
        *(int *)slot = x;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v))
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at, "field '%s' must be a string, not %s",
                           at, jm_json_kind(v));
        char *copy = strdup(json_string_value(v));
        if (!copy)
            return HUB_ENOMEM;
        *(char **)slot = copy;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v))
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at,
                           "field '%s' must be a base64 string, not %s", at, jm_json_kind(v));
        const char *b64 = json_string_value(v);
        size_t len = json_string_length(v), bin_len = 0;
        uint8_t *bin = malloc(len / 4 * 3 + 3);
        if (!bin)
            return HUB_ENOMEM;
        static const int variants[] = {sodium_base64_VARIANT_ORIGINAL,
                                       sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                       sodium_base64_VARIANT_URLSAFE,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING};
        bool ok = false;
        for (size_t i = 0; i < 4 && !ok; i++)
            ok = sodium_base642bin(bin, len / 4 * 3 + 3, b64, len, NULL, &bin_len, NULL,
                                   variants[i]) == 0;
        if (!ok) {
            free(bin);
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at, "field '%s' is not valid base64", at);
        }
        ((ProtobufCBinaryData *)slot)->data = bin;
        ((ProtobufCBinaryData *)slot)->len = bin_len;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *md = f->descriptor;
        if (jm_is_date(md) && json_is_string(v)) {
            Lth__Domain__V1__Date *date = malloc(sizeof *date);
            if (!date)
                return HUB_ENOMEM;
            lth__domain__v1__date__init(date);
            if (!jm_parse_date(json_string_value(v), date)) {
                free(date);
                return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at,
                               "field '%s' must be a date \"YYYY-MM-DD\"", at);
            }
            *(ProtobufCMessage **)slot = &date->base;
            return 0;
        }
        return jm_message_from(md, NULL, v, (ProtobufCMessage **)slot, path, depth + 1, err);
    }
    }
    return jm_fail(err, LTH_JSONMAP_BAD_VALUE, at, "field '%s' has a type this bridge cannot map",
                   at);
}

static int jm_field_from(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const json_t *v,
                         jm_path_t *path, int depth, lth_jsonmap_error_t *err)
{
    char *base = (char *)msg;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (!json_is_array(v))
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, path->text,
                           "field '%s' must be an array, not %s", path->text, jm_json_kind(v));
        size_t n = json_array_size(v);
        if (n == 0)
            return 0;
        size_t es = jm_elem_size(f->type);
        char *array = calloc(n, es);
        if (!array)
            return HUB_ENOMEM;
        /* Owned by the message from here on, so that a failure half-way is
         * freed with it: the count grows with each converted element. */
        *(void **)(base + f->offset) = array;
        size_t *count = (size_t *)(base + f->quantifier_offset);
        for (size_t i = 0; i < n; i++) {
            json_t *item = json_array_get(v, i);
            size_t saved = jm_path_push_index(path, i);
            int rc = json_is_null(item)
                         ? jm_fail(err, LTH_JSONMAP_BAD_VALUE, path->text,
                                   "field '%s': null is not allowed in an array", path->text)
                         : jm_value_from(f, item, array + i * es, path, depth, err);
            jm_path_pop(path, saved);
            if (rc != 0)
                return rc;
            (*count)++;
        }
        return 0;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
        if (*which != 0)
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, path->text,
                           "field '%s' is one of several fields of which only one may be set",
                           path->text);
        int rc = jm_value_from(f, v, base + f->offset, path, depth, err);
        if (rc == 0)
            *which = f->id;
        return rc;
    }
    int rc = jm_value_from(f, v, base + f->offset, path, depth, err);
    if (rc == 0 && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
        f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    return rc;
}

static int jm_message_from(const ProtobufCMessageDescriptor *d, const lth_jsonmap_renames_t *r,
                           const json_t *obj, ProtobufCMessage **out, jm_path_t *path,
                           int depth, lth_jsonmap_error_t *err)
{
    if (depth > JM_MAX_DEPTH)
        return jm_fail(err, LTH_JSONMAP_BAD_VALUE, path->text, "nested too deep at '%s'",
                       path->text);
    if (!json_is_object(obj)) {
        if (!path->len)
            return jm_fail(err, LTH_JSONMAP_BAD_VALUE, "",
                           "the body must be a JSON object (a %s), not %s", d->short_name,
                           jm_json_kind(obj));
        return jm_fail(err, LTH_JSONMAP_BAD_VALUE, path->text,
                       "field '%s' must be an object (a %s), not %s", path->text, d->short_name,
                       jm_json_kind(obj));
    }
    ProtobufCMessage *msg = malloc(d->sizeof_message);
    bool *given = calloc(d->n_fields + 1, sizeof *given); /* a field named twice is an error */
    if (!msg || !given) {
        free(msg);
        free(given);
        return HUB_ENOMEM;
    }
    protobuf_c_message_init(d, msg);
    int rc = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        const char *name = key;
        if (r) {
            name = NULL;
            for (size_t i = 0; i < r->n && !name; i++)
                if (!strcmp(r->json_keys[i], key))
                    name = r->fields[i];
            if (!name) {
                char keys[256];
                jm_key_list(r, keys, sizeof keys);
                rc = jm_fail(err, LTH_JSONMAP_UNKNOWN_FIELD, key,
                             "unmapped field '%s': the fields are %s", key, keys);
                break;
            }
        }
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, name);
        if (!f && !r)
            f = jm_field_by_json_name(d, name);
        size_t saved = jm_path_push(path, key);
        if (!f) {
            char fields[256];
            jm_field_list(d, fields, sizeof fields);
            rc = jm_fail(err, LTH_JSONMAP_UNKNOWN_FIELD, path->text,
                         "unknown field '%s': %s has %s", path->text, d->short_name, fields);
        } else if (given[f - d->fields]) {
            rc = jm_fail(err, LTH_JSONMAP_BAD_VALUE, path->text,
                         "field '%s' is given twice (as %s and in lowerCamelCase); send it once",
                         path->text, f->name);
        } else {
            given[f - d->fields] = true;
            if (!json_is_null(value))
                rc = jm_field_from(msg, f, value, path, depth, err);
        }
        jm_path_pop(path, saved);
        if (rc != 0)
            break;
    }
    free(given);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return rc;
    }
    *out = msg;
    return 0;
}

int lth_jsonmap_to_proto(const ProtobufCMessageDescriptor *d, const lth_jsonmap_renames_t *renames,
                         const json_t *json, ProtobufCMessage **out, lth_jsonmap_error_t *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    if (!d || !json || !out)
        return HUB_EINVAL;
    jm_path_t path = {"", 0};
    return jm_message_from(d, renames, json, out, &path, 0, err);
}

/* ---- protobuf -> JSON ----------------------------------------------------- */

json_t *lth_jsonmap_string(const char *text, size_t len)
{
    json_t *j = json_stringn(text, len);
    if (j)
        return j;
    /* Not UTF-8 (protobuf-c does not check): keep what is valid. */
    char *clean = malloc(len * 3 + 1);
    if (!clean)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = hub_utf8_len((const uint8_t *)text + i, len - i);
        if (n > 0 && text[i] != '\0') {
            memcpy(clean + o, text + i, n);
            o += n;
            i += n;
        } else {
            memcpy(clean + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(clean, o);
    free(clean);
    return j;
}

static json_t *jm_message_to(const ProtobufCMessage *msg, const lth_jsonmap_renames_t *r,
                             int depth);

static json_t *jm_u64(uint64_t x)
{
    if (x <= (uint64_t)JM_SAFE_INT)
        return json_integer((json_int_t)x);
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, x);
    return json_string(text);
}

static json_t *jm_i64(int64_t x)
{
    if (x <= JM_SAFE_INT && x >= -JM_SAFE_INT)
        return json_integer((json_int_t)x);
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, x);
    return json_string(text);
}

static json_t *jm_double(double x)
{
    if (isnan(x))
        return json_string("NaN");
    if (isinf(x))
        return json_string(x > 0 ? "Infinity" : "-Infinity");
    return json_real(x);
}

static json_t *jm_value_to(const ProtobufCFieldDescriptor *f, const void *slot, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)slot);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)slot);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return jm_i64(*(const int64_t *)slot);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return jm_u64(*(const uint64_t *)slot);
    case PROTOBUF_C_TYPE_FLOAT:
        return jm_double(*(const float *)slot);
    case PROTOBUF_C_TYPE_DOUBLE:
        return jm_double(*(const double *)slot);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)slot);
    case PROTOBUF_C_TYPE_ENUM: {
        int x = *(const int *)slot;
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(f->descriptor, x);
        return v ? json_string(v->name) : json_integer(x);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)slot;
        return s ? lth_jsonmap_string(s, strlen(s)) : json_string("");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = slot;
        size_t size = sodium_base64_ENCODED_LEN(b->len, sodium_base64_VARIANT_ORIGINAL);
        char *text = malloc(size);
        if (!text)
            return NULL;
        sodium_bin2base64(text, size, b->data ? b->data : (const unsigned char *)"", b->len,
                          sodium_base64_VARIANT_ORIGINAL);
        json_t *j = json_string(text);
        free(text);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)slot;
        if (!m)
            return json_null();
        /* A Date too is written as the message it is ({"year", "month",
         * "day"}), the standard proto3 JSON mapping that generated clients
         * (JsonFormat.parser()) read; "YYYY-MM-DD" is accepted on input. */
        return jm_message_to(m, NULL, depth + 1);
    }
    }
    return json_null();
}

static json_t *jm_message_to(const ProtobufCMessage *msg, const lth_jsonmap_renames_t *r,
                             int depth)
{
    json_t *obj = json_object();
    if (!obj || depth > JM_MAX_DEPTH)
        return obj;
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *key = f->name;
        if (r) {
            key = NULL;
            for (size_t k = 0; k < r->n && !key; k++)
                if (!strcmp(r->fields[k], f->name))
                    key = r->json_keys[k];
            if (!key)
                continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
            f->type != PROTOBUF_C_TYPE_MESSAGE && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            !*(const protobuf_c_boolean *)(base + f->quantifier_offset))
            continue;
        json_t *value;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            value = json_array();
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *array = *(char *const *)(base + f->offset);
            size_t es = jm_elem_size(f->type);
            for (size_t k = 0; value && k < n; k++)
                if (json_array_append_new(value, jm_value_to(f, array + k * es, depth)) != 0) {
                    json_decref(value);
                    value = NULL;
                }
        } else {
            value = jm_value_to(f, base + f->offset, depth);
            if (json_is_null(value)) { /* an absent sub-message */
                json_decref(value);
                continue;
            }
        }
        if (!value || json_object_set_new(obj, key, value) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

int lth_jsonmap_from_proto(const ProtobufCMessage *msg, const lth_jsonmap_renames_t *renames,
                           json_t **out)
{
    if (!msg || !out)
        return HUB_EINVAL;
    json_t *j = jm_message_to(msg, renames, 0);
    if (!j)
        return HUB_ENOMEM;
    *out = j;
    return 0;
}

/* ---- bytes in, bytes out -------------------------------------------------- */

char *lth_jsonmap_dump(const json_t *json, size_t *len)
{
    char *text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text && len)
        *len = strlen(text);
    return text;
}

int lth_jsonmap_encode(const ProtobufCMessageDescriptor *d, const lth_jsonmap_renames_t *renames,
                       const char *json_text, size_t len, uint8_t **out, size_t *out_len,
                       lth_jsonmap_error_t *err)
{
    json_t *j = NULL;
    int rc = lth_jsonmap_parse(json_text, len, &j, err);
    if (rc != 0)
        return rc;
    ProtobufCMessage *msg = NULL;
    rc = lth_jsonmap_to_proto(d, renames, j, &msg, err);
    json_decref(j);
    if (rc != 0)
        return rc;
    size_t size = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return HUB_ENOMEM;
    }
    protobuf_c_message_pack(msg, buf);
    protobuf_c_message_free_unpacked(msg, NULL);
    *out = buf;
    *out_len = size;
    return 0;
}

int lth_jsonmap_decode(const ProtobufCMessageDescriptor *d, const lth_jsonmap_renames_t *renames,
                       const uint8_t *data, size_t len, char **json_out, size_t *json_len)
{
    ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, len, data);
    if (!msg)
        return HUB_EPARSE;
    json_t *j = NULL;
    int rc = lth_jsonmap_from_proto(msg, renames, &j);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (rc != 0)
        return rc;
    char *text = lth_jsonmap_dump(j, json_len);
    json_decref(j);
    if (!text)
        return HUB_ENOMEM;
    *json_out = text;
    return 0;
}

int lth_jsonmap_reply(adp_reply_t *reply, json_t *doc, const char *content_type)
{
    size_t len = 0;
    char *text = doc ? lth_jsonmap_dump(doc, &len) : NULL;
    json_decref(doc);
    if (!text)
        return HUB_ENOMEM;
    reply->payload = (uint8_t *)text;
    reply->payload_len = len;
    snprintf(reply->content_type, sizeof reply->content_type, "%s", content_type);
    return 0;
}

int lth_jsonmap_reply_problem(adp_reply_t *reply, int status, const char *message, json_t *extra)
{
    json_t *doc = json_pack("{s:s,s:i}", "error", message, "status", status);
    if (doc && extra)
        json_object_update(doc, extra);
    json_decref(extra);
    return lth_jsonmap_reply(reply, doc, LTH_JSONMAP_PROBLEM_TYPE);
}
