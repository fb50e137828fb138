/* Clock jumps: hubd runs under libfaketime, whose wall clock the test moves
 * two hours forward and then two hours back while messages flow. Timeouts
 * use the monotonic clock (left alone), so nothing stalls; TTLs are long
 * enough that nothing expires; the audit log still verifies. */
#include "hub_error.h"
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define RECEIVER "VN/GOV/VPCP/DVCQG"
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"

static hubfix_t fix;

static int count_lines(const char *path)
{
    char *text = tk_read_file(path);
    int n = 0;
    for (char *p = text; p && *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

START_TEST(wall_clock_jumps_lose_nothing)
{
#if defined(__SANITIZE_ADDRESS__)
    printf("clockjump: skipped under AddressSanitizer (libfaketime cannot preload before it)\n");
    return;
#endif
    if (access(FAKETIME_LIB, R_OK) != 0) {
        printf("clockjump: skipped: %s missing (Debian package libfaketime)\n", FAKETIME_LIB);
        return;
    }
    hubfix_init(&fix, NULL);
    hubfix_add_member(&fix, SENDER, true);
    hubfix_add_member(&fix, RECEIVER, true);
    char offset[PATH_MAX];
    snprintf(offset, sizeof offset, "%s/faketime", fix.dir);
    tk_write_file(offset, "+0\n");
    setenv("LD_PRELOAD", FAKETIME_LIB, 1);
    setenv("FAKETIME_TIMESTAMP_FILE", offset, 1);
    setenv("FAKETIME_NO_CACHE", "1", 1);
    setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
    hubfix_start(&fix);
    unsetenv("LD_PRELOAD");
    char record[PATH_MAX], conf[PATH_MAX + 64];
    snprintf(record, sizeof record, "%s/received.txt", fix.dir);
    snprintf(conf, sizeof conf, "plugin.file = %s\n", record);
    hubfix_start_adapter(&fix, RECEIVER, "recorder", conf);
    adp_client_t *s = hubfix_connect(&fix, SENDER);
    const char *jumps[] = {"+0\n", "+2h\n", "-2h\n"};
    for (int phase = 0; phase < 3; phase++) {
        tk_write_file(offset, jumps[phase]);
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
        for (int w = 0; w < 100 && count_lines(record) < (phase + 1) * 100; w++)
            tk_sleep_ms(50);
        ck_assert_int_eq(count_lines(record), (phase + 1) * 100);
    }
    tk_sleep_ms(1500); /* heartbeats and redelivery timers keep running */
    ck_assert_int_eq(count_lines(record), 300);
    ck_assert(hubfix_hub_alive(&fix));
    adp_close(&s);
    hubfix_stop(&fix);
    char audit[PATH_MAX], key[PATH_MAX];
    snprintf(audit, sizeof audit, "%s/data/audit", fix.dir);
    snprintf(key, sizeof key, "%s/secrets/VN.GOV.HN-LGSP.HUB.pub", fix.dir);
    char *out = NULL;
    char *argv[] = {(char *)tk_bin("hubctl"), "audit", "verify", audit, "--hub-key", key, NULL};
    ck_assert_int_eq(tk_run(argv, &out, 10000), 0);
    ck_assert_msg(strstr(out, "intact"), "%s", out);
    free(out);
    hubfix_cleanup(&fix);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("e2e_clockjump");
    TCase *tc = tcase_create("clockjump");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, wall_clock_jumps_lose_nothing);
    suite_add_tcase(suite, tc);
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
