/* pop_access — the population plugin's access register (lth_access.h) and
 * its JSON endpoint: what population.c calls, in a few lines.
 *
 * Config (hub-adapter's plugin.* settings):
 *   plugin.access_register = PATH   the register (SQLite; default PLUGIN.DB.access);
 *                                   "off" keeps none (development only)
 *   plugin.access_salt = PATH       the salt file (32 bytes, 0600; default
 *                                   PLUGIN.DB.access-salt), made at first start if
 *                                   absent. Keep it from whoever reads the register.
 *   plugin.access_listen = HOST:PORT  the JSON endpoint (off by default):
 *                                   POST /api/v1/access {"citizen":ID,"from":T,"to":T}
 *   plugin.access_token_file = PATH the bearer token it needs (0600; required with
 *                                   access_listen)
 *   plugin.access_port_file = PATH  where to write the bound port (for port 0)
 *
 * A look-up is answered only once its rows are in the register: when they
 * cannot be written, pop_access_note() fails and the plugin answers
 * nothing (no data leaves unrecorded).
 *
 * Threads: hub-adapter's one thread calls everything.
 */
#ifndef POP_ACCESS_H
#define POP_ACCESS_H

#include "adp_plugin.h"

typedef struct pop_access pop_access_t;

/* Reads the settings, opens (creating) the register and its salt, starts the
 * endpoint. *out stays NULL when the register is off. */
int pop_access_init(const adp_plugin_host_t *host, const char *db_path, pop_access_t **out,
                    char *err, size_t err_size);
/* Records one answered citizen.lookup/v1 (request in msg, response bytes).
 * Accepts a NULL register (off). HUB_ESTORE when it could not be written. */
int pop_access_note(pop_access_t *self, const adp_message_t *msg, const uint8_t *response,
                    size_t response_len);
/* The same for an answered citizen.verify/v1. */
int pop_access_note_verify(pop_access_t *self, const adp_message_t *msg, const uint8_t *response,
                           size_t response_len);
/* Serves the endpoint's waiting requests without blocking (from tick()). */
void pop_access_tick(pop_access_t *self);
void pop_access_destroy(pop_access_t **self_p);

#endif
