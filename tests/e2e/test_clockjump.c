/* Clock jumps: hubd runs under libfaketime, whose wall clock the test moves
 * two hours forward and then two hours back while messages flow. Timeouts
 * use the monotonic clock (left alone), so nothing stalls; TTLs are long
 * enough that nothing expires; the audit log still verifies. */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define RECEIVER "VN/GOV/VPCP/DVCQG"
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"

static hubfix_t fix;

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* hubd's wall clock minus ours, in seconds: SIGUSR1 makes hubd log "log
 * level changed" (SIGUSR2 sets the level back), and the line's ts= is
 * hubd's gettimeofday(), which libfaketime moves. */
static long hubd_clock_offset_s(void)
{
    char *text = tk_read_file(fix.hubd_log);
    int before = count_of(text, "msg=\"log level changed\"");
    free(text);
    ck_assert_int_eq(kill(fix.hubd, SIGUSR1), 0);
    char *line = NULL;
    for (int w = 0; w < 100 && !line; w++) {
        text = tk_read_file(fix.hubd_log);
        if (count_of(text, "msg=\"log level changed\"") > before) {
            /* The newest such line. */
            char *p = text, *last = NULL;
            while ((p = strstr(p, "msg=\"log level changed\"")) != NULL)
                last = p++;
            while (last > text && last[-1] != '\n')
                last--;
            line = strndup(last, strcspn(last, "\n"));
        }
        free(text);
        if (!line)
            tk_sleep_ms(20);
    }
    time_t ours = time(NULL);
    ck_assert_msg(line != NULL, "hubd did not log its level change; see %s", fix.hubd_log);
    ck_assert_int_eq(kill(fix.hubd, SIGUSR2), 0);
    struct tm tm = {0};
    char *ts = strstr(line, "ts=");
    ck_assert_msg(ts && sscanf(ts + 3, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                               &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6,
                  "no ts= in: %s", line);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    free(line);
    return (long)(timegm(&tm) - ours);
}

START_TEST(wall_clock_jumps_lose_nothing)
{
    if (access(FAKETIME_LIB, R_OK) != 0)
        tk_skip("clockjump: %s missing (Debian package libfaketime)", FAKETIME_LIB);
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, SENDER, RECEIVER);
    char offset[PATH_MAX];
    snprintf(offset, sizeof offset, "%s/faketime", fix.dir);
    tk_write_file(offset, "+0\n");
    setenv("FAKETIME_TIMESTAMP_FILE", offset, 1);
    setenv("FAKETIME_NO_CACHE", "1", 1);
    setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
    hubfix_start_preloaded(&fix, FAKETIME_LIB);
    char record[PATH_MAX], conf[PATH_MAX + 64];
    snprintf(record, sizeof record, "%s/received.txt", fix.dir);
    snprintf(conf, sizeof conf, "plugin.file = %s\n", record);
    hubfix_start_adapter(&fix, RECEIVER, "recorder", conf);
    adp_client_t *s = hubfix_connect(&fix, SENDER);
    const char *jumps[] = {"+0\n", "+2h\n", "-2h\n"};
    const long expected_s[] = {0, 7200, -7200};
    for (int phase = 0; phase < 3; phase++) {
        tk_write_file(offset, jumps[phase]);
        /* The clock really moved (a libfaketime that is not loaded, or that
         * ignores the file, would leave it where it was). */
        long moved = hubd_clock_offset_s();
        printf("clockjump: phase %d: hubd's wall clock is %+lds from ours\n", phase, moved);
        ck_assert_msg(labs(moved - expected_s[phase]) <= 60,
                      "phase %d: hubd's clock is %+lds from ours, expected %+lds", phase, moved,
                      expected_s[phase]);
        for (int i = 0; i < 100; i++) {
            char payload[32];
            int len = snprintf(payload, sizeof payload, "clock %d", phase * 100 + i);
            ck_assert_int_eq(adp_post_event(s, RECEIVER, "record/v1", "text/plain", payload,
                                            (size_t)len, 0, NULL),
                             0);
        }
        for (int w = 0; w < 100 && adp_outbox_size(s) > 0; w++)
            adp_run(s, 50);
        ck_assert_msg(adp_outbox_size(s) == 0, "phase %d: not ACKed: %s", phase,
                      adp_last_error(s));
        for (int w = 0; w < 100 && tk_count_lines(record) < (phase + 1) * 100; w++)
            tk_sleep_ms(50);
        ck_assert_int_eq(tk_count_lines(record), (phase + 1) * 100);
    }
    tk_sleep_ms(1500); /* heartbeats and redelivery timers keep running */
    ck_assert_int_eq(tk_count_lines(record), 300);
    ck_assert(hubfix_hub_alive(&fix));
    adp_close(&s);
    hubfix_stop(&fix);
    char audit[PATH_MAX], key[PATH_MAX];
    snprintf(audit, sizeof audit, "%s/data/audit", fix.dir);
    snprintf(key, sizeof key, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    char *argv[] = {(char *)tk_bin("hubctl"), "audit", "verify", audit, "--hub-key", key, NULL};
    TK_RUN_SAYS(argv, 10000, 0, "intact");
    hubfix_cleanup(&fix);
}
END_TEST

TK_MAIN("e2e_clockjump", TK_CASE("clockjump", NULL, NULL, 120, wall_clock_jumps_lose_nothing))
