/* testkit — what the Check tests share: temporary directories, starting and
 * stopping real processes (hubd, hub-adapter), generating keys, waiting.
 *
 * Every test makes its own temporary directory under $TMPDIR (or /tmp) and
 * removes it at the end; processes it starts are killed by tk_stop() or, if a
 * test fails half-way, by tk_stop_all() from the fixture's teardown.
 */
#ifndef TESTKIT_H
#define TESTKIT_H

#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ctest's SKIP_RETURN_CODE for every test: a test that cannot run exits
 * with it, so that it reports as skipped, never as passed. */
#define TK_SKIP_EXIT 77

/* Creates a fresh temporary directory; writes its path into out (PATH_MAX). */
void tk_tmpdir(char *out);
/* Removes a directory tree (used for tk_tmpdir results only). */
void tk_rmrf(const char *path);
/* A checked fixture for tests that each want a fresh temporary directory,
 * tk_scratch: TK_CASE(name, tk_scratch_setup, tk_scratch_teardown, ...). */
extern char tk_scratch[PATH_MAX];
void tk_scratch_setup(void);
void tk_scratch_teardown(void);
/* Writes text into the file `name` in tk_scratch and returns its path
 * (valid until the next call). */
const char *tk_scratch_write(const char *name, const char *text);
/* Path of a built executable, e.g. tk_bin("hubd"), from $HUB_BIN_DIR. */
const char *tk_bin(const char *name);
/* Path of a plugin, e.g. tk_plugin("echo") -> .../lth-echo.so. */
const char *tk_plugin(const char *name);
/* Writes text to path (mode 0644) and aborts the test on failure. */
void tk_write_file(const char *path, const char *text);
/* Reads a whole file into a malloc'ed NUL-terminated string, or NULL. */
char *tk_read_file(const char *path);
/* Starts argv[0] with argv, stdout and stderr appended to log_path. */
pid_t tk_spawn(char *const argv[], const char *log_path);
/* Sends SIGTERM, waits up to 5 s, then SIGKILL; returns the exit status
 * (as from waitpid) or -1. */
int tk_stop(pid_t pid);
/* tk_stop, asserting that the process (`what`, for the failure) exited 0;
 * then reads its log and asserts that it holds no sanitizer report.
 * Returns the log (malloc'ed) for the caller's own checks. */
char *tk_stop_clean(pid_t pid, const char *what, const char *log_path);
/* Whether pid (from tk_spawn) has ended; if so, *status is its status as
 * from waitpid and the pid is forgotten. Does not wait. */
bool tk_reaped(pid_t pid, int *status);
/* SIGKILL and reap. */
void tk_kill9(pid_t pid);
/* Stops every process tk_spawn started that is still running: SIGTERM, then
 * SIGKILL after 5 s. */
void tk_stop_all(void);
/* Waits until path exists and is non-empty; false after timeout_ms. */
bool tk_wait_file(const char *path, int timeout_ms);
/* Waits until the file holds `needle`; false after timeout_ms. */
bool tk_wait_file_contains(const char *path, const char *needle, int timeout_ms);
/* Times needle occurs in a file (overlapping; 0 if it cannot be read). */
int tk_count_of(const char *path, const char *needle);
/* Times needle occurs in text (overlapping; 0 for NULL). */
int tk_count_in(const char *text, const char *needle);
/* Lines (newlines) in a file; 0 if it cannot be read. */
int tk_count_lines(const char *path);
/* Waits until the file has at least `expected` lines; false after
 * timeout_ms. */
bool tk_wait_lines(const char *path, int expected, int timeout_ms);
/* Runs argv to completion with output captured into *output (malloc'ed,
 * may be NULL); returns the exit code, or -1. */
int tk_run(char *const argv[], char **output, int timeout_ms);
/* Runs argv to completion (tk_run) and asserts that it exits with
 * exit_code and that its output holds each of the NULL-terminated needles;
 * TK_RUN_SAYS(argv, timeout_ms, exit_code, "a", "b", ...) writes the list. */
void tk_run_says(char *const argv[], int timeout_ms, int exit_code, const char *const needles[]);
#define TK_RUN_SAYS(argv, timeout_ms, exit_code, ...)                                              \
    tk_run_says((argv), (timeout_ms), (exit_code), (const char *const[]){__VA_ARGS__, NULL})
void tk_sleep_ms(int ms);
/* Runs a /bin/sh command made with printf's format; returns its exit code
 * (-1 when it did not exit in time), printing the command and its output
 * to stderr when that is not 0. */
int tk_shf(int timeout_ms, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs a /bin/sh script and asserts it exits 0, naming `what` and showing
 * its output when it does not. */
void tk_sh_ok(const char *what, const char *script, int timeout_ms);

/* Ends the running Check test as skipped: prints "SKIP: <reason>" and
 * records it, so that tk_run_suite() makes the program exit TK_SKIP_EXIT
 * when nothing failed. Call it before the test starts anything that needs
 * cleaning up (the fixture's teardown does not run). Does not return. */
void tk_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Runs the suite (and frees it) and returns the program's exit status:
 * EXIT_FAILURE if a test failed, TK_SKIP_EXIT if one was skipped,
 * EXIT_SUCCESS otherwise. */
int tk_run_suite(Suite *suite);

/* One Check test case: a name, a checked fixture (setup and teardown run
 * around each test, in its process; either may be NULL), a timeout in
 * seconds (0 keeps Check's default, which ctest sets from the test's
 * timeout through CK_DEFAULT_TIMEOUT) and its tests, in order, ending with
 * NULL (TK_CASE adds it). */
typedef struct {
    const char *name;
    SFun setup;
    SFun teardown;
    int timeout_s;
    const TTest *const *tests;
} tk_case_t;

/* clang-format off */
#define TK_CASE(name, setup, teardown, timeout_s, ...)                                             \
    {(name), (setup), (teardown), (timeout_s), (const TTest *const[]){__VA_ARGS__, NULL}}
/* clang-format on */

/* Builds a suite from n cases. */
Suite *tk_suite(const char *name, const tk_case_t *cases, size_t n);

/* A test program's main(): prepare (may be NULL) runs first and returns 0
 * to go on or the program's exit status (e.g. TK_SKIP_EXIT); then the suite
 * built from the TK_CASE list runs with tk_run_suite, so that every program
 * reports failures, skips, and Check's XML log (CK_XML_LOG_FILE_NAME) alike. */
#define TK_MAIN_PREPARED(prepare, suite_name, ...)                                                 \
    int main(void)                                                                                 \
    {                                                                                              \
        int (*tk__prepare)(void) = (prepare);                                                      \
        int tk__status = tk__prepare ? tk__prepare() : 0;                                          \
        if (tk__status != 0)                                                                       \
            return tk__status;                                                                     \
        const tk_case_t tk__cases[] = {__VA_ARGS__};                                               \
        return tk_run_suite(                                                                       \
            tk_suite((suite_name), tk__cases, sizeof tk__cases / sizeof tk__cases[0]));            \
    }
#define TK_MAIN(suite_name, ...) TK_MAIN_PREPARED(NULL, suite_name, __VA_ARGS__)

/* Checks in a thread of the test's own (the client thread of a harness
 * around an event loop), where Check's assertions cannot be used:
 * TK_THREAD_CHECK records the first failure, "line N: CHECK(cond) ...", in
 * buf (a char array) and returns from the calling function; the test
 * asserts that buf is empty once the thread has ended. */
void tk_thread_fail(char *buf, size_t size, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define TK_THREAD_CHECK(buf, cond, ...)                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tk_thread_fail((buf), sizeof(buf), __LINE__, #cond, " " __VA_ARGS__);                  \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Asserts that text holds each of the NULL-terminated needles, naming the
 * one it does not; TK_ASSERT_HOLDS(text, "a", "b", ...) writes the list. */
void tk_assert_holds(const char *text, const char *const needles[]);
#define TK_ASSERT_HOLDS(text, ...) tk_assert_holds((text), (const char *const[]){__VA_ARGS__, NULL})

/* A yes/no case of a validator: TK_ASSERT_YES_NO(pred, {"text", true},
 * {"other", false}, ...) asserts that pred(text) is `expected` for each
 * row, naming the row that is not. */
typedef struct {
    const char *text;
    bool expected;
} tk_yes_no_t;
#define TK_ASSERT_YES_NO(pred, ...)                                                                \
    do {                                                                                           \
        const tk_yes_no_t tk__rows[] = {__VA_ARGS__};                                              \
        for (size_t tk__i = 0; tk__i < sizeof tk__rows / sizeof tk__rows[0]; tk__i++)              \
            ck_assert_msg((bool)(pred)(tk__rows[tk__i].text) == tk__rows[tk__i].expected,          \
                          "%s(\"%s\") is not %s", #pred, tk__rows[tk__i].text,                     \
                          tk__rows[tk__i].expected ? "true" : "false");                            \
    } while (0)

/* An HTTP answer: its status (0 when none came) and its body (malloc'ed,
 * NUL-terminated, never NULL: free it). */
typedef struct {
    long status;
    char *body;
    size_t len;
} tk_reply_t;

/* One HTTP request with libcurl, 10 s at most: method ("GET", "POST"...),
 * url, an optional bearer token, an optional body (a POST without one sends
 * an empty body). */
tk_reply_t tk_http(const char *method, const char *url, const char *token, const char *body);

/* tk_http with more: header lines to send besides the token's
 * (NULL-terminated, may be NULL), and the answer's header lines copied into
 * headers_out (headers_size bytes, NUL-terminated, the lines that do not
 * fit left out; may be NULL). A HEAD asks for no body. It never asserts,
 * so that a client thread may call it: a request that could not be made
 * answers status 0 (and body NULL when memory ran out). */
tk_reply_t tk_http_ex(const char *method, const char *url, const char *token, const char *body,
                      const char *const headers[], char *headers_out, size_t headers_size);

/* The JSON of a 200 answer (asserts both; `what` names the request in the
 * failure); frees r.body. */
json_t *tk_reply_json(tk_reply_t r, const char *what);

/* For prepare functions: curl's global state, set up once and released at
 * exit; returns 0. */
int tk_prepare_curl(void);

#endif
