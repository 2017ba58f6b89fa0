/* Unit tests for core/log's JSON format: escaping, bytes that are not UTF-8, the thread's
 * context, and text lines left as they were. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/core/log.c"

/* Runs fn with stderr sent to a temporary file; returns what was written (caller frees). */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/goosed-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    assert_int_equal(pread(fd, out, (size_t)n, 0), n);
    close(fd);
    return out;
}

static void write_escapes(void)
{
    log_write(LOG_WARN, "store",
              "a \"quoted\" back\\slash\nnew line\ttab \x01 \x7f bad \xff\xfe ok é");
}

static void test_escapes(void **state)
{
    log_set_format(LOG_JSON);
    log_ctx_set(NULL);
    char *out = capture(write_escapes);
    log_set_format(LOG_TEXT);
    const char *body = strstr(out, "\",\"level\"");
    assert_non_null(body);
    assert_string_equal(
        body, "\",\"level\":\"warn\",\"target\":\"store\",\"message\":\"a \\\"quoted\\\" "
              "back\\\\slash\\nnew line\\ttab \\u0001 \\u007f bad \xef\xbf\xbd\xef\xbf\xbd "
              "ok \xc3\xa9\"}\n");
    assert_memory_equal(out, "{\"time\":\"", 9);
    free(out);
}

static void write_ctx(void)
{
    log_ctx c = {.request_id = "rid-1", .session_id = "", .user = "al\"ice", .trace_id = "abc"};
    const log_ctx *prev = log_ctx_set(&c);
    log_write(LOG_INFO, "access", "hello");
    log_ctx_set(prev);
    log_write(LOG_INFO, "access", "after");
}

static void test_context(void **state)
{
    log_set_format(LOG_JSON);
    char *out = capture(write_ctx);
    log_set_format(LOG_TEXT);
    char *second = strchr(out, '\n');
    assert_non_null(second);
    *second++ = '\0';
    assert_non_null(strstr(out,
                           "\"message\":\"hello\",\"request_id\":\"rid-1\",\"user\":\"al\\\"ice\","
                           "\"trace_id\":\"abc\"}"));
    assert_null(strstr(out, "session_id")); /* "" is left out */
    assert_non_null(strstr(second, "\"message\":\"after\"}\n"));
    free(out);
}

static void write_text(void)
{
    log_ctx c = {.request_id = "rid-1"};
    log_ctx_set(&c);
    log_write(LOG_ERROR, "http", "plain %d", 7);
    log_ctx_set(NULL);
}

static void test_text_unchanged(void **state)
{
    char *out = capture(write_text);
    size_t n = strlen(out);
    assert_true(n > 24);
    assert_string_equal(out + 24, " ERROR http: plain 7\n"); /* after "YYYY-MM-DDTHH:MM:SS.mmmZ" */
    free(out);
}

static void test_parse_format(void **state)
{
    log_format f;
    assert_true(log_parse_format("json", &f));
    assert_int_equal(f, LOG_JSON);
    assert_true(log_parse_format("text", &f));
    assert_int_equal(f, LOG_TEXT);
    assert_false(log_parse_format("JSON ", &f));
    assert_false(log_parse_format("", &f));
}

/* The access log: lines recorded by several threads, written by the log's thread, each whole,
 * in each thread's order, none lost, all out by log_flush; text and JSON. */
#define ACCESS_THREADS 4
#define ACCESS_EACH    3000 /* 12,000 lines: the queue (4096) fills, callers write their own */

static void *record_lines(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < ACCESS_EACH; i++) {
        log_access_rec a = {.status = 200, .bytes = (size_t)i, .ms = 0.25};
        snprintf(a.client, sizeof a.client, "127.0.0.%d", t);
        snprintf(a.method, sizeof a.method, "GET");
        snprintf(a.path, sizeof a.path, "/t%d/%d", t, i);
        snprintf(a.rid, sizeof a.rid, "rid-%d-%d", t, i);
        snprintf(a.session_id, sizeof a.session_id, "s%d", t);
        log_access(&a);
    }
    return NULL;
}

static void access_burst(void)
{
    pthread_t th[ACCESS_THREADS];
    for (int t = 0; t < ACCESS_THREADS; t++)
        pthread_create(&th[t], NULL, record_lines, (void *)(intptr_t)t);
    for (int t = 0; t < ACCESS_THREADS; t++)
        pthread_join(th[t], NULL);
    log_flush();
}

static void check_access(const char *out, bool json)
{
    int next[ACCESS_THREADS] = {0};
    int lines = 0;
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        char line[1024];
        size_t n = (size_t)(nl - p);
        assert_true(n < sizeof line);
        memcpy(line, p, n);
        line[n] = '\0';
        int t, i;
        const char *at = strstr(line, "\"GET /t");
        if (json) at = strstr(line, "\\\"GET /t");
        assert_non_null(at);
        assert_int_equal(sscanf(at + (json ? 6 : 5), "/t%d/%d", &t, &i), 2);
        assert_true(t >= 0 && t < ACCESS_THREADS);
        if (i != next[t])
            fail_msg("thread %d: line %d came when %d was due: %s", t, i, next[t], line);
        next[t]++;
        char want[160];
        if (json) {
            assert_non_null(strstr(line, "\"target\":\"access\""));
            snprintf(want, sizeof want, "\"request_id\":\"rid-%d-%d\",\"session_id\":\"s%d\"", t, i,
                     t);
        } else {
            assert_non_null(strstr(line, " INFO  access: "));
            snprintf(want, sizeof want, "127.0.0.%d \"GET /t%d/%d\" 200 %d 0.25ms rid=rid-%d-%d", t,
                     t, i, i, t, i);
        }
        if (!strstr(line, want)) fail_msg("line without \"%s\": %s", want, line);
        lines++;
        p = nl + 1;
    }
    assert_int_equal(lines, ACCESS_THREADS * ACCESS_EACH);
}

static void test_access_log(void **state)
{
    log_set_format(LOG_TEXT);
    char *out = capture(access_burst);
    check_access(out, false);
    free(out);
    log_set_format(LOG_JSON);
    out = capture(access_burst);
    log_set_format(LOG_TEXT);
    check_access(out, true);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes),        cmocka_unit_test(test_context),
        cmocka_unit_test(test_text_unchanged), cmocka_unit_test(test_parse_format),
        cmocka_unit_test(test_access_log),
    };
    return cmocka_run_group_tests_name("log_json", tests, NULL, NULL);
}
