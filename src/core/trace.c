#include "core/trace.h"

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"

#define MAX_ATTRS       16
#define NAME_MAX_LEN    96
#define VALUE_MAX       1024
#define MAX_HEADERS     32
#define MAX_RES_ATTRS   32
#define DROP_LOG_EVERY  60 /* seconds between two "spans dropped" lines */
#define FAIL_LOG_EVERY  60 /* seconds between two "export failed" lines */
#define FINAL_FLUSH_MS  1000
#define CONNECT_MAX_MS  5000
#define ENDPOINT_MAX    2048
#define HEADER_LINE_MAX 8192

typedef enum { A_STR, A_INT, A_BOOL } attr_type;

struct attr {
    const char *key;
    attr_type type;
    bool owned; /* s was allocated (it did not fit in the span's arena) */
    int64_t i;
    char *s;
};

#define ARENA_SIZE 448 /* string values of a span, without an allocation each */

struct trace_span {
    trace_ctx ctx;
    uint8_t parent[8];
    bool has_parent;
    uint8_t kind;
    char name[NAME_MAX_LEN];
    uint64_t start_ns, end_ns;
    int nattrs;
    unsigned dropped_attrs;
    struct attr attrs[MAX_ATTRS];
    int status; /* 0 unset, 1 ok, 2 error */
    char *status_msg;
    size_t arena_used;
    char arena[ARENA_SIZE];
};

typedef enum {
    S_ALWAYS_ON,
    S_ALWAYS_OFF,
    S_RATIO,
    S_PB_ALWAYS_ON,
    S_PB_ALWAYS_OFF,
    S_PB_RATIO
} sampler;

static struct {
    atomic_bool on;
    sampler sampler;
    uint64_t ratio_bound; /* a trace id's low 8 bytes below it is sampled (S_*RATIO) */
    char endpoint[ENDPOINT_MAX];
    char where[ENDPOINT_MAX]; /* the endpoint without userinfo, query: for messages */
    struct curl_slist *headers;
    uint8_t *resource; /* the encoded Resource message */
    size_t resource_len;
    long timeout_ms;
    long delay_ms;
    size_t batch;
    size_t qcap;
    /* the queue: a ring of finished spans */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    trace_span **q;
    size_t qhead, qlen;
    bool stopping;
    atomic_bool abort_io; /* the exporter's request in flight is abandoned */
    pthread_t thread;
    bool thread_on;
    atomic_uint_fast64_t dropped;
} T = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static _Thread_local const trace_ctx *current;

/* ---- ids: a per-thread splitmix64 seeded once from libsodium (no system call per id) ---- */

static uint64_t rand64(void)
{
    static _Thread_local uint64_t state;
    static _Thread_local bool seeded;
    if (!seeded) {
        randombytes_buf(&state, sizeof state);
        seeded = true;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rand_bytes(uint8_t *out, size_t n)
{
    while (n) {
        uint64_t v = rand64();
        size_t k = n < 8 ? n : 8;
        memcpy(out, &v, k);
        out += k;
        n -= k;
    }
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

/* ---- W3C trace context ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* uppercase is invalid in traceparent */
}

static bool parse_hex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static void put_hex(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
}

bool trace_parse_traceparent(const char *s, trace_ctx *out)
{
    memset(out, 0, sizeof *out);
    if (!s) return false;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    uint8_t ver;
    if (len < 55 || !parse_hex(s, &ver, 1) || ver == 0xff || s[2] != '-' || s[35] != '-' ||
        s[52] != '-')
        return false;
    if (ver == 0 && len != 55) return false;
    if (ver != 0 && len > 55 && s[55] != '-') return false; /* a later version may add fields */
    trace_ctx c = {0};
    if (!parse_hex(s + 3, c.trace_id, 16) || !parse_hex(s + 36, c.span_id, 8) ||
        !parse_hex(s + 53, &c.flags, 1))
        return false;
    if (all_zero(c.trace_id, 16) || all_zero(c.span_id, 8)) return false;
    c.valid = true;
    *out = c;
    return true;
}

void trace_set_tracestate(trace_ctx *ctx, const char *s)
{
    ctx->state[0] = '\0';
    if (!s) return;
    size_t n = strlen(s);
    if (n > TRACESTATE_MAX) return;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e) return;
    memcpy(ctx->state, s, n + 1);
}

void trace_format_traceparent(const trace_ctx *ctx, char out[TRACEPARENT_LEN])
{
    memcpy(out, "00-", 3);
    put_hex(ctx->trace_id, 16, out + 3);
    out[35] = '-';
    put_hex(ctx->span_id, 8, out + 36);
    out[52] = '-';
    put_hex(&ctx->flags, 1, out + 53);
    out[55] = '\0';
}

void trace_id_hex(const trace_ctx *ctx, char out[TRACE_ID_HEX_LEN])
{
    put_hex(ctx->trace_id, 16, out);
    out[32] = '\0';
}

const trace_ctx *trace_set_current(const trace_ctx *ctx)
{
    const trace_ctx *prev = current;
    current = ctx;
    return prev;
}

const trace_ctx *trace_current(void)
{
    return current;
}

bool trace_header_line(char out[TRACEPARENT_LEN + 16])
{
    if (!current || !current->valid) return false;
    memcpy(out, "traceparent: ", 13);
    trace_format_traceparent(current, out + 13);
    return true;
}

bool trace_state_line(char out[TRACESTATE_MAX + 16])
{
    if (!current || !current->valid || !current->state[0]) return false;
    snprintf(out, TRACESTATE_MAX + 16, "tracestate: %s", current->state);
    return true;
}

/* ---- spans ---- */

bool trace_enabled(void)
{
    return atomic_load_explicit(&T.on, memory_order_relaxed);
}

uint64_t trace_dropped(void)
{
    return atomic_load(&T.dropped);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool ratio_says(const uint8_t id[16])
{
    uint64_t v = 0;
    for (int i = 8; i < 16; i++)
        v = v << 8 | id[i];
    return v < T.ratio_bound || T.ratio_bound == UINT64_MAX;
}

static bool sample(const trace_ctx *parent, const uint8_t id[16])
{
    switch (T.sampler) {
    case S_ALWAYS_ON:
        return true;
    case S_ALWAYS_OFF:
        return false;
    case S_RATIO:
        return ratio_says(id);
    case S_PB_ALWAYS_ON:
        return parent ? (parent->flags & 1) : true;
    case S_PB_ALWAYS_OFF:
        return parent ? (parent->flags & 1) : false;
    case S_PB_RATIO:
        return parent ? (parent->flags & 1) : ratio_says(id);
    }
    return false;
}

/* Copies a string into a fixed field, cut to fit (no printf: this runs for every request). */
static void copy_name(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

trace_span *trace_span_start(const char *name, trace_kind kind, const trace_ctx *parent)
{
    if (!trace_enabled()) return NULL;
    /* not calloc: the attributes and the arena are written before they are read */
    trace_span *s = malloc(sizeof *s);
    if (!s) return NULL;
    memset(s, 0, offsetof(trace_span, attrs));
    s->status = 0;
    s->status_msg = NULL;
    s->arena_used = 0;
    if (parent && !parent->valid) parent = NULL;
    if (parent) {
        memcpy(s->ctx.trace_id, parent->trace_id, 16);
        memcpy(s->parent, parent->span_id, 8);
        s->has_parent = true;
        copy_name(s->ctx.state, sizeof s->ctx.state, parent->state);
    } else {
        do
            rand_bytes(s->ctx.trace_id, 16);
        while (all_zero(s->ctx.trace_id, 16));
    }
    do
        rand_bytes(s->ctx.span_id, 8);
    while (all_zero(s->ctx.span_id, 8));
    s->ctx.flags = sample(parent, s->ctx.trace_id) ? 1 : 0;
    s->ctx.valid = true;
    s->kind = (uint8_t)kind;
    copy_name(s->name, sizeof s->name, name);
    s->start_ns = now_ns();
    return s;
}

const trace_ctx *trace_span_ctx(const trace_span *s)
{
    return s ? &s->ctx : NULL;
}

void trace_span_rename(trace_span *s, const char *name)
{
    if (s) copy_name(s->name, sizeof s->name, name);
}

static struct attr *attr_slot(trace_span *s, const char *key)
{
    for (int i = 0; i < s->nattrs; i++)
        if (!strcmp(s->attrs[i].key, key)) {
            if (s->attrs[i].owned) free(s->attrs[i].s);
            s->attrs[i].s = NULL;
            s->attrs[i].owned = false;
            return &s->attrs[i];
        }
    if (s->nattrs == MAX_ATTRS) {
        s->dropped_attrs++;
        return NULL;
    }
    struct attr *a = &s->attrs[s->nattrs++];
    a->key = key;
    a->owned = false;
    a->s = NULL;
    return a;
}

void trace_attr_str(trace_span *s, const char *key, const char *value)
{
    if (!s || !value || !(s->ctx.flags & 1)) return;
    struct attr *a = attr_slot(s, key);
    if (!a) return;
    a->type = A_STR;
    size_t n = strnlen(value, VALUE_MAX);
    if (n < ARENA_SIZE - s->arena_used) {
        a->s = s->arena + s->arena_used;
        memcpy(a->s, value, n);
        a->s[n] = '\0';
        s->arena_used += n + 1;
    } else if ((a->s = strndup(value, n))) {
        a->owned = true;
    } else {
        a->type = A_INT; /* out of memory: the attribute is left out */
        a->i = 0;
        if (a == &s->attrs[s->nattrs - 1]) s->nattrs--;
    }
}

void trace_attr_int(trace_span *s, const char *key, int64_t value)
{
    if (!s || !(s->ctx.flags & 1)) return;
    struct attr *a = attr_slot(s, key);
    if (!a) return;
    a->type = A_INT;
    a->i = value;
}

void trace_attr_bool(trace_span *s, const char *key, bool value)
{
    if (!s || !(s->ctx.flags & 1)) return;
    struct attr *a = attr_slot(s, key);
    if (!a) return;
    a->type = A_BOOL;
    a->i = value;
}

void trace_set_status(trace_span *s, bool error, const char *message)
{
    if (!s) return;
    s->status = error ? 2 : 1;
    free(s->status_msg);
    s->status_msg = error && message ? strndup(message, VALUE_MAX) : NULL;
}

void trace_span_discard(trace_span *s)
{
    if (!s) return;
    for (int i = 0; i < s->nattrs; i++)
        if (s->attrs[i].owned) free(s->attrs[i].s);
    free(s->status_msg);
    free(s);
}

void trace_span_end(trace_span *s)
{
    if (!s) return;
    if (!(s->ctx.flags & 1)) {
        trace_span_discard(s);
        return;
    }
    s->end_ns = now_ns();
    pthread_mutex_lock(&T.mu);
    if (T.stopping || !T.q || T.qlen == T.qcap) {
        pthread_mutex_unlock(&T.mu);
        atomic_fetch_add(&T.dropped, 1);
        trace_span_discard(s);
        return;
    }
    T.q[(T.qhead + T.qlen) % T.qcap] = s;
    T.qlen++;
    if (T.qlen == T.batch) pthread_cond_signal(&T.cv); /* a full batch: no need to wait */
    pthread_mutex_unlock(&T.mu);
}

/* ---- protobuf (the few wire types OTLP needs) ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} pb;

static void pb_put(pb *b, const void *d, size_t n)
{
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t varint_write(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static void pb_varint(pb *b, uint64_t v)
{
    uint8_t tmp[10];
    pb_put(b, tmp, varint_write(tmp, v));
}

static void pb_tag(pb *b, unsigned field, unsigned wire)
{
    pb_varint(b, (uint64_t)field << 3 | wire);
}

static void pb_bytes(pb *b, unsigned field, const void *d, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    pb_put(b, d, n);
}

static void pb_str(pb *b, unsigned field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

static void pb_fixed64(pb *b, unsigned field, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    pb_tag(b, field, 1);
    pb_put(b, le, 8);
}

static void pb_fixed32(pb *b, unsigned field, uint32_t v)
{
    uint8_t le[4];
    for (int i = 0; i < 4; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    pb_tag(b, field, 5);
    pb_put(b, le, 4);
}

/* A nested message: its tag and a one-byte length now, the real length at pb_close (the body
 * is moved when the length takes more bytes). Returns where the body starts. */
static size_t pb_open(pb *b, unsigned field)
{
    pb_tag(b, field, 2);
    uint8_t zero = 0;
    pb_put(b, &zero, 1);
    return b->len;
}

static void pb_close(pb *b, size_t at)
{
    if (b->oom) return;
    size_t n = b->len - at;
    size_t vl = varint_len(n);
    if (vl > 1) {
        uint8_t pad[9] = {0};
        pb_put(b, pad, vl - 1); /* room */
        if (b->oom) return;
        memmove(b->p + at + vl - 1, b->p + at, n);
    }
    varint_write(b->p + at - 1, n);
}

/* KeyValue {1: key, 2: AnyValue {1: string_value | 2: bool_value | 3: int_value}} */
static void pb_kv_str(pb *b, unsigned field, const char *k, const char *v)
{
    size_t kv = pb_open(b, field);
    pb_str(b, 1, k);
    size_t av = pb_open(b, 2);
    pb_str(b, 1, v);
    pb_close(b, av);
    pb_close(b, kv);
}

static void pb_attr(pb *b, const struct attr *a)
{
    if (a->type == A_STR) {
        pb_kv_str(b, 9, a->key, a->s);
        return;
    }
    size_t kv = pb_open(b, 9);
    pb_str(b, 1, a->key);
    size_t av = pb_open(b, 2);
    pb_tag(b, a->type == A_BOOL ? 2 : 3, 0);
    pb_varint(b, (uint64_t)a->i);
    pb_close(b, av);
    pb_close(b, kv);
}

/* Span (opentelemetry/proto/trace/v1/trace.proto), as field `field` of its container. */
static void pb_span(pb *b, unsigned field, const trace_span *s)
{
    size_t at = pb_open(b, field);
    pb_bytes(b, 1, s->ctx.trace_id, 16);
    pb_bytes(b, 2, s->ctx.span_id, 8);
    if (s->ctx.state[0]) pb_str(b, 3, s->ctx.state);
    if (s->has_parent) pb_bytes(b, 4, s->parent, 8);
    pb_str(b, 5, s->name);
    pb_tag(b, 6, 0);
    pb_varint(b, s->kind);
    pb_fixed64(b, 7, s->start_ns);
    pb_fixed64(b, 8, s->end_ns);
    for (int i = 0; i < s->nattrs; i++)
        pb_attr(b, &s->attrs[i]);
    if (s->dropped_attrs) {
        pb_tag(b, 10, 0);
        pb_varint(b, s->dropped_attrs);
    }
    if (s->status) {
        size_t st = pb_open(b, 15);
        if (s->status_msg) pb_str(b, 2, s->status_msg);
        pb_tag(b, 3, 0);
        pb_varint(b, (uint64_t)s->status);
        pb_close(b, st);
    }
    /* W3C trace flags, and bit 8: whether the parent is remote (unknown: not set) */
    pb_fixed32(b, 16, s->ctx.flags);
    pb_close(b, at);
}

/* ExportTraceServiceRequest {1: ResourceSpans {1: Resource, 2: ScopeSpans {1: scope, 2: spans}}}
 * for spans[0..n). The caller frees out->p. */
static void encode_request(pb *out, const uint8_t *resource, size_t resource_len,
                           trace_span *const *spans, size_t n)
{
    size_t rs = pb_open(out, 1);
    pb_bytes(out, 1, resource, resource_len);
    size_t ss = pb_open(out, 2);
    size_t scope = pb_open(out, 1);
    pb_str(out, 1, "goosed");
#ifdef GOOSED_VERSION
    pb_str(out, 2, GOOSED_VERSION);
#endif
    pb_close(out, scope);
    for (size_t i = 0; i < n; i++)
        pb_span(out, 2, spans[i]);
    pb_close(out, ss);
    pb_close(out, rs);
}

/* ---- configuration from the environment ---- */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool truthy(const char *v)
{
    return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
                 !strcasecmp(v, "on"));
}

static long env_ms(const char *name, long deflt, long lo, long hi)
{
    const char *v = env(name);
    if (!v) return deflt;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        log_warn("trace", "%s: expected a whole number %ld..%ld, got \"%.40s\": using %ld", name,
                 lo, hi, v, deflt);
        return deflt;
    }
    return n;
}

/* Percent-decodes in[0..n) into out (size outlen); false when it does not fit. */
static bool pct_decode(const char *in, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%' && i + 2 < n) {
            int hi = hexval((char)(in[i + 1] | 0x20)), lo = hexval((char)(in[i + 2] | 0x20));
            if (hi >= 0 && lo >= 0) {
                c = (char)(hi << 4 | lo);
                i += 2;
            }
        }
        if (o + 1 >= outlen) return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* Calls fn(key, value) for each "k=v" of a comma list (W3C baggage's shape, as the OTEL_*
 * variables use it), both percent-decoded. Returns the number of items that were malformed. */
static int each_pair(const char *list, void (*fn)(const char *k, const char *v, void *ud), void *ud)
{
    int bad = 0;
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *item = p;
        trim(&item, &n);
        const char *eq = memchr(item, '=', n);
        if (n) {
            char k[256], v[HEADER_LINE_MAX];
            size_t kn = eq ? (size_t)(eq - item) : 0;
            const char *vs = eq ? eq + 1 : NULL;
            size_t vn = eq ? n - kn - 1 : 0;
            if (eq) trim(&item, &kn), trim(&vs, &vn);
            if (!eq || !kn || !pct_decode(item, kn, k, sizeof k) ||
                !pct_decode(vs, vn, v, sizeof v))
                bad++;
            else
                fn(k, v, ud);
            sodium_memzero(v, sizeof v); /* a header value may be a token */
        }
        p = end ? end + 1 : NULL;
    }
    return bad;
}

struct hdrs {
    int n;
    char *lines[MAX_HEADERS];
};

static void add_header(const char *k, const char *v, void *ud)
{
    struct hdrs *h = ud;
    size_t kl = strlen(k);
    for (int i = 0; i < h->n; i++) /* the traces-only variable comes second and wins */
        if (!strncasecmp(h->lines[i], k, kl) && h->lines[i][kl] == ':') {
            sodium_memzero(h->lines[i], strlen(h->lines[i]));
            free(h->lines[i]);
            h->lines[i] = h->lines[--h->n];
            break;
        }
    if (h->n == MAX_HEADERS || strpbrk(k, ": \r\n") || strpbrk(v, "\r\n")) return;
    size_t len = kl + strlen(v) + 3;
    char *line = malloc(len);
    if (!line) return;
    snprintf(line, len, "%s: %s", k, v);
    h->lines[h->n++] = line;
}

struct res {
    pb *b;
    bool has_name;
    const char *name;
};

static void add_res(const char *k, const char *v, void *ud)
{
    struct res *r = ud;
    if (!strcmp(k, "service.name")) {
        if (r->name) return; /* OTEL_SERVICE_NAME wins */
        r->has_name = true;
    }
    pb_kv_str(r->b, 1, k, v);
}

/* The Resource message: service.name, the SDK's and OTEL_RESOURCE_ATTRIBUTES' attributes. */
static void build_resource(void)
{
    pb b = {0};
    struct res r = {.b = &b, .name = env("OTEL_SERVICE_NAME")};
    const char *attrs = env("OTEL_RESOURCE_ATTRIBUTES");
    if (attrs && each_pair(attrs, add_res, &r))
        log_warn("trace", "OTEL_RESOURCE_ATTRIBUTES: items that are not key=value were left out");
    if (r.name || !r.has_name) pb_kv_str(&b, 1, "service.name", r.name ? r.name : "goosed");
#ifdef GOOSED_VERSION
    pb_kv_str(&b, 1, "service.version", GOOSED_VERSION);
#endif
    pb_kv_str(&b, 1, "telemetry.sdk.name", "goosed");
    if (b.oom) {
        free(b.p);
        b = (pb){0};
    }
    T.resource = b.p;
    T.resource_len = b.len;
}

static bool parse_sampler(void)
{
    static const struct {
        const char *name;
        sampler s;
    } names[] = {
        {"always_on", S_ALWAYS_ON},
        {"always_off", S_ALWAYS_OFF},
        {"traceidratio", S_RATIO},
        {"parentbased_always_on", S_PB_ALWAYS_ON},
        {"parentbased_always_off", S_PB_ALWAYS_OFF},
        {"parentbased_traceidratio", S_PB_RATIO},
    };
    T.sampler = S_PB_ALWAYS_ON;
    T.ratio_bound = UINT64_MAX;
    const char *v = env("OTEL_TRACES_SAMPLER");
    if (v) {
        size_t i = 0;
        for (; i < sizeof names / sizeof *names; i++)
            if (!strcmp(v, names[i].name)) break;
        if (i == sizeof names / sizeof *names) {
            log_warn("trace",
                     "OTEL_TRACES_SAMPLER \"%.40s\" is not one goosed knows (always_on, "
                     "always_off, traceidratio, parentbased_always_on, parentbased_always_off, "
                     "parentbased_traceidratio): using parentbased_always_on",
                     v);
            return true;
        }
        T.sampler = names[i].s;
    }
    if (T.sampler == S_RATIO || T.sampler == S_PB_RATIO) {
        const char *a = env("OTEL_TRACES_SAMPLER_ARG");
        double r = 1.0;
        if (a) {
            char *end;
            r = strtod(a, &end);
            if (*end || !(r >= 0 && r <= 1)) {
                log_warn("trace",
                         "OTEL_TRACES_SAMPLER_ARG: expected a ratio 0..1, got \"%.40s\": using 1",
                         a);
                r = 1.0;
            }
        }
        T.ratio_bound = r >= 1 ? UINT64_MAX : (uint64_t)(r * 18446744073709551616.0);
    }
    return true;
}

/* The endpoint for messages: scheme://host[:port]/path, without userinfo or query. */
static void describe(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    const char *at = strchr(host, '@');
    const char *slash = strchr(host, '/');
    if (at && (!slash || at < slash)) host = at + 1;
    size_t n = strcspn(host, "?#");
    snprintf(out, outlen, "%.*s%.*s", p ? (int)(p + 3 - url) : 0, url, (int)n, host);
}

/* ---- the exporter thread ---- */

static size_t discard_body(char *d, size_t size, size_t n, void *ud)
{
    (void)d;
    (void)ud;
    return size * n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)ud, (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&T.abort_io) ? 1 : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc = CURLE_FAILED_INIT;
static void curl_init(void)
{
    curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* POSTs one encoded request. Returns a message for the log on failure, NULL on success. */
static const char *post(CURL **easy, const pb *body, long timeout_ms, char *why, size_t whylen)
{
    pthread_once(&curl_once, curl_init);
    if (curl_rc != CURLE_OK) return "libcurl (libcurl.so.4) cannot be loaded; install libcurl4";
    if (!*easy && !(*easy = curl_easy_init())) return "out of memory starting a request";
    CURL *e = *easy;
    curl_easy_setopt(e, CURLOPT_URL, T.endpoint);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)body->p);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, T.headers);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_MAX_MS ? timeout_ms : (long)CONNECT_MAX_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        return why;
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        snprintf(why, whylen, "the collector answered HTTP %ld", status);
        return why;
    }
    return NULL;
}

static void export_batch(CURL **easy, trace_span **spans, size_t n, long timeout_ms,
                         time_t *last_fail)
{
    pb b = {0};
    encode_request(&b, T.resource, T.resource_len, spans, n);
    char why[256];
    const char *err =
        b.oom ? "out of memory encoding spans" : post(easy, &b, timeout_ms, why, sizeof why);
    free(b.p);
    if (err && !atomic_load(&T.abort_io)) {
        time_t now = time(NULL);
        if (now - *last_fail >= FAIL_LOG_EVERY) {
            *last_fail = now;
            log_warn("trace", "%zu span(s) not exported to %s: %s", n, T.where, err);
        }
    }
    for (size_t i = 0; i < n; i++)
        trace_span_discard(spans[i]);
}

static void *exporter(void *arg)
{
    (void)arg;
    CURL *easy = NULL;
    time_t last_drop = 0, last_fail = 0;
    uint64_t reported = 0;
    struct timespec last_call = {0}; /* the final flush's deadline, once stopping */
    trace_span **batch = calloc(T.batch, sizeof *batch);
    pthread_mutex_lock(&T.mu);
    for (;;) {
        if (!T.stopping && T.qlen < T.batch) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += T.delay_ms / 1000;
            dl.tv_nsec += (T.delay_ms % 1000) * 1000000;
            if (dl.tv_nsec >= 1000000000) dl.tv_sec++, dl.tv_nsec -= 1000000000;
            while (!T.stopping && T.qlen < T.batch)
                if (pthread_cond_timedwait(&T.cv, &T.mu, &dl)) break;
        }
        bool stopping = T.stopping;
        size_t n = 0;
        while (batch && n < T.batch && T.qlen) {
            batch[n++] = T.q[T.qhead];
            T.qhead = (T.qhead + 1) % T.qcap;
            T.qlen--;
        }
        pthread_mutex_unlock(&T.mu);
        uint64_t dropped = atomic_load(&T.dropped);
        time_t now = time(NULL);
        if (dropped != reported && now - last_drop >= DROP_LOG_EVERY) {
            log_warn("trace",
                     "%llu span(s) dropped: the export queue (OTEL_BSP_MAX_QUEUE_SIZE=%zu) was "
                     "full (%llu since start)",
                     (unsigned long long)(dropped - reported), T.qcap, (unsigned long long)dropped);
            reported = dropped;
            last_drop = now;
        }
        long tmo = T.timeout_ms;
        if (stopping) { /* the final flush: what is left gets FINAL_FLUSH_MS in all */
            struct timespec now_ts;
            clock_gettime(CLOCK_MONOTONIC, &now_ts);
            if (!last_call.tv_sec) {
                atomic_store(&T.abort_io, false);
                last_call = now_ts;
            }
            long spent = (now_ts.tv_sec - last_call.tv_sec) * 1000 +
                         (now_ts.tv_nsec - last_call.tv_nsec) / 1000000;
            tmo = FINAL_FLUSH_MS - spent < tmo ? FINAL_FLUSH_MS - spent : tmo;
        }
        if (n && tmo > 0)
            export_batch(&easy, batch, n, tmo, &last_fail);
        else
            for (size_t i = 0; i < n; i++)
                trace_span_discard(batch[i]);
        pthread_mutex_lock(&T.mu);
        if (stopping && (!T.qlen || !batch)) break;
    }
    pthread_mutex_unlock(&T.mu);
    free(batch);
    if (easy) curl_easy_cleanup(easy);
    return NULL;
}

void trace_init(bool disable_telemetry)
{
    const char *ep = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (!ep && !base) return; /* the default: nothing is recorded, nothing is sent */
    if (truthy(env("OTEL_SDK_DISABLED"))) {
        log_info("trace", "traces are off: OTEL_SDK_DISABLED is set");
        return;
    }
    if (disable_telemetry) {
        log_info("trace", "traces are off: GOOSE_DISABLE_TELEMETRY is set, so nothing is "
                          "exported even to the configured OTLP endpoint");
        return;
    }
    const char *proto = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
    if (!proto) proto = env("OTEL_EXPORTER_OTLP_PROTOCOL");
    if (proto && strcmp(proto, "http/protobuf")) {
        log_warn("trace",
                 "traces are off: OTLP protocol \"%.40s\" is not supported (goosed "
                 "sends http/protobuf only)",
                 proto);
        return;
    }
    if (ep)
        snprintf(T.endpoint, sizeof T.endpoint, "%s", ep);
    else {
        size_t n = strlen(base);
        while (n && base[n - 1] == '/')
            n--;
        snprintf(T.endpoint, sizeof T.endpoint, "%.*s/v1/traces", (int)n, base);
    }
    describe(T.endpoint, T.where, sizeof T.where);
    if (!parse_sampler()) return;
    long tmo = env_ms("OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 1, 600000);
    T.timeout_ms = env_ms("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", tmo, 1, 600000);
    T.delay_ms = env_ms("OTEL_BSP_SCHEDULE_DELAY", 5000, 1, 3600000);
    T.qcap = (size_t)env_ms("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, 10000000);
    T.batch = (size_t)env_ms("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, 10000000);
    if (T.batch > T.qcap) T.batch = T.qcap;
    struct hdrs h = {0};
    int bad = 0;
    const char *hv = env("OTEL_EXPORTER_OTLP_HEADERS");
    if (hv) bad += each_pair(hv, add_header, &h);
    hv = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    if (hv) bad += each_pair(hv, add_header, &h);
    if (bad) log_warn("trace", "OTLP headers: %d item(s) that are not name=value left out", bad);
    T.headers = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    if (T.headers) T.headers = curl_slist_append(T.headers, "Expect:");
    for (int i = 0; i < h.n; i++) {
        if (T.headers) T.headers = curl_slist_append(T.headers, h.lines[i]);
        sodium_memzero(h.lines[i], strlen(h.lines[i]));
        free(h.lines[i]);
    }
    build_resource();
    T.q = calloc(T.qcap, sizeof *T.q);
    if (!T.q || !T.headers || !T.resource) {
        log_error("trace", "traces are off: out of memory");
        free(T.q);
        T.q = NULL;
        return;
    }
    atomic_store(&T.on, true);
    if (pthread_create(&T.thread, NULL, exporter, NULL) != 0) {
        atomic_store(&T.on, false);
        log_error("trace", "traces are off: cannot start the exporter thread");
        return;
    }
    T.thread_on = true;
    log_info("trace",
             "traces are exported to %s (OTLP/HTTP protobuf, %d header(s), batches of %zu)",
             T.where, h.n, T.batch);
}

void trace_shutdown(void)
{
    if (!T.thread_on) return;
    atomic_store(&T.on, false);
    atomic_store(&T.abort_io, true); /* a request in flight (a stalled collector) ends now */
    pthread_mutex_lock(&T.mu);
    T.stopping = true;
    pthread_cond_signal(&T.cv);
    pthread_mutex_unlock(&T.mu);
    /* the batch being sent is abandoned; what is still queued gets one short try */
    pthread_join(T.thread, NULL);
    T.thread_on = false;
    curl_slist_free_all(T.headers);
    T.headers = NULL;
    free(T.resource);
    T.resource = NULL;
    free(T.q);
    T.q = NULL;
}
