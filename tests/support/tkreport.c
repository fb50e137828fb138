#include "tkreport.h"

#include <check.h>
#include <string.h>

json_t *tk_report_query(adp_client_t *c, const char *to, const char *request)
{
    adp_reply_t reply;
    int rc = adp_request(c, to, "report.query/v1", "application/json", request, strlen(request), 0,
                         10000, &reply);
    ck_assert_msg(rc == 0, "report.query: %s", adp_last_error(c));
    ck_assert_str_eq(reply.content_type, "application/json");
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)reply.payload, reply.payload_len, 0, &jerr);
    ck_assert_msg(doc != NULL, "not JSON: %.*s", (int)reply.payload_len, reply.payload);
    adp_reply_free(&reply);
    return doc;
}

long long tk_json_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_integer(v), "no integer '%s'", key);
    return (long long)json_integer_value(v);
}

double tk_json_num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_number(v), "no number '%s'", key);
    return json_number_value(v);
}
