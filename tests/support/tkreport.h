/* tkreport — asking the report plugin (report.query/v1) from a test and
 * reading numbers out of its JSON answer.
 *
 * Built with the tests that link lth_domain (tests/e2e/CMakeLists.txt).
 * Failures fail the calling Check test.
 */
#ifndef TKREPORT_H
#define TKREPORT_H

#include "adp.h"

#include <jansson.h>

/* Sends request (JSON text) to member `to`'s report.query/v1 and returns
 * the answer parsed (json_decref it); asserts it comes, as JSON. */
json_t *tk_report_query(adp_client_t *c, const char *to, const char *request);
/* obj's integer `key`; asserts it is there and an integer. */
long long tk_json_int(json_t *obj, const char *key);
/* obj's number `key`; asserts it is there and a number. */
double tk_json_num(json_t *obj, const char *key);

#endif
