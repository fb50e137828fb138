#include "hub_audit.h"
#include "hub_error.h"
#include "hub_log.h"
#include "hub_numfiles.h"
#include "hub_sha256.h"
#include "hub_tsa.h"
#include "hub_wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUB__CP_DOMAIN "LTH-AUDIT-CHECKPOINT-V1" /* followed by one 0x00 byte */
#define HUB__CP_MSG_LEN (sizeof HUB__CP_DOMAIN + 3 * 8 + 2 * 32)
#define HUB__WRITE_BUF (64 * 1024)
#define HUB__DEFAULT_MAX_FILE_BYTES (64ull * 1024 * 1024)
#define HUB__DEFAULT_CP_RECORDS 1000ull
#define HUB__DEFAULT_CP_US (10ull * 1000 * 1000)
#define HUB__ROT_DOMAIN "LTH-AUDIT-KEY-ROTATION-V1" /* followed by one 0x00 byte */
#define HUB__ROT_MSG_LEN (sizeof HUB__ROT_DOMAIN + 2 * 32)
#define HUB__ROT_REASON "new hub signing key "

static const char *const hub__event_names[] = {
    [HUB_AUDIT_ACCEPTED] = "ACCEPTED",
    [HUB_AUDIT_DELIVERED] = "DELIVERED",
    [HUB_AUDIT_SETTLED] = "SETTLED",
    [HUB_AUDIT_NACKED] = "NACKED",
    [HUB_AUDIT_DEAD_LETTERED] = "DEAD_LETTERED",
    [HUB_AUDIT_REPLAYED] = "REPLAYED",
    [HUB_AUDIT_EXPIRED] = "EXPIRED",
    [HUB_AUDIT_MEMBER_CONNECTED] = "MEMBER_CONNECTED",
    [HUB_AUDIT_MEMBER_REFUSED] = "MEMBER_REFUSED",
    [HUB_AUDIT_CHECKPOINT] = "CHECKPOINT",
    [HUB_AUDIT_RECOVERED] = "RECOVERED",
    [HUB_AUDIT_KEY_ROTATED] = "KEY_ROTATED",
    [HUB_AUDIT_TIMESTAMPED] = "TIMESTAMPED",
};
#define HUB__EVENT_COUNT (sizeof hub__event_names / sizeof hub__event_names[0])

const char *hub_audit_event_name(hub_audit_event_t event)
{
    if ((unsigned)event >= HUB__EVENT_COUNT || !hub__event_names[event])
        return "UNKNOWN";
    return hub__event_names[event];
}

/* ---- hashing ------------------------------------------------------------ */

/* libsodium, not OpenSSL: records are hashed on libuv's worker threads,
 * and OpenSSL keeps per-thread state there that is never freed (its atexit
 * cleanup runs before libuv joins those threads; valgrind reports it). */
static void hub__sha256(const void *data, size_t len, uint8_t out[32])
{
    hub_sha256(data, len, out);
}

static void hub__mac_key(const uint8_t sign_secret[64], uint8_t key[32])
{
    static const char domain[] = "LTH-AUDIT-MAC-V1"; /* and its NUL */
    uint8_t material[sizeof domain + 32];
    memcpy(material, domain, sizeof domain);
    memcpy(material + sizeof domain, sign_secret, 32); /* the Ed25519 seed */
    hub__sha256(material, sizeof material, key);
    sodium_memzero(material, sizeof material);
}

void hub_audit_envelope_mac(const uint8_t sign_secret[64], const uint8_t digest[32],
                            uint8_t out[32])
{
    uint8_t key[crypto_auth_hmacsha256_KEYBYTES];
    hub__mac_key(sign_secret, key);
    crypto_auth_hmacsha256(out, digest, 32, key);
    sodium_memzero(key, sizeof key);
}

static void hub__put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* The bytes a checkpoint's hub_signature covers (see the header). */
static void hub__cp_message(uint64_t seq, uint64_t ts, uint64_t count, const uint8_t head[32],
                            const uint8_t prev_cp[32], uint8_t out[HUB__CP_MSG_LEN])
{
    uint8_t *p = out;
    memcpy(p, HUB__CP_DOMAIN, sizeof HUB__CP_DOMAIN);
    p += sizeof HUB__CP_DOMAIN;
    hub__put_be64(p, seq);
    hub__put_be64(p + 8, ts);
    hub__put_be64(p + 16, count);
    p += 24;
    memcpy(p, head, 32);
    memcpy(p + 32, prev_cp, 32);
}

/* The bytes a KEY_ROTATED record's proof (sender_signature) covers. */
static void hub__rot_message(const uint8_t old_pub[32], const uint8_t new_pub[32],
                             uint8_t out[HUB__ROT_MSG_LEN])
{
    memcpy(out, HUB__ROT_DOMAIN, sizeof HUB__ROT_DOMAIN);
    memcpy(out + sizeof HUB__ROT_DOMAIN, old_pub, 32);
    memcpy(out + sizeof HUB__ROT_DOMAIN + 32, new_pub, 32);
}

/* The new key a KEY_ROTATED record's reason names; false if malformed. */
static bool hub__rot_key(const char *reason, uint8_t out[32])
{
    size_t n = strlen(HUB__ROT_REASON);
    if (strncmp(reason, HUB__ROT_REASON, n) != 0 || strlen(reason + n) != 64)
        return false;
    size_t bin_len = 0;
    return sodium_hex2bin(out, 32, reason + n, 64, NULL, &bin_len, NULL) == 0 && bin_len == 32;
}

void hub_audit_tsr_name(uint64_t seq, char out[HUB_AUDIT_TSR_NAME_MAX])
{
    snprintf(out, HUB_AUDIT_TSR_NAME_MAX, "audit-cp-%012" PRIu64 ".tsr", seq);
}

void hub_audit_timestamped_reason(uint64_t cp_seq, const uint8_t token_sha256[32], char *out,
                                  size_t size)
{
    char name[HUB_AUDIT_TSR_NAME_MAX], hex[65];
    hub_audit_tsr_name(cp_seq, name);
    sodium_bin2hex(hex, sizeof hex, token_sha256, 32);
    snprintf(out, size, "checkpoint %" PRIu64 " time-stamped: token %s sha256 %s", cp_seq, name,
             hex);
}

/* ---- rendering a line ----------------------------------------------------- */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
    bool full; /* something did not fit */
} hub__sb_t;

static void hub__sb_put(hub__sb_t *b, const void *s, size_t n)
{
    if (b->full || n > b->cap - b->len) {
        b->full = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void hub__sb_lit(hub__sb_t *b, const char *s)
{
    hub__sb_put(b, s, strlen(s));
}

static void hub__sb_u64(hub__sb_t *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    hub__sb_put(b, tmp, (size_t)n);
}

static void hub__sb_hex(hub__sb_t *b, const uint8_t *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    hub__sb_lit(b, "\"");
    for (size_t i = 0; i < n; i++) {
        char pair[2] = {digits[bytes[i] >> 4], digits[bytes[i] & 15]};
        hub__sb_put(b, pair, 2);
    }
    hub__sb_lit(b, "\"");
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when s starts an ill-formed one. */
static size_t hub__utf8_len(const uint8_t *s, size_t avail)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* The text as the log keeps it: ill-formed bytes become U+FFFD (3 bytes);
 * this is the length of that form, before JSON escaping. */
static size_t hub__clean_len(const uint8_t *s, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n;) {
        size_t k = hub__utf8_len(s + i, n - i);
        total += k ? k : 3;
        i += k ? k : 1;
    }
    return total;
}

/* A JSON string holding `text` cleaned, cut to `max` bytes, and escaped. */
static void hub__sb_json(hub__sb_t *b, const char *text, size_t max)
{
    const uint8_t *s = (const uint8_t *)(text ? text : "");
    size_t n = strlen((const char *)s);
    size_t budget = SIZE_MAX;
    bool cut = hub__clean_len(s, n) > max;
    if (cut)
        budget = max - 3; /* room for "..." */
    hub__sb_lit(b, "\"");
    size_t used = 0;
    for (size_t i = 0; i < n;) {
        size_t k = hub__utf8_len(s + i, n - i);
        size_t clean = k ? k : 3;
        if (used + clean > budget)
            break;
        used += clean;
        if (!k) {
            hub__sb_put(b, "\xef\xbf\xbd", 3);
            i++;
            continue;
        }
        uint8_t c = s[i];
        if (k == 1 && (c < 0x20 || c == 0x7f)) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            hub__sb_put(b, esc, 6);
        } else if (c == '"') {
            hub__sb_lit(b, "\\\"");
        } else if (c == '\\') {
            hub__sb_lit(b, "\\\\");
        } else {
            hub__sb_put(b, s + i, k);
        }
        i += k;
    }
    if (cut)
        hub__sb_lit(b, "...");
    hub__sb_lit(b, "\"");
}

typedef struct {
    uint64_t count;
    uint8_t prev_checkpoint[32];
    uint8_t signature[64];
} hub__cp_t;

/* Renders rec (with rec->seq, rec->time_us and rec->prev_hash as given) as
 * its line, newline included. cp is needed for a CHECKPOINT (and only
 * for one); HUB_EINVAL without it. */
static int hub__render(const hub_audit_record_t *rec, const hub__cp_t *cp, char *out, size_t cap,
                       size_t *len_out)
{
    if (rec->event == HUB_AUDIT_CHECKPOINT && !cp)
        return HUB_EINVAL;
    hub__sb_t b = {.p = out, .cap = cap};
    hub__sb_lit(&b, "{\"seq\":");
    hub__sb_u64(&b, rec->seq);
    hub__sb_lit(&b, ",\"ts\":");
    hub__sb_u64(&b, rec->time_us);
    hub__sb_lit(&b, ",\"event\":\"");
    hub__sb_lit(&b, hub_audit_event_name(rec->event));
    hub__sb_lit(&b, "\"");
    if (rec->event == HUB_AUDIT_CHECKPOINT) {
        hub__sb_lit(&b, ",\"count\":");
        hub__sb_u64(&b, cp->count);
        hub__sb_lit(&b, ",\"prev_checkpoint\":");
        hub__sb_hex(&b, cp->prev_checkpoint, 32);
        hub__sb_lit(&b, ",\"hub_signature\":");
        hub__sb_hex(&b, cp->signature, 64);
    } else {
        hub__sb_lit(&b, ",\"message_id\":");
        hub__sb_json(&b, rec->message_id, HUB_AUDIT_ID_MAX);
        hub__sb_lit(&b, ",\"hub_seq\":");
        hub__sb_u64(&b, rec->hub_seq);
        hub__sb_lit(&b, ",\"sender\":");
        hub__sb_json(&b, rec->sender, HUB_AUDIT_ID_MAX);
        hub__sb_lit(&b, ",\"receiver\":");
        hub__sb_json(&b, rec->receiver, HUB_AUDIT_ID_MAX);
        hub__sb_lit(&b, ",\"service\":");
        hub__sb_json(&b, rec->service, HUB_AUDIT_ID_MAX);
        if (rec->legacy) {
            hub__sb_lit(&b, ",\"payload_sha256\":");
        } else {
            hub__sb_lit(&b, ",\"purpose\":");
            hub__sb_json(&b, rec->purpose, HUB_AUDIT_ID_MAX);
            hub__sb_lit(&b, ",\"dossier\":");
            hub__sb_json(&b, rec->dossier, HUB_AUDIT_WORD_MAX);
            hub__sb_lit(&b, ",\"outcome\":");
            hub__sb_json(&b, rec->outcome, HUB_AUDIT_WORD_MAX);
            hub__sb_lit(&b, ",\"envelope_mac\":");
        }
        hub__sb_hex(&b, rec->digest, rec->has_digest ? 32 : 0);
        hub__sb_lit(&b, ",\"sender_signature\":");
        hub__sb_hex(&b, rec->signature, rec->signature ? rec->signature_len : 0);
        hub__sb_lit(&b, ",\"reason\":");
        hub__sb_json(&b, rec->reason, HUB_AUDIT_REASON_MAX);
    }
    hub__sb_lit(&b, ",\"prev\":");
    hub__sb_hex(&b, rec->prev_hash, 32);
    hub__sb_lit(&b, "}\n");
    if (b.full)
        return HUB_EINVAL;
    *len_out = b.len;
    return 0;
}

/* ---- parsing a line ------------------------------------------------------- */

typedef struct {
    hub_audit_record_t rec; /* strings point into the arrays below */
    hub__cp_t cp;
    char message_id[HUB_AUDIT_ID_MAX + 1];
    char sender[HUB_AUDIT_ID_MAX + 1];
    char receiver[HUB_AUDIT_ID_MAX + 1];
    char service[HUB_AUDIT_ID_MAX + 1];
    char purpose[HUB_AUDIT_ID_MAX + 1];
    char dossier[HUB_AUDIT_WORD_MAX + 1];
    char outcome[HUB_AUDIT_WORD_MAX + 1];
    char reason[HUB_AUDIT_REASON_MAX + 1];
    uint8_t signature[HUB_AUDIT_SIGNATURE_MAX];
} hub__parsed_t;

typedef struct {
    const char *p;
    const char *end;
} hub__cur_t;

static bool hub__lit(hub__cur_t *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool hub__u64(hub__cur_t *c, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        c->p++;
    }
    *out = v;
    return c->p > start;
}

static int hub__hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* A quoted lower-case hex string of at most max bytes. */
static bool hub__hex(hub__cur_t *c, uint8_t *out, size_t max, size_t *n_out)
{
    if (!hub__lit(c, "\""))
        return false;
    size_t n = 0;
    while (c->p < c->end && *c->p != '"') {
        if (c->end - c->p < 2 || n == max)
            return false;
        int hi = hub__hexval(c->p[0]), lo = hub__hexval(c->p[1]);
        if (hi < 0 || lo < 0)
            return false;
        out[n++] = (uint8_t)(hi << 4 | lo);
        c->p += 2;
    }
    *n_out = n;
    return hub__lit(c, "\"");
}

static bool hub__hex_exact(hub__cur_t *c, uint8_t *out, size_t want)
{
    size_t n = 0;
    return hub__hex(c, out, want, &n) && n == want;
}

/* A quoted JSON string as the renderer writes it, into out (max bytes). */
static bool hub__str(hub__cur_t *c, char *out, size_t max)
{
    if (!hub__lit(c, "\""))
        return false;
    size_t n = 0;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20)
            return false;
        if (ch == '\\') {
            if (c->p >= c->end)
                return false;
            char e = *c->p++;
            if (e == '"' || e == '\\') {
                ch = (unsigned char)e;
            } else if (e == 'u') {
                if (c->end - c->p < 4 || c->p[0] != '0' || c->p[1] != '0')
                    return false;
                int hi = hub__hexval(c->p[2]), lo = hub__hexval(c->p[3]);
                if (hi < 0 || lo < 0 || (hi << 4 | lo) == 0)
                    return false;
                ch = (unsigned char)(hi << 4 | lo);
                c->p += 4;
            } else {
                return false;
            }
        }
        if (n == max)
            return false;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return hub__lit(c, "\"");
}

static bool hub__event(hub__cur_t *c, hub_audit_event_t *out)
{
    if (!hub__lit(c, "\""))
        return false;
    const char *start = c->p;
    while (c->p < c->end && *c->p != '"')
        c->p++;
    size_t n = (size_t)(c->p - start);
    for (size_t i = 1; i < HUB__EVENT_COUNT; i++) {
        if (hub__event_names[i] && strlen(hub__event_names[i]) == n &&
            memcmp(hub__event_names[i], start, n) == 0) {
            *out = (hub_audit_event_t)i;
            return hub__lit(c, "\"");
        }
    }
    return false;
}

/* Parses one line (len bytes, ending in '\n') and checks that it is
 * canonical: rendering the parsed record gives the same bytes. scratch holds
 * HUB_AUDIT_LINE_MAX bytes. Returns 0 or HUB_EPARSE. */
static int hub__parse(const char *line, size_t len, hub__parsed_t *out, char *scratch)
{
    if (len < 2 || len > HUB_AUDIT_LINE_MAX || line[len - 1] != '\n')
        return HUB_EPARSE;
    memset(&out->rec, 0, sizeof out->rec);
    memset(&out->cp, 0, sizeof out->cp);
    hub_audit_record_t *r = &out->rec;
    hub__cur_t c = {line, line + len - 1};
    bool ok = hub__lit(&c, "{\"seq\":") && hub__u64(&c, &r->seq) && hub__lit(&c, ",\"ts\":") &&
              hub__u64(&c, &r->time_us) && hub__lit(&c, ",\"event\":") && hub__event(&c, &r->event);
    if (!ok)
        return HUB_EPARSE;
    if (r->event == HUB_AUDIT_CHECKPOINT) {
        ok = hub__lit(&c, ",\"count\":") && hub__u64(&c, &out->cp.count) &&
             hub__lit(&c, ",\"prev_checkpoint\":") &&
             hub__hex_exact(&c, out->cp.prev_checkpoint, 32) &&
             hub__lit(&c, ",\"hub_signature\":") && hub__hex_exact(&c, out->cp.signature, 64);
        r->message_id = r->sender = r->receiver = r->service = r->reason = "";
    } else {
        size_t n = 0;
        ok = hub__lit(&c, ",\"message_id\":") &&
             hub__str(&c, out->message_id, HUB_AUDIT_ID_MAX) &&
             hub__lit(&c, ",\"hub_seq\":") && hub__u64(&c, &r->hub_seq) &&
             hub__lit(&c, ",\"sender\":") && hub__str(&c, out->sender, HUB_AUDIT_ID_MAX) &&
             hub__lit(&c, ",\"receiver\":") && hub__str(&c, out->receiver, HUB_AUDIT_ID_MAX) &&
             hub__lit(&c, ",\"service\":") && hub__str(&c, out->service, HUB_AUDIT_ID_MAX);
        out->purpose[0] = out->dossier[0] = out->outcome[0] = '\0';
        /* A line written before purpose … envelope_mac existed. */
        r->legacy = ok && hub__lit(&c, ",\"payload_sha256\":");
        if (ok && !r->legacy)
            ok = hub__lit(&c, ",\"purpose\":") && hub__str(&c, out->purpose, HUB_AUDIT_ID_MAX) &&
                 hub__lit(&c, ",\"dossier\":") && hub__str(&c, out->dossier, HUB_AUDIT_WORD_MAX) &&
                 hub__lit(&c, ",\"outcome\":") && hub__str(&c, out->outcome, HUB_AUDIT_WORD_MAX) &&
                 hub__lit(&c, ",\"envelope_mac\":");
        ok = ok && hub__hex(&c, r->digest, 32, &n) && (n == 0 || n == 32);
        r->has_digest = n == 32;
        ok = ok && hub__lit(&c, ",\"sender_signature\":") &&
             hub__hex(&c, out->signature, HUB_AUDIT_SIGNATURE_MAX, &r->signature_len) &&
             hub__lit(&c, ",\"reason\":") && hub__str(&c, out->reason, HUB_AUDIT_REASON_MAX);
        r->message_id = out->message_id;
        r->sender = out->sender;
        r->receiver = out->receiver;
        r->service = out->service;
        r->purpose = out->purpose;
        r->dossier = out->dossier;
        r->outcome = out->outcome;
        r->reason = out->reason;
        r->signature = r->signature_len ? out->signature : NULL;
    }
    ok = ok && hub__lit(&c, ",\"prev\":") && hub__hex_exact(&c, r->prev_hash, 32) &&
         hub__lit(&c, "}") && c.p == c.end;
    if (!ok)
        return HUB_EPARSE;
    size_t again = 0;
    if (hub__render(r, &out->cp, scratch, HUB_AUDIT_LINE_MAX, &again) != 0 || again != len ||
        memcmp(scratch, line, len) != 0)
        return HUB_EPARSE;
    return 0;
}

/* ---- files ---------------------------------------------------------------- */

static void hub__file_name(unsigned long number, char out[HUB_AUDIT_FILE_NAME_MAX])
{
    hub_numfiles_name("audit-", number, ".log", out, HUB_AUDIT_FILE_NAME_MAX);
}

/* The files of dir, in order (hub_numfiles.h). */
static int hub__list_files(const char *dir, hub_numfiles_t *out)
{
    return hub_numfiles_list(dir, "audit-", ".log", out);
}

/* Reads a whole file into a malloc'ed buffer (never NULL on success). */
static int hub__read_all(const char *dir, const char *name, char **buf_out, size_t *len_out)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return HUB_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hub_errno_code(errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return hub_errno_code(e);
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return HUB_ENOMEM;
    }
    for (;;) {
        if (len == cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                close(fd);
                return HUB_ENOMEM;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return hub_errno_code(e);
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    *buf_out = buf;
    *len_out = len;
    return 0;
}

/* The reason text of the RECOVERED record that acknowledges a cut line; the
 * verifier rebuilds it to check that the record names the right file. */
static void hub__torn_reason(char *out, size_t size, const char *file, size_t torn_bytes,
                             uint64_t last_seq)
{
    snprintf(out, size,
             "%s ends with %zu bytes of an incomplete record, left by a crash during a write; "
             "they are kept as evidence and the chain continues from the last complete record "
             "(seq %" PRIu64 ")",
             file, torn_bytes, last_seq);
}

/* ---- the writer ------------------------------------------------------------ */

struct hub_audit {
    char *dir;
    int dir_fd;                /* open for the flock() and for fsync after creating files */
    int fd;                    /* the current file, or -1 until the next write opens one */
    int retired_fd;            /* the file rotation closed, until the next flush syncs it */
    bool dir_dirty;            /* a file was created since the last flush */
    unsigned long file_number; /* of the current file, or of the next one to open */
    uint64_t file_bytes;       /* size of the current file, buffered bytes included */
    bool rotate_pending;       /* the current file is sealed and full: next write rotates */
    bool broken;               /* a write failed: refuse to append after a torn line */
    hub_audit_config_t config; /* with defaults applied; holds the secret key */
    uint64_t seq;              /* of the last record */
    uint8_t head[32];          /* hash of the last line */
    bool head_is_checkpoint;
    uint8_t last_checkpoint[32]; /* hash of the last checkpoint's line */
    uint64_t records_since_checkpoint;
    uint64_t last_checkpoint_us;
    hub_audit_head_t cp_written; /* the last checkpoint appended */
    hub_audit_head_t cp_durable; /* the last one a sync made durable */
    uint64_t gap;                /* records found missing at open (accept_gap) */
    char *gap_notice;            /* what they were, for the RECOVERED record */
    char *notice;
    char *buf;                 /* HUB__WRITE_BUF bytes not yet written */
    size_t buf_len;
    char line[HUB_AUDIT_LINE_MAX];
    uint8_t mac_key[32];       /* hub_audit_envelope_mac()'s key, derived once at open */
};

static void hub__fail(hub_audit_t *self, const char *what, int e)
{
    self->broken = true;
    HUB_ERROR("audit", "audit log write failed; appends are refused until the hub restarts",
              "dir=\"%s\" file=audit-%06lu.log op=%s errno=\"%s\"", self->dir, self->file_number,
              what, strerror(e));
}

static int hub__write_out(hub_audit_t *self)
{
    int e = hub_write_all(self->fd, self->buf, self->buf_len);
    if (e != 0) {
        hub__fail(self, "write", e);
        return HUB_EIO;
    }
    self->buf_len = 0;
    return 0;
}

/* Closes the file rotation retired, after syncing it. */
static int hub__sync_retired(hub_audit_t *self)
{
    if (self->retired_fd < 0)
        return 0;
    int rc = 0;
    if (fdatasync(self->retired_fd) != 0) {
        hub__fail(self, "fdatasync", errno);
        rc = HUB_EIO;
    }
    close(self->retired_fd);
    self->retired_fd = -1;
    return rc;
}

/* Makes everything appended so far durable: the buffer, the current file,
 * a file retired by rotation, and the directory entries of new files. */
static int hub__sync(hub_audit_t *self)
{
    int rc = self->fd >= 0 ? hub__write_out(self) : 0;
    if (rc == 0 && self->fd >= 0 && fdatasync(self->fd) != 0) {
        /* After a failed fdatasync the kernel may have dropped the dirty
         * pages: nothing written since the last good sync can be trusted. */
        hub__fail(self, "fdatasync", errno);
        rc = HUB_EIO;
    }
    if (rc == 0)
        rc = hub__sync_retired(self);
    if (rc == 0 && self->dir_dirty) {
        if (fsync(self->dir_fd) != 0) {
            hub__fail(self, "fsync of the directory", errno);
            rc = HUB_EIO;
        }
        self->dir_dirty = false;
    }
    if (rc == 0)
        self->cp_durable = self->cp_written;
    return rc;
}

/* Opens the next file, which must be new or empty; the next flush makes its
 * directory entry durable. */
static int hub__open_next_file(hub_audit_t *self)
{
    char name[HUB_AUDIT_FILE_NAME_MAX];
    hub__file_name(self->file_number, name);
    int fd = openat(self->dir_fd, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        hub__fail(self, "open", errno);
        return HUB_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size != 0) {
        close(fd);
        hub__fail(self, "open (the next audit file already holds data)", EEXIST);
        return HUB_EIO;
    }
    self->dir_dirty = true;
    self->fd = fd;
    self->file_bytes = 0;
    return 0;
}

/* Appends a rendered line: rotates first when due, buffers, moves the head. */
static int hub__emit(hub_audit_t *self, const char *line, size_t len, uint64_t seq)
{
    if (self->broken)
        return HUB_EIO;
    if (self->rotate_pending) {
        if (self->fd >= 0) {
            /* The next flush syncs and closes it, so that append never
             * waits for the disk; only a second rotation before that
             * flush has to sync the first one here. */
            int rc = hub__write_out(self);
            if (rc == 0)
                rc = hub__sync_retired(self);
            if (rc != 0)
                return rc;
            self->retired_fd = self->fd;
            self->fd = -1;
        }
        self->file_number++;
        self->rotate_pending = false;
    }
    if (self->fd < 0) {
        int rc = hub__open_next_file(self);
        if (rc != 0)
            return rc;
    }
    if (self->buf_len + len > HUB__WRITE_BUF) {
        int rc = hub__write_out(self);
        if (rc != 0)
            return rc;
    }
    memcpy(self->buf + self->buf_len, line, len);
    self->buf_len += len;
    self->file_bytes += len;
    hub__sha256(line, len, self->head);
    self->seq = seq;
    return 0;
}

static int hub__checkpoint(hub_audit_t *self, uint64_t now_us)
{
    hub_audit_record_t rec = {.event = HUB_AUDIT_CHECKPOINT, .seq = self->seq + 1,
                              .time_us = now_us};
    memcpy(rec.prev_hash, self->head, 32);
    hub__cp_t cp = {.count = self->seq};
    memcpy(cp.prev_checkpoint, self->last_checkpoint, 32);
    uint8_t msg[HUB__CP_MSG_LEN];
    hub__cp_message(rec.seq, rec.time_us, cp.count, rec.prev_hash, cp.prev_checkpoint, msg);
    if (crypto_sign_detached(cp.signature, NULL, msg, sizeof msg, self->config.sign_secret) != 0)
        return HUB_ECRYPTO;
    size_t len = 0;
    int rc = hub__render(&rec, &cp, self->line, sizeof self->line, &len);
    if (rc == 0)
        rc = hub__emit(self, self->line, len, rec.seq);
    if (rc != 0)
        return rc;
    memcpy(self->last_checkpoint, self->head, 32);
    self->head_is_checkpoint = true;
    self->records_since_checkpoint = 0;
    self->last_checkpoint_us = now_us;
    self->cp_written.seq = rec.seq;
    self->cp_written.time_us = rec.time_us;
    memcpy(self->cp_written.hash, self->head, 32);
    /* The published head: `hubctl audit verify --anchor SEQ:HASH`. */
    char head_hex[65], hash_hex[65];
    sodium_bin2hex(head_hex, sizeof head_hex, rec.prev_hash, 32);
    sodium_bin2hex(hash_hex, sizeof hash_hex, self->head, 32);
    HUB_INFO("audit", "audit checkpoint",
             "seq=%" PRIu64 " hash=%s head=%s anchor=%" PRIu64 ":%s file=audit-%06lu.log",
             rec.seq, hash_hex, head_hex, rec.seq, hash_hex, self->file_number);
    return 0;
}

/* A checkpoint when one is due by count or by size; rotation after a full
 * file's checkpoint. */
static int hub__after_record(hub_audit_t *self)
{
    bool full = self->file_bytes >= self->config.max_file_bytes;
    if (full || self->records_since_checkpoint >= self->config.checkpoint_every_records) {
        int rc = hub__checkpoint(self, hub_now_us());
        if (rc != 0)
            return rc;
        full = self->file_bytes >= self->config.max_file_bytes;
    }
    if (full)
        self->rotate_pending = true;
    return 0;
}

static int hub__append_any(hub_audit_t *self, const hub_audit_record_t *rec)
{
    hub_audit_record_t r = *rec;
    r.legacy = false; /* new lines are always written in the current format */
    if (r.has_digest) /* never the bare digest: see hub_audit_envelope_mac() */
        crypto_auth_hmacsha256(r.digest, rec->digest, 32, self->mac_key);
    r.seq = self->seq + 1;
    if (!r.time_us)
        r.time_us = hub_now_us();
    memcpy(r.prev_hash, self->head, 32);
    size_t len = 0;
    int rc = hub__render(&r, NULL, self->line, sizeof self->line, &len);
    if (rc == 0)
        rc = hub__emit(self, self->line, len, r.seq);
    if (rc != 0)
        return rc;
    self->head_is_checkpoint = false;
    self->records_since_checkpoint++;
    return hub__after_record(self);
}

int hub_audit_append(hub_audit_t *self, const hub_audit_record_t *rec)
{
    if (!self || !rec || rec->event < HUB_AUDIT_ACCEPTED ||
        (rec->event > HUB_AUDIT_MEMBER_REFUSED && rec->event != HUB_AUDIT_TIMESTAMPED) ||
        rec->signature_len > HUB_AUDIT_SIGNATURE_MAX ||
        (rec->signature_len && !rec->signature))
        return HUB_EINVAL;
    if (self->broken)
        return HUB_EIO;
    return hub__append_any(self, rec);
}

int hub_audit_tick(hub_audit_t *self, uint64_t now_us)
{
    if (!self)
        return HUB_EINVAL;
    if (self->broken)
        return HUB_EIO;
    if (now_us < self->last_checkpoint_us) {
        self->last_checkpoint_us = now_us; /* the wall clock went back */
        return 0;
    }
    if (self->records_since_checkpoint == 0 ||
        now_us - self->last_checkpoint_us < self->config.checkpoint_every_us)
        return 0;
    int rc = hub__checkpoint(self, now_us);
    if (rc == 0 && self->file_bytes >= self->config.max_file_bytes)
        self->rotate_pending = true;
    return rc;
}

int hub_audit_flush(hub_audit_t *self)
{
    if (!self)
        return HUB_EINVAL;
    if (self->broken)
        return HUB_EIO;
    return hub__sync(self);
}

uint64_t hub_audit_seq(const hub_audit_t *self)
{
    return self ? self->seq : 0;
}

const char *hub_audit_open_notice(const hub_audit_t *self)
{
    return self ? self->notice : NULL;
}

void hub_audit_durable_head(const hub_audit_t *self, hub_audit_head_t *out)
{
    memset(out, 0, sizeof *out);
    if (self)
        *out = self->cp_durable;
}

uint64_t hub_audit_gap(const hub_audit_t *self)
{
    return self ? self->gap : 0;
}

int hub_audit_seal(hub_audit_t *self)
{
    if (!self)
        return HUB_EINVAL;
    if (self->broken)
        return HUB_EIO;
    int rc = 0;
    if (self->seq > 0 && !self->head_is_checkpoint)
        rc = hub__checkpoint(self, hub_now_us());
    return rc == 0 ? hub__sync(self) : rc;
}

int hub_audit_rotate_key(hub_audit_t *self, const uint8_t new_secret[64],
                         const uint8_t new_public[32])
{
    if (!self || !new_secret || !new_public)
        return HUB_EINVAL;
    if (self->broken)
        return HUB_EIO;
    uint8_t derived[32];
    crypto_sign_ed25519_sk_to_pk(derived, new_secret);
    if (sodium_memcmp(derived, new_public, 32) != 0 ||
        sodium_memcmp(new_public, self->config.sign_public, 32) == 0)
        return HUB_EINVAL;
    uint8_t msg[HUB__ROT_MSG_LEN], proof[64];
    hub__rot_message(self->config.sign_public, new_public, msg);
    if (crypto_sign_detached(proof, NULL, msg, sizeof msg, new_secret) != 0)
        return HUB_ECRYPTO;
    char reason[sizeof HUB__ROT_REASON + 64];
    memcpy(reason, HUB__ROT_REASON, strlen(HUB__ROT_REASON));
    sodium_bin2hex(reason + strlen(HUB__ROT_REASON), 65, new_public, 32);
    hub_audit_record_t rec = {.event = HUB_AUDIT_KEY_ROTATED, .reason = reason,
                              .signature = proof, .signature_len = 64};
    /* The record, then a checkpoint by the old key that seals it. */
    int rc = hub__append_any(self, &rec);
    if (rc == 0 && !self->head_is_checkpoint)
        rc = hub__checkpoint(self, hub_now_us());
    if (rc == 0)
        rc = hub__sync(self);
    if (rc != 0)
        return rc;
    memcpy(self->config.sign_secret, new_secret, 64);
    memcpy(self->config.sign_public, new_public, 32);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, new_public, 32);
    HUB_INFO("audit", "audit signing key rotated", "seq=%" PRIu64 " new_key=%s", self->seq, hex);
    return 0;
}

int hub_audit_close(hub_audit_t **self_p)
{
    if (!self_p || !*self_p)
        return 0;
    hub_audit_t *self = *self_p;
    int rc = 0;
    if (self->broken)
        rc = HUB_EIO;
    else if (self->dir_fd >= 0) {
        if (self->seq > 0 && !self->head_is_checkpoint)
            rc = hub__checkpoint(self, hub_now_us());
        int flushed = hub__sync(self);
        if (rc == 0)
            rc = flushed;
    }
    if (self->fd >= 0)
        close(self->fd);
    if (self->retired_fd >= 0)
        close(self->retired_fd);
    if (self->dir_fd >= 0)
        close(self->dir_fd); /* releases the flock */
    sodium_memzero(&self->config, sizeof self->config);
    sodium_memzero(self->mac_key, sizeof self->mac_key);
    free(self->buf);
    free(self->notice);
    free(self->gap_notice);
    free(self->dir);
    free(self);
    *self_p = NULL;
    return rc;
}

/* ---- opening: find where the chain stands --------------------------------- */

typedef struct {
    uint64_t lines;          /* complete lines */
    size_t torn_bytes;       /* bytes after the last newline */
    uint64_t seq;            /* of the last complete line */
    uint8_t head[32];        /* its hash */
    bool head_is_checkpoint;
    bool has_checkpoint;     /* the file holds a checkpoint */
    uint64_t checkpoint_seq; /* the last one */
    uint64_t checkpoint_us;
    uint8_t checkpoint_hash[32];
    bool checkpoint_ours;       /* it verifies with the key open was given */
    bool checkpoint_rotates;    /* a KEY_ROTATED record right before it... */
    uint8_t rotated_to[32];     /* ...names this key */
    bool prev_rotates;          /* the line just read is a KEY_ROTATED record */
} hub__tail_t;

/* Reads a file's complete lines. With strict set, each must parse and link
 * to the one before it (the first line's own prev is taken on trust);
 * otherwise lines that do not parse are skipped (used only to find the last
 * checkpoint in older files). */
static int hub__scan_file(hub_audit_t *self, unsigned long number, bool strict, hub__tail_t *t,
                          hub__parsed_t *p, char *err, size_t err_size)
{
    char name[HUB_AUDIT_FILE_NAME_MAX];
    hub__file_name(number, name);
    char *buf = NULL;
    size_t len = 0;
    memset(t, 0, sizeof *t);
    int rc = hub__read_all(self->dir, name, &buf, &len);
    if (rc != 0) {
        snprintf(err, err_size, "cannot read audit file %s/%s: %s", self->dir, name,
                 hub_strerror(rc));
        return rc;
    }
    char *scratch = malloc(HUB_AUDIT_LINE_MAX);
    if (!scratch) {
        free(buf);
        return HUB_ENOMEM;
    }
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl) {
            t->torn_bytes = len - pos;
            break;
        }
        size_t n = (size_t)(nl - (buf + pos)) + 1;
        const char *line = buf + pos;
        pos += n;
        if (hub__parse(line, n, p, scratch) != 0) {
            if (!strict)
                continue;
            snprintf(err, err_size,
                     "audit file %s/%s line %" PRIu64 " is not a well-formed record: the log is "
                     "damaged; run `hubctl audit verify %s`, and move the directory aside to "
                     "start a new log",
                     self->dir, name, t->lines + 1, self->dir);
            rc = HUB_EPARSE;
            break;
        }
        if (strict && t->lines > 0 &&
            (p->rec.seq != t->seq + 1 || memcmp(p->rec.prev_hash, t->head, 32) != 0)) {
            snprintf(err, err_size,
                     "audit file %s/%s line %" PRIu64 " (seq %" PRIu64 ") does not follow the "
                     "line before it: the log is damaged; run `hubctl audit verify %s`, and move "
                     "the directory aside to start a new log",
                     self->dir, name, t->lines + 1, p->rec.seq, self->dir);
            rc = HUB_EPARSE;
            break;
        }
        t->lines++;
        t->seq = p->rec.seq;
        hub__sha256(line, n, t->head);
        t->head_is_checkpoint = p->rec.event == HUB_AUDIT_CHECKPOINT;
        if (t->head_is_checkpoint) {
            t->has_checkpoint = true;
            t->checkpoint_seq = p->rec.seq;
            t->checkpoint_us = p->rec.time_us;
            memcpy(t->checkpoint_hash, t->head, 32);
            uint8_t msg[HUB__CP_MSG_LEN];
            hub__cp_message(p->rec.seq, p->rec.time_us, p->cp.count, p->rec.prev_hash,
                            p->cp.prev_checkpoint, msg);
            t->checkpoint_ours = crypto_sign_verify_detached(p->cp.signature, msg, sizeof msg,
                                                             self->config.sign_public) == 0;
            t->checkpoint_rotates = t->prev_rotates;
            if (!t->prev_rotates)
                memset(t->rotated_to, 0, 32);
        }
        t->prev_rotates = p->rec.event == HUB_AUDIT_KEY_ROTATED && hub__rot_key(p->rec.reason, t->rotated_to);
    }
    free(scratch);
    free(buf);
    return rc;
}

static int hub__file_size(hub_audit_t *self, unsigned long number, uint64_t *size)
{
    char name[HUB_AUDIT_FILE_NAME_MAX];
    hub__file_name(number, name);
    struct stat st;
    if (fstatat(self->dir_fd, name, &st, 0) != 0)
        return hub_errno_code(errno);
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Compares the log's last checkpoint (seq 0: none) with the store's
 * anchor. Behind it: refused, or with accept_gap noted in self->gap. */
static int hub__check_anchor(hub_audit_t *self, uint64_t cp_seq, const uint8_t cp_hash[32],
                             unsigned long file, char *err, size_t err_size)
{
    const hub_audit_config_t *c = &self->config;
    if (c->anchor_seq == 0 || cp_seq > c->anchor_seq ||
        (cp_seq == c->anchor_seq && memcmp(cp_hash, c->anchor_hash, 32) == 0))
        return 0;
    char anchor_hex[65], where[160];
    sodium_bin2hex(anchor_hex, sizeof anchor_hex, c->anchor_hash, 32);
    if (cp_seq == 0)
        snprintf(where, sizeof where, "holds no checkpoint at all (files deleted?)");
    else if (cp_seq == c->anchor_seq)
        snprintf(where, sizeof where,
                 "has another checkpoint at seq %" PRIu64 " (audit-%06lu.log): it was replaced",
                 cp_seq, file);
    else
        snprintf(where, sizeof where,
                 "ends at the checkpoint at seq %" PRIu64 " (audit-%06lu.log): records %" PRIu64
                 " to %" PRIu64 " are missing",
                 cp_seq, file, cp_seq + 1, c->anchor_seq);
    if (!c->accept_gap) {
        snprintf(err, err_size,
                 "audit log cut back: the store recorded the checkpoint at seq %" PRIu64
                 " (%.16s...) on an earlier run, but the audit log in %s %s. Restore the "
                 "missing audit files from a backup, or start with audit_accept_gap = yes "
                 "(the gap is recorded, alarm audit_log_cut)",
                 c->anchor_seq, anchor_hex, self->dir, where);
        return HUB_EPARSE;
    }
    self->gap = c->anchor_seq > cp_seq ? c->anchor_seq - cp_seq : 1;
    char *before = self->gap_notice; /* a key change noted already */
    self->gap_notice = malloc(1536);
    if (self->gap_notice)
        snprintf(self->gap_notice, 1536,
                 "%s%saudit log cut back, accepted by the operator (audit_accept_gap): the store "
                 "recorded the checkpoint at seq %" PRIu64 " (hash %s), but the log %s",
                 before ? before : "", before ? "; " : "", c->anchor_seq, anchor_hex, where);
    free(before);
    return 0;
}

/* Writes the RECOVERED record naming an accepted gap, and syncs. */
static int hub__note_gap(hub_audit_t *self, char *err, size_t err_size)
{
    HUB_ERROR("audit", "audit log: going on by operator override (audit_accept_gap or "
                       "audit_accept_key_change); a RECOVERED record says what was found",
              "detail=\"%s\"", self->gap_notice ? self->gap_notice : "");
    hub_audit_record_t rec = {.event = HUB_AUDIT_RECOVERED,
                              .reason = self->gap_notice ? self->gap_notice : "audit log cut back"};
    int rc = hub__append_any(self, &rec);
    if (rc == 0)
        rc = hub__sync(self);
    if (rc != 0)
        snprintf(err, err_size, "cannot write to the audit log in %s: %s", self->dir,
                 hub_strerror(rc));
    return rc;
}

/* Sets the chain state from the files on disk and writes a RECOVERED
 * record when the previous run did not close the log. */
static int hub__resume(hub_audit_t *self, char *err, size_t err_size)
{
    hub_numfiles_t files;
    int rc = hub__list_files(self->dir, &files);
    if (rc != 0) {
        snprintf(err, err_size, "cannot list the audit directory %s: %s", self->dir,
                 hub_strerror(rc));
        return rc;
    }
    hub__parsed_t *p = malloc(sizeof *p);
    if (!p) {
        free(files.numbers);
        return HUB_ENOMEM;
    }
    /* The last file holding any bytes decides where the log continues. */
    size_t last = files.count;
    uint64_t last_size = 0;
    for (size_t i = files.count; i-- > 0;) {
        uint64_t size = 0;
        rc = hub__file_size(self, files.numbers[i], &size);
        if (rc != 0) {
            snprintf(err, err_size, "cannot stat audit-%06lu.log in %s: %s", files.numbers[i],
                     self->dir, hub_strerror(rc));
            goto out;
        }
        if (size > 0) {
            last = i;
            last_size = size;
            break;
        }
    }
    self->last_checkpoint_us = hub_now_us();
    if (last == files.count) { /* a new log */
        self->file_number = 1;
        uint8_t none[32] = {0};
        rc = hub__check_anchor(self, 0, none, 0, err, err_size);
        if (rc == 0 && (self->gap || self->gap_notice))
            rc = hub__note_gap(self, err, err_size);
        goto out;
    }

    hub__tail_t tail;
    rc = hub__scan_file(self, files.numbers[last], true, &tail, p, err, err_size);
    if (rc != 0)
        goto out;
    size_t torn_bytes = tail.torn_bytes;
    unsigned long torn_number = files.numbers[last];
    /* The head: the last complete line, maybe in an earlier file when the
     * last one holds only a cut line. */
    size_t head_index = last;
    while (tail.lines == 0 && head_index > 0) {
        head_index--;
        rc = hub__scan_file(self, files.numbers[head_index], true, &tail, p, err, err_size);
        if (rc != 0)
            goto out;
    }
    self->seq = tail.seq;
    memcpy(self->head, tail.head, 32);
    self->head_is_checkpoint = tail.head_is_checkpoint;
    /* The last checkpoint, maybe in an earlier file still. */
    hub__tail_t older = tail;
    size_t cp_index = head_index;
    while (!older.has_checkpoint && cp_index > 0) {
        cp_index--;
        rc = hub__scan_file(self, files.numbers[cp_index], false, &older, p, err, err_size);
        if (rc != 0)
            goto out;
    }
    if (older.has_checkpoint) {
        memcpy(self->last_checkpoint, older.checkpoint_hash, 32);
        self->records_since_checkpoint = self->seq - older.checkpoint_seq;
        self->last_checkpoint_us = older.checkpoint_us;
        self->cp_written.seq = older.checkpoint_seq;
        self->cp_written.time_us = older.checkpoint_us;
        memcpy(self->cp_written.hash, older.checkpoint_hash, 32);
        self->cp_durable = self->cp_written;
    } else {
        self->records_since_checkpoint = self->seq;
    }
    /* The key: the last checkpoint is ours, or the hub's key was rotated
     * to ours by the record just before it. */
    bool key_changed = older.has_checkpoint && !older.checkpoint_ours &&
                       !(older.checkpoint_rotates &&
                         sodium_memcmp(older.rotated_to, self->config.sign_public, 32) == 0);
    if (key_changed && self->config.accept_key_change) {
        HUB_ERROR("audit",
                  "audit signing key changed without a rotation record; going on by operator "
                  "override (audit_accept_key_change): verification will name this point",
                  "dir=%s seq=%" PRIu64, self->dir, self->seq);
        free(self->gap_notice);
        self->gap_notice = malloc(768);
        if (self->gap_notice)
            snprintf(self->gap_notice, 768,
                     "the hub's signing key changed after seq %" PRIu64 " without a KEY_ROTATED "
                     "record (the previous key was not available); operator override "
                     "audit_accept_key_change",
                     self->seq);
        key_changed = false;
    }
    if (key_changed) {
        char key_hex[65];
        sodium_bin2hex(key_hex, sizeof key_hex, self->config.sign_public, 32);
        snprintf(err, err_size,
                 "key change without a rotation record: the audit log's last checkpoint (seq "
                 "%" PRIu64 " in %s/audit-%06lu.log) is not signed by this hub's signing key "
                 "(%.16s...), and no KEY_ROTATED record hands the log over to it. Stop hubd "
                 "and run `hubctl audit rotate-key %s --old-key OLD.secret --new-key NEW.secret` "
                 "with the previous key, or put the previous key_file back",
                 older.checkpoint_seq, self->dir, files.numbers[cp_index], key_hex, self->dir);
        rc = HUB_ECRYPTO;
        goto out;
    }
    rc = hub__check_anchor(self, older.has_checkpoint ? older.checkpoint_seq : 0,
                           older.checkpoint_hash,
                           files.numbers[older.has_checkpoint ? cp_index : head_index], err,
                           err_size);
    if (rc != 0)
        goto out;

    char reason[HUB_AUDIT_REASON_MAX] = "";
    char torn_name[HUB_AUDIT_FILE_NAME_MAX];
    hub__file_name(torn_number, torn_name);
    size_t notice_size = 512;
    if (torn_bytes > 0) {
        /* Never append after a cut line: continue in a new file. */
        self->file_number = torn_number + 1;
        hub__torn_reason(reason, sizeof reason, torn_name, torn_bytes, self->seq);
        self->notice = malloc(notice_size);
        if (self->notice)
            snprintf(self->notice, notice_size,
                     "%s/%s ends with %zu bytes of an incomplete record (the hub crashed during "
                     "a write); they are left in place and the log continues in "
                     "audit-%06lu.log after a RECOVERED record",
                     self->dir, torn_name, torn_bytes, self->file_number);
    } else {
        self->file_number = files.numbers[last];
        if (last_size >= self->config.max_file_bytes) {
            self->file_number++;
        } else {
            self->fd = openat(self->dir_fd, torn_name, O_WRONLY | O_APPEND | O_CLOEXEC);
            if (self->fd < 0) {
                rc = hub_errno_code(errno);
                snprintf(err, err_size, "cannot open %s/%s for appending: %s", self->dir,
                         torn_name, strerror(errno));
                goto out;
            }
            self->file_bytes = last_size;
        }
        if (self->seq > 0 && !self->head_is_checkpoint) {
            snprintf(reason, sizeof reason,
                     "the previous run ended without a closing checkpoint (a crash or a kill); "
                     "the %" PRIu64 " records after the last checkpoint are sealed by the next "
                     "checkpoint",
                     self->records_since_checkpoint);
            self->notice = malloc(notice_size);
            if (self->notice)
                snprintf(self->notice, notice_size,
                         "the audit log in %s ends with %" PRIu64 " records after its last "
                         "checkpoint (the hub crashed or was killed); a RECOVERED record notes "
                         "it and the next checkpoint seals them",
                         self->dir, self->records_since_checkpoint);
        }
    }
    if (self->notice) {
        HUB_WARN("audit", "audit log recovered after an unclean stop", "detail=\"%s\"",
                 self->notice);
        hub_audit_record_t rec = {.event = HUB_AUDIT_RECOVERED, .reason = reason};
        rc = hub__append_any(self, &rec);
        if (rc == 0)
            rc = hub__sync(self);
        if (rc != 0)
            snprintf(err, err_size, "cannot write to the audit log in %s: %s", self->dir,
                     hub_strerror(rc));
    }
    if (rc == 0 && (self->gap || self->gap_notice))
        rc = hub__note_gap(self, err, err_size);
out:
    free(p);
    free(files.numbers);
    return rc;
}

int hub_audit_open(const char *dir, const hub_audit_config_t *config, hub_audit_t **out,
                   char *err, size_t err_size)
{
    char dummy[1];
    if (!err || !err_size) {
        err = dummy;
        err_size = sizeof dummy;
    }
    err[0] = '\0';
    if (!out)
        return HUB_EINVAL;
    *out = NULL;
    if (!dir || !dir[0] || !config) {
        snprintf(err, err_size, "hub_audit_open needs a directory and a configuration");
        return HUB_EINVAL;
    }
    if (sodium_init() < 0) {
        snprintf(err, err_size, "libsodium could not be initialised");
        return HUB_ECRYPTO;
    }
    uint8_t derived[32];
    crypto_sign_ed25519_sk_to_pk(derived, config->sign_secret);
    if (sodium_memcmp(derived, config->sign_public, 32) != 0) {
        snprintf(err, err_size,
                 "the audit signing key's public half does not match its secret half: check the "
                 "hub's key file");
        return HUB_EINVAL;
    }
    hub_audit_t *self = calloc(1, sizeof *self);
    if (!self)
        return HUB_ENOMEM;
    self->fd = -1;
    self->retired_fd = -1;
    self->dir_fd = -1;
    self->config = *config;
    hub__mac_key(self->config.sign_secret, self->mac_key);
    if (!self->config.max_file_bytes)
        self->config.max_file_bytes = HUB__DEFAULT_MAX_FILE_BYTES;
    if (!self->config.checkpoint_every_records)
        self->config.checkpoint_every_records = HUB__DEFAULT_CP_RECORDS;
    if (!self->config.checkpoint_every_us)
        self->config.checkpoint_every_us = HUB__DEFAULT_CP_US;
    self->dir = strdup(dir);
    self->buf = malloc(HUB__WRITE_BUF);
    int rc = 0;
    if (!self->dir || !self->buf) {
        rc = HUB_ENOMEM;
        goto fail;
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        rc = hub_errno_code(errno);
        snprintf(err, err_size, "cannot create the audit directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    self->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        rc = hub_errno_code(errno);
        snprintf(err, err_size, "cannot open the audit directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (flock(self->dir_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? HUB_EAGAIN : hub_errno_code(errno);
        snprintf(err, err_size,
                 "the audit log in %s is open in another process (another hubd?): only one "
                 "writer may append to it",
                 dir);
        goto fail;
    }
    rc = hub__resume(self, err, err_size);
    if (rc != 0)
        goto fail;
    *out = self;
    return 0;
fail:
    /* Nothing of ours is on disk that close would need to seal. */
    self->broken = true;
    hub_audit_close(&self);
    return rc;
}

/* ---- the verifier ----------------------------------------------------------- */

typedef struct {
    uint64_t seq;
    uint8_t hash[32];
} hub__cp_seen_t;

typedef struct {
    uint8_t key[32];             /* the hub key in force */
    uint8_t next_key[32];        /* named by a KEY_ROTATED record... */
    uint64_t rotation_seq;       /* ...at this seq (0: none pending) */
    uint64_t key_since;          /* seq from which key is in force (0: the start) */
    bool early_failed;           /* early_keys_unknown: a checkpoint did not verify... */
    hub_audit_verify_report_t early; /* ...and this says where (unless a rotation follows) */
    bool stopped;                /* stop_after_seq reached */
    const hub_audit_verify_opts_t *opts;
    const char *dir;
    hub__cp_seen_t *cps;         /* every checkpoint so far, ascending seq */
    size_t n_cps, cap_cps;
    hub_audit_verify_report_t *report;
    uint64_t seq;                /* of the last verified line; 0 before the first */
    uint8_t head[32];            /* its hash */
    uint8_t head_prev[32];       /* its prev field */
    bool head_is_checkpoint;
    char head_file[HUB_AUDIT_FILE_NAME_MAX];
    uint64_t head_line;
    uint8_t last_checkpoint[32];
    uint64_t last_checkpoint_seq;
    bool torn_pending;           /* the previous file ends with a cut line */
    char torn_file[HUB_AUDIT_FILE_NAME_MAX];
    uint64_t torn_line;
    size_t torn_bytes;
    hub__parsed_t cur;
    hub__parsed_t peek;
    char scratch[HUB_AUDIT_LINE_MAX];
} hub__verifier_t;

__attribute__((format(printf, 6, 7))) static int
hub__vfail(hub__verifier_t *v, int code, const char *file, uint64_t line, uint64_t seq,
           const char *fmt, ...)
{
    hub_audit_verify_report_t *r = v->report;
    snprintf(r->file, sizeof r->file, "%s", file ? file : "");
    r->line = line;
    r->seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    return code;
}

static int hub__verify_torn(hub__verifier_t *v)
{
    return hub__vfail(v, HUB_EPARSE, v->torn_file, v->torn_line, v->seq + 1,
                      "truncated file: %s ends at line %" PRIu64 " with %zu bytes of an "
                      "incomplete record (no newline), and no RECOVERED record acknowledges it: "
                      "the file was cut in the middle of a record (or the hub crashed while "
                      "writing it and has not restarted since)",
                      v->torn_file, v->torn_line, v->torn_bytes);
}

/* A KEY_ROTATED record (v->cur): well-formed, proved by the new key. */
static int hub__verify_rotation(hub__verifier_t *v, const char *file, uint64_t lineno)
{
    const hub_audit_record_t *r = &v->cur.rec;
    uint8_t next[32], msg[HUB__ROT_MSG_LEN];
    if (!hub__rot_key(r->reason, next) || r->signature_len != 64)
        return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                          "modified record: the KEY_ROTATED record at seq %" PRIu64 " (%s line "
                          "%" PRIu64 ") does not name a new key with its proof",
                          r->seq, file, lineno);
    hub__rot_message(v->key, next, msg);
    if (!v->early_failed && crypto_sign_verify_detached(r->signature, msg, sizeof msg, next) != 0)
        return hub__vfail(v, HUB_ECRYPTO, file, lineno, r->seq,
                          "forged key rotation: the KEY_ROTATED record at seq %" PRIu64 " (%s "
                          "line %" PRIu64 ") is not signed by the new key it names, over the key "
                          "in force before it",
                          r->seq, file, lineno);
    memcpy(v->next_key, next, 32);
    v->rotation_seq = r->seq;
    return 0;
}

/* A TIMESTAMPED record (v->cur): the token file it names is there,
 * unaltered, for a checkpoint of the log, and (with tsa_cert) signed by the
 * TSA over that checkpoint's hash. */
static int hub__verify_timestamped(hub__verifier_t *v, const char *file, uint64_t lineno)
{
    const hub_audit_record_t *r = &v->cur.rec;
    uint64_t cp_seq = 0;
    char hex[65] = "";
    uint8_t want[32];
    char again[HUB_AUDIT_REASON_MAX];
    size_t bin_len = 0;
    if (sscanf(r->reason, "checkpoint %" SCNu64 " time-stamped: token %*s sha256 %64s", &cp_seq,
               hex) != 2 ||
        sodium_hex2bin(want, 32, hex, 64, NULL, &bin_len, NULL) != 0 || bin_len != 32 ||
        (hub_audit_timestamped_reason(cp_seq, want, again, sizeof again),
         strcmp(again, r->reason) != 0))
        return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                          "modified record: the TIMESTAMPED record at seq %" PRIu64 " (%s line "
                          "%" PRIu64 ") does not name a checkpoint and its token",
                          r->seq, file, lineno);
    const hub__cp_seen_t *cp = NULL;
    size_t lo = 0, hi = v->n_cps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->cps[mid].seq < cp_seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < v->n_cps && v->cps[lo].seq == cp_seq)
        cp = &v->cps[lo];
    if (!cp)
        return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                          "modified record: the TIMESTAMPED record at seq %" PRIu64 " (%s line "
                          "%" PRIu64 ") names seq %" PRIu64 ", which is no checkpoint before it",
                          r->seq, file, lineno, cp_seq);
    char name[HUB_AUDIT_TSR_NAME_MAX];
    hub_audit_tsr_name(cp_seq, name);
    char *token = NULL;
    size_t len = 0;
    int rc = hub__read_all(v->dir, name, &token, &len);
    if (rc != 0)
        return hub__vfail(v, HUB_EPARSE, name, 0, cp_seq,
                          "missing time-stamp token: %s/%s, the token of the checkpoint at seq "
                          "%" PRIu64 " that the TIMESTAMPED record at seq %" PRIu64 " (%s line "
                          "%" PRIu64 ") names, cannot be read (%s): it was removed",
                          v->dir, name, cp_seq, r->seq, file, lineno, hub_strerror(rc));
    uint8_t got[32];
    hub__sha256(token, len, got);
    if (memcmp(got, want, 32) != 0) {
        free(token);
        return hub__vfail(v, HUB_ECRYPTO, name, 0, cp_seq,
                          "forged time-stamp token: %s/%s is not the token the TIMESTAMPED "
                          "record at seq %" PRIu64 " (%s line %" PRIu64 ") names (its SHA-256 "
                          "differs): it was altered or replaced",
                          v->dir, name, r->seq, file, lineno);
    }
    if (v->opts->tsa_cert) {
        char why[320];
        rc = hub_tsa_verify((const uint8_t *)token, len, cp->hash, v->opts->tsa_cert, NULL, why,
                            sizeof why);
        if (rc != 0) {
            free(token);
            return hub__vfail(v, rc == HUB_ECRYPTO ? HUB_ECRYPTO : rc, name, 0, cp_seq,
                              "forged time-stamp token: %s/%s (checkpoint at seq %" PRIu64
                              ") does not verify with the TSA certificate %s: %s",
                              v->dir, name, cp_seq, v->opts->tsa_cert, why);
        }
    }
    free(token);
    v->report->timestamps++;
    if (!v->report->first_timestamped)
        v->report->first_timestamped = cp_seq;
    v->report->last_timestamped = cp_seq;
    return 0;
}

/* Checks one complete line; next/next_len is the following line of the same
 * file when there is one (NULL otherwise), used to tell what happened. */
static int hub__verify_line(hub__verifier_t *v, const char *file, uint64_t lineno,
                            const char *line, size_t len, const char *next, size_t next_len)
{
    uint64_t expect = v->seq + 1;
    if (hub__parse(line, len, &v->cur, v->scratch) != 0)
        return hub__vfail(v, HUB_EPARSE, file, lineno, expect,
                          "modified record: %s line %" PRIu64 " is not a well-formed audit "
                          "record (seq %" PRIu64 " was expected there): it was modified, damaged "
                          "or inserted",
                          file, lineno, expect);
    const hub_audit_record_t *r = &v->cur.rec;
    if (v->torn_pending) {
        char reason[HUB_AUDIT_REASON_MAX];
        hub__torn_reason(reason, sizeof reason, v->torn_file, v->torn_bytes, v->seq);
        if (r->event != HUB_AUDIT_RECOVERED || strcmp(r->reason, reason) != 0)
            return hub__verify_torn(v);
        v->torn_pending = false;
    }
    if (r->event == HUB_AUDIT_CHECKPOINT) {
        uint8_t msg[HUB__CP_MSG_LEN];
        hub__cp_message(r->seq, r->time_us, v->cur.cp.count, r->prev_hash,
                        v->cur.cp.prev_checkpoint, msg);
        bool sig_ok = crypto_sign_verify_detached(v->cur.cp.signature, msg, sizeof msg, v->key) == 0;
        if (!sig_ok && v->opts->early_keys_unknown && v->key_since == 0 &&
            (v->early_failed || !v->rotation_seq)) {
            /* Maybe an earlier key: decided when a rotation comes, or not. */
            if (!v->early_failed) {
                hub_audit_verify_report_t *saved = v->report;
                v->report = &v->early;
                hub__vfail(v, HUB_ECRYPTO, file, lineno, r->seq,
                           "forged checkpoint or key change without a rotation record: the "
                           "checkpoint at seq %" PRIu64 " (%s line %" PRIu64 ") does not verify "
                           "with the hub's key, and no KEY_ROTATED record after it hands the "
                           "log over to that key",
                           r->seq, file, lineno);
                v->report = saved;
                v->early_failed = true;
            }
            sig_ok = true;
        }
        if (!sig_ok) {
            char hex[65];
            sodium_bin2hex(hex, sizeof hex, v->key, 32);
            if (v->key_since == 0)
                return hub__vfail(v, HUB_ECRYPTO, file, lineno, r->seq,
                                  "forged checkpoint or key change without a rotation record: "
                                  "the checkpoint at seq %" PRIu64 " (%s line %" PRIu64 ") does "
                                  "not verify with the hub's key the log begins with "
                                  "(%.16s...), and no KEY_ROTATED record before it names "
                                  "another: it was altered, or signed with another key",
                                  r->seq, file, lineno, hex);
            return hub__vfail(v, HUB_ECRYPTO, file, lineno, r->seq,
                              "forged checkpoint or key change without a rotation record: the "
                              "checkpoint at seq %" PRIu64 " (%s line %" PRIu64 ") does not "
                              "verify with the key in force since the rotation at seq %" PRIu64
                              " (%.16s...): it was altered, or signed with a key no KEY_ROTATED "
                              "record names",
                              r->seq, file, lineno, v->key_since, hex);
        }
    }
    uint8_t hash[32];
    hub__sha256(line, len, hash);
    bool linked = memcmp(r->prev_hash, v->head, 32) == 0;
    if (!linked || r->seq != expect) {
        /* Something is wrong; the next line helps tell what. */
        bool have_next = next && hub__parse(next, next_len, &v->peek, v->scratch) == 0;
        if (linked) /* in the chain, but numbered wrongly */
            return hub__vfail(v, HUB_EPARSE, file, lineno, expect,
                              "modified record: %s line %" PRIu64 " has seq %" PRIu64 " where "
                              "%" PRIu64 " was expected, yet it links to the record before it: "
                              "it was modified or inserted",
                              file, lineno, r->seq, expect);
        if (r->seq == expect) {
            bool next_links_here = have_next && memcmp(v->peek.rec.prev_hash, hash, 32) == 0;
            if (v->seq == 0)
                return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                                  "modified record: the first record (%s line %" PRIu64 ") does "
                                  "not start from the genesis hash: it was modified or replaced",
                                  file, lineno);
            if (have_next && !next_links_here)
                return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                                  "modified record: the record at seq %" PRIu64 " (%s line "
                                  "%" PRIu64 ") was modified: neither it nor the next record "
                                  "links to what comes before",
                                  r->seq, file, lineno);
            return hub__vfail(v, HUB_EPARSE, v->head_file, v->head_line, v->seq,
                              "modified record: the record at seq %" PRIu64 " (%s line %" PRIu64
                              ") was modified: its hash no longer matches the prev hash that "
                              "seq %" PRIu64 " (%s line %" PRIu64 ") holds",
                              v->seq, v->head_file, v->head_line, r->seq, file, lineno);
        }
        if (r->seq > expect) {
            if (have_next && v->peek.rec.seq == expect)
                return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                                  "reordered records: seq %" PRIu64 " (%s line %" PRIu64 ") "
                                  "comes before seq %" PRIu64 " (line %" PRIu64 ")",
                                  r->seq, file, lineno, expect, lineno + 1);
            if (r->seq - expect == 1)
                return hub__vfail(v, HUB_EPARSE, file, lineno, expect,
                                  "removed record: seq %" PRIu64 " is missing before %s line "
                                  "%" PRIu64 " (seq gap: seq %" PRIu64 " follows seq %" PRIu64
                                  ")",
                                  expect, file, lineno, r->seq, v->seq);
            return hub__vfail(v, HUB_EPARSE, file, lineno, expect,
                              "removed records: seq %" PRIu64 " to %" PRIu64 " are missing "
                              "before %s line %" PRIu64 " (seq gap: seq %" PRIu64 " follows "
                              "seq %" PRIu64 ")",
                              expect, r->seq - 1, file, lineno, r->seq, v->seq);
        }
        /* r->seq < expect */
        if (memcmp(hash, v->head, 32) == 0)
            return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                              "inserted record: %s line %" PRIu64 " repeats the record before "
                              "it (seq %" PRIu64 ")",
                              file, lineno, r->seq);
        if (r->seq == v->seq && memcmp(r->prev_hash, v->head_prev, 32) == 0)
            return hub__vfail(v, HUB_EPARSE, v->head_file, v->head_line, v->seq,
                              "inserted record: %s line %" PRIu64 " (seq %" PRIu64 ") is not "
                              "part of the chain: the next record has the same seq and links "
                              "to the record before it",
                              v->head_file, v->head_line, v->seq);
        return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                          "reordered or inserted records: seq %" PRIu64 " (%s line %" PRIu64
                          ") comes after seq %" PRIu64,
                          r->seq, file, lineno, v->seq);
    }
    if (r->event == HUB_AUDIT_CHECKPOINT) {
        if (v->cur.cp.count != r->seq - 1)
            return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                              "inconsistent checkpoint: the checkpoint at seq %" PRIu64 " counts "
                              "%" PRIu64 " records before it",
                              r->seq, v->cur.cp.count);
        if (memcmp(v->cur.cp.prev_checkpoint, v->last_checkpoint, 32) != 0)
            return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                              "broken checkpoint chain: the checkpoint at seq %" PRIu64 " (%s "
                              "line %" PRIu64 ") does not name the previous checkpoint: one was "
                              "removed or replaced",
                              r->seq, file, lineno);
        memcpy(v->last_checkpoint, hash, 32);
        v->last_checkpoint_seq = r->seq;
        v->report->checkpoints++;
        if (v->n_cps == v->cap_cps) {
            size_t cap = v->cap_cps ? v->cap_cps * 2 : 64;
            hub__cp_seen_t *grown = realloc(v->cps, cap * sizeof *grown);
            if (!grown)
                return hub__vfail(v, HUB_ENOMEM, file, lineno, r->seq, "out of memory");
            v->cps = grown;
            v->cap_cps = cap;
        }
        v->cps[v->n_cps].seq = r->seq;
        memcpy(v->cps[v->n_cps++].hash, hash, 32);
        if (v->rotation_seq) { /* this checkpoint, by the old key, seals the rotation */
            v->early_failed = false;
            memcpy(v->key, v->next_key, 32);
            v->key_since = v->rotation_seq;
            v->rotation_seq = 0;
            v->report->key_rotations++;
        }
    }
    if (r->event == HUB_AUDIT_KEY_ROTATED) {
        int krc = hub__verify_rotation(v, file, lineno);
        if (krc != 0)
            return krc;
    }
    if (r->event == HUB_AUDIT_TIMESTAMPED) {
        int trc = hub__verify_timestamped(v, file, lineno);
        if (trc != 0)
            return trc;
    }
    if (v->opts->anchor_seq && r->seq == v->opts->anchor_seq &&
        memcmp(hash, v->opts->anchor_hash, 32) != 0)
        return hub__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                          "anchor mismatch: the record at seq %" PRIu64 " (%s line %" PRIu64
                          ") is not the one the anchor names (its hash differs): the log was "
                          "rewritten from there on, or the anchor belongs to another log",
                          r->seq, file, lineno);
    if (r->event == HUB_AUDIT_RECOVERED)
        v->report->recoveries++;
    v->seq = r->seq;
    memcpy(v->head, hash, 32);
    memcpy(v->head_prev, r->prev_hash, 32);
    v->head_is_checkpoint = r->event == HUB_AUDIT_CHECKPOINT;
    snprintf(v->head_file, sizeof v->head_file, "%s", file);
    v->head_line = lineno;
    v->report->records++;
    v->report->last_seq = r->seq;
    return 0;
}

static int hub__verify_file(hub__verifier_t *v, const char *file, const char *buf, size_t len)
{
    uint64_t lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        if (!nl) {
            /* A cut line; a RECOVERED record must come next. A file holding
             * nothing but a cut line replaces the previous pending one. */
            v->torn_pending = true;
            snprintf(v->torn_file, sizeof v->torn_file, "%s", file);
            v->torn_line = lineno + 1;
            v->torn_bytes = len - pos;
            return 0;
        }
        size_t n = (size_t)(nl - line) + 1;
        lineno++;
        const char *next = NULL;
        size_t next_len = 0;
        if (pos + n < len) {
            const char *nnl = memchr(nl + 1, '\n', len - pos - n);
            if (nnl) {
                next = nl + 1;
                next_len = (size_t)(nnl - next) + 1;
            }
        }
        int rc = hub__verify_line(v, file, lineno, line, n, next, next_len);
        if (rc != 0)
            return rc;
        pos += n;
        if (v->opts->stop_after_seq && v->seq >= v->opts->stop_after_seq) {
            v->stopped = true;
            return 0;
        }
    }
    return 0;
}

int hub_audit_verify_dir(const char *dir, const uint8_t hub_sign_public[32],
                         hub_audit_verify_report_t *report)
{
    hub_audit_verify_opts_t opts = {.hub_sign_public = hub_sign_public};
    return hub_audit_verify_dir_opts(dir, &opts, report);
}

int hub_audit_verify_dir_opts(const char *dir, const hub_audit_verify_opts_t *opts,
                              hub_audit_verify_report_t *report)
{
    if (!report)
        return HUB_EINVAL;
    memset(report, 0, sizeof *report);
    hub__verifier_t *v = NULL;
    if (!dir || !opts || !opts->hub_sign_public) {
        snprintf(report->message, sizeof report->message,
                 "verification needs a directory and the hub's public key");
        return HUB_EINVAL;
    }
    if (sodium_init() < 0) {
        snprintf(report->message, sizeof report->message, "libsodium could not be initialised");
        return HUB_ECRYPTO;
    }
    hub_numfiles_t files;
    int rc = hub__list_files(dir, &files);
    if (rc != 0) {
        snprintf(report->message, sizeof report->message, "cannot read the audit directory %s: %s",
                 dir, hub_strerror(rc));
        return rc;
    }
    if (files.count == 0) {
        snprintf(report->message, sizeof report->message,
                 "no audit files (audit-NNNNNN.log) in %s", dir);
        rc = HUB_ENOENT;
        goto out;
    }
    v = calloc(1, sizeof *v);
    if (!v) {
        rc = HUB_ENOMEM;
        goto out;
    }
    memcpy(v->key, opts->hub_sign_public, 32);
    v->opts = opts;
    v->dir = dir;
    v->report = report;
    for (size_t i = 0; i < files.count; i++) {
        unsigned long want = i ? files.numbers[i - 1] + 1 : 1;
        char name[HUB_AUDIT_FILE_NAME_MAX];
        hub__file_name(want, name);
        if (files.numbers[i] != want) {
            rc = hub__vfail(v, HUB_EPARSE, name, 0, v->seq + 1,
                            "removed file: %s is missing (the next file present is "
                            "audit-%06lu.log): %s",
                            name, files.numbers[i],
                            i ? "a whole file was removed" : "the beginning of the log was removed");
            goto out;
        }
        char *buf = NULL;
        size_t len = 0;
        rc = hub__read_all(dir, name, &buf, &len);
        if (rc != 0) {
            hub__vfail(v, rc, name, 0, 0, "cannot read %s/%s: %s", dir, name, hub_strerror(rc));
            goto out;
        }
        report->files++;
        rc = hub__verify_file(v, name, buf, len);
        free(buf);
        if (rc != 0)
            goto out;
        if (v->stopped)
            break;
    }
    if (!v->early_failed && opts->early_keys_unknown &&
        sodium_memcmp(v->key, opts->hub_sign_public, 32) != 0) {
        rc = hub__vfail(v, HUB_ECRYPTO, v->head_file, v->head_line, v->key_since,
                        "key change without a rotation record: from the rotation at seq %" PRIu64
                        " on, the log is signed by another key than the hub's, and no "
                        "KEY_ROTATED record hands it over to the hub's key",
                        v->key_since);
        goto out;
    }
    if (v->early_failed) {
        memcpy(report->file, v->early.file, sizeof report->file);
        report->line = v->early.line;
        report->seq = v->early.seq;
        memcpy(report->message, v->early.message, sizeof report->message);
        rc = HUB_ECRYPTO;
        goto out;
    }
    if (v->stopped) {
        memcpy(report->final_key, v->key, 32);
        snprintf(report->message, sizeof report->message,
                 "intact up to seq %" PRIu64 " (%" PRIu64 " records, %" PRIu64 " checkpoints)",
                 v->seq, report->records, report->checkpoints);
        rc = 0;
        goto out;
    }
    if (v->torn_pending) {
        rc = hub__verify_torn(v);
        goto out;
    }
    if (report->records == 0) {
        rc = hub__vfail(v, HUB_EAGAIN, "", 0, 0,
                        "the audit files in %s hold no records and no checkpoint", dir);
        goto out;
    }
    memcpy(report->final_key, v->key, 32);
    if (opts->anchor_seq > v->seq) {
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, opts->anchor_hash, 32);
        rc = hub__vfail(v, HUB_EPARSE, v->head_file, v->head_line, v->seq,
                        "log cut back: the log ends at seq %" PRIu64 " (%s line %" PRIu64 "), "
                        "before the anchored head at seq %" PRIu64 " (%.16s...): records %" PRIu64
                        " to %" PRIu64 " (at least) were removed",
                        v->seq, v->head_file, v->head_line, opts->anchor_seq, hex, v->seq + 1,
                        opts->anchor_seq);
        goto out;
    }
    if (!v->head_is_checkpoint) {
        report->unsealed_records = v->seq - v->last_checkpoint_seq;
        rc = hub__vfail(v, HUB_EAGAIN, v->head_file, v->head_line, v->seq,
                        "unsealed tail: the chain is intact up to seq %" PRIu64 ", but the last "
                        "%" PRIu64 " records (after the checkpoint at seq %" PRIu64 ") are not "
                        "sealed by a signed checkpoint: the hub is running, or it crashed and "
                        "has not restarted, or records after the last checkpoint were cut off "
                        "or appended",
                        v->seq, report->unsealed_records, v->last_checkpoint_seq);
        goto out;
    }
    snprintf(report->message, sizeof report->message,
             "intact: %" PRIu64 " records (%" PRIu64 " checkpoints) in %" PRIu64 " files, up to "
             "seq %" PRIu64 "; every link matches and every checkpoint is signed by the hub's key",
             report->records, report->checkpoints, report->files, v->seq);
    rc = 0;
out:
    if (v)
        free(v->cps);
    free(v);
    free(files.numbers);
    return rc;
}

/* ---- looking up a message ------------------------------------------------- */

static bool hub__contains(const char *hay, size_t hay_len, const char *needle, size_t needle_len)
{
    for (size_t i = 0; i + needle_len <= hay_len; i++) {
        const char *hit = memchr(hay + i, needle[0], hay_len - needle_len - i + 1);
        if (!hit)
            return false;
        i = (size_t)(hit - hay);
        if (memcmp(hit, needle, needle_len) == 0)
            return true;
    }
    return false;
}

/* Whether text needs no escaping in a line: then it appears verbatim. */
static bool hub__plain(const char *text)
{
    for (const char *s = text; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
            return false;
    return true;
}

int hub_audit_find(const char *dir, const hub_audit_filter_t *filter, hub_audit_found_cb found,
                   void *user)
{
    if (!dir || !filter || !found)
        return HUB_EINVAL;
    const char *message_id = filter->message_id && *filter->message_id ? filter->message_id : NULL;
    const char *service = filter->service && *filter->service ? filter->service : NULL;
    if (!message_id && !service)
        return HUB_EINVAL;
    hub_numfiles_t files;
    int rc = hub__list_files(dir, &files);
    if (rc != 0)
        return rc;
    hub__parsed_t *p = malloc(sizeof *p);
    char *scratch = malloc(HUB_AUDIT_LINE_MAX);
    if (!p || !scratch) {
        rc = HUB_ENOMEM;
        goto out;
    }
    /* Text made of plain characters appears verbatim in the line: a cheap
     * filter before parsing. */
    const char *needle = message_id ? message_id : service;
    bool plain = hub__plain(needle);
    size_t needle_len = strlen(needle);
    bool any = false, stop = false;
    for (size_t i = 0; i < files.count && !stop; i++) {
        char name[HUB_AUDIT_FILE_NAME_MAX];
        hub__file_name(files.numbers[i], name);
        char *buf = NULL;
        size_t len = 0;
        rc = hub__read_all(dir, name, &buf, &len);
        if (rc != 0)
            goto out;
        uint64_t lineno = 0;
        for (size_t pos = 0; pos < len && !stop;) {
            const char *line = buf + pos;
            const char *nl = memchr(line, '\n', len - pos);
            if (!nl)
                break;
            size_t n = (size_t)(nl - line) + 1;
            pos += n;
            lineno++;
            if (plain && !hub__contains(line, n, needle, needle_len))
                continue;
            if (hub__parse(line, n, p, scratch) != 0 || p->rec.event == HUB_AUDIT_CHECKPOINT ||
                (message_id && strcmp(p->rec.message_id, message_id) != 0) ||
                (service && strcmp(p->rec.service, service) != 0))
                continue;
            any = true;
            stop = found(&p->rec, name, lineno, user) != 0;
        }
        free(buf);
    }
    rc = any ? 0 : HUB_ENOTFOUND;
out:
    free(scratch);
    free(p);
    free(files.numbers);
    return rc;
}

int hub_audit_find_message(const char *dir, const char *message_id, hub_audit_found_cb found,
                           void *user)
{
    if (!message_id || !message_id[0])
        return HUB_EINVAL;
    hub_audit_filter_t f = {.message_id = message_id};
    return hub_audit_find(dir, &f, found, user);
}
