#include "lth_portal.h"

#include "domain.pb-c.h"
#include "hub_error.h"
#include "hub_wire.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- dossier.result/v1 ---- */

unsigned lth_result_number(const char *dossier_code, const char *result_code)
{
    if (!dossier_code || !result_code || !dossier_code[0])
        return 0;
    size_t n = strlen(dossier_code);
    if (strncmp(result_code, dossier_code, n) != 0 || strncmp(result_code + n, "-KQ", 3) != 0)
        return 0;
    const char *d = result_code + n + 3;
    if (d[0] < '1' || d[0] > '9' || strlen(d) > 4)
        return 0;
    unsigned v = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return 0;
        v = v * 10 + (unsigned)(*d - '0');
    }
    return v;
}

size_t lth_result_signing_text(const lth_result_t *r, char *out, size_t size)
{
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, r->sha256, sizeof r->sha256);
    int n = snprintf(out, size,
                     "lth.domain.v1.DossierResult\n%s\n%s\n%s\n%s\n%" PRIu64 "\n%s\n%" PRIu64 "\n",
                     r->dossier_code, r->result_code, hex, r->media_type, r->size_bytes, r->signer,
                     r->decided_at_us);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

bool lth_result_signature_ok(const lth_result_t *r)
{
    char text[1024];
    size_t len = lth_result_signing_text(r, text, sizeof text);
    return len > 0 && crypto_sign_verify_detached(r->signature, (const uint8_t *)text, len,
                                                  r->signer_public_key) == 0;
}

int lth_result_encode(const lth_result_t *r, uint8_t **out, size_t *out_len)
{
    if (!r || !out || !out_len)
        return HUB_EINVAL;
    Lth__Domain__V1__DocumentRef doc = LTH__DOMAIN__V1__DOCUMENT_REF__INIT;
    doc.uri = (char *)r->uri;
    doc.sha256.data = (uint8_t *)r->sha256;
    doc.sha256.len = sizeof r->sha256;
    doc.media_type = (char *)r->media_type;
    doc.size_bytes = r->size_bytes;
    doc.title = "Kết quả giải quyết TTHC (dữ liệu tổng hợp)";
    Lth__Domain__V1__DossierResult m = LTH__DOMAIN__V1__DOSSIER_RESULT__INIT;
    m.dossier_code = (char *)r->dossier_code;
    m.result_code = (char *)r->result_code;
    m.procedure_code = (char *)r->procedure_code;
    m.document = &doc;
    m.signer_member_id = (char *)r->signer;
    m.signer_public_key.data = (uint8_t *)r->signer_public_key;
    m.signer_public_key.len = sizeof r->signer_public_key;
    m.decided_at_us = r->decided_at_us;
    m.signature.data = (uint8_t *)r->signature;
    m.signature.len = sizeof r->signature;
    return hub_pb_pack(&m.base, out, out_len);
}

static const char *lth__result_read(const void *msg, void *dst)
{
    const Lth__Domain__V1__DossierResult *m = msg;
    lth_result_t *out = dst;
    if (!m->dossier_code[0] ||
        !lth_domain_copy(out->dossier_code, sizeof out->dossier_code, m->dossier_code))
        return "dossier_code is empty or longer than 63 bytes";
    if (!lth_domain_copy(out->result_code, sizeof out->result_code, m->result_code) ||
        lth_result_number(m->dossier_code, m->result_code) == 0)
        return "result_code must be the dossier code followed by -KQ and a number 1-9999, e.g. "
               "\"000.00.01.H26-260703-0001-KQ1\"";
    if (!m->document || m->document->sha256.len != 32)
        return "the result's document must carry a 32-byte SHA-256";
    if (!m->document->media_type[0] || !m->document->size_bytes)
        return "the result's document must give its media type and size";
    if (!lth_domain_copy(out->uri, sizeof out->uri, m->document->uri) ||
        !lth_domain_copy(out->media_type, sizeof out->media_type, m->document->media_type) ||
        !lth_domain_copy(out->signer, sizeof out->signer, m->signer_member_id) ||
        !lth_domain_copy(out->procedure_code, sizeof out->procedure_code, m->procedure_code))
        return "a text field is too long";
    if (!m->signer_member_id[0])
        return "signer_member_id is empty: the deciding authority signs its result";
    if (m->signer_public_key.len != 32 || m->signature.len != 64)
        return "signer_public_key must be 32 bytes and signature 64 (Ed25519)";
    memcpy(out->sha256, m->document->sha256.data, 32);
    out->size_bytes = m->document->size_bytes;
    memcpy(out->signer_public_key, m->signer_public_key.data, 32);
    memcpy(out->signature, m->signature.data, 64);
    out->decided_at_us = m->decided_at_us;
    if (!lth_result_signature_ok(out))
        return "the result's signature does not verify with signer_public_key over its "
               "reference fields";
    return NULL;
}

LTH_DOMAIN_DECODER(lth_result_decode, lth_result_t, "DossierResult",
                   &lth__domain__v1__dossier_result__descriptor, lth__result_read)

/* ---- payment.status/v1 ---- */

int lth_payment_encode(const lth_payment_t *p, uint8_t **out, size_t *out_len)
{
    if (!p || !out || !out_len)
        return HUB_EINVAL;
    Lth__Domain__V1__PaymentStatus m = LTH__DOMAIN__V1__PAYMENT_STATUS__INIT;
    m.dossier_code = (char *)p->dossier_code;
    m.procedure_code = (char *)p->procedure_code;
    m.fee_vnd = p->fee_vnd;
    m.amount_vnd = p->amount_vnd;
    m.transaction_ref = (char *)p->transaction_ref;
    m.outcome = (Lth__Domain__V1__PaymentOutcome)p->outcome;
    m.at_us = p->at_us;
    m.channel = (Lth__Domain__V1__Channel)p->channel;
    m.reason = (char *)p->reason;
    return hub_pb_pack(&m.base, out, out_len);
}

static const char *lth__payment_read(const void *msg, void *dst)
{
    const Lth__Domain__V1__PaymentStatus *m = msg;
    lth_payment_t *out = dst;
    if (!m->dossier_code[0] ||
        !lth_domain_copy(out->dossier_code, sizeof out->dossier_code, m->dossier_code))
        return "dossier_code is empty or longer than 63 bytes";
    if (!m->transaction_ref[0] ||
        !lth_domain_copy(out->transaction_ref, sizeof out->transaction_ref, m->transaction_ref))
        return "transaction_ref must be 1-64 bytes: the payment platform's reference";
    if (m->outcome != LTH__DOMAIN__V1__PAYMENT_OUTCOME__PAYMENT_OUTCOME_PAID &&
        m->outcome != LTH__DOMAIN__V1__PAYMENT_OUTCOME__PAYMENT_OUTCOME_FAILED)
        return "outcome must be PAID or FAILED";
    if (m->outcome == LTH__DOMAIN__V1__PAYMENT_OUTCOME__PAYMENT_OUTCOME_PAID &&
        m->amount_vnd != m->fee_vnd)
        return "a PAID amount_vnd must equal fee_vnd";
    if ((int)m->channel < 0 || (int)m->channel > LTH_CHANNEL_COUNTER)
        return "channel is not ONLINE or COUNTER";
    if (!lth_domain_copy(out->procedure_code, sizeof out->procedure_code, m->procedure_code) ||
        !lth_domain_copy(out->reason, sizeof out->reason, m->reason))
        return "a text field is too long";
    out->fee_vnd = m->fee_vnd;
    out->amount_vnd = m->amount_vnd;
    out->outcome = (int)m->outcome;
    out->at_us = m->at_us;
    out->channel = (int)m->channel;
    return NULL;
}

LTH_DOMAIN_DECODER(lth_payment_decode, lth_payment_t, "PaymentStatus",
                   &lth__domain__v1__payment_status__descriptor, lth__payment_read)

/* ---- feedback.submit/v1 ---- */

int lth_feedback_encode(const lth_feedback_t *f, uint8_t **out, size_t *out_len)
{
    if (!f || !out || !out_len || f->n_ratings > LTH_FEEDBACK_MAX_RATINGS)
        return HUB_EINVAL;
    Lth__Domain__V1__SatisfactionRating items[LTH_FEEDBACK_MAX_RATINGS];
    Lth__Domain__V1__SatisfactionRating *ptrs[LTH_FEEDBACK_MAX_RATINGS];
    for (size_t i = 0; i < f->n_ratings; i++) {
        lth__domain__v1__satisfaction_rating__init(&items[i]);
        items[i].criterion = (char *)f->ratings[i].criterion;
        items[i].score = f->ratings[i].score;
        ptrs[i] = &items[i];
    }
    Lth__Domain__V1__Feedback m = LTH__DOMAIN__V1__FEEDBACK__INIT;
    m.dossier_code = (char *)f->dossier_code;
    m.ratings = ptrs;
    m.n_ratings = f->n_ratings;
    m.at_us = f->at_us;
    return hub_pb_pack(&m.base, out, out_len);
}

static bool lth__criterion_ok(const char *c)
{
    size_t n = strlen(c);
    if (n == 0 || n > 32)
        return false;
    for (; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return false;
    return true;
}

static const char *lth__feedback_read(const void *msg, void *dst)
{
    const Lth__Domain__V1__Feedback *m = msg;
    lth_feedback_t *out = dst;
    if (!m->dossier_code[0] ||
        !lth_domain_copy(out->dossier_code, sizeof out->dossier_code, m->dossier_code))
        return "dossier_code is empty or longer than 63 bytes";
    if (m->n_ratings == 0 || m->n_ratings > LTH_FEEDBACK_MAX_RATINGS)
        return "a feedback rates 1 to 16 criteria";
    for (size_t i = 0; i < m->n_ratings; i++) {
        const Lth__Domain__V1__SatisfactionRating *r = m->ratings[i];
        if (!lth__criterion_ok(r->criterion))
            return "a criterion is 1-32 of a-z 0-9 _, e.g. \"officials\"";
        if (r->score < 1 || r->score > 5)
            return "a score is 1 (very dissatisfied) to 5 (very satisfied)";
        for (size_t j = 0; j < i; j++)
            if (!strcmp(out->ratings[j].criterion, r->criterion))
                return "a criterion is rated twice";
        snprintf(out->ratings[i].criterion, sizeof out->ratings[i].criterion, "%s", r->criterion);
        out->ratings[i].score = r->score;
        out->n_ratings = i + 1;
    }
    out->at_us = m->at_us;
    return NULL;
}

LTH_DOMAIN_DECODER(lth_feedback_decode, lth_feedback_t, "Feedback",
                   &lth__domain__v1__feedback__descriptor, lth__feedback_read)

double lth_feedback_mean(const lth_feedback_t *f)
{
    if (!f || f->n_ratings == 0)
        return 0;
    unsigned sum = 0;
    for (size_t i = 0; i < f->n_ratings; i++)
        sum += f->ratings[i].score;
    return (double)sum / (double)f->n_ratings;
}

/* ---- dossier.synced/v1 ---- */

int lth_receipt_encode(const lth_receipt_t *r, uint8_t **out, size_t *out_len)
{
    if (!r || !out || !out_len)
        return HUB_EINVAL;
    Lth__Domain__V1__SyncReceipt m = LTH__DOMAIN__V1__SYNC_RECEIPT__INIT;
    m.dossier_code = (char *)r->dossier_code;
    m.sequence = r->sequence;
    m.accepted = r->accepted;
    m.reason = (char *)r->reason;
    m.result_code = (char *)r->result_code;
    return hub_pb_pack(&m.base, out, out_len);
}

static const char *lth__receipt_read(const void *msg, void *dst)
{
    const Lth__Domain__V1__SyncReceipt *m = msg;
    lth_receipt_t *out = dst;
    if (!m->dossier_code[0] ||
        !lth_domain_copy(out->dossier_code, sizeof out->dossier_code, m->dossier_code))
        return "dossier_code is empty or longer than 63 bytes";
    if (!lth_domain_copy(out->reason, sizeof out->reason, m->reason) ||
        !lth_domain_copy(out->result_code, sizeof out->result_code, m->result_code))
        return "a text field is too long";
    out->sequence = m->sequence;
    out->accepted = m->accepted;
    return NULL;
}

LTH_DOMAIN_DECODER(lth_receipt_decode, lth_receipt_t, "SyncReceipt",
                   &lth__domain__v1__sync_receipt__descriptor, lth__receipt_read)
