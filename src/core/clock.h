/* clock: wall time as RFC 3339 and monotonic time for durations. */
#ifndef GD_CLOCK_H
#define GD_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define RFC3339_LEN 21 /* "2026-03-04T12:00:00Z" and the NUL */

void clock_rfc3339(time_t t, char out[RFC3339_LEN]);
/* Parses an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS, an optional fraction, then Z or +HH:MM or
 * -HH:MM; "t" and "z" taken too) into microseconds since the epoch. false when s is not one, or
 * names a day or time that does not exist. */
bool clock_parse_rfc3339(const char *s, int64_t *us);
uint64_t clock_mono_ns(void);
/* The wall-clock time ms milliseconds from now: the deadline pthread_cond_timedwait takes (its
 * condition variables keep CLOCK_REALTIME). */
struct timespec clock_deadline(long ms);

#endif
