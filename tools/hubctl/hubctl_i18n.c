#include "hubctl_i18n.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const ctl_catalogue_en[CTL_M__COUNT] = {
#define M(id, text) [id] = text,
#include "i18n/hubctl.en.def"
#undef M
};

static const char *const ctl_catalogue_vi[CTL_M__COUNT] = {
#define M(id, text) [id] = text,
#include "i18n/hubctl.vi.def"
#undef M
};

static bool ctl_en;

static int ctl_lang_of(const char *value)
{
    if (!value || !*value)
        return -1;
    if (!strncmp(value, "en", 2))
        return 1;
    if (!strncmp(value, "vi", 2))
        return 0;
    return -1;
}

void ctl_lang_init(const char *config_lang)
{
    /* POSIX order: the first of these that is set (and not empty) decides. */
    static const char *const vars[] = {"LC_ALL", "LC_MESSAGES", "LANG"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            int en = ctl_lang_of(v);
            if (en >= 0) {
                ctl_en = en == 1;
                return;
            }
            break; /* C, POSIX, fr_FR...: not a language we have */
        }
    }
    ctl_en = ctl_lang_of(config_lang) == 1;
}

bool ctl_lang_is_en(void) { return ctl_en; }

const char *ctl_tr(ctl_msg_t id)
{
    if ((unsigned)id >= CTL_M__COUNT)
        return "";
    const char *text = ctl_en ? ctl_catalogue_en[id] : ctl_catalogue_vi[id];
    return text ? text : ctl_catalogue_en[id];
}

void ctl_fmt_int(unsigned long long n, char *out, size_t size)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", n);
    char sep = ctl_en ? ',' : '.';
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = sep;
        out[o++] = digits[i];
    }
    if (size)
        out[o < size ? o : size - 1] = '\0';
}

/* Negative figures do not occur here (counts, sizes, durations). */
void ctl_fmt_fixed(double v, int decimals, char *out, size_t size)
{
    char plain[64];
    snprintf(plain, sizeof plain, "%.*f", decimals, v < 0 ? 0 : v);
    /* The whole part grouped like ctl_fmt_int, then the decimals. */
    char *dot = strchr(plain, '.');
    if (dot)
        *dot = '\0';
    char whole[48];
    ctl_fmt_int(strtoull(plain, NULL, 10), whole, sizeof whole);
    snprintf(out, size, "%s%s%s", whole, dot ? (ctl_en ? "." : ",") : "", dot ? dot + 1 : "");
}

void ctl_fmt_time(uint64_t us, char *out, size_t size)
{
    /* Asia/Ho_Chi_Minh is UTC+7 all year: no time zone database needed. */
    time_t t = (time_t)(us / 1000000u) + 7 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, ctl_en ? "%Y-%m-%dT%H:%M:%S+07:00" : "%H:%M:%S %d/%m/%Y", &tm);
}
