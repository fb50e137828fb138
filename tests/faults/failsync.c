/* failsync — a fault for tests, preloaded into hubd (LD_PRELOAD), on
 * fsync() and fdatasync():
 *   - while the file named by $LTH_FAIL_SYNC_FILE exists, they fail with
 *     EIO, as on a disk that has gone bad. LMDB's commit then fails, which
 *     nothing a member or operator sends can cause, so that the hub's answer
 *     to it (NACK_INTERNAL) can be tested on the real process;
 *   - while the file named by $LTH_SLOW_SYNC_FILE exists, they first sleep
 *     the milliseconds written in it (200 when it holds no number), as on a
 *     slow or busy disk, so that commits take that long and envelopes pile
 *     up waiting for the store (the per-member share of that queue);
 *   - otherwise they are the C library's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int failsync__exists(const char *var)
{
    const char *path = getenv(var);
    return path && *path && access(path, F_OK) == 0;
}

/* The delay $LTH_SLOW_SYNC_FILE asks for, in ms (0: none). */
static long failsync__slow_ms(void)
{
    if (!failsync__exists("LTH_SLOW_SYNC_FILE"))
        return 0;
    long ms = 200;
    FILE *f = fopen(getenv("LTH_SLOW_SYNC_FILE"), "r");
    if (f) {
        long v;
        if (fscanf(f, "%ld", &v) == 1 && v >= 0 && v <= 60000)
            ms = v;
        fclose(f);
    }
    return ms;
}

/* The C library's fsync() or fdatasync() (name), EIO while the failing
 * fault is on, after a sleep while the slow one is. */
static int failsync__sync(const char *name, int fd)
{
    if (failsync__exists("LTH_FAIL_SYNC_FILE")) {
        errno = EIO;
        return -1;
    }
    long ms = failsync__slow_ms();
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    return real ? real(fd) : -1;
}

int fdatasync(int fd)
{
    return failsync__sync("fdatasync", fd);
}

int fsync(int fd)
{
    return failsync__sync("fsync", fd);
}
