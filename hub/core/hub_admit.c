/* hub_admit.c — admission: every envelope of a Batch leaves as exactly one
 * of a NACK, an online-only enqueue or a pending push for the group commit.
 * Also the tracking of requests, on which the reply rule rests, and the
 * per-member rate. */
#include "hub_core_internal.h"
#include "hub_cluster.h"

#include <sodium.h>
#include <sys/mman.h>

/* ------------------------------------------------------------------------ */
/* Envelopes                                                                 */

/* Requests awaiting a reply: message id -> who asked whom. A reply is
 * accepted only for a request tracked here, from the member the request was
 * routed to (the delegate, when delegated), to the request's sender, and
 * only once: the entry then remembers the reply's id, so that a re-send of
 * that same reply still passes and any other reply is refused. Entries are
 * forgotten after the request's TTL. Queued requests are also kept in the
 * store (hub_store_requests_*) so that their replies survive a restart.
 *
 * A record is 64 bytes and holds no pointer: ids in binary (a message id
 * is a lower-case text UUID, hub_uuid_valid, so its 16 bytes give it back
 * exactly), members and purposes as indexes into a table of their interned
 * pointers. Records live in arrays, not one malloc each: the open ones in a
 * pool with a free list, the answered ones in a ring (admit__requests). */
typedef struct {
    uint8_t id[16];           /* the request's message id */
    uint8_t answer_id[16];    /* answered: the accepted reply's id */
    uint64_t expires_mono_us; /* answered: at most the grace */
    uint64_t answer_seq;      /* the reply's seq when it was queued; 0: online-only */
    uint32_t hash;            /* the id's keyed hash (admit__hash), never 0 */
    uint32_t sender;          /* admit__names: a member's id; 0: no record here */
    uint32_t receiver;        /* admit__names: a member's id; free record: next free + 1 */
    uint32_t purpose : 30;    /* admit__names: interned text, 0: none (for its reply's audit) */
    uint32_t durable : 1;     /* also in the store, until answered */
    uint32_t answered : 1;    /* answer_id is set */
} admit__rec_t;

_Static_assert(sizeof(admit__rec_t) == 64, "a tracked request is one cache line");

/* An index over records: open addressing with linear probing over {hash,
 * ref} pairs, where ref names the record (admit__rec_at); the hash is
 * compared before the record is read. Removal shifts the cluster back, so
 * that no removed slot is left behind (the answered table loses as many
 * entries as it gains). */
typedef struct {
    uint32_t hash; /* 0: empty */
    uint32_t ref;
} admit__slot_t;

typedef struct {
    admit__slot_t *slots;
    uint32_t cap;  /* a power of two */
    uint32_t size; /* records indexed */
    /* The open pool: ref is the index into recs. */
    admit__rec_t *recs; /* NULL: the ring */
    uint32_t rec_cap;   /* records allocated */
    /* The ring: ref is a position (mod 2^32), the ring holds [head, head +
     * n), in blocks of HUB__RING_BLOCK records, so that it grows without
     * copying and its memory follows what it holds: blocks[(first + k) &
     * (blocks_cap - 1)] is the k-th block from the head's. A block the head
     * leaves is kept as the spare for the tail's next one. */
    admit__rec_t **blocks;
    uint32_t blocks_cap, blocks_n, first;
    uint32_t head, n;
    admit__rec_t *spare;
} admit__table_t;

/* Where a look-up found a record: the table, and the slot naming it (valid
 * until the tables change). */
typedef struct {
    admit__table_t *in; /* NULL: not tracked */
    uint32_t slot;
} admit__found_t;

/* Members (their ids, core__member_t.id) and purposes (interned text) by
 * 32-bit index: both live as long as the server. ptrs[0] is NULL. */
typedef struct {
    const void **ptrs;
    uint32_t n, cap;
    uint32_t *map; /* open addressing by pointer: indexes into ptrs, 0: empty */
    uint32_t map_cap;
} admit__names_t;

/* Open requests and answered ones are kept apart: the open ones are few
 * (what is in flight) and are scanned for their TTL once a second; the
 * answered ones are many (35 s of traffic: four million at 120,000
 * requests a second) and leave in the order they were answered, from the
 * head of a ring, so that nothing walks them. A look-up tries the open
 * table first. The hash is SipHash with a key drawn when the tables are
 * made, so that no member can choose ids that collide; an id is hashed
 * once per envelope (admit__prefetch_slot remembers the last few). */
struct admit__requests {
    admit__table_t open;     /* recs: a pool; free ones on the free list */
    admit__table_t answered; /* recs: a ring, ref = position (mod 2^32) */
    uint32_t pool_n;         /* the pool's records ever used (the scan's end) */
    uint32_t free_head;      /* first free record + 1, 0: none */
    admit__names_t names;
    struct {
        uint8_t id[16];
        uint32_t hash; /* 0: unused */
    } recent[4];       /* the ids admit__prefetch_slot hashed last */
    unsigned recent_next;
    unsigned char key[crypto_shorthash_KEYBYTES];
};

#define HUB__TABLE_MIN 1024u
#define HUB__RING_BLOCK_SHIFT 8u /* 256 records, 16 KiB */
#define HUB__RING_BLOCK (1u << HUB__RING_BLOCK_SHIFT)
#define HUB__NO_SLOT UINT32_MAX

/* ---- ids ---- */

/* A hex digit's value + 1; 0: not a lower-case hex digit. */
static const uint8_t admit__hex1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
    ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
    ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/* The 16 bytes of a lower-case text UUID; false for anything else. */
static bool admit__id_parse(const char *text, size_t len, uint8_t out[16])
{
    static const uint8_t at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    if (len != HUB_UUID_LEN || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
        text[23] != '-')
        return false;
    const unsigned char *u = (const unsigned char *)text;
    bool ok = true;
    for (size_t k = 0; k < 16; k++) {
        unsigned hi = admit__hex1[u[at[k]]], lo = admit__hex1[u[at[k] + 1]];
        ok &= hi && lo;
        out[k] = (uint8_t)((hi - 1) << 4 | ((lo - 1) & 15));
    }
    return ok;
}

/* Back to the text form (HUB_UUID_LEN + 1 bytes). */
static void admit__id_text(const uint8_t id[16], char out[HUB_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = hex[id[i] >> 4];
        out[j++] = hex[id[i] & 15];
    }
    out[j] = '\0';
}

static uint32_t admit__siphash(const core__requests_t *t, const uint8_t id[16])
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, id, 16, t->key);
    uint32_t h;
    memcpy(&h, out, sizeof h);
    return h ? h : 1;
}

/* The id's hash: from what admit__prefetch_slot computed for it a moment
 * ago, else computed now. */
static uint32_t admit__hash(const core__requests_t *t, const uint8_t id[16])
{
    for (size_t k = 0; k < sizeof t->recent / sizeof t->recent[0]; k++)
        if (t->recent[k].hash && !memcmp(t->recent[k].id, id, 16))
            return t->recent[k].hash;
    return admit__siphash(t, id);
}

/* ---- names ---- */

static uint32_t admit__ptr_bucket(const void *p, uint32_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(x >> 32) & (cap - 1);
}

static int admit__names_grow_map(admit__names_t *nm)
{
    uint32_t ncap = nm->map_cap ? nm->map_cap * 2 : 64;
    uint32_t *map = calloc(ncap, sizeof *map);
    if (!map)
        return HUB_ENOMEM;
    for (uint32_t k = 1; k < nm->n; k++) {
        uint32_t i = admit__ptr_bucket(nm->ptrs[k], ncap);
        while (map[i])
            i = (i + 1) & (ncap - 1);
        map[i] = k;
    }
    free(nm->map);
    nm->map = map;
    nm->map_cap = ncap;
    return 0;
}

/* The index of p (added when new), 0 for NULL or when out of memory. */
static uint32_t admit__name(admit__names_t *nm, const void *p)
{
    if (!p)
        return 0;
    if (nm->map_cap) {
        for (uint32_t i = admit__ptr_bucket(p, nm->map_cap); nm->map[i];
             i = (i + 1) & (nm->map_cap - 1))
            if (nm->ptrs[nm->map[i]] == p)
                return nm->map[i];
    }
    if (!nm->cap) {
        if (!(nm->ptrs = malloc(16 * sizeof *nm->ptrs)))
            return 0;
        nm->ptrs[0] = NULL; /* index 0: none */
        nm->n = 1;
        nm->cap = 16;
    }
    if (nm->n >= (1u << 30) - 1) /* admit__rec_t.purpose's width */
        return 0;
    if (nm->n == nm->cap) {
        const void **ptrs = realloc(nm->ptrs, (size_t)nm->cap * 2 * sizeof *ptrs);
        if (!ptrs)
            return 0;
        nm->ptrs = ptrs;
        nm->cap *= 2;
    }
    if ((nm->n + 1) * 2 > nm->map_cap && admit__names_grow_map(nm) != 0)
        return 0;
    uint32_t k = nm->n++;
    nm->ptrs[k] = p;
    uint32_t i = admit__ptr_bucket(p, nm->map_cap);
    while (nm->map[i])
        i = (i + 1) & (nm->map_cap - 1);
    nm->map[i] = k;
    return k;
}

/* A member's index names its id (the text every message uses), and the
 * member is the record around it. */
static const char *admit__member_id(const core__requests_t *t, uint32_t k)
{
    return (const char *)t->names.ptrs[k];
}

static core__member_t *admit__member_of(const core__requests_t *t, uint32_t k)
{
    return (core__member_t *)(void *)((char *)(uintptr_t)admit__member_id(t, k) -
                                      offsetof(core__member_t, id));
}

static const char *admit__purpose_of(const core__requests_t *t, uint32_t k)
{
    return k ? (const char *)t->names.ptrs[k] : NULL;
}

/* ---- index ---- */

/* The record ref names (a ring's: a position in [head, head + n]). */
static admit__rec_t *admit__rec_at(const admit__table_t *x, uint32_t ref)
{
    if (x->recs)
        return &x->recs[ref];
    uint32_t k = ((ref >> HUB__RING_BLOCK_SHIFT) - (x->head >> HUB__RING_BLOCK_SHIFT)) &
                 (UINT32_MAX >> HUB__RING_BLOCK_SHIFT);
    return &x->blocks[(x->first + k) & (x->blocks_cap - 1)][ref & (HUB__RING_BLOCK - 1)];
}

static admit__rec_t *admit__slot_rec(const admit__table_t *x, uint32_t slot)
{
    return admit__rec_at(x, x->slots[slot].ref);
}

/* Index slots, zeroed. From 2 MiB up they are mapped on their own, 2 MiB
 * aligned and marked for huge pages (the kernel's transparent huge pages
 * in `madvise` mode, the default of most distributions): the answered
 * index holds millions of slots, each look-up lands on a random one, and
 * with 4 KiB pages nearly every look-up also missed the TLB (under a
 * hypervisor, a walk of two page tables): that walk took about a fifth of
 * the loop thread in admit__prefetch_slot's prefetch. */
#define HUB__HUGE_PAGE (2u << 20)

void *admit__slots_new(uint32_t cap)
{
    size_t len = (size_t)cap * sizeof(admit__slot_t);
    if (len < HUB__HUGE_PAGE)
        return calloc(cap, sizeof(admit__slot_t));
    /* len is a multiple of HUB__HUGE_PAGE (cap is a power of two). */
    uint8_t *p = mmap(NULL, len + HUB__HUGE_PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t at = ((uintptr_t)p + HUB__HUGE_PAGE - 1) & ~(uintptr_t)(HUB__HUGE_PAGE - 1);
    size_t before = at - (uintptr_t)p;
    if (before)
        munmap(p, before);
    if (HUB__HUGE_PAGE - before)
        munmap((uint8_t *)at + len, HUB__HUGE_PAGE - before);
#ifdef MADV_HUGEPAGE
    (void)madvise((void *)at, len, MADV_HUGEPAGE); /* a hint: 4 KiB pages work too */
#endif
    return (void *)at;
}

void admit__slots_free(void *slots, uint32_t cap)
{
    size_t len = (size_t)cap * sizeof(admit__slot_t);
    if (len < HUB__HUGE_PAGE)
        free(slots);
    else if (slots)
        munmap(slots, len);
}

static int admit__table_init(admit__table_t *x, bool ring)
{
    memset(x, 0, sizeof *x);
    x->cap = HUB__TABLE_MIN;
    x->slots = admit__slots_new(x->cap);
    if (ring) {
        x->blocks_cap = 4;
        x->blocks = calloc(x->blocks_cap, sizeof *x->blocks);
        return x->slots && x->blocks ? 0 : HUB_ENOMEM;
    }
    x->rec_cap = HUB__TABLE_MIN;
    x->recs = calloc(x->rec_cap, sizeof *x->recs);
    return x->slots && x->recs ? 0 : HUB_ENOMEM;
}

static void admit__table_free(admit__table_t *x)
{
    for (uint32_t k = 0; x->blocks && k < x->blocks_n; k++)
        free(x->blocks[(x->first + k) & (x->blocks_cap - 1)]);
    free(x->blocks);
    free(x->spare);
    admit__slots_free(x->slots, x->cap);
    free(x->recs);
    x->slots = NULL;
    x->recs = NULL;
    x->blocks = NULL;
    x->spare = NULL;
}

/* Room in the ring for one more record at its tail: NULL when out of
 * memory. */
static admit__rec_t *admit__ring_room(admit__table_t *x)
{
    uint32_t pos = x->head + x->n;
    uint32_t k = ((pos >> HUB__RING_BLOCK_SHIFT) - (x->head >> HUB__RING_BLOCK_SHIFT)) &
                 (UINT32_MAX >> HUB__RING_BLOCK_SHIFT);
    if (k == x->blocks_n) { /* the tail enters a new block */
        if (x->n >= (1u << 30))
            return NULL;
        if (x->blocks_n == x->blocks_cap) {
            admit__rec_t **blocks = malloc((size_t)x->blocks_cap * 2 * sizeof *blocks);
            if (!blocks)
                return NULL;
            for (uint32_t i = 0; i < x->blocks_n; i++)
                blocks[i] = x->blocks[(x->first + i) & (x->blocks_cap - 1)];
            free(x->blocks);
            x->blocks = blocks;
            x->blocks_cap *= 2;
            x->first = 0;
        }
        admit__rec_t *block = x->spare ? x->spare : malloc(HUB__RING_BLOCK * sizeof *block);
        if (!block)
            return NULL;
        x->spare = NULL;
        x->blocks[(x->first + x->blocks_n++) & (x->blocks_cap - 1)] = block;
    }
    return admit__rec_at(x, pos);
}

/* The ring's head moves on by one record; a block it leaves becomes the
 * spare. */
static void admit__ring_pop(admit__table_t *x)
{
    x->head++;
    x->n--;
    if ((x->head & (HUB__RING_BLOCK - 1)) == 0 && x->blocks_n) {
        free(x->spare);
        x->spare = x->blocks[x->first];
        x->first = (x->first + 1) & (x->blocks_cap - 1);
        x->blocks_n--;
    }
}

core__requests_t *admit__requests_new(void)
{
    core__requests_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (admit__table_init(&t->open, false) != 0 || admit__table_init(&t->answered, true) != 0) {
        admit__table_free(&t->open);
        admit__table_free(&t->answered);
        free(t);
        return NULL;
    }
    crypto_shorthash_keygen(t->key);
    return t;
}

size_t admit__requests_size(const core__requests_t *t)
{
    return t ? (size_t)t->open.size + t->answered.size : 0;
}

void admit__requests_destroy(core__requests_t **t_p)
{
    core__requests_t *t = t_p ? *t_p : NULL;
    if (!t)
        return;
    admit__table_free(&t->open);
    admit__table_free(&t->answered);
    free(t->names.ptrs);
    free(t->names.map);
    free(t);
    *t_p = NULL;
}

/* The slot of the record with this id and hash, or HUB__NO_SLOT. */
static uint32_t admit__index_find(const admit__table_t *x, const uint8_t id[16], uint32_t hash)
{
    uint32_t mask = x->cap - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        const admit__slot_t *s = &x->slots[i];
        if (!s->hash)
            return HUB__NO_SLOT;
        if (s->hash == hash && !memcmp(admit__rec_at(x, s->ref)->id, id, 16))
            return i;
    }
}

/* The slot that names exactly record ref (its hash given). */
static uint32_t admit__index_slot_of(const admit__table_t *x, uint32_t hash, uint32_t ref)
{
    uint32_t mask = x->cap - 1;
    for (uint32_t i = hash & mask; x->slots[i].hash; i = (i + 1) & mask)
        if (x->slots[i].hash == hash && x->slots[i].ref == ref)
            return i;
    return HUB__NO_SLOT;
}

/* Adds {hash, ref} (not in the index yet), doubling the index when it
 * would be more than 70 % full. */
static int admit__index_put(admit__table_t *x, uint32_t hash, uint32_t ref)
{
    if ((uint64_t)(x->size + 1) * 10 > (uint64_t)x->cap * 7) {
        if (x->cap >= (1u << 31))
            return HUB_ENOMEM;
        uint32_t ncap = x->cap * 2;
        admit__slot_t *ns = admit__slots_new(ncap);
        if (!ns)
            return HUB_ENOMEM;
        for (uint32_t i = 0; i < x->cap; i++) {
            if (!x->slots[i].hash)
                continue;
            uint32_t j = x->slots[i].hash & (ncap - 1);
            while (ns[j].hash)
                j = (j + 1) & (ncap - 1);
            ns[j] = x->slots[i];
        }
        admit__slots_free(x->slots, x->cap);
        x->slots = ns;
        x->cap = ncap;
    }
    uint32_t mask = x->cap - 1;
    uint32_t i = hash & mask;
    while (x->slots[i].hash)
        i = (i + 1) & mask;
    x->slots[i] = (admit__slot_t){hash, ref};
    x->size++;
    return 0;
}

/* Empties slot i, moving back the entries after it that would no longer
 * be found past the hole. */
static void admit__index_remove(admit__table_t *x, uint32_t i)
{
    uint32_t mask = x->cap - 1;
    for (uint32_t j = (i + 1) & mask; x->slots[j].hash; j = (j + 1) & mask) {
        uint32_t home = x->slots[j].hash & mask;
        /* j's entry stays when its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            x->slots[i] = x->slots[j];
            i = j;
        }
    }
    x->slots[i] = (admit__slot_t){0, 0};
    x->size--;
}

/* ---- the two tables ---- */

/* The record with this id in either table, or in->NULL. */
static admit__found_t admit__lookup(core__requests_t *t, const uint8_t id[16], uint32_t hash)
{
    uint32_t slot = admit__index_find(&t->open, id, hash);
    if (slot != HUB__NO_SLOT)
        return (admit__found_t){&t->open, slot};
    if (t->answered.size && (slot = admit__index_find(&t->answered, id, hash)) != HUB__NO_SLOT)
        return (admit__found_t){&t->answered, slot};
    return (admit__found_t){NULL, 0};
}

/* The same by text id ("" or not a UUID: not found). */
static admit__found_t admit__lookup_text(core__requests_t *t, const char *text)
{
    uint8_t id[16];
    if (!text || !admit__id_parse(text, strlen(text), id))
        return (admit__found_t){NULL, 0};
    return admit__lookup(t, id, admit__hash(t, id));
}

static admit__rec_t *admit__found_rec(admit__found_t f)
{
    return f.in ? admit__slot_rec(f.in, f.slot) : NULL;
}

/* Fetching ahead (server__on_batch): the open table's slot for the id an
 * envelope will be looked up by, then the request in it, are brought into
 * the cache while the envelopes before it are admitted: the reply of a
 * request that was admitted a moment ago, by another batch, has usually
 * left the cache since. The hash is kept for that look-up (recent). */
uint64_t admit__prefetch_slot(hub_server_t *self, const uint8_t *bytes, size_t len)
{
    /* The id: correlation_id (field 2) when set (a reply), else
     * message_id (field 1); clients encode both first. */
    const uint8_t *p = bytes, *end = bytes ? bytes + len : NULL, *value, *id = NULL;
    uint32_t field;
    size_t n, id_len = 0;
    for (int k = 0; k < 2 && hub_pb_next(&p, end, &field, &value, &n); k++) {
        if (value && n && (field == 1 || field == 2)) {
            id = value;
            id_len = n;
        }
    }
    core__requests_t *t = self->requests;
    uint8_t bin[16];
    if (!id || !admit__id_parse((const char *)id, id_len, bin))
        return 0;
    uint32_t hash = admit__siphash(t, bin);
    unsigned k = t->recent_next++ % (sizeof t->recent / sizeof t->recent[0]);
    memcpy(t->recent[k].id, bin, 16);
    t->recent[k].hash = hash;
    __builtin_prefetch(&t->open.slots[hash & (t->open.cap - 1)]);
    /* A reply's request moves there; a new request's id is looked for
     * there: the one large index, where each of these is a cache miss. */
    __builtin_prefetch(&t->answered.slots[hash & (t->answered.cap - 1)], 1);
    return hash;
}

void admit__prefetch_request(hub_server_t *self, uint64_t hash)
{
    const admit__table_t *x = &self->requests->open;
    const admit__slot_t *s = &x->slots[hash & (x->cap - 1)];
    if (hash && s->hash == hash)
        __builtin_prefetch(&x->recs[s->ref]);
}

#define HUB__MAX_TRACKED_REQUESTS 1000000
/* How long an answered request is remembered (re-sends of its reply). */
#define HUB__ANSWERED_GRACE_US (35u * 1000000u) /* past the SDK's 30 s re-send */

/* Forgets the record f names (it is gone from its table after this). */
static void admit__request_forget(hub_server_t *self, admit__found_t f)
{
    core__requests_t *t = self->requests;
    if (!f.in || f.slot == HUB__NO_SLOT)
        return; /* cannot be: every record has its slot */
    admit__rec_t *rec = admit__found_rec(f);
    uint32_t ref = f.in->slots[f.slot].ref;
    if (!rec->answered) {
        core__member_t *s = admit__member_of(t, rec->sender);
        if (s && s->open_requests)
            s->open_requests--;
        if (self->open_requests_total)
            self->open_requests_total--;
    }
    admit__index_remove(f.in, f.slot);
    rec->sender = 0; /* a ring's record stays until the head passes it */
    if (f.in == &t->open) {
        rec->receiver = t->free_head;
        t->free_head = ref + 1;
    }
}

/* A free record of the pool, its index in *ref; NULL when out of memory. */
static admit__rec_t *admit__pool_take(core__requests_t *t, uint32_t *ref)
{
    admit__table_t *x = &t->open;
    if (t->free_head) {
        *ref = t->free_head - 1;
        t->free_head = x->recs[*ref].receiver;
        return &x->recs[*ref];
    }
    if (t->pool_n == x->rec_cap) {
        if (x->rec_cap >= (1u << 30))
            return NULL;
        admit__rec_t *recs = realloc(x->recs, (size_t)x->rec_cap * 2 * sizeof *recs);
        if (!recs)
            return NULL;
        x->recs = recs;
        x->rec_cap *= 2;
    }
    *ref = t->pool_n++;
    return &x->recs[*ref];
}

/* Tracks a request from s to r the hub is about to accept. Returns 0, or a
 * NACK code with a sentence in *why when the sender has too many
 * unanswered. */
static int admit__remember_request_of(hub_server_t *self, const char *message_id, core__member_t *s,
                                      core__member_t *r, const char *purpose, uint64_t ttl_ms,
                                      bool durable, const char **why)
{
    core__requests_t *t = self->requests;
    uint8_t id[16];
    if (!admit__id_parse(message_id, strlen(message_id), id)) {
        *why = "message_id must be a UUID in lower-case text form";
        return LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE;
    }
    uint32_t hash = admit__hash(t, id);
    admit__found_t old = admit__lookup(t, id, hash);
    admit__rec_t *o = admit__found_rec(old);
    if (o && admit__member_id(t, o->sender) == s->id && admit__member_id(t, o->receiver) == r->id) {
        o->durable |= durable; /* a re-send: same request */
        return 0;
    }
    if (o && !o->answered) {
        /* Never let one member's request displace another's. */
        *why = "another open request already has this message_id; give every envelope a new "
               "random UUID";
        return LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE;
    }
    if (s->open_requests >= self->cfg.max_open_requests ||
        self->open_requests_total >= HUB__MAX_TRACKED_REQUESTS) {
        *why = "too many of your requests are waiting for replies; wait for replies (or their "
               "TTL) before sending more requests";
        return LTH__V1__NACK_CODE__NACK_QUEUE_FULL;
    }
    uint32_t sk = admit__name(&t->names, s->id), rk = admit__name(&t->names, r->id);
    uint32_t pk = admit__name(&t->names, purpose);
    if (!sk || !rk || (purpose && !pk)) {
        *why = "the hub is out of memory; send again later";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    if (o)
        admit__request_forget(self, old); /* answered: the id is used again */
    uint32_t ref;
    admit__rec_t *req = admit__pool_take(t, &ref);
    if (!req || admit__index_put(&t->open, hash, ref) != 0) {
        if (req) {
            req->sender = 0;
            req->receiver = t->free_head;
            t->free_head = ref + 1;
        }
        *why = "the hub is out of memory; send again later";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    if (ttl_ms == 0)
        ttl_ms = 60000u;
    if (ttl_ms > self->cfg.max_ttl_ms)
        ttl_ms = self->cfg.max_ttl_ms;
    *req = (admit__rec_t){.expires_mono_us = hub_monotonic_us() + ttl_ms * 1000u,
                          .hash = hash,
                          .sender = sk,
                          .receiver = rk,
                          .purpose = pk & ((1u << 30) - 1),
                          .durable = durable};
    memcpy(req->id, id, 16);
    s->open_requests++;
    self->open_requests_total++;
    return 0;
}

/* The same by member ids. */
static int admit__remember_request(hub_server_t *self, const char *message_id, const char *sender,
                                   const char *receiver, const char *purpose, uint64_t ttl_ms,
                                   bool durable, const char **why)
{
    core__member_t *s = members__member(self, sender);
    core__member_t *r = members__member(self, receiver);
    if (!s || !r) {
        *why = "the hub is out of memory; send again later";
        return LTH__V1__NACK_CODE__NACK_INTERNAL;
    }
    return admit__remember_request_of(self, message_id, s, r, purpose, ttl_ms, durable, why);
}

/* Decides whether a reply may pass: 0 with the request it answers in *out,
 * or NACK_FORBIDDEN with the reason in `why` (size HUB__WHY_MAX). Nothing
 * changes until admit__request_answered(). */
static int admit__reply(hub_server_t *self, const hub_envelope_t *env, admit__found_t *out,
                        char *why)
{
    core__requests_t *t = self->requests;
    admit__found_t f = admit__lookup_text(t, env->correlation_id);
    const admit__rec_t *req = admit__found_rec(f);
    *out = (admit__found_t){NULL, 0};
    if (req && req->answered && req->expires_mono_us <= hub_monotonic_us())
        req = NULL; /* answered, and its TTL or grace is over: due to leave */
    if (!req) {
        snprintf(why, HUB__WHY_MAX,
                 "a reply must answer a request the hub routed and still tracks; %s is unknown, "
                 "expired or was answered long ago (after a hub restart only queued requests "
                 "are remembered): send the reply only for a request you received",
                 env->correlation_id[0] ? env->correlation_id : "an empty correlation_id");
        return LTH__V1__NACK_CODE__NACK_FORBIDDEN;
    }
    const char *rs = admit__member_id(t, req->sender);
    const char *rr = admit__member_id(t, req->receiver);
    if (strcmp(rr, env->sender) != 0 || strcmp(rs, env->receiver) != 0) {
        snprintf(why, HUB__WHY_MAX,
                 "request %s went from %s to %s; only %s may answer it, and only to %s",
                 env->correlation_id, rs, rr, rr, rs);
        return LTH__V1__NACK_CODE__NACK_FORBIDDEN;
    }
    uint8_t reply_id[16];
    if (req->answered && (!admit__id_parse(env->message_id, strlen(env->message_id), reply_id) ||
                          memcmp(req->answer_id, reply_id, 16) != 0)) {
        char answer[HUB_UUID_LEN + 1];
        admit__id_text(req->answer_id, answer);
        snprintf(why, HUB__WHY_MAX,
                 "request %s was already answered by reply %s; a request gets one reply",
                 env->correlation_id, answer);
        return LTH__V1__NACK_CODE__NACK_FORBIDDEN;
    }
    *out = f; /* open, or answered by this same reply (a re-send) */
    return 0;
}

/* Moves the open record f names to the ring's tail (its index slot
 * known: no look-up). Out of memory, it stays in the open table, where the
 * scan of admit__expire_requests() forgets it in time all the same. */
static void admit__request_move_answered(core__requests_t *t, admit__found_t f)
{
    admit__table_t *a = &t->answered;
    admit__rec_t *to = admit__ring_room(a);
    const admit__rec_t *rec = admit__found_rec(f);
    uint32_t pos = a->head + a->n;
    if (!to || admit__index_put(a, rec->hash, pos) != 0)
        return;
    *to = *rec;
    a->n++;
    uint32_t ref = f.in->slots[f.slot].ref;
    admit__index_remove(f.in, f.slot);
    admit__rec_t *old = &f.in->recs[ref];
    old->sender = 0;
    old->receiver = t->free_head;
    t->free_head = ref + 1;
}

/* The reply `reply_id` (queued with seq `reply_seq`, 0 when online-only)
 * to the request f names has been accepted: no other reply will be. */
static void admit__request_answered(hub_server_t *self, admit__found_t f, const char *reply_id,
                                    uint64_t reply_seq)
{
    core__requests_t *t = self->requests;
    admit__rec_t *req = admit__found_rec(f);
    if (!req)
        return;
    if (req->answered) {
        if (!req->answer_seq)
            req->answer_seq = reply_seq; /* a re-send, now queued */
        return;
    }
    uint8_t rid[16];
    if (!admit__id_parse(reply_id, strlen(reply_id), rid))
        return; /* cannot be: a reply's message_id is a UUID */
    memcpy(req->answer_id, rid, 16);
    req->answered = 1;
    req->answer_seq = reply_seq;
    /* Answered: kept only long enough to accept a re-send of this reply
     * and refuse any other, not for the rest of the request's TTL (a day,
     * for queued ones): the table would fill with answered requests. */
    uint64_t grace = hub_monotonic_us() + HUB__ANSWERED_GRACE_US;
    if (req->expires_mono_us > grace)
        req->expires_mono_us = grace;
    core__member_t *s = admit__member_of(t, req->sender);
    if (s && s->open_requests)
        s->open_requests--;
    if (self->open_requests_total)
        self->open_requests_total--;
    bool durable = req->durable;
    char text[HUB_UUID_LEN + 1];
    if (durable)
        admit__id_text(req->id, text);
    if (f.in == &t->open)
        admit__request_move_answered(t, f); /* req is not valid after this */
    if (durable) {
        /* Forgotten by the store with the next commit. */
        char *id = strdup(text);
        if (id && HUB__PUSH(self->answered, self->answered_n, self->answered_cap, id) != 0)
            free(id);
    }
}

/* At the start of its commit (loop thread): whether a queued request is
 * answered already, and how (core__pending_t.answered_*). */
void admit__request_note(hub_server_t *self, core__pending_t *p)
{
    if (!p->request_expires_us)
        return;
    const admit__rec_t *req = admit__found_rec(admit__lookup_text(self->requests,
                                                                  p->msg.message_id));
    if (!req || !req->answered)
        return;
    p->answered_online = req->answer_seq == 0;
    p->answered_by_seq = req->answer_seq;
}

void admit__expire_requests(hub_server_t *self, uint64_t now)
{
    /* The open pool, whole, once a second: it holds what is in flight (and
     * queued requests waiting for their receiver), not the answered ones. */
    core__requests_t *t = self->requests;
    admit__table_t *o = &t->open;
    for (uint32_t i = 0; i < t->pool_n; i++) {
        const admit__rec_t *rec = &o->recs[i];
        if (rec->sender && rec->expires_mono_us <= now)
            admit__request_forget(self,
                                  (admit__found_t){o, admit__index_slot_of(o, rec->hash, i)});
    }
    /* The answered ones from the ring's head, as they fall due: all at
     * their grace, in the order answered, or before at their TTL. One
     * forgotten already (its id used again by another request) only
     * leaves the ring. */
    admit__table_t *a = &t->answered;
    while (a->n) {
        const admit__rec_t *rec = admit__rec_at(a, a->head);
        if (rec->sender && rec->expires_mono_us > now)
            break;
        if (rec->sender)
            admit__request_forget(
                self, (admit__found_t){a, admit__index_slot_of(a, rec->hash, a->head)});
        admit__ring_pop(a);
    }
}

/* hub_store_requests_load() callback: queued requests tracked again after a
 * restart. */
void admit__request_loaded(const hub_store_request_t *sr, void *user)
{
    hub_server_t *self = user;
    uint64_t now = hub_now_us();
    uint64_t left_ms = sr->expires_at_us > now ? (sr->expires_at_us - now) / 1000u : 1;
    const char *why;
    if (admit__remember_request(self, sr->message_id, sr->sender, sr->receiver, NULL,
                                left_ms ? left_ms : 1, true, &why) != 0)
        HUB_WARN("router", "tracked request not restored", "message_id=%s reason=\"%s\"",
                 sr->message_id, why);
}

const char *admit__signature_problem(int rc, bool has_key)
{
    if (!has_key)
        return "the hub has no signing key for the sender; regenerate its keys with 'hubctl "
               "keygen' and give the hub the new .pub file";
    if (rc == HUB_EINVAL)
        return "the envelope is not signed; sign the canonical digest with the member's "
               "Ed25519 key (proto/README.md)";
    return "the signature does not match the envelope and the sender's key; the envelope was "
           "changed after signing, or signed with another key";
}

/* The refusal of a durable envelope (or a publication: publication) the
 * store's queue has no room for (core__store_room said why). */
void admit__queue_full(hub_server_t *self, core__receipts_t *r, const char *message_id,
                       const core__member_t *sender, core__room_t room, bool publication)
{
    if (room == CORE__ROOM_MEMBER_FULL)
        send__receipt_nack(self, r, message_id, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                           "you have %u envelopes waiting to be written to the hub's store%s "
                           "(the limit per member is %d); nothing was stored: wait for the "
                           "ACKs of those before sending more",
                           (unsigned)sender->store_waiting,
                           publication ? " (a publication counts once per subscriber)" : "",
                           HUB__MEMBER_PENDING_MAX);
    else
        send__receipt_nack(self, r, message_id, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                           "the hub's store is behind (%zu envelopes waiting to be written); "
                           "nothing was stored, %s again shortly",
                           self->pending_n, publication ? "publish" : "send");
}

/* The member's limits, re-read after every reload: hubd.conf's defaults,
 * or its policy `limit` line. */
void admit__member_limits(hub_server_t *self, core__member_t *m)
{
    if (m->limits_gen == self->limits_gen && m->refill_mono_us)
        return;
    m->limits_gen = self->limits_gen;
    hub_policy_limits_t l = {
        .rate_msgs = self->cfg.rate_msgs,
        .rate_bytes = self->cfg.rate_bytes,
        .send_msgs = self->cfg.quota_send_msgs,
        .send_bytes = self->cfg.quota_send_bytes,
        .recv_msgs = self->cfg.quota_recv_msgs,
        .recv_bytes = self->cfg.quota_recv_bytes,
    };
    if (self->policy)
        hub_policy_limits(self->policy, m->id, &l);
    m->rate_msgs = l.rate_msgs;
    m->rate_bytes = l.rate_bytes;
    m->send_msgs = l.send_msgs;
    m->send_bytes = l.send_bytes;
    m->recv_msgs = l.recv_msgs;
    m->recv_bytes = l.recv_bytes;
    if (!m->refill_mono_us) {
        m->tokens_msgs = (double)m->rate_msgs;
        m->tokens_bytes = (double)m->rate_bytes;
        m->refill_mono_us = hub_monotonic_us();
    }
}

/* Token buckets: 0 when the member may send this envelope now, else
 * NACK_RATE_LIMITED with a sentence in why (HUB__WHY_MAX). A bucket holds
 * one second's worth, so short bursts pass and a steady flood is cut to
 * the rate, whatever the others do. */
int admit__rate_check(hub_server_t *self, core__member_t *m, size_t len, char *why)
{
    admit__member_limits(self, m);
    if (!m->rate_msgs && !m->rate_bytes)
        return 0;
    uint64_t now = hub_monotonic_us();
    double dt = (double)(now - m->refill_mono_us) / 1e6;
    m->refill_mono_us = now;
    m->tokens_msgs += dt * (double)m->rate_msgs;
    if (m->tokens_msgs > (double)m->rate_msgs)
        m->tokens_msgs = (double)m->rate_msgs;
    m->tokens_bytes += dt * (double)m->rate_bytes;
    if (m->tokens_bytes > (double)m->rate_bytes)
        m->tokens_bytes = (double)m->rate_bytes;
    bool msgs_ok = !m->rate_msgs || m->tokens_msgs >= 1.0;
    /* An envelope larger than a second's worth passes on a full bucket. */
    bool bytes_ok = !m->rate_bytes || m->tokens_bytes >= (double)len ||
                    m->tokens_bytes >= (double)m->rate_bytes;
    if (msgs_ok && bytes_ok) {
        m->tokens_msgs -= 1.0;
        m->tokens_bytes -= (double)len;
        return 0;
    }
    if (!msgs_ok)
        snprintf(why, HUB__WHY_MAX,
                 "%s may send %llu envelopes a second and is over that rate; slow down and send "
                 "this again in %.0f ms (the operator sets the rate: rate_msgs, or a 'limit' "
                 "line in the policy)",
                 m->id, (unsigned long long)m->rate_msgs,
                 1000.0 * (1.0 - m->tokens_msgs) / (double)m->rate_msgs + 1.0);
    else
        snprintf(why, HUB__WHY_MAX,
                 "%s may send %llu envelope bytes a second and is over that rate; slow down and "
                 "send this again in %.0f ms (the operator sets the rate: rate_bytes, or a "
                 "'limit' line in the policy)",
                 m->id, (unsigned long long)m->rate_bytes,
                 1000.0 * ((double)len - m->tokens_bytes) / (double)m->rate_bytes + 1.0);
    return LTH__V1__NACK_CODE__NACK_RATE_LIMITED;
}

void admit__route_envelope(hub_server_t *self, core__member_t *sender, const uint8_t *bytes,
                           size_t len, core__receipts_t *receipts)
{
    hub_envelope_t *env = NULL;
    /* Decoded into the turn's arena, and given back at the end. */
    hub_arena_mark_t mark = hub_arena_mark(&self->turn_arena);
    if (len > (size_t)self->cfg.max_payload_bytes + 65536u) {
        send__receipt_nack(self, receipts, "", LTH__V1__NACK_CODE__NACK_PAYLOAD_TOO_LARGE,
                           "envelope of %zu bytes exceeds the hub's limit of %u payload bytes; "
                           "split the payload or send a reference to it",
                           len, self->cfg.max_payload_bytes);
        return;
    }
    bool in_place = false;
    if (hub_envelope_read_in(&self->turn_arena, bytes, len, &env, &in_place) != 0) {
        send__receipt_nack(self, receipts, "", LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                           "an item of the batch is not an encoded lth.v1.Envelope");
        return;
    }
    /* Read in place: each field once, valid wire format (what
     * hub_envelope_check_encoding checks), but for the batch proof. */
    bool plain = in_place && !env->batch_proof;
    const char *problem = NULL;
    const char *mid = hub_uuid_valid(env->message_id) ? env->message_id : "";
    receipts->env = env; /* refusals from here on carry its evidence (outcome__refused) */
    if (env->payload.len > self->cfg.max_payload_bytes) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_PAYLOAD_TOO_LARGE,
                           "payload of %zu bytes exceeds the hub's limit of %u bytes; split the "
                           "payload or send a reference to it",
                           env->payload.len, self->cfg.max_payload_bytes);
        goto done;
    }
    if (hub_envelope_check(env, &problem) != 0) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE, "%s",
                           problem);
        goto done;
    }
    if (env->base.n_unknown_fields > 0 ||
        (env->batch_proof && env->batch_proof->base.n_unknown_fields > 0)) {
        /* The hub forwards the exact bytes, and the signature covers only
         * the fields of lth.v1.Envelope: an unknown field would travel
         * unsigned. */
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                           "the envelope has fields lth.v1.Envelope does not define; they "
                           "would not be covered by its signature: remove them");
        goto done;
    }
    char twice[HUB_ERRMSG_MAX]; /* a field encoded twice: forwarded bytes, ambiguous value */
    if (!plain && hub_envelope_check_encoding(bytes, len, twice, sizeof twice) != 0) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE, "%s",
                           twice);
        goto done;
    }
    if (strcmp(env->sender, sender->id) != 0) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_SENDER_MISMATCH,
                           "the envelope claims sender %s but this connection is authenticated "
                           "as %s; set sender to your own member id",
                           env->sender, sender->id);
        goto done;
    }
    if (!strcmp(env->receiver, self->own_key.member_id)) {
        pubsub__publish(self, sender, env, bytes, len, receipts, mid);
        goto done;
    }
    core__member_t *rcv = self->last_receiver; /* members live as long as the server */
    if (!rcv || self->last_receiver_gen != self->keys_gen || strcmp(rcv->id, env->receiver)) {
        if (!hub_keydir_find_member(self->keys, env->receiver)) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER,
                               "no member %s is registered with the hub; check the receiver "
                               "id, or ask the hub operator to add its key",
                               env->receiver);
            goto done;
        }
        rcv = members__member(self, env->receiver);
        self->last_receiver = rcv;
        self->last_receiver_gen = self->keys_gen;
    }
    if (rcv) {
        /* From here on, refusals are counted against this flow. */
        receipts->receiver = rcv->id;
        receipts->service = env->service;
    }
    /* Deny by default: a request or event needs a data-sharing agreement
     * with the member it is addressed to; a reply needs the request it
     * answers (admit__reply, below, once the receiver is known). */
    const char *purpose = NULL; /* the agreement's, for the audit log */
    if (env->kind != LTH__V1__KIND__KIND_REPLY) {
        hub_policy_decision_t decision;
        const char *why =
            trust__forbidden(self, env->sender, env->receiver, env->service, &decision);
        if (why) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_FORBIDDEN, "%s", why);
            goto done;
        }
        if (self->policy && self->audit && decision.purpose && *decision.purpose) {
            purpose = members__intern(self, decision.purpose);
            receipts->purpose = purpose;
        }
    }
    /* Ủy quyền: the authority addressed has delegated this service, or the
     * procedure the envelope names in its signed content type (never read
     * from the payload). */
    const hub_delegation_rule_t *deleg_rule = NULL;
    const char *delegate = NULL;
    char procedure[HUB_PROCEDURE_CODE_MAX] = "";
    if (self->delegations && env->kind != LTH__V1__KIND__KIND_REPLY) {
        const char *why = NULL;
        int prc = hub_delegation_procedure_of(env->content_type, procedure, &why);
        if (prc < 0) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_MALFORMED_ENVELOPE,
                               "%s", why);
            goto done;
        }
        if (prc > 0 && !self->cfg.require_signatures) {
            /* The hub routes by it: it must be the sender's word, signed,
             * even where the hub does not require signatures otherwise. */
            const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
            int vrc = skp && skp->has_sign
                          ? hub_envelope_verify_cached(env, skp->sign_public, &self->sigcache)
                          : HUB_EINVAL;
            if (vrc != 0) {
                send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                   "the content type names procedure %s (lth-procedure), by which "
                                   "the hub routes delegated dossiers, but the envelope is not "
                                   "signed by %s's key: sign it, or leave the parameter out",
                                   procedure, env->sender);
                goto done;
            }
        }
        deleg_rule = hub_delegations_match(self->delegations, env->receiver, env->service,
                                           procedure, hub_now_us());
        delegate = hub_delegation_rule_delegate(deleg_rule);
    }
    if (delegate) {
        if (!hub_keydir_find_member(self->keys, delegate)) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_UNKNOWN_RECEIVER,
                               "%s delegated %s to %s (delegations line %u), which has no key "
                               "at the hub; ask the operator to fix the delegation",
                               env->receiver, env->service, delegate,
                               hub_delegation_rule_line(deleg_rule));
            goto done;
        }
        core__member_t *dm = members__member(self, delegate);
        if (dm) {
            HUB_DEBUG("router", "delegated", "message_id=%s authority=%s delegate=%s line=%u",
                      env->message_id, env->receiver, delegate,
                      hub_delegation_rule_line(deleg_rule));
            rcv = dm;
            receipts->receiver = dm->id;
        }
    }
    if (!rcv) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                           "the hub is out of memory; send again later");
        goto done;
    }
    /* Replies route back by correlation id: only to a request the hub
     * tracks, from its receiver, to its sender, once. */
    admit__found_t answers = {NULL, 0};
    if (env->kind == LTH__V1__KIND__KIND_REPLY) {
        char why[HUB__WHY_MAX];
        int code = admit__reply(self, env, &answers, why);
        if (code != 0) {
            send__receipt_nack(self, receipts, mid, code, "%s", why);
            goto done;
        }
        /* a reply serves its request's purpose */
        purpose = admit__purpose_of(self->requests, admit__found_rec(answers)->purpose);
    }
    sender->msgs_in++;
    sender->bytes_in += len;
    if (env->delivery == LTH__V1__DELIVERY__DELIVERY_ONLINE_ONLY) {
        /* Several nodes: a receiver connected to another one is reached
         * over the node link (hub_cluster.c), once admitted here. */
        bool remote = !rcv->online && self->cluster && cluster__located(self, rcv->id);
        if (!rcv->online && !remote) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE,
                               "%s is not connected to the hub now; send with queued delivery to "
                               "have the hub keep it until the receiver returns",
                               rcv->id);
            goto done;
        }
        uint8_t digest[HUB_DIGEST_LEN];
        bool have_digest = false;
        if (self->cfg.require_signatures) {
            const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
            int vrc = skp && skp->has_sign ? hub_envelope_verify_out(env, skp->sign_public,
                                                                        &self->sigcache, digest)
                                           : HUB_EINVAL;
            have_digest = vrc == 0;
            if (vrc != 0) {
                send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                   "%s", admit__signature_problem(vrc, skp && skp->has_sign));
                goto done;
            }
        }
        if (!remote && send__waiting(rcv) + len > self->cfg.max_waiting_bytes) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_QUEUE_FULL,
                               "%s is not reading fast enough: %llu bytes already wait for it "
                               "(the limit is max_waiting_bytes = %llu); send again later, or "
                               "send with queued delivery",
                               rcv->id, (unsigned long long)send__waiting(rcv),
                               (unsigned long long)self->cfg.max_waiting_bytes);
            goto done;
        }
        if (env->kind == LTH__V1__KIND__KIND_REQUEST && !remote) {
            const char *why; /* env->sender is sender->id (checked above) */
            int code = admit__remember_request_of(self, env->message_id, sender, rcv, purpose,
                                                  env->ttl_ms, false, &why);
            if (code != 0) {
                send__receipt_nack(self, receipts, mid, code, "%s", why);
                goto done;
            }
        }
        if (remote && !cluster__forward(self, rcv->id, bytes, len)) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_RECEIVER_OFFLINE,
                               "%s is connected to another node of the hub, which cannot be "
                               "reached now; send again shortly, or send with queued delivery",
                               rcv->id);
            goto done;
        }
        /* The bytes are the Batch frame's, in the turn's arena: the
         * delivery borrows them until the end of this turn. */
        if (!remote &&
            send__enqueue_lent(self, rcv, env->sender, 0, 1, (uint8_t *)bytes, len) != 0) {
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                               "the hub is out of memory; send again later");
            goto done;
        }
        self->turn_lent = true;
        if (answers.in)
            admit__request_answered(self, answers, env->message_id, 0);
        send__receipt_ack_routed(receipts, env->message_id, 0, delegate ? rcv->id : NULL);
        if (delegate)
            hub_delegations_note_use(self->delegations, deleg_rule, procedure, hub_now_us());
        core__evidence_t ev;
        if (self->audit) /* the digest once: the signature check's, when it ran */
            outcome__evidence_later(self, env, bytes, len, have_digest ? digest : NULL, purpose,
                                    &ev);
        outcome__accepted(self, env, rcv->id, len, self->audit ? &ev : NULL,
                          env->kind == LTH__V1__KIND__KIND_REQUEST ? "request online-only"
                          : env->kind == LTH__V1__KIND__KIND_REPLY ? "reply online-only"
                                                                   : "event online-only",
                          true);
        goto done;
    }
    /* Durable: wait for the group commit, unless the sender holds its share
     * of the envelopes waiting for the store, or the store is this far
     * behind for everyone (the rule at HUB__MAX_PENDING): then the sender is
     * told to wait, and the hub's memory stays bounded whatever the senders
     * do. */
    core__room_t room = core__store_room(self, sender, 1);
    if (room != CORE__ROOM) {
        admit__queue_full(self, receipts, mid, sender, room, false);
        goto done;
    }
    uint64_t ttl_ms = env->ttl_ms ? env->ttl_ms : self->cfg.default_ttl_ms;
    if (ttl_ms > self->cfg.max_ttl_ms)
        ttl_ms = self->cfg.max_ttl_ms;
    core__pending_t p;
    memset(&p, 0, sizeof p);
    p.bytes = malloc(len ? len : 1);
    if (!p.bytes) {
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                           "the hub is out of memory; send again later");
        goto done;
    }
    memcpy(p.bytes, bytes, len);
    /* Room in the pending array first: once delivered early, the envelope
     * lends its bytes to the delivery until the end of this turn
     * (send__enqueue_lent), so it can no longer be given up. */
    if (core__grow((void **)&self->pending, &self->pending_cap, self->pending_n + 1,
                   sizeof *self->pending) != 0) {
        free(p.bytes);
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                           "the hub is out of memory; send again later");
        goto done;
    }
    core__copy_str(p.msg.message_id, sizeof p.msg.message_id, env->message_id);
    core__copy_str(p.msg.sender, sizeof p.msg.sender, env->sender);
    core__copy_str(p.msg.receiver, sizeof p.msg.receiver, rcv->id);
    if (delegate) {
        core__member_t *authority = members__member(self, env->receiver);
        p.delegated_from = authority ? authority->id : NULL;
        /* Only a code the rule names: the interned set stays bounded. */
        if (procedure[0] && hub_delegation_rule_names(deleg_rule, procedure))
            p.delegated_procedure = members__intern(self, procedure);
    }
    core__copy_str(p.msg.service, sizeof p.msg.service, env->service);
    p.purpose = purpose;
    p.msg.accepted_at_us = hub_now_us();
    p.msg.expires_at_us = p.msg.accepted_at_us + ttl_ms * 1000u;
    p.msg.envelope = p.bytes;
    p.msg.envelope_len = len;
    delivery__quota_for(self, sender, rcv, &p.msg.quota);
    if (self->cfg.require_signatures) {
        /* Checked on the commit worker, off the loop thread. */
        const hub_keypair_t *skp = hub_keydir_find_member(self->keys, env->sender);
        if (!skp || !skp->has_sign || env->signature.len == 0) {
            free(p.bytes);
            send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE, "%s",
                               admit__signature_problem(HUB_EINVAL, skp && skp->has_sign));
            goto done;
        }
        memcpy(p.sign_key, skp->sign_public, 32);
        p.verify = true;
        /* A batch signature costs one Ed25519 check per batch (the cache),
         * so it is checked here, which lets the envelope go early; a single
         * signature (~75 µs) waits for the commit worker. */
        if (env->batch_proof) {
            /* The digest is kept for the store's de-duplication record:
             * the envelope is hashed once. */
            int vrc = hub_envelope_digest(env, p.msg.digest);
            if (vrc == 0)
                vrc = hub_envelope_verify_digest(env, p.msg.digest, skp->sign_public,
                                                 &self->sigcache);
            if (vrc != 0) {
                free(p.bytes);
                send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_BAD_SIGNATURE,
                                   "%s", admit__signature_problem(vrc, true));
                goto done;
            }
            p.verify = false;
        }
    }
    /* The store's de-duplication record keeps the digest (ID_REUSED): from
     * this decode, so that the commit worker decodes the envelope again
     * only for a signature it checks or the audit log. A failure leaves it
     * zero (the worker tries again). */
    if (!p.verify && !(self->cfg.require_signatures && env->batch_proof))
        (void)hub_envelope_digest(env, p.msg.digest);
    if (env->kind == LTH__V1__KIND__KIND_REQUEST) {
        const char *why;
        int code = admit__remember_request_of(self, env->message_id, sender, rcv, purpose,
                                              env->ttl_ms ? env->ttl_ms : ttl_ms, true, &why);
        if (code != 0) {
            free(p.bytes);
            send__receipt_nack(self, receipts, mid, code, "%s", why);
            goto done;
        }
        p.request_expires_us = p.msg.expires_at_us;
    }
    p.msg.preset_seq = self->next_seq++;
    p.payer = sender;
    if (answers.in)
        admit__request_answered(self, answers, env->message_id, p.msg.preset_seq);
    delivery__deliver_early(self, sender, env->created_at_us, rcv, &p);
    p.queued_mono_us = hub_monotonic_us();
    if (delivery__pending_push(self, &p) != 0) { /* cannot fail: room was made above */
        free(p.bytes);
        send__receipt_nack(self, receipts, mid, LTH__V1__NACK_CODE__NACK_INTERNAL,
                           "the hub is out of memory; send again later");
    }
done:
    receipts->receiver = NULL;
    receipts->service = NULL;
    receipts->env = NULL;
    receipts->purpose = NULL;
    env = NULL;
    hub_arena_release(&self->turn_arena, mark);
}

/* An online-only envelope another node of the hub admitted (agreement,
 * signature and reply rule checked there) for a member connected here:
 * handed to it, or dropped when it has gone meanwhile (online-only). A
 * request is tracked here, so that its reply, sent to this node, passes the
 * reply rule and goes back over the link. */
void admit__forwarded(hub_server_t *self, const char *receiver, const char *origin,
                      const uint8_t *bytes, size_t len)
{
    core__member_t *rcv = hub_map_get(self->members, receiver);
    hub_envelope_t *env = NULL;
    if (!rcv || !rcv->online || hub_envelope_decode(bytes, len, &env) != 0) {
        HUB_INFO("cluster", "forwarded envelope dropped: receiver not connected here",
                 "receiver=%s", receiver);
        hub_envelope_free(&env);
        return;
    }
    if (env->kind == LTH__V1__KIND__KIND_REQUEST) {
        const char *why;
        if (admit__remember_request(self, env->message_id, env->sender, rcv->id, NULL, env->ttl_ms,
                                    false, &why) != 0)
            HUB_WARN("cluster", "forwarded request not tracked; its reply will be refused",
                     "message_id=%s why=\"%s\"", env->message_id, why);
    }
    core__member_t *from = members__member(self, env->sender); /* for the reply's admission */
    if (from && !from->online)
        cluster__came_from(self, env->sender, origin);
    if (send__enqueue_out(self, rcv, env->sender, 0, 1, bytes, len) != 0)
        HUB_WARN("cluster", "forwarded envelope dropped: out of memory", "receiver=%s", receiver);
    hub_envelope_free(&env);
}

/* Several nodes: a queued envelope this node delivers may have been
 * admitted by another. A request is tracked here too (its reply comes to
 * this node); a reply closes the request this node tracked for its sender
 * (the reply was admitted where the request's receiver is connected). */
void admit__cluster_delivered(hub_server_t *self, const hub_store_msg_t *msg)
{
    admit__found_t f = {NULL, 0};
    const admit__rec_t *req = NULL;
    hub_envelope_t *env = NULL;
    if (hub_envelope_decode(msg->envelope, msg->envelope_len, &env) != 0)
        return;
    if (env->kind == LTH__V1__KIND__KIND_REQUEST &&
        !admit__lookup_text(self->requests, msg->message_id).in) {
        const char *why;
        if (admit__remember_request(self, msg->message_id, msg->sender, msg->receiver, NULL,
                                    env->ttl_ms, true, &why) != 0)
            HUB_WARN("cluster", "request from another node not tracked; its reply will be refused",
                     "message_id=%s why=\"%s\"", msg->message_id, why);
    } else if (env->kind == LTH__V1__KIND__KIND_REPLY &&
               (req = admit__found_rec(f = admit__lookup_text(self->requests,
                                                               env->correlation_id))) != NULL &&
               !strcmp(admit__member_id(self->requests, req->sender), msg->receiver)) {
        admit__request_answered(self, f, msg->message_id, 0);
    }
    hub_envelope_free(&env);
}
