/* hubctl_opts — a command's options that take a text value, as a table
 * rather than one `else if` each:
 *
 *     const ctl_opt_t opts[] = {{"--from", &from}, {"--to", &to}, {NULL, NULL}};
 *     for (int i = 0; i < argc; i++) {
 *         if (ctl_opt_take(opts, argc, argv, &i))
 *             continue;
 *         ...flags, positional arguments, the usage error...
 *     }
 *
 * The table ends with {NULL, NULL}; each value points into argv.
 * Header-only, for the hubctl_*.c files.
 */
#ifndef HUBCTL_OPTS_H
#define HUBCTL_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;   /* "--from" */
    const char **value; /* where its value goes */
} ctl_opt_t;

/* Where the value of the option named `arg` goes, or NULL when opts does
 * not name it. */
static inline const char **ctl_opt_find(const ctl_opt_t *opts, const char *arg)
{
    for (const ctl_opt_t *o = opts; o->name; o++)
        if (!strcmp(arg, o->name))
            return o->value;
    return NULL;
}

/* When argv[*i] is one of opts and a value follows it: stores the value,
 * moves *i onto it and returns true. False otherwise (an option of the
 * table without its value included: the caller's usage error follows). */
static inline bool ctl_opt_take(const ctl_opt_t *opts, int argc, char **argv, int *i)
{
    const char **value = *i + 1 < argc ? ctl_opt_find(opts, argv[*i]) : NULL;
    if (!value)
        return false;
    *value = argv[++*i];
    return true;
}

/* Options that take a whole number, the same way:
 *
 *     const ctl_num_opt_t nums[] = {{"--count", &count}, {NULL, NULL}};
 *
 * The value is read with strtol (base 10); the command checks its range. */
typedef struct {
    const char *name; /* "--count" */
    long *value;      /* where its value goes */
} ctl_num_opt_t;

/* ctl_opt_take for nums. */
static inline bool ctl_num_take(const ctl_num_opt_t *nums, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        return false;
    for (const ctl_num_opt_t *o = nums; o->name; o++) {
        if (!strcmp(argv[*i], o->name)) {
            *o->value = strtol(argv[++*i], NULL, 10);
            return true;
        }
    }
    return false;
}

#endif
