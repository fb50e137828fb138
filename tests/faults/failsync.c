/* failsync — a fault for tests, preloaded into hubd (LD_PRELOAD): while the
 * file named by $LTH_FAIL_SYNC_FILE exists, fsync() and fdatasync() fail
 * with EIO, as on a disk that has gone bad; otherwise they are the C
 * library's. LMDB's commit then fails, which nothing a member or operator
 * sends can cause, so that the hub's answer to it (NACK_INTERNAL) can be
 * tested on the real process. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int failsync__now(void)
{
    const char *path = getenv("LTH_FAIL_SYNC_FILE");
    return path && *path && access(path, F_OK) == 0;
}

/* The C library's fsync() or fdatasync() (name), or EIO while the fault is
 * on. */
static int failsync__sync(const char *name, int fd)
{
    if (failsync__now()) {
        errno = EIO;
        return -1;
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
