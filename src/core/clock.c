#include "core/clock.h"

#include <stdio.h>

void clock_rfc3339(time_t t, char out[RFC3339_LEN])
{
    struct tm tm;
    /* RFC 3339 has four-digit years: clamp anything else (a corrupt stored time) to the epoch. */
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999)
        gmtime_r(&(time_t){0}, &tm);
    if (strftime(out, RFC3339_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, RFC3339_LEN, "1970-01-01T00:00:00Z");
}

uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
