/* metrics: counters, gauges and histograms for GET /metrics (the Prometheus text format).
 *
 * Recording is a few relaxed atomic adds: no lock, no allocation, no formatting; a request is
 * counted in its thread's shard of the request counters (a scrape sums them), so the threads
 * serving requests seldom write the same cache lines. Label
 * sets are bounded: a request is counted under its route's pattern (never the raw path), its method
 * and its status class; provider, model, extension and tool names (which come from outside) take
 * one of a fixed number of series each, and anything past the cap is counted as "other".
 * Rendering happens only on a scrape (metrics_render).
 *
 * Every function may be called from any thread. Before metrics_init(true), or after
 * metrics_init(false) (`metrics: false`), recording does nothing. */
#ifndef GD_METRICS_H
#define GD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Series per labelled family (provider/model pairs, extension/tool pairs); the last is "other". */
#define METRICS_MAX_SERIES 64
/* Routes counted by pattern; a table longer than this counts the rest under "other". */
#define METRICS_MAX_ROUTES 96
/* The text a scrape may produce. */
#define BUF_CAP_METRICS (8u << 20)

typedef enum {
    MG_CONNECTIONS,    /* open HTTP connections */
    MG_REPLIES,        /* replies running */
    MG_WATCHERS,       /* clients watching a session (SSE, WebSocket, a waiting request) */
    MG_STORE_QUEUE,    /* writes waiting for the store's writer */
    MG_EXT_PROCESSES,  /* extension (MCP stdio server) processes running */
    MG_TOOL_PROCESSES, /* the processes max_tool_processes bounds: shell commands, sessions'
                        * stdio servers */
    MG_COUNT
} metrics_gauge;

/* Turns recording on or off and notes the start time (for process_start_time_seconds). */
void metrics_init(bool enabled);
bool metrics_enabled(void);
/* Route i of the route table requests are counted against: table names the table (the server's
 * own array), method and pattern label its requests (read at render time: they must outlive the
 * process's use of metrics). Requests routed by another table are not counted. */
void metrics_http_route(const void *table, size_t i, const char *method, const char *pattern);

/* A request has completed: the table it was routed by and its route's index there (-1 when none
 * matched), its method, status (0 when none was sent) and duration. */
void metrics_http_done(const void *table, long route, const char *method, int status, uint64_t ns);
void metrics_gauge_add(metrics_gauge g, long delta);
void metrics_gauge_set(metrics_gauge g, long value);
/* A provider call has ended: tokens in and out (counted when > 0), whether it failed. */
void metrics_provider_call(const char *provider, const char *model, long in_tokens, long out_tokens,
                           bool error);
/* A provider call is retried. */
void metrics_provider_retry(const char *provider, const char *model);
/* A tool call has ended. full_name is "<extension>__<tool>"; outcome is one of "ok", "error",
 * "denied", "timeout", "cancelled" (anything else counts as "error"); ns < 0 for a call that never
 * ran (no duration observed). */
void metrics_tool_call(const char *full_name, const char *outcome, int64_t ns);
/* The store's writer has committed a batch (ns: BEGIN to COMMIT). */
void metrics_store_commit(uint64_t ns);

/* Appends every metric in the Prometheus text format (version 0.0.4) to out. GD_ETOOBIG past
 * its cap, GD_ENOMEM. The caller owns out. */
gd_err metrics_render(buf *out);

#endif
