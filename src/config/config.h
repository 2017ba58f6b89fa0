/* config: the effective configuration, from flags > environment > config.yaml > defaults.
 * Every key is one row of the table in config.c. */
#ifndef GD_CONFIG_H
#define GD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define CFG_MAX_ORIGINS 32
#define CFG_MAX_ROOTS   16

typedef struct {
    char host[256];
    long port;
    char provider[128]; /* "" when not configured */
    char model[256];    /* "" when not configured */
    char mode[32];      /* execution mode: auto, approve, smart_approve (smart_approval), chat */
    long api_timeout;   /* seconds */
    long max_retries;
    long max_body_size; /* bytes */
    long max_turns;     /* provider round trips in one reply */
    /* bounds: what one client, or all of them, may hold (each refused with 429/503) */
    long max_connections;            /* open HTTP connections in total */
    long max_connections_per_client; /* open HTTP connections from one client address */
    long header_timeout;             /* seconds to send a request's headers (slowloris) */
    long max_replies;                /* replies running at once, all sessions */
    long max_replies_per_user;       /* replies one user (with an id) runs at once; 0: no limit */
    long max_watchers_per_session;   /* SSE and WebSocket clients watching one session */
    long store_queue_max;            /* writes waiting for the store's writer */
    long tool_workers;               /* threads for tools that block on the disk */
    long max_tool_processes;         /* tool child processes running at once */
    long tool_timeout;               /* seconds a tool call may run */
    long tool_output_cap;            /* bytes of a tool's output kept (per stream) */
    long context_limit;              /* tokens of history sent to the provider (estimated) */
    /* the tools' sandbox (src/extensions/sandbox.c) */
    char sandbox[8];              /* "on": bubblewrap, or no tools; "off": tools run open */
    char bwrap_path[PATH_MAX];    /* "" : bwrap found in PATH */
    bool tool_network;            /* false: --unshare-net */
    long tool_max_memory;         /* bytes of address space per process (RLIMIT_AS), 0: none */
    long tool_max_cpu_seconds;    /* CPU seconds per process (RLIMIT_CPU), 0: none */
    long tool_max_file_size;      /* bytes of one file written (RLIMIT_FSIZE), 0: none */
    long tool_max_user_processes; /* RLIMIT_NPROC, 0: none */
    int nroots;                   /* allowed_roots: 0 means anywhere */
    char roots[CFG_MAX_ROOTS][PATH_MAX]; /* real paths */
    char log_spec[256];
    char log_format[8];     /* "text" (the default) or "json": one JSON object per line */
    bool disable_telemetry; /* GOOSE_DISABLE_TELEMETRY: no OTLP export even when configured */
    int ncors;
    char cors[CFG_MAX_ORIGINS][256]; /* "*" alone allows every origin */
    int nallowed_hosts;
    char allowed_hosts[CFG_MAX_ORIGINS][256]; /* Host values served besides loopback names */
    char config_file[PATH_MAX];               /* the config.yaml read, "" when none was */
    char data_dir[PATH_MAX];                  /* where goosed.db lives */
    char config_path[PATH_MAX]; /* config.yaml (existing or not): API-made settings are saved there
                                 */
    /* authentication (auth/auth.h) */
    char secret_key[512];           /* GOOSE_SERVER__SECRET_KEY: the X-Secret-Key; "" when none */
    char trusted_proxy_header[128]; /* e.g. X-Remote-User; "" when no proxy is trusted */
    char trusted_proxies[1024];     /* their addresses, comma-separated */
    bool insecure_no_auth;          /* serve a non-loopback address with no authentication */
    long requests_per_minute;       /* per user (429 with Retry-After past it); 0: no limit */
    long max_sessions_per_user;     /* sessions one user may own; 0: no limit */
    bool user_extensions;           /* users may keep extensions of their own (true) */
    /* TLS on goosed itself (http/tls.h): certificate and key files, or a self-signed pair made
     * at first start in data_dir */
    char tls_cert[PATH_MAX]; /* PEM certificate (chain) file, "" when none */
    char tls_key[PATH_MAX];  /* PEM private key file, "" when none */
    bool tls_self_signed;    /* make (once) and serve a self-signed certificate */
} config;

typedef enum { CFG_RUN, CFG_HELP, CFG_VERSION } cfg_action;

/* Fills c from argv, the environment and config.yaml. On a bad flag, value or file returns
 * GD_EINVAL with a one-line message in err (naming the file, line and key, the variable, or
 * the flag). *action says whether to serve or to print help/version. */
gd_err config_load(config *c, int argc, char **argv, cfg_action *action, char *err, size_t errlen);

/* The usage text for --help. */
const char *config_usage(void);

#endif
