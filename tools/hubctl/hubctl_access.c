/* hubctl audit access — the look-ups of one person, with the agencies'
 * names from the member directory when one is given. */
#include "hubctl_access.h"
#include "hub_error.h"
#include "hub_memberdir.h"
#include "lth_access.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

void hubctl_access_usage(FILE *out)
{
    fprintf(out,
            "  audit access --citizen ID --salt FILE --register FILE [--from T] [--to T]\n"
            "               [--members FILE] [--json]\n"
            "                             who looked a person up (the population database's\n"
            "                             access register; T: YYYY-MM-DD or ...THH:MM:SSZ)\n");
}

typedef struct {
    const hub_memberdir_t *dir;
    json_t *rows; /* --json */
    size_t count;
} ctx_t;

static int on_row(const lth_access_row_t *row, void *user)
{
    ctx_t *c = user;
    c->count++;
    char when[32];
    lth_access_format_time(row->at_us, when);
    const hub_memberdir_entry_t *agency = hub_memberdir_find(c->dir, row->requester);
    if (c->rows) {
        json_t *o = json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s, s:s, s:s}", "time", when,
                              "requester", row->requester, "requester_name",
                              agency ? agency->name : NULL, "service", row->service, "purpose",
                              row->purpose, "dossier_code", row->dossier_code, "outcome",
                              row->outcome, "message_id", row->message_id);
        return o && json_array_append_new(c->rows, o) == 0 ? 0 : 1;
    }
    printf("%s  %s", when, row->requester);
    if (agency)
        printf(" (%s)", agency->name);
    printf("\n    purpose: %s\n    dossier: %s\n    outcome: %s  service: %s  message: %s\n",
           row->purpose, row->dossier_code[0] ? row->dossier_code : "-", row->outcome,
           row->service, row->message_id);
    return 0;
}

int hubctl_access_main(int argc, char **argv)
{
    const char *citizen = NULL, *salt_path = NULL, *reg = NULL, *from = NULL, *to = NULL,
               *members = NULL;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        const char **dst = !strcmp(argv[i], "--citizen")    ? &citizen
                           : !strcmp(argv[i], "--salt")     ? &salt_path
                           : !strcmp(argv[i], "--register") ? &reg
                           : !strcmp(argv[i], "--from")     ? &from
                           : !strcmp(argv[i], "--to")       ? &to
                           : !strcmp(argv[i], "--members")  ? &members
                                                            : NULL;
        if (dst && i + 1 < argc) {
            *dst = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else {
            fprintf(stderr, "hubctl audit access: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!citizen || !*citizen || !salt_path || !reg) {
        fprintf(stderr, "hubctl audit access: --citizen, --salt and --register are required\n");
        hubctl_access_usage(stderr);
        return EXIT_USAGE;
    }
    uint64_t from_us = 0, to_us = UINT64_MAX >> 1;
    if ((from && lth_access_parse_time(from, false, &from_us) != 0) ||
        (to && lth_access_parse_time(to, true, &to_us) != 0)) {
        fprintf(stderr, "hubctl audit access: --from and --to take YYYY-MM-DD or "
                        "YYYY-MM-DDTHH:MM:SSZ (UTC)\n");
        return EXIT_USAGE;
    }
    char err[HUB_ERRMSG_MAX] = "";
    hub_memberdir_t *dir = NULL;
    if (members && hub_memberdir_load(members, &dir, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl audit access: %s\n", err);
        return EXIT_FAIL;
    }
    uint8_t salt[LTH_ACCESS_SALT_LEN];
    if (lth_access_salt_load(salt_path, false, salt, err, sizeof err) != 0) {
        fprintf(stderr, "hubctl audit access: %s\n", err);
        hub_memberdir_destroy(&dir);
        return EXIT_FAIL;
    }
    ctx_t c = {.dir = dir, .rows = json ? json_array() : NULL};
    bool salt_matches = false;
    int rc = lth_access_query_file(reg, salt, citizen, from_us, to_us, on_row, &c, &salt_matches,
                                   err, sizeof err);
    sodium_memzero(salt, sizeof salt);
    int status = EXIT_OK;
    if (rc != 0) {
        fprintf(stderr, "hubctl audit access: %s\n", err);
        status = EXIT_FAIL;
    } else if (!salt_matches) {
        fprintf(stderr,
                "hubctl audit access: %s is not the salt %s was written with: nothing can be "
                "found with it (use the salt file of the population adapter's "
                "plugin.access_salt)\n",
                salt_path, reg);
        status = EXIT_FAIL;
    } else if (json) {
        json_t *out = json_pack("{s:I, s:O}", "count", (json_int_t)c.count, "accesses", c.rows);
        char *text = out ? json_dumps(out, JSON_INDENT(2)) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(out);
    } else {
        printf("%zu look-up%s of this person in %s\n", c.count, c.count == 1 ? "" : "s", reg);
    }
    json_decref(c.rows);
    hub_memberdir_destroy(&dir);
    return status;
}
