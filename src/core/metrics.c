/* metrics: fixed arrays of atomic counters, written with relaxed adds on the hot path and read
 * (each value on its own, without a snapshot of them all) when a scrape renders them. The
 * request counters and their histograms, written on every request, have a copy per thread
 * (HTTP_SHARDS of them, shared round-robin past that), added up at render time.
 *
 * A histogram keeps one non-cumulative count per bucket and the sum in nanoseconds; the
 * cumulative `le` counts, _count and _sum are computed at render time.
 *
 * Labelled families whose label values come from outside (provider and model, extension and
 * tool) take a slot in a table of METRICS_MAX_SERIES: a lookup scans the published slots
 * without a lock; a new name takes the next slot under a mutex (once per name for the life of the
 * process); once the table is full everything new is counted in its last slot, "other". */
#include "core/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef _Atomic uint64_t counter;

/* ---- histograms ---- */

#define NB_HTTP  14
#define NB_TOOL  12
#define NB_STORE 12
#define NB_MAX   14
static const double http_le[NB_HTTP] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double tool_le[NB_TOOL] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25,
                                        0.5,   1,     2.5,  5,    10,  30};
static const double store_le[NB_STORE] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,   0.025,   0.05,   0.1,   0.25,   1};

typedef struct {
    counter bucket[NB_MAX + 1]; /* the last: over the largest bound (+Inf) */
    counter sum_ns;
} histo;

/* The same bounds in nanoseconds (exact for every bound above: each is a whole number of ns). */
#define NS(x) ((uint64_t)((x)*1e9 + 0.5))
static const uint64_t http_le_ns[NB_HTTP] = {NS(0.0005), NS(0.001), NS(0.0025), NS(0.005), NS(0.01),
                                             NS(0.025),  NS(0.05),  NS(0.1),    NS(0.25),  NS(0.5),
                                             NS(1),      NS(2.5),   NS(5),      NS(10)};
static const uint64_t tool_le_ns[NB_TOOL] = {NS(0.001), NS(0.005), NS(0.01), NS(0.05),
                                             NS(0.1),   NS(0.25),  NS(0.5),  NS(1),
                                             NS(2.5),   NS(5),     NS(10),   NS(30)};
static const uint64_t store_le_ns[NB_STORE] = {NS(0.0001), NS(0.00025), NS(0.0005), NS(0.001),
                                               NS(0.0025), NS(0.005),   NS(0.01),   NS(0.025),
                                               NS(0.05),   NS(0.1),     NS(0.25),   NS(1)};

/* The bucket of ns among n bounds, n when it is over them all (a value on a bound is in its
 * bucket: `le` is "less than or equal"). */
static size_t bucket_of(const uint64_t *le_ns, size_t n, uint64_t ns)
{
    size_t i = 0;
    while (i < n && ns > le_ns[i])
        i++;
    return i;
}

static void observe(histo *h, const uint64_t *le_ns, size_t n, uint64_t ns)
{
    atomic_fetch_add_explicit(&h->bucket[bucket_of(le_ns, n, ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

static uint64_t load(counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void inc(counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- labelled series with names from outside ---- */

#define LABEL_MAX 64

typedef struct {
    char a[LABEL_MAX], b[LABEL_MAX]; /* provider and model; extension and tool */
} series_key;

typedef struct {
    series_key keys[METRICS_MAX_SERIES];
    _Atomic size_t n; /* slots published */
    pthread_mutex_t mu;
} series_table;

/* Copies a label value, bounded, with bytes outside printable ASCII replaced (the text format
 * wants UTF-8; names of models and tools are ASCII in practice). */
static void label_copy(char *out, const char *in, size_t len)
{
    size_t i = 0;
    for (; in && i < len && i < LABEL_MAX - 1 && in[i]; i++)
        out[i] = (unsigned char)in[i] < 0x20 || (unsigned char)in[i] > 0x7e ? '_' : in[i];
    out[i] = '\0';
    if (!i) snprintf(out, LABEL_MAX, "unknown");
}

/* The slot of (a, b): a published one, a new one, or the last ("other") when the table is
 * full. */
static size_t series_slot(series_table *t, const char *a, size_t alen, const char *b, size_t blen)
{
    series_key k;
    label_copy(k.a, a, alen);
    label_copy(k.b, b, blen);
    size_t n = atomic_load_explicit(&t->n, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t->keys[i].a, k.a) && !strcmp(t->keys[i].b, k.b)) return i;
    pthread_mutex_lock(&t->mu);
    n = atomic_load_explicit(&t->n, memory_order_relaxed);
    size_t i = 0;
    while (i < n && (strcmp(t->keys[i].a, k.a) || strcmp(t->keys[i].b, k.b)))
        i++;
    if (i == n && n < METRICS_MAX_SERIES) { /* a new name, and room for it (or for "other") */
        if (n == METRICS_MAX_SERIES - 1) {
            snprintf(t->keys[n].a, LABEL_MAX, "other");
            snprintf(t->keys[n].b, LABEL_MAX, "other");
        } else {
            t->keys[n] = k;
        }
        atomic_store_explicit(&t->n, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&t->mu);
    return i < METRICS_MAX_SERIES ? i : METRICS_MAX_SERIES - 1;
}

/* ---- the metrics ---- */

static const char *const methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                      "PATCH", "DELETE", "OPTIONS", "other"};
#define NMETHODS (sizeof methods / sizeof *methods)
static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "none"};
#define NCLASSES (sizeof classes / sizeof *classes)
/* tool outcomes */
static const char *const outcomes[] = {"ok", "error", "denied", "timeout", "cancelled"};
#define NOUTCOMES (sizeof outcomes / sizeof *outcomes)
#define NROUTES   (METRICS_MAX_ROUTES + 1) /* the last: no route matched */

/* The request counters, one copy per shard: a thread counts into its own shard (threads beyond
 * HTTP_SHARDS share), so the request path writes no cache line another core is writing; a
 * scrape sums the shards. */
#define HTTP_SHARDS 8
typedef struct {
    _Alignas(64) counter http[NROUTES][NMETHODS][NCLASSES];
    histo http_time[NROUTES];
} http_shard;

static http_shard shards[HTTP_SHARDS];
static _Atomic unsigned shards_taken;
static _Thread_local unsigned my_shard; /* 1 + the thread's shard; 0 until its first request */

static http_shard *shard(void)
{
    if (!my_shard)
        my_shard =
            1 + atomic_fetch_add_explicit(&shards_taken, 1, memory_order_relaxed) % HTTP_SHARDS;
    return &shards[my_shard - 1];
}

static struct {
    bool on;
    time_t start;
    const void *table; /* metrics_http_route's */
    const char *method[METRICS_MAX_ROUTES], *pattern[METRICS_MAX_ROUTES];
    size_t nroutes;
    _Atomic long gauge[MG_COUNT];
    series_table prov;
    counter tok_in[METRICS_MAX_SERIES], tok_out[METRICS_MAX_SERIES];
    counter prov_calls[METRICS_MAX_SERIES], prov_errors[METRICS_MAX_SERIES];
    counter prov_retries[METRICS_MAX_SERIES];
    series_table tools;
    counter tool_calls[METRICS_MAX_SERIES][NOUTCOMES];
    histo tool_time[METRICS_MAX_SERIES];
    histo store_commit;
} M = {.prov = {.mu = PTHREAD_MUTEX_INITIALIZER}, .tools = {.mu = PTHREAD_MUTEX_INITIALIZER}};

void metrics_init(bool enabled)
{
    M.on = enabled;
    M.start = time(NULL);
}

bool metrics_enabled(void)
{
    return M.on;
}

void metrics_http_route(const void *table, size_t i, const char *method, const char *pattern)
{
    if (table != M.table) M.nroutes = 0; /* another table: it replaces the one before */
    M.table = table;
    if (i < METRICS_MAX_ROUTES) {
        M.method[i] = method;
        M.pattern[i] = pattern;
    }
    if (i >= M.nroutes) M.nroutes = i + 1;
}

static size_t method_index(const char *m)
{
    if (m[0] == 'G' && m[1] == 'E' && m[2] == 'T' && !m[3]) return 0; /* the usual one */
    for (size_t i = 0; i < NMETHODS - 1; i++)
        if (!strcmp(methods[i], m)) return i;
    return NMETHODS - 1;
}

void metrics_http_done(const void *table, long route, const char *method, int status, uint64_t ns)
{
    if (!M.on) return;
    size_t ri;
    if (route < 0)
        ri = NROUTES - 1;
    else if (table && table == M.table && (size_t)route < M.nroutes)
        ri = (size_t)route < METRICS_MAX_ROUTES ? (size_t)route : METRICS_MAX_ROUTES - 1;
    else
        return; /* another server's route (the metrics listener) */
    size_t ci = status >= 100 && status <= 599 ? (size_t)(status / 100 - 1) : NCLASSES - 1;
    http_shard *sh = shard();
    inc(&sh->http[ri][method_index(method)][ci], 1);
    observe(&sh->http_time[ri], http_le_ns, NB_HTTP, ns);
}

void metrics_gauge_add(metrics_gauge g, long delta)
{
    if (M.on) atomic_fetch_add_explicit(&M.gauge[g], delta, memory_order_relaxed);
}

void metrics_gauge_set(metrics_gauge g, long value)
{
    if (M.on) atomic_store_explicit(&M.gauge[g], value, memory_order_relaxed);
}

void metrics_provider_call(const char *provider, const char *model, long in_tokens, long out_tokens,
                           bool error)
{
    if (!M.on) return;
    size_t i = series_slot(&M.prov, provider, LABEL_MAX, model, LABEL_MAX);
    inc(&M.prov_calls[i], 1);
    if (in_tokens > 0) inc(&M.tok_in[i], (uint64_t)in_tokens);
    if (out_tokens > 0) inc(&M.tok_out[i], (uint64_t)out_tokens);
    if (error) inc(&M.prov_errors[i], 1);
}

void metrics_provider_retry(const char *provider, const char *model)
{
    if (!M.on) return;
    inc(&M.prov_retries[series_slot(&M.prov, provider, LABEL_MAX, model, LABEL_MAX)], 1);
}

void metrics_tool_call(const char *full_name, const char *outcome, int64_t ns)
{
    if (!M.on) return;
    const char *name = full_name ? full_name : "";
    const char *sep = strstr(name, "__");
    size_t i = sep ? series_slot(&M.tools, name, (size_t)(sep - name), sep + 2, LABEL_MAX)
                   : series_slot(&M.tools, "", 0, name, LABEL_MAX);
    size_t o = 1; /* error */
    for (size_t k = 0; outcome && k < NOUTCOMES; k++)
        if (!strcmp(outcomes[k], outcome)) o = k;
    inc(&M.tool_calls[i][o], 1);
    if (ns >= 0) observe(&M.tool_time[i], tool_le_ns, NB_TOOL, (uint64_t)ns);
}

void metrics_store_commit(uint64_t ns)
{
    if (M.on) observe(&M.store_commit, store_le_ns, NB_STORE, ns);
}

/* ---- rendering ---- */

static gd_err head(buf *o, const char *name, const char *type, const char *help)
{
    return buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value escaped as the text format says: backslash, double quote and newline. */
static gd_err esc(buf *o, const char *v)
{
    gd_err e = GD_OK;
    for (; *v && !e; v++) {
        if (*v == '\\' || *v == '"')
            e = buf_printf(o, "\\%c", *v);
        else if (*v == '\n')
            e = buf_puts(o, "\\n");
        else
            e = buf_append(o, v, 1);
    }
    return e;
}

/* One histogram's series: name_bucket{labels,le=...}, name_sum{labels}, name_count{labels}.
 * labels is "" or `k="v",` pieces ending with a comma (already escaped). */
static gd_err histo_render(buf *o, const char *name, const char *labels, histo *h, const double *le,
                           size_t n)
{
    uint64_t cum = 0;
    gd_err e = GD_OK;
    for (size_t i = 0; i <= n && !e; i++) {
        cum += load(&h->bucket[i]);
        if (i < n)
            e = buf_printf(o, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, le[i],
                           (unsigned long long)cum);
        else
            e = buf_printf(o, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
                           (unsigned long long)cum);
    }
    int cut = (int)strlen(labels) - 1; /* without the trailing comma */
    if (!e && cut < 0)
        e = buf_printf(o, "%s_sum %.9f\n%s_count %llu\n", name, (double)load(&h->sum_ns) / 1e9,
                       name, (unsigned long long)cum);
    else if (!e)
        e = buf_printf(o, "%s_sum{%.*s} %.9f\n%s_count{%.*s} %llu\n", name, cut, labels,
                       (double)load(&h->sum_ns) / 1e9, name, cut, labels, (unsigned long long)cum);
    return e;
}

static void acc(counter *dst, counter *src)
{
    atomic_store_explicit(dst, load(dst) + load(src), memory_order_relaxed);
}

/* The request counters of every shard added up into one (a scrape's). */
static void shards_sum(http_shard *out)
{
    for (size_t k = 0; k < HTTP_SHARDS; k++) {
        http_shard *sh = &shards[k];
        for (size_t r = 0; r < NROUTES; r++) {
            for (size_t m = 0; m < NMETHODS; m++)
                for (size_t c = 0; c < NCLASSES; c++)
                    acc(&out->http[r][m][c], &sh->http[r][m][c]);
            for (size_t b = 0; b <= NB_MAX; b++)
                acc(&out->http_time[r].bucket[b], &sh->http_time[r].bucket[b]);
            acc(&out->http_time[r].sum_ns, &sh->http_time[r].sum_ns);
        }
    }
}

static uint64_t histo_count(histo *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= NB_MAX; i++)
        n += load(&h->bucket[i]);
    return n;
}

/* `route="<pattern>",` for route index ri, escaped, into lab; with_method adds the route's
 * method (`method="GET",`: a pattern has a route per method). */
static void route_label(size_t ri, bool with_method, char *lab, size_t len)
{
    buf b;
    buf_init(&b, len - 1);
    bool named = ri < M.nroutes && ri < METRICS_MAX_ROUTES - 1;
    const char *pat = ri == NROUTES - 1 ? "unmatched" : named ? M.pattern[ri] : "other";
    gd_err e = buf_puts(&b, "route=\"");
    if (!e) e = esc(&b, pat);
    if (!e) e = buf_puts(&b, "\",");
    if (!e && with_method) e = buf_printf(&b, "method=\"%s\",", named ? M.method[ri] : "other");
    snprintf(lab, len, "%s", !e && b.data ? b.data : "route=\"other\",");
    buf_free(&b);
}

static gd_err render_http(buf *o)
{
    http_shard *sum = calloc(1, sizeof *sum); /* about 50 KB: not on the stack */
    if (!sum) return GD_ENOMEM;
    shards_sum(sum);
    gd_err e = head(o, "goosed_http_requests_total", "counter",
                    "HTTP requests completed, by route pattern, method and status class.");
    char lab[256];
    for (size_t r = 0; r < NROUTES && !e; r++) {
        route_label(r, false, lab, sizeof lab);
        for (size_t m = 0; m < NMETHODS && !e; m++)
            for (size_t c = 0; c < NCLASSES && !e; c++) {
                uint64_t v = load(&sum->http[r][m][c]);
                if (v)
                    e = buf_printf(o,
                                   "goosed_http_requests_total{%smethod=\"%s\",status=\"%s\"} "
                                   "%llu\n",
                                   lab, methods[m], classes[c], (unsigned long long)v);
            }
    }
    if (!e)
        e = head(o, "goosed_http_request_duration_seconds", "histogram",
                 "Time from a request's headers to its completion, by route pattern and method.");
    for (size_t r = 0; r < NROUTES && !e; r++) {
        if (!histo_count(&sum->http_time[r])) continue;
        route_label(r, true, lab, sizeof lab);
        e = histo_render(o, "goosed_http_request_duration_seconds", lab, &sum->http_time[r],
                         http_le, NB_HTTP);
    }
    free(sum);
    return e;
}

static gd_err gauge(buf *o, const char *name, const char *help, long v)
{
    gd_err e = head(o, name, "gauge", help);
    if (!e) e = buf_printf(o, "%s %ld\n", name, v);
    return e;
}

static gd_err render_gauges(buf *o)
{
    static const struct {
        const char *name, *help;
    } g[MG_COUNT] = {
        [MG_CONNECTIONS] = {"goosed_http_connections", "HTTP connections open."},
        [MG_REPLIES] = {"goosed_replies_running", "Replies (agent turns) running."},
        [MG_WATCHERS] = {"goosed_session_watchers",
                         "Clients watching a session (SSE, WebSocket, a waiting request)."},
        [MG_STORE_QUEUE] = {"goosed_store_queue_depth", "Writes waiting for the store's writer."},
        [MG_EXT_PROCESSES] = {"goosed_extension_processes",
                              "Extension processes (MCP stdio servers) running."},
        [MG_TOOL_PROCESSES] = {"goosed_tool_processes",
                               "Tool processes running (shell commands and the sessions' MCP stdio "
                               "servers), against max_tool_processes."},
    };
    gd_err e = GD_OK;
    for (int i = 0; i < MG_COUNT && !e; i++)
        e = gauge(o, g[i].name, g[i].help, atomic_load_explicit(&M.gauge[i], memory_order_relaxed));
    return e;
}

/* `a="x",b="y",` for a series key, escaped, into o. */
static gd_err key_labels(buf *o, const char *an, const char *a, const char *bn, const char *b)
{
    gd_err e = buf_printf(o, "%s=\"", an);
    if (!e) e = esc(o, a);
    if (!e) e = buf_printf(o, "\",%s=\"", bn);
    if (!e) e = esc(o, b);
    if (!e) e = buf_puts(o, "\",");
    return e;
}

static gd_err prov_family(buf *o, const char *name, const char *help, counter *c, size_t n,
                          buf *lab)
{
    gd_err e = head(o, name, "counter", help);
    for (size_t i = 0; i < n && !e; i++) {
        buf_reset(lab);
        e = key_labels(lab, "provider", M.prov.keys[i].a, "model", M.prov.keys[i].b);
        if (!e)
            e = buf_printf(o, "%s{%.*s} %llu\n", name, (int)lab->len - 1, lab->data,
                           (unsigned long long)load(&c[i]));
    }
    return e;
}

static gd_err render_providers(buf *o)
{
    size_t n = atomic_load_explicit(&M.prov.n, memory_order_acquire);
    buf lab;
    buf_init(&lab, 1024);
    gd_err e = prov_family(o, "goosed_provider_calls_total",
                           "Provider calls ended (after their retries), by provider and model.",
                           M.prov_calls, n, &lab);
    if (!e)
        e = prov_family(o, "goosed_provider_input_tokens_total",
                        "Tokens sent to providers (as they report them), by provider and model.",
                        M.tok_in, n, &lab);
    if (!e)
        e = prov_family(o, "goosed_provider_output_tokens_total",
                        "Tokens received from providers, by provider and model.", M.tok_out, n,
                        &lab);
    if (!e)
        e = prov_family(o, "goosed_provider_errors_total",
                        "Provider calls that ended in an error, by provider and model.",
                        M.prov_errors, n, &lab);
    if (!e)
        e = prov_family(o, "goosed_provider_retries_total",
                        "Provider requests retried (429, 5xx, a broken connection).",
                        M.prov_retries, n, &lab);
    buf_free(&lab);
    return e;
}

static gd_err render_tools(buf *o)
{
    size_t n = atomic_load_explicit(&M.tools.n, memory_order_acquire);
    buf lab;
    buf_init(&lab, 1024);
    gd_err e = head(o, "goosed_tool_calls_total", "counter",
                    "Tool calls ended, by extension, tool and outcome (ok, error, denied, "
                    "timeout, cancelled).");
    for (size_t i = 0; i < n && !e; i++) {
        buf_reset(&lab);
        e = key_labels(&lab, "extension", M.tools.keys[i].a, "tool", M.tools.keys[i].b);
        for (size_t k = 0; k < NOUTCOMES && !e; k++) {
            uint64_t v = load(&M.tool_calls[i][k]);
            if (v)
                e = buf_printf(o, "goosed_tool_calls_total{%soutcome=\"%s\"} %llu\n", lab.data,
                               outcomes[k], (unsigned long long)v);
        }
    }
    if (!e)
        e = head(o, "goosed_tool_call_duration_seconds", "histogram",
                 "Time tool calls ran, by extension and tool.");
    for (size_t i = 0; i < n && !e; i++) {
        if (!histo_count(&M.tool_time[i])) continue;
        buf_reset(&lab);
        e = key_labels(&lab, "extension", M.tools.keys[i].a, "tool", M.tools.keys[i].b);
        if (!e)
            e = histo_render(o, "goosed_tool_call_duration_seconds", lab.data, &M.tool_time[i],
                             tool_le, NB_TOOL);
    }
    buf_free(&lab);
    return e;
}

/* Resident memory and open descriptors, from /proc (0 when it cannot be read). */
static long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    long n = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static gd_err render_process(buf *o)
{
    gd_err e = head(o, "goosed_build_info", "gauge", "goosed's version (the value is always 1).");
    if (!e) e = buf_printf(o, "goosed_build_info{version=\"%s\"} 1\n", GOOSED_VERSION);
    if (!e)
        e = head(o, "process_start_time_seconds", "gauge",
                 "Start time, in seconds since the epoch.");
    if (!e) e = buf_printf(o, "process_start_time_seconds %lld\n", (long long)M.start);
    if (!e)
        e = gauge(o, "process_resident_memory_bytes", "Resident memory size in bytes.",
                  resident_bytes());
    if (!e) e = gauge(o, "process_open_fds", "Open file descriptors.", open_fds());
    return e;
}

gd_err metrics_render(buf *out)
{
    gd_err e = render_http(out);
    if (!e) e = render_gauges(out);
    if (!e) e = render_providers(out);
    if (!e) e = render_tools(out);
    if (!e)
        e = head(out, "goosed_store_commit_duration_seconds", "histogram",
                 "Time from the store's writer beginning a batch of writes to their being durable "
                 "(its fdatasync included).");
    if (!e)
        e = histo_render(out, "goosed_store_commit_duration_seconds", "", &M.store_commit, store_le,
                         NB_STORE);
    if (!e) e = render_process(out);
    return e;
}
