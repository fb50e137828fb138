/* hub_arena.h — a bump allocator for memory that dies all at once.
 *
 * The hub's loop thread decodes a Batch frame and each envelope in it, and
 * forgets all of it by the end of the loop turn. protobuf-c's own unpacking
 * mallocs every string and byte field (a 1 KiB envelope is copied twice,
 * with some ten mallocs and frees around it); an arena hands out pieces of
 * a few large chunks instead, and hub_arena_reset() gives them all back.
 *
 * Contract:
 * - hub_arena_alloc() returns 16-byte-aligned memory valid until the next
 *   hub_arena_reset() (or hub_arena_release() to a mark taken before it),
 *   or NULL when memory is short. There is no free of one piece.
 * - hub_arena_pb() is a ProtobufCAllocator over the arena for
 *   protobuf_c_message_unpack(); its free does nothing, so a message
 *   unpacked with it is never passed to free_unpacked: it goes with the
 *   arena.
 * - After a reset the arena keeps at most HUB_ARENA_KEEP bytes of chunks
 *   for reuse and frees the rest.
 * - Not thread-safe: one arena per thread. */
#ifndef HUB_ARENA_H
#define HUB_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#define HUB_ARENA_CHUNK (256u * 1024u)      /* the usual chunk's size */
#define HUB_ARENA_KEEP (8u * 1024u * 1024u) /* chunk bytes kept over a reset */

typedef struct hub__arena_chunk hub__arena_chunk_t;

typedef struct hub_arena {
    hub__arena_chunk_t *head;  /* the chunk being filled; older ones follow */
    hub__arena_chunk_t *spare; /* emptied chunks kept for reuse */
    size_t spare_bytes;
    ProtobufCAllocator pb; /* allocator_data points back here */
} hub_arena_t;

/* Where the arena stands, for hub_arena_release(). */
typedef struct hub_arena_mark {
    hub__arena_chunk_t *head;
    size_t used;
} hub_arena_mark_t;

void hub_arena_init(hub_arena_t *self);
void *hub_arena_alloc(hub_arena_t *self, size_t size);
/* Everything allocated so far is given back. */
void hub_arena_reset(hub_arena_t *self);
hub_arena_mark_t hub_arena_mark(const hub_arena_t *self);
/* What was allocated after the mark is given back; what came before stays. */
void hub_arena_release(hub_arena_t *self, hub_arena_mark_t mark);
/* Frees every chunk; the arena may be used again after hub_arena_init(). */
void hub_arena_destroy(hub_arena_t *self);

static inline ProtobufCAllocator *hub_arena_pb(hub_arena_t *self)
{
    return &self->pb;
}

#endif
