#include "hub_arena.h"

#include <stdint.h>
#include <stdlib.h>

struct hub__arena_chunk {
    hub__arena_chunk_t *next; /* the older chunk */
    size_t size;              /* bytes of data[] */
    size_t used;
    _Alignas(16) unsigned char data[];
};

static void *hub__arena_pb_alloc(void *data, size_t size)
{
    return hub_arena_alloc(data, size);
}

static void hub__arena_pb_free(void *data, void *ptr)
{
    (void)data; /* pieces go back with the arena */
    (void)ptr;
}

void hub_arena_init(hub_arena_t *self)
{
    self->head = NULL;
    self->spare = NULL;
    self->spare_bytes = 0;
    self->pb.alloc = hub__arena_pb_alloc;
    self->pb.free = hub__arena_pb_free;
    self->pb.allocator_data = self;
}

/* A chunk for at least size bytes: a spare one when it is large enough. */
static hub__arena_chunk_t *hub__arena_chunk(hub_arena_t *self, size_t size)
{
    if (self->spare && self->spare->size >= size) {
        hub__arena_chunk_t *c = self->spare;
        self->spare = c->next;
        self->spare_bytes -= c->size;
        return c;
    }
    size_t want = size > HUB_ARENA_CHUNK ? size : HUB_ARENA_CHUNK;
    if (want > SIZE_MAX - sizeof(hub__arena_chunk_t))
        return NULL;
    hub__arena_chunk_t *c = malloc(sizeof *c + want);
    if (c)
        c->size = want;
    return c;
}

void *hub_arena_alloc(hub_arena_t *self, size_t size)
{
    size_t need = (size + 15u) & ~(size_t)15u;
    if (need < size)
        return NULL;
    if (need == 0)
        need = 16;
    hub__arena_chunk_t *c = self->head;
    if (!c || c->size - c->used < need) {
        c = hub__arena_chunk(self, need);
        if (!c)
            return NULL;
        c->used = 0;
        c->next = self->head;
        self->head = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

/* Gives chunks back until head is stop: kept as spares up to the limit. */
static void hub__arena_pop_to(hub_arena_t *self, hub__arena_chunk_t *stop)
{
    while (self->head && self->head != stop) {
        hub__arena_chunk_t *c = self->head;
        self->head = c->next;
        if (self->spare_bytes + c->size <= HUB_ARENA_KEEP) {
            c->next = self->spare;
            self->spare = c;
            self->spare_bytes += c->size;
        } else {
            free(c);
        }
    }
}

void hub_arena_reset(hub_arena_t *self)
{
    hub__arena_pop_to(self, NULL);
}

hub_arena_mark_t hub_arena_mark(const hub_arena_t *self)
{
    hub_arena_mark_t m = {self->head, self->head ? self->head->used : 0};
    return m;
}

void hub_arena_release(hub_arena_t *self, hub_arena_mark_t mark)
{
    hub__arena_pop_to(self, mark.head);
    if (self->head)
        self->head->used = mark.used;
}

void hub_arena_destroy(hub_arena_t *self)
{
    hub_arena_reset(self);
    while (self->spare) {
        hub__arena_chunk_t *c = self->spare;
        self->spare = c->next;
        free(c);
    }
    self->spare_bytes = 0;
}
