/* lth_jsonmap — JSON to and from the lth.domain.v1 protobuf messages
 * (proto/domain.proto), so that the HTTP bridge can carry domain messages
 * for systems that speak only JSON.
 *
 * The JSON form is proto3's JSON mapping, with the proto field names as
 * written in domain.proto (snake_case), and three conveniences:
 *   - enums by value name, e.g. "LOOKUP_MODE_AS_OF"; on input also the short
 *     form without the enum's prefix ("AS_OF", any case) or the number;
 *   - lth.domain.v1.Date as "YYYY-MM-DD" (on input also an object with
 *     year, month and day);
 *   - 64-bit integers as JSON numbers up to 2^53 and as decimal strings
 *     beyond (input takes either form); bytes as base64.
 * JSON null is an absent field. Output has every field of a present message,
 * defaults included (0, "", false, [], the enum's zero value), so that a
 * client never has to know proto3's "default means absent" rule; absent
 * sub-messages are left out.
 *
 * A rename table (lth_jsonmap_renames_t, from the bridge's plugin.map.*
 * settings) gives the top-level fields other JSON names, e.g.
 * {"ids":"personal_ids","mode":"mode"}: with one, the JSON side has exactly
 * the table's keys — another key on input is refused as unmapped, and on
 * output fields outside the table are left out. Nested messages keep their
 * proto field names.
 *
 * Errors: functions return 0 or a negative HUB_E* code. Conversions from
 * JSON fill an lth_jsonmap_error_t: its status tells malformed JSON (with
 * line, column and byte position) from a JSON document that does not fit the
 * message (unknown or unmapped field, wrong type, value out of range), and
 * `field` names the field at fault by its path, e.g. "results[2].citizen.sex".
 *
 * Ownership: a message returned by lth_jsonmap_to_proto() is the caller's,
 * freed with protobuf_c_message_free_unpacked(msg, NULL); json_t values
 * returned are the caller's (json_decref); strings returned are malloc'ed.
 * Descriptors are static. Nothing here keeps state: any thread may call.
 */
#ifndef LTH_JSONMAP_H
#define LTH_JSONMAP_H

#include "adp.h"

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lth_jsonmap_renames lth_jsonmap_renames_t;

typedef enum {
    LTH_JSONMAP_OK = 0,
    LTH_JSONMAP_SYNTAX,        /* not JSON at all (an HTTP client error: 400) */
    LTH_JSONMAP_UNKNOWN_FIELD, /* a key that is no field of the message, or not in the renames */
    LTH_JSONMAP_BAD_VALUE      /* a value of the wrong JSON type or out of range */
} lth_jsonmap_status_t;

typedef struct {
    lth_jsonmap_status_t status;
    char field[256];   /* path of the field at fault; "" for the document itself */
    int line, column;  /* LTH_JSONMAP_SYNTAX: where (1-based) */
    size_t position;   /* LTH_JSONMAP_SYNTAX: byte offset of the error */
    char message[512]; /* a sentence that names the field and says what to send */
} lth_jsonmap_error_t;

/* The descriptor of a domain message by name, "CitizenLookupRequest" or
 * "lth.domain.v1.CitizenLookupRequest"; NULL if domain.proto has none. */
const ProtobufCMessageDescriptor *lth_jsonmap_type(const char *name);
/* The domain message a content type names ("application/x-protobuf;
 * proto=lth.domain.v1.X"), or NULL. */
const ProtobufCMessageDescriptor *lth_jsonmap_type_of(const char *content_type);
/* Writes the content type of messages of type d into out. */
void lth_jsonmap_content_type(const ProtobufCMessageDescriptor *d, char *out, size_t size);
/* The request (reply = false) or reply type of a service of proto/DOMAIN.md,
 * e.g. citizen.lookup/v1; NULL for other services and for events' replies. */
const ProtobufCMessageDescriptor *lth_jsonmap_service_type(const char *service, bool reply);
/* true for application/json and any application/...+json media type. */
bool lth_jsonmap_is_json_type(const char *content_type);

/* Parses JSON text (any value; duplicate keys refused). On malformed input
 * returns HUB_EPARSE with err->status = LTH_JSONMAP_SYNTAX. */
int lth_jsonmap_parse(const char *text, size_t len, json_t **out, lth_jsonmap_error_t *err);

/* Reads a rename table, a JSON object {"json key": "proto field", ...}.
 * HUB_EINVAL with a sentence in err when it is not one, or maps two keys to
 * one field. */
int lth_jsonmap_renames_new(const char *json_text, lth_jsonmap_renames_t **out, char *err,
                            size_t err_size);
/* HUB_EINVAL when the table names a field that type d does not have. */
int lth_jsonmap_renames_check(const lth_jsonmap_renames_t *r, const ProtobufCMessageDescriptor *d,
                              char *err, size_t err_size);
void lth_jsonmap_renames_destroy(lth_jsonmap_renames_t **r_p);

/* JSON object -> message of type d (renames may be NULL). HUB_EPARSE with
 * err filled when the JSON does not fit; HUB_ENOMEM. */
int lth_jsonmap_to_proto(const ProtobufCMessageDescriptor *d, const lth_jsonmap_renames_t *renames,
                         const json_t *json, ProtobufCMessage **out, lth_jsonmap_error_t *err);
/* Message -> JSON object (renames may be NULL). HUB_ENOMEM only. */
int lth_jsonmap_from_proto(const ProtobufCMessage *msg, const lth_jsonmap_renames_t *renames,
                           json_t **out);

/* The two directions on bytes: JSON text -> packed message of type d, and
 * packed message -> compact JSON text (HUB_EPARSE when the bytes are not a
 * message of type d). Outputs are malloc'ed. */
int lth_jsonmap_encode(const ProtobufCMessageDescriptor *d, const lth_jsonmap_renames_t *renames,
                       const char *json_text, size_t len, uint8_t **out, size_t *out_len,
                       lth_jsonmap_error_t *err);
int lth_jsonmap_decode(const ProtobufCMessageDescriptor *d, const lth_jsonmap_renames_t *renames,
                       const uint8_t *data, size_t len, char **json_out, size_t *json_len);

/* Compact JSON text of a value (malloc'ed), or NULL when out of memory. */
char *lth_jsonmap_dump(const json_t *json, size_t *len);
/* A JSON string of arbitrary bytes: invalid UTF-8 becomes U+FFFD. */
json_t *lth_jsonmap_string(const char *text, size_t len);

/* ---- replies of the plugins that answer in JSON (adp.h) ---- */

#define LTH_JSONMAP_PROBLEM_TYPE "application/problem+json"

/* Fills reply with doc (consumed) as compact JSON text of content_type: 0,
 * or HUB_ENOMEM (also for a NULL doc), reply untouched. */
int lth_jsonmap_reply(adp_reply_t *reply, json_t *doc, const char *content_type);
/* Fills reply with the problem document {"error": message, "status":
 * status} plus the members of extra (a JSON object, may be NULL; consumed),
 * as LTH_JSONMAP_PROBLEM_TYPE: 0, or HUB_ENOMEM (also when message is not
 * UTF-8). */
int lth_jsonmap_reply_problem(adp_reply_t *reply, int status, const char *message, json_t *extra);

#endif
