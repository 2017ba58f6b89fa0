/* config: the effective configuration, from flags > environment > config.yaml > defaults.
 * Every key is one row of the table in config.c. */
#ifndef GD_CONFIG_H
#define GD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

#define CFG_MAX_ORIGINS 32
#define CFG_MAX_ROOTS   16
#define CFG_MAX_KEYS    96 /* rows of config.c's table, at most */

/* Where a setting's effective value came from (config_source). */
typedef enum { CFG_SRC_DEFAULT, CFG_SRC_FILE, CFG_SRC_ENV, CFG_SRC_FLAG } cfg_source;

typedef struct {
    char host[256];
    long port;
    char provider[128]; /* "" when not configured */
    char model[256];    /* "" when not configured */
    char mode[32];      /* execution mode: auto, approve, smart_approve (smart_approval), chat */
    long api_timeout;   /* seconds */
    long max_retries;
    long max_body_size;     /* bytes */
    long max_answer_memory; /* bytes the exports and histories clients have not read hold, in all */
    long max_turns;         /* provider round trips in one reply */
    /* bounds: what one client, or all of them, may hold (each refused with 429/503) */
    long max_connections;            /* open HTTP connections in total */
    long max_connections_per_client; /* open HTTP connections from one client address */
    long header_timeout;             /* seconds to send a request's headers (slowloris) */
    long max_replies;                /* replies running at once, all sessions */
    long max_replies_per_user;       /* replies one user (with an id) runs at once; 0: no limit */
    long max_watchers_per_session;   /* SSE and WebSocket clients watching one session */
    long store_queue_max;            /* writes waiting for the store's writer */
    bool batch_scheduling;           /* SCHED_BATCH for goosed's threads (and its children) */
    long tool_workers;               /* threads for tools that block on the disk */
    long max_tool_processes;         /* tool child processes running at once */
    long tool_timeout;               /* seconds a tool call may run */
    long tool_output_cap;            /* bytes of a tool's output kept (per stream) */
    long context_limit;              /* tokens of history sent to the provider (estimated) */
    double auto_compact_threshold;   /* over this share of context_limit, the conversation is
                                      * summarized (agent/turn.c); 0 or 1: never */
    /* the tools' sandbox (src/extensions/sandbox.c) */
    char sandbox[8];              /* "on": bubblewrap, or no tools; "off": tools run open */
    char bwrap_path[PATH_MAX];    /* "" : bwrap found in PATH */
    char tool_network[8];         /* "true": the outside, not the host's loopback (slirp4netns);
                                   * "false": none; "host": goosed's own network */
    long tool_max_memory;         /* bytes of address space per process (RLIMIT_AS), 0: none */
    long tool_max_cpu_seconds;    /* CPU seconds per process (RLIMIT_CPU), 0: none */
    long tool_max_file_size;      /* bytes of one file written (RLIMIT_FSIZE), 0: none */
    long tool_max_tmp_size;       /* bytes of a sandbox's in-memory /tmp, and home, 0: none */
    long tool_max_user_processes; /* RLIMIT_NPROC, 0: none */
    int nroots;                   /* allowed_roots: 0 means anywhere */
    char roots[CFG_MAX_ROOTS][PATH_MAX]; /* real paths */
    /* where each user who is not an admin works: user_workspaces/USER_ID (absolute; default
     * $XDG_DATA_HOME/goose/workspaces, beside data_dir and never inside it) */
    char user_workspaces[PATH_MAX];
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
    char secret_key_file[PATH_MAX]; /* a file holding it instead (auth reads it); "" when none */
    bool generate_secret; /* none given: made at the first start into data_dir/secret_key */
    char trusted_proxy_header[128]; /* e.g. X-Remote-User; "" when no proxy is trusted */
    char trusted_proxies[1024];     /* their addresses, comma-separated */
    bool insecure_no_auth;          /* serve a non-loopback address with no authentication */
    long requests_per_minute;       /* per user (429 with Retry-After past it); 0: no limit */
    long max_sessions_per_user;     /* sessions one user may own; 0: no limit */
    bool user_extensions;           /* users may keep extensions of their own (true) */
    /* what users' own remote extensions (and their sessions') may reach besides public
     * addresses (core/netaddr.h's list, comma-separated; "*": anything) */
    char user_extension_hosts[8192];
    /* TLS on goosed itself (http/tls.h): certificate and key files, or a self-signed pair made
     * at first start in data_dir */
    char tls_cert[PATH_MAX];      /* PEM certificate (chain) file, "" when none */
    char tls_key[PATH_MAX];       /* PEM private key file, "" when none */
    bool tls_self_signed;         /* make (once) and serve a self-signed certificate */
    char tls_client_ca[PATH_MAX]; /* PEM CA certificates a client's certificate must chain
                                   * to (every connection must show one); "" when none */
    /* GET /metrics (core/metrics.h): off answers 404 and records nothing; metrics_listen
     * ("127.0.0.1:9464", "" for none) serves it without authentication on its own address */
    bool metrics;
    char metrics_listen[300];
    /* the address users' browsers reach goosed at (an extension's OAuth sign-in comes back to
     * it): "" derives it from a loopback host and port, else sign-ins are not offered */
    char public_url[1024];
    unsigned char source[CFG_MAX_KEYS]; /* a cfg_source per row of the table (config_key_at) */
} config;

typedef enum { CFG_RUN, CFG_HELP, CFG_VERSION } cfg_action;

/* Fills c from argv, the environment and config.yaml. On a bad flag, value or file returns
 * GD_EINVAL with a one-line message in err (naming the file, line and key, the variable, or
 * the flag). *action says whether to serve or to print help/version. */
/* Whether user_workspaces lies outside goosed's own configuration and data directories (where the
 * tools' sandbox lets no session work): GD_EINVAL with why in err otherwise. */
gd_err config_check_workspaces(const config *c, char *err, size_t errlen);
gd_err config_load(config *c, int argc, char **argv, cfg_action *action, char *err, size_t errlen);

/* The usage text for --help. */
const char *config_usage(void);

/* ---- the table, for `goose configure` ---- */
typedef enum { CFG_T_STRING, CFG_T_INT, CFG_T_BOOL, CFG_T_LIST } cfg_type;
typedef struct {
    const char *key;  /* config.yaml's key: "GOOSE_PORT", "api_timeout" */
    const char *env;  /* "GOOSE_PORT", "GOOSE_API_TIMEOUT" */
    const char *flag; /* "port" (as --port), or NULL */
    const char *what; /* the values it takes: "a port 0..65535" */
    cfg_type type;    /* CFG_T_LIST: config_value joins the items with commas */
    bool secret;      /* its value is never shown */
} config_key;

/* The number of settings (rows of the table). */
size_t config_nkeys(void);
/* Row i (< config_nkeys()); the strings are static. */
config_key config_key_at(size_t i);
/* The row whose config.yaml key or environment variable is name (exactly), or -1. */
int config_key_find(const char *name);
/* Where row i's value in c came from (config_load records it). */
cfg_source config_source(const config *c, size_t i);
/* "default", "file", "env" or "flag". Static. */
const char *config_source_name(cfg_source s);
/* Appends row i's value in c to out as text: a number, true/false, the string, or a list's items
 * joined with commas. A secret's value too: the caller must not show it. */
gd_err config_value(const config *c, size_t i, buf *out) BUF_MUST_CHECK;
/* GD_OK when val is a value row i accepts (as config.yaml, the variable or the flag would give
 * it), else GD_EINVAL with the table's message in err ("GOOSE_PORT: expected a port 0..65535,
 * got ..."); GD_ENOMEM. A log_level value is applied to this process's log filter. */
gd_err config_check(size_t i, const char *val, char *err, size_t errlen);
/* Sets c->config_path (config_flag when not NULL, else the default: $GOOSE_CONFIG_DIR,
 * $XDG_CONFIG_HOME/goose or ~/.config/goose, /config.yaml) and c->data_dir, reading nothing:
 * what config_load does first. GD_EINVAL with a message when HOME is not set. */
gd_err config_locate(config *c, const char *config_flag, char *err, size_t errlen);

/* ---- where a session may work ----
 * The local user (user_id "") and admins: inside allowed_roots, anywhere when it is unset. A user
 * who is not an admin: inside their own workspace (config_user_workspace), and inside
 * allowed_roots when it is set (the admin's explicit choice); nowhere else, whatever
 * allowed_roots says for admins. */

/* Whether a session of user_id (admin or not) is kept to its workspace and allowed_roots. */
bool config_user_confined(const char *user_id, bool admin);
/* The workspace of user_id (a user id of goosed's, a UUID): user_workspaces/USER_ID, made with
 * mode 0700 when missing (its parents too); its real path into out. GD_EINVAL when user_id is
 * not an id of goosed's, GD_EIO when it cannot be made or is not a directory; err says why. */
gd_err config_user_workspace(const config *c, const char *user_id, char out[PATH_MAX], char *err,
                             size_t errlen);
/* Whether a session of user_id (admin or not) may work in dir, an absolute real path (as
 * realpath gives it). 0 when it may; else 400 and err (PATH_MAX * 2 + 2560 bytes hold it) names
 * field, dir and where this user may create sessions. Reads nothing but user_workspaces' real
 * path; makes nothing. */
int config_session_dir_check(const config *c, const char *user_id, bool admin, const char *field,
                             const char *dir, char *err, size_t errlen);

#endif
