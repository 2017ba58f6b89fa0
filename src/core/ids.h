/* ids: random identifiers from libsodium's CSPRNG. */
#ifndef GD_IDS_H
#define GD_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define UUID_STR_LEN 37 /* 36 characters and the NUL */

/* Writes a lowercase RFC 4122 version-4 UUID into out. ids_init must have been called. */
void ids_uuid4(char out[UUID_STR_LEN]);
/* Writes a lowercase RFC 9562 version-7 UUID: the time in milliseconds, then a counter, then 62
 * random bits. The ids of one process increase (as strings too), so a table keyed by them
 * grows at one end of its index instead of touching a random page per insert. */
void ids_uuid7(char out[UUID_STR_LEN]);
/* Writes n-1 random URL-safe characters and a NUL into out (CSPRNG: for secrets). */
void ids_token(char *out, size_t n);
/* Writes 20 URL-safe characters and a NUL: unique, not secret (request ids). No system call:
 * a per-thread generator seeded once from the CSPRNG. */
#define REQUEST_ID_LEN 21
void ids_request_id(char out[REQUEST_ID_LEN]);
/* True when s looks like a lowercase UUID (36 chars, hex and dashes in place). */
bool ids_is_uuid(const char *s);
/* Returns -1 when libsodium cannot be initialised. */
int ids_init(void);

#endif
