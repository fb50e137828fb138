/* hubctl_ops — hubctl's operator commands over the hub's HTTP API (status,
 * members, flows, queues, dlq) and the connectivity probe (probe), as
 * functions hubctl's main() dispatches to.
 *
 * Settings come from the same file as hubctl's other commands (--config
 * FILE or $LTH_HUBCTL_CONFIG):
 *   http_url = http://127.0.0.1:8080      (the default when not set)
 *   http_token_file = operator.token      (for dlq; relative to the file)
 *   hub_endpoint, hub_key_file, member_key_file   (for probe)
 * and, per command, --url URL and --token-file FILE. HTTP commands work
 * without any config file against the default URL.
 *
 * Output: aligned tables for people, in Vietnamese unless LANG (or the
 * config key lang) says English (hubctl_i18n.h); --json prints the API's
 * JSON as it came, for scripts, in every language. Exit status as hubctl's: 0 success, 1 failure, 2
 * usage, 4 refused (token wrong or missing); probe exits 1 when any member
 * failed, naming each with its reason on stderr.
 */
#ifndef HUBCTL_OPS_H
#define HUBCTL_OPS_H

#include <stdbool.h>
#include <stdio.h>

/* True for the commands hubctl_ops_main() runs. */
bool hubctl_ops_is_command(const char *cmd);
/* Runs cmd with its arguments (argv[0] is the first argument after cmd).
 * config_path may be NULL ($LTH_HUBCTL_CONFIG, then defaults). */
int hubctl_ops_main(const char *config_path, const char *cmd, int argc, char **argv);
/* The usage lines of these commands, for hubctl --help. */
void hubctl_ops_usage(FILE *out);

#endif
