#include "lth_dossier.h"

#include "domain.pb-c.h"
#include "hub_error.h"
#include "hub_wire.h"
#include "lth_citizen.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const lth__status_names[] = {
    "UNSPECIFIED",
    "RECEIVED",
    "PROCESSING",
    "SUPPLEMENT_REQUESTED",
    "DONE",
    "RETURNED",
    "OVERDUE",
    "NOT_ACCEPTED",
    "FINANCIAL_OBLIGATION_REQUESTED",
    "SUSPENDED",
    "WITHDRAWN",
    "RESULT_HANDED_OVER",
};

const char *lth_status_name(int status)
{
    return status >= 0 && status <= LTH_STATUS_LAST ? lth__status_names[status] : "UNSPECIFIED";
}

int lth_status_parse(const char *name)
{
    for (int s = 1; name && s <= LTH_STATUS_LAST; s++)
        if (!strcmp(lth__status_names[s], name))
            return s;
    return 0;
}

bool lth_status_final(int status)
{
    return status == LTH_STATUS_DONE || status == LTH_STATUS_RETURNED ||
           status == LTH_STATUS_NOT_ACCEPTED || status == LTH_STATUS_WITHDRAWN;
}

#define LTH__BIT(s) (1u << (s))
/* What may follow each status (index: the latest status, 0 = none). The
 * open states (processing, waiting for the applicant, paused, overdue) may
 * move among themselves and to a decision; OVERDUE is the procedure
 * system's mark and follows any open state once; RESULT_HANDED_OVER only
 * follows DONE; the rest are the end. */
#define LTH__OPEN_NEXT                                                                             \
    (LTH__BIT(LTH_STATUS_PROCESSING) | LTH__BIT(LTH_STATUS_SUPPLEMENT_REQUESTED) |                 \
     LTH__BIT(LTH_STATUS_FINANCIAL_OBLIGATION_REQUESTED) | LTH__BIT(LTH_STATUS_SUSPENDED) |        \
     LTH__BIT(LTH_STATUS_DONE) | LTH__BIT(LTH_STATUS_RETURNED) | LTH__BIT(LTH_STATUS_WITHDRAWN))
static const unsigned lth__next[LTH_STATUS_LAST + 1] = {
    /* Refused at reception: NOT_ACCEPTED; RETURNED is for an accepted one. */
    [0] = LTH__BIT(LTH_STATUS_RECEIVED) | LTH__BIT(LTH_STATUS_NOT_ACCEPTED),
    [LTH_STATUS_RECEIVED] =
        (LTH__OPEN_NEXT & ~LTH__BIT(LTH_STATUS_DONE)) | LTH__BIT(LTH_STATUS_OVERDUE),
    [LTH_STATUS_PROCESSING] =
        (LTH__OPEN_NEXT & ~LTH__BIT(LTH_STATUS_PROCESSING)) | LTH__BIT(LTH_STATUS_OVERDUE),
    [LTH_STATUS_SUPPLEMENT_REQUESTED] =
        (LTH__OPEN_NEXT & ~LTH__BIT(LTH_STATUS_SUPPLEMENT_REQUESTED) & ~LTH__BIT(LTH_STATUS_DONE)) |
        LTH__BIT(LTH_STATUS_OVERDUE),
    [LTH_STATUS_FINANCIAL_OBLIGATION_REQUESTED] =
        (LTH__OPEN_NEXT & ~LTH__BIT(LTH_STATUS_FINANCIAL_OBLIGATION_REQUESTED)) |
        LTH__BIT(LTH_STATUS_OVERDUE),
    [LTH_STATUS_SUSPENDED] =
        (LTH__OPEN_NEXT & ~LTH__BIT(LTH_STATUS_SUSPENDED) & ~LTH__BIT(LTH_STATUS_DONE)) |
        LTH__BIT(LTH_STATUS_OVERDUE),
    [LTH_STATUS_OVERDUE] = LTH__OPEN_NEXT,
    [LTH_STATUS_DONE] = LTH__BIT(LTH_STATUS_RESULT_HANDED_OVER),
};

bool lth_status_transition_allowed(int from, int to)
{
    if (from < 0 || from > LTH_STATUS_LAST || to < 1 || to > LTH_STATUS_LAST)
        return false;
    return (lth__next[from] & LTH__BIT(to)) != 0;
}

bool lth_status_reachable(int from, int to)
{
    if (from < 0 || from > LTH_STATUS_LAST || to < 1 || to > LTH_STATUS_LAST)
        return false;
    unsigned seen = 0, frontier = lth__next[from];
    while (frontier & ~seen) {
        seen |= frontier;
        unsigned next = 0;
        for (int s = 1; s <= LTH_STATUS_LAST; s++)
            if (frontier & LTH__BIT(s))
                next |= lth__next[s];
        frontier = next;
    }
    return (seen & LTH__BIT(to)) != 0;
}

int lth_status_transition_check(int from, int to, char *why, size_t why_size)
{
    if (lth_status_transition_allowed(from, to))
        return 0;
    if (!why || why_size == 0)
        return HUB_EINVAL;
    size_t o = 0;
    int n = snprintf(why, why_size, "%s cannot follow %s: ", lth_status_name(to),
                     from ? lth_status_name(from) : "a dossier not yet received");
    o = n > 0 && (size_t)n < why_size ? (size_t)n : why_size - 1;
    unsigned next = from >= 0 && from <= LTH_STATUS_LAST ? lth__next[from] : 0;
    if (!next) {
        snprintf(why + o, why_size - o, "%s is final", lth_status_name(from));
        return HUB_EINVAL;
    }
    n = snprintf(why + o, why_size - o, "after %s come", from ? lth_status_name(from) : "nothing");
    o += n > 0 && (size_t)n < why_size - o ? (size_t)n : 0;
    for (int s = 1; s <= LTH_STATUS_LAST && o < why_size - 1; s++) {
        if (!(next & LTH__BIT(s)))
            continue;
        n = snprintf(why + o, why_size - o, " %s", lth_status_name(s));
        o += n > 0 && (size_t)n < why_size - o ? (size_t)n : why_size - 1 - o;
    }
    return HUB_EINVAL;
}

lth_seq_verdict_t lth_seq_verdict(uint64_t last_applied, uint64_t incoming)
{
    if (incoming > last_applied)
        return LTH_SEQ_APPLY;
    return incoming == last_applied ? LTH_SEQ_DUPLICATE : LTH_SEQ_OLDER;
}

/* ---- identity ---- */

int lth_assurance_refusal(const lth_procedure_t *procedure, const lth_assurance_t *assurance,
                          char *out, size_t out_size)
{
    if (!procedure || !assurance || assurance->level >= procedure->required_assurance)
        return HUB_EINVAL;
    snprintf(out, out_size,
             "Trả hồ sơ: thủ tục yêu cầu tài khoản định danh điện tử mức độ %u (Nghị định "
             "59/2022/NĐ-CP), người nộp được xác thực ở mức %u (the procedure requires electronic "
             "identification level %u; the applicant was authenticated at level %u: log in with "
             "a level %u VNeID account or apply at the counter with the chip ID card)",
             procedure->required_assurance, assurance->level, procedure->required_assurance,
             assurance->level, procedure->required_assurance);
    return 0;
}

/* ---- the generator ---- */

static uint64_t lth__mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int lth_dossier_code_national(const char *agency_code, uint64_t at_us, uint64_t number,
                              char out[LTH_DOSSIER_CODE_MAX])
{
    size_t n = agency_code ? strlen(agency_code) : 0;
    if (n == 0 || n > 32 || number == 0 || number > 999999999u)
        return HUB_EINVAL;
    for (const char *p = agency_code; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.'))
            return HUB_EINVAL;
    time_t t = (time_t)(at_us / 1000000u) + 7 * 3600; /* Asia/Ho_Chi_Minh */
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return HUB_EINVAL;
    snprintf(out, LTH_DOSSIER_CODE_MAX, "%s-%02d%02d%02d-%06" PRIu64, agency_code, tm.tm_year % 100,
             tm.tm_mon + 1, tm.tm_mday, number);
    return 0;
}

int lth_dossier_code(uint64_t index, char out[LTH_DOSSIER_CODE_MAX])
{
    if (index == 0 || index > 999999999u)
        return HUB_EINVAL;
    snprintf(out, LTH_DOSSIER_CODE_MAX, "SYN-H26-%06" PRIu64, index);
    return 0;
}

int lth_dossier_generate(const lth_dossier_gen_t *gen, uint64_t index, lth_gen_dossier_t *out)
{
    if (!gen || !out || gen->population_citizens == 0 ||
        gen->population_citizens > LTH_CITIZEN_MAX - 1000 ||
        gen->invalid_percent + gen->unknown_percent > 100 || gen->low_assurance_percent > 100 ||
        gen->mismatch_percent > 100 || (gen->procedures && gen->n_procedures == 0))
        return HUB_EINVAL;
    memset(out, 0, sizeof *out);
    if (lth_dossier_code(index, out->code) != 0)
        return HUB_EINVAL;
    out->index = index;
    size_t n = gen->procedures ? gen->n_procedures : lth_procedure_count();
    if (n == 0)
        return HUB_EINVAL; /* no catalogue installed, or nothing in force */
    size_t pick = (size_t)((index - 1 + gen->seed) % n);
    out->procedure = gen->procedures ? gen->procedures[pick] : lth_procedure_at(pick);
    if (!out->procedure)
        return HUB_EINVAL;

    uint64_t h = lth__mix(gen->seed * 0x100000001b3ull ^ index);
    /* Steps of 37 visit every residue of 100 once per hundred dossiers, so
     * the shares hold for small runs too. */
    unsigned u = (unsigned)((index * 37u + gen->seed * 13u) % 100u);
    lth_citizen_t c;
    if (u < gen->invalid_percent) {
        out->applicant_kind = LTH_APPLICANT_INVALID_ID;
        if (lth_citizen_generate(gen->population_seed, (size_t)(h % gen->population_citizens),
                                 &c) != 0)
            return HUB_EINVAL;
        char *id = out->applicant_id;
        memcpy(id, c.personal_id, LTH_PID_LEN + 1);
        switch ((h >> 32) % 4) {
        case 0:
            id[LTH_PID_LEN - 1] = '\0';
            break; /* 11 digits */
        case 1:
            memcpy(id, "003", 3);
            break; /* no such province code */
        case 2:
            id[3] = '8';
            break; /* no such sex and century */
        default:
            id[LTH_PID_LEN - 1] = 'X';
            break; /* not a digit */
        }
    } else if (u < gen->invalid_percent + gen->unknown_percent) {
        out->applicant_kind = LTH_APPLICANT_UNKNOWN;
        if (lth_citizen_generate(gen->population_seed,
                                 gen->population_citizens + (size_t)(h % 1000), &c) != 0)
            return HUB_EINVAL;
        memcpy(out->applicant_id, c.personal_id, LTH_PID_LEN + 1);
    } else {
        out->applicant_kind = LTH_APPLICANT_CITIZEN;
        if (lth_citizen_generate(gen->population_seed, (size_t)(h % gen->population_citizens),
                                 &c) != 0)
            return HUB_EINVAL;
        memcpy(out->applicant_id, c.personal_id, LTH_PID_LEN + 1);
    }
    /* What the form says: the record of the person generated above. */
    snprintf(out->declared.full_name, sizeof out->declared.full_name, "%s", c.full_name);
    out->declared.date_of_birth = c.date_of_birth;
    out->declared.sex = (int)c.sex;
    snprintf(out->declared.residence, sizeof out->declared.residence, "%s", c.residence);
    unsigned w = (unsigned)((index * 59u + gen->seed * 17u + 31u) % 100u);
    if (out->applicant_kind == LTH_APPLICANT_CITIZEN && w < gen->mismatch_percent) {
        out->declared_wrong = true;
        out->declared.date_of_birth =
            lth_date_from_days(lth_date_to_days(c.date_of_birth) + 1 + (long)((h >> 40) % 27));
    }
    unsigned a = (unsigned)((index * 71u + gen->seed * 19u + 7u) % 100u);
    out->assurance.level = a < gen->low_assurance_percent ? 1 : 2;
    out->assurance.method =
        out->assurance.level == 2 && index % 3 == 0 ? LTH_AUTH_CHIP_CARD : LTH_AUTH_VNEID;
    explicit_bzero(&c, sizeof c);
    return 0;
}

/* ---- messages ---- */

int lth_status_change_encode(const lth_status_change_t *change, uint8_t **out, size_t *out_len)
{
    if (!change || !out || !out_len)
        return HUB_EINVAL;
    Lth__Domain__V1__DossierStatusChange m = LTH__DOMAIN__V1__DOSSIER_STATUS_CHANGE__INIT;
    m.dossier_code = (char *)change->dossier_code;
    m.status = (Lth__Domain__V1__DossierStatus)change->status;
    m.actor_member_id = (char *)change->actor;
    m.at_us = change->at_us;
    m.sequence = change->sequence;
    m.note = (char *)change->note;
    m.procedure_code = (char *)change->procedure_code;
    m.authority_member_id = (char *)change->authority;
    m.submitted_at_us = change->submitted_at_us;
    m.due_at_us = change->due_at_us;
    m.channel = (Lth__Domain__V1__Channel)change->channel;
    m.step = change->step;
    m.steps = change->steps;
    m.step_authority_member_id = (char *)change->step_authority;
    m.step_due_at_us = change->step_due_at_us;
    m.delegated_by_member_id = (char *)change->delegated_by;
    return hub_pb_pack(&m.base, out, out_len);
}

static const char *lth__status_change_read(const void *msg, void *dst)
{
    const Lth__Domain__V1__DossierStatusChange *m = msg;
    lth_status_change_t *out = dst;
    if (!m->dossier_code[0] ||
        !lth_domain_copy(out->dossier_code, sizeof out->dossier_code, m->dossier_code))
        return "dossier_code is empty or longer than 63 bytes";
    if ((int)m->status < LTH_STATUS_RECEIVED || (int)m->status > LTH_STATUS_LAST)
        return "status is not one of the portal's statuses (RECEIVED .. RESULT_HANDED_OVER)";
    if ((int)m->channel < 0 || (int)m->channel > LTH_CHANNEL_COUNTER)
        return "channel is not ONLINE or COUNTER";
    if (m->step > m->steps || (m->steps > 0 && m->step == 0))
        return "step must be 1 .. steps";
    if (m->sequence == 0)
        return "sequence must be 1 or more";
    if (!lth_domain_copy(out->actor, sizeof out->actor, m->actor_member_id) ||
        !lth_domain_copy(out->note, sizeof out->note, m->note) ||
        !lth_domain_copy(out->procedure_code, sizeof out->procedure_code, m->procedure_code) ||
        !lth_domain_copy(out->authority, sizeof out->authority, m->authority_member_id) ||
        !lth_domain_copy(out->step_authority, sizeof out->step_authority,
                         m->step_authority_member_id) ||
        !lth_domain_copy(out->delegated_by, sizeof out->delegated_by, m->delegated_by_member_id))
        return "a text field is too long";
    out->channel = (int)m->channel;
    out->step = m->step;
    out->steps = m->steps;
    out->step_due_at_us = m->step_due_at_us;
    out->status = (int)m->status;
    out->at_us = m->at_us;
    out->sequence = m->sequence;
    out->submitted_at_us = m->submitted_at_us;
    out->due_at_us = m->due_at_us;
    return NULL;
}

LTH_DOMAIN_DECODER(lth_status_change_decode, lth_status_change_t, "DossierStatusChange",
                   &lth__domain__v1__dossier_status_change__descriptor, lth__status_change_read)

int lth_dossier_encode(const lth_dossier_t *d, uint8_t **out, size_t *out_len)
{
    if (!d || !out || !out_len)
        return HUB_EINVAL;
    char uri[256], text[128];
    snprintf(uri, sizeof uri, "https://dvc.hanoi.example.invalid/ho-so/%s/to-khai.pdf",
             d->dossier_code);
    int text_len = snprintf(text, sizeof text, "to khai (synthetic) %s", d->dossier_code);
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const uint8_t *)text, (unsigned long long)text_len);
    Lth__Domain__V1__DocumentRef doc = LTH__DOMAIN__V1__DOCUMENT_REF__INIT;
    doc.uri = uri;
    doc.sha256.data = digest;
    doc.sha256.len = sizeof digest;
    doc.media_type = "application/pdf";
    doc.title = "Tờ khai (mẫu, dữ liệu tổng hợp)";
    doc.size_bytes = (uint64_t)text_len;
    Lth__Domain__V1__DocumentRef *docs[] = {&doc};

    Lth__Domain__V1__IdentityAssurance ia = LTH__DOMAIN__V1__IDENTITY_ASSURANCE__INIT;
    ia.level = d->assurance.level;
    ia.method = (Lth__Domain__V1__AuthMethod)d->assurance.method;
    ia.authenticated_at_us = d->assurance.at_us;

    Lth__Domain__V1__Dossier m = LTH__DOMAIN__V1__DOSSIER__INIT;
    m.applicant_assurance = &ia;
    m.dossier_code = (char *)d->dossier_code;
    m.procedure_code = (char *)d->procedure_code;
    m.applicant_personal_id = (char *)d->applicant_id;
    m.submitted_at_us = d->submitted_at_us;
    m.due_at_us = d->due_at_us;
    m.received_by_member_id = (char *)d->received_by;
    m.authority_member_id = (char *)d->authority;
    m.documents = docs;
    m.n_documents = 1;
    return hub_pb_pack(&m.base, out, out_len);
}

static const char *lth__dossier_read(const void *msg, void *dst)
{
    const Lth__Domain__V1__Dossier *m = msg;
    lth_dossier_t *out = dst;
    if (!m->dossier_code[0] ||
        !lth_domain_copy(out->dossier_code, sizeof out->dossier_code, m->dossier_code))
        return "dossier_code is empty or longer than 63 bytes";
    if (!lth_domain_copy(out->procedure_code, sizeof out->procedure_code, m->procedure_code) ||
        !lth_domain_copy(out->applicant_id, sizeof out->applicant_id, m->applicant_personal_id) ||
        !lth_domain_copy(out->received_by, sizeof out->received_by, m->received_by_member_id) ||
        !lth_domain_copy(out->authority, sizeof out->authority, m->authority_member_id))
        return "a text field is too long";
    const char *why = NULL;
    for (size_t i = 0; i < m->n_documents; i++)
        if (m->documents[i]->sha256.len != crypto_hash_sha256_BYTES)
            why = "a document's sha256 is not 32 bytes";
    out->submitted_at_us = m->submitted_at_us;
    out->due_at_us = m->due_at_us;
    out->documents = m->n_documents;
    if (m->applicant_assurance) {
        if (m->applicant_assurance->level > 2)
            why = "applicant_assurance.level is not 0, 1 or 2";
        out->assurance.level = m->applicant_assurance->level;
        out->assurance.method = (lth_auth_method_t)m->applicant_assurance->method;
        out->assurance.at_us = m->applicant_assurance->authenticated_at_us;
    }
    return why;
}

LTH_DOMAIN_DECODER(lth_dossier_decode, lth_dossier_t, "Dossier",
                   &lth__domain__v1__dossier__descriptor, lth__dossier_read)
