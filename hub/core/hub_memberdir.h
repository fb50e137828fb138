/* hub_memberdir — the member directory: for each member id, the agency's
 * Vietnamese name, its unit and a contact, so that operators read names
 * beside ids (deploy/members.tsv; config key members_file).
 *
 * The file is UTF-8 text, one member per line, four fields separated by
 * tabs: member id, agency name, unit, contact (the contact may be empty).
 * Blank lines, lines starting with '#' and a header line whose first field
 * is "member_id" are skipped. A bad line fails the whole load with a
 * message naming the file, the line and what to write instead: a directory
 * half read would show wrong names without anyone noticing.
 *
 * Ownership: the directory owns its strings; entries returned by
 * hub_memberdir_find() live until hub_memberdir_destroy().
 *
 * Errors: HUB_EINVAL (bad line, duplicate id, too many members), HUB_EIO
 * (cannot read the file), HUB_ENOMEM.
 */
#ifndef HUB_MEMBERDIR_H
#define HUB_MEMBERDIR_H

#include <stddef.h>

#define HUB_MEMBERDIR_MAX 100000u /* members in one file */
#define HUB_MEMBERDIR_FIELD_MAX 512u /* bytes in one field */

typedef struct hub_memberdir hub_memberdir_t;

typedef struct {
    const char *name;    /* agency name, Vietnamese, never empty */
    const char *unit;    /* the unit or system within the agency, never empty */
    const char *contact; /* e.g. a mailbox or phone; "" when none */
} hub_memberdir_entry_t;

int hub_memberdir_load(const char *path, hub_memberdir_t **out, char *err, size_t err_size);
/* The entry for member_id, or NULL (also when self is NULL). */
const hub_memberdir_entry_t *hub_memberdir_find(const hub_memberdir_t *self,
                                                const char *member_id);
size_t hub_memberdir_count(const hub_memberdir_t *self);
void hub_memberdir_destroy(hub_memberdir_t **self_p);

#endif
