/* hub_id — member and service identifiers.
 *
 * A member id has four parts in the X-Road manner,
 * INSTANCE/CLASS/MEMBER/SUBSYSTEM, e.g. "VN/GOV/HN-STP/HOTICH". Each part is
 * 1 to 64 characters from [A-Za-z0-9_-]; the whole id is at most
 * HUB_MEMBER_ID_MAX bytes. A service name inside an envelope is
 * "SERVICE/VERSION", e.g. "citizen.lookup/v1" (SERVICE may also hold dots).
 * The functions below only validate and convert; they never allocate.
 */
#ifndef HUB_ID_H
#define HUB_ID_H

#include <stdbool.h>
#include <stddef.h>

#define HUB_MEMBER_ID_MAX 255
#define HUB_SERVICE_MAX 255

/* true when `text` is a well-formed member id. */
bool hub_member_id_valid(const char *text);
/* Explains why `text` is not a member id, or returns NULL when it is one. */
const char *hub_member_id_problem(const char *text);
/* true when `text` is a well-formed "SERVICE/VERSION". */
bool hub_service_valid(const char *text);
/* Splits "MEMBER-ID/SERVICE/VERSION" (a subscription topic, a delegated
 * service) into the member id (copied into member, HUB_MEMBER_ID_MAX + 1
 * bytes) and the service (*service points into text). Returns true when
 * both parts are well formed. */
bool hub_member_service_split(const char *text, char *member, const char **service);
/* Writes the file-name form of a member id ('/' becomes '.') into out;
 * returns 0, or HUB_EINVAL when the id is not valid or out is too small. */
int hub_member_id_to_slug(const char *member_id, char *out, size_t out_size);

#endif
