/* cli/client: the HTTP side of the client commands (see client.h). One libcurl easy handle per
 * request; an event stream is read with the providers' SSE reader. */
#include <curl/curl.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/client.h"
#include "core/utf8.h"
#include "http/http.h"
#include "providers/provider.h"

#define DEFAULT_URL   "http://127.0.0.1:3000"
#define CAP_ANSWER    (256u << 20) /* a plain answer (an export is the largest) */
#define CAP_ERROR     (64u << 10)  /* an error answer's body kept */
#define CAP_SSE_LINE  (16u << 20)  /* one line of the server's event stream */
#define CALL_TIMEOUT  300L         /* seconds a plain request may take */
#define CONN_TIMEOUT  10L          /* seconds to connect */
#define TICK_INTERVAL 100000       /* µs between ticks while a stream is open */

const char cl_common_help[] =
    "Common options:\n"
    "  --url URL       the server (default: GOOSE_SERVER_URL, else " DEFAULT_URL ")\n"
    "  --cacert FILE   trust this CA certificate for https (default: GOOSE_SERVER_CACERT;\n"
    "                  else the system's CAs)\n"
    "  --cert FILE     show this client certificate (PEM) to a server that asks for one\n"
    "                  (default: GOOSE_SERVER_CLIENT_CERT)\n"
    "  --key FILE      the client certificate's key, when not in its file (default:\n"
    "                  GOOSE_SERVER_CLIENT_KEY)\n"
    "  --json          the server's JSON instead of text\n"
    "  -v, --verbose   each request and its status on stderr (never the credentials)\n"
    "  -h, --help      this help\n"
    "\n"
    "Credentials: GOOSE_SERVER_TOKEN (a user's token, sent as Authorization: Bearer) or\n"
    "GOOSE_SERVER__SECRET_KEY (the server's key, sent as X-Secret-Key); the token when both are\n"
    "set. They are never printed.\n";

struct cl_client {
    char *base;  /* the URL without a trailing '/' */
    char *shown; /* the same without user:password@, for messages */
    const char *cacert, *cert, *key;
    const char *token, *secret;
    bool verbose;
    char *prog;
    /* cl_session_create: a 400 refusing the working directory to a user of a shared server is
     * not printed but noted, to ask again without it */
    bool quiet_workdir;
    bool workdir_refused;
};

int cl_opt_value(const char *prog, const char *name, const char *alias, int argc, char **argv,
                 int *i, const char **val)
{
    const char *a = argv[*i];
    const char *names[] = {name, alias};
    for (size_t k = 0; k < 2; k++) {
        const char *n = names[k];
        if (!n) continue;
        size_t len = strlen(n);
        if (strncmp(a, n, len)) continue;
        if (a[len] == '=' && n[1] == '-') {
            *val = a + len + 1;
            return 1;
        }
        if (a[len]) continue;
        if (*i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return -1;
        }
        *val = argv[++*i];
        return 1;
    }
    return 0;
}

int cl_common_opt(cl_common *c, const char *prog, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--json")) return c->json = true, 1;
    if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) return c->verbose = true, 1;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return c->help = true, 1;
    int r = cl_opt_value(prog, "--url", NULL, argc, argv, i, &c->url);
    if (r) return r;
    if ((r = cl_opt_value(prog, "--cert", NULL, argc, argv, i, &c->cert))) return r;
    if ((r = cl_opt_value(prog, "--key", NULL, argc, argv, i, &c->key))) return r;
    return cl_opt_value(prog, "--cacert", NULL, argc, argv, i, &c->cacert);
}

/* The URL without a user:password@ part (which a URL of a server behind auth_basic may hold). */
static char *shown_url(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *end = host + strcspn(host, "/?#");
    const char *at = NULL;
    for (const char *p = host; p < end; p++)
        if (*p == '@') at = p;
    if (!at) return strdup(url);
    size_t head = (size_t)(host - url);
    char *s = malloc(strlen(url) + 1);
    if (!s) return NULL;
    memcpy(s, url, head);
    strcpy(s + head, at + 1);
    return s;
}

cl_client *cl_open(const cl_common *c, const char *prog)
{
    const char *url = c->url;
    if (!url || !*url) url = getenv("GOOSE_SERVER_URL");
    if (!url || !*url) url = DEFAULT_URL;
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        fprintf(stderr, "%s: the server's URL must start with http:// or https://\n", prog);
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s: libcurl (libcurl.so.4) cannot be loaded or started\n", prog);
        return NULL;
    }
    cl_client *cl = calloc(1, sizeof *cl);
    if (!cl || !(cl->base = strdup(url)) || !(cl->prog = strdup(prog)) ||
        !(cl->shown = shown_url(url))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        cl_close(cl);
        return NULL;
    }
    size_t n = strlen(cl->base);
    while (n > 0 && cl->base[n - 1] == '/')
        cl->base[--n] = '\0';
    n = strlen(cl->shown);
    while (n > 0 && cl->shown[n - 1] == '/')
        cl->shown[--n] = '\0';
    cl->cacert = c->cacert && *c->cacert ? c->cacert : getenv("GOOSE_SERVER_CACERT");
    if (cl->cacert && !*cl->cacert) cl->cacert = NULL;
    cl->cert = c->cert && *c->cert ? c->cert : getenv("GOOSE_SERVER_CLIENT_CERT");
    if (cl->cert && !*cl->cert) cl->cert = NULL;
    cl->key = c->key && *c->key ? c->key : getenv("GOOSE_SERVER_CLIENT_KEY");
    if (cl->key && !*cl->key) cl->key = NULL;
    cl->token = getenv("GOOSE_SERVER_TOKEN");
    if (cl->token && !*cl->token) cl->token = NULL;
    cl->secret = getenv("GOOSE_SERVER__SECRET_KEY");
    if (cl->secret && !*cl->secret) cl->secret = NULL;
    cl->verbose = c->verbose;
    /* A credential goes into a header line: a control character in it would end the line. */
    const char *bad = NULL;
    for (const char *p = cl->token; p && *p && !bad; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) bad = "GOOSE_SERVER_TOKEN";
    for (const char *p = cl->secret; p && *p && !bad; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) bad = "GOOSE_SERVER__SECRET_KEY";
    if (bad) {
        fprintf(stderr, "%s: %s holds a control character (a line break?); not sent\n", prog, bad);
        cl_close(cl);
        return NULL;
    }
    return cl;
}

void cl_close(cl_client *cl)
{
    if (!cl) return;
    free(cl->base);
    free(cl->shown);
    free(cl->prog);
    free(cl);
}

const char *cl_prog(const cl_client *cl)
{
    return cl->prog;
}

char *cl_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ---- one request ---- */

typedef struct {
    buf body;        /* a plain answer, or an error answer's body */
    sse_reader *sse; /* a stream: its events go there (once the status is 2xx) */
    CURL *h;
    long status; /* known from the first byte of the body on */
    cl_event_fn fn;
    cl_tick_fn tick;
    void *ud;
    int (*stop)(void);   /* cl_call_until's */
    int stopped;         /* fn, tick or stop asked to stop */
    gd_err sse_err;      /* the stream broke its framing (a line past the cap) */
    const char *last_id; /* a stream taken up again: its Last-Event-ID, or NULL */
} xfer;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (!x->status) curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->sse && x->status >= 200 && x->status < 300) {
        gd_err e = sse_reader_feed(x->sse, data, len);
        if (x->stopped) return 0;
        if (e) {
            x->sse_err = e;
            return 0;
        }
        return len;
    }
    if (buf_append(&x->body, data, len)) {
        /* An error's body is only for its message: the start is enough. */
        if (x->body.cap == CAP_ERROR || (x->status && (x->status < 200 || x->status >= 300)))
            return len;
        return 0;
    }
    return len;
}

static gd_err on_sse_event(void *ud, const char *event, const char *data)
{
    xfer *x = ud;
    if (x->stopped) return GD_ECANCELLED;
    const char *id = sse_reader_last_id(x->sse);
    if (x->fn(x->ud, event ? event : "message", id ? id : "", data)) {
        x->stopped = 1;
        return GD_ECANCELLED;
    }
    return GD_OK;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    xfer *x = ud;
    if (x->tick && !x->stopped && x->tick(x->ud)) x->stopped = 1;
    if (x->stop && !x->stopped && x->stop()) x->stopped = 1;
    return x->stopped;
}

/* The reason phrase of status, or "" when it has none worth printing. */
static const char *status_text(long s)
{
    const char *t = http_reason((int)s);
    return strcmp(t, "Unknown") ? t : "";
}

/* Says the error answer x holds: its status and the server's message, in one line. */
static void say_status(cl_client *cl, xfer *x)
{
    const char *msg = NULL;
    json_t *j = x->body.len ? json_loadb(x->body.data, x->body.len, 0, NULL) : NULL;
    if (json_is_object(j)) msg = cl_str(j, "error", cl_str(j, "message", NULL));
    char text[512] = "";
    if (!msg && x->body.len && !j) {
        /* Not JSON (a proxy's page): its first line, printable bytes only. */
        size_t k = 0;
        for (size_t i = 0; i < x->body.len && k < sizeof text - 1; i++) {
            unsigned char c = (unsigned char)x->body.data[i];
            if (c == '\n' && k) break;
            if (c >= 0x20 && c != 0x7f) text[k++] = (char)c;
        }
        text[k] = '\0';
        if (k) msg = text;
    }
    if (cl->quiet_workdir && x->status == 400 && msg &&
        strstr(msg, "works in their own workspace")) {
        cl->workdir_refused = true;
        json_decref(j);
        return;
    }
    fprintf(stderr, "%s: the server answered %ld%s%s%s", cl->prog, x->status,
            *status_text(x->status) ? " " : "", status_text(x->status), msg ? ": " : "");
    cl_puts_text(stderr, msg ? msg : "");
    fputc('\n', stderr);
    if (x->status == 401)
        fprintf(stderr,
                "%s: set GOOSE_SERVER_TOKEN (a user's token) or GOOSE_SERVER__SECRET_KEY "
                "(the server's key)%s\n",
                cl->prog, cl->token || cl->secret ? "; the one given was refused" : "");
    json_decref(j);
}

/* Says why the transfer failed (rc), naming the server's URL. */
static void say_transport(cl_client *cl, CURLcode rc, const char *errbuf)
{
    const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
    /* The server's TLS alert: it asks for a client certificate, or refused the one shown (TLS
     * 1.3 checks it after the client's side of the handshake: the alert comes at a read). */
    if ((rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_SSL_CONNECT_ERROR) &&
        (strstr(why, "alert certificate required") || strstr(why, "alert bad certificate") ||
         strstr(why, "alert unknown ca"))) {
        fprintf(stderr,
                "%s: the server at %s %s (%s); give one its CA issued with --cert FILE (and "
                "--key FILE), or GOOSE_SERVER_CLIENT_CERT and GOOSE_SERVER_CLIENT_KEY\n",
                cl->prog, cl->shown,
                cl->cert ? "refused the client certificate shown" : "asks for a client certificate",
                why);
        return;
    }
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        fprintf(stderr,
                "%s: no server is running at %s (%s); start one with `goose server`, or give its "
                "address with --url or GOOSE_SERVER_URL\n",
                cl->prog, cl->shown, why);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        fprintf(stderr, "%s: the server's host in %s is not known (%s)\n", cl->prog, cl->shown,
                why);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
        fprintf(stderr,
                "%s: the TLS connection to %s failed (%s); for a self-signed certificate give its "
                "CA with --cacert FILE or GOOSE_SERVER_CACERT\n",
                cl->prog, cl->shown, why);
        break;
    default:
        fprintf(stderr, "%s: the request to %s failed: %s\n", cl->prog, cl->shown, why);
    }
}

static void noop_signal(int sig)
{
    (void)sig;
}

/* Runs one request. 0: a status arrived (x->status); 1: the transport failed (said); 3: fn or
 * tick stopped it. */
static int perform(cl_client *cl, const char *method, const char *path, const char *body, xfer *x)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    buf url, hdr;
    buf_init(&url, 64u << 10);
    buf_init(&hdr, 8u << 10);
    CURL *h = curl_easy_init();
    struct curl_slist *headers = NULL;
    int ret = 1;
    if (!h || buf_printf(&url, "%s%s", cl->base, path)) {
        fprintf(stderr, "%s: cannot start a request (out of memory or no libcurl)\n", cl->prog);
        goto out;
    }
    x->h = h;
    bool has_body = body != NULL || strcmp(method, "GET");
    gd_err e = GD_OK;
    if (has_body) headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers,
                                x->sse ? "Accept: text/event-stream" : "Accept: application/json");
    if (x->last_id) {
        buf_reset(&hdr);
        e = buf_printf(&hdr, "Last-Event-ID: %s", x->last_id);
        if (!e) headers = curl_slist_append(headers, hdr.data);
    }
    if (cl->token) {
        buf_reset(&hdr);
        e = buf_printf(&hdr, "Authorization: Bearer %s", cl->token);
        if (!e) headers = curl_slist_append(headers, hdr.data);
    } else if (cl->secret) {
        buf_reset(&hdr);
        e = buf_printf(&hdr, "X-Secret-Key: %s", cl->secret);
        if (!e) headers = curl_slist_append(headers, hdr.data);
    }
    /* The header's copy is in the list now; this one goes. */
    if (hdr.data) memset(hdr.data, 0, hdr.len);
    if (e || !headers) {
        fprintf(stderr, "%s: out of memory\n", cl->prog);
        goto out;
    }
    if (cl->verbose) {
        fprintf(stderr, "> %s %s%s\n", method, cl->shown, path);
        if (cl->token)
            fprintf(stderr, "> Authorization: Bearer (GOOSE_SERVER_TOKEN, not shown)\n");
        else if (cl->secret)
            fprintf(stderr, "> X-Secret-Key: (GOOSE_SERVER__SECRET_KEY, not shown)\n");
        if (body) fprintf(stderr, "> (%zu bytes of JSON)\n", strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (has_body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONN_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "goose/" GOOSED_VERSION);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cl->cacert) curl_easy_setopt(h, CURLOPT_CAINFO, cl->cacert);
    if (cl->cert) curl_easy_setopt(h, CURLOPT_SSLCERT, cl->cert);
    if (cl->key) curl_easy_setopt(h, CURLOPT_SSLKEY, cl->key);
    if (x->sse) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_TIMEOUT, CALL_TIMEOUT);
        if (x->stop) {
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
        }
    }

    /* A stream ticks: SIGALRM every 100 ms wakes libcurl's poll so that the progress function
     * runs (spinner, Ctrl-C) even while nothing arrives. */
    struct sigaction old_sa;
    struct itimerval tick = {{0, TICK_INTERVAL}, {0, TICK_INTERVAL}}, off = {{0, 0}, {0, 0}};
    if (x->sse) {
        struct sigaction sa = {0};
        sa.sa_handler = noop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, &old_sa);
        setitimer(ITIMER_REAL, &tick, NULL);
    }
    CURLcode rc = curl_easy_perform(h);
    if (x->sse) {
        setitimer(ITIMER_REAL, &off, NULL);
        sigaction(SIGALRM, &old_sa, NULL);
    }
    if (!x->status) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->stopped) {
        ret = 3;
    } else if (rc == CURLE_WRITE_ERROR && x->sse_err) {
        fprintf(stderr, "%s: the server's event stream broke: %s\n", cl->prog,
                gd_strerror(x->sse_err));
    } else if (rc == CURLE_WRITE_ERROR) {
        fprintf(stderr, "%s: the server's answer is too large (over %u MiB)\n", cl->prog,
                CAP_ANSWER >> 20);
    } else if (rc != CURLE_OK) {
        say_transport(cl, rc, errbuf);
    } else {
        if (cl->verbose) fprintf(stderr, "< %ld\n", x->status);
        ret = 0;
    }
out:
    curl_slist_free_all(headers);
    if (h) curl_easy_cleanup(h);
    buf_free(&url);
    buf_free(&hdr);
    return ret;
}

static json_t *call(cl_client *cl, const char *method, const char *path, const char *body,
                    long *status, int (*stop)(void))
{
    xfer x = {.stop = stop};
    buf_init(&x.body, CAP_ANSWER);
    json_t *v = NULL;
    if (perform(cl, method, path, body, &x)) goto out;
    if (status) *status = x.status;
    if (x.status < 200 || x.status >= 300) {
        say_status(cl, &x);
        goto out;
    }
    if (!x.body.len) {
        v = json_null();
    } else if (!(v = json_loadb(x.body.data, x.body.len, JSON_ALLOW_NUL, NULL))) {
        fprintf(stderr,
                "%s: the server at %s answered with something that is not JSON (is it a "
                "goosed?)\n",
                cl->prog, cl->shown);
        goto out;
    }
    if (!v) fprintf(stderr, "%s: out of memory\n", cl->prog);
out:
    buf_free(&x.body);
    return v;
}

json_t *cl_call(cl_client *cl, const char *method, const char *path, const char *body, long *status)
{
    return call(cl, method, path, body, status, NULL);
}

json_t *cl_call_until(cl_client *cl, const char *method, const char *path, const char *body,
                      int (*stop)(void))
{
    return call(cl, method, path, body, NULL, stop);
}

json_t *cl_call_json(cl_client *cl, const char *method, const char *path, json_t *body,
                     long *status)
{
    char *text = NULL;
    if (body && !(text = json_dumps(body, JSON_COMPACT))) {
        fprintf(stderr, "%s: out of memory\n", cl->prog);
        return NULL;
    }
    json_t *v = cl_call(cl, method, path, text, status);
    free(text);
    return v;
}

static int stream(cl_client *cl, const char *method, const char *path, const char *body,
                  const char *last_id, cl_event_fn fn, cl_tick_fn tick, void *ud)
{
    xfer x = {.last_id = last_id};
    buf_init(&x.body, CAP_ERROR);
    x.fn = fn;
    x.tick = tick;
    x.ud = ud;
    x.sse = sse_reader_new(CAP_SSE_LINE, on_sse_event, &x);
    if (!x.sse) {
        fprintf(stderr, "%s: out of memory\n", cl->prog);
        return 1;
    }
    int r = perform(cl, method, path, body, &x);
    if (r == 0 && (x.status < 200 || x.status >= 300)) {
        say_status(cl, &x);
        r = 2;
    } else if (r == 0) {
        /* A last event without its blank line. */
        if (sse_reader_end(x.sse) == GD_ECANCELLED || x.stopped) r = 3;
    }
    sse_reader_free(x.sse);
    buf_free(&x.body);
    return r;
}

int cl_stream(cl_client *cl, const char *path, const char *body, cl_event_fn fn, cl_tick_fn tick,
              void *ud)
{
    return stream(cl, "POST", path, body, NULL, fn, tick, ud);
}

int cl_stream_from(cl_client *cl, const char *path, const char *last_id, cl_event_fn fn,
                   cl_tick_fn tick, void *ud)
{
    return stream(cl, "GET", path, NULL, last_id, fn, tick, ud);
}

void cl_print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', stdout);
}

bool cl_read_file(const char *prog, const char *path, size_t cap, buf *out)
{
    buf_init(out, cap);
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(errno));
        return false;
    }
    char chunk[65536];
    size_t n;
    gd_err e = GD_OK;
    while (!e && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        e = buf_append(out, chunk, n);
    bool bad = ferror(f);
    if (f != stdin) fclose(f);
    if (!e && !bad) e = buf_append(out, "", 1); /* the NUL, not counted */
    if (e || bad) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, path,
                bad ? "read error" : gd_strerror(e));
        buf_free(out);
        return false;
    }
    out->len--;
    return true;
}

const char *cl_str(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

json_t *cl_session_create(cl_client *cl, const char *name)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) {
        perror("goose: the current directory");
        return NULL;
    }
    json_t *body = json_pack("{s:s}", "working_directory", cwd);
    if (name) json_object_set_new(body, "name", json_string(name));
    cl->quiet_workdir = true;
    cl->workdir_refused = false;
    json_t *s = cl_call_json(cl, "POST", "/api/sessions", body, NULL);
    cl->quiet_workdir = false;
    if (!s && cl->workdir_refused) {
        /* a user of a shared server: the session works where the server keeps theirs */
        fprintf(stderr,
                "%s: this directory is not yours to use on the server: the session works "
                "in your workspace there\n",
                cl->prog);
        json_object_del(body, "working_directory");
        s = cl_call_json(cl, "POST", "/api/sessions", body, NULL);
    }
    json_decref(body);
    if (s && !json_is_string(json_object_get(s, "id"))) {
        fprintf(stderr, "%s: the server's answer has no session id\n", cl_prog(cl));
        json_decref(s);
        return NULL;
    }
    return s;
}

void cl_put_text(FILE *f, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        bool esc;
        size_t k = utf8_next_shown(p + i, n - i, "\n\t", &esc);
        for (size_t j = 0; esc && j < k; j++)
            fprintf(f, "\\x%02X", p[i + j]);
        if (!esc) fwrite(p + i, 1, k, f);
        i += k;
    }
}

void cl_puts_text(FILE *f, const char *s)
{
    cl_put_text(f, s, strlen(s));
}

bool cl_shape(cl_client *cl, bool ok, const char *what)
{
    if (!ok)
        fprintf(stderr,
                "%s: the server at %s answered with something that is not %s (is it a "
                "goosed?)\n",
                cl->prog, cl->shown, what);
    return ok;
}
