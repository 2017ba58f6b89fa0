#include "core/err.h"

const char *gd_strerror(gd_err err)
{
    switch (err) {
    case GD_OK:
        return "ok";
    case GD_AGAIN:
        return "try again";
    case GD_ENOMEM:
        return "out of memory";
    case GD_EINVAL:
        return "invalid argument";
    case GD_ENOTFOUND:
        return "not found";
    case GD_ETOOBIG:
        return "too large";
    case GD_ESTORE:
        return "storage unavailable";
    case GD_EIO:
        return "input/output error";
    case GD_ECONFLICT:
        return "conflict";
    case GD_EBUSY:
        return "busy: a limit is reached";
    case GD_ESHUTDOWN:
        return "shutting down";
    case GD_EGONE:
        return "gone";
    case GD_EUNAVAIL:
        return "service unavailable";
    case GD_ETIMEOUT:
        return "timed out";
    case GD_ECANCELLED:
        return "cancelled";
    case GD_EDENIED:
        return "refused by policy";
    case GD_EPROTO:
        return "protocol error";
    case GD_EQUOTA:
        return "a per-user limit is reached";
    }
    return "unknown error";
}
