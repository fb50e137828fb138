#include "hub_map.h"
#include "hub_error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key; /* NULL = empty; HUB__TOMBSTONE = removed */
    void *value;
    uint64_t hash;
} hub__slot_t;

static char hub__tombstone_mark;
#define HUB__TOMBSTONE (&hub__tombstone_mark)

struct hub_map {
    hub__slot_t *slots;
    size_t cap;  /* power of two */
    size_t size; /* live entries */
    size_t used; /* live entries + tombstones */
};

static uint64_t hub__hash(const char *key)
{
    /* FNV-1a: keys are member ids, UUIDs and Z85 keys, not attacker-chosen
     * in bulk before authentication. */
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

hub_map_t *hub_map_new(void)
{
    hub_map_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = 16;
    self->slots = calloc(self->cap, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return NULL;
    }
    return self;
}

void hub_map_destroy(hub_map_t **self_p)
{
    hub_map_destroy_all(self_p, NULL);
}

void hub_map_destroy_all(hub_map_t **self_p, void (*free_value)(void *value))
{
    if (!self_p || !*self_p)
        return;
    hub_map_t *self = *self_p;
    for (size_t i = 0; i < self->cap; i++) {
        if (!self->slots[i].key || self->slots[i].key == HUB__TOMBSTONE)
            continue;
        if (free_value)
            free_value(self->slots[i].value);
        free(self->slots[i].key);
    }
    free(self->slots);
    free(self);
    *self_p = NULL;
}

static hub__slot_t *hub__find(const hub_map_t *self, const char *key, uint64_t hash)
{
    size_t mask = self->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        hub__slot_t *s = &self->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != HUB__TOMBSTONE && s->hash == hash && strcmp(s->key, key) == 0)
            return s;
    }
}

static int hub__grow(hub_map_t *self)
{
    size_t ncap = self->size * 2 >= self->cap / 2 ? self->cap * 2 : self->cap;
    hub__slot_t *nslots = calloc(ncap, sizeof *nslots);
    if (!nslots)
        return HUB_ENOMEM;
    for (size_t i = 0; i < self->cap; i++) {
        hub__slot_t *s = &self->slots[i];
        if (!s->key || s->key == HUB__TOMBSTONE)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (nslots[j].key)
            j = (j + 1) & (ncap - 1);
        nslots[j] = *s;
    }
    free(self->slots);
    self->slots = nslots;
    self->cap = ncap;
    self->used = self->size;
    return 0;
}

int hub_map_put(hub_map_t *self, const char *key, void *value)
{
    uint64_t hash = hub__hash(key);
    hub__slot_t *s = hub__find(self, key, hash);
    if (s) {
        s->value = value;
        return 0;
    }
    if ((self->used + 1) * 10 >= self->cap * 7) {
        int rc = hub__grow(self);
        if (rc != 0)
            return rc;
    }
    char *copy = strdup(key);
    if (!copy)
        return HUB_ENOMEM;
    size_t mask = self->cap - 1;
    size_t i = hash & mask;
    while (self->slots[i].key && self->slots[i].key != HUB__TOMBSTONE)
        i = (i + 1) & mask;
    if (!self->slots[i].key)
        self->used++;
    self->slots[i] = (hub__slot_t){copy, value, hash};
    self->size++;
    return 0;
}

void *hub_map_get(const hub_map_t *self, const char *key)
{
    hub__slot_t *s = hub__find(self, key, hub__hash(key));
    return s ? s->value : NULL;
}

void *hub_map_remove(hub_map_t *self, const char *key)
{
    hub__slot_t *s = hub__find(self, key, hub__hash(key));
    if (!s)
        return NULL;
    void *value = s->value;
    free(s->key);
    s->key = HUB__TOMBSTONE;
    s->value = NULL;
    self->size--;
    return value;
}

size_t hub_map_size(const hub_map_t *self) { return self->size; }

int hub_map_next(const hub_map_t *self, size_t *cursor, const char **key, void **value)
{
    while (*cursor < self->cap) {
        hub__slot_t *s = &self->slots[(*cursor)++];
        if (s->key && s->key != HUB__TOMBSTONE) {
            if (key)
                *key = s->key;
            if (value)
                *value = s->value;
            return 1;
        }
    }
    return 0;
}
