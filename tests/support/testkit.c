#include "testkit.h"
#include "tkproc.h"

#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void tk_sleep_ms(int ms)
{
    tkp_sleep_ms(ms);
}

void tk_tmpdir(char *out)
{
    /* hubd refuses key, certificate, policy and delegation files that group
     * or others may write: the files a test writes must not be, whatever
     * umask the test was started with. */
    umask(022);
    const char *base = getenv("TMPDIR");
    snprintf(out, PATH_MAX, "%s/lthtest.XXXXXX", base && *base ? base : "/tmp");
    ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp failed: %s", strerror(errno));
}

void tk_rmrf(const char *path)
{
    tkp_rmrf(path);
}

/* dir/prefix+name+suffix in one of eight rotating buffers, dir from the
 * environment variable `var` or fallback. */
static const char *tk__built_path(const char *var, const char *fallback, const char *prefix,
                                  const char *name, const char *suffix)
{
    static char paths[8][PATH_MAX];
    static int next;
    const char *dir = getenv(var);
    char *p = paths[next++ % 8];
    snprintf(p, PATH_MAX, "%s/%s%s%s", dir ? dir : fallback, prefix, name, suffix);
    return p;
}

char tk_scratch[PATH_MAX];

void tk_scratch_setup(void)
{
    tk_tmpdir(tk_scratch);
}

void tk_scratch_teardown(void)
{
    tk_rmrf(tk_scratch);
}

const char *tk_scratch_write(const char *name, const char *text)
{
    static char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", tk_scratch, name);
    tk_write_file(path, text);
    return path;
}

const char *tk_bin(const char *name)
{
    return tk__built_path("HUB_BIN_DIR", "./bin", "", name, "");
}

const char *tk_plugin(const char *name)
{
    return tk__built_path("HUB_PLUGIN_DIR", "./lib/plugins", "lth-", name, ".so");
}

void tk_write_file(const char *path, const char *text)
{
    ck_assert_msg(tkp_write_file(path, text, 0644) == 0, "cannot write %s: %s", path,
                  strerror(errno));
}

char *tk_read_file(const char *path)
{
    return tkp_read_file(path);
}

pid_t tk_spawn(char *const argv[], const char *log_path)
{
    pid_t pid = tkp_spawn(argv, log_path);
    ck_assert_msg(pid > 0, "cannot start %s: %s", argv[0], strerror(errno));
    return pid;
}

int tk_stop(pid_t pid)
{
    return tkp_stop(pid);
}

char *tk_stop_clean(pid_t pid, const char *what, const char *log_path)
{
    int status = tk_stop(pid);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "%s did not exit cleanly (status %d); see %s", what, status, log_path);
    char *log = tk_read_file(log_path);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(!strstr(log, "Sanitizer") && !strstr(log, "runtime error"),
                  "sanitizer report in %s", log_path);
    return log;
}

bool tk_reaped(pid_t pid, int *status)
{
    return tkp_reaped(pid, status);
}

void tk_kill9(pid_t pid)
{
    tkp_kill9(pid);
}

void tk_stop_all(void)
{
    /* SIGTERM first, so that programs shut down cleanly and sanitizers
     * report leaks at exit; SIGKILL whatever does not stop in time. */
    tkp_stop_all();
}

bool tk_wait_file(const char *path, int timeout_ms)
{
    return tkp_wait_file(path, timeout_ms);
}

bool tk_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
    return tkp_wait_file_contains(path, needle, timeout_ms);
}

int tk_count_in(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

int tk_count_of(const char *path, const char *needle)
{
    char *text = tk_read_file(path);
    int n = tk_count_in(text, needle);
    free(text);
    return n;
}

int tk_count_lines(const char *path)
{
    char *text = tk_read_file(path);
    int n = 0;
    for (char *p = text; p && *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

bool tk_wait_lines(const char *path, int expected, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (tk_count_lines(path) >= expected)
            return true;
        tk_sleep_ms(50);
    }
    return false;
}

int tk_shf(int timeout_ms, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out = NULL;
    int rc = tk_run(argv, &out, timeout_ms);
    if (rc != 0)
        fprintf(stderr, "`%s` exited %d: %s\n", cmd, rc, out ? out : "");
    free(out);
    return rc;
}

void tk_sh_ok(const char *what, const char *script, int timeout_ms)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    char *out = NULL;
    int rc = tk_run(argv, &out, timeout_ms);
    ck_assert_msg(rc == 0, "%s failed: %s", what, out ? out : "");
    free(out);
}

int tk_run(char *const argv[], char **output, int timeout_ms)
{
    return tkp_run(argv, output, timeout_ms, "/tmp");
}

void tk_assert_holds(const char *text, const char *const needles[])
{
    for (const char *const *needle = needles; *needle; needle++)
        ck_assert_msg(text && strstr(text, *needle), "no \"%s\" in:\n%s", *needle,
                      text ? text : "(null)");
}

void tk_run_says(char *const argv[], int timeout_ms, int exit_code, const char *const needles[])
{
    char *out = NULL;
    int rc = tk_run(argv, &out, timeout_ms);
    ck_assert_msg(rc == exit_code, "%s exited %d, not %d: %s", argv[0], rc, exit_code,
                  out ? out : "");
    for (const char *const *needle = needles; *needle; needle++)
        ck_assert_msg(out && strstr(out, *needle), "%s did not say \"%s\": %s", argv[0], *needle,
                      out ? out : "");
    free(out);
}

/* Where tk_skip() records skips: a file, because Check runs each test in a
 * child process whose memory the runner never sees. */
static char tk__skip_path[PATH_MAX];
static pid_t tk__runner;

void tk_skip(const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    printf("SKIP: %s\n", reason);
    fflush(stdout);
    if (tk__skip_path[0]) {
        FILE *f = fopen(tk__skip_path, "a");
        if (f) {
            fprintf(f, "%s\n", reason);
            fclose(f);
        }
    }
    /* In a forked test, exit 0 ends the test without a failure (Check counts
     * it as run, tk_run_suite as skipped); without a fork (CK_FORK=no) this
     * is the runner itself, which ends skipped. */
    exit(tk__runner && getpid() != tk__runner ? 0 : TK_SKIP_EXIT);
}

int tk_run_suite(Suite *suite)
{
    tk__runner = getpid();
    const char *base = getenv("TMPDIR");
    snprintf(tk__skip_path, sizeof tk__skip_path, "%s/lthskip.%d", base && *base ? base : "/tmp",
             (int)tk__runner);
    unlink(tk__skip_path);
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char *skipped = tk_read_file(tk__skip_path);
    unlink(tk__skip_path);
    bool any_skipped = skipped && *skipped;
    if (any_skipped)
        printf("skipped:\n%s", skipped);
    free(skipped);
    if (failed)
        return EXIT_FAILURE;
    return any_skipped ? TK_SKIP_EXIT : EXIT_SUCCESS;
}

void tk_thread_fail(char *buf, size_t size, int line, const char *cond, const char *fmt, ...)
{
    if (buf[0])
        return;
    int n = snprintf(buf, size, "line %d: CHECK(%s)", line, cond);
    if (n < 0 || (size_t)n >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, size - (size_t)n, fmt, ap);
    va_end(ap);
}

Suite *tk_suite(const char *name, const tk_case_t *cases, size_t n)
{
    Suite *suite = suite_create(name);
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        if (cases[i].setup || cases[i].teardown)
            tcase_add_checked_fixture(tc, cases[i].setup, cases[i].teardown);
        if (cases[i].timeout_s > 0)
            tcase_set_timeout(tc, cases[i].timeout_s);
        for (const TTest *const *test = cases[i].tests; *test; test++)
            tcase_add_test(tc, *test);
        suite_add_tcase(suite, tc);
    }
    return suite;
}

static void tk__curl_cleanup(void)
{
    curl_global_cleanup();
}

int tk_prepare_curl(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_global_init failed\n");
        return EXIT_FAILURE;
    }
    atexit(tk__curl_cleanup);
    return 0;
}

static size_t tk__on_body(char *data, size_t size, size_t n, void *user)
{
    tk_reply_t *r = user;
    char *grown = realloc(r->body, r->len + size * n + 1);
    if (!grown)
        return 0;
    memcpy(grown + r->len, data, size * n);
    r->len += size * n;
    grown[r->len] = '\0';
    r->body = grown;
    return size * n;
}

/* The answer's header lines, kept while they fit. */
typedef struct {
    char *text;
    size_t size;
    size_t len;
} tk__headers_t;

static size_t tk__on_header(char *data, size_t size, size_t n, void *user)
{
    tk__headers_t *h = user;
    if (h->len + size * n < h->size) {
        memcpy(h->text + h->len, data, size * n);
        h->len += size * n;
        h->text[h->len] = '\0';
    }
    return size * n;
}

tk_reply_t tk_http_ex(const char *method, const char *url, const char *token, const char *body,
                      const char *const headers[], char *headers_out, size_t headers_size)
{
    tk_reply_t r = {0, calloc(1, 1), 0};
    CURL *curl = curl_easy_init();
    if (!r.body || !curl) {
        curl_easy_cleanup(curl);
        return r;
    }
    struct curl_slist *list = NULL;
    char auth[512];
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        list = curl_slist_append(list, auth);
    }
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body || !strcmp(method, "POST"))
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, tk__on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    tk__headers_t got = {headers_out, headers_size, 0};
    if (headers_out && headers_size > 0) {
        headers_out[0] = '\0';
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, tk__on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &got);
    }
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return r;
}

tk_reply_t tk_http(const char *method, const char *url, const char *token, const char *body)
{
    tk_reply_t r = tk_http_ex(method, url, token, body, NULL, NULL, 0);
    ck_assert_ptr_nonnull(r.body);
    return r;
}

json_t *tk_reply_json(tk_reply_t r, const char *what)
{
    ck_assert_msg(r.status == 200, "%s: %ld %s", what, r.status, r.body);
    json_error_t e;
    json_t *j = json_loadb(r.body, r.len, 0, &e);
    ck_assert_msg(j, "%s: not JSON (%s): %s", what, e.text, r.body);
    free(r.body);
    return j;
}
