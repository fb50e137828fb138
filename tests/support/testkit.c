#include "testkit.h"

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

#define TK_MAX_CHILDREN 256
static pid_t tk__children[TK_MAX_CHILDREN];

void tk_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
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
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char child[PATH_MAX];
        snprintf(child, sizeof child, "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
            tk_rmrf(child);
        else
            unlink(child);
    }
    closedir(d);
    rmdir(path);
}

const char *tk_bin(const char *name)
{
    static char paths[8][PATH_MAX];
    static int next;
    const char *dir = getenv("HUB_BIN_DIR");
    char *p = paths[next++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", dir ? dir : "./bin", name);
    return p;
}

const char *tk_plugin(const char *name)
{
    static char paths[8][PATH_MAX];
    static int next;
    const char *dir = getenv("HUB_PLUGIN_DIR");
    char *p = paths[next++ % 8];
    snprintf(p, PATH_MAX, "%s/lth-%s.so", dir ? dir : "./lib/plugins", name);
    return p;
}

void tk_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

char *tk_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

pid_t tk_spawn(char *const argv[], const char *log_path)
{
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork failed");
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) {
            dup2(null, 0);
            close(null);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s failed: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < TK_MAX_CHILDREN; i++) {
        if (tk__children[i] == 0) {
            tk__children[i] = pid;
            break;
        }
    }
    return pid;
}

static void tk__forget(pid_t pid)
{
    for (int i = 0; i < TK_MAX_CHILDREN; i++)
        if (tk__children[i] == pid)
            tk__children[i] = 0;
}

int tk_stop(pid_t pid)
{
    if (pid <= 0)
        return -1;
    int status = -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            tk__forget(pid);
            return status;
        }
        if (r < 0) {
            tk__forget(pid);
            return -1;
        }
        tk_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    tk__forget(pid);
    return -1;
}

bool tk_reaped(pid_t pid, int *status)
{
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == 0)
        return false;
    tk__forget(pid);
    return true;
}

void tk_kill9(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    tk__forget(pid);
}

void tk_stop_all(void)
{
    /* SIGTERM first, so that programs shut down cleanly and sanitizers
     * report leaks at exit; SIGKILL whatever does not stop in time. */
    for (int i = 0; i < TK_MAX_CHILDREN; i++)
        if (tk__children[i] > 0)
            kill(tk__children[i], SIGTERM);
    for (int i = 0; i < TK_MAX_CHILDREN; i++)
        if (tk__children[i] > 0)
            tk_stop(tk__children[i]);
}

bool tk_wait_file(const char *path, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > 0)
            return true;
        tk_sleep_ms(10);
    }
    return false;
}

bool tk_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        char *text = tk_read_file(path);
        bool found = text && strstr(text, needle);
        free(text);
        if (found)
            return true;
        tk_sleep_ms(20);
    }
    return false;
}

int tk_run(char *const argv[], char **output, int timeout_ms)
{
    char path[] = "/tmp/lthrun.XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    pid_t pid = tk_spawn(argv, path);
    int status = -1;
    bool done = false;
    for (int waited = 0; waited <= timeout_ms; waited += 5) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            done = true;
            break;
        }
        tk_sleep_ms(5);
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    tk__forget(pid);
    if (output)
        *output = tk_read_file(path);
    unlink(path);
    if (!done || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
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
