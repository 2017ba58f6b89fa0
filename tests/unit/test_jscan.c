/* Unit tests for core/jscan: the strict JSON reader without a tree (the providers' chunks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/jscan.h"

static gd_err parse(js_doc *d, const char *text)
{
    char err[128];
    return js_parse(d, text, strlen(text), err, sizeof err);
}

static void test_reads_an_openai_chunk(void **state)
{
    (void)state;
    js_doc d;
    js_init(&d);
    const char *chunk = "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w1 \"},"
                        "\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":12}}";
    assert_int_equal(parse(&d, chunk), GD_OK);
    int choice = js_at(&d, js_get(&d, 0, "choices"), 0);
    assert_int_equal(js_typeof(&d, choice), JS_OBJECT);
    buf scratch;
    buf_init(&scratch, 1024);
    const char *s;
    size_t n;
    assert_true(
        js_string(&d, js_get(&d, js_get(&d, choice, "delta"), "content"), &scratch, &s, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(s, "w1 ", 3);
    assert_null(scratch.data); /* no escapes: read in place */
    assert_int_equal(js_typeof(&d, js_get(&d, choice, "finish_reason")), JS_NULL);
    assert_int_equal(js_get(&d, choice, "missing"), -1);
    assert_int_equal(js_at(&d, js_get(&d, 0, "choices"), 1), -1);
    long long v;
    assert_true(js_int(&d, js_get(&d, js_get(&d, 0, "usage"), "prompt_tokens"), &v));
    assert_int_equal(v, 12);
    assert_int_equal(js_size(&d, 0), 3);
    buf_free(&scratch);
    js_free(&d);
}

static void test_decodes_escapes_and_takes_the_last_duplicate(void **state)
{
    (void)state;
    js_doc d;
    js_init(&d);
    assert_int_equal(parse(&d, "{\"k\":1,\"\\u006b\":\"a\\n\\u00e9\\ud83d\\ude00\\\"\"}"), GD_OK);
    int k = js_get(&d, 0, "k"); /* the second key is "k" too, escaped */
    buf scratch;
    buf_init(&scratch, 1024);
    const char *s;
    size_t n;
    assert_true(js_string(&d, k, &scratch, &s, &n));
    assert_int_equal(n, 9);
    assert_memory_equal(s, "a\n\xc3\xa9\xf0\x9f\x98\x80\"", 9);
    assert_true(js_string_eq(&d, k, "a\n\xc3\xa9\xf0\x9f\x98\x80\""));
    assert_false(js_string_eq(&d, k, "a\n"));
    size_t len;
    const char *raw = js_raw(&d, k, &len);
    assert_int_equal(raw[0], '"');
    assert_int_equal(raw[len - 1], '"');
    buf_free(&scratch);
    js_free(&d);
}

static void test_refuses_what_jansson_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "{",
        "[1,]",
        "{\"a\":1,}",
        "{'a':1}",
        "01",
        "1.",
        "-",
        "1e",
        "tru",
        "nul",
        "[1] x",
        "\"\\x\"",
        "\"\\u00zz\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"a\tb\"",
        "\"\xc3\"",
        "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "9223372036854775808",
        "1e400",
        "{\"a\" 1}",
        "[1 2]",
        "\"unterminated",
    };
    js_doc d;
    js_init(&d);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[128] = "";
        if (js_parse(&d, bad[i], strlen(bad[i]), err, sizeof err) != GD_EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(strstr(err, "at byte"));
    }
    js_free(&d);
}

static void test_accepts_what_jansson_accepts(void **state)
{
    (void)state;
    static const char *const good[] = {
        " {} ",
        "[]",
        "-0",
        "1.5e-3",
        "1E+2",
        "1e-400",
        "\"\xf0\x9f\x98\x80\"",
        "true",
        "[null,false,{\"\":[[]]}]",
        "-9223372036854775808",
        "\"\\/\\b\\f\\r\\t\"",
    };
    js_doc d;
    js_init(&d);
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (parse(&d, good[i]) != GD_OK) fail_msg("refused: %s", good[i]);
    js_free(&d);
}

static void test_depth_is_bounded(void **state)
{
    (void)state;
    size_t n = JS_MAX_DEPTH + 1;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    js_doc d;
    js_init(&d);
    char err[128];
    assert_int_equal(js_parse(&d, deep, 2 * n, err, sizeof err), GD_EINVAL);
    assert_non_null(strstr(err, "nesting too deep"));
    assert_int_equal(js_parse(&d, deep + 1, 2 * n - 2, err, sizeof err), GD_OK);
    js_free(&d);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_an_openai_chunk),
        cmocka_unit_test(test_decodes_escapes_and_takes_the_last_duplicate),
        cmocka_unit_test(test_refuses_what_jansson_refuses),
        cmocka_unit_test(test_accepts_what_jansson_accepts),
        cmocka_unit_test(test_depth_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
