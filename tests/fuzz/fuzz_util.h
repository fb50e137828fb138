/* fuzz_util — what the fuzz targets in tests/fuzz share.
 *
 * Every target defines LLVMFuzzerTestOneInput(). The same source builds two
 * ways: linked with libFuzzer (-DHUB_FUZZ=ON, clang) to search for inputs,
 * and linked with replay_main.c in the ordinary build, where ctest feeds it
 * every file of tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/.
 *
 * The keys here are fake on purpose: every secret is derived from 32 zero
 * bytes, so seeds signed with them hold nothing worth protecting.
 *
 * Files: fuzz_tmpdir() makes one private directory per process (under
 * /dev/shm when it is writable, for speed) and removes it, with whatever the
 * target left in it, when the process exits normally.
 */
#ifndef HUB_FUZZ_UTIL_H
#define HUB_FUZZ_UTIL_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property every input must keep; a broken one aborts, which libFuzzer
 * reports as a crash (with the input saved) and the replay test as a failure. */
#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond))                                                                           \
            fuzz_fail(__FILE__, __LINE__, #cond);                                              \
    } while (0)

void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* Ed25519 key pair from a 32-byte all-zero seed (libsodium layout). */
void fuzz_sign_keys(uint8_t sign_public[32], uint8_t sign_secret[64]);
/* CURVE key pair (Z85, NUL-terminated) whose secret is 32 zero bytes. */
void fuzz_curve_keys(char curve_public[41], char curve_secret[41]);

/* The process's private directory; created on first use. */
const char *fuzz_tmpdir(void);
/* dir/name under fuzz_tmpdir(), made on first use; returns its path. */
const char *fuzz_subdir(const char *name);
/* Replaces path's content with data (mode applied on creation). */
void fuzz_write_file(const char *path, const void *data, size_t size, unsigned mode);
/* Removes every entry of dir (not recursively). */
void fuzz_empty_dir(const char *dir);
/* True when msg or any message inside it kept unknown fields. protobuf-c
 * keeps them and writes them out again, but accepts some that it then cannot
 * read back (field number 0 written as a multi-byte tag): a decoded message
 * with unknown fields need not survive re-encoding. */
bool fuzz_pb_has_unknown(const ProtobufCMessage *msg);
/* A malloc'ed NUL-terminated copy of data (which may hold NULs). */
char *fuzz_cstr(const uint8_t *data, size_t size);
/* The process's one arena for the in-place readers, emptied on each call
 * (what the previous caller read from it is gone). */
struct hub_arena;
struct hub_arena *fuzz_arena(void);

#endif
