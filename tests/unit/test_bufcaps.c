/* Unit tests for what users see when a capped buffer is full: the SSE reader's caps, a tool
 * result cut short, and secrets.yaml / config.yaml that would pass their caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/secrets.h"
#include "core/buf.h"
#include "extensions/developer/dev.h"
#include "providers/provider.h"

/* ---- the SSE reader ---- */

typedef struct {
    int n;
    char last[64];
} events;

static gd_err on_ev(void *ud, const char *event, const char *data)
{
    events *e = ud;
    e->n++;
    snprintf(e->last, sizeof e->last, "%s:%s", event ? event : "", data);
    return GD_OK;
}

static void test_sse_line_cap(void **state)
{
    events ev = {0};
    sse_reader *r = sse_reader_new(16, on_ev, &ev);
    assert_non_null(r);
    assert_int_equal(sse_reader_feed(r, "data: short\n\n", 13), GD_OK);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.last, ":short");
    /* 17 bytes in a line, even fed in pieces: the stream ends with GD_ETOOBIG. */
    assert_int_equal(sse_reader_feed(r, "data: 0123456", 13), GD_OK);
    assert_int_equal(sse_reader_feed(r, "7890", 4), GD_ETOOBIG);
    assert_int_equal(ev.n, 1);
    sse_reader_free(r);
}

static void test_sse_event_name_cap(void **state)
{
    events ev = {0};
    sse_reader *r = sse_reader_new(1024, on_ev, &ev);
    char line[BUF_CAP_SSE_EVENT_NAME + 16];
    int n = snprintf(line, sizeof line, "event: %0*d\n", (int)BUF_CAP_SSE_EVENT_NAME + 1, 7);
    assert_int_equal(sse_reader_feed(r, line, (size_t)n), GD_ETOOBIG);
    assert_int_equal(ev.n, 0);
    sse_reader_free(r);
}

static void test_sse_data_cap(void **state)
{
    /* An event's data lines together may hold BUF_CAP_SSE_DATA_LINES lines' worth. */
    events ev = {0};
    sse_reader *r = sse_reader_new(16, on_ev, &ev);
    gd_err e = GD_OK;
    for (int i = 0; i < 10 && !e; i++)
        e = sse_reader_feed(r, "data: 123456789\n", 16);
    assert_int_equal(e, GD_ETOOBIG);
    assert_int_equal(ev.n, 0);
    sse_reader_free(r);
}

/* ---- a tool's result ---- */

static void test_tool_result_cut_says_so(void **state)
{
    buf b;
    char line[200];
    memset(line, 'o', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    buf_init(&b, 128);
    gd_err e = buf_puts(&b, "exit status: 0\nstdout:\n");
    if (!e) e = buf_puts(&b, line);
    assert_int_equal(e, GD_ETOOBIG);
    dev_out out;
    assert_int_equal(dev_finish(&out, &b, e, false, GD_OK), GD_OK);
    assert_false(out.is_error);
    assert_non_null(strstr(out.text, "exit status: 0\nstdout:\n"));
    assert_non_null(strstr(out.text, "[truncated: the result is longer than goosed keeps]"));
    free(out.text);
}

static void test_tool_result_no_room_is_out_of_memory(void **state)
{
    buf b;
    buf_init(&b, 4); /* not even the note fits */
    dev_out out;
    assert_int_equal(dev_finish(&out, &b, buf_puts(&b, "12345"), false, GD_OK), GD_ENOMEM);
    assert_true(out.is_error);
    assert_string_equal(out.text, "out of memory");
    free(out.text);
}

static void test_tool_error_too_long(void **state)
{
    size_t n = BUF_CAP_MESSAGE + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    dev_out out;
    assert_int_equal(dev_fail(&out, GD_EINVAL, "bad: %s", big), GD_EINVAL);
    assert_true(out.is_error);
    assert_string_equal(out.text, "(error message too long)");
    free(out.text);
    free(big);
}

/* ---- secrets.yaml and config.yaml ---- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return s;
}

static void test_secrets_file_cap(void **state)
{
    char dir[] = "/tmp/gd-bufcaps-XXXXXX", path[64], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/secrets.yaml", dir);
    assert_int_equal(secrets_load(dir, err, sizeof err), GD_OK);
    assert_int_equal(secrets_set("SMALL_KEY", "v1", err, sizeof err), GD_OK);
    size_t n = BUF_CAP_SECRETS_FILE;
    char *big = malloc(n + 1);
    memset(big, 'k', n);
    big[n] = '\0';
    assert_int_equal(secrets_set("BIG_KEY", big, err, sizeof err), GD_ETOOBIG);
    assert_non_null(strstr(err, "cannot store the secret BIG_KEY"));
    assert_non_null(strstr(err, "would be larger than"));
    size_t len;
    char *s = slurp(path, &len); /* the file is as it was */
    assert_non_null(strstr(s, "SMALL_KEY: \"v1\""));
    assert_null(strstr(s, "BIG_KEY"));
    free(s);
    /* nor is the refused value used, and the next secret is stored as usual */
    char got[16];
    assert_int_equal(secrets_get("BIG_KEY", got, sizeof got), 0);
    assert_int_equal(secrets_set("OTHER_KEY", "v2", err, sizeof err), GD_OK);
    assert_int_equal(secrets_get("OTHER_KEY", got, sizeof got), 1);
    assert_string_equal(got, "v2");
    free(big);
    unlink(path);
    rmdir(dir);
}

static void test_config_file_cap(void **state)
{
    char dir[] = "/tmp/gd-bufcaps-XXXXXX", path[64], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    /* A comment line, over the cap in all: the file must not be rewritten from a part of it. */
    fputs("# ", f);
    for (size_t i = 0; i < BUF_CAP_CONFIG_FILE / 64 + 1; i++)
        fputs("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", f);
    fputs("\nGOOSE_MODEL: \"old\"\n", f);
    fclose(f);
    size_t before;
    free(slurp(path, &before));
    const char *keys[] = {"GOOSE_MODEL"}, *vals[] = {"new"};
    assert_int_equal(config_file_set(path, keys, vals, 1, err, sizeof err), GD_ETOOBIG);
    assert_non_null(strstr(err, "larger than"));
    size_t len;
    char *s = slurp(path, &len);
    assert_int_equal(len, before);
    assert_non_null(strstr(s, "GOOSE_MODEL: \"old\""));
    free(s);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_line_cap),
        cmocka_unit_test(test_sse_event_name_cap),
        cmocka_unit_test(test_sse_data_cap),
        cmocka_unit_test(test_tool_result_cut_says_so),
        cmocka_unit_test(test_tool_result_no_room_is_out_of_memory),
        cmocka_unit_test(test_tool_error_too_long),
        cmocka_unit_test(test_secrets_file_cap),
        cmocka_unit_test(test_config_file_cap),
    };
    return cmocka_run_group_tests_name("bufcaps", tests, NULL, NULL);
}
