/* hub_vec — room for one more element in a growable array, the pattern
 * every list of offers, rows, keys or ids here needs:
 *
 *     if (HUB_VEC_RESERVE(c->offers, c->n_offers, c->cap_offers, 8) != 0)
 *         return HUB_ENOMEM;
 *     c->offers[c->n_offers++] = offer;
 *
 * The array is `items` (a T *, NULL while empty) with `cap` elements
 * allocated (a size_t) and `n` in use; when n == cap the capacity doubles,
 * from `first`. Returns 0 or HUB_ENOMEM, in which case the array, its
 * elements and cap are unchanged. The caller frees items with free().
 * Header-only: the SDK and plugins need no symbol for it.
 */
#ifndef HUB_VEC_H
#define HUB_VEC_H

#include "hub_error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The function behind HUB_VEC_RESERVE: items_p points to the array's
 * pointer (copied with memcpy, so any T * works). */
static inline int hub_vec_reserve(void *items_p, size_t n, size_t *cap, size_t elem_size,
                                  size_t first)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : first;
    if (ncap < n + 1 || ncap > SIZE_MAX / elem_size)
        return HUB_ENOMEM;
    void *items;
    memcpy(&items, items_p, sizeof items);
    void *grown = realloc(items, ncap * elem_size);
    if (!grown)
        return HUB_ENOMEM;
    memcpy(items_p, &grown, sizeof grown);
    *cap = ncap;
    /* grown is stored through items_p (memcpy), which cppcheck does not follow. */
    // cppcheck-suppress memleak
    return 0;
}

#define HUB_VEC_RESERVE(items, n, cap, first)                                                      \
    hub_vec_reserve(&(items), (n), &(cap), sizeof *(items), (first))

/* Hands the array over to (to, to_n) without copying, leaving (items, n,
 * cap) empty: a batch moves on and the next one starts a new array. */
#define HUB_VEC_TAKE(to, to_n, items, n, cap)                                                      \
    do {                                                                                           \
        (to) = (items);                                                                            \
        (to_n) = (n);                                                                              \
        (items) = NULL;                                                                            \
        (n) = (cap) = 0;                                                                           \
    } while (0)

/* Sets `at` (a size_t) to the first index of items[0..n) whose member `key`
 * is not less than `want`, or n when there is none: a lower-bound search of
 * an array sorted by that member. `key` may be a path (msg.preset_seq).
 * Whether items[at] is the one wanted is the caller's check. */
#define HUB_VEC_LOWER_BOUND(items, n, key, want, at)                                               \
    do {                                                                                           \
        size_t hub_vec_lo_ = 0, hub_vec_hi_ = (n);                                                 \
        while (hub_vec_lo_ < hub_vec_hi_) {                                                        \
            size_t hub_vec_mid_ = hub_vec_lo_ + (hub_vec_hi_ - hub_vec_lo_) / 2;                   \
            if ((items)[hub_vec_mid_].key < (want))                                                \
                hub_vec_lo_ = hub_vec_mid_ + 1;                                                    \
            else                                                                                   \
                hub_vec_hi_ = hub_vec_mid_;                                                        \
        }                                                                                          \
        (at) = hub_vec_lo_;                                                                        \
    } while (0)

#endif
