/* hub_numfiles — the numbered files of a log directory ("audit-000001.log",
 * "archive-000001.lar"): listing them in order, naming them, reading and
 * writing them whole, and the one errno-to-HUB_E* mapping their readers and
 * writers share. Private to
 * hub/core (the audit log and the message archive).
 *
 * A file is PREFIX NUMBER SUFFIX with NUMBER at least six digits, as
 * hub_numfiles_name() writes it (no leading zeros beyond six digits, 1 to
 * HUB_NUMFILES_MAX); every other name is ignored.
 *
 * Thread safety: no state; any thread.
 */
#ifndef HUB_NUMFILES_H
#define HUB_NUMFILES_H

#include <stddef.h>

#define HUB_NUMFILES_MAX 999999999ul

typedef struct {
    unsigned long *numbers; /* ascending; malloc'ed (NULL when count is 0) */
    size_t count;
} hub_numfiles_t;

/* Writes PREFIX NUMBER SUFFIX into out (size bytes, truncated if short). */
void hub_numfiles_name(const char *prefix, unsigned long number, const char *suffix, char *out,
                       size_t size);
/* Lists dir's files named as above into *out (free out->numbers). Returns
 * 0, or hub_errno_code() of opendir's failure, or HUB_ENOMEM. */
int hub_numfiles_list(const char *dir, const char *prefix, const char *suffix, hub_numfiles_t *out);
/* Writes all len bytes to fd (retrying short writes and EINTR). Returns 0,
 * or the errno of the failed write. */
int hub_write_all(int fd, const void *buf, size_t len);
/* Reads the whole file name (relative to dir_fd, or AT_FDCWD) into a
 * malloc'ed buffer, never NULL on success, up to its end even if it grew
 * since it was opened. Returns 0, hub_errno_code() of a failed open or
 * read, or HUB_ENOMEM. */
int hub_read_all_at(int dir_fd, const char *name, char **buf_out, size_t *len_out);
/* errno as a HUB_E* code: ENOENT, EACCES/EPERM, ENOMEM, EEXIST; else HUB_EIO. */
int hub_errno_code(int e);

#endif
