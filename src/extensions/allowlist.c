/* allowlist: GOOSE_ALLOWLIST (see allowlist.h). The list lives in one struct under a mutex; a
 * URL is fetched by allowlist_start and then by a thread every ALLOWLIST_REFRESH_S (a failed
 * refresh keeps the list it had, and says so in the log); a file is read again when its
 * modification time or size changes. */
#define CURL_DISABLE_TYPECHECK
#include "extensions/allowlist.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "config/yamldoc.h"
#include "core/buf.h"
#include "core/log.h"

#define MAX_COMMANDS 4096
#define MAX_TOKENS   256

typedef enum { SRC_OFF, SRC_FILE, SRC_URL } src_kind;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool inited, started, stop, thread;
    pthread_t th;
    src_kind kind;
    bool warning, bypass;
    char src[PATH_MAX];
    char **cmds; /* the list when ok */
    size_t n;
    bool ok;
    char why[512];         /* when !ok: why there is no list */
    struct timespec mtime; /* SRC_FILE: the version read */
    off_t size;
    bool read_once;
} al = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static bool env_true(const char *name)
{
    const char *v = getenv(name);
    return v && !strcasecmp(v, "true");
}

static void free_list(char **cmds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(cmds[i]);
    free(cmds);
}

/* Parses the YAML list text: the commands (*out, *n; the caller frees them with free_list) or
 * GD_EINVAL with why. */
static gd_err parse_list(const char *text, size_t len, char ***out, size_t *n, char *why,
                         size_t whylen)
{
    yaml_document_t doc;
    if (!yamldoc_text(&doc, text, len, why, whylen)) return GD_EINVAL;
    gd_err e = GD_OK;
    char **cmds = NULL;
    size_t k = 0;
    yaml_node_t *list = yamldoc_get(&doc, yaml_document_get_root_node(&doc), "extensions");
    if (!list || list->type != YAML_SEQUENCE_NODE) {
        snprintf(why, whylen, "expected `extensions:` with a list of {id, command}");
        e = GD_EINVAL;
        goto out;
    }
    size_t total = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (total > MAX_COMMANDS) {
        snprintf(why, whylen, "more than %d entries", MAX_COMMANDS);
        e = GD_EINVAL;
        goto out;
    }
    cmds = calloc(total ? total : 1, sizeof *cmds);
    if (!cmds) {
        snprintf(why, whylen, "out of memory");
        e = GD_ENOMEM;
        goto out;
    }
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *en = yaml_document_get_node(&doc, *it);
        yaml_node_t *cn = yamldoc_get(&doc, en, "command"), *in = yamldoc_get(&doc, en, "id");
        const char *cmd =
            cn && cn->type == YAML_SCALAR_NODE ? (const char *)cn->data.scalar.value : NULL;
        const char *id =
            in && in->type == YAML_SCALAR_NODE ? (const char *)in->data.scalar.value : NULL;
        size_t i = (size_t)(it - list->data.sequence.items.start);
        if (!cmd || !id) {
            snprintf(why, whylen, "extensions[%zu] (line %zu): needs an id and a command", i,
                     en ? en->start_mark.line + 1 : 0);
            e = GD_EINVAL;
            goto out;
        }
        if (!(cmds[k++] = strdup(cmd))) {
            snprintf(why, whylen, "out of memory");
            e = GD_ENOMEM;
            goto out;
        }
    }
out:
    yaml_document_delete(&doc);
    if (e) {
        free_list(cmds, k);
        return e;
    }
    *out = cmds;
    *n = k;
    return GD_OK;
}

/* Installs a result: a new list, or (list NULL) why there is none. keep_old: a failed refresh
 * keeps a list that was there. Called with al.mu held. */
static void install(char **cmds, size_t n, const char *why, bool keep_old)
{
    if (!cmds && keep_old && al.ok) {
        log_warn("extensions", "GOOSE_ALLOWLIST %s: %s (the list fetched before stays in use)",
                 al.src, why);
        return;
    }
    free_list(al.cmds, al.n);
    al.cmds = cmds;
    al.n = cmds ? n : 0;
    al.ok = cmds != NULL;
    if (cmds) {
        al.why[0] = '\0';
        log_info("extensions", "GOOSE_ALLOWLIST %s: %zu command%s allowed", al.src, n,
                 n == 1 ? "" : "s");
    } else {
        snprintf(al.why, sizeof al.why, "%s", why);
        log_warn("extensions",
                 "GOOSE_ALLOWLIST %s is unavailable: %s: every stdio extension is refused", al.src,
                 why);
    }
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    return buf_append(b, data, size * nmemb) ? 0 : size * nmemb;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc = CURLE_FAILED_INIT;
static void curl_init(void)
{
    curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Fetches the URL and installs what it holds. Blocks up to ALLOWLIST_FETCH_TIMEOUT seconds:
 * never on an HTTP thread. */
static void fetch_url(bool keep_old)
{
    char why[512] = "";
    char **cmds = NULL;
    size_t n = 0;
    buf b;
    buf_init(&b, ALLOWLIST_MAX_BYTES);
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_rc == CURLE_OK ? curl_easy_init() : NULL;
    if (!c) {
        snprintf(why, sizeof why, "cannot fetch it: libcurl is not available");
    } else {
        char errbuf[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(c, CURLOPT_URL, al.src);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)ALLOWLIST_FETCH_TIMEOUT);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (rc == CURLE_WRITE_ERROR)
            snprintf(why, sizeof why, "it is larger than %u bytes", ALLOWLIST_MAX_BYTES);
        else if (rc != CURLE_OK)
            snprintf(why, sizeof why, "cannot fetch it: %s",
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        else if (status < 200 || status > 299)
            snprintf(why, sizeof why, "fetching it answered HTTP %ld", status);
        curl_easy_cleanup(c);
    }
    if (!why[0]) {
        char perr[400];
        if (parse_list(b.data ? b.data : "", b.len, &cmds, &n, perr, sizeof perr) != GD_OK)
            snprintf(why, sizeof why, "cannot parse it: %s", perr);
    }
    buf_free(&b);
    pthread_mutex_lock(&al.mu);
    install(cmds, n, why, keep_old);
    pthread_mutex_unlock(&al.mu);
}

/* SRC_FILE: reads the file again when it changed. Called with al.mu held (a small local file). */
static void refresh_file_locked(void)
{
    struct stat st;
    if (stat(al.src, &st) != 0) {
        char why[512];
        snprintf(why, sizeof why, "cannot read it: %s", strerror(errno));
        if (al.read_once || al.ok || strcmp(al.why, why) != 0) install(NULL, 0, why, false);
        al.read_once = false;
        return;
    }
    if (al.read_once && st.st_mtim.tv_sec == al.mtime.tv_sec &&
        st.st_mtim.tv_nsec == al.mtime.tv_nsec && st.st_size == al.size)
        return;
    al.read_once = true;
    al.mtime = st.st_mtim;
    al.size = st.st_size;
    char why[512] = "";
    char **cmds = NULL;
    size_t n = 0;
    buf b;
    buf_init(&b, ALLOWLIST_MAX_BYTES);
    FILE *f = fopen(al.src, "rb");
    if (!f) {
        snprintf(why, sizeof why, "cannot read it: %s", strerror(errno));
    } else {
        char chunk[4096];
        size_t r;
        gd_err e = GD_OK;
        while (!e && (r = fread(chunk, 1, sizeof chunk, f)) > 0)
            e = buf_append(&b, chunk, r);
        if (e == GD_ETOOBIG)
            snprintf(why, sizeof why, "it is larger than %u bytes", ALLOWLIST_MAX_BYTES);
        else if (e || ferror(f))
            snprintf(why, sizeof why, "cannot read it: %s", e ? gd_strerror(e) : "I/O error");
        fclose(f);
    }
    if (!why[0]) {
        char perr[400];
        if (parse_list(b.data ? b.data : "", b.len, &cmds, &n, perr, sizeof perr) != GD_OK)
            snprintf(why, sizeof why, "cannot parse it: %s", perr);
    }
    buf_free(&b);
    install(cmds, n, why, false);
}

/* Reads the environment once. Called with al.mu held. */
static void init_locked(void)
{
    if (al.inited) return;
    al.inited = true;
    const char *v = getenv("GOOSE_ALLOWLIST");
    al.warning = env_true("GOOSE_ALLOWLIST_WARNING");
    al.bypass = env_true("GOOSE_ALLOWLIST_BYPASS");
    if (!v || !*v) {
        al.kind = SRC_OFF;
        return;
    }
    if (!strncmp(v, "http://", 7) || !strncmp(v, "https://", 8)) {
        al.kind = SRC_URL;
        snprintf(al.src, sizeof al.src, "%s", v);
        snprintf(al.why, sizeof al.why, "not fetched yet");
    } else if (!strncmp(v, "file://", 7)) {
        al.kind = SRC_FILE;
        snprintf(al.src, sizeof al.src, "%s", v + 7);
    } else if (strstr(v, "://")) {
        al.kind = SRC_FILE; /* never readable: refused with why */
        snprintf(al.src, sizeof al.src, "%s", v);
        snprintf(al.why, sizeof al.why, "unsupported URL scheme (http:// or https:// only)");
        al.read_once = true; /* do not look for it as a file */
    } else {
        al.kind = SRC_FILE;
        snprintf(al.src, sizeof al.src, "%s", v);
    }
    if (al.bypass)
        log_warn("extensions", "GOOSE_ALLOWLIST_BYPASS=true: the allowlist is not enforced");
    else if (al.warning)
        log_warn("extensions", "GOOSE_ALLOWLIST_WARNING=true: the allowlist only warns");
}

static void *refresher(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&al.mu);
    while (!al.stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += ALLOWLIST_REFRESH_S;
        while (!al.stop && pthread_cond_timedwait(&al.cv, &al.mu, &until) != ETIMEDOUT) {
        }
        if (al.stop) break;
        pthread_mutex_unlock(&al.mu);
        fetch_url(true);
        pthread_mutex_lock(&al.mu);
    }
    pthread_mutex_unlock(&al.mu);
    return NULL;
}

void allowlist_start(void)
{
    pthread_mutex_lock(&al.mu);
    init_locked();
    bool url = al.kind == SRC_URL && !al.started;
    al.started = true;
    if (al.kind == SRC_FILE && strcmp(al.why, "unsupported URL scheme (http:// or https:// only)"))
        refresh_file_locked();
    pthread_mutex_unlock(&al.mu);
    if (!url) return;
    fetch_url(false);
    pthread_mutex_lock(&al.mu);
    al.stop = false;
    al.thread = pthread_create(&al.th, NULL, refresher, NULL) == 0;
    if (!al.thread)
        log_warn("extensions", "GOOSE_ALLOWLIST %s: cannot start the thread that refreshes it",
                 al.src);
    pthread_mutex_unlock(&al.mu);
}

void allowlist_stop(void)
{
    pthread_mutex_lock(&al.mu);
    bool join = al.thread;
    al.stop = true;
    al.thread = false;
    pthread_cond_broadcast(&al.cv);
    pthread_mutex_unlock(&al.mu);
    if (join) pthread_join(al.th, NULL);
    pthread_mutex_lock(&al.mu);
    free_list(al.cmds, al.n);
    al.cmds = NULL;
    al.n = 0;
    al.ok = false;
    al.inited = al.started = al.read_once = false;
    pthread_mutex_unlock(&al.mu);
}

/* ---- matching, as the real Goose does ---- */

typedef struct {
    int n;
    char *tok[MAX_TOKENS];
    char store[4096];
} tokens;

/* Drops a `.exe`, `.cmd` or `.bat` ending. */
static void strip_exe(char *t)
{
    size_t l = strlen(t);
    if (l > 4 &&
        (!strcmp(t + l - 4, ".exe") || !strcmp(t + l - 4, ".cmd") || !strcmp(t + l - 4, ".bat")))
        t[l - 4] = '\0';
}

/* Splits s on whitespace into t, normalized: `-y` dropped, `.exe` endings dropped, and (for
 * a command being checked, `versions`) `package@version` cut to `package` unless it starts with
 * '@'; the first token, a path into goosed's own directory, cut to its base name. false when s
 * does not fit. */
static bool tokenize(const char *s, tokens *t, bool versions)
{
    t->n = 0;
    size_t used = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        if (!*s) break;
        size_t n = strcspn(s, " \t\r\n");
        if (t->n == MAX_TOKENS || used + n + 1 > sizeof t->store) return false;
        char *tok = t->store + used;
        memcpy(tok, s, n);
        tok[n] = '\0';
        used += n + 1;
        s += n;
        if (!strcmp(tok, "-y")) continue;
        if (versions && tok[0] != '@') {
            char *at = strchr(tok, '@');
            if (at) *at = '\0';
        }
        strip_exe(tok);
        t->tok[t->n++] = tok;
    }
    return true;
}

static bool same_prefix(const tokens *list, const tokens *cmd, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list->tok[i], cmd->tok[i]) != 0) return false;
    return true;
}

gd_err allowlist_match(const char *cmdline, const char *const *commands, size_t n, char *why,
                       size_t len)
{
    if (!n) return GD_OK; /* an empty list restricts nothing, as in the real Goose */
    tokens *c = malloc(sizeof *c), *l = malloc(sizeof *l);
    gd_err e = GD_EDENIED;
    const char *longer = NULL;
    if (!c || !l) {
        snprintf(why, len, "out of memory checking the allowlist");
        goto out;
    }
    if (!tokenize(cmdline, c, true)) {
        snprintf(why, len, "the command '%.200s' is too long to check against the allowlist",
                 cmdline);
        goto out;
    }
    /* a path to goosed's own directory counts as the bare command (the real Goose's rule) */
    if (c->n && strchr(c->tok[0], '/')) {
        char self[PATH_MAX];
        ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
        if (sl > 0) {
            self[sl] = '\0';
            char *slash = strrchr(self, '/');
            if (slash) {
                slash[1] = '\0';
                size_t dl = strlen(self);
                if (!strncmp(c->tok[0], self, dl) && !strchr(c->tok[0] + dl, '/')) c->tok[0] += dl;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!tokenize(commands[i], l, false)) continue;
        if (l->n == c->n && same_prefix(l, c, l->n)) {
            e = GD_OK;
            goto out;
        }
        if (l->n && l->n < c->n && same_prefix(l, c, l->n)) longer = commands[i];
    }
    if (longer)
        snprintf(why, len,
                 "the command '%.200s' adds arguments to '%.200s', which the allowlist lists "
                 "(extra arguments are refused)",
                 cmdline, longer);
    else
        snprintf(why, len, "the command '%.200s' is not in the allowlist", cmdline);
out:
    free(c);
    free(l);
    return e;
}

gd_err allowlist_check(const json_t *cfg, char *why, size_t len)
{
    const char *type = json_string_value(json_object_get(cfg, "type"));
    if (!type || strcmp(type, "stdio") != 0) return GD_OK;
    const char *name = json_string_value(json_object_get(cfg, "name"));
    pthread_mutex_lock(&al.mu);
    if (!al.started) {
        init_locked();
        if (al.kind == SRC_URL) {
            /* allowlist_start was not called: fetch here once (never the case in goosed) */
            pthread_mutex_unlock(&al.mu);
            allowlist_start();
            pthread_mutex_lock(&al.mu);
        }
        al.started = true;
    }
    if (al.kind == SRC_OFF || al.bypass) {
        pthread_mutex_unlock(&al.mu);
        return GD_OK;
    }
    if (al.kind == SRC_FILE && strcmp(al.why, "unsupported URL scheme (http:// or https:// only)"))
        refresh_file_locked();
    /* the command line: cmd and args, joined with spaces */
    buf line;
    buf_init(&line, 64 << 10);
    gd_err e = buf_puts(&line, json_is_string(json_object_get(cfg, "cmd"))
                                   ? json_string_value(json_object_get(cfg, "cmd"))
                                   : "");
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(cfg, "args"), i, a)
    {
        if (!e) e = buf_printf(&line, " %s", json_is_string(a) ? json_string_value(a) : "");
    }
    char reason[768];
    gd_err r;
    if (e) {
        snprintf(reason, sizeof reason, "its command line is too long to check");
        r = GD_EDENIED;
    } else if (!al.ok) {
        snprintf(reason, sizeof reason, "GOOSE_ALLOWLIST (%.200s) is unavailable: %s", al.src,
                 al.why);
        r = GD_EDENIED;
    } else {
        r = allowlist_match(line.data ? line.data : "", (const char *const *)al.cmds, al.n, reason,
                            sizeof reason);
    }
    bool warn_only = al.warning;
    pthread_mutex_unlock(&al.mu);
    buf_free(&line);
    if (r == GD_OK) return GD_OK;
    if (warn_only) {
        log_warn("extensions", "extension %s: %s (allowed: GOOSE_ALLOWLIST_WARNING=true)",
                 name ? name : "?", reason);
        return GD_OK;
    }
    snprintf(why, len, "extension %s refused by GOOSE_ALLOWLIST: %s", name ? name : "?", reason);
    return GD_EDENIED;
}
