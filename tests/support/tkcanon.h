/* tkcanon — an envelope's canonical signing form (proto/README.md, "The
 * canonical form"), built here independently of common/hub_sign.c, which
 * hashes the same bytes without ever holding them. unit_test_sign and
 * gen_testvectors (tests/tools) check that the two definitions agree.
 * Needs nothing but the envelope type: gen_testvectors links it alone.
 */
#ifndef TKCANON_H
#define TKCANON_H

#include "hub_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TK_CANON_MAX 4096

typedef struct {
    uint8_t b[TK_CANON_MAX];
    size_t n;
} tk_canon_t;

/* Writes env's canonical form into out; false when it is longer than
 * TK_CANON_MAX bytes. NULL strings and bytes count as empty. */
bool tk_canonical(const hub_envelope_t *env, tk_canon_t *out);

#endif
