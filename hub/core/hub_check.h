/* hub_check — `hubd --check-config`: loads everything hubd would load at
 * start (the configuration, the hub's key, the member keys or certificates
 * with the CA and its CRL, the agreements, the delegations, the operator
 * token) and looks at the store and the audit directory, without binding a
 * socket or writing anything, so that it may run next to a running hubd.
 *
 * Each finding is one line on `out`, nginx -t style, naming the file and
 * line to fix:  "FILE:LINE: error: WHAT; what to do" or "...: warning: ...".
 * A problem found in a file a setting names (a key file, the policy) is
 * reported against that file when the loader knows the line, else against
 * the configuration line that names it. Warnings do not fail the check.
 *
 * Returns the number of errors (0: hubd would start with this
 * configuration, as far as can be known without starting it).
 */
#ifndef HUB_CHECK_H
#define HUB_CHECK_H

#include <stdio.h>

int hub_check_config(const char *config_path, FILE *out);

#endif
