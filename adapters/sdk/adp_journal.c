#include "adp_journal.h"
#include "hub_bytes.h"
#include "hub_error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ADP__JOURNAL_MAX_RECORD (64u << 20)

struct adp__journal {
    int fd;
    char path[PATH_MAX];
    uint64_t records;
};

static uint32_t adp__fnv(uint32_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static int adp__write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return errno == ENOSPC ? HUB_EFULL : HUB_EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int adp__write_record(int fd, uint8_t type, const void *data, size_t len)
{
    if (len > ADP__JOURNAL_MAX_RECORD)
        return HUB_EINVAL;
    uint8_t head[5];
    head[0] = type;
    hub_put_le32(head + 1, (uint32_t)len);
    uint32_t sum = adp__fnv(2166136261u, head, 5);
    sum = adp__fnv(sum, data, len);
    uint8_t tail[4];
    hub_put_le32(tail, sum);
    /* One buffer, one write(): a kill between two writes would tear it. */
    uint8_t *rec = malloc(len + 9);
    if (!rec)
        return HUB_ENOMEM;
    memcpy(rec, head, 5);
    if (len)
        memcpy(rec + 5, data, len);
    memcpy(rec + 5 + len, tail, 4);
    int rc = adp__write_all(fd, rec, len + 9);
    free(rec);
    return rc;
}

int adp__journal_open(const char *dir, const char *name, adp__journal_replay_cb replay,
                      void *user, adp__journal_t **out, char *err, size_t err_size)
{
    *out = NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create state directory %s: %s", dir, strerror(errno));
        return HUB_EIO;
    }
    adp__journal_t *j = calloc(1, sizeof *j);
    if (!j)
        return HUB_ENOMEM;
    snprintf(j->path, sizeof j->path, "%s/%s", dir, name);
    j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        snprintf(err, err_size, "cannot open %s: %s", j->path, strerror(errno));
        free(j);
        return errno == EACCES ? HUB_EPERM : HUB_EIO;
    }
    struct stat st;
    fstat(j->fd, &st);
    uint8_t *buf = st.st_size > 0 ? malloc((size_t)st.st_size) : NULL;
    size_t size = 0;
    if (buf) {
        ssize_t n = pread(j->fd, buf, (size_t)st.st_size, 0);
        size = n > 0 ? (size_t)n : 0;
    }
    size_t off = 0;
    while (off + 9 <= size) {
        uint32_t len = hub_get_le32(buf + off + 1);
        if (len > ADP__JOURNAL_MAX_RECORD || off + 9 + len > size)
            break;
        uint32_t sum = adp__fnv(adp__fnv(2166136261u, buf + off, 5), buf + off + 5, len);
        if (sum != hub_get_le32(buf + off + 5 + len))
            break;
        replay(buf[off], buf + off + 5, len, user);
        j->records++;
        off += 9 + len;
    }
    free(buf);
    /* Drop a torn tail so that new records follow intact ones. */
    if (off < size && ftruncate(j->fd, (off_t)off) != 0) {
        snprintf(err, err_size, "cannot repair %s: %s", j->path, strerror(errno));
        close(j->fd);
        free(j);
        return HUB_EIO;
    }
    lseek(j->fd, 0, SEEK_END);
    *out = j;
    return 0;
}

int adp__journal_append(adp__journal_t *j, uint8_t type, const void *data, size_t len)
{
    int rc = adp__write_record(j->fd, type, data, len);
    if (rc == 0)
        j->records++;
    return rc;
}

int adp__journal_sync(adp__journal_t *j) { return fdatasync(j->fd) == 0 ? 0 : HUB_EIO; }

int adp__journal_compact(adp__journal_t *j, adp__journal_emit_cb emit, void *user)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", j->path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return HUB_EIO;
    int old = j->fd;
    j->fd = fd;
    j->records = 0;
    emit(j, user);
    if (fdatasync(fd) != 0 || rename(tmp, j->path) != 0) {
        close(fd);
        unlink(tmp);
        j->fd = old;
        return HUB_EIO;
    }
    close(old);
    lseek(fd, 0, SEEK_END);
    return 0;
}

uint64_t adp__journal_records(const adp__journal_t *j) { return j ? j->records : 0; }

void adp__journal_close(adp__journal_t **j_p)
{
    if (!j_p || !*j_p)
        return;
    fdatasync((*j_p)->fd);
    close((*j_p)->fd);
    free(*j_p);
    *j_p = NULL;
}
