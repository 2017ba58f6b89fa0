/* Unit tests for core/buf: the capped growable byte string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"

static void test_init_is_empty(void **state)
{
    buf b;
    buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 100);
    buf_free(&b);
    buf_free(&b); /* twice is harmless */
    assert_null(b.data);
}

static void test_append_and_puts(void **state)
{
    buf b;
    buf_init(&b, 1024);
    assert_int_equal(buf_append(&b, "abc", 3), GD_OK);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    assert_int_equal(buf_puts(&b, "def"), GD_OK);
    assert_string_equal(b.data, "abcdef");
    /* Binary data with a NUL inside keeps its length. */
    assert_int_equal(buf_append(&b, "x\0y", 3), GD_OK);
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, "abcdefx\0y", 9);
    assert_int_equal(b.data[9], '\0');
    buf_free(&b);
}

static void test_append_empty(void **state)
{
    buf b;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, "", 0), GD_OK);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data); /* NUL-terminated even when empty after an append */
    assert_string_equal(b.data, "");
    buf_free(&b);
}

static void test_printf(void **state)
{
    buf b;
    buf_init(&b, 1024);
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), GD_OK);
    assert_string_equal(b.data, "42-x");
    assert_int_equal(buf_printf(&b, "|%05.1f|", 3.14159), GD_OK);
    assert_string_equal(b.data, "42-x|003.1|");
    assert_int_equal(b.len, strlen("42-x|003.1|"));
    assert_int_equal(buf_printf(&b, "%s", ""), GD_OK);
    assert_int_equal(b.len, strlen("42-x|003.1|"));
    buf_free(&b);
}

static void test_printf_empty_first(void **state)
{
    buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_printf(&b, "%s", ""), GD_OK);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    buf_free(&b);
}

static void test_reset_keeps_allocation(void **state)
{
    buf b;
    buf_init(&b, 1024);
    assert_int_equal(buf_puts(&b, "hello world"), GD_OK);
    char *before = b.data;
    size_t alloc = b.alloc;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.alloc, alloc);
    assert_string_equal(b.data, "");
    assert_int_equal(buf_puts(&b, "hi"), GD_OK);
    assert_string_equal(b.data, "hi");
    buf_free(&b);

    buf e;
    buf_init(&e, 10);
    buf_reset(&e); /* never allocated: no crash */
    assert_null(e.data);
}

static void test_detach(void **state)
{
    buf b;
    buf_init(&b, 1024);
    assert_int_equal(buf_puts(&b, "owned"), GD_OK);
    char *s = buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "owned");
    free(s);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.alloc, 0);
    /* b is empty and reusable, with its cap. */
    assert_int_equal(b.cap, 1024);
    assert_int_equal(buf_puts(&b, "again"), GD_OK);
    assert_string_equal(b.data, "again");
    buf_free(&b);
}

/* buf_detach_fit hands over the text with no growth slack left in its allocation. */
static void test_detach_fit(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 1u << 20);
    assert_int_equal(buf_reserve(&b, 16 << 10), GD_OK);
    assert_int_equal(buf_puts(&b, "kept"), GD_OK);
    char *s = buf_detach_fit(&b);
    assert_string_equal(s, "kept");
    assert_true(malloc_usable_size(s) < 1024); /* not the 16 KiB reserved */
    free(s);
    assert_null(b.data);
    s = buf_detach_fit(&b); /* empty: "" as buf_detach gives */
    assert_string_equal(s, "");
    free(s);
}

static void test_detach_empty_is_not_null(void **state)
{
    buf b;
    buf_init(&b, 10);
    char *s = buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void test_cap_exact(void **state)
{
    buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "0123456789", 10), GD_OK); /* exactly at the cap */
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    /* One byte past the cap fails and writes nothing. */
    assert_int_equal(buf_append(&b, "x", 1), GD_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    assert_int_equal(buf_printf(&b, "%c", 'y'), GD_ETOOBIG);
    assert_string_equal(b.data, "0123456789");
    /* An empty append at the cap is still fine. */
    assert_int_equal(buf_append(&b, "", 0), GD_OK);
    assert_int_equal(b.len, 10);
    assert_true(b.alloc <= b.cap + 1);
    buf_free(&b);
}

static void test_cap_one_append_too_big(void **state)
{
    buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "abc"), GD_OK);
    /* 3 + 8 = 11 > 10: nothing of it is written. */
    assert_int_equal(buf_append(&b, "12345678", 8), GD_ETOOBIG);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    /* 3 + 7 = 10: fits. */
    assert_int_equal(buf_append(&b, "1234567", 7), GD_OK);
    assert_string_equal(b.data, "abc1234567");
    buf_free(&b);
}

static void test_cap_printf(void **state)
{
    buf b;
    buf_init(&b, 5);
    assert_int_equal(buf_printf(&b, "%s", "123456"), GD_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_true(b.data == NULL || b.data[0] == '\0');
    assert_int_equal(buf_printf(&b, "%d", 12345), GD_OK);
    assert_string_equal(b.data, "12345");
    assert_int_equal(buf_printf(&b, "%d", 6), GD_ETOOBIG);
    assert_string_equal(b.data, "12345");
    buf_free(&b);
}

static void test_cap_zero(void **state)
{
    buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_append(&b, "a", 1), GD_ETOOBIG);
    assert_int_equal(buf_append(&b, "", 0), GD_OK);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_huge_len_no_overflow(void **state)
{
    buf b;
    buf_init(&b, 100);
    assert_int_equal(buf_puts(&b, "ab"), GD_OK);
    /* len + extra would wrap around; must still be refused. */
    assert_int_equal(buf_append(&b, "x", SIZE_MAX), GD_ETOOBIG);
    assert_int_equal(buf_append(&b, "x", SIZE_MAX - 1), GD_ETOOBIG);
    assert_string_equal(b.data, "ab");
    buf_free(&b);
}

/* regression: cap + 1 wrapped to 0 with a cap of SIZE_MAX, and the copy overflowed */
static void test_cap_size_max(void **state)
{
    buf b;
    buf_init(&b, SIZE_MAX);
    assert_int_equal(buf_puts(&b, "hello"), GD_OK);
    assert_int_equal(buf_printf(&b, " %s", "world"), GD_OK);
    assert_string_equal(b.data, "hello world");
    buf_free(&b);
}

static void test_growth_many_appends(void **state)
{
    buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < 10000; i++) {
        char c = (char)('a' + i % 26);
        assert_int_equal(buf_append(&b, &c, 1), GD_OK);
    }
    assert_int_equal(b.len, 10000);
    assert_int_equal(strlen(b.data), 10000);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    assert_true(b.alloc >= b.len + 1);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_printf(&b, "[%04d]", i), GD_OK);
    assert_int_equal(b.len, 10000 + 6000);
    assert_memory_equal(b.data + 10000, "[0000][0001]", 12);
    assert_memory_equal(b.data + b.len - 6, "[0999]", 6);
    buf_free(&b);
}

static void test_growth_up_to_cap(void **state)
{
    /* Growth by doubling is clamped to the cap: fill an odd-sized cap exactly. */
    const size_t cap = 1000;
    buf b;
    buf_init(&b, cap);
    for (size_t i = 0; i < cap; i++)
        assert_int_equal(buf_append(&b, "z", 1), GD_OK);
    assert_int_equal(b.len, cap);
    assert_true(b.alloc <= cap + 1);
    assert_int_equal(buf_append(&b, "z", 1), GD_ETOOBIG);
    assert_int_equal(b.len, cap);
    assert_int_equal(strlen(b.data), cap);
    buf_free(&b);
}

static void test_mark_truncated_ok_is_noop(void **state)
{
    buf b;
    buf_init(&b, 16);
    assert_int_equal(buf_puts(&b, "abc"), GD_OK);
    assert_int_equal(buf_mark_truncated(&b, GD_OK, "[cut]"), GD_OK);
    assert_string_equal(b.data, "abc");
    buf_free(&b);
}

static void test_mark_truncated_appends_note(void **state)
{
    buf b;
    buf_init(&b, 16);
    gd_err e = buf_puts(&b, "abc");
    if (!e) e = buf_puts(&b, "a piece far too long for the cap");
    if (!e) e = buf_puts(&b, "x"); /* not reached: the first error stops the run */
    assert_int_equal(e, GD_ETOOBIG);
    assert_int_equal(buf_mark_truncated(&b, e, "[cut]"), GD_OK);
    assert_string_equal(b.data, "abc[cut]");
    buf_free(&b);
}

static void test_mark_truncated_makes_room(void **state)
{
    /* Full to the cap: the end gives way to the note, and the cap holds. */
    buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "0123456789"), GD_OK);
    assert_int_equal(buf_mark_truncated(&b, buf_puts(&b, "more"), "[cut]"), GD_OK);
    assert_string_equal(b.data, "01234[cut]");
    assert_int_equal(b.len, 10);
    buf_free(&b);
}

static void test_mark_truncated_keeps_utf8_whole(void **state)
{
    /* "aé€" is 1 + 2 + 3 bytes; making room for 2 bytes of note must not split the euro sign. */
    buf b;
    buf_init(&b, 6);
    assert_int_equal(buf_puts(&b, "a\xc3\xa9\xe2\x82\xac"), GD_OK);
    assert_int_equal(buf_mark_truncated(&b, GD_ETOOBIG, "~~"), GD_OK);
    assert_string_equal(b.data, "a\xc3\xa9~~");
    buf_free(&b);
}

static void test_mark_truncated_no_room(void **state)
{
    /* A note longer than the cap cannot be added: the error comes back, b is unchanged. */
    buf b;
    buf_init(&b, 4);
    assert_int_equal(buf_puts(&b, "abcd"), GD_OK);
    assert_int_equal(buf_mark_truncated(&b, GD_ETOOBIG, "[too long]"), GD_ETOOBIG);
    assert_string_equal(b.data, "abcd");
    buf_free(&b);
    buf_init(&b, 0);
    assert_int_equal(buf_mark_truncated(&b, GD_ENOMEM, "x"), GD_ENOMEM);
    buf_free(&b);
}

/* buf_json_string writes what jansson writes (and buf_json_string_size says how long), for every
 * control character, the characters JSON escapes, and UTF-8 of one to four bytes. */
static void test_json_string_as_jansson_writes_it(void **state)
{
    (void)state;
    char all[160];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++)
        all[n++] = (char)c;
    memcpy(all + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"\\/", 13);
    n += 13;
    for (size_t len = 0; len <= n; len++) {
        if (len < n && ((unsigned char)all[n - len] & 0xC0) == 0x80) continue; /* mid-character */
        buf b;
        buf_init(&b, 4096);
        assert_int_equal(buf_json_string(&b, all + n - len, len), GD_OK);
        json_t *s = json_stringn(all + n - len, len);
        char *want = json_dumps(s, JSON_ENCODE_ANY);
        assert_non_null(want);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.data, want, b.len);
        assert_int_equal(buf_json_string_size(all + n - len, len), b.len);
        free(want);
        json_decref(s);
        buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_append_and_puts),
        cmocka_unit_test(test_append_empty),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_printf_empty_first),
        cmocka_unit_test(test_reset_keeps_allocation),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_detach_fit),
        cmocka_unit_test(test_detach_empty_is_not_null),
        cmocka_unit_test(test_cap_exact),
        cmocka_unit_test(test_cap_one_append_too_big),
        cmocka_unit_test(test_cap_printf),
        cmocka_unit_test(test_cap_zero),
        cmocka_unit_test(test_huge_len_no_overflow),
        cmocka_unit_test(test_cap_size_max),
        cmocka_unit_test(test_growth_many_appends),
        cmocka_unit_test(test_growth_up_to_cap),
        cmocka_unit_test(test_mark_truncated_ok_is_noop),
        cmocka_unit_test(test_mark_truncated_appends_note),
        cmocka_unit_test(test_mark_truncated_makes_room),
        cmocka_unit_test(test_mark_truncated_keeps_utf8_whole),
        cmocka_unit_test(test_mark_truncated_no_room),
        cmocka_unit_test(test_json_string_as_jansson_writes_it),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
