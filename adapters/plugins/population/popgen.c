/* lth-popgen — builds the population adapter's SQLite database offline.
 *
 *   lth-popgen --db FILE --citizens N --seed S
 *
 * The same data set the population plugin builds on first start with the
 * same plugin.citizens and plugin.seed (lth_popdb_build): identity,
 * permanent and temporary residence, household (head and relationship) and
 * parents. Every record is SYNTHETIC; the sample ID numbers printed at the end are synthetic too,
 * which is why this development tool may print them.
 */
#include "hub_error.h"
#include "lth_popdb.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POPGEN_SAMPLES 5

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: lth-popgen --db FILE [--citizens N] [--seed S]\n\n"
            "Builds a SQLite population database of N (default 10000, at most %u) SYNTHETIC\n"
            "citizens from seed S (default 1): the data set the population adapter builds\n"
            "with plugin.citizens = N and plugin.seed = S. FILE must not exist.\n",
            LTH_CITIZEN_MAX);
}

static int parse_u64(const char *opt, const char *text, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = *text >= '0' && *text <= '9' ? strtoull(text, &end, 10) : 0;
    if (!end || *end || errno || v > max) {
        fprintf(stderr, "lth-popgen: %s must be a whole number up to %" PRIu64 "\n", opt, max);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *db_path = NULL;
    uint64_t citizens = 10000, seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--db") && i + 1 < argc) {
            db_path = argv[++i];
        } else if (!strcmp(argv[i], "--citizens") && i + 1 < argc) {
            if (parse_u64("--citizens", argv[++i], LTH_CITIZEN_MAX, &citizens) != 0)
                return 2;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            if (parse_u64("--seed", argv[++i], UINT64_MAX, &seed) != 0)
                return 2;
        } else {
            fprintf(stderr, "lth-popgen: unknown or incomplete argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!db_path || citizens == 0) {
        if (citizens == 0)
            fprintf(stderr, "lth-popgen: --citizens must be at least 1\n");
        usage(stderr);
        return 2;
    }
    char err[HUB_ERRMSG_MAX] = "";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = lth_popdb_build(db_path, seed, (size_t)citizens, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "lth-popgen: %s\n", err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
    printf("built %s: %" PRIu64 " SYNTHETIC citizens (seed %" PRIu64 ") in %ld ms\n", db_path,
           citizens, seed, ms);
    printf("sample personal ID numbers (synthetic, no real person):\n");
    for (uint64_t i = 0; i < POPGEN_SAMPLES && i < citizens; i++) {
        lth_citizen_t c;
        static const char *const rel[] = {
            "?",          "head",          "spouse of",   "child of",      "parent of",
            "sibling of", "grandchild of", "relative of", "grandparent of"};
        if (lth_citizen_generate(seed, (size_t)i, &c) == 0)
            printf("  %s  %s, born %d, province %s, household: %s%s%s%s\n", c.personal_id,
                   c.sex == LTH_SEX_FEMALE ? "female" : "male", c.date_of_birth.year,
                   c.birth_province_code,
                   rel[c.relationship <= LTH_REL_GRANDPARENT ? c.relationship : 0],
                   c.relationship == LTH_REL_HEAD ? "" : " ",
                   c.relationship == LTH_REL_HEAD ? "" : c.head_personal_id,
                   c.temporary_residence[0] ? "; temporary residence" : "");
    }
    return 0;
}
