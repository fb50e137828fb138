#include "lth_province.h"

#include <string.h>

/* Generated from /work/shared/data/provinces.tsv (63 rows, in code order) with
 *   awk -F'\t' 'NR>1{printf "    {\"%s\", \"%s\", %s},\n", $1, $2, \
 *       ($1=="001"||$1=="031"||$1=="048"||$1=="079"||$1=="092") ? "true" : "false"}'
 * The `city` flag marks the five centrally governed cities; the TSV does not
 * hold it. Codes are those printed in personal ID numbers, which keep the
 * province of birth registration even where provinces were later merged. */
static const lth_province_t lth__provinces[] = {
    {"001", "Hà Nội", true},
    {"002", "Hà Giang", false},
    {"004", "Cao Bằng", false},
    {"006", "Bắc Kạn", false},
    {"008", "Tuyên Quang", false},
    {"010", "Lào Cai", false},
    {"011", "Điện Biên", false},
    {"012", "Lai Châu", false},
    {"014", "Sơn La", false},
    {"015", "Yên Bái", false},
    {"017", "Hòa Bình", false},
    {"019", "Thái Nguyên", false},
    {"020", "Lạng Sơn", false},
    {"022", "Quảng Ninh", false},
    {"024", "Bắc Giang", false},
    {"025", "Phú Thọ", false},
    {"026", "Vĩnh Phúc", false},
    {"027", "Bắc Ninh", false},
    {"030", "Hải Dương", false},
    {"031", "Hải Phòng", true},
    {"033", "Hưng Yên", false},
    {"034", "Thái Bình", false},
    {"035", "Hà Nam", false},
    {"036", "Nam Định", false},
    {"037", "Ninh Bình", false},
    {"038", "Thanh Hóa", false},
    {"040", "Nghệ An", false},
    {"042", "Hà Tĩnh", false},
    {"044", "Quảng Bình", false},
    {"045", "Quảng Trị", false},
    {"046", "Thừa Thiên Huế", false},
    {"048", "Đà Nẵng", true},
    {"049", "Quảng Nam", false},
    {"051", "Quảng Ngãi", false},
    {"052", "Bình Định", false},
    {"054", "Phú Yên", false},
    {"056", "Khánh Hòa", false},
    {"058", "Ninh Thuận", false},
    {"060", "Bình Thuận", false},
    {"062", "Kon Tum", false},
    {"064", "Gia Lai", false},
    {"066", "Đắk Lắk", false},
    {"067", "Đắk Nông", false},
    {"068", "Lâm Đồng", false},
    {"070", "Bình Phước", false},
    {"072", "Tây Ninh", false},
    {"074", "Bình Dương", false},
    {"075", "Đồng Nai", false},
    {"077", "Bà Rịa - Vũng Tàu", false},
    {"079", "Hồ Chí Minh", true},
    {"080", "Long An", false},
    {"082", "Tiền Giang", false},
    {"083", "Bến Tre", false},
    {"084", "Trà Vinh", false},
    {"086", "Vĩnh Long", false},
    {"087", "Đồng Tháp", false},
    {"089", "An Giang", false},
    {"091", "Kiên Giang", false},
    {"092", "Cần Thơ", true},
    {"093", "Hậu Giang", false},
    {"094", "Sóc Trăng", false},
    {"095", "Bạc Liêu", false},
    {"096", "Cà Mau", false},
};

#define LTH__PROVINCE_COUNT (sizeof lth__provinces / sizeof lth__provinces[0])

const lth_province_t *lth_province_find(const char *digits)
{
    if (!digits)
        return NULL;
    /* 63 entries in code order: a binary search on the 3-character prefix. */
    size_t lo = 0, hi = LTH__PROVINCE_COUNT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(digits, lth__provinces[mid].code, 3);
        if (c == 0)
            return &lth__provinces[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t lth_province_count(void) { return LTH__PROVINCE_COUNT; }

const lth_province_t *lth_province_at(size_t i)
{
    return i < LTH__PROVINCE_COUNT ? &lth__provinces[i] : NULL;
}
