/* One result type for the whole server. Values are never renumbered; add new ones at the end
 * and give each a message in err.c (the switch has no default, so the compiler flags a gap). */
#ifndef GD_ERR_H
#define GD_ERR_H

typedef enum {
    GD_OK = 0,
    GD_AGAIN = 1,       /* would block: try again later */
    GD_ENOMEM = 2,      /* out of memory */
    GD_EINVAL = 3,      /* invalid argument or input */
    GD_ENOTFOUND = 4,   /* no such object */
    GD_ETOOBIG = 5,     /* a capped buffer or value reached its cap */
    GD_ESTORE = 6,      /* the store failed (I/O, disk full, read-only, corrupt) */
    GD_EIO = 7,         /* an operating-system call failed */
    GD_ECONFLICT = 8,   /* the object exists or is busy */
    GD_EBUSY = 9,       /* a configured bound is reached (connections, replies, queue): later */
    GD_ESHUTDOWN = 10,  /* the server is shutting down */
    GD_EGONE = 11,      /* the object went away while in use (a session deleted mid-reply) */
    GD_EUNAVAIL = 12,   /* a service needed is unavailable (the provider client, libcurl) */
    GD_ETIMEOUT = 13,   /* an operation ran out of time */
    GD_ECANCELLED = 14, /* stopped on request */
    GD_EDENIED = 15,    /* refused by policy (the allowlist, the user's answer) */
    GD_EPROTO = 16,     /* a peer broke its protocol (garbage, a line past its cap) */
    GD_EQUOTA = 17,     /* a per-user bound is reached (replies): later, 429 */
#define GD_ERR_LAST GD_EQUOTA
} gd_err;

/* A static, human-readable description of err. */
const char *gd_strerror(gd_err err);

#endif
