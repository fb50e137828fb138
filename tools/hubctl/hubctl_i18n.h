/* hubctl_i18n — hubctl's operator texts (status, members, flows, queues and
 * dlq tables) in Vietnamese by default, English when asked.
 *
 * The texts live in the catalogues i18n/hubctl.vi.def and
 * i18n/hubctl.en.def, one per language, never in the code. The language:
 * LC_ALL, LC_MESSAGES or LANG (the first one set) when it starts with "en"
 * or "vi"; else the hubctl config key lang; else Vietnamese. --json output
 * is the API's own and never translated.
 *
 * Numbers and times follow the language: 1.234 and 3,5 in Vietnamese,
 * 1,234 and 3.5 in English; times are Vietnam time (UTC+7, no daylight
 * saving), dd/mm/yyyy in Vietnamese and ISO 8601 with +07:00 in English.
 */
#ifndef HUBCTL_I18N_H
#define HUBCTL_I18N_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
#define M(id, text) id,
#include "i18n/hubctl.en.def"
#undef M
    CTL_M__COUNT
} ctl_msg_t;

/* Picks the language from the environment, else config_lang ("vi", "en",
 * NULL or ""). Call once, before any ctl_tr(). */
void ctl_lang_init(const char *config_lang);
bool ctl_lang_is_en(void);
/* The text of id in the chosen language (English if the Vietnamese
 * catalogue lacks it). */
const char *ctl_tr(ctl_msg_t id);
/* A whole number with the language's thousands separator. */
void ctl_fmt_int(unsigned long long n, char *out, size_t size);
/* A number with `decimals` decimals and the language's decimal mark. */
void ctl_fmt_fixed(double v, int decimals, char *out, size_t size);
/* A wall-clock time in microseconds since 1970 as Vietnam time. */
void ctl_fmt_time(uint64_t us, char *out, size_t size);

#endif
