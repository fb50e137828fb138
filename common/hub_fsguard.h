/* hub_fsguard — refuses trust files an attacker could have planted.
 *
 * The hub admits members and allows calls on the word of a few files: the
 * key directory, the certificate directory, the CA certificate, the CRL,
 * the policy and the delegation files. Anyone who can write one of them
 * (or, for a directory, add a file to it) can admit a member or grant a
 * call. hub_fsguard_check() refuses a path that group or others may write,
 * or that belongs to a user other than root and the user the process runs
 * as; for a directory it checks the directory and every regular file in
 * it (not deeper). Symbolic links are followed: the file they lead to is
 * what is read.
 *
 * Every loader of such a file calls it before reading, so that hubd
 * refuses to start, and a reload (SIGHUP) keeps the running set, with one
 * sentence naming the path, its mode or owner and the fix, e.g.
 *   "key directory /etc/lth/keys is writable by group or others (mode
 *    0777), so any user of this machine could change whom the hub admits
 *    or allows; run 'chmod go-w /etc/lth/keys'".
 *
 * Returns 0 (also when the path does not exist: the loader reports that
 * in its own words), HUB_EPERM with the sentence in err, or HUB_EIO when
 * a directory cannot be listed.
 */
#ifndef HUB_FSGUARD_H
#define HUB_FSGUARD_H

#include <stddef.h>

/* what names the path in the sentence: "key directory", "policy file". */
int hub_fsguard_check(const char *path, const char *what, char *err, size_t err_size);

#endif
