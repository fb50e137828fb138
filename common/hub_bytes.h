/* hub_bytes — fixed-width integers to and from bytes, in a stated byte
 * order, whatever the machine's: big-endian (network order: signed
 * digests, the archive) and little-endian (store records, the SDK's
 * journal). p must hold 2, 4 or 8 bytes; nothing is checked beyond that.
 * Also hex text back into bytes. Header-only, so the SDK and plugins need
 * no symbol for it.
 */
#ifndef HUB_BYTES_H
#define HUB_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void hub_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void hub_put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint32_t hub_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void hub_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t hub_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void hub_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint32_t hub_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void hub_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t hub_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* The value of one hex digit (either case), -1 when c is not one. */
static inline int hub_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Text written as hex (as PostgreSQL's encode(..., 'hex') gives it) back
 * into out, NUL-terminated; it may be empty. false when hex is not hex of
 * an even length, holds a NUL byte or does not fit in size. */
static inline bool hub_unhex_text(const char *hex, char *out, size_t size)
{
    size_t len = strlen(hex);
    if (len % 2 || len / 2 + 1 > size)
        return false;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hub_hex_digit(hex[2 * i]), lo = hub_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return false;
        out[i] = (char)(hi << 4 | lo);
    }
    out[len / 2] = '\0';
    return true;
}

#endif
