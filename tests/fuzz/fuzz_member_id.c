/* fuzz_member_id — the identifiers peers send: member ids, service names and
 * message ids (hub_member_id_problem(), hub_member_id_valid(),
 * hub_member_id_to_slug(), hub_service_valid(), hub_uuid_valid()).
 *
 * Properties: a member id is valid exactly when there is no problem to
 * report, and then has four non-empty parts of allowed characters; its slug
 * has the same length, with '.' for '/'; a valid service and UUID have the
 * documented shapes.
 */
#include "fuzz_util.h"
#include "hub_error.h"
#include "hub_id.h"
#include "hub_wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    size_t len = strlen(text);

    const char *problem = hub_member_id_problem(text);
    bool valid = hub_member_id_valid(text);
    FUZZ_CHECK(valid == (problem == NULL));
    char slug[HUB_MEMBER_ID_MAX + 1];
    int rc = hub_member_id_to_slug(text, slug, sizeof slug);
    FUZZ_CHECK(rc == (valid ? 0 : HUB_EINVAL));
    if (valid) {
        FUZZ_CHECK(len >= 7 && len <= HUB_MEMBER_ID_MAX);
        FUZZ_CHECK(strlen(slug) == len && strchr(slug, '/') == NULL);
        int slashes = 0;
        for (size_t i = 0; i < len; i++)
            slashes += text[i] == '/';
        FUZZ_CHECK(slashes == 3);
        /* Too small an output buffer is refused, never overrun. */
        char tight[HUB_MEMBER_ID_MAX + 1];
        FUZZ_CHECK(hub_member_id_to_slug(text, tight, len) == HUB_EINVAL);
    } else {
        FUZZ_CHECK(problem && *problem);
    }

    if (hub_service_valid(text)) {
        const char *slash = strchr(text, '/');
        FUZZ_CHECK(len <= HUB_SERVICE_MAX && slash && slash != text && slash[1] != '\0' &&
                   strchr(slash + 1, '/') == NULL);
    }
    if (hub_uuid_valid(text))
        FUZZ_CHECK(len == HUB_UUID_LEN && text[8] == '-' && text[13] == '-' && text[18] == '-' &&
                   text[23] == '-');
    free(text);
    return 0;
}
