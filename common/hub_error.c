#include "hub_error.h"

#include <stdarg.h>
#include <stdio.h>

const char *hub_strerror(int code)
{
    switch (code) {
    case HUB_OK: return "success";
    case HUB_EINVAL: return "invalid argument or value";
    case HUB_ENOMEM: return "out of memory";
    case HUB_EIO: return "input/output error";
    case HUB_ENOENT: return "no such file or directory";
    case HUB_EPERM: return "permission problem (a secret key file must be mode 0600 or stricter)";
    case HUB_EPARSE: return "malformed input";
    case HUB_EZMQ: return "ZeroMQ call failed";
    case HUB_ETIMEDOUT: return "timed out waiting for an answer";
    case HUB_EREFUSED: return "the hub did not accept this member's key (is its .pub file in the hub's key directory?)";
    case HUB_ENACK: return "the hub refused the message";
    case HUB_EEXIST: return "already exists";
    case HUB_ECLOSED: return "closed";
    case HUB_EFULL: return "queue or store full";
    case HUB_ESTORE: return "the store is corrupt or unreadable";
    case HUB_EAGAIN: return "resource temporarily unavailable, try again";
    case HUB_ECRYPTO: return "cryptographic operation failed";
    case HUB_ENOTFOUND: return "not found";
    case HUB_EPLUGIN: return "adapter plugin could not be loaded";
    default: return "unknown error";
    }
}

void hub_errf(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || !err_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
}
