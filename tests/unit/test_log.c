/* Unit tests for core/log: the RUST_LOG-style filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static char err[256];

static void configure_ok(const char *spec)
{
    err[0] = '\0';
    gd_err e = log_configure(spec, err, sizeof err);
    if (e != GD_OK) fail_msg("log_configure(\"%s\") failed: %s", spec, err);
    assert_string_equal(log_spec(), spec);
}

/* Each test starts from the default filter. */
static int reset(void **state)
{
    configure_ok("info");
    return 0;
}

static void test_default_is_info(void **state)
{
    assert_string_equal(log_spec(), "info");
    assert_true(log_enabled(LOG_ERROR, "http"));
    assert_true(log_enabled(LOG_WARN, "http"));
    assert_true(log_enabled(LOG_INFO, "http"));
    assert_false(log_enabled(LOG_DEBUG, "http"));
    assert_false(log_enabled(LOG_TRACE, "http"));
}

static void test_debug(void **state)
{
    configure_ok("debug");
    assert_true(log_enabled(LOG_INFO, "store"));
    assert_true(log_enabled(LOG_DEBUG, "store"));
    assert_false(log_enabled(LOG_TRACE, "store"));
    assert_true(log_enabled(LOG_DEBUG, "http"));
}

static void test_all_levels_and_case(void **state)
{
    configure_ok("error");
    assert_true(log_enabled(LOG_ERROR, "x"));
    assert_false(log_enabled(LOG_WARN, "x"));
    configure_ok("WARN");
    assert_true(log_enabled(LOG_WARN, "x"));
    assert_false(log_enabled(LOG_INFO, "x"));
    configure_ok("warning");
    assert_true(log_enabled(LOG_WARN, "x"));
    assert_false(log_enabled(LOG_INFO, "x"));
    configure_ok("Trace");
    assert_true(log_enabled(LOG_TRACE, "x"));
    configure_ok("off");
    assert_false(log_enabled(LOG_ERROR, "x"));
}

static void test_goose_sets_default(void **state)
{
    /* The form from Goose's docs: goose=debug means every module of this program. */
    configure_ok("info,goose=debug");
    assert_true(log_enabled(LOG_DEBUG, "store"));
    assert_true(log_enabled(LOG_DEBUG, "http"));
    assert_false(log_enabled(LOG_TRACE, "http"));

    configure_ok("goosed=trace");
    assert_true(log_enabled(LOG_TRACE, "store"));
    assert_true(log_enabled(LOG_TRACE, "config"));

    configure_ok("debug,goose_server=warn");
    assert_true(log_enabled(LOG_WARN, "store"));
    assert_false(log_enabled(LOG_INFO, "store"));
}

static void test_module_rule(void **state)
{
    configure_ok("warn,store=trace");
    assert_true(log_enabled(LOG_TRACE, "store"));
    assert_true(log_enabled(LOG_WARN, "http"));
    assert_false(log_enabled(LOG_INFO, "http"));
    assert_false(log_enabled(LOG_INFO, "stor")); /* exact module names only */
    assert_false(log_enabled(LOG_INFO, "store2"));

    configure_ok("store=error");
    assert_false(log_enabled(LOG_WARN, "store"));
    assert_true(log_enabled(LOG_INFO, "http")); /* no default given: info */

    /* A later rule for the same module wins. */
    configure_ok("info,store=error,store=debug");
    assert_true(log_enabled(LOG_DEBUG, "store"));
    /* A module rule can also be quieter than the goose default. */
    configure_ok("goose=debug,http=warn");
    assert_true(log_enabled(LOG_DEBUG, "store"));
    assert_false(log_enabled(LOG_INFO, "http"));
}

static void test_spaces_and_empty_items(void **state)
{
    configure_ok("info, store=debug");
    assert_true(log_enabled(LOG_DEBUG, "store"));
    configure_ok("debug,");
    assert_true(log_enabled(LOG_DEBUG, "x"));
    configure_ok("");
    assert_true(log_enabled(LOG_INFO, "x"));
    assert_false(log_enabled(LOG_DEBUG, "x"));
}

static void reject(const char *spec, const char *needle)
{
    err[0] = '\0';
    assert_int_equal(log_configure(spec, err, sizeof err), GD_EINVAL);
    assert_true(err[0] != '\0');
    if (needle && !strstr(err, needle))
        fail_msg("error for \"%s\" is \"%s\", expected it to mention \"%s\"", spec, err, needle);
}

static void test_rejects(void **state)
{
    reject("loud", "loud");
    reject("store=loud", "loud");
    reject("store=", NULL);
    reject("=debug", "module");
    reject("info,=debug", "module");
    reject("info,loud", "loud");
    char longname[64];
    memset(longname, 'm', 40);
    strcpy(longname + 40, "=debug");
    reject(longname, "module");
    char huge[400];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    reject(huge, NULL);
}

static void test_too_many_rules(void **state)
{
    char spec[256] = "info";
    for (int i = 0; i < 17; i++) {
        char item[16];
        snprintf(item, sizeof item, ",m%d=debug", i);
        strcat(spec, item);
    }
    reject(spec, NULL);
}

static void test_rejection_keeps_previous(void **state)
{
    configure_ok("warn,store=trace");
    reject("loud", NULL);
    reject("debug,store=loud", NULL); /* a valid default before the bad item changes nothing */
    reject("info,goose=debug,=x", NULL);
    assert_string_equal(log_spec(), "warn,store=trace");
    assert_true(log_enabled(LOG_TRACE, "store"));
    assert_true(log_enabled(LOG_WARN, "http"));
    assert_false(log_enabled(LOG_INFO, "http"));
}

/* Runs fn with stderr sent to a temporary file and returns what it wrote (NUL-terminated,
 * truncated to outlen - 1), so expected log lines do not clutter the test output. */
static size_t capture(void (*fn)(void), char *out, size_t outlen)
{
    char path[] = "/tmp/test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, out, outlen - 1, 0);
    close(fd);
    assert_true(n >= 0);
    out[n] = '\0';
    return (size_t)n;
}

static int evaluated;
static int side_effect(void)
{
    evaluated++;
    return 1;
}

static void log_one_error(void)
{
    log_error("test", "expected test line %d", side_effect());
}

static void test_macros_skip_arguments(void **state)
{
    configure_ok("error");
    evaluated = 0;
    log_debug("test", "%d", side_effect());
    log_info("test", "%d", side_effect());
    assert_int_equal(evaluated, 0);
    /* Enabled: arguments are evaluated (the line goes to stderr). */
    configure_ok("off,test=error");
    char out[512];
    capture(log_one_error, out, sizeof out);
    assert_int_equal(evaluated, 1);
    /* "2026-03-04T12:00:00.000Z ERROR test: expected test line 1\n" */
    assert_non_null(strstr(out, "Z ERROR test: expected test line 1\n"));
    assert_int_equal(out[4], '-');
    assert_int_equal(out[10], 'T');
}

static void write_long_line(void)
{
    /* A line longer than the internal buffer is truncated, not overflowed. */
    char big[6000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_write(LOG_INFO, "test", "%s", big);
    log_write(LOG_TRACE, "a-module-name", "short");
}

static void test_log_write_long_line(void **state)
{
    static char out[16384];
    size_t n = capture(write_long_line, out, sizeof out);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    size_t first = (size_t)(nl - out) + 1;
    assert_true(first <= 4096);
    assert_true(first > 4000);
    assert_non_null(strstr(nl + 1, "TRACE a-module-name: short\n"));
    assert_int_equal(out[n - 1], '\n');
}

static void write_forged_line(void)
{
    log_write(
        LOG_WARN, "http", "provider said: %s",
        "bad\n2026-01-01T00:00:00.000Z ERROR forged: x\r\x1b[31mred\x7f\xc2\x9b\xff\tok \xc3\xa9");
}

/* A message holds what a client or a provider said: it stays on its one line, its controls and
 * bytes that are not UTF-8 written as \xHH, so it cannot forge a line or drive a terminal. */
static void test_log_write_escapes_controls(void **state)
{
    static char out[4096];
    size_t n = capture(write_forged_line, out, sizeof out);
    assert_int_equal(out[n - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + n - 1); /* one line */
    assert_non_null(strstr(out, "WARN  http: provider said: bad\\x0A2026-01-01T00:00:00.000Z ERROR "
                                "forged: x\\x0D\\x1B[31mred\\x7F\\xC2\\x9B\\xFF\tok \xc3\xa9\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_default_is_info, reset),
        cmocka_unit_test_setup(test_debug, reset),
        cmocka_unit_test_setup(test_all_levels_and_case, reset),
        cmocka_unit_test_setup(test_goose_sets_default, reset),
        cmocka_unit_test_setup(test_module_rule, reset),
        cmocka_unit_test_setup(test_spaces_and_empty_items, reset),
        cmocka_unit_test_setup(test_rejects, reset),
        cmocka_unit_test_setup(test_too_many_rules, reset),
        cmocka_unit_test_setup(test_rejection_keeps_previous, reset),
        cmocka_unit_test_setup(test_macros_skip_arguments, reset),
        cmocka_unit_test_setup(test_log_write_long_line, reset),
        cmocka_unit_test_setup(test_log_write_escapes_controls, reset),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
