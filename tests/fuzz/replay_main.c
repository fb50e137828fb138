/* replay_main — runs a fuzz target's LLVMFuzzerTestOneInput() over files,
 * without libFuzzer, so that the ordinary build (and its sanitizer build)
 * replays every seed and regression input as a ctest.
 *
 *   fuzz_replay_<target> PATH...
 *
 * A directory means every file in it (not recursively, sorted by name, dot
 * files skipped); a missing directory is skipped, so that an empty
 * regressions/<target>/ needs no placeholder. Exits 1 when no input was run
 * or a file cannot be read; a broken property aborts.
 */
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int replay__file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            fprintf(stderr, "replay: out of memory reading %s\n", path);
            return -1;
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    /* An exact-size copy, so that ASan catches a read one byte too far. */
    uint8_t *input = malloc(len ? len : 1);
    if (!input) {
        free(buf);
        return -1;
    }
    memcpy(input, buf, len);
    free(buf);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(input, len);
    free(input);
    return 0;
}

static int replay__cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every file of dir; returns the number run, or -1. */
static long replay__dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof *grown);
            if (!grown)
                abort();
            names = grown;
        }
        names[count] = strdup(de->d_name);
        if (!names[count])
            abort();
        count++;
    }
    closedir(d);
    qsort(names, count, sizeof *names, replay__cmp);
    long run = 0;
    for (size_t i = 0; i < count; i++) {
        char path[PATH_MAX];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) < (int)sizeof path &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run >= 0 && replay__file(path) == 0)
                run++;
            else
                run = -1;
        }
        free(names[i]);
    }
    free(names);
    return run;
}

int main(int argc, char **argv)
{
    long total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s does not exist; skipped\n", argv[i]);
            continue;
        }
        long run = S_ISDIR(st.st_mode) ? replay__dir(argv[i]) : (replay__file(argv[i]) ? -1 : 1);
        if (run < 0)
            return 1;
        total += run;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    fprintf(stderr, "replay: %ld inputs, no property broken\n", total);
    return 0;
}
