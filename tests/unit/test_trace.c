/* Unit tests for core/trace: the traceparent parser, the protobuf encoder (read back by a small
 * decoder here), the OTEL_* list parser and the sampler. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/core/trace.c"

static int init(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* ---- traceparent ---- */

static void test_parse_valid(void **state)
{
    trace_ctx c;
    assert_true(
        trace_parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &c));
    assert_true(c.valid);
    assert_int_equal(c.trace_id[0], 0x0a);
    assert_int_equal(c.trace_id[15], 0x9c);
    assert_int_equal(c.span_id[0], 0xb7);
    assert_int_equal(c.span_id[7], 0x31);
    assert_int_equal(c.flags, 1);
    char out[TRACEPARENT_LEN];
    trace_format_traceparent(&c, out);
    assert_string_equal(out, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    char hex[TRACE_ID_HEX_LEN];
    trace_id_hex(&c, hex);
    assert_string_equal(hex, "0af7651916cd43dd8448eb211c80319c");
    /* surrounding blanks are allowed (an HTTP header value's OWS) */
    assert_true(
        trace_parse_traceparent(" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00 ", &c));
    assert_int_equal(c.flags, 0);
    /* a later version: its first four fields are read, and more may follow */
    assert_true(trace_parse_traceparent(
        "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds", &c));
}

static void test_parse_invalid(void **state)
{
    static const char *const bad[] = {
        NULL,
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",      /* no flags */
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", /* 00 has no more */
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",   /* uppercase */
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",   /* zero trace id */
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",   /* zero span id */
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",   /* version ff */
        "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",   /* separator */
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",   /* not hex */
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",    /* short flags */
        "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",  /* no dash after */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        trace_ctx c;
        c.valid = true;
        if (trace_parse_traceparent(bad[i], &c)) fail_msg("accepted \"%s\"", bad[i]);
        assert_false(c.valid);
    }
}

static void test_tracestate(void **state)
{
    trace_ctx c = {0};
    trace_set_tracestate(&c, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    assert_string_equal(c.state, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    trace_set_tracestate(&c, "a=b\r\nx-injected: 1");
    assert_string_equal(c.state, "");
    char longer[TRACESTATE_MAX + 2];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    trace_set_tracestate(&c, longer);
    assert_string_equal(c.state, "");
}

static void test_current_header(void **state)
{
    char line[TRACESTATE_MAX + 16];
    trace_set_current(NULL);
    assert_false(trace_header_line(line));
    trace_ctx c;
    assert_true(
        trace_parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &c));
    trace_set_tracestate(&c, "k=v");
    assert_null(trace_set_current(&c));
    assert_true(trace_header_line(line));
    assert_string_equal(line,
                        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_true(trace_state_line(line));
    assert_string_equal(line, "tracestate: k=v");
    assert_ptr_equal(trace_set_current(NULL), &c);
}

/* ---- protobuf ---- */

static void test_varint(void **state)
{
    static const struct {
        uint64_t v;
        const char *bytes;
        size_t n;
    } cases[] = {
        {0, "\x00", 1},       {1, "\x01", 1},
        {127, "\x7f", 1},     {128, "\x80\x01", 2},
        {300, "\xac\x02", 2}, {UINT64_MAX, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pb b = {0};
        pb_varint(&b, cases[i].v);
        assert_int_equal(b.len, cases[i].n);
        assert_memory_equal(b.p, cases[i].bytes, cases[i].n);
        assert_int_equal(varint_len(cases[i].v), cases[i].n);
        free(b.p);
    }
}

/* A nested message whose length needs more than the byte kept for it: the body moves. */
static void test_nested_lengths(void **state)
{
    for (size_t n = 0; n < 20000; n = n * 3 + 1) {
        pb b = {0};
        pb_put(&b, "\xAA", 1);
        size_t at = pb_open(&b, 2);
        for (size_t i = 0; i < n; i++)
            pb_put(&b, &(uint8_t){(uint8_t)i}, 1);
        pb_close(&b, at);
        assert_false(b.oom);
        size_t vl = varint_len(n);
        assert_int_equal(b.len, 2 + vl + n);
        assert_int_equal(b.p[0], 0xAA);
        assert_int_equal(b.p[1], 2 << 3 | 2);
        uint8_t want[10];
        assert_int_equal(varint_write(want, n), vl);
        assert_memory_equal(b.p + 2, want, vl);
        for (size_t i = 0; i < n; i++)
            if (b.p[2 + vl + i] != (uint8_t)i) fail_msg("body byte %zu moved wrong (n=%zu)", i, n);
        free(b.p);
    }
}

/* A minimal protobuf reader for the checks below. */
typedef struct {
    const uint8_t *p, *end;
} rd;

static uint64_t rd_varint(rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    fail_msg("truncated varint");
    return 0;
}

/* The next field: its number, wire type, and value (varint/fixed) or bytes. false at the end. */
static bool rd_field(rd *r, unsigned *field, unsigned *wire, uint64_t *v, rd *sub)
{
    if (r->p >= r->end) return false;
    uint64_t tag = rd_varint(r);
    *field = (unsigned)(tag >> 3);
    *wire = (unsigned)(tag & 7);
    switch (*wire) {
    case 0:
        *v = rd_varint(r);
        break;
    case 1:
    case 5: {
        size_t n = *wire == 1 ? 8 : 4;
        assert_true(r->p + n <= r->end);
        *v = 0;
        for (size_t i = 0; i < n; i++)
            *v |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        break;
    }
    case 2: {
        uint64_t n = rd_varint(r);
        assert_true(n <= (uint64_t)(r->end - r->p));
        sub->p = r->p;
        sub->end = r->p + n;
        r->p += n;
        break;
    }
    default:
        fail_msg("wire type %u", *wire);
    }
    return true;
}

/* The only field `want` of message r (length-delimited), which must be present. */
static rd rd_get(rd r, unsigned want)
{
    unsigned f, w;
    uint64_t v;
    rd sub = {0};
    while (rd_field(&r, &f, &w, &v, &sub))
        if (f == want) return sub;
    fail_msg("field %u missing", want);
    return sub;
}

static bool rd_streq(rd s, const char *want)
{
    return (size_t)(s.end - s.p) == strlen(want) && !memcmp(s.p, want, strlen(want));
}

static void test_encode_request(void **state)
{
    atomic_store(&T.on, true);
    T.sampler = S_ALWAYS_ON;
    trace_ctx parent;
    assert_true(trace_parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                        &parent));
    trace_set_tracestate(&parent, "k=v");
    trace_span *s = trace_span_start("GET /status", TRACE_SERVER, &parent);
    assert_non_null(s);
    trace_attr_str(s, "http.route", "/status");
    trace_attr_int(s, "http.response.status_code", 200);
    trace_attr_int(s, "negative", -5);
    trace_attr_bool(s, "goose.aborted", true);
    trace_set_status(s, true, "it broke");
    s->end_ns = s->start_ns + 1234;
    atomic_store(&T.on, false);

    pb res = {0};
    pb_kv_str(&res, 1, "service.name", "goosed");
    pb out = {0};
    encode_request(&out, res.p, res.len, &s, 1);
    assert_false(out.oom);

    rd r = {out.p, out.p + out.len};
    rd rs = rd_get(r, 1);        /* ResourceSpans */
    rd resource = rd_get(rs, 1); /* Resource */
    rd kv = rd_get(resource, 1); /* KeyValue */
    assert_true(rd_streq(rd_get(kv, 1), "service.name"));
    assert_true(rd_streq(rd_get(rd_get(kv, 2), 1), "goosed"));
    rd ss = rd_get(rs, 2); /* ScopeSpans */
    assert_true(rd_streq(rd_get(rd_get(ss, 1), 1), "goosed"));
    rd span = rd_get(ss, 2);
    assert_memory_equal(rd_get(span, 1).p, parent.trace_id, 16);
    assert_int_equal(rd_get(span, 2).end - rd_get(span, 2).p, 8);
    assert_memory_equal(rd_get(span, 2).p, s->ctx.span_id, 8);
    assert_true(rd_streq(rd_get(span, 3), "k=v"));
    assert_memory_equal(rd_get(span, 4).p, parent.span_id, 8);
    assert_true(rd_streq(rd_get(span, 5), "GET /status"));

    unsigned f, w;
    uint64_t v;
    rd sub;
    int attrs = 0;
    bool kind = false, start = false, end = false, status = false, flags = false;
    while (rd_field(&span, &f, &w, &v, &sub)) {
        if (f == 6) kind = w == 0 && v == TRACE_SERVER;
        if (f == 7) start = w == 1 && v == s->start_ns;
        if (f == 8) end = w == 1 && v == s->start_ns + 1234;
        if (f == 16) flags = w == 5 && v == 1;
        if (f == 15) {
            assert_true(rd_streq(rd_get(sub, 2), "it broke"));
            unsigned f2, w2;
            uint64_t v2;
            rd s2;
            while (rd_field(&sub, &f2, &w2, &v2, &s2))
                if (f2 == 3) status = v2 == 2; /* STATUS_CODE_ERROR */
        }
        if (f == 9) {
            rd key = rd_get(sub, 1), val = rd_get(sub, 2);
            unsigned f2, w2;
            uint64_t v2;
            rd s2;
            assert_true(rd_field(&val, &f2, &w2, &v2, &s2));
            if (rd_streq(key, "http.route")) {
                assert_int_equal(f2, 1);
                assert_true(rd_streq(s2, "/status"));
            } else if (rd_streq(key, "http.response.status_code")) {
                assert_int_equal(f2, 3);
                assert_int_equal(v2, 200);
            } else if (rd_streq(key, "negative")) {
                assert_int_equal(f2, 3);
                assert_int_equal((int64_t)v2, -5); /* int64: two's complement, ten bytes */
            } else if (rd_streq(key, "goose.aborted")) {
                assert_int_equal(f2, 2);
                assert_int_equal(v2, 1);
            } else {
                fail_msg("unexpected attribute");
            }
            attrs++;
        }
    }
    assert_int_equal(attrs, 4);
    assert_true(kind && start && end && status && flags);
    free(out.p);
    free(res.p);
    trace_span_discard(s);
}

/* ---- configuration and sampling ---- */

static void collect(const char *k, const char *v, void *ud)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "[%s|%s]", k, v);
}

/* A batch of many spans, some with values too long for the span's arena and each longer than a
 * one-byte length: every length written is the one read back, and the request ends exactly at
 * its last byte; encoding it again into the reused buffer gives the same bytes. */
static void test_encode_batch(void **state)
{
    atomic_store(&T.on, true);
    T.sampler = S_ALWAYS_ON;
    enum { N = 300 };
    trace_span *spans[N];
    char big[700];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "span %d", i);
        spans[i] = trace_span_start(name, TRACE_INTERNAL, NULL);
        assert_non_null(spans[i]);
        trace_attr_str(spans[i], "goose.value", i % 3 ? "short" : big);
        trace_attr_int(spans[i], "goose.index", i);
        if (i % 7 == 0) trace_set_status(spans[i], true, "failed");
        spans[i]->end_ns = spans[i]->start_ns + (uint64_t)i;
    }
    atomic_store(&T.on, false);
    pb out = {0};
    encode_request(&out, (const uint8_t *)"", 0, spans, N);
    assert_false(out.oom);
    uint8_t *first = malloc(out.len);
    assert_non_null(first);
    memcpy(first, out.p, out.len);
    size_t first_len = out.len;

    rd r = {out.p, out.p + out.len};
    unsigned f, w;
    uint64_t v;
    rd rs;
    assert_true(rd_field(&r, &f, &w, &v, &rs));
    assert_int_equal(f, 1);
    assert_true(r.p == r.end); /* one ResourceSpans, the whole request */
    rd ss = rd_get(rs, 2), sub;
    int n = 0;
    while (rd_field(&ss, &f, &w, &v, &sub)) {
        if (f != 2) continue;
        char name[32];
        snprintf(name, sizeof name, "span %d", n);
        assert_true(rd_streq(rd_get(sub, 5), name));
        rd kv = rd_get(sub, 9); /* the first attribute */
        assert_true(rd_streq(rd_get(kv, 1), "goose.value"));
        assert_true(rd_streq(rd_get(rd_get(kv, 2), 1), n % 3 ? "short" : big));
        if (n % 7 == 0) assert_true(rd_streq(rd_get(rd_get(sub, 15), 2), "failed"));
        n++;
    }
    assert_int_equal(n, N);

    out.len = 0; /* the exporter's reuse */
    encode_request(&out, (const uint8_t *)"", 0, spans, N);
    assert_int_equal(out.len, first_len);
    assert_memory_equal(out.p, first, first_len);
    free(first);
    free(out.p);
    for (int i = 0; i < N; i++)
        trace_span_discard(spans[i]);
}

/* ---- the queue and the span pool ---- */

static trace_span *started(void)
{
    atomic_store(&T.on, true);
    T.sampler = S_ALWAYS_ON;
    trace_span *s = trace_span_start("q", TRACE_INTERNAL, NULL);
    assert_non_null(s);
    return s;
}

/* Ended spans queue in order up to the queue's size; past it they are dropped and counted; the
 * exporter is signalled once per full batch, until it has taken the queue. */
static void test_queue_bounded(void **state)
{
    T.qcap = 4;
    T.batch = 2;
    T.q = calloc(T.qcap, sizeof *T.q);
    for (size_t i = 0; i < T.qcap; i++)
        atomic_init(&T.q[i].seq, i);
    atomic_store(&T.qhead, 0);
    atomic_store(&T.qtail, 0);
    atomic_store(&T.wake_sent, false);
    uint64_t dropped = trace_dropped();
    trace_span *s[6];
    for (int i = 0; i < 6; i++) {
        s[i] = started();
        if (i == 1) assert_false(atomic_load(&T.wake_sent));
        trace_span_end(s[i]);
        if (i == 1) assert_true(atomic_load(&T.wake_sent)); /* a batch of two */
    }
    assert_int_equal(trace_dropped(), dropped + 2);
    assert_int_equal(q_len(), 4);
    for (int lap = 0; lap < 3; lap++) { /* around the ring more than once */
        for (int i = 0; i < 4; i++) {
            trace_span *got = q_pop();
            assert_ptr_equal(got, s[i]);
            trace_span_end(got); /* queued again, behind the others */
        }
    }
    for (int i = 0; i < 4; i++)
        trace_span_discard(q_pop());
    assert_null(q_pop());
    atomic_store(&T.on, false);
    free(T.q);
    T.q = NULL;
    pool_drain();
}

/* Spans started on one thread and freed on another are reused, never lost: a thread's own list
 * goes back to the shared pool when it ends. */
static void *discard_all(void *arg)
{
    trace_span **spans = arg;
    for (int i = 0; i < 100; i++)
        trace_span_discard(spans[i]);
    return NULL;
}

static void test_pool_across_threads(void **state)
{
    pool_drain();
    trace_span *spans[100];
    for (int i = 0; i < 100; i++)
        spans[i] = started();
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    trace_attr_str(spans[0], "long", big); /* an owned value: freed, not kept with the span */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, discard_all, spans), 0);
    pthread_join(th, NULL);
    pthread_mutex_lock(&P.mu);
    size_t pooled = P.n;
    pthread_mutex_unlock(&P.mu);
    assert_int_equal(pooled, 100); /* the thread's list and what it spilled */
    trace_span *again = started(); /* this thread's list is empty: it takes from the pool */
    pthread_mutex_lock(&P.mu);
    assert_int_equal(P.n, 100 - CACHE_FILL);
    pthread_mutex_unlock(&P.mu);
    trace_span_discard(again);
    atomic_store(&T.on, false);
    pool_drain();
}

static void test_pairs(void **state)
{
    char out[512] = "";
    int bad = each_pair(" a=1 , b = two%20words,broken, c%3Dd=e%2Cf ,,=x", collect, out);
    assert_string_equal(out, "[a|1][b|two words][c=d|e,f]");
    assert_int_equal(bad, 2);
}

static void test_headers_override(void **state)
{
    struct hdrs h = {0};
    each_pair("Authorization=Bearer%20one,x-a=1", add_header, &h);
    each_pair("authorization=Bearer two,bad\r=x", add_header, &h);
    assert_int_equal(h.n, 2);
    bool two = false;
    for (int i = 0; i < h.n; i++) {
        if (!strcmp(h.lines[i], "authorization: Bearer two")) two = true;
        assert_null(strstr(h.lines[i], "one"));
        free(h.lines[i]);
    }
    assert_true(two);
}

static void test_sampler(void **state)
{
    atomic_store(&T.on, true);
    trace_ctx unsampled, sampled;
    assert_true(trace_parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
                                        &unsampled));
    assert_true(trace_parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                        &sampled));

    setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on", 1);
    assert_true(parse_sampler());
    trace_span *s = trace_span_start("x", TRACE_INTERNAL, &unsampled);
    assert_int_equal(s->ctx.flags & 1, 0); /* the parent's decision, still propagated */
    assert_memory_equal(s->ctx.trace_id, unsampled.trace_id, 16);
    trace_span_discard(s);
    s = trace_span_start("x", TRACE_INTERNAL, NULL);
    assert_int_equal(s->ctx.flags & 1, 1);
    trace_span_discard(s);

    setenv("OTEL_TRACES_SAMPLER", "always_off", 1);
    assert_true(parse_sampler());
    s = trace_span_start("x", TRACE_INTERNAL, &sampled);
    assert_int_equal(s->ctx.flags & 1, 0);
    trace_span_discard(s);

    setenv("OTEL_TRACES_SAMPLER", "traceidratio", 1);
    setenv("OTEL_TRACES_SAMPLER_ARG", "0", 1);
    assert_true(parse_sampler());
    for (int i = 0; i < 100; i++) {
        s = trace_span_start("x", TRACE_INTERNAL, NULL);
        assert_int_equal(s->ctx.flags & 1, 0);
        trace_span_discard(s);
    }
    setenv("OTEL_TRACES_SAMPLER_ARG", "0.5", 1);
    assert_true(parse_sampler());
    int yes = 0;
    for (int i = 0; i < 1000; i++) {
        s = trace_span_start("x", TRACE_INTERNAL, NULL);
        yes += s->ctx.flags & 1;
        trace_span_discard(s);
    }
    assert_in_range(yes, 350, 650); /* binomial(1000, 0.5): far outside 10 sigma */
    unsetenv("OTEL_TRACES_SAMPLER");
    unsetenv("OTEL_TRACES_SAMPLER_ARG");
    atomic_store(&T.on, false);
    assert_null(trace_span_start("x", TRACE_INTERNAL, NULL)); /* off: nothing recorded */
}

/* String values go to the span's arena until it is full, then each is allocated; a value set
 * again replaces the old one; none outlives the span (the ASan build checks the frees). */
static void test_attr_storage(void **state)
{
    atomic_store(&T.on, true);
    T.sampler = S_ALWAYS_ON;
    trace_span *s = trace_span_start("x", TRACE_INTERNAL, NULL);
    char big[600];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    trace_attr_str(s, "small", "value");
    trace_attr_str(s, "big", big);
    trace_attr_str(s, "big", "now small");
    trace_attr_str(s, "big2", big);
    assert_int_equal(s->nattrs, 3);
    assert_string_equal(s->attrs[0].s, "value");
    assert_false(s->attrs[0].owned);
    assert_string_equal(s->attrs[1].s, "now small");
    assert_string_equal(s->attrs[2].s, big);
    assert_true(s->attrs[2].owned);
    for (int i = 0; i < 20; i++)
        trace_attr_int(s, i % 2 ? "odd" : "even", i);
    assert_int_equal(s->nattrs, 5);
    static const char *const keys[] = {"k0", "k1", "k2", "k3",  "k4",  "k5",  "k6",
                                       "k7", "k8", "k9", "k10", "k11", "k12", "k13"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        trace_attr_str(s, keys[i], big);
    assert_int_equal(s->nattrs, MAX_ATTRS);
    assert_int_equal(s->dropped_attrs, 3);
    trace_span_discard(s);
    atomic_store(&T.on, false);
}

static void test_describe(void **state)
{
    char out[256];
    describe("https://user:pw@collector.example:4318/v1/traces?token=abc", out, sizeof out);
    assert_string_equal(out, "https://collector.example:4318/v1/traces");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_current_header),
        cmocka_unit_test(test_varint),
        cmocka_unit_test(test_nested_lengths),
        cmocka_unit_test(test_encode_request),
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_headers_override),
        cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_attr_storage),
        cmocka_unit_test(test_encode_batch),
        cmocka_unit_test(test_queue_bounded),
        cmocka_unit_test(test_pool_across_threads),
    };
    return cmocka_run_group_tests_name("trace", tests, init, NULL);
}
