#include "store/store.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char errmsg[512];

const char *store_errmsg(void)
{
    return errmsg[0] ? errmsg : "unknown storage error";
}

void store_set_errmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
}
