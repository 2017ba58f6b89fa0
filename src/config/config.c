#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config/yamldoc.h"
#include "core/buf.h"
#include "core/fs.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/netaddr.h"

/* K_CSV: a string kept as given, which config.yaml may also give as a list (joined with commas);
 * K_NETS: the same, each item a host name, an address or a network (core/netaddr.h's list);
 * K_BOOL: true/false (yes/no, 1/0) into a bool, and a flag that takes no value; K_ONOFF: "on" or
 * "off" (stored as written); K_ROOTS: a list of existing directories, kept as real paths; K_LOGFMT:
 * "text" or "json" (log.h); K_RATIO: a decimal number from 0 to 1 into a double; K_NET: a boolean
 * (stored as "true" or "false") or "host"; K_URL: an http:// or https:// address of printable
 * ASCII without a query or fragment, kept without its trailing slashes; K_ABS: an absolute path,
 * kept as given. */
typedef enum {
    K_STR,
    K_URL,
    K_INT,
    K_LIST,
    K_LOG,
    K_MODE,
    K_CSV,
    K_NETS,
    K_BOOL,
    K_ONOFF,
    K_ROOTS,
    K_LOGFMT,
    K_RATIO,
    K_NET,
    K_ABS
} key_kind;

/* One row per setting: its config.yaml key, environment variable, flag, type and bounds. */
static const struct cfg_key {
    const char *file_key;
    const char *env;
    const char *flag;
    key_kind kind;
    long min, max;
    size_t off, size; /* where in config, and the size of a string field (K_LIST: where its
                         count is) */
    const char *what; /* "a port 0..65535": for messages */
} keys[] = {
#define STR(f) offsetof(config, f), sizeof(((config *)0)->f)
    {"GOOSE_HOST", "GOOSE_HOST", "host", K_STR, 1, 0, STR(host), "a host name or address"},
    {"GOOSE_PORT", "GOOSE_PORT", "port", K_INT, 0, 65535, offsetof(config, port), 0,
     "a port 0..65535"},
    {"GOOSE_PROVIDER", "GOOSE_PROVIDER", NULL, K_STR, 0, 0, STR(provider), "a provider name"},
    {"GOOSE_MODEL", "GOOSE_MODEL", NULL, K_STR, 0, 0, STR(model), "a model name"},
    {"api_timeout", "GOOSE_API_TIMEOUT", NULL, K_INT, 1, 86400, offsetof(config, api_timeout), 0,
     "a number of seconds 1..86400"},
    {"max_retries", "GOOSE_MAX_RETRIES", NULL, K_INT, 0, 100, offsetof(config, max_retries), 0,
     "an integer 0..100"},
    {"max_body_size", "GOOSE_MAX_BODY_SIZE", NULL, K_INT, 1024, 1L << 30,
     offsetof(config, max_body_size), 0, "a number of bytes 1024..1073741824"},
    {"max_answer_memory", "GOOSE_MAX_ANSWER_MEMORY", NULL, K_INT, 1024, 1L << 46,
     offsetof(config, max_answer_memory), 0, "a number of bytes from 1024"},
    {"GOOSE_MODE", "GOOSE_MODE", NULL, K_MODE, 0, 0, STR(mode),
     "an execution mode: auto, approve, smart_approve or chat"},
    {"GOOSE_MAX_TURNS", "GOOSE_MAX_TURNS", NULL, K_INT, 1, 100000, offsetof(config, max_turns), 0,
     "an integer 1..100000"},
#define LIM(key, env, f, lo, hi, what)                                                             \
    {                                                                                              \
        key, env, NULL, K_INT, lo, hi, offsetof(config, f), 0, what                                \
    }
    LIM("max_connections", "GOOSE_MAX_CONNECTIONS", max_connections, 16, 1000000,
        "a number of connections 16..1000000"),
    LIM("max_connections_per_client", "GOOSE_MAX_CONNECTIONS_PER_CLIENT",
        max_connections_per_client, 1, 1000000, "a number of connections 1..1000000"),
    LIM("header_timeout", "GOOSE_HEADER_TIMEOUT", header_timeout, 1, 3600,
        "a number of seconds 1..3600"),
    LIM("max_replies", "GOOSE_MAX_REPLIES", max_replies, 1, 1000000,
        "a number of replies 1..1000000"),
    LIM("max_replies_per_user", "GOOSE_MAX_REPLIES_PER_USER", max_replies_per_user, 0, 1000000,
        "a number of replies 0..1000000 (0: no limit)"),
    LIM("max_watchers_per_session", "GOOSE_MAX_WATCHERS_PER_SESSION", max_watchers_per_session, 1,
        1000000, "a number of clients 1..1000000"),
    LIM("store_queue_max", "GOOSE_STORE_QUEUE_MAX", store_queue_max, 1, 10000000,
        "a number of writes 1..10000000"),
    LIM("tool_workers", "GOOSE_TOOL_WORKERS", tool_workers, 1, 1024, "a number of threads 1..1024"),
    LIM("max_tool_processes", "GOOSE_MAX_TOOL_PROCESSES", max_tool_processes, 1, 100000,
        "a number of processes 1..100000"),
    LIM("tool_timeout", "GOOSE_TOOL_TIMEOUT", tool_timeout, 1, 86400,
        "a number of seconds 1..86400"),
    LIM("tool_output_cap", "GOOSE_TOOL_OUTPUT_CAP", tool_output_cap, 1024, 1L << 30,
        "a number of bytes 1024..1073741824"),
    LIM("context_limit", "GOOSE_CONTEXT_LIMIT", context_limit, 1000, 100000000,
        "a number of tokens 1000..100000000"),
    {"GOOSE_AUTO_COMPACT_THRESHOLD", "GOOSE_AUTO_COMPACT_THRESHOLD", NULL, K_RATIO, 0, 0,
     offsetof(config, auto_compact_threshold), 0,
     "a fraction of context_limit from 0 to 1, such as 0.8 (0 or 1: never compact)"},
    LIM("requests_per_minute", "GOOSE_REQUESTS_PER_MINUTE", requests_per_minute, 0, 100000000,
        "a number of requests 0..100000000 (0: no limit)"),
    LIM("max_sessions_per_user", "GOOSE_MAX_SESSIONS_PER_USER", max_sessions_per_user, 0, 100000000,
        "a number of sessions 0..100000000 (0: no limit)"),
    LIM("tool_max_memory", "GOOSE_TOOL_MAX_MEMORY", tool_max_memory, 0, 1L << 46,
        "a number of bytes (0: no limit)"),
    LIM("tool_max_cpu_seconds", "GOOSE_TOOL_MAX_CPU_SECONDS", tool_max_cpu_seconds, 0, 1L << 30,
        "a number of seconds (0: no limit)"),
    LIM("tool_max_file_size", "GOOSE_TOOL_MAX_FILE_SIZE", tool_max_file_size, 0, 1L << 50,
        "a number of bytes (0: no limit)"),
    LIM("tool_max_tmp_size", "GOOSE_TOOL_MAX_TMP_SIZE", tool_max_tmp_size, 0, 1L << 50,
        "a number of bytes (0: no limit)"),
    LIM("tool_max_user_processes", "GOOSE_TOOL_MAX_USER_PROCESSES", tool_max_user_processes, 0,
        10000000, "a number of processes (0: no limit)"),
#undef LIM
    {"batch_scheduling", "GOOSE_BATCH_SCHEDULING", NULL, K_BOOL, 0, 0,
     offsetof(config, batch_scheduling), 0, "true or false"},
    {"sandbox", "GOOSE_SANDBOX", NULL, K_ONOFF, 0, 0, STR(sandbox), "on or off"},
    {"tool_network", "GOOSE_TOOL_NETWORK", NULL, K_NET, 0, 0, STR(tool_network),
     "true, false or host"},
    {"bwrap_path", "GOOSE_BWRAP_PATH", NULL, K_STR, 0, 0, STR(bwrap_path),
     "the path of the bwrap executable"},
    {"allowed_roots", "GOOSE_ALLOWED_ROOTS", NULL, K_ROOTS, 0, 0, offsetof(config, roots), 0,
     "a list of existing directories"},
    {"user_workspaces", "GOOSE_USER_WORKSPACES", NULL, K_ABS, 0, 0, STR(user_workspaces),
     "an absolute path"},
    {"cors_origins", "GOOSE_CORS_ORIGINS", NULL, K_LIST, 0, 0, offsetof(config, cors),
     offsetof(config, ncors), "a list of origins such as https://app.example.com, or *"},
    {"allowed_hosts", "GOOSE_ALLOWED_HOSTS", NULL, K_LIST, 0, 0, offsetof(config, allowed_hosts),
     offsetof(config, nallowed_hosts), "a list of host names such as goose.example.com, or *"},
    {"log_level", "RUST_LOG", "log-level", K_LOG, 0, 0, STR(log_spec),
     "a level (error, warn, info, debug, trace) or a filter such as info,goose=debug"},
    {"log_format", "GOOSE_LOG_FORMAT", NULL, K_LOGFMT, 0, 0, STR(log_format), "text or json"},
    {"GOOSE_DISABLE_TELEMETRY", "GOOSE_DISABLE_TELEMETRY", NULL, K_BOOL, 0, 0,
     offsetof(config, disable_telemetry), 0, "true or false"},
    {"GOOSE_SERVER__SECRET_KEY", "GOOSE_SERVER__SECRET_KEY", NULL, K_STR, 0, 0, STR(secret_key),
     "a secret key of at most 511 bytes"},
    {"GOOSE_SERVER__SECRET_KEY_FILE", "GOOSE_SERVER__SECRET_KEY_FILE", NULL, K_STR, 0, 0,
     STR(secret_key_file), "the path of a file holding the secret key"},
    {"generate_secret", "GOOSE_GENERATE_SECRET", NULL, K_BOOL, 0, 0,
     offsetof(config, generate_secret), 0, "true or false"},
    {"trusted_proxy_header", "GOOSE_TRUSTED_PROXY_HEADER", NULL, K_STR, 0, 0,
     STR(trusted_proxy_header), "a header name such as X-Remote-User"},
    {"trusted_proxies", "GOOSE_TRUSTED_PROXIES", NULL, K_CSV, 0, 0, STR(trusted_proxies),
     "a list of proxy addresses such as 127.0.0.1"},
    {"insecure_no_auth", "GOOSE_INSECURE_NO_AUTH", "insecure-no-auth", K_BOOL, 0, 0,
     offsetof(config, insecure_no_auth), 0, "true or false"},
    {"user_extensions", "GOOSE_USER_EXTENSIONS", NULL, K_BOOL, 0, 0,
     offsetof(config, user_extensions), 0, "true or false"},
    {"user_extension_hosts", "GOOSE_USER_EXTENSION_HOSTS", NULL, K_NETS, 0, 0,
     STR(user_extension_hosts),
     "a list of host names, addresses or networks such as mcp.internal, 10.1.0.0/16, or *"},
    {"tls_cert", "GOOSE_TLS_CERT", NULL, K_STR, 0, 0, STR(tls_cert),
     "the path of a PEM certificate file"},
    {"tls_key", "GOOSE_TLS_KEY", NULL, K_STR, 0, 0, STR(tls_key),
     "the path of a PEM private key file"},
    {"tls_self_signed", "GOOSE_TLS_SELF_SIGNED", NULL, K_BOOL, 0, 0,
     offsetof(config, tls_self_signed), 0, "true or false"},
    {"tls_client_ca", "GOOSE_TLS_CLIENT_CA", NULL, K_STR, 0, 0, STR(tls_client_ca),
     "the path of a PEM file of CA certificates"},
    {"metrics", "GOOSE_METRICS", NULL, K_BOOL, 0, 0, offsetof(config, metrics), 0, "true or false"},
    {"metrics_listen", "GOOSE_METRICS_LISTEN", NULL, K_STR, 0, 0, STR(metrics_listen),
     "an address and port such as 127.0.0.1:9464"},
    {"public_url", "GOOSE_PUBLIC_URL", NULL, K_URL, 0, 0, STR(public_url),
     "the http:// or https:// address users reach goosed at, such as https://goose.example.com"},
#undef STR
};
#define NKEYS (sizeof keys / sizeof *keys)
_Static_assert(NKEYS <= CFG_MAX_KEYS, "config.h's CFG_MAX_KEYS is smaller than the table");

static const char usage[] =
    "Usage: goosed [options]\n"
    "\n"
    "goosed is a self-hostable AI agent server: sessions, messages and streamed replies over "
    "HTTP.\n"
    "\n"
    "Options:\n"
    "  --host HOST        address to bind (env GOOSE_HOST, default 127.0.0.1)\n"
    "  --port PORT        port to listen on, 0 for any free one (env GOOSE_PORT, default 3000)\n"
    "  --log-level SPEC   error|warn|info|debug|trace, or a filter like info,store=debug\n"
    "                     (env RUST_LOG, default info)\n"
    "  --config FILE      config.yaml to read (default $GOOSE_CONFIG_DIR/config.yaml or\n"
    "                     ~/.config/goose/config.yaml)\n"
    "  --insecure-no-auth serve a non-loopback address with no authentication\n"
    "  --help             show this help and exit\n"
    "  --version          show the version and exit\n"
    "\n"
    "Environment: GOOSE_HOST, GOOSE_PORT, GOOSE_CONFIG_DIR, GOOSE_PROVIDER, GOOSE_MODEL,\n"
    "GOOSE_API_TIMEOUT, GOOSE_MAX_RETRIES, GOOSE_MAX_BODY_SIZE, GOOSE_CORS_ORIGINS, RUST_LOG,\n"
    "GOOSE_SERVER__SECRET_KEY (clients then send it as X-Secret-Key), or\n"
    "GOOSE_SERVER__SECRET_KEY_FILE (a file holding it), or GOOSE_GENERATE_SECRET=true (made at\n"
    "first start into the data directory, file secret_key), GOOSE_TRUSTED_PROXY_HEADER,\n"
    "GOOSE_TRUSTED_PROXIES, GOOSE_INSECURE_NO_AUTH,\n"
    "GOOSE_TLS_CERT and GOOSE_TLS_KEY (serve HTTPS with these PEM files), GOOSE_TLS_SELF_SIGNED\n"
    "(serve HTTPS with a self-signed certificate made at first start),\n"
    "GOOSE_METRICS (false: no GET /metrics), GOOSE_METRICS_LISTEN (serve GET /metrics without\n"
    "authentication on this address, e.g. 127.0.0.1:9464),\n"
    "GOOSE_LOG_FORMAT (text or json), GOOSE_DISABLE_TELEMETRY, and the OpenTelemetry\n"
    "variables OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, ... (traces: see the README),\n"
    "XDG_DATA_HOME (sessions are stored in $XDG_DATA_HOME/goose/sessions/goosed.db).\n"
    "Precedence: flag > environment > config.yaml > default.\n";

const char *config_usage(void)
{
    return usage;
}

static void set_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 3000;
    snprintf(c->mode, sizeof c->mode, "auto");
    snprintf(c->log_format, sizeof c->log_format, "text");
    c->api_timeout = 600;
    c->max_retries = 3;
    c->max_turns = 1000;
    c->max_body_size = 10L * 1024 * 1024;
    c->max_answer_memory = 512L << 20;
    c->max_connections = 10000;
    c->max_connections_per_client = 1024;
    c->header_timeout = 15;
    c->max_replies = 5000;
    c->max_replies_per_user = 10;
    c->max_watchers_per_session = 256;
    c->store_queue_max = 100000;
    c->batch_scheduling = true;
    c->tool_workers = 16;
    c->max_tool_processes = 512;
    c->tool_timeout = 300;
    c->tool_output_cap = 64L * 1024;
    c->context_limit = 128000;
    c->auto_compact_threshold = 0.8;
    snprintf(c->sandbox, sizeof c->sandbox, "on");
    snprintf(c->tool_network, sizeof c->tool_network, "true");
    c->user_extensions = true;
    c->metrics = true;
    c->tool_max_memory = 4L << 30;
    c->tool_max_cpu_seconds = 3600;
    c->tool_max_file_size = 4L << 30;
    c->tool_max_tmp_size = 512L << 20;
    c->tool_max_user_processes = 4096;
    snprintf(c->log_spec, sizeof c->log_spec, "info");
}

/* The settings whose values are secrets: never shown by goose configure, nor echoed in a
 * message. */
static bool is_secret(const struct cfg_key *k)
{
    return k->off == offsetof(config, secret_key);
}

/* true/yes/1: 1; false/no/0: 0; anything else: -1. */
static int bool_word(const char *val)
{
    if (!strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "1")) return 1;
    if (!strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "0")) return 0;
    return -1;
}

/* Applies one scalar value to key k. `where` names its source for messages ("GOOSE_PORT",
 * "--port", "/x/config.yaml:3: api_timeout"). */
static gd_err apply(config *c, const struct cfg_key *k, const char *val, const char *where,
                    char *err, size_t errlen)
{
    char *base = (char *)c;
    switch (k->kind) {
    case K_BOOL: {
        int v = bool_word(val);
        if (v < 0) {
            snprintf(err, errlen, "%s: expected %s, got \"%.40s\"", where, k->what, val);
            return GD_EINVAL;
        }
        *(bool *)(base + k->off) = v;
        return GD_OK;
    }
    case K_URL: {
        size_t n = strlen(val);
        while (n && val[n - 1] == '/')
            n--;
        bool ok = n < k->size && (!strncmp(val, "http://", 7) || !strncmp(val, "https://", 8)) &&
                  n > (size_t)(val[4] == 's' ? 8 : 7);
        for (size_t i = 0; ok && i < n; i++)
            ok = val[i] > 0x20 && val[i] < 0x7f && val[i] != '?' && val[i] != '#';
        if (!ok) {
            snprintf(err, errlen, "%s: expected %s, got \"%.80s\"", where, k->what, val);
            return GD_EINVAL;
        }
        snprintf(base + k->off, k->size, "%.*s", (int)n, val);
        return GD_OK;
    }
    case K_NETS: {
        if (strlen(val) >= k->size) {
            snprintf(err, errlen,
                     "%s: the list is longer than %zu bytes (name networks, such as "
                     "10.0.0.0/8, rather than many addresses)",
                     where, k->size - 1);
            return GD_EINVAL;
        }
        net_allow *na = NULL;
        char why[200];
        gd_err e = net_allow_parse(val, &na, why, sizeof why);
        net_allow_free(na);
        if (e == GD_ENOMEM) {
            snprintf(err, errlen, "out of memory");
            return e;
        }
        if (e) {
            snprintf(err, errlen, "%s: expected %s: %s", where, k->what, why);
            return e;
        }
    }
        /* fall through */
    case K_CSV:
    case K_STR:
        if (strlen(val) >= k->size || (k->min > 0 && !*val)) {
            if (is_secret(k))
                snprintf(err, errlen, "%s: expected %s, got %zu bytes", where, k->what,
                         strlen(val));
            else
                snprintf(err, errlen, "%s: expected %s, got \"%.40s\"", where, k->what, val);
            return GD_EINVAL;
        }
        snprintf(base + k->off, k->size, "%s", val);
        return GD_OK;
    case K_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        bool digits =
            (*val >= '0' && *val <= '9') || (*val == '-' && val[1] >= '0' && val[1] <= '9');
        if (!digits || *end || errno || v < k->min || v > k->max) {
            snprintf(err, errlen, "%s: expected %s, got \"%.40s\"", where, k->what, val);
            return GD_EINVAL;
        }
        *(long *)(base + k->off) = v;
        return GD_OK;
    }
    case K_LIST: {
        /* A comma-separated string replaces the list. */
        char(*list)[256] = (char(*)[256])(base + k->off);
        int *count = (int *)(base + k->size);
        *count = 0;
        const char *p = val;
        while (*p) {
            while (*p == ' ' || *p == ',')
                p++;
            size_t n = strcspn(p, ", ");
            if (!n) break;
            if (*count == CFG_MAX_ORIGINS || n >= sizeof list[0]) {
                snprintf(err, errlen, "%s: expected %s (at most %d, each under %zu characters)",
                         where, k->what, CFG_MAX_ORIGINS, sizeof list[0]);
                return GD_EINVAL;
            }
            memcpy(list[*count], p, n);
            list[(*count)++][n] = '\0';
            p += n;
        }
        return GD_OK;
    }
    case K_NET: {
        int v = bool_word(val);
        if (v < 0 && strcmp(val, "host")) {
            snprintf(err, errlen, "%s: expected %s, got \"%.40s\"", where, k->what, val);
            return GD_EINVAL;
        }
        snprintf(base + k->off, k->size, "%s", v < 0 ? "host" : v ? "true" : "false");
        return GD_OK;
    }
    case K_ONOFF:
        if (!strcmp(val, "on") || !strcmp(val, "off")) {
            snprintf(base + k->off, k->size, "%s", val);
            return GD_OK;
        }
        snprintf(err, errlen, "%s: expected %s, got \"%.40s\"", where, k->what, val);
        return GD_EINVAL;
    case K_ABS:
        if (val[0] != '/' || strlen(val) >= k->size) {
            snprintf(err, errlen, "%s: expected %s, got \"%.40s\"", where, k->what, val);
            return GD_EINVAL;
        }
        snprintf(base + k->off, k->size, "%s", val);
        return GD_OK;
    case K_ROOTS: {
        /* A comma-separated string replaces the list; each entry resolved to its real path. */
        c->nroots = 0;
        const char *p = val;
        while (*p) {
            while (*p == ',')
                p++;
            size_t n = strcspn(p, ",");
            if (!n) break;
            char one[PATH_MAX];
            if (c->nroots == CFG_MAX_ROOTS || n >= sizeof one) {
                snprintf(err, errlen, "%s: expected %s (at most %d, each under %zu bytes)", where,
                         k->what, CFG_MAX_ROOTS, sizeof one);
                return GD_EINVAL;
            }
            memcpy(one, p, n);
            one[n] = '\0';
            if (one[0] != '/' || !realpath(one, c->roots[c->nroots])) {
                snprintf(err, errlen, "%s: %s: %s", where, one,
                         one[0] != '/' ? "not an absolute path" : strerror(errno));
                return GD_EINVAL;
            }
            c->nroots++;
            p += n;
        }
        return GD_OK;
    }
    case K_MODE: {
        static const char *const modes[] = {"auto", "approve", "smart_approve", "smart_approval",
                                            "chat"};
        for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
            if (!strcmp(val, modes[i])) {
                snprintf(base + k->off, k->size, "%s", val);
                return GD_OK;
            }
        snprintf(err, errlen, "%s: expected %s, got \"%.40s\"", where, k->what, val);
        return GD_EINVAL;
    }
    case K_RATIO: {
        char *end;
        errno = 0;
        double v = strtod(val, &end);
        /* digits only (no "nan", "inf", hex or exponent), within [0, 1] */
        if (!*val || *end || errno || strspn(val, "0123456789.") != strlen(val) || !(v >= 0) ||
            v > 1) {
            snprintf(err, errlen, "%s: expected %s, got \"%.40s\"", where, k->what, val);
            return GD_EINVAL;
        }
        *(double *)(base + k->off) = v;
        return GD_OK;
    }
    case K_LOGFMT: {
        log_format f;
        if (!log_parse_format(val, &f)) {
            snprintf(err, errlen, "%s: expected %s, got \"%.40s\"", where, k->what, val);
            return GD_EINVAL;
        }
        log_set_format(f);
        snprintf(base + k->off, k->size, "%s", val);
        return GD_OK;
    }
    case K_LOG: {
        char msg[200];
        if (log_configure(val, msg, sizeof msg) != GD_OK) {
            snprintf(err, errlen, "%s: %s", where, msg);
            return GD_EINVAL;
        }
        snprintf(base + k->off, k->size, "%s", val);
        return GD_OK;
    }
    }
    return GD_EINVAL;
}

static const struct cfg_key *find_file_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].file_key, name)) return &keys[i];
    return NULL;
}

/* Reads config.yaml. A missing file is fine unless `must_exist`. */
static gd_err load_file(config *c, const char *path, bool must_exist, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT && !must_exist) return GD_OK;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return GD_EINVAL;
    }
    snprintf(c->config_file, sizeof c->config_file, "%s", path);

    yaml_document_t doc;
    gd_err rc = GD_OK;
    if (!yamldoc_file(&doc, f, path, err, errlen)) {
        fclose(f);
        return GD_EINVAL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)
        root = NULL; /* an empty document */
    if (root && root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "%s:%zu: expected a mapping of keys to values at the top level", path,
                 root->start_mark.line + 1);
        rc = GD_EINVAL;
        goto out;
    }
    for (yaml_node_pair_t *pr = root ? root->data.mapping.pairs.start : NULL;
         pr && pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(&doc, pr->value);
        if (!kn || kn->type != YAML_SCALAR_NODE || !vn) continue;
        const char *name = (const char *)kn->data.scalar.value;
        const struct cfg_key *k = find_file_key(name);
        if (!k) continue; /* the real Goose keeps many other keys here */
        char where[PATH_MAX + 64];
        snprintf(where, sizeof where, "%s:%zu: %s", path, vn->start_mark.line + 1, name);
        c->source[k - keys] = CFG_SRC_FILE;
        if (vn->type == YAML_SCALAR_NODE) {
            rc = apply(c, k, (const char *)vn->data.scalar.value, where, err, errlen);
        } else if (vn->type == YAML_SEQUENCE_NODE && (k->kind == K_LIST || k->kind == K_CSV ||
                                                      k->kind == K_NETS || k->kind == K_ROOTS)) {
            buf joined;
            buf_init(&joined, BUF_CAP_CONFIG_LIST);
            for (yaml_node_item_t *it = vn->data.sequence.items.start;
                 it < vn->data.sequence.items.top; it++) {
                yaml_node_t *in = yaml_document_get_node(&doc, *it);
                if (!in || in->type != YAML_SCALAR_NODE) {
                    snprintf(err, errlen, "%s: expected %s", where, k->what);
                    rc = GD_EINVAL;
                    break;
                }
                if (buf_printf(&joined, "%s,", (const char *)in->data.scalar.value) != GD_OK) {
                    snprintf(err, errlen, "%s: expected %s (the list is too long)", where, k->what);
                    rc = GD_EINVAL;
                    break;
                }
            }
            if (!rc) rc = apply(c, k, joined.data ? joined.data : "", where, err, errlen);
            buf_free(&joined);
        } else {
            snprintf(err, errlen, "%s: expected %s, got a %s", where, k->what,
                     vn->type == YAML_MAPPING_NODE ? "mapping" : "list");
            rc = GD_EINVAL;
        }
        if (rc) break;
    }
out:
    yaml_document_delete(&doc);
    fclose(f);
    return rc;
}

/* Where config.yaml and the data live. Without HOME (and without the XDG variables that would
 * make it unnecessary) there is no safe default: a shared directory like /tmp would expose every
 * session, so that is an error. cfgpath is "" when no config file location is known. */
static gd_err default_paths(config *c, char *cfgpath, size_t cfglen, char *err, size_t errlen)
{
    const char *home = getenv("HOME");
    const char *dir = getenv("GOOSE_CONFIG_DIR");
    const char *xdg_cfg = getenv("XDG_CONFIG_HOME");
    const char *xdg_data = getenv("XDG_DATA_HOME");
    if (home && !*home) home = NULL;
    if (!home && !(xdg_data && *xdg_data)) {
        snprintf(err, errlen,
                 "HOME is not set: set HOME or XDG_DATA_HOME to say where sessions are stored");
        return GD_EINVAL;
    }
    cfgpath[0] = '\0';
    if (dir && *dir)
        snprintf(cfgpath, cfglen, "%s/config.yaml", dir);
    else if (xdg_cfg && *xdg_cfg)
        snprintf(cfgpath, cfglen, "%s/goose/config.yaml", xdg_cfg);
    else if (home)
        snprintf(cfgpath, cfglen, "%s/.config/goose/config.yaml", home);
    if (xdg_data && *xdg_data) {
        snprintf(c->data_dir, sizeof c->data_dir, "%s/goose/sessions", xdg_data);
        snprintf(c->user_workspaces, sizeof c->user_workspaces, "%s/goose/workspaces", xdg_data);
    } else {
        snprintf(c->data_dir, sizeof c->data_dir, "%s/.local/share/goose/sessions", home);
        snprintf(c->user_workspaces, sizeof c->user_workspaces, "%s/.local/share/goose/workspaces",
                 home);
    }
    return GD_OK;
}

/* path made absolute against the working directory, in place: goosed's own files are known to
 * the tools' sandbox by absolute paths (a relative one would be left in their reach). */
static gd_err absolute(char *path, size_t size, const char *what, char *err, size_t errlen)
{
    if (!path[0] || path[0] == '/') return GD_OK;
    char cwd[PATH_MAX], abs[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
        snprintf(err, errlen, "%s %.200s is relative and the working directory cannot be read: %s",
                 what, path, strerror(errno));
        return GD_EINVAL;
    }
    const char *rel = path;
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    if (snprintf(abs, sizeof abs, "%s/%s", strcmp(cwd, "/") ? cwd : "", rel) >= (int)sizeof abs ||
        strlen(abs) >= size) {
        snprintf(err, errlen, "%s %.200s: too long once made absolute", what, path);
        return GD_EINVAL;
    }
    memcpy(path, abs, strlen(abs) + 1);
    return GD_OK;
}

gd_err config_locate(config *c, const char *config_flag, char *err, size_t errlen)
{
    char cfgpath[PATH_MAX];
    gd_err rc = default_paths(c, cfgpath, sizeof cfgpath, err, errlen);
    if (rc) return rc;
    snprintf(c->config_path, sizeof c->config_path, "%s", config_flag ? config_flag : cfgpath);
    if ((rc = absolute(c->config_path, sizeof c->config_path, "the configuration file", err,
                       errlen)))
        return rc;
    if ((rc = absolute(c->data_dir, sizeof c->data_dir, "the data directory", err, errlen)))
        return rc;
    return absolute(c->user_workspaces, sizeof c->user_workspaces, "user_workspaces", err, errlen);
}

/* Whether path is inside dir, as written or once both are resolved (when they exist). */
static bool path_inside_real(const char *path, const char *dir)
{
    char rp[PATH_MAX], rd[PATH_MAX];
    return fs_inside(path, dir) || (realpath(path, rp) && realpath(dir, rd) && fs_inside(rp, rd));
}

/* user_workspaces must not lie in goosed's own configuration or data directory: the tools'
 * sandbox refuses a working directory there, and a user's commands must never reach them. */
gd_err config_check_workspaces(const config *c, char *err, size_t errlen)
{
    char cfg_dir[PATH_MAX];
    snprintf(cfg_dir, sizeof cfg_dir, "%s", c->config_path);
    char *slash = strrchr(cfg_dir, '/');
    if (slash) *slash = '\0';
    const char *in = c->data_dir[0] && path_inside_real(c->user_workspaces, c->data_dir)
                         ? c->data_dir
                     : cfg_dir[0] && path_inside_real(c->user_workspaces, cfg_dir) ? cfg_dir
                                                                                   : NULL;
    if (!in) return GD_OK;
    snprintf(err, errlen,
             "user_workspaces: %s is inside goosed's own %s directory %s, which tools never "
             "reach; choose a directory outside it",
             c->user_workspaces, in == c->data_dir ? "data" : "configuration", in);
    return GD_EINVAL;
}

gd_err config_load(config *c, int argc, char **argv, cfg_action *action, char *err, size_t errlen)
{
    const char *flagval[NKEYS] = {0};
    const char *config_flag = NULL;
    *action = CFG_RUN;
    set_defaults(c);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *action = CFG_HELP;
            return GD_OK;
        }
        if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
            *action = CFG_VERSION;
            return GD_OK;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%.60s\" (see --help)", a);
            return GD_EINVAL;
        }
        /* --name value or --name=value */
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *val = eq ? eq + 1 : NULL;
        const char **slot = NULL;
        if (nlen == 6 && !strncmp(name, "config", 6)) {
            slot = &config_flag;
        } else {
            for (size_t k = 0; k < NKEYS; k++)
                if (keys[k].flag && strlen(keys[k].flag) == nlen &&
                    !strncmp(keys[k].flag, name, nlen))
                    slot = &flagval[k];
        }
        if (!slot) {
            snprintf(err, errlen, "unknown option \"--%.*s\" (see --help)", (int)nlen, name);
            return GD_EINVAL;
        }
        for (size_t k = 0; !val && k < NKEYS; k++)
            if (slot == &flagval[k] && keys[k].kind == K_BOOL) val = "true"; /* a bare switch */
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option \"--%.*s\" needs a value", (int)nlen, name);
                return GD_EINVAL;
            }
            val = argv[++i];
        }
        *slot = val;
    }

    gd_err rc = config_locate(c, config_flag, err, errlen);
    if (rc) return rc;
    if (config_flag || c->config_path[0])
        rc = load_file(c, c->config_path, config_flag != NULL, err, errlen);
    if (rc) return rc;

    for (size_t k = 0; k < NKEYS; k++) {
        const char *v = getenv(keys[k].env);
        if (v && (*v || keys[k].kind == K_STR)) {
            if ((rc = apply(c, &keys[k], v, keys[k].env, err, errlen))) return rc;
            c->source[k] = CFG_SRC_ENV;
        }
    }
    for (size_t k = 0; k < NKEYS; k++) {
        char where[64];
        snprintf(where, sizeof where, "--%s", keys[k].flag ? keys[k].flag : "");
        if (flagval[k]) {
            if ((rc = apply(c, &keys[k], flagval[k], where, err, errlen))) return rc;
            c->source[k] = CFG_SRC_FLAG;
        }
    }
    /* Set by the admin inside goosed's own directories: said at once. The default lying there
     * (config.yaml in the home directory) is only warned about by the server. */
    const struct cfg_key *wk = find_file_key("user_workspaces");
    if (wk && c->source[wk - keys] != CFG_SRC_DEFAULT)
        return config_check_workspaces(c, err, errlen);
    return GD_OK;
}

/* ---- the table, for `goose configure` ---- */

size_t config_nkeys(void)
{
    return NKEYS;
}

config_key config_key_at(size_t i)
{
    const struct cfg_key *k = &keys[i];
    cfg_type t = k->kind == K_INT                          ? CFG_T_INT
                 : k->kind == K_BOOL                       ? CFG_T_BOOL
                 : k->kind == K_LIST || k->kind == K_ROOTS ? CFG_T_LIST
                                                           : CFG_T_STRING;
    return (config_key){k->file_key, k->env, k->flag, k->what, t, is_secret(k)};
}

int config_key_find(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].file_key, name) || !strcmp(keys[i].env, name)) return (int)i;
    return -1;
}

cfg_source config_source(const config *c, size_t i)
{
    return i < NKEYS ? (cfg_source)c->source[i] : CFG_SRC_DEFAULT;
}

const char *config_source_name(cfg_source s)
{
    static const char *const names[] = {"default", "file", "env", "flag"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "default";
}

gd_err config_value(const config *c, size_t i, buf *out)
{
    const struct cfg_key *k = &keys[i];
    const char *base = (const char *)c;
    gd_err e = GD_OK;
    switch (k->kind) {
    case K_INT:
        return buf_printf(out, "%ld", *(const long *)(base + k->off));
    case K_BOOL:
        return buf_puts(out, *(const bool *)(base + k->off) ? "true" : "false");
    case K_RATIO:
        return buf_printf(out, "%g", *(const double *)(base + k->off));
    case K_LIST: {
        const char(*list)[256] = (const char(*)[256])(base + k->off);
        int n = *(const int *)(base + k->size);
        for (int j = 0; j < n && !e; j++)
            e = buf_printf(out, "%s%s", j ? "," : "", list[j]);
        return e;
    }
    case K_ROOTS:
        for (int j = 0; j < c->nroots && !e; j++)
            e = buf_printf(out, "%s%s", j ? "," : "", c->roots[j]);
        return e;
    default:
        return buf_puts(out, base + k->off);
    }
}

gd_err config_check(size_t i, const char *val, char *err, size_t errlen)
{
    config *scratch = malloc(sizeof *scratch);
    if (!scratch) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    set_defaults(scratch);
    gd_err rc = apply(scratch, &keys[i], val, keys[i].file_key, err, errlen);
    free(scratch);
    return rc;
}

/* ---- where a session may work ---- */

bool config_user_confined(const char *user_id, bool admin)
{
    return !admin && user_id && user_id[0];
}

/* The workspace's path as configured (not resolved): user_workspaces/user_id. false (err set)
 * when user_id is not one of goosed's ids (a UUID: hex digits and dashes, safe as a name). */
static bool workspace_path(const config *c, const char *user_id, char out[PATH_MAX], char *err,
                           size_t errlen)
{
    if (!ids_is_uuid(user_id)) {
        snprintf(err, errlen, "the user's id is not one of goosed's: no workspace for it");
        return false;
    }
    if (snprintf(out, PATH_MAX, "%s/%s", c->user_workspaces, user_id) >= PATH_MAX) {
        snprintf(err, errlen, "user_workspaces: %s is too long", c->user_workspaces);
        return false;
    }
    return true;
}

gd_err config_user_workspace(const config *c, const char *user_id, char out[PATH_MAX], char *err,
                             size_t errlen)
{
    char ws[PATH_MAX], failed[PATH_MAX];
    if (!workspace_path(c, user_id, ws, err, errlen)) return GD_EINVAL;
    struct stat st;
    if (fs_mkdirs(c->user_workspaces, 0700, failed, sizeof failed) != 0 ||
        (mkdir(ws, 0700) != 0 && errno != EEXIST)) {
        int e = errno;
        snprintf(err, errlen, "cannot make the user's workspace %s: %s", ws, strerror(e));
        return GD_EIO;
    }
    /* goosed made it: a link or a file in its place is someone else's doing */
    if (lstat(ws, &st) != 0 || !S_ISDIR(st.st_mode) || !realpath(ws, out)) {
        snprintf(err, errlen, "the user's workspace %s is not a directory goosed made", ws);
        return GD_EIO;
    }
    return GD_OK;
}

/* The roots as one line for a message ("/srv/a, /srv/b"). */
static void roots_text(const config *c, char *list, size_t len)
{
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < c->nroots; i++) {
        int w = snprintf(list + used, len - used, "%s%s", i ? ", " : "", c->roots[i]);
        if (w > 0 && (size_t)w < len - used) used += (size_t)w;
    }
}

static bool inside_roots(const config *c, const char *dir)
{
    for (int i = 0; i < c->nroots; i++)
        if (fs_inside(dir, c->roots[i])) return true;
    return false;
}

int config_session_dir_check(const config *c, const char *user_id, bool admin, const char *field,
                             const char *dir, char *err, size_t errlen)
{
    char list[2048];
    roots_text(c, list, sizeof list);
    if (!config_user_confined(user_id, admin)) {
        if (c->nroots == 0 || inside_roots(c, dir)) return 0;
        snprintf(err, errlen,
                 "%s: %s is outside the directories sessions may be created in (allowed_roots: %s)",
                 field, dir, list);
        return 400;
    }
    char ws[PATH_MAX], why[PATH_MAX + 128], base[PATH_MAX];
    if (!workspace_path(c, user_id, ws, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s: %s", field, dir, why);
        return 400;
    }
    /* the workspaces as the real path of user_workspaces (goosed makes each, so no link lies
     * below it), dir being a real path too. Another user's workspace stays theirs even where
     * allowed_roots holds it, and so does a directory holding them all. */
    bool all = realpath(c->user_workspaces, base) != NULL;
    size_t n = all && strcmp(base, "/") ? strlen(base) : 0, idl = strlen(user_id);
    if (all && fs_inside(base, dir)) {
        /* refused: it is user_workspaces or holds it */
    } else if (all && fs_inside(dir, base)) {
        if (!strncmp(dir + n + 1, user_id, idl) &&
            (dir[n + 1 + idl] == '\0' || dir[n + 1 + idl] == '/'))
            return 0;
    } else if (c->nroots > 0 && inside_roots(c, dir)) {
        return 0;
    }
    snprintf(err, errlen,
             "%s: %s is outside the directories you may use: a user who is not an admin works in "
             "their own workspace, %s (where a session goes when no working directory is "
             "given)%s%s%s",
             field, dir, ws, c->nroots ? ", or inside allowed_roots (" : "", c->nroots ? list : "",
             c->nroots ? ")" : "");
    return 400;
}
