/* Unit tests for core/metrics: what recording does to the rendered text format, label escaping,
 * the cap on series from outside, histograms, and the renderer's own cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.c"
#include "http/router.h"

static void noop(struct http_req *r)
{
    (void)r;
}

static const http_route routes[] = {
    {"GET", "/status", noop, 0},
    {"GET", "/api/sessions/{id}", noop, 0},
    {"DELETE", "/api/sessions/{id}", noop, 0},
};
static const http_route foreign = {"GET", "/metrics", noop, 0};

/* Every counter back to zero, recording on, the test's routes. */
static int reset(void **state)
{
    memset(&M, 0, sizeof M);
    memset(shards, 0, sizeof shards);
    pthread_mutex_init(&M.prov.mu, NULL);
    pthread_mutex_init(&M.tools.mu, NULL);
    metrics_init(true);
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        metrics_http_route(routes, i, routes[i].method, routes[i].pattern);
    return 0;
}

/* The rendered text (the caller frees it). */
static char *render(void)
{
    buf b;
    buf_init(&b, BUF_CAP_METRICS);
    assert_int_equal(metrics_render(&b), GD_OK);
    char *s = buf_detach(&b);
    assert_non_null(s);
    return s;
}

static void assert_has(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want)) fail_msg("missing line: %s\nin:\n%s", line, text);
}

static void assert_lacks(const char *text, const char *piece)
{
    if (strstr(text, piece)) fail_msg("unexpected: %s\nin:\n%s", piece, text);
}

static void test_off_records_nothing(void **state)
{
    metrics_init(false);
    metrics_http_done(routes, 0, "GET", 200, 1000);
    metrics_gauge_add(MG_REPLIES, 3);
    metrics_provider_call("openai", "gpt", 10, 5, false);
    metrics_tool_call("developer__shell", "ok", 1000);
    char *t = render();
    assert_lacks(t, "goosed_http_requests_total{");
    assert_has(t, "goosed_replies_running 0");
    assert_lacks(t, "goosed_provider_calls_total{");
    assert_lacks(t, "goosed_tool_calls_total{");
    free(t);
}

static void test_http_by_pattern_method_and_class(void **state)
{
    metrics_http_done(routes, 0, "GET", 200, 3000000); /* 3 ms */
    metrics_http_done(routes, 0, "HEAD", 200, 3000000);
    metrics_http_done(routes, 1, "GET", 404, 100000);
    metrics_http_done(routes, 2, "DELETE", 204, 100000);
    metrics_http_done(routes, -1, "BREW", 0, 100000);
    metrics_http_done(&foreign, 0, "GET", 200, 100000); /* another server's: not counted */
    char *t = render();
    assert_has(t, "# TYPE goosed_http_requests_total counter");
    assert_has(t, "goosed_http_requests_total{route=\"/status\",method=\"GET\",status=\"2xx\"} 1");
    assert_has(t, "goosed_http_requests_total{route=\"/status\",method=\"HEAD\",status=\"2xx\"} 1");
    assert_has(t, "goosed_http_requests_total{route=\"/api/sessions/{id}\",method=\"GET\","
                  "status=\"4xx\"} 1");
    assert_has(t, "goosed_http_requests_total{route=\"/api/sessions/{id}\",method=\"DELETE\","
                  "status=\"2xx\"} 1");
    assert_has(t, "goosed_http_requests_total{route=\"unmatched\",method=\"other\","
                  "status=\"none\"} 1");
    assert_lacks(t, "route=\"/metrics\"");
    /* the histogram: per route and the route's method (two routes share a pattern) */
    assert_has(t, "# TYPE goosed_http_request_duration_seconds histogram");
    assert_has(t, "goosed_http_request_duration_seconds_bucket{route=\"/status\",method=\"GET\","
                  "le=\"0.0025\"} 0");
    assert_has(t, "goosed_http_request_duration_seconds_bucket{route=\"/status\",method=\"GET\","
                  "le=\"0.005\"} 2");
    assert_has(t, "goosed_http_request_duration_seconds_bucket{route=\"/status\",method=\"GET\","
                  "le=\"+Inf\"} 2");
    assert_has(t, "goosed_http_request_duration_seconds_sum{route=\"/status\",method=\"GET\"} "
                  "0.006000000");
    assert_has(t, "goosed_http_request_duration_seconds_count{route=\"/status\",method=\"GET\"} 2");
    assert_has(t, "goosed_http_request_duration_seconds_count{route=\"/api/sessions/{id}\","
                  "method=\"DELETE\"} 1");
    free(t);
}

static void test_gauges(void **state)
{
    metrics_gauge_add(MG_CONNECTIONS, 1);
    metrics_gauge_add(MG_CONNECTIONS, 1);
    metrics_gauge_add(MG_CONNECTIONS, -1);
    metrics_gauge_set(MG_STORE_QUEUE, 42);
    char *t = render();
    assert_has(t, "# TYPE goosed_http_connections gauge");
    assert_has(t, "goosed_http_connections 1");
    assert_has(t, "goosed_store_queue_depth 42");
    assert_has(t, "goosed_build_info{version=\"" GOOSED_VERSION "\"} 1");
    free(t);
}

static void test_provider_labels_escaped(void **state)
{
    metrics_provider_call("openai", "a\"b\\c\nd\xc3\xa9", 7, 3, false);
    metrics_provider_call("openai", "a\"b\\c\nd\xc3\xa9", 1, 0, true);
    metrics_provider_retry("openai", "a\"b\\c\nd\xc3\xa9");
    metrics_provider_call("anthropic", "", -1, 0, false); /* no usage reported */
    char *t = render();
    /* quote and backslash escaped; a control character or non-ASCII byte replaced */
    assert_has(
        t, "goosed_provider_input_tokens_total{provider=\"openai\",model=\"a\\\"b\\\\c_d__\"} 8");
    assert_has(
        t, "goosed_provider_output_tokens_total{provider=\"openai\",model=\"a\\\"b\\\\c_d__\"} 3");
    assert_has(t, "goosed_provider_calls_total{provider=\"openai\",model=\"a\\\"b\\\\c_d__\"} 2");
    assert_has(t, "goosed_provider_errors_total{provider=\"openai\",model=\"a\\\"b\\\\c_d__\"} 1");
    assert_has(t, "goosed_provider_retries_total{provider=\"openai\",model=\"a\\\"b\\\\c_d__\"} 1");
    assert_has(t, "goosed_provider_input_tokens_total{provider=\"anthropic\",model=\"unknown\"} 0");
    free(t);
}

static void test_series_capped_with_other(void **state)
{
    char model[32];
    for (int i = 0; i < 100; i++) {
        snprintf(model, sizeof model, "model-%d", i);
        metrics_provider_call("openai", model, 1, 0, false);
    }
    metrics_provider_call("openai", "model-0", 1, 0, false); /* a known one keeps its series */
    char *t = render();
    assert_has(t, "goosed_provider_calls_total{provider=\"openai\",model=\"model-0\"} 2");
    assert_has(t, "goosed_provider_calls_total{provider=\"openai\",model=\"model-62\"} 1");
    assert_lacks(t, "model=\"model-63\"");
    /* 100 - 63 named */
    assert_has(t, "goosed_provider_calls_total{provider=\"other\",model=\"other\"} 37");
    int n = 0;
    for (const char *p = t; (p = strstr(p, "\ngoosed_provider_calls_total{")); p++)
        n++;
    assert_int_equal(n, METRICS_MAX_SERIES);
    free(t);
}

static void test_tools(void **state)
{
    metrics_tool_call("developer__shell", "ok", 20000000); /* 20 ms */
    metrics_tool_call("developer__shell", "timeout", 300000000000LL);
    metrics_tool_call("developer__shell", "denied", -1);
    metrics_tool_call("developer__shell", "whatever", 1000);
    metrics_tool_call("lonely", "ok", 1000);
    metrics_tool_call(NULL, "error", 1000);
    char *t = render();
    assert_has(t,
               "goosed_tool_calls_total{extension=\"developer\",tool=\"shell\",outcome=\"ok\"} 1");
    assert_has(
        t, "goosed_tool_calls_total{extension=\"developer\",tool=\"shell\",outcome=\"error\"} 1");
    assert_has(
        t, "goosed_tool_calls_total{extension=\"developer\",tool=\"shell\",outcome=\"timeout\"} 1");
    assert_has(
        t, "goosed_tool_calls_total{extension=\"developer\",tool=\"shell\",outcome=\"denied\"} 1");
    assert_has(t,
               "goosed_tool_calls_total{extension=\"unknown\",tool=\"lonely\",outcome=\"ok\"} 1");
    assert_has(
        t, "goosed_tool_calls_total{extension=\"unknown\",tool=\"unknown\",outcome=\"error\"} 1");
    /* a denied call never ran: three durations, not four */
    assert_has(t,
               "goosed_tool_call_duration_seconds_count{extension=\"developer\",tool=\"shell\"} 3");
    assert_has(t, "goosed_tool_call_duration_seconds_bucket{extension=\"developer\",tool=\"shell\","
                  "le=\"0.01\"} 1");
    assert_has(t, "goosed_tool_call_duration_seconds_bucket{extension=\"developer\",tool=\"shell\","
                  "le=\"30\"} 2");
    assert_has(t, "goosed_tool_call_duration_seconds_bucket{extension=\"developer\",tool=\"shell\","
                  "le=\"+Inf\"} 3");
    free(t);
}

static void test_store_histogram_without_labels(void **state)
{
    metrics_store_commit(2000000); /* 2 ms */
    char *t = render();
    assert_has(t, "goosed_store_commit_duration_seconds_bucket{le=\"0.001\"} 0");
    assert_has(t, "goosed_store_commit_duration_seconds_bucket{le=\"0.0025\"} 1");
    assert_has(t, "goosed_store_commit_duration_seconds_sum 0.002000000");
    assert_has(t, "goosed_store_commit_duration_seconds_count 1");
    free(t);
}

static void test_every_family_has_help_and_type(void **state)
{
    metrics_http_done(routes, 0, "GET", 200, 1000);
    char *t = render();
    /* every sample's family was declared by HELP then TYPE before it */
    char fam[128] = "";
    for (char *line = t, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (!strncmp(line, "# HELP ", 7)) {
            sscanf(line + 7, "%127s", fam);
            assert_true(!strncmp(nl + 1, "# TYPE ", 7) && !strncmp(nl + 8, fam, strlen(fam)));
        } else if (line[0] != '#') {
            assert_true(fam[0] && !strncmp(line, fam, strlen(fam)));
        }
    }
    free(t);
}

/* Requests counted on many threads (each into its shard; more threads than shards, so some
 * share one) add up at a scrape, the histogram's buckets and sum with them. */
#define COUNT_THREADS 12
#define COUNT_EACH    5000

static void *count_requests(void *arg)
{
    (void)arg;
    for (int i = 0; i < COUNT_EACH; i++)
        metrics_http_done(routes, 0, "GET", 200, i % 2 ? 1000000 : 3000000); /* 1 or 3 ms */
    return NULL;
}

static void test_http_counted_across_threads(void **state)
{
    pthread_t th[COUNT_THREADS];
    for (int i = 0; i < COUNT_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, count_requests, NULL), 0);
    for (int i = 0; i < COUNT_THREADS; i++)
        pthread_join(th[i], NULL);
    char *t = render();
    char line[256];
    snprintf(line, sizeof line,
             "goosed_http_requests_total{route=\"/status\",method=\"GET\",status=\"2xx\"} %d",
             COUNT_THREADS * COUNT_EACH);
    assert_has(t, line);
    snprintf(line, sizeof line,
             "goosed_http_request_duration_seconds_bucket{route=\"/status\",method=\"GET\","
             "le=\"0.001\"} %d",
             COUNT_THREADS * COUNT_EACH / 2);
    assert_has(t, line); /* 1 ms is on the bound: in its bucket */
    snprintf(line, sizeof line,
             "goosed_http_request_duration_seconds_count{route=\"/status\",method=\"GET\"} %d",
             COUNT_THREADS * COUNT_EACH);
    assert_has(t, line);
    snprintf(line, sizeof line,
             "goosed_http_request_duration_seconds_sum{route=\"/status\",method=\"GET\"} "
             "%.9f",
             COUNT_THREADS * COUNT_EACH / 2 * 0.004);
    assert_has(t, line);
    free(t);
}

static void test_render_cap(void **state)
{
    metrics_http_done(routes, 0, "GET", 200, 1000);
    buf b;
    buf_init(&b, 200);
    assert_int_equal(metrics_render(&b), GD_ETOOBIG);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_off_records_nothing, reset),
        cmocka_unit_test_setup(test_http_by_pattern_method_and_class, reset),
        cmocka_unit_test_setup(test_gauges, reset),
        cmocka_unit_test_setup(test_provider_labels_escaped, reset),
        cmocka_unit_test_setup(test_series_capped_with_other, reset),
        cmocka_unit_test_setup(test_tools, reset),
        cmocka_unit_test_setup(test_store_histogram_without_labels, reset),
        cmocka_unit_test_setup(test_every_family_has_help_and_type, reset),
        cmocka_unit_test_setup(test_render_cap, reset),
        cmocka_unit_test_setup(test_http_counted_across_threads, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
