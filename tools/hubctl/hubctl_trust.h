/* hubctl_trust — hubctl's trust commands, all offline (no running hub):
 *   ca init|crl        the operator's certificate authority (hub_cert.h)
 *   cert issue|revoke|show|verify   member certificates
 *   policy check|allowed            the data-sharing agreements (hub_policy.h)
 * Exit status as hubctl's: 0 success (allowed, valid); 1 failure (a file
 * cannot be read or written, a bad policy file); 2 usage; 4 refused (denied
 * by the policy, a certificate that the hub would refuse).
 */
#ifndef HUBCTL_TRUST_H
#define HUBCTL_TRUST_H

#include <stdbool.h>
#include <stdio.h>

/* True for "ca", "cert" and "policy". */
bool hubctl_trust_is_command(const char *cmd);
/* Runs cmd with its arguments (argv[0] is the first argument after cmd). */
int hubctl_trust_main(const char *cmd, int argc, char **argv);
/* The usage lines of these commands, for hubctl --help. */
void hubctl_trust_usage(FILE *out);

#endif
