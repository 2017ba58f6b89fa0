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
    }
    return "unknown error";
}
