#include "hub_numfiles.h"

#include "hub_error.h"
#include "hub_vec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void hub_numfiles_name(const char *prefix, unsigned long number, const char *suffix, char *out,
                       size_t size)
{
    snprintf(out, size, "%s%06lu%s", prefix, number, suffix);
}

int hub_write_all(int fd, const void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, (const char *)buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        off += (size_t)n;
    }
    return 0;
}

int hub_read_all_at(int dir_fd, const char *name, char **buf_out, size_t *len_out)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hub_errno_code(errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return hub_errno_code(e);
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return HUB_ENOMEM;
    }
    for (;;) {
        if (len == cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                close(fd);
                return HUB_ENOMEM;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return hub_errno_code(e);
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    *buf_out = buf;
    *len_out = len;
    return 0;
}

int hub_errno_code(int e)
{
    switch (e) {
    case ENOENT: return HUB_ENOENT;
    case EACCES:
    case EPERM: return HUB_EPERM;
    case ENOMEM: return HUB_ENOMEM;
    case EEXIST: return HUB_EEXIST;
    default: return HUB_EIO;
    }
}

static int numfiles__cmp_ulong(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

int hub_numfiles_list(const char *dir, const char *prefix, const char *suffix, hub_numfiles_t *out)
{
    out->numbers = NULL;
    out->count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return hub_errno_code(errno);
    size_t prefix_len = strlen(prefix), cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strncmp(name, prefix, prefix_len) != 0 || name[prefix_len] < '0' ||
            name[prefix_len] > '9')
            continue;
        char *end = NULL;
        errno = 0;
        unsigned long number = strtoul(name + prefix_len, &end, 10);
        if (errno || number == 0 || number > HUB_NUMFILES_MAX || strcmp(end, suffix) != 0)
            continue;
        char canonical[256];
        hub_numfiles_name(prefix, number, suffix, canonical, sizeof canonical);
        if (strcmp(canonical, name) != 0)
            continue;
        if ((rc = HUB_VEC_RESERVE(out->numbers, out->count, cap, 16)) != 0)
            break;
        out->numbers[out->count++] = number;
    }
    closedir(d);
    if (rc != 0) {
        free(out->numbers);
        out->numbers = NULL;
        out->count = 0;
        return rc;
    }
    if (out->count > 1)
        qsort(out->numbers, out->count, sizeof *out->numbers, numfiles__cmp_ulong);
    return 0;
}
