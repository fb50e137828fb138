/* catalogue_copy — a member's own copy of the city's procedure catalogue,
 * kept in its SQLite file, and the subscriber that keeps it up to date from
 * what the procedure system publishes (proto/DOMAIN.md, "The catalogue as
 * data", "Who holds the catalogue").
 *
 * The copy is table `catalogue` (one row per procedure, in force or
 * repealed: a repealed one stays, so that old dossiers keep their names)
 * and the meta key `catalogue_version` (lth_appdb.h). The procedure system
 * writes its catalogue in force there on each (re)load (catcopy_store), for
 * lth-trail; the portal and reporting hold the copy they were published
 * (catcopy_new): they subscribe to PUBLISHER/catalogue.published/v1
 * (plugin.publisher, default VN/GOV/HN-VP/TTHC; the member needs that
 * agreement) and apply each publication newer than the version they hold:
 *   ProcedureCatalogue  the whole list replaces the procedures in force; a
 *                       code it no longer lists is kept as repealed;
 *   CatalogueDelta      each change (the procedure as it now is) is applied:
 *                       added and amended in force, repealed kept as
 *                       repealed. A delta on another base than the version
 *                       held still applies (each change is whole), with a
 *                       warning that a publication was missed.
 * A copy that holds none (a member that subscribed after the last whole
 * publication: its durable subscription starts at its first Hello), or
 * that saw a publication missed, asks the publisher for the whole list in
 * force (catalogue.get/v1, request/reply, offered by the procedure system;
 * the member needs that agreement too) from its tick until it has it,
 * every CATCOPY_ASK_EVERY_US, twice as long after each failure (up to a
 * minute).
 * Each applied publication is stored in one transaction and installed for
 * the whole process (lth_procedure_install), so lth_procedure_*() answer
 * from the newest copy. Older or repeated publications change nothing.
 * A copy answers no CatalogueAck: only the national catalogue does.
 *
 * Everything runs on the adapter's thread.
 */
#ifndef CATALOGUE_COPY_H
#define CATALOGUE_COPY_H

#include "adp_plugin.h"
#include "lth_catalogue.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* The request a copy makes for the whole catalogue in force: empty payload,
 * answered with a ProcedureCatalogue (version 0: not published yet). */
#define CATCOPY_SERVICE_GET "catalogue.get/v1"
#define CATCOPY_ASK_EVERY_US 5000000u

/* The table; run by catcopy_store() and catcopy_new() (IF NOT EXISTS). */
extern const char catcopy_schema[];

/* Replaces the copy in db with cat (version: the publication's, or 0),
 * in one transaction. 0 or HUB_ESTORE. */
int catcopy_store(sqlite3 *db, const lth_catalogue_t *cat, uint64_t version);
/* The copy db holds: *out NULL when it holds none (an empty table). */
int catcopy_load(sqlite3 *db, lth_catalogue_t **out, uint64_t *version);

typedef struct catcopy catcopy_t;

/* Reads plugin.publisher, installs the copy db holds (if any), subscribes.
 * what names the member's role for the log ("the portal"). */
int catcopy_new(const adp_plugin_host_t *host, sqlite3 *db, const char *what, catcopy_t **out,
                char *err, size_t err_size);
/* Asks for the whole catalogue when the copy lacks it (see above). Call
 * from the plugin's tick(). */
void catcopy_tick(catcopy_t *self, adp_client_t *client);
/* Frees the installed catalogues too (lth_procedure_release_all). */
void catcopy_destroy(catcopy_t **self_p);

#endif
