#include "hub_log.h"
#include "hub_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static volatile int hub__log_level = HUB_LOG_INFO;

void hub_log_set_level(hub_log_level_t level) { hub__log_level = (int)level; }
hub_log_level_t hub_log_get_level(void) { return (hub_log_level_t)hub__log_level; }

static const char *const hub__level_names[] = {"debug", "info", "warn", "error"};

const char *hub_log_level_name(hub_log_level_t level)
{
    if ((int)level < 0 || level > HUB_LOG_ERROR)
        return "unknown";
    return hub__level_names[level];
}

int hub_log_parse_level(const char *text, hub_log_level_t *level_out)
{
    for (int i = 0; i <= HUB_LOG_ERROR; i++) {
        if (strcmp(text, hub__level_names[i]) == 0) {
            *level_out = (hub_log_level_t)i;
            return 0;
        }
    }
    return HUB_EINVAL;
}

void hub_log(hub_log_level_t level, const char *comp, const char *msg,
             const char *kvfmt, ...)
{
    if ((int)level < hub__log_level)
        return;
    char line[2048];
    struct timeval now;
    gettimeofday(&now, NULL);
    struct tm utc;
    gmtime_r(&now.tv_sec, &utc);
    int len = snprintf(line, sizeof line,
                       "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s msg=\"",
                       utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                       utc.tm_min, utc.tm_sec, (long)(now.tv_usec / 1000),
                       hub_log_level_name(level), comp);
    /* Quote the message: a double quote or newline inside it would break
     * the one-event-per-line rule. */
    for (const char *p = msg; *p && len < (int)sizeof line - 8; p++) {
        if (*p == '"' || *p == '\\')
            line[len++] = '\\';
        line[len++] = (*p == '\n') ? ' ' : *p;
    }
    line[len++] = '"';
    if (kvfmt && *kvfmt && len < (int)sizeof line - 2) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, kvfmt);
        int n = vsnprintf(line + len, sizeof line - (size_t)len - 1, kvfmt, ap);
        va_end(ap);
        if (n > 0)
            len += n < (int)(sizeof line - (size_t)len - 1) ? n
                                                             : (int)(sizeof line - (size_t)len - 2);
    }
    line[len++] = '\n';
    fwrite(line, 1, (size_t)len, stderr);
}
