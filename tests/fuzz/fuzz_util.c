#include "fuzz_util.h"
#include "hub_arena.h"
#include "tkproc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz property broken: %s\n", file, line, what);
    abort();
}

void fuzz_sign_keys(uint8_t sign_public[32], uint8_t sign_secret[64])
{
    static const uint8_t seed[32] = {0};
    FUZZ_CHECK(sodium_init() >= 0);
    FUZZ_CHECK(crypto_sign_seed_keypair(sign_public, sign_secret, seed) == 0);
}

void fuzz_curve_keys(char curve_public[41], char curve_secret[41])
{
    static const uint8_t zeros[32] = {0};
    FUZZ_CHECK(zmq_z85_encode(curve_secret, zeros, sizeof zeros) != NULL);
    FUZZ_CHECK(zmq_curve_public(curve_public, curve_secret) == 0);
}

static char fuzz__dir[PATH_MAX];

static void fuzz__cleanup(void)
{
    if (fuzz__dir[0])
        tkp_rmrf(fuzz__dir);
}

const char *fuzz_tmpdir(void)
{
    if (fuzz__dir[0])
        return fuzz__dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;
    if (!base)
        base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(fuzz__dir, sizeof fuzz__dir, "%s/hub-fuzz-XXXXXX", base);
    FUZZ_CHECK(mkdtemp(fuzz__dir) != NULL);
    atexit(fuzz__cleanup);
    return fuzz__dir;
}

const char *fuzz_subdir(const char *name)
{
    /* A handful of names per process: a small table is enough. */
    static struct {
        char name[32];
        char path[PATH_MAX];
    } dirs[8];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!strcmp(dirs[i].name, name))
            return dirs[i].path;
        if (!dirs[i].name[0]) {
            FUZZ_CHECK(strlen(name) < sizeof dirs[i].name);
            snprintf(dirs[i].name, sizeof dirs[i].name, "%s", name);
            snprintf(dirs[i].path, sizeof dirs[i].path, "%s/%s", fuzz_tmpdir(), name);
            FUZZ_CHECK(mkdir(dirs[i].path, 0700) == 0 || errno == EEXIST);
            return dirs[i].path;
        }
    }
    fuzz_fail(__FILE__, __LINE__, "too many fuzz_subdir names");
}

void fuzz_write_file(const char *path, const void *data, size_t size, unsigned mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    FUZZ_CHECK(fd >= 0);
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        FUZZ_CHECK(n > 0);
        p += n;
        size -= (size_t)n;
    }
    FUZZ_CHECK(close(fd) == 0);
}

void fuzz_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    FUZZ_CHECK(d != NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) < (int)sizeof path)
            unlink(path);
    }
    closedir(d);
}

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FUZZ_CHECK(s != NULL);
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

bool fuzz_pb_has_unknown(const ProtobufCMessage *msg)
{
    if (!msg)
        return false;
    if (msg->n_unknown_fields)
        return true;
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *base = (const char *)msg;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (fuzz_pb_has_unknown(items[k]))
                    return true;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        if (fuzz_pb_has_unknown(*(ProtobufCMessage *const *)(base + f->offset)))
            return true;
    }
    return false;
}

hub_arena_t *fuzz_arena(void)
{
    static hub_arena_t arena;
    static bool ready;
    if (!ready) {
        hub_arena_init(&arena);
        ready = true;
    }
    hub_arena_reset(&arena);
    return &arena;
}
