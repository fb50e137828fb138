/* hub_map — a hash map from NUL-terminated string keys to pointers.
 *
 * Open addressing with linear probing and tombstones; grows at 70% load.
 * The map copies each key; values are the caller's (the map never frees
 * them). Lookups are O(1) on average; iteration order is unspecified.
 * Not thread-safe: use each map from one thread.
 */
#ifndef HUB_MAP_H
#define HUB_MAP_H

#include <stddef.h>

typedef struct hub_map hub_map_t;

hub_map_t *hub_map_new(void);
void hub_map_destroy(hub_map_t **self_p);
/* hub_map_destroy after free_value() on every value (NULL: none), for
 * maps that own what they hold. */
void hub_map_destroy_all(hub_map_t **self_p, void (*free_value)(void *value));
/* Inserts or replaces; returns 0 or HUB_ENOMEM. */
int hub_map_put(hub_map_t *self, const char *key, void *value);
void *hub_map_get(const hub_map_t *self, const char *key);
/* Removes key and returns its value, or NULL when absent. */
void *hub_map_remove(hub_map_t *self, const char *key);
size_t hub_map_size(const hub_map_t *self);
/* Iterates: start with *cursor = 0; returns 0 at the end. */
int hub_map_next(const hub_map_t *self, size_t *cursor, const char **key, void **value);

#endif
