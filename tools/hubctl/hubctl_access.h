/* hubctl_access — `hubctl audit access`: who looked a person up, from the
 * population database's access register (lth_access.h), run by the data
 * owner, who holds the register's salt. Returns the process exit status. */
#ifndef HUBCTL_ACCESS_H
#define HUBCTL_ACCESS_H

#include <stdio.h>

void hubctl_access_usage(FILE *out);
int hubctl_access_main(int argc, char **argv);

#endif
