/* catalogue_pub — the procedure system as the publisher of the city's
 * procedure catalogue (catalogue.published/v1), part of the procedure plugin.
 *
 * The catalogue is plugin.catalogue_file (lth_catalogue.h: the Chairman's
 * announcing decisions), required (there is no built-in list), installed
 * for the whole process (lth_procedure_install) and written into the
 * procedure system's SQLite file (catalogue_copy.h) on each (re)load.
 * On the first tick connected it publishes the whole list
 * (ProcedureCatalogue). On SIGHUP it reads the file again: a file with an
 * error is refused (the log names file, line and field) and the catalogue
 * in force stays; a changed one is installed and what changed is published
 * as a CatalogueDelta. The subscriber named by plugin.catalogue_subscriber
 * (default VN/GOV/VPCP/CSDLTTHC) answers each publication on
 * catalogue.ack/v1, which this module offers: accepted, or rejected with a
 * reason. What is still unacknowledged, acknowledged or rejected is logged
 * and written to plugin.catalogue_status (default: the catalogue file's
 * path + ".status"), replaced atomically on each change.
 *
 * Everything runs on the adapter's thread (init, tick, handlers); the
 * SIGHUP handler only sets a flag.
 */
#ifndef CATALOGUE_PUB_H
#define CATALOGUE_PUB_H

#include "adp_plugin.h"

#include <sqlite3.h>
#include <stddef.h>

typedef struct catpub catpub_t;

/* Reads the settings, loads and installs the catalogue (and writes it into
 * db, which stays the caller's), offers catalogue.ack/v1. Call from the
 * plugin's init(). */
int catpub_new(const adp_plugin_host_t *host, sqlite3 *db, catpub_t **out, char *err,
               size_t err_size);
/* Publishes what is due (the whole list once connected; a delta after a
 * reload). Call from tick(). */
void catpub_tick(catpub_t *self, adp_client_t *client);
void catpub_destroy(catpub_t **self_p);

#endif
