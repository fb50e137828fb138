#include "hub_id.h"
#include "hub_error.h"

#include <string.h>

/* Letters, digits, '-' and '_': a table, one load per character instead
 * of five comparisons (every envelope's sender, receiver and service pass
 * here). */
static const bool hub__part[256] = {
    ['-'] = 1, ['_'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
    ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1,
    ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool hub__part_char(char c)
{
    return hub__part[(unsigned char)c];
}

const char *hub_member_id_problem(const char *text)
{
    if (!text || !*text)
        return "member id is empty; expected INSTANCE/CLASS/MEMBER/SUBSYSTEM";
    if (strlen(text) > HUB_MEMBER_ID_MAX)
        return "member id is longer than 255 bytes";
    int parts = 1, part_len = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '/') {
            if (part_len == 0)
                return "member id has an empty part; expected INSTANCE/CLASS/MEMBER/SUBSYSTEM";
            parts++;
            part_len = 0;
        } else if (!hub__part_char(*p)) {
            return "member id may only hold letters, digits, '-' and '_' between its slashes";
        } else if (++part_len > 64) {
            return "a part of the member id is longer than 64 characters";
        }
    }
    if (part_len == 0)
        return "member id has an empty part; expected INSTANCE/CLASS/MEMBER/SUBSYSTEM";
    if (parts != 4)
        return "member id must have exactly four parts: INSTANCE/CLASS/MEMBER/SUBSYSTEM";
    return NULL;
}

bool hub_member_id_valid(const char *text) { return hub_member_id_problem(text) == NULL; }

bool hub_service_valid(const char *text)
{
    if (!text || !*text || strlen(text) > HUB_SERVICE_MAX)
        return false;
    const char *slash = strchr(text, '/');
    if (!slash || slash == text || slash[1] == '\0' || strchr(slash + 1, '/'))
        return false;
    for (const char *p = text; *p; p++) {
        if (p == slash)
            continue;
        if (!hub__part_char(*p) && *p != '.')
            return false;
    }
    return true;
}

bool hub_member_service_split(const char *text, char *member, const char **service)
{
    const char *p = text;
    for (int slashes = 0; *p && slashes < 4; p++)
        if (*p == '/')
            slashes++;
    size_t len = (size_t)(p - text); /* the member id and its '/' */
    if (!*p || len < 2 || len > HUB_MEMBER_ID_MAX + 1)
        return false;
    memcpy(member, text, len - 1);
    member[len - 1] = '\0';
    *service = p;
    return hub_member_id_valid(member) && hub_service_valid(p);
}

int hub_member_id_to_slug(const char *member_id, char *out, size_t out_size)
{
    if (!hub_member_id_valid(member_id) || strlen(member_id) + 1 > out_size)
        return HUB_EINVAL;
    size_t i = 0;
    for (; member_id[i]; i++)
        out[i] = member_id[i] == '/' ? '.' : member_id[i];
    out[i] = '\0';
    return 0;
}
