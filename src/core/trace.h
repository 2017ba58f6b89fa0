/* trace: OpenTelemetry spans, W3C trace context, and their export over OTLP/HTTP (protobuf).
 *
 * Off unless an OTLP endpoint is configured (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or
 * OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces"); then every function here is cheap and never
 * blocks on the network or takes a lock: a span comes from a per-thread pool (no allocation per
 * span), a finished one goes into a bounded lock-free queue (a full queue drops it and counts
 * it), and one exporter thread, woken by a full batch or the schedule delay, encodes the batch
 * into one reused buffer and POSTs it with libcurl, with timeouts. Off, trace_span_start returns
 * NULL and every other function accepts NULL.
 *
 * Spans are owned by whoever started them until trace_span_end (or trace_span_discard), which
 * takes them; attribute keys are kept by pointer (string literals), values are copied. */
#ifndef GD_TRACE_H
#define GD_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "00-<32 hex>-<16 hex>-<2 hex>" and a NUL */
#define TRACEPARENT_LEN  56
#define TRACESTATE_MAX   256 /* a longer tracestate from a client is not passed on */
#define TRACE_ID_HEX_LEN 33

/* A span's identity as W3C trace context carries it. valid is false for "no parent". */
typedef struct {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* bit 0: sampled */
    bool valid;
    char state[TRACESTATE_MAX + 1]; /* tracestate, "" when none */
} trace_ctx;

/* OTLP's SpanKind values. */
typedef enum { TRACE_INTERNAL = 1, TRACE_SERVER = 2, TRACE_CLIENT = 3 } trace_kind;

typedef struct trace_span trace_span;

/* Reads the OTEL_* variables (see README, "Traces") and starts the exporter thread when an
 * endpoint is set. disable_telemetry (GOOSE_DISABLE_TELEMETRY) turns export off even then.
 * Logs one line saying where spans go, or why they do not (never a header value). Call once,
 * before serving. */
void trace_init(bool disable_telemetry);
/* Stops the exporter: what is queued is sent once (a request in flight is abandoned), then the
 * thread ends. Spans ended after this are dropped. */
void trace_shutdown(void);
/* Whether spans are being recorded at all. */
bool trace_enabled(void);

/* Parses a traceparent header value (version 00, or a later version's first four fields) into
 * out (state left ""). false, with out->valid false, when it is malformed or its ids are all
 * zero. */
bool trace_parse_traceparent(const char *s, trace_ctx *out);
/* Copies a tracestate header value into ctx->state when it is printable ASCII that fits
 * (else leaves it ""). */
void trace_set_tracestate(trace_ctx *ctx, const char *s);
/* Writes ctx as a traceparent value into out. */
void trace_format_traceparent(const trace_ctx *ctx, char out[TRACEPARENT_LEN]);
/* The trace id as 32 lowercase hex digits. */
void trace_id_hex(const trace_ctx *ctx, char out[TRACE_ID_HEX_LEN]);

/* Starts a span now, a child of parent when parent is valid (may be NULL), else the root of a
 * new trace; the sampler decides whether it is exported. name is copied (cut at 95 bytes).
 * NULL when tracing is off or out of memory. */
trace_span *trace_span_start(const char *name, trace_kind kind, const trace_ctx *parent);
/* The span's own context (for children and propagation); valid while the span is. */
const trace_ctx *trace_span_ctx(const trace_span *s);
void trace_span_rename(trace_span *s, const char *name);
/* Attributes: at most 16 per span (more are counted as dropped). key must outlive the span (a
 * string literal); a string value is copied (cut at 1 KB). Never pass a secret. */
void trace_attr_str(trace_span *s, const char *key, const char *value);
void trace_attr_int(trace_span *s, const char *key, int64_t value);
void trace_attr_bool(trace_span *s, const char *key, bool value);
/* Marks the span failed with a description (copied), or OK when error is false. */
void trace_set_status(trace_span *s, bool error, const char *message);
/* Ends the span now and hands it to the exporter (or frees it when it is not sampled). Takes s. */
void trace_span_end(trace_span *s);
/* Frees a span without exporting it. Takes s. */
void trace_span_discard(trace_span *s);

/* The context of the work this thread is doing (a request, a step of a turn), for the
 * outgoing requests made during it: the previous one is returned, to be put back. ctx is
 * borrowed and must stay valid while it is current. */
const trace_ctx *trace_set_current(const trace_ctx *ctx);
const trace_ctx *trace_current(void);
/* "traceparent: ..." for the current context into out; false when there is none. */
bool trace_header_line(char out[TRACEPARENT_LEN + 16]);
/* "tracestate: ..." when the current context has one; false otherwise. */
bool trace_state_line(char out[TRACESTATE_MAX + 16]);

/* Spans dropped because the queue was full, since start. */
uint64_t trace_dropped(void);

#endif
