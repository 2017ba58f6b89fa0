/* clock: wall time as RFC 3339 and monotonic time for durations. */
#ifndef GD_CLOCK_H
#define GD_CLOCK_H

#include <stdint.h>
#include <time.h>

#define RFC3339_LEN 21 /* "2026-03-04T12:00:00Z" and the NUL */

void clock_rfc3339(time_t t, char out[RFC3339_LEN]);
uint64_t clock_mono_ns(void);

#endif
