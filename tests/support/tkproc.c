#include "tkproc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Children alive; volatile because tkp_kill_children reads it from a
 * signal handler. */
#define TKP__MAX_CHILDREN 256
static volatile pid_t tkp__children[TKP__MAX_CHILDREN];

static void tkp__track(pid_t pid, pid_t replace)
{
    for (int i = 0; i < TKP__MAX_CHILDREN; i++) {
        if (tkp__children[i] == replace) {
            tkp__children[i] = pid;
            return;
        }
    }
}

void tkp_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void tkp_rmrf(const char *path)
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
        if (snprintf(child, sizeof child, "%s/%s", path, de->d_name) >= (int)sizeof child)
            continue;
        struct stat st;
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
            tkp_rmrf(child);
        else
            unlink(child);
    }
    closedir(d);
    rmdir(path);
}

char *tkp_read_file(const char *path)
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

int tkp_write_file(const char *path, const char *text, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        done += (size_t)w;
    }
    return close(fd);
}

bool tkp_wait_file(const char *path, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > 0)
            return true;
        tkp_sleep_ms(10);
    }
    return false;
}

bool tkp_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        char *text = tkp_read_file(path);
        bool found = text && strstr(text, needle);
        free(text);
        if (found)
            return true;
        tkp_sleep_ms(20);
    }
    return false;
}

pid_t tkp_spawn(char *const argv[], const char *log_path)
{
    return tkp_spawn_env(argv, log_path, NULL, (uid_t)-1, (gid_t)-1);
}

pid_t tkp_spawn_env(char *const argv[], const char *log_path, char *const env[], uid_t uid,
                    gid_t gid)
{
    extern char **environ;
    /* The child's environment is built here: after fork, in a process with
     * threads, only async-signal-safe calls are allowed. */
    char **envp = environ;
    if (env) {
        size_t n_old = 0, n_new = 0;
        while (environ[n_old])
            n_old++;
        while (env[n_new])
            n_new++;
        envp = calloc(n_old + n_new + 1, sizeof *envp);
        if (!envp)
            return -1;
        size_t k = 0;
        for (size_t i = 0; i < n_new; i++)
            envp[k++] = env[i];
        for (size_t i = 0; i < n_old; i++) {
            /* The added variables win over inherited ones of the same name. */
            size_t name = strcspn(environ[i], "=");
            bool replaced = false;
            for (size_t j = 0; j < n_new && !replaced; j++)
                replaced = !strncmp(env[j], environ[i], name + 1);
            if (!replaced)
                envp[k++] = environ[i];
        }
    }
    pid_t pid = fork();
    if (pid < 0) {
        if (envp != environ)
            free(envp);
        return -1;
    }
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
        if (uid != (uid_t)-1 && (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) {
            fprintf(stderr, "cannot switch to uid %ld: %s\n", (long)uid, strerror(errno));
            _exit(126);
        }
        execve(argv[0], argv, envp);
        fprintf(stderr, "exec %s failed: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (envp != environ)
        free(envp);
    tkp__track(pid, 0);
    return pid;
}

int tkp_stop(pid_t pid)
{
    if (pid <= 0)
        return -1;
    int status = -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || r < 0) {
            tkp__track(0, pid);
            return r == pid ? status : -1;
        }
        tkp_sleep_ms(10);
    }
    tkp_kill9(pid);
    return -1;
}

bool tkp_reaped(pid_t pid, int *status)
{
    if (waitpid(pid, status, WNOHANG) == 0)
        return false;
    tkp__track(0, pid);
    return true;
}

void tkp_kill9(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    tkp__track(0, pid);
}

void tkp_stop_all(void)
{
    for (int i = 0; i < TKP__MAX_CHILDREN; i++)
        if (tkp__children[i] > 0)
            kill(tkp__children[i], SIGTERM);
    for (int i = 0; i < TKP__MAX_CHILDREN; i++)
        if (tkp__children[i] > 0)
            tkp_stop(tkp__children[i]);
}

void tkp_kill_children(void)
{
    for (int i = 0; i < TKP__MAX_CHILDREN; i++)
        if (tkp__children[i] > 0)
            kill(tkp__children[i], SIGKILL);
}

int tkp_run(char *const argv[], char **output, int timeout_ms, const char *dir)
{
    if (output)
        *output = NULL;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/lthrun.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    pid_t pid = tkp_spawn(argv, path);
    if (pid < 0) {
        unlink(path);
        return -1;
    }
    int status = -1;
    bool done = false;
    for (int waited = 0; waited <= timeout_ms; waited += 5) {
        if (tkp_reaped(pid, &status)) {
            done = true;
            break;
        }
        tkp_sleep_ms(5);
    }
    if (!done)
        tkp_kill9(pid);
    if (output)
        *output = tkp_read_file(path);
    unlink(path);
    return done && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
