/* hub_error — the error codes every Liên Thông Hub function returns.
 *
 * Functions return 0 on success or a negative HUB_E* code. hub_strerror()
 * gives a sentence that says what went wrong; callers add what they were doing
 * and what the user should do next. errno, libzmq and OpenSSL errors are
 * translated into these codes at the boundary where they occur.
 */
#ifndef HUB_ERROR_H
#define HUB_ERROR_H

#include <stddef.h>

enum {
    HUB_OK = 0,
    HUB_EINVAL = -1,     /* an argument or a value in a file is not valid */
    HUB_ENOMEM = -2,     /* out of memory */
    HUB_EIO = -3,        /* reading or writing a file failed */
    HUB_ENOENT = -4,     /* a file or directory does not exist */
    HUB_EPERM = -5,      /* a file's permissions are too open or deny access */
    HUB_EPARSE = -6,     /* input is malformed */
    HUB_EZMQ = -7,       /* a ZeroMQ call failed */
    HUB_ETIMEDOUT = -8,  /* no answer within the time allowed */
    HUB_EREFUSED = -9,   /* the hub did not accept this member's key */
    HUB_ENACK = -10,     /* the hub refused a message (see the NACK reason) */
    HUB_EEXIST = -11,    /* something already exists */
    HUB_ECLOSED = -12,   /* the object was closed or is shutting down */
    HUB_EFULL = -13,     /* a queue or the store is full */
    HUB_ESTORE = -14,    /* the store is corrupt or unreadable */
    HUB_EAGAIN = -15,    /* try again later */
    HUB_ECRYPTO = -16,   /* a cryptographic operation failed */
    HUB_ENOTFOUND = -17, /* no such item */
    HUB_EPLUGIN = -18,   /* an adapter plugin could not be loaded */
    HUB__ELAST = -19
};

/* Size of the buffers that carry a sentence about an error (char err[]). */
#define HUB_ERRMSG_MAX 512

/* A sentence explaining `code`; never NULL. */
const char *hub_strerror(int code);

/* Writes the formatted sentence into err (err_size bytes, cut to fit); does
 * nothing when err is NULL or err_size is 0. */
void hub_errf(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
