/* tkproc — the process and file helpers that the tests (through testkit)
 * and hubbench share: starting a program with its output in a log file,
 * stopping it, running one to completion, waiting for a file, reading,
 * writing and removing files. Nothing here needs Check or asserts: every
 * call reports failure in its return value, and testkit turns that into
 * a test failure.
 *
 * Every process tkp_spawn starts is remembered until tkp_stop, tkp_kill9 or
 * tkp_reaped has collected it, so that tkp_stop_all (a test's teardown) and
 * tkp_kill_children (hubbench's signal handler) leave nothing behind.
 */
#ifndef TKPROC_H
#define TKPROC_H

#include <stdbool.h>
#include <sys/types.h>

/* Sleeps ms milliseconds, resuming after signals. */
void tkp_sleep_ms(int ms);
/* Removes a file or a directory tree; what cannot be removed stays. */
void tkp_rmrf(const char *path);
/* Reads a whole file into a malloc'ed NUL-terminated string, or NULL. */
char *tkp_read_file(const char *path);
/* Writes text to path (created with mode, truncated); 0 or -1 (errno). */
int tkp_write_file(const char *path, const char *text, int mode);
/* Waits until path exists and is non-empty; false after timeout_ms. */
bool tkp_wait_file(const char *path, int timeout_ms);
/* Waits until the file holds `needle`; false after timeout_ms. */
bool tkp_wait_file_contains(const char *path, const char *needle, int timeout_ms);

/* Starts argv[0] with argv, stdin from /dev/null, stdout and stderr appended
 * to log_path; -1 if fork fails. */
pid_t tkp_spawn(char *const argv[], const char *log_path);
/* The same with env's "NAME=value" entries (NULL-terminated, may be NULL)
 * over the inherited environment and, when uid is not (uid_t)-1, as that
 * user and group. */
pid_t tkp_spawn_env(char *const argv[], const char *log_path, char *const env[], uid_t uid,
                    gid_t gid);
/* Sends SIGTERM and waits up to 5 s: the status as from waitpid; -1 if the
 * process had to be killed (SIGKILL) or was not ours. */
int tkp_stop(pid_t pid);
/* Whether pid has ended; if so, *status (may be NULL) is its status as
 * from waitpid and the pid is forgotten. Does not wait. */
bool tkp_reaped(pid_t pid, int *status);
/* SIGKILL and reap. */
void tkp_kill9(pid_t pid);
/* tkp_stop for every process still running, SIGTERM to all of them first
 * so that they shut down side by side. */
void tkp_stop_all(void);
/* SIGKILL to every process still running, without waiting: safe in a
 * signal handler. */
void tkp_kill_children(void);
/* Runs argv to completion (killed after timeout_ms) with its output
 * captured in a temporary file under dir and returned in *output
 * (malloc'ed; output may be NULL); the exit code, or -1 if it did not
 * start, exit in time or exit normally. */
int tkp_run(char *const argv[], char **output, int timeout_ms, const char *dir);

#endif
