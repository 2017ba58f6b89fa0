/* Unit tests for the client commands' pieces: how a tool call and its result are shown (cut on
 * character boundaries), option parsing, path escaping, and a URL's credentials kept out of
 * messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.c"
#include "cli/reply.c"

/* What f received, as a string the caller frees. */
static char *render(void (*fn)(FILE *, void *), void *ud)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    fn(f, ud);
    fclose(f);
    return out;
}

static void call_fn(FILE *f, void *ud)
{
    json_t *args = ud;
    reply_print_tool_call(f, "developer__shell", args);
}

static void test_tool_call_marker(void **state)
{
    (void)state;
    json_t *args = json_pack("{s:s, s:i}", "command", "ls\n-la", "timeout", 5);
    char *s = render(call_fn, args);
    assert_string_equal(s, "─── shell(command: ls -la, timeout: 5) ───\n");
    free(s);
    json_decref(args);
    /* a long value is cut before a multi-byte character, never inside it */
    char v[200] = "";
    for (int i = 0; i < 30; i++)
        strcat(v, "é"); /* 2 bytes each: 60 bytes */
    strcat(v, "é");     /* bytes 60-61: cut at 60 */
    args = json_pack("{s:s}", "x", v);
    s = render(call_fn, args);
    char want[300];
    snprintf(want, sizeof want, "─── shell(x: %.*s…) ───\n", 60, v);
    assert_string_equal(s, want);
    free(s);
    json_decref(args);
}

static void result_fn(FILE *f, void *ud)
{
    reply_print_tool_result(f, ud, false);
}

static void error_fn(FILE *f, void *ud)
{
    reply_print_tool_result(f, ud, true);
}

static void test_tool_result_short(void **state)
{
    (void)state;
    char *s = render(result_fn, "a\nb\nc\nd\ne\nf\n");
    assert_string_equal(s, "  a\n  b\n  c\n  d\n  … (2 more lines)\n");
    free(s);
    s = render(result_fn, "one line, no newline");
    assert_string_equal(s, "  one line, no newline\n");
    free(s);
    s = render(error_fn, "boom\n");
    assert_string_equal(s, "  error: boom\n");
    free(s);
    s = render(error_fn, "");
    assert_string_equal(s, "  error\n");
    free(s);
    char line[300];
    memset(line, 'x', 150);
    line[150] = '\0';
    s = render(result_fn, line);
    assert_int_equal(strlen(s), 2 + 120 + strlen("…") + 1);
    free(s);
}

static void test_escape(void **state)
{
    (void)state;
    char *e = cl_escape("a b/c?d%é-_.~");
    assert_string_equal(e, "a%20b%2Fc%3Fd%25%C3%A9-_.~");
    free(e);
}

static void test_shown_url(void **state)
{
    (void)state;
    char *s = shown_url("https://alice:pa55word@goose.example:8443/base?x=1@y");
    assert_string_equal(s, "https://goose.example:8443/base?x=1@y");
    free(s);
    s = shown_url("http://127.0.0.1:3000");
    assert_string_equal(s, "http://127.0.0.1:3000");
    free(s);
}

static void test_options(void **state)
{
    (void)state;
    char *argv[] = {"run", "--url=http://h:1", "--cacert", "ca.pem", "-t", "hi", "--json", "-t"};
    int argc = 8;
    cl_common c = {0};
    const char *text = NULL;
    int i = 1;
    assert_int_equal(cl_common_opt(&c, "t", argc, argv, &i), 1);
    assert_string_equal(c.url, "http://h:1");
    i = 2;
    assert_int_equal(cl_common_opt(&c, "t", argc, argv, &i), 1);
    assert_int_equal(i, 3);
    assert_string_equal(c.cacert, "ca.pem");
    i = 4;
    assert_int_equal(cl_common_opt(&c, "t", argc, argv, &i), 0);
    assert_int_equal(cl_opt_value("t", "--text", "-t", argc, argv, &i, &text), 1);
    assert_string_equal(text, "hi");
    i = 6;
    assert_int_equal(cl_common_opt(&c, "t", argc, argv, &i), 1);
    assert_true(c.json);
    i = 7; /* -t at the end: its value is missing */
    assert_int_equal(cl_opt_value("t", "--text", "-t", argc, argv, &i, &text), -1);
    /* a short option takes no =VALUE form; a longer name is not a prefix match */
    char *more[] = {"x", "-t=v", "--textual"};
    i = 1;
    assert_int_equal(cl_opt_value("t", "--text", "-t", 3, more, &i, &text), 0);
    i = 2;
    assert_int_equal(cl_opt_value("t", "--text", "-t", 3, more, &i, &text), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tool_call_marker), cmocka_unit_test(test_tool_result_short),
        cmocka_unit_test(test_escape),           cmocka_unit_test(test_shown_url),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
