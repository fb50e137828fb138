/* hub_delegation — ủy quyền: an authority that has delegated a procedure's
 * service to another member. Envelopes addressed to the authority for that
 * service are routed to the delegate; the envelope itself (and its
 * signature) is unchanged, so the delegate sees whom it was addressed to,
 * and the audit log records both.
 *
 * File format (deploy/delegations.conf.example), one rule a line, '#'
 * comments:
 *
 *   delegate AUTHORITY-ID/SERVICE/VERSION -> DELEGATE-ID [from DATE] [until DATE]
 *
 * DATE is YYYY-MM-DD (UTC; "until" is exclusive of the next day) as in the
 * policy file. A service and its authority have at most one delegation at a
 * time; delegating to oneself or chaining (a delegate that delegates again)
 * is refused at load, naming the line.
 *
 * The table is immutable once loaded; hubd replaces it on SIGHUP.
 */
#ifndef HUB_DELEGATION_H
#define HUB_DELEGATION_H

#include <stddef.h>
#include <stdint.h>

typedef struct hub_delegations hub_delegations_t;

int hub_delegations_load(const char *path, hub_delegations_t **out, char *err, size_t err_size);
void hub_delegations_destroy(hub_delegations_t **self_p);
/* The delegate for (authority, service) at now_us, or NULL. *line is the
 * rule's line when not NULL. */
const char *hub_delegations_find(const hub_delegations_t *self, const char *authority,
                                 const char *service, uint64_t now_us, unsigned *line);
size_t hub_delegations_count(const hub_delegations_t *self);

#endif
