/* hub_audit_verify.c — reading the audit log back: the verifier checks
 * every line's chain link, every checkpoint's signature, key rotations and
 * time-stamp tokens, and says where and why it fails; the finder looks up
 * the records of one message. Read-only: never writes to the log. */
#include "hub_audit_internal.h"
#include "hub_error.h"
#include "hub_numfiles.h"
#include "hub_sha256.h"
#include "hub_tsa.h"
#include "hub_vec.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the verifier ----------------------------------------------------------- */

typedef struct {
    uint64_t seq;
    uint8_t hash[32];
} audit_verify__cp_seen_t;

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
    audit_verify__cp_seen_t *cps; /* every checkpoint so far, ascending seq */
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
    audit__parsed_t cur;
    audit__parsed_t peek;
    char scratch[HUB_AUDIT_LINE_MAX];
} audit_verify__verifier_t;

__attribute__((format(printf, 6, 7))) static int audit_verify__vfail(audit_verify__verifier_t *v,
                                                                     int code, const char *file,
                                                                     uint64_t line, uint64_t seq,
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

/* audit_verify__vfail for the record being checked (v->cur), named by its
 * place: "<what> at seq N (<file> line L) <why>". */
static int audit_verify__fail_rec(audit_verify__verifier_t *v, int code, const char *file,
                                  uint64_t lineno, const char *what, const char *why)
{
    uint64_t seq = v->cur.rec.seq;
    return audit_verify__vfail(v, code, file, lineno, seq, "%s at seq %" PRIu64 " (%s line %" PRIu64 ") %s",
                               what, seq, file, lineno, why);
}

static int audit_verify__torn(audit_verify__verifier_t *v)
{
    return audit_verify__vfail(
        v, HUB_EPARSE, v->torn_file, v->torn_line, v->seq + 1,
        "truncated file: %s ends at line %" PRIu64 " with %zu bytes of an "
        "incomplete record (no newline), and no RECOVERED record acknowledges it: "
        "the file was cut in the middle of a record (or the hub crashed while "
        "writing it and has not restarted since)",
        v->torn_file, v->torn_line, v->torn_bytes);
}

/* A KEY_ROTATED record (v->cur): well-formed, proved by the new key, which
 * goes straight into next_key (a failure ends the verification). */
static int audit_verify__rotation(audit_verify__verifier_t *v, const char *file, uint64_t lineno)
{
    const hub_audit_record_t *r = &v->cur.rec;
    uint8_t *next = v->next_key;
    uint8_t msg[HUB__AUDIT_ROT_MSG_LEN];
    if (!audit_record__rot_key(r->reason, next) || r->signature_len != 64)
        return audit_verify__fail_rec(v, HUB_EPARSE, file, lineno,
                                      "modified record: the KEY_ROTATED record",
                                      "does not name a new key with its proof");
    audit_record__rot_message(v->key, next, msg);
    if (!v->early_failed && crypto_sign_verify_detached(r->signature, msg, sizeof msg, next) != 0)
        return audit_verify__fail_rec(v, HUB_ECRYPTO, file, lineno,
                                      "forged key rotation: the KEY_ROTATED record",
                                      "is not signed by the new key it names, over the key "
                                      "in force before it");
    v->rotation_seq = r->seq;
    return 0;
}

/* A TIMESTAMPED record (v->cur): the token file it names is there,
 * unaltered, for a checkpoint of the log, and (with tsa_cert) signed by the
 * TSA over that checkpoint's hash. */
static int audit_verify__timestamped(audit_verify__verifier_t *v, const char *file, uint64_t lineno)
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
        return audit_verify__fail_rec(v, HUB_EPARSE, file, lineno,
                                      "modified record: the TIMESTAMPED record",
                                      "does not name a checkpoint and its token");
    const audit_verify__cp_seen_t *cp = NULL;
    size_t lo;
    HUB_VEC_LOWER_BOUND(v->cps, v->n_cps, seq, cp_seq, lo);
    if (lo < v->n_cps && v->cps[lo].seq == cp_seq)
        cp = &v->cps[lo];
    if (!cp)
        return audit_verify__vfail(
            v, HUB_EPARSE, file, lineno, r->seq,
            "modified record: the TIMESTAMPED record at seq %" PRIu64 " (%s line "
            "%" PRIu64 ") names seq %" PRIu64 ", which is no checkpoint before it",
            r->seq, file, lineno, cp_seq);
    char name[HUB_AUDIT_TSR_NAME_MAX];
    hub_audit_tsr_name(cp_seq, name);
    char *token = NULL;
    size_t len = 0;
    int rc = audit_record__read_all(v->dir, name, &token, &len);
    if (rc != 0)
        return audit_verify__vfail(
            v, HUB_EPARSE, name, 0, cp_seq,
            "missing time-stamp token: %s/%s, the token of the checkpoint at seq "
            "%" PRIu64 " that the TIMESTAMPED record at seq %" PRIu64 " (%s line "
            "%" PRIu64 ") names, cannot be read (%s): it was removed",
            v->dir, name, cp_seq, r->seq, file, lineno, hub_strerror(rc));
    uint8_t got[32];
    hub_sha256(token, len, got);
    if (memcmp(got, want, 32) != 0) {
        free(token);
        return audit_verify__vfail(
            v, HUB_ECRYPTO, name, 0, cp_seq,
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
            return audit_verify__vfail(v, rc == HUB_ECRYPTO ? HUB_ECRYPTO : rc, name, 0, cp_seq,
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
static int audit_verify__line(audit_verify__verifier_t *v, const char *file, uint64_t lineno,
                              const char *line, size_t len, const char *next, size_t next_len)
{
    uint64_t expect = v->seq + 1;
    if (audit_record__parse(line, len, &v->cur, v->scratch) != 0)
        return audit_verify__vfail(
            v, HUB_EPARSE, file, lineno, expect,
            "modified record: %s line %" PRIu64 " is not a well-formed audit "
            "record (seq %" PRIu64 " was expected there): it was modified, damaged "
            "or inserted",
            file, lineno, expect);
    const hub_audit_record_t *r = &v->cur.rec;
    if (v->torn_pending) {
        char reason[HUB_AUDIT_REASON_MAX];
        audit_record__torn_reason(reason, sizeof reason, v->torn_file, v->torn_bytes, v->seq);
        if (r->event != HUB_AUDIT_RECOVERED || strcmp(r->reason, reason) != 0)
            return audit_verify__torn(v);
        v->torn_pending = false;
    }
    if (r->event == HUB_AUDIT_CHECKPOINT) {
        uint8_t msg[HUB__AUDIT_CP_MSG_LEN];
        audit_record__cp_message(r->seq, r->time_us, v->cur.cp.count, r->prev_hash,
                                 v->cur.cp.prev_checkpoint, msg);
        bool sig_ok = crypto_sign_verify_detached(v->cur.cp.signature, msg, sizeof msg, v->key) == 0;
        if (!sig_ok && v->opts->early_keys_unknown && v->key_since == 0 &&
            (v->early_failed || !v->rotation_seq)) {
            /* Maybe an earlier key: decided when a rotation comes, or not. */
            if (!v->early_failed) {
                hub_audit_verify_report_t *saved = v->report;
                v->report = &v->early;
                audit_verify__fail_rec(v, HUB_ECRYPTO, file, lineno,
                                       "forged checkpoint or key change without a rotation "
                                       "record: the checkpoint",
                                       "does not verify with the hub's key, and no KEY_ROTATED "
                                       "record after it hands the log over to that key");
                v->report = saved;
                v->early_failed = true;
            }
            sig_ok = true;
        }
        if (!sig_ok) {
            char hex[65];
            sodium_bin2hex(hex, sizeof hex, v->key, 32);
            if (v->key_since == 0)
                return audit_verify__vfail(
                    v, HUB_ECRYPTO, file, lineno, r->seq,
                    "forged checkpoint or key change without a rotation record: "
                    "the checkpoint at seq %" PRIu64 " (%s line %" PRIu64 ") does "
                    "not verify with the hub's key the log begins with "
                    "(%.16s...), and no KEY_ROTATED record before it names "
                    "another: it was altered, or signed with another key",
                    r->seq, file, lineno, hex);
            return audit_verify__vfail(
                v, HUB_ECRYPTO, file, lineno, r->seq,
                "forged checkpoint or key change without a rotation record: the "
                "checkpoint at seq %" PRIu64 " (%s line %" PRIu64 ") does not "
                "verify with the key in force since the rotation at seq %" PRIu64
                " (%.16s...): it was altered, or signed with a key no KEY_ROTATED "
                "record names",
                r->seq, file, lineno, v->key_since, hex);
        }
    }
    uint8_t hash[32];
    hub_sha256(line, len, hash);
    bool linked = memcmp(r->prev_hash, v->head, 32) == 0;
    if (!linked || r->seq != expect) {
        /* Something is wrong; the next line helps tell what. */
        bool have_next = next && audit_record__parse(next, next_len, &v->peek, v->scratch) == 0;
        if (linked) /* in the chain, but numbered wrongly */
            return audit_verify__vfail(
                v, HUB_EPARSE, file, lineno, expect,
                "modified record: %s line %" PRIu64 " has seq %" PRIu64 " where "
                "%" PRIu64 " was expected, yet it links to the record before it: "
                "it was modified or inserted",
                file, lineno, r->seq, expect);
        if (r->seq == expect) {
            bool next_links_here = have_next && memcmp(v->peek.rec.prev_hash, hash, 32) == 0;
            if (v->seq == 0)
                return audit_verify__vfail(
                    v, HUB_EPARSE, file, lineno, r->seq,
                    "modified record: the first record (%s line %" PRIu64 ") does "
                    "not start from the genesis hash: it was modified or replaced",
                    file, lineno);
            if (have_next && !next_links_here)
                return audit_verify__fail_rec(v, HUB_EPARSE, file, lineno,
                                              "modified record: the record",
                                              "was modified: neither it nor the next record "
                                              "links to what comes before");
            return audit_verify__vfail(
                v, HUB_EPARSE, v->head_file, v->head_line, v->seq,
                "modified record: the record at seq %" PRIu64 " (%s line %" PRIu64
                ") was modified: its hash no longer matches the prev hash that "
                "seq %" PRIu64 " (%s line %" PRIu64 ") holds",
                v->seq, v->head_file, v->head_line, r->seq, file, lineno);
        }
        if (r->seq > expect) {
            if (have_next && v->peek.rec.seq == expect)
                return audit_verify__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                                           "reordered records: seq %" PRIu64 " (%s line %" PRIu64
                                           ") "
                                           "comes before seq %" PRIu64 " (line %" PRIu64 ")",
                                           r->seq, file, lineno, expect, lineno + 1);
            if (r->seq - expect == 1)
                return audit_verify__vfail(
                    v, HUB_EPARSE, file, lineno, expect,
                    "removed record: seq %" PRIu64 " is missing before %s line "
                    "%" PRIu64 " (seq gap: seq %" PRIu64 " follows seq %" PRIu64 ")",
                    expect, file, lineno, r->seq, v->seq);
            return audit_verify__vfail(
                v, HUB_EPARSE, file, lineno, expect,
                "removed records: seq %" PRIu64 " to %" PRIu64 " are missing "
                "before %s line %" PRIu64 " (seq gap: seq %" PRIu64 " follows "
                "seq %" PRIu64 ")",
                expect, r->seq - 1, file, lineno, r->seq, v->seq);
        }
        /* r->seq < expect */
        if (memcmp(hash, v->head, 32) == 0)
            return audit_verify__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                                       "inserted record: %s line %" PRIu64
                                       " repeats the record before "
                                       "it (seq %" PRIu64 ")",
                                       file, lineno, r->seq);
        if (r->seq == v->seq && memcmp(r->prev_hash, v->head_prev, 32) == 0)
            return audit_verify__vfail(
                v, HUB_EPARSE, v->head_file, v->head_line, v->seq,
                "inserted record: %s line %" PRIu64 " (seq %" PRIu64 ") is not "
                "part of the chain: the next record has the same seq and links "
                "to the record before it",
                v->head_file, v->head_line, v->seq);
        return audit_verify__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                                   "reordered or inserted records: seq %" PRIu64
                                   " (%s line %" PRIu64 ") comes after seq %" PRIu64,
                                   r->seq, file, lineno, v->seq);
    }
    if (r->event == HUB_AUDIT_CHECKPOINT) {
        if (v->cur.cp.count != r->seq - 1)
            return audit_verify__vfail(v, HUB_EPARSE, file, lineno, r->seq,
                                       "inconsistent checkpoint: the checkpoint at seq %" PRIu64
                                       " counts "
                                       "%" PRIu64 " records before it",
                                       r->seq, v->cur.cp.count);
        if (memcmp(v->cur.cp.prev_checkpoint, v->last_checkpoint, 32) != 0)
            return audit_verify__fail_rec(v, HUB_EPARSE, file, lineno,
                                          "broken checkpoint chain: the checkpoint",
                                          "does not name the previous checkpoint: one was "
                                          "removed or replaced");
        memcpy(v->last_checkpoint, hash, 32);
        v->last_checkpoint_seq = r->seq;
        v->report->checkpoints++;
        if (HUB_VEC_RESERVE(v->cps, v->n_cps, v->cap_cps, 64) != 0)
            return audit_verify__vfail(v, HUB_ENOMEM, file, lineno, r->seq, "out of memory");
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
        int krc = audit_verify__rotation(v, file, lineno);
        if (krc != 0)
            return krc;
    }
    if (r->event == HUB_AUDIT_TIMESTAMPED) {
        int trc = audit_verify__timestamped(v, file, lineno);
        if (trc != 0)
            return trc;
    }
    if (v->opts->anchor_seq && r->seq == v->opts->anchor_seq &&
        memcmp(hash, v->opts->anchor_hash, 32) != 0)
        return audit_verify__fail_rec(v, HUB_EPARSE, file, lineno, "anchor mismatch: the record",
                                      "is not the one the anchor names (its hash differs): "
                                      "the log was rewritten from there on, or the anchor "
                                      "belongs to another log");
    if (r->event == HUB_AUDIT_RECOVERED)
        v->report->recoveries++;
    if (r->event == HUB_AUDIT_NODE_OPENED) {
        if (v->report->node_records && strcmp(v->report->node_id, r->outcome) != 0)
            v->report->node_changed = true;
        snprintf(v->report->node_id, sizeof v->report->node_id, "%s", r->outcome);
        v->report->node_records++;
    }
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

static int audit_verify__file(audit_verify__verifier_t *v, const char *file, const char *buf,
                              size_t len)
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
        int rc = audit_verify__line(v, file, lineno, line, n, next, next_len);
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
    audit_verify__verifier_t *v = NULL;
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
    int rc = audit_record__list_files(dir, &files);
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
        audit_record__file_name(want, name);
        if (files.numbers[i] != want) {
            rc = audit_verify__vfail(v, HUB_EPARSE, name, 0, v->seq + 1,
                                     "removed file: %s is missing (the next file present is "
                                     "audit-%06lu.log): %s",
                                     name, files.numbers[i],
                                     i ? "a whole file was removed"
                                       : "the beginning of the log was removed");
            goto out;
        }
        char *buf = NULL;
        size_t len = 0;
        rc = audit_record__read_all(dir, name, &buf, &len);
        if (rc != 0) {
            audit_verify__vfail(v, rc, name, 0, 0, "cannot read %s/%s: %s", dir, name,
                                hub_strerror(rc));
            goto out;
        }
        report->files++;
        rc = audit_verify__file(v, name, buf, len);
        free(buf);
        if (rc != 0)
            goto out;
        if (v->stopped)
            break;
    }
    if (!v->early_failed && opts->early_keys_unknown &&
        sodium_memcmp(v->key, opts->hub_sign_public, 32) != 0) {
        rc = audit_verify__vfail(
            v, HUB_ECRYPTO, v->head_file, v->head_line, v->key_since,
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
        rc = audit_verify__torn(v);
        goto out;
    }
    if (report->records == 0) {
        rc = audit_verify__vfail(v, HUB_EAGAIN, "", 0, 0,
                                 "the audit files in %s hold no records and no checkpoint", dir);
        goto out;
    }
    memcpy(report->final_key, v->key, 32);
    if (opts->anchor_seq > v->seq) {
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, opts->anchor_hash, 32);
        rc = audit_verify__vfail(
            v, HUB_EPARSE, v->head_file, v->head_line, v->seq,
            "log cut back: the log ends at seq %" PRIu64 " (%s line %" PRIu64 "), "
            "before the anchored head at seq %" PRIu64 " (%.16s...): records %" PRIu64
            " to %" PRIu64 " (at least) were removed",
            v->seq, v->head_file, v->head_line, opts->anchor_seq, hex, v->seq + 1,
            opts->anchor_seq);
        goto out;
    }
    if (!v->head_is_checkpoint) {
        report->unsealed_records = v->seq - v->last_checkpoint_seq;
        rc = audit_verify__vfail(
            v, HUB_EAGAIN, v->head_file, v->head_line, v->seq,
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

static bool audit_verify__contains(const char *hay, size_t hay_len, const char *needle,
                                   size_t needle_len)
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

/* Whether line is a NODE_OPENED record (then parsed into p). */
static bool audit_verify__node_opened(const char *line, size_t n, audit__parsed_t *p, char *scratch)
{
    static const char node_event[] = "\"event\":\"NODE_OPENED\"";
    return audit_verify__contains(line, n, node_event, sizeof node_event - 1) &&
           audit_record__parse(line, n, p, scratch) == 0 && p->rec.event == HUB_AUDIT_NODE_OPENED;
}

/* Called for each complete line (n bytes, its newline included) of file
 * `name`, line number lineno; p and scratch are room to parse it. Nonzero
 * stops the walk. */
typedef int (*audit_verify__line_fn)(const char *name, uint64_t lineno, const char *line,
                                     size_t n, audit__parsed_t *p, char *scratch, void *user);

/* Walks the complete lines of dir's audit files in order, unverified (the
 * finders' read: a cut last line is passed over). A file that cannot be
 * read ends the walk with its error, or is passed over when
 * skip_unreadable. Returns 0, HUB_ENOMEM or a listing or read error. */
static int audit_verify__walk(const char *dir, bool skip_unreadable, audit_verify__line_fn fn,
                              void *user)
{
    hub_numfiles_t files;
    int rc = audit_record__list_files(dir, &files);
    if (rc != 0)
        return rc;
    audit__parsed_t *p = malloc(sizeof *p);
    char *scratch = malloc(HUB_AUDIT_LINE_MAX);
    rc = p && scratch ? 0 : HUB_ENOMEM;
    bool stop = false;
    for (size_t i = 0; rc == 0 && !stop && i < files.count; i++) {
        char name[HUB_AUDIT_FILE_NAME_MAX];
        audit_record__file_name(files.numbers[i], name);
        char *buf = NULL;
        size_t len = 0;
        rc = audit_record__read_all(dir, name, &buf, &len);
        if (rc != 0) {
            if (skip_unreadable)
                rc = 0;
            continue;
        }
        uint64_t lineno = 0;
        for (size_t pos = 0; pos < len && !stop;) {
            const char *line = buf + pos;
            const char *nl = memchr(line, '\n', len - pos);
            if (!nl)
                break;
            size_t n = (size_t)(nl - line) + 1;
            pos += n;
            stop = fn(name, ++lineno, line, n, p, scratch, user) != 0;
        }
        free(buf);
    }
    free(scratch);
    free(p);
    free(files.numbers);
    return rc;
}

/* Whether text needs no escaping in a line: then it appears verbatim. */
static bool audit_verify__plain(const char *text)
{
    for (const char *s = text; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
            return false;
    return true;
}

typedef struct {
    const char *message_id, *service; /* NULL: any */
    const char *needle;               /* one of them: text the line must hold when plain */
    size_t needle_len;
    bool plain, any;
    char node[HUB_AUDIT_WORD_MAX + 1]; /* of the last NODE_OPENED record */
    hub_audit_found_cb found;
    void *user;
} audit_verify__find_t;

static int audit_verify__find_line(const char *name, uint64_t lineno, const char *line, size_t n,
                                   audit__parsed_t *p, char *scratch, void *user)
{
    audit_verify__find_t *f = user;
    if (audit_verify__node_opened(line, n, p, scratch)) {
        snprintf(f->node, sizeof f->node, "%s", p->rec.outcome);
        return 0;
    }
    /* Text made of plain characters appears verbatim in the line: a cheap
     * filter before parsing. */
    if (f->plain && !audit_verify__contains(line, n, f->needle, f->needle_len))
        return 0;
    if (audit_record__parse(line, n, p, scratch) != 0 || p->rec.event == HUB_AUDIT_CHECKPOINT ||
        (f->message_id && strcmp(p->rec.message_id, f->message_id) != 0) ||
        (f->service && strcmp(p->rec.service, f->service) != 0))
        return 0;
    f->any = true;
    p->rec.node_id = f->node;
    return f->found(&p->rec, name, lineno, f->user);
}

int hub_audit_find(const char *dir, const hub_audit_filter_t *filter, hub_audit_found_cb found,
                   void *user)
{
    if (!dir || !filter || !found)
        return HUB_EINVAL;
    audit_verify__find_t f = {.found = found, .user = user};
    f.message_id = filter->message_id && *filter->message_id ? filter->message_id : NULL;
    f.service = filter->service && *filter->service ? filter->service : NULL;
    f.needle = f.message_id ? f.message_id : f.service;
    if (!f.needle)
        return HUB_EINVAL;
    f.plain = audit_verify__plain(f.needle);
    f.needle_len = strlen(f.needle);
    int rc = audit_verify__walk(dir, false, audit_verify__find_line, &f);
    return rc != 0 ? rc : f.any ? 0 : HUB_ENOTFOUND;
}

typedef struct {
    char *out;
    size_t size;
    bool found;
} audit_verify__node_t;

static int audit_verify__node_line(const char *name, uint64_t lineno, const char *line, size_t n,
                                   audit__parsed_t *p, char *scratch, void *user)
{
    (void)name;
    (void)lineno;
    audit_verify__node_t *o = user;
    if (audit_verify__node_opened(line, n, p, scratch)) {
        snprintf(o->out, o->size, "%s", p->rec.outcome);
        o->found = true;
    }
    return 0;
}

int hub_audit_node_of(const char *dir, char *out, size_t size)
{
    if (!dir || !out || !size)
        return HUB_EINVAL;
    out[0] = '\0';
    audit_verify__node_t o = {out, size, false};
    /* Unverified, best effort: the other files may name it. */
    int rc = audit_verify__walk(dir, true, audit_verify__node_line, &o);
    return rc != 0 ? rc : o.found ? 0 : HUB_ENOTFOUND;
}

int hub_audit_find_message(const char *dir, const char *message_id, hub_audit_found_cb found,
                           void *user)
{
    if (!message_id || !message_id[0])
        return HUB_EINVAL;
    hub_audit_filter_t f = {.message_id = message_id};
    return hub_audit_find(dir, &f, found, user);
}
