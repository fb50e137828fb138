/* hub_utf8 — the one UTF-8 validator: RFC 3629 well-formed sequences only
 * (no overlong forms, no surrogates, nothing above U+10FFFF), as JSON
 * writers, the audit log and HTTP answers need before they copy text from
 * members or files. It never reads past the bytes it is given.
 * Header-only: the plugins that use it (the HTTP bridge's JSON mapping)
 * link nothing of hub_common's.
 */
#ifndef HUB_UTF8_H
#define HUB_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length (1 to 4) of the well-formed sequence at s, of which avail
 * bytes may be read (avail >= 1), or 0 when s starts an ill-formed one. */
static inline size_t hub_utf8_len(const uint8_t *s, size_t avail)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf; /* the second byte's range (RFC 3629, table 3-7) */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* not overlong */
        else if (c == 0xed)
            hi = 0x9f; /* not a surrogate */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* not overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* not above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

#endif
