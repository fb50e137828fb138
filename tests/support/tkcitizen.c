#include "tkcitizen.h"
#include "lth_lookup.h"
#include "lth_verify.h"

#include <check.h>
#include <stdlib.h>

/* Packs req, sends it, checks the reply (from `to`, of answer_type) and
 * decodes it as `answer`; the raw reply is kept in *raw when raw is not
 * NULL. */
static void *tk__ask(adp_client_t *c, const char *to, const char *service, const char *type,
                     const char *answer_type, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *answer, uint32_t flags, uint32_t timeout_ms,
                     adp_reply_t *raw)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(buf);
    protobuf_c_message_pack(req, buf);
    adp_reply_t own;
    adp_reply_t *reply = raw ? raw : &own;
    int rc = adp_request(c, to, service, type, buf, len, flags, timeout_ms, reply);
    free(buf);
    ck_assert_msg(rc == 0, "%s to %s failed: %s", service, to, adp_last_error(c));
    ck_assert_str_eq(reply->sender, to);
    ck_assert_str_eq(reply->content_type, answer_type);
    ProtobufCMessage *resp =
        protobuf_c_message_unpack(answer, NULL, reply->payload_len, reply->payload);
    if (!raw)
        adp_reply_free(&own);
    ck_assert_msg(resp != NULL, "the reply is not a %s", answer->short_name);
    return resp;
}

Lth__Domain__V1__CitizenLookupResponse *
tk_citizen_lookup(adp_client_t *c, const char *to, const Lth__Domain__V1__CitizenLookupRequest *req,
                  uint32_t flags, uint32_t timeout_ms, adp_reply_t *raw)
{
    return tk__ask(c, to, LTH_SERVICE_CITIZEN_LOOKUP, LTH_LOOKUP_REQUEST_TYPE,
                   LTH_LOOKUP_RESPONSE_TYPE, &req->base,
                   &lth__domain__v1__citizen_lookup_response__descriptor, flags, timeout_ms, raw);
}

Lth__Domain__V1__CitizenVerifyResponse *
tk_citizen_verify(adp_client_t *c, const char *to, const tk_declared_t *subjects, size_t n,
                  const char *purpose, const char *purpose_code, uint32_t flags,
                  uint32_t timeout_ms, adp_reply_t *raw)
{
    Lth__Domain__V1__DeclaredIdentity items[8], *ptrs[8];
    Lth__Domain__V1__Date dates[8];
    ck_assert_uint_le(n, 8);
    for (size_t i = 0; i < n; i++) {
        lth__domain__v1__declared_identity__init(&items[i]);
        items[i].personal_id = (char *)subjects[i].id;
        if (subjects[i].name)
            items[i].full_name = (char *)subjects[i].name;
        if (subjects[i].dob) {
            lth__domain__v1__date__init(&dates[i]);
            dates[i].year = (uint32_t)subjects[i].dob->year;
            dates[i].month = (uint32_t)subjects[i].dob->month;
            dates[i].day = (uint32_t)subjects[i].dob->day;
            items[i].date_of_birth = &dates[i];
        }
        items[i].sex = (Lth__Domain__V1__Sex)subjects[i].sex;
        if (subjects[i].residence)
            items[i].residence = (char *)subjects[i].residence;
        ptrs[i] = &items[i];
    }
    Lth__Domain__V1__CitizenVerifyRequest req = LTH__DOMAIN__V1__CITIZEN_VERIFY_REQUEST__INIT;
    req.subjects = ptrs;
    req.n_subjects = n;
    req.purpose = (char *)purpose;
    req.purpose_code = (char *)purpose_code;
    return tk__ask(c, to, LTH_SERVICE_CITIZEN_VERIFY, LTH_VERIFY_REQUEST_TYPE,
                   LTH_VERIFY_RESPONSE_TYPE, &req.base,
                   &lth__domain__v1__citizen_verify_response__descriptor, flags, timeout_ms, raw);
}
