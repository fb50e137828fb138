/* hub_audit_record.c — one audit record as bytes: its canonical line (render
 * and parse, which must agree byte for byte), the messages checkpoints and
 * key rotations sign, and the log's file names. Pure functions, shared by
 * the writer (hub_audit.c) and the verifier (hub_audit_verify.c). */
#include "hub_audit_internal.h"
#include "hub_bytes.h"
#include "hub_error.h"
#include "hub_numfiles.h"
#include "hub_sha256.h"
#include "hub_utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char *const audit_record__event_names[] = {
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
    [HUB_AUDIT_NODE_OPENED] = "NODE_OPENED",
};
#define HUB__EVENT_COUNT (sizeof audit_record__event_names / sizeof audit_record__event_names[0])

const char *hub_audit_event_name(hub_audit_event_t event)
{
    if ((unsigned)event >= HUB__EVENT_COUNT || !audit_record__event_names[event])
        return "UNKNOWN";
    return audit_record__event_names[event];
}

/* ---- hashing ------------------------------------------------------------ */
void audit_record__mac_key(const uint8_t sign_secret[64], uint8_t key[32])
{
    static const char domain[] = "LTH-AUDIT-MAC-V1"; /* and its NUL */
    uint8_t material[sizeof domain + 32];
    memcpy(material, domain, sizeof domain);
    memcpy(material + sizeof domain, sign_secret, 32); /* the Ed25519 seed */
    hub_sha256(material, sizeof material, key);
    sodium_memzero(material, sizeof material);
}

void hub_audit_envelope_mac(const uint8_t sign_secret[64], const uint8_t digest[32],
                            uint8_t out[32])
{
    uint8_t key[crypto_auth_hmacsha256_KEYBYTES];
    audit_record__mac_key(sign_secret, key);
    crypto_auth_hmacsha256(out, digest, 32, key);
    sodium_memzero(key, sizeof key);
}

/* The bytes a checkpoint's hub_signature covers (see the header). */
void audit_record__cp_message(uint64_t seq, uint64_t ts, uint64_t count, const uint8_t head[32],
                              const uint8_t prev_cp[32], uint8_t out[HUB__AUDIT_CP_MSG_LEN])
{
    uint8_t *p = out;
    memcpy(p, HUB__AUDIT_CP_DOMAIN, sizeof HUB__AUDIT_CP_DOMAIN);
    p += sizeof HUB__AUDIT_CP_DOMAIN;
    hub_put_be64(p, seq);
    hub_put_be64(p + 8, ts);
    hub_put_be64(p + 16, count);
    p += 24;
    memcpy(p, head, 32);
    memcpy(p + 32, prev_cp, 32);
}

/* The bytes a KEY_ROTATED record's proof (sender_signature) covers. */
void audit_record__rot_message(const uint8_t old_pub[32], const uint8_t new_pub[32],
                               uint8_t out[HUB__AUDIT_ROT_MSG_LEN])
{
    memcpy(out, HUB__AUDIT_ROT_DOMAIN, sizeof HUB__AUDIT_ROT_DOMAIN);
    memcpy(out + sizeof HUB__AUDIT_ROT_DOMAIN, old_pub, 32);
    memcpy(out + sizeof HUB__AUDIT_ROT_DOMAIN + 32, new_pub, 32);
}

/* The new key a KEY_ROTATED record's reason names; false if malformed. */
bool audit_record__rot_key(const char *reason, uint8_t out[32])
{
    size_t n = strlen(HUB__AUDIT_ROT_REASON);
    if (strncmp(reason, HUB__AUDIT_ROT_REASON, n) != 0 || strlen(reason + n) != 64)
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
} audit_record__sb_t;

static void audit_record__sb_put(audit_record__sb_t *b, const void *s, size_t n)
{
    if (b->full || n > b->cap - b->len) {
        b->full = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void audit_record__sb_lit(audit_record__sb_t *b, const char *s)
{
    audit_record__sb_put(b, s, strlen(s));
}

/* A string literal: its length known at compile time (three records per
 * exchange are rendered on the full path, each with a dozen literals). */
#define AUDIT_RECORD__SB_LIT(b, lit) audit_record__sb_put((b), (lit), sizeof(lit) - 1)

static void audit_record__sb_u64(audit_record__sb_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    audit_record__sb_put(b, tmp + i, sizeof tmp - i);
}

static void audit_record__sb_hex(audit_record__sb_t *b, const uint8_t *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    if (b->full || n * 2 + 2 > b->cap - b->len) {
        b->full = true;
        return;
    }
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        *o++ = digits[bytes[i] >> 4];
        *o++ = digits[bytes[i] & 15];
    }
    *o++ = '"';
    b->len += n * 2 + 2;
}

/* The text as the log keeps it: ill-formed bytes become U+FFFD (3 bytes);
 * this is the length of that form, before JSON escaping. */
static size_t audit_record__clean_len(const uint8_t *s, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n;) {
        size_t k = hub_utf8_len(s + i, n - i);
        total += k ? k : 3;
        i += k ? k : 1;
    }
    return total;
}

/* A JSON string holding `text` cleaned, cut to `max` bytes, and escaped. */
static void audit_record__sb_json(audit_record__sb_t *b, const char *text, size_t max)
{
    const uint8_t *s = (const uint8_t *)(text ? text : "");
    /* Most fields (ids, services, outcomes) are printable ASCII with nothing
     * to escape: one copy, the same bytes as the loop below would give. The
     * scan for them finds the length too ('\0' is not printable). */
    size_t plain = 0;
    while (s[plain] >= 0x20 && s[plain] < 0x7f && s[plain] != '"' && s[plain] != '\\')
        plain++;
    size_t n = s[plain] ? plain + strlen((const char *)s + plain) : plain;
    if (plain == n && n <= max) {
        AUDIT_RECORD__SB_LIT(b, "\"");
        audit_record__sb_put(b, s, n);
        AUDIT_RECORD__SB_LIT(b, "\"");
        return;
    }
    size_t budget = SIZE_MAX;
    bool cut = audit_record__clean_len(s, n) > max;
    if (cut)
        budget = max - 3; /* room for "..." */
    AUDIT_RECORD__SB_LIT(b, "\"");
    size_t used = 0;
    for (size_t i = 0; i < n;) {
        size_t k = hub_utf8_len(s + i, n - i);
        size_t clean = k ? k : 3;
        if (used + clean > budget)
            break;
        used += clean;
        if (!k) {
            audit_record__sb_put(b, "\xef\xbf\xbd", 3);
            i++;
            continue;
        }
        uint8_t c = s[i];
        if (k == 1 && (c < 0x20 || c == 0x7f)) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            audit_record__sb_put(b, esc, 6);
        } else if (c == '"') {
            AUDIT_RECORD__SB_LIT(b, "\\\"");
        } else if (c == '\\') {
            AUDIT_RECORD__SB_LIT(b, "\\\\");
        } else {
            audit_record__sb_put(b, s + i, k);
        }
        i += k;
    }
    if (cut)
        AUDIT_RECORD__SB_LIT(b, "...");
    AUDIT_RECORD__SB_LIT(b, "\"");
}

/* A member whose value is text: key_lit (`,"name":`, a literal) and the
 * value quoted. */
#define AUDIT_RECORD__SB_FIELD(b, key_lit, text, max)                                              \
    do {                                                                                           \
        AUDIT_RECORD__SB_LIT((b), key_lit);                                                        \
        audit_record__sb_json((b), (text), (max));                                                 \
    } while (0)

/* Renders rec (with rec->seq, rec->time_us and rec->prev_hash as given) as
 * its line, newline included. cp is needed for a CHECKPOINT (and only
 * for one); HUB_EINVAL without it. */
int audit_record__render(const hub_audit_record_t *rec, const audit__cp_t *cp, char *out,
                         size_t cap, size_t *len_out)
{
    if (rec->event == HUB_AUDIT_CHECKPOINT && !cp)
        return HUB_EINVAL;
    audit_record__sb_t b = {.p = out, .cap = cap};
    AUDIT_RECORD__SB_LIT(&b, "{\"seq\":");
    audit_record__sb_u64(&b, rec->seq);
    AUDIT_RECORD__SB_LIT(&b, ",\"ts\":");
    audit_record__sb_u64(&b, rec->time_us);
    AUDIT_RECORD__SB_LIT(&b, ",\"event\":\"");
    audit_record__sb_lit(&b, hub_audit_event_name(rec->event));
    AUDIT_RECORD__SB_LIT(&b, "\"");
    if (rec->event == HUB_AUDIT_CHECKPOINT) {
        AUDIT_RECORD__SB_LIT(&b, ",\"count\":");
        audit_record__sb_u64(&b, cp->count);
        AUDIT_RECORD__SB_LIT(&b, ",\"prev_checkpoint\":");
        audit_record__sb_hex(&b, cp->prev_checkpoint, 32);
        AUDIT_RECORD__SB_LIT(&b, ",\"hub_signature\":");
        audit_record__sb_hex(&b, cp->signature, 64);
    } else {
        AUDIT_RECORD__SB_FIELD(&b, ",\"message_id\":", rec->message_id, HUB_AUDIT_ID_MAX);
        AUDIT_RECORD__SB_LIT(&b, ",\"hub_seq\":");
        audit_record__sb_u64(&b, rec->hub_seq);
        AUDIT_RECORD__SB_FIELD(&b, ",\"sender\":", rec->sender, HUB_AUDIT_ID_MAX);
        AUDIT_RECORD__SB_FIELD(&b, ",\"receiver\":", rec->receiver, HUB_AUDIT_ID_MAX);
        AUDIT_RECORD__SB_FIELD(&b, ",\"service\":", rec->service, HUB_AUDIT_ID_MAX);
        if (rec->legacy) {
            AUDIT_RECORD__SB_LIT(&b, ",\"payload_sha256\":");
        } else {
            AUDIT_RECORD__SB_FIELD(&b, ",\"purpose\":", rec->purpose, HUB_AUDIT_ID_MAX);
            AUDIT_RECORD__SB_FIELD(&b, ",\"dossier\":", rec->dossier, HUB_AUDIT_WORD_MAX);
            AUDIT_RECORD__SB_FIELD(&b, ",\"outcome\":", rec->outcome, HUB_AUDIT_WORD_MAX);
            AUDIT_RECORD__SB_LIT(&b, ",\"envelope_mac\":");
        }
        audit_record__sb_hex(&b, rec->digest, rec->has_digest ? 32 : 0);
        AUDIT_RECORD__SB_LIT(&b, ",\"sender_signature\":");
        audit_record__sb_hex(&b, rec->signature, rec->signature ? rec->signature_len : 0);
        AUDIT_RECORD__SB_FIELD(&b, ",\"reason\":", rec->reason, HUB_AUDIT_REASON_MAX);
    }
    AUDIT_RECORD__SB_LIT(&b, ",\"prev\":");
    audit_record__sb_hex(&b, rec->prev_hash, 32);
    AUDIT_RECORD__SB_LIT(&b, "}\n");
    if (b.full)
        return HUB_EINVAL;
    *len_out = b.len;
    return 0;
}

/* ---- parsing a line ------------------------------------------------------- */

typedef struct {
    const char *p;
    const char *end;
} audit_record__cur_t;

static bool audit_record__lit(audit_record__cur_t *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool audit_record__u64(audit_record__cur_t *c, uint64_t *out)
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

static int audit_record__hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* A quoted lower-case hex string of at most max bytes. */
static bool audit_record__hex(audit_record__cur_t *c, uint8_t *out, size_t max, size_t *n_out)
{
    if (!audit_record__lit(c, "\""))
        return false;
    size_t n = 0;
    while (c->p < c->end && *c->p != '"') {
        if (c->end - c->p < 2 || n == max)
            return false;
        int hi = audit_record__hexval(c->p[0]), lo = audit_record__hexval(c->p[1]);
        if (hi < 0 || lo < 0)
            return false;
        out[n++] = (uint8_t)(hi << 4 | lo);
        c->p += 2;
    }
    *n_out = n;
    return audit_record__lit(c, "\"");
}

static bool audit_record__hex_exact(audit_record__cur_t *c, uint8_t *out, size_t want)
{
    size_t n = 0;
    return audit_record__hex(c, out, want, &n) && n == want;
}

/* A quoted JSON string as the renderer writes it, into out (max bytes). */
static bool audit_record__str(audit_record__cur_t *c, char *out, size_t max)
{
    if (!audit_record__lit(c, "\""))
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
                int hi = audit_record__hexval(c->p[2]), lo = audit_record__hexval(c->p[3]);
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
    return audit_record__lit(c, "\"");
}

static bool audit_record__event(audit_record__cur_t *c, hub_audit_event_t *out)
{
    if (!audit_record__lit(c, "\""))
        return false;
    const char *start = c->p;
    while (c->p < c->end && *c->p != '"')
        c->p++;
    size_t n = (size_t)(c->p - start);
    for (size_t i = 1; i < HUB__EVENT_COUNT; i++) {
        if (audit_record__event_names[i] && strlen(audit_record__event_names[i]) == n &&
            memcmp(audit_record__event_names[i], start, n) == 0) {
            *out = (hub_audit_event_t)i;
            return audit_record__lit(c, "\"");
        }
    }
    return false;
}

/* Parses one line (len bytes, ending in '\n') and checks that it is
 * canonical: rendering the parsed record gives the same bytes. scratch holds
 * HUB_AUDIT_LINE_MAX bytes. Returns 0 or HUB_EPARSE. */
int audit_record__parse(const char *line, size_t len, audit__parsed_t *out, char *scratch)
{
    if (len < 2 || len > HUB_AUDIT_LINE_MAX || line[len - 1] != '\n')
        return HUB_EPARSE;
    memset(&out->rec, 0, sizeof out->rec);
    memset(&out->cp, 0, sizeof out->cp);
    hub_audit_record_t *r = &out->rec;
    audit_record__cur_t c = {line, line + len - 1};
    bool ok = audit_record__lit(&c, "{\"seq\":") && audit_record__u64(&c, &r->seq) &&
              audit_record__lit(&c, ",\"ts\":") && audit_record__u64(&c, &r->time_us) &&
              audit_record__lit(&c, ",\"event\":") && audit_record__event(&c, &r->event);
    if (!ok)
        return HUB_EPARSE;
    if (r->event == HUB_AUDIT_CHECKPOINT) {
        ok = audit_record__lit(&c, ",\"count\":") && audit_record__u64(&c, &out->cp.count) &&
             audit_record__lit(&c, ",\"prev_checkpoint\":") &&
             audit_record__hex_exact(&c, out->cp.prev_checkpoint, 32) &&
             audit_record__lit(&c, ",\"hub_signature\":") &&
             audit_record__hex_exact(&c, out->cp.signature, 64);
        r->message_id = r->sender = r->receiver = r->service = r->reason = "";
    } else {
        size_t n = 0;
        ok = audit_record__lit(&c, ",\"message_id\":") &&
             audit_record__str(&c, out->message_id, HUB_AUDIT_ID_MAX) &&
             audit_record__lit(&c, ",\"hub_seq\":") && audit_record__u64(&c, &r->hub_seq) &&
             audit_record__lit(&c, ",\"sender\":") &&
             audit_record__str(&c, out->sender, HUB_AUDIT_ID_MAX) &&
             audit_record__lit(&c, ",\"receiver\":") &&
             audit_record__str(&c, out->receiver, HUB_AUDIT_ID_MAX) &&
             audit_record__lit(&c, ",\"service\":") &&
             audit_record__str(&c, out->service, HUB_AUDIT_ID_MAX);
        out->purpose[0] = out->dossier[0] = out->outcome[0] = '\0';
        /* A line written before purpose … envelope_mac existed. */
        r->legacy = ok && audit_record__lit(&c, ",\"payload_sha256\":");
        if (ok && !r->legacy)
            ok = audit_record__lit(&c, ",\"purpose\":") &&
                 audit_record__str(&c, out->purpose, HUB_AUDIT_ID_MAX) &&
                 audit_record__lit(&c, ",\"dossier\":") &&
                 audit_record__str(&c, out->dossier, HUB_AUDIT_WORD_MAX) &&
                 audit_record__lit(&c, ",\"outcome\":") &&
                 audit_record__str(&c, out->outcome, HUB_AUDIT_WORD_MAX) &&
                 audit_record__lit(&c, ",\"envelope_mac\":");
        ok = ok && audit_record__hex(&c, r->digest, 32, &n) && (n == 0 || n == 32);
        r->has_digest = n == 32;
        ok = ok && audit_record__lit(&c, ",\"sender_signature\":") &&
             audit_record__hex(&c, out->signature, HUB_AUDIT_SIGNATURE_MAX, &r->signature_len) &&
             audit_record__lit(&c, ",\"reason\":") &&
             audit_record__str(&c, out->reason, HUB_AUDIT_REASON_MAX);
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
    ok = ok && audit_record__lit(&c, ",\"prev\":") &&
         audit_record__hex_exact(&c, r->prev_hash, 32) && audit_record__lit(&c, "}") &&
         c.p == c.end;
    if (!ok)
        return HUB_EPARSE;
    size_t again = 0;
    if (audit_record__render(r, &out->cp, scratch, HUB_AUDIT_LINE_MAX, &again) != 0 ||
        again != len || memcmp(scratch, line, len) != 0)
        return HUB_EPARSE;
    return 0;
}

/* ---- files ---------------------------------------------------------------- */

void audit_record__file_name(unsigned long number, char out[HUB_AUDIT_FILE_NAME_MAX])
{
    hub_numfiles_name("audit-", number, ".log", out, HUB_AUDIT_FILE_NAME_MAX);
}

/* The files of dir, in order (hub_numfiles.h). */
int audit_record__list_files(const char *dir, hub_numfiles_t *out)
{
    return hub_numfiles_list(dir, "audit-", ".log", out);
}

/* Reads a whole file into a malloc'ed buffer (never NULL on success). */
int audit_record__read_all(const char *dir, const char *name, char **buf_out, size_t *len_out)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return HUB_EINVAL;
    return hub_read_all_at(AT_FDCWD, path, buf_out, len_out);
}

/* The reason text of the RECOVERED record that acknowledges a cut line; the
 * verifier rebuilds it to check that the record names the right file. */
void audit_record__torn_reason(char *out, size_t size, const char *file, size_t torn_bytes,
                               uint64_t last_seq)
{
    snprintf(out, size,
             "%s ends with %zu bytes of an incomplete record, left by a crash during a write; "
             "they are kept as evidence and the chain continues from the last complete record "
             "(seq %" PRIu64 ")",
             file, torn_bytes, last_seq);
}

