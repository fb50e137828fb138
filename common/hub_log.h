/* hub_log — structured logs, one logfmt line per event, on stderr.
 *
 * Every line has ts, level, comp (the component) and msg; callers add their
 * own key=value pairs. Never pass payloads, secret keys or personal data
 * (such as personal ID numbers) to these functions: logs are not protected.
 * The level can be changed at run time (hubd does so on SIGUSR1/SIGUSR2).
 * Under systemd (stderr is the stream JOURNAL_STREAM names) each line
 * starts with its syslog priority, "<3>" to "<7>", which journald strips
 * and records, so that `journalctl -p warning` selects warnings and errors.
 */
#ifndef HUB_LOG_H
#define HUB_LOG_H

typedef enum {
    HUB_LOG_DEBUG = 0,
    HUB_LOG_INFO = 1,
    HUB_LOG_WARN = 2,
    HUB_LOG_ERROR = 3
} hub_log_level_t;

void hub_log_set_level(hub_log_level_t level);
hub_log_level_t hub_log_get_level(void);
/* Parses "debug", "info", "warn" or "error"; returns 0 or HUB_EINVAL. */
int hub_log_parse_level(const char *text, hub_log_level_t *level_out);
const char *hub_log_level_name(hub_log_level_t level);

/* Writes `ts=… level=… comp=<comp> msg="<msg>" <kv…>`; kvfmt may be NULL. */
void hub_log(hub_log_level_t level, const char *comp, const char *msg,
             const char *kvfmt, ...)
    __attribute__((format(printf, 4, 5)));

#define HUB_DEBUG(comp, msg, ...) hub_log(HUB_LOG_DEBUG, comp, msg, __VA_ARGS__)
#define HUB_INFO(comp, msg, ...) hub_log(HUB_LOG_INFO, comp, msg, __VA_ARGS__)
#define HUB_WARN(comp, msg, ...) hub_log(HUB_LOG_WARN, comp, msg, __VA_ARGS__)
#define HUB_ERROR(comp, msg, ...) hub_log(HUB_LOG_ERROR, comp, msg, __VA_ARGS__)

#endif
