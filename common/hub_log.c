#include "hub_log.h"
#include "hub_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int hub__log_level = HUB_LOG_INFO;

void hub_log_set_level(hub_log_level_t level) { hub__log_level = (int)level; }
hub_log_level_t hub_log_get_level(void) { return (hub_log_level_t)hub__log_level; }

static const char *const hub__level_names[] = {"debug", "info", "warn", "error"};
/* syslog(3) priorities: LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR. */
static const char hub__priority[] = {'7', '6', '4', '3'};
static volatile int hub__journal = -1; /* -1: not looked at yet */

/* systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connected to
 * stdout/stderr; when stderr is that stream, journald reads a "<N>" prefix
 * as the line's priority (journalctl -p warning). Anywhere else (a
 * terminal, a file, a test reading the lines) the lines stay plain logfmt. */
static int hub__under_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

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
    if (hub__journal < 0)
        hub__journal = hub__under_journal();
    int len = 0;
    if (hub__journal && (int)level >= 0 && level <= HUB_LOG_ERROR) {
        line[len++] = '<';
        line[len++] = hub__priority[level];
        line[len++] = '>';
    }
    len += snprintf(line + len, sizeof line - (size_t)len,
                    "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s msg=\"",
                    utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                    utc.tm_sec, (long)(now.tv_usec / 1000), hub_log_level_name(level), comp);
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
        /* va_start just above: clang 14's analyzer misreads it (llvm bug 41311). */
        int n = vsnprintf(line + len, sizeof line - (size_t)len - 1, kvfmt, // NOLINT(clang-analyzer-valist.Uninitialized)
                          ap);
        va_end(ap);
        if (n > 0)
            len += n < (int)(sizeof line - (size_t)len - 1) ? n
                                                             : (int)(sizeof line - (size_t)len - 2);
    }
    line[len++] = '\n';
    fwrite(line, 1, (size_t)len, stderr);
}
