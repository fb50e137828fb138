/* hubctl_archive — `hubctl archive keygen|show|verify`: the message archive
 * (hub_archive.h), read offline with the archive key. Returns the process
 * exit status. */
#ifndef HUBCTL_ARCHIVE_H
#define HUBCTL_ARCHIVE_H

#include <stdio.h>

void hubctl_archive_usage(FILE *out);
int hubctl_archive_main(int argc, char **argv);

#endif
