/* lth_portal — the messages of the national portal's synchronisation
 * profile besides status changes (proto/domain.proto, section "The portal's
 * synchronisation profile"; rules in proto/DOMAIN.md):
 *
 * - DossierResult (dossier.result/v1): an electronic result by reference,
 *   coded "<dossier code>-KQ<n>", with the deciding authority's detached
 *   Ed25519 signature over a fixed signing text, so that the signature
 *   outlives the envelope that carried it;
 * - PaymentStatus (payment.status/v1), Feedback (feedback.submit/v1) and
 *   SyncReceipt (dossier.synced/v1), as plain structs with checked decoding.
 *
 * Decoders refuse (HUB_EPARSE, *problem a sentence saying what is wrong)
 * anything a receiver must not apply; they never log. Nothing here holds
 * personal data.
 */
#ifndef LTH_PORTAL_H
#define LTH_PORTAL_H

#include "lth_dossier.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LTH_RESULT_TYPE LTH_DOMAIN_CONTENT_TYPE("DossierResult")
#define LTH_PAYMENT_TYPE LTH_DOMAIN_CONTENT_TYPE("PaymentStatus")
#define LTH_FEEDBACK_TYPE LTH_DOMAIN_CONTENT_TYPE("Feedback")
#define LTH_STATISTICS_TYPE LTH_DOMAIN_CONTENT_TYPE("StatisticsSync")
#define LTH_RECEIPT_TYPE LTH_DOMAIN_CONTENT_TYPE("SyncReceipt")

#define LTH_SERVICE_DOSSIER_RESULT "dossier.result/v1"
#define LTH_SERVICE_PAYMENT_STATUS "payment.status/v1"
#define LTH_SERVICE_FEEDBACK "feedback.submit/v1"
#define LTH_SERVICE_STATISTICS "statistics.sync/v1"
#define LTH_SERVICE_DOSSIER_SYNCED "dossier.synced/v1"

#define LTH_RESULT_CODE_MAX (LTH_DOSSIER_CODE_MAX + 16)

typedef struct {
    char dossier_code[LTH_DOSSIER_CODE_MAX];
    char result_code[LTH_RESULT_CODE_MAX]; /* "<dossier_code>-KQ<n>" */
    char procedure_code[LTH_PROCEDURE_CODE_MAX];
    char uri[256];
    uint8_t sha256[32];
    char media_type[128];
    uint64_t size_bytes;
    char signer[LTH_MEMBER_MAX];
    uint8_t signer_public_key[32];
    uint64_t decided_at_us;
    uint8_t signature[64];
} lth_result_t;

/* n of "<dossier_code>-KQ<n>" (1..9999, no leading zero), or 0 when
 * result_code is not a result code of that dossier. */
unsigned lth_result_number(const char *dossier_code, const char *result_code);
/* The text the authority signs: one field a line, in this order,
 * "lth.domain.v1.DossierResult", dossier code, result code, SHA-256 in
 * lowercase hex, media type, size, signer member id, decided_at_us. Into
 * out; returns its length, or 0 when it does not fit. */
size_t lth_result_signing_text(const lth_result_t *r, char *out, size_t size);
/* Whether r->signature verifies with r->signer_public_key. */
bool lth_result_signature_ok(const lth_result_t *r);
/* Encodes (HUB_EINVAL, HUB_ENOMEM); *out is malloc'ed. */
int lth_result_encode(const lth_result_t *r, uint8_t **out, size_t *out_len);
/* Checks the content type, decodes, and refuses a result whose code is not
 * "<dossier_code>-KQ<n>", whose document lacks a 32-byte SHA-256, a media
 * type or a size, whose key or signature has the wrong length, or whose
 * signature does not verify over the signing text. */
int lth_result_decode(const char *content_type, const uint8_t *payload, size_t len,
                      lth_result_t *out, const char **problem);

/* The values match lth.domain.v1.PaymentOutcome. */
typedef enum { LTH_PAYMENT_PAID = 1, LTH_PAYMENT_FAILED = 2 } lth_payment_outcome_t;

typedef struct {
    char dossier_code[LTH_DOSSIER_CODE_MAX];
    char procedure_code[LTH_PROCEDURE_CODE_MAX];
    uint64_t fee_vnd, amount_vnd;
    char transaction_ref[65];
    int outcome; /* lth_payment_outcome_t */
    uint64_t at_us;
    int channel; /* lth_channel_t */
    char reason[LTH_NOTE_MAX];
} lth_payment_t;

int lth_payment_encode(const lth_payment_t *p, uint8_t **out, size_t *out_len);
/* Refuses a missing dossier code or transaction reference (1-64 bytes), an
 * outcome other than PAID or FAILED, and a PAID amount other than fee_vnd. */
int lth_payment_decode(const char *content_type, const uint8_t *payload, size_t len,
                       lth_payment_t *out, const char **problem);

#define LTH_FEEDBACK_MAX_RATINGS 16

typedef struct {
    char dossier_code[LTH_DOSSIER_CODE_MAX];
    size_t n_ratings;
    struct {
        char criterion[33]; /* 1-32 of a-z 0-9 _ */
        unsigned score;     /* 1..5 */
    } ratings[LTH_FEEDBACK_MAX_RATINGS];
    uint64_t at_us;
} lth_feedback_t;

int lth_feedback_encode(const lth_feedback_t *f, uint8_t **out, size_t *out_len);
/* Refuses no ratings or more than 16, a score outside 1..5, a criterion
 * that is not 1-32 of a-z 0-9 _, and a criterion rated twice. */
int lth_feedback_decode(const char *content_type, const uint8_t *payload, size_t len,
                        lth_feedback_t *out, const char **problem);
/* The mean score of f (0 when it has no ratings). */
double lth_feedback_mean(const lth_feedback_t *f);

typedef struct {
    char dossier_code[LTH_DOSSIER_CODE_MAX];
    uint64_t sequence; /* of the change; 0 for a result */
    bool accepted;
    char reason[LTH_NOTE_MAX];
    char result_code[LTH_RESULT_CODE_MAX];
} lth_receipt_t;

int lth_receipt_encode(const lth_receipt_t *r, uint8_t **out, size_t *out_len);
int lth_receipt_decode(const char *content_type, const uint8_t *payload, size_t len,
                       lth_receipt_t *out, const char **problem);

#endif
