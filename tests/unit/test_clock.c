/* Unit tests for core/clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"

static void check(time_t t, const char *want)
{
    char out[RFC3339_LEN];
    memset(out, 'Q', sizeof out);
    clock_rfc3339(t, out);
    assert_string_equal(out, want);
}

static void test_rfc3339_known(void **state)
{
    check(0, "1970-01-01T00:00:00Z");
    check(1772625600, "2026-03-04T12:00:00Z");
    check(951782400, "2000-02-29T00:00:00Z"); /* leap day */
    check(1234567890, "2009-02-13T23:31:30Z");
    check(2147483647, "2038-01-19T03:14:07Z");
    check(2147483648LL, "2038-01-19T03:14:08Z"); /* past 32-bit time_t */
    check(4102444799LL, "2099-12-31T23:59:59Z");
    check(253402300799LL, "9999-12-31T23:59:59Z"); /* the last time that fits */
}

/* regression: years past 9999 left the output unterminated */
static void test_rfc3339_out_of_range(void **state)
{
    check(253402300800LL, "1970-01-01T00:00:00Z");
    check((time_t)1 << 62, "1970-01-01T00:00:00Z");
    check(-62135596800LL, "1970-01-01T00:00:00Z"); /* year 1: not four digits */
}

static void test_rfc3339_is_utc(void **state)
{
    /* The local time zone must not leak in. */
    setenv("TZ", "America/New_York", 1);
    tzset();
    check(0, "1970-01-01T00:00:00Z");
    unsetenv("TZ");
    tzset();
}

static void test_rfc3339_length(void **state)
{
    char out[RFC3339_LEN];
    clock_rfc3339(time(NULL), out);
    assert_int_equal(strlen(out), RFC3339_LEN - 1);
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[19], 'Z');
}

static void parsed(const char *s, int64_t want)
{
    int64_t us = -1;
    assert_true(clock_parse_rfc3339(s, &us));
    assert_int_equal(us, want);
}

static void test_parse_rfc3339(void **state)
{
    parsed("1970-01-01T00:00:00Z", 0);
    parsed("2026-03-04T12:00:00Z", 1772625600LL * 1000000);
    parsed("2000-02-29T00:00:00z", 951782400LL * 1000000); /* leap day; "z" */
    parsed("2026-03-04t12:00:00.5Z", 1772625600LL * 1000000 + 500000);
    parsed("2026-03-04T12:00:00.1234567Z", 1772625600LL * 1000000 + 123456); /* past µs: cut */
    parsed("2026-03-04T13:30:00+01:30", 1772625600LL * 1000000);
    parsed("2026-03-04T07:00:00-05:00", 1772625600LL * 1000000);
    parsed("2016-12-31T23:59:60Z", 1483228799LL * 1000000); /* a leap second: its minute's end */
    /* every printed time reads back */
    char out[RFC3339_LEN];
    clock_rfc3339(1234567890, out);
    parsed(out, 1234567890LL * 1000000);
    int64_t us;
    const char *bad[] = {"",
                         "yesterday",
                         "2026-03-04",
                         "2026-03-04T12:00:00",
                         "2026-3-04T12:00:00Z",
                         "2026-02-30T12:00:00Z",
                         "2025-02-29T00:00:00Z",
                         "2026-13-01T00:00:00Z",
                         "2026-03-04T24:00:00Z",
                         "2026-03-04T12:60:00Z",
                         "2026-03-04T12:00:00.Z",
                         "2026-03-04T12:00:00+0100",
                         "2026-03-04T12:00:00Zjunk",
                         "2026-03-04 12:00:00Z",
                         "+2026-03-04T12:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (clock_parse_rfc3339(bad[i], &us)) fail_msg("\"%s\" was taken", bad[i]);
    }
}

static void test_mono_ns(void **state)
{
    uint64_t a = clock_mono_ns();
    struct timespec ts = {0, 2000000}; /* 2 ms */
    nanosleep(&ts, NULL);
    uint64_t b = clock_mono_ns();
    assert_true(b > a);
    assert_true(b - a >= 2000000);
    assert_true(b - a < 2000000000ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339_known),  cmocka_unit_test(test_rfc3339_out_of_range),
        cmocka_unit_test(test_rfc3339_is_utc), cmocka_unit_test(test_rfc3339_length),
        cmocka_unit_test(test_mono_ns),        cmocka_unit_test(test_parse_rfc3339),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
