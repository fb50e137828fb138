#include "lth_citizen.h"

#include "hub_error.h"
#include "lth_province.h"

#include <stdio.h>
#include <string.h>

/* Names from /work/shared/data/names.tsv. Surname weights are the TSV's
 * approx_share_percent × 10; they add up to 976, not 1000 (the TSV lists the
 * common surnames only), so a surname's chance is its weight / 976: Nguyễn
 * about 39%. Middle and given names are equally likely within a sex. */
typedef struct {
    const char *name;
    unsigned weight;
} lth__weighted_t;

static const lth__weighted_t lth__surnames[] = {
    {"Nguyễn", 380}, {"Trần", 110}, {"Lê", 95},    {"Phạm", 70}, {"Hoàng", 51}, {"Huỳnh", 51},
    {"Phan", 45},    {"Vũ", 39},    {"Võ", 39},    {"Đặng", 21}, {"Bùi", 20},   {"Đỗ", 14},
    {"Hồ", 13},      {"Ngô", 13},   {"Dương", 10}, {"Lý", 5},
};
static const char *const lth__middle_male[] = {"Văn", "Đức", "Minh", "Quang", "Hữu", "Xuân"};
static const char *const lth__middle_female[] = {"Thị", "Ngọc", "Thu", "Thanh", "Phương", "Minh"};
static const char *const lth__given_male[] = {"Anh",  "Hùng", "Dũng", "Tuấn", "Nam",   "Huy",
                                              "Long", "Hải",  "Sơn",  "Khoa", "Thắng", "Phúc"};
static const char *const lth__given_female[] = {"Hương", "Lan",  "Linh", "Trang", "Mai",  "Hà",
                                                "Hoa",   "Thảo", "Yến",  "Thủy",  "Ngân", "Vy"};

/* Urban districts of Hà Nội, for synthetic street addresses in the city (as on
 * the reference date: district-level units were abolished on 1 July 2025). */
static const char *const lth__hanoi_districts[] = {
    "Ba Đình",      "Hoàn Kiếm", "Tây Hồ",     "Long Biên",   "Cầu Giấy",    "Đống Đa",
    "Hai Bà Trưng", "Hoàng Mai", "Thanh Xuân", "Nam Từ Liêm", "Bắc Từ Liêm", "Hà Đông"};

#define LTH__COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Multiplier of the sequence permutation: odd and not a multiple of 5, so
 * coprime with 10^6, so index -> (index * M + offset) mod 10^6 is a bijection. */
#define LTH__SEQ_MULTIPLIER 737717u
#define LTH__SEQ_MODULUS 1000000u

/* splitmix64: a small, well-mixed generator that is the same everywhere. */
typedef struct {
    uint64_t state;
} lth__rng_t;

static uint64_t lth__mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t lth__next(lth__rng_t *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return lth__mix(r->state);
}

/* Uniform in [0, n) for n > 0 (the modulo bias is below 2^-40 here). */
static uint32_t lth__below(lth__rng_t *r, uint32_t n) { return (uint32_t)(lth__next(r) % n); }

static const char *lth__pick_surname(lth__rng_t *r)
{
    unsigned total = 0;
    for (size_t i = 0; i < LTH__COUNT(lth__surnames); i++)
        total += lth__surnames[i].weight;
    unsigned x = lth__below(r, total);
    for (size_t i = 0; i < LTH__COUNT(lth__surnames); i++) {
        if (x < lth__surnames[i].weight)
            return lth__surnames[i].name;
        x -= lth__surnames[i].weight;
    }
    return lth__surnames[0].name;
}

/* Age in whole years on the reference date: the working-age population is
 * roughly flat, the old thin out. Weights per year of age. */
static int lth__pick_age(lth__rng_t *r)
{
    const int young = 60, middle = 15, old = 20; /* ages 0-59, 60-74, 75-94 */
    const uint32_t w_young = 10, w_middle = 6, w_old = 2;
    uint32_t total = young * w_young + middle * w_middle + old * w_old;
    uint32_t x = lth__below(r, total);
    if (x < young * w_young)
        return (int)(x / w_young);
    x -= young * w_young;
    if (x < middle * w_middle)
        return young + (int)(x / w_middle);
    x -= middle * w_middle;
    return young + middle + (int)(x / w_old);
}

static void lth__address(lth__rng_t *r, const lth_province_t *province, bool in_hanoi, char *out)
{
    if (in_hanoi) {
        snprintf(out, LTH_CITIZEN_ADDRESS_MAX, "Số %u, ngõ %u, tổ dân phố %u, quận %s, Hà Nội",
                 1 + lth__below(r, 199), 1 + lth__below(r, 400), 1 + lth__below(r, 40),
                 lth__hanoi_districts[lth__below(r, LTH__COUNT(lth__hanoi_districts))]);
    } else if (province->city) {
        snprintf(out, LTH_CITIZEN_ADDRESS_MAX, "Số %u, tổ dân phố %u, thành phố %s",
                 1 + lth__below(r, 299), 1 + lth__below(r, 60), province->name);
    } else {
        snprintf(out, LTH_CITIZEN_ADDRESS_MAX, "Thôn %u, tỉnh %s", 1 + lth__below(r, 20),
                 province->name);
    }
}

/* A person's name of the given sex, with this surname (NULL: drawn). */
static void lth__name(lth__rng_t *r, bool male, const char *surname, char *out)
{
    if (!surname)
        surname = lth__pick_surname(r);
    const char *middle = male ? lth__middle_male[lth__below(r, LTH__COUNT(lth__middle_male))]
                              : lth__middle_female[lth__below(r, LTH__COUNT(lth__middle_female))];
    const char *given = male ? lth__given_male[lth__below(r, LTH__COUNT(lth__given_male))]
                             : lth__given_female[lth__below(r, LTH__COUNT(lth__given_female))];
    snprintf(out, LTH_CITIZEN_NAME_MAX, "%s %s %s", surname, middle, given);
}

/* The person's own part of the record (the fields before households were
 * modelled, drawn in the same order so that they stay what they were), and
 * the stream to draw the rest from. */
static int lth__generate_base(uint64_t seed, size_t index, lth_citizen_t *out, lth__rng_t *rng)
{
    memset(out, 0, sizeof *out);
    /* One stream per (seed, index): no state is shared between citizens, so
     * any one of them can be rebuilt on its own. */
    lth__rng_t r = {lth__mix(seed ^ 0x4c54482d504f5031ULL) ^ lth__mix((uint64_t)index + 1)};
    const lth_date_t ref = LTH_CITIZEN_REFERENCE_DATE;

    out->sex = lth__below(&r, 2) == 0 ? LTH_SEX_MALE : LTH_SEX_FEMALE;
    bool male = out->sex == LTH_SEX_MALE;
    const char *surname = lth__pick_surname(&r);
    const char *middle = male ? lth__middle_male[lth__below(&r, LTH__COUNT(lth__middle_male))]
                              : lth__middle_female[lth__below(&r, LTH__COUNT(lth__middle_female))];
    const char *given = male ? lth__given_male[lth__below(&r, LTH__COUNT(lth__given_male))]
                             : lth__given_female[lth__below(&r, LTH__COUNT(lth__given_female))];
    snprintf(out->full_name, sizeof out->full_name, "%s %s %s", surname, middle, given);

    /* Birth date: a day of the birth year, not after the reference date. */
    int year = ref.year - lth__pick_age(&r);
    long first = lth_date_to_days((lth_date_t){year, 1, 1});
    long last =
        year == ref.year ? lth_date_to_days(ref) : lth_date_to_days((lth_date_t){year, 12, 31});
    out->date_of_birth =
        lth_date_from_days(first + (long)lth__below(&r, (uint32_t)(last - first + 1)));

    /* Birth registered in Hà Nội for about half (this is Hà Nội's system),
     * anywhere in the country for the rest. */
    const lth_province_t *birth =
        lth__below(&r, 2) == 0 ? lth_province_find(LTH_PROVINCE_HANOI)
                               : lth_province_at(lth__below(&r, (uint32_t)lth_province_count()));
    memcpy(out->birth_province_code, birth->code, 4);

    uint32_t offset = (uint32_t)(lth__mix(seed) % LTH__SEQ_MODULUS);
    uint32_t sequence =
        (uint32_t)(((uint64_t)index * LTH__SEQ_MULTIPLIER + offset) % LTH__SEQ_MODULUS);
    if (lth_pid_compose(birth->code, out->sex, out->date_of_birth.year, sequence,
                        out->personal_id) != 0)
        return HUB_EINVAL; /* not reached: every part is in range by construction */

    /* Three in four live in Hà Nội, the others where they were born. */
    bool lives_in_hanoi = lth__below(&r, 4) != 0 || !strcmp(birth->code, LTH_PROVINCE_HANOI);
    lth__address(&r, birth, lives_in_hanoi, out->residence);

    /* The record: created when the database was filled (from 1 July 2021,
     * over six months) or at birth registration (within 60 days) for the
     * younger; then, for about 3 in 10, one move of residence. */
    long ref_days = lth_date_to_days(ref);
    long born = lth_date_to_days(out->date_of_birth);
    long start = lth_date_to_days((lth_date_t){2021, 7, 1});
    long created =
        born < start ? start + (long)lth__below(&r, 184) : born + (long)lth__below(&r, 61);
    if (created > ref_days)
        created = ref_days;
    out->created_on = lth_date_from_days(created);
    out->changed_on = out->created_on;
    if (lth__below(&r, 10) < 3 && created < ref_days) {
        out->changed_on =
            lth_date_from_days(created + 1 + (long)lth__below(&r, (uint32_t)(ref_days - created)));
        lth__address(&r, birth, !lives_in_hanoi || lth__below(&r, 2) == 0, out->previous_residence);
    }
    *rng = r;
    return 0;
}

/* Whether citizen `index` heads a household: about one in three adults
 * (every adult at index 0), decided from the seed, the index and the
 * person's own record, so that members and head agree. */
static bool lth__heads(uint64_t seed, size_t index, const lth_citizen_t *base)
{
    if (LTH_CITIZEN_REFERENCE_DATE.year - base->date_of_birth.year < 18)
        return false;
    return index == 0 || lth__mix(seed ^ 0x484f5553454844ULL ^ lth__mix((uint64_t)index)) % 3 == 0;
}

static lth_relationship_t lth__relationship(lth__rng_t *r, const lth_citizen_t *head,
                                            const lth_citizen_t *me)
{
    int older = me->date_of_birth.year - head->date_of_birth.year; /* head older by */
    int my_age = LTH_CITIZEN_REFERENCE_DATE.year - me->date_of_birth.year;
    if (older >= 45)
        return LTH_REL_GRANDCHILD;
    if (older >= 18)
        return LTH_REL_CHILD;
    if (older <= -45)
        return LTH_REL_GRANDPARENT;
    if (older <= -18)
        return LTH_REL_PARENT;
    if (my_age >= 18 && me->sex != head->sex && lth__below(r, 10) < 7)
        return LTH_REL_SPOUSE;
    return older < 15 && older > -15 ? LTH_REL_SIBLING : LTH_REL_OTHER;
}

int lth_citizen_generate(uint64_t seed, size_t index, lth_citizen_t *out)
{
    if (!out || index >= LTH_CITIZEN_MAX)
        return HUB_EINVAL;
    lth__rng_t r;
    int rc = lth__generate_base(seed, index, out, &r);
    if (rc != 0)
        return rc;
    const lth_date_t ref = LTH_CITIZEN_REFERENCE_DATE;
    char surname[LTH_CITIZEN_NAME_MAX];
    snprintf(surname, sizeof surname, "%s", out->full_name);
    char *space = strchr(surname, ' ');
    if (space)
        *space = '\0';

    /* Temporary residence: about one in seven, in Hà Nội, for up to two
     * years past the reference date. */
    if (lth__below(&r, 7) == 0) {
        lth__address(&r, lth_province_find(LTH_PROVINCE_HANOI), true, out->temporary_residence);
        out->temporary_until =
            lth_date_from_days(lth_date_to_days(ref) + 30 + (long)lth__below(&r, 700));
    }
    /* Parents: the father's surname is the person's own. */
    lth__name(&r, true, surname, out->father_name);
    lth__name(&r, false, NULL, out->mother_name);

    /* The household: the nearest head at or below this index. */
    lth_citizen_t head;
    size_t head_index = index;
    bool found = false;
    for (size_t back = 0; back <= LTH_CITIZEN_HOUSEHOLD_SPAN && back <= index && !found; back++) {
        lth__rng_t ignored;
        head_index = index - back;
        if (back == 0)
            found = lth__heads(seed, index, out);
        else if (lth__generate_base(seed, head_index, &head, &ignored) == 0)
            found = lth__heads(seed, head_index, &head);
    }
    if (!found || head_index == index) {
        memcpy(out->head_personal_id, out->personal_id, sizeof out->head_personal_id);
        memcpy(out->head_full_name, out->full_name, sizeof out->head_full_name);
        out->relationship = LTH_REL_HEAD;
        return 0;
    }
    memcpy(out->head_personal_id, head.personal_id, sizeof out->head_personal_id);
    memcpy(out->head_full_name, head.full_name, sizeof out->head_full_name);
    out->relationship = lth__relationship(&r, &head, out);
    if (out->relationship == LTH_REL_SPOUSE)
        memcpy(out->spouse_name, head.full_name, sizeof out->spouse_name);
    else if (out->relationship == LTH_REL_CHILD)
        memcpy(head.sex == LTH_SEX_MALE ? out->father_name : out->mother_name, head.full_name,
               sizeof out->father_name);
    /* Members live at the head's permanent residence and moved with it. */
    memcpy(out->residence, head.residence, sizeof out->residence);
    if (head.previous_residence[0] && lth_date_cmp(head.changed_on, out->created_on) > 0) {
        memcpy(out->previous_residence, head.previous_residence, sizeof out->previous_residence);
        out->changed_on = head.changed_on;
    } else {
        memset(out->previous_residence, 0, sizeof out->previous_residence);
        out->changed_on = out->created_on;
    }
    return 0;
}

int lth_citizen_as_of(const lth_citizen_t *record, lth_date_t date, lth_citizen_t *out)
{
    if (!record || !out)
        return HUB_EINVAL;
    if (lth_date_cmp(date, record->created_on) < 0)
        return HUB_ENOTFOUND;
    if (out != record)
        *out = *record;
    if (lth_date_cmp(date, record->changed_on) < 0 && record->previous_residence[0]) {
        memmove(out->residence, out->previous_residence, sizeof out->residence);
        out->previous_residence[0] = '\0';
        out->changed_on = out->created_on;
    }
    return 0;
}
