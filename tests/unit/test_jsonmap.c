/* lth_jsonmap: JSON to and from the lth.domain.v1 messages for the HTTP
 * bridge — the mapped types both ways, renamed fields, errors that name the
 * field, and malformed JSON with its position. */
#include "domain.pb-c.h"
#include "hub_error.h"
#include "lth_jsonmap.h"
#include "testkit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PID_A "001085012345"
#define PID_B "079301000123"

typedef Lth__Domain__V1__CitizenLookupRequest request_t;
typedef Lth__Domain__V1__CitizenLookupResponse response_t;

static const ProtobufCMessageDescriptor *const request_type =
    &lth__domain__v1__citizen_lookup_request__descriptor;
static const ProtobufCMessageDescriptor *const response_type =
    &lth__domain__v1__citizen_lookup_response__descriptor;

static json_t *parse_ok(const char *text)
{
    json_t *j = NULL;
    lth_jsonmap_error_t err;
    ck_assert_msg(lth_jsonmap_parse(text, strlen(text), &j, &err) == 0, "%s", err.message);
    return j;
}

/* Parses text (asserting it is JSON) and converts it to a message of type
 * d into *m and *err: lth_jsonmap_to_proto's code. */
static int to_proto(const ProtobufCMessageDescriptor *d, const lth_jsonmap_renames_t *r,
                    const char *text, ProtobufCMessage **m, lth_jsonmap_error_t *err)
{
    json_t *j = parse_ok(text);
    *m = NULL;
    int rc = lth_jsonmap_to_proto(d, r, j, m, err);
    json_decref(j);
    return rc;
}

/* Converts text to a message of type d; asserts success. */
static ProtobufCMessage *to_proto_ok(const ProtobufCMessageDescriptor *d,
                                     const lth_jsonmap_renames_t *r, const char *text)
{
    ProtobufCMessage *m;
    lth_jsonmap_error_t err;
    int rc = to_proto(d, r, text, &m, &err);
    ck_assert_msg(rc == 0, "%s: %s", text, err.message);
    return m;
}

/* Converts text expecting a refusal; returns the error. */
static lth_jsonmap_error_t to_proto_fails(const ProtobufCMessageDescriptor *d,
                                          const lth_jsonmap_renames_t *r, const char *text)
{
    ProtobufCMessage *m;
    lth_jsonmap_error_t err;
    int rc = to_proto(d, r, text, &m, &err);
    ck_assert_msg(rc == HUB_EPARSE, "%s was accepted", text);
    ck_assert_ptr_null(m);
    return err;
}

static lth_jsonmap_renames_t *renames(const char *text)
{
    lth_jsonmap_renames_t *r = NULL;
    char err[512];
    ck_assert_msg(lth_jsonmap_renames_new(text, &r, err, sizeof err) == 0, "%s", err);
    return r;
}

START_TEST(request_from_json_with_renames)
{
    lth_jsonmap_renames_t *r =
        renames("{\"ids\":\"personal_ids\",\"mode\":\"mode\",\"on\":\"date\",\"purpose\":\"purpose\"}");
    char err[512];
    ck_assert_int_eq(lth_jsonmap_renames_check(r, request_type, err, sizeof err), 0);
    request_t *req = (request_t *)to_proto_ok(
        request_type, r,
        "{\"ids\":[\"" PID_A "\",\"" PID_B "\"],\"mode\":\"as_of\",\"on\":\"2020-02-29\","
        "\"purpose\":\"Đăng ký khai sinh\"}");
    ck_assert_uint_eq(req->n_personal_ids, 2);
    ck_assert_str_eq(req->personal_ids[0], PID_A);
    ck_assert_str_eq(req->personal_ids[1], PID_B);
    ck_assert_int_eq(req->mode, LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_AS_OF);
    ck_assert_ptr_nonnull(req->date);
    ck_assert_uint_eq(req->date->year, 2020);
    ck_assert_uint_eq(req->date->month, 2);
    ck_assert_uint_eq(req->date->day, 29);
    ck_assert_str_eq(req->purpose, "Đăng ký khai sinh");
    ck_assert_str_eq(req->dossier_code, ""); /* not given: the default */

    /* Back to JSON through the same table: the same keys, nothing else. */
    json_t *j = NULL;
    ck_assert_int_eq(lth_jsonmap_from_proto(&req->base, r, &j), 0);
    ck_assert_uint_eq(json_object_size(j), 4);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "ids"), 1)), PID_B);
    ck_assert_str_eq(json_string_value(json_object_get(j, "mode")), "LOOKUP_MODE_AS_OF");
    /* The date comes back as proto3 JSON writes a Date message. */
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "on"), "year")), 2020);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "on"), "day")), 29);
    ck_assert_ptr_null(json_object_get(j, "dossier_code"));
    json_decref(j);
    protobuf_c_message_free_unpacked(&req->base, NULL);

    /* A key outside the table is refused by its name, even a proto field's. */
    lth_jsonmap_error_t e =
        to_proto_fails(request_type, r, "{\"ids\":[],\"purpose\":\"x\",\"dossier_code\":\"D1\"}");
    ck_assert_int_eq(e.status, LTH_JSONMAP_UNKNOWN_FIELD);
    ck_assert_str_eq(e.field, "dossier_code");
    ck_assert_msg(strstr(e.message, "unmapped field 'dossier_code'") &&
                      strstr(e.message, "ids, mode, on, purpose"),
                  "%s", e.message);
    lth_jsonmap_renames_destroy(&r);
    ck_assert_ptr_null(r);
}
END_TEST

START_TEST(request_with_proto_names_and_enum_forms)
{
    static const char *const modes[] = {"\"LOOKUP_MODE_CHANGES_SINCE\"", "\"changes_since\"",
                                        "\"Changes_Since\"", "2"};
    for (size_t i = 0; i < 4; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"personal_ids\":[\"" PID_A "\"],\"mode\":%s,\"date\":{\"year\":2024,"
                 "\"month\":1,\"day\":31},\"purpose\":\"p\",\"dossier_code\":null}",
                 modes[i]);
        request_t *req = (request_t *)to_proto_ok(request_type, NULL, text);
        ck_assert_int_eq(req->mode, LTH__DOMAIN__V1__LOOKUP_MODE__LOOKUP_MODE_CHANGES_SINCE);
        ck_assert_uint_eq(req->date->day, 31);
        ck_assert_str_eq(req->dossier_code, "");
        protobuf_c_message_free_unpacked(&req->base, NULL);
    }
    /* Packed bytes both ways. */
    uint8_t *pb = NULL;
    size_t len = 0;
    lth_jsonmap_error_t err;
    const char *text = "{\"personal_ids\":[\"" PID_A "\"],\"purpose\":\"p\"}";
    ck_assert_int_eq(lth_jsonmap_encode(request_type, NULL, text, strlen(text), &pb, &len, &err),
                     0);
    char *json = NULL;
    size_t json_len = 0;
    ck_assert_int_eq(lth_jsonmap_decode(request_type, NULL, pb, len, &json, &json_len), 0);
    ck_assert_str_eq(json, "{\"personal_ids\":[\"" PID_A "\"],\"mode\":\"LOOKUP_MODE_CURRENT\","
                           "\"purpose\":\"p\",\"dossier_code\":\"\",\"purpose_code\":\"\"}");
    ck_assert_uint_eq(json_len, strlen(json));
    free(json);
    free(pb);
    /* Bytes that are not the type. */
    ck_assert_int_eq(lth_jsonmap_decode(request_type, NULL, (const uint8_t *)"\xff\xff\xff", 3,
                                        &json, &json_len),
                     HUB_EPARSE);
}
END_TEST

/* What Java's JsonFormat.printer() and .NET's JsonFormatter write by
 * default: lowerCamelCase names (proto3 JSON mapping). Accepted like the
 * proto names; a field given under both names is refused. */
START_TEST(request_with_lower_camel_case_names)
{
    request_t *req = (request_t *)to_proto_ok(
        request_type, NULL,
        "{\"personalIds\":[\"" PID_A "\",\"" PID_B "\"],\"mode\":\"LOOKUP_MODE_AS_OF\","
        "\"date\":{\"year\":2024,\"month\":2,\"day\":29},\"purpose\":\"p\","
        "\"dossierCode\":\"000.00.01.H26-0001\"}");
    ck_assert_uint_eq(req->n_personal_ids, 2);
    ck_assert_str_eq(req->personal_ids[1], PID_B);
    ck_assert_str_eq(req->dossier_code, "000.00.01.H26-0001");
    protobuf_c_message_free_unpacked(&req->base, NULL);
    lth_jsonmap_error_t err = to_proto_fails(
        request_type, NULL,
        "{\"personal_ids\":[\"" PID_A "\"],\"personalIds\":[\"" PID_B "\"],\"purpose\":\"p\"}");
    ck_assert_ptr_nonnull(strstr(err.message, "twice"));
    /* Not a near miss: "personalids" and "PersonalIds" are unknown. */
    err = to_proto_fails(request_type, NULL, "{\"personalids\":[\"" PID_A "\"]}");
    ck_assert_int_eq(err.status, LTH_JSONMAP_UNKNOWN_FIELD);
    err = to_proto_fails(request_type, NULL, "{\"PersonalIds\":[\"" PID_A "\"]}");
    ck_assert_int_eq(err.status, LTH_JSONMAP_UNKNOWN_FIELD);
}
END_TEST

START_TEST(errors_name_the_field)
{
    lth_jsonmap_error_t e = to_proto_fails(request_type, NULL, "{\"personal_idz\":[\"1\"]}");
    ck_assert_int_eq(e.status, LTH_JSONMAP_UNKNOWN_FIELD);
    ck_assert_str_eq(e.field, "personal_idz");
    ck_assert_msg(strstr(e.message, "unknown field 'personal_idz'") &&
                      strstr(e.message, "CitizenLookupRequest has personal_ids, mode, date, "
                                        "purpose, dossier_code"),
                  "%s", e.message);

    e = to_proto_fails(request_type, NULL, "{\"personal_ids\":\"" PID_A "\"}");
    ck_assert_int_eq(e.status, LTH_JSONMAP_BAD_VALUE);
    ck_assert_str_eq(e.field, "personal_ids");
    ck_assert_msg(strstr(e.message, "must be an array, not a string"), "%s", e.message);

    e = to_proto_fails(request_type, NULL, "{\"personal_ids\":[\"a\",7]}");
    ck_assert_str_eq(e.field, "personal_ids[1]");
    ck_assert_msg(strstr(e.message, "must be a string, not an integer"), "%s", e.message);

    e = to_proto_fails(request_type, NULL, "{\"mode\":\"YESTERDAY\"}");
    ck_assert_str_eq(e.field, "mode");
    ck_assert_msg(strstr(e.message, "LOOKUP_MODE_CURRENT, LOOKUP_MODE_AS_OF"), "%s", e.message);
    e = to_proto_fails(request_type, NULL, "{\"mode\":9}");
    ck_assert_str_eq(e.field, "mode");

    e = to_proto_fails(request_type, NULL, "{\"date\":\"2021-02-29\"}");
    ck_assert_str_eq(e.field, "date");
    ck_assert_msg(strstr(e.message, "YYYY-MM-DD"), "%s", e.message);
    e = to_proto_fails(request_type, NULL, "{\"date\":{\"year\":-1}}");
    ck_assert_str_eq(e.field, "date.year");
    e = to_proto_fails(request_type, NULL, "{\"date\":{\"year\":2020,\"week\":3}}");
    ck_assert_int_eq(e.status, LTH_JSONMAP_UNKNOWN_FIELD);
    ck_assert_str_eq(e.field, "date.week");
    e = to_proto_fails(request_type, NULL, "{\"purpose\":true}");
    ck_assert_str_eq(e.field, "purpose");

    /* Deep in a response: the path says where. */
    e = to_proto_fails(response_type, NULL,
                       "{\"results\":[{\"personal_id\":\"x\"},{\"citizen\":{\"sex\":\"OTHER\"}}]}");
    ck_assert_str_eq(e.field, "results[1].citizen.sex");
    ck_assert_msg(strstr(e.message, "SEX_UNSPECIFIED, SEX_MALE, SEX_FEMALE"), "%s", e.message);

    /* Not an object at all. */
    e = to_proto_fails(request_type, NULL, "[1,2]");
    ck_assert_int_eq(e.status, LTH_JSONMAP_BAD_VALUE);
    ck_assert_str_eq(e.field, "");
    ck_assert_msg(strstr(e.message, "must be a JSON object"), "%s", e.message);

    /* Integers: ranges, and 64-bit ones as strings. */
    const ProtobufCMessageDescriptor *limit = lth_jsonmap_type("ProcessingLimit");
    e = to_proto_fails(limit, NULL, "{\"amount\":4294967296}");
    ck_assert_str_eq(e.field, "amount");
    e = to_proto_fails(limit, NULL, "{\"amount\":1.5}");
    ck_assert_msg(strstr(e.message, "whole number"), "%s", e.message);
    const ProtobufCMessageDescriptor *catalogue = lth_jsonmap_type("ProcedureCatalogue");
    Lth__Domain__V1__ProcedureCatalogue *c = (Lth__Domain__V1__ProcedureCatalogue *)to_proto_ok(
        catalogue, NULL, "{\"version\":\"18446744073709551615\",\"published_at_us\":1700000000000000}");
    ck_assert_uint_eq(c->version, UINT64_MAX);
    json_t *j = NULL;
    ck_assert_int_eq(lth_jsonmap_from_proto(&c->base, NULL, &j), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "version")), "18446744073709551615");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "published_at_us")), 1700000000000000);
    ck_assert(json_is_array(json_object_get(j, "procedures")));
    json_decref(j);
    protobuf_c_message_free_unpacked(&c->base, NULL);
    e = to_proto_fails(catalogue, NULL, "{\"version\":\"-1\"}");
    ck_assert_str_eq(e.field, "version");
}
END_TEST

START_TEST(malformed_json_says_where)
{
    json_t *j = NULL;
    lth_jsonmap_error_t e;
    const char *text = "{\"ids\": [\"001\", }";
    ck_assert_int_eq(lth_jsonmap_parse(text, strlen(text), &j, &e), HUB_EPARSE);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(e.status, LTH_JSONMAP_SYNTAX);
    ck_assert_int_eq(e.line, 1);
    ck_assert_int_eq(e.column, 17);
    ck_assert_uint_eq(e.position, 17);
    ck_assert_msg(strstr(e.message, "malformed JSON at line 1, column 17 (byte 17)"), "%s",
                  e.message);

    text = "{\n  \"purpose\": \"x\",\n  \"mode\": CURRENT\n}";
    ck_assert_int_eq(lth_jsonmap_parse(text, strlen(text), &j, &e), HUB_EPARSE);
    ck_assert_int_eq(e.line, 3);
    ck_assert_msg(strstr(e.message, "line 3"), "%s", e.message);

    text = "{\"a\":1,\"a\":2}";
    ck_assert_int_eq(lth_jsonmap_parse(text, strlen(text), &j, &e), HUB_EPARSE);
    ck_assert_msg(strstr(e.message, "duplicate"), "%s", e.message);
    ck_assert_int_eq(lth_jsonmap_parse("", 0, &j, &e), HUB_EPARSE);
    ck_assert_int_eq(lth_jsonmap_parse("{} x", 4, &j, &e), HUB_EPARSE);
    /* A NUL inside a string would cut C strings short: refused. */
    text = "{\"purpose\":\"a\\u0000b\"}";
    ck_assert_int_eq(lth_jsonmap_parse(text, strlen(text), &j, &e), HUB_EPARSE);
}
END_TEST

static Lth__Domain__V1__Date *date(unsigned y, unsigned m, unsigned d)
{
    Lth__Domain__V1__Date *x = malloc(sizeof *x);
    lth__domain__v1__date__init(x);
    x->year = y;
    x->month = m;
    x->day = d;
    return x;
}

START_TEST(response_to_json)
{
    Lth__Domain__V1__Citizen citizen = LTH__DOMAIN__V1__CITIZEN__INIT;
    citizen.personal_id = PID_A;
    citizen.full_name = "Nguyễn Thị Lan";
    citizen.date_of_birth = date(1985, 3, 7);
    citizen.sex = LTH__DOMAIN__V1__SEX__SEX_FEMALE;
    citizen.birth_province_code = "001";
    citizen.place_of_residence = "Phường Láng Hạ, Quận Đống Đa, Hà Nội";
    citizen.last_changed = date(2020, 12, 1);
    Lth__Domain__V1__CitizenLookupResult found = LTH__DOMAIN__V1__CITIZEN_LOOKUP_RESULT__INIT;
    found.personal_id = PID_A;
    found.status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND;
    found.citizen = &citizen;
    Lth__Domain__V1__CitizenLookupResult missing = LTH__DOMAIN__V1__CITIZEN_LOOKUP_RESULT__INIT;
    missing.personal_id = PID_B;
    missing.status = LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_NOT_FOUND;
    missing.reason = "no record with this personal ID number";
    Lth__Domain__V1__CitizenLookupResult *results[] = {&found, &missing};
    response_t resp = LTH__DOMAIN__V1__CITIZEN_LOOKUP_RESPONSE__INIT;
    resp.results = results;
    resp.n_results = 2;

    json_t *j = NULL;
    ck_assert_int_eq(lth_jsonmap_from_proto(&resp.base, NULL, &j), 0);
    char *text = lth_jsonmap_dump(j, NULL);
    ck_assert_str_eq(
        text,
        "{\"status\":\"RESPONSE_STATUS_OK\",\"reason\":\"\",\"results\":[{\"personal_id\":\"" PID_A
        "\",\"status\":\"LOOKUP_STATUS_FOUND\",\"reason\":\"\",\"citizen\":{\"personal_id\":"
        "\"" PID_A "\",\"full_name\":\"Nguyễn Thị Lan\",\"date_of_birth\":{\"year\":1985,\"month\":3,\"day\":7},"
        "\"sex\":\"SEX_FEMALE\",\"birth_province_code\":\"001\",\"place_of_residence\":"
        "\"Phường Láng Hạ, Quận Đống Đa, Hà Nội\",\"last_changed\":{\"year\":2020,\"month\":12,\"day\":1}},"
        "\"withheld_fields\":[]},"
        "{\"personal_id\":\"" PID_B "\",\"status\":\"LOOKUP_STATUS_NOT_FOUND\",\"reason\":"
        "\"no record with this personal ID number\",\"withheld_fields\":[]}],"
        "\"mode\":\"LOOKUP_MODE_CURRENT\"}");
    free(text);

    /* And back: the same message. */
    ProtobufCMessage *back = NULL;
    lth_jsonmap_error_t err;
    ck_assert_int_eq(lth_jsonmap_to_proto(response_type, NULL, j, &back, &err), 0);
    json_decref(j);
    size_t a_len = protobuf_c_message_get_packed_size(&resp.base);
    size_t b_len = protobuf_c_message_get_packed_size(back);
    ck_assert_uint_eq(a_len, b_len);
    uint8_t *a = malloc(a_len), *b = malloc(b_len);
    protobuf_c_message_pack(&resp.base, a);
    protobuf_c_message_pack(back, b);
    ck_assert_mem_eq(a, b, a_len);
    free(a);
    free(b);
    protobuf_c_message_free_unpacked(back, NULL);

    /* A response table renames and selects the top level only. */
    lth_jsonmap_renames_t *r = renames("{\"ok\":\"status\",\"people\":\"results\"}");
    ck_assert_int_eq(lth_jsonmap_from_proto(&resp.base, r, &j), 0);
    ck_assert_uint_eq(json_object_size(j), 2);
    ck_assert_str_eq(json_string_value(json_object_get(j, "ok")), "RESPONSE_STATUS_OK");
    json_t *first = json_array_get(json_object_get(j, "people"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(first, "personal_id")), PID_A);
    json_decref(j);
    lth_jsonmap_renames_destroy(&r);
    free(citizen.date_of_birth);
    free(citizen.last_changed);
}
END_TEST

START_TEST(bytes_and_bad_text)
{
    const ProtobufCMessageDescriptor *doc = lth_jsonmap_type("lth.domain.v1.DocumentRef");
    ck_assert_ptr_nonnull(doc);
    /* SHA-256 of "abc", base64. */
    Lth__Domain__V1__DocumentRef *ref = (Lth__Domain__V1__DocumentRef *)to_proto_ok(
        doc, NULL,
        "{\"uri\":\"https://example.invalid/a.pdf\",\"sha256\":"
        "\"ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=\",\"size_bytes\":3}");
    ck_assert_uint_eq(ref->sha256.len, 32);
    ck_assert_uint_eq(ref->sha256.data[0], 0xba);
    ck_assert_uint_eq(ref->sha256.data[31], 0xad);
    json_t *j = NULL;
    ck_assert_int_eq(lth_jsonmap_from_proto(&ref->base, NULL, &j), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "sha256")),
                     "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    json_decref(j);
    protobuf_c_message_free_unpacked(&ref->base, NULL);
    lth_jsonmap_error_t e = to_proto_fails(doc, NULL, "{\"sha256\":\"not base64!\"}");
    ck_assert_str_eq(e.field, "sha256");

    /* protobuf-c does not check UTF-8: bad bytes come out as U+FFFD. */
    Lth__Domain__V1__Procedure p = LTH__DOMAIN__V1__PROCEDURE__INIT;
    p.name = "ok \xff\xfe end";
    ck_assert_int_eq(lth_jsonmap_from_proto(&p.base, NULL, &j), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")),
                     "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
    json_decref(j);
}
END_TEST

START_TEST(types_and_content_types)
{
    ck_assert_ptr_eq(lth_jsonmap_type("CitizenLookupRequest"), request_type);
    ck_assert_ptr_eq(lth_jsonmap_type("lth.domain.v1.CitizenLookupResponse"), response_type);
    ck_assert_ptr_null(lth_jsonmap_type("Envelope"));
    ck_assert_ptr_eq(lth_jsonmap_type_of("application/x-protobuf; "
                                         "proto=lth.domain.v1.CitizenLookupRequest"),
                     request_type);
    ck_assert_ptr_eq(lth_jsonmap_type_of("Application/X-Protobuf;charset=x; proto = "
                                         "\"lth.domain.v1.CitizenLookupResponse\""),
                     response_type);
    ck_assert_ptr_null(lth_jsonmap_type_of("application/x-protobuf; proto=CitizenLookupRequest"));
    ck_assert_ptr_null(lth_jsonmap_type_of("application/x-protobuf"));
    ck_assert_ptr_null(lth_jsonmap_type_of("application/json"));
    char ct[128];
    lth_jsonmap_content_type(request_type, ct, sizeof ct);
    ck_assert_ptr_eq(lth_jsonmap_type_of(ct), request_type);
    ck_assert_ptr_eq(lth_jsonmap_service_type("citizen.lookup/v1", false), request_type);
    ck_assert_ptr_eq(lth_jsonmap_service_type("citizen.lookup/v1", true), response_type);
    ck_assert_ptr_eq(lth_jsonmap_service_type("citizen.verify/v1", false),
                     lth_jsonmap_type("CitizenVerifyRequest"));
    ck_assert_ptr_eq(lth_jsonmap_service_type("citizen.verify/v1", true),
                     lth_jsonmap_type("CitizenVerifyResponse"));
    ck_assert_ptr_nonnull(lth_jsonmap_type("Household"));
    ck_assert_ptr_null(lth_jsonmap_service_type("dossier.status/v1", true));
    ck_assert_ptr_null(lth_jsonmap_service_type("land.parcel/v1", false));
    TK_ASSERT_YES_NO(lth_jsonmap_is_json_type, {"application/json", true},
                     {"application/json; charset=utf-8", true}, {"application/problem+json", true},
                     {"text/plain", false}, {"application/jsonx", false},
                     {"application/+json", false});
}
END_TEST

START_TEST(bad_rename_tables)
{
    lth_jsonmap_renames_t *r = NULL;
    char err[512];
    ck_assert_int_eq(lth_jsonmap_renames_new("[\"ids\"]", &r, err, sizeof err), HUB_EINVAL);
    ck_assert_int_eq(lth_jsonmap_renames_new("{}", &r, err, sizeof err), HUB_EINVAL);
    ck_assert_int_eq(lth_jsonmap_renames_new("{\"ids\":1}", &r, err, sizeof err), HUB_EINVAL);
    ck_assert_int_eq(lth_jsonmap_renames_new("{\"ids\":", &r, err, sizeof err), HUB_EINVAL);
    ck_assert_msg(strstr(err, "malformed JSON"), "%s", err);
    ck_assert_int_eq(
        lth_jsonmap_renames_new("{\"a\":\"purpose\",\"b\":\"purpose\"}", &r, err, sizeof err),
        HUB_EINVAL);
    ck_assert_msg(strstr(err, "both map to 'purpose'"), "%s", err);
    ck_assert_ptr_null(r);
    r = renames("{\"ids\":\"personal_idz\"}");
    ck_assert_int_eq(lth_jsonmap_renames_check(r, request_type, err, sizeof err), HUB_EINVAL);
    ck_assert_msg(strstr(err, "CitizenLookupRequest has no field 'personal_idz'"), "%s", err);
    lth_jsonmap_renames_destroy(&r);
    lth_jsonmap_renames_destroy(&r); /* NULL is fine */
}
END_TEST

TK_MAIN("jsonmap",
        TK_CASE("jsonmap", NULL, NULL, 0, request_from_json_with_renames,
                request_with_proto_names_and_enum_forms, request_with_lower_camel_case_names,
                errors_name_the_field, malformed_json_says_where, response_to_json,
                bytes_and_bad_text, types_and_content_types, bad_rename_tables))
