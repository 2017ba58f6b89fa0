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

#include "core/clock.h"
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

/* A batch the collector could not take now (429, 502, 503, 504, or no connection) is sent again,
 * as OTLP/HTTP asks: at most EXPORT_TRIES times in all, waiting 1 s, 2 s, 4 s... (at most
 * BACKOFF_MAX_MS, a fifth more or less at random), or what its Retry-After says (at most
 * RETRY_AFTER_MAX_MS). Not once goosed is stopping. */
#define EXPORT_TRIES       5
#define BACKOFF_MS         1000
#define BACKOFF_MAX_MS     5000
#define RETRY_AFTER_MAX_MS 30000

typedef enum { A_STR, A_INT, A_BOOL } attr_type;

struct attr {
    const char *key;
    attr_type type;
    bool owned;    /* s was allocated (it did not fit in the span's arena) */
    uint16_t klen; /* strlen(key), noted by the encoder's sizing pass */
    uint32_t len;  /* strlen(s) for A_STR */
    int64_t i;
    char *s;
};

#define ARENA_SIZE 448 /* string values of a span, without an allocation each */

struct trace_span {
    trace_span *next; /* in a free list (the span pool) */
    size_t enc_len;   /* the encoded Span's length, noted by the encoder's sizing pass */
    size_t name_len;  /* likewise */
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
    /* the queue of finished spans: a bounded lock-free ring, many producers (the threads ending
     * spans), one consumer (the exporter) */
    struct qslot *q;
    _Atomic size_t qtail;  /* the next position a producer takes */
    _Atomic size_t qhead;  /* the next position the exporter reads */
    atomic_bool wake_sent; /* a producer has signalled a full batch the exporter has not taken */
    pthread_mutex_t mu;    /* for the exporter's sleep only */
    pthread_cond_t cv;
    atomic_bool stopping;
    atomic_bool abort_io; /* the exporter's request in flight is abandoned */
    pthread_t thread;
    bool thread_on;
    atomic_uint_fast64_t dropped;
} T = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* A slot of the queue: seq says whose turn it is (Vyukov's bounded queue): pos when a producer may
 * write it for position pos, pos + 1 once written, pos + qcap once the exporter has read it. */
struct qslot {
    _Atomic size_t seq;
    trace_span *span;
};

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
    /* not the whole of out (its tracestate is 257 bytes): every request without a traceparent
     * comes here */
    memset(out->trace_id, 0, sizeof out->trace_id);
    memset(out->span_id, 0, sizeof out->span_id);
    out->flags = 0;
    out->valid = false;
    out->state[0] = '\0';
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

/* ---- the span pool: spans are reused, not allocated one by one ----
 *
 * Each thread keeps a short free list of its own (no lock); it refills from, and spills into, a
 * shared pool in groups (one lock per group). The exporter gives a whole batch back at once. A
 * thread's list goes back to the pool when the thread ends. */

/* Under AddressSanitizer a pooled span is poisoned but for its link, so that a use after
 * trace_span_end or trace_span_discard is still caught as it would be after free(). */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ASAN 1
#endif
#endif
#ifdef POOL_ASAN
#include <sanitizer/asan_interface.h>
#define SPAN_POISON(s)                                                                             \
    ASAN_POISON_MEMORY_REGION((char *)(s) + sizeof(trace_span *),                                  \
                              sizeof(trace_span) - sizeof(trace_span *))
#define SPAN_UNPOISON(s) ASAN_UNPOISON_MEMORY_REGION((s), sizeof(trace_span))
#else
#define SPAN_POISON(s)   ((void)(s))
#define SPAN_UNPOISON(s) ((void)(s))
#endif

#define CACHE_MAX  64   /* spans a thread keeps; past it, half go to the shared pool */
#define CACHE_FILL 32   /* spans a thread takes from the pool at once */
#define POOL_MAX   1024 /* spans the shared pool keeps; past it, spans are freed */

static struct {
    pthread_mutex_t mu;
    trace_span *head;
    size_t n;
} P = {.mu = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local struct {
    trace_span *head;
    unsigned n;
    bool keyed; /* the thread-exit hook is set */
} cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

/* Gives a list of n spans (first .. last) to the shared pool, freeing what it cannot keep. */
static void pool_put(trace_span *first, trace_span *last, size_t n)
{
    if (!first) return;
    pthread_mutex_lock(&P.mu);
    last->next = P.head;
    P.head = first;
    P.n += n;
    trace_span *extra = NULL;
    if (P.n > POOL_MAX) { /* keep the first POOL_MAX */
        trace_span *s = P.head;
        for (size_t i = 1; i < POOL_MAX; i++)
            s = s->next;
        extra = s->next;
        s->next = NULL;
        P.n = POOL_MAX;
    }
    pthread_mutex_unlock(&P.mu);
    while (extra) {
        trace_span *nx = extra->next;
        SPAN_UNPOISON(extra);
        free(extra);
        extra = nx;
    }
}

/* The thread's list, given back when the thread ends. */
static void cache_exit(void *unused)
{
    (void)unused;
    trace_span *last = cache.head;
    while (last && last->next)
        last = last->next;
    pool_put(cache.head, last, cache.n);
    cache.head = NULL;
    cache.n = 0;
}

static bool cache_key_ok;

static void cache_key_make(void)
{
    cache_key_ok = !pthread_key_create(&cache_key, cache_exit);
}

/* The thread's list is given back when the thread ends (set up with its first span). */
static void cache_hook(void)
{
    if (cache.keyed) return;
    pthread_once(&cache_once, cache_key_make);
    cache.keyed = true; /* without the hook (no key to be had), a thread's list stays its own */
    if (cache_key_ok) pthread_setspecific(cache_key, &cache);
}

static trace_span *span_alloc(void)
{
    if (!cache.head) {
        cache_hook();
        pthread_mutex_lock(&P.mu);
        while (P.head && cache.n < CACHE_FILL) {
            trace_span *s = P.head;
            P.head = s->next;
            P.n--;
            s->next = cache.head;
            cache.head = s;
            cache.n++;
        }
        pthread_mutex_unlock(&P.mu);
        if (!cache.head) return malloc(sizeof(trace_span));
    }
    trace_span *s = cache.head;
    cache.head = s->next;
    cache.n--;
    SPAN_UNPOISON(s);
    return s;
}

/* Frees what a span owns (its long values, its status message). */
static void span_clear(trace_span *s)
{
    for (int i = 0; i < s->nattrs; i++)
        if (s->attrs[i].owned) free(s->attrs[i].s);
    s->nattrs = 0;
    free(s->status_msg);
    s->status_msg = NULL;
}

/* Back to this thread's list (half of it to the pool when it is long). */
static void span_release(trace_span *s)
{
    cache_hook();
    s->next = cache.head;
    SPAN_POISON(s);
    cache.head = s;
    if (++cache.n <= CACHE_MAX) return;
    trace_span *first = cache.head, *last = first;
    for (unsigned i = 1; i < CACHE_MAX / 2; i++)
        last = last->next;
    cache.head = last->next;
    last->next = NULL;
    cache.n -= CACHE_MAX / 2;
    pool_put(first, last, CACHE_MAX / 2);
}

/* The pool's spans freed (trace_shutdown; spans of other threads' lists stay theirs). */
static void pool_drain(void)
{
    pthread_mutex_lock(&P.mu);
    trace_span *s = P.head;
    P.head = NULL;
    P.n = 0;
    pthread_mutex_unlock(&P.mu);
    while (s) {
        trace_span *nx = s->next;
        SPAN_UNPOISON(s);
        free(s);
        s = nx;
    }
}

trace_span *trace_span_start(const char *name, trace_kind kind, const trace_ctx *parent)
{
    if (!trace_enabled()) return NULL;
    trace_span *s = span_alloc();
    if (!s) return NULL;
    /* only what is read before it is written (not the attributes, the arena, or the state) */
    s->next = NULL;
    s->nattrs = 0;
    s->dropped_attrs = 0;
    s->status = 0;
    s->status_msg = NULL;
    s->arena_used = 0;
    s->end_ns = 0;
    if (parent && !parent->valid) parent = NULL;
    if (parent) {
        memcpy(s->ctx.trace_id, parent->trace_id, 16);
        memcpy(s->parent, parent->span_id, 8);
        s->has_parent = true;
        copy_name(s->ctx.state, sizeof s->ctx.state, parent->state);
    } else {
        s->has_parent = false;
        s->ctx.state[0] = '\0';
        uint64_t a, b;
        do
            a = rand64(), b = rand64();
        while (!a && !b);
        memcpy(s->ctx.trace_id, &a, 8);
        memcpy(s->ctx.trace_id + 8, &b, 8);
    }
    uint64_t id;
    do
        id = rand64();
    while (!id);
    memcpy(s->ctx.span_id, &id, 8);
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
    for (int i = 0; i < s->nattrs; i++) /* keys are literals: the same one is the same pointer */
        if (s->attrs[i].key == key ||
            (s->attrs[i].key[0] == key[0] && !strcmp(s->attrs[i].key, key))) {
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
    a->len = (uint32_t)n;
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
    span_clear(s);
    span_release(s);
}

/* Whether positions up to tail hold a full batch the exporter has not been told about. */
static void maybe_wake(size_t tail)
{
    size_t head = atomic_load_explicit(&T.qhead, memory_order_relaxed);
    if (tail < head || tail - head < T.batch ||
        atomic_load_explicit(&T.wake_sent, memory_order_relaxed))
        return;
    if (atomic_exchange(&T.wake_sent, true)) return;
    pthread_mutex_lock(&T.mu); /* the exporter checks the queue under it before it sleeps */
    pthread_cond_signal(&T.cv);
    pthread_mutex_unlock(&T.mu);
}

/* Puts s at the queue's tail; false when the queue is full. */
static bool q_push(trace_span *s)
{
    size_t pos = atomic_load_explicit(&T.qtail, memory_order_relaxed);
    for (;;) {
        struct qslot *q = &T.q[pos % T.qcap];
        size_t seq = atomic_load_explicit(&q->seq, memory_order_acquire);
        if (seq == pos) {
            if (atomic_compare_exchange_weak_explicit(&T.qtail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                q->span = s;
                atomic_store_explicit(&q->seq, pos + 1, memory_order_release);
                maybe_wake(pos + 1);
                return true;
            }
        } else if ((ptrdiff_t)(seq - pos) < 0) {
            return false; /* the slot still holds a span from a lap ago: full */
        } else {
            pos = atomic_load_explicit(&T.qtail, memory_order_relaxed);
        }
    }
}

/* The exporter's side: the span at the queue's head, NULL when there is none (yet). */
static trace_span *q_pop(void)
{
    size_t pos = atomic_load_explicit(&T.qhead, memory_order_relaxed);
    struct qslot *q = &T.q[pos % T.qcap];
    if (atomic_load_explicit(&q->seq, memory_order_acquire) != pos + 1) return NULL;
    trace_span *s = q->span;
    atomic_store_explicit(&q->seq, pos + T.qcap, memory_order_release);
    atomic_store_explicit(&T.qhead, pos + 1, memory_order_relaxed);
    return s;
}

/* Spans queued (a producer may be between taking a position and filling it). */
static size_t q_len(void)
{
    return atomic_load(&T.qtail) - atomic_load(&T.qhead);
}

void trace_span_end(trace_span *s)
{
    if (!s) return;
    if (!(s->ctx.flags & 1)) {
        trace_span_discard(s);
        return;
    }
    s->end_ns = now_ns();
    if (atomic_load_explicit(&T.stopping, memory_order_relaxed) || !T.q || !q_push(s)) {
        atomic_fetch_add_explicit(&T.dropped, 1, memory_order_relaxed);
        trace_span_discard(s);
    }
}

/* ---- protobuf (the few wire types OTLP needs) ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} pb;

static bool pb_reserve(pb *b, size_t n);

static void pb_put(pb *b, const void *d, size_t n)
{
    if (!pb_reserve(b, n)) return;
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

/* Room for n more bytes; false (and oom set) when there is none. */
static bool pb_reserve(pb *b, size_t n)
{
    if (b->oom) return false;
    if (b->len + n <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
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

/* ---- encoding a batch: sizes first, then one pass of writes into a buffer reserved for it ---- */

/* A varint's length, and a length-delimited field's with a one-byte tag. */
static size_t vlen(uint64_t v)
{
    return v < 0x80 ? 1 : varint_len(v);
}

static size_t ld_len(size_t n)
{
    return 1 + vlen(n) + n;
}

/* The AnyValue and KeyValue bodies of an attribute (klen must be noted). */
static size_t any_len(const struct attr *a)
{
    return a->type == A_STR ? ld_len(a->len) : 1 + vlen((uint64_t)a->i);
}

static size_t kv_len(const struct attr *a)
{
    return ld_len(a->klen) + ld_len(any_len(a));
}

static size_t status_len(const trace_span *s)
{
    return (s->status_msg ? ld_len(strlen(s->status_msg)) : 0) + 2;
}

/* The Span body's length; notes the lengths the writer needs again. */
static size_t span_len(trace_span *s)
{
    s->name_len = strlen(s->name);
    size_t n = ld_len(16) + ld_len(8) + ld_len(s->name_len) + 2 /* kind */ + 2 * 9 /* times */ + 2 +
               4 /* flags */;
    if (s->ctx.state[0]) n += ld_len(strlen(s->ctx.state));
    if (s->has_parent) n += ld_len(8);
    for (int i = 0; i < s->nattrs; i++) {
        struct attr *a = &s->attrs[i];
        size_t kl = strlen(a->key);
        a->klen = (uint16_t)(kl < 0xffff ? kl : 0xffff);
        n += ld_len(kv_len(a));
    }
    if (s->dropped_attrs) n += 1 + vlen(s->dropped_attrs);
    if (s->status) n += ld_len(status_len(s));
    s->enc_len = n;
    return n;
}

static uint8_t *w_varint(uint8_t *w, uint64_t v)
{
    return w + varint_write(w, v);
}

static uint8_t *w_ld(uint8_t *w, uint8_t tag, const void *d, size_t n)
{
    *w++ = tag;
    w = w_varint(w, n);
    memcpy(w, d, n);
    return w + n;
}

static uint8_t *w_fixed(uint8_t *w, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *w++ = (uint8_t)(v >> (8 * i));
    return w;
}

/* Span (opentelemetry/proto/trace/v1/trace.proto) as field 2 of ScopeSpans; span_len(s) first. */
static uint8_t *w_span(uint8_t *w, const trace_span *s)
{
    *w++ = 2 << 3 | 2;
    w = w_varint(w, s->enc_len);
    w = w_ld(w, 1 << 3 | 2, s->ctx.trace_id, 16);
    w = w_ld(w, 2 << 3 | 2, s->ctx.span_id, 8);
    if (s->ctx.state[0]) w = w_ld(w, 3 << 3 | 2, s->ctx.state, strlen(s->ctx.state));
    if (s->has_parent) w = w_ld(w, 4 << 3 | 2, s->parent, 8);
    w = w_ld(w, 5 << 3 | 2, s->name, s->name_len);
    *w++ = 6 << 3;
    *w++ = s->kind; /* < 128 */
    *w++ = 7 << 3 | 1;
    w = w_fixed(w, s->start_ns, 8);
    *w++ = 8 << 3 | 1;
    w = w_fixed(w, s->end_ns, 8);
    for (int i = 0; i < s->nattrs; i++) { /* KeyValue {1: key, 2: AnyValue} */
        const struct attr *a = &s->attrs[i];
        *w++ = 9 << 3 | 2;
        w = w_varint(w, kv_len(a));
        w = w_ld(w, 1 << 3 | 2, a->key, a->klen);
        *w++ = 2 << 3 | 2;
        w = w_varint(w, any_len(a));
        if (a->type == A_STR) { /* AnyValue {1: string_value | 2: bool_value | 3: int_value} */
            w = w_ld(w, 1 << 3 | 2, a->s, a->len);
        } else {
            *w++ = a->type == A_BOOL ? 2 << 3 : 3 << 3;
            w = w_varint(w, (uint64_t)a->i);
        }
    }
    if (s->dropped_attrs) {
        *w++ = 10 << 3;
        w = w_varint(w, s->dropped_attrs);
    }
    if (s->status) { /* Status {2: message, 3: code} */
        *w++ = 15 << 3 | 2;
        w = w_varint(w, status_len(s));
        if (s->status_msg) w = w_ld(w, 2 << 3 | 2, s->status_msg, strlen(s->status_msg));
        *w++ = 3 << 3;
        *w++ = (uint8_t)s->status;
    }
    /* W3C trace flags, and bit 8: whether the parent is remote (unknown: not set) */
    *w++ = (uint8_t)(16 << 3 | 5 | 0x80);
    *w++ = 1;
    return w_fixed(w, s->ctx.flags, 4);
}

#ifdef GOOSED_VERSION
#define SCOPE_VERSION GOOSED_VERSION
#else
#define SCOPE_VERSION ""
#endif

/* ExportTraceServiceRequest {1: ResourceSpans {1: Resource, 2: ScopeSpans {1: scope, 2: spans}}}
 * for spans[0..n), appended to out (out->oom when it cannot grow). The caller frees out->p. */
static void encode_request(pb *out, const uint8_t *resource, size_t resource_len,
                           trace_span *const *spans, size_t n)
{
    static const char scope_name[] = "goosed";
    size_t vl = strlen(SCOPE_VERSION);
    size_t scope = ld_len(sizeof scope_name - 1) + (vl ? ld_len(vl) : 0);
    size_t ss = ld_len(scope);
    for (size_t i = 0; i < n; i++)
        ss += ld_len(span_len(spans[i]));
    size_t rs = ld_len(resource_len) + ld_len(ss);
    size_t total = ld_len(rs);
    if (!pb_reserve(out, total)) return;
    uint8_t *w = out->p + out->len;
    *w++ = 1 << 3 | 2;
    w = w_varint(w, rs);
    w = w_ld(w, 1 << 3 | 2, resource, resource_len);
    *w++ = 2 << 3 | 2;
    w = w_varint(w, ss);
    *w++ = 1 << 3 | 2; /* InstrumentationScope {1: name, 2: version} */
    w = w_varint(w, scope);
    w = w_ld(w, 1 << 3 | 2, scope_name, sizeof scope_name - 1);
    if (vl) w = w_ld(w, 2 << 3 | 2, SCOPE_VERSION, vl);
    for (size_t i = 0; i < n; i++)
        w = w_span(w, spans[i]);
    out->len = (size_t)(w - out->p);
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

/* POSTs one encoded request. Returns a message for the log on failure, NULL on success; then
 * *again says whether the collector may take it later, *after_ms how long its Retry-After asks
 * to wait (0: it did not say). */
static const char *post(CURL **easy, const pb *body, long timeout_ms, bool *again, long *after_ms,
                        char *why, size_t whylen)
{
    *again = false;
    *after_ms = 0;
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
        *again = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                 rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING;
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        return why;
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        *again = status == 429 || status == 502 || status == 503 || status == 504;
        curl_off_t after = 0;
        if (*again && curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
            *after_ms = after > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : (long)after * 1000;
        snprintf(why, whylen, "the collector answered HTTP %ld", status);
        return why;
    }
    return NULL;
}

/* The spans of a batch, done with, back to the pool in one go. */
static void batch_release(trace_span **spans, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        span_clear(spans[i]);
        spans[i]->next = i + 1 < n ? spans[i + 1] : NULL;
        SPAN_POISON(spans[i]);
    }
    if (n) pool_put(spans[0], spans[n - 1], n);
}

/* Waits ms, or less when goosed begins to stop; false when it is stopping. */
static bool backoff(long ms)
{
    struct timespec dl = clock_deadline(ms);
    pthread_mutex_lock(&T.mu);
    while (!atomic_load(&T.stopping))
        if (pthread_cond_timedwait(&T.cv, &T.mu, &dl)) break;
    pthread_mutex_unlock(&T.mu);
    return !atomic_load(&T.stopping);
}

/* Encodes spans[0..n) into body (reused from batch to batch) and POSTs it, again while the
 * collector asks for that (EXPORT_TRIES). */
static void export_batch(CURL **easy, pb *body, trace_span **spans, size_t n, long timeout_ms,
                         time_t *last_fail)
{
    body->len = 0;
    body->oom = false;
    encode_request(body, T.resource, T.resource_len, spans, n);
    char why[256];
    const char *err = body->oom ? "out of memory encoding spans" : NULL;
    bool again = !err;
    long wait = BACKOFF_MS, after = 0;
    for (int tries = 0; again && tries < EXPORT_TRIES; tries++) {
        if (tries) { /* the collector's own word (Retry-After) as it is, else ours ±20 % */
            long ms = after ? after : wait + (long)(random() % (wait / 5 * 2 + 1)) - wait / 5;
            if (!backoff(ms)) break;
            wait = wait * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : wait * 2;
        }
        err = post(easy, body, timeout_ms, &again, &after, why, sizeof why);
        again = err && again && !atomic_load(&T.stopping);
    }
    if (body->cap > (8u << 20)) { /* an unusually large batch: do not keep its memory */
        free(body->p);
        *body = (pb){0};
    }
    if (err && !atomic_load(&T.abort_io)) {
        time_t now = time(NULL);
        if (now - *last_fail >= FAIL_LOG_EVERY) {
            *last_fail = now;
            log_warn("trace", "%zu span(s) not exported to %s: %s", n, T.where, err);
        }
    }
    batch_release(spans, n);
}

static void *exporter(void *arg)
{
    (void)arg;
    CURL *easy = NULL;
    pb body = {0};
    time_t last_drop = 0, last_fail = 0;
    uint64_t reported = 0;
    struct timespec last_call = {0}; /* the final flush's deadline, once stopping */
    trace_span **batch = calloc(T.batch, sizeof *batch);
    for (;;) {
        pthread_mutex_lock(&T.mu);
        if (!atomic_load(&T.stopping) && q_len() < T.batch) {
            struct timespec dl = clock_deadline(T.delay_ms);
            while (!atomic_load(&T.stopping) && q_len() < T.batch)
                if (pthread_cond_timedwait(&T.cv, &T.mu, &dl)) break;
        }
        pthread_mutex_unlock(&T.mu);
        bool stopping = atomic_load(&T.stopping);
        atomic_store(&T.wake_sent, false); /* the next full batch signals again */
        size_t n = 0;
        for (trace_span *s; batch && n < T.batch && (s = q_pop());)
            batch[n++] = s;
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
            export_batch(&easy, &body, batch, n, tmo, &last_fail);
        else
            batch_release(batch, n);
        if (stopping && (!n || !batch)) break;
    }
    free(batch);
    free(body.p);
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
    for (size_t i = 0; i < T.qcap; i++)
        atomic_init(&T.q[i].seq, i);
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
    atomic_store(&T.stopping, true);
    pthread_cond_signal(&T.cv);
    pthread_mutex_unlock(&T.mu);
    /* the batch being sent is abandoned; what is still queued gets one short try */
    pthread_join(T.thread, NULL);
    T.thread_on = false;
    for (trace_span *s; (s = q_pop());) /* ended while the exporter was leaving */
        trace_span_discard(s);
    pool_drain();
    curl_slist_free_all(T.headers);
    T.headers = NULL;
    free(T.resource);
    T.resource = NULL;
    /* The queue stays: a thread that read T.stopping before it was set may still put a span in
     * it (the span stays there, dropped); freeing it would pull it from under that thread. */
}
